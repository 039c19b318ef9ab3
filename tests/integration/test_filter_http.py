#!/usr/bin/env python3
"""The filters of a stream over HTTP: grep= (repeatable, all must match),
exclude= (repeatable, any drops), icase=1, format=json (line, offset and
match ranges), their combinations, UTF-8 patterns and lines, tail=N with
filters, resuming a filtered stream (the id-only event after dropped
lines), the 400s (bad pattern, too many, too long, invalid UTF-8, bad
icase/format), URL-encoding of patterns (and what a raw '+' means), and a
catastrophic pattern that must neither stall other streams nor stop its
own stream (`event: filter-limit`, once per stream).

Helpers are local to this file; tsutil is used as it is."""

import json
import os
import random
import re
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, SSEClient, expected_text, line_positions  # noqa

EVENTS = "/api/logs/%s/events"

# (a+)+$ -- exponential backtracking on "aaa...ab"
CATASTROPHIC = "(a+)+$"
CAT_LINE = b"a" * 65536 + b"b\n"


# ---------------------------------------------------------------- helpers

def q(v):
    """Percent-encode a query value (str or bytes), '+' included."""
    return urllib.parse.quote(v, safe="")


def query(params):
    """params: [(key, value)]; values are percent-encoded, None gives a
    bare key."""
    return "&".join(k if v is None else "%s=%s" % (k, q(v))
                    for k, v in params)


def events_path(name="app", params=(), raw=None):
    qs = raw if raw is not None else query(params)
    return EVENTS % name + ("?" + qs if qs else "")


class FDaemon(Daemon):
    """A Daemon whose streams opened with .open() are closed before it
    stops."""

    def __init__(self, *a, **kw):
        Daemon.__init__(self, *a, **kw)
        self.mine = []

    def open(self, params=(), name="app", headers=None, raw=None,
             expect=200):
        path = events_path(name, params, raw)
        c = SSEClient(self.port, path, headers=headers, timeout=10.0)
        self.mine.append(c)
        if expect is not None and c.status != expect:
            raise AssertionError("GET %s: status %d, expected %d"
                                 % (path, c.status, expect))
        return c

    def __exit__(self, *exc):
        for c in self.mine:
            c.close()
        return Daemon.__exit__(self, *exc)


def is_data(ev):
    return ev["event"] is None and ev["data"] is not None


def is_id_only(ev):
    return (ev["id"] is not None and ev["data"] is None
            and ev["event"] is None)


def meaningful(ev):
    return (ev["id"] is not None or ev["data"] is not None
            or ev["event"] is not None)


def offset_of(ev_id):
    ino, sep, off = (ev_id or "").partition(":")
    if not sep or not ino.isdigit() or not off.isdigit():
        raise AssertionError("not an INODE:OFFSET id: %r" % (ev_id,))
    return int(off)


def next_ev(c, timeout=5.0):
    """The next event with an id, data or a type (skips retry, comments)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ev = c.next_event(max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            raise AssertionError("%s: no event within %.1f s"
                                 % (c.path, timeout))
        if ev is None:
            raise AssertionError("%s: the stream ended" % c.path)
        if meaningful(ev):
            return ev


def until(c, pred, timeout=5.0):
    """Meaningful events up to and including the first where pred holds."""
    deadline = time.monotonic() + timeout
    out = []
    while True:
        ev = next_ev(c, max(deadline - time.monotonic(), 0.0))
        out.append(ev)
        if pred(ev):
            return out


def until_data(c, text, timeout=5.0):
    """Meaningful events up to and including the data event `text`."""
    return until(c, lambda e: is_data(e) and e["data"] == text, timeout)


def datas(evs):
    return [e["data"] for e in evs if is_data(e)]


def expected_ranges(line, patterns, flags=0):
    """Byte ranges into the UTF-8 line of every non-empty non-overlapping
    match of every pattern (Python's re, for patterns where it agrees with
    PCRE2), sorted, identical ones once."""
    out = set()
    for p in patterns:
        for m in re.finditer(p, line, flags):
            if m.end() > m.start():
                out.add((len(line[:m.start()].encode()),
                         len(line[:m.end()].encode())))
    return [list(r) for r in sorted(out)]


check_one_line_error = tsutil.check_one_line_error


class TimedLines(threading.Thread):
    """Appends "seq=N" lines to path every `interval` s (one write each);
    times[N] is the monotonic time just before line N was written."""

    FMT = "seq=%06d\n"

    def __init__(self, path, interval=0.005):
        threading.Thread.__init__(self, daemon=True)
        self.path = path
        self.interval = interval
        self.times = []
        self.stop_ev = threading.Event()
        self.error = None

    def run(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                while not self.stop_ev.is_set():
                    data = (self.FMT % len(self.times)).encode()
                    self.times.append(time.monotonic())
                    os.write(fd, data)
                    self.stop_ev.wait(self.interval)
            finally:
                os.close(fd)
        except Exception as e:  # reported by stop()
            self.error = e

    def stop(self):
        self.stop_ev.set()
        self.join(5.0)
        if self.is_alive():
            raise AssertionError("writer thread did not stop")
        if self.error:
            raise self.error
        return len(self.times)


class Collector(threading.Thread):
    """Reads the data events of an SSE client in a thread: arrivals is a
    list of (data, monotonic time of arrival)."""

    def __init__(self, client):
        threading.Thread.__init__(self, daemon=True)
        self.c = client
        self.arrivals = []
        self.stop_ev = threading.Event()
        self.ended = False
        self.error = None

    def run(self):
        try:
            while not self.stop_ev.is_set():
                try:
                    ev = self.c.next_event(0.1)
                except TimeoutError:
                    continue
                if ev is None:
                    self.ended = True
                    return
                if is_data(ev):
                    self.arrivals.append((ev["data"], time.monotonic()))
        except Exception as e:
            self.error = e

    def wait_count(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < n and time.monotonic() < deadline \
                and self.is_alive():
            time.sleep(0.005)
        return len(self.arrivals) >= n

    def stop(self):
        self.stop_ev.set()
        self.join(5.0)
        if self.error:
            raise self.error


def seq_of(data):
    m = re.match(r"seq=(\d+)$", data)
    if not m:
        raise AssertionError("not a seq line: %r" % data)
    return int(m.group(1))


# ---------------------------------------------------------------- grep etc.

class GrepExcludeIcase(unittest.TestCase):
    def check_live(self, params, lines, want):
        """Stream with params, append lines (one write) and a marker that
        every filter here keeps ("KEEP-marker"); the data events before the
        marker must be `want`, with ids pointing after their lines."""
        with FDaemon(content={"app": b"old line\n"}) as d:
            c = d.open(params)
            ino = d.ino("app")
            start = os.path.getsize(d.path("app"))
            data = "".join(s + "\n" for s in lines).encode()
            d.write("app", data + b"KEEP-marker alpha beta\n")
            evs = until_data(c, "KEEP-marker alpha beta")
            ids = {raw.decode(): "%d:%d" % (ino, off)
                   for off, raw in line_positions(data, start)}
            got = [(e["id"], e["data"]) for e in evs if is_data(e)][:-1]
            self.assertEqual(got, [(ids[s], s) for s in want])
            # every id is a line end of the file, in order
            offs = [offset_of(e["id"]) for e in evs if e["id"]]
            self.assertEqual(offs, sorted(offs))
            for e in evs:
                self.assertTrue(is_data(e) or is_id_only(e), e)
                self.assertTrue(e["id"].startswith("%d:" % ino), e)

    def test_grep_keeps_only_matching_lines(self):
        self.check_live([("grep", "error|KEEP")],
                        ["info: fine", "error: disk", "warn", "an error",
                         "ERROR upper", "errors everywhere", ""],
                        ["error: disk", "an error", "errors everywhere"])

    def test_grep_repeated_every_one_must_match(self):
        self.check_live([("grep", "alpha|KEEP"), ("grep", "beta")],
                        ["alpha", "beta", "alpha beta", "beta alpha",
                         "alphabet", "gamma"],
                        ["alpha beta", "beta alpha"])

    def test_exclude_repeated_any_one_drops(self):
        self.check_live([("exclude", "debug"), ("exclude", "trace")],
                        ["debug: x", "trace: y", "info: z", "debug trace",
                         "DEBUG is not debug-cased", "Trace"],
                        ["info: z", "Trace"])

    def test_grep_and_exclude_together(self):
        self.check_live([("grep", "error|KEEP"), ("grep", "disk|KEEP"),
                         ("exclude", "ignore"), ("exclude", "^#")],
                        ["error disk", "error disk ignore", "# error disk",
                         "error net", "disk ok", "disk error again"],
                        ["error disk", "disk error again"])

    def test_icase_applies_to_grep_and_exclude(self):
        self.check_live([("grep", "error|keep"), ("exclude", "ignore"),
                         ("icase", "1")],
                        ["ERROR upper", "Error IGNORE me", "error",
                         "eRrOr mixed", "warn", "error Ignore"],
                        ["ERROR upper", "error", "eRrOr mixed"])

    def test_icase_0_is_case_sensitive(self):
        self.check_live([("grep", "error|KEEP"), ("exclude", "ignore"),
                         ("icase", "0")],
                        ["ERROR upper", "error IGNORE", "error ignore",
                         "error"],
                        ["error IGNORE", "error"])

    def test_filters_see_the_text_the_client_gets(self):
        # a trailing \r is dropped before matching; invalid bytes and NUL
        # are U+FFFD, which '.' matches as one character
        raws = [b"ends with cr\r", b"bad\xffend", b"nul\x00end",
                b"plain cr", b"badXXend"]
        with FDaemon() as d:
            c = d.open([("grep", r"cr$|^bad.end$|^nul.end$|^KEEP")])
            d.write("app", b"".join(r + b"\n" for r in raws) + b"KEEP\n")
            self.assertEqual(datas(until_data(c, "KEEP"))[:-1],
                             ["ends with cr", "bad\ufffdend",
                              "nul\ufffdend", "plain cr"])


class Utf8(unittest.TestCase):
    LINES = ["café au lait", "cafe au lait", "CAFÉ NOIR", "日本語のログ",
             "中文日志 error", "naïve", "Ελληνικά", "ΕΛΛΗΝΙΚΆ"]

    def run_case(self, d, params):
        c = d.open(params)
        d.write("app", "".join(s + "\n" for s in self.LINES) + "MARK\n")
        evs = until_data(c, "MARK")
        c.close()
        return datas(evs)[:-1]

    def test_utf8_patterns(self):
        cases = [
            ([("grep", "é|MARK")], ["café au lait"]),
            ([("grep", "É|MARK")], ["CAFÉ NOIR"]),
            ([("grep", "é|MARK"), ("icase", "1")],
             ["café au lait", "CAFÉ NOIR"]),
            ([("grep", "日本|MARK")], ["日本語のログ"]),
            ([("grep", "[\u4e00-\u9fff]{2}|MARK")],
             ["日本語のログ", "中文日志 error"]),
            # '.' is one character, not one byte
            ([("grep", "^caf.$|^caf. |MARK")], ["café au lait",
                                                "cafe au lait"]),
            ([("grep", "^na.ve$|MARK")], ["naïve"]),
            ([("grep", "ελληνικά|MARK"), ("icase", "1")],
             ["Ελληνικά", "ΕΛΛΗΝΙΚΆ"]),
            ([("exclude", "[^\\x00-\\x7f]")], ["cafe au lait"]),
            ([("exclude", "[^\\x00-\\x7f]"), ("exclude", "^caf")], []),
        ]
        with FDaemon() as d:
            for params, want in cases:
                with self.subTest(params=params):
                    self.assertEqual(self.run_case(d, params), want)


# ---------------------------------------------------------------- JSON

class JsonFormat(unittest.TestCase):
    def test_line_offset_and_escaping(self):
        raws = [
            b'quotes "x" and \'y\'',
            b"back\\slash \\n not a newline",
            b"tab\there",
            b"ctl \x01\x02\x1b[31m\x1f\x7f end",
            b"bell\x07 bs\x08 ff\x0c vt\x0b",
            b"bad \xff\xfe utf8 \xe2\x82 cut",
            b"nul\x00byte",
            b"mid\rcr",
            b"trailing cr\r",
            "ls \u2028 ps \u2029 end".encode(),
            "emoji \U0001F600 é 日本".encode(),
            b"</script><b>&amp;",
            b"",
            b"{\"line\":\"fake\",\"offset\":1}",
        ]
        with FDaemon() as d:
            c = d.open([("format", "json")])
            ino = d.ino("app")
            data = b"".join(r + b"\n" for r in raws)
            d.write("app", data)
            pos = line_positions(data)
            got = [next_ev(c) for _ in pos]
            for (off, raw), ev in zip(pos, got):
                with self.subTest(raw=raw):
                    self.assertTrue(is_data(ev), ev)
                    self.assertEqual(ev["id"], "%d:%d" % (ino, off))
                    obj = json.loads(ev["data"])  # strict: no raw controls
                    self.assertEqual(obj, {"line": expected_text(raw),
                                           "offset": off, "match": []})

    def check_ranges(self, params, lines, patterns, flags=0):
        with FDaemon() as d:
            c = d.open(params + [("format", "json")])
            ino = d.ino("app")
            data = "".join(s + "\n" for s in lines).encode()
            d.write("app", data)
            pos = line_positions(data)
            kept = 0
            for (off, raw), s in zip(pos, lines):
                if not all(re.search(p, s, flags) for p in patterns):
                    continue
                kept += 1
                want = expected_ranges(s, patterns, flags)
                ev = next_ev(c)
                self.assertTrue(is_data(ev), ev)
                obj = json.loads(ev["data"])
                self.assertEqual(ev["id"], "%d:%d" % (ino, off))
                self.assertEqual(obj["line"], s)
                self.assertEqual(obj["offset"], off)
                self.assertEqual(obj["match"], want, s)
                b = s.encode()
                for st, en in obj["match"]:
                    # ranges cut the line at character boundaries
                    b[st:en].decode("utf-8")
            self.assertGreater(kept, 0)

    def test_match_ranges_of_every_grep_pattern(self):
        lines = [
            "error: disk error, errors",
            "é error — 日本error日本 error",
            "no match here",
            "ERROR upper only",
            "xx errorerror xx",
        ]
        self.check_ranges([("grep", "error"), ("grep", "rr|x+")], lines,
                          ["error", "rr|x+"])

    def test_overlapping_ranges_of_two_patterns(self):
        lines = ["abcabc", "zabcz"]
        self.check_ranges([("grep", "ab"), ("grep", "bc")], lines,
                          ["ab", "bc"])

    def test_identical_ranges_written_once(self):
        lines = ["foo bar foo", "xfoox"]
        self.check_ranges([("grep", "foo"), ("grep", "[f]oo")], lines,
                          ["foo", "[f]oo"])

    def test_empty_matches_skipped(self):
        # x* matches everywhere (the line is kept); ranges only for the
        # non-empty matches
        with FDaemon() as d:
            c = d.open([("grep", "x*"), ("format", "json")])
            d.write("app", "axxbx\nnone\n")
            a, b = next_ev(c), next_ev(c)
            self.assertEqual(json.loads(a["data"])["match"],
                             [[1, 3], [4, 5]])
            self.assertEqual(json.loads(b["data"]),
                             {"line": "none", "offset": 11, "match": []})

    def test_utf8_byte_ranges(self):
        lines = ["café crème brûlée", "日本語 and 日本", "ééé"]
        self.check_ranges([("grep", "é|日本")], lines, ["é|日本"])

    def test_icase_ranges(self):
        lines = ["Error ERROR error eRRor", "CAFÉ café"]
        self.check_ranges([("grep", "error|é"), ("icase", "1")], lines,
                          ["error|é"], re.I)

    def test_invalid_utf8_line_ranges(self):
        # the line is matched as the client gets it: \xff is U+FFFD
        with FDaemon() as d:
            c = d.open([("grep", "bad.end"), ("format", "json")])
            d.write("app", b"x bad\xffend\n")
            obj = json.loads(next_ev(c)["data"])
            self.assertEqual(obj["line"], "x bad\ufffdend")
            self.assertEqual(obj["match"], [[2, 11]])

    def test_exclude_only_has_no_ranges(self):
        with FDaemon() as d:
            c = d.open([("exclude", "drop"), ("format", "json")])
            d.write("app", "drop me\nkeep me\n")
            ev = next_ev(c)
            self.assertEqual(json.loads(ev["data"]),
                             {"line": "keep me", "offset": 16,
                              "match": []})


# ---------------------------------------------------------------- tail

class TailWithFilters(unittest.TestCase):
    def test_last_n_matching_lines(self):
        lines = ["line%02d %s" % (i, "hit" if i % 3 == 0 else "miss")
                 for i in range(1, 31)]
        content = "".join(s + "\n" for s in lines).encode()
        with FDaemon(content={"app": content}) as d:
            ino = d.ino("app")
            ids = {raw.decode(): "%d:%d" % (ino, off)
                   for off, raw in line_positions(content)}
            hits = [s for s in lines if "hit" in s]
            streams = {n: d.open([("grep", "hit"), ("tail", str(n))])
                       for n in (0, 1, 4, 10, 100)}
            d.write("app", "live miss\nlive hit\n")
            for n, c in streams.items():
                with self.subTest(tail=n):
                    evs = until_data(c, "live hit")
                    got = [(e["id"], e["data"]) for e in evs
                           if is_data(e)][:-1]
                    want = hits[len(hits) - n:] if n else []
                    self.assertEqual(got, [(ids[s], s) for s in want])

    def test_tail_fewer_matches_than_asked(self):
        content = b"a hit\nmiss\nb hit\nmiss\nmiss\n"
        with FDaemon(content={"app": content}) as d:
            c = d.open([("grep", "hit"), ("tail", "50")])
            evs = until(c, is_id_only)
            self.assertEqual(datas(evs), ["a hit", "b hit"])
            # the trailing dropped lines move the position to the end
            self.assertEqual(offset_of(evs[-1]["id"]), len(content))

    def test_tail_none_match(self):
        content = b"miss\n" * 50
        with FDaemon(content={"app": content}) as d:
            c = d.open([("grep", "hit"), ("tail", "5")])
            evs = until(c, lambda e: e["id"] is not None)
            self.assertEqual(evs, [evs[-1]])
            self.assertTrue(is_id_only(evs[-1]), evs[-1])
            self.assertEqual(offset_of(evs[-1]["id"]), len(content))
            d.write("app", "now a hit\n")
            ev = next_ev(c)
            self.assertEqual((ev["id"], ev["data"]),
                             ("%d:%d" % (d.ino("app"), len(content) + 10),
                              "now a hit"))

    def test_tail_with_exclude_icase_and_json(self):
        lines = ["INFO one", "debug two", "info three", "DEBUG four",
                 "info five", "debug six"]
        content = "".join(s + "\n" for s in lines).encode()
        with FDaemon(content={"app": content}) as d:
            pos = dict((raw.decode(), off)
                       for off, raw in line_positions(content))
            c = d.open([("exclude", "debug"), ("icase", "1"),
                        ("grep", "info"), ("format", "json"),
                        ("tail", "2")])
            evs = until(c, is_id_only)
            objs = [json.loads(e["data"]) for e in evs if is_data(e)]
            self.assertEqual(objs, [
                {"line": "info three", "offset": pos["info three"],
                 "match": [[0, 4]]},
                {"line": "info five", "offset": pos["info five"],
                 "match": [[0, 4]]}])
            self.assertEqual(offset_of(evs[-1]["id"]), len(content))

    def test_tail_with_partial_last_line(self):
        with FDaemon(content={"app": b"m1\nx\nm2\nx\nm-par"}) as d:
            c = d.open([("grep", "^m"), ("tail", "5")])
            self.assertEqual(datas(until(c, is_id_only)), ["m1", "m2"])
            d.write("app", "tial\n")
            ev = next_ev(c)
            self.assertEqual((ev["id"], ev["data"]),
                             ("%d:20" % d.ino("app"), "m-partial"))

    def test_tail_matches_far_apart_and_across_blocks(self):
        # ~1 MB of lines of random lengths, so that the backwards reads'
        # block boundaries fall inside lines, matching lines sparse
        rnd = random.Random(1234)
        lines = []
        for i in range(1200):
            if rnd.random() < 0.02:
                s = "MATCH %d " % i + "m" * rnd.randrange(0, 3000)
            else:
                s = "filler %d " % i + "f" * rnd.randrange(0, 1500)
            lines.append(s)
        lines.append("MATCH last")
        lines += ["filler tail %d" % i for i in range(3)]
        content = "".join(s + "\n" for s in lines).encode()
        pos = [off for off, _ in line_positions(content)]
        matching = [(pos[i], s) for i, s in enumerate(lines)
                    if s.startswith("MATCH")]
        self.assertGreater(len(matching), 15)
        with FDaemon(content={"app": content}) as d:
            ino = d.ino("app")
            for params in ([("grep", "^MATCH")], [("exclude", "^filler")],
                           [("grep", "^match"), ("icase", "1")]):
                for n in (1, 2, 7, len(matching), len(matching) + 5):
                    with self.subTest(params=params, tail=n):
                        c = d.open(params + [("tail", str(n))])
                        # (a filtered stream that yields to the others
                        # says where it got to: an id-only event before
                        # the end is no end)
                        evs = until(c, lambda e: is_id_only(e) and
                                    offset_of(e["id"]) == len(content),
                                    timeout=10)
                        got = [(e["id"], e["data"]) for e in evs
                               if is_data(e)]
                        want = [("%d:%d" % (ino, off), s)
                                for off, s in matching[-n:]]
                        self.assertEqual(got, want)
                        self.assertEqual(offset_of(evs[-1]["id"]),
                                         len(content))
                        c.close()


# ---------------------------------------------------------------- resume

class ResumeFiltered(unittest.TestCase):
    def test_id_only_event_after_dropped_lines(self):
        with FDaemon() as d:
            ino = d.ino("app")
            c = d.open([("grep", "keep")])
            d.write("app", "keep1\n")
            ev = next_ev(c)
            self.assertEqual((ev["id"], ev["data"]), ("%d:6" % ino, "keep1"))
            d.write("app", "drop1\ndrop2\n")
            ev = next_ev(c)
            self.assertTrue(is_id_only(ev), ev)
            self.assertEqual(ev["id"], "%d:18" % ino)
            # exactly "id: INO:OFF" and a blank line: no data, no event
            self.assertIn(("\n\nid: %d:18\n\n" % ino).encode(), bytes(c.raw))
            d.write("app", "keep2\n")
            ev = next_ev(c)
            self.assertEqual((ev["id"], ev["data"]), ("%d:24" % ino, "keep2"))
            # a dropped run then a kept line in one write: the kept line's
            # id covers the run, no id-only event is needed (but allowed)
            d.write("app", "drop3\nkeep3\n")
            evs = until_data(c, "keep3")
            self.assertEqual(evs[-1]["id"], "%d:36" % ino)
            for e in evs[:-1]:
                self.assertTrue(is_id_only(e), e)
                self.assertEqual(e["id"], "%d:30" % ino)

    def test_long_dropped_run_ends_at_its_last_line(self):
        run = "".join("drop %05d %s\n" % (i, "x" * (i % 97))
                      for i in range(6000)).encode()
        with FDaemon() as d:
            ino = d.ino("app")
            c = d.open([("grep", "keep")])
            d.write("app", run)
            evs = until(c, lambda e: e["id"] == "%d:%d" % (ino, len(run)),
                        timeout=10)
            ends = {off for off, _ in line_positions(run)}
            prev = 0
            for e in evs:
                self.assertTrue(is_id_only(e), e)
                off = offset_of(e["id"])
                self.assertIn(off, ends)
                self.assertGreater(off, prev)
                prev = off
            d.write("app", "keep\n")
            ev = next_ev(c)
            self.assertEqual((ev["id"], ev["data"]),
                             ("%d:%d" % (ino, len(run) + 5), "keep"))

    def test_resume_continues_after_the_id_without_resending(self):
        content = b"keep1\ndrop1\nkeep2\ndrop2\nkeep3\ndrop3\ndrop4\n"
        ends = [off for off, _ in line_positions(content)]
        with FDaemon(content={"app": content}) as d:
            ino = d.ino("app")
            c = d.open([("grep", "keep"), ("tail", "10")])
            evs = until(c, is_id_only)
            self.assertEqual([(e["id"], e["data"]) for e in evs], [
                ("%d:%d" % (ino, ends[0]), "keep1"),
                ("%d:%d" % (ino, ends[2]), "keep2"),
                ("%d:%d" % (ino, ends[4]), "keep3"),
                ("%d:%d" % (ino, ends[6]), None)])
            # after keep1: keep2 and keep3, once each; the header wins over
            # tail, as for unfiltered streams
            c2 = d.open([("grep", "keep"), ("tail", "10")],
                        headers={"Last-Event-ID": evs[0]["id"]})
            evs2 = until(c2, is_id_only)
            self.assertEqual([(e["id"], e["data"]) for e in evs2],
                             [(e["id"], e["data"]) for e in evs[1:]])
            # from the id-only position: nothing is sent again
            c3 = d.open([("grep", "keep"),
                         ("lastEventId", evs[-1]["id"])])
            d.write("app", "drop5\nkeep4\n")
            ev = next_ev(c3)
            self.assertEqual((ev["id"], ev["data"]),
                             ("%d:%d" % (ino, len(content) + 12), "keep4"))

    def test_id_only_position_is_after_the_dropped_lines(self):
        # Resuming from the id-only event without a filter sends what
        # follows it, not the dropped lines: the position did move.
        with FDaemon(content={"app": b"keep0\n"}) as d:
            ino = d.ino("app")
            c = d.open([("grep", "keep")])
            d.write("app", "drop1\ndrop2\ndrop3\n")
            ev = next_ev(c)
            self.assertTrue(is_id_only(ev), ev)
            self.assertEqual(ev["id"], "%d:24" % ino)
            c2 = d.open(headers={"Last-Event-ID": ev["id"]})
            c.close()
            d.write("app", "after\n")
            ev2 = next_ev(c2)
            self.assertEqual((ev2["id"], ev2["data"]),
                             ("%d:30" % ino, "after"))


# ---------------------------------------------------------------- errors

class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = FDaemon(content={"app": b"one\ntwo\n"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def get(self, params=(), raw=None):
        return self.d.get(events_path("app", params, raw))

    def accepted(self, params=(), raw=None):
        c = self.d.open(params, raw=raw, expect=None)
        st = c.status
        c.close()
        return st

    def test_invalid_pattern_pcre2_message_and_offset(self):
        r = self.get([("grep", "ab(c")])
        check_one_line_error(self, r, 400, "grep",
                             "missing closing parenthesis", "offset 4")
        r = self.get([("exclude", "ab(c")])
        check_one_line_error(self, r, 400, "exclude",
                             "missing closing parenthesis", "offset 4")
        # the bad one among good ones
        r = self.get([("grep", "ok"), ("exclude", "fine"), ("grep", "x[z")])
        check_one_line_error(self, r, 400, "grep",
                             "missing terminating ]", "offset 3")
        r = self.get([("grep", "a{2,1}")])
        check_one_line_error(self, r, 400, "grep", "offset")
        r = self.get([("grep", "(?<n>a)(?<n>b)")])
        check_one_line_error(self, r, 400, "grep", "offset")

    def test_backslash_C_refused(self):
        r = self.get([("grep", "a\\Cb")])
        check_one_line_error(self, r, 400, "grep", "offset")

    def test_too_many_patterns(self):
        g = [("grep", "g%d" % i) for i in range(16)]
        e = [("exclude", "e%d" % i) for i in range(16)]
        self.assertEqual(self.accepted(g), 200)
        self.assertEqual(self.accepted(e), 200)
        self.assertEqual(self.accepted(g[:8] + e[:8]), 200)
        for params in (g + [("grep", "g16")], e + [("exclude", "e16")],
                       g[:9] + e[:8], g[:1] + e):
            with self.subTest(n=len(params)):
                check_one_line_error(self, self.get(params), 400, "16")

    def test_pattern_length_limit_in_bytes(self):
        self.assertEqual(self.accepted([("grep", "a" * 1024)]), 200)
        self.assertEqual(self.accepted([("grep", "é" * 512)]), 200)
        check_one_line_error(self, self.get([("grep", "a" * 1025)]), 400,
                             "grep", "1024")
        check_one_line_error(self, self.get([("exclude", "a" * 1025)]), 400,
                             "exclude", "1024")
        # 513 characters but 1025 bytes
        check_one_line_error(self, self.get([("grep", "é" * 512 + "a")]),
                             400, "grep", "1024")

    def test_invalid_utf8_pattern(self):
        for bad in ("%FF", "a%C3", "%C3%28", "%C0%AF", "%ED%A0%80",
                    "ok%F4%90%80%80"):
            with self.subTest(pattern=bad):
                check_one_line_error(self, self.get(raw="grep=" + bad),
                                     400, "grep", "UTF-8")
        check_one_line_error(self, self.get(raw="exclude=%FF"), 400,
                             "exclude", "UTF-8")

    def test_bad_icase_and_format(self):
        for v in ("2", "true", "yes", "", "01", " 1", "1 "):
            with self.subTest(icase=v):
                check_one_line_error(self, self.get([("icase", v)]), 400,
                                     "icase")
        for v in ("xml", "JSON", "", "json ", "jsonp"):
            with self.subTest(format=v):
                check_one_line_error(self, self.get([("format", v)]), 400,
                                     "format")
        self.assertEqual(self.accepted([("icase", "1")]), 200)
        self.assertEqual(self.accepted([("icase", "0")]), 200)
        self.assertEqual(self.accepted([("format", "json")]), 200)

    def test_valueless_icase_is_not_silently_ignored(self):
        # "?icase" without "=1" must not be taken as "case-sensitive":
        # either a 400 naming icase, or it means icase=1
        c = self.d.open(raw="grep=ONE&icase&tail=5", expect=None)
        if c.status == 400:
            return
        self.assertEqual(c.status, 200)
        evs = until(c, lambda e: e["id"] is not None)
        self.assertEqual(datas(evs), ["one"],
                         "?icase was ignored: the stream is case-sensitive")

    def test_nul_in_pattern_is_not_silently_truncated(self):
        # grep=a%00b: the pattern "a\0b" can match no line (a NUL in a line
        # becomes U+FFFD); it must not become "a" and let "ab" through
        with FDaemon() as d:
            c = d.open(raw="grep=a%00b%7CKEEP%20a", expect=None)
            if c.status == 400:
                check_one_line_error(self, d.get(events_path(
                    raw="grep=a%00b%7CKEEP%20a")), 400, "grep")
                return
            self.assertEqual(c.status, 200)
            d.write("app", "ab\na b\nKEEP a\n")
            self.assertEqual(datas(until_data(c, "KEEP a")), ["KEEP a"],
                             "grep=a%00b was taken as grep=a")

    def test_largest_patterns_in_one_request(self):
        # 16 patterns of 1024 bytes are within the filter's limits, but a
        # request line that long does not fit the 6 KiB a connection gets
        # (the price of 8 KiB per idle stream): libmicrohttpd refuses it
        # itself with 414 URI Too Long (its own page; documented in the
        # README).  A request within ~5 KiB is accepted.
        params = [("grep", chr(ord("a") + i) * 1024) for i in range(16)]
        c = self.d.open(params, expect=None)
        st = c.status
        c.close()
        self.assertIn(st, (200, 414))
        params = [("grep", chr(ord("a") + i) * 200) for i in range(16)]
        c = self.d.open(params, expect=None)
        self.assertEqual(c.status, 200)
        c.close()


# ---------------------------------------------------------------- encoding

class UrlEncoding(unittest.TestCase):
    LINES = ["a b", "ab", "aab", "a+b", "a\\b", "id=42", "id=x", "x&y",
             "k=v#frag", "50%", "tab\tsep", "end"]
    CONTENT = "".join(s + "\n" for s in LINES).encode()

    @classmethod
    def setUpClass(cls):
        cls.d = FDaemon(content={"app": cls.CONTENT}).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def kept(self, raw_query):
        """The lines of the file that the filter of raw_query keeps."""
        c = self.d.open(raw=raw_query + "&tail=100")
        end = len(self.CONTENT)
        evs = until(c, lambda e: e["id"] is not None and
                    offset_of(e["id"]) == end)
        c.close()
        return datas(evs)

    def test_percent_encoded_patterns(self):
        cases = [
            ("grep=a%20b", ["a b"]),                 # %20: space
            ("grep=id%3D%5Cd%2B", ["id=42"]),        # id=\d+
            ("grep=%5Ea%2Bb%24", ["ab", "aab"]),     # ^a+b$
            ("grep=a%2Bb", ["ab", "aab", "tab\tsep"]),  # a+b
            ("grep=a%5C%2Bb", ["a+b"]),              # a\+b
            ("grep=a%5C%5Cb", ["a\\b"]),             # a\\b
            ("grep=x%26y", ["x&y"]),                 # & does not split
            ("grep=%23frag", ["k=v#frag"]),          # nor does #
            ("grep=50%25", ["50%"]),
            ("grep=%5Ct", ["tab\tsep"]),              # \t
            ("exclude=%5B%5Ea-z%5D", ["ab", "aab", "end"]),
        ]
        for qs, want in cases:
            with self.subTest(query=qs):
                self.assertEqual(self.kept(qs), want)

    def test_raw_plus_is_a_space(self):
        # A literal '+' in the query string is form-encoding for a space
        # (as HTML forms and URLSearchParams write it): grep=a+b is the
        # pattern "a b", not the regex a+b; %2B is the way to send '+'.
        self.assertEqual(self.kept("grep=a+b"), ["a b"])
        self.assertEqual(self.kept("grep=%5Ea+b%24"), ["a b"])
        self.assertEqual(self.kept("grep=%5Ea%2Bb%24"), ["ab", "aab"])


# ---------------------------------------------------------------- limits

class CatastrophicPattern(unittest.TestCase):
    LAT_MAX = 0.100

    def start_b(self, d, name):
        """Stream B (no filter) on log `name`, a writer of numbered lines
        and a collector; returns (writer, collector) once B is live."""
        b = d.open(name=name)
        coll = Collector(b)
        coll.start()
        w = TimedLines(d.path(name), interval=0.004)
        w.start()
        if not coll.wait_count(5, timeout=5):
            w.stop()
            coll.stop()
            self.fail("stream B did not get going")
        return w, coll

    def check_b(self, w, coll, t0, t1, min_during=10):
        """Every line B's writer wrote arrived, in order, and those written
        in [t0, t1] within LAT_MAX of their write."""
        n = w.stop()
        try:
            self.assertTrue(coll.wait_count(n, timeout=5),
                            "B got %d of %d lines" % (len(coll.arrivals), n))
        finally:
            coll.stop()
        seqs = [seq_of(s) for s, _ in coll.arrivals]
        self.assertEqual(seqs, list(range(n)))
        during = [(i, at - w.times[i]) for i, (_, at)
                  in enumerate(coll.arrivals)
                  if t0 <= w.times[i] <= t1]
        self.assertGreaterEqual(len(during), min_during,
                                "too few B lines during the test window")
        if not during:
            return
        worst = max(lat for _, lat in during)
        slow = [(i, round(lat * 1000, 1)) for i, lat in during
                if lat >= self.LAT_MAX]
        self.assertEqual(slow, [], "B latencies (line, ms) >= %d ms; worst "
                         "%.1f ms of %d lines" % (self.LAT_MAX * 1000,
                                                  worst * 1000, len(during)))

    def test_catastrophic_lines_do_not_stall_other_streams(self):
        with FDaemon(logs=["app", "other"]) as d:
            ino = d.ino("app")
            a = d.open([("grep", CATASTROPHIC)])
            d.write("app", "aa\n")
            ev = next_ev(a)
            self.assertEqual((ev["id"], ev["data"]), ("%d:3" % ino, "aa"))
            w, coll = self.start_b(d, "other")
            a_evs = []
            try:
                t0 = time.monotonic()
                # one at a time, each waited for on A, then on B ...
                for _ in range(8):
                    d.write("app", CAT_LINE)
                    end = os.path.getsize(d.path("app"))
                    a_evs += until(a, lambda e: e["id"] and
                                   offset_of(e["id"]) >= end, timeout=10)
                    self.assertTrue(coll.wait_count(len(w.times) + 2, 2))
                # ... and a burst in one write
                d.write("app", CAT_LINE * 4)
                end = os.path.getsize(d.path("app"))
                a_evs += until(a, lambda e: e["id"] and
                               offset_of(e["id"]) >= end, timeout=10)
                t1 = time.monotonic()
                # B keeps flowing a little after, to catch a late stall
                self.assertTrue(coll.wait_count(len(w.times) + 3, 2))
            finally:
                self.check_b(w, coll, t0, t1)
            limits = [e for e in a_evs if e["event"] == "filter-limit"]
            self.assertEqual(len(limits), 1, a_evs)
            json.loads(limits[0]["data"])  # control events carry JSON
            self.assertEqual(datas(a_evs), [])
            self.assertEqual(a_evs[-1]["id"], "%d:%d" % (ino, end))
            for e in a_evs:
                self.assertIn(e["event"], (None, "filter-limit"), e)
            # later matching lines still arrive
            d.write("app", "aaa\n")
            ev = next_ev(a)
            self.assertEqual((ev["id"], ev["data"]),
                             ("%d:%d" % (ino, end + 4), "aaa"))

    def test_filter_limit_once_per_stream(self):
        with FDaemon() as d:
            ino = d.ino("app")
            a = d.open([("grep", CATASTROPHIC), ("format", "json")])
            d.write("app", CAT_LINE + b"aaa\n")
            evs = until(a, is_data, timeout=10)
            self.assertEqual([e["event"] for e in evs if e["event"]],
                             ["filter-limit"])
            self.assertEqual(json.loads(evs[-1]["data"]),
                             {"line": "aaa", "offset": len(CAT_LINE) + 4,
                              "match": [[0, 3]]})
            # again: no second filter-limit on this stream
            d.write("app", CAT_LINE + CAT_LINE + b"aaaa\n")
            end = os.path.getsize(d.path("app"))
            evs = until(a, lambda e: is_data(e), timeout=10)
            self.assertEqual([e["event"] for e in evs if e["event"]], [])
            self.assertEqual(json.loads(evs[-1]["data"]),
                             {"line": "aaaa", "offset": end,
                              "match": [[0, 4]]})
            # another stream over the same lines says so once, itself
            a2 = d.open([("grep", CATASTROPHIC),
                         ("lastEventId", "%d:0" % ino)])
            evs2 = until_data(a2, "aaaa", timeout=10)
            self.assertEqual([e["event"] for e in evs2 if e["event"]],
                             ["filter-limit"])
            self.assertEqual(datas(evs2), ["aaa", "aaaa"])
            self.assertEqual(evs2[-1]["id"], "%d:%d" % (ino, end))

    def test_tail_over_catastrophic_lines_does_not_stall_others(self):
        # tail=N with a filter looks back for N matching lines: on a log
        # full of lines the pattern cannot decide, that search must not
        # stall the other streams either.  (20 lines: reading them forward
        # alone stays well within LAT_MAX, see the next test.)  The search
        # gives up once the pattern has been slow on these lines for ~10 ms
        # (documented), so it may or may not reach "aaa"; what matters is
        # that A is answered and B is not held up.
        content = b"aaa\n" + CAT_LINE * 20
        with FDaemon(logs=["app", "other"], content={"app": content}) as d:
            w, coll = self.start_b(d, "other")
            try:
                t0 = time.monotonic()
                a = d.open([("grep", CATASTROPHIC), ("tail", "5")])
                evs = until(a, lambda e: e["id"] and
                            offset_of(e["id"]) >= len(content), timeout=15)
                t1 = time.monotonic()
                self.assertTrue(coll.wait_count(len(w.times) + 3, 2))
            finally:
                self.check_b(w, coll, t0, t1, min_during=0)
            self.assertLess(t1 - t0, self.LAT_MAX * 3,
                            "A took %.0f ms" % ((t1 - t0) * 1000))
            self.assertIn(datas(evs), (["aaa"], []))
            self.assertEqual(
                [e["event"] for e in evs if e["event"]], ["filter-limit"])

    def test_resume_over_many_catastrophic_lines_does_not_stall_others(self):
        # A stream resumed (or a burst appended) over a backlog of 60 such
        # lines (3.9 MB, one read call's worth): the per-line budget holds
        # for each, and the other streams must not wait for all of them.
        content = b"aaa\n" + CAT_LINE * 60
        with FDaemon(logs=["app", "other"], content={"app": content}) as d:
            ino = d.ino("app")
            w, coll = self.start_b(d, "other")
            try:
                t0 = time.monotonic()
                a = d.open([("grep", CATASTROPHIC),
                            ("lastEventId", "%d:0" % ino)])
                evs = until(a, lambda e: e["id"] and
                            offset_of(e["id"]) >= len(content), timeout=15)
                t1 = time.monotonic()
                self.assertTrue(coll.wait_count(len(w.times) + 3, 2))
            finally:
                self.check_b(w, coll, t0, t1)
            self.assertEqual(datas(evs), ["aaa"])
            self.assertEqual(
                [e["event"] for e in evs if e["event"]], ["filter-limit"])


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
