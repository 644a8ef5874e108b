/*
 * log — formatting each message into one buffer and writing it with a
 * single write(2), so lines from several processes sharing a stderr do not
 * interleave.  Control characters in messages are replaced, so a peer's
 * bytes quoted in a log line cannot forge another line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "nunet";
static enum nn_level level = NN_LOG_INFO;
static int logfd = 2;
static const char *const names[] = { "error", "warn", "info", "debug" };
static void (*hook)(enum nn_level, const char *, void *);
static void *hook_arg;

void nn_log_set_hook(void (*fn)(enum nn_level lv, const char *msg, void *arg), void *arg)
{
	hook = fn;
	hook_arg = arg;
}

void nn_log_init(const char *p)
{
	const char *slash = strrchr(p, '/');
	prog = slash ? slash + 1 : p;
}

const char *nn_log_prog(void)
{
	return prog;
}

void nn_log_set_level(enum nn_level lv)
{
	level = lv;
}

enum nn_level nn_log_level(void)
{
	return level;
}

void nn_log_set_fd(int fd)
{
	logfd = fd;
}

int nn_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static void vlog(enum nn_level lv, const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof line, "%s: %s: ", prog, names[lv]);
	int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	size_t len;
	if (m < 0)
		m = 0;
	len = (size_t)n + ((size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2);
	for (size_t i = n; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[len++] = '\n';
	if (write(logfd, line, len) < 0) { /* nowhere left to report it */ }
}

void nn_log(enum nn_level lv, const char *fmt, ...)
{
	va_list ap;
	if (lv > level)
		return;
	va_start(ap, fmt);
	if (hook) {
		char msg[1024];
		vsnprintf(msg, sizeof msg, fmt, ap);
		hook(lv, msg, hook_arg);
	} else {
		vlog(lv, fmt, ap);
	}
	va_end(ap);
}

void nn_die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(NN_LOG_ERROR, fmt, ap);
	va_end(ap);
	/* leave at once: what the program still holds dies with it */
	fflush(NULL);
	_exit(code);
}
