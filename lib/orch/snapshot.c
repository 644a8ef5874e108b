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
 * The git work (unpacking a push, packing for a fetch, dropping the refs
 * of a deployment that ended and pruning what nothing reaches) runs in a
 * child process, one at a time, never in the node's loop (see the jobs
 * below).
 *
 * Only the provider of a placement of the allocation, as this node's
 * deployment records it now, is heard (the lease it holds is the
 * authority, as for /public/deploy/update): no token is needed and none
 * opens these to anyone else.  A bad pack is refused with a message; it
 * never reaches the ref.
 */
#include "orch/orch_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "json.h"
#include "log.h"
#include "migrate.h"
#include "storage.h"

#define HAVES_MAX 256
#define JOB_KEEP_MS (10 * 60 * 1000)	/* an outcome nobody asked for is forgotten then */

/*
 * Unpacking a pushed pack (a first snapshot can be large) happens in a
 * child process, never in the node's loop: /public/deploy/snapshot/commit
 * claims the transfer, queues a job and answers {"commit","pending":true};
 * the pusher asks again with the same body until the answer is the kept
 * snapshot {"commit","bytes"} or the refusal.  One child at a time (one
 * repository); the child writes "0" or "-1 MESSAGE" to a pipe and exits.
 */
enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED };
struct job {
	int packing;			/* 0: unpack a pushed pack; 1: pack for a fetch */
	int dropping;			/* or drop a deployment's refs (and prune) */
	char xfer[40], dep[72], name[72], commit[72], from[NN_DID_MAX], trace[72];
	char *pack;			/* the pack received, or the one made */
	jv haves;			/* packing: the commits the fetcher has;
					 * dropping: the refs */
	uint64_t size;
	int state;
	char err[NN_ERRLEN];
	pid_t pid;
	int fd;
	struct nn_watch *w;
	int64_t started, ended;		/* monotonic ms */
	struct job *next;
};
static struct job *jobs;
static void job_next(struct orch *o);

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

static void job_free(struct orch *o, struct job *j)
{
	if (j->w)
		nn_loop_remove(nn_node_loop(o->n), j->w);
	if (j->fd >= 0)
		close(j->fd);
	if (j->pid > 0) {
		kill(j->pid, SIGKILL);
		while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (j->pack) {
		unlink(j->pack);
		free(j->pack);
	}
	jv_free(j->haves);
	free(j);
}

static void job_unlink(struct job *j)
{
	for (struct job **p = &jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			return;
		}
}

static void drop_refs(struct orch *o, const char *dep, jv refs, const char *trace);

/* The kept snapshot of j becomes the one unpacked: row and event (unless
 * its deployment ended meanwhile: then its ref goes too). */
static int job_record(struct orch *o, struct job *j)
{
	sqlite3_stmt *st = orch_prep(o, "SELECT 1 FROM orch_deploy WHERE id = ? AND state IN ('done', 'failed',"
				     " 'cancelled')");
	int ended = 0;
	jv f;
	if (st) {
		sqlite3_bind_text(st, 1, j->dep, -1, SQLITE_STATIC);
		ended = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	if (ended) {
		char ref[256];
		snap_ref(ref, sizeof ref, j->dep, j->name);
		drop_refs(o, j->dep, jv_array_append(jv_array(), jv_string(ref)), j->trace);
		return nn_seterr(j->err, "deployment %.64s has ended: its snapshots are not kept", j->dep);
	}
	st = orch_prep(o, "INSERT OR REPLACE INTO orch_snapshot (dep, name, commit_id, bytes,"
		       " provider, updated) VALUES (?, ?, ?, ?, ?, ?)");
	if (st) {
		sqlite3_bind_text(st, 1, j->dep, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, j->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, j->commit, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)j->size);
		sqlite3_bind_text(st, 5, j->from, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, nn_now_ms());
	}
	if (orch_step(o, st) < 0)
		return nn_seterr(j->err, "cannot record the snapshot");
	f = jv_object_set(jv_object(), jv_string("deployment"), jv_string(j->dep));
	f = jv_object_set(f, jv_string("name"), jv_string(j->name));
	f = jv_object_set(f, jv_string("provider"), jv_string(j->from));
	f = jv_object_set(f, jv_string("commit"), jv_string(j->commit));
	f = jv_object_set(f, jv_string("bytes"), jv_number((double)j->size));
	f = jv_object_set(f, jv_string("unpack_ms"), jv_number((double)(nn_mono_ms() - j->started)));
	nn_node_emit(o->n, NN_LOG_INFO, "deploy.snapshot", j->trace[0] ? j->trace : NULL, f);
	return 0;
}

static void on_job(struct nn_loop *l, int fd, uint32_t ev, void *arg)
{
	struct job *j = arg;
	struct orch *o = orch_of(NULL);
	char buf[NN_ERRLEN + 16];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	(void)ev;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	nn_loop_remove(l, j->w);
	j->w = NULL;
	close(j->fd);
	j->fd = -1;
	while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
		;
	j->pid = 0;
	buf[n > 0 ? n : 0] = '\0';
	if (j->dropping) {
		unsigned removed = 0, pruned = 0;
		jv f = jv_object_set(jv_object(), jv_string("deployment"), jv_string(j->dep));
		if (n > 0 && buf[0] == '0' && sscanf(buf + 1, "%u %u", &removed, &pruned) == 2) {
			f = jv_object_set(f, jv_string("refs"), jv_number(removed));
			f = jv_object_set(f, jv_string("pruned"), jv_number(pruned));
		} else {
			f = jv_object_set(f, jv_string("reason"), jv_string(n > 3 ? buf + 3 : "the pruning process"
									      " ended without a word"));
		}
		f = jv_object_set(f, jv_string("ms"), jv_number((double)(nn_mono_ms() - j->started)));
		nn_node_emit(o->n, NN_LOG_INFO, "deploy.snapshot.dropped", j->trace[0] ? j->trace : NULL, f);
		job_unlink(j);
		job_free(o, j);
		job_next(o);
		return;
	}
	if (n > 0 && buf[0] == '0') {
		j->state = JOB_DONE;
		if (j->packing)
			j->size = strtoull(buf + 1, NULL, 10);
		else if (job_record(o, j) < 0)
			j->state = JOB_FAILED;
	} else {
		j->state = JOB_FAILED;
		if (j->packing)
			nn_seterr(j->err, "cannot pack commit %.12s: %s", j->commit,
				  n > 3 ? buf + 3 : "the packing process ended without a word");
		else
			nn_seterr(j->err, "snapshot of %.64s: commit %.12s: %s", j->name, j->commit,
				  n > 3 ? buf + 3 : "the unpacking process ended without a word");
	}
	j->ended = nn_mono_ms();
	if (!j->packing || j->state == JOB_FAILED) {	/* a made pack waits for its fetcher */
		unlink(j->pack);
		free(j->pack);
		j->pack = NULL;
	}
	if (o)
		job_next(o);
}

/* Start the oldest queued job when none runs. */
static void job_next(struct orch *o)
{
	struct job *j, *q = NULL;
	int p[2];
	char ref[256], e[NN_ERRLEN];
	for (j = jobs; j; j = j->next) {
		if (j->state == JOB_RUNNING)
			return;
		if (j->state == JOB_QUEUED)
			q = j;		/* the list is newest first */
	}
	if (!q)
		return;
	snap_ref(ref, sizeof ref, q->dep, q->name);
	if (pipe2(p, O_CLOEXEC) < 0 || (q->pid = fork()) < 0) {
		q->state = JOB_FAILED;
		q->pid = 0;
		q->ended = nn_mono_ms();
		nn_seterr(q->err, "snapshot of %.64s: cannot start the %s process: %s", q->name,
			  q->packing ? "packing" : "unpacking", strerror(errno));
		return;
	}
	if (q->pid == 0) {
		char *repo = nn_migrate_repo(nn_node_home(o->n));
		int r;
		/* nothing of the node's sockets stays open in here */
		if (p[1] != 3 && dup2(p[1], 3) < 0)
			_exit(NN_EX_SOFTWARE);
		syscall(SYS_close_range, 4U, ~0U, 0U);
		if (q->dropping) {
			int removed = 0, pruned = 0;
			const char *g = getenv("NUNET_SNAPSHOT_GRACE_S");
			r = nn_snapshot_drop(repo, q->haves, g && *g ? strtoll(g, NULL, 10) : 600, &removed, &pruned,
					     e);
			if (r < 0)
				dprintf(3, "-1 %s", e);
			else
				dprintf(3, "0 %d %d", removed, pruned);
		} else if (q->packing) {
			uint64_t bytes = 0;
			r = nn_snapshot_pack(repo, q->commit, q->haves, q->pack, &bytes, e);
			if (r < 0)
				dprintf(3, "-1 %s", e);
			else
				dprintf(3, "0 %llu", (unsigned long long)bytes);
		} else {
			r = nn_snapshot_unpack(repo, q->pack, q->commit, ref, e);
			if (r < 0)
				dprintf(3, "-1 %s", e);
			else
				dprintf(3, "0");
		}
		_exit(0);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
	q->started = nn_mono_ms();
	q->fd = p[0];
	q->state = JOB_RUNNING;
	q->w = nn_loop_fd(nn_node_loop(o->n), q->fd, EPOLLIN, on_job, q, e);
	if (!q->w) {
		kill(q->pid, SIGKILL);
		while (waitpid(q->pid, NULL, 0) < 0 && errno == EINTR)
			;
		q->pid = 0;
		close(q->fd);
		q->fd = -1;
		q->state = JOB_FAILED;
		q->ended = nn_mono_ms();
		nn_seterr(q->err, "snapshot of %.64s: %s", q->name, e);
	}
}

static struct job *job_find(int packing, const char *xfer, const char *from)
{
	int64_t mono = nn_mono_ms();
	struct job *j, *next, *found = NULL;
	for (j = jobs; j; j = next) {
		next = j->next;
		if (j->ended && mono - j->ended > JOB_KEEP_MS) {
			job_unlink(j);
			job_free(orch_of(NULL), j);
			continue;
		}
		if (j->packing == packing && !strcmp(j->xfer, xfer) && !strcmp(j->from, from))
			found = j;
	}
	return found;
}

void orch_snapshot_forget(struct orch *o, const char *dep, const char *trace)
{
	sqlite3_stmt *st = orch_prep(o, "SELECT name FROM orch_snapshot WHERE dep = ?");
	jv refs = jv_array();
	if (!st) {
		jv_free(refs);
		return;
	}
	sqlite3_bind_text(st, 1, dep, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char ref[256];
		snap_ref(ref, sizeof ref, dep, (const char *)sqlite3_column_text(st, 0));
		refs = jv_array_append(refs, jv_string(ref));
	}
	sqlite3_finalize(st);
	if (jv_array_length(jv_copy(refs)) == 0) {
		jv_free(refs);
		return;
	}
	st = orch_prep(o, "DELETE FROM orch_snapshot WHERE dep = ?");
	if (st)
		sqlite3_bind_text(st, 1, dep, -1, SQLITE_STATIC);
	orch_step(o, st);
	drop_refs(o, dep, refs, trace);
}

/* Queue the removal of refs (consumed) of dep, and a prune. */
static void drop_refs(struct orch *o, const char *dep, jv refs, const char *trace)
{
	struct job *j = nn_xcalloc(1, sizeof *j);
	j->dropping = 1;
	snprintf(j->dep, sizeof j->dep, "%s", dep);
	snprintf(j->trace, sizeof j->trace, "%s", trace ? trace : "");
	j->haves = refs;
	j->fd = -1;
	j->next = jobs;
	jobs = j;
	job_next(o);
}

void orch_snapshot_close(struct orch *o)
{
	while (jobs) {
		struct job *j = jobs;
		jobs = j->next;
		job_free(o, j);
	}
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
 * "commit"} → {"commit","pending":true} while the received pack is
 * unpacked (off the loop), then, asked again, {"commit","bytes"}: the
 * kept snapshot, once it holds the commit and everything it needs. */
static enum nn_code be_commit(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct orch *o = orch_of(n);
	const char *dep, *name, *xid, *commit, *from = nn_env_str(req, "from"), *trace = nn_env_str(req, "trace");
	char *pack;
	uint64_t size = 0;
	enum nn_code code;
	struct job *j;
	jv b = placement(o, req, 1, &dep, &name, &code, err);
	if (!jv_is_valid(b))
		return code;
	code = NN_E_BAD_BODY;
	if (nn_json_get_str(b, "xfer", &xid, NULL) < 0 || nn_json_get_str(b, "commit", &commit, NULL) < 0 ||
	    strlen(xid) >= sizeof j->xfer || strlen(commit) >= sizeof j->commit) {
		nn_seterr(err, "expected {\"xfer\",\"commit\"} besides the deployment, name and lease");
		goto out;
	}
	j = job_find(0, xid, from);
	if (!j) {
		pack = nn_migrate_claim(n, from, xid, commit, &size, err);
		if (!pack)
			goto out;
		j = nn_xcalloc(1, sizeof *j);
		snprintf(j->xfer, sizeof j->xfer, "%s", xid);
		snprintf(j->dep, sizeof j->dep, "%s", dep);
		snprintf(j->name, sizeof j->name, "%s", name);
		snprintf(j->commit, sizeof j->commit, "%s", commit);
		snprintf(j->from, sizeof j->from, "%s", from);
		snprintf(j->trace, sizeof j->trace, "%s", trace ? trace : "");
		j->pack = pack;
		j->size = size;
		j->haves = jv_null();
		j->fd = -1;
		j->next = jobs;
		jobs = j;
		job_next(o);
	}
	if (strcmp(j->commit, commit) || strcmp(j->dep, dep) || strcmp(j->name, name)) {
		nn_seterr(err, "xfer %.40s carried commit %.12s of %.64s", xid, j->commit, j->name);
		goto out;
	}
	if (j->state == JOB_FAILED) {
		nn_seterr(err, "%s", j->err);
		code = strstr(j->err, "cannot record") || strstr(j->err, "cannot start") ? NN_E_INTERNAL
			: NN_E_BAD_BODY;
		job_unlink(j);
		job_free(o, j);
		goto out;
	}
	*reply = jv_object_set(jv_object(), jv_string("commit"), jv_string(commit));
	if (j->state == JOB_DONE) {
		*reply = jv_object_set(*reply, jv_string("bytes"), jv_number((double)j->size));
		job_unlink(j);
		job_free(o, j);
	} else {
		*reply = jv_object_set(*reply, jv_string("pending"), jv_true());
	}
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
	struct job *j;
	if (!jv_is_valid(b))
		return code;
	code = NN_E_BAD_BODY;
	haves = jv_object_get(jv_copy(b), jv_string("haves"));
	if (nn_json_get_str(b, "commit", &commit, NULL) < 0 || strlen(commit) > 64 ||
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
	/* packed by a child process: pending until made, then offered */
	for (j = jobs; j; j = j->next)
		if (j->packing && !strcmp(j->from, from) && !strcmp(j->dep, dep) && !strcmp(j->name, name) &&
		    !strcmp(j->commit, commit))
			break;
	if (!j) {
		char id[33];
		nn_random_id(id);
		j = nn_xcalloc(1, sizeof *j);
		j->packing = 1;
		snprintf(j->dep, sizeof j->dep, "%s", dep);
		snprintf(j->name, sizeof j->name, "%s", name);
		snprintf(j->commit, sizeof j->commit, "%s", commit);
		snprintf(j->from, sizeof j->from, "%s", from);
		j->pack = nn_xasprintf("%s/snapshots/incoming/out-%s.pack", nn_node_home(n), id);
		{
			char *d = nn_xasprintf("%s/snapshots", nn_node_home(n));
			mkdir(d, 0700);
			free(d);
			d = nn_xasprintf("%s/snapshots/incoming", nn_node_home(n));
			mkdir(d, 0700);
			free(d);
		}
		j->haves = jv_copy(haves);
		j->fd = -1;
		j->next = jobs;
		jobs = j;
		job_next(o);
	}
	if (j->state == JOB_FAILED) {
		nn_seterr(err, "%s", j->err);
		code = NN_E_INTERNAL;
		job_unlink(j);
		job_free(o, j);
		goto out;
	}
	if (j->state != JOB_DONE) {
		*reply = jv_object_set(jv_object(), jv_string("pending"), jv_true());
		code = NN_OK;
		goto out;
	}
	code = nn_migrate_offer(n, from, commit, j->pack, j->size, reply, err);
	free(j->pack);
	j->pack = NULL;		/* the transfer's now */
	job_unlink(j);
	job_free(o, j);
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
