#!/usr/bin/python3
"""MTA-STS discovery, fetch and cache against the test network: the real
Knot + Unbound DNS (sts.test), nginx serving policies over HTTPS with the
test CA's certificates, and strictmta's resolver, fetcher and Berkeley DB
cache driven by tests/tools/sts_probe. Runs in its own network namespace.

What a postmaster would see: which domains get a policy, in which mode,
from the network or from the cache, and why a domain has none."""
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("STRICTMTA_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("STRICTMTA_BUILD_DIR", os.path.join(SRC, "build"))
NETCTL = os.path.join(SRC, "tests/net/netctl")
PROBE = os.path.join(BUILD, "tests/sts_probe")

if os.environ.get("NET_IN_NETNS") != "1":
    if os.geteuid() != 0:
        print("SKIP: needs root for a network namespace")
        sys.exit(77)
    os.execv(os.path.join(SRC, "tests/net/netns-run"),
             ["netns-run", sys.executable, os.path.abspath(__file__)])

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
    finally:
        subprocess.run([NETCTL, "stop", state], timeout=60)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
