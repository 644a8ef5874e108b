#!/usr/bin/env bats
# Every example in the foundation's man pages, run as written.
load lib/common

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
}

@test "nunet-node(1): make a node, start it, ask who it is" {
	run nunet-node init
	assert_output --regexp '^did:key:z6Mk'
	did=$output
	nunet-node run 2>/dev/null &
	NODE_PIDS+=($!)
	for i in $(seq 100); do nunet-send /node/ping >/dev/null 2>&1 && break; sleep 0.05; done
	run bash -c 'nunet-send /node/info | jq -r .did'
	assert_output "$did"
}

@test "nunet-node(1): start from a script with --ready-fd; status; HUP" {
	nunet-node init >/dev/null
	mkfifo ready
	nunet-node run --ready-fd 3 3>ready 2>/dev/null &
	NODE_PIDS+=($!)
	read -r line <ready && run bash -c "echo '$line' | jq -r .sock"
	assert_output "$NUNET_HOME/node.sock"
	run bash -c 'nunet-node status | jq .running'
	assert_output true
	cd "$NUNET_HOME"
	jq '.max_line_bytes = 65536' config.json > c && mv c config.json
	kill -HUP "$(nunet-node status | jq .pid)"
	for i in $(seq 100); do [ "$(nunet-send /node/info | jq .max_line_bytes)" = 65536 ] && break; sleep 0.05; done
	assert_equal "$(nunet-send /node/info | jq .max_line_bytes)" 65536
}

@test "nunet-send(1): ping, behaviors, a pipelined thousand, --raw" {
	node_init
	node_start
	run bash -c "nunet-send /node/ping '{\"hello\":\"world\"}' | jq -c .echo"
	assert_output '{"hello":"world"}'
	run bash -c "nunet-send /node/behaviors | jq -r '.behaviors[].be'"
	assert_line /node/info
	run bash -c "seq 1000 | jq -c '{be: \"/node/ping\", body: {i: .}}' | nunet-send - | jq -s length"
	assert_output 1000
	run bash -c 'nunet-send --raw /node/info | jq -r .type'
	assert_output reply
}

@test "nunet-envelope(5): the fields a node signs" {
	node_init
	node_start
	run bash -c "nunet-send --raw /node/ping | jq -c 'del(.sig) | keys'"
	assert_output '["be","body","exp","from","id","re","to","trace","ts","type","v"]'
}

@test "nunet(7): composing from a shell" {
	nunet-node init >/dev/null
	mkfifo ready
	nunet-node run --ready-fd 3 3>ready 2>/dev/null &
	NODE_PIDS+=($!)
	read -r _ <ready
	run bash -c 'nunet-send /node/info | jq .uptime_ms'
	assert_output --regexp '^[0-9]+$'
	cp "$NUNET_SRC/share/nunet/requirements/web-service.json" job.json
	mkdir more-offers
	cp "$NUNET_SRC"/share/nunet/capability/*.json more-offers/
	nunet-bench --quick > offers.jsonl
	jq -c . more-offers/*.json >> offers.jsonl
	run --separate-stderr nunet-match --explain job.json offers.jsonl
	[ "$status" -le 1 ] || fail "nunet-match exited $status"
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" "$(wc -l < offers.jsonl)"
	for l in "${lines[@]}"; do jq -e . <<<"$l" >/dev/null; done
	printf '{"n":1}\n{"n":2}\n' >requests.jsonl
	run bash -c "jq -c '{be: \"/node/ping\", body: .}' requests.jsonl | nunet-send - | jq -c .echo"
	assert_output $'{"n":1}\n{"n":2}'
}
