/*
 * match — the matcher: a job's requirements against capability documents
 * (offers), as specified in man/nunet-capability.5.  The structured
 * constraints (minimums, sets, location, price, labels) are compiled into C
 * and checked on the offer's text by a single-pass validating scanner that
 * builds no jv, which is what makes matching fast; the jq expressions
 * (`where`, `rank`, and the offer's own `where` on the job) are compiled
 * once and run on a jv only for the offers that passed the structured
 * constraints.  Pure: no I/O, no printing.  One struct nn_match is for one
 * thread.
 */
#ifndef NN_MATCH_H
#define NN_MATCH_H

#include <stddef.h>
#include <jv.h>
#include "util.h"

struct nn_match;

/*
 * Compile requirements (consumed; an object, man/nunet-capability.5).
 * where (may be NULL) is one more boolean jq expression that must hold with
 * the requirements' own; rank (may be NULL) replaces the requirements' rank.
 * On failure returns NULL, fills err, and sets *ex (if not NULL) to
 * NN_EX_USAGE for a bad field (naming it: "ram.size: bad size 'lots' …") or
 * NN_EX_DATAERR for a jq expression that does not compile (jq's message).
 * Free with nn_match_free().
 */
struct nn_match *nn_match_compile(jv req, const char *where, const char *rank,
				  int *ex, char *err);
void nn_match_free(struct nn_match *m);

/*
 * For a program that compiles many requirements with the same where and
 * rank (jq_compile takes milliseconds, the structured part microseconds):
 * a cache of compiled jq programs keyed by their text.
 * nn_match_compile_cached() is nn_match_compile() taking the where and
 * rank programs from c (compiling and keeping the ones it lacks, up to 16;
 * a text that does not compile is not kept); c NULL is no cache.  Matchers
 * compiled with c borrow its programs: c must outlive them, and they must
 * all be used from one thread.
 */
struct nn_match_jq;
struct nn_match_jq *nn_match_jq_new(void);
void nn_match_jq_free(struct nn_match_jq *c);
struct nn_match *nn_match_compile_cached(jv req, const char *where, const char *rank,
					 struct nn_match_jq *c, int *ex, char *err);

enum { NN_MATCH_BAD = -1, NN_MATCH_NO = 0, NN_MATCH_YES = 1 };

/*
 * Match one offer given as the JSON text text[0..len) (one line).
 *   NN_MATCH_YES: *score set (higher is better).
 *   NN_MATCH_NO:  when why is not NULL, *why is a new array of strings, one
 *                 per failed constraint ("ram: need 8589934592, have
 *                 4294967296"), caller frees; when why is NULL the check
 *                 stops at the first failure (faster).
 *   NN_MATCH_BAD: the offer is malformed (not JSON, not an object, a known
 *                 field of the wrong type); err says why.
 */
int nn_match_text(struct nn_match *m, const char *text, size_t len,
		  double *score, jv *why, char *err);

/* The same for an offer held as a jv (borrowed). */
int nn_match_eval(struct nn_match *m, jv offer, double *score, jv *why, char *err);

/*
 * For tests: with on set, where and rank always run in libjq, as they did
 * before their fast forms (match.c, "jq expressions without jq") existed,
 * so the two can be compared; the answers must be the same.
 */
void nn_match_jq_only(struct nn_match *m, int on);

/* How many where and rank evaluations their fast forms answered so far
 * (the others went to jq). */
unsigned long nn_match_fast_count(const struct nn_match *m);

/* Whether the score is the default one (minus the estimated price per second
 * of the requested resources), i.e. no rank expression was given. */
int nn_match_default_rank(const struct nn_match *m);

#endif
