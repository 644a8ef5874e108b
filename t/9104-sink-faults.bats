#!/usr/bin/env bats
# Sinks that are down, slow or answering errors (lib/sink): the pusher never
# waits for them, the queue keeps its bound, what cannot be held is dropped
# and counted, the trouble is logged at most once per interval, delivery is
# retried with backoff, and it resumes when the receiver comes back.  The
# receiver is the capture server of t/lib/sinks.bash (an Elasticsearch
# _bulk stand-in) or a port where nothing listens.

load lib/common
load lib/sinks

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
	seq 20000 | jq -c '{kind:"load",n:.}' >events
}

teardown() {
	# a sink-push left in the background by a failed test
	[ -z "${BG_PID:-}" ] || kill "$BG_PID" 2>/dev/null || true
	sinks_stop_all
}

@test "a sink that is down: pushes return at once, the queue stays bounded, drops are counted and logged once" {
	port=$(free_port)
	run --separate-stderr sink-push -q 1000 -b 100 -f 10 -r 20:100 -w 500 \
		"esbulk+http://127.0.0.1:$port/ev/_bulk" <events
	assert_failure 75
	assert_equal "$(jq .pushed <<<"$output")" 20000
	assert_equal "$(jq .sent <<<"$output")" 0
	# at most the queue plus one batch in flight is held
	[ "$(jq .queued <<<"$output")" -le 1100 ]
	[ "$(jq .dropped <<<"$output")" -ge 18900 ]
	assert_equal "$(jq '.dropped + .queued' <<<"$output")" 20000
	[ "$(jq .failed <<<"$output")" -ge 1 ]
	# 20000 pushes took well under a second: nothing waited for the sink
	[ "$(jq '.push_ms < 1000' <<<"$output")" = true ]
	# one line about the trouble and one about the drops (interval 60 s),
	# however many attempts failed; at close, the drops not yet told and
	# the lines still held; together they account for every line not sent
	[ "$(grep -c 'cannot deliver: .*connect' <<<"$stderr")" -eq 1 ]
	[ "$(grep -c 'dropped [0-9]* lines (queue full: [0-9]* held)$' <<<"$stderr")" -eq 1 ]
	[ "$(grep -c 'dropped [0-9]* lines (queue full)$' <<<"$stderr")" -le 1 ]
	[ "$(grep -c 'dropped [0-9]* lines still held at close$' <<<"$stderr")" -eq 1 ]
	total=$(sed -n 's/.*dropped \([0-9]*\) lines.*/\1/p' <<<"$stderr" | awk '{ t += $1 } END { print t }')
	assert_equal "$total" 20000
}

@test "a slow sink: pushes never wait for it and close does not either" {
	capture_start requests --sleep 30
	start=$(date +%s%N)
	run --separate-stderr sink-push -q 1000 -b 100 -f 10 -t 60000 -w 500 \
		"esbulk+http://127.0.0.1:$CAPTURE_PORT/ev/_bulk" <events
	took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
	assert_failure 75
	assert_equal "$(jq .sent <<<"$output")" 0
	[ "$(jq .queued <<<"$output")" -le 1100 ]
	assert_equal "$(jq '.dropped + .queued' <<<"$output")" 20000
	[ "$(jq '.push_ms < 1000' <<<"$output")" = true ]
	# the request in flight (answered after 30 s) was abandoned at close
	[ "$took_ms" -lt 10000 ]
}

@test "a sink answering 500: the same batch is retried with backoff until it is taken" {
	capture_start requests --fail-first 3
	head -10 events >ten
	run --separate-stderr sink-push -f 10 -r 50:200 "esbulk+http://127.0.0.1:$CAPTURE_PORT/ev/_bulk" <ten
	assert_success
	assert_equal "$(jq -c '[.sent,.failed,.dropped,.rejected,.queued]' <<<"$output")" "[10,3,0,0,0]"
	assert_equal "$(jq -r .answer requests | tr '\n' ' ')" "500 500 500 200 "
	# four times the same body
	assert_equal "$(jq -c .body requests | sort -u | wc -l)" 1
	assert_equal "$(jq -r .body requests | grep -c '"kind":"load"')" 40
	[ "$(grep -c 'cannot deliver: HTTP 500' <<<"$stderr")" -eq 1 ]
	[[ "$stderr" == *"delivering again after 3 failed attempts"* ]]
}

@test "retries back off exponentially up to the maximum" {
	capture_start requests --fail-first 5
	head -3 events >three
	run --separate-stderr sink-push -f 10 -r 100:400 "esbulk+http://127.0.0.1:$CAPTURE_PORT/ev/_bulk" <three
	assert_success
	assert_equal "$(jq -c '[.sent,.failed]' <<<"$output")" "[3,5]"
	# delays are [d/2, d] with d = 100, 200, 400, 400, 400 ms (equal jitter)
	jq -s '[range(1; length) as $i | .[$i].t - .[$i - 1].t]' requests >gaps
	assert_equal "$(jq 'length' gaps)" 5
	[ "$(jq '.[0] >= 50 and .[1] >= 100 and .[2] >= 200 and .[3] >= 200 and .[4] >= 200' gaps)" = true ]
	# capped: no delay much over 400 ms (slack for a loaded machine)
	[ "$(jq 'max < 1400' gaps)" = true ]
	# more waiting in all than the first delay five times over
	[ "$(jq 'add >= 750' gaps)" = true ]
}

@test "a sink refusing a request (HTTP 400): counted as rejected, not retried" {
	capture_start requests --status 400
	head -10 events >ten
	run --separate-stderr sink-push -f 10 -r 20:50 "influx+http://127.0.0.1:$CAPTURE_PORT/write?db=x" <ten
	assert_success
	assert_equal "$(jq -c '[.sent,.rejected,.failed,.dropped]' <<<"$output")" "[0,10,0,0]"
	assert_equal "$(wc -l <requests)" 1
	[[ "$stderr" == *"refused 10 of 10 lines (HTTP 400)"* ]]
}

@test "delivery resumes when the sink comes back" {
	port=$(free_port)
	head -300 events >some
	sink-push -b 100 -f 10 -r 50:200 -w 20000 "esbulk+http://127.0.0.1:$port/ev/_bulk" \
		<some >stats 2>log 3>&- &
	BG_PID=$!
	_refused() { grep -q 'cannot deliver' log; }
	wait_until 10 _refused
	capture_start requests --port "$port"
	wait "$BG_PID"
	assert_equal "$(jq -c '[.pushed,.sent,.dropped,.queued]' stats)" "[300,300,0,0]"
	[ "$(jq .failed stats)" -ge 1 ]
	grep -q 'delivering again after' log
	# every document once, in order
	jq -j .body requests | sed -n '2~2p' >got
	run cmp got some
	assert_success
}

@test "bad lines are rejected at push and counted" {
	capture_start requests
	{
		echo '{"n":1}'
		echo ''
		printf '{"long":"%0200d"}\n' 0
		echo '{"n":2}'
	} >mixed
	run --separate-stderr sink-push -L 100 -f 10 "esbulk+http://127.0.0.1:$CAPTURE_PORT/ev/_bulk" <mixed
	assert_success
	assert_equal "$(jq -c '[.pushed,.sent,.rejected]' <<<"$output")" "[4,2,2]"
	assert_equal "$(jq -r .body requests)" '{"index":{"_index":"ev"}}
{"n":1}
{"index":{"_index":"ev"}}
{"n":2}'

}

@test "drops are logged at most once per interval, and every drop is accounted for" {
	port=$(free_port)
	mkfifo in
	sink-push -q 100 -b 10 -f 10 -r 20:50 -l 1000 -w 1500 \
		"esbulk+http://127.0.0.1:$port/ev/_bulk" <in >stats 2>log 3>&- &
	BG_PID=$!
	exec 7>in
	head -1000 events >&7
	_dropped() { [ "$(grep -c 'dropped' log)" -ge "$1" ]; }
	wait_until 5 _dropped 1
	# a second wave at once: no second line before the interval is over
	head -1000 events >&7
	[ "$(grep -c 'dropped' log)" -eq 1 ]
	wait_until 5 _dropped 2
	exec 7>&-
	wait "$BG_PID" || true
	grep -q '^sink-push: warn: sink .*: dropped [0-9]* lines (queue full: [0-9]* held)$' log
	grep -q 'dropped [0-9]* lines in the last [12] s (queue full' log
	# the lines held at close are dropped too, and logged once the
	# interval allows: the logged counts add up to everything not sent
	total=$(sed -n 's/.*dropped \([0-9]*\) lines.*/\1/p' log | awk '{ t += $1 } END { print t }')
	assert_equal "$total" "$(jq '.dropped + .queued' stats)"
	assert_equal "$(jq '.pushed' stats)" 2000
	# trouble is logged at most once per interval too (the run took < 10 s)
	[ "$(grep -c 'cannot deliver' log)" -le 11 ]
}
