#!/usr/bin/python3
"""`strictmta queue checkpoint` (issue 8): after a flood left the queue,
the admin asks for a checkpoint; the log files no longer needed are gone
and the database files are compacted, done on the daemon's writer thread
while the listener keeps answering. Figures printed: log files and bytes
of the queue's db/ before and after."""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402


def db_figures(queue_dir):
    db = os.path.join(queue_dir, "db")
    logs = [f for f in os.listdir(db) if f.startswith("log.")]
    size = sum(os.path.getsize(os.path.join(db, f)) for f in os.listdir(db)
               if f.endswith(".db"))
    return len(logs), size


class QueueCheckpoint(unittest.TestCase):
    def test_checkpoint_on_request(self):
        d = smta.Daemon("checkpoint")
        self.addCleanup(d.cleanup)
        d.start()
        n = 2000
        p = smta.smtp_source(d.host, d.port, n, sessions=10, size=5000)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(smta.wait_for(
            lambda: len(d.queue_ids()) >= n, 60), "queued %d" %
            len(d.queue_ids()))
        # A first checkpoint writes the pages out: the files now hold
        # the flood.
        r = d.cli("queue", "checkpoint")
        self.assertEqual(r.returncode, 0, r.stderr)
        full = db_figures(d.queue_dir)[1]
        r = d.cli("queue", "delete", "--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        logs0, size0 = db_figures(d.queue_dir)
        t0 = time.time()
        r = d.cli("queue", "checkpoint")
        took = time.time() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"queue checkpointed", r.stdout)
        # The listener answered all along (the work is off the loop).
        c = d.smtp()
        self.addCleanup(c.close)
        smta.greeted(c)
        logs1, size1 = db_figures(d.queue_dir)
        print("queue checkpoint after %d messages deleted: %.2f s; log "
              "files %d -> %d; db files %d KB full, %d KB after" %
              (n, took, logs0, logs1, full // 1024, size1 // 1024))
        self.assertLessEqual(logs1, 2)
        self.assertLessEqual(logs1, logs0)
        self.assertLess(size1, full // 10)
        self.assertIn("control: uid 0: queue checkpoint", d.log_text(50))
        r = d.cli("queue", "checkpoint", "extra")
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    smta.main()
