/*
 * captoken — capability tokens: signed JSON documents that let a did invoke
 * behaviors on a node that does not own it.
 *
 *	{"v":1, "iss":DID, "aud":DID, "cap":["/deploy", …], "exp":MS,
 *	 "depth":N, "nonce":HEX, "parent":TOKEN (absent at the root), "sig":B64}
 *
 * The signature, by iss, covers "nunet:cap:" followed by the RFC 8785 form
 * of the token without "sig" (so a delegation's signature covers its whole
 * chain).  A capability "/deploy" covers "/deploy" and "/deploy/…"; "/"
 * covers everything.
 *
 * A token authorizes invoker X to call behavior B on node N when: every
 * signature verifies; the leaf's aud is X; no token of the chain has
 * expired or been revoked on N; B is covered by the leaf's capabilities;
 * the root's issuer is an owner of N; and every delegation only narrows:
 * its issuer is its parent's audience, each of its capabilities is covered
 * by the parent's, it expires no later, and its depth is below the parent's
 * (a parent of depth 0 cannot be delegated).
 */
#ifndef NN_CAPTOKEN_H
#define NN_CAPTOKEN_H

#include <jv.h>
#include <stdint.h>
#include "env.h"
#include "key.h"

#define NN_CAPTOKEN_PREFIX "nunet:cap:"
#define NN_CAPTOKEN_MAX_CHAIN 8

/* Does capability cap cover behavior be? */
int nn_captoken_covers(const char *cap, const char *be);

/*
 * Issue a token from k to aud for caps (an array of behavior paths,
 * consumed), expiring at exp (ms since the epoch), delegable depth more
 * times.  parent (consumed) is jv_null() for a root token, else the token
 * this one narrows (k must be its audience; the narrowing is checked).
 * Returns the signed token, or an invalid jv with err.
 */
jv nn_captoken_make(const struct nn_key *k, const char *aud, jv caps, int64_t exp, int depth,
		    jv parent, char *err);

struct nn_captoken_ctx {
	/* is did an owner (root of trust) of the checking node? */
	int (*is_root)(const char *did, void *arg);
	/* has the token with this nonce been revoked? (may be NULL) */
	int (*revoked)(const char *nonce, void *arg);
	void *arg;
};

/* Check token (borrowed) for invoker calling be at now.  NN_OK, or
 * NN_E_UNAUTHORIZED (or NN_E_BAD_SIGNATURE, NN_E_EXPIRED) with err. */
enum nn_code nn_captoken_check(jv token, const char *invoker, const char *be, int64_t now,
			       const struct nn_captoken_ctx *ctx, char *err);

#endif
