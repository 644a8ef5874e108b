/*
 * nunet-run — run jobs.  For now one subcommand: `nunet-run exec SPEC`,
 * which runs one job spec (a JSON file, or - for stdin) in the foreground
 * through its executor, with no node: it checks the spec, starts the job,
 * streams the job's stdout and stderr (kept in the allocation directory as
 * stdout.log and stderr.log) to its own, forwards SIGINT/SIGTERM/SIGHUP,
 * writes the result as one JSON line (stderr, or --result FILE), cleans up
 * and exits with the job's exit status (128+signal when it was killed).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "exec/exec.h"
#include "json.h"
#include "log.h"
#include "util.h"

static const char usage_text[] =
	"usage: nunet-run exec [--result FILE] [--timeout DURATION] [--grace DURATION] SPEC\n"
	"       nunet-run exec --available [EXECUTOR]\n"
	"       nunet-run -h | --help | --version\n";

#define SPEC_MAX (1024 * 1024)

static volatile sig_atomic_t got_signal;

static void usage(int code)
{
	fputs(usage_text, code ? stderr : stdout);
	exit(code);
}

static void on_signal(int sig)
{
	got_signal = sig;
}

static char *read_spec(const char *path, size_t *len)
{
	char err[NN_ERRLEN];
	char *text;
	if (strcmp(path, "-")) {
		text = nn_read_file(path, SPEC_MAX, len, err);
		if (!text)
			nn_die(NN_EX_IOERR, "%s", err);
		return text;
	}
	{
		struct nn_buf b;
		char chunk[8192];
		ssize_t n;
		nn_buf_init(&b, SPEC_MAX);
		while ((n = read(0, chunk, sizeof chunk)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				nn_die(NN_EX_IOERR, "cannot read the spec from stdin: %s",
				       strerror(errno));
			if (nn_buf_add(&b, chunk, (size_t)n) < 0)
				nn_die(NN_EX_DATAERR, "spec on stdin is longer than %d bytes", SPEC_MAX);
		}
		return nn_buf_detach(&b, len);
	}
}

/* --available: one JSON line per executor; exit 0 if (the named) one is. */
static int cmd_available(const char *name)
{
	const struct nn_executor *const *list = nn_exec_list();
	int rc = name ? NN_EX_UNAVAILABLE : 0;
	char err[NN_ERRLEN];
	if (name && !nn_exec_find(name, err))
		nn_die(NN_EX_DATAERR, "%s", err);
	for (size_t i = 0; list[i]; i++) {
		char why[NN_ERRLEN] = "";
		int ok;
		jv o;
		char *s;
		if (name && strcmp(name, list[i]->name))
			continue;
		ok = list[i]->available(why) == 0;
		o = jv_object_set(jv_object(), jv_string("executor"), jv_string(list[i]->name));
		o = jv_object_set(o, jv_string("available"), jv_bool(ok));
		o = jv_object_set(o, jv_string("why"), ok ? jv_null() : jv_string(why));
		s = nn_json_dump(o);
		jv_free(o);
		printf("%s\n", s);
		free(s);
		if (name && ok)
			rc = 0;
	}
	return rc;
}

/* Remove what `exec` made for an allocation that never ran. */
static void undo_dir(const struct nn_exec_spec *spec)
{
	const char *files[] = { NN_EXEC_STDOUT, NN_EXEC_STDERR, NULL };
	for (int i = 0; files[i]; i++) {
		char *p = nn_exec_path(spec, files[i]);
		unlink(p);
		free(p);
	}
	/* the workdir chain, then dir itself (rmdir only removes empty ones) */
	{
		char *p = nn_xstrdup(spec->workdir);
		while (strlen(p) > strlen(spec->dir) && rmdir(p) == 0) {
			char *slash = strrchr(p, '/');
			*slash = '\0';
		}
		free(p);
	}
	rmdir(spec->dir);
}

static int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "result", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "grace", required_argument, NULL, 'g' },
		{ "available", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *result_file = NULL;
	int64_t timeout_ms = 0, grace_ms = 10000;
	int available = 0, c, status, timed_out = 0, dir_existed;
	char err[NN_ERRLEN], *text, *home, *s;
	size_t len;
	jv json, out;
	struct nn_exec_spec spec;
	struct nn_exec_job job;
	const struct nn_executor *ex;
	struct nn_exec_result res;
	struct nn_exec_stats st;
	struct nn_exec_follow fo, fe;
	struct sigaction sa;
	struct stat sb;
	int64_t t0, deadline = 0, kill_at = 0;
	int forwarded = 0, out_gone = 0, err_gone = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': result_file = optarg; break;
		case 't':
			if (nn_parse_duration_ms(optarg, &timeout_ms) < 0 || timeout_ms <= 0) {
				nn_error("--timeout: '%s' is not a duration", optarg);
				usage(NN_EX_USAGE);
			}
			break;
		case 'g':
			if (nn_parse_duration_ms(optarg, &grace_ms) < 0) {
				nn_error("--grace: '%s' is not a duration", optarg);
				usage(NN_EX_USAGE);
			}
			break;
		case 'a': available = 1; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (available) {
		if (argc - optind > 1)
			usage(NN_EX_USAGE);
		return cmd_available(optind < argc ? argv[optind] : NULL);
	}
	if (argc - optind != 1)
		usage(NN_EX_USAGE);

	text = read_spec(argv[optind], &len);
	json = nn_json_parse(text, len, err);
	free(text);
	if (!jv_is_valid(json)) {
		jv_free(json);
		nn_die(NN_EX_DATAERR, "%s: %s", argv[optind], err);
	}
	home = nn_home(NULL, NULL);
	if (nn_exec_spec_parse(&spec, json, home, err) < 0) {
		free(home);
		nn_die(NN_EX_DATAERR, "%s: %s", argv[optind], err);
	}
	free(home);
	ex = nn_exec_find(spec.executor, err);
	if (!ex) {
		nn_exec_spec_release(&spec);
		nn_die(NN_EX_DATAERR, "%s", err);
	}
	if (ex->available(err) < 0) {
		nn_exec_spec_release(&spec);
		nn_die(NN_EX_UNAVAILABLE, "%s", err);
	}
	nn_exec_job_init(&job, ex, &spec);
	if (ex->prepare(&job, err) < 0) {
		status = job.ex_code ? job.ex_code : NN_EX_DATAERR;
		goto fail;
	}
	dir_existed = stat(spec.dir, &sb) == 0;
	if (nn_exec_dir_create(&spec, err) < 0) {
		status = NN_EX_IOERR;
		goto fail;
	}
	{
		char *po = nn_exec_path(&spec, NN_EXEC_STDOUT), *pe = nn_exec_path(&spec, NN_EXEC_STDERR);
		nn_exec_follow_init(&fo, po, 1);
		nn_exec_follow_init(&fe, pe, 1);
		free(po);
		free(pe);
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;	/* no SA_RESTART: waits return early */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	t0 = nn_mono_ms();
	if (ex->start(&job, err) < 0) {
		status = job.ex_code ? job.ex_code : NN_EX_SOFTWARE;
		nn_exec_follow_release(&fo);
		nn_exec_follow_release(&fe);
		if (!dir_existed)
			undo_dir(&spec);
		goto fail;
	}
	if (timeout_ms)
		deadline = t0 + timeout_ms;

	for (;;) {
		int r = ex->wait(&job, 50, &res, err);
		if (r < 0) {
			nn_error("%s", err);
			ex->signal(&job, SIGKILL, NULL);
			r = ex->wait(&job, -1, &res, err);
			if (r < 0)
				break;
		}
		/* a reader that went away stops its copy, not the job: the
		 * output stays in the allocation's log */
		if (!out_gone && nn_exec_follow_pump(&fo, 1, err) < 0) {
			nn_warn("stdout: %s; the job's output stays in %s", err, fo.path);
			out_gone = 1;
		}
		if (!err_gone && nn_exec_follow_pump(&fe, 2, err) < 0)
			err_gone = 1;
		if (r == 1)
			break;
		if (got_signal) {
			int sig = got_signal;
			got_signal = 0;
			if (!forwarded) {
				forwarded = 1;
				if (ex->signal(&job, sig, err) < 0)
					nn_warn("%s", err);
				kill_at = nn_mono_ms() + grace_ms;
			} else {
				kill_at = nn_mono_ms();	/* a second signal: no more patience */
			}
		}
		if (deadline && !timed_out && nn_mono_ms() >= deadline) {
			timed_out = 1;
			ex->signal(&job, SIGKILL, NULL);
		}
		if (kill_at && nn_mono_ms() >= kill_at) {
			kill_at = 0;
			ex->signal(&job, SIGKILL, NULL);
		}
	}
	if (!out_gone)
		nn_exec_follow_pump(&fo, 1, NULL);
	if (!err_gone)
		nn_exec_follow_pump(&fe, 2, NULL);
	nn_exec_follow_release(&fo);
	nn_exec_follow_release(&fe);
	if (ex->stats(&job, &st, err) < 0) {
		st.cpu_seconds = -1;
		st.memory_peak = st.memory_current = st.pids_current = -1;
	}
	if (ex->cleanup(&job, err) < 0)
		nn_warn("%s", err);
	if (!res.done) {
		status = NN_EX_SOFTWARE;
		nn_error("lost the job: %s", err);
		goto out;
	}
	if (timed_out)
		snprintf(res.reason, sizeof res.reason, "timed out after %lld ms, killed",
			 (long long)timeout_ms);
	out = nn_exec_result_json(&res);
	{
		jv stj = nn_exec_stats_json(&st);
		jv_object_foreach(stj, k, v) {
			if (strcmp(jv_string_value(k), "memory_current") &&
			    strcmp(jv_string_value(k), "pids_current"))
				out = jv_object_set(out, k, v);
			else {
				jv_free(k);
				jv_free(v);
			}
		}
		jv_free(stj);
	}
	out = jv_object_set(out, jv_string("wall_seconds"),
			    jv_number((double)(nn_mono_ms() - t0) / 1000.0));
	if (timed_out)
		out = jv_object_set(out, jv_string("timed_out"), jv_true());
	out = jv_object_set(out, jv_string("id"), jv_string(spec.id));
	out = jv_object_set(out, jv_string("executor"), jv_string(spec.executor));
	out = jv_object_set(out, jv_string("dir"), jv_string(spec.dir));
	s = nn_json_dump(out);
	jv_free(out);
	if (result_file) {
		/* opened, not replaced: FILE may be a fifo or /dev/fd/N */
		char *line = nn_xasprintf("%s\n", s);
		int fd = open(result_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || nn_write_all(fd, line, strlen(line)) < 0)
			nn_error("cannot write '%s': %s", result_file, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(line);
	} else {
		fprintf(stderr, "%s\n", s);
	}
	free(s);
	status = nn_exec_result_status(&res);
out:
	nn_exec_job_release(&job);
	nn_exec_spec_release(&spec);
	return status;
fail:
	nn_error("%s", err);
	nn_exec_job_release(&job);
	nn_exec_spec_release(&spec);
	return status;
}

int main(int argc, char **argv)
{
	nn_log_init(argv[0]);
	if (argc < 2)
		usage(NN_EX_USAGE);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		usage(0);
	if (!strcmp(argv[1], "--version")) {
		printf("nunet-run %s\n", NN_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "exec"))
		return cmd_exec(argc - 1, argv + 1);
	nn_error("unknown command '%s'", argv[1]);
	usage(NN_EX_USAGE);
}
