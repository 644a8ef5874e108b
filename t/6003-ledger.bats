#!/usr/bin/env bats
# The ledger: what is owed by and to whom, settlement export, termination
# with its notice, refusal log, and the integrity check.
load lib/common
bats_require_minimum_version 1.5.0

# three identities made once per file; each test gets its own copies
setup_file() {
	local h
	for h in r p q; do
		nunet-node --home "$BATS_FILE_TMPDIR/$h" init >/dev/null
	done
}

setup() {
	common_setup
	R=$BATS_TEST_TMPDIR/r
	P=$BATS_TEST_TMPDIR/p
	Q=$BATS_TEST_TMPDIR/q
	cp -a "$BATS_FILE_TMPDIR/r" "$BATS_FILE_TMPDIR/p" "$BATS_FILE_TMPDIR/q" "$BATS_TEST_TMPDIR/"
	RD=$(nunet-node --home "$R" id)
	PD=$(nunet-node --home "$P" id)
	QD=$(nunet-node --home "$Q" id)
	cd "$BATS_TEST_TMPDIR"
}

rpay() { nunet-pay --home "$R" "$@"; }
ppay() { nunet-pay --home "$P" "$@"; }
qpay() { nunet-pay --home "$Q" "$@"; }

# agree HOME_REQ HOME_PROV PROV_DID [ARGS]: prints the contract id
agree() {
	local hr=$1 hp=$2 pd=$3
	shift 3
	nunet-pay --home "$hr" contract propose --provider "$pd" --cpu-rate 10 --cap 100000 \
		--duration 1h "$@" >"prop.$$"
	nunet-pay --home "$hp" contract accept "prop.$$" >"acc.$$"
	nunet-pay --home "$hr" contract accept "acc.$$" >/dev/null
	jq -r .id "acc.$$"
}

# pay HOME_REQ HOME_PROV ID CPU_SECONDS: meter, report, voucher, accept
pay() {
	nunet-pay --home "$2" usage record "$3" --alloc a --cpu-seconds "$4" --wall-seconds 1 >/dev/null
	nunet-pay --home "$2" usage report "$3" | nunet-pay --home "$1" usage answer |
		nunet-pay --home "$2" voucher accept >/dev/null
}

@test "ledger and balance: what is owed by and to whom, on both sides" {
	c1=$(agree "$R" "$P" "$PD")
	c2=$(agree "$R" "$P" "$PD")
	c3=$(agree "$Q" "$P" "$PD")
	pay "$R" "$P" "$c1" 10
	pay "$R" "$P" "$c1" 25
	pay "$R" "$P" "$c2" 7
	pay "$Q" "$P" "$c3" 100
	run ppay ledger
	assert_success
	assert_equal "$(jq -r '[.contract, .role, .peer, .state, (.seq|tostring), .amount] | join(" ")' <<<"$output")" \
"$c1 provider $RD active 2 250
$c2 provider $RD active 1 70
$c3 provider $QD active 1 1000"
	run ppay balance
	assert_success
	assert_equal "$(jq -r '[.peer, .currency, .owed_to_me, .owed_by_me, (.contracts|tostring)] | join(" ")' <<<"$output")" \
"$RD NTX 320 0 2
$QD NTX 1000 0 1"
	run rpay balance
	assert_equal "$output" "{\"contracts\":2,\"currency\":\"NTX\",\"owed_by_me\":\"320\",\"owed_to_me\":\"0\",\"peer\":\"$PD\"}"
	run rpay ledger
	assert_equal "$(jq -r '[.role, .peer, .amount] | join(" ")' <<<"$output" | sort -u)" "requester $PD 250
requester $PD 70"
}

@test "settle --export: claims of finished contracts as JSON lines; --mark settles them" {
	c1=$(agree "$R" "$P" "$PD")
	c2=$(agree "$R" "$P" "$PD")
	pay "$R" "$P" "$c1" 30
	pay "$R" "$P" "$c2" 5
	# nothing is finished yet
	run ppay settle --export
	assert_success
	assert_output ""
	run ppay settle --export --all
	assert_equal "$(wc -l <<<"$output")" 2
	ppay contract complete "$c1" >/dev/null
	run ppay settle --export
	assert_success
	assert_equal "$(jq -r '[.contract, .requester, .provider, .amount, .currency, (.seq|tostring), .state] | join(" ")' <<<"$output")" \
		"$c1 $RD $PD 300 NTX 1 completed"
	# the claim carries the signed voucher and the contract signed by both,
	# so a settlement layer can check it without us
	claim=$output
	assert_equal "$(jq -r '.voucher.type + " " + .voucher.amount + " " + .voucher.requester' <<<"$claim")" "nunet/voucher 300 $RD"
	assert_equal "$(jq -r '.contract_doc.id + " " + (.contract_doc.sigs | keys | join(","))' <<<"$claim")" "$c1 provider,requester"
	jq -c .voucher <<<"$claim" >claim-voucher.json
	run --separate-stderr ppay voucher verify claim-voucher.json
	assert_failure 1	# a valid document, and already the newest we hold
	[[ "$stderr" == *"replayed voucher: seq 1 of contract $c1 is already accepted" ]]
	run ppay settle --export --mark
	assert_equal "$(jq -r .contract <<<"$output")" "$c1"
	assert_equal "$(ppay contract show "$c1" | jq -r .state)" settled
	run ppay settle --export
	assert_output ""
	# settled contracts leave the balance, and take no more vouchers
	assert_equal "$(ppay balance | jq -r .owed_to_me)" 50
	ppay usage record "$c1" --alloc a --cpu-seconds 99 2>/dev/null && false
	run --separate-stderr ppay usage report "$c1"
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: contract $c1 is settled: no usage to report"
	run ppay ledger --all
	assert_equal "$(jq -r 'select(.contract == "'"$c1"'") | .state' <<<"$output")" settled
}

@test "terminate: reports are answered during the notice, refused after it" {
	c1=$(agree "$R" "$P" "$PD" --notice 1h)
	c2=$(agree "$R" "$P" "$PD" --notice 0s)
	pay "$R" "$P" "$c1" 10
	pay "$R" "$P" "$c2" 10
	ppay usage record "$c1" --alloc a --cpu-seconds 20 --wall-seconds 2 >/dev/null
	ppay usage report "$c1" >r1.json
	ppay usage record "$c2" --alloc a --cpu-seconds 20 --wall-seconds 2 >/dev/null
	ppay usage report "$c2" >r2.json
	rpay contract terminate "$c1" >/dev/null
	rpay contract terminate "$c2" >/dev/null
	run rpay usage answer r1.json
	assert_success
	assert_equal "$(jq -r .amount <<<"$output")" 200
	echo "$output" >v1.json
	run --separate-stderr rpay usage answer r2.json
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: contract $c2 is terminated and its notice (0s) has run out"
	# the provider keeps the voucher given during the notice
	ppay contract terminate "$c1" >/dev/null
	run ppay voucher accept v1.json
	assert_success
	ppay contract terminate "$c2" >/dev/null
	run ppay settle --export
	assert_equal "$(jq -r '.contract + " " + .amount' <<<"$output")" "$c1 200
$c2 100"
}

@test "refusals are logged with their kind" {
	c1=$(agree "$R" "$P" "$PD" --cap 50)
	ppay usage record "$c1" --alloc a --cpu-seconds 10 >/dev/null
	ppay usage report "$c1" >big.json
	rpay usage answer big.json 2>/dev/null && false
	run rpay refusals
	assert_success
	assert_equal "$(jq -r '.kind + " " + .contract' <<<"$output")" "over_cap $c1"
	[[ "$(jq -r .message <<<"$output")" == "usage report 1: amount 100 is over the contract's cap of 50" ]]
	[ "$(jq -r .ts <<<"$output")" -gt 0 ]
}

@test "ledger --verify checks signatures and sequences of what is stored" {
	c1=$(agree "$R" "$P" "$PD")
	pay "$R" "$P" "$c1" 10
	pay "$R" "$P" "$c1" 20
	pay "$R" "$P" "$c1" 30
	run ppay ledger --verify
	assert_success
	run rpay ledger --verify
	assert_success
	# someone edits the database behind our back: a row holds a voucher's
	# fields and signature, and its text is written from them
	amount=$(sqlite3 "$P/ledger.db" "SELECT amount FROM vouchers WHERE seq = 3")
	sqlite3 "$P/ledger.db" "UPDATE vouchers SET amount = '99999' WHERE seq = 3"
	run --separate-stderr ppay ledger --verify
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: contract $c1: received voucher 3: bad signature"
	sqlite3 "$P/ledger.db" "UPDATE vouchers SET amount = '$amount', sig = zeroblob(64) WHERE seq = 3"
	run --separate-stderr ppay ledger --verify
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: contract $c1: received voucher 3: bad signature"
	# a row that holds a text (from schema 2) must hold that voucher's
	sqlite3 "$P/ledger.db" "UPDATE vouchers SET doc = '{\"v\":1}' WHERE seq = 3"
	run --separate-stderr ppay ledger --verify
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: contract $c1: received voucher 3 does not match its row"
	# an issued voucher removed from the middle leaves a gap
	sqlite3 "$R/ledger.db" "DELETE FROM vouchers WHERE seq = 2"
	run --separate-stderr rpay ledger --verify
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: contract $c1: issued voucher seq 3 follows 1"
}

@test "the EXAMPLES of man/nunet-pay.1 run as written" {
	# each .Bd -literal block, prompts and line continuations undone
	awk '/^\.Sh EXAMPLES/ { on = 1 } /^\.Sh SEE ALSO/ { on = 0 }
	     on && /^\.Bd/ { b++; inb = 1; next } /^\.Ed/ { inb = 0; next }
	     on && inb { print > ("block." b) }' "$NUNET_SRC/man/nunet-pay.1"
	[ -f block.4 ]
	for f in block.*; do
		sed -e 's/^\$ //' -e 's/\\e$/\\/' \
		    -e "s|/usr/local/share/nunet|$NUNET_SRC/share/nunet|" "$f" >"$f.sh"
	done
	export NUNET_HOME=$R PROVIDER=$PD REQUESTER=$RD P
	run bash -e block.1.sh
	assert_success
	assert_equal "$(rpay contract list | jq -r .state)" accepted
	export ID=$(jq -r .id acc.json)
	run bash -e block.2.sh
	assert_success
	assert_equal "$(jq -r .rates.cpu_second <<<"$output")" 20
	run bash -e block.3.sh
	assert_success
	assert_equal "$(jq -r '.accepted|tostring' <<<"${lines[-1]}")" true
	run bash -e block.4.sh
	assert_success
	assert_equal "$(jq -r .owed_by_me <<<"${lines[0]}")" 1200
	assert_equal "$(jq -r '.contract + " " + .amount + " " + .state' claims.jsonl)" "$ID 1200 completed"
	assert_equal "$(ppay contract show "$ID" | jq -r .state)" settled
}

@test "a ledger of schema 2 opens as schema 3 and keeps its vouchers" {
	# t/fixtures/pay-v2: two ledgers written by schema 2 (the texts of
	# the documents in rows), their keys, the six reports of their contract
	# (four answered) and the four vouchers issued
	local fx=$NUNET_SRC/t/fixtures/pay-v2 h id
	for h in r p; do
		mkdir -m 700 old$h
		cp "$fx/$h/key" old$h/key
		chmod 600 old$h/key
		sqlite3 old$h/ledger.db <"$fx/$h/ledger.sql"
		sqlite3 old$h/ledger.db 'PRAGMA journal_mode=WAL; PRAGMA user_version=2' >/dev/null
	done
	id=$(head -1 "$fx/vouchers.jsonl" | jq -r .contract)
	run nunet-pay --home oldr ledger
	assert_success
	assert_equal "$(jq -r '.role + " " + (.seq|tostring) + " " + .amount' <<<"$output")" "requester 4 140"
	assert_equal "$(sqlite3 oldr/ledger.db 'PRAGMA user_version')" 3
	assert_equal "$(sqlite3 oldr/ledger.db "SELECT COUNT(*), COUNT(doc) FROM vouchers WHERE role = 'issued'")" "4|4"
	# each issued voucher's row holds the report it answered
	assert_equal "$(sqlite3 oldr/ledger.db "SELECT group_concat(report_seq || ':' || cpu_ms || ':' || (rep_doc IS NOT NULL)) FROM vouchers WHERE role = 'issued'")" "$(head -4 "$fx/reports.jsonl" | jq -r '"\(.seq):\(.usage.cpu_ms):1"' | paste -sd,)"
	run nunet-pay --home oldp ledger
	assert_equal "$(jq -r '.role + " " + (.seq|tostring) + " " + .amount' <<<"$output")" "provider 4 140"
	run nunet-pay --home oldr ledger --verify
	assert_success
	run nunet-pay --home oldp ledger --verify
	assert_success
	# a report answered under schema 2 gets its voucher again, byte for byte
	run nunet-pay --home oldr usage answer <(sed -n 3p "$fx/reports.jsonl")
	assert_success
	assert_equal "$output" "$(sed -n 3p "$fx/vouchers.jsonl")"
	# a voucher kept under schema 2 is a replay
	run --separate-stderr nunet-pay --home oldp voucher accept <(sed -n 4p "$fx/vouchers.jsonl")
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: line 1: replayed voucher: seq 4 of contract $id is already accepted"
	# new reports and vouchers follow on, kept in the compact rows
	nunet-pay --home oldr usage answer <(sed -n 5,6p "$fx/reports.jsonl") >new.jsonl
	assert_equal "$(jq -r .seq new.jsonl | paste -sd' ')" "5 6"
	assert_equal "$(sqlite3 oldr/ledger.db "SELECT seq, report_seq, rep_doc IS NULL, length(rep_sig), doc IS NULL FROM vouchers WHERE role = 'issued' AND seq > 4" | paste -sd' ')" "5|5|1|64|1 6|6|1|64|1"
	# a report answered under schema 3 gets its voucher again too
	run nunet-pay --home oldr usage answer <(sed -n 6p "$fx/reports.jsonl")
	assert_success
	assert_equal "$output" "$(sed -n 2p new.jsonl)"
	run nunet-pay --home oldp voucher accept new.jsonl
	assert_success
	assert_equal "$(sqlite3 oldp/ledger.db "SELECT seq, doc IS NULL, length(sig) FROM vouchers WHERE role = 'received' ORDER BY seq" | paste -sd' ')" "1|0| 2|0| 3|0| 4|0| 5|1|64 6|1|64"
	run nunet-pay --home oldr ledger --verify
	assert_success
	run nunet-pay --home oldp ledger --verify
	assert_success
	# the claim carries the newest voucher's text, written from its row
	run nunet-pay --home oldp settle --export --all
	assert_success
	assert_equal "$(jq -c .voucher <<<"$output")" "$(sed -n 2p new.jsonl)"
}
