# Shared set-up for every bats file: load with `load lib/common`.
#
# Puts the build's programs first in PATH, gives each test its own
# $NUNET_HOME, and starts and stops real nodes with --ready-fd (never sleep).

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

: "${NUNET_BUILD:=$(cd "$BATS_TEST_DIRNAME/.." && pwd)}"
: "${NUNET_SRC:=$(cd "$BATS_TEST_DIRNAME/.." && pwd)}"
export NUNET_BUILD NUNET_SRC
export PATH="$NUNET_BUILD/bin:$NUNET_BUILD/t/helper:$PATH"
unset XDG_DATA_HOME NUNET_PASSPHRASE

common_setup() {
	export NUNET_HOME="$BATS_TEST_TMPDIR/home"
	export HOME="$BATS_TEST_TMPDIR"
	NODE_PIDS=()
}

setup() {
	common_setup
}

teardown() {
	node_stop_all
}

# node_init [HOME] [ARGS...]: make a node home (default $NUNET_HOME).
node_init() {
	local home=${1:-$NUNET_HOME}
	shift || true
	nunet-node --home "$home" init "$@" >/dev/null
}

# node_start [HOME] [ARGS...]: start `nunet-node run` in the background and
# wait for its ready line (at most 10 s).  Sets NODE_PID.
node_start() {
	local home=${1:-$NUNET_HOME}
	shift || true
	local fifo="$BATS_TEST_TMPDIR/ready.$RANDOM"
	mkfifo "$fifo"
	nunet-node --home "$home" run --ready-fd 3 "$@" 3>"$fifo" \
		2>>"$BATS_TEST_TMPDIR/node.log" &
	NODE_PID=$!
	NODE_PIDS+=("$NODE_PID")
	local line=""
	if ! read -r -t 10 line <"$fifo"; then
		rm -f "$fifo"
		echo "node did not become ready; log:" >&2
		cat "$BATS_TEST_TMPDIR/node.log" >&2
		return 1
	fi
	rm -f "$fifo"
	READY_LINE=$line
}

# allocs_kill DIR: end every allocation whose directory is under DIR, job
# and shim, with SIGKILL.  Shims outlive their node by design (crash
# safety), so a test that kills or stops nodes with allocations running
# calls this in its teardown, or their jobs would run on after it.
allocs_kill() {
	local f p
	for f in "$1"/alloc/*/native.json "$1"/*/alloc/*/native.json; do
		[ -f "$f" ] || continue
		p=$(jq -r '.pid // empty' "$f" 2>/dev/null) || continue
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
	done
	for p in $(pgrep -f -- "exec --shim .*$1/" || true); do kill -9 "$p" 2>/dev/null; done
	return 0
}

node_stop_all() {
	local p
	for p in "${NODE_PIDS[@]:-}"; do
		# CONT: a test may have stopped it (SIGSTOP), and TERM waits for
		# that (a node that is already gone makes CONT fail: no matter)
		if [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; then
			kill -CONT "$p" 2>/dev/null || true
		fi
	done
	for p in "${NODE_PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null
	done
	NODE_PIDS=()
}

# within SECONDS COMMAND: poll COMMAND (eval'd) every 0.1 s until it
# succeeds; fail once SECONDS have passed.
within() {
	local end=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
	until eval "$2"; do
		(( $(date +%s%N) / 1000000 < end )) || return 1
		sleep 0.1
	done
}

# swarm_node NAME [ARGS...]: start the node $BATS_TEST_TMPDIR/NAME (made
# first when missing) listening on a loopback port.  Sets DID[NAME] and
# ADDR[NAME], and PID[NAME] and HOME_OF[NAME] where the file declared them
# (declare -gA DID ADDR [PID] [HOME_OF]).
swarm_node() {
	local name=$1 home="$BATS_TEST_TMPDIR/$1"
	shift
	[ -d "$home" ] || node_init "$home"
	node_start "$home" --listen 127.0.0.1:0 "$@" || return
	DID[$name]=$(jq -r .did <<<"$READY_LINE")
	ADDR[$name]=$(jq -r .listen <<<"$READY_LINE")
	[[ ${PID@a} != *A* ]] || PID[$name]=$NODE_PID
	[[ ${HOME_OF@a} != *A* ]] || HOME_OF[$name]=$home
}

# peer_state NAME DID: the state (alive, suspect, dead) in which node NAME
# lists peer DID.
peer_state() {
	nunet-node --home "$BATS_TEST_TMPDIR/$1" peers | jq -r --arg d "$2" 'select(.did == $d) | .state'
}

# wait_state ID STATE: wait (at most 30 s: a loaded machine is slow) until
# allocation ID of the node at $NUNET_HOME is in STATE.
wait_state() {
	local i
	for i in $(seq 600); do
		[ "$(jq -r .state "$NUNET_HOME/alloc/$1/state.json" 2>/dev/null)" = "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# allocs_teardown [HOME...]: the teardown of a test that runs allocations:
# cancel and wait for every allocation of each node home (default
# $NUNET_HOME), give the shims time to clean up (cgroups, containers) and
# leave, stop the nodes, then kill whatever is left under those homes.
allocs_teardown() {
	local h id i p
	[ $# -gt 0 ] || set -- "$NUNET_HOME"
	for h in "$@"; do	# an empty home would match every allocation
		[ -n "$h" ] || return 1
	done
	for h in "$@"; do
		for id in $(NUNET_HOME=$h nunet-run ls 2>/dev/null | jq -r .id); do
			NUNET_HOME=$h nunet-run cancel --grace 0s "$id" >/dev/null 2>&1
			NUNET_HOME=$h timeout 15 nunet-run wait "$id" >/dev/null 2>&1
		done
	done
	for h in "$@"; do
		for i in $(seq 150); do pgrep -f -- "$h/alloc/" >/dev/null || break; sleep 0.1; done
	done
	node_stop_all
	for h in "$@"; do
		for p in $(pgrep -f -- "$h/alloc/" || true); do kill -9 "$p" 2>/dev/null || true; done
	done
	return 0
}

# skip_unless CMD REASON: skip the test when CMD fails.
skip_unless() {
	if ! eval "$1" >/dev/null 2>&1; then
		skip "$2"
	fi
}
