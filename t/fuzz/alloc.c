/*
 * Fuzz target: the parts of a deployment that lib/alloc.h reads from a
 * requester: a restart policy (a string or an object) and a health check.
 * The input is one JSON value given to both parsers.  Whatever is accepted
 * must be usable: a known policy with non-negative limits and times, and a
 * health check with a command or a URL and non-negative times.
 */
#include <jv.h>
#include "alloc.h"
#include "json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	jv v = nn_json_parse((const char *)data, size, err);
	if (!jv_is_valid(v)) {
		jv_free(v);
		return 0;
	}
	struct nn_alloc_restart r;
	err[0] = 0;
	if (nn_alloc_restart_parse(v, &r, err) == 0) {
		FUZZ_CHECK(r.policy == NN_RESTART_NEVER || r.policy == NN_RESTART_ON_FAILURE ||
			   r.policy == NN_RESTART_ALWAYS);
		FUZZ_CHECK(nn_alloc_policy_name(r.policy) != NULL);
		FUZZ_CHECK(r.max >= 0 && r.period_ms >= 0 && r.delay_ms >= 0);
	} else {
		FUZZ_CHECK(err[0]);
	}
	struct nn_alloc_health h;
	memset(&h, 0, sizeof h);
	err[0] = 0;
	if (nn_alloc_health_parse(v, &h, err) == 0) {
		FUZZ_CHECK(h.argv || h.url);
		if (h.argv)
			FUZZ_CHECK(h.argv[0] != NULL);
		FUZZ_CHECK(h.interval_ms >= 0 && h.timeout_ms >= 0 && h.start_ms >= 0 && h.retries >= 0);
		nn_alloc_health_release(&h);
	} else {
		FUZZ_CHECK(err[0]);
	}
	jv_free(v);
	return 0;
}
