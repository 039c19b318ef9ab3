#!/usr/bin/env python3
"""Following a path like `tail -F`, on a stream that stays open: deletion
and re-creation, a file missing at start, a symlink whose target changes,
truncation (to zero, and rewritten past the stream's offset in one step), a
directory created after start, and 1,000 logs in one directory."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, line_positions, reset_reason  # noqa: E402


class FollowCase(unittest.TestCase):
    def expect_reset(self, c, reason, ino=None):
        """The next event is reset `reason` (with the id INO:0 when ino is
        given: where the stream goes on)."""
        ev = c.next_message()
        self.assertEqual((ev["event"], reset_reason(ev)), ("reset", reason),
                         ev)
        if ino is not None:
            self.assertEqual(ev["id"], "%d:0" % ino, ev)
        return ev

    def expect_lines(self, c, ino, content, start=0):
        """The next events are the lines of `content` (bytes) at `start`
        of file `ino`, with their ids."""
        want = [("%d:%d" % (ino, off), raw.decode())
                for off, raw in line_positions(content, start)]
        got = c.messages(len(want))
        self.assertEqual([(e["event"], e["id"], e["data"]) for e in got],
                         [(None, i, t) for i, t in want])


class DeleteAndCreate(FollowCase):
    def test_delete_then_recreate(self):
        with Daemon(content={"app": b"a\n"}) as d:
            c = d.stream("app", tail=1)
            self.expect_lines(c, d.ino("app"), b"a\n")
            for k in range(3):
                os.unlink(d.path("app"))
                ev = self.expect_reset(c, "deleted")
                self.assertIsNone(ev["id"], "reset deleted has no position")
                body = ("new%d\n" % k).encode()
                tsutil.write_file(d.path("app"), body)
                ino = d.ino("app")
                self.expect_reset(c, "created", ino)
                self.expect_lines(c, ino, body)
                more = ("more%d\n" % k).encode()
                d.write("app", more)
                self.expect_lines(c, ino, more, len(body))

    def test_delete_and_recreate_at_once(self):
        # the last line written to the old file before it is deleted still
        # arrives; then deleted, created, and the new file from 0
        with Daemon(content={"app": b"a\n"}) as d:
            c = d.stream("app", tail=1)
            old = d.ino("app")
            self.expect_lines(c, old, b"a\n")
            for k in range(3):
                last = ("last%d\n" % k).encode()
                size = os.path.getsize(d.path("app"))
                d.write("app", last)
                os.unlink(d.path("app"))
                body = ("new%d\n" % k).encode()
                tsutil.write_file(d.path("app"), body)
                ino = d.ino("app")   # may reuse the number, once freed
                self.expect_lines(c, old, last, size)
                self.expect_reset(c, "deleted")
                self.expect_reset(c, "created", ino)
                self.expect_lines(c, ino, body)
                old = ino

    def test_missing_at_start(self):
        # one file appears by open(O_CREAT), the other by a rename into
        # place (how many programs write a file atomically)
        with Daemon(logs=["app", "mv"], missing=["app", "mv"]) as d:
            logs = json.loads(d.get("/api/logs").body)
            self.assertEqual([(x["name"], x["exists"]) for x in logs],
                             [("app", False), ("mv", False)])
            ca = d.stream("app")
            cm = d.stream("mv")
            tsutil.write_file(d.path("app"), b"one\ntwo\n")
            tmp = os.path.join(d.dir, "mv.tmp")
            tsutil.write_file(tmp, b"three\n")
            os.rename(tmp, d.path("mv"))
            ino = d.ino("app")
            self.expect_reset(ca, "created", ino)
            self.expect_lines(ca, ino, b"one\ntwo\n")
            ino_mv = d.ino("mv")
            self.expect_reset(cm, "created", ino_mv)
            self.expect_lines(cm, ino_mv, b"three\n")
            d.write("app", b"four\n")
            self.expect_lines(ca, ino, b"four\n", 8)
            logs = json.loads(d.get("/api/logs").body)
            self.assertEqual([(x["name"], x["exists"]) for x in logs],
                             [("app", True), ("mv", True)])


class Symlink(FollowCase):
    def test_symlink_retarget_then_target_rotated(self):
        d = Daemon(missing=["app"])
        tdir = os.path.join(d.dir, "targets")   # another directory
        os.mkdir(tdir)
        a = os.path.join(tdir, "a.log")
        b = os.path.join(tdir, "b.log")
        tsutil.write_file(a, b"a1\n")
        os.symlink(a, d.path("app"))
        with d:
            c = d.stream("app", tail=1)
            ino_a = os.stat(a).st_ino
            self.expect_lines(c, ino_a, b"a1\n")
            tsutil.append(a, b"a2\n")               # through the link
            self.expect_lines(c, ino_a, b"a2\n", 3)
            # retarget atomically: a new link renamed over the old one
            tsutil.write_file(b, b"b1\n")
            ino_b = os.stat(b).st_ino
            tmp = d.path("app") + ".tmp"
            os.symlink(b, tmp)
            os.rename(tmp, d.path("app"))
            self.expect_reset(c, "rotated", ino_b)
            self.expect_lines(c, ino_b, b"b1\n")
            tsutil.append(b, b"b2\n")
            self.expect_lines(c, ino_b, b"b2\n", 3)
            # the target is rotated in its own directory, the link stays
            os.rename(b, b + ".1")
            tsutil.append(b + ".1", b"b3\n")     # its writer, not moved yet
            tsutil.write_file(b, b"c1\n")
            ino_c = os.stat(b).st_ino
            self.expect_lines(c, ino_b, b"b3\n", 6)
            self.expect_reset(c, "rotated", ino_c)
            self.expect_lines(c, ino_c, b"c1\n")
            tsutil.append(b, b"c2\n")
            self.expect_lines(c, ino_c, b"c2\n", 3)


class Truncation(FollowCase):
    def test_truncate_to_zero(self):
        with Daemon(content={"app": b"one\ntwo\nthree\n"}) as d:
            c = d.stream("app", tail=1)
            ino = d.ino("app")
            self.expect_lines(c, ino, b"three\n", 8)
            for k in range(3):
                os.truncate(d.path("app"), 0)
                # caught with nothing written after it
                self.expect_reset(c, "truncated", ino)
                body = ("x%d\n" % k).encode()
                d.write("app", body)
                self.expect_lines(c, ino, body)
                d.write("app", b"y\n")
                self.expect_lines(c, ino, b"y\n", len(body))

    def test_truncate_then_grow_past_the_old_offset(self):
        # The file is rewritten in one step (O_TRUNC, then one write of
        # more bytes than it had) under a stream that has read it to the
        # end: the size never shows a shrink to the daemon, the bytes
        # before the old size changed.  Expected: reset truncated, then the
        # new content from offset 0, nothing of it read at the old offset.
        # Each round first appends a line and waits for it on the stream:
        # the daemon has just looked at the file, so (checking a file at
        # most once a millisecond) it does not look again between the
        # truncation and the write.
        old = b"".join(b"old line %04d\n" % i for i in range(200))
        with Daemon(content={"app": old}) as d:
            ino = d.ino("app")
            c = d.stream("app", tail=1)
            self.expect_lines(c, ino, old[-14:], len(old) - 14)
            size = len(old)
            for k in range(5):
                sync = b"sync %d\n" % k
                d.write("app", sync)
                self.expect_lines(c, ino, sync, size)
                size += len(sync)
                new = b"".join(b"rewrite %d, line %05d\n" % (k, i)
                               for i in range(size // 22 + 3))
                self.assertGreater(len(new), size)
                fd = os.open(d.path("app"), os.O_WRONLY | os.O_TRUNC)
                try:
                    self.assertEqual(os.write(fd, new), len(new))
                finally:
                    os.close(fd)
                self.expect_reset(c, "truncated", ino)
                self.expect_lines(c, ino, new)
                size = len(new)
            self.assertEqual(c.quiet_for(0.1), [])


class DirectoryCreatedLater(FollowCase):
    def test_log_in_a_directory_created_after_start(self):
        d = Daemon(logs=())
        deep = os.path.join(d.dir, "sub", "dir", "app.log")
        steps = os.path.join(d.dir, "one", "two", "steps.log")
        d.extra_args = ["app=%s" % deep, "steps=%s" % steps]
        with d:
            logs = json.loads(d.get("/api/logs").body)
            self.assertEqual([(x["name"], x["exists"]) for x in logs],
                             [("app", False), ("steps", False)])
            ca = d.stream("app")
            cs = d.stream("steps")
            # sub/dir made in one go, then the file
            os.makedirs(os.path.dirname(deep))
            tsutil.write_file(deep, b"hello\n")
            ino = os.stat(deep).st_ino
            self.expect_reset(ca, "created", ino)
            self.expect_lines(ca, ino, b"hello\n")
            tsutil.append(deep, b"again\n")
            self.expect_lines(ca, ino, b"again\n", 6)
            # one/, then one/two/, then the file: three separate steps
            os.mkdir(os.path.join(d.dir, "one"))
            os.mkdir(os.path.dirname(steps))
            tsutil.write_file(steps, b"step\n")
            ino_s = os.stat(steps).st_ino
            self.expect_reset(cs, "created", ino_s)
            self.expect_lines(cs, ino_s, b"step\n")


    def test_many_directories_created_after_start(self):
        # The same, 30 times over, each log alone in a tree of its own
        # (b00/ exists, b00/sub/dir/ is made in one go, then the file),
        # once the daemon is idle: sub/dir/ may appear while the daemon is
        # between watching dir/ (missing) and watching sub/.
        n = 30
        d = Daemon(logs=())
        paths = []
        for k in range(n):
            os.mkdir(os.path.join(d.dir, "b%02d" % k))
            paths.append(os.path.join(d.dir, "b%02d" % k, "sub", "dir",
                                      "app.log"))
        d.extra_args = ["l%02d=%s" % (k, p) for k, p in enumerate(paths)]
        with d:
            streams = [d.stream("l%02d" % k) for k in range(n)]
            for k, p in enumerate(paths):
                os.makedirs(os.path.dirname(p))
                tsutil.write_file(p, b"x\n")
                ino = os.stat(p).st_ino
                try:
                    ev = streams[k].next_message(timeout=3)
                except AssertionError as e:
                    logs = json.loads(d.get("/api/logs").body)
                    self.fail("log %d of %d: its file was never seen (%s); "
                              "/api/logs says %r" % (k, n, e, logs[k]))
                self.assertEqual((ev["event"], reset_reason(ev), ev["id"]),
                                 ("reset", "created", "%d:0" % ino))
                self.expect_lines(streams[k], ino, b"x\n")


class ManyLogs(FollowCase):
    N = 1000
    SAMPLE = 50

    def test_1000_logs_in_one_directory(self):
        names = ["log%04d" % i for i in range(self.N)]
        with Daemon(logs=names, use_config=True) as d:
            logs = json.loads(d.get("/api/logs").body)
            self.assertEqual([x["name"] for x in logs], names)
            sample = names[::self.N // self.SAMPLE][:self.SAMPLE]
            self.assertEqual(len(sample), self.SAMPLE)
            streams = {n: d.stream(n) for n in sample}
            for n in sample:
                d.write(n, "line of %s\n" % n)
            for n in sample:
                body = ("line of %s\n" % n).encode()
                self.expect_lines(streams[n], d.ino(n), body)
            # and a second line each, after the first was delivered
            for n in sample:
                d.write(n, "second\n")
            for n in sample:
                self.expect_lines(streams[n], d.ino(n), b"second\n",
                                  len("line of %s\n" % n))


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
