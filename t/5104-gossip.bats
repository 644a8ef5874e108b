#!/usr/bin/env bats
# Broadcast by gossip: nunet-send --broadcast reaches every other node once,
# answers come back, the hop limit holds, duplicates are dropped.
load lib/common

declare -gA DID ADDR PID
alive() {
	nunet-node --home "$BATS_TEST_TMPDIR/$1" peers | jq -s '[.[] | select(.state == "alive")] | length'
}
own() {
	local cfg="$BATS_TEST_TMPDIR/$1/config.json"
	jq --arg d "$2" '.owners = [$d]' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg"
}
envelope() {
	local now=$(date +%s%3N)
	jq -nc --arg f "$1" --arg b "$2" --argjson now "$now" --arg id "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" \
		'{v:1, type:"msg", id:$id, from:$f, to:"*", be:$b, ts:$now, exp:($now + 60000), body:{}}'
}

@test "--broadcast reaches every other node once and prints each answer" {
	for n in a b c d; do node_init "$BATS_TEST_TMPDIR/$n"; done
	for n in b c d; do own $n "$(nunet-node --home "$BATS_TEST_TMPDIR/a" id)"; done
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	swarm_node c --bootstrap "${DID[b]}@${ADDR[b]}"
	swarm_node d --bootstrap "${DID[c]}@${ADDR[c]}"
	for n in a b c d; do within 5 "test \"\$(alive $n)\" = 3"; done
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	run --separate-stderr nunet-send -t 2 --broadcast /broadcast/ping '{"k":1}'
	assert_success
	assert_equal "${#lines[@]}" 3
	assert_equal "$(jq -r .did <<<"$output" | sort)" "$(printf '%s\n' "${DID[b]}" "${DID[c]}" "${DID[d]}" | sort)"
	assert_equal "$(jq -r .echo.k <<<"$output" | sort -u)" 1
	# --raw: each answer is the replying node's own signed envelope
	run nunet-send -t 2 --raw --broadcast /broadcast/ping
	assert_success
	assert_equal "${#lines[@]}" 3
	answers=("${lines[@]}")
	for a in "${answers[@]}"; do
		run test-tool env verify <<<"$a"
		assert_output ok
	done
}

@test "nodes that do not authorize the sender answer with their refusal" {
	for n in a b c; do node_init "$BATS_TEST_TMPDIR/$n"; done
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	swarm_node c --bootstrap "${DID[a]}@${ADDR[a]}"
	for n in a b c; do within 5 "test \"\$(alive $n)\" = 2"; done
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	run --separate-stderr nunet-send -t 4 --broadcast /broadcast/ping
	assert_failure 1
	assert_equal "$(jq -r .error.code <<<"$output")" "unauthorized
unauthorized"
}

@test "--broadcast: only /broadcast/ behaviors, only with peers, not with --to or -" {
	node_init
	node_start "$NUNET_HOME" --listen 127.0.0.1:0
	run --separate-stderr nunet-send --broadcast /broadcast/ping
	assert_failure 69
	assert_equal "$stderr" "nunet-send: error: unavailable: no peers to broadcast to"
	run --separate-stderr nunet-send --broadcast /node/info
	assert_failure 69
	assert_equal "$stderr" "nunet-send: error: unavailable: only /broadcast/ behaviors go to every node, not '/node/info'"
	run nunet-send --broadcast --to local /broadcast/ping
	assert_failure 64
	run nunet-send --broadcast -
	assert_failure 64
}

@test "the hop limit bounds how far a broadcast goes; a repeated broadcast is dropped" {
	# a line: x (a raw peer) -> b -> c -> d, where b only knows x and c, c only b and d
	for n in b c d x; do node_init "$BATS_TEST_TMPDIR/$n"; done
	X=$(nunet-node --home "$BATS_TEST_TMPDIR/x" id)
	for n in b c d; do own $n "$X"; done
	swarm_node d
	swarm_node c --bootstrap "${DID[d]}@${ADDR[d]}"
	swarm_node b --bootstrap "${DID[c]}@${ADDR[c]}"
	within 5 'test "$(alive b)" = 2'
	key="$BATS_TEST_TMPDIR/x/key"
	bc() { jq -c --argjson h "$1" '{swim:"bc", hops:$h, env:.}'; }
	env1=$(envelope "$X" /broadcast/ping | test-tool env sign "$key")
	# one hop: only b runs it
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public 3 1500 <<<"$(bc 1 <<<"$env1")"
	assert_equal "$(jq -r .body.did <<<"$output")" "${DID[b]}"
	# the same broadcast again: dropped everywhere, no answer
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public 1 1000 <<<"$(bc 8 <<<"$env1")"
	assert_failure 1
	assert_output ''
	# a new one with hops 8: all three answer, back through b
	env2=$(envelope "$X" /broadcast/ping | test-tool env sign "$key")
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public 3 5000 <<<"$(bc 8 <<<"$env2")"
	assert_success
	assert_equal "$(jq -r .body.did <<<"$output" | sort)" "$(printf '%s\n' "${DID[b]}" "${DID[c]}" "${DID[d]}" | sort)"
	# a broadcast altered on the way is refused, not passed on
	env3=$(envelope "$X" /broadcast/ping | test-tool env sign "$key" | jq -c '.body.x = 1')
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public 1 1000 <<<"$(bc 8 <<<"$env3")"
	assert_failure 1
	grep -q "warn: peer $X: bad_signature: broadcast refused: " "$BATS_TEST_TMPDIR/node.log"
}
