#!/usr/bin/env bats
# Allocations through the node: /alloc/start checks a job completely before
# anything exists, runs it under its own shim (own session, socket in the
# allocation directory), records states, results and history in node.db.
load lib/common

setup() {
	common_setup
	node_init
	node_start
}

# Stop what is still running (cancel through the node, at once), then the
# node; shims left by a test that killed its node are killed by pid.
teardown() {
	allocs_teardown
}

start() {
	nunet-send /alloc/start "$1"
}

@test "/alloc/start runs a job under its shim and /alloc/status shows its history" {
	run start '{"spec":{"id":"a1","command":["sh","-c","echo hi; echo oops >&2; exit 3"]}}'
	assert_success
	assert_equal "$(jq -r '.id, .dir, .executor' <<<"$output")" "a1
$NUNET_HOME/alloc/a1
native"
	run nunet-run wait a1
	assert_failure 3
	run nunet-send /alloc/status '{"id":"a1"}'
	assert_success
	assert_equal "$(jq -r '.state, .status, .final, .run, .result.code' <<<"$output")" "exited
3
true
1
3"
	assert_equal "$(jq -c '[.states[].state]' <<<"$output")" '["starting","running","exited"]'
	assert_equal "$(cat "$NUNET_HOME/alloc/a1/stdout.log")" hi
	assert_equal "$(cat "$NUNET_HOME/alloc/a1/stderr.log")" oops
	assert_equal "$(jq -r .state "$NUNET_HOME/alloc/a1/state.json")" exited
	# the shim is gone, and took its socket with it
	[ ! -e "$NUNET_HOME/alloc/a1/shim.sock" ]
	run sqlite3 "$NUNET_HOME/node.db" "SELECT run FROM alloc_results WHERE id = 'a1'"
	assert_output 1
}

@test "the shim runs in its own session, with its socket in the allocation directory" {
	run start '{"spec":{"id":"s1","command":["sleep","30"]}}'
	assert_success
	for i in $(seq 100); do
		[ "$(jq -r .state "$NUNET_HOME/alloc/s1/state.json")" = running ] && break
		sleep 0.05
	done
	pid=$(nunet-send /alloc/status '{"id":"s1"}' | jq -r .shim_pid)
	[ "$pid" -gt 1 ]
	assert_equal "$(ps -o sid= -p "$pid" | tr -d ' ')" "$pid"
	[ "$(ps -o sid= -p "$NODE_PID" | tr -d ' ')" != "$pid" ]
	[ -S "$NUNET_HOME/alloc/s1/shim.sock" ]
	assert_equal "$(stat -c %a "$NUNET_HOME/alloc/s1/shim.sock")" 600
	run nunet-send /alloc/list
	assert_success
	assert_equal "$(jq -r '.allocations[].id' <<<"$output")" s1
	run nunet-send /alloc/cancel '{"id":"s1","grace":"0s"}'
	assert_success
	assert_equal "$(jq -r .cancelled <<<"$output")" true
	run nunet-run wait s1
	assert_failure 137
	run nunet-send /alloc/status '{"id":"s1"}'
	assert_equal "$(jq -r .state <<<"$output")" killed
	# a finished allocation is listed only with all
	assert_equal "$(nunet-send /alloc/list | jq -c .allocations)" '[]'
	assert_equal "$(nunet-send /alloc/list '{"all":true}' | jq -r '.allocations[].id')" s1
}

@test "a node under a real-time policy (chrt -f) starts shims and jobs under SCHED_OTHER" {
	command -v chrt >/dev/null || skip "chrt (util-linux) is not installed"
	chrt -f -p 10 "$NODE_PID" 2>/dev/null || skip "this machine refuses SCHED_FIFO"
	assert_equal "$(chrt -p "$NODE_PID" | sed -n 's/.*policy: //p')" SCHED_FIFO
	run --separate-stderr nunet-run --cpu 0.5 --memory 64M -- sh -c 'chrt -p $$'
	assert_success
	assert_line --partial "scheduling policy: SCHED_OTHER"
	# the shim too, while its job runs
	id=$(nunet-run -d -- sleep 30)
	for i in $(seq 100); do
		[ "$(jq -r .state "$NUNET_HOME/alloc/$id/state.json")" = running ] && break
		sleep 0.05
	done
	pid=$(nunet-run status "$id" | jq -r .shim_pid)
	[ "$pid" -gt 1 ]
	assert_equal "$(chrt -p "$pid" | sed -n 's/.*policy: //p')" SCHED_OTHER
}

# refuse BODY MESSAGE-PART: refused with bad_body, no directory, no row
refuse() {
	run --separate-stderr nunet-send /alloc/start "$1"
	assert_failure
	[[ "$stderr" == *"$2"* ]] || fail "expected '$2' in: $stderr"
	run ls -A "$NUNET_HOME/alloc"
	assert_output ''
	run sqlite3 "$NUNET_HOME/node.db" 'SELECT count(*) FROM allocations'
	assert_output 0
}

@test "bad input fails before anything starts and leaves nothing behind" {
	refuse '{"spec":{"command":["no-such-command-xyz"]}}' "no-such-command-xyz"
	refuse '{"spec":{"command":["true"],"workdir":"../../x"}}' "workdir"
	refuse '{"spec":{"command":["true"],"colour":"red"}}' "unknown field 'colour'"
	refuse '{"spec":{"command":["true"]},"extra":1}' "unknown field 'extra'"
	refuse '{"spec":{"executor":"zeppelin","command":["true"]}}' "unknown executor 'zeppelin'"
	refuse '{"spec":{"command":["true"],"resources":{"memory":"64P"}}}' "memory"
	refuse '{"spec":{"command":["true"],"dir":"/tmp/elsewhere"}}' "dir"
	refuse '{"spec":{"command":["true"]},"restart":"sometimes"}' "unknown policy 'sometimes'"
	refuse '{"spec":{"command":["true"]},"healthcheck":{"command":[]}}' "healthcheck"
	refuse '{"spec":{"command":["true"]},"parent":"nobody"}' "no allocation 'nobody'"
	refuse '{"nospec":true}' "unknown field 'nospec'"
}

@test "an allocation id is used once" {
	run start '{"spec":{"id":"dup","command":["true"]}}'
	assert_success
	nunet-run wait dup
	run --separate-stderr start '{"spec":{"id":"dup","command":["true"]}}'
	assert_failure
	[[ "$stderr" == *"allocation 'dup' exists already"* ]]
}

@test "status, logs and cancel of an unknown allocation are refused" {
	for be in /alloc/status /alloc/logs /alloc/cancel; do
		run --separate-stderr nunet-send "$be" '{"id":"ghost"}'
		assert_failure
		[[ "$stderr" == *"no allocation 'ghost'"* ]] || fail "$be: $stderr"
	done
	run --separate-stderr nunet-send /alloc/status '{}'
	assert_failure
	[[ "$stderr" == *"id: expected the allocation id"* ]]
}

@test "/alloc/behaviors are listed by the node" {
	run nunet-send /node/behaviors
	assert_success
	assert_equal "$(jq -r '[.behaviors[].be | select(startswith("/alloc/"))] | sort | join(" ")' <<<"$output")" \
		"/alloc/cancel /alloc/list /alloc/logs /alloc/migrate/chunk /alloc/migrate/haves /alloc/migrate/receive /alloc/migrate/start /alloc/restart /alloc/start /alloc/status"
}

@test "on an onboarded node an allocation commits its resources while it lives" {
	nunet-node onboard --cpu 1 --memory 1G --disk 1G <"$NUNET_SRC/share/nunet/capability/small-vps.json" >/dev/null
	run nunet-run -d --id big --memory 512M --cpu 0.5 -- sleep 30
	assert_success
	assert_equal "$(nunet-send /node/resources | jq -c '[.committed.cpu, .committed.ram]')" '[500,536870912]'
	run --separate-stderr nunet-run --id bigger --memory 768M -- true
	assert_failure 69
	[[ "$stderr" == *"resources: "*"ram"* ]] || fail "$stderr"
	[ ! -e "$NUNET_HOME/alloc/bigger" ]
	nunet-run cancel --grace 0s big >/dev/null
	run nunet-run wait big
	assert_failure 137
	assert_equal "$(nunet-send /node/resources | jq -c '[.committed.cpu, .committed.ram, .allocations]')" '[0,0,0]'
}

# spare_pid: the pid of the node's spare shim, waiting (at most 10 s) for one
spare_pid() {
	local i p
	for i in $(seq 200); do
		p=$(pgrep -f -- "exec --shim --spare $NUNET_HOME/alloc\$" || true)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.05
	done
	return 1
}

@test "a new run goes to the spare shim the node keeps loaded; kill -9 of the node ends the spare, not the allocation" {
	spare=$(spare_pid)
	# and to the directory made ahead: its files, its identity
	sd=$(ls "$NUNET_HOME/alloc.spare")
	[ -n "$sd" ]
	assert_equal "$(cd "$NUNET_HOME/alloc.spare/$sd" && find . | sort | tr '\n' ' ')" \
		". ./.result.json.tmp ./.state.json.1.tmp ./.state.json.2.tmp ./.state.json.tmp ./cred ./cred/cap ./cred/key ./shim.log ./spec.json ./stderr.log ./stdout.log "
	sdid=$(jq -r .did "$NUNET_HOME/alloc.spare/$sd/cred/key")
	# in a session of its own, like every shim
	assert_equal "$(ps -o sid= -p "$spare" | tr -d ' ')" "$spare"
	nunet-run -d --id sp1 -- sh -c 'echo out; echo err >&2; sleep 30' >/dev/null
	wait_state sp1 running
	assert_equal "$(nunet-run status sp1 | jq -r .shim_pid)" "$spare"
	assert_equal "$(nunet-run status sp1 | jq -r .did)" "$sdid"
	[ ! -e "$NUNET_HOME/alloc.spare/$sd" ]
	assert_equal "$(stat -c %a "$NUNET_HOME/alloc/sp1/cred" "$NUNET_HOME/alloc/sp1/cred/cap" | tr '\n' ' ')" "700 600 "
	assert_equal "$(jq -r .aud "$NUNET_HOME/alloc/sp1/cred/cap")" "$sdid"
	[ -S "$NUNET_HOME/alloc/sp1/shim.sock" ]
	run nunet-run logs sp1
	assert_line out
	# the next spare is made within a second (the node's tick)
	next=$(spare_pid)
	[ "$next" != "$spare" ]
	kill -9 "$NODE_PID"
	wait "$NODE_PID" 2>/dev/null || true
	NODE_PIDS=()
	for i in $(seq 200); do kill -0 "$next" 2>/dev/null || break; sleep 0.05; done
	! kill -0 "$next" 2>/dev/null
	kill -0 "$spare"	# now sp1's shim: it lives on
	# what the killed node had made ahead is gone once a node starts
	left=$(ls "$NUNET_HOME/alloc.spare")
	node_start
	for i in $(seq 200); do [ -n "$(ls "$NUNET_HOME/alloc.spare")" ] && break; sleep 0.05; done
	[ -n "$left" ] && [ ! -e "$NUNET_HOME/alloc.spare/$left" ]
	assert_equal "$(nunet-run status sp1 | jq -r .state)" running
	nunet-run cancel --grace 0s sp1 >/dev/null
	run nunet-run wait sp1
	assert_failure 137
	# a quick job through a spare: its code, its output
	spare_pid >/dev/null
	run --separate-stderr nunet-run -- sh -c 'echo hi; exit 7'
	assert_failure 7
	assert_equal "$output" hi
	# what it ended with: nothing made ahead is left over
	id=$(nunet-run ls -a | jq -r 'select(.status == 7) | .id')
	for i in $(seq 200); do [ -e "$NUNET_HOME/alloc/$id/shim.sock" ] || break; sleep 0.05; done
	assert_equal "$(cd "$NUNET_HOME/alloc/$id" && ls -A | tr '\n' ' ')" \
		"result.json shim.log spec.json state.json stderr.log stdout.log "
	# a node stopped cleanly leaves no spare directory
	node_stop_all
	assert_equal "$(ls -A "$NUNET_HOME/alloc.spare" 2>/dev/null)" ""
}

@test "NUNET_ALLOC_SPARE=0: no spare shim, each shim started when needed" {
	node_stop_all
	NUNET_ALLOC_SPARE=0 node_start
	run nunet-run -- true
	assert_success
	! pgrep -f -- "exec --shim --spare $NUNET_HOME/alloc" >/dev/null
	assert_equal "$(ls -A "$NUNET_HOME/alloc.spare")" ""
}

@test "a spare shim takes only a shim's arguments under its root, and ends quietly at end of file" {
	root="$NUNET_HOME/alloc"
	run --separate-stderr nunet-run exec --shim --spare "$root" </dev/null
	assert_success
	assert_equal "$stderr" ""
	run --separate-stderr nunet-run exec --shim --spare --run 2 "$root" </dev/null
	assert_failure 64
	run --separate-stderr nunet-run exec --spare "$root" </dev/null
	assert_failure 64
	run --separate-stderr nunet-run exec --shim --spare "$root" <<<'{"argv":["exec","--shim","/etc/passwd"],"log":"'"$root"'/x/shim.log"}'
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: spare: not the arguments of a shim under $root"
	run --separate-stderr nunet-run exec --shim --spare "$root" <<<'{"argv":["exec","--shim","'"$root"'/x/spec.json"],"log":"/tmp/shim.log"}'
	assert_failure 65
	[[ "$stderr" == *"spare: expected"* ]]
	run --separate-stderr nunet-run exec --shim --spare "$root" <<<'{"argv":["exec","--spare","'"$root"'/x/spec.json"],"log":"'"$root"'/x/shim.log"}'
	assert_failure 65
	run --separate-stderr nunet-run exec --shim --spare "$root" <<<'not json'
	assert_failure 65
	[ ! -e "$root/x" ]
}
