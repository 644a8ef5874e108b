#!/usr/bin/env bats
# Metering, usage reports and vouchers: the requester answers reports with
# cumulative signed vouchers, the provider keeps the newest valid one, and
# every kind of bad input is refused with a clear error and logged.
load lib/common
load lib/pay
bats_require_minimum_version 1.5.0

# two identities and their contract, made once per file (cap 5000; 10 per
# cpu-second, 2 per GiB-second, 100 per allocation); each test gets its
# own copy of both homes
setup_file() {
	pay_contract_file
}

setup() {
	pay_homes
	cp "$BATS_FILE_TMPDIR/prop.json" "$BATS_FILE_TMPDIR/acc.json" .
	RD=$(jq -r .requester acc.json)
	PD=$(jq -r .provider acc.json)
	ID=$(jq -r .id acc.json)
}

# meter CPU GIB WALL [ALLOC]: record cumulative usage, then write the next
# report to rep.N.json and R's voucher to v.N.json (N = the report's seq)
round() {
	ppay usage record "$ID" --alloc "${4:-a1}" --cpu-seconds "$1" --gib-seconds "$2" \
		--wall-seconds "$3" >/dev/null
	ppay usage report "$ID" >rep.json
	local n
	n=$(jq -r .seq rep.json)
	mv rep.json "rep.$n.json"
	rpay usage answer "rep.$n.json" >"v.$n.json"
}

@test "metering: cumulative per allocation, summed per contract, never going back" {
	run ppay usage record "$ID" --alloc a1 --cpu-seconds 100 --gib-seconds 50 --wall-seconds 60
	assert_success
	assert_output "{\"allocations\":1,\"contract\":\"$ID\",\"cpu_ms\":100000,\"deployments\":1,\"mem_mib_ms\":51200000,\"wall_ms\":60000}"
	run ppay usage record "$ID" --alloc a2 --deployment d2 --cpu-ms 2500 --wall-ms 90000
	assert_success
	# wall time is the longest allocation's, not the sum
	assert_equal "$(jq -c '[.cpu_ms,.mem_mib_ms,.wall_ms,.allocations,.deployments]' <<<"$output")" '[102500,51200000,90000,2,2]'
	run ppay usage record "$ID" --alloc a1 --cpu-seconds 200 --gib-seconds 50 --wall-seconds 70
	assert_success
	run --separate-stderr ppay usage record "$ID" --alloc a1 --cpu-seconds 150 --gib-seconds 50 --wall-seconds 80
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: allocation a1: usage counters may not go back (they are cumulative)"
	run --separate-stderr rpay usage record "$ID" --alloc a1 --cpu-seconds 1
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: contract $ID: this node is not its provider"
	run --separate-stderr ppay usage record "$ID" --alloc a1 --cpu-seconds 1.5
	assert_failure 65
}

@test "report → voucher → accepted: amounts at the contract's rates, cumulative and numbered" {
	round 100 50 60
	# 100 cpu-s * 10 + 50 GiB-s * 2 + 1 allocation * 100
	assert_equal "$(jq -r .amount rep.1.json)" 1200
	assert_equal "$(jq -r '.type + " " + (.seq|tostring) + " " + .amount + " " + .contract' v.1.json)" "nunet/voucher 1 1200 $ID"
	assert_equal "$(jq -r '.requester + " " + .provider' v.1.json)" "$RD $PD"
	run ppay voucher accept v.1.json
	assert_success
	assert_output "{\"accepted\":true,\"amount\":\"1200\",\"contract\":\"$ID\",\"seq\":1}"
	round 300 50 120
	assert_equal "$(jq -r '(.seq|tostring) + " " + .amount' v.2.json)" "2 3200"
	run ppay voucher accept - <v.2.json
	assert_success
	assert_equal "$(ppay contract show "$ID" | jq -r '.state + " " + (.seq|tostring) + " " + .amount')" "active 2 3200"
	assert_equal "$(rpay contract show "$ID" | jq -r '.state + " " + (.seq|tostring) + " " + .amount')" "active 2 3200"
}

@test "the signatures follow the envelope rule: ed25519 over a domain prefix and the JCS form" {
	skip_unless "command -v node" "node is needed to check signatures independently"
	round 10 0 10
	pk=$(test-tool did pk "$RD")
	# an independent ed25519 verifier (node's crypto) over the documented input
	check() {	# PREFIX FILE
		jq -c 'del(.sig)' "$2" | test-tool canon | tr -d '\n' >msg
		node -e '
			const c = require("crypto"), fs = require("fs");
			const [pk, prefix, sig] = process.argv.slice(1);
			const key = c.createPublicKey({ key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(pk, "hex")]), format: "der", type: "spki" });
			const msg = Buffer.concat([Buffer.from(prefix), fs.readFileSync("msg")]);
			process.exit(c.verify(null, msg, key, Buffer.from(sig, "base64")) ? 0 : 1);
		' "$3" "$1" "$(jq -r .sig "$2")"
	}
	check nunet:voucher: v.1.json "$pk"
	! check nunet:usage: v.1.json "$pk"
	check nunet:usage: rep.1.json "$(test-tool did pk "$PD")"
	# the contract: each party signs the terms (without id and sigs)
	jq -c 'del(.id, .sigs)' acc.json >terms.json
	jq -n --slurpfile a acc.json --slurpfile t terms.json '$t[0] + {sig: $a[0].sigs.requester}' >csig.json
	check nunet:contract: csig.json "$pk"
	# a voucher re-signed under another prefix does not verify as a voucher
	test-tool pay sign usage "$R/key" <v.1.json >x.json
	run --separate-stderr ppay voucher verify x.json
	assert_failure 1
	[[ "$stderr" == *"bad signature"* ]]
}

@test "verify checks without storing; accept stores" {
	round 10 0 10
	run ppay voucher verify v.1.json
	assert_success
	assert_equal "$(ppay contract show "$ID" | jq -r .seq)" 0
	run ppay voucher accept v.1.json
	assert_success
	assert_equal "$(ppay contract show "$ID" | jq -r .seq)" 1
}

@test "a retransmitted report gets the same voucher, not a new one" {
	round 10 0 10
	run rpay usage answer rep.1.json
	assert_success
	assert_equal "$output" "$(cat v.1.json)"
	assert_equal "$(rpay contract show "$ID" | jq -r .seq)" 1
}

@test "bad input: replayed voucher" {
	round 10 0 10
	ppay voucher accept v.1.json
	run --separate-stderr ppay voucher accept v.1.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: replayed voucher: seq 1 of contract $ID is already accepted"
	assert_equal "$(ppay refusals | jq -r .kind)" replay
}

@test "bad input: voucher with a lower sequence" {
	round 10 0 10
	round 20 0 20
	ppay voucher accept v.2.json
	run --separate-stderr ppay voucher accept v.1.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: voucher seq 1 is below the newest accepted (2) for contract $ID"
	assert_equal "$(ppay contract show "$ID" | jq -r '(.seq|tostring) + " " + .amount')" "2 300"
}

@test "bad input: voucher with a lower cumulative amount" {
	round 100 0 10
	ppay voucher accept v.1.json
	# the requester's own key signs seq 2 for less than seq 1
	jq -c '.seq = 2 | .amount = "5"' v.1.json | test-tool pay sign voucher "$R/key" >low.json
	run --separate-stderr ppay voucher accept low.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: voucher 2: cumulative amount 5 is below the newest accepted (1100) for contract $ID"
	assert_equal "$(ppay refusals | jq -r .kind)" lower_amount
}

@test "bad input: voucher for another contract" {
	round 10 0 10
	# a second contract between the same parties
	rpay contract propose --provider "$PD" --cpu-rate 1 --cap 100 --duration 1h >p2.json
	ppay contract accept p2.json >a2.json
	ID2=$(jq -r .id a2.json)
	run --separate-stderr ppay voucher accept --contract "$ID2" v.1.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: voucher is for contract $ID, not $ID2"
	# and a contract id the voucher was not signed for
	jq -c --arg c "$ID2" '.contract = $c' v.1.json >moved.json
	run --separate-stderr ppay voucher accept moved.json
	assert_failure 1
	[[ "$stderr" == *"bad signature"* ]]
}

@test "bad input: voucher for another provider" {
	round 10 0 10
	X=$BATS_TEST_TMPDIR/x
	XD=$(nunet-node --home "$X" init)
	# the voucher reaches a node that is not its provider
	run --separate-stderr nunet-pay --home "$X" voucher accept v.1.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: voucher names provider $PD, not this node ($XD)"
	# a voucher signed by the requester naming another provider for P's contract
	jq -c --arg x "$XD" '.provider = $x' v.1.json | test-tool pay sign voucher "$R/key" >other.json
	run --separate-stderr ppay voucher accept other.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: voucher names provider $XD, not this node ($PD)"
}

@test "bad input: forged signature" {
	round 10 0 10
	# amount raised without re-signing
	jq -c '.amount = "4000"' v.1.json >f1.json
	run --separate-stderr ppay voucher accept f1.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: voucher 1 for contract $ID: bad signature (not signed by its requester $RD)"
	# the provider signing its own voucher
	jq -c '.amount = "4000"' v.1.json | test-tool pay sign voucher "$P/key" >f2.json
	run --separate-stderr ppay voucher accept f2.json
	assert_failure 1
	[[ "$stderr" == *"bad signature"* ]]
	# garbage in the signature
	jq -c '.sig = "AAAA"' v.1.json >f3.json
	run --separate-stderr ppay voucher accept f3.json
	assert_failure 1
	assert_equal "$(ppay contract show "$ID" | jq -r .seq)" 0
	assert_equal "$(ppay refusals | jq -r .kind | sort -u)" bad_signature
}

@test "bad input: voucher amount over the cap" {
	round 10 0 10
	jq -c '.amount = "5001"' v.1.json | test-tool pay sign voucher "$R/key" >over.json
	run --separate-stderr ppay voucher accept over.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: voucher 1: amount 5001 is over the contract's cap of 5000"
	# at the cap is fine
	jq -c '.amount = "5000"' v.1.json | test-tool pay sign voucher "$R/key" >at.json
	run ppay voucher accept at.json
	assert_success
}

@test "bad input: a report over the cap or the duration is refused and logged" {
	round 100 0 10
	ppay usage record "$ID" --alloc a1 --cpu-seconds 600 --wall-seconds 20 >/dev/null
	ppay usage report "$ID" >big.json
	assert_equal "$(jq -r .amount big.json)" 6100
	run --separate-stderr rpay usage answer big.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: usage report 2: amount 6100 is over the contract's cap of 5000"
	run rpay refusals
	assert_equal "$(jq -r '.kind + " " + .contract' <<<"$output")" "over_cap $ID"
	# no voucher was issued for it
	assert_equal "$(rpay contract show "$ID" | jq -r '(.seq|tostring) + " " + .amount')" "1 1100"
	# wall time beyond the contract's hour
	ppay usage record "$ID" --alloc a2 --wall-seconds 3601 >/dev/null
	ppay usage report "$ID" >long.json
	run --separate-stderr rpay usage answer long.json
	assert_failure 1
	[[ "$stderr" == *"3601000 ms of wall time is over the contract's duration of 3600s" ]]
}

@test "bad input: a report whose amount does not match its usage, or tampered usage" {
	round 10 0 10
	ppay usage record "$ID" --alloc a1 --cpu-seconds 20 --wall-seconds 20 >/dev/null
	ppay usage report "$ID" >r2.json
	jq -c '.amount = "4999"' r2.json | test-tool pay sign usage "$P/key" >claim.json
	run --separate-stderr rpay usage answer claim.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: usage report 2 claims 4999 but its usage at the contract's rates comes to 300"
	jq -c '.usage.cpu_ms = 400000 | .amount = "4100"' r2.json >tampered.json
	run --separate-stderr rpay usage answer tampered.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: usage report 2 for contract $ID: bad signature"
	# a report with an old seq and new content is a replay
	jq -c '.seq = 1' r2.json | test-tool pay sign usage "$P/key" >old.json
	run --separate-stderr rpay usage answer old.json
	assert_failure 1
	[[ "$stderr" == *"replayed usage report: seq 1 is not above 1"* ]]
	# usage going back
	jq -c '.seq = 3 | .usage.cpu_ms = 1000 | .amount = "110"' r2.json | test-tool pay sign usage "$P/key" >back.json
	run --separate-stderr rpay usage answer back.json
	assert_failure 1
	[[ "$stderr" == *"usage.cpu_ms went back from 10000 to 1000" ]]
	# the honest report still goes through
	run rpay usage answer r2.json
	assert_success
	assert_equal "$(jq -r '(.seq|tostring) + " " + .amount' <<<"$output")" "2 300"
}

@test "bad input: unknown contract id" {
	round 10 0 10
	other=$(printf '%064d' 7)
	jq -c --arg c "$other" '.contract = $c' v.1.json | test-tool pay sign voucher "$R/key" >u.json
	run --separate-stderr ppay voucher accept u.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: unknown contract '$other'"
	jq -c --arg c "$other" '.contract = $c' rep.1.json | test-tool pay sign usage "$P/key" >ur.json
	run --separate-stderr rpay usage answer ur.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: unknown contract '$other'"
	for cmd in "usage report $other" "usage record $other --alloc a"; do
		run --separate-stderr ppay $cmd
		assert_failure 1
		assert_equal "$stderr" "nunet-pay: error: unknown contract '$other'"
	done
	assert_equal "$(ppay refusals | jq -r .kind)" unknown_contract
}

@test "malformed documents exit 65: not JSON, floats, wrong type, unknown fields" {
	round 10 0 10
	printf 'not json\n' >bad1
	run --separate-stderr ppay voucher accept bad1
	assert_failure 65
	jq -c '.seq = 1.5' v.1.json >bad2
	run --separate-stderr ppay voucher accept bad2
	assert_failure 65
	assert_equal "$stderr" "nunet-pay: error: line 1: seq: expected an integer"
	jq -c '.amount = 1200' v.1.json >bad3
	run --separate-stderr ppay voucher accept bad3
	assert_failure 65
	assert_equal "$stderr" "nunet-pay: error: line 1: amount: an amount is a string of integer minor units, not a number"
	jq -c '.bonus = "1"' v.1.json >bad4
	run --separate-stderr ppay voucher accept bad4
	assert_failure 65
	jq -c '.type = "nunet/usage"' v.1.json >bad5
	run --separate-stderr ppay voucher accept bad5
	assert_failure 65
}

@test "a stream of vouchers: each line answered, refusals reported, the rest accepted" {
	round 10 0 10
	round 20 0 20
	round 30 0 30
	cat v.1.json v.3.json v.2.json >stream
	run --separate-stderr ppay voucher accept stream
	assert_failure 1
	assert_equal "$(jq -r .seq <<<"$output" | tr '\n' ' ')" "1 3 "
	assert_equal "$stderr" "nunet-pay: error: line 3: voucher seq 2 is below the newest accepted (3) for contract $ID"
}

@test "test-tool pay amount: integer minor units only" {
	run test-tool pay amount 0 42 18446744073709551615 18446744073709551616 -1 +1 1.0 1e3 007 ''
	assert_success
	assert_equal "${lines[0]}" 0
	assert_equal "${lines[1]}" 42
	assert_equal "${lines[2]}" 18446744073709551615
	assert_equal "${lines[3]}" "error: amount '18446744073709551616' is too large"
	assert_equal "${lines[4]}" "error: '-1' is not an amount: integer minor units only (no sign, fraction or exponent)"
	[[ "${lines[5]}" == "error: '+1' is not an amount"* ]]
	[[ "${lines[6]}" == "error: '1.0' is not an amount"* ]]
	[[ "${lines[7]}" == "error: '1e3' is not an amount"* ]]
	assert_equal "${lines[8]}" "error: '007' is not an amount: leading zeros"
	assert_equal "${lines[9]}" "error: empty amount"
}

@test "the node's behaviors: /pay/usage answers with a voucher, /pay/voucher acknowledges" {
	ppay usage record "$ID" --alloc a1 --cpu-seconds 10 --wall-seconds 10 >/dev/null
	ppay usage report "$ID" >rep.json
	run test-tool pay handle /pay/usage "$R" <rep.json
	assert_success
	echo "$output" >v.json
	assert_equal "$(jq -r '.type + " " + .amount' v.json)" "nunet/voucher 200"
	run test-tool pay handle /pay/voucher "$P" <v.json
	assert_success
	assert_output "{\"amount\":\"200\",\"contract\":\"$ID\",\"seq\":1}"
	run test-tool pay handle /pay/voucher "$P" <v.json
	assert_failure 1
	assert_output "error 1: replayed voucher: seq 1 of contract $ID is already accepted"
	run test-tool pay handle /pay/refund "$P" <v.json
	assert_failure 65
	assert_output "error 65: unknown behavior '/pay/refund'"
	run test-tool pay handle /pay/usage "$P" <rep.json
	assert_failure 1
	assert_output "error 1: contract $ID: this node is not its requester"
}

@test "the provider's deploy check: only a contract it accepted as provider, still running" {
	run test-tool pay require "$P" "$ID"
	assert_success
	assert_output ok
	run test-tool pay require "$R" "$ID"
	assert_failure 1
	assert_output "error 1: contract $ID: this node is not its provider"
	ppay contract propose --requester "$RD" --cap 5 --duration 1h >p2.json
	id2=$(jq -r .id p2.json)
	run test-tool pay require "$P" "$id2"
	assert_failure 1
	assert_output "error 1: contract $id2 is proposed, not accepted"
	ppay contract complete "$ID" >/dev/null
	run test-tool pay require "$P" "$ID"
	assert_failure 1
	assert_output "error 1: contract $ID is completed, not accepted"
	run test-tool pay require "$P" "$(printf '%064d' 1)"
	assert_failure 1
}

# a node with pay attached (nn_pay_attach), serving R's control socket
pay_node_start() {
	local fifo=$BATS_TEST_TMPDIR/ready line
	mkfifo "$fifo"
	test-tool pay serve "$1" 3>"$fifo" 2>>"$BATS_TEST_TMPDIR/node.log" &
	NODE_PIDS+=("$!")
	read -r -t 10 line <"$fifo" || { cat "$BATS_TEST_TMPDIR/node.log" >&2; return 1; }
	rm -f "$fifo"
}

@test "in the node: /pay/usage and /pay/voucher in envelopes through the control socket" {
	pay_node_start "$R"
	run env NUNET_HOME="$R" nunet-send /node/behaviors
	assert_success
	assert_equal "$(jq -r '[.behaviors[].be | select(startswith("/pay/"))] | sort | join(" ")' <<<"$output")" "/pay/usage /pay/voucher"
	ppay usage record "$ID" --alloc a1 --cpu-seconds 10 --wall-seconds 10 >/dev/null
	ppay usage report "$ID" >rep.json
	# an owner relays the provider's report; the reply body is the voucher
	run env NUNET_HOME="$R" nunet-send /pay/usage "$(cat rep.json)"
	assert_success
	echo "$output" >v.json
	assert_equal "$(jq -r '.type + " " + .amount + " " + .contract' v.json)" "nunet/voucher 200 $ID"
	run ppay voucher accept v.json
	assert_success
	# refusals come back as error envelopes
	run --separate-stderr env NUNET_HOME="$R" nunet-send /pay/usage "$(jq -c '.amount = "9"' rep.json)"
	assert_failure
	[[ "$stderr" == *"bad_body"*"bad signature"* ]]
	# the provider needs no capability: the contract is its authority (a
	# retransmitted report gets the same voucher again)
	run --separate-stderr env NUNET_HOME="$R" nunet-send --key "$P/key" /pay/usage "$(cat rep.json)"
	assert_success
	assert_equal "$(jq -c . <<<"$output")" "$(jq -c . v.json)"
	# anyone else is refused, whatever the document says
	nunet-node --home "$BATS_TEST_TMPDIR/x" init >/dev/null
	run --separate-stderr env NUNET_HOME="$R" nunet-send --key "$BATS_TEST_TMPDIR/x/key" /pay/usage "$(cat rep.json)"
	assert_failure
	[[ "$stderr" == *"unauthorized"*"only the provider named in the body"* ]]
	assert_equal "$(rpay contract show "$ID" | jq -r .seq)" 1
}

@test "in the node: reports read together are answered after one commit, every voucher stored" {
	pay_node_start "$R"
	pid=${NODE_PIDS[-1]}
	for i in $(seq 1 40); do
		ppay usage record "$ID" --alloc a1 --cpu-seconds "$i" --wall-seconds "$i" >/dev/null
		ppay usage report "$ID"
	done | jq -c '{be: "/pay/usage", body: .}' >req.jsonl
	# the node is stopped while the whole stream is written to its socket
	# (once it has accepted the connection), so that it reads the reports
	# together when it goes on
	queued() { ss -xnH state established src "$R/node.sock" | awk '{ q += $2; n++ } END { print n ? q : -1 }'; }
	mkfifo in.fifo
	NUNET_HOME="$R" nunet-send -t 60 - <in.fifo >out.jsonl 3>&- &
	sender=$!
	exec 7>in.fifo
	for t in $(seq 1 100); do
		[ "$(queued)" -ge 0 ] && break
		sleep 0.1
	done
	kill -STOP "$pid"
	cat req.jsonl >&7
	exec 7>&-
	for t in $(seq 1 100); do
		[ "$(queued)" -ge "$(wc -c <req.jsonl)" ] && break
		sleep 0.1
	done
	[ "$(queued)" -ge "$(wc -c <req.jsonl)" ]
	kill -CONT "$pid"
	wait "$sender"
	# each report answered with its voucher, in order, all of them stored
	assert_equal "$(jq -s 'map(.seq) == [range(1; 41)]' out.jsonl)" true
	assert_equal "$(sqlite3 "$R/ledger.db" "SELECT COUNT(*), MIN(seq), MAX(seq) FROM vouchers WHERE role = 'issued'")" "40|1|40"
	# each issued voucher's row holds the report it answers
	assert_equal "$(sqlite3 "$R/ledger.db" "SELECT COUNT(DISTINCT report_seq), COUNT(rep_sig) FROM vouchers WHERE role = 'issued'")" "40|40"
	run rpay ledger --verify
	assert_success
	# in fewer commits than reports
	run env NUNET_HOME="$R" nunet-node metrics
	assert_success
	answers=$(awk '$1 == "nunet_pay_answers_total" { print $2 }' <<<"$output")
	commits=$(awk '$1 == "nunet_pay_commits_total" { print $2 }' <<<"$output")
	assert_equal "$answers" 40
	[ "$commits" -ge 1 ] && [ "$commits" -lt 10 ]
	# a lone report afterwards is answered at once, in a commit of its own
	ppay usage record "$ID" --alloc a1 --cpu-seconds 41 --wall-seconds 41 >/dev/null
	ppay usage report "$ID" >rep.json
	run env NUNET_HOME="$R" nunet-send -t 10 /pay/usage "$(cat rep.json)"
	assert_success
	assert_equal "$(jq -r .seq <<<"$output")" 41
	run env NUNET_HOME="$R" nunet-node metrics
	assert_equal "$(awk '$1 == "nunet_pay_commits_total" { print $2 }' <<<"$output")" $((commits + 1))
}
