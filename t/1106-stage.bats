#!/usr/bin/env bats
# Staging in allocations: /alloc/start (and nunet-run --input/--output)
# fetch inputs into the allocation directory before the job starts, in
# state "staging", with progress events; the job sees them read-only;
# outputs go up after exit and are part of the result.  Every bad input
# fails the staging step (state failed, reason "staging: …"), leaves no
# partial file and starts nothing.  Real servers: the local HTTP server
# (t/lib/httpd.bash), Swift's S3 API (t/lib/swift.bash), local git repos.

load lib/common
bats_require_minimum_version 1.5.0
load lib/httpd
load lib/swift

setup_file() {
	mkdir -p "$BATS_FILE_TMPDIR/www/up"
	head -c 3000000 /dev/urandom >"$BATS_FILE_TMPDIR/www/data.bin"
	echo "hello input" >"$BATS_FILE_TMPDIR/www/small.txt"
	httpd_start "$BATS_FILE_TMPDIR/www"
}

teardown_file() {
	httpd_stop
	# Swift is started by one test, whose process is gone by now: its
	# servers are found by the pid file swift_start wrote
	SWIFT_DIR=$BATS_FILE_TMPDIR/swift swift_stop
}

setup() {
	common_setup
	node_init
	node_start
	WWW=$BATS_FILE_TMPDIR/www
	SUM=$(sha256sum "$WWW/data.bin" | cut -d' ' -f1)
}

teardown() {
	allocs_teardown
}

status_of() {
	nunet-send /alloc/status "{\"id\":\"$1\"}"
}

# A job that records that it ran.
JOB='"command":["sh","-c","touch started; cat in/small.txt"]'

@test "inputs are staged before the job starts, read-only to it, with progress events" {
	run nunet-send /alloc/start "{\"spec\":{\"id\":\"in1\",\"command\":[\"sh\",\"-c\",
		\"sha256sum in/data.bin | cut -d' ' -f1; cat in/small.txt; echo x >>in/small.txt && echo WROTE; rm in/small.txt && echo REMOVED; true\"]},
		\"inputs\":[{\"url\":\"$HTTPD_URL/data.bin\",\"path\":\"in/data.bin\",\"sha256\":\"$SUM\"},
			    {\"url\":\"file://$WWW/small.txt\",\"path\":\"in/small.txt\"}]}"
	assert_success
	run nunet-run wait in1
	assert_success
	dir=$NUNET_HOME/alloc/in1
	assert_equal "$(head -2 "$dir/stdout.log")" "$SUM
hello input"
	# read-only to the job even as root: a read-only bind mount
	run grep -c 'WROTE\|REMOVED' "$dir/stdout.log"
	assert_output 0
	assert_equal "$(cat "$dir/in/small.txt")" "hello input"
	run status_of in1
	assert_equal "$(jq -c '[.states[].state]' <<<"$output")" '["staging","starting","running","exited"]'
	assert_equal "$(jq -r '.result.inputs[0].sha256, .result.inputs[0].size, .result.inputs[1].path' <<<"$output")" "$SUM
3000000
in/small.txt"
	jq -e '.result.stage_seconds >= 0 and .result.wall_seconds >= 0' <<<"$output"
	# on the host the inputs are a-w (what executors without mounts rely on)
	[[ "$(stat -c %A "$dir/in/data.bin")" != *w* ]]
	[[ "$(stat -c %A "$dir/in/small.txt")" != *w* ]]
	# progress events: alloc.stage with bytes and totals, ending at done
	run nunet-node events --kind alloc.stage
	assert_success
	jq -se '[.[] | select(.fields.id == "in1")] | length >= 4' <<<"$output"
	jq -se '[.[] | select(.fields.id == "in1" and .fields.phase == "done" and .fields.input == 1)][0].fields
		| .bytes == 3000000 and .total == 3000000' <<<"$output"
}

@test "outputs go up after exit: URL, size and sha256 in the result and in nunet-run status" {
	mkdir -p "$BATS_TEST_TMPDIR/dest"
	run nunet-run --id o1 --output "out/r.txt:$HTTPD_URL/up/r.txt" \
		--output "out/r.txt:file://$BATS_TEST_TMPDIR/dest/r.txt" -- sh -c 'mkdir -p out; echo result >out/r.txt'
	assert_success
	assert_equal "$(cat "$WWW/up/r.txt")" result
	assert_equal "$(cat "$BATS_TEST_TMPDIR/dest/r.txt")" result
	sum=$(printf 'result\n' | sha256sum | cut -d' ' -f1)
	run nunet-run status o1
	assert_success
	assert_equal "$(jq -r '.result.outputs[] | "\(.url) \(.size) \(.sha256)"' <<<"$output")" "$HTTPD_URL/up/r.txt 7 $sum
file://$BATS_TEST_TMPDIR/dest/r.txt 7 $sum"
	assert_equal "$(jq -r .state <<<"$output")" exited
}

@test "an output that cannot go up is named in the result; the job's own status stays" {
	run nunet-run --id o2 --output "missing.txt:file://$BATS_TEST_TMPDIR/x.txt" \
		--output "out.txt:$HTTPD_URL/up/o2.txt?status=403" -- sh -c 'echo hi >out.txt'
	assert_success
	run nunet-run status o2
	jq -e '.result.outputs[0].error | test("missing.txt")' <<<"$output"
	jq -e '.result.outputs[1].error | test("403")' <<<"$output"
	jq -e '.result.outputs_error | length > 0' <<<"$output"
	assert_equal "$(jq -r .state <<<"$output")" exited
}

@test "nunet-run --input URL:PATH splits at the last ':' (URLs hold ports), --output PATH:URL at the first" {
	run nunet-run --id p1 --input "$HTTPD_URL/small.txt:in/small.txt" -- cat in/small.txt
	assert_success
	assert_output "hello input"
	run --separate-stderr nunet-run --input "$HTTPD_URL/small.txt" -- true
	assert_failure 64
	run --separate-stderr nunet-run --output "nocolon" -- true
	assert_failure 64
}

# bad_input NAME INPUT-JSON REASON-REGEX: the allocation fails in staging,
# nothing ran, nothing is left of the inputs.
bad_input() {
	local id=$1 input=$2 want=$3 dir
	run nunet-send /alloc/start "{\"spec\":{\"id\":\"$id\",$JOB},\"stage_timeout\":\"${4:-30s}\",
		\"inputs\":[{\"url\":\"$HTTPD_URL/small.txt\",\"path\":\"in/small.txt\"},$input]}"
	assert_success
	run --separate-stderr nunet-run wait "$id"
	assert_failure 70
	[[ "$stderr" == *"allocation $id failed: staging: "*"input 2 ("* ]] || { echo "$stderr"; false; }
	run status_of "$id"
	assert_equal "$(jq -r .state <<<"$output")" failed
	jq -e --arg re "$want" '.reason | startswith("staging: ") and test($re)' <<<"$output" ||
		{ jq -r .reason <<<"$output"; false; }
	assert_equal "$(jq -c '[.states[].state]' <<<"$output")" '["staging","failed"]'
	assert_equal "$(jq -r .run <<<"$output")" 1
	dir=$NUNET_HOME/alloc/$id
	[ ! -e "$dir/started" ]
	[ ! -e "$dir/stdout.log" ]
	# all or nothing: the first input is taken back too, and no partial file
	[ ! -e "$dir/in/small.txt" ]
	assert_equal "$(find "$dir" -name '*.part*' | wc -l)" 0
}

@test "staging fails cleanly on a wrong checksum" {
	bad_input b1 "{\"url\":\"$HTTPD_URL/data.bin\",\"path\":\"in/d\",\"sha256\":\"$(printf '0%.0s' {1..64})\"}" 'checksum mismatch'
}

@test "staging fails cleanly on 404 and 403" {
	bad_input b2 "{\"url\":\"$HTTPD_URL/nosuch.bin\",\"path\":\"in/d\"}" 'HTTP 404'
	bad_input b3 "{\"url\":\"$HTTPD_URL/data.bin?status=403\",\"path\":\"in/d\"}" 'HTTP 403'
}

@test "staging fails cleanly on a refused connection" {
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	bad_input b4 "{\"url\":\"http://127.0.0.1:$port/x\",\"path\":\"in/d\"}" '[Rr]efused|connect'
}

@test "staging fails cleanly on a server that stalls mid-transfer (stage timeout)" {
	bad_input b5 "{\"url\":\"$HTTPD_URL/data.bin?stall=100000\",\"path\":\"in/d\"}" 'timed out|cancelled' 2s
}

@test "staging fails cleanly on a truncated body" {
	bad_input b6 "{\"url\":\"$HTTPD_URL/data.bin?truncate=1000\",\"path\":\"in/d\"}" 'truncated|partial|transfer|closed|bytes'
}

@test "staging fails cleanly on a git ref that does not exist" {
	git init -q "$BATS_TEST_TMPDIR/repo"
	git -C "$BATS_TEST_TMPDIR/repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m one
	bad_input b7 "{\"url\":\"git+file://$BATS_TEST_TMPDIR/repo#nosuchref\",\"path\":\"in/src\"}" 'nosuchref'
}

@test "staging fails cleanly on an unsupported scheme and on a path escaping the directory" {
	bad_input b8 "{\"url\":\"gopher://127.0.0.1/x\",\"path\":\"in/d\"}" "unsupported URL scheme 'gopher'"
	bad_input b9 "{\"url\":\"$HTTPD_URL/small.txt\",\"path\":\"../escape.txt\"}" 'escape|\.\.'
	[ ! -e "$NUNET_HOME/alloc/escape.txt" ]
}

@test "a git input is checked out at its commit, read-only to the job" {
	repo=$BATS_TEST_TMPDIR/repo
	git init -q "$repo"
	echo v1 >"$repo/f"
	git -C "$repo" add f
	git -C "$repo" -c user.name=t -c user.email=t@t commit -q -m one
	c=$(git -C "$repo" rev-parse HEAD)
	run nunet-run --id g1 --input "git+file://$repo#$c:src" -- sh -c 'cat src/f; touch src/new 2>/dev/null && echo WROTE; true'
	assert_success
	assert_output v1
	assert_equal "$(nunet-run status g1 | jq -r '.result.inputs[0].commit')" "$c"
}

@test "cancelling during staging stops the transfer, leaves no partial file, starts nothing" {
	run nunet-send /alloc/start "{\"spec\":{\"id\":\"cc1\",$JOB},
		\"inputs\":[{\"url\":\"$HTTPD_URL/data.bin?stall=100000\",\"path\":\"in/d\"}]}"
	assert_success
	for i in $(seq 200); do
		[ "$(jq -r .state "$NUNET_HOME/alloc/c1/state.json" 2>/dev/null)" = staging ] && break
		sleep 0.05
	done
	run nunet-run cancel cc1
	assert_success
	run --separate-stderr timeout 30 nunet-run wait cc1
	assert_failure 143
	run status_of cc1
	assert_equal "$(jq -r .state <<<"$output")" killed
	jq -e '.reason | test("staging")' <<<"$output"
	[ ! -e "$NUNET_HOME/alloc/c1/started" ]
	assert_equal "$(find "$NUNET_HOME/alloc/c1" -name '*.part*' | wc -l)" 0
}

@test "/alloc/start refuses badly shaped inputs and outputs before making anything" {
	run nunet-send /alloc/start "{\"spec\":{\"id\":\"r1\",$JOB},\"inputs\":[{\"url\":\"x\"}]}"
	assert_failure 65
	assert_output --partial "inputs[0].path"
	run nunet-send /alloc/start "{\"spec\":{\"id\":\"r1\",$JOB},\"outputs\":{}}"
	assert_failure 65
	assert_output --partial "outputs: expected an array"
	run nunet-send /alloc/start "{\"spec\":{\"id\":\"r1\",$JOB},\"stage_timeout\":\"soon\"}"
	assert_failure 65
	[ ! -e "$NUNET_HOME/alloc/r1" ]
}

@test "S3 (Swift, SigV4): an input staged and an output uploaded" {
	if ! swift_have; then
		skip "OpenStack Swift (swift-proxy, swift-object, ...) or memcached is not installed"
	fi
	swift_start "$BATS_FILE_TMPDIR/swift" || { swift_log >&2; false; }
	# the node's shims inherit the S3 settings from the node's environment
	node_stop_all
	node_start
	nunet-store mkbucket stage >/dev/null
	nunet-store put "$WWW/data.bin" s3://stage/data.bin >/dev/null
	run nunet-run --id s3a --input "s3://stage/data.bin:in/d" --output "in/d:s3://stage/copy.bin" \
		-- sh -c 'sha256sum in/d | cut -d" " -f1'
	assert_success
	assert_output "$SUM"
	run nunet-run status s3a
	assert_equal "$(jq -r '.result.inputs[0].sha256, .result.outputs[0].sha256, .result.outputs[0].url' <<<"$output")" "$SUM
$SUM
s3://stage/copy.bin"
	nunet-store fetch --sha256 "$SUM" s3://stage/copy.bin "$BATS_TEST_TMPDIR/copy.bin" >/dev/null
}

@test "nunet-run(1) example: stage an input, and store a result beside it" {
	cd "$BATS_TEST_TMPDIR"
	in=$BATS_TEST_TMPDIR/in.txt out=$BATS_TEST_TMPDIR/out.txt
	echo hello >"$in"
	run nunet-run --input "file://$in:in/greeting.txt" \
		--output "out.txt:file://$out" \
		-- sh -c 'tr a-z A-Z <in/greeting.txt >out.txt'
	assert_success
	assert_equal "$(cat "$out")" HELLO
	run bash -c "nunet-run status \$(nunet-run ls -a | jq -r .id | tail -1) | jq -r '.result.outputs[0].size'"
	assert_output 6
}

@test "a deployment's inputs and outputs are staged by the provider that runs it" {
	nunet-node onboard --cpu 1 --memory 1G --disk 1G <"$NUNET_SRC/share/nunet/capability/small-vps.json" >/dev/null
	cat >"$BATS_TEST_TMPDIR/e.json" <<-EOT
	{"allocations":{"up":{"type":"task","command":["sh","-c","tr a-z A-Z <in/s.txt >out.txt"],
	  "resources":{"cpu":1,"ram":"64MiB"},
	  "inputs":[{"url":"$HTTPD_URL/small.txt","path":"in/s.txt"}],
	  "outputs":[{"path":"out.txt","url":"file://$BATS_TEST_TMPDIR/result.txt"}]}}}
	EOT
	run --separate-stderr timeout 60 nunet-run deploy --wait "$BATS_TEST_TMPDIR/e.json"
	assert_success
	assert_equal "$(cat "$BATS_TEST_TMPDIR/result.txt")" "HELLO INPUT"
	# the allocation went through staging, and its result names the output
	alloc=$(jq -r 'select(.kind == "deploy.alloc") | .fields.alloc' <<<"$output" | tail -1)
	run status_of "$alloc"
	assert_success
	assert_equal "$(jq -r '[.states[].state] | index("staging") != null' <<<"$output")" true
	assert_equal "$(jq -r '.result.outputs[0].sha256' <<<"$output")" \
		"$(sha256sum "$BATS_TEST_TMPDIR/result.txt" | cut -d' ' -f1)"
}
