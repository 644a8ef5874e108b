/*
 * lines — a JSON-lines reader over untrusted input with a line cap.
 *
 * Bytes go in with nn_lines_feed() or nn_lines_read_fd(); complete lines come
 * out of nn_lines_next().  A line longer than the cap is reported once, as
 * soon as it is known to be too long, and its remaining bytes are dropped up
 * to the next newline; the reader carries on with the line after it.
 */
#ifndef NN_LINES_H
#define NN_LINES_H

#include <stddef.h>
#include <jv.h>
#include "util.h"

#define NN_LINE_MAX_DEFAULT (1024 * 1024)

struct nn_lines {
	struct nn_buf buf;
	size_t off;		/* start of unread data in buf */
	size_t max;		/* line cap, newline excluded */
	size_t scanned;		/* bytes after off known to hold no newline */
	int discarding;		/* inside an oversize line */
	unsigned long lineno;	/* number of the last line returned */
};

void nn_lines_init(struct nn_lines *l, size_t max);
void nn_lines_release(struct nn_lines *l);
void nn_lines_feed(struct nn_lines *l, const char *p, size_t n);
/* Read what is available from fd (one read).  Returns bytes read, 0 on
 * end of file, -1 on error (errno; EAGAIN when a non-blocking fd is dry). */
ssize_t nn_lines_read_fd(struct nn_lines *l, int fd);
/* Read a non-blocking fd up to `rounds` times or until it is dry.  Returns
 * 1 at end of file or on a read error other than EAGAIN, else 0. */
int nn_lines_drain_fd(struct nn_lines *l, int fd, int rounds);
/* Bytes of an incomplete line held. */
size_t nn_lines_pending(const struct nn_lines *l);

enum { NN_LINES_NONE = 0, NN_LINES_LINE = 1, NN_LINES_OVERSIZE = 2 };
/* Next line (without its "\n"; *line points into the reader and is valid
 * until the next call), or NONE when no full line is buffered, or OVERSIZE
 * once for each line over the cap. */
int nn_lines_next(struct nn_lines *l, const char **line, size_t *len);

/* Next parsed JSON value.  NN_JSONL_VALUE with *out set, NN_JSONL_NONE, or
 * NN_JSONL_ERROR with err naming the line ("line 3: not JSON: …",
 * "line 4: longer than 1048576 bytes"); *code is NN_E_PARSE or
 * NN_E_OVERSIZE (see env.h). Blank lines are skipped. */
enum { NN_JSONL_NONE = 0, NN_JSONL_VALUE = 1, NN_JSONL_ERROR = 2 };
int nn_jsonl_next(struct nn_lines *l, jv *out, int *code, char *err);

/* The same, also pointing *line and *len at the text *out was parsed from
 * (valid until the next call), so it can be passed on as it came. */
int nn_jsonl_next_line(struct nn_lines *l, jv *out, const char **line, size_t *len,
		       int *code, char *err);

/* The next non-blank line, not parsed (NN_JSONL_VALUE), for a reader that
 * looks at the text first (lib/jscan.h); errors as nn_jsonl_next. */
int nn_jsonl_next_text(struct nn_lines *l, const char **line, size_t *len, int *code, char *err);
/* Parse the line nn_jsonl_next_text gave: the value, or an invalid jv with
 * *code and err as nn_jsonl_next would give them. */
jv nn_jsonl_parse(struct nn_lines *l, const char *line, size_t len, int *code, char *err);

#endif
