#!/usr/bin/env python3
"""GET /api/logs/NAME/lines?before=ID&n=N: the N lines ending at a
position, oldest first, the line whose id is ID last; with filters, the
last N matching lines (with "match" ranges for grep); within the one file
the id names, also a rotated generation beside the path; 400 for a missing
or malformed `before` or a bad `n`, 410 for a position that is gone."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, line_positions  # noqa: E402

LINES = ["line %d %s" % (i, "ERR" if i % 3 == 0 else "ok")
         for i in range(1, 201)]
CONTENT = "".join(s + "\n" for s in LINES).encode()
POS = [off for off, _ in line_positions(CONTENT)]


class Lines(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(content={"app": CONTENT}).start()
        cls.ino = cls.d.ino("app")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def get(self, query):
        return self.d.get("/api/logs/app/lines?" + query)

    def lines(self, query):
        r = self.get(query)
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.headers["content-type"].startswith(
            "application/json"))
        return json.loads(r.text)["lines"]

    def test_n_lines_ending_at_the_position(self):
        got = self.lines("before=%d:%d&n=5" % (self.ino, POS[99]))
        self.assertEqual([x["line"] for x in got], LINES[95:100])
        self.assertEqual([x["id"] for x in got],
                         ["%d:%d" % (self.ino, p) for p in POS[95:100]])

    def test_default_n_and_the_start_of_the_file(self):
        got = self.lines("before=%d:%d" % (self.ino, POS[149]))
        self.assertEqual(len(got), 100)
        self.assertEqual(got[-1]["line"], LINES[149])
        got = self.lines("before=%d:%d&n=50" % (self.ino, POS[9]))
        self.assertEqual([x["line"] for x in got], LINES[:10])
        self.assertEqual(self.lines("before=%d:0" % self.ino), [])

    def test_filters_and_match_ranges(self):
        got = self.lines("before=%d:%d&n=4&grep=ERR" % (self.ino, POS[29]))
        self.assertEqual([x["line"] for x in got],
                         [LINES[i] for i in (17, 20, 23, 26, 29)][-4:])
        for x in got:
            s, e = x["match"][0]
            self.assertEqual(x["line"].encode()[s:e], b"ERR")
        got = self.lines("before=%d:%d&n=3&exclude=ERR" % (self.ino,
                                                          POS[29]))
        self.assertEqual([x["line"] for x in got],
                         [LINES[i] for i in (25, 27, 28)])
        self.assertNotIn("match", got[0])

    def test_bad_requests(self):
        for query, word in [("n=3", "before"), ("before=", "before"),
                            ("before=12", "before"),
                            ("before=1:2&before=1:2", "before"),
                            ("before=%d:7&n=0" % self.ino, "n"),
                            ("before=%d:7&n=10001" % self.ino, "n"),
                            ("before=%d:7&grep=(" % self.ino, "grep")]:
            with self.subTest(query=query):
                tsutil.check_one_line_error(self, self.get(query), 400, word)
        r = self.d.get("/api/logs/nope/lines?before=1:0")
        tsutil.check_one_line_error(self, r, 404, "nope")

    def test_gone_positions_are_410(self):
        for query in ["before=%d:%d" % (self.ino, POS[3] + 2),  # mid-line
                      "before=%d:%d" % (self.ino, len(CONTENT) + 7),
                      "before=999999999:7"]:
            with self.subTest(query=query):
                tsutil.check_one_line_error(self, self.get(query), 410)

    def test_never_reads_a_file_that_is_not_the_log(self):
        other = os.path.join(os.path.dirname(self.d.path("app")),
                             "notes.txt")
        tsutil.write_file(other, b"secret\n")
        r = self.get("before=%d:7" % os.stat(other).st_ino)
        tsutil.check_one_line_error(self, r, 410)
        self.assertNotIn("secret", r.text)


class Rotated(unittest.TestCase):
    def test_within_a_rotated_generation(self):
        with Daemon(content={"app": b"a1\na2\na3\n"}) as d:
            old = d.ino("app")
            os.rename(d.path("app"), d.path("app") + ".1")
            tsutil.write_file(d.path("app"), b"b1\n")
            r = d.get("/api/logs/app/lines?before=%d:6&n=10" % old)
            self.assertEqual(r.status, 200, r.text)
            got = json.loads(r.text)["lines"]
            self.assertEqual([(x["id"], x["line"]) for x in got],
                             [("%d:3" % old, "a1"), ("%d:6" % old, "a2")])


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
