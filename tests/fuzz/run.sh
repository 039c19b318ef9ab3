#!/bin/sh
# run.sh SRCDIR BUILDDIR --smoke|--long SECONDS TARGET...: run the libFuzzer
# targets built in BUILDDIR (tests/fuzz of the build tree), one at a time:
# they are CPU-bound and each takes a core.  SRCDIR is tests/fuzz of the
# source tree.  For each target NAME:
#  1. replay every input kept in SRCDIR/regressions/NAME/, each once;
#  2. fuzz SECONDS seconds from SRCDIR/corpus/NAME/ (and the regressions),
#     with the dictionary SRCDIR/NAME.dict when there is one.  --smoke
#     writes what it finds to a fresh scratch corpus (BUILDDIR/smoke/NAME,
#     so every run does the same work); --long keeps it in
#     BUILDDIR/work/NAME, and the next long run goes on from there.
# A crash, a sanitizer report, a leak, a timeout (-timeout, seconds per
# input) or running out of memory fails the target: the input is saved
# under BUILDDIR/artifacts/NAME/ and the end of its log (BUILDDIR/NAME.out)
# is printed.  Prints
# one line per target, then "fuzz: N ok, N failed"; exits 1 on a failure.
set -u

src=$1
build=$2
mode=$3
secs=$4
shift 4
targets=$* # names without spaces: the fuzzer's options reuse "$@" below
case $mode in
--smoke | --long) ;;
*)
	echo "usage: run.sh SRCDIR BUILDDIR --smoke|--long SECONDS TARGET..." >&2
	exit 2
	;;
esac

: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
export UBSAN_OPTIONS

ok=0
failed=0
for t in $targets; do
	bin=$build/$t
	log=$build/$t.out # not .log: test.sh counts results in those
	art=$build/artifacts/$t
	mkdir -p "$art"
	if [ "$mode" = --smoke ]; then
		work=$build/smoke/$t
		rm -rf "$work"
	else
		work=$build/work/$t
	fi
	mkdir -p "$work"

	regs=
	if [ -d "$src/regressions/$t" ]; then
		regs=$(find "$src/regressions/$t" -type f | sort)
	fi
	if [ -n "$regs" ]; then
		# shellcheck disable=SC2086 # file names without spaces
		if ! "$bin" $regs >"$log" 2>&1; then
			echo "$t: FAILED replaying a regression input:"
			grep -E '^(Running|==[0-9]+==ERROR|SUMMARY|.*check failed)' \
				"$log" | tail -n 8
			echo "  (log: $log)"
			failed=$((failed + 1))
			continue
		fi
	fi
	nregs=$(printf '%s' "$regs" | grep -c .)

	set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/"
	[ -f "$src/$t.dict" ] && set -- "$@" -dict="$src/$t.dict"
	set -- "$@" "$work" "$src/corpus/$t"
	[ -d "$src/regressions/$t" ] && set -- "$@" "$src/regressions/$t"
	"$bin" "$@" >"$log" 2>&1
	rc=$?

	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
	cov=$(printf '%s' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(printf '%s' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(printf '%s' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
	if [ "$rc" = 0 ]; then
		echo "$t: ok: ${runs:-?} runs in ${secs} s, cov ${cov:-?}," \
			"ft ${ft:-?}, corpus ${corp:-?}, $nregs regression input(s)"
		ok=$((ok + 1))
	else
		echo "$t: FAILED (exit $rc) after ${runs:-?} runs:"
		grep -E '==[0-9]+==ERROR|SUMMARY|check failed|runtime error|Test unit written|ALARM|out-of-memory|leak' \
			"$log" | head -n 8
		echo "  (log: $log; the input: $art/)"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $ok ok, $failed failed"
[ "$failed" = 0 ]
