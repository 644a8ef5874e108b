/*
 * ensemble — reading, checking and normalizing ensembles.  One pass over the
 * document builds the normalized form field by field; every check that
 * fails adds "PATH: MESSAGE" to a list and the pass goes on, so one run
 * reports every error.  The checks across fields (names that must exist,
 * cycles in depends_on and children, group membership, edges) run on the
 * normalized pieces afterwards.  Fields whose value is null count as
 * absent, which is what makes a normalized ensemble normalize to itself.
 */
#include "ensemble.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "key.h"
#include "match.h"
#include "migrate.h"
#include "storage.h"
#include "util.h"
#include "yamldoc.h"

#define NAME_RULE "lowercase letters, digits, '-' and '_', at most 63, starting with a letter or digit"
#define PATHLEN NN_JSON_PATHLEN

struct ctx {
	jv errs;
	int n;
};

/* Add "PATH: MESSAGE"; control characters (from keys in the input) are
 * shown as '?' so that every error stays one line. */
__attribute__((format(printf, 3, 4)))
static void err(struct ctx *c, const char *path, const char *fmt, ...)
{
	char msg[1024];
	int off;
	va_list ap;

	if (c->n >= NN_ENSEMBLE_MAX_ERRORS)
		return;
	if (++c->n == NN_ENSEMBLE_MAX_ERRORS) {
		c->errs = jv_array_append(c->errs, jv_string_fmt(
			"%s: too many errors, the rest are not reported", path));
		return;
	}
	off = snprintf(msg, sizeof msg, "%s: ", *path ? path : ".");
	if (off < 0 || (size_t)off >= sizeof msg)
		off = 0;
	va_start(ap, fmt);
	vsnprintf(msg + off, sizeof msg - (size_t)off, fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	c->errs = jv_array_append(c->errs, jv_string(msg));
}

/* The member, or null when absent (borrows obj). */
static jv field(jv obj, const char *key)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	if (!jv_is_valid(v)) {
		jv_free(v);
		return jv_null();
	}
	return v;
}

/* A string member's text, valid while obj lives ("" when not a string). */
static const char *str_in(jv obj, const char *key)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	const char *s = jv_get_kind(v) == JV_KIND_STRING ? jv_string_value(v) : "";
	jv_free(v);
	return s;
}

static double num_in(jv obj, const char *key)
{
	jv v = jv_object_get(jv_copy(obj), jv_string(key));
	double d = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : 0;
	jv_free(v);
	return d;
}

static int is_null(jv v)
{
	return jv_get_kind(v) == JV_KIND_NULL;
}

/* Absent or null (borrows obj). */
static int absent(jv obj, const char *key)
{
	jv v = field(obj, key);
	int r = is_null(v);
	jv_free(v);
	return r;
}

static const char *kind_a(jv v)
{
	switch (jv_get_kind(v)) {
	case JV_KIND_NULL: return "null";
	case JV_KIND_TRUE: case JV_KIND_FALSE: return "a boolean";
	case JV_KIND_NUMBER: return "a number";
	case JV_KIND_STRING: return "a string";
	case JV_KIND_ARRAY: return "an array";
	case JV_KIND_OBJECT: return "an object";
	default: return "invalid";
	}
}

static int has_nul(jv s)
{
	return (size_t)jv_string_length_bytes(jv_copy(s)) != strlen(jv_string_value(s));
}

/* Edit distance with transpositions (optimal string alignment), for "did
 * you mean" (strings cut at 64). */
static int distance(const char *a, const char *b)
{
	int la = (int)strnlen(a, 64), lb = (int)strnlen(b, 64);
	static int d[65][65];
	for (int i = 0; i <= la; i++)
		d[i][0] = i;
	for (int j = 0; j <= lb; j++)
		d[0][j] = j;
	for (int i = 1; i <= la; i++)
		for (int j = 1; j <= lb; j++) {
			int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

/* The closest of names (NULL-terminated) to s when close enough, else NULL. */
static const char *suggest(const char *s, const char *const *names)
{
	const char *best = NULL;
	int bd = 1000, lim = (int)strnlen(s, 64) / 3;
	if (lim < 1)
		lim = 1;
	if (lim > 3)
		lim = 3;
	for (; *names; names++) {
		int d = distance(s, *names);
		if (d < bd)
			bd = d, best = *names;
	}
	return bd <= lim ? best : NULL;
}

static void unknown_keys(struct ctx *c, jv obj, const char *path, const char *const *known)
{
	jv keys = jv_keys(jv_copy(obj));
	jv_array_foreach(keys, i, k) {
		const char *s = jv_string_value(k);
		const char *const *p;
		for (p = known; *p && strcmp(*p, s); p++)
			;
		if (!*p) {
			char kp[PATHLEN];
			const char *sug = suggest(s, known);
			nn_json_path_key(kp, path, s);
			if (sug)
				err(c, kp, "unknown field (did you mean \"%s\"?)", sug);
			else
				err(c, kp, "unknown field");
		}
		jv_free(k);
	}
	jv_free(keys);
}

static int valid_name(const char *s, size_t len)
{
	if (len < 1 || len > 63)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			 (i > 0 && (ch == '-' || ch == '_'));
		if (!ok)
			return 0;
	}
	return 1;
}

static int valid_name_jv(jv s)
{
	return jv_get_kind(s) == JV_KIND_STRING &&
	       valid_name(jv_string_value(s), (size_t)jv_string_length_bytes(jv_copy(s)));
}

/* --- scalar checks: each consumes v, returns the normalized value or
 * jv_invalid() after reporting --- */

static jv want_object(struct ctx *c, jv v, const char *path)
{
	if (jv_get_kind(v) == JV_KIND_OBJECT)
		return v;
	err(c, path, "expected an object, not %s", kind_a(v));
	jv_free(v);
	return jv_invalid();
}

static jv want_string(struct ctx *c, jv v, const char *path)
{
	if (jv_get_kind(v) != JV_KIND_STRING) {
		err(c, path, "expected a string, not %s", kind_a(v));
		jv_free(v);
		return jv_invalid();
	}
	if (has_nul(v) || jv_string_length_bytes(jv_copy(v)) == 0) {
		err(c, path, has_nul(v) ? "contains a NUL character" : "empty");
		jv_free(v);
		return jv_invalid();
	}
	return v;
}

static jv want_int(struct ctx *c, jv v, const char *path, int64_t min, int64_t max)
{
	double d;
	if (jv_get_kind(v) != JV_KIND_NUMBER) {
		err(c, path, "expected an integer, not %s", kind_a(v));
		jv_free(v);
		return jv_invalid();
	}
	d = jv_number_value(v);
	jv_free(v);
	if (!nn_json_is_int(d)) {
		err(c, path, "expected an integer, not %g", d);
		return jv_invalid();
	}
	if (d < (double)min) {
		err(c, path, "must be at least %lld", (long long)min);
		return jv_invalid();
	}
	if (d > (double)max) {
		err(c, path, "must be at most %lld", (long long)max);
		return jv_invalid();
	}
	return jv_number(d);
}

/* A size: integer bytes or "8G", "512MiB"; at least min. */
static jv want_size(struct ctx *c, jv v, const char *path, int64_t min)
{
	uint64_t b;
	if (jv_get_kind(v) == JV_KIND_NUMBER) {
		double d = jv_number_value(v);
		if (!nn_json_is_int(d) || d < 0) {
			err(c, path, "not a size");
			jv_free(v);
			return jv_invalid();
		}
		b = (uint64_t)d;
	} else if (jv_get_kind(v) == JV_KIND_STRING && !has_nul(v) &&
		   nn_parse_size(jv_string_value(v), &b) == 0) {
		if (b > (1ULL << 53)) {
			err(c, path, "too large (at most 2^53 bytes)");
			jv_free(v);
			return jv_invalid();
		}
	} else {
		err(c, path, "not a size");
		jv_free(v);
		return jv_invalid();
	}
	jv_free(v);
	if ((int64_t)b < min) {
		err(c, path, "must be at least %lld bytes", (long long)min);
		return jv_invalid();
	}
	return jv_number((double)b);
}

/*
 * A duration given as KEY (a string "30s", "5m", "250ms", or a number of
 * seconds) or KEY_ms (integer milliseconds), never both.  Absent: def.
 * Returns -1 after reporting.
 */
static int want_duration(struct ctx *c, jv obj, const char *base, const char *key,
			 int64_t def, int64_t min, int64_t *out)
{
	char kms[80], p[PATHLEN], pms[PATHLEN];
	jv v, vms;
	int64_t ms;

	snprintf(kms, sizeof kms, "%s_ms", key);
	nn_json_path_key(p, base, key);
	nn_json_path_key(pms, base, kms);
	v = field(obj, key);
	vms = field(obj, kms);
	*out = def;
	if (!is_null(v) && !is_null(vms)) {
		err(c, p, "give %s or %s, not both", key, kms);
		jv_free(v);
		jv_free(vms);
		return -1;
	}
	if (!is_null(vms)) {
		jv n = want_int(c, vms, pms, 0, (int64_t)9e15);
		if (!jv_is_valid(n)) {
			jv_free(n);
			return -1;
		}
		ms = (int64_t)jv_number_value(n);
		jv_free(n);
		if (ms < min) {
			err(c, pms, "must be at least %lld", (long long)min);
			return -1;
		}
		*out = ms;
		return 0;
	}
	if (is_null(v)) {
		jv_free(v);
		return 0;
	}
	if (jv_get_kind(v) == JV_KIND_NUMBER) {
		double d = jv_number_value(v);
		if (!isfinite(d) || d < 0 || d > 9e12) {
			err(c, p, "not a duration");
			jv_free(v);
			return -1;
		}
		ms = (int64_t)(d * 1000 + 0.5);
	} else if (jv_get_kind(v) != JV_KIND_STRING || has_nul(v) ||
		   nn_parse_duration_ms(jv_string_value(v), &ms) < 0) {
		err(c, p, "not a duration");
		jv_free(v);
		return -1;
	}
	jv_free(v);
	if (ms < min) {
		err(c, p, "must be at least %lldms", (long long)min);
		return -1;
	}
	*out = ms;
	return 0;
}

/* A command: a non-empty array of strings, or a string run by "sh -c". */
static jv want_argv(struct ctx *c, jv v, const char *path)
{
	if (jv_get_kind(v) == JV_KIND_STRING) {
		jv s = want_string(c, v, path);
		if (!jv_is_valid(s))
			return s;
		return JV_ARRAY(jv_string("sh"), jv_string("-c"), s);
	}
	if (jv_get_kind(v) != JV_KIND_ARRAY) {
		err(c, path, "expected an array of strings, not %s", kind_a(v));
		jv_free(v);
		return jv_invalid();
	}
	if (jv_array_length(jv_copy(v)) == 0) {
		err(c, path, "empty");
		jv_free(v);
		return jv_invalid();
	}
	{
		int bad = 0;
		jv_array_foreach(v, i, s) {
			char p[PATHLEN];
			nn_json_path_index(p, path, i);
			if (jv_get_kind(s) != JV_KIND_STRING) {
				err(c, p, "expected a string, not %s", kind_a(s));
				bad = 1;
			} else if (has_nul(s)) {
				err(c, p, "contains a NUL character");
				bad = 1;
			}
			jv_free(s);
		}
		if (bad) {
			jv_free(v);
			return jv_invalid();
		}
	}
	return v;
}

/* A relative path inside the allocation directory: not absolute, no "..". */
static jv want_relpath(struct ctx *c, jv v, const char *path)
{
	const char *s;
	v = want_string(c, v, path);
	if (!jv_is_valid(v))
		return v;
	s = jv_string_value(v);
	if (s[0] == '/') {
		err(c, path, "must be relative to the allocation directory, not '%.64s'", s);
		jv_free(v);
		return jv_invalid();
	}
	for (const char *p = s; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			err(c, path, "must not leave the allocation directory ('..')");
			jv_free(v);
			return jv_invalid();
		}
		p += n;
		if (*p)
			p++;
	}
	return v;
}

/* One of words (NULL-terminated), else an error listing them. */
static jv want_word(struct ctx *c, jv v, const char *path, const char *what,
		    const char *const *words)
{
	char list[256] = "";
	v = want_string(c, v, path);
	if (!jv_is_valid(v))
		return v;
	for (const char *const *w = words; *w; w++) {
		if (!strcmp(*w, jv_string_value(v)))
			return v;
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
			 w == words ? "" : ", ", *w);
	}
	err(c, path, "unknown %s \"%.64s\" (known: %s)", what, jv_string_value(v), list);
	jv_free(v);
	return jv_invalid();
}

/* A list of allocation or group names (a string is a list of one); each
 * must be a valid name, none twice.  Whether they exist is checked later. */
static jv want_names(struct ctx *c, jv v, const char *path)
{
	jv out = jv_array();
	int bad = 0;
	if (jv_get_kind(v) == JV_KIND_STRING)
		v = JV_ARRAY(v);
	if (jv_get_kind(v) != JV_KIND_ARRAY) {
		err(c, path, "expected an array of names, not %s", kind_a(v));
		jv_free(v);
		jv_free(out);
		return jv_invalid();
	}
	jv_array_foreach(v, i, s) {
		char p[PATHLEN];
		nn_json_path_index(p, path, i);
		if (jv_get_kind(s) != JV_KIND_STRING) {
			err(c, p, "expected a name, not %s", kind_a(s));
			bad = 1;
		} else if (!valid_name_jv(s)) {
			err(c, p, "\"%.64s\" is not a valid name (%s)", jv_string_value(s), NAME_RULE);
			bad = 1;
		} else {
			int dup = 0;
			jv_array_foreach(out, j, o) {
				(void)j;
				if (jv_equal(jv_copy(o), jv_copy(s)))
					dup = 1;
				jv_free(o);
			}
			if (dup) {
				err(c, p, "\"%s\" is listed twice", jv_string_value(s));
				bad = 1;
			} else {
				out = jv_array_append(out, jv_copy(s));
			}
		}
		jv_free(s);
	}
	jv_free(v);
	if (bad) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

/* Store v at key in *obj when valid; otherwise note the failure. */
static void put(jv *obj, const char *key, jv v, int *bad)
{
	if (jv_is_valid(v)) {
		*obj = jv_object_set(*obj, jv_string(key), v);
	} else {
		jv_free(v);
		*bad = 1;
	}
}

/* --- allocations --- */

static const char *const alloc_keys[] = {
	"type", "executor", "command", "image", "resources", "env", "workdir", "inputs",
	"outputs", "ports", "healthcheck", "restart", "retries", "depends_on", "children",
	"state_dir", "checkpoint", "checkpoint_ms", "timeout", "timeout_ms", NULL
};
static const char *const types[] = { "service", "task", NULL };
static const char *const executors[] = { "native", "docker", "vm", NULL };
static const char *const policies[] = { "never", "on-failure", "always", NULL };
static const char *const strategies[] = { "one_for_one", "one_for_all", "rest_for_one", NULL };

/* cpu: cores, a number > 0 with at most three decimals, or "500m". */
static jv want_cpu(struct ctx *c, jv v, const char *path)
{
	double d;
	if (jv_get_kind(v) == JV_KIND_STRING) {
		const char *s = jv_string_value(v);
		char *end;
		double m = strtod(s, &end);
		if (end != s && !strcmp(end, "m") && isfinite(m) && s[0] >= '0' && s[0] <= '9') {
			jv_free(v);
			v = jv_number(m / 1000);
		} else {
			err(c, path, "not a CPU amount (cores such as 2 or 0.5, or millicores such as \"500m\")");
			jv_free(v);
			return jv_invalid();
		}
	}
	if (jv_get_kind(v) != JV_KIND_NUMBER) {
		err(c, path, "expected a number of cores, not %s", kind_a(v));
		jv_free(v);
		return jv_invalid();
	}
	d = jv_number_value(v);
	jv_free(v);
	if (!isfinite(d) || d <= 0) {
		err(c, path, "must be more than 0");
		return jv_invalid();
	}
	if (d > 1e6) {
		err(c, path, "must be at most 1000000");
		return jv_invalid();
	}
	if (fabs(d * 1000 - round(d * 1000)) > 1e-6) {
		err(c, path, "at most three decimals (a thousandth of a core)");
		return jv_invalid();
	}
	return jv_number(round(d * 1000) / 1000);
}

static jv n_resources(struct ctx *c, jv r, const char *path)
{
	static const char *const keys[] = { "cpu", "ram", "disk", "gpus", NULL };
	char p[PATHLEN];
	jv out = jv_object(), v;
	int bad = 0;

	if (is_null(r)) {
		jv_free(r);
		r = jv_object();
	}
	r = want_object(c, r, path);
	if (!jv_is_valid(r)) {
		jv_free(out);
		return r;
	}
	unknown_keys(c, r, path, keys);
	nn_json_path_key(p, path, "cpu");
	v = field(r, "cpu");
	put(&out, "cpu", is_null(v) ? jv_number(1) : want_cpu(c, v, p), &bad);
	nn_json_path_key(p, path, "ram");
	v = field(r, "ram");
	put(&out, "ram", is_null(v) ? jv_number(268435456) : want_size(c, v, p, 1), &bad);
	nn_json_path_key(p, path, "disk");
	v = field(r, "disk");
	put(&out, "disk", is_null(v) ? jv_number(0) : want_size(c, v, p, 0), &bad);
	nn_json_path_key(p, path, "gpus");
	v = field(r, "gpus");
	put(&out, "gpus", is_null(v) ? jv_number(0) : want_int(c, v, p, 0, 1024), &bad);
	jv_free(r);
	if (bad) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

/* env: an object of strings; numbers and booleans are taken as their text
 * (YAML reads PORT: 8080 as a number). */
static jv n_env(struct ctx *c, jv e, const char *path)
{
	jv out = jv_object();
	int bad = 0;
	e = want_object(c, e, path);
	if (!jv_is_valid(e)) {
		jv_free(out);
		return e;
	}
	jv_object_foreach(e, k, v) {
		char p[PATHLEN];
		const char *ks = jv_string_value(k);
		nn_json_path_key(p, path, ks);
		if (!*ks || strchr(ks, '=') || has_nul(k)) {
			err(c, p, "not a valid variable name");
			bad = 1;
		} else if (jv_get_kind(v) == JV_KIND_STRING && !has_nul(v)) {
			out = jv_object_set(out, jv_copy(k), jv_copy(v));
		} else if (jv_get_kind(v) == JV_KIND_NUMBER || jv_get_kind(v) == JV_KIND_TRUE ||
			   jv_get_kind(v) == JV_KIND_FALSE) {
			out = jv_object_set(out, jv_copy(k), jv_dump_string(jv_copy(v), 0));
		} else {
			err(c, p, "expected a string, not %s",
			    jv_get_kind(v) == JV_KIND_STRING ? "one with a NUL character" : kind_a(v));
			bad = 1;
		}
		jv_free(k);
		jv_free(v);
	}
	jv_free(e);
	if (bad) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

static jv want_url(struct ctx *c, jv v, const char *path)
{
	v = want_string(c, v, path);
	if (jv_is_valid(v) && !nn_storage_supported(jv_string_value(v))) {
		err(c, path, "unsupported URL \"%.64s\" (file://, http://, https://, s3://, git+https://, git+file://)",
		    jv_string_value(v));
		jv_free(v);
		return jv_invalid();
	}
	return v;
}

static int is_hex64(const char *s)
{
	size_t i;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == 64;
}

/* An array whose items each is normalized by item (consuming it, invalid
 * after reporting); the normalized array or invalid. */
static jv n_list(struct ctx *c, jv a, const char *path, int arg,
		 jv (*item)(struct ctx *, jv, const char *, int))
{
	jv out = jv_array();
	int bad = 0;
	if (jv_get_kind(a) != JV_KIND_ARRAY) {
		err(c, path, "expected an array, not %s", kind_a(a));
		jv_free(a);
		jv_free(out);
		return jv_invalid();
	}
	jv_array_foreach(a, i, t) {
		char p[PATHLEN];
		nn_json_path_index(p, path, i);
		t = item(c, t, p, arg);
		if (jv_is_valid(t)) {
			out = jv_array_append(out, t);
		} else {
			jv_free(t);
			bad = 1;
		}
	}
	jv_free(a);
	if (bad) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

/* A required member of t through check, put into *o. */
static void required(struct ctx *c, jv t, jv *o, const char *path, const char *key, int *bad,
		     jv (*check)(struct ctx *, jv, const char *))
{
	char q[PATHLEN];
	jv v = field(t, key);
	nn_json_path_key(q, path, key);
	if (is_null(v)) {
		err(c, q, "required");
		jv_free(v);
		*bad = 1;
	} else {
		put(o, key, check(c, v, q), bad);
	}
}

/* one of inputs or outputs: {url, path[, sha256]} */
static jv n_transfer(struct ctx *c, jv t, const char *p, int inputs)
{
	static const char *const in_keys[] = { "url", "path", "sha256", NULL };
	static const char *const out_keys[] = { "path", "url", NULL };
	char q[PATHLEN];
	jv o = jv_object(), v;
	int b = 0;

	t = want_object(c, t, p);
	if (!jv_is_valid(t)) {
		jv_free(o);
		return t;
	}
	unknown_keys(c, t, p, inputs ? in_keys : out_keys);
	required(c, t, &o, p, "url", &b, want_url);
	required(c, t, &o, p, "path", &b, want_relpath);
	v = field(t, "sha256");
	if (inputs && !is_null(v)) {
		nn_json_path_key(q, p, "sha256");
		v = want_string(c, v, q);
		if (jv_is_valid(v) && !is_hex64(jv_string_value(v))) {
			err(c, q, "expected 64 lowercase hex digits");
			jv_free(v);
			v = jv_invalid();
		}
		put(&o, "sha256", v, &b);
	} else {
		jv_free(v);
	}
	jv_free(t);
	if (b) {
		jv_free(o);
		return jv_invalid();
	}
	return o;
}

static jv want_port(struct ctx *c, jv v, const char *path)
{
	return want_int(c, v, path, 1, 65535);
}

/* one of ports: {name, port, protocol} or a plain port number */
static jv n_port(struct ctx *c, jv t, const char *p, int unused)
{
	static const char *const keys[] = { "name", "port", "protocol", NULL };
	static const char *const protos[] = { "tcp", "udp", NULL };
	char q[PATHLEN];
	jv o = jv_object(), v;
	int b = 0;

	if (jv_get_kind(t) == JV_KIND_NUMBER)
		t = jv_object_set(jv_object(), jv_string("port"), t);
	t = want_object(c, t, p);
	if (!jv_is_valid(t)) {
		jv_free(o);
		return t;
	}
	unknown_keys(c, t, p, keys);
	required(c, t, &o, p, "port", &b, want_port);
	nn_json_path_key(q, p, "protocol");
	v = field(t, "protocol");
	put(&o, "protocol", is_null(v) ? (jv_free(v), jv_string("tcp")) :
				      want_word(c, v, q, "protocol", protos), &b);
	nn_json_path_key(q, p, "name");
	v = field(t, "name");
	if (is_null(v)) {
		jv_free(v);
		v = b ? jv_invalid() : jv_string_fmt("%s-%d", str_in(o, "protocol"),
						     (int)num_in(o, "port"));
	} else if (jv_get_kind(v) == JV_KIND_STRING && !valid_name_jv(v)) {
		err(c, q, "\"%.64s\" is not a valid name (%s)", jv_string_value(v), NAME_RULE);
		jv_free(v);
		v = jv_invalid();
	} else {
		v = want_string(c, v, q);
	}
	put(&o, "name", v, &b);
	jv_free(t);
	if (b) {
		jv_free(o);
		return jv_invalid();
	}
	return o;
}

/* ports, with names unique in the allocation */
static jv n_ports(struct ctx *c, jv a, const char *path)
{
	jv out = n_list(c, a, path, 0, n_port), seen = jv_object();
	int dup = 0;
	if (jv_is_valid(out))
		jv_array_foreach(out, i, pt) {
			jv name = field(pt, "name");
			if (jv_object_has(jv_copy(seen), jv_copy(name))) {
				char p[PATHLEN], q[PATHLEN];
				nn_json_path_index(p, path, i);
				nn_json_path_key(q, p, "name");
				err(c, q, "\"%s\" is used twice", jv_string_value(name));
				dup = 1;
			}
			seen = jv_object_set(seen, name, jv_true());
			jv_free(pt);
		}
	jv_free(seen);
	if (dup) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

/* healthcheck: null, or {cmd | http, interval, timeout, retries}; "command"
 * is taken for "cmd" (the node's own healthcheck spells it so). */
static jv n_health(struct ctx *c, jv h, const char *path)
{
	static const char *const keys[] = { "cmd", "command", "http", "interval", "interval_ms",
					    "timeout", "timeout_ms", "retries", NULL };
	char p[PATHLEN];
	jv out = jv_object(), cmd, cmd2, http;
	int64_t ms;
	int bad = 0;

	h = want_object(c, h, path);
	if (!jv_is_valid(h)) {
		jv_free(out);
		return h;
	}
	unknown_keys(c, h, path, keys);
	cmd = field(h, "cmd");
	cmd2 = field(h, "command");
	http = field(h, "http");
	if (!is_null(cmd2) && !is_null(cmd)) {
		nn_json_path_key(p, path, "command");
		err(c, p, "give cmd or command, not both");
		bad = 1;
	} else if (!is_null(cmd2)) {
		jv_free(cmd);
		cmd = jv_copy(cmd2);
	}
	if (is_null(cmd) == is_null(http)) {
		err(c, path, "give exactly one of cmd and http");
		bad = 1;
	} else if (!is_null(cmd)) {
		nn_json_path_key(p, path, is_null(cmd2) ? "cmd" : "command");
		put(&out, "cmd", want_argv(c, jv_copy(cmd), p), &bad);
	} else {
		nn_json_path_key(p, path, "http");
		http = want_string(c, http, p);
		if (jv_is_valid(http) && strncmp(jv_string_value(http), "http://", 7) &&
		    strncmp(jv_string_value(http), "https://", 8)) {
			err(c, p, "expected an http:// or https:// URL");
			jv_free(http);
			http = jv_invalid();
		}
		put(&out, "http", http, &bad);
		http = jv_null();
	}
	jv_free(cmd);
	jv_free(cmd2);
	jv_free(http);
	if (want_duration(c, h, path, "interval", 10000, 10, &ms) < 0)
		bad = 1;
	out = jv_object_set(out, jv_string("interval_ms"), jv_number((double)ms));
	if (want_duration(c, h, path, "timeout", 5000, 1, &ms) < 0)
		bad = 1;
	out = jv_object_set(out, jv_string("timeout_ms"), jv_number((double)ms));
	nn_json_path_key(p, path, "retries");
	cmd = field(h, "retries");
	put(&out, "retries", is_null(cmd) ? jv_number(3) : want_int(c, cmd, p, 1, 1000), &bad);
	jv_free(h);
	if (bad) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

/* restart: a policy word, or {policy, strategy, intensity, period}. */
static jv n_restart(struct ctx *c, jv r, const char *path, int service)
{
	static const char *const keys[] = { "policy", "strategy", "intensity", "period",
					    "period_ms", NULL };
	char p[PATHLEN];
	jv out = jv_object(), v;
	int64_t ms;
	int bad = 0;

	if (is_null(r)) {
		jv_free(r);
		r = jv_object();
	} else if (jv_get_kind(r) == JV_KIND_STRING) {
		r = jv_object_set(jv_object(), jv_string("policy"), r);
	}
	r = want_object(c, r, path);
	if (!jv_is_valid(r)) {
		jv_free(out);
		return r;
	}
	unknown_keys(c, r, path, keys);
	nn_json_path_key(p, path, "policy");
	v = field(r, "policy");
	put(&out, "policy", is_null(v) ? (jv_free(v), jv_string(service ? "always" : "never")) :
		  want_word(c, v, p, "restart policy", policies), &bad);
	nn_json_path_key(p, path, "strategy");
	v = field(r, "strategy");
	put(&out, "strategy", is_null(v) ? (jv_free(v), jv_string("one_for_one")) :
		  want_word(c, v, p, "restart strategy", strategies), &bad);
	nn_json_path_key(p, path, "intensity");
	v = field(r, "intensity");
	put(&out, "intensity", is_null(v) ? jv_number(3) : want_int(c, v, p, 0, 1000000), &bad);
	if (want_duration(c, r, path, "period", 60000, 1, &ms) < 0)
		bad = 1;
	out = jv_object_set(out, jv_string("period_ms"), jv_number((double)ms));
	jv_free(r);
	if (bad) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

/* The allocation as far as it is valid (an object, always); *failed set
 * when anything was reported, so depends_on and children can still be
 * checked across allocations. */
static jv n_alloc(struct ctx *c, jv a, const char *path, int *failed)
{
	char p[PATHLEN];
	jv out = jv_object(), v;
	int64_t ms;
	int bad = 0, service = 0;
	const char *ex;

	a = want_object(c, a, path);
	if (!jv_is_valid(a)) {
		jv_free(a);
		*failed = 1;
		return out;
	}
	unknown_keys(c, a, path, alloc_keys);

	nn_json_path_key(p, path, "type");
	v = field(a, "type");
	put(&out, "type", is_null(v) ? (jv_free(v), jv_string("task")) :
		  want_word(c, v, p, "type", types), &bad);
	service = !strcmp(str_in(out, "type"), "service");

	nn_json_path_key(p, path, "executor");
	v = field(a, "executor");
	put(&out, "executor", is_null(v) ? (jv_free(v), jv_string("native")) :
		  want_word(c, v, p, "executor", executors), &bad);
	ex = str_in(out, "executor");

	nn_json_path_key(p, path, "command");
	v = field(a, "command");
	put(&out, "command", is_null(v) ? v : want_argv(c, v, p), &bad);
	nn_json_path_key(p, path, "image");
	v = field(a, "image");
	if (!is_null(v)) {
		if (!strcmp(ex, "native")) {
			err(c, p, "the native executor runs no image (set executor to docker or vm)");
			jv_free(v);
			bad = 1;
		} else {
			put(&out, "image", want_string(c, v, p), &bad);
		}
	} else {
		out = jv_object_set(out, jv_string("image"), v);
		if (!strcmp(ex, "docker") || !strcmp(ex, "vm")) {
			err(c, p, "required with the %s executor", ex);
			bad = 1;
		}
	}
	if (!strcmp(ex, "native") && absent(a, "command")) {
		nn_json_path_key(p, path, "command");
		err(c, p, "required with the native executor");
		bad = 1;
	}

	nn_json_path_key(p, path, "resources");
	put(&out, "resources", n_resources(c, field(a, "resources"), p), &bad);

	nn_json_path_key(p, path, "env");
	v = field(a, "env");
	put(&out, "env", is_null(v) ? (jv_free(v), jv_object()) : n_env(c, v, p), &bad);

	nn_json_path_key(p, path, "workdir");
	v = field(a, "workdir");
	put(&out, "workdir", is_null(v) ? v : want_relpath(c, v, p), &bad);

	nn_json_path_key(p, path, "inputs");
	v = field(a, "inputs");
	put(&out, "inputs", is_null(v) ? (jv_free(v), jv_array()) : n_list(c, v, p, 1, n_transfer),
	    &bad);
	nn_json_path_key(p, path, "outputs");
	v = field(a, "outputs");
	put(&out, "outputs", is_null(v) ? (jv_free(v), jv_array()) : n_list(c, v, p, 0, n_transfer),
	    &bad);
	nn_json_path_key(p, path, "ports");
	v = field(a, "ports");
	put(&out, "ports", is_null(v) ? (jv_free(v), jv_array()) : n_ports(c, v, p), &bad);

	nn_json_path_key(p, path, "healthcheck");
	v = field(a, "healthcheck");
	put(&out, "healthcheck", is_null(v) ? v : n_health(c, v, p), &bad);

	nn_json_path_key(p, path, "restart");
	put(&out, "restart", n_restart(c, field(a, "restart"), p, service), &bad);

	nn_json_path_key(p, path, "retries");
	v = field(a, "retries");
	put(&out, "retries", is_null(v) ? jv_number(0) : want_int(c, v, p, 0, 1000), &bad);

	nn_json_path_key(p, path, "depends_on");
	v = field(a, "depends_on");
	put(&out, "depends_on", is_null(v) ? (jv_free(v), jv_array()) : want_names(c, v, p), &bad);
	nn_json_path_key(p, path, "children");
	v = field(a, "children");
	put(&out, "children", is_null(v) ? (jv_free(v), jv_array()) : want_names(c, v, p), &bad);

	nn_json_path_key(p, path, "state_dir");
	v = field(a, "state_dir");
	put(&out, "state_dir", is_null(v) ? v : want_relpath(c, v, p), &bad);

	/* periodic checkpoints of the state directory, pushed to the
	 * orchestrator; only where there is one, and only when asked */
	if (want_duration(c, a, path, "checkpoint", 0, 0, &ms) < 0) {
		bad = 1;
	} else if (ms > 0) {
		nn_json_path_key(p, path, "checkpoint");
		v = field(a, "state_dir");
		if (ms < NN_MIGRATE_EVERY_MIN_MS) {
			err(c, p, "must be at least %ds", NN_MIGRATE_EVERY_MIN_MS / 1000);
			bad = 1;
		} else if (is_null(v)) {
			err(c, p, "needs a state_dir to checkpoint");
			bad = 1;
		}
		jv_free(v);
		out = jv_object_set(out, jv_string("checkpoint_ms"), jv_number((double)ms));
	}

	if (want_duration(c, a, path, "timeout", 0, 0, &ms) < 0)
		bad = 1;
	out = jv_object_set(out, jv_string("timeout_ms"), jv_number((double)ms));

	jv_free(a);
	if (bad)
		*failed = 1;
	return out;
}

/* --- node groups, edges, the whole document --- */

static jv n_location(struct ctx *c, jv l, const char *path)
{
	static const char *const keys[] = { "accept", "reject", NULL };
	static const char *const pkeys[] = { "continent", "country", "city", NULL };
	jv out = jv_object();
	int bad = 0;

	l = want_object(c, l, path);
	if (!jv_is_valid(l)) {
		jv_free(out);
		return l;
	}
	unknown_keys(c, l, path, keys);
	for (int w = 0; w < 2; w++) {
		const char *k = keys[w];
		char p[PATHLEN];
		jv a = field(l, k), pats = jv_array();
		nn_json_path_key(p, path, k);
		if (is_null(a)) {
			jv_free(a);
			out = jv_object_set(out, jv_string(k), pats);
			continue;
		}
		if (jv_get_kind(a) != JV_KIND_ARRAY) {
			err(c, p, "expected an array of patterns, not %s", kind_a(a));
			bad = 1;
		} else if (w == 0 && jv_array_length(jv_copy(a)) == 0) {
			err(c, p, "empty: no location would be accepted (leave accept out to accept any)");
			bad = 1;
		} else {
			jv_array_foreach(a, i, pat) {
				char q[PATHLEN];
				nn_json_path_index(q, p, i);
				pat = want_object(c, pat, q);
				if (!jv_is_valid(pat)) {
					bad = 1;
				} else {
					unknown_keys(c, pat, q, pkeys);
					jv_object_foreach(pat, pk, pv) {
						char r[PATHLEN];
						nn_json_path_key(r, q, jv_string_value(pk));
						jv_free(pk);
						pv = want_string(c, pv, r);
						if (!jv_is_valid(pv))
							bad = 1;
						jv_free(pv);
					}
					if (jv_object_length(jv_copy(pat)) == 0) {
						err(c, q, "an empty pattern matches every location");
						bad = 1;
					}
					pats = jv_array_append(pats, jv_copy(pat));
				}
				jv_free(pat);
			}
		}
		jv_free(a);
		out = jv_object_set(out, jv_string(k), pats);
	}
	jv_free(l);
	if (bad) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

/* The group as far as it is valid (an object, always), as n_alloc. */
static jv n_group(struct ctx *c, jv g, const char *path, int *failed)
{
	static const char *const keys[] = { "allocations", "peer", "location", "redundancy", NULL };
	char p[PATHLEN], perr[NN_ERRLEN];
	uint8_t pk[32];
	jv out = jv_object(), v;
	int bad = 0;

	g = want_object(c, g, path);
	if (!jv_is_valid(g)) {
		jv_free(g);
		*failed = 1;
		return out;
	}
	unknown_keys(c, g, path, keys);
	nn_json_path_key(p, path, "allocations");
	v = field(g, "allocations");
	if (is_null(v)) {
		err(c, p, "required");
		jv_free(v);
		bad = 1;
	} else {
		v = want_names(c, v, p);
		if (jv_is_valid(v) && jv_array_length(jv_copy(v)) == 0) {
			err(c, p, "empty");
			jv_free(v);
			v = jv_invalid();
		}
		put(&out, "allocations", v, &bad);
	}
	nn_json_path_key(p, path, "peer");
	v = field(g, "peer");
	if (!is_null(v)) {
		v = want_string(c, v, p);
		if (jv_is_valid(v) && (strncmp(jv_string_value(v), "did:key:", 8) ||
				       nn_did_len(jv_string_value(v)) != strlen(jv_string_value(v)) ||
				       nn_did_to_pk(jv_string_value(v), pk, perr) < 0)) {
			err(c, p, "not a did:key (\"%.64s\")", jv_string_value(v));
			jv_free(v);
			v = jv_invalid();
		}
	}
	put(&out, "peer", v, &bad);
	nn_json_path_key(p, path, "location");
	v = field(g, "location");
	put(&out, "location", is_null(v) ? v : n_location(c, v, p), &bad);
	nn_json_path_key(p, path, "redundancy");
	v = field(g, "redundancy");
	put(&out, "redundancy", is_null(v) ? jv_number(1) : want_int(c, v, p, 1, 100), &bad);
	jv_free(g);
	if (bad)
		*failed = 1;
	return out;
}

static jv n_edge(struct ctx *c, jv e, const char *path, jv groups)
{
	static const char *const keys[] = { "from", "to", "max_rtt", "max_rtt_ms", "min_bandwidth",
					    NULL };
	char p[PATHLEN];
	jv out = jv_object(), v;
	int64_t ms;
	int bad = 0;

	e = want_object(c, e, path);
	if (!jv_is_valid(e)) {
		jv_free(out);
		return e;
	}
	unknown_keys(c, e, path, keys);
	for (int w = 0; w < 2; w++) {
		const char *k = w ? "to" : "from";
		nn_json_path_key(p, path, k);
		v = field(e, k);
		if (is_null(v)) {
			err(c, p, "required");
			jv_free(v);
			bad = 1;
			continue;
		}
		if (jv_get_kind(v) != JV_KIND_STRING) {
			err(c, p, "expected a node group name, not %s", kind_a(v));
			jv_free(v);
			bad = 1;
			continue;
		}
		if (jv_is_valid(groups) && !jv_object_has(jv_copy(groups), jv_copy(v))) {
			err(c, p, "no node group named \"%.64s\"", jv_string_value(v));
			jv_free(v);
			bad = 1;
			continue;
		}
		out = jv_object_set(out, jv_string(k), v);
	}
	if (!bad && !strcmp(str_in(out, "from"), str_in(out, "to"))) {
		err(c, path, "from and to are the same group");
		bad = 1;
	}
	if (want_duration(c, e, path, "max_rtt", 0, 0, &ms) < 0)
		bad = 1;
	out = jv_object_set(out, jv_string("max_rtt_ms"), jv_number((double)ms));
	nn_json_path_key(p, path, "min_bandwidth");
	v = field(e, "min_bandwidth");
	put(&out, "min_bandwidth", is_null(v) ? jv_number(0) : want_size(c, v, p, 0), &bad);
	if (!bad && num_in(out, "max_rtt_ms") == 0 && num_in(out, "min_bandwidth") == 0) {
		err(c, path, "constrains nothing (give max_rtt or min_bandwidth)");
		bad = 1;
	}
	jv_free(e);
	if (bad) {
		jv_free(out);
		return jv_invalid();
	}
	return out;
}

/* A jq expression checked by compiling it the way the matcher will. */
static jv want_jq(struct ctx *c, jv v, const char *key)
{
	char e[NN_ERRLEN];
	struct nn_match *m;
	v = want_string(c, v, key);
	if (!jv_is_valid(v))
		return v;
	m = nn_match_compile(jv_object_set(jv_object(), jv_string(key), jv_copy(v)), NULL, NULL,
			     NULL, e);
	if (!m) {
		/* e is "KEY: does not compile: …" */
		const char *msg = !strncmp(e, key, strlen(key)) && e[strlen(key)] == ':' ?
				  e + strlen(key) + 2 : e;
		err(c, key, "%s", msg);
		jv_free(v);
		return jv_invalid();
	}
	nn_match_free(m);
	return v;
}

static jv n_price(struct ctx *c, jv pr, const char *path)
{
	static const char *const keys[] = { "cpu_second", "ram_gib_second", "disk_gib",
					    "gpu_second", NULL };
	int bad = 0;
	pr = want_object(c, pr, path);
	if (!jv_is_valid(pr))
		return pr;
	unknown_keys(c, pr, path, keys);
	jv_object_foreach(pr, k, v) {
		char p[PATHLEN];
		const char *s = jv_get_kind(v) == JV_KIND_STRING ? jv_string_value(v) : NULL;
		size_t n = s ? strspn(s, "0123456789") : 0;
		nn_json_path_key(p, path, jv_string_value(k));
		if (!s || has_nul(v) || n == 0 || s[n] || n > 18) {
			if (jv_get_kind(v) == JV_KIND_NUMBER)
				err(c, p, "expected an integer string such as \"12\" (money is never a number)");
			else
				err(c, p, "expected an integer string of at most 18 digits");
			bad = 1;
		}
		jv_free(k);
		jv_free(v);
	}
	if (bad) {
		jv_free(pr);
		return jv_invalid();
	}
	return pr;
}

/* Cycles along the names in member key of each allocation: DFS with
 * colours; a grey node met again closes a cycle, reported once at the
 * allocation where it starts. */
struct graph {
	int n;
	char **names;
	int **out;
	int *nout;
	int *colour;
	int *stack, depth;
};

static int name_index(const struct graph *g, const char *s)
{
	for (int i = 0; i < g->n; i++)
		if (!strcmp(g->names[i], s))
			return i;
	return -1;
}

static void dfs(struct ctx *c, struct graph *g, int u, const char *key)
{
	g->colour[u] = 1;
	g->stack[g->depth++] = u;
	for (int j = 0; j < g->nout[u]; j++) {
		int v = g->out[u][j];
		if (g->colour[v] == 1) {
			struct nn_buf b;
			char p[PATHLEN];
			int from = g->depth - 1;
			while (g->stack[from] != v)
				from--;
			nn_buf_init(&b, 0);
			for (int k = from; k < g->depth; k++)
				nn_buf_addf(&b, "%s -> ", g->names[g->stack[k]]);
			nn_buf_adds(&b, g->names[v]);
			snprintf(p, sizeof p, "allocations.%s.%s", g->names[v], key);
			err(c, p, "cycle: %s", b.data);
			nn_buf_release(&b);
		} else if (g->colour[v] == 0) {
			dfs(c, g, v, key);
		}
	}
	g->depth--;
	g->colour[u] = 2;
}

/* allocs: the normalized allocations (borrowed); checks key's names exist,
 * are not the allocation itself, form no cycle, and (children) that no
 * allocation has two parents. */
static void check_links(struct ctx *c, jv allocs, const char *key)
{
	struct graph g;
	jv names = jv_keys(jv_copy(allocs));
	int *parent;

	memset(&g, 0, sizeof g);
	g.n = jv_array_length(jv_copy(names));
	g.names = nn_xcalloc((size_t)g.n + 1, sizeof *g.names);
	g.out = nn_xcalloc((size_t)g.n + 1, sizeof *g.out);
	g.nout = nn_xcalloc((size_t)g.n + 1, sizeof *g.nout);
	g.colour = nn_xcalloc((size_t)g.n + 1, sizeof *g.colour);
	g.stack = nn_xcalloc((size_t)g.n + 1, sizeof *g.stack);
	parent = nn_xcalloc((size_t)g.n + 1, sizeof *parent);
	jv_array_foreach(names, i, k) {
		g.names[i] = nn_xstrdup(jv_string_value(k));
		parent[i] = -1;
		jv_free(k);
	}
	for (int i = 0; i < g.n; i++) {
		jv a = jv_object_get(jv_copy(allocs), jv_string(g.names[i]));
		jv l = field(a, key);
		if (jv_get_kind(l) != JV_KIND_ARRAY) {	/* not valid: reported */
			jv_free(l);
			l = jv_array();
		}
		g.out[i] = nn_xcalloc((size_t)jv_array_length(jv_copy(l)) + 1, sizeof **g.out);
		jv_array_foreach(l, j, t) {
			char p[PATHLEN];
			int to = name_index(&g, jv_string_value(t));
			snprintf(p, sizeof p, "allocations.%s.%s[%d]", g.names[i], key, j);
			if (to < 0) {
				const char *sug = suggest(jv_string_value(t), (const char *const *)g.names);
				if (sug)
					err(c, p, "no allocation named \"%s\" (did you mean \"%s\"?)",
					    jv_string_value(t), sug);
				else
					err(c, p, "no allocation named \"%s\"", jv_string_value(t));
			} else if (to == i) {
				err(c, p, "names the allocation itself");
			} else {
				g.out[i][g.nout[i]++] = to;
				if (!strcmp(key, "children")) {
					if (parent[to] >= 0)
						err(c, p, "\"%s\" is already a child of \"%s\" (an allocation has one parent)",
						    g.names[to], g.names[parent[to]]);
					else
						parent[to] = i;
				}
			}
			jv_free(t);
		}
		jv_free(l);
		jv_free(a);
	}
	for (int i = 0; i < g.n; i++)
		if (!g.colour[i])
			dfs(c, &g, i, key);
	for (int i = 0; i < g.n; i++) {
		free(g.names[i]);
		free(g.out[i]);
	}
	free(g.names);
	free(g.out);
	free(g.nout);
	free(g.colour);
	free(g.stack);
	free(parent);
	jv_free(names);
}

static const char *const top_keys[] = {
	"version", "name", "allocations", "nodes", "edges", "where", "rank", "max_price",
	"deadline", "deadline_ms", "bid_window", "bid_window_ms", "heartbeat", "heartbeat_ms",
	"contract", NULL
};

/* Each allocation in exactly one group (groups and allocs borrowed). */
static void check_membership(struct ctx *c, jv groups, jv allocs, int all_groups)
{
	jv seen = jv_object();	/* allocation -> group */
	jv_object_foreach(groups, gk, g) {
		jv l = field(g, "allocations");
		if (jv_get_kind(l) != JV_KIND_ARRAY) {	/* not valid: reported */
			jv_free(l);
			l = jv_array();
		}
		jv_array_foreach(l, i, a) {
			char p[PATHLEN];
			jv prev = jv_object_get(jv_copy(seen), jv_copy(a));
			snprintf(p, sizeof p, "nodes.%s.allocations[%d]", jv_string_value(gk), i);
			if (!jv_object_has(jv_copy(allocs), jv_copy(a)))
				err(c, p, "no allocation named \"%s\"", jv_string_value(a));
			else if (jv_is_valid(prev))
				err(c, p, "\"%s\" is already in node group \"%s\" (an allocation is in one group)",
				    jv_string_value(a), jv_string_value(prev));
			else
				seen = jv_object_set(seen, jv_copy(a), jv_copy(gk));
			jv_free(prev);
			jv_free(a);
		}
		jv_free(l);
		jv_free(gk);
		jv_free(g);
	}
	if (all_groups) {
		jv keys = jv_keys(jv_copy(allocs));
		jv_array_foreach(keys, i, a) {
			char p[PATHLEN];
			(void)i;
			if (!jv_object_has(jv_copy(seen), jv_copy(a))) {
				snprintf(p, sizeof p, "allocations.%s", jv_string_value(a));
				err(c, p, "in no node group (list it in one of nodes)");
			}
			jv_free(a);
		}
		jv_free(keys);
	}
	jv_free(seen);
}

static jv normalize(jv doc, const char *defname, jv *errors)
{
	struct ctx c = { jv_array(), 0 };
	jv out = jv_object(), v, allocs, groups = jv_invalid();
	int64_t ms, deadline;
	int bad = 0, afailed = 0;	/* failures are counted in c anyway */

	doc = want_object(&c, doc, "");
	if (!jv_is_valid(doc))
		goto done;
	if (absent(doc, "allocations") && (!absent(doc, "Job") ||
					   (!absent(doc, "kind") && !absent(doc, "apiVersion")))) {
		err(&c, "", "a %s, not an ensemble (nunet-run convert --from %s makes one of it)",
		    absent(doc, "Job") ? "Kubernetes manifest" : "Nomad job",
		    absent(doc, "Job") ? "kubernetes" : "nomad");
		jv_free(doc);
		goto done;
	}
	unknown_keys(&c, doc, "", top_keys);

	v = field(doc, "version");
	if (!is_null(v) && !(jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) == 1)) {
		if (jv_get_kind(v) == JV_KIND_NUMBER)
			err(&c, "version", "unsupported version %g (this program reads version 1)",
			    jv_number_value(v));
		else
			err(&c, "version", "expected the integer 1, not %s", kind_a(v));
		bad = 1;
	}
	jv_free(v);
	out = jv_object_set(out, jv_string("version"), jv_number(1));

	v = field(doc, "name");
	if (is_null(v)) {
		jv_free(v);
		v = jv_string(defname);
	} else if (!valid_name_jv(v)) {
		if (jv_get_kind(v) == JV_KIND_STRING)
			err(&c, "name", "\"%.64s\" is not a valid name (%s)", jv_string_value(v), NAME_RULE);
		else
			err(&c, "name", "expected a string, not %s", kind_a(v));
		jv_free(v);
		v = jv_invalid();
	}
	put(&out, "name", v, &bad);

	/* allocations */
	allocs = jv_object();
	v = field(doc, "allocations");
	if (is_null(v)) {
		err(&c, "allocations", "required");
		jv_free(v);
	} else if (jv_get_kind(v) != JV_KIND_OBJECT) {
		err(&c, "allocations", "expected an object of allocations by name, not %s", kind_a(v));
		jv_free(v);
	} else if (jv_object_length(jv_copy(v)) == 0) {
		err(&c, "allocations", "empty: an ensemble runs at least one allocation");
		jv_free(v);
	} else if (jv_object_length(jv_copy(v)) > NN_ENSEMBLE_MAX_ALLOCS) {
		err(&c, "allocations", "more than %d", NN_ENSEMBLE_MAX_ALLOCS);
		jv_free(v);
	} else {
		jv keys = jv_keys(jv_copy(v));
		jv_array_foreach(keys, i, k) {
			char p[PATHLEN];
			jv a;
			(void)i;
			nn_json_path_key(p, "allocations", jv_string_value(k));
			if (!valid_name_jv(k)) {
				err(&c, p, "not a valid allocation name (%s)", NAME_RULE);
				jv_free(k);
				continue;
			}
			a = n_alloc(&c, jv_object_get(jv_copy(v), jv_copy(k)), p, &afailed);
			allocs = jv_object_set(allocs, k, a);
		}
		jv_free(keys);
		jv_free(v);
	}
	check_links(&c, allocs, "depends_on");
	check_links(&c, allocs, "children");

	/* node groups: by default one per allocation, of the same name */
	v = field(doc, "nodes");
	if (is_null(v)) {
		jv_free(v);
		groups = jv_object();
		jv_object_foreach(allocs, k, a) {
			jv g = jv_object();
			g = jv_object_set(g, jv_string("allocations"), JV_ARRAY(jv_copy(k)));
			g = jv_object_set(g, jv_string("peer"), jv_null());
			g = jv_object_set(g, jv_string("location"), jv_null());
			g = jv_object_set(g, jv_string("redundancy"), jv_number(1));
			groups = jv_object_set(groups, k, g);
			jv_free(a);
		}
	} else if (jv_get_kind(v) != JV_KIND_OBJECT || jv_object_length(jv_copy(v)) == 0) {
		if (jv_get_kind(v) != JV_KIND_OBJECT)
			err(&c, "nodes", "expected an object of node groups by name, not %s", kind_a(v));
		else
			err(&c, "nodes", "empty (leave nodes out for one group per allocation)");
		jv_free(v);
	} else if (jv_object_length(jv_copy(v)) > NN_ENSEMBLE_MAX_ALLOCS) {
		err(&c, "nodes", "more than %d", NN_ENSEMBLE_MAX_ALLOCS);
		jv_free(v);
	} else {
		int gok = 1, gfailed = 0;
		groups = jv_object();
		jv_object_foreach(v, k, g) {
			char p[PATHLEN];
			nn_json_path_key(p, "nodes", jv_string_value(k));
			if (!valid_name_jv(k)) {
				err(&c, p, "not a valid node group name (%s)", NAME_RULE);
				gok = 0;
				jv_free(g);
				jv_free(k);
				continue;
			}
			groups = jv_object_set(groups, k, n_group(&c, g, p, &gfailed));
		}
		jv_free(v);
		check_membership(&c, groups, allocs, gok);
	}

	/* edges */
	v = field(doc, "edges");
	if (is_null(v)) {
		jv_free(v);
		out = jv_object_set(out, jv_string("edges"), jv_array());
	} else if (jv_get_kind(v) != JV_KIND_ARRAY) {
		err(&c, "edges", "expected an array, not %s", kind_a(v));
		jv_free(v);
	} else if (jv_array_length(jv_copy(v)) > NN_ENSEMBLE_MAX_ALLOCS) {
		err(&c, "edges", "more than %d", NN_ENSEMBLE_MAX_ALLOCS);
		jv_free(v);
	} else {
		jv edges = jv_array();
		jv_array_foreach(v, i, e) {
			char p[PATHLEN];
			nn_json_path_index(p, "edges", i);
			e = n_edge(&c, e, p, groups);
			if (jv_is_valid(e))
				edges = jv_array_append(edges, e);
			else
				jv_free(e);
		}
		jv_free(v);
		out = jv_object_set(out, jv_string("edges"), edges);
	}

	v = field(doc, "where");
	put(&out, "where", is_null(v) ? v : want_jq(&c, v, "where"), &bad);
	v = field(doc, "rank");
	put(&out, "rank", is_null(v) ? v : want_jq(&c, v, "rank"), &bad);
	v = field(doc, "max_price");
	put(&out, "max_price", is_null(v) ? v : n_price(&c, v, "max_price"), &bad);

	if (want_duration(&c, doc, "", "deadline", 60000, 1, &deadline) < 0)
		bad = 1;
	out = jv_object_set(out, jv_string("deadline_ms"), jv_number((double)deadline));
	if (want_duration(&c, doc, "", "bid_window", 500, 1, &ms) == 0 && ms >= deadline)
		err(&c, nn_json_has(doc, "bid_window") ? "bid_window" : "bid_window_ms",
		    "must be shorter than the deadline (%lldms)", (long long)deadline);
	out = jv_object_set(out, jv_string("bid_window_ms"), jv_number((double)ms));
	/* providers push a heartbeat this often; three missed: lost */
	if (want_duration(&c, doc, "", "heartbeat", 2000, 100, &ms) < 0)
		bad = 1;
	else if (ms > 600000)
		err(&c, nn_json_has(doc, "heartbeat") ? "heartbeat" : "heartbeat_ms", "must be at most 10m");
	out = jv_object_set(out, jv_string("heartbeat_ms"), jv_number((double)ms));

	v = field(doc, "contract");
	put(&out, "contract", is_null(v) ? v : want_string(&c, v, "contract"), &bad);

	if (jv_is_valid(groups)) {
		out = jv_object_set(out, jv_string("allocations"), allocs);
		out = jv_object_set(out, jv_string("nodes"), groups);
		groups = jv_invalid();
	} else {
		jv_free(allocs);
	}
	jv_free(groups);
	jv_free(doc);
done:
	if (c.n == 0 && jv_object_has(jv_copy(out), jv_string("nodes"))) {
		jv_free(c.errs);
		return out;
	}
	if (c.n == 0)	/* cannot happen: every failure reports */
		err(&c, "", "invalid ensemble");
	jv_free(out);
	if (errors)
		*errors = c.errs;
	else
		jv_free(c.errs);
	return jv_invalid();
}

jv nn_ensemble_normalize(jv doc, jv *errors)
{
	return normalize(doc, "ensemble", errors);
}

jv nn_ensemble_parse(const char *text, size_t len, const char *name, jv *errors)
{
	char defname[64] = "ensemble", e[NN_ERRLEN];
	size_t i = 0;
	jv doc;

	if (name) {
		const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
		size_t n = strcspn(base, ".");
		if (n < sizeof defname && valid_name(base, n)) {
			memcpy(defname, base, n);
			defname[n] = 0;
		}
	}
	if (len > NN_ENSEMBLE_MAX_TEXT) {
		if (errors)
			*errors = JV_ARRAY(jv_string_fmt(".: larger than %d bytes", NN_ENSEMBLE_MAX_TEXT));
		return jv_invalid();
	}
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
		i++;
	if (i < len && (text[i] == '{' || text[i] == '[')) {
		doc = nn_json_parse(text, len, e);
		if (!jv_is_valid(doc)) {
			/* flow-style YAML starts so too */
			char ye[NN_ERRLEN];
			jv_free(doc);
			doc = nn_yamldoc_parse(text, len, ye);
		}
	} else {
		doc = nn_yamldoc_parse(text, len, e);
	}
	if (!jv_is_valid(doc)) {
		/* one line, without the input libjq quotes after its message */
		char *w = strstr(e, " (while parsing");
		if (w)
			*w = 0;
		for (char *p = e; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		jv_free(doc);
		if (errors)
			*errors = JV_ARRAY(jv_string(e));
		return jv_invalid();
	}
	return normalize(doc, defname, errors);
}

/* --- requirements --- */

jv nn_ensemble_group_requirements(jv ens, const char *group)
{
	jv g = jv_object_get(jv_object_get(jv_copy(ens), jv_string("nodes")), jv_string(group));
	jv allocs = jv_object_get(jv_copy(ens), jv_string("allocations"));
	jv req = jv_object(), list, exs = jv_array(), v;
	int64_t milli = 0;
	double ram = 0, disk = 0, gpus = 0;
	struct nn_buf w;

	if (jv_get_kind(g) != JV_KIND_OBJECT || jv_get_kind(allocs) != JV_KIND_OBJECT) {
		jv_free(g);
		jv_free(allocs);
		jv_free(req);
		jv_free(exs);
		return jv_invalid_with_msg(jv_string_fmt("no node group named \"%s\"", group));
	}
	list = field(g, "allocations");
	jv_array_foreach(list, i, name) {
		jv a = jv_object_get(jv_copy(allocs), name);
		jv r = field(a, "resources");
		jv ex = field(a, "executor");
		int seen = 0;
		(void)i;
		milli += (int64_t)llround(num_in(r, "cpu") * 1000);
		ram += num_in(r, "ram");
		disk += num_in(r, "disk");
		gpus += num_in(r, "gpus");
		jv_array_foreach(exs, j, x) {
			(void)j;
			if (jv_equal(x, jv_copy(ex)))
				seen = 1;
		}
		if (!seen && jv_get_kind(ex) == JV_KIND_STRING)
			exs = jv_array_append(exs, jv_copy(ex));
		jv_free(ex);
		jv_free(r);
		jv_free(a);
	}
	jv_free(list);
	req = jv_object_set(req, jv_string("v"), jv_number(1));
	/* whole cores as cores; else millicores, an integer the matcher
	 * takes exactly (1.007 cores is not exact in a double) */
	req = jv_object_set(req, jv_string("cpu"), milli % 1000 ?
		jv_object_set(jv_object(), jv_string("millicores"), jv_number((double)milli)) :
		jv_object_set(jv_object(), jv_string("cores"), jv_number((double)(milli / 1000))));
	req = jv_object_set(req, jv_string("ram"), jv_object_set(jv_object(), jv_string("size"),
		jv_number(ram)));
	if (disk > 0)
		req = jv_object_set(req, jv_string("disk"), jv_object_set(jv_object(),
			jv_string("size"), jv_number(disk)));
	if (gpus > 0)
		req = jv_object_set(req, jv_string("gpus"), jv_object_set(jv_object(),
			jv_string("count"), jv_number(gpus)));
	/* executors in requirements means "any of"; a group that needs several
	 * asks for all of them in where */
	nn_buf_init(&w, 0);
	if (jv_array_length(jv_copy(exs)) == 1) {
		req = jv_object_set(req, jv_string("executors"), jv_copy(exs));
	} else if (jv_array_length(jv_copy(exs)) > 1) {
		char *list_s = nn_json_dump(exs);
		/* not all(…): libjq 1.6 leaks when all() stops early */
		nn_buf_addf(&w, "(%s - (.executors // []) | length == 0)", list_s);
		free(list_s);
	}
	jv_free(exs);
	v = field(g, "location");
	if (jv_get_kind(v) == JV_KIND_OBJECT) {
		jv loc = jv_object();
		jv acc = field(v, "accept"), rej = field(v, "reject");
		if (jv_get_kind(acc) == JV_KIND_ARRAY && jv_array_length(jv_copy(acc)) > 0)
			loc = jv_object_set(loc, jv_string("accept"), jv_copy(acc));
		if (jv_get_kind(rej) == JV_KIND_ARRAY && jv_array_length(jv_copy(rej)) > 0)
			loc = jv_object_set(loc, jv_string("reject"), jv_copy(rej));
		jv_free(acc);
		jv_free(rej);
		req = jv_object_set(req, jv_string("location"), loc);
	}
	jv_free(v);
	v = field(ens, "max_price");
	if (jv_get_kind(v) == JV_KIND_OBJECT)
		req = jv_object_set(req, jv_string("price"), jv_object_set(jv_object(),
			jv_string("max"), jv_copy(v)));
	jv_free(v);
	v = field(ens, "where");
	if (jv_get_kind(v) == JV_KIND_STRING) {
		if (w.len) {
			struct nn_buf both;
			nn_buf_init(&both, 0);
			nn_buf_addf(&both, "(%s) and %s", jv_string_value(v), w.data);
			nn_buf_release(&w);
			w = both;
		} else {
			nn_buf_adds(&w, jv_string_value(v));
		}
	}
	jv_free(v);
	if (w.len)
		req = jv_object_set(req, jv_string("where"), jv_string(w.data));
	nn_buf_release(&w);
	v = field(ens, "rank");
	if (jv_get_kind(v) == JV_KIND_STRING)
		req = jv_object_set(req, jv_string("rank"), v);
	else
		jv_free(v);
	jv_free(g);
	jv_free(allocs);
	return req;
}
