/*
 * Fuzz target: the matcher (lib/match.h).  Input: a requirements document,
 * a line "--", then offers, one per line.  The requirements are compiled
 * (or refused with a message) and each offer's text goes through the fast
 * scanner (nn_match_text, with and without the reasons); an offer that also
 * parses as JSON goes through nn_match_eval, which must reach the same
 * answer and score: the scanner is an optimisation, not a second opinion.
 * One input in 4 also gets a where, and some a rank, from the fixed lists
 * below (the input's length picks them), and the offer also goes through a
 * matcher that runs them in jq only (nn_match_jq_only): their fast forms
 * must agree, answer and score.
 *
 * jq expressions are not bounded (nunet-match(1), CAVEATS), so the fuzzer
 * must not write them: the requirements' "where" and "rank" are dropped,
 * and offers that could carry their own "where" are skipped.  The fixed
 * ones are compiled once, in a cache the inputs share.
 */
#include <math.h>
#include <jv.h>
#include "match.h"
#include "json.h"
#include "fuzz.h"

static int has(const uint8_t *p, size_t n, const char *s)
{
	return memmem(p, n, s, strlen(s)) != NULL;
}

/* paths, comparisons, and/or/not, arithmetic, tonumber and pipes: what
 * the fast forms model, and values they give up on (strings, missing
 * fields, a string given to arithmetic) */
static const char *const wheres[] = {
	".ram.size >= 0",
	".cpu.threads >= 2 and .disk.size > 1000000",
	"(.cpu.mhz / 1000) > 1.5 or .location.country == \"DE\"",
	".price.cpu_second | tonumber < 5",
	"(.labels.tier == \"gold\") | not",
	".cpu.score.single + .cpu.score.multi != .ram.bandwidth",
};
static const char *const ranks[] = {
	NULL,
	".cpu.score.single / 100",
	".ram.size - .disk.size * 2",
	"(.price.ram_gib_second | tonumber) * -1",
};
#define NW (sizeof wheres / sizeof *wheres)
#define NR (sizeof ranks / sizeof *ranks)

/* The jq programs of those, shared by the inputs.  Freed at exit, so
 * that the leak check then finds nothing; the fuzzer's checks between
 * inputs would find the stack a jq state keeps after its first run (libjq
 * points at its end, which LeakSanitizer does not count as a reference):
 * t/fuzz/lsan.supp leaves that one out. */
static struct nn_match_jq *cache;

static void cache_free(void)
{
	nn_match_jq_free(cache);
	cache = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *rq, *offers;
	size_t rqlen, olen;
	char err[NN_ERRLEN];
	int ex = 0;

	fuzz_split(data, size, &rq, &rqlen, &offers, &olen);
	jv req = nn_json_parse((const char *)rq, rqlen, err);
	if (!jv_is_valid(req)) {
		jv_free(req);
		return 0;
	}
	/* a fixed where and rank, 1 input in 4, compiled once (jq_compile
	 * costs milliseconds, the requirements' structured part microseconds) */
	if (!cache) {
		cache = nn_match_jq_new();
		atexit(cache_free);
	}
	int jq = jv_get_kind(req) == JV_KIND_OBJECT && (rqlen & 3) == 0;
	const char *where = jq ? wheres[(rqlen >> 2) % NW] : NULL;
	const char *rank = jq ? ranks[(rqlen >> 5) % NR] : NULL;
	if (jv_get_kind(req) == JV_KIND_OBJECT) {
		req = jv_object_delete(req, jv_string("where"));
		req = jv_object_delete(req, jv_string("rank"));
	}
	struct nn_match *m = nn_match_compile_cached(jv_copy(req), where, rank, cache, &ex, err);
	if (!m) {
		FUZZ_CHECK(err[0] && (ex == NN_EX_USAGE || ex == NN_EX_DATAERR));
		jv_free(req);
		return 0;
	}
	/* the same where and rank run by jq only: the fast forms must agree */
	struct nn_match *mj = jq ? nn_match_compile_cached(jv_copy(req), where, rank, cache, &ex, err)
				 : NULL;
	FUZZ_CHECK(!jq || mj);
	if (mj)
		nn_match_jq_only(mj, 1);
	jv_free(req);
	(void)nn_match_default_rank(m);
	while (olen > 0) {
		const uint8_t *nl = memchr(offers, '\n', olen);
		size_t n = nl ? (size_t)(nl - offers) : olen;
		if (!has(offers, n, "where") && !has(offers, n, "\\u")) {
			double s1 = 0, s2 = 0, s3 = 0;
			jv why = jv_invalid();
			int r1 = nn_match_text(m, (const char *)offers, n, &s1, NULL, err);
			int r2 = nn_match_text(m, (const char *)offers, n, &s2, &why, err);
			FUZZ_CHECK(r1 == r2);
			if (r2 == NN_MATCH_NO)
				FUZZ_CHECK(jv_get_kind(why) == JV_KIND_ARRAY && jv_array_length(jv_copy(why)) > 0);
			if (r1 == NN_MATCH_YES)
				FUZZ_CHECK(s1 == s2 || (isnan(s1) && isnan(s2)));
			jv_free(why);
			if (mj) {
				double s4 = 0;
				int r4 = nn_match_text(mj, (const char *)offers, n, &s4, NULL, err);
				FUZZ_CHECK(r4 == r1);
				if (r1 == NN_MATCH_YES)
					FUZZ_CHECK(s1 == s4 || (isnan(s1) && isnan(s4)));
			}
			jv offer = nn_json_parse((const char *)offers, n, err);
			/* nn_match_eval matches the offer's canonical text, which
			 * a number beyond a double (1e999) does not have: it reads
			 * as null there (reported; the scanner skips such a number
			 * in a field it does not know) */
			char *canon = jv_is_valid(offer) ? nn_json_canon_str(offer, err) : NULL;
			if (jv_is_valid(offer) && !canon) {
				(void)nn_match_eval(m, offer, &s3, NULL, err);
			} else if (jv_is_valid(offer)) {
				int r3 = nn_match_eval(m, offer, &s3, NULL, err);
				if (r1 != NN_MATCH_BAD)
					FUZZ_CHECK(r3 == r1);
				if (r1 == NN_MATCH_YES && r3 == NN_MATCH_YES)
					FUZZ_CHECK(s1 == s3 || (isnan(s1) && isnan(s3)));
			} else {
				FUZZ_CHECK(r1 == NN_MATCH_BAD);
			}
			free(canon);
			jv_free(offer);
		}
		offers += n + (nl ? 1 : 0);
		olen -= n + (nl ? 1 : 0);
	}
	nn_match_free(m);
	nn_match_free(mj);
	return 0;
}
