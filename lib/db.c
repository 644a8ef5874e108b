/*
 * db — opening the store and migrating it.  A database written by a newer
 * program (user_version above what we know) is refused rather than
 * misread.
 */
#include "db.h"

#include <stdlib.h>
#include <string.h>
#include "util.h"

const char *const nn_node_schema[] = {
	/* 0 -> 1 */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE events ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  ts INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  trace TEXT,"
	"  body TEXT NOT NULL);"
	"CREATE INDEX events_ts ON events(ts);",
	NULL
};

int nn_db_exec(struct nn_db *db, const char *sql, char *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		nn_seterr(err, "sqlite: %s", msg ? msg : sqlite3_errmsg(db->h));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int user_version(struct nn_db *db, int *v, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return nn_seterr(err, "sqlite: %s", sqlite3_errmsg(db->h));
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return nn_seterr(err, "sqlite: %s", sqlite3_errmsg(db->h));
	}
	*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

int nn_db_open(struct nn_db *db, const char *path, const char *const *migrations, char *err)
{
	int known = 0, v = 0;
	char e[NN_ERRLEN];

	db->h = NULL;
	db->version = 0;
	while (migrations && migrations[known])
		known++;
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		nn_seterr(err, "cannot open database '%s': %s", path,
			  db->h ? sqlite3_errmsg(db->h) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(db->h, 5000);
	if (nn_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		       "PRAGMA foreign_keys=ON;", e) < 0 || user_version(db, &v, e) < 0) {
		nn_seterr(err, "database '%s': %s", path, e);
		goto fail;
	}
	if (v > known) {
		nn_seterr(err, "database '%s' has schema version %d; this program knows up to %d",
			  path, v, known);
		goto fail;
	}
	for (; v < known; v++) {
		char *bump = nn_xasprintf("PRAGMA user_version=%d; COMMIT;", v + 1);
		int r = nn_db_exec(db, "BEGIN IMMEDIATE", e);
		if (r == 0 && (r = nn_db_exec(db, migrations[v], e)) < 0)
			nn_db_exec(db, "ROLLBACK", NULL);
		if (r == 0)
			r = nn_db_exec(db, bump, e);
		free(bump);
		if (r < 0) {
			nn_seterr(err, "database '%s': migration to version %d failed: %s", path, v + 1, e);
			goto fail;
		}
	}
	db->version = v;
	return 0;
fail:
	if (db->h)
		sqlite3_close(db->h);
	db->h = NULL;
	return -1;
}

void nn_db_close(struct nn_db *db)
{
	if (db->h)
		sqlite3_close(db->h);
	db->h = NULL;
}
