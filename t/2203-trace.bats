#!/usr/bin/env bats
# Tracing across nodes: a trace id set by nunet-send travels over the swarm,
# and nunet-run trace gathers the events of every node involved.
load lib/common

declare -gA DID ADDR
alive() { # ON NAME: node ON lists NAME as alive
	nunet-node --home "$BATS_TEST_TMPDIR/$1" peers | jq -e --arg d "${DID[$2]}" 'select(.did == $d and .state == "alive")' >/dev/null
}
setup() {
	common_setup
	node_init "$BATS_TEST_TMPDIR/a"
	node_init "$BATS_TEST_TMPDIR/b"
	# a may read b's events
	a=$(nunet-node --home "$BATS_TEST_TMPDIR/a" id)
	jq --arg d "$a" '.owners = [$d]' "$BATS_TEST_TMPDIR/b/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$BATS_TEST_TMPDIR/b/config.json"
}

@test "nunet-run trace merges the events of every node a trace touched, in time order" {
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	within 10 'alive a b'
	run nunet-send --home "$BATS_TEST_TMPDIR/a" --trace feed01 --to "${DID[b]}" /node/info
	assert_success
	assert_equal "$(jq -r .did <<<"$output")" "${DID[b]}"
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	within 5 '[ "$(nunet-run trace feed01 | wc -l)" -ge 3 ]'
	run nunet-run trace feed01
	assert_success
	assert_equal "$(jq -r '[.node == "'"${DID[a]}"'", .kind] | map(tostring) | join(" ")' <<<"$output" | head -3)" \
		"$(printf 'true msg.in\nfalse msg.in\nfalse msg.out')"
	run bash -c "nunet-run trace feed01 | jq -s 'map(.ts) == (map(.ts) | sort)'"
	assert_output true
	# nothing else got into that trace
	run nunet-run trace 0000
	assert_failure 1
	assert_output ''
}

@test "a node that refuses is named, the others are still printed, exit 1" {
	# c does not list a as an owner
	node_init "$BATS_TEST_TMPDIR/c"
	swarm_node a
	swarm_node c --bootstrap "${DID[a]}@${ADDR[a]}"
	within 10 'alive a c'
	nunet-send --home "$BATS_TEST_TMPDIR/a" --trace beef --to "${DID[c]}" /public/ping >/dev/null
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	within 5 'nunet-node events --trace beef | grep -q msg.in'
	run --separate-stderr nunet-run trace beef
	assert_failure 1
	assert_equal "$(jq -r .node <<<"$output" | sort -u)" "${DID[a]}"
	[[ "$stderr" == *"${DID[c]:0:40}"*"may not invoke /node/events"* ]] || fail "stderr: $stderr"
	run --separate-stderr nunet-run trace not-hex
	assert_failure 64
}
