/*
 * nunet-bench — measure this machine and print its capability document
 * (man/nunet-capability.5) as one JSON line on stdout.  The work is in
 * lib/bench.c (measurements) and lib/hwinfo.c (detection); this file reads
 * options, shows progress on stderr when stderr is a terminal, and maps
 * failures to exit codes.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>

#include "bench.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define USAGE "usage: nunet-bench [-hnq] [-d dir] [-l key=value] [--sysroot dir] [--version]\n"

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	char msg[NN_ERRLEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	nn_error("%s", msg);
	fputs(USAGE, stderr);
	exit(NN_EX_USAGE);
}

static void show_progress(const char *what, void *arg)
{
	(void)arg;
	nn_info("%s...", what);
}

static void show_warning(const char *msg, void *arg)
{
	(void)arg;
	nn_warn("%s", msg);
}

/* "key=value" into labels; a usage error otherwise. */
static jv add_label(jv labels, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv) {
		jv_free(labels);
		usage_error("--label: expected key=value, got '%s'", kv);
	}
	return jv_object_set(labels, jv_string_sized(kv, (int)(eq - kv)), jv_string(eq + 1));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "detect-only", no_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },
		{ "label", required_argument, NULL, 'l' },
		{ "sysroot", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct nn_bench_opts o = NN_BENCH_OPTS_INIT;
	enum nn_bench_fail fail;
	char err[NN_ERRLEN] = "";
	jv labels = jv_object(), doc;
	char *line;
	int c;

	nn_log_init(argv[0]);
	o.hw.sysroot = getenv("NUNET_SYSROOT");
	o.hw.docker_host = getenv("DOCKER_HOST");
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hnqd:l:", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o.quick = 1;
			break;
		case 'n':
			o.measure = 0;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'l':
			labels = add_label(labels, optarg);
			break;
		case 'S':
			o.hw.sysroot = optarg;
			break;
		case 'h':
			jv_free(labels);
			fputs(USAGE, stdout);
			return 0;
		case 'V':
			jv_free(labels);
			printf("nunet-bench %s\n", NN_VERSION);
			return 0;
		case ':':
			jv_free(labels);
			usage_error("option '%s' needs an argument", argv[optind - 1]);
			break;
		default:
			jv_free(labels);
			if (optopt)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc) {
		jv_free(labels);
		usage_error("unexpected argument '%s'", argv[optind]);
	}
	o.hw.timeout_ms = o.quick ? 1000 : 5000;
	if (isatty(2)) {
		o.progress = show_progress;
	}
	o.warn = show_warning;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	doc = nn_bench_run(&o, labels, &fail, err);
	curl_global_cleanup();
	if (!jv_is_valid(doc)) {
		jv_free(doc);
		nn_die(fail == NN_BENCH_FAIL_IO ? NN_EX_IOERR : NN_EX_SOFTWARE, "%s", err);
	}
	line = nn_json_dump(doc);
	jv_free(doc);
	if (printf("%s\n", line) < 0 || fflush(stdout) == EOF) {
		free(line);
		nn_die(NN_EX_IOERR, "cannot write the document: %m");
	}
	free(line);
	return 0;
}
