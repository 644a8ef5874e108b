/*
 * pay units (lib/pay.h) for the 6xxx tests and t/perf/pay:
 *
 *   test-tool pay amount STR...        parse amounts: the value or "error: …"
 *   test-tool pay sign KIND KEYFILE    re-sign the document on stdin as
 *                                      KIND (usage|voucher) with KEYFILE, so
 *                                      tests can forge well-signed bad input
 *   test-tool pay handle BE HOME       nn_pay_handle(BE) on the body on stdin,
 *                                      with HOME's key and ledger
 *   test-tool pay serve HOME           run a node with nn_pay_attach (ready
 *                                      line on fd 3), as nunet-node run will
 *   test-tool pay require HOME ID      nn_pay_contract_require: "ok" or the error
 *   test-tool pay sync DB              PRAGMA synchronous of a ledger opened
 *                                      by nn_pay_open (2: FULL)
 *   test-tool pay reports HOME ID N    meter and write N usage reports of
 *                                      contract ID (HOME the provider's), one
 *                                      JSON line each, for a stream
 *   test-tool pay cputime CMD [ARG...] run CMD (stdin and stdout passed on)
 *                                      and print {"wall_ms","cpu_ms","status"}
 *                                      on stderr: its user + system time
 *                                      from wait4, microsecond resolution
 *   test-tool pay scan usage|voucher   each stdin line through the strict
 *                                      and the full reader of documents:
 *                                      "fast ok", "full ok" or "full: ERROR";
 *                                      "MISMATCH: …" and exit 1 where the
 *                                      two read differently
 *                                      (t/fuzz/payscan-oracle.h)
 *   test-tool pay bench N DIR [PASSES] N vouchers issued (usage report
 *                                      checked, voucher signed and stored by
 *                                      the requester) then verified and stored
 *                                      by the provider, one transaction each
 *                                      and in group commits of 100; prints
 *                                      JSON figures with a crypto-only
 *                                      baseline (1 sign + 2 verifies): medians
 *                                      of PASSES (5) alternating passes, per
 *                                      second of wall time and of CPU time
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include "codec.h"
#include "json.h"
#include "lines.h"
#include "key.h"
#include "node.h"
#include "pay.h"
#include "util.h"
#include "test-tool.h"
#include "../../fuzz/payscan-oracle.h"

static jv read_stdin_doc(void)
{
	struct nn_buf b = NN_BUF_INIT;
	char chunk[65536], err[NN_ERRLEN];
	ssize_t n;
	jv v;
	nn_buf_init(&b, 1 << 20);
	while ((n = read(0, chunk, sizeof chunk)) > 0)
		if (nn_buf_add(&b, chunk, (size_t)n) < 0)
			break;
	v = nn_json_parse(b.data ? b.data : "", b.len, err);
	if (!jv_is_valid(v))
		fprintf(stderr, "test-tool pay: %s\n", err);
	nn_buf_release(&b);
	return v;
}

static int pay_sign(const char *kind, const char *keyfile)
{
	const char *prefix = !strcmp(kind, "usage") ? NN_PAY_USAGE_PREFIX :
		!strcmp(kind, "voucher") ? NN_PAY_VOUCHER_PREFIX : NULL;
	struct nn_key k;
	struct nn_buf b = NN_BUF_INIT;
	char err[NN_ERRLEN], s64[96];
	uint8_t sig[64];
	jv doc;

	if (!prefix)
		return 64;
	if (nn_key_load(&k, keyfile, getenv("NUNET_PASSPHRASE"), err) < 0) {
		fprintf(stderr, "test-tool pay: %s\n", err);
		return 78;
	}
	doc = read_stdin_doc();
	if (!jv_is_valid(doc))
		return 65;
	doc = jv_object_delete(doc, jv_string("sig"));
	nn_buf_adds(&b, prefix);
	if (nn_json_canon(doc, &b, err) < 0) {
		fprintf(stderr, "test-tool pay: %s\n", err);
		return 65;
	}
	nn_key_sign(&k, sig, b.data, b.len);
	nn_b64_encode(s64, sig, sizeof sig);
	doc = jv_object_set(doc, jv_string("sig"), jv_string(s64));
	char *s = nn_json_dump(doc);
	printf("%s\n", s);
	free(s);
	jv_free(doc);
	nn_buf_release(&b);
	nn_key_clear(&k);
	return 0;
}

static int open_home(struct nn_pay *p, const char *home)
{
	char err[NN_ERRLEN], *kp = nn_xasprintf("%s/key", home), *dp = nn_xasprintf("%s/ledger.db", home);
	struct nn_key k;
	int r = 0;
	if (nn_key_load(&k, kp, NULL, err) < 0 || nn_pay_open(p, dp, &k, err) < 0) {
		fprintf(stderr, "test-tool pay: %s\n", err);
		r = -1;
	}
	nn_key_clear(&k);
	free(kp);
	free(dp);
	return r;
}

/* require HOME ID: nn_pay_contract_require, the provider's deploy check */
static int pay_require(const char *home, const char *id)
{
	struct nn_pay p;
	char err[NN_ERRLEN];
	int rc;
	if (open_home(&p, home) < 0)
		return 78;
	rc = nn_pay_contract_require(&p, id, err);
	if (rc < 0)
		printf("error %d: %s\n", nn_pay_exit_code(rc), err);
	else
		printf("ok\n");
	nn_pay_close(&p);
	return rc < 0 ? nn_pay_exit_code(rc) : 0;
}

/* serve HOME: a node (as `nunet-node run --ready-fd 3`) with pay attached */
static int pay_serve(const char *home)
{
	struct nn_node_opts o = { home, NULL, 3 };
	char err[NN_ERRLEN];
	int code = 0;
	struct nn_node *n = nn_node_open(&o, &code, err);
	if (!n) {
		fprintf(stderr, "test-tool pay: %s\n", err);
		return code ? code : 70;
	}
	if (nn_pay_attach(n, err) < 0) {
		fprintf(stderr, "test-tool pay: %s\n", err);
		nn_node_close(n);
		return 70;
	}
	code = nn_node_run(n) < 0 ? 70 : 0;
	nn_node_close(n);
	return code;
}

/* handle BE HOME: the node's behavior call on the body read from stdin */
static int pay_handle(const char *be, const char *home)
{
	char err[NN_ERRLEN];
	struct nn_pay p;
	jv body, reply;
	int rc;
	if (open_home(&p, home) < 0)
		return 78;
	body = read_stdin_doc();
	rc = nn_pay_handle(&p, be, body, &reply, err);
	jv_free(body);
	if (rc < 0)
		printf("error %d: %s\n", nn_pay_exit_code(rc), err);
	else {
		char *s = nn_json_dump(reply);
		printf("%s\n", s);
		free(s);
		jv_free(reply);
	}
	nn_pay_close(&p);
	return rc < 0 ? nn_pay_exit_code(rc) : 0;
}

/* reports HOME ID N: N usage reports on stdout, usage metered before each
 * (one commit for all: made for a benchmark's stream, not timed) */
static int pay_reports(const char *home, const char *id, long n)
{
	struct nn_pay p;
	char err[NN_ERRLEN];
	int rc = 0;
	if (n < 1)
		return 64;
	if (open_home(&p, home) < 0)
		return 78;
	if (nn_pay_batch_begin(&p, err) < 0)
		rc = NN_PAY_ESTORE;
	for (long i = 0; rc == 0 && i < n; i++) {
		struct nn_pay_usage u = { .cpu_ms = (uint64_t)(i + 1) * 1000, .wall_ms = (uint64_t)i };
		jv rep;
		if ((rc = nn_pay_meter_record(&p, id, "alloc-1", NULL, &u, err)) < 0 ||
		    (rc = nn_pay_usage_report(&p, id, &rep, err)) < 0)
			break;
		char *t = nn_json_dump(rep);
		printf("%s\n", t);
		free(t);
		jv_free(rep);
	}
	if (rc == 0)
		rc = nn_pay_batch_commit(&p, err);
	if (rc < 0)
		fprintf(stderr, "test-tool pay: reports: %s\n", err);
	nn_pay_close(&p);
	return rc < 0 ? nn_pay_exit_code(rc) : 0;
}

/* cputime CMD...: the CPU time (user + system) CMD took, from wait4 */
static int pay_cputime(char **argv)
{
	struct rusage ru;
	int st;
	int64_t t0 = nn_mono_ms();
	pid_t pid;
	fflush(stdout);
	if ((pid = fork()) < 0)
		return 71;
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "test-tool pay: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR)
			return 71;
	fprintf(stderr, "{\"wall_ms\":%lld,\"cpu_ms\":%.3f,\"status\":%d}\n",
		(long long)(nn_mono_ms() - t0),
		ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 +
		ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3,
		WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 70;
}

static int die_rc(int rc, const char *what, const char *err)
{
	fprintf(stderr, "test-tool pay: %s: %s\n", what, err);
	return rc < 0 ? nn_pay_exit_code(rc) : rc;
}

/* A contract between r's and p's keys, accepted by both; id into cid. */
static int bench_contract(struct nn_pay *r, struct nn_pay *p, char cid[NN_PAY_ID_LEN], char *err)
{
	jv terms = JV_OBJECT(jv_string("requester"), jv_string(r->key.did),
			     jv_string("provider"), jv_string(p->key.did),
			     jv_string("rates"), JV_OBJECT(jv_string("cpu_second"), jv_string("3")),
			     jv_string("cap"), jv_string("100000000000"),
			     jv_string("duration_s"), jv_number(86400)), doc, back;
	int rc;
	if ((rc = nn_pay_contract_propose(r, terms, 0, &doc, err)) < 0 ||
	    (rc = nn_pay_contract_accept(p, doc, &doc, err)) < 0 ||
	    (rc = nn_pay_contract_accept(r, jv_copy(doc), &back, err)) < 0)
		return rc;
	jv_free(back);
	jv idv = jv_object_get(doc, jv_string("id"));
	snprintf(cid, NN_PAY_ID_LEN, "%s", jv_string_value(idv));
	jv_free(idv);
	return 0;
}

/* CPU time of this process so far, in ms: the work, whatever else the
 * machine runs (wall time on a shared machine is mostly other work) */
static double cpu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* n vouchers on a fresh contract: reports made (untimed), then issued by r
 * and accepted by p, in batches of batch (1: one transaction each); wall
 * and CPU ms into ms[0], ms[1]. */
static int bench_run(struct nn_pay *r, struct nn_pay *p, long n, long batch, double *ms, char *err)
{
	char cid[NN_PAY_ID_LEN];
	jv *reports = nn_xcalloc((size_t)n, sizeof *reports);
	jv *vouchers = nn_xcalloc((size_t)n, sizeof *vouchers);
	int rc;
	int64_t t0;
	double c0;

	if ((rc = bench_contract(r, p, cid, err)) < 0)
		return rc;
	nn_pay_batch_begin(p, err);
	for (long i = 0; i < n; i++) {
		struct nn_pay_usage u = { .cpu_ms = (uint64_t)(i + 1) * 1000, .wall_ms = (uint64_t)i };
		if ((rc = nn_pay_meter_record(p, cid, "alloc-1", NULL, &u, err)) < 0 ||
		    (rc = nn_pay_usage_report(p, cid, &reports[i], err)) < 0)
			return rc;
	}
	if ((rc = nn_pay_batch_commit(p, err)) < 0)
		return rc;
	t0 = nn_mono_ms();
	c0 = cpu_now_ms();
	for (long i = 0; i < n; i += batch) {
		long end = i + batch < n ? i + batch : n;
		if (batch > 1 && (rc = nn_pay_batch_begin(r, err)) < 0)
			return rc;
		for (long j = i; j < end; j++)
			if ((rc = nn_pay_usage_answer(r, reports[j], &vouchers[j], err)) < 0)
				return rc;
		if (batch > 1 && (rc = nn_pay_batch_commit(r, err)) < 0)
			return rc;
		if (batch > 1 && (rc = nn_pay_batch_begin(p, err)) < 0)
			return rc;
		for (long j = i; j < end; j++) {
			if ((rc = nn_pay_voucher_accept(p, vouchers[j], cid, NULL, err)) < 0)
				return rc;
			jv_free(vouchers[j]);
		}
		if (batch > 1 && (rc = nn_pay_batch_commit(p, err)) < 0)
			return rc;
	}
	ms[0] = (double)(nn_mono_ms() - t0);
	ms[1] = cpu_now_ms() - c0;
	free(reports);
	free(vouchers);
	return 0;
}

static void crypto_ms(const struct nn_key *k, long n, int *bad, double *ms)
{
	uint8_t msg[400], sig[64];
	int64_t t0 = nn_mono_ms();
	double c0 = cpu_now_ms();
	memset(msg, 'x', sizeof msg);
	for (long i = 0; i < n; i++) {
		msg[0] = (uint8_t)i;
		nn_key_sign(k, sig, msg, sizeof msg);
		*bad |= nn_sig_verify(k->pk, sig, msg, sizeof msg);
		*bad |= nn_sig_verify(k->pk, sig, msg, sizeof msg);
	}
	ms[0] = (double)(nn_mono_ms() - t0);
	ms[1] = cpu_now_ms() - c0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define BENCH_PASSES_MAX 15

/* Median of v[0..n), vouchers per second for m vouchers. */
static double rate_median(double *v, int n, long m)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return m * 1000.0 / (v[n / 2] + 0.5);
}

static int pay_bench(long n, const char *dir, int passes)
{
	struct nn_key kr, kp;
	struct nn_pay r, p;
	char err[NN_ERRLEN], *rpath = nn_xasprintf("%s/r.db", dir), *ppath = nn_xasprintf("%s/p.db", dir);
	/* [what][wall|cpu][pass]: what = crypto, one commit each, group */
	double ms[3][2][BENCH_PASSES_MAX], one[2];
	double rate[3][2];
	int rc, bad = 0;

	if (n < 1 || passes < 1 || passes > BENCH_PASSES_MAX)
		return 64;
	nn_key_generate(&kr);
	nn_key_generate(&kp);
	unlink(rpath);
	unlink(ppath);
	if ((rc = nn_pay_open(&r, rpath, &kr, err)) < 0 || (rc = nn_pay_open(&p, ppath, &kp, err)) < 0)
		return die_rc(rc, "open", err);
	/* alternating passes, medians: the machine is shared, one pass may
	 * meet a burst of other work */
	for (int i = 0; i < passes; i++) {
		crypto_ms(&kr, n, &bad, one);
		ms[0][0][i] = one[0];
		ms[0][1][i] = one[1];
		if ((rc = bench_run(&r, &p, n, 1, one, err)) < 0)
			return die_rc(rc, "run", err);
		ms[1][0][i] = one[0];
		ms[1][1][i] = one[1];
		if ((rc = bench_run(&r, &p, n, 100, one, err)) < 0)
			return die_rc(rc, "run", err);
		ms[2][0][i] = one[0];
		ms[2][1][i] = one[1];
	}
	if ((rc = nn_pay_ledger_verify(&p, err)) < 0 || (rc = nn_pay_ledger_verify(&r, err)) < 0)
		return die_rc(rc, "verify", err);
	for (int w = 0; w < 3; w++)
		for (int c = 0; c < 2; c++)
			rate[w][c] = rate_median(ms[w][c], passes, n);
	printf("{\"vouchers\":%ld,\"passes\":%d,\"per_voucher_commit_per_s\":%.0f,"
	       "\"group_commit_100_per_s\":%.0f,\"baseline_crypto_per_s\":%.0f,"
	       "\"ratio_single\":%.3f,\"ratio_group\":%.3f,"
	       "\"per_voucher_commit_per_cpu_s\":%.0f,\"group_commit_100_per_cpu_s\":%.0f,"
	       "\"baseline_crypto_per_cpu_s\":%.0f,\"ratio_single_cpu\":%.3f,\"ratio_group_cpu\":%.3f,"
	       "\"ok\":%s}\n",
	       n, passes, rate[1][0], rate[2][0], rate[0][0], rate[1][0] / rate[0][0],
	       rate[2][0] / rate[0][0], rate[1][1], rate[2][1], rate[0][1], rate[1][1] / rate[0][1],
	       rate[2][1] / rate[0][1], bad ? "false" : "true");
	nn_pay_close(&r);
	nn_pay_close(&p);
	nn_key_clear(&kr);
	nn_key_clear(&kp);
	free(rpath);
	free(ppath);
	return bad ? 70 : 0;
}

static int pay_scan(const char *kind)
{
	int type = !strcmp(kind, "usage") ? NN_PAY_DOC_USAGE :
		!strcmp(kind, "voucher") ? NN_PAY_DOC_VOUCHER : 0;
	struct nn_lines l;
	const char *line;
	size_t len;
	int r, rc = 0;

	if (!type)
		return 64;
	nn_lines_init(&l, 0);
	while (nn_lines_read_fd(&l, 0) > 0)
		;
	nn_lines_feed(&l, "\n", 1);
	while ((r = nn_lines_next(&l, &line, &len)) != NN_LINES_NONE) {
		char why[NN_ERRLEN + 128];
		int fast;
		if (r != NN_LINES_LINE || len == 0)
			continue;
		if (payscan_oracle(type, line, len, why, sizeof why, &fast) < 0) {
			printf("MISMATCH: %s\n", why);
			rc = 1;
		} else if (fast) {
			printf("fast %s\n", why);
		} else {
			printf("full%s%s\n", strcmp(why, "ok") ? ": " : " ", why);
		}
	}
	nn_lines_release(&l);
	return rc;
}

int cmd__pay(int argc, char **argv)
{
	char err[NN_ERRLEN];
	if (argc < 2)
		return 64;
	if (!strcmp(argv[1], "amount")) {
		for (int i = 2; i < argc; i++) {
			uint64_t v;
			if (nn_pay_amount_parse(argv[i], &v, err) < 0)
				printf("error: %s\n", err);
			else
				printf("%llu\n", (unsigned long long)v);
		}
		return 0;
	}
	if (!strcmp(argv[1], "sign") && argc == 4)
		return pay_sign(argv[2], argv[3]);
	if (!strcmp(argv[1], "serve") && argc == 3)
		return pay_serve(argv[2]);
	if (!strcmp(argv[1], "require") && argc == 4)
		return pay_require(argv[2], argv[3]);
	if (!strcmp(argv[1], "handle") && argc == 4)
		return pay_handle(argv[2], argv[3]);
	if (!strcmp(argv[1], "reports") && argc == 5)
		return pay_reports(argv[2], argv[3], atol(argv[4]));
	if (!strcmp(argv[1], "cputime") && argc >= 3)
		return pay_cputime(argv + 2);
	if (!strcmp(argv[1], "sync") && argc == 3) {
		struct nn_key k;
		struct nn_pay p;
		sqlite3_stmt *st;
		int rc;
		nn_key_generate(&k);
		if ((rc = nn_pay_open(&p, argv[2], &k, err)) < 0)
			return die_rc(rc, "open", err);
		sqlite3_prepare_v2(p.db.h, "PRAGMA synchronous", -1, &st, NULL);
		if (sqlite3_step(st) == SQLITE_ROW)
			printf("%d\n", sqlite3_column_int(st, 0));
		sqlite3_finalize(st);
		nn_pay_close(&p);
		return 0;
	}
	if (!strcmp(argv[1], "scan") && argc == 3)
		return pay_scan(argv[2]);
	if (!strcmp(argv[1], "bench") && (argc == 4 || argc == 5))
		return pay_bench(atol(argv[2]), argv[3], argc == 5 ? atoi(argv[4]) : 5);
	return 64;
}
