#!/usr/bin/env bats
# libcurl is loaded by lib/dlcurl.c when a code path first needs HTTP, not
# by the dynamic loader at every start: programs start without its ~35
# dependent libraries, and a missing libcurl is a clear error where it is
# needed.
load lib/common

@test "no program links libcurl; starting one maps none of it" {
	skip_unless 'command -v readelf' "readelf (binutils) not installed"
	for p in nunet-node nunet-run nunet-send nunet-match nunet-bench nunet-pay; do
		run readelf -d "$NUNET_BUILD/bin/$p"
		assert_success
		assert_output --partial 'libsodium'
		refute_output --partial 'libcurl'
	done
	run env LD_DEBUG=libs nunet-run --version
	assert_success
	assert_output --partial 'libsodium'
	refute_output --partial 'libcurl'
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
