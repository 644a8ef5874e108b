/*
 * storage/http — the http(s):// and s3:// providers, both libcurl.
 *
 * A GET streams into the caller's temporary file while hashing; when an
 * attempt breaks after some bytes arrived, the next attempt asks for the
 * rest with a Range request and carries on hashing where it stopped (a
 * server that answers 200 instead of 206 makes it start over).  S3 requests
 * are path-style (ENDPOINT/BUCKET/KEY), signed by libcurl's AWS SigV4
 * (CURLOPT_AWS_SIGV4) with the payload's SHA-256 in x-amz-content-sha256;
 * bodies are sent from memory so that libcurl signs the same hash.  Files
 * over part_size go up as a multipart upload (initiate, parts with their own
 * retries, complete; abort on failure).
 *
 * Hashing runs in a second thread that reads back what was written (from
 * the page cache) while the transfer goes on, so a download is not slowed
 * to the speed of SHA-256 plus the network, only to the slower of the two.
 */
#include "storage.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "dlcurl.h"
#include "sha256.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ERRBODY_MAX 8192

static void global_init(void)
{
	static int done;
	if (!done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		done = 1;
	}
}

/* ---- classification ---- */

static int curl_fail(struct nn_xfer *x, CURLcode c, const char *url, const char *cerr, char *err)
{
	int temporary = 0;

	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		temporary = 1;
		break;
	default:
		break;
	}
	return nn_xfer_fail(x, temporary ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE, temporary, err,
			    "'%s': %s", url, cerr && *cerr ? cerr : curl_easy_strerror(c));
}

/* The text between <tag> and </tag> in an S3 error document, or NULL. */
static char *xml_field(const char *doc, const char *tag)
{
	char open[64], close[64];
	const char *a, *b;

	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	a = doc ? strstr(doc, open) : NULL;
	if (!a)
		return NULL;
	a += strlen(open);
	b = strstr(a, close);
	if (!b)
		return NULL;
	return strndup(a, (size_t)(b - a));
}

static int status_fail(struct nn_xfer *x, long status, const char *url, const char *body, char *err)
{
	int temporary = status >= 500 || status == 408 || status == 429;
	char *code = xml_field(body, "Code");
	int rc;

	if (code)
		rc = nn_xfer_fail(x, temporary ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE, temporary, err,
				  "'%s': HTTP %ld: %s", url, status, code);
	else
		rc = nn_xfer_fail(x, temporary ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE, temporary, err,
				  "'%s': HTTP %ld%s", url, status,
				  status == 404 ? " Not Found" : status == 403 ? " Forbidden" :
				  status == 401 ? " Unauthorized" : "");
	free(code);
	return rc;
}

/* ---- common handle set-up ---- */

static CURL *handle(struct nn_xfer *x, char *cerr)
{
	CURL *h;
	int64_t left;

	cerr[0] = '\0';
	if (nn_dlcurl_load(cerr) < 0)
		return NULL;
	global_init();
	h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "nunet/" NN_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)x->o->connect_timeout_ms);
	if (x->o->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, x->o->ca_file);
	if (x->o->stall_ms > 0) {
		long s = (long)((x->o->stall_ms + 999) / 1000);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s);
	}
	if (x->deadline) {
		left = x->deadline - nn_mono_ms();
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
	}
	cerr[0] = '\0';
	return h;
}

static int s3_auth(CURL *h, const struct nn_s3_config *c, struct curl_slist **hdrs,
		   const char *payload_sha)
{
	char *sig = nn_xasprintf("aws:amz:%s:s3", c->region);
	char *line;

	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sig);
	free(sig);
	curl_easy_setopt(h, CURLOPT_USERNAME, c->access_key);
	curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret_key);
	line = nn_xasprintf("x-amz-content-sha256: %s", payload_sha);
	*hdrs = curl_slist_append(*hdrs, line);
	free(line);
	if (c->session_token) {
		line = nn_xasprintf("x-amz-security-token: %s", c->session_token);
		*hdrs = curl_slist_append(*hdrs, line);
		free(line);
	}
	return 0;
}

/* s3://BUCKET/KEY to ENDPOINT/BUCKET/KEY with the key URI-encoded (slashes
 * kept), as SigV4's canonical URI wants it.  Caller frees. */
static char *s3_url(const struct nn_s3_config *c, const char *url, char *err)
{
	const char *b = url + 5, *slash = strchr(b, '/');
	struct nn_buf out = NN_BUF_INIT;
	const char *k;

	if (!slash || slash == b || !slash[1]) {
		nn_seterr(err, "'%s': expected s3://BUCKET/KEY", url);
		return NULL;
	}
	nn_buf_addf(&out, "%s/%.*s/", c->endpoint, (int)(slash - b), b);
	for (k = slash + 1; *k; k++) {
		unsigned char ch = (unsigned char)*k;
		if (isalnum(ch) || strchr("-._~/", ch))
			nn_buf_addc(&out, (char)ch);
		else
			nn_buf_addf(&out, "%%%02X", ch);
	}
	return nn_buf_detach(&out, NULL);
}

/* ---- the hashing thread ---- */

#define HASH_BATCH (1u << 20)

struct hasher {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fd;
	struct nn_sha256 *hs;
	uint64_t hashed, written;	/* hashed: the thread's own; written: shared */
	uint64_t signalled;		/* written when the thread was last woken */
	int done, started, err;
};

static void *hash_main(void *arg)
{
	struct hasher *h = arg;
	const size_t bufsz = 1 << 20;
	unsigned char *buf = nn_xmalloc(bufsz);
	uint64_t upto;

	pthread_mutex_lock(&h->mu);
	for (;;) {
		/* Wake for a batch, not for every 16 KiB the transfer writes. */
		while (h->written - h->hashed < HASH_BATCH && !h->done)
			pthread_cond_wait(&h->cv, &h->mu);
		if (h->hashed == h->written)
			break;
		upto = h->written;
		pthread_mutex_unlock(&h->mu);
		while (h->hashed < upto && !h->err) {
			size_t n = upto - h->hashed < bufsz ? (size_t)(upto - h->hashed) : bufsz;
			ssize_t k = pread(h->fd, buf, n, (off_t)h->hashed);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				h->err = k < 0 ? errno : EIO;
				break;
			}
			nn_sha256_update(h->hs, buf, (size_t)k);
			h->hashed += (uint64_t)k;
		}
		pthread_mutex_lock(&h->mu);
		if (h->err)
			break;
	}
	pthread_mutex_unlock(&h->mu);
	free(buf);
	return NULL;
}

static int hasher_start(struct hasher *h, int fd, struct nn_sha256 *hs, uint64_t from)
{
	memset(h, 0, sizeof *h);
	h->fd = fd;
	h->hs = hs;
	h->hashed = h->written = h->signalled = from;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pthread_create(&h->th, NULL, hash_main, h) != 0) {
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cv);
		return -1;
	}
	h->started = 1;
	return 0;
}

static void hasher_wrote(struct hasher *h, uint64_t n)
{
	pthread_mutex_lock(&h->mu);
	h->written += n;
	if (h->written - h->signalled >= HASH_BATCH) {
		h->signalled = h->written;
		pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
}

/* Wait until everything written is hashed; 0, or an errno. */
static int hasher_finish(struct hasher *h)
{
	if (!h->started)
		return 0;
	pthread_mutex_lock(&h->mu);
	h->done = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	h->started = 0;
	return h->err;
}

/* ---- GET into a file, resumable ---- */

struct get {
	struct nn_xfer *x;
	CURL *h;
	int fd;
	uint64_t *have;
	struct nn_sha256 *hs;
	uint64_t start;		/* *have when the attempt began */
	uint64_t total;
	int64_t range_start;	/* from Content-Range, -1 when none */
	int checked;
	long status;
	int fail;		/* 1 too large, 2 write error, 3 bad range, 4 cancelled */
	int wr_errno;
	struct nn_buf errbody;
	struct hasher hash;
};

static size_t get_header(char *p, size_t size, size_t n, void *arg)
{
	struct get *g = arg;
	size_t len = size * n;
	unsigned long long a;

	if (len > 5 && !strncmp(p, "HTTP/", 5))
		g->range_start = -1;
	else if (len > 14 && !strncasecmp(p, "content-range:", 14) &&
		 sscanf(p + 14, " bytes %llu-", &a) == 1)
		g->range_start = (int64_t)a;
	return len;
}

static int get_check(struct get *g)
{
	curl_off_t cl = -1;

	g->checked = 1;
	curl_easy_getinfo(g->h, CURLINFO_RESPONSE_CODE, &g->status);
	if (g->status < 200 || g->status >= 300)
		return 0;	/* an error body: kept in errbody */
	if (g->start > 0 && g->status == 206) {
		if (g->range_start != (int64_t)g->start) {
			g->fail = 3;
			return -1;
		}
	} else if (g->start > 0) {
		/* The server ignored Range: start over. */
		if (ftruncate(g->fd, 0) < 0 || lseek(g->fd, 0, SEEK_SET) < 0) {
			g->fail = 2;
			g->wr_errno = errno;
			return -1;
		}
		if (g->hs)
			nn_sha256_reset(g->hs);
		*g->have = 0;
		g->start = 0;
	}
	curl_easy_getinfo(g->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	g->total = cl >= 0 ? g->start + (uint64_t)cl : 0;
	if (g->x->o->max_size && g->total > g->x->o->max_size) {
		g->fail = 1;
		return -1;
	}
	return 0;
}

static size_t get_write(char *p, size_t size, size_t n, void *arg)
{
	struct get *g = arg;
	size_t len = size * n;

	if (!g->checked && get_check(g) < 0)
		return 0;
	if (g->hs && !g->hash.started && g->status >= 200 && g->status < 300 &&
	    hasher_start(&g->hash, g->fd, g->hs, *g->have) < 0) {
		g->fail = 2;
		g->wr_errno = EAGAIN;
		return 0;
	}
	if (g->status < 200 || g->status >= 300) {
		size_t room = ERRBODY_MAX - g->errbody.len;
		nn_buf_add(&g->errbody, p, len < room ? len : room);
		return len;
	}
	if (g->x->o->max_size && *g->have + len > g->x->o->max_size) {
		g->fail = 1;
		return 0;
	}
	if (nn_write_all(g->fd, p, len) < 0) {
		g->fail = 2;
		g->wr_errno = errno;
		return 0;
	}
	if (g->hs)
		hasher_wrote(&g->hash, len);
	*g->have += len;
	return len;
}

static int get_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			curl_off_t ulnow)
{
	struct get *g = arg;
	(void)ultotal;
	(void)ulnow;
	(void)dlnow;
	if (g->status >= 200 && g->status < 300 &&
	    nn_xfer_progress(g->x, *g->have, g->total ? g->total :
			     (dltotal > 0 ? g->start + (uint64_t)dltotal : 0), 0)) {
		g->fail = 4;
		return 1;
	}
	return 0;
}

static int get_into(struct nn_xfer *x, CURL *h, const char *url, struct curl_slist *hdrs,
		    int fd, uint64_t *have, void *hash_state, const char *cerr, char *err)
{
	struct get g;
	char range[48];
	CURLcode c;
	int rc;

	memset(&g, 0, sizeof g);
	g.x = x;
	g.h = h;
	g.fd = fd;
	g.have = have;
	g.hs = hash_state;
	g.start = *have;
	g.range_start = -1;
	nn_buf_init(&g.errbody, ERRBODY_MAX + 1);
	/* Drop whatever a failed write left past what is hashed. */
	if (ftruncate(fd, (off_t)*have) < 0 || lseek(fd, (off_t)*have, SEEK_SET) < 0)
		return nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot seek in the download: %s",
				    strerror(errno));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	if (hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (*have > 0) {
		snprintf(range, sizeof range, "%llu-", (unsigned long long)*have);
		curl_easy_setopt(h, CURLOPT_RANGE, range);
	}
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, get_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &g);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, get_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &g);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, get_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &g);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	c = curl_easy_perform(h);
	{
		int he = hasher_finish(&g.hash);
		if (he && !g.fail) {
			g.fail = 2;
			g.wr_errno = he;
		}
	}
	if (g.fail == 1)
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s' is larger than %llu bytes", url,
				  (unsigned long long)x->o->max_size);
	else if (g.fail == 2)
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot write the download of '%s': %s", url,
				  strerror(g.wr_errno));
	else if (g.fail == 3)
		rc = nn_xfer_fail(x, NN_EX_UNAVAILABLE, 1, err,
				  "'%s': the server answered a different range than asked", url);
	else if (g.fail == 4)
		rc = nn_xfer_fail(x, NN_EX_SOFTWARE, 0, err, "'%s': cancelled", url);
	else if (c != CURLE_OK)
		rc = curl_fail(x, c, url, cerr, err);
	else if (!g.checked && (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &g.status), 1) &&
		 g.status >= 200 && g.status < 300 && (get_check(&g) < 0))
		rc = nn_xfer_fail(x, NN_EX_DATAERR, 0, err, "'%s' is larger than %llu bytes", url,
				  (unsigned long long)x->o->max_size);
	else if (g.status < 200 || g.status >= 300)
		rc = status_fail(x, g.status, url, g.errbody.data, err);
	else
		rc = 0;
	if (rc == 0)
		nn_xfer_progress(x, *have, *have, 1);
	nn_buf_release(&g.errbody);
	return rc;
}

int nn_storage_http_fetch(struct nn_xfer *x, const char *url, int fd, uint64_t *have,
			  void *hash_state, char *err)
{
	char cerr[CURL_ERROR_SIZE];
	CURL *h = handle(x, cerr);
	int rc;

	if (!h)
		return nn_xfer_fail(x, cerr[0] ? NN_EX_UNAVAILABLE : NN_EX_SOFTWARE, 0, err,
				    "%s", cerr[0] ? cerr : "cannot start libcurl");
	rc = get_into(x, h, url, NULL, fd, have, hash_state, cerr, err);
	curl_easy_cleanup(h);
	return rc;
}

static int s3_config(struct nn_xfer *x, struct nn_s3_config *own, const struct nn_s3_config **c,
		     char *err)
{
	if (x->o->s3) {
		*c = x->o->s3;
		return 0;
	}
	if (nn_s3_config_from_env(own, err) < 0)
		return nn_xfer_fail(x, NN_EX_CONFIG, 0, NULL, "%s", "");
	*c = own;
	return 0;
}

int nn_storage_s3_fetch(struct nn_xfer *x, const char *url, int fd, uint64_t *have,
			void *hash_state, char *err)
{
	struct nn_s3_config own;
	const struct nn_s3_config *c = NULL;
	struct curl_slist *hdrs = NULL;
	char cerr[CURL_ERROR_SIZE], *u;
	CURL *h;
	int rc;

	memset(&own, 0, sizeof own);
	if (s3_config(x, &own, &c, err) < 0)
		return -1;
	u = s3_url(c, url, err);
	if (!u) {
		nn_s3_config_release(&own);
		return nn_xfer_fail(x, NN_EX_DATAERR, 0, NULL, "%s", "");
	}
	h = handle(x, cerr);
	if (!h) {
		free(u);
		nn_s3_config_release(&own);
		return nn_xfer_fail(x, cerr[0] ? NN_EX_UNAVAILABLE : NN_EX_SOFTWARE, 0, err,
				    "%s", cerr[0] ? cerr : "cannot start libcurl");
	}
	s3_auth(h, c, &hdrs, EMPTY_SHA256);
	rc = get_into(x, h, u, hdrs, fd, have, hash_state, cerr, err);
	if (rc < 0 && err) {
		/* Name the s3:// URL, not the endpoint's. */
		char *p = strstr(err, u);
		if (p) {
			char *msg = nn_xasprintf("'%s'%s", url, p + strlen(u) + 1);
			snprintf(err, NN_ERRLEN, "%s", msg);
			free(msg);
		}
	}
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	free(u);
	nn_s3_config_release(&own);
	return rc;
}

/* ---- HTTP PUT from a file ---- */

struct put {
	struct nn_xfer *x;
	uint64_t base;		/* bytes already sent in earlier parts */
	uint64_t total;
};

static int put_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			curl_off_t ulnow)
{
	struct put *p = arg;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	return nn_xfer_progress(p->x, p->base + (uint64_t)ulnow, p->total, 0) ? 1 : 0;
}

static size_t sink_body(char *p, size_t size, size_t n, void *arg)
{
	struct nn_buf *b = arg;
	size_t len = size * n, room = b->max - 1 - b->len;
	nn_buf_add(b, p, len < room ? len : room);
	return len;
}

int nn_storage_http_put(struct nn_xfer *x, const char *path, const char *url, char *err)
{
	char cerr[CURL_ERROR_SIZE];
	struct nn_buf body;
	struct put p = { x, 0, x->r->size };
	struct curl_slist *hdrs = NULL;
	long status = 0;
	CURLcode c;
	FILE *f;
	CURL *h;
	int rc;

	f = fopen(path, "rb");
	if (!f)
		return nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot open '%s': %s", path, strerror(errno));
	h = handle(x, cerr);
	if (!h) {
		fclose(f);
		return nn_xfer_fail(x, cerr[0] ? NN_EX_UNAVAILABLE : NN_EX_SOFTWARE, 0, err,
				    "%s", cerr[0] ? cerr : "cannot start libcurl");
	}
	nn_buf_init(&body, ERRBODY_MAX + 1);
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READDATA, f);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->r->size);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, put_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &p);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	c = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (c != CURLE_OK)
		rc = curl_fail(x, c, url, cerr, err);
	else if (status < 200 || status >= 300)
		rc = status_fail(x, status, url, body.data, err);
	else
		rc = 0;
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	nn_buf_release(&body);
	fclose(f);
	return rc;
}

/* ---- S3 PUT: single request or multipart ---- */

struct resp {
	struct nn_buf body;
	char etag[128];
};

static size_t resp_header(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n, i, j = 0;

	if (len > 5 && !strncasecmp(p, "etag:", 5)) {
		for (i = 5; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
			;
		for (; i < len && p[i] != '\r' && p[i] != '\n' && j + 1 < sizeof r->etag; i++)
			r->etag[j++] = p[i];
		r->etag[j] = '\0';
	}
	return len;
}

/* One signed S3 request with an in-memory body (may be empty). */
static int s3_request(struct nn_xfer *x, const struct nn_s3_config *c, const char *method,
		      const char *url, const char *shown, const void *data, size_t len,
		      struct resp *out, uint64_t base, char *err)
{
	char cerr[CURL_ERROR_SIZE], hex[65];
	unsigned char md[32];
	struct curl_slist *hdrs = NULL;
	struct put p = { x, base, x->r->size };
	long status = 0;
	CURLcode cc;
	CURL *h;
	int rc;

	h = handle(x, cerr);
	if (!h)
		return nn_xfer_fail(x, cerr[0] ? NN_EX_UNAVAILABLE : NN_EX_SOFTWARE, 0, err,
				    "%s", cerr[0] ? cerr : "cannot start libcurl");
	nn_sha256(md, data ? data : (const void *)"", len);
	nn_hex_encode(hex, md, 32);
	s3_auth(h, c, &hdrs, hex);
	/* No "Expect:" to suppress 100-continue: libcurl would sign the
	 * empty header it then leaves out of the request. */
	hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
	memset(out->etag, 0, sizeof out->etag);
	nn_buf_reset(&out->body);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "DELETE")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
	} else {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, data ? data : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, resp_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out->body);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, put_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &p);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK)
		rc = curl_fail(x, cc, shown, cerr, err);
	else if (status < 200 || status >= 300 ||
		 (out->body.data && strstr(out->body.data, "<Error>")))
		rc = status_fail(x, status < 300 ? 500 : status, shown, out->body.data, err);
	else
		rc = 0;
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return rc;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int s3_multipart(struct nn_xfer *x, const struct nn_s3_config *c, const char *path,
			const char *base, const char *shown, struct resp *rs, char *err)
{
	uint64_t part = x->o->part_size, off = 0;
	struct nn_buf done = NN_BUF_INIT;
	char *url, *id = NULL, *eid = NULL;
	unsigned char *buf = NULL;
	int fd = -1, rc = -1, n = 0;
	CURL *esc;

	url = nn_xasprintf("%s?uploads=", base);
	rc = s3_request(x, c, "POST", url, shown, NULL, 0, rs, 0, err);
	free(url);
	if (rc < 0)
		return -1;
	id = xml_field(rs->body.data, "UploadId");
	if (!id)
		return nn_xfer_fail(x, NN_EX_UNAVAILABLE, 1, err,
				    "'%s': no UploadId in the server's answer", shown);
	esc = curl_easy_init();
	eid = curl_easy_escape(esc, id, 0);
	curl_easy_cleanup(esc);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot open '%s': %s", path, strerror(errno));
		goto abort;
	}
	buf = nn_xmalloc(part);
	nn_buf_adds(&done, "<CompleteMultipartUpload>");
	while (off < x->r->size) {
		size_t len = (size_t)(x->r->size - off < part ? x->r->size - off : part), got = 0;
		int try;
		while (got < len) {
			ssize_t k = pread(fd, buf + got, len - got, (off_t)(off + got));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				rc = nn_xfer_fail(x, NN_EX_IOERR, 0, err, "cannot read '%s': %s", path,
						  k < 0 ? strerror(errno) : "file shrank");
				goto abort;
			}
			got += (size_t)k;
		}
		n++;
		url = nn_xasprintf("%s?partNumber=%d&uploadId=%s", base, n, eid);
		/* Each part has its own retries, so a blip does not restart
		 * the whole upload. */
		for (try = 0;; try++) {
			rc = s3_request(x, c, "PUT", url, shown, buf, len, rs, off, err);
			if (rc == 0 || !x->temporary || try >= x->o->retries)
				break;
			sleep_ms(x->o->backoff_ms << (try < 10 ? try : 10));
		}
		free(url);
		if (rc < 0)
			goto abort;
		if (!rs->etag[0]) {
			rc = nn_xfer_fail(x, NN_EX_UNAVAILABLE, 0, err, "'%s': part %d has no ETag",
					  shown, n);
			goto abort;
		}
		nn_buf_addf(&done, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", n,
			    rs->etag);
		off += len;
	}
	nn_buf_adds(&done, "</CompleteMultipartUpload>");
	url = nn_xasprintf("%s?uploadId=%s", base, eid);
	rc = s3_request(x, c, "POST", url, shown, done.data, done.len, rs, x->r->size, err);
	free(url);
	if (rc == 0)
		goto out;
abort:
	{
		char keep[NN_ERRLEN];
		int code = x->code, temp = x->temporary;
		snprintf(keep, sizeof keep, "%s", err ? err : "");
		url = nn_xasprintf("%s?uploadId=%s", base, eid);
		s3_request(x, c, "DELETE", url, shown, NULL, 0, rs, 0, NULL);
		free(url);
		if (err)
			snprintf(err, NN_ERRLEN, "%s", keep);
		x->code = code;
		x->temporary = temp;
		rc = -1;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	nn_buf_release(&done);
	curl_free(eid);
	free(id);
	return rc;
}

int nn_storage_s3_put(struct nn_xfer *x, const char *path, const char *url, char *err)
{
	struct nn_s3_config own;
	const struct nn_s3_config *c = NULL;
	struct resp rs;
	char *u, *data;
	size_t len;
	int rc;

	memset(&own, 0, sizeof own);
	if (s3_config(x, &own, &c, err) < 0)
		return -1;
	u = s3_url(c, url, err);
	if (!u) {
		nn_s3_config_release(&own);
		return nn_xfer_fail(x, NN_EX_DATAERR, 0, NULL, "%s", "");
	}
	nn_buf_init(&rs.body, ERRBODY_MAX + 1);
	if (x->r->size > x->o->part_size && x->o->part_size > 0) {
		rc = s3_multipart(x, c, path, u, url, &rs, err);
	} else {
		data = nn_read_file(path, (size_t)x->r->size + 1, &len, err);
		if (!data) {
			rc = nn_xfer_fail(x, NN_EX_IOERR, 0, NULL, "%s", "");
		} else {
			rc = s3_request(x, c, "PUT", u, url, data, len, &rs, 0, err);
			free(data);
		}
	}
	nn_buf_release(&rs.body);
	free(u);
	nn_s3_config_release(&own);
	return rc;
}

int nn_s3_create_bucket(const char *bucket, const struct nn_s3_config *conf, char *err)
{
	struct nn_storage_opts o;
	struct nn_storage_result r;
	struct nn_xfer x;
	struct nn_s3_config own;
	const struct nn_s3_config *c = NULL;
	struct resp rs;
	char *u, *shown;
	int rc;

	if (!bucket || !*bucket || strchr(bucket, '/'))
		return nn_seterr(err, "'%s' is not a bucket name", bucket ? bucket : "");
	nn_storage_opts_init(&o);
	o.s3 = conf;
	memset(&x, 0, sizeof x);
	memset(&r, 0, sizeof r);
	memset(&own, 0, sizeof own);
	x.o = &o;
	x.r = &r;
	if (s3_config(&x, &own, &c, err) < 0)
		return -1;
	u = nn_xasprintf("%s/%s", c->endpoint, bucket);
	shown = nn_xasprintf("s3://%s", bucket);
	x.url = shown;
	nn_buf_init(&rs.body, ERRBODY_MAX + 1);
	rc = s3_request(&x, c, "PUT", u, shown, NULL, 0, &rs, 0, err);
	nn_buf_release(&rs.body);
	free(u);
	free(shown);
	nn_s3_config_release(&own);
	return rc;
}
