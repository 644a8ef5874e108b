#!/usr/bin/env bats
# Swarm membership over TCP on loopback: listen, bootstrap, peers, SWIM
# failure detection, and a message to a dead peer.
load lib/common

declare -gA DID ADDR PID
# alive NAME: how many peers NAME lists as alive
alive() {
	nunet-node --home "$BATS_TEST_TMPDIR/$1" peers | jq -s '[.[] | select(.state == "alive")] | length'
}

@test "the ready line names the bound listen address" {
	swarm_node a
	[[ ${ADDR[a]} =~ ^127\.0\.0\.1:[0-9]+$ ]]
	[ "${ADDR[a]#*:}" != 0 ]
}

@test "bad --listen and --bootstrap values are usage errors" {
	node_init
	run --separate-stderr nunet-node run --listen nowhere
	assert_failure 64
	assert_equal "$stderr" "nunet-node: error: --listen: 'nowhere': expected HOST:PORT"
	run --separate-stderr nunet-node run --bootstrap 127.0.0.1:4000
	assert_failure 64
	assert_equal "$stderr" "nunet-node: error: --bootstrap: '127.0.0.1:4000': expected DID@HOST:PORT"
	run --separate-stderr nunet-node run --bootstrap did:key:zfoo@127.0.0.1:4000
	assert_failure 64
}

@test "a port already taken fails at start with a clear message" {
	swarm_node a
	node_init "$BATS_TEST_TMPDIR/b"
	run --separate-stderr nunet-node --home "$BATS_TEST_TMPDIR/b" run --listen "${ADDR[a]}"
	assert_failure 70
	assert_equal "$stderr" "nunet-node: error: cannot listen on ${ADDR[a]}: Address already in use"
}

@test "two nodes: bootstrap connects them and both list each other as peers" {
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	within 5 'test "$(peer_state a "${DID[b]}")" = alive'
	within 5 'test "$(peer_state b "${DID[a]}")" = alive'
	run nunet-node --home "$BATS_TEST_TMPDIR/a" peers
	assert_success
	assert_equal "$(jq -r '.did, .addr, .direct' <<<"$output")" "${DID[b]}
${ADDR[b]}
true"
	# the probes measure a round-trip time
	within 5 'test "$(nunet-node --home "$BATS_TEST_TMPDIR/b" peers | jq "select(.rtt_ms != null) | .rtt_ms >= 0")" = true'
}

@test "peers: no peers is no output; -h prints usage; extra arguments are usage errors" {
	node_init
	run nunet-node peers
	assert_success
	assert_output ''
	run nunet-node peers -h
	assert_success
	assert_line --partial 'nunet-node [--home DIR] peers'
	run nunet-node peers extra
	assert_failure 64
}

@test "five nodes see each other within 5 s; SIGKILL one and the rest mark it dead within 10 s" {
	swarm_node n1
	for i in 2 3 4 5; do
		swarm_node n$i --bootstrap "${DID[n1]}@${ADDR[n1]}"
	done
	for i in 1 2 3 4 5; do
		within 5 'test "$(alive n$i)" = 4' || fail "node $i sees $(alive n$i) peers after 5 s"
	done
	kill -KILL "${PID[n3]}"
	for i in 1 2 4 5; do
		within 10 'test "$(peer_state n$i "${DID[n3]}")" = dead' || fail "node $i says n3 is $(peer_state n$i "${DID[n3]}")"
	done
	for i in 1 2 4 5; do
		assert_equal "$(alive n$i)" 3
	done
	# the death was announced in the log and recorded as an event
	grep -q "swarm: peer ${DID[n3]} is dead" "$BATS_TEST_TMPDIR/node.log"
	# a message to it fails with a clear error
	run --separate-stderr env NUNET_HOME="$BATS_TEST_TMPDIR/n1" nunet-send --to "${DID[n3]}" /public/ping
	assert_failure 69
	assert_equal "$stderr" "nunet-send: error: unavailable: no route to ${DID[n3]}: the peer is dead"
}

@test "a restarted node rejoins with a new incarnation" {
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	within 5 'test "$(peer_state a "${DID[b]}")" = alive'
	kill -KILL "${PID[b]}"
	within 10 'test "$(peer_state a "${DID[b]}")" = dead'
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	within 5 'test "$(peer_state a "${DID[b]}")" = alive'
}
