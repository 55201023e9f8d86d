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
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

SINK = "127.31.0.2"


class LiteralRoute(unittest.TestCase):
    def test_literal_next_hop_needs_no_dns(self):
        sink = smta.Sink(SINK)
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
