#!/usr/bin/env bats
# Metrics pushed as Influx line protocol (lib/sink: influx+http://) into a
# real VictoriaMetrics started here on a loopback port with its own storage,
# then read back through its query and export APIs.

load lib/common
load lib/sinks

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
	skip_unless "command -v victoria-metrics" "victoria-metrics is not installed"
	vmetrics_start "$BATS_TEST_TMPDIR/vm"
}

teardown() {
	sinks_stop_all
}

# export MATCH: the series VictoriaMetrics holds, one JSON line each, sorted
vm_export() {
	curl -sf "$VM_URL/api/v1/export" --data-urlencode "match[]=$1" | jq -Sc . | sort
}

# wait until the selector MATCH has N series (force_flush makes what
# VictoriaMetrics took searchable now rather than within seconds)
vm_wait_series() {
	_vm_has() {
		curl -sf "$VM_URL/internal/force_flush" >/dev/null
		[ "$(vm_export "$1" | wc -l)" -ge "$2" ]
	}
	wait_until 15 _vm_has "$1" "$2"
}

@test "metrics posted to /write come back from VictoriaMetrics with their values and tags" {
	printf '%s\n' \
		'nunet_messages,node=n1,dir=in total=42i 1763769600000000000' \
		'nunet_messages,node=n1,dir=out total=17i 1763769600000000000' \
		'nunet_allocations,node=n1,state=running count=3i,cpu=1.5 1763769600000000000' >m
	run --separate-stderr sink-push -f 10 "influx+http://127.0.0.1:$VM_PORT/write?db=nunet" <m
	assert_success
	assert_equal "$(jq -c '[.pushed,.sent,.failed,.dropped,.rejected,.queued]' <<<"$output")" "[3,3,0,0,0,0]"
	vm_wait_series '{__name__=~"nunet_.*"}' 4
	run vm_export '{__name__="nunet_messages_total"}'
	assert_line '{"metric":{"__name__":"nunet_messages_total","db":"nunet","dir":"in","node":"n1"},"timestamps":[1763769600000],"values":[42]}'
	assert_line '{"metric":{"__name__":"nunet_messages_total","db":"nunet","dir":"out","node":"n1"},"timestamps":[1763769600000],"values":[17]}'
	run vm_export '{__name__=~"nunet_allocations_.*"}'
	assert_line '{"metric":{"__name__":"nunet_allocations_count","db":"nunet","node":"n1","state":"running"},"timestamps":[1763769600000],"values":[3]}'
	assert_line '{"metric":{"__name__":"nunet_allocations_cpu","db":"nunet","node":"n1","state":"running"},"timestamps":[1763769600000],"values":[1.5]}'
}

@test "the /api/v2/write path works too, and a query sees the value now" {
	echo 'nunet_queue_depth,node=n2,queue=sink value=7' >m
	run --separate-stderr sink-push -f 10 "influx+http://127.0.0.1:$VM_PORT/api/v2/write?bucket=x" <m
	assert_success
	assert_equal "$(jq .sent <<<"$output")" 1
	vm_wait_series '{__name__="nunet_queue_depth_value"}' 1
	# a new series reaches the query path a moment after export sees it
	_vm_query() {
		curl -sf "$VM_URL/api/v1/query" --data-urlencode 'query=nunet_queue_depth_value{node="n2"}' >q &&
			[ "$(jq '.data.result | length' q)" -ge 1 ]
	}
	wait_until 15 _vm_query
	assert_equal "$(jq -r '.data.result[0].value[1]' q)" 7
	assert_equal "$(jq -r '.data.result[0].metric.queue' q)" sink
}

@test "five thousand samples in batches of 700 all arrive" {
	seq 5000 | awk '{ printf "nunet_load,node=n%d value=%d 1763769600000000000\n", $1, $1 }' >m
	run --separate-stderr sink-push -b 700 -f 10 "influx+http://127.0.0.1:$VM_PORT/write" <m
	assert_success
	assert_equal "$(jq -c '[.sent,.failed,.dropped]' <<<"$output")" "[5000,0,0]"
	vm_wait_series '{__name__="nunet_load_value"}' 5000
	# every value came through under its own series
	run bash -c "curl -sf '$VM_URL/api/v1/export' --data-urlencode 'match[]=nunet_load_value' |
		jq -r '[.metric.node, .values[0]] | @tsv' | awk '\$1 != \"n\" \$2 { bad++ } END { print NR, bad + 0 }'"
	assert_output "5000 0"
}

@test "bad influx specs are refused" {
	run --separate-stderr sink-push "influx+http://127.0.0.1:$VM_PORT" </dev/null
	assert_failure 64
	[[ "$stderr" == *"influx: no path"* ]]
	run --separate-stderr sink-push "influx+ftp://127.0.0.1/write" </dev/null
	assert_failure 64
	[[ "$stderr" == *"expected http:// or https://"* ]]
}
