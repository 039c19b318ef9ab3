#!/usr/bin/env python3
"""A short real run of the daemon under valgrind memcheck (make
check-valgrind): two logs on a loopback port, a plain stream, a `tail=`
stream, a filtered one (`grep=`, `exclude=`, `format=json`), a merged one
(`/api/events?log=a&log=b`), a resume by Last-Event-ID, a `lines` request,
the small endpoints and a few errors, a logrotate rotation of each kind
(create and copytruncate), then SIGTERM with streams
still open.  Every stream must get what was written; the daemon must exit 0
and valgrind must report nothing (its --error-exitcode makes the daemon's
exit status 1 otherwise, and its report is printed).

Environment: TAILSSE_BIN (a build without sanitizers), VALGRIND (the
command with its options, split on blanks; default: valgrind with the
options below).  TAILSSE_NO_JIT=1 is set: PCRE2's JIT code reads aligned
words past the end of a subject, which memcheck reports as uses of
uninitialised values in code it has no symbols for; the interpreter runs
the same limits and the daemon's own filter code the same way.

Python 3 standard library only.  Ends with "N passed, N failed"."""

import json
import os
import shlex
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import tsutil  # noqa: E402
from tsutil import Daemon, is_line, request  # noqa: E402

VALGRIND_DEFAULT = ("valgrind -q --leak-check=full "
                    "--errors-for-leak-kinds=definite,indirect "
                    "--error-exitcode=1 --num-callers=30")
# valgrind runs the daemon 20-50 times slower: generous waits
T = 30.0


class ValgrindDaemon(Daemon):
    """tsutil's Daemon started under valgrind, its report in a file of its
    own (not mixed with the daemon's stderr)."""

    def __init__(self, **kw):
        Daemon.__init__(self, **kw)
        self.vg_log = os.path.join(self.dir, "valgrind.txt")
        self.vg = shlex.split(os.environ.get("VALGRIND") or VALGRIND_DEFAULT)

    def _argv(self, port):
        return self.vg + ["--log-file=" + self.vg_log] + \
            Daemon._argv(self, port)

    def _wait_healthy(self):
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if request(self.port, "GET", "/healthz",
                           timeout=5.0).status == 200:
                    return True
            except (OSError, tsutil.HTTPError, TimeoutError):
                pass
            time.sleep(0.1)
        return False

    def report(self):
        try:
            with open(self.vg_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def lines(prefix, a, b):
    return "".join("%s %06d payload\n" % (prefix, i) for i in range(a, b))


def wait_line(c, text, timeout=T):
    """Events of c up to the line whose data is text."""
    return c.read_until(lambda ev: ev["data"] == text, timeout=timeout)


def datas(events):
    return [ev["data"] for ev in events if is_line(ev)]


class UnderValgrind(unittest.TestCase):
    def test_daemon_run(self):
        os.environ["TAILSSE_NO_JIT"] = "1"
        d = ValgrindDaemon(logs=["a", "b"], use_config=True,
                           server={"heartbeat": 1})
        d.write("a", lines("a", 0, 50))
        d.write("b", lines("b", 0, 50))
        try:
            d.start()
            self.run_clients(d)
            # SIGTERM with streams still open: they must be freed too
            rc = d.stop(timeout=120.0)
        finally:
            d._kill()
            report = d.report()
            err = d.stderr()
            d._tmp.cleanup()
        if report.strip():
            sys.stderr.write("--- valgrind ---\n%s--- end ---\n" % report)
        self.assertEqual(report.strip(), "", "valgrind reported errors")
        self.assertEqual(rc, 0, "exit status %r; stderr:\n%s" % (rc, err))

    def run_clients(self, d):
        port = d.port
        # small endpoints and errors
        self.assertEqual(d.get("/healthz", timeout=T).status, 200)
        self.assertEqual(d.get("/metrics", timeout=T).status, 200)
        logs = json.loads(d.get("/api/logs", timeout=T).body)
        self.assertEqual([x["name"] for x in logs], ["a", "b"])
        self.assertEqual(d.get("/", timeout=T).status, 200)
        for path, status in (("/api/logs/nope/events", 404),
                             ("/api/logs/a/events?grep=(", 400),
                             ("/api/logs/a/events?tail=x", 400),
                             ("/api/events?log=a&log=a", 400),
                             ("/api/logs/a/events?lastEventId=1:2:3", 400),
                             ("/nope.html", 404),
                             ("/%2e%2e/etc/passwd", 404)):
            self.assertEqual(d.get(path, timeout=T).status, status, path)
        self.assertEqual(d.request("POST", "/healthz", body="x",
                                   timeout=T).status, 405)

        # streams: live, tail, filtered, merged
        live = d.stream("a", timeout=T)
        tail = d.stream("a", timeout=T, tail=5)
        filt = d.stream("a", timeout=T, tail=100, grep="a%200000[0-9]",
                        exclude="7", format="json")
        multi = tsutil.SSEClient(port, "/api/events?log=a&log=b&tail=2",
                                 timeout=T)
        d._clients.append(multi)
        self.assertEqual(multi.status, 200)
        self.assertEqual(datas(wait_line(tail, "a 000049 payload")),
                         ["a %06d payload" % i for i in range(45, 50)])
        got = [json.loads(x)["line"] for x in datas(
            filt.read_until(lambda ev: ev["data"] and "000009" in ev["data"],
                            timeout=T))]
        self.assertEqual(got, ["a %06d payload" % i
                               for i in range(10) if i != 7])
        d.write("a", lines("a", 50, 60))
        d.write("b", lines("b", 50, 60))
        self.assertEqual(datas(wait_line(live, "a 000059 payload")),
                         ["a %06d payload" % i for i in range(50, 60)])
        mev = multi.read_until(lambda ev: ev["data"] and json.loads(
            ev["data"]).get("line") == "b 000059 payload", timeout=T)
        last_multi = [ev["id"] for ev in mev if ev["id"]][-1]
        # the lines API
        ino = d.ino("a")
        r = d.get("/api/logs/a/lines?before=%d:%d&n=3" % (
            ino, 60 * len("a 000000 payload\n")), timeout=T)
        self.assertEqual([x["line"] for x in json.loads(r.body)["lines"]],
                         ["a %06d payload" % i for i in (57, 58, 59)])

        # resume by Last-Event-ID across a rotation (create), and the
        # merged stream by its cursor across a copytruncate
        last = [ev["id"] for ev in wait_line(tail, "a 000059 payload")
                if ev["id"]][-1]
        tail.close()
        multi.close()
        d.write("a", lines("a", 60, 70))
        d.write("b", lines("b", 60, 70))
        self.assertTrue(tsutil.wait_for(lambda: json.loads(d.get(
            "/api/logs", timeout=T).body)[1]["size"] == 70 * 17, T))
        if tsutil.logrotate_bin():
            tsutil.Logrotate(d.path("a"), os.path.join(d.dir, "lra")).run()
            tsutil.Logrotate(d.path("b"), os.path.join(d.dir, "lrb"),
                             mode="copytruncate").run()
        else:
            sys.stderr.write("note: no logrotate: rotating by hand\n")
            os.rename(d.path("a"), d.path("a") + ".1")
            tsutil.write_file(d.path("a"), "")
            os.rename(d.path("b"), d.path("b") + ".1")
            tsutil.write_file(d.path("b"), "")
        d.write("a", lines("a", 70, 80))
        d.write("b", lines("b", 70, 80))
        res = d.stream("a", timeout=T, headers={"Last-Event-ID": last})
        got = res.read_until(lambda ev: ev["data"] == "a 000079 payload",
                             timeout=T)
        self.assertEqual(datas(got), ["a %06d payload" % i
                                      for i in range(60, 80)])
        self.assertIn("rotated", [tsutil.reset_reason(e) for e in got])
        multi = tsutil.SSEClient(port, "/api/events?log=a&log=b",
                                 headers={"Last-Event-ID": last_multi},
                                 timeout=T)
        d._clients.append(multi)
        got = multi.read_until(lambda ev: ev["data"] and json.loads(
            ev["data"]).get("line") == "b 000079 payload", timeout=T)
        bl = [json.loads(x)["line"] for x in datas(got)
              if json.loads(x)["log"] == "b"]
        self.assertEqual(bl, ["b %06d payload" % i for i in range(60, 80)])
        self.assertEqual(datas(wait_line(live, "a 000079 payload"))[-1],
                         "a 000079 payload")

        # connections coming and going: streams closed after their first
        # event, and requests cut off in their head
        for i in range(30):
            c = d.stream("a" if i % 2 else "b", timeout=T, tail=1)
            c.next_message(timeout=T)
            c.close()
            s = tsutil._Conn(port, timeout=T)
            s.send(b"GET /api/logs/a/events?tail=1 HTTP/1.1\r\nHost: x")
            s.close()
        # a heartbeat on an idle stream
        ev = res.read_until(lambda e: e["comments"], timeout=T)
        self.assertTrue(ev[-1]["comments"])


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
