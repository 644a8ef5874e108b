#!/usr/bin/env bats
# Fuzz regressions: every fuzz target in t/fuzz/ is linked with
# t/fuzz/replay.c into a plain program (no clang needed) that runs it on
# its seed corpus t/fuzz/corpus/NAME/ and on every crash ever found,
# t/fuzz/regress/NAME/.  The programs are built against this build's
# libcommon with the same sanitizers, so the sanitized suite re-checks
# memory errors and leaks too.  `make fuzz` does the fuzzing itself.
load lib/common

# the libraries libcommon needs: the Makefile's list, so that one change there
# reaches the replay programs too
FUZZ_PKGS=$(sed -n 's/^PKGS *:= *//p' "$NUNET_SRC/Makefile")

# The replay programs live in the build's t/helper/fuzz-replay/ (ignored by
# git in an in-tree build, like every built test helper).
R="$NUNET_BUILD/t/helper/fuzz-replay"

# Build $R/replay-NAME for each target that changed.
setup_file() {
	local lib="$NUNET_BUILD/lib/libcommon.a" cc=${CC:-cc} san="" out t f
	command -v "$cc" >/dev/null || return 0
	[ -f "$lib" ] || return 0
	if nm -A "$lib" 2>/dev/null | grep -q '__asan_'; then
		san="$san,address"
	fi
	if nm -A "$lib" 2>/dev/null | grep -q '__ubsan_handle'; then
		san="$san,undefined"
	fi
	if readelf -p .comment "$lib" 2>/dev/null | grep -q clang; then
		cc=clang
	fi
	local flags="-O1 -g -std=c11 -D_GNU_SOURCE -I$NUNET_SRC/lib -I$NUNET_SRC/t/fuzz -pthread"
	[ -n "$san" ] && flags="$flags -fsanitize=${san#,} -fno-sanitize-recover=all -fno-omit-frame-pointer"
	out="$R"
	mkdir -p "$out"
	local pids=()
	for f in "$NUNET_SRC"/t/fuzz/*.c; do
		t=$(basename "$f" .c)
		[ "$t" = replay ] && continue
		if [ "$out/replay-$t" -nt "$f" ] && [ "$out/replay-$t" -nt "$lib" ] &&
		   [ "$out/replay-$t" -nt "$NUNET_SRC/t/fuzz/fuzz.h" ] &&
		   [ "$out/replay-$t" -nt "$NUNET_SRC/t/fuzz/replay.c" ]; then
			continue
		fi
		# two at a time: CI has two cores
		if [ ${#pids[@]} -ge 2 ]; then
			wait "${pids[0]}"
			pids=("${pids[@]:1}")
		fi
		$cc $flags $(pkg-config --cflags $FUZZ_PKGS) -o "$out/replay-$t.tmp" "$f" \
			"$NUNET_SRC/t/fuzz/replay.c" "$lib" $(pkg-config --libs $FUZZ_PKGS) -ljq -lm \
			2>"$out/replay-$t.log" && mv "$out/replay-$t.tmp" "$out/replay-$t" &
		pids+=($!)
	done
	wait
}

targets() {
	local f
	for f in "$NUNET_SRC"/t/fuzz/*.c; do
		f=$(basename "$f" .c)
		[ "$f" = replay ] || echo "$f"
	done
}

@test "fuzz: every target builds as a replay program" {
	command -v "${CC:-cc}" >/dev/null || skip "no C compiler to build the replay programs"
	local t missing=""
	for t in $(targets); do
		[ -x "$R/replay-$t" ] ||
			missing="$missing $t ($(cat "$R/replay-$t.log" 2>/dev/null | head -5))"
	done
	assert_equal "$missing" ""
}

@test "fuzz: every target has a seed corpus" {
	local t empty=""
	for t in $(targets); do
		[ -n "$(ls -A "$NUNET_SRC/t/fuzz/corpus/$t" 2>/dev/null)" ] || empty="$empty $t"
	done
	assert_equal "$empty" ""
}

@test "fuzz: seed corpora and regression inputs replay without a crash, leak or failed check" {
	command -v "${CC:-cc}" >/dev/null || skip "no C compiler to build the replay programs"
	local t dirs failed="" n=0
	for t in $(targets); do
		dirs="$NUNET_SRC/t/fuzz/corpus/$t"
		[ -d "$NUNET_SRC/t/fuzz/regress/$t" ] && dirs="$dirs $NUNET_SRC/t/fuzz/regress/$t"
		if ! "$R/replay-$t" $dirs >"$BATS_TEST_TMPDIR/$t.out" 2>&1; then
			failed="$failed $t"
			echo "--- $t" >&2
			tail -30 "$BATS_TEST_TMPDIR/$t.out" >&2
		fi
		n=$((n + 1))
	done
	assert_equal "$failed" ""
	[ "$n" -ge 10 ]
}

@test "fuzz: a replay program says how many inputs it ran and fails on a missing one" {
	command -v "${CC:-cc}" >/dev/null || skip "no C compiler to build the replay programs"
	run "$R/replay-json" "$NUNET_SRC/t/fuzz/corpus/json"
	assert_success
	assert_output "replay-json: $(ls "$NUNET_SRC/t/fuzz/corpus/json" | wc -l) inputs"
	run "$R/replay-json" "$BATS_TEST_TMPDIR/nothing"
	assert_equal "$status" 66
}

@test "fuzz: seed corpora and regression inputs replay under valgrind without an error or leak" {
	command -v valgrind >/dev/null || skip "valgrind is not installed"
	command -v "${CC:-cc}" >/dev/null || skip "no C compiler to build the replay programs"
	if nm "$R/replay-json" 2>/dev/null | grep -q '__asan_'; then
		skip "a sanitized build: valgrind cannot run AddressSanitizer programs"
	fi
	local t dirs failed=""
	for t in $(targets); do
		dirs="$NUNET_SRC/t/fuzz/corpus/$t"
		[ -d "$NUNET_SRC/t/fuzz/regress/$t" ] && dirs="$dirs $NUNET_SRC/t/fuzz/regress/$t"
		if ! valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
			--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
			--suppressions="$NUNET_SRC/t/valgrind.supp" \
			"$R/replay-$t" $dirs >"$BATS_TEST_TMPDIR/$t.out" 2>&1; then
			failed="$failed $t"
			echo "--- $t" >&2
			head -40 "$BATS_TEST_TMPDIR/$t.out" >&2
		fi
	done
	assert_equal "$failed" ""
}

# Found by the json and pay targets: libjq 1.6 took a raw NUL byte inside
# a JSON string as U+0000 (and leaked when the string was cut short), so
# two different byte strings could read as one document.  nn_json_parse
# now refuses it.
@test "fuzz regression: a raw NUL byte is not JSON" {
	run test-tool canon < <(printf '["a\0b"]\n{"x\0":1}\n[1]\n')
	assert_equal "$status" 65
	assert_line --index 0 'error: line 1: not JSON: NUL byte at offset 3'
	assert_line --index 1 'error: line 2: not JSON: NUL byte at offset 3'
	assert_line --index 2 '[1]'
}

# Found by the cap target (and then by every target that parses JSON):
# libjq 1.6 leaks a string that follows a complete value with no separator
# ("[1\"x\"]"): a peer could leak up to the line cap with every line it
# sent.  nn_json_parse refuses it before libjq sees it; the sanitized suite
# replays t/fuzz/regress/cap/ to check nothing leaks.
@test "fuzz regression: a string right after a value is refused, not leaked" {
	run test-tool canon < <(printf '[1"x"]\n{"a":1 "b":2}\n[{} "x"]\n{"a":"\\"b"}\n')
	assert_equal "$status" 65
	assert_line --index 0 'error: line 1: not JSON: a string right after a value at offset 2'
	assert_line --index 1 'error: line 2: not JSON: a string right after a value at offset 7'
	assert_line --index 2 'error: line 3: not JSON: a string right after a value at offset 4'
	assert_line --index 3 '{"a":"\"b"}'
}

# Found by the match target: an offer that repeats a member ("price" twice,
# the second without cpu_second) was read by the scanner as the two merged
# and by nn_match_eval as jq has it (the last whole), so the fast path and
# jq disagreed on whether it matched.  Such an offer is now refused.
@test "fuzz regression: an offer that repeats a member is refused, not read two ways" {
	echo '{"v":1,"price":{"currency":"NTX","max":{"cpu_second":"20"}}}' >"$BATS_TEST_TMPDIR/req"
	run --separate-stderr nunet-match "$BATS_TEST_TMPDIR/req" < <(printf '%s\n' \
		'{"v":1,"price":{"currency":"NTX","cpu_second":"52"},"price":{"currency":"NTX"}}' \
		'{"v":1,"price":{"currency":"NTX","cpu_second":"5"}}')
	assert_success
	assert_equal "$(jq -r .offer.price.cpu_second <<<"$output")" 5
	assert_equal "$stderr" "nunet-match: warn: stdin: line 1: 'price' appears twice"
}

# The same inside the objects of the vocabulary: {"cores":16,"cores":null}
# was 16 cores to the scanner (a null left the first in place) and none to
# jq and nn_match_eval (the last whole); a repeated label was the last one
# to both, but is just as ambiguous to a reader.  Refused at every level.
@test "fuzz regression: a member repeated inside cpu, score, ram, a gpu, location, price or labels is refused" {
	run --separate-stderr nunet-match '{"cpu":{"cores":8}}' < <(printf '%s\n' \
		'{"v":1,"cpu":{"cores":16,"cores":null}}' \
		'{"v":1,"cpu":{"cores":16,"score":{"multi":1,"multi":2}}}' \
		'{"v":1,"cpu":{"cores":16},"gpus":[{"vram":1},{"vram":1,"vram":null}]}' \
		'{"v":1,"cpu":{"cores":16},"location":{"city":"Oslo","city":"Bergen"}}' \
		'{"v":1,"cpu":{"cores":16},"price":{"cpu_second":"1","cpu_second":null}}' \
		'{"v":1,"cpu":{"cores":16},"labels":{"tier":"gold","ti\u0065r":"bronze"}}' \
		'{"v":1,"cpu":{"cores":16,"model":"a","model":"b"},"labels":{"tier":"gold"}}')
	assert_success
	assert_equal "$(jq -r .offer.cpu.model <<<"$output")" b
	assert_equal "$stderr" "nunet-match: warn: stdin: line 1: 'cpu.cores' appears twice
nunet-match: warn: stdin: line 2: 'cpu.score.multi' appears twice
nunet-match: warn: stdin: line 3: 'gpus[1].vram' appears twice
nunet-match: warn: stdin: line 4: 'location.city' appears twice
nunet-match: warn: stdin: line 5: 'price.cpu_second' appears twice
nunet-match: warn: stdin: line 6: 'labels.tier' appears twice"
}
