#!/usr/bin/env bats
# t/perf/lib/slurm, the private Slurm cluster the deployment benchmark
# measures nunet against: it comes up from nothing, runs srun and sbatch
# jobs, touches nothing outside its directory, and leaves no daemon, job or
# file behind — when stopped, when its shell is killed, and when it cannot
# start.  Slurm is not installed by these tests: they skip without it
# (t/perf/deploy installs it from Debian when it runs).

load lib/common
bats_require_minimum_version 1.5.0

LIB="$NUNET_SRC/t/perf/lib/slurm"

setup() {
	common_setup
	export TMPDIR="$BATS_TEST_TMPDIR/tmp"
	mkdir -p "$TMPDIR"
	# shellcheck source=perf/lib/slurm
	. "$LIB"
	SLURM_INSTALL=0 slurm_available || skip "Slurm: $SLURM_SKIP"
}

teardown() {
	slurm_stop
	node_stop_all
}

# ours DIR: processes marked as the cluster's in DIR (daemons, slurmstepd)
ours() {
	grep -lzxF "NUNET_SLURM_DIR=$1" /proc/[0-9]*/environ 2>/dev/null || true
}

# gone DIR: no process of the cluster is left and DIR is removed
gone() {
	[ ! -e "$1" ] && [ -z "$(ours "$1")" ] && ! pgrep -f -- "$1/" >/dev/null
}

@test "slurm_start brings up a private cluster that runs srun and sbatch jobs; slurm_stop leaves nothing" {
	etc_before=$(ls -la --time-style=full-iso /etc/slurm /etc/munge 2>&1 || true)
	unset SLURM_CONF
	trap_before=$(trap -p EXIT)
	slurm_start
	d=$SLURM_DIR
	assert_equal "$(trap -p EXIT)" "trap -- '_slurm_on_exit' EXIT"
	[ -d "$d" ]
	assert_equal "$SLURM_CONF" "$d/etc/slurm.conf"
	run sinfo -h -o '%P %T %N %c'
	assert_success
	assert_output "bench* idle localhost $(nproc)"
	# the daemons run from the directory, on their own munge socket
	run grep -c "" <(ours "$d")
	[ "$output" -ge 3 ]
	grep -q "^AuthInfo=socket=$d/run/munge.sock\$" "$SLURM_CONF"
	run srun sh -c 'echo "job $SLURM_JOB_ID on $SLURMD_NODENAME"'
	assert_success
	assert_output --regexp '^job [0-9]+ on localhost$'
	run slurm_srun_latency 3
	assert_success
	assert_output --regexp '^[0-9]+\.[0-9]{2}$'
	run slurm_sbatch_rate 5
	assert_success
	assert_output --regexp '^[0-9]+\.[0-9]$'
	[ "$(ls "$d/work/batch" | grep -c '^slurm-[0-9]*\.out$')" -eq 5 ]
	# a job still running when the cluster stops is ended with it
	jid=$(cd "$d/work" && sbatch --parsable --wrap 'sleep 300')
	for _ in $(seq 100); do
		[ "$(squeue -h -j "$jid" -o %T)" = RUNNING ] && break
		sleep 0.1
	done
	assert_equal "$(squeue -h -j "$jid" -o %T)" RUNNING
	slurm_stop
	gone "$d"
	[ -z "${SLURM_CONF+set}" ]
	assert_equal "$SLURM_DIR" ""
	assert_equal "$(trap -p EXIT)" "$trap_before"
	assert_equal "$(ls -la --time-style=full-iso /etc/slurm /etc/munge 2>&1 || true)" "$etc_before"
	# stopping twice is harmless
	slurm_stop
}

@test "the cluster is taken down when the shell that started it is SIGKILLed" {
	cat >"$BATS_TEST_TMPDIR/bench" <<-SH
	set -eu
	. "$LIB"
	slurm_start
	echo "\$SLURM_DIR" >"$BATS_TEST_TMPDIR/dir"
	(cd "\$SLURM_DIR/work" && sbatch -Q --wrap 'echo \$\$ >"$BATS_TEST_TMPDIR/job"; exec sleep 300')
	sleep 300
	SH
	bash "$BATS_TEST_TMPDIR/bench" 3>&- &
	pid=$!
	for _ in $(seq 600); do
		[ -s "$BATS_TEST_TMPDIR/job" ] && break
		sleep 0.1
	done
	d=$(cat "$BATS_TEST_TMPDIR/dir")
	job=$(cat "$BATS_TEST_TMPDIR/job")
	for _ in $(seq 100); do
		[ "$(cat "/proc/$job/comm" 2>/dev/null)" = sleep ] && break
		sleep 0.1
	done
	assert_equal "$(cat "/proc/$job/comm")" sleep
	kill -KILL "$pid"
	wait "$pid" || true
	for _ in $(seq 300); do
		gone "$d" && ! _slurm_alive "$job" && break
		sleep 0.1
	done
	gone "$d"
	# the job's process is gone too (or a zombie its new parent has not reaped)
	! _slurm_alive "$job"
}

@test "the shell's own EXIT trap still runs, after the cluster is stopped, with its exit status" {
	run bash -c '
		trap "echo trap: \$?; [ -z \"\$(cat /proc/[0-9]*/environ 2>/dev/null | tr \"\\0\" \"\\n\" | grep -x \"NUNET_SLURM_DIR=\$(cat '"$BATS_TEST_TMPDIR"'/dir)\")\" ] && echo stopped" EXIT
		. "'"$LIB"'"
		slurm_start
		echo "$SLURM_DIR" >'"$BATS_TEST_TMPDIR"'/dir
		exit 3'
	assert_failure 3
	assert_output "trap: 3
stopped"
	gone "$(cat "$BATS_TEST_TMPDIR/dir")"
}

@test "slurm_start with an unknown profile fails, naming it, and leaves nothing behind" {
	run --separate-stderr slurm_start fast
	assert_failure
	assert_equal "$stderr" "slurm: unknown profile 'fast' (htc or stock)"
	[ -z "$(ls "$TMPDIR")" ]
	[ -z "${SLURM_DIR:-}" ]
}

@test "t/perf/deploy prints the Slurm and nunet figures and their ratios" {
	run env STOCK_JOBS=2 "$NUNET_SRC/t/perf/deploy" 5 10
	assert_success
	assert_line --regexp '^slurm srun median_ms=[0-9]+\.[0-9]{2} runs=5$'
	assert_line --regexp '^slurm sbatch jobs_per_s=[0-9]+\.[0-9] jobs=10 '
	assert_line --regexp '^slurm-stock sbatch jobs_per_s=[0-9]+\.[0-9] jobs=2 '
	assert_line --regexp '^nunet run median_ms=[0-9]+\.[0-9]{2} runs=5 '
	assert_line --regexp '^nunet run jobs_per_s=[0-9]+\.[0-9] jobs=10 '
	assert_line --regexp '^ratio latency slurm/nunet=[0-9]+\.[0-9]{2} '
	assert_line --regexp '^ratio throughput nunet/slurm=[0-9]+\.[0-9]{2} '
	[ -z "$(ls "$TMPDIR")" ]
}
