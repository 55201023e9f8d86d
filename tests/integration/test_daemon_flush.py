#!/usr/bin/python3
"""test_daemon_flush - hold, release and flush reach delivery.

The next hop for example.net answers every connection with "421 busy", so
each attempt defers the recipient with the backoff (300 s). Then:
`queue flush` makes it due at once and delivery tries again (attempts
grows); `queue hold` keeps it from delivery, `flush` leaves it held, and
`queue release` gives it back and delivery tries again.

Exit 77 (skipped) when the programs are not built.
"""
import json
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
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


class BusyServer:
    """Answers each connection with 421 and closes; counts connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((ADDR, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                c.sendall(b"421 4.3.2 busy, try later\r\n")
            except OSError:
                pass
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def main():
    build = os.environ.get("STRICTMTA_BUILD_DIR",
                           os.path.join(os.path.dirname(__file__),
                                        "../../build"))
    daemon = os.path.join(build, "mta/strictmtad")
    cli = os.path.join(build, "mta/strictmta")
    for prog in (daemon, cli):
        if not os.access(prog, os.X_OK):
            print("SKIP: %s is not built" % prog)
            return 77
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("strictmta")
        except KeyError:
            print("SKIP: user strictmta missing (tests/install-deps)")
            return 77
    tmp = tempfile.mkdtemp(prefix="strictmta-flush-")
    os.chmod(tmp, 0o755)
    busy = BusyServer()
    procs = []
    try:
        return run(tmp, daemon, cli, busy, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        busy.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, daemon, cli, busy, procs):
    qdir = os.path.join(tmp, "queue")
    cfg = os.path.join(tmp, "main.cf")
    logpath = os.path.join(tmp, "maillog")
    s = socket.socket()
    s.bind((ADDR, 0))
    port = s.getsockname()[1]
    s.close()
    transport = os.path.join(tmp, "transport")
    with open(transport, "w") as f:
        f.write("example.net [%s]:%d\n" % (ADDR, busy.port))
    with open(cfg, "w") as f:
        f.write("queue_directory = %s\n" % qdir)
        f.write("smtpd_listen = %s:%d\n" % (ADDR, port))
        # Never DNS beyond loopback: a resolver address where nothing listens.
        f.write("dns_resolver_mode = stub\n")
        f.write("dns_stub_resolvers = 127.22.255.253\n")
        f.write("maillog_file = -\n")
        f.write("mta_sts_enable = no\n")
        f.write("smtp_dns_support_level = enabled\n")
        f.write("smtp_tls_security_level = may\n")
        f.write("minimal_backoff_time = 300s\n")
        f.write("queue_run_delay = 300s\n")
        f.write("transport_maps = %s\n" % transport)

    log = open(logpath, "ab")
    p = subprocess.Popen([daemon, "-c", cfg, "-f"], stdout=log,
                         stderr=subprocess.STDOUT)
    log.close()
    procs.append(p)
    pidfile = os.path.join(qdir, "pid/master.pid")

    def ready():
        try:
            with open(pidfile) as f:
                return f.read().strip() == str(p.pid)
        except OSError:
            return False
    check(wait_for(ready), "daemon started")

    def q(*args):
        return subprocess.run([cli, "-c", cfg, "queue"] + list(args),
                              capture_output=True, text=True, timeout=30)

    def rcpt():
        r = q("list", "--json")
        try:
            return json.loads(r.stdout)["messages"][0]["recipients"][0]
        except (ValueError, KeyError, IndexError):
            return None

    s = smtplib.SMTP(ADDR, port, timeout=30)
    s.sendmail("alice@example.org", ["bob@example.net"],
               b"Subject: flush test\r\n\r\nHello.\r\n")
    s.quit()

    def deferred(n):
        def pred():
            r = rcpt()
            return r is not None and r["state"] == "deferred" and \
                r["attempts"] >= n
        return pred

    check(wait_for(deferred(1), 20), "first attempt deferred (421)")
    r = rcpt() or {}
    check("421" in (r.get("last_response") or ""),
          "last response kept: %s" % r.get("last_response"))
    check(r.get("next_attempt", 0) > time.time() + 200,
          "next attempt after the backoff")
    attempts = r.get("attempts", 0)
    conns = busy.connections

    r = q("flush")
    check(r.returncode == 0 and "1 message flushed" in r.stdout,
          "queue flush: %s" % r.stdout.strip())
    check(wait_for(deferred(attempts + 1), 20),
          "flush: delivery tried again at once")
    check(busy.connections > conns, "flush: a new connection was made")

    qid = json.loads(q("list", "--json").stdout)["messages"][0]["queue_id"]
    r = q("hold", qid)
    check(r.returncode == 0, "hold")
    held = rcpt() or {}
    check(held.get("state") == "held", "recipient held")
    attempts = held.get("attempts", 0)
    q("flush")
    time.sleep(1.5)
    r = rcpt() or {}
    check(r.get("state") == "held" and r.get("attempts") == attempts,
          "flush leaves a held recipient alone")
    r = q("release", qid)
    check(r.returncode == 0, "release")
    check(wait_for(deferred(attempts + 1), 20),
          "release: delivery tried again")

    p.send_signal(signal.SIGTERM)
    try:
        code = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        code = None
    check(code == 0, "daemon stopped with exit 0 (%s)" % code)
    if failures:
        with open(logpath, errors="replace") as f:
            print("--- daemon log ---")
            print(f.read())
        print("%d failed" % len(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
