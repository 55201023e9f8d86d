#!/usr/bin/env bash
# e2e_bench.sh - how fast strictmtad delivers mail end to end, next to Postfix.
#
#   tests/bench/e2e_bench.sh [MESSAGES] [SIZE] [ROUNDS] [SESSIONS] [QUEUED]
#
# smtp-source -> MTA -> smtp-sink, for strictmtad (127.32.0.1) and for a
# private Postfix (127.32.0.2) with the same routes, in the same run,
# interleaved. Each round (ROUNDS, default 3; the order of the two MTAs
# alternates) and each MTA:
#   - idle: 20 probe messages, nothing else going on;
#   - reuse: smtp-source sends MESSAGES messages (default 20000) of SIZE
#     bytes (default 5k; "100k" for the large case) over SESSIONS
#     sessions (default 20), several messages per connection (-d);
#   - no reuse: the same with a new connection per message.
# The recipient domain bulk.bench goes by transport_maps to an IP-literal
# next hop, a smtp-sink of its own per MTA (127.32.0.11 and 127.32.0.12);
# no TLS; strictmtad's resolver is a loopback address where nothing
# answers, Postfix's DNS lookups are off (and the namespace has no route
# to the host's resolver).
#
# Figures, each phase: delivered/s = MESSAGES / (smtp-source's start to
# the sink counting the last message, smtp-sink -c); latency = probes sent
# at 10/s while the load runs, to probe.bench (a second literal route, to
# a Python sink that timestamps each arrival), from the client's final
# dot to the dot read by the sink; CPU = utime+stime (and children's) of
# every process of the MTA (strictmtad; Postfix's master and everything
# below it) before and after the phase, divided by the messages;
# peak PSS = the highest sum of /proc/PID/smaps_rollup Pss over those
# processes, sampled every 0.2 s. Medians over the rounds; latency
# percentiles over every probe of every round.
#
# QUEUED (default 0: skipped): afterwards, QUEUED messages are queued to
# a next hop where nothing listens (stalled), and the script prints disk
# (du of the queue) and memory (PSS) per queued message, then the time
# from a restart (the sink now up) to the first delivery and to the last.
#
# Runs itself in a private network namespace (tests/net/netns-run), as
# root; needs a build (build/, or STRICTMTA_BUILD_DIR) and Postfix
# (postfix, smtp-source, smtp-sink). Both MTAs log to a file. The numbers
# are only as quiet as the machine: run it alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "e2e_bench.sh: run as root (the MTAs bind port 25 and drop" \
	    "privileges; the script makes a network namespace)" >&2
	exit 1
fi
if [ "${NET_IN_NETNS:-}" != 1 ]; then
	exec "$here/../net/netns-run" "$here/e2e_bench.sh" "$@"
fi
export STRICTMTA_SOURCE_DIR=${STRICTMTA_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
export STRICTMTA_BUILD_DIR=${STRICTMTA_BUILD_DIR:-$STRICTMTA_SOURCE_DIR/build}
exec /usr/bin/python3 -B - "${1:-20000}" "${2:-5k}" "${3:-3}" "${4:-20}" \
    "${5:-0}" <<'PY'
import json, math, os, re, shutil, signal, socket, statistics, subprocess
import sys
import threading, time, unittest
sys.path.insert(0, os.path.join(os.environ["STRICTMTA_SOURCE_DIR"],
                                "tests", "lib"))
import smta


def size_arg(s):
    m = re.fullmatch(r"(\d+)([kK]?)", s)
    if not m:
        sys.exit("SIZE: a number of bytes, or NNk (got %r)" % s)
    return int(m.group(1)) * (1024 if m.group(2) else 1)


n = int(sys.argv[1])
size = size_arg(sys.argv[2])
rounds, sessions, queued_n = (int(a) for a in sys.argv[3:6])

SMTA_HOST, PF_HOST = "127.32.0.1", "127.32.0.2"
SINK_HOSTS = {"strictmta": "127.32.0.11", "postfix": "127.32.0.12"}
PROBE_HOST = "127.32.0.20"
STALLED_HOST = "127.32.0.30"  # nothing listens there (until the restart)
STALLED = "[%s]:25" % STALLED_HOST
PORT = 25
BULK, PROBE, STALL = "bulk.bench", "probe.bench", "stall.bench"
PROBE_RATE = 10.0
IDLE_PROBES = 20
TICK = os.sysconf("SC_CLK_TCK")
SINK_EXE = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SOURCE_EXE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def say(*a):
    print(*a, flush=True)


def need_free(host, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        sys.exit("%s:%d is already taken (%s); is another run using this "
                 "namespace?" % (host, port, e.strerror))
    finally:
        s.close()


# -- processes, CPU and memory from /proc -----------------------------------

def proc_stat(pid):
    """(ppid, CPU ticks of the process and of its waited-for children)."""
    with open("/proc/%d/stat" % pid, "rb") as f:
        rest = f.read().rsplit(b")", 1)[1].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree(root):
    """{pid: cpu ticks} of root and every process below it."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                table[int(name)] = proc_stat(int(name))
            except (OSError, IndexError, ValueError):
                pass
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = {}, [root] if root in table else []
    while todo:
        pid = todo.pop()
        out[pid] = table[pid][1]
        todo.extend(kids.get(pid, []))
    return out


def tree_cpu(root):
    """Seconds of CPU used by root's tree so far. A process that exited
    has been reaped by its parent (Postfix's master), whose children's
    times then hold its share: the sum stays whole."""
    return sum(tree(root).values()) / TICK


def tree_pss(root):
    """Bytes: the sum of Pss over root's tree."""
    total = 0
    for pid in tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


class PeakPss(threading.Thread):
    def __init__(self, root):
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.done = threading.Event()
        self.start()

    def run(self):
        while True:
            self.peak = max(self.peak, tree_pss(self.root))
            if self.done.wait(0.2):
                return

    def stop(self):
        self.done.set()
        self.join(10)
        return self.peak


# -- sinks -------------------------------------------------------------------

class BulkSink:
    """Postfix's smtp-sink on host:25; its running counters (-c, one
    record per message, flushed) say how many messages and sessions it
    has seen, and when the expected count was reached."""

    def __init__(self, host):
        need_free(host, PORT)
        self.host = host
        self.proc = subprocess.Popen(
            [SINK_EXE, "-u", "nobody", "-c", "%s:%d" % (host, PORT),
             "1024"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.cond = threading.Condition()
        self.mesg = self.sess = 0
        self.target = self.reached = self.first = None
        self.base = 0
        threading.Thread(target=self._read, daemon=True).start()
        if not smta.wait_port(host, PORT, 10,
                              alive=lambda: self.proc.poll() is None):
            self.stop()
            sys.exit("smtp-sink did not listen on %s:%d: %s" %
                     (host, PORT, self.proc.stderr.read().decode()))

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            *recs, buf = re.split(rb"[\r\n]", buf + chunk)
            now = time.monotonic()
            for rec in recs:
                m = re.search(rb"sess=(\d+) .*mesg=(\d+)", rec)
                if not m:
                    continue
                with self.cond:
                    self.sess, self.mesg = int(m.group(1)), int(m.group(2))
                    if self.first is None and self.mesg > self.base:
                        self.first = now
                    if self.target is not None and self.reached is None \
                            and self.mesg >= self.target:
                        self.reached = now
                        self.cond.notify_all()

    def expect(self, more):
        """From now on: when the first of `more` messages arrives
        (.first) and when the last does (.reached, wait())."""
        with self.cond:
            self.base, self.first = self.mesg, None
            self.target = count = self.mesg + more
            self.reached = time.monotonic() if self.mesg >= count else None

    def wait(self, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.reached is not None, timeout)
            return self.reached

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Stamped(list):
    """A list that records when each item came (smta.Sink appends each
    message it has read to its .messages)."""

    def append(self, item):
        super().append((time.monotonic(), item))


class ProbeSink(smta.Sink):
    TOKEN = re.compile(rb"^Subject: test (\S+)", re.M)

    def __init__(self, host):
        try:
            super().__init__(host)
        except unittest.SkipTest as e:
            sys.exit(str(e))
        self.messages = Stamped()
        self.start()

    def arrivals(self):
        with self.lock:
            items = list(self.messages)
        out = {}
        for t, m in items:
            tok = self.TOKEN.search(m)
            if tok:
                out.setdefault(tok.group(1).decode(), t)
        return out


class Prober(threading.Thread):
    """Sends probe messages to host:PORT at PROBE_RATE (at most count),
    over one connection; sent[token] is when the final dot went out."""

    def __init__(self, host, tag, count=None):
        super().__init__(daemon=True)
        self.host, self.tag, self.count = host, tag, count
        self.sent = {}
        self.errors = []
        self.done = threading.Event()
        self.start()

    def one(self, conn, token):
        for line, want in (("MAIL FROM:<probe@strictmta.test>", 250),
                           ("RCPT TO:<p@%s>" % PROBE, 250), ("DATA", 354)):
            code, text = conn.cmd(line)
            if code != want:
                raise AssertionError("%s: %d %s" % (line, code, text))
        msg = smta.make_message(token, rcpt="p@" + PROBE)
        conn.send(smta.dot_stuff(msg) + b".\r\n")
        t = time.monotonic()
        code, text = conn.reply()
        if code != 250:
            raise AssertionError("end of DATA: %d %s" % (code, text))
        self.sent[token] = t

    def run(self):
        conn = None
        t0 = time.monotonic()
        i = 0
        while self.count is None or i < self.count:
            if self.done.wait(max(0.0, t0 + i / PROBE_RATE -
                                  time.monotonic())):
                break
            try:
                if conn is None:
                    conn = smta.SmtpConn(self.host, PORT, timeout=30)
                    smta.greeted(conn)
                    conn.ehlo("probe.strictmta.test")
                self.one(conn, "%s-%d" % (self.tag, i))
            except (OSError, EOFError, AssertionError) as e:
                self.errors.append(str(e))
                if conn is not None:
                    conn.close()
                conn = None
            i += 1
        if conn is not None:
            try:
                conn.cmd("QUIT")
            except (OSError, EOFError, AssertionError):
                pass
            conn.close()

    def stop(self):
        self.done.set()
        self.join(60)


# -- the two MTAs ------------------------------------------------------------

class Strictmta:
    name = "strictmta"

    def __init__(self, probe_port):
        self.host = SMTA_HOST
        d = self.d = smta.Daemon("e2e", {
            "smtpd_connection_limit": str(max(200, sessions * 4)),
            "smtpd_client_connection_count_limit": str(max(50,
                                                           sessions * 4)),
            "smtp_tls_security_level": "none",
        })
        d.host, d.port = SMTA_HOST, PORT
        d.params["smtpd_listen"] = "%s:%d" % (SMTA_HOST, PORT)
        tmap = os.path.join(d.dir, "transport.e2e")
        with open(tmap, "w") as f:
            f.write("%s [%s]:%d\n" % (BULK, SINK_HOSTS[self.name], PORT))
            f.write("%s [%s]:%d\n" % (PROBE, PROBE_HOST, probe_port))
            f.write("%s %s\n" % (STALL, STALLED))
        os.chmod(tmap, 0o644)
        d.params["transport_maps"] = tmap
        d.write_conf()
        self.log_path = d.log_path
        self.queue_dir = d.queue_dir

    def start(self):
        need_free(SMTA_HOST, PORT)
        self.d.start()

    def stop(self):
        rc = self.d.stop()
        if rc not in (0, None):
            say("strictmtad exited with status %s; log tail:\n%s" %
                (rc, log_tail(self)))
        return rc

    def root(self):
        return self.d.proc.pid if self.d.proc else None

    def stats(self):
        p = self.d.cli("queue", "stats", "--json")
        return json.loads(p.stdout) if p.returncode == 0 else None

    def queued(self):
        s = self.stats()
        return s["queue"]["messages"] if s else None

    def conn_mark(self):
        s = self.stats()
        return s["delivery"]["connections"] if s else 0

    def conns_since(self, mark):
        return self.conn_mark() - mark

    def flush(self):
        return self.d.cli("queue", "flush").returncode

    def cleanup(self):
        self.d.cleanup()


class Postfix:
    name = "postfix"

    def __init__(self, probe_port):
        self.host = PF_HOST
        pf = self.pf = smta.Postfix("e2e", "", {
            "default_process_limit": str(max(100, sessions + 10)),
            # Postfix's defaults (and strictmtad's), not smta.Postfix's
            # 2 s: mail deferred in the QUEUED part waits as it would.
            "queue_run_delay": "300s",
            "minimal_backoff_time": "300s",
            "maximal_backoff_time": "4000s",
        })
        pf.host, pf.port = PF_HOST, PORT
        pf.params["smtp_bind_address"] = PF_HOST
        tmap = os.path.join(pf.conf_dir, "transport")
        with open(tmap, "w") as f:
            f.write("%s smtp:[%s]:%d\n" % (BULK, SINK_HOSTS[self.name],
                                           PORT))
            f.write("%s smtp:[%s]:%d\n" % (PROBE, PROBE_HOST, probe_port))
            f.write("%s smtp:%s\n" % (STALL, STALLED))
        pf.params["transport_maps"] = "texthash:" + tmap
        pf.write_conf()
        self.log_path = pf.log_path
        self.queue_dir = pf.params["queue_directory"]

    def start(self):
        need_free(PF_HOST, PORT)
        self.pf.start()

    def stop(self):
        return self.pf.stop()

    def root(self):
        return self.pf.master_pid()

    def queued(self):
        return self.pf.queue_count()

    def conn_mark(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def conns_since(self, mark):
        """Deliveries that opened a connection: Postfix logs conn_use=N
        for the N-th message (N > 1) over one connection."""
        time.sleep(0.2)  # postlogd writes a little later
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        return sum(1 for l in text.splitlines()
                   if "status=sent" in l and "conn_use=" not in l)

    def flush(self):
        return smta.run(["postqueue", "-c", self.pf.conf_dir,
                         "-f"]).returncode

    def cleanup(self):
        self.pf.cleanup()


# -- one phase ---------------------------------------------------------------

def percentile(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p * len(xs)) - 1)] if xs else float("nan")


def collect_probes(prober, probe_sink, timeout=30):
    """Latencies (s) of the prober's messages, waiting up to timeout for
    the last ones; and how many never arrived."""
    def all_in():
        a = probe_sink.arrivals()
        return a if all(t in a for t in prober.sent) else None
    arr = smta.wait_for(all_in, timeout, 0.05) or probe_sink.arrivals()
    lat = [arr[t] - s for t, s in prober.sent.items() if t in arr]
    return lat, len(prober.sent) - len(lat)


def wait_empty(mta, timeout=60):
    return smta.wait_for(lambda: mta.queued() == 0, timeout, 0.2)


def idle_phase(mta, probe_sink, rnd):
    p = Prober(mta.host, "%s-idle-%d" % (mta.name, rnd), IDLE_PROBES)
    p.join(IDLE_PROBES / PROBE_RATE + 60)
    p.stop()
    lat, lost = collect_probes(p, probe_sink)
    say("round %d %-9s idle:     %d probes, p50 %.3f s, p99 %.3f s%s" %
        (rnd, mta.name, len(lat), percentile(lat, 0.5),
         percentile(lat, 0.99), lost_text(lost, p)))
    return lat


def lost_text(lost, prober):
    s = ""
    if lost:
        s += "; %d probes never arrived" % lost
    if prober.errors:
        s += "; %d probe errors (first: %s)" % (len(prober.errors),
                                               prober.errors[0])
    return s


def load_phase(mta, sink, probe_sink, rnd, reuse):
    mode = "reuse" if reuse else "no reuse"
    base_mesg = sink.mesg
    sink.expect(n)
    mark = mta.conn_mark()
    root = mta.root()
    cpu0 = tree_cpu(root)
    pss = PeakPss(root)
    cmd = [SOURCE_EXE, "-m", str(n), "-s", str(sessions), "-l", str(size),
           "-f", "src@strictmta.test", "-t", "bench@" + BULK]
    if reuse:
        cmd.append("-d")
    cmd.append("%s:%d" % (mta.host, PORT))
    t0 = time.monotonic()
    src = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    prober = Prober(mta.host, "%s-%s-%d" % (mta.name, mode.replace(" ", ""),
                                            rnd))
    try:
        _, err = src.communicate(timeout=max(300, n / 20))
    except subprocess.TimeoutExpired:
        src.kill()
        _, err = src.communicate()
        err = b"timed out; " + err
    finally:
        if src.poll() is None:  # interrupted: stop it by its PID
            src.kill()
            src.wait(10)
    t_acc = time.monotonic()
    if src.returncode != 0:
        say("%s: smtp-source failed (%s): %s" % (mta.name, src.returncode,
                                                 err.decode().strip()))
    t_last = sink.wait(max(300, n / 20))
    prober.stop()
    lat, lost = collect_probes(prober, probe_sink)
    empty = wait_empty(mta)
    cpu = tree_cpu(root) - cpu0
    peak = pss.stop()
    got = sink.mesg - base_mesg
    if t_last is None:
        say("%s: the sink got %d of %d messages in time; log:\n%s" %
            (mta.name, got, n, log_tail(mta)))
        rate = got / (time.monotonic() - t0)
    else:
        rate = n / (t_last - t0)
    msgs = n + len(prober.sent)
    r = {"rate": rate, "accept": n / (t_acc - t0), "lat": lat,
         "cpu": 1000.0 * cpu / msgs, "pss": peak}
    say("round %d %-9s %-9s %d x %d B: accepted %.0f/s, delivered %.0f/s "
        "(%d delivery connections); %d probes p50 %.3f s p99 %.3f s%s; "
        "CPU %.3f ms/msg; peak PSS %.1f MB%s" %
        (rnd, mta.name, mode + ":", n, size, r["accept"], rate,
         mta.conns_since(mark), len(lat), percentile(lat, 0.5),
         percentile(lat, 0.99), lost_text(lost, prober), r["cpu"],
         peak / 1e6, "" if empty else "; queue not empty after 60 s"))
    return r


def log_tail(mta, lines=20):
    try:
        with open(mta.log_path, "rb") as f:
            text = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def log_summary(mta):
    try:
        with open(mta.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return "no log"
    counts = {k: len(re.findall(r"status=%s\b" % k, text))
              for k in ("sent", "deferred", "bounced")}
    bad = [l for l in text.splitlines()
           if re.search(r"\b(panic|fatal|abort|assert)", l, re.I)]
    s = "%(sent)d sent, %(deferred)d deferred, %(bounced)d bounced" % counts
    if bad:
        s += "; %d panic/fatal lines, first: %s" % (len(bad), bad[0])
    return s


# -- queued mail against a stalled next hop, and a restart -------------------

def du(path):
    """Bytes allocated under path (du's output even when it complains
    about a file that went away meanwhile)."""
    p = smta.run(["du", "-sB1", path])
    try:
        return int(p.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


def settle(root, timeout=60):
    """Waits until root's tree uses less than 2% of a CPU for a second."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        c0 = tree_cpu(root)
        time.sleep(1)
        if tree_cpu(root) - c0 < 0.02:
            return True
    return False


def queue_stalled(mta, count, want):
    p = smta.run([SOURCE_EXE, "-m", str(count), "-s", str(sessions),
                  "-l", str(size), "-f", "src@strictmta.test", "-t",
                  "bench@" + STALL, "-d", "%s:%d" % (mta.host, PORT)],
                 timeout=max(300, count / 20))
    if p.returncode != 0:
        say("%s: smtp-source failed: %s" % (mta.name,
                                           p.stderr.decode().strip()))
    smta.wait_for(lambda: (mta.queued() or 0) >= want, 60, 0.5)
    quiet = settle(mta.root())
    return mta.queued() or 0, tree_pss(mta.root()), quiet


def queued_phase(cls, probe_port):
    """A new instance of cls; QUEUED messages to stall.bench, where
    nothing listens. Disk: du of the stopped queue less du of the new
    one. Memory: PSS of the MTA restarted with them queued, once idle,
    less PSS of the new one once idle (the same processes: those a
    start makes). Then a sink on stall.bench's next hop, a restart and
    a flush: time to listening, to the first and to the last delivery."""
    mta = cls(probe_port)
    sink = None
    try:
        mta.start()
        settle(mta.root())
        disk0, pss0 = du(mta.queue_dir), tree_pss(mta.root())
        _, pss1, quiet = queue_stalled(mta, queued_n, queued_n)
        mta.stop()
        disk2 = du(mta.queue_dir)
        mta.start()
        quiet = settle(mta.root()) and quiet
        q2, pss2 = mta.queued() or 0, tree_pss(mta.root())
        mta.stop()
        r = {"disk": (disk2 - disk0) / max(1, q2),
             "mem": (pss2 - pss0) / max(1, q2), "running": pss1}
        sink = BulkSink(STALLED_HOST)
        sink.expect(q2)
        t0 = time.monotonic()
        mta.start()
        r["up"] = time.monotonic() - t0
        if mta.flush() != 0:
            say("%s: flush failed" % mta.name)
        t_last = sink.wait(max(300, q2 / 20))
        r["first"] = sink.first - t0 if sink.first else float("nan")
        r["all"] = t_last - t0 if t_last else float("nan")
        say("%-9s %d of %d queued (stalled next hop): disk %.0f B/msg "
            "(+%.1f MB), PSS %.0f B/msg (idle: %.1f MB empty, %.1f MB "
            "with them, %.1f MB after a restart)%s; restart: listening "
            "after %.2f s, flushed, first delivery after %.2f s, %s" %
            (mta.name, q2, queued_n, r["disk"], (disk2 - disk0) / 1e6,
             r["mem"], pss0 / 1e6, pss1 / 1e6, pss2 / 1e6,
             "" if quiet else " (still busy)", r["up"], r["first"],
             "all after %.2f s" % r["all"] if t_last else
             "only %d delivered" % (sink.mesg - sink.base)))
        return r
    finally:
        mta.cleanup()
        if sink is not None:
            sink.stop()


# -- main --------------------------------------------------------------------

def table_row(name, pf, sm, fmt, ratio=True):
    r = "%.2f" % (sm / pf) if ratio and pf else "-"
    say("%-34s %-12s %-12s %s" % (name, fmt % pf, fmt % sm, r))


def main():
    # SIGTERM (timeout(1), a shell's kill) ends the run through the
    # finally blocks, which stop what it started.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit("e2e_bench: terminated"))
    for exe in (SINK_EXE, SOURCE_EXE):
        if not os.access(exe, os.X_OK):
            sys.exit("%s is not installed (apt-get install postfix)" % exe)
    say("e2e_bench: %d messages of %d bytes, %d sessions, %d rounds; "
        "probes at %.0f/s; %d cores" % (n, size, sessions, rounds,
                                        PROBE_RATE, os.cpu_count()))
    # Every address first, before anything starts that would need
    # stopping.
    for host in (SMTA_HOST, PF_HOST, STALLED_HOST) + tuple(
            SINK_HOSTS.values()):
        need_free(host, PORT)
    probe_sink = ProbeSink(PROBE_HOST)
    sinks, mtas, footprint = {}, [], {}
    res = {(m, k): [] for m in ("strictmta", "postfix")
           for k in ("reuse", "noreuse")}
    idle = {"strictmta": [], "postfix": []}
    try:
        try:
            for k, h in SINK_HOSTS.items():
                sinks[k] = BulkSink(h)
            for cls in (Strictmta, Postfix):
                mtas.append(cls(probe_sink.port))
                mtas[-1].start()
            for rnd in range(1, rounds + 1):
                order = mtas if rnd % 2 else mtas[::-1]
                for m in order:
                    idle[m.name] += idle_phase(m, probe_sink, rnd)
                for reuse in (True, False):
                    for m in order:
                        res[(m.name, "reuse" if reuse else "noreuse")
                            ].append(load_phase(m, sinks[m.name],
                                                probe_sink, rnd, reuse))
            for m in mtas:
                say("%-9s log: %s" % (m.name, log_summary(m)))
        finally:
            for m in mtas:
                m.stop()
                m.cleanup()
            for s in sinks.values():
                s.stop()
        if queued_n > 0:
            for cls in (Strictmta, Postfix):
                footprint[cls.name] = queued_phase(cls, probe_sink.port)
    finally:
        probe_sink.stop()

    def med(name, mode, key):
        return statistics.median(r[key] for r in res[(name, mode)])

    def lat(name, mode):
        xs = [x for r in res[(name, mode)] for x in r["lat"]]
        return percentile(xs, 0.5), percentile(xs, 0.99), len(xs)

    say("")
    say("%d messages of %d bytes over %d sessions; medians of %d rounds "
        "(latency: every probe of every round)" % (n, size, sessions,
                                                   rounds))
    say("%-34s %-12s %-12s %s" % ("figure", "postfix", "strictmta", "ratio"))
    for mode, label in (("reuse", "reuse"), ("noreuse", "no reuse")):
        table_row("delivered/s (%s)" % label, med("postfix", mode, "rate"),
                  med("strictmta", mode, "rate"), "%.0f")
    for mode, label in (("idle", "idle"), ("reuse", "reuse"),
                        ("noreuse", "no reuse")):
        if mode == "idle":
            a = (percentile(idle["postfix"], 0.5),
                 percentile(idle["postfix"], 0.99))
            b = (percentile(idle["strictmta"], 0.5),
                 percentile(idle["strictmta"], 0.99))
        else:
            a, b = lat("postfix", mode)[:2], lat("strictmta", mode)[:2]
        say("%-34s %-12s %-12s %s" % (
            "p50 / p99 latency %s (s)" % label, "%.3f/%.3f" % a,
            "%.3f/%.3f" % b, "%.2f/%.2f" % (b[0] / a[0], b[1] / a[1])
            if a[0] and a[1] else "-"))
    for mode, label in (("reuse", "reuse"), ("noreuse", "no reuse")):
        table_row("CPU ms/message (%s)" % label, med("postfix", mode, "cpu"),
                  med("strictmta", mode, "cpu"), "%.3f")
    peak = {name: max(r["pss"] for k, rs in res.items() if k[0] == name
                      for r in rs) / 1e6 for name in ("postfix", "strictmta")}
    table_row("peak PSS (MB)", peak["postfix"], peak["strictmta"], "%.1f")
    if footprint:
        pf, sm = footprint["postfix"], footprint["strictmta"]
        table_row("disk/queued message (B)", pf["disk"], sm["disk"], "%.0f")
        table_row("PSS/queued message (B)", pf["mem"], sm["mem"], "%.0f")
        table_row("PSS, %d queued, running (MB)" % queued_n,
                  pf["running"] / 1e6, sm["running"] / 1e6, "%.1f")
        table_row("restart: listening (s)", pf["up"], sm["up"], "%.2f")
        table_row("restart: first delivery (s)", pf["first"], sm["first"],
                  "%.2f")
        table_row("restart: all %d delivered (s)" % queued_n, pf["all"],
                  sm["all"], "%.2f")


main()
PY
