#!/usr/bin/python3
"""test_daemon_start - strictmtad start-up, the queue CLI, and shutdown.

Starts the daemon in the foreground on 127.22.0.1 with a queue in a temp
folder, sends one message over SMTP, and drives `strictmta queue ...`
(list, --json, show, hold, release, flush, stats, delete). Then checks the
failures an admin meets first: an unknown parameter (file, line, key; no
port bound), a port already taken, a second daemon on the same queue, the
CLI without a daemon (exit 75), and a clean stop on SIGTERM.

As root the daemon drops to the user strictmta (created here if missing,
with the group strictmtadrop), so the privilege drop is exercised.
Exit 77 (skipped) when the programs are not built.
"""
import grp
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

ADDR = "127.22.0.1"
ADMIN_GROUP = "strictmtaadm"
failures = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)


def free_port():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    try:
        with socket.create_connection((ADDR, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(pred, seconds=10.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def ensure_users():
    if subprocess.run(["getent", "group", "strictmtadrop"],
                      stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["groupadd", "--system", "strictmtadrop"], check=True)
    try:
        pwd.getpwnam("strictmta")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", "strictmta"], check=True)
    if subprocess.run(["getent", "group", ADMIN_GROUP],
                      stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["groupadd", "--system", ADMIN_GROUP], check=True)


def main():
    build = os.environ.get("STRICTMTA_BUILD_DIR",
                           os.path.join(os.path.dirname(__file__),
                                        "../../build"))
    daemon = os.path.join(build, "mta/strictmtad")
    cli = os.path.join(build, "mta/strictmta")
    sendmail = os.path.join(build, "mta/sendmail")
    for prog in (daemon, cli):
        if not os.access(prog, os.X_OK):
            print("SKIP: %s is not built" % prog)
            return 77
    as_root = os.geteuid() == 0
    if as_root:
        ensure_users()

    tmp = tempfile.mkdtemp(prefix="strictmta-daemon-")
    # The daemon, once it is strictmta, must reach the queue inside.
    os.chmod(tmp, 0o755)
    procs = []
    try:
        return run(tmp, daemon, cli, sendmail, as_root, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def write_config(path, qdir, port, transport=None):
    with open(path, "w") as f:
        f.write("queue_directory = %s\n" % qdir)
        f.write("smtpd_listen = %s:%d\n" % (ADDR, port))
        # Never DNS beyond loopback: a resolver address where nothing listens.
        f.write("dns_resolver_mode = stub\n")
        f.write("dns_stub_resolvers = 127.22.255.253\n")
        f.write("maillog_file = -\n")
        f.write("myhostname = mx.test.example\n")
        f.write("import_interval = 1s\n")
        # Delivery must not touch the network or DNS, and must keep the
        # recipients pending while the test looks: every domain goes to
        # a local port that accepts and never answers.
        f.write("mta_sts_enable = no\n")
        f.write("smtp_dns_support_level = enabled\n")
        if transport:
            f.write("transport_maps = %s\n" % transport)


def start(daemon, cfg, logpath, procs, *args):
    log = open(logpath, "ab")
    p = subprocess.Popen([daemon, "-c", cfg, "-f"] + list(args),
                         stdout=log, stderr=subprocess.STDOUT)
    log.close()
    procs.append(p)
    return p


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def run(tmp, daemon, cli, sendmail, as_root, procs):
    port = free_port()
    qdir = os.path.join(tmp, "queue")
    cfg = os.path.join(tmp, "main.cf")
    logpath = os.path.join(tmp, "maillog")
    # The next hop that never answers (connect succeeds in the backlog).
    sink = socket.socket()
    sink.bind((ADDR, 0))
    sink.listen(64)
    transport = os.path.join(tmp, "transport")
    with open(transport, "w") as f:
        for dom in ("example.net", "example.org", "example.com"):
            f.write("%s [%s]:%d\n" % (dom, ADDR, sink.getsockname()[1]))
    write_config(cfg, qdir, port, transport)

    def q(*args):
        return subprocess.run([cli, "-c", cfg, "queue"] + list(args),
                              capture_output=True, text=True, timeout=30)

    # -n prints the effective configuration and starts nothing.
    r = subprocess.run([daemon, "-c", cfg, "-n"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0 and
          ("queue_directory = %s\n" % qdir) in r.stdout and
          "smtpd_banner = mx.test.example ESMTP strictmta" in r.stdout,
          "strictmtad -n prints the configuration")
    check(not os.path.exists(qdir), "strictmtad -n creates nothing")
    if as_root:  # the accounts exist (ensure_users)
        r = subprocess.run([cli, "config", "check", "-c", cfg],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0,
              "strictmta config check accepts a good file")

    # The CLI without a daemon: exit 75 and say so.
    r = q("list")
    check(r.returncode == 75, "CLI exits 75 when the daemon is down (%d)"
          % r.returncode)
    check(("cannot connect to the daemon at %s/private/control: is "
           "strictmtad running?" % qdir) in r.stderr,
          "CLI names the socket and asks whether strictmtad runs")
    r = q("show", "nonsense")
    check(r.returncode == 64 and "not a queue ID" in r.stderr,
          "CLI usage error exits 64")

    p = start(daemon, cfg, logpath, procs)
    check(wait_for(lambda: port_open(port)), "daemon listens on the port")
    check(wait_for(lambda: os.path.exists(
        os.path.join(qdir, "private/control"))), "control socket exists")
    if p.poll() is not None:
        print(read(logpath))
        return 1

    st = os.stat(os.path.join(qdir, "maildrop"))
    check(oct(st.st_mode & 0o7777) == oct(0o1730), "maildrop is 1730")
    check(oct(os.stat(os.path.join(qdir, "db")).st_mode & 0o777) ==
          oct(0o700), "db is 0700")
    check(oct(os.stat(os.path.join(qdir, "private")).st_mode & 0o777) ==
          oct(0o750), "private is 0750")
    check(oct(os.stat(os.path.join(qdir, "private/control")).st_mode &
              0o777) == oct(0o660), "control socket is 0660")
    # The pid is written after the privilege drop: the daemon is ready.
    pidfile = os.path.join(qdir, "pid/master.pid")
    check(wait_for(lambda: os.path.exists(pidfile) and
                   read(pidfile).strip() == str(p.pid)),
          "pid file holds the pid")
    if as_root:
        pw = pwd.getpwnam("strictmta")
        status = read("/proc/%d/status" % p.pid)
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        check(all(int(u) == pw.pw_uid for u in uids),
              "daemon runs as strictmta (uids %s)" % " ".join(uids))
        check(st.st_uid == pw.pw_uid, "maildrop is owned by strictmta")

    r = q("list")
    check(r.returncode == 0 and r.stdout == "Mail queue is empty\n",
          "empty queue: 'Mail queue is empty'")

    # One message over SMTP.
    s = smtplib.SMTP(ADDR, port, timeout=30)
    s.ehlo("client.test.example")
    s.mail("alice@example.org")
    s.rcpt("bob@example.net")
    code, resp = s.data(b"Subject: daemon test\r\nFrom: alice@example.org"
                        b"\r\n\r\nHello.\r\n")
    s.quit()
    resp = resp.decode(errors="replace")
    check(code == 250, "message accepted (%d %s)" % (code, resp))
    m = re.search(r"\b([0-9A-F]{16})\b", resp)
    qid = m.group(1) if m else None
    check(qid is not None, "250 reply names the queue ID")
    if qid is None:
        print(read(logpath))
        return 1

    r = q("list")
    check(r.returncode == 0 and qid in r.stdout and
          "alice@example.org" in r.stdout and
          "bob@example.net (pending)" in r.stdout and
          "-- 1 Kbytes in 1 Request." in r.stdout,
          "queue list shows the message, its recipient pending, a footer")
    r = q("list", "--json")
    ok = r.returncode == 0
    try:
        doc = json.loads(r.stdout)
        msg = [x for x in doc["messages"] if x["queue_id"] == qid][0]
        ok = ok and msg["sender"] == "alice@example.org" and \
            msg["recipients"][0]["address"] == "bob@example.net" and \
            msg["recipients"][0]["state"] == "pending" and \
            msg["held"] is False and doc["count"] == 1
    except (ValueError, KeyError, IndexError) as e:
        print(r.stdout, e)
        ok = False
    check(ok, "queue list --json shows the message, recipient pending")

    r = q("show", qid.lower())
    check(r.returncode == 0 and ("queue_id: " + qid) in r.stdout and
          "sender: <alice@example.org>" in r.stdout and
          "Subject: daemon test" in r.stdout and "Hello." not in r.stdout,
          "queue show: envelope and header, not the body")

    r = q("hold", qid)
    check(r.returncode == 0, "queue hold")
    r = q("list")
    check((qid + "!") in r.stdout and "bob@example.net (held)" in r.stdout,
          "held message is marked with '!' and (held)")
    r = q("release", qid)
    check(r.returncode == 0, "queue release")
    r = q("list", "--json")
    doc = json.loads(r.stdout) if r.returncode == 0 else {"messages": []}
    check(any(x["queue_id"] == qid and not x["held"] and
              x["recipients"][0]["state"] == "pending"
              for x in doc["messages"]), "released message is pending")
    r = q("flush")
    check(r.returncode == 0, "queue flush")
    r = q("stats", "--json")
    try:
        stats = json.loads(r.stdout)
        ok = stats["queue"]["messages"] == 1 and \
            stats["smtpd"]["messages"] >= 1
    except (ValueError, KeyError):
        ok = False
    check(r.returncode == 0 and ok, "queue stats --json counts it")

    # The daemon told delivery about the new mail: it connected to the
    # silent next hop and waits there, the recipient still pending.
    def delivering():
        r = q("stats", "--json")
        try:
            return json.loads(r.stdout)["delivery"]["connections"] >= 1
        except (ValueError, KeyError):
            return False
    check(wait_for(delivering, 10), "delivery was kicked (a connection)")
    r = q("stats")
    check(r.returncode == 0 and "queue messages: 1\n" in r.stdout and
          "delivery connections: " in r.stdout, "queue stats (text)")
    r = q("show", "0000000000000001")
    check(r.returncode == 1 and "no such message" in r.stderr,
          "show of an unknown ID: exit 1, 'no such message'")

    # Mail from sendmail(1) is picked up from the maildrop.
    if os.access(sendmail, os.X_OK):
        env = dict(os.environ, STRICTMTA_CONFIG=cfg)
        r = subprocess.run([sendmail, "-f", "carol@example.org",
                            "dave@example.net"], input=b"Subject: local\n\n"
                           b"hi\n", env=env, capture_output=True,
                           timeout=30)
        check(r.returncode == 0, "sendmail wrote to the maildrop (%s)"
              % r.stderr.decode(errors="replace").strip())

        def imported():
            out = q("list").stdout
            return "dave@example.net (pending)" in out

        check(wait_for(imported), "maildrop file imported into the queue")
        check(os.listdir(os.path.join(qdir, "maildrop")) == [],
              "maildrop file removed after import")
        check(re.search(r"[0-9A-F]{16}: uid=\d+ from=<carol@example.org>",
                        read(logpath)) is not None,
              "import logged like pickup (uid=N from=<...>)")
        # A file that does not parse goes to corrupt/, never lost.
        bad = os.path.join(qdir, "maildrop", "00000000000000AB")
        with open(bad, "w") as f:
            f.write("not a maildrop file\n")
        if as_root:
            os.chown(bad, 0, pwd.getpwnam("strictmta").pw_gid)
        check(wait_for(lambda: os.path.exists(
            os.path.join(qdir, "corrupt", "00000000000000AB"))),
            "bad maildrop file moved to corrupt/")

    # The raw protocol: one line in, "OK"/"ERR" out, then close.
    def raw(data):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(30)
        c.connect(os.path.join(qdir, "private/control"))
        try:
            c.sendall(data)
        except OSError:
            pass
        out = b""
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        c.close()
        return out.decode(errors="replace")
    check(raw(b"stats\n").startswith("OK\nuptime: "), "raw: stats")
    check(raw(b"stats\r\n").startswith("OK\nuptime: "), "raw: CRLF")
    check(raw(b"frobnicate\n").startswith("ERR unknown command"),
          "raw: unknown command is ERR")
    check(raw(b"list\x00\n") == "ERR control or non-ASCII character in "
          "request\n", "raw: a NUL is refused")
    check(raw(b"x" * 9000) == "ERR request too long\n",
          "raw: a request over 8192 bytes is refused")
    check(raw(b"hold" + b" 0123456789ABCDEF" * 600 + b"\n") ==
          "ERR request too long\n", "raw: too many IDs is refused")

    r = q("delete", "--all")
    check(r.returncode == 0, "queue delete --all")
    r = q("list")
    check(r.stdout == "Mail queue is empty\n", "queue empty after delete")

    # A port already taken: clear error, exit non-zero.
    port2 = free_port()
    cfg2 = os.path.join(tmp, "taken.cf")
    write_config(cfg2, os.path.join(tmp, "queue2"), port)
    r = subprocess.run([daemon, "-c", cfg2, "-f"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode != 0 and ("%s:%d" % (ADDR, port)) in r.stderr and
          "in use" in r.stderr.lower(),
          "taken port: exit %d, %s" % (r.returncode, r.stderr.strip()))
    # A second daemon on the same queue, other port: refused.
    cfg3 = os.path.join(tmp, "same-queue.cf")
    write_config(cfg3, qdir, port2)
    r = subprocess.run([daemon, "-c", cfg3, "-f"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode != 0 and "another strictmtad is running" in r.stderr,
          "second daemon on one queue refused: %s" % r.stderr.strip())
    check(not port_open(port2), "refused daemon left no port open")
    check(p.poll() is None, "first daemon still running")

    # SIGTERM: stop accepting, close the queue, exit 0.
    p.send_signal(signal.SIGTERM)
    try:
        code = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        code = None
    check(code == 0, "SIGTERM: exit 0 (%s)" % code)
    log = read(logpath)
    check("daemon stopped" in log, "log says 'daemon stopped'")
    check(not os.path.exists(os.path.join(qdir, "private/control")),
          "control socket removed")
    check(not os.path.exists(pidfile), "pid file removed")
    check(not port_open(port), "port closed")

    # An unknown parameter on line 3: file, line and key; nothing bound.
    port4 = free_port()
    cfg4 = os.path.join(tmp, "bad.cf")
    with open(cfg4, "w") as f:
        f.write("queue_directory = %s\n" % os.path.join(tmp, "queue4"))
        f.write("smtpd_listen = %s:%d\n" % (ADDR, port4))
        f.write("bogus_key = 1\n")
    p4 = start(daemon, cfg4, os.path.join(tmp, "bad.log"), procs)
    try:
        code = p4.wait(timeout=20)
    except subprocess.TimeoutExpired:
        code = None
    out = read(os.path.join(tmp, "bad.log"))
    check(code not in (None, 0), "bad config: exit non-zero (%s)" % code)
    check(("%s:3: bogus_key: unknown parameter" % cfg4) in out,
          "bad config names file, line and key: %s" % out.strip())
    check(not port_open(port4), "bad config: nothing bound")
    check(not os.path.exists(os.path.join(tmp, "queue4")),
          "bad config: no queue created")
    r = subprocess.run([cli, "config", "check", "-c", cfg4],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 78 and "3: bogus_key: unknown parameter" in
          r.stderr, "strictmta config check: exit 78 with the reason")

    # -d: detach, pid file, stop by its pid.
    # The detached daemon keeps stderr (maillog_file = -): a file, not a
    # pipe that run() would wait on.
    extra = ["-o", "admin_group=" + ADMIN_GROUP] if as_root else []
    with open(logpath, "ab") as log:
        p5 = subprocess.run([daemon, "-c", cfg, "-d"] + extra, stdout=log,
                            stderr=log, timeout=30)
    check(p5.returncode == 0, "strictmtad -d returns 0 once started")
    ok = wait_for(lambda: os.path.exists(pidfile) and read(pidfile).strip())
    pid = int(read(pidfile).strip()) if ok else None
    check(pid is not None and port_open(port), "-d daemon is up")
    if pid and as_root:
        admin_gid = grp.getgrnam(ADMIN_GROUP).gr_gid
        nobody = ["setpriv", "--reuid=65534", "--regid=65534"]

        def as_nobody(groups, *args):
            return subprocess.run(nobody + groups + [cli, "-c", cfg, "queue"] +
                                  list(args), capture_output=True, text=True,
                                  timeout=30)
        r = as_nobody(["--groups=%d" % admin_gid], "stats")
        check(r.returncode == 0, "admin_group member may use the CLI (%s)"
              % r.stderr.strip())
        r = as_nobody(["--clear-groups"], "stats")
        check(r.returncode == 77 and "permission denied" in r.stderr,
              "others are refused by the socket's mode (exit 77)")
        # Even with the modes opened by mistake, SO_PEERCRED refuses.
        ctl = os.path.join(qdir, "private/control")
        os.chmod(os.path.join(qdir, "private"), 0o755)
        os.chmod(ctl, 0o666)
        r = as_nobody(["--clear-groups"], "list")
        check(r.returncode == 77 and r.stderr.strip() ==
              "strictmta: permission denied",
              "peer credentials checked: ERR permission denied (%s)"
              % r.stderr.strip())
        os.chmod(ctl, 0o660)
        os.chmod(os.path.join(qdir, "private"), 0o750)
    if pid:
        os.kill(pid, signal.SIGTERM)
        def gone():
            try:
                return "\nState:\tZ" in read("/proc/%d/status" % pid)
            except OSError:
                return True
        check(wait_for(gone, 20), "-d daemon stops on SIGTERM")

    # A TLS key only root can read: read before the drop, so STARTTLS
    # works (Postfix's habit; admins keep keys 0600 root).
    if as_root and shutil.which("openssl"):
        key = os.path.join(tmp, "key.pem")
        cert = os.path.join(tmp, "cert.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey",
                            "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", cert,
                            "-days", "2", "-subj", "/CN=mx.test.example"],
                           capture_output=True, timeout=60)
        os.chmod(key, 0o600)
        p6 = start(daemon, cfg, logpath, procs, "-o",
                   "smtpd_tls_cert_file=" + cert, "-o",
                   "smtpd_tls_key_file=" + key)
        ok = r.returncode == 0 and wait_for(
            lambda: os.path.exists(pidfile) and
            read(pidfile).strip() == str(p6.pid))
        check(ok, "daemon starts with a root-only TLS key")
        if ok:
            s = smtplib.SMTP(ADDR, port, timeout=30)
            s.ehlo("client.test.example")
            check(s.has_extn("starttls"), "STARTTLS offered")
            s.quit()
        p6.send_signal(signal.SIGTERM)
        try:
            code = p6.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, "TLS daemon stops with exit 0 (%s)" % code)

    if failures:
        print("--- daemon log ---")
        print(read(logpath))
        print("%d failed" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
