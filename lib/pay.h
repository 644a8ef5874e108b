/*
 * pay — the economy: contracts between a requester and a provider, metering
 * of the usage done under them, signed usage reports, cumulative vouchers,
 * and the ledger that keeps them ($NUNET_HOME/ledger.db, its own sqlite
 * database and schema, WAL with synchronous=NORMAL so that a voucher
 * reported as accepted survives kill -9 of the process; a power loss may
 * lose the last commits).
 *
 * Documents (all signed ones hold integers only; amounts are strings of
 * integer minor units, "0" to "18446744073709551615", no sign, no leading
 * zeros, no fraction or exponent):
 *
 *   contract  {"v":1,"type":"nunet/contract","id":HEX,"requester":DID,
 *              "provider":DID,"rates":{"cpu_second":A,"gib_second":A,
 *              "allocation":A,"deployment":A},"cap":A,"currency":S,
 *              "duration_s":N,"termination":{"notice_s":N},"nonce":HEX,
 *              "created":MS,"sigs":{"requester":B64,"provider":B64}}
 *             id = hex SHA-256 of the RFC 8785 form of the document without
 *             "id" and "sigs" (the terms); each party signs
 *             "nunet:contract:" || terms.
 *   usage     {"v":1,"type":"nunet/usage","contract":ID,"requester":DID,
 *              "provider":DID,"seq":N,"ts":MS,"usage":{"cpu_ms":N,
 *              "mem_mib_ms":N,"wall_ms":N,"allocations":N,"deployments":N},
 *              "amount":A,"sig":B64}   signed by the provider, "nunet:usage:"
 *   voucher   {"v":1,"type":"nunet/voucher","contract":ID,"requester":DID,
 *              "provider":DID,"seq":N,"amount":A,"ts":MS,"sig":B64}
 *             signed by the requester, "nunet:voucher:"
 *
 * Usage in a report is cumulative over the contract; the amount it is worth
 * is floor(cpu_ms*cpu_second/1000) + floor(mem_mib_ms*gib_second/1024000)
 * + allocations*allocation + deployments*deployment.  A voucher's amount is
 * cumulative too: the newest voucher is what the requester owes.
 *
 * On the wire the node carries these bodies in envelopes: behavior
 * /pay/usage (body: a usage report; reply body: the voucher answering it)
 * and /pay/voucher (body: a voucher; reply body {"contract","seq","amount"}).
 * nn_pay_handle() is the whole behavior.
 *
 * Return values: 0 on success, or one of the negative NN_PAY_E* below with a
 * sentence in err: BAD (malformed document, maps to exit 65 / bad_body),
 * REFUSED (well-formed but not acceptable: bad signature, replay, over the
 * cap, unknown contract…; exit 1), STORE (the ledger failed; exit 74).
 * Every refusal of a usage report or voucher is also recorded in the
 * ledger's refusals table.
 */
#ifndef NN_PAY_H
#define NN_PAY_H

#include <jv.h>
#include <stdint.h>
#include "db.h"
#include "key.h"
#include "util.h"

#define NN_PAY_CONTRACT_PREFIX "nunet:contract:"
#define NN_PAY_VOUCHER_PREFIX "nunet:voucher:"
#define NN_PAY_USAGE_PREFIX "nunet:usage:"
#define NN_PAY_AMOUNT_MAX 21	/* digits of UINT64_MAX + NUL */
#define NN_PAY_ID_LEN 65	/* 64 hex + NUL */

enum { NN_PAY_EBAD = -1, NN_PAY_EREFUSED = -2, NN_PAY_ESTORE = -3 };

/* Exit code (sysexits) for a return value of this module. */
int nn_pay_exit_code(int rc);

#define NN_PAY_STMTS 64

struct nn_pay_terms {
	char id[NN_PAY_ID_LEN];
	char requester[NN_DID_MAX], provider[NN_DID_MAX];
	uint8_t requester_pk[32], provider_pk[32];
	uint64_t cpu_second, gib_second, allocation, deployment, cap;
	int64_t duration_s, notice_s, created;
	int signed_requester, signed_provider;	/* signature present and valid */
};

/* The contract of the stream being answered or kept, and its newest
 * report and voucher, so that a voucher reads no row (private: valid while
 * no other connection wrote, PRAGMA data_version at each begin). */
struct nn_pay_hot {
	char id[NN_PAY_ID_LEN];	/* "": nothing held */
	char role[16], state[16];
	int64_t ended;
	struct nn_pay_terms t;
	int64_t rep_seq;	/* newest report received, -1: unknown */
	uint64_t rep_usage[5];	/* …its usage */
	int64_t v_seq;		/* newest voucher issued/received, -1: unknown */
	uint64_t v_amount;
};

/* A ledger opened for one identity.  The key is copied (wiped on close). */
struct nn_pay {
	struct nn_db db;
	struct nn_key key;
	int64_t (*now)(void);	/* clock, nn_now_ms by default (tests swap it) */
	/* private */
	int batch, open;	/* inside a batch / a step */
	int sp;			/* the step's savepoint is open (in a batch) */
	sqlite3_stmt *stmt[NN_PAY_STMTS];	/* prepared statements, by sql */
	const char *stmt_sql[NN_PAY_STMTS];
	char *cache_doc;	/* the contract last loaded, as stored… */
	jv cache_jv;		/* …parsed… */
	struct nn_pay_terms cache_terms;	/* …and checked */
	struct nn_pay_hot hot;	/* the contract of the stream */
	int64_t data_version;
	struct nn_buf msg;	/* scratch: the bytes signed */
	struct nn_buf scratch;	/* scratch: a voucher's text written again */
};

/* Open (creating and migrating) path, normally $NUNET_HOME/ledger.db. */
int nn_pay_open(struct nn_pay *p, const char *path, const struct nn_key *k, char *err);
void nn_pay_close(struct nn_pay *p);

/*
 * Group commit.  Between nn_pay_batch_begin() and nn_pay_batch_commit()
 * every call below joins one transaction (each call still all-or-nothing:
 * a savepoint, or for a report answered or a voucher kept under an active
 * contract its one INSERT), and nothing is durable until the commit
 * returns 0: a
 * caller must not send or print any voucher or acceptance of the batch
 * before that.  One fsync for the whole batch instead of one per voucher.
 * abort rolls the whole batch back (close aborts an open batch).
 */
int nn_pay_batch_begin(struct nn_pay *p, char *err);
int nn_pay_batch_commit(struct nn_pay *p, char *err);
void nn_pay_batch_abort(struct nn_pay *p);

/* Amounts: parse a string of minor units (no sign, no leading zeros, no
 * '.', no exponent, at most UINT64_MAX).  Format into out. */
int nn_pay_amount_parse(const char *s, uint64_t *out, char *err);
void nn_pay_amount_fmt(char out[NN_PAY_AMOUNT_MAX], uint64_t v);

/* ---- contracts ---- */


/* Check a contract document's shape, compute its id and check the
 * signatures it carries (borrows doc).  An "id" field, when present, must
 * equal the computed one.  Missing signatures are not an error here. */
int nn_pay_contract_check(jv doc, struct nn_pay_terms *t, char *err);

/* Propose: terms (consumed) get v/type/nonce/created filled when absent,
 * are checked, signed with our key (we must be the requester or the
 * provider) and stored as "proposed" (or "draft", unsigned, when draft is
 * set).  *out receives the full document with its id. */
int nn_pay_contract_propose(struct nn_pay *p, jv terms, int draft, jv *out, char *err);
/* Sign and propose a stored draft. */
int nn_pay_contract_propose_draft(struct nn_pay *p, const char *id, jv *out, char *err);
/* Accept (consumes doc): the other party's signature must be present and
 * valid; we countersign if our signature is missing.  Stored as "accepted";
 * *out is the document signed by both. */
int nn_pay_contract_accept(struct nn_pay *p, jv doc, jv *out, char *err);
/* One stored contract: {"id","role","state","ended","contract":DOC} with
 * the newest voucher and report figures. */
int nn_pay_contract_get(struct nn_pay *p, const char *id, jv *out, char *err);
/* Every stored contract (state NULL: all), as an array of _get objects. */
int nn_pay_contract_list(struct nn_pay *p, const char *state, jv *out, char *err);
/* Move a contract to "terminated", "completed" or "settled", checking the
 * state machine: draft → proposed → accepted → active →
 * completed|terminated → settled (a draft or proposal may be terminated). */
int nn_pay_contract_set_state(struct nn_pay *p, const char *id, const char *state, char *err);
/* For the node's deploy path: 0 when id is a contract we accepted (state
 * accepted or active) in which we are the provider; REFUSED otherwise. */
int nn_pay_contract_require(struct nn_pay *p, const char *id, char *err);

/* ---- metering (provider side) ---- */

struct nn_pay_usage {
	uint64_t cpu_ms, mem_mib_ms, wall_ms, allocations, deployments;
};

/* Record the cumulative usage of one allocation under a contract (its
 * executor's counters since it started).  Counters may not go back.
 * deployment may be NULL ("default"). */
int nn_pay_meter_record(struct nn_pay *p, const char *contract, const char *alloc,
			const char *deployment, const struct nn_pay_usage *u, char *err);
/*
 * The node's meter (provider side): one sample of an allocation's executor
 * counters, as they come with each heartbeat, turned into the cumulative
 * usage nn_pay_meter_record keeps: cpu from the run's cpu counter (a new run
 * counts from 0), memory as the memory now times the time since the
 * previous sample (MiB·ms, floored), wall time as the time between samples.
 * The allocation's first sample (at its start) only sets the clock.  After
 * a sample with end set, later samples of the allocation count nothing.
 * Each sample is one transaction: a crash loses at most the sample in
 * flight, and counts none twice.  The contract must be ours as provider and
 * accepted or active for an allocation's first sample.
 */
#define NN_PAY_UNKNOWN UINT64_MAX
struct nn_pay_sample {
	int run;		/* the allocation's run (its restarts) */
	uint64_t cpu_ms;	/* cpu of the run so far, NN_PAY_UNKNOWN: none */
	int64_t mem_bytes;	/* memory now; -1: unknown (the previous sample's) */
	int64_t ts;		/* ms since the epoch */
	int end;		/* the allocation has ended */
};
int nn_pay_meter_sample(struct nn_pay *p, const char *contract, const char *alloc,
			const char *deployment, const struct nn_pay_sample *s, char *err);
/* contract NULL: ids of the contracts with metered usage that we provide
 * under and that are accepted or active; else the allocations of contract
 * not ended.  *out: an array of strings. */
int nn_pay_meter_open(struct nn_pay *p, const char *contract, jv *out, char *err);
/* Totals over all allocations of a contract. */
int nn_pay_meter_total(struct nn_pay *p, const char *contract, struct nn_pay_usage *u, char *err);
/* The amount usage u is worth under terms t; REFUSED on overflow. */
int nn_pay_usage_amount(const struct nn_pay_terms *t, const struct nn_pay_usage *u,
			uint64_t *amount, char *err);
/* Build, sign and store the next usage report of a contract (cumulative
 * totals).  *out is the report (the /pay/usage body). */
int nn_pay_usage_report(struct nn_pay *p, const char *contract, jv *out, char *err);

/* ---- vouchers ---- */

/* Requester side: check a usage report (consumed) and answer with a
 * voucher (*out, the reply body), stored as issued.  A retransmitted report
 * (same seq, same document) gets the same voucher again; any other report
 * with an old seq, usage going back, a wrong amount, usage over the
 * contract's duration or an amount over the cap is refused and logged. */
int nn_pay_usage_answer(struct nn_pay *p, jv report, jv *out, char *err);

struct nn_pay_voucher_info {
	char contract[NN_PAY_ID_LEN];
	int64_t seq;
	uint64_t amount;
};

/*
 * Reading a usage report or voucher.  The strict reader takes the text of
 * a document exactly as this module writes it (RFC 8785 canonical form,
 * every field of the form it must have, integers of at most 15 digits)
 * without building a jv: the bytes signed are the text without its "sig"
 * member.  Anything else it leaves to the full reader (libjq, then the
 * field checks with their messages), which reads every text the strict
 * one takes to the same fields and bytes (t/6006 holds them together).
 */
enum { NN_PAY_DOC_USAGE = 1, NN_PAY_DOC_VOUCHER = 2 };
struct nn_pay_doc {
	char contract[NN_PAY_ID_LEN];	/* "" until read */
	char requester[NN_DID_MAX], provider[NN_DID_MAX];
	int64_t seq, ts;
	uint64_t amount;
	struct nn_pay_usage usage;	/* of a report */
	const char *sig;		/* base64, in the document; NULL: unusable */
	size_t siglen;
	uint8_t sigbin[64];		/* its bytes, once the signature is checked */
	struct nn_buf *msg;		/* prefix || the text without "sig" (caller's) */
	const char *text;		/* the canonical text, "sig" included */
	size_t tlen;
	char *own;			/* text, when made by the full reader */
};
/* Strict reader: 1 with d filled (text points into s), 0: use the full
 * reader.  d->msg must point to a buffer. */
int nn_pay_doc_scan(int type, const char *s, size_t len, struct nn_pay_doc *d);
/* Full reader (borrows doc; d->sig points into it): 0, or NN_PAY_EBAD
 * with the first malformed field in err. */
int nn_pay_doc_read(int type, jv doc, struct nn_pay_doc *d, char *err);
void nn_pay_doc_release(struct nn_pay_doc *d);

/* nn_pay_usage_answer on the text of a report (a JSON line): read by the
 * strict reader when it can, else parsed and read in full, with the same
 * verdicts and messages.  The voucher's canonical text is appended to out
 * (no newline).  Text that is not JSON: NN_PAY_EBAD ("not JSON: …"), not
 * logged as a refusal. */
int nn_pay_usage_answer_text(struct nn_pay *p, const char *s, size_t len, struct nn_buf *out,
			     char *err);
/* nn_pay_voucher_accept (store set) or nn_pay_voucher_check on the text
 * of a voucher, as nn_pay_usage_answer_text reads a report. */
int nn_pay_voucher_text(struct nn_pay *p, const char *s, size_t len, int store,
			const char *expect_contract, struct nn_pay_voucher_info *info, char *err);
/* Append what the voucher's answer says of it, as nn_json_dump writes the
 * object (keys in order): first (such as "{" or "{\"accepted\":true,"),
 * then "amount":"A","contract":"C","seq":N, then last (such as "}"). */
void nn_pay_voucher_info_write(struct nn_buf *b, const char *first,
			       const struct nn_pay_voucher_info *info, const char *last);

/* Provider side: check a voucher (borrows) against the ledger without
 * storing it: signature by the contract's requester, a contract we accepted
 * as provider (expect_contract, when not NULL, must be its id), seq above
 * and amount not below the newest stored voucher, amount within the cap. */
int nn_pay_voucher_check(struct nn_pay *p, jv v, const char *expect_contract,
			 struct nn_pay_voucher_info *info, char *err);
/* Check and store (atomically: concurrent accepters cannot both store the
 * same seq).  Refusals are logged. */
int nn_pay_voucher_accept(struct nn_pay *p, jv v, const char *expect_contract,
			  struct nn_pay_voucher_info *info, char *err);

/* ---- the node's behaviors ---- */

/* Handle the body of an envelope for behavior be ("/pay/usage" or
 * "/pay/voucher"); borrows body; *reply is the reply body on success. */
int nn_pay_handle(struct nn_pay *p, const char *be, jv body, jv *reply, char *err);

/* ---- inside the daemon (lib/pay/node.c) ---- */

struct nn_node;
/* Open $NUNET_HOME/ledger.db with the node's key, register /pay/usage and
 * /pay/voucher (public: sender the document's counterparty or an owner)
 * and close the ledger with the node.  Where allocations are attached, also
 * the meter: allocations started under a contract are sampled at each
 * heartbeat (nn_pay_meter_sample), a usage report goes to the requester's
 * node every pay_report_interval_ms and at an allocation's end
 * (nn_pay_usage_report, nn_node_request to /pay/usage), and the voucher
 * in the reply is kept (nn_pay_voucher_accept).  Meant for the attach
 * table of cmd/nunet-node.c (one line), after nn_alloc_attach.  One node
 * per process. */
int nn_pay_attach(struct nn_node *n, char *err);
/* The attached node's ledger, for its other pay work (the deploy check:
 * nn_pay_contract_require), or NULL when none is attached. */
struct nn_pay *nn_pay_attached(void);

/* ---- ledger ---- */

/* One object per contract not yet settled (settled too when all):
 * {"contract","role","peer","state","seq","amount","cap","currency"}:
 * seq/amount of the newest voucher (issued when we are the requester,
 * received when we are the provider). */
int nn_pay_ledger(struct nn_pay *p, int all, jv *out, char *err);
/* Per peer: {"peer","currency","owed_to_me","owed_by_me","contracts"} over
 * contracts not settled. */
int nn_pay_balance(struct nn_pay *p, jv *out, char *err);
/* Claims for an external settlement layer: one object per finished
 * (completed|terminated) contract where we are the provider and hold a
 * voucher (all: active ones too): {"contract","requester","provider",
 * "amount","currency","seq","voucher":DOC,"contract_doc":DOC}.  mark moves
 * finished exported contracts to "settled" in the same transaction. */
int nn_pay_settle_export(struct nn_pay *p, int all, int mark, jv *out, char *err);
/* Refusals logged, oldest first: {"ts","contract","kind","message"}. */
int nn_pay_refusals(struct nn_pay *p, jv *out, char *err);
/* Check the ledger's invariants: every stored document's signature, per
 * contract and role voucher seqs 1..n without gaps (issued) or strictly
 * increasing (received), amounts non-decreasing and within the cap.
 * REFUSED with the first violation. */
int nn_pay_ledger_verify(struct nn_pay *p, char *err);

#endif
