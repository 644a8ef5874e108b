/*
 * captoken — issue and check capability tokens and their delegation chains
 * (see captoken.h).  Pure: no store, no clock; revocation and the root of
 * trust come from the caller.
 */
#include "captoken.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "json.h"
#include "util.h"

int nn_captoken_covers(const char *cap, const char *be)
{
	size_t n = strlen(cap);
	if (!strcmp(cap, "/"))
		return be[0] == '/';
	if (n && cap[n - 1] == '/')
		n--;
	return !strncmp(cap, be, n) && (be[n] == '\0' || be[n] == '/');
}

static int caps_cover(jv caps, const char *be)
{
	int ok = 0;
	jv_array_foreach(caps, i, c) {
		if (jv_get_kind(c) == JV_KIND_STRING && nn_captoken_covers(jv_string_value(c), be))
			ok = 1;
		jv_free(c);
	}
	return ok;
}

/* The signed bytes of tok (borrowed) into out. */
static int signed_bytes(jv tok, struct nn_buf *out, char *err)
{
	nn_buf_init(out, 4 * 1024 * 1024);
	nn_buf_adds(out, NN_CAPTOKEN_PREFIX);
	return nn_json_canon_without(tok, "sig", out, err);
}

static jv get(jv tok, const char *k)
{
	return jv_object_get(jv_copy(tok), jv_string(k));
}

/* Every capability of child is covered by one of parent's (borrows both). */
static int narrows(jv child_caps, jv parent_caps, char *err)
{
	int ok = 1;
	jv_array_foreach(child_caps, i, c) {
		if (ok && (jv_get_kind(c) != JV_KIND_STRING || !caps_cover(parent_caps, jv_string_value(c)))) {
			nn_seterr(err, "delegation widens its parent: '%.80s' is not granted by it",
				  jv_get_kind(c) == JV_KIND_STRING ? jv_string_value(c) : "?");
			ok = 0;
		}
		jv_free(c);
	}
	return ok;
}

jv nn_captoken_make(const struct nn_key *k, const char *aud, jv caps, int64_t exp, int depth,
		    jv parent, char *err)
{
	char nonce[33], *sig64;
	uint8_t sig[64];
	struct nn_buf b;
	jv t = jv_object();

	if (jv_get_kind(caps) != JV_KIND_ARRAY || jv_array_length(jv_copy(caps)) == 0) {
		jv_free(caps);
		jv_free(parent);
		jv_free(t);
		nn_seterr(err, "a token needs at least one capability");
		return jv_invalid();
	}
	if (jv_get_kind(parent) == JV_KIND_OBJECT) {
		jv pa = get(parent, "aud"), pc = get(parent, "cap"), pd = get(parent, "depth"), pe = get(parent, "exp");
		const char *why = NULL;
		char e[NN_ERRLEN];
		if (jv_get_kind(pa) != JV_KIND_STRING || strcmp(jv_string_value(pa), k->did))
			why = "the parent token was not granted to this key";
		else if (jv_get_kind(pd) != JV_KIND_NUMBER || jv_number_value(pd) < 1)
			why = "the parent token may not be delegated (depth 0)";
		else if (depth > (int)jv_number_value(pd) - 1)
			why = "a delegation's depth must be below its parent's";
		else if (jv_get_kind(pe) != JV_KIND_NUMBER || (double)exp > jv_number_value(pe))
			why = "a delegation may not outlive its parent";
		else if (!narrows(caps, pc, e))
			why = e;
		if (why) {
			nn_seterr(err, "%s", why);
			jv_free(pa), jv_free(pc), jv_free(pd), jv_free(pe);
			jv_free(caps);
			jv_free(parent);
			jv_free(t);
			return jv_invalid();
		}
		jv_free(pa), jv_free(pc), jv_free(pd), jv_free(pe);
	}
	nn_random_id(nonce);
	t = jv_object_set(t, jv_string("v"), jv_number(1));
	t = jv_object_set(t, jv_string("iss"), jv_string(k->did));
	t = jv_object_set(t, jv_string("aud"), jv_string(aud));
	t = jv_object_set(t, jv_string("cap"), caps);
	t = jv_object_set(t, jv_string("exp"), jv_number((double)exp));
	t = jv_object_set(t, jv_string("depth"), jv_number(depth));
	t = jv_object_set(t, jv_string("nonce"), jv_string(nonce));
	if (jv_get_kind(parent) == JV_KIND_OBJECT)
		t = jv_object_set(t, jv_string("parent"), parent);
	else
		jv_free(parent);
	if (signed_bytes(t, &b, err) < 0) {
		nn_buf_release(&b);
		jv_free(t);
		return jv_invalid();
	}
	nn_key_sign(k, sig, b.data, b.len);
	nn_buf_release(&b);
	sig64 = nn_xmalloc(nn_b64_len(64) + 1);
	nn_b64_encode(sig64, sig, 64);
	t = jv_object_set(t, jv_string("sig"), jv_string(sig64));
	free(sig64);
	return t;
}

/* Shape and signature of one token (borrowed). */
static enum nn_code check_one(jv t, int64_t now, const struct nn_captoken_ctx *ctx, char *err)
{
	const char *iss, *aud, *nonce, *sig64;
	int64_t exp, depth;
	uint8_t pk[32], sig[64];
	struct nn_buf b;
	char e[NN_ERRLEN];
	jv caps;
	int ok;

	if (jv_get_kind(t) != JV_KIND_OBJECT || nn_json_get_str(t, "iss", &iss, e) < 0 ||
	    nn_json_get_str(t, "aud", &aud, e) < 0 || nn_json_get_str(t, "nonce", &nonce, e) < 0 ||
	    nn_json_get_str(t, "sig", &sig64, e) < 0 || nn_json_get_int(t, "exp", &exp, e) < 0 ||
	    nn_json_get_int(t, "depth", &depth, e) < 0) {
		nn_seterr(err, "capability token: %s", jv_get_kind(t) == JV_KIND_OBJECT ? e : "not an object");
		return NN_E_UNAUTHORIZED;
	}
	caps = get(t, "cap");
	ok = jv_get_kind(caps) == JV_KIND_ARRAY;
	jv_free(caps);
	if (!ok) {
		nn_seterr(err, "capability token: cap: expected an array");
		return NN_E_UNAUTHORIZED;
	}
	if (nn_did_to_pk(iss, pk, e) < 0 || nn_b64_decode(sig, 64, sig64, strlen(sig64)) != 64) {
		nn_seterr(err, "capability token %.32s: bad issuer or signature encoding", nonce);
		return NN_E_BAD_SIGNATURE;
	}
	if (signed_bytes(t, &b, e) < 0) {
		nn_buf_release(&b);
		nn_seterr(err, "capability token %.32s: %s", nonce, e);
		return NN_E_UNAUTHORIZED;
	}
	ok = nn_sig_verify(pk, sig, b.data, b.len) == 0;
	nn_buf_release(&b);
	if (!ok) {
		nn_seterr(err, "capability token %.32s: bad signature", nonce);
		return NN_E_BAD_SIGNATURE;
	}
	if (exp <= now) {
		nn_seterr(err, "capability token %.32s expired", nonce);
		return NN_E_EXPIRED;
	}
	if (ctx->revoked && ctx->revoked(nonce, ctx->arg)) {
		nn_seterr(err, "capability token %.32s was revoked", nonce);
		return NN_E_UNAUTHORIZED;
	}
	return NN_OK;
}

enum nn_code nn_captoken_check(jv token, const char *invoker, const char *be, int64_t now,
			       const struct nn_captoken_ctx *ctx, char *err)
{
	jv t = jv_copy(token), caps;
	enum nn_code code;
	int level = 0;
	const char *aud;

	code = check_one(t, now, ctx, err);
	if (code != NN_OK)
		goto out;
	nn_json_get_str(t, "aud", &aud, NULL);
	if (strncmp(aud, invoker, nn_did_len(invoker)) != 0 || strlen(aud) != nn_did_len(invoker)) {
		nn_seterr(err, "capability token was granted to %.80s, not to the sender", aud);
		code = NN_E_UNAUTHORIZED;
		goto out;
	}
	caps = get(t, "cap");
	if (!caps_cover(caps, be)) {
		jv_free(caps);
		nn_seterr(err, "capability token does not cover %.100s", be);
		code = NN_E_UNAUTHORIZED;
		goto out;
	}
	jv_free(caps);
	for (;;) {
		jv parent = get(t, "parent");
		const char *iss;
		nn_json_get_str(t, "iss", &iss, NULL);
		if (jv_get_kind(parent) != JV_KIND_OBJECT) {
			jv_free(parent);
			if (!ctx->is_root(iss, ctx->arg)) {
				nn_seterr(err, "capability chain is rooted in %.80s, not in an owner of this node", iss);
				code = NN_E_UNAUTHORIZED;
			}
			break;
		}
		if (++level > NN_CAPTOKEN_MAX_CHAIN) {
			jv_free(parent);
			nn_seterr(err, "capability chain longer than %d", NN_CAPTOKEN_MAX_CHAIN);
			code = NN_E_UNAUTHORIZED;
			break;
		}
		code = check_one(parent, now, ctx, err);
		if (code == NN_OK) {
			const char *paud;
			int64_t pdepth, depth, pexp, exp;
			jv pc = get(parent, "cap"), c = get(t, "cap");
			char e[NN_ERRLEN];
			nn_json_get_str(parent, "aud", &paud, NULL);
			nn_json_get_int(parent, "depth", &pdepth, NULL);
			nn_json_get_int(t, "depth", &depth, NULL);
			nn_json_get_int(parent, "exp", &pexp, NULL);
			nn_json_get_int(t, "exp", &exp, NULL);
			code = NN_E_UNAUTHORIZED;
			if (strcmp(paud, iss) != 0)
				nn_seterr(err, "capability chain broken: %.80s delegates a token granted to %.80s", iss, paud);
			else if (pdepth < 1 || depth > pdepth - 1)
				nn_seterr(err, "over-delegated: a token of depth %lld was delegated again at depth %lld",
					  (long long)pdepth, (long long)depth);
			else if (exp > pexp)
				nn_seterr(err, "delegation outlives its parent");
			else if (!narrows(c, pc, e))
				nn_seterr(err, "%s", e);
			else
				code = NN_OK;
			jv_free(pc);
			jv_free(c);
		}
		jv_free(t);
		t = parent;
		if (code != NN_OK)
			break;
	}
out:
	jv_free(t);
	return code;
}
