/*
 * events — what a node did and why, as one stream of structured events
 * (man/nunet-events.5): time, node, level, kind, trace and span ids, and
 * fields.  Events are numbered, kept in the node's store with a retention
 * limit, handed to live followers, and optionally written to stderr as JSON
 * lines.
 *
 * Emitting never blocks on the disk: events are queued in memory and written
 * in one transaction per batch (every flush_ms, or sooner when batch_max are
 * waiting).  A kill -9 loses at most the events of the last flush interval.
 */
#ifndef NN_EVENTS_H
#define NN_EVENTS_H

#include <jv.h>
#include <stdint.h>
#include "db.h"
#include "log.h"
#include "util.h"

struct nn_events;

struct nn_events_opts {
	int64_t max_rows;	/* retention: keep at most this many (0: no limit) */
	int64_t max_age_ms;	/* retention: drop older than this (0: no limit) */
	int batch_max;		/* flush when this many are queued */
	int stderr_fd;		/* -1, or write each event there as a JSON line */
};
#define NN_EVENTS_OPTS_DEFAULT { 1000000, 0, 4096, -1 }

/* db and did are borrowed and must outlive the events object. */
struct nn_events *nn_events_open(struct nn_db *db, const char *did,
				 const struct nn_events_opts *o, char *err);
/* Also write each event at or above level max_level to fd as a JSON line
 * (fd -1: stop). */
void nn_events_set_fd(struct nn_events *ev, int fd, int max_level);
/* Flush and free. */
void nn_events_close(struct nn_events *ev);

/* Record an event; fields (an object, or null) is consumed.  trace/span may
 * be NULL.  Returns the event's sequence number. */
uint64_t nn_events_emit(struct nn_events *ev, enum nn_level lv, const char *kind,
			const char *trace, const char *span, jv fields);
/* The same with fields already serialized (a JSON object as text, len
 * bytes): the cheap path for events recorded on every message. */
uint64_t nn_events_emit_text(struct nn_events *ev, enum nn_level lv, const char *kind,
			     const char *trace, const char *span, const char *fields, size_t len);
/* Write queued events now (one transaction) and apply retention. */
int nn_events_flush(struct nn_events *ev, char *err);
size_t nn_events_queued(const struct nn_events *ev);

/*
 * Live followers: fn is called with every event (borrowed jv, as the
 * schema prints it) right after it is emitted.  fn returns -1 to be
 * removed.  Returns an id for nn_events_unfollow.
 */
typedef int nn_events_fn(void *arg, jv event);
int nn_events_follow(struct nn_events *ev, nn_events_fn *fn, void *arg);
/* The same for the kinds in a NULL-terminated list only (which must live as
 * long as the follower): an event no one follows is stored without being
 * built as a jv, which is most of what recording one costs. */
int nn_events_follow_kinds(struct nn_events *ev, const char *const *kinds, nn_events_fn *fn,
			   void *arg);
void nn_events_unfollow(struct nn_events *ev, int id);

struct nn_events_stats {
	uint64_t emitted, stored, expired, flushes, failed_flushes;
	uint64_t next_seq;
};
void nn_events_stats(const struct nn_events *ev, struct nn_events_stats *s);

/*
 * Query a store (the node's, opened by anyone): events with seq > after_seq
 * and ts >= since_ms, of the given kind prefix (NULL: all; "msg" matches
 * "msg.in"), at or above level (NN_LOG_DEBUG: all), with the trace id
 * (NULL: any), oldest first, at most limit (0: all).  fn gets each event
 * (borrowed); returning -1 stops.  did names the node in the output.
 */
struct nn_events_filter {
	uint64_t after_seq;
	int64_t since_ms;
	const char *kind;
	int level;
	const char *trace;
	int64_t limit;
};
int nn_events_query(struct nn_db *db, const char *did, const struct nn_events_filter *f,
		    nn_events_fn *fn, void *arg, char *err);
/* Does event (borrowed) pass the filter's kind, level and trace? */
int nn_events_match(const struct nn_events_filter *f, jv event);

#endif
