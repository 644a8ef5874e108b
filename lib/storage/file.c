/*
 * storage/file — the file:// provider: copy a local file in or out (never a
 * link, so the allocation cannot write through to the source), with
 * progress, plus the rm -rf the other parts of storage use to clean up
 * their temporary names.
 */
#include "storage.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int nn_storage_rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* file:///abs/path or file://localhost/abs/path, %XX decoded.  Caller frees. */
static char *file_path(const char *url, char *err)
{
	const char *p = url + 7;
	char *out, *o;

	if (!strncmp(p, "localhost/", 10))
		p += 9;
	if (*p != '/') {
		nn_seterr(err, "'%s': expected file:///ABSOLUTE/PATH", url);
		return NULL;
	}
	out = o = nn_xmalloc(strlen(p) + 1);
	while (*p) {
		unsigned v;
		if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]) &&
		    sscanf(p + 1, "%2x", &v) == 1) {
			if (v == 0) {
				free(out);
				nn_seterr(err, "'%s': NUL in path", url);
				return NULL;
			}
			*o++ = (char)v;
			p += 3;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

static int copy_fd(struct nn_xfer *x, int in, int out, const char *src, const char *dst,
		   uint64_t total, char *err)
{
	static const size_t bufsz = 1 << 20;
	char *buf = nn_xmalloc(bufsz);
	uint64_t done = 0;
	ssize_t n;

	for (;;) {
		n = read(in, buf, bufsz);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			return nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot read '%s': %s", src, strerror(e));
		}
		if (n == 0)
			break;
		done += (uint64_t)n;
		if (x->o->max_size && done > x->o->max_size) {
			free(buf);
			return nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s' is larger than %llu bytes",
					    src, (unsigned long long)x->o->max_size);
		}
		if (nn_write_all(out, buf, (size_t)n) < 0) {
			int e = errno;
			free(buf);
			return nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot write '%s': %s", dst, strerror(e));
		}
		if (nn_xfer_progress(x, done, total, 0)) {
			free(buf);
			return nn_xfer_fail(x, NN_EX_SOFTWARE, 0, err, "'%s': cancelled", src);
		}
	}
	free(buf);
	return 0;
}

int nn_storage_file_fetch(struct nn_xfer *x, const char *src, const char *tmp, char *err)
{
	struct stat st;
	char *path = file_path(src, err);
	int in, out, rc;

	if (!path)
		return nn_xfer_fail(x, NN_EX_DATAERR, 0, NULL, "%s", "");
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		int e = errno;
		rc = nn_xfer_fail(x, e == ENOENT || e == EACCES ? NN_EX_UNAVAILABLE : NN_EX_IOERR, 0,
				  err, "cannot open '%s': %s", path, strerror(e));
		free(path);
		return rc;
	}
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s' is not a regular file", path);
		close(in);
		free(path);
		return rc;
	}
	if (x->o->max_size && (uint64_t)st.st_size > x->o->max_size) {
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s' is larger than %llu bytes", src,
				  (unsigned long long)x->o->max_size);
		close(in);
		free(path);
		return rc;
	}
	out = open(tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (out < 0) {
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot open '%s': %s", tmp, strerror(errno));
		close(in);
		free(path);
		return rc;
	}
	rc = copy_fd(x, in, out, path, tmp, (uint64_t)st.st_size, err);
	if (rc == 0 && close(out) < 0)
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot write '%s': %s", tmp, strerror(errno));
	else if (rc < 0)
		close(out);
	close(in);
	free(path);
	return rc;
}

int nn_storage_file_put(struct nn_xfer *x, const char *src, const char *dst_url, char *err)
{
	char *dst = file_path(dst_url, err), *tmp;
	mode_t um;
	int in, out, rc;

	if (!dst)
		return nn_xfer_fail(x, NN_EX_DATAERR, 0, NULL, "%s", "");
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot open '%s': %s", src, strerror(errno));
		free(dst);
		return rc;
	}
	tmp = nn_xasprintf("%s.part.XXXXXX", dst);
	out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0) {
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot create a file beside '%s': %s", dst,
				  strerror(errno));
		goto done;
	}
	rc = copy_fd(x, in, out, src, tmp, x->r->size, err);
	um = umask(0);
	umask(um);
	if (rc == 0 && fchmod(out, 0666 & ~um) < 0)
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot chmod '%s': %s", tmp, strerror(errno));
	if (close(out) < 0 && rc == 0)
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot write '%s': %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, dst) < 0)
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot rename '%s' to '%s': %s", tmp, dst,
				  strerror(errno));
	if (rc < 0)
		unlink(tmp);
done:
	close(in);
	free(tmp);
	free(dst);
	return rc;
}
