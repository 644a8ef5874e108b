#!/usr/bin/env bats
# The docker executor against a real, private Docker engine (dockerd started
# once for this file, busybox image imported as bb:local), driven through
# `nunet-run exec SPEC` as a user would.

load lib/common
load lib/docker

setup_file() {
	docker_engine_start
}

teardown_file() {
	engine_stop
}

setup() {
	common_setup
	case "$BATS_TEST_DESCRIPTION" in
	*"log stream"*) ;;	# the decoder needs no engine
	*) [ -n "${DOCKER_HOST:-}" ] || skip "no private docker engine" ;;
	esac
	ALLOC="$BATS_TEST_TMPDIR/alloc"
}

teardown() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	# whatever a failed test left in the engine
	for c in $(containers_labelled "${ALLOC_ID:-none}"); do
		engine_api DELETE "/containers/$c?force=1" >/dev/null
	done
	node_stop_all
}

# spec ID COMMAND-JSON [EXTRA-JSON]: write $BATS_TEST_TMPDIR/ID.json for a
# docker job with allocation directory $ALLOC/ID.
spec() {
	ALLOC_ID=$1
	jq -n --arg id "$1" --arg dir "$ALLOC/$1" --argjson cmd "$2" --argjson extra "${3:-{\}}" \
		'{executor:"docker", image:"bb:local", id:$id, dir:$dir, command:$cmd, net:true} + $extra' \
		>"$BATS_TEST_TMPDIR/$1.json"
	echo "$BATS_TEST_TMPDIR/$1.json"
}

# wait_for_file FILE PATTERN: at most 20 s for PATTERN to appear in FILE.
wait_for_file() {
	local i
	for i in $(seq 1 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "'$2' never appeared in $1" >&2
	return 1
}

@test "docker: available pings the engine; a missing engine is named" {
	run nunet-run exec --available docker
	assert_success
	assert_output '{"available":true,"executor":"docker","why":null}'
	DOCKER_HOST=unix:///nonexistent/docker.sock run nunet-run exec --available docker
	assert_equal "$status" 69
	assert_output --partial '"available":false'
	assert_output --partial 'unix:///nonexistent/docker.sock'
	DOCKER_HOST=tcp://127.0.0.1:2375 run nunet-run exec --available docker
	assert_equal "$status" 69
	assert_output --partial 'only unix:// sockets are supported'
}

@test "docker: stdout and stderr come back separated, with the exit code" {
	s=$(spec out1 '["sh","-c","echo to-out; echo to-err >&2; echo more-out; exit 3"]')
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_equal "$status" 3
	assert_equal "$output" "to-out
more-out"
	assert_equal "$stderr" "to-err"
	run jq -r '[.state, .code, .status, .executor] | @tsv' "$BATS_TEST_TMPDIR/res"
	assert_output "exited	3	3	docker"
	# the logs stay in the allocation directory
	assert_equal "$(cat "$ALLOC/out1/stdout.log")" "to-out
more-out"
	assert_equal "$(cat "$ALLOC/out1/stderr.log")" "to-err"
}

@test "docker: the job gets exactly its env, and its workdir inside the allocation" {
	export LEAKY_HOST_VAR=leak
	s=$(spec env1 '["sh","-c","env; pwd; echo made >file"]' \
		'{"env":{"GREETING":"hello world","EMPTY":""},"workdir":"sub/dir"}')
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_success
	assert_line "GREETING=hello world"
	assert_line "EMPTY="
	refute_line --partial LEAKY_HOST_VAR
	assert_line "/alloc/sub/dir"
	# the container's /alloc is the allocation directory
	assert_equal "$(cat "$ALLOC/env1/sub/dir/file")" "made"
}

@test "docker: a workdir outside the allocation is refused before anything starts" {
	s=$(spec wd1 '["true"]' '{"workdir":"../../elsewhere"}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-run: error: $s: workdir: '../../elsewhere' is outside the allocation directory '$ALLOC/wd1'"
	[ ! -e "$ALLOC/wd1" ]
	assert_equal "$(containers_labelled wd1)" ""
}

@test "docker: over its memory limit the job is killed and the result says oom" {
	s=$(spec oom1 '["sh","-c","echo start; x=$(head -c 200000000 /dev/zero | tr \"\\0\" a); echo survived"]' \
		'{"resources":{"memory":"32M"}}')
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_equal "$status" 137
	assert_equal "$output" "start"
	run jq -r '[.state, .status] | @tsv' "$BATS_TEST_TMPDIR/res"
	assert_output "oom	137"
	run jq -r .reason "$BATS_TEST_TMPDIR/res"
	assert_output --partial "out of memory"
	assert_output --partial "33554432"
}

@test "docker: cpu, pids and memory limits reach the container's cgroups" {
	s=$(spec lim1 '["sh","-c","cd /sys/fs/cgroup; if [ -f cpu.max ]; then cat cpu.max pids.max memory.max; else cat cpu/cpu.cfs_quota_us pids/pids.max memory/memory.limit_in_bytes; fi"]' \
		'{"resources":{"cpu":0.5,"pids":16,"memory":"64M"}}')
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_success
	# v1: quota 50000 (of a 100000 period); v2: "50000 100000"
	assert_line --index 0 --regexp '^50000( 100000)?$'
	assert_line --index 1 "16"
	assert_line --index 2 "67108864"
}

@test "docker: a missing image is refused before anything starts" {
	s=$(spec img1 '["true"]' '{"image":"nosuch/image:1"}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-run: error: image 'nosuch/image:1' is not present in the engine at $DOCKER_HOST (images are never pulled: load or import it first)"
	[ ! -e "$ALLOC/img1" ]
	assert_equal "$(containers_labelled img1)" ""
}

@test "docker: a missing command fails at start, naming it, and leaves no container" {
	s=$(spec cmd1 '["no-such-command","x"]')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_output ""
	assert_equal "${#stderr_lines[@]}" 1
	assert_regex "$stderr" '^nunet-run: error: docker: .*"no-such-command": executable file not found'
	assert_equal "$(containers_labelled cmd1)" ""
	[ ! -e "$ALLOC/cmd1" ]
}

@test "docker: unknown options and a missing image name are refused" {
	s=$(spec opt1 '["true"]' '{"options":{"hostnam":"x"}}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-run: error: options: unknown field 'hostnam' for the docker executor (known: binds, host, mount, network, user)"
	s=$(spec opt2 '["true"]' '{"image":null}')
	jq 'del(.image)' "$s" >"$s.2"
	run --separate-stderr nunet-run exec "$s.2"
	assert_equal "$status" 65
	assert_equal "$stderr" 'nunet-run: error: image: the docker executor needs an image name (a string such as "debian:bookworm")'
	assert_equal "$(containers_labelled opt1)$(containers_labelled opt2)" ""
}

@test "docker: cleanup leaves no container and no state file behind" {
	s=$(spec cln1 '["sh","-c","echo bye"]' '{"labels":{"team":"blue"}}')
	run nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_success
	assert_equal "$(containers_labelled cln1)" ""
	[ ! -e "$ALLOC/cln1/docker.json" ]
	run engine_api GET '/containers/json?all=1&filters=%7B%22label%22%3A%5B%22team%3Dblue%22%5D%7D'
	assert_output "[]"
}

@test "docker: a signal to nunet-run is forwarded to the container" {
	s=$(spec sig1 '["sh","-c","trap \"echo got-term; exit 5\" TERM; echo ready; while :; do sleep 0.1; done"]')
	nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	BG_PIDS=("$pid")
	wait_for_file "$ALLOC/sig1/stdout.log" ready
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 5
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "ready
got-term"
	assert_equal "$(containers_labelled sig1)" ""
}

@test "docker: a running container is adopted by its label after its shim died" {
	s=$(spec adp1 '["sh","-c","echo before; while :; do sleep 0.1; done"]')
	nunet-run exec "$s" >/dev/null 2>&1 3>&- &
	pid=$!
	BG_PIDS=("$pid")
	wait_for_file "$ALLOC/adp1/stdout.log" before
	kill -KILL "$pid"
	wait "$pid" || true
	# the container outlives the shim, found by its label
	run containers_labelled adp1
	assert_equal "${#lines[@]}" 1
	run test-tool exec adopt "$s" 9
	assert_success
	assert_line --index 0 '{"adopted":true,"running":true}'
	run jq -r '[.state, .signal, .status] | @tsv' <<<"${lines[1]}"
	assert_output "killed	9	137"
	assert_equal "$(cat "$ALLOC/adp1/stdout.log")" "before"
	assert_equal "$(containers_labelled adp1)" ""
	[ ! -e "$ALLOC/adp1/docker.json" ]
}

@test "docker: a job that ended while no shim watched is adopted with its exit status and logs" {
	s=$(spec adp2 '["sh","-c","echo before; while [ ! -e /alloc/go ]; do sleep 0.1; done; echo after; echo late-err >&2; exit 7"]')
	nunet-run exec "$s" >/dev/null 2>&1 3>&- &
	pid=$!
	BG_PIDS=("$pid")
	wait_for_file "$ALLOC/adp2/stdout.log" before
	kill -KILL "$pid"
	wait "$pid" || true
	touch "$ALLOC/adp2/go"
	for i in $(seq 1 100); do
		st=$(engine_api GET "/containers/nunet-adp2/json" | jq -r .State.Status)
		[ "$st" = exited ] && break
		sleep 0.1
	done
	assert_equal "$st" exited
	run test-tool exec adopt "$s"
	assert_success
	assert_line --index 0 '{"adopted":true,"running":false}'
	run jq -r '[.state, .code] | @tsv' <<<"${lines[1]}"
	assert_output "exited	7"
	assert_equal "$(cat "$ALLOC/adp2/stdout.log")" "before
after"
	assert_equal "$(cat "$ALLOC/adp2/stderr.log")" "late-err"
	assert_equal "$(containers_labelled adp2)" ""
}

@test "docker: adopt without a container says so" {
	s=$(spec adp3 '["true"]')
	mkdir -p "$ALLOC/adp3"
	run --separate-stderr test-tool exec adopt "$s"
	assert_failure
	assert_equal "$stderr" "test-tool: adopt: docker: no container labelled nunet.alloc=adp3 in the engine at $DOCKER_HOST"
}

@test "docker: cpu time and memory peak are reported for a busy job" {
	# busy for 3 s of wall time: usage is sampled about once a second, so a
	# job this long is sampled whatever the machine's load
	s=$(spec st1 '["sh","-c","end=$(($(date +%s)+3)); i=0; while [ $(date +%s) -lt $end ]; do i=$((i+1)); done; echo done"]')
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_success
	assert_output done
	run jq -r '(.cpu_seconds > 0.1) and (.memory_peak > 100000)' "$BATS_TEST_TMPDIR/res"
	assert_output true
}

# frame STREAM TEXT: one multiplexed frame (header + payload) on stdout.
frame() {
	local n=${#2}
	printf "\\x0$1\\x00\\x00\\x00\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))"
	printf '%s' "$2"
}

@test "docker: the log stream decoder splits stdout and stderr whatever the read sizes" {
	big=$(head -c 70000 /dev/zero | tr '\0' x)
	{ frame 1 "out one
"; frame 2 "err one
"; frame 1 "$big"; frame 1 "
out two
"; frame 2 ""; frame 2 "err two
"; } >"$BATS_TEST_TMPDIR/stream"
	for n in 1 3 8 9 4096 65536; do
		test-tool docker demux "$n" <"$BATS_TEST_TMPDIR/stream" \
			>"$BATS_TEST_TMPDIR/o.$n" 2>"$BATS_TEST_TMPDIR/e.$n"
		assert_equal "$(cat "$BATS_TEST_TMPDIR/o.$n")" "out one
$big
out two"
		assert_equal "$(cat "$BATS_TEST_TMPDIR/e.$n")" "err one
err two"
	done
}

@test "docker: a corrupt or cut log stream is an error" {
	{ frame 1 "fine"; printf '\x07\x00\x00\x00\x00\x00\x00\x01z'; } >"$BATS_TEST_TMPDIR/bad"
	run test-tool docker demux 5 <"$BATS_TEST_TMPDIR/bad"
	assert_equal "$status" 65
	frame 1 "cut short" | head -c 12 >"$BATS_TEST_TMPDIR/cut"
	run test-tool docker demux 4 <"$BATS_TEST_TMPDIR/cut"
	assert_equal "$status" 74
	assert_output "cut "
}
