#!/usr/bin/env bats
# /node/match: a job's requirements against this node's FREE resources,
# with the code of nunet-match: the same verdict, score and failed
# constraints as `nunet-match --explain` gives on the node's free document.
load lib/common

CAP="$NUNET_SRC/share/nunet/capability"
REQ="$NUNET_SRC/share/nunet/requirements"

setup() {
	common_setup
	node_init
	node_start
	DB="$NUNET_HOME/node.db"
}

match() {	# match REQUIREMENTS-JSON [EXTRA-BODY-JQ]
	nunet-send /node/match "$(jq -nc --argjson r "$1" "{requirements: \$r} ${2:+| $2}")"
}

@test "a node with nothing onboarded answers no, and says why" {
	run match '{"cpu":{"cores":1}}'
	assert_success
	assert_equal "$(jq -c . <<<"$output")" '{"match":false,"rejected":["onboard: this node offers nothing (not onboarded)"]}'
}

@test "requirements that fit the free resources: match, with nunet-match's score" {
	nunet-node onboard --cpu 2 --memory 4G --disk 20G <"$CAP/small-vps.json" >/dev/null
	run match "$(jq -c . "$REQ/web-service.json")"
	assert_success
	assert_equal "$(jq -c '[.match, .offer.did]' <<<"$output")" "[true,\"$(nunet-node id)\"]"
	# the same offer through nunet-match gives the same score
	nunet-send /node/capability '{"free":true}' >"$BATS_TEST_TMPDIR/offer.json"
	want=$(nunet-match "$REQ/web-service.json" "$BATS_TEST_TMPDIR/offer.json" | jq .score)
	assert_equal "$(jq .score <<<"$output")" "$want"
	# the default rank: -(4 * 2 cores + 1 * 2 GiB + 1 * 10 GiB of disk spread over an hour)
	assert_equal "$want" "$(jq -n '-(4 * 2 + 1 * 2 + 1 * 10 / 3600)')"
}

@test "what is committed is not offered: the failed constraints are nunet-match --explain's" {
	nunet-node onboard --cpu 2 --memory 4G --disk 20G <"$CAP/small-vps.json" >/dev/null
	test-tool onboard commit "$DB" a1 '{"cpu":1500,"ram":"3G"}'
	run match "$(jq -c . "$REQ/web-service.json")"
	assert_success
	assert_equal "$(jq -c '[.match, .rejected]' <<<"$output")" \
		'[false,["cpu.millicores: need 2000, have 500","ram: need 2147483648, have 1073741824"]]'
	nunet-send /node/capability '{"free":true}' >"$BATS_TEST_TMPDIR/offer.json"
	run nunet-match --explain "$REQ/web-service.json" "$BATS_TEST_TMPDIR/offer.json"
	assert_failure 1
	assert_equal "$(jq -c .rejected <<<"$output")" '["cpu.millicores: need 2000, have 500","ram: need 2147483648, have 1073741824"]'
	# every failed constraint, not just the first
	run match '{"cpu":{"cores":1},"ram":{"size":"2G"},"executors":["vm"]}'
	assert_equal "$(jq -c .rejected <<<"$output")" \
		'["cpu.millicores: need 1000, have 500","ram: need 2147483648, have 1073741824","executors: need vm, have native|docker"]'
	# releasing the commitment makes it fit again
	test-tool onboard release "$DB" a1 >/dev/null
	run match "$(jq -c . "$REQ/web-service.json")"
	assert_equal "$(jq .match <<<"$output")" true
}

@test "half a core free fits a job that needs half a core" {
	nunet-node onboard --cpu 1 --memory 1G --disk 0 <"$CAP/small-vps.json" >/dev/null
	test-tool onboard commit "$DB" a1 '{"cpu":500}'
	run match '{"cpu":{"cores":0.5}}'
	assert_equal "$(jq .match <<<"$output")" true
	run match '{"cpu":{"cores":0.6}}'
	assert_equal "$(jq -c .rejected <<<"$output")" '["cpu.millicores: need 600, have 500"]'
}

@test "where and rank in the body; the provider's own where on the job" {
	nunet-node onboard --cpu 8 --memory 16G --disk 100G --gpu 0 <"$CAP/gpu-workstation.json" >/dev/null
	run match '{"gpus":{"count":1,"vendor":"nvidia"}}' '.where = ".cpu.mhz >= 4000" | .rank = ".cpu.score.multi"'
	assert_success
	assert_equal "$(jq -c '[.match, .score]' <<<"$output")" '[true,31800]'
	run match '{"gpus":{"count":1}}' '.where = ".cpu.mhz >= 5000"'
	assert_equal "$(jq .match <<<"$output")" false
	assert_regex "$(jq -r '.rejected[0]' <<<"$output")" '^where'
	# the workstation's where: a job capping gpu_second below 90 is turned away
	run match '{"price":{"max":{"gpu_second":"50"}}}'
	assert_equal "$(jq .match <<<"$output")" false
	run match '{"gpus":{"count":2}}'
	assert_equal "$(jq .match <<<"$output")" false
}

@test "GPUs committed are not offered" {
	nunet-node onboard --cpu 8 --memory 16G --disk 0 --gpu all <"$CAP/gpu-workstation.json" >/dev/null
	run match '{"gpus":{"count":1}}'
	assert_equal "$(jq .match <<<"$output")" true
	test-tool onboard commit "$DB" train '{"gpus":1,"vram":25757220864}'
	run match '{"gpus":{"count":1}}'
	assert_equal "$(jq .match <<<"$output")" false
}

@test "bad requirements and jq that does not compile are bad_body (nunet-send exit 65)" {
	nunet-node onboard --cpu 1 --memory 1G --disk 0 <"$CAP/small-vps.json" >/dev/null
	run --separate-stderr match '{"ram":{"size":"lots"}}'
	assert_failure 65
	assert_equal "$(jq -r .error.code <<<"$output")" bad_body
	assert_regex "$(jq -r .error.message <<<"$output")" "^requirements: ram.size: bad size 'lots'"
	run --separate-stderr match '{"where":".cpu.cores >"}'
	assert_failure 65
	assert_regex "$(jq -r .error.message <<<"$output")" '^requirements: '
	run --separate-stderr nunet-send /node/match '{"requirements":"2 cores"}'
	assert_failure 65
	assert_equal "$(jq -r .error.message <<<"$output")" 'requirements: expected an object'
	run --separate-stderr nunet-send /node/match '{"requirements":{},"where":7}'
	assert_failure 65
	# the node serves on
	run match '{}'
	assert_equal "$(jq .match <<<"$output")" true
}
