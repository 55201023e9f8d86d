#!/usr/bin/env bash
# accept_bench.sh - how fast strictmtad accepts mail, next to Postfix.
#
#   tests/bench/accept_bench.sh [MESSAGES] [SESSIONS] [SIZE]
#
# Postfix's smtp-source sends MESSAGES messages (default 2000) of SIZE
# bytes (default 4000) over SESSIONS concurrent sessions (default 20),
# first to a strictmtad with a new queue (127.30.0.1), then to a private
# Postfix instance (127.30.0.2, its delivery deferred so that it only
# accepts). Both acknowledge a message only once it is on disk. Prints
# messages/s for each and the ratio. Needs a build (build/, or
# STRICTMTA_BUILD_DIR) and root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export STRICTMTA_SOURCE_DIR=${STRICTMTA_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
export STRICTMTA_BUILD_DIR=${STRICTMTA_BUILD_DIR:-$STRICTMTA_SOURCE_DIR/build}
exec /usr/bin/python3 -B - "${1:-2000}" "${2:-20}" "${3:-4000}" <<'PY'
import os, sys, time
sys.path.insert(0, os.path.join(os.environ["STRICTMTA_SOURCE_DIR"],
                                "tests", "lib"))
import smta

n, sessions, size = (int(a) for a in sys.argv[1:4])


def run(name, host, port, count_queued):
    t0 = time.monotonic()
    p = smta.smtp_source(host, port, n, sessions=sessions, size=size,
                         rcpt="bench@example.org", timeout=1800)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("%s: smtp-source failed: %s" % (name, p.stderr.decode()))
    queued = count_queued()
    rate = n / dt
    print("%-10s %6d messages, %3d sessions, %5d bytes: %7.2fs  %8.1f msg/s"
          "  (queued: %s)" % (name, n, sessions, size, dt, rate, queued),
          flush=True)
    return rate


d = smta.Daemon("bench", {
    "smtpd_connection_limit": str(max(200, sessions * 2)),
    "smtpd_client_connection_count_limit": str(max(50, sessions * 2)),
    "maillog_file": os.devnull,
})
pf = None
try:
    d.start()
    ours = run("strictmta", d.host, d.port, lambda: len(d.queue_list()))
    d.stop()
    pf = smta.Postfix("bench", "[127.30.0.1]:9", {
        "defer_transports": "smtp, relay",
        "smtpd_client_connection_count_limit": "0",
        "default_process_limit": str(max(100, sessions + 10)),
    })
    pf.start()
    theirs = run("postfix", pf.host, pf.port,
                 lambda: smta.wait_for(lambda: pf.queue_count(), 5))
    print("ratio strictmta/postfix: %.2f" % (ours / theirs))
finally:
    d.cleanup()
    if pf:
        pf.cleanup()
PY
