/*
 * nunet-pay — contracts, metering, vouchers and the ledger, offline: the
 * same library calls (lib/pay.h) the node makes for its /pay/usage and
 * /pay/voucher behaviors, driven from the shell.  This file parses options,
 * reads documents from files or stdin through capped readers, prints JSON
 * lines and maps failures to exit codes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "config.h"
#include "json.h"
#include "key.h"
#include "lines.h"
#include "log.h"
#include "pay.h"
#include "util.h"

static const char usage_text[] =
	"usage: nunet-pay [--home DIR] contract propose [--draft] [--terms FILE]\n"
	"                 [--requester DID] [--provider DID] [--cpu-rate AMOUNT]\n"
	"                 [--gib-rate AMOUNT] [--alloc-rate AMOUNT] [--deploy-rate AMOUNT]\n"
	"                 [--cap AMOUNT] [--currency NAME] [--duration TIME] [--notice TIME] [ID]\n"
	"       nunet-pay [--home DIR] contract accept FILE | -\n"
	"       nunet-pay [--home DIR] contract show | terminate | complete | settle ID\n"
	"       nunet-pay [--home DIR] contract list [--state STATE]\n"
	"       nunet-pay [--home DIR] usage record CONTRACT --alloc ID [--deployment ID]\n"
	"                 [--cpu-seconds N] [--gib-seconds N] [--wall-seconds N]\n"
	"                 [--cpu-ms N] [--mem-mib-ms N] [--wall-ms N]\n"
	"       nunet-pay [--home DIR] usage report CONTRACT\n"
	"       nunet-pay [--home DIR] usage answer [FILE | -]\n"
	"       nunet-pay [--home DIR] voucher verify | accept [--contract ID] [FILE | -]\n"
	"       nunet-pay [--home DIR] ledger [--all] [--verify]\n"
	"       nunet-pay [--home DIR] balance\n"
	"       nunet-pay [--home DIR] settle --export [--all] [--mark]\n"
	"       nunet-pay [--home DIR] refusals\n"
	"       nunet-pay -h | --help | --version\n";

#define DOC_MAX (1024 * 1024)

static const char *home_opt;

static void usage(int code)
{
	fputs(usage_text, code ? stderr : stdout);
	exit(code);
}

static void print_jv(jv v)	/* consumes */
{
	char *s = nn_json_dump(v);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	jv_free(v);
}

static void print_each(jv arr)	/* consumes */
{
	for (int i = 0; i < jv_array_length(jv_copy(arr)); i++)
		print_jv(jv_array_get(jv_copy(arr), i));
	jv_free(arr);
}

static void check(int rc, const char *err)
{
	if (rc < 0)
		nn_die(nn_pay_exit_code(rc), "%s", err);
}

/* Open the ledger of $NUNET_HOME with the node's key. */
static void pay_open(struct nn_pay *p)
{
	char err[NN_ERRLEN], *home, *keypath, *dbpath;
	const char *pass = getenv("NUNET_PASSPHRASE");
	struct nn_key k;
	if (!(home = nn_home(home_opt, err)))
		nn_die(NN_EX_CONFIG, "%s", err);
	keypath = nn_home_file(home, "key");
	dbpath = nn_home_file(home, "ledger.db");
	if (nn_key_load(&k, keypath, pass && *pass ? pass : NULL, err) < 0)
		nn_die(NN_EX_CONFIG, "%s (create an identity with nunet-node init)", err);
	if (nn_pay_open(p, dbpath, &k, err) < 0)
		nn_die(NN_EX_IOERR, "%s", err);
	nn_key_clear(&k);
	free(home);
	free(keypath);
	free(dbpath);
}

/* A whole document from FILE or "-" (stdin), capped. */
static jv read_doc(const char *path)
{
	char err[NN_ERRLEN];
	size_t len;
	char *text = nn_read_file(!strcmp(path, "-") ? "/dev/stdin" : path, DOC_MAX, &len, err);
	jv v;
	if (!text)
		nn_die(NN_EX_IOERR, "%s", err);
	v = nn_json_parse(text, len, err);
	free(text);
	if (!jv_is_valid(v))
		nn_die(NN_EX_DATAERR, "%s: %s", path, err);
	return v;
}

static int open_input(const char *path)
{
	int fd;
	if (!path || !strcmp(path, "-"))
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		nn_die(NN_EX_IOERR, "cannot open '%s': %s", path, strerror(errno));
	return fd;
}

/*
 * Run fn over each JSON line of path (or stdin); each failure is one line on
 * stderr and processing goes on.  Lines are taken in batches (what is
 * buffered, at most BATCH_MAX) that commit together: results are printed
 * (in one write) only once their batch is durable, and no transaction stays
 * open while waiting for input.  Read-only runs (writes == 0) open no batch.
 * fn gets each line's text (the library reads it, strictly or in full) and
 * appends its result line to out.
 * Returns the exit code of the first failure (0 when all passed).
 */
#define BATCH_MAX 256
typedef int line_fn(struct nn_pay *, const char *, size_t, void *, struct nn_buf *, char *);

static void batch_flush(struct nn_pay *p, struct nn_buf *pending)
{
	char err[NN_ERRLEN];
	if (p->batch && nn_pay_batch_commit(p, err) < 0)
		nn_die(NN_EX_IOERR, "%s", err);
	if (pending->len && (fwrite(pending->data, 1, pending->len, stdout) != pending->len ||
			     fflush(stdout) != 0))
		nn_die(NN_EX_IOERR, "write: %s", strerror(errno));
	nn_buf_reset(pending);
}

static int each_line(const char *path, line_fn *fn, struct nn_pay *p, void *ctx, int writes)
{
	struct nn_lines l;
	struct nn_buf pending = NN_BUF_INIT;
	char err[NN_ERRLEN];
	const char *line;
	size_t len;
	int fd = open_input(path), code, first = 0, eof = 0, n = 0;

	nn_lines_init(&l, DOC_MAX);
	for (;;) {
		if (n >= BATCH_MAX) {
			batch_flush(p, &pending);
			n = 0;
		}
		int r = nn_jsonl_next_text(&l, &line, &len, &code, err);
		if (r == NN_JSONL_NONE) {
			if (n) {
				batch_flush(p, &pending);
				n = 0;
			}
			if (eof)
				break;
			ssize_t got = nn_lines_read_fd(&l, fd);
			if (got < 0) {
				if (errno == EINTR)
					continue;
				nn_die(NN_EX_IOERR, "read: %s", strerror(errno));
			}
			if (got == 0) {
				eof = 1;
				if (nn_lines_pending(&l))
					nn_lines_feed(&l, "\n", 1);
			}
			continue;
		}
		if (r == NN_JSONL_ERROR) {
			nn_error("%s", err);
			if (!first)
				first = NN_EX_DATAERR;
			continue;
		}
		if (!n++ && writes && nn_pay_batch_begin(p, err) < 0)
			nn_die(NN_EX_IOERR, "%s", err);
		size_t mark = pending.len;
		int rc = fn(p, line, len, ctx, &pending, err);
		if (rc < 0) {
			if (rc == NN_PAY_ESTORE)
				nn_die(NN_EX_IOERR, "line %lu: %s", l.lineno, err);
			nn_error("line %lu: %s", l.lineno, err);
			if (!first)
				first = nn_pay_exit_code(rc);
		} else if (pending.len > mark) {
			nn_buf_addc(&pending, '\n');
		}
	}
	if (n)
		batch_flush(p, &pending);
	nn_buf_release(&pending);
	nn_lines_release(&l);
	if (fd > 0)
		close(fd);
	return first;
}

/* ---- contract ---- */

static void set_amount(jv *obj, const char *key, const char *val, const char *opt)
{
	char err[NN_ERRLEN];
	uint64_t a;
	if (nn_pay_amount_parse(val, &a, err) < 0)
		nn_die(NN_EX_DATAERR, "--%s: %s", opt, err);
	*obj = jv_object_set(*obj, jv_string(key), jv_string(val));
}

static int64_t seconds_opt(const char *val, const char *opt, int64_t min_ms)
{
	int64_t ms;
	if (nn_parse_duration_ms(val, &ms) < 0 || ms < min_ms)
		nn_die(NN_EX_DATAERR, "--%s: '%s' is not a duration of at least %llds (30s, 5m, 2h)",
		       opt, val, (long long)min_ms / 1000);
	return ms / 1000;
}

static int contract_propose(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "draft", no_argument, NULL, 'D' },
		{ "terms", required_argument, NULL, 'T' },
		{ "requester", required_argument, NULL, 'r' },
		{ "provider", required_argument, NULL, 'p' },
		{ "cpu-rate", required_argument, NULL, 'c' },
		{ "gib-rate", required_argument, NULL, 'g' },
		{ "alloc-rate", required_argument, NULL, 'a' },
		{ "deploy-rate", required_argument, NULL, 'd' },
		{ "cap", required_argument, NULL, 'C' },
		{ "currency", required_argument, NULL, 'u' },
		{ "duration", required_argument, NULL, 't' },
		{ "notice", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char err[NN_ERRLEN];
	struct nn_pay p;
	jv terms = jv_null(), rates = jv_object(), out;
	int c, draft = 0, rc, have_rates = 0;
	int64_t notice = -1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'D': draft = 1; break;
		case 'T':
			jv_free(terms);
			terms = read_doc(optarg);
			if (jv_get_kind(terms) != JV_KIND_OBJECT)
				nn_die(NN_EX_DATAERR, "%s: expected a JSON object", optarg);
			break;
		case 'r': case 'p': case 'u':
			break;	/* second pass, after --terms */
		case 'c': set_amount(&rates, "cpu_second", optarg, "cpu-rate"); have_rates = 1; break;
		case 'g': set_amount(&rates, "gib_second", optarg, "gib-rate"); have_rates = 1; break;
		case 'a': set_amount(&rates, "allocation", optarg, "alloc-rate"); have_rates = 1; break;
		case 'd': set_amount(&rates, "deployment", optarg, "deploy-rate"); have_rates = 1; break;
		case 'C': case 't':
			break;
		case 'n': notice = seconds_opt(optarg, "notice", 0); break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind < argc - 1)
		usage(NN_EX_USAGE);
	pay_open(&p);
	if (optind == argc - 1) {
		if (jv_get_kind(terms) != JV_KIND_NULL || have_rates || draft)
			usage(NN_EX_USAGE);
		jv_free(terms);
		jv_free(rates);
		rc = nn_pay_contract_propose_draft(&p, argv[optind], &out, err);
		check(rc, err);
		print_jv(out);
		nn_pay_close(&p);
		return 0;
	}
	if (jv_get_kind(terms) == JV_KIND_NULL) {
		jv_free(terms);
		terms = jv_object();
	}
	if (have_rates) {
		jv old = jv_object_get(jv_copy(terms), jv_string("rates"));
		if (jv_get_kind(old) == JV_KIND_OBJECT)
			rates = jv_object_merge(old, rates);
		else
			jv_free(old);
		terms = jv_object_set(terms, jv_string("rates"), rates);
	} else {
		jv_free(rates);
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': terms = jv_object_set(terms, jv_string("requester"), jv_string(optarg)); break;
		case 'p': terms = jv_object_set(terms, jv_string("provider"), jv_string(optarg)); break;
		case 'u': terms = jv_object_set(terms, jv_string("currency"), jv_string(optarg)); break;
		case 'C': set_amount(&terms, "cap", optarg, "cap"); break;
		case 't':
			terms = jv_object_set(terms, jv_string("duration_s"),
					      jv_number((double)seconds_opt(optarg, "duration", 1000)));
			break;
		default: break;
		}
	}
	if (notice >= 0)
		terms = jv_object_set(terms, jv_string("termination"),
				      JV_OBJECT(jv_string("notice_s"), jv_number((double)notice)));
	/* the side not named is this node */
	if (!nn_json_has(terms, "requester") && nn_json_has(terms, "provider"))
		terms = jv_object_set(terms, jv_string("requester"), jv_string(p.key.did));
	else if (!nn_json_has(terms, "provider") && nn_json_has(terms, "requester"))
		terms = jv_object_set(terms, jv_string("provider"), jv_string(p.key.did));
	rc = nn_pay_contract_propose(&p, terms, draft, &out, err);
	check(rc, err);
	print_jv(out);
	nn_pay_close(&p);
	return 0;
}

static int contract_cmd(int argc, char **argv)
{
	char err[NN_ERRLEN];
	struct nn_pay p;
	jv out;
	int rc;
	const char *sub;

	if (argc < 2)
		usage(NN_EX_USAGE);
	sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help"))
		usage(0);
	if (!strcmp(sub, "propose"))
		return contract_propose(argc - 1, argv + 1);
	if (!strcmp(sub, "list")) {
		static const struct option opts[] = {
			{ "state", required_argument, NULL, 's' },
			{ "help", no_argument, NULL, 'h' },
			{ NULL, 0, NULL, 0 }
		};
		const char *state = NULL;
		int c;
		argc--, argv++;
		while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
			switch (c) {
			case 's': state = optarg; break;
			case 'h': usage(0); break;
			default: usage(NN_EX_USAGE);
			}
		}
		if (optind != argc)
			usage(NN_EX_USAGE);
		pay_open(&p);
		rc = nn_pay_contract_list(&p, state, &out, err);
		check(rc, err);
		print_each(out);
		nn_pay_close(&p);
		return 0;
	}
	if (argc != 3)
		usage(NN_EX_USAGE);
	if (!strcmp(sub, "accept")) {
		jv doc = read_doc(argv[2]);
		pay_open(&p);
		rc = nn_pay_contract_accept(&p, doc, &out, err);
		check(rc, err);
		print_jv(out);
	} else if (!strcmp(sub, "show")) {
		pay_open(&p);
		rc = nn_pay_contract_get(&p, argv[2], &out, err);
		check(rc, err);
		print_jv(out);
	} else if (!strcmp(sub, "terminate") || !strcmp(sub, "complete") || !strcmp(sub, "settle")) {
		const char *state = sub[0] == 't' ? "terminated" : sub[0] == 'c' ? "completed" : "settled";
		pay_open(&p);
		rc = nn_pay_contract_set_state(&p, argv[2], state, err);
		check(rc, err);
		rc = nn_pay_contract_get(&p, argv[2], &out, err);
		check(rc, err);
		print_jv(out);
	} else {
		usage(NN_EX_USAGE);
	}
	nn_pay_close(&p);
	return 0;
}

/* ---- usage ---- */

static uint64_t count_opt(const char *val, const char *opt, uint64_t scale)
{
	char err[NN_ERRLEN];
	uint64_t v;
	if (nn_pay_amount_parse(val, &v, err) < 0)
		nn_die(NN_EX_DATAERR, "--%s: '%s' is not a non-negative integer", opt, val);
	if (v > UINT64_MAX / scale)
		nn_die(NN_EX_DATAERR, "--%s: '%s' is too large", opt, val);
	return v * scale;
}

static int answer_one(struct nn_pay *p, const char *line, size_t len, void *ctx,
		      struct nn_buf *out, char *err)
{
	return nn_pay_usage_answer_text(p, line, len, out, err);
}

static int usage_cmd(int argc, char **argv)
{
	char err[NN_ERRLEN];
	struct nn_pay p;
	jv out;
	int rc;

	if (argc < 2)
		usage(NN_EX_USAGE);
	if (!strcmp(argv[1], "record")) {
		static const struct option opts[] = {
			{ "alloc", required_argument, NULL, 'a' },
			{ "deployment", required_argument, NULL, 'd' },
			{ "cpu-seconds", required_argument, NULL, 'c' },
			{ "gib-seconds", required_argument, NULL, 'g' },
			{ "wall-seconds", required_argument, NULL, 'w' },
			{ "cpu-ms", required_argument, NULL, 'C' },
			{ "mem-mib-ms", required_argument, NULL, 'G' },
			{ "wall-ms", required_argument, NULL, 'W' },
			{ "help", no_argument, NULL, 'h' },
			{ NULL, 0, NULL, 0 }
		};
		struct nn_pay_usage u = { 0 };
		const char *alloc = NULL, *dep = NULL;
		int c;
		argc--, argv++;
		while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
			switch (c) {
			case 'a': alloc = optarg; break;
			case 'd': dep = optarg; break;
			case 'c': u.cpu_ms = count_opt(optarg, "cpu-seconds", 1000); break;
			case 'g': u.mem_mib_ms = count_opt(optarg, "gib-seconds", 1024000); break;
			case 'w': u.wall_ms = count_opt(optarg, "wall-seconds", 1000); break;
			case 'C': u.cpu_ms = count_opt(optarg, "cpu-ms", 1); break;
			case 'G': u.mem_mib_ms = count_opt(optarg, "mem-mib-ms", 1); break;
			case 'W': u.wall_ms = count_opt(optarg, "wall-ms", 1); break;
			case 'h': usage(0); break;
			default: usage(NN_EX_USAGE);
			}
		}
		if (optind != argc - 1 || !alloc)
			usage(NN_EX_USAGE);
		pay_open(&p);
		rc = nn_pay_meter_record(&p, argv[optind], alloc, dep, &u, err);
		check(rc, err);
		rc = nn_pay_meter_total(&p, argv[optind], &u, err);
		check(rc, err);
		print_jv(JV_OBJECT(jv_string("contract"), jv_string(argv[optind]),
				   jv_string("cpu_ms"), jv_number((double)u.cpu_ms),
				   jv_string("mem_mib_ms"), jv_number((double)u.mem_mib_ms),
				   jv_string("wall_ms"), jv_number((double)u.wall_ms),
				   jv_string("allocations"), jv_number((double)u.allocations),
				   jv_string("deployments"), jv_number((double)u.deployments)));
		nn_pay_close(&p);
		return 0;
	}
	if (!strcmp(argv[1], "report")) {
		if (argc != 3)
			usage(NN_EX_USAGE);
		pay_open(&p);
		rc = nn_pay_usage_report(&p, argv[2], &out, err);
		check(rc, err);
		print_jv(out);
		nn_pay_close(&p);
		return 0;
	}
	if (!strcmp(argv[1], "answer")) {
		if (argc > 3)
			usage(NN_EX_USAGE);
		pay_open(&p);
		rc = each_line(argc == 3 ? argv[2] : NULL, answer_one, &p, NULL, 1);
		nn_pay_close(&p);
		return rc;
	}
	usage(NN_EX_USAGE);
	return NN_EX_USAGE;
}

/* ---- voucher ---- */

struct vctx {
	int store;
	const char *contract;
};

static int voucher_one(struct nn_pay *p, const char *line, size_t len, void *ctx,
		       struct nn_buf *out, char *err)
{
	struct vctx *c = ctx;
	struct nn_pay_voucher_info info;
	int rc = nn_pay_voucher_text(p, line, len, c->store, c->contract, &info, err);
	if (rc < 0)
		return rc;
	nn_pay_voucher_info_write(out, c->store ? "{\"accepted\":true," : "{", &info,
				  c->store ? "}" : ",\"valid\":true}");
	return 0;
}

static int voucher_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "contract", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct vctx ctx = { 0, NULL };
	struct nn_pay p;
	int c, rc;

	if (argc < 2)
		usage(NN_EX_USAGE);
	if (!strcmp(argv[1], "accept"))
		ctx.store = 1;
	else if (strcmp(argv[1], "verify"))
		usage(NN_EX_USAGE);
	argc--, argv++;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': ctx.contract = optarg; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (argc - optind > 1)
		usage(NN_EX_USAGE);
	pay_open(&p);
	rc = each_line(optind < argc ? argv[optind] : NULL, voucher_one, &p, &ctx, ctx.store);
	nn_pay_close(&p);
	return rc;
}

/* ---- ledger, balance, settle, refusals ---- */

static int flags_cmd(int argc, char **argv, int *all, int *verify, int *export, int *mark)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "verify", no_argument, NULL, 'v' },
		{ "export", no_argument, NULL, 'e' },
		{ "mark", no_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': if (!all) usage(NN_EX_USAGE); *all = 1; break;
		case 'v': if (!verify) usage(NN_EX_USAGE); *verify = 1; break;
		case 'e': if (!export) usage(NN_EX_USAGE); *export = 1; break;
		case 'm': if (!mark) usage(NN_EX_USAGE); *mark = 1; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind != argc)
		usage(NN_EX_USAGE);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "home", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	char err[NN_ERRLEN];
	struct nn_pay p;
	jv out;
	int c, rc, all = 0, verify = 0, export = 0, mark = 0;
	const char *cmd;

	nn_log_init("nunet-pay");
	if (sodium_init() < 0)
		nn_die(NN_EX_SOFTWARE, "libsodium cannot start");
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'H': home_opt = optarg; break;
		case 'h': usage(0); break;
		case 'V': printf("nunet-pay %s\n", NN_VERSION); return 0;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind >= argc)
		usage(NN_EX_USAGE);
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	optind = 0;
	if (!strcmp(cmd, "contract"))
		return contract_cmd(argc, argv);
	if (!strcmp(cmd, "usage"))
		return usage_cmd(argc, argv);
	if (!strcmp(cmd, "voucher"))
		return voucher_cmd(argc, argv);
	if (!strcmp(cmd, "ledger")) {
		flags_cmd(argc, argv, &all, &verify, NULL, NULL);
		pay_open(&p);
		if (verify) {
			rc = nn_pay_ledger_verify(&p, err);
			check(rc, err);
		}
		rc = nn_pay_ledger(&p, all, &out, err);
		check(rc, err);
		print_each(out);
	} else if (!strcmp(cmd, "balance")) {
		flags_cmd(argc, argv, NULL, NULL, NULL, NULL);
		pay_open(&p);
		rc = nn_pay_balance(&p, &out, err);
		check(rc, err);
		print_each(out);
	} else if (!strcmp(cmd, "settle")) {
		flags_cmd(argc, argv, &all, NULL, &export, &mark);
		if (!export)
			usage(NN_EX_USAGE);
		pay_open(&p);
		rc = nn_pay_settle_export(&p, all, mark, &out, err);
		check(rc, err);
		print_each(out);
	} else if (!strcmp(cmd, "refusals")) {
		flags_cmd(argc, argv, NULL, NULL, NULL, NULL);
		pay_open(&p);
		rc = nn_pay_refusals(&p, &out, err);
		check(rc, err);
		print_each(out);
	} else {
		usage(NN_EX_USAGE);
	}
	nn_pay_close(&p);
	return 0;
}
