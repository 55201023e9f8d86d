#!/usr/bin/python3
"""Every policy, TXT record, TXT RRset, MX pattern and media type case of
shared/vectors/mta-sts.json through strictmta's parsers (policy_tool).

The expected verdict is the vector's expect_valid (the RFC's reading), not
what the implementation it came from did."""
import json
import os
import subprocess
import sys
import tempfile

vectors = os.environ.get("STRICTMTA_VECTORS",
                         os.path.join(os.path.dirname(__file__),
                                      "../../../shared/vectors"))
path = os.path.join(vectors, "mta-sts.json")
if not os.path.exists(path):
    print(f"SKIP: {path} is absent; the MTA-STS vectors were not run")
    sys.exit(77)
tool = os.path.join(os.environ.get("STRICTMTA_BUILD_DIR", "build"),
                    "tests", "policy_tool")
data = json.load(open(path))
passed = failed = 0


def run(*args):
    out = subprocess.run([tool, *args], check=True, capture_output=True)
    return json.loads(out.stdout)


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


with tempfile.TemporaryDirectory() as tmp:
    for v in data["policy_parse"]:
        f = os.path.join(tmp, "policy")
        with open(f, "wb") as fp:
            fp.write(v["policy_text"].encode())
        r = run("sts-policy", f)
        check(r["valid"] == v["expect_valid"],
              f"policy {v['id']}: valid={r['valid']} ({r.get('error')})")
        exp = v.get("expect") or {}
        if r["valid"] and v["expect_valid"]:
            for key in ("mode", "max_age"):
                if key in exp:
                    check(r[key] == exp[key], f"policy {v['id']}: {key}")
            if "mx" in exp:
                check(r["mx"] == [m.lower() for m in exp["mx"]],
                      f"policy {v['id']}: mx {r['mx']}")

for v in data["txt_record_parse"]:
    r = run("sts-txt", v["txt"].encode().hex())
    check((r["result"] == "found") == v["expect_valid"],
          f"txt {v['id']}: {r}")
    if v["expect_valid"]:
        check(r["id"] == v["expect_id"], f"txt {v['id']}: id {r['id']}")

for v in data["txt_lookup"]:
    rrset = v["txt_rrset"]
    if not isinstance(rrset, list) and rrset is not None:
        # CNAME chains and SERVFAIL are DNS behaviour: covered by the
        # resolver and policy integration tests, not by the parser.
        continue
    records = ["".join(r) if isinstance(r, list) else r
               for r in (rrset or [])]
    r = run("sts-txt", *[t.encode().hex() for t in records])
    if isinstance(v["expect"], dict):
        check(r["result"] == "found" and r["id"] == v["expect"]["id"],
              f"lookup {v['id']}: {r}")
    else:
        check(r["result"] != "found", f"lookup {v['id']}: {r}")

for v in data["mx_match"]:
    r = run("mx-match", v["mx_host"], *v["patterns"])
    check(r["match"] == v["expect_match"], f"mx {v['id']}: {r}")

for v in data["policy_content_type"]:
    r = run("content-type", v["content_type"])
    check(r["plaintext"] == v["expect_plaintext"],
          f"content type {v['content_type']!r}: {r}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
