/*
 * Fuzz target: the economy's documents (lib/pay.h) as a counterparty sends
 * them.  Two ledgers in a private directory hold one deterministic contract
 * (fixed keys, nonce and clock) accepted by both sides; each input is one
 * JSON document that goes through nn_pay_contract_check, the provider's
 * nn_pay_voucher_check and nn_pay_voucher_accept, the requester's
 * nn_pay_usage_answer, and nn_pay_handle for both behaviors.  The storing
 * calls run inside a batch that is rolled back, so every input meets the
 * same ledger.  Amount strings found in the document go through
 * nn_pay_amount_parse, which must read back what it formats.  The input's
 * text also goes through the strict reader of reports and vouchers, which
 * must read it as the full reader does (payscan-oracle.h), and through
 * nn_pay_voucher_text and nn_pay_usage_answer_text.
 */
#include <jv.h>
#include "pay.h"
#include "json.h"
#include "fuzz.h"
#include "payscan-oracle.h"

#define NOW 1800000000000LL

static struct nn_pay req, prov;
static char contract_id[NN_PAY_ID_LEN];

static int64_t fixed_now(void)
{
	return NOW;
}

static void cleanup(void)
{
	char p[160];
	const char *names[] = { "r.db", "r.db-wal", "r.db-shm", "p.db", "p.db-wal", "p.db-shm" };
	nn_pay_close(&req);
	nn_pay_close(&prov);
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		snprintf(p, sizeof p, "%s/%s", fuzz_dir(), names[i]);
		unlink(p);
	}
}

static void setup(void)
{
	static const uint8_t s1[32] = FUZZ_SEED(4), s2[32] = FUZZ_SEED(5);
	struct nn_key rk, pk;
	char err[NN_ERRLEN], path[160];
	jv doc, both;

	if (contract_id[0])
		return;
	fuzz_sodium();
	nn_key_from_seed(&rk, s1);
	nn_key_from_seed(&pk, s2);
	snprintf(path, sizeof path, "%s/r.db", fuzz_dir());
	if (nn_pay_open(&req, path, &rk, err) < 0)
		goto fail;
	snprintf(path, sizeof path, "%s/p.db", fuzz_dir());
	if (nn_pay_open(&prov, path, &pk, err) < 0)
		goto fail;
	atexit(cleanup);
	req.now = prov.now = fixed_now;
	jv terms = jv_object();
	terms = jv_object_set(terms, jv_string("requester"), jv_string(rk.did));
	terms = jv_object_set(terms, jv_string("provider"), jv_string(pk.did));
	terms = jv_object_set(terms, jv_string("rates"), JV_OBJECT(
		jv_string("cpu_second"), jv_string("20"), jv_string("gib_second"), jv_string("5"),
		jv_string("allocation"), jv_string("1000"), jv_string("deployment"), jv_string("10000")));
	terms = jv_object_set(terms, jv_string("cap"), jv_string("5000000"));
	terms = jv_object_set(terms, jv_string("duration_s"), jv_number(86400));
	terms = jv_object_set(terms, jv_string("nonce"), jv_string("00112233445566778899aabbccddeeff"));
	terms = jv_object_set(terms, jv_string("created"), jv_number((double)(NOW - 60000)));
	if (nn_pay_contract_propose(&req, terms, 0, &doc, err) < 0)
		goto fail;
	if (nn_pay_contract_accept(&prov, doc, &both, err) < 0)
		goto fail;
	doc = jv_invalid();
	if (nn_pay_contract_accept(&req, jv_copy(both), &doc, err) < 0)
		goto fail;
	jv_free(doc);
	const char *id;
	if (nn_json_get_str(both, "id", &id, err) < 0)
		goto fail;
	snprintf(contract_id, sizeof contract_id, "%s", id);
	if (getenv("FUZZ_PAY_PRINT")) {	/* how the seeds were made */
		char *s = nn_json_dump(both);
		printf("%s\n", s);
		free(s);
	}
	jv_free(both);
	nn_key_clear(&rk);
	nn_key_clear(&pk);
	return;
fail:
	fprintf(stderr, "fuzz pay: setup: %s\n", err);
	abort();
}

static void amounts(jv v)
{
	jv_kind k = jv_get_kind(v);
	if (k == JV_KIND_STRING) {
		uint64_t a;
		char err[NN_ERRLEN], out[NN_PAY_AMOUNT_MAX];
		if (nn_pay_amount_parse(jv_string_value(v), &a, err) == 0) {
			nn_pay_amount_fmt(out, a);
			FUZZ_CHECK(strcmp(out, jv_string_value(v)) == 0);
		}
	} else if (k == JV_KIND_OBJECT) {
		jv_object_foreach(v, key, val) {
			amounts(val);
			jv_free(key);
		}
	}
	jv_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	struct nn_pay_terms t;
	struct nn_pay_voucher_info info;
	jv out;
	int rc;

	setup();
	for (int type = NN_PAY_DOC_USAGE; type <= NN_PAY_DOC_VOUCHER; type++) {
		char why[NN_ERRLEN + 128];
		int fast;
		if (payscan_oracle(type, (const char *)data, size, why, sizeof why, &fast) < 0) {
			fprintf(stderr, "fuzz pay: %s\n", why);
			FUZZ_CHECK(0);
		}
	}
	{
		struct nn_buf b = NN_BUF_INIT;
		FUZZ_CHECK(nn_pay_batch_begin(&prov, err) == 0);
		rc = nn_pay_voucher_text(&prov, (const char *)data, size, 1, NULL, &info, err);
		FUZZ_CHECK(rc == 0 || err[0]);
		nn_pay_batch_abort(&prov);
		FUZZ_CHECK(nn_pay_batch_begin(&req, err) == 0);
		rc = nn_pay_usage_answer_text(&req, (const char *)data, size, &b, err);
		FUZZ_CHECK(rc == 0 || err[0]);
		nn_pay_batch_abort(&req);
		nn_buf_release(&b);
	}
	jv doc = nn_json_parse((const char *)data, size, err);
	if (!jv_is_valid(doc)) {
		jv_free(doc);
		return 0;
	}
	amounts(jv_copy(doc));
	rc = nn_pay_contract_check(doc, &t, err);
	FUZZ_CHECK(rc == 0 || ((rc == NN_PAY_EBAD || rc == NN_PAY_EREFUSED) && err[0]));
	rc = nn_pay_voucher_check(&prov, doc, NULL, &info, err);
	FUZZ_CHECK(rc <= 0);
	(void)nn_pay_exit_code(rc);

	FUZZ_CHECK(nn_pay_batch_begin(&prov, err) == 0);
	rc = nn_pay_voucher_accept(&prov, doc, contract_id, &info, err);
	FUZZ_CHECK(rc == 0 || err[0]);
	rc = nn_pay_handle(&prov, "/pay/voucher", doc, &out, err);
	if (rc == 0)
		jv_free(out);
	nn_pay_batch_abort(&prov);

	FUZZ_CHECK(nn_pay_batch_begin(&req, err) == 0);
	rc = nn_pay_usage_answer(&req, jv_copy(doc), &out, err);
	if (rc == 0)
		jv_free(out);
	rc = nn_pay_handle(&req, "/pay/usage", doc, &out, err);
	if (rc == 0)
		jv_free(out);
	nn_pay_batch_abort(&req);
	jv_free(doc);
	return 0;
}
