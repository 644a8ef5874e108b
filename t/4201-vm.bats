#!/usr/bin/env bats
# The vm executor: QEMU (TCG) boots Debian's kernel with a busybox
# initramfs the tests build, runs the job and reports its exit status and
# output; driven through `nunet-run exec SPEC`.  Each boot costs about ten
# seconds, so the boots are few.

load lib/common
load lib/vm

setup() {
	common_setup
	vm_fixture
	BG_PIDS=()
}

teardown() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	# no QEMU of this test may outlive it
	pkill_alloc_qemu
}

# Kill (by PID) any QEMU whose command line names this test's directory.
pkill_alloc_qemu() {
	local p
	for p in $(pgrep -f qemu-system-x86_64 2>/dev/null); do
		if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$BATS_TEST_TMPDIR"; then
			kill -KILL "$p" 2>/dev/null
		fi
	done
}

# qemu_running: true while a QEMU of this test runs.
qemu_running() {
	local p
	for p in $(pgrep -f qemu-system-x86_64 2>/dev/null); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$BATS_TEST_TMPDIR" && return 0
	done
	return 1
}

@test "vm: available names QEMU" {
	run nunet-run exec --available vm
	assert_success
	assert_output '{"available":true,"executor":"vm","why":null}'
}

@test "vm: boots under TCG, runs the command; adopted after its shim died, it gets a signal and reports its exit; a VM beside it goes oom" {
	# one boot for all of it: env, workdir, both streams streamed by
	# nunet-run, then the shim killed (QEMU runs on in its own session), the
	# VM adopted from its allocation directory, a SIGTERM forwarded to the
	# job, which traps it and exits with the code it chooses
	s=$(vm_spec boot1 '["sh","-c","trap \"echo got-term; echo bye >&2; exit 9\" TERM; echo kernel=$(uname -r); echo \"G=$GREETING\"; pwd; env | grep -c HOST_ONLY; echo to-err >&2; echo ready; while :; do sleep 0.2; done"]' \
		'{"env":{"GREETING":"hello vm"},"workdir":"w"}')
	export HOST_ONLY=1
	d="$BATS_TEST_TMPDIR/alloc/boot1"
	# a second VM boots beside it (TCG uses one core each): its job goes
	# over the VM's memory and the guest kernel kills it
	o=$(vm_spec oom1 '["sh","-c","echo start; tail /dev/zero"]' '{"resources":{"memory":"96M"}}')
	nunet-run exec --result "$BATS_TEST_TMPDIR/oom.res" "$o" >"$BATS_TEST_TMPDIR/oom.out" \
		2>/dev/null 3>&- &
	oompid=$!
	nunet-run exec "$s" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	BG_PIDS=("$pid" "$oompid")
	for i in $(seq 1 900); do
		grep -q ready "$BATS_TEST_TMPDIR/out" 2>/dev/null && break
		sleep 0.1
	done
	expected="kernel=$(basename "$VM_KERNEL" | sed 's/^vmlinuz-//')
G=hello vm
/alloc/w
0
ready"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "$expected"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/err")" "to-err"
	kill -KILL "$pid"
	wait "$pid" || true
	qemu_running
	run --separate-stderr test-tool exec adopt "$s" 15
	assert_success
	assert_line --index 0 '{"adopted":true,"running":true}'
	run jq -r '[.state, .code] | @tsv' <<<"${lines[1]}"
	assert_output "exited	9"
	assert_equal "$(cat "$d/stdout.log")" "$expected
got-term"
	assert_equal "$(cat "$d/stderr.log")" "to-err
bye"
	rc=0
	wait "$oompid" || rc=$?
	assert_equal "$rc" 137
	assert_equal "$(cat "$BATS_TEST_TMPDIR/oom.out")" "start"
	run jq -r '[.state, .signal, .status, .reason] | @tsv' "$BATS_TEST_TMPDIR/oom.res"
	assert_output "oom	9	137	out of memory: the guest kernel killed 1 process in a VM of 96 MiB"
	# the console is kept; the VM's files and process are gone
	grep -aq 'nunet-exit-' "$d/vm-console.log"
	[ ! -e "$d/vm-initrd" ] && [ ! -e "$d/vm.json" ] && [ ! -e "$d/vm-qemu.log" ]
	! qemu_running
}

@test "vm: stop (SIGKILL, here by --timeout) ends the VM at once" {
	s=$(vm_spec stop1 '["sleep","600"]')
	start=$(date +%s)
	run --separate-stderr nunet-run exec --timeout 2s --result "$BATS_TEST_TMPDIR/res" "$s"
	assert_equal "$status" 137
	run jq -r '[.state, .signal, .timed_out] | @tsv' "$BATS_TEST_TMPDIR/res"
	assert_output "killed	9	true"
	[ $(( $(date +%s) - start )) -lt 15 ]
	! qemu_running
	[ ! -e "$BATS_TEST_TMPDIR/alloc/stop1/vm-initrd" ]
}

@test "vm: bad specs are refused before anything starts" {
	s=$(vm_spec bad1 '["true"]' '{"image":{"kernel":"/nonexistent/vmlinuz","initrd":"/etc/hostname"}}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-run: error: image.kernel: cannot read '/nonexistent/vmlinuz': No such file or directory"
	s=$(vm_spec bad2 '["true"]' '{"image":"debian:bookworm"}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_equal "$stderr" 'nunet-run: error: image: the vm executor needs {"kernel":PATH,"initrd":PATH} (and optionally "append")'
	s=$(vm_spec bad3 '["true"]' '{"resources":{"pids":10}}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-run: error: pids limit: a VM cannot be given one (set allow_unlimited to run without it)"
	s=$(vm_spec bad4 '["true"]' '{"options":{"accel":"xen"}}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-run: error: options.accel: 'xen' is not tcg or kvm"
	s=$(vm_spec bad5 '["true"]' '{"resources":{"memory":"16M"}}')
	run --separate-stderr nunet-run exec "$s"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-run: error: resources.memory: 16777216 bytes is below the 64 MiB a VM needs"
	for d in bad1 bad2 bad3 bad4 bad5; do
		[ ! -e "$BATS_TEST_TMPDIR/alloc/$d" ]
	done
	! qemu_running
}
