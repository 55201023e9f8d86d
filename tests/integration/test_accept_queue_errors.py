#!/usr/bin/python3
"""A queue that cannot be opened is a clear error at start, not a crash:
strictmtad exits with a non-zero status (not a signal), says what is wrong
and where, and leaves no listener behind. Cases: a corrupted database
file, queue_directory that is a regular file, and a file system with no
room for the queue environment (a full 256 KB tmpfs; skipped when a
tmpfs cannot be mounted)."""

import os
import socket
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402


class AcceptQueueErrors(unittest.TestCase):

    def start_fails(self, d, what):
        """Runs strictmtad -c CONF in the foreground; it must exit by
        itself with a clear message. Returns the output."""
        # After the privilege drop the process is not dumpable, and
        # LeakSanitizer cannot run in it (a fatal error of its own at
        # exit): leaks are not checked on these error exits.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + \
            ":detect_leaks=0"
        try:
            p = subprocess.run([smta.program("strictmtad"), "-c", d.conf],
                               env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("%s: strictmtad kept running" % what)
        out = p.stdout.decode(errors="replace")
        self.assertGreater(p.returncode, 0,
                           "%s: exit status %d (a signal if negative):\n%s"
                           % (what, p.returncode, out))
        self.assertNotEqual(p.returncode, 0, out)
        self.assertTrue(out.strip(), "%s: no message" % what)
        self.assertNotRegex(out, r"(?i)AddressSanitizer|runtime error|"
                            r"segmentation|core dumped", out)
        with socket.socket() as s:
            s.settimeout(1)
            self.assertNotEqual(s.connect_ex((d.host, d.port)), 0,
                                "%s: something still listens" % what)
        smta.log("%s: exit %d: %s" % (what, p.returncode,
                                      out.strip().splitlines()[-1]))
        return out

    def test_corrupt_database(self):
        d = smta.Daemon("qerr-corrupt")
        self.addCleanup(d.cleanup)
        d.start()
        self.assertEqual(d.stop(), 0, d.log_text(20))
        victims = []
        for root, _dirs, files in os.walk(d.queue_dir):
            for f in files:
                path = os.path.join(root, f)
                if (f.startswith("log.") or f.startswith("__db.") or
                        "maildrop" in root or "private" in root or
                        not os.path.isfile(path) or f.endswith(".pid") or
                        os.path.getsize(path) < 4096):
                    continue
                victims.append(path)
        if not victims:
            self.skipTest("no database file found under %s" % d.queue_dir)
        for path in victims:
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.write(b"\xa5" * min(size, 8192))
        out = self.start_fails(d, "corrupt database")
        self.assertTrue(any(os.path.basename(v) in out or
                            os.path.dirname(v) in out or
                            d.queue_dir in out for v in victims),
                        "the message names the queue: %s" % out)

    def test_queue_directory_is_a_file(self):
        d = smta.Daemon("qerr-file")
        self.addCleanup(d.cleanup)
        with open(d.queue_dir, "w") as f:
            f.write("not a folder\n")
        out = self.start_fails(d, "queue_directory is a file")
        self.assertIn(d.queue_dir, out)

    def test_no_space_for_the_queue(self):
        d = smta.Daemon("qerr-nospace")
        self.addCleanup(d.cleanup)
        os.makedirs(d.queue_dir)
        p = smta.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755",
                      "tmpfs", d.queue_dir])
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" %
                          p.stderr.decode(errors="replace").strip())
        self.addCleanup(subprocess.run, ["umount", "-l", d.queue_dir],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        # Fill it: not a byte left for the database environment.
        try:
            with open(os.path.join(d.queue_dir, "filler"), "wb") as f:
                for _ in range(1024):
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
        self.start_fails(d, "no space for the queue")


if __name__ == "__main__":
    smta.main()
