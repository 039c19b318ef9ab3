#!/usr/bin/env python3
"""`user =` in [server]: started as root, the daemon binds its socket,
becomes that user, and only then opens its logs.  So a log path swapped for
a symlink to a root-only file, or a root-only file created later, is
reported ("Permission denied") and never served.  Root without `user`
warns; a user that does not exist stops the start with one line.

Most of this needs root (the tests skip otherwise).  The daemon runs from a
copy of the binary in the test's own directory, as test_unreadable.py does:
nobody may not be able to reach the build tree (under /root, say)."""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tsutil  # noqa: E402

ROOT = os.geteuid() == 0
SECRET = "root-only-secret-7c1f"
# How test_unreadable.py starts the daemon as nobody: what systemd's User=
# does, the daemon itself is not root.
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "--"]
WARNING = ("tailsse: warning: running as root; set user = in [server] to "
           "drop privileges")


def copy_binary(directory):
    """A copy of the binary that every user may run, in `directory` (made
    traversable).  Returns its path."""
    os.chmod(directory, 0o755)
    copy = os.path.join(directory, "tailsse")
    shutil.copy2(tsutil.tailsse_bin(), copy)
    os.chmod(copy, 0o755)
    return copy


def write_root_only(path, text):
    """Create path as root, mode 600 from the start (never readable by
    anyone else, not even for a moment), holding text."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def proc_ids(pid):
    """Uid, Gid and Groups of /proc/PID/status, as lists of ints."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in rest.split()]
    return out


def free_privileged_port():
    """A loopback port below 1024 that nothing listens on, or None."""
    for port in range(1023, 900, -1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return None


class CopyDaemon(tsutil.Daemon):
    """A Daemon run from a copy of the binary, with its directory open to
    every user (the logs in it are then subject to their own modes only).
    fixed_port: listen there instead of a free port of tsutil's choice."""

    fixed_port = None

    def _argv(self, port):
        argv = tsutil.Daemon._argv(self, port)
        argv[0] = copy_binary(self.dir)
        return argv

    def start(self):
        if self.fixed_port is None:
            return tsutil.Daemon.start(self)
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(
                self._argv(self.fixed_port), cwd=self.dir,
                env=tsutil.sanitizer_env(), stdin=subprocess.DEVNULL,
                stdout=errf, stderr=errf)
        self.port = self.fixed_port
        if self._wait_healthy():
            return self
        last = self.stderr()
        self._kill()
        self._tmp.cleanup()
        raise AssertionError("tailsse did not become healthy; stderr:\n%s"
                             % last)


def api_logs(d):
    r = d.get("/api/logs")
    assert r.status == 200, r
    return {entry["name"]: entry for entry in json.loads(r.text)}


def assert_never_served(test, c, what):
    """No event of stream c, within a second, carries the secret."""
    for ev in c.quiet_for(1.0):
        test.assertNotIn(SECRET, ev["data"] or "", what)
        test.assertIsNone(ev["event"], "%s: %r" % (what, ev))
    test.assertNotIn(SECRET.encode(), bytes(c.raw), what)


@unittest.skipUnless(ROOT, "needs root: it tests dropping root")
class DropToNobody(unittest.TestCase):
    def setUp(self):
        self.nobody = pwd.getpwnam("nobody")

    def daemon(self, **kw):
        server = {"user": "nobody"}
        server.update(kw.pop("server", {}))
        return CopyDaemon(server=server, **kw)

    def test_ids_and_streams(self):
        d = self.daemon(logs=["app"])
        d.write("app", "before start\n")
        with d:
            ids = proc_ids(d.proc.pid)
            uid, gid = self.nobody.pw_uid, self.nobody.pw_gid
            self.assertEqual(ids["Uid"], [uid] * 4, ids)
            self.assertEqual(ids["Gid"], [gid] * 4, ids)
            # initgroups: nobody's own groups, none of root's
            self.assertEqual(sorted(ids["Groups"]),
                             sorted(set(os.getgrouplist("nobody", gid))),
                             ids)
            self.assertNotIn(WARNING, d.stderr())
            self.assertTrue(api_logs(d)["app"]["exists"])
            c = d.stream("app", tail=1)
            self.assertEqual(c.next_message()["data"], "before start")
            d.write("app", "after start\n")
            self.assertEqual(c.next_message()["data"], "after start")

    def test_symlink_to_root_only_file(self):
        # What an attacker who can write the log's directory does: replace
        # the log with a symlink to a file only root may read.
        d = self.daemon(logs=["app", "shadow"], missing=["shadow"])
        secret = os.path.join(d.dir, "secret")
        write_root_only(secret, "%s line 1\n" % SECRET)
        os.symlink(secret, d.path("shadow"))
        d.write("app", "harmless\n")
        with d:
            logs = api_logs(d)
            self.assertFalse(logs["shadow"]["exists"], logs)
            self.assertEqual(logs["shadow"].get("error"),
                             "Permission denied", logs)
            self.assertNotIn("error", logs["app"])
            c = d.stream("shadow", tail=100)  # opens and waits
            with open(secret, "a") as f:
                f.write("%s line 2\n" % SECRET)
            assert_never_served(self, c, "symlink to a root-only file")
            self.assertEqual(api_logs(d)["shadow"].get("error"),
                             "Permission denied")
            self.assertNotIn(SECRET, d.stderr())

    def test_root_only_file_created_after_start(self):
        d = self.daemon(logs=["late"], missing=["late"])
        with d:
            self.assertNotIn("error", api_logs(d)["late"])
            c = d.stream("late", tail=100)
            write_root_only(d.path("late"), "%s created\n" % SECRET)
            self.assertTrue(tsutil.wait_for(
                lambda: api_logs(d)["late"].get("error")
                == "Permission denied", timeout=5),
                api_logs(d))
            with open(d.path("late"), "a") as f:
                f.write("%s appended\n" % SECRET)
            assert_never_served(self, c, "root-only file created later")
            self.assertFalse(api_logs(d)["late"]["exists"])

    def test_reload_keeps_a_root_only_token(self):
        # The token file is root's alone, read at start; after the drop a
        # reload cannot read it again: the token read at start stays (said
        # in a line), and the rest of the reload (a new log) applies.
        d = self.daemon(logs=["app"])
        tok = os.path.join(d.dir, "token")
        write_root_only(tok, "%s\n" % SECRET)
        d.server["token_file"] = tok
        with d:
            auth = {"Authorization": "Bearer " + SECRET}
            self.assertEqual(d.get("/api/logs").status, 401)
            d.logs.append("more")
            line = d.reload()
            self.assertTrue(line.startswith("tailsse: reloaded"), line)
            self.assertIn("the token read before stays", d.stderr())
            self.assertEqual(d.get("/api/logs").status, 401)
            names = json.loads(d.get("/api/logs", headers=auth).body)
            self.assertEqual([x["name"] for x in names], ["app", "more"])
            self.assertNotIn(SECRET, d.stderr())

    def test_binds_privileged_port_then_drops(self):
        # The socket is bound while still root: a port below 1024 works.
        port = free_privileged_port()
        if port is None:
            self.skipTest("no free port below 1024 on 127.0.0.1")
        d = self.daemon(logs=["app"])
        d.fixed_port = port
        with d:
            self.assertEqual(proc_ids(d.proc.pid)["Uid"][0],
                             self.nobody.pw_uid)
            self.assertEqual(d.get("/healthz").status, 200)


@unittest.skipUnless(ROOT, "needs root")
class RootWithoutUser(unittest.TestCase):
    def test_warns_once(self):
        with CopyDaemon(logs=["app"]) as d:
            self.assertEqual(proc_ids(d.proc.pid)["Uid"], [0] * 4)
            lines = d.stderr().splitlines()
            self.assertEqual(lines.count(WARNING), 1, d.stderr())


class Refused(unittest.TestCase):
    """Start-up errors of `user =`: exit 1 with one line naming the key."""

    def setUp(self):
        self.d = CopyDaemon(logs=["app"])  # for its directory and argv

    def tearDown(self):
        self.d._tmp.cleanup()

    def conf(self, user):
        self.d.server = {"user": user}
        self.d.use_config = True
        return self.d._argv(tsutil.free_port())

    def run_argv(self, argv, prefix=()):
        try:
            cp = subprocess.run(list(prefix) + argv, cwd=self.d.dir,
                                env=tsutil.sanitizer_env(),
                                stdin=subprocess.DEVNULL,
                                capture_output=True, text=True,
                                errors="replace", timeout=10)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("tailsse did not exit: %s" % e.stderr)
        self.assertIsNone(tsutil.sanitizer_problem(cp.stderr), cp.stderr)
        return cp

    def assert_refused(self, cp, *words):
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 1, cp.stderr)
        for w in words:
            self.assertIn(w, lines[0])
        return lines[0]

    def test_no_such_user(self):
        argv = self.conf("nosuchuser")
        line = self.assert_refused(self.run_argv(argv),
                                   "user = nosuchuser: no such user")
        self.assertEqual(line, "tailsse: user = nosuchuser: no such user")
        # --check-config says the same, wherever it runs
        cp = self.run_argv(argv[:1] + ["--check-config"] + argv[1:])
        self.assert_refused(cp, "user = nosuchuser: no such user")

    def test_uid_0_is_no_drop(self):
        argv = self.conf("root")
        self.assert_refused(self.run_argv(argv), "user = root:", "uid 0")
        cp = self.run_argv(argv[:1] + ["--check-config"] + argv[1:])
        self.assert_refused(cp, "user = root:", "uid 0")

    @unittest.skipUnless(ROOT and shutil.which("setpriv"),
                         "needs root and setpriv to start as nobody")
    def test_not_root(self):
        other = pwd.getpwuid(1).pw_name  # daemon, on Debian
        self.assert_refused(self.run_argv(self.conf(other), AS_NOBODY),
                            "user = %s: not running as root, cannot "
                            "switch users" % other)

    @unittest.skipUnless(ROOT and shutil.which("setpriv"),
                         "needs root and setpriv to start as nobody")
    def test_not_root_already_that_user(self):
        # Started as the configured user (systemd's User=): nothing to do.
        class AsNobody(CopyDaemon):
            def _argv(self, port):
                return AS_NOBODY + CopyDaemon._argv(self, port)

        d = AsNobody(logs=["app"], server={"user": "nobody"})
        d.write("app", "hello\n")
        with d:
            self.assertEqual(proc_ids(d.proc.pid)["Uid"], [65534] * 4)
            self.assertEqual(d.stream("app", tail=1).next_message()["data"],
                             "hello")
            self.assertNotIn(WARNING, d.stderr())


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
