#!/usr/bin/env bats
# The README's first command: a private swarm of three nodes on loopback,
# membership, a signed message across the swarm, a refusal, a job, events,
# and a deployment across the swarm: where each allocation went and why.
load lib/common

@test "contrib/quickstart runs the main job from start to end" {
	run env NUNET_DEMO_DIR="$BATS_TEST_TMPDIR/demo" sh "$NUNET_SRC/contrib/quickstart"
	assert_success
	assert_output --partial '"pong":true'
	assert_output --partial '"echo":{"hello":"from b"}'
	assert_output --partial 'unauthorized'
	assert_line --regexp '^hello from [0-9a-f]+ as pid 1$'
	assert_output --partial '"kind":"security.refused"'
	[ "$(grep -c '"state":"alive"' <<<"$output")" -eq 2 ]
	# the deployment: the two cheapest nodes (c, then b), and why
	assert_line --partial 'deploy.running'
	assert_line --regexp '^  report -> node c: score -[0-9.]+, best of 3 bids'
	assert_line --regexp '^  store -> node b: score -[0-9.]+, best of 3 bids'
	assert_line --partial 'running; report exited, store running'
	assert_line '  the report said: report made'
	for n in a b c; do assert_line "node $n: {\"free\":1000,\"onboarded\":1000}"; done
	# the nodes are stopped afterwards
	for n in a b c; do
		run env NUNET_HOME="$BATS_TEST_TMPDIR/demo/$n" nunet-node status
		assert_failure 1
	done
}
