#!/usr/bin/env bats
# depends_on across node groups when the orchestrator restarts (lib/orch.h,
# alloc.h's /alloc/restart "hold"): under rest_for_one and one_for_all a
# dependent on another node is held, state waiting and no process, until
# its restarted dependency runs again, as at first start; a dependency
# whose restart fails fails the deployment, naming it, even before the
# dependent's provider has reported its hold.
load lib/common
load lib/swarm

alloc_of() { nunet-run status "$id" | jq -r --arg n "$1" '.allocations[] | select(.name == $n) | .alloc'; }
# a job that writes, one a line, when each run started (ns)
job() { echo "date +%s%N >>$T/$1-starts; exec sleep 120"; }
job_pid() {	# job_pid NODE ALLOC: the job's pid on that node
	jq -r .pid "$(home "$1")/alloc/$2/native.json"
}
# svc NAME RESTART COMMAND [DEPENDS]: a service of a quarter core
svc() {
	jq -nc --arg n "$1" --argjson r "$2" --arg c "$3" --arg d "${4:-}" '{($n): ({type: "service",
		command: ["sh", "-c", $c], resources: {cpu: 0.25, ram: 16777216}, restart: $r}
		+ if $d == "" then {} else {depends_on: [$d]} end)}'
}
# db on node b, web (depends on db) on node c
ensemble() {
	jq -sc --arg b "${DID[b]}" --arg c "${DID[c]}" '{allocations: add, deadline_ms: 40000,
		nodes: {f: {allocations: ["db"], peer: $b}, g: {allocations: ["web"], peer: $c}}}' \
		<(svc db "$1" "$2") <(svc web "$3" "$(job web)" db)
}
# held_on NODE ALLOC: the allocation's history there shows a held run
held_on() {
	NUNET_HOME=$(home "$1") nunet-run status "$2" |
		jq -e '[.states[] | select(.state == "waiting" and .reason == "held by its supervisor")] | length > 0' \
		>/dev/null
}
both_running() {
	[ "$(nunet-run status "$id" | jq -r '[.allocations[].state] | unique | join(" ")')" = running ]
}
deploy() {
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$T/ens.json"
	assert_success
	id=${lines[-1]}
	within 20 both_running
	within 10 "[ -s $T/db-starts ] && [ -s $T/web-starts ]"
}

# db (one_for_all, never restarted by its own policy) whose program
# removes itself, so that its second run cannot start; web depends on it
deploy_failing_db() {
	start_swarm
	T=$BATS_TEST_TMPDIR
	printf '#!/bin/sh\nrm -f "$0"\n%s\n' "$(job db)" >"$T/db.sh"
	chmod +x "$T/db.sh"
	ensemble '"never"' "exec $T/db.sh" '{"policy":"always","strategy":"one_for_all","intensity":10}' |
		jq -c --arg p "$T/db.sh" '.allocations.db.command = [$p]' >"$T/ens.json"
	deploy
	web=$(alloc_of web)
}

@test "rest_for_one across groups: the dependent on another node starts again after its dependency runs again" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	ensemble '{"policy":"always","strategy":"rest_for_one","intensity":10}' "$(job db)" '"always"' >"$T/ens.json"
	deploy
	web=$(alloc_of web) db=$(alloc_of db)
	kill -KILL "$(job_pid b "$db")"
	within 40 "[ \$(wc -l <$T/db-starts) -ge 2 ] && [ \$(wc -l <$T/web-starts) -ge 2 ] && both_running" || {
		NUNET_HOME=$(home a) nunet-node events --kind deploy | jq -c '[.kind, .fields.name, .fields.state, .fields.reason]' >&3
		NUNET_HOME=$(home c) nunet-run status "$web" | jq -c .states >&3
		cat $T/db-starts $T/web-starts >&3
		false
	}
	# web was killed and held on c (no process) until db ran again on b
	held_on c "$web"
	NUNET_HOME=$(home c) nunet-run status "$web" |
		jq -e '[.states[].reason // "" | select(startswith("supervisor: db"))] | length > 0' >/dev/null
	(( $(sed -n 2p "$T/web-starts") >= $(sed -n 2p "$T/db-starts") ))
	saw deploy.release_held
	assert_equal "$(nunet-run status "$id" | jq -r .state)" running
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "one_for_all across groups: the failed dependent waits for its restarted dependency on another node" {
	start_swarm
	T=$BATS_TEST_TMPDIR
	ensemble '"always"' "$(job db)" '{"policy":"always","strategy":"one_for_all","intensity":10}' >"$T/ens.json"
	deploy
	web=$(alloc_of web) db=$(alloc_of db)
	# b is slow for a moment: db's restart by the strategy comes late
	kill -STOP "${PID[b]}"
	kill -KILL "$(job_pid c "$web")"
	sleep 2
	kill -CONT "${PID[b]}"
	within 40 "[ \$(wc -l <$T/db-starts) -ge 2 ] && held_on c $web && both_running" || {
		NUNET_HOME=$(home a) nunet-node events --kind deploy | jq -c '[.kind, .fields.name, .fields.state, .fields.reason]' >&3
		NUNET_HOME=$(home c) nunet-run status "$web" | jq -c .states >&3
		cat $T/db-starts $T/web-starts >&3
		false
	}
	NUNET_HOME=$(home b) nunet-run status "$db" |
		jq -e '[.states[].reason // "" | select(startswith("supervisor: web"))] | length > 0' >/dev/null
	# web's last start came after db's second
	(( $(tail -n1 "$T/web-starts") >= $(sed -n 2p "$T/db-starts") ))
	assert_equal "$(nunet-run status "$id" | jq -r .state)" running
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "a dependency whose restart fails fails the deployment, naming it; the held dependent never runs again" {
	deploy_failing_db
	kill -KILL "$(job_pid c "$web")"
	within 40 "[ \"\$(nunet-run status $id | jq -r .state)\" = failed ]"
	run nunet-run status "$id"
	assert_equal "$(jq -r .reason <<<"$output")" \
		"db, which web depends on, ended (failed: command '$T/db.sh' not found: No such file or directory)"
	NUNET_HOME=$(home a) nunet-node events --kind deploy.failed | tail -n1 |
		jq -e --arg id "$id" '.fields.deployment == $id and .fields.dependency == "db" and .fields.dependent == "web"' \
		>/dev/null
	# the orchestrator restarted db for web's end and asked c to hold
	# web; the deployment fails on db's end whether or not c has put web
	# in its held state by then (c may restart web once at once, on its
	# own, before the hold reaches it), and web does not run again
	NUNET_HOME=$(home a) nunet-node events --kind deploy.restart |
		jq -se '[.[].fields | select(.name == "web" and .strategy == "one_for_all" and (.restart | index("db")))]
			| length == 1' >/dev/null
	within 10 "NUNET_HOME=$(home c) nunet-run status $web | jq -e '.state == \"killed\"' >/dev/null"
	assert_equal "$(wc -l <"$T/db-starts")" 1
	(( $(wc -l <"$T/web-starts") <= 2 ))
	within 30 all_clean
}

@test "a dependency whose restart fails before its dependent's hold is reported still fails the deployment, naming it" {
	deploy_failing_db
	# the orchestrator (a) reads web's end only once c is stopped: c
	# reports the hold that a asks for after db's failed restart on b
	kill -STOP "${PID[a]}"
	kill -KILL "$(job_pid c "$web")"
	sleep 1
	kill -STOP "${PID[c]}"
	kill -CONT "${PID[a]}"
	within 20 "[ \"\$(nunet-run status $id | jq -r .state)\" = failed ]" || {
		kill -CONT "${PID[c]}"
		NUNET_HOME=$(home a) nunet-node events --kind deploy | jq -c '[.kind, .fields.name, .fields.state, .fields.reason]' >&3
		false
	}
	run nunet-run status "$id"
	kill -CONT "${PID[c]}"
	assert_equal "$(jq -r .reason <<<"$output")" \
		"db, which web depends on, ended (failed: command '$T/db.sh' not found: No such file or directory)"
	assert_equal "$(wc -l <"$T/db-starts")" 1
	within 30 all_clean
}
