#!/usr/bin/env bats
# Supervision across nodes (lib/orch.h): providers push allocation states
# the moment they change and a heartbeat every period; the orchestrator
# declares a provider lost by missed heartbeats or by the swarm's
# membership, whichever comes first, and places again only the node
# groups the lost provider held, the others running on untouched; leases
# of groups waiting for their dependencies are renewed.
load lib/common
load lib/swarm

# where NAME: provider of allocation NAME of deployment $id (on a)
where() { nunet-run status "$id" | jq -r --arg n "$1" '.allocations[] | select(.name == $n) | .provider'; }
alloc_of() { nunet-run status "$id" | jq -r --arg n "$1" '.allocations[] | select(.name == $n) | .alloc'; }
node_of() {	# node_of DID: the letter of the node with that did
	local n
	for n in $NODES; do [ "${DID[$n]}" != "$1" ] || echo "$n"; done
}
job_pid() {	# job_pid NODE ALLOC: the job's pid on that node
	jq -r .pid "$(home "$1")/alloc/$2/native.json"
}
lost_by() {	# lost_by DID: how a's deployment found DID lost, if it did
	NUNET_HOME=$(home a) nunet-node events --kind deploy.lost |
		jq -r --arg p "$1" 'select(.fields.provider == $p) | .fields.by' | head -1
}
lost_after() {	# lost_after DID T0: ms from T0 (epoch ms) to the loss event
	NUNET_HOME=$(home a) nunet-node events --kind deploy.lost |
		jq -s -r --arg p "$1" --argjson t "$2" 'map(select(.fields.provider == $p)) | .[0].ts - $t'
}

@test "a pushed state reaches the orchestrator within a second of the exit" {
	start_swarm
	cat >"$BATS_TEST_TMPDIR/task.json" <<-EOF
	{"allocations":{"t":{"type":"task","command":["sh","-c","sleep 1; exit 3"],"resources":{"cpu":1,"ram":16777216}}},
	 "nodes":{"g":{"allocations":["t"],"peer":"${DID[b]}"}},"heartbeat":"10m"}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy --wait "$BATS_TEST_TMPDIR/task.json"
	assert_failure 3
	id=${lines[-1]}
	# the provider's exit and the orchestrator's record of it, by their events
	exited_ts() { NUNET_HOME=$(home b) nunet-node events --kind alloc.state | jq -s 'map(select(.fields.state == "exited")) | .[0].ts'; }
	# the provider's store may write its events a moment later
	within 10 "[ \"\$(exited_ts)\" != null ]"
	exited=$(exited_ts)
	heard=$(nunet-node events --kind deploy.alloc | jq -s --arg d "$id" 'map(select(.fields.deployment == $d and .fields.state == "exited")) | .[0]')
	# pushed, not pulled (no heartbeat came in ten minutes), within a second
	assert_equal "$(jq -r '.fields.via // "push"' <<<"$heard")" push
	delay=$(( $(jq -r .ts <<<"$heard") - exited ))
	echo "exit to orchestrator: ${delay} ms (exited at $exited; heard: $heard)"
	echo "# exit to orchestrator: ${delay} ms" >&3
	(( delay >= 0 && delay < 1000 ))
	assert_equal "$(nunet-run status "$id" | jq -r '.state + " " + (.status | tostring)')" "done 3"
}

@test "a failing health check reaches the orchestrator as it happens" {
	start_swarm
	cat >"$BATS_TEST_TMPDIR/hc.json" <<-EOF
	{"allocations":{"web":{"type":"service","command":["sleep","60"],"resources":{"cpu":1,"ram":16777216},
	  "healthcheck":{"cmd":["sh","-c","exit 1"],"interval":"200ms","retries":2}}},
	 "nodes":{"g":{"allocations":["web"],"peer":"${DID[b]}"}},"heartbeat":"10m"}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/hc.json"
	assert_success
	id=${lines[-1]}
	failing() {
		nunet-node events --kind deploy.alloc |
			jq -s -e --arg d "$id" 'map(select(.fields.deployment == $d and .fields.health == "failing")) | length > 0' >/dev/null
	}
	within 20 failing
	# and the restart its provider made of it, as a state
	restarting() {
		nunet-node events --kind deploy.alloc |
			jq -s -e --arg d "$id" 'map(select(.fields.deployment == $d and .fields.state == "restarting")) | length > 0' >/dev/null
	}
	within 20 restarting
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "missed heartbeats find a stopped provider lost before membership does; only its group moves" {
	start_swarm
	# membership would take seconds; three missed 300 ms heartbeats take one
	cat >"$BATS_TEST_TMPDIR/svc.json" <<-EOF
	{"allocations":{$(service api),$(service db),$(service batch)},"heartbeat":"300ms","deadline_ms":30000}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/svc.json"
	assert_success
	id=${lines[-1]}
	# a victim that is not the orchestrator itself: the group on it moves
	victim= vname=
	for x in api db batch; do
		n=$(node_of "$(where $x)")
		[ "$n" != a ] && { victim=$n; vname=$x; break; }
	done
	[ -n "$victim" ] || skip "every group landed on the orchestrator's own node"
	declare -A before_alloc before_pid before_prov
	for x in api db batch; do
		before_alloc[$x]=$(alloc_of $x)
		before_prov[$x]=$(where $x)
		before_pid[$x]=$(job_pid "$(node_of "${before_prov[$x]}")" "${before_alloc[$x]}")
	done
	t0=$(( $(date +%s%N) / 1000000 ))
	kill -STOP "${PID[$victim]}"
	within 30 "[ -n \"\$(lost_by ${DID[$victim]})\" ]"
	assert_equal "$(lost_by "${DID[$victim]}")" heartbeat
	echo "# stopped to lost (heartbeat 300 ms): $(lost_after "${DID[$victim]}" "$t0") ms" >&3
	within 40 "[ \"\$(nunet-run status $id | jq -r .state)\" = running ] && [ \"\$(where $vname)\" != \"${DID[$victim]}\" ] && [ -n \"\$(where $vname)\" ]"
	# the lost group runs elsewhere, under a new allocation
	assert [ "$(alloc_of $vname)" != "${before_alloc[$vname]}" ]
	assert_equal "$(nunet-run status "$id" | jq -r '[.allocations[] | select(.state == "running")] | length')" 3
	# the others were not touched: same provider, same allocation, same job
	for x in api db batch; do
		[ "$x" = "$vname" ] && continue
		assert_equal "$(where $x)" "${before_prov[$x]}"
		assert_equal "$(alloc_of $x)" "${before_alloc[$x]}"
		assert_equal "$(job_pid "$(node_of "${before_prov[$x]}")" "${before_alloc[$x]}")" "${before_pid[$x]}"
		kill -0 "${before_pid[$x]}"
	done
	# the repair asked bids for the lost group only, and said so
	events | grep -q '^deploy.running'
	NUNET_HOME=$(home a) nunet-node events --kind deploy.lost | jq -s -e --arg v "$vname" 'map(select(.fields.redeploy == [$v])) | length == 1' >/dev/null
	kill -CONT "${PID[$victim]}"
	nunet-run cancel "$id" >/dev/null
	# the provider that came back lets go of what it ran (its lease is stale)
	within 40 all_clean
}

@test "a lost group placed again keeps its edge to the survivor: the cheap far node is passed over" {
	start_swarm far
	within 30 rtts_known
	cat >"$BATS_TEST_TMPDIR/edge.json" <<-EOF
	{"allocations":{$(service api),$(service db)},
	 "edges":[{"from":"api","to":"db","max_rtt_ms":250}],"bid_window_ms":5000,"deadline_ms":40000}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/edge.json"
	assert_success
	id=${lines[-1]}
	victim= vname= kname=
	for x in api db; do
		n=$(node_of "$(where $x)")
		[ "$n" != a ] && [ -z "$victim" ] && { victim=$n; vname=$x; }
	done
	[ -n "$victim" ] || skip "both groups landed on the orchestrator's own node"
	[ "$vname" = api ] && kname=db || kname=api
	kept=$(where $kname) kept_alloc=$(alloc_of $kname)
	kill -KILL "${PID[$victim]}"
	within 60 "[ \"\$(nunet-run status $id | jq -r .state)\" = running ] && [ -n \"\$(where $vname)\" ] && [ \"\$(where $vname)\" != \"${DID[$victim]}\" ]"
	# e is the cheapest left, but 400 ms from everyone: never next to the survivor
	assert [ "$(where $vname)" != "${DID[e]}" ]
	assert_equal "$(where $kname)" "$kept"
	assert_equal "$(alloc_of $kname)" "$kept_alloc"
	nunet-run cancel "$id" >/dev/null
	NODES=${NODES/$victim/}
	within 30 all_clean
}

@test "a provider killed while heartbeats are slow is lost by membership; a lost task without retries fails alone" {
	start_swarm
	cat >"$BATS_TEST_TMPDIR/mix.json" <<-EOF
	{"allocations":{$(service web),"job":{"type":"task","command":["sleep","60"],"resources":{"cpu":1,"ram":16777216}}},
	 "nodes":{"w":{"allocations":["web"],"peer":"${DID[b]}"},"j":{"allocations":["job"],"peer":"${DID[c]}"}},
	 "heartbeat":"10m"}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/mix.json"
	assert_success
	id=${lines[-1]}
	web=$(alloc_of web)
	t0=$(( $(date +%s%N) / 1000000 ))
	kill -KILL "${PID[c]}"
	within 40 "[ -n \"\$(lost_by ${DID[c]})\" ]"
	assert_equal "$(lost_by "${DID[c]}")" membership
	echo "# killed to lost (membership, probe 1 s, suspect 3 s): $(lost_after "${DID[c]}" "$t0") ms" >&3
	# the task is reported failed; the service runs on where it was
	within 10 "[ \"\$(nunet-run status $id | jq -r '.allocations[] | select(.name == \"job\") | .state')\" = failed ]"
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[] | select(.name == "job") | .reason')" \
		"provider ${DID[c]} was lost (membership)"
	assert_equal "$(alloc_of web)" "$web"
	assert_equal "$(nunet-run status "$id" | jq -r .state)" running
	nunet-run cancel "$id" >/dev/null
	NODES=${NODES/c/}
	within 30 all_clean
}

@test "a group waiting longer than a lease for its dependency keeps its lease and provisions" {
	start_swarm
	cat >"$BATS_TEST_TMPDIR/two.json" <<-EOF
	{"allocations":{"prep":{"type":"task","command":["sleep","24"],"resources":{"cpu":1,"ram":16777216}},
	 $(service web | sed 's/}}$/},"depends_on":["prep"]}/')},
	 "deadline_ms":60000}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/two.json"
	assert_success
	id=${lines[-1]}
	assert_equal "$(nunet-run status "$id" | jq -r .state)" running
	# web's lease (20 s at most) was renewed while prep ran; nothing reverted
	saw deploy.renew
	! saw deploy.revert
	assert_equal "$(nunet-run status "$id" | jq -r '.attempts')" 1
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[] | select(.name == "web") | .state')" running
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

# flaky SECONDS STRATEGY INTENSITY: a service that fails every SECONDS,
# restarted by its provider, whose strategy restarts others
flaky() {
	printf '"flaky":{"type":"service","command":["sh","-c","sleep %s; exit 1"],"resources":{"cpu":1,"ram":16777216},"restart":{"policy":"always","strategy":"%s","intensity":%s,"period":"1m"}}' "$1" "$2" "$3"
}
run_of() {	# run_of NODE ALLOC: how many runs the allocation has had
	NUNET_HOME=$(home "$1") nunet-run status "$2" | jq -r .run
}
restarted() {	# restarted NAME: a's deployment restarted NAME by strategy
	NUNET_HOME=$(home a) nunet-node events --kind deploy.restart |
		jq -s -e --arg n "$1" 'map(select(.fields.restart | index($n))) | length > 0' >/dev/null
}

@test "one_for_all across two providers: a failure on one restarts the sibling on the other" {
	start_swarm
	cat >"$BATS_TEST_TMPDIR/ofa.json" <<-EOF
	{"allocations":{$(flaky 3 one_for_all 10),$(service steady)},
	 "nodes":{"f":{"allocations":["flaky"],"peer":"${DID[b]}"},"s":{"allocations":["steady"],"peer":"${DID[c]}"}}}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/ofa.json"
	assert_success
	id=${lines[-1]}
	steady=$(alloc_of steady)
	pid=$(job_pid c "$steady")
	within 30 "restarted steady"
	# the same allocation on c, a new run of its job, by its supervisor's word
	within 20 "[ \"\$(run_of c $steady)\" -ge 2 ] && [ \"\$(NUNET_HOME=$(home c) nunet-run status $steady | jq -r .state)\" = running ]"
	assert [ "$(job_pid c "$steady")" != "$pid" ]
	NUNET_HOME=$(home c) nunet-run status "$steady" | jq -s -e '[.[0].states[].reason // "" | select(startswith("supervisor: flaky"))] | length > 0' >/dev/null
	assert_equal "$(alloc_of steady)" "$steady"
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "rest_for_one across providers: what depends on the failed one restarts, the rest does not" {
	start_swarm
	cat >"$BATS_TEST_TMPDIR/rfo.json" <<-EOF
	{"allocations":{$(flaky 3 rest_for_one 10),
	 $(service mid | sed 's/}}$/},"depends_on":["flaky"]}/'),$(service other)},
	 "nodes":{"f":{"allocations":["flaky"],"peer":"${DID[b]}"},"m":{"allocations":["mid"],"peer":"${DID[c]}"},
	  "o":{"allocations":["other"],"peer":"${DID[d]}"}}}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/rfo.json"
	assert_success
	id=${lines[-1]}
	mid=$(alloc_of mid) other=$(alloc_of other)
	opid=$(job_pid d "$other")
	within 30 "restarted mid"
	within 20 "[ \"\$(run_of c $mid)\" -ge 2 ]"
	# other depends on nothing that failed: the same run, the same job
	assert_equal "$(run_of d "$other")" 1
	assert_equal "$(job_pid d "$other")" "$opid"
	! restarted other
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "restart intensity exceeded: the deployment fails with the reason and every node is all free again" {
	start_swarm
	cat >"$BATS_TEST_TMPDIR/int.json" <<-EOF
	{"allocations":{$(flaky 1 one_for_all 2),$(service steady)},
	 "nodes":{"f":{"allocations":["flaky"],"peer":"${DID[b]}"},"s":{"allocations":["steady"],"peer":"${DID[c]}"}}}
	EOF
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/int.json"
	assert_success
	id=${lines[-1]}
	within 60 "[ \"\$(nunet-run status $id | jq -r .state)\" = failed ]"
	run nunet-run status "$id"
	assert_equal "$(jq -r .reason <<<"$output" | cut -d';' -f1)" "restart intensity reached: 3 failures within 60000 ms (one_for_all, intensity 2)"
	# the final event says so, and nothing is held anywhere
	NUNET_HOME=$(home a) nunet-node events --kind deploy.failed | jq -s -e --arg d "$id" 'map(select(.fields.deployment == $d and .fields.escalated == true)) | length == 1' >/dev/null
	within 30 all_clean
	run nunet-run wait "$id"
	assert_failure
}
