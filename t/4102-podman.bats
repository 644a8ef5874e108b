#!/usr/bin/env bats
# The docker executor against Podman's Docker-compatible service (podman
# system service on a private socket, private storage, the containers.conf
# this machine needs): the same REST calls as against dockerd.

load lib/common
load lib/docker

setup_file() {
	podman_engine_start
}

teardown_file() {
	engine_stop
}

setup() {
	common_setup
	[ -n "${DOCKER_HOST:-}" ] || skip "no private podman service"
	ALLOC="$BATS_TEST_TMPDIR/alloc"
}

teardown() {
	local p c
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	for c in $(containers_labelled "${ALLOC_ID:-none}"); do
		engine_api DELETE "/containers/$c?force=1" >/dev/null
	done
}

spec() {
	ALLOC_ID=$1
	jq -n --arg id "$1" --arg dir "$ALLOC/$1" --argjson cmd "$2" --argjson extra "${3:-{\}}" \
		'{executor:"docker", image:"bb:local", id:$id, dir:$dir, command:$cmd, net:true} + $extra' \
		>"$BATS_TEST_TMPDIR/$1.json"
	echo "$BATS_TEST_TMPDIR/$1.json"
}

wait_for_file() {
	local i
	for i in $(seq 1 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "'$2' never appeared in $1" >&2
	return 1
}

@test "podman: the service answers the executor's ping" {
	run nunet-run exec --available docker
	assert_success
	assert_output '{"available":true,"executor":"docker","why":null}'
}

@test "podman: stdout, stderr, exit code, env and workdir" {
	export LEAKY_HOST_VAR=leak
	s=$(spec pm1 '["sh","-c","echo to-out; echo to-err >&2; echo K=$K; pwd; env | grep -c LEAKY; exit 4"]' \
		'{"env":{"K":"V"},"workdir":"w"}')
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_equal "$status" 4
	assert_equal "$output" "to-out
K=V
/alloc/w
0"
	assert_equal "$stderr" "to-err"
	run jq -r '[.state, .code] | @tsv' "$BATS_TEST_TMPDIR/res"
	assert_output "exited	4"
	assert_equal "$(containers_labelled pm1)" ""
}

@test "podman: over its memory limit the job is reported oom" {
	# Podman 4.3 never sets State.OOMKilled here: the executor infers it
	# from a SIGKILL it did not send under a memory limit, and says so.
	s=$(spec pm2 '["tail","/dev/zero"]' '{"resources":{"memory":"32M"}}')
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_equal "$status" 137
	run jq -r '[.state, .status] | @tsv' "$BATS_TEST_TMPDIR/res"
	assert_output "oom	137"
	run jq -r .reason "$BATS_TEST_TMPDIR/res"
	assert_output --partial "33554432"
}

@test "podman: a missing image is refused before anything starts" {
	s=$(spec pm3 '["true"]' '{"image":"nosuch/image:1"}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-run: error: image 'nosuch/image:1' is not present in the engine at $DOCKER_HOST (images are never pulled: load or import it first)"
	[ ! -e "$ALLOC/pm3" ]
	assert_equal "$(containers_labelled pm3)" ""
}

@test "podman: a running container is adopted by its label and killed" {
	s=$(spec pm4 '["sh","-c","echo before; while :; do sleep 0.1; done"]')
	nunet-run exec "$s" >/dev/null 2>&1 3>&- &
	pid=$!
	BG_PIDS=("$pid")
	wait_for_file "$ALLOC/pm4/stdout.log" before
	kill -KILL "$pid"
	wait "$pid" || true
	run containers_labelled pm4
	assert_equal "${#lines[@]}" 1
	run test-tool exec adopt "$s" 9
	assert_success
	assert_line --index 0 '{"adopted":true,"running":true}'
	run jq -r '[.state, .signal] | @tsv' <<<"${lines[1]}"
	assert_output "killed	9"
	assert_equal "$(cat "$ALLOC/pm4/stdout.log")" "before"
	assert_equal "$(containers_labelled pm4)" ""
}
