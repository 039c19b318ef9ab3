#!/usr/bin/env python3
"""A log file the daemon may not read is reported in /api/logs and retried:
once it becomes readable, its streams start (reset created), without a
restart.  As root, the daemon runs as nobody (setpriv) so that file modes
bite."""

import json
import os
import shutil
import sys
import time
import unittest

import tsutil


class NobodyDaemon(tsutil.Daemon):
    def _argv(self, port):
        argv = tsutil.Daemon._argv(self, port)
        if os.geteuid() == 0:
            # nobody may not reach the build tree (under /root, say): run a
            # copy of the binary from the test's own directory
            os.chmod(self.dir, 0o755)
            copy = os.path.join(self.dir, "tailsse")
            shutil.copy2(argv[0], copy)
            os.chmod(copy, 0o755)
            argv = ["setpriv", "--reuid=65534", "--regid=65534",
                    "--clear-groups", "--", copy] + argv[1:]
        return argv


@unittest.skipIf(os.geteuid() == 0 and not shutil.which("setpriv"),
                 "needs setpriv to drop root")
class Unreadable(unittest.TestCase):
    def test_reported_and_retried(self):
        d = NobodyDaemon(logs=["app", "ok"])
        d.write("app", "secret line\n")
        os.chmod(d.path("app"), 0o600 if os.geteuid() == 0 else 0)
        with d:
            logs = {l["name"]: l for l in json.loads(d.get("/api/logs").text)}
            self.assertFalse(logs["app"]["exists"])
            self.assertIn("ermission", logs["app"].get("error", ""))
            self.assertTrue(logs["ok"]["exists"])
            self.assertNotIn("error", logs["ok"])
            c = d.stream("app")  # opens and waits
            os.chmod(d.path("app"), 0o644)
            ev = c.read_until(lambda e: e["event"] == "reset", timeout=5)[-1]
            self.assertEqual(tsutil.reset_reason(ev), "created")
            d.write("app", "now readable\n")
            # as for a file that appears: from its start
            self.assertEqual(c.next_message(timeout=5)["data"],
                             "secret line")
            self.assertEqual(c.next_message(timeout=5)["data"],
                             "now readable")
            logs = {l["name"]: l for l in json.loads(d.get("/api/logs").text)}
            self.assertTrue(logs["app"]["exists"])
            self.assertNotIn("error", logs["app"])


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    tsutil.report(prog.result)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
