#!/usr/bin/env bats
# Private swarms: init --new-swarm / --swarm-key, swarm.key, and a node with
# another key never gets in (the failure is logged on both sides).
load lib/common

declare -gA DID ADDR PID
@test "init --new-swarm stores a new key (0600) and prints it once after the did" {
	run nunet-node --home "$BATS_TEST_TMPDIR/a" init --new-swarm
	assert_success
	assert_equal "${#lines[@]}" 2
	[[ ${lines[0]} == did:key:z6Mk* ]]
	[[ ${lines[1]} =~ ^[0-9a-f]{64}$ ]]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/a/swarm.key")" "${lines[1]}"
	assert_equal "$(stat -c %a "$BATS_TEST_TMPDIR/a/swarm.key")" 600
	# another swarm gets another key
	run nunet-node --home "$BATS_TEST_TMPDIR/b" init --new-swarm
	[ "${lines[1]}" != "$(cat "$BATS_TEST_TMPDIR/a/swarm.key")" ]
}

@test "init --swarm-key copies the key; a bad or missing file fails before anything is made" {
	nunet-node --home "$BATS_TEST_TMPDIR/a" init --new-swarm >/dev/null
	run nunet-node --home "$BATS_TEST_TMPDIR/b" init --swarm-key "$BATS_TEST_TMPDIR/a/swarm.key"
	assert_success
	assert_equal "${#lines[@]}" 1
	cmp "$BATS_TEST_TMPDIR/a/swarm.key" "$BATS_TEST_TMPDIR/b/swarm.key"
	echo "not a key" >"$BATS_TEST_TMPDIR/bad"
	run --separate-stderr nunet-node --home "$BATS_TEST_TMPDIR/c" init --swarm-key "$BATS_TEST_TMPDIR/bad"
	assert_failure 65
	[[ $stderr == "nunet-node: error: --swarm-key: "* ]]
	[ ! -e "$BATS_TEST_TMPDIR/c" ]
	run nunet-node --home "$BATS_TEST_TMPDIR/c" init --swarm-key "$BATS_TEST_TMPDIR/none"
	assert_failure 74
	[ ! -e "$BATS_TEST_TMPDIR/c" ]
	run nunet-node --home "$BATS_TEST_TMPDIR/c" init --new-swarm --swarm-key "$BATS_TEST_TMPDIR/a/swarm.key"
	assert_failure 64
}

@test "man page example: a private swarm of two nodes lists each other; ping through the node" {
	nunet-node --home "$BATS_TEST_TMPDIR/a" init --new-swarm >/dev/null
	nunet-node --home "$BATS_TEST_TMPDIR/b" init --swarm-key "$BATS_TEST_TMPDIR/a/swarm.key" >/dev/null
	swarm_node a
	swarm_node b --bootstrap "$(nunet-node --home "$BATS_TEST_TMPDIR/a" id)@${ADDR[a]}"
	within 5 'test "$(nunet-node --home "$BATS_TEST_TMPDIR/a" peers | jq -r .state)" = alive'
	grep -q "listening on ${ADDR[a]} (private swarm)" "$BATS_TEST_TMPDIR/node.log"
	run env NUNET_HOME="$BATS_TEST_TMPDIR/a" nunet-send --to "$(nunet-node --home "$BATS_TEST_TMPDIR/b" id)" /public/ping
	assert_success
	assert_equal "$(jq -r .pong <<<"$output")" true
}

@test "a node with another swarm key never appears; both sides log the failed handshake" {
	nunet-node --home "$BATS_TEST_TMPDIR/a" init --new-swarm >/dev/null
	nunet-node --home "$BATS_TEST_TMPDIR/b" init --swarm-key "$BATS_TEST_TMPDIR/a/swarm.key" >/dev/null
	nunet-node --home "$BATS_TEST_TMPDIR/x" init --new-swarm >/dev/null
	nunet-node --home "$BATS_TEST_TMPDIR/p" init >/dev/null	# the public swarm
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	swarm_node x --bootstrap "${DID[a]}@${ADDR[a]}"
	swarm_node p --bootstrap "${DID[a]}@${ADDR[a]},${DID[b]}@${ADDR[b]}"
	within 5 'test "$(peer_state a "${DID[b]}")" = alive'
	# the outsiders' handshakes fail at both ends ...
	within 5 'test "$(grep -c "handshake failed" "$BATS_TEST_TMPDIR/node.log")" -ge 4'
	grep -q "warn: swarm: peer 127.0.0.1:[0-9]*: handshake failed" "$BATS_TEST_TMPDIR/node.log"
	grep -q "swarm: peer ${DID[a]}@${ADDR[a]}: handshake failed" "$BATS_TEST_TMPDIR/node.log"
	# ... and give them nothing: give them a few probe periods more
	sleep 2
	assert_equal "$(peer_state a "${DID[x]}")" ""
	assert_equal "$(peer_state a "${DID[p]}")" ""
	assert_equal "$(peer_state b "${DID[x]}")" ""
	assert_equal "$(nunet-node --home "$BATS_TEST_TMPDIR/x" peers | jq -r 'select(.state == "alive") | .did')" ""
	assert_equal "$(nunet-node --home "$BATS_TEST_TMPDIR/p" peers | jq -r 'select(.state == "alive") | .did')" ""
	# a message from the outsider cannot get in
	run env NUNET_HOME="$BATS_TEST_TMPDIR/x" nunet-send --to "${DID[a]}" /public/ping
	assert_failure 69
}
