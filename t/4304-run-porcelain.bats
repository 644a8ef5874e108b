#!/usr/bin/env bats
# nunet-run on one node: submit, stream stdout and stderr separately, exit
# with the job's status; -d, ls, status, logs [-f], wait, cancel; bad input
# named and leaving nothing behind; the man page's examples.
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

@test "nunet-run -- CMD streams stdout and stderr separately and exits with the job's code" {
	run --separate-stderr nunet-run -- sh -c 'echo out1; echo err1 >&2; echo out2; exit 7'
	assert_failure 7
	assert_equal "$output" "out1
out2"
	assert_equal "$stderr" "err1"
}

@test "environment, working directory and limits reach the job" {
	run --separate-stderr nunet-run --env A=1 --env B=two=2 --workdir sub --memory 64M --cpu 1 \
		-- sh -c 'echo "$A $B"; pwd; env | sort | tr "\n" " "'
	assert_success
	assert_equal "${lines[0]}" "1 two=2"
	[[ "${lines[1]}" == "$NUNET_HOME/alloc/"*"/sub" ]]
	# exactly the environment given (sh adds PWD, SHLVL and _ itself)
	[[ "${lines[2]}" != *"HOME="* ]]
	[[ "${lines[2]}" == "A=1 B=two=2 "* ]]
}

@test "a job killed by a signal exits 128+signal" {
	nunet-run --id k1 -- sh -c 'echo up; sleep 30' >"$BATS_TEST_TMPDIR/out" 2>&1 &
	pid=$!
	for i in $(seq 100); do grep -q up "$BATS_TEST_TMPDIR/out" 2>/dev/null && break; sleep 0.05; done
	# the job is pid 1 of its namespace: from outside, SIGKILL reaches it
	kill -KILL "$(jq -r .pid "$NUNET_HOME/alloc/k1/native.json")"
	st=0
	wait "$pid" || st=$?
	assert_equal "$st" 137
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" up
	assert_equal "$(nunet-run status k1 | jq -r '.state, .result.signal')" "killed
9"
}

@test "-d prints the id; ls, status, logs, wait and cancel follow it" {
	run nunet-run -d --id job1 -- sh -c 'echo started; echo warn >&2; sleep 30'
	assert_success
	assert_output job1
	for i in $(seq 100); do
		[ "$(nunet-run status job1 | jq -r .state)" = running ] && grep -q started "$NUNET_HOME/alloc/job1/stdout.log" 2>/dev/null && break
		sleep 0.05
	done
	run nunet-run ls
	assert_success
	assert_equal "$(jq -r '.id + " " + .state' <<<"$output")" "job1 running"
	run --separate-stderr nunet-run logs job1
	assert_success
	assert_equal "$output" started
	assert_equal "$stderr" warn
	run nunet-run cancel --grace 0s job1
	assert_success
	assert_equal "$(jq -r .cancelled <<<"$output")" true
	run nunet-run wait job1
	assert_failure 137
	run nunet-run ls
	assert_output ''
	run nunet-run ls -a
	assert_equal "$(jq -r '.id + " " + .state' <<<"$output")" "job1 killed"
}

@test "logs -f follows until the job ends; wait exits with its code" {
	nunet-run -d --id f1 -- sh -c 'for i in 1 2 3; do echo line$i; sleep 0.2; done; exit 5' >/dev/null
	run --separate-stderr nunet-run logs -f f1
	assert_success
	assert_equal "$output" "line1
line2
line3"
	run nunet-run wait f1
	assert_failure 5
}

@test "cancel stops a job that handles SIGTERM gracefully" {
	nunet-run -d --id g1 -- sh -c 'trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
	for i in $(seq 100); do [ "$(nunet-run status g1 | jq -r .state)" = running ] && break; sleep 0.05; done
	sleep 0.2
	nunet-run cancel g1 >/dev/null
	run nunet-run wait g1
	assert_success
	run nunet-run logs g1
	assert_output bye
}

@test "SIGINT to nunet-run cancels the allocation" {
	nunet-run --id i1 -- sleep 30 >"$BATS_TEST_TMPDIR/out" 2>&1 &
	pid=$!
	for i in $(seq 600); do [ "$(nunet-run status i1 2>/dev/null | jq -r .state)" = running ] && break; sleep 0.05; done
	kill -INT "$pid"
	sleep 0.2
	kill -INT "$pid"	# a second one: at once
	st=0
	wait "$pid" || st=$?
	assert_equal "$st" 137
	assert_equal "$(nunet-run status i1 | jq -r .state)" killed
}

@test "bad input is named, exits 65, and leaves nothing behind" {
	run --separate-stderr nunet-run -- no-such-command-xyz
	assert_failure 65
	[[ "$stderr" == *"no-such-command-xyz"* ]]
	run --separate-stderr nunet-run --workdir ../../etc -- true
	assert_failure 65
	[[ "$stderr" == *"workdir"* ]]
	run --separate-stderr nunet-run --executor zeppelin -- true
	assert_failure 65
	[[ "$stderr" == *"unknown executor 'zeppelin'"* ]]
	run --separate-stderr nunet-run --memory 64P -- true
	assert_failure
	[[ "$stderr" == *"memory"* ]]
	run --separate-stderr nunet-run --restart sometimes -- true
	assert_failure 65
	[[ "$stderr" == *"unknown policy 'sometimes'"* ]]
	run ls -A "$NUNET_HOME/alloc"
	assert_output ''
	run nunet-run ls -a
	assert_output ''
}

@test "docker through the node: a container's output and code; a missing image refused first" {
	command -v dockerd >/dev/null || skip "dockerd is not installed (Debian: docker.io)"
	docker_engine_start
	# the node's shims reach the private engine through DOCKER_HOST
	node_stop_all
	node_start
	run --separate-stderr nunet-run --executor docker --image bb:local -- sh -c 'echo in-container; echo e >&2; exit 4'
	assert_failure 4
	assert_equal "$output" in-container
	assert_equal "$stderr" e
	run --separate-stderr nunet-run --executor docker --image no-such-image:zz -- true
	assert_failure 65
	[[ "$stderr" == *"no-such-image"* ]]
	assert_equal "$(nunet-run ls -a | jq -r .id | wc -l)" 1
	# no container is left behind (the shim removes it right after the
	# end is reported)
	within 15 '[ "$(engine_api GET "/containers/json?all=true" | jq length)" = 0 ]'
}

@test "usage: -h to stdout, bad options and missing command to stderr with 64" {
	run --separate-stderr nunet-run -h
	assert_success
	assert_line --index 0 --partial 'usage: nunet-run [--executor E]'
	run --separate-stderr nunet-run --bogus -- true
	assert_failure 64
	run --separate-stderr nunet-run --memory 1M
	assert_failure 64
	[[ "$stderr" == *"no command"* ]]
	run --separate-stderr nunet-run wait
	assert_failure 64
	run --separate-stderr nunet-run logs -x id
	assert_failure 64
	run --separate-stderr nunet-run status nosuch
	assert_failure 65
	[[ "$stderr" == *"no allocation 'nosuch'"* ]]
}

@test "no node running: 69 with the reason" {
	node_stop_all
	run --separate-stderr nunet-run -- true
	assert_failure 69
	[[ "$stderr" == *"no node is running"* ]]
}

@test "nunet-run(1) examples: a job through the node; a restarted service, cancelled" {
	run --separate-stderr nunet-run --memory 64M -- sh -c 'echo out; echo err >&2; exit 3'
	assert_failure 3
	assert_output out
	assert_equal "$stderr" err
	id=$(nunet-run -d --restart on-failure:3/60s -- sleep 600)
	for i in $(seq 100); do [ "$(nunet-run ls | jq -r .state)" = running ] && break; sleep 0.05; done
	run bash -c 'nunet-run ls | jq -r .state'
	assert_output running
	nunet-run cancel --grace 1s "$id" >/dev/null
	run nunet-run wait "$id"
	assert_failure 137
}

@test "--health-cmd: a job found unhealthy is killed and the reason told" {
	run --separate-stderr nunet-run --id hc --health-cmd 'test -e ok' -- sh -c 'touch ok; sleep 0.5; rm ok; sleep 30'
	assert_failure 137
	[[ "$stderr" == *"unhealthy ('sh' exited with code 1)"* ]] || fail "$stderr"
	assert_equal "$(nunet-run status hc | jq -c .healthcheck)" '{"command":["sh","-c","test -e ok"]}'
}
