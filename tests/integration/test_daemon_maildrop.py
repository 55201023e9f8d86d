#!/usr/bin/python3
"""test_daemon_maildrop - the maildrop import across restarts.

1. Mail that sendmail(1) drops while the daemon is down is imported at the
   next start, under the queue ID that names the file.
2. A crash between the commit and the unlink leaves the file behind; the
   next start finds the ID already queued and only removes the file: the
   message is queued once (the import is idempotent).
3. Files that are not named by a queue ID are left alone.

Exit 77 (skipped) when strictmtad, strictmta or sendmail is not built.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ADDR = "127.22.0.1"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def wait_for(pred, seconds=10.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def main():
    build = os.environ.get("STRICTMTA_BUILD_DIR",
                           os.path.join(os.path.dirname(__file__),
                                        "../../build"))
    daemon = os.path.join(build, "mta/strictmtad")
    cli = os.path.join(build, "mta/strictmta")
    sendmail = os.path.join(build, "mta/sendmail")
    for prog in (daemon, cli, sendmail):
        if not os.access(prog, os.X_OK):
            print("SKIP: %s is not built" % prog)
            return 77
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("strictmta")
        except KeyError:
            print("SKIP: user strictmta missing (tests/install-deps "
                  "creates it; test_daemon_start does too)")
            return 77
    tmp = tempfile.mkdtemp(prefix="strictmta-maildrop-")
    os.chmod(tmp, 0o755)
    procs = []
    try:
        return run(tmp, daemon, cli, sendmail, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, daemon, cli, sendmail, procs):
    qdir = os.path.join(tmp, "queue")
    cfg = os.path.join(tmp, "main.cf")
    logpath = os.path.join(tmp, "maillog")
    # A free port in our range, and a next hop that never answers so
    # that delivery keeps the recipient pending.
    s = socket.socket()
    s.bind((ADDR, 0))
    port = s.getsockname()[1]
    s.close()
    sink = socket.socket()
    sink.bind((ADDR, 0))
    sink.listen(64)
    transport = os.path.join(tmp, "transport")
    with open(transport, "w") as f:
        f.write("example.net [%s]:%d\n" % (ADDR, sink.getsockname()[1]))
    with open(cfg, "w") as f:
        f.write("queue_directory = %s\n" % qdir)
        f.write("smtpd_listen = %s:%d\n" % (ADDR, port))
        # Never DNS beyond loopback: a resolver address where nothing listens.
        f.write("dns_resolver_mode = stub\n")
        f.write("dns_stub_resolvers = 127.22.255.253\n")
        f.write("maillog_file = -\n")
        # Every import here must come from the scan at start or from the
        # backlog rescans, never from the timer.
        f.write("import_interval = 60s\n")
        f.write("mta_sts_enable = no\n")
        f.write("smtp_dns_support_level = enabled\n")
        f.write("transport_maps = %s\n" % transport)

    def start():
        log = open(logpath, "ab")
        p = subprocess.Popen([daemon, "-c", cfg, "-f"], stdout=log,
                             stderr=subprocess.STDOUT)
        log.close()
        procs.append(p)
        ok = wait_for(lambda: os.path.exists(
            os.path.join(qdir, "private/control")))
        check(ok and p.poll() is None, "daemon started")
        return p

    def stop(p):
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, "daemon stopped with exit 0 (%s)" % code)

    def listing():
        r = subprocess.run([cli, "-c", cfg, "queue", "list", "--json"],
                           capture_output=True, text=True, timeout=30)
        try:
            return json.loads(r.stdout)["messages"]
        except ValueError:
            return None

    def log_text():
        with open(logpath, errors="replace") as f:
            return f.read()

    # The first start creates the layout; then the daemon is down.
    stop(start())
    maildrop = os.path.join(qdir, "maildrop")

    env = dict(os.environ, STRICTMTA_CONFIG=cfg)
    r = subprocess.run([sendmail, "-f", "erin@example.org",
                        "frank@example.net"],
                       input=b"Subject: while down\n\nhello\n", env=env,
                       capture_output=True, timeout=30)
    check(r.returncode == 0, "sendmail works while the daemon is down")
    files = [n for n in os.listdir(maildrop) if not n.startswith(".")]
    check(len(files) == 1, "one file waits in the maildrop: %s" % files)
    if len(files) != 1:
        return 1
    qid = files[0]
    saved = os.path.join(tmp, "saved")
    shutil.copy2(os.path.join(maildrop, qid), saved)
    st = os.stat(os.path.join(maildrop, qid))
    # Not a queue ID: never imported, never removed.
    stray = os.path.join(maildrop, "README")
    with open(stray, "w") as f:
        f.write("not mail\n")

    p = start()
    check(wait_for(lambda: not os.path.exists(os.path.join(maildrop, qid))),
          "file imported and removed at start")
    msgs = listing()
    check(msgs is not None and [m["queue_id"] for m in msgs] == [qid],
          "queued under the file's name %s" % qid)
    check(os.path.exists(stray), "a file not named by a queue ID stays")
    os.unlink(stray)
    stop(p)

    # A backlog larger than the imports in flight (64) is taken at once,
    # not one bite per import_interval.
    backlog = 150
    for i in range(backlog):
        r = subprocess.run([sendmail, "-f", "erin@example.org",
                            "frank@example.net"],
                           input=b"Subject: backlog\n\nhello\n", env=env,
                           capture_output=True, timeout=30)
        if r.returncode != 0:
            break
    check(r.returncode == 0, "sendmail queued a backlog of %d" % backlog)
    p = start()
    check(wait_for(lambda: not [n for n in os.listdir(maildrop)
                                if not n.startswith(".")], 20),
          "backlog imported well within import_interval")
    msgs = listing()
    check(msgs is not None and len(msgs) == backlog + 1,
          "backlog queued (%s)" % (len(msgs) if msgs else msgs))
    # Keep only the first message for the next step.
    r = subprocess.run([cli, "-c", cfg, "queue", "delete"] +
                       [m["queue_id"] for m in (msgs or [])
                        if m["queue_id"] != qid],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "backlog deleted (%s)" % r.stderr.strip())
    stop(p)

    # As if the daemon died after the commit but before the unlink.
    shutil.copy2(saved, os.path.join(maildrop, qid))
    os.chown(os.path.join(maildrop, qid), st.st_uid, st.st_gid)
    p = start()
    check(wait_for(lambda: not os.path.exists(os.path.join(maildrop, qid))),
          "leftover file removed")
    msgs = listing()
    check(msgs is not None and len(msgs) == 1 and
          msgs[0]["queue_id"] == qid, "still queued once")
    check(("%s: already queued; removing the maildrop file" % qid)
          in log_text(), "log says it was already queued")
    stop(p)

    if failures:
        print("--- daemon log ---")
        print(log_text())
        print("%d failed" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
