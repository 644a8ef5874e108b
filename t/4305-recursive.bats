#!/usr/bin/env bats
# Allocations that start allocations, on one node: each allocation gets an
# identity and a token (NUNET_SOCKET, NUNET_KEY, NUNET_CAP, NUNET_ALLOC), so
# nunet-run inside a job talks to the node as that allocation; what it
# starts is its child; it sees and cancels only its own subtree; children's
# failures reach it; cancelling it tears its subtree down; its tokens die
# with it; the node's owner still sees everything.
load lib/common
load lib/docker

setup() {
	common_setup
	node_init
	# the renewal test wants tokens that live two seconds
	case "$BATS_TEST_DESCRIPTION" in
	*renewed*) NUNET_ALLOC_CAP_TTL=2s node_start ;;
	*) node_start ;;
	esac
	DID=$(nunet-node id)
	S="$BATS_TEST_TMPDIR"
	# ids name cgroups, which every node of the machine shares: unique ones
	U=-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')
}

teardown() {
	allocs_teardown
	engine_stop
}

wait_file() {
	for i in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done
	return 1
}

# the job's pid as the host sees it (native executor)
job_pid() {
	jq -r .pid "$NUNET_HOME/alloc/$1/native.json"
}

@test "a job runs nunet-run inside: it sees the child's output and exit code, the child is its own" {
	run --separate-stderr nunet-run --id orch$U --env PATH="$PATH" -- \
		sh -c 'nunet-run -- sh -c "echo child \$NUNET_ALLOC; echo oops >&2; exit 3"; echo "child exit $?"'
	assert_success
	assert_equal "${lines[1]}" "child exit 3"
	[[ "${lines[0]}" == "child "* ]]
	kid=${lines[0]#child }
	[ "$kid" != orch$U ]
	[[ "$stderr" == *oops* ]]
	run nunet-run status orch$U
	assert_equal "$(jq -c .children <<<"$output")" "[\"$kid\"]"
	# the child's failure is in the parent's record and its children.jsonl
	assert_equal "$(jq -c '.failed_children[] | [.id, .state, .status]' <<<"$output")" "[\"$kid\",\"exited\",3]"
	assert_equal "$(jq -r '.child + " " + (.status|tostring)' "$NUNET_HOME/alloc/orch$U/children.jsonl")" "$kid 3"
	assert_equal "$(nunet-run status "$kid" | jq -r .parent)" orch$U
}

@test "the allocation's credentials: a key only it can read, a token from the node for /alloc and /deploy, revoked at its end" {
	run nunet-run --id cred$U -- sh -c 'echo "$NUNET_SOCKET"; echo "$NUNET_KEY"; echo "$NUNET_CAP"; echo "$NUNET_ALLOC"
		stat -c %a "$NUNET_KEY" "${NUNET_KEY%/*}" "$NUNET_CAP"; cat "$NUNET_CAP"'
	assert_success
	dir="$NUNET_HOME/alloc/cred$U"
	assert_equal "${lines[0]}" "$NUNET_HOME/node.sock"
	assert_equal "${lines[1]}" "$dir/cred/key"
	assert_equal "${lines[2]}" "$dir/cred/cap"
	assert_equal "${lines[3]}" cred$U
	assert_equal "${lines[4]} ${lines[5]} ${lines[6]}" "600 700 600"
	tok=${lines[7]}
	adid=$(nunet-run status cred$U | jq -r .did)
	[[ "$adid" == did:key:z6Mk* ]] && [ "$adid" != "$DID" ]
	assert_equal "$(jq -c '[.iss, .aud, .cap, .depth]' <<<"$tok")" "[\"$DID\",\"$adid\",[\"/alloc\",\"/deploy\",\"/public/deploy\"],0]"
	now=$(date +%s%3N)
	exp=$(jq .exp <<<"$tok")
	(( exp > now && exp <= now + 3600000 ))
	# it ended: the files are gone and every token it had is revoked
	[ ! -e "$dir/cred" ]
	run nunet-node cap list
	assert_equal "$(jq -r --arg a "$adid" 'select(.aud == $a) | .revoked' <<<"$output" | sort -u)" true
}

@test "inside, ls shows only its subtree; others' status, logs, cancel and a foreign parent are refused; the owner sees all" {
	nunet-run -d --id other$U -- sleep 300 >/dev/null
	wait_state other$U running
	cat >"$S/orch.sh" <<-'EOF'
		nunet-run -d --id kid1$U --env PATH="$PATH" -- sleep 300 >/dev/null
		nunet-run -d --id kid2$U --parent kid1$U -- sleep 300 >/dev/null
		echo "ls: $(nunet-run ls | jq -r .id | sort | tr '\n' ' ')"
		nunet-run status other$U; echo "status: $?"
		nunet-run logs other$U; echo "logs: $?"
		nunet-run cancel other$U; echo "cancel: $?"
		nunet-run -d --parent other$U -- true; echo "parent: $?"
		nunet-send /alloc/list '{"all":true}' | jq -r '.allocations[].id' | sort | tr '\n' ' '; echo
		nunet-run cancel --grace 0s kid1$U | jq -cS .
		nunet-run wait kid1$U; echo "kid1$U: $?"
	EOF
	run --separate-stderr nunet-run --id orch$U --env PATH="$PATH" --env U="$U" -- sh "$S/orch.sh"
	assert_success
	assert_equal "${lines[0]}" "ls: kid1$U kid2$U orch$U "
	assert_equal "${lines[1]}" "status: 1"
	assert_equal "${lines[2]}" "logs: 1"
	assert_equal "${lines[3]}" "cancel: 1"
	assert_equal "${lines[4]}" "parent: 1"
	assert_equal "${lines[5]}" "kid1$U kid2$U orch$U "
	assert_equal "${lines[6]}" "{\"cancelled\":true,\"id\":\"kid1$U\"}"
	assert_equal "${lines[7]}" "kid1$U: 137"
	[[ "$stderr" == *"allocation orch$U may act only on itself and its descendants, not on 'other$U'"* ]]
	[[ "$stderr" == *"parent: allocation orch$U may start children only under itself and its descendants, not under 'other$U'"* ]]
	assert_equal "$(nunet-run status kid2$U | jq -r '.parent, .state')" "kid1$U
killed"
	# the other allocation was left alone; the owner sees everything
	assert_equal "$(nunet-run status other$U | jq -r .state)" running
	assert_equal "$(nunet-run ls -a | jq -r .id | sort | tr '\n' ' ')" "kid1$U kid2$U orch$U other$U "
}

@test "a grandchild; cancelling the parent stops child and grandchild first, and their processes are gone" {
	cat >"$S/kid.sh" <<-'EOF'
		nunet-run -d --id grand$U -- sleep 300 >/dev/null
		exec sleep 300
	EOF
	cat >"$S/orch.sh" <<-EOF
		nunet-run -d --id kid$U --env PATH="\$PATH" --env U=$U -- sh "$S/kid.sh" >/dev/null
		exec sleep 300
	EOF
	nunet-run -d --id orch$U --env PATH="$PATH" -- sh "$S/orch.sh" >/dev/null
	wait_state grand$U running
	wait_state kid$U running
	assert_equal "$(nunet-run status grand$U | jq -r .parent) $(nunet-run status kid$U | jq -r .parent)" "kid$U orch$U"
	pids="$(job_pid orch$U) $(job_pid kid$U) $(job_pid grand$U)"
	for p in $pids; do kill -0 "$p"; done
	nunet-run cancel --grace 1s orch$U >/dev/null
	run nunet-run wait orch$U
	assert_failure 137
	assert_equal "$(nunet-run status kid$U | jq -r .state) $(nunet-run status grand$U | jq -r .state)" "killed killed"
	# children first: the grandchild ended before the child, the child before the parent
	g=$(nunet-run status grand$U | jq '.states[-1].ts')
	k=$(nunet-run status kid$U | jq '.states[-1].ts')
	o=$(nunet-run status orch$U | jq '.states[-1].ts')
	[ "$g" -le "$k" ] && [ "$k" -le "$o" ]
	# each end reached its own parent, at every level
	assert_equal "$(nunet-run status kid$U | jq -c '[.failed_children[] | .id, .state]')" "[\"grand$U\",\"killed\"]"
	assert_equal "$(nunet-run status orch$U | jq -c '[.failed_children[] | .id, .state]')" "[\"kid$U\",\"killed\"]"
	assert_equal "$(jq -r .child "$NUNET_HOME/alloc/kid$U/children.jsonl")" grand$U
	for p in $pids; do
		for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		run kill -0 "$p"
		assert_failure
	done
}

@test "a parent that ends takes its live children with it" {
	nunet-run --id orch$U --env PATH="$PATH" --env U="$U" -- \
		sh -c 'nunet-run -d --id orphan$U -- sh -c "trap \"exit 0\" TERM; while :; do sleep 0.1; done" >/dev/null'
	wait_state orch$U exited
	for i in $(seq 100); do
		[ "$(nunet-run status orphan$U | jq .final)" = true ] && break
		sleep 0.1
	done
	assert_equal "$(nunet-run status orphan$U | jq -r .final)" true
	grep -q "alloc orphan$U: its parent has ended: cancelling it" "$S/node.log"
}

@test "the token no longer works after the allocation ended, even from a copy of its files" {
	mkdir "$S/copy"
	nunet-run -d --id thief$U -- sh -c "cp \"\$NUNET_KEY\" \"\$NUNET_CAP\" $S/copy/ && touch $S/copy/done
		while [ ! -e $S/copy/end ]; do sleep 0.05; done" >/dev/null
	wait_file "$S/copy/done"
	as_copy() {
		env -u NUNET_HOME NUNET_SOCKET="$NUNET_HOME/node.sock" NUNET_KEY="$S/copy/key" \
			NUNET_CAP="$S/copy/cap" "$@"
	}
	# while it runs, the copy acts as the allocation
	run as_copy nunet-send /alloc/list
	assert_success
	assert_equal "$(jq -r '.allocations[].id' <<<"$output")" thief$U
	touch "$S/copy/end"
	wait_state thief$U exited
	run --separate-stderr as_copy nunet-send /alloc/list
	assert_failure 1
	[[ "$stderr" == *"capability token "*" was revoked"* ]]
	run --separate-stderr as_copy nunet-run ls
	assert_failure 1
}

@test "a forged or foreign token is refused" {
	mkdir "$S/copy"
	nunet-run -d --id victim$U -- sh -c "cp \"\$NUNET_KEY\" \"\$NUNET_CAP\" $S/copy/; sleep 300" >/dev/null
	wait_state victim$U running
	wait_file "$S/copy/cap"
	call() {	# KEY CAP BE: as an allocation would, with these files
		env -u NUNET_HOME NUNET_SOCKET="$NUNET_HOME/node.sock" NUNET_KEY="$1" NUNET_CAP="$2" \
			nunet-send "$3"
	}
	# a token whose capabilities were widened after signing
	jq -c '.cap = ["/"]' "$S/copy/cap" >"$S/forged"
	run --separate-stderr call "$S/copy/key" "$S/forged" /node/info
	assert_failure 1
	[[ "$stderr" == *"bad signature"* ]]
	# the token does not cover other behaviors
	run --separate-stderr call "$S/copy/key" "$S/copy/cap" /node/info
	assert_failure 1
	[[ "$stderr" == *"capability token does not cover /node/info"* ]]
	# the token with another key
	node_init "$S/u"
	run --separate-stderr call "$S/u/key" "$S/copy/cap" /alloc/list
	assert_failure 1
	[[ "$stderr" == *"capability token was granted to"*"not to the sender"* ]]
	# a token of another node, for another identity
	node_init "$S/b"
	nunet-node --home "$S/b" cap grant "$(nunet-node --home "$S/u" id)" --cap /alloc >"$S/foreign"
	run --separate-stderr call "$S/u/key" "$S/foreign" /alloc/list
	assert_failure 1
	[[ "$stderr" == *"not in an owner of this node"* ]]
	# no token at all
	run --separate-stderr env -u NUNET_HOME NUNET_SOCKET="$NUNET_HOME/node.sock" NUNET_KEY="$S/copy/key" \
		nunet-send /alloc/list
	assert_failure 1
	[[ "$stderr" == *"no capability token"* ]]
	assert_equal "$(nunet-run status victim$U | jq -r .state)" running
}

@test "tokens are renewed while the allocation lives" {
	# this node's tokens live 2 s: renewed when half is gone
	run nunet-run --id long$U --env PATH="$PATH" -- sh -c \
		'a=$(jq .exp "$NUNET_CAP"); sleep 3.5; b=$(jq .exp "$NUNET_CAP"); [ "$b" -gt "$a" ] && echo renewed
		 nunet-run ls | jq -r .id'
	assert_success
	assert_equal "$output" "renewed
long$U"
	# what the node still lists of its tokens is revoked (the expired ones
	# are pruned: t/8103)
	run nunet-node cap list
	assert_equal "$(jq -r --arg a "$(nunet-run status long$U | jq -r .did)" 'select(.aud == $a and .revoked != true)' <<<"$output")" ""
}

@test "nunet-run(1): an orchestration script that starts two children and waits for both" {
	cd "$S"
	# the example, as written in the man page
	cat >orchestrate.sh <<-'EOF'
		#!/bin/sh
		a=$(nunet-run -d -- sh -c 'echo part one')
		b=$(nunet-run -d -- sh -c 'echo part two; exit 2')
		nunet-run wait "$a"; ra=$?
		nunet-run wait "$b"; rb=$?
		nunet-run logs "$a"; nunet-run logs "$b"
		echo "children: $ra $rb"
		[ $ra -eq 0 ] && [ $rb -eq 0 ]
	EOF
	chmod +x orchestrate.sh
	run nunet-run --env PATH="$PATH" -- "$PWD/orchestrate.sh"
	assert_failure 1
	assert_equal "$output" "part one
part two
children: 0 2"
	id=$(nunet-run ls -a | jq -r 'select(.parent == null) | .id')
	assert_equal "$(nunet-run status "$id" | jq '.children | length')" 2
	assert_equal "$(nunet-run status "$id" | jq '.failed_children[].status')" 2
}

@test "a container gets the socket and its credentials read-only, and talks to the node as its allocation" {
	command -v dockerd >/dev/null || skip "dockerd is not installed (Debian: docker.io)"
	docker_engine_start
	# the node's shims reach the private engine through DOCKER_HOST
	node_stop_all
	node_start
	# the host's libraries (and loader) and the build's programs, so that
	# nunet-send runs in the busybox image
	ld=/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	[ -x "$ld" ] || skip "no $ld to run the build's programs in a container"
	body=$(jq -nc --arg b "$NUNET_BUILD/bin" --arg ld "$ld" --arg id "box$U" '{spec: {executor: "docker", image: "bb:local",
		id: $id, options: {binds: ["/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:ro", ($b + ":/nn:ro")]},
		command: ["sh", "-c", ("echo $NUNET_SOCKET $NUNET_KEY $NUNET_CAP $NUNET_ALLOC; "
			+ "touch $NUNET_CAP 2>/dev/null || echo read-only; "
			+ $ld + " /nn/nunet-send /alloc/list; " + $ld + " /nn/nunet-send /node/info; echo info: $?")]}}')
	nunet-send /alloc/start "$body" >/dev/null
	run --separate-stderr nunet-run wait box$U
	assert_success
	run nunet-run logs box$U
	assert_equal "${lines[0]}" "/run/nunet/node.sock /run/nunet/cred/key /run/nunet/cred/cap box$U"
	assert_equal "${lines[1]}" read-only
	assert_equal "$(jq -r '.allocations[].id' <<<"${lines[2]}")" box$U
	[[ "${lines[3]}" == *'"error":'*"not cover /node/info"* ]]
	assert_equal "${lines[4]}" "info: 1"
	# and its token is revoked now that it ended
	run nunet-node cap list
	assert_equal "$(jq -r --arg a "$(nunet-run status box$U | jq -r .did)" 'select(.aud == $a) | .revoked' <<<"$output")" true
	within 15 '[ "$(engine_api GET "/containers/json?all=true" | jq length)" = 0 ]'
	# binds are checked before anything starts
	run --separate-stderr nunet-send /alloc/start \
		'{"spec":{"executor":"docker","image":"bb:local","command":["true"],"options":{"binds":["/no/such:/x"]}}}'
	assert_failure 65
	[[ "$stderr" == *"options.binds: expected an array of \"HOST:CONTAINER[:ro]\""* ]]
}
