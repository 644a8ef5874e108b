#!/usr/bin/env bats
# Events posted in batches to an Elasticsearch _bulk endpoint (lib/sink:
# esbulk+http://HOST:PORT/INDEX/_bulk).  No Elasticsearch can be installed
# on these machines, so the exact request is checked instead against a
# capture server run here (t/lib/sinks.bash) that records each request and
# answers the way Elasticsearch's _bulk documentation describes: NDJSON
# pairs of an action line {"index":{"_index":…}} and a document,
# newline-terminated including the last line, Content-Type
# application/x-ndjson, and a response with "errors" and one item per
# action.

load lib/common
load lib/sinks

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
	capture_start "$BATS_TEST_TMPDIR/requests"
}

teardown() {
	# a sink-push left in the background by a failed test
	[ -z "${BG_PID:-}" ] || kill "$BG_PID" 2>/dev/null || true
	sinks_stop_all
}

@test "a batch is one POST of NDJSON action/document pairs ending in a newline" {
	printf '%s\n' \
		'{"ts":1763769600123,"level":"info","kind":"state","trace":"t1","fields":{"state":"running"}}' \
		'{"ts":1763769600124,"level":"warn","kind":"failure","msg":"x\ty \"quoted\" ü"}' \
		'{"ts":1763769600125,"level":"info","kind":"usage"}' >events
	run --separate-stderr sink-push -f 10 "esbulk+http://127.0.0.1:$CAPTURE_PORT/nunet-events/_bulk" <events
	assert_success
	assert_equal "$(jq -c '[.pushed,.sent,.failed,.dropped,.rejected,.queued]' <<<"$output")" "[3,3,0,0,0,0]"
	assert_equal "$(wc -l <requests)" 1
	assert_equal "$(jq -r .method requests)" POST
	assert_equal "$(jq -r .path requests)" /nunet-events/_bulk
	assert_equal "$(jq -r .ctype requests)" application/x-ndjson
	assert_equal "$(jq -r .answer requests)" 200
	# the body, byte for byte: action line, document, …, final newline
	jq -j .body requests >body
	{
		while IFS= read -r ev; do
			printf '{"index":{"_index":"nunet-events"}}\n%s\n' "$ev"
		done <events
	} >want
	run cmp body want
	assert_success
}

@test "batches hold at most the batch size and keep the order" {
	seq 1050 | jq -c '{kind:"seq",n:.}' >events
	run --separate-stderr sink-push -b 500 -f 5000 "esbulk+http://127.0.0.1:$CAPTURE_PORT/ev/_bulk" <events
	assert_success
	assert_equal "$(jq .sent <<<"$output")" 1050
	# 500 + 500 + 50 documents, two lines each
	assert_equal "$(jq -r '.body | split("\n") | length - 1' requests | tr '\n' ' ')" "1000 1000 100 "
	jq -j .body requests | sed -n '2~2p' >docs
	run cmp docs events
	assert_success
	assert_equal "$(jq -j .body requests | sed -n '1~2p' | sort -u)" '{"index":{"_index":"ev"}}'
}

@test "a partial batch goes out after the flush interval" {
	mkfifo in
	sink-push -b 500 -f 100 -w 10000 "esbulk+http://127.0.0.1:$CAPTURE_PORT/ev/_bulk" <in >stats 3>&- &
	BG_PID=$!
	exec 7>in
	echo '{"kind":"one"}' >&7
	wait_lines requests 1 5
	echo '{"kind":"two"}' >&7
	wait_lines requests 2 5
	exec 7>&-
	wait "$BG_PID"
	assert_equal "$(jq -r '.body | split("\n")[1]' requests | tr '\n' ' ')" '{"kind":"one"} {"kind":"two"} '
	assert_equal "$(jq .sent stats)" 2
}

@test "items the server refuses are counted; items answered 429 are sent again" {
	printf '%s\n' '{"n":1}' '{"n":2,"reject":true}' '{"n":3,"busy":true}' '{"n":4,"reject":true}' '{"n":5}' >events
	run --separate-stderr sink-push -f 10 -r 20:50 "esbulk+http://127.0.0.1:$CAPTURE_PORT/ev/_bulk" <events
	assert_success
	assert_equal "$(jq -c '[.pushed,.sent,.rejected,.failed,.dropped,.queued]' <<<"$output")" "[5,3,2,1,0,0]"
	assert_equal "$(wc -l <requests)" 2
	# the second request holds only the item answered 429
	assert_equal "$(sed -n 2p requests | jq -r .body)" '{"index":{"_index":"ev"}}
{"n":3,"busy":true}'
	[[ "$stderr" == *"refused 2 of 5 lines (HTTP 200)"* ]]
}

@test "bad esbulk specs are refused" {
	run --separate-stderr sink-push "esbulk+http://127.0.0.1:$CAPTURE_PORT/_bulk" </dev/null
	assert_failure 64
	[[ "$stderr" == *"no index before /_bulk"* ]]
	run --separate-stderr sink-push "esbulk+http://127.0.0.1:$CAPTURE_PORT/Events/_bulk" </dev/null
	assert_failure 64
	[[ "$stderr" == *"bad index name 'Events'"* ]]
	run --separate-stderr sink-push "esbulk+http://127.0.0.1:$CAPTURE_PORT/events" </dev/null
	assert_failure 64
	[[ "$stderr" == *"expected a path ending in /INDEX/_bulk"* ]]
}

@test "close with a drain time delivers what is still queued" {
	seq 30 | jq -c '{n:.}' >events
	# -w 0: no waiting before close; -d: close delivers for up to 10 s
	run --separate-stderr sink-push -b 10 -f 60000 -w 0 -d 10000 \
		"esbulk+http://127.0.0.1:$CAPTURE_PORT/ev/_bulk" <events
	assert_failure 75
	assert_equal "$(jq '.sent + .queued' <<<"$output")" 30
	[ "$(jq .queued <<<"$output")" -gt 0 ]
	jq -j .body requests | sed -n '2~2p' >got
	run cmp got events
	assert_success
	assert_equal "$(wc -l <requests)" 3
}
