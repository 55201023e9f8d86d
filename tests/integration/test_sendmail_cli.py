#!/usr/bin/python3
"""test_sendmail_cli - the built sendmail binary against
shared/vectors/sendmail-cli.json (stdin/argv behaviours, real caller
command lines), the -bs SMTP session, the daemon-down paths, and a run as
an unprivileged user through a setgid copy.

Each run uses a temporary config (STRICTMTA_CONFIG) whose queue_directory
holds a maildrop/ folder made here; the resulting file is parsed with the
format documented in mta/sendmail/maildrop.h. Exit 77 (skip) when the
binary is missing.
"""
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

FAILS = []
PASSES = 0


def check(cond, what):
    global PASSES
    if cond:
        PASSES += 1
    else:
        FAILS.append(what)
        print("FAIL: " + what, file=sys.stderr)


def find_binary():
    build = os.environ.get("STRICTMTA_BUILD_DIR", os.getcwd())
    for cand in (os.path.join(build, "mta", "sendmail"),
                 os.path.join(build, "sendmail")):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    for root, _dirs, files in os.walk(build):
        if "sendmail" in files and "CMakeFiles" not in root:
            p = os.path.join(root, "sendmail")
            if os.access(p, os.X_OK):
                return p
    return None


def parse_maildrop(data):
    """The maildrop format, version 1 (see maildrop.h)."""
    magic = b"SMTAMD1\n"
    if not data.startswith(magic):
        raise ValueError("bad magic")
    pos = len(magic)
    msg = {"rcpts": []}
    order = "SRNTEFUIC"
    last = 0
    while True:
        tag = chr(data[pos])
        colon = data.index(b":", pos)
        n = int(data[pos + 1:colon])
        val = data[colon + 1:colon + 1 + n]
        if data[colon + 1 + n:colon + 2 + n] != b"\n":
            raise ValueError("record not ended by newline")
        pos = colon + 2 + n
        rank = order.index(tag)
        if rank < last:
            raise ValueError("records out of order")
        last = rank
        if tag == "R":
            msg["rcpts"].append(val.decode())
        elif tag == "C":
            msg["content"] = val
            break
        else:
            msg[tag] = val.decode()
    if pos != len(data):
        raise ValueError("data after content")
    content = msg["content"]
    # CRLF only: no bare CR or LF.
    if content.replace(b"\r\n", b"").count(b"\n") or \
            content.replace(b"\r\n", b"").count(b"\r"):
        raise ValueError("bare CR or LF in content")
    head, _, body = content.partition(b"\r\n\r\n")
    msg["header"] = head.decode("utf-8", "replace")
    msg["body"] = body
    msg["sender"] = msg.get("S", "")
    return msg


class Env:
    def __init__(self, binary, top):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="cli-", dir=top)
        self.queue = os.path.join(self.dir, "q")
        self.maildrop = os.path.join(self.queue, "maildrop")
        os.makedirs(self.maildrop)
        self.config = os.path.join(self.dir, "main.cf")
        with open(self.config, "w") as f:
            f.write("queue_directory = %s\n" % self.queue)
            f.write("myhostname = host.example.org\n")
            f.write("mydomain = example.org\n")
            f.write("maillog_file = %s\n" % os.path.join(self.dir, "log"))

    def files(self):
        if not os.path.isdir(self.maildrop):
            return []
        return sorted(n for n in os.listdir(self.maildrop)
                      if not n.startswith("."))

    def run(self, argv, stdin=b"", argv0=None, binary=None, user=None,
            env_extra=None):
        """Runs sendmail; returns (rc, stdout, stderr, [parsed files])."""
        before = set(self.files())
        env = {"PATH": "/usr/sbin:/usr/bin:/bin", "TZ": "UTC",
               "STRICTMTA_CONFIG": self.config}
        if env_extra:
            env.update(env_extra)
        exe = binary or self.binary
        if argv0 is not None:
            # A mode chosen by argv[0]: run through a symlink of that name.
            link = os.path.join(self.dir, argv0)
            if not os.path.exists(link):
                os.symlink(exe, link)
            exe = link
        cmd = [exe] + list(argv)
        if user:
            cmd = ["runuser", "-u", user, "--"] + cmd
        if isinstance(stdin, str):
            stdin = stdin.encode()
        p = subprocess.run(cmd, input=stdin, capture_output=True, env=env,
                           timeout=30)
        new = [n for n in self.files() if n not in before]
        msgs = []
        for n in new:
            with open(os.path.join(self.maildrop, n), "rb") as f:
                m = parse_maildrop(f.read())
            m["qid"] = n
            m["path"] = os.path.join(self.maildrop, n)
            msgs.append(m)
        return p.returncode, p.stdout, p.stderr, msgs


def header_names(msg):
    names = []
    for line in msg["header"].split("\r\n"):
        if line and line[0] not in " \t" and ":" in line:
            names.append(line.split(":", 1)[0].lower())
    return names


def one(vid, res, rc=0, written=None):
    code, _out, err, msgs = res
    check(code == rc, "%s: exit %d, expected %d (%s)" % (vid, code, rc,
                                                         err.decode()))
    if written is None:
        written = rc == 0
    if written:
        check(len(msgs) == 1, "%s: %d maildrop files" % (vid, len(msgs)))
    else:
        check(len(msgs) == 0, "%s: a file was written" % vid)
    return msgs[0] if msgs else {"rcpts": [], "body": b"", "header": ""}


DEFAULT_STDIN = "Subject: x\n\nbody\n"


def behaviour(env, v):
    vid = v["id"]
    argv = v.get("argv", [])
    stdin = v.get("stdin", DEFAULT_STDIN)
    if vid == "dot-ends-input-without-i":
        m = one(vid, env.run(argv, stdin))
        check(m["body"] == b"line1\r\n", vid)
    elif vid == "dot-is-data-with-i":
        m = one(vid, env.run(argv, stdin))
        check(m["body"] == b"line1\r\n.\r\nline3\r\n", vid)
    elif vid == "dot-is-data-with-oi":
        m = one(vid, env.run(argv, stdin))
        check(m["body"] == b".\r\n", vid)
    elif vid == "double-dot-not-unstuffed":
        m = one(vid, env.run(argv, stdin))
        check(m["body"] == b"..two dots\r\n", vid)
    elif vid == "dot-with-trailing-space":
        m = one(vid, env.run(argv, stdin))
        check(m["body"] == b". \r\nmore\r\n", vid)
    elif vid == "dot-crlf-ends-input":
        m = one(vid, env.run(argv, stdin))
        check(m["body"] == b"line1\r\n", vid)
    elif vid == "crlf-normalised":
        # Stored as CRLF here (the maildrop holds wire form); the point
        # of the vector, no CR doubling and no bare CR, holds.
        m = one(vid, env.run(argv, stdin))
        check(m["body"] == b"body\r\n", vid)
    elif vid == "dot-inside-long-line":
        # We never wrap lines: a "." at the end of a long line is text.
        m = one(vid, env.run(["rcpt@example.com"],
                             "Subject: x\n\n" + "x" * 2048 + ".\nafter\n"))
        check(m["body"].endswith(b".\r\nafter\r\n"), vid)
    elif vid == "leading-from-line-stripped":
        m = one(vid, env.run(argv, stdin))
        check("From someone" not in m["header"] and
              "subject" in header_names(m), vid)
    elif vid in ("t-bcc-removed", "t-resent-takes-precedence"):
        m = one(vid, env.run(argv, stdin))
        exp = v["expect"]
        check(sorted(m["rcpts"]) == sorted(exp["envelope_rcpt"]),
              "%s: rcpts %s" % (vid, m["rcpts"]))
        for k, want in exp.items():
            if k.startswith("header_") and k.endswith("_present"):
                name = k[len("header_"):-len("_present")].lower()
                check((name in header_names(m)) == want,
                      "%s: header %s present" % (vid, name))
    elif vid in ("t-plus-argument-not-in-header",
                 "t-plus-argument-in-header"):
        # Our documented choice: Postfix's (arguments are added).
        m = one(vid, env.run(argv, stdin))
        check(sorted(m["rcpts"]) ==
              sorted(v["expect_postfix"]["envelope_rcpt_set"]),
              "%s: rcpts %s" % (vid, m["rcpts"]))
    elif vid == "t-no-recipients":
        _rc, _o, err, _m = env.run(argv, stdin)
        one(vid, (_rc, _o, err, _m), 64)
        check(b"No recipient addresses found in message header" in err, vid)
    elif vid == "no-recipients-no-t":
        _rc, _o, err, _m = env.run(argv, stdin)
        one(vid, (_rc, _o, err, _m), 64)
        check(b"Recipient addresses must be specified" in err, vid)
    elif vid == "argument-is-address-list":
        m = one(vid, env.run(argv, stdin))
        check(sorted(m["rcpts"]) == ["a@example.com", "b@example.com"], vid)
    elif vid == "F-only-without-from":
        m = one(vid, env.run(argv, stdin))
        check("From: Real <real@example.com>" in m["header"] and
              "Cron Daemon" not in m["header"], vid)
    elif vid == "double-dash":
        m = one(vid, env.run(argv, stdin))
        check(m["rcpts"] == ["-not-an-option@example.com"], vid)
    elif vid == "B-invalid":
        one(vid, env.run(argv, stdin), 64)
    elif vid == "unknown-o-options":
        one(vid, env.run(argv, stdin))
    elif vid == "q-interval":
        one(vid, env.run(argv, stdin), 0, written=False)
    elif vid == "q-unknown":
        _rc, _o, err, _m = env.run(argv, stdin)
        one(vid, (_rc, _o, err, _m), 64)
        check(b"-qX: unsupported queue option" in err, vid)
    elif vid == "v-once":
        # Divergence: no delivery report is mailed; -v is accepted.
        one(vid, env.run(argv, stdin))
    elif vid == "mode-by-argv0":
        rc, _o, err, _m = env.run([], b"", argv0="mailq")
        check(rc == 75 and b"mailq: the strictmta daemon is not running"
              in err, "%s: mailq rc %d %s" % (vid, rc, err))
        rc, _o, err, msgs = env.run([], b"", argv0="newaliases")
        check(rc == 0 and not msgs, "%s: newaliases rc %d" % (vid, rc))
    else:
        check(False, "behaviour vector %s has no check here" % vid)


CRON_STDIN = ("From: root (Cron Daemon)\nTo: root\n"
              "Subject: Cron <root@host> run-parts /etc/cron.daily\n"
              "Content-Type: text/plain; charset=UTF-8\n\n"
              "output line\n.\nmore output\n")
PATCH_STDIN = ("From: Dev <dev@example.com>\nTo: list@example.com\n"
               "Cc: maint@example.com\nSubject: [PATCH] fix\n"
               "Message-ID: <p1@example.com>\nDate: Mon, 1 Jan 2024 "
               "00:00:00 +0000\n\n---\n.hidden | 1 +\n.\n..\n-- \n2.43\n")
PHP_STDIN = ("To: Customer <c@example.com>\nSubject: Order\n"
             "Bcc: audit@example.com\nX-PHP-Originating-Script: 0:x.php\n\n"
             "Thanks\n")
LOG_STDIN = ("To: root\nFrom: logwatch\nSubject: Logwatch\n\n"
             "report\n.\ncut here without -i\n")

# Concrete command lines for each caller in the vectors (placeholders
# filled in), with stdin and a check of the result.
CALLERS = {
    "cronie": (["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t",
                "-f", "root"], CRON_STDIN,
               lambda m: m["rcpts"] == ["root@example.org"] and
               m["sender"] == "root@example.org" and
               m["body"].endswith(b".\r\nmore output\r\n") and
               "From: root (Cron Daemon)" in m["header"]),
    "Debian/Ubuntu cron (vixie cron)": (
        ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        CRON_STDIN.replace("From: root (Cron Daemon)\n", ""),
        lambda m: m["rcpts"] == ["root@example.org"] and
        int(m.get("F", "0")) & 1 and
        "From: CronDaemon <" in m["header"]),
    "mutt / neomutt": (["-oem", "-oi", "-f", "me@example.com", "-N",
                        "failure,delay", "-R", "hdrs", "-V", "env1", "--",
                        "a@example.com", "b@example.com"],
                       "From: me@example.com\nTo: a@example.com\n"
                       "Bcc: b@example.com\nSubject: hi\n\n.\nbye\n",
                       lambda m: sorted(m["rcpts"]) ==
                       ["a@example.com", "b@example.com"] and
                       m.get("N") == "12" and m.get("T") == "2" and
                       m.get("E") == "env1" and
                       "bcc" not in header_names(m) and
                       m["body"] == b".\r\nbye\r\n"),
    "git send-email (sendemail.smtpServer = path)": (
        ["-i", "-f", "dev@example.com", "list@example.com",
         "maint@example.com", "hidden@example.com"], PATCH_STDIN,
        lambda m: len(m["rcpts"]) == 3 and
        m["sender"] == "dev@example.com" and
        m["body"].endswith(b".hidden | 1 +\r\n.\r\n..\r\n-- \r\n2.43\r\n")
        and "Message-ID: <p1@example.com>" in m["header"]),
    "PHP mail()": (["-t", "-i", "-f", "shop@example.com"], PHP_STDIN,
                   lambda m: sorted(m["rcpts"]) ==
                   ["audit@example.com", "c@example.com"] and
                   "bcc" not in header_names(m)),
    "logwatch": (["-t"], LOG_STDIN,
                 lambda m: m["rcpts"] == ["root@example.org"] and
                 m["body"] == b"report\r\n"),
    "s-nail / mailx": (["-i", "-m", "-v", "user@example.com"],
                       "Subject: s\nTo: user@example.com\n\n.\nx\n",
                       lambda m: m["body"] == b".\r\nx\r\n"),
    "Perl Mail::Mailer (sendmail backend)": (
        ["-t"], "To: a@example.com\nCc: b@example.com\nSubject: p\n\nx\n",
        lambda m: sorted(m["rcpts"]) == ["a@example.com", "b@example.com"]),
    "systemd-cron / anacron / atd": (["-FAnacron", "-odi", "root"],
                                     "Subject: anacron\n\nx\n",
                                     lambda m: "Anacron" in m["header"]),
}


def callers(env, vectors):
    for c in vectors["real_callers"]:
        name = c["caller"]
        if name not in CALLERS:
            check(False, "caller %s has no command line here" % name)
            continue
        argv, stdin, ok = CALLERS[name]
        m = one("caller " + name, env.run(argv, stdin))
        check(bool(m.get("content") is not None and ok(m)),
              "caller %s: result %s" % (name, m.get("rcpts")))


def smtp_session(env):
    script = (b"EHLO client.example\r\n"
              b"MAIL FROM:<s@example.com> BODY=8BITMIME RET=HDRS "
              b"ENVID=e+2B1\r\n"
              b"RCPT TO:<a@example.com> NOTIFY=SUCCESS,FAILURE\r\n"
              b"RCPT TO:<b@example.com> NOTIFY=NEVER\r\n"
              b"DATA\r\n"
              b"Subject: bs\r\n\r\n..dot\r\nline\r\n.\r\n"
              b"MAIL FROM:<s@example.com>\r\n"
              b"RCPT TO:<c@example.com>\r\n"
              b"DATA\r\n"
              b"Subject: bare\r\n\r\nbad\nline\r\n.\r\n"
              b"RSET\r\nNOOP\r\nVRFY x\r\nQUIT\r\n")
    rc, out, err, msgs = env.run(["-bs"], script)
    lines = out.decode().split("\r\n")
    check(rc == 0, "-bs exit %d %s" % (rc, err))
    check(lines[0].startswith("220 host.example.org"), "-bs greeting")
    check(any(l.startswith("250 2.0.0 Ok: queued as ") for l in lines),
          "-bs queued: %s" % lines)
    check(any(l.startswith("554 5.5.2") for l in lines),
          "-bs bare LF refused: %s" % lines)
    check("221 2.0.0 Bye" in lines, "-bs QUIT")
    # Two NOTIFY values: two files, the same content.
    check(len(msgs) == 2, "-bs files: %d" % len(msgs))
    by = {tuple(m["rcpts"]): m for m in msgs}
    a = by.get(("a@example.com",))
    b = by.get(("b@example.com",))
    check(a is not None and a.get("N") == "6" and a.get("T") == "2" and
          a.get("E") == "e+1" and int(a.get("F", "0")) & 1 and
          a["sender"] == "s@example.com" and
          a["body"] == b".dot\r\nline\r\n", "-bs message a: %s" % a)
    check(b is not None and b.get("N") == "1", "-bs message b")
    # Sequence errors, unknown and over-long commands.
    rc, out, _e, msgs = env.run(["-bs"], b"RCPT TO:<a@b>\r\nDATA\r\n"
                                b"HELO x\r\nMAIL FROM:<a@b>\r\nDATA\r\n"
                                b"MAIL FROM:<c@d>\r\nXYZZY\r\n" +
                                b"NOOP " + b"x" * 600 + b"\r\n"
                                b"QUIT\r\n")
    codes = [l[:3] for l in out.decode().split("\r\n") if l]
    check(codes == ["220", "503", "503", "250", "250", "554", "503", "502",
                    "500", "221"] and not msgs, "-bs errors: %s" % codes)
    # The error limit ends the session.
    rc, out, _e, msgs = env.run(["-bs"], b"XYZZY\r\n" * 30)
    codes = [l[:3] for l in out.decode().split("\r\n") if l]
    check(codes[-1] == "421" and len(codes) <= 22, "-bs error limit")
    # EOF in the middle: nothing written, exit 0.
    rc, out, err, msgs = env.run(["-bs"], b"HELO x\r\nMAIL FROM:<>\r\n"
                                 b"RCPT TO:<a@b>\r\nDATA\r\npartial\r\n")
    check(rc == 0 and not msgs, "-bs EOF inside DATA")


def misc(env):
    # Daemon down: -q and -bp say so and exit 75.
    rc, _o, err, _m = env.run(["-q"])
    check(rc == 75 and b"not running" in err, "-q daemon down: %s" % err)
    rc, _o, err, _m = env.run(["-bp"])
    check(rc == 75 and b"not running" in err, "-bp daemon down")
    # Unknown option: 64 and a message.
    rc, _o, err, _m = env.run(["-Z", "a@b"])
    check(rc == 64 and b"invalid option" in err, "unknown option")
    # No maildrop: 75, nothing written.
    shutil.rmtree(env.maildrop)
    rc, _o, err, _m = env.run(["a@example.com"], DEFAULT_STDIN)
    check(rc == 75 and b"maildrop" in err, "missing maildrop: %d" % rc)
    os.makedirs(env.maildrop)
    # A bad config file: 78 with the file and line.
    bad = os.path.join(env.dir, "bad.cf")
    with open(bad, "w") as f:
        f.write("no_such_parameter = 1\n")
    rc, _o, err, _m = env.run(["-C", bad, "a@example.com"], DEFAULT_STDIN)
    check(rc == 78 and bad.encode() in err, "bad config: %d %s" % (rc, err))
    # Success is silent; the default sender is the login name.
    rc, out, err, msgs = env.run(["a@example.com"], DEFAULT_STDIN)
    check(rc == 0 and out == b"" and err == b"", "silent success")
    if msgs:
        me = pwd.getpwuid(os.getuid()).pw_name
        check(msgs[0]["sender"] == me + "@example.org", "default sender")
        check(msgs[0]["U"] == me and msgs[0]["I"] == str(os.getuid()),
              "user record")
        names = header_names(msgs[0])
        for h in ("received", "from", "date", "message-id"):
            check(h in names, "added header %s" % h)
        check("Message-ID: <" in msgs[0]["header"] and
              msgs[0]["qid"] + "@host.example.org>" in msgs[0]["header"],
              "Message-ID has the queue ID")
    # maillog_file = - is the daemon's stderr, not ours: still silent.
    quiet = os.path.join(env.dir, "quiet.cf")
    with open(env.config) as f, open(quiet, "w") as g:
        g.write(f.read().replace("maillog_file = ", "# "))
        g.write("maillog_file = -\n")
    rc, out, err, msgs = env.run(["-C", quiet, "a@example.com"],
                                 DEFAULT_STDIN)
    check(rc == 0 and len(msgs) == 1 and out == b"" and err == b"",
          "silent with maillog_file = -: %r" % err)
    # -F cannot inject a header line.
    rc, _o, _e, msgs = env.run(["-F", "x\nBcc: evil@example.com",
                                "a@example.com"], DEFAULT_STDIN)
    check(rc == 0 and msgs and "evil" not in str(msgs[0]["rcpts"]) and
          "\nBcc" not in msgs[0]["header"], "-F injection")


def no_database(binary):
    """sendmail must never touch the queue database: no Berkeley DB
    library among its dependencies and no db_* symbol imported."""
    p = subprocess.run(["readelf", "-d", binary], capture_output=True)
    if p.returncode != 0:
        print("readelf unavailable: skipping the library check")
        return
    # The hard rule is no db_* symbol (below). A DT_NEEDED entry for
    # libdb comes from the link line (smta_smtpd pulls smta_queue) and
    # stays when --as-needed is off, as in sanitizer builds: a note only.
    if b"libdb" in p.stdout:
        print("note: libdb is a DT_NEEDED entry of sendmail (no symbol "
              "used); link it with -Wl,--as-needed to drop it")
    p = subprocess.run(["nm", "-u", binary], capture_output=True)
    if p.returncode == 0:
        bad = [l for l in p.stdout.decode().split("\n")
               if l.strip().startswith("U db_")]
        check(not bad, "sendmail imports %s" % bad)


def unprivileged(binary, top):
    if os.geteuid() != 0:
        print("not root: skipping the setgid run")
        return
    with open(binary, "rb") as f:
        if b"__asan_init" in f.read():
            # The sanitizer runtime aborts in a setgid process.
            print("sanitizer build: skipping the setgid run")
            return
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        print("no user nobody: skipping the setgid run")
        return
    try:
        grp.getgrnam("strictmtadrop")
    except KeyError:
        subprocess.run(["groupadd", "-r", "strictmtadrop"], check=True)
    gid = grp.getgrnam("strictmtadrop").gr_gid
    base = tempfile.mkdtemp(prefix="setgid-", dir=top)
    os.chmod(base, 0o755)
    exe = os.path.join(base, "sendmail")
    shutil.copy(binary, exe)
    os.chown(exe, 0, gid)
    os.chmod(exe, 0o2755)
    queue = os.path.join(base, "q")
    md = os.path.join(queue, "maildrop")
    os.makedirs(md)
    os.chmod(queue, 0o755)
    os.chown(md, 0, gid)
    os.chmod(md, 0o1730)
    cfgdir = os.path.join(base, "etc")
    os.makedirs(cfgdir)
    os.chmod(cfgdir, 0o755)
    cfg = os.path.join(cfgdir, "main.cf")
    with open(cfg, "w") as f:
        f.write("queue_directory = %s\nmyhostname = host.example.org\n"
                "mydomain = example.org\n" % queue)
    os.chmod(cfg, 0o644)
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "STRICTMTA_CONFIG": cfg}

    def as_nobody(cmd, stdin=b""):
        return subprocess.run(["runuser", "-u", "nobody", "--"] + cmd,
                              input=stdin, capture_output=True, env=env,
                              timeout=30)

    p = as_nobody([exe, "a@example.com"], b"Subject: x\n\nbody\n")
    check(p.returncode == 0, "nobody submit: %d %s" % (p.returncode,
                                                        p.stderr))
    files = [n for n in os.listdir(md) if not n.startswith(".")]
    check(len(files) == 1, "nobody: %d files" % len(files))
    if files:
        st = os.stat(os.path.join(md, files[0]))
        check(st.st_uid == nobody.pw_uid, "file owned by nobody")
        check(stat.S_IMODE(st.st_mode) == 0o644, "file mode 0644")
        with open(os.path.join(md, files[0]), "rb") as f:
            m = parse_maildrop(f.read())
        check(m["U"] == "nobody" and m["sender"] == "nobody@example.org",
              "nobody's envelope")
    leftovers = [n for n in os.listdir(md) if n.startswith(".")]
    check(not leftovers, "no temporary files left")
    # nobody can neither list nor read the folder directly.
    p = as_nobody(["ls", md])
    check(p.returncode != 0, "nobody cannot list the maildrop")
    if files:
        p = as_nobody(["cat", os.path.join(md, files[0])])
        check(p.returncode != 0, "nobody cannot read a maildrop file")
    # A config nobody controls: the setgid group is dropped, so the
    # maildrop is not writable: 75 and nothing written.
    ucfg_dir = tempfile.mkdtemp(prefix="ucfg-", dir=top)
    os.chmod(ucfg_dir, 0o777)
    ucfg = os.path.join(ucfg_dir, "main.cf")
    with open(ucfg, "w") as f:
        f.write("queue_directory = %s\n" % queue)
    os.chown(ucfg, nobody.pw_uid, nobody.pw_gid)
    p = as_nobody([exe, "-C", ucfg, "a@example.com"], b"x\n")
    check(p.returncode == 75, "untrusted -C keeps no group: %d %s" %
          (p.returncode, p.stderr))
    files2 = [n for n in os.listdir(md) if not n.startswith(".")]
    check(len(files2) == len(files), "untrusted -C wrote nothing")


def main():
    binary = find_binary()
    if binary is None:
        print("sendmail binary not built: skipping")
        return 77
    vec_dir = os.environ.get("STRICTMTA_VECTORS", "")
    vec_path = os.path.join(vec_dir, "sendmail-cli.json")
    top = tempfile.mkdtemp(prefix="strictmta-sendmail-")
    os.chmod(top, 0o755)
    try:
        env = Env(binary, top)
        if os.path.isfile(vec_path):
            with open(vec_path) as f:
                vectors = json.load(f)
            for v in vectors["behaviour_vectors"]:
                behaviour(env, v)
            callers(env, vectors)
        else:
            print("%s absent: skipping the vector checks" % vec_path)
        smtp_session(env)
        misc(env)
        no_database(binary)
        unprivileged(binary, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print("%d passed, %d failed" % (PASSES, len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
