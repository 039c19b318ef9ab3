#!/bin/sh
# test.sh: set up, build with -Werror under AddressSanitizer and UBSan, run
# the static analysis (make lint), and run every test (unit, integration,
# browser), the benchmarks', the fuzz targets', the soak's and the hostile
# clients' smoke runs, and the unit tests and a daemon run under valgrind.
# Ends with "N passed, N failed" (and ", N skipped" when some tests wait for
# what is not there).
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh --test
mkdir -p build-test
cd build-test
if [ ! -f Makefile ]; then
	../configure --enable-sanitizers --enable-werror >/dev/null
fi
make -s -j2
# cppcheck and clang-tidy over src/ (half a minute); a finding fails the
# run, after the tests have run too
lint_status=0
lint_start=$(date +%s)
make -s lint LINT_JOBS=2 || lint_status=$?
make -s format-check || lint_status=$?
lint_time=$(($(date +%s) - lint_start))
status=0
# setup.sh has installed what the browser tests need: missing is a failure
TAILSSE_BROWSER_TESTS=required make -s -j2 check || status=$?
# the benchmarks in their short smoke form: they run, nothing is lost
if [ "$status" = 0 ]; then
	make -s bench-smoke || status=$?
fi
# the fuzz targets, five seconds each over their seeds and regression inputs
# (it says it is skipped when configure found no clang with libFuzzer)
if [ "$status" = 0 ]; then
	make -s fuzz-smoke || status=$?
fi
# a release build of its own (build-release/, once), then the soak's short
# form (30,000 lines, 3 logrotate rotations, every kind of client; about
# 30 s) and the hostile clients' (bad requests and half-open connections
# against a live stream, with a baseline; about 20 s)
if [ "$status" = 0 ]; then
	make -s soak-smoke || status=$?
fi
if [ "$status" = 0 ]; then
	make -s hostile-smoke || status=$?
fi
# memcheck over the unit tests and a short daemon run, in a build without
# sanitizers of its own (build-valgrind/; about 2 minutes)
if [ "$status" = 0 ]; then
	make -s check-valgrind || status=$?
fi
# Count test cases, not programs: cmocka's "[  PASSED  ] N test(s)." and
# "[  FAILED  ] N test(s)", the integration and browser tests' "N passed,
# N failed" (", N skipped").
[ "$status" = 0 ] || cat test-suite.log
logs=$(find tests -name '*.log' ! -name test-suite.log)
count='\([0-9]*\) passed, \([0-9]*\) failed\(, \([0-9]*\) skipped\)\{0,1\}$'
pass=$(cat $logs | sed -n -e 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' \
	-e "s/^$count/\\1/p" | awk '{s+=$1} END {print s+0}')
fail=$(cat $logs | sed -n -e 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' \
	-e "s/^$count/\\2/p" | awk '{s+=$1} END {print s+0}')
skip=$(cat $logs | sed -n -e "s/^$count/\\4/p" | awk '{s+=$1} END {print s+0}')
# a program that crashed counts as a failure even if it printed no count
crashed=$(find tests -name '*.trs' -exec grep -l -E '^:test-result: (FAIL|ERROR)' {} + | wc -l)
[ "$crashed" -gt "$fail" ] && fail=$crashed
[ "$status" = 0 ] || [ "$fail" -gt 0 ] || fail=1
if [ "$lint_status" = 0 ]; then
	echo "lint: clean (${lint_time}s)"
else
	echo "lint: FAILED, findings above (${lint_time}s)"
	[ "$status" != 0 ] || status=$lint_status
fi
if [ "$skip" -gt 0 ]; then
	echo "tests: $pass passed, $fail failed, $skip skipped"
else
	echo "tests: $pass passed, $fail failed"
fi
exit $status
