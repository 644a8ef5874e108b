#!/usr/bin/env bats
# Messaging between nodes: nunet-send --to a remote did, answers coming
# back, relay through a common neighbour (network namespaces), and every
# bad envelope a peer sends refused by the receiver.
load lib/common

declare -gA DID ADDR PID
# own NAME DID: make DID an owner of node NAME (before it starts)
own() {
	local cfg="$BATS_TEST_TMPDIR/$1/config.json"
	jq --arg d "$2" '.owners = [$d]' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg"
}
# envelope FROM TO BE [TS_OFFSET_MS]: an unsigned request as JSON
envelope() {
	local now=$(( $(date +%s%3N) + ${4:-0} ))
	jq -nc --arg f "$1" --arg t "$2" --arg b "$3" --argjson now "$now" --arg id "$(openssl rand -hex 16 2>/dev/null || od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" \
		'{v:1, type:"msg", id:$id, from:$f, to:$t, be:$b, ts:$now, exp:($now + 60000), body:{}}'
}

setup() {
	common_setup
	node_init "$BATS_TEST_TMPDIR/a"
	node_init "$BATS_TEST_TMPDIR/b"
	node_init "$BATS_TEST_TMPDIR/c"
}

@test "nunet-send --to a remote did reaches that node's behavior; the signed reply comes back" {
	own b "$(nunet-node --home "$BATS_TEST_TMPDIR/a" id)"
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	within 5 'test "$(peer_state a "${DID[b]}")" = alive'
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	run nunet-send --to "${DID[b]}" /node/info
	assert_success
	assert_equal "$(jq -r .did <<<"$output")" "${DID[b]}"
	run nunet-send --raw --to "${DID[b]}" /node/ping '{"n":7}'
	assert_success
	assert_equal "$(jq -r '.from, .to, .body.echo.n' <<<"$output")" "${DID[b]}
${DID[a]}
7"
	run test-tool env verify <<<"$output"
	assert_output ok
	# a stream of requests to the remote node, pipelined
	seq 200 | awk -v to="${DID[b]}" '{ printf "{\"to\":\"%s\",\"be\":\"/node/ping\",\"body\":{\"i\":%d}}\n", to, $1 }' >"$BATS_TEST_TMPDIR/req"
	run bash -c "nunet-send - <'$BATS_TEST_TMPDIR/req' | jq -s -c 'map(.echo.i) == [range(1;201)]'"
	assert_output true
}

@test "a remote node refuses a sender that is not its owner, except for /public/" {
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	within 5 'test "$(peer_state a "${DID[b]}")" = alive'
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	run --separate-stderr nunet-send --to "${DID[b]}" /node/info
	assert_failure 1
	assert_equal "$(jq -r .error.code <<<"$output")" unauthorized
	assert_equal "$stderr" "nunet-send: error: unauthorized: ${DID[a]} may not invoke /node/info on this node: no capability token"
	run nunet-send --to "${DID[b]}" /public/ping
	assert_success
}

@test "a did that is no peer: unavailable (69), saying so" {
	swarm_node a
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	run --separate-stderr nunet-send --to "$(nunet-node --home "$BATS_TEST_TMPDIR/c" id)" /public/ping
	assert_failure 69
	assert_equal "$stderr" "nunet-send: error: unavailable: no route to $(nunet-node --home "$BATS_TEST_TMPDIR/c" id): not a known peer"
}

@test "from a peer: forged, replayed, expired and unauthorized envelopes are each refused" {
	swarm_node b
	C=$(nunet-node --home "$BATS_TEST_TMPDIR/c" id)
	key="$BATS_TEST_TMPDIR/c/key"
	peer() { test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public "$@"; }
	# a good one first: answered
	good=$(envelope "$C" "${DID[b]}" /public/ping | test-tool env sign "$key")
	run peer 1 5000 <<<"$good"
	assert_success
	assert_equal "$(jq -r '.type, .to' <<<"$output")" "reply
$C"
	# forged: the body changed after signing
	forged=$(envelope "$C" "${DID[b]}" /public/ping | test-tool env sign "$key" | jq -c '.body.n = 1')
	run peer 1 5000 <<<"$forged"
	assert_equal "$(jq -r .body.code <<<"$output")" bad_signature
	# replayed: the same envelope twice (the first was answered above)
	run peer 1 5000 <<<"$good"
	assert_equal "$(jq -r '.type, .body.code' <<<"$output")" "error
replay"
	# expired
	old=$(envelope "$C" "${DID[b]}" /public/ping -120000 | test-tool env sign "$key")
	run peer 1 5000 <<<"$old"
	assert_equal "$(jq -r .body.code <<<"$output")" expired
	# unauthorized: c is not b's owner
	info=$(envelope "$C" "${DID[b]}" /node/info | test-tool env sign "$key")
	run peer 1 5000 <<<"$info"
	assert_equal "$(jq -r .body.code <<<"$output")" unauthorized
	# signed by c but claiming to come from b's own key: the signature fails
	spoof=$(envelope "${DID[b]}" "${DID[b]}" /node/info | test-tool env sign "$key")
	run peer 1 5000 <<<"$spoof"
	assert_equal "$(jq -r .body.code <<<"$output")" bad_signature
	# and every refusal was logged by the node
	assert_equal "$(grep -c "warn: peer $C: " "$BATS_TEST_TMPDIR/node.log")" 5
}

@test "a peer with another swarm key cannot even hand over an envelope" {
	swarm_node b
	C=$(nunet-node --home "$BATS_TEST_TMPDIR/c" id)
	nunet-node --home "$BATS_TEST_TMPDIR/x" init --new-swarm >/dev/null
	good=$(envelope "$C" "${DID[b]}" /public/ping | test-tool env sign "$BATS_TEST_TMPDIR/c/key")
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$BATS_TEST_TMPDIR/c/key" "$BATS_TEST_TMPDIR/x/swarm.key" 1 5000 <<<"$good"
	assert_failure 69
	assert_output --partial 'handshake failed'
}

# Three hosts: A and C each reach only B (two links, no forwarding).
netns_setup() {
	[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
	command -v ip >/dev/null || skip "no ip(8)"
	NS=nn5103$$
	ip netns add ${NS}a 2>/dev/null || skip "cannot make network namespaces"
	ip netns add ${NS}b
	ip netns add ${NS}c
	ip link add ${NS}ab type veth peer name ${NS}ba
	ip link add ${NS}cb type veth peer name ${NS}bc
	ip link set ${NS}ab netns ${NS}a
	ip link set ${NS}ba netns ${NS}b
	ip link set ${NS}bc netns ${NS}b
	ip link set ${NS}cb netns ${NS}c
	ip -n ${NS}a addr add 10.251.1.1/24 dev ${NS}ab
	ip -n ${NS}b addr add 10.251.1.2/24 dev ${NS}ba
	ip -n ${NS}b addr add 10.251.2.2/24 dev ${NS}bc
	ip -n ${NS}c addr add 10.251.2.3/24 dev ${NS}cb
	for n in a b c; do ip -n ${NS}$n link set lo up; done
	ip -n ${NS}a link set ${NS}ab up
	ip -n ${NS}b link set ${NS}ba up
	ip -n ${NS}b link set ${NS}bc up
	ip -n ${NS}c link set ${NS}cb up
	ip netns exec ${NS}b sysctl -qw net.ipv4.ip_forward=0
}

netns_start() {
	local name=$1 ns=$2 listen=$3 home="$BATS_TEST_TMPDIR/$1"
	shift 3
	local fifo="$BATS_TEST_TMPDIR/ready.$name"
	mkfifo "$fifo"
	ip netns exec "$ns" nunet-node --home "$home" run --ready-fd 3 --listen "$listen" "$@" \
		3>"$fifo" 2>>"$BATS_TEST_TMPDIR/node.log" &
	NODE_PIDS+=("$!")
	read -r -t 10 READY_LINE <"$fifo"
	DID[$name]=$(jq -r .did <<<"$READY_LINE")
	ADDR[$name]=$(jq -r .listen <<<"$READY_LINE")
}

teardown() {
	node_stop_all
	if [ -n "${NS:-}" ]; then
		for n in a b c; do ip netns del ${NS}$n 2>/dev/null || true; done
	fi
}

@test "relay: A reaches C through B when it cannot reach C directly (network namespaces)" {
	netns_setup
	own c "$(nunet-node --home "$BATS_TEST_TMPDIR/a" id)"
	netns_start b ${NS}b 0.0.0.0:0
	port=${ADDR[b]##*:}
	netns_start a ${NS}a 10.251.1.1:0 --bootstrap "${DID[b]}@10.251.1.2:$port"
	netns_start c ${NS}c 10.251.2.3:0 --bootstrap "${DID[b]}@10.251.2.2:$port"
	# A has no route to C ...
	run ip netns exec ${NS}a bash -c "exec 3<>/dev/tcp/10.251.2.3/${ADDR[c]##*:}"
	assert_failure
	# ... yet learns of it through B and keeps it alive by indirect probes
	within 5 'test "$(peer_state a "${DID[c]}")" = alive'
	sleep 2
	assert_equal "$(peer_state a "${DID[c]}")" alive
	assert_equal "$(nunet-node --home "$BATS_TEST_TMPDIR/a" peers | jq -r --arg d "${DID[c]}" 'select(.did == $d) | .direct, .via')" "false
${DID[b]}"
	# a request from A to C goes through B and C's signed reply comes back
	run env NUNET_HOME="$BATS_TEST_TMPDIR/a" nunet-send --raw --to "${DID[c]}" /node/info
	assert_success
	assert_equal "$(jq -r '.from, .body.did' <<<"$output")" "${DID[c]}
${DID[c]}"
	run test-tool env verify <<<"$output"
	assert_output ok
}

@test "bad input from the network: garbage, a stalled handshake, non-JSON and oversize lines" {
	jq '.max_line_bytes = 4096' "$BATS_TEST_TMPDIR/b/config.json" >"$BATS_TEST_TMPDIR/cfg" &&
		mv "$BATS_TEST_TMPDIR/cfg" "$BATS_TEST_TMPDIR/b/config.json"
	swarm_node b
	C=$(nunet-node --home "$BATS_TEST_TMPDIR/c" id)
	key="$BATS_TEST_TMPDIR/c/key"
	host=${ADDR[b]%:*} port=${ADDR[b]##*:}
	# 64 bytes that are no handshake: refused and logged, nothing written back
	exec 5<>/dev/tcp/$host/$port
	head -c 64 /dev/urandom >&5
	run timeout 5 cat <&5
	assert_success
	assert_output ''
	exec 5<&-
	grep -q "warn: swarm: peer 127.0.0.1:[0-9]*: handshake failed" "$BATS_TEST_TMPDIR/node.log"
	# half a hello, then silence: dropped at the handshake deadline (5 s)
	exec 6<>/dev/tcp/$host/$port
	head -c 10 /dev/urandom >&6
	run timeout 8 cat <&6
	assert_success
	exec 6<&-
	grep -q "handshake timed out" "$BATS_TEST_TMPDIR/node.log"
	# over the handshake: a line that is not JSON gets a parse error; the
	# connection goes on and the next request is answered
	good=$(envelope "$C" "${DID[b]}" /public/ping | test-tool env sign "$key")
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public 2 5000 <<<"this is not json
$good"
	assert_success
	assert_equal "$(jq -r '.type + " " + (.body.code // "")' <<<"$output")" "error parse
reply "
	# a line over max_line_bytes is dropped (and logged); the next is answered
	big=$(envelope "$C" "${DID[b]}" /public/ping | jq -c --arg pad "$(head -c 6000 /dev/zero | tr '\0' x)" '.body.pad = $pad' | test-tool env sign "$key")
	good=$(envelope "$C" "${DID[b]}" /public/ping | test-tool env sign "$key")
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public 1 5000 <<<"$big
$good"
	assert_success
	assert_equal "$(jq -r .type <<<"$output")" reply
	grep -q "warn: peer $C: oversize: dropped a line over 4096 bytes" "$BATS_TEST_TMPDIR/node.log"
	# and the node still serves its control socket
	run env NUNET_HOME="$BATS_TEST_TMPDIR/b" nunet-send /node/ping
	assert_success
}
