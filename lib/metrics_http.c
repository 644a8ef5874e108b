/*
 * metrics_http — the smallest HTTP responder that does the job: one request
 * per connection, read into a capped buffer until the blank line, answered
 * with the metrics text (200), 404 for other paths, 405 for other methods,
 * 400 for anything unreadable, then closed.  Everything is non-blocking in
 * the node's loop; a client that neither finishes its request nor reads its
 * answer within 5 s is dropped.  None of our libraries serves HTTP (libcurl
 * is a client), and a scrape endpoint needs no more than this.
 */
#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include "json.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "util.h"

#define REQ_MAX 8192
#define CONN_TIMEOUT_MS 5000

struct mconn {
	struct mhttp *h;
	int fd;
	struct nn_watch *w;
	struct nn_buf in, out;
	int64_t start;
	int answered;
	struct mconn *next;
};

struct mhttp {
	struct nn_node *n;
	int lfd;
	struct nn_watch *lw, *sweep;
	struct mconn *conns;
	unsigned long served;
};

static void mconn_close(struct mconn *c)
{
	struct mhttp *h = c->h;
	for (struct mconn **p = &h->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	nn_loop_remove(nn_node_loop(h->n), c->w);
	close(c->fd);
	nn_buf_release(&c->in);
	nn_buf_release(&c->out);
	free(c);
}

static void respond(struct mconn *c, int status, const char *reason, const char *type,
		    const char *body, size_t len)
{
	nn_buf_addf(&c->out, "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n", status, reason, type, len);
	nn_buf_add(&c->out, body, len);
	c->answered = 1;
}

static void answer(struct mconn *c)
{
	char method[16], path[256];
	if (sscanf(c->in.data, "%15s %255s", method, path) != 2) {
		respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12);
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		respond(c, 405, "Method Not Allowed", "text/plain", "GET only\n", 9);
		return;
	}
	if (strcmp(path, "/metrics") != 0 && strncmp(path, "/metrics?", 9) != 0) {
		respond(c, 404, "Not Found", "text/plain", "try /metrics\n", 13);
		return;
	}
	struct nn_buf b = NN_BUF_INIT;
	nn_node_metrics_text(c->h->n, &b);
	respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "",
		!strcmp(method, "HEAD") ? 0 : b.len);
	nn_buf_release(&b);
	c->h->served++;
}

static void on_mconn(struct nn_loop *l, int fd, uint32_t events, void *arg)
{
	struct mconn *c = arg;
	if (!c->answered && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		char buf[4096];
		ssize_t r = read(fd, buf, sizeof buf);
		if (r <= 0) {
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			mconn_close(c);
			return;
		}
		if (nn_buf_add(&c->in, buf, (size_t)r) < 0) {
			respond(c, 400, "Bad Request", "text/plain", "request too large\n", 18);
		} else if (strstr(c->in.data, "\r\n\r\n") || strstr(c->in.data, "\n\n")) {
			answer(c);
		}
		if (c->answered)
			nn_loop_fd_events(l, c->w, EPOLLOUT);
	}
	if (c->answered && c->out.len) {
		ssize_t w = send(fd, c->out.data, c->out.len, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (w < 0) {
			mconn_close(c);
			return;
		}
		nn_buf_consume(&c->out, (size_t)w);
	}
	if (c->answered && !c->out.len)
		mconn_close(c);
}

static void on_accept(struct nn_loop *l, int lfd, uint32_t events, void *arg)
{
	struct mhttp *h = arg;
	char err[NN_ERRLEN];
	for (int i = 0; i < 16; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct mconn *c;
		if (fd < 0)
			return;
		c = nn_xcalloc(1, sizeof *c);
		c->h = h;
		c->fd = fd;
		c->start = nn_mono_ms();
		nn_buf_init(&c->in, REQ_MAX);
		nn_buf_init(&c->out, 0);
		c->w = nn_loop_fd(l, fd, EPOLLIN | EPOLLRDHUP, on_mconn, c, err);
		if (!c->w) {
			nn_warn("metrics: %s", err);
			close(fd);
			nn_buf_release(&c->in);
			free(c);
			continue;
		}
		c->next = h->conns;
		h->conns = c;
	}
}

static void on_sweep(struct nn_loop *l, void *arg)
{
	struct mhttp *h = arg;
	int64_t now = nn_mono_ms();
	struct mconn *c = h->conns, *next;
	for (; c; c = next) {
		next = c->next;
		if (now - c->start > CONN_TIMEOUT_MS)
			mconn_close(c);
	}
}

static void metrics_close(struct nn_node *n, void *arg)
{
	struct mhttp *h = arg;
	while (h->conns)
		mconn_close(h->conns);
	nn_loop_remove(nn_node_loop(n), h->lw);
	nn_loop_remove(nn_node_loop(n), h->sweep);
	close(h->lfd);
	free(h);
}

static void served_metric(struct nn_node *n, struct nn_buf *b, void *arg)
{
	struct mhttp *h = arg;
	nn_buf_addf(b, "# HELP nunet_metrics_scrapes_total Scrapes of GET /metrics served.\n"
		    "# TYPE nunet_metrics_scrapes_total counter\nnunet_metrics_scrapes_total %lu\n", h->served);
}

int nn_metrics_http_attach(struct nn_node *n, char *err)
{
	const char *spec = nn_node_config(n)->metrics_listen;
	struct addrinfo hints = { 0 }, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[256], port[16], e[NN_ERRLEN];
	const char *colon;
	struct mhttp *h;
	int fd, one = 1, rc;

	if (!spec)
		return 0;
	colon = strrchr(spec, ':');
	snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	snprintf(port, sizeof port, "%s", colon + 1);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0)
		return nn_seterr(err, "metrics_listen: '%s': %s", spec, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		nn_seterr(err, "metrics_listen: cannot listen on '%s': %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	h = nn_xcalloc(1, sizeof *h);
	h->n = n;
	h->lfd = fd;
	if (!(h->lw = nn_loop_fd(nn_node_loop(n), fd, EPOLLIN, on_accept, h, e)) ||
	    !(h->sweep = nn_loop_timer(nn_node_loop(n), 1000, 1000, on_sweep, h, e))) {
		nn_loop_remove(nn_node_loop(n), h->lw);
		close(fd);
		free(h);
		return nn_seterr(err, "metrics: %s", e);
	}
	{
		char addr[INET6_ADDRSTRLEN], *s;
		int p;
		if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof addr);
			p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
			s = nn_xasprintf("[%s]:%d", addr, p);
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof addr);
			p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			s = nn_xasprintf("%s:%d", addr, p);
		}
		nn_node_ready_field(n, "metrics", jv_string(s));
		nn_info("metrics served on http://%s/metrics", s);
		free(s);
	}
	nn_node_metrics_hook(n, served_metric, h);
	nn_node_on_close(n, metrics_close, h);
	return 0;
}
