#!/usr/bin/python3
"""test_net_sink.py - the SMTP sinks of the test network (tests/net) are
strict and controllable as tests/net/README.md says: dot-unstuffing, end
of data only at CRLF.CRLF, bare LF refused, forced replies, fail_first,
disconnect, parameter checks, STARTTLS injection recorded."""

import base64
import glob
import json
import os
import socket
import ssl
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NET = os.path.join(HERE, "..", "net")
NETCTL = os.path.join(NET, "netctl")
sys.path.insert(0, NET)
import netlib  # noqa: E402

passes = fails = 0


def check(ok, what):
	global passes, fails
	if ok:
		passes += 1
		print("ok - " + what)
	else:
		fails += 1
		print("FAIL - " + what)


class Client:
	def __init__(self, addr):
		self.s = socket.create_connection((addr, 25), timeout=10)
		self.buf = b""
		self.greeting = self.reply()

	def reply(self):
		"""Full (possibly multi-line) reply as text, or "" on close."""
		lines = []
		while True:
			while b"\r\n" not in self.buf:
				c = self.s.recv(65536)
				if not c:
					return "\n".join(lines)
				self.buf += c
			line, self.buf = self.buf.split(b"\r\n", 1)
			lines.append(line.decode())
			if len(line) < 4 or line[3:4] != b"-":
				return "\n".join(lines)

	def raw(self, data):
		self.s.sendall(data)

	def cmd(self, text):
		self.raw(text.encode() + b"\r\n")
		return self.reply()

	def close(self):
		self.s.close()


def records(spool, addr):
	out = []
	for p in sorted(glob.glob(os.path.join(spool, addr, "*.json"))):
		with open(p) as f:
			out.append(json.load(f))
	return out


def connlog(spool, addr):
	with open(os.path.join(spool, "connections.log")) as f:
		return [l.split() for l in f if l.startswith(addr + " ")]


def tests(state, env):
	spool = env["NET_SINK_SPOOL"]

	def sink(addr, js):
		subprocess.run([NETCTL, "sink", state, addr, js], check=True)

	def reset(addr):
		subprocess.run([NETCTL, "sink-reset", state, addr], check=True)

	a = "127.25.0.18"
	# Dot-unstuffing and the exact bytes.
	c = Client(a)
	check(c.greeting.startswith("220 mx.many.secure.test"), "greeting")
	check("PIPELINING" in c.cmd("EHLO client.test"), "EHLO")
	check(c.cmd("MAIL FROM:<s@client.test> BODY=8BITMIME SIZE=100")
	    .startswith("250"), "MAIL with params")
	check(c.cmd("RCPT TO:<u@many.secure.test> NOTIFY=NEVER")
	    .startswith("250"), "RCPT with NOTIFY")
	check(c.cmd("RCPT TO:<nosuchuser@many.secure.test>")
	    .startswith("550 5.1.1"), "nosuchuser refused")
	check(c.cmd("DATA").startswith("354"), "DATA")
	c.raw(b"Subject: x\r\n\r\n..leading dot\r\n.\r\n")
	r = c.reply()
	check(r.startswith("250"), "message accepted: " + r)
	recs = records(spool, a)
	check(len(recs) == 1 and base64.b64decode(recs[0]["data_b64"]) ==
	    b"Subject: x\r\n\r\n.leading dot\r\n", "dot-unstuffed data")
	check(recs and recs[0]["mail_params"] == {"BODY": "8BITMIME",
	    "SIZE": "100"} and recs[0]["tls"] is None and
	    recs[0]["rejected_rcpt"] == ["nosuchuser@many.secure.test"],
	    "record fields")
	# Smuggling: LF.CRLF is not the end of data; bare LF is refused.
	c.cmd("MAIL FROM:<s@client.test>")
	c.cmd("RCPT TO:<u@many.secure.test>")
	c.cmd("DATA")
	c.raw(b"Subject: y\r\n\r\nbody\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n")
	r = c.reply()
	check(r.startswith("554 5.6.0"), "bare LF refused: " + r)
	check(c.cmd("NOOP").startswith("250"), "still in sync after it")
	# Syntax and parameters.
	check(c.cmd("MAIL FROM: <s@client.test>").startswith("501"),
	    "space after colon refused")
	check(c.cmd("MAIL FROM:<s@client.test> AUTH=<>").startswith("555"),
	    "unadvertised parameter refused")
	check(c.cmd("MAIL FROM:<s\u00e9@client.test>").startswith("553"),
	    "non-ASCII without SMTPUTF8 refused")
	check(c.cmd("RCPT TO:<u@many.secure.test>").startswith("503"),
	    "RCPT before MAIL refused")
	check(c.cmd("QUIT").startswith("221"), "QUIT")
	c.close()
	log = connlog(spool, a)
	check(len(log) == 1 and "messages=1" in log[0] and
	    "rejected=1" in log[0] and "end=quit" in log[0],
	    "connections.log line: %s" % log)

	# fail_first: the first connection gets 451, the next one 250.
	sink(a, '{"rcpt": "451 4.3.0 later", "fail_first": 1}')
	got = []
	for _ in range(2):
		c = Client(a)
		c.cmd("EHLO client.test")
		c.cmd("MAIL FROM:<s@client.test>")
		got.append(c.cmd("RCPT TO:<u@many.secure.test>")[:3])
		c.cmd("QUIT")
		c.close()
	check(got == ["451", "250"], "fail_first 1: %s" % got)
	reset(a)

	# disconnect at MAIL; 421 greeting; delay-free forced eod.
	sink(a, '{"disconnect": "mail"}')
	c = Client(a)
	c.cmd("EHLO client.test")
	check(c.cmd("MAIL FROM:<s@client.test>") == "", "disconnect at MAIL")
	c.close()
	sink(a, '{"disconnect": null, "greeting": "421 4.3.2 busy"}')
	c = Client(a)
	check(c.greeting.startswith("421"), "forced 421 greeting")
	c.close()
	sink(a, '{"greeting": null, "eod": "452 4.3.1 full"}')
	c = Client(a)
	c.cmd("EHLO client.test")
	c.cmd("MAIL FROM:<s@client.test>")
	c.cmd("RCPT TO:<u@many.secure.test>")
	c.cmd("DATA")
	c.raw(b"Subject: z\r\n\r\nz\r\n.\r\n")
	check(c.reply().startswith("452 4.3.1"), "forced end-of-data reply")
	c.close()
	reset(a)
	check(len(records(spool, a)) == 1, "nothing else stored")

	# STARTTLS: pipelined data after STARTTLS is discarded and recorded;
	# state is reset (MAIL needs EHLO again).
	a = "127.25.0.12"
	c = Client(a)
	c.cmd("EHLO client.test")
	c.raw(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
	check(c.reply().startswith("220"), "STARTTLS")
	ctx = ssl.create_default_context(cafile=env["NET_CA"])
	c.s = ctx.wrap_socket(c.s, server_hostname="mx2.pref.secure.test")
	c.buf = b""
	check(c.cmd("MAIL FROM:<s@client.test>").startswith("503"),
	    "EHLO needed after STARTTLS")
	check("STARTTLS" not in c.cmd("EHLO client.test"),
	    "no STARTTLS offered inside TLS")
	c.cmd("QUIT")
	c.close()
	log = connlog(spool, a)
	check(len(log) == 1 and "tls=yes" in log[0] and
	    "sni=mx2.pref.secure.test" in log[0] and
	    "violations=data_after_STARTTLS_(discarded)" in log[0],
	    "STARTTLS injection recorded: %s" % log)

	# require_tls and permfail / tempfail defaults.
	c = Client("127.25.0.17")
	c.cmd("EHLO client.test")
	c.cmd("MAIL FROM:<s@client.test>")
	check(c.cmd("RCPT TO:<u@permfail.secure.test>").startswith("550"),
	    "permfail sink: 550 at RCPT")
	c.close()
	c = Client("127.25.0.16")
	c.cmd("EHLO client.test")
	c.cmd("MAIL FROM:<s@client.test>")
	check(c.cmd("RCPT TO:<u@tempfail.secure.test>").startswith("451"),
	    "tempfail sink: 451 at RCPT")
	c.close()


def main():
	netlib.reexec_in_netns(__file__)
	try:
		with netlib.Net() as net:
			try:
				tests(net.state, net.env)
			except Exception as e:
				check(False, "exception %r" % e)
	except RuntimeError as e:
		print("FAIL - %s" % e)
		return 1
	print("%d passed, %d failed" % (passes, fails))
	return 1 if fails else 0


if __name__ == "__main__":
	sys.exit(main())
