/*
 * bench units: CPU kernels timed by nunet-bench's method, for
 * t/perf/bench-stability's reference row.
 *
 *   test-tool bench cpu [THREADS]        nunet-bench's own kernel
 *   test-tool bench cpu-wide [THREADS]   the reference: the same work in
 *                                        independent steps
 *
 * Each prints the score as nunet-bench computes it (upper quartile of 11
 * trials of 200 ms, iterations per CPU-second / NN_BENCH_SCORE_SCALE).
 * The wide kernel's steps do not wait for one another, so it fills the
 * core and feels whatever else runs there (an SMT neighbor on the host);
 * beside nunet-bench's scores, its spread shows what the machine did.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "test-tool.h"

/* nunet-bench's kernel before it became a chain: x steps by the golden
 * ratio and the mixed value z is used without feeding back. */
static uint64_t wide_unit(uint64_t *state, double *acc)
{
	uint64_t x = state[0];
	uint32_t *table = (uint32_t *)(state + 8);
	double a = *acc;

	for (int i = 0; i < NN_BENCH_UNIT_STEPS; i++) {
		uint64_t z;
		x += 0x9e3779b97f4a7c15ULL;
		z = x;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		table[z & 1023] += (uint32_t)(z >> 32);
		a = a * 0.9999999 + (double)(z & 0xffff) * 1e-6;
	}
	state[0] = x;
	*acc = a;
	return x ^ table[x & 1023];
}

int cmd__bench(int argc, char **argv)
{
	char err[NN_ERRLEN];
	nn_bench_unit_fn *unit = NULL;
	unsigned threads = 1;
	uint64_t score;

	if (argc == 2 || argc == 3) {
		if (!strcmp(argv[1], "cpu"))
			unit = nn_bench_cpu_unit;
		else if (!strcmp(argv[1], "cpu-wide"))
			unit = wide_unit;
		if (argc == 3)
			threads = (unsigned)strtoul(argv[2], NULL, 10);
	}
	if (!unit || threads < 1) {
		fprintf(stderr, "usage: test-tool bench cpu|cpu-wide [THREADS]\n");
		return 64;
	}
	if (nn_bench_cpu_kernel(unit, threads, 11, 200, &score, err) < 0) {
		fprintf(stderr, "test-tool: %s\n", err);
		return 71;
	}
	printf("%llu\n", (unsigned long long)((score + NN_BENCH_SCORE_SCALE / 2) / NN_BENCH_SCORE_SCALE));
	return 0;
}
