/*
 * node — the node actor behind $NUNET_HOME/node.sock: one event loop
 * serving signed envelopes as JSON lines, a table of behaviors, the replay
 * cache and the node's store.  cmd/nunet-node.c only parses options and
 * calls nn_node_open(), nn_node_run() and nn_node_close().
 *
 * Behaviors are thin: a handler checks the request body, calls one library
 * part and returns the reply body.  Later parts of the toolkit add theirs
 * with nn_node_behavior().
 */
#ifndef NN_NODE_H
#define NN_NODE_H

#include <jv.h>
#include <stdint.h>
#include "config.h"
#include "db.h"
#include "env.h"
#include "key.h"
#include "log.h"
#include "loop.h"

struct nn_node;

/*
 * A behavior handler.  req is the verified request envelope (borrowed).  On
 * success return NN_OK and set *reply to the reply body (an object, owned by
 * the caller).  On refusal return a code and write the message into err.
 */
typedef enum nn_code nn_behavior_fn(struct nn_node *n, jv req, jv *reply, char *err);

struct nn_behavior {
	const char *path;	/* "/node/info" */
	nn_behavior_fn *fn;
	const char *about;	/* one line for /node/behaviors */
	int public;		/* no authority needed */
};

struct nn_node_opts {
	const char *home;
	const char *passphrase;	/* for a sealed key, or NULL */
	int ready_fd;		/* -1: none */
};

/* Load key, config and store; bind the control socket.  NULL + err.  *exit
 * gets the exit code that fits the failure (78 config, 69 already running,
 * 74 I/O…). */
struct nn_node *nn_node_open(const struct nn_node_opts *o, int *exit_code, char *err);
/* Serve until SIGTERM or SIGINT.  Returns 0 on a clean stop. */
int nn_node_run(struct nn_node *n);
/* Remove the socket, close everything. */
void nn_node_close(struct nn_node *n);

/* Register a behavior (the table is copied by reference: keep it static). */
void nn_node_behavior(struct nn_node *n, const struct nn_behavior *b);

/*
 * The hot path of a public behavior (optional, at most 8): for a request
 * the node read from its line without a jv (nn_node_deliver_scanned) whose
 * body is an object, fn gets the verified head h and the body's text
 * body[0..blen) before the behavior's own function would get the request
 * as a jv.  It returns 0 to leave the request to that function, or 1 with
 * *code set: NN_OK with the reply body, an object in canonical form,
 * appended to reply, or a refusal with err.
 */
typedef int nn_behavior_text_fn(struct nn_node *n, const struct nn_env_head *h, const char *body,
				size_t blen, struct nn_buf *reply, enum nn_code *code, char *err);
void nn_node_behavior_text(struct nn_node *n, const char *path, nn_behavior_text_fn *fn);

/*
 * Group commit.  A transport that hands the node the envelopes it read
 * together (the lines of one read of a client or a peer) brackets them
 * with nn_node_burst_begin() and nn_node_burst_end(); outside a bracket
 * each envelope is a burst of its own.  A behavior whose effect must be
 * durable before its answer leaves, and that would rather commit once for
 * the whole burst, opens its transaction (if not already open) and calls
 * nn_node_hold(n, commit, arg): from then until the burst ends the node
 * keeps every answer it makes instead of sending it; at the end it calls
 * each commit registered (once per burst, in order) and sends the answers
 * if all returned 0, else answers each held reply with an "internal"
 * error carrying the commit's message.  Nothing waits for more input: a
 * lone envelope is committed and answered as soon as it is handled.  A
 * transport must end a burst before it frees the origins it lent.
 */
typedef int nn_commit_fn(struct nn_node *n, void *arg, char *err);
void nn_node_burst_begin(struct nn_node *n);
void nn_node_burst_end(struct nn_node *n);
void nn_node_hold(struct nn_node *n, nn_commit_fn *commit, void *arg);

/*
 * Where an envelope came from, and how its answer goes back.  The control
 * socket makes one per client line; a transport between nodes makes its own
 * (kind NN_ORIGIN_PEER, with the peer's did) and sends answers over the
 * connection the request came on.  NN_ORIGIN_SELF carries the node's own
 * requests (nn_node_request): their answers go back to the module that asked.
 */
enum nn_origin_kind { NN_ORIGIN_CLIENT, NN_ORIGIN_PEER, NN_ORIGIN_SELF };
struct nn_origin {
	enum nn_origin_kind kind;
	unsigned long client;	/* control-socket client number (CLIENT) */
	const char *peer;	/* did of the connected peer (PEER) */
	/* send one serialized envelope line ending in "\n" back to the origin */
	void (*send)(const struct nn_origin *o, const char *line, size_t len);
	void *arg;
	/* the line the envelope was parsed from (no "\n"), when the envelope
	 * is that whole line: a router passes it on as it came instead of
	 * serializing the envelope again.  NULL otherwise. */
	const char *line;
	size_t len;
};

/*
 * Run an envelope through the node: verify, replay cache, routing,
 * authority, behavior; every outcome answers through o->send (a reply or a
 * signed error), except envelopes a router takes.  Borrows env.
 */
void nn_node_deliver(struct nn_node *n, jv env, const struct nn_origin *o);
/*
 * The hot path of nn_node_deliver for an envelope line es was scanned from
 * (nn_env_scan returned 0; o->line and o->len are that line): when
 * nn_env_scan_verify accepts it, the node takes it from there (parsing it
 * only for a behavior or an error) and returns 1.  0: nothing was done,
 * and the caller parses the line and calls nn_node_deliver, which decides
 * exactly as this would have.
 */
int nn_node_deliver_scanned(struct nn_node *n, struct nn_env_scan *es, const struct nn_origin *o);

/*
 * Routing of envelopes addressed to another actor (not "local", not this
 * node's did).  The router returns 0 when it has taken the envelope (it
 * answers later, e.g. with nn_node_client_send() when the remote reply
 * arrives) or -1 with err, which the node answers as "unavailable".
 * Without a router such envelopes are answered "unavailable".
 */
/* h holds the envelope's verified fields; env is the envelope, or an
 * invalid jv when the node read it from o->line without a jv (the hot
 * path: to is then never "*"), and o->line is what to pass on. */
typedef int nn_router_fn(struct nn_node *n, jv env, const struct nn_env_head *h,
			 const struct nn_origin *o, void *arg, char *err);
void nn_node_set_router(struct nn_node *n, nn_router_fn *fn, void *arg);

/*
 * Authority beyond the owners: called for a signer that is not an owner on
 * a behavior outside /public/.  Return NN_OK to allow, or a code (with err)
 * to refuse.  Without one, such invocations are "unauthorized".
 */
typedef enum nn_code nn_authorize_fn(struct nn_node *n, jv env, const struct nn_origin *o,
				     void *arg, char *err);
void nn_node_set_authorizer(struct nn_node *n, nn_authorize_fn *fn, void *arg);

/*
 * Requests from the node itself (an orchestrator asking for bids, a meter
 * sending usage reports): a "msg" envelope from this node's did to `to` (a
 * node's did, this node's own included, or "*" with a /broadcast/
 * behavior), signed with the node's key and routed like a client's.  Every
 * answer (a reply or error envelope whose signature was verified, borrowed)
 * goes to cb.  A unicast gets exactly one call: the answer, or
 * jv_invalid_with_msg(reason) when it could not be sent or nothing came back
 * within timeout_ms.  A broadcast gets one call per answer, then one with
 * jv_invalid_with_msg("window closed") when timeout_ms has passed.  cb is
 * never called before nn_node_request returns.  Consumes body; trace may be
 * NULL.  Returns 0 and the envelope's id into id (NN_ID_MAX bytes, may be
 * NULL), or -1 + err.
 */
#define NN_ID_MAX 65
typedef void nn_answer_fn(struct nn_node *n, jv answer, void *arg);
int nn_node_request(struct nn_node *n, const char *to, const char *be, jv body, const char *trace,
		    int64_t timeout_ms, nn_answer_fn *cb, void *arg, char *id, char *err);
/* The same with capability tokens (an array, consumed; null: none) in the
 * envelope's "cap", for behaviors the receiver guards (/deploy/…). */
int nn_node_request_cap(struct nn_node *n, const char *to, const char *be, jv body, jv cap,
			const char *trace, int64_t timeout_ms, nn_answer_fn *cb, void *arg, char *id,
			char *err);
/*
 * Run behavior be of this node now, as the node itself (an owner): the
 * envelope is built and not signed, the handler runs synchronously, and its
 * reply body comes back in *reply (the caller's; invalid on a refusal).
 * For a module that drives another module's behavior (the orchestrator's
 * provisioning starts allocations through /alloc/start).  Consumes body;
 * trace may be NULL.  Returns the handler's code, err set on a refusal.
 */
enum nn_code nn_node_invoke(struct nn_node *n, const char *be, jv body, const char *trace,
			    jv *reply, char *err);
/* Behaviors anyone may invoke: under /public/ or /broadcast/public/. */
int nn_node_public_path(const char *be);
/* Forget request id: its callback is not called again. */
void nn_node_request_cancel(struct nn_node *n, const char *id);
/* An answer envelope (borrowed, not yet verified) that came back from
 * another node for one of the node's own requests: the swarm hands it here.
 * 0 when it answered a waiting request, -1 otherwise. */
int nn_node_answer_in(struct nn_node *n, jv env);

/* Send a line to control-socket client number `client` (e.g. a reply that
 * came back from another node); -1 when that client is gone. */
int nn_node_client_send(struct nn_node *n, unsigned long client, const char *line, size_t len);
/* Sign env (consumed) with the node's key and send it to o. */
void nn_node_sign_send(struct nn_node *n, jv env, const struct nn_origin *o);

/*
 * A refusal of what o sent (req borrowed: the envelope, or jv_null() when
 * there was none): nn_node_refused records it (event security.refused for
 * the codes of authority and integrity, msg.refused for the others, and a
 * warning in the log) without answering; nn_node_refuse records it and
 * answers o with a signed error envelope.
 */
void nn_node_refused(struct nn_node *n, const struct nn_origin *o, jv req,
		     enum nn_code code, const char *msg);
void nn_node_refuse(struct nn_node *n, const struct nn_origin *o, jv req,
		    enum nn_code code, const char *msg);

/* Add "key":value (consumed) to the ready line written to --ready-fd, e.g.
 * the address a transport bound; call before nn_node_run(). */
void nn_node_ready_field(struct nn_node *n, const char *key, jv value);

/* Call fn(n, arg) when the node closes, latest registered first: modules
 * release what they attached. */
void nn_node_on_close(struct nn_node *n, void (*fn)(struct nn_node *, void *), void *arg);

const struct nn_key *nn_node_key(const struct nn_node *n);
const char *nn_node_home(const struct nn_node *n);
int nn_node_is_owner(const struct nn_node *n, const char *from);

const char *nn_node_did(const struct nn_node *n);
struct nn_db *nn_node_db(struct nn_node *n);
struct nn_loop *nn_node_loop(struct nn_node *n);
const struct nn_config *nn_node_config(const struct nn_node *n);

/* Record an event ("node.start", …) at level info; body consumed. */
void nn_node_event(struct nn_node *n, const char *kind, jv body);
/* Record an event with a level and trace id (may be NULL); fields consumed.
 * Kinds are dotted, family first: "alloc.state", "peer.dead" (man/nunet-events.5). */
void nn_node_emit(struct nn_node *n, enum nn_level lv, const char *kind, const char *trace, jv fields);
struct nn_events *nn_node_events(struct nn_node *n);
/* The origin of the envelope whose behavior is running (NULL outside one). */
const struct nn_origin *nn_node_origin(const struct nn_node *n);
/* Add lines to /node/metrics (Prometheus text format: # HELP, # TYPE, samples
 * named nunet_*). */
struct nn_buf;
/* The whole metrics text, appended to out. */
void nn_node_metrics_text(struct nn_node *n, struct nn_buf *out);
void nn_node_metrics_hook(struct nn_node *n, void (*fn)(struct nn_node *, struct nn_buf *, void *),
			  void *arg);

#endif
