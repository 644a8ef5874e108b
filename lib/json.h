/*
 * json — our one wrapper around jq's `jv`.  Parsing with clear errors,
 * compact output, RFC 8785 (JCS) canonical form, and typed field getters.
 *
 * Ownership follows jv: a function that takes a jv consumes it unless its
 * comment says "borrows".  Returned jv values belong to the caller.
 */
#ifndef NN_JSON_H
#define NN_JSON_H

#include <jv.h>
#include <stdint.h>
#include "util.h"

/* Parse exactly one JSON value from s[0..len).  On error returns an invalid
 * jv and fills err ("not JSON: ...").  */
jv nn_json_parse(const char *s, size_t len, char *err);

/* RFC 8785 canonical form of v (borrows v) appended to out.  Fails (-1 and
 * err) on invalid values, non-finite numbers, or output over out->max. */
int nn_json_canon(jv v, struct nn_buf *out, char *err);

/* The same for an object without its top-level member key (borrows v):
 * what a signature over "everything but sig" covers. */
int nn_json_canon_without(jv v, const char *key, struct nn_buf *out, char *err);

/* Append s[0..len) as a JSON string (quotes and minimal escapes, as JCS). */
int nn_json_put_string(struct nn_buf *out, const char *s, size_t len);

/* The same, also giving in *at the offset in out where member key would
 * stand in canonical order (v must be an object): a signature can then be
 * spliced in without canonicalizing twice. */
int nn_json_canon_without_at(jv v, const char *key, struct nn_buf *out, size_t *at, char *err);

/* Canonical form as a new string (caller frees), or NULL + err. Borrows v. */
char *nn_json_canon_str(jv v, char *err);

/* Compact one-line JSON text; same as canonical form (borrows v).  Dies only
 * on out-of-memory; invalid values print as null. Caller frees. */
char *nn_json_dump(jv v);

/* Typed getters; all borrow obj.  Return -1 when the field is missing or of
 * another type (fills err with "FIELD: expected TYPE"). */
int nn_json_get_str(jv obj, const char *key, const char **out, char *err);
int nn_json_get_int(jv obj, const char *key, int64_t *out, char *err);
int nn_json_get_obj(jv obj, const char *key, char *err);

/* True if obj is an object with member key (borrows obj). */
int nn_json_has(jv obj, const char *key);

/* True if number n is an integer exactly representable as a double. */
int nn_json_is_int(double n);

/* The jv kind's name, for error messages: "object", "string", … */
const char *nn_json_kind(jv v);  /* borrows */

/* Paths into a document for messages, in jq's dotted form: out (of
 * NN_JSON_PATHLEN bytes) = base + "." + key (key alone when base is "",
 * cut at 64 bytes), or base + "[i]"; a path too long ends in "...". */
#define NN_JSON_PATHLEN 512
void nn_json_path_key(char *out, const char *base, const char *key);
void nn_json_path_index(char *out, const char *base, int i);

#endif
