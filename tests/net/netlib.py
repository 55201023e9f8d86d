"""netlib.py - Python helpers for integration tests using the test network.

	sys.path.insert(0, os.path.join(HERE, "..", "net"))
	import netlib
	netlib.reexec_in_netns(__file__)	# private network namespace
	with netlib.Net() as net:		# start ... stop
		net.env["NET_RESOLVER"]
		net.sink("127.25.0.16", {"rcpt": "451 4.3.0 later"})
		net.messages("127.25.0.18")	# list of record dicts
		net.connections("127.25.0.18")	# list of connections.log dicts
		net.wait_messages("127.25.0.18", 2, timeout=10)

Set NET_KEEP=1 to keep the state directory for debugging.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

NET_DIR = os.path.dirname(os.path.abspath(__file__))
NETCTL = os.path.join(NET_DIR, "netctl")


def skip_reason():
	"""Why the test network cannot run here, or None."""
	if os.geteuid() != 0:
		return "the test network needs root"
	for tool in ("knotd", "unbound", "nginx", "ldns-signzone", "dig",
	    "openssl"):
		if not shutil.which(tool):
			return "%s not installed (tests/net/packages.txt)" % tool
	return None


def reexec_in_netns(script):
	"""Exit 77 if the network cannot run; re-run script inside
	netns-run unless already in a private namespace."""
	why = skip_reason()
	if why:
		print("SKIP: " + why)
		sys.exit(77)
	if os.environ.get("NET_IN_NETNS") != "1" and subprocess.run(
	    ["unshare", "--net", "--", "true"], stdout=subprocess.DEVNULL,
	    stderr=subprocess.DEVNULL).returncode == 0:
		runner = os.path.join(NET_DIR, "netns-run")
		os.execv(runner, [runner, os.path.abspath(script)] +
		    sys.argv[1:])


class Net:
	def __init__(self, state=None):
		self.state = state or tempfile.mkdtemp(prefix="testnet.")
		self.env = {}

	def __enter__(self):
		if subprocess.run([NETCTL, "start", self.state]).returncode:
			raise RuntimeError("netctl start failed")
		with open(os.path.join(self.state, "env")) as f:
			for line in f:
				k, v = line.rstrip("\n").split("=", 1)
				self.env[k] = v
		return self

	def __exit__(self, *exc):
		subprocess.run([NETCTL, "stop", self.state])
		if os.environ.get("NET_KEEP") == "1":
			print("test network state kept in " + self.state)
		else:
			shutil.rmtree(self.state, ignore_errors=True)
		return False

	def sink(self, addr, change):
		"""Merge change (a dict; None values remove keys) into the
		behaviour of the sink on addr ("defaults" for all)."""
		subprocess.run([NETCTL, "sink", self.state, addr,
		    json.dumps(change)], check=True)

	def sink_reset(self, addr=None):
		subprocess.run([NETCTL, "sink-reset", self.state] +
		    ([addr] if addr else []), check=True)

	def messages(self, addr):
		out = []
		spool = self.env["NET_SINK_SPOOL"]
		for p in sorted(glob.glob(os.path.join(spool, addr, "*.json"))):
			with open(p) as f:
				out.append(json.load(f))
		return out

	def connections(self, addr=None):
		out = []
		with open(self.env["NET_SINK_LOG"]) as f:
			for line in f:
				fl = line.split()
				if not fl or (addr and fl[0] != addr):
					continue
				d = {"address": fl[0]}
				for kv in fl[1:]:
					k, _, v = kv.partition("=")
					d[k] = v
				out.append(d)
		return out

	def wait_messages(self, addr, n, timeout=10.0):
		deadline = time.time() + timeout
		while time.time() < deadline:
			if len(self.messages(addr)) >= n:
				return True
			time.sleep(0.1)
		return False
