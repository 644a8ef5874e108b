/*
 * sink — shipping events and metrics to what operators already run: syslog
 * (RFC 5424 over a local socket, TCP with octet counting, or UDP), Influx
 * line protocol over HTTP (VictoriaMetrics, InfluxDB) and the Elasticsearch
 * _bulk API (NDJSON).  A sink is opened from a URL-like spec:
 *
 *   syslog+unix:///dev/log          one RFC 5424 datagram per event
 *   syslog+tcp://127.0.0.1:6514     RFC 6587 octet counting ("LEN SP MSG")
 *   syslog+udp://127.0.0.1:514      one datagram per event
 *   influx+http://HOST:PORT/write?db=nunet   (also /api/v2/write?…, https)
 *   esbulk+http://HOST:PORT/INDEX/_bulk      (also https)
 *
 * Syslog specs take ?facility=NAME (default daemon) and ?app=NAME (default
 * the opts' app_name); the port defaults to 514.  Each syslog message is
 * "<PRI>1 TIMESTAMP HOST APP PID KIND - JSON": the event JSON is the MSG,
 * unchanged (no BOM); its "level" picks the severity (emerg alert crit
 * error|err warn|warning notice info debug; anything else is info), its
 * "kind" the MSGID (printable ASCII, 32 at most, "-" without one) and its
 * "ts" (milliseconds) the TIMESTAMP (UTC, milliseconds; the time of
 * sending without one); no structured data: the JSON carries it all.
 *
 * HTTP sinks POST one batch per request (at most batch_max lines and
 * 4 MiB): Influx lines joined by "\n" as text/plain; _bulk bodies as
 * {"index":{"_index":"INDEX"}} "\n" DOCUMENT "\n" per line, newline-ended,
 * as application/x-ndjson.  2xx is delivered; a _bulk answer with
 * "errors":true is read item by item ("status" of each).
 *
 * What is pushed is one line without its newline: an event JSON object for
 * syslog and esbulk, one Influx line-protocol line for influx.
 *
 * Limits: a syslog message is not truncated here (rsyslog's default
 * maxMessageSize is 8 KiB: raise it for large events); syslog+unix speaks
 * datagrams only (rsyslog imuxsock, journald); a spec with credentials in
 * its URL (https://user:pass@…) shows them wherever the spec is logged.
 *
 * Threads: each sink owns one worker thread that batches, delivers and
 * retries.  nn_sink_push() never blocks on the network: it copies the line
 * into a bounded queue under a short mutex and returns; when the queue is
 * full the line is dropped and counted.  A failed delivery is retried with
 * exponential backoff and jitter (opts.backoff_min_ms … backoff_max_ms)
 * while the queue keeps taking (and, once full, dropping) new lines.  Items
 * the receiver refuses for good (HTTP 4xx other than 408/429, _bulk items
 * with a 4xx status other than 429) are not retried: they count as
 * rejected.  Drops and delivery trouble are reported through opts.log at
 * most once per opts.log_interval_ms, from the worker thread.
 */
#ifndef NN_SINK_H
#define NN_SINK_H

#include <stddef.h>
#include <stdint.h>

struct nn_sink;

struct nn_sink_opts {
	size_t queue_max;		/* lines held waiting (default 10000) */
	size_t queue_bytes;		/* bytes held waiting (default 16 MiB) */
	size_t batch_max;		/* lines per request (default 500) */
	size_t line_max;		/* longer lines are rejected (default 1 MiB) */
	int64_t flush_ms;		/* longest a line waits for a batch (default 1000) */
	int64_t backoff_min_ms;		/* first retry delay (default 100) */
	int64_t backoff_max_ms;		/* cap of the delay (default 30000) */
	int64_t timeout_ms;		/* one connection/request (default 10000) */
	int64_t log_interval_ms;	/* at most one log line per this (default 60000) */
	const char *app_name;		/* syslog APP-NAME (default "nunet-node") */
	const char *hostname;		/* syslog HOSTNAME (default gethostname()) */
	/* Called on the sink's worker thread with one human sentence that
	 * does not name the sink (no newline), e.g. "dropped 120 lines in the
	 * last 60 s (queue full: 10000 held)"; prefix it with
	 * nn_sink_spec() or your own name.  warn is 1 for trouble, 0 for
	 * "delivering again".  It may run before nn_sink_open has returned
	 * (so use log_arg, not the sink pointer you are about to get).  May
	 * be NULL. */
	void (*log)(void *arg, int warn, const char *msg);
	void *log_arg;
};

/* Defaults as documented above. */
void nn_sink_opts_init(struct nn_sink_opts *o);

struct nn_sink_stats {
	uint64_t pushed;	/* lines taken by nn_sink_push */
	uint64_t sent;		/* lines the receiver accepted */
	uint64_t failed;	/* delivery attempts that failed (each retried) */
	uint64_t dropped;	/* lines lost: queue full, or left at close */
	uint64_t rejected;	/* lines refused for good (4xx, bad line) */
	uint64_t queued;	/* lines held now, in the queue or in flight */
	uint64_t queued_bytes;	/* their bytes */
};

/* Open a sink and start its worker.  The spec and opts are copied (opts
 * may be NULL for the defaults).  Checks the spec's syntax only: a
 * receiver that is down is not an error here (the sink retries).  NULL +
 * err on a bad spec. */
struct nn_sink *nn_sink_open(const char *spec, const struct nn_sink_opts *o, char *err);

/* Queue one line (len bytes, no newline needed; one trailing "\n" is
 * stripped).  Never blocks on I/O; safe from any thread, not after
 * nn_sink_close.  Returns 0 when
 * queued, -1 when dropped (queue full, or counted as rejected: empty,
 * longer than line_max, or holding a newline). */
int nn_sink_push(struct nn_sink *s, const char *line, size_t len);

/* A snapshot of the counters. */
void nn_sink_stats(struct nn_sink *s, struct nn_sink_stats *st);

/* Block until everything pushed so far has been delivered or rejected, or
 * timeout_ms passes.  0 when drained, -1 on timeout.  Not for a loop
 * thread. */
int nn_sink_flush(struct nn_sink *s, int64_t timeout_ms);

/* Stop the worker: keep delivering for at most drain_ms (0: stop now,
 * aborting a request in flight), count what is left as dropped (and log
 * it, one last line whatever the interval), fill *st (may be NULL) with
 * the final counters and free the sink.  NULL is a no-op. */
void nn_sink_close(struct nn_sink *s, int64_t drain_ms, struct nn_sink_stats *st);

/* The spec the sink was opened with (borrowed, valid until close). */
const char *nn_sink_spec(const struct nn_sink *s);

#endif
