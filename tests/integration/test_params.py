#!/usr/bin/env python3
"""Strict parameters of /api/logs/NAME/events.

The contract ("Where a stream starts"): a malformed id or tail is a 400,
never a silent restart; so is a single-valued parameter (tail, lastEventId,
icase, format, token) given twice (even with the same value), holding a NUL
(%00), or empty; a bare `icase` means icase=1.  A 400 is text/plain, one
line naming the parameter.  Unknown parameters are ignored (a cache-buster
such as `_=123`).

The Last-Event-ID header is single-valued too: given twice it is a 400;
spaces around a valid id are not part of it (HTTP strips them, at both
ends).  A NUL byte in it: see test_nul_in_last_event_id_header.  Every parameter given is checked, even one that loses to another:
a bad header with a good ?lastEventId, or a good header with a bad
?lastEventId, is a 400.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402
from tsutil import Daemon  # noqa: E402

LINES = ["line%02d" % i for i in range(1, 11)]
CONTENT = "".join(s + "\n" for s in LINES).encode()
PATH = "/api/logs/app/events"


def ask(d, query, headers=None):
    """GET PATH + query.  Returns (status, SSEClient) for a 200 (the stream
    open, its body not read), else (status, Response with the whole body).
    None for the second when the daemon closed without an answer."""
    try:
        c = tsutil.SSEClient(d.port, PATH + query, headers=headers)
    except tsutil.HTTPError:
        return None, None
    d._clients.append(c)
    if c.status == 200:
        return 200, c
    c.wait_end()
    c.close()
    return c.status, tsutil.Response(c.status, c.reason, c.headers,
                                     bytes(c.raw))


class Params(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(content={"app": CONTENT}).start()
        cls.ino = cls.d.ino("app")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def rid(self, n):
        """The id of line n (1-based): resuming there sends line n+1."""
        return "%d:%d" % (self.ino, 7 * n)

    def check(self, query, headers, want, words=(), first=None):
        """want 400: a one-line text/plain error naming every word (words
        None: any 400, e.g. libmicrohttpd's own).  want 200: a stream whose
        first events are the lines `first`."""
        status, r = ask(self.d, query, headers)
        if want == 400:
            self.assertIsNotNone(status, "the daemon closed the connection "
                                 "without an answer")
            if status == 200:
                r.close()
                self.fail("%s %r: 200 (a stream), expected a 400"
                          % (query, headers))
            if words is None:
                self.assertEqual(status, 400, r)
            else:
                tsutil.check_one_line_error(self, r, 400, *words)
            return
        self.assertEqual(status, 200, r)
        self.assertTrue(r.headers.get("content-type", "")
                        .startswith("text/event-stream"), r.headers)
        if first:
            got = [e["data"] for e in r.messages(len(first))]
            self.assertEqual(got, first)
        r.close()

    def test_query_parameters(self):
        rid = self.rid(2)
        rows = [
            # (query, status, words naming the parameter / first lines)
            ("?tail", 400, ("tail",)),
            ("?tail=", 400, ("tail",)),
            ("?tail=3&tail=-1", 400, ("tail",)),
            ("?tail=-1&tail=3", 400, ("tail",)),
            ("?tail=3&tail=3", 400, ("tail",)),
            ("?tail=5%00", 400, ("tail",)),
            ("?lastEventId", 400, ("lastEventId",)),
            ("?lastEventId=", 400, ("lastEventId",)),
            ("?lastEventId=%s%%00junk" % rid, 400, ("lastEventId",)),
            ("?lastEventId=1:0&lastEventId=1:0", 400, ("lastEventId",)),
            ("?lastEventId=%s&lastEventId=%s" % (rid, self.rid(5)), 400,
             ("lastEventId",)),
            ("?icase=1&icase=1", 400, ("icase",)),
            ("?icase=", 400, ("icase",)),
            ("?icase=2", 400, ("icase",)),
            ("?format=json&format=json", 400, ("format",)),
            ("?format=", 400, ("format",)),
            ("?format=xml", 400, ("format",)),
            ("?token=a&token=b", 400, ("token",)),
            ("?grep=a%00b", 400, ("grep",)),
            # valid ones
            ("?icase&grep=LINE0&tail=2", 200, ["line08", "line09"]),
            ("?icase=1&grep=LINE0&tail=2", 200, ["line08", "line09"]),
            ("?tail=1&_=123", 200, ["line10"]),
            ("?_=123&lastEventId=%s" % rid, 200, ["line03", "line04"]),
            ("?tail=2", 200, ["line09", "line10"]),
        ]
        for query, status, what in rows:
            with self.subTest(query=query):
                if status == 400:
                    self.check(query, None, 400, words=what)
                else:
                    self.check(query, None, 200, first=what)

    def test_last_event_id_header(self):
        rid = self.rid(2)
        H = "Last-Event-ID"
        rows = [
            # (label, query, headers, status, words / first lines)
            ("leading space", "", {H: " " + rid}, 200, ["line03"]),
            ("trailing space", "", {H: rid + " "}, 200, ["line03"]),
            ("spaces and tail", "?tail=1", {H: " %s " % rid}, 200,
             ["line03"]),
            ("twice, same", "", {H: rid, H.lower(): rid}, 400, (H,)),
            ("twice, different", "", {H: rid, H.lower(): self.rid(5)}, 400,
             (H,)),
            ("bad header, good query", "?lastEventId=%s" % rid,
             {H: "bogus"}, 400, (H,)),
            ("good header, bad query", "?lastEventId=bogus", {H: rid}, 400,
             ("lastEventId",)),
            ("good header, empty query", "?lastEventId=", {H: rid}, 400,
             ("lastEventId",)),
            ("good header, query twice",
             "?lastEventId=%s&lastEventId=%s" % (rid, rid), {H: rid}, 400,
             ("lastEventId",)),
            # and the header wins over a good query
            ("good header, good query", "?lastEventId=%s" % self.rid(7),
             {H: rid}, 200, ["line03"]),
        ]
        for label, query, headers, status, what in rows:
            with self.subTest(label):
                if status == 400:
                    self.check(query, headers, 400, words=what)
                else:
                    self.check(query, headers, 200, first=what)


    def test_nul_in_last_event_id_header(self):
        # libmicrohttpd 0.9.75 ends a header value at a NUL byte (it takes
        # the line's strlen), so the daemon sees only the part before it
        # and cannot tell; later libmicrohttpd versions refuse the request
        # with a 400 themselves.  Either way: never a stream from a place
        # the bytes before the NUL do not name, and the server carries on.
        rid = self.rid(2)
        for value in (rid + "\x00junk", "14\x00", rid + "\x00"):
            with self.subTest(value=value):
                status, r = ask(self.d, "", {"Last-Event-ID": value})
                self.assertIn(status, (200, 400), value)
                if status == 200:
                    self.assertEqual(r.next_message()["data"], "line03")
                    r.close()
        self.assertEqual(self.d.get("/healthz").status, 200)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
