/*
 * dockerapi — the Docker Engine REST client: libcurl over a unix socket
 * (one easy handle per client, reset between requests so the connection is
 * reused), JSON bodies through jv, answers read into capped buffers, the
 * engine's error "message" passed on in err, and the decoder of the
 * multiplexed log stream.  See dockerapi.h for the calls.
 */
#include "exec/dockerapi.h"
#include "json.h"

#include <curl/curl.h>
#include "dlcurl.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *nn_docker_default_host(void)
{
	const char *h = getenv("DOCKER_HOST");
	return nn_xstrdup(h && *h ? h : NN_DOCKER_DEFAULT_HOST);
}

int nn_docker_init(struct nn_docker *d, const char *host, char *err)
{
	char *h = host && *host ? nn_xstrdup(host) : nn_docker_default_host();
	const char *path;

	memset(d, 0, sizeof *d);
	if (!strncmp(h, "unix://", 7))
		path = h + 7;
	else if (h[0] == '/')
		path = h;
	else {
		nn_seterr(err, "docker host '%s': only unix:// sockets are supported", h);
		free(h);
		return -1;
	}
	if (path[0] != '/' || strlen(path) >= 108) {
		nn_seterr(err, "docker host '%s': expected an absolute socket path "
			  "shorter than 108 bytes", h);
		free(h);
		return -1;
	}
	d->socket = nn_xstrdup(path);
	d->host = h[0] == '/' ? nn_xasprintf("unix://%s", h) : nn_xstrdup(h);
	free(h);
	d->timeout_ms = 30000;
	return 0;
}

void nn_docker_release(struct nn_docker *d)
{
	if (d->curl)
		curl_easy_cleanup(d->curl);
	free(d->host);
	free(d->socket);
	memset(d, 0, sizeof *d);
}

/* ---- requests ------------------------------------------------------- */

static size_t to_buf(char *p, size_t size, size_t n, void *arg)
{
	struct nn_buf *b = arg;
	if (nn_buf_add(b, p, size * n) < 0)
		return 0;	/* over the cap: curl stops with a write error */
	return size * n;
}

/* The log stream: frames go to the demuxer on a 200 answer, anything
 * else (an error document) to a small buffer. */
struct logsink {
	CURL *c;
	struct nn_docker_demux m;
	struct nn_buf errbody;
};

static size_t to_demux(char *p, size_t size, size_t n, void *arg)
{
	struct logsink *k = arg;
	long status = 0;
	curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		nn_buf_add(&k->errbody, p, size * n);	/* the rest is dropped */
		return size * n;
	}
	if (nn_docker_demux_feed(&k->m, p, size * n) < 0)
		return 0;
	return size * n;
}

/* Set up the handle for one request; the caller adds the write callback. */
static CURL *begin(struct nn_docker *d, const char *method, const char *path,
		   const char *body, struct curl_slist **hdrs, char *err)
{
	CURL *c;
	char *url;

	if (!d->curl) {
		char why[NN_ERRLEN];
		if (nn_dlcurl_load(why) < 0) {
			nn_seterr(err, "docker: %s", why);
			return NULL;
		}
		d->curl = curl_easy_init();
		if (!d->curl) {
			nn_seterr(err, "docker: cannot initialise libcurl");
			return NULL;
		}
	} else {
		curl_easy_reset(d->curl);
	}
	c = d->curl;
	url = nn_xasprintf("http://localhost%s%s", NN_DOCKER_API, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->socket);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	if (d->timeout_ms > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, d->timeout_ms);
	*hdrs = NULL;
	if (!strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
		if (body)
			*hdrs = curl_slist_append(*hdrs, "Content-Type: application/json");
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	/* No "Expect: 100-continue" round trip for small bodies. */
	*hdrs = curl_slist_append(*hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
	return c;
}

/* Turn a failed transfer or an HTTP error answer into err. */
static int failed(struct nn_docker *d, CURLcode cc, const char *what, struct nn_buf *resp,
		  char *err)
{
	if (cc != CURLE_OK) {
		if (cc == CURLE_COULDNT_CONNECT)
			return nn_seterr(err, "docker: cannot connect to the engine at %s: %s",
					 d->host, strerror(errno ? errno : ECONNREFUSED));
		return nn_seterr(err, "docker: %s: %s (engine at %s)", what,
				 curl_easy_strerror(cc), d->host);
	}
	{
		jv o = resp && resp->len ? nn_json_parse(resp->data, resp->len, NULL) : jv_invalid();
		jv m = jv_get_kind(o) == JV_KIND_OBJECT
			? jv_object_get(jv_copy(o), jv_string("message")) : jv_invalid();
		if (jv_get_kind(m) == JV_KIND_STRING)
			nn_seterr(err, "docker: %s", jv_string_value(m));
		else
			nn_seterr(err, "docker: %s: HTTP %ld from the engine at %s", what,
				  d->status, d->host);
		jv_free(m);
		jv_free(o);
	}
	return -1;
}

int nn_docker_call(struct nn_docker *d, const char *method, const char *path, jv body,
		   jv *out, char *err)
{
	struct nn_buf resp;
	struct curl_slist *hdrs;
	char *text = NULL;
	CURL *c;
	CURLcode cc;
	char what[160];
	int rc = -1;

	snprintf(what, sizeof what, "%s %.120s", method, path);
	d->status = 0;
	if (out)
		*out = jv_invalid();
	if (jv_is_valid(body))
		text = nn_json_dump(body);
	jv_free(body);
	c = begin(d, method, path, text, &hdrs, err);
	if (!c) {
		free(text);
		return -1;
	}
	nn_buf_init(&resp, NN_DOCKER_RESPONSE_MAX);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	errno = 0;
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &d->status);
	curl_slist_free_all(hdrs);
	free(text);
	if (cc == CURLE_WRITE_ERROR) {
		nn_seterr(err, "docker: %s: answer longer than %d bytes", what,
			  NN_DOCKER_RESPONSE_MAX);
		goto out;
	}
	if (cc != CURLE_OK || d->status < 200 || d->status > 299) {
		failed(d, cc, what, &resp, err);
		goto out;
	}
	if (out) {
		jv v = resp.len ? nn_json_parse(resp.data, resp.len, NULL) : jv_null();
		if (!jv_is_valid(v)) {
			jv_free(v);
			v = jv_null();
		}
		*out = v;
	}
	rc = (int)d->status;
out:
	nn_buf_release(&resp);
	return rc;
}

/* ---- calls ---------------------------------------------------------- */

int nn_docker_ping(struct nn_docker *d, char *err)
{
	struct nn_buf resp;
	struct curl_slist *hdrs;
	CURL *c = begin(d, "GET", "/_ping", NULL, &hdrs, err);
	CURLcode cc;
	int rc = -1;

	if (!c)
		return -1;
	nn_buf_init(&resp, 4096);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	errno = 0;
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &d->status);
	curl_slist_free_all(hdrs);
	if (cc != CURLE_OK || d->status != 200)
		failed(d, cc, "ping", &resp, err);
	else if (resp.len < 2 || strncmp(resp.data, "OK", 2))
		nn_seterr(err, "docker: the engine at %s answered the ping with '%.40s'",
			  d->host, resp.data);
	else
		rc = 0;
	nn_buf_release(&resp);
	return rc;
}

int nn_docker_image_exists(struct nn_docker *d, const char *image, jv *out, char *err)
{
	char *path = nn_xasprintf("/images/%s/json", image);
	jv v;
	int rc = nn_docker_call(d, "GET", path, jv_invalid(), &v, err);
	free(path);
	if (out)
		*out = jv_invalid();
	if (rc < 0)
		return d->status == 404 ? 0 : -1;
	if (out)
		*out = v;
	else
		jv_free(v);
	return 1;
}

/* An id from the engine (v consumed): hex, at most 64 characters. */
static int copy_id(jv v, char id[65], char *err)
{
	const char *s;
	size_t n;
	int rc = 0;
	if (jv_get_kind(v) != JV_KIND_STRING) {
		jv_free(v);
		return nn_seterr(err, "docker: the engine did not say the container's id");
	}
	s = jv_string_value(v);
	n = strspn(s, "0123456789abcdef");
	if (n == 0 || n > 64 || s[n])
		rc = nn_seterr(err, "docker: the engine gave a strange container id");
	else
		memcpy(id, s, n + 1);
	jv_free(v);
	return rc;
}

int nn_docker_create(struct nn_docker *d, const char *name, jv config, char id[65], char *err)
{
	char *path;
	jv out;
	int rc;

	if (name) {
		char *e = curl_easy_escape(NULL, name, 0);
		path = nn_xasprintf("/containers/create?name=%s", e);
		curl_free(e);
	} else {
		path = nn_xstrdup("/containers/create");
	}
	rc = nn_docker_call(d, "POST", path, config, &out, err);
	free(path);
	if (rc < 0)
		return -1;
	rc = copy_id(jv_object_get(jv_copy(out), jv_string("Id")), id, err);
	jv_free(out);
	return rc;
}

int nn_docker_start(struct nn_docker *d, const char *id, char *err)
{
	char *path = nn_xasprintf("/containers/%s/start", id);
	int rc = nn_docker_call(d, "POST", path, jv_invalid(), NULL, err);
	free(path);
	return rc < 0 ? -1 : 0;
}

int nn_docker_inspect(struct nn_docker *d, const char *id, jv *out, char *err)
{
	char *path = nn_xasprintf("/containers/%s/json", id);
	int rc = nn_docker_call(d, "GET", path, jv_invalid(), out, err);
	free(path);
	return rc < 0 ? -1 : 0;
}

int nn_docker_kill(struct nn_docker *d, const char *id, int sig, char *err)
{
	char *path = nn_xasprintf("/containers/%s/kill?signal=%d", id, sig);
	int rc = nn_docker_call(d, "POST", path, jv_invalid(), NULL, err);
	free(path);
	/* 409: not running (Docker); Podman says 500 "... state ... exited". */
	if (rc < 0 && (d->status == 409 || d->status == 404 ||
		       (err && (strstr(err, "not running") || strstr(err, "state")))))
		return 0;
	return rc < 0 ? -1 : 0;
}

int nn_docker_remove(struct nn_docker *d, const char *id, char *err)
{
	char *path = nn_xasprintf("/containers/%s?force=1&v=1", id);
	int rc = nn_docker_call(d, "DELETE", path, jv_invalid(), NULL, err);
	free(path);
	if (rc < 0 && d->status == 404)
		return 0;
	return rc < 0 ? -1 : 0;
}

int nn_docker_list(struct nn_docker *d, const char *const *labels, jv *out, char *err)
{
	jv f = jv_array(), filters;
	char *text, *esc, *path;
	int rc;

	for (size_t i = 0; labels && labels[i]; i++)
		f = jv_array_append(f, jv_string(labels[i]));
	filters = jv_object_set(jv_object(), jv_string("label"), f);
	text = nn_json_dump(filters);
	jv_free(filters);
	esc = curl_easy_escape(NULL, text, 0);
	free(text);
	path = nn_xasprintf("/containers/json?all=1&filters=%s", esc);
	curl_free(esc);
	rc = nn_docker_call(d, "GET", path, jv_invalid(), out, err);
	free(path);
	if (rc < 0)
		return -1;
	if (jv_get_kind(*out) != JV_KIND_ARRAY) {
		jv_free(*out);
		*out = jv_invalid();
		return nn_seterr(err, "docker: the container list is not an array");
	}
	return 0;
}

int nn_docker_stats(struct nn_docker *d, const char *id, jv *out, char *err)
{
	char *path = nn_xasprintf("/containers/%s/stats?stream=0&one-shot=1", id);
	int rc = nn_docker_call(d, "GET", path, jv_invalid(), out, err);
	free(path);
	return rc < 0 ? -1 : 0;
}

/* ---- logs ------------------------------------------------------------ */

void nn_docker_demux_init(struct nn_docker_demux *m, int out_fd, int err_fd)
{
	memset(m, 0, sizeof *m);
	m->out_fd = out_fd;
	m->err_fd = err_fd;
}

int nn_docker_demux_feed(struct nn_docker_demux *m, const char *p, size_t n)
{
	if (m->bad)
		return -1;
	while (n) {
		if (m->left == 0) {
			size_t take = 8 - m->hlen;
			if (take > n)
				take = n;
			memcpy(m->hdr + m->hlen, p, take);
			m->hlen += take;
			p += take;
			n -= take;
			if (m->hlen < 8)
				break;
			m->hlen = 0;
			if (m->hdr[0] > 2 || m->hdr[1] || m->hdr[2] || m->hdr[3]) {
				m->bad = 1;
				return -1;
			}
			m->stream = m->hdr[0];
			m->left = (uint32_t)m->hdr[4] << 24 | (uint32_t)m->hdr[5] << 16 |
				  (uint32_t)m->hdr[6] << 8 | (uint32_t)m->hdr[7];
			continue;
		}
		{
			size_t take = n < m->left ? n : m->left;
			int fd = m->stream == 2 ? m->err_fd : m->out_fd;
			if (fd >= 0 && nn_write_all(fd, p, take) < 0) {
				m->bad = 1;
				return -1;
			}
			m->left -= (uint32_t)take;
			p += take;
			n -= take;
		}
	}
	return 0;
}

int nn_docker_logs(struct nn_docker *d, const char *id, int follow, int out_fd, int err_fd,
		   char *err)
{
	struct logsink k;
	struct curl_slist *hdrs;
	char *path = nn_xasprintf("/containers/%s/logs?stdout=1&stderr=1%s", id,
				  follow ? "&follow=1" : "");
	CURL *c = begin(d, "GET", path, NULL, &hdrs, err);
	CURLcode cc;
	char what[160];
	int rc = -1;

	snprintf(what, sizeof what, "logs of %.64s", id);
	free(path);
	if (!c)
		return -1;
	k.c = c;
	nn_docker_demux_init(&k.m, out_fd, err_fd);
	nn_buf_init(&k.errbody, 4096);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_demux);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
	if (follow)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 0L);
	errno = 0;
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &d->status);
	curl_slist_free_all(hdrs);
	if (cc == CURLE_WRITE_ERROR && k.m.bad)
		nn_seterr(err, "docker: %s: corrupt log stream or failed write", what);
	else if (cc != CURLE_OK || d->status != 200)
		failed(d, cc, what, &k.errbody, err);
	else if (k.m.hlen || k.m.left)
		nn_seterr(err, "docker: %s: the stream ended inside a frame", what);
	else
		rc = 0;
	nn_buf_release(&k.errbody);
	return rc;
}
