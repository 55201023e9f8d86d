#!/usr/bin/python3
# NAME
#	smtp_sink.py - strict, controllable SMTP sinks for the test network
# SYNOPSIS
#	smtp_sink.py --control FILE --spool DIR [--ready FILE]
# DESCRIPTION
#	Listens on port 25 of every address named in the control file's
#	"hosts" object (read once at start for the addresses; re-read on
#	every new connection for the behaviour).  Each accepted message is
#	written to DIR/<address>/<conn>-<msg>.json (+ .eml with the exact,
#	dot-unstuffed data bytes); one line per connection is appended to
#	DIR/connections.log; a transcript of each session goes to
#	DIR/transcripts/<address>-<conn>.log.
#
#	The server is strict RFC 5321 (4.1 syntax, 4.5.2 dot-stuffing,
#	4.5.3.1 line limits, end of data only at CRLF.CRLF) and records
#	protocol violations of the client (bare LF/CR, unadvertised
#	pipelining, data sent after STARTTLS before the handshake, ...).
#	The behaviour keys are documented in tests/net/README.md (DEFAULTS
#	below lists them all).

import argparse
import base64
import copy
import datetime
import json
import os
import re
import socket
import ssl
import sys
import threading
import time

DEFAULTS = {
	"name": "sink.test",
	"starttls": True,
	"cert": None,
	"key": None,
	"extensions": ["PIPELINING", "SIZE 10485760", "8BITMIME", "SMTPUTF8",
	    "DSN", "ENHANCEDSTATUSCODES"],
	"reject_users": ["nosuchuser"],
	"max_rcpt": 100,
	"size": 10485760,
	"bare_lf": "reject",
	"long_lines": "reject",
	"require_tls": False,
	"tls_min": None,
	"tls_max": None,
	"fail_first": None,
	"disconnect": None,
	"delay": {},
	"idle_timeout": 120,
}
# Stages whose reply can be forced with "<stage>": "NNN text".
STAGES = ("greeting", "ehlo", "helo", "starttls_reply", "mail", "rcpt",
    "data", "eod", "rset", "quit")
# RFC 2920 3.1: commands that end a pipelined group.
GROUP_END = ("EHLO", "HELO", "DATA", "VRFY", "EXPN", "TURN", "QUIT",
    "NOOP", "STARTTLS")
TLS_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3}
CMD_MAX = 512		# RFC 5321 4.5.3.1.4, including CRLF
TEXT_MAX = 1000		# RFC 5321 4.5.3.1.6, including CRLF
MAX_ERRORS = 20

lock = threading.Lock()
conn_count = {}		# address -> connections so far
fail_state = {}		# address -> [config signature, connections]
last_good = {"hosts": {}}


class Dropped(Exception):
	pass


def now():
	return datetime.datetime.now(datetime.timezone.utc).isoformat()


def load_config(path, addr):
	"""Effective behaviour for addr and whether forced replies apply
	to this connection (fail_first)."""
	global last_good
	try:
		with open(path) as f:
			c = json.load(f)
		last_good = c
	except (OSError, ValueError) as e:
		sys.stderr.write("smtp_sink: control %s: %s (using last good)\n"
		    % (path, e))
		c = last_good
	cfg = copy.deepcopy(DEFAULTS)
	cfg.update(c.get("defaults", {}))
	host = c.get("hosts", {}).get(addr, {})
	cfg.update(host)
	sig = json.dumps([c.get("defaults", {}), host], sort_keys=True)
	with lock:
		conn_count[addr] = conn_count.get(addr, 0) + 1
		n = conn_count[addr]
		st = fail_state.get(addr)
		if st is None or st[0] != sig:
			st = fail_state[addr] = [sig, 0]
		st[1] += 1
		forced = cfg["fail_first"] is None or st[1] <= cfg["fail_first"]
	return cfg, n, forced


class Session:
	def __init__(self, sock, addr, peer, args):
		self.sock = sock
		self.addr = addr
		self.peer = "%s:%d" % (peer[0], peer[1])
		self.args = args
		self.cfg, self.conn, self.forced = load_config(args.control,
		    addr)
		self.buf = b""
		self.tls = None
		self.sni = None
		self.tls_state = "no"
		self.helo = None
		self.esmtp = False
		self.accepted = 0
		self.rejected = 0
		self.violations = []
		self.transcript = []
		self.end = "close"
		self.errors = 0
		self.reset()

	def reset(self):
		self.mail_from = None
		self.mail_params = {}
		self.rcpts = []
		self.rcpt_params = []
		self.bad_rcpts = []

	# -- I/O

	def violation(self, what):
		if what not in self.violations:
			self.violations.append(what)

	def log(self, who, data):
		if len(self.transcript) < 2000:
			self.transcript.append("%s %s" % (who,
			    data.decode("utf-8", "backslashreplace").rstrip(
			    "\r\n")))

	def send(self, text, stage=None):
		if stage:
			d = self.cfg.get("delay", {}).get(stage)
			if d:
				time.sleep(min(float(d), 300.0))
		data = "".join(l + "\r\n" for l in text.split("\n")).encode()
		for line in text.split("\n"):
			self.log("S:", line.encode())
		self.sock.sendall(data)

	def fill(self):
		try:
			chunk = self.sock.recv(65536)
		except socket.timeout:
			self.end = "timeout"
			raise Dropped()
		except (OSError, ssl.SSLError):
			raise Dropped()
		if not chunk:
			raise Dropped()
		self.buf += chunk

	def readline(self, limit):
		"""One line up to and including LF.  Returns (line, too_long);
		a too-long line is consumed up to its LF."""
		too_long = False
		while True:
			i = self.buf.find(b"\n")
			if i >= 0:
				line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
				return line, too_long or len(line) > limit
			if len(self.buf) > limit:
				too_long = True
				self.buf = self.buf[-2:]
			self.fill()

	# -- forced behaviour

	def forced_reply(self, stage):
		"""Drop the connection or return a forced reply for stage."""
		if not self.forced:
			return None
		if self.cfg.get("disconnect") == stage:
			self.end = "dropped at " + stage
			raise Dropped()
		return self.cfg.get(stage)

	# -- commands

	def extensions(self):
		ext = list(self.cfg["extensions"])
		if self.cfg["starttls"] and not self.tls and \
		    self.cfg.get("cert"):
			ext.append("STARTTLS")
		return ext

	def has_ext(self, name):
		return any(e.split()[0].upper() == name for e in
		    self.extensions())

	def run(self):
		f = self.forced_reply("greeting")
		if f:
			self.send(f, "greeting")
			if f.startswith("421"):
				self.end = "greeting " + f[:3]
				return
			self.refuse_all()
			return
		self.send("220 %s ESMTP strictmta test sink" % self.cfg["name"],
		    "greeting")
		while True:
			line, too_long = self.readline(CMD_MAX)
			self.log("C:", line)
			if too_long:
				self.send("500 5.5.2 line too long")
				self.bad()
				continue
			if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
				self.violation("bare LF or CR in command")
				self.send("500 5.5.2 bare LF or CR in command")
				self.bad()
				continue
			try:
				cmd = line[:-2].decode("utf-8")
			except UnicodeDecodeError:
				self.send("500 5.5.2 invalid UTF-8 in command")
				self.bad()
				continue
			verb = cmd.split(" ", 1)[0].upper()
			if verb == "STARTTLS":
				pass	# cmd_starttls records it
			elif self.buf and verb in GROUP_END:
				self.violation("data after %s before the reply"
				    % verb)
			elif self.buf and not self.has_ext("PIPELINING"):
				self.violation("pipelining without PIPELINING")
			if not self.dispatch(verb, cmd):
				return

	def refuse_all(self):
		"""After a 554 greeting: only QUIT (RFC 5321 3.1)."""
		for _ in range(MAX_ERRORS):
			line, _ = self.readline(CMD_MAX)
			self.log("C:", line)
			if line.strip().upper() == b"QUIT":
				self.send("221 2.0.0 bye")
				self.end = "quit"
				return
			self.send("503 5.5.1 no service here")
		self.send("421 4.7.0 too many errors")

	def bad(self):
		self.errors += 1
		if self.errors >= MAX_ERRORS:
			self.send("421 4.7.0 too many errors, closing")
			self.end = "too many errors"
			raise Dropped()

	def dispatch(self, verb, cmd):
		arg = cmd[len(verb):]
		if verb == "EHLO" or verb == "HELO":
			self.cmd_hello(verb, arg)
		elif verb == "STARTTLS":
			return self.cmd_starttls(arg)
		elif verb == "MAIL":
			self.cmd_mail(cmd)
		elif verb == "RCPT":
			self.cmd_rcpt(cmd)
		elif verb == "DATA":
			self.cmd_data(arg)
		elif verb == "RSET":
			f = self.forced_reply("rset")
			self.reset()
			self.send(f or "250 2.0.0 reset", "rset")
		elif verb == "NOOP":
			self.send("250 2.0.0 ok")
		elif verb == "VRFY":
			self.send("252 2.1.5 cannot verify")
		elif verb == "QUIT":
			if arg:
				self.send("501 5.5.4 QUIT takes no argument")
				return True
			f = self.forced_reply("quit")
			self.end = "quit"
			self.write_connlog()
			self.send(f or "221 2.0.0 bye", "quit")
			return False
		elif verb in ("HELP", "EXPN", "ETRN", "BDAT", "AUTH", "TURN"):
			self.send("502 5.5.1 %s not implemented" % verb)
			self.bad()
		else:
			self.send("500 5.5.2 command not recognized")
			self.bad()
		return True

	def cmd_hello(self, verb, arg):
		if not arg.startswith(" ") or not arg.strip() or \
		    " " in arg.strip():
			self.send("501 5.5.4 syntax: %s hostname" % verb)
			self.bad()
			return
		f = self.forced_reply(verb.lower())
		if f:
			self.send(f, verb.lower())
			return
		self.reset()
		self.helo = arg.strip()
		self.esmtp = verb == "EHLO"
		if not self.esmtp:
			self.send("250 %s" % self.cfg["name"], "helo")
			return
		lines = ["%s greets %s" % (self.cfg["name"], self.helo)]
		lines += self.extensions()
		out = ["250-" + l for l in lines[:-1]] + ["250 " + lines[-1]]
		self.send("\n".join(out), "ehlo")

	def cmd_starttls(self, arg):
		if arg:
			self.send("501 5.5.4 STARTTLS takes no argument")
			return True
		if self.tls:
			self.send("503 5.5.1 TLS already active")
			return True
		if not self.esmtp or not self.has_ext("STARTTLS"):
			self.send("502 5.5.1 STARTTLS not offered")
			self.bad()
			return True
		f = self.forced_reply("starttls_reply")
		if f:
			self.send(f, "starttls_reply")
			return True
		if self.buf:
			# RFC 3207 5: discard; record the injection attempt.
			self.violation("data after STARTTLS (discarded)")
			self.buf = b""
		self.send("220 2.0.0 ready to start TLS", "starttls_reply")
		ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
		ctx.load_cert_chain(self.cfg["cert"], self.cfg["key"])
		if self.cfg.get("tls_min"):
			ctx.minimum_version = TLS_VERSIONS[self.cfg["tls_min"]]
		if self.cfg.get("tls_max"):
			ctx.maximum_version = TLS_VERSIONS[self.cfg["tls_max"]]

		def sni(sslsock, name, c):
			self.sni = name
		ctx.sni_callback = sni
		try:
			self.sock = ctx.wrap_socket(self.sock, server_side=True)
		except (ssl.SSLError, OSError) as e:
			self.tls_state = "failed"
			self.log("--", ("TLS handshake failed: %s" % e).encode())
			self.end = "tls handshake failed"
			return False
		self.tls = {"version": self.sock.version(),
		    "cipher": self.sock.cipher()[0], "sni": self.sni}
		self.tls_state = "yes"
		self.log("--", ("TLS %s %s sni=%s" % (self.tls["version"],
		    self.tls["cipher"], self.sni)).encode())
		self.helo = None
		self.esmtp = False
		self.reset()
		return True

	def params(self, text, allowed):
		"""RFC 5321 4.1.2 Mail-parameters: esmtp-keyword["="value]
		separated by single spaces.  Returns (dict, error reply)."""
		out = {}
		if not text:
			return out, None
		if not self.esmtp:
			return None, "555 5.5.4 parameters need EHLO"
		for p in text.split(" "):
			m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9-]*)"
			    r"(?:=([\x21-\x3c\x3e-\x7e]+))?", p)
			if not m:
				return None, "501 5.5.4 bad parameter syntax"
			k = m.group(1).upper()
			if k not in allowed:
				return None, "555 5.5.4 unsupported parameter " + k
			if k in out:
				return None, "501 5.5.4 duplicate parameter " + k
			out[k] = m.group(2)
		return out, None

	def cmd_mail(self, cmd):
		m = re.fullmatch(r"MAIL FROM:<([^<>]*)>(?: (.*))?", cmd,
		    re.IGNORECASE)
		if not m:
			self.send("501 5.5.4 syntax: MAIL FROM:<address>")
			self.bad()
			return
		if not self.helo:
			self.send("503 5.5.1 send EHLO first")
			self.bad()
			return
		if self.mail_from is not None:
			self.send("503 5.5.1 nested MAIL command")
			self.bad()
			return
		if self.cfg["require_tls"] and not self.tls:
			self.send("530 5.7.0 must issue STARTTLS first")
			return
		allowed = set()
		for e in self.extensions():
			e = e.split()[0].upper()
			allowed |= {"SIZE": {"SIZE"}, "8BITMIME": {"BODY"},
			    "SMTPUTF8": {"SMTPUTF8"}, "DSN": {"RET", "ENVID"},
			    "REQUIRETLS": {"REQUIRETLS"}}.get(e, set())
		p, err = self.params(m.group(2), allowed)
		if err:
			self.send(err)
			self.bad()
			return
		path = m.group(1)
		if not path.isascii() and "SMTPUTF8" not in p:
			self.send("553 5.6.7 non-ASCII address needs SMTPUTF8")
			return
		if "SIZE" in p and p["SIZE"] and p["SIZE"].isdigit() and \
		    int(p["SIZE"]) > self.cfg["size"]:
			self.send("552 5.3.4 message too big")
			return
		f = self.forced_reply("mail")
		if f:
			self.send(f, "mail")
			return
		self.mail_from = path
		self.mail_params = p
		self.send("250 2.1.0 sender ok", "mail")

	def cmd_rcpt(self, cmd):
		m = re.fullmatch(r"RCPT TO:<([^<>]+)>(?: (.*))?", cmd,
		    re.IGNORECASE)
		if not m:
			self.send("501 5.5.4 syntax: RCPT TO:<address>")
			self.bad()
			return
		if self.mail_from is None:
			self.send("503 5.5.1 need MAIL first")
			self.bad()
			return
		allowed = {"NOTIFY", "ORCPT"} if self.has_ext("DSN") else set()
		p, err = self.params(m.group(2), allowed)
		if err:
			self.send(err)
			self.bad()
			return
		rcpt = m.group(1)
		if not rcpt.isascii() and "SMTPUTF8" not in self.mail_params:
			self.send("553 5.6.7 non-ASCII address needs SMTPUTF8")
			return
		if len(self.rcpts) >= self.cfg["max_rcpt"]:
			self.send("452 4.5.3 too many recipients")
			return
		f = self.forced_reply("rcpt")
		if f:
			self.bad_rcpts.append(rcpt)
			self.send(f, "rcpt")
			return
		local = rcpt.rsplit("@", 1)[0].lower()
		if local in [u.lower() for u in self.cfg["reject_users"]]:
			self.bad_rcpts.append(rcpt)
			self.send("550 5.1.1 <%s>: no such user" % rcpt, "rcpt")
			return
		self.rcpts.append(rcpt)
		self.rcpt_params.append(p)
		self.send("250 2.1.5 recipient ok", "rcpt")

	def cmd_data(self, arg):
		if arg:
			self.send("501 5.5.4 DATA takes no argument")
			return
		if self.mail_from is None:
			self.send("503 5.5.1 need MAIL first")
			self.bad()
			return
		if not self.rcpts:
			self.send("554 5.5.1 no valid recipients")
			return
		f = self.forced_reply("data")
		if f:
			self.send(f, "data")
			if not f.startswith("3"):
				self.reset()
				return
		else:
			self.send("354 end data with <CRLF>.<CRLF>", "data")
		lines = []
		bad = []
		prev_crlf = True
		size = 0
		while True:
			line, too_long = self.readline(TEXT_MAX)
			# RFC 5321 4.1.1.4: end of data is CRLF . CRLF only.
			if line == b".\r\n" and prev_crlf:
				break
			crlf = line.endswith(b"\r\n")
			body = line[:-2] if crlf else line[:-1]
			if not crlf or b"\r" in body:
				if "bare LF or CR in data" not in bad:
					bad.append("bare LF or CR in data")
			if too_long and "line too long" not in bad:
				bad.append("line too long")
			prev_crlf = crlf
			if line.startswith(b"."):
				line = line[1:]	# RFC 5321 4.5.2
			size += len(line)
			if size <= self.cfg["size"] + 1:
				lines.append(line)
		data = b"".join(lines)
		for v in bad:
			self.violation(v)
		self.log("C:", b"<%d bytes of data>" % len(data))
		f = self.forced_reply("eod")
		if f:
			self.rejected += 1
			self.send(f, "eod")
		elif "bare LF or CR in data" in bad and \
		    self.cfg["bare_lf"] == "reject":
			self.rejected += 1
			self.send("554 5.6.0 bare LF or CR in message data",
			    "eod")
		elif "line too long" in bad and \
		    self.cfg["long_lines"] == "reject":
			self.rejected += 1
			self.send("554 5.6.0 line longer than 1000 octets",
			    "eod")
		elif size > self.cfg["size"]:
			self.rejected += 1
			self.send("552 5.3.4 message too big", "eod")
		else:
			self.accepted += 1
			name = self.store(data, bad)
			self.send("250 2.0.0 ok queued as %s" % name, "eod")
		self.reset()

	# -- records

	def store(self, data, bad):
		d = os.path.join(self.args.spool, self.addr)
		os.makedirs(d, exist_ok=True)
		name = "%06d-%03d" % (self.conn, self.accepted)
		rec = {"address": self.addr, "name": self.cfg["name"],
		    "connection": self.conn, "message": self.accepted,
		    "peer": self.peer, "time": now(), "helo": self.helo,
		    "esmtp": self.esmtp, "tls": self.tls,
		    "mail_from": self.mail_from,
		    "mail_params": self.mail_params, "rcpt_to": self.rcpts,
		    "rcpt_params": self.rcpt_params,
		    "rejected_rcpt": self.bad_rcpts, "size": len(data),
		    "violations": bad, "eml": name + ".eml",
		    "data_b64": base64.b64encode(data).decode()}
		with open(os.path.join(d, name + ".eml"), "wb") as f:
			f.write(data)
		tmp = os.path.join(d, "." + name + ".tmp")
		with open(tmp, "w") as f:
			json.dump(rec, f, indent=1)
			f.write("\n")
		os.rename(tmp, os.path.join(d, name + ".json"))
		return name

	def write_connlog(self):
		if getattr(self, "logged", False):
			return
		self.logged = True
		line = ("%s conn=%d peer=%s tls=%s sni=%s messages=%d "
		    "rejected=%d helo=%s violations=%s end=%s\n" % (self.addr,
		    self.conn, self.peer, self.tls_state, self.sni or "-",
		    self.accepted, self.rejected, self.helo or "-",
		    ",".join(v.replace(" ", "_") for v in self.violations) or
		    "-", self.end.replace(" ", "_")))
		with lock:
			with open(os.path.join(self.args.spool,
			    "connections.log"), "a") as f:
				f.write(line)

	def write_transcript(self):
		td = os.path.join(self.args.spool, "transcripts")
		os.makedirs(td, exist_ok=True)
		with open(os.path.join(td, "%s-%06d.log" % (self.addr,
		    self.conn)), "w") as f:
			f.write("\n".join(self.transcript) + "\n")


def handle(sock, addr, peer, args):
	s = None
	try:
		s = Session(sock, addr, peer, args)
		sock.settimeout(float(s.cfg["idle_timeout"]))
		s.run()
	except Dropped:
		pass
	except Exception as e:
		sys.stderr.write("smtp_sink: %s %s: %r\n" % (addr, peer, e))
		if s:
			s.end = "error"
	finally:
		if s:
			try:
				s.write_connlog()
				s.write_transcript()
			except OSError as e:
				sys.stderr.write("smtp_sink: log: %s\n" % e)
			sock = s.sock
		try:
			sock.close()
		except OSError:
			pass


def listener(ls, addr, args):
	while True:
		try:
			c, peer = ls.accept()
		except OSError as e:
			sys.stderr.write("smtp_sink: accept %s: %s\n" % (addr, e))
			time.sleep(0.1)
			continue
		threading.Thread(target=handle, args=(c, addr, peer, args),
		    daemon=True).start()


def main():
	ap = argparse.ArgumentParser()
	ap.add_argument("--control", required=True)
	ap.add_argument("--spool", required=True)
	ap.add_argument("--ready")
	ap.add_argument("--port", type=int, default=25)
	args = ap.parse_args()
	with open(args.control) as f:
		hosts = json.load(f)["hosts"]
	socks = []
	for addr in sorted(hosts):
		fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
		ls = socket.socket(fam, socket.SOCK_STREAM)
		ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		try:
			ls.bind((addr, args.port))
		except OSError as e:
			sys.stderr.write("smtp_sink: cannot listen on %s port "
			    "%d: %s\n" % (addr, args.port, e))
			sys.exit(1)
		ls.listen(64)
		socks.append((ls, addr))
		os.makedirs(os.path.join(args.spool, addr), exist_ok=True)
	open(os.path.join(args.spool, "connections.log"), "a").close()
	for ls, addr in socks:
		threading.Thread(target=listener, args=(ls, addr, args),
		    daemon=True).start()
	if args.ready:
		with open(args.ready, "w") as f:
			f.write("%d\n" % os.getpid())
	sys.stderr.write("smtp_sink: listening on %d addresses\n" %
	    len(socks))
	try:
		while True:
			time.sleep(3600)
	except KeyboardInterrupt:
		pass


if __name__ == "__main__":
	main()
