#!/usr/bin/env bats
# nunet-match: requirements against offers, best first.

load lib/common
bats_require_minimum_version 1.5.0

SHARE="$NUNET_SRC/share/nunet"

offers() {
	cat "$SHARE"/capability/small-vps.json "$SHARE"/capability/gpu-workstation.json \
		"$SHARE"/capability/arm-edge.json | jq -c . >"$BATS_TEST_TMPDIR/offers.jsonl"
	echo "$BATS_TEST_TMPDIR/offers.jsonl"
}

models() {
	jq -r '.offer.cpu.model + " " + (.score|tostring)'
}

@test "help goes to stdout, a bad option is a usage error" {
	run --separate-stderr nunet-match --help
	assert_success
	assert_output 'usage: nunet-match [--explain] [--limit N] [--where JQ] [--rank JQ] REQUIREMENTS [OFFERS ...]'
	run --separate-stderr nunet-match --bogus x
	assert_failure 64
	assert_output ''
	assert_equal "${stderr_lines[-1]}" 'usage: nunet-match [--explain] [--limit N] [--where JQ] [--rank JQ] REQUIREMENTS [OFFERS ...]'
	run --separate-stderr nunet-match
	assert_failure 64
	run nunet-match --version
	assert_success
	assert_output --regexp '^nunet-match [0-9]+\.[0-9]+'
	run --separate-stderr nunet-match --limit 0 '{}'
	assert_failure 64
	assert_equal "${stderr_lines[0]}" "nunet-match: error: --limit: expected a whole number from 1 to 100000000, not '0'"
}

@test "web service: feasible offers, cheapest first (man page example)" {
	f=$(offers)
	run nunet-match "$SHARE/requirements/web-service.json" "$f"
	assert_success
	run models <<<"$output"
	assert_output "AMD EPYC 7B13 -10.002777777777778
AMD Ryzen 9 7950X -30.002777777777776"
}

@test "each output line is {offer, score} with the offer unchanged" {
	f=$(offers)
	run nunet-match "$SHARE/requirements/web-service.json" "$f"
	first=$(head -1 <<<"$output")
	run jq -c 'keys' <<<"$first"
	assert_output '["offer","score"]'
	run jq -cS .offer <<<"$first"
	assert_output "$(jq -cS . "$SHARE/capability/small-vps.json")"
}

@test "offers from stdin; inline requirements; nothing matches is exit 1" {
	f=$(offers)
	run nunet-match '{"cpu":{"cores":4,"arch":"aarch64"}}' <"$f"
	assert_success
	run models <<<"$output"
	assert_output 'Cortex-A76 -8'
	run --separate-stderr nunet-match '{"cpu":{"cores":64}}' "$f"
	assert_failure 1
	assert_output ''
	assert_equal "$stderr" ''
}

@test "gpu training: gpus, features, labels, where and rank (man page example)" {
	f=$(offers)
	run nunet-match "$SHARE/requirements/gpu-training.json" "$f"
	assert_success
	run models <<<"$output"
	assert_output 'AMD Ryzen 9 7950X -58.2'
}

@test "--rank replaces the default; --where adds to the requirements" {
	f=$(offers)
	run nunet-match --rank '.cpu.score.multi' '{"ram":{"size":"4G"}}' "$f"
	assert_success
	run models <<<"$output"
	assert_output 'AMD Ryzen 9 7950X 31800
Cortex-A76 3050
AMD EPYC 7B13 2290'
	run nunet-match --where '.location.continent == "EU"' --rank '.cpu.mhz' '{"ram":{"size":"4G"}}' "$f"
	run models <<<"$output"
	assert_output 'AMD Ryzen 9 7950X 4500
AMD EPYC 7B13 2445'
	run nunet-match --where '.cpu.cores > 2' '{"where":".location.continent == \"EU\""}' "$f"
	run models <<<"$output"
	assert_output 'AMD Ryzen 9 7950X -12'
}

@test "two-sided: the offer's where must hold on the requirements" {
	f=$(offers)
	# the workstation demands jobs that accept its GPU price of 90
	run nunet-match '{"price":{"max":{"gpu_second":"50"}}}' "$f"
	run models <<<"$output"
	assert_output 'Cortex-A76 -2
AMD EPYC 7B13 -4'
	run nunet-match '{"price":{"max":{"gpu_second":"100"}}}' "$f"
	assert_line --index 2 --partial 'AMD Ryzen 9 7950X'
}

@test "structured constraints one by one" {
	f=$(offers)
	n() { nunet-match "$1" "$f" | jq -r .offer.cpu.model | paste -sd, -; }
	assert_equal "$(n '{"executors":["vm","native"]}')" 'Cortex-A76,AMD EPYC 7B13,AMD Ryzen 9 7950X'
	assert_equal "$(n '{"executors":["vm"]}')" 'AMD Ryzen 9 7950X'
	assert_equal "$(n '{"features":["netns","namespaces"]}')" 'AMD EPYC 7B13,AMD Ryzen 9 7950X'
	assert_equal "$(n '{"features":["kvm","cgroup1"]}')" ''
	assert_equal "$(n '{"kernel":"6.1.10"}')" 'Cortex-A76,AMD Ryzen 9 7950X'
	assert_equal "$(n '{"location":{"reject":[{"country":"nl"},{"continent":"NA"}]}}')" 'AMD EPYC 7B13'
	assert_equal "$(n '{"location":{"accept":[{"city":"Austin"},{"country":"DE"}]}}')" 'Cortex-A76,AMD EPYC 7B13'
	assert_equal "$(n '{"gpus":{"vendor":"amd"}}')" ''
	assert_equal "$(n '{"gpus":{"vram":"23G"}}')" 'AMD Ryzen 9 7950X'
	assert_equal "$(n '{"gpus":{"vram":"24G"}}')" ''
	assert_equal "$(n '{"cpu":{"cores":0.5,"threads":4}}')" 'Cortex-A76,AMD Ryzen 9 7950X'
	assert_equal "$(n '{"cpu":{"score":{"multi":3000}},"ram":{"bandwidth":"16G"}}')" 'Cortex-A76,AMD Ryzen 9 7950X'
	assert_equal "$(n '{"disk":{"size":"1T","write":"1G"}}')" 'AMD Ryzen 9 7950X'
	assert_equal "$(n '{"labels":{"tier":"gold","owner":"lab-7"}}')" 'AMD Ryzen 9 7950X'
	assert_equal "$(n '{"price":{"currency":"USD"}}')" ''
	assert_equal "$(n '{"price":{"max":{"cpu_second":"4"}}}')" 'Cortex-A76,AMD EPYC 7B13'
}

@test "--limit keeps the best N, the same as sorting everything" {
	gen-offers 3000 7 >"$BATS_TEST_TMPDIR/o.jsonl"
	req='{"cpu":{"cores":8},"ram":{"size":"16G"},"executors":["docker"]}'
	run nunet-match "$req" "$BATS_TEST_TMPDIR/o.jsonl"
	assert_success
	all=$output
	run nunet-match --limit 5 "$req" "$BATS_TEST_TMPDIR/o.jsonl"
	assert_success
	assert_equal "$output" "$(head -5 <<<"$all")"
	assert_equal "${#lines[@]}" 5
}

@test "the same offers as jq selects, on 3000 random offers" {
	gen-offers 3000 11 >"$BATS_TEST_TMPDIR/o.jsonl"
	req='{"cpu":{"cores":4,"arch":"x86_64"},"ram":{"size":"8G"},"gpus":{"count":1,"vendor":"nvidia","vram":"8G"},
	      "executors":["docker","vm"],"features":["netns"],"location":{"accept":[{"continent":"EU"},{"country":"US"}]},
	      "price":{"max":{"cpu_second":"30"}},"kernel":"5.10","labels":{"tier":"gold"}}'
	mine=$(nunet-match "$req" "$BATS_TEST_TMPDIR/o.jsonl" | jq -c .offer | sort)
	theirs=$(jq -c 'select(.cpu.cores >= 4 and .cpu.arch == "x86_64" and .ram.size >= 8589934592
		and ([.gpus[] | select(.vendor == "nvidia" and .vram >= 8589934592)] | length) >= 1
		and (.executors | index("docker") or index("vm")) and (.features | index("netns"))
		and (.location.continent == "EU" or .location.country == "US")
		and (.price.cpu_second | tonumber) <= 30 and (.kernel | split(".") | map(tonumber)) >= [5,10]
		and .labels.tier == "gold")' "$BATS_TEST_TMPDIR/o.jsonl" | sort)
	[ -n "$mine" ]
	assert_equal "$mine" "$theirs"
}

@test "several files; an unreadable one is reported, the others still match" {
	f=$(offers)
	run --separate-stderr nunet-match '{"cpu":{"cores":16}}' "$f" "$BATS_TEST_TMPDIR/nope" "$f"
	assert_failure 74
	assert_equal "$stderr" "nunet-match: error: cannot open '$BATS_TEST_TMPDIR/nope': No such file or directory"
	assert_equal "${#lines[@]}" 2
}

@test "half a core offered matches half a core needed (nunet-capability(5) example)" {
	run nunet-match '{"cpu":{"cores":0.5}}' <<<'{"v":1,"cpu":{"cores":0,"millicores":500},"ram":{"size":1073741824}}'
	assert_success
	assert_output '{"offer":{"v":1,"cpu":{"cores":0,"millicores":500},"ram":{"size":1073741824}},"score":0}'
	run nunet-match --explain '{"cpu":{"cores":0.75}}' <<<'{"v":1,"cpu":{"cores":0,"millicores":500}}'
	assert_failure 1
	assert_output '{"offer":{"v":1,"cpu":{"cores":0,"millicores":500}},"rejected":["cpu.millicores: need 750, have 500"]}'
}

@test "the man pages are clean under mandoc -Tlint" {
	skip_unless "command -v mandoc" "mandoc not installed"
	run mandoc -Tlint -Wwarning "$NUNET_SRC/man/nunet-match.1" "$NUNET_SRC/man/nunet-capability.5"
	assert_success
	assert_output ''
}

@test "the usage text equals the man page's SYNOPSIS" {
	skip_unless "command -v mandoc" "mandoc not installed"
	syn=$(mandoc -Tascii "$NUNET_SRC/man/nunet-match.1" | col -b | sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' | tr -s ' \t\n' ' ' | sed 's/^ //;s/ $//')
	assert_equal "usage: $syn" "$(nunet-match --help)"
}

@test "nunet-bench's document passes the schema check and matches a modest job" {
	skip_unless "command -v nunet-bench" "nunet-bench not built"
	nunet-bench --quick >"$BATS_TEST_TMPDIR/me.json" 2>/dev/null
	run test-tool cap check <"$BATS_TEST_TMPDIR/me.json"
	assert_output ok
	run nunet-match '{"cpu":{"cores":1},"ram":{"size":"64M"}}' "$BATS_TEST_TMPDIR/me.json"
	assert_success
	run nunet-match --explain '{"cpu":{"cores":100000}}' "$BATS_TEST_TMPDIR/me.json"
	assert_failure 1
	assert_output --partial '"rejected":["cpu.cores: need 100000, have '
}

@test "cores with three decimals (millicores from an ensemble) match exactly" {
	o='{"v":1,"cpu":{"cores":1,"millicores":MILLI},"ram":{"size":1073741824}}'
	for c in 1.007 0.001 2.999 16.383; do
		milli=$(awk -v c="$c" 'BEGIN { printf "%d", c * 1000 + 0.5 }')
		run --separate-stderr nunet-match "{\"cpu\":{\"cores\":$c}}" <<<"${o/MILLI/$milli}"
		assert_success
		run --separate-stderr nunet-match --explain "{\"cpu\":{\"cores\":$c}}" <<<"${o/MILLI/$((milli - 1))}"
		assert_failure 1
		assert_equal "$(jq -c .rejected <<<"$output")" "[\"cpu.millicores: need $milli, have $((milli - 1))\"]"
	done
	run --separate-stderr nunet-match '{"cpu":{"cores":1.0001}}' </dev/null
	assert_failure 64
	assert_equal "$stderr" 'nunet-match: error: cpu.cores: expected a non-negative number (at most 3 decimals)'
}
