#!/usr/bin/python3
"""Accepting mail over SMTP from real clients: swaks, Python's smtplib,
Postfix's smtp-source; pipelining (RFC 2920); relay permission by client
address; malformed commands and limits get the right replies.

One strictmtad (plain listener on 127.30.0.1, mynetworks 127.30.0.1/32
and 127.0.0.1/32)
serves the whole file; a client bound to 127.30.0.99 is outside
mynetworks."""

import os
import shutil
import smtplib
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402


class AcceptSmtp(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = smta.Daemon("smtp", {
            # smtp-source cannot choose its source address: 127.0.0.1.
            "mynetworks": "127.30.0.1/32 127.0.0.1/32",
            "message_size_limit": "200000",
            "smtpd_recipient_limit": "100",
            "smtpd_client_connection_count_limit": "20",
            "smtpd_timeout": "3s",
            "smtpd_hard_error_limit": "100",
        })
        try:
            cls.d.start()
        except BaseException:
            cls.d.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            rc = cls.d.stop()
            log = cls.d.log_text(40)
            cls.d.cleanup()
            if rc not in (0, None):
                raise AssertionError("strictmtad exited %s on SIGTERM; "
                                     "log:\n%s" % (rc, log))

    def tearDown(self):
        # A test that failed leaves the daemon's recent log in the output.
        if smta.test_failed(self):
            smta.log("---- strictmtad log ----\n" + self.d.log_text(60))

    def conn(self, bind=smta.DAEMON_HOST):
        c = self.d.smtp(bind=bind)
        self.addCleanup(c.close)
        smta.greeted(c)
        return c

    def queued_with(self, rcpt, n=1, timeout=20):
        msgs = self.d.wait_queue(
            lambda l: len([m for m in l if rcpt in m["recipients"]]) >= n,
            timeout)
        return [m for m in msgs if rcpt in m["recipients"]]

    # -- real clients -----------------------------------------------------

    def test_swaks(self):
        swaks = shutil.which("swaks")
        if not swaks:
            self.skipTest("swaks not installed")
        p = smta.run([swaks, "--server", "%s:%d" % (self.d.host, self.d.port),
                      "--from", "swaks@strictmta.test",
                      "--to", "swaks-rcpt@example.org",
                      "--helo", "swaks.strictmta.test",
                      "--local-interface", smta.DAEMON_HOST,
                      "--header", "Subject: swaks test",
                      "--body", "hello from swaks"], timeout=60)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertRegex(out, r"<[-~]  250 2\.0\.0 ")
        qid = smta.QID_RE.search(out.split("  354 ")[-1])
        msgs = self.queued_with("swaks-rcpt@example.org")
        self.assertEqual(len(msgs), 1, msgs)
        self.assertEqual(msgs[0]["sender"], "swaks@strictmta.test")
        if qid:
            self.assertEqual(msgs[0]["qid"], qid.group(1),
                             "the 250 reply names the queue ID")

    def test_smtplib(self):
        s = smtplib.SMTP(self.d.host, self.d.port, timeout=15,
                         source_address=(smta.DAEMON_HOST, 0))
        self.addCleanup(s.close)
        code, ehlo = s.ehlo("smtplib.strictmta.test")
        self.assertEqual(code, 250)
        for ext in ("pipelining", "size", "8bitmime", "smtputf8",
                    "enhancedstatuscodes", "dsn"):
            self.assertTrue(s.has_extn(ext), "EHLO lacks %s: %r" %
                            (ext, ehlo))
        self.assertEqual(s.esmtp_features.get("size"), "200000")
        msg = smta.make_message("smtplib-1", rcpt="a@example.org")
        s.mail("smtplib@strictmta.test", ["SIZE=%d" % len(msg),
                                          "BODY=8BITMIME", "RET=HDRS",
                                          "ENVID=env+2Bid-1"])
        self.assertEqual(s.rcpt("a@example.org")[0], 250)
        self.assertEqual(s.rcpt("b@example.org",
                                ["NOTIFY=SUCCESS,FAILURE",
                                 "ORCPT=rfc822;b@example.org"])[0], 250)
        code, text = s.data(msg)
        self.assertEqual(code, 250, text)
        self.assertRegex(text.decode(), r"^2\.0\.0 ")
        qid = smta.QID_RE.search(text.decode())
        self.assertIsNotNone(qid, "250 reply should name the queue ID: %r"
                             % text)
        self.assertEqual(s.quit()[0], 221)
        msgs = self.queued_with("b@example.org")
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m["qid"], qid.group(1))
        self.assertEqual(sorted(m["recipients"]),
                         ["a@example.org", "b@example.org"])
        # The DSN parameters are kept with the message (RFC 3461).
        self.assertEqual(m.get("envid"), "env+id-1", m)
        self.assertEqual(m.get("ret"), "hdrs", m)
        self.assertIn("8bitmime", m.get("flags", []), m)
        b = [r for r in m["rcpt_details"] if r.get("address") ==
             "b@example.org"]
        self.assertEqual(len(b), 1, m)
        self.assertEqual(b[0].get("orcpt"), "rfc822;b@example.org", m)
        self.assertEqual(sorted(b[0].get("notify", [])),
                         ["failure", "success"], m)
        show = self.d.queue_show(m["qid"])
        self.assertIn("smtplib-1", show, "queue show prints the headers")
        self.assertIn("b@example.org", show)

    def test_smtplib_utf8_and_null_sender(self):
        s = smtplib.SMTP(self.d.host, self.d.port, timeout=15,
                         source_address=(smta.DAEMON_HOST, 0))
        self.addCleanup(s.close)
        s.ehlo()
        msg = ("From: <>\r\nTo: <j\u00fcrgen@b\u00fccher.example>\r\n"
               "Subject: utf8\r\n\r\nGr\u00fc\u00dfe\r\n").encode()
        code, text = s.mail("", ["SMTPUTF8", "BODY=8BITMIME"])
        self.assertEqual(code, 250, text)
        code, text = s.rcpt("j\u00fcrgen@b\u00fccher.example")
        self.assertEqual(code, 250, text)
        code, text = s.data(msg)
        self.assertEqual(code, 250, text)
        s.quit()
        msgs = self.queued_with("j\u00fcrgen@b\u00fccher.example")
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0]["sender"], "")

    def test_smtp_source(self):
        exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
        if not os.path.exists(exe):
            self.skipTest("smtp-source (postfix) not installed")
        n = 200
        rcpt = "smtp-source@example.org"
        t0 = time.monotonic()
        p = smta.smtp_source(self.d.host, self.d.port, n, sessions=5,
                             rcpt=rcpt, size=2000, timeout=300)
        dt = time.monotonic() - t0
        self.assertEqual(p.returncode, 0,
                         p.stdout.decode(errors="replace") +
                         p.stderr.decode(errors="replace"))
        smta.log("smtp-source: %d messages in %.2fs (%.0f/s)" %
                 (n, dt, n / dt))
        msgs = self.queued_with(rcpt, n, timeout=30)
        self.assertEqual(len(msgs), n,
                         "smtp-source sent %d messages, queue has %d" %
                         (n, len(msgs)))
        self.assertEqual(len(set(m["qid"] for m in msgs)), n,
                         "queue IDs are unique")

    # -- pipelining -------------------------------------------------------

    def test_pipelining(self):
        c = self.conn()
        code, ext = c.ehlo()
        self.assertEqual(code, 250)
        self.assertIn("PIPELINING", [e.split()[0].upper() for e in ext])
        rc = ["pipe%d@example.org" % i for i in range(3)]
        # One write: MAIL, three RCPTs, DATA (RFC 2920 3.1: DATA last).
        batch = "MAIL FROM:<pipe@strictmta.test>\r\n"
        batch += "".join("RCPT TO:<%s>\r\n" % r for r in rc)
        batch += "RCPT TO:pipe-bad@example.org\r\n"
        batch += "DATA\r\n"
        c.send(batch)
        codes = [c.reply()[0] for _ in range(6)]
        self.assertEqual(codes[:4], [250, 250, 250, 250])
        self.assertEqual(codes[4] // 100, 5, "bad address refused")
        self.assertEqual(codes[5], 354)
        # Message, end of data, and a second transaction in one write.
        m1 = smta.make_message("pipelined-1")
        m2 = smta.make_message("pipelined-2")
        c.send(m1 + b".\r\n" + b"RSET\r\n"
               b"MAIL FROM:<pipe2@strictmta.test>\r\n"
               b"RCPT TO:<pipe-second@example.org>\r\nDATA\r\n")
        code, text = c.reply()
        self.assertEqual(code, 250, text)
        self.assertEqual([c.reply()[0] for _ in range(4)],
                         [250, 250, 250, 354])
        c.send(m2 + b".\r\nQUIT\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 221)
        self.assertEqual(len(self.queued_with("pipe2@example.org")), 1)
        self.assertEqual(len(self.queued_with("pipe-second@example.org")),
                         1)

    def test_pipelined_batch_split_in_small_writes(self):
        """A batch that arrives a few bytes at a time gets the same
        replies (the reader must not depend on packet boundaries)."""
        c = self.conn()
        c.ehlo()
        data = (b"MAIL FROM:<frag@strictmta.test>\r\n"
                b"RCPT TO:<frag@example.org>\r\nDATA\r\n")
        for i in range(0, len(data), 3):
            c.send(data[i:i + 3])
            time.sleep(0.002)
        self.assertEqual([c.reply()[0] for _ in range(3)], [250, 250, 354])
        m = smta.make_message("fragmented") + b".\r\n"
        for i in range(0, len(m), 7):
            c.send(m[i:i + 7])
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(len(self.queued_with("frag@example.org")), 1)

    # -- relay permission ---------------------------------------------------

    def test_relay_refused_outside_mynetworks(self):
        c = self.conn(bind=smta.OUTSIDE_HOST)
        self.assertEqual(c.ehlo()[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<outsider@strictmta.test>")[0],
                         250)
        code, text = c.cmd("RCPT TO:<victim@example.org>")
        self.assertEqual(code, 554, text)
        self.assertTrue(text.startswith("5.7.1"), text)
        code, text = c.cmd("DATA")
        self.assertEqual(code // 100, 5, "DATA without a valid recipient")
        c.cmd("QUIT")
        msgs = self.d.queue_list()
        self.assertFalse([m for m in msgs
                          if "victim@example.org" in m["recipients"]])

    def test_relay_allowed_inside_mynetworks(self):
        c = self.conn(bind=smta.DAEMON_HOST)
        c.ehlo()
        c.cmd("MAIL FROM:<insider@strictmta.test>")
        self.assertEqual(c.cmd("RCPT TO:<friend@example.org>")[0], 250)

    # -- malformed commands and limits ----------------------------------------

    def expect(self, c, line, codes, enh=None):
        code, text = c.cmd(line)
        self.assertIn(code, codes, "%r -> %d %s" % (line[:60], code, text))
        if enh:
            self.assertTrue(text.startswith(enh),
                            "%r -> %d %s (want %s)" % (line[:60], code,
                                                       text, enh))
        return code, text

    def test_commands_out_of_order(self):
        c = self.conn()
        self.expect(c, "MAIL FROM:<a@strictmta.test>", (503,), "5.5.1")
        self.expect(c, "EHLO", (501,))
        self.expect(c, "EHLO client.strictmta.test", (250,))
        self.expect(c, "RCPT TO:<a@example.org>", (503,), "5.5.1")
        self.expect(c, "DATA", (503,), "5.5.1")
        self.expect(c, "MAIL FROM:<a@strictmta.test>", (250,), "2.1.0")
        self.expect(c, "MAIL FROM:<a@strictmta.test>", (503,), "5.5.1")
        self.expect(c, "DATA", (503, 554), "5.5.1")
        self.expect(c, "RSET", (250,), "2.0.0")
        self.expect(c, "NOOP", (250,), "2.0.0")
        self.expect(c, "VRFY postmaster", (252,))
        self.expect(c, "HELP", (214,))
        self.expect(c, "QUIT", (221,))
        self.assertTrue(c.closed_by_peer())

    def test_malformed_commands(self):
        c = self.conn()
        c.ehlo()
        self.expect(c, "FROBNICATE", (500, 502), "5.5.")
        self.expect(c, "MAIL FROM:a@strictmta.test", (501,), "5.")
        self.expect(c, "MAIL FROM:<a@strictmta.test> FOO=BAR", (555, 501),
                    "5.5.4")
        self.expect(c, "MAIL FROM:<a@strictmta.test> SIZE=99999999999",
                    (552,), "5.3.4")
        self.expect(c, "MAIL FROM:<a@strictmta.test> BODY=9BIT", (501, 555),
                    "5.5.4")
        self.expect(c, "MAIL FROM:<a@strictmta.test> REQUIRETLS", (530, 555,
                                                                   501, 504),
                    "5.")
        self.expect(c, "MAIL FROM:<a@strictmta.test> RET=FULL",
                    (250,), "2.1.0")
        self.expect(c, "RCPT TO:<>", (501, 553), "5.")
        self.expect(c, "RCPT TO:<a b@example.org>", (501, 553), "5.")
        self.expect(c, "RCPT TO:<a@example.org> NOTIFY=SOMETIMES", (501,),
                    "5.5.4")
        self.expect(c, "RCPT TO:<a@example.org> FOO=1", (555, 501), "5.5.4")
        self.expect(c, "RCPT TO:<a@example.org>", (250,), "2.1.5")
        self.expect(c, "RSET", (250,))
        self.expect(c, "MAIL FROM:<a@strictmta.test> ENVID=abc+2Bdef "
                    "RET=HDRS", (250,))
        self.expect(c, "RSET", (250,))
        # 512-octet command line limit (RFC 5321 4.5.3.1.4).
        self.expect(c, "MAIL FROM:<" + "a" * 600 + "@strictmta.test>",
                    (500, 501, 553), "5.")
        # A NUL in a command.
        self.expect(c, "NOOP\0x", (500, 501), "5.")
        # The session survives all that.
        self.expect(c, "NOOP", (250,))

    def test_recipient_limit(self):
        c = self.conn()
        c.ehlo()
        self.expect(c, "MAIL FROM:<many@strictmta.test>", (250,))
        batch = "".join("RCPT TO:<r%d@example.org>\r\n" % i
                        for i in range(101))
        c.send(batch)
        codes = [c.reply() for _ in range(101)]
        self.assertEqual([x[0] for x in codes[:100]], [250] * 100)
        self.assertEqual(codes[100][0], 452, codes[100])
        self.assertTrue(codes[100][1].startswith("4.5.3"), codes[100])

    def test_message_size_limit(self):
        c = self.conn()
        c.ehlo()
        self.expect(c, "MAIL FROM:<big@strictmta.test> SIZE=300000", (552,),
                    "5.3.4")
        self.expect(c, "MAIL FROM:<big@strictmta.test>", (250,))
        self.expect(c, "RCPT TO:<big@example.org>", (250,))
        self.expect(c, "DATA", (354,))
        body = (b"x" * 78 + b"\r\n") * 4000  # 320000 bytes
        c.send(smta.make_message("too-big") + body + b".\r\n")
        code, text = c.reply()
        self.assertEqual(code, 552, text)
        self.assertTrue(text.startswith("5.3.4"), text)
        self.expect(c, "NOOP", (250,))
        self.assertFalse(self.queued_with("big@example.org", timeout=1))

    def test_text_line_limit(self):
        c = self.conn()
        c.ehlo()
        self.expect(c, "MAIL FROM:<long@strictmta.test>", (250,))
        self.expect(c, "RCPT TO:<longline@example.org>", (250,))
        self.expect(c, "DATA", (354,))
        c.send(smta.make_message("long-line") + b"y" * 1200 + b"\r\n.\r\n")
        code, text = c.reply()
        self.assertEqual(code // 100, 5, "%d %s" % (code, text))
        self.expect(c, "NOOP", (250,))
        self.assertFalse(self.queued_with("longline@example.org",
                                          timeout=1))

    def test_idle_timeout(self):
        c = self.conn()
        c.ehlo()
        t0 = time.monotonic()
        code, text = c.reply()  # the server speaks first: 421
        self.assertEqual(code, 421, text)
        self.assertTrue(text.startswith("4.4.2"), text)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertTrue(c.closed_by_peer())

    def test_no_mail_on_disconnect_mid_data(self):
        c = self.conn()
        c.ehlo()
        self.expect(c, "MAIL FROM:<cut@strictmta.test>", (250,))
        self.expect(c, "RCPT TO:<cut@example.org>", (250,))
        self.expect(c, "DATA", (354,))
        c.send(smta.make_message("cut-off") + b".")
        c.close()
        time.sleep(1)
        self.assertFalse(self.queued_with("cut@example.org", timeout=1))

    def test_connection_limit_per_client(self):
        d = smta.Daemon("connlimit", {
            "mynetworks": "127.30.0.1/32",
            "smtpd_client_connection_count_limit": "2"})
        self.addCleanup(d.cleanup)
        d.start()
        conns = []
        for _ in range(2):
            c = d.smtp(bind=smta.OUTSIDE_HOST)
            conns.append(c)
            self.addCleanup(c.close)
            smta.greeted(c)
        c3 = d.smtp(bind=smta.OUTSIDE_HOST)
        self.addCleanup(c3.close)
        code, text = c3.reply()
        self.assertEqual(code, 421, text)
        self.assertTrue(text.startswith("4.7.0"), text)
        self.assertTrue(c3.closed_by_peer())
        # Another address is not limited by this client's count.
        c4 = d.smtp(bind="127.30.0.98")
        self.addCleanup(c4.close)
        smta.greeted(c4)
        # mynetworks is exempt, as in Postfix: a relaying Postfix opens
        # many connections from one address.
        for _ in range(3):
            c = d.smtp(bind=smta.DAEMON_HOST)
            self.addCleanup(c.close)
            smta.greeted(c)

    def test_connection_limit_total(self):
        d = smta.Daemon("conntotal", {"smtpd_connection_limit": "3"})
        self.addCleanup(d.cleanup)
        d.start()
        for src in (smta.DAEMON_HOST, smta.OUTSIDE_HOST, "127.30.0.98"):
            c = d.smtp(bind=src)
            self.addCleanup(c.close)
            smta.greeted(c)
        c4 = d.smtp(bind="127.30.0.97")
        self.addCleanup(c4.close)
        code, text = c4.reply()
        self.assertEqual(code, 421, text)
        self.assertTrue(c4.closed_by_peer())


    def test_hard_error_limit(self):
        d = smta.Daemon("errlimit", {"smtpd_hard_error_limit": "3"})
        self.addCleanup(d.cleanup)
        d.start()
        c = d.smtp()
        self.addCleanup(c.close)
        smta.greeted(c)
        codes = []
        for _ in range(6):
            try:
                codes.append(c.cmd("BOGUS")[0])
            except (EOFError, OSError):
                break
            if codes[-1] == 421:
                break
        self.assertIn(421, codes, "hung up after too many errors: %r" %
                      codes)
        self.assertLessEqual(len(codes), 5, codes)
        self.assertTrue(c.closed_by_peer())

    def test_tls_required_no_header_flag(self):
        """RFC 8689 5: "TLS-Required: No" is kept as a flag for delivery."""
        s = smtplib.SMTP(self.d.host, self.d.port, timeout=15,
                         source_address=(smta.DAEMON_HOST, 0))
        self.addCleanup(s.close)
        s.ehlo()
        msg = (b"From: <tlsopt@strictmta.test>\r\nTo: <tlsopt@example.org>"
               b"\r\nSubject: tls optional\r\nTLS-Required: No\r\n\r\n"
               b"body\r\n")
        s.sendmail("tlsopt@strictmta.test", ["tlsopt@example.org"], msg)
        s.quit()
        msgs = self.queued_with("tlsopt@example.org")
        self.assertEqual(len(msgs), 1)
        self.assertIn("tls-optional", msgs[0].get("flags", []), msgs[0])


if __name__ == "__main__":
    smta.main()
