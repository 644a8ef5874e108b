/*
 * test-tool exec — drives the generic executor code and adoption from the
 * tests: `exec tail FILE N` prints the last N lines of FILE;
 * `exec follow FILE MS` copies what FILE gains for MS milliseconds;
 * `exec adopt SPEC [SIGNAL]` re-attaches to the job recorded in the spec's
 * allocation directory, prints {"adopted":…,"running":…}, optionally
 * signals it, waits for it, cleans up and prints the result line;
 * `exec spec SPEC` prints the parsed spec (defaults filled in).
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "test-tool.h"
#include "exec/exec.h"
#include "json.h"

static jv load(const char *path, char *err)
{
	size_t len;
	char *text = nn_read_file(path, 1 << 20, &len, err);
	jv j;
	if (!text)
		return jv_invalid();
	j = nn_json_parse(text, len, err);
	free(text);
	return j;
}

static void put(jv o)
{
	char *s = nn_json_dump(o);
	jv_free(o);
	printf("%s\n", s);
	free(s);
}

static int adopt(const char *specfile, int sig)
{
	char err[NN_ERRLEN];
	struct nn_exec_spec spec;
	struct nn_exec_job job;
	struct nn_exec_result res;
	const struct nn_executor *ex;
	jv j = load(specfile, err);
	int r;

	if (!jv_is_valid(j) || nn_exec_spec_parse(&spec, j, getenv("NUNET_HOME"), err) < 0) {
		fprintf(stderr, "test-tool: %s\n", err);
		return 65;
	}
	if (!(ex = nn_exec_find(spec.executor, err))) {
		fprintf(stderr, "test-tool: %s\n", err);
		nn_exec_spec_release(&spec);
		return 65;
	}
	nn_exec_job_init(&job, ex, &spec);
	if (ex->adopt(&job, err) < 0) {
		fprintf(stderr, "test-tool: adopt: %s\n", err);
		nn_exec_job_release(&job);
		nn_exec_spec_release(&spec);
		return 1;
	}
	r = ex->wait(&job, 0, &res, err);
	put(jv_object_set(jv_object_set(jv_object(), jv_string("adopted"), jv_bool(job.adopted)),
			  jv_string("running"), jv_bool(r == 0)));
	if (sig && ex->signal(&job, sig, err) < 0)
		fprintf(stderr, "test-tool: signal: %s\n", err);
	/* as an event loop would: sleep on wait_fd, then poll wait() */
	do {
		if (job.wait_fd >= 0) {
			struct pollfd p = { job.wait_fd, POLLIN, 0 };
			poll(&p, 1, 10000);
		}
		r = ex->wait(&job, job.wait_fd >= 0 ? 0 : 100, &res, err);
	} while (r == 0);
	if (ex->cleanup(&job, err) < 0)
		fprintf(stderr, "test-tool: cleanup: %s\n", err);
	if (r == 1)
		put(nn_exec_result_json(&res));
	nn_exec_job_release(&job);
	nn_exec_spec_release(&spec);
	return r == 1 ? 0 : 70;
}

int cmd__exec(int argc, char **argv)
{
	char err[NN_ERRLEN];
	if (argc >= 4 && !strcmp(argv[1], "tail")) {
		if (nn_exec_log_tail(argv[2], atol(argv[3]), 1, err) < 0) {
			fprintf(stderr, "test-tool: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[1], "follow")) {
		struct nn_exec_follow f;
		long ms = atol(argv[3]);
		struct timespec ts = { 0, 10 * 1000000 };
		nn_exec_follow_init(&f, argv[2], 0);
		for (long t = 0; t <= ms; t += 10) {
			if (nn_exec_follow_pump(&f, 1, err) < 0) {
				fprintf(stderr, "test-tool: %s\n", err);
				nn_exec_follow_release(&f);
				return 1;
			}
			fflush(stdout);
			nanosleep(&ts, NULL);
		}
		nn_exec_follow_release(&f);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "adopt"))
		return adopt(argv[2], argc >= 4 ? atoi(argv[3]) : 0);
	if (argc >= 3 && !strcmp(argv[1], "spec")) {
		struct nn_exec_spec spec;
		jv j = load(argv[2], err);
		if (!jv_is_valid(j) || nn_exec_spec_parse(&spec, j, getenv("NUNET_HOME"), err) < 0) {
			fprintf(stderr, "test-tool: %s\n", err);
			return 65;
		}
		put(nn_exec_spec_json(&spec));
		nn_exec_spec_release(&spec);
		return 0;
	}
	fprintf(stderr, "usage: test-tool exec tail FILE N | follow FILE MS | adopt SPEC [SIG] | spec SPEC\n");
	return 64;
}
