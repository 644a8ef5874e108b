/*
 * cap units: resource vectors, capability documents and the matcher's jv
 * entry point, driven from t/3001-cap.bats.
 *
 *   test-tool cap add A B | sub A B | fits NEED HAVE   (flat vectors, JSON)
 *   test-tool cap doc        stdin document → its flat vector
 *   test-tool cap check      stdin capability document → ok | error: …
 *   test-tool cap restrict R stdin capability document → restricted to R
 *   test-tool cap size JSON  a size value → bytes | error: …
 *   test-tool cap match REQ  stdin offers, one per line, through
 *                            nn_match_eval (the node's entry point) →
 *                            "yes SCORE" | "no [why…]" | "bad: err"
 *   test-tool cap fastcmp REQ [WHERE [RANK]]
 *                            stdin offers, one per line, each matched by
 *                            nn_match_text twice, with the fast forms of
 *                            where and rank and with jq only, with and
 *                            without reasons: every answer, score and
 *                            reason must be the same (the two matchers
 *                            share their jq programs through one
 *                            nn_match_jq cache).  Prints
 *                            "same N offers, M fast" (M: answers the fast
 *                            forms gave), or the first difference (exit 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cap.h"
#include "json.h"
#include "lines.h"
#include "match.h"
#include "util.h"
#include "test-tool.h"

static jv arg_json(const char *s)
{
	char err[NN_ERRLEN];
	jv v = nn_json_parse(s, strlen(s), err);
	if (!jv_is_valid(v)) {
		printf("error: %s\n", err);
		exit(65);
	}
	return v;
}

static jv stdin_json(void)
{
	struct nn_buf b = NN_BUF_INIT;
	char chunk[65536], err[NN_ERRLEN];
	ssize_t n;
	jv v;
	while ((n = read(0, chunk, sizeof chunk)) > 0)
		nn_buf_add(&b, chunk, (size_t)n);
	v = nn_json_parse(b.data ? b.data : "", b.len, err);
	nn_buf_release(&b);
	if (!jv_is_valid(v)) {
		printf("error: %s\n", err);
		exit(65);
	}
	return v;
}

static int put_res(const struct nn_res *r)
{
	jv j = nn_res_to_json(r);
	char *s = nn_json_dump(j);
	printf("%s\n", s);
	free(s);
	jv_free(j);
	return 0;
}

static int vec(const char *s, struct nn_res *r)
{
	char err[NN_ERRLEN];
	jv v = arg_json(s);
	int rc = nn_res_from_json(r, v, err);
	jv_free(v);
	if (rc < 0)
		printf("error: %s\n", err);
	return rc;
}

static int match(const char *reqtext)
{
	char err[NN_ERRLEN];
	struct nn_lines l;
	struct nn_match *m;
	int ex = 0, code, r;
	jv offer;

	m = nn_match_compile(arg_json(reqtext), NULL, NULL, &ex, err);
	if (!m) {
		printf("error %d: %s\n", ex, err);
		return ex;
	}
	nn_lines_init(&l, 0);
	while (nn_lines_read_fd(&l, 0) > 0)
		;
	nn_lines_feed(&l, "\n", 1);
	while ((r = nn_jsonl_next(&l, &offer, &code, err)) != NN_JSONL_NONE) {
		double score = 0;
		jv why = jv_invalid();
		if (r == NN_JSONL_ERROR) {
			printf("bad: %s\n", err);
			continue;
		}
		r = nn_match_eval(m, offer, &score, &why, err);
		jv_free(offer);
		if (r == NN_MATCH_YES)
			printf("yes %g\n", score);
		else if (r == NN_MATCH_BAD)
			printf("bad: %s\n", err);
		else {
			char *s = nn_json_dump(why);
			printf("no %s\n", s);
			free(s);
		}
		jv_free(why);
	}
	nn_lines_release(&l);
	nn_match_free(m);
	return 0;
}

/* One offer through m: "rc score why" as text (caller frees). */
static char *answer(struct nn_match *m, const char *line, size_t len, int reasons)
{
	char err[NN_ERRLEN] = "";
	double score = 0;
	jv why = jv_invalid();
	int rc = nn_match_text(m, line, len, &score, reasons ? &why : NULL, err);
	char *w = jv_is_valid(why) ? nn_json_dump(why) : nn_xstrdup("-");
	char *out = nn_xasprintf("%d %.17g %s %s", rc, rc == NN_MATCH_YES ? score : 0.0, w,
				 rc == NN_MATCH_BAD ? err : "");
	free(w);
	jv_free(why);
	return out;
}

static int fastcmp(const char *reqtext, const char *where, const char *rank)
{
	char err[NN_ERRLEN];
	struct nn_lines l;
	struct nn_match *fast, *slow;
	const char *line;
	size_t len;
	unsigned long n = 0;
	int ex = 0, rc = 0;

	/* both through one cache: they share their jq programs, each run in
	 * turn on the same state (nn_match_compile_cached) */
	struct nn_match_jq *cache = nn_match_jq_new();
	fast = nn_match_compile_cached(arg_json(reqtext), where, rank, cache, &ex, err);
	slow = fast ? nn_match_compile_cached(arg_json(reqtext), where, rank, cache, &ex, err) : NULL;
	if (!slow) {
		printf("error %d: %s\n", ex, err);
		nn_match_free(fast);
		nn_match_jq_free(cache);
		return ex;
	}
	nn_match_jq_only(slow, 1);
	nn_lines_init(&l, 0);
	while (nn_lines_read_fd(&l, 0) > 0)
		;
	nn_lines_feed(&l, "\n", 1);
	while (rc == 0 && nn_lines_next(&l, &line, &len) == NN_LINES_LINE) {
		if (!len)
			continue;
		n++;
		for (int reasons = 0; reasons < 2 && rc == 0; reasons++) {
			char *a = answer(fast, line, len, reasons), *b = answer(slow, line, len, reasons);
			if (strcmp(a, b)) {
				printf("line %lu differs%s:\n  fast: %s\n  jq:   %s\n", l.lineno,
				       reasons ? " (with reasons)" : "", a, b);
				rc = 1;
			}
			free(a);
			free(b);
		}
	}
	if (rc == 0)
		printf("same %lu offers, %lu fast\n", n, nn_match_fast_count(fast));
	nn_lines_release(&l);
	nn_match_free(fast);
	nn_match_free(slow);
	nn_match_jq_free(cache);
	return rc;
}

int cmd__cap(int argc, char **argv)
{
	char err[NN_ERRLEN];
	struct nn_res a, b, out;
	if (argc < 2)
		return 64;
	if (argc == 4 && (!strcmp(argv[1], "add") || !strcmp(argv[1], "sub") ||
			  !strcmp(argv[1], "fits"))) {
		if (vec(argv[2], &a) < 0 || vec(argv[3], &b) < 0)
			return 65;
		if (!strcmp(argv[1], "fits")) {
			if (nn_res_fits(&a, &b, err)) {
				printf("fits\n");
				return 0;
			}
			printf("no: %s\n", err);
			return 1;
		}
		if ((argv[1][0] == 'a' ? nn_res_add(&out, &a, &b, err)
				       : nn_res_sub(&out, &a, &b, err)) < 0) {
			printf("error: %s\n", err);
			return 1;
		}
		return put_res(&out);
	}
	if (!strcmp(argv[1], "doc") || !strcmp(argv[1], "check")) {
		jv d = stdin_json();
		int rc = argv[1][0] == 'd' ? nn_res_from_doc(&a, d, err) : nn_cap_check(d, err);
		jv_free(d);
		if (rc < 0) {
			printf("error: %s\n", err);
			return 1;
		}
		if (argv[1][0] == 'd')
			return put_res(&a);
		printf("ok\n");
		return 0;
	}
	if (!strcmp(argv[1], "restrict") && argc == 3) {
		if (vec(argv[2], &a) < 0)
			return 65;
		jv d = nn_cap_restrict(stdin_json(), &a);
		char *s = nn_json_dump(d);
		printf("%s\n", s);
		free(s);
		jv_free(d);
		return 0;
	}
	if (!strcmp(argv[1], "size") && argc == 3) {
		int64_t n;
		jv v = arg_json(argv[2]);
		int rc = nn_cap_size(v, "size", &n, err);
		jv_free(v);
		if (rc < 0) {
			printf("error: %s\n", err);
			return 1;
		}
		printf("%lld\n", (long long)n);
		return 0;
	}
	if (!strcmp(argv[1], "match") && argc == 3)
		return match(argv[2]);
	if (!strcmp(argv[1], "fastcmp") && argc >= 3 && argc <= 5)
		return fastcmp(argv[2], argc > 3 && *argv[3] ? argv[3] : NULL,
			       argc > 4 && *argv[4] ? argv[4] : NULL);
	return 64;
}
