#!/usr/bin/env bats
# Box-stream (lib/boxstream.c): lines of every interesting size, bodies of at
# most 4096 bytes, the goodbye, authentication failures, truncation, and
# byte-for-byte interop with pull-box-stream (npm).

load lib/common
load lib/shs

setup() {
	common_setup
	KEY=$(shs_randhex 32)
	NONCE=$(shs_randhex 24)
	T=$BATS_TEST_TMPDIR
}

# msgs N: how many messages a line of N bytes (plus its newline) takes
msgs() {
	echo $(( ($1 + 1 + 4095) / 4096 ))
}

@test "lines of 0, 1, 4095, 4096, 4097 bytes and 1 MiB round-trip through nn_lines" {
	run test-tool shs bs roundtrip 0 1 4095 4096 4097 1048576
	assert_success
	# bytes: each body plus its 34-byte header, plus the 34-byte goodbye
	for n in 0 1 4095 4096 4097 1048576; do
		m=$(msgs $n)
		assert_line "$n messages=$m bytes=$(( n + 1 + 34 * m + 34 )) ok"
	done
}

@test "multi-line text round-trips through pipes, decoded in pieces of any size" {
	{ echo hello; echo; python3 -c "print('x' * 9000)"; printf 'no newline at the end'; } >"$T/plain"
	test-tool shs bs enc $KEY $NONCE <"$T/plain" >"$T/cipher"
	for chunk in 1 33 34 35 4130 100000; do
		run test-tool shs bs dec $KEY $NONCE $chunk <"$T/cipher"
		assert_success
		cmp <(printf '%s' "$output") <(printf '%s' "$(cat "$T/plain")")
	done
	test-tool shs bs dec $KEY $NONCE 7 <"$T/cipher" | cmp - "$T/plain"
}

@test "no body is longer than 4096 bytes" {
	python3 -c "print('y' * 10000)" >"$T/plain"
	test-tool shs bs enc $KEY $NONCE <"$T/plain" >"$T/cipher"
	# 10001 bytes = 4096 + 4096 + 1809: three messages and the goodbye
	assert_equal "$(wc -c <"$T/cipher")" $(( 10001 + 3 * 34 + 34 ))
}

@test "the goodbye ends the stream cleanly; bytes after it are not read" {
	echo "last words" >"$T/plain"
	test-tool shs bs enc $KEY $NONCE <"$T/plain" >"$T/cipher"
	printf 'trailing garbage' >>"$T/cipher"
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/cipher"
	assert_success
	assert_output "last words"
	assert_equal "$stderr" ""
}

@test "an empty stream is just the goodbye" {
	: | test-tool shs bs enc $KEY $NONCE >"$T/cipher"
	assert_equal "$(wc -c <"$T/cipher")" 34
	run test-tool shs bs dec $KEY $NONCE <"$T/cipher"
	assert_success
	assert_output ""
}

@test "a stream that ends without a goodbye is reported" {
	echo "cut off" | test-tool shs bs enc $KEY $NONCE --no-goodbye >"$T/cipher"
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/cipher"
	assert_failure 74
	assert_output "cut off"
	assert_equal "$stderr" "test-tool: error: box-stream: the stream ended without a goodbye after 1 messages"
}

@test "truncated streams are reported, inside a header or inside a body" {
	python3 -c "print('z' * 5000)" | test-tool shs bs enc $KEY $NONCE >"$T/cipher"
	head -c 20 "$T/cipher" >"$T/t1"
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/t1"
	assert_failure 74
	assert_equal "$stderr" "test-tool: error: box-stream: truncated inside message 1 (20 of 34 header bytes)"
	head -c 1000 "$T/cipher" >"$T/t2"
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/t2"
	assert_failure 74
	assert_output ""
	assert_equal "$stderr" "test-tool: error: box-stream: truncated inside message 1 (966 of 4096 body bytes)"
	head -c $(( 34 + 4096 + 34 + 100 )) "$T/cipher" >"$T/t3"
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/t3"
	assert_failure 74
	assert_equal "${#output}" 4096
	assert_equal "$stderr" "test-tool: error: box-stream: truncated inside message 2 (100 of 905 body bytes)"
}

@test "a flipped bit in a header, a body or the goodbye fails authentication" {
	printf 'first line\nsecond line\n' | test-tool shs bs enc $KEY $NONCE >"$T/cipher"
	# layout: hdr1 (34) body1 (11) hdr2 (34) body2 (12) goodbye (34)
	for bit in 0 100 271; do		# header 1
		cp "$T/cipher" "$T/c"; shs_flip "$T/c" $bit
		run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/c"
		assert_failure 65
		assert_output ""
		assert_equal "$stderr" "test-tool: error: box-stream: message 1: header failed authentication (altered in transit, or not our key)"
	done
	for bit in 272 300 359; do		# body 1
		cp "$T/cipher" "$T/c"; shs_flip "$T/c" $bit
		run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/c"
		assert_failure 65
		assert_output ""
		assert_equal "$stderr" "test-tool: error: box-stream: message 1: body failed authentication (altered in transit, or not our key)"
	done
	cp "$T/cipher" "$T/c"; shs_flip "$T/c" $(( (34 + 11 + 34) * 8 + 5 ))	# body 2
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/c"
	assert_failure 65
	assert_output "first line"
	assert_equal "$stderr" "test-tool: error: box-stream: message 2: body failed authentication (altered in transit, or not our key)"
	cp "$T/cipher" "$T/c"; shs_flip "$T/c" $(( (34 + 11 + 34 + 12) * 8 + 40 ))	# goodbye
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/c"
	assert_failure 65
	assert_equal "$stderr" "test-tool: error: box-stream: message 3: header failed authentication (altered in transit, or not our key)"
}

@test "a header announcing more than 4096 bytes is refused at once" {
	test-tool shs bs header $KEY $NONCE 4097 >"$T/c"
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/c"
	assert_failure 65
	assert_equal "$stderr" "test-tool: error: box-stream: message 1: header announces a body over 4096 bytes"
	# a body whose MAC is not the header's fails, even if the header is genuine
	{ test-tool shs bs header $KEY $NONCE 10; printf 0123456789; } >"$T/c"
	run --separate-stderr test-tool shs bs dec $KEY $NONCE <"$T/c"
	assert_failure 65
	assert_equal "$stderr" "test-tool: error: box-stream: message 1: body failed authentication (altered in transit, or not our key)"
}

@test "another key or another starting nonce cannot read the stream" {
	echo secret | test-tool shs bs enc $KEY $NONCE >"$T/cipher"
	run test-tool shs bs dec "$(shs_randhex 32)" $NONCE <"$T/cipher"
	assert_failure 65
	run test-tool shs bs dec $KEY "$(shs_randhex 24)" <"$T/cipher"
	assert_failure 65
	refute_output --partial secret
}

@test "reordered messages are refused (the nonce counts them)" {
	printf 'one\ntwo\n' | test-tool shs bs enc $KEY $NONCE >"$T/cipher"
	# swap message 1 (34+4 bytes) and message 2 (34+4 bytes)
	{ tail -c +39 "$T/cipher" | head -c 38; head -c 38 "$T/cipher"; tail -c 34 "$T/cipher"; } >"$T/swapped"
	run test-tool shs bs dec $KEY $NONCE <"$T/swapped"
	assert_failure 65
}

@test "interop: ciphertext is byte-identical to pull-box-stream's, and each reads the other's" {
	shs_npm_setup
	python3 -c "print('interop ' * 1500)" >"$T/plain"	# 12001 bytes: 3 bodies
	test-tool shs bs enc $KEY $NONCE <"$T/plain" >"$T/ours"
	node "$NUNET_SRC/t/lib/shs-boxstream.js" enc $KEY $NONCE <"$T/plain" >"$T/theirs"
	cmp "$T/ours" "$T/theirs"
	node "$NUNET_SRC/t/lib/shs-boxstream.js" dec $KEY $NONCE <"$T/ours" | cmp - "$T/plain"
	test-tool shs bs dec $KEY $NONCE 999 <"$T/theirs" | cmp - "$T/plain"
	# and pull-box-stream refuses what we refuse
	shs_flip "$T/ours" 4000
	run node "$NUNET_SRC/t/lib/shs-boxstream.js" dec $KEY $NONCE <"$T/ours"
	assert_failure 1
}
