#!/usr/bin/env bats
# The native executor through `nunet-run exec`: real namespaces (pid, mount,
# uts, ipc, net), the environment exactly as given, the working directory,
# exit codes and signals, killing the whole tree, cleanup and adoption.

load lib/common
bats_require_minimum_version 1.5.0

setup() {
	common_setup
	ID="t4002-$$-$BATS_TEST_NUMBER"
	A="$BATS_TEST_TMPDIR/alloc"
	[ "$(id -u)" = 0 ] || skip "the native executor needs root"
}

teardown() {
	[ -z "${BG:-}" ] || kill -KILL "$BG" 2>/dev/null || true
	node_stop_all
}

spec() {
	jq -n --arg id "$ID" --arg dir "$A" "$1" >"$BATS_TEST_TMPDIR/spec.json"
}

# run_job JQ-EXPR: run the spec, result line in $BATS_TEST_TMPDIR/r.json
run_job() {
	spec "$1"
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/r.json" "$BATS_TEST_TMPDIR/spec.json"
}

result() {
	jq -r "$1" "$BATS_TEST_TMPDIR/r.json"
}

no_cgroups_left() {
	local left
	left=$(find /sys/fs/cgroup -maxdepth 3 -name "$ID.*" 2>/dev/null)
	[ -z "$left" ] || { echo "cgroups left: $left"; return 1; }
}

@test "uts: the job has its own hostname (the allocation id, or options.hostname)" {
	run_job '{id:$id, dir:$dir, command:["hostname"]}'
	assert_success
	assert_output "$ID"
	[ "$(hostname)" != "$ID" ]
	run_job '{id:$id, dir:$dir, command:["sh","-c","hostname other; hostname"], options:{hostname:"job-a"}}'
	assert_success
	assert_output "other"
	# renaming inside did not rename the machine
	[ "$(hostname)" != "other" ]
}

@test "pid: the job is pid 1 and its /proc shows only its own processes" {
	run_job '{id:$id, dir:$dir, command:["sh","-c","echo $$"]}'
	assert_success
	assert_output "1"
	run_job '{id:$id, dir:$dir, command:["ls","/proc"]}'
	assert_success
	assert_equal "$(grep -E '^[0-9]+$' <<<"$output" | paste -sd' ')" "1"
	# pid 1 (the shell), its background child and ps: nothing of the host
	run_job '{id:$id, dir:$dir, command:["sh","-c","sleep 5 & ps -e -o pid="]}'
	assert_success
	assert_equal "$(echo $output)" "1 2 3"
	# the host's /proc was not touched by the job's mount
	[ -d "/proc/$$" ]
}

@test "ipc and mount: the System V IPC and mounts are its own" {
	skip_unless "command -v ipcmk" "no ipcmk (util-linux)"
	run_job '{id:$id, dir:$dir, command:["sh","-c","ipcmk -Q >/dev/null && ipcs -q | grep -c 0x; mount -t tmpfs none /mnt && echo mounted"]}'
	assert_success
	assert_output "$(printf '1\nmounted')"
	! grep -q ' /mnt tmpfs ' /proc/self/mounts
}

@test "net: with net:true the job has only a loopback that is up" {
	run_job '{id:$id, dir:$dir, command:["sh","-c","cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d \" \"; cat /sys/class/net/lo/operstate 2>/dev/null; grep -c . /proc/net/route"], net:true}'
	assert_success
	assert_line --index 0 "lo"
	assert_equal "${#lines[@]}" 3
	assert_line --index 2 "1"	# the header only: no routes
	# without it the job shares the host's network
	run_job '{id:$id, dir:$dir, command:["sh","-c","cat /proc/net/dev | tail -n +3 | wc -l"]}'
	assert_success
	assert_equal "$output" "$(tail -n +3 /proc/net/dev | wc -l)"
}

@test "env: the environment is exactly as in the spec, nothing inherited" {
	export LEAK=should-not-appear
	run_job '{id:$id, dir:$dir, command:["/usr/bin/env"], env:{A:"1", B:"two words", C:""}}'
	assert_success
	assert_output "$(printf 'A=1\nB=two words\nC=')"
	run_job '{id:$id, dir:$dir, command:["/usr/bin/env"]}'
	assert_success
	assert_output ""
}

@test "workdir: the job runs in its working directory inside the allocation" {
	run_job '{id:$id, dir:$dir, command:["sh","-c","pwd; echo x > here"], workdir:"w/x"}'
	assert_success
	assert_output "$A/w/x"
	[ -f "$A/w/x/here" ]
	run_job '{id:$id, dir:$dir, command:["pwd"]}'
	assert_output "$A"
}

@test "exit: nunet-run exits with the job code, a job killed by a signal gives 128+signal" {
	run_job '{id:$id, dir:$dir, command:["sh","-c","exit 42"]}'
	assert_failure 42
	assert_equal "$(result '[.state, .code, .status] | @tsv')" "$(printf 'exited\t42\t42')"
	run --separate-stderr nunet-run exec --timeout 300ms --result "$BATS_TEST_TMPDIR/r.json" \
		<(jq -n --arg id "$ID" --arg dir "$A" '{id:$id, dir:$dir, command:["sleep","30"]}')
	assert_failure 137
	assert_equal "$(result '[.state, .signal, .status, .timed_out] | @tsv')" "$(printf 'killed\t9\t137\ttrue')"
	assert_equal "$(result .reason)" "timed out after 300 ms, killed"
	no_cgroups_left
}

@test "sched: a starter under a real-time policy (chrt -f) runs its job under SCHED_OTHER" {
	command -v chrt >/dev/null || skip "chrt (util-linux) is not installed"
	chrt -f 10 true 2>/dev/null || skip "this machine refuses SCHED_FIFO"
	spec '{id:$id, dir:$dir, command:["sh","-c","chrt -p $$"], resources:{cpu:0.5, memory:"64M", pids:16}}'
	# a cgroup v1 cpu group refuses real-time tasks: the job leaves the
	# policy before it joins its groups, so it starts, limited
	run --separate-stderr chrt -f 10 nunet-run exec --result "$BATS_TEST_TMPDIR/r.json" \
		"$BATS_TEST_TMPDIR/spec.json"
	assert_success
	assert_line --partial "scheduling policy: SCHED_OTHER"
	assert_line --partial "scheduling priority: 0"
	assert_equal "$(result .state)" exited
	no_cgroups_left
}

@test "signals: SIGTERM to nunet-run is forwarded to the job" {
	spec '{id:$id, dir:$dir, command:["sh","-c","trap \"echo got TERM; exit 7\" TERM; echo ready; while :; do sleep 0.05; done"]}'
	nunet-run exec --result "$BATS_TEST_TMPDIR/r.json" "$BATS_TEST_TMPDIR/spec.json" \
		>"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	BG=$!
	local i
	for i in $(seq 200); do
		grep -q ready "$BATS_TEST_TMPDIR/out" 2>/dev/null && break
		sleep 0.05
	done
	grep -q ready "$BATS_TEST_TMPDIR/out"
	kill -TERM "$BG"
	local rc=0
	wait "$BG" || rc=$?
	BG=
	assert_equal "$rc" 7
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "$(printf 'ready\ngot TERM')"
	no_cgroups_left
}

@test "kill: the whole tree dies with the job, and no cgroup is left" {
	local mark=$((4000 + RANDOM % 1000)).$$
	run --separate-stderr nunet-run exec --timeout 500ms --result "$BATS_TEST_TMPDIR/r.json" \
		<(jq -n --arg id "$ID" --arg dir "$A" --arg m "$mark" \
			'{id:$id, dir:$dir, command:["sh","-c","sleep \($m) & sh -c \"sleep \($m) & wait\" & wait"]}')
	assert_failure 137
	# the pid namespace and the cgroup took every process along
	run pgrep -f "sleep $mark"
	assert_failure
	no_cgroups_left
}

@test "stdout and stderr stream separately and stay in the allocation logs" {
	run_job '{id:$id, dir:$dir, command:["sh","-c","for i in 1 2 3; do echo out$i; echo err$i >&2; done"]}'
	assert_success
	assert_output "$(printf 'out1\nout2\nout3')"
	assert_equal "$stderr" "$(printf 'err1\nerr2\nerr3')"
	assert_equal "$(cat "$A/stdout.log")" "$output"
	assert_equal "$(cat "$A/stderr.log")" "$stderr"
	# the job's stdin is /dev/null, not ours
	run_job '{id:$id, dir:$dir, command:["sh","-c","cat; echo eof"]}' <<<"not for the job"
	assert_output "eof"
}

@test "cleanup: while it runs the job has its cgroups; afterwards none is left" {
	spec '{id:$id, dir:$dir, command:["sh","-c","echo ready; sleep 30"], resources:{memory:"64M", pids:20, cpu:1}}'
	nunet-run exec --timeout 20s "$BATS_TEST_TMPDIR/spec.json" >"$BATS_TEST_TMPDIR/out" 2>&1 &
	BG=$!
	local i
	for i in $(seq 200); do
		grep -q ready "$BATS_TEST_TMPDIR/out" 2>/dev/null && break
		sleep 0.05
	done
	# the job is in a group named after it in every hierarchy used
	local groups
	groups=$(find /sys/fs/cgroup -maxdepth 3 -name "$ID.*" | sort)
	[ -n "$groups" ]
	# named ID.DIGEST: the id, and a digest of the allocation's directory
	local cg
	cg=$(basename "$(head -1 <<<"$groups")")
	[[ "$cg" =~ ^"$ID".[0-9a-f]{8}$ ]]
	local pid
	pid=$(jq -r .pid "$A/native.json")
	grep -q "/nunet/$cg\$" "/proc/$pid/cgroup"
	if [ -f "/sys/fs/cgroup/memory/nunet/$cg/memory.limit_in_bytes" ]; then
		assert_equal "$(cat /sys/fs/cgroup/memory/nunet/$cg/memory.limit_in_bytes)" $((64 << 20))
		assert_equal "$(cat /sys/fs/cgroup/pids/nunet/$cg/pids.max)" 20
		assert_equal "$(cat /sys/fs/cgroup/cpu/nunet/$cg/cpu.cfs_quota_us)" 100000
	fi
	kill -INT "$BG"
	kill -INT "$BG" 2>/dev/null || true	# sleep as pid 1 ignores SIGINT: the second one kills
	local rc=0
	wait "$BG" || rc=$?
	BG=
	assert_equal "$rc" 137
	no_cgroups_left
	[ ! -e "$A/native.json" ]
}

@test "adopt: another process re-attaches to a running job and ends it" {
	spec '{id:$id, dir:$dir, command:["sh","-c","echo ready; exec sleep 30"], resources:{memory:"64M"}}'
	nunet-run exec "$BATS_TEST_TMPDIR/spec.json" >"$BATS_TEST_TMPDIR/out" 2>&1 &
	BG=$!
	local i
	for i in $(seq 200); do
		grep -q ready "$BATS_TEST_TMPDIR/out" 2>/dev/null && break
		sleep 0.05
	done
	# the process that started it dies without cleaning up: the job lives on
	kill -KILL "$BG"
	wait "$BG" || true
	BG=
	local pid
	pid=$(jq -r .pid "$A/native.json")
	kill -0 "$pid"
	run test-tool exec adopt "$BATS_TEST_TMPDIR/spec.json" 9
	assert_success
	assert_line --index 0 '{"adopted":true,"running":true}'
	# the job's monitor outlived the starter and kept the status
	assert_equal "$(jq -r '[.state, .signal, .status] | @tsv' <<<"${lines[1]}")" "$(printf 'killed\t9\t137')"
	! kill -0 "$pid" 2>/dev/null
	no_cgroups_left
	[ ! -e "$A/native.json" ]
	# nothing recorded: nothing to adopt
	run test-tool exec adopt "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 1
	assert_output --partial "native.json"
}

@test "a reader that goes away does not stop the job: its output stays in the log" {
	spec '{id:$id, dir:$dir, command:["sh","-c","for i in 1 2 3; do seq 100000; sleep 0.1; done; echo end"]}'
	run --separate-stderr bash -c 'nunet-run exec --result "$1/r.json" "$1/spec.json" | head -1; echo "rc=${PIPESTATUS[0]}"' sh "$BATS_TEST_TMPDIR"
	assert_output "$(printf '1\nrc=0')"
	assert_equal "$stderr" "nunet-run: warn: stdout: cannot write: Broken pipe; the job's output stays in $A/stdout.log"
	assert_equal "$(tail -1 "$A/stdout.log")" "end"
	assert_equal "$(result .state)" "exited"
}

@test "adopt: a job that ended while nobody watched still reports its exit code" {
	spec '{id:$id, dir:$dir, command:["sh","-c","echo ready; read x </dev/null; sleep 0.3; exit 5"]}'
	nunet-run exec "$BATS_TEST_TMPDIR/spec.json" >"$BATS_TEST_TMPDIR/out" 2>&1 &
	BG=$!
	local i
	for i in $(seq 200); do
		grep -q ready "$BATS_TEST_TMPDIR/out" 2>/dev/null && break
		sleep 0.05
	done
	kill -KILL "$BG"
	wait "$BG" || true
	BG=
	# wait for the job to end on its own, unwatched
	local pid
	pid=$(jq -r .pid "$A/native.json")
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	! kill -0 "$pid" 2>/dev/null
	run test-tool exec adopt "$BATS_TEST_TMPDIR/spec.json"
	assert_success
	assert_line --index 0 '{"adopted":true,"running":false}'
	assert_equal "$(jq -r '[.state, .code, .status] | @tsv' <<<"${lines[1]}")" "$(printf 'exited\t5\t5')"
	no_cgroups_left
	[ ! -e "$A/native.json" ] && [ ! -e "$A/exit.json" ]
}
