/*
 * Fuzz target: nn_key_load on an arbitrary key file (plain or sealed).  A
 * sealed key is opened with the passphrase "fuzz" only when its argon2
 * limits are the cheapest ones (ops 1, mem 8192), so a run stays fast; the
 * seeds include such a key.  A key that loads must sign and verify.
 */
#include <jv.h>
#include "key.h"
#include "json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	struct nn_key k;
	const char *pass = NULL;

	fuzz_sodium();
	jv doc = nn_json_parse((const char *)data, size, err);
	if (jv_get_kind(doc) == JV_KIND_OBJECT) {
		int64_t ops = 0, mem = 0;
		if (nn_json_get_int(doc, "ops", &ops, NULL) == 0 &&
		    nn_json_get_int(doc, "mem", &mem, NULL) == 0 && ops == 1 && mem == 8192)
			pass = "fuzz";
	}
	jv_free(doc);
	const char *path = fuzz_file(data, size);
	err[0] = 0;
	if (nn_key_load(&k, path, pass, err) < 0) {
		FUZZ_CHECK(err[0]);
		return 0;
	}
	uint8_t sig[64], pk[32];
	nn_key_sign(&k, sig, "x", 1);
	FUZZ_CHECK(nn_sig_verify(k.pk, sig, "x", 1) == 0);
	FUZZ_CHECK(nn_did_to_pk(k.did, pk, err) == 0 && memcmp(pk, k.pk, 32) == 0);
	nn_key_clear(&k);
	return 0;
}
