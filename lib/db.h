/*
 * db — the sqlite store: WAL mode, synchronous=NORMAL, a busy timeout, and
 * schema migrations by PRAGMA user_version.
 *
 * migrations[i] is the SQL that takes the schema from version i to i+1; the
 * array ends with NULL.  Each step runs in its own transaction together with
 * the user_version bump, so a crash leaves the schema at a whole version.
 */
#ifndef NN_DB_H
#define NN_DB_H

#include <sqlite3.h>

struct nn_db {
	sqlite3 *h;
	int version;
};

int nn_db_open(struct nn_db *db, const char *path, const char *const *migrations, char *err);
void nn_db_close(struct nn_db *db);
/* Run SQL with no results. */
int nn_db_exec(struct nn_db *db, const char *sql, char *err);

/*
 * A part of the toolkit that keeps its own tables in a shared store (the
 * node's allocations, resources, peers…) migrates them on its own, as
 * module `name`: its version lives in the table nn_modules, not in
 * user_version, so parts can grow their schemas independently.  Same rules:
 * steps[i] takes the module from version i to i+1, NULL-terminated, each
 * step in one transaction; a newer module version than known is refused.
 */
int nn_db_migrate_module(struct nn_db *db, const char *name, const char *const *steps, char *err);

/* Column i of a row as a jv (new): a string, or null for SQL NULL;
 * _json parses the text (null when NULL or not JSON). */
#include <jv.h>
jv nn_db_col_str(sqlite3_stmt *st, int i);
jv nn_db_col_json(sqlite3_stmt *st, int i);

/* The node's schema (all versions). */
extern const char *const nn_node_schema[];

#endif
