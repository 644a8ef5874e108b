/*
 * jscan — one pass over the text, recursive descent, no allocation.  What
 * it accepts is RFC 8259 JSON minus what libjq reads differently from the
 * bytes or what this scanner does not try to follow: numbers in the strict
 * grammar only (libjq also takes "01", "+1", ".5", "nan"), no raw control
 * characters in strings, no escape in a top-level key (so that "t\u006f"
 * is never mistaken for, or missed as, "to"), no repeated top-level key
 * (libjq keeps the last; the fallback does the same).  Invalid UTF-8 inside
 * a string is accepted, as libjq accepts it (replacing it), but such a
 * text is not canonical.
 *
 * Canonical means: no whitespace; every object's keys plain ASCII without
 * escapes, in strictly increasing byte order (for ASCII that is RFC 8785's
 * UTF-16 order, and strictness rules out duplicates); strings valid UTF-8
 * with exactly the escapes nn_json_put_string writes; numbers integers of
 * at most 15 digits and not "-0".  Anything else is left to the canonical
 * writer, conservatively.
 */
#include "jscan.h"

#include <string.h>
#include "json.h"

struct st {
	const unsigned char *p, *e;
	int canon;
};

static void ws(struct st *s)
{
	while (s->p < s->e && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n')) {
		s->p++;
		s->canon = 0;
	}
}

static int hexval(unsigned c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (int)(c - 'A' + 10);
	return -1;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong form, no
 * surrogate, nothing above U+10FFFF), or 0. */
static size_t utf8_ok(const unsigned char *p, const unsigned char *e)
{
	unsigned c = p[0], c1;
	size_t n;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if ((size_t)(e - p) < n)
		return 0;
	c1 = p[1];
	if ((c1 & 0xc0) != 0x80)
		return 0;
	if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
	    (c == 0xf4 && c1 > 0x8f))
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A string at s->p (its opening quote).  *plain: no escape, ASCII only. */
static int str(struct st *s, int *plain)
{
	const unsigned char *p = s->p + 1, *e = s->e;
	*plain = 1;
	while (p < e) {
		unsigned c = *p;
		if (c == '"') {
			s->p = p + 1;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c < 0x80 && c != '\\') {
			p++;
			continue;
		}
		*plain = 0;
		if (c >= 0x80) {
			size_t n = utf8_ok(p, e);
			if (!n) {
				s->canon = 0;	/* libjq replaces it */
				n = 1;
			}
			p += n;
			continue;
		}
		if (++p >= e)
			return -1;
		switch (*p) {
		case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
			p++;
			break;
		case '/':
			s->canon = 0;
			p++;
			break;
		case 'u': {
			int v = 0;
			if (e - p < 5)
				return -1;
			for (int i = 1; i <= 4; i++) {
				int h = hexval(p[i]);
				if (h < 0)
					return -1;
				if (p[i] >= 'A' && p[i] <= 'F')
					s->canon = 0;
				v = v << 4 | h;
			}
			/* a surrogate: libjq refuses a high one not followed
			 * by a low one, and replaces a lone low one; the full
			 * path decides (found by the envscan fuzz target) */
			if (v >= 0xd800 && v <= 0xdfff)
				return -1;
			/* the writer spells only control characters this way,
			 * and those that have no short escape */
			if (v >= 0x20 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t')
				s->canon = 0;
			p += 5;
			break;
		}
		default:
			return -1;
		}
	}
	return -1;
}

/* A number at s->p in the strict grammar; *integer as jscan.h says. */
static int num(struct st *s, int *integer)
{
	const unsigned char *p = s->p, *e = s->e, *d;
	int neg = 0;
	*integer = 1;
	if (p < e && *p == '-') {
		neg = 1;
		p++;
	}
	d = p;
	if (p >= e || *p < '0' || *p > '9')
		return -1;
	if (*p == '0')
		p++;
	else
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	if (p - d > 15)
		*integer = 0;
	if (neg && p - d == 1 && *d == '0')
		s->canon = 0;	/* -0 is written 0 */
	if (p < e && *p == '.') {
		*integer = 0;
		if (++p >= e || *p < '0' || *p > '9')
			return -1;
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		*integer = 0;
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || *p < '0' || *p > '9')
			return -1;
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (!*integer)
		s->canon = 0;
	s->p = p;
	return 0;
}

static int lit(struct st *s, const char *w, size_t n)
{
	if ((size_t)(s->e - s->p) < n || memcmp(s->p, w, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

/* Compare two keys as RFC 8785 orders plain ASCII ones. */
static int keycmp(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
	int r = memcmp(a, b, an < bn ? an : bn);
	return r ? r : (an > bn) - (an < bn);
}

static int value(struct st *s, int depth, struct nn_jscan_member *m);

/* Step into a container at s->p: 1 when it closes at once, 0, or -1. */
static int open_container(struct st *s, int depth, char close)
{
	if (depth > NN_JSCAN_DEPTH)
		return -1;
	s->p++;
	ws(s);
	if (s->p < s->e && *s->p == close) {
		s->p++;
		return 1;
	}
	return 0;
}

/* After a member or element: 1 when the container closes, 0 after a
 * comma (and the whitespace after it), -1 on anything else. */
static int next_item(struct st *s, char close)
{
	ws(s);
	if (s->p >= s->e || (*s->p != close && *s->p != ','))
		return -1;
	s->p++;
	if (s->p[-1] == close)
		return 1;
	ws(s);
	return 0;
}

/* An object at s->p; top-level members go to j (NULL inside). */
static int object(struct st *s, int depth, struct nn_jscan *j)
{
	const unsigned char *prev = NULL;
	size_t prevlen = 0;
	int sorted = 1, r;	/* sorted: the keys so far strictly increase */
	if ((r = open_container(s, depth, '}')) != 0)
		return r < 0 ? -1 : 0;
	for (;;) {
		struct nn_jscan_member tmp, *m = &tmp;
		const unsigned char *k;
		int plain;
		if (s->p >= s->e || *s->p != '"')
			return -1;
		k = s->p + 1;
		if (str(s, &plain) < 0)
			return -1;
		if (prev && keycmp(prev, prevlen, k, (size_t)(s->p - 1 - k)) >= 0)
			sorted = 0;
		if (j) {
			if (!plain || j->n >= NN_JSCAN_MEMBERS)
				return -1;
			m = &j->m[j->n];
			m->key = (const char *)k;
			m->klen = (size_t)(s->p - 1 - k);
			/* a repeated key: libjq keeps the last, we do not guess
			 * (while the keys increase, none can repeat) */
			if (!sorted)
				for (int i = 0; i < j->n; i++)
					if (j->m[i].klen == m->klen && !memcmp(j->m[i].key, k, m->klen))
						return -1;
		}
		if (!plain || !sorted)
			s->canon = 0;
		prev = k;
		prevlen = (size_t)(s->p - 1 - k);
		ws(s);
		if (s->p >= s->e || *s->p != ':')
			return -1;
		s->p++;
		ws(s);
		if (value(s, depth, m) < 0)
			return -1;
		if (j)
			j->n++;
		if ((r = next_item(s, '}')) != 0)
			return r < 0 ? -1 : 0;
	}
}

static int array(struct st *s, int depth)
{
	int r;
	if ((r = open_container(s, depth, ']')) != 0)
		return r < 0 ? -1 : 0;
	for (;;) {
		struct nn_jscan_member tmp;
		if (value(s, depth, &tmp) < 0)
			return -1;
		if ((r = next_item(s, ']')) != 0)
			return r < 0 ? -1 : 0;
	}
}

/* A value at s->p (no whitespace before it), described into m. */
static int value(struct st *s, int depth, struct nn_jscan_member *m)
{
	const unsigned char *start = s->p;
	int flag = 0, r, outer = s->canon;
	if (s->p >= s->e)
		return -1;
	s->canon = 1;
	switch (*s->p) {
	case '"': m->kind = NN_JSCAN_STRING; r = str(s, &flag); break;
	case '{': m->kind = NN_JSCAN_OBJECT; r = object(s, depth + 1, NULL); break;
	case '[': m->kind = NN_JSCAN_ARRAY; r = array(s, depth + 1); break;
	case 't': m->kind = NN_JSCAN_TRUE; r = lit(s, "true", 4); break;
	case 'f': m->kind = NN_JSCAN_FALSE; r = lit(s, "false", 5); break;
	case 'n': m->kind = NN_JSCAN_NULL; r = lit(s, "null", 4); break;
	default: m->kind = NN_JSCAN_NUMBER; r = num(s, &flag); break;
	}
	if (r < 0)
		return -1;
	m->val = (const char *)start;
	m->vlen = (size_t)(s->p - start);
	m->canonical = (char)s->canon;
	s->canon = outer && s->canon;
	m->plain = m->kind == NN_JSCAN_STRING && flag;
	m->integer = m->kind == NN_JSCAN_NUMBER && flag;
	return 0;
}

int nn_jscan_object(const char *text, size_t len, struct nn_jscan *out)
{
	struct st s = { (const unsigned char *)text, (const unsigned char *)text + len, 1 };
	out->n = 0;
	out->canonical = 0;
	ws(&s);
	if (s.p >= s.e || *s.p != '{' || object(&s, 1, out) < 0)
		return -1;
	ws(&s);
	if (s.p != s.e)
		return -1;
	out->canonical = s.canon;
	return 0;
}

const struct nn_jscan_member *nn_jscan_get(const struct nn_jscan *j, const char *key)
{
	size_t n = strlen(key);
	for (int i = 0; i < j->n; i++)
		if (j->m[i].klen == n && !memcmp(j->m[i].key, key, n))
			return &j->m[i];
	return NULL;
}

long long nn_jscan_int(const struct nn_jscan_member *m)
{
	const char *p = m->val, *e = m->val + m->vlen;
	int neg = *p == '-';
	long long v = 0;
	for (p += neg; p < e; p++)
		v = v * 10 + (*p - '0');
	return neg ? -v : v;
}

jv nn_jscan_jv(const struct nn_jscan *j)
{
	jv o = jv_object();
	for (int i = 0; i < j->n; i++) {
		const struct nn_jscan_member *m = &j->m[i];
		jv v;
		switch (m->kind) {
		case NN_JSCAN_TRUE: v = jv_true(); break;
		case NN_JSCAN_FALSE: v = jv_false(); break;
		case NN_JSCAN_NULL: v = jv_null(); break;
		default:
			if (m->plain)
				v = jv_string_sized(m->val + 1, (int)m->vlen - 2);
			else if (m->integer)
				v = jv_number((double)nn_jscan_int(m));
			else
				v = nn_json_parse(m->val, m->vlen, NULL);
		}
		if (!jv_is_valid(v)) {	/* cannot happen: jscan.h's promise */
			jv_free(o);
			return v;
		}
		o = jv_object_set(o, jv_string_sized(m->key, (int)m->klen), v);
	}
	return o;
}
