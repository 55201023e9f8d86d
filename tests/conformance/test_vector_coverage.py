#!/usr/bin/python3
"""docs/conformance.md stays complete: every rule and scenario of
shared/vectors/dane.json, and every entry of mta-sts.json's policy_fetch,
policy_cache, txt_lookup, delivery_scenarios and rfc_statements, has a row
in the map, and the row is well formed:

  | `id` | status | where it is covered / the reason |

  - the id appears in backticks (rfc_statements, which have no ids, as
    `rfc_statements[N]`, and the row names its section as §S);
  - status is one of test, partial, differs, reason;
  - a test / partial / differs row names at least one test file, and
    every test file a row names exists in the source tree.

No network; fast. Skips (77) when the vectors are absent."""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("STRICTMTA_SOURCE_DIR", os.path.join(HERE, "../.."))
vectors = os.environ.get("STRICTMTA_VECTORS",
                         os.path.join(SRC, "../shared/vectors"))
files = [os.path.join(vectors, n) for n in ("dane.json", "mta-sts.json")]
missing = [f for f in files if not os.path.exists(f)]
if missing:
    print("SKIP: %s absent (set STRICTMTA_VECTORS); the conformance map "
          "was not checked" % ", ".join(missing))
    sys.exit(77)

STATUSES = {"test", "partial", "differs", "reason"}
TEST_FILE = re.compile(r"tests/[\w./-]+\.(?:py|sh|c)")

doc_path = os.path.join(SRC, "docs", "conformance.md")
try:
    doc = open(doc_path, encoding="utf-8").read()
except OSError as e:
    print("FAIL: cannot read %s: %s" % (doc_path, e))
    print("0 passed, 1 failed")
    sys.exit(1)

# Rows of the map: "| `id` | status | text |".
rows = {}
for line in doc.splitlines():
    m = re.match(r"\|\s*`([^`]+)`\s*\|\s*([\w-]+)\s*\|(.*)\|\s*$", line)
    if m:
        rows.setdefault(m.group(1), []).append((m.group(2), m.group(3)))

dane = json.load(open(files[0]))
sts = json.load(open(files[1]))
wanted = []  # (what, id, section or None)
for r in dane["rules"]:
    wanted.append(("dane.json rules", r["id"], None))
for s in dane["scenarios"]:
    wanted.append(("dane.json scenarios", s["id"], None))
for cat in ("policy_fetch", "policy_cache", "txt_lookup",
            "delivery_scenarios"):
    for v in sts[cat]:
        wanted.append(("mta-sts.json " + cat, v["id"], None))
for i, v in enumerate(sts["rfc_statements"]):
    wanted.append(("mta-sts.json rfc_statements", "rfc_statements[%d]" % i,
                   v["section"].split()[0]))

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


for what, vid, section in wanted:
    got = rows.get(vid)
    if not got:
        check(False, "%s: `%s` has no row in docs/conformance.md" %
              (what, vid))
        continue
    for status, text in got:
        ok = status in STATUSES
        why = "status %r is not one of %s" % (status, sorted(STATUSES))
        if ok and status != "reason":
            ok = TEST_FILE.search(text) is not None
            why = "a %s row must name the test file" % status
        if ok and section is not None:
            ok = ("§" + section) in text
            why = "the row must name §%s" % section
        for path in TEST_FILE.findall(text):
            if not os.path.exists(os.path.join(SRC, path)):
                ok = False
                why = "names %s, which does not exist" % path
        check(ok, "%s: `%s`: %s" % (what, vid, why))

# Rows for ids that the vectors no longer have: stale, say so.
known = {vid for _, vid, _ in wanted}
stale = sorted(k for k in rows if k not in known and
               re.match(r"^(R-|mox-|maddy-|stalwart-|mxconnect-|fox-|"
                        r"snawoot-|mimecast-|rfc-|rfc_statements\[)", k))
for k in stale:
    check(False, "`%s` is in docs/conformance.md but not in the vectors"
          % k)

counts = {}
for _, vid, _ in wanted:
    for status, _ in rows.get(vid, []):
        counts[status] = counts.get(status, 0) + 1
print("map: %d ids; rows by status: %s" %
      (len(wanted), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
