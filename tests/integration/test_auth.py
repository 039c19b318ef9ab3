#!/usr/bin/env python3
"""Auth and CORS.  With `token` set, every /api/ endpoint and /metrics need
it (Authorization: Bearer, ?token=, or the tailsse_token cookie): wrong or
missing is a 401 with one line and WWW-Authenticate: Bearer; /healthz and
the page stay open.  The token never appears in anything the daemon
writes.  `cors_origin` "*" or a list: Access-Control-Allow-Origin on every
answer (streams and errors too), OPTIONS answered as a preflight; without
it OPTIONS is a 405."""

import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon  # noqa: E402

TOKEN = "s3cr3t-T0ken"
PROTECTED = ["/api/logs", "/api/logs/app/events?tail=1",
             "/api/events?log=app&tail=1",
             "/api/logs/app/lines?before=1:0", "/metrics",
             "/api/nope", "/api/logs/zz/events"]


def hdr(r, name):
    return r.headers.get(name.lower())


class Token(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(content={"app": b"one\ntwo\n"},
                       server={"token": TOKEN}).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        err = cls.d.stderr()
        assert TOKEN not in err, err

    def get(self, path, headers=None):
        return self.d.get(path, headers=headers)

    def test_401_without_or_with_a_wrong_token(self):
        for path in PROTECTED:
            for headers in (None, {"Authorization": "Bearer nope"},
                            {"Authorization": "Basic " + TOKEN},
                            {"Cookie": "tailsse_token=" + TOKEN + "x"}):
                with self.subTest(path=path, headers=headers):
                    r = self.get(path, headers)
                    tsutil.check_one_line_error(self, r, 401, "token")
                    self.assertTrue(hdr(r, "WWW-Authenticate")
                                    .startswith("Bearer"))
                    self.assertNotIn(TOKEN, r.text)
        r = self.get("/api/logs?token=" + TOKEN[:-1])
        self.assertEqual(r.status, 401)

    def test_token_in_header_query_or_cookie(self):
        sep = lambda p: "&" if "?" in p else "?"  # noqa: E731
        for path in PROTECTED[:5]:
            for how in ("bearer", "query", "cookie"):
                with self.subTest(path=path, how=how):
                    headers, p = None, path
                    if how == "bearer":
                        headers = {"Authorization": "Bearer " + TOKEN}
                    elif how == "query":
                        p = path + sep(path) + "token=" + \
                            urllib.parse.quote(TOKEN)
                    else:
                        headers = {"Cookie": "a=b; tailsse_token=" +
                                   urllib.parse.quote(TOKEN)}
                    if "/events" in path:
                        c = tsutil.SSEClient(self.d.port, p, headers=headers)
                        self.assertEqual(c.status, 200)
                        self.assertIsNotNone(c.next_message()["data"])
                        c.close()
                    else:
                        r = self.get(p, headers)
                        self.assertIn(r.status, (200,), (p, r.text))

    def test_open_endpoints(self):
        self.assertEqual(self.get("/healthz").status, 200)
        r = self.get("/")
        self.assertIn(r.status, (200, 404))  # the page (www may be absent)
        self.assertNotEqual(r.status, 401)

    def test_token_never_in_what_the_daemon_writes(self):
        # a bad parameter, a bad pattern, a 404, a repeated token: no
        # answer repeats it (a 404 of a path echoes only the path)
        for p in ("/api/logs/app/events?tail=x&token=" + TOKEN,
                  "/api/logs/app/events?grep=(&token=" + TOKEN,
                  "/api/logs/nope/events?token=" + TOKEN,
                  "/api/logs/app/events?token=" + TOKEN + "&token=" + TOKEN):
            r = self.get(p)
            self.assertNotIn(TOKEN, r.text, p)
        self.assertNotIn(TOKEN, self.d.stderr())
        m = self.get("/metrics", {"Authorization": "Bearer " + TOKEN})
        self.assertNotIn(TOKEN, m.text)


class TokenFile(unittest.TestCase):
    def test_token_file(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write(TOKEN + "\n")
        try:
            with Daemon(content={"app": b"a\n"},
                        server={"token_file": f.name}) as d:
                self.assertEqual(d.get("/api/logs").status, 401)
                r = d.get("/api/logs",
                          headers={"Authorization": "Bearer " + TOKEN})
                self.assertEqual(r.status, 200)
        finally:
            os.unlink(f.name)


class CookieDecode(unittest.TestCase):
    def test_percent_then_space_is_not_an_escape(self):
        # "% 6e" is not %6e: the cookie holds those four bytes (the
        # decoder once skipped the space, as sscanf("%1x") does)
        tok = "ab% 6ecd"
        with Daemon(content={"app": b"a\n"}, server={"token": tok}) as d:
            for value, status in (("ab%25%206ecd", 200), ("ab% 6ecd", 200),
                                  ("ab%206ecd", 401)):
                with self.subTest(value=value):
                    r = d.get("/api/logs",
                              headers={"Cookie": "tailsse_token=" + value})
                    self.assertEqual(r.status, status)


class Cors(unittest.TestCase):
    def test_star(self):
        with Daemon(content={"app": b"a\n"},
                    server={"cors_origin": "*"}) as d:
            o = {"Origin": "https://dash.example"}
            for p in ("/api/logs", "/api/nope", "/healthz"):
                r = d.get(p, headers=o)
                self.assertEqual(hdr(r, "Access-Control-Allow-Origin"),
                                 "*", p)
            c = tsutil.SSEClient(d.port, "/api/logs/app/events", headers=o)
            self.assertEqual(c.headers.get("access-control-allow-origin"),
                             "*")
            c.close()
            r = d.request("OPTIONS", "/api/logs/app/events", headers={
                "Origin": "https://dash.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "last-event-id"})
            self.assertEqual(r.status, 204)
            self.assertIn("GET", hdr(r, "Access-Control-Allow-Methods"))
            allowed = hdr(r, "Access-Control-Allow-Headers").lower()
            self.assertIn("authorization", allowed)
            self.assertIn("last-event-id", allowed)
            self.assertTrue(hdr(r, "Access-Control-Max-Age"))

    def test_list_echoes_a_listed_origin_only(self):
        with Daemon(content={"app": b"a\n"},
                    server={"cors_origin": "https://a.example "
                                           "https://b.example",
                            "token": TOKEN}) as d:
            r = d.get("/api/logs", headers={"Origin": "https://b.example"})
            self.assertEqual(r.status, 401)   # errors carry CORS too
            self.assertEqual(hdr(r, "Access-Control-Allow-Origin"),
                             "https://b.example")
            self.assertEqual(hdr(r, "Access-Control-Allow-Credentials"),
                             "true")
            self.assertIn("Origin", hdr(r, "Vary"))
            r = d.get("/api/logs", headers={"Origin": "https://evil.example"})
            self.assertIsNone(hdr(r, "Access-Control-Allow-Origin"))
            # a preflight needs no token
            r = d.request("OPTIONS", "/api/logs",
                          headers={"Origin": "https://a.example"})
            self.assertEqual(r.status, 204)

    def test_no_cors_no_header_and_options_405(self):
        with Daemon(content={"app": b"a\n"}) as d:
            r = d.get("/api/logs", headers={"Origin": "https://a.example"})
            self.assertIsNone(hdr(r, "Access-Control-Allow-Origin"))
            r = d.request("OPTIONS", "/api/logs")
            self.assertEqual(r.status, 405)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
