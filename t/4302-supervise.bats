#!/usr/bin/env bats
# Supervision on one node: restart policies with intensity (at most R
# restarts in T, then the allocation fails and its parent is told), health
# checks (command, HTTP), heartbeats, parent-child links (stopping a parent
# stops its children first).
load lib/common

setup() {
	common_setup
	node_init
	node_start
}

teardown() {
	allocs_teardown
	[ -z "${HTTPD_PID:-}" ] || kill "$HTTPD_PID" 2>/dev/null || true
}

@test "on-failure restarts at most MAX times in PERIOD, then the allocation fails" {
	run --separate-stderr nunet-run --id r1 --restart on-failure:2/60s -- sh -c 'echo run; exit 1'
	assert_failure 1
	assert_equal "$output" "run
run
run"
	[[ "$stderr" == *"allocation r1 failed: restart intensity reached (2 restarts in 60000 ms); last run: exited with code 1"* ]]
	run nunet-run status r1
	assert_equal "$(jq -r '.state, .restarts, .run' <<<"$output")" "failed
2
3"
	assert_equal "$(jq -c '[.states[].state]' <<<"$output")" \
		'["starting","running","restarting","starting","running","restarting","starting","running","failed"]'
	run sqlite3 "$NUNET_HOME/node.db" "SELECT count(*) FROM alloc_restarts WHERE id = 'r1'"
	assert_output 2
}

@test "on-failure does not restart a run that exits 0; never does not restart at all" {
	run nunet-run --id ok --restart on-failure -- sh -c 'echo once'
	assert_success
	assert_output once
	assert_equal "$(nunet-run status ok | jq -r .restarts)" 0
	run nunet-run --id nv --restart never -- sh -c 'echo once; exit 2'
	assert_failure 2
	assert_output once
	assert_equal "$(nunet-run status nv | jq -r .restarts)" 0
}

@test "always restarts runs that exit 0 too, until the intensity is reached" {
	run nunet-run --id al --restart always:1/60s -- sh -c 'echo x'
	assert_success	# the last run exited 0, but the allocation failed
	assert_equal "$(nunet-run status al | jq -r '.state, .restarts')" "failed
1"
	assert_equal "$(cat "$NUNET_HOME/alloc/al/stdout.log")" "x
x"
}

@test "restarts older than the period do not count" {
	run nunet-send /alloc/start '{"spec":{"id":"p1","command":["sh","-c","sleep 0.3; exit 1"]},
		"restart":{"policy":"on-failure","max":1,"period":"200ms"}}'
	assert_success
	# each run lasts 0.3 s > 200 ms: the window never holds 1 restart
	for i in $(seq 100); do
		[ "$(nunet-send /alloc/status '{"id":"p1"}' | jq -r .restarts)" -ge 3 ] && break
		sleep 0.1
	done
	run nunet-send /alloc/status '{"id":"p1"}'
	[ "$(jq -r .restarts <<<"$output")" -ge 3 ]
	[ "$(jq -r .final <<<"$output")" = false ]
}

@test "a failing command health check makes the job unhealthy: killed, and restarted by on-failure" {
	run nunet-send /alloc/start '{"spec":{"id":"h1","command":["sh","-c","touch ok; sleep 0.6; rm ok; sleep 30"]},
		"healthcheck":{"command":["test","-e","ok"],"interval":"100ms","retries":2},
		"restart":{"policy":"on-failure","max":1,"period":"60s"}}'
	assert_success
	run nunet-run wait h1
	assert_failure 137
	run nunet-run status h1
	assert_equal "$(jq -r '.state, .restarts' <<<"$output")" "failed
1"
	[[ "$(jq -r .reason <<<"$output")" == *"unhealthy ('test' exited with code 1)"* ]]
	# one event per unhealthy run (the first and its restart); events reach
	# the store in batches: give them a moment
	for i in $(seq 50); do
		[ "$(sqlite3 "$NUNET_HOME/node.db" "SELECT count(*) FROM events WHERE kind = 'alloc.unhealthy'")" -ge 2 ] && break
		sleep 0.1
	done
	assert_equal "$(sqlite3 "$NUNET_HOME/node.db" "SELECT count(*) FROM events WHERE kind = 'alloc.unhealthy'")" 2
}

@test "an HTTP health check: healthy while the server answers" {
	command -v python3 >/dev/null || skip "python3 is not installed (test HTTP server)"
	port=$((20000 + RANDOM % 20000))
	python3 -m http.server --bind 127.0.0.1 "$port" --directory "$BATS_TEST_TMPDIR" >/dev/null 2>&1 &
	HTTPD_PID=$!
	for i in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done
	run nunet-send /alloc/start "{\"spec\":{\"id\":\"w1\",\"command\":[\"sleep\",\"30\"]},
		\"healthcheck\":{\"http\":\"http://127.0.0.1:$port/\",\"interval\":\"100ms\",\"retries\":2}}"
	assert_success
	sleep 0.6
	assert_equal "$(nunet-run status w1 | jq -r .state)" running
	kill "$HTTPD_PID"
	wait "$HTTPD_PID" 2>/dev/null || true
	HTTPD_PID=
	run nunet-run wait w1
	assert_failure 137
	[[ "$(nunet-run status w1 | jq -r .reason)" == *"unhealthy (GET http://127.0.0.1:$port/: "* ]]
}

@test "cancelling a parent stops its children first" {
	nunet-run -d --id par -- sh -c 'trap "sleep 0.2; exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
	wait_state par running
	nunet-run -d --id kid1 --parent par -- sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
	nunet-run -d --id kid2 --parent par -- sleep 30 >/dev/null
	wait_state kid1 running
	wait_state kid2 running
	run nunet-run status par
	assert_equal "$(jq -c .children <<<"$output")" '["kid1","kid2"]'
	assert_equal "$(nunet-run status kid1 | jq -r .parent)" par
	nunet-run cancel --grace 1s par >/dev/null
	run nunet-run wait par
	assert_success
	assert_equal "$(nunet-run status kid1 | jq -r .state)" exited
	assert_equal "$(nunet-run status kid2 | jq -r .state)" killed
	# the parent ended after both children
	p=$(nunet-run status par | jq '.states[-1].ts')
	k1=$(nunet-run status kid1 | jq '.states[-1].ts')
	k2=$(nunet-run status kid2 | jq '.states[-1].ts')
	[ "$p" -ge "$k1" ] && [ "$p" -ge "$k2" ]
	# and was signalled only after kid2's grace ran out
	[ $((p - k1)) -ge 500 ]
}

@test "a child that fails is told to its parent; a parent must be live" {
	nunet-run -d --id boss -- sleep 30 >/dev/null
	wait_state boss running
	run nunet-run --id worker --parent boss --restart on-failure:1/60s -- sh -c 'exit 3'
	assert_failure 3
	run jq -r '.child + " " + .state + " " + (.status|tostring)' "$NUNET_HOME/alloc/boss/children.jsonl"
	assert_output "worker failed 3"
	run --separate-stderr nunet-run --parent worker -- true
	assert_failure 65
	[[ "$stderr" == *"parent: allocation 'worker' is not running"* ]]
}

@test "a shim that stops answering is killed and its job adopted" {
	nunet-run -d --id hb -- sh -c 'sleep 7; exit 5' >/dev/null
	wait_state hb running
	shim=$(nunet-run status hb | jq -r .shim_pid)
	kill -STOP "$shim"
	run nunet-run wait hb
	assert_failure 5
	grep -q "no heartbeat from shim $shim" "$BATS_TEST_TMPDIR/node.log"
	[ "$(nunet-run status hb | jq -r .shim_pid)" != "$shim" ]
}

@test "logs over their cap are rotated, keeping as many as asked" {
	run nunet-send /alloc/start '{"spec":{"id":"lg","command":["sh","-c",
		"i=0; while [ $i -lt 60 ]; do printf \"%0999d\\n\" $i; i=$((i+1)); sleep 0.05; done"]},
		"logs":{"max":"8K","keep":2}}'
	assert_success
	run nunet-run wait lg
	assert_success
	d="$NUNET_HOME/alloc/lg"
	[ -s "$d/stdout.log.1" ]
	[ -s "$d/stdout.log.2" ]
	[ ! -e "$d/stdout.log.3" ]
	# the live log was emptied at least twice: far less than the 60000 bytes written
	[ "$(stat -c %s "$d/stdout.log")" -lt 40000 ]
	# the lines kept are whole and in order, newest last
	run bash -c "cat '$d/stdout.log.2' '$d/stdout.log.1' '$d/stdout.log' | awk '{ print \$0 + 0 }' | sort -n -c && echo sorted"
	assert_output sorted
	assert_equal "$(tail -n 1 "$d/stdout.log" | awk '{ print $0 + 0 }')" 59
	run --separate-stderr nunet-send /alloc/start '{"spec":{"command":["true"]},"logs":{"max":"lots"}}'
	assert_failure
	[[ "$stderr" == *"logs: max: expected a size"* ]]
}
