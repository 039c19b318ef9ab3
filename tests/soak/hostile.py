#!/usr/bin/env python3
"""Hostile clients against a release-built daemon (make hostile, make
hostile-smoke), measured against a baseline in the same invocation.

One daemon, three logs: `big` (20,000 lines, one in 20 a run of a's that
makes patterns like (a+)+$ backtrack), `live0` and `live1`.  Two phases of
the same length, each with its own live log:

  baseline  ts-load reads STREAMS streams of the live log while ts-writer
            writes RATE lines/s to it; ts-hostile's prober alone times
            GET /healthz every 20 ms.
  hostile   the same, while ts-hostile --malformed loops K clients over its
            catalogue of bad requests (bad request lines, methods,
            percent-encoding, NULs, ids, cursors, pathological regexes with
            tail=1000000 on `big`, huge tail=, header floods, oversized
            URLs) and holds HALF connections half-open throughout.

Meanwhile a new stream of the live log opens every 250 ms (tail=1): its
time to the first line is what a viewer opening the log waits, and its
start is queued with the hostile ones.

Checks: in both phases every live line reaches every stream once, in order,
and every /healthz probe is answered (2 s at most); in the baseline every
new stream gets its first line within 10 s (in the hostile phase that is
reported, not checked: every start waits its turn on the daemon's one
worker thread, which the hostile clients keep full of costly valid starts);
in the hostile phase no
malformed request gets a 5xx (but 503 with Retry-After), a 200, or no
answer within 5 s (a valid costly one unanswered in time is counted as
slow, and reported); the daemon exits 0 on SIGTERM at the end.  The latencies (the
live lines' write-to-receive and /healthz) are reported with and without
the hostile load, not checked: the machine is shared.

Usage: hostile.py [--smoke] [--duration S] [--clients K] [--half-open N]
Environment: TAILSSE_BIN, TAILSSE_WWW, TS_LOAD, TS_WRITER, TS_HOSTILE (the
release build's tools).  Ends with "N passed, N failed" (the checks)."""

import argparse
import os
import shlex
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import tsutil  # noqa: E402


def tool(name):
    p = os.environ.get("TS_" + name.upper().replace("-", "_"))
    if not p or not os.access(p, os.X_OK):
        raise SystemExit("hostile: set TS_%s to the built bench/ts-%s"
                         % (name.upper(), name))
    return p


def kv(line):
    out = {}
    for w in (line or "").split()[1:]:
        k, _, v = w.partition("=")
        out[k] = v
    return out


def make_big(path, n=20000):
    with open(path, "w") as f:
        for i in range(n):
            if i % 20 == 0:
                f.write("a" * 40 + "!\n")
            else:
                f.write("n=%06d 127.0.0.1 GET /x/%d HTTP/1.1 200 %d some "
                        "words of a log line\n" % (i, i, i * 7))


class StartProbe(threading.Thread):
    """A new stream every 250 ms (`tail=1` of the live log): the time from
    connect to its first line, what a viewer opening the log waits.  Its
    start goes through the worker's queue, like the hostile starts."""

    def __init__(self, port, log, duration):
        threading.Thread.__init__(self, daemon=True)
        self.port, self.log, self.duration = port, log, duration
        self.times = []
        self.failed = 0

    def run(self):
        t_end = time.monotonic() + self.duration
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            try:
                c = tsutil.SSEClient(self.port, "/api/logs/%s/events?tail=1"
                                     % self.log, timeout=10.0)
                if c.status != 200:
                    raise tsutil.HTTPError("HTTP %d" % c.status)
                c.next_message(timeout=10.0)
                self.times.append(time.monotonic() - t0)
                c.close()
            except (OSError, AssertionError, tsutil.HTTPError,
                    TimeoutError):
                self.failed += 1
            time.sleep(max(0.0, 0.25 - (time.monotonic() - t0)))

    def ms(self, q):
        if not self.times:
            return "-"
        t = sorted(self.times)
        return "%.3f" % (1000 * t[min(len(t) - 1, int(q * len(t)))])


def phase(d, name, log, o, hostile):
    """One phase: ts-load on the live log, with ts-writer and ts-hostile
    run by its -x once every stream is up.  Returns (RESULT, HOSTILE,
    MALFORMED) as dicts, and ts-hostile's stderr."""
    hout = os.path.join(d.dir, name + ".hostile.out")
    herr = os.path.join(d.dir, name + ".hostile.err")
    hcmd = [tool("hostile"), "-p", str(d.port), "-d", str(o.duration),
            "--probe-ms", "20", "--probe-timeout", "2000"]
    if hostile:
        hcmd += ["--malformed", "-n", str(o.clients), "--half-open",
                 str(o.half_open), "--log", log, "--big", "big",
                 "--loop-timeout", "5000"]
    else:
        hcmd += ["-n", "0"]
    wcmd = [tool("writer"), "-f", d.path(log), "-r", str(o.rate), "-s",
            "100", "-d", str(o.duration)]
    x = "%s >%s 2>%s & %s >/dev/null; rc=$?; wait; exit $rc" % (
        " ".join(shlex.quote(a) for a in hcmd), shlex.quote(hout),
        shlex.quote(herr), " ".join(shlex.quote(a) for a in wcmd))
    lcmd = [tool("load"), "-p", str(d.port), "-n", str(o.streams), "-u",
            "/api/logs/%s/events?tail=0" % log, "-e",
            str(o.rate * o.duration), "-w", "5", "-x", x]
    # the writer has written a line or two before the probe's first tail=1
    probe = StartProbe(d.port, log, o.duration)
    proc = subprocess.Popen(lcmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(1.0)
    probe.start()
    out, errs = proc.communicate(timeout=o.duration * 3 + 60)
    probe.join(30)
    cp = subprocess.CompletedProcess(lcmd, proc.returncode, out, errs)
    res = [ln for ln in cp.stdout.splitlines() if ln.startswith("RESULT")]
    with open(hout) as f:
        hl = f.read().splitlines()
    with open(herr) as f:
        err = f.read()
    host = [ln for ln in hl if ln.startswith("HOSTILE")]
    mal = [ln for ln in hl if ln.startswith("MALFORMED")]
    if cp.returncode != 0 or not res:
        sys.stdout.write("hostile: ts-load exit %d:\n%s%s" % (
            cp.returncode, cp.stdout, cp.stderr))
    return (kv(res[-1] if res else None), kv(host[-1] if host else None),
            kv(mal[-1] if mal else None), err, probe)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--duration", type=int)
    ap.add_argument("--clients", type=int)
    ap.add_argument("--half-open", type=int)
    ap.add_argument("--streams", type=int)
    ap.add_argument("--rate", type=int, default=200)
    o = ap.parse_args()
    dflt = (8, 16, 60, 10) if o.smoke else (30, 64, 300, 50)
    o.duration = o.duration or dflt[0]
    o.clients = o.clients or dflt[1]
    o.half_open = o.half_open if o.half_open is not None else dflt[2]
    o.streams = o.streams or dflt[3]

    checks = []

    def check(ok, what):
        checks.append(bool(ok))
        print("hostile: %s: %s" % ("ok  " if ok else "FAIL", what))
        sys.stdout.flush()

    d = tsutil.Daemon(logs=["big", "live0", "live1"],
                      server={"max_clients": 10000})
    make_big(d.path("big"))
    d.start()
    print("hostile: tailsse %s on 127.0.0.1:%d; %d s per phase; %d live "
          "streams x %d lines/s; hostile: %d looping clients over the "
          "catalogue, %d half-open connections"
          % (tsutil.tailsse_bin(), d.port, o.duration, o.streams, o.rate,
             o.clients, o.half_open))
    sys.stdout.flush()
    rows = []
    try:
        for name, log, hostile in (("baseline", "live0", False),
                                   ("hostile", "live1", True)):
            res, host, mal, err, probe = phase(d, name, log, o, hostile)
            rows.append((name, res, host, mal, probe))
            if hostile:
                sys.stdout.write("".join("hostile:   " + ln + "\n"
                                         for ln in err.splitlines()
                                         if "answers" in ln or
                                         ln.startswith("ts-hostile:   ") or
                                         "first" in ln))
            want = o.rate * o.duration
            check(res and res.get("lost") == "0" and res.get("dup") == "0"
                  and res.get("reordered") == "0" and
                  res.get("streams_complete") == str(o.streams),
                  "%s: %s of %d streams got all %d live lines once, in "
                  "order (lost %s, dup %s, reordered %s)" % (
                      name, res.get("streams_complete"), o.streams, want,
                      res.get("lost"), res.get("dup"),
                      res.get("reordered")))
            check(host and host.get("healthz_failed") == "0" and
                  int(host.get("healthz_ok", 0)) > 0,
                  "%s: every /healthz answered (%s of %s)" % (
                      name, host.get("healthz_ok"), host.get("healthz")))
            what = "%s: new streams that got their first line within " \
                "10 s: %d of %d" % (name, len(probe.times),
                                    len(probe.times) + probe.failed)
            if not hostile:
                check(probe.times and not probe.failed, what)
            else:
                # reported, not checked: every start (stream or lines
                # request) waits its turn on the one worker thread, and
                # the hostile clients keep it full of costly valid ones
                print("hostile: note: %s (starts queue behind the costly "
                      "valid ones on the worker)" % what)
            if hostile:
                bad = sum(int(mal.get(k, 1)) for k in
                          ("bad_5xx", "accepted", "hangs"))
                check(mal and bad == 0 and int(mal.get("answers", 0)) > 0,
                      "hostile: %s answers to %s kinds of bad request: "
                      "%s clean 4xx, %s other 4xx (libmicrohttpd's own), "
                      "%s closed, %s 200 to valid ones, %s 503; %s 5xx, "
                      "%s 200 to bad ones, %s hangs (and %s valid costly "
                      "ones unanswered within 5 s)" % (
                          mal.get("answers"), mal.get("requests"),
                          mal.get("clean_4xx"), mal.get("other_4xx"),
                          mal.get("closed"), mal.get("ok"),
                          mal.get("busy_503"), mal.get("bad_5xx"),
                          mal.get("accepted"), mal.get("hangs"),
                          mal.get("slow")))
                print("hostile: half-open connections: %s held, %s closed "
                      "by the daemon meanwhile" % (
                          mal.get("half_open"), mal.get("half_open_closed")))
        check(d.get("/healthz").status == 200, "healthy after both phases")
    finally:
        d.stop(timeout=10)
        try:
            d.check_exit()
            check(True, "the daemon exited 0 on SIGTERM")
        except AssertionError as e:
            check(False, "the daemon's exit: %s" % e)
        d._kill()
        d._tmp.cleanup()
    print("hostile: latency, ms  (live: write to receive over %d streams; "
          "/healthz: round trip every 20 ms; start: a new stream's connect "
          "to its first line, every 250 ms)" % o.streams)
    print("hostile:   %-9s %9s %9s %9s  %9s %9s %9s  %9s %9s %9s" % (
        "phase", "live p50", "live p99", "live max", "hz p50", "hz p99",
        "hz max", "start p50", "start p99", "start max"))
    for name, res, host, _, probe in rows:
        print("hostile:   %-9s %9s %9s %9s  %9s %9s %9s  %9s %9s %9s" % (
            name, res.get("p50_ms"), res.get("p99_ms"), res.get("max_ms"),
            host.get("healthz_p50_ms"), host.get("healthz_p99_ms"),
            host.get("healthz_max_ms"), probe.ms(0.5), probe.ms(0.99),
            probe.ms(1.0)))
    npass = sum(checks)
    print("%d passed, %d failed" % (npass, len(checks) - npass))
    return 0 if npass == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
