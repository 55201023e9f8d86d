#!/usr/bin/python3
"""DANE (RFC 7672) and MTA-STS (RFC 8461) enforced by a real strictmtad
delivering over the test network (tests/net): signed zones under the test
root, a validating Unbound, TLSA records computed from the sinks' keys,
MTA-STS policies served by nginx, SMTP sinks that record whether a message
arrived and over what TLS.

What a postmaster observes, per destination: delivered over verified TLS
and how (the log line names the level, the policy and the TLSA record that
matched), or held in the queue with 4.7.5 and the reason, with nothing
sent to the server that failed the check."""

import base64
import json
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

HOST = "127.27.0.1"

# domain -> (sink address that must get the mail, level in the log)
DELIVERED = {
    "ee.dane.test": ("127.25.0.40", "dane"),
    "ta.dane.test": ("127.25.0.41", "dane"),
    "eeself.dane.test": ("127.25.0.49", "dane"),
    "eeexpired.dane.test": ("127.25.0.63", "dane"),
    "rollover.dane.test": ("127.25.0.69", "dane"),
    "cname.dane.test": ("127.25.0.44", "dane"),
    "fallback.dane.test": ("127.25.0.40", "dane"),
    "unusable.dane.test": ("127.25.0.43", "encrypt"),
    "notlsa.dane.test": ("127.25.0.45", "may"),
    "enforce.sts.test": ("127.25.0.50", "sts-enforce"),
    "wildcard.sts.test": ("127.25.0.53", "sts-enforce"),
    "testing.sts.test": ("127.25.0.51", "may"),
    "none.sts.test": ("127.25.0.55", "may"),
    "nopolicy.sts.test": ("127.25.0.56", "may"),
}

# domain -> (sink that must get nothing, what the reason must say)
HELD = {
    "mismatch.dane.test": ("127.25.0.42", r"not verified|no TLSA record"),
    "tawrongname.dane.test": ("127.25.0.48", r"not verified|mismatch"),
    "nostarttls.dane.test": ("127.25.0.46", r"TLS is required"),
    "tlsabogus.dane.test": ("127.25.0.47", r"TLSA lookup error"),
    "stsdane.dane.test": ("127.25.0.64", r"not verified|no TLSA record"),
    "badmx.sts.test": ("127.25.0.52", r"MX host mx\.badmx\.sts\.test is not listed"),
    "badcert.sts.test": ("127.25.0.54", r"not verified|mismatch"),
    "expired.sts.test": ("127.25.0.65", r"not verified|expired"),
    "notls.sts.test": ("127.25.0.58", r"TLS is required"),
}


def m_data(rec):
    return base64.b64decode(rec.get("data_b64", ""))


class DeliverPolicy(unittest.TestCase):
    net = None
    d = None

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(smta.program("strictmtad")):
            raise unittest.SkipTest("strictmtad not built")
        cls.net = netlib.Net()
        cls.net.__enter__()
        try:
            # A listener with TLS: REQUIRETLS is accepted only there.
            cls.keydir = smta.make_tempdir("policy-keys")
            cert, key = smta.make_cert(cls.keydir)
            d = smta.network_daemon("policy", cls.net.env, HOST, {
                "smtpd_tls_cert_file": cert,
                "smtpd_tls_key_file": key,
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
            cls.d.cleanup()
        if cls.net is not None:
            cls.net.__exit__(None, None, None)

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            smta.log("---- strictmtad log ----\n" + self.d.log_text(120))

    def send(self, rcpt, token, requiretls=False, d=None, header=None):
        """Submits one message (to d, default the class's daemon); with
        requiretls, over STARTTLS with MAIL FROM ... REQUIRETLS (offered
        only under TLS); header: one more header line, first."""
        d = d or self.d
        msg = smta.make_message(token, sender="postmaster@strictmta.test",
                                rcpt=rcpt)
        if header:
            msg = header.encode() + b"\r\n" + msg
        s = smtplib.SMTP(d.host, d.port, timeout=20,
                         source_address=(HOST, 0))
        try:
            s.ehlo("client.strictmta.test")
            opts = []
            if requiretls:
                s.starttls()
                s.ehlo("client.strictmta.test")
                self.assertTrue(s.has_extn("requiretls"))
                opts = ["REQUIRETLS"]
            code, text = s.mail("postmaster@strictmta.test", opts)
            self.assertEqual(code, 250, text)
            code, text = s.rcpt(rcpt)
            self.assertEqual(code, 250, text)
            code, text = s.data(msg)
            self.assertEqual(code, 250, text)
        finally:
            s.quit()
        return smta.QID_RE.search(text.decode()).group(1)

    def wait_log(self, pattern, timeout=40.0, d=None):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        d = d or self.d
        while time.monotonic() < end:
            m = rx.search(d.log_text(100000))
            if m:
                return m
            time.sleep(0.3)
        return None

    def test_1_delivered_over_required_tls(self):
        qids = {dom: self.send("user@" + dom, "tok-" + dom)
                for dom in DELIVERED}
        for dom, (addr, level) in DELIVERED.items():
            with self.subTest(domain=dom):
                line = self.wait_log(
                    r"%s: to=<user@%s>, relay=\S+\[%s\]:25, .*status=sent"
                    r" .*level=%s\b.*" % (qids[dom], re.escape(dom),
                                          re.escape(addr), level))
                self.assertIsNotNone(line, "%s: sent at level %s via %s"
                                     % (dom, level, addr))
                smta.log(line.group(0))
                recs = [m for m in self.net.messages(addr)
                        if ("tok-" + dom).encode() in m_data(m)]
                self.assertEqual(len(recs), 1, "one copy at %s" % addr)
                self.assertIsNotNone(recs[0]["tls"], "arrived over TLS")
                if level in ("dane", "sts-enforce"):
                    self.assertIn("verified=yes", line.group(0))
                if level == "dane":
                    self.assertRegex(line.group(0),
                                     r'match="DANE-(EE\(3\)|TA\(2\)) \d \d '
                                     r'depth \d"')
        # fallback.dane.test: the primary (a TLSA mismatch) got nothing.
        self.assertFalse([m for m in self.net.messages("127.25.0.42")
                          if b"tok-fallback.dane.test" in m_data(m)])

    def test_2_held_in_queue_never_downgraded(self):
        qids = {dom: self.send("user@" + dom, "tok-" + dom) for dom in HELD}
        for dom, (addr, why) in HELD.items():
            with self.subTest(domain=dom):
                line = self.wait_log(
                    r"%s: to=<user@%s>, .*dsn=4\.7\.5, status=deferred "
                    r"\((.*)\)" % (qids[dom], re.escape(dom)))
                self.assertIsNotNone(line, "%s deferred with 4.7.5" % dom)
                smta.log(line.group(0))
                self.assertRegex(line.group(1), why)
                self.assertEqual([m for m in self.net.messages(addr)
                                  if ("tok-" + dom).encode() in m_data(m)],
                                 [], "nothing sent to %s" % addr)
                shown = self.d.queue_show(qids[dom])
                self.assertIn("4.7.5", shown, "queue show gives the reason")
                p = self.d.cli("queue", "show", qids[dom], "--content")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertTrue(p.stdout.startswith(b"Received: "))
                self.assertIn(("tok-" + dom).encode(), p.stdout)
        # Still held after a retry: doubt defers, it never downgrades.
        time.sleep(5)
        ids = self.d.queue_ids()
        for dom in HELD:
            self.assertIn(qids[dom], ids, "%s still queued" % dom)

    def test_3_policy_cli(self):
        # test_1 delivered to enforce.sts.test: its policy is cached.
        self.send("user@enforce.sts.test", "tok-cli")
        self.assertIsNotNone(self.wait_log(
            r"to=<user@enforce\.sts\.test>.*status=sent"))
        p = self.d.cli("policy", "show", "enforce.sts.test", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        shown = json.loads(p.stdout)
        self.assertEqual(len(shown), 1)
        self.assertEqual(shown[0]["domain"], "enforce.sts.test")
        self.assertEqual(shown[0]["mode"], "enforce")
        self.assertEqual(shown[0]["id"], "20260101T000000")
        self.assertEqual(shown[0]["mx"], ["mx.enforce.sts.test"])
        self.assertFalse(shown[0]["expired"])
        self.assertEqual(shown[0]["expires"] - shown[0]["fetched"], 86400)
        p = self.d.cli("policy", "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"enforce.sts.test: id=20260101T000000 mode=enforce",
                      p.stdout)
        p = self.d.cli("policy", "refresh", "enforce.sts.test", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual((r["policy"], r["source"], r["mode"]),
                         (True, "fetch", "enforce"))
        p = self.d.cli("policy", "forget", "enforce.sts.test")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.d.cli("policy", "show", "enforce.sts.test", "--json")
        self.assertEqual(json.loads(p.stdout), [])
        p = self.d.cli("policy", "forget", "enforce.sts.test")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"no cached MTA-STS policy", p.stderr)
        # The cache survives a restart of the daemon.
        self.d.stop()
        self.d.start()
        p = self.d.cli("policy", "show", "wildcard.sts.test", "--json")
        self.assertEqual(json.loads(p.stdout)[0]["mx"],
                         ["*.wildcard.sts.test"])
        p = self.d.cli("policy", "bogus")
        self.assertEqual(p.returncode, 64)

    def test_4_requiretls(self):
        # RFC 8689: a message accepted with REQUIRETLS goes only over TLS
        # verified by DANE or MTA-STS, to a server that advertises
        # REQUIRETLS, with the parameter passed on; otherwise it is
        # returned with 5.7.10 and nothing is sent.
        # domain -> (sink, outcome)
        cases = {
            "requiretls.dane.test": ("127.25.0.70", "sent"),
            "requiretls.sts.test": ("127.25.0.71", "sent"),
            "insecure.test": ("127.25.0.30", "bounced"),
            "requiretls.secure.test": ("127.25.0.24", "bounced"),
            "ee.dane.test": ("127.25.0.40", "bounced"),
        }
        qids = {dom: self.send("user@" + dom, "rtls-" + dom,
                               requiretls=True)
                for dom in cases}
        for dom, (addr, outcome) in cases.items():
            with self.subTest(domain=dom):
                tok = ("rtls-" + dom).encode()
                if outcome == "sent":
                    line = self.wait_log(
                        r"%s: to=<user@%s>, .*status=sent "
                        r".*level=(dane|sts-enforce)\b.*verified=yes"
                        % (qids[dom], re.escape(dom)))
                    self.assertIsNotNone(line, "%s sent over verified "
                                         "TLS" % dom)
                    smta.log(line.group(0))
                    recs = [m for m in self.net.messages(addr)
                            if tok in m_data(m)]
                    self.assertEqual(len(recs), 1)
                    self.assertIsNotNone(recs[0]["tls"])
                    self.assertIn("REQUIRETLS", recs[0]["mail_params"],
                                  "the parameter was passed on")
                    continue
                line = self.wait_log(
                    r"%s: to=<user@%s>, .*dsn=5\.7\.10, status=bounced"
                    r" \((.*)\)" % (qids[dom], re.escape(dom)))
                self.assertIsNotNone(line, "%s bounced with 5.7.10; log:\n%s"
                                     % (dom, "\n".join(
                                         l for l in self.d.log_text(
                                             100000).splitlines()
                                         if qids[dom] in l or dom in l)))
                smta.log(line.group(0))
                self.assertIn("REQUIRETLS", line.group(1))
                self.assertEqual([m for m in self.net.messages(addr)
                                  if tok in m_data(m)], [],
                                 "nothing sent to %s" % addr)

    def other_daemon(self, tag, host, params):
        d = smta.network_daemon(tag, self.net.env, host, params)
        self.addCleanup(d.cleanup)
        d.start()
        return d

    def delivered(self, addr, tok):
        return [m for m in self.net.messages(addr) if tok in m_data(m)]

    def test_5_levels_read_as_postfix_names_them(self):
        """smtp_tls_security_level for hosts without DANE or MTA-STS:
        dane-only makes them wait, secure verifies them by the Web PKI,
        none sends in clear. DANE and MTA-STS apply whatever the level
        (docs/tls-policy.md: where this differs from Postfix)."""
        # dane-only: no TLSA -> 4.7.5, nothing sent; TLSA -> DANE.
        d = self.other_daemon("dane-only", "127.27.0.2",
                              {"smtp_tls_security_level": "dane-only"})
        q1 = self.send("user@notlsa.dane.test", "lvl-do-1", d=d)
        q2 = self.send("user@ee.dane.test", "lvl-do-2", d=d)
        line = self.wait_log(r"%s: to=<user@notlsa\.dane\.test>, .*"
                             r"dsn=4\.7\.5, status=deferred .*no usable "
                             r"DANE TLSA records.*dane-only" % q1, d=d)
        self.assertIsNotNone(line, d.log_text(40))
        smta.log(line.group(0))
        self.assertEqual(self.delivered("127.25.0.45", b"lvl-do-1"), [])
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<user@ee\.dane\.test>, .*status=sent .*level=dane"
            % q2, d=d))
        d.stop()
        # secure: the Web PKI (the test CA) for the MX name.
        d = self.other_daemon("secure", "127.27.0.3",
                              {"smtp_tls_security_level": "secure"})
        q1 = self.send("user@nopolicy.sts.test", "lvl-sec-1", d=d)
        q2 = self.send("user@testing.sts.test", "lvl-sec-2", d=d)
        line = self.wait_log(r"%s: to=<user@nopolicy\.sts\.test>, .*"
                             r"status=sent .*level=secure, policy=config"
                             r".*verified=yes" % q1, d=d)
        self.assertIsNotNone(line, d.log_text(40))
        smta.log(line.group(0))
        # testing.sts.test's MX has a certificate for another name.
        line = self.wait_log(r"%s: to=<user@testing\.sts\.test>, .*"
                             r"dsn=4\.7\.5, status=deferred" % q2, d=d)
        self.assertIsNotNone(line, d.log_text(40))
        smta.log(line.group(0))
        self.assertEqual(self.delivered("127.25.0.51", b"lvl-sec-2"), [])
        d.stop()
        # none: clear text where nothing asks for TLS; DANE still holds.
        d = self.other_daemon("none", "127.27.0.4",
                              {"smtp_tls_security_level": "none"})
        q1 = self.send("user@notlsa.dane.test", "lvl-none-1", d=d)
        q2 = self.send("user@mismatch.dane.test", "lvl-none-2", d=d)
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<user@notlsa\.dane\.test>, .*status=sent .*"
            r"level=none" % q1, d=d), d.log_text(40))
        recs = self.delivered("127.25.0.45", b"lvl-none-1")
        self.assertEqual(len(recs), 1)
        self.assertIsNone(recs[0]["tls"], "level none: no STARTTLS")
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<user@mismatch\.dane\.test>, .*dsn=4\.7\.5, "
            r"status=deferred" % q2, d=d), d.log_text(40))
        self.assertEqual(self.delivered("127.25.0.42", b"lvl-none-2"), [])

    def test_6_tls_required_no(self):
        """RFC 8689 5: "TLS-Required: No" is ignored by default (any
        sender can write it) and says so in the log; with
        tls_required_no_enable = yes the recipient's DANE or MTA-STS
        policy is not enforced for that message, and the log says so."""
        hdr = "TLS-Required: No"
        q1 = self.send("user@mismatch.dane.test", "trn-1", header=hdr)
        line = self.wait_log(r"%s: to=<user@mismatch\.dane\.test>, .*"
                             r"dsn=4\.7\.5, status=deferred .*TLS-Required: "
                             r"No ignored \(tls_required_no_enable = no\)"
                             % q1)
        self.assertIsNotNone(line, self.d.log_text(40))
        smta.log(line.group(0))
        self.assertEqual(self.delivered("127.25.0.42", b"trn-1"), [])
        d = self.other_daemon("trn", "127.27.0.5",
                              {"tls_required_no_enable": "yes"})
        q2 = self.send("user@mismatch.dane.test", "trn-2", d=d,
                       header=hdr)
        q3 = self.send("user@badcert.sts.test", "trn-3", d=d, header=hdr)
        q4 = self.send("user@mismatch.dane.test", "trn-4", d=d)
        for q, dom, addr, tok, pol in (
                (q2, "mismatch.dane.test", "127.25.0.42", b"trn-2", "dane"),
                (q3, "badcert.sts.test", "127.25.0.54", b"trn-3",
                 "mta-sts")):
            line = self.wait_log(
                r"%s: to=<user@%s>, .*status=sent .*level=may, policy=%s "
                r"\(TLS-Required: No applied, %s policy not enforced"
                % (q, re.escape(dom), pol, pol), d=d)
            self.assertIsNotNone(line, d.log_text(60))
            smta.log(line.group(0))
            self.assertEqual(len(self.delivered(addr, tok)), 1)
        # The same destination without the header: still held.
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<user@mismatch\.dane\.test>, .*dsn=4\.7\.5, "
            r"status=deferred" % q4, d=d))
        self.assertEqual(self.delivered("127.25.0.42", b"trn-4"), [])

    def test_8_exception_expires(self):
        """strictmta exception add lowers one domain's level for a while,
        with a reason the log shows; at expiry the exception is removed
        and the domain's mail is held again. Levels that need the
        domain's own data (dane, sts-enforce, secure) cannot be set this
        way, and a bad duration is refused."""
        d = self.other_daemon("exc", "127.27.0.7", {})
        r = d.cli("exception", "add", "mismatch.dane.test", "--level",
                  "dane", "--ttl", "1h", "--reason", "x")
        self.assertNotEqual(r.returncode, 0, (r.stdout + r.stderr).decode())
        r = d.cli("exception", "add", "mismatch.dane.test", "--level",
                  "encrypt", "--ttl", "soon", "--reason", "x")
        self.assertNotEqual(r.returncode, 0, (r.stdout + r.stderr).decode())
        r = d.cli("exception", "add", "MISMATCH.dane.test", "--level",
                  "encrypt", "--ttl", "10s", "--reason",
                  "TLSA rollover broken, ticket 42")
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode())
        r = d.cli("exception", "list", "--json")
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode())
        self.assertIn(b"mismatch.dane.test", r.stdout)
        self.assertIn(b"TLSA rollover broken", r.stdout)
        q1 = self.send("user@mismatch.dane.test", "exc-1", d=d)
        line = self.wait_log(r"%s: to=<user@mismatch\.dane\.test>, .*"
                             r"status=sent .*level=encrypt, "
                             r"policy=exception \(was dane; reason TLSA "
                             r"rollover broken" % q1, d=d)
        self.assertIsNotNone(line, d.log_text(40))
        smta.log(line.group(0))
        self.assertEqual(len(self.delivered("127.25.0.42", b"exc-1")), 1)
        self.assertIsNotNone(self.wait_log(
            r"tls-exception: domain=mismatch\.dane\.test, .*expired",
            timeout=20, d=d), d.log_text(40))
        r = d.cli("exception", "list")
        self.assertNotIn(b"mismatch.dane.test", r.stdout)
        q2 = self.send("user@mismatch.dane.test", "exc-2", d=d)
        self.assertIsNotNone(self.wait_log(
            r"%s: to=<user@mismatch\.dane\.test>, .*dsn=4\.7\.5, "
            r"status=deferred" % q2, d=d), d.log_text(40))
        self.assertEqual(self.delivered("127.25.0.42", b"exc-2"), [])

    def test_7_ca_bundle_read_at_start(self):
        """The MTA-STS CA bundle is read while the daemon is root: a
        bundle only root can read still verifies policy hosts after the
        privilege drop (an enforce domain gets its mail, one with a
        forged MX certificate does not), and a bundle that cannot be read
        at all stops the start, naming the parameter and the file."""
        d = smta.network_daemon("ca-root", self.net.env, "127.27.0.6", {})
        self.addCleanup(d.cleanup)
        ca = os.path.join(d.dir, "sts-ca.pem")
        with open(d.params["mta_sts_CAfile"], "rb") as f, \
                open(ca, "wb") as g:
            g.write(f.read())
        d.params["mta_sts_CAfile"] = ca
        d.write_conf()
        os.chmod(ca, 0o600)
        os.chown(ca, 0, 0)
        d.start()
        q1 = self.send("user@enforce.sts.test", "ca-1", d=d)
        q2 = self.send("user@badcert.sts.test", "ca-2", d=d)
        line = self.wait_log(r"%s: to=<user@enforce\.sts\.test>, .*"
                             r"status=sent .*level=sts-enforce" % q1, d=d)
        self.assertIsNotNone(line, d.log_text(60))
        smta.log(line.group(0))
        line = self.wait_log(r"%s: to=<user@badcert\.sts\.test>, .*"
                             r"dsn=4\.7\.5, status=deferred" % q2, d=d)
        self.assertIsNotNone(line, d.log_text(60))
        self.assertEqual(self.delivered("127.25.0.54", b"ca-2"), [])
        d.stop()
        # Gone: no start, and config check names it too.
        os.unlink(ca)
        p = d.cli("config", "check")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(("mta_sts_CAfile: %s: No such file" % ca).encode(),
                      p.stderr)
        with self.assertRaises(AssertionError) as cm:
            d.start(timeout=10)
        self.assertIn("mta_sts_CAfile %s: No such file or directory" % ca,
                      str(cm.exception))
        smta.log("start refused: mta_sts_CAfile %s missing" % ca)


if __name__ == "__main__":
    unittest.main(verbosity=2)
