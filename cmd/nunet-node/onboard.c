/*
 * nunet-node onboard, onboard --show, offboard — the operator's side of
 * lib/onboard.c.  Onboarding is a behavior of the running node
 * (/node/onboard, /node/offboard, /node/resources, /node/capability), so
 * the daemon's store has one writer and its checks see every allocation's
 * commitment; these commands only read the machine's capability document
 * (stdin, else `nunet-bench --quick` when stdin is a terminal), turn the
 * options into a request, and print the node's answer.  No node running is
 * exit 69.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cap.h"
#include "client.h"
#include "json.h"
#include "log.h"
#include "util.h"

int nn_node_cmd_onboard(int argc, char **argv, const char *home);

#define DOC_MAX (1024 * 1024)
#define CALL_MS 10000

static const char onboard_usage[] =
	"usage: nunet-node [--home DIR] onboard --cpu N --memory SIZE --disk SIZE [--gpu LIST]\n"
	"                  [--price KEY=VALUE,...] [--location KEY=VALUE,...]\n"
	"       nunet-node [--home DIR] onboard --show\n"
	"       nunet-node [--home DIR] offboard [--force]\n";

static void usage(int code) __attribute__((noreturn));
static void usage(int code)
{
	fputs(onboard_usage, code ? stderr : stdout);
	exit(code);
}

static void usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_err(const char *fmt, ...)
{
	va_list ap;
	fputs("nunet-node: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(NN_EX_USAGE);
}

/* "2", "0.5", "1.25" cores as millicores; -1 when not such a number. */
static int64_t parse_cores(const char *s)
{
	int64_t whole = 0, frac = 0;
	int digits = 0, nfrac = 0;
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (whole > INT64_MAX / 10000)
			return -1;
		whole = whole * 10 + (*s - '0');
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, nfrac++) {
			if (nfrac < 3)
				frac = frac * 10 + (*s - '0');
			else if (*s != '0')
				return -1;
		}
	}
	if (*s || (!digits && !nfrac))
		return -1;
	for (int i = nfrac < 3 ? nfrac : 3; i < 3; i++)
		frac *= 10;
	return whole * 1000 + frac;
}

static int64_t parse_size(const char *opt, const char *s)
{
	char err[NN_ERRLEN];
	int64_t v;
	jv j = jv_string(s);
	if (nn_cap_size(j, opt, &v, err) < 0) {
		jv_free(j);
		usage_err("%s", err);
	}
	jv_free(j);
	return v;
}

/* KEY=VALUE,KEY=VALUE into obj (consumed, returned) for the keys allowed;
 * money keys need digits. */
static jv parse_pairs(jv obj, const char *opt, const char *arg, const char *const *keys,
		      int money_from)
{
	char *copy = nn_xstrdup(arg), *save = NULL, *tok;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int i;
		if (!eq || eq == tok || !eq[1]) {
			fprintf(stderr, "nunet-node: error: %s: expected KEY=VALUE, not '%s'\n", opt, tok);
			usage(NN_EX_USAGE);
		}
		*eq = '\0';
		for (i = 0; keys[i]; i++)
			if (!strcmp(keys[i], tok))
				break;
		if (!keys[i]) {
			fprintf(stderr, "nunet-node: error: %s: unknown key '%s'\n", opt, tok);
			usage(NN_EX_USAGE);
		}
		if (money_from >= 0 && i >= money_from &&
		    (strspn(eq + 1, "0123456789") != strlen(eq + 1) || strlen(eq + 1) > 18)) {
			fprintf(stderr, "nunet-node: error: %s: %s: expected up to 18 digits "
				"(integer minor units), not '%s'\n", opt, tok, eq + 1);
			usage(NN_EX_USAGE);
		}
		obj = jv_object_set(obj, jv_string(tok), jv_string(eq + 1));
	}
	free(copy);
	return obj;
}

/* The path of nunet-bench: beside this program when it is there, else
 * whatever PATH finds. */
static char *bench_path(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		char *slash, *p;
		self[n] = '\0';
		if ((slash = strrchr(self, '/'))) {
			*slash = '\0';
			p = nn_xasprintf("%s/nunet-bench", self);
			if (access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	return nn_xstrdup("nunet-bench");
}

/* Read all of fd up to DOC_MAX bytes into b; exits on error. */
static void read_all(int fd, struct nn_buf *b, const char *what)
{
	char chunk[65536];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			nn_die(NN_EX_IOERR, "cannot read %s: %s", what, strerror(errno));
		if (r == 0)
			return;
		if (nn_buf_add(b, chunk, (size_t)r) < 0)
			nn_die(NN_EX_DATAERR, "%s: longer than %d bytes", what, DOC_MAX);
	}
}

/* Run nunet-bench --quick and collect its document. */
static void run_bench(struct nn_buf *b)
{
	char *path = bench_path();
	int p[2], status;
	pid_t pid;

	if (isatty(2))
		fprintf(stderr, "nunet-node: measuring this machine (%s --quick)\n", path);
	if (pipe(p) < 0)
		nn_die(NN_EX_SOFTWARE, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		nn_die(NN_EX_SOFTWARE, "fork: %s", strerror(errno));
	if (pid == 0) {
		char *args[] = { path, "--quick", NULL };
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execvp(path, args);
		fprintf(stderr, "nunet-node: error: cannot run '%s': %s\n", path, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	read_all(p[0], b, "nunet-bench's output");
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		nn_die(NN_EX_UNAVAILABLE, "'%s --quick' failed (%s %d): pipe a capability "
		       "document into 'nunet-node onboard' instead", path,
		       WIFEXITED(status) ? "exit" : "signal",
		       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	free(path);
}

/* The machine's capability document: stdin, or nunet-bench's. */
static jv machine_doc(void)
{
	char err[NN_ERRLEN];
	struct nn_buf b;
	const char *what = isatty(0) ? "nunet-bench's output" : "the capability document on stdin";
	jv doc;

	nn_buf_init(&b, DOC_MAX);
	if (isatty(0))
		run_bench(&b);
	else
		read_all(0, &b, what);
	if (!b.len)
		nn_die(NN_EX_DATAERR, "%s is empty: pipe nunet-bench's output in "
		       "('nunet-bench | nunet-node onboard …')", what);
	doc = nn_json_parse(b.data, b.len, err);
	nn_buf_release(&b);
	if (!jv_is_valid(doc))
		nn_die(NN_EX_DATAERR, "%s: %s", what, err);
	if (nn_cap_check(doc, err) < 0)
		nn_die(NN_EX_DATAERR, "%s: %s", what, err);
	return doc;
}

static int exit_for(enum nn_code c)
{
	switch (c) {
	case NN_E_BUSY:
	case NN_E_TIMEOUT:
		return NN_EX_TEMPFAIL;
	case NN_E_UNAVAILABLE:
		return NN_EX_UNAVAILABLE;
	case NN_E_BAD_BODY:
	case NN_E_UNAUTHORIZED:
		return NN_EX_NO;
	case NN_E_UNKNOWN_BEHAVIOR:
		return NN_EX_UNAVAILABLE;
	default:
		return NN_EX_SOFTWARE;
	}
}

/* Ask the node; returns the reply body, or *code and the refusal in err
 * (the body's message). */
static jv ask(struct nn_client *c, const char *be, jv body, enum nn_code *code, char *err)
{
	jv env = nn_client_call(c, "local", be, body, CALL_MS, code, err);
	jv b;
	if (!jv_is_valid(env)) {
		jv_free(env);
		return jv_invalid();
	}
	b = jv_object_get(jv_copy(env), jv_string("body"));
	if (strcmp(nn_env_str(env, "type"), "reply") != 0) {
		jv m = jv_object_get(jv_copy(b), jv_string("message"));
		jv k = jv_object_get(jv_copy(b), jv_string("code"));
		*code = jv_get_kind(k) == JV_KIND_STRING ? nn_code_parse(jv_string_value(k))
							 : NN_E_INTERNAL;
		nn_seterr(err, "%s", jv_get_kind(m) == JV_KIND_STRING ? jv_string_value(m)
								    : "the node refused");
		jv_free(m);
		jv_free(k);
		jv_free(b);
		jv_free(env);
		return jv_invalid();
	}
	jv_free(env);
	*code = NN_OK;
	return b;
}

static void print(jv v)
{
	char *s = nn_json_dump(v);
	printf("%s\n", s);
	free(s);
	jv_free(v);
	if (fflush(stdout) == EOF)
		nn_die(NN_EX_IOERR, "cannot write: %s", strerror(errno));
}

static void connect_or_die(struct nn_client *c, const char *home)
{
	enum nn_code code;
	char err[NN_ERRLEN];
	if (nn_client_open(c, home, NULL, &code, err) < 0)
		nn_die(code == NN_E_UNAVAILABLE ? NN_EX_UNAVAILABLE : NN_EX_CONFIG,
		       "%s%s", err, code == NN_E_UNAVAILABLE ?
		       ": onboarding talks to the running node" : "");
}

static int show(const char *home)
{
	struct nn_client c;
	enum nn_code code;
	char err[NN_ERRLEN];
	jv res, cap;
	const char *st;
	int onboarded;

	connect_or_die(&c, home);
	res = ask(&c, "/node/resources", jv_object(), &code, err);
	if (!jv_is_valid(res)) {
		nn_client_close(&c);
		nn_die(exit_for(code), "%s", err);
	}
	st = nn_env_str(res, "state");
	onboarded = st && !strcmp(st, "onboarded");
	if (onboarded) {
		cap = ask(&c, "/node/capability", jv_object(), &code, err);
		if (!jv_is_valid(cap)) {
			jv_free(res);
			nn_client_close(&c);
			nn_die(exit_for(code), "%s", err);
		}
		res = jv_object_set(res, jv_string("capability"), cap);
	}
	nn_client_close(&c);
	print(res);
	return onboarded ? 0 : NN_EX_NO;
}

static int offboard(int argc, char **argv, const char *home)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "home", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct nn_client c;
	enum nn_code code;
	char err[NN_ERRLEN];
	int ch, force = 0;
	jv r;

	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': force = 1; break;
		case 'H': home = optarg; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind != argc)
		usage(NN_EX_USAGE);
	connect_or_die(&c, home);
	r = ask(&c, "/node/offboard", jv_object_set(jv_object(), jv_string("force"),
						     force ? jv_true() : jv_false()), &code, err);
	nn_client_close(&c);
	if (!jv_is_valid(r))
		nn_die(exit_for(code), "%s", err);
	print(r);
	return 0;
}

int nn_node_cmd_onboard(int argc, char **argv, const char *home)
{
	static const struct option opts[] = {
		{ "cpu", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "disk", required_argument, NULL, 'd' },
		{ "gpu", required_argument, NULL, 'g' },
		{ "price", required_argument, NULL, 'p' },
		{ "location", required_argument, NULL, 'l' },
		{ "show", no_argument, NULL, 's' },
		{ "home", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const price_keys[] = { "currency", "cpu_second", "ram_gib_second",
						  "disk_gib", "gpu_second", NULL };
	static const char *const loc_keys[] = { "continent", "country", "city", NULL };
	struct nn_client c;
	enum nn_code code;
	char err[NN_ERRLEN];
	int64_t cpu = -1, ram = -1, disk = -1;
	const char *gpu = NULL;
	jv price = jv_invalid(), loc = jv_invalid(), machine, req, r, gpus;
	int ch, want_show = 0, ngpus;

	if (!strcmp(argv[0], "offboard"))
		return offboard(argc, argv, home);
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if ((cpu = parse_cores(optarg)) <= 0)
				usage_err("--cpu: expected a number of cores above 0 (at most 3 "
					  "decimals), not '%s'", optarg);
			break;
		case 'm': ram = parse_size("--memory", optarg); break;
		case 'd': disk = parse_size("--disk", optarg); break;
		case 'g': gpu = optarg; break;
		case 'p':
			price = parse_pairs(jv_is_valid(price) ? price : jv_object(), "--price",
					    optarg, price_keys, 1);
			break;
		case 'l':
			loc = parse_pairs(jv_is_valid(loc) ? loc : jv_object(), "--location", optarg,
					  loc_keys, -1);
			break;
		case 's': want_show = 1; break;
		case 'H': home = optarg; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind != argc)
		usage(NN_EX_USAGE);
	if (want_show) {
		if (cpu >= 0 || ram >= 0 || disk >= 0 || gpu || jv_is_valid(price) || jv_is_valid(loc))
			usage_err("--show takes no other option");
		return show(home);
	}
	if (cpu < 0 || ram < 0 || disk < 0)
		usage_err("%s is required", cpu < 0 ? "--cpu" : ram < 0 ? "--memory" : "--disk");
	if (ram == 0)
		usage_err("--memory: reserve more than 0 bytes");

	connect_or_die(&c, home);	/* before measuring: no node, no wait */
	machine = machine_doc();

	gpus = jv_object_get(jv_copy(machine), jv_string("gpus"));
	ngpus = jv_get_kind(gpus) == JV_KIND_ARRAY ? jv_array_length(jv_copy(gpus)) : 0;
	jv_free(gpus);
	gpus = jv_array();
	if (gpu && !strcmp(gpu, "all")) {
		for (int i = 0; i < ngpus; i++)
			gpus = jv_array_append(gpus, jv_number(i));
	} else if (gpu && strcmp(gpu, "none") != 0) {
		char *copy = nn_xstrdup(gpu), *save = NULL, *tok, *end;
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			long i;
			errno = 0;
			i = strtol(tok, &end, 10);
			if (errno || *end || end == tok || i < 0 || i >= ngpus) {
				fprintf(stderr, "nunet-node: error: --gpu: '%s' is not a GPU of this "
					"machine (it has %d; indexes from 0, 'all' or 'none')\n",
					tok, ngpus);
				exit(NN_EX_USAGE);
			}
			gpus = jv_array_append(gpus, jv_number((double)i));
		}
		free(copy);
	}

	req = jv_object_set(jv_object(), jv_string("machine"), machine);
	req = jv_object_set(req, jv_string("cpu"), jv_number((double)cpu));
	req = jv_object_set(req, jv_string("ram"), jv_number((double)ram));
	req = jv_object_set(req, jv_string("disk"), jv_number((double)disk));
	req = jv_object_set(req, jv_string("gpus"), gpus);
	if (jv_is_valid(price))
		req = jv_object_set(req, jv_string("price"), price);
	if (jv_is_valid(loc))
		req = jv_object_set(req, jv_string("location"), loc);
	r = ask(&c, "/node/onboard", req, &code, err);
	nn_client_close(&c);
	if (!jv_is_valid(r))
		nn_die(exit_for(code), "%s", err);
	print(r);
	return 0;
}
