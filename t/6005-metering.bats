#!/usr/bin/env bats
# Metering between nodes: two real nodes in a private swarm on loopback, a
# contract proposed and accepted with nunet-pay, a job that burns CPU
# started on the provider under the contract on the requester's behalf;
# the provider's node meters it from the executor's heartbeats, reports its
# usage to the requester's node, and keeps the vouchers that come back.
load lib/common

setup() {
	common_setup
	R=$BATS_TEST_TMPDIR/r
	P=$BATS_TEST_TMPDIR/p
	# a private swarm: both hold the same swarm key
	node_init "$P" --new-swarm
	node_init "$R" --swarm-key "$P/swarm.key"
	RD=$(nunet-node --home "$R" id)
	PD=$(nunet-node --home "$P" id)
	# the provider reports every 500 ms
	jq '.pay_report_interval_ms = 500' "$P/config.json" >"$P/c.new" && mv "$P/c.new" "$P/config.json"
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	local p
	node_stop_all
	for p in $(pgrep -f -- "$BATS_TEST_TMPDIR/p/alloc/" || true); do kill -9 "$p" 2>/dev/null || true; done
}

rpay() { nunet-pay --home "$R" "$@"; }
ppay() { nunet-pay --home "$P" "$@"; }

within() {
	local end=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
	until eval "$2"; do
		(( $(date +%s%N) / 1000000 < end )) || return 1
		sleep 0.1
	done
}

declare -gA PID
# start_p / start_r: the provider listens, the requester bootstraps from it
start_p() {
	node_start "$P" --listen 127.0.0.1:${PPORT:-0}
	PADDR=$(jq -r .listen <<<"$READY_LINE")
	PPORT=${PADDR##*:}
	PID[p]=$NODE_PID
}
start_r() {
	node_start "$R" --listen 127.0.0.1:0 \
		--bootstrap "$PD@$PADDR"
	PID[r]=$NODE_PID
}
peer_alive() {
	nunet-node --home "$1" peers | jq -e --arg d "$2" 'select(.did == $d and .state == "alive")' >/dev/null
}

# contract CAP: R proposes, P accepts, R takes P's signature; sets ID
contract() {
	rpay contract propose --provider "$PD" --cpu-rate 1000 --gib-rate 1024 --alloc-rate 7 \
		--cap "$1" --duration 1h >prop.json
	ppay contract accept prop.json >acc.json
	rpay contract accept acc.json >/dev/null
	ID=$(jq -r .id acc.json)
}

# run_job ID SECONDS: R starts, on P, a job burning CPU for SECONDS under
# contract ID (R holds a capability for /alloc on P)
run_job() {
	nunet-node --home "$P" cap grant "$RD" --cap /alloc >r.tok
	NUNET_HOME=$R nunet-send --cap r.tok --to "$PD" /alloc/start \
		"{\"spec\":{\"id\":\"$1\",\"command\":[\"timeout\",\"$2\",\"sh\",\"-c\",\"while :; do :; done\"]},\"contract\":\"$ID\"}"
}

alloc_status() {
	NUNET_HOME=$P nunet-send /alloc/status "{\"id\":\"$1\"}"
}

# the vouchers P holds for contract ID: "seq amount" lines
p_vouchers() {
	sqlite3 -separator " " "$P/ledger.db" "SELECT seq, amount FROM vouchers WHERE contract = '$ID' AND role = 'received' ORDER BY seq"
}

@test "a job under a contract is metered, reported and paid with cumulative vouchers" {
	start_p
	start_r
	within 10 'peer_alive "$P" "$RD"'
	contract 100000000
	run run_job j1 3
	assert_success
	# the provider meters while it runs: vouchers arrive before the end
	within 20 '[ "$(p_vouchers | wc -l)" -ge 2 ]'
	within 30 'alloc_status j1 | jq -e .final >/dev/null'
	# the final report is answered; nothing more changes after it
	within 10 '[ "$(ppay contract show "$ID" | jq -r .amount)" = "$(rpay contract show "$ID" | jq -r .amount)" ]'
	sleep 1.5
	p_vouchers >v.txt
	cat v.txt
	# seqs 1..n, amounts never going down
	run awk 'NR != $1 || $2 + 0 < prev { bad = 1 } { prev = $2 + 0 } END { exit bad }' v.txt
	assert_success
	# the last report's usage, at the contract's rates, is the last voucher
	rep=$(sqlite3 "$P/ledger.db" "SELECT doc FROM reports WHERE contract = '$ID' AND dir = 'sent' ORDER BY seq DESC LIMIT 1")
	echo "$rep"
	cpu=$(jq -r .usage.cpu_ms <<<"$rep")
	mem=$(jq -r .usage.mem_mib_ms <<<"$rep")
	# floor(cpu_ms * 1000 / 1000) + floor(mem_mib_ms * 1024 / 1024000) + 1 * 7
	want=$(( cpu + mem * 1024 / 1024000 + 7 ))
	assert_equal "$(jq -r .amount <<<"$rep")" "$want"
	assert_equal "$(tail -1 v.txt | cut -d' ' -f2)" "$want"
	# the CPU metered is the CPU the executor measured for the job
	res_cpu=$(alloc_status j1 | jq -r '.result.cpu_seconds * 1000 | round')
	assert_equal "$cpu" "$res_cpu"
	[ "$cpu" -gt 100 ]
	[ "$(jq -r .usage.wall_ms <<<"$rep")" -ge 2500 ]
	# both ledgers agree, and their invariants hold
	assert_equal "$(ppay balance | jq -r .owed_to_me)" "$want"
	assert_equal "$(rpay balance | jq -r .owed_by_me)" "$want"
	assert_equal "$(ppay ledger | jq -r '.amount + " " + (.seq|tostring)')" "$want $(wc -l <v.txt)"
	ppay ledger --verify
	rpay ledger --verify
	# events on both sides
	nunet-node --home "$P" events --kind pay.voucher | head -1 | jq -e .
	nunet-node --home "$R" events --kind pay.issued | head -1 | jq -e .
}
