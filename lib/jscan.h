/*
 * jscan — a strict scanner over the text of one JSON object, for the
 * message hot path: it builds no jv and allocates nothing.  It reads the
 * object's top-level members (key, value text, kind) and says whether the
 * text is already its own RFC 8785 canonical form (what nn_json_canon
 * would write for the value nn_json_parse reads from it), so that a
 * signature can be checked over the bytes as they came and a member's
 * value can be passed on without serializing it again.
 *
 * It understands a strict subset of JSON, and only that: every text it
 * accepts, nn_json_parse accepts too and reads to the same members.
 * Anything else (a syntax error, a top-level key that repeats or holds an
 * escape, raw control characters, a BOM, nesting deeper than
 * NN_JSCAN_DEPTH, more than NN_JSCAN_MEMBERS members) is refused with -1,
 * and the caller falls back to nn_json_parse, so behaviour never depends
 * on which path read a line.
 */
#ifndef NN_JSCAN_H
#define NN_JSCAN_H

#include <stddef.h>
#include <jv.h>

#define NN_JSCAN_MEMBERS 32
#define NN_JSCAN_DEPTH 64

enum nn_jscan_kind {
	NN_JSCAN_STRING = 's', NN_JSCAN_NUMBER = 'n', NN_JSCAN_OBJECT = 'o',
	NN_JSCAN_ARRAY = 'a', NN_JSCAN_TRUE = 't', NN_JSCAN_FALSE = 'f', NN_JSCAN_NULL = 'z'
};

struct nn_jscan_member {
	const char *key;	/* the key's bytes, between its quotes (no escapes) */
	size_t klen;
	const char *val;	/* the value's text: a string with its quotes */
	size_t vlen;
	char kind;		/* enum nn_jscan_kind */
	char plain;		/* string: no escape and only ASCII inside */
	char integer;		/* number: -?digits, at most 15 of them (exact as a double) */
	char canonical;		/* the value's text is its own canonical form */
};

struct nn_jscan {
	int n;
	struct nn_jscan_member m[NN_JSCAN_MEMBERS];
	int canonical;		/* the text is its own RFC 8785 form */
};

/* Scan s[0..len) (one object, whitespace around it allowed).  0 with *out
 * filled, or -1: not understood (use nn_json_parse). */
int nn_jscan_object(const char *s, size_t len, struct nn_jscan *out);

/* The member named key (NUL-terminated), or NULL. */
const struct nn_jscan_member *nn_jscan_get(const struct nn_jscan *j, const char *key);

/* The value of an integer member (m->integer set). */
long long nn_jscan_int(const struct nn_jscan_member *m);

/* The object j was scanned from as a jv: the value nn_json_parse gives
 * for the same text, built member by member in text order (plain strings,
 * integers and literals directly, only other values through the parser),
 * which is most of the parse saved for an envelope.  Caller frees. */
jv nn_jscan_jv(const struct nn_jscan *j);

#endif
