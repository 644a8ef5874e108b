#!/usr/bin/env bats
# Events: recorded, stored, queried, followed live, traced, retained.
load lib/common

setup() {
	common_setup
	node_init
}

# wait_for CMD: retry a command up to 5 s (events reach the store in batches)
wait_for() {
	for i in $(seq 100); do
		eval "$1" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	eval "$1"
}

@test "the node records its start, each message in and out, and its stop" {
	node_start
	nunet-send /node/ping >/dev/null
	node_stop_all
	run nunet-node events
	assert_success
	assert_equal "$(jq -r .kind <<<"$output" | tr '\n' ' ')" 'node.start msg.in msg.out node.stop '
	assert_equal "$(jq -r .seq <<<"$output" | tr '\n' ' ')" '1 2 3 4 '
	did=$(nunet-node id)
	run jq -e --arg did "$did" '.node == $did and .level == "debug" and .fields.be == "/node/ping" and
		.fields.from == $did and (.ts | type) == "number"' <<<"${lines[1]}"
	assert_success
}

@test "a trace id travels from nunet-send through the node and back" {
	node_start
	run nunet-send --raw --trace 5eed0001 /node/ping
	assert_equal "$(jq -r .trace <<<"$output")" 5eed0001
	wait_for '[ "$(nunet-node events --trace 5eed0001 | wc -l)" -eq 2 ]'
	run nunet-node events --trace 5eed0001
	assert_equal "$(jq -r .kind <<<"$output" | tr '\n' ' ')" 'msg.in msg.out '
	# a request and its answer share a span: the request's id
	assert_equal "$(jq -r .span <<<"$output" | sort -u | wc -l)" 1
	assert_equal "$(jq -r .span <<<"${lines[0]}")" "$(jq -r .fields.id <<<"${lines[0]}")"
	# without --trace every invocation makes its own
	nunet-send /node/ping >/dev/null
	nunet-send /node/ping >/dev/null
	wait_for '[ "$(nunet-node events --kind msg.in | jq -r .trace | sort -u | wc -l)" -eq 3 ]'
}

@test "refusals are events: msg.refused, and security.refused for authority" {
	node_start
	nunet-send /node/nope >/dev/null 2>&1 || true
	test-tool key gen "$BATS_TEST_TMPDIR/stranger" >/dev/null
	nunet-send --key "$BATS_TEST_TMPDIR/stranger" /node/info >/dev/null 2>&1 || true
	wait_for 'nunet-node events --kind security | grep -q unauthorized'
	run nunet-node events --level warn
	assert_equal "$(jq -r '[.kind, .fields.code] | join(" ")' <<<"$output" | tr '\n' ',')" \
		'msg.refused unknown_behavior,security.refused unauthorized,'
}

@test "events of a running node include what it recorded just before, and reading adds nothing" {
	# the node stores its events every 100 ms; each read here comes sooner
	node_start
	for k in 1 2 3; do	# not i: bats's run sets it
		nunet-send /node/ping "{\"k\":$k}" >/dev/null
		run --separate-stderr nunet-node events --kind msg.in
		assert_success
		assert_equal "$stderr" ""
		assert_equal "$(jq -r .fields.be <<<"$output" | tr '\n' ' ')" "$(printf '/node/ping %.0s' $(seq $k))"
	done
	run nunet-node events
	[[ "$output" != *flush* ]] || fail "the flush requests were recorded: $output"
	# a stopped node's store is read as it is
	node_stop_all
	run --separate-stderr nunet-node events --kind msg.in
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 3
}

@test "filters: --kind, --level, --since, --limit, --where" {
	node_start
	for i in 1 2 3; do nunet-send /node/ping "{\"i\":$i}" >/dev/null; done
	wait_for '[ "$(nunet-node events --kind msg.out | wc -l)" -eq 3 ]'
	run nunet-node events --kind msg
	assert_equal "${#lines[@]}" 6
	run nunet-node events --level info
	assert_equal "$(jq -r .kind <<<"$output")" node.start
	run nunet-node events --limit 2
	assert_equal "${#lines[@]}" 2
	run nunet-node events --since 1h --kind node
	assert_equal "${#lines[@]}" 1
	run nunet-node events --since "$(( $(date +%s%3N) + 60000 ))"
	assert_output ''
	run nunet-node events --where '.fields.type == "reply"'
	assert_equal "${#lines[@]}" 3
	run nunet-node events --where '.fields.nosuch.deeper[0] | not'
	assert_success
}

@test "a --where that does not compile is exit 65 with jq's message" {
	run --separate-stderr nunet-node events --where '.fields.be =='
	assert_failure 65
	assert_equal "${stderr:0:37}" 'nunet-node: error: --where: jq: error'
	run --separate-stderr nunet-node events --level loud
	assert_failure 64
}

@test "-f prints the stored events, then follows live without gaps or repeats" {
	node_start
	nunet-send /node/ping '{"n":1}' >/dev/null
	nunet-node events -f --kind msg.in >"$BATS_TEST_TMPDIR/follow" 2>&1 &
	f=$!
	wait_for 'grep -q "\"n\"\|/node/ping" "$BATS_TEST_TMPDIR/follow"'
	for i in 2 3 4; do nunet-send /node/ping "{\"n\":$i}" >/dev/null; done
	wait_for '[ "$(grep -c /node/ping "$BATS_TEST_TMPDIR/follow")" -eq 4 ]'
	kill $f
	run jq -s 'map(.seq) | (. == (sort | unique))' "$BATS_TEST_TMPDIR/follow"
	assert_output true
	assert_equal "$(grep -c /node/ping "$BATS_TEST_TMPDIR/follow")" 4
	assert_equal "$(grep -c /node/events "$BATS_TEST_TMPDIR/follow")" 1
	# the follower is gone and the node goes on
	run nunet-send /node/ping
	assert_success
}

@test "retention keeps at most events_max_rows" {
	jq '.events_max_rows = 20' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	node_start
	seq 50 | jq -c '{be: "/node/ping", body: {i: .}}' | nunet-send - >/dev/null
	node_stop_all
	assert_equal "$(sqlite3 "$NUNET_HOME/node.db" 'SELECT count(*) FROM events')" 20
	run nunet-node events
	assert_equal "$(jq -r .kind <<<"${lines[19]}")" node.stop
	assert_equal "$(jq -r .seq <<<"${lines[19]}")" 102
}

@test "events_messages=false records no msg.in/msg.out" {
	jq '.events_messages = false' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	node_start
	nunet-send /node/ping >/dev/null
	node_stop_all
	run nunet-node events
	assert_equal "$(jq -r .kind <<<"$output" | tr '\n' ' ')" 'node.start node.stop '
}

@test "/node/events answers queries and refuses bad bodies" {
	node_start
	nunet-send /node/ping >/dev/null
	run nunet-send /node/events '{"kind":"msg.in","limit":5}'
	assert_success
	# the ping and this query itself
	assert_equal "$(jq -r '[.events[].fields.be] | join(" ")' <<<"$output")" '/node/ping /node/events'
	run --separate-stderr nunet-send /node/events '{"limit":0}'
	assert_failure
	assert_equal "$(jq -r .error.code <<<"$output")" bad_body
	run --separate-stderr nunet-send /node/events '{"level":"loud"}'
	assert_equal "$(jq -r .error.code <<<"$output")" bad_body
}

@test "nunet-events(5): examples" {
	node_start
	nunet-send --trace 5eed /node/ping >/dev/null
	wait_for '[ "$(nunet-node events --trace 5eed | wc -l)" -eq 2 ]'
	run bash -c 'nunet-node events --trace 5eed | jq -r .kind'
	assert_output $'msg.in\nmsg.out'
	run nunet-node events --since 10m --kind security
	assert_success
	timeout 1 nunet-node events -f --level info >"$BATS_TEST_TMPDIR/f" || true
	assert_equal "$(jq -r .kind "$BATS_TEST_TMPDIR/f")" node.start
}

@test "--log-format json: stderr carries events as JSON lines, log messages included" {
	node_start "$NUNET_HOME" --log-format json --log-level debug
	nunet-send --trace abcd /node/ping >/dev/null
	node_stop_all
	run jq -r .kind "$BATS_TEST_TMPDIR/node.log"
	assert_success	# every line is JSON
	assert_line node.start
	assert_line log
	assert_line msg.in
	assert_line node.stop
	run jq -r 'select(.kind == "log") | .fields.message' "$BATS_TEST_TMPDIR/node.log"
	assert_line --partial 'serving'
	run jq -r 'select(.trace == "abcd") | .kind' "$BATS_TEST_TMPDIR/node.log"
	assert_output $'msg.in\nmsg.out'
	run --separate-stderr nunet-node run --log-format yaml
	assert_failure 64
}
