#!/usr/bin/env bats
# nunet-pay contracts: propose, accept, show, list, terminate, the states,
# the contract id, and the refusal of bad terms.
load lib/common
load lib/pay
bats_require_minimum_version 1.5.0

# two identities made once per file; each test gets its own copy
setup_file() {
	nunet-node --home "$BATS_FILE_TMPDIR/r" init >/dev/null
	nunet-node --home "$BATS_FILE_TMPDIR/p" init >/dev/null
}

setup() {
	pay_homes
	RD=$(nunet-node --home "$R" id)
	PD=$(nunet-node --home "$P" id)
}

# a contract proposed by R, accepted by P, and the countersigned copy back at R
agree() {
	rpay contract propose --provider "$PD" --cpu-rate 10 --gib-rate 2 --alloc-rate 100 \
		--cap 5000 --duration 1h "$@" >prop.json
	ppay contract accept prop.json >acc.json
	rpay contract accept acc.json >/dev/null
	ID=$(jq -r .id acc.json)
}

@test "propose prints the terms signed by the proposer, with the id of their canonical form" {
	run rpay contract propose --provider "$PD" --cpu-rate 10 --gib-rate 2 --cap 5000 --duration 2h
	assert_success
	echo "$output" >prop.json
	assert_equal "$(jq -r .requester prop.json)" "$RD"
	assert_equal "$(jq -r .provider prop.json)" "$PD"
	assert_equal "$(jq -c .rates prop.json)" '{"allocation":"0","cpu_second":"10","deployment":"0","gib_second":"2"}'
	assert_equal "$(jq -r .duration_s prop.json)" 7200
	assert_equal "$(jq -r '.sigs | keys | join(",")' prop.json)" requester
	# id = hex SHA-256 of the RFC 8785 form of the document without id and sigs
	want=$(jq -c 'del(.id, .sigs)' prop.json | test-tool canon | tr -d '\n' | sha256sum | cut -d' ' -f1)
	assert_equal "$(jq -r .id prop.json)" "$want"
	run rpay contract show "$want"
	assert_success
	assert_equal "$(jq -r .state <<<"$output")" proposed
	assert_equal "$(jq -r .role <<<"$output")" requester
}

@test "accept countersigns; both sides hold the contract as accepted" {
	agree
	assert_equal "$(jq -r '.sigs | keys | join(",")' acc.json)" provider,requester
	assert_equal "$(jq -r .id prop.json)" "$ID"
	run ppay contract list
	assert_success
	assert_equal "$(jq -r '.id + " " + .state + " " + .role' <<<"$output")" "$ID accepted provider"
	run rpay contract list --state accepted
	assert_equal "$(jq -r '.id + " " + .state + " " + .role' <<<"$output")" "$ID accepted requester"
	run rpay contract list --state proposed
	assert_output ""
	# accepting again changes nothing
	run ppay contract accept acc.json
	assert_success
	assert_equal "$(jq -r .id <<<"$output")" "$ID"
}

@test "a provider may propose too, and the requester accept from stdin" {
	ppay contract propose --requester "$RD" --cpu-rate 1 --cap 10 --duration 60s >prop.json
	run rpay contract accept - <prop.json
	assert_success
	assert_equal "$(jq -r '.sigs | keys | join(",")' <<<"$output")" provider,requester
	assert_equal "$(jq -r .requester <<<"$output")" "$RD"
}

@test "states: accepted, completed, settled; a settled contract cannot be terminated" {
	agree
	run ppay contract complete "$ID"
	assert_success
	assert_equal "$(jq -r .state <<<"$output")" completed
	run ppay contract settle "$ID"
	assert_success
	assert_equal "$(jq -r .state <<<"$output")" settled
	run --separate-stderr ppay contract terminate "$ID"
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: contract $ID is settled: it cannot become terminated"
}

@test "terminate: a proposal is withdrawn, an accepted contract ends with a timestamp" {
	rpay contract propose --provider "$PD" --cap 10 --duration 1h >prop.json
	id=$(jq -r .id prop.json)
	run rpay contract terminate "$id"
	assert_success
	assert_equal "$(jq -r .state <<<"$output")" terminated
	run ppay contract accept prop.json
	assert_success	# the provider may still sign its copy; R no longer counts it
	agree
	run rpay contract terminate "$ID"
	assert_success
	assert_equal "$(jq -r .state <<<"$output")" terminated
	[ "$(jq -r .ended <<<"$output")" -gt 0 ]
	run --separate-stderr rpay contract complete "$ID"
	assert_failure 1
	assert_equal "$stderr" "nunet-pay: error: contract $ID is terminated: it cannot become completed"
}

@test "draft: stored unsigned, then proposed by id" {
	run rpay contract propose --draft --provider "$PD" --cap 100 --duration 1h
	assert_success
	id=$(jq -r .id <<<"$output")
	assert_equal "$(jq -r '.sigs // "none"' <<<"$output")" none
	assert_equal "$(rpay contract show "$id" | jq -r .state)" draft
	run rpay contract propose "$id"
	assert_success
	assert_equal "$(jq -r .id <<<"$output")" "$id"
	assert_equal "$(jq -r '.sigs | keys | join(",")' <<<"$output")" requester
	assert_equal "$(rpay contract show "$id" | jq -r .state)" proposed
}

@test "rates as floats, negative numbers, exponents or '+' are refused" {
	for bad in 0.5 -1 1e3 +5 05 '' 18446744073709551616; do
		run --separate-stderr rpay contract propose --provider "$PD" --cpu-rate "$bad" --cap 10 --duration 1h
		assert_failure 65
		[[ "$stderr" == "nunet-pay: error: --cpu-rate: "* ]]
	done
	run --separate-stderr rpay contract propose --provider "$PD" --cap -3 --duration 1h
	assert_failure 65
	# the same in a terms file: a JSON number, a float string, a negative string
	for rates in '{"cpu_second":0.5}' '{"cpu_second":10}' '{"gib_second":"1.5"}' '{"allocation":"-2"}'; do
		jq -n --arg r "$RD" --arg p "$PD" --argjson rates "$rates" \
			'{requester:$r, provider:$p, rates:$rates, cap:"100", duration_s:60}' >terms.json
		run --separate-stderr rpay contract propose --terms terms.json
		assert_failure 65
		[[ "$stderr" == "nunet-pay: error: rates."* ]]
	done
	run rpay contract list
	assert_output ""
}

@test "bad terms: unknown field, duration 0, same party twice, not a did:key" {
	jq -n --arg r "$RD" --arg p "$PD" '{requester:$r, provider:$p, cap:"1", duration_s:60, colour:"red"}' >t1.json
	run --separate-stderr rpay contract propose --terms t1.json
	assert_failure 65
	assert_equal "$stderr" "nunet-pay: error: contract: unknown field 'colour'"
	run --separate-stderr rpay contract propose --provider "$RD" --cap 1 --duration 1h
	assert_failure 65
	assert_equal "$stderr" "nunet-pay: error: requester and provider are the same identity"
	run --separate-stderr rpay contract propose --provider did:web:example.com --cap 1 --duration 1h
	assert_failure 65
	jq -n --arg r "$RD" --arg p "$PD" '{requester:$r, provider:$p, cap:"1", duration_s:0}' >t2.json
	run --separate-stderr rpay contract propose --terms t2.json
	assert_failure 65
	assert_equal "$stderr" "nunet-pay: error: duration_s: must be above 0"
}

@test "tampered or forged contracts are refused" {
	rpay contract propose --provider "$PD" --cpu-rate 10 --cap 5000 --duration 1h >prop.json
	# a changed cap no longer hashes to the id
	jq -c '.cap = "9999999"' prop.json >t.json
	run --separate-stderr ppay contract accept t.json
	assert_failure 1
	[[ "$stderr" == *"is not the hash of the contract's terms"* ]]
	# the same change with a fresh id: the requester's signature fails
	jq -c '.cap = "9999999" | del(.id)' prop.json >t.json
	run --separate-stderr ppay contract accept t.json
	assert_failure 1
	[[ "$stderr" == *"bad signature of the requester" ]]
	# unsigned by the other party
	jq -c 'del(.sigs)' prop.json >t.json
	run --separate-stderr ppay contract accept t.json
	assert_failure 1
	[[ "$stderr" == *"not signed by its requester" ]]
	# a third node is neither party
	X=$BATS_TEST_TMPDIR/x
	nunet-node --home "$X" init >/dev/null
	run --separate-stderr nunet-pay --home "$X" contract accept prop.json
	assert_failure 1
	[[ "$stderr" == *"is neither its requester nor its provider" ]]
}

@test "unknown contract id" {
	id=$(printf '%064d' 0)
	for cmd in show terminate complete; do
		run --separate-stderr rpay contract "$cmd" "$id"
		assert_failure 1
		assert_equal "$stderr" "nunet-pay: error: unknown contract '$id'"
	done
}

@test "the example contract in share/ proposes as is once the parties are named" {
	run rpay contract propose --terms "$NUNET_SRC/share/nunet/contract-example.json" \
		--requester "$RD" --provider "$PD"
	assert_success
	assert_equal "$(jq -r .rates.cpu_second <<<"$output")" 20
	assert_equal "$(jq -r .termination.notice_s <<<"$output")" 300
	# options override the file
	run rpay contract propose --terms "$NUNET_SRC/share/nunet/contract-example.json" \
		--requester "$RD" --provider "$PD" --cap 7 --cpu-rate 3 --notice 5m
	assert_success
	assert_equal "$(jq -r '.cap + " " + .rates.cpu_second + " " + .rates.gib_second' <<<"$output")" "7 3 5"
	assert_equal "$(jq -r .termination.notice_s <<<"$output")" 300
}

@test "a sealed key needs NUNET_PASSPHRASE" {
	S=$BATS_TEST_TMPDIR/s
	echo hunter2 >pass
	nunet-node --home "$S" init --passphrase-file pass >/dev/null
	run --separate-stderr nunet-pay --home "$S" contract propose --provider "$PD" --cap 1 --duration 1h
	assert_failure 78
	NUNET_PASSPHRASE=hunter2 run nunet-pay --home "$S" contract propose --provider "$PD" --cap 1 --duration 1h
	assert_success
	run --separate-stderr nunet-pay --home "$BATS_TEST_TMPDIR/nohome" contract list
	assert_failure 78
	[[ "$stderr" == *"nunet-node init"* ]]
}

@test "usage: -h to stdout, bad option to stderr with 64, --version" {
	run --separate-stderr nunet-pay -h
	assert_success
	[[ "$output" == "usage: nunet-pay [--home DIR] contract propose"* ]]
	assert_equal "$stderr" ""
	run --separate-stderr nunet-pay contract propose --bogus
	assert_failure 64
	assert_equal "$output" ""
	[[ "$stderr" == *"usage: nunet-pay"* ]]
	run --separate-stderr nunet-pay frobnicate
	assert_failure 64
	run nunet-pay --version
	assert_success
	assert_output --regexp '^nunet-pay [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "the ledger is its own database: WAL, schema version 3, synchronous=NORMAL" {
	agree
	[ -f "$R/ledger.db" ]
	assert_equal "$(sqlite3 "$R/ledger.db" 'PRAGMA journal_mode')" wal
	assert_equal "$(sqlite3 "$R/ledger.db" 'PRAGMA user_version')" 3
	run sqlite3 "$R/ledger.db" "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
	assert_output $'contracts\nrefusals\nreports\nusage\nvouchers'
	# as the library opens it: 1 is NORMAL (in WAL mode: durable against a
	# killed process, which is what the ledger promises)
	assert_equal "$(test-tool pay sync "$R/ledger.db")" 1
}
