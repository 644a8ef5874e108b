#!/usr/bin/env bats
# A deployment's snapshots outlive their provider (lib/orch.h, migrate.h):
# `nunet-run checkpoint` on the provider pushes what the orchestrator
# lacks of the new snapshot to it, which keeps it per deployment and
# allocation (node.db and snapshots.git: it survives a restart); when the
# provider is lost, the allocation placed on another node starts from that
# snapshot, fetched by the new provider before the job starts.  A real
# three-node swarm on loopback: a orchestrates (and runs nothing), b and c
# provide.
load lib/common
load lib/swarm

NODES="a b c"

converged() {	# every node sees the two others alive
	local n
	for n in $NODES; do
		[ "$(nunet-node --home "$(home $n)" peers | jq -s '[.[] | select(.state == "alive")] | length')" = 2 ] || return 1
	done
}

start_three() {
	local n boot=""
	export NUNET_SWARM_PROBE_MS=1000 NUNET_SWARM_SUSPECT_MS=3000
	for n in $NODES; do node_init "$(home $n)"; DID[$n]=$(nunet-node --home "$(home $n)" id); done
	for n in $NODES; do
		node_start "$(home $n)" --listen 127.0.0.1:0 $boot
		PID[$n]=$NODE_PID
		ADDR[$n]=$(jq -r .listen <<<"$READY_LINE")
		[ -n "$boot" ] || boot="--bootstrap ${DID[a]}@${ADDR[a]}"
		[ $n = a ] || swarm_onboard $n 1
	done
	swarm_tokens
	within 60 converged
}

where() { nunet-run status "$id" | jq -r '.allocations[] | select(.name == "ctr") | .provider'; }
alloc_of() { nunet-run status "$id" | jq -r '.allocations[] | select(.name == "ctr") | .alloc'; }
node_of() {
	local n
	for n in $NODES; do [ "${DID[$n]}" != "$1" ] || echo "$n"; done
}
# counter NODE ALLOC: the value the job last wrote there
counter() { cat "$(home "$1")/alloc/$2/st/n" 2>/dev/null || echo 0; }
# starts NODE ALLOC: the values the job started from, one per run
starts() { sed -n 's/^start //p' "$(home "$1")/alloc/$2/stdout.log" 2>/dev/null; }

# A service that keeps a counter in its state directory, one step each 0.2 s,
# and says what it started from.
COUNTER='mkdir -p st; n=$(cat st/n 2>/dev/null || echo 0); echo "start $n"; while :; do n=$((n+1)); echo $n >st/n.tmp; mv st/n.tmp st/n; sleep 0.2; done'

# commit_until_done NODE BODY: /public/deploy/snapshot/commit from NODE,
# asked again while pending; run's status, output and stderr are the last
commit_until_done() {
	local i
	for i in $(seq 300); do
		run --separate-stderr nunet-send --home "$(home $1)" --to "${DID[a]}" /public/deploy/snapshot/commit "$2"
		[ "$status" -eq 0 ] && jq -e .pending <<<"$output" >/dev/null || return 0
		sleep 0.1
	done
}

deploy_counter() {	# deploy_counter [CHECKPOINT-EVERY]
	jq -n --arg c "$COUNTER" --arg every "${1:-}" '{allocations:{ctr:{type:"service",command:["sh","-c",$c],state_dir:"st",
		resources:{cpu:1,ram:16777216}}},heartbeat:"300ms",deadline_ms:40000}
		| if $every != "" then .allocations.ctr.checkpoint = $every else . end' >"$BATS_TEST_TMPDIR/ctr.json"
	export NUNET_HOME=$(home a)
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/ctr.json"
	assert_success
	id=${lines[-1]}
	p=$(where) pn=$(node_of "$(where)") alloc=$(alloc_of)
	[ "$pn" = b ] || [ "$pn" = c ]
	[ "$pn" = b ] && qn=c || qn=b
}

@test "a provider killed: the allocation placed again starts from the last checkpoint its provider pushed" {
	start_three
	deploy_counter
	within 20 "[ \$(counter $pn $alloc) -ge 3 ]"
	# a restart on the same provider (the job killed, policy always) keeps
	# the state directory: the second run goes on from the counter
	kill -KILL "$(jq -r .pid "$(home $pn)/alloc/$alloc/native.json")"
	within 30 "[ \$(starts $pn $alloc | wc -l) -ge 2 ]"
	[ "$(starts $pn $alloc | sed -n 2p)" -ge 3 ]
	# the first checkpoint sends everything, 1 MiB of it in a blob
	head -c 1048576 /dev/urandom >"$(home $pn)/alloc/$alloc/st/blob"
	sum=$(sha256sum <"$(home $pn)/alloc/$alloc/st/blob")
	run --separate-stderr env NUNET_HOME="$(home $pn)" nunet-run checkpoint "$alloc"
	assert_success
	echo "first: $output"
	jq -e --arg a "${DID[a]}" '.pushed.to == $a and .pushed.haves == 0 and .pushed.pack_bytes > 1048576' <<<"$output"
	v1=$(counter $pn $alloc)
	within 20 "[ \$(counter $pn $alloc) -gt $v1 ]"
	# the second only what the orchestrator lacks: the blob stays home
	run --separate-stderr env NUNET_HOME="$(home $pn)" nunet-run checkpoint "$alloc"
	assert_success
	echo "second: $output"
	jq -e '.pushed.haves == 1 and .pushed.pack_bytes < 16384' <<<"$output"
	c2=$(jq -r .commit <<<"$output")
	echo "# checkpoint pushes: 1 MiB blob and counter, then counter only: $(jq .pushed.pack_bytes <<<"$output") bytes" >&3
	# the orchestrator holds it, per deployment and allocation
	assert_equal "$(git --git-dir "$(home a)/snapshots.git" rev-parse "refs/nunet/deploy/$id/ctr")" "$c2"
	v=$(git --git-dir "$(home a)/snapshots.git" show "$c2:n")
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot | .commit + " " + .provider')" "$c2 $p"
	# writes after the checkpoint are not part of it
	echo late >"$(home $pn)/alloc/$alloc/st/late"
	within 20 "[ \$(counter $pn $alloc) -gt $((v + 2)) ]"
	# the orchestrator restarted still keeps it
	kill -TERM "${PID[a]}"
	wait "${PID[a]}" || true
	node_start "$(home a)" --listen "${ADDR[a]}" --bootstrap "${DID[b]}@${ADDR[b]}"
	PID[a]=$NODE_PID
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot.commit')" "$c2"
	# the provider dies; the allocation moves to the other one
	kill -KILL "${PID[$pn]}"
	within 60 "[ \"\$(where)\" = \"${DID[$qn]}\" ] && [ \"\$(nunet-run status $id | jq -r '.allocations[0].state')\" = running ]"
	a2=$(alloc_of)
	within 20 "[ -n \"\$(starts $qn $a2)\" ]"
	# from the checkpoint: its counter, its blob, not the later write
	assert_equal "$(starts $qn "$a2" | head -1)" "$v"
	assert_equal "$(sha256sum <"$(home $qn)/alloc/$a2/st/blob")" "$sum"
	[ ! -e "$(home $qn)/alloc/$a2/st/late" ]
	# the orchestrator said so: which commit, how many bytes, to whom
	run env NUNET_HOME="$(home a)" nunet-node events --kind deploy.restore
	jq -e -s --arg c "$c2" --arg q "${DID[$qn]}" \
		'map(select(.fields.commit == $c and .fields.provider == $q and .fields.bytes > 1048576)) | length == 1' <<<"$output"
	echo "# restore on the new provider: $(jq -s '.[0].fields.bytes' <<<"$output") bytes fetched" >&3
	nunet-run cancel "$id" >/dev/null
	NODES="a $qn"
	within 30 all_clean
}

@test "snapshot pushes: only the placement's provider is heard; a bad pack is refused and the orchestrator lives on" {
	start_three
	deploy_counter
	within 20 "[ \$(counter $pn $alloc) -ge 1 ]"
	lease=$(nunet-run status "$id" | jq -r '.allocations[0].lease')
	who="\"deployment\":\"$id\",\"name\":\"ctr\",\"lease\":\"$lease\""
	# the other provider, with the right names, is refused
	run --separate-stderr nunet-send --home "$(home $qn)" --to "${DID[a]}" /public/deploy/snapshot/receive \
		"{$who,\"commit\":\"$(printf '%040d' 0)\",\"size\":10}"
	assert_failure
	[[ "$output$stderr" == *"holds no placement of allocation 'ctr'"* ]] || { echo "$output $stderr"; false; }
	# so is the provider under another lease
	run --separate-stderr nunet-send --home "$(home $pn)" --to "${DID[a]}" /public/deploy/snapshot/haves \
		"{\"deployment\":\"$id\",\"name\":\"ctr\",\"lease\":\"x$lease\"}"
	assert_failure
	# the provider itself, with a pack that is not one: refused at commit
	c=$(printf 'a%.0s' $(seq 40))
	run nunet-send --home "$(home $pn)" --to "${DID[a]}" /public/deploy/snapshot/receive "{$who,\"commit\":\"$c\",\"size\":12}"
	assert_success
	x=$(jq -r .xfer <<<"$output")
	# pieces of another's transfer are not heard
	run --separate-stderr nunet-send --home "$(home $qn)" --to "${DID[a]}" /public/deploy/snapshot/chunk \
		"{\"xfer\":\"$x\",\"offset\":0,\"data\":\"$(printf 'PACKgarbage!' | base64)\"}"
	assert_failure
	run nunet-send --home "$(home $pn)" --to "${DID[a]}" /public/deploy/snapshot/chunk \
		"{\"xfer\":\"$x\",\"offset\":0,\"data\":\"$(printf 'PACKgarbage!' | base64)\"}"
	assert_success
	# the pack is unpacked off the loop: pending, then the refusal
	commit_until_done "$pn" "{$who,\"xfer\":\"$x\",\"commit\":\"$c\"}"
	assert_failure
	[[ "$output$stderr" == *"snapshot of ctr: commit aaaaaaaaaaaa"* ]] || { echo "$output $stderr"; false; }
	kill -0 "${PID[a]}"
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot')" null
	# a real checkpoint still goes through afterwards
	run --separate-stderr env NUNET_HOME="$(home $pn)" nunet-run checkpoint "$alloc"
	assert_success
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot.commit')" "$(jq -r .commit <<<"$output")"
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}

@test "a kept snapshot that cannot be fetched fails the new allocation's start with the reason" {
	start_three
	deploy_counter
	within 20 "[ \$(counter $pn $alloc) -ge 1 ]"
	run --separate-stderr env NUNET_HOME="$(home $pn)" nunet-run checkpoint "$alloc"
	assert_success
	# the orchestrator's copy is lost (its snapshot repository removed)
	rm -rf "$(home a)/snapshots.git"
	kill -KILL "${PID[$pn]}"
	failed_on_q() {
		NUNET_HOME=$(home $qn) nunet-run ls -a | jq -e -s 'map(select(.state == "failed")) | length > 0' >/dev/null
	}
	within 60 failed_on_q
	run env NUNET_HOME="$(home $qn)" nunet-run ls -a
	reason=$(jq -r -s 'map(select(.state == "failed")) | .[0].reason' <<<"$output")
	echo "reason: $reason"
	[[ "$reason" == "restoring the state: the last snapshot could not be fetched: /public/deploy/snapshot/pack: cannot pack commit "* ]]
	# nothing of the job ran there
	a2=$(jq -r -s 'map(select(.state == "failed")) | .[0].id' <<<"$output")
	[ -z "$(starts $qn "$a2")" ]
	nunet-run cancel "$id" >/dev/null || true
}

@test "checkpoint: 1s in the ensemble: the provider pushes snapshots by itself, and a repair starts from the last" {
	start_three
	deploy_counter 1s
	kept() { nunet-run status "$id" | jq -r '.allocations[0].snapshot.commit // empty'; }
	within 30 '[ -n "$(kept)" ]'
	c1=$(kept)
	# the next one replaces it, with a counter further on
	within 30 '[ -n "$(kept)" ] && [ "$(kept)" != "$c1" ]'
	c2=$(kept)
	[ "$(git --git-dir "$(home a)/snapshots.git" show "$c2:n")" -gt "$(git --git-dir "$(home a)/snapshots.git" show "$c1:n")" ]
	NUNET_HOME=$(home a) nunet-node events --kind deploy.snapshot | jq -e -s --arg p "$p" 'map(select(.fields.provider == $p)) | length >= 2' >/dev/null
	kill -KILL "${PID[$pn]}"
	within 60 "[ \"\$(where)\" = \"${DID[$qn]}\" ] && [ \"\$(nunet-run status $id | jq -r '.allocations[0].state')\" = running ]"
	a2=$(alloc_of)
	within 20 "[ -n \"\$(starts $qn $a2)\" ]"
	c=$(NUNET_HOME=$(home a) nunet-node events --kind deploy.restore | jq -r -s '.[-1].fields.commit')
	assert_equal "$(starts $qn "$a2" | head -1)" "$(git --git-dir "$(home a)/snapshots.git" show "$c:n")"
	[ "$(starts $qn "$a2" | head -1)" -gt 0 ]
	nunet-run cancel "$id" >/dev/null
	NODES="a $qn"
	within 30 all_clean
}

@test "nunet-run migrate of a deployed allocation: the orchestrator follows it, and a later loss repairs from its last snapshot" {
	start_three
	deploy_counter
	within 20 "[ \$(counter $pn $alloc) -ge 3 ]"
	lease=$(nunet-run status "$id" | jq -r '.allocations[0].lease')
	nunet-node --home "$(home $qn)" cap grant "${DID[$pn]}" --cap /alloc >"$BATS_TEST_TMPDIR/tok"
	run --separate-stderr env NUNET_HOME="$(home $pn)" nunet-run migrate "$alloc" --to "${DID[$qn]}" \
		--cap "$BATS_TEST_TMPDIR/tok"
	echo "migrate: $output $stderr"
	assert_success
	nl=$(jq -r .deployment.lease <<<"$output")
	cm=$(jq -r .commit <<<"$output")
	[ -n "$nl" ] && [ "$nl" != "$lease" ]
	jq -e --arg a "${DID[a]}" '.deployment.orchestrator == $a and .deployment.pushed.to == $a' <<<"$output"
	# the orchestrator's records follow: provider, lease, allocation id
	assert_equal "$(where)" "${DID[$qn]}"
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0] | .lease + " " + .alloc')" "$nl $alloc"
	# the migrated state is also the kept snapshot
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot.commit')" "$cm"
	v=$(git --git-dir "$(home a)/snapshots.git" show "$cm:n")
	within 20 "[ -n \"\$(starts $qn $alloc)\" ]"
	[ "$(starts $qn "$alloc" | head -1)" -ge "$v" ]
	NUNET_HOME=$(home a) nunet-node events --kind deploy.moved | jq -e -s --arg p "${DID[$pn]}" --arg q "${DID[$qn]}" \
		--arg l "$nl" --arg o "$lease" 'length == 1 and .[0].fields.from == $p and .[0].fields.to == $q and
		.[0].fields.lease == $l and .[0].fields.released == $o' >/dev/null
	# the source's copy ended with its lease, released by the orchestrator
	within 20 "env NUNET_HOME=$(home $pn) nunet-run ls -a | jq -e -s --arg a $alloc 'map(select(.id == \$a)) | .[0].state == \"killed\"' >/dev/null"
	assert_equal "$(nunet-send --home "$(home $pn)" /deploy/lease "{\"lease\":\"$lease\"}" | jq -r .state)" released
	# its end is neither a failure nor a restart: the deployment runs on
	sleep 2
	assert_equal "$(nunet-run status "$id" | jq -r '.state + " " + .allocations[0].state')" "running running"
	run env NUNET_HOME="$(home a)" nunet-node events --kind deploy.restart --kind deploy.lost --kind deploy.failed
	assert_equal "$output" ""
	# heartbeats come from the new provider: stopping the source changes nothing
	kill -STOP "${PID[$pn]}"
	sleep 3
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].state + " " + .allocations[0].provider')" "running ${DID[$qn]}"
	kill -CONT "${PID[$pn]}"
	# a checkpoint there goes to the orchestrator under the new lease
	within 20 "[ \$(counter $qn $alloc) -gt $((v + 2)) ]"
	run --separate-stderr env NUNET_HOME="$(home $qn)" nunet-run checkpoint "$alloc"
	assert_success
	c3=$(jq -r .commit <<<"$output")
	jq -e '.pushed.haves == 1' <<<"$output"
	v3=$(git --git-dir "$(home a)/snapshots.git" show "$c3:n")
	# the new provider is lost: the allocation is placed again from that snapshot
	kill -KILL "${PID[$qn]}"
	within 60 "[ \"\$(where)\" = \"${DID[$pn]}\" ] && [ \"\$(nunet-run status $id | jq -r '.allocations[0].state')\" = running ]"
	a3=$(alloc_of)
	within 20 "[ -n \"\$(starts $pn $a3)\" ]"
	assert_equal "$(starts $pn "$a3" | head -1)" "$v3"
	nunet-run cancel "$id" >/dev/null
	NODES="a $pn"
	within 30 all_clean
}

@test "nunet-run migrate of a deployed allocation: only its provider may move it, only a group of one moves" {
	start_three
	deploy_counter
	within 20 "[ \$(counter $pn $alloc) -ge 1 ]"
	lease=$(nunet-run status "$id" | jq -r '.allocations[0].lease')
	# another node asks to move it: refused
	run --separate-stderr nunet-send --home "$(home $qn)" --to "${DID[a]}" /public/deploy/move \
		"{\"deployment\":\"$id\",\"name\":\"ctr\",\"lease\":\"$lease\",\"to\":\"${DID[a]}\"}"
	assert_failure
	[[ "$output$stderr" == *"runs no placement of allocation 'ctr'"* ]] || { echo "$output $stderr"; false; }
	# a node that was granted nothing is not adopted: its heartbeat under a made-up lease is refused
	run --separate-stderr nunet-send --home "$(home $qn)" --to "${DID[a]}" /public/deploy/heartbeat \
		"{\"deployment\":\"$id\",\"lease\":\"nope\",\"allocations\":{\"ctr\":{\"id\":\"x\",\"state\":\"exited\"}}}"
	assert_failure
	assert_equal "$(where)" "${DID[$pn]}"
	# the target refuses to adopt an allocation that is not labelled so
	nunet-node --home "$(home $qn)" cap grant "${DID[$pn]}" --cap /alloc >"$BATS_TEST_TMPDIR/tok"
	run --separate-stderr nunet-send --home "$(home $pn)" --to "${DID[$qn]}" --cap "$BATS_TEST_TMPDIR/tok" \
		/alloc/migrate/adopt "{\"id\":\"nope\",\"lease\":\"l\",\"requester\":\"${DID[a]}\",\"deployment\":\"$id\",\"group\":\"g\",\"name\":\"ctr\",\"slot\":0,\"heartbeat_ms\":300}"
	assert_failure
	# and without the token at all
	run --separate-stderr nunet-send --home "$(home $pn)" --to "${DID[$qn]}" \
		/alloc/migrate/adopt "{\"id\":\"nope\",\"lease\":\"l\",\"requester\":\"${DID[a]}\",\"deployment\":\"$id\",\"group\":\"g\",\"name\":\"ctr\",\"slot\":0,\"heartbeat_ms\":300}"
	assert_failure
	kill -0 "${PID[a]}"
	nunet-run cancel "$id" >/dev/null
	# a node group of two allocations does not move one of them
	jq -n --arg c "$COUNTER" '{allocations:{x:{type:"service",command:["sh","-c",$c],state_dir:"st",resources:{cpu:0.5,ram:16777216}},
		y:{type:"service",command:["sleep","60"],resources:{cpu:0.5,ram:16777216}}},
		nodes:{g:{allocations:["x","y"]}},heartbeat:"300ms",deadline_ms:40000}' >"$BATS_TEST_TMPDIR/two.json"
	run --separate-stderr nunet-run deploy "$BATS_TEST_TMPDIR/two.json"
	assert_success
	id2=${lines[-1]}
	x=$(nunet-run status "$id2" | jq -r '.allocations[] | select(.name == "x") | .alloc')
	xp=$(node_of "$(nunet-run status "$id2" | jq -r '.allocations[] | select(.name == "x") | .provider')")
	[ "$xp" = b ] && xq=c || xq=b
	nunet-node --home "$(home $xq)" cap grant "${DID[$xp]}" --cap /alloc >"$BATS_TEST_TMPDIR/tok2"
	within 20 "[ \"\$(env NUNET_HOME=$(home $xp) nunet-run status $x | jq -r .state)\" = running ]"
	run --separate-stderr env NUNET_HOME="$(home $xp)" nunet-run migrate "$x" --to "${DID[$xq]}" --cap "$BATS_TEST_TMPDIR/tok2"
	assert_equal "$status" 65
	[[ "$stderr" == *"shares node group 'g' with 1 other: only a group of one allocation moves"* ]] || { echo "$stderr"; false; }
	# nothing moved
	assert_equal "$(env NUNET_HOME="$(home $xp)" nunet-run status "$x" | jq -r .state)" running
	nunet-run cancel "$id2" >/dev/null
}

@test "a large first snapshot is unpacked off the orchestrator's loop: it keeps answering meanwhile" {
	start_three
	deploy_counter
	within 20 "[ \$(counter $pn $alloc) -ge 1 ]"
	head -c $((64 * 1048576)) /dev/urandom >"$(home $pn)/alloc/$alloc/st/big"
	env NUNET_HOME="$(home $pn)" nunet-run checkpoint "$alloc" >"$BATS_TEST_TMPDIR/ck.json" &
	ck=$!
	# the orchestrator's own node answers all along: each round trip timed
	while kill -0 $ck 2>/dev/null; do
		s=$(date +%s%N)
		nunet-send --home "$(home a)" /node/info >/dev/null || echo fail
		echo $((($(date +%s%N) - s) / 1000000))
	done >"$BATS_TEST_TMPDIR/pings"
	wait $ck
	jq -e '.pushed.pack_bytes > 67108864' "$BATS_TEST_TMPDIR/ck.json"
	! grep -q fail "$BATS_TEST_TMPDIR/pings"
	# the event is stored by the node's event writer, a moment after the answer
	big_event() { ev=$(NUNET_HOME=$(home a) nunet-node events --kind deploy.snapshot | jq -s '.[-1].fields'); jq -e '.bytes > 67108864' <<<"$ev" >/dev/null; }
	within 10 big_event || { NUNET_HOME=$(home a) nunet-node events --kind deploy.snapshot; false; }
	max=$(sort -n "$BATS_TEST_TMPDIR/pings" | tail -1)
	echo "# 64 MiB first snapshot: unpacked in $(jq .unpack_ms <<<"$ev") ms off the loop; $(wc -l <"$BATS_TEST_TMPDIR/pings") pings meanwhile, the slowest $max ms" >&3
	# generous for a loaded machine, short of what a blocked loop takes
	# (one ping would wait for most of the unpacking)
	um=$(jq .unpack_ms <<<"$ev")
	bound=$((um * 3 / 4)); [ "$bound" -ge 300 ] || bound=300
	[ "$max" -lt "$bound" ]
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot.commit')" "$(jq -r .commit "$BATS_TEST_TMPDIR/ck.json")"
	# packing it for the provider that places it again is off the loop too
	sum=$(sha256sum <"$(home $pn)/alloc/$alloc/st/big")
	kill -KILL "${PID[$pn]}"
	moved() { [ "$(where)" = "${DID[$qn]}" ] && [ "$(nunet-run status $id | jq -r '.allocations[0].state')" = running ]; }
	for i in $(seq 1200); do
		s=$(date +%s%N)
		nunet-send --home "$(home a)" /node/info >/dev/null || echo fail
		echo $((($(date +%s%N) - s) / 1000000))
		moved && break
	done >"$BATS_TEST_TMPDIR/pings2"
	moved
	! grep -q fail "$BATS_TEST_TMPDIR/pings2"
	a2=$(alloc_of)
	assert_equal "$(sha256sum <"$(home $qn)/alloc/$a2/st/big")" "$sum"
	max2=$(sort -n "$BATS_TEST_TMPDIR/pings2" | tail -1)
	echo "# and packed for the new provider ($(NUNET_HOME=$(home a) nunet-node events --kind deploy.restore | jq -s '.[-1].fields.bytes') bytes): the slowest of $(wc -l <"$BATS_TEST_TMPDIR/pings2") pings $max2 ms" >&3
	[ "$max2" -lt "$bound" ]
	nunet-run cancel "$id" >/dev/null
	NODES="a $qn"
	within 30 all_clean
}

@test "a deployment's kept snapshots go when it ends, and the objects nothing else reaches with them" {
	export NUNET_SNAPSHOT_GRACE_S=0	# the orchestrator prunes at once
	start_three
	deploy_counter
	within 20 "[ \$(counter $pn $alloc) -ge 1 ]"
	head -c 1048576 /dev/urandom >"$(home $pn)/alloc/$alloc/st/blob"
	blob=$(git hash-object "$(home $pn)/alloc/$alloc/st/blob")
	run --separate-stderr env NUNET_HOME="$(home $pn)" nunet-run checkpoint "$alloc"
	assert_success
	c=$(jq -r .commit <<<"$output")
	git --git-dir "$(home a)/snapshots.git" cat-file -e "$blob"
	assert_equal "$(git --git-dir "$(home a)/snapshots.git" rev-parse "refs/nunet/deploy/$id/ctr")" "$c"
	# kept while the deployment runs (a repair starts from it)
	sleep 1
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot.commit')" "$c"
	nunet-run cancel "$id" >/dev/null
	dropped() { NUNET_HOME=$(home a) nunet-node events --kind deploy.snapshot.dropped | jq -e -s --arg d "$id" 'map(select(.fields.deployment == $d and .fields.refs == 1)) | length == 1' >/dev/null; }
	within 30 dropped
	NUNET_HOME=$(home a) nunet-node events --kind deploy.snapshot.dropped | jq -c '.[]' 2>/dev/null || true
	run git --git-dir "$(home a)/snapshots.git" rev-parse --verify -q "refs/nunet/deploy/$id/ctr"
	assert_failure
	run git --git-dir "$(home a)/snapshots.git" cat-file -e "$blob"
	assert_failure
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot')" null
	NUNET_HOME=$(home a) nunet-node events --kind deploy.snapshot.dropped | jq -e -s '.[-1].fields.pruned > 0' >/dev/null
	# the repository still works: a new deployment keeps its snapshot
	deploy_counter
	within 20 "[ \$(counter $pn $alloc) -ge 1 ]"
	run --separate-stderr env NUNET_HOME="$(home $pn)" nunet-run checkpoint "$alloc"
	assert_success
	assert_equal "$(nunet-run status "$id" | jq -r '.allocations[0].snapshot.commit')" "$(jq -r .commit <<<"$output")"
	git --git-dir "$(home a)/snapshots.git" fsck --no-dangling
	nunet-run cancel "$id" >/dev/null
	within 30 all_clean
}
