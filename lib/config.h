/*
 * config — where a node keeps its state ($NUNET_HOME) and what its
 * config.json may say.  Every key is optional; an unknown key or a value of
 * the wrong type is an error naming the key, so a typo never passes
 * silently.
 */
#ifndef NN_CONFIG_H
#define NN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <jv.h>
#include "env.h"

struct nn_config {
	int64_t max_line;		/* "max_line_bytes": envelope line cap */
	int64_t client_timeout_ms;	/* "client_timeout_ms": idle half-line clients */
	int64_t ttl_ms;			/* "ttl_ms": exp of envelopes this node makes */
	int64_t skew_ms;		/* "clock_skew_ms" */
	int64_t max_ttl_ms;		/* "max_ttl_ms" */
	int64_t replay_max;		/* "replay_max": replay cache entries */
	int64_t max_clients;		/* "max_clients": control socket clients */
	int64_t max_pending;		/* "max_pending_bytes": unsent replies per client */
	int64_t events_max_rows;	/* "events_max_rows": retention, 0 = no limit */
	int64_t events_max_age_ms;	/* "events_max_age_ms": retention, 0 = no limit */
	int64_t events_messages;	/* "events_messages": record msg.in/msg.out (true/false) */
	int64_t stage_timeout_ms;	/* "stage_timeout_ms": staging an allocation's inputs */
	int64_t deploy_require_contract;	/* "deploy_require_contract": commits need an accepted contract */
	int64_t deploy_orphan_ms;	/* "deploy_orphan_ms": a provisioned lease whose requester is dead this long ends; 0 never */
	int64_t pay_report_ms;		/* "pay_report_interval_ms": usage reports under contracts */
	char *metrics_listen;		/* "metrics_listen": HOST:PORT for GET /metrics, or NULL */
	jv sinks;			/* "sinks": [{"url","what","level","kind","interval_ms"}] */
	int log_level;			/* "log_level": error|warn|info|debug */
	jv owners;			/* "owners": DIDs with full authority */
};

void nn_config_init(struct nn_config *c);	/* defaults */
void nn_config_release(struct nn_config *c);
/* Load path over the defaults in c.  A missing file is not an error. */
int nn_config_load(struct nn_config *c, const char *path, char *err);
/* The document `nunet-node init` writes (caller frees). */
char *nn_config_default_text(void);
void nn_config_limits(const struct nn_config *c, struct nn_env_limits *lim);

/* $NUNET_HOME: override if given, else $NUNET_HOME, else
 * ${XDG_DATA_HOME:-$HOME/.local/share}/nunet.  Caller frees; NULL + err when
 * no home can be worked out. */
char *nn_home(const char *override, char *err);
/* home + "/" + name; caller frees. */
char *nn_home_file(const char *home, const char *name);

#endif
