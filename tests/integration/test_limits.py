#!/usr/bin/env python3
"""Limits and what the daemon says about them.  header_timeout closes a
connection that sends no complete request in time (slowloris) while open
streams go on; max_streams_per_ip caps the streams of one address (429,
loopback and trusted_proxies exempt); each limit is one line and a metric.
A log that becomes unreadable or disappears is said once per change of
state, and once when it is back, never once per retry.  /metrics has the
operations metrics in Prometheus conventions."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon  # noqa: E402


def outside_address():
    """This machine's address on its way out (not loopback), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))   # no packet is sent
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


def sse_request(addr, port, path):
    """A stream request from a socket connected to addr; the status."""
    s = socket.create_connection((addr, port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, int(head.split(b" ")[1]) if head else 0


class HeaderTimeout(unittest.TestCase):
    def test_slow_headers_are_cut_and_streams_stay(self):
        with Daemon(server={"header_timeout": 1, "heartbeat": 60},
                    content={"app": b"a\n"}) as d:
            c = d.stream("app", tail=1)
            self.assertEqual(c.next_message()["data"], "a")
            slow = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            slow.sendall(b"GET /api/logs HTTP/1.1\r\nHost: x\r\n")
            idle = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            t0 = time.monotonic()
            self.assertEqual(slow.recv(100), b"")   # closed by the daemon
            self.assertEqual(idle.recv(100), b"")
            took = time.monotonic() - t0
            self.assertGreater(took, 0.5)
            self.assertLess(took, 3.5)
            # the stream, quiet all along (suspended), is still served
            d.write("app", "b\n")
            self.assertEqual(c.next_message()["data"], "b")
            self.assertGreaterEqual(d.metric("tailsse_header_timeouts_total"),
                                    2)
            err = d.stderr()
            self.assertEqual(err.count("within header_timeout"), 1, err)

    def test_a_slow_but_complete_request_is_served(self):
        with Daemon(server={"header_timeout": 2}) as d:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n",
                         b"\r\n"):
                s.sendall(part)
                time.sleep(0.3)
            self.assertIn(b" 200 ", s.recv(200))


class MaxClients(unittest.TestCase):
    def test_refusals_are_one_line_and_a_metric(self):
        with Daemon(server={"max_clients": 1}) as d:
            a = d.stream("app")
            for _ in range(5):
                r = d.get("/api/logs/app/events")
                tsutil.check_one_line_error(self, r, 503, "max_clients")
                self.assertEqual(r.headers.get("retry-after"), "5")
            self.assertEqual(
                d.metric('tailsse_refused_total{reason="max_clients"}'), 5)
            # said once on stderr, not once per refusal
            self.assertEqual(d.stderr().count("max_clients streams are "
                                              "open"), 1, d.stderr())
            a.close()


class PerIp(unittest.TestCase):
    def test_loopback_is_exempt(self):
        with Daemon(server={"max_streams_per_ip": 1}) as d:
            a = d.stream("app")
            b = d.stream("app")
            self.assertEqual((a.status, b.status), (200, 200))

    def test_cap_from_one_address_and_trusted_proxy(self):
        addr = outside_address()
        if not addr:
            self.skipTest("no address but loopback on this machine")
        with Daemon(server={"max_streams_per_ip": 2}, listen_all=True) as d:
            s1, st1 = sse_request(addr, d.port, "/api/logs/app/events")
            s2, st2 = sse_request(addr, d.port, "/api/events?log=app")
            s3, st3 = sse_request(addr, d.port, "/api/logs/app/events")
            self.assertEqual((st1, st2, st3), (200, 200, 429))
            s3.close()
            self.assertEqual(d.metric('tailsse_refused_total{reason="per_ip"}'),
                             1)
            self.assertIn("max_streams_per_ip streams open (429)",
                          d.stderr())
            # one leaves (noticed at once): another may come
            s1.close()
            deadline = time.monotonic() + 5
            st4 = 429
            while st4 == 429 and time.monotonic() < deadline:
                s4, st4 = sse_request(addr, d.port, "/api/logs/app/events")
                if st4 == 429:
                    s4.close()
                    time.sleep(0.05)
            self.assertEqual(st4, 200)
            # non-stream requests are not capped
            r = socket.create_connection((addr, d.port), timeout=5)
            r.sendall(b"GET /api/logs HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b" 200 ", r.recv(100))
            for s in (s2, s4, r):
                s.close()
            # a trusted proxy carries many clients' streams
            d.server["trusted_proxies"] = "10.1.2.3 " + addr
            self.assertIn("reloaded", d.reload())
            socks = [sse_request(addr, d.port, "/api/logs/app/events")
                     for _ in range(4)]
            self.assertEqual([st for _, st in socks], [200] * 4)
            for s, _ in socks:
                s.close()


class Diagnostics(unittest.TestCase):
    def test_unreadable_and_missing_said_once_each(self):
        if os.geteuid() == 0:
            unreadable = None   # root reads anything: only the missing case
        else:
            unreadable = True
        with Daemon(content={"app": b"a\n"}) as d:
            c = d.stream("app")
            os.unlink(d.path("app"))
            deadline = time.monotonic() + 5
            while "does not exist any more" not in d.stderr() and \
                    time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(2.2)   # two retry ticks: nothing more is said
            tsutil.write_file(d.path("app"), b"back\n")
            ev = c.read_until(lambda e: e["data"] == "back")
            self.assertTrue(ev)
            deadline = time.monotonic() + 5
            while "exists now" not in d.stderr() and \
                    time.monotonic() < deadline:
                time.sleep(0.02)
            err = d.stderr()
            self.assertEqual(err.count("does not exist any more"), 1, err)
            self.assertEqual(err.count("exists now: followed"), 1, err)
            if unreadable:
                os.chmod(d.path("app"), 0)
                os.rename(d.path("app"), d.path("app") + ".1")
                tsutil.write_file(d.path("app"), b"")
                os.chmod(d.path("app"), 0)
                time.sleep(2.5)
                self.assertEqual(d.stderr().count("cannot be opened"), 1)


class Metrics(unittest.TestCase):
    def test_operations_metrics(self):
        with Daemon(logs=["a", "b"], server={"token": "tk"}) as d:
            h = {"Authorization": "Bearer tk"}
            c = tsutil.SSEClient(d.port, "/api/events?log=a&log=b",
                                 headers=h)
            self.assertEqual(c.status, 200)
            self.assertEqual(d.get("/api/logs").status, 401)
            text = d.get("/metrics", headers=h).body.decode()
            for name, kind in [("tailsse_clients", "gauge"),
                               ("tailsse_log_streams", "gauge"),
                               ("tailsse_refused_total", "counter"),
                               ("tailsse_filter_limit_total", "counter"),
                               ("tailsse_reloads_total", "counter"),
                               ("tailsse_watch_errors_total", "counter"),
                               ("tailsse_inotify_overflows_total", "counter"),
                               ("tailsse_header_timeouts_total", "counter"),
                               ("process_start_time_seconds", "gauge"),
                               ("tailsse_build_info", "gauge")]:
                self.assertIn("# TYPE %s %s\n" % (name, kind), text)
            self.assertEqual(d.metric('tailsse_log_streams{log="a"}', h), 1)
            self.assertEqual(d.metric('tailsse_log_streams{log="b"}', h), 1)
            self.assertEqual(d.metric('tailsse_refused_total{reason="auth"}',
                                      h), 1)
            start = d.metric("process_start_time_seconds", h)
            self.assertLess(abs(time.time() - start), 60)
            self.assertRegex(text, r'tailsse_build_info\{version="[^"]+",'
                             r'tls="(yes|no)"\} 1\n')
            # every sample's family has a TYPE line, once
            types = [ln.split()[2] for ln in text.splitlines()
                     if ln.startswith("# TYPE ")]
            self.assertEqual(len(types), len(set(types)))
            c.close()

    def test_filter_limit_counted(self):
        with Daemon() as d:
            c = d.stream("app", grep="(a%2B)%2B$")   # (a+)+$
            d.write("app", "a" * 65536 + "b\n")
            ev = c.read_until(lambda e: e["event"] == "filter-limit")
            self.assertTrue(ev)
            self.assertEqual(d.metric("tailsse_filter_limit_total"), 1)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
