/*
 * orch/module — the orch module in the daemon (orch.h): tables, store
 * helpers, one timer (lease expiry, bid windows, deadlines) and one
 * follower of the node's own events (allocation states to push, peers
 * declared dead), whose work waits for the loop so nothing runs inside
 * another module's call.
 */
#include "orch/orch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db.h"
#include "events.h"
#include "json.h"
#include "log.h"

static const char *const schema[] = {
	/* the provider's leases and the allocations they started */
	"CREATE TABLE orch_lease (id TEXT PRIMARY KEY, dep TEXT NOT NULL, grp TEXT NOT NULL,"
	" requester TEXT NOT NULL, trace TEXT, resources TEXT NOT NULL, expires INTEGER NOT NULL,"
	" state TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL);"
	"CREATE INDEX orch_lease_state ON orch_lease (state);"
	"CREATE TABLE orch_lease_alloc (alloc TEXT PRIMARY KEY, lease TEXT NOT NULL, name TEXT NOT NULL,"
	" slot INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX orch_lease_alloc_lease ON orch_lease_alloc (lease);"
	/* the orchestrator's deployments, placements and allocations */
	"CREATE TABLE orch_deploy (id TEXT PRIMARY KEY, trace TEXT NOT NULL, owner TEXT, parent TEXT,"
	" name TEXT, state TEXT NOT NULL, ensemble TEXT NOT NULL, hops INTEGER NOT NULL DEFAULT 0,"
	" deadline INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL, reason TEXT,"
	" status INTEGER, selection TEXT, attempts INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX orch_deploy_state ON orch_deploy (state);"
	"CREATE TABLE orch_slot (dep TEXT NOT NULL, slot INTEGER NOT NULL, grp TEXT NOT NULL,"
	" provider TEXT, lease TEXT, state TEXT NOT NULL, PRIMARY KEY (dep, slot));"
	"CREATE TABLE orch_alloc (dep TEXT NOT NULL, name TEXT NOT NULL, slot INTEGER NOT NULL,"
	" grp TEXT NOT NULL, type TEXT NOT NULL, provider TEXT, lease TEXT, alloc TEXT, state TEXT,"
	" status INTEGER, reason TEXT, updated INTEGER, PRIMARY KEY (dep, name, slot));",
	/* v2: supervision across nodes: the provider's heartbeat period per
	 * lease; the orchestrator's repairs (only the lost slots placed again) */
	"ALTER TABLE orch_lease ADD COLUMN hb_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE orch_deploy ADD COLUMN repair INTEGER NOT NULL DEFAULT 0;",
	/* v3: who besides the requester may read a lease's logs and outputs:
	 * the allocation whose deployment it serves (a recursive job) */
	"ALTER TABLE orch_lease ADD COLUMN reader TEXT;",
	/* v4: leases the orchestrator gave up and could not release yet (the
	 * provider dead, cut off, or this node restarting): asked again */
	"CREATE TABLE orch_release (provider TEXT NOT NULL, lease TEXT NOT NULL, dep TEXT NOT NULL,"
	" trace TEXT, since INTEGER NOT NULL, PRIMARY KEY (provider, lease));",
	/* v5: the last snapshot of each allocation with a state directory,
	 * pushed by its provider (its objects in snapshots.git) */
	"CREATE TABLE orch_snapshot (dep TEXT NOT NULL, name TEXT NOT NULL, commit_id TEXT NOT NULL,"
	" bytes INTEGER NOT NULL, provider TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (dep, name));",
	NULL
};

static struct orch *the_orch;

struct orch *orch_of(struct nn_node *n)
{
	(void)n;
	return the_orch;
}

sqlite3_stmt *orch_prep(struct orch *o, const char *sql)
{
	sqlite3 *h = nn_node_db(o->n)->h;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
		nn_error("orch: %s: %s", sqlite3_errmsg(h), sql);
		return NULL;
	}
	return st;
}

int orch_step(struct orch *o, sqlite3_stmt *st)
{
	int r;
	if (!st)
		return -1;
	r = sqlite3_step(st);
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		nn_error("orch: store: %s", sqlite3_errmsg(nn_node_db(o->n)->h));
	sqlite3_finalize(st);
	return r == SQLITE_DONE || r == SQLITE_ROW ? 0 : -1;
}

int orch_is_null(jv obj, const char *key)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	int r = jv_get_kind(v) == JV_KIND_NULL;
	jv_free(v);
	return r;
}

int orch_only_keys(jv obj, const char *const *keys, char *err)
{
	int r = 0;
	jv_object_foreach(obj, k, v) {
		int ok = 0;
		for (int i = 0; keys[i]; i++)
			ok |= !strcmp(keys[i], jv_string_value(k));
		if (!ok && r == 0)
			r = nn_seterr(err, "body: unknown field '%.40s'", jv_string_value(k));
		jv_free(k);
		jv_free(v);
	}
	return r;
}

/* The follower runs inside whoever emitted: only queue. */
/* the events on_event acts on */
static const char *const orch_kinds[] = { "alloc.state", "alloc.unhealthy", "peer.dead", NULL };

static int on_event(void *arg, jv ev)
{
	struct orch *o = arg;
	const char *kind;
	if (nn_json_get_str(ev, "kind", &kind, NULL) < 0)
		return 0;
	if (strcmp(kind, "alloc.state") != 0 && strcmp(kind, "alloc.unhealthy") != 0 &&
	    strcmp(kind, "peer.dead") != 0)
		return 0;
	o->pending = jv_array_append(o->pending, jv_copy(ev));
	nn_loop_timer_arm(nn_node_loop(o->n), o->kick, 1, 0);
	return 0;
}

static void on_kick(struct nn_loop *l, void *arg)
{
	struct orch *o = arg;
	jv q = o->pending;
	(void)l;
	o->pending = jv_array();
	jv_array_foreach(q, i, ev) {
		const char *kind = "";
		jv f = jv_object_get(jv_copy(ev), jv_string("fields"));
		nn_json_get_str(ev, "kind", &kind, NULL);
		if (!strcmp(kind, "alloc.state")) {
			orch_push_state(o, f);
			orch_parent_state(o, f);
		} else if (!strcmp(kind, "alloc.unhealthy")) {
			orch_push_state(o, f);
		} else {
			const char *did;
			if (nn_json_get_str(f, "did", &did, NULL) == 0)
				orch_peer_dead(o, did);
		}
		jv_free(f);
		jv_free(ev);
	}
	jv_free(q);
}

static void on_tick(struct nn_loop *l, void *arg)
{
	struct orch *o = arg;
	(void)l;
	orch_leases_expire(o);
	orch_heartbeats(o);
	orch_leases_orphan(o);
	orch_deploy_tick(o);
	orch_release_retry(o);
}

static void orch_close(struct nn_node *n, void *arg)
{
	struct orch *o = arg;
	if (o->follow_id >= 0)
		nn_events_unfollow(nn_node_events(n), o->follow_id);
	if (o->timer)
		nn_loop_remove(nn_node_loop(n), o->timer);
	if (o->kick)
		nn_loop_remove(nn_node_loop(n), o->kick);
	orch_deploy_free_all(o);
	orch_snapshot_close(o);
	jv_free(o->pending);
	jv_free(o->hb_next);
	jv_free(o->dead_since);
	jv_free(o->moves);
	the_orch = NULL;
	free(o);
}

int nn_orch_attach(struct nn_node *n, char *err)
{
	struct orch *o;
	char e[NN_ERRLEN];
	if (nn_db_migrate_module(nn_node_db(n), "orch", schema, e) < 0)
		return nn_seterr(err, "orch: %s", e);
	o = nn_xcalloc(1, sizeof *o);
	o->n = n;
	o->pending = jv_array();
	o->hb_next = jv_object();
	o->dead_since = jv_object();
	o->moves = jv_object();
	o->follow_id = -1;
	the_orch = o;
	nn_node_on_close(n, orch_close, o);
	if (!(o->timer = nn_loop_timer(nn_node_loop(n), ORCH_TICK_MS, ORCH_TICK_MS, on_tick, o, e)) ||
	    !(o->kick = nn_loop_timer(nn_node_loop(n), 0, 0, on_kick, o, e)))
		return nn_seterr(err, "orch: %s", e);
	o->follow_id = nn_events_follow_kinds(nn_node_events(n), orch_kinds, on_event, o);
	for (int i = 0; orch_provider_behaviors[i].path; i++)
		nn_node_behavior(n, &orch_provider_behaviors[i]);
	for (int i = 0; orch_deploy_behaviors[i].path; i++)
		nn_node_behavior(n, &orch_deploy_behaviors[i]);
	for (int i = 0; orch_snapshot_behaviors[i].path; i++)
		nn_node_behavior(n, &orch_snapshot_behaviors[i]);
	/* leases whose time ran out while the node was down end now */
	orch_leases_expire(o);
	orch_deploy_resume(o);
	return 0;
}
