#!/usr/bin/env bats
# Envelopes: signing over "nunet:env:" + JCS, verification, expiry, replay.
load lib/common

SEED=9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60

setup() {
	common_setup
	DID=$(test-tool did seed $SEED | cut -d' ' -f1)
	NOW=$(date +%s%3N)
}

# envelope [JQ-EDIT]: a fresh unsigned envelope from the test key.
envelope() {
	jq -cn --arg did "$DID" --argjson now "$NOW" \
		'{v:1,type:"msg",id:"0123456789abcdef0123456789abcdef",from:$did,to:"local",be:"/node/ping",ts:$now,exp:($now+60000),body:{n:1}}'
}

@test "a signed envelope verifies" {
	run bash -c "$(declare -f envelope); DID=$DID NOW=$NOW envelope | test-tool env sign $SEED | test-tool env verify"
	assert_success
	assert_output ok
}

@test "the signature is ed25519 over nunet:env: and the canonical form without sig" {
	signed=$(envelope | test-tool env sign $SEED)
	sig=$(jq -r .sig <<<"$signed")
	# canonical form without sig, computed independently with jq -S -c
	# (the envelope holds only ASCII and integers, where jq's sort and JCS agree)
	msg=$(jq -cS 'del(.sig)' <<<"$signed")
	pk=$(test-tool did pk "$DID")
	# verify with OpenSSL, an independent ed25519 implementation
	skip_unless 'openssl version' 'openssl is not installed'
	printf '302a300506032b6570032100%s' "$pk" | xxd -r -p >"$BATS_TEST_TMPDIR/pk.der"
	openssl pkey -pubin -inform DER -in "$BATS_TEST_TMPDIR/pk.der" -out "$BATS_TEST_TMPDIR/pk.pem"
	printf '%s' "nunet:env:$msg" >"$BATS_TEST_TMPDIR/msg"
	base64 -d <<<"$sig" >"$BATS_TEST_TMPDIR/sig"
	run openssl pkeyutl -verify -pubin -inkey "$BATS_TEST_TMPDIR/pk.pem" -rawin \
		-in "$BATS_TEST_TMPDIR/msg" -sigfile "$BATS_TEST_TMPDIR/sig"
	assert_success
	assert_output --partial 'Signature Verified Successfully'
	printf '%s' "nunet:env:$msg " >"$BATS_TEST_TMPDIR/msg"
	run openssl pkeyutl -verify -pubin -inkey "$BATS_TEST_TMPDIR/pk.pem" -rawin \
		-in "$BATS_TEST_TMPDIR/msg" -sigfile "$BATS_TEST_TMPDIR/sig"
	assert_failure	# and the signed bytes are exactly the canonical form test-tool prints
	assert_equal "$(jq -c 'del(.sig)' <<<"$signed" | test-tool canon)" "$msg"
}

@test "a body altered after signing fails as bad_signature" {
	run bash -c "$(declare -f envelope); DID=$DID NOW=$NOW envelope | test-tool env sign $SEED | jq -c '.body.n=2' | test-tool env verify"
	assert_failure
	assert_output --partial 'bad_signature'
}

@test "a signature by another key fails as bad_signature" {
	other=0000000000000000000000000000000000000000000000000000000000000001
	run bash -c "$(declare -f envelope); DID=$DID NOW=$NOW envelope | test-tool env sign $other | test-tool env verify"
	assert_failure
	assert_output --partial 'bad_signature'
	assert_output --partial 'is not signed by'
}

@test "an expired envelope fails as expired, even correctly signed" {
	signed=$(envelope | jq -c ".ts=$((NOW-120000)) | .exp=$((NOW-60000))" | test-tool env sign $SEED)
	run test-tool env verify <<<"$signed"
	assert_failure
	assert_output --partial 'expired:'
}

@test "an envelope from the future or living too long fails as bad_time" {
	signed=$(envelope | jq -c ".ts=$((NOW+600000)) | .exp=$((NOW+660000))" | test-tool env sign $SEED)
	run test-tool env verify <<<"$signed"
	assert_failure
	assert_output --partial 'bad_time'
	signed=$(envelope | jq -c ".exp=$((NOW+86400000))" | test-tool env sign $SEED)
	run test-tool env verify <<<"$signed"
	assert_failure
	assert_output --partial 'bad_time'
}

@test "missing and mistyped fields fail as bad_field, naming the field" {
	for edit in 'del(.id)' '.ts="now"' '.v=2' '.type="shout"' '.be="node/info"' '.body=[1]' '.from="did:web:x"' '.cap="all"' '.id="short"'; do
		signed=$(envelope | jq -c "$edit" | test-tool env sign $SEED)
		run test-tool env verify <<<"$signed"
		assert_failure
		assert_output --partial 'bad_field'
	done
	signed=$(envelope | test-tool env sign $SEED | jq -c 'del(.sig)')
	run test-tool env verify <<<"$signed"
	assert_output --partial 'sig: missing'
}

@test "JSON that is not an object fails as not_object" {
	run test-tool env verify <<<'[1,2,3]'
	assert_failure
	assert_output --partial 'not_object'
}

@test "replay cache: the same from+id is seen until its exp, then forgotten" {
	run test-tool replay 100 <<'IN'
did:a id1 2000 1000
did:a id1 2000 1500
did:b id1 2000 1500
did:a id1 3000 2500
IN
	assert_output $'new\nseen\nnew\nnew\nsize 2'
}

@test "replay cache: bounded; full means refused, not forgotten" {
	run test-tool replay 2 <<'IN'
did:a id1 9000 1000
did:a id2 9000 1000
did:a id3 9000 1000
did:a id1 9000 1000
did:a id4 9000 9500
IN
	assert_output $'new\nnew\nfull\nseen\nnew\nsize 1'
}

@test "an answer line written from the request's fields is the bytes of the jv route" {
	ID=fedcba9876543210fedcba9876543210
	# with and without be, trace and an escaped, non-ASCII body; no re in a
	# request, a re in the answer
	for edit in . '.trace="abc123"' 'del(.be) | .type="event" | .be="/e/\u00e9"' \
		'.trace=5' '.to="did:key:z6Mkq\"x"'; do
		req=$(envelope | jq -c "$edit" | test-tool env sign $SEED)
		run test-tool env answer $SEED $ID $NOW '{"s":"tab\there \"q\" é ☃ \u0001","n":[1.5,-0,1e21,true,null],"a":{"z":1,"b":2}}' <<<"$req"
		assert_success
		assert_equal "${lines[0]}" "${lines[1]}"
		line=${lines[0]}
		# and it is a valid envelope: canonical, signed, answering the request
		run test-tool env verify $NOW <<<"$line"
		assert_output ok
		assert_equal "$(jq -r '.re + " " + .type + " " + (.ts|tostring)' <<<"$line")" \
			"0123456789abcdef0123456789abcdef reply $NOW"
	done
}

@test "a request line written from its fields is the bytes of the jv route" {
	ID=fedcba9876543210fedcba9876543210
	body='{"s":"tab\there \"q\" é ☃ \u0001","n":[1.5,-0,1e21,true,null],"a":{"z":1,"b":2}}'
	for args in "local /node/ping" "did:key:z6Mkq\"x /public/é" "did:key:zAll /broadcast/x"; do
		# shellcheck disable=SC2086
		set -- $args
		for trace in "" 0af1; do
			run test-tool env request $SEED $ID $NOW "$1" "$2" "$body" ${trace:+"$trace"}
			assert_success
			assert_equal "${lines[0]}" "${lines[1]}"
			line=${lines[0]}
			run test-tool env verify $NOW <<<"$line"
			assert_output ok
		done
	done
	# without be (an event-like envelope has one; nn_env_new allows none)
	run test-tool env request $SEED $ID $NOW local "" '{}'
	assert_success
	assert_equal "${lines[0]}" "${lines[1]}"
}
