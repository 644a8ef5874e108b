/*
 * util — error buffers, dying allocators, capped growable buffers, clocks,
 * random ids, hex, whole-file helpers and size/duration parsing.  Nothing
 * here knows about JSON, the network or the database.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

int nn_seterr(char *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, NN_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void oom(void)
{
	static const char msg[] = "nunet: fatal: out of memory\n";
	if (write(2, msg, sizeof msg - 1) < 0) { /* nothing more to do */ }
	_exit(NN_EX_SOFTWARE);
}

void *nn_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *nn_xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		oom();
	return p;
}

void *nn_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *nn_xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		oom();
	return p;
}

char *nn_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	va_end(ap);
	return s;
}

void nn_buf_init(struct nn_buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

void nn_buf_release(struct nn_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void nn_buf_reset(struct nn_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int grow(struct nn_buf *b, size_t n)
{
	size_t need;
	if (n > SIZE_MAX - b->len - 1)
		return -1;
	need = b->len + n;
	if (b->max && need > b->max)
		return -1;
	if (need + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < need + 1)
			cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
		b->data = nn_xrealloc(b->data, cap);
		b->cap = cap;
	}
	return 0;
}

int nn_buf_add(struct nn_buf *b, const void *p, size_t n)
{
	if (grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

char *nn_buf_room(struct nn_buf *b, size_t n)
{
	if (grow(b, n) < 0)
		return NULL;
	return b->data + b->len;
}

void nn_buf_commit(struct nn_buf *b, size_t n)
{
	b->len += n;
	b->data[b->len] = '\0';
}

int nn_buf_addc(struct nn_buf *b, char c)
{
	return nn_buf_add(b, &c, 1);
}

int nn_buf_adds(struct nn_buf *b, const char *s)
{
	return nn_buf_add(b, s, strlen(s));
}

int nn_buf_addf(struct nn_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof small)
		return nn_buf_add(b, small, n);
	if (grow(b, n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
	return 0;
}

void nn_buf_consume(struct nn_buf *b, size_t n)
{
	if (n >= b->len) {
		nn_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

char *nn_buf_detach(struct nn_buf *b, size_t *len)
{
	char *p = b->data ? b->data : nn_xstrdup("");
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int64_t nn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t nn_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void nn_hex_encode(char *out, const uint8_t *in, size_t n)
{
	sodium_bin2hex(out, 2 * n + 1, in, n);
}

int nn_hex_decode(uint8_t *out, size_t outlen, const char *in)
{
	size_t got, n = strlen(in);
	const char *end;
	if (n != 2 * outlen)
		return -1;
	if (sodium_hex2bin(out, outlen, in, n, NULL, &got, &end) < 0 || got != outlen || *end)
		return -1;
	return 0;
}

void nn_random_id(char out[33])
{
	uint8_t r[16];
	randombytes_buf(r, sizeof r);
	nn_hex_encode(out, r, sizeof r);
}

char *nn_read_file(const char *path, size_t max, size_t *len, char *err)
{
	struct nn_buf b;
	char chunk[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		nn_seterr(err, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	nn_buf_init(&b, max);
	for (;;) {
		n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			nn_seterr(err, "cannot read '%s': %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (nn_buf_add(&b, chunk, n) < 0) {
			nn_seterr(err, "'%s' is larger than %zu bytes", path, max);
			goto fail;
		}
	}
	close(fd);
	return nn_buf_detach(&b, len);
fail:
	close(fd);
	nn_buf_release(&b);
	return NULL;
}

int nn_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= w;
	}
	return 0;
}

static int write_file(const char *path, const void *data, size_t len, int mode, int sync,
		      char *err)
{
	char *tmp = nn_xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		nn_seterr(err, "cannot create '%s': %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	if (fchmod(fd, mode) < 0 || nn_write_all(fd, data, len) < 0 || (sync && fsync(fd) < 0)) {
		nn_seterr(err, "cannot write '%s': %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		nn_seterr(err, "cannot write '%s': %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		nn_seterr(err, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
		goto fail;
	}
	free(tmp);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

int nn_write_file(const char *path, const void *data, size_t len, int mode, char *err)
{
	return write_file(path, data, len, mode, 1, err);
}

int nn_write_file_nosync(const char *path, const void *data, size_t len, int mode, char *err)
{
	return write_file(path, data, len, mode, 0, err);
}

int nn_mkdirs(const char *path, int mode, char *err)
{
	char *p = nn_xstrdup(path);
	for (char *s = p + 1; ; s++) {
		char c = *s;
		if (c == '/' || c == '\0') {
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				nn_seterr(err, "cannot create directory '%s': %s", p, strerror(errno));
				free(p);
				return -1;
			}
			*s = c;
		}
		if (c == '\0')
			break;
	}
	free(p);
	return 0;
}

int nn_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (!strcasecmp(end, "") || !strcasecmp(end, "b"))
		mul = 1;
	else if (!strcasecmp(end, "k") || !strcasecmp(end, "kib") || !strcasecmp(end, "kb"))
		mul = 1ULL << 10;
	else if (!strcasecmp(end, "m") || !strcasecmp(end, "mib") || !strcasecmp(end, "mb"))
		mul = 1ULL << 20;
	else if (!strcasecmp(end, "g") || !strcasecmp(end, "gib") || !strcasecmp(end, "gb"))
		mul = 1ULL << 30;
	else if (!strcasecmp(end, "t") || !strcasecmp(end, "tib") || !strcasecmp(end, "tb"))
		mul = 1ULL << 40;
	else
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

int nn_parse_duration_ms(const char *s, int64_t *out)
{
	char *end;
	double v;
	double mul;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	if (!*end || !strcmp(end, "s"))
		mul = 1000;
	else if (!strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60000;
	else if (!strcmp(end, "h"))
		mul = 3600000;
	else
		return -1;
	if (v * mul > 9e15)
		return -1;
	*out = (int64_t)(v * mul + 0.5);
	return 0;
}

int nn_path_plain(const char *p)
{
	if (!*p || *p == '/')
		return 0;
	while (*p) {
		size_t len = strcspn(p, "/");
		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && !strncmp(p, "..", 2)))
			return 0;
		p += len;
		if (*p == '/')
			p++;
	}
	return 1;
}
