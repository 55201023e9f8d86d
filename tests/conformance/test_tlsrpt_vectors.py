#!/usr/bin/python3
"""Every txt_record_parse and TXT-RRset txt_lookup case of
shared/vectors/tlsrpt.json through strictmta's parser (policy_tool
tlsrpt-txt). The expected verdict is the vector's expect_valid."""
import json
import os
import subprocess
import sys

vectors = os.environ.get("STRICTMTA_VECTORS",
                         os.path.join(os.path.dirname(__file__),
                                      "../../../shared/vectors"))
path = os.path.join(vectors, "tlsrpt.json")
if not os.path.exists(path):
    print(f"SKIP: {path} is absent; the TLSRPT vectors were not run")
    sys.exit(77)
tool = os.path.join(os.environ.get("STRICTMTA_BUILD_DIR", "build"),
                    "tests", "policy_tool")
data = json.load(open(path))
passed = failed = 0


def run(*records):
    out = subprocess.run([tool, "tlsrpt-txt",
                          *[r.encode().hex() for r in records]],
                         check=True, capture_output=True)
    return json.loads(out.stdout)


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


for v in data["txt_record_parse"]:
    r = run(v["txt"])
    check((r["result"] == "found") == v["expect_valid"], f"txt {v['id']}: {r}")
    if v["expect_valid"]:
        check(r["rua"] == v["expect_rua"], f"txt {v['id']}: rua {r['rua']}")

for v in data["txt_lookup"]:
    rrset = v.get("txt_rrset", "absent")
    if not isinstance(rrset, list) and rrset is not None:
        continue  # SERVFAIL etc.: DNS behaviour, not the parser
    r = run(*["".join(x) if isinstance(x, list) else x for x in rrset or []])
    if isinstance(v["expect"], dict):
        check(r["result"] == "found" and r["rua"] == v["expect"]["rua"],
              f"lookup {v['id']}: {r}")
    else:
        check(r["result"] != "found", f"lookup {v['id']}: {r}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
