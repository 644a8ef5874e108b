#!/usr/bin/env bats
# Bad input on the control socket: each gets a signed error envelope
# {"code","message"}, is logged, and the node goes on serving everyone else.
load lib/common

setup() {
	common_setup
	node_init
	node_start
	SOCK="$NUNET_HOME/node.sock"
	DID=$(nunet-node id)
}

# envelope [JQ-EDIT]: a fresh request from the node's owner, signed after EDIT.
envelope() {
	local now id
	now=$(date +%s%3N)
	id=$(head -c 16 /dev/urandom | xxd -p)
	jq -cn --arg did "$DID" --argjson now "$now" --arg id "$id" \
		'{v:1,type:"msg",id:$id,from:$did,to:"local",be:"/node/ping",ts:$now,exp:($now+60000),body:{}}' |
		jq -c "${1:-.}" | test-tool env sign "$NUNET_HOME/key"
}

# answer LINE...: send raw lines on one connection, print the answers.
answer() {
	printf '%s\n' "$@" | rawsock -n $# "$SOCK"
}

# check_error CODE: $output is one signed error envelope with that code,
# the node logged it, and the node still answers.
check_error() {
	assert_equal "$(jq -r .type <<<"$output")" error
	assert_equal "$(jq -r .body.code <<<"$output")" "$1"
	[ -n "$(jq -r .body.message <<<"$output")" ]
	assert_equal "$(jq -r .from <<<"$output")" "$DID"
	run test-tool env verify <<<"$output"
	assert_output ok
	run grep -c ": $1: " "$BATS_TEST_TMPDIR/node.log"
	[ "$output" -ge 1 ]
	run nunet-send /node/ping
	assert_success
}

@test "a line that is not JSON: parse" {
	run answer 'hello node'
	check_error parse
}

@test "a line over the cap: oversize, and the next line on the same connection is served" {
	big=$(head -c 1100000 /dev/zero | tr '\0' 'x')
	good=$(envelope)
	run answer "{\"pad\":\"$big\"}" "$good"
	assert_equal "${#lines[@]}" 2
	assert_equal "$(jq -r .body.code <<<"${lines[0]}")" oversize
	assert_equal "$(jq -r .type <<<"${lines[1]}")" reply
	output=${lines[0]}
	check_error oversize
}

@test "JSON that is not an object: not_object" {
	run answer '[1,2,3]'
	check_error not_object
}

@test "missing and mistyped fields: bad_field, naming the field" {
	run answer "$(envelope 'del(.exp)')"
	assert_equal "$(jq -r .body.message <<<"$output")" 'bad envelope: exp: missing'
	check_error bad_field
	run answer "$(envelope '.ts="yesterday"')"
	assert_equal "$(jq -r .body.message <<<"$output")" 'bad envelope: ts: expected an integer'
	check_error bad_field
	run answer "$(envelope '.body="text"')"
	check_error bad_field
}

@test "a wrong signature: bad_signature" {
	run answer "$(envelope | jq -c '.sig = ("A" * 86 + "==")')"
	check_error bad_signature
}

@test "a body altered after signing: bad_signature" {
	run answer "$(envelope | jq -c '.body.injected = true')"
	check_error bad_signature
}

@test "an envelope signed by another key that claims to be the owner: bad_signature" {
	test-tool key gen "$BATS_TEST_TMPDIR/other" >/dev/null
	now=$(date +%s%3N)
	forged=$(jq -cn --arg did "$DID" --argjson now "$now" \
		'{v:1,type:"msg",id:"00112233445566778899aabbccddeeff",from:$did,to:"local",be:"/node/info",ts:$now,exp:($now+60000),body:{}}' |
		test-tool env sign "$BATS_TEST_TMPDIR/other")
	run answer "$forged"
	check_error bad_signature
}

@test "an expired envelope: expired" {
	run answer "$(envelope '.ts -= 120000 | .exp -= 120000')"
	check_error expired
}

@test "the same envelope sent twice: replay, on the same or another connection" {
	e=$(envelope)
	run answer "$e" "$e"
	assert_equal "$(jq -r .type <<<"${lines[0]}")" reply
	output=${lines[1]}
	check_error replay
	run answer "$e"
	check_error replay
}

@test "an unknown behavior: unknown_behavior" {
	run answer "$(envelope '.be = "/node/selfdestruct"')"
	assert_equal "$(jq -r .body.message <<<"$output")" "no behavior '/node/selfdestruct' on this node"
	check_error unknown_behavior
}

@test "a stranger's key: unauthorized, except for /public/ behaviors" {
	test-tool key gen "$BATS_TEST_TMPDIR/stranger" >/dev/null
	run nunet-send --key "$BATS_TEST_TMPDIR/stranger" /node/info
	assert_failure 1
	assert_output --partial '"code":"unauthorized"'
	run nunet-send --key "$BATS_TEST_TMPDIR/stranger" /public/ping
	assert_success
	assert_equal "$(jq -r .pong <<<"$output")" true
	output=$(nunet-send --key "$BATS_TEST_TMPDIR/stranger" --raw /node/info || true)
	check_error unauthorized
}

@test "an owner listed in config.json is authorized after SIGHUP" {
	other=$(test-tool key gen "$BATS_TEST_TMPDIR/owner2")
	jq --arg d "$other" '.owners = [$d]' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	kill -HUP "$NODE_PID"
	for i in $(seq 100); do
		nunet-send --key "$BATS_TEST_TMPDIR/owner2" /node/info >/dev/null 2>&1 && break
	done
	run nunet-send --key "$BATS_TEST_TMPDIR/owner2" /node/info
	assert_success
}

@test "an envelope for another actor: unavailable (no route)" {
	run answer "$(envelope '.to = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"')"
	check_error unavailable
}

@test "a client that sends half a line and hangs does not stop others, and is dropped" {
	jq '.client_timeout_ms = 300' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	kill -HUP "$NODE_PID"
	printf '{"v":1,"type":"msg","id":' | rawsock --hang "$SOCK" >"$BATS_TEST_TMPDIR/hang.out" &
	hang=$!
	for i in $(seq 100); do grep -q connected "$BATS_TEST_TMPDIR/hang.out" && break; sleep 0.05; done
	run nunet-send /node/ping
	assert_success
	for i in $(seq 100); do
		grep -q 'dropped after' "$BATS_TEST_TMPDIR/node.log" && break
		sleep 0.05
	done
	kill "$hang"
	run grep -c 'with an unfinished line' "$BATS_TEST_TMPDIR/node.log"
	assert_output 1
	run nunet-send /node/ping
	assert_success
}

@test "200 clients at once are all answered" {
	pids=()
	for i in $(seq 200); do
		nunet-send /node/ping "{\"i\":$i}" >"$BATS_TEST_TMPDIR/out.$i" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
	run bash -c "cat $BATS_TEST_TMPDIR/out.* | jq -s 'map(.echo.i) | sort | . == [range(1;201)]'"
	assert_output true
	run nunet-send /node/info
	assert_success
}

@test "a client of another uid is refused by SO_PEERCRED" {
	skip_unless 'command -v setpriv' 'setpriv (util-linux) is not installed'
	[ "$(id -u)" -eq 0 ] || skip 'needs root to become another uid'
	# a node whose socket uid 65534 can reach, so only SO_PEERCRED stands
	open=$(mktemp -d /tmp/nunet-peercred.XXXXXX)
	chmod 711 "$open"
	node_init "$open/home"
	node_start "$open/home"
	chmod 711 "$open/home"
	chmod 666 "$open/home/node.sock"
	run setpriv --reuid=65534 --regid=65534 --clear-groups rawsock -n 1 "$open/home/node.sock" </dev/null
	node_stop_all
	rm -rf "$open"
	assert_success
	assert_equal "$(jq -r .body.code <<<"$output")" unauthorized
	assert_equal "$(jq -r .body.message <<<"$output")" "peer uid 65534 is not the node's user (uid 0)"
}

@test "more clients than max_clients: busy, and the others keep being served" {
	jq '.max_clients = 2' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	kill -HUP "$NODE_PID"
	: | rawsock --hang "$SOCK" >"$BATS_TEST_TMPDIR/h1" &
	h1=$!
	: | rawsock --hang "$SOCK" >"$BATS_TEST_TMPDIR/h2" &
	h2=$!
	for i in $(seq 100); do grep -q connected "$BATS_TEST_TMPDIR/h1" && grep -q connected "$BATS_TEST_TMPDIR/h2" && break; sleep 0.05; done
	run rawsock -n 1 "$SOCK" </dev/null
	kill $h1 $h2
	check_error busy
}
