#!/usr/bin/env bats
# base58btc, base64 and did:key against published vectors.
load lib/common

@test "base58btc: leading zeros, empty input and a known vector" {
	run test-tool b58 enc 0000287fb4cd
	assert_success
	assert_output '11233QC4'
	run test-tool b58 dec 11233QC4
	assert_output '0000287fb4cd'
	# "Hello World!" from the base58 draft
	run test-tool b58 enc 48656c6c6f20576f726c6421
	assert_output '2NEpo7TZRRrLZSi2U'
}

@test "base58btc: a character outside the alphabet is refused" {
	run test-tool b58 dec 0OIl
	assert_failure 65
}

@test "base64: standard alphabet with padding, strict decoding" {
	run test-tool b64 enc 666f6f62
	assert_output 'Zm9vYg=='
	run test-tool b64 dec 'Zm9vYg=='
	assert_output '666f6f62'
	run test-tool b64 dec 'Zm9vYg'
	assert_failure 65
	run test-tool b64 dec 'Zm9v!g=='
	assert_failure 65
}

@test "base64 for public data: the same strings and verdicts as libsodium's" {
	# random strings of A Q g w + / = ! (stray bits, padding anywhere, a
	# character outside the alphabet) and outputs too small
	run test-tool b64 compare 200000
	assert_success
	assert_output 'same 200000'
}

@test "did:key: RFC 8032 test key 1 gives its public key back" {
	run test-tool did seed 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60
	assert_success
	assert_output --regexp '^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+ d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a$'
	did=${output%% *}
	run test-tool did pk "$did"
	assert_output d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a
}

@test "did:key: the W3C did:key example decodes to its published base58 key" {
	run test-tool did pk did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp
	assert_success
	pk=$output
	run test-tool b58 dec 4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS
	assert_equal "$output" "$pk"
}

@test "did:key: child actor addresses resolve to their node's key" {
	a=$(test-tool did pk did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp)
	b=$(test-tool did pk did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp/alloc/42)
	assert_equal "$a" "$b"
}

@test "did:key: other methods, other key types and damaged keys are refused" {
	run test-tool did pk did:web:example.com
	assert_failure 65
	assert_output --partial 'not a did:key'
	# a secp256k1 did:key (multicodec 0xe7)
	run test-tool did pk did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme
	assert_failure 65
	assert_output --partial 'not an ed25519 did:key'
	run test-tool did pk did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW
	assert_failure 65
}
