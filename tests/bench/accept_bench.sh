#!/usr/bin/env bash
# accept_bench.sh - how fast strictmtad accepts mail, next to Postfix.
#
#   tests/bench/accept_bench.sh [MESSAGES] [SESSIONS] [SIZE] [ROUNDS]
#
# Postfix's smtp-source sends MESSAGES messages (default 2000) of SIZE
# bytes (default 4000) over SESSIONS concurrent sessions (default 20) to a
# strictmtad with a new queue (127.30.0.1) and to a private Postfix
# instance (127.30.0.2, its delivery deferred so that it only accepts),
# alternately, ROUNDS times (default 3). Both acknowledge a message only
# once it is on disk. Prints each run, the median messages/s of each and
# their ratio. Needs a build (build/, or STRICTMTA_BUILD_DIR) and root.
# The numbers are only as quiet as the machine: run it alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export STRICTMTA_SOURCE_DIR=${STRICTMTA_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
export STRICTMTA_BUILD_DIR=${STRICTMTA_BUILD_DIR:-$STRICTMTA_SOURCE_DIR/build}
exec /usr/bin/python3 -B - "${1:-2000}" "${2:-20}" "${3:-4000}" "${4:-3}" <<'PY'
import os, statistics, sys, time
sys.path.insert(0, os.path.join(os.environ["STRICTMTA_SOURCE_DIR"],
                                "tests", "lib"))
import smta

n, sessions, size, rounds = (int(a) for a in sys.argv[1:5])


def run(name, host, port, count_queued, want):
    t0 = time.monotonic()
    p = smta.smtp_source(host, port, n, sessions=sessions, size=size,
                         rcpt="bench@example.org", timeout=1800)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("%s: smtp-source failed: %s" % (name, p.stderr.decode()))
    queued = smta.wait_for(lambda: count_queued() >= want, 20) and \
        count_queued()
    rate = n / dt
    print("%-10s %6d messages, %3d sessions, %5d bytes: %7.2fs  %8.1f msg/s"
          "  (in its queue: %s)" % (name, n, sessions, size, dt, rate,
                                    queued or count_queued()), flush=True)
    return rate


d = smta.Daemon("bench", {
    "smtpd_connection_limit": str(max(200, sessions * 2)),
    "smtpd_client_connection_count_limit": str(max(50, sessions * 2)),
    "maillog_file": os.devnull,
})
pf = smta.Postfix("bench", "[127.30.0.1]:9", {
    "defer_transports": "smtp, relay",
    "smtpd_client_connection_count_limit": "0",
    "default_process_limit": str(max(100, sessions + 10)),
})
ours, theirs = [], []
try:
    d.start()
    pf.start()
    for r in range(rounds):
        ours.append(run("strictmta", d.host, d.port,
                        lambda: len(d.queue_list()), n * (r + 1)))
        theirs.append(run("postfix", pf.host, pf.port, pf.queue_count,
                          n * (r + 1)))
    a, b = statistics.median(ours), statistics.median(theirs)
    print("median: strictmta %.1f msg/s, postfix %.1f msg/s; "
          "ratio strictmta/postfix: %.2f" % (a, b, a / b))
finally:
    d.cleanup()
    pf.cleanup()
PY
