/*
 * replay — the main() a fuzz target gets when it is built without libFuzzer:
 * runs LLVMFuzzerTestOneInput once on each FILE (a directory: on each file
 * in it, sorted), so the seed corpora and every crash ever found are checked
 * by the normal test suite, under the sanitizers or valgrind when the build
 * has them.  Prints "NAME: N inputs" and exits 0; a crash aborts as it did
 * under the fuzzer; a missing file is exit 66.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fuzz.h"

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: cannot open '%s': %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, len = 0, n;
	uint8_t *buf = malloc(cap);
	while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	if (!buf)
		abort();
	/* an exact-size copy, so a read past the end is caught */
	uint8_t *in = malloc(len ? len : 1);
	memcpy(in, buf, len);
	free(buf);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(in, len);
	free(in);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	int count = 0;
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: cannot open '%s': %s\n", argv[i], strerror(errno));
			return 66;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 66;
			count++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		if (!d)
			return 66;
		char **names = NULL;
		size_t n = 0;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			names = realloc(names, (n + 1) * sizeof *names);
			if (asprintf(&names[n++], "%s/%s", argv[i], e->d_name) < 0)
				abort();
		}
		closedir(d);
		if (n)
			qsort(names, n, sizeof *names, cmp);
		for (size_t j = 0; j < n; j++) {
			if (run_file(names[j]) < 0)
				return 66;
			count++;
			free(names[j]);
		}
		free(names);
	}
	const char *slash = strrchr(argv[0], '/');
	printf("%s: %d inputs\n", slash ? slash + 1 : argv[0], count);
	return 0;
}
