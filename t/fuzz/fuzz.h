/*
 * fuzz.h — what every fuzz target in t/fuzz/ shares.  A target is one file,
 * t/fuzz/NAME.c, defining LLVMFuzzerTestOneInput() (and, optionally,
 * LLVMFuzzerInitialize()); t/fuzz/run builds it with libFuzzer, and
 * t/0900-fuzz-regress.bats links the same file with t/fuzz/replay.c into a
 * plain program that replays the seed corpus (t/fuzz/corpus/NAME/) and every
 * crash ever found (t/fuzz/regress/NAME/).  The helpers are static inline so
 * a target needs nothing but this header and libcommon.
 */
#ifndef NN_FUZZ_H
#define NN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An oracle failed: say which and abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* libsodium, once. */
static inline void fuzz_sodium(void)
{
	static int done;
	if (!done) {
		if (sodium_init() < 0)
			abort();
		done = 1;
	}
}

/* A private directory for this process, removed at exit. */
static char fuzz_dir_path[64];
static inline void fuzz_dir_cleanup(void)
{
	char p[128];
	snprintf(p, sizeof p, "%s/in", fuzz_dir_path);
	unlink(p);
	rmdir(fuzz_dir_path);
}
static inline const char *fuzz_dir(void)
{
	if (!fuzz_dir_path[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/nn-fuzz.XXXXXX",
			 t && *t && strlen(t) < 40 ? t : "/tmp");
		if (!mkdtemp(fuzz_dir_path))
			abort();
		atexit(fuzz_dir_cleanup);
	}
	return fuzz_dir_path;
}

/* Write data to DIR/in (replacing it) and return that path (static). */
static inline const char *fuzz_file(const uint8_t *data, size_t size)
{
	static char path[128];
	snprintf(path, sizeof path, "%s/in", fuzz_dir());
	FILE *f = fopen(path, "wb");
	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
		abort();
	return path;
}

/* A fixed identity derived from a one-byte tag (deterministic runs). */
#define FUZZ_SEED(tag) { tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, \
	tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, tag, \
	tag, tag, tag, tag, tag, tag }

/* Split data at the first "\n--\n" (a separator seeds can carry): the part
 * before goes to *a, the rest to *b (empty when there is no separator). */
static inline void fuzz_split(const uint8_t *data, size_t size,
			      const uint8_t **a, size_t *alen, const uint8_t **b, size_t *blen)
{
	for (size_t i = 0; i + 4 <= size; i++)
		if (!memcmp(data + i, "\n--\n", 4)) {
			*a = data; *alen = i;
			*b = data + i + 4; *blen = size - i - 4;
			return;
		}
	*a = data; *alen = size;
	*b = data + size; *blen = 0;
}

#endif
