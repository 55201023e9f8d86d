#!/usr/bin/python3
# NAME
#	test_resolver_net - the resolver module against the test network
# DESCRIPTION
#	Starts tests/net/netctl (inside a private network namespace when
#	tests/net/netns-run can make one), then runs resolver_probe in stub
#	mode against the validating Unbound (NET_RESOLVER) with the test
#	root's trust anchor (NET_TRUST_ANCHOR) and checks rcode, DNSSEC
#	status, canonical name and records for each case.
#
#	Bogus zones: getdns sets CD on its queries when it validates, so the
#	validating upstream hands over the bogus data instead of SERVFAIL and
#	getdns finds it bogus: the answer is rcode=tempfail dnssec=bogus with
#	no records. Either way it never reads as "no records".
#
#	Exit 77 (skip) when not root or when the probe is not built.
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("STRICTMTA_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("STRICTMTA_BUILD_DIR", os.path.join(SRC, "build"))
PROBE = os.path.join(BUILD, "tests", "resolver_probe")
NETCTL = os.path.join(SRC, "tests", "net", "netctl")
NETNS = os.path.join(SRC, "tests", "net", "netns-run")

failures = 0


def skip(why):
	print("SKIP: %s" % why)
	sys.exit(77)


def fail(msg):
	global failures
	failures += 1
	print("FAIL: %s" % msg)


def probe(env, name, qtype, *opts, servers=None, timeout="5s"):
	args = [PROBE,
	    "-o", "dns_resolver_mode=stub",
	    "-o", "dns_stub_resolvers=%s" % (servers or env["NET_RESOLVER"]),
	    "-o", "dnssec_trust_anchor_file=%s" % env["NET_TRUST_ANCHOR"],
	    "-o", "dns_timeout=%s" % timeout] + list(opts) + ["-", name, qtype]
	p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
	    timeout=60)
	out = p.stdout.decode(errors="replace")
	if p.returncode != 0:
		fail("%s %s: exit %d: %s %s" % (name, qtype, p.returncode, out,
		    p.stderr.decode(errors="replace")))
	return out


def parse(out):
	"""Answer blocks: list of (fields dict, record lines); and stats."""
	blocks, stats = [], {}
	for line in out.splitlines():
		if line.startswith("rcode="):
			blocks.append((dict(kv.split("=", 1)
			    for kv in line.split()), []))
		elif line.startswith("stats "):
			stats = dict(kv.split("=", 1) for kv in line.split()[1:])
		elif line.startswith("why="):
			blocks[-1][0]["why"] = line[4:]
		elif blocks:
			blocks[-1][1].append(line)
	return blocks, stats


def expect(env, name, qtype, rcode, dnssec, records=None, canonical=None,
    cname_secure=None, prefix=None):
	out = probe(env, name, qtype)
	blocks, _ = parse(out)
	what = "%s %s" % (name, qtype)
	if len(blocks) != 1:
		fail("%s: no answer in %r" % (what, out))
		return
	f, rrs = blocks[0]
	ok = True
	if f["rcode"] not in (rcode if isinstance(rcode, tuple) else (rcode,)):
		ok = False
	if f["dnssec"] != dnssec:
		ok = False
	if records is not None and sorted(rrs) != sorted(records):
		ok = False
	if prefix is not None and not (rrs and all(r.startswith(prefix)
	    for r in rrs)):
		ok = False
	if canonical is not None and f["canonical"] != canonical:
		ok = False
	if cname_secure is not None and f["cname_secure"] != cname_secure:
		ok = False
	if f["rcode"] != "ok" and rrs:
		ok = False	# records only with rcode ok, never with bogus
	if not ok:
		fail("%s: got %r" % (what, out))
	else:
		print("ok: %s -> %s %s %s" % (what, f["rcode"], f["dnssec"],
		    " | ".join(rrs)))


def run_cases(env):
	expect(env, "pref.secure.test", "MX", "ok", "secure",
	    ["MX 10 mx1.pref.secure.test", "MX 20 mx2.pref.secure.test"],
	    canonical="pref.secure.test")
	expect(env, "PREF.Secure.Test.", "MX", "ok", "secure",
	    ["MX 10 mx1.pref.secure.test", "MX 20 mx2.pref.secure.test"])
	expect(env, "nullmx.secure.test", "MX", "ok", "secure", ["MX 0 ."])
	expect(env, "implicit.secure.test", "MX", "nodata", "secure", [])
	expect(env, "implicit.secure.test", "A", "ok", "secure",
	    ["A 127.25.0.15"])
	expect(env, "nonexistent.secure.test", "MX", "nxdomain", "secure", [])
	expect(env, "mx.v6.secure.test", "AAAA", "ok", "secure", ["AAAA ::1"])
	expect(env, "mxalias.secure.test", "A", "ok", "secure",
	    ["A 127.25.0.22"], canonical="mxreal.secure.test",
	    cname_secure="1")
	expect(env, "mxalias.dane.test", "A", "ok", "secure",
	    ["A 127.25.0.44"], canonical="mx.cnametarget.dane.test",
	    cname_secure="1")
	expect(env, "insecure.test", "MX", "ok", "insecure",
	    ["MX 10 mx.insecure.test"])
	expect(env, "nonexistent.insecure.test", "MX", "nxdomain", "insecure",
	    [])
	expect(env, "bogus.test", "MX", "tempfail", "bogus", [])
	expect(env, "mx.bogus.test", "A", "tempfail", "bogus", [])
	expect(env, "badds.test", "MX", "tempfail", "bogus", [])
	expect(env, "_25._tcp.mx.ee.dane.test", "TLSA", "ok", "secure",
	    prefix="TLSA 3 1 1 ")
	expect(env, "_25._tcp.mx.tlsabogus.dane.test", "TLSA", "tempfail",
	    "bogus", [])
	expect(env, "_25._tcp.mx.notlsa.dane.test", "TLSA",
	    ("nxdomain", "nodata"), "secure", [])
	expect(env, "_mta-sts.enforce.sts.test", "TXT", "ok", "insecure",
	    ["TXT v=STSv1; id=20260101T000000;"])

	# Many lookups, one query; a cached answer's TTL counts down.
	out = probe(env, "pref.secure.test", "MX", "-n", "200", "-w", "2")
	blocks, stats = parse(out)
	if len(blocks) != 2:
		fail("repeat: %r" % out)
	else:
		t1, t2 = int(blocks[0][0]["ttl"]), int(blocks[1][0]["ttl"])
		if not (t1 > 0 and t2 < t1 and t1 - t2 <= 3):
			fail("repeat: ttl %d then %d" % (t1, t2))
		else:
			print("ok: cached ttl %d -> %d" % (t1, t2))
	if stats != {"lookups": "400", "cache_hits": "200", "queries": "1"}:
		fail("repeat: stats %r" % stats)
	else:
		print("ok: 400 lookups, 1 query")

	# No server: a timeout is TEMPFAIL, never "no records".
	out = probe(env, "pref.secure.test", "MX", servers="127.0.0.1@9",
	    timeout="1s")
	blocks, _ = parse(out)
	if (len(blocks) != 1 or blocks[0][0]["rcode"] != "tempfail" or
	    blocks[0][1]):
		fail("timeout: %r" % out)
	else:
		print("ok: no server -> tempfail (%s)" %
		    blocks[0][0].get("why", ""))


def main():
	if os.geteuid() != 0:
		skip("needs root for the test network")
	if not os.access(PROBE, os.X_OK):
		skip("%s not built" % PROBE)
	if not os.access(NETCTL, os.X_OK):
		skip("no tests/net/netctl")
	# A private namespace keeps this network apart from any other.
	if os.environ.get("NET_IN_NETNS") != "1" and os.access(NETNS, os.X_OK):
		p = subprocess.run(["unshare", "--net", "true"])
		if p.returncode == 0:
			os.execv(NETNS, [NETNS, sys.executable,
			    os.path.abspath(__file__)])
	state = tempfile.mkdtemp(prefix="strictmta-resolver-net-")
	netdir = os.path.join(state, "net")
	try:
		p = subprocess.run([NETCTL, "start", netdir],
		    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
		if p.returncode != 0:
			fail("netctl start: %s" % p.stdout.decode(errors="replace"))
			return 1
		env = {}
		with open(os.path.join(netdir, "env")) as f:
			for line in f:
				m = re.match(r"^(\w+)=(.*)$", line.strip())
				if m:
					env[m.group(1)] = m.group(2)
		run_cases(env)
	finally:
		subprocess.run([NETCTL, "stop", netdir], timeout=120)
		shutil.rmtree(state, ignore_errors=True)
	print("%s" % ("FAILED: %d" % failures if failures else "PASS"))
	return 1 if failures else 0


if __name__ == "__main__":
	sys.exit(main())
