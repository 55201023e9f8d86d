#!/usr/bin/python3
"""SMTP smuggling (end-of-data confusion) against a running strictmtad,
from ../shared/vectors/smtp-smuggling.json (read at test time; skipped
with a message when absent):

- every end_of_data_sequences entry is put between a message and a
  smuggled second transaction; only CRLF.CRLF may end DATA, a message with
  a bare CR or LF is refused with 554 5.5.2 (smtpd_forbid_bare_newline =
  yes, the default) once the real end arrives, and the smuggled
  transaction is never executed;
- the data_reader_vectors go over the wire: dot-unstuffing, the bytes
  after the terminator read as the next command, truncated input never
  becomes a message;
- the pipelining probe: a second message sent without waiting, after HELO
  (no PIPELINING), is not accepted;
- with smtpd_forbid_bare_newline = no, the bytes stay in the one message.

Stored contents are compared byte for byte after the daemon stopped."""

import json
import os
import re
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402


def load_vectors():
    path = os.path.join(smta.vectors_dir(), "smtp-smuggling.json")
    if not os.path.exists(path):
        return None, path
    with open(path) as f:
        return json.load(f), path


def has_bare_cr_or_lf(b):
    return bool(re.search(rb"(?<!\r)\n|\r(?!\n)", b))


def expand_wire(s):
    """The vectors write a long line as 'a*8193 + "\\r\\n..."'."""
    m = re.match(r'^(\w)\*(\d+) \+ "(.*)"$', s)
    if m:
        tail = m.group(3).encode().decode("unicode_escape")
        return m.group(1) * int(m.group(2)) + tail
    return s


class AcceptSmuggling(unittest.TestCase):
    d = None
    vec = None

    @classmethod
    def setUpClass(cls):
        cls.vec, path = load_vectors()
        if cls.vec is None:
            raise unittest.SkipTest("conformance vectors absent: %s" % path)
        cls.d = smta.Daemon("smuggling", {})
        try:
            cls.d.start()
        except BaseException:
            cls.d.cleanup()
            raise
        cls.stored = {}   # recipient -> expectation about the content

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            cls.d.cleanup()

    def tearDown(self):
        if smta.test_failed(self):
            smta.log("---- strictmtad log ----\n" + self.d.log_text(60))

    def open_data(self, rcpt, helo="EHLO"):
        c = self.d.smtp()
        self.addCleanup(c.close)
        smta.greeted(c)
        code, _ = c.cmd("%s smuggler.strictmta.test" % helo)
        self.assertEqual(code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<smuggler@strictmta.test>")[0],
                         250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt)[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        return c

    def test_1_end_of_data_sequences(self):
        problems = []
        for v in self.vec["end_of_data_sequences"]:
            vid = v["id"]
            seq = bytes.fromhex(v["bytes_hex"])
            rcpt = "eod-%s@example.org" % vid
            evil = "evil-%s@example.org" % vid
            head = ("Subject: smuggling %s\r\nX-Vector: %s\r\n\r\nbefore"
                    % (vid, vid)).encode()
            smuggled = ("MAIL FROM:<evil@strictmta.test>\r\n"
                        "RCPT TO:<%s>\r\nDATA\r\nSubject: smuggled\r\n\r\n"
                        "SMUGGLED %s\r\n" % (evil, vid)).encode()
            if vid == "valid-crlf-dot-crlf":
                # The real end: the message ends there (what follows
                # would be the next command; not sent here, since content
                # before the 354 is a pipelining error of its own).
                c = self.open_data(rcpt)
                c.send(head + seq)
                code, text = c.reply()
                extra = c.pending(1.0)
                if code != 250 or extra:
                    problems.append("%s: %d %s, then %r" %
                                    (vid, code, text, extra))
                self.stored[rcpt] = ("ends-with", b"\r\nbefore\r\n")
                c.close()
                continue
            payload = head + seq + smuggled + b"\r\n.\r\n"
            c = self.open_data(rcpt)
            c.send(payload)
            try:
                code, text = c.reply()
            except (EOFError, OSError) as e:
                problems.append("%s: no reply (%s)" % (vid, e))
                continue
            extra = c.pending(1.0)
            if extra:
                problems.append("%s: more replies after the end of data "
                                "(commands smuggled?): %r" % (vid, extra))
            self.stored[evil] = ("absent", None)
            bare = has_bare_cr_or_lf(payload[:-5])
            if vid == "dot-stuffed-line":
                if code != 250:
                    problems.append("%s: %d %s" % (vid, code, text))
                self.stored[rcpt] = ("contains", b"before\r\n.\r\nMAIL "
                                     b"FROM:<evil@strictmta.test>\r\n")
            elif bare:
                if code != 554 or not text.startswith("5.5.2"):
                    problems.append("%s: want 554 5.5.2 (bare CR/LF), got "
                                    "%d %s" % (vid, code, text))
                self.stored[rcpt] = ("absent", None)
            else:
                # NUL only: refused, or kept whole as one message.
                if code // 100 == 5:
                    self.stored[rcpt] = ("absent", None)
                elif code == 250:
                    self.stored[rcpt] = ("contains", seq + smuggled)
                else:
                    problems.append("%s: %d %s" % (vid, code, text))
            # The session is still in step with the client.
            code, text = c.cmd("NOOP")
            if code != 250:
                problems.append("%s: NOOP after the message: %d %s" %
                                (vid, code, text))
            c.close()
        self.assertEqual(problems, [], "\n".join(problems))

    def test_2_data_reader_vectors(self):
        problems = []
        for v in self.vec.get("data_reader_vectors", []):
            vid = v["id"]
            variants = v.get("wire_variants") or [v.get("wire")]
            for n, wire in enumerate(variants):
                if wire is None:
                    continue
                wire = expand_wire(wire).encode("latin-1")
                rcpt = "rv-%s-%d@example.org" % (vid, n)
                c = self.open_data(rcpt)
                c.send(wire)
                if "expect_error" in v and "expect_remaining" not in v:
                    # Truncated: the client goes away; nothing is queued.
                    c.sock.shutdown(socket.SHUT_WR)
                    c.closed_by_peer(5)
                    c.close()
                    self.stored[rcpt] = ("absent", None)
                    continue
                try:
                    code, text = c.reply()
                except (EOFError, OSError) as e:
                    problems.append("%s: no reply (%s)" % (vid, e))
                    continue
                data = v.get("expect_data")
                if has_bare_cr_or_lf(wire.split(b"\r\n.\r\n")[0]):
                    if code != 554 or not text.startswith("5.5.2"):
                        problems.append("%s: want 554 5.5.2, got %d %s" %
                                        (vid, code, text))
                    self.stored[rcpt] = ("absent", None)
                elif len(max(wire.split(b"\r\n"), key=len)) > 998:
                    if code // 100 != 5:
                        problems.append("%s: line over 1000 octets: %d %s"
                                        % (vid, code, text))
                    self.stored[rcpt] = ("absent", None)
                elif data is not None:
                    if code != 250:
                        problems.append("%s: %d %s" % (vid, code, text))
                    self.stored[rcpt] = ("exact-body",
                                         data.encode("latin-1"))
                rem = v.get("expect_remaining")
                if rem == "NEXT\r\n":
                    # The bytes after the terminator are the next command.
                    try:
                        code, text = c.reply()
                        if code not in (500, 502):
                            problems.append("%s: NEXT as a command: %d %s"
                                            % (vid, code, text))
                    except (EOFError, OSError) as e:
                        problems.append("%s: no reply to NEXT (%s)" %
                                        (vid, e))
                c.close()
        self.assertEqual(problems, [], "\n".join(problems))

    def test_3_pipelining_probe(self):
        p = self.vec.get("pipelining")
        if not p:
            self.skipTest("no pipelining probe in the vectors")
        rcpt1 = "pipe-probe-1@example.org"
        rcpt2 = "pipe-probe-2@example.org"
        c = self.open_data(rcpt1, helo="HELO")
        c.send(b"Subject: probe 1\r\n\r\nmail 1\r\n.\r\n"
               b"MAIL FROM:<probe@strictmta.test>\r\n"
               b"RCPT TO:<" + rcpt2.encode() + b">\r\nDATA\r\n"
               b"Subject: probe 2\r\n\r\nmail 2\r\n.\r\n")
        time.sleep(1.5)
        got = c.pending(1.0).decode(errors="replace")
        codes = re.findall(r"(?m)^(\d{3}) ", got)
        smta.log("pipelining probe replies: %r" % codes)
        self.stored[rcpt2] = ("absent", None)
        self.assertFalse(len(codes) >= 5 and codes[4] == "250",
                         "mail 2 accepted after HELO without waiting: "
                         "%r (%s)" % (codes, p.get("expect_strict")))

    def test_4_stored_contents(self):
        """Stops the daemon of tests 1 to 3 and compares what it stored."""
        if not self.stored:
            self.skipTest("nothing was sent")
        qids = {}
        for m in self.d.wait_queue(lambda l: True, 5):
            for r in m["recipients"]:
                qids.setdefault(r, []).append(m["qid"])
        self.assertEqual(self.d.stop(), 0, self.d.log_text())
        contents = self.d.contents()
        problems = []
        for rcpt, (kind, want) in sorted(self.stored.items()):
            found = qids.get(rcpt, [])
            if kind == "absent":
                if found:
                    problems.append("%s: queued %s, must not be" %
                                    (rcpt, found))
                continue
            if len(found) != 1:
                problems.append("%s: %d messages" % (rcpt, len(found)))
                continue
            content = contents.get(found[0])
            if content is None:
                problems.append("%s: %s not in the contents database" %
                                (rcpt, found[0]))
                continue
            if kind == "contains" and want not in content:
                problems.append("%s: content lacks %r: %r" %
                                (rcpt, want, content[-300:]))
            elif kind == "ends-with" and not content.endswith(want):
                problems.append("%s: content ends %r" % (rcpt,
                                                          content[-60:]))
            elif kind == "exact-body":
                # Only header lines (Received:) may come before the data.
                if want == b"":
                    ok = smta.split_added_headers(content, b"") is not None
                else:
                    ok = smta.split_added_headers(content, want) is not None
                if not ok:
                    problems.append("%s: stored %r, sent data %r" %
                                    (rcpt, content[-200:], want))
        self.assertEqual(problems, [], "\n".join(problems))


    def test_5_bare_newlines_kept_as_content(self):
        """smtpd_forbid_bare_newline = no: the other treatment the vectors
        allow. No sequence ends the data; the bytes stay in the one
        message (dot-unstuffed only at real line starts) and the smuggled
        transaction never runs."""
        d = smta.Daemon("smuggling-keep",
                        {"smtpd_forbid_bare_newline": "no"})
        self.addCleanup(d.cleanup)
        d.start()
        want = {}
        problems = []
        for v in self.vec["end_of_data_sequences"]:
            vid = v["id"]
            if vid == "valid-crlf-dot-crlf":
                continue
            seq = bytes.fromhex(v["bytes_hex"])
            rcpt = "keep-%s@example.org" % vid
            data = (("Subject: keep %s\r\n\r\nbefore" % vid).encode() +
                    seq + b"MAIL FROM:<evil@strictmta.test>\r\n"
                    b"RCPT TO:<evil-keep@example.org>\r\nDATA\r\n"
                    b"SMUGGLED\r\n")
            c = d.smtp()
            smta.greeted(c)
            c.ehlo()
            c.cmd("MAIL FROM:<keeper@strictmta.test>")
            c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(data + b".\r\n")
            code, text = c.reply()
            extra = c.pending(1.0)
            c.close()
            if extra:
                problems.append("%s: extra replies %r" % (vid, extra))
            if b"\0" in seq:
                if code // 100 != 5:
                    problems.append("%s: NUL accepted: %d %s" %
                                    (vid, code, text))
                continue
            if code != 250:
                problems.append("%s: %d %s" % (vid, code, text))
                continue
            lines = [l[1:] if l.startswith(b".") else l
                     for l in data.split(b"\r\n")]
            want[rcpt] = b"\r\n".join(lines)
        qids = {}
        for m in d.queue_list():
            for r in m["recipients"]:
                qids.setdefault(r, []).append(m["qid"])
        if "evil-keep@example.org" in qids:
            problems.append("a smuggled transaction was queued")
        self.assertEqual(d.stop(), 0, d.log_text(30))
        contents = d.contents()
        for rcpt, content in sorted(want.items()):
            q = qids.get(rcpt, [])
            if len(q) != 1:
                problems.append("%s: %d messages" % (rcpt, len(q)))
            elif smta.split_added_headers(contents.get(q[0], b""),
                                          content) is None:
                problems.append("%s: stored %r, want %r" %
                                (rcpt, contents.get(q[0], b"")[-120:],
                                 content[-120:]))
        self.assertEqual(problems, [], "\n".join(problems))


if __name__ == "__main__":
    smta.main()
