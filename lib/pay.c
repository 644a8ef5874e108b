/*
 * pay — contracts, metering, usage reports, vouchers and the ledger (see
 * pay.h for the documents).  Every check of a document happens in this
 * order: shape (malformed → NN_PAY_EBAD), then the contract it names and
 * the parties, then its signature, then its place in the ledger (sequence,
 * cumulative amounts, cap), the last inside one BEGIN IMMEDIATE transaction
 * together with the write, so two processes accepting vouchers at once, or
 * a process killed at any instruction, can neither lose an accepted voucher
 * nor store one twice.  The database runs with synchronous=NORMAL: in WAL
 * mode a commit is in the log when it returns, so a killed process loses
 * nothing acknowledged (FULL would also survive a power loss, at one fsync
 * per commit: ~20 times slower here).  Prepared statements are kept (by
 * the address of their SQL literal, BEGIN and COMMIT included), the last
 * contract loaded stays parsed, and the contract of the stream (its row,
 * its newest report and voucher) stays in p->hot while no other connection
 * writes (PRAGMA data_version, read at each BEGIN), so that a voucher reads
 * no row.  A report or voucher in the canonical form this module writes is
 * read from its text by the strict reader (lib/jscan.h) and its signature
 * checked over the text without "sig"; any other is parsed and
 * canonicalized once.  A voucher is written straight from its fields, and
 * the ledger keeps it as its fields and the signature's 64 bytes (schema
 * 3), with the report it answers in the same row, writing the text again
 * when it is given out: one row of ~250 bytes per report answered instead
 * of two rows and ~1 KB of text.  So a voucher costs mostly its ed25519
 * work.
 */
#include "pay.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "codec.h"
#include "jscan.h"
#include "json.h"
#include "util.h"

#define COUNTER_MAX 9007199254740992LL	/* 2^53: exact in JSON doubles */
#define REPORT_DIR_SENT "sent"

static const char *const ledger_schema[] = {
	/* 0 -> 1 */
	"CREATE TABLE contracts ("
	"  id TEXT PRIMARY KEY,"
	"  doc TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('requester','provider')),"
	"  state TEXT NOT NULL,"
	"  ended INTEGER,"
	"  updated INTEGER NOT NULL);"
	"CREATE TABLE vouchers ("
	"  contract TEXT NOT NULL REFERENCES contracts(id),"
	"  role TEXT NOT NULL CHECK (role IN ('issued','received')),"
	"  seq INTEGER NOT NULL,"
	"  amount TEXT NOT NULL,"
	"  report_seq INTEGER,"
	"  doc TEXT NOT NULL,"
	"  ts INTEGER NOT NULL,"
	"  PRIMARY KEY (contract, role, seq));"
	"CREATE TABLE reports ("
	"  contract TEXT NOT NULL REFERENCES contracts(id),"
	"  dir TEXT NOT NULL CHECK (dir IN ('sent','received')),"
	"  seq INTEGER NOT NULL,"
	"  doc TEXT NOT NULL,"
	"  ts INTEGER NOT NULL,"
	"  PRIMARY KEY (contract, dir, seq));"
	"CREATE TABLE usage ("
	"  contract TEXT NOT NULL REFERENCES contracts(id),"
	"  alloc TEXT NOT NULL,"
	"  deployment TEXT NOT NULL,"
	"  cpu_ms INTEGER NOT NULL, mem_mib_ms INTEGER NOT NULL, wall_ms INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  PRIMARY KEY (contract, alloc));"
	"CREATE TABLE refusals ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  ts INTEGER NOT NULL,"
	"  contract TEXT,"
	"  kind TEXT NOT NULL,"
	"  message TEXT NOT NULL);",
	/* 1 -> 2: the meter's state per allocation (nn_pay_meter_sample) */
	"ALTER TABLE usage ADD COLUMN run INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE usage ADD COLUMN cpu_raw INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE usage ADD COLUMN mem_last INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE usage ADD COLUMN ts_last INTEGER;"
	"ALTER TABLE usage ADD COLUMN ended INTEGER NOT NULL DEFAULT 0;",
	/*
	 * 2 -> 3: compact rows.  A voucher is kept as its fields and its
	 * signature (64 bytes): its text is written again from them and the
	 * contract's parties when it is needed (a voucher answered again,
	 * settle --export, ledger --verify), byte for byte the text that was
	 * signed; doc holds the text only where the row cannot write it (rows
	 * from schema 2, a voucher received in a form the fields do not
	 * write).  An issued voucher's row also holds the usage report it
	 * answers (rep_*: its ts, usage and signature; its amount is the
	 * voucher's; rep_doc its text for rows from schema 2), so that a
	 * report answered costs one row, not two.  Keyed by the primary key
	 * (WITHOUT ROWID): no second index.  No foreign key either: each row
	 * is written in the transaction that read its contract (the check
	 * would be one more b-tree search per voucher).  The reports table
	 * keeps the reports a provider sends (as text), and the received
	 * ones of schema 2, no longer read.
	 */
	"CREATE TABLE vouchers_3 ("
	"  contract TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('issued','received')),"
	"  seq INTEGER NOT NULL,"
	"  amount TEXT NOT NULL,"
	"  report_seq INTEGER,"
	"  ts INTEGER NOT NULL,"
	"  doc_ts INTEGER,"
	"  sig BLOB,"
	"  doc TEXT,"
	"  rep_ts INTEGER,"
	"  cpu_ms INTEGER, mem_mib_ms INTEGER, wall_ms INTEGER,"
	"  allocations INTEGER, deployments INTEGER,"
	"  rep_sig BLOB,"
	"  rep_doc TEXT,"
	"  CHECK (doc IS NOT NULL OR (length(sig) = 64 AND doc_ts IS NOT NULL)),"
	"  PRIMARY KEY (contract, role, seq)) WITHOUT ROWID;"
	"INSERT INTO vouchers_3 SELECT v.contract, v.role, v.seq, v.amount, v.report_seq, v.ts,"
	"  json_extract(v.doc, '$.ts'), NULL, v.doc, json_extract(r.doc, '$.ts'),"
	"  json_extract(r.doc, '$.usage.cpu_ms'), json_extract(r.doc, '$.usage.mem_mib_ms'),"
	"  json_extract(r.doc, '$.usage.wall_ms'), json_extract(r.doc, '$.usage.allocations'),"
	"  json_extract(r.doc, '$.usage.deployments'), NULL, r.doc"
	"  FROM vouchers v LEFT JOIN reports r ON v.role = 'issued' AND r.contract = v.contract"
	"  AND r.dir = 'received' AND r.seq = v.report_seq;"
	"DROP TABLE vouchers;"
	"ALTER TABLE vouchers_3 RENAME TO vouchers;",
	NULL
};

int nn_pay_exit_code(int rc)
{
	switch (rc) {
	case 0: return NN_EX_OK;
	case NN_PAY_EBAD: return NN_EX_DATAERR;
	case NN_PAY_EREFUSED: return NN_EX_NO;
	case NN_PAY_ESTORE: return NN_EX_IOERR;
	default: return NN_EX_SOFTWARE;
	}
}

static int fail(int code, char *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(int code, char *err, const char *fmt, ...)
{
	va_list ap;
	if (err) {
		va_start(ap, fmt);
		vsnprintf(err, NN_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* ---- amounts and fields ---- */

int nn_pay_amount_parse(const char *s, uint64_t *out, char *err)
{
	uint64_t v = 0;
	const char *p;
	if (!s || !*s)
		return nn_seterr(err, "empty amount");
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return nn_seterr(err, "'%s' is not an amount: integer minor units only "
					 "(no sign, fraction or exponent)", s);
		if (v > UINT64_MAX / 10 || v * 10 > UINT64_MAX - (uint64_t)(*p - '0'))
			return nn_seterr(err, "amount '%s' is too large", s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (s[0] == '0' && s[1])
		return nn_seterr(err, "'%s' is not an amount: leading zeros", s);
	*out = v;
	return 0;
}

void nn_pay_amount_fmt(char out[NN_PAY_AMOUNT_MAX], uint64_t v)
{
	char tmp[NN_PAY_AMOUNT_MAX];
	size_t n = 0, i = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		out[i++] = tmp[--n];
	out[i] = '\0';
}

/* Append v in decimal. */
static void add_u64(struct nn_buf *b, uint64_t v)
{
	char s[NN_PAY_AMOUNT_MAX];
	nn_pay_amount_fmt(s, v);
	nn_buf_adds(b, s);
}

void nn_pay_voucher_info_write(struct nn_buf *b, const char *first,
			       const struct nn_pay_voucher_info *info, const char *last)
{
	nn_buf_adds(b, first);
	nn_buf_adds(b, "\"amount\":\"");
	add_u64(b, info->amount);
	nn_buf_adds(b, "\",\"contract\":\"");
	nn_buf_adds(b, info->contract);
	nn_buf_adds(b, "\",\"seq\":");
	add_u64(b, (uint64_t)info->seq);
	nn_buf_adds(b, last);
}

static jv amount_jv(uint64_t v)
{
	char s[NN_PAY_AMOUNT_MAX];
	nn_pay_amount_fmt(s, v);
	return jv_string(s);
}

/* Field of obj (borrowed) that must be an amount string. */
static int get_amount(jv obj, const char *key, uint64_t *out, char *err)
{
	const char *s;
	char e[NN_ERRLEN];
	jv f = jv_object_get(jv_copy(obj), jv_string(key));
	if (jv_get_kind(f) == JV_KIND_NUMBER) {
		jv_free(f);
		return nn_seterr(err, "%s: an amount is a string of integer minor units, not a number", key);
	}
	jv_free(f);
	if (nn_json_get_str(obj, key, &s, err) < 0)
		return -1;
	if (nn_pay_amount_parse(s, out, e) < 0)
		return nn_seterr(err, "%s: %s", key, e);
	return 0;
}

/* Non-negative integer field, at most max. */
static int get_count(jv obj, const char *key, int64_t max, int64_t *out, char *err)
{
	if (nn_json_get_int(obj, key, out, err) < 0)
		return -1;
	if (*out < 0 || *out > max)
		return nn_seterr(err, "%s: %lld is out of range (0..%lld)", key,
				 (long long)*out, (long long)max);
	return 0;
}

/* A did:key field into out, its key into pk; pk NULL: only its form is
 * checked (no base58 decoding), for documents whose parties must then equal
 * those of a contract, which were decoded when it was stored. */
/* 1 when s[0..n) has the form of an ed25519 did:key (not decoded). */
static int did_form(const char *s, size_t n)
{
	if (n != 56 || memcmp(s, "did:key:z6Mk", 12) != 0)
		return 0;
	/* base58 (no 0, O, I or l): a bit per character, so that the
	 * characters of a key cost no mispredicted branch */
	static const uint64_t b58[4] = { 0x3fe000000000000, 0x7ffeffe07ff7dfe, 0, 0 };
	uint64_t ok = 1;
	for (size_t i = 12; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		ok &= b58[c >> 6] >> (c & 63);
	}
	return (int)ok;
}

static int get_did(jv obj, const char *key, char out[NN_DID_MAX], uint8_t pk[32], char *err)
{
	const char *s;
	char e[NN_ERRLEN];
	if (nn_json_get_str(obj, key, &s, err) < 0)
		return -1;
	if (strlen(s) >= NN_DID_MAX || nn_did_len(s) != strlen(s) ||
	    (pk ? nn_did_to_pk(s, pk, e) < 0 : !did_form(s, strlen(s))))
		return nn_seterr(err, "%s: '%s' is not a did:key", key, s);
	strcpy(out, s);
	return 0;
}

static int is_hex(const char *s, size_t n)
{
	size_t i;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == n;
}

/* Every key of obj must be in allowed (NULL-terminated).  Borrows obj. */
static int only_keys(jv obj, const char *what, const char *const *allowed, char *err)
{
	for (int i = jv_object_iter(obj); jv_object_iter_valid(obj, i); i = jv_object_iter_next(obj, i)) {
		jv k = jv_object_iter_key(obj, i);
		const char *ks = jv_string_value(k);
		const char *const *a;
		for (a = allowed; *a && strcmp(*a, ks); a++)
			;
		if (!*a) {
			nn_seterr(err, "%s: unknown field '%s'", what, ks);
			jv_free(k);
			return -1;
		}
		jv_free(k);
	}
	return 0;
}

static int check_head(jv doc, const char *type, char *err)
{
	const char *t;
	int64_t v;
	if (jv_get_kind(doc) != JV_KIND_OBJECT)
		return nn_seterr(err, "expected a JSON object, got %s", nn_json_kind(doc));
	if (nn_json_get_int(doc, "v", &v, err) < 0)
		return -1;
	if (v != 1)
		return nn_seterr(err, "v: version %lld is not supported", (long long)v);
	if (nn_json_get_str(doc, "type", &t, err) < 0)
		return -1;
	if (strcmp(t, type))
		return nn_seterr(err, "type: expected \"%s\", got \"%s\"", type, t);
	return 0;
}

/* ---- signatures ---- */

/* prefix || canon(doc without fields drop[]) into b.  Borrows doc. */
static int signing_input(jv doc, const char *prefix, const char *const *drop,
			 struct nn_buf *b, char *err)
{
	jv bare = jv_copy(doc);
	int r;
	for (; drop && *drop; drop++)
		bare = jv_object_delete(bare, jv_string(*drop));
	nn_buf_reset(b);
	nn_buf_adds(b, prefix);
	r = nn_json_canon(bare, b, err);
	jv_free(bare);
	return r;
}

static jv sign_b64(const struct nn_key *k, const struct nn_buf *msg)
{
	uint8_t sig[64];
	char s64[96];
	nn_key_sign(k, sig, msg->data, msg->len);
	nn_b64_encode_pub(s64, sig, sizeof sig);
	return jv_string(s64);
}

/* 1 when sig64[0..n) is pk's signature over msg; the signature's bytes
 * into sig.  The decoder is strict (padding, no stray bits or characters):
 * the bytes encode back to exactly sig64 (variable time: a signature is
 * public). */
static int sig_ok_n(const uint8_t pk[32], const char *sig64, size_t n, const struct nn_buf *msg,
		    uint8_t sig[64])
{
	if (!sig64 || nn_b64_decode_pub(sig, 64, sig64, n) != 64)
		return 0;
	return nn_sig_verify(pk, sig, msg->data, msg->len) == 0;
}

static int sig_ok(const uint8_t pk[32], const char *sig64, const struct nn_buf *msg)
{
	uint8_t sig[64];
	return sig_ok_n(pk, sig64, strlen(sig64), msg, sig);
}

static const char *const drop_contract[] = { "id", "sigs", NULL };

/*
 * prefix || canon(doc without "sig") into b (borrows doc), and in *at the
 * offset where "sig" stands in canonical order, so that the canonical text
 * of the signed document is made by splicing the signature in: one
 * canonicalization per document, not one for the signature and one for
 * the ledger.
 */
static int sig_input(jv doc, const char *prefix, struct nn_buf *b, size_t *at, char *err)
{
	nn_buf_reset(b);
	nn_buf_adds(b, prefix);
	return nn_json_canon_without_at(doc, "sig", b, at, err);
}

/* The canonical text of the document whose signing input is b (prefix of
 * plen bytes) with "sig":s64 at at.  s64 is base64: no escapes.  Caller
 * frees. */
static char *splice_sig(const struct nn_buf *b, size_t plen, size_t at, const char *s64)
{
	int first = b->data[at - 1] == '{', last = b->data[at] == '}';
	return nn_xasprintf("%.*s%s\"sig\":\"%s\"%s%.*s", (int)(at - plen), b->data + plen,
			    first ? "" : ",", s64, first && !last ? "," : "", (int)(b->len - at),
			    b->data + at);
}

/* Sign doc (consumed) with k: returns doc + "sig"; its canonical text into
 * *text when text is not NULL (caller frees). */
static jv sign_doc(jv doc, const char *prefix, const struct nn_key *k, char **text, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	size_t at;
	jv sig;
	if (sig_input(doc, prefix, &b, &at, err) < 0) {
		nn_buf_release(&b);
		jv_free(doc);
		return jv_invalid();
	}
	sig = sign_b64(k, &b);
	if (text)
		*text = splice_sig(&b, strlen(prefix), at, jv_string_value(sig));
	doc = jv_object_set(doc, jv_string("sig"), sig);
	nn_buf_release(&b);
	return doc;
}

/* ---- the database ---- */

int nn_pay_open(struct nn_pay *p, const char *path, const struct nn_key *k, char *err)
{
	char e[NN_ERRLEN];
	memset(p, 0, sizeof *p);
	p->now = nn_now_ms;
	p->cache_jv = jv_invalid();
	p->data_version = -1;
	if (nn_db_open(&p->db, path, ledger_schema, err) < 0)
		return NN_PAY_ESTORE;
	/* the log and its index stay when the last connection closes (after
	 * the same checkpoint): each nunet-pay run would otherwise create and
	 * delete both files, which costs a run more than a hundred vouchers */
	int persist = 1;
	sqlite3_file_control(p->db.h, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	if (nn_db_exec(&p->db, "PRAGMA synchronous=NORMAL", e) < 0) {
		nn_db_close(&p->db);
		return fail(NN_PAY_ESTORE, err, "ledger '%s': %s", path, e);
	}
	p->key = *k;
	return 0;
}

void nn_pay_close(struct nn_pay *p)
{
	nn_pay_batch_abort(p);
	for (int i = 0; i < NN_PAY_STMTS; i++)
		if (p->stmt[i])
			sqlite3_finalize(p->stmt[i]);
	memset(p->stmt, 0, sizeof p->stmt);
	memset(p->stmt_sql, 0, sizeof p->stmt_sql);
	free(p->cache_doc);
	p->cache_doc = NULL;
	p->hot.id[0] = '\0';
	nn_buf_release(&p->msg);
	nn_buf_release(&p->scratch);
	jv_free(p->cache_jv);
	p->cache_jv = jv_invalid();
	nn_db_close(&p->db);
	nn_key_clear(&p->key);
}

static int dberr(struct nn_pay *p, char *err)
{
	return fail(NN_PAY_ESTORE, err, "ledger: %s", sqlite3_errmsg(p->db.h));
}

/* Prepare sql (cached by its address: every sql below is a literal) and
 * bind the text arguments given as ?1, ?2… (NULL binds NULL).  Give it back
 * with unprep().  Returns NULL + err. */
static sqlite3_stmt *prep(struct nn_pay *p, char *err, const char *sql, int n, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int i, free_slot = -1;
	for (i = 0; i < NN_PAY_STMTS; i++) {
		if (p->stmt_sql[i] == sql) {
			st = p->stmt[i];
			break;
		}
		if (!p->stmt_sql[i] && free_slot < 0)
			free_slot = i;
	}
	if (!st) {
		if (sqlite3_prepare_v3(p->db.h, sql, -1, free_slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0,
				       &st, NULL) != SQLITE_OK) {
			dberr(p, err);
			return NULL;
		}
		if (free_slot >= 0) {
			p->stmt[free_slot] = st;
			p->stmt_sql[free_slot] = sql;
		}
	}
	va_start(ap, n);
	for (i = 1; i <= n; i++) {
		const char *s = va_arg(ap, const char *);
		if (s)
			sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, i);
	}
	va_end(ap);
	return st;
}

static void unprep(struct nn_pay *p, sqlite3_stmt *st)
{
	for (int i = 0; i < NN_PAY_STMTS; i++)
		if (p->stmt[i] == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	sqlite3_finalize(st);
}

/* Run a statement that returns no rows, then finalize it. */
static int run_done(struct nn_pay *p, sqlite3_stmt *st, char *err)
{
	int r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		dberr(p, err);
	unprep(p, st);
	return r == SQLITE_DONE ? 0 : NN_PAY_ESTORE;
}

/*
 * Transactions: on their own, the calls below run one BEGIN IMMEDIATE …
 * COMMIT each.  Inside nn_pay_batch_begin() they run as savepoints of the
 * caller's transaction and become durable together at nn_pay_batch_commit()
 * (group commit: one fsync for many vouchers).
 */
/* One transaction-control statement (sql a literal: its prepared form is
 * kept, so a voucher does not parse BEGIN and COMMIT again).  -1 + e. */
static const char SQL_BEGIN[] = "BEGIN IMMEDIATE", SQL_COMMIT[] = "COMMIT",
	SQL_ROLLBACK[] = "ROLLBACK", SQL_SAVEPOINT[] = "SAVEPOINT pay",
	SQL_RELEASE[] = "RELEASE pay", SQL_ROLLBACK_TO[] = "ROLLBACK TO pay";

static int tx(struct nn_pay *p, const char *sql, char *e)
{
	sqlite3_stmt *st = prep(p, NULL, sql, 0);
	int r;
	if (!st)
		return nn_seterr(e, "%s", sqlite3_errmsg(p->db.h));
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		nn_seterr(e, "%s", sqlite3_errmsg(p->db.h));
	unprep(p, st);
	return r == SQLITE_DONE ? 0 : -1;
}

/* Forget the hot contract: after a rollback, or a write it does not follow. */
static void hot_forget(struct nn_pay *p)
{
	p->hot.id[0] = '\0';
}

static void undo(struct nn_pay *p)
{
	hot_forget(p);
	if (p->batch) {
		if (p->sp) {
			tx(p, SQL_ROLLBACK_TO, NULL);
			tx(p, SQL_RELEASE, NULL);
		}
	} else if (!sqlite3_get_autocommit(p->db.h)) {
		tx(p, SQL_ROLLBACK, NULL);
	}
	p->open = 0;
	p->sp = 0;
}

/* After BEGIN: forget the hot contract when another connection has
 * committed since we last looked (its rows may have changed). */
static int check_version(struct nn_pay *p, char *e)
{
	sqlite3_stmt *st = prep(p, NULL, "PRAGMA data_version", 0);
	int64_t v;
	if (!st)
		return nn_seterr(e, "%s", sqlite3_errmsg(p->db.h));
	if (sqlite3_step(st) != SQLITE_ROW) {
		nn_seterr(e, "%s", sqlite3_errmsg(p->db.h));
		unprep(p, st);
		return -1;
	}
	v = sqlite3_column_int64(st, 0);
	unprep(p, st);
	if (v != p->data_version)
		hot_forget(p);
	p->data_version = v;
	return 0;
}

/* Open a step: a transaction, or in a batch a savepoint.  With lazy set
 * (in a batch) the savepoint waits for writes(): a step that only reads
 * and refuses, or that writes with a single statement (all or nothing by
 * itself), needs none. */
static int begin_step(struct nn_pay *p, int lazy, char *err)
{
	char e[NN_ERRLEN];
	p->sp = 0;
	if (p->batch && lazy) {
		p->open = 1;
		return 0;
	}
	if (tx(p, p->batch ? SQL_SAVEPOINT : SQL_BEGIN, e) < 0)
		return fail(NN_PAY_ESTORE, err, "ledger: %s", e);
	p->open = 1;
	p->sp = p->batch;
	if (!p->batch && check_version(p, e) < 0) {
		undo(p);
		return fail(NN_PAY_ESTORE, err, "ledger: %s", e);
	}
	return 0;
}

static int begin(struct nn_pay *p, char *err)
{
	return begin_step(p, 0, err);
}

/* A lazy step is about to write with n statements: a savepoint when they
 * are more than one, so that they stay all or nothing in the batch. */
static int writes(struct nn_pay *p, int n, char *err)
{
	char e[NN_ERRLEN];
	if (!p->batch || p->sp || n < 2)
		return 0;
	if (tx(p, SQL_SAVEPOINT, e) < 0)
		return fail(NN_PAY_ESTORE, err, "ledger: %s", e);
	p->sp = 1;
	return 0;
}

static int commit(struct nn_pay *p, char *err)
{
	char e[NN_ERRLEN];
	if ((!p->batch || p->sp) && tx(p, p->batch ? SQL_RELEASE : SQL_COMMIT, e) < 0) {
		undo(p);
		return fail(NN_PAY_ESTORE, err, "ledger: %s", e);
	}
	p->open = 0;
	p->sp = 0;
	return 0;
}

static void rollback(struct nn_pay *p)
{
	if (p->open)
		undo(p);
}

int nn_pay_batch_begin(struct nn_pay *p, char *err)
{
	char e[NN_ERRLEN];
	if (p->batch)
		return fail(NN_PAY_EBAD, err, "a batch is already open");
	if (tx(p, SQL_BEGIN, e) < 0)
		return fail(NN_PAY_ESTORE, err, "ledger: %s", e);
	if (check_version(p, e) < 0) {
		tx(p, SQL_ROLLBACK, NULL);
		hot_forget(p);
		return fail(NN_PAY_ESTORE, err, "ledger: %s", e);
	}
	p->batch = 1;
	return 0;
}

int nn_pay_batch_commit(struct nn_pay *p, char *err)
{
	char e[NN_ERRLEN];
	if (!p->batch)
		return fail(NN_PAY_EBAD, err, "no batch is open");
	p->batch = 0;
	if (tx(p, SQL_COMMIT, e) < 0) {
		hot_forget(p);
		tx(p, SQL_ROLLBACK, NULL);
		return fail(NN_PAY_ESTORE, err, "ledger: %s", e);
	}
	return 0;
}

void nn_pay_batch_abort(struct nn_pay *p)
{
	if (!p->batch)
		return;
	p->batch = 0;
	hot_forget(p);
	tx(p, SQL_ROLLBACK, NULL);
}

/* Record a refusal (outside any transaction); the refusal's message stays
 * in err. */
static int refuse_logged(struct nn_pay *p, int rc, const char *contract, const char *kind,
			 char *err)
{
	sqlite3_stmt *st;
	char ts[24];
	rollback(p);
	if (rc != NN_PAY_EREFUSED && rc != NN_PAY_EBAD)
		return rc;
	snprintf(ts, sizeof ts, "%lld", (long long)p->now());
	st = prep(p, NULL, "INSERT INTO refusals (ts, contract, kind, message) VALUES (?1,?2,?3,?4)",
		  4, ts, contract, kind, err ? err : "refused");
	if (st)
		run_done(p, st, NULL);
	return rc;
}

/* ---- contracts ---- */

static const char *const contract_keys[] = {
	"v", "type", "id", "requester", "provider", "rates", "cap", "currency",
	"duration_s", "termination", "nonce", "created", "sigs", NULL
};
static const char *const rate_keys[] = {
	"cpu_second", "gib_second", "allocation", "deployment", NULL
};
static const char *const termination_keys[] = { "notice_s", NULL };
static const char *const sigs_keys[] = { "requester", "provider", NULL };

static void contract_id(const struct nn_buf *terms_msg, size_t prefix_len, char id[NN_PAY_ID_LEN])
{
	uint8_t h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const uint8_t *)terms_msg->data + prefix_len,
			   terms_msg->len - prefix_len);
	nn_hex_encode(id, h, sizeof h);
}

static int check_shape(jv doc, struct nn_pay_terms *t, char *err)
{
	jv rates, term;
	const char *s;
	int64_t n;
	uint64_t *rv[] = { &t->cpu_second, &t->gib_second, &t->allocation, &t->deployment };
	char e[NN_ERRLEN];

	if (check_head(doc, "nunet/contract", err) < 0 ||
	    only_keys(doc, "contract", contract_keys, err) < 0 ||
	    get_did(doc, "requester", t->requester, t->requester_pk, err) < 0 ||
	    get_did(doc, "provider", t->provider, t->provider_pk, err) < 0)
		return -1;
	if (!strcmp(t->requester, t->provider))
		return nn_seterr(err, "requester and provider are the same identity");
	if (nn_json_get_obj(doc, "rates", err) < 0)
		return -1;
	rates = jv_object_get(jv_copy(doc), jv_string("rates"));
	if (only_keys(rates, "rates", rate_keys, err) < 0) {
		jv_free(rates);
		return -1;
	}
	for (int i = 0; rate_keys[i]; i++)
		if (get_amount(rates, rate_keys[i], rv[i], e) < 0) {
			jv_free(rates);
			return nn_seterr(err, "rates.%s", e);
		}
	jv_free(rates);
	if (get_amount(doc, "cap", &t->cap, err) < 0)
		return -1;
	if (nn_json_get_str(doc, "currency", &s, err) < 0)
		return -1;
	if (!*s || strlen(s) > 16 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					  "0123456789_-") != strlen(s))
		return nn_seterr(err, "currency: '%s' is not 1 to 16 letters, digits, '_' or '-'", s);
	if (get_count(doc, "duration_s", COUNTER_MAX / 1000, &t->duration_s, err) < 0)
		return -1;
	if (t->duration_s == 0)
		return nn_seterr(err, "duration_s: must be above 0");
	if (nn_json_get_obj(doc, "termination", err) < 0)
		return -1;
	term = jv_object_get(jv_copy(doc), jv_string("termination"));
	if (only_keys(term, "termination", termination_keys, err) < 0 ||
	    get_count(term, "notice_s", COUNTER_MAX / 1000, &n, e) < 0) {
		jv_free(term);
		if (*e)
			nn_seterr(err, "termination.%s", e);
		return -1;
	}
	jv_free(term);
	t->notice_s = n;
	if (nn_json_get_str(doc, "nonce", &s, err) < 0)
		return -1;
	if (!is_hex(s, 32))
		return nn_seterr(err, "nonce: expected 32 lowercase hex digits");
	if (get_count(doc, "created", COUNTER_MAX, &t->created, err) < 0)
		return -1;
	return 0;
}

int nn_pay_contract_check(jv doc, struct nn_pay_terms *t, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	const char *s;
	jv sigs;
	int rc = 0;

	memset(t, 0, sizeof *t);
	if (check_shape(doc, t, err) < 0)
		return NN_PAY_EBAD;
	if (signing_input(doc, NN_PAY_CONTRACT_PREFIX, drop_contract, &b, err) < 0) {
		nn_buf_release(&b);
		return NN_PAY_EBAD;
	}
	contract_id(&b, strlen(NN_PAY_CONTRACT_PREFIX), t->id);
	if (nn_json_has(doc, "id")) {
		if (nn_json_get_str(doc, "id", &s, err) < 0) {
			rc = NN_PAY_EBAD;
			goto out;
		}
		if (strcmp(s, t->id)) {
			rc = fail(NN_PAY_EREFUSED, err, "id: '%s' is not the hash of the contract's "
				  "terms (%s)", s, t->id);
			goto out;
		}
	}
	if (nn_json_has(doc, "sigs")) {
		if (nn_json_get_obj(doc, "sigs", err) < 0) {
			rc = NN_PAY_EBAD;
			goto out;
		}
		sigs = jv_object_get(jv_copy(doc), jv_string("sigs"));
		if (only_keys(sigs, "sigs", sigs_keys, err) < 0)
			rc = NN_PAY_EBAD;
		for (int i = 0; rc == 0 && i < 2; i++) {
			const char *role = sigs_keys[i];
			if (!nn_json_has(sigs, role))
				continue;
			if (nn_json_get_str(sigs, role, &s, err) < 0) {
				rc = NN_PAY_EBAD;
				break;
			}
			if (!sig_ok(i == 0 ? t->requester_pk : t->provider_pk, s, &b)) {
				rc = fail(NN_PAY_EREFUSED, err, "contract %s: bad signature of the %s",
					  t->id, role);
				break;
			}
			if (i == 0)
				t->signed_requester = 1;
			else
				t->signed_provider = 1;
		}
		jv_free(sigs);
	}
out:
	nn_buf_release(&b);
	return rc;
}

/* Our role in t: "requester", "provider", or NULL. */
static const char *my_role(const struct nn_pay *p, const struct nn_pay_terms *t)
{
	if (!strcmp(p->key.did, t->requester))
		return "requester";
	if (!strcmp(p->key.did, t->provider))
		return "provider";
	return NULL;
}

/* Add our signature to doc (consumed) under sigs.ROLE. */
static jv countersign(struct nn_pay *p, jv doc, const char *role, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	jv sigs;
	if (signing_input(doc, NN_PAY_CONTRACT_PREFIX, drop_contract, &b, err) < 0) {
		nn_buf_release(&b);
		jv_free(doc);
		return jv_invalid();
	}
	sigs = jv_object_get(jv_copy(doc), jv_string("sigs"));
	if (jv_get_kind(sigs) != JV_KIND_OBJECT) {
		jv_free(sigs);
		sigs = jv_object();
	}
	sigs = jv_object_set(sigs, jv_string(role), sign_b64(&p->key, &b));
	nn_buf_release(&b);
	return jv_object_set(doc, jv_string("sigs"), sigs);
}

struct row {
	char id[NN_PAY_ID_LEN];
	char role[16], state[16];
	int64_t ended;	/* -1: not ended */
	jv doc;
	struct nn_pay_terms t;
};

static void row_release(struct row *r)
{
	jv_free(r->doc);
	r->doc = jv_invalid();
}

/* Load contract id: 0, REFUSED (unknown), STORE or BAD (corrupt row). */
static int load_contract(struct nn_pay *p, const char *id, struct row *r, char *err)
{
	sqlite3_stmt *st;
	int s;
	char e[NN_ERRLEN];
	r->doc = jv_invalid();
	st = prep(p, err, "SELECT doc, role, state, ended FROM contracts WHERE id = ?1", 1, id);
	if (!st)
		return NN_PAY_ESTORE;
	s = sqlite3_step(st);
	if (s == SQLITE_DONE) {
		unprep(p, st);
		return fail(NN_PAY_EREFUSED, err, "unknown contract '%s'", id);
	}
	if (s != SQLITE_ROW) {
		unprep(p, st);
		return dberr(p, err);
	}
	const char *doc = (const char *)sqlite3_column_text(st, 0);
	snprintf(r->id, sizeof r->id, "%s", id);
	snprintf(r->role, sizeof r->role, "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(r->state, sizeof r->state, "%s", (const char *)sqlite3_column_text(st, 2));
	r->ended = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3);
	/* the same stored text as last time: reuse its parsed form */
	if (p->cache_doc && !strcmp(p->cache_doc, doc)) {
		unprep(p, st);
		r->doc = jv_copy(p->cache_jv);
		r->t = p->cache_terms;
		return 0;
	}
	r->doc = nn_json_parse(doc, strlen(doc), e);
	if (!jv_is_valid(r->doc) || check_shape(r->doc, &r->t, e) < 0) {
		unprep(p, st);
		row_release(r);
		return fail(NN_PAY_ESTORE, err, "ledger: contract %s is corrupt: %s", id, e);
	}
	snprintf(r->t.id, sizeof r->t.id, "%s", id);
	free(p->cache_doc);
	jv_free(p->cache_jv);
	p->cache_doc = nn_xstrdup(doc);
	p->cache_jv = jv_copy(r->doc);
	p->cache_terms = r->t;
	unprep(p, st);
	return 0;
}

static int store_contract(struct nn_pay *p, const char *id, jv doc, const char *role,
			  const char *state, int replace, char *err)
{
	char *text = nn_json_canon_str(doc, err);
	char now[24];
	sqlite3_stmt *st;
	if (!text)
		return NN_PAY_EBAD;
	hot_forget(p);
	snprintf(now, sizeof now, "%lld", (long long)p->now());
	st = prep(p, err, replace ?
		  "INSERT OR REPLACE INTO contracts (id, doc, role, state, updated) VALUES (?1,?2,?3,?4,?5)" :
		  "INSERT INTO contracts (id, doc, role, state, updated) VALUES (?1,?2,?3,?4,?5)",
		  5, id, text, role, state, now);
	free(text);
	if (!st)
		return NN_PAY_ESTORE;
	return run_done(p, st, err);
}

/* Fill the fields a proposal may leave out.  Consumes terms. */
static jv fill_defaults(struct nn_pay *p, jv terms)
{
	char nonce[33];
	if (!nn_json_has(terms, "v"))
		terms = jv_object_set(terms, jv_string("v"), jv_number(1));
	if (!nn_json_has(terms, "type"))
		terms = jv_object_set(terms, jv_string("type"), jv_string("nunet/contract"));
	if (!nn_json_has(terms, "nonce")) {
		nn_random_id(nonce);
		terms = jv_object_set(terms, jv_string("nonce"), jv_string(nonce));
	}
	if (!nn_json_has(terms, "created"))
		terms = jv_object_set(terms, jv_string("created"), jv_number((double)p->now()));
	if (!nn_json_has(terms, "currency"))
		terms = jv_object_set(terms, jv_string("currency"), jv_string("NTX"));
	if (!nn_json_has(terms, "termination"))
		terms = jv_object_set(terms, jv_string("termination"),
				      JV_OBJECT(jv_string("notice_s"), jv_number(60)));
	if (jv_get_kind(terms) == JV_KIND_OBJECT) {
		jv rates = jv_object_get(jv_copy(terms), jv_string("rates"));
		if (jv_get_kind(rates) == JV_KIND_NULL || !jv_is_valid(rates)) {
			jv_free(rates);
			rates = jv_object();
		}
		if (jv_get_kind(rates) == JV_KIND_OBJECT) {
			for (int i = 0; rate_keys[i]; i++)
				if (!nn_json_has(rates, rate_keys[i]))
					rates = jv_object_set(rates, jv_string(rate_keys[i]), jv_string("0"));
		}
		terms = jv_object_set(terms, jv_string("rates"), rates);
	}
	return terms;
}

static int with_id(jv doc, const char *id, jv *out)
{
	*out = jv_object_set(doc, jv_string("id"), jv_string(id));
	return 0;
}

int nn_pay_contract_propose(struct nn_pay *p, jv terms, int draft, jv *out, char *err)
{
	struct nn_pay_terms t;
	const char *role;
	int rc;

	*out = jv_invalid();
	if (jv_get_kind(terms) != JV_KIND_OBJECT) {
		jv_free(terms);
		return fail(NN_PAY_EBAD, err, "contract terms: expected a JSON object");
	}
	terms = jv_object_delete(terms, jv_string("sigs"));
	terms = jv_object_delete(terms, jv_string("id"));
	terms = fill_defaults(p, terms);
	if ((rc = nn_pay_contract_check(terms, &t, err)) < 0) {
		jv_free(terms);
		return rc;
	}
	if (!(role = my_role(p, &t))) {
		jv_free(terms);
		return fail(NN_PAY_EREFUSED, err, "this node (%s) is neither the requester nor the "
			    "provider of the contract", p->key.did);
	}
	if (!draft) {
		terms = countersign(p, terms, role, err);
		if (!jv_is_valid(terms))
			return NN_PAY_EBAD;
	}
	terms = jv_object_set(terms, jv_string("id"), jv_string(t.id));
	if ((rc = store_contract(p, t.id, terms, role, draft ? "draft" : "proposed", 0, err)) < 0) {
		jv_free(terms);
		return rc;
	}
	*out = terms;
	return 0;
}

int nn_pay_contract_propose_draft(struct nn_pay *p, const char *id, jv *out, char *err)
{
	struct row r;
	int rc;
	*out = jv_invalid();
	if ((rc = load_contract(p, id, &r, err)) < 0)
		return rc;
	if (strcmp(r.state, "draft")) {
		row_release(&r);
		return fail(NN_PAY_EREFUSED, err, "contract %s is %s, not a draft", id, r.state);
	}
	jv doc = countersign(p, r.doc, r.role, err);
	r.doc = jv_invalid();
	if (!jv_is_valid(doc))
		return NN_PAY_EBAD;
	if ((rc = store_contract(p, id, doc, r.role, "proposed", 1, err)) < 0) {
		jv_free(doc);
		return rc;
	}
	return with_id(doc, id, out);
}

int nn_pay_contract_accept(struct nn_pay *p, jv doc, jv *out, char *err)
{
	struct nn_pay_terms t;
	struct row r;
	const char *role;
	int rc, mine, theirs;

	*out = jv_invalid();
	if ((rc = nn_pay_contract_check(doc, &t, err)) < 0) {
		jv_free(doc);
		return rc;
	}
	if (!(role = my_role(p, &t))) {
		jv_free(doc);
		return fail(NN_PAY_EREFUSED, err, "contract %s: this node (%s) is neither its "
			    "requester nor its provider", t.id, p->key.did);
	}
	mine = role[0] == 'r' ? t.signed_requester : t.signed_provider;
	theirs = role[0] == 'r' ? t.signed_provider : t.signed_requester;
	if (!theirs) {
		jv_free(doc);
		return fail(NN_PAY_EREFUSED, err, "contract %s: not signed by its %s", t.id,
			    role[0] == 'r' ? "provider" : "requester");
	}
	if (!mine) {
		doc = countersign(p, doc, role, err);
		if (!jv_is_valid(doc))
			return NN_PAY_EBAD;
	}
	doc = jv_object_set(doc, jv_string("id"), jv_string(t.id));
	if ((rc = begin(p, err)) < 0) {
		jv_free(doc);
		return rc;
	}
	rc = load_contract(p, t.id, &r, err);
	if (rc == 0) {
		int early = !strcmp(r.state, "draft") || !strcmp(r.state, "proposed");
		row_release(&r);
		if (!early) {
			/* already accepted: idempotent, keep what we hold */
			jv got;
			rollback(p);
			jv_free(doc);
			if ((rc = nn_pay_contract_get(p, t.id, &got, err)) < 0)
				return rc;
			*out = jv_object_get(got, jv_string("contract"));
			return 0;
		}
		rc = store_contract(p, t.id, doc, role, "accepted", 1, err);
	} else if (rc == NN_PAY_EREFUSED) {
		rc = store_contract(p, t.id, doc, role, "accepted", 0, err);
	}
	if (rc == 0)
		rc = commit(p, err);
	if (rc < 0) {
		rollback(p);
		jv_free(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

/*
 * A voucher of contract id (its parties in t) written from its fields in
 * canonical order: the signing input (prefix included) into msg; returns
 * the offset in msg where "sig" goes.  The bytes sign_doc gives for the jv
 * document with the same fields (t/6006 checks them against
 * nn_json_canon), without the jv.
 */
static size_t voucher_msg(struct nn_buf *msg, const char *id, const struct nn_pay_terms *t,
			  int64_t seq, uint64_t amount, int64_t ts)
{
	size_t at;
	nn_buf_reset(msg);
	nn_buf_adds(msg, NN_PAY_VOUCHER_PREFIX "{\"amount\":\"");
	add_u64(msg, amount);
	nn_buf_adds(msg, "\",\"contract\":\"");
	nn_buf_adds(msg, id);
	nn_buf_adds(msg, "\",\"provider\":\"");
	nn_buf_adds(msg, t->provider);
	nn_buf_adds(msg, "\",\"requester\":\"");
	nn_buf_adds(msg, t->requester);
	nn_buf_adds(msg, "\",\"seq\":");
	add_u64(msg, (uint64_t)seq);
	at = msg->len;
	nn_buf_adds(msg, ",\"ts\":");
	add_u64(msg, (uint64_t)ts);
	nn_buf_adds(msg, ",\"type\":\"nunet/voucher\",\"v\":1}");
	return at;
}

/* The voucher's canonical text, appended to out: its signing input msg
 * (sig's place at) with the signature spliced in. */
static void voucher_text(const struct nn_buf *msg, size_t at, const uint8_t sig[64],
			 struct nn_buf *out)
{
	size_t plen = strlen(NN_PAY_VOUCHER_PREFIX);
	char s64[96];
	nn_b64_encode_pub(s64, sig, 64);
	nn_buf_add(out, msg->data + plen, at - plen);
	nn_buf_adds(out, ",\"sig\":\"");
	nn_buf_adds(out, s64);
	nn_buf_addc(out, '"');
	nn_buf_add(out, msg->data + at, msg->len - at);
}

/* The text of the voucher in the current row of st, whose columns from col
 * on are seq, amount, doc_ts, sig, doc (contract id, parties in t): doc, or
 * written from the fields.  Caller frees; NULL when the row is corrupt. */
static char *voucher_row_text(sqlite3_stmt *st, int col, const char *id,
			      const struct nn_pay_terms *t)
{
	struct nn_buf msg = NN_BUF_INIT, out = NN_BUF_INIT;
	const char *amt = (const char *)sqlite3_column_text(st, col + 1);
	uint64_t amount;
	size_t at;
	if (sqlite3_column_type(st, col + 4) != SQLITE_NULL)
		return nn_xstrdup((const char *)sqlite3_column_text(st, col + 4));
	if (!amt || nn_pay_amount_parse(amt, &amount, NULL) < 0 ||
	    sqlite3_column_bytes(st, col + 3) != 64)
		return NULL;
	at = voucher_msg(&msg, id, t, sqlite3_column_int64(st, col), amount,
			 sqlite3_column_int64(st, col + 2));
	voucher_text(&msg, at, sqlite3_column_blob(st, col + 3), &out);
	nn_buf_release(&msg);
	return out.data;
}

/* Newest voucher of role for contract: seq 0 / amount 0 when none; its
 * text into *doc when doc is not NULL (t: the contract's terms). */
static int newest_voucher(struct nn_pay *p, const char *id, const char *role, int64_t *seq,
			  uint64_t *amount, const struct nn_pay_terms *t, char **doc, char *err)
{
	sqlite3_stmt *st = prep(p, err, "SELECT seq, amount, doc_ts, sig, doc FROM vouchers WHERE "
				"contract = ?1 AND role = ?2 ORDER BY seq DESC LIMIT 1", 2, id, role);
	int s;
	*seq = 0;
	*amount = 0;
	if (doc)
		*doc = NULL;
	if (!st)
		return NN_PAY_ESTORE;
	s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		if (nn_pay_amount_parse((const char *)sqlite3_column_text(st, 1), amount, NULL) < 0 ||
		    (doc && !(*doc = voucher_row_text(st, 0, id, t)))) {
			unprep(p, st);
			return fail(NN_PAY_ESTORE, err, "ledger: corrupt voucher %lld of contract %s",
				    (long long)*seq, id);
		}
	} else if (s != SQLITE_DONE) {
		unprep(p, st);
		return dberr(p, err);
	}
	unprep(p, st);
	return 0;
}

static const char *voucher_role(const char *contract_role)
{
	return contract_role[0] == 'r' ? "issued" : "received";
}

static jv row_json(struct nn_pay *p, struct row *r, char *err, int *rc)
{
	int64_t seq;
	uint64_t amount;
	jv o = JV_OBJECT(jv_string("id"), jv_string(r->id), jv_string("role"), jv_string(r->role),
			 jv_string("state"), jv_string(r->state));
	o = jv_object_set(o, jv_string("ended"), r->ended < 0 ? jv_null() : jv_number((double)r->ended));
	*rc = newest_voucher(p, r->id, voucher_role(r->role), &seq, &amount, NULL, NULL, err);
	o = jv_object_set(o, jv_string("seq"), jv_number((double)seq));
	o = jv_object_set(o, jv_string("amount"), amount_jv(amount));
	o = jv_object_set(o, jv_string("contract"), r->doc);
	r->doc = jv_invalid();
	return o;
}

int nn_pay_contract_get(struct nn_pay *p, const char *id, jv *out, char *err)
{
	struct row r;
	int rc;
	*out = jv_invalid();
	if ((rc = load_contract(p, id, &r, err)) < 0)
		return rc;
	*out = row_json(p, &r, err, &rc);
	if (rc < 0) {
		jv_free(*out);
		*out = jv_invalid();
	}
	return rc;
}

/* The first column of a query's rows as strings (contract or allocation
 * ids), in the order of the query; arg binds ?1 when not NULL. */
static int contract_ids(struct nn_pay *p, const char *sql, const char *arg, jv *ids, char *err)
{
	sqlite3_stmt *st = prep(p, err, sql, arg ? 1 : 0, arg);
	int s;
	*ids = jv_invalid();
	if (!st)
		return NN_PAY_ESTORE;
	*ids = jv_array();
	while ((s = sqlite3_step(st)) == SQLITE_ROW)
		*ids = jv_array_append(*ids, jv_string((const char *)sqlite3_column_text(st, 0)));
	unprep(p, st);
	if (s != SQLITE_DONE) {
		jv_free(*ids);
		*ids = jv_invalid();
		return dberr(p, err);
	}
	return 0;
}

int nn_pay_contract_list(struct nn_pay *p, const char *state, jv *out, char *err)
{
	jv ids;
	int rc = contract_ids(p, state ?
			      "SELECT id FROM contracts WHERE state = ?1 ORDER BY updated, id" :
			      "SELECT id FROM contracts ORDER BY updated, id", state, &ids, err);
	*out = jv_invalid();
	if (rc < 0)
		return rc;
	*out = jv_array();
	for (int i = 0; i < jv_array_length(jv_copy(ids)); i++) {
		jv id = jv_array_get(jv_copy(ids), i), o;
		rc = nn_pay_contract_get(p, jv_string_value(id), &o, err);
		jv_free(id);
		if (rc < 0)
			break;
		*out = jv_array_append(*out, o);
	}
	jv_free(ids);
	if (rc < 0) {
		jv_free(*out);
		*out = jv_invalid();
	}
	return rc;
}

static int state_allows(const char *from, const char *to)
{
	static const struct { const char *to, *from; } edges[] = {
		{ "terminated", "draft proposed accepted active" },
		{ "completed", "accepted active" },
		{ "settled", "completed terminated" },
	};
	for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
		if (strcmp(edges[i].to, to))
			continue;
		const char *f = edges[i].from;
		size_t n = strlen(from);
		for (const char *q = f; (q = strstr(q, from)); q += n)
			if ((q == f || q[-1] == ' ') && (q[n] == ' ' || q[n] == 0))
				return 1;
	}
	return 0;
}

int nn_pay_contract_set_state(struct nn_pay *p, const char *id, const char *state, char *err)
{
	struct row r;
	sqlite3_stmt *st;
	char now[24];
	int rc;

	if (strcmp(state, "terminated") && strcmp(state, "completed") && strcmp(state, "settled"))
		return fail(NN_PAY_EBAD, err, "'%s' is not a state a contract can be moved to", state);
	if ((rc = begin(p, err)) < 0)
		return rc;
	if ((rc = load_contract(p, id, &r, err)) < 0) {
		rollback(p);
		return rc;
	}
	row_release(&r);
	if (!state_allows(r.state, state)) {
		rollback(p);
		return fail(NN_PAY_EREFUSED, err, "contract %s is %s: it cannot become %s", id,
			    r.state, state);
	}
	hot_forget(p);
	snprintf(now, sizeof now, "%lld", (long long)p->now());
	st = prep(p, err, strcmp(state, "settled") ?
		  "UPDATE contracts SET state = ?2, ended = ?3, updated = ?3 WHERE id = ?1" :
		  "UPDATE contracts SET state = ?2, updated = ?3 WHERE id = ?1", 3, id, state, now);
	if (!st || (rc = run_done(p, st, err)) < 0 || (rc = commit(p, err)) < 0) {
		rollback(p);
		return rc < 0 ? rc : NN_PAY_ESTORE;
	}
	return 0;
}

int nn_pay_contract_require(struct nn_pay *p, const char *id, char *err)
{
	struct row r;
	int rc;
	if ((rc = load_contract(p, id, &r, err)) < 0)
		return rc;
	row_release(&r);
	if (strcmp(r.role, "provider"))
		return fail(NN_PAY_EREFUSED, err, "contract %s: this node is not its provider", id);
	if (strcmp(r.state, "accepted") && strcmp(r.state, "active"))
		return fail(NN_PAY_EREFUSED, err, "contract %s is %s, not accepted", id, r.state);
	return 0;
}

/* ---- metering ---- */

static int usage_check(const struct nn_pay_usage *u, char *err)
{
	const uint64_t *f = &u->cpu_ms;
	for (int i = 0; i < 5; i++)
		if (f[i] > (uint64_t)COUNTER_MAX)
			return nn_seterr(err, "usage counter over 2^53");
	return 0;
}

int nn_pay_meter_record(struct nn_pay *p, const char *contract, const char *alloc,
			const char *deployment, const struct nn_pay_usage *u, char *err)
{
	struct row r;
	sqlite3_stmt *st;
	int rc, s;
	char a[3][24], now[24];

	if (!alloc || !*alloc)
		return fail(NN_PAY_EBAD, err, "an allocation id is required");
	if (usage_check(u, err) < 0)
		return NN_PAY_EBAD;
	if ((rc = begin(p, err)) < 0)
		return rc;
	if ((rc = load_contract(p, contract, &r, err)) < 0)
		goto out;
	row_release(&r);
	if (strcmp(r.role, "provider")) {
		rc = fail(NN_PAY_EREFUSED, err, "contract %s: this node is not its provider", contract);
		goto out;
	}
	if (strcmp(r.state, "accepted") && strcmp(r.state, "active")) {
		rc = fail(NN_PAY_EREFUSED, err, "contract %s is %s: no usage can be recorded",
			  contract, r.state);
		goto out;
	}
	st = prep(p, err, "SELECT cpu_ms, mem_mib_ms, wall_ms FROM usage WHERE contract = ?1 "
		  "AND alloc = ?2", 2, contract, alloc);
	if (!st) {
		rc = NN_PAY_ESTORE;
		goto out;
	}
	if ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if ((uint64_t)sqlite3_column_int64(st, 0) > u->cpu_ms ||
		    (uint64_t)sqlite3_column_int64(st, 1) > u->mem_mib_ms ||
		    (uint64_t)sqlite3_column_int64(st, 2) > u->wall_ms) {
			unprep(p, st);
			rc = fail(NN_PAY_EREFUSED, err, "allocation %s: usage counters may not go back "
				  "(they are cumulative)", alloc);
			goto out;
		}
	}
	unprep(p, st);
	snprintf(a[0], 24, "%llu", (unsigned long long)u->cpu_ms);
	snprintf(a[1], 24, "%llu", (unsigned long long)u->mem_mib_ms);
	snprintf(a[2], 24, "%llu", (unsigned long long)u->wall_ms);
	snprintf(now, sizeof now, "%lld", (long long)p->now());
	st = prep(p, err, "INSERT OR REPLACE INTO usage (contract, alloc, deployment, cpu_ms, "
		  "mem_mib_ms, wall_ms, updated) VALUES (?1,?2,?3,CAST(?4 AS INTEGER),"
		  "CAST(?5 AS INTEGER),CAST(?6 AS INTEGER),CAST(?7 AS INTEGER))", 7, contract, alloc,
		  deployment && *deployment ? deployment : "default", a[0], a[1], a[2], now);
	if (!st || (rc = run_done(p, st, err)) < 0) {
		rc = NN_PAY_ESTORE;
		goto out;
	}
	rc = commit(p, err);
out:
	if (rc < 0)
		rollback(p);
	return rc;
}

/*
 * The meter: each sample adds what happened since the allocation's previous
 * one.  cpu: the run's counter minus the previous sample's of the same run
 * (a new run, or a counter that went back, counts from 0).  memory: the
 * memory now times the time since the previous sample (the previous sample's
 * memory when unknown).  wall: the time since the previous sample.  The
 * first sample only sets the start.
 */
int nn_pay_meter_sample(struct nn_pay *p, const char *contract, const char *alloc,
			const char *deployment, const struct nn_pay_sample *s, char *err)
{
	struct row r;
	sqlite3_stmt *st;
	int rc, step;
	uint64_t cpu = 0, mem = 0, wall = 0, cpu_raw = 0, mem_last = 0;
	int64_t run = 0, ts_last = s->ts;
	char a[8][24], dep[128];

	if (!alloc || !*alloc)
		return fail(NN_PAY_EBAD, err, "an allocation id is required");
	if ((s->cpu_ms > (uint64_t)COUNTER_MAX && s->cpu_ms != NN_PAY_UNKNOWN) || s->ts < 0)
		return fail(NN_PAY_EBAD, err, "sample out of range");
	if ((rc = begin(p, err)) < 0)
		return rc;
	if ((rc = load_contract(p, contract, &r, err)) < 0)
		goto out;
	row_release(&r);
	if (strcmp(r.role, "provider")) {
		rc = fail(NN_PAY_EREFUSED, err, "contract %s: this node is not its provider", contract);
		goto out;
	}
	st = prep(p, err, "SELECT cpu_ms, mem_mib_ms, wall_ms, run, cpu_raw, mem_last, ts_last, ended, "
		  "deployment FROM usage WHERE contract = ?1 AND alloc = ?2", 2, contract, alloc);
	if (!st) {
		rc = NN_PAY_ESTORE;
		goto out;
	}
	if ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 7)) {
			unprep(p, st);	/* ended: nothing counts any more */
			rollback(p);
			return 0;
		}
		cpu = (uint64_t)sqlite3_column_int64(st, 0);
		mem = (uint64_t)sqlite3_column_int64(st, 1);
		wall = (uint64_t)sqlite3_column_int64(st, 2);
		run = sqlite3_column_int64(st, 3);
		cpu_raw = (uint64_t)sqlite3_column_int64(st, 4);
		mem_last = (uint64_t)sqlite3_column_int64(st, 5);
		ts_last = sqlite3_column_type(st, 6) == SQLITE_NULL ? s->ts : sqlite3_column_int64(st, 6);
		/* an allocation stays in the deployment it was first seen in */
		snprintf(dep, sizeof dep, "%s", (const char *)sqlite3_column_text(st, 8));
		deployment = dep;
	}
	unprep(p, st);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		rc = dberr(p, err);
		goto out;
	}
	if (step == SQLITE_DONE && strcmp(r.state, "accepted") && strcmp(r.state, "active")) {
		rc = fail(NN_PAY_EREFUSED, err, "contract %s is %s: no usage can be recorded",
			  contract, r.state);
		goto out;
	}
	{
		int64_t dt = s->ts > ts_last ? s->ts - ts_last : 0;
		uint64_t m = s->mem_bytes >= 0 ? (uint64_t)s->mem_bytes : mem_last;
		unsigned __int128 dm = (unsigned __int128)m * (uint64_t)dt / (1024 * 1024);
		if (s->cpu_ms != NN_PAY_UNKNOWN) {
			cpu += s->run == run && s->cpu_ms >= cpu_raw ? s->cpu_ms - cpu_raw : s->cpu_ms;
			cpu_raw = s->cpu_ms;
		}
		mem += dm > COUNTER_MAX ? COUNTER_MAX : (uint64_t)dm;
		wall += (uint64_t)dt;
		mem_last = m;
		if (s->ts > ts_last)
			ts_last = s->ts;
		if (cpu > COUNTER_MAX || mem > COUNTER_MAX || wall > COUNTER_MAX) {
			rc = fail(NN_PAY_EREFUSED, err, "allocation %s: usage counter over 2^53", alloc);
			goto out;
		}
	}
	snprintf(a[0], 24, "%llu", (unsigned long long)cpu);
	snprintf(a[1], 24, "%llu", (unsigned long long)mem);
	snprintf(a[2], 24, "%llu", (unsigned long long)wall);
	snprintf(a[3], 24, "%lld", (long long)p->now());
	snprintf(a[4], 24, "%d", s->run);
	snprintf(a[5], 24, "%llu", (unsigned long long)cpu_raw);
	snprintf(a[6], 24, "%llu", (unsigned long long)mem_last);
	snprintf(a[7], 24, "%lld", (long long)ts_last);
	st = prep(p, err, "INSERT OR REPLACE INTO usage (contract, alloc, deployment, cpu_ms, "
		  "mem_mib_ms, wall_ms, updated, run, cpu_raw, mem_last, ts_last, ended) VALUES "
		  "(?1,?2,?3,CAST(?4 AS INTEGER),CAST(?5 AS INTEGER),CAST(?6 AS INTEGER),"
		  "CAST(?7 AS INTEGER),CAST(?8 AS INTEGER),CAST(?9 AS INTEGER),CAST(?10 AS INTEGER),"
		  "CAST(?11 AS INTEGER),?12)", 12, contract, alloc,
		  deployment && *deployment ? deployment : "default", a[0], a[1], a[2], a[3], a[4],
		  a[5], a[6], a[7], s->end ? "1" : "0");
	if (!st || (rc = run_done(p, st, err)) < 0) {
		rc = NN_PAY_ESTORE;
		goto out;
	}
	rc = commit(p, err);
out:
	if (rc < 0)
		rollback(p);
	return rc;
}

int nn_pay_meter_open(struct nn_pay *p, const char *contract, jv *out, char *err)
{
	return contract ?
		contract_ids(p, "SELECT alloc FROM usage WHERE contract = ?1 AND ended = 0 ORDER BY alloc",
			     contract, out, err) :
		contract_ids(p, "SELECT DISTINCT u.contract FROM usage u JOIN contracts c ON c.id = "
			     "u.contract WHERE c.role = 'provider' AND c.state IN ('accepted','active') "
			     "ORDER BY u.contract", NULL, out, err);
}

int nn_pay_meter_total(struct nn_pay *p, const char *contract, struct nn_pay_usage *u, char *err)
{
	sqlite3_stmt *st = prep(p, err, "SELECT TOTAL(cpu_ms), TOTAL(mem_mib_ms), "
				"IFNULL(MAX(wall_ms),0), COUNT(*), COUNT(DISTINCT deployment) "
				"FROM usage WHERE contract = ?1", 1, contract);
	memset(u, 0, sizeof *u);
	if (!st)
		return NN_PAY_ESTORE;
	if (sqlite3_step(st) != SQLITE_ROW) {
		unprep(p, st);
		return dberr(p, err);
	}
	double c = sqlite3_column_double(st, 0), m = sqlite3_column_double(st, 1);
	if (c > (double)COUNTER_MAX || m > (double)COUNTER_MAX) {
		unprep(p, st);
		return fail(NN_PAY_EREFUSED, err, "contract %s: usage totals over 2^53", contract);
	}
	u->cpu_ms = (uint64_t)c;
	u->mem_mib_ms = (uint64_t)m;
	u->wall_ms = (uint64_t)sqlite3_column_int64(st, 2);
	u->allocations = (uint64_t)sqlite3_column_int64(st, 3);
	u->deployments = (uint64_t)sqlite3_column_int64(st, 4);
	unprep(p, st);
	return 0;
}

int nn_pay_usage_amount(const struct nn_pay_terms *t, const struct nn_pay_usage *u,
			uint64_t *amount, char *err)
{
	unsigned __int128 sum = 0;
	sum += (unsigned __int128)u->cpu_ms * t->cpu_second / 1000;
	sum += (unsigned __int128)u->mem_mib_ms * t->gib_second / 1024000;
	sum += (unsigned __int128)u->allocations * t->allocation;
	sum += (unsigned __int128)u->deployments * t->deployment;
	if (sum > UINT64_MAX)
		return fail(NN_PAY_EREFUSED, err, "the usage is worth more than 2^64-1 minor units");
	*amount = (uint64_t)sum;
	return 0;
}

static jv usage_jv(const struct nn_pay_usage *u)
{
	return JV_OBJECT(jv_string("cpu_ms"), jv_number((double)u->cpu_ms),
			 jv_string("mem_mib_ms"), jv_number((double)u->mem_mib_ms),
			 jv_string("wall_ms"), jv_number((double)u->wall_ms),
			 jv_string("allocations"), jv_number((double)u->allocations),
			 jv_string("deployments"), jv_number((double)u->deployments));
}

static const char *const usage_keys[] = {
	"cpu_ms", "mem_mib_ms", "wall_ms", "allocations", "deployments", NULL
};

static int usage_parse(jv obj, struct nn_pay_usage *u, char *err)
{
	uint64_t *f = &u->cpu_ms;
	char e[NN_ERRLEN];
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return nn_seterr(err, "usage: expected an object");
	if (only_keys(obj, "usage", usage_keys, err) < 0)
		return -1;
	for (int i = 0; usage_keys[i]; i++) {
		int64_t v;
		if (get_count(obj, usage_keys[i], COUNTER_MAX, &v, e) < 0)
			return nn_seterr(err, "usage.%s", e);
		f[i] = (uint64_t)v;
	}
	return 0;
}

static int max_seq(struct nn_pay *p, const char *sql, const char *id, const char *role,
		   int64_t *seq, char *err)
{
	sqlite3_stmt *st = prep(p, err, sql, 2, id, role);
	if (!st)
		return NN_PAY_ESTORE;
	if (sqlite3_step(st) != SQLITE_ROW) {
		unprep(p, st);
		return dberr(p, err);
	}
	*seq = sqlite3_column_int64(st, 0);
	unprep(p, st);
	return 0;
}

int nn_pay_usage_report(struct nn_pay *p, const char *contract, jv *out, char *err)
{
	struct row r;
	struct nn_pay_usage u;
	uint64_t amount;
	int64_t seq = 0, now = p->now();
	char *text = NULL, s_seq[24], s_now[24];
	sqlite3_stmt *st;
	jv doc = jv_invalid();
	int rc;

	*out = jv_invalid();
	if ((rc = begin(p, err)) < 0)
		return rc;
	if ((rc = load_contract(p, contract, &r, err)) < 0)
		goto out;
	row_release(&r);
	if (strcmp(r.role, "provider")) {
		rc = fail(NN_PAY_EREFUSED, err, "contract %s: this node is not its provider", contract);
		goto out;
	}
	if (!strcmp(r.state, "draft") || !strcmp(r.state, "proposed") || !strcmp(r.state, "settled")) {
		rc = fail(NN_PAY_EREFUSED, err, "contract %s is %s: no usage to report", contract,
			  r.state);
		goto out;
	}
	if ((rc = nn_pay_meter_total(p, contract, &u, err)) < 0 ||
	    (rc = nn_pay_usage_amount(&r.t, &u, &amount, err)) < 0 ||
	    (rc = max_seq(p, "SELECT IFNULL(MAX(seq),0) FROM reports WHERE contract = ?1 AND dir = ?2",
			  contract, REPORT_DIR_SENT, &seq, err)) < 0)
		goto out;
	doc = JV_OBJECT(jv_string("v"), jv_number(1), jv_string("type"), jv_string("nunet/usage"),
			jv_string("contract"), jv_string(contract),
			jv_string("requester"), jv_string(r.t.requester),
			jv_string("provider"), jv_string(r.t.provider),
			jv_string("seq"), jv_number((double)(seq + 1)),
			jv_string("ts"), jv_number((double)now));
	doc = jv_object_set(doc, jv_string("usage"), usage_jv(&u));
	doc = jv_object_set(doc, jv_string("amount"), amount_jv(amount));
	doc = sign_doc(doc, NN_PAY_USAGE_PREFIX, &p->key, &text, err);
	if (!jv_is_valid(doc)) {
		rc = NN_PAY_EBAD;
		goto out;
	}
	snprintf(s_seq, sizeof s_seq, "%lld", (long long)(seq + 1));
	snprintf(s_now, sizeof s_now, "%lld", (long long)now);
	st = prep(p, err, "INSERT INTO reports (contract, dir, seq, doc, ts) VALUES "
		  "(?1,?2,CAST(?3 AS INTEGER),?4,CAST(?5 AS INTEGER))", 5, contract, REPORT_DIR_SENT,
		  s_seq, text, s_now);
	if (!st || (rc = run_done(p, st, err)) < 0 || (rc = commit(p, err)) < 0) {
		rc = rc < 0 ? rc : NN_PAY_ESTORE;
		goto out;
	}
	*out = doc;
	doc = jv_invalid();
out:
	if (rc < 0)
		rollback(p);
	free(text);
	jv_free(doc);
	return rc;
}

/* ---- usage reports and vouchers: reading ---- */

static const char *const report_keys[] = {
	"v", "type", "contract", "requester", "provider", "seq", "ts", "usage", "amount", "sig", NULL
};
static const char *const voucher_keys[] = {
	"v", "type", "contract", "requester", "provider", "seq", "amount", "ts", "sig", NULL
};

static const char *doc_type(int type)
{
	return type == NN_PAY_DOC_USAGE ? "nunet/usage" : "nunet/voucher";
}

static const char *doc_prefix(int type)
{
	return type == NN_PAY_DOC_USAGE ? NN_PAY_USAGE_PREFIX : NN_PAY_VOUCHER_PREFIX;
}

/* The full reader's common fields: contract, parties, seq, ts, amount, sig
 * (d->contract stays "" unless all are good). */
static int head_parse(jv doc, int type, struct nn_pay_doc *d, char *err)
{
	const char *s, *c;
	if (check_head(doc, doc_type(type), err) < 0 ||
	    only_keys(doc, doc_type(type), type == NN_PAY_DOC_USAGE ? report_keys : voucher_keys,
		      err) < 0 ||
	    nn_json_get_str(doc, "contract", &c, err) < 0)
		return -1;
	if (!is_hex(c, 64))
		return nn_seterr(err, "contract: '%s' is not a contract id (64 hex digits)", c);
	if (get_did(doc, "requester", d->requester, NULL, err) < 0 ||
	    get_did(doc, "provider", d->provider, NULL, err) < 0 ||
	    get_count(doc, "seq", COUNTER_MAX, &d->seq, err) < 0 ||
	    get_count(doc, "ts", COUNTER_MAX, &d->ts, err) < 0 ||
	    get_amount(doc, "amount", &d->amount, err) < 0 ||
	    nn_json_get_str(doc, "sig", &s, err) < 0)
		return -1;
	if (d->seq < 1)
		return nn_seterr(err, "seq: sequence numbers start at 1");
	memcpy(d->contract, c, NN_PAY_ID_LEN);
	d->sig = s;
	d->siglen = strlen(s);
	return 0;
}

int nn_pay_doc_read(int type, jv doc, struct nn_pay_doc *d, char *err)
{
	struct nn_buf *msg = d->msg;
	const char *prefix = doc_prefix(type);
	size_t at;
	int r;

	memset(d, 0, sizeof *d);
	d->msg = msg;
	if (head_parse(doc, type, d, err) < 0)
		return NN_PAY_EBAD;
	if (type == NN_PAY_DOC_USAGE) {
		jv uj = jv_object_get(jv_copy(doc), jv_string("usage"));
		r = usage_parse(uj, &d->usage, err);
		jv_free(uj);
		if (r < 0)
			return NN_PAY_EBAD;
	}
	/* the bytes signed and the canonical text, by one canonicalization;
	 * a document the writer cannot put in canonical form has no usable
	 * signature */
	nn_buf_reset(msg);
	nn_buf_adds(msg, prefix);
	if (nn_json_canon_without_at(doc, "sig", msg, &at, NULL) < 0) {
		d->sig = NULL;
		return 0;
	}
	d->own = splice_sig(msg, strlen(prefix), at, d->sig);
	d->text = d->own;
	d->tlen = strlen(d->own);
	return 0;
}

void nn_pay_doc_release(struct nn_pay_doc *d)
{
	free(d->own);
	d->own = NULL;
}

/* The strict reader: the members of each document in canonical order. */
static const char *const report_sorted[] = {
	"amount", "contract", "provider", "requester", "seq", "sig", "ts", "type", "usage", "v"
};
static const char *const voucher_sorted[] = {
	"amount", "contract", "provider", "requester", "seq", "sig", "ts", "type", "v"
};
/* usage's members in canonical order, and their place in nn_pay_usage */
static const char *const usage_sorted[] = {
	"allocations", "cpu_ms", "deployments", "mem_mib_ms", "wall_ms"
};
static const int usage_field[] = { 3, 0, 4, 1, 2 };

static int key_is(const struct nn_jscan_member *m, const char *k)
{
	size_t n = strlen(k);
	return m->klen == n && !memcmp(m->key, k, n);
}

/* A plain string member: its bytes between the quotes. */
static int scan_str(const struct nn_jscan_member *m, const char **s, size_t *n)
{
	if (m->kind != NN_JSCAN_STRING || !m->plain)
		return 0;
	*s = m->val + 1;
	*n = m->vlen - 2;
	return 1;
}

/* A non-negative integer member: at most 15 digits, so exact as the
 * double libjq reads and below COUNTER_MAX. */
static int scan_count(const struct nn_jscan_member *m, int64_t *out)
{
	if (m->kind != NN_JSCAN_NUMBER || !m->integer || m->val[0] == '-')
		return 0;
	*out = nn_jscan_int(m);
	return 1;
}

int nn_pay_doc_scan(int type, const char *text, size_t len, struct nn_pay_doc *d)
{
	const char *const *keys = type == NN_PAY_DOC_USAGE ? report_sorted : voucher_sorted;
	int nkeys = type == NN_PAY_DOC_USAGE ? 10 : 9, last = nkeys - 1;
	struct nn_buf *msg = d->msg;
	struct nn_jscan j, uj;
	const struct nn_jscan_member *m = j.m;
	char amt[NN_PAY_AMOUNT_MAX];
	const char *s, *cut, *end;
	size_t n;

	memset(d, 0, sizeof *d);
	d->msg = msg;
	if (nn_jscan_object(text, len, &j) < 0 || !j.canonical || j.n != nkeys)
		return 0;
	for (int i = 0; i < nkeys; i++)
		if (!key_is(&m[i], keys[i]))
			return 0;
	if (!scan_str(&m[0], &s, &n) || n >= sizeof amt)
		return 0;
	memcpy(amt, s, n);
	amt[n] = '\0';
	if (nn_pay_amount_parse(amt, &d->amount, NULL) < 0)
		return 0;
	if (!scan_str(&m[1], &s, &n) || n != 64)
		return 0;
	memcpy(d->contract, s, 64);
	d->contract[64] = '\0';
	if (!is_hex(d->contract, 64))
		return 0;
	if (!scan_str(&m[2], &s, &n) || !did_form(s, n))
		return 0;
	memcpy(d->provider, s, n);
	d->provider[n] = '\0';
	if (!scan_str(&m[3], &s, &n) || !did_form(s, n))
		return 0;
	memcpy(d->requester, s, n);
	d->requester[n] = '\0';
	if (!scan_count(&m[4], &d->seq) || d->seq < 1 || !scan_str(&m[5], &d->sig, &d->siglen) ||
	    !scan_count(&m[6], &d->ts) || !scan_str(&m[7], &s, &n) ||
	    n != strlen(doc_type(type)) || memcmp(s, doc_type(type), n))
		return 0;
	if (type == NN_PAY_DOC_USAGE) {
		if (m[8].kind != NN_JSCAN_OBJECT || nn_jscan_object(m[8].val, m[8].vlen, &uj) < 0 ||
		    uj.n != 5)
			return 0;
		for (int i = 0; i < 5; i++) {
			int64_t v;
			if (!key_is(&uj.m[i], usage_sorted[i]) || !scan_count(&uj.m[i], &v))
				return 0;
			(&d->usage.cpu_ms)[usage_field[i]] = (uint64_t)v;
		}
	}
	if (m[last].kind != NN_JSCAN_NUMBER || m[last].vlen != 1 || m[last].val[0] != '1')
		return 0;
	/* canonical: the bytes signed are the text without ,"sig":"…" (sig is
	 * neither the first member nor the last) */
	cut = m[5].key - 2;
	end = m[5].val + m[5].vlen;
	nn_buf_reset(msg);
	nn_buf_adds(msg, doc_prefix(type));
	nn_buf_add(msg, text, (size_t)(cut - text));
	nn_buf_add(msg, end, (size_t)(text + len - end));
	d->text = text;
	d->tlen = len;
	return 1;
}

/* ---- usage reports and vouchers: checks ---- */

/* Is the contract in a state where reports/vouchers may still arrive? */
static int still_open(struct nn_pay *p, const struct nn_pay_hot *h, int grace, char *err)
{
	if (!strcmp(h->state, "accepted") || !strcmp(h->state, "active"))
		return 0;
	if (!strcmp(h->state, "draft") || !strcmp(h->state, "proposed"))
		return fail(NN_PAY_EREFUSED, err, "contract %s is %s, not accepted", h->id, h->state);
	if (!strcmp(h->state, "settled"))
		return fail(NN_PAY_EREFUSED, err, "contract %s is settled", h->id);
	if (!grace)
		return 0;
	if (h->ended >= 0 && p->now() >= h->ended + h->t.notice_s * 1000)
		return fail(NN_PAY_EREFUSED, err, "contract %s is %s and its notice (%llds) has run "
			    "out", h->id, h->state, (long long)h->t.notice_s);
	return 0;
}

/* Make h the contract id (loading it unless h holds it already): 0, or as
 * load_contract.  p->hot is only used inside a transaction, where begin()
 * has checked that no other connection wrote since it was filled. */
static int hot_load(struct nn_pay *p, struct nn_pay_hot *h, const char *id, char *err)
{
	struct row r;
	int rc;
	if (h->id[0] && !strcmp(h->id, id))
		return 0;
	h->id[0] = '\0';
	if ((rc = load_contract(p, id, &r, err)) < 0)
		return rc;
	snprintf(h->role, sizeof h->role, "%s", r.role);
	snprintf(h->state, sizeof h->state, "%s", r.state);
	h->ended = r.ended;
	h->t = r.t;
	h->rep_seq = -1;
	h->v_seq = -1;
	row_release(&r);
	snprintf(h->id, sizeof h->id, "%s", id);
	return 0;
}

/* Store a voucher: its fields and signature (doc NULL: the text is the
 * one voucher_msg and voucher_text write from them), or its text in doc;
 * for an issued one, the report rep it answers (read, signature checked). */
static int insert_voucher(struct nn_pay *p, const char *contract, const char *role, int64_t seq,
			  uint64_t amount, const struct nn_pay_doc *rep, int64_t doc_ts,
			  const uint8_t sig[64], const char *doc, size_t dlen, char *err)
{
	char s_amt[NN_PAY_AMOUNT_MAX];
	sqlite3_stmt *st = prep(p, err, rep ? "INSERT INTO vouchers (contract, role, seq, amount, "
				"report_seq, ts, doc_ts, sig, doc, rep_ts, cpu_ms, mem_mib_ms, wall_ms, "
				"allocations, deployments, rep_sig) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,"
				"?10,?11,?12,?13,?14,?15,?16)" :
				"INSERT INTO vouchers (contract, role, seq, amount, ts, doc_ts, sig, doc) "
				"VALUES (?1,?2,?3,?4,?6,?7,?8,?9)", 0);
	if (!st)
		return NN_PAY_ESTORE;
	/* every argument outlives the step: bound without a copy */
	nn_pay_amount_fmt(s_amt, amount);
	sqlite3_bind_text(st, 1, contract, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, seq);
	sqlite3_bind_text(st, 4, s_amt, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, p->now());
	sqlite3_bind_int64(st, 7, doc_ts);
	if (doc)
		sqlite3_bind_text(st, 9, doc, (int)dlen, SQLITE_STATIC);
	else
		sqlite3_bind_blob(st, 8, sig, 64, SQLITE_STATIC);
	if (rep) {
		sqlite3_bind_int64(st, 5, rep->seq);
		sqlite3_bind_int64(st, 10, rep->ts);
		for (int i = 0; i < 5; i++)
			sqlite3_bind_int64(st, 11 + i, (int64_t)(&rep->usage.cpu_ms)[i]);
		sqlite3_bind_blob(st, 16, rep->sigbin, 64, SQLITE_STATIC);
	}
	return run_done(p, st, err);
}

static int activate(struct nn_pay *p, const char *id, char *err)
{
	sqlite3_stmt *st = prep(p, err, "UPDATE contracts SET state = 'active', updated = ?2 "
				"WHERE id = ?1 AND state = 'accepted'", 1, id);
	if (!st)
		return NN_PAY_ESTORE;
	sqlite3_bind_int64(st, 2, p->now());
	return run_done(p, st, err);
}

static int same_text(const char *stored, const char *text, size_t len)
{
	return stored && text && strlen(stored) == len && !memcmp(stored, text, len);
}

/* Sign the voucher for contract h with our key: its signing input into
 * msg, its signature into sig, its text appended to out. */
static void voucher_write(struct nn_pay *p, const struct nn_pay_hot *h, int64_t seq,
			  uint64_t amount, int64_t ts, struct nn_buf *msg, uint8_t sig[64],
			  struct nn_buf *out)
{
	size_t at = voucher_msg(msg, h->id, &h->t, seq, amount, ts);
	nn_key_sign(&p->key, sig, msg->data, msg->len);
	voucher_text(msg, at, sig, out);
}

/* The text of the stored voucher of contract h with role and seq; NULL
 * when there is none. */
static char *stored_voucher(struct nn_pay *p, const struct nn_pay_hot *h, const char *role,
			    int64_t seq)
{
	sqlite3_stmt *st = prep(p, NULL, "SELECT seq, amount, doc_ts, sig, doc FROM vouchers WHERE "
				"contract = ?1 AND role = ?2 AND seq = ?3", 2, h->id, role);
	char *doc = NULL;
	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 3, seq);
	if (sqlite3_step(st) == SQLITE_ROW)
		doc = voucher_row_text(st, 0, h->id, &h->t);
	unprep(p, st);
	return doc;
}

/* The voucher that answered the report read into d (appended to out):
 * 1 when a voucher of contract h answered a report with d's seq and that
 * report is d (its text where the row holds one, else its fields and
 * signature: the same fields and signature make the same text); else 0. */
static int answered_before(struct nn_pay *p, const struct nn_pay_hot *h,
			   const struct nn_pay_doc *d, struct nn_buf *out)
{
	sqlite3_stmt *st = prep(p, NULL, "SELECT seq, amount, doc_ts, sig, doc, rep_doc, rep_ts, "
				"cpu_ms, mem_mib_ms, wall_ms, allocations, deployments, rep_sig "
				"FROM vouchers WHERE contract = ?1 AND role = ?2 AND report_seq = ?3",
				2, h->id, "issued");
	int same = 0;
	if (!st)
		return 0;
	sqlite3_bind_int64(st, 3, d->seq);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *doc = (const char *)sqlite3_column_text(st, 5);
		const char *amt = (const char *)sqlite3_column_text(st, 1);
		uint64_t amount;
		if (doc) {
			same = same_text(doc, d->text, d->tlen);
		} else {
			same = amt && nn_pay_amount_parse(amt, &amount, NULL) == 0 &&
			       amount == d->amount && sqlite3_column_int64(st, 6) == d->ts &&
			       sqlite3_column_bytes(st, 12) == 64 &&
			       !memcmp(sqlite3_column_blob(st, 12), d->sigbin, 64);
			for (int i = 0; same && i < 5; i++)
				same = (uint64_t)sqlite3_column_int64(st, 7 + i) == (&d->usage.cpu_ms)[i];
		}
		if (same) {
			char *v = voucher_row_text(st, 0, h->id, &h->t);
			if (v)
				nn_buf_adds(out, v);
			same = v != NULL;
			free(v);
		}
	}
	unprep(p, st);
	return same;
}

/* The newest report answered for contract id (by the newest voucher
 * issued) and its usage (seq 0, no usage when none). */
static int newest_report(struct nn_pay *p, const char *id, int64_t *seq, struct nn_pay_usage *u,
			 char *err)
{
	sqlite3_stmt *st = prep(p, err, "SELECT report_seq, cpu_ms, mem_mib_ms, wall_ms, allocations, "
				"deployments FROM vouchers WHERE contract = ?1 AND role = ?2 "
				"ORDER BY seq DESC LIMIT 1", 2, id, "issued");
	int s, rc = 0;
	*seq = 0;
	memset(u, 0, sizeof *u);
	if (!st)
		return NN_PAY_ESTORE;
	s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		for (int i = 0; i < 6; i++)
			if (sqlite3_column_type(st, i) != SQLITE_INTEGER || sqlite3_column_int64(st, i) < 0)
				rc = fail(NN_PAY_ESTORE, err, "ledger: corrupt usage report answered by the "
					  "newest voucher of contract %s", id);
		for (int i = 0; i < 5; i++)
			(&u->cpu_ms)[i] = (uint64_t)sqlite3_column_int64(st, 1 + i);
	} else if (s != SQLITE_DONE) {
		rc = dberr(p, err);
	}
	unprep(p, st);
	return rc;
}

/* Check a report read into d and answer it: the voucher's text appended to
 * out (nothing on failure).  Refusals are logged. */
static int answer(struct nn_pay *p, struct nn_pay_doc *d, struct nn_buf *out, char *err)
{
	struct nn_pay_hot *h = &p->hot;
	const struct nn_pay_usage *u = &d->usage;
	struct nn_pay_usage last = { 0 };
	const char *contract = d->contract, *kind = "usage";
	uint64_t amount, vamount;
	int64_t last_seq, vseq, now;
	uint8_t vsig[64];
	size_t mark = out->len;
	int rc;

	if ((rc = begin_step(p, 1, err)) < 0)
		return rc;
	if ((rc = hot_load(p, h, contract, err)) < 0) {
		kind = "unknown_contract";
		goto refuse;
	}
	if (strcmp(h->role, "requester")) {
		rc = fail(NN_PAY_EREFUSED, err, "contract %s: this node is not its requester", contract);
		goto refuse;
	}
	if (strcmp(d->requester, h->t.requester) || strcmp(d->provider, h->t.provider)) {
		rc = fail(NN_PAY_EREFUSED, err, "usage report names other parties than contract %s",
			  contract);
		goto refuse;
	}
	if ((rc = still_open(p, h, 1, err)) < 0)
		goto refuse;
	if (!sig_ok_n(h->t.provider_pk, d->sig, d->siglen, d->msg, d->sigbin)) {
		rc = fail(NN_PAY_EREFUSED, err, "usage report %lld for contract %s: bad signature",
			  (long long)d->seq, contract);
		kind = "bad_signature";
		goto refuse;
	}
	last_seq = h->rep_seq;
	if (last_seq >= 0)
		memcpy(&last.cpu_ms, h->rep_usage, sizeof h->rep_usage);
	else if ((rc = newest_report(p, contract, &last_seq, &last, err)) < 0)
		goto out;
	if (d->seq <= last_seq) {
		if (answered_before(p, h, d, out)) {
			/* a retransmission: the same answer again */
			rollback(p);
			return 0;
		}
		rc = fail(NN_PAY_EREFUSED, err, "replayed usage report: seq %lld is not above %lld, "
			  "the newest answered for contract %s", (long long)d->seq, (long long)last_seq,
			  contract);
		kind = "replay";
		goto refuse;
	}
	for (int i = 0; i < 5; i++)
		if ((&u->cpu_ms)[i] < (&last.cpu_ms)[i]) {
			rc = fail(NN_PAY_EREFUSED, err, "usage report %lld: usage.%s went back from "
				  "%llu to %llu", (long long)d->seq, usage_keys[i],
				  (unsigned long long)(&last.cpu_ms)[i],
				  (unsigned long long)(&u->cpu_ms)[i]);
			goto refuse;
		}
	if (u->wall_ms > (uint64_t)h->t.duration_s * 1000) {
		rc = fail(NN_PAY_EREFUSED, err, "usage report %lld: %llu ms of wall time is over the "
			  "contract's duration of %llds", (long long)d->seq,
			  (unsigned long long)u->wall_ms, (long long)h->t.duration_s);
		kind = "over_duration";
		goto refuse;
	}
	if ((rc = nn_pay_usage_amount(&h->t, u, &amount, err)) < 0) {
		kind = "over_cap";
		goto refuse;
	}
	if (amount != d->amount) {
		rc = fail(NN_PAY_EREFUSED, err, "usage report %lld claims %llu but its usage at the "
			  "contract's rates comes to %llu", (long long)d->seq,
			  (unsigned long long)d->amount, (unsigned long long)amount);
		goto refuse;
	}
	if (amount > h->t.cap) {
		rc = fail(NN_PAY_EREFUSED, err, "usage report %lld: amount %llu is over the "
			  "contract's cap of %llu", (long long)d->seq, (unsigned long long)amount,
			  (unsigned long long)h->t.cap);
		kind = "over_cap";
		goto refuse;
	}
	vseq = h->v_seq;
	vamount = h->v_amount;
	if (vseq < 0 && (rc = newest_voucher(p, contract, "issued", &vseq, &vamount, NULL, NULL, err)) < 0)
		goto out;
	if (amount < vamount) {
		rc = fail(NN_PAY_EREFUSED, err, "usage report %lld is worth %llu, less than the "
			  "%llu already vouched", (long long)d->seq, (unsigned long long)amount,
			  (unsigned long long)vamount);
		goto refuse;
	}
	now = p->now();
	voucher_write(p, h, vseq + 1, amount, now, d->msg, vsig, out);
	if ((rc = writes(p, strcmp(h->state, "active") ? 2 : 1, err)) < 0 ||
	    (rc = insert_voucher(p, contract, "issued", vseq + 1, amount, d, now, vsig, NULL, 0,
				 err)) < 0 ||
	    (strcmp(h->state, "active") && (rc = activate(p, contract, err)) < 0) ||
	    (rc = commit(p, err)) < 0)
		goto out;
	/* committed (or released into the batch): what the ledger now holds */
	if (h->id[0]) {
		snprintf(h->state, sizeof h->state, "active");
		h->rep_seq = d->seq;
		memcpy(h->rep_usage, &u->cpu_ms, sizeof h->rep_usage);
		h->v_seq = vseq + 1;
		h->v_amount = amount;
	}
	return 0;
refuse:
	refuse_logged(p, rc, contract, kind, err);
out:
	if (rc < 0) {
		rollback(p);
		out->len = mark;
		if (out->data)
			out->data[mark] = '\0';
	}
	return rc;
}

/* The full reader and answer for a parsed report (consumed): the voucher's
 * text appended to out. */
static int answer_jv(struct nn_pay *p, jv report, struct nn_buf *out, char *err)
{
	struct nn_pay_doc d = { .msg = &p->msg };
	int rc = nn_pay_doc_read(NN_PAY_DOC_USAGE, report, &d, err);
	if (rc < 0)
		rc = refuse_logged(p, rc, d.contract[0] ? d.contract : NULL, "usage", err);
	else
		rc = answer(p, &d, out, err);
	nn_pay_doc_release(&d);
	jv_free(report);
	return rc;
}

int nn_pay_usage_answer(struct nn_pay *p, jv report, jv *out, char *err)
{
	struct nn_buf b = NN_BUF_INIT;
	struct nn_jscan j;
	int rc;
	*out = jv_invalid();
	if ((rc = answer_jv(p, report, &b, err)) == 0) {
		*out = nn_jscan_object(b.data, b.len, &j) == 0 ? nn_jscan_jv(&j) :
			nn_json_parse(b.data, b.len, err);
		if (!jv_is_valid(*out))
			rc = fail(NN_PAY_ESTORE, err, "ledger: corrupt voucher");
	}
	nn_buf_release(&b);
	return rc;
}

int nn_pay_usage_answer_text(struct nn_pay *p, const char *s, size_t len, struct nn_buf *out,
			     char *err)
{
	struct nn_pay_doc d = { .msg = &p->msg };
	jv report;
	if (nn_pay_doc_scan(NN_PAY_DOC_USAGE, s, len, &d))
		return answer(p, &d, out, err);
	report = nn_json_parse(s, len, err);
	if (!jv_is_valid(report))
		return NN_PAY_EBAD;
	return answer_jv(p, report, out, err);
}

/* The checks of a voucher read into d against the ledger (h: the hot
 * contract inside a transaction, else a caller's empty one); *kind names
 * the refusal for the log. */
static int voucher_check(struct nn_pay *p, struct nn_pay_doc *d, const char *expect,
			 struct nn_pay_hot *h, struct nn_pay_voucher_info *info, const char **kind,
			 char *err)
{
	int64_t seq;
	uint64_t amount;
	int rc;

	*kind = "voucher";
	snprintf(info->contract, sizeof info->contract, "%s", d->contract);
	info->seq = d->seq;
	info->amount = d->amount;
	if (expect && strcmp(expect, d->contract)) {
		*kind = "other_contract";
		return fail(NN_PAY_EREFUSED, err, "voucher is for contract %s, not %s", d->contract,
			    expect);
	}
	if (strcmp(d->provider, p->key.did)) {
		*kind = "other_provider";
		return fail(NN_PAY_EREFUSED, err, "voucher names provider %s, not this node (%s)",
			    d->provider, p->key.did);
	}
	if ((rc = hot_load(p, h, d->contract, err)) < 0) {
		*kind = "unknown_contract";
		return rc;
	}
	if (strcmp(h->role, "provider")) {
		*kind = "other_provider";
		return fail(NN_PAY_EREFUSED, err, "contract %s: this node is not its provider", h->id);
	}
	if (strcmp(d->requester, h->t.requester))
		return fail(NN_PAY_EREFUSED, err, "voucher names requester %s; contract %s is with %s",
			    d->requester, h->id, h->t.requester);
	if ((rc = still_open(p, h, 0, err)) < 0)
		return rc;
	if (!sig_ok_n(h->t.requester_pk, d->sig, d->siglen, d->msg, d->sigbin)) {
		*kind = "bad_signature";
		return fail(NN_PAY_EREFUSED, err, "voucher %lld for contract %s: bad signature "
			    "(not signed by its requester %s)", (long long)d->seq, h->id, h->t.requester);
	}
	if (d->amount > h->t.cap) {
		*kind = "over_cap";
		return fail(NN_PAY_EREFUSED, err, "voucher %lld: amount %llu is over the contract's "
			    "cap of %llu", (long long)d->seq, (unsigned long long)d->amount,
			    (unsigned long long)h->t.cap);
	}
	seq = h->v_seq;
	amount = h->v_amount;
	if (seq < 0 && (rc = newest_voucher(p, d->contract, "received", &seq, &amount, NULL, NULL, err)) < 0)
		return rc;
	if (d->seq == seq) {
		char *doc = stored_voucher(p, h, "received", seq);
		int same = same_text(doc, d->text, d->tlen);
		free(doc);
		*kind = "replay";
		return fail(NN_PAY_EREFUSED, err, same ?
			    "replayed voucher: seq %lld of contract %s is already accepted" :
			    "voucher seq %lld of contract %s is already taken by another voucher",
			    (long long)d->seq, d->contract);
	}
	if (d->seq < seq) {
		*kind = "lower_seq";
		return fail(NN_PAY_EREFUSED, err, "voucher seq %lld is below the newest accepted "
			    "(%lld) for contract %s", (long long)d->seq, (long long)seq, d->contract);
	}
	if (d->amount < amount) {
		*kind = "lower_amount";
		return fail(NN_PAY_EREFUSED, err, "voucher %lld: cumulative amount %llu is below "
			    "the newest accepted (%llu) for contract %s", (long long)d->seq,
			    (unsigned long long)d->amount, (unsigned long long)amount, d->contract);
	}
	return 0;
}

/* Check a voucher read into d, and store it when store is set (atomically:
 * concurrent accepters cannot both store the same seq; refusals logged). */
static int voucher_doc(struct nn_pay *p, struct nn_pay_doc *d, int store, const char *expect,
		       struct nn_pay_voucher_info *info, char *err)
{
	struct nn_pay_hot cold = { .id = "" };
	struct nn_pay_hot *h = &p->hot;
	const char *kind;
	int rc, rewrites;

	if (!store)
		return voucher_check(p, d, expect, &cold, info, &kind, err);
	if ((rc = begin_step(p, 1, err)) < 0)
		return rc;
	if ((rc = voucher_check(p, d, expect, h, info, &kind, err)) < 0)
		return refuse_logged(p, rc, info->contract[0] ? info->contract : NULL, kind, err);
	/* kept as its fields and signature when they write its text again,
	 * else as its text */
	voucher_msg(&p->scratch, h->id, &h->t, d->seq, d->amount, d->ts);
	rewrites = p->scratch.len == d->msg->len && !memcmp(p->scratch.data, d->msg->data, d->msg->len);
	if ((rc = writes(p, strcmp(h->state, "active") ? 2 : 1, err)) < 0 ||
	    (rc = insert_voucher(p, d->contract, "received", d->seq, d->amount, NULL, d->ts, d->sigbin,
				 rewrites ? NULL : d->text, d->tlen, err)) < 0 ||
	    (strcmp(h->state, "active") && (rc = activate(p, d->contract, err)) < 0) ||
	    (rc = commit(p, err)) < 0) {
		rollback(p);
		return rc;
	}
	if (h->id[0]) {
		snprintf(h->state, sizeof h->state, "active");
		h->v_seq = d->seq;
		h->v_amount = d->amount;
	}
	return 0;
}

/* The full reader and voucher_doc for a parsed voucher (borrowed).  A
 * malformed one is logged when it was to be stored. */
static int voucher_jv(struct nn_pay *p, jv v, int store, const char *expect,
		      struct nn_pay_voucher_info *info, char *err)
{
	struct nn_pay_doc d = { .msg = &p->msg };
	struct nn_pay_voucher_info tmp;
	int rc;
	if (!info)
		info = &tmp;
	memset(info, 0, sizeof *info);
	rc = nn_pay_doc_read(NN_PAY_DOC_VOUCHER, v, &d, err);
	if (rc < 0 && store)
		rc = refuse_logged(p, rc, NULL, "voucher", err);
	else if (rc == 0)
		rc = voucher_doc(p, &d, store, expect, info, err);
	nn_pay_doc_release(&d);
	return rc;
}

int nn_pay_voucher_check(struct nn_pay *p, jv v, const char *expect_contract,
			 struct nn_pay_voucher_info *info, char *err)
{
	return voucher_jv(p, v, 0, expect_contract, info, err);
}

int nn_pay_voucher_accept(struct nn_pay *p, jv v, const char *expect_contract,
			  struct nn_pay_voucher_info *info, char *err)
{
	return voucher_jv(p, v, 1, expect_contract, info, err);
}

int nn_pay_voucher_text(struct nn_pay *p, const char *s, size_t len, int store,
			const char *expect_contract, struct nn_pay_voucher_info *info, char *err)
{
	struct nn_pay_doc d = { .msg = &p->msg };
	struct nn_pay_voucher_info tmp;
	jv v;
	int rc;
	if (!info)
		info = &tmp;
	memset(info, 0, sizeof *info);
	if (nn_pay_doc_scan(NN_PAY_DOC_VOUCHER, s, len, &d))
		return voucher_doc(p, &d, store, expect_contract, info, err);
	v = nn_json_parse(s, len, err);
	if (!jv_is_valid(v))
		return NN_PAY_EBAD;
	rc = voucher_jv(p, v, store, expect_contract, info, err);
	jv_free(v);
	return rc;
}

int nn_pay_handle(struct nn_pay *p, const char *be, jv body, jv *reply, char *err)
{
	struct nn_pay_voucher_info info;
	int rc;
	*reply = jv_invalid();
	if (!strcmp(be, "/pay/usage"))
		return nn_pay_usage_answer(p, jv_copy(body), reply, err);
	if (!strcmp(be, "/pay/voucher")) {
		if ((rc = nn_pay_voucher_accept(p, body, NULL, &info, err)) < 0)
			return rc;
		*reply = JV_OBJECT(jv_string("contract"), jv_string(info.contract),
				   jv_string("seq"), jv_number((double)info.seq),
				   jv_string("amount"), amount_jv(info.amount));
		return 0;
	}
	return fail(NN_PAY_EBAD, err, "unknown behavior '%s'", be);
}

/* ---- the ledger ---- */

static const char *peer_of(const struct row *r)
{
	return r->role[0] == 'r' ? r->t.provider : r->t.requester;
}

/* Rows of contracts selected by sql, one callback per contract. */
static int each_contract(struct nn_pay *p, const char *sql, const char *arg,
			 int (*fn)(struct nn_pay *, struct row *, void *, char *), void *ctx, char *err)
{
	jv ids;
	int rc = contract_ids(p, sql, arg, &ids, err);
	if (rc < 0)
		return rc;
	for (int i = 0; rc == 0 && i < jv_array_length(jv_copy(ids)); i++) {
		jv id = jv_array_get(jv_copy(ids), i);
		struct row r;
		rc = load_contract(p, jv_string_value(id), &r, err);
		jv_free(id);
		if (rc < 0)
			break;
		rc = fn(p, &r, ctx, err);
		row_release(&r);
	}
	jv_free(ids);
	return rc;
}

static int ledger_row(struct nn_pay *p, struct row *r, void *ctx, char *err)
{
	jv *out = ctx, o;
	int64_t seq;
	uint64_t amount;
	const char *cur;
	int rc = newest_voucher(p, r->id, voucher_role(r->role), &seq, &amount, NULL, NULL, err);
	if (rc < 0)
		return rc;
	nn_json_get_str(r->doc, "currency", &cur, NULL);
	o = JV_OBJECT(jv_string("contract"), jv_string(r->id), jv_string("role"), jv_string(r->role),
		      jv_string("peer"), jv_string(peer_of(r)), jv_string("state"), jv_string(r->state),
		      jv_string("seq"), jv_number((double)seq), jv_string("amount"), amount_jv(amount),
		      jv_string("cap"), amount_jv(r->t.cap), jv_string("currency"), jv_string(cur));
	*out = jv_array_append(*out, o);
	return 0;
}

int nn_pay_ledger(struct nn_pay *p, int all, jv *out, char *err)
{
	int rc;
	*out = jv_array();
	rc = each_contract(p, all ? "SELECT id FROM contracts ORDER BY updated, id" :
			   "SELECT id FROM contracts WHERE state <> 'settled' ORDER BY updated, id",
			   NULL, ledger_row, out, err);
	if (rc < 0) {
		jv_free(*out);
		*out = jv_invalid();
	}
	return rc;
}

int nn_pay_balance(struct nn_pay *p, jv *out, char *err)
{
	jv rows;
	int rc = nn_pay_ledger(p, 0, &rows, err);
	*out = jv_invalid();
	if (rc < 0)
		return rc;
	/* peers in order of first appearance; sums checked for overflow */
	jv acc = jv_array();
	for (int i = 0; i < jv_array_length(jv_copy(rows)); i++) {
		jv row = jv_array_get(jv_copy(rows), i);
		const char *peer, *cur, *amt, *role;
		uint64_t a, cur_v;
		int j, n = jv_array_length(jv_copy(acc));
		nn_json_get_str(row, "peer", &peer, NULL);
		nn_json_get_str(row, "currency", &cur, NULL);
		nn_json_get_str(row, "amount", &amt, NULL);
		nn_json_get_str(row, "role", &role, NULL);
		nn_pay_amount_parse(amt, &a, NULL);
		const char *field = role[0] == 'p' ? "owed_to_me" : "owed_by_me";
		for (j = 0; j < n; j++) {
			jv e = jv_array_get(jv_copy(acc), j);
			const char *ep, *ec;
			nn_json_get_str(e, "peer", &ep, NULL);
			nn_json_get_str(e, "currency", &ec, NULL);
			int match = !strcmp(ep, peer) && !strcmp(ec, cur);
			jv_free(e);
			if (match)
				break;
		}
		if (j == n)
			acc = jv_array_append(acc, JV_OBJECT(jv_string("peer"), jv_string(peer),
				jv_string("currency"), jv_string(cur), jv_string("owed_to_me"),
				jv_string("0"), jv_string("owed_by_me"), jv_string("0"),
				jv_string("contracts"), jv_number(0)));
		jv e = jv_array_get(jv_copy(acc), j);
		const char *cv;
		nn_json_get_str(e, field, &cv, NULL);
		nn_pay_amount_parse(cv, &cur_v, NULL);
		if (cur_v > UINT64_MAX - a) {
			jv_free(e);
			jv_free(row);
			jv_free(acc);
			jv_free(rows);
			return fail(NN_PAY_EREFUSED, err, "balance with %s overflows 2^64-1", peer);
		}
		int64_t nc;
		nn_json_get_int(e, "contracts", &nc, NULL);
		e = jv_object_set(e, jv_string(field), amount_jv(cur_v + a));
		e = jv_object_set(e, jv_string("contracts"), jv_number((double)(nc + 1)));
		acc = jv_array_set(acc, j, e);
		jv_free(row);
	}
	jv_free(rows);
	*out = acc;
	return 0;
}

struct settle_ctx {
	jv out;
	int mark;
};

static int settle_row(struct nn_pay *p, struct row *r, void *ctx, char *err)
{
	struct settle_ctx *c = ctx;
	int64_t seq;
	uint64_t amount;
	char *doc;
	const char *cur;
	int rc = newest_voucher(p, r->id, "received", &seq, &amount, &r->t, &doc, err);
	if (rc < 0)
		return rc;
	if (!doc)
		return 0;
	nn_json_get_str(r->doc, "currency", &cur, NULL);
	jv vd = nn_json_parse(doc, strlen(doc), NULL);
	free(doc);
	jv o = JV_OBJECT(jv_string("contract"), jv_string(r->id),
			 jv_string("requester"), jv_string(r->t.requester),
			 jv_string("provider"), jv_string(r->t.provider),
			 jv_string("amount"), amount_jv(amount), jv_string("currency"), jv_string(cur),
			 jv_string("seq"), jv_number((double)seq), jv_string("state"), jv_string(r->state),
			 jv_string("voucher"), vd);
	o = jv_object_set(o, jv_string("contract_doc"), jv_copy(r->doc));
	c->out = jv_array_append(c->out, o);
	if (c->mark && (!strcmp(r->state, "completed") || !strcmp(r->state, "terminated"))) {
		char now[24];
		hot_forget(p);
		snprintf(now, sizeof now, "%lld", (long long)p->now());
		sqlite3_stmt *st = prep(p, err, "UPDATE contracts SET state = 'settled', updated = "
					"CAST(?2 AS INTEGER) WHERE id = ?1", 2, r->id, now);
		if (!st)
			return NN_PAY_ESTORE;
		return run_done(p, st, err);
	}
	return 0;
}

int nn_pay_settle_export(struct nn_pay *p, int all, int mark, jv *out, char *err)
{
	struct settle_ctx c = { jv_array(), mark };
	int rc;
	*out = jv_invalid();
	if ((rc = begin(p, err)) < 0) {
		jv_free(c.out);
		return rc;
	}
	rc = each_contract(p, all ?
			   "SELECT id FROM contracts WHERE role = 'provider' AND state IN "
			   "('accepted','active','completed','terminated') ORDER BY updated, id" :
			   "SELECT id FROM contracts WHERE role = 'provider' AND state IN "
			   "('completed','terminated') ORDER BY updated, id", NULL, settle_row, &c, err);
	if (rc == 0)
		rc = commit(p, err);
	if (rc < 0) {
		rollback(p);
		jv_free(c.out);
		return rc;
	}
	*out = c.out;
	return 0;
}

int nn_pay_refusals(struct nn_pay *p, jv *out, char *err)
{
	sqlite3_stmt *st = prep(p, err, "SELECT ts, contract, kind, message FROM refusals ORDER BY seq", 0);
	int s;
	*out = jv_invalid();
	if (!st)
		return NN_PAY_ESTORE;
	*out = jv_array();
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *c = (const char *)sqlite3_column_text(st, 1);
		*out = jv_array_append(*out, JV_OBJECT(
			jv_string("ts"), jv_number((double)sqlite3_column_int64(st, 0)),
			jv_string("contract"), c ? jv_string(c) : jv_null(),
			jv_string("kind"), jv_string((const char *)sqlite3_column_text(st, 2)),
			jv_string("message"), jv_string((const char *)sqlite3_column_text(st, 3))));
	}
	unprep(p, st);
	if (s != SQLITE_DONE) {
		jv_free(*out);
		*out = jv_invalid();
		return dberr(p, err);
	}
	return 0;
}

static int verify_row(struct nn_pay *p, struct row *r, void *ctx, char *err)
{
	struct nn_pay_terms t;
	const char *vrole = voucher_role(r->role);
	sqlite3_stmt *st;
	int64_t prev_seq = 0, n = 0;
	uint64_t prev_amount = 0;
	int s, rc;

	if ((rc = nn_pay_contract_check(r->doc, &t, err)) < 0)
		return NN_PAY_EREFUSED;
	if (strcmp(r->state, "draft") && strcmp(r->state, "proposed") &&
	    (!t.signed_requester || !t.signed_provider) &&
	    !(!strcmp(r->state, "terminated") && (t.signed_requester || t.signed_provider)))
		return fail(NN_PAY_EREFUSED, err, "contract %s is %s but not signed by both", r->id,
			    r->state);
	/* each voucher's text, as the ledger gives it out (its doc, or written
	 * from its fields), read and checked as a voucher received */
	st = prep(p, err, "SELECT seq, amount, doc_ts, sig, doc FROM vouchers WHERE contract = ?1 "
		  "AND role = ?2 ORDER BY seq", 2, r->id, vrole);
	if (!st)
		return NN_PAY_ESTORE;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		uint64_t amount;
		char *text = voucher_row_text(st, 0, r->id, &t);
		jv d = text ? nn_json_parse(text, strlen(text), NULL) : jv_invalid();
		struct nn_pay_doc h = { .msg = &p->msg };
		free(text);
		n++;
		rc = 0;
		if (nn_pay_amount_parse((const char *)sqlite3_column_text(st, 1), &amount, NULL) < 0 ||
		    !jv_is_valid(d) || nn_pay_doc_read(NN_PAY_DOC_VOUCHER, d, &h, NULL) < 0 ||
		    h.seq != seq || h.amount != amount || strcmp(h.contract, r->id))
			rc = fail(NN_PAY_EREFUSED, err, "contract %s: %s voucher %lld does not match "
				  "its row", r->id, vrole, (long long)seq);
		else if (!sig_ok_n(t.requester_pk, h.sig, h.siglen, h.msg, h.sigbin))
			rc = fail(NN_PAY_EREFUSED, err, "contract %s: %s voucher %lld: bad signature",
				  r->id, vrole, (long long)seq);
		else if (seq <= prev_seq || (vrole[0] == 'i' && seq != prev_seq + 1))
			rc = fail(NN_PAY_EREFUSED, err, "contract %s: %s voucher seq %lld follows %lld",
				  r->id, vrole, (long long)seq, (long long)prev_seq);
		else if (amount < prev_amount)
			rc = fail(NN_PAY_EREFUSED, err, "contract %s: %s voucher %lld: amount %llu "
				  "below the previous %llu", r->id, vrole, (long long)seq,
				  (unsigned long long)amount, (unsigned long long)prev_amount);
		else if (amount > t.cap)
			rc = fail(NN_PAY_EREFUSED, err, "contract %s: %s voucher %lld over the cap",
				  r->id, vrole, (long long)seq);
		nn_pay_doc_release(&h);
		jv_free(d);
		if (rc < 0) {
			unprep(p, st);
			return rc;
		}
		prev_seq = seq;
		prev_amount = amount;
	}
	unprep(p, st);
	if (s != SQLITE_DONE)
		return dberr(p, err);
	*(int64_t *)ctx += n;
	return 0;
}

int nn_pay_ledger_verify(struct nn_pay *p, char *err)
{
	int64_t n = 0;
	return each_contract(p, "SELECT id FROM contracts ORDER BY id", NULL, verify_row, &n, err);
}
