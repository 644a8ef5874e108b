/*
 * events — an in-memory queue in front of the events table.  Sequence
 * numbers are given at emit time (continuing from the store's largest), so
 * a follower that reads the backlog from the store and then follows live
 * can stitch the two without gaps or repeats.
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "json.h"

static const char *const level_names[] = { "error", "warn", "info", "debug" };

struct queued {
	uint64_t seq;
	int64_t ts;
	int level;
	char *kind, *trace, *span, *fields;
};

struct follower {
	int id;
	nn_events_fn *fn;
	void *arg;
	const char *const *kinds;	/* NULL: every kind */
	struct follower *next;
};

struct nn_events {
	struct nn_db *db;
	const char *did;
	struct nn_events_opts o;
	struct queued *q;
	size_t nq, capq;
	uint64_t next_seq;
	struct follower *followers;
	int next_follower;
	struct nn_events_stats st;
	sqlite3_stmt *ins;
	int fd_level;
};

static jv event_json(const char *did, uint64_t seq, int64_t ts, int level, const char *kind,
		     const char *trace, const char *span, jv fields)
{
	jv e = jv_object();
	e = jv_object_set(e, jv_string("seq"), jv_number((double)seq));
	e = jv_object_set(e, jv_string("ts"), jv_number((double)ts));
	e = jv_object_set(e, jv_string("node"), jv_string(did));
	e = jv_object_set(e, jv_string("level"), jv_string(level_names[level]));
	e = jv_object_set(e, jv_string("kind"), jv_string(kind));
	if (trace)
		e = jv_object_set(e, jv_string("trace"), jv_string(trace));
	if (span)
		e = jv_object_set(e, jv_string("span"), jv_string(span));
	if (jv_get_kind(fields) != JV_KIND_OBJECT) {
		jv_free(fields);
		fields = jv_object();
	}
	return jv_object_set(e, jv_string("fields"), fields);
}

struct nn_events *nn_events_open(struct nn_db *db, const char *did,
				 const struct nn_events_opts *o, char *err)
{
	static const struct nn_events_opts def = NN_EVENTS_OPTS_DEFAULT;
	struct nn_events *ev = nn_xcalloc(1, sizeof *ev);
	sqlite3_stmt *st;

	ev->db = db;
	ev->did = did;
	ev->o = o ? *o : def;
	if (ev->o.batch_max <= 0)
		ev->o.batch_max = def.batch_max;
	ev->next_seq = 1;
	ev->fd_level = NN_LOG_DEBUG;
	if (sqlite3_prepare_v2(db->h, "SELECT COALESCE(MAX(seq), 0) FROM events", -1, &st, NULL) != SQLITE_OK) {
		nn_seterr(err, "events: %s", sqlite3_errmsg(db->h));
		free(ev);
		return NULL;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		ev->next_seq = (uint64_t)sqlite3_column_int64(st, 0) + 1;
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db->h, "INSERT INTO events (seq, ts, kind, trace, body, level, span)"
			       " VALUES (?, ?, ?, ?, ?, ?, ?)", -1, &ev->ins, NULL) != SQLITE_OK) {
		nn_seterr(err, "events: %s", sqlite3_errmsg(db->h));
		free(ev);
		return NULL;
	}
	ev->st.next_seq = ev->next_seq;
	return ev;
}

void nn_events_set_fd(struct nn_events *ev, int fd, int max_level)
{
	ev->o.stderr_fd = fd;
	ev->fd_level = max_level;
}

static void queued_free(struct queued *q)
{
	free(q->kind);
	free(q->trace);
	free(q->span);
	free(q->fields);
}

void nn_events_close(struct nn_events *ev)
{
	if (!ev)
		return;
	nn_events_flush(ev, NULL);
	for (size_t i = 0; i < ev->nq; i++)
		queued_free(&ev->q[i]);
	free(ev->q);
	while (ev->followers) {
		struct follower *f = ev->followers;
		ev->followers = f->next;
		free(f);
	}
	sqlite3_finalize(ev->ins);
	free(ev);
}

static int follows(const struct follower *f, const char *kind)
{
	if (!f->kinds)
		return 1;
	for (const char *const *k = f->kinds; *k; k++)
		if (!strcmp(*k, kind))
			return 1;
	return 0;
}

/* Does anyone look at an event of this kind as it is emitted? */
static int watched(const struct nn_events *ev, enum nn_level lv, const char *kind)
{
	if (ev->o.stderr_fd >= 0 && (int)lv <= ev->fd_level)
		return 1;
	for (const struct follower *f = ev->followers; f; f = f->next)
		if (follows(f, kind))
			return 1;
	return 0;
}

uint64_t nn_events_emit(struct nn_events *ev, enum nn_level lv, const char *kind,
			const char *trace, const char *span, jv fields)
{
	struct queued *q;
	int64_t ts = nn_now_ms();
	uint64_t seq = ev->next_seq++;

	if (jv_get_kind(fields) != JV_KIND_OBJECT) {
		jv_free(fields);
		fields = jv_object();
	}
	if (ev->nq == ev->capq) {
		ev->capq = ev->capq ? ev->capq * 2 : 256;
		ev->q = nn_xrealloc(ev->q, ev->capq * sizeof *ev->q);
	}
	q = &ev->q[ev->nq++];
	q->seq = seq;
	q->ts = ts;
	q->level = lv;
	q->kind = nn_xstrdup(kind);
	q->trace = trace ? nn_xstrdup(trace) : NULL;
	q->span = span ? nn_xstrdup(span) : NULL;
	q->fields = nn_json_dump(fields);
	ev->st.emitted++;
	ev->st.next_seq = ev->next_seq;

	if (watched(ev, lv, kind)) {
		jv e = event_json(ev->did, seq, ts, lv, kind, trace, span, fields);
		if (ev->o.stderr_fd >= 0 && (int)lv <= ev->fd_level) {
			char *line = nn_json_dump(e);
			size_t n = strlen(line);
			line = nn_xrealloc(line, n + 2);
			line[n] = '\n';
			if (write(ev->o.stderr_fd, line, n + 1) < 0) { /* stderr gone: nothing to do */ }
			free(line);
		}
		for (struct follower **p = &ev->followers; *p;) {
			struct follower *f = *p;
			if (!follows(f, kind)) {
				p = &f->next;
			} else if (f->fn(f->arg, e) < 0) {
				*p = f->next;
				free(f);
			} else {
				p = &f->next;
			}
		}
		jv_free(e);
	} else {
		jv_free(fields);
	}
	if (ev->nq >= (size_t)ev->o.batch_max)
		nn_events_flush(ev, NULL);
	return seq;
}

uint64_t nn_events_emit_text(struct nn_events *ev, enum nn_level lv, const char *kind,
			     const char *trace, const char *span, const char *fields, size_t len)
{
	struct queued *q;
	uint64_t seq;

	if (watched(ev, lv, kind)) {
		/* someone looks at the event itself: take the general path */
		jv f = nn_json_parse(fields, len, NULL);
		return nn_events_emit(ev, lv, kind, trace, span, f);
	}
	seq = ev->next_seq++;
	if (ev->nq == ev->capq) {
		ev->capq = ev->capq ? ev->capq * 2 : 256;
		ev->q = nn_xrealloc(ev->q, ev->capq * sizeof *ev->q);
	}
	q = &ev->q[ev->nq++];
	q->seq = seq;
	q->ts = nn_now_ms();
	q->level = lv;
	q->kind = nn_xstrdup(kind);
	q->trace = trace ? nn_xstrdup(trace) : NULL;
	q->span = span ? nn_xstrdup(span) : NULL;
	q->fields = nn_xmalloc(len + 1);
	memcpy(q->fields, fields, len);
	q->fields[len] = '\0';
	ev->st.emitted++;
	ev->st.next_seq = ev->next_seq;
	if (ev->nq >= (size_t)ev->o.batch_max)
		nn_events_flush(ev, NULL);
	return seq;
}

size_t nn_events_queued(const struct nn_events *ev)
{
	return ev->nq;
}

static int retain(struct nn_events *ev, char *err)
{
	char *sql;
	int r = 0;
	if (ev->o.max_rows > 0 && ev->next_seq > (uint64_t)ev->o.max_rows + 1) {
		sql = nn_xasprintf("DELETE FROM events WHERE seq < %llu",
				   (unsigned long long)(ev->next_seq - (uint64_t)ev->o.max_rows));
		r = nn_db_exec(ev->db, sql, err);
		free(sql);
		if (r == 0)
			ev->st.expired += (uint64_t)sqlite3_changes(ev->db->h);
	}
	if (r == 0 && ev->o.max_age_ms > 0) {
		sql = nn_xasprintf("DELETE FROM events WHERE ts < %lld",
				   (long long)(nn_now_ms() - ev->o.max_age_ms));
		r = nn_db_exec(ev->db, sql, err);
		free(sql);
		if (r == 0)
			ev->st.expired += (uint64_t)sqlite3_changes(ev->db->h);
	}
	return r;
}

int nn_events_flush(struct nn_events *ev, char *err)
{
	char e[NN_ERRLEN];
	size_t i;

	if (ev->nq == 0)
		return 0;
	if (nn_db_exec(ev->db, "BEGIN", e) < 0)
		goto fail;
	for (i = 0; i < ev->nq; i++) {
		struct queued *q = &ev->q[i];
		sqlite3_reset(ev->ins);
		sqlite3_bind_int64(ev->ins, 1, (sqlite3_int64)q->seq);
		sqlite3_bind_int64(ev->ins, 2, q->ts);
		sqlite3_bind_text(ev->ins, 3, q->kind, -1, SQLITE_STATIC);
		if (q->trace)
			sqlite3_bind_text(ev->ins, 4, q->trace, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(ev->ins, 4);
		sqlite3_bind_text(ev->ins, 5, q->fields, -1, SQLITE_STATIC);
		sqlite3_bind_text(ev->ins, 6, level_names[q->level], -1, SQLITE_STATIC);
		if (q->span)
			sqlite3_bind_text(ev->ins, 7, q->span, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(ev->ins, 7);
		if (sqlite3_step(ev->ins) != SQLITE_DONE) {
			snprintf(e, sizeof e, "sqlite: %s", sqlite3_errmsg(ev->db->h));
			sqlite3_reset(ev->ins);
			nn_db_exec(ev->db, "ROLLBACK", NULL);
			goto fail;
		}
	}
	sqlite3_reset(ev->ins);
	if (retain(ev, e) < 0 || nn_db_exec(ev->db, "COMMIT", e) < 0) {
		nn_db_exec(ev->db, "ROLLBACK", NULL);
		goto fail;
	}
	ev->st.stored += ev->nq;
	ev->st.flushes++;
	for (i = 0; i < ev->nq; i++)
		queued_free(&ev->q[i]);
	ev->nq = 0;
	return 0;
fail:
	ev->st.failed_flushes++;
	return nn_seterr(err, "events: cannot store %zu events: %s", ev->nq, e);
}

int nn_events_follow(struct nn_events *ev, nn_events_fn *fn, void *arg)
{
	return nn_events_follow_kinds(ev, NULL, fn, arg);
}

int nn_events_follow_kinds(struct nn_events *ev, const char *const *kinds, nn_events_fn *fn,
			   void *arg)
{
	struct follower *f = nn_xcalloc(1, sizeof *f);
	f->id = ++ev->next_follower;
	f->fn = fn;
	f->arg = arg;
	f->kinds = kinds;
	f->next = ev->followers;
	ev->followers = f;
	return f->id;
}

void nn_events_unfollow(struct nn_events *ev, int id)
{
	for (struct follower **p = &ev->followers; *p; p = &(*p)->next)
		if ((*p)->id == id) {
			struct follower *f = *p;
			*p = f->next;
			free(f);
			return;
		}
}

void nn_events_stats(const struct nn_events *ev, struct nn_events_stats *s)
{
	*s = ev->st;
}

static int level_of(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (s && !strcmp(s, level_names[i]))
			return i;
	return NN_LOG_INFO;
}

static int kind_matches(const char *want, const char *kind)
{
	size_t n;
	if (!want || !*want)
		return 1;
	n = strlen(want);
	return !strncmp(kind, want, n) && (kind[n] == '\0' || kind[n] == '.');
}

int nn_events_match(const struct nn_events_filter *f, jv event)
{
	const char *kind = NULL, *lv = NULL, *trace = NULL;
	nn_json_get_str(event, "kind", &kind, NULL);
	nn_json_get_str(event, "level", &lv, NULL);
	nn_json_get_str(event, "trace", &trace, NULL);
	if (!kind_matches(f->kind, kind ? kind : ""))
		return 0;
	if (level_of(lv) > f->level)
		return 0;
	if (f->trace && (!trace || strcmp(f->trace, trace)))
		return 0;
	return 1;
}

int nn_events_query(struct nn_db *db, const char *did, const struct nn_events_filter *f,
		    nn_events_fn *fn, void *arg, char *err)
{
	sqlite3_stmt *st;
	int rc;
	int64_t n = 0;
	const char *sql = "SELECT seq, ts, kind, trace, body, level, span FROM events"
			  " WHERE seq > ? AND ts >= ? AND (?3 IS NULL OR trace = ?3) ORDER BY seq";

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return nn_seterr(err, "events: %s", sqlite3_errmsg(db->h));
	sqlite3_bind_int64(st, 1, (sqlite3_int64)f->after_seq);
	sqlite3_bind_int64(st, 2, f->since_ms);
	if (f->trace)
		sqlite3_bind_text(st, 3, f->trace, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(st, 2);
		const char *body = (const char *)sqlite3_column_text(st, 4);
		int lv = level_of((const char *)sqlite3_column_text(st, 5));
		jv fields, e;
		if (!kind_matches(f->kind, kind) || lv > f->level)
			continue;
		fields = body ? jv_parse(body) : jv_object();
		if (!jv_is_valid(fields)) {
			jv_free(fields);
			fields = jv_object();
		}
		e = event_json(did, (uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), lv,
			       kind, (const char *)sqlite3_column_text(st, 3),
			       (const char *)sqlite3_column_text(st, 6), fields);
		int stop = fn(arg, e) < 0;
		jv_free(e);
		if (stop || (f->limit > 0 && ++n >= f->limit))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		nn_seterr(err, "events: %s", sqlite3_errmsg(db->h));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}
