/*
 * orch/snapshot — the orchestrator keeps the last snapshot of each
 * allocation of its deployments that declares a state directory, so that
 * a snapshot outlives the provider that took it (orch.h).
 *
 * A provider pushes a checkpoint (`nunet-run checkpoint` on its machine)
 * with migrate.h's transfers: haves, then the pack of what the
 * orchestrator lacks in acknowledged pieces, then commit, which unpacks it
 * into $NUNET_HOME/snapshots.git on ref refs/nunet/deploy/DEP/NAME and
 * records the commit in orch_snapshot (node.db: it survives a restart).
 * When the allocation is placed again, the /alloc/start body names that
 * commit ("restore":{"fetch":THIS_DID,…}); the new provider's shim asks
 * for a pack of what it lacks (pack) and reads it by offset (read).
 *
 * Only the provider of a placement of the allocation, as this node's
 * deployment records it now, is heard (the lease it holds is the
 * authority, as for /public/deploy/update): no token is needed and none
 * opens these to anyone else.  A bad pack is refused with a message; it
 * never reaches the ref.
 */
#include "orch/orch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "json.h"
#include "log.h"
#include "migrate.h"
#include "storage.h"

#define HAVES_MAX 256

static void snap_ref(char *ref, size_t cap, const char *dep, const char *name)
{
	snprintf(ref, cap, "refs/nunet/deploy/%s/%s", dep, name);
}

/* The recorded snapshot of (dep, name): {"commit","bytes","provider",
 * "updated"}, or null. */
jv orch_snapshot_of(struct orch *o, const char *dep, const char *name)
{
	sqlite3_stmt *st = orch_prep(o, "SELECT commit_id, bytes, provider, updated FROM orch_snapshot"
				     " WHERE dep = ? AND name = ?");
	jv r = jv_null();
	if (!st)
		return r;
	sqlite3_bind_text(st, 1, dep, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		r = jv_object_set(jv_object(), jv_string("commit"), orch_col_str(st, 0));
		r = jv_object_set(r, jv_string("bytes"), jv_number((double)sqlite3_column_int64(st, 1)));
		r = jv_object_set(r, jv_string("provider"), orch_col_str(st, 2));
		r = jv_object_set(r, jv_string("updated"), jv_number((double)sqlite3_column_int64(st, 3)));
	}
	sqlite3_finalize(st);
	return r;
}

jv orch_snapshot_restore(struct orch *o, const char *dep, const char *name)
{
	jv s = orch_snapshot_of(o, dep, name), r;
	if (jv_get_kind(s) != JV_KIND_OBJECT) {
		jv_free(s);
		return jv_invalid();
	}
	r = jv_object_set(jv_object(), jv_string("fetch"), jv_string(nn_node_did(o->n)));
	r = jv_object_set(r, jv_string("deployment"), jv_string(dep));
	r = jv_object_set(r, jv_string("name"), jv_string(name));
	return jv_object_set(r, jv_string("commit"), jv_object_get(s, jv_string("commit")));
}

/* The body of req (new), and its deployment and allocation name, checked
 * to be held by the sender (under body.lease when need_lease).  Invalid
 * with *code and err otherwise. */
static jv placement(struct orch *o, jv req, int need_lease, const char **dep, const char **name,
		    enum nn_code *code, char *err)
{
	jv b = jv_object_get(jv_copy(req), jv_string("body"));
	const char *lease = NULL, *from = nn_env_str(req, "from");
	*code = NN_E_BAD_BODY;
	if (jv_get_kind(b) != JV_KIND_OBJECT || nn_json_get_str(b, "deployment", dep, NULL) < 0 ||
	    nn_json_get_str(b, "name", name, NULL) < 0 || strlen(*dep) > 64 || strlen(*name) > 64 ||
	    !nn_path_plain(*dep) || !nn_path_plain(*name) ||
	    ((need_lease || nn_json_has(b, "lease")) && nn_json_get_str(b, "lease", &lease, NULL) < 0)) {
		nn_seterr(err, "expected {\"deployment\",\"name\"%s}", need_lease ? ",\"lease\"" : "");
		jv_free(b);
		return jv_invalid();
	}
	if (!from || !orch_dep_holds(o, *dep, *name, from, lease)) {
		nn_seterr(err, "deployment '%.64s': %.80s holds no placement of allocation '%.64s'%s%.72s", *dep,
			  from ? from : "?", *name, lease ? " under lease " : "", lease ? lease : "");
		*code = NN_E_UNAUTHORIZED;
		jv_free(b);
		return jv_invalid();
	}
	return b;
}

/* /public/deploy/snapshot/haves {"deployment","name","lease"} → {"haves"}:
 * the commit kept for the allocation, if any (a push sends what follows). */
static enum nn_code be_haves(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	const char *dep, *name;
	enum nn_code code;
	jv b = placement(o, req, 1, &dep, &name, &code, err), s, h;
	if (!jv_is_valid(b))
		return code;
	h = jv_array();
	s = orch_snapshot_of(o, dep, name);
	if (jv_get_kind(s) == JV_KIND_OBJECT)
		h = jv_array_append(h, jv_object_get(jv_copy(s), jv_string("commit")));
	jv_free(s);
	*reply = jv_object_set(jv_object(), jv_string("haves"), h);
	jv_free(b);
	return NN_OK;
}

/* /public/deploy/snapshot/receive {"deployment","name","lease","commit",
 * "size"} → {"xfer"}; pieces follow through /public/deploy/snapshot/chunk. */
static enum nn_code be_receive(struct nn_node *n, jv req, jv *reply, char *err)
{
	const char *dep, *name;
	enum nn_code code;
	jv b = placement(orch_of(n), req, 1, &dep, &name, &code, err);
	if (!jv_is_valid(b))
		return code;
	code = nn_migrate_open(n, nn_env_str(req, "from"), b, reply, err);
	jv_free(b);
	return code;
}

static enum nn_code be_chunk(struct nn_node *n, jv req, jv *reply, char *err)
{
	return nn_migrate_piece(n, req, reply, err);
}

/* /public/deploy/snapshot/commit {"deployment","name","lease","xfer",
 * "commit"} → {"commit","bytes"}: the received pack becomes the kept
 * snapshot, once it holds the commit and everything it needs. */
static enum nn_code be_commit(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	const char *dep, *name, *xid, *commit, *from = nn_env_str(req, "from");
	char ref[256], e[NN_ERRLEN], *pack, *repo;
	uint64_t size = 0;
	enum nn_code code;
	sqlite3_stmt *st;
	jv b = placement(o, req, 1, &dep, &name, &code, err);
	if (!jv_is_valid(b))
		return code;
	code = NN_E_BAD_BODY;
	if (nn_json_get_str(b, "xfer", &xid, NULL) < 0 || nn_json_get_str(b, "commit", &commit, NULL) < 0) {
		nn_seterr(err, "expected {\"xfer\",\"commit\"} besides the deployment, name and lease");
		goto out;
	}
	pack = nn_migrate_claim(n, from, xid, commit, &size, err);
	if (!pack)
		goto out;
	repo = nn_migrate_repo(nn_node_home(n));
	snap_ref(ref, sizeof ref, dep, name);
	if (nn_snapshot_unpack(repo, pack, commit, ref, e) < 0) {
		nn_seterr(err, "snapshot of %.64s: commit %.12s: %s", name, commit, e);
		unlink(pack);
		free(pack);
		free(repo);
		goto out;
	}
	unlink(pack);
	free(pack);
	free(repo);
	st = orch_prep(o, "INSERT OR REPLACE INTO orch_snapshot (dep, name, commit_id, bytes, provider, updated)"
		       " VALUES (?, ?, ?, ?, ?, ?)");
	if (st) {
		sqlite3_bind_text(st, 1, dep, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, commit, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)size);
		sqlite3_bind_text(st, 5, from, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, nn_now_ms());
	}
	if (orch_step(o, st) < 0) {
		nn_seterr(err, "cannot record the snapshot");
		code = NN_E_INTERNAL;
		goto out;
	}
	{
		jv f = jv_object_set(jv_object(), jv_string("deployment"), jv_string(dep));
		f = jv_object_set(f, jv_string("name"), jv_string(name));
		f = jv_object_set(f, jv_string("provider"), jv_string(from));
		f = jv_object_set(f, jv_string("commit"), jv_string(commit));
		f = jv_object_set(f, jv_string("bytes"), jv_number((double)size));
		nn_node_emit(n, NN_LOG_INFO, "deploy.snapshot", nn_env_str(req, "trace"), f);
	}
	*reply = jv_object_set(jv_object(), jv_string("commit"), jv_string(commit));
	*reply = jv_object_set(*reply, jv_string("bytes"), jv_number((double)size));
	code = NN_OK;
out:
	jv_free(b);
	return code;
}

/* /public/deploy/snapshot/pack {"deployment","name","commit","haves"} →
 * {"xfer","size"}: for the provider placed anew, a pack of what the kept
 * snapshot needs beyond the commits it has; read by offset. */
static enum nn_code be_pack(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	const char *dep, *name, *commit, *kept = NULL, *from = nn_env_str(req, "from");
	enum nn_code code;
	jv b = placement(o, req, 0, &dep, &name, &code, err), s = jv_null(), haves = jv_invalid();
	char *repo;
	if (!jv_is_valid(b))
		return code;
	code = NN_E_BAD_BODY;
	haves = jv_object_get(jv_copy(b), jv_string("haves"));
	if (nn_json_get_str(b, "commit", &commit, NULL) < 0 ||
	    (jv_get_kind(haves) != JV_KIND_ARRAY && jv_get_kind(haves) != JV_KIND_NULL)) {
		nn_seterr(err, "expected {\"commit\",\"haves\":[…]} besides the deployment and name");
		goto out;
	}
	if (jv_get_kind(haves) == JV_KIND_NULL) {
		jv_free(haves);
		haves = jv_array();
	}
	if (jv_array_length(jv_copy(haves)) > HAVES_MAX) {	/* the rest is packed again */
		haves = jv_array_slice(haves, 0, HAVES_MAX);
	}
	s = orch_snapshot_of(o, dep, name);
	if (jv_get_kind(s) != JV_KIND_OBJECT || nn_json_get_str(s, "commit", &kept, NULL) < 0 ||
	    strcmp(kept, commit)) {
		nn_seterr(err, "commit %.64s is not the snapshot kept of %.64s (%.64s)", commit, name,
			  kept ? kept : "none");
		code = NN_E_UNAVAILABLE;
		goto out;
	}
	repo = nn_migrate_repo(nn_node_home(n));
	code = nn_migrate_serve(n, from, repo, commit, haves, reply, err);
	free(repo);
	if (code == NN_OK) {
		jv f = jv_object_set(jv_object(), jv_string("deployment"), jv_string(dep));
		jv sz = jv_object_get(jv_copy(*reply), jv_string("size"));
		f = jv_object_set(f, jv_string("name"), jv_string(name));
		f = jv_object_set(f, jv_string("provider"), jv_string(from));
		f = jv_object_set(f, jv_string("commit"), jv_string(commit));
		f = jv_object_set(f, jv_string("haves"), jv_number(jv_array_length(jv_copy(haves))));
		f = jv_object_set(f, jv_string("bytes"), sz);
		nn_node_emit(n, NN_LOG_INFO, "deploy.restore", nn_env_str(req, "trace"), f);
	}
out:
	jv_free(haves);
	jv_free(s);
	jv_free(b);
	return code;
}

static enum nn_code be_read(struct nn_node *n, jv req, jv *reply, char *err)
{
	return nn_migrate_read(n, req, reply, err);
}

const struct nn_behavior orch_snapshot_behaviors[] = {
	{ "/public/deploy/snapshot/haves", be_haves, "the snapshot kept of an allocation, for its provider", 1 },
	{ "/public/deploy/snapshot/receive", be_receive, "open the push of a snapshot pack by its provider", 1 },
	{ "/public/deploy/snapshot/chunk", be_chunk, "one piece of a pushed snapshot pack", 1 },
	{ "/public/deploy/snapshot/commit", be_commit, "keep a pushed snapshot as the allocation's last", 1 },
	{ "/public/deploy/snapshot/pack", be_pack, "pack the kept snapshot for a provider placed anew", 1 },
	{ "/public/deploy/snapshot/read", be_read, "bytes of a snapshot pack by offset", 1 },
	{ NULL, NULL, NULL, 0 }
};
