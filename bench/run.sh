#!/usr/bin/env bash
# bench/run.sh: run tailsse's benchmark scenarios and print a table.
#
#   bench/run.sh [--smoke] [--only NAME[,NAME...]] [--list] [TAILSSE_BINARY]
#
# The binary is the argument, else $TAILSSE.  Every scenario runs in its own
# temp dir with its own daemon on a free 127.0.0.1 port; the 1 GiB file of
# the replay, tail and filter scenarios and the hostile scenario's directory
# go in /var/tmp and are removed at the end.  ts-load, ts-writer and
# ts-hostile are taken from $TS_LOAD / $TS_WRITER / $TS_HOSTILE, else from
# bench/ when built there and newer than their sources, else compiled with gcc
# into the temp dir (ts-load with TLS when pkg-config finds GnuTLS).  The
# tls-* scenarios run the daemon over HTTPS with a certificate made by
# openssl in their temp dir.  See bench/README.md.
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SMOKE=0
ONLY=""
BIG_SIZE=${BENCH_BIG_SIZE:-1073741824}   # bytes of the generated log
BENCH_CONF=${BENCH_CONF:-}                  # extra server keys
DURATION=${BENCH_DURATION:-20}           # seconds of writing in live scenarios
REPEAT=${BENCH_REPEAT:-3}                # replays per throughput figure: the best counts
HOSTILE_K=${BENCH_HOSTILE:-16}           # looping clients of the hostile scenario
HOSTILE_SIZE=${BENCH_HOSTILE_SIZE:-50M}  # its big log (ts-writer -g: K/M/G suffixes)
TLS_KEY=${BENCH_TLS_KEY:-ec}             # the tls-* certificate's key: ec (P-256) or rsa (2048)
RUNS=${BENCH_RUNS:-0}                    # --repeat: runs of each live scenario (0: one, as before)
BASE_BIN=${BENCH_BASE:-}                 # --base: a second tailsse, alternated with the first
NCHAN=${BENCH_NCHAN:-auto}               # nchan anchor in repeat mode: auto (when installed), 0, 1
NCHAN_WORKERS=${BENCH_NCHAN_WORKERS:-1}  # nginx worker processes of the anchor
AWAKE=${BENCH_AWAKE:-0}                  # --awake: keep every core from halting during repeat runs
SCENARIOS="idle10k tls-idle1k tls-idle10k live1 live100 tls-live100 live1k live100x10k multi100 idle1k8 replay tail lines grep1k filter hostile"

usage() {
	cat <<EOF
Usage: $0 [--smoke] [--only NAME[,NAME...]] [--repeat N [--base BIN]
          [--no-nchan] [--awake]] [--list] [TAILSSE_BINARY]
  --smoke      one tiny scenario (20 streams, 200 lines/s, 2 s); exit status
               non-zero only if the programs fail to run or lines are lost
  --only NAME  run these scenarios only, in this order (comma-separated, or
               --only repeated): $SCENARIOS
  --repeat N   repeat mode for the live scenarios (live1, live100, live1k,
               live100x10k): N runs each, every run on a fresh file and a
               fresh server, printing each run and the distribution
               (min/median/max); BENCH_DURATION defaults to 15 s here.  When
               nginx with the nchan module is installed (setup.sh --bench),
               each run is also served by nginx+nchan, alternating
               (BENCH_NCHAN=0 or --no-nchan: not)
  --base BIN   in repeat mode, a second tailsse binary (e.g. built from
               main) alternated run by run with TAILSSE_BINARY
  --awake      in repeat mode, a diagnosis: one spinner per core at the
               lowest priority (SCHED_IDLE) during every run, so that no
               core halts.  On a VM, waking a halted core waits for the host;
               with every core busy that wait is gone, but the host preempts
               busy cores more: for light scenarios (live1), never for a
               target's figures (BENCH_AWAKE=1: the same)
  --list       list the scenarios
Environment: TAILSSE (binary), TS_LOAD, TS_WRITER, TS_HOSTILE (tools),
BENCH_BIG_SIZE (bytes, default 1 GiB), BENCH_DURATION (s, default 20),
BENCH_REPEAT (runs of each throughput measurement, the best is kept;
default 3), BENCH_CONF (extra server keys for every scenario, e.g.
'conn_memory=262144'), BENCH_HOSTILE (looping clients of the hostile
scenario, default 16), BENCH_HOSTILE_SIZE (its big log, default 50M),
BENCH_TLS_KEY (key of the tls-* scenarios' certificate: ec, the default,
for P-256, or rsa for RSA 2048).
EOF
}

TAILSSE_BIN=${TAILSSE:-}
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) SMOKE=1 ;;
	--only|--only=*)
		if [ "$1" = --only ]; then shift; v=${1:-}; else v=${1#--only=}; fi
		[ -n "$v" ] || { echo "run.sh: --only needs a scenario name" >&2; exit 2; }
		ONLY+=" $v" ;;
	--repeat|--repeat=*)
		if [ "$1" = --repeat ]; then shift; RUNS=${1:-}; else RUNS=${1#--repeat=}; fi ;;
	--base|--base=*)
		if [ "$1" = --base ]; then shift; BASE_BIN=${1:-}; else BASE_BIN=${1#--base=}; fi ;;
	--no-nchan) NCHAN=0 ;;
	--awake) AWAKE=1 ;;
	--list) echo "$SCENARIOS"; exit 0 ;;
	-h|--help) usage; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	*) TAILSSE_BIN=$1 ;;
	esac
	shift
done
# several scenarios in one invocation: their figures come from the same
# run (e.g. a multi-log scenario beside its single-log reference)
ONLY=${ONLY//,/ }
case $TLS_KEY in
ec|rsa) ;;
*) echo "run.sh: BENCH_TLS_KEY must be ec or rsa (got '$TLS_KEY')" >&2; exit 2 ;;
esac
for s in $ONLY; do
	if ! [[ " $SCENARIOS smoke " == *" $s "* ]]; then
		echo "run.sh: unknown scenario $s (one of: $SCENARIOS smoke)" >&2
		exit 2
	fi
done
if [ -z "$TAILSSE_BIN" ] || [ ! -x "$TAILSSE_BIN" ]; then
	echo "run.sh: give the tailsse binary as argument or in \$TAILSSE" \
	     "(got '${TAILSSE_BIN}')" >&2
	exit 2
fi
TAILSSE_BIN=$(cd "$(dirname "$TAILSSE_BIN")" && pwd)/$(basename "$TAILSSE_BIN")
case $RUNS in
''|*[!0-9]*) echo "run.sh: --repeat needs a number of runs (got '$RUNS')" >&2; exit 2 ;;
esac
if [ -n "$BASE_BIN" ]; then
	[ -x "$BASE_BIN" ] || { echo "run.sh: --base: $BASE_BIN is not executable" >&2; exit 2; }
	[ "$RUNS" -gt 0 ] || { echo "run.sh: --base needs --repeat N" >&2; exit 2; }
	BASE_BIN=$(cd "$(dirname "$BASE_BIN")" && pwd)/$(basename "$BASE_BIN")
fi
case $AWAKE in
0|1) ;;
*) echo "run.sh: BENCH_AWAKE must be 0 or 1 (got '$AWAKE')" >&2; exit 2 ;;
esac
if [ "$AWAKE" = 1 ]; then
	[ "$RUNS" -gt 0 ] || { echo "run.sh: --awake needs --repeat N" >&2; exit 2; }
	command -v chrt >/dev/null || { echo "run.sh: --awake needs chrt (util-linux)" >&2; exit 2; }
fi
[ "$RUNS" -gt 0 ] && [ -z "${BENCH_DURATION:-}" ] && DURATION=15

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tailsse-bench.XXXXXX") || exit 1
BIGDIR=""
HOSTDIR=""
DAEMON_PID=""
LOAD_PID=""
NGINX_PID=""
TAIL_PID=""
PUB_PID=""
AWAKE_PIDS=()
cleanup() {
	[ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
	awake_stop
	stop_nchan 2>/dev/null
	[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
	[ -n "$BIGDIR" ] && rm -rf "$BIGDIR"
	[ -n "$HOSTDIR" ] && rm -rf "$HOSTDIR"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "run.sh: $*" >&2; }

# ---- tools ----

build_tool() { # NAME -> path on stdout
	local name=$1 var src=$HERE/$1.c
	case $name in
	ts-load) var=${TS_LOAD:-} ;;
	ts-hostile) var=${TS_HOSTILE:-} ;;
	ts-publish) var=${TS_PUBLISH:-} ;;
	*) var=${TS_WRITER:-} ;;
	esac
	if [ -n "$var" ]; then echo "$var"; return 0; fi
	local cand
	for cand in "$PWD/bench/$name" "$HERE/$name"; do
		if [ -x "$cand" ] && [ "$cand" -nt "$src" ]; then
			echo "$cand"; return 0
		fi
	done
	mkdir -p "$WORK/bin"
	# ts-load's --tls needs GnuTLS: without it, ts-load is built without
	# TLS and the tls-* scenarios say n/a
	local tls=() libs=(-lm)
	if [ "$name" = ts-load ] && pkg-config --exists 'gnutls >= 3.6.3' 2>/dev/null; then
		# shellcheck disable=SC2207 # pkg-config's words
		tls=(-DTS_LOAD_TLS $(pkg-config --cflags gnutls))
		# shellcheck disable=SC2207
		libs+=($(pkg-config --libs gnutls))
	fi
	${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE "${tls[@]}" "$src" \
		-o "$WORK/bin/$name" "${libs[@]}" >&2 || return 1
	echo "$WORK/bin/$name"
}
LOAD=$(build_tool ts-load) || { log "cannot build ts-load"; exit 1; }
WRITER=$(build_tool ts-writer) || { log "cannot build ts-writer"; exit 1; }
HOSTILE=$(build_tool ts-hostile) || { log "cannot build ts-hostile"; exit 1; }
PUBLISH=""   # ts-publish: built when the nchan anchor runs

# ---- the daemon ----

CLK_TCK=$(getconf CLK_TCK)

now() { date +%s.%N; }

proc_cpu_s() { # PID TICKS -> seconds of TICKS, an awk sum of $12 (utime)
	# and $13 (stime): after the comm, state is field 3, utime 14, stime 15
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	stat=${stat##*) }
	echo "$stat" | awk -v hz="$CLK_TCK" "{ printf \"%.3f\", ($2) / hz }"
}
cpu_s() { proc_cpu_s "$1" '$12 + $13'; } # PID -> user+system seconds
# PID -> user seconds: the server's own code, where the rest (system time)
# is mostly the kernel's TCP for its sends
cpu_user_s() { proc_cpu_s "$1" '$12'; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

calc() { awk "BEGIN { printf $1 }"; }

# Busy time of the whole machine (all cores), in seconds: to tell how much
# of the run other processes took.
machine_busy_s() {
	awk -v hz="$CLK_TCK" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit }' /proc/stat
}
# Time the hypervisor gave to other guests (steal), all cores, in seconds:
# on a shared VM a core can be taken away for milliseconds at a time, and
# then no process here runs, ours or the reference's.
machine_steal_s() {
	awk -v hz="$CLK_TCK" '/^cpu / { printf "%.2f", $9 / hz; exit }' /proc/stat
}
NCPU=$(getconf _NPROCESSORS_ONLN)

http_ok() { # PORT PATH: the answer is a 200
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
		IFS= read -r -t 2 line <&3 || exit 1
		[[ $line == HTTP/1.?" 200"* ]]
	) 2>/dev/null
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The same over HTTPS (TLS_ARGS set): ts-load is the client; its complaint
# stays in DIR/probe.err for when the daemon never answers.
https_ok() { # PORT PATH DIR
	"$LOAD" -p "$1" -n 1 -u "$2" -d 0 -w 0 -T 2 "${TLS_ARGS[@]}" \
		2>"$3/probe.err" | grep -q ' conns_ok=1 '
}

# ---- TLS ----

# The tls-* scenarios: the daemon with tls_cert and tls_key when TLS_KEYS
# is set, every ts-load with TLS_ARGS; both empty for the others.
TLS_KEYS=()
TLS_ARGS=()

# tls_setup: a self-signed certificate for 127.0.0.1 (and localhost) in
# CUR_DIR, made with openssl as tests/integration/test_tls.py does; sets
# TLS_KEYS, TLS_ARGS (ts-load verifies the certificate with --cafile, as a
# real client does) and TLS_CERT_DESC.  Returns 1 with the reason in
# TLS_WHY when TLS cannot be measured here.
tls_setup() {
	TLS_WHY=""
	if ! command -v openssl >/dev/null 2>&1; then
		TLS_WHY="openssl is not installed; Debian: apt-get install openssl"
		return 1
	fi
	# a ts-load without TLS stops at --tls with status 2, before -h
	if ! "$LOAD" --tls -h >/dev/null 2>&1; then
		TLS_WHY="$LOAD was built without TLS; Debian: apt-get install libgnutls28-dev, then build it again"
		return 1
	fi
	local key
	if [ "$TLS_KEY" = rsa ]; then
		key=(-newkey rsa:2048); TLS_CERT_DESC="RSA 2048 certificate"
	else
		key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); TLS_CERT_DESC="ECDSA P-256 certificate"
	fi
	if ! openssl req -x509 "${key[@]}" -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		-keyout "$CUR_DIR/key.pem" -out "$CUR_DIR/cert.pem" >"$CUR_DIR/openssl.err" 2>&1; then
		TLS_WHY="openssl could not make a certificate: $(tail -1 "$CUR_DIR/openssl.err")"
		return 1
	fi
	TLS_KEYS=("tls_cert=$CUR_DIR/cert.pem" "tls_key=$CUR_DIR/key.pem")
	TLS_ARGS=(--tls --cafile "$CUR_DIR/cert.pem")
}

# What the TLS streams negotiated (ts-load's "TLS:" line in FILE) and the
# certificate, for a row.
tls_desc() { # FILE
	local d
	d=$(sed -n 's/^ts-load: TLS: //p' "$1" | head -1)
	echo "${d:-TLS not negotiated}, $TLS_CERT_DESC"
}

# start_daemon DIR LOGFILE [KEY=VALUE...] [log:NAME=PATH...]: config in
# DIR, sets PORT and DAEMON_PID; LOGFILE is the log "bench" (none when
# empty), each log:NAME=PATH one more log; the [server] keys given override
# the defaults.
start_daemon() {
	local dir=$1 logfile=$2
	shift 2
	mkdir -p "$dir/www"
	for _ in 1 2 3 4 5; do
		PORT=$((20000 + RANDOM % 12000))   # below the ephemeral range
		port_free "$PORT" || continue
		{
			echo "[server]"
			echo "listen = 127.0.0.1:$PORT"
			echo "www = $dir/www"
			local kv
			# shellcheck disable=SC2086 # words on purpose
			for kv in "$@" "${TLS_KEYS[@]}" $BENCH_CONF; do
				[[ $kv == log:* ]] || echo "${kv%%=*} = ${kv#*=}"
			done
			[ -z "$logfile" ] || printf '\n[log bench]\npath = %s\n' "$logfile"
			for kv in "$@"; do
				[[ $kv == log:* ]] || continue
				kv=${kv#log:}
				printf '\n[log %s]\npath = %s\n' "${kv%%=*}" "${kv#*=}"
			done
		} >"$dir/tailsse.conf"
		"$TAILSSE_BIN" -c "$dir/tailsse.conf" >"$dir/daemon.out" 2>"$dir/daemon.err" &
		DAEMON_PID=$!
		local i
		for i in $(seq 50); do
			if [ ${#TLS_KEYS[@]} -gt 0 ]; then
				https_ok "$PORT" /healthz "$dir" && return 0
			else
				http_ok "$PORT" /healthz && return 0
			fi
			kill -0 "$DAEMON_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
		DAEMON_PID=""
		grep -q "in use" "$dir/daemon.err" || break
	done
	log "the daemon did not start:"
	sed 's/^/    /' "$dir/daemon.err" >&2
	[ ! -s "$dir/probe.err" ] || grep -v '^ts-load: [0-9]' "$dir/probe.err" | head -3 | sed 's/^/    /' >&2
	return 1
}

stop_daemon() {
	[ -n "$DAEMON_PID" ] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null
	local i
	for i in $(seq 100); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		log "the daemon did not stop within 10 s on SIGTERM: killing it"
		kill -KILL "$DAEMON_PID" 2>/dev/null
	fi
	wait "$DAEMON_PID" 2>/dev/null
	local rc=$?
	[ "$rc" -eq 0 ] || log "the daemon exited with status $rc"
	# anything the daemon said besides starting and stopping
	local said
	said=$(grep -v -e ': listening on ' -e ': stopping$' "$CUR_DIR/daemon.err" | head -5)
	[ -z "$said" ] || { log "the daemon said:"; echo "$said" | sed 's/^/    /' >&2; }
	DAEMON_PID=""
}

# ---- results ----

ROWS=()
FAILED=0
row() { # SCENARIO RESULT TARGET VERDICT
	ROWS+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"$4")
	printf '%s\n    %s\n    target: %s  [%s]\n' "$1" "$2" "$3" "$4" >&2
	[ "$4" != "FAIL" ] || FAILED=1
}

kv() { # KEY LINE: the value of KEY=VALUE in LINE
	local l=" $2 "
	[[ $l == *" $1="* ]] || { echo ""; return; }
	l=${l#* "$1"=}
	echo "${l%% *}"
}

# run_load DIR ARGS...: ts-load in the background; samples the daemon's CPU
# and RSS when every stream is up (the -R file) and when the client is done.
# Sets RESULT, WROTE, CPU_S (daemon CPU seconds between the two samples),
# WALL_S, RSS0, RSS1.
run_load() {
	local dir=$1
	shift
	rm -f "$dir/ready"
	"$LOAD" -p "$PORT" -R "$dir/ready" "$@" "${TLS_ARGS[@]}" >"$dir/load.out" 2>"$dir/load.err" &
	LOAD_PID=$!
	while [ ! -e "$dir/ready" ] && kill -0 "$LOAD_PID" 2>/dev/null; do
		sleep 0.05
	done
	local c0 t0 c1 t1 m0 m1 s0 s1 u0 u1
	local spid=${SERVER_PID:-$DAEMON_PID}   # nchan: nginx's worker
	c0=$(cpu_s "$spid"); t0=$(now); RSS0=$(rss_kb "$spid")
	u0=$(cpu_user_s "$spid")
	m0=$(machine_busy_s); s0=$(machine_steal_s)
	wait "$LOAD_PID"
	LOAD_RC=$?
	LOAD_PID=""
	c1=$(cpu_s "$spid"); t1=$(now); RSS1=$(rss_kb "$spid")
	m1=$(machine_busy_s); s1=$(machine_steal_s)
	u1=$(cpu_user_s "$spid")
	CPU_S=$(calc "\"%.2f\", $c1 - $c0")
	USER_S=$(calc "\"%.2f\", $u1 - $u0")
	WALL_S=$(calc "\"%.2f\", $t1 - $t0")
	BUSY=$(calc "\"%.1f\", ($m1 - $m0) / ($WALL_S > 0 ? $WALL_S : 1)")
	# percent of the machine's cores taken by the hypervisor
	STEAL=$(calc "\"%.1f\", 100 * ($s1 - $s0) / (($WALL_S > 0 ? $WALL_S : 1) * $NCPU)")
	RESULT=$(grep '^RESULT' "$dir/load.out" | tail -1)
	WROTE=$(grep '^WROTE' "$dir/load.out" | tail -1)
	if [ -z "$RESULT" ]; then
		log "ts-load gave no result (exit $LOAD_RC):"
		tail -5 "$dir/load.err" >&2
	fi
	sed 's/^/    /' "$dir/load.err" | grep -v '^    ts-load: [0-9]' >&2 || true
}

new_dir() { CUR_DIR=$WORK/$1; mkdir -p "$CUR_DIR"; }

# The usual live verdict: every line to every stream, nothing twice.
live_verdict() { # NCONNS
	local ok lost dup comp unexp
	ok=$(kv conns_ok "$RESULT"); lost=$(kv lost "$RESULT")
	dup=$(kv dup "$RESULT"); comp=$(kv streams_complete "$RESULT")
	unexp=$(kv unexpected "$RESULT")
	if [ -n "$RESULT" ] && [ "$ok" = "$1" ] && [ "$lost" = 0 ] &&
	   [ "$dup" = 0 ] && [ "$comp" = "$1" ] && [ "${unexp:-0}" = 0 ] &&
	   [ "${LOAD_RC:-1}" = 0 ]; then
		echo ok
	else
		echo FAIL
	fi
}

live_summary() { # -> one line from RESULT, WROTE and the daemon's CPU
	printf '%s/%s streams, %s lines written (%s/s), %s events (%s/s); ' \
		"$(kv conns_ok "$RESULT")" "$(kv conns "$RESULT")" \
		"$(kv lines "$WROTE")" "$(kv rate "$WROTE")" \
		"$(kv events "$RESULT")" "$(kv events_per_s "$RESULT")"
	printf 'lost %s dup %s reord %s, complete %s; ' \
		"$(kv lost "$RESULT")" "$(kv dup "$RESULT")" \
		"$(kv reordered "$RESULT")" "$(kv streams_complete "$RESULT")"
	printf 'latency p50 %s ms p99 %s ms max %s ms; ' \
		"$(kv p50_ms "$RESULT")" "$(kv p99_ms "$RESULT")" "$(kv max_ms "$RESULT")"
	printf 'server RSS %s -> %s MiB, ' "$((RSS0 / 1024))" "$((RSS1 / 1024))"
	printf 'server CPU %s s in %s s (%s%% of a core), client CPU %s s; machine %s of %s cores busy (steal %s%%)' \
		"$CPU_S" "$WALL_S" "$(calc "\"%.0f\", 100 * $CPU_S / ($WALL_S > 0 ? $WALL_S : 1)")" \
		"$(kv client_cpu_s "$RESULT")" "$BUSY" "$NCPU" "$STEAL"
}

# live NAME LABEL NCONNS RATE SECONDS [extra ts-load args] -- [extra writer args]
live() {
	local name=$1 label=$2 n=$3 rate=$4 secs=$5
	shift 5
	local largs=() wargs=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do largs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	wargs=("$@")
	new_dir "$name"
	: >"$CUR_DIR/app.log"
	# the caller makes the row: LIVE_LINE says what happened
	start_daemon "$CUR_DIR" "$CUR_DIR/app.log" "max_clients=$((n + 100))" || {
		LIVE_LINE="daemon did not start"; LIVE_VERDICT=FAIL; RESULT=""; return; }
	local lines
	lines=$(calc "\"%d\", $rate * $secs")
	local wcmd
	wcmd=$(printf '%q ' "$WRITER" -f "$CUR_DIR/app.log" -r "$rate" -s 100 -d "$secs" "${wargs[@]}")
	run_load "$CUR_DIR" -n "$n" -r 2000 -u "/api/logs/bench/events?tail=0" \
		-e "$lines" -w 5 -x "$wcmd" "${largs[@]}"
	stop_daemon
	LIVE_VERDICT=$(live_verdict "$n")
	LIVE_LINE=$(live_summary)
}


# ---- repeat mode (--repeat N) and the nchan anchor ----

NCHAN_MODULE=${BENCH_NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}
NGINX_BIN=${BENCH_NGINX:-$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)}
SERVER_PID=""

# Can the nchan anchor run?  Builds ts-publish; NCHAN_WHY says why not.
nchan_ready() {
	NCHAN_WHY=""
	case $NCHAN in
	0|no|off) NCHAN_WHY="off (--no-nchan / BENCH_NCHAN=0)"; return 1 ;;
	esac
	if [ ! -x "$NGINX_BIN" ]; then
		NCHAN_WHY="nginx is not installed (sh scripts/setup.sh --bench)"; return 1
	fi
	if [ ! -e "$NCHAN_MODULE" ]; then
		NCHAN_WHY="no nchan module at $NCHAN_MODULE (sh scripts/setup.sh --bench)"; return 1
	fi
	if [ -z "$PUBLISH" ]; then
		PUBLISH=$(build_tool ts-publish) || { NCHAN_WHY="cannot build ts-publish"; PUBLISH=""; return 1; }
	fi
}

# nginx with bench/nchan.conf in DIR on a free port: sets PORT, NGINX_PID
# and SERVER_PID (its worker, whose CPU and RSS run_load samples).
start_nchan() {
	local dir=$1 i
	for _ in 1 2 3 4 5; do
		PORT=$((20000 + RANDOM % 12000))
		port_free "$PORT" || continue
		sed -e "s|@PORT@|$PORT|g" -e "s|@DIR@|$dir|g" \
		    -e "s|@WORKERS@|$NCHAN_WORKERS|g" \
		    -e "s|@MODULE@|load_module $NCHAN_MODULE;|" \
		    "$HERE/nchan.conf" >"$dir/nchan.conf"
		"$NGINX_BIN" -p "$dir" -c "$dir/nchan.conf" -g 'daemon off;' \
			>"$dir/daemon.out" 2>"$dir/daemon.err" &
		NGINX_PID=$!
		for i in $(seq 50); do
			if http_ok "$PORT" /healthz; then
				SERVER_PID=$(pgrep -P "$NGINX_PID" | head -1)
				return 0
			fi
			kill -0 "$NGINX_PID" 2>/dev/null || break
			sleep 0.1
		done
		stop_nchan
		grep -q "in use" "$dir/daemon.err" "$dir/nginx.err" 2>/dev/null || break
	done
	log "nginx did not start:"
	cat "$dir/daemon.err" "$dir/nginx.err" 2>/dev/null | head -5 | sed 's/^/    /' >&2
	return 1
}

stop_nchan() {
	local p
	for p in "$PUB_PID" "$TAIL_PID" "$NGINX_PID"; do
		[ -n "$p" ] || continue
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PUB_PID=""; TAIL_PID=""; NGINX_PID=""; SERVER_PID=""
}

# The same live run as `live`, served by nginx+nchan: `tail -n 0 -F` of the
# log piped into ts-publish, which POSTs each line to /pub over one
# keep-alive connection; ts-load subscribes to /sub (EventSource: "id:
# TIME:TAG", "data: LINE", the line as ts-writer wrote it, so ts-load
# measures it as it measures tailsse).
live_nchan() { # NAME NCONNS RATE SECONDS
	local name=$1 n=$2 rate=$3 secs=$4
	new_dir "$name"
	: >"$CUR_DIR/app.log"
	start_nchan "$CUR_DIR" || {
		LIVE_LINE="nginx did not start"; LIVE_VERDICT=FAIL; RESULT=""; return; }
	mkfifo "$CUR_DIR/lines"
	tail -n 0 -F "$CUR_DIR/app.log" >"$CUR_DIR/lines" 2>"$CUR_DIR/tail.err" &
	TAIL_PID=$!
	"$PUBLISH" -p "$PORT" -u /pub <"$CUR_DIR/lines" 2>"$CUR_DIR/publish.err" &
	PUB_PID=$!
	# tail follows once its inotify watch is set
	local i f
	for i in $(seq 100); do
		for f in "/proc/$TAIL_PID/fd/"*; do
			[[ $(readlink "$f" 2>/dev/null) == *inotify* ]] && break 2
		done
		sleep 0.02
	done
	local wcmd
	wcmd=$(printf '%q ' "$WRITER" -f "$CUR_DIR/app.log" -r "$rate" -s 100 -d "$secs")
	run_load "$CUR_DIR" -n "$n" -r 2000 -u "/sub" -e "$(calc "\"%d\", $rate * $secs")" \
		-w 5 -x "$wcmd"
	stop_nchan
	grep -v '^PUBLISHED' "$CUR_DIR/publish.err" | head -3 | sed 's/^/    /' >&2
	local pub
	pub=$(grep '^PUBLISHED' "$CUR_DIR/publish.err" | tail -1)
	LIVE_VERDICT=$(live_verdict "$n")
	LIVE_LINE="$(live_summary); feed: ${pub#PUBLISHED }"
}

# Values of one metric over runs: "min / median / max" (the median of an
# even count is the mean of the middle two).
dist() { # VALUES...
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) { print "-"; exit }
		      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%s / %.3f / %s", v[1], m, v[NR] }'
}
median() { dist "$@" | awk -F' / ' '{ print $2 }'; }
maxof() { dist "$@" | awk -F' / ' '{ print $3 }'; }

# --awake: one SCHED_IDLE spinner per core while a run lasts.  A core that
# runs something never halts, so a wake-up on it is the guest's own
# scheduling, not the host's; SCHED_IDLE yields to any other task at once.
awake_start() {
	[ "$AWAKE" = 1 ] || return 0
	local i
	for i in $(seq "$NCPU"); do
		chrt --idle 0 bash -c 'while :; do :; done' &
		AWAKE_PIDS+=($!)
	done
}
awake_stop() {
	[ ${#AWAKE_PIDS[@]} -gt 0 ] || return 0
	kill "${AWAKE_PIDS[@]}" 2>/dev/null
	wait "${AWAKE_PIDS[@]}" 2>/dev/null
	AWAKE_PIDS=()
}

# ACC[SYS:METRIC]: the runs' values, space-separated
declare -A ACC
REP_COLS="p50 p90 p99 p999 max delivered late_p99 late_max write_max cpu user steal"

# Record the run that just ended (RESULT, WROTE, CPU_S) for SYS; prints it.
record_run() { # SYS RUN NCONNS
	local sys=$1 i=$2 n=$3 lines events deliv c
	lines=$(kv lines "$WROTE"); events=$(kv events "$RESULT")
	deliv=$(calc "\"%.3f\", 100 * ${events:-0} / ((${lines:-0} > 0 ? ${lines:-0} : 1) * $n)")
	local -A v=(
		[p50]=$(kv p50_ms "$RESULT") [p90]=$(kv p90_ms "$RESULT")
		[p99]=$(kv p99_ms "$RESULT") [p999]=$(kv p999_ms "$RESULT")
		[max]=$(kv max_ms "$RESULT") [delivered]=$deliv
		[late_p99]=$(kv late_p99_ms "$WROTE") [late_max]=$(kv late_max_ms "$WROTE")
		[write_max]=$(kv write_max_ms "$WROTE") [cpu]=$CPU_S
		[user]=$USER_S [steal]=$STEAL
	)
	for c in $REP_COLS; do
		ACC[$sys:$c]="${ACC[$sys:$c]:-} ${v[$c]:-0}"
	done
	[ "$(kv lost "$RESULT")" = 0 ] && [ "$(kv streams_complete "$RESULT")" = "$n" ] ||
		ACC[$sys:incomplete]=$(( ${ACC[$sys:incomplete]:-0} + 1 ))
	printf '  run %2d %-7s p50 %7s  p90 %7s  p99 %7s  p99.9 %7s  max %8s ms  delivered %s%%  writer: late p99 %s max %s ms, write max %s ms, over 1 ms %s+%s ticks; server CPU %s s (user %s s); machine %s/%s busy, steal %s%%\n' \
		"$i" "$sys" "${v[p50]}" "${v[p90]}" "${v[p99]}" "${v[p999]}" "${v[max]}" \
		"$deliv" "${v[late_p99]}" "${v[late_max]}" "${v[write_max]}" \
		"$(kv late_over1ms "$WROTE")" "$(kv write_over1ms "$WROTE")" "$CPU_S" "$USER_S" "$BUSY" "$NCPU" \
		"${v[steal]}" |
		tee -a "$WORK/repeat.txt" >&2
}

# The distribution table of a scenario's runs, per system.
repeat_table() { # SYSTEMS...
	local sys c
	printf '  %-7s %s\n' "system" "min / median / max over runs: $(echo $REP_COLS | sed 's/ /, /g') (ms; delivered %; cpu, user s; steal %)"
	for sys in "$@"; do
		for c in $REP_COLS; do
			# shellcheck disable=SC2086 # the values, one word each
			printf '  %-7s %-10s %s\n' "$sys" "$c" "$(dist ${ACC[$sys:$c]})"
		done
	done
}

# repeat_live NAME LABEL NCONNS RATE: RUNS runs of a live scenario for
# tailsse, and for base (--base) and nchan (when installed), each run of
# each on a fresh file and a fresh server, the order rotated run by run;
# then the distributions and the issue's targets for the scenario.
repeat_live() {
	local name=$1 label=$2 n=$3 rate=$4
	local systems=(tailsse) i k sys
	[ -z "$BASE_BIN" ] || systems+=(base)
	if nchan_ready; then systems+=(nchan); else log "nchan anchor: $NCHAN_WHY"; fi
	local ns=${#systems[@]} main=$TAILSSE_BIN
	ACC=()
	local awake=""
	[ "$AWAKE" = 1 ] && awake=", cores kept awake (--awake)"
	echo "== $label: $RUNS runs each of ${systems[*]}, ${DURATION} s$awake" | tee -a "$WORK/repeat.txt" >&2
	for i in $(seq "$RUNS"); do
		for k in $(seq 0 $((ns - 1))); do
			sys=${systems[$(( (i - 1 + k) % ns ))]}
			awake_start
			case $sys in
			nchan) live_nchan "$name-$sys-$i" "$n" "$rate" "$DURATION" ;;
			base) TAILSSE_BIN=$BASE_BIN
			      live "$name-$sys-$i" "" "$n" "$rate" "$DURATION" ;;
			*) TAILSSE_BIN=$main
			   live "$name-$sys-$i" "" "$n" "$rate" "$DURATION" ;;
			esac
			TAILSSE_BIN=$main
			awake_stop
			record_run "$sys" "$i" "$n"
			rm -f "$CUR_DIR/app.log"
		done
	done
	repeat_table "${systems[@]}" | tee -a "$WORK/repeat.txt" >&2
	# the issue's targets, for tailsse
	local t=${ACC[tailsse:p99]} verdict=ok why="" x
	case $name in
	live1)
		x=$(maxof $t)
		awk "BEGIN { exit !($x <= 1) }" || { verdict=FAIL; why="worst p99 $x ms > 1"; }
		why=${why:-"worst p99 $x ms"} ;;
	live100)
		local p90max p99med nmed
		p90max=$(maxof ${ACC[tailsse:p90]}); p99med=$(median $t)
		why="worst p90 $p90max ms, median p99 $p99med ms"
		awk "BEGIN { exit !($p90max <= 1 && $p99med <= 2) }" || verdict=FAIL
		if [ -n "${ACC[nchan:p99]:-}" ]; then
			nmed=$(median ${ACC[nchan:p99]})
			why="$why, nchan median p99 $nmed ms (ratio $(calc "\"%.2f\", $p99med / ($nmed > 0 ? $nmed : 1)"))"
			awk "BEGIN { exit !($p99med <= $nmed / 2) }" || verdict=FAIL
		fi ;;
	*)
		x=$(maxof $t)
		why="worst p99 $x ms, worst delivered $(dist ${ACC[tailsse:delivered]} | awk -F' / ' '{ print $1 }')%"
		[ "${ACC[tailsse:incomplete]:-0}" = 0 ] || { verdict=FAIL; why="$why, ${ACC[tailsse:incomplete]} runs incomplete"; }
		if [ "$name" = live1k ]; then
			awk "BEGIN { exit !($x <= 50) }" || verdict=FAIL
		fi ;;
	esac
	for sys in "${systems[@]}"; do
		why="$why; $sys p50/p90/p99 medians $(median ${ACC[$sys:p50]})/$(median ${ACC[$sys:p90]})/$(median ${ACC[$sys:p99]}) ms"
	done
	# paired: the same round's runs (on a noisy machine the medians of two
	# builds can differ by chance; how often one wins a round says more)
	if [ -n "$BASE_BIN" ]; then
		local c w
		why="$why; rounds where tailsse < base:"
		for c in p50 p90 p99; do
			w=$(paste -d' ' <(echo ${ACC[tailsse:$c]} | tr ' ' '\n') \
				<(echo ${ACC[base:$c]} | tr ' ' '\n') |
				awk '$1 < $2 { w++ } END { print w + 0 }')
			why="$why $c $w/$RUNS"
		done
	fi
	# the machine: a sleeper waking every 1 ms (the writer) late by more
	# than 1 ms at p99 means no server can be under that at p99 there
	why="$why; runs whose writer slip p99 <= 1 ms: $(echo ${ACC[tailsse:late_p99]} | tr ' ' '\n' | awk '$1 <= 1 { w++ } END { print w + 0 }')/$RUNS"
	# and whose cores the hypervisor left alone (steal: of both cores);
	# the runs where it nearly did, apart (steal <= 2 %)
	why="$why; median steal $(median ${ACC[tailsse:steal]})%"
	why="$why; runs with steal <= 2 %: $(paste -d' ' \
		<(echo ${ACC[tailsse:steal]} | tr ' ' '\n') \
		<(echo ${ACC[tailsse:p90]} | tr ' ' '\n') \
		<(echo ${ACC[tailsse:p99]} | tr ' ' '\n') |
		awk '$1 <= 2 { n++; if ($2 > p90) p90 = $2; if ($3 > p99) p99 = $3 }
		     END { if (n) printf "%d, worst p90 %s ms, worst p99 %s ms", n, p90, p99
			   else printf "0" }')"
	row "$label, $RUNS runs$awake" "$why" "$REP_TARGET" "$verdict"
}

# ---- the big file ----

BIG=""
big_file() {
	[ -n "$BIG" ] && return 0
	BIGDIR=$(mktemp -d /var/tmp/tailsse-bench.XXXXXX) || return 1
	BIG=$BIGDIR/big.log
	log "generating $BIG_SIZE bytes in $BIG"
	"$WRITER" -f "$BIG" -g "$BIG_SIZE" >"$BIGDIR/gen.out" || return 1
	cat "$BIGDIR/gen.out" >&2
	BIG_BYTES=$(stat -c %s "$BIG")
	BIG_INO=$(stat -c %i "$BIG")
	if [ "$BIG_BYTES" -ge 1073741824 ]; then
		BIG_LABEL=$(calc "\"%.1f GiB\", $BIG_BYTES / 1073741824")
	else
		BIG_LABEL=$(calc "\"%.0f MiB\", $BIG_BYTES / 1048576")
	fi
	cat "$BIG" >/dev/null   # into the page cache
}

# ---- scenarios ----

sc_smoke() {
	live smoke "smoke: 20 streams x 200 lines/s x 2 s" 20 200 2
	row "smoke: 20 streams x 200 lines/s, 2 s" "$LIVE_LINE" \
		"lossless" "$LIVE_VERDICT"
}

IDLE_HB=10     # heartbeat of the idle scenarios, s
IDLE_HOLD=25   # how long their streams stay open, s

# idle_hold N PATH [ts-load args]: N streams on PATH against the running
# daemon, held IDLE_HOLD s; the daemon's RSS before the first connection and
# with every stream open, its CPU over 20 s of idleness once all are up (two
# heartbeat rounds).  Stops the daemon; sets RESULT, IDLE_RSS0, IDLE_RSS1,
# IDLE_CPU, IDLE_WALL and IDLE_BUSY.
idle_hold() {
	local n=$1 path=$2
	shift 2
	sleep 0.5
	IDLE_RSS0=$(rss_kb "$DAEMON_PID")
	rm -f "$CUR_DIR/ready"
	"$LOAD" -p "$PORT" -R "$CUR_DIR/ready" -n "$n" -r 2000 -u "$path" \
		-d "$IDLE_HOLD" -w 0 "$@" "${TLS_ARGS[@]}" >"$CUR_DIR/load.out" 2>"$CUR_DIR/load.err" &
	LOAD_PID=$!
	while [ ! -e "$CUR_DIR/ready" ] && kill -0 "$LOAD_PID" 2>/dev/null; do
		sleep 0.05
	done
	sleep 1
	local c0 t0 c1 t1 m0 m1
	c0=$(cpu_s "$DAEMON_PID"); t0=$(now); m0=$(machine_busy_s)
	sleep 20
	c1=$(cpu_s "$DAEMON_PID"); t1=$(now); m1=$(machine_busy_s)
	IDLE_RSS1=$(rss_kb "$DAEMON_PID")
	wait "$LOAD_PID"
	LOAD_RC=$?
	LOAD_PID=""
	stop_daemon
	RESULT=$(grep '^RESULT' "$CUR_DIR/load.out" | tail -1)
	sed 's/^/    /' "$CUR_DIR/load.err" >&2
	IDLE_CPU=$(calc "\"%.3f\", $c1 - $c0")
	IDLE_WALL=$(calc "\"%.1f\", $t1 - $t0")
	IDLE_BUSY=$(calc "\"%.1f\", ($m1 - $m0) / $IDLE_WALL")
}

idle_per() { # N: KiB of daemon RSS per stream (or connection)
	calc "\"%.2f\", ($IDLE_RSS1 - $IDLE_RSS0) / ($1 > 0 ? $1 : 1)"
}

# idle_line N UNIT: idle_hold's figures in words, per UNIT (stream,
# connection).
idle_line() {
	local n=$1 unit=$2 pings
	pings=$(kv pings "$RESULT")
	echo "$(kv conns_ok "$RESULT")/$n up in $(kv connect_s "$RESULT") s; daemon RSS $((IDLE_RSS0 / 1024)) MiB idle -> $((IDLE_RSS1 / 1024)) MiB: $(idle_per "$n") KiB/$unit; CPU $IDLE_CPU s in $IDLE_WALL s ($(calc "\"%.2f\", 100 * $IDLE_CPU / $IDLE_WALL")% of a core) with heartbeat $IDLE_HB s; pings received $pings ($(calc "\"%.1f\", $pings / ($n > 0 ? $n : 1)")/$unit in $IDLE_HOLD s), closed by server $(kv closed_early "$RESULT"); machine $IDLE_BUSY of $NCPU cores busy"
}

# idle_streams N LABEL: N idle streams of one log in CUR_DIR, held as
# idle_hold does (over HTTPS when tls_setup ran), and their row; fewer when
# the open-file hard limit is lower, which the row says.
idle_streams() {
	local n=$1 label=$2 hard
	hard=$(ulimit -Hn)
	if [ "$hard" != unlimited ] && [ "$hard" -lt $((n + 200)) ]; then
		log "open-file hard limit is $hard: scaling the idle scenario" \
		    "down to $((hard - 200)) streams (raise it with ulimit -Hn / LimitNOFILE)"
		label="$label (scaled down to $((hard - 200)): ulimit -Hn $hard)"
		n=$((hard - 200))
	fi
	ulimit -Sn "$hard" 2>/dev/null   # the daemon inherits it
	: >"$CUR_DIR/app.log"
	start_daemon "$CUR_DIR" "$CUR_DIR/app.log" "max_clients=$n" \
		"heartbeat=$IDLE_HB" || { row "$label" "daemon did not start" "-" FAIL; return; }
	idle_hold "$n" "/api/logs/bench/events?tail=0"
	local res verdict=FAIL
	res=$(idle_line "$n" stream)
	if [ ${#TLS_ARGS[@]} -gt 0 ]; then
		res="$(tls_desc "$CUR_DIR/load.err"); $res; client RSS $(($(kv client_maxrss_kb "$RESULT") / 1024)) MiB"
	fi
	[ "$(kv conns_ok "$RESULT")" = "$n" ] && [ "$(kv closed_early "$RESULT")" = 0 ] && verdict=ok
	row "$label" "$res" "all connected; RSS/stream and CPU between heartbeats reported" "$verdict"
}

sc_idle10k() {
	new_dir idle10k
	idle_streams 10000 "idle: 10000 streams"
}

# idle_tls NAME N: N idle streams over HTTPS: what a TLS session adds to
# a stream's memory (compare idle10k).
idle_tls() {
	local label="idle TLS: $2 streams"
	new_dir "$1"
	tls_setup || { row "$label" "n/a ($TLS_WHY)" "-" n/a; return; }
	idle_streams "$2" "$label"
}

sc_tls_idle1k() { idle_tls tls-idle1k 1000; }
sc_tls_idle10k() { idle_tls tls-idle10k 10000; }

# ---- several logs on one connection (/api/events) ----

# multi_logs DIR N: N empty logs m0..m{N-1} in DIR; sets MLOG_CONF (the
# start_daemon arguments that declare them) and MLOG_QUERY (log=m0&log=m1...).
multi_logs() {
	local dir=$1 n=$2 i
	MLOG_CONF=()
	MLOG_QUERY=""
	for ((i = 0; i < n; i++)); do
		: >"$dir/m$i.log"
		MLOG_CONF+=("log:m$i=$dir/m$i.log")
		MLOG_QUERY+="${MLOG_QUERY:+&}log=m$i"
	done
}

# writers_cmd DIR SECONDS RATE...: the sh command that runs one ts-writer
# per rate, the i-th on DIR/mi.log, all at once, each with its own output
# (DIR/writeri.out: their WROTE lines must not mix); it exits non-zero
# when one of them failed (a bare `wait` would always say 0).
writers_cmd() {
	local dir=$1 secs=$2 i=0 rate cmd="" pids=""
	shift 2
	for rate in "$@"; do
		cmd+="$(printf '%q ' "$WRITER" -f "$dir/m$i.log" -r "$rate" -s 100 -d "$secs")"
		cmd+=">$(printf %q "$dir/writer$i.out") & p$i=\$!; "
		pids+=" \$p$i"
		i=$((i + 1))
	done
	echo "${cmd}rc=0; for p in$pids; do wait \$p || rc=1; done; exit \$rc"
}

# multi_wrote DIR: one WROTE line for all the writers of DIR (lines and
# rates summed), for live_summary.
multi_wrote() {
	cat "$1"/writer*.out 2>/dev/null | awk '
		/^WROTE/ { n++; for (i = 2; i <= NF; i++) { split($i, f, "="); s[f[1]] += f[2] } }
		END { printf "WROTE lines=%d rate=%.1f writers=%d\n", s["lines"], s["rate"], n }'
}

# 100 connections, each on the same 4 logs written at 250 lines/s each:
# lines are accounted per (connection, log).
sc_multi100() {
	local n=100 nlogs=4 rate=250 i rates=()
	local label="multi: $n connections x $nlogs logs x $rate lines/s each, ${DURATION} s"
	local target="lossless, p99 <= 5 ms"
	new_dir multi100
	multi_logs "$CUR_DIR" "$nlogs"
	start_daemon "$CUR_DIR" "" "max_clients=$((n + 100))" "${MLOG_CONF[@]}" || {
		row "$label" "daemon did not start" "$target" FAIL; return; }
	for ((i = 0; i < nlogs; i++)); do rates+=("$rate"); done
	run_load "$CUR_DIR" --multi -n "$n" -r 2000 -u "/api/events?$MLOG_QUERY" \
		-e $((rate * DURATION)) -w 5 \
		-x "$(writers_cmd "$CUR_DIR" "$DURATION" "${rates[@]}")"
	stop_daemon
	WROTE=$(multi_wrote "$CUR_DIR")
	local verdict
	verdict=$(live_verdict "$n")
	awk -v a="$(kv p99_ms "$RESULT")" 'BEGIN { exit !(a != "" && a <= 5) }' ||
		verdict=FAIL
	row "$label" "$(live_summary); (connection, log) complete $(kv logs_complete "$RESULT") of $((n * nlogs)); unexpected $(kv unexpected "$RESULT")" \
		"$target" "$verdict"
}

# 1,000 idle connections, each on the same 8 logs: the memory a merged
# connection costs.
sc_idle1k8() {
	local n=1000 nlogs=8
	local label="idle: $n connections x $nlogs logs"
	local target="all connected, <= 16 KiB/connection; CPU between heartbeats reported"
	new_dir idle1k8
	multi_logs "$CUR_DIR" "$nlogs"
	ulimit -Sn "$(ulimit -Hn)" 2>/dev/null   # the daemon inherits it
	start_daemon "$CUR_DIR" "" "max_clients=$((n + 100))" "heartbeat=$IDLE_HB" \
		"${MLOG_CONF[@]}" || { row "$label" "daemon did not start" "$target" FAIL; return; }
	idle_hold "$n" "/api/events?$MLOG_QUERY&tail=0" --multi
	local res verdict=FAIL
	res=$(idle_line "$n" connection)
	[ "$(kv conns_ok "$RESULT")" = "$n" ] && [ "$(kv closed_early "$RESULT")" = 0 ] &&
		awk -v k="$(idle_per "$n")" 'BEGIN { exit !(k <= 16) }' && verdict=ok
	row "$label" "$res" "$target" "$verdict"
}

# live100's figures, for tls-live100 to compare with when it runs right
# after it (same invocation: same machine conditions)
PLAIN100=""

sc_live1() {
	if [ "$RUNS" -gt 0 ]; then
		REP_TARGET="p99 <= 1 ms in every run"
		repeat_live live1 "live: 1 stream x 1000 lines/s" 1 1000
		return
	fi
	live live1 "" 1 1000 "$DURATION"
	row "live: 1 stream x 1000 lines/s (100 B), ${DURATION} s" "$LIVE_LINE" \
		"lossless; p50/p99" "$LIVE_VERDICT"
}

sc_live100() {
	if [ "$RUNS" -gt 0 ]; then
		REP_TARGET="p90 <= 1 ms in every run, median p99 <= 2 ms and <= half of nchan's"
		repeat_live live100 "live: 100 streams x 1000 lines/s" 100 1000
		return
	fi
	live live100 "" 100 1000 "$DURATION"
	row "live: 100 streams x 1000 lines/s (100 B), ${DURATION} s" "$LIVE_LINE" \
		"lossless; p50/p99" "$LIVE_VERDICT"
	[ -z "$RESULT" ] || PLAIN100="$RESULT cpu=$CPU_S wall=$WALL_S"
}

# What TLS costs beside plain HTTP: ratios of tls-live100's figures (RESULT,
# CPU_S, WALL_S) to live100's (PLAIN100).
tls_vs_plain() {
	local p=$PLAIN100 tls plain
	tls=$(calc "\"%.4f\", $CPU_S / ($WALL_S > 0 ? $WALL_S : 1)")
	plain=$(calc "\"%.4f\", $(kv cpu "$p") / ($(kv wall "$p") > 0 ? $(kv wall "$p") : 1)")
	printf 'vs plain live100 of this run: server CPU %s%% vs %s%% of a core (x%s), ' \
		"$(calc "\"%.0f\", 100 * $tls")" "$(calc "\"%.0f\", 100 * $plain")" \
		"$(calc "\"%.2f\", $tls / ($plain > 0 ? $plain : 1)")"
	printf 'client CPU %s vs %s s, latency p50 %s vs %s ms, p99 %s vs %s ms' \
		"$(kv client_cpu_s "$RESULT")" "$(kv client_cpu_s "$p")" \
		"$(kv p50_ms "$RESULT")" "$(kv p50_ms "$p")" \
		"$(kv p99_ms "$RESULT")" "$(kv p99_ms "$p")"
}

sc_tls_live100() {
	local label="live TLS: 100 streams x 1000 lines/s (100 B), ${DURATION} s"
	local target="lossless; p50/p99 beside plain live100 (--only live100,tls-live100)"
	new_dir tls-live100
	tls_setup || { row "$label" "n/a ($TLS_WHY)" "$target" n/a; return; }
	live tls-live100 "" 100 1000 "$DURATION"
	local res
	res="$(tls_desc "$CUR_DIR/load.err"); $LIVE_LINE"
	[ -z "$PLAIN100" ] || res="$res; $(tls_vs_plain)"
	row "$label" "$res" "$target" "$LIVE_VERDICT"
}

sc_live1k() {
	if [ "$RUNS" -gt 0 ]; then
		REP_TARGET="100 % delivered in every run, worst p99 <= 50 ms"
		repeat_live live1k "live: 1000 streams x 1000 lines/s" 1000 1000
		return
	fi
	live live1k "" 1000 1000 "$DURATION"
	row "live: 1000 streams x 1000 lines/s, ${DURATION} s" "$LIVE_LINE" \
		"every line to every stream within run + 5 s; p99" "$LIVE_VERDICT"
}

sc_live100x10k() {
	if [ "$RUNS" -gt 0 ]; then
		REP_TARGET="lossless in every run"
		repeat_live live100x10k "live: 100 streams x 10000 lines/s" 100 10000
		return
	fi
	live live100x10k "" 100 10000 "$DURATION"
	row "live: 100 streams x 10000 lines/s, ${DURATION} s" "$LIVE_LINE" \
		"every line to every stream within run + 5 s; p99" "$LIVE_VERDICT"
}

# best_replay PATH: the replay of the big file through PATH, REPEAT times;
# RESULT, CPU_S and BUSY are those of the fastest run.
best_replay() {
	local i best="" bcpu="" bbusy="" bs=0
	for i in $(seq "$REPEAT"); do
		run_load "$CUR_DIR" -n 1 -u "$1" --replay-bytes "$BIG_BYTES" -d 300 -w 0
		local s
		s=$(kv file_bytes_per_s "$RESULT")
		log "replay $i/$REPEAT: $(calc "\"%.0f\", ${s:-0} / 1e6") MB/s of file"
		if [ -n "$s" ] && [ "$(kv streams_complete "$RESULT")" = 1 ] &&
		   awk "BEGIN { exit !($s > $bs) }"; then
			best=$RESULT; bcpu=$CPU_S; bbusy=$BUSY; bs=$s
		fi
	done
	if [ -n "$best" ]; then
		RESULT=$best; CPU_S=$bcpu; BUSY=$bbusy
	fi
}

sc_replay() {
	big_file || { row "replay" "cannot generate the file" "-" FAIL; return; }
	new_dir replay
	start_daemon "$CUR_DIR" "$BIG" || { row "replay" "daemon did not start" "-" FAIL; return; }
	best_replay "/api/logs/bench/events?lastEventId=$BIG_INO:0"
	stop_daemon
	local fbps bps res verdict=FAIL
	fbps=$(kv file_bytes_per_s "$RESULT")
	bps=$(calc "\"%.0f\", $(kv bytes "$RESULT") / ($(kv replay_s "$RESULT") + 1e-9)")
	res="$(calc "\"%.1f\", $BIG_BYTES / 1048576") MiB file, $(kv events "$RESULT") events in $(kv replay_s "$RESULT") s: file $(calc "\"%.2f\", $fbps / 1e9") GB/s, SSE $(calc "\"%.2f\", $bps / 1e9") GB/s on the wire ($(calc "\"%.0f\", $(kv events "$RESULT") / ($(kv replay_s "$RESULT") + 1e-9)") events/s), best of $REPEAT; server CPU $CPU_S s, client CPU $(kv client_cpu_s "$RESULT") s; machine $BUSY of $NCPU cores busy"
	[ "$(kv streams_complete "$RESULT")" = 1 ] && verdict=ok
	row "replay: 1 stream, $BIG_LABEL from offset 0" "$res" "GB/s of SSE delivered" "$verdict"
}

sc_tail() {
	big_file || { row "tail" "cannot generate the file" "-" FAIL; return; }
	new_dir tail
	start_daemon "$CUR_DIR" "$BIG" || { row "tail" "daemon did not start" "-" FAIL; return; }
	# 20 connections, one every 100 ms: each is served mostly alone
	run_load "$CUR_DIR" -n 20 -r 10 -P 1 -u "/api/logs/bench/events?tail=1000" \
		-e 1000 -d 30 -w 0
	stop_daemon
	local res verdict=FAIL
	res="20 connections one after another: first line after p50 $(kv ttfb_p50_ms "$RESULT") ms, max $(kv ttfb_max_ms "$RESULT") ms; all 1000 lines after p50 $(kv complete_p50_ms "$RESULT") ms, max $(kv complete_max_ms "$RESULT") ms; events $(kv events "$RESULT") (expect 20000)"
	[ "$(kv streams_complete "$RESULT")" = 20 ] && [ "$(kv events "$RESULT")" = 20000 ] && verdict=ok
	row "tail=1000 on a $BIG_LABEL file" "$res" "time to first byte" "$verdict"
}

# GET /api/logs/bench/lines?before=ID&n=100 at a line start in the middle
# of the big file, 20 times: the time of each answer (curl's time_total:
# connect to the last byte), and 100 lines each.
sc_lines() {
	big_file || { row "lines" "cannot generate the file" "-" FAIL; return; }
	command -v curl >/dev/null || { row "lines" "n/a: no curl" "-" ok; return; }
	new_dir lines
	start_daemon "$CUR_DIR" "$BIG" || { row "lines" "daemon did not start" "-" FAIL; return; }
	local size ino mid first off times t n ok=0 i
	size=$(stat -c %s "$BIG")
	ino=$(stat -c %i "$BIG")
	mid=$((size / 2))
	# the rest of the line the middle falls in, its newline included
	first=$(tail -c +$((mid + 1)) "$BIG" | head -c 65536 | awk 'NR == 1 { print length($0) + 1; exit }')
	off=$((mid + first))
	times=""
	for i in $(seq 20); do
		t=$(curl -s -o "$CUR_DIR/lines.json" -w '%{time_total}' \
			"http://127.0.0.1:$PORT/api/logs/bench/lines?before=$ino:$off&n=100")
		n=$(grep -o '"id":' "$CUR_DIR/lines.json" | wc -l)
		[ "$n" = 100 ] && ok=$((ok + 1))
		times="$times $t"
	done
	stop_daemon
	local res verdict=FAIL p50 max
	p50=$(echo $times | tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] * 1000 }')
	max=$(echo $times | tr ' ' '\n' | sort -n | awk 'END { printf "%.2f", $1 * 1000 }')
	res="20 requests for the 100 lines before the middle: p50 $p50 ms, max $max ms (connect to last byte); $ok of 20 with 100 lines"
	[ "$ok" = 20 ] && awk "BEGIN { exit !($max < 5) }" && verdict=ok
	row "lines: 100 before the middle of a $BIG_LABEL file" "$res" "under 5 ms" "$verdict"
}

# Does the daemon implement grep=?  A valid pattern must be a 200 and an
# invalid one a 400.  Needs a running daemon; echoes yes or no.
filters_supported() {
	local out1 out2
	out1=$("$LOAD" -p "$PORT" -n 1 -u '/api/logs/bench/events?tail=0&grep=x' -d 0.2 -w 0 2>/dev/null)
	out2=$("$LOAD" -p "$PORT" -n 1 -u '/api/logs/bench/events?tail=0&grep=%28' -d 0.2 -w 0 2>/dev/null)
	if [ "$(kv http_error "$out1")" = 0 ] && [ "$(kv http_error "$out2")" = 400 ]; then
		echo yes
	else
		echo no
	fi
}

sc_grep1k() {
	local n=1000 label="filters: 1000 streams, each its own grep, 1000 lines/s, ${DURATION} s"
	new_dir grep1k
	: >"$CUR_DIR/app.log"
	start_daemon "$CUR_DIR" "$CUR_DIR/app.log" "max_clients=$((n + 100))" || {
		row "$label" "daemon did not start" "-" FAIL; return; }
	if [ "$(filters_supported)" != yes ]; then
		stop_daemon
		row "$label" "n/a (filters not implemented)" "lossless; server CPU" "n/a"
		return
	fi
	local wcmd
	wcmd=$(printf '%q ' "$WRITER" -f "$CUR_DIR/app.log" -r 1000 -s 100 -d "$DURATION" -k "$n")
	# stream i: grep=" u=i " (each line matches exactly one stream)
	run_load "$CUR_DIR" -n "$n" -r 2000 -u "/api/logs/bench/events?tail=0&grep=%20u%3D{i}%20" \
		-e $((1000 * DURATION)) -w 5 --seq-mod "$n" -x "$wcmd"
	stop_daemon
	row "$label" "$(live_summary); unexpected $(kv unexpected "$RESULT")" \
		"lossless at 1000 lines/s; server CPU reported" "$(live_verdict "$n")"
}

sc_filter() {
	local pat=' 5\d\d ' qpat='%205%5Cd%5Cd%20'
	big_file || { row "filter" "cannot generate the file" "-" FAIL; return; }
	local label="filter: $BIG_LABEL through grep= vs grep -P -c"
	new_dir filter
	start_daemon "$CUR_DIR" "$BIG" || { row "$label" "daemon did not start" "-" FAIL; return; }
	if [ "$(filters_supported)" != yes ]; then
		stop_daemon
		row "$label" "n/a (filters not implemented)" "both throughputs and their ratio" "n/a"
		return
	fi
	cat "$BIG" >/dev/null
	# grep's output goes to a pipe: GNU grep stops at the first match when
	# its output is /dev/null
	local t0 t1 count gsec="" i s
	for i in $(seq "$REPEAT"); do
		t0=$(now)
		count=$(grep -P -c -- "$pat" "$BIG")
		t1=$(now)
		s=$(calc "\"%.3f\", $t1 - $t0")
		log "grep -P -c $i/$REPEAT: $s s"
		if [ -z "$gsec" ] || awk "BEGIN { exit !($s < $gsec) }"; then
			gsec=$s
		fi
	done
	best_replay "/api/logs/bench/events?lastEventId=$BIG_INO:0&grep=$qpat"
	stop_daemon
	local tsec events gmb tmb res verdict=FAIL
	tsec=$(kv replay_s "$RESULT")
	events=$(kv events "$RESULT")
	gmb=$(calc "\"%.0f\", $BIG_BYTES / 1e6 / $gsec")
	tmb=$(calc "\"%.0f\", $BIG_BYTES / 1e6 / ($tsec + 1e-9)")
	res="grep -P -c (locale ${LC_ALL:-${LANG:-C}}): $count lines in $gsec s = $gmb MB/s; tailsse grep=: $events events in $tsec s = $tmb MB/s (best of $REPEAT each); ratio tailsse/grep $(calc "\"%.2f\", $tmb / $gmb"); server CPU $CPU_S s; machine $BUSY of $NCPU cores busy"
	[ "$(kv streams_complete "$RESULT")" = 1 ] && [ "$events" = "$count" ] && verdict=ok
	[ "$events" = "$count" ] || res="$res; MISMATCH: tailsse sent $events lines, grep counted $count"
	row "$label" "$res" "both throughputs and their ratio" "$verdict"
}

# ---- hostile requests ----

# The hostile scenario's directory, in /var/tmp like the big file: a
# generated log big.log beside 3,000 small other files (a resume from an
# unknown inode looks through the directory for the file).  Sets HOSTDIR,
# HOST_BYTES, HOST_LABEL and HOST_NOINO, an inode that no file of the
# directory has.
hostile_files() {
	HOSTDIR=$(mktemp -d /var/tmp/tailsse-hostile.XXXXXX) || return 1
	log "generating $HOSTILE_SIZE bytes in $HOSTDIR/big.log, and 3000 other files"
	"$WRITER" -f "$HOSTDIR/big.log" -g "$HOSTILE_SIZE" >"$CUR_DIR/gen.out" || return 1
	local i
	for i in $(seq -w 1 3000); do
		echo "other file $i" >"$HOSTDIR/other-$i.log" || return 1
	done
	HOST_BYTES=$(stat -c %s "$HOSTDIR/big.log")
	HOST_LABEL=$(calc "\"%.0f MiB\", $HOST_BYTES / 1048576")
	# one more than the largest inode there: no file of the directory
	HOST_NOINO=$(stat -c %i "$HOSTDIR"/* | sort -n | tail -1)
	HOST_NOINO=$((HOST_NOINO + 1))
	cat "$HOSTDIR/big.log" >/dev/null   # into the page cache
}

# ts-hostile's command line: K clients over the three costly requests, each
# loop until its first event, 1 MiB of body, or (for the filter that matches
# nothing, which sends no event) the stream's ids reaching the end of the
# file.
hostile_cmd() { # K SECONDS
	local b=/api/logs/big/events
	printf '%q ' "$HOSTILE" -p "$PORT" -n "$1" -d "$2" --first-event \
		--bytes 1048576 --until-offset "$HOST_BYTES" \
		--path "$b?tail=1000000" --path "$b?tail=1000000&grep=zzzz" \
		--path "$b?lastEventId=$HOST_NOINO:0"
}

hostile_summary() { # HOSTILE_RESULT
	local h=$1
	printf '%s; /healthz: %s probes, failed %s, p50 %s ms p99 %s ms max %s ms; ' \
		"$(live_summary)" "$(kv healthz "$h")" "$(kv healthz_failed "$h")" \
		"$(kv healthz_p50_ms "$h")" "$(kv healthz_p99_ms "$h")" \
		"$(kv healthz_max_ms "$h")"
	printf 'hostile: %s clients, %s loops (%s/s), first event p50 %s ms p99 %s ms max %s ms, ' \
		"$(kv clients "$h")" "$(kv loops "$h")" "$(kv loops_per_s "$h")" \
		"$(kv ttfe_p50_ms "$h")" "$(kv ttfe_p99_ms "$h")" "$(kv ttfe_max_ms "$h")"
	printf 'timeouts %s, errors %s' "$(kv timeouts "$h")" "$(kv errors "$h")"
}

# 100 live streams and /healthz while K clients loop on requests that cost
# the server much work each: the last million lines of the big log, the
# same through a filter that matches nothing, a resume from an unknown inode.
sc_hostile() {
	local k=$HOSTILE_K n=100 rate=1000
	local label="hostile: $n live streams x $rate lines/s + $k clients looping on costly requests, ${DURATION} s"
	local target="live p99 <= 10 ms and /healthz p99 <= 10 ms, lossless"
	new_dir hostile
	hostile_files || { row "$label" "cannot create the files" "$target" FAIL; return; }
	: >"$CUR_DIR/live.log"
	start_daemon "$CUR_DIR" "" "max_clients=$((n + k + 100))" \
		"log:big=$HOSTDIR/big.log" "log:live=$CUR_DIR/live.log" || {
		row "$label" "daemon did not start" "$target" FAIL; return; }
	# ts-load runs the writer and ts-hostile together once every live
	# stream is up, and ends when the writer is done (or -w 5 s later)
	local wcmd hcmd
	wcmd=$(printf '%q ' "$WRITER" -f "$CUR_DIR/live.log" -r "$rate" -s 100 -d "$DURATION")
	hcmd="$(hostile_cmd "$k" "$DURATION") >$(printf %q "$CUR_DIR/hostile.out") 2>$(printf %q "$CUR_DIR/hostile.err")"
	run_load "$CUR_DIR" -n "$n" -r 2000 -u "/api/logs/live/events?tail=0" \
		-e $((rate * DURATION)) -w 5 -x "$hcmd & $wcmd; rc=\$?; wait; exit \$rc"
	stop_daemon
	sed 's/^/    /' "$CUR_DIR/hostile.err" >&2
	local h verdict
	h=$(grep '^HOSTILE' "$CUR_DIR/hostile.out" | tail -1)
	verdict=$(live_verdict "$n")
	if [ -z "$h" ] || [ "$(kv loops "$h")" = 0 ] ||
	   ! awk -v a="$(kv p99_ms "$RESULT")" -v b="$(kv healthz_p99_ms "$h")" \
		'BEGIN { exit !(a != "" && b != "" && a <= 10 && b <= 10) }'; then
		verdict=FAIL
	fi
	[ -n "$h" ] || log "ts-hostile gave no result"
	rm -rf "$HOSTDIR"
	HOSTDIR=""
	row "$label" "big log $HOST_LABEL beside 3000 files; $(hostile_summary "$h")" \
		"$target" "$verdict"
}

# ---- main ----

log "tailsse: $TAILSSE_BIN; tools: $LOAD $WRITER $HOSTILE; temp: $WORK"
if [ "$SMOKE" = 1 ]; then
	todo=smoke
elif [ -n "$ONLY" ]; then
	todo=$ONLY
else
	todo=$SCENARIOS
fi
# tls-live100 right after live100 when both run: its row compares the two,
# taken under the same conditions
if [[ " $todo " == *" live100 "* && " $todo " == *" tls-live100 "* ]]; then
	todo=$(echo " $todo " | sed -e 's/ tls-live100 / /g' -e 's/ live100 / live100 tls-live100 /')
fi
for s in $todo; do
	log "== $s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	TLS_KEYS=()
	TLS_ARGS=()
	"sc_${s//-/_}"
	stop_daemon
done

echo
printf '%s\n' "${ROWS[@]}" | awk -F'\t' '
	{ s[NR] = $1; r[NR] = $2; t[NR] = $3; v[NR] = $4
	  if (length($1) > w1) w1 = length($1) }
	END {
		if (w1 < 8) w1 = 8
		printf "%-" w1 "s | %-4s | %s\n", "scenario", "ok", "result (target)"
		line = ""; for (i = 0; i < w1; i++) line = line "-"
		printf "%s-+------+-%s\n", line, "----------------------------------------"
		for (i = 1; i <= NR; i++)
			printf "%-" w1 "s | %-4s | %s  (target: %s)\n", s[i], v[i], r[i], t[i]
	}'
exit "$FAILED"
