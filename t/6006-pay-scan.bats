#!/usr/bin/env bats
# The strict reader of usage reports and vouchers (nn_pay_doc_scan in
# lib/pay.h) beside the full reader: `test-tool pay scan` says which reader
# takes each line and fails with MISMATCH where the two would read it
# differently (t/fuzz/payscan-oracle.h); nunet-pay gives the same answers,
# errors and logged refusals whichever reader took a line; the voucher
# written straight from its fields is the canonical form of its document.
load lib/common
load lib/pay
bats_require_minimum_version 1.5.0

setup_file() {
	pay_contract_file
}

setup() {
	pay_homes
	RD=$(jq -r .requester "$BATS_FILE_TMPDIR/acc.json")
	ID=$(jq -r .id "$BATS_FILE_TMPDIR/acc.json")
}

# round CPU WALL: the next report in rep.N.json, its voucher in v.N.json
round() {
	ppay usage record "$ID" --alloc a1 --cpu-seconds "$1" --wall-seconds "$2" >/dev/null
	ppay usage report "$ID" >rep.json
	local n
	n=$(jq -r .seq rep.json)
	mv rep.json "rep.$n.json"
	rpay usage answer "rep.$n.json" >"v.$n.json"
}

# spaced: the same documents, not in canonical form (for the full reader)
spaced() { sed 's/,"/, "/g'; }

@test "pay scan: canonical documents take the strict reader, other spellings the full one" {
	round 10 10
	V=$(cat v.1.json) U=$(cat rep.1.json)
	run test-tool pay scan voucher <<-EOF
		$V
		$(spaced <<<"$V")
		$(jq -c '. as $d | {sig: $d.sig} + ($d | del(.sig))' <<<"$V")
		$(sed 's/"seq":1,/"seq":1.0,/' <<<"$V")
		$(sed 's/"seq":1,/"seq":1e0,/' <<<"$V")
		$(sed 's|"nunet/voucher"|"nunet\\/voucher"|' <<<"$V")
		$(sed 's/"v":1}/"\\u0076":1}/' <<<"$V")
		$(sed 's/"ts":[0-9]*/"ts":1234567890123456/' <<<"$V")
		$(sed 's/"v":1}/"v":1,"v":1}/' <<<"$V")
	EOF
	assert_success
	assert_line --index 0 'fast ok'
	for i in 1 2 3 4 5 6 7 8; do
		assert_line --index $i 'full ok'
	done
	run test-tool pay scan usage <<-EOF
		$U
		$(spaced <<<"$U")
		$(sed 's/"cpu_ms":10000/"cpu_ms":10000.0/' <<<"$U")
		$V
	EOF
	assert_success
	assert_line --index 0 'fast ok'
	assert_line --index 1 'full ok'
	assert_line --index 2 'full ok'
	assert_line --index 3 'full: type: expected "nunet/usage", got "nunet/voucher"'
}

@test "pay scan: malformed documents are left to the full reader and its message" {
	round 10 10
	V=$(cat v.1.json) U=$(cat rep.1.json)
	run test-tool pay scan voucher <<-EOF
		$(sed 's/"seq":1,/"seq":-1,/' <<<"$V")
		$(sed 's/"seq":1,/"seq":0,/' <<<"$V")
		$(sed 's/"amount":"[0-9]*"/"amount":"0100"/' <<<"$V")
		$(sed 's/"amount":"\([0-9]*\)"/"amount":\1/' <<<"$V")
		$(sed 's/"amount":"[0-9]*"/"amount":"18446744073709551616"/' <<<"$V")
		$(sed 's/"v":1}/"v":2}/' <<<"$V")
		$(sed 's/"v":1}/"v":1,"w":0}/' <<<"$V")
		$(jq -c 'del(.sig)' <<<"$V")
		$(jq -c '.sig = 7' <<<"$V")
		$(jq -c '.contract |= ascii_upcase' <<<"$V")
		$(jq -c '.requester = "did:key:z6Mk0OIl"' <<<"$V")
		$(sed 's/"seq":1,/"seq":9007199254740994,/' <<<"$V")
		[1]
	EOF
	assert_success
	assert_line --index 0 'full: seq: -1 is out of range (0..9007199254740992)'
	assert_line --index 1 'full: seq: sequence numbers start at 1'
	assert_line --index 2 "full: amount: '0100' is not an amount: leading zeros"
	assert_line --index 3 'full: amount: an amount is a string of integer minor units, not a number'
	assert_line --index 4 "full: amount: amount '18446744073709551616' is too large"
	assert_line --index 5 'full: v: version 2 is not supported'
	assert_line --index 6 "full: nunet/voucher: unknown field 'w'"
	assert_line --index 7 'full: sig: missing'
	assert_line --index 8 'full: sig: expected a string'
	[[ "${lines[9]}" == "full: contract: '"*"' is not a contract id (64 hex digits)" ]]
	assert_line --index 10 "full: requester: 'did:key:z6Mk0OIl' is not a did:key"
	assert_line --index 11 "full: seq: expected an integer"
	assert_line --index 12 'full: expected a JSON object, got array'
	run test-tool pay scan usage <<-EOF
		$(sed 's/"wall_ms":10000/"wall_ms":-1/' <<<"$U")
		$(sed 's/"wall_ms":10000}/"wall_ms":10000,"gpu_ms":1}/' <<<"$U")
		$(sed 's/"allocations":1,//' <<<"$U")
		$(jq -c '.usage = 1' <<<"$U")
	EOF
	assert_success
	assert_line --index 0 'full: usage.wall_ms: -1 is out of range (0..9007199254740992)'
	assert_line --index 1 "full: usage: unknown field 'gpu_ms'"
	assert_line --index 2 'full: usage.allocations: missing'
	assert_line --index 3 'full: usage: expected an object'
}

@test "the voucher written from its fields is its document's canonical form, signed over it" {
	round 10 10
	round 20 20
	# what nn_json_canon writes for the parsed voucher: the same bytes
	assert_equal "$(test-tool canon <v.2.json)" "$(cat v.2.json)"
	# the jv path (nn_pay_usage_answer through nn_pay_handle) gives the same form
	round_jv() {
		ppay usage record "$ID" --alloc a1 --cpu-seconds 30 --wall-seconds 30 >/dev/null
		ppay usage report "$ID" | test-tool pay handle /pay/usage "$R"
	}
	run round_jv
	assert_success
	assert_equal "$(test-tool canon <<<"$output")" "$output"
	assert_equal "$(jq -r '(.seq|tostring) + " " + .amount' <<<"$output")" "3 400"
	# the full reader checks the signature over the canonical form it makes
	run ppay voucher verify - < <(spaced <v.2.json)
	assert_success
	assert_output "{\"amount\":\"300\",\"contract\":\"$ID\",\"seq\":2,\"valid\":true}"
}

# run_both CMD FILE: CMD (a nunet-pay subcommand line taking FILE) on the
# canonical lines with R and P, and on their spaced form with copies of R
# and P made before; the outputs (vouchers without ts and sig), errors,
# exit codes and logged refusals must be the same
run_both() {
	local cmd=$1 file=$2 h
	rm -rf R2 P2
	cp -a "$R" R2
	cp -a "$P" P2
	spaced <"$file" >"$file.spaced"
	set +e
	nunet-pay --home "$3" $cmd "$file" >out.fast 2>err.fast
	echo "exit $?" >>err.fast
	nunet-pay --home "$4" $cmd "$file.spaced" >out.full 2>err.full
	echo "exit $?" >>err.full
	set -e
	for h in out.fast out.full; do
		jq -c 'del(.ts, .sig)' "$h" >"$h.cmp"
	done
	assert_equal "$(cat out.full.cmp)" "$(cat out.fast.cmp)"
	assert_equal "$(cat err.full)" "$(cat err.fast)"
	assert_equal "$(nunet-pay --home "$4" refusals | jq -c 'del(.ts)')" \
		"$(nunet-pay --home "$3" refusals | jq -c 'del(.ts)')"
}

@test "nunet-pay answers the same whichever reader took the line: reports" {
	round 10 10
	round 20 20
	ppay usage record "$ID" --alloc a1 --cpu-seconds 30 --wall-seconds 30 >/dev/null
	ppay usage report "$ID" >r3.json
	ppay usage record "$ID" --alloc a1 --cpu-seconds 600 --wall-seconds 40 >/dev/null
	ppay usage report "$ID" >big.json
	other=$(printf '%064d' 7)
	{
		cat rep.1.json				# retransmission: the same voucher
		jq -c '.seq = 1' r3.json | test-tool pay sign usage "$P/key"	# replay
		jq -c '.amount = "4999"' r3.json | test-tool pay sign usage "$P/key"	# wrong amount
		jq -c '.usage.cpu_ms = 400000' r3.json	# tampered: bad signature
		jq -c --arg c "$other" '.contract = $c' r3.json | test-tool pay sign usage "$P/key"
		jq -c '.usage.cpu_ms = 1000 | .amount = "110"' r3.json | test-tool pay sign usage "$P/key"
		cat r3.json				# accepted
		cat big.json				# over the cap
		jq -c '.seq = 1.5' r3.json		# malformed
		echo 'not json'
	} >stream
	run_both "usage answer" stream "$R" R2
	assert_equal "$(grep -c . out.fast)" 2
	assert_equal "$(tail -1 err.fast)" "exit 1"
	assert_equal "$(nunet-pay --home "$R" refusals | jq -r .kind | tr '\n' ' ')" \
		"replay usage bad_signature unknown_contract usage over_cap usage "
}

@test "nunet-pay answers the same whichever reader took the line: vouchers" {
	round 10 10
	round 20 20
	round 30 30
	X=$BATS_TEST_TMPDIR/x
	XD=$(nunet-node --home "$X" init)
	other=$(printf '%064d' 7)
	{
		cat v.2.json				# accepted
		cat v.2.json				# replayed
		cat v.1.json				# lower seq
		jq -c '.seq = 3 | .amount = "5"' v.1.json | test-tool pay sign voucher "$R/key"
		jq -c --arg x "$XD" '.provider = $x' v.3.json | test-tool pay sign voucher "$R/key"
		jq -c '.amount = "4000"' v.3.json	# forged
		jq -c '.seq = 4 | .amount = "5001"' v.3.json | test-tool pay sign voucher "$R/key"
		jq -c --arg c "$other" '.contract = $c' v.3.json | test-tool pay sign voucher "$R/key"
		jq -c '.amount = 300' v.3.json		# malformed
		cat v.3.json				# accepted
	} >stream
	run_both "voucher accept" stream "$P" P2
	assert_equal "$(jq -r .seq out.fast | tr '\n' ' ')" "2 3 "
	assert_equal "$(nunet-pay --home "$P" refusals | jq -r .kind | tr '\n' ' ')" \
		"replay lower_seq lower_amount other_provider bad_signature over_cap unknown_contract voucher "
	run_both "voucher verify --contract $ID" stream "$P" P2
}

@test "a stream's kept contract follows what another process writes between batches" {
	round 10 10
	round 20 20
	mkfifo in
	ppay voucher accept in >out 2>err &
	pid=$!
	exec 4>in
	cat v.1.json >&4
	wait_for() { for _ in $(seq 200); do eval "$1" && return 0; sleep 0.05; done; return 1; }
	wait_for '[ "$(grep -c . out)" = 1 ]'
	# meanwhile the contract ends and is settled by another process
	ppay contract complete "$ID" >/dev/null
	ppay settle --export --mark >/dev/null
	cat v.2.json >&4
	exec 4>&-
	st=0
	wait "$pid" || st=$?
	assert_equal "$st" 1
	assert_equal "$(cat err)" "nunet-pay: error: line 2: contract $ID is settled"
	assert_equal "$(ppay contract show "$ID" | jq -r '.state + " " + (.seq|tostring)')" "settled 1"
}

# a node with pay attached (nn_pay_attach), serving R's control socket
pay_node_start() {
	local fifo=$BATS_TEST_TMPDIR/ready
	mkfifo "$fifo"
	test-tool pay serve "$1" 3>"$fifo" 2>>"$BATS_TEST_TMPDIR/node.log" &
	NODE_PIDS+=("$!")
	read -r -t 10 _ <"$fifo" || { cat "$BATS_TEST_TMPDIR/node.log" >&2; return 1; }
	rm -f "$fifo"
}

# envelope BE BODYFILE ID: a request from R's owner key, signed, one line
envelope() {
	local now
	now=$(date +%s%3N)
	jq -nc --arg be "$1" --arg id "$3" --arg from "$RD" --argjson now "$now" --slurpfile b "$2" \
		'{v:1, type:"msg", id:$id, from:$from, to:"local", ts:$now, exp:($now + 60000), be:$be, body:$b[0]}' |
		test-tool env sign "$R/key"
}

@test "in the node: the body read as text and the envelope parsed in full give the same answers" {
	pay_node_start "$R"
	ppay usage record "$ID" --alloc a1 --cpu-seconds 10 --wall-seconds 10 >/dev/null
	ppay usage report "$ID" >rep.json
	jq -c '.amount = "9"' rep.json >forged.json
	# canonical lines take the text path; the same envelopes spaced out are
	# parsed in full and reach the behavior as a jv
	{
		envelope /pay/usage rep.json 00000000000000000000000000000001
		envelope /pay/usage rep.json 00000000000000000000000000000002 | spaced
		envelope /pay/usage forged.json 00000000000000000000000000000003
		envelope /pay/usage forged.json 00000000000000000000000000000004 | spaced
	} >req.jsonl
	run rawsock -n 4 "$R/node.sock" <req.jsonl
	assert_success
	assert_equal "${#lines[@]}" 4
	# the retransmitted report gets the very voucher the first one got
	assert_equal "$(jq -c .body <<<"${lines[1]}")" "$(jq -c .body <<<"${lines[0]}")"
	assert_equal "$(jq -r '.body.type + " " + .body.amount' <<<"${lines[0]}")" "nunet/voucher 200"
	# the forged one is refused with the same error both ways
	assert_equal "$(jq -c '.body | del(.re)' <<<"${lines[3]}")" "$(jq -c '.body | del(.re)' <<<"${lines[2]}")"
	[[ "$(jq -r .body.message <<<"${lines[2]}")" == *"bad signature"* ]]
	# and the voucher is kept by the provider's node, by either path
	pay_node_start "$P"
	jq -c .body <<<"${lines[0]}" >v.json
	PDID=$(jq -r .provider rep.json)
	env_p() {
		local now
		now=$(date +%s%3N)
		jq -nc --arg id "$2" --arg from "$PDID" --argjson now "$now" --slurpfile b v.json \
			'{v:1, type:"msg", id:$id, from:$from, to:"local", ts:$now, exp:($now + 60000), be:"/pay/voucher", body:$b[0]}' |
			test-tool env sign "$P/key" | $1
	}
	{ env_p cat 00000000000000000000000000000005; env_p spaced 00000000000000000000000000000006; } >vreq.jsonl
	run rawsock -n 2 "$P/node.sock" <vreq.jsonl
	assert_success
	assert_equal "$(jq -c .body <<<"${lines[0]}")" "{\"amount\":\"200\",\"contract\":\"$ID\",\"seq\":1}"
	[[ "$(jq -r .body.message <<<"${lines[1]}")" == "replayed voucher: seq 1 of contract $ID is already accepted" ]]
}
