#!/usr/bin/python3
# NAME
#	test_resolver_fake - the resolver module against a scripted DNS server
# DESCRIPTION
#	Runs a small UDP DNS server (in this file) on 127.54.0.1:5353 that
#	answers by the first label of the name: SERVFAIL, REFUSED, a CNAME
#	loop, a CNAME into NXDOMAIN, NODATA with and without an SOA, TXT with
#	several strings, a referral, a truncated reply. resolver_probe asks it
#	in stub mode with a trust anchor for an unrelated zone, so getdns's
#	verdict is "indeterminate" and the rcode handling shows through; one
#	case uses the root anchor, where the unsigned data must be bogus.
#	Every failure must be tempfail with no records, never "no records".
#	Runs in a private network namespace when it can. Exit 77 when not
#	root or the probe is not built.
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

SRC = os.environ.get("STRICTMTA_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("STRICTMTA_BUILD_DIR", os.path.join(SRC, "build"))
PROBE = os.path.join(BUILD, "tests", "resolver_probe")
NETNS = os.path.join(SRC, "tests", "net", "netns-run")
ADDR, PORT = "127.54.0.1", 5353

failures = 0


def wire(name):
	out = b""
	for label in name.rstrip(".").split("."):
		if label:
			out += bytes([len(label)]) + label.encode()
	return out + b"\0"


def rr(name, rtype, ttl, rdata):
	return wire(name) + struct.pack(">HHIH", rtype, 1, ttl,
	    len(rdata)) + rdata


def soa(zone, minimum):
	return rr(zone, 6, 300, wire("ns." + zone) + wire("h." + zone) +
	    struct.pack(">IIIII", 1, 3600, 600, 86400, minimum))


def answer(query):
	"""The reply to one query (bytes), chosen by the first label."""
	i, labels = 12, []
	while query[i]:
		labels.append(query[i + 1:i + 1 + query[i]].decode())
		i += 1 + query[i]
	qtype = struct.unpack(">H", query[i + 1:i + 3])[0]
	question = query[12:i + 5]
	name = ".".join(labels).lower()
	first = labels[0].lower() if labels else ""
	rcode, an, ns, tc = 0, [], [], 0
	if first == "servfail":
		rcode = 2
	elif first == "refused":
		rcode = 5
	elif first == "loop":
		an = [rr("loop.example", 5, 300, wire("loop2.example")),
		    rr("loop2.example", 5, 300, wire("loop.example"))]
	elif first == "alias":
		rcode = 3
		an = [rr(name, 5, 100, wire("gone.example"))]
		ns = [soa("example", 40)]
	elif first == "mx" and qtype == 15:
		an = [rr(name, 15, 300, struct.pack(">H", 5) +
		    wire("Mail.Example")),
		    rr(name, 15, 200, struct.pack(">H", 0) + b"\0")]
	elif first == "txt" and qtype == 16:
		an = [rr(name, 16, 300, b"\x08v=STSv1;\x05 id=1\x00")]
	elif first == "nodata":
		ns = [soa("example", 20)]
	elif first == "nosoa":
		pass
	elif first == "referral":
		ns = [rr(name, 2, 300, wire("ns.elsewhere.example"))]
	elif first == "truncated":
		tc = 0x0200
	flags = 0x8180 | tc | rcode
	return (query[:2] + struct.pack(">HHHHH", flags, 1, len(an), len(ns),
	    0) + question + b"".join(an) + b"".join(ns))


def serve(sock, stop):
	sock.settimeout(0.2)
	while not stop.is_set():
		try:
			data, peer = sock.recvfrom(4096)
		except socket.timeout:
			continue
		try:
			sock.sendto(answer(data), peer)
		except Exception as e:  # a malformed query: ignore it
			sys.stderr.write("fake dns: %s\n" % e)


def probe(name, qtype, anchor, timeout="2s"):
	p = subprocess.run([PROBE, "-o", "dns_resolver_mode=stub",
	    "-o", "dns_stub_resolvers=%s@%d" % (ADDR, PORT),
	    "-o", "dnssec_trust_anchor_file=%s" % anchor,
	    "-o", "dns_timeout=%s" % timeout, "-", name, qtype],
	    stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
	return p.returncode, p.stdout.decode(errors="replace")


def check(name, qtype, anchor, want, records):
	global failures
	rc, out = probe(name, qtype, anchor)
	lines = out.splitlines()
	head = dict(kv.split("=", 1) for kv in lines[0].split()) if lines \
	    else {}
	rrs = [l for l in lines[1:] if not l.startswith(("why=", "stats "))]
	ok = rc == 0 and all(head.get(k) == v for k, v in want.items()) and \
	    sorted(rrs) == sorted(records)
	print("%s: %s %s -> %s" % ("ok" if ok else "FAIL", name, qtype,
	    " | ".join(lines[:-1])))
	if not ok:
		failures += 1


def main():
	if os.geteuid() != 0:
		print("SKIP: needs root")
		return 77
	if not os.access(PROBE, os.X_OK):
		print("SKIP: %s not built" % PROBE)
		return 77
	if os.environ.get("NET_IN_NETNS") != "1" and os.access(NETNS, os.X_OK):
		if subprocess.run(["unshare", "--net", "true"]).returncode == 0:
			os.execv(NETNS, [NETNS, sys.executable,
			    os.path.abspath(__file__)])
	tmp = tempfile.mkdtemp(prefix="strictmta-resolver-fake-")
	other = os.path.join(tmp, "other.ds")
	root = os.path.join(tmp, "root.ds")
	with open(other, "w") as f:
		f.write("unrelated.invalid. IN DS 20326 8 2 "
		    "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237"
		    "C7F8EC8D\n")
	with open(root, "w") as f:
		f.write(". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D084"
		    "58E880409BBC683457104237C7F8EC8D\n")
	sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	try:
		sock.bind((ADDR, PORT))
	except OSError as e:
		print("SKIP: cannot bind %s:%d: %s" % (ADDR, PORT, e))
		return 77
	stop = threading.Event()
	t = threading.Thread(target=serve, args=(sock, stop), daemon=True)
	t.start()
	try:
		tf = {"rcode": "tempfail", "rrs": "0"}
		check("servfail.example", "MX", other, tf, [])
		check("refused.example", "MX", other, tf, [])
		check("loop.example", "MX", other, tf, [])
		check("referral.example", "MX", other, tf, [])
		check("truncated.example", "MX", other, tf, [])
		check("alias.example", "MX", other, {"rcode": "nxdomain",
		    "canonical": "gone.example", "ttl": "40",
		    "dnssec": "indeterminate", "cname_secure": "0"}, [])
		check("mx.example", "MX", other, {"rcode": "ok",
		    "dnssec": "indeterminate", "ttl": "200"},
		    ["MX 5 Mail.Example", "MX 0 ."])
		check("txt.example", "TXT", other, {"rcode": "ok"},
		    ["TXT v=STSv1; id=1"])
		check("nodata.example", "MX", other, {"rcode": "nodata",
		    "ttl": "20"}, [])
		check("nosoa.example", "MX", other, {"rcode": "nodata",
		    "ttl": "0"}, [])
		# Under the root anchor, unsigned answers cannot be trusted.
		check("mx.example", "MX", root, {"rcode": "tempfail",
		    "dnssec": "bogus", "rrs": "0"}, [])
	finally:
		stop.set()
		t.join(2)
		sock.close()
		for f in (other, root):
			os.unlink(f)
		os.rmdir(tmp)
	print("FAILED: %d" % failures if failures else "PASS")
	return 1 if failures else 0


if __name__ == "__main__":
	sys.exit(main())
