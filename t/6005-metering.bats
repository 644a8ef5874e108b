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

# stop what still runs on P (through P, at once), then the nodes
teardown() {
	local p id
	[ -n "${BATS_TEST_COMPLETED:-}" ] || tail -n 40 "$BATS_TEST_TMPDIR/node.log"
	for id in $(NUNET_HOME=$P nunet-send /alloc/list 2>/dev/null | jq -r '.allocations[].id'); do
		NUNET_HOME=$P nunet-send /alloc/cancel "{\"id\":\"$id\",\"grace\":\"0s\"}" >/dev/null 2>&1
		within 10 "alloc_status $id | jq -e .final >/dev/null" || true
	done
	node_stop_all
	for p in $(pgrep -f -- "$BATS_TEST_TMPDIR/p/alloc/" || true); do kill -9 "$p" 2>/dev/null || true; done
}

rpay() { nunet-pay --home "$R" "$@"; }
ppay() { nunet-pay --home "$P" "$@"; }

declare -gA PID
# start_p / start_r: the provider listens, the requester bootstraps from it
start_p() {
	node_start "$P" --listen 127.0.0.1:${PPORT:-0} "$@"
	PADDR=$(jq -r .listen <<<"$READY_LINE")
	PPORT=${PADDR##*:}
	PID[p]=$NODE_PID
}
start_r() {
	node_start "$R" --listen 127.0.0.1:0 --bootstrap "$PD@$PADDR"
	RADDR=$(jq -r .listen <<<"$READY_LINE")
	PID[r]=$NODE_PID
}
# some: at least one line on stdin matches jq's select ARGS (jq -e alone
# passes on no input at all)
some() {
	jq -c "$@" | grep -q .
}
peer_alive() {
	nunet-node --home "$1" peers | some --arg d "$2" 'select(.did == $d and .state == "alive")'
}

# contract CAP: R proposes, P accepts, R takes P's signature; sets ID
contract() {
	rpay contract propose --provider "$PD" --cpu-rate 1000 --gib-rate 1024 --alloc-rate 7 \
		--cap "$1" --duration 1h >prop.json
	ppay contract accept prop.json >acc.json
	rpay contract accept acc.json >/dev/null
	ID=$(jq -r .id acc.json)
}

# run_job SECONDS: R starts, on P, a job burning CPU for SECONDS under
# contract ID (R holds a capability for /alloc on P); sets JOB to its id
# (the node picks it: cgroups are the machine's, ids must not collide)
run_job() {
	nunet-node --home "$P" cap grant "$RD" --cap /alloc >r.tok
	NUNET_HOME=$R nunet-send --cap r.tok --to "$PD" /alloc/start \
		"{\"spec\":{\"command\":[\"timeout\",\"$1\",\"sh\",\"-c\",\"while :; do :; done\"]},\"contract\":\"$ID\"}" >job.json || return
	JOB=$(jq -r .id job.json)
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
	run_job 3
	# the provider meters while it runs: vouchers arrive before the end
	within 20 '[ "$(p_vouchers | wc -l)" -ge 2 ]'
	within 30 'alloc_status $JOB | jq -e .final >/dev/null'
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
	res_cpu=$(alloc_status $JOB | jq -r '.result.cpu_seconds * 1000 | round')
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
	nunet-node --home "$P" events --kind pay.voucher | some --arg c "$ID" 'select(.fields.contract == $c)'
	nunet-node --home "$R" events --kind pay.issued | some --arg c "$ID" 'select(.fields.contract == $c)'
}

@test "over the cap: the report is refused and logged, the provider stops the work and keeps its last voucher" {
	start_p
	start_r
	within 10 'peer_alive "$P" "$RD"'
	# 1 per cpu-ms: a few hundred ms of CPU reach the cap
	contract 400
	run_job 60
	# the requester refuses the report over the cap, and logs it
	within 30 'rpay refusals | some "select(.kind == \"over_cap\")"'
	run rpay refusals
	echo "$output"
	[[ "$output" == *"is over the contract's cap of 400"* ]]
	# the provider stops the job long before its 60 s
	within 30 'alloc_status $JOB | jq -e .final >/dev/null'
	assert_equal "$(alloc_status $JOB | jq -r '.result.wall_seconds < 50')" true
	nunet-node --home "$P" events --kind pay.stop | some --arg c "$ID" --arg j "$JOB" 'select(.fields.contract == $c and .fields.reason == "its cap is reached" and .fields.allocations == [$j])'
	nunet-node --home "$P" events --kind pay.refused | some 'select(.fields.code == "bad_body")'
	# what it holds never goes over the cap, and both sides agree on it
	p_vouchers >v.txt
	run awk '$2 + 0 > 400 { bad = 1 } END { exit bad }' v.txt
	assert_success
	assert_equal "$(ppay contract show "$ID" | jq -r .amount)" "$(rpay contract show "$ID" | jq -r .amount)"
	ppay ledger --verify
	rpay ledger --verify
	# no new work under a contract whose usage is worth its cap
	run --separate-stderr run_job 1
	assert_failure
	[[ "$stderr" == *"unavailable"*"its cap is 400"* ]]
}

@test "/alloc/start under a contract: refused unless the node accepted it as provider and the sender is its requester" {
	start_p
	contract 1000
	# unknown contract
	run --separate-stderr env NUNET_HOME="$P" nunet-send /alloc/start "{\"spec\":{\"command\":[\"true\"]},\"contract\":\"$(printf '%064d' 7)\"}"
	assert_failure
	[[ "$stderr" == *"unauthorized: contract: unknown contract"* ]]
	# only proposed to P, not accepted by it
	rpay contract propose --provider "$PD" --cap 5 --duration 1h >p2.json
	ppay contract propose --requester "$RD" --cap 5 --duration 1h >p3.json
	run --separate-stderr env NUNET_HOME="$P" nunet-send /alloc/start "{\"spec\":{\"command\":[\"true\"]},\"contract\":\"$(jq -r .id p3.json)\"}"
	assert_failure
	[[ "$stderr" == *"is proposed, not accepted"* ]]
	# P is not the provider of a contract it is the requester of
	nunet-node --home "$BATS_TEST_TMPDIR/x" init >/dev/null
	XD=$(nunet-node --home "$BATS_TEST_TMPDIR/x" id)
	ppay contract propose --provider "$XD" --cap 5 --duration 1h >p4.json
	nunet-pay --home "$BATS_TEST_TMPDIR/x" contract accept p4.json >a4.json
	ppay contract accept a4.json >/dev/null
	run --separate-stderr env NUNET_HOME="$P" nunet-send /alloc/start "{\"spec\":{\"command\":[\"true\"]},\"contract\":\"$(jq -r .id a4.json)\"}"
	assert_failure
	[[ "$stderr" == *"this node is not its provider"* ]]
	# a contract id that is not a string
	run --separate-stderr env NUNET_HOME="$P" nunet-send /alloc/start '{"spec":{"command":["true"]},"contract":7}'
	assert_failure
	[[ "$stderr" == *"bad_body"*"contract"* ]]
	# a holder of /alloc that is not the contract's requester
	nunet-node --home "$P" cap grant "$XD" --cap /alloc >x.tok
	run --separate-stderr env NUNET_HOME="$P" nunet-send --key "$BATS_TEST_TMPDIR/x/key" --cap x.tok /alloc/start "{\"spec\":{\"command\":[\"true\"]},\"contract\":\"$ID\"}"
	assert_failure
	[[ "$stderr" == *"unauthorized: contract: only its requester ($RD) or an owner of this node may start work under contract $ID"* ]]
	# nothing was started
	assert_equal "$(NUNET_HOME=$P nunet-send /alloc/list '{"all":true}' | jq '.allocations | length')" 0
	# an owner may (on the requester's behalf)
	run env NUNET_HOME="$P" nunet-send /alloc/start "{\"spec\":{\"command\":[\"true\"]},\"contract\":\"$ID\"}"
	assert_success
	JOB=$(jq -r .id <<<"$output")
	within 10 'alloc_status $JOB | jq -e .final >/dev/null'
	within 10 '[ "$(sqlite3 "$P/ledger.db" "SELECT ended FROM usage WHERE alloc = '"'$JOB'"'")" = 1 ]'
}

last_report() {
	sqlite3 "$P/ledger.db" "SELECT doc FROM reports WHERE contract = '$ID' AND dir = 'sent' ORDER BY seq DESC LIMIT 1"
}

# the final state, once the job has ended: P's newest voucher is R's newest,
# worth the last report's usage at the rates, with the executor's CPU
settled_check() {
	within 30 'alloc_status $JOB | jq -e .final >/dev/null'
	# the end is metered, its report answered, both sides agree
	within 30 '[ "$(sqlite3 "$P/ledger.db" "SELECT ended FROM usage WHERE alloc = '"'$JOB'"'")" = 1 ] &&
		[ "$(ppay contract show "$ID" | jq -r .amount)" = "$(last_report | jq -r .amount)" ] &&
		[ "$(ppay contract show "$ID" | jq -r .amount)" = "$(rpay contract show "$ID" | jq -r .amount)" ] &&
		[ "$(ppay contract show "$ID" | jq -r .seq)" = "$(rpay contract show "$ID" | jq -r .seq)" ]'
	rep=$(sqlite3 "$P/ledger.db" "SELECT doc FROM reports WHERE contract = '$ID' AND dir = 'sent' ORDER BY seq DESC LIMIT 1")
	cpu=$(jq -r .usage.cpu_ms <<<"$rep")
	mem=$(jq -r .usage.mem_mib_ms <<<"$rep")
	want=$(( cpu + mem * 1024 / 1024000 + 7 ))
	assert_equal "$(jq -r .amount <<<"$rep")" "$want"
	assert_equal "$(ppay contract show "$ID" | jq -r .amount)" "$want"
	# counted once: the CPU metered across the crash is the executor's
	assert_equal "$cpu" "$(alloc_status $JOB | jq -r '.result.cpu_seconds * 1000 | round')"
	ppay ledger --verify
	rpay ledger --verify
	# every voucher held before the crash is still held
	p_vouchers >after.txt
	run grep -vxF -f after.txt before.txt
	assert_output ""
}

@test "kill -9 of the provider mid-run: no accepted voucher lost, no usage counted twice" {
	start_p
	start_r
	within 10 'peer_alive "$P" "$RD"'
	contract 100000000
	run_job 8
	within 20 '[ "$(p_vouchers | wc -l)" -ge 2 ]'
	kill -9 "${PID[p]}"
	wait "${PID[p]}" 2>/dev/null || true
	p_vouchers >before.txt
	[ -s before.txt ]
	# the job runs on under its shim; the node comes back on the same address
	start_p
	within 20 'peer_alive "$P" "$RD"'
	settled_check
	[ "$(wc -l <after.txt)" -gt "$(wc -l <before.txt)" ]
}

@test "kill -9 of the requester mid-run: reports go unanswered, then resume; nothing lost or doubled" {
	start_p
	start_r
	within 10 'peer_alive "$P" "$RD"'
	contract 100000000
	run_job 8
	within 20 '[ "$(p_vouchers | wc -l)" -ge 2 ]'
	kill -9 "${PID[r]}"
	wait "${PID[r]}" 2>/dev/null || true
	p_vouchers >before.txt
	rpay ledger --verify
	within 20 'nunet-node --home "$P" events --kind pay.unanswered | some --arg c "$ID" "select(.fields.contract == \$c)"'
	start_r
	settled_check
	[ "$(wc -l <after.txt)" -gt "$(wc -l <before.txt)" ]
	# R issued every voucher once, numbered 1..n without a gap
	assert_equal "$(sqlite3 "$R/ledger.db" "SELECT count(*) = max(seq) FROM vouchers WHERE contract = '$ID' AND role = 'issued'")" 1
}

@test "the job ends while the provider is down: its end is metered once when the node is back" {
	start_p
	start_r
	within 10 'peer_alive "$P" "$RD"'
	contract 100000000
	run_job 4
	within 20 '[ "$(p_vouchers | wc -l)" -ge 1 ]'
	kill -9 "${PID[p]}"
	wait "${PID[p]}" 2>/dev/null || true
	p_vouchers >before.txt
	# the shim keeps the result for the node
	within 30 '[ -s "$P/alloc/$JOB/result.json" ]'
	# down long enough for R to give it up: it comes back through R
	start_p --bootstrap "$RD@$RADDR"
	within 20 'peer_alive "$P" "$RD"'
	settled_check
	assert_equal "$(sqlite3 "$P/ledger.db" "SELECT ended FROM usage WHERE alloc = '$JOB'")" 1
}
