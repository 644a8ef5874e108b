#!/usr/bin/env bats
# Crash safety of the node's databases (issue 10): kill -9 of nunet-node at
# random moments, in a loop, while it stores a changing reservation
# (onboarding), events under a stream of messages, peers and edges while
# a swarm forms, and vouchers that reach it as /pay/voucher; after each
# restart nothing acknowledged is lost, nothing is counted twice, and
# every database passes PRAGMA integrity_check.  (t/4303 covers
# allocations across a crash, t/6004 the same for nunet-pay's own ledger.)
load lib/common

VPS="$NUNET_SRC/share/nunet/capability/small-vps.json"	# 2 cores, 4 GiB, 50 GiB

teardown() {
	local p
	for p in ${BG_PIDS:-}; do kill -9 "$p" 2>/dev/null || true; done
	node_stop_all
}

# crash: kill -9 the node started last and reap it
crash() {
	kill -9 "$NODE_PID"
	wait "$NODE_PID" 2>/dev/null || true
	NODE_PIDS=()
}
# pause_random MIN_MS SPAN_MS: sleep MIN + a random part of SPAN ms
pause_random() {
	local ms=$(( $1 + RANDOM % $2 ))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
}
# integrity HOME: every sqlite database in HOME passes integrity_check
integrity() {
	local db n=0
	for db in "$1"/*.db; do
		[ "$(sqlite3 "$db" 'PRAGMA integrity_check')" = ok ] || { echo "$db: not ok" >&2; return 1; }
		n=$((n + 1))
	done
	[ "$n" -ge 1 ]
}
# the reservation of step J: cpu (J mod 19 + 1) tenths of a core, memory
# (J mod 31 + 1) x 64 MiB, as the node reports them
want_cpu() { echo $(( ($1 % 19 + 1) * 100 )); }
want_ram() { echo $(( ($1 % 31 + 1) * 64 * 1048576 )); }

@test "kill -9 during onboarding: the reservation is the last acknowledged one (or the one in flight)" {
	node_init
	cd "$BATS_TEST_TMPDIR"
	j=0 rounds=12 cut=0
	for r in $(seq 1 $rounds); do
		node_start
		if [ "$j" -gt 0 ]; then
			# what the node holds after the crash
			got=$(nunet-node onboard --show | jq -r '"\(.onboarded.cpu) \(.onboarded.ram)"')
			ack=$(tail -n 1 acks 2>/dev/null || echo 0)
			[ "$got" = "$(want_cpu "$ack") $(want_ram "$ack")" ] ||
				[ "$got" = "$(want_cpu "$try") $(want_ram "$try")" ] ||
				{ echo "round $r: holds '$got', acknowledged $ack, in flight $try" >&2; false; }
		fi
		# change the reservation as fast as the node answers, noting each
		# step before it is sent and after it is acknowledged
		(
			k=$j
			while :; do
				k=$((k + 1))
				echo "$k" >"$BATS_TEST_TMPDIR/try"
				t=$(( k % 19 + 1 ))
				nunet-node onboard --cpu "$((t / 10)).$((t % 10))" --memory "$(( (k % 31 + 1) * 64 ))MiB" \
					--disk 1G <"$VPS" >/dev/null 2>&1 || break
				echo "$k" >>"$BATS_TEST_TMPDIR/acks"
			done
		) &
		loop=$!
		BG_PIDS="${BG_PIDS:-} $loop"
		pause_random 150 600
		crash
		wait "$loop" || true
		try=$(cat try)
		[ "$(tail -n 1 acks 2>/dev/null || echo 0)" -lt "$try" ] && cut=$((cut + 1))
		j=$try
		integrity "$NUNET_HOME"
	done
	# the node did change its reservation in between, many times
	[ "$(wc -l <acks)" -ge $((rounds * 2)) ]
	[ "$cut" -ge 1 ]
	node_start
	got=$(nunet-node onboard --show | jq -r '"\(.onboarded.cpu) \(.onboarded.ram)"')
	ack=$(tail -n 1 acks)
	[ "$got" = "$(want_cpu "$ack") $(want_ram "$ack")" ] || [ "$got" = "$(want_cpu "$try") $(want_ram "$try")" ]
}

@test "kill -9 while events are stored under a stream of messages: seq whole and increasing, nothing twice, the acknowledged kept" {
	node_init
	cd "$BATS_TEST_TMPDIR"
	rounds=8
	for r in $(seq 1 $rounds); do
		node_start
		# pings as fast as the node answers them, each answer printed
		(
			seq 1 1000000 | jq -c --argjson r "$r" '{be: "/node/ping", body: {r: $r, i: .}}' |
				nunet-send --raw - >"answers.$r" 2>"err.$r" && echo 0 >"rc.$r" || echo $? >"rc.$r"
		) &
		sender=$!
		BG_PIDS="${BG_PIDS:-} $sender"
		pause_random 800 1200
		date +%s%3N >"killed.$r"
		crash
		wait "$sender" || true
		within 10 '[ -s "rc.$r" ]'
		integrity "$NUNET_HOME"
		[ "$(grep -c '"pong":true' "answers.$r")" -ge 10 ]
		# the client says the node went away (no SIGPIPE), and what it
		# printed is whole lines
		assert_equal "$(cat "rc.$r")" 69
		grep -q '^nunet-send: error: the node closed the connection' "err.$r"
		jq -e . "answers.$r" >/dev/null
	done
	node_start
	node_stop_all
	integrity "$NUNET_HOME"
	db="$NUNET_HOME/node.db"
	# seq: from 1 with no gap and no repeat; time follows it
	assert_equal "$(sqlite3 "$db" 'SELECT MIN(seq), MAX(seq) = COUNT(*), COUNT(*) = COUNT(DISTINCT seq) FROM events')" "1|1|1"
	assert_equal "$(sqlite3 "$db" 'SELECT COUNT(*) FROM events a JOIN events b ON b.seq = a.seq + 1 WHERE b.ts < a.ts')" 0
	nunet-node events --limit 100000000 | jq -r .seq >seqs
	sort -n -c -u seqs
	# every start and the last stop, once each
	assert_equal "$(sqlite3 "$db" "SELECT kind, COUNT(*) FROM events WHERE kind LIKE 'node.%' GROUP BY kind")" "node.start|$((rounds + 1))
node.stop|1"
	# no message recorded twice
	assert_equal "$(sqlite3 "$db" "SELECT COUNT(*) FROM (SELECT json_extract(body, '$.id') AS id FROM events WHERE kind = 'msg.in' GROUP BY id HAVING COUNT(*) > 1)")" 0
	# a ping answered a second or more before its node was killed was
	# stored (events are written every 100 ms; a second allows for load)
	sqlite3 "$db" "SELECT json_extract(body, '$.be') FROM events WHERE kind = 'msg.in' LIMIT 1" | grep -qx /node/ping
	sqlite3 "$db" "SELECT json_extract(body, '$.id') FROM events WHERE kind = 'msg.out'" | sort >stored
	for r in $(seq 1 $rounds); do
		jq -r --argjson k "$(cat "killed.$r")" 'select(.type == "reply" and .ts < $k - 1000) | .id' \
			"answers.$r"
	done | sort >acknowledged
	[ "$(wc -l <acknowledged)" -ge 10 ]
	assert_equal "$(comm -23 acknowledged stored | wc -l)" 0
}

@test "kill -9 while a node writes its peers and edges: one row per peer, none that was listed lost, and it rejoins" {
	declare -A DID
	for n in a b c d; do
		node_init "$BATS_TEST_TMPDIR/$n"
		DID[$n]=$(nunet-node --home "$BATS_TEST_TMPDIR/$n" id)
	done
	cd "$BATS_TEST_TMPDIR"
	export NUNET_SWARM_PROBE_MS=100	# probes, and so edge writes, five times as often
	node_start a --listen 127.0.0.1:0
	A="${DID[a]}@$(jq -r .listen <<<"$READY_LINE")"
	node_start c --listen 127.0.0.1:0 --bootstrap "$A"
	node_start d --listen 127.0.0.1:0 --bootstrap "$A"
	others=("${NODE_PIDS[@]}")
	rounds=10
	for r in $(seq 1 $rounds); do
		node_start b --listen 127.0.0.1:0 --bootstrap "$A"
		# what b lists before it dies was written: it must survive
		end=$(( $(date +%s%3N) + 100 + RANDOM % 1500 ))
		: >"seen.$r"
		while [ "$(date +%s%3N)" -lt "$end" ]; do
			nunet-node --home b peers | jq -r .did >>"seen.$r"
		done
		crash
		NODE_PIDS=("${others[@]}")
		integrity b
		sqlite3 b/node.db 'SELECT dst FROM swarm_edges' | sort >"held.$r"
		assert_equal "$(sort -u "seen.$r" | comm -23 - "held.$r" | wc -l)" 0
		assert_equal "$(sort -u "held.$r" | wc -l)" "$(wc -l <"held.$r")"
		assert_equal "$(sqlite3 b/node.db "SELECT COUNT(*) FROM swarm_edges WHERE src != '${DID[b]}' OR dst = '${DID[b]}'")" 0
	done
	# some rounds ended with peers stored, and b comes back to all of them
	[ "$(cat held.* | sort -u | wc -l)" -eq 3 ]
	node_start b --listen 127.0.0.1:0 --bootstrap "$A"
	within 10 '[ "$(nunet-node --home b peers | jq -r "select(.state == \"alive\") | .did" | wc -l)" -eq 3 ]'
	within 10 '[ "$(nunet-node --home a peers | jq -r "select(.state == \"alive\") | .did" | grep -c "${DID[b]}")" -eq 1 ]'
	for n in a b c d; do integrity "$n"; done
}

# feed FILE: its lines one by one with a pause every other line, so that a
# kill lands in the middle of the stream (as t/6004 does): 60 lines take
# longer than pause_random's 60 ms however fast the node stores them
feed() {
	local l n=0
	while IFS= read -r l; do
		printf '%s\n' "$l" || return 0
		n=$((n + 1))
		[ $((n % 2)) -ne 0 ] || sleep 0.002
	done <"$1"
}

@test "kill -9 of the node while it stores vouchers sent as /pay/voucher: each kept once, none acknowledged lost" {
	N=60
	cd "$BATS_TEST_TMPDIR"
	PD=$(nunet-node --home p init)
	nunet-node --home r init >/dev/null
	nunet-pay --home r contract propose --provider "$PD" --cpu-rate 3 --cap 1000000 --duration 24h >prop.json
	nunet-pay --home p contract accept prop.json >acc.json
	nunet-pay --home r contract accept acc.json >/dev/null
	ID=$(jq -r .id acc.json)
	for i in $(seq 1 $N); do
		nunet-pay --home p usage record "$ID" --alloc a --cpu-seconds "$i" --wall-seconds 1 >/dev/null
		nunet-pay --home p usage report "$ID"
	done >reports.jsonl
	nunet-pay --home r usage answer reports.jsonl >vouchers.jsonl
	[ "$(wc -l <vouchers.jsonl)" -eq $N ]
	jq -c '{be: "/pay/voucher", body: .}' vouchers.jsonl >requests.jsonl
	export NUNET_HOME="$BATS_TEST_TMPDIR/p"
	cut=0
	for r in $(seq 1 15); do
		# resend from the first voucher not acknowledged, as a requester would
		start=$(cat out.* 2>/dev/null | jq -s 'map(select(.seq) | .seq) | max // 0')
		tail -n +"$((start + 1))" requests.jsonl >"feed.$r"
		[ -s "feed.$r" ] || break
		node_start
		feed "feed.$r" | nunet-send - >"out.$r" 2>/dev/null &
		BG_PIDS="${BG_PIDS:-} $!"
		pause_random 5 60
		crash
		wait || true
		integrity "$NUNET_HOME"
		[ "$(grep -c '"seq"' "out.$r")" -lt "$(wc -l <"feed.$r")" ] && cut=$((cut + 1))
	done
	[ "$cut" -ge 1 ]
	# one uninterrupted pass takes what is left
	node_start
	nunet-send - <requests.jsonl >out.final 2>/dev/null || true
	node_stop_all
	integrity "$NUNET_HOME"
	run nunet-pay --home p ledger --verify
	assert_success
	assert_equal "$(sqlite3 p/ledger.db "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM vouchers WHERE role = 'received'")" "$N|$N|1|$N"
	# every voucher the node acknowledged is in the ledger
	cat out.* | jq -r 'select(.seq) | .seq' | sort -n -u >acked
	[ "$(wc -l <acked)" -ge 1 ]
	while read -r s; do
		[ "$(sqlite3 p/ledger.db "SELECT COUNT(*) FROM vouchers WHERE role = 'received' AND seq = $s")" = 1 ]
	done <acked
	last=$(tail -n 1 vouchers.jsonl | jq -r .amount)
	assert_equal "$(nunet-pay --home p contract show "$ID" | jq -r '(.seq|tostring) + " " + .amount')" "$N $last"
}

@test "kill -9 of the node while it answers /pay/usage in group commits: every voucher answered is kept, issued once, numbered without gaps" {
	N=80
	cd "$BATS_TEST_TMPDIR"
	PD=$(nunet-node --home p init)
	nunet-node --home r init >/dev/null
	nunet-pay --home r contract propose --provider "$PD" --cpu-rate 3 --cap 1000000 --duration 24h >prop.json
	nunet-pay --home p contract accept prop.json >acc.json
	nunet-pay --home r contract accept acc.json >/dev/null
	ID=$(jq -r .id acc.json)
	for i in $(seq 1 $N); do
		nunet-pay --home p usage record "$ID" --alloc a --cpu-seconds "$i" --wall-seconds 1 >/dev/null
		nunet-pay --home p usage report "$ID"
	done | jq -c '{be: "/pay/usage", body: .}' >requests.jsonl
	export NUNET_HOME="$BATS_TEST_TMPDIR/r"
	cut=0
	for r in $(seq 1 15); do
		# resend from the report after the newest voucher received, as the
		# provider would (one voucher per report: seq for seq)
		start=$(cat out.* 2>/dev/null | jq -s 'map(select(.seq) | .seq) | max // 0')
		tail -n +"$((start + 1))" requests.jsonl >"feed.$r"
		[ -s "feed.$r" ] || break
		node_start
		feed "feed.$r" | nunet-send - >"out.$r" 2>/dev/null &
		BG_PIDS="${BG_PIDS:-} $!"
		pause_random 5 60
		crash
		wait || true
		integrity "$NUNET_HOME"
		[ "$(grep -c '"seq"' "out.$r")" -lt "$(wc -l <"feed.$r")" ] && cut=$((cut + 1))
	done
	[ "$cut" -ge 1 ]
	# one uninterrupted pass: reports already answered get the same
	# voucher again, the rest new ones, in group commits
	node_start
	nunet-send - <requests.jsonl >out.final 2>/dev/null
	node_stop_all
	integrity "$NUNET_HOME"
	run nunet-pay --home r ledger --verify
	assert_success
	assert_equal "$(sqlite3 r/ledger.db "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq), COUNT(DISTINCT report_seq) FROM vouchers WHERE role = 'issued'")" "$N|$N|1|$N|$N"
	# every voucher that was answered is in the ledger, and no seq was
	# ever answered with two different vouchers
	cat out.* | jq -r 'select(.type == "nunet/voucher") | "\(.seq) \(.sig)"' | sort -u >answered
	assert_equal "$(wc -l <answered)" $N
	assert_equal "$(cut -d' ' -f1 answered | sort | uniq -d | wc -l)" 0
	# (the ledger keeps a voucher's signature as its 64 bytes)
	while read -r s sig; do
		echo "$s $(echo "$sig" | base64 -d | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F)"
	done <answered | sort >answered.hex
	mv answered.hex answered
	sqlite3 r/ledger.db "SELECT seq || ' ' || hex(sig) FROM vouchers WHERE role = 'issued'" | sort >stored
	assert_equal "$(comm -23 answered stored | wc -l)" 0
	# the final pass answered each report with its voucher
	assert_equal "$(jq -s 'map(.seq) == [range(1; '$N' + 1)]' out.final)" true
}
