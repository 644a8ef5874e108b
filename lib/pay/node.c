/*
 * pay/node — the economy inside the daemon: nn_pay_attach() opens the
 * node's ledger ($NUNET_HOME/ledger.db, with the node's key) and registers
 * the behaviors /pay/usage (body: a usage report; reply: the voucher that
 * answers it) and /pay/voucher (body: a voucher; reply: {"contract","seq",
 * "amount"}), and a closer.  The handlers are thin: they check that the
 * envelope comes from the document's counterparty (the provider for a
 * report, the requester for a voucher) or from an owner of this node
 * relaying it, then call nn_pay_handle().  They need no capability token:
 * the contract both parties signed is the authority, and a document is
 * only taken from the party that signed it, for a contract this node holds.
 * One node per process: the ledger handle is this file's.
 *
 * The meter (provider side) follows the allocations started under a
 * contract through lib/alloc's observer: each heartbeat's executor counters
 * become a sample in the ledger (nn_pay_meter_sample), and every
 * pay_report_interval_ms, for each contract whose usage changed since the
 * last voucher, a signed usage report goes to the requester's node
 * (nn_node_request to /pay/usage); the voucher in the reply is checked and
 * kept (nn_pay_voucher_accept).  Reports are cumulative, so one that got no
 * answer is simply followed by the next.  The end of an allocation sends a
 * report at once.  A refused report whose amount is over the contract's cap
 * (or whose wall time is over its duration) stops the contract's
 * allocations: the provider would work unpaid.
 */
#include "pay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "config.h"
#include "jscan.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "util.h"

static struct nn_pay ledger;
static int attached;

/* A contract the meter reports for. */
struct mcontract {
	char id[NN_PAY_ID_LEN];
	char req[NN_ID_MAX];		/* the report in flight ("" none) */
	struct nn_pay_usage sent, acked;	/* in flight; last answered by a voucher */
	uint64_t sent_amount;
	int64_t sent_seq;
	jv sent_doc;			/* the report last sent */
	int have_acked, again, stopped, unanswered;
	struct mcontract *next;
};

static struct {
	struct nn_node *n;
	struct nn_watch *timer;
	int64_t interval_ms;
	struct mcontract *list;
} meter;

/* What the group commit did, for /node/metrics. */
static struct {
	uint64_t batches, answers, failed;
} stats;

static int group_commit(struct nn_node *n, void *arg, char *err)
{
	if (!ledger.batch)
		return 0;
	if (nn_pay_batch_commit(&ledger, err) < 0) {
		stats.failed++;
		return -1;
	}
	return 0;
}

static void metrics(struct nn_node *n, struct nn_buf *b, void *arg)
{
	nn_buf_addf(b, "# HELP nunet_pay_commits_total Ledger commits of /pay/usage and /pay/voucher "
		    "(one per burst of envelopes read together).\n"
		    "# TYPE nunet_pay_commits_total counter\nnunet_pay_commits_total %llu\n"
		    "# HELP nunet_pay_answers_total Usage reports answered and vouchers kept through "
		    "/pay/usage and /pay/voucher.\n"
		    "# TYPE nunet_pay_answers_total counter\nnunet_pay_answers_total %llu\n"
		    "# HELP nunet_pay_commit_failures_total Group commits that failed (their "
		    "answers became errors).\n"
		    "# TYPE nunet_pay_commit_failures_total counter\n"
		    "nunet_pay_commit_failures_total %llu\n",
		    (unsigned long long)stats.batches, (unsigned long long)stats.answers,
		    (unsigned long long)stats.failed);
}

static enum nn_code code_for(int rc)
{
	return rc == NN_PAY_ESTORE ? NN_E_INTERNAL : NN_E_BAD_BODY;
}

/* The handler of both behaviors; party names the body's field that must
 * match the sender. */
static enum nn_code handle(struct nn_node *n, jv req, const char *be, const char *party,
			   jv *reply, char *err)
{
	const char *from = nn_env_str(req, "from"), *who;
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	enum nn_code code = NN_OK;
	int rc;

	if (jv_get_kind(body) != JV_KIND_OBJECT) {
		jv_free(body);
		nn_seterr(err, "body: expected an object");
		return NN_E_BAD_BODY;
	}
	if (nn_json_get_str(body, party, &who, err) < 0) {
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	if (!from || (!nn_node_is_owner(n, from) &&
		      (nn_did_len(from) != strlen(who) || strncmp(from, who, strlen(who))))) {
		nn_seterr(err, "%s: only the %s named in the body (%.80s) or an owner may send it",
			   be, party, who);
		jv_free(body);
		return NN_E_UNAUTHORIZED;
	}
	/* group commit: the reports and vouchers of one burst share one
	 * transaction, committed before any of their answers leaves */
	if (!ledger.batch) {
		if (nn_pay_batch_begin(&ledger, err) < 0) {
			jv_free(body);
			return NN_E_INTERNAL;
		}
		stats.batches++;
	}
	nn_node_hold(n, group_commit, NULL);
	rc = nn_pay_handle(&ledger, be, body, reply, err);
	jv_free(body);
	if (rc < 0)
		code = code_for(rc);
	else
		stats.answers++;
	return code;
}

static enum nn_code be_usage(struct nn_node *n, jv req, jv *reply, char *err)
{
	enum nn_code c = handle(n, req, "/pay/usage", "provider", reply, err);
	if (c == NN_OK)
		nn_node_emit(n, NN_LOG_INFO, "pay.issued", nn_env_str(req, "trace"),
			     JV_OBJECT(jv_string("contract"), jv_object_get(jv_copy(*reply), jv_string("contract")),
				       jv_string("seq"), jv_object_get(jv_copy(*reply), jv_string("seq")),
				       jv_string("amount"), jv_object_get(jv_copy(*reply), jv_string("amount"))));
	return c;
}

static enum nn_code be_voucher(struct nn_node *n, jv req, jv *reply, char *err)
{
	return handle(n, req, "/pay/voucher", "requester", reply, err);
}

/*
 * The hot path of both behaviors: the body as the node read it, given to
 * the ledger as text (nn_pay_usage_answer_text, nn_pay_voucher_text), the
 * reply written as text.  A body whose party field the scanner cannot read
 * is left to handle(), which refuses it with its message.
 */
static int handle_text(struct nn_node *n, const struct nn_env_head *h, const char *body,
		       size_t blen, const char *be, const char *party, struct nn_buf *reply,
		       enum nn_code *code, char *err)
{
	struct nn_jscan j;
	const struct nn_jscan_member *m;
	struct nn_pay_voucher_info info;
	const char *from = h->from;
	size_t wlen;
	int rc;

	if (nn_jscan_object(body, blen, &j) < 0 || !(m = nn_jscan_get(&j, party)) ||
	    m->kind != NN_JSCAN_STRING || !m->plain)
		return 0;
	wlen = m->vlen - 2;
	if (!from || (!nn_node_is_owner(n, from) &&
		      (nn_did_len(from) != wlen || strncmp(from, m->val + 1, wlen)))) {
		nn_seterr(err, "%s: only the %s named in the body (%.*s) or an owner may send it",
			  be, party, (int)(wlen > 80 ? 80 : wlen), m->val + 1);
		*code = NN_E_UNAUTHORIZED;
		return 1;
	}
	if (!ledger.batch) {
		if (nn_pay_batch_begin(&ledger, err) < 0) {
			*code = NN_E_INTERNAL;
			return 1;
		}
		stats.batches++;
	}
	nn_node_hold(n, group_commit, NULL);
	if (be[5] == 'u') {
		size_t mark = reply->len;
		rc = nn_pay_usage_answer_text(&ledger, body, blen, reply, err);
		if (rc == 0 && nn_jscan_object(reply->data + mark, reply->len - mark, &j) == 0) {
			jv v = nn_jscan_jv(&j);	/* the event be_usage emits */
			nn_node_emit(n, NN_LOG_INFO, "pay.issued", h->trace,
				     JV_OBJECT(jv_string("contract"),
					       jv_object_get(jv_copy(v), jv_string("contract")),
					       jv_string("seq"), jv_object_get(jv_copy(v), jv_string("seq")),
					       jv_string("amount"), jv_object_get(jv_copy(v), jv_string("amount"))));
			jv_free(v);
		}
	} else {
		rc = nn_pay_voucher_text(&ledger, body, blen, 1, NULL, &info, err);
		if (rc == 0)
			nn_pay_voucher_info_write(reply, "{", &info, "}");
	}
	if (rc < 0)
		*code = code_for(rc);
	else
		stats.answers++;
	return 1;
}

static int text_usage(struct nn_node *n, const struct nn_env_head *h, const char *body, size_t blen,
		      struct nn_buf *reply, enum nn_code *code, char *err)
{
	return handle_text(n, h, body, blen, "/pay/usage", "provider", reply, code, err);
}

static int text_voucher(struct nn_node *n, const struct nn_env_head *h, const char *body,
			size_t blen, struct nn_buf *reply, enum nn_code *code, char *err)
{
	return handle_text(n, h, body, blen, "/pay/voucher", "requester", reply, code, err);
}

static const struct nn_behavior behaviors[] = {
	{ "/pay/usage", be_usage, "answer a signed usage report with a voucher", 1 },
	{ "/pay/voucher", be_voucher, "keep a voucher for a contract we provide under", 1 },
};

/* ---- the meter ---- */

static struct mcontract *mc_get(const char *id)
{
	struct mcontract *c;
	for (c = meter.list; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	c = nn_xcalloc(1, sizeof *c);
	snprintf(c->id, sizeof c->id, "%s", id);
	c->sent_doc = jv_invalid();
	c->next = meter.list;
	meter.list = c;
	return c;
}

static int usage_same(const struct nn_pay_usage *a, const struct nn_pay_usage *b)
{
	return a->cpu_ms == b->cpu_ms && a->mem_mib_ms == b->mem_mib_ms && a->wall_ms == b->wall_ms &&
	       a->allocations == b->allocations && a->deployments == b->deployments;
}

static void emit(enum nn_level lv, const char *kind, jv fields)
{
	nn_node_emit(meter.n, lv, kind, NULL, fields);
}

static void ignore_answer(struct nn_node *n, jv answer, void *arg)
{
}

/* Stop every allocation still running under c (their node is this one). */
static void mc_stop(struct mcontract *c, const char *why)
{
	char err[NN_ERRLEN];
	jv ids;
	c->stopped = 1;
	if (nn_pay_meter_open(&ledger, c->id, &ids, err) < 0) {
		nn_warn("pay: contract %s: %s", c->id, err);
		return;
	}
	nn_warn("pay: contract %s: %s: stopping its %d allocation(s)", c->id, why,
		jv_array_length(jv_copy(ids)));
	jv_array_foreach(ids, i, id) {
		if (nn_node_request(meter.n, nn_node_did(meter.n), "/alloc/cancel",
				    JV_OBJECT(jv_string("id"), jv_copy(id)), NULL, 10000, ignore_answer,
				    NULL, NULL, err) < 0)
			nn_warn("pay: cannot cancel allocation %s: %s", jv_string_value(id), err);
		jv_free(id);
	}
	emit(NN_LOG_WARN, "pay.stop", JV_OBJECT(jv_string("contract"), jv_string(c->id),
					       jv_string("reason"), jv_string(why),
					       jv_string("allocations"), ids));
}

static void mc_report(struct mcontract *c);

/* The requester's answer to a report (borrowed), or why there is none. */
static void on_answer(struct nn_node *n, jv answer, void *arg)
{
	struct mcontract *c = arg;
	char err[NN_ERRLEN];
	const char *type = jv_is_valid(answer) ? nn_env_str(answer, "type") : NULL;
	jv body = type ? jv_object_get(jv_copy(answer), jv_string("body")) : jv_invalid();
	int owned = 0;

	c->req[0] = '\0';
	c->unanswered = 0;
	if (type && strcmp(type, "reply")) {
		/* an error from the way there, not from the requester: unanswered */
		const char *code = "";
		nn_json_get_str(body, "code", &code, NULL);
		if (!strcmp(code, "unavailable") || !strcmp(code, "busy") || !strcmp(code, "timeout")) {
			const char *m = "";
			nn_json_get_str(body, "message", &m, NULL);
			answer = jv_invalid_with_msg(jv_string_fmt("%s: %s", code, m));
			type = NULL;
			owned = 1;
		}
	}
	if (!jv_is_valid(answer)) {
		jv msg = jv_invalid_get_msg(jv_copy(answer));
		const char *m = jv_get_kind(msg) == JV_KIND_STRING ? jv_string_value(msg) : "no answer";
		nn_warn("pay: contract %s: usage report %lld: %s (sent again at the next interval)",
			c->id, (long long)c->sent_seq, m);
		c->unanswered = 1;
		emit(NN_LOG_WARN, "pay.unanswered", JV_OBJECT(jv_string("contract"), jv_string(c->id),
			jv_string("seq"), jv_number((double)c->sent_seq), jv_string("message"), jv_string(m)));
		jv_free(msg);
		if (owned)
			jv_free(answer);
	} else if (!strcmp(type, "reply")) {
		struct nn_pay_voucher_info info;
		if (nn_pay_voucher_accept(&ledger, body, c->id, &info, err) < 0) {
			nn_warn("pay: contract %s: the voucher answering report %lld is refused: %s", c->id,
				(long long)c->sent_seq, err);
			emit(NN_LOG_WARN, "pay.voucher_refused", JV_OBJECT(jv_string("contract"),
				jv_string(c->id), jv_string("seq"), jv_number((double)c->sent_seq),
				jv_string("message"), jv_string(err)));
		} else {
			char a[NN_PAY_AMOUNT_MAX];
			c->acked = c->sent;
			c->have_acked = 1;
			nn_pay_amount_fmt(a, info.amount);
			emit(NN_LOG_INFO, "pay.voucher", JV_OBJECT(jv_string("contract"), jv_string(c->id),
				jv_string("seq"), jv_number((double)info.seq), jv_string("amount"), jv_string(a),
				jv_string("report"), jv_number((double)c->sent_seq)));
		}
	} else {
		const char *code = "?", *m = "?";
		jv cj = jv_invalid(), terms;
		struct nn_pay_terms t;
		nn_json_get_str(body, "code", &code, NULL);
		nn_json_get_str(body, "message", &m, NULL);
		nn_warn("pay: contract %s: usage report %lld refused by the requester: %s: %s", c->id,
			(long long)c->sent_seq, code, m);
		emit(NN_LOG_WARN, "pay.refused", JV_OBJECT(jv_string("contract"), jv_string(c->id),
			jv_string("seq"), jv_number((double)c->sent_seq),
			jv_string("amount"), jv_number((double)c->sent_amount), jv_string("code"),
			jv_string(code), jv_string("message"), jv_string(m)));
		/* over what the contract allows: the work goes unpaid from here */
		if (nn_pay_contract_get(&ledger, c->id, &cj, err) == 0) {
			terms = jv_object_get(jv_copy(cj), jv_string("contract"));
			if (nn_pay_contract_check(terms, &t, NULL) == 0) {
				if (c->sent_amount > t.cap)
					mc_stop(c, "its cap is reached");
				else if (c->sent.wall_ms > (uint64_t)t.duration_s * 1000)
					mc_stop(c, "its duration is over");
			}
			jv_free(terms);
		}
		jv_free(cj);
	}
	jv_free(body);
	if (c->again) {
		c->again = 0;
		mc_report(c);
	}
}

/* Send c's next usage report, unless nothing changed since the last
 * voucher or one is in flight (then once it is answered). */
static void mc_report(struct mcontract *c)
{
	char err[NN_ERRLEN];
	struct nn_pay_usage u;
	const char *req, *amt;
	jv rep, uj;
	int64_t seq = 0;

	if (c->stopped)
		return;
	if (c->req[0]) {
		c->again = 1;
		return;
	}
	if (nn_pay_meter_total(&ledger, c->id, &u, err) < 0) {
		nn_warn("pay: contract %s: %s", c->id, err);
		return;
	}
	if (c->have_acked && usage_same(&u, &c->acked))
		return;
	if (c->unanswered && jv_is_valid(c->sent_doc) && usage_same(&u, &c->sent)) {
		/* nothing new since the report that went unanswered: the same
		 * one again (a requester that did answer it answers the same) */
		if (nn_json_get_str(c->sent_doc, "requester", &req, err) < 0 ||
		    nn_node_request(meter.n, req, "/pay/usage", jv_copy(c->sent_doc), NULL,
				    meter.interval_ms > 5000 ? meter.interval_ms : 5000, on_answer, c,
				    c->req, err) < 0) {
			c->req[0] = '\0';
			nn_warn("pay: contract %s: cannot send usage report %lld: %s", c->id,
				(long long)c->sent_seq, err);
		}
		return;
	}
	if (nn_pay_usage_report(&ledger, c->id, &rep, err) < 0) {
		nn_warn("pay: contract %s: no usage report: %s", c->id, err);
		return;
	}
	uj = jv_object_get(jv_copy(rep), jv_string("usage"));
	{
		int64_t v[5] = { 0 };
		const char *k[5] = { "cpu_ms", "mem_mib_ms", "wall_ms", "allocations", "deployments" };
		for (int i = 0; i < 5; i++)
			nn_json_get_int(uj, k[i], &v[i], NULL);
		c->sent = (struct nn_pay_usage){ (uint64_t)v[0], (uint64_t)v[1], (uint64_t)v[2],
						 (uint64_t)v[3], (uint64_t)v[4] };
	}
	jv_free(uj);
	nn_json_get_int(rep, "seq", &seq, NULL);
	c->sent_seq = seq;
	c->sent_amount = 0;
	if (nn_json_get_str(rep, "amount", &amt, NULL) == 0)
		nn_pay_amount_parse(amt, &c->sent_amount, NULL);
	emit(NN_LOG_INFO, "pay.report", JV_OBJECT(jv_string("contract"), jv_string(c->id),
		jv_string("seq"), jv_number((double)seq), jv_string("amount"),
		jv_object_get(jv_copy(rep), jv_string("amount")),
		jv_string("usage"), jv_object_get(jv_copy(rep), jv_string("usage"))));
	if (nn_json_get_str(rep, "requester", &req, err) < 0 ||
	    nn_node_request(meter.n, req, "/pay/usage", jv_copy(rep), NULL,
			    meter.interval_ms > 5000 ? meter.interval_ms : 5000, on_answer, c, c->req,
			    err) < 0) {
		c->req[0] = '\0';
		nn_warn("pay: contract %s: cannot send usage report %lld: %s", c->id, (long long)seq, err);
	}
	jv_free(c->sent_doc);
	c->sent_doc = rep;
}

static void on_tick(struct nn_loop *l, void *arg)
{
	char err[NN_ERRLEN];
	jv ids;
	if (nn_pay_meter_open(&ledger, NULL, &ids, err) < 0) {
		nn_warn("pay: %s", err);
		return;
	}
	jv_array_foreach(ids, i, id) {
		mc_report(mc_get(jv_string_value(id)));
		jv_free(id);
	}
	jv_free(ids);
}

static const char *opts_contract(jv opts)
{
	const char *c;
	if (jv_get_kind(opts) != JV_KIND_OBJECT || nn_json_get_str(opts, "contract", &c, NULL) < 0)
		return NULL;
	return c;
}

/* A sample from an allocation's counters (borrowed; null: none);
 * deployment may be NULL. */
static void sample(const char *contract, const char *id, const char *deployment, int run, jv data,
		   int end)
{
	struct nn_pay_sample s = { run, NN_PAY_UNKNOWN, -1, nn_now_ms(), end };
	char err[NN_ERRLEN];
	jv v;
	if (jv_get_kind(data) == JV_KIND_OBJECT) {
		v = jv_object_get(jv_copy(data), jv_string("cpu_seconds"));
		if (jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) >= 0 &&
		    jv_number_value(v) < 9e12)
			s.cpu_ms = (uint64_t)llround(jv_number_value(v) * 1000);
		jv_free(v);
		v = jv_object_get(jv_copy(data), jv_string("memory_current"));
		if (jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) >= 0 &&
		    jv_number_value(v) < 9e15)
			s.mem_bytes = (int64_t)jv_number_value(v);
		jv_free(v);
	}
	if (nn_pay_meter_sample(&ledger, contract, id, deployment, &s, err) < 0) {
		nn_warn("pay: allocation %s: usage under contract %s not recorded: %s", id, contract, err);
		emit(NN_LOG_WARN, "pay.meter_failed", JV_OBJECT(jv_string("contract"), jv_string(contract),
			jv_string("alloc"), jv_string(id), jv_string("message"), jv_string(err)));
	}
}

static void on_alloc(struct nn_node *n, enum nn_alloc_event ev, const char *id, jv opts, int run,
		     jv data, void *arg)
{
	const char *contract = opts_contract(opts), *dep = NULL;
	jv zero;
	if (!contract)
		return;
	nn_json_get_str(opts, "deployment", &dep, NULL);
	switch (ev) {
	case NN_ALLOC_STARTED:
		zero = JV_OBJECT(jv_string("cpu_seconds"), jv_number(0), jv_string("memory_current"),
				 jv_number(0));
		sample(contract, id, dep, 0, zero, 0);
		jv_free(zero);
		break;
	case NN_ALLOC_STATS:
		sample(contract, id, dep, run, data, 0);
		break;
	case NN_ALLOC_ENDED:
		sample(contract, id, dep, run, data, 1);
		mc_report(mc_get(contract));	/* the final report */
		break;
	}
}

/* /alloc/start under a contract: ours as provider, accepted or active,
 * its cap not reached, asked for by its requester or an owner. */
static enum nn_code on_check(struct nn_node *n, jv req, const char *contract, void *arg, char *err)
{
	struct nn_pay_terms t;
	struct nn_pay_usage u;
	uint64_t amount;
	const char *from = nn_env_str(req, "from");
	char e[NN_ERRLEN];
	jv cj, doc;
	int rc;

	if ((rc = nn_pay_contract_require(&ledger, contract, e)) < 0) {
		nn_seterr(err, "contract: %s", e);
		return rc == NN_PAY_ESTORE ? NN_E_INTERNAL : NN_E_UNAUTHORIZED;
	}
	if (nn_pay_contract_get(&ledger, contract, &cj, e) < 0) {
		nn_seterr(err, "contract: %s", e);
		return NN_E_INTERNAL;
	}
	doc = jv_object_get(cj, jv_string("contract"));
	rc = nn_pay_contract_check(doc, &t, e);
	jv_free(doc);
	if (rc < 0) {
		nn_seterr(err, "contract: %s", e);
		return NN_E_INTERNAL;
	}
	if (!from || (!nn_node_is_owner(n, from) &&
		      (nn_did_len(from) != strlen(t.requester) ||
		       strncmp(from, t.requester, strlen(t.requester))))) {
		nn_seterr(err, "contract: only its requester (%s) or an owner of this node may start "
			  "work under contract %s", t.requester, contract);
		return NN_E_UNAUTHORIZED;
	}
	if (nn_pay_meter_total(&ledger, contract, &u, e) < 0 ||
	    nn_pay_usage_amount(&t, &u, &amount, e) < 0) {
		nn_seterr(err, "contract: %s", e);
		return NN_E_INTERNAL;
	}
	if (amount >= t.cap) {
		nn_seterr(err, "contract: %s: the usage so far is worth %llu, its cap is %llu",
			  contract, (unsigned long long)amount, (unsigned long long)t.cap);
		return NN_E_UNAVAILABLE;
	}
	return NN_OK;
}

static const struct nn_alloc_observer observer = { on_check, on_alloc, NULL };

/* After a crash: allocations that ended while the node was down, or
 * before their end reached the ledger, end on the meter too (asked of
 * /alloc/status now: the allocations module is attached before this one). */
static void meter_recover(void)
{
	char err[NN_ERRLEN];
	jv cids, ids;
	if (nn_pay_meter_open(&ledger, NULL, &cids, err) < 0) {
		nn_warn("pay: %s", err);
		return;
	}
	jv_array_foreach(cids, i, cid) {
		if (nn_pay_meter_open(&ledger, jv_string_value(cid), &ids, err) < 0) {
			nn_warn("pay: %s", err);
			ids = jv_array();
		}
		jv_array_foreach(ids, j, id) {
			jv st, fin = jv_invalid(), res = jv_null();
			int64_t run = 0;
			enum nn_code code = nn_node_invoke(meter.n, "/alloc/status",
							   JV_OBJECT(jv_string("id"), jv_copy(id)), NULL,
							   &st, err);
			if (code == NN_OK) {
				fin = jv_object_get(jv_copy(st), jv_string("final"));
				res = jv_object_get(jv_copy(st), jv_string("result"));
				nn_json_get_int(st, "run", &run, NULL);
			}
			/* ended, or unknown to the node: nothing more will come */
			if (code == NN_E_BAD_BODY || jv_get_kind(fin) == JV_KIND_TRUE) {
				sample(jv_string_value(cid), jv_string_value(id), NULL, (int)run, res, 1);
				mc_get(jv_string_value(cid));	/* reported at the next tick */
			}
			jv_free(fin);
			jv_free(res);
			jv_free(st);
			jv_free(id);
		}
		jv_free(ids);
		jv_free(cid);
	}
	jv_free(cids);
}

static void closer(struct nn_node *n, void *arg)
{
	while (meter.list) {
		struct mcontract *c = meter.list;
		meter.list = c->next;
		if (c->req[0])
			nn_node_request_cancel(n, c->req);
		jv_free(c->sent_doc);
		free(c);
	}
	if (meter.timer)
		nn_loop_remove(nn_node_loop(n), meter.timer);
	meter.timer = NULL;
	meter.n = NULL;
	if (attached)
		nn_pay_close(&ledger);
	attached = 0;
}

int nn_pay_attach(struct nn_node *n, char *err)
{
	char *path;
	int rc;
	if (attached)
		return nn_seterr(err, "pay: already attached to a node");
	path = nn_home_file(nn_node_home(n), "ledger.db");
	rc = nn_pay_open(&ledger, path, nn_node_key(n), err);
	free(path);
	if (rc < 0)
		return -1;
	attached = 1;
	for (size_t i = 0; i < sizeof behaviors / sizeof *behaviors; i++)
		nn_node_behavior(n, &behaviors[i]);
	nn_node_behavior_text(n, "/pay/usage", text_usage);
	nn_node_behavior_text(n, "/pay/voucher", text_voucher);
	nn_node_on_close(n, closer, NULL);
	nn_node_metrics_hook(n, metrics, NULL);
	/* the meter, where the node runs allocations */
	meter.n = n;
	meter.interval_ms = nn_node_config(n)->pay_report_ms;
	if (nn_alloc_observe(n, &observer, NULL) == 0) {
		char e[NN_ERRLEN];
		meter.timer = nn_loop_timer(nn_node_loop(n), meter.interval_ms, meter.interval_ms,
					    on_tick, NULL, e);
		if (!meter.timer)
			return nn_seterr(err, "pay: %s", e);
		meter_recover();
	}
	return 0;
}

struct nn_pay *nn_pay_attached(void)
{
	return attached ? &ledger : NULL;
}
