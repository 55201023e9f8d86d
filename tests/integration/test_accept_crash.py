#!/usr/bin/python3
"""Crash safety of the queue: many concurrent SMTP submissions (threads
with smtplib), `kill -9` of strictmtad at a random moment, restart (Berkeley
DB recovery); every message that got its 250 must be in the queue with its
recipient and its content byte for byte (only header lines such as
Received: put in front), and nothing stored may be corrupt. Three rounds
on one queue.

Contents are read with Berkeley DB's own db5.3_dump after a clean stop
(tests/lib/smta.py dump_contents)."""

import os
import random
import re
import smtplib
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

ROUNDS = 3
WORKERS = 12
TOKEN_RE = re.compile(rb"Subject: test (crash-r\d+-(?:w\d+-\d+|s\d+))\r\n")


class Submitter:
    """Threads sending messages until stopped; records what was sent and
    what was acknowledged."""

    def __init__(self, d, rnd):
        self.d = d
        self.round = rnd
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = {}    # token -> (rcpt, content) for every attempt
        self.acked = {}   # qid -> token
        self.errors = []
        self.dropped = {}  # token -> content, sendmail exited 0
        self.threads = [threading.Thread(target=self.worker, args=(w,),
                                         daemon=True)
                        for w in range(WORKERS)]
        self.threads.append(threading.Thread(target=self.sendmail_worker,
                                             daemon=True))

    def start(self):
        for t in self.threads:
            t.start()

    def join(self, timeout=60):
        return smta.join_all(self.threads, self.stop, timeout)

    def worker(self, w):
        rng = random.Random(w * 7919 + self.round)
        i = 0
        while not self.stop.is_set():
            try:
                s = smtplib.SMTP(self.d.host, self.d.port, timeout=10,
                                 source_address=(smta.DAEMON_HOST, 0))
            except OSError:
                time.sleep(0.05)
                continue
            try:
                s.ehlo("crash-%d.strictmta.test" % w)
                # A few messages per session, then a new connection.
                for _ in range(rng.randint(1, 5)):
                    if self.stop.is_set():
                        break
                    token = "crash-r%d-w%d-%d" % (self.round, w, i)
                    i += 1
                    rcpt = token + "@example.org"
                    content = smta.make_message(
                        token, body_lines=rng.choice((1, 5, 40, 400)),
                        rcpt=rcpt)
                    with self.lock:
                        self.sent[token] = (rcpt, content)
                    s.mail("crash@strictmta.test")
                    code, _ = s.rcpt(rcpt)
                    if code != 250:
                        continue
                    code, text = s.data(content)
                    if code == 250:
                        m = smta.QID_RE.search(text.decode(errors="replace"))
                        if not m:
                            with self.lock:
                                self.errors.append("250 without queue ID: "
                                                   "%r" % text)
                            continue
                        with self.lock:
                            self.acked[m.group(1)] = token
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                try:
                    s.close()
                except OSError:
                    pass


    def sendmail_worker(self):
        """Local submissions through the maildrop at the same time: the
        daemon may die in the middle of an import."""
        exe = smta.program("sendmail")
        i = 0
        while not self.stop.is_set():
            token = "crash-r%d-s%d" % (self.round, i)
            i += 1
            content = smta.make_message(token, body_lines=20,
                                        rcpt=token + "@example.org")
            try:
                p = subprocess.run([exe, "-C", self.d.conf, "-i",
                                    token + "@example.org"], input=content,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=30)
            except subprocess.TimeoutExpired:
                continue
            if p.returncode == 0:
                with self.lock:
                    self.dropped[token] = content


class AcceptCrash(unittest.TestCase):

    def test_kill9_loses_nothing_acknowledged(self):
        if not smta.dump_tool("dump"):
            self.skipTest("db5.3-util is not installed (tests/install-deps)")
        d = smta.Daemon("crash", {
            "smtpd_connection_limit": "500",
            "smtpd_client_connection_count_limit": "500",
        })
        self.addCleanup(d.cleanup)
        rng = random.Random(int(os.environ.get("STRICTMTA_CRASH_SEED",
                                               str(int(time.time())))))
        sent = {}
        acked = {}
        dropped = {}
        for rnd in range(ROUNDS):
            d.start()
            sub = Submitter(d, rnd)
            sub.start()
            # Let some messages through, then kill at a random moment.
            smta.wait_for(lambda: len(sub.acked) >= 5, 30)
            time.sleep(rng.uniform(0.0, 2.0))
            d.kill9()
            self.assertTrue(sub.join(60), "submitters did not stop")
            sent.update(sub.sent)
            acked.update(sub.acked)
            dropped.update(sub.dropped)
            self.assertEqual(sub.errors, [])
            smta.log("round %d: %d attempted, %d acknowledged, killed; "
                     "restarting" % (rnd, len(sub.sent), len(sub.acked)))
            self.assertGreater(len(sub.acked), 0, "nothing was accepted")
            # Restart: recovery, and every acknowledged message is there.
            try:
                d.start()
            except AssertionError as e:
                self.fail("restart after kill -9 failed: %s" % e)
            listed = {m["qid"]: m for m in d.queue_list()}
            missing = sorted(q for q in acked if q not in listed)
            self.assertEqual(missing, [],
                             "round %d: acknowledged but lost: %s" %
                             (rnd, missing[:20]))
            for qid, token in acked.items():
                rcpt = sent[token][0]
                self.assertEqual(listed[qid]["recipients"], [rcpt],
                                 "%s: recipients" % qid)
            # The maildrop is imported (what was interrupted, once).
            md = os.path.join(d.queue_dir, "maildrop")
            self.assertTrue(smta.wait_for(
                lambda: not [f for f in os.listdir(md)
                             if not f.startswith(".")], 30),
                "maildrop not imported after restart")
            self.assertEqual(d.stop(), 0, d.log_text())
        # Byte comparison of every stored message.
        contents = d.contents()
        problems = []
        for token, content in sorted(dropped.items()):
            found = smta.find_by_token(contents, "Subject: test %s\r\n" %
                                       token)
            if len(found) != 1:
                problems.append("sendmail %s: %d copies in the queue" %
                                (token, len(found)))
                continue
            body = content.split(b"\r\n\r\n", 1)[1]
            if not contents[found[0]].endswith(b"\r\n\r\n" + body):
                problems.append("sendmail %s: body differs" % token)
        smta.log("%d sendmail submissions, all imported once: %s" %
                 (len(dropped), not [p for p in problems
                                     if p.startswith("sendmail")]))
        for qid, token in sorted(acked.items()):
            stored = contents.get(qid)
            if stored is None:
                problems.append("%s (%s): no content" % (qid, token))
                continue
            if smta.split_added_headers(stored, sent[token][1]) is None:
                problems.append("%s (%s): content differs" % (qid, token))
        for qid, stored in sorted(contents.items()):
            m = TOKEN_RE.search(stored)
            if m and m.group(1).decode() in dropped:
                continue
            if m and "-s" in m.group(1).decode():
                # A local submission whose sendmail was cut off by the
                # kill? It exited non-zero, so it may or may not be here.
                continue
            if not m or m.group(1).decode() not in sent:
                problems.append("%s: unknown or corrupt content %r" %
                                (qid, stored[:120]))
                continue
            if smta.split_added_headers(
                    stored, sent[m.group(1).decode()][1]) is None:
                problems.append("%s: stored content corrupt" % qid)
        smta.log("%d acknowledged, %d stored in all" %
                 (len(acked), len(contents)))
        self.assertEqual(problems, [], "\n".join(problems[:30]))


if __name__ == "__main__":
    smta.main()
