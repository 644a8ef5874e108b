# A 5-node loopback swarm for the orchestration tests (t/81xx): load
# after lib/common.  Nodes a to e, a the orchestrator holding /deploy
# tokens from the others (polling with lib/common's within); helpers to
# read a's deploy events and check that every node is back to all free.

VPS="$NUNET_SRC/share/nunet/capability/small-vps.json"
declare -gA DID ADDR PID
NODES="a b c d e"

home() { echo "$BATS_TEST_TMPDIR/$1"; }

free_cpu() { NUNET_HOME=$(home "$1") nunet-send /node/resources | jq -r .free.cpu; }
onboarded_cpu() { NUNET_HOME=$(home "$1") nunet-send /node/resources | jq -r .onboarded.cpu; }
clean() { [ "$(free_cpu "$1")" = "$(onboarded_cpu "$1")" ]; }
all_clean() {
	local n
	for n in $NODES; do clean $n || return 1; done
}
rtts_known() {	# every node has measured a round trip to every other
	local n
	for n in $NODES; do
		[ "$(nunet-node --home "$(home $n)" peers | jq -s '[.[] | select(.state == "alive" and .rtt_ms != null)] | length')" = 4 ] || return 1
	done
}
events() {	# events of a's deployments: kind, provider, group
	NUNET_HOME=$(home a) nunet-node events --kind deploy |
		jq -r '[.kind, (.fields.provider // ""), (.fields.group // "")] | @tsv'
}
saw() { events | grep -q "^$1	${2:-}"; }

# start_swarm [FAR]: five nodes, a the orchestrator holding /deploy tokens
# from the others; d and e are the cheapest.  With FAR, node e holds back
# every line it sends by 250 ms (NUNET_SWARM_DELAY): it is far from all.
start_swarm() {
	local n far=${1:-} boot=""
	export NUNET_SWARM_PROBE_MS=1000 NUNET_SWARM_SUSPECT_MS=3000
	[ -z "$far" ] || export NUNET_SWARM_PROBE_MS=1500
	for n in $NODES; do node_init "$(home $n)"; DID[$n]=$(nunet-node --home "$(home $n)" id); done
	for n in $NODES; do
		if [ "$n" = e ] && [ -n "$far" ]; then
			NUNET_SWARM_DELAY="${DID[a]}=400,${DID[b]}=400,${DID[c]}=400,${DID[d]}=400" \
				node_start "$(home $n)" --listen 127.0.0.1:0 $boot
		else
			node_start "$(home $n)" --listen 127.0.0.1:0 $boot
		fi
		PID[$n]=$NODE_PID
		ADDR[$n]=$(jq -r .listen <<<"$READY_LINE")
		[ -n "$boot" ] || boot="--bootstrap ${DID[a]}@${ADDR[a]}"
		case $n in d|e) swarm_onboard $n 1 ;; *) swarm_onboard $n 4 ;; esac
	done
	swarm_tokens
	within 60 converged
}

# swarm_onboard NODE PRICE: offer 1 core, 1 GiB of memory and of disk at
# PRICE per cpu-second
swarm_onboard() {
	NUNET_HOME=$(home $1) nunet-node onboard --cpu 1 --memory 1G --disk 1G \
		--price cpu_second=$2 <"$VPS" >/dev/null
}

# swarm_tokens: a holds a /deploy token from each other node
swarm_tokens() {
	local n
	mkdir -p "$(home a)/tokens"
	for n in $NODES; do
		[ $n = a ] || nunet-node --home "$(home $n)" cap grant "${DID[a]}" --cap /deploy >"$(home a)/tokens/$n.json"
	done
}

converged() {	# every node sees the four others alive
	local n
	for n in $NODES; do
		[ "$(nunet-node --home "$(home $n)" peers | jq -s '[.[] | select(.state == "alive")] | length')" = 4 ] || return 1
	done
}

teardown() {
	local n
	for n in $NODES; do [ -n "${PID[$n]:-}" ] && kill -CONT "${PID[$n]}" 2>/dev/null; done
	node_stop_all
	allocs_kill "$BATS_TEST_TMPDIR"
}

service() {	# service NAME: a small long-running allocation
	printf '"%s":{"type":"service","command":["sleep","60"],"resources":{"cpu":1,"ram":16777216}}' "$1"
}
