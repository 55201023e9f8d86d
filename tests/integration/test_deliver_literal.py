#!/usr/bin/python3
"""A smart host configured by address never waits for DNS (issue 8).

strictmtad's resolver points at a loopback address where nothing answers
(every query would wait dns_timeout = 10 s). Mail for relay.example.test is
routed by transport_maps to [127.31.0.2]:PORT, a small SMTP sink on
loopback. The postmaster sees the message delivered within a few seconds,
with no DNS time in the log's delays= field, and the log line names the
level that applies to an address literal."""

import os
import re
import smtplib
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

SINK = "127.31.0.2"


class Sink(threading.Thread):
    """Accepts SMTP sessions (no extensions) and keeps each message."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((SINK, 0))
        except OSError as e:
            raise unittest.SkipTest("%s is taken: %s" % (SINK, e))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.done = False

    def run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            try:
                self.session(c)
            except OSError:
                pass
            finally:
                c.close()

    def session(self, c):
        c.settimeout(10)
        f = c.makefile("rb")
        c.sendall(b"220 sink.test ESMTP\r\n")
        for _ in range(1000):
            line = f.readline(2000)
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                c.sendall(b"250 sink.test\r\n")
            elif verb == b"DATA":
                c.sendall(b"354 go on\r\n")
                data = []
                while True:
                    dl = f.readline(2000)
                    if not dl or dl == b".\r\n":
                        break
                    data.append(dl)
                self.messages.append(b"".join(data))
                c.sendall(b"250 2.0.0 kept\r\n")
            elif verb == b"QUIT":
                c.sendall(b"221 bye\r\n")
                return
            else:
                c.sendall(b"250 ok\r\n")

    def stop(self):
        self.done = True
        self.join(5)
        self.sock.close()


class LiteralRoute(unittest.TestCase):
    def test_literal_next_hop_needs_no_dns(self):
        sink = Sink()
        sink.start()
        d = smta.Daemon("literal", {"dns_timeout": "10s",
                                    "mta_sts_enable": "yes"})
        try:
            with open(d.params["transport_maps"], "a") as f:
                f.write("relay.example.test [%s]:%d\n" %
                        (SINK, sink.port))
            d.start()
            token = "literal-%d" % os.getpid()
            rcpt = "bob@relay.example.test"
            msg = smta.make_message(token, rcpt=rcpt)
            t0 = time.monotonic()
            s = smtplib.SMTP(d.host, d.port, timeout=20)
            try:
                s.sendmail("alice@strictmta.test", [rcpt], msg)
            finally:
                s.quit()
            arrived = smta.wait_for(
                lambda: any(token.encode() in m for m in sink.messages),
                8.0)
            took = time.monotonic() - t0
            self.assertTrue(arrived, "delivered to the literal next hop "
                            "without waiting for DNS; log:\n" +
                            d.log_text(40))
            smta.log("end of DATA to arrival at the sink: %.3f s "
                     "(bound 8 s; one DNS timeout is 10 s)" % took)
            line = None
            for _ in range(50):
                m = re.search(r"to=<bob@relay\.example\.test>, relay=\S+, "
                              r".*delays=([\d.]+)/([\d.]+)/([\d.]+)/"
                              r"([\d.]+), .*status=sent.*",
                              d.log_text(400))
                if m:
                    line = m
                    break
                time.sleep(0.1)
            self.assertIsNotNone(line, d.log_text(40))
            smta.log(line.group(0))
            # delays=a/b/c/d: c is the connection set-up, which held the
            # 10 s DNS wait before.
            self.assertLess(float(line.group(3)), 2.0, line.group(0))
            self.assertIn("level=may", line.group(0))
            self.assertIn("address literal", d.log_text(400))
        finally:
            d.stop()
            d.cleanup()
            sink.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
