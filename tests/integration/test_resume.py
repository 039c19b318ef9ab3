#!/usr/bin/env python3
"""Resuming a stream: Last-Event-ID header, ?lastEventId=, precedence,
bare offsets, reconnecting under load, and reset "lost"."""

import json
import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, Writer, line_positions  # noqa: E402

LINES = ["line%02d" % i for i in range(1, 11)]
CONTENT = "".join(s + "\n" for s in LINES).encode()
# offset just after line i (1-based): 7 * i
POS = [off for off, _ in line_positions(CONTENT)]


def q(s):
    return urllib.parse.quote(s, safe="")


class Resume(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(content={"app": CONTENT}).start()
        self.ino = self.d.ino("app")

    def tearDown(self):
        self.d.__exit__(None, None, None)

    def id_after(self, n):
        """The id of line n (1-based): resuming there sends line n+1."""
        return "%d:%d" % (self.ino, POS[n - 1])

    def first_lines(self, c, k):
        got = c.messages(k)
        for e in got:
            self.assertIsNone(e["event"], e)
        return [e["data"] for e in got]

    def test_header_starts_right_after_the_line(self):
        c = self.d.stream("app", headers={"Last-Event-ID": self.id_after(3)})
        got = c.messages(7)
        self.assertEqual([(e["id"], e["data"]) for e in got],
                         [(self.id_after(i), LINES[i - 1])
                          for i in range(4, 11)])
        self.d.write("app", "new\n")
        self.assertEqual(c.next_message()["data"], "new")

    def test_query_parameter(self):
        c = self.d.stream("app", lastEventId=q(self.id_after(6)))
        self.assertEqual(self.first_lines(c, 4), LINES[6:10])

    def test_header_wins_over_query(self):
        c = self.d.stream("app", headers={"Last-Event-ID": self.id_after(8)},
                          lastEventId=q(self.id_after(2)))
        self.assertEqual(self.first_lines(c, 2), ["line09", "line10"])

    def test_id_wins_over_tail(self):
        c = self.d.stream("app", headers={"Last-Event-ID": self.id_after(2)},
                          tail=1)
        self.assertEqual(self.first_lines(c, 8), LINES[2:])
        c2 = self.d.stream("app", lastEventId=q(self.id_after(7)), tail=9)
        self.assertEqual(self.first_lines(c2, 3), LINES[7:])

    def test_bare_offset(self):
        c = self.d.stream("app", headers={"Last-Event-ID": str(POS[3])})
        got = c.messages(6)
        self.assertEqual([(e["id"], e["data"]) for e in got],
                         [(self.id_after(i), LINES[i - 1])
                          for i in range(5, 11)])
        c0 = self.d.stream("app", headers={"Last-Event-ID": "0"})
        self.assertEqual(self.first_lines(c0, 10), LINES)

    def test_offset_zero_and_end(self):
        c = self.d.stream("app",
                          headers={"Last-Event-ID": "%d:0" % self.ino})
        self.assertEqual(self.first_lines(c, 10), LINES)
        end = self.d.stream("app", headers={"Last-Event-ID":
                                            self.id_after(10)})
        self.d.write("app", "new\n")
        ev = end.next_message()
        self.assertEqual((ev["event"], ev["data"]), (None, "new"))

    def check_lost(self, c):
        ev = c.next_message()
        self.assertEqual(ev["event"], "reset", ev)
        self.assertEqual(json.loads(ev["data"]), {"reason": "lost"})
        ev = c.next_message()
        self.assertEqual((ev["event"], ev["id"], ev["data"]),
                         (None, self.id_after(1), "line01"))
        self.assertEqual(self.first_lines(c, 9), LINES[1:])

    def test_lost_offset_past_end(self):
        c = self.d.stream("app", headers={"Last-Event-ID": "%d:%d" % (
            self.ino, len(CONTENT) + 7)})
        self.check_lost(c)

    def test_lost_offset_not_after_a_newline(self):
        c = self.d.stream("app",
                          headers={"Last-Event-ID": "%d:3" % self.ino})
        self.check_lost(c)
        c2 = self.d.stream("app", lastEventId=q("%d:%d" % (
            self.ino, POS[4] - 1)))
        self.check_lost(c2)

    def test_lost_unknown_inode(self):
        other = self.ino + 1000003
        c = self.d.stream("app",
                          headers={"Last-Event-ID": "%d:%d" % (other, POS[2])})
        self.check_lost(c)


class ReconnectUnderLoad(unittest.TestCase):
    def test_reconnects_lose_and_repeat_nothing(self):
        with Daemon() as d:
            c = d.stream("app")
            seen = []
            last_id = None
            w = Writer(d.path("app"), interval=0.002).start()
            try:
                for i, k in enumerate([3, 1, 12, 5, 20, 2, 8, 4, 15, 6]):
                    for e in c.messages(k, timeout=10):
                        self.assertIsNone(e["event"], e)
                        seen.append(tsutil.number_of(e["data"]))
                        last_id = e["id"]
                    c.close()
                    if i % 3 == 2:
                        # an EventSource URL with the id in the query and
                        # the newer one in the header
                        c = d.stream("app",
                                     headers={"Last-Event-ID": last_id},
                                     lastEventId="1:0", tail=3)
                    elif i % 3 == 1:
                        c = d.stream("app", lastEventId=q(last_id))
                    else:
                        c = d.stream("app",
                                     headers={"Last-Event-ID": last_id})
                self.assertTrue(w.wait_written(len(seen) + 5))
            finally:
                total = w.stop()
            # the rest, after the writer stopped
            if seen[-1] < total - 1:
                for e in c.read_until(lambda e: tsutil.number_of(
                        e["data"]) == total - 1 if tsutil.is_message(e)
                        else False, timeout=10):
                    if tsutil.is_message(e):
                        seen.append(tsutil.number_of(e["data"]))
            self.assertEqual(seen, list(range(total)))


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
