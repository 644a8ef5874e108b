#!/usr/bin/env bats
# Capability tokens: nunet-node cap grant|delegate|list|revoke, and a remote
# node's authorizer: tokens rooted in its owner allow, everything else is
# refused (no token, wrong audience, not covered, over-delegated, widened,
# expired, revoked, rooted elsewhere).
load lib/common

declare -gA DID ADDR
envelope() {	# FROM TO BE CAPS-JSON
	local now=$(date +%s%3N)
	jq -nc --arg f "$1" --arg t "$2" --arg b "$3" --argjson cap "$4" --argjson now "$now" \
		--arg id "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" \
		'{v:1, type:"msg", id:$id, from:$f, to:$t, be:$b, ts:$now, exp:($now + 60000), cap:$cap, body:{}}'
}
# call WHO BE CAPS-JSON: WHO's identity invokes BE on node b over the swarm;
# prints the answer's type and, for errors, its message
call() {
	local who=$1 key="$BATS_TEST_TMPDIR/$1/key"
	envelope "$(nunet-node --home "$BATS_TEST_TMPDIR/$who" id)" "${DID[b]}" "$2" "$3" |
		test-tool env sign "$key" |
		test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public 1 5000 |
		jq -r 'if .type == "reply" then "reply" else "error: " + .body.message end'
}

setup() {
	common_setup
	for n in b u v w; do node_init "$BATS_TEST_TMPDIR/$n"; done
	U=$(nunet-node --home "$BATS_TEST_TMPDIR/u" id)
	V=$(nunet-node --home "$BATS_TEST_TMPDIR/v" id)
	W=$(nunet-node --home "$BATS_TEST_TMPDIR/w" id)
}

start_b() {
	node_start "$BATS_TEST_TMPDIR/b" --listen 127.0.0.1:0
	DID[b]=$(jq -r .did <<<"$READY_LINE")
	ADDR[b]=$(jq -r .listen <<<"$READY_LINE")
}

@test "cap grant prints a signed token; delegate only narrows; list shows what was issued" {
	run nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$U" --cap /node --expiry 24h --depth 1
	assert_success
	echo "$output" >"$BATS_TEST_TMPDIR/tok"
	B=$(nunet-node --home "$BATS_TEST_TMPDIR/b" id)
	assert_equal "$(jq -c '[.iss, .aud, .cap, .depth]' <<<"$output")" "[\"$B\",\"$U\",[\"/node\"],1]"
	exp=$(jq .exp <<<"$output")
	now=$(date +%s%3N)
	(( exp > now + 86000000 && exp <= now + 86400000 ))
	# narrowing is fine, widening is refused, and depth runs out
	run nunet-node --home "$BATS_TEST_TMPDIR/u" cap delegate "$BATS_TEST_TMPDIR/tok" "$V" --cap /node/info --expiry 1h
	assert_success
	echo "$output" >"$BATS_TEST_TMPDIR/tok2"
	assert_equal "$(jq -r '.parent.nonce == input.nonce' "$BATS_TEST_TMPDIR/tok2" "$BATS_TEST_TMPDIR/tok")" true
	run --separate-stderr nunet-node --home "$BATS_TEST_TMPDIR/u" cap delegate "$BATS_TEST_TMPDIR/tok" "$V" --cap /deploy
	assert_failure 1
	assert_equal "$stderr" "nunet-node: error: delegation widens its parent: '/deploy' is not granted by it"
	run --separate-stderr nunet-node --home "$BATS_TEST_TMPDIR/v" cap delegate "$BATS_TEST_TMPDIR/tok2" "$W" --cap /node/info
	assert_failure 1
	assert_equal "$stderr" "nunet-node: error: the parent token may not be delegated (depth 0)"
	# only the holder's key can delegate
	run --separate-stderr nunet-node --home "$BATS_TEST_TMPDIR/w" cap delegate "$BATS_TEST_TMPDIR/tok" "$V" --cap /node
	assert_failure 1
	run nunet-node --home "$BATS_TEST_TMPDIR/b" cap list
	assert_success
	assert_equal "$(jq -c '[.aud, .cap, .revoked]' <<<"$output")" "[\"$U\",[\"/node\"],false]"
	# usage errors
	run nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$U"
	assert_failure 64
	run nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$U" --cap node
	assert_failure 64
	run nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$U" --cap /node --expiry soon
	assert_failure 64
	run nunet-node --home "$BATS_TEST_TMPDIR/b" cap revoke nope
	assert_failure 64
	run nunet-node --home "$BATS_TEST_TMPDIR/b" cap frobnicate
	assert_failure 64
}

@test "a remote sender needs a token rooted in the node's owner that covers the behavior" {
	start_b
	nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$U" --cap /node --depth 1 >"$BATS_TEST_TMPDIR/tok"
	tok=$(cat "$BATS_TEST_TMPDIR/tok")
	assert_equal "$(call u /node/info "[$tok]")" reply
	assert_equal "$(call u /node/info '[]')" "error: $U may not invoke /node/info on this node: no capability token"
	assert_equal "$(call u /alloc/list "[$tok]")" "error: $U may not invoke /alloc/list on this node: capability token does not cover /alloc/list"
	# someone else presenting u's token
	assert_equal "$(call v /node/info "[$tok]")" "error: $V may not invoke /node/info on this node: capability token was granted to $U, not to the sender"
	# a token u issued itself is rooted in u, not in b's owner
	self=$(nunet-node --home "$BATS_TEST_TMPDIR/u" cap grant "$V" --cap /node)
	assert_equal "$(call v /node/info "[$self]")" "error: $V may not invoke /node/info on this node: capability chain is rooted in $U, not in an owner of this node"
}

@test "delegation: v acts on u's grant, only within it; over-delegated and widened chains are refused" {
	start_b
	nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$U" --cap /node --depth 1 >"$BATS_TEST_TMPDIR/tok"
	tok2=$(nunet-node --home "$BATS_TEST_TMPDIR/u" cap delegate "$BATS_TEST_TMPDIR/tok" "$V" --cap /node/info)
	assert_equal "$(call v /node/info "[$tok2]")" reply
	assert_equal "$(call v /node/ping "[$tok2]")" "error: $V may not invoke /node/ping on this node: capability token does not cover /node/ping"
	# over-delegated: v delegates its depth-0 token anyway (signed by hand)
	over=$(jq -c --arg w "$W" --argjson p "$tok2" '{v:1, iss:$p.aud, aud:$w, cap:["/node/info"], exp:$p.exp, depth:0,
		nonce:"0123456789abcdef0123456789abcdef", parent:$p}' <<<'{}' | test-tool captoken sign "$BATS_TEST_TMPDIR/v/key")
	assert_equal "$(call w /node/info "[$over]")" "error: $W may not invoke /node/info on this node: over-delegated: a token of depth 0 was delegated again at depth 0"
	# widened: u hands v more than u holds (signed by hand)
	wide=$(jq -c --arg v "$V" --argjson p "$(cat "$BATS_TEST_TMPDIR/tok")" '{v:1, iss:$p.aud, aud:$v, cap:["/alloc"], exp:$p.exp, depth:0,
		nonce:"00112233445566778899aabbccddeeff", parent:$p}' <<<'{}' | test-tool captoken sign "$BATS_TEST_TMPDIR/u/key")
	assert_equal "$(call v /alloc/list "[$wide]")" "error: $V may not invoke /alloc/list on this node: delegation widens its parent: '/alloc' is not granted by it"
	# a token altered after signing
	forged=$(jq -c '.cap = ["/"]' <<<"$tok2")
	[[ $(call v /node/ping "[$forged]") == "error: $V may not invoke /node/ping on this node: capability token "*": bad signature" ]]
}

@test "expired tokens are refused; a revocation takes effect at once, down the chain" {
	start_b
	nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$U" --cap /node --depth 1 --expiry 1s >"$BATS_TEST_TMPDIR/short"
	nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$U" --cap /node --depth 1 >"$BATS_TEST_TMPDIR/tok"
	tok2=$(nunet-node --home "$BATS_TEST_TMPDIR/u" cap delegate "$BATS_TEST_TMPDIR/tok" "$V" --cap /node/info)
	sleep 1.2
	[[ $(call u /node/info "[$(cat "$BATS_TEST_TMPDIR/short")]") == "error: $U may not invoke /node/info on this node: capability token "*" expired" ]]
	assert_equal "$(call v /node/info "[$tok2]")" reply
	run nunet-node --home "$BATS_TEST_TMPDIR/b" cap revoke "$(jq -r .nonce "$BATS_TEST_TMPDIR/tok")"
	assert_success
	assert_equal "$(call v /node/info "[$tok2]")" "error: $V may not invoke /node/info on this node: capability token $(jq -r .nonce "$BATS_TEST_TMPDIR/tok") was revoked"
	assert_equal "$(nunet-node --home "$BATS_TEST_TMPDIR/b" cap list | jq -r 'select(.revoked) | .nonce')" "$(jq -r .nonce "$BATS_TEST_TMPDIR/tok")"
}

@test "nunet-send --cap carries a token: the remote node grants what the token covers, through the swarm" {
	start_b
	node_init "$BATS_TEST_TMPDIR/a"
	node_start "$BATS_TEST_TMPDIR/a" --listen 127.0.0.1:0 --bootstrap "${DID[b]}@${ADDR[b]}"
	A=$(jq -r .did <<<"$READY_LINE")
	for i in $(seq 50); do
		nunet-node --home "$BATS_TEST_TMPDIR/a" peers | grep -q '"state":"alive"' && break
		sleep 0.1
	done
	nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$A" --cap /node/info >"$BATS_TEST_TMPDIR/tok"
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	run nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/tok" /node/info
	assert_success
	assert_equal "$(jq -r .did <<<"$output")" "${DID[b]}"
	run --separate-stderr nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/tok" /node/ping
	assert_failure 1
	assert_equal "$stderr" "nunet-send: error: unauthorized: $A may not invoke /node/ping on this node: capability token does not cover /node/ping"
	run --separate-stderr nunet-send --to "${DID[b]}" /node/info
	assert_failure 1
	run nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/nothing" /node/info
	assert_failure 74
}
