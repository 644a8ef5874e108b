/*
 * env — envelopes.  Verification order matters: shape first, then the
 * signature, then time, and only then the replay cache, so a forged or
 * malformed envelope can neither be answered as valid nor poison the cache.
 */
#include "env.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "codec.h"
#include "json.h"
#include "util.h"

static const char *const code_names[NN_E__COUNT] = {
	[NN_OK] = "ok",
	[NN_E_PARSE] = "parse",
	[NN_E_OVERSIZE] = "oversize",
	[NN_E_NOT_OBJECT] = "not_object",
	[NN_E_BAD_FIELD] = "bad_field",
	[NN_E_BAD_SIGNATURE] = "bad_signature",
	[NN_E_EXPIRED] = "expired",
	[NN_E_BAD_TIME] = "bad_time",
	[NN_E_REPLAY] = "replay",
	[NN_E_UNKNOWN_BEHAVIOR] = "unknown_behavior",
	[NN_E_UNAUTHORIZED] = "unauthorized",
	[NN_E_BAD_BODY] = "bad_body",
	[NN_E_BUSY] = "busy",
	[NN_E_INTERNAL] = "internal",
	[NN_E_TIMEOUT] = "timeout",
	[NN_E_UNAVAILABLE] = "unavailable",
};

const char *nn_code_name(enum nn_code c)
{
	return (unsigned)c < NN_E__COUNT ? code_names[c] : "internal";
}

enum nn_code nn_code_parse(const char *name)
{
	for (int i = 0; i < NN_E__COUNT; i++)
		if (!strcmp(code_names[i], name))
			return (enum nn_code)i;
	return NN_E_INTERNAL;
}

const char *nn_env_str(jv env, const char *field)
{
	const char *s;
	return nn_json_get_str(env, field, &s, NULL) < 0 ? NULL : s;
}

jv nn_env_new(const char *type, const char *from, const char *to,
	      const char *be, jv body, int64_t ttl_ms)
{
	char id[33];
	int64_t now = nn_now_ms();
	jv e = jv_object();

	nn_random_id(id);
	e = jv_object_set(e, jv_string("v"), jv_number(NN_ENV_VERSION));
	e = jv_object_set(e, jv_string("type"), jv_string(type));
	e = jv_object_set(e, jv_string("id"), jv_string(id));
	e = jv_object_set(e, jv_string("from"), jv_string(from));
	e = jv_object_set(e, jv_string("to"), jv_string(to));
	if (be)
		e = jv_object_set(e, jv_string("be"), jv_string(be));
	e = jv_object_set(e, jv_string("ts"), jv_number((double)now));
	e = jv_object_set(e, jv_string("exp"), jv_number((double)(now + ttl_ms)));
	e = jv_object_set(e, jv_string("body"), body);
	return e;
}

jv nn_env_answer(jv req, const char *type, const char *from, jv body, int64_t ttl_ms)
{
	const char *to = nn_env_str(req, "from");
	const char *be = nn_env_str(req, "be");
	const char *re = nn_env_str(req, "id");
	const char *trace = nn_env_str(req, "trace");
	jv e = nn_env_new(type, from, to ? to : "local", be, body, ttl_ms);
	if (re)
		e = jv_object_set(e, jv_string("re"), jv_string(re));
	if (trace)	/* an answer stays in its request's trace */
		e = jv_object_set(e, jv_string("trace"), jv_string(trace));
	return e;
}

jv nn_env_error(jv req, const char *from, enum nn_code code, const char *msg, int64_t ttl_ms)
{
	jv body = jv_object();
	body = jv_object_set(body, jv_string("code"), jv_string(nn_code_name(code)));
	body = jv_object_set(body, jv_string("message"), jv_string(msg));
	return nn_env_answer(req, "error", from, body, ttl_ms);
}

/* The signed bytes: prefix + canonical form of env without sig. */
static int signing_input(jv env, struct nn_buf *b, char *err)
{
	nn_buf_reset(b);
	nn_buf_adds(b, NN_ENV_SIG_PREFIX);
	return nn_json_canon_without(env, "sig", b, err);
}

jv nn_env_sign(jv env, const struct nn_key *k, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	uint8_t sig[64];
	char s64[96];

	if (signing_input(env, &b, err) < 0) {
		nn_buf_release(&b);
		jv_free(env);
		return jv_invalid();
	}
	nn_key_sign(k, sig, b.data, b.len);
	nn_buf_release(&b);
	nn_b64_encode_pub(s64, sig, sizeof sig);
	return jv_object_set(env, jv_string("sig"), jv_string(s64));
}

/*
 * The canonical form without sig is both what is signed and, with the
 * signature spliced in at its sorted place, the line that is sent: one
 * canonicalization instead of two.
 */
int nn_env_sign_line(jv env, const struct nn_key *k, struct nn_buf *out, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	size_t plen = strlen(NN_ENV_SIG_PREFIX), at;
	uint8_t sig[64];
	char s64[96];
	int first, last;

	nn_buf_adds(&b, NN_ENV_SIG_PREFIX);
	if (nn_json_canon_without_at(env, "sig", &b, &at, err) < 0) {
		nn_buf_release(&b);
		jv_free(env);
		return -1;
	}
	jv_free(env);
	nn_key_sign(k, sig, b.data, b.len);
	nn_b64_encode_pub(s64, sig, sizeof sig);
	first = b.data[at - 1] == '{';
	last = b.data[at] == '}';
	if (nn_buf_add(out, b.data + plen, at - plen) < 0 ||
	    nn_buf_addf(out, "%s\"sig\":\"%s\"%s", first ? "" : ",", s64, first && !last ? "," : "") < 0 ||
	    nn_buf_add(out, b.data + at, b.len - at) < 0 || nn_buf_addc(out, '\n') < 0) {
		nn_buf_release(&b);
		return nn_seterr(err, "envelope too large");
	}
	nn_buf_release(&b);
	return 0;
}

static int is_id(const char *s)
{
	size_t n = strlen(s);
	if (n < 8 || n > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

/* ,"KEY":"S" (S escaped as the canonical writer does) */
static void put_member(struct nn_buf *b, const char *key, const char *s)
{
	nn_buf_addf(b, ",\"%s\":", key);
	nn_json_put_string(b, s, strlen(s));
}

/* nn_env_line with body as a jv (consumed), or as canonical text when
 * btext is not NULL */
static int env_line(const struct nn_env_head *h, jv body, const char *btext, size_t blen,
		    const struct nn_key *k, struct nn_buf *out, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	size_t plen = strlen(NN_ENV_SIG_PREFIX), at;
	uint8_t sig[64];
	char s64[96];
	int r;

	/* the members in canonical order: be body exp from id re [sig] to
	 * trace ts type v (ASCII keys: byte order is RFC 8785's order) */
	nn_buf_adds(&b, NN_ENV_SIG_PREFIX "{");
	if (h->be) {
		nn_buf_adds(&b, "\"be\":");
		nn_json_put_string(&b, h->be, strlen(h->be));
		nn_buf_addc(&b, ',');
	}
	nn_buf_adds(&b, "\"body\":");
	if (btext)
		r = nn_buf_add(&b, btext, blen) < 0 ? nn_seterr(err, "envelope too large") : 0;
	else
		r = nn_json_canon(body, &b, err);
	jv_free(body);
	if (r < 0) {
		nn_buf_release(&b);
		return -1;
	}
	nn_buf_addf(&b, ",\"exp\":%lld", (long long)h->exp);
	put_member(&b, "from", h->from);
	put_member(&b, "id", h->id);
	if (h->re)
		put_member(&b, "re", h->re);
	at = b.len;
	put_member(&b, "to", h->to);
	if (h->trace)
		put_member(&b, "trace", h->trace);
	nn_buf_addf(&b, ",\"ts\":%lld", (long long)h->ts);
	put_member(&b, "type", h->type);
	nn_buf_addf(&b, ",\"v\":%d}", NN_ENV_VERSION);
	nn_key_sign(k, sig, b.data, b.len);
	nn_b64_encode_pub(s64, sig, sizeof sig);
	if (nn_buf_add(out, b.data + plen, at - plen) < 0 ||
	    nn_buf_addf(out, ",\"sig\":\"%s\"", s64) < 0 ||
	    nn_buf_add(out, b.data + at, b.len - at) < 0 || nn_buf_addc(out, '\n') < 0) {
		nn_buf_release(&b);
		return nn_seterr(err, "envelope too large");
	}
	nn_buf_release(&b);
	return 0;
}

int nn_env_line(const struct nn_env_head *h, jv body, const struct nn_key *k,
		struct nn_buf *out, char *err)
{
	return env_line(h, body, NULL, 0, k, out, err);
}

int nn_env_line_text(const struct nn_env_head *h, const char *body, size_t blen,
		     const struct nn_key *k, struct nn_buf *out, char *err)
{
	return env_line(h, jv_null(), body, blen, k, out, err);
}

int nn_env_answer_line(const struct nn_env_head *req, const char *type, const char *from, jv body,
		       const char *id, int64_t ts, int64_t ttl_ms, const struct nn_key *k,
		       struct nn_buf *out, char *err)
{
	struct nn_env_head a = {
		.type = type, .id = id, .from = from, .to = req->from ? req->from : "local",
		.be = req->be, .re = req->id, .trace = req->trace, .ts = ts, .exp = ts + ttl_ms,
	};
	return nn_env_line(&a, body, k, out, err);
}

static enum nn_code verify(jv env, const struct nn_env_limits *lim, int64_t now, int check_sig,
			   struct nn_env_head *h, char *err);

enum nn_code nn_env_verify(jv env, const struct nn_env_limits *lim, int64_t now, char *err)
{
	return verify(env, lim, now, 1, NULL, err);
}

enum nn_code nn_env_check_forward(jv env, const struct nn_env_limits *lim, int64_t now, char *err)
{
	return verify(env, lim, now, 0, NULL, err);
}

enum nn_code nn_env_verify_head(jv env, const struct nn_env_limits *lim, int64_t now, int sig,
				struct nn_env_head *h, char *err)
{
	return verify(env, lim, now, sig, h, err);
}

static enum nn_code verify(jv env, const struct nn_env_limits *lim, int64_t now, int check_sig,
			   struct nn_env_head *h, char *err)
{
	static const struct nn_env_limits deflim = NN_ENV_LIMITS_DEFAULT;
	const char *type, *id, *from, *to, *be = NULL, *sig;
	int64_t v, ts, exp;
	uint8_t pk[32], sigb[64];
	struct nn_buf b = NN_BUF_INIT;
	char ferr[NN_ERRLEN];
	enum nn_code rc;

	if (!lim)
		lim = &deflim;
	if (jv_get_kind(env) != JV_KIND_OBJECT) {
		nn_seterr(err, "envelope is a JSON %s, not an object", nn_json_kind(env));
		return NN_E_NOT_OBJECT;
	}
	/* one walk over the members instead of a lookup per field */
	struct fld { const char *name; int kind; jv val; } f[] = {
		{ "v", 0, jv_null() }, { "type", 0, jv_null() }, { "id", 0, jv_null() },
		{ "from", 0, jv_null() }, { "to", 0, jv_null() }, { "ts", 0, jv_null() },
		{ "exp", 0, jv_null() }, { "body", 0, jv_null() }, { "sig", 0, jv_null() },
		{ "be", 0, jv_null() }, { "re", 0, jv_null() }, { "cap", 0, jv_null() },
		{ "trace", 0, jv_null() },
	};
	enum { F_V, F_TYPE, F_ID, F_FROM, F_TO, F_TS, F_EXP, F_BODY, F_SIG, F_BE, F_RE, F_CAP,
	       F_TRACE, F_N };
	jv_object_foreach(env, k, val) {
		const char *name = jv_string_value(k);
		for (int i = 0; i < F_N; i++)
			if (!strcmp(name, f[i].name)) {
				f[i].kind = jv_get_kind(val);
				f[i].val = val;	/* env holds it; pointers stay valid */
				break;
			}
		jv_free(k);
		jv_free(val);
	}
	/* the required fields, in order, each with its type */
	static const int want[] = { JV_KIND_NUMBER, JV_KIND_STRING, JV_KIND_STRING, JV_KIND_STRING,
				    JV_KIND_STRING, JV_KIND_NUMBER, JV_KIND_NUMBER, JV_KIND_OBJECT,
				    JV_KIND_STRING };
	for (int i = 0; i <= F_SIG; i++) {
		if (f[i].kind == want[i] &&
		    (want[i] != JV_KIND_NUMBER || nn_json_is_int(jv_number_value(f[i].val))))
			continue;
		nn_seterr(err, "bad envelope: %s: %s", f[i].name,
			  f[i].kind == 0 ? "missing" : want[i] == JV_KIND_NUMBER ? "expected an integer" :
			  want[i] == JV_KIND_STRING ? "expected a string" : "expected an object");
		return NN_E_BAD_FIELD;
	}
	v = (int64_t)jv_number_value(f[F_V].val);
	ts = (int64_t)jv_number_value(f[F_TS].val);
	exp = (int64_t)jv_number_value(f[F_EXP].val);
	type = jv_string_value(f[F_TYPE].val);
	id = jv_string_value(f[F_ID].val);
	from = jv_string_value(f[F_FROM].val);
	to = jv_string_value(f[F_TO].val);
	sig = jv_string_value(f[F_SIG].val);
	if (v != NN_ENV_VERSION) {
		nn_seterr(err, "bad envelope: v: unsupported version %lld", (long long)v);
		return NN_E_BAD_FIELD;
	}
	if (strcmp(type, "msg") && strcmp(type, "reply") && strcmp(type, "error") && strcmp(type, "event")) {
		nn_seterr(err, "bad envelope: type: '%.32s' is not msg, reply, error or event", type);
		return NN_E_BAD_FIELD;
	}
	if (!is_id(id)) {
		nn_seterr(err, "bad envelope: id: expected 8 to 64 letters or digits");
		return NN_E_BAD_FIELD;
	}
	if (f[F_BE].kind && f[F_BE].kind != JV_KIND_STRING) {
		nn_seterr(err, "bad envelope: be: expected a string");
		return NN_E_BAD_FIELD;
	}
	be = f[F_BE].kind ? jv_string_value(f[F_BE].val) : NULL;
	if ((!strcmp(type, "msg") || !strcmp(type, "event")) && (!be || be[0] != '/')) {
		nn_seterr(err, "bad envelope: be: expected a behavior path such as /node/info");
		return NN_E_BAD_FIELD;
	}
	if (f[F_RE].kind && f[F_RE].kind != JV_KIND_STRING) {
		nn_seterr(err, "bad envelope: re: expected a string");
		return NN_E_BAD_FIELD;
	}
	if (!strcmp(type, "reply") && !f[F_RE].kind) {
		nn_seterr(err, "bad envelope: re: missing");
		return NN_E_BAD_FIELD;
	}
	if (f[F_CAP].kind && f[F_CAP].kind != JV_KIND_ARRAY) {
		nn_seterr(err, "bad envelope: cap: expected an array of tokens");
		return NN_E_BAD_FIELD;
	}
	if (nn_did_to_pk(from, pk, ferr) < 0) {
		nn_seterr(err, "bad envelope: from: %s", ferr);
		return NN_E_BAD_FIELD;
	}
	if (strlen(sig) != 88 || nn_b64_decode_pub(sigb, sizeof sigb, sig, 88) != 64) {
		nn_seterr(err, "bad signature: sig is not 64 bytes of base64");
		return NN_E_BAD_SIGNATURE;
	}
	if (check_sig && signing_input(env, &b, ferr) < 0) {
		nn_buf_release(&b);
		nn_seterr(err, "bad envelope: %s", ferr);
		return NN_E_BAD_FIELD;
	}
	rc = NN_OK;
	if (check_sig && nn_sig_verify(pk, sigb, b.data, b.len) != 0) {
		nn_seterr(err, "bad signature: envelope %s is not signed by %.80s", id, from);
		rc = NN_E_BAD_SIGNATURE;
	} else if (exp <= now) {
		nn_seterr(err, "envelope %s expired %lld ms ago", id, (long long)(now - exp));
		rc = NN_E_EXPIRED;
	} else if (ts > now + lim->skew_ms) {
		nn_seterr(err, "envelope %s is from %lld ms in the future", id, (long long)(ts - now));
		rc = NN_E_BAD_TIME;
	} else if (exp < ts || exp - ts > lim->max_ttl_ms) {
		nn_seterr(err, "envelope %s: exp must lie within %lld ms after ts", id,
			  (long long)lim->max_ttl_ms);
		rc = NN_E_BAD_TIME;
	}
	nn_buf_release(&b);
	if (rc == NN_OK && h) {
		h->type = type;
		h->id = id;
		h->from = from;
		h->to = to;
		h->be = be;
		h->re = f[F_RE].kind ? jv_string_value(f[F_RE].val) : NULL;
		h->trace = f[F_TRACE].kind == JV_KIND_STRING ? jv_string_value(f[F_TRACE].val) : NULL;
		h->ts = ts;
		h->exp = exp;
	}
	return rc;
}

/* ---- the hot path: envelopes read by nn_jscan ---- */

int nn_env_scan(const char *line, size_t len, struct nn_env_scan *es)
{
	es->line = line;
	es->len = len;
	es->used = 0;
	return nn_jscan_object(line, len, &es->j);
}

const char *nn_env_scan_str(struct nn_env_scan *es, const char *key)
{
	const struct nn_jscan_member *m = nn_jscan_get(&es->j, key);
	char *s;
	if (!m || m->kind != NN_JSCAN_STRING || !m->plain || m->vlen - 2 >= sizeof es->buf - es->used)
		return NULL;
	s = es->buf + es->used;
	memcpy(s, m->val + 1, m->vlen - 2);
	s[m->vlen - 2] = '\0';
	es->used += m->vlen - 1;
	return s;
}

/* A member that is absent, or a plain string (copied into *out), so that
 * its value is what jv would read; 0, or -1 when neither. */
static int opt_plain(struct nn_env_scan *es, const char *key, const char **out)
{
	const struct nn_jscan_member *m = nn_jscan_get(&es->j, key);
	*out = NULL;
	if (!m)
		return 0;
	return (*out = nn_env_scan_str(es, key)) ? 0 : -1;
}

static int int_member(const struct nn_jscan *j, const char *key, int64_t *out)
{
	const struct nn_jscan_member *m = nn_jscan_get(j, key);
	if (!m || !m->integer)
		return -1;
	*out = nn_jscan_int(m);
	return 0;
}

int nn_env_scan_verify(struct nn_env_scan *es, const struct nn_env_limits *lim, int64_t now,
		       int check_sig, struct nn_buf *scratch)
{
	static const struct nn_env_limits deflim = NN_ENV_LIMITS_DEFAULT;
	const struct nn_jscan_member *m;
	const char *type, *id, *from, *to, *sig, *be, *re, *trace = NULL;
	int64_t v, ts, exp;
	uint8_t pk[32], sigb[64];

	if (!lim)
		lim = &deflim;
	es->used = 0;
	/* the fields verify() reads, each of the kind it wants and readable
	 * here as jv would read it */
	if (int_member(&es->j, "v", &v) < 0 || int_member(&es->j, "ts", &ts) < 0 ||
	    int_member(&es->j, "exp", &exp) < 0 || v != NN_ENV_VERSION)
		return 0;
	if (!(type = nn_env_scan_str(es, "type")) || !(id = nn_env_scan_str(es, "id")) ||
	    !(from = nn_env_scan_str(es, "from")) || !(to = nn_env_scan_str(es, "to")) ||
	    !(sig = nn_env_scan_str(es, "sig")) || opt_plain(es, "be", &be) < 0 ||
	    opt_plain(es, "re", &re) < 0)
		return 0;
	if (!(m = nn_jscan_get(&es->j, "body")) || m->kind != NN_JSCAN_OBJECT)
		return 0;
	if ((m = nn_jscan_get(&es->j, "cap")) && m->kind != NN_JSCAN_ARRAY)
		return 0;
	if ((m = nn_jscan_get(&es->j, "trace")) && m->kind == NN_JSCAN_STRING &&
	    !(trace = nn_env_scan_str(es, "trace")))
		return 0;	/* a string jv reads otherwise: the full path */
	if (strcmp(type, "msg") && strcmp(type, "reply") && strcmp(type, "error") && strcmp(type, "event"))
		return 0;
	if (!is_id(id))
		return 0;
	if ((!strcmp(type, "msg") || !strcmp(type, "event")) && (!be || be[0] != '/'))
		return 0;
	if (!strcmp(type, "reply") && !re)
		return 0;
	if (nn_did_to_pk(from, pk, NULL) < 0)
		return 0;
	if (strlen(sig) != 88 || nn_b64_decode_pub(sigb, sizeof sigb, sig, 88) != 64)
		return 0;
	if (check_sig) {
		/* the signed text is the canonical form without sig: in a
		 * canonical line, the line with the sig member cut out */
		const struct nn_jscan_member *s = nn_jscan_get(&es->j, "sig");
		const char *cut = s->key - 1, *end = s->val + s->vlen;
		if (!es->j.canonical)
			return 0;
		if (cut[-1] == ',')
			cut--;
		else if (*end == ',')
			end++;
		nn_buf_reset(scratch);
		if (nn_buf_adds(scratch, NN_ENV_SIG_PREFIX) < 0 ||
		    nn_buf_add(scratch, es->line, (size_t)(cut - es->line)) < 0 ||
		    nn_buf_add(scratch, end, (size_t)(es->line + es->len - end)) < 0)
			return 0;
		if (nn_sig_verify(pk, sigb, scratch->data, scratch->len) != 0)
			return 0;
	}
	if (exp <= now || ts > now + lim->skew_ms || exp < ts || exp - ts > lim->max_ttl_ms)
		return 0;
	es->h.type = type;
	es->h.id = id;
	es->h.from = from;
	es->h.to = to;
	es->h.be = be;
	es->h.re = re;
	es->h.trace = trace;
	es->h.ts = ts;
	es->h.exp = exp;
	return 1;
}

/* Replay cache: open addressing on a 16-byte BLAKE2b digest of from+id. */
struct slot {
	uint8_t key[16];
	int64_t exp;	/* 0: empty */
};

struct nn_replay {
	struct slot *t;
	size_t cap, used, max;
	int64_t next_prune;
};

struct nn_replay *nn_replay_new(size_t max)
{
	struct nn_replay *r = nn_xcalloc(1, sizeof *r);
	r->max = max ? max : 1;
	r->cap = 1024;
	r->t = nn_xcalloc(r->cap, sizeof *r->t);
	return r;
}

void nn_replay_free(struct nn_replay *r)
{
	if (!r)
		return;
	free(r->t);
	free(r);
}

size_t nn_replay_size(const struct nn_replay *r)
{
	return r->used;
}

static size_t slot_of(const uint8_t key[16], size_t cap)
{
	uint64_t h;
	memcpy(&h, key, 8);
	return (size_t)(h & (cap - 1));
}

static void insert(struct slot *t, size_t cap, const uint8_t key[16], int64_t exp)
{
	size_t i = slot_of(key, cap);
	while (t[i].exp)
		i = (i + 1) & (cap - 1);
	memcpy(t[i].key, key, 16);
	t[i].exp = exp;
}

/* Rebuild with capacity cap, dropping entries expired at now. */
static void rebuild(struct nn_replay *r, size_t cap, int64_t now)
{
	struct slot *t = nn_xcalloc(cap, sizeof *t);
	size_t used = 0;
	for (size_t i = 0; i < r->cap; i++)
		if (r->t[i].exp > now) {
			insert(t, cap, r->t[i].key, r->t[i].exp);
			used++;
		}
	free(r->t);
	r->t = t;
	r->cap = cap;
	r->used = used;
}

int nn_replay_check(struct nn_replay *r, const char *from, const char *id, int64_t exp, int64_t now)
{
	uint8_t key[16];
	crypto_generichash_state st;
	size_t i;

	crypto_generichash_init(&st, NULL, 0, sizeof key);
	crypto_generichash_update(&st, (const uint8_t *)from, strlen(from) + 1);
	crypto_generichash_update(&st, (const uint8_t *)id, strlen(id));
	crypto_generichash_final(&st, key, sizeof key);

	for (i = slot_of(key, r->cap); r->t[i].exp; i = (i + 1) & (r->cap - 1))
		if (!memcmp(r->t[i].key, key, 16)) {
			if (r->t[i].exp > now)
				return 1;
			r->t[i].exp = exp;	/* expired entry: reuse */
			return 0;
		}
	if (now >= r->next_prune || r->used >= r->max || (r->used + 1) * 2 > r->cap) {
		size_t cap = r->cap;
		rebuild(r, cap, now);
		r->next_prune = now + 1000;
		while ((r->used + 1) * 2 > cap)
			cap *= 2;
		if (cap != r->cap)
			rebuild(r, cap, now);
	}
	if (r->used >= r->max)
		return -1;
	insert(r->t, r->cap, key, exp);
	r->used++;
	return 0;
}
