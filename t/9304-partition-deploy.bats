#!/usr/bin/env bats
# Deployments across partitions and kill -9 (issue 10): five nodes, a the
# orchestrator holding /deploy tokens from the others, b and d the
# cheapest providers, so a two-service deployment lands on one node in
# each half of the cut {a,b} | {c,d,e} (network namespaces, t/lib/netns).
# After each scenario exactly one copy of every service allocation runs,
# membership converges, and every node's commitments are exactly its live
# allocations (no lease, nothing else reserved).  The last two scenarios
# kill -9 the orchestrator, then a provider, in the middle of a deployment
# (loopback, no namespaces), and check the same and the databases.
load lib/common
load lib/swarm
load lib/netns

export NUNET_SWARM_PROBE_MS=250 NUNET_SWARM_SUSPECT_MS=1500

teardown() {
	if [ -n "${NS:-}" ]; then netns_teardown; else node_stop_all; fi
	allocs_kill "$BATS_TEST_TMPDIR"
}

# up NAME [ARGS...]: start node NAME, in its namespace when there are
# namespaces, else on loopback
up() {
	local n=$1
	shift
	if [ -n "${NS:-}" ]; then
		ns_start "$n" "$@"
	else
		node_start "$(home $n)" --listen 127.0.0.1:0 "$@"
		PID[$n]=$NODE_PID
		ADDR[$n]=$(jq -r .listen <<<"$READY_LINE")
	fi
}

# swarm ORPHAN_MS: the five nodes, onboarded (b and d at price 1, the
# others 4), a holding /deploy tokens from each, a provider ending the
# allocations of a lease whose orchestrator it has seen dead for ORPHAN_MS
swarm() {
	local n
	for n in $NODES; do
		if [ -z "${NS:-}" ]; then
			node_init "$(home $n)"
			DID[$n]=$(nunet-node --home "$(home $n)" id)
		fi
		jq --argjson ms "$1" '.deploy_orphan_ms = $ms' "$(home $n)/config.json" >"$(home $n)/c.json"
		mv "$(home $n)/c.json" "$(home $n)/config.json"
	done
	up a
	for n in b c d e; do up $n --bootstrap "${DID[a]}@${ADDR[a]}"; done
	for n in $NODES; do
		case $n in b|d) swarm_onboard $n 1 ;; *) swarm_onboard $n 4 ;; esac
	done
	swarm_tokens
	within 30 converged
}

name_of() {	# name_of DID: the node's name
	local n
	for n in $NODES; do [ "${DID[$n]}" = "$1" ] && echo $n; done
}
dstate() { NUNET_HOME=$(home a) nunet-run status "$1" | jq -r .state; }
where() {	# where DEP NAME: the node (name) a says allocation NAME runs on
	name_of "$(NUNET_HOME=$(home a) nunet-run status "$1" | jq -r --arg n "$2" '.allocations[] | select(.name == $n) | .provider')"
}
saw_on() {	# saw_on NODE KIND [FIELD VALUE]: NODE recorded such an event
	NUNET_HOME=$(home $1) nunet-node events --kind "$2" |
		jq -e --arg f "${3:-}" --arg v "${4:-}" 'select($f == "" or .fields[$f] == $v)' >/dev/null
}
# live NODE: "DEPLOYMENT NAME" of each allocation NODE runs (not final)
live() {
	local id
	for id in $(NUNET_HOME=$(home $1) nunet-run ls | jq -r 'select(.kind != "deployment") | .id'); do
		NUNET_HOME=$(home $1) nunet-send /alloc/status "{\"id\":\"$id\"}" |
			jq -r 'select(.final | not) | "\(.spec.labels["nunet.deployment"] // "-") \(.spec.labels["nunet.allocation"] // "-")"'
	done
}
# copies DEP NAME: how many nodes run allocation NAME of DEP
copies() {
	local n c=0
	for n in $NODES; do
		[ -z "${2:-}" ] || c=$(( c + $(live $n | grep -cx "$1 $2" || true) ))
	done
	echo $c
}
# accounted NODE: what NODE has committed is exactly its live allocations:
# no lease's reservation and nothing of an allocation that ended
accounted() {
	local r c l
	r=$(NUNET_HOME=$(home $1) nunet-send /node/resources '{"commitments":true}') || return 1
	c=$(jq -r '.commitments[].id' <<<"$r" | sort)
	l=$(NUNET_HOME=$(home $1) nunet-run ls | jq -r 'select(.kind != "deployment") | .id' | sort)
	[ "$c" = "$l" ] &&
		[ "$(jq '.committed.cpu == ([.commitments[].resources.cpu] | add // 0)' <<<"$r")" = true ]
}
all_accounted() { local n; for n in $NODES; do accounted $n || return 1; done; }
# one_each DEP NAMES...: exactly one copy of each, where a says it runs
one_each() {
	local dep=$1 nm
	shift
	for nm in "$@"; do
		[ "$(copies "$dep" "$nm")" = 1 ] || return 1
		live "$(where "$dep" "$nm")" | grep -qx "$dep $nm" || return 1
	done
}
show() {	# what went wrong: a's deployment events and every node's allocations
	NUNET_HOME=$(home a) nunet-node events --kind deploy | jq -c '[.kind, .fields.provider, .fields.group, .fields.reason]' >&2
	local n
	for n in $NODES; do
		echo "$n: $(live $n | tr '\n' ' ')" >&2
		sqlite3 "$(home $n)/node.db" "SELECT 'lease', id, dep, state FROM orch_lease WHERE state <> 'released';
			SELECT 'release', provider, lease FROM orch_release" >&2
	done
}

show_peers() {	# what each node thinks of the others
	local n
	for n in $NODES; do
		echo "$n: $(nunet-node --home "$(home $n)" peers | jq -c '[.did[-6:], .state, .incarnation]' | tr '\n' ' ')" >&2
	done
}

long_service() {	# long_service NAME: a whole core for longer than any scenario (lib/swarm's service: 60 s)
	printf '"%s":{"type":"service","command":["sleep","300"],"resources":{"cpu":1,"ram":16777216}}' "$1"
}

# every ensemble gives bids 3 s (under the sanitizers on a loaded machine
# 500 ms saw only the orchestrator's own); the window closes as soon as
# every live peer answered
pair() {
	echo "{\"name\":\"pair\",\"allocations\":{$(long_service api),$(long_service db)},\"bid_window_ms\":3000,\"deadline_ms\":${1:-30000}}"
}

# deploy_pair: the two services running, on b and d; sets DEP
deploy_pair() {
	pair >"$BATS_TEST_TMPDIR/pair.json"
	run --separate-stderr env NUNET_HOME="$(home a)" nunet-run deploy "$BATS_TEST_TMPDIR/pair.json"
	assert_success
	DEP=${lines[-1]}
	assert_equal "$(printf '%s\n' "$(where $DEP api)" "$(where $DEP db)" | sort | tr '\n' ' ')" "b d "
}

# after_heal DEP NAMES...: membership converges, one copy of each, and
# every node holds exactly what its allocations use
after_heal() {
	local dep=$1
	shift
	t0=$(date +%s%3N)
	within 30 converged || { show_peers; false; }
	within 30 "one_each $dep $* && all_accounted" || { show; false; }
	echo "# one copy each and nothing reserved $(( $(date +%s%3N) - t0 )) ms after healing" >&3
}

@test "a partition while two services run: the orchestrator redeploys the lost one; healed, the cut provider stops its copy when told" {
	netns_setup
	swarm 600000	# the provider never gives up on its own here
	deploy_pair
	ns_cut "a b" "c d e"
	# a sees d dead and moves d's service to a node it still reaches
	within 40 "saw_on a deploy.lost provider ${DID[d]}"
	within 40 '[ "$(dstate $DEP)" = running ] && [[ "$(where $DEP api)$(where $DEP db)" = @(ab|ba) ]]' ||
		{ show; false; }
	# cut off, d still runs its copy: it cannot know yet
	live d | grep -q "^$DEP "
	ns_heal "a b"
	after_heal $DEP api db
	# d stopped its copy because a released its lease once it was back
	saw_on d deploy.lease.released
	NUNET_HOME=$(home a) nunet-run cancel $DEP >/dev/null
	within 30 all_clean
}

@test "a partition longer than deploy_orphan_ms: the cut provider stops its orphaned copy on its own" {
	netns_setup
	swarm 4000
	deploy_pair
	ns_cut "a b" "c d e"
	within 40 '[ "$(dstate $DEP)" = running ] && [[ "$(where $DEP api)$(where $DEP db)" = @(ab|ba) ]]' ||
		{ show; false; }
	# still cut: d has seen a dead long enough and ends the lease itself
	within 30 '! live d | grep -q "^$DEP "'
	saw_on d deploy.lease.orphaned
	accounted d
	ns_heal "a b"
	after_heal $DEP api db
	NUNET_HOME=$(home a) nunet-run cancel $DEP >/dev/null
	within 30 all_clean
}

@test "a partition after the commits, before provisioning: deployed on reachable providers or failed with a final event; nothing reserved after healing" {
	netns_setup
	swarm 600000
	# web waits for prep (a 3 s task): both leases are held that long
	cat >"$BATS_TEST_TMPDIR/two.json" <<-EOF
	{"allocations":{"prep":{"type":"task","command":["sleep","3"],"resources":{"cpu":1,"ram":16777216}},
	 $(long_service web | sed 's/}}$/},"depends_on":["prep"]}/')},
	 "bid_window_ms":3000,"deadline_ms":30000}
	EOF
	NUNET_HOME=$(home a) nunet-run deploy "$BATS_TEST_TMPDIR/two.json" >"$BATS_TEST_TMPDIR/out" 2>&1 &
	dpid=$!
	within 20 '[ "$(jq -r "select(.kind == \"deploy.commit\") | .fields.group" "$BATS_TEST_TMPDIR/out" 2>/dev/null | sort -u | wc -l)" = 2 ]'
	ns_cut "a b" "c d e"
	wait $dpid || true
	DEP=$(tail -1 "$BATS_TEST_TMPDIR/out")
	last=$(grep '^{' "$BATS_TEST_TMPDIR/out" | jq -r .kind | tail -1)
	case $last in
	deploy.running)
		# placed where a still reaches
		[[ "$(where $DEP web)" = [ab] ]] || { show; false; } ;;
	deploy.failed)
		grep '"deploy.failed"' "$BATS_TEST_TMPDIR/out" | jq -e '.fields.reason | length > 0' >/dev/null ;;
	*)
		cat "$BATS_TEST_TMPDIR/out" >&2; false ;;
	esac
	ns_heal "a b"
	if [ "$last" = deploy.running ]; then after_heal $DEP web; else after_heal $DEP; fi
	NUNET_HOME=$(home a) nunet-run cancel $DEP >/dev/null || true
	within 30 all_clean
}

# integrity HOME: every database of a node home passes integrity_check
integrity() {
	local db
	for db in "$1"/*.db; do
		[ "$(sqlite3 "$db" 'PRAGMA integrity_check')" = ok ] || { echo "$db: not ok" >&2; return 1; }
	done
}

@test "kill -9 of the orchestrator while bidding, committing and provisioning: it resumes or fails cleanly, nothing twice, nothing leaked" {
	swarm 600000
	for phase in deploy.bidding deploy.commit deploy.provision; do
		# prep (1 s) before web: provisioning lasts a while
		cat >"$BATS_TEST_TMPDIR/two.json" <<-EOF
		{"allocations":{"prep":{"type":"task","command":["sleep","1"],"resources":{"cpu":1,"ram":16777216}},
		 $(long_service web | sed 's/}}$/},"depends_on":["prep"]}/')},
		 "bid_window_ms":3000,"deadline_ms":15000}
		EOF
		NUNET_HOME=$(home a) nunet-run deploy "$BATS_TEST_TMPDIR/two.json" >"$BATS_TEST_TMPDIR/out" 2>&1 &
		dpid=$!
		within 20 "grep -q '\"$phase\"' '$BATS_TEST_TMPDIR/out'"
		sleep "0.$(( RANDOM % 3 ))$(( RANDOM % 10 ))"
		kill -9 "${PID[a]}"
		wait "${PID[a]}" 2>/dev/null || true
		wait $dpid || true
		DEP=$(grep '^{' "$BATS_TEST_TMPDIR/out" | head -1 | jq -r .fields.deployment)
		integrity "$(home a)"
		up a --bootstrap "${DID[b]}@${ADDR[b]}"
		# resumed: running in the end (the deadline allows it), or failed
		within 40 '[[ "$(dstate $DEP)" = @(running|failed) ]]' || { echo "killed after $phase" >&2; show; false; }
		echo "# killed after $phase: $(dstate $DEP)" >&3
		if [ "$(dstate $DEP)" = running ]; then
			within 30 "one_each $DEP web && all_accounted" || { show; false; }
		fi
		# once the leases' lifetime is over, nothing of it is left anywhere
		NUNET_HOME=$(home a) nunet-run cancel $DEP >/dev/null
		within 30 'all_clean && [ "$(copies $DEP web)" = 0 ]' || { show; false; }
	done
	for n in $NODES; do integrity "$(home $n)"; done
}

@test "kill -9 of a provider around provisioning: the deployment goes on, on it or elsewhere; restarted, it keeps nothing given up" {
	swarm 600000
	for round in 1 2; do
		# prep (1 s) before web, on b and d: d holds a lease for a while
		# before it provisions, and the kill lands before, during or after
		cat >"$BATS_TEST_TMPDIR/two.json" <<-EOF
		{"allocations":{"prep":{"type":"task","command":["sleep","1"],"resources":{"cpu":1,"ram":16777216}},
		 $(long_service web | sed 's/}}$/},"depends_on":["prep"]}/')},
		 "bid_window_ms":3000,"deadline_ms":20000}
		EOF
		NUNET_HOME=$(home a) nunet-run deploy "$BATS_TEST_TMPDIR/two.json" >"$BATS_TEST_TMPDIR/out" 2>&1 &
		dpid=$!
		within 20 "grep '\"deploy.commit\"' '$BATS_TEST_TMPDIR/out' | grep -q '${DID[d]}'"
		sleep "$(( RANDOM % 2 )).$(( RANDOM % 10 ))"
		kill -9 "${PID[d]}"
		wait "${PID[d]}" 2>/dev/null || true
		wait $dpid || true
		DEP=$(grep '^{' "$BATS_TEST_TMPDIR/out" | head -1 | jq -r .fields.deployment)
		integrity "$(home d)"
		up d --bootstrap "${DID[a]}@${ADDR[a]}"
		within 30 converged
		within 40 '[[ "$(dstate $DEP)" = @(running|failed) ]]' || { show; false; }
		echo "# round $round: $(dstate $DEP), web on $(where $DEP web)" >&3
		if [ "$(dstate $DEP)" = running ]; then
			within 30 "one_each $DEP web && all_accounted" || { show; false; }
		fi
		NUNET_HOME=$(home a) nunet-run cancel $DEP >/dev/null
		within 30 'all_clean && [ "$(copies $DEP web)" = 0 ]' || { show; false; }
	done
	for n in $NODES; do integrity "$(home $n)"; done
}
