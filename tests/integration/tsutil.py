"""Helpers for the black-box integration tests of tailsse.

Python 3 standard library only (Debian 12: python3 3.11).

* Daemon: runs $TAILSSE_BIN in its own temp dir on a free loopback port,
  waits for /healthz, and on exit stops it with SIGTERM and fails the test
  when it does not exit 0 or when a sanitizer reported anything.
* SSEClient: a raw-socket Server-Sent Events client (HTTP/1.1, chunked),
  parsing events incrementally; every read has a deadline.
* request / http_get: one plain HTTP request over a raw socket (the path is
  sent exactly as given, never normalised).
* Writer: a thread appending numbered lines to a file at a steady rate.
"""

import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error")


def tailsse_bin():
    b = os.environ.get("TAILSSE_BIN")
    if b:
        return b
    for cand in (os.path.join(TOP, "build-test", "src", "tailsse"),
                 os.path.join(TOP, "src", "tailsse")):
        if os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("set TAILSSE_BIN to the tailsse binary")


def tailsse_www():
    return os.environ.get("TAILSSE_WWW") or os.path.join(TOP, "www")


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def sanitizer_problem(text):
    """The first sanitizer mark found in text, or None."""
    for m in SANITIZER_MARKS:
        if m in text:
            return m
    return None


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def run_cli(args, timeout=10.0, cwd=None):
    """Run tailsse with args; returns CompletedProcess (text).  A process
    that does not exit in time is killed and reported as an error."""
    try:
        cp = subprocess.run([tailsse_bin()] + list(args), cwd=cwd,
                            env=sanitizer_env(), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True,
                            errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("tailsse %r did not exit within %.0f s; "
                             "stderr:\n%s" % (args, timeout, e.stderr))
    bad = sanitizer_problem(cp.stderr)
    if bad:
        raise AssertionError("tailsse %r: %s report:\n%s"
                             % (args, bad, cp.stderr))
    return cp


# ---------------------------------------------------------------- files

def append(path, data):
    """Append data (str or bytes) to path in one write."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        n = os.write(fd, data)
        assert n == len(data)
    finally:
        os.close(fd)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)


def line_positions(data, start=0):
    """For the complete lines of data (bytes), a list of (offset after the
    newline, raw line bytes without the newline)."""
    out = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return out
        out.append((start + nl + 1, data[pos:nl]))
        pos = nl + 1


def expected_text(raw, max_line=None):
    """What the contract says a file line (bytes, no newline) becomes."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    text = raw.decode("utf-8", "replace")
    text = text.replace("\r", "\ufffd").replace("\x00", "\ufffd")
    if max_line is not None and len(text.encode("utf-8")) > max_line:
        cut = ""
        for ch in text:
            if len((cut + ch).encode("utf-8")) > max_line:
                break
            cut += ch
        text = cut + "\u2026"
    return text


# ---------------------------------------------------------------- HTTP

class HTTPError(Exception):
    pass


# Ports that speak TLS, and the client context to use: a Daemon started
# with tls= registers its port, so that every helper below talks TLS to it.
TLS_PORTS = {}


class _Conn:
    """A socket with a receive buffer; every read has a deadline."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        ctx = TLS_PORTS.get(port)
        if ctx is not None:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def recv_some(self, deadline):
        """Read what is available (at least one byte) before the deadline.
        Returns False at EOF; raises TimeoutError past the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("deadline passed")
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if not self.recv_some(deadline):
                raise HTTPError("connection closed in the response head")

    def read_head(self, deadline):
        status_line = self.read_line(deadline)
        m = re.match(rb"HTTP/1\.[01] (\d{3})(?: (.*))?$", status_line)
        if not m:
            raise HTTPError("bad status line %r" % status_line)
        headers = {}
        while True:
            line = self.read_line(deadline)
            if not line:
                break
            k, sep, v = line.partition(b":")
            if not sep:
                raise HTTPError("bad header line %r" % line)
            k = k.decode("latin-1").strip().lower()
            v = v.decode("latin-1").strip()
            headers[k] = headers[k] + ", " + v if k in headers else v
        return int(m.group(1)), (m.group(2) or b"").decode("latin-1"), \
            headers

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _request_bytes(method, target, headers, body, keep_alive):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1"]
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Length", str(len(body)))
    if not keep_alive:
        hdrs.setdefault("Connection", "close")
    for k, v in hdrs.items():
        lines.append("%s: %s" % (k, v))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data + (body or b"")


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers,
                                         self.body[:200])


def request(port, method, target, headers=None, body=None, timeout=5.0):
    """One request on a fresh raw socket; target is sent verbatim.
    Returns a Response with the whole body (chunked decoded)."""
    deadline = time.monotonic() + timeout
    c = _Conn(port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode("utf-8")
        c.send(_request_bytes(method, target, headers, body, False))
        status, reason, hdrs = c.read_head(deadline)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            # no body; anything more the server sends is a protocol error
            # that the caller can see in .body when the server closes.
            try:
                while c.recv_some(min(deadline, time.monotonic() + 0.2)):
                    pass
            except TimeoutError:
                pass
            return Response(status, reason, hdrs, bytes(c.buf))
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            dec = _Dechunker()
            out = bytearray()
            while not dec.done:
                out += dec.feed(c.buf)
                c.buf.clear()
                if dec.done:
                    break
                if not c.recv_some(deadline):
                    raise HTTPError("connection closed in a chunked body")
            return Response(status, reason, hdrs, bytes(out))
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(c.buf) < n:
                if not c.recv_some(deadline):
                    raise HTTPError("connection closed after %d of %d "
                                    "body bytes" % (len(c.buf), n))
            return Response(status, reason, hdrs, bytes(c.buf[:n]))
        while c.recv_some(deadline):
            pass
        return Response(status, reason, hdrs, bytes(c.buf))
    finally:
        c.close()


def http_get(port, path, headers=None, timeout=5.0):
    """GET path; returns (status, headers (lower-case keys), body bytes)."""
    r = request(port, "GET", path, headers=headers, timeout=timeout)
    return r.status, r.headers, r.body


class _Dechunker:
    """Incremental decoder of a chunked body."""

    def __init__(self):
        self.state = "size"
        self.need = 0
        self.pending = bytearray()
        self.done = False

    def feed(self, data):
        self.pending += data
        out = bytearray()
        p = self.pending
        while not self.done:
            if self.state == "size":
                i = p.find(b"\r\n")
                if i < 0:
                    break
                size_s = bytes(p[:i]).split(b";")[0].strip()
                del p[:i + 2]
                try:
                    self.need = int(size_s, 16)
                except ValueError:
                    raise HTTPError("bad chunk size %r" % size_s)
                self.state = "trailer" if self.need == 0 else "data"
            elif self.state == "data":
                if not p:
                    break
                n = min(self.need, len(p))
                out += p[:n]
                del p[:n]
                self.need -= n
                if self.need == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(p) < 2:
                    break
                if p[:2] != b"\r\n":
                    raise HTTPError("chunk not followed by CRLF: %r"
                                    % bytes(p[:10]))
                del p[:2]
                self.state = "size"
            elif self.state == "trailer":
                i = p.find(b"\r\n")
                if i < 0:
                    break
                line = p[:i]
                del p[:i + 2]
                if not line:
                    self.done = True
        return bytes(out)


# ---------------------------------------------------------------- SSE

def new_event():
    return {"id": None, "event": None, "data": None, "retry": None,
            "comments": []}


def is_message(ev):
    """An event carrying data or a type (not a bare retry or comment)."""
    return ev["data"] is not None or ev["event"] is not None


class SSEClient:
    """GET path and parse the response as an event stream.

    After construction, .status, .reason and .headers are set (the request
    line and the head have been exchanged).  Events are dicts with id,
    event, data, retry (int) and comments (list of str); a block made only
    of a retry field or of comments is an event too (see is_message)."""

    def __init__(self, port, path, headers=None, timeout=5.0):
        self.path = path
        deadline = time.monotonic() + timeout
        self.conn = _Conn(port, timeout=timeout)
        self.conn.send(_request_bytes("GET", path, dict(headers or {}),
                                      None, True))
        self.status, self.reason, self.headers = \
            self.conn.read_head(deadline)
        te = self.headers.get("transfer-encoding", "").lower()
        self.chunked = "chunked" in te
        self._dechunk = _Dechunker() if self.chunked else None
        self._remaining = None
        if not self.chunked and "content-length" in self.headers:
            self._remaining = int(self.headers["content-length"])
        self.raw = bytearray()       # body bytes received (decoded)
        self._lines = bytearray()    # body bytes not yet split into lines
        self._cr = False             # last byte seen was a lone CR
        self._cur = new_event()
        self._has = False
        self.queue = collections.deque()
        self.ended = False           # the body ended (or connection closed)
        self.clean_end = False       # ... with the chunked terminator

    # -- low level

    def _take(self):
        buf = self.conn.buf
        if self.chunked:
            data = self._dechunk.feed(buf)
            buf.clear()
            if self._dechunk.done:
                self.ended = self.clean_end = True
        elif self._remaining is not None:
            data = bytes(buf[:self._remaining])
            del buf[:len(data)]
            self._remaining -= len(data)
            if self._remaining == 0:
                self.ended = self.clean_end = True
        else:
            data = bytes(buf)
            buf.clear()
        if data:
            self.raw += data
            self._parse(data)

    def _parse(self, data):
        self._lines += data
        b = self._lines
        while True:
            # SSE line ends: CRLF, LF or CR
            if self._cr and b[:1] == b"\n":
                del b[:1]
            self._cr = False
            m = re.search(rb"\r\n|\n|\r", b)
            if not m:
                return
            if m.group() == b"\r" and m.end() == len(b):
                # maybe the CR of a CRLF whose LF has not arrived
                line = bytes(b[:m.start()])
                del b[:m.end()]
                self._cr = True
            else:
                line = bytes(b[:m.start()])
                del b[:m.end()]
            self._line(line.decode("utf-8"))  # the server sends UTF-8

    def _line(self, line):
        ev = self._cur
        if line == "":
            if self._has:
                self.queue.append(ev)
            self._cur = new_event()
            self._has = False
            return
        self._has = True
        if line.startswith(":"):
            ev["comments"].append(line[1:].lstrip(" ")
                                  if line.startswith(": ") else line[1:])
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            ev["data"] = value if ev["data"] is None \
                else ev["data"] + "\n" + value
        elif name == "id":
            ev["id"] = value
        elif name == "event":
            ev["event"] = value
        elif name == "retry":
            ev["retry"] = int(value) if value.isdigit() else value
        else:
            ev.setdefault("unknown", []).append(line)

    def _pump(self, deadline):
        """Read once more; False when the stream ended."""
        if self.ended:
            return False
        if self.conn.buf:
            self._take()
            if self.queue or self.ended:
                return not self.ended
        if not self.conn.recv_some(deadline):
            self._take()
            self.ended = True
            return False
        self._take()
        return True

    # -- events

    def next_event(self, timeout=5.0):
        """The next event (any kind); None when the stream ended.  Raises
        TimeoutError when none arrives within timeout seconds."""
        deadline = time.monotonic() + timeout
        while not self.queue:
            if not self._pump(deadline) and not self.queue:
                return None
        return self.queue.popleft()

    def next_message(self, timeout=5.0):
        """The next event with data or a type (skips bare retry/comments).
        Fails the test when none arrives in time or the stream ends."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self.next_event(max(left, 0.0))
            except TimeoutError:
                raise AssertionError("%s: no event within %.1f s"
                                     % (self.path, timeout))
            if ev is None:
                raise AssertionError("%s: the stream ended while waiting "
                                     "for an event" % self.path)
            if is_message(ev):
                return ev

    def messages(self, n, timeout=5.0):
        """The next n events with data or a type, within timeout in all."""
        deadline = time.monotonic() + timeout
        out = []
        for _ in range(n):
            left = deadline - time.monotonic()
            try:
                out.append(self.next_message(max(left, 0.0)))
            except AssertionError as e:
                raise AssertionError("%s (got %d of %d: last %r)"
                                     % (e, len(out), n, out[-3:]))
        return out

    def read_until(self, pred, timeout=5.0):
        """Read events until pred(event) holds (that event included) or
        the deadline passes (fails the test).  Returns the list."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self.next_event(max(left, 0.0))
            except TimeoutError:
                raise AssertionError("%s: predicate not met within %.1f s; "
                                     "%d events, last %r"
                                     % (self.path, timeout, len(out),
                                        out[-3:]))
            if ev is None:
                raise AssertionError("%s: stream ended before the "
                                     "predicate held; last %r"
                                     % (self.path, out[-3:]))
            out.append(ev)
            if pred(ev):
                return out

    def quiet_for(self, duration):
        """Events (of any kind) that arrive within duration seconds."""
        deadline = time.monotonic() + duration
        out = []
        while True:
            try:
                ev = self.next_event(max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                return out
            if ev is None:
                return out
            out.append(ev)

    def wait_end(self, timeout=5.0):
        """True when the body ends (or the connection closes) in time."""
        deadline = time.monotonic() + timeout
        try:
            while self._pump(deadline):
                self.queue.clear()
        except TimeoutError:
            return False
        return True

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- daemon

class Daemon:
    """A tailsse process in a temp dir of its own.

        d = Daemon(logs=["app"], server={"max_line": 100})
        d.write("app", "old\\n")          # before or after start
        with d:
            c = d.stream("app", tail=1)

    logs: names; each is the file DIR/NAME.log, created empty unless the
    name is in `missing`.  server: [server] keys for a config file (when
    given, or when use_config is true, the logs go in the config file;
    otherwise they are NAME=PATH arguments).  extra_args: more arguments.
    """

    def __init__(self, logs=("app",), server=None, missing=(),
                 use_config=None, extra_args=(), www=None, content=None,
                 tls=None, listen_all=False):
        self.tls = tls   # an ssl.SSLContext: the daemon speaks HTTPS
        self.listen_all = listen_all  # ":PORT": every interface
        self.paths = {}  # name -> path, for logs not at DIR/NAME.log
        self._tmp = tempfile.TemporaryDirectory(prefix="tailsse-it-")
        self.dir = self._tmp.name
        self.logs = list(logs)
        self.server = dict(server or {})
        self.use_config = bool(self.server) if use_config is None \
            else use_config
        self.extra_args = list(extra_args)
        self.www = www or tailsse_www()
        self.proc = None
        self.port = None
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        self.returncode = None
        self.stop_seconds = None
        self._clients = []
        for name in self.logs:
            if name not in missing:
                write_file(self.path(name), (content or {}).get(name, b""))

    def path(self, name):
        return self.paths.get(name, os.path.join(self.dir, name + ".log"))

    def write(self, name, data):
        append(self.path(name), data)

    def ino(self, name):
        return os.stat(self.path(name)).st_ino

    def config_text(self):
        lines = ["# written by tsutil.Daemon", "[server]"]
        for k, v in self.server.items():
            lines.append("%s = %s" % (k, v))
        for name in self.logs:
            lines += ["", "[log %s]" % name, "path = %s" % self.path(name)]
        return "\n".join(lines) + "\n"

    def _argv(self, port):
        argv = [tailsse_bin(), "-l",
                (":%d" if self.listen_all else "127.0.0.1:%d") % port,
                "-w", self.www]
        if self.use_config:
            cfg = os.path.join(self.dir, "tailsse.conf")
            write_file(cfg, self.config_text())
            argv += ["-c", cfg]
        else:
            argv += ["%s=%s" % (n, self.path(n)) for n in self.logs]
        return argv + self.extra_args

    def reload(self, text=None, timeout=10.0):
        """Write the config file again (`text`, or from self.logs and
        self.server), send SIGHUP, and wait for the daemon's line about it
        ("reloaded ..." or "reload refused: ..."), which is returned."""
        assert self.use_config, "reload needs a config file"
        cfg = os.path.join(self.dir, "tailsse.conf")
        write_file(cfg, text if text is not None else self.config_text())
        said = self._reload_lines()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self._reload_lines()
            if len(now) > len(said):
                return now[len(said)]
            if self.proc.poll() is not None:
                break
            time.sleep(0.002)
        raise AssertionError("no reload line within %.0f s; stderr:\n%s"
                             % (timeout, self.stderr()))

    def _reload_lines(self):
        return [ln for ln in self.stderr().splitlines()
                if ln.startswith("tailsse: reloaded ")
                or ln.startswith("tailsse: reload refused: ")]

    def fds(self):
        """The daemon's open file descriptors."""
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def metric(self, line_prefix, headers=None):
        """The value of the /metrics line that starts with line_prefix
        (a name with its labels)."""
        r = self.get("/metrics", headers=headers)
        for ln in r.body.decode("utf-8", "replace").splitlines():
            if ln.startswith(line_prefix + " "):
                return float(ln.split()[-1])
        raise AssertionError("no metric %s in:\n%r" % (line_prefix, r.body))

    def stderr(self):
        try:
            with open(self.stderr_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self):
        last = ""
        for _attempt in range(5):
            port = free_port()
            errf = open(self.stderr_path, "wb")
            try:
                self.proc = subprocess.Popen(
                    self._argv(port), cwd=self.dir, env=sanitizer_env(),
                    stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
            finally:
                errf.close()
            self.port = port
            if self.tls is not None:
                TLS_PORTS[port] = self.tls
            if self._wait_healthy():
                return self
            last = self.stderr()
            if "Address already in use" in last and self.proc.poll() \
                    is not None:
                continue
            break
        self._kill()
        self._tmp.cleanup()
        raise AssertionError("tailsse did not become healthy; stderr:\n%s"
                             % last)

    def _wait_healthy(self):
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = request(self.port, "GET", "/healthz", timeout=1.0)
                if r.status == 200:
                    return True
            except (OSError, HTTPError, TimeoutError):
                pass
            time.sleep(0.02)
        return False

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self, timeout=5.0):
        """SIGTERM; returns the exit status (None: it had to be killed).
        Sets stop_seconds."""
        if self.returncode is not None or self.proc is None:
            return self.returncode
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            self.returncode = None
        self.stop_seconds = time.monotonic() - t0
        return self.returncode

    def check_exit(self):
        """Fail unless the daemon exited 0 with a clean stderr."""
        err = self.stderr()
        bad = sanitizer_problem(err)
        if self.returncode is None:
            raise AssertionError("tailsse did not exit within 5 s of "
                                 "SIGTERM (killed); stderr:\n%s" % err)
        if self.returncode != 0 or bad:
            raise AssertionError(
                "tailsse exit status %d%s; stderr:\n%s"
                % (self.returncode, ", %s report" % bad if bad else "", err))

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            for c in self._clients:
                c.close()
            self.stop()
            if exc_type is not None:
                # the test failed: what the daemon said may explain why
                sys.stderr.write("\n--- tailsse stderr ---\n%s--- end ---\n"
                                 % self.stderr())
            self.check_exit()
        finally:
            self._kill()
            self._tmp.cleanup()
        return False

    # -- conveniences

    def get(self, path, headers=None, timeout=5.0):
        return request(self.port, "GET", path, headers=headers,
                       timeout=timeout)

    def request(self, method, path, headers=None, body=None, timeout=5.0):
        return request(self.port, method, path, headers=headers, body=body,
                       timeout=timeout)

    def stream(self, name, headers=None, timeout=5.0, expect=200, **params):
        """Open /api/logs/NAME/events?params; checks the status."""
        q = "&".join("%s=%s" % (k, v) for k, v in params.items())
        path = "/api/logs/%s/events%s" % (name, "?" + q if q else "")
        c = SSEClient(self.port, path, headers=headers, timeout=timeout)
        self._clients.append(c)
        if expect is not None and c.status != expect:
            raise AssertionError("GET %s: status %d, expected %d"
                                 % (path, c.status, expect))
        return c


# ---------------------------------------------------------------- writer

class Writer:
    """Appends "n=000123 payload\\n" lines to path, one write each, every
    interval seconds, in a thread.  .written: lines written so far."""

    FMT = "n=%06d payload\n"

    def __init__(self, path, interval=0.002, start=0, count=None):
        self.path = path
        self.interval = interval
        self.next = start
        self.count = count
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error = None

    def _run(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                         0o644)
            try:
                while not self._stop.is_set():
                    if self.count is not None and self.written >= self.count:
                        break
                    os.write(fd, (self.FMT % self.next).encode())
                    self._wrote()
                    self.next += 1
                    self.written += 1
                    self._stop.wait(self.interval)
            finally:
                os.close(fd)
        except Exception as e:  # reported by stop()
            self.error = e

    def _wrote(self):
        """Called right after each line is written."""

    def start(self):
        self._thread.start()
        return self

    def wait_written(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.written < n and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.written >= n

    def stop(self):
        self._stop.set()
        self._thread.join(5.0)
        if self._thread.is_alive():
            raise AssertionError("writer thread did not stop")
        if self.error:
            raise self.error
        return self.written

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def number_of(data):
    """The n of a Writer line "n=000123 payload"."""
    m = re.match(r"n=(\d+) payload$", data or "")
    if not m:
        raise AssertionError("not a writer line: %r" % (data,))
    return int(m.group(1))


# ---------------------------------------------------------------- running

def report(result):
    """Print the final "N passed, N failed" line of a unittest result."""
    # a test with failing subtests appears once per subtest: count tests
    bad = set()
    for t, _ in result.failures + result.errors:
        bad.add(getattr(t, "test_case", t).id())
    for t in result.unexpectedSuccesses:
        bad.add(t.id())
    skipped = {t.id() for t, _ in result.skipped} - bad
    failed = len(bad)
    passed = max(result.testsRun - failed - len(skipped), 0)
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()


# ------------------------------------------- following files (added for
# test_logrotate.py and test_follow.py; nothing above depends on these)

def check_one_line_error(test, r, status, *words):
    """The contract's error: the status, text/plain, one non-empty line
    containing every word (any case).  Returns the text."""
    test.assertEqual(r.status, status, r)
    test.assertTrue(r.headers.get("content-type", "")
                    .startswith("text/plain"), r.headers)
    text = r.body.decode("utf-8")
    test.assertTrue(text.endswith("\n"), repr(text))
    test.assertEqual(text.count("\n"), 1, "not one line: %r" % text)
    test.assertNotIn("\r", text, "not one line: %r" % text)
    test.assertGreater(len(text.strip()), 0)
    for w in words:
        test.assertIn(w.lower(), text.lower(),
                      "%r should name %r" % (text, w))
    return text


def wait_for(pred, timeout=5.0, step=0.01):
    """Poll pred() until it holds or timeout seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def is_line(ev):
    """An event of a file line (default type, with data)."""
    return ev["event"] is None and ev["data"] is not None


def reset_reason(ev):
    """The reason of a `reset` event, None for any other event."""
    if ev["event"] != "reset":
        return None
    return json.loads(ev["data"]).get("reason")


def parse_id(ev_id):
    """"INODE:OFFSET" -> (inode, offset) as ints."""
    ino, sep, off = (ev_id or "").partition(":")
    if not sep or not ino.isdigit() or not off.isdigit():
        raise AssertionError("not an INODE:OFFSET id: %r" % (ev_id,))
    return int(ino), int(off)


def file_numbers(path):
    """The Writer lines of a file on disk: [(n, offset after the line)]."""
    return [(number_of(raw.decode("utf-8", "replace")), off)
            for off, raw in line_positions(read_bytes(path))]


class ReopenWriter(Writer):
    """A Writer that opens the path again for every line (O_WRONLY |
    O_APPEND, no O_CREAT): what an application does when it reopens its log
    after a rotation.  While the path is missing (between logrotate's
    rename and its create) it retries every 0.2 ms, for up to 2 s.
    Also records .times[i], the monotonic time line i was written."""

    def __init__(self, path, interval=0.002, start=0, count=None):
        Writer.__init__(self, path, interval, start, count)
        self.times = []
        self.retries = 0

    def _open(self):
        deadline = time.monotonic() + 2.0
        while True:
            try:
                return os.open(self.path, os.O_WRONLY | os.O_APPEND)
            except FileNotFoundError:
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                time.sleep(0.0002)

    def _run(self):
        try:
            while not self._stop.is_set():
                if self.count is not None and self.written >= self.count:
                    break
                fd = self._open()
                try:
                    os.write(fd, (self.FMT % self.next).encode())
                finally:
                    os.close(fd)
                self.times.append(time.monotonic())
                self.next += 1
                self.written += 1
                self._stop.wait(self.interval)
        except Exception as e:  # reported by stop()
            self.error = e


class TimedWriter(Writer):
    """A Writer (one fd, O_APPEND, kept open: an application that never
    reopens, as with copytruncate) that records .times[i], the monotonic
    time line i was written."""

    def __init__(self, path, interval=0.002, start=0, count=None):
        Writer.__init__(self, path, interval, start, count)
        self.times = []

    def _wrote(self):
        self.times.append(time.monotonic())


class SignalledWriter(Writer):
    """A Writer that keeps its fd (O_APPEND) and reopens the path (with
    O_CREAT) before its next line once the file `flag` exists, removing it:
    an application that reopens its log when logrotate's postrotate script
    signals it (here: `touch FLAG`).  Until then it writes to the rotated
    file.  Records .times[i] and .reopens."""

    def __init__(self, path, flag, interval=0.002, start=0, count=None):
        Writer.__init__(self, path, interval, start, count)
        self.flag = flag
        self.times = []
        self.reopens = 0

    def _open(self):
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                       0o644)

    def _run(self):
        fd = -1
        try:
            fd = self._open()
            while not self._stop.is_set():
                if self.count is not None and self.written >= self.count:
                    break
                if os.path.exists(self.flag):
                    os.unlink(self.flag)
                    os.close(fd)
                    fd = -1
                    fd = self._open()
                    self.reopens += 1
                os.write(fd, (self.FMT % self.next).encode())
                self.times.append(time.monotonic())
                self.next += 1
                self.written += 1
                self._stop.wait(self.interval)
        except Exception as e:  # reported by stop()
            self.error = e
        finally:
            if fd >= 0:
                os.close(fd)


def logrotate_bin():
    """The logrotate binary, or None (it lives in /usr/sbin)."""
    import shutil
    return shutil.which("logrotate") or shutil.which(
        "logrotate", path="/usr/sbin:/sbin:/usr/local/sbin")


class Logrotate:
    """The real logrotate on one file, with a config and a state file of
    its own in `workdir` (never the system's): run() is
    `logrotate -f -s STATE CONF`.  mode: "create" or "copytruncate"."""

    def __init__(self, path, workdir, mode="create", rotate=5, extra=()):
        self.bin = logrotate_bin()
        if not self.bin:
            raise RuntimeError("logrotate is not installed")
        os.makedirs(workdir, exist_ok=True)
        self.conf = os.path.join(workdir, "logrotate.conf")
        self.state = os.path.join(workdir, "logrotate.state")
        body = ["    rotate %d" % rotate, "    %s" % mode, "    nocompress",
                "    missingok", "    ifempty"] + ["    " + e for e in extra]
        write_file(self.conf, "%s {\n%s\n}\n" % (path, "\n".join(body)))

    def run(self, timeout=10.0):
        """Rotate once (forced); fails the test unless logrotate exits 0
        without complaint."""
        try:
            cp = subprocess.run([self.bin, "-f", "-s", self.state, self.conf],
                                stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("logrotate did not finish in %.0f s"
                                 % timeout)
        if cp.returncode != 0 or cp.stderr.strip():
            raise AssertionError("logrotate exit %d: %s%s"
                                 % (cp.returncode, cp.stderr, cp.stdout))
        return cp


# ------------------------------------------- nginx in front (added for
# test_nginx.py; nothing above depends on these)

def nginx_bin():
    """The nginx binary, or None ($NGINX, else PATH, else /usr/sbin)."""
    import shutil
    return os.environ.get("NGINX") or shutil.which("nginx") or \
        shutil.which("nginx", path="/usr/sbin:/sbin:/usr/local/sbin")


SHIPPED_NGINX_CONF = os.path.join(TOP, "etc", "nginx-tailsse.conf")


def _sub_exactly(text, pattern, repl, count, what):
    """re.subn that fails unless pattern matched exactly count times:
    a change of the shipped file's shape fails the test loudly instead
    of testing something else."""
    out, n = re.subn(pattern, repl, text, flags=re.M)
    if n != count:
        raise AssertionError("%s: %r matched %d times in %s, expected %d"
                             % (what, pattern, n, SHIPPED_NGINX_CONF,
                                count))
    return out


def shipped_nginx_conf(upstream, https_port, http_port, cert, key, logdir,
                       read_timeout=None):
    """etc/nginx-tailsse.conf with only what a test must change: its
    listens on 127.0.0.1 ports (the IPv6 ones dropped), the certificate,
    tailsse's port, the access log's directory and, when given, the
    proxy_read_timeout (nginx syntax, e.g. "2s")."""
    with open(SHIPPED_NGINX_CONF) as f:
        text = f.read()
    # directives only (a line's start): never the comments that name them
    subs = [
        (r"^[ \t]*listen \[::\]:(?:80|443)\b[^;]*;\n", "", 2),
        (r"^([ \t]*)listen 443 ", r"\1listen 127.0.0.1:%d " % https_port, 1),
        (r"^([ \t]*)listen 80;", r"\1listen 127.0.0.1:%d;" % http_port, 1),
        (r"^([ \t]*ssl_certificate[ \t]+)\S+;", r"\g<1>%s;" % cert, 1),
        (r"^([ \t]*ssl_certificate_key[ \t]+)\S+;", r"\g<1>%s;" % key, 1),
        (r"^([ \t]*)proxy_pass http://127\.0\.0\.1:8080/;",
         r"\1proxy_pass http://127.0.0.1:%d/;" % upstream, 1),
        (r"^([ \t]*)access_log /var/log/nginx/", r"\1access_log %s/" % logdir,
         1),
    ]
    if read_timeout is not None:
        subs.append((r"^([ \t]*)proxy_read_timeout \S+;",
                     r"\1proxy_read_timeout %s;" % read_timeout, 1))
    for pattern, repl, count in subs:
        text = _sub_exactly(text, pattern, repl, count, "shipped_nginx_conf")
    return text


class Nginx:
    """A real nginx of the test's own (never the system service): its
    config, pid, logs and temp paths in a temp dir, started in the
    foreground (`nginx -p DIR -c CONF -e LOG -g 'daemon off;'`).

        n = Nginx(lambda dir, ports: "server { listen 127.0.0.1:%d; }"
                  % ports[0], nports=1)
        with n:
            request(n.ports[0], "GET", "/")

    make_http(dir, ports) returns what goes in the http block; ports are
    free loopback ports (chosen again when one was taken meanwhile).
    Stopped with SIGTERM; an [emerg], [alert] or [crit] in its error log
    fails the test at exit."""

    def __init__(self, make_http, nports=1):
        self.bin = nginx_bin()
        if not self.bin:
            raise RuntimeError("nginx is not installed")
        self._tmp = tempfile.TemporaryDirectory(prefix="tailsse-nginx-")
        self.dir = self._tmp.name
        # when run as root its workers are nobody: they may need to get in
        os.chmod(self.dir, 0o755)
        self.make_http = make_http
        self.nports = nports
        self.ports = None
        self.proc = None
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")

    def config_text(self, ports):
        d = self.dir
        return "\n".join([
            "# written by tsutil.Nginx",
            "worker_processes 1;",
            "pid %s/nginx.pid;" % d,
            "error_log %s notice;" % self.error_log,
            "events { worker_connections 256; }",
            "http {",
            "    default_type application/octet-stream;",
            "    access_log %s/access.log;" % d,
            "    client_body_temp_path %s/client_body;" % d,
            "    proxy_temp_path %s/proxy;" % d,
            "    fastcgi_temp_path %s/fastcgi;" % d,
            "    uwsgi_temp_path %s/uwsgi;" % d,
            "    scgi_temp_path %s/scgi;" % d,
            self.make_http(d, ports),
            "}", ""])

    def errors(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def check_config(self):
        """nginx -t on the config of the last start."""
        cp = subprocess.run([self.bin, "-t", "-p", self.dir + "/",
                             "-c", self.conf, "-e", self.error_log],
                            stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, errors="replace", timeout=10)
        return cp

    def start(self):
        last = ""
        for _attempt in range(5):
            self.ports = [free_port() for _ in range(self.nports)]
            write_file(self.conf, self.config_text(self.ports))
            write_file(self.error_log, b"")
            self.proc = subprocess.Popen(
                [self.bin, "-p", self.dir + "/", "-c", self.conf,
                 "-e", self.error_log, "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT)
            if self._wait_listening():
                return self
            self._kill()
            last = self.errors()
            if "Address already in use" not in last:
                break
        self._tmp.cleanup()
        raise AssertionError("nginx did not start; its error log:\n%s\n"
                             "its config:\n%s"
                             % (last, self.config_text(self.ports)))

    def _wait_listening(self):
        deadline = time.monotonic() + 10.0
        todo = list(self.ports)
        while todo and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", todo[0]),
                                         timeout=1.0).close()
                todo.pop(0)
            except OSError:
                time.sleep(0.02)
        return not todo

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)   # fast shutdown
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError("nginx did not stop within 5 s")

    def check_log(self):
        bad = [x for x in self.errors().splitlines()
               if re.search(r"\[(emerg|alert|crit)\]", x)]
        if bad:
            raise AssertionError("nginx error log:\n" + "\n".join(bad))

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop()
            if exc_type is not None:
                sys.stderr.write("\n--- nginx error log ---\n%s--- end ---\n"
                                 % self.errors())
            self.check_log()
        finally:
            self._kill()
            self._tmp.cleanup()
        return False
