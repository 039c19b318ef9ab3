#!/usr/bin/env python3
"""Which files a resume id may read, and streams that lag behind rotations.

The rule (contract, "Where a stream starts"): a position INODE:OFFSET may
only resolve to a generation of the log, that is

* a file the daemon has itself seen at the log's path while running
  (whatever it has been renamed to since), or
* a regular file in the log's directory whose name is the log's file name
  followed by a logrotate suffix: a `.`, `-` or `_`, then only digits and
  `.`/`-`/`_`, with at least one digit: app.log.1, app.log.12,
  app.log-20261202, app.log-2026-12-02, app.log.20261202-1530.  Never a
  compressed one (app.log.2.gz: letters are not allowed).

Anything else (another file of the directory, another configured log, a
backup copy, a compressed generation) is exactly like an inode that is
gone: `event: reset` with reason `lost`, then the current file from offset
0, and nothing of that file is ever sent.

A stream that lags behind several rotations (its client reads slowly) does
not skip a generation: it sends the rest of its file, then every later
generation in order, each after a `reset rotated`, then the current file.
And rotations that come fast (one every 100 ms, while streams read) are
each seen and counted.
"""

import json
import os
import re
import socket
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, is_line, parse_id, reset_reason  # noqa: E402

LINES = ["line%02d" % i for i in range(1, 11)]
CONTENT = "".join(s + "\n" for s in LINES).encode()
SECRET = b"secret: do not send me\n"


def q(s):
    return urllib.parse.quote(s, safe="")


def metric(d, name):
    """The value of the sample NAME (with its labels) in /metrics (None:
    absent)."""
    r = d.get("/metrics")
    if r.status != 200:
        raise AssertionError("/metrics: %r" % r)
    m = re.search(r"^%s (\d+)$" % re.escape(name), r.text, re.M)
    return int(m.group(1)) if m else None


def rotations(d, log="app"):
    """tailsse_rotations_total{log=LOG} from /metrics (None: absent)."""
    return metric(d, 'tailsse_rotations_total{log="%s"}' % log)


def wait_current(test, d, size):
    """Wait until the daemon's current file of app is size bytes long (the
    sizes of a test's generations differ: it has seen the new one)."""
    def now():
        logs = json.loads(d.get("/api/logs").body)
        return [(x["exists"], x["size"]) for x in logs if x["name"] == "app"]
    test.assertTrue(tsutil.wait_for(lambda: now() == [(True, size)]),
                    "the daemon never saw the new file: %r" % now())


def see_rotation(test, d, rotate):
    """rotate(), and wait until the daemon has seen it: a stream opened at
    the end of the file before, with a filter that keeps no line, gets its
    `reset rotated` (then it is closed)."""
    ino = d.ino("app")
    size = os.path.getsize(d.path("app"))
    # a filter no line matches: the stream sends no line, only resets
    c = d.stream("app", headers={"Last-Event-ID": "%d:%d" % (ino, size)},
                 grep=q("^no line matches this$"))
    rotate()
    ev = c.next_message(timeout=10)
    test.assertEqual(reset_reason(ev), "rotated", ev)
    c.close()


def segments(events):
    """Split events at their resets: [[reason, reset id, [line events]]];
    the first reason is None.  Fails on any other named event."""
    segs = [[None, None, []]]
    for ev in events:
        reason = reset_reason(ev)
        if reason is not None:
            segs.append([reason, ev["id"], []])
        elif is_line(ev):
            segs[-1][2].append(ev)
        elif ev["event"] is not None:
            raise AssertionError("unexpected event %r" % ev)
    return segs


def expected(ino, data, start=0):
    """(id, data) of the lines of data (bytes) after offset start."""
    return [("%d:%d" % (ino, off), raw.decode())
            for off, raw in tsutil.line_positions(data[start:], start)]


class _SmallConn(tsutil._Conn):
    """tsutil's connection, with SO_RCVBUF set before connecting (so that
    the TCP window stays small)."""

    rcvbuf = 4096

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                             self.rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False


class HeldClient(tsutil.SSEClient):
    """An SSEClient with a small receive buffer that the test does not read
    until it says so: the daemon can send it only what the socket buffers
    hold.  release() widens the buffer before reading on."""

    def __init__(self, port, path, timeout=5.0):
        saved = tsutil._Conn      # what SSEClient connects with
        tsutil._Conn = _SmallConn
        try:
            tsutil.SSEClient.__init__(self, port, path, timeout=timeout)
        finally:
            tsutil._Conn = saved

    def release(self):
        self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                  1 << 22)


# ------------------------------------------------------------ 1. not ours

class NotAGeneration(unittest.TestCase):
    """Resuming with the inode of a file that is not one of the log's
    generations: reset lost, app.log from 0, never a byte of that file."""

    def check_lost(self, d, name, how):
        """Put SECRET in d.dir/NAME (unless it exists: another log), resume
        app at its inode, offset 0."""
        path = os.path.join(d.dir, name)
        if not os.path.exists(path):
            tsutil.write_file(path, SECRET)
        rid = "%d:0" % os.stat(path).st_ino
        if how == "header":
            c = d.stream("app", headers={"Last-Event-ID": rid})
        else:
            c = d.stream("app", lastEventId=q(rid))
        ino = d.ino("app")
        content = tsutil.read_bytes(d.path("app"))
        first = c.next_message()
        self.assertEqual(reset_reason(first), "lost",
                         "resuming at %s (inode of %s) by %s began with %r"
                         % (rid, name, how, first))
        self.assertEqual(first["id"], "%d:0" % ino, first)
        want = expected(ino, content)
        got = [(e["id"], e["data"]) for e in c.messages(len(want))]
        self.assertEqual(got, want)
        more = "after %s %s\n" % (name, how)
        d.write("app", more)
        ev = c.next_message()
        self.assertEqual((ev["event"], ev["id"], ev["data"]),
                         (None, "%d:%d" % (ino, len(content) + len(more)),
                          more.strip()))
        self.assertNotIn(b"secret", bytes(c.raw),
                         "the stream sent %s's content" % name)
        c.close()

    def test_unrelated_file_beside_the_log(self):
        with Daemon(content={"app": CONTENT}) as d:
            for how in ("header", "query"):
                with self.subTest(how=how):
                    self.check_lost(d, "notes.txt", how)

    def test_another_configured_log(self):
        with Daemon(logs=("app", "other"),
                    content={"app": CONTENT, "other": SECRET}) as d:
            for how in ("header", "query"):
                with self.subTest(how=how):
                    self.check_lost(d, "other.log", how)

    def test_names_outside_the_rule(self):
        with Daemon(content={"app": CONTENT}) as d:
            for name in ("app.log.2.gz", "app.log.bak", "app.logx",
                         "xapp.log.1", "app.log.1.gz", "app.log."):
                for how in ("header", "query"):
                    with self.subTest(name=name, how=how):
                        self.check_lost(d, name, how)


# ------------------------------------------------ 2./3. real generations

OLD = "".join("old%02d\n" % i for i in range(1, 9)).encode()
MID = "".join("mid%02d\n" % i for i in range(1, 7)).encode()
NEW = "".join("new%02d\n" % i for i in range(1, 5)).encode()
AT = 3 * 6                   # the id after old03 (each line is 6 bytes)


class Generations(unittest.TestCase):
    """Resuming in a rotated-away file that is a generation: the rest of
    it, reset rotated (id NEWINODE:0), the next file; each line once."""

    def check_resume(self, d, c, gens):
        """gens: [(inode, content, start offset)], oldest first, the last
        one the current file.  Reads to the end of the last one."""
        want_lines = sum(len(tsutil.line_positions(data[start:]))
                         for _, data, start in gens)
        last_id = "%d:%d" % (gens[-1][0], len(gens[-1][1]))
        events = c.read_until(lambda e: e["id"] == last_id and is_line(e),
                              timeout=10)
        events += [e for e in c.quiet_for(0.1)]
        segs = segments([e for e in events if tsutil.is_message(e)])
        self.assertEqual([s[0] for s in segs],
                         [None] + ["rotated"] * (len(gens) - 1),
                         "the resets (%d lines expected in all)" % want_lines)
        for k, ((ino, data, start), seg) in enumerate(zip(gens, segs)):
            if k > 0:
                self.assertEqual(seg[1], "%d:0" % ino, "id of reset %d" % k)
            self.assertEqual([(e["id"], e["data"]) for e in seg[2]],
                             expected(ino, data, start),
                             "generation %d (inode %d)" % (k, ino))

    def rotate_by_hand(self, d, name):
        """app.log -> NAME, a new app.log with NEW; returns the old inode."""
        old = d.ino("app")
        os.rename(d.path("app"), os.path.join(d.dir, name))
        tsutil.write_file(d.path("app"), NEW)
        return old

    def test_rotated_while_running(self):
        for name in ("app.log.1", "app.log-20261202"):
            with self.subTest(name=name), Daemon(content={"app": b""}) as d:
                d.write("app", OLD)
                old = self.rotate_by_hand(d, name)
                wait_current(self, d, len(NEW))
                for how in ("header", "query"):
                    rid = "%d:%d" % (old, AT)
                    c = d.stream("app", **(
                        {"headers": {"Last-Event-ID": rid}}
                        if how == "header" else {"lastEventId": q(rid)}))
                    self.check_resume(d, c, [(old, OLD, AT),
                                             (d.ino("app"), NEW, 0)])
                    c.close()

    def test_rotated_before_the_daemon_started(self):
        # a restart: the daemon never saw the old file at the path; only
        # its name makes it a generation
        for name in ("app.log.1", "app.log-20261202", "app.log-2026-12-02",
                     "app.log.20261202-1530", "app.log_7"):
            with self.subTest(name=name):
                d = Daemon(content={"app": OLD})
                old = self.rotate_by_hand(d, name)
                with d:
                    c = d.stream("app", headers={
                        "Last-Event-ID": "%d:%d" % (old, AT)})
                    self.check_resume(d, c, [(old, OLD, AT),
                                             (d.ino("app"), NEW, 0)])

    def test_two_generations_back(self):
        # app.log.2 (resumed in), app.log.1, then app.log: every later
        # generation in order, not a jump to the current file
        with Daemon(content={"app": OLD}) as d:
            g1 = d.ino("app")
            os.rename(d.path("app"), d.path("app") + ".1")
            tsutil.write_file(d.path("app"), MID)
            g2 = d.ino("app")
            wait_current(self, d, len(MID))
            os.rename(d.path("app") + ".1", d.path("app") + ".2")
            self.rotate_by_hand(d, "app.log.1")
            wait_current(self, d, len(NEW))
            c = d.stream("app", headers={"Last-Event-ID": "%d:%d" % (g1, AT)})
            self.check_resume(d, c, [(g1, OLD, AT), (g2, MID, 0),
                                     (d.ino("app"), NEW, 0)])

    def test_seen_at_the_path_then_renamed_outside_the_rule(self):
        # the daemon saw it at the path: it stays a generation whatever
        # its new name
        with Daemon(content={"app": b""}) as d:
            d.write("app", OLD)
            old = self.rotate_by_hand(d, "app.log.old")
            wait_current(self, d, len(NEW))
            c = d.stream("app", headers={"Last-Event-ID": "%d:%d" % (old, AT)})
            self.check_resume(d, c, [(old, OLD, AT), (d.ino("app"), NEW, 0)])


# ---------------------------------------------------- 4. a lagging stream

# Each generation's events (~12 MB) are several times what the socket
# buffers of a stalled stream hold (the daemon's send buffer grows to
# net.ipv4.tcp_wmem's 4 MiB), so the stream is still in the first one when
# the second rotation comes.
PER_GEN = 40000
PAD = "." * 280
LFMT = "n=%06d payload\n"


def numbered(a, b, pad=""):
    fmt = LFMT.replace(" ", " " + pad) if pad else LFMT
    return "".join(fmt % i for i in range(a, b)).encode()


def number(data):
    """n of a line of numbered()."""
    if not data or not data.startswith("n=") or not data[2:8].isdigit():
        raise AssertionError("not a numbered line: %r" % (data,))
    return int(data[2:8])


class LaggingStream(unittest.TestCase):
    def test_lagging_stream_sends_every_generation(self):
        with Daemon() as d:
            ino0 = d.ino("app")
            c = HeldClient(d.port, "/api/logs/app/events?lastEventId=%d%%3A0"
                           % ino0)
            d._clients.append(c)
            self.assertEqual(c.status, 200)
            gens = [(ino0, numbered(0, PER_GEN, PAD))]
            d.write("app", gens[0][1])
            # logrotate's way, twice: app.log -> .1, then .1 -> .2 and
            # app.log -> .1; each new app.log gets PER_GEN more lines
            for k in (1, 2):
                data = numbered(k * PER_GEN, (k + 1) * PER_GEN, PAD)

                def rotate():
                    if k == 2:
                        os.rename(d.path("app") + ".1", d.path("app") + ".2")
                    os.rename(d.path("app"), d.path("app") + ".1")
                    tsutil.write_file(d.path("app"), data)
                see_rotation(self, d, rotate)
                gens.append((d.ino("app"), data))
            # the client has read nothing yet, and the daemon could send it
            # only part of the first generation
            sent = metric(d, "tailsse_events_sent_total")
            self.assertLess(sent, PER_GEN - 1000, "harness: the stream did "
                            "not lag behind (the socket buffers took %d "
                            "events)" % sent)
            c.release()
            total = 3 * PER_GEN
            last = (LFMT.replace(" ", " " + PAD) % (total - 1)).strip()
            events = c.read_until(lambda e: e["data"] == last, timeout=60)
            events += c.quiet_for(0.2)
            segs = segments([e for e in events if tsutil.is_message(e)])
            resets = [s[0] for s in segs[1:]]
            nums = [number(e["data"]) for s in segs for e in s[2]]
            missing = sorted(set(range(total)) - set(nums))
            self.assertEqual(missing[:3], [], "%d of %d lines never arrived "
                             "(first missing shown)" % (len(missing), total))
            self.assertEqual(nums, list(range(total)),
                             "not every line once, in order")
            self.assertEqual(resets, ["rotated", "rotated"])
            for k, ((ino, data), seg) in enumerate(zip(gens, segs)):
                if k > 0:
                    self.assertEqual(seg[1], "%d:0" % ino,
                                     "id of reset %d" % k)
                got = [(e["id"], e["data"]) for e in seg[2]]
                self.assertTrue(got == expected(ino, data),
                                "generation %d: ids or lines differ" % k)


# --------------------------------------------------- 5. fast rotations

ROTATIONS = 50
READERS = 10
PER_WRITE = 10               # lines per write, two writes per generation
PERIOD = 0.1                 # seconds between two rotations


class FastRotations(unittest.TestCase):
    def test_fifty_rotations_in_five_seconds(self):
        with Daemon() as d:
            clients = [d.stream("app") for _ in range(READERS)]
            total = (ROTATIONS + 1) * 2 * PER_WRITE
            last = "n=%06d payload" % (total - 1)
            results = [None] * READERS

            def read(i):
                try:
                    results[i] = clients[i].read_until(
                        lambda e: e["data"] == last, timeout=30)
                except BaseException as e:  # reported below
                    results[i] = e

            threads = [threading.Thread(target=read, args=(i,), daemon=True)
                       for i in range(READERS)]
            for t in threads:
                t.start()
            gens = []                 # (inode, first n) of each generation
            n = 0
            t0 = time.monotonic()
            for k in range(ROTATIONS + 1):
                if k > 0:
                    os.rename(d.path("app"),
                              os.path.join(d.dir, "app.log-%05d" % k))
                    tsutil.write_file(d.path("app"),
                                      numbered(n, n + PER_WRITE))
                else:
                    d.write("app", numbered(n, n + PER_WRITE))
                gens.append((d.ino("app"), n))
                n += PER_WRITE
                self.pace(t0, (k + 0.5) * PERIOD)
                d.write("app", numbered(n, n + PER_WRITE))
                n += PER_WRITE
                self.pace(t0, (k + 1) * PERIOD)
            for t in threads:
                t.join(40)
                self.assertFalse(t.is_alive(), "a reader thread hung")
            for i, res in enumerate(results):
                if isinstance(res, BaseException):
                    raise AssertionError("reader %d: %s" % (i, res))
                self.check_reader(i, res, gens, total)
            tsutil.wait_for(lambda: rotations(d) == ROTATIONS, timeout=2)
            self.assertEqual(rotations(d), ROTATIONS,
                             "tailsse_rotations_total{log=\"app\"}")

    @staticmethod
    def pace(t0, at):
        left = t0 + at - time.monotonic()
        if left > 0:
            time.sleep(left)

    def check_reader(self, i, events, gens, total):
        segs = segments([e for e in events if tsutil.is_message(e)])
        nums = [tsutil.number_of(e["data"]) for s in segs for e in s[2]]
        missing = sorted(set(range(total)) - set(nums))
        self.assertEqual(missing[:5], [], "reader %d: %d lines never "
                         "arrived" % (i, len(missing)))
        self.assertEqual(nums, list(range(total)),
                         "reader %d: not every line once, in order" % i)
        self.assertEqual([s[0] for s in segs[1:]], ["rotated"] * ROTATIONS,
                         "reader %d: the resets" % i)
        per_gen = 2 * PER_WRITE
        for k, ((ino, first), seg) in enumerate(zip(gens, segs)):
            self.assertEqual(
                [(parse_id(e["id"])[0], tsutil.number_of(e["data"]))
                 for e in seg[2]],
                [(ino, m) for m in range(first, first + per_gen)],
                "reader %d, generation %d: (inode, n) of its lines" % (i, k))


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
