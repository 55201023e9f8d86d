# lib.sh - shell helpers for integration tests that use the test network.
#
#	here=$(cd "$(dirname "$0")" && pwd)
#	. "$here/../net/lib.sh"
#	net_setup "$0" "$@"	# re-exec in a private netns, start, source env
#	...			# NET_* variables are set; see README.md
#	net_conns 127.25.0.18	# connections seen by that sink
#	net_msgs 127.25.0.18	# messages stored by that sink
#	net_wait_msgs 127.25.0.18 2 10	# wait up to 10 s for 2 messages
#
# net_setup installs an EXIT trap that stops the network and removes its
# directory (kept when NET_KEEP=1).  A test that needs its own EXIT trap
# should call net_teardown from it.

NET_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NET_NETCTL="$NET_DIR/netctl"

net_setup() {
	local self=$1
	shift
	local tool
	for tool in knotd unbound nginx ldns-signzone dig openssl; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			echo "SKIP: $tool not installed (tests/net/packages.txt)"
			exit 77
		fi
	done
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: the test network needs root"
		exit 77
	fi
	if [ "${NET_IN_NETNS:-}" != 1 ] &&
	    unshare --net -- true >/dev/null 2>&1; then
		exec "$NET_DIR/netns-run" "$self" "$@"
	fi
	NET_STATE=$(mktemp -d /tmp/testnet.XXXXXX)
	trap net_teardown EXIT
	if ! "$NET_NETCTL" start "$NET_STATE"; then
		echo "FAIL: netctl start"
		exit 1
	fi
	. "$NET_STATE/env"
}

net_teardown() {
	[ -n "${NET_STATE:-}" ] || return 0
	"$NET_NETCTL" stop "$NET_STATE" >/dev/null 2>&1
	if [ "${NET_KEEP:-}" = 1 ]; then
		echo "test network state kept in $NET_STATE"
	else
		rm -rf "$NET_STATE"
	fi
}

net_conns() {
	grep -c "^$1 " "$NET_SINK_LOG"
}

net_msgs() {
	local n=0 f
	for f in "$NET_SINK_SPOOL/$1"/*.json; do
		[ -e "$f" ] && n=$((n + 1))
	done
	echo $n
}

net_wait_msgs() {	# address count seconds
	local i
	for ((i = 0; i < ${3:-10} * 10; i++)); do
		[ "$(net_msgs "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
