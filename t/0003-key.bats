#!/usr/bin/env bats
# Identity key files: plain and passphrase-sealed, mode 0600.
load lib/common

@test "a new key file is mode 0600 and loads back to the same did" {
	run test-tool key gen "$BATS_TEST_TMPDIR/k"
	assert_success
	did=$output
	assert_equal "$(stat -c %a "$BATS_TEST_TMPDIR/k")" 600
	run test-tool key load "$BATS_TEST_TMPDIR/k"
	assert_success
	assert_output "$did"
}

@test "an existing key file is never overwritten" {
	test-tool key gen "$BATS_TEST_TMPDIR/k"
	before=$(cat "$BATS_TEST_TMPDIR/k")
	run test-tool key gen "$BATS_TEST_TMPDIR/k"
	assert_failure
	assert_output --partial 'refusing to overwrite'
	assert_equal "$(cat "$BATS_TEST_TMPDIR/k")" "$before"
}

@test "a sealed key holds no plain seed and needs its passphrase" {
	run test-tool key gen "$BATS_TEST_TMPDIR/k" 'correct horse'
	assert_success
	did=$output
	run jq -r 'has("seed"), .kdf' "$BATS_TEST_TMPDIR/k"
	assert_output $'false\nargon2id13'
	run test-tool key load "$BATS_TEST_TMPDIR/k" 'correct horse'
	assert_success
	assert_output "$did"
	run test-tool key load "$BATS_TEST_TMPDIR/k" 'wrong horse'
	assert_failure
	assert_output --partial 'wrong passphrase'
	run test-tool key load "$BATS_TEST_TMPDIR/k"
	assert_failure
	assert_output --partial 'NUNET_PASSPHRASE'
}

@test "a key file readable by others is refused" {
	test-tool key gen "$BATS_TEST_TMPDIR/k"
	chmod 644 "$BATS_TEST_TMPDIR/k"
	run test-tool key load "$BATS_TEST_TMPDIR/k"
	assert_failure
	assert_output --partial 'readable by others'
}

@test "a damaged key file is refused with a reason" {
	printf 'not json' >"$BATS_TEST_TMPDIR/k"; chmod 600 "$BATS_TEST_TMPDIR/k"
	run test-tool key load "$BATS_TEST_TMPDIR/k"
	assert_failure
	assert_output --partial 'not a key file'
	printf '{"type":"ed25519","seed":"c2hvcnQ="}' >"$BATS_TEST_TMPDIR/k"
	run test-tool key load "$BATS_TEST_TMPDIR/k"
	assert_failure
	assert_output --partial 'seed: bad base64 or wrong length'
}
