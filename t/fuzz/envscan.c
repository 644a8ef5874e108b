/*
 * Fuzz target: the hot path's scanner (lib/jscan.h, nn_env_scan and
 * nn_env_scan_verify in lib/env.h), which reads envelopes on forwarding
 * nodes and clients without libjq.  The oracle (t/fuzz/envscan-oracle.h)
 * holds it to the full path: same members, canonical only when the
 * canonical writer agrees byte for byte, and never a "yes" where
 * nn_env_verify_head says anything but NN_OK.  The seeds are signed
 * envelopes (their ts is NOW - 1000) and crafted near misses.
 */
#include "envscan-oracle.h"
#include "fuzz.h"

#define NOW 1800000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	int scanned, canon, fwd, sig;
	fuzz_sodium();
	if (memchr(data, '\n', size))	/* one line, as the readers hand them */
		size = (size_t)((const uint8_t *)memchr(data, '\n', size) - data);
	if (envscan_oracle((const char *)data, size, NOW, why, sizeof why, &scanned, &canon, &fwd,
			   &sig) < 0) {
		fprintf(stderr, "envscan: %s\n", why);
		FUZZ_CHECK(!"the fast and the full path differ");
	}
	return 0;
}
