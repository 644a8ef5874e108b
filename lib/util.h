/*
 * util — the small things every part of libcommon needs: an error buffer
 * convention, allocation that dies on exhaustion, growable byte buffers with
 * a maximum size, clocks and random ids.
 *
 * Errors: library functions return 0 or a pointer on success and -1 or NULL
 * on failure, after writing one human sentence into the caller's buffer
 * `char err[NN_ERRLEN]` (which may be NULL).  They never print, never exit.
 */
#ifndef NN_UTIL_H
#define NN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#define NN_ERRLEN 256

/* Exit codes (sysexits), documented in every man page. */
enum {
	NN_EX_OK = 0, NN_EX_NO = 1, NN_EX_USAGE = 64, NN_EX_DATAERR = 65,
	NN_EX_UNAVAILABLE = 69, NN_EX_SOFTWARE = 70, NN_EX_IOERR = 74,
	NN_EX_TEMPFAIL = 75, NN_EX_CONFIG = 78
};

/* Format into err (if not NULL) and return -1. */
int nn_seterr(char *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Allocation: these die (exit 70) when memory is exhausted. */
void *nn_xmalloc(size_t n);
void *nn_xcalloc(size_t n, size_t m);
void *nn_xrealloc(void *p, size_t n);
char *nn_xstrdup(const char *s);
char *nn_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A growable byte buffer with a hard maximum (0 = unlimited, for buffers
 * that hold only trusted data).  Always NUL-terminated after len bytes.
 */
struct nn_buf {
	char *data;
	size_t len, cap, max;
};
#define NN_BUF_INIT { NULL, 0, 0, 0 }
void nn_buf_init(struct nn_buf *b, size_t max);
void nn_buf_release(struct nn_buf *b);		/* frees data, keeps max */
void nn_buf_reset(struct nn_buf *b);		/* len = 0, keeps memory */
/* Return -1 (without changing b) when the maximum would be exceeded. */
int nn_buf_add(struct nn_buf *b, const void *p, size_t n);
int nn_buf_addc(struct nn_buf *b, char c);
int nn_buf_adds(struct nn_buf *b, const char *s);
int nn_buf_addf(struct nn_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void nn_buf_consume(struct nn_buf *b, size_t n); /* drop n bytes from the front */
/* Room for n more bytes after len, to be written in place (a read(2) into
 * the buffer, no copy) and then added with nn_buf_commit(); NULL when the
 * maximum would be exceeded. */
char *nn_buf_room(struct nn_buf *b, size_t n);
void nn_buf_commit(struct nn_buf *b, size_t n);	/* n <= the room asked for */
/* Detach the data (caller frees); the buffer is empty afterwards. */
char *nn_buf_detach(struct nn_buf *b, size_t *len);

/* Milliseconds since the epoch / on a monotonic clock. */
int64_t nn_now_ms(void);
int64_t nn_mono_ms(void);

/* A random 128-bit id as 32 lowercase hex characters; out has 33 bytes. */
void nn_random_id(char out[33]);

/* Hex encode n bytes into out (2n+1 bytes). Decode: -1 on bad input. */
void nn_hex_encode(char *out, const uint8_t *in, size_t n);
int nn_hex_decode(uint8_t *out, size_t outlen, const char *in);

/* Read a whole file (capped at max bytes); caller frees.  NULL + err. */
char *nn_read_file(const char *path, size_t max, size_t *len, char *err);
/* Write a file atomically (temp + rename) with the given mode.  _nosync
 * skips the fsync: for files that describe live processes, which a crash
 * of the machine ends anyway (a reader still never sees half a file). */
int nn_write_file(const char *path, const void *data, size_t len, int mode, char *err);
int nn_write_file_nosync(const char *path, const void *data, size_t len, int mode, char *err);
/* mkdir -p with mode for created directories. */
int nn_mkdirs(const char *path, int mode, char *err);

/* Write all of buf to fd (retrying on EINTR/short writes); -1 on error. */
int nn_write_all(int fd, const void *buf, size_t n);

/* Parse sizes ("64M", "2GiB", "1024") and durations ("30s", "5m", "250ms"). */
int nn_parse_size(const char *s, uint64_t *out);
int nn_parse_duration_ms(const char *s, int64_t *out);
/* 1 when p is a plain relative path: not absolute, no "", "." or ".."
 * component (what may name a file inside an allocation directory). */
int nn_path_plain(const char *p);

#endif
