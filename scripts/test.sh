#!/bin/sh
# test.sh: set up, build with -Werror under AddressSanitizer and UBSan, and
# run every test (unit and integration).  Ends with "N passed, N failed".
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh --test
mkdir -p build-test
cd build-test
if [ ! -f Makefile ]; then
	../configure --enable-sanitizers --enable-werror >/dev/null
fi
make -s -j2
status=0
make -s -j2 check || status=$?
# the benchmarks in their short smoke form: they run, nothing is lost
if [ "$status" = 0 ]; then
	make -s bench-smoke || status=$?
fi
# each test program writes a .trs file with its result
[ "$status" = 0 ] || cat test-suite.log
results=$(find tests -name '*.trs' -exec grep -h '^:test-result:' {} +)
pass=$(printf '%s\n' "$results" | grep -c ' PASS$') || true
fail=$(printf '%s\n' "$results" | grep -c -E ' (FAIL|ERROR|XPASS)$') || true
echo "tests: $pass passed, $fail failed"
exit $status
