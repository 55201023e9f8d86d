#!/usr/bin/python3
"""The Prometheus endpoint (metrics_listen) tells what happened (issue 11).

Three messages go to a sink through transport_maps and two to a next hop
where nothing listens. A scrape of /metrics, parsed strictly as the text
format 0.0.4 and by prometheus_client's own parser, then counts 3 recipients sent and at least 2 deferred, and
the queue gauges (from the walk off the loop) show the 2 messages left.
A metrics_listen outside loopback is refused with file, line and key."""

import os
import re
import smtplib
import subprocess
import sys
import unittest
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import smta  # noqa: E402

SINK = "127.31.0.3"
METRICS = "127.30.0.1"
PORT = 19187

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
                    r' (-?[0-9.eE+-]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels)): value}; fails on any malformed line,
    a sample without its # TYPE, or a type other than counter/gauge."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if kind not in ("counter", "gauge"):
                raise ValueError("type %r" % line)
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            raise ValueError("stray line %r" % line)
        m = SAMPLE.match(line)
        if not m:
            raise ValueError("malformed sample %r" % line)
        if m.group(1) not in types:
            raise ValueError("sample before its TYPE: %r" % line)
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def scrape():
    with urllib.request.urlopen("http://%s:%d/metrics" % (METRICS, PORT),
                                timeout=5) as r:
        ctype = r.headers.get("Content-Type", "")
        return ctype, r.read().decode()


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class Metrics(unittest.TestCase):
    def test_counts_equal_what_happened(self):
        sink = smta.Sink(SINK)
        sink.start()
        d = smta.Daemon("metrics", {
            "metrics_listen": "%s:%d" % (METRICS, PORT)})
        try:
            with open(d.params["transport_maps"], "a") as f:
                f.write("sink.example.test [%s]:%d\n" % (SINK, sink.port))
            d.start()
            s = smtplib.SMTP(d.host, d.port, timeout=20)
            try:
                for i in range(3):
                    s.sendmail("alice@strictmta.test",
                               ["bob%d@sink.example.test" % i],
                               smta.make_message("m%d" % i))
                for i in range(2):
                    s.sendmail("alice@strictmta.test",
                               ["carol%d@example.org" % i],
                               smta.make_message("d%d" % i))
            finally:
                s.quit()
            self.assertTrue(smta.wait_for(lambda: len(sink.messages) >= 3,
                                          15.0), d.log_text(40))

            def settled():
                sm = parse(scrape()[1])
                return (value(sm, "strictmta_delivery_recipients_total",
                              status="sent") >= 3 and
                        value(sm, "strictmta_delivery_recipients_total",
                              status="deferred") >= 2 and
                        value(sm, "strictmta_queue_walk_age_seconds") >= 0
                        and value(sm, "strictmta_queue_messages") == 2)
            ok = smta.wait_for(settled, 25.0)
            ctype, text = scrape()
            smta.log(text)
            sm = parse(text)
            self.assertTrue(ok, text)
            self.assertIn("text/plain", ctype)
            self.assertIn("version=0.0.4", ctype)
            self.assertEqual(value(sm, "strictmta_delivery_recipients_total",
                                   status="sent"), 3)
            self.assertEqual(value(sm, "strictmta_delivery_recipients_total",
                                   status="bounced"), 0)
            self.assertEqual(value(sm, "strictmta_queue_messages"), 2)
            # The same text through Prometheus' own client parser.
            fams = {f.name: f for f in
                    text_string_to_metric_families(text)}
            sent = [s.value for s in
                    fams["strictmta_delivery_recipients"].samples
                    if s.labels.get("status") == "sent"]
            self.assertEqual(sent, [3.0])
            self.assertEqual(fams["strictmta_delivery_recipients"].type,
                             "counter")
            self.assertEqual(
                fams["strictmta_queue_messages"].samples[0].value, 2.0)
            self.assertNotIn("example.org", text)  # no domain labels
            # Only GET /metrics is served.
            with self.assertRaises(urllib.error.HTTPError):
                urllib.request.urlopen("http://%s:%d/other" % (METRICS, PORT),
                                       timeout=5)
        finally:
            d.stop()
            d.cleanup()
            sink.stop()

    def test_non_loopback_refused(self):
        d = smta.Daemon("metrics-bad", {"metrics_listen": "192.0.2.1:9100"})
        try:
            d.write_conf()
            r = subprocess.run([smta.program("strictmta"), "-c", d.conf,
                                "config", "check"], capture_output=True,
                               text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertRegex(r.stderr + r.stdout,
                             r":\d+: metrics_listen: .*loopback")
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
