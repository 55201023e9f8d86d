"""smta - helpers for strictmta's integration tests.

A test makes a Daemon (a private queue_directory and config in a temporary
folder), starts strictmtad in the foreground by PID, talks to it with real
clients, and stops it by PID. Every wait has a timeout; every process a
test starts is stopped by its PID.

Environment (set by ctest): STRICTMTA_BUILD_DIR (the built programs),
STRICTMTA_SOURCE_DIR, STRICTMTA_VECTORS (../shared/vectors).

Addresses: the daemon listens on 127.30.0.1, a client outside mynetworks
binds 127.30.0.99, a private Postfix uses 127.30.0.2.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

DAEMON_HOST = "127.30.0.1"
OUTSIDE_HOST = "127.30.0.99"
POSTFIX_HOST = "127.30.0.2"
SKIP = 77

# Recipient domains the tests use, and where Daemon's transport_maps sends
# them: a port on loopback where nothing listens, so that mail is deferred
# and stays in the queue.
DEFER_DOMAINS = ("example.org", "example.com", "example.net",
                 "strictmta.test", "b\u00fccher.example", "localhost")
DEFER_NEXTHOP = "[127.30.255.254]:9"

QID_RE = re.compile(r"\b([0-9A-F]{16})\b")


def source_dir():
    return os.environ.get("STRICTMTA_SOURCE_DIR") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", ".."))


def build_dir():
    return os.environ.get("STRICTMTA_BUILD_DIR") or os.path.join(
        source_dir(), "build")


def vectors_dir():
    return os.environ.get("STRICTMTA_VECTORS") or os.path.join(
        source_dir(), "..", "shared", "vectors")


def program(name):
    """Path of a built program (build/mta/NAME, where CMake puts the
    programs, or build/NAME); raises AssertionError if it was not built."""
    for sub in ("mta", ""):
        path = os.path.join(build_dir(), sub, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise AssertionError("%s was not built (looked in %s/mta and %s)" %
                         (name, build_dir(), build_dir()))


def join_all(threads, stop, timeout):
    """Sets stop and joins every thread within one deadline; True when
    none is still alive (the load generators of the crash tests)."""
    stop.set()
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, end - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(cmd, timeout=60, check=False, **kw):
    """subprocess.run with a timeout and captured bytes output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(cmd, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d: %s%s" %
                             (" ".join(cmd), p.returncode,
                              p.stdout.decode(errors="replace"),
                              p.stderr.decode(errors="replace")))
    return p


def free_port(host=DAEMON_HOST):
    """A TCP port nobody listens on at host (bound and released)."""
    for _ in range(50):
        s = socket.socket()
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        # Stay below the ephemeral range where outgoing sockets live.
        if port < 60000:
            return port
    return port


def wait_port(host, port, timeout=20.0, alive=None):
    """Waits until host:port accepts a connection. alive() may say the
    server died. Returns True or False."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_for(pred, timeout=20.0, step=0.1):
    """Polls pred() until it returns a true value; returns it or None."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            return None
        time.sleep(step)


def make_tempdir(tag):
    """A temporary folder (mode 0755: the daemon's unprivileged user and
    nobody must reach files below it). Removed by the caller."""
    d = tempfile.mkdtemp(prefix="smta-%s-" % tag)
    os.chmod(d, 0o755)
    return d


def make_cert(directory, cn="mx.strictmta.test", owner="strictmta"):
    """A self-signed certificate and key; returns (cert, key) paths. The
    key is given to owner (the daemon may read it after dropping root)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:" + cn], check=True)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o600)
    try:
        shutil.chown(key, user=owner)
    except (LookupError, PermissionError):
        pass
    return cert, key


def make_password_file(directory, users, owner="strictmta"):
    """users: {name: password}. Writes name:crypt-hash lines (SHA-512 from
    `openssl passwd -6`); returns the path."""
    path = os.path.join(directory, "sasl_passwd")
    lines = []
    for name, pw in users.items():
        h = run(["openssl", "passwd", "-6", "-stdin"], input=pw.encode(),
                check=True).stdout.decode().strip()
        lines.append("%s:%s\n" % (name, h))
    with open(path, "w") as f:
        f.writelines(lines)
    os.chmod(path, 0o640)
    try:
        shutil.chown(path, group=owner)
    except (LookupError, PermissionError):
        pass
    return path


class Daemon:
    """A strictmtad with its own config and queue in a temporary folder.

    params: extra config lines {name: value}. The default listener is
    DAEMON_HOST:<free port>; smtps=True adds an implicit-TLS listener
    (needs smtpd_tls_cert_file in params)."""

    def __init__(self, tag, params=None, smtps=False):
        self.tag = tag
        self.dir = make_tempdir(tag)
        self.queue_dir = os.path.join(self.dir, "queue")
        self.conf = os.path.join(self.dir, "strictmta.cf")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.host = DAEMON_HOST
        self.port = free_port(self.host)
        self.smtps_port = free_port(self.host) if smtps else None
        self.proc = None
        self.logf = None
        self.params = {
            "queue_directory": self.queue_dir,
            "myhostname": "mx.strictmta.test",
            "smtpd_listen": "%s:%d" % (self.host, self.port),
            "mynetworks": "127.0.0.0/8",
            "maillog_file": "-",
            "import_interval": "1s",
            # No DNS query ever leaves loopback: the resolver is an
            # address where nothing listens (tests of the network
            # override these with the test network's resolver).
            "dns_resolver_mode": "stub",
            "dns_stub_resolvers": "127.30.255.253",
        }
        if smtps:
            self.params["smtps_listen"] = "%s:%d" % (self.host,
                                                     self.smtps_port)
        # Accepted mail stays queued: delivery to the tests' domains goes
        # to a loopback port where nobody listens (deferred, 4.4.1), not
        # to DNS (where .test is NXDOMAIN and would bounce).
        tmap = os.path.join(self.dir, "transport")
        with open(tmap, "w", encoding="utf-8") as f:
            for dom in DEFER_DOMAINS:
                f.write("%s %s\n.%s %s\n" % (dom, DEFER_NEXTHOP, dom,
                                              DEFER_NEXTHOP))
        os.chmod(tmap, 0o644)
        self.params["transport_maps"] = tmap
        self.params.update(params or {})
        self.write_conf()

    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write("# written by tests/lib/smta.py for %s\n" % self.tag)
            for k, v in self.params.items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf, 0o644)

    # -- process ---------------------------------------------------------

    def start(self, timeout=30.0):
        """Starts strictmtad -c CONF in the foreground; waits for the port."""
        assert self.proc is None, "already running"
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([program("strictmtad"), "-c",
                                      self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf)
        ok = wait_port(self.host, self.port, timeout,
                       alive=lambda: self.proc.poll() is None)
        if ok and self.smtps_port:
            ok = wait_port(self.host, self.smtps_port, timeout,
                           alive=lambda: self.proc.poll() is None)
        if not ok:
            rc = self.proc.poll()
            self.stop()
            raise AssertionError(
                "strictmtad did not start listening (exit %s); log:\n%s" %
                (rc, self.log_text()))
        # Ready when the control socket answers too (the last start-up
        # step); a daemon without it fails the queue checks later.
        if not wait_for(lambda: self.proc.poll() is not None or
                        self.cli("queue", "stats").returncode == 0,
                        timeout, 0.1):
            log("strictmtad: the control socket did not answer in %ds" %
                timeout)
        if self.proc.poll() is not None:
            rc = self.proc.poll()
            self.stop()
            raise AssertionError("strictmtad exited %s after start; log:\n%s"
                                 % (rc, self.log_text()))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM by PID, wait; SIGKILL if it does not exit. Returns the
        exit status (None if it was not running)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log("strictmtad pid %d ignored SIGTERM for %ds; killing" %
                    (self.proc.pid, timeout))
                self.proc.kill()
                rc = self.proc.wait(10)
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None
        return rc

    def kill9(self):
        """kill -9 by PID (the crash test)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None

    def log_text(self, tail=200):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def cleanup(self, keep_on_failure=False):
        self.stop()
        if keep_on_failure:
            log("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients ---------------------------------------------------------

    def cli(self, *args, timeout=30):
        """strictmta -c CONF ARGS...; returns the CompletedProcess."""
        return run([program("strictmta"), "-c", self.conf] + list(args),
                   timeout=timeout)

    def queue_list(self):
        """The queue as a list of dicts with at least 'qid', 'sender' and
        'recipients' (a list of addresses), from `queue list --json`."""
        p = self.cli("queue", "list", "--json")
        if p.returncode != 0:
            raise AssertionError("strictmta queue list --json exited %d: %s"
                                 % (p.returncode,
                                    p.stderr.decode(errors="replace")))
        return parse_queue_json(p.stdout.decode("utf-8", "replace"))

    def queue_ids(self):
        return [m["qid"] for m in self.queue_list()]

    def queue_show(self, qid):
        p = self.cli("queue", "show", qid)
        if p.returncode != 0:
            raise AssertionError("strictmta queue show %s exited %d: %s" %
                                 (qid, p.returncode,
                                  p.stderr.decode(errors="replace")))
        return p.stdout.decode("utf-8", "replace")

    def wait_queue(self, pred, timeout=20.0):
        """Polls queue_list() until pred(list) is true; returns the list
        (the last one seen, even if pred never became true)."""
        last = []
        end = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("strictmtad exited %s; log:\n%s" %
                                     (self.proc.returncode,
                                      self.log_text(30)))
            try:
                last = self.queue_list()
            except AssertionError:
                if time.monotonic() >= end:
                    raise
                last = []
            if pred(last) or time.monotonic() >= end:
                return last
            time.sleep(0.2)

    def contents(self):
        """{qid: content bytes} read from the queue database with Berkeley
        DB's own tools. Call with the daemon stopped."""
        assert not self.running(), "stop the daemon before reading the db"
        # A message is its head in contents.db and its tail in tails.db
        # (queue/queue.c); either may be absent.
        heads = dump_contents(self.queue_dir)
        try:
            tails = dump_contents(self.queue_dir, "tails")
        except AssertionError:
            tails = {}
        return {q: heads.get(q, b"") + tails.get(q, b"")
                for q in set(heads) | set(tails)}

    def smtp(self, bind=None, port=None, timeout=15):
        return SmtpConn(self.host, port or self.port, bind=bind,
                        timeout=timeout)


def parse_queue_json(text):
    """Accepts a JSON array of messages, an object holding such an array,
    or one JSON object per line; normalises each to have 'qid', 'sender'
    and 'recipients' (addresses)."""
    text = text.strip()
    if not text:
        return []
    try:
        docs = [json.loads(text)]
    except ValueError:
        docs = [json.loads(line) for line in text.splitlines()
                if line.strip()]
    msgs = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("truncated"):
            raise AssertionError("queue listing truncated by the daemon")
        if isinstance(doc, dict):
            for k in ("messages", "queue", "entries", "items"):
                if isinstance(doc.get(k), list):
                    msgs.extend(doc[k])
                    break
            else:
                msgs.append(doc)
        elif isinstance(doc, list):
            msgs.extend(doc)
    out = []
    for m in msgs:
        if not isinstance(m, dict):
            continue
        qid = m.get("qid") or m.get("queue_id") or m.get("id")
        if qid is None:
            continue
        rc = m.get("recipients") or m.get("rcpts") or m.get("rcpt") or []
        addrs = []
        for r in rc:
            if isinstance(r, str):
                addrs.append(r)
            elif isinstance(r, dict):
                addrs.append(r.get("address") or r.get("addr") or
                             r.get("recipient") or "")
        n = dict(m)
        n["rcpt_details"] = [r for r in rc if isinstance(r, dict)]
        n["qid"] = qid
        n["sender"] = m.get("sender", m.get("from", "")) or ""
        n["recipients"] = addrs
        out.append(n)
    return out


# -- reading the queue database ------------------------------------------

def _unescape_dump(line):
    """One data line of `db_dump -p`: printable bytes with \\HH escapes."""
    out = bytearray()
    i = 0
    b = line.encode("latin-1")
    while i < len(b):
        c = b[i]
        if c == 0x5C:  # backslash
            if b[i + 1:i + 2] == b"\\":
                out.append(0x5C)
                i += 2
                continue
            out.append(int(b[i + 1:i + 3], 16))
            i += 3
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _parse_dump(text):
    """Key/value pairs of one database from `db_dump -p` output."""
    pairs = []
    data = []
    in_data = False
    for line in text.split("\n"):
        if line == "HEADER=END":
            in_data = True
            continue
        if line == "DATA=END":
            in_data = False
            continue
        if in_data and line.startswith(" "):
            data.append(_unescape_dump(line[1:]))
    for i in range(0, len(data) - 1, 2):
        pairs.append((data[i], data[i + 1]))
    return pairs


def dump_tool(name):
    for cand in ("db5.3_" + name, "db_" + name):
        p = shutil.which(cand)
        if p:
            return p
    return None


def dump_contents(queue_dir, dbname="contents"):
    """Copies the Berkeley DB environment under queue_dir, runs recovery on
    the copy (as the daemon would at start), and returns {qid: content}
    of the database named dbname (a file of that name, or a named
    database inside any file). Raises AssertionError when the tools or the
    database cannot be found."""
    dump = dump_tool("dump")
    recover = dump_tool("recover")
    if not dump or not recover:
        raise AssertionError("db5.3_dump/db5.3_recover not installed "
                             "(apt-get install db5.3-util)")
    # The environment: the folder holding log.* files (or __db.*).
    env = None
    for root, _dirs, files in os.walk(queue_dir):
        if any(f.startswith("log.") or f.startswith("__db.") for f in files):
            env = root
            break
    if env is None:
        raise AssertionError("no Berkeley DB environment under %s" %
                             queue_dir)
    tmp = tempfile.mkdtemp(prefix="smta-dbcopy-")
    try:
        copy = os.path.join(tmp, "env")
        shutil.copytree(env, copy)
        for f in os.listdir(copy):
            if f.startswith("__db."):
                os.unlink(os.path.join(copy, f))
        run([recover, "-h", copy], check=True)
        for f in sorted(os.listdir(copy)):
            path = os.path.join(copy, f)
            if (f.startswith("log.") or f.startswith("__db.") or
                    not os.path.isfile(path)):
                continue
            subs = run([dump, "-h", copy, "-l", f], cwd=copy)
            names = []
            if subs.returncode == 0:
                names = [s.strip() for s in
                         subs.stdout.decode(errors="replace").splitlines()
                         if s.strip()]
            if dbname in names:
                cmd = [dump, "-h", copy, "-p", "-s", dbname, f]
            elif f == dbname or f.startswith(dbname + "."):
                cmd = [dump, "-h", copy, "-p", f]
            else:
                continue
            p = run(cmd, cwd=copy, check=True)
            out = {}
            for k, v in _parse_dump(p.stdout.decode("latin-1")):
                out[k.rstrip(b"\0").decode("ascii", "replace")] = v
            return out
        raise AssertionError("no database named %r in %s" % (dbname, env))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def split_added_headers(stored, sent):
    """If stored is sent with header lines put in front (Received:), returns
    those lines; otherwise None."""
    if not stored.endswith(sent):
        return None
    prefix = stored[:len(stored) - len(sent)]
    if prefix and not prefix.endswith(b"\r\n"):
        return None
    for line in prefix.split(b"\r\n")[:-1]:
        if not line or not (line[:1] in (b" ", b"\t") or
                            re.match(rb"^[!-9;-~]+:", line)):
            return None
    return prefix


# -- a raw SMTP client -----------------------------------------------------

class SmtpConn:
    """A plain socket SMTP client that shows every byte: send() raw bytes,
    reply() reads one (multi-line) reply as (code, text)."""

    def __init__(self, host, port, bind=None, timeout=15):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if bind:
            self.sock.bind((bind, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; unread %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """(code, text) of one reply; text joins the lines with \\n."""
        lines = []
        while True:
            line = self._line()
            if len(line) < 3 or not line[:3].isdigit():
                raise AssertionError("malformed reply line %r" % line)
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), "\n".join(lines)
            if line[3] != "-":
                raise AssertionError("malformed reply line %r" % line)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def pending(self, wait=0.5):
        """Bytes the server sent that no reply() consumed, waiting up to
        wait seconds for more."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (socket.timeout, BlockingIOError):
            pass
        except OSError:
            pass
        finally:
            self.sock.settimeout(self.timeout)
        data, self.buf = self.buf, b""
        return data

    def closed_by_peer(self, wait=5.0):
        """True when the server closes the connection within wait."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except OSError:
            return True
        finally:
            self.sock.settimeout(self.timeout)

    def starttls(self, server_hostname=None, ragged_eof_ok=True):
        """TLS handshake on the connection (no certificate check).
        ragged_eof_ok=False makes a close without close_notify an
        ssl.SSLEOFError."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname=server_hostname,
                                    suppress_ragged_eofs=ragged_eof_ok)
        return self.sock

    def ehlo(self, name="client.strictmta.test"):
        code, text = self.cmd("EHLO " + name)
        return code, text.split("\n")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Sink(threading.Thread):
    """A minimal SMTP server on host (no extensions) that keeps every
    message, one thread per session, and refuses recipients whose local
    part starts with "reject" (550 5.1.1); for tests that need mail to arrive
    somewhere and nothing more (tests/net/smtp_sink.py is the strict
    one). Raises SkipTest when host cannot be bound."""

    def __init__(self, host, backlog=128):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, 0))
        except OSError as e:
            raise unittest.SkipTest("%s is taken: %s" % (host, e))
        self.sock.listen(backlog)
        self.sock.settimeout(0.5)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.rcpts = []
        self.sessions = 0
        self.lock = threading.Lock()
        self.done = False

    def run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                self.sessions += 1
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        try:
            self.session(c)
        except OSError:
            pass
        finally:
            c.close()

    def session(self, c):
        c.settimeout(10)
        f = c.makefile("rb")
        c.sendall(b"220 sink.test ESMTP\r\n")
        rcpts = []
        for _ in range(100000):
            line = f.readline(2000)
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                c.sendall(b"250 sink.test\r\n")
            elif verb == b"RCPT":
                rcpt = line[8:].strip(b"\r\n <>").decode()
                # A recipient named reject...@ is refused for good.
                if rcpt.startswith("reject"):
                    c.sendall(b"550 5.1.1 no such user here\r\n")
                    continue
                rcpts.append(rcpt)
                c.sendall(b"250 ok\r\n")
            elif verb == b"DATA":
                c.sendall(b"354 go on\r\n")
                data = []
                while True:
                    dl = f.readline(2000)
                    if not dl or dl == b".\r\n":
                        break
                    data.append(dl)
                with self.lock:
                    self.messages.append(b"".join(data))
                    self.rcpts.extend(rcpts)
                rcpts = []
                c.sendall(b"250 2.0.0 kept\r\n")
            elif verb == b"QUIT":
                c.sendall(b"221 bye\r\n")
                return
            elif verb == b"RSET":
                rcpts = []
                c.sendall(b"250 ok\r\n")
            else:
                c.sendall(b"250 ok\r\n")

    def stop(self):
        self.done = True
        self.join(5)
        self.sock.close()


def greeted(conn):
    code, text = conn.reply()
    if code != 220:
        raise AssertionError("greeting %d %s" % (code, text))
    return text


def make_message(token, body_lines=3, sender="sender@strictmta.test",
                 rcpt="rcpt@example.org"):
    """A small RFC 5322 message with CRLF lines that carries token in its
    Subject and body; returns bytes (not dot-stuffed)."""
    lines = ["From: <%s>" % sender, "To: <%s>" % rcpt,
             "Subject: test %s" % token,
             "Message-ID: <%s@strictmta.test>" % token,
             "Date: Sun, 22 Nov 2026 23:00:00 +0000", ""]
    for i in range(body_lines):
        lines.append("line %d of %s" % (i, token))
    return ("\r\n".join(lines) + "\r\n").encode()


def dot_stuff(content):
    out = []
    for line in content.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


def find_by_token(contents, token):
    tok = token.encode()
    return [q for q, c in contents.items() if tok in c]


# -- Postfix ---------------------------------------------------------------

POSTFIX_MASTER_CF = """\
# private Postfix for strictmta's tests: no chroot, nothing local
{host}:{port} inet n     -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def network_daemon(tag, env, host, params=None):
    """A Daemon (not started) that delivers over the test network whose
    netctl env is env: the validating resolver in stub mode with the test
    root's trust anchor, the test CA for SMTP and MTA-STS, short retry
    times, listening on host. The anchor and CA are copied into the
    daemon's folder, readable after the privilege drop."""
    d = Daemon(tag, {})
    anchor = os.path.join(d.dir, "root.key")
    ca = os.path.join(d.dir, "ca.pem")
    shutil.copy(env["NET_TRUST_ANCHOR"], anchor)
    shutil.copy(env["NET_CA"], ca)
    os.chmod(anchor, 0o644)
    os.chmod(ca, 0o644)
    d.host = host
    d.port = free_port(host)
    d.params.update({
        "smtpd_listen": "%s:%d" % (host, d.port),
        "dns_resolver_mode": "stub",
        "dns_stub_resolvers": env["NET_RESOLVER"],
        "dnssec_trust_anchor_file": anchor,
        "smtp_tls_CAfile": ca,
        "mta_sts_CAfile": ca,
        "minimal_backoff_time": "2s",
        "maximal_backoff_time": "3s",
        "queue_run_delay": "2s",
        "smtp_connect_timeout": "5s",
        "dns_timeout": "5s",
    })
    d.params.update(params or {})
    d.write_conf()
    return d


class Postfix:
    """A private Postfix instance (config, queue and data folders in a
    temporary folder) listening on POSTFIX_HOST:port, relaying everything
    to relayhost. Started with `postfix -c DIR start`, stopped with
    `postfix -c DIR stop`."""

    def __init__(self, tag, relayhost, params=None):
        if not shutil.which("postfix") and not os.path.exists(
                "/usr/sbin/postfix"):
            raise unittest.SkipTest("postfix is not installed")
        self.dir = make_tempdir("pf-" + tag)
        self.conf_dir = os.path.join(self.dir, "etc")
        self.host = POSTFIX_HOST
        self.port = free_port(self.host)
        self.log_path = os.path.join(self.dir, "postfix.log")
        os.makedirs(self.conf_dir)
        for d in ("spool", "data"):
            os.makedirs(os.path.join(self.dir, d))
        shutil.chown(os.path.join(self.dir, "data"), user="postfix")
        self.params = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(self.dir, "spool"),
            "data_directory": os.path.join(self.dir, "data"),
            "meta_directory": "/etc/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            # Postfix knows no interface for 127.30.0.2 (lo is 127.0.0.1/8):
            # listen on all, and master.cf binds the smtpd to self.host.
            "inet_interfaces": "all",
            "inet_protocols": "ipv4",
            "smtp_bind_address": self.host,
            "myhostname": "pf.strictmta.test",
            "mydomain": "strictmta.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "relayhost": relayhost,
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions":
                "permit_mynetworks, reject_unauth_destination",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "maillog_file": self.log_path,
            "maillog_file_prefixes": "/tmp, /var, /dev/stdout",
            "smtp_tls_security_level": "none",
            "smtp_dns_support_level": "disabled",
            "disable_dns_lookups": "yes",
            "smtpd_tls_security_level": "none",
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "default_process_limit": "100",
            "smtp_destination_concurrency_limit": "20",
            "default_destination_concurrency_limit": "20",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "in_flow_delay": "0",
        }
        self.params.update(params or {})
        self.write_conf()

    def write_conf(self):
        with open(os.path.join(self.conf_dir, "main.cf"), "w") as f:
            for k, v in self.params.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.conf_dir, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(host=self.host, port=self.port))

    def postfix(self, *args, timeout=60):
        """postfix -c DIR ARGS under script(1): postfix prints its fatal
        errors only to a terminal (and syslog)."""
        line = " ".join(["postfix", "-c", self.conf_dir] + list(args))
        if shutil.which("script"):
            return run(["script", "-qec", line, "/dev/null"],
                       timeout=timeout, stdin=subprocess.DEVNULL)
        return run(line.split(), timeout=timeout)

    def start(self):
        p = self.postfix("start")
        if p.returncode != 0:
            raise AssertionError("postfix start failed: %s%s\n%s" %
                                 (p.stdout.decode(errors="replace"),
                                  p.stderr.decode(errors="replace"),
                                  self.log_text()))
        if not wait_port(self.host, self.port, 20):
            self.stop()
            raise AssertionError("postfix did not listen on %s:%d\n%s" %
                                 (self.host, self.port, self.log_text()))
        return self

    def master_pid(self):
        pidf = os.path.join(self.params["queue_directory"], "pid",
                            "master.pid")
        try:
            with open(pidf) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        """postfix stop, then waits (20 s at most) until the master
        process whose PID master.pid named has exited."""
        pid = self.master_pid()
        p = self.postfix("stop")

        def gone():
            if pid is None:
                return True
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            # A zombie or another process that got the PID: look closer.
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    return b"master" not in f.read()
            except OSError:
                return True
        wait_for(gone, 20)
        return p.returncode

    def queue_count(self):
        """Messages still in Postfix's queue (postqueue -j)."""
        p = run(["postqueue", "-c", self.conf_dir, "-j"])
        ids = set()
        for line in p.stdout.splitlines():
            try:
                ids.add(json.loads(line)["queue_id"])
            except (ValueError, KeyError):
                pass
        return len(ids)

    def log_text(self, tail=100):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def smtp_source(host, port, count, sessions=1, sender="src@strictmta.test",
                rcpt="rcpt@example.org", size=None, timeout=300):
    """Postfix's smtp-source: count messages over sessions parallel
    sessions. Returns the CompletedProcess."""
    exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    cmd = [exe, "-m", str(count), "-s", str(sessions), "-f", sender,
           "-t", rcpt, "-d", "-c"]
    if size:
        cmd += ["-l", str(size)]
    cmd.append("%s:%d" % (host, port))
    return run(cmd, timeout=timeout)


# -- running a test file ----------------------------------------------------

def test_failed(tc):
    """In tearDown: whether the running test (tc) has failed so far."""
    outcome = getattr(tc, "_outcome", None)
    result = getattr(outcome, "result", None)
    if result is None:
        return False
    return any(t is tc for t, _ in result.failures + result.errors)


def main():
    """unittest main for one test file: exit 0 when everything ran and
    passed, 77 (ctest's skip) when nothing could run, 1 otherwise."""
    if os.geteuid() != 0:
        print("SKIP: integration tests run as root (the daemon binds as root"
              " and drops to the strictmta user)")
        sys.exit(SKIP)
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    if r.failures or r.errors or r.unexpectedSuccesses:
        sys.exit(1)
    if r.testsRun and len(r.skipped) == r.testsRun:
        sys.exit(SKIP)
    sys.exit(0)
