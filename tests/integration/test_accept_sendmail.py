#!/usr/bin/python3
"""Local submission with `sendmail`, installed setgid strictmtadrop, run as
the unprivileged user nobody:

- with the daemon stopped the message waits in the maildrop area (which
  nobody can list, and the queue database nobody can write); once the
  daemon runs, it is imported into the queue;
- the command lines of real callers (cron, mutt, git send-email, PHP,
  logwatch, s-nail, Perl, anacron) and the stdin/option behaviour vectors
  of sendmail-cli.json give the result each names, with the project's
  choice accepted where Postfix and Exim differ.

Contents are read back from the queue database after the daemon stopped
(tests/lib/smta.py dump_contents)."""

import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

USER = "nobody"
DROP_GROUP = "strictmtadrop"
EX_USAGE = 64


def as_user(argv, stdin=b"", timeout=30, user=USER, groups=None):
    """Runs argv as user (runuser, or setpriv) with stdin; groups: extra
    groups to hold (setpriv). Returns the CompletedProcess."""
    if groups:
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", "--reuid", str(pw.pw_uid), "--regid",
               str(pw.pw_gid), "--groups", ",".join(groups)] + argv
    elif shutil.which("runuser"):
        cmd = ["runuser", "-u", user, "--"] + argv
    else:
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", "--reuid", str(pw.pw_uid), "--regid",
               str(pw.pw_gid), "--clear-groups"] + argv
    return subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout,
                          cwd="/")


def header_names(content):
    head = content.split(b"\r\n\r\n", 1)[0]
    return [l.split(b":", 1)[0].lower() for l in head.split(b"\r\n")
            if l and l[:1] not in (b" ", b"\t")]


def body_of(content):
    return content.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in content \
        else b""


class AcceptSendmail(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls):
        try:
            grp.getgrnam(DROP_GROUP)
            pwd.getpwnam(USER)
        except KeyError as e:
            raise unittest.SkipTest("missing user or group (run "
                                    "tests/install-deps): %s" % e)
        cls.d = smta.Daemon("sendmail", {"mydomain": "strictmta.test"})
        # The installed sendmail: setgid strictmtadrop, mode 2755.
        cls.bindir = os.path.join(cls.d.dir, "bin")
        os.makedirs(cls.bindir)
        os.chmod(cls.bindir, 0o755)
        cls.sendmail = os.path.join(cls.bindir, "sendmail")
        shutil.copy(smta.program("sendmail"), cls.sendmail)
        shutil.chown(cls.sendmail, user="root", group=DROP_GROUP)
        # LeakSanitizer cannot run in a setgid process (it is not
        # dumpable): a sanitizer build runs as nobody holding the group
        # instead, which grants the same write access to the maildrop.
        with open(cls.sendmail, "rb") as f:
            cls.sanitized = b"__asan_init" in f.read()
        if cls.sanitized:
            smta.log("sanitizer build: sendmail runs as %s with group %s "
                     "instead of setgid" % (USER, DROP_GROUP))
            os.chmod(cls.sendmail, 0o755)
            cls.groups = [DROP_GROUP]
        else:
            os.chmod(cls.sendmail, 0o2755)
            cls.groups = None
        cls.mailq = os.path.join(cls.bindir, "mailq")
        os.symlink("sendmail", cls.mailq)

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            cls.d.cleanup()

    def tearDown(self):
        if smta.test_failed(self):
            smta.log("---- strictmtad log ----\n" + self.d.log_text(60))

    def submit(self, args, stdin, user=USER):
        if isinstance(stdin, str):
            stdin = stdin.encode()
        return as_user([self.sendmail, "-C", self.d.conf] + args, stdin,
                       user=user, groups=self.groups)

    def maildrop(self):
        return os.path.join(self.d.queue_dir, "maildrop")

    def test_1_unprivileged_with_daemon_down_then_up(self):
        d = self.d
        # First start creates the queue layout; then stop the daemon.
        d.start()
        self.assertEqual(d.stop(), 0, d.log_text())
        md = self.maildrop()
        st = os.stat(md)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o1730,
                         "maildrop mode %o" % stat.S_IMODE(st.st_mode))
        self.assertEqual(grp.getgrgid(st.st_gid).gr_name, DROP_GROUP)

        msg = ("From: Nobody <nobody@strictmta.test>\n"
               "To: to-1@example.org\n"
               "Cc: cc-1@example.org\n"
               "Bcc: bcc-1@example.org\n"
               "Subject: offline submission\n"
               "\n"
               "written while strictmtad was down\n")
        p = self.submit(["-t", "-i"], msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        files = [f for f in os.listdir(md) if not f.startswith(".")]
        self.assertEqual(len(files), 1, files)
        self.assertRegex(files[0], r"^[0-9A-F]{16}$")
        owner = os.stat(os.path.join(md, files[0])).st_uid
        self.assertEqual(owner, pwd.getpwnam(USER).pw_uid,
                         "the file belongs to the submitting user")

        # The unprivileged user can neither read the maildrop nor touch
        # the queue database.
        p = as_user(["ls", md])
        self.assertNotEqual(p.returncode, 0, "nobody can list the maildrop")
        for root, dirs, fnames in os.walk(d.queue_dir):
            if os.path.abspath(root) == os.path.abspath(md):
                continue
            p = as_user(["touch", os.path.join(root, "nobody-was-here")])
            self.assertNotEqual(p.returncode, 0,
                                "nobody can write into %s" % root)
            for f in fnames:
                path = os.path.join(root, f)
                if os.path.isfile(path) and not os.path.islink(path):
                    p = as_user(["sh", "-c", ": >> \"$1\"", "sh", path])
                    self.assertNotEqual(p.returncode, 0,
                                        "nobody can write %s" % path)

        # Start the daemon: the message is imported.
        d.start()
        msgs = d.wait_queue(lambda l: any("to-1@example.org" in
                                          m["recipients"] for m in l), 20)
        mine = [m for m in msgs if "to-1@example.org" in m["recipients"]]
        self.assertEqual(len(mine), 1, "the maildrop file was imported")
        self.assertEqual(mine[0]["qid"], files[0],
                         "the file name is the queue ID")
        self.assertEqual(sorted(mine[0]["recipients"]),
                         ["bcc-1@example.org", "cc-1@example.org",
                          "to-1@example.org"])
        self.assertTrue(smta.wait_for(
            lambda: not [f for f in os.listdir(md)
                         if not f.startswith(".")], 10),
            "the maildrop is empty after the import")
        show = d.queue_show(mine[0]["qid"])
        self.assertNotIn("Bcc:", show)
        self.assertIn("Message-ID:", show, "sendmail adds Message-ID:")
        self.assertIn("Date:", show, "sendmail adds Date:")

        # While it runs, a new submission appears within seconds.
        p = self.submit(["-i", "online-1@example.org"],
                        "Subject: online\n\nbody\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        msgs = d.wait_queue(lambda l: any("online-1@example.org" in
                                          m["recipients"] for m in l), 20)
        self.assertTrue([m for m in msgs
                         if "online-1@example.org" in m["recipients"]])
        # -O requiretls (RFC 8689) is kept with the message, as MAIL
        # FROM ... REQUIRETLS would be, and delivery honours it: the test
        # routes example.org to a plain next hop by address, which cannot
        # keep the promise, so the message is returned at once with
        # 5.7.10, while the same message without the flag waits (4.4.1).
        p = self.submit(["-i", "-O", "requiretls", "rtls-1@example.org"],
                        "Subject: requiretls\n\nbody\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(smta.wait_for(lambda: re.search(
            r"to=<rtls-1@example\.org>, .*dsn=5\.7\.10, "
            r"status=bounced \(REQUIRETLS", d.log_text(2000)), 20),
            d.log_text(40))
        self.assertFalse(re.search(r"to=<online-1@example\.org>, "
                                   r".*dsn=5\.7\.10", d.log_text(2000)))
        # mailq (argv[0]) lists the queue (as root: the control socket is
        # root's and admin_group's).
        p = smta.run([self.mailq, "-C", self.d.conf], timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(files[0], p.stdout.decode(errors="replace"))
        # ... and nobody else may use the control socket.
        p = as_user([smta.program("strictmta"), "-c", self.d.conf, "queue",
                     "list"])
        self.assertNotIn(p.returncode, (0, 126, 127), p.stderr)
        self.assertNotIn(files[0], p.stdout.decode(errors="replace"))
        self.assertTrue(p.stderr.strip(), "a clear message")
        d.stop()

    def test_2_callers_and_vectors(self):
        path = os.path.join(smta.vectors_dir(), "sendmail-cli.json")
        if not os.path.exists(path):
            self.skipTest("no %s: conformance vectors absent" % path)
        with open(path) as f:
            vec = json.load(f)
        d = self.d
        d.start()
        baseline = len(d.queue_list())
        expect = {}   # token -> check(content, recipients)
        queued = [0]  # submissions that should leave a message

        def send(token, args, stdin, want_rc=(0,), user=USER):
            if isinstance(stdin, str):
                stdin = stdin.encode()
            p = self.submit(args, stdin, user=user)
            self.assertIn(p.returncode, want_rc, "%s: sendmail %s exited "
                          "%d: %s" % (token, " ".join(args), p.returncode,
                                      p.stderr.decode(errors="replace")))
            if p.returncode == 0 and stdin:
                queued[0] += 1
            return p

        # Real callers: each with a message carrying its token.
        callers = [
            ("cronie", ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t",
                        "-f", "nobody"], True),
            ("debian-cron", ["-FCronDaemon", "-i", "-B8BITMIME", "-oem",
                             "cron-rcpt@example.org"], False),
            ("mutt", ["-oem", "-oi", "-f", "mutt@strictmta.test", "-N",
                      "failure,delay", "-R", "hdrs", "-V", "mutt-envid-1",
                      "--", "mutt-a@example.org", "mutt-b@example.org"],
             False),
            ("git-send-email", ["-i", "-f", "author@strictmta.test",
                                "git-to@example.org", "git-cc@example.org"],
             False),
            ("php", ["-t", "-i"], True),
            ("logwatch", ["-t"], True),
            ("s-nail", ["-i", "-v", "snail@example.org"], False),
            ("perl-mailer", ["-t"], True),
            ("anacron", ["-FAnacron", "-odi", "root"], False),
            ("atd", ["-i", "-B", "8BITMIME", "atd@example.org"], False),
        ]
        seen = set(c["caller"].split()[0].split("/")[0].lower()
                   for c in vec.get("real_callers", []))
        smta.log("sendmail-cli.json callers: %s" % sorted(seen))
        for name, args, from_headers in callers:
            token = "caller-" + name
            body = ("To: hdr-%s@example.org\nFrom: nobody@strictmta.test\n"
                    "Subject: %s\nX-Vector: %s\n\njob output\n.line with "
                    "a dot\n" % (name, token, token))
            send(token, args, body)
            if from_headers:
                want = ["hdr-%s@example.org" % name]
            else:
                want = [a for a in args if "@" in a and not a.startswith(
                    "-") and a not in ("mutt@strictmta.test",
                                      "author@strictmta.test")]
                if name == "anacron":
                    want = ["root@strictmta.test"]
            expect[token] = ("rcpts", sorted(want))

        # Behaviour vectors: stdin and argv as given, a token header added.
        skip_ids = {"dot-inside-long-line", "mode-by-argv0"}
        for v in vec.get("behaviour_vectors", []):
            vid = v.get("id")
            if not vid or vid in skip_ids or "argv" not in v:
                continue
            token = "vector-" + vid
            argv = list(v["argv"])
            stdin = v.get("stdin", "Subject: x\n\nbody\n")
            nl = "\r\n" if "\r\n" in stdin else "\n"
            line = "X-Vector: %s%s" % (token, nl)
            if stdin.startswith("From "):
                first, rest = stdin.split("\n", 1)
                stdin = first + "\n" + line + rest
            else:
                stdin = line + stdin
            if vid in ("t-no-recipients", "no-recipients-no-t",
                       "q-unknown"):
                send(token, argv, stdin, want_rc=(EX_USAGE,))
                continue
            if vid == "B-invalid":
                send(token, argv, stdin, want_rc=(0, EX_USAGE))
                continue
            if vid == "q-interval":
                send(token, argv, "", want_rc=(0,))
                continue
            send(token, argv, stdin)
            expect[token] = ("vector", v)

        # Wait for every expected message, then read the contents.
        rcpts_by_qid = {}

        def all_in():
            msgs = d.queue_list()
            for m in msgs:
                rcpts_by_qid[m["qid"]] = m["recipients"]
            return len(msgs) >= baseline + queued[0]
        smta.wait_for(all_in, 30, 0.5)
        self.assertEqual(d.stop(), 0)
        contents = d.contents()
        problems = []
        for token, (kind, what) in sorted(expect.items()):
            qids = smta.find_by_token(contents, "X-Vector: " + token)
            if len(qids) != 1:
                problems.append("%s: %d messages in the queue" %
                                (token, len(qids)))
                continue
            content = contents[qids[0]]
            rc = sorted(rcpts_by_qid.get(qids[0], []))
            err = self.check(kind, what, content, rc)
            if err:
                problems.append("%s: %s" % (token, err))
        self.assertEqual(problems, [], "\n".join(problems))

    def check(self, kind, what, content, rcpts):
        """None, or what is wrong with one message."""
        if b"\n" in content.replace(b"\r\n", b""):
            return "bare LF in stored content"
        if b"\r" in content.replace(b"\r\n", b""):
            return "bare CR in stored content"
        hdrs = header_names(content)
        for h in (b"from", b"date", b"message-id"):
            if h not in hdrs:
                return "no %s: header added" % h.decode()
        if kind == "rcpts":
            if rcpts != what:
                return "recipients %r, want %r" % (rcpts, what)
            return None
        v = what
        vid = v["id"]
        body = body_of(content)
        exp = v.get("expect")
        if vid == "dot-ends-input-without-i":
            if b"line1" not in body or b"line3" in body:
                return "body %r" % body
        elif vid == "dot-is-data-with-i":
            if b"\r\n.\r\nline3\r\n" not in body:
                return "body %r" % body
        elif vid == "dot-is-data-with-oi":
            if body != b".\r\n":
                return "body %r" % body
        elif vid == "double-dot-not-unstuffed":
            if b"..two dots\r\n" not in body:
                return "body %r" % body
        elif vid == "dot-with-trailing-space":
            if b". \r\nmore\r\n" not in body:
                return "body %r" % body
        elif vid == "dot-crlf-ends-input":
            if b"line1" not in body or b"line3" in body:
                return "body %r" % body
        elif vid == "crlf-normalised":
            if b"body\r\n" not in body or b"\r\r" in content:
                return "content %r" % content
        elif vid == "leading-from-line-stripped":
            if content.startswith(b"From ") or b"\r\nFrom someone" in \
                    content:
                return "the 'From ' line was kept: %r" % content[:120]
        elif vid in ("t-bcc-removed", "t-resent-takes-precedence"):
            want = sorted(exp["envelope_rcpt"])
            if rcpts != want:
                return "recipients %r, want %r" % (rcpts, want)
            if b"bcc" in hdrs or b"resent-bcc" in hdrs:
                return "Bcc header kept"
        elif vid.startswith("t-plus-argument"):
            choices = [sorted(set(v["expect_postfix"]["envelope_rcpt_set"])),
                       sorted(set(v["expect_exim_default"]
                                  ["envelope_rcpt_set"]))]
            if sorted(set(rcpts)) not in choices:
                return "recipients %r, want one of %r" % (rcpts, choices)
        elif vid == "argument-is-address-list":
            if rcpts != ["a@example.com", "b@example.com"]:
                return "recipients %r" % rcpts
        elif vid == "F-only-without-from":
            if b"From: Real <real@example.com>\r\n" not in content:
                return "From: changed: %r" % content[:200]
        elif vid == "double-dash":
            if rcpts != ["-not-an-option@example.com"]:
                return "recipients %r" % rcpts
        elif vid in ("unknown-o-options", "v-once"):
            if rcpts != ["rcpt@example.com"]:
                return "recipients %r" % rcpts
        return None

    def test_3_usage_errors(self):
        for args, stdin in ((["--no-such-option", "a@example.org"], "x\n"),
                            (["-t"], "Subject: none\n\nbody\n"),
                            ([], "Subject: none\n\nbody\n")):
            p = self.submit(args, stdin)
            self.assertEqual(p.returncode, EX_USAGE,
                             "sendmail %s: %d %s" % (args, p.returncode,
                                                     p.stderr))
            self.assertTrue(p.stderr.strip(), "a clear message on stderr")


if __name__ == "__main__":
    smta.main()
