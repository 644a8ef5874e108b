/*
 * json — parsing through jv_parse_sized, and the RFC 8785 JSON
 * Canonicalization Scheme: object members sorted by the UTF-16 code units of
 * their names, no insignificant whitespace, strings with the minimal escapes,
 * numbers in the ECMAScript Number-to-String form (shortest round-trip
 * digits).  Signed documents carry integers only, but numbers are handled in
 * full so any JSON can be canonicalized.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Two kinds of input that libjq 1.6 mishandles are refused before it sees
 * them; neither is JSON.  A raw NUL byte: libjq reads it as U+0000 inside a
 * string (two byte strings would parse as one document) and leaks the
 * string it was building when the NUL cuts a token short.  A string right
 * after a complete value with no separator between them ("[1\"x\"]"):
 * libjq's value() returns "Expected separator between values" without
 * freeing the string (fixed in jq 1.7), so a peer could leak up to a line
 * cap per line it sends.  Returns NULL, or what is wrong with *at set.
 */
static const char *libjq_trap(const char *s, size_t len, size_t *at)
{
	int in_str = 0, esc = 0, after_value = 0;
	size_t i = 0;

	if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))	/* libjq skips a BOM */
		i = 3;
	for (; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		*at = i;
		if (c == 0)
			return "NUL byte";
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0, after_value = 1;
			continue;
		}
		switch (c) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case '"':
			if (after_value)
				return "a string right after a value";
			in_str = 1;
			break;
		case '[': case '{': case ',': case ':':
			after_value = 0;
			break;
		default:	/* ']', '}', a number or a literal */
			after_value = 1;
			break;
		}
	}
	return NULL;
}

jv nn_json_parse(const char *s, size_t len, char *err)
{
	const char *trap;
	size_t at = 0;
	jv v;

	if (len > 0x7fffffff) {
		nn_seterr(err, "not JSON: input too large");
		return jv_invalid();
	}
	if ((trap = libjq_trap(s, len, &at))) {
		nn_seterr(err, "not JSON: %s at offset %zu", trap, at);
		return jv_invalid();
	}
	v = jv_parse_sized(s, (int)len);
	if (!jv_is_valid(v)) {
		jv msg = jv_invalid_get_msg(v);
		if (jv_get_kind(msg) == JV_KIND_STRING)
			nn_seterr(err, "not JSON: %s", jv_string_value(msg));
		else
			nn_seterr(err, "not JSON");
		jv_free(msg);
		return jv_invalid();
	}
	return v;
}

const char *nn_json_kind(jv v)
{
	return jv_kind_name(jv_get_kind(v));
}

void nn_json_path_key(char *out, const char *base, const char *key)
{
	if (snprintf(out, NN_JSON_PATHLEN, "%s%s%.64s", base, *base ? "." : "", key) >=
	    NN_JSON_PATHLEN)
		strcpy(out + NN_JSON_PATHLEN - 4, "...");
}

void nn_json_path_index(char *out, const char *base, int i)
{
	if (snprintf(out, NN_JSON_PATHLEN, "%s[%d]", base, i) >= NN_JSON_PATHLEN)
		strcpy(out + NN_JSON_PATHLEN - 4, "...");
}

int nn_json_is_int(double n)
{
	return isfinite(n) && n == floor(n) && fabs(n) <= 9007199254740992.0;
}

static int put_string(struct nn_buf *o, const char *s, int len)
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	const unsigned char *run = p;

	if (nn_buf_addc(o, '"') < 0)
		return -1;
	for (; p < end; p++) {
		const char *esc = NULL;
		char u[7];
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		switch (*p) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
			u[4] = hx[*p >> 4]; u[5] = hx[*p & 15]; u[6] = '\0';
			esc = u;
		}
		if (nn_buf_add(o, run, p - run) < 0 || nn_buf_adds(o, esc) < 0)
			return -1;
		run = p + 1;
	}
	if (nn_buf_add(o, run, end - run) < 0 || nn_buf_addc(o, '"') < 0)
		return -1;
	return 0;
}

/* ECMAScript Number::toString for a finite double. */
static int put_number(struct nn_buf *o, double d)
{
	char tmp[40], digits[20];
	int prec, nd, e10, i;
	char *p;

	if (d == 0)
		return nn_buf_addc(o, '0');
	if (nn_json_is_int(d)) {
		char ibuf[24], *q = ibuf + sizeof ibuf;
		int64_t v = (int64_t)d;
		uint64_t u = v < 0 ? (uint64_t)(-v) : (uint64_t)v;
		do
			*--q = (char)('0' + u % 10);
		while ((u /= 10));
		if (v < 0)
			*--q = '-';
		return nn_buf_add(o, q, (size_t)(ibuf + sizeof ibuf - q));
	}
	if (d < 0) {
		if (nn_buf_addc(o, '-') < 0)
			return -1;
		d = -d;
	}
	/* shortest precision that round-trips */
	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	/* tmp is D.DDDDe±XX: collect digits and exponent */
	nd = 0;
	for (p = tmp; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	e10 = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	/* n = e10 + 1 is the position of the decimal point (ES spec's n) */
	{
		int n = e10 + 1, k = nd;
		if (k <= n && n <= 21) {
			if (nn_buf_add(o, digits, k) < 0)
				return -1;
			for (i = 0; i < n - k; i++)
				if (nn_buf_addc(o, '0') < 0)
					return -1;
			return 0;
		}
		if (0 < n && n <= 21)
			return nn_buf_addf(o, "%.*s.%s", n, digits, digits + n);
		if (-6 < n && n <= 0) {
			if (nn_buf_adds(o, "0.") < 0)
				return -1;
			for (i = 0; i < -n; i++)
				if (nn_buf_addc(o, '0') < 0)
					return -1;
			return nn_buf_adds(o, digits);
		}
		if (k == 1)
			return nn_buf_addf(o, "%ce%c%d", digits[0], n - 1 >= 0 ? '+' : '-', abs(n - 1));
		return nn_buf_addf(o, "%c.%se%c%d", digits[0], digits + 1,
				   n - 1 >= 0 ? '+' : '-', abs(n - 1));
	}
}

/* Decode one UTF-8 sequence; returns code point and advances *p. Invalid
 * bytes decode as themselves (jv already replaced invalid UTF-8). */
static uint32_t utf8_next(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *s = *p;
	uint32_t c = *s++;
	int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
	if (extra)
		c &= 0x3f >> extra;
	while (extra-- && s < end)
		c = c << 6 | (*s++ & 0x3f);
	*p = s;
	return c;
}

/* Compare two UTF-8 strings by their UTF-16 code units. */
static int cmp_utf16(const char *a, int alen, const char *b, int blen)
{
	const unsigned char *pa = (const unsigned char *)a, *ea = pa + alen;
	const unsigned char *pb = (const unsigned char *)b, *eb = pb + blen;
	uint16_t ua[2], ub[2];
	int na = 0, nb = 0, ia = 0, ib = 0;

	for (;;) {
		if (ia == na) {
			if (pa == ea)
				na = -1;
			else {
				uint32_t c = utf8_next(&pa, ea);
				if (c >= 0x10000) {
					c -= 0x10000;
					ua[0] = 0xd800 | (c >> 10);
					ua[1] = 0xdc00 | (c & 0x3ff);
					na = 2;
				} else {
					ua[0] = c;
					na = 1;
				}
				ia = 0;
			}
		}
		if (ib == nb) {
			if (pb == eb)
				nb = -1;
			else {
				uint32_t c = utf8_next(&pb, eb);
				if (c >= 0x10000) {
					c -= 0x10000;
					ub[0] = 0xd800 | (c >> 10);
					ub[1] = 0xdc00 | (c & 0x3ff);
					nb = 2;
				} else {
					ub[0] = c;
					nb = 1;
				}
				ib = 0;
			}
		}
		if (na < 0 || nb < 0)
			return (na < 0 ? 0 : 1) - (nb < 0 ? 0 : 1);
		if (ua[ia] != ub[ib])
			return ua[ia] < ub[ib] ? -1 : 1;
		ia++;
		ib++;
	}
}

struct key {
	const char *s;
	int len;
	jv name, val;
};

/* UTF-8 byte order is code point order, which is UTF-16 order except
 * between U+E000..U+FFFF (lead bytes 0xEE, 0xEF) and astral characters
 * (lead bytes 0xF0..0xF4): only that case needs the slow comparison. */
static int key_cmp(const void *x, const void *y)
{
	const struct key *a = x, *b = y;
	const unsigned char *p = (const unsigned char *)a->s, *q = (const unsigned char *)b->s;
	int n = a->len < b->len ? a->len : b->len;
	for (int i = 0; i < n; i++) {
		if (p[i] == q[i])
			continue;
		unsigned lo = p[i] < q[i] ? p[i] : q[i], hi = p[i] < q[i] ? q[i] : p[i];
		if (lo >= 0xee && hi >= 0xf0)
			return cmp_utf16(a->s, a->len, b->s, b->len);
		return p[i] < q[i] ? -1 : 1;
	}
	return (a->len > n) - (b->len > n);
}

static int canon(jv v, struct nn_buf *o, int depth, const char *skip, size_t *at, char *err)
{
	if (depth > 256)
		return nn_seterr(err, "JSON nested too deeply");
	switch (jv_get_kind(v)) {
	case JV_KIND_NULL:
		return nn_buf_adds(o, "null") < 0 ? nn_seterr(err, "JSON too large") : 0;
	case JV_KIND_TRUE:
		return nn_buf_adds(o, "true") < 0 ? nn_seterr(err, "JSON too large") : 0;
	case JV_KIND_FALSE:
		return nn_buf_adds(o, "false") < 0 ? nn_seterr(err, "JSON too large") : 0;
	case JV_KIND_NUMBER: {
		double d = jv_number_value(v);
		if (!isfinite(d))
			return nn_seterr(err, "number is not finite");
		return put_number(o, d) < 0 ? nn_seterr(err, "JSON too large") : 0;
	}
	case JV_KIND_STRING:
		if (put_string(o, jv_string_value(v), jv_string_length_bytes(jv_copy(v))) < 0)
			return nn_seterr(err, "JSON too large");
		return 0;
	case JV_KIND_ARRAY: {
		int n = jv_array_length(jv_copy(v));
		if (nn_buf_addc(o, '[') < 0)
			return nn_seterr(err, "JSON too large");
		for (int i = 0; i < n; i++) {
			jv e = jv_array_get(jv_copy(v), i);
			int r = (i && nn_buf_addc(o, ',') < 0) ? nn_seterr(err, "JSON too large")
							      : canon(e, o, depth + 1, NULL, NULL, err);
			jv_free(e);
			if (r < 0)
				return -1;
		}
		return nn_buf_addc(o, ']') < 0 ? nn_seterr(err, "JSON too large") : 0;
	}
	case JV_KIND_OBJECT: {
		int n = jv_object_length(jv_copy(v)), i = 0, r = 0;
		struct key small[16], *keys = n <= 16 ? small : nn_xmalloc(n * sizeof *keys);
		jv_object_foreach(v, k, val) {
			if (skip && !strcmp(jv_string_value(k), skip)) {
				jv_free(k);
				jv_free(val);
				continue;
			}
			keys[i].name = k;
			keys[i].val = val;
			keys[i].s = jv_string_value(k);
			keys[i].len = jv_string_length_bytes(jv_copy(k));
			i++;
		}
		n = i;
		qsort(keys, n, sizeof *keys, key_cmp);
		if (nn_buf_addc(o, '{') < 0)
			r = nn_seterr(err, "JSON too large");
		for (i = 0; i < n && r == 0; i++) {
			if (at && *at == (size_t)-1) {
				struct key sk = { skip, (int)strlen(skip), jv_null(), jv_null() };
				if (key_cmp(&sk, &keys[i]) < 0)
					*at = o->len;
			}
			if ((i && nn_buf_addc(o, ',') < 0) ||
			    put_string(o, keys[i].s, keys[i].len) < 0 || nn_buf_addc(o, ':') < 0) {
				r = nn_seterr(err, "JSON too large");
				break;
			}
			r = canon(keys[i].val, o, depth + 1, NULL, NULL, err);
		}
		if (at && *at == (size_t)-1)
			*at = o->len;
		if (r == 0 && nn_buf_addc(o, '}') < 0)
			r = nn_seterr(err, "JSON too large");
		for (i = 0; i < n; i++) {
			jv_free(keys[i].name);
			jv_free(keys[i].val);
		}
		if (keys != small)
			free(keys);
		return r;
	}
	default:
		return nn_seterr(err, "not a JSON value");
	}
}

int nn_json_put_string(struct nn_buf *out, const char *s, size_t len)
{
	return put_string(out, s, (int)len);
}

int nn_json_canon(jv v, struct nn_buf *out, char *err)
{
	return canon(v, out, 0, NULL, NULL, err);
}

int nn_json_canon_without(jv v, const char *key, struct nn_buf *out, char *err)
{
	return canon(v, out, 0, key, NULL, err);
}

int nn_json_canon_without_at(jv v, const char *key, struct nn_buf *out, size_t *at, char *err)
{
	*at = (size_t)-1;
	if (jv_get_kind(v) != JV_KIND_OBJECT)
		return nn_seterr(err, "expected an object");
	return canon(v, out, 0, key, at, err);
}

char *nn_json_canon_str(jv v, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	if (canon(v, &b, 0, NULL, NULL, err) < 0) {
		nn_buf_release(&b);
		return NULL;
	}
	return nn_buf_detach(&b, NULL);
}

char *nn_json_dump(jv v)
{
	char *s = nn_json_canon_str(v, NULL);
	return s ? s : nn_xstrdup("null");
}

int nn_json_get_str(jv obj, const char *key, const char **out, char *err)
{
	jv f;
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return nn_seterr(err, "expected an object");
	f = jv_object_get(jv_copy(obj), jv_string(key));
	if (jv_get_kind(f) != JV_KIND_STRING) {
		int missing = !jv_is_valid(f);
		jv_free(f);
		return nn_seterr(err, "%s: %s", key, missing ? "missing" : "expected a string");
	}
	*out = jv_string_value(f);  /* still owned by obj */
	jv_free(f);
	return 0;
}

int nn_json_get_int(jv obj, const char *key, int64_t *out, char *err)
{
	jv f;
	double d;
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return nn_seterr(err, "expected an object");
	f = jv_object_get(jv_copy(obj), jv_string(key));
	if (jv_get_kind(f) != JV_KIND_NUMBER) {
		int missing = !jv_is_valid(f);
		jv_free(f);
		return nn_seterr(err, "%s: %s", key, missing ? "missing" : "expected an integer");
	}
	d = jv_number_value(f);
	jv_free(f);
	if (!nn_json_is_int(d))
		return nn_seterr(err, "%s: expected an integer", key);
	*out = (int64_t)d;
	return 0;
}

int nn_json_get_obj(jv obj, const char *key, char *err)
{
	jv f;
	int k;
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return nn_seterr(err, "expected an object");
	f = jv_object_get(jv_copy(obj), jv_string(key));
	k = jv_get_kind(f);
	jv_free(f);
	if (k == JV_KIND_INVALID)
		return nn_seterr(err, "%s: missing", key);
	if (k != JV_KIND_OBJECT)
		return nn_seterr(err, "%s: expected an object", key);
	return 0;
}

int nn_json_has(jv obj, const char *key)
{
	jv f;
	int has;
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return 0;
	f = jv_object_get(jv_copy(obj), jv_string(key));
	has = jv_is_valid(f);
	jv_free(f);
	return has;
}
