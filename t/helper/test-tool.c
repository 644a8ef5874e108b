/*
 * test-tool — drives libcommon's units from the bats suite: `test-tool CMD
 * ARGS…`.  The subcommands live in t/helper/tool/NAME.c.
 */
#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include "test-tool.h"

struct cmd {
	const char *name;
	int (*fn)(int, char **);
};

static const struct cmd cmds[] = {
	{ "canon", cmd__canon },
	{ "b58", cmd__b58 },
	{ "b64", cmd__b64 },
	{ "did", cmd__did },
	{ "key", cmd__key },
	{ "env", cmd__env },
	{ "envscan", cmd__envscan },
	{ "replay", cmd__replay },
	{ "lines", cmd__lines },
	{ "db", cmd__db },
	{ "loop", cmd__loop },
	{ "size", cmd__size },
	{ "dlcurl", cmd__dlcurl },
	{ "events-bench", cmd__events_bench },
	{ "cap", cmd__cap },
	{ "pay", cmd__pay },
	{ "shs", cmd__shs },
	{ "exec", cmd__exec },
	{ "docker", cmd__docker },
	{ "hwinfo", cmd__hwinfo },
	{ "bench", cmd__bench },
	{ "onboard", cmd__onboard },
	{ "swarm", cmd__swarm },
	{ "captoken", cmd__captoken },
	{ "ensemble", cmd__ensemble },
	/* more: one line each, keep sorted by family */
};

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 70;
	if (argc < 2) {
		fprintf(stderr, "usage: test-tool CMD [ARGS...]\n");
		return 64;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
		if (!strcmp(cmds[i].name, argv[1]))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "test-tool: unknown command '%s'\n", argv[1]);
	return 64;
}
