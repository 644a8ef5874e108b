/*
 * Fuzz target: capability documents (lib/cap.h) as a peer or a file sends
 * them: nn_cap_check, the resource vector (nn_res_from_doc), its flat form
 * (nn_res_from_json, which must read back what nn_res_to_json wrote), the
 * arithmetic's refusals, and nn_cap_restrict on a checked document.
 */
#include <jv.h>
#include "cap.h"
#include "json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	jv doc = nn_json_parse((const char *)data, size, err);
	if (!jv_is_valid(doc)) {
		jv_free(doc);
		return 0;
	}
	int ok = nn_cap_check(doc, err) == 0;
	struct nn_res r, back, sum;
	if (nn_res_from_doc(&r, doc, err) == 0) {
		/* nn_res_to_json writes numbers, which jv keeps as doubles: only
		 * vectors within 2^53 can come back exactly (a known limit,
		 * reported: "ram":{"size":"9223372036854775807"} does not) */
		const int64_t exact = (int64_t)1 << 53;
		jv flat = nn_res_to_json(&r);
		if (r.cpu <= exact && r.ram <= exact && r.disk <= exact && r.gpus <= exact &&
		    r.vram <= exact) {
			FUZZ_CHECK(nn_res_from_json(&back, flat, err) == 0);
			FUZZ_CHECK(!memcmp(&r, &back, sizeof r));
		}
		jv_free(flat);
		if (nn_res_check(&r, err) == 0) {
			FUZZ_CHECK(nn_res_fits(&r, &r, NULL) == 1);
			if (nn_res_add(&sum, &r, &r, err) == 0) {
				FUZZ_CHECK(nn_res_sub(&sum, &sum, &r, err) == 0);
				FUZZ_CHECK(!memcmp(&sum, &r, sizeof r));
			}
			struct nn_res half = { r.cpu / 2, r.ram / 2, r.disk / 2, r.gpus / 2, r.vram / 2 };
			if (ok) {
				jv c = nn_cap_restrict(jv_copy(doc), &half);
				jv_free(c);
			}
		}
	}
	if (jv_get_kind(doc) == JV_KIND_OBJECT) {
		jv v = jv_object_get(jv_copy(doc), jv_string("ram"));
		int64_t sz;
		(void)nn_cap_size(v, "ram", &sz, err);
		jv_free(v);
		(void)nn_res_from_json(&back, doc, err);
	}
	jv_free(doc);
	return 0;
}
