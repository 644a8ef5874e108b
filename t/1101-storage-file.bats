#!/usr/bin/env bats
# Storage through file:// URLs: copies, checksums, size limits, paths
# confined to a base directory, progress events, and no partial files.

load lib/common
bats_require_minimum_version 1.5.0

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
	head -c 300000 /dev/urandom >src.bin
	SUM=$(sha256sum src.bin | cut -d' ' -f1)
}

# leftovers DIR: temporary names a failed transfer must not leave behind.
leftovers() {
	find "$1" -name '*.part.*' -o -name '*.restore.*' | wc -l
}

@test "fetch file:// copies the file and reports its size and sha256" {
	run --separate-stderr nunet-store fetch "file://$PWD/src.bin" out.bin
	assert_success
	cmp src.bin out.bin
	assert_equal "$(jq -r .sha256 <<<"$output")" "$SUM"
	assert_equal "$(jq -r .size <<<"$output")" 300000
	assert_equal "$(jq -r .attempts <<<"$output")" 1
}

@test "the copy is a file of its own, not a link to the source" {
	nunet-store fetch "file://$PWD/src.bin" out.bin >/dev/null
	echo changed >>out.bin
	assert_equal "$(sha256sum <src.bin | cut -d' ' -f1)" "$SUM"
}

@test "a matching --sha256 passes; a wrong one fails with 65 and leaves nothing" {
	run nunet-store fetch --sha256 "$SUM" "file://$PWD/src.bin" ok.bin
	assert_success
	bad=$(printf '0%.0s' $(seq 64))
	run --separate-stderr nunet-store fetch --sha256 "$bad" "file://$PWD/src.bin" bad.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: checksum mismatch for 'file://$PWD/src.bin': expected sha256 $bad, got $SUM"
	[ ! -e bad.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "a malformed --sha256 is a usage error" {
	run --separate-stderr nunet-store fetch --sha256 abc "file://$PWD/src.bin" x.bin
	assert_equal "$status" 64
	[ ! -e x.bin ]
}

@test "--max refuses a larger file and leaves nothing" {
	run --separate-stderr nunet-store fetch --max 100K "file://$PWD/src.bin" big.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: 'file://$PWD/src.bin' is larger than 102400 bytes"
	[ ! -e big.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "a missing source fails with 69 naming it" {
	run --separate-stderr nunet-store fetch "file://$PWD/nope.bin" out.bin
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: cannot open '$PWD/nope.bin': No such file or directory"
	[ ! -e out.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "an unsupported scheme or a non-URL fails with 65" {
	run --separate-stderr nunet-store fetch "ftp://example.org/x" out.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: unsupported URL scheme 'ftp' in 'ftp://example.org/x'"
	run --separate-stderr nunet-store fetch "just-a-name" out.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: not a URL: 'just-a-name'"
	[ ! -e out.bin ]
}

@test "with --base, a relative path lands inside base, creating directories" {
	mkdir alloc
	run nunet-store fetch --base alloc "file://$PWD/src.bin" in/data/x.bin
	assert_success
	cmp src.bin alloc/in/data/x.bin
}

@test "with --base, ../ and absolute paths are refused and nothing is written" {
	mkdir alloc
	run --separate-stderr nunet-store fetch --base alloc "file://$PWD/src.bin" ../escape.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: path '../escape.bin' escapes 'alloc'"
	run --separate-stderr nunet-store fetch --base alloc "file://$PWD/src.bin" in/../../escape.bin
	assert_equal "$status" 65
	run --separate-stderr nunet-store fetch --base alloc "file://$PWD/src.bin" /tmp/escape.bin
	assert_equal "$status" 65
	[ ! -e escape.bin ]
	[ ! -e /tmp/escape.bin ] || [ /tmp/escape.bin -ot src.bin ]
}

@test "with --base, a symlink inside base cannot lead out of it" {
	mkdir alloc outside
	ln -s ../outside alloc/link
	run --separate-stderr nunet-store fetch --base alloc "file://$PWD/src.bin" link/x.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: path 'link/x.bin' escapes 'alloc'"
	[ ! -e outside/x.bin ]
}

@test "put file:// stores a copy and reports its checksum" {
	mkdir dest
	run --separate-stderr nunet-store put src.bin "file://$PWD/dest/copy.bin"
	assert_success
	cmp src.bin dest/copy.bin
	assert_equal "$(jq -r .sha256 <<<"$output")" "$SUM"
	assert_equal "$(leftovers dest)" 0
}

@test "put of a directory to a plain file URL is refused" {
	mkdir d
	run --separate-stderr nunet-store put d "file://$PWD/x"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: 'd' is a directory; only git outputs take directories"
}

@test "--progress prints start, progress and done events before the result" {
	head -c 3000000 /dev/urandom >big.bin
	run --separate-stderr nunet-store fetch --progress "file://$PWD/big.bin" out.bin
	assert_success
	assert_equal "$(head -n1 <<<"$output" | jq -r .event)" start
	assert_equal "$(grep -c '"event":"done"' <<<"$output")" 1
	done_bytes=$(grep '"event":"done"' <<<"$output" | jq -r .bytes)
	assert_equal "$done_bytes" 3000000
	# the last line is the result, not an event
	assert_equal "$(tail -n1 <<<"$output" | jq -r 'has("event")')" false
}

@test "-h prints usage on stdout; a bad option prints it on stderr with 64" {
	run --separate-stderr nunet-store -h
	assert_success
	[[ "$output" == "usage: nunet-store fetch URL PATH"* ]]
	run --separate-stderr nunet-store --bogus
	assert_equal "$status" 64
	[[ "$stderr" == *"usage: nunet-store fetch URL PATH"* ]]
}

@test "stage fetches every input inside the allocation directory" {
	mkdir alloc
	printf '[{"url":"file://%s/src.bin","path":"in/a.bin","sha256":"%s"},{"url":"file://%s/src.bin","path":"b.bin"}]' \
		"$PWD" "$SUM" "$PWD" >inputs.json
	run --separate-stderr nunet-store stage alloc <inputs.json
	assert_success
	cmp src.bin alloc/in/a.bin
	cmp src.bin alloc/b.bin
	assert_equal "$(jq -r '.[].sha256' <<<"$output" | sort -u)" "$SUM"
	assert_equal "$(jq -r '.[1].path' <<<"$output")" b.bin
}

@test "stage is all or nothing: a failing input removes those staged before it" {
	mkdir alloc
	printf '[{"url":"file://%s/src.bin","path":"in/a.bin"},{"url":"file://%s/missing","path":"b.bin"}]' \
		"$PWD" "$PWD" >inputs.json
	run --separate-stderr nunet-store stage alloc <inputs.json
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: input 2 (file://$PWD/missing): cannot open '$PWD/missing': No such file or directory"
	[ ! -e alloc/in/a.bin ]
	[ ! -e alloc/b.bin ]
}

@test "stage refuses an input path that escapes the allocation directory" {
	mkdir alloc
	printf '[{"url":"file://%s/src.bin","path":"../../etc/x"}]' "$PWD" >inputs.json
	run --separate-stderr nunet-store stage alloc <inputs.json
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: input 1 (file://$PWD/src.bin): path '../../etc/x' escapes 'alloc'"
}

@test "collect uploads every output and reports each, failures included" {
	mkdir -p alloc/out dest
	cp src.bin alloc/out/result.bin
	printf '[{"path":"out/result.bin","url":"file://%s/dest/r.bin"},{"path":"out/none","url":"file://%s/dest/n"}]' \
		"$PWD" "$PWD" >outputs.json
	run --separate-stderr nunet-store collect alloc <outputs.json
	assert_equal "$status" 74
	cmp src.bin dest/r.bin
	assert_equal "$(jq -r '.[0].sha256' <<<"$output")" "$SUM"
	assert_equal "$(jq -r '.[1].error' <<<"$output")" "cannot open '$PWD/alloc/out/none': No such file or directory"
}

@test "collect refuses an output path that escapes the allocation directory" {
	mkdir -p alloc dest
	printf '[{"path":"../src.bin","url":"file://%s/dest/x"}]' "$PWD" >outputs.json
	run --separate-stderr nunet-store collect alloc <outputs.json
	assert_equal "$status" 65
	assert_equal "$(jq -r '.[0].error' <<<"$output")" "path '../src.bin' escapes 'alloc'"
	[ ! -e dest/x ]
}
