#!/usr/bin/python3
"""test_priv_symlink - root never works by path where mail_owner can write.

The queue folder and its pid/, private/, db/ and policy/ belong to
mail_owner (strictmta). A process with that account's rights must not be
able to turn the daemon's root-time work against files outside the queue.

Part 1: the daemon is started as root STARTS times (documented start-up,
-f) while a process running as strictmta keeps swapping symbolic links into
the places of private/control, pid/master.pid and policy/sts-cache.db
(pointing at two root-owned 0600 canary files outside the queue), and
swapping the folders pid/, private/, db/ and policy/ for links to a
root-owned 0700 canary folder. Each start must either run and stop cleanly
on SIGTERM, or refuse with a one-line fatal message naming the queue; no
file outside the queue may change owner, mode or content, nothing may
appear in the canary folder. Then a calm start: every file in the queue is
strictmta's, the socket strictmta:admin_group 0660, the pid file 0644.

Part 2: a setgid copy of sendmail, run as nobody with -C: a config in a
root folder is trusted (the group is kept, mail is dropped off); one in a
group-writable folder, or reached through a link in nobody's folder to
nobody's file, is not (the group is dropped: exit 75, nothing written
where the group could write); and while nobody keeps flipping a link in
the -C path between a trusted folder and its own, no run ever writes with
the group into the queue that nobody's config names.

Prints the figures: starts, refusals, swaps, sendmail runs. Re-runs itself
in a private network namespace (tests/net/netns-run) when it can. Exit 77
when not root or the programs are not built.
"""
import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

STARTS = 20
PROCS = []  # every daemon started here, killed at the end if still up
RUN_SECONDS = 0.3  # each started daemon runs this long before SIGTERM
SENDMAIL_RACE_RUNS = 150
ADMIN_GROUP = "strictmtaadm"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


# Runs as strictmta (setpriv) until SIGTERM or its bounds, then prints what
# it did as JSON. argv: mode qdir canary_a canary_b canary_dir. Mode
# "swap": links in place of files and folders at random moments. Mode
# "hunt": spins until private/control is a socket (a daemon just bound
# it) and at once puts a link in its place, before any chown by path.
ATTACKER = r"""
import json, os, random, signal, stat, sys, time
mode, qdir, canaries, cdir = sys.argv[1], sys.argv[2], sys.argv[3:5], \
    sys.argv[5]
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
files = ["private/control", "pid/master.pid", "policy/sts-cache.db"]
dirs = ["pid", "private", "db", "policy"]
n = {"file_swaps": 0, "dir_swaps": 0, "hunts": 0, "errors": 0}
deadline = time.time() + 600
ctl = os.path.join(qdir, "private/control")
while not stop and time.time() < deadline and \
        n["file_swaps"] + n["dir_swaps"] + n["hunts"] < 1000000:
    try:
        if mode == "hunt":
            if stat.S_ISSOCK(os.lstat(ctl).st_mode):
                tmp = ctl + ".hunt"
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(random.choice(canaries), tmp)
                os.rename(tmp, ctl)
                n["hunts"] += 1
            continue
        if random.random() < 0.75:
            target = os.path.join(qdir, random.choice(files))
            canary = random.choice(canaries)
            tmp = target + ".swap"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(canary, tmp)
            os.rename(tmp, target)
            n["file_swaps"] += 1
            time.sleep(random.random() * 0.003)
            if os.path.islink(target) and os.readlink(target) == canary:
                os.unlink(target)
        else:
            d = os.path.join(qdir, random.choice(dirs))
            saved = d + ".saved"
            if os.path.lexists(saved):
                # An earlier restore failed: the daemon made a new one.
                lost = d + ".lost.%d" % n["errors"]
                if os.path.lexists(d):
                    os.rename(d, lost)
                os.rename(saved, d)
                continue
            os.rename(d, saved)
            os.symlink(cdir, d)
            n["dir_swaps"] += 1
            time.sleep(random.random() * 0.003)
            os.unlink(d)
            os.rename(saved, d)
    except OSError:
        # Gone, or behind a swapped folder: the hunter just looks again.
        if mode != "hunt":
            n["errors"] += 1
    if mode != "hunt":
        time.sleep(random.random() * 0.002)
print(json.dumps(n))
"""

# Runs as nobody: flips argv[1] (a link) between argv[2] and argv[3].
FLIPPER = r'''
import os, signal, sys, time
link, a, b = sys.argv[1:4]
stop = []
signal.signal(signal.SIGTERM, lambda *x: stop.append(1))
n = 0
deadline = time.time() + 600
while not stop and time.time() < deadline and n < 10000000:
    tmp = link + ".new"
    try:
        os.unlink(tmp)
    except OSError:
        pass
    os.symlink(a if n % 2 else b, tmp)
    os.rename(tmp, link)
    n += 1
print(n)
'''


def reexec_in_netns():
    if os.environ.get("NET_IN_NETNS") == "1":
        return
    if subprocess.run(["unshare", "--net", "--", "true"],
                      stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        return  # run on the host's loopback then
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "../net/netns-run")
    os.execv(runner, [runner, sys.executable,
                      os.path.abspath(__file__)] + sys.argv[1:])


def ensure_accounts():
    for g in ("strictmtadrop", ADMIN_GROUP):
        if subprocess.run(["getent", "group", g],
                          stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["groupadd", "--system", g], check=True)
    try:
        pwd.getpwnam("strictmta")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", "strictmta"], check=True)


def free_port(addr):
    s = socket.socket()
    s.bind((addr, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def snapshot(top, skip):
    """Owner, mode, size and content hash of everything under top
    except skip (the queue), and top itself."""
    out = {}
    for root, dnames, fnames in os.walk(top):
        if os.path.abspath(root) == os.path.abspath(skip):
            dnames[:] = []
            continue
        dnames[:] = [d for d in dnames
                     if os.path.join(root, d) != skip]
        for name in [""] + dnames + fnames:
            p = os.path.join(root, name) if name else root
            st = os.lstat(p)
            h = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            out[p] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode),
                      stat.S_IFMT(st.st_mode), st.st_size, h)
    return out


def write_config(path, qdir, addr, port):
    with open(path, "w") as f:
        f.write("queue_directory = %s\n" % qdir)
        f.write("smtpd_listen = %s:%d\n" % (addr, port))
        f.write("dns_resolver_mode = stub\n")
        f.write("dns_stub_resolvers = 127.22.255.253\n")
        f.write("maillog_file = -\n")
        f.write("myhostname = mx.test.example\n")
        f.write("admin_group = %s\n" % ADMIN_GROUP)
        # The MTA-STS cache is opened at every start (the default).
        f.write("mta_sts_enable = yes\n")
    os.chmod(path, 0o644)


def sanitizer_lines(log):
    """What a sanitizer said in a daemon's log, for a failure's text."""
    keep = [l for l in log.splitlines()
            if "Sanitizer" in l or "runtime error" in l or
            l.lstrip().startswith("#") and " in " in l][:12]
    return ("\n    " + "\n    ".join(keep)) if keep else ""


def start_once(daemon, cfg, logpath):
    """One documented start: -f as root. Returns (outcome, detail)."""
    # Under attack a start may end after the privilege drop, where the
    # process is not dumpable and LeakSanitizer cannot run (a fatal error
    # of its own at exit, as in test_accept_queue_errors): leaks are the
    # calm starts' business.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    with open(logpath, "wb") as log:
        p = subprocess.Popen([daemon, "-c", cfg, "-f"], stdout=log,
                             stderr=subprocess.STDOUT, env=env)
    PROCS.append(p)
    deadline = time.time() + 30
    while time.time() < deadline:
        if p.poll() is not None:
            break
        if "daemon started" in read(logpath):
            break
        time.sleep(0.02)
    if p.poll() is None and "daemon started" in read(logpath):
        time.sleep(RUN_SECONDS)
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return "hung", "no exit 30 s after SIGTERM"
        return "started", code
    if p.poll() is None:
        diag = ""
        for t in os.listdir("/proc/%d/task" % p.pid):
            try:
                diag += " %s:%s" % (t, read("/proc/%d/task/%s/wchan"
                                            % (p.pid, t)))
            except OSError:
                pass
        p.kill()
        p.wait()
        return "hung", "not started after 30 s (%s; log: %s)" % (
            diag, read(logpath)[-500:])
    return "refused", (p.returncode, read(logpath))


def part_daemon(tmp, build):
    daemon = os.path.join(build, "mta/strictmtad")
    addr = "127.0.0.1" if os.environ.get("NET_IN_NETNS") == "1" \
        else "127.22.0.7"
    pw = pwd.getpwnam("strictmta")
    admin_gid = grp.getgrnam(ADMIN_GROUP).gr_gid
    qdir = os.path.join(tmp, "queue")
    cfg = os.path.join(tmp, "main.cf")
    write_config(cfg, qdir, addr, free_port(addr))

    cans = os.path.join(tmp, "canaries")
    os.mkdir(cans)
    os.chmod(cans, 0o755)
    canary_a = os.path.join(cans, "canary-a")
    canary_b = os.path.join(cans, "canary-b")
    for c in (canary_a, canary_b):
        with open(c, "w") as f:
            f.write("root's alone: %s\n" % c)
        os.chmod(c, 0o600)
    canary_dir = os.path.join(cans, "canary-dir")
    os.mkdir(canary_dir)
    os.chmod(canary_dir, 0o700)

    # A first start makes the layout the attacker works in.
    outcome, detail = start_once(daemon, cfg, os.path.join(tmp, "log0"))
    check(outcome == "started" and detail == 0,
          "a start without the attacker works (%s %s)" % (outcome, detail))
    if outcome != "started":
        return
    before = snapshot(tmp, qdir)

    attackers = [subprocess.Popen(
        ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
         "--clear-groups", sys.executable, "-c", ATTACKER, mode, qdir,
         canary_a, canary_b, canary_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for mode in ("swap", "hunt")]
    time.sleep(0.2)
    started = refused = 0
    reasons = {}
    for i in range(STARTS):
        logpath = os.path.join(tmp, "log%d" % (i + 1))
        outcome, detail = start_once(daemon, cfg, logpath)
        if outcome == "started":
            started += 1
            # Stopped by SIGTERM, not killed by a signal of its own.
            check(detail >= 0, "start %d: ran and stopped (exit %d)%s"
                  % (i + 1, detail, sanitizer_lines(read(logpath))))
        elif outcome == "refused":
            refused += 1
            code, log = detail
            fatal = [l for l in log.splitlines() if "fatal:" in l]
            check(code in (71, 78) and len(fatal) == 1 and qdir in fatal[0],
                  "start %d: refused clearly (exit %d: %s)%s"
                  % (i + 1, code, fatal[0].split("fatal: ", 1)[-1]
                     if fatal else log.strip()[-300:],
                     sanitizer_lines(log)))
            if fatal:
                why = fatal[0].split("fatal: ", 1)[-1].replace(qdir, "Q")
                reasons[why] = reasons.get(why, 0) + 1
        else:
            check(False, "start %d: %s" % (i + 1, detail))
    swaps = {"file_swaps": 0, "dir_swaps": 0, "hunts": 0, "errors": 0}
    for a in attackers:
        a.send_signal(signal.SIGTERM)
        out, err = a.communicate(timeout=60)
        try:
            for k, v in json.loads(out.decode()).items():
                swaps[k] += v
        except ValueError:
            print(err.decode(errors="replace"))
            check(False, "an attacker reported what it did")
    # Put the folders back where a failed restore left them.
    for d in ("pid", "private", "db", "policy"):
        p = os.path.join(qdir, d)
        if os.path.islink(p):
            os.unlink(p)
        if os.path.lexists(p + ".saved"):
            if os.path.lexists(p):
                shutil.rmtree(p)
            os.rename(p + ".saved", p)

    after = snapshot(tmp, qdir)
    # Our own start logs are new files outside the queue: not the point.
    changed = [p for p in sorted(set(before) | set(after))
               if not os.path.basename(p).startswith("log") and
               before.get(p) != after.get(p)]
    for p in changed:
        print("  changed: %s %s -> %s" % (p, before.get(p), after.get(p)))
    check(not changed, "no file outside the queue changed owner, mode or "
          "content (%d files watched)" % len(before))
    check(os.listdir(canary_dir) == [], "nothing appeared in the canary "
          "folder")
    for c in (canary_a, canary_b):
        st = os.stat(c)
        check(st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600,
              "%s still root's, 0600" % os.path.basename(c))
    nswaps = swaps["file_swaps"] + swaps["dir_swaps"] + swaps["hunts"]
    check(nswaps > STARTS, "the attackers swapped links in (%d)" % nswaps)
    check(started >= 1, "the daemon still started under attack")
    print("figures: %d starts (%d ran and stopped, %d refused); %d swaps "
          "(%d file links, %d folder links, %d links over a fresh socket, "
          "%d attempts that failed)"
          % (STARTS, started, refused, nswaps, swaps["file_swaps"],
             swaps["dir_swaps"], swaps["hunts"], swaps["errors"]))
    for why, n in sorted(reasons.items()):
        print("  refused %dx: %s" % (n, why))

    # A calm start: what root made is strictmta's, with the right modes.
    outcome, detail = start_once(daemon, cfg, os.path.join(tmp, "logz"))
    check(outcome == "started" and detail == 0,
          "a calm start after the attack works (%s %s)" % (outcome, detail))
    with open(os.path.join(tmp, "logw"), "wb") as log:
        p = subprocess.Popen([daemon, "-c", cfg, "-f"], stdout=log,
                             stderr=subprocess.STDOUT)
    PROCS.append(p)
    deadline = time.time() + 30
    while time.time() < deadline and p.poll() is None and \
            "daemon started" not in read(os.path.join(tmp, "logw")):
        time.sleep(0.05)
    ctl = os.path.join(qdir, "private/control")
    pidf = os.path.join(qdir, "pid/master.pid")
    if p.poll() is None and os.path.exists(ctl):
        st = os.lstat(ctl)
        check(stat.S_ISSOCK(st.st_mode) and st.st_uid == pw.pw_uid and
              st.st_gid == admin_gid and stat.S_IMODE(st.st_mode) == 0o660,
              "control socket is strictmta:%s 0660 (uid %d gid %d %04o)"
              % (ADMIN_GROUP, st.st_uid, st.st_gid,
                 stat.S_IMODE(st.st_mode)))
        st = os.lstat(pidf)
        check(stat.S_ISREG(st.st_mode) and st.st_uid == pw.pw_uid and
              stat.S_IMODE(st.st_mode) == 0o644 and
              read(pidf).strip() == str(p.pid),
              "pid file is strictmta's, 0644, holds the pid")
        root_owned = []
        for root, dnames, fnames in os.walk(qdir):
            for name in dnames + fnames:
                full = os.path.join(root, name)
                if os.lstat(full).st_uid != pw.pw_uid:
                    root_owned.append(full)
        check(not root_owned, "everything in the queue is strictmta's %s"
              % root_owned[:5])
    else:
        check(False, "calm start: daemon up with its socket")
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, "calm daemon stops with exit 0 (%s)" % code)
    check(not os.path.lexists(ctl) and not os.path.lexists(pidf),
          "socket and pid file removed at the stop")


def part_sendmail(tmp, build):
    binary = os.path.join(build, "mta/sendmail")
    with open(binary, "rb") as f:
        if b"__asan_init" in f.read():
            print("sanitizer build: skipping the setgid sendmail part")
            return
    nobody = pwd.getpwnam("nobody")
    gid = grp.getgrnam("strictmtadrop").gr_gid
    admin_gid = grp.getgrnam(ADMIN_GROUP).gr_gid
    base = os.path.join(tmp, "sm")
    os.mkdir(base)
    os.chmod(base, 0o755)
    exe = os.path.join(base, "sendmail")
    shutil.copy(binary, exe)
    os.chown(exe, 0, gid)
    os.chmod(exe, 0o2755)

    def queue(name):
        q = os.path.join(base, name)
        md = os.path.join(q, "maildrop")
        os.makedirs(md)
        os.chmod(q, 0o755)
        os.chown(md, 0, gid)
        os.chmod(md, 0o1730)
        return md

    def config(folder, qname, owner=0):
        path = os.path.join(folder, "main.cf")
        with open(path, "w") as f:
            f.write("queue_directory = %s\nmyhostname = host.example.org\n"
                    "mydomain = example.org\n" % os.path.join(base, qname))
        os.chmod(path, 0o644)
        os.chown(path, owner, owner)
        return path

    def folder(name, mode, uid=0, gid_=0):
        d = os.path.join(base, name)
        os.mkdir(d)
        os.chown(d, uid, gid_)
        os.chmod(d, mode)
        return d

    good_md = queue("q")
    evil_md = queue("evilq")  # the group may write here, nobody may not
    etc = folder("etc", 0o755)
    good_cfg = config(etc, "q")
    gw = folder("gw", 0o775, 0, admin_gid)
    gw_cfg = config(gw, "evilq")
    u = folder("u", 0o755, nobody.pw_uid, nobody.pw_gid)
    evil = os.path.join(u, "evil")
    os.mkdir(evil)
    os.chown(evil, nobody.pw_uid, nobody.pw_gid)
    config(evil, "evilq", nobody.pw_uid)
    os.symlink(os.path.join(evil, "main.cf"), os.path.join(u, "link.cf"))
    os.symlink(good_cfg, os.path.join(u, "good-link.cf"))
    for name in ("link.cf", "good-link.cf"):
        os.lchown(os.path.join(u, name), nobody.pw_uid, nobody.pw_gid)
    as_nobody = ["setpriv", "--reuid=%d" % nobody.pw_uid,
                 "--regid=%d" % nobody.pw_gid, "--clear-groups"]
    env = {"PATH": "/usr/sbin:/usr/bin:/bin"}

    def send(cfgpath):
        return subprocess.run(as_nobody + [exe, "-C", cfgpath,
                                           "a@example.com"],
                              input=b"Subject: x\n\nbody\n",
                              capture_output=True, env=env, timeout=30)

    def count(md):
        return len([n for n in os.listdir(md) if not n.startswith(".")])

    r = send(good_cfg)
    check(r.returncode == 0 and count(good_md) == 1,
          "sendmail -C in a root folder keeps the group (%d %s)"
          % (r.returncode, r.stderr.decode(errors="replace").strip()))
    r = send(os.path.join(u, "good-link.cf"))
    check(r.returncode == 0 and count(good_md) == 2,
          "a link to a root-owned config is followed and checked (%d %s)"
          % (r.returncode, r.stderr.decode(errors="replace").strip()))
    r = send(gw_cfg)
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 75 and count(evil_md) == 0 and
          "running without the setgid group" in err and gw in err,
          "sendmail -C in a group-writable folder drops the group "
          "(%d %s)" % (r.returncode, err.strip()))
    r = send(os.path.join(u, "link.cf"))
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 75 and count(evil_md) == 0 and
          "running without the setgid group" in err,
          "sendmail -C through nobody's link to nobody's file drops the "
          "group (%d %s)" % (r.returncode, err.strip()))

    # The race: u/cur flips between etc/ and u/evil/.
    cur = os.path.join(u, "cur")
    flipper = subprocess.Popen(
        as_nobody + [sys.executable, "-c", FLIPPER, cur, etc, evil],
        stdout=subprocess.PIPE)
    deadline = time.time() + 10
    while not os.path.lexists(cur) and time.time() < deadline:
        time.sleep(0.01)
    trusted = dropped = other = 0
    for _ in range(SENDMAIL_RACE_RUNS):
        r = send(os.path.join(cur, "main.cf"))
        err = r.stderr.decode(errors="replace")
        if r.returncode == 0:
            trusted += 1
        elif r.returncode == 75 and "without the setgid group" in err:
            dropped += 1
        elif r.returncode == 78 and "cannot open" in err:
            other += 1  # the link was mid-flip when opened as the user
        else:
            other += 1
            print("  unexpected: %d %s" % (r.returncode, err.strip()))
    flipper.send_signal(signal.SIGTERM)
    flips = flipper.communicate(timeout=30)[0].decode().strip()
    check(count(evil_md) == 0, "no run wrote with the group where nobody's "
          "config pointed (%d files)" % count(evil_md))
    check(count(good_md) == 2 + trusted,
          "every trusted run dropped off its mail in the real queue")
    check(trusted + dropped + other == SENDMAIL_RACE_RUNS and
          trusted + dropped > 0, "every run either kept or dropped the group")
    print("figures: %d sendmail runs against a flipping link (%s flips): "
          "%d with the group (root's file), %d without, %d other"
          % (SENDMAIL_RACE_RUNS, flips or "?", trusted, dropped, other))


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (the daemon starts as root)")
        return 77
    build = os.environ.get("STRICTMTA_BUILD_DIR",
                           os.path.join(os.path.dirname(
                               os.path.abspath(__file__)), "../../build"))
    for prog in ("mta/strictmtad", "mta/sendmail"):
        if not os.access(os.path.join(build, prog), os.X_OK):
            print("SKIP: %s is not built" % prog)
            return 77
    if shutil.which("setpriv") is None:
        print("SKIP: no setpriv")
        return 77
    reexec_in_netns()
    ensure_accounts()
    tmp = tempfile.mkdtemp(prefix="strictmta-priv-")
    os.chmod(tmp, 0o755)
    try:
        part_daemon(tmp, build)
        part_sendmail(tmp, build)
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("STRICTMTA_KEEP_TMP") == "1":
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d failed: %s" % (len(failures), "; ".join(failures)))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
