/*
 * sock — unix stream sockets for the control socket: listen, connect, the
 * peer's credentials, non-blocking mode.  Paths longer than sun_path are
 * reached through /proc/self/fd/N/NAME of their directory.
 */
#ifndef NN_SOCK_H
#define NN_SOCK_H

#include <sys/types.h>

/* Bind and listen at path with the given mode (the socket file is created
 * with it, race-free through umask).  Returns the fd (CLOEXEC, non-blocking)
 * or -1 + err. */
int nn_sock_listen(const char *path, int mode, char *err);
/* Connect (blocking, CLOEXEC).  -1 + err; errno is kept from connect(2). */
int nn_sock_connect(const char *path, char *err);
/* Peer's uid/pid of a connected unix socket; -1 on error. */
int nn_sock_peer(int fd, uid_t *uid, pid_t *pid);
int nn_sock_nonblock(int fd);
/* Write all n bytes to a connected socket without raising SIGPIPE: a
 * peer that went away is -1 with errno EPIPE (or ECONNRESET), for the
 * caller to report, instead of the process dying mid-output.  EINTR is
 * retried; on a non-blocking socket EAGAIN is returned as -1 too. */
int nn_sock_send_all(int fd, const void *buf, size_t n);

#endif
