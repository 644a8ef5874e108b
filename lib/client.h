/*
 * client — talking to the local node over $NUNET_HOME/node.sock: find the
 * home and the caller's identity, connect, send signed requests and read
 * verified answers.  Used by nunet-send, nunet-node status and every
 * program that asks the node for something.
 *
 * A program run by an allocation has no home of its own: the node hands it
 * NUNET_SOCKET (the control socket), NUNET_KEY (the allocation's identity)
 * and NUNET_CAP (a file holding its capability token, or an array of
 * them), and the client uses each of these, when set, instead of what the
 * home would give, unless a home is named explicitly (--home); --key
 * (keyfile) always wins over NUNET_KEY.  The tokens go into the "cap" of
 * every request.
 */
#ifndef NN_CLIENT_H
#define NN_CLIENT_H

#include <jv.h>
#include "env.h"
#include "key.h"
#include "lines.h"

struct nn_client {
	int fd;
	char *home;
	struct nn_key key;
	struct nn_lines in;
	int64_t ttl_ms;
	char trace[65];		/* trace id put in every request ("" = none) */
	jv caps;		/* tokens put in every request's "cap" (array), or null */
};

/* Read capability tokens from path: a token, or an array of them; add them
 * to caps (consumed; null: none yet) and return it, or an invalid jv + err. */
jv nn_client_caps_load(jv caps, const char *path, char *err);

/*
 * Load the identity (keyfile, else $NUNET_KEY when home is NULL, else
 * HOME/key; passphrase from NUNET_PASSPHRASE) and connect to the node of
 * home (NULL: $NUNET_SOCKET, else $NUNET_HOME…), with the tokens of
 * $NUNET_CAP when home is NULL.
 * On failure *code is NN_E_UNAVAILABLE (no node listening) or
 * NN_E_BAD_FIELD (no usable identity) and err says why.
 */
int nn_client_open(struct nn_client *c, const char *home, const char *keyfile,
		   enum nn_code *code, char *err);
void nn_client_close(struct nn_client *c);

/* Build and sign a request (consumes body), appending its line to out;
 * *id receives the envelope id (33 bytes). */
int nn_client_request(struct nn_client *c, const char *to, const char *be, jv body,
		      struct nn_buf *out, char id[65], char *err);

/* The same with the body given as its canonical text (an object; e.g. a
 * span lib/jscan.h found canonical): the same bytes, without a jv. */
int nn_client_request_text(struct nn_client *c, const char *to, const char *be, const char *body,
			   size_t blen, struct nn_buf *out, char id[65], char *err);

/*
 * Check an answer envelope read from the node (borrows env): valid
 * signature and shape, addressed to us.  Returns NN_OK, or the code of a
 * bad answer.
 */
enum nn_code nn_client_check(struct nn_client *c, jv env, char *err);

/* One request, one answer: returns the answer envelope (reply or error) or
 * an invalid jv with *code (NN_E_TIMEOUT, NN_E_UNAVAILABLE, …) and err. */
jv nn_client_call(struct nn_client *c, const char *to, const char *be, jv body,
		  int timeout_ms, enum nn_code *code, char *err);

#endif
