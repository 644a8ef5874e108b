#!/usr/bin/env bats
# The sqlite store: WAL, migrations by user_version.
load lib/common

@test "a new store is created in WAL mode and migrated step by step" {
	run test-tool db "$BATS_TEST_TMPDIR/s.db" 1
	assert_success
	assert_output $'version 1\njournal wal\ntable a'
	run test-tool db "$BATS_TEST_TMPDIR/s.db" 2
	assert_output $'version 2\njournal wal\ntable a\ntable b'
	assert_equal "$(sqlite3 "$BATS_TEST_TMPDIR/s.db" 'PRAGMA user_version; SELECT count(*) FROM a')" $'2\n1'
}

@test "a failing migration is rolled back whole and names its version" {
	test-tool db "$BATS_TEST_TMPDIR/s.db" 2
	run test-tool db "$BATS_TEST_TMPDIR/s.db" 3
	assert_failure
	assert_output --partial 'migration to version 3 failed'
	assert_equal "$(sqlite3 "$BATS_TEST_TMPDIR/s.db" 'PRAGMA user_version')" 2
	run sqlite3 "$BATS_TEST_TMPDIR/s.db" "SELECT name FROM sqlite_master WHERE name='c'"
	assert_output ''
}

@test "a store from a newer program is refused, not misread" {
	test-tool db "$BATS_TEST_TMPDIR/s.db" 2
	sqlite3 "$BATS_TEST_TMPDIR/s.db" 'PRAGMA user_version=9'
	run test-tool db "$BATS_TEST_TMPDIR/s.db" 2
	assert_failure
	assert_output --partial 'schema version 9; this program knows up to 2'
}

@test "a store that is not a database is refused" {
	echo garbage >"$BATS_TEST_TMPDIR/s.db"
	run test-tool db "$BATS_TEST_TMPDIR/s.db" 1
	assert_failure
	assert_output --partial 'not a database'
}

@test "modules migrate their own tables independently of user_version" {
	run test-tool db "$BATS_TEST_TMPDIR/n.db" alpha 1
	assert_success
	assert_output $'user_version 4\nmodule alpha 1'
	run test-tool db "$BATS_TEST_TMPDIR/n.db" alpha 2
	assert_output $'user_version 4\nmodule alpha 2'
	run test-tool db "$BATS_TEST_TMPDIR/n.db" beta 0
	assert_output $'user_version 4\nmodule alpha 2'
	run test-tool db "$BATS_TEST_TMPDIR/n.db" alpha 3
	assert_failure
	assert_output --partial 'module alpha: migration to version 3 failed'
	run test-tool db "$BATS_TEST_TMPDIR/n.db" alpha 1
	assert_failure
	assert_output --partial 'module alpha has schema version 2; this program knows up to 1'
}
