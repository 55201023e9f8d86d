#!/usr/bin/python3
"""A full disk while accepting: the queue lives on a small tmpfs; messages
of 1 MB are sent until the daemon refuses one with 452 4.3.1 (at MAIL
with SIZE, or at the end of DATA). The daemon keeps running, and every
message it acknowledged before is still in the queue, byte for byte.
Skipped when a tmpfs cannot be mounted here."""

import os
import shutil
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

TMPFS_SIZE = "48m"
MSG_LINES = 13000  # 80 bytes a line: about 1 MB


class AcceptDiskFull(unittest.TestCase):

    def test_full_disk_gives_452_and_loses_nothing(self):
        if not smta.dump_tool("dump"):
            self.skipTest("db5.3-util is not installed (tests/install-deps)")
        d = smta.Daemon("diskfull", {"queue_minfree": "1048576",
                                     "message_size_limit": "2000000"})
        self.addCleanup(d.cleanup)
        os.makedirs(d.queue_dir)
        p = smta.run(["mount", "-t", "tmpfs", "-o",
                      "size=%s,mode=0755" % TMPFS_SIZE, "tmpfs",
                      d.queue_dir])
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" %
                          p.stderr.decode(errors="replace").strip())
        self.addCleanup(subprocess.run, ["umount", "-l", d.queue_dir],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        # d.cleanup (registered first) runs last: stop, unmount, remove.
        self.addCleanup(d.stop)
        d.start()
        sent = {}
        refused = None
        for i in range(200):
            token = "full-%d" % i
            body = "".join("%-78s\r\n" % ("%s line %d" % (token, j))
                           for j in range(MSG_LINES)).encode()
            content = smta.make_message(token, body_lines=0,
                                        rcpt="full@example.org") + body
            c = d.smtp()
            try:
                smta.greeted(c)
                c.ehlo()
                code, text = c.cmd("MAIL FROM:<full@strictmta.test> "
                                   "SIZE=%d" % len(content))
                if code != 250:
                    refused = (code, text, "MAIL")
                    break
                code, text = c.cmd("RCPT TO:<full@example.org>")
                self.assertEqual(code, 250, text)
                code, text = c.cmd("DATA")
                self.assertEqual(code, 354, text)
                c.send(smta.dot_stuff(content) + b".\r\n")
                code, text = c.reply()
                if code == 250:
                    qid = smta.QID_RE.search(text)
                    self.assertIsNotNone(qid, text)
                    sent[qid.group(1)] = content
                    continue
                refused = (code, text, "end of DATA")
                break
            finally:
                c.close()
        self.assertIsNotNone(refused, "the disk never filled up")
        smta.log("refused after %d messages at %s: %d %s" %
                 (len(sent), refused[2], refused[0], refused[1]))
        self.assertEqual(refused[0], 452, refused)
        self.assertTrue(refused[1].startswith("4.3.1"), refused)
        self.assertGreater(len(sent), 0, "nothing fit at all")
        self.assertTrue(d.running(), "the daemon survives a full disk")
        # A new session still gets a greeting and a clean refusal.
        c = d.smtp()
        self.addCleanup(c.close)
        smta.greeted(c)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        listed = set(d.queue_ids())
        self.assertEqual(sorted(set(sent) - listed), [],
                         "acknowledged messages missing from the queue")
        self.assertEqual(d.stop(), 0, d.log_text(30))
        contents = d.contents()
        bad = [q for q, content in sent.items()
               if smta.split_added_headers(contents.get(q, b""),
                                           content) is None]
        self.assertEqual(bad, [], "stored content differs")


if __name__ == "__main__":
    smta.main()
