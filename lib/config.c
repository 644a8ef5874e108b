/*
 * config — table-driven parsing of config.json: each key names its type and
 * its range, so adding a setting is one line in `keys`.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"
#include "key.h"
#include "log.h"
#include "util.h"

void nn_config_init(struct nn_config *c)
{
	c->max_line = 1024 * 1024;
	c->client_timeout_ms = 30000;
	c->ttl_ms = 60000;
	c->skew_ms = 30000;
	c->max_ttl_ms = 3600000;
	c->replay_max = 1000000;
	c->max_clients = 4096;
	c->max_pending = 64 * 1024 * 1024;
	c->events_max_rows = 1000000;
	c->events_max_age_ms = 0;
	c->events_messages = 1;
	c->stage_timeout_ms = 600000;
	c->deploy_require_contract = 0;
	c->deploy_orphan_ms = 120000;
	c->pay_report_ms = 10000;
	c->metrics_listen = NULL;
	c->sinks = jv_array();
	c->log_level = NN_LOG_INFO;
	c->owners = jv_array();
}

void nn_config_release(struct nn_config *c)
{
	jv_free(c->owners);
	c->owners = jv_invalid();
	free(c->metrics_listen);
	c->metrics_listen = NULL;
	jv_free(c->sinks);
	c->sinks = jv_invalid();
}

void nn_config_limits(const struct nn_config *c, struct nn_env_limits *lim)
{
	lim->skew_ms = c->skew_ms;
	lim->max_ttl_ms = c->max_ttl_ms;
}

struct intkey {
	const char *name;
	size_t off;
	int64_t min, max;
	int boolean;	/* written true/false */
};

#define OFF(f) offsetof(struct nn_config, f)
static const struct intkey keys[] = {
	{ "max_line_bytes", OFF(max_line), 256, 1LL << 30, 0 },
	{ "client_timeout_ms", OFF(client_timeout_ms), 10, 86400000, 0 },
	{ "ttl_ms", OFF(ttl_ms), 1000, 86400000, 0 },
	{ "clock_skew_ms", OFF(skew_ms), 0, 3600000, 0 },
	{ "max_ttl_ms", OFF(max_ttl_ms), 1000, 7 * 86400000LL, 0 },
	{ "replay_max", OFF(replay_max), 1, 100000000, 0 },
	{ "max_clients", OFF(max_clients), 1, 1000000, 0 },
	{ "max_pending_bytes", OFF(max_pending), 4096, 1LL << 34, 0 },
	{ "events_max_rows", OFF(events_max_rows), 0, 1LL << 40, 0 },
	{ "events_max_age_ms", OFF(events_max_age_ms), 0, 1LL << 50, 0 },
	{ "events_messages", OFF(events_messages), 0, 1, 1 },
	{ "stage_timeout_ms", OFF(stage_timeout_ms), 1000, 7 * 86400000LL, 0 },
	{ "deploy_require_contract", OFF(deploy_require_contract), 0, 1, 1 },
	{ "deploy_orphan_ms", OFF(deploy_orphan_ms), 0, 7 * 86400000LL, 0 },
	{ "pay_report_interval_ms", OFF(pay_report_ms), 100, 86400000, 0 },
};

/* "sinks": an array of {"url": STRING, "what": "events"|"metrics",
 * "level": LEVEL, "kind": STRING, "interval_ms": INT}; the url itself is
 * checked when the node opens the sink. */
static int check_sinks(jv v, const char *path, char *err)
{
	int r = 0;
	if (jv_get_kind(v) != JV_KIND_ARRAY)
		return nn_seterr(err, "%s: sinks: expected an array", path);
	jv_array_foreach(v, i, d) {
		const char *s;
		int64_t iv;
		if (r < 0)
			;
		else if (jv_get_kind(d) != JV_KIND_OBJECT || nn_json_get_str(d, "url", &s, NULL) < 0)
			r = nn_seterr(err, "%s: sinks[%d]: expected {\"url\": …}", path, i);
		else if (nn_json_has(d, "what") && (nn_json_get_str(d, "what", &s, NULL) < 0 ||
						    (strcmp(s, "events") && strcmp(s, "metrics"))))
			r = nn_seterr(err, "%s: sinks[%d].what: expected events or metrics", path, i);
		else if (nn_json_has(d, "level") && (nn_json_get_str(d, "level", &s, NULL) < 0 ||
						     nn_log_parse_level(s) < 0))
			r = nn_seterr(err, "%s: sinks[%d].level: expected error, warn, info or debug", path, i);
		else if (nn_json_has(d, "kind") && nn_json_get_str(d, "kind", &s, NULL) < 0)
			r = nn_seterr(err, "%s: sinks[%d].kind: expected a string", path, i);
		else if (nn_json_has(d, "interval_ms") && (nn_json_get_int(d, "interval_ms", &iv, NULL) < 0 ||
							   iv < 100 || iv > 86400000))
			r = nn_seterr(err, "%s: sinks[%d].interval_ms: expected 100 to 86400000", path, i);
		else
			jv_object_foreach(d, k, x) {
				const char *kn = jv_string_value(k);
				if (r == 0 && strcmp(kn, "url") && strcmp(kn, "what") && strcmp(kn, "level") &&
				    strcmp(kn, "kind") && strcmp(kn, "interval_ms"))
					r = nn_seterr(err, "%s: sinks[%d]: unknown key '%.32s'", path, i, kn);
				jv_free(k);
				jv_free(x);
			}
		jv_free(d);
	}
	return r;
}

int nn_config_load(struct nn_config *c, const char *path, char *err)
{
	size_t len;
	char e[NN_ERRLEN];
	char *text;
	jv doc;
	int r = 0;
	struct nn_config n = *c;

	text = nn_read_file(path, 1 << 20, &len, e);
	if (!text) {
		if (errno == ENOENT)
			return 0;
		return nn_seterr(err, "%s", e);
	}
	doc = nn_json_parse(text, len, e);
	free(text);
	if (!jv_is_valid(doc))
		return nn_seterr(err, "%s: %s", path, e);
	if (jv_get_kind(doc) != JV_KIND_OBJECT) {
		jv_free(doc);
		return nn_seterr(err, "%s: expected a JSON object", path);
	}
	n.owners = jv_copy(c->owners);
	n.metrics_listen = c->metrics_listen ? nn_xstrdup(c->metrics_listen) : NULL;
	n.sinks = jv_copy(c->sinks);
	jv_object_foreach(doc, k, v) {
		const char *name = jv_string_value(k);
		size_t i;
		if (r < 0)
			goto next;
		for (i = 0; i < sizeof keys / sizeof *keys; i++)
			if (!strcmp(keys[i].name, name))
				break;
		if (i < sizeof keys / sizeof *keys && keys[i].boolean) {
			if (jv_get_kind(v) != JV_KIND_TRUE && jv_get_kind(v) != JV_KIND_FALSE)
				r = nn_seterr(err, "%s: %s: expected true or false", path, name);
			else
				*(int64_t *)((char *)&n + keys[i].off) = jv_get_kind(v) == JV_KIND_TRUE;
		} else if (i < sizeof keys / sizeof *keys) {
			double d = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : -1e300;
			if (!nn_json_is_int(d) || d < keys[i].min || d > keys[i].max)
				r = nn_seterr(err, "%s: %s: expected an integer from %lld to %lld", path,
					      name, (long long)keys[i].min, (long long)keys[i].max);
			else
				*(int64_t *)((char *)&n + keys[i].off) = (int64_t)d;
		} else if (!strcmp(name, "log_level")) {
			int lv = jv_get_kind(v) == JV_KIND_STRING ? nn_log_parse_level(jv_string_value(v)) : -1;
			if (lv < 0)
				r = nn_seterr(err, "%s: log_level: expected error, warn, info or debug", path);
			else
				n.log_level = lv;
		} else if (!strcmp(name, "metrics_listen")) {
			const char *colon = jv_get_kind(v) == JV_KIND_STRING ? strrchr(jv_string_value(v), ':') : NULL;
			if (jv_get_kind(v) == JV_KIND_NULL) {
				free(n.metrics_listen);
				n.metrics_listen = NULL;
			} else if (!colon || colon == jv_string_value(v) || !colon[1] ||
				   strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) > 65535) {
				r = nn_seterr(err, "%s: metrics_listen: expected HOST:PORT, such as 127.0.0.1:9464", path);
			} else {
				free(n.metrics_listen);
				n.metrics_listen = nn_xstrdup(jv_string_value(v));
			}
		} else if (!strcmp(name, "sinks")) {
			r = check_sinks(v, path, err);
			if (r == 0) {
				jv_free(n.sinks);
				n.sinks = jv_copy(v);
			}
		} else if (!strcmp(name, "owners")) {
			uint8_t pk[32];
			if (jv_get_kind(v) != JV_KIND_ARRAY)
				r = nn_seterr(err, "%s: owners: expected an array of did:key strings", path);
			jv_array_foreach(v, j, d) {
				if (r == 0 && (jv_get_kind(d) != JV_KIND_STRING ||
					       nn_did_to_pk(jv_string_value(d), pk, NULL) < 0))
					r = nn_seterr(err, "%s: owners[%d]: expected a did:key", path, j);
				jv_free(d);
			}
			if (r == 0) {
				jv_free(n.owners);
				n.owners = jv_copy(v);
			}
		} else {
			r = nn_seterr(err, "%s: unknown key '%.64s'", path, name);
		}
next:
		jv_free(k);
		jv_free(v);
	}
	jv_free(doc);
	if (r < 0) {
		jv_free(n.owners);
		free(n.metrics_listen);
		jv_free(n.sinks);
		return -1;
	}
	jv_free(c->owners);
	free(c->metrics_listen);
	jv_free(c->sinks);
	*c = n;
	return 0;
}

char *nn_config_default_text(void)
{
	struct nn_config c;
	struct nn_buf b = NN_BUF_INIT;
	nn_config_init(&c);
	nn_buf_adds(&b, "{\n");
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		int64_t v = *(int64_t *)((char *)&c + keys[i].off);
		if (keys[i].boolean)
			nn_buf_addf(&b, "  \"%s\": %s,\n", keys[i].name, v ? "true" : "false");
		else
			nn_buf_addf(&b, "  \"%s\": %lld,\n", keys[i].name, (long long)v);
	}
	nn_buf_adds(&b, "  \"log_level\": \"info\",\n  \"owners\": []\n}\n");
	nn_config_release(&c);
	return nn_buf_detach(&b, NULL);
}

char *nn_home(const char *override, char *err)
{
	const char *h = override, *xdg, *home;
	if (h && *h)
		return nn_xstrdup(h);
	h = getenv("NUNET_HOME");
	if (h && *h)
		return nn_xstrdup(h);
	xdg = getenv("XDG_DATA_HOME");
	if (xdg && *xdg)
		return nn_xasprintf("%s/nunet", xdg);
	home = getenv("HOME");
	if (home && *home)
		return nn_xasprintf("%s/.local/share/nunet", home);
	nn_seterr(err, "cannot find the node's home: set NUNET_HOME or HOME");
	return NULL;
}

char *nn_home_file(const char *home, const char *name)
{
	return nn_xasprintf("%s/%s", home, name);
}
