/*
 * envscan-oracle.h — the oracle of the hot path's scanner (lib/jscan.h,
 * nn_env_scan in lib/env.h), shared by the envscan fuzz target and by
 * `test-tool envscan` (t/0011-envscan.bats): whatever the fast path reads
 * or decides, the full path (nn_json_parse, nn_env_verify_head) reads and
 * decides the same.
 *
 * For one line: when nn_jscan accepts it, nn_json_parse must read an
 * object with the same members (kinds, plain strings, integers), and when
 * the scanner calls the line, or a member's value, canonical, nn_json_canon
 * must write those very bytes, and nn_jscan_jv must build the parsed value.  When nn_env_scan_verify says yes (without and with the
 * signature), nn_env_verify_head must say NN_OK with the same head.
 * Returns 0, or -1 with what differs in why.  *fwd and *sig say which path
 * decided (1: the fast path), *scanned and *canon what the scanner said.
 */
#ifndef FUZZ_ENVSCAN_ORACLE_H
#define FUZZ_ENVSCAN_ORACLE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jv.h>
#include "env.h"
#include "json.h"
#include "jscan.h"

static inline int envscan_streq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static inline int envscan_oracle(const char *line, size_t len, int64_t now, char *why, size_t cap,
				 int *scanned, int *canon, int *fwd, int *sig)
{
	static const int kinds[][2] = {
		{ NN_JSCAN_STRING, JV_KIND_STRING }, { NN_JSCAN_NUMBER, JV_KIND_NUMBER },
		{ NN_JSCAN_OBJECT, JV_KIND_OBJECT }, { NN_JSCAN_ARRAY, JV_KIND_ARRAY },
		{ NN_JSCAN_TRUE, JV_KIND_TRUE }, { NN_JSCAN_FALSE, JV_KIND_FALSE },
		{ NN_JSCAN_NULL, JV_KIND_NULL },
	};
	struct nn_env_scan *es = calloc(1, sizeof *es);
	struct nn_buf scratch = NN_BUF_INIT;
	char err[NN_ERRLEN];
	jv v = nn_json_parse(line, len, err);
	int rc = 0;

	*scanned = *canon = *fwd = *sig = 0;
	why[0] = '\0';
	if (!es)
		abort();
	if (nn_env_scan(line, len, es) == 0) {
		*scanned = 1;
		*canon = es->j.canonical;
		if (jv_get_kind(v) != JV_KIND_OBJECT) {
			snprintf(why, cap, "scanned, but the full parse reads a %s", nn_json_kind(v));
			rc = -1;
			goto out;
		}
		if (jv_object_length(jv_copy(v)) != es->j.n) {
			snprintf(why, cap, "scanned %d members, the full parse %d", es->j.n,
				 jv_object_length(jv_copy(v)));
			rc = -1;
			goto out;
		}
		for (int i = 0; i < es->j.n && !rc; i++) {
			const struct nn_jscan_member *m = &es->j.m[i];
			jv f = jv_object_get(jv_copy(v), jv_string_sized(m->key, (int)m->klen));
			int want = -1;
			for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
				if (kinds[k][0] == m->kind)
					want = kinds[k][1];
			if ((int)jv_get_kind(f) != want)
				rc = -1;
			else if (m->plain && ((size_t)jv_string_length_bytes(jv_copy(f)) != m->vlen - 2 ||
					      memcmp(jv_string_value(f), m->val + 1, m->vlen - 2)))
				rc = -1;
			else if (m->integer && jv_number_value(f) != (double)nn_jscan_int(m))
				rc = -1;
			else if (m->canonical) {
				char *c = nn_json_canon_str(f, err);
				if (!c || strlen(c) != m->vlen || memcmp(c, m->val, m->vlen))
					rc = -1;
				free(c);
			}
			if (rc)
				snprintf(why, cap, "member '%.*s' reads otherwise", (int)m->klen, m->key);
			jv_free(f);
		}
		if (!rc) {
			jv b = nn_jscan_jv(&es->j);
			if (!jv_equal(b, jv_copy(v))) {
				snprintf(why, cap, "the jv built from the scan is not the parsed one");
				rc = -1;
			}
		}
		if (!rc && es->j.canonical) {
			char *c = nn_json_canon_str(v, err);
			if (!c || strlen(c) != len || memcmp(c, line, len)) {
				snprintf(why, cap, "called canonical, but canonical is %.100s", c ? c : err);
				rc = -1;
			}
			free(c);
		}
		for (int s = 0; s <= 1 && !rc; s++) {
			struct nn_env_head h;
			enum nn_code code;
			if (!nn_env_scan_verify(es, NULL, now, s, &scratch))
				continue;
			*(s ? sig : fwd) = 1;
			code = nn_env_verify_head(v, NULL, now, s, &h, err);
			if (code != NN_OK) {
				snprintf(why, cap, "fast path accepts (sig %d), the full path says %s: %.100s", s,
					 nn_code_name(code), err);
				rc = -1;
			} else if (!envscan_streq(h.type, es->h.type) || !envscan_streq(h.id, es->h.id) ||
				   !envscan_streq(h.from, es->h.from) || !envscan_streq(h.to, es->h.to) ||
				   !envscan_streq(h.be, es->h.be) || !envscan_streq(h.re, es->h.re) ||
				   !envscan_streq(h.trace, es->h.trace) || h.ts != es->h.ts ||
				   h.exp != es->h.exp) {
				snprintf(why, cap, "fast and full paths read different heads (sig %d)", s);
				rc = -1;
			}
		}
	}
out:
	jv_free(v);
	nn_buf_release(&scratch);
	free(es);
	return rc;
}

#endif
