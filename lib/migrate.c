/*
 * migrate — the target's side of moving an allocation (migrate.h): the
 * snapshot commits it has, a pack received in acknowledged pieces into
 * $NUNET_HOME/snapshots/incoming, and the allocation started from it.
 * Every behavior is quick (a ref listing, one write of a piece, one
 * /alloc/start); unpacking and restoring happen in the new allocation's
 * shim before its job starts.
 */
#include "migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "codec.h"
#include "json.h"
#include "key.h"
#include "log.h"
#include "node.h"
#include "storage.h"

struct xfer {
	char id[33];
	char commit[65];
	char owner[NN_DID_MAX];	/* the did that opened it: the only one heard */
	uint64_t size, have;
	int fd;
	int out;		/* served by this node (nn_migrate_serve), not received */
	int64_t created;	/* monotonic ms */
	int started;		/* handed to /alloc/start */
	struct xfer *next;
};

struct mmod {
	struct nn_node *n;
	struct xfer *list;
	struct nn_watch *tick;
};

static struct mmod *the_mod;

char *nn_migrate_repo(const char *home)
{
	return nn_xasprintf("%s/%s", home, NN_SNAPSHOT_REPO);
}

void nn_migrate_ref(const char *id, char *ref)
{
	snprintf(ref, NN_ERRLEN, "refs/nunet/%s", id);
}

static char *pack_path(const char *home, const char *xid)
{
	return nn_xasprintf("%s/snapshots/incoming/%s.pack", home, xid);
}

/* home/snapshots/incoming, made when missing */
static void incoming_dir(const char *home)
{
	char *dir = nn_xasprintf("%s/snapshots", home);
	mkdir(dir, 0700);
	free(dir);
	dir = nn_xasprintf("%s/snapshots/incoming", home);
	mkdir(dir, 0700);
	free(dir);
}

static struct xfer *find(const char *id)
{
	for (struct xfer *x = the_mod ? the_mod->list : NULL; x; x = x->next)
		if (!strcmp(x->id, id))
			return x;
	return NULL;
}

static void xfer_drop(struct mmod *m, struct xfer *x, int unlink_pack)
{
	struct xfer **p = &m->list;
	while (*p && *p != x)
		p = &(*p)->next;
	if (*p)
		*p = x->next;
	if (x->fd >= 0)
		close(x->fd);
	if (unlink_pack) {
		char *path = pack_path(nn_node_home(m->n), x->id);
		unlink(path);
		free(path);
	}
	free(x);
}


static int hex_id(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s);
	return n >= min && n <= max && strspn(s, "0123456789abcdef") == n;
}

int nn_migrate_take(jv body, jv *opts, const char *home, char *err)
{
	const char *sd = NULL, *xid = NULL, *commit = NULL;
	jv r;
	struct xfer *x;
	if (nn_json_has(body, "state_dir")) {
		if (nn_json_get_str(body, "state_dir", &sd, NULL) < 0 || !nn_path_plain(sd))
			return nn_seterr(err, "state_dir: expected a path inside the allocation "
					 "directory (relative, without '.' or '..')");
		*opts = jv_object_set(*opts, jv_string("state_dir"), jv_string(sd));
	}
	if (nn_json_has(body, "checkpoint")) {
		const char *every = NULL;
		int64_t ms = 0;
		if (nn_json_get_str(body, "checkpoint", &every, NULL) < 0 || nn_parse_duration_ms(every, &ms) < 0 ||
		    ms < NN_MIGRATE_EVERY_MIN_MS)
			return nn_seterr(err, "checkpoint: expected a duration of at least %ds (\"30s\")",
					 NN_MIGRATE_EVERY_MIN_MS / 1000);
		if (!sd)
			return nn_seterr(err, "checkpoint: needs a state_dir to checkpoint");
		*opts = jv_object_set(*opts, jv_string("checkpoint_ms"), jv_number((double)ms));
		*opts = jv_object_set(*opts, jv_string("home"), jv_string(home));
	}
	if (!nn_json_has(body, "restore"))
		return 0;
	if (!sd)
		return nn_seterr(err, "restore: needs a state_dir to restore into");
	r = jv_object_get(jv_copy(body), jv_string("restore"));
	if (jv_get_kind(r) == JV_KIND_OBJECT && nn_json_has(r, "fetch")) {
		/* a deployment's last snapshot, kept by its orchestrator */
		const char *from = NULL, *dep = NULL, *name = NULL;
		char *repo;
		jv o;
		if (nn_json_get_str(r, "fetch", &from, NULL) < 0 || strncmp(from, "did:", 4) ||
		    strlen(from) >= NN_DID_MAX || nn_json_get_str(r, "deployment", &dep, NULL) < 0 ||
		    !nn_path_plain(dep) || strlen(dep) > 64 || nn_json_get_str(r, "name", &name, NULL) < 0 ||
		    !nn_path_plain(name) || strlen(name) > 64 || nn_json_get_str(r, "commit", &commit, NULL) < 0 ||
		    !hex_id(commit, 40, 64)) {
			jv_free(r);
			return nn_seterr(err, "restore: expected {\"fetch\":DID,\"deployment\",\"name\","
					 "\"commit\":HEX}");
		}
		repo = nn_migrate_repo(home);
		o = jv_object_set(jv_object(), jv_string("fetch"), jv_string(from));
		o = jv_object_set(o, jv_string("deployment"), jv_string(dep));
		o = jv_object_set(o, jv_string("name"), jv_string(name));
		o = jv_object_set(o, jv_string("commit"), jv_string(commit));
		o = jv_object_set(o, jv_string("repo"), jv_string(repo));
		o = jv_object_set(o, jv_string("home"), jv_string(home));
		*opts = jv_object_set(*opts, jv_string("restore"), o);
		free(repo);
		jv_free(r);
		return 0;
	}
	if (nn_json_get_str(r, "xfer", &xid, NULL) < 0 || nn_json_get_str(r, "commit", &commit, NULL) < 0 ||
	    !hex_id(commit, 40, 64)) {
		jv_free(r);
		return nn_seterr(err, "restore: expected {\"xfer\":ID,\"commit\":HEX}");
	}
	x = find(xid);
	if (!x || x->out || x->started || x->have != x->size || strcmp(x->commit, commit)) {
		jv_free(r);
		return nn_seterr(err, "restore: no complete transfer '%.40s' of commit %.64s here", xid,
				 commit);
	}
	{
		char *pack = pack_path(home, xid), *repo = nn_migrate_repo(home);
		jv o = jv_object_set(jv_object(), jv_string("pack"), jv_string(pack));
		o = jv_object_set(o, jv_string("commit"), jv_string(commit));
		o = jv_object_set(o, jv_string("repo"), jv_string(repo));
		*opts = jv_object_set(*opts, jv_string("restore"), o);
		free(pack);
		free(repo);
	}
	jv_free(r);
	return 0;
}

/* ---- transfers (also for other modules: the orchestrator's snapshots) ---- */

static jv req_body(jv req)
{
	jv b = jv_object_get(jv_copy(req), jv_string("body"));
	return jv_get_kind(b) == JV_KIND_OBJECT ? b : (jv_free(b), jv_object());
}

static struct xfer *xfer_new(const char *owner, const char *commit, uint64_t size, int out)
{
	struct xfer *x = nn_xcalloc(1, sizeof *x);
	nn_random_id(x->id);
	snprintf(x->commit, sizeof x->commit, "%s", commit);
	snprintf(x->owner, sizeof x->owner, "%s", owner ? owner : "");
	x->size = size;
	x->out = out;
	x->created = nn_mono_ms();
	return x;
}

/* The transfer xid, when owner opened it (err otherwise). */
static struct xfer *owned(const char *xid, const char *owner, int out, char *err)
{
	struct xfer *x = find(xid);
	if (!x || x->out != out || strcmp(x->owner, owner ? owner : "")) {
		nn_seterr(err, "no transfer '%.40s' here", xid);
		return NULL;
	}
	return x;
}

enum nn_code nn_migrate_open(struct nn_node *n, const char *owner, jv body, jv *reply, char *err)
{
	struct mmod *m = the_mod;
	const char *commit = NULL;
	int64_t size = -1;
	struct xfer *x;
	char *path;

	if (!m) {
		nn_seterr(err, "migrate: not attached");
		return NN_E_INTERNAL;
	}
	if (nn_json_get_str(body, "commit", &commit, NULL) < 0 || !hex_id(commit, 40, 64) ||
	    nn_json_get_int(body, "size", &size, NULL) < 0 || size <= 0 || size > (1LL << 40)) {
		nn_seterr(err, "expected {\"commit\":HEX,\"size\":BYTES}");
		return NN_E_BAD_BODY;
	}
	x = xfer_new(owner, commit, (uint64_t)size, 0);
	incoming_dir(nn_node_home(n));
	path = pack_path(nn_node_home(n), x->id);
	x->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (x->fd < 0) {
		nn_seterr(err, "cannot create '%s': %s", path, strerror(errno));
		free(path);
		free(x);
		return NN_E_INTERNAL;
	}
	free(path);
	x->next = m->list;
	m->list = x;
	*reply = jv_object_set(jv_object(), jv_string("xfer"), jv_string(x->id));
	return NN_OK;
}

enum nn_code nn_migrate_piece(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv b = req_body(req);
	const char *xid = NULL, *data = NULL;
	int64_t off = -1;
	struct xfer *x;
	uint8_t *buf;
	size_t dlen;
	int len;
	enum nn_code code = NN_E_BAD_BODY;
	(void)n;

	if (nn_json_get_str(b, "xfer", &xid, NULL) < 0 || nn_json_get_int(b, "offset", &off, NULL) < 0 ||
	    nn_json_get_str(b, "data", &data, NULL) < 0) {
		nn_seterr(err, "expected {\"xfer\",\"offset\",\"data\"}");
		goto out;
	}
	x = owned(xid, nn_env_str(req, "from"), 0, err);
	if (!x || x->fd < 0) {
		nn_seterr(err, "no transfer '%.40s' here", xid);
		goto out;
	}
	if (off < 0 || (uint64_t)off != x->have) {
		nn_seterr(err, "offset %lld: expected %llu", (long long)off, (unsigned long long)x->have);
		goto out;
	}
	dlen = strlen(data);
	if (dlen > nn_b64_len(NN_MIGRATE_CHUNK)) {
		nn_seterr(err, "data: a piece holds at most %d bytes", NN_MIGRATE_CHUNK);
		goto out;
	}
	buf = nn_xmalloc(dlen / 4 * 3 + 3);
	len = nn_b64_decode(buf, dlen / 4 * 3 + 3, data, dlen);
	if (len <= 0 || x->have + (uint64_t)len > x->size) {
		free(buf);
		nn_seterr(err, len <= 0 ? "data: expected base64" : "data: more than the announced size");
		goto out;
	}
	if (nn_write_all(x->fd, buf, (size_t)len) < 0) {
		nn_seterr(err, "cannot write the pack: %s", strerror(errno));
		free(buf);
		code = NN_E_INTERNAL;
		goto out;
	}
	free(buf);
	x->have += (uint64_t)len;
	if (x->have == x->size) {
		close(x->fd);
		x->fd = -1;
	}
	*reply = jv_object_set(jv_object(), jv_string("have"), jv_number((double)x->have));
	code = NN_OK;
out:
	jv_free(b);
	return code;
}

char *nn_migrate_claim(struct nn_node *n, const char *owner, const char *xid, const char *commit,
		       uint64_t *size, char *err)
{
	struct xfer *x = owned(xid, owner, 0, err);
	char *path;
	if (!x)
		return NULL;
	if (x->have != x->size || strcmp(x->commit, commit)) {
		nn_seterr(err, "xfer: %llu of %llu bytes of commit %.12s received, not all of %.12s",
			  (unsigned long long)x->have, (unsigned long long)x->size, x->commit, commit);
		return NULL;
	}
	path = pack_path(nn_node_home(n), x->id);
	*size = x->size;
	xfer_drop(the_mod, x, 0);
	return path;
}

enum nn_code nn_migrate_offer(struct nn_node *n, const char *owner, const char *commit, const char *path,
			      uint64_t bytes, jv *reply, char *err)
{
	struct mmod *m = the_mod;
	struct xfer *x;
	(void)n;
	if (!m) {
		nn_seterr(err, "migrate: not attached");
		return NN_E_INTERNAL;
	}
	x = xfer_new(owner, commit, bytes, 1);
	x->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (x->fd < 0) {
		nn_seterr(err, "cannot open the pack: %s", strerror(errno));
		free(x);
		return NN_E_INTERNAL;
	}
	/* named as the transfer's pack: removed with it (or now, if it cannot
	 * be renamed: the open file is enough) */
	{
		char *to = pack_path(nn_node_home(n), x->id);
		if (strcmp(path, to) && rename(path, to) < 0)
			unlink(path);
		free(to);
	}
	x->have = bytes;
	x->next = m->list;
	m->list = x;
	*reply = jv_object_set(jv_object(), jv_string("xfer"), jv_string(x->id));
	*reply = jv_object_set(*reply, jv_string("size"), jv_number((double)bytes));
	return NN_OK;
}

enum nn_code nn_migrate_read(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv b = req_body(req);
	const char *xid = NULL;
	int64_t off = -1;
	struct xfer *x;
	uint8_t *buf;
	char *b64;
	ssize_t got;
	size_t want;
	enum nn_code code = NN_E_BAD_BODY;
	(void)n;
	if (nn_json_get_str(b, "xfer", &xid, NULL) < 0 || nn_json_get_int(b, "offset", &off, NULL) < 0) {
		nn_seterr(err, "expected {\"xfer\",\"offset\"}");
		goto out;
	}
	x = owned(xid, nn_env_str(req, "from"), 1, err);
	if (!x)
		goto out;
	if (off < 0 || (uint64_t)off > x->size) {
		nn_seterr(err, "offset %lld: the pack has %llu bytes", (long long)off, (unsigned long long)x->size);
		goto out;
	}
	want = x->size - (uint64_t)off < NN_MIGRATE_CHUNK ? (size_t)(x->size - (uint64_t)off) : NN_MIGRATE_CHUNK;
	buf = nn_xmalloc(want + 1);
	got = want ? pread(x->fd, buf, want, off) : 0;
	if (got < 0 || (size_t)got != want) {
		nn_seterr(err, "cannot read the pack: %s", got < 0 ? strerror(errno) : "short");
		free(buf);
		code = NN_E_INTERNAL;
		goto out;
	}
	b64 = nn_xmalloc(nn_b64_len(want));
	nn_b64_encode(b64, buf, want);
	*reply = jv_object_set(jv_object(), jv_string("data"), jv_string(b64));
	*reply = jv_object_set(*reply, jv_string("offset"), jv_number((double)((uint64_t)off + want)));
	*reply = jv_object_set(*reply, jv_string("size"), jv_number((double)x->size));
	free(buf);
	free(b64);
	if ((uint64_t)off + want == x->size)
		xfer_drop(the_mod, x, 1);	/* the last piece: served */
	code = NN_OK;
out:
	jv_free(b);
	return code;
}

/* ---- behaviors ---- */

static enum nn_code be_haves(struct nn_node *n, jv req, jv *reply, char *err)
{
	char *repo = nn_migrate_repo(nn_node_home(n));
	jv h = nn_snapshot_haves(repo, err);
	free(repo);
	if (!jv_is_valid(h)) {
		jv_free(h);
		return NN_E_INTERNAL;
	}
	*reply = jv_object_set(jv_object(), jv_string("haves"), h);
	return NN_OK;
}

static enum nn_code be_receive(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv b = req_body(req);
	enum nn_code code = nn_migrate_open(n, nn_env_str(req, "from"), b, reply, err);
	jv_free(b);
	return code;
}

static enum nn_code be_chunk(struct nn_node *n, jv req, jv *reply, char *err)
{
	return nn_migrate_piece(n, req, reply, err);
}

static enum nn_code be_start(struct nn_node *n, jv req, jv *reply, char *err)
{
	static const char *const pass[] = { "restart", "healthcheck", "logs", "state_dir", "inputs",
					    "outputs", "stage_timeout", NULL };
	jv b = req_body(req), spec, start;
	const char *xid = NULL, *id = NULL;
	struct xfer *x;
	enum nn_code code;

	if (nn_json_get_str(b, "xfer", &xid, NULL) < 0 || !(x = owned(xid, nn_env_str(req, "from"), 0, err))) {
		jv_free(b);
		nn_seterr(err, "xfer: no such transfer here");
		return NN_E_BAD_BODY;
	}
	if (x->have != x->size) {
		jv_free(b);
		nn_seterr(err, "xfer: %llu of %llu bytes received", (unsigned long long)x->have,
			  (unsigned long long)x->size);
		return NN_E_BAD_BODY;
	}
	spec = jv_object_get(jv_copy(b), jv_string("spec"));
	if (jv_get_kind(spec) != JV_KIND_OBJECT || nn_json_get_str(b, "id", &id, NULL) < 0) {
		jv_free(spec);
		jv_free(b);
		nn_seterr(err, "expected the allocation's id and spec");
		return NN_E_BAD_BODY;
	}
	spec = jv_object_set(spec, jv_string("id"), jv_string(id));
	start = jv_object_set(jv_object(), jv_string("spec"), spec);
	for (int i = 0; pass[i]; i++)
		if (nn_json_has(b, pass[i]))
			start = jv_object_set(start, jv_string(pass[i]),
					      jv_object_get(jv_copy(b), jv_string(pass[i])));
	start = jv_object_set(start, jv_string("restore"),
			      jv_object_set(jv_object_set(jv_object(), jv_string("xfer"), jv_string(x->id)),
					    jv_string("commit"), jv_string(x->commit)));
	code = nn_node_invoke(n, "/alloc/start", start, NULL, reply, err);
	if (code == NN_OK)
		xfer_drop(the_mod, x, 0);	/* the shim takes the pack */
	jv_free(b);
	return code;
}

static const struct nn_behavior behaviors[] = {
	{ "/alloc/migrate/haves", be_haves, "snapshot commits this node has (migration)", 0 },
	{ "/alloc/migrate/receive", be_receive, "open a transfer of a snapshot pack", 0 },
	{ "/alloc/migrate/chunk", be_chunk, "one piece of a snapshot pack", 0 },
	{ "/alloc/migrate/start", be_start, "start a migrated allocation from its pack", 0 },
};

static void on_tick(struct nn_loop *l, void *arg)
{
	struct mmod *m = arg;
	int64_t now = nn_mono_ms();
	for (struct xfer *x = m->list, *next; x; x = next) {
		next = x->next;
		if (now - x->created > NN_MIGRATE_XFER_MS) {
			nn_warn("migrate: transfer %s not started in time: dropped", x->id);
			xfer_drop(m, x, 1);
		}
	}
}

static void on_close(struct nn_node *n, void *arg)
{
	struct mmod *m = arg;
	while (m->list)
		xfer_drop(m, m->list, 1);
	if (m->tick)
		nn_loop_remove(nn_node_loop(n), m->tick);
	if (the_mod == m)
		the_mod = NULL;
	free(m);
}

int nn_migrate_attach(struct nn_node *n, char *err)
{
	struct mmod *m;
	char e[NN_ERRLEN];
	if (the_mod)
		return nn_seterr(err, "migrate: attached twice");
	m = nn_xcalloc(1, sizeof *m);
	m->n = n;
	the_mod = m;
	nn_node_on_close(n, on_close, m);
	for (size_t i = 0; i < sizeof behaviors / sizeof *behaviors; i++)
		nn_node_behavior(n, &behaviors[i]);
	m->tick = nn_loop_timer(nn_node_loop(n), 10000, 10000, on_tick, m, e);
	if (!m->tick)
		return nn_seterr(err, "migrate: %s", e);
	return 0;
}
