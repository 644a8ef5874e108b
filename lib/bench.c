/*
 * bench — the measurements behind a capability document: a fixed CPU
 * kernel run on one thread and on every allowed CPU (pthreads), memcpy()
 * bandwidth over buffers far larger than caches, and sequential disk write
 * and read through a temporary file that bypasses (or is evicted from) the
 * page cache.  Every CPU and memory figure is the upper quartile of
 * short trials, every disk figure the median of its rounds; the memory
 * copies and disk rounds are taken between the CPU trials, so that
 * all of them are spread over the run's seconds.  nn_bench_run() puts the
 * figures together with hwinfo's detection.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ULL * 1024)
/* Bytes per disk read or write call: the kernel splits one into requests
 * of the device's largest size (often 4 MiB here and there) and has them
 * all in flight, so the device stays busy while the process waits to be
 * scheduled after a call (on a busy machine that wait made 8 MiB calls
 * read 20% slower, and vary more); like fio's iodepth. */
#define DISK_BLOCK (64 * 1024 * 1024)
#define DISK_ALIGN (1024 * 1024)	/* disk file sizes are multiples of it */
#define HUGE (2 * 1024 * 1024)
#define PROBE (32 * MIB)		/* the timed part of the disk's first pass */
#define MIN_PASS (4 * MIB)
/* A full run's timed disk rounds are spread over the CPU tests, between
 * their trials: as many as fit in DISK_ROUNDS_NS by the warm-up round's
 * time, from DISK_ROUNDS_MIN to DISK_ROUNDS_MAX (a quick run: 3). */
#define DISK_ROUNDS_NS 7000000000LL
#define DISK_ROUNDS_MIN 6
#define DISK_ROUNDS_MAX NN_BENCH_DISK_ROUNDS_MAX
/* A full run's file holds DISK_REGIONS regions of a pass's size, its
 * rounds taking them in turn (nn_bench_disk_start says why). */
#define DISK_REGIONS NN_BENCH_DISK_REGIONS

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time this thread has had, in nanoseconds. */
static int64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The upper quartile of n values (sorts v): the value at rank
 * round(3(n-1)/4), the 4th of 5, the 9th of 11, the 17th of 22.  Other
 * work on the machine only ever slows a trial down, so a high quantile
 * estimates the machine's own speed with less noise than the median, and
 * one lucky trial cannot set it the way the maximum would. */
static uint64_t upper_quartile(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	return v[(3 * (n - 1) + 2) / 4];
}

/* The median of n values (sorts v); of an even count, the mean of the
 * two middle ones.  For the disk: its rounds on a virtual disk run at
 * two speeds whose shares move with the host (nn_bench_disk_end). */
static uint64_t median(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	return n % 2 ? v[n / 2] : v[n / 2 - 1] + (v[n / 2] - v[n / 2 - 1]) / 2;
}

/* ---- CPU ---- */

uint64_t nn_bench_cpu_unit(uint64_t *state, double *acc)
{
	uint64_t x = state[0];
	uint32_t *table = (uint32_t *)(state + 8);
	double a = *acc;

	/* Each step mixes the last step's result (x = mix(x + golden)), so
	 * the steps form one chain of dependent integer operations: the core
	 * runs it as fast as its clock and its latencies allow, with issue
	 * slots to spare.  A kernel of independent steps would instead fill
	 * the core, and lose a quarter of its speed whenever another tenant
	 * runs on the same physical core (SMT), which a guest cannot see. */
	for (int i = 0; i < NN_BENCH_UNIT_STEPS; i++) {
		x += 0x9e3779b97f4a7c15ULL;
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
		x ^= x >> 31;
		table[x & 1023] += (uint32_t)(x >> 32);
		a = a * 0.9999999 + (double)(x & 0xffff) * 1e-6;
	}
	state[0] = x;
	*acc = a;
	return x ^ table[x & 1023];
}

/* Threads start together: each waits until the main thread says go (or
 * stop, when not every thread could be started). */
struct cpu_start {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int go, stop;
};

struct cpu_thread {
	struct cpu_start *start;
	nn_bench_unit_fn *unit;
	int64_t trial_ns;
	uint64_t rate;		/* out: iterations per second */
	uint64_t sink;
};

static void *cpu_thread_main(void *arg)
{
	struct cpu_thread *t = arg;
	uint64_t *state;
	double acc = 0;
	uint64_t units = 0, sink = 0;
	int64_t t0, c0, el, cel;

	if (t->start) {
		int stop;
		pthread_mutex_lock(&t->start->mu);
		while (!t->start->go)
			pthread_cond_wait(&t->start->cond, &t->start->mu);
		stop = t->start->stop;
		pthread_mutex_unlock(&t->start->mu);
		if (stop)
			return NULL;
	}
	state = nn_xcalloc(NN_BENCH_STATE_WORDS, sizeof *state);
	/* Run for trial_ns of wall time and at least a quarter of it on a CPU
	 * (at most 2 x trial_ns in all); the rate is per second of CPU time
	 * this thread got, so time the scheduler gave to other processes
	 * does not count against the machine. */
	t0 = now_ns();
	c0 = thread_cpu_ns();
	do {
		for (int k = 0; k < 4; k++)
			sink ^= t->unit(state, &acc);
		units += 4;
		el = now_ns() - t0;
		cel = thread_cpu_ns() - c0;
	} while ((el < t->trial_ns || cel < t->trial_ns / 4) && el < 2 * t->trial_ns);
	t->rate = (uint64_t)((double)units * 1e9 / (double)(cel > 0 ? cel : 1) + 0.5);
	t->sink = sink ^ (uint64_t)acc;
	free(state);
	return NULL;
}

unsigned nn_bench_ncpus(void)
{
	cpu_set_t set;
	long n;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* One trial: nthreads threads released together; sum of their rates. */
static int cpu_trial(nn_bench_unit_fn *unit, unsigned nthreads, int64_t trial_ns, uint64_t *rate,
		     char *err)
{
	struct cpu_thread *t = nn_xcalloc(nthreads, sizeof *t);
	pthread_t *tid = nn_xcalloc(nthreads, sizeof *tid);
	struct cpu_start st = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	unsigned started = 0;
	int rc = 0, e;

	for (unsigned i = 0; i < nthreads; i++)
		t[i].unit = unit;
	if (nthreads == 1) {
		t[0].trial_ns = trial_ns;
		cpu_thread_main(&t[0]);
		*rate = t[0].rate;
		goto done;
	}
	for (; started < nthreads; started++) {
		t[started].start = &st;
		t[started].trial_ns = trial_ns;
		if ((e = pthread_create(&tid[started], NULL, cpu_thread_main, &t[started]))) {
			rc = nn_seterr(err, "cannot start a benchmark thread: %s", strerror(e));
			break;
		}
	}
	pthread_mutex_lock(&st.mu);
	st.go = 1;
	st.stop = rc < 0;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.mu);
	*rate = 0;
	for (unsigned i = 0; i < started; i++) {
		pthread_join(tid[i], NULL);
		*rate += t[i].rate;
	}
done:
	free(t);
	free(tid);
	return rc;
}

/* The trials, with between(arg, err) called after each (the memory copies
 * and disk rounds that nn_bench_run spreads over the CPU tests); a
 * between that fails ends the measurement with its -1 + err. */
static int cpu_measure(nn_bench_unit_fn *unit, unsigned nthreads, int trials, int64_t trial_ms,
		       int (*between)(void *, char *), void *arg, uint64_t *score, char *err)
{
	uint64_t *v, warm;
	if (nthreads < 1)
		nthreads = 1;
	if (trials < 1)
		trials = 1;
	if (cpu_trial(unit, nthreads, trial_ms * 1000000 / 3, &warm, err) < 0)
		return -1;
	v = nn_xcalloc((size_t)trials, sizeof *v);
	for (int i = 0; i < trials; i++) {
		if (cpu_trial(unit, nthreads, trial_ms * 1000000, &v[i], err) < 0) {
			free(v);
			return -1;
		}
		if (between && between(arg, err) < 0) {
			free(v);
			return -1;
		}
	}
	*score = upper_quartile(v, trials);
	free(v);
	return 0;
}

int nn_bench_cpu_kernel(nn_bench_unit_fn *unit, unsigned nthreads, int trials, int64_t trial_ms,
			uint64_t *score, char *err)
{
	return cpu_measure(unit, nthreads, trials, trial_ms, NULL, NULL, score, err);
}

/* ---- memory ---- */

int nn_bench_mem_start(struct nn_bench_mem_run *m, size_t bytes, int trials, char *err)
{
	memset(m, 0, sizeof *m);
	if (bytes < 4096)
		bytes = 4096;
	if (trials < 1)
		trials = 1;
	bytes = (bytes + HUGE - 1) / HUGE * HUGE;
	/* huge pages where the kernel has them, so TLB misses do not depend
	 * on how the pages happened to be laid out this time */
	if (posix_memalign((void **)&m->src, HUGE, bytes)) {
		m->src = NULL;
		return nn_seterr(err, "cannot allocate 2 x %zu bytes for the memory test", bytes);
	}
	if (posix_memalign((void **)&m->dst, HUGE, bytes)) {
		free(m->src);
		m->src = NULL;
		return nn_seterr(err, "cannot allocate 2 x %zu bytes for the memory test", bytes);
	}
	m->bytes = bytes;
	m->cap = trials;
	madvise(m->src, bytes, MADV_HUGEPAGE);
	madvise(m->dst, bytes, MADV_HUGEPAGE);
	/* touch every page so page faults stay out of the timing */
	memset(m->src, 0x5a, bytes);
	memset(m->dst, 0, bytes);
	for (size_t i = 0; i < bytes; i += 4096)
		m->src[i] = (unsigned char)(i >> 12);
	memcpy(m->dst, m->src, bytes);	/* warm-up */
	m->v = nn_xcalloc((size_t)trials, sizeof *m->v);
	return 0;
}

void nn_bench_mem_copy(struct nn_bench_mem_run *m)
{
	int i = m->n;
	unsigned char *from = i % 2 ? m->dst : m->src, *to = i % 2 ? m->src : m->dst;
	int64_t t0, el;

	if (!m->v || m->n >= m->cap)
		return;
	/* CPU time, not wall time: a copy preempted by another process is
	 * not a slower memory */
	t0 = thread_cpu_ns();
	memcpy(to, from, m->bytes);
	el = thread_cpu_ns() - t0;
	m->sink += to[(size_t)i * 4096 % m->bytes];
	m->v[m->n++] = (uint64_t)((double)m->bytes * 1e9 / (double)(el > 0 ? el : 1));
}

uint64_t nn_bench_mem_end(struct nn_bench_mem_run *m)
{
	uint64_t bps = 0;
	if (m->v && m->n > 0)
		bps = upper_quartile(m->v, m->n);
	/* sink is never tested for meaning, only to keep the copies */
	if (m->sink == (uint64_t)-1)
		bps += 1;
	free(m->v);
	free(m->src);
	free(m->dst);
	memset(m, 0, sizeof *m);
	return bps;
}

/* What runs between two CPU trials: a memory copy, and a disk round when
 * one falls due, rounds spaced evenly over the slots.  On a shared host
 * what a guest gets of the memory and the disk drifts with its
 * neighbors, for a second or tens of seconds; measurements spread over
 * the CPU tests' seconds sample that drift, where measurements taken
 * together would all land in one moment of it. */
struct between {
	struct nn_bench_mem_run *mem;
	struct nn_bench_disk_run *disk;
	int slot, slots, rounds;
	int disk_failed;
};

int nn_bench_round_due(int slot, int slots, int rounds)
{
	return (int64_t)(slot + 1) * rounds / slots > (int64_t)slot * rounds / slots;
}

static int between_trials(void *arg, char *err)
{
	struct between *b = arg;
	int i = b->slot++;

	nn_bench_mem_copy(b->mem);
	if (nn_bench_round_due(i, b->slots, b->rounds) && nn_bench_disk_rounds(b->disk, 1, err) < 0) {
		b->disk_failed = 1;
		return -1;
	}
	return 0;
}

/* ---- disk ---- */

/* Write [from, to) in pieces of at most DISK_BLOCK and of to - from (the
 * last may be shorter; every size is a multiple of DISK_ALIGN), then
 * fdatasync. */
static int write_range(int fd, const unsigned char *buf, uint64_t from, uint64_t to,
		       char *err, const char *dir)
{
	for (uint64_t off = from; off < to; off += DISK_BLOCK) {
		size_t len = to - off < DISK_BLOCK ? (size_t)(to - off) : DISK_BLOCK, done = 0;
		while (done < len) {
			ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return nn_seterr(err, "cannot write in '%s': %s", dir,
						 n < 0 ? strerror(errno) : "short write");
			done += (size_t)n;
		}
	}
	if (fdatasync(fd) < 0)
		return nn_seterr(err, "cannot write in '%s': %s", dir, strerror(errno));
	return 0;
}

/* Read bytes from offset at, in pieces as write_range's. */
static int read_range(int fd, unsigned char *buf, uint64_t at, uint64_t bytes, char *err, const char *dir)
{
	for (uint64_t off = 0; off < bytes; off += DISK_BLOCK) {
		size_t len = bytes - off < DISK_BLOCK ? (size_t)(bytes - off) : DISK_BLOCK, done = 0;
		while (done < len) {
			ssize_t n = pread(fd, buf + done, len - done, (off_t)(at + off + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return nn_seterr(err, "cannot read in '%s': %s", dir,
						 n < 0 ? strerror(errno) : "short read");
			done += (size_t)n;
		}
	}
	return 0;
}

/* One round: rewrite bytes of the file from offset at (timed with its
 * fdatasync), then read them back (from the device: O_DIRECT, or the
 * cache dropped first); rates in bytes per wall-clock second. */
static int disk_round(int fd, int direct, unsigned char *buf, uint64_t at, uint64_t bytes,
		      uint64_t *w, uint64_t *r, char *err, const char *dir)
{
	int64_t t0 = now_ns(), el;
	if (write_range(fd, buf, at, at + bytes, err, dir) < 0)
		return -1;
	el = now_ns() - t0;
	*w = (uint64_t)((double)bytes * 1e9 / (double)(el > 0 ? el : 1));
	if (!direct)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	t0 = now_ns();
	if (read_range(fd, buf, at, bytes, err, dir) < 0)
		return -1;
	el = now_ns() - t0;
	*r = (uint64_t)((double)bytes * 1e9 / (double)(el > 0 ? el : 1));
	return 0;
}

int nn_bench_disk_start(struct nn_bench_disk_run *d, const char *dir, uint64_t bytes,
			int64_t pass_ms, int regions, char *err)
{
	struct statvfs sv;
	char *path;
	int fd, dfd;
	size_t bsize;
	uint64_t avail, w, r;

	memset(d, 0, sizeof *d);
	d->fd = -1;
	d->dir = dir;
	if (statvfs(dir, &sv) < 0)
		return nn_seterr(err, "cannot write in '%s': %s", dir, strerror(errno));
	d->size = (uint64_t)sv.f_blocks * sv.f_frsize;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	d->regions = regions > 1 ? regions : 1;
	if (bytes > avail / 2 / (uint64_t)d->regions)
		bytes = avail / 2 / (uint64_t)d->regions;
	bytes -= bytes % DISK_ALIGN;
	if (bytes < DISK_ALIGN)
		return nn_seterr(err, "cannot write in '%s': not enough free space", dir);
	path = nn_xasprintf("%s/.nunet-bench.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		nn_seterr(err, "cannot write in '%s': %s", dir, strerror(errno));
		free(path);
		return -1;
	}
	dfd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	unlink(path);
	free(path);
	d->fd = fd;
	/* One call's worth (bytes only ever shrinks from here), in huge
	 * pages where the kernel has them: the kernel hands the device one
	 * segment per physically contiguous piece of the buffer, and a
	 * buffer of 4 KiB pages is contiguous in runs whose length depends
	 * on how memory happened to be free; on a virtual disk whose host
	 * copies each segment apart that made whole runs write 1.7 or 3.5
	 * GB/s (and read 0.8 or 1.6) depending on where the buffer landed,
	 * against 4.3 to 5.4 GB/s in huge pages.  Its pages are touched
	 * below, before any timing. */
	bsize = bytes < DISK_BLOCK ? (size_t)bytes : DISK_BLOCK;
	if (posix_memalign((void **)&d->buf, HUGE, (bsize + HUGE - 1) / HUGE * HUGE)) {
		d->buf = NULL;
		if (dfd >= 0)
			close(dfd);
		nn_bench_disk_end(d, NULL);
		return nn_seterr(err, "cannot allocate the disk test buffer");
	}
	madvise(d->buf, (bsize + HUGE - 1) / HUGE * HUGE, MADV_HUGEPAGE);
	/* incompressible content, so a compressing filesystem cannot cheat */
	{
		uint64_t x = 88172645463325252ULL;
		for (size_t i = 0; i < bsize; i += sizeof x) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(d->buf + i, &x, sizeof x);
		}
	}
	if (dfd >= 0) {
		/* some filesystems accept O_DIRECT at open and refuse the I/O */
		ssize_t n = pwrite(dfd, d->buf, DISK_ALIGN, 0);
		if (n == DISK_ALIGN) {
			close(fd);
			d->fd = dfd;
			d->direct = 1;
		} else {
			close(dfd);
		}
	}
	/* A first pass allocates the blocks; the timed passes then rewrite
	 * them in place, so block allocation (and, on file systems mounted
	 * with discard, the discards that truncation would cause) stays out
	 * of the figures.  Its first PROBE bytes are timed to size the passes
	 * so that one takes about pass_ms on a slow disk.  The file holds
	 * regions such passes, which the rounds take in turn: where a file
	 * lands on a virtual disk sets its speed (the host's own layout of
	 * the image), by 20% between two regions of one file on the machine
	 * this was built on, from run to run as each run's file landed
	 * elsewhere; over four regions, the median round does not fall in
	 * a slow one. */
	{
		uint64_t probe = bytes < PROBE ? bytes : PROBE, want;
		int64_t t0 = now_ns(), el;
		if (write_range(d->fd, d->buf, 0, probe, err, dir) < 0)
			goto fail;
		el = now_ns() - t0;
		want = (uint64_t)((double)probe * (double)pass_ms * 1e6 / (double)(el > 0 ? el : 1));
		want -= want % DISK_ALIGN;
		if (want < MIN_PASS)
			want = MIN_PASS;
		if (want < bytes)
			bytes = want;
		if (bytes > probe && write_range(d->fd, d->buf, probe, bytes, err, dir) < 0)
			goto fail;
		for (int k = 1; k < d->regions; k++)
			if (write_range(d->fd, d->buf, k * bytes, (k + 1) * bytes, err, dir) < 0)
				goto fail;
	}
	d->bytes = d->stride = bytes;
	/* a warm-up round in each region, not counted: the first rewrite of
	 * fresh blocks and the first read after them are the odd ones out */
	{
		int64_t t0 = now_ns();
		for (int k = 0; k < d->regions; k++)
			if (disk_round(d->fd, d->direct, d->buf, k * bytes, bytes, &w, &r, err, dir) < 0)
				goto fail;
		d->round_ns = (now_ns() - t0) / d->regions;
	}
	/* the probe timed writes only: a disk that reads far slower than it
	 * writes gets rounds of 3 x pass_ms too (a prefix of the file) */
	{
		double el = (double)bytes / (double)(w ? w : 1) + (double)bytes / (double)(r ? r : 1);
		if (el > 3e-3 * (double)pass_ms) {
			uint64_t want = (uint64_t)((double)bytes * 3e-3 * (double)pass_ms / el);
			want -= want % DISK_ALIGN;
			d->bytes = want > MIN_PASS ? want : (bytes < MIN_PASS ? bytes : MIN_PASS);
			d->round_ns = (int64_t)((double)d->round_ns * (double)d->bytes / (double)bytes);
		}
	}
	return 0;
fail:
	nn_bench_disk_end(d, NULL);
	return -1;
}

int nn_bench_disk_rounds(struct nn_bench_disk_run *d, int n, char *err)
{
	if (d->n + n > d->cap) {
		d->cap = d->n + n;
		d->wv = nn_xrealloc(d->wv, (size_t)d->cap * sizeof *d->wv);
		d->rv = nn_xrealloc(d->rv, (size_t)d->cap * sizeof *d->rv);
	}
	for (int i = 0; i < n; i++, d->n++)
		if (disk_round(d->fd, d->direct, d->buf, (uint64_t)(d->n % d->regions) * d->stride, d->bytes,
			       &d->wv[d->n], &d->rv[d->n], err, d->dir) < 0)
			return -1;
	return 0;
}

void nn_bench_disk_end(struct nn_bench_disk_run *d, struct nn_bench_disk *out)
{
	if (out) {
		memset(out, 0, sizeof *out);
		out->size = d->size;
		out->direct = d->direct;
		out->bytes = d->bytes;
		if (d->n > 0) {
			out->write = median(d->wv, d->n);
			out->read = median(d->rv, d->n);
		}
	}
	if (d->fd >= 0) {
		if (ftruncate(d->fd, 0) < 0) { /* unlinked already: freed on close */ }
		close(d->fd);
	}
	free(d->buf);
	free(d->wv);
	free(d->rv);
	memset(d, 0, sizeof *d);
	d->fd = -1;
}

/* ---- the document ---- */

static void progress(const struct nn_bench_opts *o, const char *what)
{
	if (o->progress)
		o->progress(what, o->progress_arg);
}

static jv num(uint64_t v)
{
	return jv_number((double)v);
}

jv nn_bench_run(const struct nn_bench_opts *o, jv labels, enum nn_bench_fail *fail, char *err)
{
	const char *dir = o->dir;
	uint64_t ram = 0, single = 0, multi = 0, bw = 0;
	struct nn_bench_disk disk;
	struct nn_bench_disk_run dr = { .fd = -1 };
	struct nn_bench_mem_run mem = { 0 };
	int trials = o->quick ? 5 : NN_BENCH_TRIALS;
	struct between btw = { &mem, &dr, 0, 2 * trials, 0, 0 };	/* rounds: below */
	int64_t trial_ms = o->quick ? 50 : NN_BENCH_TRIAL_MS;
	jv cpu = jv_invalid(), doc = jv_invalid(), features, score;
	char *kernel = NULL;

	*fail = NN_BENCH_FAIL_NONE;
	memset(&disk, 0, sizeof disk);
	if (jv_get_kind(labels) == JV_KIND_NULL) {
		jv_free(labels);
		labels = jv_object();
	}
	if (!dir || !*dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";

	progress(o, "detecting hardware");
	cpu = nn_hwinfo_cpu(o->hw.sysroot, err);
	if (!jv_is_valid(cpu) || nn_hwinfo_ram_size(o->hw.sysroot, &ram, err) < 0) {
		*fail = NN_BENCH_FAIL_IO;
		goto fail;
	}
	if (o->measure) {
		progress(o, "disk, writing the test file");
		if (nn_bench_disk_start(&dr, dir, o->quick ? 16 * MIB : NN_BENCH_DISK_BYTES,
					o->quick ? 100 : NN_BENCH_DISK_PASS_MS,
					o->quick ? 1 : DISK_REGIONS, err) < 0) {
			*fail = NN_BENCH_FAIL_IO;
			goto fail;
		}
		if (o->quick) {
			/* too short a run to spread them: back to back, so
			 * that idle gaps cannot refill a throttle's burst
			 * budget between such small rounds */
			if (nn_bench_disk_rounds(&dr, 3, err) < 0) {
				*fail = NN_BENCH_FAIL_IO;
				goto fail;
			}
			btw.rounds = 0;
		} else {
			int64_t f = DISK_ROUNDS_NS / (dr.round_ns > 0 ? dr.round_ns : 1);
			btw.rounds = f < DISK_ROUNDS_MIN ? DISK_ROUNDS_MIN
				   : f > DISK_ROUNDS_MAX ? DISK_ROUNDS_MAX : (int)f;
		}
		if (!dr.direct && o->warn) {
			char *msg = nn_xasprintf("'%s' does not take O_DIRECT: the disk was measured "
						 "through the page cache (fdatasync before the write "
						 "is timed done, the cache dropped before each read)", dir);
			o->warn(msg, o->progress_arg);
			free(msg);
		}
		size_t mb = o->quick ? 32 * MIB : NN_BENCH_MEM_BYTES;
		if (mb > ram / 8)
			mb = (size_t)(ram / 8);
		if (nn_bench_mem_start(&mem, mb, 2 * trials, err) < 0) {
			*fail = NN_BENCH_FAIL_INTERNAL;
			goto fail;
		}
		progress(o, btw.rounds ? "cpu, single thread; memory and disk between its trials"
				       : "cpu, single thread; memory between its trials");
		if (cpu_measure(nn_bench_cpu_unit, 1, trials, trial_ms, between_trials, &btw, &single,
				err) < 0) {
			*fail = btw.disk_failed ? NN_BENCH_FAIL_IO : NN_BENCH_FAIL_INTERNAL;
			goto fail;
		}
		progress(o, btw.rounds ? "cpu, all threads; memory and disk between its trials"
				       : "cpu, all threads; memory between its trials");
		/* Under a cgroup CPU quota, only as many threads as it allows
		 * CPUs (rounded up), and the sum scaled down to the quota: the
		 * rates are per CPU-second, which a quota does not slow. */
		unsigned n = nn_bench_ncpus();
		int64_t quota = nn_hwinfo_cpu_quota(NULL);
		if (quota > 0 && (uint64_t)quota < (uint64_t)n * 1000)
			n = (unsigned)((quota + 999) / 1000);
		if (cpu_measure(nn_bench_cpu_unit, n, trials, trial_ms, between_trials, &btw, &multi,
				err) < 0) {
			*fail = btw.disk_failed ? NN_BENCH_FAIL_IO : NN_BENCH_FAIL_INTERNAL;
			goto fail;
		}
		bw = nn_bench_mem_end(&mem);
		if (quota > 0 && (uint64_t)quota < (uint64_t)n * 1000)
			multi = (uint64_t)((double)multi * (double)quota / (n * 1000.0) + 0.5);
		nn_bench_disk_end(&dr, &disk);
	} else {
		struct statvfs sv;
		if (statvfs(dir, &sv) < 0) {
			nn_seterr(err, "cannot use '%s': %s", dir, strerror(errno));
			*fail = NN_BENCH_FAIL_IO;
			goto fail;
		}
		disk.size = (uint64_t)sv.f_blocks * sv.f_frsize;
	}
	progress(o, "detecting gpus, executors and features");
	single = (single + NN_BENCH_SCORE_SCALE / 2) / NN_BENCH_SCORE_SCALE;
	multi = (multi + NN_BENCH_SCORE_SCALE / 2) / NN_BENCH_SCORE_SCALE;
	score = jv_object();
	score = jv_object_set(score, jv_string("single"), num(single));
	score = jv_object_set(score, jv_string("multi"), num(multi));
	cpu = jv_object_set(cpu, jv_string("score"), score);
	doc = jv_object();
	doc = jv_object_set(doc, jv_string("v"), jv_number(1));
	doc = jv_object_set(doc, jv_string("cpu"), cpu);
	cpu = jv_invalid();
	doc = jv_object_set(doc, jv_string("ram"),
			    jv_object_set(jv_object_set(jv_object(), jv_string("size"), num(ram)),
					  jv_string("bandwidth"), num(bw)));
	doc = jv_object_set(doc, jv_string("disk"),
			    jv_object_set(jv_object_set(jv_object_set(jv_object(),
								      jv_string("size"), num(disk.size)),
							jv_string("read"), num(disk.read)),
					  jv_string("write"), num(disk.write)));
	doc = jv_object_set(doc, jv_string("gpus"), nn_hwinfo_gpus(&o->hw));
	features = nn_hwinfo_features(&o->hw);
	doc = jv_object_set(doc, jv_string("executors"),
			    nn_hwinfo_executors(&o->hw, features));
	doc = jv_object_set(doc, jv_string("features"), features);
	kernel = nn_hwinfo_kernel(o->hw.sysroot);
	doc = jv_object_set(doc, jv_string("kernel"), jv_string(kernel));
	free(kernel);
	doc = jv_object_set(doc, jv_string("labels"), labels);
	return doc;
fail:
	nn_bench_disk_end(&dr, NULL);
	nn_bench_mem_end(&mem);
	jv_free(cpu);
	jv_free(labels);
	return jv_invalid();
}
