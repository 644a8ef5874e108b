#!/usr/bin/env bats
# RFC 8785 canonical JSON, through test-tool canon.
load lib/common

@test "RFC 8785 3.2.2: numbers, strings and literals canonicalize as the RFC prints" {
	run test-tool canon <<'IN'
{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}
IN
	assert_success
	assert_output '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'"'"'B\"\\\\\"/"}'
}

@test "RFC 8785 3.2.3: members sort by UTF-16 code units, not code points" {
	run test-tool canon <<'IN'
{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
IN
	assert_success
	# the RFC's order: \r, 1, U+0080, U+00F6, U+20AC, U+1F600, U+FB33
	want=$(printf '{"\\r":"Carriage Return","1":"One","\302\200":"Control","\303\266":"Latin Small Letter O With Diaeresis","\342\202\254":"Euro Sign","\360\237\230\200":"Emoji: Grinning Face","\357\254\263":"Hebrew Letter Dalet With Dagesh"}')
	assert_equal "$output" "$want"
}

@test "numbers: ECMAScript forms at the edges" {
	run test-tool canon <<'IN'
[0, -0, 1, -1, 1e21, 1e20, 123456789012345680000, 0.000001, 1e-7, 5e-324, 1.7976931348623157e308, 9007199254740993, -2.5]
IN
	assert_success
	assert_output '[0,0,1,-1,1e+21,100000000000000000000,123456789012345680000,0.000001,1e-7,5e-324,1.7976931348623157e+308,9007199254740992,-2.5]'
}

@test "nested objects and arrays are canonical at every depth" {
	run test-tool canon <<<'{ "b" : { "z":1, "a" : [ {"y":2,"x":1} ] }, "a" : "" }'
	assert_success
	assert_output '{"a":"","b":{"a":[{"x":1,"y":2}],"z":1}}'
}

@test "canonical form is stable: canonicalizing it again changes nothing" {
	in='{"k":[1,2,{"b":"\u0001","a":null}],"e":1e-9,"s":"é\t"}'
	first=$(test-tool canon <<<"$in")
	second=$(test-tool canon <<<"$first")
	assert_equal "$first" "$second"
}

@test "a line that is not JSON is reported with its line number, the next is still read" {
	run test-tool canon <<'IN'
{"a":1}
{"a":
[2]
IN
	assert_failure 65
	assert_line --index 0 '{"a":1}'
	assert_line --index 1 --partial 'error: line 2: not JSON'
	assert_line --index 2 '[2]'
}
