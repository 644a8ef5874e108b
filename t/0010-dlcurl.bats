#!/usr/bin/env bats
# libcurl (lib/dlcurl.c), libgit2 (lib/dlgit.c) and libcrypto
# (lib/sha256.c) are loaded when a code path first needs them, not by the
# dynamic loader at every start: programs start without their ~50 libraries,
# and a missing library is a clear error where it is needed.
load lib/common

@test "no program links libcurl, libgit2 or libcrypto; starting one maps none of them" {
	skip_unless 'command -v readelf' "readelf (binutils) not installed"
	for p in nunet-node nunet-run nunet-send nunet-match nunet-bench nunet-pay; do
		run readelf -d "$NUNET_BUILD/bin/$p"
		assert_success
		assert_output --partial 'libsodium'
		refute_output --partial 'libcurl'
		refute_output --partial 'libgit2'
		refute_output --partial 'libcrypto'
	done
	run env LD_DEBUG=libs nunet-run --version
	assert_success
	assert_output --partial 'libsodium'
	refute_output --partial 'libcurl'
	refute_output --partial 'libgit2'
	refute_output --partial 'libcrypto'
}

@test "an idle node has not loaded libcurl" {
	node_init
	node_start
	run nunet-send /node/ping
	assert_success
	run grep -c libcurl "/proc/$NODE_PID/maps"
	assert_output 0
	run grep -c libsodium "/proc/$NODE_PID/maps"
	refute_output 0
}

@test "curl calls reach the loaded library, options of each type included" {
	run test-tool dlcurl
	assert_success
	assert_output $'a%20b%26c\nexample.invalid\nCouldn\'t connect to server'
}

@test "a libcurl that is missing or is not libcurl is named in the error" {
	run test-tool dlcurl libcurl-nonexistent.so.4
	assert_failure 69
	assert_output "cannot load libcurl (libcurl-nonexistent.so.4: cannot open shared object file: No such file or directory): install it (Debian: libcurl4)"
	run test-tool dlcurl libsodium.so.23
	assert_failure 69
	assert_output "cannot load libcurl: libsodium.so.23 has no curl_global_init"
}
