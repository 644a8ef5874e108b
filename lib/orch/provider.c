/*
 * orch/provider — the provider's half of the deployment protocol (orch.h):
 * bids from the matcher against free resources, leases that reserve
 * resources and expire by themselves, provisioning through /alloc/start,
 * release, log bytes by offset, and pushing the state changes of the
 * allocations it runs to the orchestrator that asked for them.
 *
 * A lease is a commitment in the onboard tables under the id
 * "lease-ID", so /node/resources shows it as used and a restarted node
 * still holds it; its row in orch_lease says when it expires.  Provisioning
 * releases the lease's commitment and starts the allocations, which commit
 * their own resources; a failure part way cancels what started.
 */
#include "orch/orch_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "alloc.h"
#include "cap.h"
#include "codec.h"
#include "json.h"
#include "log.h"
#include "onboard.h"
#include "pay.h"
#include "storage.h"

#define LOG_CHUNK_MAX (256 * 1024)

/* The peers this node knows alive, with measured round trips:
 * [{"did","rtt_ms"}]; rtt_ms null when none was measured. */
jv orch_peers(struct orch *o)
{
	sqlite3_stmt *st = orch_prep(o, "SELECT dst, rtt_ms FROM swarm_edges WHERE src = ? AND state = 'alive'");
	jv a = jv_array();
	if (!st)
		return a;
	sqlite3_bind_text(st, 1, nn_node_did(o->n), -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		jv p = jv_object_set(jv_object(), jv_string("did"),
				     jv_string((const char *)sqlite3_column_text(st, 0)));
		p = jv_object_set(p, jv_string("rtt_ms"), sqlite3_column_type(st, 1) == SQLITE_NULL ? jv_null()
				  : jv_number(sqlite3_column_double(st, 1)));
		a = jv_array_append(a, p);
	}
	sqlite3_finalize(st);
	return a;
}

/* ---- bids ---- */

static enum nn_code be_bid(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv groups = jv_object_get(jv_copy(body), jv_string("groups"));
	jv out = jv_object(), cap = jv_null();
	const char *where = NULL, *rank = NULL, *dep = NULL;
	enum nn_code code = NN_E_BAD_BODY;
	int k = 0;

	if (jv_get_kind(body) != JV_KIND_OBJECT || nn_json_get_str(body, "deployment", &dep, NULL) < 0) {
		nn_seterr(err, "deployment: expected the deployment's id");
		goto out;
	}
	if (jv_get_kind(groups) != JV_KIND_OBJECT) {
		nn_seterr(err, "groups: expected an object of requirements per node group");
		goto out;
	}
	if ((nn_json_has(body, "where") && !orch_is_null(body, "where") &&
	     nn_json_get_str(body, "where", &where, err) < 0) ||
	    (nn_json_has(body, "rank") && !orch_is_null(body, "rank") &&
	     nn_json_get_str(body, "rank", &rank, err) < 0))
		goto out;
	jv_object_foreach(groups, g, r) {
		int mc = 0;
		char e[NN_ERRLEN];
		jv ans;
		if (k++ >= ORCH_MAX_GROUPS) {
			jv_free(g);
			jv_free(r);
			continue;
		}
		ans = jv_get_kind(r) == JV_KIND_OBJECT ? nn_onboard_match(nn_node_db(n), jv_copy(r), where, rank, &mc, e)
			: (snprintf(e, sizeof e, "requirements: expected an object"), jv_invalid());
		if (!jv_is_valid(ans)) {
			jv_free(ans);
			ans = jv_object_set(jv_object(), jv_string("match"), jv_false());
			ans = jv_object_set(ans, jv_string("rejected"),
					    jv_array_append(jv_array(), jv_string(e)));
		} else {
			jv off = jv_object_get(jv_copy(ans), jv_string("offer"));
			if (jv_get_kind(cap) == JV_KIND_NULL && jv_get_kind(off) == JV_KIND_OBJECT)
				cap = jv_copy(off);
			jv_free(off);
			ans = jv_object_delete(ans, jv_string("offer"));
		}
		out = jv_object_set(out, g, ans);
		jv_free(r);
	}
	*reply = jv_object_set(jv_object(), jv_string("did"), jv_string(nn_node_did(n)));
	*reply = jv_object_set(*reply, jv_string("deployment"), jv_string(dep));
	*reply = jv_object_set(*reply, jv_string("groups"), out);
	out = jv_invalid();
	*reply = jv_object_set(*reply, jv_string("capability"), cap);
	cap = jv_invalid();
	*reply = jv_object_set(*reply, jv_string("peers"), orch_peers(o));
	*reply = jv_object_set(*reply, jv_string("expires"), jv_number((double)(nn_now_ms() + ORCH_BID_TTL_MS)));
	code = NN_OK;
out:
	jv_free(out);
	jv_free(cap);
	jv_free(groups);
	jv_free(body);
	return code;
}

/* ---- leases ---- */

static void lease_commit_id(char *out, size_t cap, const char *lease)
{
	snprintf(out, cap, "lease-%s", lease);
}

void orch_lease_emit(struct orch *o, const char *kind, const char *lease, const char *trace, const char *why)
{
	jv f = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	if (why)
		f = jv_object_set(f, jv_string("reason"), jv_string(why));
	nn_node_emit(o->n, NN_LOG_INFO, kind, trace, f);
}

/* Release lease's commitment and what it started; state becomes st. */
static void lease_end(struct orch *o, const char *lease, const char *st_name, const char *trace, const char *why)
{
	char cid[160], e[NN_ERRLEN];
	sqlite3_stmt *st;
	lease_commit_id(cid, sizeof cid, lease);
	nn_onboard_release(nn_node_db(o->n), cid, NULL);
	/* and what it started that a kill -9 kept out of orch_lease_alloc:
	 * every allocation carries its lease as a label */
	st = orch_prep(o, "SELECT alloc FROM orch_lease_alloc WHERE lease = ?1 UNION SELECT id FROM allocations"
		       " WHERE json_extract(spec, '$.labels.\"nunet.lease\"') = ?1");
	if (!st)
		st = orch_prep(o, "SELECT alloc FROM orch_lease_alloc WHERE lease = ?");
	if (st) {
		jv ids = jv_array();
		sqlite3_bind_text(st, 1, lease, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW)
			ids = jv_array_append(ids, jv_string((const char *)sqlite3_column_text(st, 0)));
		sqlite3_finalize(st);
		jv_array_foreach(ids, i, id) {
			jv r;
			jv b = jv_object_set(jv_object(), jv_string("id"), jv_copy(id));
			b = jv_object_set(b, jv_string("grace"), jv_string("2s"));
			if (nn_node_invoke(o->n, "/alloc/cancel", b, trace, &r, e) != NN_OK)
				nn_debug("orch: lease %s: cancel %s: %s", lease, jv_string_value(id), e);
			jv_free(r);
			jv_free(id);
		}
		jv_free(ids);
	}
	st = orch_prep(o, "UPDATE orch_lease SET state = ?, updated = ? WHERE id = ?");
	if (st) {
		sqlite3_bind_text(st, 1, st_name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, nn_now_ms());
		sqlite3_bind_text(st, 3, lease, -1, SQLITE_STATIC);
		orch_step(o, st);
	}
	orch_lease_emit(o, !strcmp(st_name, "expired") ? "deploy.lease.expired"
			: !strcmp(st_name, "orphaned") ? "deploy.lease.orphaned" : "deploy.lease.released",
			lease, trace, why);
}

/* Leases reserved and never provisioned whose time is up. */
void orch_leases_expire(struct orch *o)
{
	sqlite3_stmt *st = orch_prep(o, "SELECT id, trace FROM orch_lease WHERE state = 'reserved' AND expires <= ?");
	jv a = jv_array();
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, nn_now_ms());
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 1);
		jv p = jv_array_append(jv_array(), jv_string((const char *)sqlite3_column_text(st, 0)));
		a = jv_array_append(a, jv_array_append(p, jv_string(t ? t : "")));
	}
	sqlite3_finalize(st);
	jv_array_foreach(a, i, p) {
		jv id = jv_array_get(jv_copy(p), 0), t = jv_array_get(jv_copy(p), 1);
		nn_info("orch: lease %s expired unprovisioned: its reservation is released", jv_string_value(id));
		lease_end(o, jv_string_value(id), "expired", jv_string_value(t), "not provisioned before it expired");
		jv_free(id);
		jv_free(t);
		jv_free(p);
	}
	jv_free(a);
}

/* Provisioned leases whose requester this node has seen dead, without a
 * break, for deploy_orphan_ms: the orchestrator is gone or cut off, and
 * has moved the allocations elsewhere or will release them when it can;
 * the provider ends them itself so that no copy runs twice for long.  The
 * time counts from when this node (since its start) first saw the
 * requester dead; a requester seen alive again resets it. */
void orch_leases_orphan(struct orch *o)
{
	int64_t limit = nn_node_config(o->n)->deploy_orphan_ms, now = nn_mono_ms();
	sqlite3_stmt *st;
	jv dead, end;
	if (limit <= 0 || now - o->orphan_checked < 1000)
		return;
	o->orphan_checked = now;
	st = orch_prep(o, "SELECT l.id, l.trace, l.requester, e.state FROM orch_lease l LEFT JOIN swarm_edges e"
		       " ON e.src = ? AND e.dst = l.requester WHERE l.state = 'provisioned' AND l.requester <> ?");
	if (!st)
		return;
	dead = jv_object();	/* after the early returns: they leaked it every tick */
	end = jv_array();
	sqlite3_bind_text(st, 1, nn_node_did(o->n), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, nn_node_did(o->n), -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *rq = (const char *)sqlite3_column_text(st, 2);
		const char *es = (const char *)sqlite3_column_text(st, 3);
		jv since;
		if (!rq || !es || strcmp(es, "dead"))
			continue;
		since = jv_object_get(jv_copy(o->dead_since), jv_string(rq));
		if (!jv_is_valid(since))
			since = jv_number((double)now);
		dead = jv_object_set(dead, jv_string(rq), jv_copy(since));
		if (now - (int64_t)jv_number_value(since) >= limit) {
			const char *t = (const char *)sqlite3_column_text(st, 1);
			jv x = jv_array_append(jv_array(), jv_string((const char *)sqlite3_column_text(st, 0)));
			x = jv_array_append(x, jv_string(t ? t : ""));
			end = jv_array_append(end, jv_array_append(x, jv_string(rq)));
		}
		jv_free(since);
	}
	sqlite3_finalize(st);
	/* only requesters still dead keep their time */
	jv_free(o->dead_since);
	o->dead_since = dead;
	jv_array_foreach(end, i, x) {
		jv id = jv_array_get(jv_copy(x), 0), t = jv_array_get(jv_copy(x), 1), rq = jv_array_get(jv_copy(x), 2);
		char why[256];
		snprintf(why, sizeof why, "its orchestrator %.80s was unreachable for %lld ms", jv_string_value(rq),
			 (long long)limit);
		nn_warn("orch: lease %s: %s: its allocations are stopped", jv_string_value(id), why);
		lease_end(o, jv_string_value(id), "orphaned", jv_string_value(t), why);
		jv_free(id);
		jv_free(t);
		jv_free(rq);
		jv_free(x);
	}
	jv_free(end);
}

/* The lease row as an object, or invalid when there is none. */
static jv lease_get(struct orch *o, const char *id)
{
	sqlite3_stmt *st = orch_prep(o, "SELECT id, dep, grp, requester, trace, resources, expires, state,"
				     " created, reader FROM orch_lease WHERE id = ?");
	jv r = jv_invalid();
	if (!st)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		r = jv_object();
		r = jv_object_set(r, jv_string("lease"), orch_col_str(st, 0));
		r = jv_object_set(r, jv_string("deployment"), orch_col_str(st, 1));
		r = jv_object_set(r, jv_string("group"), orch_col_str(st, 2));
		r = jv_object_set(r, jv_string("requester"), orch_col_str(st, 3));
		r = jv_object_set(r, jv_string("trace"), orch_col_str(st, 4));
		r = jv_object_set(r, jv_string("resources"), orch_col_json(st, 5));
		r = jv_object_set(r, jv_string("expires"), jv_number((double)sqlite3_column_int64(st, 6)));
		r = jv_object_set(r, jv_string("state"), orch_col_str(st, 7));
		r = jv_object_set(r, jv_string("created"), jv_number((double)sqlite3_column_int64(st, 8)));
		r = jv_object_set(r, jv_string("reader"), orch_col_str(st, 9));
	}
	sqlite3_finalize(st);
	return r;
}

/* The lease named in body, checked to belong to the envelope's sender (an
 * owner may act on any).  Invalid + err otherwise. */
static jv lease_of(struct orch *o, jv req, jv body, int read, char *err)
{
	const char *id, *from = nn_env_str(req, "from"), *rq, *rd;
	jv l;
	if (nn_json_get_str(body, "lease", &id, NULL) < 0) {
		nn_seterr(err, "lease: expected the lease id");
		return jv_invalid();
	}
	l = lease_get(o, id);
	if (!jv_is_valid(l)) {
		nn_seterr(err, "lease: no lease '%.80s' on this node", id);
		return l;
	}
	if (nn_json_get_str(l, "requester", &rq, NULL) < 0 ||
	    (strcmp(rq, from) != 0 && !nn_node_is_owner(o->n, from) &&
	     !(read && nn_json_get_str(l, "reader", &rd, NULL) == 0 && !strcmp(rd, from)))) {
		jv_free(l);
		nn_seterr(err, "lease: '%.80s' was not made for %.80s", id, from);
		return jv_invalid();
	}
	return l;
}

static jv lease_of_sender(struct orch *o, jv req, jv body, char *err)
{
	return lease_of(o, req, body, 0, err);
}

/* The same for reading logs, results and outputs: also the lease's reader. */
static jv lease_for_reader(struct orch *o, jv req, jv body, char *err)
{
	return lease_of(o, req, body, 1, err);
}

static enum nn_code be_commit(struct nn_node *n, jv req, jv *reply, char *err)
{
	static const char *const keys[] = { "deployment", "group", "resources", "lease_ms", "contract", "reader",
					    NULL };
	struct orch *o = orch_of(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv resj = jv_invalid();
	const char *dep, *grp, *contract = NULL, *reader = NULL, *trace = nn_env_str(req, "trace");
	int64_t lease_ms = 0, now = nn_now_ms();
	struct nn_res r;
	char id[33], cid[160], e[NN_ERRLEN];
	enum nn_code code = NN_E_BAD_BODY;
	sqlite3_stmt *st;
	int rc;
	char *rtext;

	if (jv_get_kind(body) != JV_KIND_OBJECT) {
		nn_seterr(err, "body: expected an object");
		goto out;
	}
	if (orch_only_keys(body, keys, err) < 0)
		goto out;
	if (nn_json_get_str(body, "deployment", &dep, NULL) < 0 || strlen(dep) > 64 ||
	    nn_json_get_str(body, "group", &grp, NULL) < 0 || strlen(grp) > 64) {
		nn_seterr(err, "deployment, group: expected short strings");
		goto out;
	}
	if (nn_json_get_int(body, "lease_ms", &lease_ms, NULL) < 0 || lease_ms < 100 ||
	    lease_ms > ORCH_LEASE_MAX_MS) {
		nn_seterr(err, "lease_ms: expected 100 to %d", ORCH_LEASE_MAX_MS);
		goto out;
	}
	resj = jv_object_get(jv_copy(body), jv_string("resources"));
	if (nn_res_from_json(&r, resj, e) < 0 || nn_res_check(&r, e) < 0) {
		nn_seterr(err, "resources: %s", e);
		goto out;
	}
	if (nn_json_has(body, "contract") && !orch_is_null(body, "contract") &&
	    nn_json_get_str(body, "contract", &contract, err) < 0)
		goto out;
	if (nn_json_has(body, "reader") && !orch_is_null(body, "reader") &&
	    (nn_json_get_str(body, "reader", &reader, NULL) < 0 || strncmp(reader, "did:", 4) != 0 ||
	     strlen(reader) >= NN_DID_MAX)) {
		nn_seterr(err, "reader: expected a did");
		goto out;
	}
	if (nn_node_config(n)->deploy_require_contract) {
		struct nn_pay *p = nn_pay_attached();
		if (!contract) {
			nn_seterr(err, "contract: this provider deploys only under an accepted contract");
			code = NN_E_UNAUTHORIZED;
			goto out;
		}
		if (!p || nn_pay_contract_require(p, contract, e) != 0) {
			nn_seterr(err, "contract: %s", p ? e : "this node keeps no ledger");
			code = NN_E_UNAUTHORIZED;
			goto out;
		}
	}
	nn_random_id(id);
	lease_commit_id(cid, sizeof cid, id);
	rc = nn_onboard_commit(nn_node_db(n), cid, &r, e);
	if (rc < 0) {
		nn_seterr(err, "resources: %s", e);
		code = rc == NN_ONBOARD_REFUSED ? NN_E_UNAVAILABLE : NN_E_INTERNAL;
		goto out;
	}
	st = orch_prep(o, "INSERT INTO orch_lease (id, dep, grp, requester, trace, resources, expires, state,"
		       " created, updated, reader) VALUES (?, ?, ?, ?, ?, ?, ?, 'reserved', ?, ?, ?)");
	{
		jv rv = nn_res_to_json(&r);
		rtext = nn_json_dump(rv);	/* borrows */
		jv_free(rv);
	}
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, dep, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, grp, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, nn_env_str(req, "from"), -1, SQLITE_STATIC);
		if (trace)
			sqlite3_bind_text(st, 5, trace, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, rtext, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, now + lease_ms);
		sqlite3_bind_int64(st, 8, now);
		sqlite3_bind_int64(st, 9, now);
		if (reader)
			sqlite3_bind_text(st, 10, reader, -1, SQLITE_STATIC);
	}
	if (orch_step(o, st) < 0) {
		free(rtext);
		nn_onboard_release(nn_node_db(n), cid, NULL);
		nn_seterr(err, "cannot record the lease");
		code = NN_E_INTERNAL;
		goto out;
	}
	free(rtext);
	{
		jv f = jv_object_set(jv_object(), jv_string("lease"), jv_string(id));
		f = jv_object_set(f, jv_string("deployment"), jv_string(dep));
		f = jv_object_set(f, jv_string("group"), jv_string(grp));
		f = jv_object_set(f, jv_string("requester"), jv_string(nn_env_str(req, "from")));
		f = jv_object_set(f, jv_string("resources"), nn_res_to_json(&r));
		f = jv_object_set(f, jv_string("expires"), jv_number((double)(now + lease_ms)));
		nn_node_emit(n, NN_LOG_INFO, "deploy.lease", trace, f);
	}
	*reply = jv_object_set(jv_object(), jv_string("lease"), jv_string(id));
	*reply = jv_object_set(*reply, jv_string("expires"), jv_number((double)(now + lease_ms)));
	code = NN_OK;
out:
	jv_free(resj);
	jv_free(body);
	return code;
}

static enum nn_code be_provision(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv l = jv_invalid(), allocs = jv_invalid(), started = jv_object(), ids = jv_array(), waiting = jv_array();
	const char *lease = NULL, *state, *trace = nn_env_str(req, "trace"), *dep = "";
	int64_t expires = 0, hb_ms = 0;
	enum nn_code code = NN_E_BAD_BODY;
	char cid[160];
	int n_allocs;

	if (jv_get_kind(body) != JV_KIND_OBJECT) {
		nn_seterr(err, "body: expected an object");
		goto out;
	}
	l = lease_of_sender(o, req, body, err);
	if (!jv_is_valid(l)) {
		code = NN_E_UNAUTHORIZED;
		if (strstr(err, "no lease"))
			code = NN_E_BAD_BODY;
		goto out;
	}
	nn_json_get_str(l, "lease", &lease, NULL);
	nn_json_get_str(l, "state", &state, NULL);
	nn_json_get_str(l, "deployment", &dep, NULL);
	nn_json_get_int(l, "expires", &expires, NULL);
	if (strcmp(state, "reserved") != 0 || expires <= nn_now_ms()) {
		nn_seterr(err, "lease: '%s' is %s, not reserved", lease,
			  strcmp(state, "reserved") ? state : "expired");
		code = NN_E_UNAVAILABLE;
		goto out;
	}
	if (nn_json_has(body, "heartbeat_ms") &&
	    (nn_json_get_int(body, "heartbeat_ms", &hb_ms, NULL) < 0 || hb_ms < 100 || hb_ms > 600000)) {
		nn_seterr(err, "heartbeat_ms: expected 100 to 600000");
		goto out;
	}
	allocs = jv_object_get(jv_copy(body), jv_string("allocations"));
	n_allocs = jv_get_kind(allocs) == JV_KIND_ARRAY ? jv_array_length(jv_copy(allocs)) : -1;
	if (n_allocs < 1 || n_allocs > ORCH_MAX_ALLOCS) {
		nn_seterr(err, "allocations: expected 1 to %d allocations", ORCH_MAX_ALLOCS);
		goto out;
	}
	/* the reservation becomes the allocations' own commitments */
	lease_commit_id(cid, sizeof cid, lease);
	nn_onboard_release(nn_node_db(n), cid, NULL);
	code = NN_OK;
	jv_array_foreach(allocs, i, a) {
		const char *name;
		jv start = jv_object_get(jv_copy(a), jv_string("start")), r;
		int64_t slot = 0;
		if (code != NN_OK) {
			;
		} else if (nn_json_get_str(a, "name", &name, NULL) < 0 || strlen(name) > 64 ||
			   jv_get_kind(start) != JV_KIND_OBJECT || nn_json_has(start, "parent")) {
			nn_seterr(err, "allocations[%d]: expected {\"name\",\"slot\",\"start\"} without a parent", i);
			code = NN_E_BAD_BODY;
		} else {
			char e[NN_ERRLEN];
			jv sp = jv_object_get(jv_copy(start), jv_string("spec"));
			jv lb = jv_object_get(jv_copy(sp), jv_string("labels"));
			/* the lease's mark on the allocation itself: a kill -9
			 * between its start and the row below cannot orphan it */
			if (jv_get_kind(lb) != JV_KIND_OBJECT) {
				jv_free(lb);
				lb = jv_object();
			}
			if (jv_get_kind(sp) == JV_KIND_OBJECT)
				start = jv_object_set(start, jv_string("spec"),
						      jv_object_set(sp, jv_string("labels"),
								    jv_object_set(lb, jv_string("nunet.lease"),
										  jv_string(lease))));
			else {
				jv_free(lb);
				jv_free(sp);
			}
			/* a snapshot is fetched from the lease's requester, never
			 * from a node the body names */
			{
				jv rsn = jv_object_get(jv_copy(start), jv_string("restore"));
				const char *rq = "";
				nn_json_get_str(l, "requester", &rq, NULL);
				if (jv_get_kind(rsn) == JV_KIND_OBJECT && nn_json_has(rsn, "fetch"))
					start = jv_object_set(start, jv_string("restore"),
							      jv_object_set(rsn, jv_string("fetch"), jv_string(rq)));
				else
					jv_free(rsn);
			}
			nn_json_get_int(a, "slot", &slot, NULL);
			/* "after":{NAME:"running"|"exited"}: allocations of this
			 * lease started before it, which it waits for (alloc.h) */
			{
				jv af = jv_object_get(jv_copy(a), jv_string("after")), ids_after = jv_object();
				if (jv_get_kind(af) == JV_KIND_OBJECT) {
					jv_object_foreach(af, k, v) {
						jv id = jv_object_get(jv_copy(started), jv_copy(k));
						if (code == NN_OK && jv_get_kind(id) != JV_KIND_STRING) {
							nn_seterr(err, "after.%.64s: not an allocation started before it in"
								  " this lease", jv_string_value(k));
							code = NN_E_BAD_BODY;
						}
						if (jv_get_kind(id) == JV_KIND_STRING)
							ids_after = jv_object_set(ids_after, id, jv_copy(v));
						else
							jv_free(id);
						jv_free(k);
						jv_free(v);
					}
					start = jv_object_set(start, jv_string("after"), ids_after);
				} else {
					/* never ids the requester names: only its own lease's */
					start = jv_object_delete(start, jv_string("after"));
					if (jv_is_valid(af) && jv_get_kind(af) != JV_KIND_NULL && code == NN_OK) {
						nn_seterr(err, "after: expected an object");
						code = NN_E_BAD_BODY;
					}
					jv_free(ids_after);
				}
				jv_free(af);
			}
			if (code == NN_OK)
				code = nn_node_invoke(n, "/alloc/start", jv_copy(start), trace, &r, e);
			else {
				r = jv_invalid();
				snprintf(e, sizeof e, "%s", err);
			}
			if (code != NN_OK) {
				nn_seterr(err, "allocations.%s: %s", name, e);
			} else {
				const char *aid = "";
				sqlite3_stmt *st;
				nn_json_get_str(r, "id", &aid, NULL);
				started = jv_object_set(started, jv_string(name), jv_string(aid));
				ids = jv_array_append(ids, jv_string(aid));
				if (nn_json_has(start, "after")) {
					jv s2;
					const char *as = NULL;
					if (nn_node_invoke(n, "/alloc/status", jv_object_set(jv_object(), jv_string("id"),
							   jv_string(aid)), trace, &s2, e) == NN_OK &&
					    nn_json_get_str(s2, "state", &as, NULL) == 0 && !strcmp(as, "waiting"))
						waiting = jv_array_append(waiting, jv_string(name));
					jv_free(s2);
				}
				st = orch_prep(o, "INSERT OR REPLACE INTO orch_lease_alloc (alloc, lease, name, slot)"
					       " VALUES (?, ?, ?, ?)");
				if (st) {
					sqlite3_bind_text(st, 1, aid, -1, SQLITE_STATIC);
					sqlite3_bind_text(st, 2, lease, -1, SQLITE_STATIC);
					sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
					sqlite3_bind_int64(st, 4, slot);
				}
				orch_step(o, st);
				jv_free(r);
			}
		}
		jv_free(start);
		jv_free(a);
	}
	if (code != NN_OK) {
		/* nothing half done: what started stops, the lease ends */
		lease_end(o, lease, "failed", trace, err);
		goto out;
	}
	{
		sqlite3_stmt *st = orch_prep(o, "UPDATE orch_lease SET state = 'provisioned', updated = ?, hb_ms = ?"
					     " WHERE id = ?");
		jv f;
		if (st) {
			sqlite3_bind_int64(st, 1, nn_now_ms());
			sqlite3_bind_int64(st, 2, hb_ms);
			sqlite3_bind_text(st, 3, lease, -1, SQLITE_STATIC);
		}
		orch_step(o, st);
		/* the first heartbeat one period from now */
		if (hb_ms > 0)
			o->hb_next = jv_object_set(o->hb_next, jv_string(lease), jv_number((double)(nn_mono_ms() + hb_ms)));
		f = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
		f = jv_object_set(f, jv_string("deployment"), jv_string(dep));
		f = jv_object_set(f, jv_string("allocations"), jv_copy(started));
		nn_node_emit(n, NN_LOG_INFO, "deploy.provisioned", trace, f);
	}
	*reply = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	*reply = jv_object_set(*reply, jv_string("allocations"), started);
	*reply = jv_object_set(*reply, jv_string("waiting"), waiting);
	started = waiting = jv_invalid();
out:
	jv_free(waiting);
	jv_free(ids);
	jv_free(started);
	jv_free(allocs);
	jv_free(l);
	jv_free(body);
	return code;
}

static enum nn_code be_release(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv l = jv_get_kind(body) == JV_KIND_OBJECT ? lease_of_sender(o, req, body, err)
		: (nn_seterr(err, "body: expected an object"), jv_invalid());
	const char *lease, *state;
	int was;
	if (!jv_is_valid(l)) {
		jv_free(body);
		return strstr(err, "not made for") ? NN_E_UNAUTHORIZED : NN_E_BAD_BODY;
	}
	nn_json_get_str(l, "lease", &lease, NULL);
	nn_json_get_str(l, "state", &state, NULL);
	was = !strcmp(state, "reserved") || !strcmp(state, "provisioned");
	if (was)
		lease_end(o, lease, "released", nn_env_str(req, "trace"), "released by the requester");
	*reply = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	*reply = jv_object_set(*reply, jv_string("released"), jv_bool(was));
	jv_free(l);
	jv_free(body);
	return NN_OK;
}

/* /deploy/renew: the requester extends a lease still reserved (a node
 * group waiting for its dependencies); one never renewed still expires. */
static enum nn_code be_renew(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv l = jv_get_kind(body) == JV_KIND_OBJECT ? lease_of_sender(o, req, body, err)
		: (nn_seterr(err, "body: expected an object"), jv_invalid());
	const char *lease, *state;
	int64_t lease_ms = 0, expires = 0, now = nn_now_ms();
	enum nn_code code = NN_E_BAD_BODY;
	sqlite3_stmt *st;
	if (!jv_is_valid(l)) {
		code = strstr(err, "not made for") ? NN_E_UNAUTHORIZED : NN_E_BAD_BODY;
		goto out;
	}
	if (nn_json_get_int(body, "lease_ms", &lease_ms, NULL) < 0 || lease_ms < 100 ||
	    lease_ms > ORCH_LEASE_MAX_MS) {
		nn_seterr(err, "lease_ms: expected 100 to %d", ORCH_LEASE_MAX_MS);
		goto out;
	}
	nn_json_get_str(l, "lease", &lease, NULL);
	nn_json_get_str(l, "state", &state, NULL);
	nn_json_get_int(l, "expires", &expires, NULL);
	if (strcmp(state, "reserved") != 0 || expires <= now) {
		nn_seterr(err, "lease: '%s' is %s, not reserved", lease,
			  strcmp(state, "reserved") ? state : "expired");
		code = NN_E_UNAVAILABLE;
		goto out;
	}
	st = orch_prep(o, "UPDATE orch_lease SET expires = ?, updated = ? WHERE id = ? AND state = 'reserved'");
	if (st) {
		sqlite3_bind_int64(st, 1, now + lease_ms);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_text(st, 3, lease, -1, SQLITE_STATIC);
	}
	if (orch_step(o, st) < 0) {
		nn_seterr(err, "cannot record the renewal");
		code = NN_E_INTERNAL;
		goto out;
	}
	{
		jv f = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
		f = jv_object_set(f, jv_string("expires"), jv_number((double)(now + lease_ms)));
		nn_node_emit(n, NN_LOG_INFO, "deploy.lease.renewed", nn_env_str(req, "trace"), f);
	}
	*reply = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	*reply = jv_object_set(*reply, jv_string("expires"), jv_number((double)(now + lease_ms)));
	code = NN_OK;
out:
	jv_free(l);
	jv_free(body);
	return code;
}

/* /deploy/restart {"lease","names":[…],"reason","escalate"}: the
 * requester's restart strategy (one_for_all, rest_for_one) restarts
 * allocations of a lease, or escalates to one (/alloc/restart). */
static enum nn_code be_restart(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv l = jv_get_kind(body) == JV_KIND_OBJECT ? lease_of_sender(o, req, body, err)
		: (nn_seterr(err, "body: expected an object"), jv_invalid());
	jv names = jv_invalid(), out = jv_object(), esc = jv_invalid();
	const char *lease, *why = "restarted by its supervisor";
	enum nn_code code = NN_E_BAD_BODY;
	if (!jv_is_valid(l)) {
		code = strstr(err, "not made for") ? NN_E_UNAUTHORIZED : NN_E_BAD_BODY;
		goto out;
	}
	names = jv_object_get(jv_copy(body), jv_string("names"));
	if (jv_get_kind(names) != JV_KIND_ARRAY || jv_array_length(jv_copy(names)) > ORCH_MAX_ALLOCS ||
	    (nn_json_has(body, "reason") && nn_json_get_str(body, "reason", &why, NULL) < 0)) {
		nn_seterr(err, "names: expected an array of allocation names; reason: a string");
		goto out;
	}
	esc = jv_object_get(jv_copy(body), jv_string("escalate"));
	nn_json_get_str(l, "lease", &lease, NULL);
	jv_array_foreach(names, i, nm) {
		sqlite3_stmt *st = orch_prep(o, "SELECT alloc FROM orch_lease_alloc WHERE lease = ? AND name = ?");
		int done = 0;
		if (st && jv_get_kind(nm) == JV_KIND_STRING) {
			sqlite3_bind_text(st, 1, lease, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, jv_string_value(nm), -1, SQLITE_STATIC);
			while (sqlite3_step(st) == SQLITE_ROW) {
				jv r, b = jv_object_set(jv_object(), jv_string("id"), orch_col_str(st, 0));
				char e[NN_ERRLEN];
				b = jv_object_set(b, jv_string("reason"), jv_string(why));
				b = jv_object_set(b, jv_string("escalate"), jv_bool(jv_get_kind(esc) == JV_KIND_TRUE));
				if (nn_node_invoke(n, "/alloc/restart", b, nn_env_str(req, "trace"), &r, e) == NN_OK) {
					jv x = jv_object_get(jv_copy(r), jv_string("restarted"));
					done |= jv_get_kind(x) == JV_KIND_TRUE;
					jv_free(x);
				}
				jv_free(r);
			}
		}
		if (st)
			sqlite3_finalize(st);
		if (jv_get_kind(nm) == JV_KIND_STRING)
			out = jv_object_set(out, jv_copy(nm), jv_bool(done));
		jv_free(nm);
	}
	*reply = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	*reply = jv_object_set(*reply, jv_string("restarted"), out);
	out = jv_invalid();
	code = NN_OK;
out:
	jv_free(esc);
	jv_free(out);
	jv_free(names);
	jv_free(l);
	jv_free(body);
	return code;
}

/* The allocations of a lease: {NAME: {"id","slot","state","status",…}}. */
static jv lease_allocs(struct orch *o, const char *lease)
{
	sqlite3_stmt *st = orch_prep(o, "SELECT alloc, name, slot FROM orch_lease_alloc WHERE lease = ?");
	jv out = jv_object();
	char e[NN_ERRLEN];
	if (!st)
		return out;
	sqlite3_bind_text(st, 1, lease, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *aid = (const char *)sqlite3_column_text(st, 0);
		jv r, a = jv_object_set(jv_object(), jv_string("id"), jv_string(aid));
		a = jv_object_set(a, jv_string("slot"), jv_number((double)sqlite3_column_int64(st, 2)));
		if (nn_node_invoke(o->n, "/alloc/status", jv_object_set(jv_object(), jv_string("id"), jv_string(aid)),
				   NULL, &r, e) == NN_OK) {
			static const char *const f[] = { "state", "status", "reason", "run", "dir", "result",
							 "outputs", NULL };
			for (int i = 0; f[i]; i++)
				a = jv_object_set(a, jv_string(f[i]), jv_object_get(jv_copy(r), jv_string(f[i])));
		}
		jv_free(r);
		out = jv_object_set(out, jv_string((const char *)sqlite3_column_text(st, 1)), a);
	}
	sqlite3_finalize(st);
	return out;
}

static enum nn_code be_lease(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv l = jv_get_kind(body) == JV_KIND_OBJECT ? lease_of_sender(o, req, body, err)
		: (nn_seterr(err, "body: expected an object"), jv_invalid());
	const char *lease;
	jv_free(body);
	if (!jv_is_valid(l))
		return strstr(err, "not made for") ? NN_E_UNAUTHORIZED : NN_E_BAD_BODY;
	nn_json_get_str(l, "lease", &lease, NULL);
	*reply = jv_object_set(jv_copy(l), jv_string("allocations"), lease_allocs(o, lease));
	jv_free(l);
	return NN_OK;
}

/* A reply {"data" (base64), "offset", "size"} with up to max bytes of the
 * open file fd (closed here; -1: none, an empty answer) from off. */
static jv read_chunk(int fd, int64_t off, int64_t max)
{
	struct stat sb;
	char *buf = NULL, *b64;
	ssize_t got = 0;
	int64_t size = 0;
	jv r;
	if (fd >= 0 && fstat(fd, &sb) == 0) {
		size = sb.st_size;
		if (off < size) {
			buf = nn_xmalloc((size_t)max);
			got = pread(fd, buf, (size_t)max, off);
			if (got < 0)
				got = 0;
		}
	}
	if (size < off)
		size = off;
	if (fd >= 0)
		close(fd);
	b64 = nn_xmalloc(nn_b64_len((size_t)got));
	nn_b64_encode(b64, (const uint8_t *)(buf ? buf : ""), (size_t)got);
	r = jv_object_set(jv_object(), jv_string("data"), jv_string(b64));
	r = jv_object_set(r, jv_string("offset"), jv_number((double)(off + got)));
	r = jv_object_set(r, jv_string("size"), jv_number((double)size));
	free(buf);
	free(b64);
	return r;
}

/* The lease (checked: the requester, an owner, or its reader), and the
 * allocation body.name of it with its "dir"; invalid + err + *code. */
static jv reader_alloc(struct orch *o, jv req, jv body, const char **name, enum nn_code *code, char *err)
{
	jv l, allocs, a;
	const char *lease, *dir;
	*code = NN_E_BAD_BODY;
	if (jv_get_kind(body) != JV_KIND_OBJECT) {
		nn_seterr(err, "body: expected an object");
		return jv_invalid();
	}
	l = lease_for_reader(o, req, body, err);
	if (!jv_is_valid(l)) {
		if (strstr(err, "not made for"))
			*code = NN_E_UNAUTHORIZED;
		return l;
	}
	if (nn_json_get_str(body, "name", name, NULL) < 0) {
		jv_free(l);
		nn_seterr(err, "name: expected the allocation's name");
		return jv_invalid();
	}
	nn_json_get_str(l, "lease", &lease, NULL);
	allocs = lease_allocs(o, lease);
	a = jv_object_get(allocs, jv_string(*name));
	if (jv_get_kind(a) != JV_KIND_OBJECT || nn_json_get_str(a, "dir", &dir, NULL) < 0) {
		nn_seterr(err, "name: no allocation '%.64s' under lease %s", *name, lease);
		jv_free(a);
		a = jv_invalid();
	}
	jv_free(l);
	return a;
}

/* The offset and max of a read request; -1 + err. */
static int read_range(jv body, int64_t *off, int64_t *max, char *err)
{
	*off = 0;
	*max = 65536;
	if ((nn_json_has(body, "offset") && nn_json_get_int(body, "offset", off, err) < 0) ||
	    (nn_json_has(body, "max") && nn_json_get_int(body, "max", max, err) < 0))
		return -1;
	if (*off < 0 || *max < 1 || *max > LOG_CHUNK_MAX)
		return nn_seterr(err, "offset >= 0; max 1 to %d", LOG_CHUNK_MAX);
	return 0;
}

/* /public/deploy/logs: the requester of a lease (and the reader it named,
 * nobody else) reads its allocations' logs by offset. */
static enum nn_code be_logs(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	const char *name, *stream = "stdout", *dir, *state = "";
	int64_t off, max;
	enum nn_code code;
	jv a = reader_alloc(orch_of(n), req, body, &name, &code, err);
	char *path;
	if (!jv_is_valid(a))
		goto out;
	code = NN_E_BAD_BODY;
	if ((nn_json_has(body, "stream") && nn_json_get_str(body, "stream", &stream, err) < 0) ||
	    read_range(body, &off, &max, err) < 0)
		goto out;
	if (strcmp(stream, "stdout") && strcmp(stream, "stderr")) {
		nn_seterr(err, "stream: stdout or stderr");
		goto out;
	}
	nn_json_get_str(a, "dir", &dir, NULL);
	nn_json_get_str(a, "state", &state, NULL);
	path = nn_xasprintf("%s/%s.log", dir, stream);
	*reply = read_chunk(open(path, O_RDONLY | O_CLOEXEC), off, max);
	free(path);
	*reply = jv_object_set(*reply, jv_string("state"), jv_string(state));
	*reply = jv_object_set(*reply, jv_string("final"), jv_bool(nn_alloc_state_final(state)));
	code = NN_OK;
out:
	jv_free(a);
	jv_free(body);
	return code;
}

/* /public/deploy/result: an allocation's state, last result (with what its
 * outputs became) and declared outputs, for the lease's requester or reader. */
static enum nn_code be_result(struct nn_node *n, jv req, jv *reply, char *err)
{
	static const char *const f[] = { "id", "state", "status", "reason", "run", "dir", "result", "outputs",
					 NULL };
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	const char *name;
	enum nn_code code;
	jv a = reader_alloc(orch_of(n), req, body, &name, &code, err);
	if (jv_is_valid(a)) {
		*reply = jv_object_set(jv_object(), jv_string("name"), jv_string(name));
		for (int i = 0; f[i]; i++) {
			jv v = jv_object_get(jv_copy(a), jv_string(f[i]));
			*reply = jv_object_set(*reply, jv_string(f[i]), jv_is_valid(v) ? v : (jv_free(v), jv_null()));
		}
		code = NN_OK;
	}
	jv_free(a);
	jv_free(body);
	return code;
}

/* /public/deploy/output: bytes by offset of one of an allocation's declared
 * outputs (a regular file inside its directory), for the same callers. */
static enum nn_code be_output(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv body = jv_object_get(jv_copy(req), jv_string("body")), outs = jv_invalid();
	const char *name, *path = NULL, *dir;
	char *full = NULL, e[NN_ERRLEN];
	int64_t off, max;
	int declared = 0, fd;
	struct stat sb;
	enum nn_code code;
	jv a = reader_alloc(orch_of(n), req, body, &name, &code, err);
	if (!jv_is_valid(a))
		goto out;
	code = NN_E_BAD_BODY;
	if (nn_json_get_str(body, "path", &path, NULL) < 0 || read_range(body, &off, &max, err) < 0) {
		if (!path)
			nn_seterr(err, "path: expected one of the allocation's outputs");
		goto out;
	}
	outs = jv_object_get(jv_copy(a), jv_string("outputs"));
	if (jv_get_kind(outs) == JV_KIND_ARRAY)
		jv_array_foreach(outs, i, it) {
			const char *p;
			if (nn_json_get_str(it, "path", &p, NULL) == 0 && !strcmp(p, path))
				declared = 1;
			jv_free(it);
		}
	if (!declared) {
		nn_seterr(err, "path: '%.200s' is not an output of %.64s", path, name);
		goto out;
	}
	nn_json_get_str(a, "dir", &dir, NULL);
	if (nn_storage_join(dir, path, &full, e) < 0) {
		nn_seterr(err, "path: %s", e);
		goto out;
	}
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		nn_seterr(err, "path: %.200s: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		code = NN_E_UNAVAILABLE;
		goto out;
	}
	*reply = read_chunk(fd, off, max);
	code = NN_OK;
out:
	free(full);
	jv_free(outs);
	jv_free(a);
	jv_free(body);
	return code;
}

/* ---- pushing allocation states to the orchestrator ---- */

static void pushed(struct nn_node *n, jv answer, void *arg)
{
	(void)n;
	(void)arg;
	if (!jv_is_valid(answer))
		nn_debug("orch: state push not answered: %s", "no answer");
}

/* An alloc.state or alloc.unhealthy event of this node (fields
 * borrowed): tell the orchestrator of the lease the allocation belongs
 * to; an unhealthy one as its current state with "health":"failing". */
void orch_push_state(struct orch *o, jv fields)
{
	const char *aid;
	sqlite3_stmt *st;
	char e[NN_ERRLEN];
	if (nn_json_get_str(fields, "id", &aid, NULL) < 0)
		return;
	st = orch_prep(o, "SELECT l.id, l.dep, l.requester, l.trace, a.name, a.slot FROM orch_lease_alloc a"
		       " JOIN orch_lease l ON l.id = a.lease WHERE a.alloc = ?");
	if (!st)
		return;
	sqlite3_bind_text(st, 1, aid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *to = (const char *)sqlite3_column_text(st, 2);
		const char *trace = (const char *)sqlite3_column_text(st, 3);
		jv b = jv_object();
		b = jv_object_set(b, jv_string("lease"), orch_col_str(st, 0));
		b = jv_object_set(b, jv_string("deployment"), orch_col_str(st, 1));
		b = jv_object_set(b, jv_string("name"), orch_col_str(st, 4));
		b = jv_object_set(b, jv_string("slot"), jv_number((double)sqlite3_column_int64(st, 5)));
		b = jv_object_set(b, jv_string("alloc"), jv_string(aid));
		static const char *const f[] = { "state", "status", "reason", "run", NULL };
		if (!nn_json_has(fields, "state")) {
			jv r;
			if (nn_node_invoke(o->n, "/alloc/status", jv_object_set(jv_object(), jv_string("id"),
										  jv_string(aid)), NULL, &r, e) == NN_OK)
				for (int i = 0; f[i]; i++)
					b = jv_object_set(b, jv_string(f[i]), jv_object_get(jv_copy(r), jv_string(f[i])));
			jv_free(r);
			b = jv_object_set(b, jv_string("health"), jv_string("failing"));
			b = jv_object_set(b, jv_string("reason"), jv_object_get(jv_copy(fields), jv_string("message")));
		} else {
			for (int i = 0; f[i]; i++)
				b = jv_object_set(b, jv_string(f[i]), jv_object_get(jv_copy(fields), jv_string(f[i])));
		}
		if (nn_node_request(o->n, to, "/public/deploy/update", b, trace, 10000, pushed, NULL, NULL, e) < 0)
			nn_debug("orch: cannot push the state of %s: %s", aid, e);
	}
	sqlite3_finalize(st);
}

/* ---- heartbeats to the orchestrator ---- */

/* Every provisioned lease whose allocations are not all final pushes
 * {"deployment","lease","allocations":{NAME:{"id","slot","state",…}}} to
 * its requester every hb_ms: silence means this node is lost. */
void orch_heartbeats(struct orch *o)
{
	sqlite3_stmt *st;
	jv due = jv_array();
	int64_t mono = nn_mono_ms();
	if (!o->hb_loaded) {
		/* after a start: every provisioned lease, at once */
		o->hb_loaded = 1;
		st = orch_prep(o, "SELECT id, hb_ms FROM orch_lease WHERE state = 'provisioned' AND hb_ms > 0");
		while (st && sqlite3_step(st) == SQLITE_ROW)
			o->hb_next = jv_object_set(o->hb_next, orch_col_str(st, 0), jv_number((double)mono));
		if (st)
			sqlite3_finalize(st);
	}
	jv_object_foreach(o->hb_next, k, v) {
		if (jv_number_value(v) <= (double)mono)
			due = jv_array_append(due, jv_copy(k));
		jv_free(k);
		jv_free(v);
	}
	jv_array_foreach(due, i, lid) {
		jv l = lease_get(o, jv_string_value(lid)), all, allocs, b;
		const char *state = "", *to = NULL, *trace = NULL, *dep = NULL;
		int64_t hb_ms = 0;
		int live = 0;
		char e[NN_ERRLEN];
		sqlite3_stmt *q = orch_prep(o, "SELECT hb_ms FROM orch_lease WHERE id = ?");
		if (q) {
			sqlite3_bind_text(q, 1, jv_string_value(lid), -1, SQLITE_STATIC);
			if (sqlite3_step(q) == SQLITE_ROW)
				hb_ms = sqlite3_column_int64(q, 0);
			sqlite3_finalize(q);
		}
		if (jv_is_valid(l)) {
			nn_json_get_str(l, "state", &state, NULL);
			nn_json_get_str(l, "requester", &to, NULL);
			nn_json_get_str(l, "trace", &trace, NULL);
			nn_json_get_str(l, "deployment", &dep, NULL);
		}
		if (strcmp(state, "provisioned") != 0 || hb_ms <= 0 || !to || !dep) {
			o->hb_next = jv_object_delete(o->hb_next, jv_copy(lid));
			jv_free(l);
			jv_free(lid);
			continue;
		}
		all = lease_allocs(o, jv_string_value(lid));
		allocs = jv_object();
		jv_object_foreach(all, nm, a) {
			const char *s = "";
			nn_json_get_str(a, "state", &s, NULL);
			live |= !nn_alloc_state_final(s);
			allocs = jv_object_set(allocs, nm, jv_object_delete(a, jv_string("dir")));
		}
		jv_free(all);
		b = jv_object_set(jv_object(), jv_string("deployment"), jv_string(dep));
		b = jv_object_set(b, jv_string("lease"), jv_copy(lid));
		b = jv_object_set(b, jv_string("allocations"), allocs);
		if (nn_node_request(o->n, to, "/public/deploy/heartbeat", b, trace, hb_ms, pushed, NULL, NULL, e) < 0)
			nn_debug("orch: heartbeat of lease %s: %s", jv_string_value(lid), e);
		/* the last one says every allocation ended: then silence */
		o->hb_next = live ? jv_object_set(o->hb_next, jv_copy(lid), jv_number((double)(mono + hb_ms)))
			: jv_object_delete(o->hb_next, jv_copy(lid));
		jv_free(l);
		jv_free(lid);
	}
	jv_free(due);
}

/* ---- adopting a migrated allocation (nunet-run migrate, orch.h) ---- */

/* /alloc/migrate/adopt {"id","lease","requester","deployment","group",
 * "name","slot","heartbeat_ms","trace"}: allocation id, started here by a
 * migration and labelled with the lease its orchestrator granted for the
 * move (/public/deploy/move), becomes that lease's, provisioned: its
 * states and heartbeats go to the requester, who moves the placement here
 * on the first one.  Guarded like the other /alloc/migrate/ behaviors. */
static enum nn_code be_adopt(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body")), st = jv_invalid(), lb = jv_invalid(), old;
	const char *id, *lease, *rq, *dep, *grp, *name, *trace = "", *l1, *l2, *l3;
	int64_t slot = 0, hb_ms = 0, now = nn_now_ms();
	enum nn_code code = NN_E_BAD_BODY;
	char e[NN_ERRLEN];
	sqlite3_stmt *q;
	if (jv_get_kind(body) != JV_KIND_OBJECT || nn_json_get_str(body, "id", &id, NULL) < 0 ||
	    nn_json_get_str(body, "lease", &lease, NULL) < 0 || nn_json_get_str(body, "requester", &rq, NULL) < 0 ||
	    nn_json_get_str(body, "deployment", &dep, NULL) < 0 || nn_json_get_str(body, "group", &grp, NULL) < 0 ||
	    nn_json_get_str(body, "name", &name, NULL) < 0 || nn_json_get_int(body, "slot", &slot, NULL) < 0 ||
	    nn_json_get_int(body, "heartbeat_ms", &hb_ms, NULL) < 0 ||
	    (nn_json_has(body, "trace") && nn_json_get_str(body, "trace", &trace, NULL) < 0) ||
	    strlen(lease) > 64 || strlen(dep) > 64 || strlen(grp) > 64 || strlen(name) > 64 ||
	    strlen(trace) > 70 || strncmp(rq, "did:key:", 8) || strlen(rq) >= NN_DID_MAX) {
		nn_seterr(err, "expected {\"id\",\"lease\",\"requester\",\"deployment\",\"group\",\"name\",\"slot\","
			  "\"heartbeat_ms\"}");
		goto out;
	}
	if (hb_ms < 100 || hb_ms > 600000 || slot < 0 || slot >= ORCH_MAX_GROUPS * 16) {
		nn_seterr(err, "heartbeat_ms: expected 100 to 600000; slot: a slot number");
		goto out;
	}
	old = lease_get(o, lease);
	if (jv_is_valid(old)) {
		jv_free(old);
		nn_seterr(err, "lease: '%.64s' is already held here", lease);
		goto out;
	}
	jv_free(old);
	if (nn_node_invoke(n, "/alloc/status", jv_object_set(jv_object(), jv_string("id"), jv_string(id)), NULL, &st,
			   e) != NN_OK) {
		nn_seterr(err, "id: %s", e);
		goto out;
	}
	lb = jv_object_get(jv_object_get(jv_copy(st), jv_string("spec")), jv_string("labels"));
	if (jv_get_kind(lb) != JV_KIND_OBJECT || nn_json_get_str(lb, "nunet.deployment", &l1, NULL) < 0 ||
	    nn_json_get_str(lb, "nunet.allocation", &l2, NULL) < 0 || nn_json_get_str(lb, "nunet.lease", &l3, NULL) < 0 ||
	    strcmp(l1, dep) || strcmp(l2, name) || strcmp(l3, lease)) {
		nn_seterr(err, "allocation %.64s is not labelled allocation '%.64s' of deployment '%.64s' under lease"
			  " %.64s", id, name, dep, lease);
		goto out;
	}
	q = orch_prep(o, "INSERT INTO orch_lease (id, dep, grp, requester, trace, resources, expires, state,"
		      " created, updated, hb_ms) VALUES (?, ?, ?, ?, ?, '{}', ?, 'provisioned', ?, ?, ?)");
	if (q) {
		sqlite3_bind_text(q, 1, lease, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, dep, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, grp, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 4, rq, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 5, trace, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 6, now);
		sqlite3_bind_int64(q, 7, now);
		sqlite3_bind_int64(q, 8, now);
		sqlite3_bind_int64(q, 9, hb_ms);
	}
	if (orch_step(o, q) < 0) {
		nn_seterr(err, "cannot record the lease");
		code = NN_E_INTERNAL;
		goto out;
	}
	q = orch_prep(o, "INSERT OR REPLACE INTO orch_lease_alloc (alloc, lease, name, slot) VALUES (?, ?, ?, ?)");
	if (q) {
		sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, lease, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 4, slot);
	}
	orch_step(o, q);
	/* the first heartbeat now: it is what moves the placement here */
	o->hb_next = jv_object_set(o->hb_next, jv_string(lease), jv_number((double)nn_mono_ms()));
	{
		jv f = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
		f = jv_object_set(f, jv_string("deployment"), jv_string(dep));
		f = jv_object_set(f, jv_string("requester"), jv_string(rq));
		f = jv_object_set(f, jv_string("allocations"),
				  jv_object_set(jv_object(), jv_string(name), jv_string(id)));
		nn_node_emit(n, NN_LOG_INFO, "deploy.adopted", trace[0] ? trace : nn_env_str(req, "trace"), f);
	}
	*reply = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	*reply = jv_object_set(*reply, jv_string("id"), jv_string(id));
	*reply = jv_object_set(*reply, jv_string("requester"), jv_string(rq));
	code = NN_OK;
out:
	jv_free(lb);
	jv_free(st);
	jv_free(body);
	return code;
}

const struct nn_behavior orch_provider_behaviors[] = {
	{ "/broadcast/public/deploy/bid", be_bid, "bid for an ensemble's node groups from free resources", 1 },
	{ "/deploy/commit", be_commit, "reserve resources for a node group under a lease", 0 },
	{ "/deploy/provision", be_provision, "start a leased node group's allocations", 0 },
	{ "/deploy/release", be_release, "stop a lease's allocations and free its resources", 0 },
	{ "/deploy/renew", be_renew, "extend a reserved lease for its requester", 0 },
	{ "/deploy/restart", be_restart, "restart (or fail) a lease's allocations for its requester", 0 },
	{ "/alloc/migrate/adopt", be_adopt, "a migrated allocation joins the lease its orchestrator granted", 0 },
	{ "/deploy/lease", be_lease, "a lease and the states of its allocations", 0 },
	{ "/public/deploy/logs", be_logs, "log bytes of a lease's allocation, for its requester", 1 },
	{ "/public/deploy/result", be_result, "a lease's allocation's result and outputs, for its requester", 1 },
	{ "/public/deploy/output", be_output, "bytes of a lease's allocation's output, for its requester", 1 },
	{ NULL, NULL, NULL, 0 }
};
