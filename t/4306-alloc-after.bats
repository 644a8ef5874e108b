#!/usr/bin/env bats
# /alloc/start "after" (alloc.h): an allocation waits, without a shim,
# until the allocations of its node it names run or have exited 0; one
# that ends otherwise fails it without a run; a cancel ends the wait; a
# node killed while it waits takes the wait up again.  A run held by its
# supervisor (/alloc/restart "hold") waits the same way until released,
# across a kill of the node too.
load lib/common

setup() {
	common_setup
	node_init
	node_start
}

teardown() {
	allocs_teardown
}

start() {
	nunet-send /alloc/start "$1"
}
states() { nunet-send /alloc/status "{\"id\":\"$1\"}" | jq -c '[.states[].state]'; }
# go ID: the job of ID ends once the file go-ID exists (not after a time
# that a loaded machine may miss)
waits_for_go() {
	printf '["sh","-c","while [ ! -e %s/go-%s ]; do sleep 0.05; done; exit %s"]' "$BATS_TEST_TMPDIR" "$1" "${2:-0}"
}

@test "an allocation started with after waits for a task to exit 0, then runs" {
	run start "{\"spec\":{\"id\":\"prep\",\"command\":$(waits_for_go prep)}}"
	assert_success
	run start '{"spec":{"id":"app","command":["sh","-c","echo up"]},"after":{"prep":"exited"}}'
	assert_success
	wait_state app waiting
	assert_equal "$(nunet-send /alloc/status '{"id":"app"}' | jq -r .reason)" "waiting for prep to exit 0"
	[ ! -e "$NUNET_HOME/alloc/app/shim.sock" ]
	touch "$BATS_TEST_TMPDIR/go-prep"
	run nunet-run wait app
	assert_success
	assert_equal "$(cat "$NUNET_HOME/alloc/app/stdout.log")" up
	assert_equal "$(states app)" '["waiting","starting","running","exited"]'
}

@test "after a running service; a dependency that fails fails what waits without a run" {
	start "{\"spec\":{\"id\":\"db\",\"command\":$(waits_for_go db 3)}}" >/dev/null
	wait_state db running
	# running already: no wait
	start '{"spec":{"id":"web","command":["sleep","30"]},"after":{"db":"running"}}' >/dev/null
	wait_state web running
	assert_equal "$(states web)" '["starting","running"]'
	start "{\"spec\":{\"id\":\"job\",\"command\":[\"true\"]},\"after\":{\"db\":\"exited\"}}" >/dev/null
	wait_state job waiting
	touch "$BATS_TEST_TMPDIR/go-db"
	run nunet-run wait job
	assert_failure
	assert_equal "$(nunet-send /alloc/status '{"id":"job"}' | jq -r '.state + ": " + .reason')" \
		"failed: dependency db exited with status 3"
	assert_equal "$(states job)" '["waiting","failed"]'
	# one whose dependency has ended already fails at once
	start '{"spec":{"id":"late","command":["true"]},"after":{"db":"running"}}' >/dev/null
	wait_state late failed
	assert_equal "$(nunet-send /alloc/status '{"id":"late"}' | jq -r .reason)" "dependency db exited with status 3"
}

@test "a waiting allocation is cancelled; a node killed while one waits takes the wait up again" {
	start "{\"spec\":{\"id\":\"dep\",\"command\":$(waits_for_go dep)}}" >/dev/null
	start '{"spec":{"id":"w1","command":["true"]},"after":{"dep":"exited"}}' >/dev/null
	start '{"spec":{"id":"w2","command":["sh","-c","echo after"]},"after":{"dep":"exited"}}' >/dev/null
	wait_state w1 waiting
	wait_state w2 waiting
	run nunet-send /alloc/cancel '{"id":"w1"}'
	assert_success
	wait_state w1 killed
	assert_equal "$(nunet-send /alloc/status '{"id":"w1"}' | jq -r .reason)" "cancelled while waiting"
	kill -9 "$NODE_PID"
	wait "$NODE_PID" 2>/dev/null || true
	NODE_PIDS=()
	touch "$BATS_TEST_TMPDIR/go-dep"
	node_start
	run nunet-run wait w2
	assert_success
	assert_equal "$(cat "$NUNET_HOME/alloc/w2/stdout.log")" after
}

@test "a run held by its supervisor waits until released, also after the node was killed" {
	start "{\"spec\":{\"id\":\"svc\",\"command\":[\"sh\",\"-c\",\"date +%s%N >>$BATS_TEST_TMPDIR/starts; exec sleep 60\"]}}" >/dev/null
	wait_state svc running
	within 10 "[ -s $BATS_TEST_TMPDIR/starts ]"
	run nunet-send /alloc/restart '{"id":"svc","hold":true,"reason":"db is down"}'
	assert_success
	assert_equal "$(jq -c . <<<"$output")" '{"id":"svc","restarted":true}'
	wait_state svc waiting
	assert_equal "$(nunet-send /alloc/status '{"id":"svc"}' | jq -r .reason)" "held by its supervisor"
	[ ! -e "$NUNET_HOME/alloc/svc/shim.sock" ]
	kill -9 "$NODE_PID"
	wait "$NODE_PID" 2>/dev/null || true
	NODE_PIDS=()
	node_start
	# started again, the node keeps holding it: no run
	sleep 1
	assert_equal "$(nunet-send /alloc/status '{"id":"svc"}' | jq -r '.state + ": " + .reason')" \
		"waiting: held by its supervisor"
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/starts")" 1
	run nunet-send /alloc/restart '{"id":"svc","release":true}'
	assert_success
	assert_equal "$(jq -c . <<<"$output")" '{"id":"svc","released":true}'
	wait_state svc running
	within 10 "[ \$(wc -l <$BATS_TEST_TMPDIR/starts) = 2 ]"
	# a second release finds nothing held
	assert_equal "$(nunet-send /alloc/restart '{"id":"svc","release":true}' | jq -c .)" '{"id":"svc","released":false}'
}

@test "bad after is refused before anything starts" {
	start '{"spec":{"id":"x","command":["true"]}}' >/dev/null
	for bad in '"after":[]' '"after":{"x":"done"}' '"after":{"nope":"exited"}'; do
		run --separate-stderr nunet-send /alloc/start "{\"spec\":{\"id\":\"y\",\"command\":[\"true\"]},$bad}"
		assert_failure 65
		[ ! -e "$NUNET_HOME/alloc/y" ]
	done
	assert_equal "$stderr" "nunet-send: error: bad_body: after.nope: no allocation 'nope' on this node"
}
