#!/usr/bin/env bats
# Events shipped to syslog (lib/sink: syslog+tcp://, syslog+unix://,
# syslog+udp://) and received by a real rsyslogd started here with its own
# config (imtcp and imudp on loopback ports, imuxsock on a socket in the
# test dir), which writes every message's parsed RFC 5424 fields to a file
# the tests read back.

load lib/common
load lib/sinks

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
	skip_unless "command -v rsyslogd" "rsyslogd is not installed (Debian: rsyslog)"
	rsyslog_start "$BATS_TEST_TMPDIR/rs"
}

teardown() {
	# a sink-push left in the background by a failed test
	[ -z "${BG_PID:-}" ] || kill "$BG_PID" 2>/dev/null || true
	sinks_stop_all
}

# field N of output line L (1-based): PRI|TS|HOST|APP|PROCID|MSGID|SD|MSG
field() {
	sed -n "${1}p" "$RSYSLOG_OUT" | cut -d'|' -f"$2"
}

@test "events reach rsyslogd over TCP as RFC 5424 messages with octet counting" {
	printf '%s\n' \
		'{"ts":1763769600123,"level":"warn","kind":"state","node":"did:key:z6Mk","msg":"a b|c wörld"}' \
		'{"ts":1763769601000,"level":"error","kind":"msg.in","trace":"t1"}' \
		'{"level":"info","kind":"has spaces in it"}' >events
	run --separate-stderr sink-push -f 10 --host node-a \
		"syslog+tcp://127.0.0.1:$RSYSLOG_PORT?facility=local3&app=nunet-test" <events
	assert_success
	assert_equal "$(jq -c '[.pushed,.sent,.failed,.dropped,.queued]' <<<"$output")" "[3,3,0,0,0]"
	wait_lines "$RSYSLOG_OUT" 3
	# local3 (19) * 8 + warning (4)
	assert_equal "$(field 1 1)" 156
	assert_equal "$(field 1 2)" "2025-11-22T00:00:00.123Z"
	assert_equal "$(field 1 3)" node-a
	assert_equal "$(field 1 4)" nunet-test
	[[ "$(field 1 5)" =~ ^[0-9]+$ ]]
	assert_equal "$(field 1 6)" state
	assert_equal "$(field 1 7)" "-"
	# the MSG is the event JSON, unchanged (it holds '|': take the rest)
	assert_equal "$(sed -n 1p "$RSYSLOG_OUT" | cut -d'|' -f8-)" "$(sed -n 1p events)"
	assert_equal "$(field 2 1)" 155
	assert_equal "$(field 2 2)" "2025-11-22T00:00:01.000Z"
	assert_equal "$(field 2 6)" msg.in
	assert_equal "$(field 2 8)" "$(sed -n 2p events)"
	# MSGID is printable ASCII without spaces
	assert_equal "$(field 3 6)" has_spaces_in_it
	assert_equal "$(field 3 1)" 158
}

@test "events reach rsyslogd over its unix socket" {
	printf '%s\n' '{"ts":1763769600500,"level":"debug","kind":"usage","cpu_ms":12}' >events
	run --separate-stderr sink-push -f 10 --host node-b --app nunetd \
		"syslog+unix://$RSYSLOG_SOCK" <events
	assert_success
	assert_equal "$(jq .sent <<<"$output")" 1
	wait_lines "$RSYSLOG_OUT" 1
	# daemon (3) * 8 + debug (7)
	assert_equal "$(field 1 1)" 31
	assert_equal "$(field 1 2)" "2025-11-22T00:00:00.500Z"
	assert_equal "$(field 1 3)" node-b
	assert_equal "$(field 1 4)" nunetd
	assert_equal "$(field 1 6)" usage
	assert_equal "$(field 1 8)" "$(cat events)"
}

@test "events reach rsyslogd over UDP, one datagram each" {
	printf '%s\n' '{"ts":1763769600900,"level":"notice","kind":"udp","n":1}' \
		'{"ts":1763769600901,"level":"info","kind":"udp","n":2}' >events
	run --separate-stderr sink-push -f 10 --host node-c \
		"syslog+udp://127.0.0.1:$RSYSLOG_UDP_PORT?facility=local7" <events
	assert_success
	assert_equal "$(jq .sent <<<"$output")" 2
	wait_lines "$RSYSLOG_OUT" 2
	# local7 (23) * 8 + notice (5), + info (6)
	assert_equal "$(cut -d'|' -f1 "$RSYSLOG_OUT" | tr '\n' ' ')" "189 190 "
	assert_equal "$(field 1 2)" "2025-11-22T00:00:00.900Z"
	assert_equal "$(field 1 3)" node-c
	assert_equal "$(cut -d'|' -f8- "$RSYSLOG_OUT")" "$(cat events)"
}

@test "levels map to syslog severities; the facility defaults to daemon" {
	for l in error warn info debug notice bogus; do
		printf '{"level":"%s","kind":"k"}\n' "$l"
	done >events
	run --separate-stderr sink-push -f 10 "syslog+tcp://127.0.0.1:$RSYSLOG_PORT" <events
	assert_success
	wait_lines "$RSYSLOG_OUT" 6
	assert_equal "$(cut -d'|' -f1 "$RSYSLOG_OUT" | tr '\n' ' ')" "27 28 30 31 29 30 "
	# no "ts": the time of sending, this year
	[[ "$(field 1 2)" == "$(date -u +%Y)-"* ]]
}

@test "two thousand events over TCP arrive once each and in order" {
	seq 2000 | jq -c '{kind:"seq",n:.}' >events
	run --separate-stderr sink-push -b 300 -f 10 "syslog+tcp://127.0.0.1:$RSYSLOG_PORT" <events
	assert_success
	assert_equal "$(jq .sent <<<"$output")" 2000
	wait_lines "$RSYSLOG_OUT" 2000
	cut -d'|' -f8- "$RSYSLOG_OUT" >got
	run cmp got events
	assert_success
}

@test "bad syslog specs are refused with a reason" {
	run --separate-stderr sink-push "syslog+tcp://127.0.0.1:99999" </dev/null
	assert_failure 64
	assert_equal "$stderr" "sink-push: error: sink 'syslog+tcp://127.0.0.1:99999': bad port '99999'"
	run --separate-stderr sink-push "syslog+tcp://127.0.0.1:514?facility=local9" </dev/null
	assert_failure 64
	[[ "$stderr" == *"unknown facility 'local9'" ]]
	run --separate-stderr sink-push "syslog+tcp://127.0.0.1:514?fac=local1" </dev/null
	assert_failure 64
	[[ "$stderr" == *"unknown parameter 'fac=local1'"* ]]
	run --separate-stderr sink-push "syslog+unix://dev/log" </dev/null
	assert_failure 64
	[[ "$stderr" == *"absolute socket path"* ]]
	run --separate-stderr sink-push "gelf+udp://127.0.0.1:12201" </dev/null
	assert_failure 64
	[[ "$stderr" == *"unknown kind"* ]]
}

@test "a TCP sink reconnects when rsyslogd restarts" {
	mkfifo in
	sink-push -f 10 -r 20:100 -w 20000 "syslog+tcp://127.0.0.1:$RSYSLOG_PORT" <in >stats 2>log 3>&- &
	BG_PID=$!
	exec 7>in
	echo '{"kind":"before","n":1}' >&7
	wait_lines "$RSYSLOG_OUT" 1
	port=$RSYSLOG_PORT
	rsyslog_stop
	mv "$RSYSLOG_OUT" first.log
	rsyslog_start "$BATS_TEST_TMPDIR/rs" "$port" 7>&-
	echo '{"kind":"after","n":2}' >&7
	echo '{"kind":"after","n":3}' >&7
	exec 7>&-
	wait "$BG_PID"
	wait_lines "$RSYSLOG_OUT" 2
	assert_equal "$(cut -d'|' -f6 "$RSYSLOG_OUT" | tr '\n' ' ')" "after after "
	assert_equal "$(jq -c '[.sent,.dropped,.queued]' stats)" "[3,0,0]"
}
