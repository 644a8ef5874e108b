# Nodes in network namespaces, for partition tests (t/9303, t/9304): load
# after lib/common with `load lib/netns`.
#
# netns_setup makes one namespace per node in $NODES, each with a veth into
# a bridge in a namespace of its own, addresses 10.253.0.N/24, and a node
# home under $BATS_TEST_TMPDIR/NAME; it skips the test (with the reason)
# where namespaces, ip(8) or iptables(8) are missing.  ns_start starts a
# node in its namespace; ns_cut and ns_heal partition and heal the swarm
# with iptables (connections reset, so both sides see them break).
# Poll with lib/common's within.

declare -gA DID ADDR IP PID

# netns_setup: the namespaces, links and node homes for $NODES
netns_setup() {
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

# netns_teardown: stop the nodes, then remove the namespaces
netns_teardown() {
	node_stop_all
	local n
	for n in $NODES s; do ip netns del ${NS}$n 2>/dev/null || true; done
}

# ns_start NAME [ARGS...]: the node in its namespace, listening on its
# address; sets ADDR[NAME] and PID[NAME]
ns_start() {
	local n=$1 fifo="$BATS_TEST_TMPDIR/ready.$1.$RANDOM"
	shift
	mkfifo "$fifo"
	ip netns exec ${NS}$n nunet-node --home "$BATS_TEST_TMPDIR/$n" run --ready-fd 3 \
		--listen "${IP[$n]}:0" "$@" 3>"$fifo" 2>>"$BATS_TEST_TMPDIR/$n.log" &
	PID[$n]=$!
	NODE_PIDS+=("$!")
	read -r -t 10 READY_LINE <"$fifo" || { rm -f "$fifo"; cat "$BATS_TEST_TMPDIR/$n.log" >&2; return 1; }
	rm -f "$fifo"
	ADDR[$n]=$(jq -r .listen <<<"$READY_LINE")
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

# converged: every node of $NODES sees every other alive
converged() {
	local n
	for n in $NODES; do
		sees $n alive $(for o in $NODES; do [ $o = $n ] || echo "${DID[$o]}"; done) || return 1
	done
}

# ns_cut "A B" "C D E": iptables in the first side's namespaces refuse all
# traffic with the second side, TCP with a reset, so the connections open
# across break on both sides (as when a link goes down for longer than TCP
# waits): only probing again can bring the other side back
ns_cut() {
	local n o
	for n in $1; do
		for o in $2; do
			ip netns exec ${NS}$n iptables -A INPUT -s ${IP[$o]} -p tcp -j REJECT --reject-with tcp-reset
			ip netns exec ${NS}$n iptables -A INPUT -s ${IP[$o]} -j DROP
			ip netns exec ${NS}$n iptables -A OUTPUT -d ${IP[$o]} -p tcp -j REJECT --reject-with tcp-reset
			ip netns exec ${NS}$n iptables -A OUTPUT -d ${IP[$o]} -j DROP
		done
	done
}

# ns_heal "A B": flush the rules ns_cut put in those namespaces
ns_heal() {
	local n
	for n in $1; do ip netns exec ${NS}$n iptables -F; done
}
