#!/usr/bin/env bats
# The porcelain of deployments on a real loopback swarm: `nunet-run results`
# gathers each allocation's result, logs and outputs (from the URL they were
# stored at, verified, or from the provider); a recursive job streams the
# output of a child placed on another node; a provider that requires
# contracts refuses deployments without an accepted one; an allocation's
# revoked tokens are pruned when it ends.
load lib/common

VPS="$NUNET_SRC/share/nunet/capability/small-vps.json"
declare -gA DID ADDR PID
NODES="a b c"

home() { echo "$BATS_TEST_TMPDIR/$1"; }

free_cpu() { NUNET_HOME=$(home "$1") nunet-send /node/resources | jq -r .free.cpu; }
onboarded_cpu() { NUNET_HOME=$(home "$1") nunet-send /node/resources | jq -r .onboarded.cpu; }
clean() { [ "$(free_cpu "$1")" = "$(onboarded_cpu "$1")" ]; }
all_clean() {
	local n
	for n in $NODES; do clean $n || return 1; done
}
alive() {	# alive NODE COUNT: NODE sees COUNT peers alive
	[ "$(nunet-node --home "$(home $1)" peers | jq -s '[.[] | select(.state == "alive")] | length')" = "$2" ]
}
converged() {
	local n
	for n in $NODES; do alive $n 2 || return 1; done
}

# start_swarm: three nodes, a the orchestrator holding /deploy tokens from
# the others (and each from the others: any may orchestrate)
start_swarm() {
	local n m boot=""
	export NUNET_SWARM_PROBE_MS=1000 NUNET_SWARM_SUSPECT_MS=3000
	for n in $NODES; do node_init "$(home $n)"; DID[$n]=$(nunet-node --home "$(home $n)" id); done
	for n in $NODES; do
		[ -z "${CONFIG[$n]:-}" ] || printf '%s\n' "${CONFIG[$n]}" >"$(home $n)/config.json"
		node_start "$(home $n)" --listen 127.0.0.1:0 $boot
		PID[$n]=$NODE_PID
		ADDR[$n]=$(jq -r .listen <<<"$READY_LINE")
		[ -n "$boot" ] || boot="--bootstrap ${DID[a]}@${ADDR[a]}"
		NUNET_HOME=$(home $n) nunet-node onboard --cpu 1 --memory 1G --disk 1G \
			--price cpu_second=1 <"$VPS" >/dev/null
	done
	for n in $NODES; do
		mkdir -p "$(home $n)/tokens"
		for m in $NODES; do
			[ $n = $m ] || nunet-node --home "$(home $m)" cap grant "${DID[$n]}" --cap /deploy \
				>"$(home $n)/tokens/$m.json"
		done
	done
	within 60 converged
}
declare -gA CONFIG

teardown() {
	local n
	for n in $NODES; do [ -n "${PID[$n]:-}" ] && kill -CONT "${PID[$n]}" 2>/dev/null; done
	node_stop_all
	allocs_kill "$BATS_TEST_TMPDIR"
}

@test "results: each allocation's result, logs and outputs, from their URL (verified) or the provider; again, idempotent; a provider gone is named" {
	start_swarm
	store=$BATS_TEST_TMPDIR/store
	mkdir -p "$store"
	cat >"$BATS_TEST_TMPDIR/ens.json" <<-EOF
	{"name":"res","allocations":{
	  "gen":{"command":["sh","-c","mkdir -p out; echo alpha >out/a.txt; head -c 300000 /dev/urandom >big.bin; echo made; echo note >&2"],
	    "outputs":[{"path":"out/a.txt","url":"file://$store/a.txt"},{"path":"big.bin","url":"file://$store/big.bin"}],
	    "resources":{"cpu":0.5,"ram":16777216}},
	  "other":{"command":["sh","-c","echo beta >b.txt; exit 3"],
	    "outputs":[{"path":"b.txt","url":"http://127.0.0.1:1/b.txt"}],
	    "resources":{"cpu":0.5,"ram":16777216}}},
	 "nodes":{"g1":{"allocations":["gen"],"peer":"${DID[b]}"},"g2":{"allocations":["other"],"peer":"${DID[c]}"}}}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy --wait "$BATS_TEST_TMPDIR/ens.json"
	assert_failure 3
	id=${lines[-1]}
	res=$BATS_TEST_TMPDIR/res
	run --separate-stderr nunet-run results "$id" "$res"
	assert_success
	assert_equal "$output" "$(printf '%s\n' "$res/gen" "$res/other")"
	# logs, state and the result, per allocation
	assert_equal "$(cat "$res/gen/stdout.log")" made
	assert_equal "$(cat "$res/gen/stderr.log")" note
	assert_equal "$(jq -r .status "$res/other/state.json")" 3
	assert_equal "$(jq -r '.result.status' "$res/other/result.json")" 3
	assert_equal "$(jq -r '.result.state' "$res/gen/result.json")" exited
	# the outputs are what the job wrote, in its directory on the provider
	gdir=$(jq -r .dir "$res/gen/result.json")
	assert_equal "$(cat "$res/gen/outputs/out/a.txt")" alpha
	cmp "$res/gen/outputs/big.bin" "$gdir/big.bin"
	cmp "$res/gen/outputs/big.bin" "$store/big.bin"
	assert_equal "$(cat "$res/other/outputs/b.txt")" beta
	# gen's were uploaded: taken from their URL, checked against the sha256
	# the provider computed; other's upload failed: taken from the provider
	assert_equal "$(jq -r '.[] | [.path, .source, .verified, .size, .url] | @tsv' "$res/gen/outputs.json")" \
		"$(printf 'out/a.txt\turl\ttrue\t6\tfile://%s/a.txt\nbig.bin\turl\ttrue\t300000\tfile://%s/big.bin' "$store" "$store")"
	assert_equal "$(jq -r '.[0].sha256' "$res/gen/outputs.json")" "$(sha256sum "$gdir/out/a.txt" | cut -d' ' -f1)"
	assert_equal "$(jq -r '.[] | [.path, .source, .verified, (.error != null)] | @tsv' "$res/other/outputs.json")" \
		"$(printf 'b.txt\tprovider\tfalse\ttrue')"
	# a second call writes the same, and nothing more
	sums() { (cd "$res" && find . -type f | sort | xargs sha256sum); }
	before=$(sums)
	run nunet-run results "$id" "$res"
	assert_success
	assert_equal "$(sums)" "$before"
	assert_equal "$(ls "$res" | tr '\n' ' ')" "gen other "
	# a stored copy changed since: refused by its checksum, the provider's taken
	echo tampered >"$store/a.txt"
	run nunet-run results "$id" "$res"
	assert_success
	assert_equal "$(cat "$res/gen/outputs/out/a.txt")" alpha
	assert_equal "$(jq -r '.[0] | [.source, .verified, (.url_error | test("sha256|checksum"))] | @tsv' "$res/gen/outputs.json")" \
		"$(printf 'provider\ttrue\ttrue')"
	# --no-download: the URL, size and sha256 only
	run nunet-run results --no-download "$id" "$BATS_TEST_TMPDIR/meta"
	assert_success
	assert_equal "$(jq -r '.[1] | [.path, .size, .file == null, .source == null] | @tsv' "$BATS_TEST_TMPDIR/meta/gen/outputs.json")" \
		"$(printf 'big.bin\t300000\ttrue\ttrue')"
	[ ! -e "$BATS_TEST_TMPDIR/meta/gen/outputs/big.bin" ]
	# a DIR that is a file is refused
	touch "$BATS_TEST_TMPDIR/plain"
	run --separate-stderr nunet-run results "$id" "$BATS_TEST_TMPDIR/plain"
	assert_failure 74
	assert_equal "$stderr" "nunet-run: error: results: '$BATS_TEST_TMPDIR/plain' is not a directory"
	# c is gone: what it held is listed, what was fetched before stays
	kill -KILL "${PID[c]}"
	within 40 "alive a 1"
	run --separate-stderr nunet-run results "$id" "$res"
	assert_failure 69
	assert_output "$(printf '%s\n' "$res/gen" "$res/other")"
	assert_equal "${#stderr_lines[@]}" 2
	[[ ${stderr_lines[0]} == "nunet-run: error: $res/other/result.json, stdout.log, stderr.log and outputs: not fetched: provider ${DID[c]}: "* ]]
	assert_equal "${stderr_lines[1]}" "nunet-run: error: results: 1 thing could not be fetched (listed above)"
	assert_equal "$(cat "$res/other/outputs/b.txt")" beta
	assert_equal "$(cat "$res/gen/outputs/out/a.txt")" alpha
	assert_equal "$(jq -r .status "$res/other/state.json")" 3
}

@test "a recursive job's child placed on another node streams its output to the parent as it is written" {
	start_swarm
	# the driver holds 0.5 of b's single cpu, so its 0.8-cpu child goes to
	# another node; the child prints a line a second, then waits for a mark
	mark=$BATS_TEST_TMPDIR/mark
	cat >"$BATS_TEST_TMPDIR/rec.json" <<-EOF
	{"allocations":{"driver":{"command":["sh","-c","nunet-run --swarm --cpu 0.8 -- sh -c 'for i in 1 2 3; do echo line \$i; echo err \$i >&2; sleep 1; done; while [ ! -e $mark ]; do sleep 0.1; done; echo last; exit 6'; echo child \$?"],
	  "env":{"PATH":"$PATH"},"resources":{"cpu":0.5,"ram":16777216}}},
	 "nodes":{"g":{"allocations":["driver"],"peer":"${DID[b]}"}}}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/rec.json"
	assert_success
	id=${lines[-1]}
	# the driver's log shows the child's lines while the child still runs
	drv_out() { nunet-run logs "$id" driver 2>/dev/null; }
	drv_err() { nunet-run logs "$id" driver 2>&1 >/dev/null; }
	within 60 "drv_out | grep -qx 'line 3'"
	within 10 "drv_err | grep -qx 'err 3'"
	child=$(NUNET_HOME=$(home b) nunet-run ls | jq -r 'select(.kind == "deployment") | .id')
	assert [ -n "$child" ]
	child_prov=$(NUNET_HOME=$(home b) nunet-run status "$child" | jq -r '.allocations[0].provider')
	assert [ "$child_prov" != "${DID[b]}" ]
	assert_equal "$(NUNET_HOME=$(home b) nunet-run status "$child" | jq -r .allocations[0].state)" running
	run drv_out
	refute_line last
	touch "$mark"
	run timeout 60 nunet-run wait "$id"
	assert_success
	assert_equal "$(drv_out)" "$(printf 'line 1\nline 2\nline 3\nlast\nchild 6')"
	assert_equal "$(drv_err)" "$(printf 'err 1\nerr 2\nerr 3')"
	within 20 all_clean
}
