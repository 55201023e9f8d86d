#!/bin/sh
# test_cli_config - `strictmta config check|doc|print`, usage errors, and
# docs/config.md being the current `strictmta config doc` output.
# Exit 77 (skipped) when strictmta is not built.
set -u
build=${STRICTMTA_BUILD_DIR:-$(dirname "$0")/../../build}
src=${STRICTMTA_SOURCE_DIR:-$(dirname "$0")/../..}
cli=$build/mta/strictmta
if [ ! -x "$cli" ]; then
	echo "SKIP: $cli is not built"
	exit 77
fi
tmp=$(mktemp -d /tmp/strictmta-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

# Accounts every Debian system has, so that the check does not depend on
# tests/install-deps.
printf 'queue_directory = %s/q\nmyhostname = mx.test.example\nmail_owner = nobody\nsetgid_group = nogroup\n' \
    "$tmp" >"$tmp/good.cf"
if "$cli" config check -c "$tmp/good.cf" >"$tmp/out" 2>&1; then
	ok "config check: good file"
else
	bad "config check: good file: $(cat "$tmp/out")"
fi
"$cli" -c "$tmp/good.cf" config print >"$tmp/out" 2>&1
if grep -qx "smtpd_banner = mx.test.example ESMTP strictmta" "$tmp/out"; then
	ok "config print expands \$myhostname"
else
	bad "config print: $(head -3 "$tmp/out")"
fi

printf 'myhostname = a\n\nsmtpd_timeout = soon\n' >"$tmp/bad.cf"
"$cli" config check -c "$tmp/bad.cf" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 78 ] && grep -q "$tmp/bad.cf:3: smtpd_timeout: 'soon' is not a time" "$tmp/out"; then
	ok "config check: bad value names file, line, key (exit 78)"
else
	bad "config check: bad value: rc=$rc $(cat "$tmp/out")"
fi
printf 'mail_owner = no-such-user-here\nsmtps_listen = 127.22.0.1:465\n' \
    >"$tmp/sem.cf"
"$cli" config check -c "$tmp/sem.cf" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 78 ] && grep -q "sem.cf: mail_owner: no such user 'no-such-user-here'" "$tmp/out" &&
    grep -q "smtps_listen is set but smtpd_tls_cert_file is not" "$tmp/out"; then
	ok "config check: what the daemon would refuse (exit 78)"
else
	bad "config check: semantics: rc=$rc $(cat "$tmp/out")"
fi
"$cli" config check -c "$tmp/missing.cf" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 78 ] && grep -q "missing.cf: cannot open" "$tmp/out"; then
	ok "config check: missing file (exit 78)"
else
	bad "config check: missing file: rc=$rc $(cat "$tmp/out")"
fi

for args in "" "queue" "queue bogus" "queue show" "queue list --all" \
    "queue delete --all 0123456789ABCDEF" "config" "frobnicate"; do
	# shellcheck disable=SC2086
	"$cli" -c "$tmp/good.cf" $args >"$tmp/out" 2>&1
	rc=$?
	if [ $rc -eq 64 ] && grep -q "^usage: strictmta" "$tmp/out"; then
		ok "usage error exits 64: '$args'"
	else
		bad "usage error '$args': rc=$rc"
	fi
done

"$cli" -c "$tmp/good.cf" queue stats >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 75 ] && grep -q "cannot connect to the daemon at $tmp/q/private/control: is strictmtad running?" "$tmp/out"; then
	ok "queue stats without a daemon: exit 75"
else
	bad "queue stats without a daemon: rc=$rc $(cat "$tmp/out")"
fi

# The version names the commit the build came from, the same for both.
v_cli=$("$cli" version)
v_daemon=$("$build/mta/strictmtad" -V)
if echo "$v_cli" | grep -Eq '^strictmta [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{7,40}(-dirty)?|unknown)\)$' &&
	[ "${v_daemon#strictmtad }" = "${v_cli#strictmta }" ]; then
	ok "version names the commit: $v_cli"
else
	bad "version: '$v_cli' / '$v_daemon'"
fi

"$cli" config doc >"$tmp/config.md"
if cmp -s "$tmp/config.md" "$src/docs/config.md"; then
	ok "docs/config.md is current"
else
	bad "docs/config.md is stale: run '$cli config doc > docs/config.md'"
fi
exit $fail
