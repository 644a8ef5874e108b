/*
 * storage — the provider-independent half of fetching and storing by URL:
 * option defaults, URL scheme dispatch, confinement of local paths to a
 * base directory, temporary names renamed into place only when complete,
 * size limits and SHA-256 checksums, retries with exponential backoff and
 * jitter, and rate-limited progress events.  The providers (file, http and
 * s3, git) live in lib/storage/ and make one attempt each.
 */
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "sha256.h"
#include "json.h"

enum scheme { S_NONE, S_FILE, S_HTTP, S_S3, S_GIT };

static enum scheme scheme_of(const char *url)
{
	if (!strncmp(url, "file://", 7))
		return S_FILE;
	if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
		return S_HTTP;
	if (!strncmp(url, "s3://", 5))
		return S_S3;
	if (!strncmp(url, "git+https://", 12) || !strncmp(url, "git+http://", 11) ||
	    !strncmp(url, "git+file://", 11))
		return S_GIT;
	return S_NONE;
}

int nn_storage_supported(const char *url)
{
	return url && scheme_of(url) != S_NONE;
}

void nn_storage_opts_init(struct nn_storage_opts *o)
{
	memset(o, 0, sizeof *o);
	o->retries = 3;
	o->backoff_ms = 200;
	o->backoff_max_ms = 5000;
	o->connect_timeout_ms = 10000;
	o->stall_ms = 30000;
	o->part_size = 8u << 20;
	o->progress_interval_ms = 250;
}

int nn_xfer_progress(struct nn_xfer *x, uint64_t bytes, uint64_t total, int force)
{
	struct nn_storage_event ev;
	int64_t now;

	x->bytes = bytes;
	if (!x->o->progress)
		return 0;
	now = nn_mono_ms();
	if (!force && now - x->last_event < x->o->progress_interval_ms)
		return 0;
	x->last_event = now;
	memset(&ev, 0, sizeof ev);
	ev.phase = "progress";
	ev.url = x->url;
	ev.bytes = bytes;
	ev.total = total;
	ev.attempt = x->attempt;
	return x->o->progress(&ev, x->o->progress_arg);
}

int nn_xfer_fail(struct nn_xfer *x, int code, int temporary, char *err, const char *fmt, ...)
{
	x->code = code;
	x->temporary = temporary;
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, NN_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int event(struct nn_xfer *x, const char *phase, uint64_t bytes, uint64_t total,
		 int64_t delay, const char *error)
{
	struct nn_storage_event ev;

	if (!x->o->progress)
		return 0;
	memset(&ev, 0, sizeof ev);
	ev.phase = phase;
	ev.url = x->url;
	ev.bytes = bytes;
	ev.total = total;
	ev.attempt = x->attempt;
	ev.delay_ms = delay;
	ev.error = error;
	x->last_event = nn_mono_ms();
	return x->o->progress(&ev, x->o->progress_arg);
}

/* Wait before attempt n+1; 0 to go on, -1 when the deadline forbids it. */
static int backoff(struct nn_xfer *x, const char *why)
{
	int64_t d = x->o->backoff_ms > 0 ? x->o->backoff_ms : 0;
	int i;

	for (i = 1; i < x->attempt && d < x->o->backoff_max_ms; i++)
		d *= 2;
	if (x->o->backoff_max_ms > 0 && d > x->o->backoff_max_ms)
		d = x->o->backoff_max_ms;
	if (d > 0)
		d += randombytes_uniform((uint32_t)(d / 4 + 1));
	if (x->deadline && nn_mono_ms() + d >= x->deadline)
		return -1;
	if (event(x, "retry", x->bytes, 0, d, why))
		return -1;
	if (d > 0) {
		struct timespec ts = { d / 1000, (d % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return 0;
}

static int may_retry(struct nn_xfer *x)
{
	if (!x->temporary || x->attempt > x->o->retries)
		return 0;
	if (x->deadline && nn_mono_ms() >= x->deadline)
		return 0;
	return 1;
}

int nn_storage_join(const char *base, const char *rel, char **out, char *err)
{
	char rbase[PATH_MAX], rpar[PATH_MAX];
	char *full, *probe, *slash;
	const char *p;
	size_t n;

	if (!rel || !*rel)
		return nn_seterr(err, "empty path");
	if (rel[0] == '/')
		return nn_seterr(err, "path '%s' is absolute, expected one inside '%s'", rel, base);
	for (p = rel; *p; ) {
		n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return nn_seterr(err, "path '%s' escapes '%s'", rel, base);
		p += n;
		while (*p == '/')
			p++;
	}
	if (!realpath(base, rbase))
		return nn_seterr(err, "cannot resolve '%s': %s", base, strerror(errno));
	full = nn_xasprintf("%s/%s", rbase, rel);
	/* The deepest existing ancestor (or the file itself, when it is a
	 * symlink) must resolve inside base. */
	probe = nn_xstrdup(full);
	for (;;) {
		if (realpath(probe, rpar))
			break;
		slash = strrchr(probe, '/');
		if (!slash || slash == probe) {
			strcpy(rpar, "/");
			break;
		}
		*slash = '\0';
	}
	free(probe);
	n = strlen(rbase);
	if (strncmp(rpar, rbase, n) || (rpar[n] != '\0' && rpar[n] != '/' && n > 1)) {
		free(full);
		return nn_seterr(err, "path '%s' escapes '%s'", rel, base);
	}
	*out = full;
	return 0;
}

int nn_storage_sha256_file(const char *path, char hex[65], uint64_t *size, char *err)
{
	struct nn_sha256 st;
	unsigned char md[32];
	static const size_t bufsz = 1 << 20;
	unsigned char *buf;
	uint64_t total = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return nn_seterr(err, "cannot open '%s': %s", path, strerror(errno));
	buf = nn_xmalloc(bufsz);
	nn_sha256_init(&st);
	for (;;) {
		n = read(fd, buf, bufsz);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			close(fd);
			nn_sha256_release(&st);
			return nn_seterr(err, "cannot read '%s': %s", path, strerror(e));
		}
		if (n == 0)
			break;
		nn_sha256_update(&st, buf, (size_t)n);
		total += (uint64_t)n;
	}
	free(buf);
	close(fd);
	nn_sha256_final(&st, md);
	nn_hex_encode(hex, md, 32);
	if (size)
		*size = total;
	return 0;
}

static int check_sha(const char *want, char *err)
{
	size_t i;

	if (!want)
		return 0;
	if (strlen(want) != 64)
		return nn_seterr(err, "checksum '%s': expected 64 hex digits of SHA-256", want);
	for (i = 0; i < 64; i++)
		if (!strchr("0123456789abcdefABCDEF", want[i]))
			return nn_seterr(err, "checksum '%s': expected 64 hex digits of SHA-256", want);
	return 0;
}

/* rm -rf, for temporary names this file made. */
static void remove_tree(const char *path)
{
	nn_storage_rmtree(path);
}

static int setup(struct nn_xfer *x, const char *url, const struct nn_storage_opts *o,
		 struct nn_storage_opts *defaults, struct nn_storage_result *r,
		 struct nn_storage_result *scratch)
{
	if (!o) {
		nn_storage_opts_init(defaults);
		o = defaults;
	}
	if (!r)
		r = scratch;
	memset(r, 0, sizeof *r);
	memset(x, 0, sizeof *x);
	x->o = o;
	x->url = url;
	x->r = r;
	x->deadline = o->timeout_ms > 0 ? nn_mono_ms() + o->timeout_ms : 0;
	return 0;
}

static int finish(struct nn_xfer *x, int rc, int code, char *err)
{
	if (rc == 0) {
		x->r->code = 0;
		event(x, "done", x->r->size, x->r->size, 0, NULL);
	} else {
		x->r->code = code ? code : (x->code ? x->code : NN_EX_SOFTWARE);
	}
	return rc;
}

static int fetch_git(struct nn_xfer *x, const char *url, const char *dest, char *err)
{
	struct stat st;
	char *tmp;
	int rc;

	if (lstat(dest, &st) == 0) {
		if (!S_ISDIR(st.st_mode) || rmdir(dest) < 0)
			return nn_xfer_fail(x, NN_EX_IOERR, 0, err,
					    "cannot clone into '%s': it exists and is not an empty directory", dest);
	}
	tmp = nn_xasprintf("%s.part.XXXXXX", dest);
	if (!mkdtemp(tmp)) {
		int e = errno;
		free(tmp);
		return nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot create a directory beside '%s': %s",
				    dest, strerror(e));
	}
	for (x->attempt = 1;; x->attempt++) {
		x->r->attempts = x->attempt;
		if (x->attempt == 1)
			event(x, "start", 0, 0, 0, NULL);
		rc = nn_storage_git_fetch(x, url, tmp, err);
		if (rc == 0 || !may_retry(x) || backoff(x, err) < 0)
			break;
		remove_tree(tmp);
		if (mkdir(tmp, 0700) < 0) {
			rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot create '%s': %s", tmp, strerror(errno));
			break;
		}
	}
	if (rc == 0 && (chmod(tmp, 0755) < 0 || rename(tmp, dest) < 0))
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot rename '%s' to '%s': %s", tmp, dest,
				  strerror(errno));
	if (rc < 0)
		remove_tree(tmp);
	free(tmp);
	return rc;
}

static int fetch_file(struct nn_xfer *x, enum scheme s, const char *url, const char *dest, char *err)
{
	struct nn_sha256 hs;
	unsigned char md[32];
	char *tmp;
	uint64_t have = 0;
	mode_t um;
	int fd, rc = -1;

	tmp = nn_xasprintf("%s.part.XXXXXX", dest);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(tmp);
		return nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot create a file beside '%s': %s",
				    dest, strerror(e));
	}
	nn_sha256_init(&hs);
	for (x->attempt = 1;; x->attempt++) {
		x->r->attempts = x->attempt;
		if (x->attempt == 1)
			event(x, "start", 0, 0, 0, NULL);
		if (s == S_FILE) {
			rc = nn_storage_file_fetch(x, url, tmp, err);
		} else if (s == S_HTTP) {
			rc = nn_storage_http_fetch(x, url, fd, &have, x->o->no_sha256 ? NULL : &hs, err);
		} else {
			rc = nn_storage_s3_fetch(x, url, fd, &have, x->o->no_sha256 ? NULL : &hs, err);
		}
		if (s != S_FILE)
			x->bytes = have;	/* what a retry resumes from */
		if (rc == 0 || !may_retry(x) || backoff(x, err) < 0)
			break;
	}
	if (rc == 0) {
		struct stat st;
		if (s == S_FILE && x->o->no_sha256) {
			x->r->size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
		} else if (s == S_FILE) {
			rc = nn_storage_sha256_file(tmp, x->r->sha256, &x->r->size, err);
			if (rc < 0)
				x->code = NN_EX_IOERR;
		} else {
			if (!x->o->no_sha256) {
				nn_sha256_final(&hs, md);
				nn_hex_encode(x->r->sha256, md, 32);
			}
			x->r->size = have;
		}
		if (rc == 0 && fstat(fd, &st) == 0 && s != S_FILE && (uint64_t)st.st_size != have)
			rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "'%s': wrote %llu bytes, expected %llu",
					  tmp, (unsigned long long)st.st_size, (unsigned long long)have);
	}
	if (rc == 0 && x->o->max_size && x->r->size > x->o->max_size)
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s' is larger than %llu bytes", url,
				  (unsigned long long)x->o->max_size);
	if (rc == 0 && x->o->sha256 && strcasecmp(x->o->sha256, x->r->sha256))
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err,
				  "checksum mismatch for '%s': expected sha256 %s, got %s",
				  url, x->o->sha256, x->r->sha256);
	um = umask(0);
	umask(um);
	if (rc == 0 && (fchmod(fd, 0666 & ~um) < 0 || rename(tmp, dest) < 0))
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot rename '%s' to '%s': %s", tmp, dest,
				  strerror(errno));
	close(fd);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	nn_sha256_release(&hs);
	return rc;
}

/* The scheme of url, or S_NONE with err saying why it is not one we take. */
static enum scheme known_scheme(const char *url, char *err)
{
	enum scheme s = url ? scheme_of(url) : S_NONE;
	if (s == S_NONE) {
		const char *colon = url ? strstr(url, "://") : NULL;
		if (colon)
			nn_seterr(err, "unsupported URL scheme '%.*s' in '%s'", (int)(colon - url), url, url);
		else
			nn_seterr(err, "not a URL: '%s'", url ? url : "");
	}
	return s;
}

int nn_storage_fetch(const char *url, const char *path, const struct nn_storage_opts *o,
		     struct nn_storage_result *r, char *err)
{
	struct nn_storage_opts defaults;
	struct nn_storage_result scratch;
	struct nn_xfer x;
	enum scheme s;
	char *dest = NULL;
	int rc;

	setup(&x, url, o, &defaults, r, &scratch);
	if ((s = known_scheme(url, err)) == S_NONE)
		return finish(&x, -1, NN_EX_DATAERR, err);
	if (check_sha(x.o->sha256, err) < 0)
		return finish(&x, -1, NN_EX_USAGE, err);
	if (!path || !*path) {
		nn_seterr(err, "empty destination path");
		return finish(&x, -1, NN_EX_USAGE, err);
	}
	if (x.o->sha256 && x.o->no_sha256) {
		nn_seterr(err, "a checksum to verify needs the checksum computed");
		return finish(&x, -1, NN_EX_USAGE, err);
	}
	if (s == S_GIT && x.o->sha256) {
		nn_seterr(err, "'%s': a git input is pinned by its commit, not by a sha256", url);
		return finish(&x, -1, NN_EX_USAGE, err);
	}
	if (x.o->base) {
		if (nn_storage_join(x.o->base, path, &dest, err) < 0)
			return finish(&x, -1, NN_EX_DATAERR, err);
		char *slash = strrchr(dest, '/');
		if (slash && slash != dest) {
			*slash = '\0';
			rc = nn_mkdirs(dest, 0755, err);
			*slash = '/';
			if (rc < 0) {
				free(dest);
				return finish(&x, -1, NN_EX_IOERR, err);
			}
		}
	} else {
		dest = nn_xstrdup(path);
	}
	if (s == S_GIT)
		rc = fetch_git(&x, url, dest, err);
	else
		rc = fetch_file(&x, s, url, dest, err);
	free(dest);
	return finish(&x, rc, 0, err);
}

int nn_storage_put(const char *path, const char *url, const struct nn_storage_opts *o,
		   struct nn_storage_result *r, char *err)
{
	struct nn_storage_opts defaults;
	struct nn_storage_result scratch;
	struct nn_xfer x;
	struct stat st;
	enum scheme s;
	char *src = NULL;
	int rc;

	setup(&x, url, o, &defaults, r, &scratch);
	if ((s = known_scheme(url, err)) == S_NONE)
		return finish(&x, -1, NN_EX_DATAERR, err);
	if (check_sha(x.o->sha256, err) < 0)
		return finish(&x, -1, NN_EX_USAGE, err);
	if (x.o->base) {
		if (nn_storage_join(x.o->base, path, &src, err) < 0)
			return finish(&x, -1, NN_EX_DATAERR, err);
	} else {
		src = nn_xstrdup(path);
	}
	if (stat(src, &st) < 0) {
		nn_seterr(err, "cannot open '%s': %s", src, strerror(errno));
		free(src);
		return finish(&x, -1, NN_EX_IOERR, err);
	}
	if (S_ISDIR(st.st_mode) && s != S_GIT) {
		nn_seterr(err, "'%s' is a directory; only git outputs take directories", src);
		free(src);
		return finish(&x, -1, NN_EX_DATAERR, err);
	}
	if (!S_ISDIR(st.st_mode)) {
		if (nn_storage_sha256_file(src, x.r->sha256, &x.r->size, err) < 0) {
			free(src);
			return finish(&x, -1, NN_EX_IOERR, err);
		}
		if (x.o->max_size && x.r->size > x.o->max_size) {
			nn_seterr(err, "'%s' is larger than %llu bytes", src,
				  (unsigned long long)x.o->max_size);
			free(src);
			return finish(&x, -1, NN_EX_DATAERR, err);
		}
		if (x.o->sha256 && strcasecmp(x.o->sha256, x.r->sha256)) {
			nn_seterr(err, "checksum mismatch for '%s': expected sha256 %s, got %s",
				  src, x.o->sha256, x.r->sha256);
			free(src);
			return finish(&x, -1, NN_EX_DATAERR, err);
		}
	}
	for (x.attempt = 1;; x.attempt++) {
		x.r->attempts = x.attempt;
		if (x.attempt == 1)
			event(&x, "start", 0, x.r->size, 0, NULL);
		switch (s) {
		case S_FILE: rc = nn_storage_file_put(&x, src, url, err); break;
		case S_HTTP: rc = nn_storage_http_put(&x, src, url, err); break;
		case S_S3: rc = nn_storage_s3_put(&x, src, url, err); break;
		default: rc = nn_storage_git_put(&x, src, url, err); break;
		}
		if (rc == 0 || !may_retry(&x) || backoff(&x, err) < 0)
			break;
	}
	free(src);
	return finish(&x, rc, 0, err);
}

jv nn_storage_result_json(const struct nn_storage_result *r, const char *url, const char *path)
{
	jv o = jv_object();

	if (url)
		o = jv_object_set(o, jv_string("url"), jv_string(url));
	if (path)
		o = jv_object_set(o, jv_string("path"), jv_string(path));
	if (!r->commit[0])
		o = jv_object_set(o, jv_string("size"), jv_number((double)r->size));
	if (r->sha256[0])
		o = jv_object_set(o, jv_string("sha256"), jv_string(r->sha256));
	if (r->commit[0])
		o = jv_object_set(o, jv_string("commit"), jv_string(r->commit));
	o = jv_object_set(o, jv_string("attempts"), jv_number(r->attempts));
	return o;
}

/* ---- S3 settings ---- */

static char *env_dup(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? nn_xstrdup(v) : NULL;
}

void nn_s3_config_release(struct nn_s3_config *c)
{
	if (c->secret_key) {
		sodium_memzero(c->secret_key, strlen(c->secret_key));
		free(c->secret_key);
	}
	free(c->endpoint);
	free(c->region);
	free(c->access_key);
	free(c->session_token);
	memset(c, 0, sizeof *c);
}

static int s3_fill_env(struct nn_s3_config *c, char *err)
{
	if (!c->region)
		c->region = env_dup("AWS_REGION");
	if (!c->region)
		c->region = env_dup("AWS_DEFAULT_REGION");
	if (!c->region)
		c->region = nn_xstrdup("us-east-1");
	if (!c->endpoint)
		c->endpoint = env_dup("NUNET_S3_ENDPOINT");
	if (!c->endpoint)
		c->endpoint = nn_xasprintf("https://s3.%s.amazonaws.com", c->region);
	if (!c->access_key)
		c->access_key = env_dup("AWS_ACCESS_KEY_ID");
	if (!c->secret_key)
		c->secret_key = env_dup("AWS_SECRET_ACCESS_KEY");
	if (!c->session_token)
		c->session_token = env_dup("AWS_SESSION_TOKEN");
	if (!c->access_key || !c->secret_key) {
		nn_s3_config_release(c);
		return nn_seterr(err, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	}
	/* A trailing slash would double up in path-style URLs. */
	size_t n = strlen(c->endpoint);
	while (n > 1 && c->endpoint[n - 1] == '/')
		c->endpoint[--n] = '\0';
	return 0;
}

int nn_s3_config_from_env(struct nn_s3_config *c, char *err)
{
	memset(c, 0, sizeof *c);
	return s3_fill_env(c, err);
}

int nn_s3_config_from_json(struct nn_s3_config *c, jv conf, char *err)
{
	static const char *keys[] = { "endpoint", "region", "access_key_id",
				      "secret_access_key", "session_token" };
	char **slots[5];
	size_t i;

	memset(c, 0, sizeof *c);
	slots[0] = &c->endpoint;
	slots[1] = &c->region;
	slots[2] = &c->access_key;
	slots[3] = &c->secret_key;
	slots[4] = &c->session_token;
	if (jv_get_kind(conf) != JV_KIND_OBJECT)
		return nn_seterr(err, "s3: expected object");
	jv_object_foreach(conf, k, v) {
		int found = 0;
		for (i = 0; i < 5; i++) {
			if (strcmp(jv_string_value(k), keys[i]))
				continue;
			found = 1;
			if (jv_get_kind(v) != JV_KIND_STRING) {
				nn_seterr(err, "s3.%s: expected string", keys[i]);
				jv_free(k);
				jv_free(v);
				nn_s3_config_release(c);
				return -1;
			}
			free(*slots[i]);
			*slots[i] = nn_xstrdup(jv_string_value(v));
		}
		if (!found) {
			nn_seterr(err, "s3.%s: unknown key", jv_string_value(k));
			jv_free(k);
			jv_free(v);
			nn_s3_config_release(c);
			return -1;
		}
		jv_free(k);
		jv_free(v);
	}
	return s3_fill_env(c, err);
}

/* ---- staging a job's inputs and collecting its outputs ---- */

static int item_opts(jv item, size_t i, const char *what, const struct nn_storage_opts *base_o,
		     struct nn_storage_opts *o, const char **url, const char **path, char *err)
{
	jv v;

	*o = *base_o;
	if (jv_get_kind(item) != JV_KIND_OBJECT)
		return nn_seterr(err, "%s[%zu]: expected object", what, i);
	if (nn_json_get_str(item, "url", url, NULL) < 0)
		return nn_seterr(err, "%s[%zu].url: expected string", what, i);
	if (nn_json_get_str(item, "path", path, NULL) < 0)
		return nn_seterr(err, "%s[%zu].path: expected string", what, i);
	v = jv_object_get(jv_copy(item), jv_string("sha256"));
	if (jv_get_kind(v) == JV_KIND_STRING) {
		o->sha256 = jv_string_value(v);	/* lives as long as item */
	} else if (jv_is_valid(v) && jv_get_kind(v) != JV_KIND_NULL) {
		jv_free(v);
		return nn_seterr(err, "%s[%zu].sha256: expected string", what, i);
	}
	jv_free(v);
	v = jv_object_get(jv_copy(item), jv_string("max_size"));
	if (jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) >= 0 &&
	    nn_json_is_int(jv_number_value(v))) {
		o->max_size = (uint64_t)jv_number_value(v);
	} else if (jv_is_valid(v) && jv_get_kind(v) != JV_KIND_NULL) {
		jv_free(v);
		return nn_seterr(err, "%s[%zu].max_size: expected a non-negative integer", what, i);
	}
	jv_free(v);
	return 0;
}

jv nn_storage_stage(jv inputs, const char *base, const struct nn_storage_opts *o, int *code,
		    char *err)
{
	struct nn_storage_opts defaults, io;
	struct nn_storage_result r;
	jv out = jv_array();
	char e[NN_ERRLEN];
	int i, j, n;

	if (!o) {
		nn_storage_opts_init(&defaults);
		o = &defaults;
	}
	*code = 0;
	if (jv_get_kind(inputs) != JV_KIND_ARRAY) {
		*code = NN_EX_DATAERR;
		nn_seterr(err, "inputs: expected array");
		jv_free(out);
		return jv_invalid();
	}
	n = jv_array_length(jv_copy(inputs));
	for (i = 0; i < n; i++) {
		jv item = jv_array_get(jv_copy(inputs), i);
		const char *url = NULL, *path = NULL;
		int rc = item_opts(item, (size_t)i, "inputs", o, &io, &url, &path, e);
		if (rc < 0) {
			r.code = NN_EX_DATAERR;
		} else {
			io.base = base;
			rc = nn_storage_fetch(url, path, &io, &r, e);
		}
		if (rc < 0) {
			*code = r.code;
			nn_seterr(err, "input %d (%s): %s", i + 1, url ? url : "?", e);
			/* Take back what this call staged: all or nothing. */
			for (j = 0; j < i; j++) {
				jv done = jv_array_get(jv_copy(out), j);
				jv full = jv_object_get(done, jv_string("full"));
				if (jv_get_kind(full) == JV_KIND_STRING)
					nn_storage_rmtree(jv_string_value(full));
				jv_free(full);
			}
			jv_free(item);
			jv_free(out);
			return jv_invalid();
		}
		{
			char *full = NULL;
			jv res = nn_storage_result_json(&r, url, path);
			if (nn_storage_join(base, path, &full, NULL) == 0) {
				res = jv_object_set(res, jv_string("full"), jv_string(full));
				free(full);
			}
			out = jv_array_append(out, res);
		}
		jv_free(item);
	}
	/* "full" served the rollback only. */
	for (i = 0; i < n; i++)
		out = jv_array_set(out, i, jv_object_delete(jv_array_get(jv_copy(out), i),
							     jv_string("full")));
	return out;
}

jv nn_storage_collect(jv outputs, const char *base, const struct nn_storage_opts *o, int *code,
		      char *err)
{
	struct nn_storage_opts defaults, io;
	struct nn_storage_result r;
	jv out = jv_array();
	char e[NN_ERRLEN];
	int i, n;

	if (!o) {
		nn_storage_opts_init(&defaults);
		o = &defaults;
	}
	*code = 0;
	if (jv_get_kind(outputs) != JV_KIND_ARRAY) {
		*code = NN_EX_DATAERR;
		nn_seterr(err, "outputs: expected array");
		jv_free(out);
		return jv_invalid();
	}
	n = jv_array_length(jv_copy(outputs));
	for (i = 0; i < n; i++) {
		jv item = jv_array_get(jv_copy(outputs), i);
		const char *url = NULL, *path = NULL;
		jv res;
		int rc = item_opts(item, (size_t)i, "outputs", o, &io, &url, &path, e);
		memset(&r, 0, sizeof r);
		if (rc < 0) {
			r.code = NN_EX_DATAERR;
		} else {
			io.base = base;
			rc = nn_storage_put(path, url, &io, &r, e);
		}
		if (rc == 0) {
			res = nn_storage_result_json(&r, url, path);
		} else {
			/* Every output is tried; each failure is reported. */
			res = jv_object();
			if (url)
				res = jv_object_set(res, jv_string("url"), jv_string(url));
			if (path)
				res = jv_object_set(res, jv_string("path"), jv_string(path));
			res = jv_object_set(res, jv_string("error"), jv_string(e));
			if (!*code) {
				*code = r.code ? r.code : NN_EX_SOFTWARE;
				nn_seterr(err, "output %d (%s): %s", i + 1, url ? url : "?", e);
			}
		}
		out = jv_array_append(out, res);
		jv_free(item);
	}
	return out;
}
