#!/usr/bin/python3
"""TLS on the accepting side: STARTTLS (RFC 3207) and implicit TLS
(RFC 8314) driven by `openssl s_client`, the Received: header naming the
TLS version and cipher, and AUTH (RFC 4954): neither offered nor accepted
before TLS, accepted after it against a file of crypt(3) hashes, and what
lets a client outside mynetworks relay.

The certificate is self-signed, made by the test; the password file holds
a SHA-512 crypt hash from `openssl passwd -6`."""

import base64
import os
import re
import ssl
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

USER = "alice@strictmta.test"
PASSWORD = "correct horse battery staple"


def s_client(args, script, timeout=30):
    """Runs openssl s_client and types script into it a line at a time (the
    server answers each before the next arrives: no unannounced
    pipelining); the script ends with QUIT so that the server closes.
    Returns (rc, stdout text, stderr text)."""
    p = subprocess.Popen(["openssl", "s_client", "-crlf", "-ign_eof",
                          "-servername", "mx.strictmta.test"] + args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # connect, greeting, handshake
        for line in script.splitlines(True):
            p.stdin.write(line.encode())
            p.stdin.flush()
            time.sleep(0.5)
        out, err = p.communicate(timeout=timeout)  # closes stdin
    except (subprocess.TimeoutExpired, BrokenPipeError):
        p.kill()
        out, err = p.communicate(timeout=10)
    return (p.returncode, out.decode(errors="replace"),
            err.decode(errors="replace"))


def header_block(text, name):
    """The named header with its continuation lines from `queue show`
    output, or ''."""
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if l.lower().startswith(name.lower() + ":"):
            out = [l]
            for cont in lines[i + 1:]:
                if cont[:1] in (" ", "\t"):
                    out.append(cont)
                else:
                    break
            return "\n".join(out)
    return ""


def replies(out):
    """SMTP reply lines (final lines only: 'NNN text') from s_client."""
    return [l for l in out.splitlines() if re.match(r"^\d{3} ", l)]


class AcceptTls(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        tmp = smta.make_tempdir("tls-keys")
        cls.keydir = tmp
        cert, key = smta.make_cert(tmp)
        pw = smta.make_password_file(tmp, {USER: PASSWORD,
                                           "bob": "hunter2"})
        cls.d = smta.Daemon("tls", {
            # s_client connects from 127.0.0.1; the outsider is .99.
            "mynetworks": "127.30.0.1/32 127.0.0.1/32",
            "smtpd_tls_cert_file": cert,
            "smtpd_tls_key_file": key,
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_password_file": pw,
        }, smtps=True)
        try:
            cls.d.start()
        except BaseException:
            cls.d.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            cls.d.cleanup()
        import shutil
        shutil.rmtree(cls.keydir, ignore_errors=True)

    def tearDown(self):
        if smta.test_failed(self):
            smta.log("---- strictmtad log ----\n" + self.d.log_text(60))

    def conn(self, bind=smta.OUTSIDE_HOST):
        c = self.d.smtp(bind=bind)
        self.addCleanup(c.close)
        smta.greeted(c)
        return c

    def exts(self, lines):
        return [l.split()[0].upper() for l in lines[1:] if l.strip()]

    def auth_line(self, lines):
        for l in lines[1:]:
            if l.upper().startswith("AUTH"):
                return l.upper().split()[1:]
        return None

    def queued(self, rcpt, timeout=20):
        msgs = self.d.wait_queue(
            lambda l: any(rcpt in m["recipients"] for m in l), timeout)
        return [m for m in msgs if rcpt in m["recipients"]]

    # -- openssl s_client ---------------------------------------------------

    def transaction(self, rcpt, token):
        return ("EHLO s-client.strictmta.test\n"
                "MAIL FROM:<tls@strictmta.test>\n"
                "RCPT TO:<%s>\n"
                "DATA\n"
                "Subject: %s\n\nover TLS\n.\n"
                "QUIT\n" % (rcpt, token))

    def check_received(self, rcpt, out):
        msgs = self.queued(rcpt)
        self.assertEqual(len(msgs), 1, "message over TLS not queued")
        show = self.d.queue_show(msgs[0]["qid"])
        received = header_block(show, "Received")
        self.assertTrue(received, "no Received: header in:\n" + show)
        # RFC 8314 4.3: the TLS version and cipher are recorded.
        self.assertRegex(received, r"TLS ?v?1[._]?[23]",
                         "Received: names the TLS version")
        self.assertIn("with ESMTPS ", received, "RFC 3848 protocol type")
        m = re.search(r"Cipher *: *(\S+)", out) or re.search(
            r"Cipher is (\S+)", out)
        if m:
            self.assertIn(m.group(1), received,
                          "Received: names the cipher")

    def test_starttls_s_client(self):
        rc, out, err = s_client(
            ["-starttls", "smtp", "-connect",
             "%s:%d" % (self.d.host, self.d.port)],
            self.transaction("starttls@example.org", "via-starttls"))
        r = replies(out)
        self.assertRegex(out + err, r"(?:Protocol *: *|New, )TLSv1\.[23]")
        codes = [int(l[:3]) for l in r]
        self.assertIn(354, codes, out)
        self.assertIn(221, codes, out)
        self.assertEqual([c for c in codes if c >= 400], [], out)
        self.check_received("starttls@example.org", out)

    def test_implicit_tls_s_client(self):
        rc, out, err = s_client(
            ["-connect", "%s:%d" % (self.d.host, self.d.smtps_port)],
            self.transaction("smtps@example.org", "via-smtps"))
        self.assertRegex(out, r"(?m)^220 ", "greeting inside TLS")
        self.assertRegex(out + err, r"(?:Protocol *: *|New, )TLSv1\.[23]")
        codes = [int(l[:3]) for l in replies(out)]
        self.assertEqual([c for c in codes if c >= 400], [], out)
        self.check_received("smtps@example.org", out)

    def test_close_notify_after_quit(self):
        """The server ends TLS with close_notify (RFC 8446 6.1) before it
        closes the connection; OpenSSL 3 clients report an error
        otherwise (s_client: 'unexpected eof while reading')."""
        c = self.conn(bind=smta.DAEMON_HOST)
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS")[0], 220)
        c.starttls("mx.strictmta.test", ragged_eof_ok=False)
        c.ehlo()
        self.assertEqual(c.cmd("QUIT")[0], 221)
        c.sock.settimeout(5)
        try:
            data = c.sock.recv(100)
        except ssl.SSLEOFError as e:
            self.fail("connection closed without close_notify: %s" % e)
        self.assertEqual(data, b"")

    def test_auth_on_implicit_tls_port(self):
        c = smta.SmtpConn(self.d.host, self.d.smtps_port,
                          bind=smta.OUTSIDE_HOST)
        self.addCleanup(c.close)
        c.starttls("mx.strictmta.test")
        smta.greeted(c)
        code, lines = c.ehlo()
        self.assertEqual(code, 250)
        self.assertNotIn("STARTTLS", self.exts(lines))
        self.assertIn("PLAIN", self.auth_line(lines) or [])
        good = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD))
                                .encode()).decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + good)[0], 235)
        c.cmd("MAIL FROM:<%s>" % USER)
        self.assertEqual(c.cmd("RCPT TO:<smtps-auth@example.org>")[0], 250)

    def test_plaintext_on_smtps_port(self):
        c = smta.SmtpConn(self.d.host, self.d.smtps_port, timeout=5)
        self.addCleanup(c.close)
        c.send(b"EHLO plain\r\n")
        data = c.pending(2)
        self.assertFalse(data.startswith(b"250"), data[:80])

    # -- AUTH -----------------------------------------------------------------

    def test_auth_not_offered_nor_accepted_before_tls(self):
        c = self.conn()
        code, lines = c.ehlo()
        self.assertEqual(code, 250)
        ex = self.exts(lines)
        self.assertIn("STARTTLS", ex)
        self.assertNotIn("AUTH", ex, "AUTH offered before TLS: %r" % lines)
        self.assertNotIn("REQUIRETLS", ex, "REQUIRETLS only under TLS")
        cred = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode())
        code, text = c.cmd("AUTH PLAIN " + cred.decode())
        self.assertIn(code, (502, 503, 504, 530, 538), text)
        self.assertNotEqual(code // 100, 2)
        code, text = c.cmd("AUTH LOGIN")
        self.assertEqual(code // 100, 5, text)
        # Still not authenticated: relaying refused.
        c.cmd("MAIL FROM:<%s>" % USER)
        code, text = c.cmd("RCPT TO:<pre-tls@example.org>")
        self.assertEqual(code, 554, text)
        self.assertTrue(text.startswith("5.7.1"), text)

    def tls_conn(self, bind=smta.OUTSIDE_HOST):
        c = self.conn(bind)
        c.ehlo()
        code, text = c.cmd("STARTTLS")
        self.assertEqual(code, 220, text)
        c.starttls("mx.strictmta.test")
        code, lines = c.ehlo()
        self.assertEqual(code, 250)
        return c, lines

    def test_auth_plain_after_tls(self):
        c, lines = self.tls_conn()
        self.assertNotIn("STARTTLS", self.exts(lines))
        mechs = self.auth_line(lines)
        self.assertIsNotNone(mechs, "AUTH offered after TLS: %r" % lines)
        self.assertIn("PLAIN", mechs)
        self.assertIn("LOGIN", mechs)
        self.assertIn("REQUIRETLS", self.exts(lines))
        # Before AUTH, a client outside mynetworks cannot relay.
        c.cmd("MAIL FROM:<%s>" % USER)
        code, text = c.cmd("RCPT TO:<unauth@example.org>")
        self.assertEqual(code, 554, text)
        c.cmd("RSET")
        bad = base64.b64encode(("\0%s\0wrong" % USER).encode()).decode()
        code, text = c.cmd("AUTH PLAIN " + bad)
        self.assertEqual(code, 535, text)
        self.assertTrue(text.startswith("5.7.8"), text)
        good = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD))
                                .encode()).decode()
        code, text = c.cmd("AUTH PLAIN " + good)
        self.assertEqual(code, 235, text)
        self.assertTrue(text.startswith("2.7.0"), text)
        code, text = c.cmd("AUTH PLAIN " + good)
        self.assertEqual(code, 503, "a second AUTH: %d %s" % (code, text))
        for rcpt, param in (("authed@example.org", ""),
                            ("authed-rtls@example.org", " REQUIRETLS")):
            self.assertEqual(
                c.cmd("MAIL FROM:<%s>%s" % (USER, param))[0], 250)
            code, text = c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertEqual(code, 250, text)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(smta.make_message("authed") + b".\r\n")
            code, text = c.reply()
            self.assertEqual(code, 250, text)
        c.cmd("QUIT")
        # RFC 8689: the REQUIRETLS flag is kept and delivery honours it:
        # the test routes example.org to a plain next hop by address,
        # which cannot keep the promise, so that message is returned at
        # once with 5.7.10 instead of waiting in the queue.
        self.assertTrue(smta.wait_for(lambda: re.search(
            r"to=<authed-rtls@example\.org>, .*dsn=5\.7\.10, "
            r"status=bounced \(REQUIRETLS", self.d.log_text(2000)), 20),
            self.d.log_text(40))
        msgs = self.queued("authed@example.org")
        self.assertEqual(len(msgs), 1)
        self.assertNotIn("requiretls", msgs[0].get("flags", []), msgs[0])
        received = header_block(self.d.queue_show(msgs[0]["qid"]),
                                "Received")
        self.assertIn("with ESMTPSA ", received, "RFC 3848 protocol type")

    def test_auth_login_after_tls(self):
        c, _ = self.tls_conn()
        code, text = c.cmd("AUTH LOGIN")
        self.assertEqual(code, 334, text)
        self.assertEqual(base64.b64decode(text).lower().rstrip(b":"),
                         b"username")
        code, text = c.cmd(base64.b64encode(b"bob").decode())
        self.assertEqual(code, 334, text)
        code, text = c.cmd(base64.b64encode(b"hunter2").decode())
        self.assertEqual(code, 235, text)
        c.cmd("MAIL FROM:<bob@strictmta.test>")
        self.assertEqual(c.cmd("RCPT TO:<bob-rcpt@example.org>")[0], 250)

    def test_auth_plain_challenge_and_cancel(self):
        c, _ = self.tls_conn()
        code, text = c.cmd("AUTH PLAIN")
        self.assertEqual(code, 334, text)
        code, text = c.cmd("*")
        self.assertEqual(code, 501, "'*' cancels AUTH: %d %s" % (code, text))
        code, text = c.cmd("AUTH PLAIN")
        self.assertEqual(code, 334)
        code, text = c.cmd("not base64!")
        self.assertEqual(code, 501, text)
        code, text = c.cmd("AUTH CRAM-MD5")
        self.assertEqual(code, 504, text)
        code, text = c.cmd("AUTH PLAIN " + base64.b64encode(
            ("\0nobody\0%s" % PASSWORD).encode()).decode())
        self.assertEqual(code, 535, text)

    def test_starttls_twice_and_pipelined_injection(self):
        """RFC 3207 6 / CVE-2011-0411: commands sent after STARTTLS in the
        same packet must not be executed inside TLS."""
        c = self.conn()
        c.ehlo()
        c.send("STARTTLS\r\nMAIL FROM:<inject@strictmta.test>\r\n")
        code, text = c.reply()
        if code == 220:
            c.starttls("mx.strictmta.test")
            code, lines = c.ehlo()
            self.assertEqual(code, 250, "the injected MAIL was discarded")
            code, text = c.cmd("RCPT TO:<inject@example.org>")
            self.assertEqual(code, 503, "no MAIL in progress after "
                             "STARTTLS: %d %s" % (code, text))
            code, text = c.cmd("STARTTLS")
            self.assertEqual(code // 100, 5, text)
        else:
            self.assertEqual(code // 100, 5, text)


if __name__ == "__main__":
    smta.main()
