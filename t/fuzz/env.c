/*
 * Fuzz target: envelope verification (lib/env.h), what a node runs on every
 * line a stranger sends.  The input is one envelope line.  It is verified as
 * it is (the seeds are validly signed, so mutations reach every check after
 * the signature); then, when the first byte is odd, its "from" is replaced by
 * a fixed identity and it is re-signed, after which verification must not
 * fail on the signature: what was signed must verify.  The replay cache and
 * the error/answer builders run on what passed.
 */
#include <jv.h>
#include "env.h"
#include "json.h"
#include "fuzz.h"

#define NOW 1800000000000LL	/* the seeds' ts is NOW - 1000 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nn_key k;
	static struct nn_replay *rp;
	static const uint8_t seed[32] = FUZZ_SEED(1);
	char err[NN_ERRLEN];
	struct nn_env_limits lim = NN_ENV_LIMITS_DEFAULT;

	fuzz_sodium();
	if (!k.did[0])
		nn_key_from_seed(&k, seed);
	if (!rp)
		rp = nn_replay_new(64);

	jv env = nn_json_parse((const char *)data, size, err);
	if (!jv_is_valid(env)) {
		jv_free(env);
		return 0;
	}
	enum nn_code rc = nn_env_verify(env, &lim, NOW, err);
	FUZZ_CHECK(rc >= NN_OK && rc < NN_E__COUNT);
	FUZZ_CHECK(rc == NN_OK || err[0]);
	(void)nn_code_name(rc);
	if (rc == NN_OK) {
		const char *from = nn_env_str(env, "from"), *id = nn_env_str(env, "id");
		int64_t exp = 0;
		FUZZ_CHECK(from && id && nn_json_get_int(env, "exp", &exp, err) == 0);
		int r = nn_replay_check(rp, from, id, exp, NOW);
		FUZZ_CHECK(r == 0 || r == 1 || r == -1);
		if (r == 0)
			FUZZ_CHECK(nn_replay_check(rp, from, id, exp, NOW) == 1);
	}
	jv e = nn_env_error(env, k.did, rc ? rc : NN_E_INTERNAL, rc ? err : "fine", 1000);
	jv_free(e);
	if (jv_get_kind(env) == JV_KIND_OBJECT && size && (data[0] & 1)) {
		jv m = jv_object_set(jv_copy(env), jv_string("from"), jv_string(k.did));
		m = jv_object_delete(m, jv_string("sig"));
		m = nn_env_sign(m, &k, err);
		if (jv_is_valid(m)) {
			rc = nn_env_verify(m, &lim, NOW, err);
			FUZZ_CHECK(rc != NN_E_BAD_SIGNATURE);
		}
		jv_free(m);
	}
	jv_free(env);
	return 0;
}
