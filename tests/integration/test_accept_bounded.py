#!/usr/bin/python3
"""Bounded work (issue 9): one local user's huge submission cannot take
the daemon down.

- `sendmail -t` with a To: line naming 20,000 domains (300 KB), run as
  nobody: refused with a clear message naming smtpd_recipient_limit, exit
  65, nothing written to the maildrop.
- A message at the limit (1,000 recipients at 1,000 domains) is delivered
  to a loopback sink through transport_maps while the control socket
  keeps answering (figure: p50 and max of `strictmta queue stats`, bound
  2 s) and the daemon's memory stays bounded (figure: VmRSS).
- SIGTERM in the middle of such a delivery: the daemon exits within
  seconds (bound 10 s), and after a restart every recipient arrives
  (duplicates allowed, losses not).

The sendmail here runs as nobody holding the maildrop group (setpriv), the
same access the setgid binary gives (its setgid side is tested in
test_accept_sendmail)."""

import grp
import os
import pwd
import statistics
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

SINK = "127.31.0.3"
LIMIT = 1000
EX_DATAERR = 65
CONTROL_BOUND_S = 2.0
SIGTERM_BOUND_S = 10.0


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def message(n, tag):
    rcpts = ", ".join("u%d@d%d.bulk.test" % (i, i) for i in range(n))
    return ("From: nobody@strictmta.test\nTo: %s\nSubject: %s\n\n"
            "one message for %d domains\n" % (rcpts, tag, n)).encode()


class Bounded(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        try:
            cls.gid = grp.getgrnam("strictmtadrop").gr_gid
            cls.nobody = pwd.getpwnam("nobody")
        except KeyError as e:
            raise unittest.SkipTest("missing user or group (run "
                                    "tests/install-deps): %s" % e)
        cls.sink = smta.Sink(SINK)
        cls.sink.start()
        cls.d = smta.Daemon("bounded", {
            "mydomain": "strictmta.test",
            "smtpd_recipient_limit": str(LIMIT),
        })
        with open(cls.d.params["transport_maps"], "a") as f:
            f.write(".bulk.test [%s]:%d\n" % (SINK, cls.sink.port))
        try:
            cls.d.start()
        except BaseException:
            cls.d.cleanup()
            cls.sink.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            cls.d.cleanup()
        cls.sink.stop()

    def tearDown(self):
        if smta.test_failed(self):
            smta.log("---- strictmtad log ----\n" + self.d.log_text(60))

    def sendmail(self, args, stdin):
        cmd = ["setpriv", "--reuid", str(self.nobody.pw_uid), "--regid",
               str(self.nobody.pw_gid), "--groups", str(self.gid),
               smta.program("sendmail"), "-C", self.d.conf] + args
        return subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=120, cwd="/")

    def maildrop_files(self):
        md = os.path.join(self.d.queue_dir, "maildrop")
        return [f for f in os.listdir(md) if not f.startswith(".")]

    def arrived(self, tag):
        with self.sink.lock:
            return set(r for r in self.sink.rcpts), sum(
                1 for m in self.sink.messages if tag.encode() in m)

    def test_1_twenty_thousand_domains_refused(self):
        msg = message(20000, "huge")
        t0 = time.time()
        p = self.sendmail(["-t", "-i"], msg)
        took = time.time() - t0
        err = p.stderr.decode(errors="replace").strip()
        print("sendmail -t, %d KB To: line with 20,000 domains: exit %d "
              "in %.2f s: %s" % (len(msg) // 1024, p.returncode, took, err))
        self.assertEqual(p.returncode, EX_DATAERR, err)
        self.assertIn("too many recipients: more than %d "
                      "(smtpd_recipient_limit); nothing was sent" % LIMIT,
                      err)
        self.assertEqual(self.maildrop_files(), [])
        # The daemon did not notice: it answers at once.
        t0 = time.time()
        self.assertEqual(self.d.cli("queue", "stats").returncode, 0)
        self.assertLess(time.time() - t0, CONTROL_BOUND_S)

    def test_2_at_the_limit_delivered_control_answers(self):
        before = set(self.sink.rcpts)
        rss0 = rss_kb(self.d.proc.pid)
        p = self.sendmail(["-t", "-i"], message(LIMIT, "at-limit"))
        self.assertEqual(p.returncode, 0, p.stderr)
        want = set("u%d@d%d.bulk.test" % (i, i) for i in range(LIMIT))
        lat = []
        rss_max = rss0
        t0 = time.time()
        while time.time() - t0 < 180:
            t1 = time.time()
            r = self.d.cli("queue", "stats")
            lat.append(time.time() - t1)
            self.assertEqual(r.returncode, 0, r.stderr)
            rss_max = max(rss_max, rss_kb(self.d.proc.pid))
            got, _ = self.arrived("at-limit")
            if want <= got - before or want <= got:
                break
            time.sleep(0.2)
        took = time.time() - t0
        got, _ = self.arrived("at-limit")
        print("1,000 recipients at 1,000 domains: %d delivered in %.1f s; "
              "queue stats p50 %.0f ms, max %.0f ms (bound %.0f ms), %d "
              "asked; VmRSS %d -> max %d KB"
              % (len(want & got), took, statistics.median(lat) * 1000,
                 max(lat) * 1000, CONTROL_BOUND_S * 1000, len(lat), rss0,
                 rss_max))
        self.assertEqual(want - got, set())
        self.assertLess(max(lat), CONTROL_BOUND_S)
        # AddressSanitizer's shadow memory and quarantine multiply it.
        with open(smta.program("strictmtad"), "rb") as f:
            asan = b"__asan_init" in f.read()
        self.assertLess(rss_max - rss0, (800 if asan else 200) * 1024)

    def test_3_sigterm_under_load_then_nothing_lost(self):
        with self.sink.lock:
            self.sink.rcpts.clear()
        sessions0 = self.sink.sessions
        p = self.sendmail(["-t", "-i"], message(LIMIT, "sigterm"))
        self.assertEqual(p.returncode, 0, p.stderr)
        # In the middle of the delivery: some sessions made, not all.
        smta.wait_for(lambda: self.sink.sessions - sessions0 >= 50, 60,
                      0.02)
        t0 = time.time()
        rc = self.d.stop(timeout=60)
        took = time.time() - t0
        got, _ = self.arrived("sigterm")
        print("SIGTERM with %d of 1,000 recipients delivered: exit %s "
              "after %.2f s (bound %.0f s)" % (len(got), rc, took,
                                                 SIGTERM_BOUND_S))
        self.assertEqual(rc, 0)
        self.assertLess(took, SIGTERM_BOUND_S)
        self.d.start()
        want = set("u%d@d%d.bulk.test" % (i, i) for i in range(LIMIT))
        ok = smta.wait_for(lambda: want <= self.arrived("sigterm")[0], 180,
                           0.5)
        got, _ = self.arrived("sigterm")
        print("after the restart: %d of 1,000 recipients arrived" %
              len(want & got))
        self.assertTrue(ok, "missing: %d" % len(want - got))


if __name__ == "__main__":
    smta.main()
