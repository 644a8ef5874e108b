#!/usr/bin/env bats
# The native executor's limits are enforced by real cgroups (v1 here, v2
# where its controllers exist): memory (OOM kill reported as "oom"), pids
# (a fork bomb stops), cpu (a quota throttles a busy loop), plus rlimits.

load lib/common
bats_require_minimum_version 1.5.0

setup() {
	common_setup
	ID="t4003-$$-$BATS_TEST_NUMBER"
	A="$BATS_TEST_TMPDIR/alloc"
	[ "$(id -u)" = 0 ] || skip "the native executor needs root"
}

spec() {
	jq -n --arg id "$ID" --arg dir "$A" "$1" >"$BATS_TEST_TMPDIR/spec.json"
}

run_job() {
	spec "$1"
	shift
	run --separate-stderr nunet-run exec "$@" --result "$BATS_TEST_TMPDIR/r.json" "$BATS_TEST_TMPDIR/spec.json"
}

result() {
	jq -r "$1" "$BATS_TEST_TMPDIR/r.json"
}

# has_controller NAME: v2 lists it, or a v1 hierarchy has it mounted
has_controller() {
	grep -qw "$1" /sys/fs/cgroup/cgroup.controllers 2>/dev/null ||
		awk -v c="$1" '$3 == "cgroup" && $4 ~ "(^|,)" c "(,|$)" {f=1} END {exit !f}' /proc/mounts
}

no_cgroups_left() {
	local left
	left=$(find /sys/fs/cgroup -maxdepth 3 -name "$ID.*" 2>/dev/null)
	[ -z "$left" ] || { echo "cgroups left: $left"; return 1; }
}

@test "memory: 100 MB in a 32 MB job is killed and the result says oom" {
	has_controller memory || skip "no memory cgroup controller"
	run_job '{id:$id, dir:$dir, command:["sh","-c","head -c 100M /dev/zero | tail >/dev/null"], resources:{memory:"32M"}}'
	assert_failure 137
	assert_equal "$(result .state)" "oom"
	assert_equal "$(result .status)" 137
	# the kernel may kill again before its victim's memory is freed (on
	# CI it killed tail, then sh 7 ms later): one process or more
	local re='^out of memory: the kernel killed (1 process|[2-9][0-9]* processes) at the limit of 33554432 bytes$'
	[[ "$(result .reason)" =~ $re ]]
	# the peak the kernel saw is at the limit, not above it
	result '.memory_peak' | { read -r p; [ "$p" -gt $((16 << 20)) ] && [ "$p" -le $((32 << 20)) ]; }
	no_cgroups_left
}

@test "memory: a job inside its limit is not called oom" {
	has_controller memory || skip "no memory cgroup controller"
	run_job '{id:$id, dir:$dir, command:["sh","-c","head -c 8M /dev/zero | tail | wc -c"], resources:{memory:"64M"}}'
	assert_success
	assert_output "8388608"
	assert_equal "$(result .state)" "exited"
	result '.memory_peak' | { read -r p; [ "$p" -gt $((8 << 20)) ]; }
}

@test "pids: a job cannot make more tasks than pids allows" {
	has_controller pids || skip "no pids cgroup controller"
	run_job '{id:$id, dir:$dir, command:["sh","-c","for i in $(seq 100); do sleep 10 & done; echo all started"], resources:{pids:16}}'
	assert_failure
	refute_output "all started"
	[[ "$stderr" == *"Cannot fork"* ]]
	no_cgroups_left
	# the same job without the limit starts all of them
	run_job '{id:$id, dir:$dir, command:["sh","-c","for i in $(seq 100); do sleep 10 & done; echo all started"]}'
	assert_success
	assert_output "all started"
}

@test "pids: a fork bomb stops at pids.max and dies with its job" {
	has_controller pids || skip "no pids cgroup controller"
	run_job '{id:$id, dir:$dir, command:["sh","-c","(b() { b | b & }; b) 2>/dev/null; exec sleep 30"], resources:{pids:24, cpu:0.5}}' --timeout 1500ms
	assert_failure 137
	assert_equal "$(result '.state + " " + (.timed_out|tostring)')" "killed true"
	no_cgroups_left
}

@test "cpu: a quota of 0.2 cpu throttles a busy loop" {
	has_controller cpu || skip "no cpu cgroup controller"
	run_job '{id:$id, dir:$dir, command:["timeout","1.5","sh","-c","while :; do :; done"], resources:{cpu:0.2}}'
	assert_failure 124
	local cpu wall
	cpu=$(result .cpu_seconds)
	wall=$(result .wall_seconds)
	echo "cpu_seconds=$cpu wall_seconds=$wall"
	# 0.2 of one cpu for ~1.5 s is ~0.3 s; unthrottled it would be ~1.5 s.
	# Loose on purpose: only "clearly less than a whole cpu".
	awk -v c="$cpu" -v w="$wall" 'BEGIN { exit !(c > 0.05 && c < 0.6 * w) }'
}

@test "stats: cpu seconds of the whole tree are counted" {
	has_controller cpuacct || has_controller cpu || skip "no cpu accounting"
	run_job '{id:$id, dir:$dir, command:["sh","-c","timeout 1 sh -c \"while :; do :; done\" & timeout 1 sh -c \"while :; do :; done\" & wait"]}'
	assert_success
	# the shell itself uses next to nothing: what counts is its children's
	# time (loose: the machine may be busy)
	awk -v c="$(result .cpu_seconds)" 'BEGIN { exit !(c > 0.1) }'
}

@test "rlimits: options.rlimits are set in the job" {
	run_job '{id:$id, dir:$dir, command:["sh","-c","ulimit -n; ulimit -c"], options:{rlimits:{nofile:123, core:0}}}'
	assert_success
	assert_output "$(printf '123\n0')"
}
