#!/usr/bin/env bats
# The node ships its events to syslog (a real rsyslogd) and its metrics as
# Influx line protocol (a real VictoriaMetrics), and keeps working when a
# sink is down.
load lib/common
load lib/sinks

setup() {
	common_setup
	node_init
}

teardown() {
	node_stop_all
	sinks_stop_all
}

set_sinks() {
	jq --argjson s "$1" '.sinks = $s' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
}

@test "events reach rsyslogd as RFC 5424 messages carrying the event JSON" {
	skip_unless 'command -v rsyslogd' 'rsyslog is not installed'
	rsyslog_start "$BATS_TEST_TMPDIR/rsyslog"
	set_sinks "[{\"url\":\"syslog+unix://$RSYSLOG_SOCK\",\"what\":\"events\",\"level\":\"warn\"}]"
	node_start
	nunet-send --trace 7ace /node/nope >/dev/null 2>&1 || true
	wait_lines "$RSYSLOG_OUT" 1 10
	run cat "$RSYSLOG_OUT"
	assert_line --partial '|msg.refused|'
	# the MSG is the event, unchanged: parse it back
	msg=$(grep '|msg.refused|' "$RSYSLOG_OUT" | head -1 | cut -d'|' -f8-)
	assert_equal "$(jq -r '[.kind, .trace, .fields.code] | join(" ")' <<<"$msg")" 'msg.refused 7ace unknown_behavior'
	# below the sink's level: nothing of msg.in/msg.out
	run grep -c '|msg.in|' "$RSYSLOG_OUT"
	assert_output 0
}

@test "metrics reach VictoriaMetrics as Influx line protocol and can be queried back" {
	skip_unless 'command -v victoria-metrics' 'victoria-metrics is not installed'
	vmetrics_start "$BATS_TEST_TMPDIR/vm"
	set_sinks "[{\"url\":\"influx+http://127.0.0.1:$VM_PORT/write\",\"what\":\"metrics\",\"interval_ms\":500}]"
	node_start
	for i in 1 2 3; do nunet-send /node/ping >/dev/null; done
	did=$(nunet-node id)
	_have() {
		v=$(curl -s "$VM_URL/api/v1/query" --data-urlencode 'query=nunet_messages_received_total_value' |
			jq -r '.data.result[0].value[1] // empty')
		[ -n "$v" ] && [ "$v" -ge 3 ]
	}
	wait_until 20 _have || fail "VictoriaMetrics never got the metric"
	run curl -s "$VM_URL/api/v1/query" --data-urlencode 'query=nunet_messages_received_total_value'
	assert_equal "$(jq -r '.data.result[0].metric.node' <<<"$output")" "$did"
	run curl -s "$VM_URL/api/v1/query" --data-urlencode 'query=nunet_errors_total_value{code="replay"}'
	assert_equal "$(jq -r '.data.result[0].value[1]' <<<"$output")" 0
}

@test "a sink that is down: the node keeps serving, the queue stays bounded, losses are counted" {
	port=$(free_port)	# nobody listens there
	set_sinks "[{\"url\":\"esbulk+http://127.0.0.1:$port/nunet/_bulk\",\"what\":\"events\",\"level\":\"debug\"}]"
	node_start
	seq 3000 | jq -c '{be: "/node/ping", body: {i: .}}' >"$BATS_TEST_TMPDIR/req"
	start=$(date +%s%N)
	run nunet-send - <"$BATS_TEST_TMPDIR/req"
	assert_success
	assert_equal "${#lines[@]}" 3000
	run nunet-node metrics
	failed=$(grep '^nunet_sink_failed_attempts_total{sink="0"}' <<<"$output" | cut -d' ' -f2)
	queued=$(grep '^nunet_sink_lines{sink="0",state="queued"}' <<<"$output" | cut -d' ' -f2)
	dropped=$(grep '^nunet_sink_lines{sink="0",state="dropped"}' <<<"$output" | cut -d' ' -f2)
	[ "$failed" -ge 1 ] || fail "no failed delivery attempt counted"
	[ "$queued" -le 10000 ] || fail "queue grew to $queued"
	[ "$((queued + dropped))" -ge 6000 ] || fail "lost count: queued $queued dropped $dropped"
	_warned() { grep -q 'sink esbulk' "$BATS_TEST_TMPDIR/node.log"; }
	wait_until 15 _warned || fail "no warning about the sink in the log"
}

@test "a bad sink in config.json is refused at start" {
	set_sinks '[{"url":"carrier-pigeon://roof","what":"events"}]'
	run --separate-stderr nunet-node run
	assert_failure 70
	[[ "$stderr" == "nunet-node: error: sinks[0]: "* ]] || fail "unexpected: $stderr"
	set_sinks '[{"url":"syslog+unix:///dev/log","what":"everything"}]'
	run --separate-stderr nunet-node run
	assert_failure 78
	assert_equal "$stderr" "nunet-node: error: $NUNET_HOME/config.json: sinks[0].what: expected events or metrics"
}
