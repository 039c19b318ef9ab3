#!/usr/bin/env python3
"""Many streams at once: a burst reaches hundreds of streams, a client that
stops reading holds up nobody and costs no memory, and SIGTERM with 500
open streams is quick and clean.

Streams here speak HTTP/1.0 (no chunked framing: the body is the SSE text
as is) on raw sockets, read with one selector, so that hundreds of them
cost the test little."""

import os
import resource
import selectors
import socket
import sys
import time
import unittest

import tsutil


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(want, hard), hard))


def open_raw(port, path, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path).encode())
    return s


def dechunk(body):
    """The payload of a chunked body, strictly: each chunk's size line,
    exactly that many bytes, then CRLF; None when the framing is broken."""
    out, i = bytearray(), 0
    while i < len(body):
        j = body.find(b"\r\n", i)
        if j < 0:
            return bytes(out)  # cut short: what came whole
        try:
            size = int(body[i:j], 16)
        except ValueError:
            return None
        k = j + 2 + size
        if len(body) < k + 2:
            return bytes(out)
        if body[k:k + 2] != b"\r\n":
            return None
        out += body[j + 2:k]
        i = k + 2
    return bytes(out)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Reader:
    """Reads many sockets until each holds `needle` (or a deadline)."""

    def __init__(self, socks):
        self.sel = selectors.DefaultSelector()
        self.bufs = {}
        for s in socks:
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.bufs[s] = bytearray()

    def until(self, needle, timeout):
        deadline = time.monotonic() + timeout
        waiting = {s for s in self.bufs if needle not in self.bufs[s]}
        while waiting and time.monotonic() < deadline:
            for key, _ in self.sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    self.sel.unregister(s)
                    waiting.discard(s)
                    continue
                self.bufs[s] += data
                if needle in self.bufs[s][-len(needle) - (1 << 20):]:
                    waiting.discard(s)
        return waiting

    def close(self):
        for s in self.bufs:
            s.close()
        self.sel.close()


def body_datas(buf):
    """The data: lines of a raw HTTP/1.0 SSE response."""
    head, _, body = bytes(buf).partition(b"\r\n\r\n")
    return [line[6:] for line in body.split(b"\n")
            if line.startswith(b"data: ")]


def metric(d, name):
    """The value of an unlabelled metric in /metrics."""
    r = d.get("/metrics")
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


class Scale(unittest.TestCase):
    def test_burst_reaches_every_stream(self):
        raise_fd_limit(2048)
        n_streams, n_lines = 300, 400
        lines = [b"burst %05d %s" % (i, b"x" * (i % 50))
                 for i in range(n_lines)]
        with tsutil.Daemon() as d:
            socks = [open_raw(d.port, "/api/logs/app/events")
                     for _ in range(n_streams)]
            r = Reader(socks)
            try:
                # every stream is set up once it has its retry: field
                self.assertEqual(r.until(b"retry: ", 20), set())
                data = b"".join(l + b"\n" for l in lines)
                # a burst: a few big writes
                for k in range(0, len(data), 4096):
                    d.write("app", data[k:k + 4096])
                last = b"id: %d:%d\n" % (d.ino("app"), len(data))
                missing = r.until(last, 60)
                self.assertEqual(len(missing), 0,
                                 "%d of %d streams lack the last line"
                                 % (len(missing), n_streams))
                for s in socks:
                    self.assertEqual(body_datas(r.bufs[s]), lines)
            finally:
                r.close()

    def test_stalled_client_delays_nobody_and_costs_no_memory(self):
        # 24 MiB of lines: far more than the socket buffers between the
        # daemon and a client that does not read (4 KiB at the client,
        # up to 4 MiB of the daemon's autotuned send buffer)
        line = b"L%07d " + b"p" * 90
        n = 240000
        with tsutil.Daemon() as d:
            slow = open_raw(d.port, "/api/logs/app/events", rcvbuf=4096)
            fast = open_raw(d.port, "/api/logs/app/events")
            r_fast = Reader([fast])
            self.assertEqual(r_fast.until(b"retry: ", 10), set())
            time.sleep(0.2)  # the slow one's headers are in, unread
            base = rss_kib(d.proc.pid)
            data = b"".join(line % i + b"\n" for i in range(n))
            t0 = time.monotonic()
            d.write("app", data)
            last = b"id: %d:%d\n" % (d.ino("app"), len(data))
            self.assertEqual(r_fast.until(last, 60), set(),
                             "the reading client did not get every line")
            fast_s = time.monotonic() - t0
            grown = rss_kib(d.proc.pid) - base
            # the file is the buffer: nothing queued for the stalled one
            self.assertLess(grown, 8 * 1024,
                            "RSS grew %d KiB while a client stalled" % grown)
            self.assertEqual(len(body_datas(r_fast.bufs[fast])), n)
            # now the slow one reads, and gets everything, in order
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            r_slow = Reader([slow])
            try:
                self.assertEqual(r_slow.until(last, 60), set(),
                                 "the stalled client did not catch up")
                got = body_datas(r_slow.bufs[slow])
                self.assertEqual(len(got), n)
                self.assertEqual(got[0], b"L0000000 " + b"p" * 90)
                self.assertEqual(got[-1][:8], b"L%07d" % (n - 1))
            finally:
                r_slow.close()
                r_fast.close()
            sys.stderr.write("fast client: %d lines in %.2f s, RSS +%d KiB\n"
                             % (n, fast_s, grown))

    def test_slow_reader_of_live_lines_gets_each_once(self):
        # Live lines are written to a waiting stream's socket by the
        # watcher itself while its client keeps up (hub.c, ts_hub_write);
        # a client that does not read fills it, and the rest must go
        # through libmicrohttpd, in order, with the chunk framing whole
        # and the stream open.  Lines come in many small writes (a wake-up
        # each), 6 MiB in all: more than the daemon's autotuned send
        # buffer (4 MiB) and the client's.  (Before the hub kept its writes
        # to a client that keeps up, the kernel cut one short at 88 % of
        # the buffer, and the stream ended there.)
        line = b"S%07d " + b"r" * 140
        n, batch = 40000, 100
        for version in ("1.1", "1.0"):
            with self.subTest(http=version), tsutil.Daemon() as d:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(5)
                s.connect(("127.0.0.1", d.port))
                s.sendall(b"GET /api/logs/app/events HTTP/%s\r\n"
                          b"Host: x\r\n\r\n" % version.encode())
                r = Reader([s])
                try:
                    self.assertEqual(r.until(b"retry: ", 10), set())
                    for k in range(0, n, batch):
                        d.write("app", b"".join(
                            line % i + b"\n" for i in range(k, k + batch)))
                        time.sleep(0.0005)
                    size = os.path.getsize(d.path("app"))
                    last = b"id: %d:%d\n" % (d.ino("app"), size)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
                    self.assertEqual(r.until(last, 60), set(),
                                     "the slow client did not get it all")
                    head, _, body = bytes(r.bufs[s]).partition(b"\r\n\r\n")
                    if version == "1.1":
                        self.assertIn(b"chunked", head.lower())
                        body = dechunk(body)
                        self.assertIsNotNone(body, "chunk framing broken")
                    got = [l[6:] for l in body.split(b"\n")
                           if l.startswith(b"data: ")]
                    self.assertEqual(got, [line % i for i in range(n)])
                finally:
                    r.close()

    def test_stream_behind_a_copytruncate_loses_nothing(self):
        # A stream held back by its client is still in the old content when
        # the log is copied and truncated in place: it must finish the old
        # lines from the copy, then go on in the log from 0.
        line = b"C%07d " + b"q" * 90
        n = 100000  # ~10 MiB: more than the socket buffers hold
        with tsutil.Daemon() as d:
            slow = open_raw(d.port, "/api/logs/app/events", rcvbuf=4096)
            time.sleep(0.2)
            path = d.path("app")
            data = b"".join(line % i + b"\n" for i in range(n))
            d.write("app", data)
            time.sleep(0.5)  # the daemon sends what the sockets take
            with open(path, "rb") as src, open(path + ".1", "wb") as dst:
                dst.write(src.read())
            os.truncate(path, 0)
            d.write("app", "after the truncation\n")
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            r = Reader([slow])
            try:
                self.assertEqual(r.until(b"data: after the truncation\n", 60),
                                 set(), "the stream never came to the end")
                got = body_datas(r.bufs[slow])
            finally:
                r.close()
            self.assertEqual(got[:n], [line % i for i in range(n)])
            self.assertEqual(got[n:], [b'{"reason":"rotated"}',
                                       b"after the truncation"])

    def test_huge_partial_line_is_not_read_back(self):
        # A last line with no newline in its last 64 MiB (here a sparse
        # file of 65 MiB of NULs): a new stream does not read the file
        # back to its start; it begins at the next line.
        with tsutil.Daemon() as d:
            with open(d.path("app"), "r+b") as f:
                f.truncate(65 << 20)
            c = d.stream("app")
            d.write("app", "rest of it\nnext line\n")
            m = c.next_message(timeout=10)
            self.assertEqual(m["data"], "next line")
            self.assertEqual(m["id"], "%d:%d" % (d.ino("app"),
                                                 (65 << 20) + 21))

    def test_full_client_list_is_a_503_and_frees_up(self):
        with tsutil.Daemon(server={"max_clients": 3}) as d:
            streams = [d.stream("app") for _ in range(3)]
            r = d.get("/api/logs/app/events")
            tsutil.check_one_line_error(self, r, 503, "max_clients")
            self.assertTrue(r.headers.get("retry-after"))
            # other endpoints do not count
            self.assertEqual(d.get("/api/logs").status, 200)
            self.assertEqual(d.get("/healthz").status, 200)
            # a stream that goes away frees its place once the daemon
            # notices: at its next event (a suspended stream sees a
            # disconnect only when it is woken)
            streams[0].close()
            ok = False
            for i in range(50):
                d.write("app", "wake %d\n" % i)
                time.sleep(0.05)
                c = tsutil.SSEClient(d.port, "/api/logs/app/events")
                status = c.status
                c.close()
                if status == 200:
                    ok = True
                    break
                self.assertEqual(status, 503)
            self.assertTrue(ok, "the place of a closed stream never came free")
            for c in streams[1:]:
                c.close()

    def test_replay_is_unchunked_and_loses_nothing(self):
        # A stream that starts more than 1 MiB behind the end is sent from
        # a big buffer of its own, without chunked framing (the connection
        # closes when it ends); it gets every line once, then live ones.
        line = b"R%07d " + b"r" * 90
        n = 12000  # ~1.2 MB
        data = b"".join(line % i + b"\n" for i in range(n))
        with tsutil.Daemon() as d:
            d.write("app", data)
            ino = d.ino("app")
            c = d.stream("app", lastEventId="%d:0" % ino)
            self.assertEqual(c.status, 200)
            self.assertNotIn("chunked",
                             c.headers.get("transfer-encoding", "").lower())
            self.assertEqual(c.headers.get("connection", "").lower(), "close")
            self.assertEqual(metric(d, "tailsse_replay_clients"), 1)
            got = c.messages(n, timeout=30)
            want_ids = []
            off = 0
            for i in range(n):
                off += len(line % i) + 1
                want_ids.append("%d:%d" % (ino, off))
            self.assertEqual([m["data"] for m in got],
                             [(line % i).decode() for i in range(n)])
            self.assertEqual([m["id"] for m in got], want_ids)
            d.write("app", "live after the replay\n")
            m = c.next_message(timeout=10)
            self.assertEqual(m["data"], "live after the replay")
            # a stream near the end is chunked as usual
            near = d.stream("app", lastEventId="%d:%d" % (ino, off))
            self.assertIn("chunked",
                          near.headers.get("transfer-encoding", "").lower())
            self.assertEqual(metric(d, "tailsse_replay_clients"), 1)
            c.close()
            near.close()

    def test_replay_places_are_limited_and_given_back(self):
        # At most 64 replays hold a big buffer; the next goes chunked, and
        # a place comes free when a replay's client goes away.
        raise_fd_limit(2048)
        data = b"".join(b"P%07d %s\n" % (i, b"p" * 90)
                        for i in range(12000))
        with tsutil.Daemon() as d:
            d.write("app", data)
            path = "/api/logs/app/events?lastEventId=%d:0" % d.ino("app")
            holders = [open_raw(d.port, path, rcvbuf=4096)
                       for _ in range(64)]
            try:
                self.assertTrue(tsutil.wait_for(
                    lambda: metric(d, "tailsse_replay_clients") == 64, 10),
                    "64 replays did not all start")
                extra = tsutil.SSEClient(d.port, path)
                self.assertIn("chunked", extra.headers.get(
                    "transfer-encoding", "").lower())
                self.assertEqual(metric(d, "tailsse_replay_clients"), 64)
                # it still gets the file from the start
                self.assertEqual(extra.next_message(timeout=10)["data"],
                                 "P0000000 " + "p" * 90)
                extra.close()
                holders.pop().close()
                self.assertTrue(tsutil.wait_for(
                    lambda: metric(d, "tailsse_replay_clients") == 63, 10),
                    "a closed replay kept its place")
                again = tsutil.SSEClient(d.port, path)
                self.assertNotIn("chunked", again.headers.get(
                    "transfer-encoding", "").lower())
                again.close()
            finally:
                for s in holders:
                    s.close()

    def test_sigterm_with_500_streams(self):
        raise_fd_limit(2048)
        d = tsutil.Daemon()
        d.start()
        socks = []
        try:
            socks = [open_raw(d.port, "/api/logs/app/events")
                     for _ in range(500)]
            r = Reader(socks)
            self.assertEqual(r.until(b"retry: ", 20), set())
            rc = d.stop(timeout=5.0)
            self.assertEqual(rc, 0)
            self.assertLess(d.stop_seconds, 2.0,
                            "stopping took %.2f s" % d.stop_seconds)
            # every stream was ended (HTTP/1.0: the connection closes)
            ended = 0
            for s in socks:
                s.setblocking(True)
                s.settimeout(2)
                try:
                    while s.recv(65536):
                        pass
                    ended += 1
                except OSError:
                    ended += 1
            self.assertEqual(ended, 500)
            d.check_exit()
        finally:
            for s in socks:
                s.close()
            d._kill()
            d._tmp.cleanup()


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
