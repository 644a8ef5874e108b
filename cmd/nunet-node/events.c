/*
 * nunet-node events and nunet-node metrics: read what a node did, from its
 * store (whether or not it runs), follow it live over the control socket,
 * and print its metrics in the Prometheus text format.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jq.h>
#include "client.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "util.h"

int nn_node_cmd_events(int argc, char **argv, const char *home);
int nn_node_cmd_metrics(int argc, char **argv, const char *home);

struct printer {
	jq_state *jq;
	uint64_t last_seq;
	char jqerr[NN_ERRLEN];
};

static void jq_err(void *arg, jv msg)
{
	struct printer *p = arg;
	if (p->jqerr[0])
		;	/* keep the first message: it names the problem */
	else if (jv_get_kind(msg) == JV_KIND_STRING)
		snprintf(p->jqerr, sizeof p->jqerr, "%s", jv_string_value(msg));
	else
		snprintf(p->jqerr, sizeof p->jqerr, "jq error");
	jv_free(msg);
}

static jv no_input(jq_state *jq, void *arg)
{
	return jv_invalid();
}

/* Print event (borrowed) when the --where program says true. */
static int print_event(void *arg, jv event)
{
	struct printer *p = arg;
	int64_t seq = 0;
	char *s;

	nn_json_get_int(event, "seq", &seq, NULL);
	if ((uint64_t)seq <= p->last_seq)
		return 0;
	p->last_seq = (uint64_t)seq;
	if (p->jq) {
		jv r;
		int yes = 0;
		jq_start(p->jq, jv_copy(event), 0);
		while (jv_is_valid(r = jq_next(p->jq))) {
			if (jv_get_kind(r) != JV_KIND_FALSE && jv_get_kind(r) != JV_KIND_NULL)
				yes = 1;
			jv_free(r);
		}
		jv_free(r);	/* an error while running counts as not matching */
		if (!yes)
			return 0;
	}
	s = nn_json_dump(event);
	fputs(s, stdout);
	fputc('\n', stdout);
	free(s);
	return 0;
}

/* --since: a duration ago ("10m", "30s") or milliseconds since the epoch. */
static int parse_since(const char *s, int64_t *out)
{
	int64_t ms;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (!*end && end != s && v > 100000000000LL) {
		*out = v;
		return 0;
	}
	if (nn_parse_duration_ms(s, &ms) < 0)
		return -1;
	*out = nn_now_ms() - ms;
	return 0;
}

static void usage_events(int code)
{
	fputs("usage: nunet-node [--home DIR] events [-f] [--since T] [--kind K] [--level L] [--trace ID]\n"
	      "                  [--where JQ] [--limit N]\n", code ? stderr : stdout);
	exit(code);
}

int nn_node_cmd_events(int argc, char **argv, const char *home_opt)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		{ "kind", required_argument, NULL, 'k' },
		{ "level", required_argument, NULL, 'l' },
		{ "trace", required_argument, NULL, 't' },
		{ "where", required_argument, NULL, 'w' },
		{ "limit", required_argument, NULL, 'n' },
		{ "home", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct nn_events_filter f = { 0, 0, NULL, NN_LOG_DEBUG, NULL, 0 };
	struct printer p = { NULL, 0, "" };
	const char *where = NULL, *home_arg = home_opt;
	char err[NN_ERRLEN], *home, *dbpath, *end;
	struct nn_client c;
	struct nn_db db = { NULL, 0 };
	enum nn_code code;
	int follow = 0, opt, rc = 0;
	uint64_t live_from = 0;

	while ((opt = getopt_long(argc, argv, "+fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': follow = 1; break;
		case 's':
			if (parse_since(optarg, &f.since_ms) < 0)
				nn_die(NN_EX_USAGE, "--since: '%s' is neither a duration (10m) nor epoch milliseconds", optarg);
			break;
		case 'k': f.kind = optarg; break;
		case 'l':
			if ((f.level = nn_log_parse_level(optarg)) < 0)
				nn_die(NN_EX_USAGE, "--level: expected error, warn, info or debug");
			break;
		case 't': f.trace = optarg; break;
		case 'w': where = optarg; break;
		case 'n':
			f.limit = strtoll(optarg, &end, 10);
			if (*end || f.limit < 1)
				nn_die(NN_EX_USAGE, "--limit: '%s' is not a positive number", optarg);
			break;
		case 'H': home_arg = optarg; break;
		case 'h': usage_events(0); break;
		default: usage_events(NN_EX_USAGE);
		}
	}
	if (optind != argc)
		usage_events(NN_EX_USAGE);
	if (where) {
		p.jq = jq_init();
		if (!p.jq)
			nn_die(NN_EX_SOFTWARE, "cannot start jq");
		jq_set_error_cb(p.jq, jq_err, &p);
		jq_set_input_cb(p.jq, no_input, NULL);
		if (!jq_compile(p.jq, where))
			nn_die(NN_EX_DATAERR, "--where: %s", p.jqerr[0] ? p.jqerr : "does not compile");
	}
	home = nn_home(home_arg, err);
	if (!home)
		nn_die(NN_EX_CONFIG, "%s", err);
	/* follow first, so nothing falls between the backlog and the live stream */
	if (follow) {
		jv body = jv_object(), env;
		body = jv_object_set(body, jv_string("follow"), jv_true());
		if (f.kind)
			body = jv_object_set(body, jv_string("kind"), jv_string(f.kind));
		if (f.trace)
			body = jv_object_set(body, jv_string("trace"), jv_string(f.trace));
		body = jv_object_set(body, jv_string("level"),
				     jv_string(f.level == NN_LOG_ERROR ? "error" : f.level == NN_LOG_WARN ? "warn" :
					       f.level == NN_LOG_INFO ? "info" : "debug"));
		if (nn_client_open(&c, home_arg, NULL, &code, err) < 0)
			nn_die(code == NN_E_UNAVAILABLE ? NN_EX_UNAVAILABLE : NN_EX_CONFIG, "%s", err);
		env = nn_client_call(&c, "local", "/node/events", body, 10000, &code, err);
		if (!jv_is_valid(env))
			nn_die(code == NN_E_TIMEOUT ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE, "%s", err);
		if (strcmp(nn_env_str(env, "type"), "reply") != 0) {
			char *s = nn_json_dump(env);
			nn_die(NN_EX_UNAVAILABLE, "the node refused to be followed: %s", s);
		}
		{
			jv b = jv_object_get(jv_copy(env), jv_string("body"));
			int64_t next = 0;
			nn_json_get_int(b, "next_seq", &next, NULL);
			live_from = (uint64_t)next;
			jv_free(b);
		}
		jv_free(env);
	}
	if (!follow && nn_client_open(&c, home_arg, NULL, &code, err) == 0) {
		/* a running node keeps its newest events in memory for up to a
		 * flush interval: have it store them, so what happened before
		 * this command is in what it prints */
		jv env = nn_client_call(&c, "local", "/node/events/flush", jv_object(), 10000, &code, err);
		if (!jv_is_valid(env) || strcmp(nn_env_str(env, "type"), "reply") != 0)
			nn_warn("the running node did not store its newest events; they may be missing");
		jv_free(env);
		nn_client_close(&c);
	}
	dbpath = nn_home_file(home, "node.db");
	if (sqlite3_open_v2(dbpath, &db.h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		nn_die(NN_EX_CONFIG, "cannot open '%s': %s", dbpath, db.h ? sqlite3_errmsg(db.h) : "no memory");
	}
	sqlite3_busy_timeout(db.h, 5000);
	{
		const char *did = "";
		struct nn_key k;
		char *keypath = nn_home_file(home, "key");
		if (nn_key_load(&k, keypath, getenv("NUNET_PASSPHRASE"), NULL) == 0)
			did = k.did;
		if (nn_events_query(&db, did, &f, print_event, &p, err) < 0)
			nn_die(NN_EX_IOERR, "%s", err);
		free(keypath);
	}
	sqlite3_close(db.h);
	fflush(stdout);
	if (follow) {
		/* the live stream: signed event envelopes from our node */
		if (p.last_seq + 1 < live_from)
			p.last_seq = live_from - 1;
		for (;;) {
			jv env;
			int jcode, r;
			while ((r = nn_jsonl_next(&c.in, &env, &jcode, err)) != NN_JSONL_NONE) {
				char verr[NN_ERRLEN];
				if (r == NN_JSONL_ERROR)
					continue;
				if (nn_env_verify(env, NULL, nn_now_ms(), verr) == NN_OK &&
				    !strcmp(nn_env_str(env, "type"), "event")) {
					jv ev = jv_object_get(jv_copy(env), jv_string("body"));
					print_event(&p, ev);
					jv_free(ev);
					fflush(stdout);
				}
				jv_free(env);
			}
			ssize_t n = nn_lines_read_fd(&c.in, c.fd);
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				nn_log(NN_LOG_ERROR, "the node closed the connection");
				rc = NN_EX_UNAVAILABLE;
				break;
			}
		}
		nn_client_close(&c);
	}
	if (p.jq)
		jq_teardown(&p.jq);
	free(dbpath);
	free(home);
	return rc;
}

int nn_node_cmd_metrics(int argc, char **argv, const char *home_opt)
{
	struct nn_client c;
	enum nn_code code;
	char err[NN_ERRLEN];
	const char *text;
	jv env, body;

	if (argc != 1) {
		fputs("usage: nunet-node [--home DIR] metrics\n", stderr);
		return NN_EX_USAGE;
	}
	if (nn_client_open(&c, home_opt, NULL, &code, err) < 0)
		nn_die(code == NN_E_UNAVAILABLE ? NN_EX_UNAVAILABLE : NN_EX_CONFIG, "%s", err);
	env = nn_client_call(&c, "local", "/node/metrics", jv_object(), 10000, &code, err);
	if (!jv_is_valid(env))
		nn_die(code == NN_E_TIMEOUT ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE, "%s", err);
	body = jv_object_get(jv_copy(env), jv_string("body"));
	if (nn_json_get_str(body, "text", &text, err) < 0)
		nn_die(NN_EX_UNAVAILABLE, "the node did not answer with metrics");
	fputs(text, stdout);
	jv_free(body);
	jv_free(env);
	nn_client_close(&c);
	return 0;
}
