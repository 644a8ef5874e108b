#!/usr/bin/env bats
# The hot path's scanner (lib/jscan.h, nn_env_scan in lib/env.h) beside the
# full path (libjq, nn_env_verify_head), on crafted lines: `test-tool
# envscan NOW` says which path decides a forward (no signature check) and
# a delivery (signature checked), and fails with MISMATCH where the two
# paths would read or decide differently (t/fuzz/envscan-oracle.h).
load lib/common

NOW=1800000000000	# the corpus envelopes' ts is NOW - 1000

setup() {
	common_setup
	MSG=$(head -1 "$NUNET_SRC/t/fuzz/corpus/envscan/msg-signed")
}

# scan LINE...: one verdict line per input line
scan() {
	printf '%s\n' "$@" | test-tool envscan "$NOW"
}

@test "envscan: a signed canonical envelope takes the fast path for forwarding and for its signature" {
	run scan "$MSG" "$(head -1 "$NUNET_SRC/t/fuzz/corpus/envscan/reply-signed")"
	assert_success
	assert_line --index 0 'scan=ok canonical=1 fwd=fast sig=fast'
	assert_line --index 1 'scan=ok canonical=1 fwd=fast sig=fast'
}

@test "envscan: whitespace, escapes and key order are read, but the signature goes to the full path" {
	run scan "$(sed 's/,"/, "/g' <<<"$MSG")" \
		"$(sed 's/{"be"/{ "be"/; s/"v":1}/"v":1 }/' <<<"$MSG")" \
		"$(printf '%s' "$MSG" | tr -d '\n' | sed 's/,"to"/,\t"to"/')" \
		"$(jq -c '. as $e | {sig: $e.sig} + ($e | del(.sig))' <<<"$MSG")" \
		"$(sed 's|"be":"/node/info"|"be":"\\/node\\/info"|' <<<"$MSG")"
	assert_success
	assert_line --index 0 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 1 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 2 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 3 'scan=ok canonical=0 fwd=fast sig=full'
	# an escaped value is never read from the line: the full path reads it
	assert_line --index 4 'scan=ok canonical=0 fwd=full sig=full'
}

@test "envscan: a repeated or escaped top-level key is left to the full path" {
	run scan "${MSG%\}},\"to\":\"elsewhere\"}" \
		"$(sed 's/"to":/"t\\u006f":/' <<<"$MSG")" \
		"$(sed 's/"body":{/"body":{"a":1,"a":2,/' <<<"$MSG")"
	assert_success
	assert_line --index 0 'scan=full canonical=0 fwd=full sig=full'
	assert_line --index 1 'scan=full canonical=0 fwd=full sig=full'
	# repeated inside the body: read, but not canonical (the writer keeps one)
	assert_line --index 2 'scan=ok canonical=0 fwd=fast sig=full'
}

@test "envscan: nested members, strings and numbers the canonical writer spells otherwise" {
	# b BODY: the envelope with that body (the seed's body holds no brace)
	local pre=${MSG%%\"body\":*} rest=${MSG#*\"body\":\{}
	rest=${rest#*\}}
	b() { printf '%s"body":%s%s' "$pre" "$1" "$rest"; }
	run scan "$(b '{"b":1,"a":2}')" "$(b '{"a":{"z":[1,{"x":true,"y":null}]}}')" \
		"$(b '{"s":"\u0041"}')" "$(b '{"s":"\u001f\n\"\\"}')" "$(b '{"s":"\u001F"}')" \
		"$(b '{"n":1.5}')" "$(b '{"n":-0}')" "$(b '{"n":12345678901234567}')" \
		"$(b '{"s":"h\u00e9"}')" "$(b "{\"s\":\"h$(printf '\xc3\xa9')\"}")" \
		"$(b "{\"s\":\"$(printf '\xff')\"}")" "$(b "{\"s\":\"$(printf '\xed\xa0\x80')\"}")"
	assert_success
	assert_line --index 0 'scan=ok canonical=0 fwd=fast sig=full'
	# sorted at every level, but the body changed: the signature fails on both paths
	assert_line --index 1 'scan=ok canonical=1 fwd=fast sig=full'
	assert_line --index 2 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 3 'scan=ok canonical=1 fwd=fast sig=full'
	assert_line --index 4 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 5 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 6 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 7 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 8 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 9 'scan=ok canonical=1 fwd=fast sig=full'
	# invalid UTF-8 (a stray byte, a surrogate): libjq replaces it
	assert_line --index 10 'scan=ok canonical=0 fwd=fast sig=full'
	assert_line --index 11 'scan=ok canonical=0 fwd=fast sig=full'
}

@test "envscan: what libjq reads but the scanner does not try to follow goes to the full path" {
	deep=$(printf '[%.0s' $(seq 70))$(printf ']%.0s' $(seq 70))
	run scan "$(sed 's/"v":1/"v":01/' <<<"$MSG")" "$(sed 's/"v":1/"v":+1/' <<<"$MSG")" \
		"$(sed 's/"v":1/"v":nan/' <<<"$MSG")" "$(sed "s/\"body\":{/\"body\":{\"d\":$deep,/" <<<"$MSG")" \
		"$MSG$MSG" "[$MSG]" "$(printf '\xef\xbb\xbf')$MSG" "$(sed 's/"s":"h/"s":"\th/' <<<"$MSG")" \
		'{"a":1' '{"a" 1}' '{"a":1,}' '{"a":"\x"}' '{"a":"\u12"}' '{"a":tru}' '{"a":-}' '{"a":1.}' '{"a":1e}'
	assert_success
	for i in $(seq 0 16); do
		assert_line --index "$i" 'scan=full canonical=0 fwd=full sig=full'
	done
	# JSON, but a version the scanner does not read as an integer
	run scan "$(sed 's/"v":1/"v":1.0/' <<<"$MSG")" "$(sed 's/"v":1/"v":1e0/' <<<"$MSG")"
	assert_success
	assert_line --index 0 'scan=ok canonical=0 fwd=full sig=full'
	assert_line --index 1 'scan=ok canonical=0 fwd=full sig=full'
}

@test "envscan: an envelope that fails a check, or expired, is decided by the full path" {
	run scan "$(sed 's/"type":"msg"/"type":"note"/' <<<"$MSG")" \
		"$(sed 's/"id":"[^"]*"/"id":"short"/' <<<"$MSG")" \
		"$(sed 's/"sig":"[^"]*"/"sig":"AAAA"/' <<<"$MSG")" \
		"$(sed 's/"from":"did:key:z6Mk/"from":"did:key:z6Mx/' <<<"$MSG")" \
		"$(sed 's/"body":{[^}]*}/"body":[]/' <<<"$MSG")" \
		"$(sed 's/"cap":\[[^]]*\]/"cap":{}/' <<<"$MSG")"
	assert_success
	for i in $(seq 0 5); do
		assert_line --index "$i" 'scan=ok canonical=1 fwd=full sig=full'
	done
	# expired at a later NOW: the full path says so
	run bash -c "printf '%s\n' '$MSG' | test-tool envscan $((NOW + 3600000))"
	assert_success
	assert_output 'scan=ok canonical=1 fwd=full sig=full'
}
