/*
 * Fuzz target: capability token chains (lib/captoken.h), what a node's
 * authorizer runs on every "cap" a peer sends.  Three fixed identities: O
 * (seed 1) owns the checking node, A (seed 2) and B (seed 3) hold tokens;
 * a nonce starting "dead" counts as revoked.  The input is one token as
 * JSON.  When its first byte is odd ('{'), every link of the chain whose
 * issuer is O, A or B is re-signed first (parents before children), so
 * mutations get past the signatures to the rules of narrowing; an input
 * starting with white space is checked as it is.
 *
 * It is checked for its leaf's audience (A when that is no string) calling
 * the leaf's first capability plus "/x" (or /node/info).  Oracles: a code
 * in range, a message with every refusal; and when a chain is accepted,
 * a second opinion written from the header's rules must accept it too
 * (every link unexpired, unrevoked, issued by its parent's audience, no
 * longer-lived, of lower depth, narrower; the root issued by O; the leaf
 * granted to the invoker and covering the behavior), and the same chain
 * must be refused to another invoker, after the expiry of its leaf, and
 * once everything is revoked.
 */
#include <jv.h>
#include "captoken.h"
#include "codec.h"
#include "json.h"
#include "fuzz.h"

#define NOW 1800000000000LL

static struct nn_key ids[3];	/* O, A, B */
static int revoke_all;

static int is_root(const char *did, void *arg)
{
	return !strcmp(did, ids[0].did);
}

static int revoked(const char *nonce, void *arg)
{
	return revoke_all || !strncmp(nonce, "dead", 4);
}

static const struct nn_key *key_of(jv t)
{
	jv iss = jv_object_get(jv_copy(t), jv_string("iss"));
	const struct nn_key *k = NULL;
	if (jv_get_kind(iss) == JV_KIND_STRING)
		for (int i = 0; i < 3; i++)
			if (!strcmp(jv_string_value(iss), ids[i].did))
				k = &ids[i];
	jv_free(iss);
	return k;
}

/* Re-sign t (consumed) and its parents, at most 12 deep. */
static jv resign(jv t, int depth)
{
	const struct nn_key *k;
	struct nn_buf b;
	char err[NN_ERRLEN], sig64[100];
	uint8_t sig[64];
	jv p;

	if (jv_get_kind(t) != JV_KIND_OBJECT || depth > 12)
		return t;
	p = jv_object_get(jv_copy(t), jv_string("parent"));
	if (jv_get_kind(p) == JV_KIND_OBJECT)
		t = jv_object_set(t, jv_string("parent"), resign(p, depth + 1));
	else
		jv_free(p);
	if (!(k = key_of(t)))
		return t;
	nn_buf_init(&b, 1 << 20);
	nn_buf_adds(&b, NN_CAPTOKEN_PREFIX);
	if (nn_json_canon_without(t, "sig", &b, err) == 0) {
		nn_key_sign(k, sig, b.data, b.len);
		nn_b64_encode(sig64, sig, 64);
		t = jv_object_set(t, jv_string("sig"), jv_string(sig64));
	}
	nn_buf_release(&b);
	return t;
}

static const char *str(jv t, const char *f)
{
	const char *s;
	return nn_json_get_str(t, f, &s, NULL) < 0 ? NULL : s;
}

static int64_t num(jv t, const char *f)
{
	int64_t v = 0;
	nn_json_get_int(t, f, &v, NULL);
	return v;
}

static int covered(jv caps, const char *be)
{
	int ok = 0;
	jv_array_foreach(caps, i, c) {
		if (jv_get_kind(c) == JV_KIND_STRING && nn_captoken_covers(jv_string_value(c), be))
			ok = 1;
		jv_free(c);
	}
	return ok;
}

/* The second opinion on an accepted chain (borrows leaf). */
static void second_opinion(jv leaf, const char *invoker, const char *be)
{
	jv t = jv_copy(leaf);
	int n = 0;
	FUZZ_CHECK(!strcmp(str(t, "aud"), invoker));
	jv caps = jv_object_get(jv_copy(t), jv_string("cap"));
	FUZZ_CHECK(covered(caps, be));
	jv_free(caps);
	for (;;) {
		jv p = jv_object_get(jv_copy(t), jv_string("parent"));
		FUZZ_CHECK(num(t, "exp") > NOW);
		FUZZ_CHECK(strncmp(str(t, "nonce"), "dead", 4) != 0);
		FUZZ_CHECK(++n <= NN_CAPTOKEN_MAX_CHAIN + 1);
		if (jv_get_kind(p) != JV_KIND_OBJECT) {
			FUZZ_CHECK(!strcmp(str(t, "iss"), ids[0].did));
			jv_free(p);
			break;
		}
		FUZZ_CHECK(!strcmp(str(t, "iss"), str(p, "aud")));
		FUZZ_CHECK(num(t, "exp") <= num(p, "exp"));
		FUZZ_CHECK(num(t, "depth") < num(p, "depth"));
		jv c = jv_object_get(jv_copy(t), jv_string("cap"));
		jv pc = jv_object_get(jv_copy(p), jv_string("cap"));
		jv_array_foreach(c, i, x) {
			FUZZ_CHECK(jv_get_kind(x) == JV_KIND_STRING && covered(pc, jv_string_value(x)));
			jv_free(x);
		}
		jv_free(c);
		jv_free(pc);
		jv_free(t);
		t = p;
	}
	jv_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nn_captoken_ctx ctx = { is_root, revoked, NULL };
	char err[NN_ERRLEN], be[256] = "/node/info", invoker[NN_DID_MAX];
	enum nn_code rc;
	jv t, c;

	fuzz_sodium();
	if (!ids[0].did[0])
		for (int i = 0; i < 3; i++) {
			uint8_t seed[32];
			memset(seed, i + 1, sizeof seed);
			nn_key_from_seed(&ids[i], seed);
		}
	t = nn_json_parse((const char *)data, size, err);
	if (!jv_is_valid(t)) {
		jv_free(t);
		return 0;
	}
	if (size && (data[0] & 1))
		t = resign(t, 0);

	snprintf(invoker, sizeof invoker, "%s", ids[1].did);
	if (jv_get_kind(t) == JV_KIND_OBJECT) {
		const char *aud = str(t, "aud");
		if (aud && strlen(aud) < sizeof invoker)
			snprintf(invoker, sizeof invoker, "%s", aud);
		c = jv_object_get(jv_copy(t), jv_string("cap"));
		if (jv_get_kind(c) == JV_KIND_ARRAY && jv_array_length(jv_copy(c)) > 0) {
			jv first = jv_array_get(jv_copy(c), 0);
			if (jv_get_kind(first) == JV_KIND_STRING && strlen(jv_string_value(first)) < 200)
				snprintf(be, sizeof be, "%s%s", jv_string_value(first),
					 data[size - 1] & 1 ? "/x" : "");
			jv_free(first);
		}
		jv_free(c);
	}

	err[0] = '\0';
	revoke_all = 0;
	rc = nn_captoken_check(t, invoker, be, NOW, &ctx, err);
	FUZZ_CHECK(rc == NN_OK || rc == NN_E_UNAUTHORIZED || rc == NN_E_BAD_SIGNATURE ||
		   rc == NN_E_EXPIRED);
	FUZZ_CHECK(rc == NN_OK || err[0]);
	if (rc == NN_OK) {
		const char *other = strcmp(invoker, ids[2].did) ? ids[2].did : ids[1].did;
		second_opinion(t, invoker, be);
		FUZZ_CHECK(nn_captoken_check(t, other, be, NOW, &ctx, err) != NN_OK);
		FUZZ_CHECK(nn_captoken_check(t, invoker, be, num(t, "exp"), &ctx, err) == NN_E_EXPIRED);
		revoke_all = 1;
		FUZZ_CHECK(nn_captoken_check(t, invoker, be, NOW, &ctx, err) == NN_E_UNAUTHORIZED);
		revoke_all = 0;
	}
	jv_free(t);
	return 0;
}
