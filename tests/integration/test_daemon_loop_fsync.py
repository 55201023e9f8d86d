#!/usr/bin/python3
"""Nothing blocks the event loop on the disk (issue 8): strictmtad runs
under `strace -f -e trace=fsync,fdatasync,...` while it accepts mail over
SMTP, delivers it to a loopback sink, defers some, queues non-delivery
DSNs, and the admin flushes, holds, deletes and checkpoints; afterwards not one of those calls came from the loop
thread (the main thread, whose TID is the daemon's PID). The figure
printed: how many syncs each thread made.

Start-up (before the control socket answers) and shutdown are not
counted: the loop is not serving anyone then."""

import os
import re
import shutil
import smtplib
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

SINK = "127.31.0.4"
SYNC_CALLS = "fsync,fdatasync,msync,sync_file_range,syncfs,sync"


class LoopNeverSyncs(unittest.TestCase):
    def stop(self, d, pid):
        """SIGTERM to the daemon (strace's child) by PID; strace exits
        with it. Returns the daemon's exit status as strace reports."""
        os.kill(pid, 15)
        try:
            rc = d.proc.wait(30)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            rc = d.proc.wait(10)
        d.proc = None
        if d.logf:
            d.logf.close()
            d.logf = None
        return rc

    def test_loop_thread_makes_no_sync_call(self):
        if shutil.which("strace") is None:
            self.skipTest("strace is not installed (tests/install-deps)")
        sink = smta.Sink(SINK)
        sink.start()
        self.addCleanup(sink.stop)
        d = smta.Daemon("loop-fsync", {"queue_run_delay": "1s",
                                       "minimal_backoff_time": "1s"})
        self.addCleanup(d.cleanup)
        with open(d.params["transport_maps"], "a") as f:
            f.write("sink.test [%s]:%d\n" % (SINK, sink.port))
        trace = os.path.join(d.dir, "strace.out")
        # Daemon.start, with strace in front of the program.
        d.logf = open(d.log_path, "ab")
        # LeakSanitizer cannot run under ptrace: leaks are the other
        # tests' business here.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + \
            ":detect_leaks=0"
        d.proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-e", "trace=" + SYNC_CALLS, "-o",
             trace, smta.program("strictmtad"), "-c", d.conf],
            stdin=subprocess.DEVNULL, stdout=d.logf, stderr=d.logf,
            env=env)
        self.assertTrue(smta.wait_port(d.host, d.port, 30,
                                       alive=lambda: d.proc.poll() is None),
                        d.log_text())
        self.assertTrue(smta.wait_for(
            lambda: d.cli("queue", "stats").returncode == 0, 30))
        # strace's PID is d.proc.pid; the daemon is its only child.
        pid = int(subprocess.run(["pgrep", "-P", str(d.proc.pid)],
                                 capture_output=True).stdout.split()[0])
        self.addCleanup(lambda: d.proc is not None and self.stop(d, pid))
        with open(trace) as f:
            start = len(f.read())

        n = 60
        s = smtplib.SMTP(d.host, d.port, timeout=30)
        for i in range(n):
            rcpts = ["user%d@sink.test" % i]
            if i % 10 == 0:
                rcpts.append("reject%d@sink.test" % i)  # a DSN
            if i % 15 == 0:
                rcpts.append("later%d@example.org" % i)  # deferred
            s.sendmail("sender@sink.test", rcpts,
                       smta.make_message("fsync-%d" % i, rcpt=rcpts[0]))
        s.quit()
        ok = smta.wait_for(lambda: len(sink.messages) >= n + 6, 60)
        self.assertTrue(ok, "delivered %d of %d (+6 DSNs); log:\n%s" %
                        (len(sink.messages), n + 6, d.log_text(40)))
        time.sleep(2)  # the last writes and the deferrals' retry
        # The admin's changes sync the queue too, but not on the loop.
        for args in (("queue", "flush"), ("queue", "hold") +
                     tuple(d.queue_ids()), ("queue", "stats"),
                     ("queue", "delete", "--all"), ("queue", "checkpoint")):
            r = d.cli(*args)
            self.assertEqual(r.returncode, 0, (args, r.stderr))
        # Up to here: the shutdown may flush on the main thread once the
        # loop has stopped serving.
        with open(trace) as f:
            text = f.read()[start:]
        self.assertEqual(self.stop(d, pid), 0)
        per_tid = {}
        loop_calls = []
        for line in text.splitlines():
            m = re.match(r"^(\d+)\s+(\w+)\(", line)
            if not m:
                continue
            tid = int(m.group(1))
            per_tid[tid] = per_tid.get(tid, 0) + 1
            if tid == pid:
                loop_calls.append(line)
        dsns = sum(1 for m in sink.messages
                   if b"Content-Type: multipart/report" in m)
        print("syncs after start-up, per thread: %s (loop thread %d: %d); "
              "%d messages delivered, %d DSNs" %
              (per_tid, pid, len(loop_calls), n, dsns))
        self.assertGreater(sum(per_tid.values()), 0,
                           "the writer thread syncs: strace saw nothing?")
        self.assertEqual(dsns, 6)
        self.assertEqual(loop_calls, [], "\n".join(loop_calls[:10]))


if __name__ == "__main__":
    smta.main()
