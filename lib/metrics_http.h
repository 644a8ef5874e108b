/*
 * metrics_http — serve the node's metrics (nn_node_metrics_text) as
 * GET /metrics over HTTP/1.0 on the address config.json names in
 * "metrics_listen" (HOST:PORT; port 0 picks one, reported in the ready
 * line as "metrics"), for Prometheus and anything else that scrapes.
 */
#ifndef NN_METRICS_HTTP_H
#define NN_METRICS_HTTP_H

struct nn_node;

/* The module: does nothing unless metrics_listen is set. */
int nn_metrics_http_attach(struct nn_node *n, char *err);

#endif
