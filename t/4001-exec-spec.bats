#!/usr/bin/env bats
# nunet-run exec: the command line, the job spec and bad input.  Every bad
# spec must fail before anything starts, name the cause, and leave no
# allocation directory and no cgroup behind.

load lib/common
bats_require_minimum_version 1.5.0

setup() {
	common_setup
	ID="t4001-$$-$BATS_TEST_NUMBER"
	A="$BATS_TEST_TMPDIR/alloc"
}

# nothing_left: no allocation directory and no cgroup called $ID anywhere.
nothing_left() {
	[ ! -e "$A" ] || { echo "allocation directory left: $(ls -la "$A")"; return 1; }
	local left
	left=$(find /sys/fs/cgroup -maxdepth 3 -name "$ID" 2>/dev/null)
	[ -z "$left" ] || { echo "cgroups left: $left"; return 1; }
}

# spec JQ-EXPR: write $BATS_TEST_TMPDIR/spec.json from a jq object expression
spec() {
	jq -n --arg id "$ID" --arg dir "$A" "$1" >"$BATS_TEST_TMPDIR/spec.json"
}

@test "exec: -h prints the usage on stdout, a bad option prints it on stderr with 64" {
	run --separate-stderr nunet-run exec -h
	assert_success
	assert_line --index 0 --partial 'usage: nunet-run exec [--result FILE]'
	run --separate-stderr nunet-run --help
	assert_success
	assert_output --partial 'nunet-run exec --available'
	run --separate-stderr nunet-run exec --bogus x.json
	assert_failure 64
	assert_equal "$output" ""
	[[ "$stderr" == *"usage: nunet-run exec"* ]]
	run --separate-stderr nunet-run exec
	assert_failure 64
	run nunet-run --version
	assert_success
	assert_output --regexp '^nunet-run [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "exec: usage text equals the man page SYNOPSIS" {
	run nunet-run -h
	assert_success
	local man
	man=$(mandoc -Tutf8 "$NUNET_SRC/man/nunet-run.1" 2>/dev/null | col -b |
		sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' | tr -s ' \n' ' ')
	local use
	use=$(printf '%s\n' "$output" | sed 's/^usage: //; s/^       //' | tr -s ' \n' ' ')
	[ -n "$man" ]
	assert_equal "$(echo $man)" "$(echo $use)"
}

@test "exec: --available reports the native executor" {
	run nunet-run exec --available native
	assert_success
	assert_output '{"available":true,"executor":"native","why":null}'
	run --separate-stderr nunet-run exec --available nosuch
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: unknown executor 'nosuch' (known: $(nunet-run exec --available | jq -r .executor | paste -sd, | sed 's/,/, /g'))"
}

@test "exec: a spec from a file and from stdin runs, the result line says exited" {
	spec '{id:$id, dir:$dir, command:["sh","-c","echo out; echo err >&2; exit 3"]}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 3
	assert_output "out"
	assert_equal "$(printf '%s\n' "$stderr" | head -1)" "err"
	local res
	res=$(printf '%s\n' "$stderr" | tail -1)
	assert_equal "$(jq -r '[.state,.code,.status,.id,.executor,.dir]|@tsv' <<<"$res")" \
		"$(printf 'exited\t3\t3\t%s\tnative\t%s' "$ID" "$A")"
	assert_equal "$(cat "$A/stdout.log")" "out"
	assert_equal "$(cat "$A/stderr.log")" "err"
	nunet-run exec - <"$BATS_TEST_TMPDIR/spec.json" >/dev/null 2>&1 || [ $? -eq 3 ]
	# logs are appended to, run after run
	assert_equal "$(cat "$A/stdout.log")" "$(printf 'out\nout')"
}

@test "exec: --result FILE gets the result line, stderr only the job output" {
	spec '{id:$id, dir:$dir, command:["sh","-c","echo e >&2"]}'
	run --separate-stderr nunet-run exec --result "$BATS_TEST_TMPDIR/r.json" "$BATS_TEST_TMPDIR/spec.json"
	assert_success
	assert_equal "$stderr" "e"
	assert_equal "$(jq -r '.state + " " + (.code|tostring) + " " + .reason' "$BATS_TEST_TMPDIR/r.json")" \
		"exited 0 exited with code 0"
	jq -e '.cpu_seconds >= 0 and .wall_seconds >= 0' "$BATS_TEST_TMPDIR/r.json"
}

@test "exec: without dir the allocation goes to \$NUNET_HOME/alloc/ID" {
	jq -n --arg id "$ID" '{id:$id, command:["true"]}' >"$BATS_TEST_TMPDIR/spec.json"
	run nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_success
	[ -f "$NUNET_HOME/alloc/$ID/stdout.log" ]
	# defaults: executor native, a random id when none is given
	run test-tool exec spec <(jq -n '{command:["true"]}')
	assert_success
	jq -e '.executor == "native" and (.id|test("^[0-9a-f]{32}$")) and (.dir == env.NUNET_HOME + "/alloc/" + .id)' <<<"$output"
}

@test "exec: spec that is not JSON or not an object: 65" {
	printf '{"command":' >"$BATS_TEST_TMPDIR/spec.json"
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	[[ "$stderr" == "nunet-run: error: $BATS_TEST_TMPDIR/spec.json: not JSON"* ]]
	run --separate-stderr nunet-run exec - <<<'[1]'
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: -: spec: expected an object, got array"
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/nosuch.json"
	assert_failure 74
	[[ "$stderr" == *"nosuch.json"*"No such file or directory"* ]]
}

@test "bad input: a spec with an unknown field fails, names it, leaves nothing" {
	spec '{id:$id, dir:$dir, command:["true"], comand:["x"]}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	[[ "$stderr" == *"unknown field 'comand' (known: executor, id, dir, command, "* ]]
	nothing_left
	spec '{id:$id, dir:$dir, command:["true"], resources:{memory:"1M", disk:"1G"}}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: $BATS_TEST_TMPDIR/spec.json: resources: unknown field 'disk' (known: cpu, memory, pids)"
	nothing_left
	spec '{id:$id, dir:$dir, command:["true"], options:{hostnam:"x"}}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: options: unknown field 'hostnam' for the native executor (known: hostname, rlimits)"
	nothing_left
}

@test "bad input: wrong types and values are refused with the field named" {
	local e
	while IFS='|' read -r expr msg; do
		spec "$expr"
		run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
		assert_failure 65
		e="nunet-run: error: $BATS_TEST_TMPDIR/spec.json: $msg"
		assert_equal "$stderr" "$e"
		nothing_left
	done <<'EOF'
{id:$id, dir:$dir}|command: missing
{id:$id, dir:$dir, command:[]}|command: expected a non-empty array of strings
{id:$id, dir:$dir, command:"true"}|command: expected a non-empty array of strings
{id:$id, dir:$dir, command:["true",1]}|command: element 1: expected a string without NUL
{id:$id, dir:$dir, command:["true"], env:{"A=B":"x"}}|env: bad variable name 'A=B' (empty, or holds '=' or NUL)
{id:$id, dir:$dir, command:["true"], env:{A:1}}|env: 'A': expected a string, got number
{id:$id, dir:$dir, command:["true"], resources:{memory:"lots"}}|resources.memory: 'lots' is not a positive size
{id:$id, dir:$dir, command:["true"], resources:{cpu:0}}|resources.cpu: must be at least 0.001 (1m)
{id:$id, dir:$dir, command:["true"], resources:{pids:1.5}}|resources.pids: expected a positive integer
{id:"../x", dir:$dir, command:["true"]}|id: '../x' is not a valid id (1-64 of A-Z a-z 0-9 . _ -, not starting with . or -)
{id:$id, dir:$dir, command:["true"], net:"yes"}|net: expected true or false, got string
EOF
}

@test "bad input: a command that does not exist fails before anything starts" {
	spec '{id:$id, dir:$dir, command:["no-such-command-4001"]}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: command 'no-such-command-4001' not found in PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)"
	nothing_left
	# the spec's own PATH is the one searched
	spec '{id:$id, dir:$dir, command:["sh"], env:{PATH:"/nonexistent"}}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: command 'sh' not found in PATH (/nonexistent)"
	nothing_left
	spec '{id:$id, dir:$dir, command:["/etc/passwd"]}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: command '/etc/passwd' is not an executable file"
	nothing_left
}

@test "bad input: a working directory outside the allocation is refused" {
	local w
	for w in "../escape" "/etc" "sub/../../x" "$A-other/x"; do
		spec "{id:\$id, dir:\$dir, command:[\"true\"], workdir:\"$w\"}"
		run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
		assert_failure 65
		assert_equal "$stderr" "nunet-run: error: $BATS_TEST_TMPDIR/spec.json: workdir: '$w' is outside the allocation directory '$A'"
		nothing_left
	done
	# a symlink inside the allocation that leads out is refused too
	mkdir -p "$A"
	ln -s /etc "$A/link"
	spec '{id:$id, dir:$dir, command:["true"], workdir:"link"}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: workdir: '$A/link' resolves to '/etc', outside the allocation directory"
	[ ! -e "$A/stdout.log" ]
	rm "$A/link"; rmdir "$A"
	nothing_left
	# inside is fine, and made when missing
	spec '{id:$id, dir:$dir, command:["pwd"], workdir:"a/b"}'
	run nunet-run exec --result "$BATS_TEST_TMPDIR/r.json" "$BATS_TEST_TMPDIR/spec.json"
	assert_success
	assert_output "$A/a/b"
}

@test "bad input: an executor that is not installed, an unknown executor, an image for native" {
	spec '{id:$id, dir:$dir, command:["true"], executor:"nosuch"}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	[[ "$stderr" == "nunet-run: error: unknown executor 'nosuch' (known: native"* ]]
	nothing_left
	# native needs root for namespaces: as nobody it is not available here
	skip_unless "command -v setpriv" "no setpriv"
	spec '{id:$id, dir:$dir, command:["true"]}'
	run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups \
		nunet-run exec - <"$BATS_TEST_TMPDIR/spec.json"
	assert_failure 69
	assert_equal "$stderr" "nunet-run: error: native executor: namespaces and cgroups need root (running as uid 65534)"
	run setpriv --reuid=65534 --regid=65534 --clear-groups nunet-run exec --available native
	assert_failure 69
	assert_output '{"available":false,"executor":"native","why":"native executor: namespaces and cgroups need root (running as uid 65534)"}'
	nothing_left
	spec '{id:$id, dir:$dir, command:["true"], image:"busybox"}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: image: the native executor runs host programs and takes no image"
	nothing_left
}

@test "bad input: a limit the machine cannot give is refused unless allow_unlimited" {
	# an rlimit above the hard limit (root here lacks CAP_SYS_RESOURCE)
	local hard
	hard=$(ulimit -Hn)
	[ "$hard" != unlimited ] || skip "no hard limit on open files here"
	spec "{id:\$id, dir:\$dir, command:[\"true\"], options:{rlimits:{nofile:$((hard + 1))}}}"
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 69
	assert_equal "$stderr" "nunet-run: error: options.rlimits.nofile: $((hard + 1)) is above this machine's hard limit $hard"
	nothing_left
	# more cpus or memory than the machine has
	local n=$(( $(nproc) + 1 ))
	spec "{id:\$id, dir:\$dir, command:[\"true\"], resources:{cpu:$n}}"
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 69
	assert_equal "$stderr" "nunet-run: error: cpu limit: $n cpus asked, this machine gives at most $(nproc)"
	nothing_left
	spec '{id:$id, dir:$dir, command:["true"], resources:{memory:"100T"}}'
	run --separate-stderr nunet-run exec "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 69
	[[ "$stderr" == "nunet-run: error: memory limit: 109951162777600 bytes asked, this machine has "* ]]
	nothing_left
	# no cgroup controllers at all: hide them in a mount namespace of our own
	spec '{id:$id, dir:$dir, command:["true"], resources:{memory:"32M", pids:10}}'
	run --separate-stderr unshare --mount --propagation private sh -c '
		for m in $(awk "\$9 ~ /^cgroup/ {print \$5}" /proc/self/mountinfo | sort -r); do
			umount -l "$m" || exit 99
		done
		exec nunet-run exec "$1"' sh "$BATS_TEST_TMPDIR/spec.json"
	assert_failure 69
	assert_equal "$stderr" "nunet-run: error: memory limit: this machine has no memory cgroup controller (set allow_unlimited to run without limits)"
	nothing_left
	spec '{id:$id, dir:$dir, command:["sh","-c","echo ran"], resources:{memory:"32M"}, allow_unlimited:true}'
	run --separate-stderr unshare --mount --propagation private sh -c '
		for m in $(awk "\$9 ~ /^cgroup/ {print \$5}" /proc/self/mountinfo | sort -r); do
			umount -l "$m" || exit 99
		done
		exec nunet-run exec "$1"' sh "$BATS_TEST_TMPDIR/spec.json"
	assert_success
	assert_output "ran"
	# without cgroups there is nothing to measure: null, not a made-up 0
	jq -e '.state == "exited" and .memory_peak == null' <<<"$(printf '%s\n' "$stderr" | tail -1)"
}

@test "logs: tail prints the last N lines, follow copies what a log gains" {
	printf 'a\nb\nc\nd\n' >"$BATS_TEST_TMPDIR/log"
	run test-tool exec tail "$BATS_TEST_TMPDIR/log" 2
	assert_success
	assert_output "$(printf 'c\nd')"
	run test-tool exec tail "$BATS_TEST_TMPDIR/log" 10
	assert_output "$(printf 'a\nb\nc\nd')"
	printf 'x\ny' >"$BATS_TEST_TMPDIR/log2"	# no final newline
	run test-tool exec tail "$BATS_TEST_TMPDIR/log2" 1
	assert_output "y"
	# a log that does not exist yet is picked up when it appears
	test-tool exec follow "$BATS_TEST_TMPDIR/log3" 1500 >"$BATS_TEST_TMPDIR/out" &
	local pid=$!
	printf 'first\n' >>"$BATS_TEST_TMPDIR/log3"
	printf 'second\n' >>"$BATS_TEST_TMPDIR/log3"
	wait "$pid"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "$(printf 'first\nsecond')"
}

@test "man page EXAMPLES work as shown" {
	# 1: a command with limits, from stdin
	run --separate-stderr sh -c "echo '{\"command\":[\"sh\",\"-c\",\"echo hi\"],\"dir\":\"$A\",
  \"resources\":{\"cpu\":1,\"memory\":\"64M\",\"pids\":64}}' | nunet-run exec -"
	assert_success
	assert_output "hi"
	jq -e '.code == 0 and .state == "exited" and .status == 0' <<<"$stderr"
	# 2: a job over its memory is killed and reported
	if [ -d /sys/fs/cgroup/memory ] || grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		cd "$BATS_TEST_TMPDIR"
		run --separate-stderr sh -c "echo '{\"command\":[\"sh\",\"-c\",\"head -c 100M /dev/zero | tail\"],
  \"dir\":\"$A-2\",\"resources\":{\"memory\":\"32M\"}}' |
  nunet-run exec --result r.json -; echo \$?"
		assert_output "137"
		run jq -r .state r.json
		assert_output "oom"
	fi
	# 3: is the native executor usable here?
	run nunet-run exec --available native
	assert_success
	assert_output '{"available":true,"executor":"native","why":null}'
}
