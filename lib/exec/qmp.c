/*
 * qmp — the QEMU Machine Protocol client: a unix stream socket (file or
 * abstract), JSON lines in through nn_lines with a cap, one command in
 * flight, answers matched by id and events skipped.  See qmp.h.
 */
#include "exec/qmp.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void nn_qmp_close(struct nn_qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	nn_lines_release(&q->in);
}

int nn_qmp_dial(const char *path, char *err)
{
	struct sockaddr_un sa;
	socklen_t len;
	size_t n = strlen(path);
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (n >= sizeof sa.sun_path)
		return nn_seterr(err, "qmp: socket path '%s' is too long", path);
	if (path[0] == '@') {
		memcpy(sa.sun_path + 1, path + 1, n - 1);	/* sun_path[0] stays 0 */
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		memcpy(sa.sun_path, path, n);
		len = (socklen_t)sizeof sa;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nn_seterr(err, "qmp: socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return nn_seterr(err, "qmp: cannot connect to '%s': %s", path, strerror(e));
	}
	return fd;
}

/* The next complete JSON object from QEMU, waiting until deadline (a
 * monotonic ms time).  Returns 1 with *out, or -1 + err. */
static int next_object(struct nn_qmp *q, int64_t deadline, jv *out, char *err)
{
	for (;;) {
		const char *line;
		size_t len;
		int r = nn_lines_next(&q->in, &line, &len);
		if (r == NN_LINES_OVERSIZE)
			return nn_seterr(err, "qmp: a line longer than %d bytes", NN_QMP_LINE_MAX);
		if (r == NN_LINES_LINE) {
			jv v;
			while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
				len--;
			if (!len)
				continue;
			v = nn_json_parse(line, len, err);
			if (jv_get_kind(v) != JV_KIND_OBJECT) {
				jv_free(v);
				return nn_seterr(err, "qmp: QEMU sent something that is not a JSON object");
			}
			*out = v;
			return 1;
		}
		{
			int64_t left = deadline - nn_mono_ms();
			struct pollfd p = { q->fd, POLLIN, 0 };
			ssize_t n;
			if (left <= 0)
				return nn_seterr(err, "qmp: QEMU did not answer in time");
			r = poll(&p, 1, (int)left);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return nn_seterr(err, "qmp: poll: %s", strerror(errno));
			if (r == 0)
				continue;
			n = nn_lines_read_fd(&q->in, q->fd);
			if (n == 0)
				return nn_seterr(err, "qmp: QEMU closed the connection");
			if (n < 0 && errno != EAGAIN)
				return nn_seterr(err, "qmp: read: %s", strerror(errno));
		}
	}
}

int nn_qmp_connect(struct nn_qmp *q, const char *path, int timeout_ms, char *err)
{
	int64_t deadline = nn_mono_ms() + timeout_ms;
	jv greeting;

	q->fd = -1;
	q->next_id = 1;
	nn_lines_init(&q->in, NN_QMP_LINE_MAX);
	for (;;) {
		q->fd = nn_qmp_dial(path, err);
		if (q->fd >= 0)
			break;
		if ((errno != ENOENT && errno != ECONNREFUSED) || nn_mono_ms() >= deadline) {
			nn_qmp_close(q);
			return -1;
		}
		poll(NULL, 0, 20);
	}
	if (next_object(q, deadline, &greeting, err) < 0)
		goto fail;
	if (!nn_json_has(greeting, "QMP")) {
		jv_free(greeting);
		nn_seterr(err, "qmp: '%s' does not greet like QEMU", path);
		goto fail;
	}
	jv_free(greeting);
	if (nn_qmp_execute(q, "qmp_capabilities", jv_invalid(), NULL,
			   (int)(deadline > nn_mono_ms() ? deadline - nn_mono_ms() : 1), err) < 0)
		goto fail;
	return 0;
fail:
	nn_qmp_close(q);
	return -1;
}

int nn_qmp_execute(struct nn_qmp *q, const char *cmd, jv args, jv *ret, int timeout_ms,
		   char *err)
{
	int64_t deadline = nn_mono_ms() + timeout_ms;
	unsigned long id = q->next_id++;
	jv msg = jv_object_set(jv_object(), jv_string("execute"), jv_string(cmd));
	char *text;
	int rc;

	if (ret)
		*ret = jv_invalid();
	if (q->fd < 0) {
		jv_free(args);
		jv_free(msg);
		return nn_seterr(err, "qmp: not connected");
	}
	if (jv_is_valid(args))
		msg = jv_object_set(msg, jv_string("arguments"), args);
	else
		jv_free(args);
	msg = jv_object_set(msg, jv_string("id"), jv_number((double)id));
	text = nn_json_dump(msg);
	jv_free(msg);
	{
		char *line = nn_xasprintf("%s\n", text);
		rc = nn_write_all(q->fd, line, strlen(line));
		free(line);
	}
	free(text);
	if (rc < 0)
		return nn_seterr(err, "qmp: %s: cannot send: %s", cmd, strerror(errno));
	for (;;) {
		jv v, rid;
		int mine;
		if (next_object(q, deadline, &v, err) < 0)
			return -1;
		if (nn_json_has(v, "event")) {
			jv_free(v);
			continue;
		}
		rid = jv_object_get(jv_copy(v), jv_string("id"));
		mine = jv_get_kind(rid) == JV_KIND_NUMBER && jv_number_value(rid) == (double)id;
		jv_free(rid);
		if (!mine) {
			jv_free(v);
			continue;
		}
		if (nn_json_has(v, "error")) {
			jv desc = jv_getpath(v, jv_parse("[\"error\",\"desc\"]"));
			nn_seterr(err, "qmp: %s: %s", cmd,
				  jv_get_kind(desc) == JV_KIND_STRING ? jv_string_value(desc) : "error");
			jv_free(desc);
			return -1;
		}
		if (ret)
			*ret = jv_object_get(v, jv_string("return"));
		else
			jv_free(v);
		return 0;
	}
}
