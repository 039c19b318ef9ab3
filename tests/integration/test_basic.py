#!/usr/bin/env python3
"""The event stream of one log: headers, ids, line encoding, where a stream
starts (live, backlog, tail), a file that appears later, heartbeats and
several streams on one log."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, Writer, expected_text, line_positions  # noqa


def numbered(n, start=1):
    return "".join("line%03d\n" % i for i in range(start, start + n))


class StreamHeaders(unittest.TestCase):
    def check_stream_head(self, c):
        self.assertEqual(c.status, 200)
        h = c.headers
        self.assertEqual(h.get("content-type"),
                         "text/event-stream; charset=utf-8")
        self.assertIn("no-cache", h.get("cache-control", ""))
        self.assertEqual(h.get("x-accel-buffering"), "no")
        self.assertIn("chunked", h.get("transfer-encoding", "").lower())
        self.assertNotIn("content-length", h)

    def test_headers_and_default_retry(self):
        with Daemon() as d:
            c = d.stream("app")
            self.check_stream_head(c)
            ev = c.next_event()
            self.assertEqual(ev["retry"], 2000)
            self.assertTrue(bytes(c.raw).startswith(b"retry: 2000\n"),
                            bytes(c.raw[:40]))

    def test_configured_retry(self):
        with Daemon(server={"retry": 500}) as d:
            c = d.stream("app")
            self.check_stream_head(c)
            ev = c.next_event()
            self.assertEqual(ev["retry"], 500)
            self.assertTrue(bytes(c.raw).startswith(b"retry: 500\n"),
                            bytes(c.raw[:40]))


class IdsAndLines(unittest.TestCase):
    def test_ids_are_inode_and_offset_after_newline(self):
        lines = ["", "a", "hello world", "h\u00e9llo w\u00f6rld",
                 "\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8",
                 "emoji \U0001F600 end", "tab\tseparated", "x" * 5000,
                 "last"]
        with Daemon() as d:
            d.write("app", "before the stream\n")
            start = os.path.getsize(d.path("app"))
            c = d.stream("app")
            ino = d.ino("app")
            # one write per line, then several lines in one write
            for s in lines:
                d.write("app", s + "\n")
            d.write("app", "".join(s + "\n" for s in lines))
            data = ("".join(s + "\n" for s in lines) * 2).encode()
            want = [("%d:%d" % (ino, off), raw.decode())
                    for off, raw in line_positions(data, start)]
            got = [(e["id"], e["data"])
                   for e in c.messages(len(want), timeout=10)]
            self.assertEqual(got, want)
            for e in c.queue:
                self.assertFalse(tsutil.is_message(e), e)

    def test_line_held_until_newline(self):
        with Daemon() as d:
            c = d.stream("app")
            ino = d.ino("app")
            d.write("app", "par")
            early = [e for e in c.quiet_for(0.3) if tsutil.is_message(e)]
            self.assertEqual(early, [], "a line was sent before its \\n")
            d.write("app", "tial\n")
            ev = c.next_message()
            self.assertEqual((ev["id"], ev["data"]),
                             ("%d:8" % ino, "partial"))
            d.write("app", "next\n")
            ev = c.next_message()
            self.assertEqual((ev["id"], ev["data"]),
                             ("%d:13" % ino, "next"))

    def test_cr_nul_and_invalid_utf8(self):
        raws = [
            b"trailing cr\r",
            b"two crs\r\r",
            b"mid\rdle",
            b"\r",
            b"nul\x00byte",
            b"bad\xff\xfeend",
            b"cut seq \xe2\x82 end",
            b"surrogate \xed\xa0\x80 end",
            b"overlong \xc0\xaf end",
            b"truncated at end \xf0\x9f\x98",
            b"valid \xe2\x82\xac euro",
        ]
        with Daemon() as d:
            c = d.stream("app")
            ino = d.ino("app")
            data = b"".join(r + b"\n" for r in raws)
            d.write("app", data)
            want = [("%d:%d" % (ino, off), expected_text(raw))
                    for off, raw in line_positions(data)]
            # spot-check the expectations themselves
            self.assertEqual(want[0][1], "trailing cr")
            self.assertEqual(want[1][1], "two crs\ufffd")
            self.assertEqual(want[2][1], "mid\ufffddle")
            self.assertEqual(want[3][1], "")
            self.assertEqual(want[4][1], "nul\ufffdbyte")
            self.assertEqual(want[5][1], "bad\ufffd\ufffdend")
            self.assertEqual(want[6][1], "cut seq \ufffd end")
            got = [(e["id"], e["data"])
                   for e in c.messages(len(want), timeout=10)]
            self.assertEqual(got, want)
            for (_, text) in got:
                self.assertNotIn("\r", text)
                self.assertNotIn("\n", text)

    def test_max_line_cut(self):
        raws = [
            b"x" * 300,
            b"short after a long one",
            ("a" + "\u00e9" * 100).encode(),  # cut on a char boundary
            ("\u20ac" * 40).encode(),          # 120 bytes of 3-byte chars
            b"y" * 100,                        # exactly max_line: not cut
            b"z" * 101,
            b"w" * 300000,                     # longer than a read buffer
            b"after the huge one",
        ]
        with Daemon(server={"max_line": 100}) as d:
            c = d.stream("app")
            ino = d.ino("app")
            data = b"".join(r + b"\n" for r in raws)
            d.write("app", data)
            pos = line_positions(data)
            got = c.messages(len(pos), timeout=10)
            for (off, raw), ev in zip(pos, got):
                self.assertEqual(ev["id"], "%d:%d" % (ino, off))
                text = ev["data"]
                if len(raw) <= 100:
                    self.assertEqual(text, raw.decode())
                    continue
                self.assertTrue(text.endswith("\u2026"), text[-5:])
                body = text[:-1]
                self.assertLessEqual(len(body.encode()), 100)
                self.assertTrue(raw.decode().startswith(body))
                self.assertEqual(text, expected_text(raw, max_line=100))
            self.assertEqual(got[1]["data"], "short after a long one")
            self.assertEqual(got[-1]["data"], "after the huge one")


class WhereAStreamStarts(unittest.TestCase):
    def test_live_from_end_by_default(self):
        with Daemon(content={"app": numbered(20).encode()}) as d:
            c = d.stream("app")
            ino = d.ino("app")
            start = os.path.getsize(d.path("app"))
            w = Writer(d.path("app"), interval=0.001, count=100).start()
            try:
                got = c.messages(100, timeout=10)
            finally:
                w.stop()
            self.assertEqual([tsutil.number_of(e["data"]) for e in got],
                             list(range(100)))
            self.assertEqual(got[0]["id"],
                             "%d:%d" % (ino, start + len(Writer.FMT % 0)))

    def test_backlog_default(self):
        with Daemon(server={"backlog_default": 3},
                    content={"app": numbered(10).encode()}) as d:
            c = d.stream("app")
            d.write("app", "new\n")
            got = [e["data"] for e in c.messages(4)]
            self.assertEqual(got, ["line008", "line009", "line010", "new"])
            # tail= overrides backlog_default
            c0 = d.stream("app", tail=0)
            d.write("app", "newer\n")
            self.assertEqual(c0.next_message()["data"], "newer")

    def tail_case(self, content, tail, want, then="appended"):
        with Daemon(content={"app": content.encode()}) as d:
            c = d.stream("app", tail=tail)
            ino = d.ino("app")
            d.write("app", then + "\n")
            got = c.messages(len(want) + 1)
            self.assertEqual([e["data"] for e in got], want + [then])
            data = tsutil.read_bytes(d.path("app"))
            ids = {raw.decode(): "%d:%d" % (ino, off)
                   for off, raw in line_positions(data)}
            for e in got:
                self.assertEqual(e["id"], ids[e["data"]])

    def test_tail_0(self):
        self.tail_case(numbered(5), 0, [])

    def test_tail_2(self):
        self.tail_case(numbered(5), 2, ["line004", "line005"])

    def test_tail_more_than_the_file(self):
        self.tail_case(numbered(5), 100,
                       ["line%03d" % i for i in range(1, 6)])

    def test_tail_with_partial_last_line(self):
        with Daemon(content={"app": b"one\ntwo\nthree\npar"}) as d:
            c = d.stream("app", tail=2)
            ino = d.ino("app")
            got = c.messages(2)
            self.assertEqual([(e["id"], e["data"]) for e in got],
                             [("%d:8" % ino, "two"),
                              ("%d:14" % ino, "three")])
            early = [e for e in c.quiet_for(0.3) if tsutil.is_message(e)]
            self.assertEqual(early, [], "the partial line was sent")
            d.write("app", "tial\n")
            ev = c.next_message()
            self.assertEqual((ev["id"], ev["data"]),
                             ("%d:22" % ino, "partial"))

    def test_tail_on_a_huge_file_reads_backwards(self):
        d = Daemon()
        size = 1 << 30  # sparse: costs nothing, but slow to scan forwards
        lines = ["end%02d" % i for i in range(10)]
        tail = ("\n" + "".join(s + "\n" for s in lines)).encode()
        with open(d.path("app"), "wb") as f:
            f.write(b"first line\n")
            f.seek(size - len(tail))
            f.write(tail)
        with d:
            ino = d.ino("app")
            t0 = time.monotonic()
            c = d.stream("app", tail=5)
            first = c.next_message(timeout=5)
            elapsed = time.monotonic() - t0
            self.assertLess(elapsed, 1.0,
                            "tail=5 of 1 GiB took %.2f s" % elapsed)
            got = [first] + c.messages(4)
            want = [("%d:%d" % (ino, size - 6 * (9 - i)), lines[i])
                    for i in range(5, 10)]
            self.assertEqual([(e["id"], e["data"]) for e in got], want)


class FileThatAppearsLater(unittest.TestCase):
    def test_stream_of_missing_file_waits_then_created(self):
        with Daemon(logs=["app", "later"], missing=["later"]) as d:
            c = d.stream("later")
            self.assertEqual(c.status, 200)
            self.assertEqual(
                [e for e in c.quiet_for(0.2) if tsutil.is_message(e)], [])
            tsutil.write_file(d.path("later"), "hello\n")
            ino = d.ino("later")
            ev = c.next_message()
            self.assertEqual(ev["event"], "reset")
            self.assertEqual(json.loads(ev["data"]), {"reason": "created"})
            ev = c.next_message()
            self.assertEqual((ev["event"], ev["id"], ev["data"]),
                             (None, "%d:6" % ino, "hello"))
            d.write("later", "world\n")
            self.assertEqual(c.next_message()["data"], "world")


class Heartbeat(unittest.TestCase):
    def test_idle_stream_gets_ping(self):
        with Daemon(server={"heartbeat": 1}) as d:
            t0 = time.monotonic()
            c = d.stream("app")
            evs = c.read_until(lambda e: "ping" in e["comments"],
                               timeout=2.5)
            self.assertLess(time.monotonic() - t0, 2.6)
            self.assertFalse(any(tsutil.is_message(e) for e in evs), evs)
            self.assertIn(b"\n: ping\n", bytes(c.raw))

    def test_pings_are_counted_in_bytes_sent(self):
        # the watcher writes pings to idle streams' sockets itself: they
        # are bytes sent all the same
        def sent():
            r = d.get("/metrics")
            for ln in r.text.splitlines():
                if ln.startswith("tailsse_bytes_sent_total "):
                    return int(ln.split()[1])
            raise AssertionError("no tailsse_bytes_sent_total")
        with Daemon(server={"heartbeat": 1}) as d:
            c = d.stream("app")
            c.read_until(lambda e: "ping" in e["comments"], timeout=2.5)
            before = sent()
            c.read_until(lambda e: "ping" in e["comments"], timeout=2.5)
            self.assertTrue(tsutil.wait_for(lambda: sent() >= before + 8),
                            "a ping of 8 bytes was not counted")
            c.close()

    def test_ping_follows_each_streams_last_write(self):
        # each stream's first ping comes a heartbeat after its own last
        # write, within 0.1 s (up to 0.1 s early, up to a 0.2 s tick less
        # that late: not at a global second)
        with Daemon(server={"heartbeat": 1}) as d:
            late = []
            for k in range(4):
                time.sleep(0.27)   # spread the streams over the second
                c = d.stream("app")
                c.next_event()     # retry: written now
                t0 = time.monotonic()
                c.read_until(lambda e: "ping" in e["comments"], timeout=3)
                late.append(time.monotonic() - t0 - 1.0)
                c.close()
            # generous for a loaded machine: scheduling on top
            self.assertLess(max(late), 0.35, late)
            self.assertGreater(min(late), -0.15, late)


class ManyStreams(unittest.TestCase):
    def test_20_streams_get_the_same_200_lines(self):
        with Daemon() as d:
            clients = [d.stream("app") for _ in range(20)]
            ino = d.ino("app")
            w = Writer(d.path("app"), interval=0.0005, count=200).start()
            try:
                results = [c.messages(200, timeout=15) for c in clients]
            finally:
                w.stop()
            want = []
            off = 0
            for i in range(200):
                s = Writer.FMT % i
                off += len(s)
                want.append(("%d:%d" % (ino, off), s[:-1]))
            for r in results:
                self.assertEqual([(e["id"], e["data"]) for e in r], want)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
