/*
 * sink-push — drive one sink (lib/sink) from the shell for the sink tests:
 * reads lines (event JSON, or Influx line protocol) from stdin, pushes each
 * through the sink given by SPEC, waits for the queue to drain or -w to
 * pass, prints the counters as one JSON line and closes the sink.
 *
 *   sink-push [-q LINES] [-b LINES] [-f MS] [-r MIN:MAX] [-t MS] [-l MS]
 *             [-L BYTES] [-w MS] [-d MS] [--app NAME] [--host NAME] SPEC
 *
 * -q queue capacity, -b batch size, -f flush interval, -r retry backoff,
 * -t request timeout, -l log interval, -L longest line (sink options); -w how long to wait
 * for the queue to drain (default 10000); -d drain time given to close
 * (default 0).  Output: {"pushed","sent","failed","dropped","rejected",
 * "queued","push_ms","push_max_us"} where push_ms is the time spent in
 * nn_sink_push over all lines and push_max_us the longest single call.
 * The sink's log lines go to stderr as "sink-push: warn: sink 'SPEC': …".
 * Exit 0 when drained, 75 when -w passed first, 64 on usage or a bad SPEC.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "lines.h"
#include "sink.h"
#include "util.h"

#define USAGE "usage: sink-push [-q LINES] [-b LINES] [-f MS] [-r MIN:MAX] [-t MS] [-l MS]\n" \
	      "                 [-L BYTES] [-w MS] [-d MS] [--app NAME] [--host NAME] SPEC\n"

static void on_log(void *arg, int warn, const char *msg)
{
	fprintf(stderr, "sink-push: %s: sink '%s': %s\n", warn ? "warn" : "info",
		(const char *)arg, msg);
	fflush(stderr);
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < 0) {
		fprintf(stderr, "sink-push: error: bad number '%s'\n" USAGE, s);
		exit(64);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct nn_sink_opts o;
	struct nn_sink_stats st;
	struct nn_sink *s;
	struct nn_lines in;
	char err[NN_ERRLEN];
	long wait = 10000, drain = 0;
	int64_t spent = 0, worst = 0;
	int i, rc;

	nn_sink_opts_init(&o);
	o.log = on_log;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(USAGE, stdout);
			return 0;
		}
		if (a[0] != '-' || i + 1 >= argc)
			break;
		if (!strcmp(a, "-q"))
			o.queue_max = (size_t)num(argv[++i]);
		else if (!strcmp(a, "-b"))
			o.batch_max = (size_t)num(argv[++i]);
		else if (!strcmp(a, "-f"))
			o.flush_ms = num(argv[++i]);
		else if (!strcmp(a, "-t"))
			o.timeout_ms = num(argv[++i]);
		else if (!strcmp(a, "-L"))
			o.line_max = (size_t)num(argv[++i]);
		else if (!strcmp(a, "-l"))
			o.log_interval_ms = num(argv[++i]);
		else if (!strcmp(a, "-w"))
			wait = num(argv[++i]);
		else if (!strcmp(a, "-d"))
			drain = num(argv[++i]);
		else if (!strcmp(a, "--app"))
			o.app_name = argv[++i];
		else if (!strcmp(a, "--host"))
			o.hostname = argv[++i];
		else if (!strcmp(a, "-r")) {
			char *c = strchr(argv[++i], ':');
			if (!c) {
				fputs(USAGE, stderr);
				return 64;
			}
			*c = 0;
			o.backoff_min_ms = num(argv[i]);
			o.backoff_max_ms = num(c + 1);
		} else {
			fprintf(stderr, "sink-push: error: unknown option '%s'\n" USAGE, a);
			return 64;
		}
	}
	if (i != argc - 1) {
		fputs(USAGE, stderr);
		return 64;
	}
	o.log_arg = argv[i];
	s = nn_sink_open(argv[i], &o, err);
	if (!s) {
		fprintf(stderr, "sink-push: error: %s\n", err);
		return 64;
	}
	/* longer than the sink takes, so nn_sink_push sees (and rejects) them */
	nn_lines_init(&in, o.line_max < (4u << 20) ? (4u << 20) : o.line_max + 1);
	for (;;) {
		const char *line;
		size_t len;
		int r;
		while ((r = nn_lines_next(&in, &line, &len)) != NN_LINES_NONE) {
			int64_t t0, d;
			if (r != NN_LINES_LINE)
				continue;
			t0 = now_us();
			nn_sink_push(s, line, len);
			d = now_us() - t0;
			spent += d;
			if (d > worst)
				worst = d;
		}
		if (nn_lines_read_fd(&in, 0) <= 0)
			break;
	}
	nn_lines_release(&in);
	rc = nn_sink_flush(s, wait) == 0 ? 0 : 75;
	nn_sink_stats(s, &st);
	printf("{\"pushed\":%llu,\"sent\":%llu,\"failed\":%llu,\"dropped\":%llu,"
	       "\"rejected\":%llu,\"queued\":%llu,\"push_ms\":%.3f,\"push_max_us\":%lld}\n",
	       (unsigned long long)st.pushed, (unsigned long long)st.sent,
	       (unsigned long long)st.failed, (unsigned long long)st.dropped,
	       (unsigned long long)st.rejected, (unsigned long long)st.queued,
	       (double)spent / 1000.0, (long long)worst);
	fflush(stdout);
	nn_sink_close(s, drain, NULL);
	return rc;
}
