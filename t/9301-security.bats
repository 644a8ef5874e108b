#!/usr/bin/env bats
# Security checks with real nodes (issue 10; SECURITY.md says what each
# proves): the control socket refuses other users; a remote peer reaches no
# behavior but /public/ without a token; a node without the swarm key
# learns nothing (what it receives is captured byte for byte); and every
# kind of refusal is an event on the refusing node.
load lib/common

declare -gA DID ADDR
CAPTURE="$BATS_TEST_DIRNAME/lib/tcp-capture.py"

# start NAME [ARGS...]: run node NAME (home $BATS_TEST_TMPDIR/NAME) with a
# listen address and its own log, $BATS_TEST_TMPDIR/NAME.log
start() {
	local name=$1 home="$BATS_TEST_TMPDIR/$1" fifo="$BATS_TEST_TMPDIR/ready.$1"
	shift
	mkfifo "$fifo"
	nunet-node --home "$home" run --ready-fd 3 --listen 127.0.0.1:0 "$@" \
		3>"$fifo" 2>>"$BATS_TEST_TMPDIR/$name.log" &
	NODE_PIDS+=("$!")
	read -r -t 10 READY_LINE <"$fifo" || { cat "$BATS_TEST_TMPDIR/$name.log" >&2; return 1; }
	rm -f "$fifo"
	DID[$name]=$(jq -r .did <<<"$READY_LINE")
	ADDR[$name]=$(jq -r .listen <<<"$READY_LINE")
}
# envelope FROM TO BE [TS_OFFSET_MS] [CAPS-JSON]: an unsigned request
envelope() {
	local now=$(( $(date +%s%3N) + ${4:-0} ))
	jq -nc --arg f "$1" --arg t "$2" --arg b "$3" --argjson now "$now" --argjson cap "${5:-null}" \
		--arg id "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" \
		'{v:1, type:"msg", id:$id, from:$f, to:$t, be:$b, ts:$now, exp:($now + 60000), body:{}}
		 + (if $cap then {cap:$cap} else {} end)'
}
# refusals NAME: the node's warn events as "kind code be" lines, in order
refusals() {
	nunet-node --home "$BATS_TEST_TMPDIR/$1" events --level warn |
		jq -r '[.kind, .fields.code, (.fields.be // "-")] | join(" ")'
}

@test "the control socket refuses other users: the kernel by its mode, the node by SO_PEERCRED, as an event" {
	skip_unless 'command -v setpriv' 'setpriv (util-linux) is not installed'
	[ "$(id -u)" -eq 0 ] || skip 'needs root to run a client as another uid'
	# a directory uid 65534 may traverse, so that only the socket stands
	open=$(mktemp -d /tmp/nunet-9301.XXXXXX)
	chmod 711 "$open"
	export NUNET_HOME="$open/home"
	node_init
	node_start
	sock="$NUNET_HOME/node.sock"
	assert_equal "$(stat -c %a "$sock")" 600
	# as made, the home and the socket are the owner's alone: connect(2) fails
	chmod 711 "$NUNET_HOME"
	run setpriv --reuid=65534 --regid=65534 --clear-groups rawsock -n 1 "$sock" </dev/null
	assert_failure
	assert_output --partial 'Permission denied'
	# an operator who opens the socket up still gets only the owner served
	chmod 666 "$sock"
	# (the node answers at accept, before reading a byte)
	run setpriv --reuid=65534 --regid=65534 --clear-groups rawsock -n 1 "$sock" </dev/null
	assert_success
	assert_equal "$(jq -r '.type, .body.code' <<<"$output")" "error
unauthorized"
	# runuser (PAM-less su) is refused the same way
	run runuser -u nobody -- rawsock -n 1 "$sock" </dev/null
	assert_equal "$(jq -r .body.code <<<"$output")" unauthorized
	# both refusals are events, naming the uid
	within 5 '[ "$(nunet-node events --kind security.refused | wc -l)" -ge 2 ]'
	run nunet-node events --kind security.refused
	assert_equal "$(jq -r '[.fields.code, .fields.message] | join(": ")' <<<"$output" | sort -u)" \
		"unauthorized: peer uid 65534 is not the node's user (uid 0)"
	# and the owner is still served
	run nunet-send /node/ping
	assert_success
	node_stop_all
	rm -rf "$open"
}

@test "a remote peer reaches no behavior but /public/ without a token; each refusal is an event on the target" {
	for n in a b c; do node_init "$BATS_TEST_TMPDIR/$n"; done
	start b
	start a --bootstrap "${DID[b]}@${ADDR[b]}"
	within 5 'nunet-node --home "$BATS_TEST_TMPDIR/a" peers | grep -q "\"state\":\"alive\""'
	# from node a, through the swarm, the local-only behaviors a user would try
	export NUNET_HOME="$BATS_TEST_TMPDIR/a"
	for be in /node/onboard /alloc/start /node/events /node/info /swarm/peers; do
		run --separate-stderr nunet-send --to "${DID[b]}" "$be" '{"cpu":1000}'
		assert_failure 1
		assert_equal "$stderr" "nunet-send: error: unauthorized: ${DID[a]} may not invoke $be on this node: no capability token"
	done
	run nunet-send --to "${DID[b]}" /public/ping
	assert_success
	# every behavior b has, over one raw peer connection from c: only
	# /public/ ones answer
	export NUNET_HOME="$BATS_TEST_TMPDIR/b"
	C=$(nunet-node --home "$BATS_TEST_TMPDIR/c" id)
	nunet-send /node/behaviors | jq -r '.behaviors[] | "\(.be) \(.public)"' >"$BATS_TEST_TMPDIR/behaviors"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/behaviors")" -ge 15 ]
	while read -r be pub; do
		envelope "$C" "${DID[b]}" "$be" | test-tool env sign "$BATS_TEST_TMPDIR/c/key"
	done <"$BATS_TEST_TMPDIR/behaviors" >"$BATS_TEST_TMPDIR/requests"
	n=$(wc -l <"$BATS_TEST_TMPDIR/behaviors")
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$BATS_TEST_TMPDIR/c/key" public "$n" 10000 <"$BATS_TEST_TMPDIR/requests"
	assert_success
	# answers by behavior: the request's be from its id; a public behavior
	# may refuse the empty body, which is an answer, not a refusal of authority
	jq -r --slurpfile q <(jq -s . "$BATS_TEST_TMPDIR/requests") \
		'.re as $re | ($q[0][] | select(.id == $re) | .be) + " " +
		 (if .body.code == "unauthorized" then "unauthorized" else "answered" end)' \
		<<<"$output" | sort >"$BATS_TEST_TMPDIR/answers"
	awk '{ print $1, ($2 == "true" ? "answered" : "unauthorized") }' "$BATS_TEST_TMPDIR/behaviors" |
		sort >"$BATS_TEST_TMPDIR/expected"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/answers")" "$(cat "$BATS_TEST_TMPDIR/expected")"
	grep -q '^/public/ping answered$' "$BATS_TEST_TMPDIR/answers"
	# nothing happened: b is not onboarded and runs no allocation
	run nunet-node onboard --show
	assert_failure 1
	assert_equal "$(nunet-send /alloc/list | jq -c .allocations)" '[]'
	# b recorded one security.refused per refusal, with who and what
	want=$(( $(grep -c false "$BATS_TEST_TMPDIR/behaviors") + 5 ))
	within 5 '[ "$(nunet-node events --kind security.refused | wc -l)" -ge $want ]'
	nunet-node events --kind security.refused >"$BATS_TEST_TMPDIR/ev"
	assert_equal "$(jq -r 'select(.fields.from == "'"${DID[a]}"'") | .fields.be' "$BATS_TEST_TMPDIR/ev" | tr '\n' ' ')" \
		'/node/onboard /alloc/start /node/events /node/info /swarm/peers '
	assert_equal "$(jq -r 'select(.fields.from == "'"$C"'") | .fields.be' "$BATS_TEST_TMPDIR/ev" | sort)" \
		"$(awk '$2 == "false" { print $1 }' "$BATS_TEST_TMPDIR/behaviors" | sort)"
	assert_equal "$(jq -r '[.fields.code, .fields.peer] | join(" ")' "$BATS_TEST_TMPDIR/ev" | sort -u | wc -l)" 2
}

@test "a node without the swarm key learns nothing: no byte as a client, msg1 alone as a server" {
	nunet-node --home "$BATS_TEST_TMPDIR/a" init --new-swarm >/dev/null
	nunet-node --home "$BATS_TEST_TMPDIR/b" init --swarm-key "$BATS_TEST_TMPDIR/a/swarm.key" >/dev/null
	nunet-node --home "$BATS_TEST_TMPDIR/x" init --new-swarm >/dev/null
	X=$(nunet-node --home "$BATS_TEST_TMPDIR/x" id)
	# x listens as a plain TCP capture, and a is told (wrongly) that x is a peer
	python3 "$CAPTURE" listen "$BATS_TEST_TMPDIR/xport" "$BATS_TEST_TMPDIR/x-in" 12 &
	cap=$!
	within 5 '[ -s "$BATS_TEST_TMPDIR/xport" ]'
	start a --bootstrap "$X@127.0.0.1:$(cat "$BATS_TEST_TMPDIR/xport")"
	start b --bootstrap "${DID[a]}@${ADDR[a]}"
	within 5 'nunet-node --home "$BATS_TEST_TMPDIR/a" peers | grep -q "\"state\":\"alive\""'
	# 1. x as a client, a real SHS client with x's key: a writes not one byte
	netkey_x=$(cat "$BATS_TEST_TMPDIR/x/swarm.key")
	netkey_a=$(cat "$BATS_TEST_TMPDIR/a/swarm.key")
	pk_a=$(test-tool did pk "${DID[a]}")
	run python3 "$CAPTURE" connect "${ADDR[a]%:*}" "${ADDR[a]##*:}" "$BATS_TEST_TMPDIR/x-out" \
		shs-client "$netkey_x" "$pk_a"
	assert_failure
	assert_equal "$(stat -c %s "$BATS_TEST_TMPDIR/x-out")" 0
	# the same client with the swarm key gets msg2 and msg4 (64 + 80 bytes)
	# and then the box-stream that carries the member list: the capture sees
	run python3 "$CAPTURE" connect "${ADDR[a]%:*}" "${ADDR[a]##*:}" "$BATS_TEST_TMPDIR/in-out" \
		shs-client "$netkey_a" "$pk_a"
	assert_success
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/in-out")" -gt 144 ]
	# 2. x as a server: a dials it and sends msg1 only, 64 bytes: an
	# HMAC under a's swarm key of a fresh ephemeral key, then that key
	within 10 '[ "$(cat "$BATS_TEST_TMPDIR"/x-in.* 2>/dev/null | wc -c)" -ge 128 ]'
	kill "$cap"; wait "$cap" || true
	ls "$BATS_TEST_TMPDIR"/x-in.* >"$BATS_TEST_TMPDIR/conns"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/conns")" -ge 2 ]
	run python3 - "$netkey_a" "$pk_a" "$(nunet-node --home "$BATS_TEST_TMPDIR/b" id | xargs test-tool did pk)" \
		$(cat "$BATS_TEST_TMPDIR/conns") <<-'EOF'
	import hashlib, hmac, sys
	netkey, pk_a, pk_b = (bytes.fromhex(h) for h in sys.argv[1:4])
	seen = set()
	for path in sys.argv[4:]:
	    data = open(path, "rb").read()
	    if len(data) == 0:
	        continue            # a dial cut before it wrote
	    assert len(data) == 64, (path, len(data))
	    tag, eph = data[:32], data[32:]
	    assert hmac.new(netkey, eph, hashlib.sha512).digest()[:32] == tag, path
	    assert pk_a not in data and pk_b not in data, path
	    assert eph not in seen, "an ephemeral key used twice"
	    seen.add(eph)
	print(len(seen))
	EOF
	assert_success
	[ "$output" -ge 2 ]
	# 3. a real node x with its own key, told a's did and address: it ends
	# up knowing of no member, and b's did appears nowhere in what it holds
	start x --bootstrap "${DID[a]}@${ADDR[a]}"
	within 10 '[ "$(grep -c "handshake failed" "$BATS_TEST_TMPDIR/x.log")" -ge 2 ]'
	assert_equal "$(nunet-node --home "$BATS_TEST_TMPDIR/x" peers | jq -r 'select(.state == "alive") | .did')" ""
	node_stop_all
	run grep -rl "${DID[b]}" "$BATS_TEST_TMPDIR/x" "$BATS_TEST_TMPDIR/x.log"
	assert_failure
	run sqlite3 "$BATS_TEST_TMPDIR/x/node.db" 'SELECT COUNT(*) FROM events WHERE kind LIKE "msg.%"'
	assert_output 0
	# and a recorded each failed handshake as a refusal
	run nunet-node --home "$BATS_TEST_TMPDIR/a" events --kind security.refused
	assert_equal "$(jq -r '.fields | [.code, .dir] | join(" ")' <<<"$output" | sort -u | tr '\n' ,)" "handshake in,handshake out,"
	assert_equal "$(jq -r 'select(.fields.dir == "out") | .fields.peer' <<<"$output" | sort -u)" "$X"
}

@test "every kind of refusal is an event: forged, replayed, expired, unauthorized, over-delegated, wrong swarm key, oversize, not JSON" {
	for n in b c u v; do node_init "$BATS_TEST_TMPDIR/$n"; done
	jq '.max_line_bytes = 4096' "$BATS_TEST_TMPDIR/b/config.json" >"$BATS_TEST_TMPDIR/cfg" &&
		mv "$BATS_TEST_TMPDIR/cfg" "$BATS_TEST_TMPDIR/b/config.json"
	nunet-node --home "$BATS_TEST_TMPDIR/x" init --new-swarm >/dev/null
	start b
	C=$(nunet-node --home "$BATS_TEST_TMPDIR/c" id)
	V=$(nunet-node --home "$BATS_TEST_TMPDIR/v" id)
	U=$(nunet-node --home "$BATS_TEST_TMPDIR/u" id)
	key="$BATS_TEST_TMPDIR/c/key"
	sign() { test-tool env sign "$key"; }
	# c grants itself nothing; b grants c /node/info at depth 0, and c
	# delegates it on to v anyway (signed by hand): over-delegated
	tok=$(nunet-node --home "$BATS_TEST_TMPDIR/b" cap grant "$C" --cap /node/info --depth 0)
	over=$(jq -nc --arg v "$V" --argjson p "$tok" '{v:1, iss:$p.aud, aud:$v, cap:["/node/info"], exp:$p.exp,
		depth:0, nonce:"0123456789abcdef0123456789abcdef", parent:$p}' | test-tool captoken sign "$key")
	good=$(envelope "$C" "${DID[b]}" /public/ping | sign)
	{
		envelope "$C" "${DID[b]}" /public/ping | sign | jq -c '.body.n = 1'	# forged
		echo "$good"
		echo "$good"								# replayed
		envelope "$C" "${DID[b]}" /public/ping -120000 | sign			# expired
		envelope "$C" "${DID[b]}" /node/info | sign				# unauthorized
		envelope "$C" "${DID[b]}" /node/info 0 "[$tok]" | sign			# authorized: answered
		envelope "$C" "${DID[b]}" /public/ping | jq -c --arg pad "$(head -c 5000 /dev/zero | tr '\0' x)" \
			'.body.pad = $pad' | sign						# oversize
		echo 'this is not json'							# parse
		echo '[1,2]'								# not_object
		# a broadcast whose envelope was altered: dropped without an answer
		envelope "$C" '*' /broadcast/ping | sign |
			jq -c '{swim:"bc", hops:1, env:(.body.n = 2)}'
		envelope "$C" "${DID[b]}" /public/ping | sign				# answered
	} >"$BATS_TEST_TMPDIR/lines"
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$key" public 9 10000 <"$BATS_TEST_TMPDIR/lines"
	assert_success
	assert_equal "$(jq -r '.type + " " + (.body.code // "")' <<<"$output" | tr '\n' ,)" \
		"error bad_signature,reply ,error replay,error expired,error unauthorized,reply ,error parse,error not_object,reply ,"
	assert_equal "$(jq -r 'select(.body.code == "not_object") | .body.message' <<<"$output")" \
		"an envelope is a JSON object, not array"
	# v presents the over-delegated chain
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$BATS_TEST_TMPDIR/v/key" public 1 5000 \
		< <(envelope "$V" "${DID[b]}" /node/info 0 "[$over]" | test-tool env sign "$BATS_TEST_TMPDIR/v/key")
	assert_equal "$(jq -r .body.code <<<"$output")" unauthorized
	# u holds another swarm key: its handshake fails
	run test-tool swarm "${ADDR[b]}" "${DID[b]}" "$BATS_TEST_TMPDIR/u/key" "$BATS_TEST_TMPDIR/x/swarm.key" 1 5000 \
		< <(envelope "$U" "${DID[b]}" /public/ping | test-tool env sign "$BATS_TEST_TMPDIR/u/key")
	assert_failure 69
	# one event for each, in order, with its kind and code
	within 5 '[ "$(refusals b | wc -l)" -ge 10 ]'
	run refusals b
	assert_equal "$output" "security.refused bad_signature /public/ping
security.refused replay /public/ping
security.refused expired /public/ping
security.refused unauthorized /node/info
msg.refused oversize -
msg.refused parse -
msg.refused not_object -
security.refused bad_signature /broadcast/ping
security.refused unauthorized /node/info
security.refused handshake -"
	run nunet-node --home "$BATS_TEST_TMPDIR/b" events --level warn
	# who: the peer for each line refusal, the sender for envelopes
	assert_equal "$(jq -r 'select(.fields.code != "handshake") | .fields.peer' <<<"$output" | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')" \
		"$( [[ $C < $V ]] && echo '8 1 ' || echo '1 8 ')"
	[[ $(jq -r 'select(.fields.from == "'"$V"'") | .fields.message' <<<"$output") == *"over-delegated"* ]]
	[[ $(jq -r 'select(.fields.code == "handshake") | .fields.message' <<<"$output") == "handshake failed"* ]]
	[[ $(jq -r 'select(.fields.be == "/broadcast/ping") | .fields.message' <<<"$output") == "broadcast refused: "* ]]
	# and the node is still up and serving
	run env NUNET_HOME="$BATS_TEST_TMPDIR/b" nunet-send /node/ping
	assert_success
}
