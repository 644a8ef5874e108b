/*
 * nunet-node's swarm options and commands: `run --listen HOST:PORT
 * --bootstrap DID@HOST:PORT`, `init --swarm-key FILE | --new-swarm`, and
 * `peers`, which prints what the node knows of its peers from node.db as
 * JSON lines.  The transport itself lives in lib/swarm.c.
 */
#include "swarm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "config.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "shs.h"
#include "../../lib/swarm.h"
#include "util.h"

static const char *listen_opt;
static const char **boot;
static size_t nboot;

void swarm_opt_listen(const char *arg)
{
	char host[256], err[NN_ERRLEN];
	int port;
	if (nn_swarm_parse_addr(arg, host, sizeof host, &port, err) < 0)
		nn_die(NN_EX_USAGE, "--listen: %s", err);
	listen_opt = arg;
}

void swarm_opt_bootstrap(const char *arg)
{
	char *copy = nn_xstrdup(arg), *save = NULL;
	for (char *p = strtok_r(copy, ", ", &save); p; p = strtok_r(NULL, ", ", &save)) {
		const char *at = strchr(p, '@');
		char host[256], err[NN_ERRLEN];
		uint8_t pk[32];
		int port;
		if (!at)
			nn_die(NN_EX_USAGE, "--bootstrap: '%s': expected DID@HOST:PORT", p);
		*(char *)at = '\0';
		if (nn_did_to_pk(p, pk, err) < 0)
			nn_die(NN_EX_USAGE, "--bootstrap: %s", err);
		if (nn_swarm_parse_addr(at + 1, host, sizeof host, &port, err) < 0)
			nn_die(NN_EX_USAGE, "--bootstrap: %s", err);
		*(char *)at = '@';
		boot = nn_xrealloc(boot, (nboot + 1) * sizeof *boot);
		boot[nboot++] = nn_xstrdup(p);
	}
	free(copy);
}

static void free_boot(struct nn_node *n, void *arg)
{
	for (size_t i = 0; i < nboot; i++)
		free((char *)boot[i]);
	free(boot);
	boot = NULL;
	nboot = 0;
}

int swarm_attach(struct nn_node *n, char *err)
{
	struct nn_swarm_opts o = { 0 };
	const char *e;
	o.listen = listen_opt;
	o.bootstrap = boot;
	o.nbootstrap = nboot;
	/* for tests and benchmarks: faster or slower failure detection */
	if ((e = getenv("NUNET_SWARM_PROBE_MS")))
		o.probe_ms = atoll(e);
	if ((e = getenv("NUNET_SWARM_SUSPECT_MS")))
		o.suspect_ms = atoll(e);
	nn_node_on_close(n, free_boot, NULL);
	return nn_swarm_attach(n, &o, err);
}

void swarm_init_check(const char *keyfile)
{
	uint8_t key[32];
	char err[NN_ERRLEN];
	if (keyfile && nn_shs_netkey_load(keyfile, key, err) < 0)
		nn_die(access(keyfile, R_OK) < 0 ? NN_EX_IOERR : NN_EX_DATAERR, "--swarm-key: %s", err);
	sodium_memzero(key, sizeof key);
}

void swarm_init_install(const char *home, const char *keyfile, int new_swarm)
{
	uint8_t key[32];
	char err[NN_ERRLEN], hex[65];
	char *path;
	if (!keyfile && !new_swarm)
		return;
	path = nn_home_file(home, "swarm.key");
	if (keyfile) {
		if (nn_shs_netkey_load(keyfile, key, err) < 0)
			nn_die(NN_EX_DATAERR, "--swarm-key: %s", err);
	} else {
		nn_shs_netkey_generate(key);
	}
	if (nn_shs_netkey_save(path, key, err) < 0)
		nn_die(errno == EEXIST ? NN_EX_NO : NN_EX_IOERR, "%s", err);
	if (new_swarm) {
		nn_hex_encode(hex, key, 32);
		printf("%s\n", hex);
		sodium_memzero(hex, sizeof hex);
	}
	sodium_memzero(key, sizeof key);
	free(path);
}

int cmd_peers(int argc, char **argv, const char *home_opt, void (*usage)(int))
{
	static const char sql[] =
		"SELECT json_object('did', dst, 'addr', addr, 'state', state, 'incarnation', incarnation,"
		" 'rtt_ms', rtt_ms, 'direct', json(CASE direct WHEN 0 THEN 'false' ELSE 'true' END),"
		" 'via', via, 'updated', updated) FROM swarm_edges ORDER BY dst";
	char err[NN_ERRLEN];
	struct nn_db db;
	sqlite3_stmt *st;
	char *home, *path;
	int r;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		usage(0);
	if (argc != 1)
		usage(NN_EX_USAGE);
	if (!(home = nn_home(home_opt, err)))
		nn_die(NN_EX_CONFIG, "%s", err);
	path = nn_home_file(home, "node.db");
	if (access(path, F_OK) < 0)
		nn_die(NN_EX_CONFIG, "no node at '%s': run 'nunet-node init' first", home);
	if (nn_db_open(&db, path, nn_node_schema, err) < 0)
		nn_die(NN_EX_IOERR, "%s", err);
	if (nn_db_migrate_module(&db, "swarm", nn_swarm_schema, err) < 0)
		nn_die(NN_EX_IOERR, "%s", err);
	if (sqlite3_prepare_v2(db.h, sql, -1, &st, NULL) != SQLITE_OK)
		nn_die(NN_EX_SOFTWARE, "%s", sqlite3_errmsg(db.h));
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		printf("%s\n", (const char *)sqlite3_column_text(st, 0));
	if (r != SQLITE_DONE)
		nn_die(NN_EX_IOERR, "%s: %s", path, sqlite3_errmsg(db.h));
	sqlite3_finalize(st);
	nn_db_close(&db);
	free(path);
	free(home);
	return 0;
}
