#!/usr/bin/env python3
"""The real logrotate (Debian's, run as `logrotate -f -s STATE CONF` with a
config of our own) rotating a log while a writer appends numbered lines at
200 lines/s, three rotations per test, in create mode and in copytruncate
mode; on a stream that stays open, and on one that disconnects just before
each rotation and resumes with its last id right after it.

What is checked, against the files left on disk at the end (app.log.3 is
the first generation, then .2, .1, and app.log): every line of every
generation arrives once, in order, with the id INODE:OFFSET it has on disk,
and a `reset` (with the id NEWINODE:0) separates two generations.

copytruncate: logrotate itself loses the lines written between its copy and
its truncate (logrotate(8)); a stream that was reading them live may have
sent them, so they may appear as extra lines at the end of a generation.
Conversely, lines written in the last instant before the copy can be
truncated away before any follower reads them (nothing can read them from
the live file any more): a stream that stays open may miss lines at the very
end of a copy, only those written less than SLACK seconds before logrotate
ran, never any other."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, is_line, number_of, parse_id  # noqa: E402

ROTATIONS = 3
INTERVAL = 0.005            # 200 lines/s
PER_ROTATION = 60           # lines written and read between two rotations
LINE_LEN = len(tsutil.Writer.FMT % 0)
SLACK = 0.05                # see the module doc (copytruncate, open stream)


def segments(events):
    """Split a stream's events at its resets.  A list of
    [reason, reset id, lines]: the first reason is None; lines are
    (n, inode, offset, connection index) tuples."""
    segs = [[None, None, []]]
    for conn, ev in events:
        reason = tsutil.reset_reason(ev)
        if reason is not None:
            segs.append([reason, ev["id"], []])
        elif is_line(ev):
            ino, off = parse_id(ev["id"])
            segs[-1][2].append((number_of(ev["data"]), ino, off, conn))
        elif ev["event"] is not None:
            raise AssertionError("unexpected event %r" % ev)
    return segs


def generations(d):
    """The files of the log on disk, oldest first: [(path, inode,
    [(n, offset)])]."""
    names = ["app.log.%d" % k for k in range(ROTATIONS, 0, -1)] + ["app.log"]
    out = []
    for name in names:
        p = os.path.join(d.dir, name)
        out.append((name, os.stat(p).st_ino, tsutil.file_numbers(p)))
    return out


def first_difference(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return "at %d: got %r, expected %r" % (i, g, w)
    if len(got) != len(want):
        return "got %d lines, expected %d (got ...%r, expected ...%r)" % (
            len(got), len(want), got[-2:], want[-2:])
    return None


class Logrotate(unittest.TestCase):
    def setUp(self):
        if not tsutil.logrotate_bin():
            self.skipTest("logrotate is not installed")

    def read_to(self, c, n, timeout=5.0):
        """Events of c up to the line numbered n or more."""
        return c.read_until(
            lambda ev: is_line(ev) and number_of(ev["data"]) >= n,
            timeout=timeout)

    def run_rotations(self, d, mode, resume):
        """Start a writer, rotate ROTATIONS times with logrotate while
        reading the stream, stop the writer and read to its last line.
        Returns (events as (connection index, event), lines written,
        writer, [(t before logrotate, t after)]).

        Open stream: each rotation starts when the writer has written its
        next PER_ROTATION lines (seen by polling the writer, so at any
        phase of its 5 ms period, not in step with the stream).  Resume:
        the client reads to its PER_ROTATION-th line, disconnects, lets the
        writer write 3 more lines (that it will have to find in the rotated
        file), logrotate runs, and the client reconnects at once with the
        last id it got."""
        extra = ()
        if mode == "copytruncate":
            # keeps its fd, as the apps copytruncate exists for
            w = tsutil.TimedWriter(d.path("app"), interval=INTERVAL)
        elif resume:
            # reopens its log for every line
            w = tsutil.ReopenWriter(d.path("app"), interval=INTERVAL)
        else:
            # keeps its fd and reopens when postrotate signals it, a while
            # after the rename: meanwhile its lines go to app.log.1
            flag = os.path.join(d.dir, "reopen.flag")
            w = tsutil.SignalledWriter(d.path("app"), flag,
                                       interval=INTERVAL)
            extra = ("postrotate", "    sleep 0.03; touch %s" % flag,
                     "endscript")
        lr = tsutil.Logrotate(d.path("app"), os.path.join(d.dir, "lr"),
                              mode=mode, extra=extra)
        events = []
        conn = 0
        c = d.stream("app")       # the file is empty: starts at 0
        w.start()
        rot_times = []
        try:
            target = 0
            for k in range(ROTATIONS):
                target += PER_ROTATION
                if resume:
                    events += [(conn, e) for e in self.read_to(c, target)]
                    last_id = [e["id"] for _, e in events if e["id"]][-1]
                    c.close()
                    self.assertTrue(w.wait_written(w.written + 3),
                                    "the writer stalled")
                else:
                    self.assertTrue(w.wait_written(target + 1),
                                    "the writer stalled")
                t0 = time.monotonic()
                lr.run()
                rot_times.append((t0, time.monotonic()))
                if resume:
                    conn += 1
                    c = d.stream("app", headers={"Last-Event-ID": last_id})
                else:
                    events += [(conn, e) for e in self.read_to(c, target)]
            target += PER_ROTATION
            events += [(conn, e) for e in self.read_to(c, target)]
        finally:
            total = w.stop()
        if mode == "create" and not resume:
            self.assertEqual(w.reopens, ROTATIONS, "postrotate signals")
        last = [number_of(e["data"]) for _, e in events if is_line(e)][-1]
        if last < total - 1:
            events += [(conn, e) for e in self.read_to(c, total - 1)]
        # nothing after the last line: no duplicate, no stray reset
        more = [e for e in c.quiet_for(0.1) if tsutil.is_message(e)]
        self.assertEqual(more, [], "events after the writer's last line")
        return events, total, w, rot_times

    def check_order(self, segs):
        """Every line once, numbers strictly increasing over the stream."""
        nums = [ln[0] for s in segs for ln in s[2]]
        bad = [(a, b) for a, b in zip(nums, nums[1:]) if b <= a]
        self.assertEqual(bad[:5], [], "numbers not strictly increasing "
                         "(duplicate or out of order), first pairs shown")

    def check_resets(self, segs, reason, inodes):
        """reason: the reason of every reset, or a tuple of those allowed."""
        reasons = reason if isinstance(reason, tuple) else (reason,)
        got = [s[0] for s in segs]
        self.assertEqual(len(got), ROTATIONS + 1, "the resets: %r" % got)
        self.assertIsNone(got[0])
        for r in got[1:]:
            self.assertIn(r, reasons, "the resets the stream sent: %r" % got)
        for k in range(1, len(segs)):
            self.assertEqual(segs[k][1], "%d:0" % inodes[k],
                             "id of reset %d" % k)

    # ---------------------------------------------------------- create

    def check_create(self, events, total):
        """Every line of every generation, once, in order, with its id on
        disk; a reset rotated (id NEWINODE:0) between two generations.
        Returns the generations."""
        segs = segments(events)
        self.check_order(segs)
        gens = generations(self.d)
        on_disk = sorted(n for _, _, lines in gens for n, _ in lines)
        self.assertEqual(on_disk, list(range(total)),
                         "harness: logrotate create mode lost lines?")
        nums = [ln[0] for s in segs for ln in s[2]]
        missing = sorted(set(range(total)) - set(nums))
        self.assertEqual(missing[:10], [], "%d of %d lines never arrived"
                         % (len(missing), total))
        self.check_resets(segs, "rotated", [g[1] for g in gens])
        for k, ((name, ino, lines), seg) in enumerate(zip(gens, segs)):
            got = [(n, i, off) for n, i, off, _ in seg[2]]
            want = [(n, ino, off) for n, off in lines]
            self.assertIsNone(first_difference(got, want),
                              "generation %d (%s, inode %d): (n, inode, "
                              "offset) of its lines" % (k, name, ino))
        return gens

    def test_create_open_stream(self):
        with Daemon() as d:
            self.d = d
            events, total, w, rot_times = self.run_rotations(
                d, "create", False)
            gens = self.check_create(events, total)
            # the app went on writing to the renamed file for a while (until
            # postrotate signalled it): those lines came before the reset
            for k in range(ROTATIONS):
                name, _, lines = gens[k]
                late = [n for n, _ in lines
                        if w.times[n] > rot_times[k][0] + 0.01]
                self.assertGreaterEqual(len(late), 2, "harness: lines "
                                        "written to %s after its rename" %
                                        name)

    def test_create_resume_across_each_rotation(self):
        with Daemon() as d:
            self.d = d
            events, total, w, _ = self.run_rotations(d, "create", True)
            gens = self.check_create(events, total)
            # each resumed connection began with the lines written after
            # its last id, in the rotated-away file (app.log.1 then)
            for conn in range(1, ROTATIONS + 1):
                first = [e for c, e in events
                         if c == conn and tsutil.is_message(e)][0]
                self.assertTrue(is_line(first), "connection %d began with "
                                "%r" % (conn, first))
                self.assertEqual(parse_id(first["id"])[0], gens[conn - 1][1],
                                 "connection %d began in another file than "
                                 "the rotated one" % conn)

    # ---------------------------------------------------- copytruncate

    def test_copytruncate_open_stream(self):
        with Daemon() as d:
            self.d = d
            events, total, w, rot_times = self.run_rotations(
                d, "copytruncate", False)
            segs = segments(events)
            self.check_order(segs)
            gens = generations(d)
            ino = d.ino("app")
            # "rotated" when the stream was still behind as the log was
            # truncated (a loaded machine): it finished the old lines from
            # the copy, whose offsets are those of the log
            copies = {i for _, i, _ in gens}
            self.check_resets(segs, ("truncated", "rotated"),
                              [ino] * (ROTATIONS + 1))
            for k, ((name, _, lines), seg) in enumerate(zip(gens, segs)):
                got = [(n, off) for n, i, off, _ in seg[2]]
                self.assertEqual({i for _, i, _, _ in seg[2]} - {ino} - copies,
                                 set(), "segment %d: inodes of ids" % k)
                # one generation of the file: consecutive numbers at
                # consecutive offsets, from offset 0
                if got:
                    n0 = got[0][0]
                    self.assertEqual(
                        got, [(n0 + j, (j + 1) * LINE_LEN)
                              for j in range(len(got))],
                        "segment %d is not one run of lines from offset 0"
                        % k)
                if k == ROTATIONS:
                    self.assertIsNone(first_difference(got, lines),
                                      "the current file vs the stream")
                    continue
                common = min(len(got), len(lines))
                self.assertEqual(got[:common], lines[:common],
                                 "segment %d vs %s" % (k, name))
                # lines of the copy the stream did not send: only those
                # written in the instant before logrotate ran
                t0 = rot_times[k][0]
                late = [n for n, _ in lines[common:]
                        if w.times[n] < t0 - SLACK]
                self.assertEqual(late, [], "lines of %s never sent, "
                                 "written more than %.2f s before "
                                 "logrotate ran" % (name, SLACK))
                if len(lines) > len(got):
                    sys.stderr.write(
                        "note: %s: %d line(s) at the end of the copy were "
                        "truncated before they could be read\n"
                        % (name, len(lines) - len(got)))

    def test_copytruncate_resume_across_each_rotation(self):
        # The client reconnects with an id in the truncated file, past its
        # new end: the rest is in the copy (app.log.1), then the current
        # file from 0.  Reconnecting soon (the new content is still shorter
        # than the old offset) is the case this covers.
        with Daemon() as d:
            self.d = d
            events, total, w, _ = self.run_rotations(
                d, "copytruncate", True)
            segs = segments(events)
            self.check_order(segs)
            gens = generations(d)
            live = d.ino("app")
            self.check_resets(segs, "rotated", [live] * (ROTATIONS + 1))
            for k, ((name, ino, lines), seg) in enumerate(zip(gens, segs)):
                got = [(n, off) for n, _, off, _ in seg[2]]
                self.assertIsNone(first_difference(got, lines),
                                  "segment %d vs %s: (n, offset)"
                                  % (k, name))
                # read live before the disconnect, from the copy after it
                for n, i, off, conn in seg[2]:
                    want = live if conn == k or k == ROTATIONS else ino
                    self.assertEqual(i, want, "inode in the id of line %d "
                                     "(connection %d)" % (n, conn))


def copytruncate(path, between=None, fsync=True):
    """logrotate's copytruncate by hand, step by step: open the log, copy
    it to PATH.1 (O_EXCL, fsync), then ftruncate the log to 0.
    between(): called after the copy, before the truncation."""
    src = os.open(path, os.O_RDWR)
    try:
        dst = os.open(path + ".1", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                      0o600)
        try:
            while True:
                chunk = os.read(src, 65536)
                if not chunk:
                    break
                os.write(dst, chunk)
            if fsync:
                os.fsync(dst)
        finally:
            os.close(dst)
        if between:
            between()
        os.ftruncate(src, 0)
    finally:
        os.close(src)


class CopytruncateResumeExactly(unittest.TestCase):
    """Resuming right across a copytruncate whose steps are timed by hand.
    The client read lines 0-9 and disconnected; line 10 was written after
    that: it is only in the copy once the log is truncated.  Expected:
    line 10 from the copy (its id in the copy), reset rotated (id
    LOG-INODE:0), then the log from offset 0."""

    F = tsutil.Writer.FMT

    def setUp(self):
        self.d = Daemon().start()
        d = self.d
        self.ino = d.ino("app")
        c = d.stream("app")
        d.write("app", "".join(self.F % i for i in range(10)))
        self.last = c.messages(10)[-1]["id"]
        self.assertEqual(self.last, "%d:%d" % (self.ino, 10 * LINE_LEN))
        c.close()
        d.write("app", self.F % 10)
        self.assertTrue(self.size_is(11 * LINE_LEN), "the daemon never saw "
                        "line 10")

    def tearDown(self):
        self.d.__exit__(None, None, None)

    def size_is(self, n):
        """Wait until the daemon has seen the log at n bytes."""
        return tsutil.wait_for(
            lambda: json.loads(self.d.get("/api/logs").body)[0]["size"] == n)

    def check_resumed(self, c, copied=11):
        """The rest of the copy (lines 10 to copied-1), reset rotated,
        then line 12 written now at offset 0 of the log."""
        d = self.d
        copy_ino = os.stat(d.path("app") + ".1").st_ino
        d.write("app", self.F % 12)
        got = [e for e in c.read_until(
            lambda e: e["data"] == "n=000012 payload") if tsutil.is_message(e)]
        self.assertEqual(
            [(e["event"], e["id"], e["data"]) for e in got],
            [(None, "%d:%d" % (copy_ino, (n + 1) * LINE_LEN),
              "n=%06d payload" % n) for n in range(10, copied)] +
            [("reset", "%d:0" % self.ino, '{"reason":"rotated"}'),
             (None, "%d:%d" % (self.ino, LINE_LEN), "n=000012 payload")])

    def test_a_line_written_between_copy_and_truncate(self):
        # logrotate(8): a line written between the copy and the truncation
        # is lost (here line 11); the daemon saw it before the truncation.
        # The copy still holds everything the client missed but line 11.
        def between():
            self.d.write("app", self.F % 11)
            self.assertTrue(self.size_is(12 * LINE_LEN))
        copytruncate(self.d.path("app"), between)
        self.assertTrue(self.size_is(0))
        c = self.d.stream("app", headers={"Last-Event-ID": self.last})
        self.check_resumed(c)

    def test_many_lines_seen_between_copy_and_truncate(self):
        # logrotate slow between its copy and its truncation (a busy
        # machine): the daemon saw the log at many sizes the copy does not
        # reach.  The copy is still found, by a size seen before it.
        def between():
            for n in range(11, 31):
                self.d.write("app", self.F % n)
                self.assertTrue(self.size_is((n + 1) * LINE_LEN))
        copytruncate(self.d.path("app"), between)
        self.assertTrue(self.size_is(0))
        c = self.d.stream("app", headers={"Last-Event-ID": self.last})
        self.check_resumed(c)

    def test_reconnect_at_once_after_the_truncation(self):
        # the app writes line 11 just before the copy; the client comes
        # back as soon as the log is truncated, before the daemon may have
        # looked at it again (no fsync: the steps as close as they can be)
        self.d.write("app", self.F % 11)
        copytruncate(self.d.path("app"), fsync=False)
        c = self.d.stream("app", headers={"Last-Event-ID": self.last})
        self.check_resumed(c, copied=12)


class CopytruncateOlderCopies(unittest.TestCase):
    """The copy of a truncated log is told from older copies beside it by
    its first bytes too, not only by the bytes before the position: lines
    that end alike (fixed-width padding here; in access logs, the same
    user agent) make every older copy long enough look like it at each
    line end.  The client read lines 0-9 of app.log and disconnected; line
    10 was written after that, then the log was copied to app.log.1 and
    truncated, with older copies app.log.2 to app.log.6 (other lines, the
    same width, longer) beside it: it must resume with line 10 of
    app.log.1."""

    F = "n=%06d " + "x" * 40 + "\n"

    def test_resume_finds_the_copy_not_an_older_one(self):
        F = self.F
        L = len(F % 0)
        with Daemon() as d:
            ino = d.ino("app")
            for k in range(2, 7):
                tsutil.write_file(d.path("app") + ".%d" % k, "".join(
                    F % (1000 * k + i) for i in range(30)))
            c = d.stream("app")
            d.write("app", "".join(F % i for i in range(10)))
            last = c.messages(10)[-1]["id"]
            self.assertEqual(last, "%d:%d" % (ino, 10 * L))
            c.close()
            d.write("app", F % 10)
            self.assertTrue(tsutil.wait_for(lambda: json.loads(d.get(
                "/api/logs").body)[0]["size"] == 11 * L))
            copytruncate(d.path("app"))
            self.assertTrue(tsutil.wait_for(lambda: json.loads(d.get(
                "/api/logs").body)[0]["size"] == 0))
            copy_ino = os.stat(d.path("app") + ".1").st_ino
            c = d.stream("app", headers={"Last-Event-ID": last})
            d.write("app", F % 11)
            got = [e for e in c.read_until(
                lambda e: e["data"] == (F % 11)[:-1])
                if tsutil.is_message(e)]
            self.assertEqual(
                [(e["event"], e["id"], e["data"]) for e in got],
                [(None, "%d:%d" % (copy_ino, 11 * L), (F % 10)[:-1]),
                 ("reset", "%d:0" % ino, '{"reason":"rotated"}'),
                 (None, "%d:%d" % (ino, L), (F % 11)[:-1])])


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
