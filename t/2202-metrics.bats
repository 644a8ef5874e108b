#!/usr/bin/env bats
# Metrics: the Prometheus text format, checked by promtool, served over HTTP
# on loopback and scraped by a real Prometheus.
load lib/common

setup() {
	common_setup
	node_init
}

teardown() {
	[ -n "${PROM:-}" ] && kill "$PROM" 2>/dev/null && wait "$PROM" 2>/dev/null
	node_stop_all
}

# free_port: a TCP port on 127.0.0.1 nobody listens on right now
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

@test "nunet-node metrics is valid for promtool and counts what happened" {
	skip_unless 'command -v promtool' 'promtool (Debian prometheus) is not installed'
	node_start
	nunet-send /node/ping >/dev/null
	nunet-send /node/nope >/dev/null 2>&1 || true
	run nunet-node metrics
	assert_success
	metrics=$output
	run promtool check metrics <<<"$metrics"
	assert_success
	assert_equal "$(grep '^nunet_errors_total{code="unknown_behavior"}' <<<"$metrics")" \
		'nunet_errors_total{code="unknown_behavior"} 1'
	# the ping, the bad call, and this /node/metrics call
	assert_equal "$(grep '^nunet_messages_received_total ' <<<"$metrics")" 'nunet_messages_received_total 3'
	assert_equal "$(grep '^nunet_clients ' <<<"$metrics")" 'nunet_clients 1'
	# parts of the node add theirs: resources from onboarding
	assert_equal "$(grep '^nunet_onboarded ' <<<"$metrics")" 'nunet_onboarded 0'
	grep -q '^nunet_resources{state="free",resource="cpu_millicores"} 0$' <<<"$metrics"
	# and allocations by state
	nunet-run -- true
	run nunet-node metrics
	assert_line 'nunet_allocations{state="exited"} 1'
	run promtool check metrics <<<"$output"
	assert_success
}

@test "metrics_listen serves GET /metrics; other paths and methods are refused" {
	jq '.metrics_listen = "127.0.0.1:0"' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	node_start
	addr=$(jq -r .metrics <<<"$READY_LINE")
	[[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]]
	run curl -sS -i "http://$addr/metrics"
	assert_success
	assert_line --partial 'HTTP/1.0 200 OK'
	assert_line --partial 'Content-Type: text/plain; version=0.0.4'
	assert_output --partial 'nunet_uptime_seconds'
	run curl -s -o /dev/null -w '%{http_code}' "http://$addr/nope"
	assert_output 404
	run curl -s -o /dev/null -w '%{http_code}' -X POST "http://$addr/metrics"
	assert_output 405
	# a client that never finishes its request does not stop the others
	exec 5<>/dev/tcp/127.0.0.1/"${addr##*:}"
	printf 'GET /metr' >&5
	run curl -s -o /dev/null -w '%{http_code}' "http://$addr/metrics"
	assert_output 200
	exec 5>&-
	run nunet-send /node/ping
	assert_success
}

@test "a bad metrics_listen is a configuration error" {
	jq '.metrics_listen = "nowhere"' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	run --separate-stderr nunet-node run
	assert_failure 78
	assert_equal "$stderr" "nunet-node: error: $NUNET_HOME/config.json: metrics_listen: expected HOST:PORT, such as 127.0.0.1:9464"
}

@test "a real Prometheus scrapes the node and a query gives a value back" {
	skip_unless 'command -v prometheus' 'prometheus (Debian package) is not installed'
	jq '.metrics_listen = "127.0.0.1:0"' "$NUNET_HOME/config.json" >"$BATS_TEST_TMPDIR/c"
	mv "$BATS_TEST_TMPDIR/c" "$NUNET_HOME/config.json"
	node_start
	addr=$(jq -r .metrics <<<"$READY_LINE")
	for i in 1 2 3 4 5; do nunet-send /node/ping >/dev/null; done
	port=$(free_port)
	cat >"$BATS_TEST_TMPDIR/prom.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: nunet
    static_configs:
      - targets: ['$addr']
YML
	prometheus --config.file="$BATS_TEST_TMPDIR/prom.yml" --storage.tsdb.path="$BATS_TEST_TMPDIR/tsdb" \
		--web.listen-address="127.0.0.1:$port" >"$BATS_TEST_TMPDIR/prom.log" 2>&1 &
	PROM=$!
	value=""
	for i in $(seq 150); do
		value=$(curl -s "http://127.0.0.1:$port/api/v1/query?query=nunet_messages_received_total" |
			jq -r '.data.result[0].value[1] // empty' 2>/dev/null)
		[ -n "$value" ] && break
		sleep 0.2
	done
	[ -n "$value" ] || { cat "$BATS_TEST_TMPDIR/prom.log" >&2; fail "Prometheus never scraped the node"; }
	[ "$value" -ge 5 ]
	run curl -s "http://127.0.0.1:$port/api/v1/query?query=up%7Bjob%3D%22nunet%22%7D"
	assert_equal "$(jq -r '.data.result[0].value[1]' <<<"$output")" 1
}
