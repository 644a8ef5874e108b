/*
 * nunet-run deploy and friends — deployments across the swarm through the
 * local node's orchestrator (lib/orch.h): `deploy` sends an ensemble to
 * /deploy/start and prints the deployment's deploy.* events as JSON lines
 * (followed over a second connection to the node, by the request's trace,
 * subscribed before the start so none is missed); `status`, `wait`,
 * `cancel`, `logs` and `results` take deployment ids (and fall back to
 * allocation ids in cmd/nunet-run.c); `--swarm -- CMD` runs one command as
 * a one-allocation deployment and streams its output from wherever it went.
 * Remote logs, results and outputs are read by offset from the provider
 * (/public/deploy/logs, /result, /output), which answers the deployment's
 * requester (this node's key) and the lease's reader (the allocation that
 * asked for the deployment, when one did) only.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "alloc.h"
#include "client.h"
#include "codec.h"
#include "ensemble.h"
#include "json.h"
#include "lines.h"
#include "log.h"
#include "storage.h"
#include "util.h"
#include "deploy.h"

static volatile sig_atomic_t got_int;

static void on_int(int sig)
{
	got_int = sig;
}

static void dopen(struct nn_client *c, const char *trace)
{
	nn_run_node_open(c);
	if (trace)
		snprintf(c->trace, sizeof c->trace, "%s", trace);
}

jv nn_run_call(struct nn_client *c, const char *to, const char *be, jv body, int timeout_ms,
	       enum nn_code *code, char *err)
{
	jv env = nn_client_call(c, to, be, body, timeout_ms, code, err), b;
	const char *msg = NULL, *cname = NULL;
	if (!jv_is_valid(env))
		return env;
	b = jv_object_get(jv_copy(env), jv_string("body"));
	if (!strcmp(nn_env_str(env, "type"), "reply")) {
		jv_free(env);
		*code = NN_OK;
		return b;
	}
	nn_json_get_str(b, "message", &msg, NULL);
	nn_json_get_str(b, "code", &cname, NULL);
	*code = cname ? nn_code_parse(cname) : NN_E_INTERNAL;
	nn_seterr(err, "%s", msg ? msg : "the node refused");
	jv_free(b);
	jv_free(env);
	return jv_invalid();
}

/* One request; the reply body, or invalid with *code and err. */
static jv dcall(struct nn_client *c, const char *to, const char *be, jv body, enum nn_code *code, char *err)
{
	return nn_run_call(c, to, be, body, 30000, code, err);
}

static int exit_for(enum nn_code code)
{
	return code == NN_E_BAD_BODY ? NN_EX_DATAERR
		: code == NN_E_UNAVAILABLE || code == NN_E_UNKNOWN_BEHAVIOR ? NN_EX_UNAVAILABLE
		: code == NN_E_TIMEOUT || code == NN_E_BUSY ? NN_EX_TEMPFAIL : NN_EX_SOFTWARE;
}

/* A call that must succeed. */
static jv mcall(struct nn_client *c, const char *to, const char *be, jv body)
{
	enum nn_code code;
	char err[NN_ERRLEN];
	jv r = dcall(c, to, be, body, &code, err);
	if (!jv_is_valid(r)) {
		nn_client_close(c);
		if (code == NN_E_UNKNOWN_BEHAVIOR)
			nn_die(NN_EX_UNAVAILABLE, "the node does not deploy: %s", err);
		nn_die(exit_for(code), "%s", err);
	}
	return r;
}

static void print_line(jv v)
{
	char *s = nn_json_dump(v);
	jv_free(v);
	printf("%s\n", s);
	free(s);
	fflush(stdout);
}

/* The ensemble's text parsed and normalized (JSON or YAML, lib/ensemble):
 * invalid with every error on stderr. */
static jv ensemble_parse(const char *text, size_t len, const char *name, char *err)
{
	jv errors = jv_invalid();
	jv v = nn_ensemble_parse(text, len, name, &errors);
	if (!jv_is_valid(v)) {
		int n = 0;
		if (jv_get_kind(errors) == JV_KIND_ARRAY)
			jv_array_foreach(errors, i, e) {
				if (jv_get_kind(e) == JV_KIND_STRING)
					nn_error("%s: %s", name, jv_string_value(e));
				n++;
				jv_free(e);
			}
		nn_seterr(err, "%s: %d error%s: nothing was deployed", name, n, n == 1 ? "" : "s");
	}
	jv_free(errors);
	return v;
}

/* The ensemble in a file (- for stdin), parsed; dies with 65 on bad data. */
static jv read_ensemble(const char *path)
{
	char err[NN_ERRLEN];
	size_t len;
	char *text;
	jv v;
	if (strcmp(path, "-")) {
		text = nn_read_file(path, 4 << 20, &len, err);
		if (!text)
			nn_die(NN_EX_IOERR, "%s", err);
	} else {
		struct nn_buf b;
		char chunk[8192];
		ssize_t n;
		nn_buf_init(&b, 4 << 20);
		while ((n = read(0, chunk, sizeof chunk)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 || nn_buf_add(&b, chunk, (size_t)n) < 0)
				nn_die(NN_EX_DATAERR, "cannot read the ensemble from stdin");
		}
		text = nn_buf_detach(&b, &len);
	}
	v = ensemble_parse(text, len, path, err);
	free(text);
	if (!jv_is_valid(v))
		nn_die(NN_EX_DATAERR, "%s", err);
	return v;
}

/* ---- following a deployment's events ---- */

struct follow {
	struct nn_client ev, cl;
	char id[72];
	int quiet;		/* do not print events */
	int poll;		/* no events (an allocation may not follow them): poll the state */
	jv last;		/* the terminal event */
	jv running;		/* the deploy.running event, once seen */
};

static void follow_open(struct follow *f)
{
	jv b;
	memset(f, 0, sizeof *f);
	f->last = jv_null();
	f->running = jv_null();
	dopen(&f->ev, NULL);
	dopen(&f->cl, f->ev.trace);
	b = jv_object_set(jv_object(), jv_string("follow"), jv_true());
	b = jv_object_set(b, jv_string("trace"), jv_string(f->ev.trace));
	b = jv_object_set(b, jv_string("kind"), jv_string("deploy"));
	{
		enum nn_code code;
		char err[NN_ERRLEN];
		jv r = dcall(&f->ev, "local", "/node/events", b, &code, err);
		if (!jv_is_valid(r) && code == NN_E_UNAUTHORIZED)
			f->poll = 1;	/* a job's own identity: it may deploy, not read events */
		else if (!jv_is_valid(r))
			nn_die(exit_for(code), "%s", err);
		jv_free(r);
	}
}

/* Without events: the deployment's state stands for them. */
static int follow_poll(struct follow *f, const char *const *kinds)
{
	enum nn_code code;
	char err[NN_ERRLEN];
	for (;;) {
		jv st = dcall(&f->cl, "local", "/deploy/status",
			      jv_object_set(jv_object(), jv_string("id"), jv_string(f->id)), &code, err);
		const char *s = "";
		char kind[64];
		if (!jv_is_valid(st)) {
			nn_error("%s", err);
			return -1;
		}
		nn_json_get_str(st, "state", &s, NULL);
		snprintf(kind, sizeof kind, "deploy.%s", s);
		for (int i = 0; kinds[i]; i++)
			if (!strcmp(kind, kinds[i])) {
				jv e = jv_object_set(jv_object(), jv_string("kind"), jv_string(kind)), fl = jv_object();
				fl = jv_object_set(fl, jv_string("deployment"), jv_string(f->id));
				fl = jv_object_set(fl, jv_string("status"), jv_object_get(jv_copy(st), jv_string("status")));
				fl = jv_object_set(fl, jv_string("reason"), jv_object_get(jv_copy(st), jv_string("reason")));
				e = jv_object_set(e, jv_string("fields"), fl);
				if (!f->quiet)
					print_line(jv_copy(e));
				jv_free(f->last);
				f->last = e;
				jv_free(st);
				return 0;
			}
		jv_free(st);
		if (got_int) {
			got_int = 0;
			jv_free(dcall(&f->cl, "local", "/deploy/cancel",
				      jv_object_set(jv_object(), jv_string("id"), jv_string(f->id)), &code, err));
		}
		poll(NULL, 0, 50);
	}
}

static void follow_close(struct follow *f)
{
	jv_free(f->last);
	jv_free(f->running);
	nn_client_close(&f->ev);
	nn_client_close(&f->cl);
}

/* Read events until one of kinds (NULL-terminated) arrives for f->id (it
 * goes to f->last) or timeout_ms (-1: none) passes.  0, or -1 on timeout
 * or a lost node.  SIGINT cancels the deployment. */
static int follow_until(struct follow *f, const char *const *kinds, int64_t timeout_ms)
{
	int64_t end = timeout_ms < 0 ? INT64_MAX : nn_mono_ms() + timeout_ms;
	char err[NN_ERRLEN];
	if (f->poll)
		return follow_poll(f, kinds);
	for (;;) {
		jv env;
		int jcode, r;
		while ((r = nn_jsonl_next(&f->ev.in, &env, &jcode, err)) != NN_JSONL_NONE) {
			jv e, fl;
			const char *kind = "", *dep = "";
			if (r == NN_JSONL_ERROR)
				continue;
			e = jv_object_get(jv_copy(env), jv_string("body"));
			jv_free(env);
			fl = jv_object_get(jv_copy(e), jv_string("fields"));
			nn_json_get_str(e, "kind", &kind, NULL);
			nn_json_get_str(fl, "deployment", &dep, NULL);
			jv_free(fl);
			if (strcmp(dep, f->id) != 0 || strncmp(kind, "deploy.", 7) != 0) {
				jv_free(e);
				continue;
			}
			if (!f->quiet)
				print_line(jv_copy(e));
			if (!strcmp(kind, "deploy.running")) {
				jv_free(f->running);
				f->running = jv_copy(e);
			}
			for (int i = 0; kinds[i]; i++)
				if (!strcmp(kind, kinds[i])) {
					jv_free(f->last);
					f->last = e;
					return 0;
				}
			jv_free(e);
		}
		if (got_int) {
			jv b = jv_object_set(jv_object(), jv_string("id"), jv_string(f->id));
			enum nn_code code;
			got_int = 0;
			jv_free(dcall(&f->cl, "local", "/deploy/cancel", b, &code, err));
		}
		{
			int64_t left = end - nn_mono_ms();
			struct pollfd p = { f->ev.fd, POLLIN, 0 };
			if (left <= 0)
				return -1;
			if (poll(&p, 1, left > 1000 ? 1000 : (int)left) > 0) {
				ssize_t n = nn_lines_read_fd(&f->ev.in, f->ev.fd);
				if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
					nn_error("the node closed the connection");
					return -1;
				}
			}
		}
	}
}

/* The exit status for a terminal event (borrowed). */
static int event_exit(jv e)
{
	const char *kind = "", *reason = NULL;
	jv fl = jv_object_get(jv_copy(e), jv_string("fields")), x;
	int st = NN_EX_SOFTWARE;
	nn_json_get_str(e, "kind", &kind, NULL);
	nn_json_get_str(fl, "reason", &reason, NULL);
	if (!strcmp(kind, "deploy.running")) {
		st = 0;
	} else if (!strcmp(kind, "deploy.done")) {
		int64_t s = 0;
		nn_json_get_int(fl, "status", &s, NULL);
		st = (int)s;
	} else if (!strcmp(kind, "deploy.cancelled")) {
		nn_error("deployment cancelled");
		st = 1;
	} else {
		x = jv_object_get(jv_copy(fl), jv_string("explain"));
		nn_error("deployment failed: %s", reason ? reason : "no reason given");
		st = jv_is_valid(x) && jv_get_kind(x) == JV_KIND_ARRAY ? 1
			: reason && !strncmp(reason, "deadline", 8) ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE;
		jv_free(x);
	}
	jv_free(fl);
	return st;
}

static void catch_int(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_int;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void start(struct follow *f, jv ens, int hops)
{
	jv b = jv_object_set(jv_object(), jv_string("ensemble"), ens), r;
	const char *id;
	if (hops)
		b = jv_object_set(b, jv_string("hops"), jv_number(hops));
	r = mcall(&f->cl, "local", "/deploy/start", b);
	if (nn_json_get_str(r, "id", &id, NULL) < 0)
		nn_die(NN_EX_SOFTWARE, "the node did not name the deployment");
	snprintf(f->id, sizeof f->id, "%s", id);
	jv_free(r);
}

static const char *const until_running[] = { "deploy.running", "deploy.done", "deploy.failed",
					     "deploy.cancelled", NULL };
static const char *const until_done[] = { "deploy.done", "deploy.failed", "deploy.cancelled", NULL };

int nn_run_deploy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ "hops", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct follow f;
	int c, wait = 0, hops = 0, st;
	jv ens;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+wh", opts, NULL)) != -1) {
		switch (c) {
		case 'w': wait = 1; break;
		case 'H': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || end == optarg || v < 1 || v > 16) {
				nn_error("--hops: '%s' is not 1 to 16", optarg);
				return NN_EX_USAGE;
			}
			hops = (int)v;
			break;
		}
		case 'h': return -1;
		default: return NN_EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		nn_error("deploy: give one ensemble file (- for stdin)");
		return NN_EX_USAGE;
	}
	ens = read_ensemble(argv[optind]);
	catch_int();
	follow_open(&f);
	start(&f, ens, hops);
	if (follow_until(&f, wait ? until_done : until_running, -1) < 0) {
		follow_close(&f);
		printf("%s\n", f.id);
		return NN_EX_UNAVAILABLE;
	}
	st = event_exit(f.last);
	printf("%s\n", f.id);
	follow_close(&f);
	return st;
}

/* ---- deployments by id ---- */

/* The deployment's status, or invalid when id names none. */
static jv dep_status(struct nn_client *c, const char *id)
{
	enum nn_code code;
	char err[NN_ERRLEN];
	jv r = dcall(c, "local", "/deploy/status", jv_object_set(jv_object(), jv_string("id"), jv_string(id)),
		     &code, err);
	if (!jv_is_valid(r) && code != NN_E_BAD_BODY && code != NN_E_UNKNOWN_BEHAVIOR) {
		nn_client_close(c);
		nn_die(exit_for(code), "%s", err);
	}
	return r;
}

static int final_state(const char *s)
{
	return !strcmp(s, "done") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

static int status_exit(jv st)
{
	const char *s = "", *reason = NULL;
	int64_t x = 0;
	nn_json_get_str(st, "state", &s, NULL);
	nn_json_get_str(st, "reason", &reason, NULL);
	if (!strcmp(s, "done")) {
		nn_json_get_int(st, "status", &x, NULL);
		return (int)x;
	}
	nn_error("deployment %s: %s", s, reason ? reason : "no reason given");
	return !strcmp(s, "cancelled") ? 1 : NN_EX_UNAVAILABLE;
}

/* Copy what a remote allocation's stream gained since *off to fd; 1 when
 * bytes came, 0 when none, -1 on a refusal.  *final: the allocation ended. */
static int pump(struct nn_client *c, jv a, const char *stream, int64_t *off, int fd, int *final)
{
	const char *prov, *lease, *name, *data;
	enum nn_code code;
	char err[NN_ERRLEN];
	jv b, r;
	int got = 0;
	if (nn_json_get_str(a, "provider", &prov, NULL) < 0 || nn_json_get_str(a, "lease", &lease, NULL) < 0 ||
	    nn_json_get_str(a, "name", &name, NULL) < 0)
		return -1;
	b = jv_object_set(jv_object(), jv_string("lease"), jv_string(lease));
	b = jv_object_set(b, jv_string("name"), jv_string(name));
	b = jv_object_set(b, jv_string("stream"), jv_string(stream));
	b = jv_object_set(b, jv_string("offset"), jv_number((double)*off));
	b = jv_object_set(b, jv_string("max"), jv_number(65536));
	r = dcall(c, prov, "/public/deploy/logs", b, &code, err);
	if (!jv_is_valid(r)) {
		nn_warn("logs of %s: %s", name, err);
		return -1;
	}
	if (nn_json_get_str(r, "data", &data, NULL) == 0 && *data) {
		size_t dl = strlen(data);
		uint8_t *buf = nn_xmalloc(dl + 1);
		int n = nn_b64_decode(buf, dl + 1, data, dl);
		if (n > 0) {
			nn_write_all(fd, buf, (size_t)n);
			*off += n;
			got = 1;
		}
		free(buf);
	}
	{
		jv fin = jv_object_get(jv_copy(r), jv_string("final"));
		*final = jv_get_kind(fin) == JV_KIND_TRUE;
		jv_free(fin);
	}
	jv_free(r);
	return got;
}

/* Stream one allocation's logs; with follow until it ends. */
static void stream_logs(struct nn_client *c, jv a, int follow)
{
	int64_t oo = 0, oe = 0;
	for (;;) {
		int fo = 0, fe = 0, go, ge;
		go = pump(c, a, "stdout", &oo, 1, &fo);
		ge = pump(c, a, "stderr", &oe, 2, &fe);
		if (go < 0 || ge < 0)
			return;
		if (go || ge)
			continue;
		if (!follow || (fo && fe) || got_int)
			return;
		poll(NULL, 0, 100);
	}
}

static int cmd_logs(struct nn_client *c, jv st, int argc, char **argv, int follow)
{
	jv allocs = jv_object_get(jv_copy(st), jv_string("allocations"));
	const char *want = argc > 0 ? argv[0] : NULL;
	int n = 0;
	catch_int();
	jv_array_foreach(allocs, i, a) {
		const char *name = "";
		nn_json_get_str(a, "name", &name, NULL);
		if (!want || !strcmp(want, name)) {
			stream_logs(c, a, follow);
			n++;
		}
		jv_free(a);
	}
	jv_free(allocs);
	if (!n) {
		nn_error("no allocation %s%s%s in this deployment", want ? "'" : "", want ? want : "", want ? "'" : "");
		return NN_EX_DATAERR;
	}
	return 0;
}

/* ---- results ---- */

/* A body naming allocation a (borrowed) under its lease, for its provider. */
static jv alloc_body(jv a)
{
	const char *lease = "", *name = "";
	nn_json_get_str(a, "lease", &lease, NULL);
	nn_json_get_str(a, "name", &name, NULL);
	return jv_object_set(jv_object_set(jv_object(), jv_string("lease"), jv_string(lease)), jv_string("name"),
			     jv_string(name));
}

/* All the bytes behavior be (/public/deploy/logs or /output) of a's
 * provider gives for key=value, into the new file path (written beside it
 * and renamed into place only when complete).  0, or -1 + err. */
static int fetch_file(struct nn_client *c, jv a, const char *be, const char *key, const char *value,
		      const char *path, char *err)
{
	const char *prov = "";
	char *tmp = nn_xasprintf("%s.part", path);
	int64_t off = 0;
	int fd, rc = -1;
	nn_json_get_str(a, "provider", &prov, NULL);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		nn_seterr(err, "cannot write '%s': %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	for (;;) {
		enum nn_code code;
		jv b = jv_object_set(alloc_body(a), jv_string(key), jv_string(value)), r;
		const char *data = "";
		int64_t size = 0;
		b = jv_object_set(b, jv_string("offset"), jv_number((double)off));
		b = jv_object_set(b, jv_string("max"), jv_number(196608));
		r = dcall(c, prov, be, b, &code, err);
		if (!jv_is_valid(r))
			break;
		nn_json_get_str(r, "data", &data, NULL);
		nn_json_get_int(r, "size", &size, NULL);
		if (*data) {
			size_t dl = strlen(data);
			uint8_t *buf = nn_xmalloc(dl + 1);
			int n = nn_b64_decode(buf, dl + 1, data, dl);
			if (n < 0 || nn_write_all(fd, buf, (size_t)n) < 0) {
				nn_seterr(err, n < 0 ? "the provider sent bad base64" : "cannot write '%s': %s", tmp,
					  strerror(errno));
				free(buf);
				jv_free(r);
				break;
			}
			off += n;
			free(buf);
		}
		if (!*data || off >= size) {
			jv_free(r);
			rc = 0;
			break;
		}
		jv_free(r);
	}
	if (close(fd) < 0 && rc == 0)
		rc = nn_seterr(err, "cannot write '%s': %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) < 0)
		rc = nn_seterr(err, "cannot rename '%s': %s", tmp, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* One JSON value (consumed) into path, atomically (nn_write_file); 0 or
 * -1 + err. */
static int write_json(const char *path, jv v, char *err)
{
	char *t = nn_json_dump(v);
	int rc = nn_write_file(path, t, strlen(t), 0644, err);
	jv_free(v);
	free(t);
	return rc;
}

struct results {
	int download;		/* fetch uploaded outputs from their URLs */
	int missing, bad;	/* what could not be fetched; checksums that failed */
};

static void not_fetched(struct results *R, const char *sub, const char *what, const char *why)
{
	nn_error("%s/%s: not fetched: %s", sub, what, why);
	R->missing++;
}

/* One output of allocation a (its entry in the result, or null when the
 * result names none) into sub/outputs/PATH: from its URL when it was
 * uploaded (and R->download), else from the provider, checked against the
 * sha256 the provider computed when it stored it.  Its line for
 * outputs.json. */
static jv one_output(struct nn_client *c, struct results *R, jv a, const char *sub, const char *path, jv up)
{
	const char *url = NULL, *sha = NULL, *uerr = NULL;
	char err[NN_ERRLEN], hex[65], *base = nn_xasprintf("%s/outputs", sub), *dest = NULL;
	const char *source = NULL;
	uint64_t size = 0;
	jv line = jv_object_set(jv_object(), jv_string("path"), jv_string(path));
	if (jv_get_kind(up) == JV_KIND_OBJECT) {
		nn_json_get_str(up, "url", &url, NULL);
		nn_json_get_str(up, "sha256", &sha, NULL);
		nn_json_get_str(up, "error", &uerr, NULL);
		static const char *const keep[] = { "url", "size", "sha256", "commit", "error", NULL };
		for (int i = 0; keep[i]; i++)
			if (nn_json_has(up, keep[i]))
				line = jv_object_set(line, jv_string(keep[i]), jv_object_get(jv_copy(up), jv_string(keep[i])));
	}
	if (sha && !*sha)
		sha = NULL;	/* a git tree: no file to verify */
	if (nn_mkdirs(base, 0755, err) < 0 || nn_storage_join(base, path, &dest, err) < 0) {
		not_fetched(R, sub, path, err);
		goto done;
	}
	{	/* the output's own directories below outputs/ */
		char *slash = strrchr(dest, '/');
		*slash = 0;
		if (nn_mkdirs(dest, 0755, err) < 0) {
			*slash = '/';
			not_fetched(R, sub, path, err);
			goto done;
		}
		*slash = '/';
	}
	if (url && sha && !uerr && !R->download) {
		line = jv_object_set(line, jv_string("file"), jv_null());
		goto done;
	}
	if (url && sha && !uerr) {
		struct nn_storage_opts o;
		struct nn_storage_result r;
		nn_storage_opts_init(&o);
		o.sha256 = sha;
		if (nn_storage_fetch(url, dest, &o, &r, err) == 0)
			source = "url";
		else
			line = jv_object_set(line, jv_string("url_error"), jv_string(err));
	}
	if (!source) {
		if (fetch_file(c, a, "/public/deploy/output", "path", path, dest, err) < 0) {
			not_fetched(R, sub, path, err);
			goto done;
		}
		source = "provider";
	}
	if (nn_storage_sha256_file(dest, hex, &size, err) < 0) {
		not_fetched(R, sub, path, err);
		goto done;
	}
	if (sha && strcmp(hex, sha) != 0) {
		nn_error("%s/outputs/%s: sha256 %s, not the %s it was stored with: removed", sub, path, hex, sha);
		unlink(dest);
		R->bad++;
		source = NULL;
		goto done;
	}
	line = jv_object_set(line, jv_string("size"), jv_number((double)size));
	line = jv_object_set(line, jv_string("sha256"), jv_string(hex));
	line = jv_object_set(line, jv_string("verified"), jv_bool(sha != NULL));
done:
	line = jv_object_set(line, jv_string("source"), source ? jv_string(source) : jv_null());
	if (source)
		line = jv_object_set(line, jv_string("file"), jv_string(dest + strlen(sub) + 1));
	else if (!nn_json_has(line, "file"))
		line = jv_object_set(line, jv_string("file"), jv_null());
	free(base);
	free(dest);
	return line;
}

/* Everything of allocation a into sub: its state as the orchestrator
 * knows it, and from its provider its result, logs and outputs. */
static void one_results(struct nn_client *c, struct results *R, jv a, const char *sub)
{
	const char *prov = "";
	char err[NN_ERRLEN], *p;
	enum nn_code code;
	jv res, outs, ups, lines = jv_array();
	p = nn_xasprintf("%s/state.json", sub);
	if (write_json(p, jv_copy(a), err) < 0)
		not_fetched(R, sub, "state.json", err);
	free(p);
	nn_json_get_str(a, "provider", &prov, NULL);
	if (!*prov) {
		not_fetched(R, sub, "result.json", "the allocation was never placed");
		jv_free(lines);
		return;
	}
	res = dcall(c, prov, "/public/deploy/result", alloc_body(a), &code, err);
	if (!jv_is_valid(res)) {
		/* the provider is gone or refuses: nothing more from it; what an
		 * earlier call fetched stays */
		char why[NN_ERRLEN + 128];
		snprintf(why, sizeof why, "provider %.80s: %s", prov, err);
		not_fetched(R, sub, "result.json, stdout.log, stderr.log and outputs", why);
		jv_free(lines);
		return;
	}
	p = nn_xasprintf("%s/result.json", sub);
	if (write_json(p, jv_copy(res), err) < 0)
		not_fetched(R, sub, "result.json", err);
	free(p);
	for (int i = 0; i < 2; i++) {
		const char *stream = i ? "stderr" : "stdout";
		p = nn_xasprintf("%s/%s.log", sub, stream);
		if (fetch_file(c, a, "/public/deploy/logs", "stream", stream, p, err) < 0) {
			char what[16];
			snprintf(what, sizeof what, "%s.log", stream);
			not_fetched(R, sub, what, err);
		}
		free(p);
	}
	outs = jv_object_get(jv_copy(res), jv_string("outputs"));
	ups = jv_object_get(jv_object_get(jv_copy(res), jv_string("result")), jv_string("outputs"));
	if (jv_get_kind(outs) == JV_KIND_ARRAY)
		jv_array_foreach(outs, i, o) {
			const char *path;
			jv up = jv_null();
			if (nn_json_get_str(o, "path", &path, NULL) == 0) {
				if (jv_get_kind(ups) == JV_KIND_ARRAY)
					jv_array_foreach(ups, k, u) {
						const char *q;
						if (jv_get_kind(up) == JV_KIND_NULL && nn_json_get_str(u, "path", &q, NULL) == 0 &&
						    !strcmp(q, path)) {
							jv_free(up);
							up = jv_copy(u);
						}
						jv_free(u);
					}
				lines = jv_array_append(lines, one_output(c, R, a, sub, path, up));
			}
			jv_free(up);
			jv_free(o);
		}
	p = nn_xasprintf("%s/outputs.json", sub);
	if (write_json(p, lines, err) < 0)
		not_fetched(R, sub, "outputs.json", err);
	free(p);
	jv_free(outs);
	jv_free(ups);
	jv_free(res);
}

static int cmd_results(struct nn_client *c, jv st, const char *dir, int download)
{
	jv allocs = jv_object_get(jv_copy(st), jv_string("allocations")), seen = jv_object();
	struct results R = { download, 0, 0 };
	struct stat sb;
	char err[NN_ERRLEN];
	if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
		nn_die(NN_EX_IOERR, "results: '%s' is not a directory", dir);
	if (nn_mkdirs(dir, 0755, err) < 0)
		nn_die(NN_EX_IOERR, "%s", err);
	jv_array_foreach(allocs, i, a) {
		const char *name = "";
		char *sub;
		int copy;
		jv k;
		nn_json_get_str(a, "name", &name, NULL);
		/* redundant copies of an allocation: NAME, NAME.1, NAME.2 … */
		k = jv_object_get(jv_copy(seen), jv_string(name));
		copy = jv_get_kind(k) == JV_KIND_NUMBER ? (int)jv_number_value(k) : 0;
		jv_free(k);
		seen = jv_object_set(seen, jv_string(name), jv_number(copy + 1));
		sub = copy ? nn_xasprintf("%s/%s.%d", dir, name, copy) : nn_xasprintf("%s/%s", dir, name);
		if (!nn_path_plain(name) || nn_mkdirs(sub, 0755, err) < 0)
			nn_die(NN_EX_IOERR, "cannot make '%s': %s", sub, nn_path_plain(name) ? err : "not a plain name");
		one_results(c, &R, a, sub);
		printf("%s\n", sub);
		fflush(stdout);
		free(sub);
		jv_free(a);
	}
	jv_free(seen);
	jv_free(allocs);
	if (R.missing)
		nn_error("results: %d thing%s could not be fetched (listed above)", R.missing, R.missing == 1 ? "" : "s");
	return R.missing ? NN_EX_UNAVAILABLE : R.bad ? NN_EX_DATAERR : 0;
}

int nn_run_on_deployment(const char *cmd, int argc, char **argv)
{
	struct nn_client c;
	const char *id;
	int follow = 0, rc = 0, ai = 1, download = 1;
	jv st;
	/* no getopt here: the allocation commands parse the same argv after
	 * this when it names no deployment, and getopt keeps state */
	if (ai < argc && !strcmp(argv[ai], "-f") && !strcmp(cmd, "logs")) {
		follow = 1;
		ai++;
	}
	if (ai < argc && !strcmp(argv[ai], "--no-download") && !strcmp(cmd, "results")) {
		download = 0;
		ai++;
	}
	if (ai >= argc || argv[ai][0] == '-')
		return -1;	/* the allocation commands say what is wrong */
	id = argv[ai];
	if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32)
		return -1;
	dopen(&c, NULL);
	st = dep_status(&c, id);
	if (!jv_is_valid(st)) {
		nn_client_close(&c);
		return -1;
	}
	if (!strcmp(cmd, "results") ? argc - ai != 2
	    : !strcmp(cmd, "logs") ? argc - ai > 2 : argc - ai != 1) {
		jv_free(st);
		nn_client_close(&c);
		return -1;
	}
	if (!strcmp(cmd, "status")) {
		print_line(st);
		st = jv_invalid();
	} else if (!strcmp(cmd, "cancel")) {
		print_line(mcall(&c, "local", "/deploy/cancel", jv_object_set(jv_object(), jv_string("id"), jv_string(id))));
	} else if (!strcmp(cmd, "wait")) {
		const char *s = "";
		catch_int();
		for (;;) {
			nn_json_get_str(st, "state", &s, NULL);
			if (final_state(s) || got_int)
				break;
			poll(NULL, 0, 100);
			jv_free(st);
			st = dep_status(&c, id);
			if (!jv_is_valid(st))
				nn_die(NN_EX_UNAVAILABLE, "deployment %s is gone", id);
		}
		rc = got_int ? 130 : status_exit(st);
	} else if (!strcmp(cmd, "logs")) {
		rc = cmd_logs(&c, st, argc - ai - 1, argv + ai + 1, follow);
	} else if (!strcmp(cmd, "results")) {
		rc = cmd_results(&c, st, argv[ai + 1], download);
	}
	jv_free(st);
	nn_client_close(&c);
	return rc;
}

void nn_run_ls_deployments(int all)
{
	struct nn_client c;
	enum nn_code code;
	char err[NN_ERRLEN];
	jv r, list;
	dopen(&c, NULL);
	r = dcall(&c, "local", "/deploy/list", jv_object_set(jv_object(), jv_string("all"), jv_bool(all)), &code, err);
	nn_client_close(&c);
	if (!jv_is_valid(r))
		return;		/* a node that does not deploy has none */
	list = jv_object_get(r, jv_string("deployments"));
	if (jv_get_kind(list) == JV_KIND_ARRAY)
		jv_array_foreach(list, i, d)
			print_line(jv_object_set(d, jv_string("kind"), jv_string("deployment")));
	jv_free(list);
}

/* ---- one command anywhere in the swarm ---- */

int nn_run_swarm(jv body, int detach)
{
	jv spec = jv_object_get(jv_copy(body), jv_string("spec")), a = jv_object(), res, x, ens;
	struct follow f;
	int st;
	a = jv_object_set(a, jv_string("type"), jv_string("task"));
	a = jv_object_set(a, jv_string("command"), jv_object_get(jv_copy(spec), jv_string("command")));
	if (jv_get_kind(x = jv_object_get(jv_copy(spec), jv_string("executor"))) == JV_KIND_STRING)
		a = jv_object_set(a, jv_string("executor"), x);
	else
		jv_free(x);
	if (jv_get_kind(x = jv_object_get(jv_copy(spec), jv_string("image"))) == JV_KIND_STRING)
		a = jv_object_set(a, jv_string("image"), x);
	else
		jv_free(x);
	if (jv_get_kind(x = jv_object_get(jv_copy(spec), jv_string("workdir"))) == JV_KIND_STRING)
		a = jv_object_set(a, jv_string("workdir"), x);
	else
		jv_free(x);
	a = jv_object_set(a, jv_string("env"), jv_object_get(jv_copy(spec), jv_string("env")));
	res = jv_object_get(jv_copy(spec), jv_string("resources"));
	{
		int have = jv_get_kind(res) == JV_KIND_OBJECT;
		jv r = jv_object(), c = have ? jv_object_get(jv_copy(res), jv_string("cpu")) : jv_invalid(), m;
		r = jv_object_set(r, jv_string("cpu"), jv_get_kind(c) == JV_KIND_NUMBER ? c : (jv_free(c), jv_number(0.1)));
		m = have ? jv_object_get(jv_copy(res), jv_string("memory")) : jv_invalid();
		if (jv_get_kind(m) == JV_KIND_STRING) {
			uint64_t v;
			if (nn_parse_size(jv_string_value(m), &v) < 0)
				nn_die(NN_EX_USAGE, "--memory: '%s' is not a size", jv_string_value(m));
			r = jv_object_set(r, jv_string("ram"), jv_number((double)v));
		}
		jv_free(m);
		a = jv_object_set(a, jv_string("resources"), r);
	}
	jv_free(res);
	jv_free(spec);
	jv_free(body);
	ens = jv_object_set(jv_object(), jv_string("allocations"),
			    jv_object_set(jv_object(), jv_string("job"), a));
	ens = jv_object_set(ens, jv_string("name"), jv_string("job"));
	catch_int();
	follow_open(&f);
	f.quiet = 1;
	start(&f, ens, 0);
	if (detach) {
		printf("%s\n", f.id);
		follow_close(&f);
		return 0;
	}
	if (follow_until(&f, until_running, -1) < 0) {
		follow_close(&f);
		return NN_EX_UNAVAILABLE;
	}
	{
		const char *kind = "";
		nn_json_get_str(f.last, "kind", &kind, NULL);
		if (strcmp(kind, "deploy.running") != 0 && strcmp(kind, "deploy.done") != 0) {
			st = event_exit(f.last);
			follow_close(&f);
			return st;
		}
	}
	{
		jv s = dep_status(&f.cl, f.id), allocs = jv_object_get(jv_copy(s), jv_string("allocations"));
		if (jv_get_kind(allocs) == JV_KIND_ARRAY)
			jv_array_foreach(allocs, i, al) {
				stream_logs(&f.cl, al, 1);
				jv_free(al);
			}
		jv_free(allocs);
		jv_free(s);
	}
	{
		const char *kind = "";
		nn_json_get_str(f.last, "kind", &kind, NULL);
		if (strcmp(kind, "deploy.done") != 0 && follow_until(&f, until_done, -1) < 0) {
			follow_close(&f);
			return NN_EX_UNAVAILABLE;
		}
	}
	st = event_exit(f.last);
	follow_close(&f);
	return st;
}
