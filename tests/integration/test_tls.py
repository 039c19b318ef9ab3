#!/usr/bin/env python3
"""HTTPS: with tls_cert and tls_key the daemon speaks TLS only (1.2 and
1.3), streams, resumes and follows rotation as over HTTP; curl and
Python's ssl talk to it; a key that is not the certificate's is one line
at start and exit 1.  Certificates are made here with openssl."""

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon, run_cli  # noqa: E402


def make_cert(dirname, name, cn="localhost"):
    cert = os.path.join(dirname, name + ".pem")
    key = os.path.join(dirname, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=" + cn, "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


@unittest.skipUnless(shutil.which("openssl"), "openssl is not installed")
class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="tailsse-tls-")
        cls.cert, cls.key = make_cert(cls.tmp.name, "a")
        cls.ctx = ssl.create_default_context(cafile=cls.cert)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def daemon(self, **kw):
        return Daemon(server={"tls_cert": self.cert, "tls_key": self.key},
                      tls=self.ctx, **kw)

    def test_stream_resume_and_rotation_over_tls(self):
        with self.daemon(content={"app": b"one\ntwo\n"}) as d:
            ino = d.ino("app")
            c = d.stream("app", tail=1)
            self.assertEqual(c.next_message()["data"], "two")
            d.write("app", "three\n")
            ev = c.next_message()
            self.assertEqual(ev["data"], "three")
            c.close()
            d.write("app", "four\n")
            c = d.stream("app", headers={"Last-Event-ID": ev["id"]})
            self.assertEqual(c.next_message()["data"], "four")
            os.rename(d.path("app"), d.path("app") + ".1")
            tsutil.write_file(d.path("app"), b"five\n")
            evs = c.read_until(lambda e: e["event"] == "reset", timeout=10)
            self.assertEqual(tsutil.reset_reason(evs[-1]), "rotated")
            self.assertEqual(c.next_message()["data"], "five")
            self.assertNotEqual(d.ino("app"), ino)
            self.assertIn("HTTPS", d.stderr())

    def test_curl(self):
        if not shutil.which("curl"):
            self.skipTest("curl is not installed")
        with self.daemon(content={"app": b"x\n"}) as d:
            cp = subprocess.run(
                ["curl", "-sS", "--cacert", self.cert,
                 "https://127.0.0.1:%d/api/logs" % d.port],
                capture_output=True, text=True, timeout=20)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertIn('"name":"app"', cp.stdout)
            cp = subprocess.run(
                ["curl", "-sS", "-N", "--max-time", "2", "--cacert",
                 self.cert, "https://127.0.0.1:%d/api/logs/app/events"
                 "?tail=1" % d.port], capture_output=True, text=True,
                timeout=20)
            self.assertIn("data: x", cp.stdout)

    def test_old_tls_and_plain_http_refused(self):
        with self.daemon(content={"app": b"x\n"}) as d:
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.load_verify_locations(self.cert)
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            try:
                old.minimum_version = ssl.TLSVersion.TLSv1
            except ValueError:
                pass
            with self.assertRaises((ssl.SSLError, OSError)):
                tsutil.TLS_PORTS[d.port] = old
                try:
                    tsutil.request(d.port, "GET", "/healthz", timeout=5)
                finally:
                    tsutil.TLS_PORTS[d.port] = self.ctx
            del tsutil.TLS_PORTS[d.port]
            try:
                with self.assertRaises((tsutil.HTTPError, OSError,
                                        TimeoutError)):
                    tsutil.request(d.port, "GET", "/healthz", timeout=3)
            finally:
                tsutil.TLS_PORTS[d.port] = self.ctx
            self.assertEqual(d.get("/healthz").status, 200)

    def test_gnutls_client(self):
        # GnuTLS's own client (bench/ts-load --tls), beside Python's and
        # curl's OpenSSL: two streams get their lines over TLS 1.3
        ts_load = os.environ.get("TAILSSE_TS_LOAD", "")
        if not os.access(ts_load, os.X_OK):
            self.skipTest("bench/ts-load is not built")
        with self.daemon() as d:
            cp = subprocess.run(
                [ts_load, "-p", str(d.port), "--tls", "--cafile", self.cert,
                 "-n", "2", "-u", "/api/logs/app/events", "-d", "0.5",
                 "-w", "0"], capture_output=True, text=True, timeout=30)
            if "--tls" in cp.stderr and "without" in cp.stderr:
                self.skipTest("ts-load was built without GnuTLS")
            self.assertIn("2/2 streams up", cp.stderr, cp.stderr)
            self.assertIn("TLS1.3", cp.stderr, cp.stderr)

    def test_key_of_another_certificate(self):
        _cert2, key2 = make_cert(self.tmp.name, "b", cn="other")
        conf = os.path.join(self.tmp.name, "bad.conf")
        log = os.path.join(self.tmp.name, "app.log")
        tsutil.write_file(log, b"")
        tsutil.write_file(conf, ("[server]\ntls_cert = %s\ntls_key = %s\n"
                                 "[log app]\npath = %s\n"
                                 % (self.cert, key2, log)).encode())
        cp = run_cli(["-c", conf, "-l", "127.0.0.1:%d" % tsutil.free_port()],
                     timeout=15)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        lines = [x for x in cp.stderr.splitlines()
                 if not x.startswith("tailsse: warning")]
        self.assertEqual(len(lines), 1, cp.stderr)
        self.assertIn("tls_key", lines[0])


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
