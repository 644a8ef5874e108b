/*
 * lines — the one way untrusted line input is read.  The buffer never holds
 * more than the cap plus one read's worth of bytes: past the cap, the
 * current line is dropped and only its end is looked for.
 */
#include "lines.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "env.h"
#include "json.h"

void nn_lines_init(struct nn_lines *l, size_t max)
{
	nn_buf_init(&l->buf, 0);
	l->off = l->scanned = 0;
	l->max = max ? max : NN_LINE_MAX_DEFAULT;
	l->discarding = 0;
	l->lineno = 0;
}

void nn_lines_release(struct nn_lines *l)
{
	nn_buf_release(&l->buf);
	l->off = l->scanned = 0;
}

size_t nn_lines_pending(const struct nn_lines *l)
{
	return l->buf.len - l->off;
}

static void compact(struct nn_lines *l)
{
	if (l->off == 0)
		return;
	nn_buf_consume(&l->buf, l->off);
	l->off = 0;
}

void nn_lines_feed(struct nn_lines *l, const char *p, size_t n)
{
	if (l->off > 0 && (l->off == l->buf.len || l->off > 65536))
		compact(l);
	nn_buf_add(&l->buf, p, n);	/* unlimited buffer; bounded by next() */
}

ssize_t nn_lines_read_fd(struct nn_lines *l, int fd)
{
	/* straight into the buffer: no copy from a chunk on the stack */
	enum { CHUNK = 65536 };
	char *room;
	ssize_t n;
	if (l->off > 0 && (l->off == l->buf.len || l->off > CHUNK))
		compact(l);
	if (!(room = nn_buf_room(&l->buf, CHUNK))) {
		errno = ENOMEM;
		return -1;
	}
	do
		n = read(fd, room, CHUNK);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		nn_buf_commit(&l->buf, (size_t)n);
	return n;
}

int nn_lines_drain_fd(struct nn_lines *l, int fd, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		ssize_t r = nn_lines_read_fd(l, fd);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return 1;
		if (r < 0)
			break;
	}
	return 0;
}

int nn_lines_next(struct nn_lines *l, const char **line, size_t *len)
{
	if (!l->buf.data)	/* nothing fed yet: no NULL + 0 below */
		return NN_LINES_NONE;
	for (;;) {
		char *start = l->buf.data + l->off;
		size_t avail = l->buf.len - l->off;
		char *nl = avail > l->scanned ? memchr(start + l->scanned, '\n', avail - l->scanned) : NULL;

		if (l->discarding) {
			if (!nl) {
				l->off = l->buf.len;	/* drop everything */
				l->scanned = 0;
				compact(l);
				return NN_LINES_NONE;
			}
			l->off += (size_t)(nl - start) + 1;
			l->scanned = 0;
			l->discarding = 0;
			continue;
		}
		if (!nl) {
			l->scanned = avail;
			if (avail > l->max) {
				l->discarding = 1;
				l->lineno++;
				l->off = l->buf.len;
				l->scanned = 0;
				compact(l);
				return NN_LINES_OVERSIZE;
			}
			return NN_LINES_NONE;
		}
		size_t n = (size_t)(nl - start);
		l->off += n + 1;
		l->scanned = 0;
		l->lineno++;
		if (n > l->max)
			return NN_LINES_OVERSIZE;
		if (n && start[n - 1] == '\r')
			n--;
		*line = start;
		*len = n;
		return NN_LINES_LINE;
	}
}

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return 1;
}

int nn_jsonl_next(struct nn_lines *l, jv *out, int *code, char *err)
{
	const char *line;
	size_t len;
	return nn_jsonl_next_line(l, out, &line, &len, code, err);
}

int nn_jsonl_next_text(struct nn_lines *l, const char **linep, size_t *lenp, int *code, char *err)
{
	const char *line;
	size_t len;

	for (;;) {
		int r = nn_lines_next(l, &line, &len);
		if (r == NN_LINES_NONE)
			return NN_JSONL_NONE;
		if (r == NN_LINES_OVERSIZE) {
			if (code)
				*code = NN_E_OVERSIZE;
			nn_seterr(err, "line %lu: longer than %zu bytes", l->lineno, l->max);
			return NN_JSONL_ERROR;
		}
		if (blank(line, len))
			continue;
		*linep = line;
		*lenp = len;
		return NN_JSONL_VALUE;
	}
}

jv nn_jsonl_parse(struct nn_lines *l, const char *line, size_t len, int *code, char *err)
{
	char perr[NN_ERRLEN];
	jv v = nn_json_parse(line, len, perr);
	if (!jv_is_valid(v)) {
		if (code)
			*code = NN_E_PARSE;
		nn_seterr(err, "line %lu: %s", l->lineno, perr);
	}
	return v;
}

int nn_jsonl_next_line(struct nn_lines *l, jv *out, const char **linep, size_t *lenp,
		       int *code, char *err)
{
	int r = nn_jsonl_next_text(l, linep, lenp, code, err);
	if (r != NN_JSONL_VALUE)
		return r;
	*out = nn_jsonl_parse(l, *linep, *lenp, code, err);
	return jv_is_valid(*out) ? NN_JSONL_VALUE : NN_JSONL_ERROR;
}
