/*
 * ensemble-oracle.h — the oracle the ensemble_json and ensemble_yaml targets share
 * (t/fuzz/ensemble_json.c, t/fuzz/ensemble_yaml.c).
 *
 * jq expressions are not bounded, so the fuzzer must not write them: where
 * and rank are dropped from the parsed document before it is normalized,
 * and nn_ensemble_parse() runs on the raw text only when the text cannot
 * spell them (no "where", no "rank", no escapes).
 *
 * Oracles: an invalid ensemble has at least one error, each one line
 * "PATH: MESSAGE"; a valid one normalizes to itself, also after a round
 * trip through its canonical text, and each node group's requirements
 * compile in the matcher (the orchestrator hands them to it as they are).
 */
#ifndef FUZZ_ENSEMBLE_ORACLE_H
#define FUZZ_ENSEMBLE_ORACLE_H

#include <jv.h>
#include "ensemble.h"
#include "json.h"
#include "match.h"
#include "fuzz.h"

static inline void fuzz_ensemble_errors(jv errs)
{
	FUZZ_CHECK(jv_get_kind(errs) == JV_KIND_ARRAY);
	FUZZ_CHECK(jv_array_length(jv_copy(errs)) > 0);
	FUZZ_CHECK(jv_array_length(jv_copy(errs)) <= NN_ENSEMBLE_MAX_ERRORS);
	jv_array_foreach(errs, i, e) {
		(void)i;
		FUZZ_CHECK(jv_get_kind(e) == JV_KIND_STRING);
		FUZZ_CHECK(strstr(jv_string_value(e), ": ") != NULL);
		FUZZ_CHECK(strchr(jv_string_value(e), '\n') == NULL);
		jv_free(e);
	}
	jv_free(errs);
}

/* Check a result of nn_ensemble_parse / normalize (consumed). */
static inline void fuzz_ensemble_check(jv ens, jv errs)
{
	char err[NN_ERRLEN];
	if (!jv_is_valid(ens)) {
		jv_free(ens);
		fuzz_ensemble_errors(errs);
		return;
	}
	FUZZ_CHECK(!jv_is_valid(errs));
	jv_free(errs);
	/* idempotent, also through its canonical text */
	{
		char *text = nn_json_canon_str(ens, err);
		jv again, e2 = jv_invalid();
		FUZZ_CHECK(text != NULL);
		again = nn_ensemble_normalize(nn_json_parse(text, strlen(text), err), &e2);
		FUZZ_CHECK(jv_is_valid(again));
		FUZZ_CHECK(jv_equal(jv_copy(ens), again));
		free(text);
		jv_free(e2);
	}
	/* every group's requirements go through the matcher (without the
	 * jq, which costs milliseconds to compile) */
	{
		jv nodes = jv_object_get(jv_copy(ens), jv_string("nodes"));
		jv_object_foreach(nodes, g, v) {
			jv req = nn_ensemble_group_requirements(ens, jv_string_value(g));
			struct nn_match *m;
			int ex = 0;
			FUZZ_CHECK(jv_is_valid(req));
			req = jv_object_delete(req, jv_string("where"));
			req = jv_object_delete(req, jv_string("rank"));
			m = nn_match_compile(req, NULL, NULL, &ex, err);
			if (!m)
				fprintf(stderr, "requirements refused: %s\n", err);
			FUZZ_CHECK(m != NULL);
			nn_match_free(m);
			jv_free(g);
			jv_free(v);
		}
		jv_free(nodes);
	}
	jv_free(ens);
}

/* Normalize a parsed document without its jq (consumed). */
static inline void fuzz_ensemble_doc(jv doc)
{
	jv errs = jv_invalid();
	if (jv_get_kind(doc) == JV_KIND_OBJECT) {
		doc = jv_object_delete(doc, jv_string("where"));
		doc = jv_object_delete(doc, jv_string("rank"));
	}
	fuzz_ensemble_check(nn_ensemble_normalize(doc, &errs), errs);
}

/* nn_ensemble_parse on text that cannot spell where or rank. */
static inline void fuzz_ensemble_text(const uint8_t *data, size_t size)
{
	jv errs = jv_invalid();
	if (memmem(data, size, "where", 5) || memmem(data, size, "rank", 4) ||
	    memchr(data, '\\', size) || memmem(data, size, "!!", 2))
		return;
	fuzz_ensemble_check(nn_ensemble_parse((const char *)data, size, "fuzz.yaml", &errs), errs);
}

#endif
