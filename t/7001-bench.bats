#!/usr/bin/env bats
# nunet-bench: the capability document it prints for this machine (shape
# and plausible values, checked against what the system itself says),
# --quick, --detect-only, labels, options, a bad --dir, progress only on a
# terminal, Docker and feature detection against fake trees and a fake
# Docker API socket.

load lib/common
bats_require_minimum_version 1.5.0

FIX="$BATS_TEST_DIRNAME/fixtures/bench"

setup_file() {
	# One full run for the tests that look at it (the slow part of this
	# file), as the man page's example "nunet-bench --dir /var/lib/nunet
	# -l rack=b12 > capability.json".
	export FULL="$BATS_FILE_TMPDIR/capability.json"
	mkdir -p "$BATS_FILE_TMPDIR/nunet" "$BATS_FILE_TMPDIR/tmp"
	unset DOCKER_HOST NUNET_SYSROOT
	(cd "$BATS_FILE_TMPDIR" && export TMPDIR="$BATS_FILE_TMPDIR/tmp" PATH="$NUNET_BUILD/bin:$PATH" &&
		nunet-bench --dir "$BATS_FILE_TMPDIR/nunet" -l rack=b12 > capability.json) \
		2>"$BATS_FILE_TMPDIR/full.err" || echo "exit $?" >>"$BATS_FILE_TMPDIR/full.err"
}

setup() {
	common_setup
	unset DOCKER_HOST NUNET_SYSROOT
	FAKE_PIDS=()
	export TMPDIR="$BATS_TEST_TMPDIR/tmp"
	mkdir -p "$TMPDIR"
}

teardown() {
	local p
	for p in "${FAKE_PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	node_stop_all
}

# field JQ: one field of the full run's document
field() {
	jq -r "$1" "$FULL"
}

@test "a full run prints one capability document of the documented shape" {
	run cat "$BATS_FILE_TMPDIR/full.err"
	assert_output ""
	run wc -l <"$FULL"
	assert_output 1
	run jq -e -f "$FIX/shape.jq" "$FULL"
	assert_success
	assert_output true
}

@test "cpu: threads are the online CPUs, cores the distinct physical cores" {
	assert_equal "$(field .cpu.threads)" "$(getconf _NPROCESSORS_ONLN)"
	assert_equal "$(field .cpu.arch)" "$(uname -m)"
	if command -v lscpu >/dev/null; then
		assert_equal "$(field .cpu.cores)" \
			"$(lscpu -p=CORE,SOCKET | grep -v '^#' | sort -u | wc -l)"
	else
		[ "$(field .cpu.cores)" -le "$(field .cpu.threads)" ]
	fi
	grep -qF "$(field .cpu.model)" /proc/cpuinfo
	[ "$(field .cpu.mhz)" -gt 0 ]
}

@test "cpu scores are positive; all threads do at least as well as one, roughly" {
	local single multi
	single=$(field .cpu.score.single)
	multi=$(field .cpu.score.multi)
	[ "$single" -gt 0 ]
	[ "$multi" -gt 0 ]
	# on a busy shared machine all threads may gain little, but never lose half
	[ "$multi" -gt $((single / 2)) ]
}

@test "ram size is MemTotal; bandwidth is plausible" {
	assert_equal "$(field .ram.size)" "$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 1024 ))"
	# over 100 MB/s and under 10 TB/s
	[ "$(field .ram.bandwidth)" -gt 100000000 ]
	[ "$(field .ram.bandwidth)" -lt 10000000000000 ]
}

@test "disk size is that of the filesystem holding --dir; rates are positive" {
	assert_equal "$(field .disk.size)" \
		"$(df -B1 --output=size "$BATS_FILE_TMPDIR/nunet" | tail -1 | tr -d ' ')"
	[ "$(field .disk.read)" -gt 1000000 ]
	[ "$(field .disk.write)" -gt 1000000 ]
	# nothing left behind, in --dir or in TMPDIR
	run ls -A "$BATS_FILE_TMPDIR/nunet" "$BATS_FILE_TMPDIR/tmp"
	refute_output --partial nunet-bench
}

@test "kernel is the numeric part of uname -r" {
	local k
	k=$(field .kernel)
	[[ "$(uname -r)" == "$k"* ]]
	[[ "$k" =~ ^[0-9]+(\.[0-9]+)*$ ]]
}

@test "executors and features agree with what the system allows" {
	local f
	f=$(field '.features | join(" ")')
	if unshare --pid --mount --uts --ipc --fork true 2>/dev/null; then
		[[ " $f " == *" namespaces "* ]]
		field '.executors | index("native")' | grep -qv null
	fi
	if (exec 3<>/dev/kvm) 2>/dev/null; then
		[[ " $f " == *" kvm "* ]]
	else
		[[ " $f " != *" kvm "* ]]
	fi
	if (exec 3<>/dev/net/tun) 2>/dev/null; then
		[[ " $f " == *" tun "* ]]
	else
		[[ " $f " != *" tun "* ]]
	fi
	if [ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ] &&
	   { [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ] || [ -e /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us ]; }; then
		[[ " $f " == *" cgroup1 "* ]]
	fi
	if command -v "qemu-system-$(uname -m)" >/dev/null; then
		field '.executors | index("vm")' | grep -qv null
	else
		field '.executors | index("vm")' | grep -q null
	fi
	if [ ! -e /var/run/docker.sock ]; then
		field '.executors | index("docker")' | grep -q null
	fi
}

@test "--quick prints the same shape, with positive scores; --dir leaves nothing" {
	mkdir "$BATS_TEST_TMPDIR/d"
	run --separate-stderr nunet-bench --quick --dir "$BATS_TEST_TMPDIR/d"
	assert_success
	assert_equal "$stderr" ""
	echo "$output" >"$BATS_TEST_TMPDIR/q.json"
	run jq -e -f "$FIX/shape.jq" "$BATS_TEST_TMPDIR/q.json"
	assert_output true
	run jq -e '.cpu.score.single > 0 and .cpu.score.multi > 0 and .ram.bandwidth > 0
		and .disk.read > 0 and .disk.write > 0' "$BATS_TEST_TMPDIR/q.json"
	assert_output true
	assert_equal "$(jq .disk.size "$BATS_TEST_TMPDIR/q.json")" \
		"$(df -B1 --output=size "$BATS_TEST_TMPDIR/d" | tail -1 | tr -d ' ')"
	run ls -A "$BATS_TEST_TMPDIR/d" "$TMPDIR"
	refute_output --regexp 'nunet-bench'
}

@test "disk: O_DIRECT in calls of at most 64 MiB, each write synced; a warm-up round and 3 timed ones" {
	command -v strace >/dev/null || skip "no strace"
	mkdir "$BATS_TEST_TMPDIR/d"
	# LeakSanitizer cannot run under ptrace (the sanitized build): the
	# other tests check for leaks
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		run --separate-stderr strace -f -qq -o "$BATS_TEST_TMPDIR/trace" \
		-e trace=openat,pwrite64,pread64,fdatasync nunet-bench -q -d "$BATS_TEST_TMPDIR/d"
	assert_success
	if [[ "$stderr" == *"does not take O_DIRECT"* ]]; then
		skip "the file system of $BATS_TEST_TMPDIR refuses O_DIRECT"
	fi
	assert_equal "$stderr" ""
	# the descriptor opened with O_DIRECT on the test file, then what was
	# done with it: calls, the largest, bytes written and read, syncs
	run awk -v dir="$BATS_TEST_TMPDIR/d/.nunet-bench." '
		$2 ~ /^openat\(/ && index($0, dir) && /O_DIRECT/ { fd = $NF; next }
		fd == "" { next }
		$2 ~ "^(pwrite64|pread64|fdatasync)\\(" fd "," || $2 == "fdatasync(" fd ")" {
			op = $2; sub(/\(.*/, "", op); n[op]++
			if (op != "fdatasync") { b[op] += $NF; if ($NF > max) max = $NF }
		}
		END { printf "fd=%s syncs=%d max=%d written=%d read=%d\n", fd, n["fdatasync"], max, b["pwrite64"], b["pread64"] }' \
		"$BATS_TEST_TMPDIR/trace"
	echo "$output"
	[[ "$output" =~ ^fd=([0-9]+)\ syncs=([0-9]+)\ max=([0-9]+)\ written=([0-9]+)\ read=([0-9]+)$ ]]
	local syncs=${BASH_REMATCH[2]} max=${BASH_REMATCH[3]} w=${BASH_REMATCH[4]} r=${BASH_REMATCH[5]}
	# --quick: a 16 MiB file is allocated by one synced pass, then 1 + 3
	# rounds each write it (or, on a slow disk, a part of it), sync and
	# read back what they wrote: 5 syncs, and what was read was written
	# after the first pass of 16 MiB and the 1 MiB that checks O_DIRECT
	assert_equal "$syncs" 5
	[ "$max" -le 67108864 ]
	[ "$r" -gt 0 ]
	[ "$r" -le $((4 * 16777216)) ]
	assert_equal "$w" $((1048576 + 16777216 + r))
}

@test "disk: a full run's timed rounds are spread over the cpu tests, between their trials" {
	command -v strace >/dev/null || skip "no strace"
	mkdir "$BATS_TEST_TMPDIR/d"
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		run --separate-stderr strace -f -qq -o "$BATS_TEST_TMPDIR/trace" \
		-e trace=openat,fdatasync,madvise,clone,clone3 nunet-bench -d "$BATS_TEST_TMPDIR/d"
	assert_success
	if [[ "$stderr" == *"does not take O_DIRECT"* ]]; then
		skip "the file system of $BATS_TEST_TMPDIR refuses O_DIRECT"
	fi
	# syncs of the test file: before the memory test's buffers (after the
	# file is open, the disk test's buffer is the first asked for huge
	# pages, the memory test's two the next, just before the cpu tests);
	# during the single-thread test (before any thread is started); during
	# the all-threads test (between the first and the last thread started)
	run awk -v dir="$BATS_TEST_TMPDIR/d/.nunet-bench." '
		$2 ~ /^openat\(/ && index($0, dir) && /O_DIRECT/ { fd = $NF; next }
		fd == "" { next }
		/MADV_HUGEPAGE/ { huge++; next }
		/CLONE_THREAD/ { threads++; multi += pending; pending = 0; next }
		$2 == "fdatasync(" fd ")" { if (huge < 3) pre++; else if (!threads) single++; else pending++ }
		END { printf "pre=%d single=%d multi=%d after=%d\n", pre, single, multi, pending }' \
		"$BATS_TEST_TMPDIR/trace"
	echo "$output"
	[[ "$output" =~ ^pre=([0-9]+)\ single=([0-9]+)\ multi=([0-9]+)\ after=([0-9]+)$ ]]
	local pre=${BASH_REMATCH[1]} single=${BASH_REMATCH[2]} multi=${BASH_REMATCH[3]}
	local after=${BASH_REMATCH[4]}
	# before: the allocating pass (its timed first 32 MiB, then the rest
	# of the first region, then the other three regions) and a warm-up
	# round in each region, none of the timed ones
	[ "$pre" -le 9 ]
	# 6 to 16 timed rounds, a sync each, about half in each cpu test
	[ $((single + multi + after)) -ge 6 ]
	[ $((single + multi + after)) -le 16 ]
	[ "$single" -ge 3 ]
	if [ "$(nproc)" -gt 1 ]; then
		[ "$multi" -ge 2 ]
	fi
}

@test "disk writes are measured at the device: a 20 MB/s blkio limit shows" {
	# A cgroup v1 blkio throttle on the disk holding TMPDIR: a write rate
	# that went to the page cache would be far above it.
	local cg=/sys/fs/cgroup/blkio/nunet-bench-test-$$ dev src
	[ -w /sys/fs/cgroup/blkio ] || skip "no writable cgroup v1 blkio hierarchy"
	src=$(findmnt -no SOURCE -T "$TMPDIR")
	dev=$(lsblk -dno MAJ:MIN "$src" 2>/dev/null | tr -d ' ') || true
	[ -n "$dev" ] || skip "cannot tell the block device of $TMPDIR ($src)"
	if lsblk -dno PKNAME "$src" 2>/dev/null | grep -q .; then
		dev=$(lsblk -dno MAJ:MIN "/dev/$(lsblk -dno PKNAME "$src")" | tr -d ' ')
	fi
	mkdir "$cg"
	if ! echo "$dev 20971520" >"$cg/blkio.throttle.write_bps_device"; then
		rmdir "$cg"
		skip "cannot throttle $dev"
	fi
	run --separate-stderr sh -c "echo \$\$ >'$cg/cgroup.procs' && exec nunet-bench -q"
	rmdir "$cg"
	assert_success
	local w
	w=$(echo "$output" | jq .disk.write)
	echo "write: $w bytes/s under a 20971520 limit"
	# The throttle lets short bursts through (its budget builds up while
	# idle, and --quick passes are only 4 MiB here), so allow up to twice
	# the limit: the page cache would show gigabytes per second.
	[ "$w" -gt 10000000 ]
	[ "$w" -lt 42000000 ]
}

@test "--detect-only measures nothing and writes nothing" {
	run --separate-stderr nunet-bench -n -d "$BATS_TEST_TMPDIR"
	assert_success
	echo "$output" >"$BATS_TEST_TMPDIR/n.json"
	run jq -e -f "$FIX/shape.jq" "$BATS_TEST_TMPDIR/n.json"
	assert_output true
	run jq -c '[.cpu.score.single, .cpu.score.multi, .ram.bandwidth, .disk.read, .disk.write]' \
		"$BATS_TEST_TMPDIR/n.json"
	assert_output '[0,0,0,0,0]'
	[ "$(jq .disk.size "$BATS_TEST_TMPDIR/n.json")" -gt 0 ]
}

@test "a document that cannot be written is exit 74" {
	[ -w /dev/full ] || skip "no /dev/full"
	run --separate-stderr sh -c 'nunet-bench -n >/dev/full'
	assert_failure 74
	assert_equal "$stderr" "nunet-bench: error: cannot write the document: No space left on device"
}

@test "--label adds labels; a later one with the same key wins" {
	run nunet-bench -n --label region=eu-west -l tier=silver --label tier=gold --label note=a=b
	assert_success
	assert_equal "$(echo "$output" | jq -c .labels)" '{"note":"a=b","region":"eu-west","tier":"gold"}'
}

@test "a --dir that does not exist is exit 74 with the reason" {
	run --separate-stderr nunet-bench -q --dir "$BATS_TEST_TMPDIR/missing"
	assert_failure 74
	assert_output ""
	assert_equal "$stderr" "nunet-bench: error: cannot write in '$BATS_TEST_TMPDIR/missing': No such file or directory"
}

@test "a --dir that is a file is exit 74" {
	: >"$BATS_TEST_TMPDIR/file"
	run --separate-stderr nunet-bench -q -d "$BATS_TEST_TMPDIR/file"
	assert_failure 74
	assert_equal "$stderr" "nunet-bench: error: cannot write in '$BATS_TEST_TMPDIR/file': Not a directory"
}

@test "a --dir on a full filesystem is exit 74" {
	mkdir "$BATS_TEST_TMPDIR/small"
	skip_unless "unshare -m sh -c 'mount -t tmpfs -o size=64k none $BATS_TEST_TMPDIR/small'" \
		"cannot mount a tmpfs in a mount namespace"
	run --separate-stderr unshare -m sh -c \
		"mount -t tmpfs -o size=64k none '$BATS_TEST_TMPDIR/small' && exec nunet-bench -q -d '$BATS_TEST_TMPDIR/small'"
	assert_failure 74
	assert_equal "$stderr" "nunet-bench: error: cannot write in '$BATS_TEST_TMPDIR/small': not enough free space"
}

@test "a read-only --dir is exit 74" {
	mkdir "$BATS_TEST_TMPDIR/ro"
	skip_unless "unshare -m sh -c 'mount -t tmpfs -o ro,size=64m none $BATS_TEST_TMPDIR/ro'" \
		"cannot mount a tmpfs in a mount namespace"
	run --separate-stderr unshare -m sh -c \
		"mount -t tmpfs -o ro,size=64m none '$BATS_TEST_TMPDIR/ro' && exec nunet-bench -q -d '$BATS_TEST_TMPDIR/ro'"
	assert_failure 74
	assert_equal "$stderr" "nunet-bench: error: cannot write in '$BATS_TEST_TMPDIR/ro': Read-only file system"
}

@test "-h and --help print the usage on stdout; --version" {
	run --separate-stderr nunet-bench -h
	assert_success
	assert_output --regexp '^usage: nunet-bench '
	assert_equal "$stderr" ""
	run nunet-bench --help
	assert_success
	assert_output --regexp '^usage: nunet-bench '
	run nunet-bench --version
	assert_success
	assert_output --regexp '^nunet-bench [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "the usage equals the man page's SYNOPSIS" {
	skip_unless "command -v mandoc" "mandoc is not installed"
	local syn
	syn=$(mandoc -Tascii "$NUNET_SRC/man/nunet-bench.1" | col -b |
		sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' | tr -s ' \n' '  ' | sed 's/^ //; s/ $//')
	run nunet-bench -h
	assert_equal "$(echo "$output" | sed 's/^usage: //' | tr -s ' \n' '  ' | sed 's/ $//')" "$syn"
}

@test "a bad option is exit 64 with the usage on stderr" {
	run --separate-stderr nunet-bench --bogus
	assert_failure 64
	assert_output ""
	assert_equal "$(echo "$stderr" | head -1)" "nunet-bench: error: unknown option '--bogus'"
	assert_equal "$(echo "$stderr" | sed -n 2p)" "$(nunet-bench -h)"
	run --separate-stderr nunet-bench -x
	assert_failure 64
	assert_equal "$(echo "$stderr" | head -1)" "nunet-bench: error: unknown option '-x'"
	run --separate-stderr nunet-bench --dir
	assert_failure 64
	assert_equal "$(echo "$stderr" | head -1)" "nunet-bench: error: option '--dir' needs an argument"
	run --separate-stderr nunet-bench extra
	assert_failure 64
	assert_equal "$(echo "$stderr" | head -1)" "nunet-bench: error: unexpected argument 'extra'"
	run --separate-stderr nunet-bench --label =x
	assert_failure 64
	assert_equal "$(echo "$stderr" | head -1)" "nunet-bench: error: --label: expected key=value, got '=x'"
	run --separate-stderr nunet-bench -l novalue
	assert_failure 64
}

@test "progress goes to stderr when it is a terminal" {
	# (and not to a pipe: see the --quick test)
	skip_unless "script -qec true /dev/null" "script(1) cannot make a terminal here"
	run script -qec "nunet-bench -q >'$BATS_TEST_TMPDIR/doc.json'" /dev/null
	assert_success
	assert_output --partial "nunet-bench: info: detecting hardware..."
	assert_output --partial "nunet-bench: info: disk, writing the test file..."
	assert_output --partial "nunet-bench: info: cpu, single thread; memory between its trials..."
	# the document still went to stdout alone
	run jq -e -f "$FIX/shape.jq" "$BATS_TEST_TMPDIR/doc.json"
	assert_output true
}

@test "cpu, ram, kernel and features come from a fake tree (--sysroot, NUNET_SYSROOT)" {
	run nunet-bench -n --sysroot "$FIX/intel"
	assert_success
	assert_equal "$(echo "$output" | jq -c '.cpu | [.model, .cores, .threads, .mhz]')" \
		'["Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",2,4,2100]'
	assert_equal "$(echo "$output" | jq .ram.size)" $((65843212 * 1024))
	assert_equal "$(echo "$output" | jq -r .kernel)" 6.1.0
	# no cgroups mounted, no net namespace, no kvm or tun in that tree
	assert_equal "$(echo "$output" | jq -c .features)" '["namespaces"]'
	NUNET_SYSROOT="$FIX/nvidia" run nunet-bench -n
	assert_success
	# cgroup2 with cpu and memory
	assert_equal "$(echo "$output" | jq -c .features)" '["cgroup2","namespaces","netns","kvm","tun"]'
	# --sysroot wins over NUNET_SYSROOT
	NUNET_SYSROOT="$FIX/nvidia" run nunet-bench -n --sysroot "$FIX/amd"
	assert_success
	# hybrid: v1 has cpu and memory, the v2 mount only hugetlb
	assert_equal "$(echo "$output" | jq -c .features)" '["cgroup1","namespaces","netns"]'
	assert_equal "$(echo "$output" | jq -c '.executors | index("native") != null')" true
}

@test "cgroup CPU limits: v2 cpu.max, v1 cfs quota, smallest on the way up" {
	# user.slice allows 1.5 CPUs, its job-7 no limit of its own
	run test-tool hwinfo quota "$FIX/nvidia"
	assert_output 1500
	# docker allows 3 CPUs, docker/abc 125000 us per 50000 us
	run test-tool hwinfo quota "$FIX/amd"
	assert_output 2500
	# no cgroups at all
	run test-tool hwinfo quota "$FIX/intel"
	assert_output 0
	# inside a container: the hierarchy is mounted at the container's own
	# cgroup, which /proc/self/cgroup names from the host's root
	local r="$BATS_TEST_TMPDIR/root"
	mkdir -p "$r/proc/self" "$r/sys/fs/cgroup/cpu"
	echo '40 30 0:33 /docker/abc /sys/fs/cgroup/cpu ro,relatime - cgroup cgroup rw,cpu' \
		>"$r/proc/self/mountinfo"
	echo '3:cpu:/docker/abc' >"$r/proc/self/cgroup"
	echo 75000 >"$r/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
	echo 100000 >"$r/sys/fs/cgroup/cpu/cpu.cfs_period_us"
	run test-tool hwinfo quota "$r"
	assert_output 750
}

@test "under a CPU quota of half a CPU, multi is about half of single" {
	local cg=/sys/fs/cgroup/cpu/nunet-bench-test-$$
	[ -w /sys/fs/cgroup/cpu ] || skip "no writable cgroup v1 cpu hierarchy"
	mkdir "$cg"
	echo 100000 >"$cg/cpu.cfs_period_us"
	echo 50000 >"$cg/cpu.cfs_quota_us"
	run --separate-stderr sh -c "echo \$\$ >'$cg/cgroup.procs' && exec nunet-bench -q"
	rmdir "$cg"
	assert_success
	local single multi
	single=$(echo "$output" | jq .cpu.score.single)
	multi=$(echo "$output" | jq .cpu.score.multi)
	echo "single $single multi $multi"
	[ "$multi" -gt $((single * 3 / 10)) ]
	[ "$multi" -lt $((single * 7 / 10)) ]
}

@test "cpu mhz is the nominal clock: base, model name, max, current" {
	local r="$BATS_TEST_TMPDIR/root" f=sys/devices/system/cpu/cpu1/cpufreq
	mkdir -p "$r"
	cp -R "$FIX/intel/proc" "$FIX/intel/sys" "$r/"
	mhz() { nunet-bench -n --sysroot "$r" | jq .cpu.mhz; }
	# cpufreq's base_frequency (2.1 GHz) before the model's "@ 2.00GHz"
	assert_equal "$(mhz)" 2100
	rm "$r/sys/devices/system/cpu/cpu0/cpufreq/base_frequency"
	echo 2450000 >"$r/$f/amd_pstate_nominal_freq"
	assert_equal "$(mhz)" 2450
	rm "$r/$f/amd_pstate_nominal_freq"
	assert_equal "$(mhz)" 2000
	# no "@" in the model: the highest cpuinfo_max_freq (3.7 GHz on cpu1)
	sed -i 's/ @ 2.00GHz//' "$r/proc/cpuinfo"
	assert_equal "$(mhz)" 3700
	# no cpufreq: the highest "cpu MHz", rounded
	rm -r "$r/sys/devices"
	assert_equal "$(mhz)" 3200
}

@test "a tree without /proc/cpuinfo is exit 74" {
	mkdir -p "$BATS_TEST_TMPDIR/root"
	run --separate-stderr nunet-bench -n --sysroot "$BATS_TEST_TMPDIR/root"
	assert_failure 74
	assert_equal "$stderr" "nunet-bench: error: cannot open '$BATS_TEST_TMPDIR/root/proc/cpuinfo': No such file or directory"
}

# fake_docker SOCK MODE: start the stand-in Docker API, wait until it listens.
fake_docker() {
	skip_unless "python3 -c 'import socket'" "python3 is not available for a fake Docker API"
	local fifo="$BATS_TEST_TMPDIR/fifo.$RANDOM" line=""
	mkfifo "$fifo"
	python3 "$FIX/fake-docker.py" "$1" "$2" >"$fifo" &
	FAKE_PIDS+=($!)
	read -r -t 10 line <"$fifo"
	rm -f "$fifo"
	assert_equal "$line" ready
}

@test "docker is listed when \$DOCKER_HOST's socket answers /_ping" {
	fake_docker "$BATS_TEST_TMPDIR/docker.sock" ok
	DOCKER_HOST="unix://$BATS_TEST_TMPDIR/docker.sock" run nunet-bench -n
	assert_success
	assert_equal "$(echo "$output" | jq -c '.executors | index("docker") != null')" true
}

@test "docker at the default socket under the root prefix" {
	mkdir -p "$BATS_TEST_TMPDIR/root/var/run"
	cp -R "$FIX/amd/." "$BATS_TEST_TMPDIR/root/"
	fake_docker "$BATS_TEST_TMPDIR/root/var/run/docker.sock" ok
	run nunet-bench -n --sysroot "$BATS_TEST_TMPDIR/root"
	assert_success
	assert_equal "$(echo "$output" | jq -c .executors | sed 's/,"vm"//')" '["native","docker"]'
}

@test "docker is not listed when the socket answers something else, or nothing" {
	fake_docker "$BATS_TEST_TMPDIR/docker.sock" 404
	DOCKER_HOST="unix://$BATS_TEST_TMPDIR/docker.sock" run nunet-bench -n
	assert_success
	assert_equal "$(echo "$output" | jq -c '.executors | index("docker")')" null
	DOCKER_HOST="unix://$BATS_TEST_TMPDIR/nothing.sock" run nunet-bench -n
	assert_success
	assert_equal "$(echo "$output" | jq -c '.executors | index("docker")')" null
	# a TCP DOCKER_HOST is never probed: nunet-bench stays off the network
	DOCKER_HOST="tcp://127.0.0.1:1" run nunet-bench -n
	assert_success
	assert_equal "$(echo "$output" | jq -c '.executors | index("docker")')" null
}

@test "the man page's examples: scores with jq; a labelled document in a file" {
	run sh -c 'nunet-bench -q | jq -c .cpu.score'
	assert_success
	assert_output --regexp '^\{"multi":[1-9][0-9]*,"single":[1-9][0-9]*\}$'
	# setup_file ran the other one (with a test directory for --dir)
	assert_equal "$(cat "$BATS_FILE_TMPDIR/full.err")" ""
	assert_equal "$(jq -c .labels "$FULL")" '{"rack":"b12"}'
	[ "$(jq .cpu.score.single "$FULL")" -gt 0 ]
}

@test "the document passes the capability document checker (nn_cap_check)" {
	skip_unless "test-tool cap check </dev/null; [ \$? -ne 64 ]" "test-tool has no cap check"
	run sh -c "test-tool cap check <'$FULL'"
	assert_success
	assert_output ok
	run sh -c "nunet-bench -n --sysroot '$FIX/intel' | test-tool cap check"
	assert_success
	assert_output ok
}
