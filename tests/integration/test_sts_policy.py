#!/usr/bin/python3
"""MTA-STS discovery, fetch and cache against the test network: the real
Knot + Unbound DNS (sts.test), nginx serving policies over HTTPS with the
test CA's certificates, and strictmta's resolver, fetcher and Berkeley DB
cache driven by tests/tools/sts_probe. Runs in its own network namespace.

What a postmaster would see: which domains get a policy, in which mode,
from the network or from the cache, and why a domain has none."""
import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
import netlib  # noqa: E402

netlib.reexec_in_netns(__file__)
SRC = os.environ.get("STRICTMTA_SOURCE_DIR", os.path.join(HERE, "../.."))
BUILD = os.environ.get("STRICTMTA_BUILD_DIR", os.path.join(SRC, "build"))
NETCTL = os.path.join(SRC, "tests/net/netctl")
PROBE = os.path.join(BUILD, "tests/sts_probe")

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def load_env(state):
    env = {}
    for line in open(os.path.join(state, "env")):
        k, _, v = line.strip().partition("=")
        env[k] = v
    return env


def probe(conf, cache, *args):
    out = subprocess.run([PROBE, "-c", conf, "-C", cache, *args],
                         capture_output=True, text=True, timeout=120)
    results = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["domain"]] = r
    if out.returncode != 0:
        print(out.stderr)
    return results


with tempfile.TemporaryDirectory() as tmp:
    state = os.path.join(tmp, "net")
    subprocess.run([NETCTL, "start", state], check=True, timeout=120)
    try:
        env = load_env(state)
        conf = os.path.join(tmp, "main.cf")
        with open(conf, "w") as fp:
            fp.write(f"""dns_resolver_mode = stub
dns_stub_resolvers = {env['NET_RESOLVER']}
dnssec_trust_anchor_file = {env['NET_TRUST_ANCHOR']}
mta_sts_CAfile = {env['NET_CA']}
mta_sts_fetch_timeout = 10s
""")
        cache = os.path.join(tmp, "sts-cache.db")
        names = ["enforce", "testing", "none", "wildcard", "nopolicy",
                 "redirect", "badtype", "notxt"]
        r = probe(conf, cache, *[n + ".sts.test" for n in names])
        e = r.get("enforce.sts.test", {})
        check(e.get("policy") and e.get("mode") == "enforce" and
              e.get("mx") == ["mx.enforce.sts.test"] and
              e.get("source") == "fetch" and
              e.get("id") == "20260101T000000", f"enforce: {e}")
        check(r.get("testing.sts.test", {}).get("mode") == "testing",
              f"testing: {r.get('testing.sts.test')}")
        check(r.get("none.sts.test", {}).get("mode") == "none",
              f"none: {r.get('none.sts.test')}")
        check(r.get("wildcard.sts.test", {}).get("mx") ==
              ["*.wildcard.sts.test"], f"wildcard: {r.get('wildcard.sts.test')}")
        for name, why in (("nopolicy", "HTTP status 404"),
                          ("redirect", "redirect refused"),
                          ("badtype", "is not text/plain"),
                          ("notxt", "TXT")):
            v = r.get(name + ".sts.test", {})
            check(v and not v["policy"] and why in v["note"],
                  f"{name}: expected no policy because '{why}': {v}")

        # RFC 8461 3.3: a failed fetch is not repeated for the same id
        # within five minutes (asked twice in one process).
        out = subprocess.run([PROBE, "-c", conf, "-C", cache, "-a",
                              "nopolicy.sts.test"], capture_output=True,
                             text=True, timeout=120)
        answers = [json.loads(x) for x in out.stdout.splitlines()
                   if x.startswith("{")]
        check(len(answers) == 2 and "HTTP status 404" in
              answers[0]["note"] and "not retried yet" in
              answers[1]["note"], f"failed fetch not repeated: {answers}")

        # A new process: the Berkeley DB cache survived; no fetch.
        r = probe(conf, cache, "enforce.sts.test")
        check(r.get("enforce.sts.test", {}).get("source") == "cache",
              f"cache after restart: {r}")
        # Refresh forces a fetch even with a fresh cache.
        r = probe(conf, cache, "-r", "enforce.sts.test")
        check(r.get("enforce.sts.test", {}).get("source") == "fetch",
              f"refresh: {r}")

        # DNS gone (resolver unreachable): the cached enforce policy
        # stays in force; an attacker cannot switch it off that way.
        dead = os.path.join(tmp, "dead.cf")
        with open(dead, "w") as fp:
            fp.write(open(conf).read().replace(
                env["NET_RESOLVER"], "127.53.0.250") + "dns_timeout = 3s\n")
        r = probe(dead, cache, "enforce.sts.test", "testing.sts.test")
        v = r.get("enforce.sts.test", {})
        check(v.get("policy") and v.get("mode") == "enforce" and
              v.get("source") == "cache" and "TXT lookup failed" in
              v.get("note", ""), f"enforce with DNS down: {v}")

        # Forget removes the cached policy; with DNS down none is left.
        r = probe(dead, cache, "-f", "enforce.sts.test")
        check(not r.get("enforce.sts.test", {}).get("policy", True),
              f"forget: {r}")

        def netctl(*args):
            subprocess.run([NETCTL, *args], check=True, timeout=60,
                           capture_output=True)

        # A new id in the TXT record: fetched again (RFC 8461 5.1).
        r = probe(conf, cache, "enforce.sts.test")
        netctl("dns-set", state, "_mta-sts.enforce.sts.test", "TXT",
               '"v=STSv1; id=2;"')
        r = probe(conf, cache, "enforce.sts.test")
        v = r.get("enforce.sts.test", {})
        check(v.get("source") == "fetch" and v.get("id") == "2",
              f"changed id fetches again: {v}")

        # A new id, but the policy body is now over 64 KiB: the fetch
        # fails and the cached policy (id 2) stays in force.
        pol = os.path.join(state, "www/mta-sts.enforce.sts.test",
                           ".well-known/mta-sts.txt")
        good = open(pol, "rb").read()
        with open(pol, "wb") as fp:
            fp.write(good + b"x-pad: " + b"a" * 70000 + b"\r\n")
        netctl("dns-set", state, "_mta-sts.enforce.sts.test", "TXT",
               '"v=STSv1; id=3;"')
        r = probe(conf, cache, "enforce.sts.test")
        v = r.get("enforce.sts.test", {})
        check(v.get("source") == "cache" and v.get("id") == "2" and
              "64 KiB" in v.get("note", ""), f"body over 64 KiB: {v}")
        with open(pol, "wb") as fp:
            fp.write(good)

        # The attacker strips the TXT record and stops the policy host
        # while the cached enforce policy is valid: still enforced.
        netctl("dns-del", state, "_mta-sts.enforce.sts.test", "TXT")
        for line in open(os.path.join(state, "pids")):
            pid, name = line.split()[:2]
            if name == "nginx":
                os.kill(int(pid), signal.SIGTERM)
        time.sleep(1)
        r = probe(conf, cache, "enforce.sts.test")
        v = r.get("enforce.sts.test", {})
        check(v.get("policy") and v.get("mode") == "enforce" and
              v.get("source") == "cache", f"TXT removed, host down: {v}")

        # A policy host answering 500, and one that never answers.
        certs = os.path.join(tmp, "web")
        os.makedirs(certs)
        names = ["mta-sts.srv500.sts.test", "mta-sts.slow.sts.test"]
        ext = os.path.join(certs, "ext.cnf")
        with open(ext, "w") as fp:
            fp.write("subjectAltName=" +
                     ",".join("DNS:" + n for n in names) + "\n")
        key, csr, crt = (os.path.join(certs, x)
                         for x in ("k.pem", "r.csr", "c.pem"))
        subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", csr, "-subj",
                        "/CN=" + names[0]], check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA",
                        env["NET_CA"], "-CAkey", env["NET_CA_KEY"],
                        "-CAcreateserial", "-days", "2", "-out", crt,
                        "-extfile", ext], check=True, capture_output=True)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Host", "").startswith(
                        "mta-sts.slow."):
                    time.sleep(8)
                self.send_response(500)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"version: STSv1\r\n")

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.44.0.2", 443), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        for label in ("srv500", "slow"):
            netctl("dns-set", state, f"mta-sts.{label}.sts.test", "A",
                   "127.44.0.2")
            netctl("dns-set", state, f"_mta-sts.{label}.sts.test", "TXT",
                   '"v=STSv1; id=1;"')
        with open(conf, "a") as fp:
            fp.write("mta_sts_fetch_timeout = 3s\n")
        t0 = time.time()
        r = probe(conf, cache, "srv500.sts.test", "slow.sts.test")
        took = time.time() - t0
        v = r.get("srv500.sts.test", {})
        check(not v.get("policy", True) and "HTTP status 500" in
              v.get("note", ""), f"HTTP 500: {v}")
        v = r.get("slow.sts.test", {})
        check(not v.get("policy", True) and "fetch failed" in
              v.get("note", ""), f"timeout: {v}")
        check(took < 8, f"the fetch timeout (3 s) bounds the wait: {took}")
        srv.shutdown()
    finally:
        subprocess.run([NETCTL, "stop", state], timeout=60)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
