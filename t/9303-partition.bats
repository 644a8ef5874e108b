#!/usr/bin/env bats
# Partitions (issue 10): five nodes in five network namespaces on one
# bridge (made by the test; root only).  {A,B} are cut from {C,D,E} with
# iptables in A's and B's namespaces (connections reset); each side must mark the other dead
# and keep itself alive, messages across must fail, and once healed every
# node must see every other alive again within a bound and messages flow.
# A second test does the same over links with tc netem delay and loss,
# where the kernel has sch_netem; a third cuts two nodes apart for longer
# than TCP keeps a connection, so only probing dead peers again heals it.
load lib/common
load lib/netns

NODES="a b c d e"

# failure detection a little faster than the defaults (500 ms, 3 s), so
# the bounds below stay short on a loaded machine
export NUNET_SWARM_PROBE_MS=250 NUNET_SWARM_SUSPECT_MS=1500

setup() {
	common_setup
	netns_setup
}

teardown() {
	netns_teardown
}

start() { ns_start "$@"; }
cut_off() { ns_cut "a b" "c d e"; }
heal() { ns_heal "a b"; }
send_from() {	# send_from N TO-NAME: /public/ping from node N to another
	NUNET_HOME="$BATS_TEST_TMPDIR/$1" timeout 20 nunet-send --to "${DID[$2]}" /public/ping
}

scenario() {
	start a
	local n
	for n in b c d e; do start $n --bootstrap "${DID[a]}@${ADDR[a]}"; done
	within 15 converged
	run send_from a e
	assert_success
	cut_off
	# each side marks the other dead, and keeps its own side alive
	within 30 'sees a dead $(dids c d e) && sees b dead $(dids c d e) &&
		sees c dead $(dids a b) && sees d dead $(dids a b) && sees e dead $(dids a b)'
	sees a alive "${DID[b]}"
	sees c alive "${DID[d]}" "${DID[e]}"
	for n in a b c d e; do grep -q "is dead" "$BATS_TEST_TMPDIR/$n.log"; done
	# messages across fail, within a side they flow
	run send_from a c
	assert_failure 69
	run send_from d e
	assert_success
	# heal: everyone alive to everyone again, within a bound, and messages flow
	heal
	t0=$(date +%s%3N)
	within 30 converged
	echo "# converged $(( $(date +%s%3N) - t0 )) ms after healing" >&3
	run send_from a c
	assert_success
	assert_equal "$(jq -r .pong <<<"$output")" true
	run send_from e b
	assert_success
	# and the stored edges say so too (within a bound: under a sanitized
	# build on a loaded machine, a probe answered late can make a node
	# suspect a peer for a moment just after the heal; CI saw 3 of 4)
	for n in $NODES; do
		if ! within 10 '[ "$(sqlite3 "$BATS_TEST_TMPDIR/$n/node.db" \
			"SELECT COUNT(*) FROM swarm_edges WHERE state = '"'alive'"'")" = 4 ]'; then
			sqlite3 "$BATS_TEST_TMPDIR/$n/node.db" "SELECT dst, state, updated FROM swarm_edges"
			false
		fi
	done
}

@test "partition {A,B} | {C,D,E}: each side marks the other dead; healed, membership converges and messages flow" {
	scenario
}

@test "the same over links with tc netem delay and loss" {
	command -v tc >/dev/null || skip "no tc(8)"
	if ! ip netns exec ${NS}a tc qdisc add dev ${NS}va root netem delay 20ms 5ms loss 1% 2>"$BATS_TEST_TMPDIR/tc.err"; then
		skip "tc netem is not available here: $(head -1 "$BATS_TEST_TMPDIR/tc.err") (kernel module sch_netem)"
	fi
	local n
	for n in b c d e; do ip netns exec ${NS}$n tc qdisc add dev ${NS}v$n root netem delay 20ms 5ms loss 1%; done
	scenario
}

@test "two nodes cut apart for longer than suspicion: both mark the other dead, and find each other again once healed" {
	# TCP gives up on unanswered data after a few retransmissions (about
	# a second instead of 15 minutes), so the connection between them is
	# gone by the time the link comes back, as after a long partition:
	# only probing a dead peer again can find it
	ip netns exec ${NS}a sysctl -qw net.ipv4.tcp_retries2=2
	ip netns exec ${NS}c sysctl -qw net.ipv4.tcp_retries2=2
	start a
	start c --bootstrap "${DID[a]}@${ADDR[a]}"
	within 10 'sees a alive "${DID[c]}" && sees c alive "${DID[a]}"'
	ip netns exec ${NS}a iptables -A INPUT -s ${IP[c]} -j DROP
	ip netns exec ${NS}a iptables -A OUTPUT -d ${IP[c]} -j DROP
	within 30 'sees a dead "${DID[c]}" && sees c dead "${DID[a]}"'
	# long enough for every rumour about it to have been told and forgotten
	sleep 3
	ip netns exec ${NS}a iptables -F
	within 30 'sees a alive "${DID[c]}" && sees c alive "${DID[a]}"'
	run send_from c a
	assert_success
}
