/*
 * qmp — a client for the QEMU Machine Protocol over a unix socket: connect,
 * read the greeting, negotiate (qmp_capabilities), then run one command at
 * a time and get its "return" value, skipping the asynchronous events QEMU
 * sends in between.  Input from QEMU is read through a capped line reader
 * (NN_QMP_LINE_MAX); every wait is bounded by a timeout.
 *
 * A socket path that starts with '@' names a socket in the abstract
 * namespace (QEMU: -chardev socket,abstract=on), which has no file and so no
 * 108-byte limit tied to the directory it would live in.
 */
#ifndef NN_QMP_H
#define NN_QMP_H

#include <jv.h>
#include "lines.h"
#include "util.h"

#define NN_QMP_LINE_MAX (1024 * 1024)

struct nn_qmp {
	int fd;			/* -1 when closed */
	struct nn_lines in;
	unsigned long next_id;
};

/* Connect to path, trying again until timeout_ms passes while the socket
 * is not there yet (QEMU still starting), read the greeting and leave
 * negotiation mode.  0, or -1 + err (q is then closed). */
int nn_qmp_connect(struct nn_qmp *q, const char *path, int timeout_ms, char *err);

/* Run cmd with args (an object, consumed; jv_invalid() for none).  On
 * success *ret (if not NULL) gets the "return" value.  An "error" answer is
 * -1 with QEMU's description in err.  Waits at most timeout_ms. */
int nn_qmp_execute(struct nn_qmp *q, const char *cmd, jv args, jv *ret, int timeout_ms,
		   char *err);

void nn_qmp_close(struct nn_qmp *q);

/* Connect a unix stream socket to path ('@' for the abstract namespace):
 * the fd (the caller closes it), or -1 + err with errno kept. */
int nn_qmp_dial(const char *path, char *err);

#endif
