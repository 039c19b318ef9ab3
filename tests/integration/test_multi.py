#!/usr/bin/env python3
"""Several logs on one connection: GET /api/events?log=A&log=B (contract:
"Several logs on one connection"; issue 8, "Behaviour").

What is checked:

* the event format: data {"log","line","offset"} (+ "match" with grep),
  reset and filter-limit with "log"; every id is the cursor
  A=INODE:OFFSET,B=INODE:OFFSET,... of every requested log in request
  order (0:0 for a file not created yet), and an event moves only the
  entry of its own log;
* tail=N: the last N (matching) lines of each log, one log after another,
  then live; an id taken in the middle of that backlog resumes exactly;
* resuming from a cursor (header, lastEventId, header over query) is exact
  for each log, also across a rotation (rename + create) of one log while
  another is busy, across a real logrotate copytruncate of one of them, and
  across a daemon restart; an omitted log starts fresh; entries of logs not
  requested are ignored; A=0:0 for a file that exists now starts it from 0
  with reset created;
* malformed cursors, more than 32 / repeated / bad / unknown logs: 400/404
  with one line naming the parameter;
* one connection counts once against max_clients and in /metrics, and a
  disconnect frees its place (and every log's hold on it);
* fairness: a quiet log's line is not held up behind a flooded log;
* wake-up races: 2-4 logs appended at the same instant by several threads,
  round after round, several connections: every line once, in order, and
  every round delivered within a bound (no lost wake-up)."""

import json
import os
import random
import re
import socket
import statistics
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import (Daemon, SSEClient, Writer, expected_text,  # noqa: E402
                    is_line, is_message, number_of, wait_for)

LINE_LEN = len(Writer.FMT % 0)
CATASTROPHIC = "(a+)+$"                 # exponential on "aaa...ab"
CAT_LINE = b"a" * 65536 + b"b\n"


def q(s):
    return urllib.parse.quote(s, safe="")


def multi_path(logs, params=()):
    """/api/events?log=A&log=B&...&k=v (values URL-encoded)."""
    parts = ["log=%s" % q(n) for n in logs]
    parts += ["%s=%s" % (k, q(v)) for k, v in params]
    return "/api/events?" + "&".join(parts)


def open_multi(d, logs, params=(), headers=None, expect=200, timeout=5.0):
    path = multi_path(logs, params)
    c = SSEClient(d.port, path, headers=headers, timeout=timeout)
    d._clients.append(c)
    if expect is not None and c.status != expect:
        raise AssertionError("GET %s: status %d, expected %d: %r"
                             % (path, c.status, expect, c.conn.buf[:200]))
    return c


def parse_cursor(cid):
    """"A=1:2,B=3:4" -> [("A", 1, 2), ("B", 3, 4)]; fails on anything
    else."""
    out = []
    for ent in (cid or "").split(","):
        m = re.match(r"^([A-Za-z0-9._-]{1,64})=(\d+):(\d+)$", ent)
        if not m:
            raise AssertionError("not a cursor id: %r" % (cid,))
        out.append((m.group(1), int(m.group(2)), int(m.group(3))))
    return out


def cursor(entries):
    return ",".join("%s=%d:%d" % e for e in entries)


def entry(cid, name):
    """(inode, offset) of log `name` in cursor id cid."""
    for n, ino, off in parse_cursor(cid):
        if n == name:
            return ino, off
    raise AssertionError("%r has no entry for %r" % (cid, name))


def data_of(ev):
    return json.loads(ev["data"])


def file_lines(path, start=0):
    """[(offset after the line, text)] of the complete lines of a file."""
    return [(off, raw.decode("utf-8", "replace")) for off, raw in
            tsutil.line_positions(tsutil.read_bytes(path)[start:], start)]


class Checker:
    """Follows the ids of one multi-log stream: every id names exactly the
    requested logs in order; a line, reset or filter-limit moves at most
    the entry of its own log (a line always moves it, to its offset); an
    id-only event moves at most one entry.

    With a grep (grep: the pattern as a Python regex, paths: {log: file}),
    the entry of another log may also move forward within its file over
    lines that the filter drops (they move the position without an event
    of their own); the skipped bytes are checked: complete lines, none of
    which matches."""

    def __init__(self, test, logs, grep=None, paths=None):
        self.t = test
        self.logs = list(logs)
        self.grep = grep
        self.paths = paths or {}
        self.prev = None

    def skipped_ok(self, log, old, new):
        """May log's entry move from old to new (inode, offset) without an
        event of its own?"""
        if not self.grep or log not in self.paths or old[0] != new[0] \
                or new[1] <= old[1]:
            return False
        data = tsutil.read_bytes(self.paths[log])[old[1]:new[1]]
        if not data.endswith(b"\n"):
            return False
        rx = re.compile(self.grep)
        return not any(rx.search(raw.decode("utf-8", "replace"))
                       for raw in data[:-1].split(b"\n"))

    def feed(self, ev):
        t = self.t
        if ev["id"] is None:
            t.assertFalse(is_message(ev), "a message without an id: %r"
                          % ev)
            return
        ents = parse_cursor(ev["id"])
        t.assertEqual([n for n, _, _ in ents], self.logs,
                      "id %r does not list the requested logs in order"
                      % ev["id"])
        cur = {n: (i, o) for n, i, o in ents}
        moved = set()
        if self.prev is not None:
            moved = {n for n in self.logs if cur[n] != self.prev[n]}
            if ev["data"] is not None:
                own = data_of(ev).get("log")
                moved = {n for n in moved if n == own or not
                         self.skipped_ok(n, self.prev[n], cur[n])}
        if ev["event"] is None and ev["data"] is None:
            t.assertLessEqual(len(moved), 1, "an id-only event moved %r: "
                              "%r" % (sorted(moved), ev))
        else:
            d = data_of(ev)
            log = d.get("log")
            t.assertIn(log, self.logs, ev)
            t.assertLessEqual(moved, {log}, "event of %r moved %r in its "
                              "id: %r" % (log, sorted(moved), ev["id"]))
            if ev["event"] is None:
                keys = {"log", "line", "offset"} | (
                    {"match"} if self.grep is not None else set())
                t.assertEqual(set(d), keys, ev)
                t.assertEqual(cur[log][1], d["offset"],
                              "offset in data vs id: %r" % ev)
                if self.prev is not None:
                    t.assertIn(log, moved, "a line did not move its "
                               "log's entry: %r" % ev)
            elif ev["event"] == "reset":
                t.assertEqual(set(d), {"log", "reason"}, ev)
                t.assertEqual(cur[log][1], 0, "reset id: %r" % ev)
            elif ev["event"] == "filter-limit":
                t.assertEqual(set(d), {"log", "offset"}, ev)
            else:
                t.fail("unexpected event type: %r" % ev)
        self.prev = cur

    def feed_all(self, evs):
        for e in evs:
            self.feed(e)
        return evs


def per_log(evs):
    """{log: [(inode, offset, line)]} of the line events, and
    {log: [(reason, inode)]} of the resets."""
    lines, resets = {}, {}
    for e in evs:
        if e["data"] is None:
            continue
        d = data_of(e)
        ino, off = entry(e["id"], d["log"])
        if e["event"] is None:
            lines.setdefault(d["log"], []).append((ino, off, d["line"]))
        elif e["event"] == "reset":
            resets.setdefault(d["log"], []).append((d["reason"], ino))
    return lines, resets


def read_lines(c, n, timeout=5.0):
    """Events of c up to its n-th line event (all events returned)."""
    k = [0]

    def pred(e):
        if is_line(e):
            k[0] += 1
        return k[0] >= n
    return c.read_until(pred, timeout=timeout)


def line_is(log, text):
    def pred(e):
        return is_line(e) and data_of(e) == dict(
            data_of(e), log=log, line=text)
    return pred


class MDaemon(Daemon):
    """A Daemon that can be stopped and started again on the same files."""

    def restart(self, test):
        self.stop()
        self.check_exit()
        test.assertIsNone(tsutil.sanitizer_problem(self.stderr()))
        self.returncode = None
        self.proc = None
        self.start()


# ============================================================== format

class Format(unittest.TestCase):
    def test_events_and_ids(self):
        with Daemon(logs=["a", "b", "c"], missing=["c"],
                    content={"a": b"old a\n", "b": b"old b\n"}) as d:
            c = open_multi(d, ["a", "b", "c"])
            self.assertEqual(c.headers.get("content-type"),
                             "text/event-stream; charset=utf-8")
            self.assertEqual(c.headers.get("cache-control"), "no-cache")
            first = c.next_event()
            self.assertEqual(first["retry"], 2000, "the stream's first "
                             "field is retry: %r" % first)
            self.assertIsNone(first["data"])
            chk = Checker(self, ["a", "b", "c"])
            ia, ib = d.ino("a"), d.ino("b")
            script = [("a", "a one"), ("b", "b one"), ("b", "b two"),
                      ("a", "a two"), ("a", "a three"), ("b", "b three")]
            for log, text in script:
                d.write(log, text + "\n")
                ev = c.next_message()
                chk.feed(ev)
                self.assertIsNone(ev["event"], ev)
                self.assertEqual(data_of(ev), {
                    "log": log, "line": text,
                    "offset": os.path.getsize(d.path(log))})
                # the whole cursor: every log where it is now on disk
                self.assertEqual(ev["id"], cursor([
                    ("a", ia, os.path.getsize(d.path("a"))),
                    ("b", ib, os.path.getsize(d.path("b"))),
                    ("c", 0, 0)]))
            # two lines of one log in one write: two events, each its id
            d.write("b", "b four\nb five\n")
            evs = c.messages(2)
            chk.feed_all(evs)
            self.assertEqual([entry(e["id"], "b")[1] for e in evs],
                             [off for off, _ in file_lines(d.path("b"))[-2:]])

    def test_lines_as_json(self):
        raws = [b'he said "hi" \\ to\tme', "caf\u00e9 \u20ac \U0001F600"
                .encode(), b"bad \xff\xfe utf8", b"cr\rinside",
                b"nul\x00byte", b"crlf at the end\r", b"</script>\x1b[31m",
                b""]
        with Daemon(logs=["a", "b"]) as d:
            c = open_multi(d, ["a", "b"])
            d.write("b", b"".join(r + b"\n" for r in raws))
            evs = c.messages(len(raws))
            Checker(self, ["a", "b"]).feed_all(evs)
            self.assertEqual([data_of(e)["line"] for e in evs],
                             [expected_text(r) for r in raws])
            for e in evs:
                self.assertEqual(data_of(e)["log"], "b")
                self.assertNotIn("\n", e["data"])

    def test_grep_match_and_dropped_lines(self):
        # match: every match of the grep as UTF-8 byte ranges into line
        with Daemon(logs=["a", "b"]) as d:
            c = open_multi(d, ["a", "b"], [("grep", "err")])
            chk = Checker(self, ["a", "b"], grep="err",
                          paths={n: d.path(n) for n in "ab"})
            d.write("a", "all fine\n")
            d.write("b", "\u00e9t\u00e9 err, err\u20acerr\n")
            ev = c.next_message()
            chk.feed(ev)
            line = "\u00e9t\u00e9 err, err\u20acerr"
            b = line.encode()
            want = [[m.start(), m.end()] for m in re.finditer(b"err", b)]
            self.assertEqual(data_of(ev), {
                "log": "b", "line": line, "match": want,
                "offset": os.path.getsize(d.path("b"))})
            d.write("a", "still fine\nan error\n")
            ev = c.next_message()
            chk.feed(ev)
            self.assertEqual(data_of(ev)["line"], "an error")
            self.assertEqual(data_of(ev)["match"], [[3, 6]])
            self.assertEqual(entry(ev["id"], "a"),
                             (d.ino("a"), os.path.getsize(d.path("a"))))
            # lines that are dropped still move their log's position:
            # soon an id (id-only or not) has a at its end, b unchanged
            d.write("a", "dropped\n")
            end = (d.ino("a"), os.path.getsize(d.path("a")))
            evs = c.read_until(lambda e: e["id"] is not None and
                               entry(e["id"], "a") == end, timeout=3)
            chk.feed_all(evs)
            self.assertEqual([e for e in evs if is_message(e)], [],
                             "a dropped line was sent")
            self.assertEqual(entry(evs[-1]["id"], "b"),
                             (d.ino("b"), os.path.getsize(d.path("b"))))
            # icase applies to every log
            c2 = open_multi(d, ["a", "b"], [("grep", "ERR"),
                                            ("icase", "1")])
            d.write("b", "Err in b\n")
            d.write("a", "ERR in a\n")
            evs = [e for e in c2.messages(2)]
            self.assertEqual(sorted(data_of(e)["line"] for e in evs),
                             ["ERR in a", "Err in b"])

    def test_filter_limit_names_its_log(self):
        with Daemon(logs=["a", "b"]) as d:
            c = open_multi(d, ["a", "b"], [("grep", CATASTROPHIC)])
            # what the pattern means on these lines (the limit counts as
            # no match), in a form Python's re can run
            chk = Checker(self, ["a", "b"], grep="^a+$",
                          paths={n: d.path(n) for n in "ab"})
            d.write("b", CAT_LINE + b"aaa\n")
            evs = c.read_until(line_is("b", "aaa"), timeout=15)
            chk.feed_all(evs)
            lim = [e for e in evs if e["event"] == "filter-limit"]
            self.assertEqual(len(lim), 1, evs)
            self.assertEqual(data_of(lim[0])["log"], "b")
            self.assertEqual(data_of(lim[0])["offset"], len(CAT_LINE))
            self.assertEqual([data_of(e)["line"] for e in evs
                              if is_line(e)], ["aaa"])
            # the same log again: no second filter-limit for it
            d.write("b", CAT_LINE + b"aaaa\n")
            evs = c.read_until(line_is("b", "aaaa"), timeout=15)
            chk.feed_all(evs)
            self.assertEqual([e for e in evs if e["event"]], [], evs)


# ================================================================ tail

class Tail(unittest.TestCase):
    A = b"".join(b"a%d\n" % i for i in range(1, 6))
    B = b"".join(b"b%d\n" % i for i in range(1, 4))

    def test_tail_one_log_after_another_then_live(self):
        with Daemon(logs=["a", "b", "c", "d"], missing=["d"],
                    content={"a": self.A, "b": self.B}) as d:
            names = ["a", "b", "c", "d"]
            c = open_multi(d, names, [("tail", "2")])
            chk = Checker(self, names)
            evs = c.messages(4)
            chk.feed_all(evs)
            self.assertEqual([(data_of(e)["log"], data_of(e)["line"])
                              for e in evs],
                             [("a", "a4"), ("a", "a5"),
                              ("b", "b2"), ("b", "b3")])
            # while a's lines go out, b is at the start of its tail
            ia, ib = d.ino("a"), d.ino("b")
            b_start = len(b"b1\n")
            self.assertEqual(evs[0]["id"], cursor([
                ("a", ia, 4 * 3), ("b", ib, b_start),
                ("c", d.ino("c"), 0), ("d", 0, 0)]))
            # live after that, from any of them
            d.write("c", "c1\n")
            d.write("a", "a6\n")
            d.write("b", "b4\n")
            evs = c.messages(3)
            chk.feed_all(evs)
            self.assertEqual(sorted((data_of(e)["log"], data_of(e)["line"])
                                    for e in evs),
                             [("a", "a6"), ("b", "b4"), ("c", "c1")])
            # an id taken in the middle of the backlog resumes exactly:
            # the rest of a's tail, then all of b's (a: a1..a6, b: b1..b4,
            # c: c1 now; tail=2 starts b at b3, c at 0)
            c2 = open_multi(d, names, [("tail", "2")])
            first = c2.next_message()
            self.assertEqual(data_of(first)["line"], "a5")
            self.assertEqual(first["id"], cursor([
                ("a", ia, 5 * 3), ("b", ib, 2 * 3), ("c", d.ino("c"), 0),
                ("d", 0, 0)]))
            c2.close()
            c3 = open_multi(d, names, headers={"Last-Event-ID":
                                               first["id"]})
            evs = c3.messages(4)
            Checker(self, names).feed_all(evs)
            lines, _ = per_log(evs)
            self.assertEqual({k: [x[2] for x in v] for k, v in
                              lines.items()},
                             {"a": ["a6"], "b": ["b3", "b4"], "c": ["c1"]})
            self.assertEqual([e for e in c3.quiet_for(0.2)
                              if is_message(e)], [])

    def test_tail_counts_matching_lines_of_each_log(self):
        A = b"x1 hit\nx2\nx3 hit\nx4 hit\nx5\n"
        B = b"y1 hit\ny2\ny3\n"
        with Daemon(logs=["a", "b"], content={"a": A, "b": B}) as d:
            c = open_multi(d, ["b", "a"], [("tail", "2"), ("grep", "hit")])
            evs = c.messages(3)
            Checker(self, ["b", "a"], grep="hit",
                    paths={n: d.path(n) for n in "ab"}).feed_all(evs)
            self.assertEqual([(data_of(e)["log"], data_of(e)["line"])
                              for e in evs],
                             [("b", "y1 hit"), ("a", "x3 hit"),
                              ("a", "x4 hit")])
            d.write("b", "y4 hit\n")
            self.assertEqual(data_of(c.next_message())["line"], "y4 hit")


# ============================================================== resume

class Resume(unittest.TestCase):
    def setUp(self):
        self.d = Daemon(logs=["a", "b", "c"]).start()
        self.names = ["a", "b", "c"]

    def tearDown(self):
        self.d.__exit__(None, None, None)

    def write_n(self, log, first, n):
        self.d.write(log, "".join("%s%d\n" % (log, i)
                                  for i in range(first, first + n)))

    def check_exact(self, c, want):
        """want: {log: [texts]}; the stream gets exactly those, per log in
        order, with ids at their offsets on disk, and nothing more."""
        total = sum(len(v) for v in want.values())
        evs = c.messages(total, timeout=10)
        Checker(self, self.names).feed_all(evs)
        lines, resets = per_log(evs)
        self.assertEqual(resets, {})
        for log in self.names:
            got = lines.get(log, [])
            self.assertEqual([x[2] for x in got], want.get(log, []), log)
            disk = {t: off for off, t in file_lines(self.d.path(log))}
            for ino, off, text in got:
                self.assertEqual((ino, off), (self.d.ino(log), disk[text]))
        self.assertEqual([e for e in c.quiet_for(0.2) if is_message(e)],
                         [], "more than expected")
        return evs

    def test_resume_exact_for_each_log(self):
        d = self.d
        c = open_multi(d, self.names)
        self.write_n("a", 0, 3)
        self.write_n("b", 0, 2)
        evs = c.messages(5)
        last = evs[-1]["id"]
        c.close()
        self.write_n("a", 3, 4)
        self.write_n("c", 0, 2)        # b: nothing new
        want = {"a": ["a3", "a4", "a5", "a6"], "c": ["c0", "c1"]}
        c2 = open_multi(d, self.names, headers={"Last-Event-ID": last})
        evs = self.check_exact(c2, want)
        # the same through ?lastEventId=
        c3 = open_multi(d, self.names, [("lastEventId", last)])
        self.check_exact(c3, want)
        # the header wins over the query (a browser keeps its URL)
        c4 = open_multi(d, self.names, [("lastEventId", last)],
                        headers={"Last-Event-ID": evs[2]["id"]})
        later = per_log(evs[3:])[0]
        self.check_exact(c4, {k: [x[2] for x in v]
                              for k, v in later.items()})
        # and the cursor order in the id does not matter
        ents = parse_cursor(last)
        c5 = open_multi(d, self.names, headers={
            "Last-Event-ID": cursor(list(reversed(ents)))})
        self.check_exact(c5, want)

    def test_cursor_omitting_a_log_starts_it_fresh(self):
        d = self.d
        self.write_n("a", 0, 3)
        self.write_n("b", 0, 3)
        self.write_n("c", 0, 3)
        ia = d.ino("a")
        at = len(b"a0\na1\n")
        # no tail: b and c start at their ends
        c = open_multi(d, self.names, headers={
            "Last-Event-ID": "a=%d:%d" % (ia, at)})
        ev = c.next_message()
        self.assertEqual(data_of(ev)["line"], "a2")
        self.assertEqual(ev["id"], cursor([
            ("a", ia, 9), ("b", d.ino("b"), 9), ("c", d.ino("c"), 9)]))
        self.write_n("b", 3, 1)
        ev = c.next_message()
        self.assertEqual(data_of(ev)["line"], "b3")
        # tail=1: the omitted logs get their last line, a resumes exactly
        # (an id wins over tail for the logs it places)
        c2 = open_multi(d, self.names, [("tail", "1")], headers={
            "Last-Event-ID": "c=%d:3" % d.ino("c")})
        evs = c2.messages(4)
        Checker(self, self.names).feed_all(evs)
        lines, _ = per_log(evs)
        self.assertEqual({k: [x[2] for x in v] for k, v in lines.items()},
                         {"a": ["a2"], "b": ["b3"], "c": ["c1", "c2"]})

    def test_entries_of_logs_not_requested_are_ignored(self):
        d = self.d
        self.write_n("a", 0, 3)
        self.write_n("b", 0, 3)
        self.write_n("c", 0, 1)
        ia, ib, ic = d.ino("a"), d.ino("b"), d.ino("c")
        for cid in ["zz=5:5,a=%d:3,c=%d:0" % (ia, ic),
                    "b=%d:0,a=%d:3,nosuch=1:0,c=%d:0" % (ib, ia, ic),
                    "c=%d:0,b=999999:77,a=%d:3" % (ic, ia)]:
            with self.subTest(cursor=cid):
                c = open_multi(d, ["a", "c"], headers={"Last-Event-ID": cid})
                evs = c.messages(3)
                Checker(self, ["a", "c"]).feed_all(evs)
                lines, resets = per_log(evs)
                self.assertEqual(resets, {})
                self.assertEqual({k: [x[2] for x in v] for k, v in
                                  lines.items()},
                                 {"a": ["a1", "a2"], "c": ["c0"]})
                self.assertEqual([e for e in c.quiet_for(0.15)
                                  if is_message(e)], [])
                c.close()

    def test_one_log_on_the_merged_endpoint(self):
        # /api/events with a single log= is still the merged format: JSON
        # data with its log, a cursor id; a client resumes with that id
        d = self.d
        self.write_n("a", 0, 2)
        ia = d.ino("a")
        c = open_multi(d, ["a"], [("tail", "1")])
        ev = c.next_message()
        self.assertEqual((ev["id"], ev["data"]), (
            "a=%d:6" % ia, '{"log":"a","line":"a1","offset":6}'))
        c.close()
        self.write_n("a", 2, 1)
        c2 = open_multi(d, ["a"], headers={"Last-Event-ID": ev["id"]})
        ev = c2.next_message()
        self.assertEqual((ev["id"], data_of(ev)), (
            "a=%d:9" % ia, {"log": "a", "line": "a2", "offset": 9}))

    def test_zero_zero_starts_a_file_that_exists_now_from_0(self):
        d = Daemon(logs=["a", "n"], missing=["n"])
        with d:
            c = open_multi(d, ["a", "n"])
            d.write("a", "a0\n")
            ev = c.next_message()
            self.assertEqual(entry(ev["id"], "n"), (0, 0))
            c.close()
            d.write("n", "n0\nn1\n")
            c2 = open_multi(d, ["a", "n"], headers={"Last-Event-ID":
                                                    ev["id"]})
            evs = c2.messages(3)
            Checker(self, ["a", "n"]).feed_all(evs)
            self.assertEqual(evs[0]["event"], "reset", evs)
            self.assertEqual(data_of(evs[0]),
                             {"log": "n", "reason": "created"})
            self.assertEqual(evs[0]["id"], cursor([
                ("a", d.ino("a"), 3), ("n", d.ino("n"), 0)]))
            self.assertEqual([data_of(e)["line"] for e in evs[1:]],
                             ["n0", "n1"])


# ========================================================== parameters

class Params(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.names = ["l%02d" % i for i in range(33)]
        cls.d = Daemon(logs=cls.names).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def test_malformed_cursors_are_400(self):
        d = self.d
        i0 = d.ino("l00")
        good = "l00=%d:0" % i0
        bad = ["garbage", "5", "%d:0" % i0, "l00=", "l00=5", "l00=:5",
               "l00=5:", "l00=x:1", "l00=1:y", "=1:0", "l00=1:0,",
               ",l00=1:0", "l00=1:0,,l01=1:0", "l00=1:0;l01=1:0",
               "l00:1:0", "l00=-1:0", "l00=1:-5", "l00=1:0:0",
               "l00=1:0 l01=1:0", "l00=1:99999999999999999999999",
               "l00=1:0,l00=1:0", "bad/name=1:0", "l00=0x10:0",
               "l00 =1:0", "l00=1:0,=", "l%20=1:0"]
        for b in bad:
            with self.subTest(header=b):
                r = d.get(multi_path(["l00", "l01"]),
                          headers={"Last-Event-ID": b})
                tsutil.check_one_line_error(self, r, 400, "Last-Event-ID")
            with self.subTest(query=b):
                r = d.get(multi_path(["l00", "l01"], [("lastEventId", b)]))
                tsutil.check_one_line_error(self, r, 400, "lastEventId")
        # a typo in the one that loses is still a typo
        r = d.get(multi_path(["l00"], [("lastEventId", "oops")]),
                  headers={"Last-Event-ID": good})
        tsutil.check_one_line_error(self, r, 400, "lastEventId")
        # single-valued: twice, or empty
        r = d.get(multi_path(["l00"], [("lastEventId", good),
                                       ("lastEventId", good)]))
        tsutil.check_one_line_error(self, r, 400, "lastEventId")
        r = d.get(multi_path(["l00"], [("lastEventId", "")]))
        tsutil.check_one_line_error(self, r, 400, "lastEventId")
        # and a good one opens
        c = open_multi(d, ["l00", "l01"], headers={"Last-Event-ID": good})
        c.close()

    def test_log_parameters(self):
        d = self.d
        # 32 is the most: the id lists all 32
        c = open_multi(d, self.names[:32])
        d.write("l31", "last one\n")
        ev = c.next_message()
        self.assertEqual([n for n, _, _ in parse_cursor(ev["id"])],
                         self.names[:32])
        self.assertEqual(data_of(ev)["log"], "l31")
        c.close()
        r = d.get(multi_path(self.names))
        tsutil.check_one_line_error(self, r, 400, "log")
        r = d.get(multi_path(["l00", "l01", "l00"]))
        tsutil.check_one_line_error(self, r, 400, "log")
        r = d.get(multi_path(["l00", "nosuch"]))
        tsutil.check_one_line_error(self, r, 404, "unknown log 'nosuch'")
        for path in ["/api/events", "/api/events?log=",
                     "/api/events?log=l00&log=", "/api/events?log",
                     "/api/events?log=a%2Fb", "/api/events?log=..",
                     "/api/events?log=" + "x" * 65,
                     "/api/events?log=l00%00"]:
            with self.subTest(path=path):
                r = d.get(path)
                if r.status == 404:   # ".." is a valid-looking name
                    tsutil.check_one_line_error(self, r, 404, "unknown log")
                else:
                    tsutil.check_one_line_error(self, r, 400, "log")
        # the filters are checked too
        r = d.get(multi_path(["l00"], [("grep", "(")]))
        tsutil.check_one_line_error(self, r, 400, "grep")
        r = d.get(multi_path(["l00"], [("tail", "x")]))
        tsutil.check_one_line_error(self, r, 400, "tail")


# ============================================================ creation

class Created(unittest.TestCase):
    def test_file_created_after_the_stream_opened(self):
        with Daemon(logs=["a", "c"], missing=["c"]) as d:
            c = open_multi(d, ["a", "c"])
            chk = Checker(self, ["a", "c"])
            d.write("a", "a0\n")
            ev = c.next_message()
            chk.feed(ev)
            self.assertEqual(ev["id"], "a=%d:3,c=0:0" % d.ino("a"))
            d.write("c", "c0\nc1\n")
            evs = c.messages(3)
            chk.feed_all(evs)
            self.assertEqual((evs[0]["event"], data_of(evs[0])),
                             ("reset", {"log": "c", "reason": "created"}))
            ic = d.ino("c")
            self.assertEqual(evs[0]["id"], "a=%d:3,c=%d:0" % (d.ino("a"),
                                                              ic))
            self.assertEqual([(e["id"], data_of(e)["line"])
                              for e in evs[1:]],
                             [("a=%d:3,c=%d:3" % (d.ino("a"), ic), "c0"),
                              ("a=%d:3,c=%d:6" % (d.ino("a"), ic), "c1")])
            d.write("a", "a1\n")
            ev = c.next_message()
            chk.feed(ev)
            self.assertEqual(data_of(ev)["line"], "a1")


# ===================================================== rotation & copy

class _SmallConn(tsutil._Conn):
    """tsutil's connection with a small SO_RCVBUF set before connecting."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False


def held_multi(d, logs):
    """A multi stream whose client reads nothing until the test says so,
    through a small receive buffer: the daemon can send it little."""
    saved = tsutil._Conn
    tsutil._Conn = _SmallConn
    try:
        c = SSEClient(d.port, multi_path(logs))
    finally:
        tsutil._Conn = saved
    d._clients.append(c)
    return c


class Rotation(unittest.TestCase):
    F = Writer.FMT

    def busy_b_lines(self, evs, d, total):
        """b's lines: every number once in order, each with its offset."""
        lines, resets = per_log(evs)
        self.assertNotIn("b", resets)
        got = [(number_of(t), ino, off) for ino, off, t in lines["b"]]
        ib = d.ino("b")
        want = [(n, ib, off) for n, off in tsutil.file_numbers(d.path("b"))]
        self.assertEqual(len(want), total)
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        self.assertEqual((len(got), bad[:3]), (len(want), []),
                         "b's lines (n, inode, offset), first differences "
                         "at %r" % [(got[i], want[i]) for i in bad[:3]])

    def a_expected(self, d, old_ino, old_after):
        """a's lines: app's rotated file after old_after, then the new."""
        old = [(old_ino, off, t) for off, t in
               file_lines(d.path("a") + ".1") if off > old_after]
        new = [(d.ino("a"), off, t) for off, t in file_lines(d.path("a"))]
        return old, new

    def rotate_a(self, d, first, n_old, n_new):
        """n_old more lines to a, rename it to a.log.1, n_new lines to a
        new a.log.  Returns the old inode."""
        old = d.ino("a")
        d.write("a", "".join(self.F % i for i in range(first, first +
                                                       n_old)))
        os.rename(d.path("a"), d.path("a") + ".1")
        d.write("a", "".join(self.F % i for i in range(
            first + n_old, first + n_old + n_new)))
        return old

    def finish(self, c, w, chk, evs, a_last):
        """Stop the writer, read to its last line and a's last line."""
        total = w.stop()
        need = {"b": total - 1, "a": a_last}
        seen = {}
        for e in evs:
            if is_line(e):
                seen[data_of(e)["log"]] = number_of(data_of(e)["line"])

        def done(e):
            if is_line(e):
                seen[data_of(e)["log"]] = number_of(data_of(e)["line"])
            return all(seen.get(k, -1) >= v for k, v in need.items())
        if not all(seen.get(k, -1) >= v for k, v in need.items()):
            evs += chk.feed_all(c.read_until(done, timeout=15))
        evs += chk.feed_all([e for e in c.quiet_for(0.2)])
        return total

    def check_a(self, evs, d, old_ino, old_after):
        lines, resets = per_log(evs)
        self.assertEqual(resets.get("a"), [("rotated", d.ino("a"))])
        old, new = self.a_expected(d, old_ino, old_after)
        self.assertEqual(lines["a"], old + new, "a: (inode, offset, line)")
        # the reset sits between the two files' lines
        a_evs = [e for e in evs if e["data"] and data_of(e)["log"] == "a"]
        k = [i for i, e in enumerate(a_evs) if e["event"] == "reset"][0]
        self.assertEqual(k, len(old))

    def test_rotation_of_one_log_held_stream_other_busy(self):
        # the client cannot take anything while a is rotated: the daemon
        # must find a's rest in a.log.1 afterwards, in order, while b goes
        # on being written
        with Daemon(logs=["a", "b"]) as d:
            c = held_multi(d, ["a", "b"])
            chk = Checker(self, ["a", "b"])
            w = Writer(d.path("b"), interval=0.002).start()
            try:
                # b's events fill the held client's buffers first
                self.assertTrue(w.wait_written(300))
                old = self.rotate_a(d, 0, 200, 20)
                self.assertTrue(w.wait_written(w.written + 50))
                c.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                       1 << 22)
                evs = chk.feed_all(c.read_until(
                    line_is("a", (self.F % 219).strip()), timeout=15))
            except BaseException:
                w.stop()
                raise
            total = self.finish(c, w, chk, evs, 219)
            self.check_a(evs, d, old, 0)
            self.busy_b_lines(evs, d, total)

    def test_resume_across_rotation_of_one_log_while_other_busy(self):
        with Daemon(logs=["a", "b"]) as d:
            c = open_multi(d, ["a", "b"])
            chk = Checker(self, ["a", "b"])
            w = Writer(d.path("b"), interval=0.002).start()
            try:
                d.write("a", "".join(self.F % i for i in range(10)))
                evs = chk.feed_all(c.read_until(
                    line_is("a", (self.F % 9).strip())))
                evs += chk.feed_all(read_lines(c, 5))
                last = evs[-1]["id"]
                c.close()
                old_after = entry(last, "a")[1]
                old = self.rotate_a(d, 10, 5, 5)
                self.assertTrue(w.wait_written(w.written + 20))
                c2 = open_multi(d, ["a", "b"], headers={"Last-Event-ID":
                                                        last})
                more = chk.feed_all(c2.read_until(
                    line_is("a", (self.F % 19).strip()), timeout=10))
            except BaseException:
                w.stop()
                raise
            total = self.finish(c2, w, chk, more, 19)
            self.check_a(more, d, old, old_after)
            self.busy_b_lines(evs + more, d, total)

    def test_resume_across_logrotate_copytruncate_of_one_log(self):
        if not tsutil.logrotate_bin():
            self.skipTest("logrotate is not installed")
        with Daemon(logs=["a", "b"]) as d:
            lr = tsutil.Logrotate(d.path("a"), os.path.join(d.dir, "lr"),
                                  mode="copytruncate")
            c = open_multi(d, ["a", "b"])
            chk = Checker(self, ["a", "b"])
            wa = tsutil.TimedWriter(d.path("a"), interval=0.005)
            wb = Writer(d.path("b"), interval=0.002)
            wa.start()
            wb.start()
            try:
                evs = chk.feed_all(c.read_until(line_is(
                    "a", (self.F % 60).strip()), timeout=10))
                last = evs[-1]["id"]
                c.close()
                self.assertTrue(wa.wait_written(wa.written + 3))
                lr.run()
                c2 = open_multi(d, ["a", "b"], headers={"Last-Event-ID":
                                                        last})
                self.assertTrue(wa.wait_written(wa.written + 40))
            except BaseException:
                wa.stop()
                wb.stop()
                raise
            total_a = wa.stop()
            more = chk.feed_all(c2.read_until(line_is(
                "a", (self.F % (total_a - 1)).strip()), timeout=15))
            total = self.finish(c2, wb, chk, more, total_a - 1)
            lines, resets = per_log(more)
            live = d.ino("a")
            copy = os.stat(d.path("a") + ".1").st_ino
            self.assertEqual(resets.get("a"), [("rotated", live)])
            # exactly what is on disk after the last id: the rest of the
            # copy (its inode), then the truncated log from 0
            want = [(copy, off, t) for off, t in
                    file_lines(d.path("a") + ".1")
                    if off > entry(last, "a")[1]]
            want += [(live, off, t) for off, t in file_lines(d.path("a"))]
            self.assertEqual(lines["a"], want, "a: (inode, offset, line)")
            self.busy_b_lines(evs + more, d, total)


# ============================================================= restart

class Restart(unittest.TestCase):
    def test_resume_after_a_daemon_restart(self):
        d = MDaemon(logs=["a", "b", "c"])
        with d:
            c = open_multi(d, ["a", "b", "c"])
            chk = Checker(self, ["a", "b", "c"])
            wa = Writer(d.path("a"), interval=0.002).start()
            wb = Writer(d.path("b"), interval=0.005).start()
            try:
                evs = chk.feed_all(read_lines(c, 80, timeout=10))
                n0 = wa.written
                d.restart(self)       # the writers go on meanwhile
                self.assertGreater(wa.written, n0, "harness: nothing was "
                                   "written while the daemon was down")
                # what the first daemon sent before it stopped
                evs += chk.feed_all([e for e in iter(
                    lambda: c.next_event(2.0), None)])
                last = [e["id"] for e in evs if e["id"]][-1]
                before = len(evs)
                self.assertTrue(wa.wait_written(wa.written + 30))
                d.write("c", "c0\n")
                c2 = open_multi(d, ["a", "b", "c"],
                                headers={"Last-Event-ID": last})
                evs += chk.feed_all(read_lines(c2, 40, timeout=10))
            finally:
                ta, tb = wa.stop(), wb.stop()
            lines = per_log(evs)[0]
            seen = {k: number_of(v[-1][2]) if k != "c" else 0
                    for k, v in lines.items()}
            need = {"a": ta - 1, "b": tb - 1}

            def done(e):
                if is_line(e) and data_of(e)["log"] in need:
                    seen[data_of(e)["log"]] = number_of(data_of(e)["line"])
                return all(seen.get(k, -1) >= v for k, v in need.items())
            if not all(seen.get(k, -1) >= v for k, v in need.items()):
                evs += chk.feed_all(c2.read_until(done, timeout=15))
            evs += chk.feed_all(c2.quiet_for(0.2))
            lines, resets = per_log(evs)
            self.assertEqual(resets, {})
            for log, total in (("a", ta), ("b", tb)):
                got = [(number_of(t), ino, off) for ino, off, t in
                       lines[log]]
                want = [(n, d.ino(log), off) for n, off in
                        tsutil.file_numbers(d.path(log))]
                self.assertEqual(len(want), total)
                self.assertEqual(got, want, "%s: every line once, in "
                                 "order, with its id" % log)
            self.assertEqual([x[2] for x in lines["c"]], ["c0"])
            # the restart happened in the middle: lines on both sides
            self.assertTrue(any(is_line(e) for e in evs[:before]))
            self.assertTrue(any(is_line(e) for e in evs[before:]))


# ============================================================= clients

def metric(d, name):
    r = d.get("/metrics")
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


class Clients(unittest.TestCase):
    def try_open(self, d, logs):
        c = SSEClient(d.port, multi_path(logs))
        status = c.status
        if status != 200:
            c.close()
            return status, None
        d._clients.append(c)
        return status, c

    def test_one_connection_counts_once(self):
        with Daemon(logs=["a", "b", "c", "d"],
                    server={"max_clients": "2"}) as d:
            m = open_multi(d, ["a", "b", "c", "d"])
            self.assertEqual(m.next_event()["retry"], 2000)
            self.assertEqual(metric(d, "tailsse_clients"), 1)
            s = d.stream("a")
            self.assertEqual(metric(d, "tailsse_clients"), 2)
            r = d.get(multi_path(["a", "b"]))
            tsutil.check_one_line_error(self, r, 503, "max_clients")
            self.assertTrue(r.headers.get("retry-after"), r.headers)
            r = d.get(multi_path(["d"]))
            self.assertEqual(r.status, 503)
            # both streams work
            d.write("d", "d0\n")
            self.assertEqual(data_of(m.next_message())["line"], "d0")
            d.write("a", "a0\n")
            self.assertEqual(data_of(m.next_message())["line"], "a0")
            self.assertEqual(s.next_message()["data"], "a0")

    def test_disconnect_frees_the_place_and_every_log(self):
        with Daemon(logs=["a", "b", "c"],
                    server={"max_clients": "1"}) as d:
            m = open_multi(d, ["a", "b", "c"])
            self.assertEqual(m.next_event()["retry"], 2000)
            m.close()
            # a stream that went away is noticed at the latest when one of
            # its logs changes: here the last one only
            ok = False
            for i in range(50):
                d.write("c", "wake %d\n" % i)
                st, c = self.try_open(d, ["b", "c"])
                if st == 200:
                    ok = True
                    break
                self.assertEqual(st, 503)
                time.sleep(0.05)
            self.assertTrue(ok, "the place of a closed stream never came "
                            "free")
            self.assertEqual(metric(d, "tailsse_clients"), 1)
            # the closed one held a and b too: writing to them touches
            # nothing of it (ASan would see a use after free)
            for i in range(20):
                d.write("a", "after %d\n" % i)
                d.write("b", "after %d\n" % i)
            evs = c.read_until(line_is("b", "after 19"))
            self.assertEqual([data_of(e)["line"] for e in evs
                              if is_line(e)],
                             ["after %d" % i for i in range(20)])
            self.assertEqual(metric(d, "tailsse_clients"), 1)

    def test_disconnect_frees_the_place_at_once(self):
        # issue 8: "a disconnect frees everything at once": the next
        # connect gets in without waiting for a line or a heartbeat
        # (default heartbeat 15 s; bound 2 s)
        with Daemon(logs=["a", "b"], server={"max_clients": "1"}) as d:
            m = open_multi(d, ["a", "b"])
            self.assertEqual(m.next_event()["retry"], 2000)
            m.close()
            t0 = time.monotonic()
            st = None
            while time.monotonic() - t0 < 2.0:
                st, c = self.try_open(d, ["a", "b"])
                if st == 200:
                    break
                self.assertEqual(st, 503)
                time.sleep(0.02)
            self.assertEqual(st, 200, "the place of a closed (idle) stream "
                             "was still taken %.1f s after it closed; "
                             "tailsse_clients %d" % (
                                 time.monotonic() - t0,
                                 metric(d, "tailsse_clients")))


# ============================================================ fairness

class RawFollower:
    """A fast reader of one stream in a thread: dechunks, records when
    each "probe<K>x" line arrives and the last offset of log `busy` in the
    ids seen.  Cheap enough to keep up with a flooded stream."""

    PROBE = re.compile(rb"probe(\d+)x")

    def __init__(self, port, path, busy=None, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                 rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                           % path).encode())
        self.busy = ("id: %s=" % busy).encode() if busy else None
        self.arrived = {}
        self.busy_off = 0
        self.bytes = 0
        self.error = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                d = self.sock.recv(65536)
                if not d:
                    raise AssertionError("closed in the head")
                head += d
            h, _, data = head.partition(b"\r\n\r\n")
            if not h.startswith(b"HTTP/1.1 200"):
                raise AssertionError("status: %r" % h[:40])
            dec = tsutil._Dechunker()
            tail = b""
            self.sock.settimeout(0.1)
            while not self._stop.is_set():
                out = dec.feed(data)
                if out:
                    now = time.monotonic()
                    self.bytes += len(out)
                    buf = tail + out
                    for m in self.PROBE.finditer(buf):
                        self.arrived.setdefault(int(m.group(1)), now)
                    if self.busy:
                        i = buf.rfind(self.busy)
                        if i >= 0:
                            m = re.match(rb"\d+:(\d+)",
                                         buf[i + len(self.busy):])
                            if m:
                                self.busy_off = int(m.group(1))
                    tail = buf[-200:]
                try:
                    data = self.sock.recv(1 << 20)
                except socket.timeout:
                    data = b""
                    continue
                if not data:
                    break
        except Exception as e:
            self.error = e

    def close(self):
        self._stop.set()
        self._t.join(5)
        self.sock.close()


class Fairness(unittest.TestCase):
    """Log a is flooded: a writer keeps it at least LEAD bytes ahead of
    what the multi stream has sent of it (so the daemon always has more of
    a to send; a daemon serving a until it is at rest would never get to
    b).  Every GAP seconds a probe line goes to the quiet log b; it is
    followed both by the multi stream (a, b) and by a single-log stream of
    b, the control: same daemon, same machine load, no competition inside
    the connection.

    Bounds.  The issue asks for "a few ms" of extra delay.  Under ASan on a
    shared 2-core machine, with the Python flooder and readers competing
    for the CPU, scheduling alone costs tens of ms now and then, and a
    reader that is descheduled lets the busy connection's socket buffers
    fill with a (its receive buffer is kept at RCVBUF to bound that queue),
    which the quiet control never has.  So: the median probe at most 60 ms
    later than the control's median, the 90th percentile at most 250 ms
    later than the control's, and none later than 1.5 s (bounds loose
    enough for a loaded CI machine: 20 ms failed once there).  A starved b
    waits for the whole LEAD of a (about 24 MB of events, 0.5 s or more at
    the ~20-60 MB/s of an ASan build) or, as the writer keeps the lead,
    until the flood ends: seconds (a daemon that always began with a was
    caught at once)."""

    LEAD = 8 << 20
    RCVBUF = 256 << 10
    PROBES = 30
    GAP = 0.05
    FLOOD_LINE = b"flood flood flood flood flood flood %08d\n"

    def test_flooded_log_does_not_hold_up_a_quiet_one(self):
        with Daemon(logs=["a", "b"]) as d:
            multi = RawFollower(d.port, multi_path(["a", "b"]), busy="a",
                                rcvbuf=self.RCVBUF)
            single = RawFollower(d.port, "/api/logs/b/events")
            stop = threading.Event()
            written = [0]
            try:
                # before the flood: the same probes, to show the baseline
                time.sleep(0.1)
                base = self.probes(d, [multi, single], 0, 10)
                block = b"".join(self.FLOOD_LINE % i for i in range(2000))

                def flood():
                    fd = os.open(d.path("a"), os.O_WRONLY | os.O_APPEND)
                    try:
                        while not stop.is_set():
                            if written[0] - multi.busy_off < self.LEAD:
                                os.write(fd, block)
                                written[0] += len(block)
                            else:
                                time.sleep(0.0005)
                    finally:
                        os.close(fd)
                ft = threading.Thread(target=flood, daemon=True)
                ft.start()
                self.assertTrue(wait_for(
                    lambda: written[0] - multi.busy_off > self.LEAD // 2,
                    5), "harness: the flood never got ahead")
                lags = []
                res = self.probes(d, [multi, single], 100, self.PROBES,
                                  lags)
                stop.set()
                ft.join(5)
            finally:
                stop.set()
                multi.close()
                single.close()
            self.assertIsNone(multi.error)
            self.assertIsNone(single.error)
            m_lat = [x[0] for x in res]
            s_lat = [x[1] for x in res]
            fmt = "%.1f"
            sys.stderr.write(
                "\nfairness: before the flood, multi median %s ms (max %s), "
                "single median %s ms; flooded: multi median %s ms, p90 %s, "
                "max %s; single median %s ms, max %s; a's unsent lead "
                "median %.1f MiB\n" % tuple(
                    [fmt % statistics.median(x[0] for x in base),
                     fmt % max(x[0] for x in base),
                     fmt % statistics.median(x[1] for x in base),
                     fmt % statistics.median(m_lat),
                     fmt % sorted(m_lat)[int(len(m_lat) * 0.9)],
                     fmt % max(m_lat), fmt % statistics.median(s_lat),
                     fmt % max(s_lat)] +
                    [statistics.median(lags) / 1048576.0]))
            # the harness did keep a busy: probes went in while the daemon
            # had megabytes of a left to send
            busy = [g for g in lags if g > (1 << 20)]
            self.assertGreaterEqual(len(busy), int(0.8 * len(lags)),
                                    "harness: a was not kept busy: %r"
                                    % lags)

            def p90(x):
                return sorted(x)[int(len(x) * 0.9)]
            shown = "multi ms: %r; single ms: %r" % (
                [round(x) for x in m_lat], [round(x) for x in s_lat])
            sys.stderr.write("fairness: probes over 30 ms (multi ms, "
                             "single ms): %r\n" % [
                                 (round(m), round(s)) for m, s in res
                                 if m > 30])
            self.assertLessEqual(max(m_lat), 1500, shown)
            self.assertLessEqual(p90(m_lat), p90(s_lat) + 250, shown)
            self.assertLessEqual(statistics.median(m_lat),
                                 statistics.median(s_lat) + 60, shown)

    def probes(self, d, followers, k0, n, lags=None):
        """Write probe lines to b; [(ms on followers[0], ms on [1])]."""
        out = []
        for k in range(k0, k0 + n):
            if lags is not None:
                lags.append(os.path.getsize(d.path("a")) -
                            followers[0].busy_off)
            t0 = time.monotonic()
            d.write("b", "probe%dx\n" % k)
            ok = wait_for(lambda: all(k in f.arrived for f in followers),
                          5, 0.0005)
            self.assertTrue(ok, "probe %d: not received within 5 s (multi "
                            "%s, single %s)" % (k, k in followers[0].arrived,
                                                k in followers[1].arrived))
            out.append(tuple((f.arrived[k] - t0) * 1000 for f in followers))
            time.sleep(self.GAP)
        return out


# ========================================================= wake-ups

class Follower:
    """Reads one multi stream in a thread, keeping per log the numbers of
    the "L n" lines received and checking each id against the line."""

    def __init__(self, d, logs, cond):
        self.logs = logs
        self.c = open_multi(d, logs)
        self.got = {n: [] for n in logs}
        self.cond = cond
        self.error = None
        self.events = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                try:
                    ev = self.c.next_event(0.2)
                except TimeoutError:
                    continue
                if ev is None:
                    raise AssertionError("stream ended")
                if not is_message(ev):
                    continue
                if ev["event"] is not None:
                    raise AssertionError("unexpected %r" % ev)
                dd = data_of(ev)
                ents = parse_cursor(ev["id"])
                if [x[0] for x in ents] != self.logs:
                    raise AssertionError("id %r for %r" % (ev["id"],
                                                           self.logs))
                if entry(ev["id"], dd["log"])[1] != dd["offset"]:
                    raise AssertionError("offset: %r" % ev)
                log, n = dd["line"].split()
                if log != dd["log"]:
                    raise AssertionError("line %r from log %r" % (
                        dd["line"], dd["log"]))
                with self.cond:
                    self.got[log].append(int(n))
                    self.events += 1
                    self.cond.notify_all()
        except Exception as e:
            with self.cond:
                self.error = e
                self.cond.notify_all()

    def has(self, counts):
        return all(len(self.got[n]) >= counts[n] for n in self.logs)

    def stop(self):
        self._stop.set()
        self._t.join(5)


class WakeUps(unittest.TestCase):
    """Four logs, four writer threads released together by a barrier each
    round (a random 2 to 4 of them append one line each, at the same
    instant or spread over up to 0.5 or 2 ms), twelve connections over
    different sets and orders of the logs.
    After each round nothing more is written until every connection has
    every line: a lost wake-up (a connection that suspends just as a line
    arrives) shows as a round that does not complete.  Heartbeats are
    off (an hour), so nothing else would wake a stalled connection.
    ROUNDS rounds or SECONDS seconds, whichever comes first."""

    ROUNDS = 4000
    SECONDS = 20.0
    ROUND_TIMEOUT = 5.0

    def test_simultaneous_appends(self):
        logs = ["a", "b", "c", "d"]
        sets = [["a", "b", "c", "d"], ["d", "c", "b", "a"], ["b", "d"],
                ["c", "a", "d"]] * 3
        rnd = random.Random(8)
        with Daemon(logs=logs, server={"heartbeat": "3600"}) as d:
            cond = threading.Condition()
            fols = [Follower(d, s, cond) for s in sets]
            for f in fols:
                self.assertTrue(wait_for(lambda: f.c.raw, 5))
            start = threading.Barrier(len(logs) + 1)
            end = threading.Barrier(len(logs) + 1)
            plan = {"set": (), "delay": {}, "quit": False}
            counts = {n: 0 for n in logs}
            errors = []

            def writer(log):
                fd = os.open(d.path(log), os.O_WRONLY | os.O_APPEND)
                try:
                    n = 0
                    while True:
                        start.wait(10)
                        if plan["quit"]:
                            return
                        if log in plan["set"]:
                            delay = plan["delay"].get(log, 0)
                            if delay:
                                time.sleep(delay)
                            os.write(fd, ("%s %d\n" % (log, n)).encode())
                            n += 1
                        end.wait(10)
                except Exception as e:
                    errors.append(e)
                finally:
                    os.close(fd)
            ws = [threading.Thread(target=writer, args=(n,), daemon=True)
                  for n in logs]
            for t in ws:
                t.start()
            t0 = time.monotonic()
            rounds = 0
            slowest = 0.0
            try:
                while rounds < self.ROUNDS and \
                        time.monotonic() - t0 < self.SECONDS:
                    k = rnd.choice((2, 3, 4))
                    plan["set"] = tuple(rnd.sample(logs, k))
                    # one round in four the writes are simultaneous; in
                    # the others spread over up to 0.5 or 2 ms, so that
                    # some land while a connection woken by the first is
                    # reading, or about to suspend (a daemon that let such
                    # a wake-up go was caught here within ~100-1500 rounds)
                    spread = (0, 0.0005, 0.0005, 0.002)[rounds % 4]
                    plan["delay"] = {n: rnd.random() * spread
                                     for n in plan["set"][1:]}
                    start.wait(10)
                    end.wait(10)
                    self.assertEqual(errors, [])
                    for n in plan["set"]:
                        counts[n] += 1
                    rounds += 1
                    r0 = time.monotonic()
                    with cond:
                        ok = cond.wait_for(
                            lambda: any(f.error for f in fols) or
                            all(f.has(counts) for f in fols),
                            self.ROUND_TIMEOUT)
                    slowest = max(slowest, time.monotonic() - r0)
                    for f in fols:
                        self.assertIsNone(f.error, f.logs)
                    if not ok:
                        stuck = [(f.logs, {n: (len(f.got[n]), counts[n])
                                           for n in f.logs})
                                 for f in fols if not f.has(counts)]
                        self.fail("round %d (%r): not delivered within "
                                  "%.0f s (lost wake-up?): (logs, "
                                  "{log: (received, written)}) %r"
                                  % (rounds, plan["set"],
                                     self.ROUND_TIMEOUT, stuck))
            finally:
                plan["quit"] = True
                try:
                    start.wait(10)
                except threading.BrokenBarrierError:
                    pass
                for t in ws:
                    t.join(5)
            # nothing more arrives: no line twice
            time.sleep(0.3)
            for f in fols:
                f.stop()
            elapsed = time.monotonic() - t0
            sys.stderr.write("\nwake-ups: %d rounds in %.1f s, slowest "
                             "round %.0f ms, lines %r\n"
                             % (rounds, elapsed, slowest * 1000, counts))
            self.assertGreaterEqual(rounds, 300, "too few rounds to mean "
                                    "anything")
            for f in fols:
                self.assertIsNone(f.error)
                for n in f.logs:
                    self.assertEqual(f.got[n], list(range(counts[n])),
                                     "connection %r, log %s" % (f.logs, n))


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
