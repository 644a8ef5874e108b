#!/usr/bin/env bats
# Storage through git+file:// URLs against local repositories: a clone
# checked out at the pinned commit and verified, refs resolved to commits,
# missing refs and repositories refused with nothing left behind, and
# outputs committed onto a branch.

load lib/common
bats_require_minimum_version 1.5.0

gitc() {
	git -c user.name=t -c user.email=t@example.org -c init.defaultBranch=main "$@"
}

setup() {
	common_setup
	# Debian's libgit2 1.5.1 leaves pcre2 match data behind when it builds
	# a pack (clone, pack, migrate): not ours to free, so not ours to report.
	printf 'leak:libpcre2-8.so\n' >"$BATS_TEST_TMPDIR/lsan.supp"
	export LSAN_OPTIONS="suppressions=$BATS_TEST_TMPDIR/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
	cd "$BATS_TEST_TMPDIR"
	gitc init -q src
	echo one >src/a.txt
	mkdir src/sub
	printf '#!/bin/sh\necho hi\n' >src/sub/run.sh
	chmod +x src/sub/run.sh
	gitc -C src add -A
	gitc -C src commit -qm one
	C1=$(git -C src rev-parse HEAD)
	echo two >src/a.txt
	gitc -C src commit -qam two
	gitc -C src tag v2
	C2=$(git -C src rev-parse HEAD)
	REPO="git+file://$PWD/src"
}

@test "fetch checks out the pinned commit, detached, and reports it" {
	run --separate-stderr nunet-store fetch "$REPO#$C1" out
	assert_success
	assert_equal "$(jq -r .commit <<<"$output")" "$C1"
	assert_equal "$(cat out/a.txt)" one
	[ -x out/sub/run.sh ]
	assert_equal "$(git -C out rev-parse HEAD)" "$C1"
	run git -C out symbolic-ref -q HEAD
	assert_failure	# detached
	assert_equal "$(git -C out status --porcelain)" ""
}

@test "a tag or branch name resolves to its commit" {
	run --separate-stderr nunet-store fetch "$REPO#v2" out
	assert_success
	assert_equal "$(jq -r .commit <<<"$output")" "$C2"
	assert_equal "$(cat out/a.txt)" two
	run --separate-stderr nunet-store fetch "$REPO#main" out2
	assert_success
	assert_equal "$(jq -r .commit <<<"$output")" "$C2"
}

@test "a ref that does not exist fails with 65 and leaves no directory" {
	run --separate-stderr nunet-store fetch "$REPO#no-such-ref" out
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: '$REPO#no-such-ref': no commit or ref 'no-such-ref'"
	[ ! -e out ]
	assert_equal "$(ls | grep -c part)" 0
}

@test "a commit id the repository lacks fails with 65" {
	missing=0123456789012345678901234567890123456789
	run --separate-stderr nunet-store fetch "$REPO#$missing" out
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: '$REPO#$missing': no commit $missing"
	[ ! -e out ]
}

@test "an unpinned git URL is refused" {
	run --separate-stderr nunet-store fetch "$REPO" out
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: '$REPO' is not pinned: add #COMMIT (or #BRANCH for an output)"
	[ ! -e out ]
}

@test "a sha256 on a git input is refused: the commit pins it" {
	run --separate-stderr nunet-store fetch --sha256 "$(printf 'a%.0s' $(seq 64))" "$REPO#$C1" out
	assert_equal "$status" 64
	assert_equal "$stderr" "nunet-store: error: '$REPO#$C1': a git input is pinned by its commit, not by a sha256"
	[ ! -e out ]
}

@test "a missing repository fails with 69 and leaves nothing" {
	run --separate-stderr nunet-store fetch "git+file://$PWD/nope#$C1" out
	assert_equal "$status" 69
	[[ "$stderr" == "nunet-store: error: cannot clone 'file://$PWD/nope': "* ]]
	[ ! -e out ]
	assert_equal "$(ls | grep -c part)" 0
}

@test "a destination that is a non-empty directory is refused" {
	mkdir out
	echo keep >out/file
	run --separate-stderr nunet-store fetch "$REPO#$C1" out
	assert_equal "$status" 74
	assert_equal "$(cat out/file)" keep
}

@test "with --base, a git destination must stay inside base" {
	mkdir alloc
	run nunet-store fetch --base alloc "$REPO#$C1" ../out
	assert_equal "$status" 65
	[ ! -e out ]
	run nunet-store fetch --base alloc "$REPO#$C1" inputs/code
	assert_success
	assert_equal "$(cat alloc/inputs/code/a.txt)" one
}

@test "put commits a directory onto a branch of a new bare repository" {
	mkdir results
	echo 42 >results/answer
	run --separate-stderr nunet-store put --message "job 1 results" results "git+file://$PWD/out.git#results"
	assert_success
	c=$(jq -r .commit <<<"$output")
	assert_equal "$(git -C out.git rev-parse results)" "$c"
	assert_equal "$(git -C out.git rev-parse --is-bare-repository)" true
	assert_equal "$(git -C out.git show results:answer)" 42
	assert_equal "$(git -C out.git log -1 --format=%s results)" "job 1 results"
}

@test "a second put on the branch has the first as parent" {
	mkdir results
	echo 1 >results/n
	first=$(nunet-store put results "git+file://$PWD/out.git#main" | jq -r .commit)
	echo 2 >results/n
	second=$(nunet-store put results "git+file://$PWD/out.git" | jq -r .commit)
	assert_equal "$(git -C out.git rev-parse "$second^")" "$first"
	assert_equal "$(git -C out.git show main:n)" 2
}

@test "put of one file commits it at the root of the tree" {
	echo data >report.txt
	run nunet-store put report.txt "git+file://$PWD/out.git#main"
	assert_success
	assert_equal "$(git -C out.git show main:report.txt)" data
}

@test "put to a remote git URL is refused with a clear message" {
	mkdir results
	run --separate-stderr nunet-store put results "git+https://example.org/r.git#main"
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: 'git+https://example.org/r.git#main': git outputs go to a local repository (git+file:///PATH#BRANCH)"
}
