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

declare -gA DID ADDR IP
NODES="a b c d e"

# failure detection a little faster than the defaults (500 ms, 3 s), so
# the bounds below stay short on a loaded machine
export NUNET_SWARM_PROBE_MS=250 NUNET_SWARM_SUSPECT_MS=1500

setup() {
	common_setup
	[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
	command -v ip >/dev/null || skip "no ip(8)"
	command -v iptables >/dev/null || skip "no iptables(8)"
	NS=p$$
	ip netns add ${NS}s 2>/dev/null || skip "cannot make network namespaces"
	ip -n ${NS}s link add br0 type bridge
	ip -n ${NS}s link set br0 up
	local i=0 n
	for n in $NODES; do
		i=$((i + 1))
		IP[$n]=10.253.0.$i
		ip netns add ${NS}$n
		ip link add ${NS}v$n type veth peer name ${NS}s$n
		ip link set ${NS}v$n netns ${NS}$n
		ip link set ${NS}s$n netns ${NS}s
		ip -n ${NS}s link set ${NS}s$n master br0 up
		ip -n ${NS}$n addr add ${IP[$n]}/24 dev ${NS}v$n
		ip -n ${NS}$n link set ${NS}v$n up
		ip -n ${NS}$n link set lo up
		node_init "$BATS_TEST_TMPDIR/$n"
		DID[$n]=$(nunet-node --home "$BATS_TEST_TMPDIR/$n" id)
	done
}

teardown() {
	node_stop_all
	local n
	for n in $NODES s; do ip netns del ${NS}$n 2>/dev/null || true; done
}

# start NAME [ARGS...]: the node in its namespace, listening on its address
start() {
	local n=$1 fifo="$BATS_TEST_TMPDIR/ready.$1"
	shift
	mkfifo "$fifo"
	ip netns exec ${NS}$n nunet-node --home "$BATS_TEST_TMPDIR/$n" run --ready-fd 3 \
		--listen "${IP[$n]}:0" "$@" 3>"$fifo" 2>>"$BATS_TEST_TMPDIR/$n.log" &
	NODE_PIDS+=("$!")
	read -r -t 10 READY_LINE <"$fifo" || { cat "$BATS_TEST_TMPDIR/$n.log" >&2; return 1; }
	ADDR[$n]=$(jq -r .listen <<<"$READY_LINE")
}
within() {
	local end=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
	until eval "$2"; do
		(( $(date +%s%N) / 1000000 < end )) || return 1
		sleep 0.2
	done
}
# sees N STATE DIDS...: node N lists each of DIDS in STATE
sees() {
	local n=$1 st=$2 d
	shift 2
	local list
	list=$(nunet-node --home "$BATS_TEST_TMPDIR/$n" peers | jq -r --arg s "$st" 'select(.state == $s) | .did')
	for d in "$@"; do
		grep -qx "$d" <<<"$list" || return 1
	done
}
dids() { local n; for n in "$@"; do echo "${DID[$n]}"; done; }
# converged: every node sees every other alive
converged() {
	local n
	for n in $NODES; do
		sees $n alive $(for o in $NODES; do [ $o = $n ] || echo "${DID[$o]}"; done) || return 1
	done
}
# cut_off: iptables in A's and B's namespaces refuse all traffic with C, D
# and E, TCP with a reset, so the connections open across break on both
# sides (as when a link goes down for longer than TCP waits): only
# probing again can bring the other side back
cut_off() {
	local n o
	for n in a b; do
		for o in c d e; do
			ip netns exec ${NS}$n iptables -A INPUT -s ${IP[$o]} -p tcp -j REJECT --reject-with tcp-reset
			ip netns exec ${NS}$n iptables -A INPUT -s ${IP[$o]} -j DROP
			ip netns exec ${NS}$n iptables -A OUTPUT -d ${IP[$o]} -p tcp -j REJECT --reject-with tcp-reset
			ip netns exec ${NS}$n iptables -A OUTPUT -d ${IP[$o]} -j DROP
		done
	done
}
heal() {
	local n
	for n in a b; do ip netns exec ${NS}$n iptables -F; done
}
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
	# and the stored edges say so too
	for n in $NODES; do
		assert_equal "$(sqlite3 "$BATS_TEST_TMPDIR/$n/node.db" "SELECT COUNT(*) FROM swarm_edges WHERE state = 'alive'")" 4
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
