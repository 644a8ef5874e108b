#!/usr/bin/env bats
# The capped JSON-lines reader: oversize and unparsable lines are reported
# and the reader carries on with the next line.
load lib/common

@test "complete lines come out as values, in any chunking" {
	for chunk in 1 3 7 4096; do
		run test-tool lines 1024 $chunk < <(printf '{"a":1}\n[2]\n\n"x"\n')
		assert_output $'value {"a":1}\nvalue [2]\nvalue "x"\npending 0'
	done
}

@test "a line over the cap is reported once and the next line is read" {
	big=$(head -c 5000 /dev/zero | tr '\0' 'x')
	run test-tool lines 1024 100 < <(printf '{"a":1}\n"%s"\n{"b":2}\n' "$big")
	assert_output $'value {"a":1}\nerror line 2: longer than 1024 bytes\nvalue {"b":2}\npending 0'
}

@test "an oversize line never buffers more than the cap" {
	big=$(head -c 300000 /dev/zero | tr '\0' 'x')
	run test-tool lines 1024 65536 < <(printf '%s' "$big")
	assert_output $'error line 1: longer than 1024 bytes\npending 0'
}

@test "a line that is not JSON is reported and the next line is read" {
	run test-tool lines 1024 < <(printf '{"a":\n{"b":2}\n')
	assert_line --index 0 --partial 'error line 1: not JSON'
	assert_line --index 1 'value {"b":2}'
}

@test "a half line stays pending" {
	run test-tool lines 1024 < <(printf '{"a":1}\n{"b"')
	assert_output $'value {"a":1}\npending 4'
}
