/*
 * nunet-node — the node daemon and its administration: init, id, run,
 * status.  The daemon itself lives in lib/node.c; this file parses options
 * and maps failures to exit codes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "alloc.h"
#include "migrate.h"
#include "client.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "json.h"
#include "key.h"
#include "log.h"
#include "metrics_http.h"
#include "node.h"
#include "onboard.h"
#include "orch.h"
#include "pay.h"
#include "ship.h"
#include "util.h"
#include "nunet-node/swarm.h"

int nn_node_cmd_onboard(int argc, char **argv, const char *home);	/* cmd/nunet-node/onboard.c */
int nn_node_cmd_events(int argc, char **argv, const char *home);	/* cmd/nunet-node/events.c */
int nn_node_cmd_metrics(int argc, char **argv, const char *home);	/* cmd/nunet-node/events.c */

static const char usage_text[] =
	"usage: nunet-node [--home DIR] init [--passphrase-file FILE]\n"
	"                  [--swarm-key FILE | --new-swarm]\n"
	"       nunet-node [--home DIR] id\n"
	"       nunet-node [--home DIR] run [--ready-fd N] [--log-level LEVEL] [--log-format FORMAT]\n"
	"                  [--listen HOST:PORT]\n"
	"                  [--bootstrap DID@HOST:PORT]...\n"
	"       nunet-node [--home DIR] status\n"
	"       nunet-node [--home DIR] events [-f] [--since T] [--kind K] [--level L] [--trace ID]\n"
	"                  [--where JQ] [--limit N]\n"
	"       nunet-node [--home DIR] metrics\n"
	"       nunet-node [--home DIR] peers\n"
	"       nunet-node [--home DIR] cap grant DID --cap BEHAVIOR... [--expiry DURATION] [--depth N]\n"
	"       nunet-node [--home DIR] cap delegate TOKEN-FILE DID --cap BEHAVIOR... [--expiry DURATION]\n"
	"                  [--depth N] [--key FILE]\n"
	"       nunet-node [--home DIR] cap list | revoke NONCE\n"
	"       nunet-node [--home DIR] onboard --cpu N --memory SIZE --disk SIZE [--gpu LIST]\n"
	"                  [--price KEY=VALUE,...] [--location KEY=VALUE,...]\n"
	"       nunet-node [--home DIR] onboard --show\n"
	"       nunet-node [--home DIR] offboard [--force]\n"
	"       nunet-node -h | --help | --version\n";

/*
 * Parts of the toolkit that live in the daemon attach here, after the node
 * is open and before it serves: each registers its behaviors, watches,
 * tables (nn_db_migrate_module) and a closer.  One line per part.
 */
typedef int nn_attach_fn(struct nn_node *n, char *err);
static nn_attach_fn *const attach[] = {
	swarm_attach,
	nn_onboard_attach,
	nn_alloc_attach,
	nn_migrate_attach,
	nn_pay_attach,
	nn_orch_attach,
	nn_metrics_http_attach,
	nn_ship_attach,
	NULL
};

static const char *home_opt;
static const char *passfile;

static void usage(int code)
{
	fputs(usage_text, code ? stderr : stdout);
	exit(code);
}

/* The passphrase: --passphrase-file's first line, else $NUNET_PASSPHRASE. */
static char *passphrase(void)
{
	char err[NN_ERRLEN];
	if (passfile) {
		size_t len;
		char *s = nn_read_file(passfile, 4096, &len, err);
		if (!s)
			nn_die(NN_EX_IOERR, "%s", err);
		s[strcspn(s, "\n")] = '\0';
		if (!*s)
			nn_die(NN_EX_DATAERR, "'%s' holds an empty passphrase", passfile);
		return s;
	}
	const char *e = getenv("NUNET_PASSPHRASE");
	return e && *e ? nn_xstrdup(e) : NULL;
}

static void free_pass(char *p)
{
	if (p) {
		sodium_memzero(p, strlen(p));
		free(p);
	}
}

static char *home_or_die(void)
{
	char err[NN_ERRLEN];
	char *h = nn_home(home_opt, err);
	if (!h)
		nn_die(NN_EX_CONFIG, "%s", err);
	return h;
}

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "home", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "swarm-key", required_argument, NULL, 'S' },
		{ "new-swarm", no_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 }
	};
	const char *swarm_key = NULL;
	int new_swarm = 0;
	char err[NN_ERRLEN];
	struct nn_key k;
	struct nn_db db;
	char *home, *keypath, *cfgpath, *dbpath, *pass;
	struct stat st;
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': passfile = optarg; break;
		case 'H': home_opt = optarg; break;
		case 'S': swarm_key = optarg; break;
		case 'N': new_swarm = 1; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind != argc || (swarm_key && new_swarm))
		usage(NN_EX_USAGE);
	swarm_init_check(swarm_key);
	home = home_or_die();
	keypath = nn_home_file(home, "key");
	cfgpath = nn_home_file(home, "config.json");
	dbpath = nn_home_file(home, "node.db");
	if (stat(keypath, &st) == 0)
		nn_die(NN_EX_NO, "'%s' exists: refusing to overwrite an identity", keypath);
	if (nn_mkdirs(home, 0700, err) < 0)
		nn_die(NN_EX_IOERR, "%s", err);
	chmod(home, 0700);
	pass = passphrase();
	nn_key_generate(&k);
	if (nn_key_save(&k, keypath, pass, err) < 0)
		nn_die(errno == EEXIST ? NN_EX_NO : NN_EX_IOERR, "%s", err);
	free_pass(pass);
	if (stat(cfgpath, &st) < 0) {
		char *text = nn_config_default_text();
		if (nn_write_file(cfgpath, text, strlen(text), 0600, err) < 0)
			nn_die(NN_EX_IOERR, "%s", err);
		free(text);
	}
	if (nn_db_open(&db, dbpath, nn_node_schema, err) < 0)
		nn_die(NN_EX_IOERR, "%s", err);
	nn_db_close(&db);
	printf("%s\n", k.did);
	swarm_init_install(home, swarm_key, new_swarm);
	nn_key_clear(&k);
	free(home);
	free(keypath);
	free(cfgpath);
	free(dbpath);
	return 0;
}

static int cmd_id(int argc, char **argv)
{
	char err[NN_ERRLEN];
	struct nn_key k;
	char *home, *keypath, *pass;

	if (argc != 1)
		usage(NN_EX_USAGE);
	home = home_or_die();
	keypath = nn_home_file(home, "key");
	pass = passphrase();
	if (nn_key_load(&k, keypath, pass, err) < 0)
		nn_die(errno == ENOENT ? NN_EX_CONFIG : NN_EX_DATAERR, "%s", err);
	free_pass(pass);
	printf("%s\n", k.did);
	nn_key_clear(&k);
	free(home);
	free(keypath);
	return 0;
}

static void log_event(enum nn_level lv, const char *msg, void *arg)
{
	nn_node_emit(arg, lv, "log", NULL, jv_object_set(jv_object(), jv_string("message"), jv_string(msg)));
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-format", required_argument, NULL, 'F' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "home", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "listen", required_argument, NULL, 'L' },
		{ "bootstrap", required_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 }
	};
	struct nn_node_opts o = { NULL, NULL, -1 };
	char err[NN_ERRLEN], *end;
	struct nn_node *n;
	int c, code = 0, level = -1, json_log = 0;
	char *pass;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.ready_fd = (int)strtol(optarg, &end, 10);
			if (*end || o.ready_fd < 0 || fcntl(o.ready_fd, F_GETFD) < 0)
				nn_die(NN_EX_USAGE, "--ready-fd: '%s' is not an open file descriptor", optarg);
			break;
		case 'F':
			if (strcmp(optarg, "text") && strcmp(optarg, "json"))
				nn_die(NN_EX_USAGE, "--log-format: expected text or json");
			json_log = !strcmp(optarg, "json");
			break;
		case 'l':
			if ((level = nn_log_parse_level(optarg)) < 0)
				nn_die(NN_EX_USAGE, "--log-level: expected error, warn, info or debug");
			break;
		case 'p': passfile = optarg; break;
		case 'H': home_opt = optarg; break;
		case 'L': swarm_opt_listen(optarg); break;
		case 'B': swarm_opt_bootstrap(optarg); break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind != argc)
		usage(NN_EX_USAGE);
	o.home = home_opt;
	pass = passphrase();
	o.passphrase = pass;
	n = nn_node_open(&o, &code, err);
	free_pass(pass);
	if (!n)
		nn_die(code, "%s", err);
	for (size_t i = 0; attach[i]; i++)
		if (attach[i](n, err) < 0) {
			nn_node_close(n);
			nn_die(NN_EX_SOFTWARE, "%s", err);
		}
	if (level >= 0)
		nn_log_set_level(level);
	if (json_log) {
		/* stderr becomes the event stream: log messages are events too */
		nn_events_set_fd(nn_node_events(n), 2, nn_log_level());
		nn_log_set_hook(log_event, n);
	}
	code = nn_node_run(n) < 0 ? NN_EX_SOFTWARE : 0;
	nn_log_set_hook(NULL, NULL);
	nn_node_close(n);
	return code;
}

static int cmd_status(int argc, char **argv)
{
	struct nn_client c;
	enum nn_code code;
	char err[NN_ERRLEN];
	jv env, body;
	char *s;

	if (argc != 1)
		usage(NN_EX_USAGE);
	if (nn_client_open(&c, home_opt, NULL, &code, err) < 0) {
		char *home;
		if (code != NN_E_UNAVAILABLE)
			nn_die(NN_EX_CONFIG, "%s", err);
		home = home_or_die();
		printf("{\"running\":false,\"home\":\"%s\",\"did\":\"%s\"}\n", home, c.key.did);
		free(home);
		nn_client_close(&c);
		return NN_EX_NO;
	}
	env = nn_client_call(&c, "local", "/node/info", jv_object(), 10000, &code, err);
	if (!jv_is_valid(env)) {
		nn_client_close(&c);
		nn_die(code == NN_E_TIMEOUT ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE, "%s", err);
	}
	body = jv_object_get(jv_copy(env), jv_string("body"));
	if (strcmp(nn_env_str(env, "type"), "reply") != 0) {
		s = nn_json_dump(body);
		nn_client_close(&c);
		nn_die(NN_EX_UNAVAILABLE, "the node refused /node/info: %s", s);
	}
	body = jv_object_set(body, jv_string("running"), jv_true());
	s = nn_json_dump(body);
	printf("%s\n", s);
	free(s);
	jv_free(body);
	jv_free(env);
	nn_client_close(&c);
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
	int c;

	nn_log_init("nunet-node");
	umask(077);
	if (sodium_init() < 0)
		nn_die(NN_EX_SOFTWARE, "cannot initialise libsodium");
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'H': home_opt = optarg; break;
		case 'h': usage(0); break;
		case 'V': printf("nunet-node %s\n", NN_VERSION); return 0;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind >= argc)
		usage(NN_EX_USAGE);
	argc -= optind;
	argv += optind;
	optind = 0;	/* restart getopt for the subcommand */
	if (!strcmp(argv[0], "init"))
		return cmd_init(argc, argv);
	if (!strcmp(argv[0], "id"))
		return cmd_id(argc, argv);
	if (!strcmp(argv[0], "run"))
		return cmd_run(argc, argv);
	if (!strcmp(argv[0], "status"))
		return cmd_status(argc, argv);
	if (!strcmp(argv[0], "events"))
		return nn_node_cmd_events(argc, argv, home_opt);
	if (!strcmp(argv[0], "metrics"))
		return nn_node_cmd_metrics(argc, argv, home_opt);
	if (!strcmp(argv[0], "peers"))
		return cmd_peers(argc, argv, home_opt, usage);
	if (!strcmp(argv[0], "cap"))
		return cmd_cap(argc, argv, home_opt, usage);
	if (!strcmp(argv[0], "onboard") || !strcmp(argv[0], "offboard"))
		return nn_node_cmd_onboard(argc, argv, home_opt);
	fprintf(stderr, "nunet-node: error: unknown command '%s'\n", argv[0]);
	usage(NN_EX_USAGE);
}
