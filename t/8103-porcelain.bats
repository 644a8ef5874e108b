#!/usr/bin/env bats
# The porcelain of deployments on a real loopback swarm: `nunet-run results`
# gathers each allocation's result, logs and outputs (from the URL they were
# stored at, verified, or from the provider); a recursive job streams the
# output of a child placed on another node; a provider that requires
# contracts refuses deployments without an accepted one; an allocation's
# revoked tokens are pruned when it ends.
load lib/common
load lib/swarm

# three nodes, not lib/swarm's five
NODES="a b c"
declare -gA CONFIG

alive() {	# alive NODE COUNT: NODE sees COUNT peers alive
	[ "$(nunet-node --home "$(home $1)" peers | jq -s '[.[] | select(.state == "alive")] | length')" = "$2" ]
}
converged() {
	local n
	for n in $NODES; do alive $n 2 || return 1; done
}

# start_trio: nodes a, b, c at one price, each with its CONFIG[NODE] and
# onboarded when in ONBOARD (default all), each holding /deploy tokens
# from the others (any may orchestrate)
start_trio() {
	local n m boot=""
	export NUNET_SWARM_PROBE_MS=1000 NUNET_SWARM_SUSPECT_MS=3000
	for n in $NODES; do node_init "$(home $n)"; DID[$n]=$(nunet-node --home "$(home $n)" id); done
	for n in $NODES; do
		[ -z "${CONFIG[$n]:-}" ] || printf '%s\n' "${CONFIG[$n]}" >"$(home $n)/config.json"
		node_start "$(home $n)" --listen 127.0.0.1:0 $boot
		PID[$n]=$NODE_PID
		ADDR[$n]=$(jq -r .listen <<<"$READY_LINE")
		[ -n "$boot" ] || boot="--bootstrap ${DID[a]}@${ADDR[a]}"
		[[ " ${ONBOARD:-$NODES} " == *" $n "* ]] || continue
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

@test "results: each allocation's result, logs and outputs, from their URL (verified) or the provider; again, idempotent; a provider gone is named" {
	start_trio
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
	start_trio
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
	# a client that is not an owner of a sends on through it only what a
	# token from a covers: none, or one for /alloc, is not enough
	nunet-node --home "$BATS_TEST_TMPDIR/x" init >/dev/null
	xd=$(nunet-node --home "$BATS_TEST_TMPDIR/x" id)
	nunet-node --home "$(home a)" cap grant "$xd" --cap /alloc >"$BATS_TEST_TMPDIR/x.tok"
	for cap in "" "--cap $BATS_TEST_TMPDIR/x.tok"; do
		run --separate-stderr nunet-send --key "$BATS_TEST_TMPDIR/x/key" $cap --to "${DID[b]}" \
			/public/deploy/logs '{"lease":"x","name":"y"}'
		assert_failure
		[[ $stderr == *"unauthorized: $xd may not send /public/deploy/logs through this node"* ]]
	done
}

# contract PROVIDER CAP: a proposes a contract to PROVIDER, which accepts it,
# and a takes its signature; prints its id
contract() {
	nunet-pay --home "$(home a)" contract propose --provider "${DID[$1]}" --cpu-rate 1 --cap "$2" \
		--duration 1h >"$BATS_TEST_TMPDIR/prop.json"
	nunet-pay --home "$(home $1)" contract accept "$BATS_TEST_TMPDIR/prop.json" >"$BATS_TEST_TMPDIR/acc.json"
	nunet-pay --home "$(home a)" contract accept "$BATS_TEST_TMPDIR/acc.json" >/dev/null
	jq -r .id "$BATS_TEST_TMPDIR/acc.json"
}

@test "deploy_require_contract: a provider deploys only under a contract it accepted; others refuse with the reason, nothing stays reserved" {
	CONFIG[b]='{"deploy_require_contract":true}'
	CONFIG[c]='{"deploy_require_contract":true}'
	ONBOARD="b c" start_trio
	export NUNET_HOME=$(home a)
	ens() {	# ens CONTRACT [PEER]: one small task under CONTRACT ("" for none)
		printf '{"name":"paid","allocations":{"t":{"command":["sh","-c","echo paid"],"resources":{"cpu":0.5,"ram":16777216}}}'
		[ -z "$1" ] || printf ',"contract":"%s"' "$1"
		[ -z "${2:-}" ] || printf ',"nodes":{"g":{"allocations":["t"],"peer":"%s"}}' "${DID[$2]}"
		printf ',"bid_window_ms":3000,"deadline_ms":20000}\n'
	}
	failed_explain() {	# the near-misses in the deploy.failed event deploy printed: provider, reason
		printf '%s\n' "$DEPLOY_OUT" | grep '"deploy.failed"' | jq -r '.fields.explain[] | [.provider, .rejected[0]] | @tsv'
	}
	commits_refused() {	# how many refused commits deploy printed
		printf '%s\n' "$DEPLOY_OUT" | grep -c '"deploy.commit_failed"'
	}
	# no contract: both refuse, once each, the deployment fails at once
	# with their reasons, nothing reserved
	ens "" >"$BATS_TEST_TMPDIR/none.json"
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/none.json"
	assert_failure 1
	id=${lines[-1]}
	assert_equal "$(nunet-run status "$id" | jq -r .state)" failed
	# (a, not onboarded, offers nothing)
	DEPLOY_OUT=$output
	run failed_explain
	assert_line "${DID[a]}	onboard: this node offers nothing (not onboarded)"
	mapfile -t lines < <(failed_explain | grep -v "${DID[a]}")
	assert_equal "${#lines[@]}" 2
	for l in "${lines[@]}"; do
		[[ $l == "${DID[b]}	commit on ${DID[b]} refused: contract: this provider deploys only under an accepted contract" ||
		   $l == "${DID[c]}	commit on ${DID[c]} refused: contract: this provider deploys only under an accepted contract" ]]
	done
	assert_equal "$(commits_refused)" 2
	within 20 all_clean
	# a contract b accepted: b runs it (c, asked first or not, refuses it)
	cb=$(contract b 100000)
	ens "$cb" >"$BATS_TEST_TMPDIR/b.json"
	run --separate-stderr nunet-run deploy --wait "$BATS_TEST_TMPDIR/b.json"
	assert_success
	id=${lines[-1]}
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].provider')" "${DID[b]}"
	assert_equal "$(nunet-run logs "$id" t)" paid
	# pinned to c under b's contract: c refuses, the deployment fails cleanly
	ens "$cb" c >"$BATS_TEST_TMPDIR/c.json"
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/c.json"
	assert_failure 1
	id=${lines[-1]}
	DEPLOY_OUT=$output
	assert_equal "$(failed_explain | grep -v "${DID[a]}")" \
		"${DID[c]}	commit on ${DID[c]} refused: contract: unknown contract '$cb'"
	within 20 all_clean
	# a contract b itself proposed and a never accepted: refused
	nunet-pay --home "$(home b)" contract propose --requester "${DID[a]}" --cpu-rate 1 --cap 1000 \
		--duration 1h >"$BATS_TEST_TMPDIR/p2.json"
	cp=$(jq -r .id "$BATS_TEST_TMPDIR/p2.json")
	ens "$cp" b >"$BATS_TEST_TMPDIR/p2ens.json"
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/p2ens.json"
	assert_failure 1
	DEPLOY_OUT=$output
	run failed_explain
	assert_output "${DID[b]}	commit on ${DID[b]} refused: contract: contract $cp is proposed, not accepted"
	within 20 all_clean
	# nothing ran on b but the contracted task
	assert_equal "$(NUNET_HOME=$(home b) nunet-run ls -a | jq -s length)" 1
}

@test "an allocation's expired and revoked tokens are pruned once they expire; a copy stays worthless" {
	U=-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')
	node_init
	# tokens that live 2 s, renewed every second
	NUNET_ALLOC_CAP_TTL=2s node_start
	db=$NUNET_HOME/node.db
	rows() {	# tokens for audience $1, their revocations, revocations of no token
		sqlite3 "$db" "SELECT (SELECT count(*) FROM cap_tokens WHERE aud = '$1') || ' ' ||
			(SELECT count(*) FROM cap_revoked r JOIN cap_tokens t USING (nonce) WHERE t.aud = '$1') || ' ' ||
			(SELECT count(*) FROM cap_revoked WHERE nonce NOT IN (SELECT nonce FROM cap_tokens))"
	}
	nunet-run -d --id keep$U -- sleep 300 >/dev/null
	# a job that copies its credentials, lives through a few renewals, ends
	nunet-run --id short$U -- sh -c "cp \"\$NUNET_KEY\" $BATS_TEST_TMPDIR/k; sleep 4.5; cp \"\$NUNET_CAP\" $BATS_TEST_TMPDIR/c"
	short=$(jq -r .aud "$BATS_TEST_TMPDIR/c")
	keep=$(jq -r .aud "$NUNET_HOME/alloc/keep$U/cred/cap")
	# the end revoked its token, which has not expired: kept, revoked
	run nunet-node cap list
	assert_equal "$(jq -r --arg a "$short" 'select(.aud == $a) | .revoked' <<<"$output" | sort -u)" true
	# renewed four times or more, the expired ones pruned already
	assert [ "$(rows "$short" | cut -d' ' -f1)" -le 3 ]
	# once it expired: no record left of it, nor any stray revocation
	within 15 "[ \"\$(rows $short)\" = '0 0 0' ]"
	# a copy of its key and token is still refused (expired)
	run --separate-stderr nunet-send --key "$BATS_TEST_TMPDIR/k" --cap "$BATS_TEST_TMPDIR/c" /alloc/list
	assert_failure
	[[ $stderr == *unauthorized* ]]
	# the live one keeps its current token, and only recent ones
	n=$(rows "$keep" | cut -d' ' -f1)
	(( n >= 1 && n <= 3 ))
	assert_equal "$(jq -r .state "$NUNET_HOME/alloc/keep$U/state.json")" running
	run nunet-send --key "$NUNET_HOME/alloc/keep$U/cred/key" --cap "$NUNET_HOME/alloc/keep$U/cred/cap" /alloc/list
	assert_success
}
