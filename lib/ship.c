/*
 * ship — glue between the node's events and metrics and lib/sink.  Sink
 * workers report trouble from their own threads; those sentences are
 * parked under a mutex and logged by the loop's timer, so the event store
 * is only ever touched from the loop thread.
 */
#include "ship.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "events.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "sink.h"
#include "util.h"

#define PARKED_MAX 16

struct target {
	struct nn_sink *sink;
	char *url;		/* for messages: the worker may speak before open returns */
	int metrics;		/* 1: metrics, 0: events */
	int level;		/* events at or above */
	char *kind;		/* events of this kind family, or NULL */
	int64_t interval_ms;	/* metrics */
	int64_t due;
	struct ship *ship;
};

struct ship {
	struct nn_node *n;
	struct target *t;
	int nt;
	int follower;
	struct nn_watch *timer;
	pthread_mutex_t mu;
	char parked[PARKED_MAX][256];
	int nparked, parked_warn[PARKED_MAX];
};

static void sink_log(void *arg, int warn, const char *msg)
{
	struct target *t = arg;
	struct ship *s = t->ship;
	pthread_mutex_lock(&s->mu);
	if (s->nparked < PARKED_MAX) {
		snprintf(s->parked[s->nparked], sizeof s->parked[0], "sink %s: %s", t->url, msg);
		s->parked_warn[s->nparked++] = warn;
	}
	pthread_mutex_unlock(&s->mu);
}

static int on_event(void *arg, jv event)
{
	struct ship *s = arg;
	char *line = NULL;
	const char *kind = NULL, *lv = NULL;
	int level;

	nn_json_get_str(event, "kind", &kind, NULL);
	nn_json_get_str(event, "level", &lv, NULL);
	level = lv ? nn_log_parse_level(lv) : NN_LOG_INFO;
	for (int i = 0; i < s->nt; i++) {
		struct target *t = &s->t[i];
		size_t kl;
		if (t->metrics || level > t->level)
			continue;
		if (t->kind && (!kind || strncmp(kind, t->kind, (kl = strlen(t->kind))) ||
				(kind[kl] && kind[kl] != '.')))
			continue;
		if (!line)
			line = nn_json_dump(event);
		nn_sink_push(t->sink, line, strlen(line));
	}
	free(line);
	return 0;
}

/* Influx line protocol escapes for tag values: commas, spaces, equals. */
static void tag_escape(struct nn_buf *b, const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i] == ',' || v[i] == ' ' || v[i] == '=' || v[i] == '\\')
			nn_buf_addc(b, '\\');
		nn_buf_addc(b, v[i]);
	}
}

/*
 * One Prometheus sample line, name{k="v",…} value, as Influx line
 * protocol: name,node=DID,k=v value=VALUE TIMESTAMP_NS.  Returns -1 for a
 * line that is not a sample.
 */
static int to_influx(struct nn_buf *b, const char *line, const char *did, int64_t ts_ms)
{
	const char *p = line, *name_end, *val;
	if (!*p || *p == '#')
		return -1;
	name_end = p + strcspn(p, "{ ");
	if (*name_end == '\0')
		return -1;
	nn_buf_add(b, p, (size_t)(name_end - p));
	nn_buf_adds(b, ",node=");
	tag_escape(b, did, strlen(did));
	p = name_end;
	if (*p == '{') {
		p++;
		while (*p && *p != '}') {
			const char *eq = strchr(p, '='), *q, *close;
			if (!eq || eq[1] != '"')
				return -1;
			nn_buf_addc(b, ',');
			nn_buf_add(b, p, (size_t)(eq - p));
			nn_buf_addc(b, '=');
			q = eq + 2;
			close = strchr(q, '"');
			if (!close)
				return -1;
			tag_escape(b, q, (size_t)(close - q));
			p = close + 1;
			if (*p == ',')
				p++;
		}
		if (*p != '}')
			return -1;
		p++;
	}
	while (*p == ' ')
		p++;
	val = p;
	if (!*val)
		return -1;
	nn_buf_adds(b, " value=");
	nn_buf_add(b, val, strcspn(val, " "));
	nn_buf_addf(b, " %lld000000", (long long)ts_ms);
	return 0;
}

static void push_metrics(struct ship *s, struct target *t)
{
	struct nn_buf text = NN_BUF_INIT, line = NN_BUF_INIT;
	int64_t now = nn_now_ms();
	char *save = NULL, *l;

	nn_node_metrics_text(s->n, &text);
	if (!text.data)
		return;
	for (l = strtok_r(text.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		nn_buf_reset(&line);
		if (to_influx(&line, l, nn_node_did(s->n), now) == 0)
			nn_sink_push(t->sink, line.data, line.len);
	}
	nn_buf_release(&line);
	nn_buf_release(&text);
}

/* Log what the sink workers parked (on the loop thread). */
static void drain_parked(struct ship *s)
{
	char msgs[PARKED_MAX][256];
	int warn[PARKED_MAX], n;

	pthread_mutex_lock(&s->mu);
	n = s->nparked;
	memcpy(msgs, s->parked, sizeof msgs);
	memcpy(warn, s->parked_warn, sizeof warn);
	s->nparked = 0;
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < n; i++)
		nn_log(warn[i] ? NN_LOG_WARN : NN_LOG_INFO, "%s", msgs[i]);
}

static void on_tick(struct nn_loop *l, void *arg)
{
	struct ship *s = arg;
	int64_t now = nn_mono_ms();

	drain_parked(s);
	for (int i = 0; i < s->nt; i++)
		if (s->t[i].metrics && now >= s->t[i].due) {
			push_metrics(s, &s->t[i]);
			s->t[i].due = now + s->t[i].interval_ms;
		}
}

static void sink_metrics(struct nn_node *n, struct nn_buf *b, void *arg)
{
	struct ship *s = arg;
	static const char *const names[] = { "pushed", "sent", "dropped", "rejected", "queued" };
	nn_buf_adds(b, "# HELP nunet_sink_lines Lines handed to each sink, by what became of them.\n"
		       "# TYPE nunet_sink_lines gauge\n");
	for (int i = 0; i < s->nt; i++) {
		struct nn_sink_stats st;
		nn_sink_stats(s->t[i].sink, &st);
		const uint64_t v[] = { st.pushed, st.sent, st.dropped, st.rejected, st.queued };
		for (int k = 0; k < 5; k++)
			nn_buf_addf(b, "nunet_sink_lines{sink=\"%d\",state=\"%s\"} %llu\n", i, names[k],
				    (unsigned long long)v[k]);
	}
	nn_buf_adds(b, "# HELP nunet_sink_failed_attempts_total Deliveries that failed and were retried.\n"
		       "# TYPE nunet_sink_failed_attempts_total counter\n");
	for (int i = 0; i < s->nt; i++) {
		struct nn_sink_stats st;
		nn_sink_stats(s->t[i].sink, &st);
		nn_buf_addf(b, "nunet_sink_failed_attempts_total{sink=\"%d\"} %llu\n", i,
			    (unsigned long long)st.failed);
	}
}

static void ship_close(struct nn_node *n, void *arg)
{
	struct ship *s = arg;
	if (s->follower)
		nn_events_unfollow(nn_node_events(n), s->follower);
	nn_loop_remove(nn_node_loop(n), s->timer);
	/* a last metrics push, then give each sink a moment to deliver */
	for (int i = 0; i < s->nt; i++)
		if (s->t[i].metrics)
			push_metrics(s, &s->t[i]);
	for (int i = 0; i < s->nt; i++) {
		nn_sink_close(s->t[i].sink, 1000, NULL);
		free(s->t[i].kind);
		free(s->t[i].url);
	}
	drain_parked(s);	/* what the sinks said while closing */
	free(s->t);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int nn_ship_attach(struct nn_node *n, char *err)
{
	jv sinks = nn_node_config(n)->sinks;
	struct ship *s;
	char e[NN_ERRLEN];
	int any_events = 0, any_metrics = 0, nt;

	if (!jv_is_valid(sinks) || jv_get_kind(sinks) != JV_KIND_ARRAY ||
	    (nt = jv_array_length(jv_copy(sinks))) == 0)
		return 0;
	s = nn_xcalloc(1, sizeof *s);
	s->n = n;
	s->t = nn_xcalloc((size_t)nt, sizeof *s->t);
	pthread_mutex_init(&s->mu, NULL);
	for (int i = 0; i < nt; i++) {
		jv d = jv_array_get(jv_copy(sinks), i);
		struct target *t = &s->t[i];
		struct nn_sink_opts o;
		const char *url = NULL, *what = "events", *lv = NULL, *kind = NULL;
		int64_t iv = 10000;

		nn_json_get_str(d, "url", &url, NULL);
		nn_json_get_str(d, "what", &what, NULL);
		nn_json_get_str(d, "level", &lv, NULL);
		nn_json_get_str(d, "kind", &kind, NULL);
		nn_json_get_int(d, "interval_ms", &iv, NULL);
		t->ship = s;
		t->metrics = !strcmp(what, "metrics");
		t->level = lv ? nn_log_parse_level(lv) : NN_LOG_INFO;
		t->kind = kind ? nn_xstrdup(kind) : NULL;
		t->interval_ms = iv;
		t->url = nn_xstrdup(url ? url : "");
		nn_sink_opts_init(&o);
		o.log = sink_log;
		o.log_arg = t;
		t->sink = nn_sink_open(url, &o, e);
		jv_free(d);
		if (!t->sink) {
			s->nt = i;
			free(t->kind);
			free(t->url);
			ship_close(n, s);
			return nn_seterr(err, "sinks[%d]: %s", i, e);
		}
		s->nt = i + 1;
		any_events |= !t->metrics;
		any_metrics |= t->metrics;
	}
	if (any_events)
		s->follower = nn_events_follow(nn_node_events(n), on_event, s);
	s->timer = nn_loop_timer(nn_node_loop(n), 500, 500, on_tick, s, e);
	if (!s->timer) {
		ship_close(n, s);
		return nn_seterr(err, "sinks: %s", e);
	}
	nn_node_metrics_hook(n, sink_metrics, s);
	nn_node_on_close(n, ship_close, s);
	(void)any_metrics;
	return 0;
}
