#!/usr/bin/env bats
# depends_on within one node group (lib/orch.h, alloc.h's "after"): the
# provider starts an allocation only once those of its group it depends on
# run (services) or have exited 0 (tasks), as the orchestrator does across
# groups; a dependency that fails fails the deployment, naming it, and
# what depends on it never starts; a converted Kubernetes pod's init
# containers and a Nomad group's prestart task finish before the main
# ones start; one_for_all restarts and a lost provider's repair keep the
# order.
load lib/common
load lib/swarm

# states NODE ALLOC: the allocation's state history on NODE, one a line
states() { NUNET_HOME=$(home "$1") nunet-run status "$2" | jq -r '.states[].state'; }
# first_ts NODE ALLOC STATE: when the allocation first entered STATE (ms)
first_ts() {
	NUNET_HOME=$(home "$1") nunet-run status "$2" |
		jq -r --arg s "$3" '[.states[] | select(.state == $s) | .ts][0]'
}
alloc_of() { nunet-run status "$id" | jq -r --arg n "$1" '.allocations[] | select(.name == $n) | .alloc'; }
prov_of() { nunet-run status "$id" | jq -r --arg n "$1" '.allocations[] | select(.name == $n) | .provider'; }
node_of() {	# node_of DID: the letter of the node with that did
	local n
	for n in $NODES; do [ "${DID[$n]}" != "$1" ] || echo "$n"; done
}
# small NAME TYPE COMMAND [DEPENDS]: an allocation of a quarter core
small() {
	jq -nc --arg n "$1" --arg t "$2" --arg c "$3" --arg d "${4:-}" '{($n): ({type: $t,
		command: ["sh", "-c", $c], resources: {cpu: 0.25, ram: 16777216}}
		+ if $d == "" then {} else {depends_on: [$d]} end)}'
}
# ensemble GROUPS ALLOC...: the allocations in one group "g" (GROUPS=one)
# or one group each (GROUPS=each)
ensemble() {
	local groups=$1
	shift
	jq -sc --arg g "$groups" '{allocations: add, deadline_ms: 40000}
		+ if $g == "one" then {nodes: {g: {allocations: (add | keys_unsorted)}}} else {} end' \
		<(for a in "$@"; do echo "$a"; done)
}

@test "in one group, a service that reads at its start what a task wrote sees it" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	ensemble one "$(small prep task "sleep 2; echo ready >$T/flag")" \
		"$(small web service "cat $T/flag >$T/seen 2>&1 || echo missing >$T/seen; exec sleep 60" prep)" \
		>"$T/ens.json"
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$T/ens.json"
	assert_success
	id=${lines[-1]}
	# running only once web runs: after prep's end
	assert_equal "$(nunet-run status "$id" | jq -r .state)" running
	within 10 "[ -s $T/seen ]"
	assert_equal "$(cat "$T/seen")" ready
	assert_equal "$(prov_of web)" "$(prov_of prep)"
	n=$(node_of "$(prov_of web)")
	web=$(alloc_of web) prep=$(alloc_of prep)
	# on the provider, web waited, and started after prep had exited
	run states "$n" "$web"
	assert_equal "${lines[0]}" waiting
	(( $(first_ts "$n" "$web" starting) >= $(first_ts "$n" "$prep" exited) ))
	assert_equal "$(NUNET_HOME=$(home $n) nunet-run status "$prep" | jq -r '.state + " " + (.status | tostring)')" "exited 0"
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "in one group, a service that depends on a service starts once that one runs" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	ensemble one "$(small db service "exec sleep 60")" \
		"$(small web service "exec sleep 60" db)" "$(small api service "exec sleep 60" web)" >"$T/ens.json"
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$T/ens.json"
	assert_success
	id=${lines[-1]}
	within 20 "[ \"\$(nunet-run status $id | jq -r '[.allocations[].state] | unique | join(\" \")')\" = running ]"
	n=$(node_of "$(prov_of db)")
	db=$(alloc_of db) web=$(alloc_of web) api=$(alloc_of api)
	# each waited for the one before it to run: db, then web, then api
	assert_equal "$(states "$n" "$web" | head -1)" waiting
	assert_equal "$(states "$n" "$api" | head -1)" waiting
	(( $(first_ts "$n" "$web" starting) >= $(first_ts "$n" "$db" running) ))
	(( $(first_ts "$n" "$api" starting) >= $(first_ts "$n" "$web" running) ))
	# the provider heard of waiting: the orchestrator's events say so
	NUNET_HOME=$(home a) nunet-node events --kind deploy.alloc |
		jq -s -e --arg d "$id" 'map(select(.fields.deployment == $d and .fields.name == "api"
			and .fields.state == "waiting")) | length >= 1' >/dev/null
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "a failing dependency task: what depends on it never starts; the deployment fails naming it" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	export NUNET_HOME=$(home a)
	for groups in one each; do
		ensemble $groups "$(small prep task "sleep 1; exit 3")" \
			"$(small web service "echo started >$T/web-$groups; exec sleep 60" prep)" >"$T/ens.json"
		start=$(date +%s)
		run --separate-stderr nunet-run deploy "$T/ens.json"
		assert_failure 69
		assert_equal "$stderr" "nunet-run: error: deployment failed: prep, which web depends on, exited with status 3"
		# at once, not at the deadline (40 s)
		(( $(date +%s) - start < 25 ))
		id=$(printf '%s\n' "${lines[@]}" | grep '"deploy.failed"' | jq -r .fields.deployment)
		assert_equal "$(nunet-run status "$id" | jq -r .reason)" "prep, which web depends on, exited with status 3"
		[ ! -e "$T/web-$groups" ]
		if [ $groups = one ]; then
			# web was made on prep's provider and ended there without a run
			n=$(node_of "$(prov_of prep)")
			web=$(alloc_of web)
			within 20 "[ \"\$(NUNET_HOME=$(home $n) nunet-run status $web | jq -r .final)\" = true ]"
			run states "$n" "$web"
			refute_line starting
			refute_line running
		fi
		within 30 all_clean
	done
}

@test "a converted Kubernetes pod: the init container finishes before the main container starts" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	cat >"$T/pod.yaml" <<-EOF
	apiVersion: v1
	kind: Pod
	metadata: {name: initdemo}
	spec:
	  restartPolicy: Always
	  initContainers:
	  - name: setup
	    image: bb:local
	    command: [sh, -c, "sleep 2; echo configured >$T/conf"]
	    resources: {requests: {cpu: 250m, memory: 16Mi}}
	  - name: migrate
	    image: bb:local
	    command: [sh, -c, "grep -q configured $T/conf && echo migrated >>$T/conf"]
	    resources: {requests: {cpu: 250m, memory: 16Mi}}
	  containers:
	  - name: app
	    image: bb:local
	    command: [sh, -c, "cat $T/conf >$T/app-saw 2>&1 || echo missing >$T/app-saw; exec sleep 60"]
	    resources: {requests: {cpu: 250m, memory: 16Mi}}
	EOF
	run --separate-stderr nunet-run convert --from kubernetes "$T/pod.yaml"
	assert_success
	# the pod is one node group; no Docker here: the same commands natively
	jq -c '.allocations |= map_values(.executor = "native" | del(.image))' <<<"$output" >"$T/pod.json"
	assert_equal "$(jq -c '.nodes | map_values(.allocations)' "$T/pod.json")" '{"initdemo":["setup","migrate","app"]}'
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$T/pod.json"
	assert_success
	id=${lines[-1]}
	within 10 "[ -s $T/app-saw ]"
	assert_equal "$(cat "$T/app-saw")" "$(printf 'configured\nmigrated')"
	n=$(node_of "$(prov_of app)")
	(( $(first_ts "$n" "$(alloc_of migrate)" starting) >= $(first_ts "$n" "$(alloc_of setup)" exited) ))
	(( $(first_ts "$n" "$(alloc_of app)" starting) >= $(first_ts "$n" "$(alloc_of migrate)" exited) ))
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "a converted Nomad group: its prestart task ends before its main task starts" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	jq -nc --arg t "$T" '{Job: {ID: "pre", Name: "pre", Type: "service", TaskGroups: [{Name: "app", Count: 1,
		Tasks: [{Name: "setup", Driver: "raw_exec", Lifecycle: {Hook: "prestart", Sidecar: false},
			 Config: {command: "/bin/sh", args: ["-c", "sleep 2; echo prepared >\($t)/conf"]},
			 Resources: {CPU: 100, MemoryMB: 16}},
			{Name: "main", Driver: "raw_exec",
			 Config: {command: "/bin/sh", args: ["-c", "cat \($t)/conf >\($t)/saw 2>&1; exec sleep 60"]},
			 Resources: {CPU: 100, MemoryMB: 16}}]}]}}' >"$T/job.json"
	run --separate-stderr nunet-run convert --from nomad "$T/job.json"
	assert_success
	printf '%s\n' "$output" >"$T/job.ens.json"
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$T/job.ens.json"
	assert_success
	id=${lines[-1]}
	within 10 "[ -s $T/saw ]"
	assert_equal "$(cat "$T/saw")" prepared
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

# flaky SECONDS: a service of group f that fails every SECONDS, whose
# one_for_all strategy restarts every other allocation of the deployment
flaky() {
	printf '{"flaky":{"type":"service","command":["sh","-c","sleep %s; exit 1"],"resources":{"cpu":0.25,"ram":16777216},"restart":{"policy":"always","strategy":"one_for_all","intensity":10,"period":"1m"}}}' "$1"
}
# all_ts NODE ALLOC STATE: every time the allocation entered STATE (ms)
all_ts() {
	NUNET_HOME=$(home "$1") nunet-run status "$2" | jq -r --arg s "$3" '.states[] | select(.state == $s) | .ts'
}

@test "one_for_all restarts keep the order within a group: the dependent starts again once its dependency runs again" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	jq -sc --arg b "${DID[b]}" --arg c "${DID[c]}" '{allocations: add, deadline_ms: 40000,
		nodes: {f: {allocations: ["flaky"], peer: $b}, g: {allocations: ["db", "web"], peer: $c}}}' \
		<(flaky 3) <(small db service "exec sleep 60") <(small web service "exec sleep 60" db) >"$T/ens.json"
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$T/ens.json"
	assert_success
	id=${lines[-1]}
	db=$(alloc_of db) web=$(alloc_of web)
	# both were killed by the strategy and started again, web after db
	within 40 "[ \"\$(all_ts c $web starting | wc -l)\" -ge 2 ] && [ \"\$(all_ts c $db running | wc -l)\" -ge 2 ]"
	NUNET_HOME=$(home c) nunet-run status "$web" |
		jq -e '[.states[].reason // "" | select(startswith("supervisor: flaky"))] | length > 0' >/dev/null
	(( $(all_ts c "$web" starting | sed -n 2p) >= $(all_ts c "$db" running | sed -n 2p) ))
	# (its intensity may have failed the deployment by now on a slow machine)
	nunet-run cancel "$id" >/dev/null || true
	within 30 all_clean
}

@test "a lost provider's group placed again runs its task again before what depends on it" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	ensemble one "$(small prep task "sleep 1; echo run >>$T/prep-runs")" \
		"$(small web service "wc -l <$T/prep-runs >>$T/web-saw; exec sleep 60" prep)" >"$T/ens.json"
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$T/ens.json"
	assert_success
	id=${lines[-1]}
	prov=$(prov_of web)
	victim=$(node_of "$prov")
	[ "$victim" != a ] || skip "the group landed on the orchestrator's own node"
	within 10 "[ -s $T/web-saw ]"
	kill -KILL "${PID[$victim]}"
	within 60 "[ \"\$(nunet-run status $id | jq -r .state)\" = running ] && [ \"\$(prov_of web)\" != $prov ]"
	within 10 "[ \"\$(wc -l <$T/web-saw)\" = 2 ]"
	# each start of web saw one more run of prep: the second came first
	assert_equal "$(cat "$T/web-saw" | tr -d ' ' | paste -sd' ')" "1 2"
	nunet-run cancel "$id" >/dev/null
	NODES=${NODES/$victim/}
	within 30 all_clean
}
