/*
 * orch/deploy — the orchestrator's half of the deployment protocol
 * (orch.h): one struct orch_dep per deployment not yet final, driven by
 * the answers of the node's own requests (nn_node_request) and by the
 * module's timer.  Every step is a deploy.* event carrying the deployment's
 * trace, and every decision is written to node.db before the next request
 * goes out, so a restarted node knows what it holds.
 *
 *   bidding ──window closed / all answered──▶ select ──▶ committing
 *   committing ──all leases──▶ provisioning (depends_on order) ──▶ running
 *   (depends_on across groups: a group is provisioned once what it
 *   depends on is up; within a group: its provider makes each
 *   allocation wait, "after", for those it depends on; running once
 *   nothing waits; a dependency that ended otherwise fails the
 *   deployment, naming it)
 *   any failure before running: release every lease, drop the provider
 *   that failed, select again from the bids (new bids when none is left)
 *   until the deadline; then "failed" with the reason.
 *   running ──tasks final──▶ done;  a service final: failed.
 *   A restart strategy (one_for_all, rest_for_one) restarts what it names
 *   wherever it runs, and holds (/deploy/restart "hold") those that depend
 *   on a restarted one of another group until it is up again
 *   (release_held); one that ended otherwise fails the deployment.
 *   A lost provider (ORCH_HB_MISSES heartbeats missed, or membership says
 *   dead): a repair: only its slots (services, tasks with retries left) go
 *   through bidding, committing and provisioning again, the surviving
 *   slots kept (d->repair, slot.keep) as fixed candidates of the
 *   selection; its tasks without retries are reported failed.  Leases of
 *   committed slots waiting for their dependencies are renewed.
 */
#include "orch/orch_int.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "cap.h"
#include "ensemble.h"
#include "json.h"
#include "log.h"

enum { D_BIDDING, D_COMMITTING, D_PROVISIONING, D_RUNNING, D_DONE, D_FAILED, D_CANCELLED };
static const char *const dstate[] = { "bidding", "committing", "provisioning", "running", "done",
				      "failed", "cancelled" };
enum { S_NONE, S_COMMITTING, S_COMMITTED, S_PROVISIONING, S_RUNNING };
static const char *const sstate[] = { "none", "committing", "committed", "provisioning", "running" };
enum { RQ_BID, RQ_COMMIT, RQ_PROVISION, RQ_RELEASE, RQ_SYNC, RQ_RENEW, RQ_RESTART };

struct slot {
	char grp[72];
	char prov[NN_DID_MAX];
	char lease[72];
	int st;
	int failed;
	int keep;			/* a repair leaves this placement running */
	int renewing;			/* a /deploy/renew is out */
	int64_t expires;		/* wall ms: the lease's end while reserved */
	int64_t hb;			/* monotonic ms: last heard of while running */
	int64_t pulled;			/* monotonic ms: last pull of its states */
};

struct orch_dep {
	struct orch *o;
	char id[40], trace[72];
	jv ens;
	int state, gen, attempts;
	int64_t deadline;		/* wall ms */
	int64_t bid_close;		/* monotonic ms; 0: not bidding */
	int hops;
	jv bids;			/* did → bid body */
	jv asked;			/* did → depth */
	jv expect;			/* did → true: answers awaited before the window's end */
	int inflight;
	jv excluded;			/* did → why */
	jv refused;			/* did → why: refusals that stand for the whole deployment
					 * (a provider that requires a contract it has not accepted) */
	struct slot *slots;
	int nslots;
	int redeploys;
	int resumed;			/* started over after a restart of this node */
	int64_t rebid_at;		/* monotonic ms: bid again then (0: not waiting) */
	int repair;			/* placing only the slots a lost provider held */
	int64_t hb_ms;			/* the providers' heartbeat period */
	jv sup_times;			/* wall ms of the restarts its strategies made */
	jv sup_pending;			/* names it restarted whose end is not reported
					 * yet: not up, whatever a late state says */
	jv holding;			/* names it asked a provider to hold, not
					 * released yet: held before the provider says so */
	struct orch_dep *next;
};

struct orch_rq {
	struct orch *o;
	char dep[40];
	int gen, kind, slot;
	char to[NN_DID_MAX];
	char lease[72];			/* RQ_RELEASE: the lease */
	int depth;
	struct orch_rq *next;
};

static void dep_fail(struct orch_dep *d, const char *why, jv extra);
static void dep_select(struct orch_dep *d);
static void dep_provision(struct orch_dep *d);
static void dep_bid(struct orch_dep *d);
static void dep_check_done(struct orch_dep *d);

/* ---- small things ---- */

static jv jget(jv o, const char *k)
{
	return jv_object_get(jv_copy(o), jv_string(k));
}

static void emit(struct orch_dep *d, enum nn_level lv, const char *kind, jv f)
{
	f = jv_object_set(f, jv_string("deployment"), jv_string(d->id));
	nn_node_emit(d->o->n, lv, kind, d->trace, f);
}

static struct orch_dep *dep_find(struct orch *o, const char *id)
{
	for (struct orch_dep *d = o->deps; d; d = d->next)
		if (!strcmp(d->id, id))
			return d;
	return NULL;
}

static void dep_save(struct orch_dep *d, const char *reason, int status)
{
	sqlite3_stmt *st = orch_prep(d->o, "UPDATE orch_deploy SET state = ?, updated = ?,"
				     " reason = coalesce(?, reason), status = coalesce(?, status),"
				     " attempts = ?, repair = ? WHERE id = ?");
	if (!st)
		return;
	sqlite3_bind_text(st, 1, dstate[d->state], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, nn_now_ms());
	if (reason)
		sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	if (status >= 0)
		sqlite3_bind_int(st, 4, status);
	sqlite3_bind_int(st, 5, d->attempts);
	sqlite3_bind_int(st, 6, d->repair);
	sqlite3_bind_text(st, 7, d->id, -1, SQLITE_STATIC);
	orch_step(d->o, st);
}

static void slot_save(struct orch_dep *d, int i)
{
	struct slot *s = &d->slots[i];
	sqlite3_stmt *st = orch_prep(d->o, "INSERT OR REPLACE INTO orch_slot (dep, slot, grp, provider, lease,"
				     " state) VALUES (?, ?, ?, ?, ?, ?)");
	if (!st)
		return;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, i);
	sqlite3_bind_text(st, 3, s->grp, -1, SQLITE_STATIC);
	if (s->prov[0])
		sqlite3_bind_text(st, 4, s->prov, -1, SQLITE_STATIC);
	if (s->lease[0])
		sqlite3_bind_text(st, 5, s->lease, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, sstate[s->st], -1, SQLITE_STATIC);
	orch_step(d->o, st);
}

static void dep_free(struct orch_dep *d)
{
	jv_free(d->ens);
	jv_free(d->bids);
	jv_free(d->asked);
	jv_free(d->expect);
	jv_free(d->excluded);
	jv_free(d->refused);
	jv_free(d->sup_times);
	jv_free(d->sup_pending);
	jv_free(d->holding);
	free(d->slots);
	free(d);
}

static void dep_unlink(struct orch_dep *d)
{
	for (struct orch_dep **pp = &d->o->deps; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	dep_free(d);
}

void orch_deploy_free_all(struct orch *o)
{
	while (o->deps) {
		struct orch_dep *d = o->deps;
		o->deps = d->next;
		dep_free(d);
	}
	while (o->rqs) {
		struct orch_rq *r = o->rqs;
		o->rqs = r->next;
		free(r);
	}
}

static struct orch_rq *rq_make(struct orch *o, const char *dep, int gen, int kind, int slot, const char *to)
{
	struct orch_rq *r = nn_xcalloc(1, sizeof *r);
	r->o = o;
	snprintf(r->dep, sizeof r->dep, "%s", dep);
	r->gen = gen;
	r->kind = kind;
	r->slot = slot;
	snprintf(r->to, sizeof r->to, "%s", to);
	r->next = o->rqs;
	o->rqs = r;
	return r;
}

static struct orch_rq *rq_new(struct orch_dep *d, int kind, int slot, const char *to)
{
	return rq_make(d->o, d->id, d->gen, kind, slot, to);
}

static void rq_free(struct orch_rq *r)
{
	for (struct orch_rq **pp = &r->o->rqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	free(r);
}

/* The deployment a request was for, when it is still at that step. */
static struct orch_dep *rq_dep(struct orch_rq *r)
{
	struct orch_dep *d = dep_find(r->o, r->dep);
	return d && d->gen == r->gen ? d : NULL;
}

/* The reason of an answer that is not a reply (borrowed answer). */
static void answer_why(jv ans, char *why, size_t cap)
{
	const char *m = NULL;
	jv b;
	if (!jv_is_valid(ans)) {
		jv msg = jv_invalid_get_msg(jv_copy(ans));
		snprintf(why, cap, "%s", jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "no answer");
		jv_free(msg);
		return;
	}
	b = jget(ans, "body");
	nn_json_get_str(b, "message", &m, NULL);
	snprintf(why, cap, "%s", m ? m : "refused");
	jv_free(b);
}

static int is_reply(jv ans)
{
	const char *t;
	return jv_is_valid(ans) && (t = nn_env_str(ans, "type")) && !strcmp(t, "reply");
}

/* How long one provider may take to answer a commit or a provision: a
 * provider that does not answer in time is dropped and the next best is
 * tried, so one silent node cannot use up the whole deadline. */
static int64_t step_ms(int64_t left)
{
	if (left > ORCH_STEP_MS)
		return ORCH_STEP_MS;
	return left > 100 ? left : 100;
}

static int64_t lease_ms_for(struct orch_dep *d)
{
	int64_t left = d->deadline - nn_now_ms();
	/* the lease covers the time to the deadline, at most ORCH_LEASE_MS */
	return left + 1000 < ORCH_LEASE_MS ? (left > 0 ? left + 1000 : 1000) : ORCH_LEASE_MS;
}

/* ---- capability tokens this node holds ---- */

/* Tokens in $NUNET_HOME/tokens/ *.json granted to this node whose chain
 * starts at `root` (the provider's own key, an owner there). */
static jv tokens_for(struct orch *o, const char *root)
{
	char *dir = nn_xasprintf("%s/tokens", nn_node_home(o->n));
	DIR *dp = opendir(dir);
	struct dirent *de;
	jv out = jv_array();
	int k = 0;
	while (dp && (de = readdir(dp)) && k < 8) {
		size_t len = strlen(de->d_name), tl;
		char *path, *text;
		jv t, p;
		if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		path = nn_xasprintf("%s/%s", dir, de->d_name);
		text = nn_read_file(path, 64 * 1024, &tl, NULL);
		free(path);
		if (!text)
			continue;
		t = nn_json_parse(text, tl, NULL);
		free(text);
		if (jv_get_kind(t) != JV_KIND_OBJECT) {
			jv_free(t);
			continue;
		}
		{
			const char *aud = NULL, *iss = NULL;
			int depth = 0;
			nn_json_get_str(t, "aud", &aud, NULL);
			p = jv_copy(t);
			for (;;) {
				jv par = jget(p, "parent");
				if (jv_get_kind(par) != JV_KIND_OBJECT || depth++ > 16) {
					jv_free(par);
					break;
				}
				jv_free(p);
				p = par;
			}
			nn_json_get_str(p, "iss", &iss, NULL);
			if (aud && iss && !strcmp(aud, nn_node_did(o->n)) && !strcmp(iss, root)) {
				out = jv_array_append(out, jv_copy(t));
				k++;
			}
			jv_free(p);
		}
		jv_free(t);
	}
	if (dp)
		closedir(dp);
	free(dir);
	return out;
}

/* ---- the ensemble ---- */

/* Checks the parts of a normalized ensemble the orchestrator reads and
 * fills the defaults it relies on; consumes e.  Invalid + err. */
static jv check_ensemble(jv e, char *err)
{
	jv allocs = jget(e, "allocations"), nodes;
	int na = 0;
	if (jv_get_kind(e) != JV_KIND_OBJECT || jv_get_kind(allocs) != JV_KIND_OBJECT) {
		jv_free(allocs);
		jv_free(e);
		nn_seterr(err, "ensemble: expected an object with allocations");
		return jv_invalid();
	}
	jv_object_foreach(allocs, k, a) {
		const char *name = jv_string_value(k);
		jv cmd = jget(a, "command"), img = jget(a, "image");
		size_t ln = strlen(name);
		na++;
		if (!err[0] && (ln == 0 || ln > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != ln))
			nn_seterr(err, "allocations.%.64s: not a valid name", name);
		else if (!err[0] && jv_get_kind(a) != JV_KIND_OBJECT)
			nn_seterr(err, "allocations.%s: expected an object", name);
		else if (!err[0] && jv_get_kind(cmd) != JV_KIND_ARRAY && jv_get_kind(img) != JV_KIND_STRING)
			nn_seterr(err, "allocations.%s: needs a command or an image", name);
		jv_free(cmd);
		jv_free(img);
		jv_free(k);
		jv_free(a);
	}
	if (!err[0] && (na == 0 || na > ORCH_MAX_ALLOCS))
		nn_seterr(err, "allocations: expected 1 to %d allocations", ORCH_MAX_ALLOCS);
	nodes = jget(e, "nodes");
	if (!err[0] && jv_get_kind(nodes) != JV_KIND_OBJECT) {
		/* one group per allocation, of the same name */
		jv_free(nodes);
		nodes = jv_object();
		jv_object_foreach(allocs, k, a) {
			jv g = jv_object_set(jv_object(), jv_string("allocations"),
					     jv_array_append(jv_array(), jv_copy(k)));
			g = jv_object_set(g, jv_string("redundancy"), jv_number(1));
			nodes = jv_object_set(nodes, k, g);
			jv_free(a);
		}
		e = jv_object_set(e, jv_string("nodes"), jv_copy(nodes));
	}
	if (!err[0]) {
		int ng = 0;
		jv_object_foreach(nodes, k, g) {
			jv as = jget(g, "allocations");
			ng++;
			if (!err[0] && (jv_get_kind(as) != JV_KIND_ARRAY || jv_array_length(jv_copy(as)) < 1))
				nn_seterr(err, "nodes.%.64s.allocations: expected allocation names", jv_string_value(k));
			if (!err[0])
				jv_array_foreach(as, i, an) {
					jv a = jv_get_kind(an) == JV_KIND_STRING ? jv_object_get(jv_copy(allocs), jv_copy(an))
						: jv_invalid();
					if (!err[0] && !jv_is_valid(a))
						nn_seterr(err, "nodes.%.64s.allocations[%d]: not an allocation of the ensemble",
							  jv_string_value(k), i);
					jv_free(a);
					jv_free(an);
				}
			jv_free(as);
			jv_free(k);
			jv_free(g);
		}
		if (!err[0] && ng > ORCH_MAX_GROUPS)
			nn_seterr(err, "nodes: at most %d groups", ORCH_MAX_GROUPS);
	}
	jv_free(nodes);
	jv_free(allocs);
	if (err[0]) {
		jv_free(e);
		return jv_invalid();
	}
	return e;
}

static int64_t ens_int(jv e, const char *k, int64_t dflt)
{
	int64_t v;
	return nn_json_get_int(e, k, &v, NULL) == 0 ? v : dflt;
}

static const char *ens_str(jv e, const char *k)
{
	const char *s;
	return nn_json_get_str(e, k, &s, NULL) == 0 ? s : NULL;
}

/* The /alloc/start body for allocation `a` (borrowed) of the ensemble. */
static jv start_body(struct orch_dep *d, const char *name, jv a)
{
	jv spec = jv_object(), body = jv_object(), r = jget(a, "resources"), x, hc, rs;
	const char *s;
	spec = jv_object_set(spec, jv_string("executor"), jv_string((s = ens_str(a, "executor")) ? s : "native"));
	if (jv_get_kind(x = jget(a, "command")) == JV_KIND_ARRAY)
		spec = jv_object_set(spec, jv_string("command"), x);
	else
		jv_free(x);
	if ((s = ens_str(a, "image")))
		spec = jv_object_set(spec, jv_string("image"), jv_string(s));
	if ((s = ens_str(a, "workdir")))
		spec = jv_object_set(spec, jv_string("workdir"), jv_string(s));
	x = jget(a, "env");
	spec = jv_object_set(spec, jv_string("env"), jv_get_kind(x) == JV_KIND_OBJECT ? x : (jv_free(x), jv_object()));
	{
		jv lim = jv_object(), c = jget(r, "cpu"), m = jget(r, "ram");
		if (jv_get_kind(c) == JV_KIND_NUMBER && jv_number_value(c) > 0)
			lim = jv_object_set(lim, jv_string("cpu"), jv_copy(c));
		if (jv_get_kind(m) == JV_KIND_NUMBER && jv_number_value(m) > 0)
			lim = jv_object_set(lim, jv_string("memory"), jv_copy(m));
		spec = jv_object_set(spec, jv_string("resources"), lim);
		jv_free(c);
		jv_free(m);
	}
	/* the reservation is accounted either way; limits are enforced
	 * where the provider can enforce them */
	spec = jv_object_set(spec, jv_string("allow_unlimited"), jv_true());
	{
		jv lb = jv_object_set(jv_object(), jv_string("nunet.deployment"), jv_string(d->id));
		lb = jv_object_set(lb, jv_string("nunet.allocation"), jv_string(name));
		spec = jv_object_set(spec, jv_string("labels"), lb);
	}
	body = jv_object_set(body, jv_string("spec"), spec);
	/* inputs staged before the start and outputs stored after the end,
	 * by the provider (lib/stage.h: the ensemble's form is /alloc/start's) */
	if (jv_get_kind(x = jget(a, "inputs")) == JV_KIND_ARRAY && jv_array_length(jv_copy(x)) > 0)
		body = jv_object_set(body, jv_string("inputs"), x);
	else
		jv_free(x);
	if (jv_get_kind(x = jget(a, "outputs")) == JV_KIND_ARRAY && jv_array_length(jv_copy(x)) > 0)
		body = jv_object_set(body, jv_string("outputs"), x);
	else
		jv_free(x);
	if ((s = ens_str(a, "state_dir"))) {
		/* placed again: from the last snapshot its provider pushed */
		jv snap = orch_snapshot_restore(d->o, d->id, name);
		int64_t every = ens_int(a, "checkpoint_ms", 0);
		body = jv_object_set(body, jv_string("state_dir"), jv_string(s));
		if (every > 0)
			body = jv_object_set(body, jv_string("checkpoint"), jv_string_fmt("%lldms", (long long)every));
		if (jv_is_valid(snap))
			body = jv_object_set(body, jv_string("restore"), snap);
		else
			jv_free(snap);
	}
	/* the provider meters the allocation under the ensemble's contract */
	if ((s = ens_str(d->ens, "contract")))
		body = jv_object_set(body, jv_string("contract"), jv_string(s));
	rs = jget(a, "restart");
	if (jv_get_kind(rs) == JV_KIND_OBJECT) {
		jv p = jv_object();
		int64_t v;
		p = jv_object_set(p, jv_string("policy"), jv_string((s = ens_str(rs, "policy")) ? s : "never"));
		if (nn_json_get_int(rs, "intensity", &v, NULL) == 0)
			p = jv_object_set(p, jv_string("max"), jv_number((double)v));
		if (nn_json_get_int(rs, "period_ms", &v, NULL) == 0)
			p = jv_object_set(p, jv_string("period"), jv_string_fmt("%lldms", (long long)v));
		body = jv_object_set(body, jv_string("restart"), p);
	} else if (jv_get_kind(rs) == JV_KIND_STRING) {
		body = jv_object_set(body, jv_string("restart"), jv_copy(rs));
	} else if ((s = ens_str(a, "type")) && !strcmp(s, "service")) {
		body = jv_object_set(body, jv_string("restart"), jv_string("always"));
	}
	jv_free(rs);
	hc = jget(a, "healthcheck");
	if (jv_get_kind(hc) == JV_KIND_OBJECT) {
		jv h = jv_object();
		int64_t v;
		if (jv_get_kind(x = jget(hc, "cmd")) == JV_KIND_ARRAY)
			h = jv_object_set(h, jv_string("command"), x);
		else
			jv_free(x);
		if ((s = ens_str(hc, "http")))
			h = jv_object_set(h, jv_string("http"), jv_string(s));
		if (nn_json_get_int(hc, "interval_ms", &v, NULL) == 0)
			h = jv_object_set(h, jv_string("interval"), jv_string_fmt("%lldms", (long long)v));
		if (nn_json_get_int(hc, "timeout_ms", &v, NULL) == 0)
			h = jv_object_set(h, jv_string("timeout"), jv_string_fmt("%lldms", (long long)v));
		if (nn_json_get_int(hc, "retries", &v, NULL) == 0)
			h = jv_object_set(h, jv_string("retries"), jv_number((double)v));
		body = jv_object_set(body, jv_string("healthcheck"), h);
	}
	jv_free(hc);
	jv_free(r);
	return body;
}

/* A group's allocations in depends_on order (names, new array). */
static jv group_order(jv ens, const char *grp)
{
	jv names = jv_object_get(jv_object_get(jget(ens, "nodes"), jv_string(grp)), jv_string("allocations"));
	jv allocs = jget(ens, "allocations"), out = jv_array(), done = jv_object();
	int n = jv_get_kind(names) == JV_KIND_ARRAY ? jv_array_length(jv_copy(names)) : 0, progress = 1;
	while (progress && jv_array_length(jv_copy(out)) < n) {
		progress = 0;
		for (int i = 0; i < n; i++) {
			jv nm = jv_array_get(jv_copy(names), i);
			jv deps = jv_object_get(jv_object_get(jv_copy(allocs), jv_copy(nm)), jv_string("depends_on"));
			int ready = 1;
			jv seen = jv_object_get(jv_copy(done), jv_copy(nm));
			if (jv_is_valid(seen)) {
				jv_free(seen);
				jv_free(deps);
				jv_free(nm);
				continue;
			}
			if (jv_get_kind(deps) == JV_KIND_ARRAY)
				jv_array_foreach(deps, k, dn) {
					/* a dependency in this group must start first */
					int in = 0;
					jv_array_foreach(names, m, x) {
						in |= jv_equal(jv_copy(x), jv_copy(dn));
						jv_free(x);
					}
					if (in) {
						jv s = jv_object_get(jv_copy(done), jv_copy(dn));
						ready &= jv_is_valid(s);
						jv_free(s);
					}
					jv_free(dn);
				}
			if (ready || !progress) {
				/* a cycle cannot stop it: the normalizer refuses them */
			}
			if (ready) {
				done = jv_object_set(done, jv_copy(nm), jv_true());
				out = jv_array_append(out, jv_copy(nm));
				progress = 1;
			}
			jv_free(deps);
			jv_free(nm);
		}
	}
	jv_free(done);
	jv_free(allocs);
	jv_free(names);
	return out;
}

/* The group that holds allocation name. */
static jv group_of(jv ens, jv name)
{
	jv nodes = jget(ens, "nodes"), out = jv_invalid();
	jv_object_foreach(nodes, g, v) {
		jv as = jget(v, "allocations");
		if (jv_get_kind(as) == JV_KIND_ARRAY && !jv_is_valid(out))
			jv_array_foreach(as, i, x) {
				if (!jv_is_valid(out) && jv_equal(jv_copy(x), jv_copy(name)))
					out = jv_copy(g);
				jv_free(x);
			}
		jv_free(as);
		jv_free(g);
		jv_free(v);
	}
	jv_free(nodes);
	jv_free(name);
	return out;
}

int orch_dep_holds(struct orch *o, const char *dep, const char *name, const char *did, const char *lease)
{
	struct orch_dep *d = dep_find(o, dep);
	jv g;
	int yes = 0;
	if (!d || d->state >= D_DONE)
		return 0;
	g = group_of(d->ens, jv_string(name));
	if (jv_get_kind(g) == JV_KIND_STRING)
		for (int i = 0; i < d->nslots && !yes; i++) {
			struct slot *s = &d->slots[i];
			yes = s->st >= S_COMMITTED && !strcmp(s->grp, jv_string_value(g)) && !strcmp(s->prov, did) &&
				(!lease || !strcmp(s->lease, lease));
		}
	jv_free(g);
	return yes;
}

/* ---- bids ---- */

static jv bid_body(struct orch_dep *d)
{
	jv b = jv_object_set(jv_object(), jv_string("deployment"), jv_string(d->id));
	jv groups = jv_object(), nodes = jget(d->ens, "nodes");
	/* where and rank travel inside each group's requirements */
	jv_object_foreach(nodes, g, v) {
		int want = !d->repair;
		for (int i = 0; i < d->nslots && !want; i++)
			want = !d->slots[i].keep && !strcmp(d->slots[i].grp, jv_string_value(g));
		if (want) {
			jv req = nn_ensemble_group_requirements(d->ens, jv_string_value(g));
			groups = jv_object_set(groups, jv_copy(g), jv_is_valid(req) ? req : (jv_free(req), jv_object()));
		}
		jv_free(g);
		jv_free(v);
	}
	jv_free(nodes);
	return jv_object_set(b, jv_string("groups"), groups);
}

static void bids_maybe_close(struct orch_dep *d)
{
	int waiting = d->inflight > 0;
	if (d->state != D_BIDDING || !d->bid_close)
		return;
	if (!waiting)
		jv_object_foreach(d->expect, k, v) {
			jv b = jv_object_get(jv_copy(d->bids), jv_copy(k));
			jv ex = jv_object_get(jv_copy(d->excluded), jv_copy(k));
			waiting |= !jv_is_valid(b) && !jv_is_valid(ex);
			jv_free(b);
			jv_free(ex);
			jv_free(k);
			jv_free(v);
		}
	if (!waiting) {
		d->bid_close = 0;
		dep_select(d);
	}
}

static void ask(struct orch_dep *d, const char *to, int depth);

static void on_bid(struct nn_node *n, jv ans, void *arg)
{
	struct orch_rq *r = arg;
	struct orch_dep *d = rq_dep(r);
	int multi = !strcmp(r->to, "*");
	(void)n;
	if (!jv_is_valid(ans)) {
		if (d && !multi) {
			char why[NN_ERRLEN];
			answer_why(ans, why, sizeof why);
			d->inflight--;
			/* a node that cannot be asked is not waited for */
			d->excluded = jv_object_set(d->excluded, jv_string(r->to), jv_string(why));
			bids_maybe_close(d);
		}
		rq_free(r);
		return;
	}
	if (d && d->state == D_BIDDING) {
		const char *from = nn_env_str(ans, "from");
		jv body = jget(ans, "body");
		if (!multi)
			d->inflight--;
		if (is_reply(ans) && jv_get_kind(body) == JV_KIND_OBJECT) {
			const char *bd = ens_str(body, "did");
			/* the signer is the bidder; the body says so too */
			if (bd && !strcmp(bd, from)) {
				jv f = jv_object_set(jv_object(), jv_string("provider"), jv_string(from)), gm = jv_array();
				jv gs = jget(body, "groups");
				if (jv_get_kind(gs) == JV_KIND_OBJECT)
					jv_object_foreach(gs, g, v) {
						jv m = jget(v, "match");
						if (jv_get_kind(m) == JV_KIND_TRUE)
							gm = jv_array_append(gm, jv_copy(g));
						jv_free(m);
						jv_free(g);
						jv_free(v);
					}
				jv_free(gs);
				f = jv_object_set(f, jv_string("matches"), gm);
				emit(d, NN_LOG_INFO, "deploy.bid", f);
				d->bids = jv_object_set(d->bids, jv_string(from), jv_copy(body));
				/* the traversal goes on along the bidder's edges */
				if (!multi && r->depth < d->hops) {
					jv ps = jget(body, "peers");
					if (jv_get_kind(ps) == JV_KIND_ARRAY)
						jv_array_foreach(ps, i, p) {
							const char *pd = ens_str(p, "did");
							if (pd && strlen(pd) < NN_DID_MAX)
								ask(d, pd, r->depth + 1);
							jv_free(p);
						}
					jv_free(ps);
				}
			}
		} else if (!multi) {
			char why[NN_ERRLEN];
			answer_why(ans, why, sizeof why);
			d->excluded = jv_object_set(d->excluded, jv_string(from ? from : r->to), jv_string(why));
		}
		jv_free(body);
		bids_maybe_close(d);
	} else if (d && !multi) {
		d->inflight--;
	}
	if (!multi)
		rq_free(r);
}

static void ask(struct orch_dep *d, const char *to, int depth)
{
	char e[NN_ERRLEN];
	struct orch_rq *r;
	jv seen = jv_object_get(jv_copy(d->asked), jv_string(to));
	int64_t left = d->deadline - nn_now_ms();
	if (jv_is_valid(seen)) {
		jv_free(seen);
		return;
	}
	d->asked = jv_object_set(d->asked, jv_string(to), jv_number(depth));
	d->expect = jv_object_set(d->expect, jv_string(to), jv_true());
	r = rq_new(d, RQ_BID, -1, to);
	r->depth = depth;
	d->inflight++;
	if (nn_node_request(d->o->n, to, "/broadcast/public/deploy/bid", bid_body(d), d->trace,
			    left > 100 ? left : 100, on_bid, r, NULL, e) < 0) {
		d->inflight--;
		d->excluded = jv_object_set(d->excluded, jv_string(to), jv_string(e));
		rq_free(r);
	}
}

/* Pinned peers of the ensemble's groups (did → true), and whether every
 * group is pinned. */
static jv pins(jv ens, int *all)
{
	jv nodes = jget(ens, "nodes"), out = jv_object();
	*all = 1;
	jv_object_foreach(nodes, g, v) {
		const char *p = ens_str(v, "peer");
		if (p)
			out = jv_object_set(out, jv_string(p), jv_true());
		else
			*all = 0;
		jv_free(g);
		jv_free(v);
	}
	jv_free(nodes);
	return out;
}

static void dep_bid(struct orch_dep *d)
{
	int all;
	jv pinned = pins(d->ens, &all);
	int64_t window = ens_int(d->ens, "bid_window_ms", 500);
	char e[NN_ERRLEN];

	d->state = D_BIDDING;
	d->gen++;
	d->rebid_at = 0;
	d->inflight = 0;
	jv_free(d->bids);
	jv_free(d->asked);
	jv_free(d->expect);
	d->bids = jv_object();
	d->asked = jv_object();
	d->expect = jv_object();
	if (window < 10)
		window = 10;
	d->bid_close = nn_mono_ms() + window;
	dep_save(d, NULL, -1);
	{
		jv f = jv_object_set(jv_object(), jv_string("window_ms"), jv_number((double)window));
		f = jv_object_set(f, jv_string("mode"), jv_string(all ? "pinned" : d->hops > 0 ? "traversal" : "broadcast"));
		if (d->hops > 0)
			f = jv_object_set(f, jv_string("hops"), jv_number(d->hops));
		emit(d, NN_LOG_INFO, "deploy.bidding", f);
	}
	jv_object_foreach(pinned, k, v) {
		ask(d, jv_string_value(k), d->hops);
		jv_free(k);
		jv_free(v);
	}
	if (!all) {
		jv peers = orch_peers(d->o);
		ask(d, nn_node_did(d->o->n), d->hops > 0 ? 1 : d->hops);
		if (d->hops > 0) {
			jv_array_foreach(peers, i, p) {
				const char *pd = ens_str(p, "did");
				if (pd)
					ask(d, pd, 1);
				jv_free(p);
			}
		} else if (jv_array_length(jv_copy(peers)) > 0) {
			struct orch_rq *r = rq_new(d, RQ_BID, -1, "*");
			jv_array_foreach(peers, i, p) {
				const char *pd = ens_str(p, "did");
				if (pd)
					d->expect = jv_object_set(d->expect, jv_string(pd), jv_true());
				jv_free(p);
			}
			if (nn_node_request(d->o->n, "*", "/broadcast/public/deploy/bid", bid_body(d), d->trace,
					    window, on_bid, r, NULL, e) < 0) {
				nn_debug("orch: %s: broadcast: %s", d->id, e);
				rq_free(r);
			}
		}
		jv_free(peers);
	}
	jv_free(pinned);
	bids_maybe_close(d);
}

/* ---- selection ---- */

static int group_count(jv ens)
{
	jv nodes = jget(ens, "nodes");
	int n = jv_get_kind(nodes) == JV_KIND_OBJECT ? jv_object_length(jv_copy(nodes)) : 0;
	jv_free(nodes);
	return n;
}

/* The slots (group × redundancy) with their candidates from the bids. */
static jv build_slots(struct orch_dep *d, jv *explain)
{
	jv nodes = jget(d->ens, "nodes"), slots = jv_array(), rank = jget(d->ens, "rank");
	int ranked = jv_get_kind(rank) == JV_KIND_STRING;
	jv_free(rank);
	*explain = jv_array();
	jv_object_foreach(nodes, g, v) {
		int64_t red = ens_int(v, "redundancy", 1);
		const char *pin = ens_str(v, "peer");
		jv cands = jv_array(), near = jv_array();
		int kept = d->repair;
		for (int i = 0; i < d->nslots && kept; i++)
			if (!strcmp(d->slots[i].grp, jv_string_value(g)))
				kept = d->slots[i].keep;
		if (!kept)
		jv_object_foreach(d->bids, did, b) {
			jv ans = jv_object_get(jget(b, "groups"), jv_copy(g));
			jv m = jget(ans, "match"), why = jv_object_get(jv_copy(d->excluded), jv_copy(did));
			jv rf = jv_object_get(jv_copy(d->refused), jv_copy(did));
			if (jv_is_valid(rf)) {
				/* it said no for good: a near-miss with its reason */
				if (!pin || !strcmp(pin, jv_string_value(did))) {
					jv x = jv_object_set(jv_object(), jv_string("group"), jv_copy(g));
					x = jv_object_set(x, jv_string("provider"), jv_copy(did));
					x = jv_object_set(x, jv_string("rejected"), jv_array_append(jv_array(), jv_copy(rf)));
					near = jv_array_append(near, x);
				}
			} else if (jv_is_valid(why)) {
				;
			} else if (pin && strcmp(pin, jv_string_value(did))) {
				;
			} else if (jv_get_kind(m) == JV_KIND_TRUE) {
				jv sc = jget(ans, "score");
				double s = jv_get_kind(sc) == JV_KIND_NUMBER ? jv_number_value(sc) : 0;
				jv c = jv_object_set(jv_object(), jv_string("did"), jv_copy(did));
				c = jv_object_set(c, jv_string("score"), jv_number(s));
				c = jv_object_set(c, jv_string("price"), jv_number(ranked ? 0 : -s));
				cands = jv_array_append(cands, c);
			} else {
				jv x = jv_object_set(jv_object(), jv_string("group"), jv_copy(g));
				x = jv_object_set(x, jv_string("provider"), jv_copy(did));
				x = jv_object_set(x, jv_string("rejected"), jget(ans, "rejected"));
				near = jv_array_append(near, x);
			}
			jv_free(rf);
			jv_free(why);
			jv_free(m);
			jv_free(ans);
			jv_free(did);
			jv_free(b);
		}
		if (jv_array_length(jv_copy(cands)) == 0) {
			/* near-misses: the providers that failed fewest constraints */
			int n = jv_array_length(jv_copy(near)), taken = 0;
			for (int pass = 1; pass <= 64 && taken < 3; pass++)
				for (int i = 0; i < n && taken < 3; i++) {
					jv x = jv_array_get(jv_copy(near), i), rj = jget(x, "rejected");
					int k = jv_get_kind(rj) == JV_KIND_ARRAY ? jv_array_length(jv_copy(rj)) : 64;
					if (k == pass || (pass == 64 && k >= 64)) {
						*explain = jv_array_append(*explain, jv_copy(x));
						taken++;
					}
					jv_free(rj);
					jv_free(x);
				}
		}
		jv_free(near);
		for (int64_t i = 0; i < red && i < 16; i++) {
			int idx = jv_array_length(jv_copy(slots));
			jv s = jv_object_set(jv_object(), jv_string("group"), jv_copy(g));
			if (d->repair && idx < d->nslots && d->slots[idx].keep) {
				/* a placement that survived stays where it runs */
				jv c = jv_object_set(jv_object(), jv_string("did"), jv_string(d->slots[idx].prov));
				c = jv_object_set(c, jv_string("score"), jv_number(0));
				c = jv_object_set(c, jv_string("price"), jv_number(0));
				s = jv_object_set(s, jv_string("candidates"), jv_array_append(jv_array(), c));
			} else {
				s = jv_object_set(s, jv_string("candidates"), jv_copy(cands));
			}
			slots = jv_array_append(slots, s);
		}
		jv_free(cands);
		jv_free(g);
		jv_free(v);
	}
	jv_free(nodes);
	return slots;
}

static jv rtt_map(struct orch_dep *d)
{
	jv m = jv_object();
	jv_object_foreach(d->bids, did, b) {
		jv row = jv_object(), ps = jget(b, "peers");
		if (jv_get_kind(ps) == JV_KIND_ARRAY)
			jv_array_foreach(ps, i, p) {
				jv pd = jget(p, "did"), r = jget(p, "rtt_ms");
				if (jv_get_kind(pd) == JV_KIND_STRING && jv_get_kind(r) == JV_KIND_NUMBER)
					row = jv_object_set(row, pd, r);
				else {
					jv_free(pd);
					jv_free(r);
				}
				jv_free(p);
			}
		jv_free(ps);
		m = jv_object_set(m, did, row);
		jv_free(b);
	}
	return m;
}

static void commit_slot(struct orch_dep *d, int i);

static void dep_select(struct orch_dep *d)
{
	jv explain, slots = build_slots(d, &explain), edges = jget(d->ens, "edges"), rtt = rtt_map(d);
	jv res = nn_orch_select(slots, edges, rtt, ORCH_SEARCH_MAX), a = jget(res, "assignment");
	int n = jv_get_kind(slots) == JV_KIND_ARRAY ? jv_array_length(jv_copy(slots)) : 0;

	if (jv_get_kind(a) != JV_KIND_ARRAY) {
		const char *why = ens_str(res, "why");
		jv f = jv_object_set(jv_object(), jv_string("bids"), jv_number(jv_object_length(jv_copy(d->bids))));
		char *w = nn_xstrdup(why ? why : "no assignment");
		f = jv_object_set(f, jv_string("reason"), jv_string(w));
		f = jv_object_set(f, jv_string("explain"), jv_copy(explain));
		if (jv_get_kind(edges) == JV_KIND_ARRAY && jv_array_length(jv_copy(edges)) > 0)
			f = jv_object_set(f, jv_string("rtt_ms"), jv_copy(rtt));
		emit(d, NN_LOG_WARN, "deploy.nomatch", f);
		if ((((jv_object_length(jv_copy(d->excluded)) > 0 || d->redeploys > 0) && d->attempts > 0) ||
		     d->resumed) &&
		    nn_now_ms() + 1000 + ens_int(d->ens, "bid_window_ms", 500) < d->deadline) {
			/* providers failed us: ask again a second later, the
			 * others may still bid, and what was reverted (released
			 * allocations end within their grace) is free again */
			jv_free(d->excluded);
			d->excluded = jv_object();
			d->state = D_BIDDING;
			d->bid_close = 0;
			d->rebid_at = nn_mono_ms() + 1000;
		} else {
			dep_fail(d, w, jv_object_set(jv_object(), jv_string("explain"), jv_copy(explain)));
		}
		free(w);
		goto out;
	}
	if (d->repair && n != d->nslots) {
		dep_fail(d, "the ensemble's groups changed during a repair", jv_null());
		goto out;
	}
	if (!d->repair) {
		free(d->slots);
		d->nslots = n;
		d->slots = nn_xcalloc((size_t)n + 1, sizeof *d->slots);
	}
	d->attempts++;
	d->gen++;
	{
		jv reasons = jv_array();
		for (int i = 0; i < n; i++) {
			jv sl = jv_array_get(jv_copy(slots), i), p = jv_array_get(jv_copy(a), i);
			jv cs = jget(sl, "candidates");
			const char *g = ens_str(sl, "group");
			jv rs = jv_object();
			snprintf(d->slots[i].grp, sizeof d->slots[i].grp, "%s", g ? g : "");
			snprintf(d->slots[i].prov, sizeof d->slots[i].prov, "%s", jv_string_value(p));
			if (d->slots[i].keep)
				rs = jv_object_set(rs, jv_string("kept"), jv_true());
			rs = jv_object_set(rs, jv_string("group"), jv_string(d->slots[i].grp));
			rs = jv_object_set(rs, jv_string("provider"), jv_copy(p));
			jv_array_foreach(cs, k, c) {
				jv cd = jget(c, "did");
				if (jv_equal(cd, jv_copy(p)))
					rs = jv_object_set(rs, jv_string("score"), jget(c, "score"));
				jv_free(c);
			}
			rs = jv_object_set(rs, jv_string("candidates"), jv_number(jv_array_length(jv_copy(cs))));
			reasons = jv_array_append(reasons, rs);
			jv_free(cs);
			jv_free(p);
			jv_free(sl);
		}
		{
			jv f = jv_object_set(jv_object(), jv_string("placements"), jv_copy(reasons));
			sqlite3_stmt *st;
			char *t;
			f = jv_object_set(f, jv_string("score"), jget(res, "score"));
			f = jv_object_set(f, jv_string("searched"), jget(res, "searched"));
			f = jv_object_set(f, jv_string("complete"), jget(res, "complete"));
			f = jv_object_set(f, jv_string("bids"), jv_number(jv_object_length(jv_copy(d->bids))));
			f = jv_object_set(f, jv_string("attempt"), jv_number(d->attempts));
			if (d->repair)
				f = jv_object_set(f, jv_string("repair"), jv_true());
			t = nn_json_dump(f);
			st = orch_prep(d->o, "UPDATE orch_deploy SET selection = ? WHERE id = ?");
			if (st) {
				sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
				sqlite3_bind_text(st, 2, d->id, -1, SQLITE_STATIC);
			}
			orch_step(d->o, st);
			free(t);
			emit(d, NN_LOG_INFO, "deploy.select", f);
		}
		jv_free(reasons);
	}
	d->state = D_COMMITTING;
	dep_save(d, NULL, -1);
	if (!d->repair) {
		sqlite3_stmt *st = orch_prep(d->o, "DELETE FROM orch_slot WHERE dep = ?");
		if (st)
			sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
		orch_step(d->o, st);
	}
	for (int i = 0; i < n; i++) {
		if (d->slots[i].keep)
			continue;
		d->slots[i].st = S_COMMITTING;
		slot_save(d, i);
	}
	{
		/* a synchronous failure may end d: look it up again each time */
		struct orch *o = d->o;
		char idc[40];
		int gen = d->gen;
		snprintf(idc, sizeof idc, "%s", d->id);
		for (int i = 0; i < n; i++) {
			if (d->slots[i].keep)
				continue;
			commit_slot(d, i);
			if (dep_find(o, idc) != d || d->gen != gen || d->state != D_COMMITTING)
				break;
		}
	}
out:
	jv_free(a);
	jv_free(res);
	jv_free(rtt);
	jv_free(edges);
	jv_free(slots);
	jv_free(explain);
}

/* ---- commit, revert ---- */

/*
 * Releases.  A lease given up is written to orch_release before its
 * /deploy/release goes out, and the row goes when the provider answered
 * (whatever it said: it heard us).  What could not be sent or was not
 * answered (the provider dead, cut off by a partition, this node killed
 * before the answer) is asked again every ORCH_RELEASE_RETRY_MS once the
 * provider is alive to this node again: a provider that ran on while it
 * was cut off stops its now orphaned allocations when it is back.
 */
static void on_release(struct nn_node *n, jv ans, void *arg)
{
	struct orch_rq *r = arg;
	const char *from = jv_is_valid(ans) ? nn_env_str(ans, "from") : NULL;
	(void)n;
	/* the node answers for a peer it cannot reach: only the provider's
	 * own answer counts */
	if (from && !strcmp(from, r->to)) {
		sqlite3_stmt *st = orch_prep(r->o, "DELETE FROM orch_release WHERE provider = ? AND lease = ?");
		if (st) {
			sqlite3_bind_text(st, 1, r->to, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, r->lease, -1, SQLITE_STATIC);
		}
		orch_step(r->o, st);
	}
	rq_free(r);
}

static void release_send(struct orch *o, const char *dep, const char *prov, const char *lease, const char *trace)
{
	char e[NN_ERRLEN];
	jv b = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	struct orch_rq *r = rq_make(o, dep, -1, RQ_RELEASE, -1, prov);
	snprintf(r->lease, sizeof r->lease, "%s", lease);
	if (nn_node_request_cap(o->n, prov, "/deploy/release", b, tokens_for(o, prov), trace,
				10000, on_release, r, NULL, e) < 0) {
		nn_debug("orch: release of lease %s on %s: %s (asked again later)", lease, prov, e);
		rq_free(r);
	}
}

/* Release s's lease (now, or when its provider is back); the slot keeps
 * its state. */
static void release_lease(struct orch_dep *d, struct slot *s)
{
	if (s->lease[0] && s->prov[0]) {
		sqlite3_stmt *st = orch_prep(d->o, "INSERT OR IGNORE INTO orch_release (provider, lease, dep, trace,"
					     " since) VALUES (?, ?, ?, ?, ?)");
		if (st) {
			sqlite3_bind_text(st, 1, s->prov, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, s->lease, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, d->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, d->trace, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 5, nn_now_ms());
		}
		orch_step(d->o, st);
		release_send(d->o, d->id, s->prov, s->lease, d->trace);
	}
	s->lease[0] = '\0';
}

static void release_slot(struct orch_dep *d, struct slot *s)
{
	release_lease(d, s);
	s->st = S_NONE;
}

/* Ask again for the releases not answered, of providers alive now (and
 * this node's own); a row older than a week is dropped. */
void orch_release_retry(struct orch *o)
{
	int64_t mono = nn_mono_ms();
	sqlite3_stmt *st;
	jv rows;
	if (mono - o->released_retried < ORCH_RELEASE_RETRY_MS)
		return;
	o->released_retried = mono;
	if ((st = orch_prep(o, "DELETE FROM orch_release WHERE since < ?"))) {
		sqlite3_bind_int64(st, 1, nn_now_ms() - 7 * 86400000LL);
		orch_step(o, st);
	}
	st = orch_prep(o, "SELECT r.provider, r.lease, r.dep, r.trace FROM orch_release r LEFT JOIN swarm_edges e"
		       " ON e.src = ?1 AND e.dst = r.provider WHERE r.provider = ?1 OR e.state = 'alive' LIMIT 64");
	if (!st)
		return;
	rows = jv_array();
	sqlite3_bind_text(st, 1, nn_node_did(o->n), -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int busy = 0;
		const char *prov = (const char *)sqlite3_column_text(st, 0);
		const char *lease = (const char *)sqlite3_column_text(st, 1);
		for (struct orch_rq *r = o->rqs; r && !busy; r = r->next)
			busy = r->kind == RQ_RELEASE && !strcmp(r->lease, lease) && !strcmp(r->to, prov);
		if (!busy) {
			jv x = jv_array_append(jv_array(), orch_col_str(st, 0));
			x = jv_array_append(x, orch_col_str(st, 1));
			x = jv_array_append(x, orch_col_str(st, 2));
			rows = jv_array_append(rows, jv_array_append(x, orch_col_str(st, 3)));
		}
	}
	sqlite3_finalize(st);
	jv_array_foreach(rows, i, x) {
		jv p = jv_array_get(jv_copy(x), 0), l = jv_array_get(jv_copy(x), 1);
		jv dp = jv_array_get(jv_copy(x), 2), t = jv_array_get(jv_copy(x), 3);
		if (jv_get_kind(p) == JV_KIND_STRING && jv_get_kind(l) == JV_KIND_STRING &&
		    jv_get_kind(dp) == JV_KIND_STRING && strlen(jv_string_value(l)) < 72)
			release_send(o, jv_string_value(dp), jv_string_value(p), jv_string_value(l),
				     jv_get_kind(t) == JV_KIND_STRING ? jv_string_value(t) : NULL);
		jv_free(p);
		jv_free(l);
		jv_free(dp);
		jv_free(t);
		jv_free(x);
	}
	jv_free(rows);
}

/* Release every lease (they would expire anyway) and forget the slots. */
static void dep_revert(struct orch_dep *d, const char *why)
{
	jv f = jv_object_set(jv_object(), jv_string("reason"), jv_string(why)), rel = jv_array();
	for (int i = 0; i < d->nslots; i++) {
		sqlite3_stmt *st;
		if (d->repair && d->slots[i].keep)
			continue;
		if (d->slots[i].lease[0])
			rel = jv_array_append(rel, jv_string(d->slots[i].prov));
		release_slot(d, &d->slots[i]);
		slot_save(d, i);
		st = orch_prep(d->o, "DELETE FROM orch_alloc WHERE dep = ? AND slot = ?");
		if (st) {
			sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 2, i);
		}
		orch_step(d->o, st);
	}
	f = jv_object_set(f, jv_string("released"), rel);
	emit(d, NN_LOG_WARN, "deploy.revert", f);
	d->gen++;
}

/* A failure before running: revert, drop the provider, try the next best. */
static void dep_retry(struct orch_dep *d, const char *prov, const char *why)
{
	char w[NN_ERRLEN];
	snprintf(w, sizeof w, "%s", why);
	if (prov)
		d->excluded = jv_object_set(d->excluded, jv_string(prov), jv_string(w));
	dep_revert(d, w);
	if (nn_now_ms() >= d->deadline) {
		dep_fail(d, "deadline passed", jv_object_set(jv_object(), jv_string("last_error"), jv_string(w)));
		return;
	}
	d->state = D_BIDDING;
	dep_select(d);
}

static void on_commit(struct nn_node *n, jv ans, void *arg)
{
	struct orch_rq *r = arg;
	struct orch_dep *d = rq_dep(r);
	(void)n;
	if (d && d->state == D_COMMITTING && r->slot >= 0 && r->slot < d->nslots) {
		struct slot *s = &d->slots[r->slot];
		jv body = jget(ans, "body");
		const char *lease = ens_str(body, "lease");
		if (is_reply(ans) && lease && strlen(lease) < sizeof s->lease) {
			jv f = jv_object_set(jv_object(), jv_string("group"), jv_string(s->grp));
			snprintf(s->lease, sizeof s->lease, "%s", lease);
			s->st = S_COMMITTED;
			s->expires = 0;
			s->renewing = 0;
			{
				int64_t ex;
				if (nn_json_get_int(body, "expires", &ex, NULL) == 0)
					s->expires = ex;
			}
			slot_save(d, r->slot);
			f = jv_object_set(f, jv_string("provider"), jv_string(s->prov));
			f = jv_object_set(f, jv_string("lease"), jv_string(lease));
			f = jv_object_set(f, jv_string("expires"), jget(body, "expires"));
			emit(d, NN_LOG_INFO, "deploy.commit", f);
		} else {
			char why[NN_ERRLEN];
			const char *code = NULL;
			int for_good;
			s->failed = 1;
			s->st = S_NONE;
			answer_why(ans, why, sizeof why);
			/* refused for lack of authority (or of a contract it
			 * accepted): asking it again cannot change its answer */
			for_good = jv_get_kind(body) == JV_KIND_OBJECT && nn_json_get_str(body, "code", &code, NULL) == 0 &&
				   !strcmp(code, "unauthorized");
			snprintf(s->lease, sizeof s->lease, "%s", "");
			jv_free(body);
			body = jv_null();
			{
				char w[NN_ERRLEN + 128];
				char p[NN_DID_MAX];
				snprintf(p, sizeof p, "%s", s->prov);
				snprintf(w, sizeof w, "commit on %s refused: %s", p, why);
				emit(d, NN_LOG_WARN, "deploy.commit_failed",
				     jv_object_set(jv_object_set(jv_object(), jv_string("provider"), jv_string(p)),
						   jv_string("reason"), jv_string(why)));
				rq_free(r);
				if (for_good)
					d->refused = jv_object_set(d->refused, jv_string(p), jv_string(w));
				dep_retry(d, for_good ? NULL : p, w);
				return;
			}
		}
		jv_free(body);
		{
			int all = 1;
			for (int i = 0; i < d->nslots; i++)
				all &= d->slots[i].st == S_COMMITTED || d->slots[i].keep;
			if (all) {
				d->state = D_PROVISIONING;
				dep_save(d, NULL, -1);
				dep_provision(d);
			}
		}
	} else if (d == NULL && is_reply(ans)) {
		/* a lease for a step already given up: give it back */
		jv body = jget(ans, "body");
		const char *lease = ens_str(body, "lease");
		struct orch_dep *cur = dep_find(r->o, r->dep);
		if (lease && cur) {
			struct slot s;
			memset(&s, 0, sizeof s);
			snprintf(s.lease, sizeof s.lease, "%s", lease);
			snprintf(s.prov, sizeof s.prov, "%s", r->to);
			release_slot(cur, &s);
		}
		jv_free(body);
	}
	rq_free(r);
}

/* The did that asked for the deployment when it is not this node (an
 * allocation's identity, a recursive job): the providers let it read the
 * logs and outputs of their leases.  NULL otherwise; the caller frees. */
static char *dep_reader(struct orch_dep *d)
{
	sqlite3_stmt *st = orch_prep(d->o, "SELECT owner FROM orch_deploy WHERE id = ?");
	char *r = NULL;
	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
	    strcmp((const char *)sqlite3_column_text(st, 0), nn_node_did(d->o->n)) != 0)
		r = nn_xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return r;
}

static void commit_slot(struct orch_dep *d, int i)
{
	struct slot *s = &d->slots[i];
	jv req = nn_ensemble_group_requirements(d->ens, s->grp), b = jv_object();
	int64_t left = d->deadline - nn_now_ms();
	struct orch_rq *r = rq_new(d, RQ_COMMIT, i, s->prov);
	const char *contract = ens_str(d->ens, "contract");
	char e[NN_ERRLEN];
	struct nn_res res;
	if (!jv_is_valid(req) || nn_res_from_doc(&res, req, e) < 0)
		memset(&res, 0, sizeof res);
	jv_free(req);
	b = jv_object_set(b, jv_string("deployment"), jv_string(d->id));
	b = jv_object_set(b, jv_string("group"), jv_string(s->grp));
	b = jv_object_set(b, jv_string("resources"), nn_res_to_json(&res));
	b = jv_object_set(b, jv_string("lease_ms"), jv_number((double)lease_ms_for(d)));
	if (contract)
		b = jv_object_set(b, jv_string("contract"), jv_string(contract));
	{
		char *rd = dep_reader(d);
		if (rd)
			b = jv_object_set(b, jv_string("reader"), jv_string(rd));
		free(rd);
	}
	if (nn_node_request_cap(d->o->n, s->prov, "/deploy/commit", b, tokens_for(d->o, s->prov), d->trace,
				step_ms(left), on_commit, r, NULL, e) < 0) {
		char p[NN_DID_MAX];
		snprintf(p, sizeof p, "%s", s->prov);
		rq_free(r);
		dep_retry(d, p, e);
	}
}

/* ---- provisioning ---- */

/* The provider's answer to /deploy/provision: allocations {NAME:ID}, and
 * waiting [NAME] (those waiting for others of the group; consumed). */
static void alloc_rows(struct orch_dep *d, int slot, jv allocs, jv waiting)
{
	struct slot *s = &d->slots[slot];
	jv ens_allocs = jget(d->ens, "allocations");
	jv_object_foreach(allocs, name, id) {
		jv a = jv_object_get(jv_copy(ens_allocs), jv_copy(name));
		const char *type = ens_str(a, "type");
		int waits = 0;
		/* a state pushed before this answer came is kept */
		sqlite3_stmt *st = orch_prep(d->o, "INSERT INTO orch_alloc (dep, name, slot, grp, type,"
					     " provider, lease, alloc, state, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
					     " ?, ?) ON CONFLICT (dep, name, slot) DO UPDATE SET"
					     " provider = excluded.provider, lease = excluded.lease, alloc = excluded.alloc");
		if (jv_get_kind(waiting) == JV_KIND_ARRAY)
			jv_array_foreach(waiting, k, w) {
				waits |= jv_equal(w, jv_copy(name));
			}
		if (st && jv_get_kind(id) == JV_KIND_STRING) {
			sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, jv_string_value(name), -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 3, slot);
			sqlite3_bind_text(st, 4, s->grp, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 5, type ? type : "task", -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 6, s->prov, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 7, s->lease, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 8, jv_string_value(id), -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 9, waits ? "waiting" : "starting", -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 10, nn_now_ms());
			orch_step(d->o, st);
		} else if (st) {
			sqlite3_finalize(st);
		}
		jv_free(a);
		jv_free(name);
		jv_free(id);
	}
	jv_free(ens_allocs);
	jv_free(waiting);
}

static void on_provision(struct nn_node *n, jv ans, void *arg)
{
	struct orch_rq *r = arg;
	struct orch_dep *d = rq_dep(r);
	(void)n;
	if (d && d->state == D_PROVISIONING && r->slot >= 0 && r->slot < d->nslots) {
		struct slot *s = &d->slots[r->slot];
		jv body = jget(ans, "body"), allocs = jget(body, "allocations");
		if (is_reply(ans) && jv_get_kind(allocs) == JV_KIND_OBJECT) {
			jv f = jv_object_set(jv_object(), jv_string("group"), jv_string(s->grp));
			s->st = S_RUNNING;
			s->hb = nn_mono_ms();
			slot_save(d, r->slot);
			alloc_rows(d, r->slot, allocs, jget(body, "waiting"));
			f = jv_object_set(f, jv_string("provider"), jv_string(s->prov));
			f = jv_object_set(f, jv_string("allocations"), jv_copy(allocs));
			emit(d, NN_LOG_INFO, "deploy.provision", f);
			jv_free(allocs);
			jv_free(body);
			rq_free(r);
			dep_provision(d);
			return;
		} else {
			char why[NN_ERRLEN], w[NN_ERRLEN + 128], p[NN_DID_MAX];
			answer_why(ans, why, sizeof why);
			snprintf(p, sizeof p, "%s", s->prov);
			snprintf(w, sizeof w, "provisioning on %s failed: %s", p, why);
			emit(d, NN_LOG_WARN, "deploy.provision_failed",
			     jv_object_set(jv_object_set(jv_object(), jv_string("provider"), jv_string(p)),
					   jv_string("reason"), jv_string(why)));
			jv_free(allocs);
			jv_free(body);
			rq_free(r);
			dep_retry(d, p, w);
			return;
		}
	}
	rq_free(r);
}

/* Whether every slot of group g runs and its allocations are up: a
 * service running, a task finished with status 0 (what depends on a task
 * starts after it, like a prestart step). */
static int group_up(struct orch_dep *d, const char *g)
{
	sqlite3_stmt *st;
	int up = 1, any = 0;
	for (int i = 0; i < d->nslots; i++)
		if (!strcmp(d->slots[i].grp, g)) {
			any = 1;
			up &= d->slots[i].st == S_RUNNING;
		}
	if (!any || !up)
		return 0;
	st = orch_prep(d->o, "SELECT count(*) FROM orch_alloc WHERE dep = ? AND grp = ? AND NOT"
		       " ((type = 'service' AND state = 'running') OR"
		       " (type <> 'service' AND state = 'exited' AND status = 0))");
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, g, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		up = sqlite3_column_int(st, 0) == 0;
	sqlite3_finalize(st);
	/* one a strategy restarted is not up before its restart is seen */
	jv_object_foreach(d->sup_pending, k, v) {
		jv kg = group_of(d->ens, jv_copy(k));
		if (jv_get_kind(kg) == JV_KIND_STRING && !strcmp(jv_string_value(kg), g))
			up = 0;
		jv_free(kg);
		jv_free(k);
		jv_free(v);
	}
	return up;
}

/* Whether the groups that group g's allocations depend on are up. */
static int deps_up(struct orch_dep *d, const char *g)
{
	jv names = jv_object_get(jv_object_get(jget(d->ens, "nodes"), jv_string(g)), jv_string("allocations"));
	jv allocs = jget(d->ens, "allocations");
	int ok = 1;
	if (jv_get_kind(names) == JV_KIND_ARRAY)
		jv_array_foreach(names, i, nm) {
			jv deps = jv_object_get(jv_object_get(jv_copy(allocs), jv_copy(nm)), jv_string("depends_on"));
			if (jv_get_kind(deps) == JV_KIND_ARRAY)
				jv_array_foreach(deps, k, dn) {
					jv dg = group_of(d->ens, jv_copy(dn));
					if (ok && jv_get_kind(dg) == JV_KIND_STRING && strcmp(jv_string_value(dg), g))
						ok = group_up(d, jv_string_value(dg));
					jv_free(dg);
					jv_free(dn);
				}
			jv_free(deps);
			jv_free(nm);
		}
	jv_free(allocs);
	jv_free(names);
	return ok;
}

/* What allocation a (borrowed) waits for on its provider: its
 * depends_on within its own group (names, borrowed): a service until it
 * runs, a task until it has exited 0.  {NAME:"running"|"exited"}. */
static jv after_in_group(jv ens, jv names, jv a)
{
	jv deps = jget(a, "depends_on"), allocs = jget(ens, "allocations"), out = jv_object();
	if (jv_get_kind(deps) == JV_KIND_ARRAY)
		jv_array_foreach(deps, i, dn) {
			int in = 0;
			jv_array_foreach(names, k, x) {
				in |= jv_equal(jv_copy(x), jv_copy(dn));
				jv_free(x);
			}
			if (in) {
				jv da = jv_object_get(jv_copy(allocs), jv_copy(dn));
				const char *t = ens_str(da, "type");
				out = jv_object_set(out, jv_copy(dn),
						    jv_string(t && !strcmp(t, "service") ? "running" : "exited"));
				jv_free(da);
			}
			jv_free(dn);
		}
	jv_free(deps);
	jv_free(allocs);
	return out;
}

static void provision_slot(struct orch_dep *d, int i)
{
	struct slot *s = &d->slots[i];
	jv order = group_order(d->ens, s->grp), allocs = jget(d->ens, "allocations"), list = jv_array(), b;
	int64_t left = d->deadline - nn_now_ms();
	struct orch_rq *r;
	char e[NN_ERRLEN];
	jv_array_foreach(order, k, nm) {
		jv a = jv_object_get(jv_copy(allocs), jv_copy(nm));
		jv x = jv_object_set(jv_object(), jv_string("name"), jv_copy(nm));
		jv after = after_in_group(d->ens, order, a);
		x = jv_object_set(x, jv_string("slot"), jv_number(i));
		x = jv_object_set(x, jv_string("start"), start_body(d, jv_string_value(nm), a));
		if (jv_object_length(jv_copy(after)) > 0)
			x = jv_object_set(x, jv_string("after"), after);
		else
			jv_free(after);
		list = jv_array_append(list, x);
		jv_free(a);
		jv_free(nm);
	}
	jv_free(order);
	jv_free(allocs);
	b = jv_object_set(jv_object(), jv_string("lease"), jv_string(s->lease));
	b = jv_object_set(b, jv_string("allocations"), list);
	b = jv_object_set(b, jv_string("heartbeat_ms"), jv_number((double)d->hb_ms));
	s->st = S_PROVISIONING;
	slot_save(d, i);
	r = rq_new(d, RQ_PROVISION, i, s->prov);
	if (nn_node_request_cap(d->o->n, s->prov, "/deploy/provision", b, tokens_for(d->o, s->prov), d->trace,
				step_ms(left), on_provision, r, NULL, e) < 0) {
		char p[NN_DID_MAX];
		snprintf(p, sizeof p, "%s", s->prov);
		rq_free(r);
		dep_retry(d, p, e);
	}
}

/* The reason a dependency dn that ended in state s (status, reason rs)
 * gives what depends on it, k: at first start and after a restart alike. */
static void broken_why(char *why, size_t cap, const char *dn, const char *k, const char *s, int status,
		       const char *rs)
{
	if (!strcmp(s, "exited"))
		snprintf(why, cap, "%.64s, which %.64s depends on, exited with status %d", dn, k, status);
	else
		snprintf(why, cap, "%.64s, which %.64s depends on, ended (%s%s%.200s)", dn, k, s, rs ? ": " : "",
			 rs ? rs : "");
}

/* A dependency that ended other than its dependents need (a task not
 * by exiting 0, a service at all) before the deployment runs: 1, the
 * reason, naming it and what depends on it, in why, and *names (null
 * before) {"dependency","dependent"}.  Within a group and across groups
 * alike: what depends on it would wait for ever. */
static int dep_broken(struct orch_dep *d, char *why, size_t cap, jv *names)
{
	jv allocs = jget(d->ens, "allocations");
	int bad = 0;
	jv_object_foreach(allocs, k, a) {
		jv deps = jget(a, "depends_on");
		if (!bad && jv_get_kind(deps) == JV_KIND_ARRAY)
			jv_array_foreach(deps, i, dn) {
				sqlite3_stmt *st = bad || jv_get_kind(dn) != JV_KIND_STRING ? NULL
					: orch_prep(d->o, "SELECT type, state, status, reason FROM orch_alloc"
						    " WHERE dep = ? AND name = ?");
				if (st) {
					sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
					sqlite3_bind_text(st, 2, jv_string_value(dn), -1, SQLITE_STATIC);
				}
				while (st && !bad && sqlite3_step(st) == SQLITE_ROW) {
					const char *t = (const char *)sqlite3_column_text(st, 0);
					const char *s = (const char *)sqlite3_column_text(st, 1);
					const char *rs = (const char *)sqlite3_column_text(st, 3);
					int service = t && !strcmp(t, "service");
					int status = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 2);
					if (!s || !nn_alloc_state_final(s) || (!service && !strcmp(s, "exited") && status == 0))
						continue;
					bad = 1;
					*names = jv_object_set(jv_object(), jv_string("dependency"), jv_copy(dn));
					*names = jv_object_set(*names, jv_string("dependent"), jv_copy(k));
					broken_why(why, cap, jv_string_value(dn), jv_string_value(k), s, status, rs);
				}
				if (st)
					sqlite3_finalize(st);
				jv_free(dn);
			}
		jv_free(deps);
		jv_free(k);
		jv_free(a);
	}
	jv_free(allocs);
	return bad;
}

/* Whether an allocation of d still waits on its provider for others of
 * its group (its state "waiting", alloc.h). */
static int any_waiting(struct orch_dep *d)
{
	sqlite3_stmt *st = orch_prep(d->o, "SELECT 1 FROM orch_alloc WHERE dep = ? AND state IN ('waiting', 'pending')");
	int r = 0;
	if (!st)
		return 1;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	r = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return r;
}

/* Start every group whose dependencies are up; running when all run and
 * nothing waits for its dependencies any more. */
static void dep_provision(struct orch_dep *d)
{
	int all = 1, gen = d->gen;
	struct orch *o = d->o;
	char idc[40], why[NN_ERRLEN];
	if (d->state != D_PROVISIONING)
		return;
	{
		jv f = jv_null();
		if (dep_broken(d, why, sizeof why, &f)) {
			dep_fail(d, why, f);
			return;
		}
		jv_free(f);
	}
	snprintf(idc, sizeof idc, "%s", d->id);
	for (int i = 0; i < d->nslots; i++) {
		struct slot *s = &d->slots[i];
		if (s->st == S_COMMITTED && deps_up(d, s->grp)) {
			provision_slot(d, i);
			/* a synchronous failure may end d */
			if (dep_find(o, idc) != d || d->gen != gen)
				return;
		}
	}
	if (d->state != D_PROVISIONING)
		return;
	for (int i = 0; i < d->nslots; i++)
		all &= d->slots[i].st == S_RUNNING;
	if (all && !any_waiting(d)) {
		jv pl = jv_array();
		for (int i = 0; i < d->nslots; i++) {
			jv x = jv_object_set(jv_object(), jv_string("group"), jv_string(d->slots[i].grp));
			x = jv_object_set(x, jv_string("provider"), jv_string(d->slots[i].prov));
			pl = jv_array_append(pl, x);
		}
		jv f = jv_object_set(jv_object(), jv_string("placements"), pl);
		if (d->repair)
			f = jv_object_set(f, jv_string("repaired"), jv_true());
		d->state = D_RUNNING;
		d->repair = 0;
		for (int i = 0; i < d->nslots; i++)
			d->slots[i].keep = 0;
		dep_save(d, NULL, -1);
		emit(d, NN_LOG_INFO, "deploy.running", f);
		/* tasks may have ended before the last answer came */
		dep_check_done(d);
	}
}

/* ---- the end ---- */

static void dep_final(struct orch_dep *d, int state, const char *kind, const char *reason, int status, jv extra)
{
	jv f = jv_get_kind(extra) == JV_KIND_OBJECT ? extra : (jv_free(extra), jv_object());
	d->state = state;
	d->gen++;
	dep_save(d, reason, status);
	if (reason)
		f = jv_object_set(f, jv_string("reason"), jv_string(reason));
	if (status >= 0)
		f = jv_object_set(f, jv_string("status"), jv_number(status));
	emit(d, state == D_DONE ? NN_LOG_INFO : NN_LOG_WARN, kind, f);
	/* nothing is placed again now: its snapshots go */
	orch_snapshot_forget(d->o, d->id, d->trace);
	dep_unlink(d);
}

static void dep_fail(struct orch_dep *d, const char *why, jv extra)
{
	char w[NN_ERRLEN];
	snprintf(w, sizeof w, "%s", why);
	for (int i = 0; i < d->nslots; i++)
		release_slot(d, &d->slots[i]);
	dep_final(d, D_FAILED, "deploy.failed", w, -1, extra);
}

/* After an allocation's state changed: done when every task ended (and
 * there is no service); failed when a service gave up. */
static void dep_check_done(struct orch_dep *d)
{
	sqlite3_stmt *st = orch_prep(d->o, "SELECT type, state, status, name, reason FROM orch_alloc WHERE dep = ?");
	int tasks_left = 0, services = 0, status = 0, n = 0;
	char failed[256] = "";
	if (!st)
		return;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *s = (const char *)sqlite3_column_text(st, 1);
		int fin = s && nn_alloc_state_final(s);
		n++;
		if (type && !strcmp(type, "service")) {
			services++;
			if (fin && !failed[0])
				snprintf(failed, sizeof failed, "service %s ended (%s)",
					 (const char *)sqlite3_column_text(st, 3), s);
		} else if (!fin) {
			tasks_left++;
		} else if (!status) {
			int x = sqlite3_column_type(st, 2) == SQLITE_NULL ? 70 : sqlite3_column_int(st, 2);
			if (strcmp(s, "exited") != 0 && x == 0)
				x = 70;
			status = x;
		}
	}
	sqlite3_finalize(st);
	if (d->state != D_RUNNING || n == 0)
		return;
	if (failed[0]) {
		dep_fail(d, failed, jv_null());
		return;
	}
	if (!services && !tasks_left)
		dep_final(d, D_DONE, "deploy.done", NULL, status, jv_null());
}

/* ---- restart strategies across nodes ---- */

/* One its provider did not restart (it was not running there) is
 * not waited for. */
static void on_restarted(struct nn_node *n, jv ans, void *arg)
{
	struct orch_rq *r = arg;
	struct orch_dep *d = rq_dep(r);
	jv body = is_reply(ans) ? jget(ans, "body") : jv_invalid();
	jv done = jv_get_kind(body) == JV_KIND_OBJECT ? jget(body, "restarted") : jv_invalid();
	(void)n;
	jv_free(body);
	/* unanswered: nothing says they restart; none is waited for */
	if (d && !is_reply(ans)) {
		jv_free(d->sup_pending);
		d->sup_pending = jv_object();
		jv_free(d->holding);
		d->holding = jv_object();
	}
	if (d && jv_get_kind(done) == JV_KIND_OBJECT)
		jv_object_foreach(done, k, v) {
			/* (one between runs is held all the same: it stays
			 * in holding) */
			if (jv_get_kind(v) != JV_KIND_TRUE)
				d->sup_pending = jv_object_delete(d->sup_pending, jv_copy(k));
			jv_free(k);
			jv_free(v);
		}
	jv_free(done);
	rq_free(r);
}

/* A state of name other than running: a restart it was sent is under
 * way (its last run ended).  A final one: it is held no more. */
static void pending_seen(struct orch_dep *d, const char *name, const char *state)
{
	if (strcmp(state, "running") != 0)
		d->sup_pending = jv_object_delete(d->sup_pending, jv_string(name));
	if (nn_alloc_state_final(state))
		d->holding = jv_object_delete(d->holding, jv_string(name));
}

/* The allocations restarted with `name` under strategy: every other one
 * (one_for_all), or those that depend on it, directly or not
 * (rest_for_one).  A new object name → true. */
static jv strategy_set(jv ens, const char *name, const char *strategy)
{
	jv allocs = jget(ens, "allocations"), set = jv_object_set(jv_object(), jv_string(name), jv_true());
	int grew = 1, all = !strcmp(strategy, "one_for_all");
	while (grew) {
		grew = 0;
		jv_object_foreach(allocs, k, a) {
			jv in = jv_object_get(jv_copy(set), jv_copy(k)), deps = jget(a, "depends_on");
			int add = 0;
			if (!jv_is_valid(in)) {
				add = all;
				if (jv_get_kind(deps) == JV_KIND_ARRAY)
					jv_array_foreach(deps, i, dn) {
						jv x = jv_object_get(jv_copy(set), jv_copy(dn));
						add |= jv_is_valid(x);
						jv_free(x);
						jv_free(dn);
					}
			}
			if (add) {
				set = jv_object_set(set, jv_copy(k), jv_true());
				grew = 1;
			}
			jv_free(in);
			jv_free(deps);
			jv_free(k);
			jv_free(a);
		}
	}
	jv_free(allocs);
	return jv_object_delete(set, jv_string(name));
}

/* /deploy/restart of a lease's allocations names; how: 0 restart, 1
 * restart and hold the next run, 2 release held runs. */
static void send_restart(struct orch_dep *d, const char *prov, const char *lease, jv names, const char *why,
			 int how)
{
	char e[NN_ERRLEN];
	struct orch_rq *r = rq_new(d, RQ_RESTART, -1, prov);
	jv b = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	int sent;
	b = jv_object_set(b, jv_string("names"), jv_copy(names));
	b = jv_object_set(b, jv_string("reason"), jv_string(why));
	b = jv_object_set(b, jv_string("escalate"), jv_false());
	if (how == 1)
		b = jv_object_set(b, jv_string("hold"), jv_true());
	if (how == 2)
		b = jv_object_set(b, jv_string("release"), jv_true());
	sent = nn_node_request_cap(d->o->n, prov, "/deploy/restart", b, tokens_for(d->o, prov), d->trace, 10000,
				   on_restarted, r, NULL, e) == 0;
	if (!sent) {
		nn_debug("orch: %s: restart on %s: %s", d->id, prov, e);
		rq_free(r);
	}
	/* a hold counts from its request: its dependency may end before the
	 * provider reports the hold (release_held); no answer comes before
	 * this returns */
	jv_array_foreach(names, i, nm) {
		if (how == 1 && sent)
			d->holding = jv_object_set(d->holding, jv_copy(nm), jv_true());
		if (how == 2)
			d->holding = jv_object_delete(d->holding, jv_copy(nm));
		jv_free(nm);
	}
	jv_free(names);
}

/* Whether allocation nm (borrowed) depends on one of set (borrowed,
 * names → true) placed in another node group: its restart is held until
 * that one is up again. */
static int needs_hold(jv ens, jv nm, jv set)
{
	jv deps = jv_object_get(jv_object_get(jget(ens, "allocations"), jv_copy(nm)), jv_string("depends_on"));
	jv g = group_of(ens, jv_copy(nm));
	int hold = 0;
	if (jv_get_kind(deps) == JV_KIND_ARRAY)
		jv_array_foreach(deps, i, dn) {
			jv in = jv_object_get(jv_copy(set), jv_copy(dn)), dg = group_of(ens, jv_copy(dn));
			hold |= jv_is_valid(in) && !jv_equal(jv_copy(g), jv_copy(dg));
			jv_free(in);
			jv_free(dg);
			jv_free(dn);
		}
	jv_free(g);
	jv_free(deps);
	return hold;
}

/*
 * Allocations a restart across groups holds on their providers (state
 * waiting, reason NN_ALLOC_HELD; or only asked to, d->holding) start
 * again once what they depend on in other groups is up (a service
 * running, a task exited 0); a dependency that ended otherwise fails the
 * deployment, as at first start.  Returns 1 when d ended.
 */
static int release_held(struct orch_dep *d)
{
	sqlite3_stmt *st;
	jv held;
	char why[NN_ERRLEN];
	if (d->state != D_RUNNING)
		return 0;
	held = jv_array();
	st = orch_prep(d->o, "SELECT name, provider, lease FROM orch_alloc WHERE dep = ? AND state = 'waiting'"
		       " AND reason = ? AND provider IS NOT NULL AND lease IS NOT NULL");
	if (!st) {
		jv_free(held);
		return 0;
	}
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, NN_ALLOC_HELD, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		held = jv_array_append(held, jv_array_append(jv_array_append(jv_array_append(jv_array(),
							     orch_col_str(st, 0)), orch_col_str(st, 1)), orch_col_str(st, 2)));
	sqlite3_finalize(st);
	/* those whose hold is not reported yet: [name], never released
	 * before it is, but failed by a dependency's end all the same */
	jv_object_foreach(d->holding, k, v) {
		int seen = 0;
		jv_array_foreach(held, i, h) {
			seen |= jv_equal(jv_array_get(jv_copy(h), 0), jv_copy(k));
			jv_free(h);
		}
		if (!seen)
			held = jv_array_append(held, jv_array_append(jv_array(), jv_copy(k)));
		jv_free(k);
		jv_free(v);
	}
	jv_array_foreach(held, i, h) {
		jv nm = jv_array_get(jv_copy(h), 0), g = group_of(d->ens, jv_copy(nm)), bad = jv_invalid();
		jv deps = jv_object_get(jv_object_get(jget(d->ens, "allocations"), jv_copy(nm)), jv_string("depends_on"));
		int up = 1;
		if (jv_get_kind(deps) == JV_KIND_ARRAY)
			jv_array_foreach(deps, k, dn) {
				int same = jv_equal(jv_copy(g), group_of(d->ens, jv_copy(dn)));
				jv pend = jv_object_get(jv_copy(d->sup_pending), jv_copy(dn));
				if (jv_is_valid(pend))
					up = 0;
				jv_free(pend);
				/* within its group its provider waits ("after") */
				sqlite3_stmt *q = jv_is_valid(bad) || same ? NULL
					: orch_prep(d->o, "SELECT type, state, status, reason FROM orch_alloc"
						    " WHERE dep = ? AND name = ?");
				int rows = 0;
				if (q) {
					sqlite3_bind_text(q, 1, d->id, -1, SQLITE_STATIC);
					sqlite3_bind_text(q, 2, jv_string_value(dn), -1, SQLITE_STATIC);
				}
				while (q && sqlite3_step(q) == SQLITE_ROW) {
					const char *t = (const char *)sqlite3_column_text(q, 0);
					const char *s = (const char *)sqlite3_column_text(q, 1);
					const char *rs = (const char *)sqlite3_column_text(q, 3);
					int service = t && !strcmp(t, "service");
					int status = sqlite3_column_type(q, 2) == SQLITE_NULL ? -1 : sqlite3_column_int(q, 2);
					rows++;
					s = s ? s : "";
					if (service ? !strcmp(s, "running") : !strcmp(s, "exited") && status == 0)
						continue;
					up = 0;
					if (nn_alloc_state_final(s) && !jv_is_valid(bad)) {
						broken_why(why, sizeof why, jv_string_value(dn), jv_string_value(nm), s,
							   status, rs);
						bad = jv_object_set(jv_object(), jv_string("dependency"), jv_copy(dn));
						bad = jv_object_set(bad, jv_string("dependent"), jv_copy(nm));
					}
				}
				if (q) {
					sqlite3_finalize(q);
					up &= rows > 0;
				}
				jv_free(dn);
			}
		jv_free(deps);
		jv_free(g);
		if (jv_is_valid(bad)) {
			jv_free(nm);
			jv_free(h);
			jv_free(held);
			dep_fail(d, why, bad);
			return 1;
		}
		if (up && jv_array_length(jv_copy(h)) == 3) {
			jv p = jv_array_get(jv_copy(h), 1), l = jv_array_get(jv_copy(h), 2);
			jv f = jv_object_set(jv_object(), jv_string("name"), jv_copy(nm));
			f = jv_object_set(f, jv_string("provider"), jv_copy(p));
			send_restart(d, jv_string_value(p), jv_string_value(l), jv_array_append(jv_array(), jv_copy(nm)),
				     "what it depends on runs again", 2);
			emit(d, NN_LOG_INFO, "deploy.release_held", f);
			jv_free(p);
			jv_free(l);
		}
		jv_free(nm);
		jv_free(h);
	}
	jv_free(held);
	return 0;
}

/* The parent allocation of a child deployment (on this node) is told of
 * its failure as its own: its job is ended, and its policy applies. */
static void escalate_parent(struct orch_dep *d, const char *why)
{
	sqlite3_stmt *st = orch_prep(d->o, "SELECT parent FROM orch_deploy WHERE id = ? AND parent IS NOT NULL");
	if (!st)
		return;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		jv r, b = jv_object_set(jv_object(), jv_string("id"), orch_col_str(st, 0));
		char e[NN_ERRLEN], w[NN_ERRLEN + 320];
		snprintf(w, sizeof w, "child deployment %s: %.200s", d->id, why);
		b = jv_object_set(b, jv_string("reason"), jv_string(w));
		b = jv_object_set(b, jv_string("escalate"), jv_true());
		if (nn_node_invoke(d->o->n, "/alloc/restart", b, d->trace, &r, e) != NN_OK)
			nn_debug("orch: %s: cannot tell the parent: %s", d->id, e);
		jv_free(r);
	}
	sqlite3_finalize(st);
}

/*
 * Allocation `name` of running deployment d failed (state restarting, or
 * final other than exited 0), and not by its supervisor's hand.  Under
 * one_for_all or rest_for_one its siblings are restarted wherever they
 * run; more than the policy's intensity of such restarts within its
 * period escalates: the parent allocation of a child deployment is told,
 * and the deployment fails, releasing everything.  Returns 1 when d
 * ended.
 */
static int supervise(struct orch_dep *d, const char *name, const char *state, int64_t status, const char *reason)
{
	jv a = jv_object_get(jget(d->ens, "allocations"), jv_string(name)), rs = jget(a, "restart"), set;
	const char *strategy = ens_str(rs, "strategy");
	int64_t intensity = ens_int(rs, "intensity", 3), period = ens_int(rs, "period_ms", 60000);
	int64_t now = nn_now_ms();
	jv kept = jv_array(), lst = jv_array(), all;
	char why[NN_ERRLEN];
	int n = 0;
	sqlite3_stmt *st;

	if (d->state != D_RUNNING || !strategy || !strcmp(strategy, "one_for_one") ||
	    (reason && (!strncmp(reason, "supervisor:", 11) || !strncmp(reason, "escalated:", 10))) ||
	    !(!strcmp(state, "restarting") ||
	      (nn_alloc_state_final(state) && !(!strcmp(state, "exited") && status == 0)))) {
		jv_free(kept);
		jv_free(lst);
		jv_free(rs);
		jv_free(a);
		return 0;
	}
	jv_array_foreach(d->sup_times, i, t) {
		if (jv_number_value(t) > (double)(now - period))
			kept = jv_array_append(kept, jv_copy(t));
		jv_free(t);
	}
	jv_free(d->sup_times);
	d->sup_times = jv_array_append(kept, jv_number((double)now));
	n = jv_array_length(jv_copy(d->sup_times));
	if (n > intensity) {
		jv f = jv_object_set(jv_object(), jv_string("escalated"), jv_true());
		snprintf(why, sizeof why, "restart intensity reached: %d failures within %lld ms (%s, intensity %lld);"
			 " last: %s %s%s%.200s%s", n, (long long)period, strategy, (long long)intensity, name, state,
			 reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
		jv_free(rs);
		jv_free(a);
		jv_free(lst);
		escalate_parent(d, why);
		dep_fail(d, why, f);
		return 1;
	}
	set = strategy_set(d->ens, name, strategy);
	snprintf(why, sizeof why, "%s %s: %s", name, state, strategy);
	all = jv_object_set(jv_copy(set), jv_string(name), jv_true());
	/* one request per lease and kind, naming its allocations to restart:
	 * those that depend on a restarted one in another group are held
	 * until it is up again (release_held), as at first start */
	for (int hold = 0; hold < 2; hold++) {
	/* (the failed one's own restart is held too under one_for_all) */
	st = orch_prep(d->o, "SELECT provider, lease, name FROM orch_alloc WHERE dep = ? AND (state = 'running'"
		       " OR (name = ? AND state = 'restarting')) AND provider IS NOT NULL AND lease IS NOT NULL"
		       " ORDER BY provider, lease");
	if (st) {
		char prov[NN_DID_MAX] = "", lease[72] = "";
		jv names = jv_array();
		sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *p = (const char *)sqlite3_column_text(st, 0);
			const char *l = (const char *)sqlite3_column_text(st, 1);
			const char *nm = (const char *)sqlite3_column_text(st, 2);
			jv in = jv_object_get(jv_copy(all), jv_string(nm));
			int member = jv_is_valid(in), self = !strcmp(nm, name);
			jv_free(in);
			if (!member || needs_hold(d->ens, jv_string(nm), all) != hold || (self && !hold))
				continue;
			if (strcmp(p, prov) || strcmp(l, lease)) {
				if (jv_array_length(jv_copy(names)) > 0)
					send_restart(d, prov, lease, names, why, hold);
				else
					jv_free(names);
				names = jv_array();
				snprintf(prov, sizeof prov, "%s", p);
				snprintf(lease, sizeof lease, "%s", l);
			}
			names = jv_array_append(names, jv_string(nm));
			if (!self)
				lst = jv_array_append(lst, jv_string(nm));
		}
		sqlite3_finalize(st);
		if (jv_array_length(jv_copy(names)) > 0)
			send_restart(d, prov, lease, names, why, hold);
		else
			jv_free(names);
	}
	}
	/* they run no more: what is held waits for their next run, not for
	 * a state that their restart has not reported yet */
	jv_array_foreach(lst, i, nm) {
		d->sup_pending = jv_object_set(d->sup_pending, jv_copy(nm), jv_true());
		st = orch_prep(d->o, "UPDATE orch_alloc SET state = 'restarting', reason = ?, updated = ?"
			       " WHERE dep = ? AND name = ? AND state = 'running'");
		if (st) {
			char r2[NN_ERRLEN + 16];
			snprintf(r2, sizeof r2, "supervisor: %s", why);
			sqlite3_bind_text(st, 1, r2, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(st, 2, nn_now_ms());
			sqlite3_bind_text(st, 3, d->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, jv_string_value(nm), -1, SQLITE_STATIC);
			orch_step(d->o, st);
		}
		jv_free(nm);
	}
	jv_free(all);
	{
		jv f = jv_object_set(jv_object(), jv_string("name"), jv_string(name));
		f = jv_object_set(f, jv_string("state"), jv_string(state));
		f = jv_object_set(f, jv_string("strategy"), jv_string(strategy));
		f = jv_object_set(f, jv_string("restart"), lst);
		f = jv_object_set(f, jv_string("count"), jv_number(n));
		f = jv_object_set(f, jv_string("intensity"), jv_number((double)intensity));
		emit(d, NN_LOG_WARN, "deploy.restart", f);
	}
	jv_free(set);
	jv_free(rs);
	jv_free(a);
	return 0;
}

static void stale_released(struct nn_node *n, jv ans, void *arg)
{
	(void)n;
	(void)ans;
	(void)arg;
}

/* A provider that came back late runs what was given up: its lease is
 * released (the release may have been lost with it). */
static void release_stale(struct orch *o, const char *from, const char *dep, const char *lease,
			  const char *trace)
{
	sqlite3_stmt *q = orch_prep(o, "SELECT 1 FROM orch_alloc WHERE dep = ? AND lease = ?");
	char e[NN_ERRLEN];
	int ours = 0;
	struct orch_dep *d = dep_find(o, dep);
	if (q) {
		sqlite3_bind_text(q, 1, dep, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, lease, -1, SQLITE_STATIC);
		ours = sqlite3_step(q) == SQLITE_ROW;
		sqlite3_finalize(q);
	}
	/* a lease committed and not yet answered for is ours too */
	for (int i = 0; d && i < d->nslots; i++)
		ours |= !strcmp(d->slots[i].lease, lease);
	if (!ours && nn_node_request_cap(o->n, from, "/deploy/release",
					 jv_object_set(jv_object(), jv_string("lease"), jv_string(lease)),
					 tokens_for(o, from), trace, 10000, stale_released, NULL, NULL, e) < 0)
		nn_debug("orch: cannot release stale lease %s: %s", lease, e);
}

/* ---- a migrated allocation follows its move (nunet-run migrate) ----
 *
 * The provider of a slot that holds one allocation asks, before it sends
 * the state to the target, for a lease for the target
 * (/public/deploy/move); the target, once the copy runs, records that
 * lease as provisioned for this node and heartbeats under it
 * (/alloc/migrate/adopt on the target).  The first heartbeat or state
 * from the target under the granted lease moves the slot: provider, lease
 * and allocation id follow, and the source's lease is released as any
 * given-up lease is (its allocation's end there is no failure: the slot
 * is no longer its).  A grant not adopted within ORCH_MOVE_MS is void,
 * and the target's copy is then a stale lease, released when heard. */

/* The pending move granted as lease (invalid when none, or expired). */
static jv move_get(struct orch *o, const char *lease)
{
	jv m = jv_object_get(jv_copy(o->moves), jv_string(lease));
	int64_t until = 0;
	if (jv_get_kind(m) != JV_KIND_OBJECT) {
		jv_free(m);
		return jv_invalid();
	}
	nn_json_get_int(m, "until", &until, NULL);
	if (until < nn_mono_ms()) {
		o->moves = jv_object_delete(o->moves, jv_string(lease));
		jv_free(m);
		return jv_invalid();
	}
	return m;
}

/* from, heard under lease for deployment dep (allocation aid, or NULL):
 * when lease was granted to from for a move, the slot moves to it. */
static void move_adopt(struct orch *o, const char *dep, const char *lease, const char *from, const char *aid,
		       const char *trace)
{
	jv m = move_get(o, lease);
	const char *mdep = "", *name = "", *src = "", *to = "", *old = "";
	int64_t slot = -1;
	struct orch_dep *d;
	struct slot *s, was;
	sqlite3_stmt *st;
	jv f;
	if (!jv_is_valid(m))
		return;
	nn_json_get_str(m, "deployment", &mdep, NULL);
	nn_json_get_str(m, "name", &name, NULL);
	nn_json_get_str(m, "from", &src, NULL);
	nn_json_get_str(m, "to", &to, NULL);
	nn_json_get_str(m, "old", &old, NULL);
	nn_json_get_int(m, "slot", &slot, NULL);
	if (strcmp(mdep, dep) || strcmp(to, from)) {	/* not the node it was granted to */
		jv_free(m);
		return;
	}
	d = dep_find(o, dep);
	if (!d || d->state >= D_DONE || slot < 0 || slot >= d->nslots || d->slots[slot].st != S_RUNNING ||
	    strcmp(d->slots[slot].prov, src) || strcmp(d->slots[slot].lease, old)) {
		nn_info("orch: deployment %s: the move of %s to %s is void: its placement changed meanwhile", dep,
			name, to);
		o->moves = jv_object_delete(o->moves, jv_string(lease));
		jv_free(m);
		return;
	}
	s = &d->slots[slot];
	was = *s;
	snprintf(s->prov, sizeof s->prov, "%s", to);
	snprintf(s->lease, sizeof s->lease, "%s", lease);
	s->hb = s->pulled = nn_mono_ms();
	slot_save(d, (int)slot);
	st = orch_prep(o, "UPDATE orch_alloc SET provider = ?, lease = ?, alloc = coalesce(?, alloc), updated = ?"
		       " WHERE dep = ? AND slot = ?");
	if (st) {
		sqlite3_bind_text(st, 1, to, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, lease, -1, SQLITE_STATIC);
		if (aid)
			sqlite3_bind_text(st, 3, aid, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, nn_now_ms());
		sqlite3_bind_text(st, 5, dep, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, slot);
	}
	orch_step(o, st);
	/* the source's copy ends with its lease: not a failure, not a restart */
	release_lease(d, &was);
	f = jv_object_set(jv_object(), jv_string("name"), jv_string(name));
	f = jv_object_set(f, jv_string("from"), jv_string(src));
	f = jv_object_set(f, jv_string("to"), jv_string(to));
	f = jv_object_set(f, jv_string("lease"), jv_string(lease));
	f = jv_object_set(f, jv_string("released"), jv_string(old));
	f = jv_object_set(f, jv_string("alloc"), aid ? jv_string(aid) : jv_null());
	(void)trace;
	emit(d, NN_LOG_INFO, "deploy.moved", f);
	o->moves = jv_object_delete(o->moves, jv_string(lease));
	jv_free(m);
}

/* /public/deploy/move {"deployment","name","lease","to"} → {"lease",
 * "group","slot","heartbeat_ms","trace","requester"}: the provider of
 * allocation name's placement (under lease) moves it to node `to`. */
static enum nn_code be_move(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jget(req, "body"), g = jv_invalid(), names = jv_invalid(), m;
	const char *dep, *name, *lease, *to, *from = nn_env_str(req, "from");
	enum nn_code code = NN_E_BAD_BODY;
	struct orch_dep *d;
	char id[33];
	int slot = -1, count;
	if (jv_get_kind(body) != JV_KIND_OBJECT || nn_json_get_str(body, "deployment", &dep, NULL) < 0 ||
	    nn_json_get_str(body, "name", &name, NULL) < 0 || nn_json_get_str(body, "lease", &lease, NULL) < 0 ||
	    nn_json_get_str(body, "to", &to, NULL) < 0 || strlen(dep) > 64 || strlen(name) > 64 ||
	    strlen(lease) > 64) {
		nn_seterr(err, "expected {\"deployment\",\"name\",\"lease\",\"to\"}");
		goto out;
	}
	if (strncmp(to, "did:key:", 8) || strlen(to) >= NN_DID_MAX || !strcmp(to, from ? from : "")) {
		nn_seterr(err, "to: expected the did of another node");
		goto out;
	}
	d = dep_find(o, dep);
	if (d && d->state < D_DONE) {
		g = group_of(d->ens, jv_string(name));
		for (int i = 0; jv_get_kind(g) == JV_KIND_STRING && i < d->nslots && slot < 0; i++) {
			struct slot *s = &d->slots[i];
			if (s->st == S_RUNNING && !strcmp(s->grp, jv_string_value(g)) && !strcmp(s->prov, from) &&
			    !strcmp(s->lease, lease))
				slot = i;
		}
	}
	if (slot < 0) {
		nn_seterr(err, "deployment '%.64s': %.80s runs no placement of allocation '%.64s' under lease %.64s",
			  dep, from ? from : "?", name, lease);
		code = NN_E_UNAUTHORIZED;
		goto out;
	}
	names = jv_object_get(jv_object_get(jget(d->ens, "nodes"), jv_copy(g)), jv_string("allocations"));
	count = jv_get_kind(names) == JV_KIND_ARRAY ? jv_array_length(jv_copy(names)) : 0;
	if (count != 1) {
		nn_seterr(err, "allocation '%.64s' shares node group '%.64s' with %d other%s: only a group of one"
			  " allocation moves", name, jv_string_value(g), count - 1, count == 2 ? "" : "s");
		code = NN_E_BAD_BODY;
		goto out;
	}
	/* one grant per allocation: a new one replaces the last; expired ones go */
	m = jv_copy(o->moves);
	jv_object_foreach(m, k, v) {
		const char *a = ens_str(v, "deployment"), *b = ens_str(v, "name");
		if ((a && b && !strcmp(a, dep) && !strcmp(b, name)) || ens_int(v, "until", 0) < nn_mono_ms())
			o->moves = jv_object_delete(o->moves, jv_copy(k));
		jv_free(k);
		jv_free(v);
	}
	jv_free(m);
	if (jv_object_length(jv_copy(o->moves)) >= ORCH_MOVES_MAX) {
		nn_seterr(err, "too many moves under way (%d): try again later", ORCH_MOVES_MAX);
		code = NN_E_BUSY;
		goto out;
	}
	nn_random_id(id);
	m = jv_object_set(jv_object(), jv_string("deployment"), jv_string(dep));
	m = jv_object_set(m, jv_string("name"), jv_string(name));
	m = jv_object_set(m, jv_string("slot"), jv_number(slot));
	m = jv_object_set(m, jv_string("from"), jv_string(from));
	m = jv_object_set(m, jv_string("to"), jv_string(to));
	m = jv_object_set(m, jv_string("old"), jv_string(lease));
	m = jv_object_set(m, jv_string("until"), jv_number((double)(nn_mono_ms() + ORCH_MOVE_MS)));
	o->moves = jv_object_set(o->moves, jv_string(id), m);
	{
		jv f = jv_object_set(jv_object(), jv_string("name"), jv_string(name));
		f = jv_object_set(f, jv_string("from"), jv_string(from));
		f = jv_object_set(f, jv_string("to"), jv_string(to));
		f = jv_object_set(f, jv_string("lease"), jv_string(id));
		emit(d, NN_LOG_INFO, "deploy.move", f);
	}
	*reply = jv_object_set(jv_object(), jv_string("lease"), jv_string(id));
	*reply = jv_object_set(*reply, jv_string("requester"), jv_string(nn_node_did(n)));
	*reply = jv_object_set(*reply, jv_string("group"), jv_copy(g));
	*reply = jv_object_set(*reply, jv_string("slot"), jv_number(slot));
	*reply = jv_object_set(*reply, jv_string("heartbeat_ms"), jv_number((double)d->hb_ms));
	*reply = jv_object_set(*reply, jv_string("trace"), jv_string(d->trace));
	code = NN_OK;
out:
	jv_free(names);
	jv_free(g);
	jv_free(body);
	return code;
}

static enum nn_code be_update(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jget(req, "body");
	const char *dep, *name, *state, *from = nn_env_str(req, "from");
	int64_t slot = 0, status = -1;
	struct orch_dep *d;
	sqlite3_stmt *st;
	int changed;

	if (jv_get_kind(body) != JV_KIND_OBJECT || nn_json_get_str(body, "deployment", &dep, NULL) < 0 ||
	    nn_json_get_str(body, "name", &name, NULL) < 0 || nn_json_get_str(body, "state", &state, NULL) < 0 ||
	    nn_json_get_int(body, "slot", &slot, NULL) < 0) {
		jv_free(body);
		nn_seterr(err, "body: expected deployment, name, slot and state");
		return NN_E_BAD_BODY;
	}
	nn_json_get_int(body, "status", &status, NULL);
	if (ens_str(body, "lease") && from)
		move_adopt(o, dep, ens_str(body, "lease"), from, ens_str(body, "alloc"), nn_env_str(req, "trace"));
	st = orch_prep(o, "UPDATE orch_alloc SET state = ?, status = ?, reason = ?, updated = ?"
		       " WHERE dep = ? AND name = ? AND slot = ? AND provider = ?");
	if (!st) {
		jv_free(body);
		return NN_E_INTERNAL;
	}
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	if (status >= 0)
		sqlite3_bind_int64(st, 2, status);
	if (ens_str(body, "reason"))
		sqlite3_bind_text(st, 3, ens_str(body, "reason"), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, nn_now_ms());
	sqlite3_bind_text(st, 5, dep, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, slot);
	sqlite3_bind_text(st, 8, from, -1, SQLITE_STATIC);
	orch_step(o, st);
	changed = sqlite3_changes(nn_node_db(n)->h);
	d = dep_find(o, dep);
	if (!changed && d && slot >= 0 && slot < d->nslots && !strcmp(d->slots[slot].prov, from) &&
	    d->slots[slot].st >= S_PROVISIONING) {
		/* the state can overtake the answer to /deploy/provision */
		jv a = jv_object_get(jget(d->ens, "allocations"), jv_string(name));
		const char *type = ens_str(a, "type");
		st = orch_prep(o, "INSERT OR IGNORE INTO orch_alloc (dep, name, slot, grp, type, provider, lease,"
			       " alloc, state, status, reason, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
		if (st && jv_is_valid(a)) {
			sqlite3_bind_text(st, 1, dep, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, slot);
			sqlite3_bind_text(st, 4, d->slots[slot].grp, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 5, type ? type : "task", -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 6, from, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 7, d->slots[slot].lease, -1, SQLITE_STATIC);
			if (ens_str(body, "alloc"))
				sqlite3_bind_text(st, 8, ens_str(body, "alloc"), -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 9, state, -1, SQLITE_STATIC);
			if (status >= 0)
				sqlite3_bind_int64(st, 10, status);
			if (ens_str(body, "reason"))
				sqlite3_bind_text(st, 11, ens_str(body, "reason"), -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 12, nn_now_ms());
			orch_step(o, st);
			changed = sqlite3_changes(nn_node_db(n)->h);
		} else if (st) {
			sqlite3_finalize(st);
		}
		jv_free(a);
	}
	if (!changed) {
		const char *lease = ens_str(body, "lease");
		if (lease && strlen(lease) < 72 && !nn_alloc_state_final(state))
			release_stale(o, from, dep, lease, nn_env_str(req, "trace"));
		jv_free(body);
		nn_seterr(err, "no allocation '%.64s' of deployment '%.40s' runs on %.80s", name, dep, from);
		return NN_E_UNAUTHORIZED;
	}
	if (d) {
		jv f = jv_object_set(jv_object(), jv_string("name"), jv_string(name));
		pending_seen(d, name, state);
		f = jv_object_set(f, jv_string("provider"), jv_string(from));
		f = jv_object_set(f, jv_string("alloc"), jget(body, "alloc"));
		f = jv_object_set(f, jv_string("state"), jv_string(state));
		f = jv_object_set(f, jv_string("status"), jget(body, "status"));
		f = jv_object_set(f, jv_string("reason"), jget(body, "reason"));
		if (ens_str(body, "health"))
			f = jv_object_set(f, jv_string("health"), jget(body, "health"));
		emit(d, NN_LOG_INFO, "deploy.alloc", f);
		if (d->state == D_PROVISIONING)
			dep_provision(d);
		else if (!supervise(d, name, state, status, ens_str(body, "reason")) && !release_held(d))
			dep_check_done(d);
	}
	*reply = jv_object_set(jv_object(), jv_string("ok"), jv_true());
	jv_free(body);
	return NN_OK;
}

/* ---- a lost provider ---- */

/* Whether slot i of a running deployment still has an allocation that
 * is not final: a slot whose allocations all ended is not heard from. */
static int slot_live(struct orch_dep *d, int i)
{
	sqlite3_stmt *st = orch_prep(d->o, "SELECT state FROM orch_alloc WHERE dep = ? AND slot = ?");
	int live = 0, any = 0;
	if (!st)
		return 1;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, i);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);
		any = 1;
		live |= !s || !nn_alloc_state_final(s);
	}
	sqlite3_finalize(st);
	return live || !any;
}

/*
 * Provider did is lost to deployment d (by "membership" or "heartbeat").
 * Before running: the step is retried without it.  Running: only the
 * slots it held move.  A slot moves when it holds a service, or a task
 * not yet ended that asked for retries; otherwise its unfinished tasks
 * are reported failed there and the slot stays as it is.  The other slots
 * keep running untouched while the lost ones are bid for, committed and
 * provisioned again (a repair: the same steps, restricted to them).
 */
static void dep_lost(struct orch_dep *d, const char *did, const char *by)
{
	struct orch *o = d->o;
	jv allocs, groups = jv_array(), failed = jv_array();
	int hit = 0, moving = 0;
	char w[NN_ERRLEN];

	for (int i = 0; i < d->nslots; i++)
		hit |= !strcmp(d->slots[i].prov, did) && d->slots[i].st != S_NONE;
	if (!hit) {
		jv_free(groups);
		jv_free(failed);
		return;
	}
	snprintf(w, sizeof w, "provider %.80s was lost (%s)", did, by);
	if (d->state != D_RUNNING) {
		/* a kept placement lost during a repair is placed again too */
		for (int i = 0; i < d->nslots; i++)
			if (d->repair && d->slots[i].keep && !strcmp(d->slots[i].prov, did)) {
				d->slots[i].keep = 0;
				release_lease(d, &d->slots[i]);	/* when it is back */
			}
		emit(d, NN_LOG_WARN, "deploy.lost",
		     jv_object_set(jv_object_set(jv_object(), jv_string("provider"), jv_string(did)),
				   jv_string("by"), jv_string(by)));
		jv_free(groups);
		jv_free(failed);
		dep_retry(d, did, w);
		return;
	}
	allocs = jget(d->ens, "allocations");
	for (int i = 0; i < d->nslots; i++) {
		struct slot *s = &d->slots[i];
		sqlite3_stmt *st;
		int move = 0;
		if (strcmp(s->prov, did) != 0 || s->st == S_NONE)
			continue;
		st = orch_prep(o, "SELECT name, type, state FROM orch_alloc WHERE dep = ? AND slot = ?");
		if (st) {
			sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 2, i);
			while (sqlite3_step(st) == SQLITE_ROW) {
				const char *nm = (const char *)sqlite3_column_text(st, 0);
				const char *ty = (const char *)sqlite3_column_text(st, 1);
				const char *as = (const char *)sqlite3_column_text(st, 2);
				jv a = jv_object_get(jv_copy(allocs), jv_string(nm ? nm : ""));
				/* its hold went with the provider */
				d->holding = jv_object_delete(d->holding, jv_string(nm ? nm : ""));
				if (ty && !strcmp(ty, "service"))
					move = 1;
				else if (!(as && nn_alloc_state_final(as)) && ens_int(a, "retries", 0) > d->redeploys)
					move = 1;
				jv_free(a);
			}
			sqlite3_finalize(st);
		}
		/* the dead node's lease is released when it is back
		 * (orch_release): what it runs meanwhile is an orphan */
		release_lease(d, s);
		if (move) {
			sqlite3_stmt *del = orch_prep(o, "DELETE FROM orch_alloc WHERE dep = ? AND slot = ?");
			if (del) {
				sqlite3_bind_text(del, 1, d->id, -1, SQLITE_STATIC);
				sqlite3_bind_int(del, 2, i);
			}
			orch_step(o, del);
			s->st = S_NONE;
			s->prov[0] = '\0';
			groups = jv_array_append(groups, jv_string(s->grp));
			moving = 1;
		} else {
			sqlite3_stmt *up = orch_prep(o, "UPDATE orch_alloc SET state = 'failed', reason = ?,"
						     " updated = ? WHERE dep = ? AND slot = ? AND state NOT IN"
						     " ('exited', 'killed', 'oom', 'failed')");
			if (up) {
				sqlite3_bind_text(up, 1, w, -1, SQLITE_STATIC);
				sqlite3_bind_int64(up, 2, nn_now_ms());
				sqlite3_bind_text(up, 3, d->id, -1, SQLITE_STATIC);
				sqlite3_bind_int(up, 4, i);
			}
			if (orch_step(o, up) == 0 && sqlite3_changes(nn_node_db(o->n)->h) > 0)
				failed = jv_array_append(failed, jv_string(s->grp));
		}
		slot_save(d, i);
	}
	jv_free(allocs);
	{
		jv f = jv_object_set(jv_object(), jv_string("provider"), jv_string(did));
		f = jv_object_set(f, jv_string("by"), jv_string(by));
		f = jv_object_set(f, jv_string("redeploy"), jv_copy(groups));
		f = jv_object_set(f, jv_string("failed"), jv_copy(failed));
		emit(d, NN_LOG_WARN, "deploy.lost", f);
	}
	jv_free(groups);
	jv_free(failed);
	d->excluded = jv_object_set(d->excluded, jv_string(did), jv_string("lost"));
	if (!moving) {
		dep_check_done(d);
		return;
	}
	d->redeploys++;
	d->repair = 1;
	for (int i = 0; i < d->nslots; i++)
		d->slots[i].keep = d->slots[i].st == S_RUNNING;
	d->deadline = nn_now_ms() + ens_int(d->ens, "deadline_ms", 60000);
	{
		sqlite3_stmt *st = orch_prep(o, "UPDATE orch_deploy SET deadline = ? WHERE id = ?");
		if (st) {
			sqlite3_bind_int64(st, 1, d->deadline);
			sqlite3_bind_text(st, 2, d->id, -1, SQLITE_STATIC);
		}
		orch_step(o, st);
	}
	dep_bid(d);
}

void orch_peer_dead(struct orch *o, const char *did)
{
	struct orch_dep *d, *next;
	for (d = o->deps; d; d = next) {
		next = d->next;
		dep_lost(d, did, "membership");
	}
}

/* /public/deploy/heartbeat: a provider's periodic word for a lease, with
 * its allocations' states (what a lost push missed comes back with it). */
static void apply_states(struct orch_dep *d, int slot, jv allocs, const char *via);

static enum nn_code be_heartbeat(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jget(req, "body"), allocs;
	const char *dep, *lease, *from = nn_env_str(req, "from");
	struct orch_dep *d;
	int slot = -1;
	if (jv_get_kind(body) != JV_KIND_OBJECT || nn_json_get_str(body, "deployment", &dep, NULL) < 0 ||
	    nn_json_get_str(body, "lease", &lease, NULL) < 0 || strlen(lease) > 64) {
		jv_free(body);
		nn_seterr(err, "body: expected deployment, lease and allocations");
		return NN_E_BAD_BODY;
	}
	allocs = jget(body, "allocations");
	if (from && jv_get_kind(allocs) == JV_KIND_OBJECT && jv_object_length(jv_copy(allocs)) == 1) {
		jv_object_foreach(allocs, k, a) {
			move_adopt(o, dep, lease, from, ens_str(a, "id"), nn_env_str(req, "trace"));
			jv_free(k);
			jv_free(a);
		}
	}
	d = dep_find(o, dep);
	for (int i = 0; d && i < d->nslots; i++)
		if (!strcmp(d->slots[i].lease, lease) && !strcmp(d->slots[i].prov, from))
			slot = i;
	if (slot < 0 || jv_get_kind(allocs) != JV_KIND_OBJECT) {
		if (jv_get_kind(allocs) == JV_KIND_OBJECT) {
			int live = 0;
			jv_object_foreach(allocs, k, a) {
				const char *s = ens_str(a, "state");
				live |= s && !nn_alloc_state_final(s);
				jv_free(k);
				jv_free(a);
			}
			if (live)
				release_stale(o, from, dep, lease, nn_env_str(req, "trace"));
		}
		jv_free(allocs);
		jv_free(body);
		nn_seterr(err, "no lease '%.64s' of deployment '%.40s' is held on %.80s", lease, dep, from);
		return NN_E_UNAUTHORIZED;
	}
	d->slots[slot].hb = nn_mono_ms();
	*reply = jv_object_set(jv_object(), jv_string("ok"), jv_true());
	if (d->slots[slot].st == S_RUNNING)
		apply_states(d, slot, allocs, "heartbeat");
	jv_free(allocs);
	jv_free(body);
	return NN_OK;
}

/* ---- recursive deployments ---- */

/* An allocation of this node changed state (fields borrowed): when it
 * ended, the deployments it started end with it (their subtrees too, as
 * their own allocations end on their providers). */
void orch_parent_state(struct orch *o, jv fields)
{
	const char *id, *state;
	sqlite3_stmt *st;
	jv ids;
	if (nn_json_get_str(fields, "id", &id, NULL) < 0 || nn_json_get_str(fields, "state", &state, NULL) < 0 ||
	    !nn_alloc_state_final(state))
		return;
	st = orch_prep(o, "SELECT id FROM orch_deploy WHERE parent = ? AND state IN ('bidding', 'committing',"
		       " 'provisioning', 'running')");
	if (!st)
		return;
	ids = jv_array();	/* after the early returns: it was leaked on every non-final state */
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		ids = jv_array_append(ids, orch_col_str(st, 0));
	sqlite3_finalize(st);
	jv_array_foreach(ids, i, did) {
		struct orch_dep *d = dep_find(o, jv_string_value(did));
		if (d) {
			char why[160];
			snprintf(why, sizeof why, "its parent allocation %.64s ended (%.32s)", id, state);
			for (int k = 0; k < d->nslots; k++)
				release_slot(d, &d->slots[k]);
			dep_final(d, D_CANCELLED, "deploy.cancelled", why, -1, jv_null());
		}
		jv_free(did);
	}
	jv_free(ids);
}

/* ---- pulling states: after a restart, and now and then ---- */

/* States of slot's allocations from its provider ({NAME:{"state",
 * "status","reason"}}, borrowed): the changed ones are recorded, each an
 * event; then what follows from them (d may end). */
static void apply_states(struct orch_dep *d, int slot, jv allocs, const char *via)
{
	int changed = 0;
	jv_object_foreach(allocs, name, a) {
		const char *state = ens_str(a, "state"), *reason = ens_str(a, "reason");
		int64_t status = -1;
		sqlite3_stmt *st = orch_prep(d->o, "UPDATE orch_alloc SET state = ?, status = ?, reason = ?,"
					     " updated = ? WHERE dep = ? AND name = ? AND slot = ? AND provider = ?"
					     " AND state IS NOT ?");
		nn_json_get_int(a, "status", &status, NULL);
		if (st && state) {
			sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
			if (status >= 0)
				sqlite3_bind_int64(st, 2, status);
			if (reason)
				sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, nn_now_ms());
			sqlite3_bind_text(st, 5, d->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 6, jv_string_value(name), -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 7, slot);
			sqlite3_bind_text(st, 8, d->slots[slot].prov, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 9, state, -1, SQLITE_STATIC);
			orch_step(d->o, st);
			if (sqlite3_changes(nn_node_db(d->o->n)->h) > 0) {
				jv f = jv_object_set(jv_object(), jv_string("name"), jv_copy(name));
				pending_seen(d, jv_string_value(name), state);
				f = jv_object_set(f, jv_string("provider"), jv_string(d->slots[slot].prov));
				/* the allocation's id, as a pushed state's event has it */
				if (ens_str(a, "id"))
					f = jv_object_set(f, jv_string("alloc"), jget(a, "id"));
				f = jv_object_set(f, jv_string("state"), jv_string(state));
				f = jv_object_set(f, jv_string("status"), jget(a, "status"));
				f = jv_object_set(f, jv_string("via"), jv_string(via));
				emit(d, NN_LOG_INFO, "deploy.alloc", f);
				changed = 1;
				if (supervise(d, jv_string_value(name), state, status, reason)) {
					/* d ended */
					jv_free(name);
					jv_free(a);
					return;
				}
			}
		} else if (st) {
			sqlite3_finalize(st);
		}
		jv_free(name);
		jv_free(a);
	}
	if (!changed)
		return;
	if (d->state == D_PROVISIONING)
		dep_provision(d);
	else if (!release_held(d))
		dep_check_done(d);
}

static void on_sync(struct nn_node *n, jv ans, void *arg)
{
	struct orch_rq *r = arg;
	struct orch_dep *d = rq_dep(r);
	(void)n;
	if (d && d->state == D_RUNNING && is_reply(ans) && r->slot >= 0 && r->slot < d->nslots) {
		jv body = jget(ans, "body"), allocs = jget(body, "allocations");
		const char *lease = ens_str(body, "lease");
		if (lease && !strcmp(lease, d->slots[r->slot].lease) && jv_get_kind(allocs) == JV_KIND_OBJECT) {
			d->slots[r->slot].hb = nn_mono_ms();
			apply_states(d, r->slot, allocs, "pull");
			/* after a restart, tasks may all have ended meanwhile */
			d = rq_dep(r);
			if (d)
				dep_check_done(d);
		}
		jv_free(allocs);
		jv_free(body);
	}
	rq_free(r);
}

/* Ask slot i's provider for its lease's states: what a push lost (the
 * orchestrator down, a dropped connection) comes back. */
static void sync_slot(struct orch_dep *d, int i)
{
	struct slot *s = &d->slots[i];
	struct orch_rq *r;
	char e[NN_ERRLEN];
	if (s->st != S_RUNNING || !s->lease[0] || !s->prov[0])
		return;
	s->pulled = nn_mono_ms();
	r = rq_new(d, RQ_SYNC, i, s->prov);
	if (nn_node_request_cap(d->o->n, s->prov, "/deploy/lease",
				jv_object_set(jv_object(), jv_string("lease"), jv_string(s->lease)),
				tokens_for(d->o, s->prov), d->trace, 10000, on_sync, r, NULL, e) < 0)
		rq_free(r);
}

static void dep_sync(struct orch_dep *d)
{
	for (int i = 0; i < d->nslots; i++)
		sync_slot(d, i);
}

/* ---- lease renewal ---- */

static void on_renew(struct nn_node *n, jv ans, void *arg)
{
	struct orch_rq *r = arg;
	struct orch_dep *d = rq_dep(r);
	(void)n;
	if (d && r->slot >= 0 && r->slot < d->nslots && d->slots[r->slot].st == S_COMMITTED) {
		struct slot *s = &d->slots[r->slot];
		jv body = jget(ans, "body");
		int64_t ex;
		s->renewing = 0;
		if (is_reply(ans) && nn_json_get_int(body, "expires", &ex, NULL) == 0) {
			jv f = jv_object_set(jv_object(), jv_string("group"), jv_string(s->grp));
			s->expires = ex;
			f = jv_object_set(f, jv_string("provider"), jv_string(s->prov));
			f = jv_object_set(f, jv_string("lease"), jv_string(s->lease));
			f = jv_object_set(f, jv_string("expires"), jv_number((double)ex));
			emit(d, NN_LOG_INFO, "deploy.renew", f);
		} else {
			char why[NN_ERRLEN];
			answer_why(ans, why, sizeof why);
			/* the lease ends by itself; provisioning it fails and retries */
			emit(d, NN_LOG_WARN, "deploy.renew_failed",
			     jv_object_set(jv_object_set(jv_object(), jv_string("provider"), jv_string(s->prov)),
					   jv_string("reason"), jv_string(why)));
		}
		jv_free(body);
	}
	rq_free(r);
}

/* Leases of groups still waiting (committed, not yet provisioned) are
 * renewed when half their time is gone: a group may wait longer than a
 * lease for its dependencies.  Nobody renews after the orchestrator died,
 * so they still expire by themselves. */
static void dep_renew(struct orch_dep *d)
{
	int64_t now = nn_now_ms(), ms = lease_ms_for(d);
	char e[NN_ERRLEN];
	for (int i = 0; i < d->nslots; i++) {
		struct slot *s = &d->slots[i];
		struct orch_rq *r;
		jv b;
		if (s->st != S_COMMITTED || s->renewing || !s->expires || !s->lease[0] ||
		    s->expires - now > ms / 2)
			continue;
		b = jv_object_set(jv_object(), jv_string("lease"), jv_string(s->lease));
		b = jv_object_set(b, jv_string("lease_ms"), jv_number((double)ms));
		r = rq_new(d, RQ_RENEW, i, s->prov);
		s->renewing = 1;
		if (nn_node_request_cap(d->o->n, s->prov, "/deploy/renew", b, tokens_for(d->o, s->prov), d->trace,
					step_ms(s->expires - now), on_renew, r, NULL, e) < 0) {
			s->renewing = 0;
			rq_free(r);
		}
	}
}

/* ---- the timer ---- */

/* A running placement not heard from for ORCH_HB_MISSES heartbeats.  One
 * that missed one is asked for its states (once a period): a lease's last
 * heartbeat, or the pull after a restart, may have been lost. */
static const char *silent_provider(struct orch_dep *d, int64_t mono)
{
	if (d->hb_ms <= 0)
		return NULL;
	for (int i = 0; i < d->nslots; i++) {
		struct slot *s = &d->slots[i];
		if (s->st != S_RUNNING || !s->hb || !s->prov[0] || !s->lease[0] ||
		    mono - s->hb <= d->hb_ms + d->hb_ms / 2)
			continue;
		if (!slot_live(d, i))
			continue;
		if (mono - s->hb > ORCH_HB_MISSES * d->hb_ms)
			return s->prov;
		if (mono - s->pulled >= d->hb_ms && d->state == D_RUNNING)
			sync_slot(d, i);
	}
	return NULL;
}

void orch_deploy_tick(struct orch *o)
{
	struct orch_dep *d, *next;
	int64_t mono = nn_mono_ms(), now = nn_now_ms();
	for (d = o->deps; d; d = next) {
		const char *silent;
		next = d->next;
		if ((silent = silent_provider(d, mono))) {
			char p[NN_DID_MAX];
			snprintf(p, sizeof p, "%s", silent);
			dep_lost(d, p, "heartbeat");
			continue;
		}
		if (d->state <= D_PROVISIONING && now >= d->deadline) {
			char w[NN_ERRLEN];
			snprintf(w, sizeof w, "deadline passed while %s", dstate[d->state]);
			dep_revert(d, w);
			/* what a repair kept goes too: the deployment has failed */
			dep_fail(d, w, jv_null());
			continue;
		}
		if (d->state == D_BIDDING && d->rebid_at && mono >= d->rebid_at) {
			d->rebid_at = 0;
			dep_bid(d);
			continue;
		}
		if (d->state == D_COMMITTING || d->state == D_PROVISIONING)
			dep_renew(d);
		/* a release lost on the way is sent again */
		if (release_held(d))
			continue;
		if (d->state == D_BIDDING && d->bid_close && mono >= d->bid_close) {
			d->bid_close = 0;
			dep_select(d);
		}
	}
}

/* ---- behaviors for the local user ---- */

static int local_only(struct nn_node *n, char *err)
{
	const struct nn_origin *or = nn_node_origin(n);
	if (or && or->kind == NN_ORIGIN_PEER) {
		nn_seterr(err, "deployments are asked of a node over its own control socket");
		return -1;
	}
	return 0;
}

static struct orch_dep *dep_new(struct orch *o, const char *id, const char *trace, jv ens)
{
	struct orch_dep *d = nn_xcalloc(1, sizeof *d);
	d->o = o;
	snprintf(d->id, sizeof d->id, "%s", id);
	snprintf(d->trace, sizeof d->trace, "%s", trace);
	d->ens = ens;
	d->bids = jv_object();
	d->asked = jv_object();
	d->expect = jv_object();
	d->excluded = jv_object();
	d->refused = jv_object();
	d->sup_times = jv_array();
	d->sup_pending = jv_object();
	d->holding = jv_object();
	d->next = o->deps;
	o->deps = d;
	return d;
}

static enum nn_code be_start(struct nn_node *n, jv req, jv *reply, char *err)
{
	static const char *const keys[] = { "ensemble", "hops", "parent", NULL };
	struct orch *o = orch_of(n);
	jv body = jget(req, "body"), ens;
	const char *trace = nn_env_str(req, "trace"), *parent = NULL, *name;
	char id[33], e[NN_ERRLEN] = "", parent_buf[80];
	int64_t hops = 0, now = nn_now_ms();
	struct orch_dep *d;
	sqlite3_stmt *st;
	char *text;

	if (local_only(n, err) < 0) {
		jv_free(body);
		return NN_E_UNAUTHORIZED;
	}
	if (jv_get_kind(body) != JV_KIND_OBJECT || orch_only_keys(body, keys, err) < 0) {
		if (jv_get_kind(body) != JV_KIND_OBJECT)
			nn_seterr(err, "body: expected {\"ensemble\":…}");
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	if ((nn_json_has(body, "hops") && (nn_json_get_int(body, "hops", &hops, NULL) < 0 || hops < 0 || hops > 16)) ||
	    (nn_json_has(body, "parent") && !orch_is_null(body, "parent") &&
	     nn_json_get_str(body, "parent", &parent, NULL) < 0)) {
		jv_free(body);
		nn_seterr(err, "hops: 0 to 16; parent: an allocation id");
		return NN_E_BAD_BODY;
	}
	/* never trusted: normalized again here whoever sent it */
	{
		jv errors = jv_invalid();
		ens = nn_ensemble_normalize(jget(body, "ensemble"), &errors);
		if (!jv_is_valid(ens)) {
			jv first = jv_get_kind(errors) == JV_KIND_ARRAY ? jv_array_get(jv_copy(errors), 0) : jv_invalid();
			nn_seterr(err, "ensemble: %s", jv_get_kind(first) == JV_KIND_STRING ? jv_string_value(first)
				  : "not an ensemble");
			jv_free(first);
			jv_free(errors);
			jv_free(body);
			return NN_E_BAD_BODY;
		}
		jv_free(errors);
	}
	ens = check_ensemble(ens, e);
	if (!jv_is_valid(ens)) {
		jv_free(body);
		nn_seterr(err, "%s", e);
		return NN_E_BAD_BODY;
	}
	/* a deployment asked for by an allocation is recorded under it */
	{
		char *pa = nn_alloc_of_did(nn_env_str(req, "from"));
		if (pa) {
			snprintf(parent_buf, sizeof parent_buf, "%s", pa);
			parent = parent_buf;
			free(pa);
		}
	}
	nn_random_id(id);
	if (!trace || !*trace || strlen(trace) > 64)
		trace = id;
	name = ens_str(ens, "name");
	text = nn_json_dump(ens);
	st = orch_prep(o, "INSERT INTO orch_deploy (id, trace, owner, parent, name, state, ensemble, hops, deadline,"
		       " created, updated) VALUES (?, ?, ?, ?, ?, 'bidding', ?, ?, ?, ?, ?)");
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, trace, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, nn_env_str(req, "from"), -1, SQLITE_STATIC);
		if (parent)
			sqlite3_bind_text(st, 4, parent, -1, SQLITE_STATIC);
		if (name)
			sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, text, -1, SQLITE_TRANSIENT);	/* text is freed before the step */
		sqlite3_bind_int64(st, 7, hops);
		sqlite3_bind_int64(st, 8, now + ens_int(ens, "deadline_ms", 60000));
		sqlite3_bind_int64(st, 9, now);
		sqlite3_bind_int64(st, 10, now);
	}
	if (orch_step(o, st) < 0) {
		free(text);
		jv_free(ens);
		jv_free(body);
		nn_seterr(err, "cannot record the deployment");
		return NN_E_INTERNAL;
	}
	free(text);
	d = dep_new(o, id, trace, ens);
	d->hops = (int)hops;
	d->deadline = now + ens_int(ens, "deadline_ms", 60000);
	d->hb_ms = ens_int(ens, "heartbeat_ms", ORCH_HB_DEFAULT_MS);
	{
		jv f = jv_object_set(jv_object(), jv_string("name"), name ? jv_string(name) : jv_null());
		f = jv_object_set(f, jv_string("groups"), jv_number(group_count(ens)));
		f = jv_object_set(f, jv_string("deadline"), jv_number((double)d->deadline));
		if (parent)
			f = jv_object_set(f, jv_string("parent"), jv_string(parent));
		emit(d, NN_LOG_INFO, "deploy.start", f);
	}
	*reply = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
	*reply = jv_object_set(*reply, jv_string("trace"), jv_string(trace));
	jv_free(body);
	dep_bid(d);
	return NN_OK;
}

static jv dep_row(struct orch *o, sqlite3_stmt *st, int full)
{
	jv r = jv_object();
	const char *id = (const char *)sqlite3_column_text(st, 0);
	r = jv_object_set(r, jv_string("id"), orch_col_str(st, 0));
	r = jv_object_set(r, jv_string("name"), orch_col_str(st, 1));
	r = jv_object_set(r, jv_string("state"), orch_col_str(st, 2));
	r = jv_object_set(r, jv_string("trace"), orch_col_str(st, 3));
	r = jv_object_set(r, jv_string("created"), jv_number((double)sqlite3_column_int64(st, 4)));
	r = jv_object_set(r, jv_string("updated"), jv_number((double)sqlite3_column_int64(st, 5)));
	r = jv_object_set(r, jv_string("reason"), orch_col_str(st, 6));
	r = jv_object_set(r, jv_string("status"), sqlite3_column_type(st, 7) == SQLITE_NULL ? jv_null()
			  : jv_number(sqlite3_column_int(st, 7)));
	r = jv_object_set(r, jv_string("parent"), orch_col_str(st, 8));
	if (full) {
		sqlite3_stmt *q = orch_prep(o, "SELECT name, slot, grp, type, provider, lease, alloc, state, status,"
					    " reason FROM orch_alloc WHERE dep = ? ORDER BY grp, slot, name");
		jv a = jv_array();
		r = jv_object_set(r, jv_string("selection"), orch_col_json(st, 9));
		r = jv_object_set(r, jv_string("deadline"), jv_number((double)sqlite3_column_int64(st, 10)));
		r = jv_object_set(r, jv_string("attempts"), jv_number(sqlite3_column_int(st, 11)));
		if (q) {
			sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
			while (sqlite3_step(q) == SQLITE_ROW) {
				jv x = jv_object();
				x = jv_object_set(x, jv_string("name"), orch_col_str(q, 0));
				x = jv_object_set(x, jv_string("slot"), jv_number(sqlite3_column_int(q, 1)));
				x = jv_object_set(x, jv_string("group"), orch_col_str(q, 2));
				x = jv_object_set(x, jv_string("type"), orch_col_str(q, 3));
				x = jv_object_set(x, jv_string("provider"), orch_col_str(q, 4));
				x = jv_object_set(x, jv_string("lease"), orch_col_str(q, 5));
				x = jv_object_set(x, jv_string("alloc"), orch_col_str(q, 6));
				x = jv_object_set(x, jv_string("state"), orch_col_str(q, 7));
				x = jv_object_set(x, jv_string("status"), sqlite3_column_type(q, 8) == SQLITE_NULL
						  ? jv_null() : jv_number(sqlite3_column_int(q, 8)));
				x = jv_object_set(x, jv_string("reason"), orch_col_str(q, 9));
				x = jv_object_set(x, jv_string("snapshot"),
						  orch_snapshot_of(o, id, (const char *)sqlite3_column_text(q, 0)));
				a = jv_array_append(a, x);
			}
			sqlite3_finalize(q);
		}
		r = jv_object_set(r, jv_string("allocations"), a);
	}
	return r;
}

#define DEP_COLS "id, name, state, trace, created, updated, reason, status, parent, selection, deadline, attempts"

static enum nn_code be_list(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jget(req, "body"), a = jv_array();
	int all = 0;
	sqlite3_stmt *st;
	if (local_only(n, err) < 0) {
		jv_free(body);
		jv_free(a);
		return NN_E_UNAUTHORIZED;
	}
	if (jv_get_kind(body) == JV_KIND_OBJECT) {
		jv x = jget(body, "all");
		all = jv_get_kind(x) == JV_KIND_TRUE;
		jv_free(x);
	}
	st = orch_prep(o, all ? "SELECT " DEP_COLS " FROM orch_deploy ORDER BY created"
		       : "SELECT " DEP_COLS " FROM orch_deploy WHERE state IN ('bidding', 'committing',"
		       " 'provisioning', 'running') ORDER BY created");
	while (st && sqlite3_step(st) == SQLITE_ROW)
		a = jv_array_append(a, dep_row(o, st, 0));
	if (st)
		sqlite3_finalize(st);
	*reply = jv_object_set(jv_object(), jv_string("deployments"), a);
	jv_free(body);
	return NN_OK;
}

static enum nn_code be_status(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jget(req, "body");
	const char *id;
	sqlite3_stmt *st;
	enum nn_code code = NN_OK;
	if (local_only(n, err) < 0) {
		jv_free(body);
		return NN_E_UNAUTHORIZED;
	}
	if (nn_json_get_str(body, "id", &id, NULL) < 0) {
		jv_free(body);
		nn_seterr(err, "id: expected a deployment id");
		return NN_E_BAD_BODY;
	}
	st = orch_prep(o, "SELECT " DEP_COLS " FROM orch_deploy WHERE id = ?");
	if (!st) {
		jv_free(body);
		return NN_E_INTERNAL;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*reply = dep_row(o, st, 1);
	} else {
		nn_seterr(err, "id: no deployment '%.64s' on this node", id);
		code = NN_E_BAD_BODY;
	}
	sqlite3_finalize(st);
	jv_free(body);
	return code;
}

static enum nn_code be_cancel(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jget(req, "body");
	const char *id;
	struct orch_dep *d;
	char idc[40];
	if (local_only(n, err) < 0) {
		jv_free(body);
		return NN_E_UNAUTHORIZED;
	}
	if (nn_json_get_str(body, "id", &id, NULL) < 0) {
		jv_free(body);
		nn_seterr(err, "id: expected a deployment id");
		return NN_E_BAD_BODY;
	}
	snprintf(idc, sizeof idc, "%s", id);
	jv_free(body);
	d = dep_find(o, idc);
	if (d) {
		for (int i = 0; i < d->nslots; i++)
			release_slot(d, &d->slots[i]);
		dep_final(d, D_CANCELLED, "deploy.cancelled", "cancelled by the user", -1, jv_null());
	} else {
		sqlite3_stmt *st = orch_prep(o, "SELECT state FROM orch_deploy WHERE id = ?");
		int found = 0;
		if (st) {
			sqlite3_bind_text(st, 1, idc, -1, SQLITE_STATIC);
			found = sqlite3_step(st) == SQLITE_ROW;
			sqlite3_finalize(st);
		}
		if (!found) {
			nn_seterr(err, "id: no deployment '%.64s' on this node", idc);
			return NN_E_BAD_BODY;
		}
	}
	{
		sqlite3_stmt *st = orch_prep(o, "SELECT state FROM orch_deploy WHERE id = ?");
		jv s = jv_null();
		if (st) {
			sqlite3_bind_text(st, 1, idc, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW)
				s = orch_col_str(st, 0);
			sqlite3_finalize(st);
		}
		*reply = jv_object_set(jv_object(), jv_string("id"), jv_string(idc));
		*reply = jv_object_set(*reply, jv_string("state"), s);
		*reply = jv_object_set(*reply, jv_string("cancelled"), jv_bool(d != NULL));
	}
	return NN_OK;
}

/* ---- after a restart ---- */

void orch_deploy_resume(struct orch *o)
{
	sqlite3_stmt *st = orch_prep(o, "SELECT id, trace, state, ensemble, hops, deadline, attempts, repair"
				     " FROM orch_deploy WHERE state IN ('bidding', 'committing', 'provisioning',"
				     " 'running')");
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 2);
		jv ens = orch_col_json(st, 3);
		struct orch_dep *d = dep_new(o, (const char *)sqlite3_column_text(st, 0),
					     (const char *)sqlite3_column_text(st, 1), ens);
		sqlite3_stmt *q;
		d->hops = sqlite3_column_int(st, 4);
		d->deadline = sqlite3_column_int64(st, 5);
		d->attempts = sqlite3_column_int(st, 6);
		d->repair = sqlite3_column_int(st, 7);
		d->hb_ms = ens_int(d->ens, "heartbeat_ms", ORCH_HB_DEFAULT_MS);
		q = orch_prep(o, "SELECT slot, grp, provider, lease, state FROM orch_slot WHERE dep = ? ORDER BY slot");
		if (q) {
			int n = 0;
			sqlite3_bind_text(q, 1, d->id, -1, SQLITE_STATIC);
			while (sqlite3_step(q) == SQLITE_ROW) {
				struct slot *sl;
				const char *t;
				d->slots = nn_xrealloc(d->slots, (size_t)(n + 1) * sizeof *d->slots);
				sl = &d->slots[n++];
				memset(sl, 0, sizeof *sl);
				snprintf(sl->grp, sizeof sl->grp, "%s", (t = (const char *)sqlite3_column_text(q, 1)) ? t : "");
				snprintf(sl->prov, sizeof sl->prov, "%s", (t = (const char *)sqlite3_column_text(q, 2)) ? t : "");
				snprintf(sl->lease, sizeof sl->lease, "%s", (t = (const char *)sqlite3_column_text(q, 3)) ? t : "");
				t = (const char *)sqlite3_column_text(q, 4);
				for (int k = 0; k < 5; k++)
					if (t && !strcmp(t, sstate[k]))
						sl->st = k;
				/* heard of now: silence is counted from this start */
				sl->hb = nn_mono_ms();
				sl->keep = d->repair && sl->st == S_RUNNING;
			}
			sqlite3_finalize(q);
			d->nslots = n;
		}
		if (s && !strcmp(s, "running")) {
			d->state = D_RUNNING;
			emit(d, NN_LOG_INFO, "deploy.resume", jv_object_set(jv_object(), jv_string("state"), jv_string(s)));
			/* what the providers pushed while this node was down */
			dep_sync(d);
		} else {
			/* a step cut short: give the leases back and start over */
			emit(d, NN_LOG_INFO, "deploy.resume", jv_object_set(jv_object(), jv_string("state"), jv_string(s ? s : "?")));
			d->state = D_BIDDING;
			dep_revert(d, "the orchestrator restarted mid-deployment");
			/* bid once the swarm had a second to connect again,
			 * and again while nothing fits, until the deadline */
			d->resumed = 1;
			d->rebid_at = nn_mono_ms() + 1000;
		}
	}
	if (st)
		sqlite3_finalize(st);
}

const struct nn_behavior orch_deploy_behaviors[] = {
	{ "/deploy/start", be_start, "deploy an ensemble across the swarm", 0 },
	{ "/deploy/list", be_list, "deployments of this node (live ones unless all)", 0 },
	{ "/deploy/status", be_status, "a deployment, where its allocations went and why", 0 },
	{ "/deploy/cancel", be_cancel, "stop a deployment and release what it holds", 0 },
	{ "/public/deploy/update", be_update, "a provider reports an allocation's state", 1 },
	{ "/public/deploy/heartbeat", be_heartbeat, "a provider's periodic word for a lease it runs", 1 },
	{ "/public/deploy/move", be_move, "its provider moves an allocation to another node (migrate)", 1 },
	{ NULL, NULL, NULL, 0 }
};
