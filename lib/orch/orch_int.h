/*
 * orch_int — what the parts of the orch module share (the files in lib/orch/): the
 * module's state, store helpers and limits.  Not for other modules.
 */
#ifndef NN_ORCH_INT_H
#define NN_ORCH_INT_H

#include <stdint.h>
#include <sqlite3.h>
#include <jv.h>
#include "db.h"
#include "node.h"
#include "orch.h"
#include "util.h"

#define ORCH_MAX_GROUPS 64
#define ORCH_MAX_ALLOCS 64
#define ORCH_BID_TTL_MS 30000
#define ORCH_LEASE_MAX_MS 3600000
#define ORCH_TICK_MS 100
#define ORCH_SEARCH_MAX 200000L
#define ORCH_STEP_MS 5000
#define ORCH_LEASE_MS 20000
#define ORCH_HB_MISSES 3		/* heartbeats missed before a provider is lost */
#define ORCH_HB_DEFAULT_MS 2000
#define ORCH_RELEASE_RETRY_MS 2000
#define ORCH_MOVE_MS (10 * 60 * 1000)	/* a granted move not adopted by then is void */
#define ORCH_MOVES_MAX 256

struct orch_dep;
struct orch_rq;

struct orch {
	struct nn_node *n;
	struct nn_watch *timer, *kick;
	int follow_id;
	jv pending;		/* events queued by the follower, handled on kick */
	jv hb_next;		/* provider: lease → monotonic ms of its next heartbeat */
	int hb_loaded;		/* hb_next holds the provisioned leases of node.db */
	jv dead_since;		/* requester did → monotonic ms first seen dead */
	int64_t orphan_checked;	/* monotonic ms of the last orphan check */
	int64_t released_retried;	/* monotonic ms of the last retry of releases */
	struct orch_dep *deps;
	struct orch_rq *rqs;
	jv moves;		/* granted lease → a migration not yet adopted (deploy.c) */
};

struct orch *orch_of(struct nn_node *n);
sqlite3_stmt *orch_prep(struct orch *o, const char *sql);
/* Step a statement that returns no rows and finalize it: 0 or -1 (logged). */
int orch_step(struct orch *o, sqlite3_stmt *st);
#define orch_col_str nn_db_col_str
#define orch_col_json nn_db_col_json
int orch_is_null(jv obj, const char *key);
int orch_only_keys(jv obj, const char *const *keys, char *err);

/* provider.c */
extern const struct nn_behavior orch_provider_behaviors[];
jv orch_peers(struct orch *o);
void orch_leases_expire(struct orch *o);
void orch_leases_orphan(struct orch *o);
void orch_push_state(struct orch *o, jv fields);
void orch_heartbeats(struct orch *o);
void orch_lease_emit(struct orch *o, const char *kind, const char *lease, const char *trace, const char *why);

/* deploy.c */
extern const struct nn_behavior orch_deploy_behaviors[];
void orch_deploy_tick(struct orch *o);
void orch_deploy_resume(struct orch *o);
void orch_peer_dead(struct orch *o, const char *did);
void orch_parent_state(struct orch *o, jv fields);
void orch_deploy_free_all(struct orch *o);
void orch_release_retry(struct orch *o);
/* Whether did provides a placement (committed or later) of allocation
 * name of deployment dep, under lease when it is not NULL. */
int orch_dep_holds(struct orch *o, const char *dep, const char *name, const char *did, const char *lease);

/* snapshot.c */
extern const struct nn_behavior orch_snapshot_behaviors[];
/* {"commit","bytes","provider","updated"} kept of (dep, name), or null. */
jv orch_snapshot_of(struct orch *o, const char *dep, const char *name);
/* The "restore" of an /alloc/start body for (dep, name): the kept
 * snapshot to fetch from this node, or invalid when none is kept. */
jv orch_snapshot_restore(struct orch *o, const char *dep, const char *name);
/* Deployment dep has ended: its kept snapshots are forgotten (rows now;
 * refs, and objects nothing reaches, by a child process). */
void orch_snapshot_forget(struct orch *o, const char *dep, const char *trace);
/* Stop and forget the unpacking jobs (the node closes). */
void orch_snapshot_close(struct orch *o);

#endif
