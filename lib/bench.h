/*
 * bench — measuring this machine: CPU score (single thread and all
 * threads), memory bandwidth, disk sequential write and read; and
 * nn_bench_run(), which adds hwinfo's detection and returns one capability
 * document (man/nunet-capability.5).  Nothing here prints; progress is
 * reported through a callback the caller may set.
 *
 * Every CPU and memory figure is the upper quartile of several short
 * trials (the 4th of 5, the 9th of 11, the 17th of 22): other work on the
 * machine only slows them down, so a high quantile estimates the
 * machine's own speed, and is steadier from run to run than the median on
 * a busy machine; one lucky trial cannot set it as it would the maximum.
 * Every disk figure is the median of its rounds: a virtual disk's rounds
 * run at two speeds whose shares move with its host, and a quartile
 * flips between them (nunet-bench(1)).  The memory copies and the
 * disk rounds are taken between the CPU trials, so that all three sample
 * the whole run: on a shared host what a guest gets drifts over seconds
 * with its neighbors.  Durations and sizes:
 *
 *	          full                      quick
 *	cpu       1 warm-up + 11 x 200 ms    1 + 5 x 50 ms  (single, then multi)
 *	memory    22 x memcpy 256 MiB        10 x 32 MiB    (one after each cpu
 *	                                                    trial)
 *	disk      4 warm-up, then 6..16      1 + 3 x 16 MiB (after 1 allocating
 *	          rounds of write+read       or 100 ms,      write; at least
 *	          256 MiB, or what the disk  back to back    4 MiB; 64 MiB calls;
 *	          writes in 500 ms if less,  in 1 region     a full run's rounds
 *	          (what takes 7 s), taking                   spaced over the cpu
 *	          4 regions in turn                          trials)
 *
 * The CPU kernel (nn_bench_cpu_unit) is fixed: one iteration is 4096 steps
 * of a chain x = mix(x + golden) with SplitMix64's mixing function, so each
 * step waits for the last (two multiplies, three shifts and xors); each
 * step also adds the upper half of x into one of 1024 32-bit counters (an
 * L1-resident table) indexed by its low bits, and feeds its low 16 bits
 * into a dependent double-precision multiply-add chain.  The chain leaves
 * the core issue slots to spare, so another tenant on the same physical
 * core (SMT, unseen from a guest) hardly slows it: on the 2-vCPU EPYC
 * guest it was written on, a kernel of independent steps lost 30% for
 * seconds at a time while this one held within 3%.  The score is
 * iterations per second of the CPU time each thread was given
 * (CLOCK_THREAD_CPUTIME_ID), so other processes sharing the machine do not
 * lower it, divided by NN_BENCH_SCORE_SCALE (one point is 40 iterations a
 * second: a 2.6 GHz EPYC core that boosts to 3.7 GHz scores about 1550);
 * multi is the sum over one thread
 * per CPU this process may run on.  Memory bandwidth is
 * per second of CPU time too; disk rates are wall-clock.
 */
#ifndef NN_BENCH_H
#define NN_BENCH_H

#include <stdint.h>
#include <stddef.h>
#include <jv.h>
#include "hwinfo.h"
#include "util.h"

#define NN_BENCH_UNIT_STEPS 4096
#define NN_BENCH_SCORE_SCALE 40	/* iterations per second per score point */

/* A full run's sizes (the table above), for nn_bench_run and for what
 * repeats its measurements beside it (t/helper's bench pair). */
#define NN_BENCH_TRIALS 11		/* CPU trials of each test, single then multi */
#define NN_BENCH_TRIAL_MS 200		/* one CPU trial, wall time */
#define NN_BENCH_MEM_BYTES (256u << 20)	/* one copy (at most ram / 8) */
#define NN_BENCH_DISK_BYTES (256u << 20)	/* one pass, at most */
#define NN_BENCH_DISK_PASS_MS 500	/* a slow disk's pass: what it writes in this */
#define NN_BENCH_DISK_REGIONS 4
#define NN_BENCH_DISK_ROUNDS_MAX 16	/* timed rounds, at most */

/* One iteration of the CPU kernel.  state holds 1 + 1024/2 uint64_t words
 * of kernel state (start from zeros); returns a value that depends on all
 * the work, to keep the compiler honest. */
#define NN_BENCH_STATE_WORDS 520
uint64_t nn_bench_cpu_unit(uint64_t *state, double *acc);

/* CPU rate of a kernel of nn_bench_cpu_unit's shape (nn_bench_run times
 * nn_bench_cpu_unit; t/perf/bench-stability a reference beside it):
 * iterations per CPU-second summed over nthreads threads (each its own
 * kernel state), upper quartile of trials of trial_ms wall time each,
 * after one warm-up trial.  0, or -1 + err when a thread cannot be
 * started.  The document's score is this divided by NN_BENCH_SCORE_SCALE. */
typedef uint64_t nn_bench_unit_fn(uint64_t *state, double *acc);
int nn_bench_cpu_kernel(nn_bench_unit_fn *unit, unsigned nthreads, int trials, int64_t trial_ms,
			uint64_t *score, char *err);

/* Whether a disk round falls due after slot (0-based) of slots
 * measurement slots, rounds rounds spaced evenly over them. */
int nn_bench_round_due(int slot, int slots, int rounds);

/* CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned nn_bench_ncpus(void);

/* Memory bandwidth: bytes per CPU-second of memcpy() between two buffers
 * of bytes each (huge pages where possible, touched before timing), upper
 * quartile of up to trials copies, each nn_bench_mem_copy() one.  Each
 * byte copied counts once (it is read once and written once).  start:
 * 0, or -1 + err when the buffers cannot be had; end frees everything
 * (also after a failed start, and twice) and answers 0 for no copies. */
struct nn_bench_mem_run {
	unsigned char *src, *dst;
	size_t bytes;
	uint64_t *v;		/* the copies' rates */
	int n, cap;
	uint64_t sink;
};
int nn_bench_mem_start(struct nn_bench_mem_run *m, size_t bytes, int trials, char *err);
void nn_bench_mem_copy(struct nn_bench_mem_run *m);
uint64_t nn_bench_mem_end(struct nn_bench_mem_run *m);

struct nn_bench_disk {
	uint64_t size;		/* total bytes of the filesystem holding dir */
	uint64_t read, write;	/* bytes per second */
	int direct;		/* 1: O_DIRECT; 0: buffered + fdatasync + fadvise */
	uint64_t bytes;		/* bytes of one pass */
};

/* Disk: in dir, a new unlinked temporary file of regions regions, each of
 * a pass's size, is written once to allocate it; then in rounds, one
 * region after another, a region is rewritten sequentially in 64 MiB
 * calls and fdatasync()ed (the write time includes the sync), then read
 * back (the calls' buffer in huge pages where the kernel has them:
 * bench.c says why).  One warm-up round in each region, then the timed
 * rounds, each rate the median of them; when the warm-up rounds took over
 * 3 x pass_ms each (a disk that reads far slower than it writes), the
 * timed rounds use the part of each region that takes that long.  The
 * page cache is bypassed with O_DIRECT where the filesystem allows it;
 * elsewhere the file is written buffered, fdatasync()ed, and dropped from
 * the cache with posix_fadvise(POSIX_FADV_DONTNEED) before reading.  bytes
 * is the most one pass uses: it shrinks to half of the free space divided
 * by regions when that is less, and to what the first 32 MiB written say
 * the disk writes in pass_ms (at least 4 MiB), so a slow disk does not
 * make the run slow.  -1 + err ("cannot write in 'DIR': …") on any I/O
 * failure; nothing is left behind in dir.
 *
 * In steps, so that its rounds can be spread over a run: _start opens,
 * allocates and sizes the file and runs the warm-up rounds; _rounds runs
 * n timed rounds more; _end computes out from the rounds run so far (out
 * may be NULL) and closes, frees and zeroes d (safe to call twice; _start
 * and _rounds failing leave d to be ended, _start having ended it
 * already). */
struct nn_bench_disk_run {
	const char *dir;
	int fd, direct;
	unsigned char *buf;
	uint64_t size, bytes;
	uint64_t stride;	/* the regions' size and distance */
	int regions;
	int64_t round_ns;	/* how long one round takes (the warm-up's) */
	uint64_t *wv, *rv;	/* rates of the timed rounds */
	int n, cap;
};
int nn_bench_disk_start(struct nn_bench_disk_run *d, const char *dir, uint64_t bytes,
			int64_t pass_ms, int regions, char *err);
int nn_bench_disk_rounds(struct nn_bench_disk_run *d, int n, char *err);
void nn_bench_disk_end(struct nn_bench_disk_run *d, struct nn_bench_disk *out);

enum nn_bench_fail {
	NN_BENCH_FAIL_NONE = 0,
	NN_BENCH_FAIL_IO,	/* a file could not be read or written */
	NN_BENCH_FAIL_INTERNAL	/* a thread or buffer could not be had */
};

struct nn_bench_opts {
	int quick;		/* short trials (about 1 s in all) */
	int measure;		/* 0: detection only, scores and rates are 0 */
	const char *dir;	/* disk test directory; NULL: $TMPDIR, else /tmp */
	struct nn_hwinfo_opts hw;
	/* called before each stage with a short phrase ("cpu, single
	 * thread"); may be NULL */
	void (*progress)(const char *what, void *arg);
	void *progress_arg;
	/* called with a sentence the user should see whatever the terminal
	 * (the disk measured without O_DIRECT); progress_arg is its arg; may
	 * be NULL */
	void (*warn)(const char *msg, void *arg);
};
#define NN_BENCH_OPTS_INIT { 0, 1, NULL, { NULL, NULL, 5000 }, NULL, NULL, NULL }

/* Detect and measure; return the capability document {"v":1, "cpu",
 * "ram", "disk", "gpus", "executors", "features", "kernel", "labels"}.
 * Consumes labels (an object of strings, or jv_null() for none).  On
 * failure returns an invalid jv with err set and *fail saying which kind. */
jv nn_bench_run(const struct nn_bench_opts *o, jv labels, enum nn_bench_fail *fail, char *err);

#endif
