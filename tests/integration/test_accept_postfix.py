#!/usr/bin/python3
"""strictmta as the relayhost of a real Postfix: mail handed to a private
Postfix instance (config, queue and data folders in a temporary folder,
listening on 127.30.0.2) with relayhost = [127.30.0.1]:PORT lands in
strictmta's queue: in clear, with smtp_tls_security_level = encrypt, and
with TLS plus SASL (strictmta's mynetworks then leaves Postfix out, so it
must authenticate to relay)."""

import os
import re
import shutil
import smtplib
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

SASL_USER = "postfix-relay"
SASL_PASS = "s3cret-relay-pass"
COUNT = 20


class AcceptFromPostfix(unittest.TestCase):

    def setUp(self):
        if not os.path.exists("/usr/sbin/postfix"):
            self.skipTest("postfix is not installed")
        self.keydir = smta.make_tempdir("pf-keys")
        self.addCleanup(shutil.rmtree, self.keydir, True)

    def run_case(self, tag, daemon_params, postfix_params, tls):
        d = smta.Daemon("pf-" + tag, daemon_params)
        self.addCleanup(d.cleanup)
        d.start()
        relay = "[%s]:%d" % (d.host, d.port)
        pp = dict(postfix_params)
        if "smtp_sasl_password_maps" in pp:
            path = os.path.join(self.keydir, "postfix_sasl_passwd")
            with open(path, "w") as f:
                f.write("%s %s:%s\n" % (relay, SASL_USER, SASL_PASS))
            os.chmod(path, 0o644)
            pp["smtp_sasl_password_maps"] = "texthash:" + path
        pf = smta.Postfix(tag, relay, pp)
        self.addCleanup(pf.cleanup)
        t0 = time.monotonic()
        pf.start()
        smta.log("%s: postfix started in %.1fs" % (tag, time.monotonic() - t0))
        try:
            self.relay_through(d, pf, tag, tls)
        except BaseException:
            smta.log("---- postfix log ----\n" + pf.log_text(40))
            smta.log("---- strictmtad log ----\n" + d.log_text(40))
            raise

    def relay_through(self, d, pf, tag, tls):
        rcpt = "pf-%s@example.org" % tag
        token = "via-postfix-" + tag
        # One message with known content through smtplib ...
        s = smtplib.SMTP(pf.host, pf.port, timeout=30,
                         source_address=(smta.POSTFIX_HOST, 0))
        s.ehlo()
        s.sendmail("origin@strictmta.test", [rcpt, "second-" + rcpt],
                   smta.make_message(token, rcpt=rcpt))
        s.quit()
        # ... and COUNT from smtp-source.
        p = smta.smtp_source(pf.host, pf.port, COUNT, sessions=4,
                             rcpt="bulk-" + rcpt, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        t0 = time.monotonic()
        msgs = d.wait_queue(
            lambda l: len([m for m in l if "bulk-" + rcpt
                           in m["recipients"]]) >= COUNT and
            any(rcpt in m["recipients"] for m in l), timeout=90)
        bulk = [m for m in msgs if "bulk-" + rcpt in m["recipients"]]
        smta.log("%s: %d relayed in %.1fs" % (tag, len(bulk),
                                              time.monotonic() - t0))
        self.assertEqual(len(bulk), COUNT,
                         "%d of %d smtp-source messages relayed by Postfix "
                         "are in the queue" % (len(bulk), COUNT))
        mine = [m for m in msgs if rcpt in m["recipients"]]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["sender"], "origin@strictmta.test")
        self.assertEqual(sorted(mine[0]["recipients"]),
                         sorted([rcpt, "second-" + rcpt]),
                         "Postfix sent both recipients in one transaction")
        show = d.queue_show(mine[0]["qid"])
        self.assertIn(token, show)
        # strictmta's Received: comes first, then Postfix's.
        recv = [l for l in show.splitlines() if l.startswith("Received:")]
        self.assertGreaterEqual(len(recv), 2, show)
        log = pf.log_text(400)
        self.assertTrue(wait_postfix_sent(pf, COUNT + 1),
                        "Postfix reports every message sent")
        if tls:
            self.assertRegex(log, r"TLS connection established to "
                             r"127\.30\.0\.1")
            self.assertRegex(show, r"TLS ?v?1[._]?[23]",
                             "strictmta's Received: names TLS")
        self.assertNotRegex(log, r"status=(deferred|bounced)")

    def test_relay_plain(self):
        self.run_case("plain", {}, {"smtp_tls_security_level": "none"},
                      tls=False)

    def test_relay_tls_encrypt(self):
        cert, key = smta.make_cert(self.keydir)
        self.run_case("tls", {
            "smtpd_tls_cert_file": cert,
            "smtpd_tls_key_file": key,
        }, {
            "smtp_tls_security_level": "encrypt",
            "smtp_tls_loglevel": "1",
        }, tls=True)

    def test_relay_tls_sasl(self):
        cert, key = smta.make_cert(self.keydir)
        pw = smta.make_password_file(self.keydir, {SASL_USER: SASL_PASS})
        self.run_case("sasl", {
            "mynetworks": "127.30.0.1/32",
            "smtpd_tls_cert_file": cert,
            "smtpd_tls_key_file": key,
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_password_file": pw,
        }, {
            "smtp_tls_security_level": "encrypt",
            "smtp_tls_loglevel": "1",
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "set below",
            "smtp_sasl_security_options": "noanonymous",
            "smtp_sasl_tls_security_options": "noanonymous",
            "smtp_sasl_mechanism_filter": "plain, login",
        }, tls=True)

    def test_sasl_wrong_password_defers(self):
        """With a wrong password Postfix is refused (535) and keeps the
        mail: nothing reaches strictmta's queue."""
        cert, key = smta.make_cert(self.keydir)
        pw = smta.make_password_file(self.keydir, {SASL_USER: "other"})
        d = smta.Daemon("pf-badpw", {
            "mynetworks": "127.30.0.1/32",
            "smtpd_tls_cert_file": cert,
            "smtpd_tls_key_file": key,
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_password_file": pw,
        })
        self.addCleanup(d.cleanup)
        d.start()
        relay = "[%s]:%d" % (d.host, d.port)
        path = os.path.join(self.keydir, "postfix_sasl_passwd")
        with open(path, "w") as f:
            f.write("%s %s:%s\n" % (relay, SASL_USER, SASL_PASS))
        pf = smta.Postfix("badpw", relay, {
            "smtp_tls_security_level": "encrypt",
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_password_maps": "texthash:" + path,
            "smtp_sasl_security_options": "noanonymous",
            "smtp_sasl_tls_security_options": "noanonymous",
        })
        self.addCleanup(pf.cleanup)
        pf.start()
        p = smta.smtp_source(pf.host, pf.port, 1, rcpt="nope@example.org")
        self.assertEqual(p.returncode, 0)
        ok = smta.wait_for(lambda: re.search(
            r"authentication failed|SASL authentication failed|535",
            pf.log_text(200)), 30)
        self.assertTrue(ok, pf.log_text(40))
        self.assertEqual([m for m in d.queue_list()
                          if "nope@example.org" in m["recipients"]], [])


def wait_postfix_sent(pf, n, timeout=30):
    return smta.wait_for(
        lambda: len(re.findall(r"status=sent", pf.log_text(2000))) >= n,
        timeout)


if __name__ == "__main__":
    smta.main()
