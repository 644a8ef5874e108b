/*
 * env — the signed envelope (man/nunet-envelope.5): build, sign, verify,
 * expiry, and the replay cache.
 *
 * An envelope is a jv object: v, type, id, from, to, be, re, ts, exp, cap,
 * body, sig.  The signature is ed25519 over "nunet:env:" followed by the
 * RFC 8785 canonical form of the envelope without "sig", by the key named
 * by the did:key in "from".
 */
#ifndef NN_ENV_H
#define NN_ENV_H

#include <jv.h>
#include <stdint.h>
#include "jscan.h"
#include "key.h"
#include "util.h"

#define NN_ENV_VERSION 1
#define NN_ENV_SIG_PREFIX "nunet:env:"

/* Error codes carried in the body of an "error" envelope. */
enum nn_code {
	NN_OK = 0,
	NN_E_PARSE,		/* "parse": the line is not JSON */
	NN_E_OVERSIZE,		/* "oversize": the line is over the cap */
	NN_E_NOT_OBJECT,	/* "not_object": JSON, but not an object */
	NN_E_BAD_FIELD,		/* "bad_field": missing or mistyped field */
	NN_E_BAD_SIGNATURE,	/* "bad_signature" */
	NN_E_EXPIRED,		/* "expired": exp is past */
	NN_E_BAD_TIME,		/* "bad_time": ts in the future, or exp too far */
	NN_E_REPLAY,		/* "replay": from+id seen before */
	NN_E_UNKNOWN_BEHAVIOR,	/* "unknown_behavior" */
	NN_E_UNAUTHORIZED,	/* "unauthorized" */
	NN_E_BAD_BODY,		/* "bad_body": the behavior refused the body */
	NN_E_BUSY,		/* "busy": try again later */
	NN_E_INTERNAL,		/* "internal" */
	NN_E_TIMEOUT,		/* "timeout": no reply in time (clients only) */
	NN_E_UNAVAILABLE,	/* "unavailable": the receiver cannot be reached */
	NN_E__COUNT
};
const char *nn_code_name(enum nn_code c);
enum nn_code nn_code_parse(const char *name);	/* NN_E_INTERNAL when unknown */

/* A new unsigned envelope.  Consumes body (must be an object). ttl_ms sets
 * exp = ts + ttl_ms. */
jv nn_env_new(const char *type, const char *from, const char *to,
	      const char *be, jv body, int64_t ttl_ms);
/* A reply or error to req (borrows req): to = req.from, re = req.id,
 * be = req.be, trace = req.trace.  Consumes body.  req may be jv_null() for an error answering
 * a line that had no usable envelope. */
jv nn_env_answer(jv req, const char *type, const char *from, jv body, int64_t ttl_ms);
/* An error answer with body {"code":…, "message":…}.  Borrows req. */
jv nn_env_error(jv req, const char *from, enum nn_code code, const char *msg, int64_t ttl_ms);

/* Sign: consumes env, returns it with "sig" (invalid + err on failure). */
jv nn_env_sign(jv env, const struct nn_key *k, char *err);
/* Sign and serialize to one line with a trailing "\n" into out (appended). */
int nn_env_sign_line(jv env, const struct nn_key *k, struct nn_buf *out, char *err);

struct nn_env_limits {
	int64_t skew_ms;	/* how far ts may lie in the future */
	int64_t max_ttl_ms;	/* how far exp may lie after ts */
};
#define NN_ENV_LIMITS_DEFAULT { 30000, 3600000 }

/* Check shape, signature and time of env (borrows).  Returns NN_OK or the
 * code, with a sentence in err. */
__attribute__((warn_unused_result))
enum nn_code nn_env_verify(jv env, const struct nn_env_limits *lim, int64_t now, char *err);
/* The same without the signature, for an envelope a node only passes on
 * from its own user to another actor: the receiver verifies it. */
__attribute__((warn_unused_result))
enum nn_code nn_env_check_forward(jv env, const struct nn_env_limits *lim, int64_t now, char *err);

/* What verification read from an envelope: pointers into it, valid while
 * the envelope lives.  Optional fields that are absent are NULL (trace
 * also when it is not a string, as nn_env_str says). */
struct nn_env_head {
	const char *type, *id, *from, *to, *be, *re, *trace;
	int64_t ts, exp;
};

/* nn_env_verify (sig 1) or nn_env_check_forward (sig 0), filling h on
 * NN_OK, so that the fields are not looked up again. */
__attribute__((warn_unused_result))
enum nn_code nn_env_verify_head(jv env, const struct nn_env_limits *lim, int64_t now, int sig,
				struct nn_env_head *h, char *err);

/*
 * The signed line of the envelope h describes (type, id, from, to, ts and
 * exp set; be, re and trace when not NULL) with body (consumed), appended
 * to out with its "\n": the bytes nn_env_sign_line gives for the same
 * envelope as a jv, written straight from the fields (only body goes
 * through the canonical writer).  0, or -1 with err.
 */
int nn_env_line(const struct nn_env_head *h, jv body, const struct nn_key *k,
		struct nn_buf *out, char *err);
/* The same with the body given as its canonical text (an object, e.g. a
 * span nn_jscan found canonical), copied as it is. */
int nn_env_line_text(const struct nn_env_head *h, const char *body, size_t blen,
		     const struct nn_key *k, struct nn_buf *out, char *err);

/*
 * The signed line of an answer to the request read into req, appended to
 * out with its "\n": exactly the bytes of nn_env_sign_line(nn_env_answer(
 * req, type, from, body, ttl_ms)) with that envelope's id and ts set to id
 * and ts, written straight from the fields instead of through a jv object
 * that is then sorted (only body goes through the canonical writer).
 * Consumes body.  0, or -1 with err.
 */
int nn_env_answer_line(const struct nn_env_head *req, const char *type, const char *from, jv body,
		       const char *id, int64_t ts, int64_t ttl_ms, const struct nn_key *k,
		       struct nn_buf *out, char *err);

/*
 * The hot path: an envelope read from its line by nn_jscan, with no jv.
 * nn_env_scan reads the line; nn_env_scan_verify then makes the checks of
 * nn_env_verify_head on the members as they stand in the line, the
 * signature over the received bytes (when the line is its own canonical
 * form, the signed text is the line without its "sig" member).  Both
 * answer only "yes, exactly as the full path would" or "take the full
 * path" (nn_json_parse and nn_env_verify_head), which gives the same
 * verdict or the error with its message: no decision differs between the
 * two paths.
 */
struct nn_env_scan {
	struct nn_jscan j;
	const char *line;
	size_t len;
	struct nn_env_head h;	/* set by nn_env_scan_verify, pointing into buf */
	size_t used;		/* of buf */
	char buf[1024];
};
/* 0, or -1 when the line is not an object nn_jscan understands. */
int nn_env_scan(const char *line, size_t len, struct nn_env_scan *es);
/* 1 when nn_env_verify_head(parse(line), lim, now, sig, ...) would return
 * NN_OK; es->h is then what it would fill.  0: take the full path.
 * scratch is a caller's buffer, reused across calls (the signed bytes). */
int nn_env_scan_verify(struct nn_env_scan *es, const struct nn_env_limits *lim, int64_t now,
		       int sig, struct nn_buf *scratch);
/* A member's string value copied into es->buf (NUL-terminated), when it
 * is plain (no escape, ASCII); NULL when absent, of another kind, not
 * plain or too long for what is left of buf. */
const char *nn_env_scan_str(struct nn_env_scan *es, const char *key);

/*
 * Replay cache keyed by from+id, each entry kept until its envelope's exp.
 * Bounded: when max entries are live, new envelopes are refused (busy).
 */
struct nn_replay;
struct nn_replay *nn_replay_new(size_t max);
void nn_replay_free(struct nn_replay *r);
/* 0: new (now remembered); 1: seen before; -1: cache full. */
int nn_replay_check(struct nn_replay *r, const char *from, const char *id, int64_t exp, int64_t now);
size_t nn_replay_size(const struct nn_replay *r);

/* Field access helpers (borrow env; the string lives as long as env). */
const char *nn_env_str(jv env, const char *field);	/* NULL if absent */

#endif
