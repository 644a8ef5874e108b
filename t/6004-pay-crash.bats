#!/usr/bin/env bats
# kill -9 at random points of a stream of voucher acceptances (provider) and
# of usage answers (requester), then check the ledger's invariants: nothing
# reported as accepted is lost, nothing is counted twice, sequences stay
# whole.
load lib/common
bats_require_minimum_version 1.5.0

N=80

setup_file() {
	local F=$BATS_FILE_TMPDIR
	export PATH="$NUNET_BUILD/bin:$PATH"
	PD=$(nunet-node --home "$F/p" init)
	nunet-node --home "$F/r" init >/dev/null
	nunet-pay --home "$F/r" contract propose --provider "$PD" --cpu-rate 3 --cap 1000000 \
		--duration 24h >"$F/prop.json"
	nunet-pay --home "$F/p" contract accept "$F/prop.json" >"$F/acc.json"
	nunet-pay --home "$F/r" contract accept "$F/acc.json" >/dev/null
	ID=$(jq -r .id "$F/acc.json")
	: >"$F/reports.jsonl"
	for i in $(seq 1 $N); do
		nunet-pay --home "$F/p" usage record "$ID" --alloc a --cpu-seconds "$i" --wall-seconds 1 >/dev/null
		nunet-pay --home "$F/p" usage report "$ID" >>"$F/reports.jsonl"
	done
	# the requester's home before it answered anything, for the second test
	cp -a "$F/r" "$F/r0"
	nunet-pay --home "$F/r" usage answer "$F/reports.jsonl" >"$F/vouchers.jsonl"
}

setup() {
	common_setup
	F=$BATS_FILE_TMPDIR
	cd "$BATS_TEST_TMPDIR"
	cp -a "$F/p" p
	cp -a "$F/r0" r
	ID=$(jq -r .id "$F/acc.json")
}

teardown() {
	local p
	for p in ${KILL_PIDS:-}; do
		kill -9 "$p" 2>/dev/null || true
	done
}

# feed FILE line by line (separate writes: batches of varied sizes), with
# a pause every few lines so that a kill lands in the middle of the stream
feed() {
	local l n=0
	while IFS= read -r l; do
		printf '%s\n' "$l" || return 0
		n=$((n + 1))
		[ $((n % 6)) -ne 0 ] || sleep 0.002
	done <"$1"
}

# crash_loop ROUNDS HOME FILE CMD...: run `nunet-pay --home HOME CMD` on a
# paced feed of FILE from the line after the highest seq printed so far (as
# a sender resends what was not acknowledged), kill -9 it after 3 to 32 ms;
# every third round runs two at once.  Outputs go to out.ROUND.K.
crash_loop() {
	local rounds=$1 home=$2 file=$3 i k pids start
	shift 3
	for i in $(seq 1 "$rounds"); do
		start=$(cat out.* 2>/dev/null | grep -h '^{.*}$' | jq -s 'map(.seq) | max // 0')
		tail -n +"$((start + 1))" "$file" >"feed.$i"
		pids=()
		for k in $(seq 1 $((i % 3 == 0 ? 2 : 1))); do
			feed "feed.$i" | nunet-pay --home "$home" "$@" >"out.$i.$k" 2>/dev/null &
			pids+=($!)
			KILL_PIDS="${KILL_PIDS:-} $!"
		done
		sleep "$(printf '0.%03d' $((RANDOM % 30 + 3)))"
		kill -9 "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	done
	# the kills must have cut some streams short, or this tested nothing
	local cut=0
	for i in $(seq 1 "$rounds"); do
		[ "$(cat out."$i".* | grep -c '^{.*}$')" -lt "$(wc -l <"feed.$i")" ] && cut=$((cut + 1))
	done
	[ "$cut" -gt 0 ]
}

@test "provider: kill -9 during voucher acceptance loses no accepted voucher and counts none twice" {
	crash_loop 20 p "$F/vouchers.jsonl" voucher accept
	# a last uninterrupted pass takes whatever is left
	nunet-pay --home p voucher accept "$F/vouchers.jsonl" >out.final 2>/dev/null || true
	run nunet-pay --home p ledger --verify
	assert_success
	# every voucher is held exactly once, with its own sequence number
	assert_equal "$(sqlite3 p/ledger.db "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM vouchers WHERE role = 'received'")" "$N|$N|1|$N"
	# everything printed as accepted is in the ledger, and printed once only
	grep -h '^{.*}$' out.* | jq -r 'select(.accepted) | .seq' | sort -n >printed
	[ -s printed ]
	run uniq -d printed
	assert_output ""
	while read -r s; do
		[ "$(sqlite3 p/ledger.db "SELECT COUNT(*) FROM vouchers WHERE role = 'received' AND seq = $s")" = 1 ]
	done <printed
	# and what is owed is the newest voucher, nothing more
	last=$(tail -n 1 "$F/vouchers.jsonl" | jq -r .amount)
	assert_equal "$(nunet-pay --home p balance | jq -r .owed_to_me)" "$last"
	assert_equal "$(nunet-pay --home p contract show "$ID" | jq -r '(.seq|tostring) + " " + .amount')" "$N $last"
}

@test "requester: kill -9 while answering reports issues each voucher once, with no gaps" {
	crash_loop 20 r "$F/reports.jsonl" usage answer
	nunet-pay --home r usage answer "$F/reports.jsonl" >out.final 2>/dev/null || true
	run nunet-pay --home r ledger --verify
	assert_success
	assert_equal "$(sqlite3 r/ledger.db "SELECT COUNT(*), COUNT(DISTINCT report_seq), MIN(seq), MAX(seq) FROM vouchers WHERE role = 'issued'")" "$N|$N|1|$N"
	assert_equal "$(sqlite3 r/ledger.db "SELECT COUNT(rep_sig) FROM vouchers WHERE role = 'issued'")" "$N"
	# a report answered in several rounds got the very same voucher each time
	grep -h '^{.*}$' out.* | sort -u >vouchers
	run sh -c 'jq -r .seq vouchers | sort -n | uniq -d'
	assert_output ""
	# and every voucher printed is one the ledger holds: the row's fields
	# and signature (its text is written from them and the contract)
	while IFS= read -r v; do
		s=$(jq -r .seq <<<"$v")
		sig=$(jq -r .sig <<<"$v" | base64 -d | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F)
		[ "$(sqlite3 r/ledger.db "SELECT amount, doc_ts, hex(sig), doc IS NULL FROM vouchers WHERE role = 'issued' AND seq = $s")" = "$(jq -r '[.amount, .ts] | map(tostring) | join("|")' <<<"$v")|$sig|1" ]
	done <vouchers
	# the provider accepts the whole set the requester printed, in order
	jq -s -c 'sort_by(.seq) | .[]' vouchers >sorted
	run nunet-pay --home p voucher accept sorted
	assert_success
	assert_equal "$(nunet-pay --home p ledger --verify | jq -r .seq)" "$N"
}
