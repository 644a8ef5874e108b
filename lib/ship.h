/*
 * ship — the node's shipping to what operators already run: every event
 * (at or above a level, of a kind) pushed to syslog or Elasticsearch _bulk
 * sinks, and the metrics pushed as Influx line protocol at an interval,
 * through lib/sink.h.  Configured by "sinks" in config.json:
 *
 *   "sinks": [
 *     {"url": "syslog+unix:///dev/log", "what": "events", "level": "info"},
 *     {"url": "esbulk+http://127.0.0.1:9200/nunet/_bulk", "what": "events", "kind": "security"},
 *     {"url": "influx+http://127.0.0.1:8428/write", "what": "metrics", "interval_ms": 10000}
 *   ]
 *
 * Pushing never blocks the node: sinks queue (bounded), deliver on their
 * own threads with retries, and count what they drop; /node/metrics shows
 * the counters of each sink.
 */
#ifndef NN_SHIP_H
#define NN_SHIP_H

struct nn_node;

int nn_ship_attach(struct nn_node *n, char *err);

#endif
