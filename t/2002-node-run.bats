#!/usr/bin/env bats
# nunet-node run: the control socket, readiness, behaviors, status,
# SIGTERM and SIGHUP.
load lib/common

setup() {
	common_setup
	node_init
}

@test "run serves on node.sock (0600) and writes one ready line on --ready-fd" {
	node_start
	assert_equal "$(jq -r .ready <<<"$READY_LINE")" true
	assert_equal "$(jq -r .did <<<"$READY_LINE")" "$(nunet-node id)"
	assert_equal "$(jq -r .sock <<<"$READY_LINE")" "$NUNET_HOME/node.sock"
	[ -S "$NUNET_HOME/node.sock" ]
	assert_equal "$(stat -c %a "$NUNET_HOME/node.sock")" 600
}

@test "/node/ping, /node/info and /node/behaviors answer" {
	node_start
	run nunet-send /node/ping '{"hello":"world"}'
	assert_success
	assert_equal "$(jq -c '[.pong, .echo]' <<<"$output")" '[true,{"hello":"world"}]'
	run nunet-send /node/info
	assert_success
	assert_equal "$(jq -r .did <<<"$output")" "$(nunet-node id)"
	assert_equal "$(jq -r .pid <<<"$output")" "$NODE_PID"
	run nunet-send /node/behaviors
	assert_success
	for be in /node/behaviors /node/info /node/ping /node/events /node/metrics /public/ping; do
		jq -e --arg be "$be" 'any(.behaviors[]; .be == $be and (.about | length > 0))' <<<"$output" >/dev/null ||
			fail "$be missing from /node/behaviors"
	done
	# public: the /public/ paths, and the pay behaviors, whose bodies carry
	# their own signatures by the contract's parties (nunet-pay(1))
	assert_equal "$(jq -c '[.behaviors[] | select(.public) | .be |
		select(startswith("/public/") or startswith("/broadcast/public/") | not)] | sort' <<<"$output")" \
		'["/pay/usage","/pay/voucher"]'
	assert_equal "$(jq '[.behaviors[] | select(.be | startswith("/public/")) | .public] | all' <<<"$output")" true
}

@test "status prints the running node's info, or running:false and exit 1" {
	run nunet-node status
	assert_failure 1
	assert_equal "$(jq -r .running <<<"$output")" false
	node_start
	run nunet-node status
	assert_success
	assert_equal "$(jq -r '.running, .did' <<<"$output")" "true
$(nunet-node id)"
}

@test "SIGTERM stops the node within 1 s and removes the socket" {
	node_start
	start=$(date +%s%N)
	kill -TERM "$NODE_PID"
	wait "$NODE_PID"
	rc=$?
	end=$(date +%s%N)
	NODE_PIDS=()
	assert_equal "$rc" 0
	[ $(( (end - start) / 1000000 )) -lt 1000 ]
	[ ! -e "$NUNET_HOME/node.sock" ]
	run sqlite3 "$NUNET_HOME/node.db" "SELECT group_concat(kind, ' ') FROM events"
	assert_output 'node.start node.stop'
}

@test "a second node on the same home is refused while the first runs" {
	node_start
	run --separate-stderr nunet-node run
	assert_failure 69
	assert_equal "$stderr" "nunet-node: error: a node is already running in '$NUNET_HOME'"
	run nunet-send /node/ping
	assert_success
}

@test "a stale socket left by a killed node does not stop a new one" {
	node_start
	kill -KILL "$NODE_PID"; wait "$NODE_PID" || true
	NODE_PIDS=()
	[ -S "$NUNET_HOME/node.sock" ]
	node_start
	run nunet-send /node/ping
	assert_success
}

@test "SIGHUP reloads config.json; a bad config is refused and the old one kept" {
	node_start
	jq '.max_line_bytes = 600' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c" && mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	kill -HUP "$NODE_PID"
	# the reload is done once the node answers with the new cap
	for i in $(seq 50); do
		[ "$(nunet-send /node/info | jq .max_line_bytes)" = 600 ] && break
	done
	run nunet-send /node/ping "{\"pad\":\"$(head -c 700 /dev/zero | tr '\0' x)\"}"
	assert_failure 65
	assert_output --partial '"code":"oversize"'
	echo '{"max_line_bytes": "huge"}' >"$NUNET_HOME/config.json"
	kill -HUP "$NODE_PID"
	for i in $(seq 50); do
		grep -q 'reload refused' "$BATS_TEST_TMPDIR/node.log" && break
		nunet-send /node/ping >/dev/null
	done
	run grep 'reload refused' "$BATS_TEST_TMPDIR/node.log"
	assert_output --partial 'max_line_bytes: expected an integer'
	run nunet-send /node/info
	assert_equal "$(jq .max_line_bytes <<<"$output")" 600
}

@test "a bad config.json stops run with exit 78 naming the key" {
	echo '{"max_clinets": 5}' >"$NUNET_HOME/config.json"
	run --separate-stderr nunet-node run
	assert_failure 78
	assert_equal "$stderr" "nunet-node: error: $NUNET_HOME/config.json: unknown key 'max_clinets'"
}

@test "run without init says what to do" {
	run --separate-stderr nunet-node --home "$BATS_TEST_TMPDIR/none" run
	assert_failure 78
	assert_equal "$stderr" "nunet-node: error: no node at '$BATS_TEST_TMPDIR/none': run 'nunet-node init' first"
}

@test "a home path longer than a socket address still works" {
	long="$BATS_TEST_TMPDIR/$(printf 'd%.0s' $(seq 120))"
	node_init "$long"
	node_start "$long"
	run nunet-send --home "$long" /node/ping
	assert_success
}

@test "an idle node sleeps between its timers instead of spinning" {
	# its periodic work (sweeps, event flushes) wakes it some tens of
	# times a second; a timer re-armed for "now" spun it thousands of times
	node_start
	nunet-send /node/ping >/dev/null
	reads() { awk '/^syscr/ { print $2 }' "/proc/$NODE_PID/io"; }
	r0=$(reads)
	sleep 2
	r1=$(reads)
	echo "read calls in 2 s: $((r1 - r0))"
	[ $((r1 - r0)) -lt 400 ]
	# and the node's own requests still end on time (the same timer)
	run nunet-send /node/ping
	assert_success
}
