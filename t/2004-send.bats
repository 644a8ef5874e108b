#!/usr/bin/env bats
# nunet-send: one request, a pipelined stream, --raw, exit codes.
load lib/common

setup() {
	common_setup
	node_init
}

@test "after init, nunet-send works with no further set-up" {
	node_start
	run nunet-send /node/ping
	assert_success
	assert_equal "$(jq -r .pong <<<"$output")" true
}

@test "the answer is one JSON line: the reply body" {
	node_start
	run nunet-send /node/ping '{"a":[1,2]}'
	assert_success
	assert_equal "${#lines[@]}" 1
	assert_equal "$(jq -c .echo <<<"$output")" '{"a":[1,2]}'
}

@test "--raw prints the whole signed reply envelope, which verifies" {
	node_start
	run nunet-send --raw /node/ping
	assert_success
	assert_equal "$(jq -r '.type, .from, .be' <<<"$output")" "reply
$(nunet-node id)
/node/ping"
	run test-tool env verify <<<"$output"
	assert_output ok
}

@test "--to local and --to the node's own did reach the node; another did does not" {
	node_start
	run nunet-send --to local /node/ping
	assert_success
	run nunet-send --to "$(nunet-node id)" /node/ping
	assert_success
	run --separate-stderr nunet-send --to did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp /node/ping
	assert_failure 69
	assert_equal "$(jq -r .error.code <<<"$output")" unavailable
}

@test "a stream of requests is pipelined and answered in request order" {
	node_start
	seq 1000 | awk '{ printf "{\"be\":\"/node/ping\",\"body\":{\"i\":%d}}\n", $1 }' >"$BATS_TEST_TMPDIR/req"
	run bash -c "nunet-send - <'$BATS_TEST_TMPDIR/req' | jq -s -c 'map(.echo.i) == [range(1;1001)]'"
	assert_success
	assert_output true
}

@test "a bad line in the stream is answered in its place and the rest go on; exit 65" {
	node_start
	run --separate-stderr nunet-send - <<'IN'
{"be":"/node/ping","body":{"n":1}}
this is not json
{"body":{}}
{"be":"/node/nope"}
{"be":"/node/ping","body":{"n":5}}
IN
	assert_failure 65
	assert_equal "${#lines[@]}" 5
	assert_equal "$(jq -r .echo.n <<<"${lines[0]}")" 1
	assert_equal "$(jq -r .error.code <<<"${lines[1]}")" bad_request
	assert_equal "$(jq -r .error.code <<<"${lines[2]}")" bad_request
	assert_equal "$(jq -r .error.code <<<"${lines[3]}")" unknown_behavior
	assert_equal "$(jq -r .echo.n <<<"${lines[4]}")" 5
	assert_equal "${stderr_lines[0]}" "nunet-send: error: line 2: not JSON: Invalid literal at line 1, column 5 (while parsing 'this is not json')"
}

@test "an error answer: JSON on stdout, one line on stderr, exit 1" {
	node_start
	run --separate-stderr nunet-send /node/nope
	assert_failure 1
	assert_equal "$output" '{"error":{"code":"unknown_behavior","message":"no behavior '"'"'/node/nope'"'"' on this node"}}'
	assert_equal "$stderr" "nunet-send: error: unknown_behavior: no behavior '/node/nope' on this node"
}

@test "no node running: exit 69 with a clear message" {
	run --separate-stderr nunet-send /node/ping
	assert_failure 69
	assert_equal "$stderr" "nunet-send: error: no node is running in '$NUNET_HOME' (is 'nunet-node run' started?)"
}

@test "no answer within -t: exit 75" {
	# a listener that accepts and never answers stands in for a stuck node
	python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
print("up", flush=True)
c, _ = s.accept(); time.sleep(10)' "$NUNET_HOME/node.sock" >"$BATS_TEST_TMPDIR/up" &
	stuck=$!
	for i in $(seq 100); do grep -q up "$BATS_TEST_TMPDIR/up" && break; sleep 0.05; done
	run --separate-stderr nunet-send -t 0.3 /node/ping
	kill $stuck
	assert_failure 75
	assert_equal "$stderr" "nunet-send: error: no answer from the node within 300 ms"
}

@test "bad BODY-JSON and bad BEHAVIOR are refused before anything is sent" {
	node_start
	run --separate-stderr nunet-send /node/ping '{"a":'
	assert_failure 65
	assert_equal "${stderr:0:35}" "nunet-send: error: BODY-JSON: not J"
	run --separate-stderr nunet-send /node/ping '[1]'
	assert_failure 65
	assert_equal "$stderr" "nunet-send: error: BODY-JSON: expected an object, got a array"
	run --separate-stderr nunet-send node/ping
	assert_failure 64
	run --separate-stderr nunet-send -t abc /node/ping
	assert_failure 64
	run nunet-send -h
	assert_success
	assert_line --index 0 'usage: nunet-send [-t SECONDS] [--to ADDR] [--raw] [--home DIR] [--key FILE] [--trace ID] BEHAVIOR'
	assert_equal "$(nunet-send /node/info | jq .requests)" 1
}
