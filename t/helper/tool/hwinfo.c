/*
 * hwinfo units: the detection parts nunet-bench does not print on their
 * own, driven from t/7001-bench.bats against fake trees.
 *
 *   test-tool hwinfo quota SYSROOT   the cgroup CPU limit in millicores (0: none)
 */
#include <stdio.h>
#include <string.h>
#include "hwinfo.h"
#include "test-tool.h"

int cmd__hwinfo(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "quota")) {
		printf("%lld\n", (long long)nn_hwinfo_cpu_quota(argv[2]));
		return 0;
	}
	fprintf(stderr, "usage: test-tool hwinfo quota SYSROOT\n");
	return 64;
}
