/*
 * payscan-oracle.h — the oracle of the economy's strict reader
 * (nn_pay_doc_scan in lib/pay.h), shared by the pay fuzz target and by
 * `test-tool pay scan` (t/6006-pay-scan.bats): whatever text the strict
 * reader takes, the full reader (nn_json_parse, then nn_pay_doc_read) takes
 * too, to the same fields, the same signature, the same signed bytes and
 * the same canonical text.
 *
 * payscan_oracle(type, line, len, why, n, &fast): 0, with *fast 1 when the
 * strict reader took the line, and why the full reader's verdict ("ok" or
 * its error); -1 with what differs in why.
 */
#ifndef FUZZ_PAYSCAN_ORACLE_H
#define FUZZ_PAYSCAN_ORACLE_H

#include <stdio.h>
#include <string.h>
#include <jv.h>
#include "json.h"
#include "pay.h"

static inline int payscan_bytes_eq(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && (!an || (a && b && !memcmp(a, b, an)));
}

static inline int payscan_oracle(int type, const char *line, size_t len, char *why, size_t n,
				 int *fast)
{
	struct nn_buf m1 = NN_BUF_INIT, m2 = NN_BUF_INIT;
	struct nn_pay_doc a = { .msg = &m1 }, b = { .msg = &m2 };
	char err[NN_ERRLEN] = "";
	const char *bad = NULL;
	int full;
	jv v;

	*fast = nn_pay_doc_scan(type, line, len, &a);
	v = nn_json_parse(line, len, err);
	full = jv_is_valid(v) ? nn_pay_doc_read(type, v, &b, err) : NN_PAY_EBAD;
	snprintf(why, n, "%s", full == 0 ? "ok" : err);
	if (*fast) {
		if (full < 0)
			bad = "the full reader refuses it";
		else if (strcmp(a.contract, b.contract))
			bad = "contract";
		else if (strcmp(a.requester, b.requester) || strcmp(a.provider, b.provider))
			bad = "parties";
		else if (a.seq != b.seq || a.ts != b.ts || a.amount != b.amount)
			bad = "seq, ts or amount";
		else if (memcmp(&a.usage, &b.usage, sizeof a.usage))
			bad = "usage";
		else if (!b.sig || !payscan_bytes_eq(a.sig, a.siglen, b.sig, b.siglen))
			bad = "sig";
		else if (!payscan_bytes_eq(m1.data, m1.len, m2.data, m2.len))
			bad = "the signed bytes";
		else if (!payscan_bytes_eq(a.text, a.tlen, b.text, b.tlen))
			bad = "the canonical text";
		if (bad)
			snprintf(why, n, "strict and full readers differ: %s (full: %s)", bad,
				 full == 0 ? "ok" : err);
	}
	jv_free(v);
	nn_pay_doc_release(&a);
	nn_pay_doc_release(&b);
	nn_buf_release(&m1);
	nn_buf_release(&m2);
	return bad ? -1 : 0;
}

#endif
