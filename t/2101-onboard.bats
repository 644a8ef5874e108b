#!/usr/bin/env bats
# nunet-node onboard / onboard --show / offboard: reserving part of the
# machine for the network, changing it without offboarding, the refusals
# (more than the machine has, less than allocations use, offboarding while
# resources are committed), and what is kept across a restart.
load lib/common

VPS="$NUNET_SRC/share/nunet/capability/small-vps.json"	# 2 cores, 4 GiB, 50 GiB
GPU="$NUNET_SRC/share/nunet/capability/gpu-workstation.json"	# 16 cores, 1 GPU

setup() {
	common_setup
	node_init
}

onboard() {
	nunet-node onboard "$@" <"$VPS"
}

@test "onboard without a running node is exit 69 and says why" {
	run --separate-stderr nunet-node onboard --cpu 1 --memory 1G --disk 1G <"$VPS"
	assert_failure 69
	assert_output ''
	assert_equal "$stderr" "nunet-node: error: no node is running in '$NUNET_HOME' (is 'nunet-node run' started?): onboarding talks to the running node"
	run --separate-stderr nunet-node offboard
	assert_failure 69
}

@test "onboard reserves part of the machine and prints what is offered" {
	node_start
	run onboard --cpu 1.5 --memory 2G --disk 10GiB
	assert_success
	assert_equal "$(jq -c '[.state, .total, .onboarded, .free]' <<<"$output")" \
		'["onboarded",{"cpu":2000,"disk":53687091200,"gpus":0,"ram":4294967296,"vram":0},{"cpu":1500,"disk":10737418240,"gpus":0,"ram":2147483648,"vram":0},{"cpu":1500,"disk":10737418240,"gpus":0,"ram":2147483648,"vram":0}]'
	# the offered document: the machine's, cut to the reservation, signed by this node's did
	assert_equal "$(jq -c '.capability | [.cpu.millicores, .cpu.cores, .ram.size, .disk.size, .cpu.model, .did]' <<<"$output")" \
		"[1500,1,2147483648,10737418240,\"AMD EPYC 7B13\",\"$(nunet-node id)\"]"
	# events reach the store in batches, within 100 ms
	for i in $(seq 50); do
		[ "$(sqlite3 "$NUNET_HOME/node.db" "SELECT kind FROM events WHERE kind LIKE 'onboard.%'")" = onboard.set ] && break
		sleep 0.05
	done
	run sqlite3 "$NUNET_HOME/node.db" "SELECT kind FROM events WHERE kind LIKE 'onboard.%'"
	assert_output 'onboard.set'
}

@test "onboard --show prints the reservation and the offered document; exit 1 before onboarding" {
	node_start
	run --separate-stderr nunet-node onboard --show
	assert_failure 1
	assert_equal "$(jq -c '[.state, .onboarded.cpu, has("capability")]' <<<"$output")" '["offboarded",0,false]'
	onboard --cpu 1 --memory 1G --disk 1G >/dev/null
	run nunet-node onboard --show
	assert_success
	assert_equal "$(jq -c '[.state, .onboarded.cpu, .onboarded.ram, .capability.ram.size]' <<<"$output")" \
		'["onboarded",1000,1073741824,1073741824]'
}

@test "changing the reservation needs no offboard" {
	node_start
	onboard --cpu 1 --memory 1G --disk 1G >/dev/null
	run onboard --cpu 2 --memory 3G --disk 20G
	assert_success
	run nunet-node onboard --show
	assert_equal "$(jq -c '[.onboarded.cpu, .onboarded.ram, .onboarded.disk, .capability.cpu.cores]' <<<"$output")" \
		'[2000,3221225472,21474836480,2]'
	run onboard --cpu 0.5 --memory 512MiB --disk 0
	assert_success
	assert_equal "$(jq -c '[.onboarded.cpu, .onboarded.ram, .onboarded.disk]' <<<"$output")" '[500,536870912,0]'
}

@test "more than the machine has is refused (exit 1), and the reservation stays" {
	node_start
	onboard --cpu 1 --memory 1G --disk 1G >/dev/null
	run --separate-stderr onboard --cpu 3 --memory 1G --disk 1G
	assert_failure 1
	assert_equal "$stderr" 'nunet-node: error: cannot reserve more than the machine has: cpu: need 3000, have 2000'
	run --separate-stderr onboard --cpu 1 --memory 5G --disk 1G
	assert_failure 1
	assert_equal "$stderr" 'nunet-node: error: cannot reserve more than the machine has: ram: need 5368709120, have 4294967296'
	run --separate-stderr onboard --cpu 1 --memory 1G --disk 1T
	assert_failure 1
	assert_equal "$stderr" 'nunet-node: error: cannot reserve more than the machine has: disk: need 1099511627776, have 53687091200'
	run nunet-node onboard --show
	assert_equal "$(jq -c '.onboarded | [.cpu, .ram, .disk]' <<<"$output")" '[1000,1073741824,1073741824]'
}

@test "less than the allocations use is refused; as much as they use is fine" {
	node_start
	onboard --cpu 2 --memory 4G --disk 10G >/dev/null
	test-tool onboard commit "$NUNET_HOME/node.db" alloc-1 '{"cpu":1500,"ram":"3G"}'
	run --separate-stderr onboard --cpu 1 --memory 4G --disk 10G
	assert_failure 1
	assert_equal "$stderr" 'nunet-node: error: cannot reserve less than 1 allocation use: cpu: need 1500, have 1000'
	run --separate-stderr onboard --cpu 2 --memory 2G --disk 10G
	assert_failure 1
	assert_equal "$stderr" 'nunet-node: error: cannot reserve less than 1 allocation use: ram: need 3221225472, have 2147483648'
	run onboard --cpu 1.5 --memory 3G --disk 0
	assert_success
	assert_equal "$(jq -c '[.onboarded.cpu, .committed.cpu, .free.cpu, .free.ram]' <<<"$output")" '[1500,1500,0,0]'
}

@test "offboard refuses while resources are committed, unless --force" {
	node_start
	onboard --cpu 2 --memory 2G --disk 1G >/dev/null
	test-tool onboard commit "$NUNET_HOME/node.db" alloc-1 '{"cpu":1000,"ram":"1G"}'
	run --separate-stderr nunet-node offboard
	assert_failure 1
	assert_equal "$stderr" 'nunet-node: error: 1 allocation holds resources (cpu 1000 millicores, ram 1073741824, disk 0, gpus 0): offboard --force to offboard anyway'
	run nunet-node onboard --show
	assert_success
	run nunet-node offboard --force
	assert_success
	assert_equal "$(jq -c '[.state, .committed.cpu, .free.cpu]' <<<"$output")" '["offboarded",1000,0]'
	run nunet-node onboard --show
	assert_failure 1
	for i in $(seq 50); do
		[ "$(sqlite3 "$NUNET_HOME/node.db" "SELECT group_concat(kind, ' ') FROM events WHERE kind LIKE 'onboard.%'")" = 'onboard.set onboard.offboard' ] && break
		sleep 0.05
	done
	run sqlite3 "$NUNET_HOME/node.db" "SELECT group_concat(kind, ' ') FROM events WHERE kind LIKE 'onboard.%'"
	assert_output 'onboard.set onboard.offboard'
}

@test "offboard with nothing committed; offboarding twice is fine" {
	node_start
	onboard --cpu 1 --memory 1G --disk 1G >/dev/null
	test-tool onboard commit "$NUNET_HOME/node.db" a '{"cpu":500}'
	run test-tool onboard release "$NUNET_HOME/node.db" a
	assert_output 1
	run nunet-node offboard
	assert_success
	assert_equal "$(jq -r .state <<<"$output")" offboarded
	run nunet-node offboard
	assert_success
}

@test "--gpu picks the machine's GPUs by index; --price and --location" {
	node_start
	run nunet-node onboard --cpu 8 --memory 32G --disk 100G --gpu 0 \
		--price gpu_second=80,cpu_second=10 --location continent=EU,country=DE,city=Berlin <"$GPU"
	assert_success
	assert_equal "$(jq -c '[.onboarded.gpus, .onboarded.vram, (.capability.gpus | length), .capability.price, .capability.location]' <<<"$output")" \
		'[1,25757220864,1,{"cpu_second":"10","currency":"NTX","disk_gib":"1","gpu_second":"80","ram_gib_second":"3"},{"city":"Berlin","continent":"EU","country":"DE"}]'
	# no --gpu: no GPU offered
	run nunet-node onboard --cpu 8 --memory 32G --disk 100G <"$GPU"
	assert_success
	assert_equal "$(jq -c '[.onboarded.gpus, (.capability.gpus | length)]' <<<"$output")" '[0,0]'
	run --separate-stderr nunet-node onboard --cpu 8 --memory 32G --disk 100G --gpu 1 <"$GPU"
	assert_failure 64
	assert_equal "${stderr%%$'\n'*}" "nunet-node: error: --gpu: '1' is not a GPU of this machine (it has 1; indexes from 0, 'all' or 'none')"
}

@test "a price set once is kept when the reservation changes; one rate changes alone" {
	node_start
	bench=$(jq -c 'del(.price, .location)' "$VPS")
	nunet-node onboard --cpu 1 --memory 1G --disk 1G --price currency=NTX,cpu_second=7 \
		--location continent=EU,country=FR <<<"$bench" >/dev/null
	run nunet-node onboard --cpu 2 --memory 1G --disk 1G --price ram_gib_second=2 <<<"$bench"
	assert_success
	assert_equal "$(jq -c '[.capability.price, .capability.location]' <<<"$output")" \
		'[{"cpu_second":"7","currency":"NTX","ram_gib_second":"2"},{"continent":"EU","country":"FR"}]'
}

@test "bad options are usage errors (exit 64) naming the option" {
	node_start
	run --separate-stderr onboard --memory 1G --disk 1G
	assert_failure 64
	assert_equal "${stderr%%$'\n'*}" 'nunet-node: error: --cpu is required'
	run --separate-stderr onboard --cpu two --memory 1G --disk 1G
	assert_failure 64
	assert_equal "${stderr%%$'\n'*}" "nunet-node: error: --cpu: expected a number of cores above 0 (at most 3 decimals), not 'two'"
	run --separate-stderr onboard --cpu 1 --memory lots --disk 1G
	assert_failure 64
	assert_regex "${stderr%%$'\n'*}" "^nunet-node: error: --memory: bad size 'lots'"
	run --separate-stderr onboard --cpu 1 --memory 1G --disk 1G --price cpu_second=1.5
	assert_failure 64
	assert_equal "${stderr%%$'\n'*}" "nunet-node: error: --price: cpu_second: expected up to 18 digits (integer minor units), not '1.5'"
	run --separate-stderr onboard --cpu 1 --memory 1G --disk 1G --location planet=mars
	assert_failure 64
	assert_equal "${stderr%%$'\n'*}" "nunet-node: error: --location: unknown key 'planet'"
	run --separate-stderr nunet-node onboard --show --cpu 1
	assert_failure 64
	run --separate-stderr nunet-node offboard --now
	assert_failure 64
	run nunet-node onboard --show
	assert_failure 1	# nothing was onboarded by any of them
}

@test "a bad capability document on stdin is exit 65" {
	node_start
	run --separate-stderr nunet-node onboard --cpu 1 --memory 1G --disk 1G </dev/null
	assert_failure 65
	assert_equal "$stderr" "nunet-node: error: the capability document on stdin is empty: pipe nunet-bench's output in ('nunet-bench | nunet-node onboard …')"
	run --separate-stderr nunet-node onboard --cpu 1 --memory 1G --disk 1G <<<'{"v":1,"cpu":{"cores":"two"},"ram":{"size":1}}'
	assert_failure 65
	assert_equal "$stderr" 'nunet-node: error: the capability document on stdin: cpu.cores: expected a non-negative integer'
	run --separate-stderr nunet-node onboard --cpu 1 --memory 1G --disk 1G <<<'not json'
	assert_failure 65
}

@test "the reservation survives a restart of the node" {
	node_start
	onboard --cpu 1 --memory 1G --disk 1G --price cpu_second=3 >/dev/null
	test-tool onboard commit "$NUNET_HOME/node.db" a '{"cpu":250}'
	before=$(nunet-node onboard --show | jq -c 'del(.updated)')
	node_stop_all
	node_start
	after=$(nunet-node onboard --show | jq -c 'del(.updated)')
	assert_equal "$after" "$before"
	assert_equal "$(jq -c '[.committed.cpu, .free.cpu, .capability.price.cpu_second]' <<<"$after")" '[250,750,"3"]'
}

@test "nunet-node(1): onboard one core priced, see what is free, add a core, offboard --force" {
	node_start
	run bash -c 'nunet-bench -q | nunet-node onboard --cpu 1 --memory 1G --disk 1G \
		--price currency=NTX,cpu_second=4 --location continent=EU,country=DE'
	assert_success
	# the machine measured now: its total is this machine's memory
	total_ram=$(awk '/^MemTotal:/ {printf "%.0f", $2 * 1024}' /proc/meminfo)
	assert_equal "$(jq -r .total.ram <<<"$output")" "$total_ram"
	run bash -c 'nunet-send /node/resources | jq -c .free'
	assert_output '{"cpu":1000,"disk":1073741824,"gpus":0,"ram":1073741824,"vram":0}'
	run bash -c 'nunet-bench -q | nunet-node onboard --cpu 2 --memory 1G --disk 1G'
	assert_success
	run bash -c 'nunet-node onboard --show | jq -r .capability.price.cpu_second'
	assert_output 4
	run bash -c "nunet-send /node/match '{\"requirements\":{\"cpu\":{\"cores\":4}}}' | jq -c .rejected"
	assert_output '["cpu.millicores: need 4000, have 2000"]'
	test-tool onboard commit "$NUNET_HOME/node.db" running '{"cpu":1000}'
	run nunet-node offboard --force
	assert_success
	assert_equal "$(jq -r .state <<<"$output")" offboarded
}

@test "from a terminal, onboard runs nunet-bench --quick itself" {
	skip_unless 'command -v script' 'script(1) is not installed'
	node_start
	run script -qec 'nunet-node onboard --cpu 1 --memory 256M --disk 0 2>/dev/null' /dev/null
	assert_success
	total_ram=$(awk '/^MemTotal:/ {printf "%.0f", $2 * 1024}' /proc/meminfo)
	json=$(tr -d '\r' <<<"$output" | grep '^{')
	assert_equal "$(jq -r .total.ram <<<"$json")" "$total_ram"
	assert_equal "$(jq -r .capability.cpu.arch <<<"$json")" "$(uname -m)"
}
