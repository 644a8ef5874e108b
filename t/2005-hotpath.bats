#!/usr/bin/env bats
# The message hot path end to end: a node reads an envelope line it can
# scan without libjq (lib/jscan.h) and decides as the full path does;
# lines the scanner leaves alone (whitespace, other key orders, escapes,
# repeated keys) are served by the full path with the same answers.  Over
# the swarm, a forwarding node passes a line on as it came and the
# receiver verifies it, whichever path reads it there.
load lib/common

# envelope [TO] [BE]: a fresh signed request from the node's own key
envelope() {
	local now id
	now=$(date +%s%3N)
	id=$(head -c 16 /dev/urandom | xxd -p)
	jq -cn --arg did "$DID" --arg to "${1:-local}" --arg be "${2:-/node/ping}" --argjson now "$now" \
		--arg id "$id" \
		'{v:1,type:"msg",id:$id,from:$did,to:$to,be:$be,ts:$now,exp:($now+60000),body:{"n":7,"s":"x"}}' |
		test-tool env sign "$HOME_A/key"
}

# variants LINE: the same signed envelope spelled five ways, one a line
variants() {
	printf '%s\n' "$1"					# canonical: the fast path
	sed 's/,"/, "/g' <<<"$1"				# whitespace
	jq -c '. as $e | {sig: $e.sig} + ($e | del(.sig))' <<<"$1"	# sig first
	sed 's|"be":"/|"be":"\\/|' <<<"$1"			# an escape
	sed 's/"body":{"n":7,"s":"x"}/"body":{"s":"x","n":7}/' <<<"$1"	# body keys unsorted
}

# answers_to SOCK LINE...: the answers, one a line
answers_to() {
	local sock=$1
	shift
	printf '%s\n' "$@" | rawsock -n $# "$sock"
}

setup() {
	common_setup
	HOME_A="$BATS_TEST_TMPDIR/a"
	node_init "$HOME_A"
	DID=$(nunet-node --home "$HOME_A" id)
}

@test "hot path: every spelling of a signed request is answered alike, and its reply verifies" {
	node_start "$HOME_A"
	mapfile -t lines < <(for i in 1 2 3 4 5; do variants "$(envelope)" | sed -n "${i}p"; done)
	run answers_to "$HOME_A/node.sock" "${lines[@]}"
	assert_success
	assert_equal "${#lines[@]}" 5
	for l in "${lines[@]}"; do
		assert_equal "$(jq -r '.type, .body.echo.n, .body.echo.s' <<<"$l")" "reply
7
x"
		run test-tool env verify <<<"$l"
		assert_output ok
	done
}

@test "hot path: an altered body, a repeated key and a replay are refused as by the full path" {
	node_start "$HOME_A"
	good=$(envelope)
	altered=$(sed 's/"n":7/"n":8/' <<<"$good")
	repeated="${good%\}},\"to\":\"$DID\"}"
	# the repeated "to" (jq keeps the last) is not what was signed
	run answers_to "$HOME_A/node.sock" "$altered" "$repeated" "$good" "$good" "$(sed 's/,"/, "/g' <<<"$good")"
	assert_success
	assert_equal "$(jq -r '.type + " " + (.body.code // "-")' <<<"$output")" "error bad_signature
error bad_signature
reply -
error replay
error replay"
}

@test "hot path: a forwarding node passes every spelling on as it came; the receiver verifies it" {
	node_init "$BATS_TEST_TMPDIR/b"
	node_start "$HOME_A" --listen 127.0.0.1:0
	A=$(jq -r .listen <<<"$READY_LINE")
	node_start "$BATS_TEST_TMPDIR/b" --listen 127.0.0.1:0 --bootstrap "$DID@$A"
	B=$(jq -r .did <<<"$READY_LINE")
	local end=$(( $(date +%s) + 10 ))
	until nunet-node --home "$HOME_A" peers | grep -q '"state":"alive"'; do
		[ "$(date +%s)" -lt "$end" ] || fail "b never became alive"
		sleep 0.1
	done
	mapfile -t lines < <(for i in 1 2 3 4 5; do variants "$(envelope "$B" /public/ping)" | sed -n "${i}p"; done)
	altered=$(envelope "$B" /public/ping | sed 's/"n":7/"n":8/')
	run answers_to "$HOME_A/node.sock" "${lines[@]}" "$altered"
	assert_success
	mapfile -t got <<<"$output"
	assert_equal "${#got[@]}" 6
	for i in 0 1 2 3 4; do
		assert_equal "$(jq -r '.type, .from, .body.echo.n' <<<"${got[$i]}")" "reply
$B
7"
		run test-tool env verify <<<"${got[$i]}"
		assert_output ok
	done
	# altered after signing: b refuses it (a cannot tell, and does not alter it)
	assert_equal "$(jq -r '.from, .body.code' <<<"${got[5]}")" "$B
bad_signature"
}

@test "hot path: nunet-send - prints what the full path prints, for canonical and other request lines" {
	node_start "$HOME_A"
	export NUNET_HOME="$HOME_A"
	run nunet-send - < <(printf '%s\n' '{"be":"/node/ping","body":{"a":[1,{"b":"\u00e9"}],"z":"\"q\""}}' \
		'{"body":{"z":"\"q\"","a":[1,{"b":"é"}]}, "be":"/node/ping"}' '{"be":"/node/ping"}' \
		'{"to":"local","be":"/node/ping","body":{"n":1.5}}')
	assert_success
	assert_equal "$(jq -c .echo <<<"$output")" '{"a":[1,{"b":"é"}],"z":"\"q\""}
{"a":[1,{"b":"é"}],"z":"\"q\""}
{}
{"n":1.5}'
	run nunet-send --raw - <<<'{"be":"/node/ping","body":{"k":"v"}}'
	assert_success
	raw=$output
	assert_equal "$(jq -c .body.echo <<<"$raw")" '{"k":"v"}'
	run test-tool env verify <<<"$raw"
	assert_output ok
}
