/*
 * bench units: CPU kernels timed by nunet-bench's method, and its memory
 * and disk measurements run in pairs, for t/perf/bench-stability's
 * reference rows.
 *
 *   test-tool bench cpu [THREADS]        nunet-bench's own kernel
 *   test-tool bench cpu-wide [THREADS]   the reference: the same work in
 *                                        independent steps
 *   test-tool bench pair DIR             two runs of the memory and disk
 *                                        measurements, interleaved
 *
 * cpu and cpu-wide print the score as nunet-bench computes it (upper
 * quartile of 11 trials of 200 ms, iterations per CPU-second /
 * NN_BENCH_SCORE_SCALE).  The wide kernel's steps do not wait for one
 * another, so it fills the core and feels whatever else runs there (an
 * SMT neighbor on the host); beside nunet-bench's scores, its spread shows
 * what the machine did.
 *
 * pair runs a full run's memory and disk measurements (lib/bench.h) twice
 * at once, a and b, on their own buffers and files in DIR: after each of
 * 22 single-thread CPU trials, a copy of each, and on 16 of them spread
 * evenly a disk round of each, a first and b first in turn.  Both runs
 * see the same moments of the host, so how far apart their figures are
 * is the method's own noise, apart from the host's drift between
 * sequential runs.  Prints {"a":{"ram","read","write"},"b":{...}}.
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

/* a full run's copies (one after each CPU trial, single and multi) and
 * its most disk rounds */
#define PAIR_TRIALS (2 * NN_BENCH_TRIALS)
#define PAIR_ROUNDS NN_BENCH_DISK_ROUNDS_MAX

static int bench_pair(const char *dir)
{
	char err[NN_ERRLEN];
	struct nn_bench_mem_run m[2];
	struct nn_bench_disk_run d[2] = { { .fd = -1 }, { .fd = -1 } };
	struct nn_bench_disk out[2];
	uint64_t ram[2], score;
	int rc = 0;

	memset(m, 0, sizeof m);
	for (int k = 0; k < 2 && rc == 0; k++)
		if (nn_bench_mem_start(&m[k], NN_BENCH_MEM_BYTES, PAIR_TRIALS, err) < 0 ||
		    nn_bench_disk_start(&d[k], dir, NN_BENCH_DISK_BYTES, NN_BENCH_DISK_PASS_MS,
					NN_BENCH_DISK_REGIONS, err) < 0)
			rc = -1;
	for (int i = 0; i < PAIR_TRIALS && rc == 0; i++) {
		int first = i % 2;
		if (nn_bench_cpu_kernel(nn_bench_cpu_unit, 1, 1, 100, &score, err) < 0) {
			rc = -1;
			break;
		}
		nn_bench_mem_copy(&m[first]);
		nn_bench_mem_copy(&m[!first]);
		if (nn_bench_round_due(i, PAIR_TRIALS, PAIR_ROUNDS) &&
		    (nn_bench_disk_rounds(&d[first], 1, err) < 0 || nn_bench_disk_rounds(&d[!first], 1, err) < 0))
			rc = -1;
	}
	for (int k = 0; k < 2; k++) {
		ram[k] = nn_bench_mem_end(&m[k]);
		nn_bench_disk_end(&d[k], &out[k]);
	}
	if (rc < 0) {
		fprintf(stderr, "test-tool: %s\n", err);
		return 71;
	}
	printf("{\"a\":{\"ram\":%llu,\"read\":%llu,\"write\":%llu},\"b\":{\"ram\":%llu,\"read\":%llu,\"write\":%llu}}\n",
	       (unsigned long long)ram[0], (unsigned long long)out[0].read, (unsigned long long)out[0].write,
	       (unsigned long long)ram[1], (unsigned long long)out[1].read, (unsigned long long)out[1].write);
	return 0;
}

int cmd__bench(int argc, char **argv)
{
	char err[NN_ERRLEN];
	nn_bench_unit_fn *unit = NULL;
	unsigned threads = 1;
	uint64_t score;

	if (argc == 3 && !strcmp(argv[1], "pair"))
		return bench_pair(argv[2]);
	if (argc == 2 || argc == 3) {
		if (!strcmp(argv[1], "cpu"))
			unit = nn_bench_cpu_unit;
		else if (!strcmp(argv[1], "cpu-wide"))
			unit = wide_unit;
		if (argc == 3)
			threads = (unsigned)strtoul(argv[2], NULL, 10);
	}
	if (!unit || threads < 1) {
		fprintf(stderr, "usage: test-tool bench cpu|cpu-wide [THREADS] | pair DIR\n");
		return 64;
	}
	if (nn_bench_cpu_kernel(unit, threads, NN_BENCH_TRIALS, NN_BENCH_TRIAL_MS, &score, err) < 0) {
		fprintf(stderr, "test-tool: %s\n", err);
		return 71;
	}
	printf("%llu\n", (unsigned long long)((score + NN_BENCH_SCORE_SCALE / 2) / NN_BENCH_SCORE_SCALE));
	return 0;
}
