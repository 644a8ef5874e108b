/*
 * match — requirements compiled once, offers checked one line at a time.
 * An offer's text goes through one validating pass (strict RFC 8259 JSON,
 * UTF-8 checked, nesting capped) that picks out the fields of the
 * capability vocabulary into a flat struct without building a jv; the
 * structured constraints are then plain comparisons.  jv_parse_sized — about
 * 70k documents/s here, fifteen times slower than the scan — runs only for
 * offers that survive the structured constraints and need a jq expression
 * (where, rank, or the offer's own where on the job).  That split, not a
 * faster JSON parser, is what makes nunet-match fast; the scanner exists
 * because libjq cannot parse a million offers a second.  jq programs are
 * compiled once (jq_compile costs ~17 ms) and their states reused; offers'
 * where expressions go through a small cache keyed by their text.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jq.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "match.h"
#include "cap.h"
#include "json.h"

#define MAXLIST 64	/* executors, features, labels, gpus in one offer */
#define MAXDEPTH 64
#define WCACHE 64	/* distinct offer where expressions kept compiled */

/* Numeric minimums: the offer field and the name in messages. */
enum { F_THREADS, F_MHZ, F_SSINGLE, F_SMULTI, F_RAM, F_RAMBW, F_DISK, F_DISKR, F_DISKW, NF };
static const char *const fname[NF] = {
	"cpu.threads", "cpu.mhz", "cpu.score.single", "cpu.score.multi",
	"ram", "ram.bandwidth", "disk", "disk.read", "disk.write"
};
enum { P_CPU, P_RAM, P_DISK, P_GPU, NP };
static const char *const pname[NP] = { "cpu_second", "ram_gib_second", "disk_gib", "gpu_second" };

struct sv {
	const char *p;	/* NULL: absent */
	size_t n;
};

struct ofr {
	unsigned has;			/* bit i: num[i]; see H_* */
	int64_t num[NF], cores, milli, price[NP];
	struct {
		struct sv arch, kernel, cont, country, city, currency, where;
	} s;
	const char *top[12];		/* the value of each top-level K_* member */
	int ngpu, nexec, nfeat, nlab;
	struct sv gvendor[MAXLIST];
	int64_t gvram[MAXLIST];
	struct sv exec[MAXLIST], feat[MAXLIST], labk[MAXLIST], labv[MAXLIST];
};
#define H_CORES (1u << NF)
#define H_MILLI (1u << (NF + 1))
#define H_PRICE(i) (1u << (NF + 2 + (i)))
#define H_GPUS (1u << (NF + 2 + NP))

struct strs {
	int n;
	char **v;
};

struct locpat {
	char *cont, *country, *city;
};

struct wcache {
	char *text;
	jq_state *jq;	/* NULL when it did not compile */
	char *cerr;
};

/* nn_match_jq: where and rank programs by their text, shared by the
 * matchers compiled with it (they borrow them) */
#define JQCACHE 16
struct nn_match_jq {
	struct {
		char *text;
		jq_state *jq;
	} e[JQCACHE];
	int n;
};

struct nn_match {
	jv req;				/* the requirements, input of offers' where */
	unsigned want;			/* bit i: min[i] */
	int64_t min[NF];
	int64_t milli;			/* -1: no cpu minimum */
	int milli_as_cores;		/* given as cores: say so in messages */
	struct strs arch, exec, feat, gvendor;
	int gpus;			/* gpus constraint present */
	int64_t gcount, gvram;
	char *kernel;
	struct locpat *accept, *reject;
	int naccept, nreject;
	int64_t pmax[NP];		/* -1: no maximum */
	char *currency;
	struct strs labk, labv;
	struct nn_res need;		/* for the default rank */
	jq_state *where, *rank;
	int where_owned, rank_owned;	/* 0: borrowed from a struct nn_match_jq */
	struct xprog *xwhere, *xrank;	/* their fast forms, or NULL */
	int jq_only;			/* nn_match_jq_only() */
	const char *xtop;		/* the offer in hand, for xeval */
	unsigned long nfast;		/* nn_match_fast_count() */
	char *where_text, *rank_text;
	char *where_show;		/* where_text for messages, when it differs */
	struct wcache wc[WCACHE];
	int nwc;
	char *dec;			/* decoded strings of the offer in hand */
	size_t deccap, decoff;
	struct ofr o;
};

/* --- the scanner ------------------------------------------------------- */

struct scan {
	const char *p, *b, *e;
	char *err;
	struct nn_match *m;
};

static int fail(struct scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct scan *s, const char *fmt, ...)
{
	va_list ap;
	if (s->err) {
		va_start(ap, fmt);
		vsnprintf(s->err, NN_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int bad(struct scan *s, const char *what)
{
	if (s->p >= s->e)
		return fail(s, "not JSON: unexpected end of line (%s)", what);
	return fail(s, "not JSON: unexpected '%c' at byte %zu (%s)",
		    isprint((unsigned char)*s->p) ? *s->p : '?', (size_t)(s->p - s->b) + 1, what);
}

static inline void ws(struct scan *s)
{
	if (s->p < s->e && (unsigned char)*s->p > ' ')	/* the usual case: none */
		return;
	while (s->p < s->e && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static inline int peek(struct scan *s)
{
	return s->p < s->e ? (unsigned char)*s->p : -1;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 32) >= 'a' && (c | 32) <= 'f')
			d = (c | 32) - 'a' + 10;
		else
			return -1;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

static size_t utf8_put(char *o, unsigned c)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | c >> 6);
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | c >> 12);
		o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | c >> 18);
	o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *e)
{
	unsigned c = p[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if ((size_t)(e - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* A string at s->p (on its quote).  When out is not NULL it gets the
 * content, decoded into m->dec if it held escapes. */
/* plain[c]: a byte that needs no attention inside a string */
static const unsigned char plain[256] = {
#define R8(x) x, x, x, x, x, x, x, x
	R8(0), R8(0), R8(0), R8(0),			/* 0x00-0x1f */
	1, 1, 0, 1, 1, 1, 1, 1, R8(1),			/* 0x20-0x2f: '"' */
	R8(1), R8(1), R8(1), R8(1),			/* 0x30-0x4f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,	/* 0x50-0x5f: '\\' */
	R8(1), R8(1), R8(1), R8(1),			/* 0x60-0x7f */
	R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0),
	R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0)
#undef R8
};

static int scan_str_slow(struct scan *s, struct sv *out);

/* The usual string, short and plain, ends within 16 bytes: found with one
 * compare, inline; anything else (escapes, UTF-8, longer) is scan_str_slow. */
static inline int scan_str(struct scan *s, struct sv *out)
{
#ifdef __SSE2__
	const char *p = s->p + 1;
	if (s->e - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned mask = (unsigned)_mm_movemask_epi8(_mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
				     _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
			_mm_cmplt_epi8(x, _mm_set1_epi8(0x20))));
		if (mask) {
			unsigned i = (unsigned)__builtin_ctz(mask);
			if (p[i] == '"') {
				s->p = p + i + 1;
				if (out) {
					out->p = p;
					out->n = i;
				}
				return 0;
			}
		}
	}
#endif
	return scan_str_slow(s, out);
}

static int scan_str_slow(struct scan *s, struct sv *out)
{
	const char *start = ++s->p, *p = start;
	int esc = 0;
	for (;;) {
#ifdef __SSE2__
		/* 16 bytes at a time: stop at '"', '\\', a control byte or a
		 * byte >= 0x80 (a signed compare below 0x20 catches both) */
		const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'),
			      sp = _mm_set1_epi8(0x20);
		while (s->e - p >= 16) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
			int mask = _mm_movemask_epi8(_mm_or_si128(
				_mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, bs)),
				_mm_cmplt_epi8(x, sp)));
			if (mask) {
				p += __builtin_ctz((unsigned)mask);
				goto stop;
			}
			p += 16;
		}
#endif
		while (p < s->e && plain[(unsigned char)*p])
			p++;
		if (p >= s->e) {
			s->p = p;
			return fail(s, "not JSON: unterminated string");
		}
#ifdef __SSE2__
stop:;
#endif
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			break;
		if (c < 0x20) {
			s->p = p;
			return fail(s, "not JSON: control character in a string at byte %zu",
				    (size_t)(p - s->b) + 1);
		}
		if (c >= 0x80) {
			size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)s->e);
			if (!n)
				return fail(s, "not JSON: invalid UTF-8 at byte %zu",
					    (size_t)(p - s->b) + 1);
			p += n;
			continue;
		}
		/* backslash */
		esc = 1;
		if (p + 1 >= s->e)
			return fail(s, "not JSON: unterminated string");
		switch (p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			p += 2;
			break;
		case 'u': {
			unsigned u;
			if (s->e - p < 6 || hex4(p + 2, &u) < 0)
				return fail(s, "not JSON: bad \\u escape at byte %zu",
					    (size_t)(p - s->b) + 1);
			p += 6;
			break;
		}
		default:
			return fail(s, "not JSON: bad escape at byte %zu", (size_t)(p - s->b) + 1);
		}
	}
	s->p = p + 1;
	if (!out)
		return 0;
	if (!esc) {
		out->p = start;
		out->n = (size_t)(p - start);
		return 0;
	}
	/* decode: the result is never longer than the raw text */
	struct nn_match *m = s->m;
	char *o = m->dec + m->decoff;
	const char *q = start;
	out->p = o;
	while (q < p) {
		if (*q != '\\') {
			*o++ = *q++;
			continue;
		}
		char c = q[1];
		q += 2;
		switch (c) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned u = 0xfffd, lo = 0;
			hex4(q, &u);
			q += 4;
			if (u >= 0xd800 && u < 0xdc00 && p - q >= 6 && q[0] == '\\' && q[1] == 'u' &&
			    hex4(q + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
				q += 6;
			} else if (u >= 0xd800 && u < 0xe000) {
				u = 0xfffd;	/* a lone surrogate, as jq does */
			}
			o += utf8_put(o, u);
			break;
		}
		default: *o++ = c; break;
		}
	}
	out->n = (size_t)(o - out->p);
	m->decoff += out->n;
	return 0;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LITTLE_ENDIAN_SWAR 1
#else
#define LITTLE_ENDIAN_SWAR 0
#endif

static const int64_t pow10i[9] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
				     100000000 };

/* The leading decimal digits among the 8 bytes at p (readable): how many,
 * and their value in *x (SWAR, as in simdjson's parse_eight_digits). */
static inline unsigned digits8(const char *p, uint64_t *x)
{
	uint64_t v, nd;
	unsigned n;
	memcpy(&v, p, 8);
	/* a byte that is not '0'..'9' (a carry out of such a byte only
	 * spoils the bytes after it, which are not counted) */
	nd = ((v & 0xf0f0f0f0f0f0f0f0ULL) ^ 0x3030303030303030ULL) |
	     (((v + 0x0606060606060606ULL) & 0xf0f0f0f0f0f0f0f0ULL) ^ 0x3030303030303030ULL);
	n = nd ? (unsigned)__builtin_ctzll(nd) / 8 : 8;
	if (n == 0) {
		*x = 0;
		return 0;
	}
	v -= 0x3030303030303030ULL;
	v <<= 8 * (8 - n);	/* the first n digits, after leading zeros */
	v = v * 10 + (v >> 8);
	v = (((v & 0x000000ff000000ffULL) * (100 + (1000000ULL << 32))) +
	     (((v >> 16) & 0x000000ff000000ffULL) * (1 + (10000ULL << 32)))) >> 32;
	*x = v;
	return n;
}

static int scan_num_any(struct scan *s, int64_t *iv, int *isint);

/* A number; *iv gets its value when it is an integer in int64 range
 * (*isint = 1).  Inline for the usual one, 1 to 16 digits with at least
 * 16 bytes of line left; scan_num_any for the rest. */
static inline __attribute__((always_inline))
int scan_num(struct scan *s, int64_t *iv, int *isint)
{
	const char *p = s->p;
	if (LITTLE_ENDIAN_SWAR && s->e - p >= 17 && *p >= '1' && *p <= '9') {
		uint64_t x;
		unsigned n = digits8(p, &x);
		int64_t v = (int64_t)x;
		p += n;
		if (n == 8) {
			n = digits8(p, &x);
			v = v * pow10i[n] + (int64_t)x;
			p += n;
		}
		/* p < s->e: at most 16 digits read out of 17 bytes or more */
		if (*p != '.' && *p != 'e' && *p != 'E' && (*p < '0' || *p > '9')) {
			s->p = p;
			*iv = v;
			*isint = 1;
			return 0;
		}
	}
	return scan_num_any(s, iv, isint);
}

static int scan_num_any(struct scan *s, int64_t *iv, int *isint)
{
	const char *st = s->p, *p = s->p;
	int neg = 0;
	if (p < s->e && *p == '-') {
		neg = 1;
		p++;
	}
	if (p >= s->e || *p < '0' || *p > '9') {
		s->p = p;
		return bad(s, "a number");
	}
	/* fast path: up to 18 digits, no fraction, no exponent */
	if (*p != '0') {
		int64_t v = 0;
		const char *d = s->e - p > 18 ? p + 18 : s->e;
		unsigned dig;
		if (LITTLE_ENDIAN_SWAR && s->e - p >= 16) {	/* 8 digits at a time */
			uint64_t x;
			unsigned n = digits8(p, &x);
			v = (int64_t)x;
			p += n;
			if (n == 8) {
				n = digits8(p, &x);
				v = v * pow10i[n] + (int64_t)x;
				p += n;
			}
		}
		while (p < d && (dig = (unsigned char)*p - (unsigned)'0') < 10) {
			v = v * 10 + dig;
			p++;
		}
		if (p >= s->e || (*p != '.' && *p != 'e' && *p != 'E' && (*p < '0' || *p > '9'))) {
			s->p = p;
			*iv = neg ? -v : v;
			*isint = 1;
			return 0;
		}
		while (p < s->e && *p >= '0' && *p <= '9')
			p++;
	} else {
		p++;
	}
	if (p < s->e && *p == '.') {
		p++;
		if (p >= s->e || *p < '0' || *p > '9') {
			s->p = p;
			return bad(s, "digits after '.'");
		}
		while (p < s->e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < s->e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < s->e && (*p == '+' || *p == '-'))
			p++;
		if (p >= s->e || *p < '0' || *p > '9') {
			s->p = p;
			return bad(s, "an exponent");
		}
		while (p < s->e && *p >= '0' && *p <= '9')
			p++;
	}
	s->p = p;
	*isint = 0;
	{
		char tmp[64];
		size_t n = (size_t)(p - st);
		if (n < sizeof tmp) {
			memcpy(tmp, st, n);
			tmp[n] = 0;
			double d = strtod(tmp, NULL);
			if (d > -9223372036854775808.0 && d < 9223372036854775808.0 && d == floor(d)) {
				*iv = (int64_t)d;
				*isint = 1;
			}
		}
	}
	return 0;
}

static int scan_value(struct scan *s, int depth);

/* After '{' or '[' (first) or after a member/element: 1 when another one
 * follows (for objects, *key is set and the ':' consumed), 0 at the close. */
/* inline: it runs for every member, and close is a constant at each call */
static inline __attribute__((always_inline))
int next_member(struct scan *s, int *first, struct sv *key, char close)
{
	const char *p;
	ws(s);
	p = s->p;
	if (p < s->e && *p == close) {
		s->p = p + 1;
		return 0;
	}
	if (!*first) {
		if (p >= s->e || *p != ',')
			return bad(s, close == '}' ? "',' or '}'" : "',' or ']'");
		s->p = p + 1;
		ws(s);
		p = s->p;
	}
	*first = 0;
	if (close == ']')
		return 1;
	if (p >= s->e || *p != '"')
		return bad(s, "a member name");
	if (scan_str(s, key) < 0)
		return -1;
	p = s->p;
	if (p >= s->e || *p != ':') {
		ws(s);
		if (peek(s) != ':')
			return bad(s, "':'");
		p = s->p;
	}
	s->p = p + 1;
	ws(s);
	return 1;
}

static int scan_lit(struct scan *s, const char *lit, size_t n)
{
	if ((size_t)(s->e - s->p) < n || memcmp(s->p, lit, n))
		return bad(s, "a value");
	s->p += n;
	return 0;
}

static int scan_value(struct scan *s, int depth)
{
	int first = 1, r;
	int64_t iv;
	struct sv key;
	ws(s);
	switch (peek(s)) {
	case '"':
		return scan_str(s, NULL);
	case '{':
	case '[': {
		char close = *s->p == '{' ? '}' : ']';
		if (depth >= MAXDEPTH)
			return fail(s, "not JSON: nested deeper than %d", MAXDEPTH);
		s->p++;
		while ((r = next_member(s, &first, &key, close)) == 1)
			if (scan_value(s, depth + 1) < 0)
				return -1;
		return r;
	}
	case 't': return scan_lit(s, "true", 4);
	case 'f': return scan_lit(s, "false", 5);
	case 'n': return scan_lit(s, "null", 4);
	default:
		return scan_num(s, &iv, &r);
	}
}

/* k equals the literal lit: a constant-size compare the compiler inlines */
#define SV_IS(k, lit) ((k).n == sizeof(lit) - 1 && !memcmp((k).p, lit, sizeof(lit) - 1))

static int is_null(struct scan *s)
{
	if ((size_t)(s->e - s->p) >= 4 && !memcmp(s->p, "null", 4)) {
		s->p += 4;
		return 1;
	}
	return 0;
}

/* A non-negative integer field obj.key (obj may be ""); null leaves it
 * absent.  The name is formatted only on error: this runs for every number. */
static inline __attribute__((always_inline))
int scan_uint(struct scan *s, const char *obj, const char *key, int64_t *out,
	      unsigned *has, unsigned bit)
{
	int64_t v;
	int isint;
	int c = peek(s);
	if ((c < '0' || c > '9') && c != '-') {
		if (is_null(s))
			return 0;
		goto bad;
	}
	if (scan_num(s, &v, &isint) < 0)
		return -1;
	if (!isint || v < 0)
		goto bad;
	*out = v;
	*has |= bit;
	return 0;
bad:
	return fail(s, "%s%s%s: expected a non-negative integer", obj, *obj ? "." : "", key);
}

static int scan_string_field(struct scan *s, const char *field, struct sv *out)
{
	if (peek(s) == '"')
		return scan_str(s, out);
	if (is_null(s)) {
		out->p = NULL;
		return 0;
	}
	if (peek(s) != '"')
		return fail(s, "%s: expected a string", field);
	return scan_str(s, out);
}

static int expect(struct scan *s, char c, const char *field)
{
	if (peek(s) != c)
		return fail(s, "%s: expected %s", field, c == '{' ? "an object" : "an array");
	s->p++;
	return 0;
}

static int scan_strlist(struct scan *s, const char *field, struct sv *v, int *n)
{
	int first = 1, r;
	struct sv k;
	*n = 0;
	if (is_null(s))
		return 0;
	if (expect(s, '[', field) < 0)
		return -1;
	while ((r = next_member(s, &first, &k, ']')) == 1) {
		if (*n >= MAXLIST)
			return fail(s, "%s: more than %d entries", field, MAXLIST);
		if (scan_string_field(s, field, &v[*n]) < 0)
			return -1;
		if (v[*n].p)
			(*n)++;
	}
	return r;
}

/*
 * Member i of obj (key is its name) seen a second time in the same object:
 * jq keeps the last one whole while the scanner would have read both (a
 * null second one leaves the first in place), so rather than read the
 * document two ways it is refused, at every level, like a repeated
 * top-level member.
 */
static int twice(struct scan *s, unsigned *seen, int i, const char *obj, const char *key)
{
	if (*seen & (1u << i))
		return fail(s, "'%s%s%s' appears twice", obj, *obj ? "." : "", key);
	*seen |= 1u << i;
	return 0;
}

/* Members of an object that are all non-negative integers (others skipped). */
static int scan_nums(struct scan *s, const char *obj, const char *const *keys,
		     const unsigned char *klen, const int *idx, int nkeys, struct ofr *o)
{
	int first = 1, r;
	unsigned seen = 0;
	struct sv k;
	if (is_null(s))
		return 0;
	if (expect(s, '{', obj) < 0)
		return -1;
	while ((r = next_member(s, &first, &k, '}')) == 1) {
		int i;
		for (i = 0; i < nkeys; i++)	/* the names differ in their first byte */
			if (k.n && k.p[0] == keys[i][0])
				break;
		if (i == nkeys || k.n != klen[i] || memcmp(k.p, keys[i], k.n)) {
			if (scan_value(s, 2) < 0)
				return -1;
			continue;
		}
		if (twice(s, &seen, i, obj, keys[i]) < 0 ||
		    scan_uint(s, obj, keys[i], &o->num[idx[i]], &o->has, 1u << idx[i]) < 0)
			return -1;
	}
	return r;
}

static int scan_cpu(struct scan *s, struct ofr *o)
{
	static const char *const sk[] = { "single", "multi" };
	static const unsigned char sl[] = { 6, 5 };
	static const int si[] = { F_SSINGLE, F_SMULTI };
	int first = 1, r;
	unsigned seen = 0;
	struct sv k;
	if (is_null(s))
		return 0;
	if (expect(s, '{', "cpu") < 0)
		return -1;
	while ((r = next_member(s, &first, &k, '}')) == 1) {
		if (SV_IS(k, "cores"))
			r = twice(s, &seen, 0, "cpu", "cores") < 0 ? -1 :
			    scan_uint(s, "cpu", "cores", &o->cores, &o->has, H_CORES);
		else if (SV_IS(k, "millicores"))
			r = twice(s, &seen, 1, "cpu", "millicores") < 0 ? -1 :
			    scan_uint(s, "cpu", "millicores", &o->milli, &o->has, H_MILLI);
		else if (SV_IS(k, "threads"))
			r = twice(s, &seen, 2, "cpu", "threads") < 0 ? -1 :
			    scan_uint(s, "cpu", "threads", &o->num[F_THREADS], &o->has, 1u << F_THREADS);
		else if (SV_IS(k, "mhz"))
			r = twice(s, &seen, 3, "cpu", "mhz") < 0 ? -1 :
			    scan_uint(s, "cpu", "mhz", &o->num[F_MHZ], &o->has, 1u << F_MHZ);
		else if (SV_IS(k, "arch"))
			r = twice(s, &seen, 4, "cpu", "arch") < 0 ? -1 :
			    scan_string_field(s, "cpu.arch", &o->s.arch);
		else if (SV_IS(k, "score"))
			r = twice(s, &seen, 5, "cpu", "score") < 0 ? -1 :
			    scan_nums(s, "cpu.score", sk, sl, si, 2, o);
		else
			r = scan_value(s, 2);
		if (r < 0)
			return -1;
	}
	return r;
}

static int scan_gpus(struct scan *s, struct ofr *o)
{
	int first = 1, r;
	struct sv k;
	o->ngpu = 0;
	if (is_null(s))
		return 0;
	if (expect(s, '[', "gpus") < 0)
		return -1;
	o->has |= H_GPUS;
	while ((r = next_member(s, &first, &k, ']')) == 1) {
		int f2 = 1, i = o->ngpu;
		unsigned h = 0, seen = 0;
		if (i >= MAXLIST)
			return fail(s, "gpus: more than %d entries", MAXLIST);
		if (peek(s) != '{')
			return fail(s, "gpus[%d]: expected an object", i);
		s->p++;
		o->gvendor[i].p = NULL;
		o->gvram[i] = 0;
		while ((r = next_member(s, &f2, &k, '}')) == 1) {
			if (SV_IS(k, "vendor") || SV_IS(k, "vram")) {
				int v = k.n == 6;
				if (seen & (1u << v))
					return fail(s, "'gpus[%d].%s' appears twice", i, v ? "vendor" : "vram");
				seen |= 1u << v;
				r = v ? scan_string_field(s, "gpus[].vendor", &o->gvendor[i])
				      : scan_uint(s, "gpus[]", "vram", &o->gvram[i], &h, 1);
			} else {
				r = scan_value(s, 3);
			}
			if (r < 0)
				return -1;
		}
		if (r < 0)
			return -1;
		o->ngpu++;
	}
	return r;
}

static int scan_location(struct scan *s, struct ofr *o)
{
	int first = 1, r;
	unsigned seen = 0;
	struct sv k;
	if (is_null(s))
		return 0;
	if (expect(s, '{', "location") < 0)
		return -1;
	while ((r = next_member(s, &first, &k, '}')) == 1) {
		if (SV_IS(k, "continent"))
			r = twice(s, &seen, 0, "location", "continent") < 0 ? -1 :
			    scan_string_field(s, "location.continent", &o->s.cont);
		else if (SV_IS(k, "country"))
			r = twice(s, &seen, 1, "location", "country") < 0 ? -1 :
			    scan_string_field(s, "location.country", &o->s.country);
		else if (SV_IS(k, "city"))
			r = twice(s, &seen, 2, "location", "city") < 0 ? -1 :
			    scan_string_field(s, "location.city", &o->s.city);
		else
			r = scan_value(s, 2);
		if (r < 0)
			return -1;
	}
	return r;
}

/* Money: a string of 1 to 18 digits. */
static int money(struct sv v, int64_t *out)
{
	int64_t x = 0;
	if (v.n == 0 || v.n > 18)
		return -1;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		x = x * 10 + (v.p[i] - '0');
	}
	*out = x;
	return 0;
}

static int scan_price(struct scan *s, struct ofr *o)
{
	int first = 1, r;
	unsigned seen = 0;
	struct sv k, v;
	if (is_null(s))
		return 0;
	if (expect(s, '{', "price") < 0)
		return -1;
	while ((r = next_member(s, &first, &k, '}')) == 1) {
		int i;
		if (SV_IS(k, "currency")) {
			if (twice(s, &seen, NP, "price", "currency") < 0 ||
			    scan_string_field(s, "price.currency", &o->s.currency) < 0)
				return -1;
			continue;
		}
		for (i = 0; i < NP; i++)
			if (k.n && k.p[0] == pname[i][0])	/* c, r, d, g */
				break;
		if (i < NP && (k.n != strlen(pname[i]) || memcmp(k.p, pname[i], k.n)))
			i = NP;
		if (i == NP) {
			if (scan_value(s, 2) < 0)
				return -1;
			continue;
		}
		if (twice(s, &seen, i, "price", pname[i]) < 0)
			return -1;
		if (peek(s) != '"' && !is_null(s))
			return fail(s, "price.%s: expected a string", pname[i]);
		v.p = NULL;
		if (peek(s) == '"' && scan_str(s, &v) < 0)
			return -1;
		if (!v.p) {
			o->has &= ~H_PRICE(i);
			continue;
		}
		if (money(v, &o->price[i]) < 0)
			return fail(s, "price.%s: expected a string of 1 to 18 digits (integer "
				    "minor units)", pname[i]);
		o->has |= H_PRICE(i);
	}
	return r;
}

static int scan_labels(struct scan *s, struct ofr *o)
{
	int first = 1, r;
	struct sv k;
	o->nlab = 0;
	if (is_null(s))
		return 0;
	if (expect(s, '{', "labels") < 0)
		return -1;
	while ((r = next_member(s, &first, &k, '}')) == 1) {
		if (o->nlab >= MAXLIST)
			return fail(s, "labels: more than %d entries", MAXLIST);
		for (int i = 0; i < o->nlab; i++)
			if (o->labk[i].n == k.n && !memcmp(o->labk[i].p, k.p, k.n))
				return fail(s, "'labels.%.*s' appears twice",
					    (int)(k.n > 64 ? 64 : k.n), k.p);
		o->labk[o->nlab] = k;
		if (peek(s) != '"')
			return fail(s, "labels.%.*s: expected a string", (int)(k.n > 64 ? 64 : k.n), k.p);
		if (scan_str(s, &o->labv[o->nlab]) < 0)
			return -1;
		o->nlab++;
	}
	return r;
}

/* The members of an offer the matcher reads, and their names. */
enum { K_CPU, K_RAM, K_DISK, K_GPUS, K_EXEC, K_FEAT, K_KERNEL, K_LOC, K_PRICE, K_LABELS,
       K_WHERE, K_V, K_OTHER };
static const char *const kname[K_OTHER] = { "cpu", "ram", "disk", "gpus", "executors",
	"features", "kernel", "location", "price", "labels", "where", "v" };

static int top_key(struct sv k)
{
	switch (k.n) {
	case 1: return k.p[0] == 'v' ? K_V : K_OTHER;
	case 3: return SV_IS(k, "cpu") ? K_CPU : SV_IS(k, "ram") ? K_RAM : K_OTHER;
	case 4: return SV_IS(k, "disk") ? K_DISK : SV_IS(k, "gpus") ? K_GPUS : K_OTHER;
	case 5: return SV_IS(k, "price") ? K_PRICE : SV_IS(k, "where") ? K_WHERE : K_OTHER;
	case 6: return SV_IS(k, "labels") ? K_LABELS : SV_IS(k, "kernel") ? K_KERNEL : K_OTHER;
	case 8: return SV_IS(k, "location") ? K_LOC : SV_IS(k, "features") ? K_FEAT : K_OTHER;
	case 9: return SV_IS(k, "executors") ? K_EXEC : K_OTHER;
	default: return K_OTHER;
	}
}

static int scan_offer(struct scan *s, struct ofr *o)
{
	static const char *const rk[] = { "size", "bandwidth" };
	static const unsigned char rl[] = { 4, 9 };
	static const int ri[] = { F_RAM, F_RAMBW };
	static const char *const dk[] = { "size", "read", "write" };
	static const unsigned char dl[] = { 4, 4, 5 };
	static const int di[] = { F_DISK, F_DISKR, F_DISKW };
	int first = 1, r;
	unsigned seen = 0;
	struct sv k;

	o->has = 0;
	o->ngpu = o->nexec = o->nfeat = o->nlab = 0;
	memset(&o->s, 0, sizeof o->s);
	memset(o->top, 0, sizeof o->top);
	ws(s);
	if (peek(s) != '{') {
		if (scan_value(s, 0) < 0)
			return -1;
		return fail(s, "not a capability document: expected an object");
	}
	s->p++;
	while ((r = next_member(s, &first, &k, '}')) == 1) {
		/* a member the matcher reads, twice: readers differ on which
		 * counts (jq takes the last whole, a scan would merge them),
		 * so the document is refused rather than read one way */
		int kk = top_key(k);
		if (kk != K_OTHER) {
			if (seen & (1u << kk))
				return fail(s, "'%s' appears twice", kname[kk]);
			seen |= 1u << kk;
			o->top[kk] = s->p;
		}
		switch (kk) {
		case K_CPU: r = scan_cpu(s, o); break;
		case K_RAM: r = scan_nums(s, "ram", rk, rl, ri, 2, o); break;
		case K_DISK: r = scan_nums(s, "disk", dk, dl, di, 3, o); break;
		case K_GPUS: r = scan_gpus(s, o); break;
		case K_EXEC: r = scan_strlist(s, "executors", o->exec, &o->nexec); break;
		case K_FEAT: r = scan_strlist(s, "features", o->feat, &o->nfeat); break;
		case K_KERNEL: r = scan_string_field(s, "kernel", &o->s.kernel); break;
		case K_LOC: r = scan_location(s, o); break;
		case K_PRICE: r = scan_price(s, o); break;
		case K_LABELS: r = scan_labels(s, o); break;
		case K_WHERE: r = scan_string_field(s, "where", &o->s.where); break;
		case K_V: {
			int64_t v = 0;
			unsigned h = 0;
			r = scan_uint(s, "", "v", &v, &h, 1);
			if (r == 0 && h && v != 1)
				return fail(s, "v: version %lld is not supported (expected 1)",
					    (long long)v);
			break;
		}
		default: r = scan_value(s, 1); break;
		}
		if (r < 0)
			return -1;
	}
	if (r < 0)
		return -1;
	ws(s);
	if (s->p < s->e)
		return bad(s, "end of line");
	return 0;
}

/* The value of the (valid) number at s->p, as jq reads it. */
static double num_value(struct scan *s)
{
	const char *st = s->p;
	int64_t iv;
	int isint;
	double d;
	scan_num(s, &iv, &isint);
	size_t n = (size_t)(s->p - st);
	if (isint && n <= 18 && !memchr(st, '.', n) && !memchr(st, 'e', n) && !memchr(st, 'E', n))
		return (double)iv;
	char tmp[64], *t = n < sizeof tmp ? tmp : nn_xmalloc(n + 1);
	memcpy(t, st, n);
	t[n] = 0;
	d = strtod(t, NULL);
	if (t != tmp)
		free(t);
	return d;
}

/*
 * The jv of a line scan_offer() has accepted, built directly: about twice
 * as fast as jv_parse_sized(), which matters for the offers that reach the
 * jq expressions.  The text is known to be valid, so this checks nothing;
 * members repeat as jq has them (the last one wins), numbers are read
 * with the same correct rounding.
 */
static jv build(struct scan *s)
{
	int first = 1, r;
	struct sv k;
	jv v;

	ws(s);
	switch (peek(s)) {
	case '"':
		scan_str(s, &k);
		return jv_string_sized(k.p, (int)k.n);
	case '{':
		s->p++;
		v = jv_object();
		while ((r = next_member(s, &first, &k, '}')) == 1) {
			jv key = jv_string_sized(k.p, (int)k.n);
			v = jv_object_set(v, key, build(s));
		}
		return v;
	case '[':
		s->p++;
		v = jv_array();
		while ((r = next_member(s, &first, &k, ']')) == 1)
			v = jv_array_append(v, build(s));
		return v;
	case 't':
		s->p += 4;
		return jv_true();
	case 'f':
		s->p += 5;
		return jv_false();
	case 'n':
		s->p += 4;
		return jv_null();
	default:
		return jv_number(num_value(s));
	}
}

/* --- requirements ------------------------------------------------------ */

static void strs_free(struct strs *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void strs_add(struct strs *l, const char *s)
{
	l->v = nn_xrealloc(l->v, sizeof *l->v * (size_t)(l->n + 1));
	l->v[l->n++] = nn_xstrdup(s);
}

/* A string or an array of strings (borrows v). */
static int req_strs(jv v, const char *field, struct strs *out, char *err)
{
	if (jv_get_kind(v) == JV_KIND_STRING) {
		strs_add(out, jv_string_value(v));
		return 0;
	}
	if (jv_get_kind(v) != JV_KIND_ARRAY)
		return nn_seterr(err, "%s: expected a string or an array of strings", field);
	int rc = 0;
	jv_array_foreach(v, i, e) {
		if (jv_get_kind(e) != JV_KIND_STRING)
			rc = nn_seterr(err, "%s[%d]: expected a string", field, i);
		else if (rc == 0)
			strs_add(out, jv_string_value(e));
		jv_free(e);
	}
	return rc;
}

static int req_uint(jv v, const char *field, int64_t *out, char *err)
{
	double d;
	if (jv_get_kind(v) != JV_KIND_NUMBER || (d = jv_number_value(v)) < 0 ||
	    d >= 9223372036854775808.0 || d != floor(d))
		return nn_seterr(err, "%s: expected a non-negative integer", field);
	*out = (int64_t)d;
	return 0;
}

/* Walk the members of obj (borrowed) calling fn for each; unknown names are
 * fn's to refuse. */
typedef int (*member_fn)(struct nn_match *m, const char *obj, const char *key, jv v, char *err);

static int members(struct nn_match *m, jv parent, const char *obj, member_fn fn, char *err)
{
	int rc = 0;
	jv o = jv_object_get(jv_copy(parent), jv_string(obj));
	if (jv_get_kind(o) == JV_KIND_NULL) {
		jv_free(o);
		return 0;
	}
	if (jv_get_kind(o) != JV_KIND_OBJECT) {
		jv_free(o);
		return nn_seterr(err, "%s: expected an object", obj);
	}
	jv_object_foreach(o, k, v) {
		if (rc == 0)
			rc = fn(m, obj, jv_string_value(k), v, err);
		jv_free(k);
		jv_free(v);
	}
	jv_free(o);
	return rc;
}

static int unknown(const char *obj, const char *key, char *err)
{
	return nn_seterr(err, "%s: unknown field '%.64s'", obj, key);
}

static int want(struct nn_match *m, int f, jv v, int size, char *err)
{
	static const char *const reqname[NF] = {
		"cpu.threads", "cpu.mhz", "cpu.score.single", "cpu.score.multi",
		"ram.size", "ram.bandwidth", "disk.size", "disk.read", "disk.write"
	};
	if (size ? nn_cap_size(v, reqname[f], &m->min[f], err) < 0
		 : req_uint(v, reqname[f], &m->min[f], err) < 0)
		return -1;
	m->want |= 1u << f;
	return 0;
}

static int on_score(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	if (!strcmp(key, "single"))
		return want(m, F_SSINGLE, v, 0, err);
	if (!strcmp(key, "multi"))
		return want(m, F_SMULTI, v, 0, err);
	return unknown("cpu.score", key, err);
}

static int on_cpu(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	if (!strcmp(key, "cores")) {
		double d = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : -1;
		if (d > 9e15 || nn_cap_millicores(d, &m->milli) < 0)
			return nn_seterr(err, "cpu.cores: expected a non-negative number "
					 "(at most 3 decimals)");
		m->milli_as_cores = d == floor(d);
		return 0;
	}
	if (!strcmp(key, "millicores")) {
		m->milli_as_cores = 0;
		return req_uint(v, "cpu.millicores", &m->milli, err);
	}
	if (!strcmp(key, "threads"))
		return want(m, F_THREADS, v, 0, err);
	if (!strcmp(key, "mhz"))
		return want(m, F_MHZ, v, 0, err);
	if (!strcmp(key, "arch"))
		return req_strs(v, "cpu.arch", &m->arch, err);
	if (!strcmp(key, "score")) {
		jv w = jv_object_set(jv_object(), jv_string("score"), jv_copy(v));
		int rc = members(m, w, "score", on_score, err);
		jv_free(w);
		if (rc < 0 && !strncmp(err, "score:", 6))
			nn_seterr(err, "cpu.score: expected an object");
		return rc;
	}
	return unknown("cpu", key, err);
}

static int on_ram(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	if (!strcmp(key, "size"))
		return want(m, F_RAM, v, 1, err);
	if (!strcmp(key, "bandwidth"))
		return want(m, F_RAMBW, v, 1, err);
	return unknown("ram", key, err);
}

static int on_disk(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	if (!strcmp(key, "size"))
		return want(m, F_DISK, v, 1, err);
	if (!strcmp(key, "read"))
		return want(m, F_DISKR, v, 1, err);
	if (!strcmp(key, "write"))
		return want(m, F_DISKW, v, 1, err);
	return unknown("disk", key, err);
}

static int on_gpus(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	if (!strcmp(key, "count"))
		return req_uint(v, "gpus.count", &m->gcount, err);
	if (!strcmp(key, "vram"))
		return nn_cap_size(v, "gpus.vram", &m->gvram, err);
	if (!strcmp(key, "vendor"))
		return req_strs(v, "gpus.vendor", &m->gvendor, err);
	return unknown("gpus", key, err);
}

static char *opt_str(jv o, const char *key, const char *field, int *rc, char *err)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	char *s = NULL;
	if (jv_get_kind(v) == JV_KIND_STRING)
		s = nn_xstrdup(jv_string_value(v));
	else if (jv_is_valid(v) && jv_get_kind(v) != JV_KIND_NULL && *rc == 0)
		*rc = nn_seterr(err, "%s.%s: expected a string", field, key);
	jv_free(v);
	return s;
}

static int req_locs(jv v, const char *field, struct locpat **out, int *n, char *err)
{
	int rc = 0;
	if (jv_get_kind(v) != JV_KIND_ARRAY)
		return nn_seterr(err, "%s: expected an array of objects", field);
	*out = nn_xcalloc((size_t)jv_array_length(jv_copy(v)) + 1, sizeof **out);
	jv_array_foreach(v, i, e) {
		char f[48];
		snprintf(f, sizeof f, "%s[%d]", field, i);
		if (rc == 0 && jv_get_kind(e) != JV_KIND_OBJECT)
			rc = nn_seterr(err, "%s: expected an object", f);
		if (rc == 0) {
			jv_object_foreach(e, k, x) {
				const char *ks = jv_string_value(k);
				if (rc == 0 && strcmp(ks, "continent") && strcmp(ks, "country") &&
				    strcmp(ks, "city"))
					rc = unknown(f, ks, err);
				jv_free(k);
				jv_free(x);
			}
			struct locpat *p = &(*out)[*n];
			p->cont = opt_str(e, "continent", f, &rc, err);
			p->country = opt_str(e, "country", f, &rc, err);
			p->city = opt_str(e, "city", f, &rc, err);
			(*n)++;
		}
		jv_free(e);
	}
	return rc;
}

static int on_location(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	if (!strcmp(key, "accept"))
		return req_locs(v, "location.accept", &m->accept, &m->naccept, err);
	if (!strcmp(key, "reject"))
		return req_locs(v, "location.reject", &m->reject, &m->nreject, err);
	return unknown("location", key, err);
}

static int on_pmax(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	for (int i = 0; i < NP; i++)
		if (!strcmp(key, pname[i])) {
			if (jv_get_kind(v) == JV_KIND_STRING) {
				struct sv s = { jv_string_value(v), (size_t)jv_string_length_bytes(jv_copy(v)) };
				if (money(s, &m->pmax[i]) == 0)
					return 0;
			} else if (req_uint(v, "", &m->pmax[i], NULL) == 0 && m->pmax[i] < 1000000000000000000LL) {
				return 0;
			}
			return nn_seterr(err, "price.max.%s: expected a string of 1 to 18 digits "
					 "(integer minor units)", key);
		}
	return unknown("price.max", key, err);
}

static int on_price(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	if (!strcmp(key, "max")) {
		jv w = jv_object_set(jv_object(), jv_string("price.max"), jv_copy(v));
		int rc = members(m, w, "price.max", on_pmax, err);
		jv_free(w);
		return rc;
	}
	if (!strcmp(key, "currency")) {
		if (jv_get_kind(v) != JV_KIND_STRING)
			return nn_seterr(err, "price.currency: expected a string");
		free(m->currency);
		m->currency = nn_xstrdup(jv_string_value(v));
		return 0;
	}
	return unknown("price", key, err);
}

static int on_labels(struct nn_match *m, const char *obj, const char *key, jv v, char *err)
{
	if (jv_get_kind(v) != JV_KIND_STRING)
		return nn_seterr(err, "labels.%.64s: expected a string", key);
	strs_add(&m->labk, key);
	strs_add(&m->labv, jv_string_value(v));
	return 0;
}

/* jq: compile text into a new state; NULL and err (jq's words) otherwise. */
static void jq_collect(void *data, jv msg)
{
	struct nn_buf *b = data;
	if (jv_get_kind(msg) == JV_KIND_INVALID && jv_invalid_has_msg(jv_copy(msg)))
		msg = jv_invalid_get_msg(msg);
	if (jv_get_kind(msg) != JV_KIND_STRING) {
		char *s = nn_json_dump(msg);
		jv_free(msg);
		msg = jv_string(s);
		free(s);
	}
	if (b->len)
		nn_buf_adds(b, "; ");
	for (const char *p = jv_string_value(msg); *p; p++)
		nn_buf_addc(b, *p == '\n' ? ' ' : *p);
	while (b->len && b->data[b->len - 1] == ' ')
		b->data[--b->len] = 0;
	jv_free(msg);
}

static jv no_input(jq_state *jq, void *data)
{
	return jv_invalid();
}

static jq_state *jq_make(const char *what, const char *text, char *err)
{
	struct nn_buf msgs;
	jq_state *jq = jq_init();
	if (!jq) {
		nn_seterr(err, "%s: cannot start jq", what);
		return NULL;
	}
	nn_buf_init(&msgs, 4096);
	jq_set_error_cb(jq, jq_collect, &msgs);
	jq_set_input_cb(jq, no_input, NULL);
	if (!jq_compile(jq, text)) {
		nn_seterr(err, "%s: does not compile: %s", what, msgs.len ? msgs.data : "jq error");
		nn_buf_release(&msgs);
		jq_teardown(&jq);
		return NULL;
	}
	nn_buf_release(&msgs);
	jq_set_error_cb(jq, NULL, NULL);
	return jq;
}

static void silent(void *data, jv msg)
{
	jv_free(msg);
}

/* First output of jq on input (consumed): 0 and *out, or -1 and err. */
static int jq_first(jq_state *jq, jv input, jv *out, char *err)
{
	jv r;
	jq_set_error_cb(jq, silent, NULL);
	jq_start(jq, input, 0);
	r = jq_next(jq);
	if (jv_is_valid(r)) {
		*out = r;
		return 0;
	}
	if (jq_halted(jq)) {
		jv_free(r);
		return nn_seterr(err, "halted");
	}
	if (jv_invalid_has_msg(jv_copy(r))) {
		jv msg = jv_invalid_get_msg(r);
		if (jv_get_kind(msg) == JV_KIND_STRING)
			nn_seterr(err, "error: %.200s", jv_string_value(msg));
		else {
			char *s = nn_json_dump(msg);
			nn_seterr(err, "error: %.200s", s);
			free(s);
		}
		jv_free(msg);
		return -1;
	}
	jv_free(r);
	return nn_seterr(err, "produced no value");
}

/* --- jq expressions without jq ------------------------------------------
 *
 * A where or rank made only of paths (.cpu.mhz), literals (numbers, plain
 * strings, true, false, null), comparisons, and, or, not, + - * /,
 * tonumber, parentheses and pipes is also compiled into a small tree that
 * is evaluated on the offer's text, with no jv and no allocation.  It
 * answers only when it is sure to answer as jq would: a value it does not
 * model (an array or object compared, a string with escapes, a string that
 * is not plain digits given to tonumber, a NaN) or anything jq would raise
 * an error on (indexing a number, dividing by zero, adding a string) makes
 * it give up, and that offer goes through jq as before, so the results,
 * the reasons and the error messages stay jq's.  Any other expression is
 * run by jq only.
 */

enum { X_CONST, X_DOT, X_FIELD, X_NOT, X_TONUM, X_AND, X_OR, X_PIPE,
       X_EQ, X_NE, X_LT, X_LE, X_GT, X_GE, X_ADD, X_SUB, X_MUL, X_DIV };

/* A value: a jv kind, or X_UNSURE; objects and arrays point at their text. */
#define X_UNSURE (-1)
struct xv {
	int kind;
	double n;
	const char *p;		/* strings: bytes; objects, arrays: at the bracket */
	size_t len;
};

struct xnode {
	int op, a, b;		/* a, b: operands (node indexes) */
	struct xv c;		/* X_CONST */
	char *key;		/* X_FIELD: the member name */
	size_t klen;
	int ktop;		/* X_FIELD: top_key(key) */
};

#define XMAX 64
struct xprog {
	struct xnode n[XMAX];
	int nn, root;
};

struct xlex {
	const char *p;
	int tok;		/* see T_*; a char for one-char operators */
	const char *tp;		/* the token's text */
	size_t tn;
	double num;
};
enum { T_END = 256, T_BAD, T_FIELD, T_DOT, T_NUM, T_STR, T_IDENT, T_EQ, T_NE, T_LE, T_GE };

static int id_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int id_char(int c)
{
	return id_start(c) || (c >= '0' && c <= '9');
}

static void xnext(struct xlex *x)
{
	const char *p = x->p;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	x->tp = p;
	if (!*p) {
		x->tok = T_END;
	} else if (*p == '.' && id_start((unsigned char)p[1])) {
		p++;
		while (id_char((unsigned char)*p))
			p++;
		x->tok = T_FIELD;
	} else if (*p == '.') {
		/* ".." and ".[" and ".5" and '."x"' are not modelled */
		p++;
		x->tok = *p == '.' || *p == '[' || *p == '"' || (*p >= '0' && *p <= '9') ? T_BAD : T_DOT;
	} else if (*p >= '0' && *p <= '9') {
		char *end;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p == '.' && p[1] >= '0' && p[1] <= '9')
			for (p++; *p >= '0' && *p <= '9'; p++)
				;
		x->tok = *p == '.' || *p == 'e' || *p == 'E' || id_char((unsigned char)*p) ? T_BAD : T_NUM;
		x->num = strtod(x->tp, &end);
		if (end != p)
			x->tok = T_BAD;
	} else if (*p == '"') {
		/* plain strings only: no escapes, no interpolation, and ASCII
		 * (jq makes invalid UTF-8 in a literal U+FFFD; not modelled) */
		for (p++; *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\'; p++)
			;
		x->tok = *p == '"' ? T_STR : T_BAD;
		if (*p == '"')
			p++;
	} else if (id_start((unsigned char)*p)) {
		while (id_char((unsigned char)*p))
			p++;
		x->tok = *p == ':' ? T_BAD : T_IDENT;	/* mod::name */
	} else if ((p[0] == '=' || p[0] == '!' || p[0] == '<' || p[0] == '>') && p[1] == '=') {
		x->tok = p[0] == '=' ? T_EQ : p[0] == '!' ? T_NE : p[0] == '<' ? T_LE : T_GE;
		p += 2;
	} else if (strchr("<>+-*/|()", *p)) {
		x->tok = (unsigned char)*p++;
		/* "//", "|=", "+=", "-=", "*=", "/=" are other operators */
		if (strchr("+-*/|", x->tok) && (*p == '=' || (x->tok == '/' && *p == '/')))
			x->tok = T_BAD;
	} else {
		x->tok = T_BAD;
	}
	x->tn = (size_t)(p - x->tp);
	x->p = p;
}

static int xnew(struct xprog *g, int op, int a, int b)
{
	if (g->nn >= XMAX)
		return -1;
	memset(&g->n[g->nn], 0, sizeof g->n[0]);
	g->n[g->nn].op = op;
	g->n[g->nn].a = a;
	g->n[g->nn].b = b;
	return g->nn++;
}

static int xident(struct xlex *x, const char *w)
{
	return x->tok == T_IDENT && x->tn == strlen(w) && !memcmp(x->tp, w, x->tn);
}

static int xpipe(struct xprog *g, struct xlex *x, int depth);

/* a field of node a, named by the T_FIELD token in hand */
static int xfield(struct xprog *g, struct xlex *x, int a)
{
	int i = xnew(g, X_FIELD, a, -1);
	if (i < 0)
		return -1;
	g->n[i].klen = x->tn - 1;
	g->n[i].key = nn_xmalloc(x->tn);
	memcpy(g->n[i].key, x->tp + 1, x->tn - 1);
	g->n[i].key[x->tn - 1] = 0;
	g->n[i].ktop = top_key((struct sv){ g->n[i].key, g->n[i].klen });
	xnext(x);
	return i;
}

static int xprimary(struct xprog *g, struct xlex *x, int depth)
{
	int i = -1;
	if (depth > 32)
		return -1;
	if (x->tok == T_DOT) {
		i = xnew(g, X_DOT, -1, -1);
		xnext(x);
	} else if (x->tok == T_FIELD) {
		if ((i = xnew(g, X_DOT, -1, -1)) < 0)
			return -1;
		i = xfield(g, x, i);
	} else if (x->tok == T_NUM || x->tok == '-') {
		double sign = 1;
		if (x->tok == '-') {	/* a negative literal, nothing else */
			xnext(x);
			if (x->tok != T_NUM)
				return -1;
			sign = -1;
		}
		if ((i = xnew(g, X_CONST, -1, -1)) < 0)
			return -1;
		g->n[i].c.kind = JV_KIND_NUMBER;
		g->n[i].c.n = sign * x->num;
		xnext(x);
	} else if (x->tok == T_STR) {
		if ((i = xnew(g, X_CONST, -1, -1)) < 0)
			return -1;
		g->n[i].c.kind = JV_KIND_STRING;
		g->n[i].key = nn_xmalloc(x->tn);
		memcpy(g->n[i].key, x->tp + 1, x->tn - 2);
		g->n[i].c.p = g->n[i].key;
		g->n[i].c.len = x->tn - 2;
		xnext(x);
	} else if (x->tok == T_IDENT) {
		int op = xident(x, "not") ? X_NOT : xident(x, "tonumber") ? X_TONUM : -1;
		int kind = xident(x, "true") ? JV_KIND_TRUE : xident(x, "false") ? JV_KIND_FALSE :
			   xident(x, "null") ? JV_KIND_NULL : -1;
		if (op >= 0)
			i = xnew(g, op, -1, -1);	/* applied to the input */
		else if (kind >= 0 && (i = xnew(g, X_CONST, -1, -1)) >= 0)
			g->n[i].c.kind = kind;
		else
			return -1;
		xnext(x);
		if (x->tok == '(')		/* not(…): another function */
			return -1;
	} else if (x->tok == '(') {
		xnext(x);
		if ((i = xpipe(g, x, depth + 1)) < 0 || x->tok != ')')
			return -1;
		xnext(x);
	} else {
		return -1;
	}
	if (i < 0)
		return -1;
	while (x->tok == T_FIELD)
		if ((i = xfield(g, x, i)) < 0)
			return -1;
	return i;
}

static int xbinary(struct xprog *g, struct xlex *x, int level, int depth)
{
	/* levels, loosest first: or, and, comparison, + -, * / */
	int a = level == 4 ? xprimary(g, x, depth) : xbinary(g, x, level + 1, depth);
	for (;;) {
		int op = -1;
		if (a < 0)
			return -1;
		switch (level) {
		case 0: op = xident(x, "or") ? X_OR : -1; break;
		case 1: op = xident(x, "and") ? X_AND : -1; break;
		case 2: op = x->tok == T_EQ ? X_EQ : x->tok == T_NE ? X_NE : x->tok == '<' ? X_LT :
			     x->tok == T_LE ? X_LE : x->tok == '>' ? X_GT : x->tok == T_GE ? X_GE : -1;
			break;
		case 3: op = x->tok == '+' ? X_ADD : x->tok == '-' ? X_SUB : -1; break;
		case 4: op = x->tok == '*' ? X_MUL : x->tok == '/' ? X_DIV : -1; break;
		}
		if (op < 0)
			return a;
		xnext(x);
		int b = level == 4 ? xprimary(g, x, depth) : xbinary(g, x, level + 1, depth);
		if (b < 0 || (a = xnew(g, op, a, b)) < 0)
			return -1;
		if (level == 2)		/* comparisons do not chain */
			return x->tok == T_EQ || x->tok == T_NE || x->tok == '<' || x->tok == T_LE ||
			       x->tok == '>' || x->tok == T_GE ? -1 : a;
	}
}

static int xpipe(struct xprog *g, struct xlex *x, int depth)
{
	int a = xbinary(g, x, 0, depth);
	if (a < 0 || x->tok != '|')
		return a;
	xnext(x);
	int b = xpipe(g, x, depth + 1);
	return b < 0 ? -1 : xnew(g, X_PIPE, a, b);
}

static void xfree(struct xprog *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->nn; i++)
		free(g->n[i].key);
	free(g);
}

/* The fast form of a jq expression, or NULL when it is not of the kind. */
static struct xprog *xcompile(const char *text)
{
	struct xprog *g = nn_xcalloc(1, sizeof *g);
	struct xlex x = { text, 0, NULL, 0, 0 };
	xnext(&x);
	g->root = xpipe(g, &x, 0);
	if (g->root < 0 || x.tok != T_END) {
		xfree(g);
		return NULL;
	}
	return g;
}

/* The end of the valid JSON value at p. */
static const char *xskip(const char *p, const char *e)
{
	int depth = 0;
	do {
		while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
				 *p == ',' || *p == ':'))
			p++;
		if (p >= e)
			return e;
		switch (*p) {
		case '"':
			for (p++; p < e && *p != '"'; p++)
				if (*p == '\\')
					p++;
			p++;
			break;
		case '{': case '[':
			depth++;
			p++;
			break;
		case '}': case ']':
			depth--;
			p++;
			break;
		default:	/* a number or a literal */
			while (p < e && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
					 *p == '-' || *p == '+' || *p == '.' || *p == 'E'))
				p++;
		}
	} while (depth > 0);
	return p;
}

/* The value at p (valid JSON) as an xv. */
static struct xv xat(struct nn_match *m, const char *p, const char *e)
{
	struct xv v = { X_UNSURE, 0, p, 0 };
	switch (*p) {
	case '{': v.kind = JV_KIND_OBJECT; break;
	case '[': v.kind = JV_KIND_ARRAY; break;
	case 't': v.kind = JV_KIND_TRUE; break;
	case 'f': v.kind = JV_KIND_FALSE; break;
	case 'n': v.kind = JV_KIND_NULL; break;
	case '"': {
		const char *q = p + 1;
		while (*q != '"' && *q != '\\')
			q++;
		if (*q == '"') {	/* with escapes: not modelled */
			v.kind = JV_KIND_STRING;
			v.p = p + 1;
			v.len = (size_t)(q - p - 1);
		}
		break;
	}
	default: {
		struct scan s = { p, p, e, NULL, m };
		v.kind = JV_KIND_NUMBER;
		v.n = num_value(&s);
	}
	}
	return v;
}

/* Member key of the object at o (the last one of that name, as jq has it). */
static struct xv xmember(struct nn_match *m, const char *o, const char *e, const char *key,
			 size_t klen)
{
	struct xv v = { JV_KIND_NULL, 0, NULL, 0 };
	const char *p = o + 1, *found = NULL;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',')
			p++;
		if (*p == '}')
			break;
		const char *k = ++p;
		while (*p != '"' && *p != '\\')
			p++;
		if (*p == '\\') {	/* a name with escapes: not modelled */
			v.kind = X_UNSURE;
			return v;
		}
		int hit = (size_t)(p - k) == klen && !memcmp(k, key, klen);
		p++;
		while (*p != ':')
			p++;
		p++;
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (hit)
			found = p;
		p = xskip(p, e);
	}
	return found ? xat(m, found, e) : v;
}

static int truthy(const struct xv *v)
{
	return v->kind != JV_KIND_NULL && v->kind != JV_KIND_FALSE;
}

static struct xv xeval(struct nn_match *m, const struct xprog *g, int i, struct xv in,
		       const char *e)
{
	const struct xnode *n = &g->n[i];
	struct xv a, b, r = { X_UNSURE, 0, NULL, 0 };
	switch (n->op) {
	case X_CONST:
		return n->c;
	case X_DOT:
		return in;
	case X_FIELD:
		a = xeval(m, g, n->a, in, e);
		if (a.kind == JV_KIND_NULL)
			return a;
		if (a.kind != JV_KIND_OBJECT)
			return r;	/* jq: cannot index (an error) */
		if (a.p == m->xtop && n->ktop != K_OTHER) {
			/* a top-level member the scanner has seen (once) */
			const char *v = m->o.top[n->ktop];
			if (!v) {
				r.kind = JV_KIND_NULL;
				return r;
			}
			return xat(m, v, e);
		}
		return xmember(m, a.p, e, n->key, n->klen);
	case X_PIPE:
		a = xeval(m, g, n->a, in, e);
		return a.kind == X_UNSURE ? a : xeval(m, g, n->b, a, e);
	case X_NOT:
		if (in.kind != X_UNSURE)
			r.kind = truthy(&in) ? JV_KIND_FALSE : JV_KIND_TRUE;
		return r;
	case X_TONUM:
		if (in.kind == JV_KIND_NUMBER)
			return in;
		if (in.kind == JV_KIND_STRING && in.len >= 1 && in.len <= 15 &&
		    (in.p[0] != '0' || in.len == 1)) {
			double d = 0;
			for (size_t k = 0; k < in.len; k++) {
				if (in.p[k] < '0' || in.p[k] > '9')
					return r;
				d = d * 10 + (in.p[k] - '0');
			}
			r.kind = JV_KIND_NUMBER;
			r.n = d;
		}
		return r;
	case X_AND:
	case X_OR:
		a = xeval(m, g, n->a, in, e);
		if (a.kind == X_UNSURE)
			return a;
		if (truthy(&a) == (n->op == X_OR)) {
			r.kind = n->op == X_OR ? JV_KIND_TRUE : JV_KIND_FALSE;
			return r;
		}
		b = xeval(m, g, n->b, in, e);
		if (b.kind != X_UNSURE)
			r.kind = truthy(&b) ? JV_KIND_TRUE : JV_KIND_FALSE;
		return r;
	default:
		break;
	}
	a = xeval(m, g, n->a, in, e);
	if (a.kind == X_UNSURE)
		return a;
	b = xeval(m, g, n->b, in, e);
	if (b.kind == X_UNSURE)
		return b;
	if (n->op >= X_ADD) {
		if (a.kind != JV_KIND_NUMBER || b.kind != JV_KIND_NUMBER ||
		    (n->op == X_DIV && b.n == 0))
			return r;
		r.kind = JV_KIND_NUMBER;
		r.n = n->op == X_ADD ? a.n + b.n : n->op == X_SUB ? a.n - b.n :
		      n->op == X_MUL ? a.n * b.n : a.n / b.n;
		return r;
	}
	/* comparison, in jq's order: kinds first (null < false < true <
	 * numbers < strings), then values */
	int c;
	if (a.kind == JV_KIND_ARRAY || a.kind == JV_KIND_OBJECT ||
	    b.kind == JV_KIND_ARRAY || b.kind == JV_KIND_OBJECT)
		return r;
	if (a.kind != b.kind) {
		c = a.kind < b.kind ? -1 : 1;
	} else if (a.kind == JV_KIND_NUMBER) {
		if (isnan(a.n) || isnan(b.n))
			return r;
		c = a.n < b.n ? -1 : a.n > b.n;
	} else if (a.kind == JV_KIND_STRING) {
		c = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);
		if (c == 0)
			c = a.len < b.len ? -1 : a.len > b.len;
	} else {
		c = 0;
	}
	switch (n->op) {
	case X_EQ: c = c == 0; break;
	case X_NE: c = c != 0; break;
	case X_LT: c = c < 0; break;
	case X_LE: c = c <= 0; break;
	case X_GT: c = c > 0; break;
	default: c = c >= 0; break;
	}
	r.kind = c ? JV_KIND_TRUE : JV_KIND_FALSE;
	return r;
}

/* The expression on the offer text[0..len) (valid JSON): its value, or
 * X_UNSURE (then jq decides). */
static struct xv xrun(struct nn_match *m, const struct xprog *g, const char *text, size_t len)
{
	const char *p = text, *e = text + len;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	m->xtop = p;
	return xeval(m, g, g->root, xat(m, p, e), e);
}

void nn_match_free(struct nn_match *m)
{
	if (!m)
		return;
	jv_free(m->req);
	strs_free(&m->arch);
	strs_free(&m->exec);
	strs_free(&m->feat);
	strs_free(&m->gvendor);
	strs_free(&m->labk);
	strs_free(&m->labv);
	free(m->kernel);
	free(m->currency);
	for (int i = 0; i < m->naccept; i++) {
		free(m->accept[i].cont);
		free(m->accept[i].country);
		free(m->accept[i].city);
	}
	for (int i = 0; i < m->nreject; i++) {
		free(m->reject[i].cont);
		free(m->reject[i].country);
		free(m->reject[i].city);
	}
	free(m->accept);
	free(m->reject);
	if (m->where && m->where_owned)
		jq_teardown(&m->where);
	if (m->rank && m->rank_owned)
		jq_teardown(&m->rank);
	xfree(m->xwhere);
	xfree(m->xrank);
	free(m->where_text);
	free(m->where_show);
	free(m->rank_text);
	for (int i = 0; i < m->nwc; i++) {
		free(m->wc[i].text);
		free(m->wc[i].cerr);
		if (m->wc[i].jq)
			jq_teardown(&m->wc[i].jq);
	}
	free(m->dec);
	free(m);
}

struct nn_match_jq *nn_match_jq_new(void)
{
	return nn_xcalloc(1, sizeof(struct nn_match_jq));
}

void nn_match_jq_free(struct nn_match_jq *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n; i++) {
		free(c->e[i].text);
		jq_teardown(&c->e[i].jq);
	}
	free(c);
}

/* jq_make through the cache c (may be NULL); *owned: the caller's to tear
 * down (not in the cache).  A text that does not compile is not kept, so
 * its message is jq's every time. */
static jq_state *jq_get(struct nn_match_jq *c, const char *what, const char *text,
			int *owned, char *err)
{
	jq_state *jq;
	for (int i = 0; c && i < c->n; i++)
		if (!strcmp(c->e[i].text, text)) {
			*owned = 0;
			return c->e[i].jq;
		}
	jq = jq_make(what, text, err);
	*owned = 1;
	if (jq && c && c->n < JQCACHE) {
		c->e[c->n].text = nn_xstrdup(text);
		c->e[c->n++].jq = jq;
		*owned = 0;
	}
	return jq;
}

struct nn_match *nn_match_compile(jv req, const char *where, const char *rank, int *ex, char *err)
{
	return nn_match_compile_cached(req, where, rank, NULL, ex, err);
}

struct nn_match *nn_match_compile_cached(jv req, const char *where, const char *rank,
					 struct nn_match_jq *c, int *ex, char *err)
{
	struct nn_match *m = nn_xcalloc(1, sizeof *m);
	const char *qw = NULL, *qr = NULL;
	int exc = NN_EX_USAGE;

	m->req = req;
	m->milli = -1;
	for (int i = 0; i < NP; i++)
		m->pmax[i] = -1;
	if (jv_get_kind(req) != JV_KIND_OBJECT) {
		nn_seterr(err, "requirements: expected an object, not %s", nn_json_kind(req));
		exc = NN_EX_DATAERR;
		goto fail;
	}
	jv_object_foreach(req, k, v) {
		const char *ks = jv_string_value(k);
		int rc = 0;
		if (!strcmp(ks, "v")) {
			if (jv_get_kind(v) != JV_KIND_NUMBER || jv_number_value(v) != 1)
				rc = nn_seterr(err, "v: expected 1");
		} else if (!strcmp(ks, "cpu"))
			rc = members(m, req, "cpu", on_cpu, err);
		else if (!strcmp(ks, "ram"))
			rc = members(m, req, "ram", on_ram, err);
		else if (!strcmp(ks, "disk"))
			rc = members(m, req, "disk", on_disk, err);
		else if (!strcmp(ks, "gpus")) {
			m->gpus = 1;
			m->gcount = 1;
			rc = members(m, req, "gpus", on_gpus, err);
		} else if (!strcmp(ks, "executors"))
			rc = req_strs(v, "executors", &m->exec, err);
		else if (!strcmp(ks, "features"))
			rc = req_strs(v, "features", &m->feat, err);
		else if (!strcmp(ks, "kernel")) {
			if (jv_get_kind(v) != JV_KIND_STRING)
				rc = nn_seterr(err, "kernel: expected a string");
			else
				m->kernel = nn_xstrdup(jv_string_value(v));
		} else if (!strcmp(ks, "location"))
			rc = members(m, req, "location", on_location, err);
		else if (!strcmp(ks, "price"))
			rc = members(m, req, "price", on_price, err);
		else if (!strcmp(ks, "labels"))
			rc = members(m, req, "labels", on_labels, err);
		else if (!strcmp(ks, "where") || !strcmp(ks, "rank")) {
			if (jv_get_kind(v) != JV_KIND_STRING)
				rc = nn_seterr(err, "%s: expected a jq expression as a string", ks);
		} else
			rc = unknown("requirements", ks, err);
		jv_free(k);
		jv_free(v);
		if (rc < 0)
			goto fail;
	}
	if (nn_res_from_doc(&m->need, req, err) < 0)
		goto fail;
	if (m->milli >= 0)
		m->need.cpu = m->milli;

	/* jq: the document's where and --where both hold; --rank replaces rank */
	{
		jv w = jv_object_get(jv_copy(req), jv_string("where"));
		jv r = jv_object_get(jv_copy(req), jv_string("rank"));
		if (jv_get_kind(w) == JV_KIND_STRING)
			qw = jv_string_value(w);
		if (jv_get_kind(r) == JV_KIND_STRING)
			qr = jv_string_value(r);
		if (qw && where) {
			m->where_text = nn_xasprintf("(%s\n) and (%s\n)", qw, where);
			m->where_show = nn_xasprintf("(%s) and (%s)", qw, where);
		} else if (qw || where)
			m->where_text = nn_xstrdup(qw ? qw : where);
		if (rank || qr)
			m->rank_text = nn_xstrdup(rank ? rank : qr);
		jv_free(w);
		jv_free(r);
	}
	exc = NN_EX_DATAERR;
	if (qw && where) {
		/* compile each alone first, so the message names the right one */
		jq_state *t = jq_make("where", qw, err);
		if (!t)
			goto fail;
		jq_teardown(&t);
		if (!(t = jq_make("--where", where, err)))
			goto fail;
		jq_teardown(&t);
	}
	if (m->where_text && !(m->where = jq_get(c, where && !qw ? "--where" : "where",
						 m->where_text, &m->where_owned, err)))
		goto fail;
	if (m->rank_text && !(m->rank = jq_get(c, rank ? "--rank" : "rank", m->rank_text,
					       &m->rank_owned, err)))
		goto fail;
	if (m->where_text)
		m->xwhere = xcompile(m->where_text);
	if (m->rank_text)
		m->xrank = xcompile(m->rank_text);
	return m;
fail:
	if (ex)
		*ex = exc;
	nn_match_free(m);
	return NULL;
}

int nn_match_default_rank(const struct nn_match *m)
{
	return m->rank == NULL;
}

void nn_match_jq_only(struct nn_match *m, int on)
{
	m->jq_only = on;
}

unsigned long nn_match_fast_count(const struct nn_match *m)
{
	return m->nfast;
}

/* --- evaluation -------------------------------------------------------- */

/* a equals b, ignoring ASCII case */
static int sv_ieq(struct sv a, const char *b)
{
	size_t i;
	if (!a.p)
		return 0;
	for (i = 0; i < a.n; i++) {
		unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b[i];
		if (!y)
			return 0;
		if (x != y && (x | 32) != (y | 32))
			return 0;
		if (x != y && !((x | 32) >= 'a' && (x | 32) <= 'z'))
			return 0;
	}
	return !b[i];
}

static const char *svs(struct sv a, int *n)
{
	*n = a.p ? (int)(a.n > 64 ? 64 : a.n) : 4;
	return a.p ? a.p : "none";
}

/* Dotted numeric version compare: <0, 0, >0. */
static int vercmp(const char *a, size_t an, const char *b)
{
	const char *ae = a + an;
	for (int i = 0; i < 6; i++) {
		long x = 0, y = 0;
		int ax = 0, by = 0;
		while (a < ae && *a >= '0' && *a <= '9')
			x = x * 10 + (*a++ - '0'), ax = 1;
		while (*b >= '0' && *b <= '9')
			y = y * 10 + (*b++ - '0'), by = 1;
		if (x != y)
			return x < y ? -1 : 1;
		if (!by)
			return 0;
		if (!ax)
			return -1;
		if (a < ae && *a == '.')
			a++;
		else
			return *b == '.' ? -1 : 0;
		if (*b == '.')
			b++;
		else
			return 0;
	}
	return 0;
}

static int loc_match(const struct locpat *p, const struct ofr *o)
{
	return (!p->cont || sv_ieq(o->s.cont, p->cont)) &&
	       (!p->country || sv_ieq(o->s.country, p->country)) &&
	       (!p->city || sv_ieq(o->s.city, p->city));
}

static void loc_desc(struct nn_buf *b, const struct locpat *p, int n)
{
	for (int i = 0; i < n; i++) {
		const char *sep = "";
		if (i)
			nn_buf_adds(b, " or ");
		if (p[i].cont)
			nn_buf_addf(b, "%scontinent %s", sep, p[i].cont), sep = " ";
		if (p[i].country)
			nn_buf_addf(b, "%scountry %s", sep, p[i].country), sep = " ";
		if (p[i].city)
			nn_buf_addf(b, "%scity %s", sep, p[i].city);
		if (!p[i].cont && !p[i].country && !p[i].city)
			nn_buf_adds(b, "anywhere");
	}
}

static void list_desc(struct nn_buf *b, const struct strs *l)
{
	for (int i = 0; i < l->n; i++)
		nn_buf_addf(b, "%s%s", i ? "|" : "", l->v[i]);
}

#define FAIL(...) do {							\
		if (!why)						\
			return 1;					\
		*why = jv_array_append(*why, jv_string_fmt(__VA_ARGS__)); \
		nfail++;						\
	} while (0)

static int in_strs(const struct strs *l, struct sv v)
{
	for (int i = 0; i < l->n; i++)
		if (sv_ieq(v, l->v[i]))
			return 1;
	return 0;
}

/* The structured constraints: the number of failures (stops at 1 when why
 * is NULL). */
static int eval_struct(struct nn_match *m, const struct ofr *o, jv *why)
{
	int nfail = 0, n;
	const char *p;

	if (m->milli >= 0) {
		int64_t have = o->has & H_MILLI ? o->milli : !(o->has & H_CORES) ? -1 :
			       o->cores > INT64_MAX / 1000 ? INT64_MAX : o->cores * 1000;
		int cores = m->milli_as_cores && !(o->has & H_MILLI);
		if (have < 0)
			FAIL("cpu.%s: need %lld, have none", cores ? "cores" : "millicores",
			     (long long)(cores ? m->milli / 1000 : m->milli));
		else if (have < m->milli)
			FAIL("cpu.%s: need %lld, have %lld", cores ? "cores" : "millicores",
			     (long long)(cores ? m->milli / 1000 : m->milli),
			     (long long)(cores ? have / 1000 : have));
	}
	if (m->want)
		for (int f = 0; f < NF; f++) {
			if (!(m->want & (1u << f)))
				continue;
			if (!(o->has & (1u << f)))
				FAIL("%s: need %lld, have none", fname[f], (long long)m->min[f]);
			else if (o->num[f] < m->min[f])
				FAIL("%s: need %lld, have %lld", fname[f], (long long)m->min[f],
				     (long long)o->num[f]);
		}
	if (m->arch.n && !in_strs(&m->arch, o->s.arch)) {
		struct nn_buf b = NN_BUF_INIT;
		if (!why)
			return 1;
		list_desc(&b, &m->arch);
		p = svs(o->s.arch, &n);
		FAIL("cpu.arch: need %s, have %.*s", b.data, n, p);
		nn_buf_release(&b);
	}
	if (m->gpus && m->gcount > 0) {
		int64_t ok = 0;
		for (int i = 0; i < o->ngpu; i++)
			if (o->gvram[i] >= m->gvram &&
			    (!m->gvendor.n || in_strs(&m->gvendor, o->gvendor[i])))
				ok++;
		if (ok < m->gcount) {
			struct nn_buf b = NN_BUF_INIT;
			if (!why)
				return 1;
			nn_buf_addf(&b, "%lld", (long long)m->gcount);
			if (m->gvendor.n) {
				nn_buf_adds(&b, " ");
				list_desc(&b, &m->gvendor);
			}
			if (m->gvram)
				nn_buf_addf(&b, " with vram >= %lld", (long long)m->gvram);
			FAIL("gpus: need %s, have %lld", b.data, (long long)ok);
			nn_buf_release(&b);
		}
	}
	if (m->exec.n) {
		int ok = 0;
		for (int i = 0; i < o->nexec && !ok; i++)
			ok = in_strs(&m->exec, o->exec[i]);
		if (!ok) {
			struct nn_buf b = NN_BUF_INIT, h = NN_BUF_INIT;
			if (!why)
				return 1;
			list_desc(&b, &m->exec);
			for (int i = 0; i < o->nexec; i++)
				nn_buf_addf(&h, "%s%.*s", i ? "|" : "", (int)o->exec[i].n, o->exec[i].p);
			FAIL("executors: need %s, have %s", b.data, h.len ? h.data : "none");
			nn_buf_release(&b);
			nn_buf_release(&h);
		}
	}
	for (int j = 0; j < m->feat.n; j++) {
		int ok = 0;
		for (int i = 0; i < o->nfeat && !ok; i++)
			ok = sv_ieq(o->feat[i], m->feat.v[j]);
		if (!ok)
			FAIL("features: need %s, have none", m->feat.v[j]);
	}
	if (m->kernel && (!o->s.kernel.p || vercmp(o->s.kernel.p, o->s.kernel.n, m->kernel) < 0)) {
		p = svs(o->s.kernel, &n);
		FAIL("kernel: need %s, have %.*s", m->kernel, n, p);
	}
	if (m->naccept || m->nreject) {
		int acc = !m->naccept, rej = -1;
		for (int i = 0; i < m->naccept && !acc; i++)
			acc = loc_match(&m->accept[i], o);
		for (int i = 0; i < m->nreject && rej < 0; i++)
			if (loc_match(&m->reject[i], o))
				rej = i;
		if (!acc || rej >= 0) {
			struct nn_buf b = NN_BUF_INIT;
			if (!why)
				return 1;
			int n1, n2, n3;
			const char *p1 = svs(o->s.cont, &n1), *p2 = svs(o->s.country, &n2),
				   *p3 = svs(o->s.city, &n3);
			if (!acc) {
				loc_desc(&b, m->accept, m->naccept);
				FAIL("location: need %s, have %.*s/%.*s/%.*s", b.data, n1, p1, n2, p2,
				     n3, p3);
				nn_buf_reset(&b);
			}
			if (rej >= 0) {
				loc_desc(&b, &m->reject[rej], 1);
				FAIL("location: rejected %s, have %.*s/%.*s/%.*s", b.data, n1, p1,
				     n2, p2, n3, p3);
			}
			nn_buf_release(&b);
		}
	}
	if (m->currency && o->s.currency.p && !sv_ieq(o->s.currency, m->currency)) {
		p = svs(o->s.currency, &n);
		FAIL("price.currency: need %s, have %.*s", m->currency, n, p);
	}
	for (int i = 0; i < NP; i++)
		if (m->pmax[i] >= 0 && (o->has & H_PRICE(i)) && o->price[i] > m->pmax[i])
			FAIL("price.%s: need at most %lld, have %lld", pname[i],
			     (long long)m->pmax[i], (long long)o->price[i]);
	for (int j = 0; j < m->labk.n; j++) {
		int i;
		for (i = o->nlab - 1; i >= 0; i--)	/* the last one wins, as in jq */
			if (o->labk[i].n == strlen(m->labk.v[j]) &&
			    !memcmp(o->labk[i].p, m->labk.v[j], o->labk[i].n))
				break;
		if (i < 0)
			FAIL("labels.%s: need %s, have none", m->labk.v[j], m->labv.v[j]);
		else if (o->labv[i].n != strlen(m->labv.v[j]) ||
			 memcmp(o->labv[i].p, m->labv.v[j], o->labv[i].n))
			FAIL("labels.%s: need %s, have %.*s", m->labk.v[j], m->labv.v[j],
			     (int)(o->labv[i].n > 64 ? 64 : o->labv[i].n), o->labv[i].p);
	}
	return nfail;
}

/* The default score: minus the price of one second of the requested
 * resources (disk's per-GiB price spread over an hour). */
static double default_score(const struct nn_match *m, const struct ofr *o)
{
	double gib = 1073741824.0, c = 0;
	double cpu = m->need.cpu > 0 ? m->need.cpu / 1000.0 : 1.0;
	if (o->has & H_PRICE(P_CPU))
		c += (double)o->price[P_CPU] * cpu;
	if (o->has & H_PRICE(P_RAM))
		c += (double)o->price[P_RAM] * (double)m->need.ram / gib;
	if (o->has & H_PRICE(P_GPU))
		c += (double)o->price[P_GPU] * (double)m->need.gpus;
	if (o->has & H_PRICE(P_DISK))
		c += (double)o->price[P_DISK] * (double)m->need.disk / gib / 3600.0;
	return c == 0 ? 0 : -c;
}

/* The compiled state of an offer's where (cached); NULL with *cerr when it
 * does not compile. */
static jq_state *offer_where(struct nn_match *m, const char *text, const char **cerr)
{
	char err[NN_ERRLEN];
	struct wcache *w;
	for (int i = 0; i < m->nwc; i++)
		if (!strcmp(m->wc[i].text, text)) {
			*cerr = m->wc[i].cerr;
			return m->wc[i].jq;
		}
	if (m->nwc == WCACHE) {		/* full: start over */
		for (int i = 0; i < m->nwc; i++) {
			free(m->wc[i].text);
			free(m->wc[i].cerr);
			if (m->wc[i].jq)
				jq_teardown(&m->wc[i].jq);
		}
		m->nwc = 0;
	}
	w = &m->wc[m->nwc++];
	w->text = nn_xstrdup(text);
	w->jq = jq_make("offer where", text, err);
	w->cerr = w->jq ? NULL : nn_xstrdup(err);
	*cerr = w->cerr;
	return w->jq;
}

/* *offer, the jv of the offer text[0..len) (once: kept when valid), or -1
 * with err (and *why freed) when jq would not have it. */
static int offer_jv(struct nn_match *m, const char *text, size_t len, jv *offer, jv *why,
		    char *err)
{
	struct scan b = { text, text, text + len, err, m };
	if (jv_is_valid(*offer))
		return 0;
	*offer = build(&b);
	if (jv_is_valid(*offer))
		return 0;
	jv msg = jv_invalid_get_msg(*offer);
	*offer = jv_invalid();
	nn_seterr(err, "not JSON: %s", jv_get_kind(msg) == JV_KIND_STRING ?
		  jv_string_value(msg) : "rejected by jq");
	jv_free(msg);
	if (why) {
		jv_free(*why);
		*why = jv_invalid();
	}
	return -1;
}

int nn_match_text(struct nn_match *m, const char *text, size_t len,
		  double *score, jv *why, char *err)
{
	struct scan s = { text, text, text + len, err, m };
	struct ofr *o = &m->o;
	jv offer = jv_invalid();
	int nfail;
	char jerr[NN_ERRLEN];

	if (len > 0x7fffffff)
		return nn_seterr(err, "longer than 2147483647 bytes"), NN_MATCH_BAD;
	if (m->deccap < 2 * len + 2) {
		free(m->dec);
		/* room for decoding every string twice: scan, then build */
		m->deccap = 2 * len + 2 > 4096 ? 2 * len + 2 : 4096;
		m->dec = nn_xmalloc(m->deccap);
	}
	m->decoff = 0;
	if (scan_offer(&s, o) < 0)
		return NN_MATCH_BAD;
	if (why)
		*why = jv_array();
	nfail = eval_struct(m, o, why);
	if (nfail && !why)
		return NN_MATCH_NO;

	/* the offer as a jv, for jq: only when an expression has no fast
	 * form or its fast form is not sure */
	if ((m->where && (!m->xwhere || m->jq_only)) || (m->rank && (!m->xrank || m->jq_only)))
		if (offer_jv(m, text, len, &offer, why, err) < 0)
			return NN_MATCH_BAD;
	/* from here every failure is counted; with why NULL, stop at the first */
#undef FAIL
#define FAIL(...) do {							\
		if (why)						\
			*why = jv_array_append(*why, jv_string_fmt(__VA_ARGS__)); \
		nfail++;						\
	} while (0)
	if (m->where) {
		jv r;
		int k = X_UNSURE;
		if (m->xwhere && !m->jq_only)
			k = xrun(m, m->xwhere, text, len).kind;
		if (k != X_UNSURE)
			m->nfast++;
		else if (offer_jv(m, text, len, &offer, why, err) < 0)
			return NN_MATCH_BAD;
		else if (jq_first(m->where, jv_copy(offer), &r, jerr) < 0)
			FAIL("where: %s", jerr);
		else {
			k = (int)jv_get_kind(r);
			jv_free(r);
		}
		if (k == JV_KIND_FALSE || k == JV_KIND_NULL)
			FAIL("where: %s is %s", m->where_show ? m->where_show : m->where_text,
			     k == JV_KIND_FALSE ? "false" : "null");
		if (nfail && !why)
			goto no;
	}
	if (o->s.where.p) {
		char *t = nn_xmalloc(o->s.where.n + 1);
		const char *cerr = NULL;
		jq_state *jq;
		memcpy(t, o->s.where.p, o->s.where.n);
		t[o->s.where.n] = 0;
		jq = offer_where(m, t, &cerr);
		if (!jq)
			FAIL("%s", cerr);
		else {
			jv r;
			if (jq_first(jq, jv_copy(m->req), &r, jerr) < 0)
				FAIL("offer where: %s", jerr);
			else {
				jv_kind k = jv_get_kind(r);
				jv_free(r);
				if (k == JV_KIND_FALSE || k == JV_KIND_NULL)
					FAIL("offer where: %s is %s on the requirements", t,
					     k == JV_KIND_FALSE ? "false" : "null");
			}
		}
		free(t);
	}
	if (nfail)
		goto no;
	if (m->rank) {
		jv r = jv_invalid();
		struct xv x = { X_UNSURE, 0, NULL, 0 };
		if (m->xrank && !m->jq_only)
			x = xrun(m, m->xrank, text, len);
		if (x.kind == JV_KIND_NUMBER && isfinite(x.n))
			*score = x.n, m->nfast++;
		else if (offer_jv(m, text, len, &offer, why, err) < 0)
			return NN_MATCH_BAD;
		else if (jq_first(m->rank, jv_copy(offer), &r, jerr) < 0)
			FAIL("rank: %s", jerr);
		else if (jv_get_kind(r) != JV_KIND_NUMBER || !isfinite(jv_number_value(r)))
			FAIL("rank: %s is not a finite number", nn_json_kind(r));
		else
			*score = jv_number_value(r);
		jv_free(r);
		if (nfail)
			goto no;
	} else {
		*score = default_score(m, o);
	}
	jv_free(offer);
	if (why) {
		jv_free(*why);
		*why = jv_invalid();
	}
	return NN_MATCH_YES;
no:
	jv_free(offer);
	return NN_MATCH_NO;
}

int nn_match_eval(struct nn_match *m, jv offer, double *score, jv *why, char *err)
{
	char *text = nn_json_dump(offer);
	int rc = nn_match_text(m, text, strlen(text), score, why, err);
	free(text);
	return rc;
}
