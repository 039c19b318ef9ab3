#!/usr/bin/env python3
"""SIGHUP reloads the config.  Logs added are followed and served; logs
removed (or whose path changed) end their streams with a last `reset`
`deleted`; logs that stay keep every stream untouched.  Live [server] keys
change at once; keys that need a restart are said and kept; a bad config
is refused with one line and the running one stays.  TLS certificates are
read again.  Thousands of reloads while streams run lose and leak
nothing.  TAILSSE_RELOADS sets the soak's count (default 1000)."""

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, Writer, number_of  # noqa: E402

RELOADS = int(os.environ.get("TAILSSE_RELOADS", "1000"))


def is_reset(ev, reason):
    return ev["event"] == "reset" and ('"reason":"%s"' % reason) in ev["data"]


class Logs(unittest.TestCase):
    def test_added_removed_and_kept(self):
        with Daemon(logs=["keep", "gone"], use_config=True,
                    content={"keep": b"k1\n", "gone": b"g1\n"}) as d:
            keep = d.stream("keep", tail=1)
            gone = d.stream("gone", tail=1)
            self.assertEqual(keep.next_message()["data"], "k1")
            self.assertEqual(gone.next_message()["data"], "g1")
            d.write("gone", "g2\n")
            self.assertEqual(gone.next_message()["data"], "g2")
            d.write("gone", "g3\n")   # written before the reload: sent
            d.logs = ["keep", "new"]
            d.write("new", "n1\n")
            line = d.reload()
            self.assertIn("2 logs; added: new; removed: gone", line)
            evs = gone.read_until(lambda e: e["event"] == "reset")
            self.assertEqual([e["data"] for e in evs[:-1]], ["g3"])
            self.assertTrue(is_reset(evs[-1], "deleted"), evs[-1])
            # its id is where the client is: nothing lost if it comes back
            self.assertEqual(evs[-1]["id"], "%d:9" % d.ino("gone"))
            self.assertTrue(gone.wait_end(), "the removed log's stream "
                            "did not end")
            # the kept stream noticed nothing
            d.write("keep", "k2\n")
            self.assertEqual(keep.next_message()["data"], "k2")
            r = d.get("/api/logs/gone/events")
            self.assertEqual(r.status, 404)
            names = [x["name"] for x in __import__("json").loads(
                d.get("/api/logs").body)]
            self.assertEqual(names, ["keep", "new"])
            new = d.stream("new", tail=5)
            self.assertEqual(new.next_message()["data"], "n1")
            d.write("new", "n2\n")
            self.assertEqual(new.next_message()["data"], "n2")
            self.assertEqual(d.metric('tailsse_log_streams{log="new"}'), 1)
            self.assertEqual(d.metric('tailsse_reloads_total{result="ok"}'),
                             1)

    def test_merged_stream_of_a_removed_log_ends(self):
        with Daemon(logs=["a", "b"], use_config=True) as d:
            c = d.get_stream = tsutil.SSEClient(
                d.port, "/api/events?log=a&log=b")
            self.assertEqual(c.status, 200)
            d.write("a", "a1\n")
            self.assertIn('"line":"a1"', c.next_message()["data"])
            d.logs = ["a"]
            d.reload()
            ev = c.next_message()
            self.assertTrue(is_reset(ev, "deleted"), ev)
            self.assertIn('"log":"b"', ev["data"])
            self.assertTrue(c.wait_end())
            c.close()

    def test_path_changed_is_removed_and_added(self):
        with Daemon(logs=["app"], use_config=True,
                    content={"app": b"old\n"}) as d:
            c = d.stream("app", tail=1)
            self.assertEqual(c.next_message()["data"], "old")
            other = os.path.join(d.dir, "other.log")
            tsutil.write_file(other, b"other1\n")
            d.paths["app"] = other
            self.assertIn("added: app; removed: app", d.reload())
            self.assertTrue(is_reset(c.next_message(), "deleted"))
            self.assertTrue(c.wait_end())
            c2 = d.stream("app", tail=1)
            self.assertEqual(c2.next_message()["data"], "other1")

    def test_readded_log_resumes_where_the_client_was(self):
        with Daemon(logs=["a", "b"], use_config=True) as d:
            c = d.stream("b")
            d.write("b", "b1\n")
            self.assertEqual(c.next_message()["data"], "b1")
            d.logs = ["a"]
            d.reload()
            last = c.read_until(lambda e: e["event"] == "reset")[-1]
            d.write("b", "b2\n")
            d.logs = ["a", "b"]
            d.reload()
            c2 = d.stream("b", headers={"Last-Event-ID": last["id"]})
            self.assertEqual(c2.next_message()["data"], "b2")


class Settings(unittest.TestCase):
    def test_bad_config_is_refused_and_the_old_one_runs(self):
        with Daemon(logs=["app"], server={"heartbeat": 15}) as d:
            d.write("app", "x\n")
            text = d.config_text() + "nonsense here\n"
            line = d.reload(text)
            self.assertRegex(line, r"^tailsse: reload refused: .*tailsse"
                             r"\.conf:\d+: .*; the running config stays$")
            self.assertEqual(d.get("/api/logs").status, 200)
            c = d.stream("app", tail=1)
            self.assertEqual(c.next_message()["data"], "x")
            self.assertEqual(
                d.metric('tailsse_reloads_total{result="failed"}'), 1)
            # a missing token_file, a bad trusted proxy: refused too
            d.server["token_file"] = os.path.join(d.dir, "nope")
            self.assertIn("token_file", d.reload())
            del d.server["token_file"]
            d.server["trusted_proxies"] = "10.0.0.1 nope"
            self.assertIn("'nope' is not an IP address", d.reload())
            self.assertEqual(d.get("/api/logs").status, 200)

    def test_live_keys_change_and_restart_keys_are_said(self):
        with Daemon(logs=["app"], server={"heartbeat": 30}) as d:
            c = d.stream("app")
            self.assertEqual(d.get("/api/logs").status, 200)
            d.server.update({"token": "t0k3n", "heartbeat": 1,
                             "cors_origin": "https://dash.example",
                             "max_line": 1000, "conn_memory": 8192,
                             "www": "/nonexistent"})
            line = d.reload()
            self.assertTrue(line.startswith("tailsse: reloaded"), line)
            err = d.stderr()
            for key in ("www", "max_line", "conn_memory"):
                self.assertRegex(err, r"reload: %s changed.*takes effect "
                                 r"at the next restart" % key)
            self.assertNotIn("t0k3n", err)
            r = d.get("/api/logs")
            self.assertEqual(r.status, 401)
            r = d.get("/api/logs", headers={"Authorization": "Bearer t0k3n",
                                            "Origin": "https://dash.example"})
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("access-control-allow-origin"),
                             "https://dash.example")
            # the stream opened before goes on, now with 1 s heartbeats
            t0 = time.monotonic()
            ev = c.read_until(lambda e: "ping" in e["comments"], timeout=4)
            self.assertLess(time.monotonic() - t0, 2.5, ev)


def make_cert(dirname, name):
    cert = os.path.join(dirname, name + ".pem")
    key = os.path.join(dirname, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


def peer_cert(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


@unittest.skipUnless(shutil.which("openssl"), "openssl is not installed")
class Certificates(unittest.TestCase):
    def test_renewed_certificate_is_used_and_a_bad_one_refused(self):
        tmp = tempfile.TemporaryDirectory(prefix="tailsse-cert-")
        self.addCleanup(tmp.cleanup)
        a_cert, a_key = make_cert(tmp.name, "a")
        b_cert, b_key = make_cert(tmp.name, "b")
        cert = os.path.join(tmp.name, "cert.pem")
        key = os.path.join(tmp.name, "key.pem")
        shutil.copy(a_cert, cert)
        shutil.copy(a_key, key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with Daemon(logs=["app"], tls=ctx,
                    server={"tls_cert": cert, "tls_key": key}) as d:
            der_a = open(a_cert).read()
            first = peer_cert(d.port)
            self.assertEqual(ssl.DER_cert_to_PEM_cert(first).strip(),
                             der_a.strip())
            c = d.stream("app")
            shutil.copy(b_cert, cert)
            shutil.copy(b_key, key)
            self.assertTrue(d.reload().startswith("tailsse: reloaded"))
            self.assertIn("new TLS certificate", d.stderr())
            second = peer_cert(d.port)
            self.assertEqual(ssl.DER_cert_to_PEM_cert(second).strip(),
                             open(b_cert).read().strip())
            d.write("app", "still\n")  # the stream made with a's goes on
            self.assertEqual(c.next_message()["data"], "still")
            # a key that is not the certificate's: refused, b stays
            shutil.copy(a_key, key)
            line = d.reload()
            self.assertIn("reload refused", line)
            self.assertIn("not the key", line)
            self.assertEqual(peer_cert(d.port), second)


class Soak(unittest.TestCase):
    def test_thousands_of_reloads_while_streams_run(self):
        """A log goes in and out of the config at every reload, while a
        writer feeds the log that stays: its streams (one plain, one
        merged with the coming-and-going log) get every line once, in
        order; the daemon's descriptors do not grow."""
        with Daemon(logs=["keep", "flap"], use_config=True) as d:
            plain = d.stream("keep")
            merged = tsutil.SSEClient(d.port, "/api/events?log=keep")
            self.assertEqual(merged.status, 200)
            fds0 = None
            with Writer(d.path("keep"), interval=0.001) as w:
                for i in range(RELOADS):
                    d.logs = ["keep"] if i % 2 == 0 else ["keep", "flap"]
                    if i % 3 == 0:
                        d.server["heartbeat"] = 10 + i % 5
                    line = d.reload()
                    self.assertTrue(line.startswith("tailsse: reloaded"),
                                    line)
                    if i % 50 == 0:
                        # a short-lived stream of the flapping log
                        if "flap" in d.logs:
                            f = d.stream("flap", tail=1)
                            f.close()
                    if i == 20:
                        fds0 = d.fds()
            n = w.written
            got = [number_of(e["data"]) for e in plain.messages(n, 20)]
            self.assertEqual(got, list(range(n)))
            mg = merged.messages(n, 20)
            import json
            got = [number_of(json.loads(e["data"])["line"]) for e in mg]
            self.assertEqual(got, list(range(n)))
            merged.close()
            self.assertLessEqual(d.fds(), fds0 + 2)
            self.assertEqual(d.metric('tailsse_reloads_total{result="ok"}'),
                             RELOADS)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
