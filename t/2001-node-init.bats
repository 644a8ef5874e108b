#!/usr/bin/env bats
# nunet-node init and id: the node's home, identity, config and store.
load lib/common

@test "init makes the home with key, config and store, and prints the did" {
	run nunet-node init
	assert_success
	assert_output --regexp '^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$'
	did=$output
	assert_equal "$(stat -c %a "$NUNET_HOME")" 700
	assert_equal "$(stat -c %a "$NUNET_HOME/key")" 600
	jq -e '.max_line_bytes == 1048576' "$NUNET_HOME/config.json"
	assert_equal "$(sqlite3 "$NUNET_HOME/node.db" 'PRAGMA journal_mode; PRAGMA user_version')" $'wal\n4'
	run nunet-node id
	assert_success
	assert_output "$did"
}

@test "init refuses to overwrite an existing identity" {
	nunet-node init
	before=$(nunet-node id)
	run --separate-stderr nunet-node init
	assert_failure 1
	assert_equal "$stderr" "nunet-node: error: '$NUNET_HOME/key' exists: refusing to overwrite an identity"
	assert_equal "$(nunet-node id)" "$before"
}

@test "--home overrides NUNET_HOME, before or after the command" {
	run nunet-node --home "$BATS_TEST_TMPDIR/a" init
	assert_success
	a=$output
	run nunet-node init --home "$BATS_TEST_TMPDIR/b"
	b=$output
	assert [ "$a" != "$b" ]
	assert_equal "$(nunet-node --home "$BATS_TEST_TMPDIR/a" id)" "$a"
	[ ! -e "$NUNET_HOME" ]
}

@test "without NUNET_HOME the home is \$XDG_DATA_HOME/nunet, else ~/.local/share/nunet" {
	unset NUNET_HOME
	XDG_DATA_HOME="$BATS_TEST_TMPDIR/xdg" nunet-node init
	[ -f "$BATS_TEST_TMPDIR/xdg/nunet/key" ]
	nunet-node init
	[ -f "$HOME/.local/share/nunet/key" ]
}

@test "a passphrase seals the key; id and run need it" {
	echo 'open sesame' >"$BATS_TEST_TMPDIR/pass"
	run nunet-node init --passphrase-file "$BATS_TEST_TMPDIR/pass"
	assert_success
	did=$output
	run jq -r 'has("seed")' "$NUNET_HOME/key"
	assert_output false
	run --separate-stderr nunet-node id
	assert_failure
	assert_equal "$stderr" "nunet-node: error: '$NUNET_HOME/key' is sealed with a passphrase: set NUNET_PASSPHRASE"
	NUNET_PASSPHRASE='open sesame' run nunet-node id
	assert_output "$did"
	NUNET_PASSPHRASE='wrong' run nunet-node id
	assert_failure
	assert_output --partial 'wrong passphrase'
	export NUNET_PASSPHRASE='open sesame'
	node_start
	run nunet-send /node/info
	assert_success
	assert_equal "$(jq -r .did <<<"$output")" "$did"
}

@test "id without a node says how to make one" {
	run --separate-stderr nunet-node id
	assert_failure 78
	assert_equal "$stderr" "nunet-node: error: cannot open '$NUNET_HOME/key': No such file or directory"
}

@test "usage: -h to stdout, bad options and commands to stderr with 64" {
	run nunet-node -h
	assert_success
	assert_line --index 0 'usage: nunet-node [--home DIR] init [--passphrase-file FILE]'
	run --separate-stderr nunet-node --frobnicate
	assert_failure 64
	run --separate-stderr nunet-node launch
	assert_failure 64
	assert_equal "${stderr_lines[0]}" "nunet-node: error: unknown command 'launch'"
	run nunet-node --version
	assert_output --regexp '^nunet-node [0-9]+\.[0-9]+\.[0-9]+$'
}
