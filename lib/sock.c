/*
 * sock — the small amount of unix-socket plumbing the node and its clients
 * share.
 */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "util.h"

/* Fill sa for path; *dirfd is set (>= 0) when a directory fd had to be
 * opened to shorten the path; the caller closes it after use. */
static int make_addr(struct sockaddr_un *sa, const char *path, int *dirfd, char *err)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	*dirfd = -1;
	if (strlen(path) < sizeof sa->sun_path) {
		memcpy(sa->sun_path, path, strlen(path) + 1);
		return 0;
	}
	char *d = nn_xstrdup(path), *b = nn_xstrdup(path);
	int fd = open(dirname(d), O_PATH | O_DIRECTORY | O_CLOEXEC);
	int n = -1;
	if (fd >= 0)
		n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", fd, basename(b));
	free(d);
	free(b);
	if (fd < 0)
		return nn_seterr(err, "cannot open the directory of '%s': %s", path, strerror(errno));
	if (n < 0 || (size_t)n >= sizeof sa->sun_path) {
		close(fd);
		return nn_seterr(err, "socket name in '%s' is too long", path);
	}
	*dirfd = fd;
	return 0;
}

int nn_sock_listen(const char *path, int mode, char *err)
{
	struct sockaddr_un sa;
	int fd, dirfd, e;
	mode_t old;

	if (make_addr(&sa, path, &dirfd, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		nn_seterr(err, "socket: %s", strerror(errno));
		goto fail;
	}
	old = umask(0777 & ~mode);
	e = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (e < 0) {
		nn_seterr(err, "cannot bind '%s': %s", path, strerror(errno));
		goto fail;
	}
	if (chmod(path, mode) < 0 || listen(fd, 1024) < 0) {
		nn_seterr(err, "cannot listen on '%s': %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	if (dirfd >= 0)
		close(dirfd);
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	return -1;
}

int nn_sock_connect(const char *path, char *err)
{
	struct sockaddr_un sa;
	int fd, dirfd, e;

	if (make_addr(&sa, path, &dirfd, err) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = errno;
		nn_seterr(err, "socket: %s", strerror(errno));
		goto fail;
	}
	while ((e = connect(fd, (struct sockaddr *)&sa, sizeof sa)) < 0 && errno == EINTR)
		;
	if (e < 0) {
		e = errno;
		nn_seterr(err, "cannot connect to '%s': %s", path, strerror(errno));
		goto fail;
	}
	if (dirfd >= 0)
		close(dirfd);
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	errno = e;
	return -1;
}

int nn_sock_peer(int fd, uid_t *uid, pid_t *pid)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -1;
	if (uid)
		*uid = cr.uid;
	if (pid)
		*pid = cr.pid;
	return 0;
}

int nn_sock_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int nn_sock_send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
