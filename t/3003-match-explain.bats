#!/usr/bin/env bats
# nunet-match --explain, and bad input: malformed offers, bad requirements,
# jq expressions that do not compile or fail at run time.

load lib/common
bats_require_minimum_version 1.5.0

SHARE="$NUNET_SRC/share/nunet"

offers() {
	cat "$SHARE"/capability/small-vps.json "$SHARE"/capability/gpu-workstation.json \
		"$SHARE"/capability/arm-edge.json | jq -c . >"$BATS_TEST_TMPDIR/offers.jsonl"
	echo "$BATS_TEST_TMPDIR/offers.jsonl"
}

@test "--explain: feasible first, then each rejected offer with every failed constraint (man page example)" {
	f=$(offers)
	run nunet-match --explain "$SHARE/requirements/web-service.json" "$f"
	assert_success
	assert_equal "${#lines[@]}" 3
	run jq -c '[.offer.cpu.model, (.score // .rejected)]' <<<"$output"
	assert_output '["AMD EPYC 7B13",-10.002777777777778]
["AMD Ryzen 9 7950X",-30.002777777777776]
["Cortex-A76",["cpu.arch: need x86_64, have aarch64","executors: need docker, have native","location: need continent EU, have NA/US/Austin"]]'
}

@test "--explain gives the shortfall of each resource" {
	f=$(offers)
	run nunet-match --explain '{"cpu":{"cores":8},"ram":{"size":"8G"},"gpus":{"count":2,"vendor":"nvidia"},"features":["kvm","tun"]}' "$f"
	assert_failure 1
	run jq -c '.rejected' <<<"$output"
	assert_line --index 0 '["cpu.cores: need 8, have 2","ram: need 8589934592, have 4294967296","gpus: need 2 nvidia, have 0","features: need kvm, have none","features: need tun, have none"]'
	assert_line --index 1 '["gpus: need 2 nvidia, have 1"]'
	assert_line --index 2 '["cpu.cores: need 8, have 4","gpus: need 2 nvidia, have 0","features: need kvm, have none","features: need tun, have none"]'
}

@test "--explain names a where that is false, and an offer's where the job fails" {
	f=$(offers)
	run nunet-match --explain --where '.cpu.mhz > 4000' '{"price":{"max":{"gpu_second":"10"}}}' "$f"
	assert_failure 1
	run jq -c '.rejected' <<<"$output"
	assert_line --index 0 '["where: .cpu.mhz > 4000 is false"]'
	assert_line --index 1 --partial '"offer where: .price.max == null or'
	assert_line --index 1 --partial 'is false on the requirements"]'
}

@test "malformed offers: reported with their line number, skipped, the run goes on" {
	{
		jq -c . "$SHARE/capability/small-vps.json"
		echo '{"v":1,"cpu":{"cores":2,}}'
		echo 'not json'
		echo '[1,2]'
		echo '{"v":1,"ram":{"size":"4G"}}'
		echo '{"v":1,"cpu":{"cores":-2}}'
		printf '{"v":1,"cpu":{"arch":"x\xff"}}\n'
		echo '{"v":1,"cpu":{"arch":"x86_64"'
		echo '{"v":1,"price":{"cpu_second":12}}'
		echo '{"v":2}'
		echo ''
		echo '{"v":1,"cpu":{"cores":4},"gpus":[{"vendor":"nvidia","vram":1}]} x'
		jq -c . "$SHARE/capability/arm-edge.json"
	} >"$BATS_TEST_TMPDIR/mixed.jsonl"
	run --separate-stderr nunet-match '{"cpu":{"cores":1}}' "$BATS_TEST_TMPDIR/mixed.jsonl"
	assert_success
	assert_equal "${#lines[@]}" 2
	m="$BATS_TEST_TMPDIR/mixed.jsonl"
	assert_equal "$stderr" "nunet-match: warn: $m: line 2: not JSON: unexpected '}' at byte 25 (a member name)
nunet-match: warn: $m: line 3: not JSON: unexpected 'n' at byte 1 (a value)
nunet-match: warn: $m: line 4: not a capability document: expected an object
nunet-match: warn: $m: line 5: ram.size: expected a non-negative integer
nunet-match: warn: $m: line 6: cpu.cores: expected a non-negative integer
nunet-match: warn: $m: line 7: not JSON: invalid UTF-8 at byte 24
nunet-match: warn: $m: line 8: not JSON: unexpected end of line (',' or '}')
nunet-match: warn: $m: line 9: price.cpu_second: expected a string
nunet-match: warn: $m: line 10: v: version 2 is not supported (expected 1)
nunet-match: warn: $m: line 12: not JSON: unexpected 'x' at byte 65 (end of line)"
}

@test "a malformed offer is skipped also when offers come on stdin" {
	run --separate-stderr nunet-match '{}' <<<'{"v":1,"cpu":{"cores":1}}
{"v":1'
	assert_success
	assert_output '{"offer":{"v":1,"cpu":{"cores":1}},"score":0}'
	assert_equal "$stderr" "nunet-match: warn: stdin: line 2: not JSON: unexpected end of line (',' or '}')"
}

@test "a where that does not compile is exit 65 with jq's message" {
	f=$(offers)
	run --separate-stderr nunet-match --where '.cpu.cores >' '{}' "$f"
	assert_failure 65
	assert_output ''
	assert_regex "$stderr" "^nunet-match: error: --where: does not compile: jq: error: syntax error"
	run --separate-stderr nunet-match '{"rank":"nosuchfn(1)"}' "$f"
	assert_failure 65
	assert_regex "$stderr" "^nunet-match: error: rank: does not compile: jq: error: nosuchfn/1 is not defined"
}

@test "a where that errors at run time does not match that offer; --explain says why" {
	f=$(offers)
	run nunet-match --where '.labels.tier | test("^g")' '{}' "$f"
	assert_success
	run jq -r .offer.cpu.model <<<"$output"
	assert_output 'AMD Ryzen 9 7950X'
	run nunet-match --explain --where '.cpu.model | ascii_downcase | ltrimstr("amd") | tonumber' '{}' "$f"
	assert_failure 1
	run jq -r '.rejected[0]' <<<"$output"
	assert_line --index 0 --partial 'where: error: Invalid numeric literal'
	run nunet-match --explain --rank '.cpu.model' '{}' "$f"
	assert_failure 1
	run jq -r '.rejected[0]' <<<"$output"
	assert_line --index 0 'rank: string is not a finite number'
}

@test "bad sizes and unknown fields in requirements are usage errors naming the field" {
	f=$(offers)
	run --separate-stderr nunet-match '{"ram":{"size":"8 gigs"}}' "$f"
	assert_failure 64
	assert_equal "$stderr" "nunet-match: error: ram.size: bad size '8 gigs' (use bytes, or a number with K, M, G or T, as in 8G or 512MiB)"
	run --separate-stderr nunet-match '{"gpus":{"count":1,"vram":"2X"}}' "$f"
	assert_failure 64
	assert_regex "$stderr" "gpus.vram: bad size '2X'"
	run --separate-stderr nunet-match '{"cpus":{"cores":2}}' "$f"
	assert_failure 64
	assert_equal "$stderr" "nunet-match: error: requirements: unknown field 'cpus'"
	run --separate-stderr nunet-match '{"price":{"max":{"cpu_second":"1.5"}}}' "$f"
	assert_failure 64
	assert_equal "$stderr" "nunet-match: error: price.max.cpu_second: expected a string of 1 to 18 digits (integer minor units)"
}

@test "requirements that are not JSON, or missing, are reported" {
	run --separate-stderr nunet-match '{"cpu":' </dev/null
	assert_failure 65
	assert_regex "$stderr" '^nunet-match: error: requirements: not JSON'
	run --separate-stderr nunet-match "$BATS_TEST_TMPDIR/none.json" </dev/null
	assert_failure 74
	assert_regex "$stderr" "^nunet-match: error: .*none.json.*No such file or directory"
	echo '[1]' >"$BATS_TEST_TMPDIR/arr.json"
	run --separate-stderr nunet-match "$BATS_TEST_TMPDIR/arr.json" </dev/null
	assert_failure 65
	assert_equal "$stderr" 'nunet-match: error: requirements: expected an object, not array'
}

@test "escaped strings in offers are decoded before comparing" {
	run nunet-match '{"cpu":{"arch":"x86_64"},"labels":{"z\u00fcrich":"ja"}}' <<<'{"v":1,"cpu":{"arch":"x86\u005f64"},"labels":{"z\u00fcrich":"j\u0061"}}'
	assert_success
	run nunet-match '{"labels":{"k":"\ud83d\ude00"}}' <<<'{"labels":{"k":"😀"}}'
	assert_success
}

@test "--where and the requirements' where both hold, even with a jq comment" {
	f=$(offers)
	run nunet-match --explain --where '.cpu.cores >= 4 # at least four' '{"where":".location.continent == \"EU\" # only Europe"}' "$f"
	assert_success
	run jq -c '[.offer.cpu.model, (.score // .rejected)]' <<<"$output"
	assert_output '["AMD Ryzen 9 7950X",-12]
["AMD EPYC 7B13",["where: (.location.continent == \"EU\" # only Europe) and (.cpu.cores >= 4 # at least four) is false"]]
["Cortex-A76",["where: (.location.continent == \"EU\" # only Europe) and (.cpu.cores >= 4 # at least four) is false"]]'
}

@test "mutated offers: never a crash, every offer printed is what jq reads" {
	skip_unless "command -v python3" "python3 not installed"
	gen-offers 100 3 >"$BATS_TEST_TMPDIR/base.jsonl"
	python3 - "$BATS_TEST_TMPDIR/base.jsonl" >"$BATS_TEST_TMPDIR/fuzz.jsonl" <<'PY'
import random, sys
random.seed(7)
lines = open(sys.argv[1], 'rb').read().split(b'\n')[:-1]
alpha = b'{}[]",:\\0123456789.eE+-tfnul \t\x00\x7f\xc3\xa9\xff\xed\xa0\x80'
for i in range(600):
    l = bytearray(random.choice(lines))
    for _ in range(random.randint(1, 3)):
        pos = random.randrange(len(l)); op = random.random()
        if op < 0.4: l[pos] = random.choice(alpha)
        elif op < 0.7: del l[pos]
        else: l.insert(pos, random.choice(alpha))
    sys.stdout.buffer.write(bytes(l).replace(b'\n', b' ') + b'\n')
PY
	run --separate-stderr nunet-match --rank 'tojson | explode | add' '{}' "$BATS_TEST_TMPDIR/fuzz.jsonl"
	assert_success
	[ "${#lines[@]}" -gt 50 ]
	[ "${#stderr_lines[@]}" -gt 50 ]
	# the scanner's jv and jq's parse of the printed text agree
	run jq -c 'select(.score != (.offer | tojson | explode | add))' <<<"$output"
	assert_success
	assert_output ''
}
