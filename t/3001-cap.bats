#!/usr/bin/env bats
# Resource vectors and capability documents (lib/cap.c) through test-tool.

load lib/common
bats_require_minimum_version 1.5.0

SHARE="$NUNET_SRC/share/nunet"

@test "add sums every resource, sizes as strings" {
	run test-tool cap add '{"cpu":1500,"ram":"4G","vram":"1G"}' '{"cpu":500,"ram":1024,"gpus":1,"disk":"1MiB"}'
	assert_success
	assert_output '{"cpu":2000,"disk":1048576,"gpus":1,"ram":4294968320,"vram":1073741824}'
}

@test "subtract refuses a negative result and names the resource" {
	run test-tool cap sub '{"cpu":2000,"ram":"4G"}' '{"cpu":1000,"ram":"8G"}'
	assert_failure 1
	assert_output 'error: ram: 4294967296 - 8589934592 would be negative'
	run test-tool cap sub '{"cpu":2000,"ram":"8G","gpus":2}' '{"cpu":500,"ram":"4G","gpus":2}'
	assert_success
	assert_output '{"cpu":1500,"disk":0,"gpus":0,"ram":4294967296,"vram":0}'
}

@test "add refuses an overflow" {
	run test-tool cap add '{"disk":"8589934591G"}' '{"disk":"2G"}'
	assert_failure 1
	assert_output 'error: disk: 9223372035781033984 + 2147483648 overflows'
}

@test "negative operands are refused" {
	run test-tool cap add '{"cpu":-1}' '{}'
	assert_failure 65
	assert_output 'error: cpu: expected a non-negative integer'
}

@test "fits says which resource is short" {
	run test-tool cap fits '{"cpu":1000,"ram":"8G"}' '{"cpu":4000,"ram":"4G"}'
	assert_failure 1
	assert_output 'no: ram: need 8589934592, have 4294967296'
	run test-tool cap fits '{"cpu":1000,"ram":"4G"}' '{"cpu":4000,"ram":"4G","disk":1}'
	assert_success
	assert_output fits
}

@test "sizes: bytes, 8G, 512MiB; anything else names the field" {
	run test-tool cap size '"8G"'
	assert_output 8589934592
	run test-tool cap size '"512MiB"'
	assert_output 536870912
	run test-tool cap size '1024'
	assert_output 1024
	run test-tool cap size '"8 gigs"'
	assert_failure
	assert_output "error: size: bad size '8 gigs' (use bytes, or a number with K, M, G or T, as in 8G or 512MiB)"
	run test-tool cap size '1.5'
	assert_failure
	run test-tool cap size '-3'
	assert_failure
}

@test "the vector of a capability document counts GPUs and their VRAM" {
	run test-tool cap doc <"$SHARE/capability/gpu-workstation.json"
	assert_success
	assert_output '{"cpu":16000,"disk":2000398934016,"gpus":1,"ram":68719476736,"vram":25757220864}'
}

@test "the vector of requirements: vram is per GPU, sizes may be strings" {
	run test-tool cap doc <<<'{"cpu":{"cores":2},"ram":{"size":"8G"},"gpus":{"count":2,"vram":"16G"}}'
	assert_success
	assert_output '{"cpu":2000,"disk":0,"gpus":2,"ram":8589934592,"vram":34359738368}'
	run test-tool cap doc <<<'{"cpu":{"millicores":250}}'
	assert_output '{"cpu":250,"disk":0,"gpus":0,"ram":0,"vram":0}'
	run test-tool cap doc <<<'{"ram":{"size":"lots"}}'
	assert_failure
	assert_output --partial "error: ram.size: bad size 'lots'"
}

@test "cores with three decimals are exact millicores; a fourth decimal is refused" {
	# 1.007 * 1000 is 1006.9999999999999 in a double: read as 1007
	for c in 1.007 0.001 2.5 4.999 0.3 16.383; do
		run test-tool cap doc <<<"{\"cpu\":{\"cores\":$c}}"
		assert_success
		assert_equal "$(jq .cpu <<<"$output")" "$(awk -v c="$c" 'BEGIN { printf "%d", c * 1000 + 0.5 }')"
	done
	run test-tool cap doc <<<'{"cpu":{"cores":1.0001}}'
	assert_failure
	assert_output --partial 'error: cpu.cores: expected a non-negative number (at most 3 decimals)'
}

@test "every shipped capability example passes the schema check" {
	for f in "$SHARE"/capability/*.json; do
		run test-tool cap check <"$f"
		assert_output ok
	done
}

@test "the schema check names the bad field" {
	run test-tool cap check <<<'{"v":1,"cpu":{"cores":2},"ram":{"size":"8G"}}'
	assert_output 'error: ram.size: expected a non-negative integer'
	run test-tool cap check <<<'{"v":1,"cpu":{"cores":2},"ram":{"size":1},"price":{"cpu_second":12}}'
	assert_output 'error: price.cpu_second: expected a string of at most 18 digits (integer minor units)'
	run test-tool cap check <<<'{"v":2,"cpu":{"cores":2},"ram":{"size":1}}'
	assert_output 'error: v: expected 1'
	run test-tool cap check <<<'{"v":1,"ram":{"size":1}}'
	assert_output 'error: cpu: missing'
	run test-tool cap check <<<'{"v":1,"cpu":{"cores":2},"ram":{"size":1},"executors":["docker",3]}'
	assert_output 'error: executors[1]: expected a string'
}

@test "restrict: a document cut down to free resources" {
	run test-tool cap restrict '{"cpu":1500,"ram":"1G","disk":"2G","gpus":0}' <"$SHARE/capability/gpu-workstation.json"
	assert_success
	run jq -c '[.cpu.cores, .cpu.millicores, .ram.size, .disk.size, (.gpus|length), .cpu.model]' <<<"$output"
	assert_output '[1,1500,1073741824,2147483648,0,"AMD Ryzen 9 7950X"]'
}

@test "the node's entry point (nn_match_eval) matches a restricted document" {
	free=$(test-tool cap restrict '{"cpu":1500,"ram":"1G","disk":"2G"}' <"$SHARE/capability/small-vps.json")
	run test-tool cap match '{"cpu":{"cores":1},"ram":{"size":"1G"}}' <<<"$free"
	assert_output 'yes -5'
	run test-tool cap match '{"cpu":{"cores":2},"ram":{"size":"2G"}}' <<<"$free"
	assert_output 'no ["cpu.millicores: need 2000, have 1500","ram: need 2147483648, have 1073741824"]'
	run test-tool cap match '{"cpu":{"cores":"two"}}' </dev/null
	assert_output 'error 64: cpu.cores: expected a non-negative number (at most 3 decimals)'
}
