/*
 * nunet-send — send one signed envelope to an actor through the local node
 * and print the answer; or, with "-", pipeline a stream of requests read as
 * JSON lines from stdin and print the answers in request order.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sodium.h>
#include "client.h"
#include "json.h"
#include "lines.h"
#include "log.h"
#include "sock.h"
#include "util.h"

static const char usage_text[] =
	"usage: nunet-send [-t SECONDS] [--to ADDR] [--raw] [--home DIR] [--key FILE] [--trace ID] BEHAVIOR\n"
	"                  [BODY-JSON]\n"
	"       nunet-send [-t SECONDS] --broadcast [--raw] [--home DIR] [--key FILE] [--trace ID] BEHAVIOR\n"
	"                  [BODY-JSON]\n"
	"       nunet-send [-t SECONDS] [--to ADDR | --broadcast] --cap FILE... [--raw] [--home DIR] [--key FILE]\n"
	"                  [--trace ID] BEHAVIOR [BODY-JSON]\n"
	"       nunet-send [-t SECONDS] [--raw] [--home DIR] [--key FILE] [--trace ID] -\n"
	"       nunet-send -h | --help | --version\n";

#define WINDOW 4096

static int raw;
static int64_t timeout_ms = 10000;

static void usage(int code)
{
	fputs(usage_text, code ? stderr : stdout);
	exit(code);
}

/* Exit code for an error answer's code. */
static int exit_for(enum nn_code c)
{
	switch (c) {
	case NN_E_BUSY:
	case NN_E_TIMEOUT:
		return NN_EX_TEMPFAIL;
	case NN_E_UNAVAILABLE:
		return NN_EX_UNAVAILABLE;
	case NN_E_INTERNAL:
		return NN_EX_SOFTWARE;
	case NN_E_PARSE:
	case NN_E_OVERSIZE:
	case NN_E_NOT_OBJECT:
	case NN_E_BAD_FIELD:
	case NN_E_BAD_BODY:
		return NN_EX_DATAERR;
	default:
		return NN_EX_NO;
	}
}

static jv error_obj(const char *code, const char *msg)
{
	jv e = jv_object();
	e = jv_object_set(e, jv_string("code"), jv_string(code));
	e = jv_object_set(e, jv_string("message"), jv_string(msg));
	return jv_object_set(jv_object(), jv_string("error"), e);
}

/* Print an answer envelope (consumed); return the exit code it implies. */
static int print_answer(jv env)
{
	jv body = jv_object_get(jv_copy(env), jv_string("body"));
	int error = !strcmp(nn_env_str(env, "type"), "error");
	int rc = 0;
	char *s;

	if (error) {
		const char *code = NULL, *msg = NULL;
		nn_json_get_str(body, "code", &code, NULL);
		nn_json_get_str(body, "message", &msg, NULL);
		nn_log(NN_LOG_ERROR, "%s: %s", code ? code : "error", msg ? msg : "(no message)");
		rc = exit_for(code ? nn_code_parse(code) : NN_E_INTERNAL);
		if (!raw)
			body = jv_object_set(jv_object(), jv_string("error"), body);
	}
	s = nn_json_dump(raw ? env : body);
	fputs(s, stdout);
	fputc('\n', stdout);
	free(s);
	jv_free(body);
	jv_free(env);
	return rc;
}

/* BODY-JSON as a jv object ({} when absent); dies on anything else. */
static jv body_arg(const char *text)
{
	char err[NN_ERRLEN];
	jv body;
	if (!text)
		return jv_object();
	body = nn_json_parse(text, strlen(text), err);
	if (!jv_is_valid(body))
		nn_die(NN_EX_DATAERR, "BODY-JSON: %s", err);
	if (jv_get_kind(body) != JV_KIND_OBJECT)
		nn_die(NN_EX_DATAERR, "BODY-JSON: expected an object, got a %s", nn_json_kind(body));
	return body;
}

static int send_one(struct nn_client *c, const char *to, const char *be, const char *bodytext)
{
	char err[NN_ERRLEN];
	enum nn_code code;
	jv body = body_arg(bodytext), env;

	env = nn_client_call(c, to, be, body, (int)timeout_ms, &code, err);
	if (!jv_is_valid(env))
		nn_die(exit_for(code), "%s", err);
	return print_answer(env);
}

/* --cap FILE: capability tokens carried in the envelope's "cap" array,
 * besides those of $NUNET_CAP (lib/client.h) */
static jv caps;

static void add_cap_file(const char *path)
{
	char err[NN_ERRLEN];
	if (access(path, R_OK) < 0)
		nn_die(NN_EX_IOERR, "--cap: cannot read '%s': %s", path, strerror(errno));
	caps = nn_client_caps_load(jv_is_valid(caps) ? caps : jv_null(), path, err);
	if (!jv_is_valid(caps))
		nn_die(NN_EX_DATAERR, "--cap: %s", err);
}

/*
 * --broadcast (to "*", many answers) and requests carrying --cap tokens
 * (one answer): print every answer to our request that arrives within
 * wait_ms.  For a broadcast, gossiped by the node to every node of the
 * swarm, 0 when at least one node replied, else the exit of the last error
 * (69 when nothing came back).
 */
static int send_collect(struct nn_client *c, const char *to, const char *be, const char *bodytext,
			int64_t wait_ms, int many)
{
	struct nn_buf out = NN_BUF_INIT;
	char err[NN_ERRLEN], id[65];
	int64_t deadline = nn_mono_ms() + wait_ms;
	int replies = 0, rc = NN_EX_UNAVAILABLE, answers = 0, jcode;
	jv body = body_arg(bodytext), env;

	if (nn_client_request(c, to, be, body, &out, id, err) < 0)
		nn_die(NN_EX_DATAERR, "%s", err);
	if (nn_sock_send_all(c->fd, out.data, out.len) < 0)
		nn_die(NN_EX_UNAVAILABLE, "cannot send to the node: %s", strerror(errno));
	nn_buf_release(&out);
	for (;;) {
		int r = nn_jsonl_next(&c->in, &env, &jcode, err);
		if (r == NN_JSONL_VALUE) {
			const char *re = nn_env_str(env, "re");
			if (re && !strcmp(re, id) && nn_client_check(c, env, err) == NN_OK) {
				int error = !strcmp(nn_env_str(env, "type"), "error");
				/* the node itself refused it: nothing more will come */
				int local = error && !answers && !strcmp(nn_env_str(env, "from"), c->key.did);
				int k = print_answer(env);	/* consumes env */
				fflush(stdout);
				answers++;
				if (!error)
					replies++;
				else
					rc = k;
				if (local || !many)
					break;
			} else {
				jv_free(env);
			}
			continue;
		}
		if (r == NN_JSONL_ERROR)
			continue;
		int64_t left = deadline - nn_mono_ms();
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			nn_die(NN_EX_UNAVAILABLE, "poll: %s", strerror(errno));
		if (p.revents) {
			ssize_t n = nn_lines_read_fd(&c->in, c->fd);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
		}
	}
	if (replies)
		return 0;
	if (!answers) {
		nn_log(NN_LOG_ERROR, many ? "no node answered the broadcast within %lld ms"
		       : "no answer from the node within %lld ms", (long long)wait_ms);
		rc = many ? NN_EX_UNAVAILABLE : NN_EX_TEMPFAIL;
	}
	return rc;
}

/* ---- pipelined mode ---- */

struct slot {
	char id[65];
	int done;
	int rc;
	char *line;	/* what to print */
};

struct pipe_state {
	struct nn_client *c;
	struct slot *ring;
	size_t head, count;	/* ring of WINDOW slots */
	struct nn_buf out;
	struct nn_lines in;
	struct nn_buf scratch;	/* the signed bytes of an answer */
	int rc;
};

static struct slot *push(struct pipe_state *p)
{
	struct slot *s = &p->ring[(p->head + p->count++) % WINDOW];
	memset(s, 0, sizeof *s);
	return s;
}

static void complete(struct slot *s, char *line, int rc)
{
	s->line = line;
	s->rc = rc;
	s->done = 1;
}

/*
 * The hot path of request(): a line lib/jscan.h reads, with a plain "be",
 * a plain "to" or none, and a body in canonical form or none, is signed
 * with the body's text as it stands (the same bytes as through a jv).
 * 0: not taken, request() reads it.
 */
static int request_fast(struct pipe_state *p, struct slot *s, const char *line, size_t len)
{
	char err[NN_ERRLEN];
	struct nn_env_scan es;
	const struct nn_jscan_member *b;
	const char *be, *to = "local";

	if (nn_env_scan(line, len, &es) < 0 || !(be = nn_env_scan_str(&es, "be")) || be[0] != '/')
		return 0;
	if (nn_jscan_get(&es.j, "to") && !(to = nn_env_scan_str(&es, "to")))
		return 0;
	b = nn_jscan_get(&es.j, "body");
	if (b && (b->kind != NN_JSCAN_OBJECT || !b->canonical))
		return 0;
	if (nn_client_request_text(p->c, to, be, b ? b->val : "{}", b ? b->vlen : 2, &p->out,
				   s->id, err) < 0)
		return 0;	/* request() says why */
	return 1;
}

static void request(struct pipe_state *p, const char *line, size_t len)
{
	char err[NN_ERRLEN], msg[NN_ERRLEN + 32];
	struct slot *s = push(p);
	jv req, body, to;
	const char *be;

	if (request_fast(p, s, line, len))
		return;
	req = nn_json_parse(line, len, err);

	if (!jv_is_valid(req)) {
		snprintf(msg, sizeof msg, "line %lu: %s", p->in.lineno, err);
		goto bad;
	}
	if (jv_get_kind(req) != JV_KIND_OBJECT || nn_json_get_str(req, "be", &be, err) < 0 ||
	    be[0] != '/') {
		snprintf(msg, sizeof msg, "line %lu: expected {\"be\":\"/path\", \"body\":{…}}", p->in.lineno);
		jv_free(req);
		goto bad;
	}
	body = jv_object_get(jv_copy(req), jv_string("body"));
	if (!jv_is_valid(body)) {
		jv_free(body);
		body = jv_object();
	}
	if (jv_get_kind(body) != JV_KIND_OBJECT) {
		snprintf(msg, sizeof msg, "line %lu: body: expected an object", p->in.lineno);
		jv_free(body);
		jv_free(req);
		goto bad;
	}
	to = jv_object_get(jv_copy(req), jv_string("to"));
	if (jv_is_valid(to) && jv_get_kind(to) != JV_KIND_STRING) {
		snprintf(msg, sizeof msg, "line %lu: to: expected an address", p->in.lineno);
		jv_free(to);
		jv_free(body);
		jv_free(req);
		goto bad;
	}
	if (nn_client_request(p->c, jv_is_valid(to) ? jv_string_value(to) : "local", be, body,
			      &p->out, s->id, err) < 0) {
		snprintf(msg, sizeof msg, "line %lu: %s", p->in.lineno, err);
		jv_free(to);
		jv_free(req);
		goto bad;
	}
	jv_free(to);
	jv_free(req);
	return;
bad:
	nn_log(NN_LOG_ERROR, "%s", msg);
	{
		jv e = error_obj("bad_request", msg);
		complete(s, nn_json_dump(e), NN_EX_DATAERR);
		jv_free(e);
	}
}

static void answer(struct pipe_state *p, jv env)
{
	char err[NN_ERRLEN];
	const char *re = nn_env_str(env, "re");
	/* The node answers lines in order; an error without re is about the
	 * oldest line sent and not yet answered, which it could not read. */
	for (size_t i = 0; i < p->count; i++) {
		struct slot *s = &p->ring[(p->head + i) % WINDOW];
		if (s->done || (re ? strcmp(s->id, re) != 0 : !s->id[0]))
			continue;
		enum nn_code code = nn_client_check(p->c, env, err);
		if (code != NN_OK) {
			jv e = error_obj(nn_code_name(code), err);
			nn_log(NN_LOG_ERROR, "bad answer from the node: %s", err);
			complete(s, nn_json_dump(e), NN_EX_SOFTWARE);
			jv_free(e);
			jv_free(env);
			return;
		}
		/* render now, print in order later */
		jv body = jv_object_get(jv_copy(env), jv_string("body"));
		int rc = 0;
		if (!strcmp(nn_env_str(env, "type"), "error")) {
			const char *c = NULL, *m = NULL;
			nn_json_get_str(body, "code", &c, NULL);
			nn_json_get_str(body, "message", &m, NULL);
			nn_log(NN_LOG_ERROR, "%s: %s", c ? c : "error", m ? m : "");
			rc = exit_for(c ? nn_code_parse(c) : NN_E_INTERNAL);
			if (!raw)
				body = jv_object_set(jv_object(), jv_string("error"), body);
		}
		complete(s, nn_json_dump(raw ? env : body), rc);
		jv_free(body);
		jv_free(env);
		return;
	}
	jv_free(env);	/* not ours: ignore */
}

/*
 * The hot path of answer(): a reply the scanner reads, verified over its
 * received canonical bytes (nn_env_scan_verify) and addressed to us, is
 * rendered from its text: the body's span, or the line with --raw, which
 * are what nn_json_dump writes for them.  0: not taken, answer() reads it.
 */
static int answer_fast(struct pipe_state *p, const char *line, size_t len)
{
	struct nn_env_scan es;
	const struct nn_jscan_member *b;

	if (nn_env_scan(line, len, &es) < 0 ||
	    !nn_env_scan_verify(&es, NULL, nn_now_ms(), 1, &p->scratch) ||
	    strcmp(es.h.type, "reply") != 0 || strcmp(es.h.to, p->c->key.did) != 0)
		return 0;
	b = nn_jscan_get(&es.j, "body");
	for (size_t i = 0; i < p->count; i++) {
		struct slot *s = &p->ring[(p->head + i) % WINDOW];
		const char *t = raw ? line : b->val;
		size_t n = raw ? len : b->vlen;
		char *out;
		if (s->done || strcmp(s->id, es.h.re) != 0)
			continue;
		out = nn_xmalloc(n + 1);
		memcpy(out, t, n);
		out[n] = '\0';
		complete(s, out, 0);
		return 1;
	}
	return 1;	/* not ours: ignored, as answer() would */
}

static void print_ready(struct pipe_state *p)
{
	while (p->count && p->ring[p->head].done) {
		struct slot *s = &p->ring[p->head];
		fputs(s->line, stdout);
		fputc('\n', stdout);
		free(s->line);
		if (s->rc && !p->rc)
			p->rc = s->rc;
		p->head = (p->head + 1) % WINDOW;
		p->count--;
	}
}

/* Turn buffered stdin lines into requests while the window has room.
 * Returns 1 when something was queued. */
/* Sign at most a small batch of buffered stdin lines, so that writing to
 * the node, the node's work and reading its answers overlap instead of
 * taking turns.  Returns how many lines it took. */
#define BATCH 16
static int take_lines(struct pipe_state *p)
{
	const char *line;
	size_t len;
	int r, any = 0;
	while (any < BATCH && p->count < WINDOW && p->out.len < (1 << 20) &&
	       (r = nn_lines_next(&p->in, &line, &len)) != NN_LINES_NONE) {
		any++;
		if (r == NN_LINES_OVERSIZE) {
			char msg[128];
			snprintf(msg, sizeof msg, "line %lu: longer than %zu bytes", p->in.lineno, p->in.max);
			nn_log(NN_LOG_ERROR, "%s", msg);
			jv e = error_obj("bad_request", msg);
			complete(push(p), nn_json_dump(e), NN_EX_DATAERR);
			jv_free(e);
			continue;
		}
		if (len == 0)
			continue;
		request(p, line, len);
	}
	return any;
}

static int send_stream(struct nn_client *c)
{
	struct pipe_state p = { 0 };
	char err[NN_ERRLEN];
	int in_eof = 0, code;
	int64_t last = nn_mono_ms();
	jv env;

	p.c = c;
	p.ring = nn_xcalloc(WINDOW, sizeof *p.ring);
	nn_buf_init(&p.out, 0);
	nn_lines_init(&p.in, NN_LINE_MAX_DEFAULT);
	nn_sock_nonblock(c->fd);
	for (;;) {
		int took = take_lines(&p);
		if (took)
			last = nn_mono_ms();
		if (p.out.len) {	/* send what is signed at once */
			ssize_t w = send(c->fd, p.out.data, p.out.len, MSG_NOSIGNAL);
			if (w > 0)
				nn_buf_consume(&p.out, (size_t)w);
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				nn_die(NN_EX_UNAVAILABLE, "the node closed the connection: %s", strerror(errno));
		}
		struct pollfd fds[2] = {
			{ .fd = in_eof || p.count >= WINDOW / 2 || p.out.len > (1 << 20) ? -1 : 0, .events = POLLIN },
			{ .fd = c->fd, .events = POLLIN | (p.out.len ? POLLOUT : 0) },
		};
		int64_t left = last + timeout_ms - nn_mono_ms();
		if (in_eof && p.count == 0 && took == 0)
			break;
		if (p.count && left <= 0) {
			nn_log(NN_LOG_ERROR, "no answer from the node within %lld ms", (long long)timeout_ms);
			for (size_t i = 0; i < p.count; i++) {
				struct slot *s = &p.ring[(p.head + i) % WINDOW];
				if (!s->done) {
					jv e = error_obj("timeout", "no answer in time");
					complete(s, nn_json_dump(e), NN_EX_TEMPFAIL);
					jv_free(e);
				}
			}
			print_ready(&p);
			break;
		}
		if (poll(fds, 2, took == BATCH ? 0 : p.count ? (int)(left > 0 ? left : 0) : -1) < 0) {
			if (errno == EINTR)
				continue;
			nn_die(NN_EX_SOFTWARE, "poll: %s", strerror(errno));
		}
		if (fds[0].revents) {
			ssize_t n = nn_lines_read_fd(&p.in, 0);
			if (n == 0) {
				in_eof = 1;
				if (nn_lines_pending(&p.in))
					nn_lines_feed(&p.in, "\n", 1);
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				nn_die(NN_EX_IOERR, "cannot read stdin: %s", strerror(errno));
			}
		}
		if (fds[1].revents & POLLOUT) {
			ssize_t w = send(c->fd, p.out.data, p.out.len, MSG_NOSIGNAL);
			if (w > 0)
				nn_buf_consume(&p.out, (size_t)w);
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				nn_die(NN_EX_UNAVAILABLE, "the node closed the connection: %s", strerror(errno));
		}
		if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = nn_lines_read_fd(&c->in, c->fd);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				print_ready(&p);
				fflush(stdout);
				nn_die(NN_EX_UNAVAILABLE, "the node closed the connection");
			}
			last = nn_mono_ms();
			for (;;) {
				const char *line;
				size_t len;
				int r = nn_jsonl_next_text(&c->in, &line, &len, &code, err);
				if (r == NN_JSONL_VALUE && answer_fast(&p, line, len))
					continue;
				if (r == NN_JSONL_VALUE) {
					env = nn_jsonl_parse(&c->in, line, len, &code, err);
					r = jv_is_valid(env) ? NN_JSONL_VALUE : NN_JSONL_ERROR;
				}
				if (r == NN_JSONL_NONE)
					break;
				if (r == NN_JSONL_ERROR) {
					nn_log(NN_LOG_WARN, "unreadable answer from the node: %s", err);
					continue;
				}
				answer(&p, env);
			}
		}
		print_ready(&p);
	}
	fflush(stdout);
	free(p.ring);
	nn_buf_release(&p.out);
	nn_buf_release(&p.scratch);
	nn_lines_release(&p.in);
	return p.rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 'T' },
		{ "broadcast", no_argument, NULL, 'b' },
		{ "cap", required_argument, NULL, 'C' },
		{ "raw", no_argument, NULL, 'r' },
		{ "trace", required_argument, NULL, 'R' },
		{ "home", required_argument, NULL, 'H' },
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *to = "local", *home = NULL, *keyfile = NULL, *trace = NULL;
	char err[NN_ERRLEN], *end;
	struct nn_client c;
	enum nn_code code;
	int opt, rc, broadcast = 0, timeout_set = 0, to_set = 0;
	double t;

	nn_log_init("nunet-send");
	caps = jv_invalid();
	if (sodium_init() < 0)
		nn_die(NN_EX_SOFTWARE, "cannot initialise libsodium");
	while ((opt = getopt_long(argc, argv, "+ht:", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			t = strtod(optarg, &end);
			if (*end || end == optarg || !(t > 0) || t > 86400)
				nn_die(NN_EX_USAGE, "-t: '%s' is not a number of seconds", optarg);
			timeout_ms = (int64_t)(t * 1000);
			timeout_set = 1;
			break;
		case 'T': to = optarg; to_set = 1; break;
		case 'b': broadcast = 1; break;
		case 'C': add_cap_file(optarg); break;
		case 'r': raw = 1; break;
		case 'R':
			if (!*optarg || strlen(optarg) > 64 || strspn(optarg, "0123456789abcdefABCDEF") != strlen(optarg))
				nn_die(NN_EX_USAGE, "--trace: expected up to 64 hex digits");
			trace = optarg;
			break;
		case 'H': home = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'h': usage(0); break;
		case 'V': printf("nunet-send %s\n", NN_VERSION); return 0;
		default: usage(NN_EX_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || argc > 2 || (!strcmp(argv[0], "-") && argc != 1))
		usage(NN_EX_USAGE);
	if (broadcast && (to_set || !strcmp(argv[0], "-")))
		usage(NN_EX_USAGE);
	if (strcmp(argv[0], "-") != 0 && argv[0][0] != '/')
		nn_die(NN_EX_USAGE, "BEHAVIOR: '%s' is not a path such as /node/info", argv[0]);
	if (nn_client_open(&c, home, keyfile, &code, err) < 0)
		nn_die(code == NN_E_UNAVAILABLE ? NN_EX_UNAVAILABLE : NN_EX_CONFIG, "%s", err);
	if (jv_is_valid(caps))
		c.caps = jv_get_kind(c.caps) == JV_KIND_ARRAY ? jv_array_concat(c.caps, jv_copy(caps))
							     : jv_copy(caps);
	/* every invocation is one trace: what it causes on any node carries it */
	if (trace)
		snprintf(c.trace, sizeof c.trace, "%s", trace);
	else
		nn_random_id(c.trace);
	if (broadcast)
		rc = send_collect(&c, "*", argv[0], argc > 1 ? argv[1] : NULL, timeout_set ? timeout_ms : 3000, 1);
	else if (jv_is_valid(caps) && strcmp(argv[0], "-") != 0)
		rc = send_collect(&c, to, argv[0], argc > 1 ? argv[1] : NULL, timeout_ms, 0);
	else if (!strcmp(argv[0], "-"))
		rc = send_stream(&c);
	else
		rc = send_one(&c, to, argv[0], argc > 1 ? argv[1] : NULL);
	nn_client_close(&c);
	jv_free(caps);
	fflush(stdout);
	return rc;
}
