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

const char *nn_node_did(const struct nn_node *n);
struct nn_db *nn_node_db(struct nn_node *n);
struct nn_loop *nn_node_loop(struct nn_node *n);
const struct nn_config *nn_node_config(const struct nn_node *n);

/* Record an event in the store ("node.start", …); body consumed. */
void nn_node_event(struct nn_node *n, const char *kind, jv body);

#endif
