#!/usr/bin/python3
"""DANE for SMTP host by host against the test network: real signed
zones (dane.test, insecure.test, bogus.test), a validating Unbound, SMTP
sinks with certificates from the test CA, and strictmta's resolver, TLSA
rules and OpenSSL DANE verification (tests/tools/dane_probe). Runs in its
own network namespace.

Each case asserts what delivery will act on: whether DANE applies, whether
the records are usable, and whether the server's certificate is
authenticated by them."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
import netlib  # noqa: E402

netlib.reexec_in_netns(__file__)
SRC = os.environ.get("STRICTMTA_SOURCE_DIR", os.path.join(HERE, "../.."))
BUILD = os.environ.get("STRICTMTA_BUILD_DIR", os.path.join(SRC, "build"))
NETCTL = os.path.join(SRC, "tests/net/netctl")
PROBE = os.path.join(BUILD, "tests/dane_probe")

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


# host -> (state, starttls, verified); None = not checked
CASES = {
    "mx.ee.dane.test": ("dane", True, True),
    "mx.ta.dane.test": ("dane", True, True),
    "mx.eeself.dane.test": ("dane", True, True),
    "mx.mismatch.dane.test": ("dane", True, False),
    "mx.tawrongname.dane.test": ("dane", True, False),
    "mx.unusable.dane.test": ("dane-unusable", True, False),
    "mxalias.dane.test": ("dane", True, True),
    "mx.notlsa.dane.test": ("none", True, False),
    "mx.nostarttls.dane.test": ("dane", False, None),
    "mx.tlsabogus.dane.test": ("dane-failed", None, None),
    "mx.insecure.test": ("none", None, None),
    "mx.rollover.dane.test": ("dane", True, True),
    "mx.eeexpired.dane.test": ("dane", True, True),
}

with tempfile.TemporaryDirectory() as tmp:
    state = os.path.join(tmp, "net")
    subprocess.run([NETCTL, "start", state], check=True, timeout=120)
    try:
        env = dict(line.strip().split("=", 1)
                   for line in open(os.path.join(state, "env")))
        conf = os.path.join(tmp, "main.cf")
        with open(conf, "w") as fp:
            fp.write(f"""dns_resolver_mode = stub
dns_stub_resolvers = {env['NET_RESOLVER']}
dnssec_trust_anchor_file = {env['NET_TRUST_ANCHOR']}
""")
        for host, (want_state, want_tls, want_ok) in CASES.items():
            out = subprocess.run([PROBE, "-c", conf, "-t", host],
                                 capture_output=True, text=True,
                                 timeout=90)
            try:
                r = json.loads(out.stdout)
            except ValueError:
                check(False, f"{host}: no JSON: {out.stdout!r} "
                      f"{out.stderr[-500:]!r}")
                continue
            check(r.get("state") == want_state,
                  f"{host}: state {r.get('state')} != {want_state}: {r}")
            if want_tls is not None:
                check(r.get("starttls") == want_tls,
                      f"{host}: starttls {r.get('starttls')}: {r}")
            if want_ok is not None:
                check(r.get("verified") == want_ok,
                      f"{host}: verified {r.get('verified')}: {r}")
        # The CNAME'd MX host: TLSA base domain is the expanded name.
        out = subprocess.run([PROBE, "-c", conf, "mxalias.dane.test"],
                             capture_output=True, text=True, timeout=90)
        r = json.loads(out.stdout)
        check(r.get("base") == "mx.cnametarget.dane.test",
              f"CNAME base domain: {r}")
    finally:
        subprocess.run([NETCTL, "stop", state], timeout=60)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
