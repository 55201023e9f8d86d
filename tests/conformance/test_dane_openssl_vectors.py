#!/usr/bin/python3
"""The certificate-chain cases of shared/vectors/dane-tlsa-openssl.json
(from OpenSSL's own DANE tests) through strictmta's RFC 7672 usability
rules and OpenSSL verification (policy_tool dane-chain), each checked
against the SMTP expectation the case names:

  authenticated             -> usable records, chain verified
  no-usable-tlsa            -> no usable record (TLS mandatory, no auth)
  not-authenticated ...     -> usable records, verification fails
"""
import json
import os
import subprocess
import sys
import tempfile

vectors = os.environ.get("STRICTMTA_VECTORS",
                         os.path.join(os.path.dirname(__file__),
                                      "../../../shared/vectors"))
path = os.path.join(vectors, "dane-tlsa-openssl.json")
if not os.path.exists(path):
    print(f"SKIP: {path} is absent; the DANE chain vectors were not run")
    sys.exit(77)
tool = os.path.join(os.environ.get("STRICTMTA_BUILD_DIR", "build"),
                    "tests", "policy_tool")
data = json.load(open(path))
passed = failed = 0


def rdata_hex(rr):
    usage, selector, mtype, hexdata = rr.split(None, 3)
    return "%02x%02x%02x%s" % (int(usage), int(selector), int(mtype),
                               "".join(hexdata.split()))


with tempfile.TemporaryDirectory() as tmp:
    for case in data["cases"]:
        pem = os.path.join(tmp, "chain.pem")
        with open(pem, "w") as fp:
            for cid in case["peer_chain_leaf_first"]:
                fp.write(data["certs"][cid]["pem"]
                         if isinstance(data["certs"][cid], dict)
                         else data["certs"][cid])
                fp.write("\n")
        out = subprocess.run(
            [tool, "dane-chain", case["reference_name"], pem,
             *[rdata_hex(r["rr"]) for r in case["tlsa_rrset"]]],
            check=True, capture_output=True)
        r = json.loads(out.stdout)
        want = case["derived_smtp_expectation"]
        expect_usable = any(x["usable_for_smtp_rfc7672"]
                            for x in case["tlsa_rrset"])
        if want.startswith("authenticated"):
            ok = r["usable"] > 0 and r["verified"]
        elif want.startswith("no-usable-tlsa"):
            ok = r["usable"] == 0
        elif want.startswith("not-authenticated"):
            ok = r["usable"] > 0 and not r["verified"]
        else:
            ok = False
        ok = ok and ((r["usable"] > 0) == expect_usable)
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {case['id']}: expected {want[:60]!r}, got {r}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
