#!/bin/bash
# test_net_selftest.sh - the test network (tests/net) starts, answers as
# documented in tests/net/README.md, records mail, and stops cleanly.
set -u

here=$(cd "$(dirname "$0")" && pwd)
netctl="$here/../net/netctl"
fails=0
passes=0

if ! command -v swaks >/dev/null 2>&1; then
	echo "SKIP: swaks not installed (tests/net/packages.txt)"
	exit 77
fi
ok() {
	passes=$((passes + 1))
	echo "ok - $*"
}
nok() {
	fails=$((fails + 1))
	echo "FAIL - $*"
}

# Private network namespace, start, source env, stop at exit (lib.sh).
. "$here/../net/lib.sh"
t0=$(date +%s)
net_setup "$0" "$@"
state=$NET_STATE

# dig through the validating resolver: "STATUS FLAGS" of the answer.
q() {
	dig @"$NET_RESOLVER" +dnssec +time=3 +tries=2 "$1" "$2" |
	    awk '/status:/ { s = $6; sub(",", "", s) }
		/;; flags:/ { f = ($0 ~ / ad[; ]/) ? "ad" : "noad" }
		END { print s, f }'
}
expect() {	# name type "STATUS FLAGS"
	local got
	got=$(q "$1" "$2")
	if [ "$got" = "$3" ]; then
		ok "$1 $2: $got"
	else
		nok "$1 $2: want '$3', got '$got'"
	fi
}

expect pref.secure.test MX "NOERROR ad"
expect mx1.pref.secure.test A "NOERROR ad"
expect equal.secure.test MX "NOERROR ad"
expect implicit.secure.test A "NOERROR ad"
expect mxalias.secure.test A "NOERROR ad"
expect insecure.test MX "NOERROR noad"
expect mx.insecure.test A "NOERROR noad"
expect bogus.test MX "SERVFAIL noad"
expect badds.test MX "SERVFAIL noad"
expect _25._tcp.mx.ee.dane.test TLSA "NOERROR ad"
expect _25._tcp.mx.notlsa.dane.test TLSA "NXDOMAIN ad"
expect _25._tcp.mx.tlsabogus.dane.test TLSA "SERVFAIL noad"
expect _mta-sts.enforce.sts.test TXT "NOERROR noad"

got=$(dig @"$NET_RESOLVER_NOVALIDATE" +dnssec bogus.test MX |
    grep -c "^bogus.test.*IN.MX")
if [ "$got" = 1 ]; then
	ok "non-validating resolver passes bogus data on"
else
	nok "non-validating resolver: bogus.test MX lines: $got"
fi

mx=$(dig @"$NET_RESOLVER" +short nullmx.secure.test MX)
if [ "$mx" = "0 ." ]; then ok "null MX"; else nok "null MX: '$mx'"; fi
mx=$(dig @"$NET_RESOLVER" +short pref.secure.test MX | sort | tr '\n' ' ')
if [ "$mx" = "10 mx1.pref.secure.test. 20 mx2.pref.secure.test. " ]; then
	ok "pref MX"
else
	nok "pref MX: '$mx'"
fi

# The trust anchor file is a root DNSKEY (KSK, flags 257).
if grep -q "^\.[[:space:]].*DNSKEY[[:space:]]257 3 13 " "$NET_TRUST_ANCHOR"
then
	ok "trust anchor"
else
	nok "trust anchor: $(cat "$NET_TRUST_ANCHOR")"
fi

# Mail over STARTTLS, verified against the test CA.
if swaks --server 127.25.0.11 --from sender@client.test \
    --to user@pref.secure.test --helo client.test --tls --tls-verify \
    --tls-ca-path "$NET_CA" --tls-sni mx1.pref.secure.test \
    --timeout 10 >"$state/swaks.log" 2>&1; then
	ok "swaks STARTTLS to 127.25.0.11"
else
	nok "swaks STARTTLS: $(tail -5 "$state/swaks.log")"
fi
rec=$(ls "$NET_SINK_SPOOL"/127.25.0.11/*.json 2>/dev/null | head -1)
if [ -n "$rec" ] && /usr/bin/python3 - "$rec" <<'EOF'
import json, sys, base64
r = json.load(open(sys.argv[1]))
assert r["tls"] and r["tls"]["version"].startswith("TLSv1."), r["tls"]
assert r["tls"]["sni"] == "mx1.pref.secure.test", r["tls"]
assert r["rcpt_to"] == ["user@pref.secure.test"], r["rcpt_to"]
assert r["mail_from"] == "sender@client.test"
assert b"\r\n\r\n" in base64.b64decode(r["data_b64"])
EOF
then
	ok "recorded message says TLS"
else
	nok "recorded message: ${rec:-none}"
fi
if grep -q "^127.25.0.11 conn=1 .*tls=yes .*messages=1 " "$NET_SINK_LOG"; then
	ok "connections.log"
else
	nok "connections.log: $(cat "$NET_SINK_LOG")"
fi

# Controlled failure: RCPT forced to 451 at run time, then reset.
"$netctl" sink "$state" 127.25.0.18 '{"rcpt": "451 4.3.0 later"}'
swaks --server 127.25.0.18 --from s@client.test --to u@many.secure.test \
    --timeout 10 >"$state/swaks2.log" 2>&1
if grep -q "<\*\* *451 4.3.0 later" "$state/swaks2.log"; then
	ok "forced 451"
else
	nok "forced 451: $(tail -5 "$state/swaks2.log")"
fi
"$netctl" sink-reset "$state" 127.25.0.18
if swaks --server 127.25.0.18 --from s@client.test \
    --to u@many.secure.test --timeout 10 >/dev/null 2>&1; then
	ok "reset to accept"
else
	nok "reset to accept"
fi

# No STARTTLS where it is not offered.
if swaks --server 127.25.0.19 --from s@client.test \
    --to u@notls.secure.test --tls --timeout 10 >/dev/null 2>&1; then
	nok "notls sink offered STARTTLS"
else
	ok "notls sink refuses STARTTLS"
fi

# MTA-STS policy over HTTPS, certificate from the test CA.
if command -v curl >/dev/null 2>&1; then
	body=$(curl -sS --max-time 5 --cacert "$NET_CA" --resolve \
	    mta-sts.enforce.sts.test:443:"$NET_HTTPS" \
	    https://mta-sts.enforce.sts.test/.well-known/mta-sts.txt)
	case "$body" in
	*"mode: enforce"*) ok "MTA-STS policy over HTTPS" ;;
	*) nok "MTA-STS policy: '$body'" ;;
	esac
fi

# DANE: the published TLSA records match (or not) what the sinks present.
dane() {	# label "expected s_client output"
	local h=mx.$1.dane.test a rr out
	a=$(dig @"$NET_RESOLVER" +short "$h" A)
	rr=$(dig @"$NET_RESOLVER" +short _25._tcp."$h" TLSA | head -1)
	out=$(timeout 10 openssl s_client -connect "$a:25" -starttls smtp \
	    -servername "$h" -dane_tlsa_domain "$h" -dane_tlsa_rrdata "$rr" \
	    -verify_return_error -brief </dev/null 2>&1)
	case "$out" in
	*"$2"*) ok "DANE $1: $2" ;;
	*) nok "DANE $1: want '$2': $(echo "$out" | head -3)" ;;
	esac
}
dane ee "matched EE certificate at depth 0"
dane ta "matched TA certificate at depth 1"
dane eeself "matched EE certificate at depth 0"
dane mismatch "no matching DANE TLSA records"
dane tawrongname "hostname mismatch"

n=$(net_conns 127.25.0.18)
if [ "$n" = 2 ]; then ok "net_conns"; else nok "net_conns: $n"; fi

pids=$(awk '{ print $1 }' "$state/pids")
"$netctl" stop "$state" || nok "netctl stop"
gone=1
for p in $pids; do
	if [ -e "/proc/$p" ] &&
	    ! awk '{ exit !($3 == "Z") }' "/proc/$p/stat" 2>/dev/null; then
		gone=0
		nok "pid $p still running"
	fi
done
[ $gone = 1 ] && ok "all pids gone"

echo "elapsed $(($(date +%s) - t0)) s"
echo "$passes passed, $fails failed"
[ $fails = 0 ]
