/*
 * node — the daemon's core.  One thread, one epoll loop: the listening
 * control socket, one watch per client, a sweep timer for idle half-line
 * clients, and signalfd for SIGTERM/SIGINT (stop) and SIGHUP (reload).
 *
 * Each client has a capped line reader for input and a bounded output
 * buffer.  A client that reads its replies slower than it sends requests is
 * paused (its input is no longer read) until its output drains, so no
 * client can make the node buffer without bound.  Nothing a client sends
 * can stop the node from serving the others: every line gets an answer,
 * either a reply or a signed error envelope.
 */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "events.h"
#include "json.h"
#include "lines.h"
#include "log.h"
#include "sock.h"
#include "util.h"

#define MAX_BEHAVIORS 256
#define OUT_HIGH (1024 * 1024)	/* pause a client's input above this */
#define CONN_BUDGET_MS 10	/* reading one client, per wakeup */
#define BURST_MAX 256		/* answers held for one group commit */

struct conn {
	struct nn_node *node;
	int fd;
	unsigned long no;
	struct nn_watch *w;
	struct nn_lines in;
	struct nn_buf out;
	int64_t last;		/* monotonic ms of last input */
	int paused, closing;
	uint64_t bytes_in, bytes_out;
	struct conn *prev, *next;
};

struct nn_node {
	char *home, *sock_path, *cfg_path, *db_path, *lock_path;
	int lock_fd, lfd;
	struct nn_key key;
	struct nn_config cfg;
	struct nn_env_limits lim;
	struct nn_db db;
	struct nn_loop *loop;
	struct nn_replay *replay;
	struct nn_watch *lw, *sweep;
	struct conn *conns;
	unsigned long nconns, conn_seq;
	const struct nn_behavior *beh[MAX_BEHAVIORS];
	struct {
		const char *path;
		nn_behavior_text_fn *fn;
	} texts[8];			/* behaviors' hot paths */
	int ntexts;
	int nbeh;
	int64_t started_ms;
	uint64_t requests, errors, errors_by[NN_E__COUNT];
	uint64_t bytes_in, bytes_out, answers;
	struct nn_events *ev;
	struct nn_watch *evflush;
	const struct nn_origin *cur;	/* origin of the envelope being handled */
	struct metrics_hook {
		void (*fn)(struct nn_node *, struct nn_buf *, void *);
		void *arg;
		struct metrics_hook *next;
	} *metrics;
	int ready_fd;
	jv ready;		/* extra fields of the ready line */
	int stopping;
	nn_router_fn *router;
	void *router_arg;
	nn_authorize_fn *authorizer;
	void *authorizer_arg;
	struct closer {
		void (*fn)(struct nn_node *, void *);
		void *arg;
		struct closer *next;
	} *closers;
	struct follow *follows;	/* clients following /node/events */
	struct req *reqs;	/* the node's own requests waiting for answers */
	struct nn_watch *reqtimer;
	jv selfq;		/* answers to them made here, not yet handed over */
	struct nn_buf scratch;	/* the signed bytes of a scanned envelope */
	/* group commit (nn_node_hold): answers kept until the burst's commit */
	int burst;		/* depth of nn_node_burst_begin */
	struct held *held, **held_tail;
	size_t nheld;
	struct hold_hook {
		nn_commit_fn *fn;
		void *arg;
	} hooks[4];
	int nhooks;
};

/* An answer kept for the end of a burst: its line, where it goes (the
 * origin copied, its peer name too) and, for a reply, the request, so
 * that a failed commit answers it with an error instead (a request the
 * hot path read without a jv is kept as its line, parsed only then). */
struct held {
	struct nn_origin o;
	char *peer;
	jv req;			/* the request of a reply; null otherwise */
	char *reqline;		/* or the request's line */
	size_t len;
	struct held *next;
	char line[];
};

static const struct nn_behavior core_behaviors[];

const char *nn_node_did(const struct nn_node *n) { return n->key.did; }
struct nn_db *nn_node_db(struct nn_node *n) { return &n->db; }
struct nn_loop *nn_node_loop(struct nn_node *n) { return n->loop; }
const struct nn_config *nn_node_config(const struct nn_node *n) { return &n->cfg; }
const struct nn_key *nn_node_key(const struct nn_node *n) { return &n->key; }
const char *nn_node_home(const struct nn_node *n) { return n->home; }

void nn_node_set_router(struct nn_node *n, nn_router_fn *fn, void *arg)
{
	n->router = fn;
	n->router_arg = arg;
}

void nn_node_set_authorizer(struct nn_node *n, nn_authorize_fn *fn, void *arg)
{
	n->authorizer = fn;
	n->authorizer_arg = arg;
}

void nn_node_ready_field(struct nn_node *n, const char *key, jv value)
{
	n->ready = jv_object_set(n->ready, jv_string(key), value);
}

void nn_node_on_close(struct nn_node *n, void (*fn)(struct nn_node *, void *), void *arg)
{
	struct closer *c = nn_xcalloc(1, sizeof *c);
	c->fn = fn;
	c->arg = arg;
	c->next = n->closers;
	n->closers = c;
}

void nn_node_behavior(struct nn_node *n, const struct nn_behavior *b)
{
	for (int i = 0; i < n->nbeh; i++)
		if (!strcmp(n->beh[i]->path, b->path)) {
			n->beh[i] = b;
			return;
		}
	if (n->nbeh < MAX_BEHAVIORS)
		n->beh[n->nbeh++] = b;
}

void nn_node_behavior_text(struct nn_node *n, const char *path, nn_behavior_text_fn *fn)
{
	for (int i = 0; i < n->ntexts; i++)
		if (!strcmp(n->texts[i].path, path)) {
			n->texts[i].fn = fn;
			return;
		}
	if (n->ntexts < (int)(sizeof n->texts / sizeof *n->texts)) {
		n->texts[n->ntexts].path = path;
		n->texts[n->ntexts++].fn = fn;
	}
}

static nn_behavior_text_fn *find_text(struct nn_node *n, const char *path)
{
	for (int i = 0; i < n->ntexts; i++)
		if (!strcmp(n->texts[i].path, path))
			return n->texts[i].fn;
	return NULL;
}

static const struct nn_behavior *find_behavior(struct nn_node *n, const char *path)
{
	for (int i = 0; i < n->nbeh; i++)
		if (!strcmp(n->beh[i]->path, path))
			return n->beh[i];
	return NULL;
}

void nn_node_event(struct nn_node *n, const char *kind, jv body)
{
	nn_events_emit(n->ev, NN_LOG_INFO, kind, NULL, NULL, body);
}

void nn_node_emit(struct nn_node *n, enum nn_level lv, const char *kind, const char *trace, jv fields)
{
	nn_events_emit(n->ev, lv, kind, trace, NULL, fields);
}

struct nn_events *nn_node_events(struct nn_node *n)
{
	return n->ev;
}

const struct nn_origin *nn_node_origin(const struct nn_node *n)
{
	return n->cur;
}

void nn_node_metrics_hook(struct nn_node *n, void (*fn)(struct nn_node *, struct nn_buf *, void *),
			  void *arg)
{
	struct metrics_hook *h = nn_xcalloc(1, sizeof *h);
	h->fn = fn;
	h->arg = arg;
	h->next = n->metrics;
	n->metrics = h;
}

/* ---- clients ---- */

static void follows_drop(struct nn_node *n, unsigned long client);

static void conn_close(struct conn *c)
{
	struct nn_node *n = c->node;
	follows_drop(n, c->no);
	nn_loop_remove(n->loop, c->w);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	n->nconns--;
	nn_lines_release(&c->in);
	nn_buf_release(&c->out);
	free(c);
}

static void conn_events(struct conn *c)
{
	uint32_t ev = 0;
	if (!c->paused && !c->closing)
		ev |= EPOLLIN;
	if (c->out.len)
		ev |= EPOLLOUT;
	nn_loop_fd_events(c->node->loop, c->w, ev | EPOLLRDHUP);
}

/* Write what we can; returns -1 when the client is gone. */
static int conn_flush(struct conn *c)
{
	while (c->out.len) {
		ssize_t w = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w < 0)
			return -1;
		c->bytes_out += (uint64_t)w;
		c->node->bytes_out += (uint64_t)w;
		nn_buf_consume(&c->out, (size_t)w);
	}
	return 0;
}

/* fields of a message event: what the envelope is, not what it carries */
static jv msg_fields(jv env, const struct nn_origin *o)
{
	static const char *const keys[] = { "type", "id", "from", "to", "be", "re" };
	jv f = jv_object();
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		const char *v = nn_env_str(env, keys[i]);
		if (v)
			f = jv_object_set(f, jv_string(keys[i]), jv_string(v));
	}
	if (o->kind == NN_ORIGIN_CLIENT)
		f = jv_object_set(f, jv_string("client"), jv_number((double)o->client));
	else if (o->peer)
		f = jv_object_set(f, jv_string("peer"), jv_string(o->peer));
	return f;
}

/* What a message event says about an envelope; the node fills it from
 * values it already holds where it can, since it records one for every
 * envelope in and out. */
struct msgf {
	const char *be, *from, *id, *re, *to, *type, *trace;
};

static void msgf_of(struct msgf *m, jv env)
{
	m->be = nn_env_str(env, "be");
	m->from = nn_env_str(env, "from");
	m->id = nn_env_str(env, "id");
	m->re = nn_env_str(env, "re");
	m->to = nn_env_str(env, "to");
	m->type = nn_env_str(env, "type");
	m->trace = nn_env_str(env, "trace");
}

/* The fields as JSON text, straight into b, without building a jv. */
static void msg_fields_text(struct nn_buf *b, const struct msgf *m, const struct nn_origin *o)
{
	const char *const keys[] = { "be", "from", "id", "re", "to", "type" };
	const char *const vals[] = { m->be, m->from, m->id, m->re, m->to, m->type };
	int first = 1;
	nn_buf_reset(b);
	nn_buf_addc(b, '{');
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		if (!vals[i])
			continue;
		if (!first)
			nn_buf_addc(b, ',');
		nn_buf_addc(b, '"');
		nn_buf_adds(b, keys[i]);
		nn_buf_adds(b, "\":");
		nn_json_put_string(b, vals[i], strlen(vals[i]));
		first = 0;
	}
	if (o->kind == NN_ORIGIN_CLIENT)
		nn_buf_addf(b, ",\"client\":%lu", o->client);
	else if (o->peer) {
		nn_buf_adds(b, ",\"peer\":");
		nn_json_put_string(b, o->peer, strlen(o->peer));
	}
	nn_buf_addc(b, '}');
}

/* Behaviors whose messages are not recorded as msg.in/msg.out. */
static int quiet_be(const char *be)
{
	return be && !strcmp(be, "/node/events/flush");
}

static void msg_event(struct nn_node *n, const char *kind, const struct msgf *m, const char *span,
		      const struct nn_origin *o)
{
	struct nn_buf b = NN_BUF_INIT;
	if (quiet_be(m->be))
		return;
	msg_fields_text(&b, m, o);
	nn_events_emit_text(n->ev, NN_LOG_DEBUG, kind, m->trace, span, b.data, b.len);
	nn_buf_release(&b);
}

/* Hand one answer line to its origin, or keep it while the burst holds
 * answers (req: the request when the line is its reply, else null; reqline:
 * the request's line instead, when it has no jv). */
static void answer_out(struct nn_node *n, const struct nn_origin *o, jv req, const char *reqline,
		       size_t reqlen, const char *line, size_t len)
{
	struct held *h;
	if (!n->nhooks) {
		o->send(o, line, len);
		return;
	}
	h = nn_xmalloc(sizeof *h + len);
	h->o = *o;
	h->peer = o->peer ? nn_xstrdup(o->peer) : NULL;
	h->o.peer = h->peer;
	h->o.line = NULL;
	h->o.len = 0;
	h->req = jv_get_kind(req) == JV_KIND_OBJECT ? jv_copy(req) : jv_null();
	h->reqline = NULL;
	if (reqline) {
		h->reqline = nn_xmalloc(reqlen + 1);
		memcpy(h->reqline, reqline, reqlen);
		h->reqline[reqlen] = '\0';
	}
	h->len = len;
	h->next = NULL;
	memcpy(h->line, line, len);
	*n->held_tail = h;
	n->held_tail = &h->next;
	n->nheld++;
}

/* Record msg.out (when asked) with m, sign env (consumed), send it. */
static void send_signed(struct nn_node *n, jv env, const struct msgf *m, const struct nn_origin *o)
{
	char err[NN_ERRLEN];
	struct nn_buf b = NN_BUF_INIT;
	n->answers++;
	if (n->cfg.events_messages)
		/* span: the request being handled (an answer's re, else its own id) */
		msg_event(n, "msg.out", m, m->re ? m->re : m->id, o);
	if (nn_env_sign_line(env, &n->key, &b, err) < 0)
		nn_error("cannot send an answer: %s", err);
	else
		answer_out(n, o, jv_null(), NULL, 0, b.data, b.len);
	nn_buf_release(&b);
}

void nn_node_sign_send(struct nn_node *n, jv env, const struct nn_origin *o)
{
	struct msgf m;
	msgf_of(&m, env);	/* env lives until send_signed has used m */
	send_signed(n, env, &m, o);
}

void nn_node_refused(struct nn_node *n, const struct nn_origin *o, jv req,
		     enum nn_code code, const char *msg)
{
	jv f = jv_get_kind(req) == JV_KIND_OBJECT ? msg_fields(req, o) : msg_fields(jv_null(), o);
	int security = code == NN_E_UNAUTHORIZED || code == NN_E_BAD_SIGNATURE || code == NN_E_REPLAY ||
		       code == NN_E_EXPIRED || code == NN_E_BAD_TIME;
	n->errors++;
	n->errors_by[code < NN_E__COUNT ? code : NN_E_INTERNAL]++;
	f = jv_object_set(f, jv_string("code"), jv_string(nn_code_name(code)));
	f = jv_object_set(f, jv_string("message"), jv_string(msg));
	nn_events_emit(n->ev, NN_LOG_WARN, security ? "security.refused" : "msg.refused",
		       jv_get_kind(req) == JV_KIND_OBJECT ? nn_env_str(req, "trace") : NULL, NULL, f);
	if (o->kind == NN_ORIGIN_CLIENT)
		nn_warn("client %lu: %s: %s", o->client, nn_code_name(code), msg);
	else if (o->kind == NN_ORIGIN_SELF)
		nn_warn("own request: %s: %s", nn_code_name(code), msg);
	else
		nn_warn("peer %.80s: %s: %s", o->peer ? o->peer : "?", nn_code_name(code), msg);
}

void nn_node_refuse(struct nn_node *n, const struct nn_origin *o, jv req,
		    enum nn_code code, const char *msg)
{
	nn_node_refused(n, o, req, code, msg);
	nn_node_sign_send(n, nn_env_error(req, n->key.did, code, msg, n->cfg.ttl_ms), o);
}

static void send_error(struct nn_node *n, const struct nn_origin *o, jv req,
		       enum nn_code code, const char *msg)
{
	nn_node_refuse(n, o, req, code, msg);
}

int nn_node_is_owner(const struct nn_node *n, const char *from)
{
	size_t len = nn_did_len(from);
	if (len == strlen(n->key.did) && !strncmp(from, n->key.did, len))
		return 1;
	jv_array_foreach(n->cfg.owners, i, o) {
		int ok = strlen(jv_string_value(o)) == len && !strncmp(jv_string_value(o), from, len);
		jv_free(o);
		if (ok)
			return 1;
	}
	return 0;
}

/* The answer to a request verified into h: built and signed straight from
 * the fields (nn_env_answer_line), its msg.out event from the same values.
 * The body is the jv body (consumed), or, when btext is not NULL, its
 * canonical text, answering a request the hot path read from o->line
 * without a jv (kept as that line while the burst holds). */
static void send_reply(struct nn_node *n, const struct nn_env_head *h, jv req, jv body,
		       const char *btext, size_t blen, const struct nn_origin *o)
{
	char err[NN_ERRLEN], id[33];
	struct nn_buf b = NN_BUF_INIT;
	struct msgf m = { h->be, n->key.did, id, h->id, h->from, "reply", h->trace };
	int64_t now = nn_now_ms();
	int rc;
	nn_random_id(id);
	n->answers++;
	if (n->cfg.events_messages)
		msg_event(n, "msg.out", &m, h->id, o);
	if (btext) {
		struct nn_env_head a = {
			.type = "reply", .id = id, .from = n->key.did, .to = h->from ? h->from : "local",
			.be = h->be, .re = h->id, .trace = h->trace, .ts = now, .exp = now + n->cfg.ttl_ms,
		};
		rc = nn_env_line_text(&a, btext, blen, &n->key, &b, err);
	} else {
		rc = nn_env_answer_line(h, "reply", n->key.did, body, id, now, n->cfg.ttl_ms, &n->key,
					&b, err);
	}
	if (rc < 0)
		nn_error("cannot send an answer: %s", err);
	else if (btext)
		answer_out(n, o, jv_null(), o->line, o->len, b.data, b.len);
	else
		answer_out(n, o, req, NULL, 0, b.data, b.len);
	nn_buf_release(&b);
}

/*
 * Everything after verification.  env is the envelope, or an invalid jv
 * when it was read from o->line by the hot path: it is then built from the
 * scan only when a behavior or an error needs it (*parsed owns it).
 */
static jv env_of(jv env, const struct nn_jscan *j, jv *parsed)
{
	if (jv_is_valid(env))
		return env;
	if (!jv_is_valid(*parsed))
		*parsed = nn_jscan_jv(j);
	return *parsed;
}

/* j: what the hot path scanned, when env is invalid */
static void deliver_burst(struct nn_node *n, jv env, const struct nn_jscan *j,
			  const struct nn_env_head *h, const struct nn_origin *o)
{
	char err[NN_ERRLEN];
	const char *type = h->type, *from = h->from, *to = h->to, *be = h->be, *id = h->id;
	const struct nn_behavior *b;
	enum nn_code code;
	jv reply, parsed = jv_invalid();

	if (n->cfg.events_messages) {
		struct msgf m = { be, from, id, h->re, to, type, h->trace };
		msg_event(n, "msg.in", &m, id, o);
	}

	if (strcmp(type, "msg") != 0) {
		send_error(n, o, env_of(env, j, &parsed), NN_E_BAD_FIELD, "type: only msg envelopes are invoked");
		goto out;
	}
	switch (nn_replay_check(n->replay, from, id, h->exp, nn_now_ms())) {
	case 1:
		snprintf(err, sizeof err, "envelope %s from %.80s was seen before", id, from);
		send_error(n, o, env_of(env, j, &parsed), NN_E_REPLAY, err);
		goto out;
	case -1:
		send_error(n, o, env_of(env, j, &parsed), NN_E_BUSY, "replay cache is full: try again later");
		goto out;
	}
	/* "*" is a broadcast a peer passed on: it runs here like a local call */
	if (strcmp(to, "local") != 0 && strcmp(to, n->key.did) != 0 &&
	    !(o->kind == NN_ORIGIN_PEER && !strcmp(to, "*") && !strncmp(be, "/broadcast/", 11))) {
		/* a client that is not an owner sends on only what a token
		 * from an owner lets it invoke (an allocation reading the
		 * output of its deployments' allocations: /public/deploy) */
		if (o->kind == NN_ORIGIN_CLIENT && !nn_node_is_owner(n, from) &&
		    (!n->authorizer ||
		     n->authorizer(n, env_of(env, j, &parsed), o, n->authorizer_arg, err) != NN_OK)) {
			snprintf(err, sizeof err, "%.80s may not send %.80s through this node", from, be);
			send_error(n, o, env_of(env, j, &parsed), NN_E_UNAUTHORIZED, err);
			goto out;
		}
		err[0] = '\0';
		if (!n->router || n->router(n, env, h, o, n->router_arg, err) < 0) {
			if (!err[0])
				snprintf(err, sizeof err, "no route to '%.80s': this node is %s", to, n->key.did);
			send_error(n, o, env_of(env, j, &parsed), NN_E_UNAVAILABLE, err);
		}
		goto out;
	}
	/* a behavior registered as public needs no authority, as /public/… */
	b = find_behavior(n, be);
	/* the hot path of a public behavior that reads its body as text */
	nn_behavior_text_fn *text = b && b->public && j && o->line ? find_text(n, be) : NULL;
	if (!jv_is_valid(env) && text) {
		const struct nn_jscan_member *bm = nn_jscan_get(j, "body");
		struct nn_buf rb = NN_BUF_INIT;
		int took = 0;
		if (bm && bm->kind == NN_JSCAN_OBJECT) {
			err[0] = '\0';
			code = NN_OK;
			n->cur = o;
			took = text(n, h, bm->val, bm->vlen, &rb, &code, err);
			n->cur = NULL;
		}
		if (took) {
			if (code != NN_OK)
				send_error(n, o, env_of(env, j, &parsed), code,
					   err[0] ? err : nn_code_name(code));
			else
				send_reply(n, h, jv_null(), jv_invalid(), rb.data, rb.len, o);
		}
		nn_buf_release(&rb);
		if (took)
			goto out;
	}
	env = env_of(env, j, &parsed);	/* behaviors and authorizers read the jv */
	if (!(b && b->public) && !nn_node_public_path(be) && !nn_node_is_owner(n, from)) {
		err[0] = '\0';
		code = n->authorizer ? n->authorizer(n, env, o, n->authorizer_arg, err) : NN_E_UNAUTHORIZED;
		if (code != NN_OK) {
			if (!err[0])
				snprintf(err, sizeof err, "%.80s may not invoke %.80s on this node", from, be);
			send_error(n, o, env, code, err);
			goto out;
		}
	}
	if (!b) {
		snprintf(err, sizeof err, "no behavior '%.100s' on this node", be);
		send_error(n, o, env, NN_E_UNKNOWN_BEHAVIOR, err);
		goto out;
	}
	reply = jv_invalid();
	err[0] = '\0';
	n->cur = o;
	code = b->fn(n, env, &reply, err);
	n->cur = NULL;
	if (code != NN_OK) {
		jv_free(reply);
		send_error(n, o, env, code, err[0] ? err : nn_code_name(code));
		goto out;
	}
	if (jv_get_kind(reply) != JV_KIND_OBJECT) {
		jv_free(reply);
		send_error(n, o, env, NN_E_INTERNAL, "behavior returned no body");
		goto out;
	}
	nn_debug("%s %s", be, id);
	send_reply(n, h, env, reply, NULL, 0, o);
out:
	jv_free(parsed);
}

/* deliver_burst inside a burst: outside one, the envelope is a burst of
 * its own, and what it holds is committed and sent at once */
static void deliver_verified(struct nn_node *n, jv env, const struct nn_jscan *j,
			     const struct nn_env_head *h, const struct nn_origin *o)
{
	nn_node_burst_begin(n);
	deliver_burst(n, env, j, h, o);
	nn_node_burst_end(n);
}

void nn_node_deliver(struct nn_node *n, jv env, const struct nn_origin *o)
{
	char err[NN_ERRLEN];
	const char *to;
	struct nn_env_head h;
	enum nn_code code;

	n->requests++;
	/* what the node's own user hands it for another actor is verified by
	 * that actor: here only its shape and time are checked */
	to = jv_get_kind(env) == JV_KIND_OBJECT ? nn_env_str(env, "to") : NULL;
	code = nn_env_verify_head(env, &n->lim, nn_now_ms(),
				  !(o->kind == NN_ORIGIN_CLIENT && to && strcmp(to, "local") &&
				    strcmp(to, n->key.did)), &h, err);
	if (code != NN_OK) {
		/* answer with re only when the envelope carried a usable id */
		send_error(n, o, jv_get_kind(env) == JV_KIND_OBJECT ? env : jv_null(), code, err);
		return;
	}
	deliver_verified(n, env, NULL, &h, o);
}

int nn_node_deliver_scanned(struct nn_node *n, struct nn_env_scan *es, const struct nn_origin *o)
{
	const struct nn_jscan_member *t = nn_jscan_get(&es->j, "to");
	size_t dl = strlen(n->key.did);
	int local, sig;

	if (!t || t->kind != NN_JSCAN_STRING || !t->plain)
		return 0;
	local = (t->vlen == 7 && !memcmp(t->val, "\"local\"", 7)) ||
		(t->vlen == dl + 2 && !memcmp(t->val + 1, n->key.did, dl));
	/* a broadcast is gossiped as a jv: the full path */
	if (t->vlen == 3 && !memcmp(t->val, "\"*\"", 3))
		return 0;
	sig = !(o->kind == NN_ORIGIN_CLIENT && !local);
	if (!nn_env_scan_verify(es, &n->lim, nn_now_ms(), sig, &n->scratch))
		return 0;
	n->requests++;
	deliver_verified(n, jv_invalid(), &es->j, &es->h, o);
	return 1;
}

/* ---- group commit ---- */

static int hold_flush(struct nn_node *n, char *err);

void nn_node_burst_begin(struct nn_node *n)
{
	n->burst++;
}

void nn_node_hold(struct nn_node *n, nn_commit_fn *commit, void *arg)
{
	for (int i = 0; i < n->nhooks; i++)
		if (n->hooks[i].fn == commit && n->hooks[i].arg == arg)
			return;
	if (n->nhooks == (int)(sizeof n->hooks / sizeof *n->hooks))
		hold_flush(n, NULL);	/* no room: what is held so far goes now */
	n->hooks[n->nhooks].fn = commit;
	n->hooks[n->nhooks++].arg = arg;
}

/* Commit what the burst holds, then send its answers (or, when a commit
 * failed, an error for each held reply).  The burst stays open.  -1 + err
 * (may be NULL) when a commit failed. */
static int hold_flush(struct nn_node *n, char *errout)
{
	char err[NN_ERRLEN] = "";
	int failed = 0;
	struct held *h;
	/* a commit may hold again (it must not, but then it commits later) */
	while (n->nhooks) {
		struct hold_hook hooks[4];
		int k = n->nhooks;
		memcpy(hooks, n->hooks, sizeof hooks);
		n->nhooks = 0;
		for (int i = 0; i < k; i++)
			if (hooks[i].fn(n, hooks[i].arg, err) < 0 && !failed) {
				failed = 1;
				nn_error("group commit failed: %s", err);
			}
	}
	while ((h = n->held)) {
		n->held = h->next;
		if (failed && h->reqline) {
			jv_free(h->req);
			h->req = nn_json_parse(h->reqline, strlen(h->reqline), NULL);
		}
		if (!failed || jv_get_kind(h->req) != JV_KIND_OBJECT)
			h->o.send(&h->o, h->line, h->len);
		else
			nn_node_refuse(n, &h->o, h->req, NN_E_INTERNAL, err[0] ? err : "commit failed");
		jv_free(h->req);
		free(h->reqline);
		free(h->peer);
		free(h);
	}
	n->held_tail = &n->held;
	n->nheld = 0;
	if (failed && errout)
		nn_seterr(errout, "%s", err);
	return failed ? -1 : 0;
}

void nn_node_burst_end(struct nn_node *n)
{
	if (n->burst > 0 && --n->burst == 0)
		hold_flush(n, NULL);
}

/* ---- the node's own requests ---- */

struct req {
	char id[NN_ID_MAX];
	char to[NN_DID_MAX];
	int multi;
	int64_t deadline;	/* monotonic ms */
	nn_answer_fn *cb;
	void *arg;
	struct req *next;
};

static struct req *req_take(struct nn_node *n, const char *id, int unlink)
{
	for (struct req **pp = &n->reqs; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, id)) {
			struct req *r = *pp;
			if (unlink)
				*pp = r->next;
			return r;
		}
	return NULL;
}

static void req_arm(struct nn_node *n)
{
	int64_t first = INT64_MAX, now = nn_mono_ms();
	if (!n->reqtimer)
		return;
	for (struct req *r = n->reqs; r; r = r->next)
		if (r->deadline < first)
			first = r->deadline;
	if (jv_array_length(jv_copy(n->selfq)) > 0)
		first = now;
	if (first == INT64_MAX)		/* nothing waits: off (0 would fire now, again and again) */
		nn_loop_timer_disarm(n->loop, n->reqtimer);
	else
		nn_loop_timer_arm(n->loop, n->reqtimer, first > now ? first - now : 1, 0);
}

/* The origin of the node's own requests: answers made on this node (a
 * local behavior's reply, a refusal before routing) wait in selfq until
 * the loop hands them over, so no callback runs inside nn_node_request. */
static void self_send(const struct nn_origin *o, const char *line, size_t len)
{
	struct nn_node *n = o->arg;
	char err[NN_ERRLEN];
	jv v = nn_json_parse(line, len && line[len - 1] == '\n' ? len - 1 : len, err);
	if (!jv_is_valid(v)) {
		nn_error("own request: unreadable answer: %s", err);
		jv_free(v);
		return;
	}
	n->selfq = jv_array_append(n->selfq, v);
	req_arm(n);
}

int nn_node_answer_in(struct nn_node *n, jv env)
{
	char err[NN_ERRLEN];
	const char *re, *from, *type;
	struct req *r;
	nn_answer_fn *cb;
	void *arg;

	if (jv_get_kind(env) != JV_KIND_OBJECT || !(re = nn_env_str(env, "re")) ||
	    !(r = req_take(n, re, 0)))
		return -1;
	if (nn_env_verify(env, &n->lim, nn_now_ms(), err) != NN_OK) {
		nn_warn("answer to own request %s refused: %s", re, err);
		return -1;
	}
	from = nn_env_str(env, "from");
	type = nn_env_str(env, "type");
	if (strcmp(type, "reply") != 0 && strcmp(type, "error") != 0)
		return -1;
	/* a unicast is answered by the node asked, or refused by this one */
	if (!r->multi && strcmp(from, r->to) != 0 && strcmp(from, n->key.did) != 0) {
		nn_warn("answer to own request %s from %.80s, not from %.80s: ignored", re, from, r->to);
		return -1;
	}
	cb = r->cb;
	arg = r->arg;
	if (!r->multi) {
		req_take(n, re, 1);
		free(r);
	}
	cb(n, env, arg);	/* may cancel or make requests: r is not touched again */
	return 0;
}

static void on_reqtimer(struct nn_loop *l, void *arg)
{
	struct nn_node *n = arg;
	jv q = n->selfq;
	int64_t now;
	(void)l;
	n->selfq = jv_array();
	jv_array_foreach(q, i, v) {
		nn_node_answer_in(n, v);
		jv_free(v);
	}
	jv_free(q);
	now = nn_mono_ms();
	for (;;) {
		struct req *r = n->reqs;
		while (r && r->deadline > now)
			r = r->next;
		if (!r)
			break;
		req_take(n, r->id, 1);
		{
			nn_answer_fn *cb = r->cb;
			void *a = r->arg;
			jv why = r->multi ? jv_string("window closed")
					  : jv_string_fmt("no answer from %s within the time allowed", r->to);
			jv inv = jv_invalid_with_msg(why);
			free(r);
			cb(n, inv, a);	/* borrowed by cb, as every answer is */
			jv_free(inv);
		}
	}
	req_arm(n);
}

int nn_node_public_path(const char *be)
{
	return !strncmp(be, "/public/", 8) || !strncmp(be, "/broadcast/public/", 18);
}

int nn_node_request(struct nn_node *n, const char *to, const char *be, jv body, const char *trace,
		    int64_t timeout_ms, nn_answer_fn *cb, void *arg, char *id, char *err)
{
	return nn_node_request_cap(n, to, be, body, jv_null(), trace, timeout_ms, cb, arg, id, err);
}

enum nn_code nn_node_invoke(struct nn_node *n, const char *be, jv body, const char *trace,
			    jv *reply, char *err)
{
	const struct nn_behavior *b = find_behavior(n, be);
	const struct nn_origin *was = n->cur;
	struct nn_origin o = { NN_ORIGIN_SELF, 0, NULL, self_send, n, NULL, 0 };
	enum nn_code code;
	jv env;

	*reply = jv_invalid();
	if (!b) {
		jv_free(body);
		nn_seterr(err, "no behavior '%.100s' on this node", be);
		return NN_E_UNKNOWN_BEHAVIOR;
	}
	env = nn_env_new("msg", n->key.did, n->key.did, be, body, n->cfg.ttl_ms);
	if (trace && *trace)
		env = jv_object_set(env, jv_string("trace"), jv_string(trace));
	err[0] = '\0';
	n->cur = &o;
	code = b->fn(n, env, reply, err);
	n->cur = was;
	jv_free(env);
	/* the reply goes to the caller now: what the behavior holds is
	 * committed first */
	if (n->nhooks && hold_flush(n, err) < 0 && code == NN_OK)
		code = NN_E_INTERNAL;
	if (code == NN_OK && jv_get_kind(*reply) != JV_KIND_OBJECT) {
		jv_free(*reply);
		*reply = jv_invalid();
		nn_seterr(err, "behavior returned no body");
		return NN_E_INTERNAL;
	}
	if (code != NN_OK) {
		jv_free(*reply);
		*reply = jv_invalid();
		if (!err[0])
			nn_seterr(err, "%s", nn_code_name(code));
	}
	return code;
}

int nn_node_request_cap(struct nn_node *n, const char *to, const char *be, jv body, jv cap,
			const char *trace, int64_t timeout_ms, nn_answer_fn *cb, void *arg, char *id,
			char *err)
{
	struct nn_origin o = { NN_ORIGIN_SELF, 0, NULL, self_send, n, NULL, 0 };
	int64_t ttl = timeout_ms > n->cfg.ttl_ms ? timeout_ms : n->cfg.ttl_ms;
	struct req *r;
	jv env;

	if (!to || !be || !cb || timeout_ms <= 0 || strlen(to) >= NN_DID_MAX) {
		jv_free(body);
		jv_free(cap);
		return nn_seterr(err, "a request needs a recipient, a behavior, a callback and a time");
	}
	if (!strcmp(to, "*") && strncmp(be, "/broadcast/", 11) != 0) {
		jv_free(body);
		jv_free(cap);
		return nn_seterr(err, "only /broadcast/ behaviors go to every node, not '%.80s'", be);
	}
	env = nn_env_new("msg", n->key.did, to, be, body, ttl);
	if (trace && *trace)
		env = jv_object_set(env, jv_string("trace"), jv_string(trace));
	if (jv_get_kind(cap) == JV_KIND_ARRAY && jv_array_length(jv_copy(cap)) > 0)
		env = jv_object_set(env, jv_string("cap"), cap);
	else
		jv_free(cap);
	env = nn_env_sign(env, &n->key, err);
	if (!jv_is_valid(env)) {
		jv_free(env);
		return -1;
	}
	r = nn_xcalloc(1, sizeof *r);
	snprintf(r->id, sizeof r->id, "%s", nn_env_str(env, "id"));
	snprintf(r->to, sizeof r->to, "%s", !strcmp(to, "local") ? n->key.did : to);
	r->multi = !strcmp(to, "*");
	r->deadline = nn_mono_ms() + timeout_ms;
	r->cb = cb;
	r->arg = arg;
	r->next = n->reqs;
	n->reqs = r;
	if (id)
		snprintf(id, NN_ID_MAX, "%s", r->id);
	/* the same path as a client's envelope: here, or routed to the peer */
	nn_node_deliver(n, env, &o);
	jv_free(env);
	req_arm(n);
	return 0;
}

void nn_node_request_cancel(struct nn_node *n, const char *id)
{
	free(req_take(n, id, 1));
	req_arm(n);
}

/* The control socket's origin: answers go to the client's output buffer. */
static void conn_send(const struct nn_origin *o, const char *line, size_t len)
{
	struct conn *c = o->arg;
	nn_buf_add(&c->out, line, len);
}

static struct conn *conn_find(struct nn_node *n, unsigned long no)
{
	for (struct conn *c = n->conns; c; c = c->next)
		if (c->no == no)
			return c;
	return NULL;
}

int nn_node_client_send(struct nn_node *n, unsigned long client, const char *line, size_t len)
{
	struct conn *c = conn_find(n, client);
	if (!c || c->closing)
		return -1;
	if (c->out.len + len > (size_t)n->cfg.max_pending)
		return -1;	/* a client that does not read: drop, do not grow */
	nn_buf_add(&c->out, line, len);
	/* written when the loop turns (EPOLLOUT), with every other line
	 * queued for c meanwhile: one send for a batch of answers; closing
	 * happens there too, never under a caller that may hold c */
	conn_events(c);
	return 0;
}

static void handle(struct conn *c, jv env, const char *line, size_t len)
{
	struct nn_origin o = { NN_ORIGIN_CLIENT, c->no, NULL, conn_send, c, line, len };
	nn_node_deliver(c->node, env, &o);
}

static int deliver_scanned(struct conn *c, struct nn_env_scan *es, const char *line, size_t len)
{
	struct nn_origin o = { NN_ORIGIN_CLIENT, c->no, NULL, conn_send, c, line, len };
	return nn_node_deliver_scanned(c->node, es, &o);
}

static void conn_error(struct conn *c, enum nn_code code, const char *msg)
{
	struct nn_origin o = { NN_ORIGIN_CLIENT, c->no, NULL, conn_send, c, NULL, 0 };
	send_error(c->node, &o, jv_null(), code, msg);
}

/* Answer every complete line buffered, unless output is backed up.  A
 * line the scanner understands takes the hot path (nn_node_deliver_scanned),
 * any other the full one; both decide alike. */
static void conn_process(struct conn *c)
{
	char err[NN_ERRLEN];
	const char *line;
	size_t len;
	int code;
	jv v;
	/* the lines read together are one burst (group commit, at most
	 * BURST_MAX answers held) */
	nn_node_burst_begin(c->node);
	while (!c->closing && c->out.len < OUT_HIGH) {
		int r = nn_jsonl_next_text(&c->in, &line, &len, &code, err);
		struct nn_env_scan es;
		if (r == NN_JSONL_NONE)
			break;
		if (r == NN_JSONL_ERROR) {
			conn_error(c, code, err);
			continue;
		}
		if (nn_env_scan(line, len, &es) < 0 || !deliver_scanned(c, &es, line, len)) {
			v = nn_jsonl_parse(&c->in, line, len, &code, err);
			if (!jv_is_valid(v)) {
				conn_error(c, code, err);
				continue;
			}
			handle(c, v, line, len);
			jv_free(v);
		}
		if (c->node->nheld >= BURST_MAX) {
			nn_node_burst_end(c->node);
			nn_node_burst_begin(c->node);
		}
		/* hand answers over as they are made, so the client can work on
		 * them while the next lines are handled */
		if (c->out.len >= 8192 && conn_flush(c) < 0)
			c->closing = 1;
	}
	nn_node_burst_end(c->node);
	c->paused = c->out.len >= OUT_HIGH;
}

static void on_conn(struct nn_loop *l, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;
	int eof = 0;

	if (events & EPOLLOUT) {
		if (conn_flush(c) < 0) {
			conn_close(c);
			return;
		}
		if (c->paused && c->out.len < OUT_HIGH) {
			c->paused = 0;
			conn_process(c);
		}
	}
	if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->paused) {
		/* a few reads per wakeup, within a time budget: a client that
		 * streams as fast as it can must not hold the loop (and with it
		 * the event flush, the swarm's probes and other clients) for
		 * the seconds that 16 full reads take on a busy machine */
		int64_t t0 = nn_mono_ms();
		for (int i = 0; i < 16 && !c->paused && nn_mono_ms() - t0 < CONN_BUDGET_MS; i++) {
			ssize_t r = nn_lines_read_fd(&c->in, fd);
			if (r == 0) {
				eof = 1;
				break;
			}
			if (r < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					eof = 1;
				break;
			}
			c->last = nn_mono_ms();
			c->bytes_in += (uint64_t)r;
			c->node->bytes_in += (uint64_t)r;
			conn_process(c);
		}
	}
	if (conn_flush(c) < 0 || (c->out.len == 0 && (eof || c->closing))) {
		conn_close(c);
		return;
	}
	if (eof && !c->closing) {
		/* peer half-closed: answer what is buffered, then go */
		conn_process(c);
		c->closing = 1;
	}
	conn_events(c);
}

static void on_accept(struct nn_loop *l, int lfd, uint32_t events, void *arg)
{
	struct nn_node *n = arg;
	char err[NN_ERRLEN];
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		uid_t uid;
		struct conn *c;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				nn_warn("accept: %s", strerror(errno));
			return;
		}
		c = nn_xcalloc(1, sizeof *c);
		c->node = n;
		c->fd = fd;
		c->no = ++n->conn_seq;
		c->last = nn_mono_ms();
		nn_lines_init(&c->in, (size_t)n->cfg.max_line);
		nn_buf_init(&c->out, 0);
		c->w = nn_loop_fd(l, fd, EPOLLIN | EPOLLRDHUP, on_conn, c, err);
		if (!c->w) {
			nn_error("client: %s", err);
			close(fd);
			nn_lines_release(&c->in);
			free(c);
			continue;
		}
		c->next = n->conns;
		if (n->conns)
			n->conns->prev = c;
		n->conns = c;
		n->nconns++;
		if (nn_sock_peer(fd, &uid, NULL) < 0 || uid != geteuid()) {
			snprintf(err, sizeof err, "peer uid %ld is not the node's user (uid %ld)",
				 (long)uid, (long)geteuid());
			conn_error(c, NN_E_UNAUTHORIZED, err);
			c->closing = 1;
		} else if (n->nconns > (unsigned long)n->cfg.max_clients) {
			conn_error(c, NN_E_BUSY, "too many clients: try again later");
			c->closing = 1;
		}
		if (c->closing) {
			conn_flush(c);
			conn_close(c);
		}
	}
}

/* Drop clients that have held half a line longer than client_timeout_ms. */
static void on_sweep(struct nn_loop *l, void *arg)
{
	struct nn_node *n = arg;
	int64_t now = nn_mono_ms();
	struct conn *c = n->conns, *next;
	for (; c; c = next) {
		next = c->next;
		if (nn_lines_pending(&c->in) > 0 && now - c->last > n->cfg.client_timeout_ms) {
			nn_warn("client %lu: dropped after %lld ms with an unfinished line",
				(unsigned long)c->no, (long long)(now - c->last));
			conn_close(c);
		}
	}
}

/* Write queued events: one transaction per tick, never per event. */
static void on_evflush(struct nn_loop *l, void *arg)
{
	struct nn_node *n = arg;
	char err[NN_ERRLEN];
	if (nn_events_queued(n->ev) && nn_events_flush(n->ev, err) < 0)
		nn_error("%s", err);
}

/* ---- signals ---- */

static void on_stop(struct nn_loop *l, int signo, void *arg)
{
	struct nn_node *n = arg;
	nn_info("%s: stopping", strsignal(signo));
	n->stopping = 1;
	nn_loop_stop(l);
}

static void on_hup(struct nn_loop *l, int signo, void *arg)
{
	struct nn_node *n = arg;
	struct nn_config c;
	char err[NN_ERRLEN];
	nn_config_init(&c);
	if (nn_config_load(&c, n->cfg_path, err) < 0) {
		nn_error("reload refused, keeping the running configuration: %s", err);
		nn_config_release(&c);
		return;
	}
	nn_config_release(&n->cfg);
	n->cfg = c;
	nn_config_limits(&n->cfg, &n->lim);
	nn_log_set_level(n->cfg.log_level);
	for (struct conn *k = n->conns; k; k = k->next)
		k->in.max = (size_t)n->cfg.max_line;
	nn_info("configuration reloaded from %s", n->cfg_path);
	nn_node_event(n, "node.reload", jv_object());
}

/* ---- core behaviors ---- */

static enum nn_code be_info(struct nn_node *n, jv req, jv *reply, char *err)
{
	int64_t now = nn_now_ms();
	jv b = jv_object();
	b = jv_object_set(b, jv_string("did"), jv_string(n->key.did));
	b = jv_object_set(b, jv_string("version"), jv_string(NN_VERSION));
	b = jv_object_set(b, jv_string("pid"), jv_number(getpid()));
	b = jv_object_set(b, jv_string("home"), jv_string(n->home));
	b = jv_object_set(b, jv_string("started"), jv_number((double)n->started_ms));
	b = jv_object_set(b, jv_string("uptime_ms"), jv_number((double)(now - n->started_ms)));
	b = jv_object_set(b, jv_string("clients"), jv_number((double)n->nconns));
	b = jv_object_set(b, jv_string("requests"), jv_number((double)n->requests));
	b = jv_object_set(b, jv_string("errors"), jv_number((double)n->errors));
	b = jv_object_set(b, jv_string("db_version"), jv_number(n->db.version));
	b = jv_object_set(b, jv_string("max_line_bytes"), jv_number((double)n->cfg.max_line));
	*reply = b;
	return NN_OK;
}

static enum nn_code be_ping(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv b = jv_object();
	b = jv_object_set(b, jv_string("pong"), jv_true());
	b = jv_object_set(b, jv_string("ts"), jv_number((double)nn_now_ms()));
	b = jv_object_set(b, jv_string("echo"), jv_object_get(jv_copy(req), jv_string("body")));
	*reply = b;
	return NN_OK;
}

static enum nn_code be_behaviors(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv a = jv_array();
	for (int i = 0; i < n->nbeh; i++) {
		jv o = jv_object();
		o = jv_object_set(o, jv_string("be"), jv_string(n->beh[i]->path));
		o = jv_object_set(o, jv_string("about"), jv_string(n->beh[i]->about));
		o = jv_object_set(o, jv_string("public"), n->beh[i]->public ? jv_true() : jv_false());
		a = jv_array_append(a, o);
	}
	*reply = jv_object_set(jv_object(), jv_string("behaviors"), a);
	return NN_OK;
}

/* A follower of /node/events: pushes matching events to one client. */
struct follow {
	struct nn_node *n;
	unsigned long client;
	int id;			/* nn_events_follow's */
	struct follow *next;
	char to[NN_DID_MAX + 64];
	struct nn_events_filter f;
	char kind[64], trace[65];
};

/* A client closed: its follows end with it. */
static void follows_drop(struct nn_node *n, unsigned long client)
{
	for (struct follow **pp = &n->follows; *pp;) {
		struct follow *fw = *pp;
		if (fw->client != client) {
			pp = &fw->next;
			continue;
		}
		*pp = fw->next;
		nn_events_unfollow(n->ev, fw->id);
		free(fw);
	}
}

static int push_event(void *arg, jv event)
{
	struct follow *fw = arg;
	struct nn_node *n = fw->n;
	char err[NN_ERRLEN];
	struct nn_buf b = NN_BUF_INIT;
	int r;
	jv env;

	if (!nn_events_match(&fw->f, event))
		return 0;
	env = nn_env_new("event", n->key.did, fw->to, "/node/events", jv_copy(event), n->cfg.ttl_ms);
	if (nn_env_sign_line(env, &n->key, &b, err) < 0) {
		nn_buf_release(&b);
		return 0;
	}
	r = nn_node_client_send(n, fw->client, b.data, b.len);
	nn_buf_release(&b);
	if (r < 0 && !conn_find(n, fw->client)) {
		/* the client is gone: stop following */
		for (struct follow **pp = &n->follows; *pp; pp = &(*pp)->next)
			if (*pp == fw) {
				*pp = fw->next;
				break;
			}
		free(fw);
		return -1;
	}
	return 0;
}

static int collect_event(void *arg, jv event)
{
	jv *a = arg;
	*a = jv_array_append(*a, jv_copy(event));
	return 0;
}

/* body: {"after":SEQ,"since":MS,"kind":K,"level":L,"trace":T,"limit":N,"follow":BOOL} */
static enum nn_code be_events(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	struct nn_events_filter f = { 0, 0, NULL, NN_LOG_DEBUG, NULL, 1000 };
	const char *kind = NULL, *level = NULL, *trace = NULL;
	int64_t after = 0, since = 0, limit = 1000;
	jv follow = jv_object_get(jv_copy(body), jv_string("follow"));
	enum nn_code rc = NN_OK;
	char e[NN_ERRLEN];

	if ((nn_json_has(body, "after") && nn_json_get_int(body, "after", &after, e) < 0) ||
	    (nn_json_has(body, "since") && nn_json_get_int(body, "since", &since, e) < 0) ||
	    (nn_json_has(body, "limit") && nn_json_get_int(body, "limit", &limit, e) < 0) ||
	    (nn_json_has(body, "kind") && nn_json_get_str(body, "kind", &kind, e) < 0) ||
	    (nn_json_has(body, "level") && nn_json_get_str(body, "level", &level, e) < 0) ||
	    (nn_json_has(body, "trace") && nn_json_get_str(body, "trace", &trace, e) < 0)) {
		snprintf(err, NN_ERRLEN, "%s", e);
		rc = NN_E_BAD_BODY;
		goto out;
	}
	if (after < 0 || since < 0 || limit < 1 || limit > 10000 ||
	    (level && nn_log_parse_level(level) < 0) || (kind && strlen(kind) >= 64) ||
	    (trace && strlen(trace) > 64)) {
		snprintf(err, NN_ERRLEN, "after, since: >= 0; limit: 1 to 10000; level: error, warn, info or debug");
		rc = NN_E_BAD_BODY;
		goto out;
	}
	f.after_seq = (uint64_t)after;
	f.since_ms = since;
	f.kind = kind;
	f.level = level ? nn_log_parse_level(level) : NN_LOG_DEBUG;
	f.trace = trace;
	f.limit = limit;
	if (jv_get_kind(follow) == JV_KIND_TRUE) {
		const struct nn_origin *o = nn_node_origin(n);
		struct follow *fw;
		struct nn_events_stats st;
		if (!o || o->kind != NN_ORIGIN_CLIENT) {
			snprintf(err, NN_ERRLEN, "follow: only over the control socket");
			rc = NN_E_BAD_BODY;
			goto out;
		}
		fw = nn_xcalloc(1, sizeof *fw);
		fw->n = n;
		fw->client = o->client;
		snprintf(fw->to, sizeof fw->to, "%s", nn_env_str(req, "from"));
		fw->f = f;
		if (kind) {
			snprintf(fw->kind, sizeof fw->kind, "%s", kind);
			fw->f.kind = fw->kind;
		}
		if (trace) {
			snprintf(fw->trace, sizeof fw->trace, "%s", trace);
			fw->f.trace = fw->trace;
		}
		/* the store then holds every event before next_seq, so a reader
		 * of the store plus this stream sees each event once */
		if (nn_events_flush(n->ev, e) < 0)
			nn_warn("%s", e);
		fw->id = nn_events_follow(n->ev, push_event, fw);
		fw->next = n->follows;
		n->follows = fw;
		nn_events_stats(n->ev, &st);
		*reply = jv_object_set(jv_object(), jv_string("following"), jv_true());
		*reply = jv_object_set(*reply, jv_string("next_seq"), jv_number((double)st.next_seq));
		goto out;
	}
	if (nn_events_flush(n->ev, e) < 0) {
		snprintf(err, NN_ERRLEN, "%s", e);
		rc = NN_E_INTERNAL;
		goto out;
	}
	*reply = jv_array();
	if (nn_events_query(&n->db, n->key.did, &f, collect_event, reply, e) < 0) {
		jv_free(*reply);
		*reply = jv_invalid();
		snprintf(err, NN_ERRLEN, "%s", e);
		rc = NN_E_INTERNAL;
		goto out;
	}
	*reply = jv_object_set(jv_object(), jv_string("events"), *reply);
out:
	jv_free(follow);
	jv_free(body);
	return rc;
}

/* The store then holds every event recorded before this request, for a
 * reader of the store (nunet-node events).  Not itself recorded (see
 * quiet_be): reading the events does not add to them. */
static enum nn_code be_events_flush(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct nn_events_stats st;
	(void)req;
	if (nn_events_flush(n->ev, err) < 0)
		return NN_E_INTERNAL;
	nn_events_stats(n->ev, &st);
	*reply = jv_object_set(jv_object(), jv_string("next_seq"), jv_number((double)st.next_seq));
	return NN_OK;
}

static void metric(struct nn_buf *b, const char *name, const char *type, const char *help, double v)
{
	nn_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

void nn_node_metrics_text(struct nn_node *n, struct nn_buf *out)
{
	struct nn_buf b = NN_BUF_INIT;
	struct nn_events_stats st;
	size_t queued = 0;

	for (struct conn *c = n->conns; c; c = c->next)
		queued += c->out.len;
	nn_events_stats(n->ev, &st);
	metric(&b, "nunet_uptime_seconds", "gauge", "Seconds since the node started.",
	       (nn_now_ms() - n->started_ms) / 1000.0);
	metric(&b, "nunet_messages_received_total", "counter", "Envelopes received by the node.",
	       (double)n->requests);
	metric(&b, "nunet_messages_sent_total", "counter", "Envelopes the node signed and sent.",
	       (double)n->answers);
	nn_buf_adds(&b, "# HELP nunet_errors_total Envelopes refused, by error code.\n"
			"# TYPE nunet_errors_total counter\n");
	for (int i = 1; i < NN_E__COUNT; i++)
		nn_buf_addf(&b, "nunet_errors_total{code=\"%s\"} %llu\n", nn_code_name(i),
			    (unsigned long long)n->errors_by[i]);
	metric(&b, "nunet_clients", "gauge", "Clients connected to the control socket.", (double)n->nconns);
	metric(&b, "nunet_control_received_bytes_total", "counter", "Bytes read from control clients.",
	       (double)n->bytes_in);
	metric(&b, "nunet_control_sent_bytes_total", "counter", "Bytes written to control clients.",
	       (double)n->bytes_out);
	metric(&b, "nunet_control_queued_bytes", "gauge", "Answers waiting to be written to clients.",
	       (double)queued);
	metric(&b, "nunet_replay_cache_entries", "gauge", "Envelopes remembered against replay.",
	       (double)nn_replay_size(n->replay));
	metric(&b, "nunet_events_emitted_total", "counter", "Events recorded.", (double)st.emitted);
	metric(&b, "nunet_events_stored_total", "counter", "Events written to the store.", (double)st.stored);
	metric(&b, "nunet_events_expired_total", "counter", "Events removed by retention.", (double)st.expired);
	metric(&b, "nunet_events_queued", "gauge", "Events waiting to be written.",
	       (double)nn_events_queued(n->ev));
	metric(&b, "nunet_events_failed_flushes_total", "counter", "Failed writes of events to the store.",
	       (double)st.failed_flushes);
	for (struct metrics_hook *h = n->metrics; h; h = h->next)
		h->fn(n, &b, h->arg);
	nn_buf_add(out, b.data, b.len);
	nn_buf_release(&b);
}

static enum nn_code be_metrics(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	nn_node_metrics_text(n, &b);
	*reply = jv_object_set(jv_object(), jv_string("text"), jv_string_sized(b.data ? b.data : "", (int)b.len));
	nn_buf_release(&b);
	return NN_OK;
}

static const struct nn_behavior core_behaviors[] = {
	{ "/node/events", be_events, "query the node's events, or follow them live", 0 },
	{ "/node/events/flush", be_events_flush, "store the events held in memory now", 0 },
	{ "/node/metrics", be_metrics, "the node's metrics in the Prometheus text format", 0 },
	{ "/node/info", be_info, "who this node is and how it is doing", 0 },
	{ "/node/ping", be_ping, "answer at once, echoing the body", 0 },
	{ "/node/behaviors", be_behaviors, "list the behaviors this node answers", 0 },
	{ "/public/ping", be_ping, "answer at once, to anyone", 1 },
};

/* ---- life cycle ---- */

struct nn_node *nn_node_open(const struct nn_node_opts *o, int *exit_code, char *err)
{
	struct nn_node *n = nn_xcalloc(1, sizeof *n);
	char e[NN_ERRLEN];
	char *keypath;
	struct stat st;

	n->lock_fd = n->lfd = -1;
	n->ready_fd = o->ready_fd;
	n->ready = jv_object();
	n->selfq = jv_array();
	n->held_tail = &n->held;
	nn_config_init(&n->cfg);
	n->home = nn_home(o->home, e);
	if (!n->home) {
		*exit_code = NN_EX_CONFIG;
		nn_seterr(err, "%s", e);
		goto fail;
	}
	n->sock_path = nn_home_file(n->home, "node.sock");
	n->cfg_path = nn_home_file(n->home, "config.json");
	n->db_path = nn_home_file(n->home, "node.db");
	n->lock_path = nn_home_file(n->home, "node.lock");
	if (stat(n->home, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*exit_code = NN_EX_CONFIG;
		nn_seterr(err, "no node at '%s': run 'nunet-node init' first", n->home);
		goto fail;
	}
	keypath = nn_home_file(n->home, "key");
	if (nn_key_load(&n->key, keypath, o->passphrase, e) < 0) {
		free(keypath);
		*exit_code = NN_EX_CONFIG;
		nn_seterr(err, "%s", e);
		goto fail;
	}
	free(keypath);
	if (nn_config_load(&n->cfg, n->cfg_path, e) < 0) {
		*exit_code = NN_EX_CONFIG;
		nn_seterr(err, "%s", e);
		goto fail;
	}
	nn_config_limits(&n->cfg, &n->lim);
	nn_log_set_level(n->cfg.log_level);

	n->lock_fd = open(n->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (n->lock_fd < 0) {
		*exit_code = NN_EX_IOERR;
		nn_seterr(err, "cannot open '%s': %s", n->lock_path, strerror(errno));
		goto fail;
	}
	if (flock(n->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		*exit_code = NN_EX_UNAVAILABLE;
		nn_seterr(err, "a node is already running in '%s'", n->home);
		close(n->lock_fd);
		n->lock_fd = -1;
		goto fail;
	}
	if (nn_db_open(&n->db, n->db_path, nn_node_schema, e) < 0) {
		*exit_code = NN_EX_IOERR;
		nn_seterr(err, "%s", e);
		goto fail;
	}
	n->loop = nn_loop_new(e);
	if (!n->loop) {
		*exit_code = NN_EX_SOFTWARE;
		nn_seterr(err, "%s", e);
		goto fail;
	}
	unlink(n->sock_path);	/* we hold the lock: any socket here is stale */
	n->lfd = nn_sock_listen(n->sock_path, 0600, e);
	if (n->lfd < 0) {
		*exit_code = NN_EX_IOERR;
		nn_seterr(err, "%s", e);
		goto fail;
	}
	n->replay = nn_replay_new((size_t)n->cfg.replay_max);
	{
		struct nn_events_opts eo = NN_EVENTS_OPTS_DEFAULT;
		eo.max_rows = n->cfg.events_max_rows;
		eo.max_age_ms = n->cfg.events_max_age_ms;
		if (!(n->ev = nn_events_open(&n->db, n->key.did, &eo, e))) {
			*exit_code = NN_EX_IOERR;
			nn_seterr(err, "%s", e);
			goto fail;
		}
	}
	if (!(n->lw = nn_loop_fd(n->loop, n->lfd, EPOLLIN, on_accept, n, e)) ||
	    !(n->sweep = nn_loop_timer(n->loop, 250, 250, on_sweep, n, e)) ||
	    !(n->evflush = nn_loop_timer(n->loop, 100, 100, on_evflush, n, e)) ||
	    !(n->reqtimer = nn_loop_timer(n->loop, 0, 0, on_reqtimer, n, e)) ||
	    nn_loop_signal(n->loop, SIGTERM, on_stop, n, e) < 0 ||
	    nn_loop_signal(n->loop, SIGINT, on_stop, n, e) < 0 ||
	    nn_loop_signal(n->loop, SIGHUP, on_hup, n, e) < 0) {
		*exit_code = NN_EX_SOFTWARE;
		nn_seterr(err, "%s", e);
		goto fail;
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof core_behaviors / sizeof *core_behaviors; i++)
		nn_node_behavior(n, &core_behaviors[i]);
	n->started_ms = nn_now_ms();
	return n;
fail:
	nn_node_close(n);
	return NULL;
}

int nn_node_run(struct nn_node *n)
{
	jv ev = jv_object();
	ev = jv_object_set(ev, jv_string("did"), jv_string(n->key.did));
	ev = jv_object_set(ev, jv_string("pid"), jv_number(getpid()));
	nn_node_event(n, "node.start", ev);
	nn_info("serving %s as %s", n->sock_path, n->key.did);
	if (n->ready_fd >= 0) {
		char *line = nn_xasprintf("{\"ready\":true,\"did\":\"%s\",\"sock\":\"%s\",\"pid\":%ld",
					  n->key.did, n->sock_path, (long)getpid());
		struct nn_buf b = NN_BUF_INIT;
		nn_buf_adds(&b, line);
		jv_object_foreach(n->ready, k, v) {
			char *kt = nn_json_dump(k), *vt = nn_json_dump(v);
			nn_buf_addf(&b, ",%s:%s", kt, vt);
			free(kt);
			free(vt);
			jv_free(k);
			jv_free(v);
		}
		nn_buf_adds(&b, "}\n");
		if (nn_write_all(n->ready_fd, b.data, b.len) < 0)
			nn_warn("cannot write the ready line: %s", strerror(errno));
		nn_buf_release(&b);
		free(line);
		close(n->ready_fd);
		n->ready_fd = -1;
	}
	if (nn_loop_run(n->loop) < 0) {
		nn_error("event loop: %s", strerror(errno));
		return -1;
	}
	nn_node_event(n, "node.stop", jv_object());
	return 0;
}

void nn_node_close(struct nn_node *n)
{
	if (!n)
		return;
	while (n->closers) {
		struct closer *c = n->closers;
		n->closers = c->next;
		c->fn(n, c->arg);
		free(c);
	}
	while (n->conns)
		conn_close(n->conns);
	while (n->reqs) {
		struct req *r = n->reqs;
		n->reqs = r->next;
		free(r);
	}
	jv_free(n->selfq);
	nn_buf_release(&n->scratch);
	nn_events_close(n->ev);
	n->ev = NULL;
	while (n->metrics) {
		struct metrics_hook *h = n->metrics;
		n->metrics = h->next;
		free(h);
	}
	if (n->lfd >= 0) {
		close(n->lfd);
		unlink(n->sock_path);
	}
	nn_loop_free(n->loop);
	nn_replay_free(n->replay);
	nn_db_close(&n->db);
	if (n->lock_fd >= 0)
		close(n->lock_fd);
	nn_key_clear(&n->key);
	nn_config_release(&n->cfg);
	jv_free(n->ready);
	free(n->home);
	free(n->sock_path);
	free(n->cfg_path);
	free(n->db_path);
	free(n->lock_path);
	free(n);
}
