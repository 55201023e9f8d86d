#!/usr/bin/python3
"""The scenarios of shared/vectors/dane.json that the other DANE tests do
not already exercise, each case named by its vector id (docs/conformance.md
maps every rule and scenario to the test that covers it).

Part 1, offline (policy_tool dane-chain): the certificate-matching
scenarios (mox-*, stalwart-no-match) with a fresh test CA and leaves made
here: which records are usable for SMTP (RFC 7672 3.1) and whether OpenSSL,
set up as delivery sets it up, authenticates the chain.

Part 2, the test network (tests/net) in a private network namespace:
  - dane_probe: TLSA owner name, SNI = TLSA base domain, an insecure
    host's published TLSA ignored, a failed TLS handshake, an unusable
    RRset with a server that has no STARTTLS;
  - strictmtad end to end: an unsigned domain whose MX host has TLSA
    (RFC 7672 2.2.1), a host whose zone is unsigned delivered in clear
    even with a (mismatching) TLSA record published there, a TLS handshake
    failure and an unusable RRset without STARTTLS held with 4.7.5 and
    nothing sent; and for MTA-STS (rfc_statements 21, 22 of mta-sts.json)
    SNI and the TLS 1.2 minimum towards an enforce MX.

Part 3, also on the test network: the MTA-STS vectors (mta-sts.json
policy_fetch, policy_cache, txt_lookup) that tests/integration/
test_sts_policy.py does not run, with sts_probe and a policy host of this
test's own on 127.44.0.2 (status, media type and body per host name).

Part 1 runs without root; parts 2 and 3 are skipped (and said so) when the
test network cannot run."""
import base64
import datetime
import hashlib
import json
import os
import re
import smtplib
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import netlib  # noqa: E402

if netlib.skip_reason() is None:
    netlib.reexec_in_netns(__file__)  # returns only inside the namespace

SRC = os.environ.get("STRICTMTA_SOURCE_DIR", os.path.join(HERE, "../.."))
BUILD = os.environ.get("STRICTMTA_BUILD_DIR", os.path.join(SRC, "build"))
POLICY_TOOL = os.path.join(BUILD, "tests", "policy_tool")
DANE_PROBE = os.path.join(BUILD, "tests", "dane_probe")

passed = failed = skipped = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


# ---------------------------------------------------------------- part 1

def make_pki(tmp):
    """A CA, leaves for BASE and for 'localhost', an expired leaf for
    BASE; returns {name: (pem, der, spki_der)}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("scenario test CA"))
          .issuer_name(name("scenario test CA"))
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - day).not_valid_after(now + 30 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False,
                                       True, True, False, False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(dns, start, end):
        key = ec.generate_private_key(ec.SECP256R1())
        return (x509.CertificateBuilder().subject_name(name(dns))
                .issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(dns)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False,
                                                     path_length=None),
                               critical=True)
                .sign(ca_key, hashes.SHA256()))

    certs = {"ca": ca,
             "leaf": leaf(BASE, now - day, now + 30 * day),
             "localhost": leaf("localhost", now - day, now + 30 * day),
             "expired": leaf(BASE, now - 400 * day, now - 30 * day)}
    out = {}
    for k, c in certs.items():
        out[k] = (c.public_bytes(serialization.Encoding.PEM).decode(),
                  c.public_bytes(serialization.Encoding.DER),
                  c.public_key().public_bytes(
                      serialization.Encoding.DER,
                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return out


BASE = "mx.scenario.test"


def rr(usage, selector, mtype, data):
    return "%02x%02x%02x%s" % (usage, selector, mtype, data.hex())


def chain_file(tmp, pki, names):
    path = os.path.join(tmp, "-".join(names) + ".pem")
    with open(path, "w") as fp:
        for n in names:
            fp.write(pki[n][0])
    return path


def dane_chain(base, pem, records):
    out = subprocess.run([POLICY_TOOL, "dane-chain", base, pem, *records],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        return {"error": out.stderr}
    return json.loads(out.stdout)


def tlsa_usable(record):
    out = subprocess.run([POLICY_TOOL, "tlsa", record], capture_output=True,
                         text=True, timeout=30)
    return json.loads(out.stdout)


def part1():
    """Offline: usability and matching for the mox and Stalwart sets."""
    global skipped
    try:
        import cryptography  # noqa: F401
    except ImportError:
        print("SKIP part 1: python3-cryptography is not installed")
        skipped += 1
        return
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(tmp)
        leaf_spki = pki["leaf"][2]
        ca_der = pki["ca"][1]
        sha256 = lambda b: hashlib.sha256(b).digest()  # noqa: E731
        good = rr(3, 1, 1, sha256(leaf_spki))
        leaf_ca = chain_file(tmp, pki, ["leaf", "ca"])
        leaf_only = chain_file(tmp, pki, ["leaf"])
        localhost_ca = chain_file(tmp, pki, ["localhost", "ca"])
        expired_ca = chain_file(tmp, pki, ["expired", "ca"])
        # id -> (chain, records, usable count, verified); usable 0 means
        # "TLS required, unauthenticated" (RFC 7672 2.2, 3): not
        # authenticated, as the vectors' "no match" asks.
        cases = {
            "mox-ee-spki-sha256": (leaf_ca, [good], 1, True),
            "mox-mixed-mismatch-first": (
                leaf_ca, [rr(2, 0, 1, bytes(32)), good], 2, True),
            "mox-ta-cert-sha256": (
                leaf_ca, [rr(2, 0, 1, sha256(ca_der))], 1, True),
            "mox-ee-mismatch": (leaf_ca, [rr(3, 1, 1, bytes(32))], 1, False),
            "mox-ee-spki-sha512": (
                leaf_ca, [rr(3, 1, 2, hashlib.sha512(leaf_spki).digest())],
                1, True),
            "mox-ee-spki-full": (leaf_ca, [rr(3, 1, 0, leaf_spki)], 1, True),
            "mox-ta-cert-full": (leaf_ca, [rr(2, 0, 0, ca_der)], 1, True),
            "mox-ta-not-in-handshake": (
                leaf_ca, [rr(2, 0, 1, bytes(32))], 1, False),
            "mox-ta-name-mismatch": (
                localhost_ca, [rr(2, 0, 1, sha256(ca_der))], 1, False),
            "mox-ta-expired-leaf": (
                expired_ca, [rr(2, 0, 1, sha256(ca_der))], 1, False),
            "mox-malformed-only": (
                leaf_ca, [rr(3, 1, 1, sha256(leaf_spki)[:16])], 0, False),
            "mox-malformed-plus-good": (
                leaf_ca, [rr(3, 1, 1, sha256(leaf_spki)[:16]), good], 1,
                True),
            "mox-unknown-usage-only": (
                leaf_ca, [rr(10, 1, 1, sha256(leaf_spki))], 0, False),
            "mox-unknown-usage-plus-good": (
                leaf_ca, [rr(10, 1, 1, sha256(leaf_spki)), good], 1, True),
            "mox-malformed-full-ta": (
                leaf_ca, [rr(2, 0, 0, ca_der[1:])], 0, False),
            "mox-full-ta-not-sent": (
                leaf_only, [rr(2, 0, 0, ca_der)], 1, True),
            "mox-pkix-ee-untrusted": (
                leaf_ca, [rr(1, 1, 1, sha256(leaf_spki))], 0, False),
            # The usage filter of mox is an API option; strictmta's is
            # fixed by RFC 7672 3.1.3: PKIX-TA/PKIX-EE never usable.
            "mox-usage-filter": (
                leaf_ca, [rr(0, 1, 1, sha256(leaf_spki)),
                          rr(1, 1, 1, sha256(leaf_spki))], 0, False),
            # 3 bytes of "SHA-256": malformed, hence unusable (R-digest-
            # lengths); the host gets level encrypt, not a failure.
            "stalwart-no-match": (
                leaf_ca, [rr(3, 1, 1, bytes.fromhex("010203"))], 0, False),
            # DANE-EE ignores names and dates (RFC 7671 5.1).
            "R-dane-ee-no-name-no-expiry": (
                chain_file(tmp, pki, ["expired"]),
                [rr(3, 0, 1, sha256(pki["expired"][1]))], 1, True),
            "R-dane-ee-no-name-no-expiry/name": (
                localhost_ca, [rr(3, 1, 1, sha256(pki["localhost"][2]))],
                1, True),
            # DANE-TA with a digest: the TA must be in the chain sent.
            "R-dane-ta-sent-by-server": (
                leaf_only, [rr(2, 0, 1, sha256(ca_der))], 1, False),
            # SHA-256 and SHA-512 both supported; an unknown matching
            # type (3) is unusable, not an error.
            "R-digest-agility": (
                leaf_ca, [rr(3, 1, 3, sha256(leaf_spki)),
                          rr(3, 1, 2, hashlib.sha512(leaf_spki).digest())],
                1, True),
        }
        for cid, (pem, records, usable, verified) in cases.items():
            r = dane_chain(BASE, pem, records)
            check(r.get("usable") == usable and
                  r.get("verified") == verified,
                  f"{cid}: want usable={usable} verified={verified}, "
                  f"got {r}")
        # Usability of single records (RFC 7672 3.1.3, RFC 6698 2.1.3).
        for cid, record, usable in (
                ("R-usages-0-1-unusable/0", rr(0, 0, 1, bytes(32)), False),
                ("R-usages-0-1-unusable/1", rr(1, 1, 1, bytes(32)), False),
                ("R-digest-lengths/sha256-31", rr(3, 1, 1, bytes(31)), False),
                ("R-digest-lengths/sha256-32", rr(3, 1, 1, bytes(32)), True),
                ("R-digest-lengths/sha256-33", rr(3, 1, 1, bytes(33)), False),
                ("R-digest-lengths/sha512-32", rr(3, 1, 2, bytes(32)), False),
                ("R-digest-lengths/sha512-64", rr(2, 0, 2, bytes(64)), True),
                ("R-digest-lengths/full-not-der", rr(3, 1, 0, b"\x01\x02"),
                 False),
                ("R-digest-lengths/full-der", rr(3, 1, 0, leaf_spki), True)):
            r = tlsa_usable(record)
            check(r.get("usable") == usable,
                  f"{cid}: want usable={usable}, got {r}")


# ---------------------------------------------------------------- part 2

def probe(conf, host, tls=True):
    out = subprocess.run([DANE_PROBE, "-c", conf] + (["-t"] if tls else [])
                         + [host], capture_output=True, text=True,
                         timeout=90)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return {"error": out.stdout + out.stderr[-500:]}


def sni_seen(net, addr, want, timeout=5.0):
    """The SNI of the last connection logged for addr (a connection is
    logged when it ends: wait a little for want)."""
    end = time.monotonic() + timeout
    while True:
        conns = net.connections(addr)
        sni = conns[-1].get("sni") if conns else None
        if sni == want or time.monotonic() > end:
            return sni
        time.sleep(0.1)


def part2_probe(net, tmp):
    env = net.env
    conf = os.path.join(tmp, "probe.cf")
    with open(conf, "w") as fp:
        fp.write(f"""dns_resolver_mode = stub
dns_stub_resolvers = {env['NET_RESOLVER']}
dnssec_trust_anchor_file = {env['NET_TRUST_ANCHOR']}
""")
    state = net.state
    netctl = os.path.join(SRC, "tests/net/netctl")

    # mxconnect-owner-name: TLSA at _25._tcp.<MX host> (RFC 7672 2.2.3).
    r = probe(conf, "mx.ee.dane.test")
    check(r.get("state") == "dane" and r.get("base") == "mx.ee.dane.test"
          and "at _25._tcp.mx.ee.dane.test" in r.get("why", ""),
          f"mxconnect-owner-name: {r}")
    # R-sni: the SNI sent is the TLSA base domain (RFC 7672 8.1), also
    # for a CNAME'd MX host (the expanded name).
    sni = sni_seen(net, "127.25.0.40", "mx.ee.dane.test")
    check(r.get("verified") is True and sni == "mx.ee.dane.test",
          f"R-sni: SNI {sni}: {r}")
    r = probe(conf, "mxalias.dane.test")
    sni = sni_seen(net, "127.25.0.44", "mx.cnametarget.dane.test")
    check(r.get("verified") is True and sni == "mx.cnametarget.dane.test",
          f"R-sni (CNAME): SNI {sni}: {r}")

    # maddy-non-ad-ignored, mox-insecure-tlsa, R-no-tlsa-lookup-for-
    # insecure-host: a mismatching TLSA record published in the unsigned
    # zone of the MX host, whose server offers no STARTTLS: no TLSA
    # lookup at all, no DANE.
    subprocess.run([netctl, "dns-set", state, "_25._tcp.mx.insecure.test",
                    "TLSA", "3 1 1 " + "ff" * 32], check=True, timeout=60,
                   capture_output=True)
    net.sink("127.25.0.30", {"starttls": False})
    r = probe(conf, "mx.insecure.test")
    check(r.get("state") == "none" and r.get("addr_dnssec") == "insecure"
          and "no TLSA lookup" in r.get("why", "") and
          r.get("starttls") is False,
          f"maddy-non-ad-ignored (probe): {r}")

    # mox-insecure-cname: the MX host is an alias in an unsigned zone for
    # a secure host with a matching TLSA record: the address answer is
    # insecure, so no TLSA lookup and no DANE.
    subprocess.run([netctl, "dns-set", state, "alias.insecure.test",
                    "CNAME", "mx.ee.dane.test."], check=True, timeout=60,
                   capture_output=True)
    r = probe(conf, "alias.insecure.test", tls=False)
    check(r.get("state") == "none" and r.get("addr_dnssec") == "insecure"
          and "no TLSA lookup" in r.get("why", ""),
          f"mox-insecure-cname: {r}")

    # maddy-tls-handshake-error: usable records, the server only speaks
    # TLS 1.1 or less: no handshake, not verified.
    net.sink("127.25.0.40", {"tls_max": "TLSv1.1"})
    r = probe(conf, "mx.ee.dane.test")
    check(r.get("state") == "dane" and r.get("starttls") is True and
          r.get("handshake") is False and r.get("verified") is False,
          f"maddy-tls-handshake-error (probe): {r}")

    # R-all-unusable: only unusable records, no STARTTLS offered.
    net.sink("127.25.0.43", {"starttls": False})
    r = probe(conf, "mx.unusable.dane.test")
    check(r.get("state") == "dane-unusable" and r.get("nusable") == 0 and
          r.get("starttls") is False,
          f"R-all-unusable without STARTTLS (probe): {r}")


def m_data(rec):
    return base64.b64decode(rec.get("data_b64", ""))


def part2_deliver(net, tmp):
    """strictmtad end to end; sink changes of part2_probe still apply:
    127.25.0.30 and .43 offer no STARTTLS, .40 only TLS <= 1.1."""
    import smta
    global skipped
    if not os.path.exists(smta.program("strictmtad")):
        print("SKIP part 2 (delivery): strictmtad not built")
        skipped += 1
        return
    env = net.env
    host = "127.27.0.1"
    d = smta.network_daemon("dane-scenarios", env, host)
    try:
        d.start()

        def send(rcpt, token):
            msg = smta.make_message(token, sender="postmaster@strictmta.test",
                                    rcpt=rcpt)
            s = smtplib.SMTP(d.host, d.port, timeout=20,
                             source_address=(host, 0))
            try:
                s.ehlo("client.strictmta.test")
                s.mail("postmaster@strictmta.test")
                s.rcpt(rcpt)
                code, text = s.data(msg)
            finally:
                s.quit()
            return smta.QID_RE.search(text.decode()).group(1)

        def wait_log(pattern, timeout=40.0):
            rx = re.compile(pattern)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                m = rx.search(d.log_text(100000))
                if m:
                    return m
                time.sleep(0.3)
            return None

        def copies(addr, token):
            return [m for m in net.messages(addr)
                    if token.encode() in m_data(m)]

        # R-insecure-mx: unsigned todane.insecure.test, MX mx.ee.dane.test
        # (secure, TLSA): DANE applies to the host. The sink of .40 is
        # back to normal for this one.
        net.sink("127.25.0.40", {"tls_max": None})
        n40 = len(net.connections("127.25.0.40"))
        q = send("user@todane.insecure.test", "tok-todane")
        line = wait_log(r"%s: to=<user@todane\.insecure\.test>, "
                        r"relay=\S+\[127\.25\.0\.40\]:25, .*status=sent"
                        r" .*level=dane\b.*" % q)
        got = copies("127.25.0.40", "tok-todane")
        check(line is not None and "verified=yes" in line.group(0) and
              len(got) == 1 and got[0]["tls"] and
              got[0]["tls"].get("sni") == "mx.ee.dane.test",
              "R-insecure-mx: todane.insecure.test delivered at level dane"
              f": {line and line.group(0)}")

        # maddy-non-ad-ignored: the host's zone is unsigned, a TLSA record
        # that matches nothing is published there, the server has no
        # STARTTLS: delivered in clear at the default level.
        q = send("user@insecure.test", "tok-insecure")
        line = wait_log(r"%s: to=<user@insecure\.test>, relay=\S+"
                        r"\[127\.25\.0\.30\]:25, .*status=sent.*level=may\b"
                        % q)
        got = copies("127.25.0.30", "tok-insecure")
        check(line is not None and len(got) == 1 and got[0]["tls"] is None,
              "maddy-non-ad-ignored: delivered in clear, level may: "
              f"{line and line.group(0)} {got and got[0]['tls']}")

        # maddy-tls-handshake-error: usable TLSA, the handshake fails:
        # deferred 4.7.5, never retried in clear.
        # A cached session must end first (logged when it ends).
        smta.wait_for(lambda: len(net.connections("127.25.0.40")) > n40,
                      20)
        net.sink("127.25.0.40", {"tls_max": "TLSv1.1"})
        q_hs = q = send("user@ee.dane.test", "tok-handshake")
        line = wait_log(r"%s: to=<user@ee\.dane\.test>, .*dsn=4\.7\.5, "
                        r"status=deferred" % q)
        check(line is not None and not copies("127.25.0.40",
                                              "tok-handshake"),
              "maddy-tls-handshake-error: held with 4.7.5, nothing sent: "
              f"{line and line.group(0)}")

        # R-all-unusable: records all unusable, no STARTTLS: not sent.
        q_un = q = send("user@unusable.dane.test", "tok-unusable")
        # (4.7.4 "TLS is required, but was not offered", as Postfix.)
        line = wait_log(r"%s: to=<user@unusable\.dane\.test>, .*"
                        r"dsn=4\.7\.[45], status=deferred \(TLS is required"
                        % q)
        check(line is not None and not copies("127.25.0.43", "tok-unusable"),
              "R-all-unusable: no STARTTLS, held with 4.7.4/5: "
              f"{line and line.group(0)}")
        # rfc_statements[21] (RFC 8461 7.1): SNI is the MX host name;
        # rfc_statements[22] (7.2): TLS 1.2 or later, else not delivered.
        q = send("user@enforce.sts.test", "tok-stssni")
        line = wait_log(r"%s: to=<user@enforce\.sts\.test>, relay=\S+"
                        r"\[127\.25\.0\.50\]:25, .*status=sent.*"
                        r"level=sts-enforce\b" % q)
        got = copies("127.25.0.50", "tok-stssni")
        tls = got[0]["tls"] if got else None
        check(line is not None and tls and
              tls.get("sni") == "mx.enforce.sts.test" and
              tls.get("version") in ("TLSv1.2", "TLSv1.3"),
              f"rfc_statements[21]: SNI and version {tls}")
        # The cached session must end first (it is logged when it ends).
        smta.wait_for(lambda: net.connections("127.25.0.50"), 20)
        net.sink("127.25.0.50", {"tls_max": "TLSv1.1"})
        q_sts = q = send("user@enforce.sts.test", "tok-ststls11")
        line = wait_log(r"%s: to=<user@enforce\.sts\.test>, .*"
                        r"dsn=4\.7\.\d, status=deferred" % q)
        check(line is not None and not copies("127.25.0.50",
                                              "tok-ststls11"),
              "rfc_statements[22]: TLS <= 1.1 only: held: "
              f"{line and line.group(0)}")
        time.sleep(5)  # a retry or two: still held, still nothing sent
        ids = d.queue_ids()
        check(not copies("127.25.0.40", "tok-handshake") and
              not copies("127.25.0.43", "tok-unusable") and
              not copies("127.25.0.50", "tok-ststls11") and
              q_hs in ids and q_un in ids and q_sts in ids,
              f"held after retries: queue {ids}")
    finally:
        if failed:
            print(d.log_text(80))
        d.stop()
        d.cleanup()


# ---------------------------------------------------------------- part 3

STS_PROBE = os.path.join(BUILD, "tests", "sts_probe")
POLICY = (b"version: STSv1\r\nmode: %s\r\nmx: mx.enforce.sts.test\r\n"
          b"max_age: %d\r\n")


def sts_part(net, tmp):
    """MTA-STS discovery, fetch and cache cases of mta-sts.json that
    test_sts_policy.py does not run, with sts_probe and a policy host of
    this test's own on 127.44.0.2 (status, media type, body per name)."""
    import http.server
    import ssl
    import threading

    env, state = net.env, net.state
    netctl_path = os.path.join(SRC, "tests/net/netctl")

    def netctl(*args):
        subprocess.run([netctl_path, *args], check=True, timeout=60,
                       capture_output=True)

    conf = os.path.join(tmp, "sts.cf")
    with open(conf, "w") as fp:
        fp.write(f"""dns_resolver_mode = stub
dns_stub_resolvers = {env['NET_RESOLVER']}
dnssec_trust_anchor_file = {env['NET_TRUST_ANCHOR']}
mta_sts_CAfile = {env['NET_CA']}
mta_sts_fetch_timeout = 5s
dns_timeout = 4s
""")
    cache = os.path.join(tmp, "sts-cache.db")

    def sts(*args):
        out = subprocess.run([STS_PROBE, "-c", conf, "-C", cache, *args],
                             capture_output=True, text=True, timeout=120)
        res = {}
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                res[r["domain"]] = r
        return res

    # label -> [status, content type or None, body, chunked]
    valid = POLICY % (b"enforce", 86400)
    site = {
        "f1": [200, "text/plain", b"bogus", False],
        "f9": [200, "text/plain", b"version:STSv1\nmode:none\nmax_age:1",
               False],
        "s404": [404, "text/plain", valid, False],
        "m502": [502, "text/plain", valid, False],
        "m202": [202, "text/plain", valid, False],
        "empty": [200, "text/plain", b"", False],
        "noct": [200, None, valid, False],
        "big64016": [200, "text/plain", valid + b"x-pad: " +
                     b"a" * (64016 - len(valid) - 9) + b"\r\n", False],
        "big65538": [200, "text/plain", b"\0" * (64 * 1024 + 2), False],
        "chunked": [200, "text/plain", valid + b"x-pad: " + b"a" * 70000 +
                    b"\r\n", True],
        "nomx": [200, "text/plain",
                 b"version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n",
                 False],
        "cnamea": [200, "text/plain", valid, False],
        "c4": [200, "text/plain", POLICY % (b"enforce", 60), False],
        "c5": [200, "text/plain", POLICY % (b"enforce", 1), False],
        "c9": [200, "text/plain", POLICY % (b"enforce", 1), False],
        "r1": [200, "text/plain", POLICY % (b"enforce", 1), False],
        "r2": [200, "text/plain", POLICY % (b"enforce", 60), False],
        "multi": [200, "text/plain", valid, False],
    }
    site["nomx2"] = site["nomx"]  # a valid TXT id, the same body
    hits = {k: 0 for k in site}
    names = ["mta-sts.%s.sts.test" % k for k in site]
    certs = os.path.join(tmp, "web")
    os.makedirs(certs)
    ext = os.path.join(certs, "ext.cnf")
    with open(ext, "w") as fp:
        fp.write("subjectAltName=" + ",".join("DNS:" + n for n in names) +
                 "\n")
    key, csr, crt = (os.path.join(certs, x) for x in ("k.pem", "r.csr",
                                                      "c.pem"))
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", csr, "-subj",
                    "/CN=" + names[0]], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA",
                    env["NET_CA"], "-CAkey", env["NET_CA_KEY"],
                    "-CAcreateserial", "-days", "2", "-out", crt,
                    "-extfile", ext], check=True, capture_output=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            label = self.headers.get("Host", "").split(".")[1]
            status, ctype, body, chunked = site.get(
                label, [421, "text/plain", b"", False])
            hits[label] = hits.get(label, 0) + 1
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Connection", "close")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 4096):
                    part = body[i:i + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.44.0.2", 443), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for label in site:
            netctl("dns-set", state, f"mta-sts.{label}.sts.test", "A",
                   "127.44.0.2")
            if label not in ("nomx", "cnamea", "nomx2", "multi"):
                netctl("dns-set", state, f"_mta-sts.{label}.sts.test",
                       "TXT", '"v=STSv1; id=1;"')
        # stalwart-policy-no-mx: the TXT id of the vector is itself
        # invalid (sts-id is letters and digits only).
        netctl("dns-set", state, "_mta-sts.nomx.sts.test", "TXT",
               '"v=STSv1; id=policy_will_fail;"')
        netctl("dns-set", state, "_mta-sts.nomx2.sts.test", "TXT",
               '"v=STSv1; id=1;"')
        # rfc-derived-multi-string: one TXT record of two strings.
        netctl("dns-set", state, "_mta-sts.multi.sts.test", "TXT",
               '"v=STSv1; id=2016" "0831085700Z;"')
        # mox-lookup-cname-chain: a -> b -> c, TXT at c.
        netctl("dns-set", state, "_mta-sts.cnamea.sts.test", "CNAME",
               "_mta-sts.cnameb.sts.test.")
        netctl("dns-set", state, "_mta-sts.cnameb.sts.test", "CNAME",
               "_mta-sts.cnamec.sts.test.")
        netctl("dns-set", state, "_mta-sts.cnamec.sts.test", "TXT",
               '"v=STSv1; id=1;"')
        # mox-lookup-cname-to-temperror: CNAME into a bogus zone.
        netctl("dns-set", state, "_mta-sts.followtemperror.sts.test",
               "CNAME", "_mta-sts.bogus.test.")
        # mox-fetch-5: a TXT record, but no policy host.
        netctl("dns-set", state, "_mta-sts.nohost.sts.test", "TXT",
               '"v=STSv1; id=1;"')

        r = sts(*[k + ".sts.test" for k in site], "nohost.sts.test",
                "followtemperror.sts.test", "bogus.test", "x.dead.test",
                "badtxt.sts.test", "twotxt.sts.test", "webwrong.sts.test",
                "webexpired.sts.test", "webself.sts.test",
                "sub.enforce.sts.test")

        def none_because(cid, dom, why):
            v = r.get(dom, {})
            check(v and v["policy"] is False and why in v.get("note", ""),
                  f"{cid}: {dom}: want no policy, note with {why!r}: {v}")

        none_because("mox-fetch-1", "f1.sts.test", "invalid policy")
        v = r.get("f9.sts.test", {})
        check(v.get("policy") and v.get("mode") == "none" and
              v.get("max_age") == 1, f"mox-fetch-9: {v}")
        none_because("snawoot-404-with-body", "s404.sts.test",
                     "HTTP status 404")
        none_because("mimecast-502", "m502.sts.test", "HTTP status 502")
        none_because("mimecast-202", "m202.sts.test", "HTTP status 202")
        none_because("mimecast-empty-body", "empty.sts.test",
                     "invalid policy: empty policy")
        none_because("mimecast-no-content-type", "noct.sts.test",
                     "media type (none) is not text/plain")
        # Decided: the limit is 64 KiB (65536), so 64016 bytes pass.
        v = r.get("big64016.sts.test", {})
        check(v.get("policy") and v.get("mode") == "enforce",
              f"mimecast-64016-bytes (accepted below 64 KiB): {v}")
        none_because("mox-fetch-8", "big65538.sts.test",
                     "larger than 64 KiB")
        none_because("snawoot-overlength (chunked)", "chunked.sts.test",
                     "larger than 64 KiB")
        none_because("stalwart-policy-no-mx (TXT)", "nomx.sts.test",
                     "id has a character other than letters and digits")
        none_because("stalwart-policy-no-mx (body)", "nomx2.sts.test",
                     "invalid policy: no mx field")
        v = r.get("cnamea.sts.test", {})
        check(v.get("policy") and v.get("id") == "1",
              f"mox-lookup-cname-chain: {v}")
        v = r.get("multi.sts.test", {})
        check(v.get("policy") and v.get("id") == "20160831085700Z",
              f"rfc-derived-multi-string: {v}")
        none_because("mox-lookup-cname-to-temperror",
                     "followtemperror.sts.test", "TXT lookup failed")
        none_because("mox-lookup-temperror", "bogus.test",
                     "TXT lookup failed")
        none_because("snawoot-dns-timeout", "x.dead.test",
                     "TXT lookup failed")
        none_because("mox-fetch-5", "nohost.sts.test", "has no address")
        # An invalid record, two STSv1 records: no policy, and the note
        # names neither a DNS failure nor a missing record.
        for cid, dom in (("mox-lookup-bad", "badtxt.sts.test"),
                         ("mox-lookup-multiple", "twotxt.sts.test")):
            v = r.get(dom, {})
            check(v and v["policy"] is False and v.get("note") and
                  "TXT lookup failed" not in v["note"] and
                  "no _mta-sts TXT record" not in v["note"],
                  f"{cid}: {dom}: {v}")
        none_because("mox-fetch-2", "webwrong.sts.test", "fetch failed")
        none_because("mox-fetch-3", "webexpired.sts.test", "fetch failed")
        none_because("snawoot-bad-cert", "webself.sts.test", "fetch failed")
        # rfc_statements[15] (3.4): never the parent zone's policy.
        none_because("rfc_statements[15]", "sub.enforce.sts.test",
                     "no _mta-sts TXT record")

        # fox-cache-4: cached (max_age 60), the policy host now fails,
        # same id: the cached policy, no new fetch.
        n = hits["c4"]
        site["c4"][0] = 500
        v = sts("c4.sts.test").get("c4.sts.test", {})
        check(v.get("policy") and v.get("source") == "cache" and
              hits["c4"] == n, f"fox-cache-4: {v} fetches {hits['c4']}")
        # fox-refresh-2: refresh with the fetch failing keeps the policy.
        site["r2"][0] = 500
        v = sts("-r", "r2.sts.test").get("r2.sts.test", {})
        check(v.get("policy") and v.get("mode") == "enforce" and
              v.get("source") == "cache", f"fox-refresh-2: {v}")

        time.sleep(2.2)  # c5, c9 and r1 (max_age 1) expire
        # fox-cache-5: expired, the host now serves a new policy.
        site["c5"][2] = POLICY % (b"testing", 60)
        # fox-cache-9: expired, new id, fetch fails: no policy.
        site["c9"][0] = 500
        netctl("dns-set", state, "_mta-sts.c9.sts.test", "TXT",
               '"v=STSv1; id=2;"')
        # fox-refresh-1: refresh fetches the new policy; a later fetch
        # failure leaves the refreshed one in force.
        site["r1"][2] = POLICY % (b"testing", 60)
        r = sts("c5.sts.test", "c9.sts.test")
        v = r.get("c5.sts.test", {})
        check(v.get("policy") and v.get("mode") == "testing" and
              v.get("source") == "fetch", f"fox-cache-5: {v}")
        v = r.get("c9.sts.test", {})
        check(v and v["policy"] is False and "HTTP status 500" in
              v.get("note", ""), f"fox-cache-9: {v}")
        v = sts("-r", "r1.sts.test").get("r1.sts.test", {})
        check(v.get("policy") and v.get("mode") == "testing" and
              v.get("source") == "fetch", f"fox-refresh-1 (refresh): {v}")
        site["r1"][0] = 500
        netctl("dns-set", state, "_mta-sts.r1.sts.test", "TXT",
               '"v=STSv1; id=9;"')
        v = sts("r1.sts.test").get("r1.sts.test", {})
        check(v.get("policy") and v.get("mode") == "testing" and
              v.get("source") == "cache", f"fox-refresh-1 (later): {v}")
    finally:
        srv.shutdown()


part1()
why = netlib.skip_reason()
if why:
    print("SKIP part 2 (test network): " + why)
    skipped += 1
elif not os.path.exists(DANE_PROBE):
    print("SKIP part 2: dane_probe not built")
    skipped += 1
else:
    with tempfile.TemporaryDirectory() as tmp, netlib.Net() as net:
        part2_probe(net, tmp)
        part2_deliver(net, tmp)
        if os.path.exists(STS_PROBE):
            sts_part(net, tmp)
        else:
            print("SKIP part 3: sts_probe not built")
            skipped += 1

print(f"{passed} passed, {failed} failed")
if failed:
    sys.exit(1)
sys.exit(77 if passed == 0 else 0)
