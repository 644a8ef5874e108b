/*
 * nunet-node cap — capability tokens (lib/captoken.h): grant one from this
 * node's key (an owner's root of trust), delegate a token held, list what
 * this home issued, revoke a token by its nonce.  Tokens print as one JSON
 * line; the issued ones and the revocations live in node.db, where the
 * running node reads revocations on every check, so they take effect at
 * once.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "captoken.h"
#include "config.h"
#include "db.h"
#include "json.h"
#include "key.h"
#include "log.h"
#include "../../lib/swarm.h"
#include "swarm.h"
#include "util.h"

static void open_db(struct nn_db *db, const char *home)
{
	char err[NN_ERRLEN];
	char *path = nn_home_file(home, "node.db");
	if (access(path, F_OK) < 0)
		nn_die(NN_EX_CONFIG, "no node at '%s': run 'nunet-node init' first", home);
	if (nn_db_open(db, path, nn_node_schema, err) < 0 ||
	    nn_db_migrate_module(db, "swarm", nn_swarm_schema, err) < 0)
		nn_die(NN_EX_IOERR, "%s", err);
	free(path);
}

static void record(struct nn_db *db, jv tok)
{
	sqlite3_stmt *st;
	jv cv = jv_object_get(jv_copy(tok), jv_string("cap"));
	char *caps = nn_json_dump(cv);	/* borrows */
	char *text = nn_json_dump(tok);
	jv_free(cv);
	int64_t exp = 0, depth = 0;
	nn_json_get_int(tok, "exp", &exp, NULL);
	nn_json_get_int(tok, "depth", &depth, NULL);
	if (sqlite3_prepare_v2(db->h, "INSERT INTO cap_tokens (nonce, iss, aud, cap, exp, depth, token, created)"
			       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		nn_die(NN_EX_IOERR, "%s", sqlite3_errmsg(db->h));
	sqlite3_bind_text(st, 1, nn_env_str(tok, "nonce"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, nn_env_str(tok, "iss"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, nn_env_str(tok, "aud"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, caps, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, exp);
	sqlite3_bind_int64(st, 6, depth);
	sqlite3_bind_text(st, 7, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, nn_now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		nn_die(NN_EX_IOERR, "%s", sqlite3_errmsg(db->h));
	sqlite3_finalize(st);
	free(caps);
	free(text);
}

/* grant DID / delegate TOKEN-FILE DID, with --cap, --expiry, --depth, --key */
static int issue(int argc, char **argv, const char *home, int delegate, void (*usage)(int))
{
	static const struct option opts[] = {
		{ "cap", required_argument, NULL, 'c' },
		{ "expiry", required_argument, NULL, 'e' },
		{ "depth", required_argument, NULL, 'd' },
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char err[NN_ERRLEN], *end, *keypath = NULL;
	const char *keyfile = NULL, *aud;
	int64_t ttl = 24 * 3600000;
	long depth = 0;
	jv caps = jv_array(), parent = jv_null(), tok;
	struct nn_key k;
	struct nn_db db;
	uint8_t pk[32];
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (optarg[0] != '/')
				nn_die(NN_EX_USAGE, "--cap: '%s' is not a behavior path such as /deploy", optarg);
			caps = jv_array_append(caps, jv_string(optarg));
			break;
		case 'e':
			if (nn_parse_duration_ms(optarg, &ttl) < 0 || ttl <= 0)
				nn_die(NN_EX_USAGE, "--expiry: '%s' is not a duration such as 24h or 30m", optarg);
			break;
		case 'd':
			depth = strtol(optarg, &end, 10);
			if (*end || depth < 0 || depth > NN_CAPTOKEN_MAX_CHAIN)
				nn_die(NN_EX_USAGE, "--depth: expected 0 to %d", NN_CAPTOKEN_MAX_CHAIN);
			break;
		case 'k': keyfile = optarg; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (argc - optind != (delegate ? 2 : 1) || jv_array_length(jv_copy(caps)) == 0)
		usage(NN_EX_USAGE);
	if (delegate) {
		size_t len;
		char *text = nn_read_file(argv[optind], 1024 * 1024, &len, err);
		if (!text)
			nn_die(NN_EX_IOERR, "%s", err);
		parent = nn_json_parse(text, len, err);
		free(text);
		if (jv_get_kind(parent) != JV_KIND_OBJECT)
			nn_die(NN_EX_DATAERR, "'%s': not a capability token", argv[optind]);
		optind++;
	}
	aud = argv[optind];
	if (nn_did_to_pk(aud, pk, err) < 0)
		nn_die(NN_EX_USAGE, "DID: %s", err);
	if (!keyfile)
		keyfile = keypath = nn_home_file(home, "key");
	if (nn_key_load(&k, keyfile, getenv("NUNET_PASSPHRASE"), err) < 0)
		nn_die(NN_EX_CONFIG, "%s", err);
	if (delegate) {
		/* refuse to hand out what the chain would refuse anyway */
		int64_t pexp = 0;
		nn_json_get_int(parent, "exp", &pexp, NULL);
		if (nn_now_ms() + ttl > pexp)
			ttl = pexp - nn_now_ms();
	}
	tok = nn_captoken_make(&k, aud, caps, nn_now_ms() + ttl, (int)depth, parent, err);
	nn_key_clear(&k);
	if (!jv_is_valid(tok))
		nn_die(NN_EX_NO, "%s", err);
	open_db(&db, home);
	record(&db, tok);
	nn_db_close(&db);
	char *s = nn_json_dump(tok);
	printf("%s\n", s);
	free(s);
	jv_free(tok);
	free(keypath);
	return 0;
}

int cmd_cap(int argc, char **argv, const char *home_opt, void (*usage)(int))
{
	char err[NN_ERRLEN];
	struct nn_db db;
	sqlite3_stmt *st;
	char *home;
	int r;

	if (argc < 2)
		usage(NN_EX_USAGE);
	if (!(home = nn_home(home_opt, err)))
		nn_die(NN_EX_CONFIG, "%s", err);
	argc--;
	argv++;
	optind = 0;
	if (!strcmp(argv[0], "grant") || !strcmp(argv[0], "delegate")) {
		r = issue(argc, argv, home, !strcmp(argv[0], "delegate"), usage);
		free(home);
		return r;
	}
	if (!strcmp(argv[0], "list") && argc == 1) {
		open_db(&db, home);
		if (sqlite3_prepare_v2(db.h,
				       "SELECT json_object('nonce', t.nonce, 'iss', iss, 'aud', aud, 'cap', json(cap),"
				       " 'exp', exp, 'depth', depth, 'revoked', json(CASE WHEN r.nonce IS NULL"
				       " THEN 'false' ELSE 'true' END)) FROM cap_tokens t LEFT JOIN cap_revoked r"
				       " ON r.nonce = t.nonce ORDER BY created, t.nonce", -1, &st, NULL) != SQLITE_OK)
			nn_die(NN_EX_IOERR, "%s", sqlite3_errmsg(db.h));
		while ((r = sqlite3_step(st)) == SQLITE_ROW)
			printf("%s\n", (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		nn_db_close(&db);
		free(home);
		return 0;
	}
	if (!strcmp(argv[0], "revoke") && argc == 2) {
		if (strlen(argv[1]) != 32 || strspn(argv[1], "0123456789abcdef") != 32)
			nn_die(NN_EX_USAGE, "NONCE: expected the 32 hex digits of a token's nonce");
		open_db(&db, home);
		if (sqlite3_prepare_v2(db.h, "INSERT OR IGNORE INTO cap_revoked (nonce, revoked) VALUES (?, ?)",
				       -1, &st, NULL) != SQLITE_OK)
			nn_die(NN_EX_IOERR, "%s", sqlite3_errmsg(db.h));
		sqlite3_bind_text(st, 1, argv[1], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, nn_now_ms());
		if (sqlite3_step(st) != SQLITE_DONE)
			nn_die(NN_EX_IOERR, "%s", sqlite3_errmsg(db.h));
		sqlite3_finalize(st);
		nn_db_close(&db);
		free(home);
		return 0;
	}
	usage(NN_EX_USAGE);
	return NN_EX_USAGE;
}
