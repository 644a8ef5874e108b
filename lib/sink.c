/*
 * sink — one bounded queue and one worker thread per sink, delivering lines
 * to syslog (RFC 5424: unix datagram, UDP, or TCP with RFC 6587 octet
 * counting), to an Influx line-protocol endpoint over HTTP, or to an
 * Elasticsearch _bulk endpoint as NDJSON.  The caller's thread only copies a
 * line into the queue (nn_sink_push); the worker takes batches, formats them,
 * delivers them with timeouts, and keeps a batch that failed for a retry
 * after an exponential backoff with jitter, while the queue keeps its bound
 * by dropping (and counting) new lines.  All waits of the worker are
 * interruptible: closing with no drain time aborts a request in flight
 * through an eventfd that every poll includes.  See sink.h for the API.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "dlcurl.h"
#include <jv.h>
#include "sink.h"
#include "json.h"
#include "util.h"

#define BATCH_BYTES (4u << 20)		/* body size of one request */
#define RESP_MAX (16u << 20)		/* response body kept for parsing */
#define SYSLOG_DEFAULT_PORT "514"

enum kind { K_UNIX, K_TCP, K_UDP, K_INFLUX, K_ESBULK };
enum { ST_RETRY = 0, ST_SENT = 1, ST_REJECTED = 2 };

struct item {
	char *data;
	size_t len;
	int64_t t;		/* monotonic ms when pushed */
};

struct nn_sink {
	char *spec;
	enum kind kind;
	struct nn_sink_opts o;
	char *app, *host;		/* syslog header fields (sanitized) */
	int facility;
	char *path;			/* unix socket path */
	char *nhost, *nport;		/* tcp/udp */
	int fd;				/* syslog socket, -1 when closed */
	char *url;			/* http */
	char *index;			/* esbulk */
	char *action;			/* esbulk action line, with "\n" */
	CURL *easy;
	CURLM *multi;
	struct curl_slist *hdrs;
	int wakefd;

	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* the worker waits on it */
	pthread_cond_t idle;		/* flush waits on it */
	/* under mu */
	struct item *q;
	size_t qcap, qhead, qlen, qbytes;
	size_t inflight, inflight_bytes;
	int stopping, abort, flushing;
	int64_t deadline;		/* when stopping: give up at this time */
	struct nn_sink_stats st;
	uint64_t drop_seen;		/* dropped count at the last drop log */
	/* worker only */
	int64_t drop_log_at, trouble_log_at, drop_since;
	int trouble;			/* a trouble line was logged, not yet cleared */
	uint64_t trouble_fails;
	unsigned seed;			/* jitter */
	char why[NN_ERRLEN];
};

/* ---- small helpers ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static void sink_log(struct nn_sink *s, int warn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sink_log(struct nn_sink *s, int warn, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!s->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	s->o.log(s->o.log_arg, warn, msg);
}

static void lock(struct nn_sink *s) { pthread_mutex_lock(&s->mu); }
static void unlock(struct nn_sink *s) { pthread_mutex_unlock(&s->mu); }

/* Wait on cv until the monotonic time `until` (ms; < 0: forever). */
static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until)
{
	struct timespec ts;

	if (until < 0) {
		pthread_cond_wait(cv, mu);
		return;
	}
	ts.tv_sec = (time_t)(until / 1000);
	ts.tv_nsec = (long)(until % 1000) * 1000000L;
	pthread_cond_timedwait(cv, mu, &ts);
}

/* Should the worker stop what it is doing now?  Under mu. */
static int must_stop(struct nn_sink *s)
{
	return s->abort || (s->stopping && nn_mono_ms() >= s->deadline);
}

static int stop_now(struct nn_sink *s)
{
	int r;

	lock(s);
	r = must_stop(s);
	unlock(s);
	return r;
}

/* Milliseconds left before the worker must give up (timeout when not
 * stopping).  At least 1. */
static int64_t time_left(struct nn_sink *s, int64_t timeout)
{
	int64_t left = timeout;

	lock(s);
	if (s->stopping) {
		int64_t d = s->deadline - nn_mono_ms();
		if (d < left)
			left = d;
	}
	unlock(s);
	return left < 1 ? 1 : left;
}

/* Drops and trouble, at most once per interval each; worker only. */
static void log_drops(struct nn_sink *s)
{
	uint64_t d, held;
	int64_t now = nn_mono_ms();

	if (!s->o.log || (s->drop_log_at && now - s->drop_log_at < s->o.log_interval_ms))
		return;
	lock(s);
	d = s->st.dropped - s->drop_seen;
	s->drop_seen = s->st.dropped;
	held = s->qlen + s->inflight;
	unlock(s);
	if (!d)
		return;
	if (s->drop_log_at)
		sink_log(s, 1, "dropped %llu lines in the last %lld s (queue full: %llu held)",
			 (unsigned long long)d, (long long)((now - s->drop_since + 999) / 1000),
			 (unsigned long long)held);
	else
		sink_log(s, 1, "dropped %llu lines (queue full: %llu held)",
			 (unsigned long long)d, (unsigned long long)held);
	s->drop_log_at = now;
	s->drop_since = now;
}

static void log_trouble(struct nn_sink *s, int64_t delay)
{
	int64_t now = nn_mono_ms();

	s->trouble_fails++;
	if (!s->o.log || (s->trouble_log_at && now - s->trouble_log_at < s->o.log_interval_ms))
		return;
	sink_log(s, 1, "cannot deliver: %s; retrying in %lld ms", s->why, (long long)delay);
	s->trouble_log_at = now;
	s->trouble = 1;
}

static void log_recovered(struct nn_sink *s)
{
	if (s->trouble)
		sink_log(s, 0, "delivering again after %llu failed attempts",
			 (unsigned long long)s->trouble_fails);
	s->trouble = 0;
	s->trouble_fails = 0;
}

/* Wait for fd to become ready (events) or the sink to be stopped:
 * 1 ready, 0 timed out, -1 stopped (s->why set). */
static int wait_fd(struct nn_sink *s, int fd, short events, int64_t timeout)
{
	int64_t end = nn_mono_ms() + time_left(s, timeout);

	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = events },
				       { .fd = s->wakefd, .events = POLLIN } };
		int64_t left = end - nn_mono_ms();
		int r;

		if (stop_now(s)) {
			snprintf(s->why, sizeof s->why, "stopped");
			return -1;
		}
		if (left <= 0)
			return 0;
		r = poll(p, 2, (int)(left > 250 ? 250 : left));
		if (r < 0 && errno != EINTR)
			return 0;
		if (r > 0 && p[0].revents)
			return 1;
		log_drops(s);
	}
}

/* ---- syslog ---- */

static const struct { const char *name; int code; } facilities[] = {
	{ "kern", 0 }, { "user", 1 }, { "mail", 2 }, { "daemon", 3 },
	{ "auth", 4 }, { "syslog", 5 }, { "lpr", 6 }, { "news", 7 },
	{ "uucp", 8 }, { "cron", 9 }, { "authpriv", 10 }, { "ftp", 11 },
	{ "local0", 16 }, { "local1", 17 }, { "local2", 18 }, { "local3", 19 },
	{ "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};

static const struct { const char *name; int sev; } severities[] = {
	{ "emerg", 0 }, { "alert", 1 }, { "crit", 2 }, { "error", 3 },
	{ "err", 3 }, { "warn", 4 }, { "warning", 4 }, { "notice", 5 },
	{ "info", 6 }, { "debug", 7 },
};

/* An RFC 5424 header field: printable US-ASCII without spaces, at most
 * max characters, "-" when empty.  Caller frees. */
static char *header_field(const char *v, size_t len, size_t max)
{
	char *out = nn_xmalloc(max + 1);
	size_t i, n = 0;

	for (i = 0; i < len && n < max; i++) {
		unsigned char c = (unsigned char)v[i];
		out[n++] = (c >= 33 && c <= 126) ? (char)c : '_';
	}
	if (!n)
		out[n++] = '-';
	out[n] = 0;
	return out;
}

/* Append one RFC 5424 message for the event JSON line to b. */
static void syslog_format(struct nn_sink *s, const struct item *it, struct nn_buf *b)
{
	jv ev = nn_json_parse(it->data, it->len, NULL);
	int sev = 6;
	int64_t ts = nn_now_ms();
	char stamp[40], *msgid = NULL;
	struct tm tm;
	time_t secs;

	if (jv_get_kind(ev) == JV_KIND_OBJECT) {
		jv lv = jv_object_get(jv_copy(ev), jv_string("level"));
		jv kd = jv_object_get(jv_copy(ev), jv_string("kind"));
		jv t = jv_object_get(jv_copy(ev), jv_string("ts"));
		if (jv_get_kind(lv) == JV_KIND_STRING)
			for (size_t i = 0; i < sizeof severities / sizeof *severities; i++)
				if (!strcmp(jv_string_value(lv), severities[i].name))
					sev = severities[i].sev;
		if (jv_get_kind(kd) == JV_KIND_STRING)
			msgid = header_field(jv_string_value(kd),
					     (size_t)jv_string_length_bytes(jv_copy(kd)), 32);
		if (jv_get_kind(t) == JV_KIND_NUMBER && jv_number_value(t) > 0 &&
		    jv_number_value(t) < 253402300800000.0)
			ts = (int64_t)jv_number_value(t);
		jv_free(lv);
		jv_free(kd);
		jv_free(t);
	}
	jv_free(ev);
	secs = (time_t)(ts / 1000);
	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	nn_buf_addf(b, "<%d>1 %s.%03dZ %s %s %ld %s - ", s->facility * 8 + sev, stamp,
		    (int)(ts % 1000), s->host, s->app, (long)getpid(), msgid ? msgid : "-");
	nn_buf_add(b, it->data, it->len);
	free(msgid);
}

static void syslog_disconnect(struct nn_sink *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static int syslog_connect(struct nn_sink *s)
{
	int fd = -1, r;

	if (s->kind == K_UNIX) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			snprintf(s->why, sizeof s->why, "connect %s: %s", s->path, strerror(errno));
			goto fail;
		}
	} else {
		struct addrinfo hints = { .ai_family = AF_UNSPEC,
			.ai_socktype = s->kind == K_TCP ? SOCK_STREAM : SOCK_DGRAM };
		struct addrinfo *ai = NULL;
		int soerr = 0;
		socklen_t sl = sizeof soerr;

		r = getaddrinfo(s->nhost, s->nport, &hints, &ai);
		if (r) {
			snprintf(s->why, sizeof s->why, "%s: %s", s->nhost, gai_strerror(r));
			return -1;
		}
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			snprintf(s->why, sizeof s->why, "socket: %s", strerror(errno));
			freeaddrinfo(ai);
			goto fail;
		}
		r = connect(fd, ai->ai_addr, ai->ai_addrlen);
		freeaddrinfo(ai);
		if (r < 0 && errno != EINPROGRESS) {
			snprintf(s->why, sizeof s->why, "connect %s:%s: %s", s->nhost, s->nport,
				 strerror(errno));
			goto fail;
		}
		if (r < 0) {
			r = wait_fd(s, fd, POLLOUT, s->o.timeout_ms);
			if (r == 0)
				snprintf(s->why, sizeof s->why, "connect %s:%s: timed out",
					 s->nhost, s->nport);
			if (r <= 0)
				goto fail;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
				snprintf(s->why, sizeof s->why, "connect %s:%s: %s", s->nhost,
					 s->nport, strerror(soerr ? soerr : errno));
				goto fail;
			}
		}
	}
	s->fd = fd;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The peer of a stream socket closed it (or reset it): a write would
 * seem to succeed and the data would be lost. */
static int stream_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c[256];

	while (poll(&p, 1, 0) > 0) {
		ssize_t n = recv(fd, c, sizeof c, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
		if (n < 0)
			return 0;
	}
	return 0;
}

/* Send everything in b on the non-blocking fd; returns bytes sent (all of
 * them on success), with s->why set when short. */
static size_t send_all(struct nn_sink *s, const char *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = send(s->fd, p + off, n - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			int r = wait_fd(s, s->fd, POLLOUT, s->o.timeout_ms);
			if (r > 0)
				continue;
			if (r == 0)
				snprintf(s->why, sizeof s->why, "send: timed out");
			break;
		}
		snprintf(s->why, sizeof s->why, "send: %s", strerror(errno));
		break;
	}
	return off;
}

static void syslog_deliver(struct nn_sink *s, struct item *b, size_t n, unsigned char *st)
{
	struct nn_buf msg = NN_BUF_INIT, frame = NN_BUF_INIT;
	size_t i;

	if (s->fd >= 0 && s->kind == K_TCP && stream_gone(s->fd))
		syslog_disconnect(s);
	if (s->fd < 0 && syslog_connect(s) < 0)
		return;
	if (s->kind != K_TCP) {
		for (i = 0; i < n; i++) {
			nn_buf_reset(&msg);
			syslog_format(s, &b[i], &msg);
			if (send_all(s, msg.data, msg.len) != msg.len) {
				if (errno == EMSGSIZE) {
					st[i] = ST_REJECTED;
					continue;
				}
				syslog_disconnect(s);
				break;
			}
			st[i] = ST_SENT;
		}
	} else {
		/* RFC 6587 octet counting: "LEN SP MSG" per message, the whole
		 * batch in one stream write. */
		size_t *ends = nn_xcalloc(n, sizeof *ends), sent;
		for (i = 0; i < n; i++) {
			nn_buf_reset(&msg);
			syslog_format(s, &b[i], &msg);
			nn_buf_addf(&frame, "%zu ", msg.len);
			nn_buf_add(&frame, msg.data, msg.len);
			ends[i] = frame.len;
		}
		sent = send_all(s, frame.data, frame.len);
		for (i = 0; i < n && ends[i] <= sent; i++)
			st[i] = ST_SENT;
		if (sent != frame.len)
			syslog_disconnect(s);	/* a partial frame: start clean */
		free(ends);
	}
	nn_buf_release(&msg);
	nn_buf_release(&frame);
}

/* ---- HTTP: influx and esbulk ---- */

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct nn_buf *b = arg;

	if (nn_buf_add(b, p, sz * nm) < 0)
		return 0;
	return sz * nm;
}

/* Per-item results from an Elasticsearch _bulk response. */
static void esbulk_items(struct nn_sink *s, const struct nn_buf *resp, size_t n,
			 unsigned char *st, size_t *refused)
{
	jv r = nn_json_parse(resp->data ? resp->data : "", resp->len, NULL);
	jv items;
	size_t i, m;

	for (i = 0; i < n; i++)
		st[i] = ST_SENT;
	if (jv_get_kind(r) != JV_KIND_OBJECT) {
		jv_free(r);
		return;		/* 2xx without a body we can read: taken */
	}
	if (jv_get_kind(jv_object_get(jv_copy(r), jv_string("errors"))) != JV_KIND_TRUE) {
		jv_free(r);
		return;
	}
	items = jv_object_get(r, jv_string("items"));
	m = jv_get_kind(items) == JV_KIND_ARRAY ? (size_t)jv_array_length(jv_copy(items)) : 0;
	for (i = 0; i < m && i < n; i++) {
		jv it = jv_array_get(jv_copy(items), (int)i);
		int status = 200;
		if (jv_get_kind(it) == JV_KIND_OBJECT) {
			int k = jv_object_iter(it);
			if (jv_object_iter_valid(it, k)) {
				/* borrows it (jq 1.6) */
				jv a = jv_object_iter_value(it, k);
				jv sv = jv_get_kind(a) == JV_KIND_OBJECT ?
					jv_object_get(a, jv_string("status")) : (jv_free(a), jv_invalid());
				if (jv_get_kind(sv) == JV_KIND_NUMBER)
					status = (int)jv_number_value(sv);
				jv_free(sv);
			}
		}
		jv_free(it);
		if (status >= 200 && status < 300)
			st[i] = ST_SENT;
		else if (status == 429 || status >= 500)
			st[i] = ST_RETRY;
		else {
			st[i] = ST_REJECTED;
			(*refused)++;
		}
	}
	jv_free(items);
}

static void http_deliver(struct nn_sink *s, struct item *b, size_t n, unsigned char *st)
{
	struct nn_buf body = NN_BUF_INIT, resp = NN_BUF_INIT;
	struct curl_waitfd wf = { .fd = s->wakefd, .events = CURL_WAIT_POLLIN };
	char cerr[CURL_ERROR_SIZE] = "";
	CURLcode res = CURLE_OK;
	CURLMsg *m;
	long code = 0;
	size_t i, refused = 0;
	int running = 1, left, stopped = 0;

	nn_buf_init(&resp, RESP_MAX);
	for (i = 0; i < n; i++) {
		if (s->kind == K_ESBULK)
			nn_buf_adds(&body, s->action);
		nn_buf_add(&body, b[i].data, b[i].len);
		nn_buf_addc(&body, '\n');
	}
	curl_easy_reset(s->easy);
	curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body.data);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "nunet/" NN_VERSION);
	curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)time_left(s, s->o.timeout_ms));
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)time_left(s, s->o.timeout_ms));
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_multi_add_handle(s->multi, s->easy);
	while (running) {
		if (curl_multi_perform(s->multi, &running) != CURLM_OK)
			break;
		if (!running)
			break;
		if (stop_now(s)) {
			stopped = 1;
			break;
		}
		curl_multi_poll(s->multi, &wf, 1, 250, NULL);
		log_drops(s);
	}
	while ((m = curl_multi_info_read(s->multi, &left)))
		if (m->msg == CURLMSG_DONE)
			res = m->data.result;
	curl_multi_remove_handle(s->multi, s->easy);
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	if (stopped) {
		snprintf(s->why, sizeof s->why, "stopped");
		goto out;
	}
	if (res != CURLE_OK) {
		snprintf(s->why, sizeof s->why, "%s", cerr[0] ? cerr : curl_easy_strerror(res));
		goto out;
	}
	if (code == 408 || code == 429 || code >= 500) {
		snprintf(s->why, sizeof s->why, "HTTP %ld from %s", code, s->url);
		goto out;
	}
	if (code < 200 || code >= 300) {
		for (i = 0; i < n; i++)
			st[i] = ST_REJECTED;
		refused = n;
	} else if (s->kind == K_ESBULK) {
		esbulk_items(s, &resp, n, st, &refused);
	} else {
		for (i = 0; i < n; i++)
			st[i] = ST_SENT;
	}
	if (refused) {
		/* not retried: the same lines would be refused again */
		size_t k = resp.len > 200 ? 200 : resp.len;
		for (i = 0; i < k; i++)
			if ((unsigned char)resp.data[i] < 32)
				resp.data[i] = ' ';
		sink_log(s, 1, "refused %zu of %zu lines (HTTP %ld): %.*s", refused, n, code,
			 (int)k, resp.data ? resp.data : "");
	}
	if (s->kind == K_ESBULK) {
		for (i = 0; i < n && st[i] != ST_RETRY; i++)
			;
		if (i < n)
			snprintf(s->why, sizeof s->why, "_bulk items refused for now (429 or 5xx)");
	}
out:
	nn_buf_release(&body);
	nn_buf_release(&resp);
}

/* ---- the worker ---- */

static void deliver(struct nn_sink *s, struct item *b, size_t n, unsigned char *st)
{
	memset(st, ST_RETRY, n);
	if (s->kind == K_INFLUX || s->kind == K_ESBULK)
		http_deliver(s, b, n, st);
	else
		syslog_deliver(s, b, n, st);
}

static int64_t backoff(struct nn_sink *s, unsigned attempt)
{
	int64_t d = s->o.backoff_min_ms;
	uint32_t r;

	while (attempt-- > 1 && d < s->o.backoff_max_ms)
		d *= 2;
	if (d > s->o.backoff_max_ms)
		d = s->o.backoff_max_ms;
	if (d < 1)
		d = 1;
	/* "equal jitter": half fixed, half random, so retries from many
	 * nodes spread out but still back off */
	r = (uint32_t)rand_r(&s->seed);
	return d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1));
}

/* Take the next batch into *b (at most batch_max lines and BATCH_BYTES
 * unless a single line is larger).  Under mu.  Returns its size. */
static size_t take(struct nn_sink *s, struct item *b)
{
	size_t n = 0, bytes = 0;

	while (s->qlen && n < s->o.batch_max) {
		struct item *it = &s->q[s->qhead];
		if (n && bytes + it->len > BATCH_BYTES)
			break;
		b[n++] = *it;
		bytes += it->len;
		s->qhead = (s->qhead + 1) % s->qcap;
		s->qlen--;
		s->qbytes -= it->len;
	}
	s->inflight = n;
	s->inflight_bytes = bytes;
	return n;
}

static void *worker(void *arg)
{
	struct nn_sink *s = arg;
	struct item *b = nn_xcalloc(s->o.batch_max, sizeof *b);
	unsigned char *st = nn_xmalloc(s->o.batch_max);
	uint64_t left = 0, full;

	for (;;) {
		size_t n = 0, i, k;
		unsigned attempt = 0;

		lock(s);
		for (;;) {
			int64_t now = nn_mono_ms(), until = -1;
			if (must_stop(s))
				break;
			if (s->qlen && (s->qlen >= s->o.batch_max || s->stopping || s->flushing ||
					now - s->q[s->qhead].t >= s->o.flush_ms))
				break;
			if (s->stopping && !s->qlen)
				break;
			if (s->qlen)
				until = s->q[s->qhead].t + s->o.flush_ms;
			if (s->st.dropped != s->drop_seen && s->o.log) {
				int64_t at = s->drop_log_at ? s->drop_log_at + s->o.log_interval_ms : now;
				if (at <= now) {
					unlock(s);
					log_drops(s);
					lock(s);
					continue;
				}
				if (until < 0 || at < until)
					until = at;
			}
			if (s->stopping && (until < 0 || s->deadline < until))
				until = s->deadline;
			timed_wait(&s->cv, &s->mu, until);
		}
		if (must_stop(s) || (s->stopping && !s->qlen)) {
			unlock(s);
			break;
		}
		n = take(s, b);
		unlock(s);

		while (n) {
			size_t sent = 0, refused = 0, done_bytes = 0;

			deliver(s, b, n, st);
			/* free outside the lock: pushes never wait for it */
			for (i = k = 0; i < n; i++) {
				if (st[i] == ST_RETRY) {
					b[k++] = b[i];
					continue;
				}
				if (st[i] == ST_SENT)
					sent++;
				else
					refused++;
				done_bytes += b[i].len;
				free(b[i].data);
			}
			lock(s);
			s->st.sent += sent;
			s->st.rejected += refused;
			s->inflight_bytes -= done_bytes;
			s->inflight = k;
			if (k < n && !k)
				pthread_cond_broadcast(&s->idle);
			if (k)
				s->st.failed++;
			unlock(s);
			if (k < n && k == 0)
				log_recovered(s);
			n = k;
			if (!n)
				break;
			if (stop_now(s))
				break;
			{
				int64_t d = backoff(s, ++attempt), until;
				log_trouble(s, d);
				until = nn_mono_ms() + d;
				lock(s);
				while (!must_stop(s) && nn_mono_ms() < until) {
					int64_t u = until;
					if (s->stopping && s->deadline < u)
						u = s->deadline;
					if (s->o.log && s->st.dropped != s->drop_seen) {
						int64_t at = s->drop_log_at ?
							s->drop_log_at + s->o.log_interval_ms : 0;
						if (at <= nn_mono_ms()) {
							unlock(s);
							log_drops(s);
							lock(s);
							continue;
						}
						if (at < u)
							u = at;
					}
					timed_wait(&s->cv, &s->mu, u);
				}
				unlock(s);
			}
		}
		if (n) {
			/* stopped with a batch still failing */
			for (i = 0; i < n; i++)
				free(b[i].data);
			lock(s);
			s->inflight = 0;
			s->inflight_bytes = 0;
			unlock(s);
			left = n;
			break;
		}
		lock(s);
		if (!s->qlen)
			pthread_cond_broadcast(&s->idle);
		unlock(s);
	}
	/* what is left when stopping is dropped, and said once, whatever the
	 * interval: these are the last words of the sink */
	lock(s);
	full = s->st.dropped - s->drop_seen;
	while (s->qlen) {
		free(s->q[s->qhead].data);
		s->qhead = (s->qhead + 1) % s->qcap;
		s->qlen--;
		left++;
	}
	s->st.dropped += left;
	s->drop_seen = s->st.dropped;
	s->qbytes = 0;
	pthread_cond_broadcast(&s->idle);
	unlock(s);
	if (full)
		sink_log(s, 1, "dropped %llu lines (queue full)", (unsigned long long)full);
	if (left)
		sink_log(s, 1, "dropped %llu lines still held at close", (unsigned long long)left);
	free(b);
	free(st);
	return NULL;
}

/* ---- spec parsing ---- */

static char *query_param(const char *q, const char *key)
{
	size_t kl = strlen(key);

	while (q && *q) {
		const char *end = strchr(q, '&');
		size_t l = end ? (size_t)(end - q) : strlen(q);
		if (l > kl && !strncmp(q, key, kl) && q[kl] == '=')
			return nn_xasprintf("%.*s", (int)(l - kl - 1), q + kl + 1);
		q = end ? end + 1 : NULL;
	}
	return NULL;
}

/* Unknown query keys are errors: a typo must not pass silently. */
static int check_query(const char *q, char *err)
{
	while (q && *q) {
		const char *end = strchr(q, '&');
		size_t l = end ? (size_t)(end - q) : strlen(q);
		if (!(l > 9 && !strncmp(q, "facility=", 9)) && !(l > 4 && !strncmp(q, "app=", 4)))
			return nn_seterr(err, "unknown parameter '%.*s' (facility=, app=)", (int)l, q);
		q = end ? end + 1 : NULL;
	}
	return 0;
}

static int parse_syslog(struct nn_sink *s, const char *rest, char *err)
{
	const char *q = strchr(rest, '?');
	size_t l = q ? (size_t)(q - rest) : strlen(rest);
	char *fac, *app;

	if (q)
		q++;
	if (check_query(q, err) < 0)
		return -1;
	if (s->kind == K_UNIX) {
		if (!l || rest[0] != '/')
			return nn_seterr(err, "syslog+unix: expected an absolute socket path");
		if (l >= sizeof ((struct sockaddr_un *)0)->sun_path)
			return nn_seterr(err, "syslog+unix: socket path too long");
		s->path = nn_xasprintf("%.*s", (int)l, rest);
	} else {
		const char *hs = rest, *he, *colon;
		if (l && rest[l - 1] == '/')
			l--;
		if (l && rest[0] == '[') {
			he = memchr(rest, ']', l);
			if (!he)
				return nn_seterr(err, "unbalanced '[' in the host");
			hs = rest + 1;
			colon = he + 1 < rest + l && he[1] == ':' ? he + 1 : NULL;
			if (!colon && he + 1 != rest + l)
				return nn_seterr(err, "expected HOST:PORT");
		} else {
			colon = memchr(rest, ':', l);
			he = colon ? colon : rest + l;
		}
		if (he == hs)
			return nn_seterr(err, "no host");
		if (memchr(hs, '/', (size_t)(he - hs)))
			return nn_seterr(err, "expected HOST:PORT without a path");
		s->nhost = nn_xasprintf("%.*s", (int)(he - hs), hs);
		if (colon) {
			const char *p = colon + 1, *pe = rest + l;
			long port = 0;
			if (p == pe)
				return nn_seterr(err, "empty port");
			for (const char *c = p; c < pe; c++) {
				if (*c < '0' || *c > '9')
					return nn_seterr(err, "bad port '%.*s'", (int)(pe - p), p);
				port = port * 10 + (*c - '0');
				if (port > 65535)
					break;
			}
			if (port < 1 || port > 65535)
				return nn_seterr(err, "bad port '%.*s'", (int)(pe - p), p);
			s->nport = nn_xasprintf("%ld", port);
		} else {
			s->nport = nn_xstrdup(SYSLOG_DEFAULT_PORT);
		}
	}
	s->facility = 3;
	fac = query_param(q, "facility");
	if (fac) {
		size_t i;
		for (i = 0; i < sizeof facilities / sizeof *facilities; i++)
			if (!strcmp(fac, facilities[i].name))
				break;
		if (i == sizeof facilities / sizeof *facilities) {
			nn_seterr(err, "unknown facility '%s'", fac);
			free(fac);
			return -1;
		}
		s->facility = facilities[i].code;
		free(fac);
	}
	app = query_param(q, "app");
	if (app) {
		free(s->app);
		s->app = header_field(app, strlen(app), 48);
		free(app);
	}
	return 0;
}

static int parse_http(struct nn_sink *s, const char *url, char *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *path = NULL;
	int rc = -1;

	if (!u)
		return nn_seterr(err, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		nn_seterr(err, "not a URL: '%s'", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
		nn_seterr(err, "expected http:// or https:// after the '+'");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		nn_seterr(err, "no host in '%s'", url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK)
		path = NULL;
	if (s->kind == K_INFLUX) {
		if (!path || !strcmp(path, "/")) {
			nn_seterr(err, "influx: no path (e.g. /write?db=nunet or /api/v2/write)");
			goto out;
		}
	} else {
		/* …/INDEX/_bulk: the index is the segment before _bulk */
		size_t l = path ? strlen(path) : 0;
		const char *e, *b;
		if (l < 6 || strcmp(path + l - 6, "/_bulk")) {
			nn_seterr(err, "esbulk: expected a path ending in /INDEX/_bulk");
			goto out;
		}
		e = path + l - 6;
		for (b = e; b > path && b[-1] != '/'; b--)
			;
		if (b == e) {
			nn_seterr(err, "esbulk: no index before /_bulk");
			goto out;
		}
		for (const char *c = b; c < e; c++)
			if ((*c >= 'A' && *c <= 'Z') || strchr("\\/*?\"<>| ,#:", *c) ||
			    (unsigned char)*c < 32) {
				nn_seterr(err, "esbulk: bad index name '%.*s' (lowercase, none of \\/*?\"<>| ,#:)",
					  (int)(e - b), b);
				goto out;
			}
		if (*b == '-' || *b == '_' || *b == '+') {
			nn_seterr(err, "esbulk: an index name cannot start with '%c'", *b);
			goto out;
		}
		s->index = nn_xasprintf("%.*s", (int)(e - b), b);
		/* the name holds no character that JSON must escape */
		s->action = nn_xasprintf("{\"index\":{\"_index\":\"%s\"}}\n", s->index);
	}
	s->url = nn_xstrdup(url);
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

/* ---- API ---- */

void nn_sink_opts_init(struct nn_sink_opts *o)
{
	memset(o, 0, sizeof *o);
	o->queue_max = 10000;
	o->queue_bytes = 16u << 20;
	o->batch_max = 500;
	o->line_max = 1u << 20;
	o->flush_ms = 1000;
	o->backoff_min_ms = 100;
	o->backoff_max_ms = 30000;
	o->timeout_ms = 10000;
	o->log_interval_ms = 60000;
}

static void sink_free(struct nn_sink *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->wakefd >= 0)
		close(s->wakefd);
	if (s->easy)
		curl_easy_cleanup(s->easy);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	curl_slist_free_all(s->hdrs);
	free(s->q);
	free(s->spec);
	free(s->app);
	free(s->host);
	free(s->path);
	free(s->nhost);
	free(s->nport);
	free(s->url);
	free(s->index);
	free(s->action);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

struct nn_sink *nn_sink_open(const char *spec, const struct nn_sink_opts *o, char *err)
{
	struct nn_sink *s;
	pthread_condattr_t ca;
	sigset_t all, old;
	char hn[256] = "";
	const char *rest;
	int r;

	if (!spec || !*spec) {
		nn_seterr(err, "empty sink spec");
		return NULL;
	}
	s = nn_xcalloc(1, sizeof *s);
	s->fd = -1;
	s->wakefd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_cond_init(&s->idle, &ca);
	pthread_condattr_destroy(&ca);
	s->spec = nn_xstrdup(spec);
	if (o)
		s->o = *o;
	else
		nn_sink_opts_init(&s->o);
	if (!s->o.queue_max || !s->o.batch_max || !s->o.queue_bytes || !s->o.line_max ||
	    s->o.flush_ms < 0 || s->o.backoff_min_ms < 1 ||
	    s->o.backoff_max_ms < s->o.backoff_min_ms || s->o.timeout_ms < 1 ||
	    s->o.log_interval_ms < 0) {
		nn_seterr(err, "sink '%s': bad options (a size is 0 or a time is out of range)", spec);
		goto fail;
	}
	s->o.app_name = NULL;
	s->o.hostname = NULL;
	if (o && o->hostname)
		snprintf(hn, sizeof hn, "%s", o->hostname);
	else if (gethostname(hn, sizeof hn - 1) < 0)
		hn[0] = 0;
	s->host = header_field(hn, strlen(hn), 255);
	rest = o && o->app_name ? o->app_name : "nunet-node";
	s->app = header_field(rest, strlen(rest), 48);

	if (!strncmp(spec, "syslog+unix://", 14)) {
		s->kind = K_UNIX;
		r = parse_syslog(s, spec + 14, err);
	} else if (!strncmp(spec, "syslog+tcp://", 13)) {
		s->kind = K_TCP;
		r = parse_syslog(s, spec + 13, err);
	} else if (!strncmp(spec, "syslog+udp://", 13)) {
		s->kind = K_UDP;
		r = parse_syslog(s, spec + 13, err);
	} else if (!strncmp(spec, "influx+", 7)) {
		s->kind = K_INFLUX;
		r = nn_dlcurl_load(err);
		if (r == 0) {
			pthread_once(&curl_once, curl_init_once);
			r = parse_http(s, spec + 7, err);
		}
	} else if (!strncmp(spec, "esbulk+", 7)) {
		s->kind = K_ESBULK;
		r = nn_dlcurl_load(err);
		if (r == 0) {
			pthread_once(&curl_once, curl_init_once);
			r = parse_http(s, spec + 7, err);
		}
	} else {
		nn_seterr(err, "sink '%s': unknown kind (syslog+unix://, syslog+tcp://, "
			  "syslog+udp://, influx+http://, esbulk+http://)", spec);
		goto fail;
	}
	if (r < 0) {
		char why[NN_ERRLEN];
		snprintf(why, sizeof why, "%s", err ? err : "");
		nn_seterr(err, "sink '%s': %s", spec, why);
		goto fail;
	}
	if (s->kind == K_INFLUX || s->kind == K_ESBULK) {
		s->easy = curl_easy_init();
		s->multi = curl_multi_init();
		if (!s->easy || !s->multi) {
			nn_seterr(err, "sink '%s': cannot start libcurl", spec);
			goto fail;
		}
		s->hdrs = curl_slist_append(NULL, s->kind == K_ESBULK ?
					    "Content-Type: application/x-ndjson" :
					    "Content-Type: text/plain; charset=utf-8");
		s->hdrs = curl_slist_append(s->hdrs, "Expect:");
	}
	s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wakefd < 0) {
		nn_seterr(err, "sink '%s': eventfd: %s", spec, strerror(errno));
		goto fail;
	}
	s->seed = (unsigned)nn_now_ms() ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)s;
	s->qcap = s->o.queue_max;
	s->q = nn_xcalloc(s->qcap, sizeof *s->q);
	/* the worker takes no signals: the node handles them on its loop */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&s->thr, NULL, worker, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		nn_seterr(err, "sink '%s': cannot start a thread: %s", spec, strerror(r));
		goto fail;
	}
	return s;
fail:
	sink_free(s);
	return NULL;
}

int nn_sink_push(struct nn_sink *s, const char *line, size_t len)
{
	char *copy;
	int64_t now;

	if (len && line[len - 1] == '\n')
		len--;
	if (!len || len > s->o.line_max || memchr(line, '\n', len)) {
		lock(s);
		s->st.pushed++;
		s->st.rejected++;
		unlock(s);
		return -1;
	}
	copy = nn_xmalloc(len + 1);
	memcpy(copy, line, len);
	copy[len] = 0;
	now = nn_mono_ms();
	lock(s);
	s->st.pushed++;
	if (s->stopping || s->qlen == s->qcap || s->qbytes + len > s->o.queue_bytes) {
		s->st.dropped++;
		if (s->st.dropped == s->drop_seen + 1)
			pthread_cond_signal(&s->cv);	/* to log it */
		unlock(s);
		free(copy);
		return -1;
	}
	s->q[(s->qhead + s->qlen) % s->qcap] = (struct item){ copy, len, now };
	s->qlen++;
	s->qbytes += len;
	if (s->qlen == 1 || s->qlen == s->o.batch_max)
		pthread_cond_signal(&s->cv);
	unlock(s);
	return 0;
}

void nn_sink_stats(struct nn_sink *s, struct nn_sink_stats *st)
{
	lock(s);
	*st = s->st;
	st->queued = s->qlen + s->inflight;
	st->queued_bytes = s->qbytes + s->inflight_bytes;
	unlock(s);
}

int nn_sink_flush(struct nn_sink *s, int64_t timeout_ms)
{
	int64_t until = nn_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	int rc;

	lock(s);
	s->flushing++;
	pthread_cond_signal(&s->cv);
	while ((s->qlen || s->inflight) && nn_mono_ms() < until)
		timed_wait(&s->idle, &s->mu, until);
	rc = (s->qlen || s->inflight) ? -1 : 0;
	s->flushing--;
	unlock(s);
	return rc;
}

void nn_sink_close(struct nn_sink *s, int64_t drain_ms, struct nn_sink_stats *st)
{
	uint64_t one = 1;

	if (!s)
		return;
	lock(s);
	s->stopping = 1;
	s->deadline = nn_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
	if (drain_ms <= 0)
		s->abort = 1;
	pthread_cond_broadcast(&s->cv);
	unlock(s);
	if (drain_ms <= 0 && write(s->wakefd, &one, sizeof one) < 0) {
		/* the worker also sees the flag within 250 ms */
	}
	if (s->multi)
		curl_multi_wakeup(s->multi);
	pthread_join(s->thr, NULL);
	if (st)
		nn_sink_stats(s, st);
	sink_free(s);
}

const char *nn_sink_spec(const struct nn_sink *s)
{
	return s->spec;
}
