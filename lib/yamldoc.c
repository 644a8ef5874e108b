/*
 * yamldoc — libyaml's event parser driven by a recursive descent that builds
 * the jv as it goes, so no libyaml document tree is ever held.  Every error
 * is reported with the line and column libyaml gives (1-based).
 */
#include "yamldoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct ydoc {
	yaml_parser_t p;
	char *err;
	size_t nodes;
	int failed;
};

__attribute__((format(printf, 3, 4)))
static void fail_at(struct ydoc *d, yaml_mark_t m, const char *fmt, ...)
{
	char msg[NN_ERRLEN];
	va_list ap;
	if (d->failed)
		return;
	d->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	nn_seterr(d->err, "line %zu column %zu: %s", m.line + 1, m.column + 1, msg);
}

static int next(struct ydoc *d, yaml_event_t *e)
{
	if (!yaml_parser_parse(&d->p, e)) {
		if (!d->failed) {
			d->failed = 1;
			nn_seterr(d->err, "line %zu column %zu: %s%s%s",
				  d->p.problem_mark.line + 1, d->p.problem_mark.column + 1,
				  d->p.problem ? d->p.problem : "not YAML",
				  d->p.context ? " " : "", d->p.context ? d->p.context : "");
		}
		return -1;
	}
	return 0;
}

static int is_plain(const char *s, size_t n, const char *const *words)
{
	for (; *words; words++)
		if (strlen(*words) == n && !memcmp(s, *words, n))
			return 1;
	return 0;
}

/* A plain scalar's value under the core schema (see the header). */
static jv plain_scalar(const char *s, size_t n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", NULL };
	char buf[64], *end;
	size_t i = 0;

	if (is_plain(s, n, nulls))
		return jv_null();
	if (is_plain(s, n, trues))
		return jv_true();
	if (is_plain(s, n, falses))
		return jv_false();
	if (n == 0 || n >= sizeof buf || memchr(s, 0, n))
		return jv_string_sized(s, (int)n);
	memcpy(buf, s, n);
	buf[n] = 0;
	if (buf[0] == '-' || buf[0] == '+')
		i = 1;
	if (buf[i] == '0' && (buf[i + 1] == 'x' || buf[i + 1] == 'o') && buf[i + 2] && i == 0) {
		int base = buf[1] == 'x' ? 16 : 8;
		unsigned long long v;
		errno = 0;
		v = strtoull(buf + 2, &end, base);
		if (!errno && !*end && v <= (1ULL << 53))
			return jv_number((double)v);
		return jv_string(buf);
	}
	if (buf[i] >= '0' && buf[i] <= '9') {
		size_t j = i;
		while (buf[j] >= '0' && buf[j] <= '9')
			j++;
		if (!buf[j]) {		/* an integer */
			long long v;
			errno = 0;
			v = strtoll(buf, &end, 10);
			if (!errno && !*end && llabs(v) <= (1LL << 53))
				return jv_number((double)v);
			return jv_string(buf);
		}
	}
	if ((buf[i] >= '0' && buf[i] <= '9') || (buf[i] == '.' && buf[i + 1] >= '0' && buf[i + 1] <= '9')) {
		/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
		size_t j = i;
		int digits = 0;
		while (buf[j] >= '0' && buf[j] <= '9')
			j++, digits++;
		if (buf[j] == '.') {
			j++;
			while (buf[j] >= '0' && buf[j] <= '9')
				j++, digits++;
		}
		if (digits && (buf[j] == 'e' || buf[j] == 'E')) {
			size_t k = j + 1;
			if (buf[k] == '-' || buf[k] == '+')
				k++;
			if (buf[k] >= '0' && buf[k] <= '9') {
				while (buf[k] >= '0' && buf[k] <= '9')
					k++;
				j = k;
			}
		}
		if (digits && !buf[j]) {
			double v = strtod(buf, &end);
			if (!*end && isfinite(v))
				return jv_number(v);
		}
	}
	return jv_string_sized(s, (int)n);
}

static jv node(struct ydoc *d, yaml_event_t *e, int depth);

static jv mapping(struct ydoc *d, yaml_mark_t start, int depth)
{
	jv obj = jv_object();
	yaml_event_t e;

	for (;;) {
		jv k, v;
		if (next(d, &e) < 0)
			break;
		if (e.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&e);
			return obj;
		}
		if (e.type != YAML_SCALAR_EVENT) {
			fail_at(d, e.start_mark, "%s", "a mapping key must be a plain string");
			yaml_event_delete(&e);
			break;
		}
		k = jv_string_sized((const char *)e.data.scalar.value, (int)e.data.scalar.length);
		if (jv_object_has(jv_copy(obj), jv_copy(k))) {
			fail_at(d, e.start_mark, "duplicate key '%.64s'", jv_string_value(k));
			jv_free(k);
			yaml_event_delete(&e);
			break;
		}
		yaml_event_delete(&e);
		if (next(d, &e) < 0) {
			jv_free(k);
			break;
		}
		v = node(d, &e, depth + 1);
		yaml_event_delete(&e);
		if (!jv_is_valid(v)) {
			jv_free(k);
			jv_free(v);
			break;
		}
		obj = jv_object_set(obj, k, v);
	}
	(void)start;
	jv_free(obj);
	return jv_invalid();
}

static jv sequence(struct ydoc *d, int depth)
{
	jv arr = jv_array();
	yaml_event_t e;

	for (;;) {
		jv v;
		if (next(d, &e) < 0)
			break;
		if (e.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&e);
			return arr;
		}
		v = node(d, &e, depth + 1);
		yaml_event_delete(&e);
		if (!jv_is_valid(v)) {
			jv_free(v);
			break;
		}
		arr = jv_array_append(arr, v);
	}
	jv_free(arr);
	return jv_invalid();
}

/* The value that starts with event e (borrowed; the caller deletes it). */
static jv node(struct ydoc *d, yaml_event_t *e, int depth)
{
	if (++d->nodes > NN_YAMLDOC_MAX_NODES) {
		fail_at(d, e->start_mark, "more than %d nodes", NN_YAMLDOC_MAX_NODES);
		return jv_invalid();
	}
	if (depth > NN_YAMLDOC_MAX_DEPTH) {
		fail_at(d, e->start_mark, "nested deeper than %d levels", NN_YAMLDOC_MAX_DEPTH);
		return jv_invalid();
	}
	switch (e->type) {
	case YAML_SCALAR_EVENT: {
		const char *s = (const char *)e->data.scalar.value;
		size_t n = e->data.scalar.length;
		const char *tag = (const char *)e->data.scalar.tag;
		if (n > 0x7fffffff) {
			fail_at(d, e->start_mark, "%s", "scalar too long");
			return jv_invalid();
		}
		if (e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    !(tag && !strcmp(tag, YAML_STR_TAG)))
			return plain_scalar(s, n);
		return jv_string_sized(s, (int)n);
	}
	case YAML_MAPPING_START_EVENT:
		return mapping(d, e->start_mark, depth);
	case YAML_SEQUENCE_START_EVENT:
		return sequence(d, depth);
	case YAML_ALIAS_EVENT:
		fail_at(d, e->start_mark, "%s", "aliases (*name) are not supported");
		return jv_invalid();
	default:
		fail_at(d, e->start_mark, "%s", "unexpected YAML event");
		return jv_invalid();
	}
}

jv nn_yamldoc_parse(const char *s, size_t len, char *err)
{
	struct ydoc d;
	yaml_event_t e;
	jv doc = jv_invalid();
	int have = 0;

	memset(&d, 0, sizeof d);
	d.err = err;
	if (memchr(s, 0, len)) {
		nn_seterr(err, "not YAML: NUL byte at offset %zu",
			  (size_t)((const char *)memchr(s, 0, len) - s));
		return jv_invalid();
	}
	if (!yaml_parser_initialize(&d.p)) {
		nn_seterr(err, "cannot start the YAML parser");
		return jv_invalid();
	}
	yaml_parser_set_input_string(&d.p, (const unsigned char *)s, len);
	for (;;) {
		if (next(&d, &e) < 0)
			break;
		if (e.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&e);
			yaml_parser_delete(&d.p);
			return have ? doc : jv_null();
		}
		if (e.type == YAML_DOCUMENT_START_EVENT && have) {
			fail_at(&d, e.start_mark, "%s",
				"more than one YAML document (give one per file)");
			yaml_event_delete(&e);
			break;
		}
		if (e.type == YAML_STREAM_START_EVENT || e.type == YAML_DOCUMENT_START_EVENT ||
		    e.type == YAML_DOCUMENT_END_EVENT) {
			yaml_event_delete(&e);
			continue;
		}
		doc = node(&d, &e, 0);
		yaml_event_delete(&e);
		if (!jv_is_valid(doc))
			break;
		have = 1;
	}
	jv_free(doc);
	yaml_parser_delete(&d.p);
	return jv_invalid();
}
