#!/usr/bin/env bats
# Node crash safety: kill -9 of nunet-node leaves shims and jobs running;
# the restarted node reconnects to every live shim and loses no
# allocation, log line or exit status.  A shim that dies is replaced by one
# that adopts the job.
load lib/common
load lib/docker

setup() {
	common_setup
	node_init
	node_start
}

teardown() {
	allocs_teardown
	engine_stop
}

crash_node() {
	kill -9 "$NODE_PID"
	wait "$NODE_PID" 2>/dev/null || true
	NODE_PIDS=()
}

@test "kill -9 of the node leaves shims and jobs running; the new node re-adopts them" {
	nunet-run -d --id long -- sh -c 'i=0; while [ $i -lt 30 ]; do echo tick$i; i=$((i+1)); sleep 0.1; done; exit 4' >/dev/null
	# quick ends when told (a file), not after a time a loaded machine
	# may spend before the test looks
	nunet-run -d --id quick -- sh -c 'while [ ! -e go ]; do sleep 0.05; done; echo done; exit 6' >/dev/null
	wait_state long running
	wait_state quick running
	shim=$(nunet-run status long | jq -r .shim_pid)
	crash_node
	# shims and jobs live on without the node
	kill -0 "$shim"
	# quick ends while no node runs: its shim keeps the result
	touch "$NUNET_HOME/alloc/quick/go"
	for i in $(seq 600); do [ -e "$NUNET_HOME/alloc/quick/result.json" ] && break; sleep 0.05; done
	[ -e "$NUNET_HOME/alloc/quick/result.json" ]
	node_start
	run nunet-run wait quick
	assert_failure 6
	run nunet-run logs quick
	assert_output done
	run nunet-run wait long
	assert_failure 4
	run nunet-run logs long
	assert_equal "${#lines[@]}" 30
	assert_equal "${lines[0]}" tick0
	assert_equal "${lines[29]}" tick29
	assert_equal "$(nunet-run status long | jq -c '[.states[].state]')" '["starting","running","exited"]'
	assert_equal "$(nunet-run ls -a | jq -r .id | sort | tr '\n' ' ')" "long quick "
}

@test "a job that ended while the node was down reports its result on reconnect" {
	nunet-run -d --id gone -- sh -c 'exit 9' >/dev/null
	crash_node
	sleep 0.5
	[ -f "$NUNET_HOME/alloc/gone/result.json" ]
	node_start
	run nunet-run wait gone
	assert_failure 9
	# the shim was acked and went away
	for i in $(seq 100); do [ -e "$NUNET_HOME/alloc/gone/shim.sock" ] || break; sleep 0.05; done
	[ ! -e "$NUNET_HOME/alloc/gone/shim.sock" ]
}

@test "a node stopped cleanly leaves its jobs running too, and finds them again" {
	nunet-run -d --id svc -- sh -c 'sleep 1; exit 2' >/dev/null
	wait_state svc running
	node_stop_all
	node_start
	run nunet-run wait svc
	assert_failure 2
}

@test "a shim killed with -9 is replaced by one that adopts the job" {
	nunet-run -d --id adopt -- sh -c 'echo a; sleep 1; echo b; exit 3' >/dev/null
	wait_state adopt running
	shim=$(nunet-run status adopt | jq -r .shim_pid)
	kill -9 "$shim"
	run nunet-run wait adopt
	assert_failure 3
	run nunet-run logs adopt
	assert_output "a
b"
	new=$(nunet-run status adopt | jq -r .shim_pid)
	[ "$new" != "$shim" ]
	grep -q "starting one to adopt the job" "$BATS_TEST_TMPDIR/node.log"
}

@test "cancel after a crash still reaches the job" {
	nunet-run -d --id c1 -- sleep 30 >/dev/null
	wait_state c1 running
	crash_node
	node_start
	nunet-run cancel --grace 0s c1 >/dev/null
	run nunet-run wait c1
	assert_failure 137
	assert_equal "$(nunet-run status c1 | jq -r .state)" killed
}

@test "docker: node and shim both killed; the new node adopts the container and gets its code" {
	command -v dockerd >/dev/null || skip "dockerd is not installed (Debian: docker.io)"
	docker_engine_start
	node_stop_all
	node_start
	nunet-run -d --id dk --executor docker --image bb:local -- sh -c 'echo a; sleep 2; echo b; exit 3' >/dev/null
	wait_state dk running
	shim=$(nunet-run status dk | jq -r .shim_pid)
	crash_node
	kill -9 "$shim"
	node_start
	run nunet-run wait dk
	assert_failure 3
	run nunet-run logs dk
	assert_output "a
b"
	# the shim removes the container right after the end is reported
	within 15 '[ "$(engine_api GET "/containers/json?all=true" | jq length)" = 0 ]'
}

@test "a node killed between two runs of a restarting allocation carries on with the next run" {
	run nunet-send /alloc/start '{"spec":{"id":"rs","command":["sh","-c","echo run; exit 1"]},
		"restart":{"policy":"on-failure","max":2,"period":"60s","delay":"1s"}}'
	assert_success
	wait_state rs restarting
	crash_node
	node_start
	run nunet-run wait rs
	assert_failure 1
	run nunet-run status rs
	assert_equal "$(jq -r '.state, .restarts, .run' <<<"$output")" "failed
2
3"
	assert_equal "$(grep -c run "$NUNET_HOME/alloc/rs/stdout.log")" 3
}
