/*
 * test-tool envscan [NOW] — the hot path's scanner beside the full path,
 * line by line from stdin (t/0011-envscan.bats): for each line one line
 * out, "scan=ok|full canonical=0|1 fwd=fast|full sig=fast|full", which
 * path decides a forward (no signature check) and a delivery (signature
 * checked) at time NOW (ms; default now).  A line where the two paths
 * differ prints "MISMATCH: …" and the exit status is 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include "../../fuzz/envscan-oracle.h"
#include "lines.h"
#include "test-tool.h"

int cmd__envscan(int argc, char **argv)
{
	int64_t now = argc > 1 ? atoll(argv[1]) : nn_now_ms();
	struct nn_lines l;
	const char *line;
	size_t len;
	int r, rc = 0;

	nn_lines_init(&l, 0);
	while (nn_lines_read_fd(&l, 0) > 0)
		;
	nn_lines_feed(&l, "\n", 1);
	while ((r = nn_lines_next(&l, &line, &len)) != NN_LINES_NONE) {
		char why[256];
		int scanned, canon, fwd, sig;
		if (r != NN_LINES_LINE || len == 0)
			continue;
		if (envscan_oracle(line, len, now, why, sizeof why, &scanned, &canon, &fwd, &sig) < 0) {
			printf("MISMATCH: %s\n", why);
			rc = 1;
			continue;
		}
		printf("scan=%s canonical=%d fwd=%s sig=%s\n", scanned ? "ok" : "full", canon,
		       fwd ? "fast" : "full", sig ? "fast" : "full");
	}
	nn_lines_release(&l);
	return rc;
}
