#!/usr/bin/env python3
"""Everything but the stream's content: errors (400, 404, 405), /api/logs,
/healthz, /metrics, static files and path traversal, stopping."""

import json
import os
import signal
import socket
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon  # noqa: E402

EVENTS = "/api/logs/app/events"


class Errors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(content={"app": b"one\ntwo\n"}).start()
        cls.ino = cls.d.ino("app")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def check_error(self, r, status, *words):
        return tsutil.check_one_line_error(self, r, status, *words)

    def test_bad_last_event_id_header(self):
        # (spaces around the value are HTTP's optional whitespace: trimmed
        # at both ends, see test_params.py)
        for bad in ["abc", "1:", "-1", "1:2:3", ":5", "1:x", "1 2",
                    "0x10", "99999999999999999999999:1"]:
            with self.subTest(id=bad):
                r = self.d.get(EVENTS, headers={"Last-Event-ID": bad})
                self.check_error(r, 400, "Last-Event-ID")

    def test_bad_last_event_id_query(self):
        for bad in ["abc", "1:", "-1", "1:2:3", ":5", "1:x"]:
            with self.subTest(id=bad):
                r = self.d.get(EVENTS + "?lastEventId="
                               + urllib.parse.quote(bad, safe=""))
                text = self.check_error(r, 400, "lastEventId")
                self.assertNotIn("last-event-id", text.lower())

    def test_bad_tail(self):
        for bad in ["-1", "abc", "", "1x", "1.5"]:
            with self.subTest(tail=bad):
                r = self.d.get(EVENTS + "?tail=" + bad)
                self.check_error(r, 400, "tail")

    def test_bad_tail_even_when_an_id_wins(self):
        # a malformed parameter is never silently ignored
        r = self.d.get(EVENTS + "?tail=abc",
                       headers={"Last-Event-ID": "%d:4" % self.ino})
        self.check_error(r, 400, "tail")

    def test_404(self):
        for path, word in [("/api/logs/nope/events", "nope"),
                           ("/nope.html", None),
                           ("/api/whatever", None),
                           ("/api/logs/app", None),
                           ("/api/logs/app/events/x", None)]:
            with self.subTest(path=path):
                r = self.d.get(path)
                self.check_error(r, 404, *([word] if word else []))

    def test_error_body_is_one_line_whatever_the_url(self):
        # the URL is decoded before it is echoed: %0a must not make two
        for path in ["/a%0ab%0dc", "/api/x%0ay", "/api/logs/a%0Db/events",
                     "/x%0d%0aSet-Cookie:%20a=b"]:
            with self.subTest(path=path):
                r = self.d.get(path)
                self.check_error(r, 404)
                self.assertNotIn("set-cookie", r.headers)

    def test_405(self):
        for method in ["POST", "PUT", "DELETE"]:
            for path in ["/", "/index.html", "/api/logs", EVENTS,
                         "/healthz", "/metrics", "/nope"]:
                with self.subTest(method=method, path=path):
                    body = b"x=1" if method != "DELETE" else None
                    r = self.d.request(method, path, body=body)
                    self.check_error(r, 405, method)


class Endpoints(unittest.TestCase):
    def test_api_logs(self):
        d = Daemon(logs=["app", "later", "other.x_y-z"], missing=["later"],
                   content={"app": b"hello\n", "other.x_y-z": b"ab\ncd\n"})
        with d:
            r = d.get("/api/logs")
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers.get("content-type", "")
                            .startswith("application/json"), r.headers)
            self.assertNotIn(d.dir.encode(), r.body)
            self.assertNotIn(b".log", r.body)
            logs = json.loads(r.body)
            self.assertIsInstance(logs, list)
            by = {x["name"]: x for x in logs}
            self.assertEqual(sorted(by), ["app", "later", "other.x_y-z"])
            for x in logs:
                self.assertLessEqual({"name", "size", "exists"}, set(x))
                self.assertIsInstance(x["size"], int)
            self.assertEqual((by["app"]["size"], by["app"]["exists"]),
                             (6, True))
            self.assertEqual((by["other.x_y-z"]["size"],
                              by["other.x_y-z"]["exists"]), (6, True))
            self.assertIs(by["later"]["exists"], False)

    def test_healthz_and_metrics(self):
        with Daemon() as d:
            r = d.get("/healthz")
            self.assertEqual((r.status, r.body.strip()), (200, b"ok"))
            c = d.stream("app")
            r = d.get("/metrics")
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers.get("content-type", "")
                            .startswith("text/plain"), r.headers)
            self.assertIn("tailsse_clients", r.text)
            self.assertIn("\ntailsse_clients 1\n", r.text)
            c.close()


class Static(unittest.TestCase):
    def test_index(self):
        with Daemon() as d:
            want = tsutil.read_bytes(os.path.join(d.www, "index.html"))
            for path in ["/", "/index.html"]:
                with self.subTest(path=path):
                    r = d.get(path)
                    self.assertEqual(r.status, 200)
                    self.assertTrue(r.headers.get("content-type", "")
                                    .startswith("text/html"), r.headers)
                    self.assertIn("frame-ancestors", r.headers.get(
                        "content-security-policy", ""))
                    self.assertEqual(r.body, want)
            h = d.request("HEAD", "/")
            self.assertEqual(h.status, 200)
            self.assertTrue(h.headers.get("content-type", "")
                            .startswith("text/html"), h.headers)
            self.assertEqual(h.body, b"")
            if "content-length" in h.headers:
                self.assertEqual(int(h.headers["content-length"]),
                                 len(want))

    def test_frame_ancestors_from_config(self):
        with Daemon(server={"frame_ancestors": "'none'"}) as d:
            r = d.get("/")
            self.assertIn("frame-ancestors 'none'",
                          r.headers.get("content-security-policy", ""))

    def test_long_frame_ancestors_whole(self):
        # more than 4 KiB of origins: the header is the whole list (cut,
        # it once named an origin that was not meant)
        origins = " ".join("https://host%03d.example.com" % i
                           for i in range(200))
        with Daemon(server={"frame_ancestors": origins}) as d:
            r = d.get("/")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("content-security-policy"),
                             "frame-ancestors " + origins)

    def test_traversal_refused(self):
        d = Daemon()
        secret = b"TOPSECRET-4f1d2c"
        tsutil.write_file(os.path.join(d.dir, "secret.txt"), secret)
        www = os.path.join(d.dir, "www")
        os.makedirs(os.path.join(www, "sub"))
        tsutil.write_file(os.path.join(www, "index.html"),
                          b"<!doctype html><title>mine</title>\n")
        tsutil.write_file(os.path.join(www, "sub", "a.txt"), b"inside\n")
        os.symlink(os.path.join(d.dir, "secret.txt"),
                   os.path.join(www, "leak.txt"))
        os.symlink("../secret.txt", os.path.join(www, "rel.txt"))
        os.symlink(d.dir, os.path.join(www, "out"))
        os.symlink("/etc/passwd", os.path.join(www, "passwd"))
        d.www = www
        with d:
            r = d.get("/sub/a.txt")  # the www dir is served at all
            self.assertEqual((r.status, r.body), (200, b"inside\n"))
            r = d.get("/")
            self.assertEqual(r.status, 200)
            self.assertIn(b"mine", r.body)
            for path in [
                    "/../secret.txt", "/%2e%2e/secret.txt",
                    "/%2E%2E/secret.txt", "/.%2e/secret.txt",
                    "/%2e%2e%2fsecret.txt", "/..%2fsecret.txt",
                    "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
                    "/../etc/passwd", "/%2e%2e/etc/passwd",
                    "/%2e%2e%2fetc%2fpasswd", "/..%2f..%2fetc/passwd",
                    "/../../../../../../etc/passwd", "//etc/passwd",
                    "/leak.txt", "/rel.txt", "/out/secret.txt", "/out/",
                    "/out", "/passwd"]:
                for method in ["GET", "HEAD"]:
                    with self.subTest(path=path, method=method):
                        r = d.request(method, path)
                        self.assertEqual(r.status, 404, r)
                        self.assertNotIn(secret, r.body)
                        self.assertNotIn(b"root:", r.body)


class ClientErrorsAreCounted(unittest.TestCase):
    """Anyone can make thousands of bad or aborted requests: the daemon
    says the first, then counts them (at most a line a minute) instead of
    writing a line each."""

    def raw(self, port, data, read=True):
        import socket
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(data)
            if read:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    try:
                        if not s.recv(65536):
                            break
                    except OSError:
                        break
        finally:
            s.close()

    def test_flood_of_bad_requests_writes_a_line_or_two(self):
        with Daemon(content={"app": b"one\n"}) as d:
            before = d.stderr()
            for i in range(300):
                if i % 3 == 0:   # libmicrohttpd's own 414
                    self.raw(d.port, b"GET /" + b"a" * 9000 +
                             b" HTTP/1.1\r\nHost: x\r\n\r\n")
                elif i % 3 == 1:  # its 431
                    self.raw(d.port, b"GET / HTTP/1.1\r\nHost: x\r\nX: " +
                             b"b" * 9000 + b"\r\n\r\n")
                else:            # a request cut off half-way
                    self.raw(d.port, b"GET /api/logs HTTP/1.1\r\nHo",
                             read=False)
            m = d.get("/metrics").text
            count = [int(line.split()[-1]) for line in m.splitlines()
                     if line.startswith("tailsse_http_client_errors_total ")]
            self.assertEqual(len(count), 1, m)
            self.assertGreaterEqual(count[0], 200, m)
            self.assertEqual(d.get("/healthz").status, 200)
            said = [line for line in d.stderr()[len(before):].splitlines()
                    if line.startswith("tailsse: http:")]
            self.assertLessEqual(len(said), 2, said)
            for line in said:
                self.assertNotIn("\n", line)


class Http10(unittest.TestCase):
    def test_http10_client_gets_a_burst_unchunked(self):
        # nginx's default proxy_http_version: no chunked encoding, the body
        # ends when the connection closes; every line of a burst arrives
        import socket
        with Daemon(content={"app": b""}) as d:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            try:
                s.sendall(b"GET /api/logs/app/events HTTP/1.0\r\n\r\n")
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(4096)
                    self.assertTrue(chunk)
                    buf += chunk
                head, _, body = buf.partition(b"\r\n\r\n")
                self.assertNotIn(b"chunked", head.lower())
                self.assertIn(b"connection: close", head.lower())
                d.write("app", "".join("line%05d %s\n" % (i, "x" * 90)
                                       for i in range(3000)))
                while body.count(b"\ndata: line") < 3000:
                    chunk = s.recv(1 << 16)
                    self.assertTrue(chunk, "closed early")
                    body += chunk
                nums = [int(x[10:15]) for x in body.split(b"\n")
                        if x.startswith(b"data: line")]
                self.assertEqual(nums, list(range(3000)))
            finally:
                s.close()


class Stopping(unittest.TestCase):
    def stop_with_streams(self, sig):
        with Daemon(content={"app": b"a\nb\n"}) as d:
            clients = [d.stream("app"), d.stream("app", tail=1),
                       d.stream("app", tail=0)]
            for c in clients:
                self.assertEqual(c.next_event()["retry"], 2000)
            self.assertEqual(clients[1].next_message()["data"], "b")
            t0 = time.monotonic()
            d.proc.send_signal(sig)
            for c in clients:
                self.assertTrue(c.wait_end(timeout=2.5),
                                "stream still open after the signal")
            try:
                d.returncode = d.proc.wait(max(0.1, 2.0 - (
                    time.monotonic() - t0)))
            except Exception:
                d.returncode = None
            elapsed = time.monotonic() - t0
            self.assertLess(elapsed, 2.0, "took %.2f s to exit" % elapsed)
            self.assertEqual(d.returncode, 0, d.stderr())

    def test_sigterm_with_open_streams(self):
        self.stop_with_streams(signal.SIGTERM)

    def test_sigint_with_open_streams(self):
        self.stop_with_streams(signal.SIGINT)

    def test_sigterm_with_stream_starts_queued(self):
        # Stream starts wait in the worker's queue, their connections
        # suspended; libmicrohttpd aborts if it is stopped with one
        # suspended.  400 filtered tail= starts of a log whose lines make
        # the pattern backtrack queue up seconds of work: a start still
        # queued when the daemon stops must be skipped (503), not run.
        big = "".join("a" * 40 + "!\n" if i % 5 == 0 else
                      "n=%06d some words of a log line\n" % i
                      for i in range(40000)).encode()
        with Daemon(content={"app": big}) as d:
            socks = []
            try:
                req = ("GET /api/logs/app/events?tail=1000000&grep="
                       "(%3F%3Aa%7Ca)*b HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "\r\n").encode()
                for _ in range(400):
                    s = socket.create_connection(("127.0.0.1", d.port))
                    s.sendall(req)
                    socks.append(s)
                time.sleep(0.3)
                t0 = time.monotonic()
                d.proc.send_signal(signal.SIGTERM)
                try:
                    d.returncode = d.proc.wait(15)
                except Exception:
                    d.returncode = None
                elapsed = time.monotonic() - t0
            finally:
                for s in socks:
                    s.close()
            self.assertEqual(d.returncode, 0, d.stderr())
            self.assertLess(elapsed, 6.0, "took %.2f s to exit" % elapsed)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
