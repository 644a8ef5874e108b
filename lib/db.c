/*
 * db — opening the store and migrating it.  A database written by a newer
 * program (user_version above what we know) is refused rather than
 * misread.
 */
#include "db.h"

#include <string.h>
#include "json.h"

#include <stdlib.h>
#include <stdio.h>
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
	/* 1 -> 2 */
	"CREATE TABLE nn_modules (name TEXT PRIMARY KEY, version INTEGER NOT NULL);",
	/* 2 -> 3: events carry a level and a span (man/nunet-events.5) */
	"ALTER TABLE events ADD COLUMN level TEXT NOT NULL DEFAULT 'info';"
	"ALTER TABLE events ADD COLUMN span TEXT;"
	"CREATE INDEX events_trace ON events(trace) WHERE trace IS NOT NULL;",
	/* 3 -> 4: ts grows with seq, so queries by time walk seq; an index on
	 * ts only cost every insert */
	"DROP INDEX events_ts;",
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

int nn_db_migrate_module(struct nn_db *db, const char *name, const char *const *steps, char *err)
{
	sqlite3_stmt *st;
	int known = 0, v = 0;
	char e[NN_ERRLEN];

	while (steps && steps[known])
		known++;
	if (nn_db_exec(db, "CREATE TABLE IF NOT EXISTS nn_modules (name TEXT PRIMARY KEY,"
		       " version INTEGER NOT NULL)", e) < 0)
		return nn_seterr(err, "module %s: %s", name, e);
	if (sqlite3_prepare_v2(db->h, "SELECT version FROM nn_modules WHERE name = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return nn_seterr(err, "module %s: sqlite: %s", name, sqlite3_errmsg(db->h));
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (v > known)
		return nn_seterr(err, "module %s has schema version %d; this program knows up to %d",
				 name, v, known);
	for (; v < known; v++) {
		int r = nn_db_exec(db, "BEGIN IMMEDIATE", e);
		if (r == 0 && (r = nn_db_exec(db, steps[v], e)) == 0) {
			if (sqlite3_prepare_v2(db->h, "INSERT INTO nn_modules (name, version) VALUES (?, ?)"
					       " ON CONFLICT(name) DO UPDATE SET version = excluded.version",
					       -1, &st, NULL) != SQLITE_OK) {
				snprintf(e, sizeof e, "%s", sqlite3_errmsg(db->h));
				r = -1;
			} else {
				sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
				sqlite3_bind_int(st, 2, v + 1);
				if (sqlite3_step(st) != SQLITE_DONE) {
					snprintf(e, sizeof e, "%s", sqlite3_errmsg(db->h));
					r = -1;
				}
				sqlite3_finalize(st);
			}
		}
		if (r == 0)
			r = nn_db_exec(db, "COMMIT", e);
		if (r < 0) {
			nn_db_exec(db, "ROLLBACK", NULL);
			return nn_seterr(err, "module %s: migration to version %d failed: %s", name, v + 1, e);
		}
	}
	return 0;
}

jv nn_db_col_str(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? jv_string(t) : jv_null();
}

jv nn_db_col_json(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	jv v;
	if (!t)
		return jv_null();
	v = nn_json_parse(t, strlen(t), NULL);
	return jv_is_valid(v) ? v : (jv_free(v), jv_null());
}
