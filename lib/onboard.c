/*
 * onboard — the reservation a node offers and the commitments against it,
 * kept in the node's store, and the daemon behaviors that show and change
 * them.  Each change runs in one BEGIN IMMEDIATE transaction that reads
 * what it checks (the machine, the committed total) and writes the result,
 * so two writers (the daemon and an allocation shim's node call, or a test
 * tool) cannot both pass a check that only one of them may pass.  The
 * offered document is built here from the machine's with nn_cap_restrict(),
 * and /node/match runs lib/match.c on it, the code of nunet-match.
 */
#include "onboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "env.h"
#include "json.h"
#include "match.h"
#include "node.h"

static const char *const schema[] = {
	/* 0 -> 1 */
	"CREATE TABLE onboard ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  machine TEXT NOT NULL,"		/* the capability document given */
	"  capability TEXT NOT NULL,"		/* the offered document */
	"  cpu INTEGER NOT NULL, ram INTEGER NOT NULL, disk INTEGER NOT NULL,"
	"  gpus INTEGER NOT NULL, vram INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL);"
	"CREATE TABLE onboard_commit ("
	"  id TEXT PRIMARY KEY,"		/* the allocation */
	"  cpu INTEGER NOT NULL, ram INTEGER NOT NULL, disk INTEGER NOT NULL,"
	"  gpus INTEGER NOT NULL, vram INTEGER NOT NULL,"
	"  ts INTEGER NOT NULL);",
	NULL
};

#define ID_MAX 128

int nn_onboard_migrate(struct nn_db *db, char *err)
{
	return nn_db_migrate_module(db, "onboard", schema, err);
}

/* ---- store helpers ---- */

static int begin(struct nn_db *db, const char *how, char *err)
{
	char e[NN_ERRLEN];
	if (nn_db_exec(db, how, e) < 0)
		return nn_seterr(err, "onboard: %s", e);
	return 0;
}

static int commit(struct nn_db *db, char *err)
{
	char e[NN_ERRLEN];
	if (nn_db_exec(db, "COMMIT", e) < 0) {
		nn_db_exec(db, "ROLLBACK", NULL);
		return nn_seterr(err, "onboard: %s", e);
	}
	return 0;
}

static void rollback(struct nn_db *db)
{
	nn_db_exec(db, "ROLLBACK", NULL);
}

static int sqlerr(struct nn_db *db, char *err)
{
	return nn_seterr(err, "onboard: sqlite: %s", sqlite3_errmsg(db->h));
}

static void col_res(sqlite3_stmt *st, int col, struct nn_res *r)
{
	r->cpu = sqlite3_column_int64(st, col);
	r->ram = sqlite3_column_int64(st, col + 1);
	r->disk = sqlite3_column_int64(st, col + 2);
	r->gpus = sqlite3_column_int64(st, col + 3);
	r->vram = sqlite3_column_int64(st, col + 4);
}

static void bind_res(sqlite3_stmt *st, int col, const struct nn_res *r)
{
	sqlite3_bind_int64(st, col, r->cpu);
	sqlite3_bind_int64(st, col + 1, r->ram);
	sqlite3_bind_int64(st, col + 2, r->disk);
	sqlite3_bind_int64(st, col + 3, r->gpus);
	sqlite3_bind_int64(st, col + 4, r->vram);
}

/* The sum of the commitments and their number. */
static int committed(struct nn_db *db, struct nn_res *sum, int64_t *count, char *err)
{
	sqlite3_stmt *st;
	struct nn_res z = { 0, 0, 0, 0, 0 };
	int rc;

	*sum = z;
	*count = 0;
	if (sqlite3_prepare_v2(db->h, "SELECT cpu, ram, disk, gpus, vram FROM onboard_commit",
			       -1, &st, NULL) != SQLITE_OK)
		return sqlerr(db, err);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct nn_res r;
		char e[NN_ERRLEN];
		col_res(st, 0, &r);
		if (nn_res_add(sum, sum, &r, e) < 0) {
			sqlite3_finalize(st);
			return nn_seterr(err, "onboard: committed resources: %s", e);
		}
		(*count)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlerr(db, err);
	return 0;
}

/* The onboarding row: 1 found, 0 none, -1 error.  machine and capability
 * (if not NULL) receive new jv values. */
struct row {
	struct nn_res total, reserved;
	int64_t updated;
	jv machine, capability;
};

static int load(struct nn_db *db, struct row *row, char *err)
{
	sqlite3_stmt *st;
	char e[NN_ERRLEN];
	int rc;

	row->machine = row->capability = jv_invalid();
	if (sqlite3_prepare_v2(db->h, "SELECT machine, capability, cpu, ram, disk, gpus, vram,"
			       " updated FROM onboard WHERE id = 1", -1, &st, NULL) != SQLITE_OK)
		return sqlerr(db, err);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(st);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return sqlerr(db, err);
	}
	row->machine = nn_json_parse((const char *)sqlite3_column_text(st, 0),
				     (size_t)sqlite3_column_bytes(st, 0), e);
	row->capability = nn_json_parse((const char *)sqlite3_column_text(st, 1),
					(size_t)sqlite3_column_bytes(st, 1), e);
	col_res(st, 2, &row->reserved);
	row->updated = sqlite3_column_int64(st, 7);
	sqlite3_finalize(st);
	if (!jv_is_valid(row->machine) || !jv_is_valid(row->capability) ||
	    nn_res_from_doc(&row->total, row->machine, e) < 0) {
		jv_free(row->machine);
		jv_free(row->capability);
		row->machine = row->capability = jv_invalid();
		return nn_seterr(err, "onboard: the stored onboarding is damaged: %s", e);
	}
	return 1;
}

static void row_release(struct row *row)
{
	jv_free(row->machine);
	jv_free(row->capability);
	row->machine = row->capability = jv_invalid();
}

/* free = reserved - committed, zero where committed is larger. */
static void free_of(const struct nn_res *reserved, const struct nn_res *used, struct nn_res *out)
{
	struct nn_res x;
	if (nn_res_sub(&x, reserved, used, NULL) == 0) {
		*out = x;
		return;
	}
	out->cpu = reserved->cpu > used->cpu ? reserved->cpu - used->cpu : 0;
	out->ram = reserved->ram > used->ram ? reserved->ram - used->ram : 0;
	out->disk = reserved->disk > used->disk ? reserved->disk - used->disk : 0;
	out->gpus = reserved->gpus > used->gpus ? reserved->gpus - used->gpus : 0;
	out->vram = reserved->vram > used->vram ? reserved->vram - used->vram : 0;
}

/* ---- onboarding ---- */

/* A plain member of req (borrowed): the value or invalid when absent/null. */
static jv member(jv req, const char *key)
{
	jv v = jv_object_get(jv_copy(req), jv_string(key));
	if (jv_is_valid(v) && jv_get_kind(v) == JV_KIND_NULL) {
		jv_free(v);
		return jv_invalid();
	}
	return v;
}

/* The reservation asked for in req against machine (both borrowed): the
 * vector, and the machine's document with only the chosen GPUs. */
static int plan(jv req, jv machine, struct nn_res *r, jv *doc, char *err)
{
	static const char *const known[] = { "machine", "cpu", "ram", "disk", "gpus", "price",
					     "location" };
	jv v, gpus, chosen = jv_array();
	char e[NN_ERRLEN];
	int n = 0;

	jv_object_foreach(req, k, val) {
		size_t i;
		for (i = 0; i < sizeof known / sizeof *known; i++)
			if (!strcmp(jv_string_value(k), known[i]))
				break;
		if (i == sizeof known / sizeof *known) {
			nn_seterr(err, "unknown member '%.64s'", jv_string_value(k));
			jv_free(k);
			jv_free(val);
			jv_free(chosen);
			return -1;
		}
		jv_free(k);
		jv_free(val);
	}
	memset(r, 0, sizeof *r);
	v = member(req, "cpu");
	if (jv_get_kind(v) != JV_KIND_NUMBER || !nn_json_is_int(jv_number_value(v)) ||
	    jv_number_value(v) <= 0 || jv_number_value(v) > 1e15) {
		jv_free(v);
		jv_free(chosen);
		return nn_seterr(err, "cpu: expected a whole number of millicores above 0");
	}
	r->cpu = (int64_t)jv_number_value(v);
	jv_free(v);
	v = member(req, "ram");
	if (!jv_is_valid(v) || nn_cap_size(v, "ram", &r->ram, err) < 0 || r->ram == 0) {
		if (!jv_is_valid(v) || r->ram == 0)
			nn_seterr(err, "ram: expected a size above 0");
		jv_free(v);
		jv_free(chosen);
		return -1;
	}
	jv_free(v);
	v = member(req, "disk");
	if (jv_is_valid(v) && nn_cap_size(v, "disk", &r->disk, err) < 0) {
		jv_free(v);
		jv_free(chosen);
		return -1;
	}
	jv_free(v);

	gpus = jv_object_get(jv_copy(machine), jv_string("gpus"));
	if (jv_get_kind(gpus) == JV_KIND_ARRAY)
		n = jv_array_length(jv_copy(gpus));
	v = member(req, "gpus");
	if (jv_is_valid(v)) {
		if (jv_get_kind(v) != JV_KIND_ARRAY) {
			jv_free(v);
			jv_free(gpus);
			jv_free(chosen);
			return nn_seterr(err, "gpus: expected an array of GPU indexes");
		}
		char *taken = nn_xcalloc((size_t)n + 1, 1);
		int bad = 0;
		jv_array_foreach(v, i, x) {
			double d = jv_get_kind(x) == JV_KIND_NUMBER ? jv_number_value(x) : -1;
			jv_free(x);
			if (bad)
				continue;
			if (d < 0 || !nn_json_is_int(d) || d >= n)
				bad = nn_seterr(err, "gpus[%d]: the machine has %d GPU%s (indexes from 0)",
						i, n, n == 1 ? "" : "s");
			else if (taken[(int)d]++)
				bad = nn_seterr(err, "gpus: GPU %d is named twice", (int)d);
			else
				chosen = jv_array_append(chosen, jv_array_get(jv_copy(gpus), (int)d));
		}
		free(taken);
		if (bad) {
			jv_free(v);
			jv_free(gpus);
			jv_free(chosen);
			return -1;
		}
	}
	jv_free(v);
	jv_free(gpus);
	{
		struct nn_res g;
		jv tmp = jv_object_set(jv_object(), jv_string("gpus"), jv_copy(chosen));
		int rc = nn_res_from_doc(&g, tmp, e);
		jv_free(tmp);
		if (rc < 0) {
			jv_free(chosen);
			return nn_seterr(err, "machine: %s", e);
		}
		r->gpus = g.gpus;
		r->vram = g.vram;
	}
	*doc = jv_object_set(jv_copy(machine), jv_string("gpus"), chosen);
	return 0;
}

/*
 * The offered document: doc (consumed) cut to r.  Its location is req's,
 * else doc's own, else prev's (borrowed, may be invalid): a location is
 * replaced whole.  Its price is doc's, else prev's, with each rate req
 * names set over it, so one rate changes without restating the others.
 */
static jv offered(jv doc, const struct nn_res *r, jv req, jv prev, const char *did)
{
	jv cap = nn_cap_restrict(doc, r);
	jv loc = member(req, "location"), price, give;

	if (!jv_is_valid(loc)) {
		jv_free(loc);
		loc = member(cap, "location");
	}
	if (!jv_is_valid(loc) && jv_is_valid(prev)) {
		jv_free(loc);
		loc = member(prev, "location");
	}
	if (jv_is_valid(loc))
		cap = jv_object_set(cap, jv_string("location"), loc);
	else
		jv_free(loc);

	price = member(cap, "price");
	if (!jv_is_valid(price) && jv_is_valid(prev)) {
		jv_free(price);
		price = member(prev, "price");
	}
	give = member(req, "price");
	if (jv_get_kind(give) == JV_KIND_OBJECT) {
		if (jv_get_kind(price) != JV_KIND_OBJECT) {
			jv_free(price);
			price = jv_object();
		}
		jv_object_foreach(give, k, v)
			price = jv_object_set(price, k, v);
	} else if (jv_is_valid(give)) {
		jv_free(price);
		price = jv_copy(give);	/* not an object: nn_cap_check names it */
	}
	jv_free(give);
	if (jv_is_valid(price))
		cap = jv_object_set(cap, jv_string("price"), price);
	else
		jv_free(price);
	if (did)
		cap = jv_object_set(cap, jv_string("did"), jv_string(did));
	return cap;
}

int nn_onboard_set(struct nn_db *db, jv req, const char *did, jv *state, char *err)
{
	char e[NN_ERRLEN], why[NN_ERRLEN];
	struct nn_res total, r, used;
	struct row prev;
	int64_t count;
	jv machine = jv_invalid(), doc = jv_invalid(), cap = jv_invalid();
	char *mtext = NULL, *ctext = NULL;
	sqlite3_stmt *st;
	int rc = NN_ONBOARD_BAD, had = 0;

	if (jv_get_kind(req) != JV_KIND_OBJECT) {
		nn_seterr(err, "onboard: expected an object, not %s", nn_json_kind(req));
		return NN_ONBOARD_BAD;
	}
	machine = member(req, "machine");
	if (!jv_is_valid(machine))
		nn_seterr(err, "machine: missing (the capability document of nunet-bench)");
	else if (nn_cap_check(machine, e) < 0 || nn_res_from_doc(&total, machine, e) < 0)
		nn_seterr(err, "machine: %s", e);
	else if (plan(req, machine, &r, &doc, e) < 0)
		nn_seterr(err, "onboard: %s", e);
	else if (!nn_res_fits(&r, &total, why)) {
		nn_seterr(err, "cannot reserve more than the machine has: %s", why);
		rc = NN_ONBOARD_REFUSED;
	} else if (begin(db, "BEGIN IMMEDIATE", err) < 0)
		rc = NN_ONBOARD_FAIL;
	else
		rc = 0;
	if (rc < 0) {
		jv_free(machine);
		jv_free(doc);
		return rc;
	}
	rc = NN_ONBOARD_FAIL;
	if ((had = load(db, &prev, err)) < 0 || committed(db, &used, &count, err) < 0)
		goto fail;
	if (!nn_res_fits(&used, &r, why)) {
		nn_seterr(err, "cannot reserve less than %lld allocation%s use: %s",
			  (long long)count, count == 1 ? "" : "s", why);
		rc = NN_ONBOARD_REFUSED;
		goto fail;
	}
	cap = offered(doc, &r, req, had ? prev.capability : jv_invalid(), did);
	doc = jv_invalid();
	if (nn_cap_check(cap, e) < 0) {
		nn_seterr(err, "onboard: %s", e);
		rc = NN_ONBOARD_BAD;
		goto fail;
	}
	mtext = nn_json_dump(machine);
	ctext = nn_json_dump(cap);
	if (sqlite3_prepare_v2(db->h, "INSERT OR REPLACE INTO onboard (id, machine, capability,"
			       " cpu, ram, disk, gpus, vram, updated) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK) {
		sqlerr(db, err);
		goto fail;
	}
	sqlite3_bind_text(st, 1, mtext, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ctext, -1, SQLITE_STATIC);
	bind_res(st, 3, &r);
	sqlite3_bind_int64(st, 8, nn_now_ms());
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlerr(db, err);
		sqlite3_finalize(st);
		goto fail;
	}
	sqlite3_finalize(st);
	if (commit(db, err) < 0)
		goto out;
	rc = 0;
	if (state) {
		*state = nn_onboard_state(db, err);
		if (!jv_is_valid(*state))
			rc = NN_ONBOARD_FAIL;
	}
	goto out;
fail:
	rollback(db);
out:
	if (had > 0)
		row_release(&prev);
	free(mtext);
	free(ctext);
	jv_free(machine);
	jv_free(doc);
	jv_free(cap);
	return rc;
}

static void res_words(const struct nn_res *r, char *out, size_t n)
{
	snprintf(out, n, "cpu %lld millicores, ram %lld, disk %lld, gpus %lld",
		 (long long)r->cpu, (long long)r->ram, (long long)r->disk, (long long)r->gpus);
}

int nn_onboard_clear(struct nn_db *db, int force, char *err)
{
	struct nn_res used;
	int64_t count;
	char words[160];

	if (begin(db, "BEGIN IMMEDIATE", err) < 0)
		return NN_ONBOARD_FAIL;
	if (committed(db, &used, &count, err) < 0) {
		rollback(db);
		return NN_ONBOARD_FAIL;
	}
	if (count > 0 && !force) {
		rollback(db);
		res_words(&used, words, sizeof words);
		nn_seterr(err, "%lld allocation%s hold%s resources (%s): offboard --force to "
			  "offboard anyway", (long long)count, count == 1 ? "" : "s",
			  count == 1 ? "s" : "", words);
		return NN_ONBOARD_REFUSED;
	}
	if (nn_db_exec(db, "DELETE FROM onboard", err) < 0) {
		rollback(db);
		return NN_ONBOARD_FAIL;
	}
	return commit(db, err) < 0 ? NN_ONBOARD_FAIL : 0;
}

/* ---- commitments ---- */

int nn_onboard_commit(struct nn_db *db, const char *id, const struct nn_res *r, char *err)
{
	struct nn_res used, avail;
	struct row row;
	int64_t count;
	char why[NN_ERRLEN];
	sqlite3_stmt *st;
	int had, rc = NN_ONBOARD_FAIL;

	if (!id || !*id || strlen(id) > ID_MAX) {
		nn_seterr(err, "commit: the allocation id must have 1 to %d bytes", ID_MAX);
		return NN_ONBOARD_BAD;
	}
	if (nn_res_check(r, why) < 0) {
		nn_seterr(err, "commit: %s", why);
		return NN_ONBOARD_BAD;
	}
	if (begin(db, "BEGIN IMMEDIATE", err) < 0)
		return NN_ONBOARD_FAIL;
	if ((had = load(db, &row, err)) < 0)
		goto fail;
	if (!had) {
		nn_seterr(err, "commit %.128s: this node is not onboarded", id);
		rc = NN_ONBOARD_REFUSED;
		goto fail;
	}
	row_release(&row);
	if (committed(db, &used, &count, err) < 0)
		goto fail;
	if (sqlite3_prepare_v2(db->h, "SELECT 1 FROM onboard_commit WHERE id = ?", -1, &st,
			       NULL) != SQLITE_OK) {
		sqlerr(db, err);
		goto fail;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_finalize(st);
		nn_seterr(err, "commit %.128s: this allocation holds resources already", id);
		rc = NN_ONBOARD_REFUSED;
		goto fail;
	}
	sqlite3_finalize(st);
	free_of(&row.reserved, &used, &avail);
	if (!nn_res_fits(r, &avail, why)) {
		nn_seterr(err, "commit %.128s: not enough free: %s", id, why);
		rc = NN_ONBOARD_REFUSED;
		goto fail;
	}
	if (sqlite3_prepare_v2(db->h, "INSERT INTO onboard_commit (id, cpu, ram, disk, gpus, vram,"
			       " ts) VALUES (?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK) {
		sqlerr(db, err);
		goto fail;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	bind_res(st, 2, r);
	sqlite3_bind_int64(st, 7, nn_now_ms());
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlerr(db, err);
		sqlite3_finalize(st);
		goto fail;
	}
	sqlite3_finalize(st);
	return commit(db, err) < 0 ? NN_ONBOARD_FAIL : 0;
fail:
	rollback(db);
	return rc;
}

int nn_onboard_release(struct nn_db *db, const char *id, char *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db->h, "DELETE FROM onboard_commit WHERE id = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return sqlerr(db, err);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlerr(db, err);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return sqlite3_changes(db->h) > 0 ? 1 : 0;
}

/* ---- reading ---- */

jv nn_onboard_commitments(struct nn_db *db, char *err)
{
	sqlite3_stmt *st;
	jv a = jv_array();
	int rc;

	if (sqlite3_prepare_v2(db->h, "SELECT id, cpu, ram, disk, gpus, vram, ts FROM onboard_commit"
			       " ORDER BY ts, id", -1, &st, NULL) != SQLITE_OK) {
		jv_free(a);
		sqlerr(db, err);
		return jv_invalid();
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct nn_res r;
		jv o = jv_object();
		col_res(st, 1, &r);
		o = jv_object_set(o, jv_string("id"), jv_string((const char *)sqlite3_column_text(st, 0)));
		o = jv_object_set(o, jv_string("resources"), nn_res_to_json(&r));
		o = jv_object_set(o, jv_string("ts"), jv_number((double)sqlite3_column_int64(st, 6)));
		a = jv_array_append(a, o);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		jv_free(a);
		sqlerr(db, err);
		return jv_invalid();
	}
	return a;
}

int nn_onboard_get(struct nn_db *db, struct nn_onboard_res *out, char *err)
{
	struct row row;
	int had;

	memset(out, 0, sizeof *out);
	if (begin(db, "BEGIN", err) < 0)
		return -1;
	if ((had = load(db, &row, err)) < 0 ||
	    committed(db, &out->committed, &out->allocations, err) < 0) {
		rollback(db);
		return -1;
	}
	commit(db, NULL);
	if (had) {
		out->onboarded = 1;
		out->total = row.total;
		out->reserved = row.reserved;
		out->updated_ms = row.updated;
		free_of(&row.reserved, &out->committed, &out->free);
		row_release(&row);
	}
	return 0;
}

jv nn_onboard_state(struct nn_db *db, char *err)
{
	struct nn_onboard_res s;
	jv o;
	if (nn_onboard_get(db, &s, err) < 0)
		return jv_invalid();
	o = jv_object_set(jv_object(), jv_string("state"),
			  jv_string(s.onboarded ? "onboarded" : "offboarded"));
	o = jv_object_set(o, jv_string("total"), nn_res_to_json(&s.total));
	o = jv_object_set(o, jv_string("onboarded"), nn_res_to_json(&s.reserved));
	o = jv_object_set(o, jv_string("committed"), nn_res_to_json(&s.committed));
	o = jv_object_set(o, jv_string("free"), nn_res_to_json(&s.free));
	o = jv_object_set(o, jv_string("allocations"), jv_number((double)s.allocations));
	o = jv_object_set(o, jv_string("updated"), jv_number((double)s.updated_ms));
	return o;
}

jv nn_onboard_capability(struct nn_db *db, int free, int *code, char *err)
{
	struct nn_res used, avail;
	struct row row;
	int64_t count;
	int had;
	jv cap;

	*code = NN_ONBOARD_FAIL;
	if (begin(db, "BEGIN", err) < 0)
		return jv_invalid();
	if ((had = load(db, &row, err)) < 0 || committed(db, &used, &count, err) < 0) {
		if (had > 0)
			row_release(&row);
		rollback(db);
		return jv_invalid();
	}
	commit(db, NULL);
	if (!had) {
		*code = NN_ONBOARD_REFUSED;
		nn_seterr(err, "this node is not onboarded: run 'nunet-node onboard'");
		return jv_invalid();
	}
	cap = jv_copy(row.capability);
	if (free) {
		free_of(&row.reserved, &used, &avail);
		cap = nn_cap_restrict(cap, &avail);
	}
	row_release(&row);
	return cap;
}

jv nn_onboard_match(struct nn_db *db, jv req, const char *where, const char *rank,
		    int *code, char *err)
{
	struct nn_match *m;
	char e[NN_ERRLEN];
	double score = 0;
	jv offer, why = jv_invalid(), o;
	int ex, rc;

	*code = NN_ONBOARD_BAD;
	m = nn_match_compile(req, where, rank, &ex, e);
	if (!m) {
		nn_seterr(err, "requirements: %s", e);
		return jv_invalid();
	}
	*code = NN_ONBOARD_FAIL;
	offer = nn_onboard_capability(db, 1, &rc, e);
	if (!jv_is_valid(offer)) {
		jv_free(offer);
		nn_match_free(m);
		if (rc == NN_ONBOARD_REFUSED) {
			o = jv_object_set(jv_object(), jv_string("match"), jv_false());
			return jv_object_set(o, jv_string("rejected"),
					     jv_array_append(jv_array(), jv_string(
						"onboard: this node offers nothing (not onboarded)")));
		}
		nn_seterr(err, "%s", e);
		return jv_invalid();
	}
	rc = nn_match_eval(m, offer, &score, &why, e);
	nn_match_free(m);
	if (rc == NN_MATCH_BAD) {
		jv_free(offer);
		nn_seterr(err, "the offered document does not match: %s", e);
		return jv_invalid();
	}
	o = jv_object_set(jv_object(), jv_string("match"), rc == NN_MATCH_YES ? jv_true() : jv_false());
	if (rc == NN_MATCH_YES) {
		jv_free(why);
		o = jv_object_set(o, jv_string("score"), jv_number(score));
	} else {
		o = jv_object_set(o, jv_string("rejected"), why);
	}
	return jv_object_set(o, jv_string("offer"), offer);
}

/* ---- behaviors ---- */

/* A refusal or a bad request is the caller's ("bad_body"); a store
 * failure is ours ("internal"). */
static enum nn_code failed(int rc)
{
	return rc == NN_ONBOARD_FAIL ? NN_E_INTERNAL : NN_E_BAD_BODY;
}

static enum nn_code be_onboard(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv state = jv_invalid(), cap;
	int code, rc = nn_onboard_set(nn_node_db(n), body, nn_node_did(n), &state, err);
	jv_free(body);
	if (rc < 0)
		return failed(rc);
	nn_node_event(n, "onboard.set", jv_object_set(jv_object(), jv_string("onboarded"),
						       jv_object_get(jv_copy(state),
								     jv_string("onboarded"))));
	cap = nn_onboard_capability(nn_node_db(n), 0, &code, err);
	if (!jv_is_valid(cap)) {
		jv_free(state);
		return NN_E_INTERNAL;
	}
	*reply = jv_object_set(state, jv_string("capability"), cap);
	return NN_OK;
}

static enum nn_code be_offboard(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv force = jv_object_get(jv_copy(body), jv_string("force"));
	int f = jv_get_kind(force) == JV_KIND_TRUE, rc;
	if (jv_is_valid(force) && jv_get_kind(force) != JV_KIND_TRUE &&
	    jv_get_kind(force) != JV_KIND_FALSE && jv_get_kind(force) != JV_KIND_NULL) {
		jv_free(force);
		jv_free(body);
		nn_seterr(err, "force: expected true or false");
		return NN_E_BAD_BODY;
	}
	jv_free(force);
	jv_free(body);
	rc = nn_onboard_clear(nn_node_db(n), f, err);
	if (rc < 0)
		return failed(rc);
	nn_node_event(n, "onboard.offboard", jv_object_set(jv_object(), jv_string("force"),
							   f ? jv_true() : jv_false()));
	*reply = nn_onboard_state(nn_node_db(n), err);
	return jv_is_valid(*reply) ? NN_OK : NN_E_INTERNAL;
}

static enum nn_code be_resources(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv want = jv_object_get(body, jv_string("commitments"));
	int detail = jv_get_kind(want) == JV_KIND_TRUE;
	jv_free(want);
	*reply = nn_onboard_state(nn_node_db(n), err);
	if (jv_is_valid(*reply) && detail) {
		jv c = nn_onboard_commitments(nn_node_db(n), err);
		if (!jv_is_valid(c)) {
			jv_free(c);
			jv_free(*reply);
			*reply = jv_invalid();
		} else {
			*reply = jv_object_set(*reply, jv_string("commitments"), c);
		}
	}
	return jv_is_valid(*reply) ? NN_OK : NN_E_INTERNAL;
}

static enum nn_code be_capability(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv f = jv_object_get(jv_copy(body), jv_string("free"));
	int code, want = jv_get_kind(f) == JV_KIND_TRUE;
	jv_free(f);
	jv_free(body);
	*reply = nn_onboard_capability(nn_node_db(n), want, &code, err);
	if (jv_is_valid(*reply))
		return NN_OK;
	return code == NN_ONBOARD_REFUSED ? NN_E_UNAVAILABLE : NN_E_INTERNAL;
}

static enum nn_code be_match(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv r = jv_object_get(jv_copy(body), jv_string("requirements"));
	jv w = jv_object_get(jv_copy(body), jv_string("where"));
	jv k = jv_object_get(jv_copy(body), jv_string("rank"));
	enum nn_code c = NN_OK;
	int code;

	if (jv_get_kind(r) != JV_KIND_OBJECT) {
		nn_seterr(err, "requirements: expected an object");
		c = NN_E_BAD_BODY;
	} else if ((jv_is_valid(w) && jv_get_kind(w) != JV_KIND_STRING &&
		    jv_get_kind(w) != JV_KIND_NULL) ||
		   (jv_is_valid(k) && jv_get_kind(k) != JV_KIND_STRING &&
		    jv_get_kind(k) != JV_KIND_NULL)) {
		nn_seterr(err, "where, rank: expected jq expressions as strings");
		c = NN_E_BAD_BODY;
	} else {
		*reply = nn_onboard_match(nn_node_db(n), jv_copy(r),
					  jv_get_kind(w) == JV_KIND_STRING ? jv_string_value(w) : NULL,
					  jv_get_kind(k) == JV_KIND_STRING ? jv_string_value(k) : NULL,
					  &code, err);
		if (!jv_is_valid(*reply))
			c = failed(code);
	}
	jv_free(r);
	jv_free(w);
	jv_free(k);
	jv_free(body);
	return c;
}

static const struct nn_behavior behaviors[] = {
	{ "/node/onboard", be_onboard, "reserve part of this machine for the network", 0 },
	{ "/node/offboard", be_offboard, "stop offering this machine", 0 },
	{ "/node/resources", be_resources, "total, onboarded, committed and free resources", 0 },
	{ "/node/capability", be_capability, "the capability document this node offers", 0 },
	{ "/node/match", be_match, "whether and how well this node's free resources fit "
	  "requirements", 0 },
};

/* /node/metrics: the reservation, what allocations hold, and what is free. */
static void resource_metrics(struct nn_node *n, struct nn_buf *b, void *arg)
{
	static const char *const names[] = { "cpu_millicores", "ram_bytes", "disk_bytes", "gpus", "vram_bytes" };
	struct nn_onboard_res r;
	const struct nn_res *sets[3];
	static const char *const kinds[] = { "onboarded", "committed", "free" };

	if (nn_onboard_get(nn_node_db(n), &r, NULL) < 0)
		return;
	sets[0] = &r.reserved;
	sets[1] = &r.committed;
	sets[2] = &r.free;
	nn_buf_addf(b, "# HELP nunet_onboarded Whether this machine is offered to the network.\n"
		    "# TYPE nunet_onboarded gauge\nnunet_onboarded %d\n", r.onboarded ? 1 : 0);
	nn_buf_addf(b, "# HELP nunet_resources Resources onboarded, committed to allocations, and free.\n"
		    "# TYPE nunet_resources gauge\n");
	for (int k = 0; k < 3; k++) {
		const int64_t v[] = { sets[k]->cpu, sets[k]->ram, sets[k]->disk, sets[k]->gpus, sets[k]->vram };
		for (int i = 0; i < 5; i++)
			nn_buf_addf(b, "nunet_resources{state=\"%s\",resource=\"%s\"} %lld\n", kinds[k],
				    names[i], (long long)v[i]);
	}
	nn_buf_addf(b, "# HELP nunet_commitments Allocations holding resources.\n"
		    "# TYPE nunet_commitments gauge\nnunet_commitments %lld\n", (long long)r.allocations);
}

int nn_onboard_attach(struct nn_node *n, char *err)
{
	if (nn_onboard_migrate(nn_node_db(n), err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof behaviors / sizeof *behaviors; i++)
		nn_node_behavior(n, &behaviors[i]);
	nn_node_metrics_hook(n, resource_metrics, NULL);
	return 0;
}
