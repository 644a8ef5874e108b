#!/usr/bin/env bats
# The fast forms of where and rank (lib/match.c, "jq expressions without
# jq") against jq itself: on random offers, some of them bent to hit every
# case the fast form must hand back to jq (strings with escapes, numbers as
# strings, nulls, a zero divisor, indexing a number), every answer, score
# and reason must be the same as with jq only.

load lib/common
bats_require_minimum_version 1.5.0

# 600 random offers and the same bent in ten ways
mixed_offers() {
	local f="$BATS_TEST_TMPDIR/mixed.jsonl"
	gen-offers 600 5 >"$BATS_TEST_TMPDIR/base.jsonl"
	{
		cat "$BATS_TEST_TMPDIR/base.jsonl"
		jq -c '.cpu.mhz = (.cpu.mhz | tostring)' "$BATS_TEST_TMPDIR/base.jsonl" | head -60
		jq -c 'del(.labels)' "$BATS_TEST_TMPDIR/base.jsonl" | sed -n 61,120p
		jq -c '.price.cpu_second = "0" | .price.disk_gib = "0"' "$BATS_TEST_TMPDIR/base.jsonl" | sed -n 121,180p
		jq -c '.price.cpu_second = "007"' "$BATS_TEST_TMPDIR/base.jsonl" | sed -n 181,240p
		jq -c '.cpu.score = null | .labels.tier = null' "$BATS_TEST_TMPDIR/base.jsonl" | sed -n 241,300p
		jq -c '.cpu.score.multi = 1500.25 | .cpu.mhz = 2.5e3' "$BATS_TEST_TMPDIR/base.jsonl" | sed -n 301,360p
		sed -n 361,420p "$BATS_TEST_TMPDIR/base.jsonl" | sed 's/"tier":"\([a-z]\)/"tier":"\\u0062\1/; s/"model":"/"m\\u006fdel":"/'
		sed -n 421,480p "$BATS_TEST_TMPDIR/base.jsonl" | sed 's/:/ : /g; s/,/ , /g; s/^/  /'
		sed -n 481,540p "$BATS_TEST_TMPDIR/base.jsonl" | sed 's/"model":"[^"]*"/"model":"first","model":"Generic CPU 9"/'
		jq -c '.cpu.mhz = {"base": 2000} | .price.cpu_second = "123456789012345678"' "$BATS_TEST_TMPDIR/base.jsonl" | sed -n 541,600p
	} >"$f"
	echo "$f"
}

@test "where and rank: the fast forms answer as jq does, on 1200 random and bent offers" {
	f=$(mixed_offers)
	req='{"cpu":{"cores":1}}'
	wheres=(
		'.cpu.mhz >= 2500 and .labels.tier != "bronze"'
		'.cpu.mhz > 3000 or .labels.tier == "gold"'
		'(.cpu.mhz | not) or .cpu.model < "Generic CPU 5"'
		'.labels.tier'
		'.cpu.score.multi * 2 - 100 >= .cpu.mhz + 1.5'
		'.cpu.mhz.x == 1'
		'.labels.missing == null and .nothing.deeper == null and .cpu.nothing == null'
		'.cpu.arch == "x86_64" and (.gpus | not | not)'
		'.price.cpu_second | tonumber > 10'
		'.cpu.mhz < true or null < false and .cpu.model >= 5'
		'.cpu.mhz / (.price.disk_gib | tonumber) > 100'
		'-1 < .cpu.mhz and .v == 1 and (.cpu | .mhz) >= 1800'
		'.cpu.model == "Generic CPU 9" or .cpu.model == "first"'
		'.cpu.mhz != .cpu.mhz or . == null or .gpus == []'
		'.cpu.mhz + .labels.tier'
		'.cpu.threads >= .cpu.cores * 2 or .cpu.cores <= 8'
		'.cpu.cores >= 16 and .cpu.cores < 64 and .ram.size > 17179869184'
		'.cpu.cores == 4 or .cpu.cores != 2 and .labels.tier <= "gold"'
		'.labels.tier != "bronzé" and .labels.tier != "br\u006fnze"'
	)
	ranks=(
		'.cpu.score.multi / (.price.cpu_second | tonumber)'
		'.cpu.score.multi / 1000 - (.price.gpu_second | tonumber)'
		'.cpu.mhz'
		'.labels.tier'
		'(.cpu.cores + .cpu.threads) * 2 / 3 - -0.5'
		'.cpu.score.single / (.price.disk_gib | tonumber)'
	)
	for w in "${wheres[@]}"; do
		run test-tool cap fastcmp "$req" "$w" <"$f"
		assert_success
		assert_output --regexp '^same 1200 offers, [0-9]+ fast$'
	done
	for r in "${ranks[@]}"; do
		run test-tool cap fastcmp "$req" "" "$r" <"$f"
		assert_success
		assert_output --regexp '^same 1200 offers, [0-9]+ fast$'
	done
	run test-tool cap fastcmp "$req" "${wheres[0]}" "${ranks[0]}" <"$f"
	assert_success
	assert_output --regexp '^same 1200 offers, [0-9]+ fast$'
	# the benchmark's where and rank are answered without jq for most
	fast=$(awk '{ print $4 }' <<<"$output")
	[ "$fast" -gt 1500 ]
}

@test "an expression outside the fast forms runs in jq only, with the same answers" {
	f=$(mixed_offers)
	for w in '.cpu.mhz // 0 > 2000' 'if .cpu.mhz then true else false end' '.gpus | length > 1' \
		 '.labels["tier"] == "gold"' '.cpu.mhz as $m | $m > 2000' '.cpu.mhz > 2000 and (.cpu.mhz | . > 3)' \
		 '"\(.cpu.mhz)" == "2500"' '.cpu.mhz == 2500 == true'; do
		run test-tool cap fastcmp '{"cpu":{"cores":1}}' "$w" <"$f"
		[ "$status" -eq 0 ] || [ "$status" -eq 65 ]	# the last one does not compile
		[ "$status" -eq 65 ] || assert_output --regexp '^same 1200 offers, [0-9]+ fast$'
	done
	# nothing of these is fast, except the one with a pipe to a comparison
	run test-tool cap fastcmp '{"cpu":{"cores":1}}' '.gpus | length > 1' <"$f"
	assert_output 'same 1200 offers, 0 fast'
}

@test "nunet-match with a where and a rank prints what the same jq filter does, on 4000 random offers" {
	gen-offers 4000 23 >"$BATS_TEST_TMPDIR/o.jsonl"
	req='{"cpu":{"cores":8,"arch":"x86_64"},"ram":{"size":"16G"},"executors":["docker"],
	      "location":{"accept":[{"continent":"EU"},{"continent":"NA"}]},"price":{"max":{"cpu_second":"20"}},
	      "where":".cpu.mhz >= 2500 and .labels.tier != \"bronze\"",
	      "rank":".cpu.score.multi / (.price.cpu_second | tonumber)"}'
	run nunet-match "$req" "$BATS_TEST_TMPDIR/o.jsonl"
	assert_success
	mine=$output
	theirs=$(jq -n -c '[inputs | select(.cpu.cores >= 8 and .cpu.arch == "x86_64" and .ram.size >= 17179869184
		and (.executors | index("docker")) and (.location.continent == "EU" or .location.continent == "NA")
		and (.price.cpu_second | tonumber) <= 20)
		| select(.cpu.mhz >= 2500 and .labels.tier != "bronze")
		| {offer: ., score: (.cpu.score.multi / (.price.cpu_second | tonumber))}] | sort_by(-.score) | .[]' \
		"$BATS_TEST_TMPDIR/o.jsonl")
	[ "$(wc -l <<<"$mine")" -gt 20 ]
	assert_equal "$(jq -c '[.offer, .score]' <<<"$mine")" "$(jq -c '[.offer, .score]' <<<"$theirs")"
}
