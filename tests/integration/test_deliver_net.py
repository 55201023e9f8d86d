#!/usr/bin/python3
"""Delivery against the test network (tests/net): a real strictmtad
(listening on 127.26.0.1) resolves through the validating Unbound and
delivers to the sinks on 127.25.0.x.

Checks: MX preference order and fallback to the next MX; implicit MX;
Postfix (relayhost = strictmta) -> strictmta -> the MX, end to end;
null MX bounces (RFC 7505) with a DSN that parses as RFC 3464; a
temporary failure then success on retry; a permanent failure gives a
correct DSN; a bogus domain stays deferred with nothing sent; many
messages to one destination share few connections; the message arrives
byte-identical apart from the added Received: header; TLS is used."""

import email
import email.policy
import os
import re
import smtplib
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import netlib  # noqa: E402

netlib.reexec_in_netns(__file__)
import smta  # noqa: E402

HOST = "127.26.0.1"
SENDER_DOMAIN = "equal.secure.test"  # DSNs land at .13 or .14
SENDER_SINKS = ("127.25.0.13", "127.25.0.14")


class DeliverNet(unittest.TestCase):
    net = None
    d = None

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(smta.program("strictmtad")):
            raise unittest.SkipTest("strictmtad not built")
        cls.net = netlib.Net()
        cls.net.__enter__()
        try:
            d = smta.network_daemon("deliver", cls.net.env, HOST, {
                "smtp_connection_cache_time_limit": "3s",
                "delay_warning_time": "1s",
            })
            cls.d = d
            d.start()
        except BaseException:
            if cls.d is not None:
                cls.d.cleanup()
            cls.net.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            cls.d.stop()
            if os.environ.get("NET_KEEP") == "1":
                smta.log("daemon dir kept: " + cls.d.dir)
            else:
                cls.d.cleanup()
        if cls.net is not None:
            cls.net.__exit__(None, None, None)

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            smta.log("---- strictmtad log ----\n" + self.d.log_text(80))

    # -- helpers ----------------------------------------------------------

    def send(self, rcpts, token, sender=None, mail_opts=(), rcpt_opts=(),
             body_lines=3):
        sender = sender or "sender-%s@%s" % (token, SENDER_DOMAIN)
        msg = smta.make_message(token, body_lines=body_lines, sender=sender,
                                rcpt=rcpts[0])
        s = smtplib.SMTP(self.d.host, self.d.port, timeout=20,
                         source_address=(HOST, 0))
        try:
            s.ehlo("client.strictmta.test")
            s.mail(sender, list(mail_opts))
            for r in rcpts:
                code, text = s.rcpt(r, list(rcpt_opts))
                self.assertEqual(code, 250, text)
            code, text = s.data(msg)
            self.assertEqual(code, 250, text)
        finally:
            s.quit()
        return msg, smta.QID_RE.search(text.decode()).group(1)

    def wait_msg(self, addrs, token, timeout=30.0):
        """The sink record (at any of addrs) whose data has token."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for a in addrs:
                for m in self.net.messages(a):
                    if token in m_data(m).decode("utf-8", "replace"):
                        return a, m
            time.sleep(0.2)
        return None, None

    def wait_log(self, pattern, timeout=30.0):
        end = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < end:
            m = rx.search(self.d.log_text(100000))
            if m:
                return m
            time.sleep(0.2)
        return None

    def dsn_for(self, token, timeout=30.0):
        """Waits for the DSN about the message carrying token at the
        sender's sinks; returns (record, parsed email)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for a in SENDER_SINKS:
                for m in self.net.messages(a):
                    data = m_data(m)
                    if m.get("mail_from") == "" and token.encode() in data:
                        return m, email.message_from_bytes(
                            data, policy=email.policy.compat32)
            time.sleep(0.2)
        self.fail("no DSN for %s at %s" % (token, SENDER_SINKS))

    def check_identical(self, sent, rec):
        stored = m_data(rec)
        added = smta.split_added_headers(stored, sent)
        self.assertIsNotNone(added, "content changed in transit")
        self.assertTrue(added.startswith(b"Received: "), added)

    # -- tests --------------------------------------------------------------

    def test_01_preference_order_tls_and_identical(self):
        sent, qid = self.send(["alice@pref.secure.test"], "prefmx1",
                              body_lines=5)
        addr, rec = self.wait_msg(["127.25.0.11", "127.25.0.12"], "prefmx1")
        self.assertEqual(addr, "127.25.0.11", "lowest preference first")
        self.assertEqual(rec["rcpt_to"], ["alice@pref.secure.test"])
        self.assertEqual(rec["mail_from"], "sender-prefmx1@" + SENDER_DOMAIN)
        self.check_identical(sent, rec)
        self.assertIsNotNone(rec["tls"], "STARTTLS was offered: use it")
        self.assertEqual(rec["tls"].get("sni"), "mx1.pref.secure.test")
        self.assertEqual(rec.get("violations") or [], [])
        line = self.wait_log(r"%s: to=<alice@pref\.secure\.test>, "
                             r"relay=mx1\.pref\.secure\.test\[127\.25\.0\.11"
                             r"\]:25, delay=[^,]+, delays=[^,]+, dsn=2\.\d\.\d,"
                             r" status=sent \(250[^)]*\), level=may, "
                             r"policy=config, "
                             r"tls=TLSv1\.[23]:\S+ verified=yes" % qid)
        self.assertIsNotNone(line, "Postfix-like log line")

    def test_02_fallback_to_next_mx(self):
        self.net.sink("127.25.0.11", {"greeting": "421 4.3.2 go away"})
        # A session cached from an earlier test would still reach mx1:
        # let it expire (smtp_connection_cache_time_limit = 3s).
        time.sleep(4)
        try:
            sent, _ = self.send(["bob@pref.secure.test"], "prefmx2")
            addr, rec = self.wait_msg(["127.25.0.11", "127.25.0.12"],
                                      "prefmx2")
            self.assertEqual(addr, "127.25.0.12", "mx1 down: mx2")
            self.check_identical(sent, rec)
        finally:
            self.net.sink_reset("127.25.0.11")

    def test_03_implicit_mx(self):
        sent, _ = self.send(["carol@implicit.secure.test"], "implicitmx")
        addr, rec = self.wait_msg(["127.25.0.15"], "implicitmx")
        self.assertEqual(addr, "127.25.0.15")
        self.check_identical(sent, rec)

    def test_03b_ipv6_only_mx(self):
        sent, _ = self.send(["gus@v6.secure.test"], "v6token")
        addr, rec = self.wait_msg(["::1"], "v6token")
        self.assertEqual(addr, "::1")
        self.check_identical(sent, rec)

    def test_04_null_mx_bounces(self):
        # Three permanent routing failures in one message: one DSN.
        _, qid = self.send(["dave@nullmx.secure.test",
                            "erin@nxdomain.secure.test",
                            "fay@noaddr.secure.test"], "nullmxtoken")
        rec, dsn = self.dsn_for("nullmxtoken")
        self.assertEqual(rec["rcpt_to"], ["sender-nullmxtoken@" +
                                          SENDER_DOMAIN])
        st = check_dsn(self, dsn)
        got = {r["Final-Recipient"]: (r["Action"], r["Status"])
               for r in st["recipients"]}
        self.assertEqual(got, {
            "rfc822; dave@nullmx.secure.test": ("failed", "5.1.10"),
            "rfc822; erin@nxdomain.secure.test": ("failed", "5.1.2"),
            "rfc822; fay@noaddr.secure.test": ("failed", "5.4.4"),
        })
        time.sleep(1)
        n = sum(1 for a in SENDER_SINKS for m in self.net.messages(a)
                if b"nullmxtoken" in m_data(m))
        self.assertEqual(n, 1, "one DSN per message")
        # The A record of the domain (127.25.0.15) is never used.
        for m in self.net.messages("127.25.0.15"):
            self.assertNotIn(b"nullmxtoken", m_data(m))
        # The original leaves the queue; the DSN was delivered too.
        self.assertTrue(smta.wait_for(lambda: qid not in self.d.queue_ids(),
                                      20))

    def test_05_tempfail_then_success(self):
        _, qid = self.send(["erin@tempfail.secure.test"], "tempfailtoken")
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<erin@tempfail\.secure\.test>, relay=\S+, .*"
            r"dsn=4\.3\.0, status=deferred \(451" % qid))
        # The queue shows it deferred with the last response.
        show = self.d.queue_show(qid)
        self.assertRegex(show, r"(?i)deferred")
        self.assertIn("451", show)
        self.assertEqual(self.net.messages("127.25.0.16"), [])
        # delay_warning_time = 1s: one "delayed" DSN (RFC 3464 2.3.3).
        rec, dsn = self.dsn_for("tempfailtoken")
        st = check_dsn(self, dsn)
        self.assertEqual(st["recipients"][0]["Action"], "delayed")
        self.assertEqual(st["recipients"][0]["Status"], "4.3.0")
        self.net.sink("127.25.0.16", {"rcpt": None, "reject_users": []})
        try:
            addr, rec = self.wait_msg(["127.25.0.16"], "tempfailtoken", 30)
            self.assertEqual(addr, "127.25.0.16", "retried after backoff")
        finally:
            self.net.sink_reset("127.25.0.16")
        self.assertTrue(smta.wait_for(lambda: qid not in self.d.queue_ids(),
                                      20))

    def test_06_permfail_dsn(self):
        sent, qid = self.send(["frank@permfail.secure.test"], "permfailtoken",
                              mail_opts=["RET=HDRS", "ENVID=env+2Bpf"],
                              rcpt_opts=["NOTIFY=FAILURE",
                                         "ORCPT=rfc822;frank@permfail."
                                         "secure.test"])
        rec, dsn = self.dsn_for("permfailtoken")
        st = check_dsn(self, dsn)
        self.assertEqual(st["message"].get("Reporting-MTA"),
                         "dns; mx.strictmta.test")
        self.assertEqual(st["message"].get("Original-Envelope-Id"),
                         "env+pf")
        self.assertIn("Arrival-Date", st["message"])
        r = st["recipients"][0]
        self.assertEqual(r["Final-Recipient"],
                         "rfc822; frank@permfail.secure.test")
        self.assertEqual(r["Original-Recipient"],
                         "rfc822;frank@permfail.secure.test")
        self.assertEqual(r["Action"], "failed")
        self.assertEqual(r["Status"], "5.1.1")
        self.assertEqual(r["Remote-MTA"], "dns; mx.permfail.secure.test")
        self.assertTrue(r["Diagnostic-Code"].startswith("smtp; 550 5.1.1"),
                        r)
        self.assertIn("Last-Attempt-Date", r)
        parts = dsn.get_payload()
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertIn("permfailtoken", parts[2].get_payload())
        self.assertNotIn("line 0 of permfailtoken", parts[2].get_payload())
        self.assertTrue(smta.wait_for(lambda: qid not in self.d.queue_ids(),
                                      20))

    def test_07_bogus_stays_deferred(self):
        _, qid = self.send(["gina@bogus.test"], "bogustoken")
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<gina@bogus\.test>, relay=none, .*dsn=4\.4\.3, "
            r"status=deferred" % qid))
        time.sleep(5)  # at least one retry
        self.assertIn(qid, self.d.queue_ids())
        self.assertEqual(self.net.messages("127.25.0.31"), [])
        self.assertEqual(self.net.connections("127.25.0.31"), [])
        _, badds = self.send(["hank@badds.test"], "baddstoken")
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<hank@badds\.test>, relay=none, .*dsn=4\.4\.3, "
            r"status=deferred" % badds))
        self.assertEqual(self.net.connections("127.25.0.32"), [])

    def test_08_many_messages_few_connections(self):
        n = 12
        for i in range(n):
            self.send(["user%d@many.secure.test" % i], "manytoken%02d" % i)
        self.assertTrue(self.net.wait_messages("127.25.0.18", n, 60),
                        "all %d messages arrive" % n)
        # Connections are logged when they end (idle cache 3 s).
        time.sleep(5)
        conns = self.net.connections("127.25.0.18")
        smta.log("many.secure.test: %d messages over %d connections" %
                 (n, len(conns)))
        self.assertLessEqual(len(conns), n // 2, conns)
        self.assertGreaterEqual(sum(int(c.get("messages", "0"))
                                    for c in conns), n)

    def test_09_tls_verification_recorded(self):
        _, q1 = self.send(["ivy@selfsigned.secure.test"], "selfsignedtoken")
        _, q2 = self.send(["jack@wrongname.secure.test"], "wrongnametoken")
        # Opportunistic (level may): delivered, the outcome logged.
        self.assertEqual(self.wait_msg(["127.25.0.20"], "selfsignedtoken")[0],
                         "127.25.0.20")
        self.assertEqual(self.wait_msg(["127.25.0.21"], "wrongnametoken")[0],
                         "127.25.0.21")
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<ivy@selfsigned\.secure\.test>, .*status=sent .*"
            r"tls=TLSv1\.\d:\S+ verified=no reason=\"self.signed "
            r"certificate\"" % q1))
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<jack@wrongname\.secure\.test>, .*status=sent .*"
            r"verified=no reason=\"hostname mismatch\"" % q2))

    def test_10_failed_starttls_never_falls_back_to_clear(self):
        # plain.secure.test: STARTTLS only, no PIPELINING/SIZE/DSN.
        self.net.sink("127.25.0.25", {"disconnect": "starttls_reply"})
        try:
            time.sleep(4)  # no cached session to this sink
            _, qid = self.send(["kim@plain.secure.test"], "plaintoken",
                               rcpt_opts=["NOTIFY=NEVER"])
            self.assertIsNotNone(self.wait_log(
                r"%s: to=<kim@plain\.secure\.test>, relay=none, .*"
                r"status=deferred \(lost connection with "
                r"mx\.plain\.secure\.test\[127\.25\.0\.25\]:25 while "
                r"sending STARTTLS" % qid))
            self.assertEqual(self.net.messages("127.25.0.25"), [])
        finally:
            self.net.sink_reset("127.25.0.25")
        addr, rec = self.wait_msg(["127.25.0.25"], "plaintoken", 30)
        self.assertEqual(addr, "127.25.0.25")
        self.assertIsNotNone(rec["tls"])
        self.assertEqual(rec.get("violations") or [], [])

    def test_11_helo_only_and_notify_never(self):
        sent, _ = self.send(["lou@heloonly.secure.test"], "helotoken")
        addr, rec = self.wait_msg(["127.25.0.26"], "helotoken")
        self.assertEqual(addr, "127.25.0.26")
        self.assertIsNone(rec["tls"])
        self.check_identical(sent, rec)
        # NOTIFY=SUCCESS to a next hop without DSN: a "relayed" DSN
        # (RFC 3461 5.2.2.3); plain.secure.test offers no DSN.
        _, qid = self.send(["ned@plain.secure.test"], "relaytoken",
                           rcpt_opts=["NOTIFY=SUCCESS"])
        rec, dsn = self.dsn_for("relaytoken")
        st = check_dsn(self, dsn)
        r = st["recipients"][0]
        self.assertEqual(r["Action"], "relayed")
        self.assertEqual(r["Status"], "2.0.0")
        self.assertEqual(r["Remote-MTA"], "dns; mx.plain.secure.test")
        self.assertTrue(r["Diagnostic-Code"].startswith("smtp; 250"), r)
        # NOTIFY=NEVER: a permanent failure sends no DSN.
        _, qid = self.send(["nosuchuser@many.secure.test"], "nevertoken",
                           rcpt_opts=["NOTIFY=NEVER"])
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<nosuchuser@many\.secure\.test>, .*dsn=5\.1\.1, "
            r"status=bounced" % qid))
        self.assertTrue(smta.wait_for(lambda: qid not in self.d.queue_ids(),
                                      20))
        time.sleep(2)
        for a in SENDER_SINKS:
            for m in self.net.messages(a):
                self.assertNotIn(b"nevertoken", m_data(m))

    def test_12_crash_during_delivery_retries(self):
        # The sink waits before answering the final dot; the daemon is
        # killed meanwhile. After restart the message is delivered
        # again: at least once, never lost.
        self.net.sink("127.25.0.15", {"delay": {"eod": 3}})
        try:
            time.sleep(4)  # no cached session to this sink
            _, qid = self.send(["max@implicit.secure.test"], "crashtoken")
            time.sleep(1.5)  # routed, connected, waiting at the dot
            self.assertNotRegex(self.d.log_text(100000),
                                qid + r": to=.*status=sent",
                                "killed while the attempt was in flight")
            self.d.kill9()
            self.d.start()
            addr, rec = self.wait_msg(["127.25.0.15"], "crashtoken", 40)
            self.assertEqual(addr, "127.25.0.15")
            self.assertTrue(smta.wait_for(
                lambda: qid not in self.d.queue_ids(), 30))
            self.assertIsNotNone(self.wait_log(
                r"%s: to=<max@implicit\.secure\.test>, .*status=sent" %
                qid))
        finally:
            self.net.sink_reset("127.25.0.15")

    def test_13_smtputf8_and_8bitmime_to_a_server_without(self):
        # plain.secure.test offers neither SMTPUTF8 nor 8BITMIME.
        _, q1 = self.send(["olga@plain.secure.test"], "utf8token",
                          mail_opts=["SMTPUTF8"])
        rec, dsn = self.dsn_for("utf8token")
        r = check_dsn(self, dsn)["recipients"][0]
        self.assertEqual((r["Action"], r["Status"]), ("failed", "5.6.7"))
        sender = "sender-8bittoken@" + SENDER_DOMAIN
        msg = smta.make_message("8bittoken", sender=sender,
                                rcpt="pia@plain.secure.test")
        msg += "caf\u00e9\r\n".encode()
        s = smtplib.SMTP(self.d.host, self.d.port, timeout=20,
                         source_address=(HOST, 0))
        try:
            s.ehlo("client.strictmta.test")
            s.mail(sender, ["BODY=8BITMIME"])
            s.rcpt("pia@plain.secure.test")
            code, text = s.data(msg)
            self.assertEqual(code, 250, text)
        finally:
            s.quit()
        rec, dsn = self.dsn_for("8bittoken")
        r = check_dsn(self, dsn)["recipients"][0]
        self.assertEqual((r["Action"], r["Status"]), ("failed", "5.6.3"))
        for m in self.net.messages("127.25.0.25"):
            self.assertNotIn(b"utf8token", m_data(m))
            self.assertNotIn(b"8bittoken", m_data(m))

    def test_14_postfix_to_strictmta_to_receiver(self):
        """A real Postfix with relayhost = strictmta: the message goes
        Postfix -> strictmta -> the destination's MX, and arrives there
        as sent apart from the two Received: headers put in front."""
        pf = smta.Postfix("chain", "[%s]:%d" % (self.d.host, self.d.port))
        pf.start()
        try:
            token = "postfixchain"
            sent = smta.make_message(token, sender="pf@strictmta.test",
                                     rcpt="zoe@many.secure.test")
            s = smtplib.SMTP(pf.host, pf.port, timeout=20)
            try:
                s.sendmail("pf@strictmta.test", ["zoe@many.secure.test"],
                           sent)
            finally:
                s.quit()
            addr, rec = self.wait_msg(["127.25.0.18"], token, 60)
            self.assertEqual(addr, "127.25.0.18",
                             "Postfix log:\n" + pf.log_text(30))
        finally:
            pf.stop()
        added = smta.split_added_headers(m_data(rec), sent)
        self.assertIsNotNone(added, "content changed in transit")
        received = [h for h in added.split(b"\r\n") if
                    h.startswith(b"Received: ")]
        self.assertEqual(len(received), 2, added)
        self.assertIn(b"by pf.strictmta.test", added)
        self.assertTrue(added.startswith(b"Received: from"), added)
        self.assertEqual(rec["mail_from"], "pf@strictmta.test")


def m_data(rec):
    import base64
    return base64.b64decode(rec.get("data_b64", ""))


def check_dsn(tc, msg):
    """Checks the RFC 3464 structure; returns the per-message and
    per-recipient fields of the message/delivery-status part."""
    tc.assertEqual(msg.get_content_type(), "multipart/report")
    tc.assertEqual(msg.get_param("report-type"), "delivery-status")
    tc.assertEqual(msg.get("Auto-Submitted"), "auto-replied")
    parts = msg.get_payload()
    tc.assertEqual(len(parts), 3)
    tc.assertEqual(parts[0].get_content_type(), "text/plain")
    tc.assertEqual(parts[1].get_content_type(), "message/delivery-status")
    groups = parts[1].get_payload()
    tc.assertGreaterEqual(len(groups), 2)
    return {"message": dict(groups[0].items()),
            "recipients": [dict(g.items()) for g in groups[1:]]}


if __name__ == "__main__":
    unittest.main(verbosity=2)
