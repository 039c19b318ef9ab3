#!/usr/bin/env python3
"""What happens to the file under a stream: rotation, truncation, and
resuming from an id whose file was rotated away."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, wait_for  # noqa: E402


class Rotation(unittest.TestCase):
    def assert_reset(self, ev, reason):
        self.assertEqual(ev["event"], "reset", ev)
        self.assertEqual(json.loads(ev["data"]), {"reason": reason})

    def test_rename_and_create(self):
        with Daemon() as d:
            c = d.stream("app")
            old = d.ino("app")
            d.write("app", "a\n")
            self.assertEqual(c.next_message()["id"], "%d:2" % old)
            # several rotations: a line written right after the first line
            # of the new file was delivered must arrive too
            for k in range(10):
                os.rename(d.path("app"), d.path("app") + ".1")
                # the old writer still appends to the renamed file first
                tsutil.append(d.path("app") + ".1", "b%d\n" % k)
                tsutil.write_file(d.path("app"), "c%d\n" % k)
                new = d.ino("app")
                ev = c.next_message()
                self.assertEqual((ev["id"], ev["data"]),
                                 ("%d:%d" % (old, os.path.getsize(
                                     d.path("app") + ".1")), "b%d" % k))
                self.assert_reset(c.next_message(), "rotated")
                ev = c.next_message()
                self.assertEqual((ev["event"], ev["id"], ev["data"]),
                                 (None, "%d:3" % new, "c%d" % k))
                d.write("app", "d%d\n" % k)
                try:
                    ev = c.next_message(timeout=3)
                except AssertionError as e:
                    self.fail("rotation %d: line 'd%d', appended to the new "
                              "file right after its first line was "
                              "delivered, never arrived (%s)" % (k, k, e))
                self.assertEqual((ev["id"], ev["data"]),
                                 ("%d:6" % new, "d%d" % k))
                old = new

    def test_truncate(self):
        with Daemon(content={"app": b"one\ntwo\nthree\n"}) as d:
            c = d.stream("app", tail=1)
            ino = d.ino("app")
            self.assertEqual(c.next_message()["data"], "three")
            with open(d.path("app"), "r+b") as f:
                f.truncate(0)
            d.write("app", "x\n")
            self.assert_reset(c.next_message(), "truncated")
            ev = c.next_message()
            self.assertEqual((ev["event"], ev["id"], ev["data"]),
                             (None, "%d:2" % ino, "x"))

    def test_resume_from_rotated_away_file(self):
        with Daemon(content={"app": b"a\nb\nc\n"}) as d:
            old = d.ino("app")
            os.rename(d.path("app"), d.path("app") + ".1")
            tsutil.write_file(d.path("app"), "d\n")
            new = d.ino("app")

            def switched():
                logs = json.loads(d.get("/api/logs").body)
                return logs[0]["size"] == 2

            self.assertTrue(wait_for(switched), "rotation not seen")
            c = d.stream("app", headers={"Last-Event-ID": "%d:2" % old})
            got = c.messages(4)
            self.assertEqual([(e["event"], e["data"]) for e in got[:2]],
                             [(None, "b"), (None, "c")], got)
            self.assertEqual([e["id"] for e in got[:2]],
                             ["%d:4" % old, "%d:6" % old])
            self.assert_reset(got[2], "rotated")
            self.assertEqual((got[3]["id"], got[3]["data"]),
                             ("%d:2" % new, "d"))


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
