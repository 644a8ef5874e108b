#!/usr/bin/env bats
# /node/resources (total, onboarded, committed, free) and /node/capability,
# with commitments made as the allocation module makes them
# (nn_onboard_commit through test-tool onboard).
load lib/common

VPS="$NUNET_SRC/share/nunet/capability/small-vps.json"	# 2 cores, 4 GiB, 50 GiB

setup() {
	common_setup
	node_init
	node_start
	DB="$NUNET_HOME/node.db"
}

vec() {	# vec FIELD: the flat vector of /node/resources' FIELD, as cpu,ram,disk,gpus,vram
	nunet-send /node/resources | jq -r ".$1 | [.cpu, .ram, .disk, .gpus, .vram] | join(\",\")"
}

@test "/node/resources before onboarding: offboarded, everything zero" {
	run nunet-send /node/resources
	assert_success
	assert_equal "$(jq -c '[.state, .allocations, .total.cpu, .onboarded.ram, .free.disk]' <<<"$output")" \
		'["offboarded",0,0,0,0]'
}

@test "/node/resources after onboarding: total is the machine, free is all of the reservation" {
	nunet-node onboard --cpu 1.5 --memory 3G --disk 20G <"$VPS" >/dev/null
	assert_equal "$(vec total)" 2000,4294967296,53687091200,0,0
	assert_equal "$(vec onboarded)" 1500,3221225472,21474836480,0,0
	assert_equal "$(vec committed)" 0,0,0,0,0
	assert_equal "$(vec free)" 1500,3221225472,21474836480,0,0
}

@test "commitments add up in committed and come off free; releasing gives them back" {
	nunet-node onboard --cpu 2 --memory 4G --disk 10G <"$VPS" >/dev/null
	test-tool onboard commit "$DB" a1 '{"cpu":500,"ram":"1G","disk":"2G"}'
	test-tool onboard commit "$DB" a2 '{"cpu":1000,"ram":"512MiB"}'
	assert_equal "$(vec committed)" 1500,1610612736,2147483648,0,0
	assert_equal "$(vec free)" 500,2684354560,8589934592,0,0
	assert_equal "$(nunet-send /node/resources | jq .allocations)" 2
	run nunet-send /node/resources '{"commitments":true}'
	assert_equal "$(jq -c '[.commitments[] | [.id, .resources.cpu, .resources.ram, (.ts > 0)]]' <<<"$output")" \
		'[["a1",500,1073741824,true],["a2",1000,536870912,true]]'
	run test-tool onboard release "$DB" a1
	assert_output 1
	run test-tool onboard release "$DB" a1
	assert_output 0	# twice is harmless
	assert_equal "$(vec committed)" 1000,536870912,0,0,0
	assert_equal "$(vec free)" 1000,3758096384,10737418240,0,0
}

@test "a commitment beyond what is free, twice for one id, or with nothing onboarded is refused" {
	run --separate-stderr test-tool onboard commit "$DB" a1 '{"cpu":100}'
	assert_failure 1
	assert_equal "$stderr" 'error: commit a1: this node is not onboarded'
	nunet-node onboard --cpu 1 --memory 1G --disk 1G <"$VPS" >/dev/null
	test-tool onboard commit "$DB" a1 '{"cpu":600}'
	run --separate-stderr test-tool onboard commit "$DB" a2 '{"cpu":600}'
	assert_failure 1
	assert_equal "$stderr" 'error: commit a2: not enough free: cpu: need 600, have 400'
	run --separate-stderr test-tool onboard commit "$DB" a3 '{"ram":"2G"}'
	assert_failure 1
	assert_equal "$stderr" 'error: commit a3: not enough free: ram: need 2147483648, have 1073741824'
	run --separate-stderr test-tool onboard commit "$DB" a1 '{"cpu":1}'
	assert_failure 1
	assert_equal "$stderr" 'error: commit a1: this allocation holds resources already'
	assert_equal "$(vec committed)" 600,0,0,0,0
}

@test "concurrent commitments never take more than is free" {
	nunet-node onboard --cpu 2 --memory 1G --disk 0 <"$VPS" >/dev/null
	pids=()
	for i in 1 2 3 4 5 6; do
		test-tool onboard commit "$DB" "c$i" '{"cpu":700}' 2>/dev/null &
		pids+=($!)
	done
	ok=0
	for p in "${pids[@]}"; do
		wait "$p" && ok=$((ok + 1))
	done
	assert_equal "$ok" 2
	assert_equal "$(vec committed)" 1400,0,0,0,0
	assert_equal "$(nunet-send /node/resources | jq .allocations)" 2
}

@test "after a forced offboard, commitments stay and nothing is free" {
	nunet-node onboard --cpu 2 --memory 1G --disk 0 <"$VPS" >/dev/null
	test-tool onboard commit "$DB" a1 '{"cpu":1000}'
	nunet-node offboard --force >/dev/null
	run nunet-send /node/resources
	assert_equal "$(jq -r .state <<<"$output")" offboarded
	assert_equal "$(vec committed)" 1000,0,0,0,0
	assert_equal "$(vec free)" 0,0,0,0,0
	# onboarding again must cover them
	run --separate-stderr nunet-node onboard --cpu 0.5 --memory 1G --disk 0 <"$VPS"
	assert_failure 1
	nunet-node onboard --cpu 1 --memory 1G --disk 0 <"$VPS" >/dev/null
	assert_equal "$(vec free)" 0,1073741824,0,0,0
}

@test "/node/capability: the offered document; with free:true cut to what is free" {
	run --separate-stderr nunet-send /node/capability
	assert_failure 69
	assert_equal "$(jq -r .error.code <<<"$output")" unavailable
	assert_equal "$(jq -r .error.message <<<"$output")" "this node is not onboarded: run 'nunet-node onboard'"
	nunet-node onboard --cpu 2 --memory 2G --disk 8G --location continent=EU,country=DE <"$VPS" >/dev/null
	test-tool onboard commit "$DB" a1 '{"cpu":1500,"ram":"1536M"}'
	run nunet-send /node/capability
	assert_success
	assert_equal "$(jq -c '[.v, .did, .cpu.millicores, .ram.size, .disk.size, .location.country, .executors]' <<<"$output")" \
		"[1,\"$(nunet-node id)\",2000,2147483648,8589934592,\"DE\",[\"native\",\"docker\"]]"
	run nunet-send /node/capability '{"free":true}'
	assert_success
	assert_equal "$(jq -c '[.cpu.millicores, .cpu.cores, .ram.size, .disk.size, .location.country]' <<<"$output")" \
		'[500,0,536870912,8589934592,"DE"]'
	# the offered document is a valid capability document
	run bash -c 'nunet-send /node/capability | test-tool cap check'
	assert_output ok
}

@test "GPUs: onboarded by index, committed by count" {
	nunet-node onboard --cpu 4 --memory 8G --disk 0 --gpu all \
		<"$NUNET_SRC/share/nunet/capability/gpu-workstation.json" >/dev/null
	assert_equal "$(vec onboarded)" 4000,8589934592,0,1,25757220864
	test-tool onboard commit "$DB" g '{"gpus":1,"vram":25757220864}'
	assert_equal "$(vec free)" 4000,8589934592,0,0,0
	assert_equal "$(nunet-send /node/capability '{"free":true}' | jq '.gpus | length')" 0
	assert_equal "$(nunet-send /node/capability | jq '.gpus | length')" 1
}

@test "/node/behaviors lists the onboarding behaviors" {
	run nunet-send /node/behaviors
	assert_success
	assert_equal "$(jq -r '[.behaviors[].be | select(test("^/node/(onboard|offboard|resources|capability|match)$"))] | sort | join(" ")' <<<"$output")" \
		'/node/capability /node/match /node/offboard /node/onboard /node/resources'
}

@test "/node/onboard itself refuses a malformed body with bad_body" {
	run --separate-stderr nunet-send /node/onboard '{"machine":{"v":1,"cpu":{"cores":2},"ram":{"size":1024}},"cpu":500,"ram":512,"colour":"red"}'
	assert_failure 65
	assert_equal "$(jq -r .error.message <<<"$output")" "onboard: unknown member 'colour'"
	run --separate-stderr nunet-send /node/onboard '{"cpu":500,"ram":512}'
	assert_failure 65
	assert_equal "$(jq -r .error.message <<<"$output")" 'machine: missing (the capability document of nunet-bench)'
	run --separate-stderr nunet-send /node/onboard '{"machine":{"v":1,"cpu":{"cores":2},"ram":{"size":1024}},"cpu":500,"ram":512,"gpus":[0]}'
	assert_failure 65
	assert_equal "$(jq -r .error.message <<<"$output")" 'onboard: gpus[0]: the machine has 0 GPUs (indexes from 0)'
	run --separate-stderr nunet-send /node/onboard '{"machine":{"v":1,"cpu":{"cores":2},"ram":{"size":1024},"gpus":[{"vram":1},{"vram":2}]},"cpu":500,"ram":512,"gpus":[1,1]}'
	assert_failure 65
	assert_equal "$(jq -r .error.message <<<"$output")" 'onboard: gpus: GPU 1 is named twice'
	run --separate-stderr nunet-send /node/onboard '{"machine":{"v":1,"cpu":{"cores":2},"ram":{"size":1024}},"cpu":500,"ram":512}'
	assert_success
	assert_equal "$(jq -c '.onboarded | [.cpu, .ram]' <<<"$output")" '[500,512]'
}
