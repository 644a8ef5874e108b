#!/usr/bin/env bats
# Checkpoint and migrate: an allocation's state directory committed as a
# snapshot (nunet-run checkpoint), and the allocation moved to another node
# of a private swarm on loopback (nunet-run migrate --to DID): the target
# says what it has, only missing objects travel (in pieces, under the
# target's /alloc token), the target restores the state and runs the same
# spec, and the source stops its copy only then.

load lib/common
bats_require_minimum_version 1.5.0

declare -gA DID ADDR HOME_OF
# on NAME CMD...: run CMD against node NAME
on() {
	local n=$1
	shift
	NUNET_HOME=${HOME_OF[$n]} "$@"
}
running() {
	[ "$(on "$1" nunet-run status "$2" 2>/dev/null | jq -r .state)" = running ]
}

setup() {
	common_setup
	nunet-node --home "$BATS_TEST_TMPDIR/a" init --new-swarm >/dev/null
	nunet-node --home "$BATS_TEST_TMPDIR/b" init --swarm-key "$BATS_TEST_TMPDIR/a/swarm.key" >/dev/null
	swarm_node a
	swarm_node b --bootstrap "${DID[a]}@${ADDR[a]}"
	within 10 'test "$(peer_state a "${DID[b]}")" = alive'
	within 10 'test "$(peer_state b "${DID[a]}")" = alive'
	# each node lets the other start and move allocations on it
	nunet-node --home "${HOME_OF[b]}" cap grant "${DID[a]}" --cap /alloc >"$BATS_TEST_TMPDIR/a-on-b.tok"
	nunet-node --home "${HOME_OF[a]}" cap grant "${DID[b]}" --cap /alloc >"$BATS_TEST_TMPDIR/b-on-a.tok"
}

teardown() {
	allocs_teardown "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
}

# A job that keeps a counter in its state directory, one step a second.
COUNTER='mkdir -p st; n=$(cat st/n 2>/dev/null || echo 0); while :; do n=$((n+1)); echo $n >st/n.tmp; mv st/n.tmp st/n; sleep 0.2; done'

@test "checkpoint commits the state directory; a job without one is refused" {
	on a nunet-run -d --id k1 --state-dir st -- sh -c "$COUNTER" >/dev/null
	within 20 'running a k1'
	within 20 '[ -s "${HOME_OF[a]}/alloc/k1/st/n" ]'
	run on a nunet-run checkpoint k1
	assert_success
	c=$(jq -r .commit <<<"$output")
	[[ "$c" =~ ^[0-9a-f]{40}$ ]]
	assert_equal "$(git --git-dir "${HOME_OF[a]}/snapshots.git" rev-parse refs/nunet/k1)" "$c"
	git --git-dir "${HOME_OF[a]}/snapshots.git" show "$c:n" | grep -qE '^[0-9]+$'
	on a nunet-run -d --id k2 -- sleep 30 >/dev/null
	run --separate-stderr on a nunet-run checkpoint k2
	assert_failure 65
	assert_equal "$stderr" "nunet-run: error: allocation k2 has no state directory (start it with --state-dir)"
}

@test "migrate moves the allocation with its state; the source stops only after the target runs" {
	on a nunet-run -d --id m1 --state-dir st -- sh -c "$COUNTER" >/dev/null
	within 20 'running a m1'
	within 20 '[ "$(cat "${HOME_OF[a]}/alloc/m1/st/n" 2>/dev/null || echo 0)" -ge 3 ]'
	# extra state: 4 MiB that must arrive intact
	head -c 4194304 /dev/urandom >"${HOME_OF[a]}/alloc/m1/st/blob"
	sum=$(sha256sum <"${HOME_OF[a]}/alloc/m1/st/blob")
	# without a token the target refuses, and nothing moves
	run --separate-stderr on a nunet-run migrate m1 --to "${DID[b]}"
	assert_failure
	[[ "$stderr" == *"may not invoke /alloc/migrate/haves"* ]] || { echo "$stderr"; false; }
	running a m1
	# both nodes share this machine (and its cgroups): the copy takes
	# another id (--as); between machines it keeps its own
	run on a nunet-run migrate m1 --to "${DID[b]}" --as m1b --cap "$BATS_TEST_TMPDIR/a-on-b.tok"
	assert_success
	assert_equal "$(jq -r '.target_id, .to' <<<"$output")" "m1b
${DID[b]}"
	jq -e '.pack_bytes > 4194304 and .chunks >= 9 and .haves == 0' <<<"$output"
	# the target runs it, from the restored state: the counter goes on
	running b m1b
	assert_equal "$(sha256sum <"${HOME_OF[b]}/alloc/m1b/st/blob")" "$sum"
	moved=$(git --git-dir "${HOME_OF[a]}/snapshots.git" show "$(jq -r .commit <<<"$output"):n")
	within 20 '[ "$(cat "${HOME_OF[b]}/alloc/m1b/st/n")" -gt "$moved" ]'
	# the source's copy was cancelled after that
	within 20 '[ "$(on a nunet-run status m1 | jq -r .state)" = killed ]'
	assert_equal "$(on b nunet-run status m1b | jq -r '.state_dir, .spec.command[0]')" "st
sh"
}

@test "only the objects the target lacks travel back: 1 MiB changed in 24 MiB moves about 1 MiB" {
	on a nunet-run -d --id r1 --state-dir st -- sh -c 'mkdir -p st; sleep 600' >/dev/null
	within 20 'running a r1'
	for i in $(seq 1 24); do head -c 1048576 /dev/urandom >"${HOME_OF[a]}/alloc/r1/st/f$i"; done
	run on a nunet-run migrate r1 --to "${DID[b]}" --as r1m --cap "$BATS_TEST_TMPDIR/a-on-b.tok"
	assert_success
	first=$(jq -r .pack_bytes <<<"$output")
	[ "$first" -gt 25165824 ]
	within 20 'running b r1m'
	# 1 MiB changes on b, then the allocation comes back to a, which still
	# has every other object from before
	head -c 1048576 /dev/urandom >"${HOME_OF[b]}/alloc/r1m/st/f7"
	run on b nunet-run migrate r1m --to "${DID[a]}" --as r1b --cap "$BATS_TEST_TMPDIR/b-on-a.tok"
	assert_success
	jq -e '.haves >= 1' <<<"$output"
	back=$(jq -r .pack_bytes <<<"$output")
	sent=$(jq -r .sent_bytes <<<"$output")
	echo "first $first back $back sent $sent" >&3
	[ "$back" -gt 1048576 ]
	[ "$back" -lt 2097152 ]
	running a r1b
	cmp "${HOME_OF[a]}/alloc/r1b/st/f7" "${HOME_OF[b]}/alloc/r1m/st/f7"
	cmp "${HOME_OF[a]}/alloc/r1b/st/f3" "${HOME_OF[a]}/alloc/r1/st/f3"
}

@test "migrate refuses what cannot move, and a bad transfer starts nothing on the target" {
	on a nunet-run -d --id n1 -- sleep 60 >/dev/null
	within 20 'running a n1'
	run --separate-stderr on a nunet-run migrate n1 --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/a-on-b.tok"
	assert_failure 65
	[[ "$stderr" == *"has no state directory"* ]]
	run --separate-stderr on a nunet-run migrate n1 --to nobody
	assert_failure 64
	run --separate-stderr on a nunet-run migrate nosuch --to "${DID[b]}"
	assert_failure 65
	# the target's behaviors check what they are sent
	export NUNET_HOME=${HOME_OF[a]}
	run nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/a-on-b.tok" /alloc/migrate/chunk '{"xfer":"nope","offset":0,"data":"AA=="}'
	assert_failure 65
	assert_output --partial "no transfer"
	x=$(nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/a-on-b.tok" /alloc/migrate/receive \
		"{\"commit\":\"$(printf 'a%.0s' {1..40})\",\"size\":10}" | jq -r .xfer)
	run nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/a-on-b.tok" /alloc/migrate/chunk "{\"xfer\":\"$x\",\"offset\":5,\"data\":\"AA==\"}"
	assert_failure 65
	assert_output --partial "offset 5: expected 0"
	run nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/a-on-b.tok" /alloc/migrate/start "{\"xfer\":\"$x\",\"id\":\"z1\",\"spec\":{\"command\":[\"true\"]}}"
	assert_failure 65
	assert_output --partial "0 of 10 bytes"
	# a pack that is not one: the allocation fails while restoring, runs nothing
	run nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/a-on-b.tok" /alloc/migrate/chunk "{\"xfer\":\"$x\",\"offset\":0,\"data\":\"$(head -c 10 /dev/urandom | base64)\"}"
	assert_success
	run nunet-send --to "${DID[b]}" --cap "$BATS_TEST_TMPDIR/a-on-b.tok" /alloc/migrate/start "{\"xfer\":\"$x\",\"id\":\"z1\",\"state_dir\":\"st\",\"spec\":{\"command\":[\"touch\",\"ran\"]}}"
	assert_success
	within 20 '[ "$(on b nunet-run status z1 | jq -r .state)" = failed ]'
	on b nunet-run status z1 | jq -e '.reason | test("restoring the state")'
	[ ! -e "${HOME_OF[b]}/alloc/z1/ran" ]
}

@test "nunet-run(1) example: checkpoint a counter and move it to another node" {
	export NUNET_HOME=${HOME_OF[a]}
	cd "$BATS_TEST_TMPDIR"
	cp a-on-b.tok b.tok
	nunet-run -d --id c1 --state-dir st -- sh -c \
		'mkdir -p st; while :; do date +%s >st/t; sleep 1; done' >/dev/null
	within 20 'running a c1'
	run bash -c 'nunet-run checkpoint c1 | jq -r .state_dir'
	assert_output st
	run bash -c "nunet-run migrate c1 --to ${DID[b]} --as c2 --cap b.tok |
		jq -r .target_id"
	assert_output c2
}
