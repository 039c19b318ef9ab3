#!/usr/bin/env python3
"""The soak test (make soak, make soak-smoke): a release-built daemon follows
two logs while numbered lines go through both, each rotated by the real
logrotate (its own config and state file) many times, and clients of every
kind read them; every client must get every line once, in order, per log,
across rotations and reconnects, and the daemon's memory and open files
must not grow.

The logs:
  a  logrotate `create`: the writer keeps its fd and reopens the path when
     postrotate touches a flag (as nginx does on USR1): the lines written
     between the rename and the reopen go to a.log.1 and must be sent
     before the reset.
  b  logrotate `copytruncate`: the writer keeps its fd.  It pauses while
     logrotate runs, from the moment the daemon has seen the whole file:
     logrotate(8) itself loses the lines written between its copy and its
     truncation, and a check that allowed losses would hide real ones.
Lines are "n=<9 digits> k=<n % 7> <log> <padding>", one write(2) per tick of
5 ms with every line due.  Rotations alternate a, b, a, ... evenly over the
run.

The clients (long-lived ones connect before the first line is written, so
each must get line 0 first, then every line; a filtered one every line
whose k is its own), spread over worker processes (selectors, raw
sockets):
  steady      one log, connected throughout
  reconnect   one log, online 1-6 s, offline 0-3 s, resumes by the id of
              its last event (Last-Event-ID header or ?lastEventId=, in
              turn)
  filtered    grep=k=R (one per residue R), half of them reconnecting
  multi       /api/events?log=a&log=b, per-log checks; half reconnecting
              (resume by the cursor id)
  slow        a receive buffer of 64 KiB, asleep 2-8 s then awake 1-3 s:
              the daemon holds them back (often across a rotation) and
              must not lose or buffer their lines
  churn       bursts of many connections at once (tail=3 on a or b, or
              tail=2 on the merged stream): each checks that its lines are
              consecutive, then closes
When the writers are done every long-lived client must reach the last line
of each of its logs within the drain time.

The daemon's RSS (VmRSS) and open fds (/proc/PID/fd) are sampled every
second and printed as a curve.  Growth check (runs of at least 120 s): the
samples after the warm-up (the first 20% of the writing time) are cut in
thirds; the last third's maximum RSS must be at most the first third's
maximum + max(2 MiB, 5%), and likewise the fds measured just before each
churn burst (the quiet moments) + the clients that reconnect (their
connections come and go at any time) + 8.  At the end, with every client
gone, the daemon's fds must be back to what they were before the first
client, + 4 (generations it may keep open).

Usage: soak.py [--smoke] [--duration S] [--lines N] [--rotations R]
               [--burst N] [--clients K]
Environment: TAILSSE_BIN (a build without sanitizers), TAILSSE_WWW;
SOAK_DURATION, SOAK_LINES, SOAK_ROTATIONS, SOAK_BURST, SOAK_CLIENTS (the
same as the options).  Python 3 standard library only.  Every wait is
bounded; exits 0 when every check passed.  Ends with "N passed, N failed"
(the checks)."""

import argparse
import collections
import json
import multiprocessing
import os
import random
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import tsutil  # noqa: E402

K = 7                       # lines carry k = n % K; filters pick one k
PAD = "x" * 40
TICK = 0.005
MAX_ERRORS = 5              # messages kept per client kind


def line_text(n, log):
    return "n=%09d k=%d %s %s\n" % (n, n % K, log, PAD)


def parse_n(data):
    """n of a line "n=000000123 k=..."; None if not one."""
    if data[:2] != b"n=" and data[:2] != "n=":
        return None
    try:
        return int(data[2:11])
    except ValueError:
        return None


# ------------------------------------------------------------- writers

def writer_main(path, log, rate, total, written, pause, paused, flag):
    """Append `total` lines at `rate` lines/s.  a: reopen when `flag`
    exists.  pause: while set, write nothing (and set `paused`); the time
    paused is not made up by a burst afterwards."""
    os.nice(5)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    n = 0
    t0 = time.monotonic()
    paused_for = 0.0
    while n < total:
        if pause.value:
            paused.value = 1
            p0 = time.monotonic()
            while pause.value:
                time.sleep(0.002)
            paused_for += time.monotonic() - p0
            paused.value = 0
        if flag and os.path.exists(flag):
            os.unlink(flag)
            os.close(fd)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        due = min(total, int((time.monotonic() - t0 - paused_for) * rate))
        if due > n:
            buf = "".join(line_text(i, log) for i in range(n, due)).encode()
            off = 0
            while off < len(buf):
                off += os.write(fd, buf[off:])
            n = due
            written.value = n
        time.sleep(TICK)
    os.close(fd)


# ------------------------------------------------------------- clients

class Stats:
    def __init__(self):
        self.clients = 0
        self.conns = 0
        self.lines = 0
        self.resets = collections.Counter()
        self.errors = 0
        self.msgs = []
        self.done = 0
        self.replays = 0
        self.replay_ids = []
        self.replay_ends = 0

    def error(self, msg):
        self.errors += 1
        if len(self.msgs) < MAX_ERRORS:
            self.msgs.append(msg)

    def as_dict(self):
        return {"clients": self.clients, "conns": self.conns,
                "lines": self.lines, "resets": dict(self.resets),
                "errors": self.errors, "msgs": self.msgs,
                "done": self.done, "replays": self.replays,
                "replay_ends": self.replay_ends,
                "replay_ids": self.replay_ids}


class Client:
    """One HTTP connection reading an SSE stream, at a time; a long-lived
    client opens a new one to resume.  Subclasses decide what to check."""

    def __init__(self, w, kind, logs, path, filt=None):
        self.w = w
        self.kind = kind
        self.st = w.stats[kind]
        self.logs = logs
        self.base = path
        self.filt = filt
        self.sock = None
        self.last_id = None
        self.nconn = 0

    # -- connection

    def open(self, extra_q="", headers=()):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tune(s)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.w.port))
        except BlockingIOError:
            pass
        path = self.base + extra_q
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (
            path, "".join("%s: %s\r\n" % h for h in headers))
        self.sock = s
        self.out = req.encode()
        self.head = bytearray()
        self.in_head = True
        self.raw = bytearray()
        self.body = bytearray()
        self.need = 0          # chunk bytes left; -1: expecting CRLF
        self.chunked = True
        self.resumed_from = dict(headers).get("Last-Event-ID") or extra_q
        self.t_open = time.monotonic()
        self.nconn += 1
        self.st.conns += 1
        self.w.sel.register(s, selectors.EVENT_WRITE, self)

    def tune(self, s):
        pass

    def close(self):
        if self.sock is not None:
            try:
                self.w.sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None

    def on_event(self, mask):
        if mask & selectors.EVENT_WRITE:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.failed("connect/send: %s" % e)
                return
            self.out = self.out[n:]
            if not self.out:
                self.w.sel.modify(self.sock, selectors.EVENT_READ, self)
            return
        try:
            d = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.failed("recv: %s" % e)
            return
        if not d:
            if not self.in_head and not self.chunked:
                self.replay_ended()
            else:
                self.failed("the server closed the stream")
            return
        if self.in_head:
            self.head += d
            i = self.head.find(b"\r\n\r\n")
            if i < 0:
                if len(self.head) > 65536:
                    self.failed("no end of head")
                return
            head = bytes(self.head[:i]).decode("latin-1")
            rest = self.head[i + 4:]
            self.in_head = False
            status = head[9:12]
            if status != "200":
                self.failed("HTTP %s: %r" % (status, head.split("\r\n")[0]))
                return
            self.chunked = "chunked" in head.lower()
            if not self.chunked:
                # a replay (README: a stream that starts more than 1 MiB
                # behind): no chunked encoding, the body ends at the close
                self.st.replays += 1
                if len(self.st.replay_ids) < MAX_ERRORS:
                    self.st.replay_ids.append(self.resumed_from)
            self.on_open()
            d = bytes(rest)
            if not d:
                return
        self.dechunk(d)

    def dechunk(self, d):
        if not self.chunked:
            self.body += d
            self.events()
            return
        raw = self.raw
        raw += d
        body = self.body
        pos = 0
        n = len(raw)
        while pos < n:
            if self.need > 0:
                take = min(self.need, n - pos)
                body += raw[pos:pos + take]
                pos += take
                self.need -= take
                if self.need == 0:
                    self.need = -1
            elif self.need == -1:
                if n - pos < 2:
                    break
                pos += 2
                self.need = 0
            else:
                i = raw.find(b"\r\n", pos)
                if i < 0:
                    break
                size = int(bytes(raw[pos:i]).split(b";")[0], 16)
                pos = i + 2
                if size == 0:
                    del raw[:pos]
                    self.failed("the server ended the stream")
                    return
                self.need = size
        del raw[:pos]
        self.events()

    def events(self):
        body = self.body
        i = body.rfind(b"\n\n")
        if i < 0:
            return
        block = bytes(body[:i])
        del body[:i + 2]
        for ev in block.split(b"\n\n"):
            self.sse_event(ev)
            if self.sock is None:
                return

    def sse_event(self, ev):
        ev_id = ev_type = data = None
        for f in ev.split(b"\n"):
            if f.startswith(b"data: "):
                data = f[6:]
            elif f.startswith(b"id: "):
                ev_id = f[4:].decode()
            elif f.startswith(b"event: "):
                ev_type = f[7:].decode()
        if ev_id is not None:
            self.last_id = ev_id
        if data is None:
            return  # retry: or a ping
        if ev_type is None:
            self.st.lines += 1
            if len(self.logs) == 1:
                self.on_line(self.logs[0], data)
            else:
                o = json.loads(data)
                self.on_line(o["log"], o["line"].encode())
        elif ev_type == "reset":
            reason = json.loads(data).get("reason")
            self.st.resets[reason] += 1
            if reason not in ("rotated", "truncated"):
                self.st.error("%s: reset %r (id %s)" % (self.desc(), reason,
                                                        ev_id))
        else:
            self.st.error("%s: unexpected event %r %r" % (self.desc(),
                                                          ev_type, data))

    def desc(self):
        return "%s %s#%d" % (self.kind, self.base, self.nconn)

    # -- subclass hooks
    def on_open(self):
        pass

    def replay_ended(self):
        """The server closed a replay (its body ends at the close)."""
        self.failed("the server closed a replay")

    def on_line(self, log, data):
        pass

    def failed(self, why):
        self.close()


class LongClient(Client):
    """steady / reconnect / filtered / multi / slow."""

    def __init__(self, w, kind, logs, filt=None, reconnect=False,
                 slow=False):
        if len(logs) == 1:
            path = "/api/logs/%s/events" % logs[0]
        else:
            path = "/api/events?" + "&".join("log=" + x for x in logs)
        if filt is not None:
            path += ("&" if "?" in path else "?") + \
                "grep=" + urllib.parse.quote("k=%d " % filt, safe="")
        Client.__init__(self, w, kind, logs, path, filt)
        self.reconnect = reconnect
        self.slow = slow
        self.last_n = {x: None for x in logs}
        self.next_t = 0.0          # reconnect: when to go off/online
        self.asleep = False
        self.up = False
        self.done = False
        self.st.clients += 1

    def tune(self, s):
        if self.slow:
            # small, so that the daemon is held back within a nap, but
            # not below two loopback segments (MSS 64 KiB): with a window
            # smaller than the sender's MSS, Linux sends only on its
            # persist timer, a byte-by-byte crawl (seen with 4 KiB: a
            # stream 180 KB behind for a minute; ss: timer:(persist))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)

    def start(self):
        self.open()
        self.plan_online()

    def resume(self):
        if self.last_id is None:
            self.open()
        elif self.nconn % 2:
            self.open(headers=(("Last-Event-ID", self.last_id),))
        else:
            q = ("&" if "?" in self.base else "?") + "lastEventId=" + \
                urllib.parse.quote(self.last_id, safe="")
            self.open(extra_q=q)
        self.plan_online()

    def plan_online(self):
        if self.reconnect:
            self.next_t = time.monotonic() + random.uniform(1.0, 6.0)
        elif self.slow:
            self.next_t = time.monotonic() + random.uniform(1.0, 3.0)

    def on_open(self):
        self.up = True

    def on_line(self, log, data):
        n = parse_n(data)
        if n is None:
            self.st.error("%s: not a line: %r" % (self.desc(), data[:80]))
            return
        prev = self.last_n.get(log, "?")
        if prev == "?":
            self.st.error("%s: a line of log %r" % (self.desc(), log))
            return
        step = 1 if self.filt is None else K
        first = 0 if self.filt is None else self.filt
        want = first if prev is None else prev + step
        if n != want:
            self.st.error("%s: log %s: line %d after %s (expected %d)"
                          % (self.desc(), log, n, prev, want))
        if self.filt is not None and n % K != self.filt:
            self.st.error("%s: line %d does not match the filter"
                          % (self.desc(), n))
        self.last_n[log] = n
        if self.w.final and not self.done and self.reached_end():
            self.done = True
            self.st.done += 1

    def reached_end(self):
        for log in self.logs:
            if self.last_n[log] != self.w.last_expected(log, self.filt):
                return False
        return True

    def failed(self, why):
        self.st.error("%s: %s" % (self.desc(), why))
        self.close()
        self.up = False
        self.next_t = time.monotonic() + 0.5   # then resume

    def replay_ended(self):
        # as EventSource does: resume at once from the last id
        self.st.replay_ends += 1
        self.close()
        self.up = False
        self.next_t = time.monotonic()

    def tick(self, now):
        """Reconnect and sleep schedules; at the end, everyone online."""
        if self.sock is None:
            if now >= self.next_t:
                self.resume()
            return
        if self.w.final:
            if self.asleep:
                self.wake()
            return
        if self.reconnect and now >= self.next_t:
            self.close()
            self.up = False
            self.next_t = now + random.uniform(0.0, 3.0)
        elif self.slow and self.up and now >= self.next_t:
            if self.asleep:
                self.wake()
                self.next_t = now + random.uniform(1.0, 3.0)
            else:
                self.w.sel.unregister(self.sock)
                self.asleep = True
                self.next_t = now + random.uniform(2.0, 8.0)

    def wake(self):
        self.asleep = False
        self.w.sel.register(self.sock, selectors.EVENT_READ, self)


class ChurnClient(Client):
    """tail=3 (one log) or tail=2 (merged): its lines consecutive, then it
    closes."""

    def __init__(self, w, logs):
        if len(logs) == 1:
            path = "/api/logs/%s/events?tail=3" % logs[0]
            self.want = 3
        else:
            path = "/api/events?log=a&log=b&tail=2"
            self.want = 2
        Client.__init__(self, w, "churn", logs, path)
        self.got = {x: [] for x in logs}
        self.st.clients += 1
        self.open()

    def on_line(self, log, data):
        self.got[log].append(parse_n(data))
        if all(len(v) >= self.want for v in self.got.values()):
            for lg, v in self.got.items():
                if any(b != a + 1 for a, b in zip(v, v[1:])):
                    self.st.error("%s: log %s: lines %r not consecutive"
                                  % (self.desc(), lg, v))
            self.st.done += 1
            self.close()
            self.w.churn_live -= 1

    def failed(self, why):
        self.st.error("%s: %s" % (self.desc(), why))
        self.close()
        self.w.churn_live -= 1


class Worker:
    """A process of clients: its selector loop, and the orchestrator's
    commands on a pipe."""

    def __init__(self, port, pipe, spec, seed):
        self.port = port
        self.pipe = pipe
        self.spec = spec
        self.stats = collections.defaultdict(Stats)
        self.sel = selectors.DefaultSelector()
        self.final = None
        self.long = []
        self.churn = []
        self.churn_live = 0
        random.seed(seed)

    def last_expected(self, log, filt):
        n = self.final[log] - 1
        if filt is not None:
            n -= (n - filt) % K
        return n

    def run(self):
        os.nice(2)
        for kind, logs, filt, reconnect, slow in self.spec:
            c = LongClient(self, kind, logs, filt, reconnect, slow)
            self.long.append(c)
            c.open()
        # ready when every long-lived client has its response head
        deadline = time.monotonic() + 30
        while not all(c.up for c in self.long):
            self.poll(0.05)
            if time.monotonic() > deadline:
                break
        for c in self.long:
            c.plan_online()
        self.pipe.send(("ready", sum(c.up for c in self.long)))
        drain_deadline = None
        while True:
            self.poll(0.05)
            now = time.monotonic()
            for c in self.long:
                c.tick(now)
            # churn clients that hang are errors, not waits
            if self.churn_live:
                for c in self.churn:
                    if c.sock is not None and now - c.t_open > 20:
                        c.failed("no %d lines within 20 s" % c.want)
                self.churn = [c for c in self.churn if c.sock is not None]
            while self.pipe.poll():
                cmd = self.pipe.recv()
                if cmd[0] == "burst":
                    self.burst(cmd[1], cmd[2])
                elif cmd[0] == "final":
                    self.final = cmd[1]
                    drain_deadline = now + cmd[2]
                    for c in self.long:
                        if not c.done and c.reached_end():
                            c.done = True
                            c.st.done += 1
                elif cmd[0] == "stop":
                    return self.finish()
            if drain_deadline and (all(c.done for c in self.long) and
                                   not self.churn_live or
                                   now > drain_deadline):
                self.pipe.send(("drained", None))
                drain_deadline = None

    def finish(self):
        for c in self.long:
            if not c.done:
                c.st.error("%s: did not reach the end: last lines %r, "
                           "expected %r" % (c.desc(), c.last_n, {
                               x: self.last_expected(x, c.filt)
                               for x in c.logs}))
            c.close()
        for c in self.churn:
            if c.sock is not None:
                c.st.error("%s: unfinished at the end" % c.desc())
                c.close()
        self.pipe.send(("report", {k: v.as_dict()
                                   for k, v in self.stats.items()}))

    def burst(self, n, which):
        for i in range(n):
            logs = [["a"], ["b"], ["a", "b"]][(which + i) % 3]
            try:
                c = ChurnClient(self, logs)
            except OSError as e:
                self.stats["churn"].error("connect: %s" % e)
                continue
            self.churn.append(c)
            self.churn_live += 1

    def poll(self, timeout):
        for key, mask in self.sel.select(timeout):
            c = key.data
            if c.sock is not None:
                c.on_event(mask)


def worker_main(port, pipe, spec, seed):
    try:
        Worker(port, pipe, spec, seed).run()
    except Exception:
        import traceback
        pipe.send(("crash", traceback.format_exc()))


# ------------------------------------------------------------- daemon

def proc_sample(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                rss = int(ln.split()[1])
                break
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return rss, fds


def streams_connected(port):
    try:
        r = tsutil.request(port, "GET", "/metrics", timeout=2.0)
    except (OSError, tsutil.HTTPError, TimeoutError):
        return -1
    for ln in r.text.splitlines():
        if ln.startswith("tailsse_clients_connected") or \
                ln.startswith("tailsse_clients "):
            try:
                return int(float(ln.split()[-1]))
            except ValueError:
                return -1
    return -1


def spark(values, width=60):
    """values squeezed to width columns (max of each), as block letters
    between their min and max."""
    if not values:
        return ""
    cols = []
    step = len(values) / float(width)
    for i in range(min(width, len(values))):
        a = int(i * step)
        b = max(a + 1, int((i + 1) * step))
        cols.append(max(values[a:b]))
    lo, hi = min(cols), max(cols)
    bars = "▁▂▃▄▅▆▇█"
    if hi == lo:
        return bars[0] * len(cols)
    return "".join(bars[int((v - lo) * 7.999 / (hi - lo))] for v in cols)


# ------------------------------------------------------------- main

def client_specs(k, nworkers):
    """The long-lived clients, k of each plain kind per log, dealt out to
    the workers: (kind, logs, filter, reconnect, slow)."""
    specs = []
    for log in ("a", "b"):
        specs += [("steady", [log], None, False, False)] * k
        specs += [("reconnect", [log], None, True, False)] * k
        specs += [("slow", [log], None, False, True)] * max(1, k // 2)
    for r in range(max(2, k)):
        log = "ab"[r % 2]
        specs.append(("filtered", [log], r % K, r % 2 == 1, False))
    specs += [("multi", ["a", "b"], None, False, False)] * max(1, k // 2)
    specs += [("multi", ["a", "b"], None, True, False)] * max(1, k // 2)
    specs.append(("slow", ["a", "b"], None, False, True))
    out = [[] for _ in range(nworkers)]
    for i, s in enumerate(specs):
        out[i % nworkers].append(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    env = os.environ.get
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--duration", type=float, default=env("SOAK_DURATION"))
    ap.add_argument("--lines", type=int, default=env("SOAK_LINES"))
    ap.add_argument("--rotations", type=int, default=env("SOAK_ROTATIONS"))
    ap.add_argument("--burst", type=int, default=env("SOAK_BURST"))
    ap.add_argument("--clients", type=int, default=env("SOAK_CLIENTS"))
    ap.add_argument("--workers", type=int, default=2)
    o = ap.parse_args()
    dflt = ((20, 30000, 3, 200, 2) if o.smoke
            else (600, 1000000, 20, 1000, 4))
    duration = float(o.duration or dflt[0])
    total = int(o.lines or dflt[1])
    rotations = int(o.rotations if o.rotations is not None else dflt[2])
    burst = int(o.burst if o.burst is not None else dflt[3])
    k = int(o.clients or dflt[4])
    per_log = total // 2
    rate = per_log / duration
    burst_every = 4.0 if o.smoke else 10.0
    drain = 20.0 if o.smoke else 60.0
    if not tsutil.logrotate_bin():
        print("soak: logrotate is not installed (Debian: apt-get install "
              "logrotate)")
        return 2

    checks = []

    def check(ok, what):
        checks.append((bool(ok), what))
        print("soak: %s: %s" % ("ok  " if ok else "FAIL", what))
        sys.stdout.flush()

    d = tsutil.Daemon(logs=["a", "b"], server={"max_clients": 10000})
    d.start()
    pid = d.proc.pid
    lr = {}
    flag = os.path.join(d.dir, "reopen.flag")
    for log, mode, extra in (
            ("a", "create", ("postrotate", "    touch %s" % flag,
                             "endscript")),
            ("b", "copytruncate", ())):
        lr[log] = tsutil.Logrotate(d.path(log), os.path.join(d.dir,
                                                             "lr-" + log),
                                   mode=mode, rotate=5, extra=extra)
    ctx = multiprocessing.get_context("fork")
    rss0, fds0 = proc_sample(pid)
    specs = client_specs(k, o.workers)
    nlong = sum(len(s) for s in specs)
    floating = sum(1 for s in specs for x in s if x[3]) + 8
    print("soak: tailsse %s (pid %d) on 127.0.0.1:%d; %d lines (%d per "
          "log, %.0f lines/s each) in %.0f s, %d rotations (a: create, b: "
          "copytruncate), %d long-lived clients in %d workers, churn bursts "
          "of %d every %.0f s"
          % (tsutil.tailsse_bin(), pid, d.port, per_log * 2, per_log, rate,
             duration, rotations, nlong, o.workers, burst, burst_every))
    sys.stdout.flush()
    pipes, procs = [], []
    for i, spec in enumerate(specs):
        a, b = ctx.Pipe()
        p = ctx.Process(target=worker_main, args=(d.port, b, spec, 1000 + i))
        p.start()
        pipes.append(a)
        procs.append(p)
    ready = 0
    for a in pipes:
        if a.poll(60):
            msg = a.recv()
            if msg[0] == "crash":
                print(msg[1])
                return 1
            ready += msg[1]
    check(ready == nlong, "%d of %d long-lived clients connected before the "
          "first line" % (ready, nlong))

    written = {x: ctx.Value("q", 0) for x in "ab"}
    pause = {x: ctx.Value("i", 0) for x in "ab"}
    paused = {x: ctx.Value("i", 0) for x in "ab"}
    writers = [ctx.Process(target=writer_main, args=(
        d.path(x), x, rate, per_log, written[x], pause[x], paused[x],
        flag if x == "a" else None)) for x in "ab"]
    t0 = time.monotonic()
    for p in writers:
        p.start()

    samples = []        # (t, rss KiB, fds, written, streams)
    quiet = []          # (t, fds) just before a burst
    rot_log = []        # (t, log, seconds, error)
    lock = threading.Lock()
    stop = threading.Event()

    def rotate_b():
        pause["b"].value = 1
        deadline = time.monotonic() + 5
        while not paused["b"].value and time.monotonic() < deadline:
            time.sleep(0.002)
        size = os.path.getsize(d.path("b"))
        # the daemon has seen the whole file: logs[1] is b
        tsutil.wait_for(lambda: json.loads(tsutil.request(
            d.port, "GET", "/api/logs", timeout=5).body)[1]["size"] == size,
            timeout=10)
        try:
            lr["b"].run(timeout=30)
        finally:
            pause["b"].value = 0

    def rotations_thread():
        for i in range(rotations):
            at = t0 + duration * (i + 0.5) / rotations
            while time.monotonic() < at:
                if stop.wait(0.05):
                    return
            log = "ab"[i % 2]
            r0 = time.monotonic()
            err = None
            try:
                if log == "a":
                    lr["a"].run(timeout=30)
                else:
                    rotate_b()
            except (AssertionError, OSError, ValueError) as e:
                err = str(e)
            with lock:
                rot_log.append((r0 - t0, log, time.monotonic() - r0, err))

    rt = threading.Thread(target=rotations_thread, daemon=True)
    rt.start()
    next_burst = t0 + burst_every / 2
    nburst = 0
    report_every = max(1, int(round(duration / 30.0)))
    print("soak: the curve (a line every %d s; rss in MiB, fds: the "
          "daemon's open files, streams: its connected streams)"
          % report_every)
    print("soak:      t  lines   rss    fds  streams  rotations")
    last_print = -report_every
    sys.stdout.flush()
    while any(p.is_alive() for p in writers):
        now = time.monotonic()
        t = now - t0
        try:
            rss, fds = proc_sample(pid)
        except OSError:
            check(False, "the daemon died (%s)" % d.stderr()[-500:])
            break
        wr = written["a"].value + written["b"].value
        if burst and now >= next_burst and t < duration - 2:
            quiet.append((t, fds))
            for i, a in enumerate(pipes):
                a.send(("burst", burst // len(pipes), nburst + i))
            nburst += 1
            next_burst += burst_every
        streams = streams_connected(d.port)
        samples.append((t, rss, fds, wr, streams))
        if t - last_print >= report_every:
            last_print = t
            with lock:
                nrot = len(rot_log)
            print("soak: %6.0f %7d %5.1f %6d %8d %6d" % (
                t, wr, rss / 1024.0, fds, streams, nrot))
            sys.stdout.flush()
        for a in pipes:
            while a.poll():
                msg = a.recv()
                if msg[0] == "crash":
                    print(msg[1])
                    check(False, "a client worker crashed")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    t_write = time.monotonic() - t0
    for p in writers:
        p.join(10)
    rt.join(60)
    stop.set()
    final = {x: written[x].value for x in "ab"}
    check(final == {"a": per_log, "b": per_log},
          "the writers wrote %r lines in %.1f s" % (final, t_write))
    for log, mode, _ in (("a", "create", 0), ("b", "copytruncate", 0)):
        rs = [r for r in rot_log if r[1] == log]
        bad = [r for r in rs if r[3]]
        check(not bad and len(rs) == (rotations + (log == "a")) // 2,
              "%d logrotate %s rotations of %s (%.2f s at most each)%s"
              % (len(rs), mode, log, max([r[2] for r in rs] or [0]),
                 ": " + bad[0][3] if bad else ""))
    # drain: every long-lived client reaches the last line of its logs
    td = time.monotonic()
    for a in pipes:
        a.send(("final", final, drain))
    pending = set(range(len(pipes)))
    crashed = False
    while pending and time.monotonic() < td + drain + 10:
        for i in list(pending):
            if pipes[i].poll(0.2):
                msg = pipes[i].recv()
                if msg[0] == "drained":
                    pending.discard(i)
                elif msg[0] == "crash":
                    print(msg[1])
                    crashed = True
                    pending.discard(i)
        try:
            samples.append((time.monotonic() - t0,) + proc_sample(pid) +
                           (sum(final.values()), -1))
        except OSError:
            break
    t_drain = time.monotonic() - td
    reports = []
    for a in pipes:
        a.send(("stop",))
    for a in pipes:
        while a.poll(30):
            msg = a.recv()
            if msg[0] == "report":
                reports.append(msg[1])
                break
            if msg[0] == "crash":
                print(msg[1])
                crashed = True
                break
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    check(not crashed and len(reports) == len(pipes),
          "every client worker reported")
    # fds at rest: no client left
    time.sleep(1.0)
    tsutil.wait_for(lambda: proc_sample(pid)[1] <= fds0 + 4, timeout=10)
    rss_end, fds_end = proc_sample(pid)

    # clients
    kinds = collections.OrderedDict()
    for rep in reports:
        for kind, s in rep.items():
            agg = kinds.setdefault(kind, {"clients": 0, "conns": 0,
                                          "lines": 0, "errors": 0,
                                          "done": 0, "msgs": [],
                                          "replays": 0, "replay_ids": [],
                                          "replay_ends": 0,
                                          "resets": collections.Counter()})
            for f in ("clients", "conns", "lines", "errors", "done",
                      "replays", "replay_ends"):
                agg[f] += s[f]
            agg["msgs"] += s["msgs"]
            agg["replay_ids"] += s["replay_ids"]
            agg["resets"].update(s["resets"])
    print("soak: clients (drained in %.1f s after the last line):" % t_drain)
    total_lines = 0
    for kind in ("steady", "reconnect", "filtered", "multi", "slow",
                 "churn"):
        s = kinds.get(kind)
        if not s:
            continue
        total_lines += s["lines"]
        print("soak:   %-9s %5d clients %7d connections %9d lines  "
              "resets %s  complete %d  errors %d" % (
                  kind, s["clients"], s["conns"], s["lines"],
                  ",".join("%s=%d" % kv for kv in sorted(
                      s["resets"].items())) or "-", s["done"],
                  s["errors"]))
        for m in s["msgs"][:MAX_ERRORS]:
            print("soak:     %s" % m)
        if s["replays"]:
            print("soak:     %d connections were replays (not chunked: "
                  "started over 1 MiB behind; %d ended by the server), "
                  "resumed from e.g. %s" % (
                      s["replays"], s["replay_ends"],
                      ", ".join(map(str, s["replay_ids"][:3]))))
        check(s["errors"] == 0 and s["done"] == s["clients"],
              "%s clients: every line once, in order%s" % (
                  kind, " (%d of %d complete, %d errors)" % (
                      s["done"], s["clients"], s["errors"])
                  if s["errors"] or s["done"] != s["clients"] else ""))
    print("soak: %d lines delivered to clients in all" % total_lines)

    # the curve, and growth
    ws = [x for x in samples if x[0] <= t_write]
    print("soak: rss  %s  %.1f-%.1f MiB" % (
        spark([x[1] for x in ws]), min(x[1] for x in ws) / 1024.0,
        max(x[1] for x in ws) / 1024.0))
    print("soak: fds  %s  %d-%d" % (spark([x[2] for x in ws]),
                                    min(x[2] for x in ws),
                                    max(x[2] for x in ws)))
    print("soak: before any client: rss %.1f MiB, %d fds; at the end, no "
          "client left: rss %.1f MiB, %d fds" % (rss0 / 1024.0, fds0,
                                                 rss_end / 1024.0, fds_end))
    check(fds_end <= fds0 + 4, "fds at rest: %d, %d before the first client "
          "(+4 allowed)" % (fds_end, fds0))
    if t_write >= 120:
        warm = 0.2 * t_write
        thirds = [(warm + i * (t_write - warm) / 3,
                   warm + (i + 1) * (t_write - warm) / 3) for i in range(3)]

        def in_third(rows, i):
            a, b = thirds[i]
            return [x for x in rows if a <= x[0] < b] or [rows[-1]]
        r1 = max(x[1] for x in in_third(ws, 0))
        r3 = max(x[1] for x in in_third(ws, 2))
        slack = max(2048, r1 * 0.05)
        check(r3 <= r1 + slack, "rss after the warm-up (%.0f s): max of the "
              "last third %.1f MiB <= max of the first %.1f MiB + %.1f"
              % (warm, r3 / 1024.0, r1 / 1024.0, slack / 1024.0))
        q1 = max(x[1] for x in in_third(quiet, 0)) if quiet else 0
        q3 = max(x[1] for x in in_third(quiet, 2)) if quiet else 0
        check(q3 <= q1 + floating, "fds between bursts after the warm-up: "
              "max of the last third %d <= max of the first %d + %d"
              % (q3, q1, floating))
    else:
        print("soak: growth check skipped: %.0f s of writing (it needs "
              "120 s at least)" % t_write)

    d.stop(timeout=10)
    try:
        d.check_exit()
        check(True, "the daemon exited 0 on SIGTERM")
    except AssertionError as e:
        check(False, "the daemon's exit: %s" % e)
    finally:
        d._kill()
        d._tmp.cleanup()
    npass = sum(1 for ok, _ in checks if ok)
    print("%d passed, %d failed" % (npass, len(checks) - npass))
    return 0 if npass == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
