/*
 * nunet-run — run jobs.  The porcelain (`nunet-run -- CMD`, `ls`, `status`,
 * `logs`, `wait`, `cancel`) asks the local node to start and stop
 * allocations and follows them through the files in their directory
 * (stdout.log, stderr.log, and state.json, which the node rewrites on every
 * change), so a job's output streams while the node only decides.
 * `nunet-run exec SPEC` runs one job spec (a JSON file, or - for stdin) in
 * the foreground through its executor, with no node: it checks the spec,
 * starts the job, streams the job's stdout and stderr to its own, forwards
 * SIGINT/SIGTERM/SIGHUP, writes the result as one JSON line (stderr, or
 * --result FILE), cleans up and exits with the job's exit status
 * (128+signal when it was killed).  `nunet-run exec --shim` is the same
 * job under the node: instead of streaming, it serves the node on
 * DIR/shim.sock (lib/alloc.h describes the protocol) and outlives it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "alloc.h"
#include "client.h"
#include "codec.h"
#include "config.h"
#include "exec/exec.h"
#include "json.h"
#include "lines.h"
#include "log.h"
#include "loop.h"
#include "sock.h"
#include "migrate.h"
#include "stage.h"
#include "storage.h"
#include "util.h"
#include "nunet-run/deploy.h"
#include "nunet-run/ensemble_cmd.h"

static const char usage_text[] =
	"usage: nunet-run [--executor E] [--cpu N] [--memory SIZE] [--image IMG] [--restart POLICY]\n"
	"           [--env K=V] [--workdir D] [--id ID] [--parent ID] [--health-cmd CMD]\n"
	"           [--health-url URL] [--input URL:PATH] [--output PATH:URL]\n"
	"           [--stage-timeout DURATION] [--state-dir D] [--swarm] [-d] -- CMD [ARG ...]\n"
	"       nunet-run deploy [--wait] [--hops N] FILE\n"
	"       nunet-run ls [-a]\n"
	"       nunet-run status ID\n"
	"       nunet-run logs [-f] ID [ALLOC]\n"
	"       nunet-run wait ID\n"
	"       nunet-run cancel [--grace DURATION] ID\n"
	"       nunet-run results [--no-download] ID DIR\n"
	"       nunet-run trace ID\n"
	"       nunet-run checkpoint ID\n"
	"       nunet-run migrate --to DID [--as ID] [--cap FILE] ID\n"
	"       nunet-run validate [--json] FILE\n"
	"       nunet-run convert --from nomad|kubernetes FILE\n"
	"       nunet-run exec [--result FILE] [--timeout DURATION] [--grace DURATION] SPEC\n"
	"       nunet-run exec --available [EXECUTOR]\n"
	"       nunet-run exec --shim [--ready-fd N] [--run N] [--heartbeat DURATION] [--health JSON]\n"
	"           [--log-max SIZE] [--log-keep N] [--adopt] SPEC\n"
	"       nunet-run exec --shim --spare ROOT\n"
	"       nunet-run -h | --help | --version\n";

static const char exec_usage_text[] =
	"usage: nunet-run exec [--result FILE] [--timeout DURATION] [--grace DURATION] SPEC\n"
	"       nunet-run exec --available [EXECUTOR]\n"
	"       nunet-run exec --shim [--ready-fd N] [--run N] [--heartbeat DURATION] [--health JSON]\n"
	"           [--log-max SIZE] [--log-keep N] [--adopt] SPEC\n"
	"       nunet-run exec --shim --spare ROOT\n";

#define SPEC_MAX (1024 * 1024)

static volatile sig_atomic_t got_signal;

static void usage(int code)
{
	fputs(usage_text, code ? stderr : stdout);
	exit(code);
}

static void exec_usage(int code)
{
	fputs(exec_usage_text, code ? stderr : stdout);
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

/* ---- the shim: one allocation's job, served to the node ---- */

struct shim_opts {
	int shim, ready_fd, run;
	int64_t hb_ms;
	const char *health;
	int adopt;
	uint64_t log_max;	/* 0: no cap */
	int log_keep;
};

struct shim {
	const struct shim_opts *o;
	struct nn_loop *l;
	const struct nn_executor *ex;
	const struct nn_exec_spec *spec;
	struct nn_exec_job job;
	int lfd, cfd;
	struct nn_watch *lw, *cw, *jw, *poll_t, *hb_t, *hc_t;
	struct nn_lines in;
	int done, acked;
	jv result;
	int64_t t0, hc_from;
	struct nn_alloc_health h;
	int have_h, fails;
	char *sock_path;
	/* staging (stage.h): inputs before the job, outputs after it */
	jv stage;		/* DIR/stage.json, or null */
	pid_t st_pid;		/* the staging child, or 0 */
	int st_fd, st_sig, st_timed_out;
	struct nn_watch *st_w, *st_timer;
	struct nn_lines st_in;
	jv st_done;		/* the child's last line ({"t":"done",…}) */
	int staging, collecting, job_started;
	int64_t st_t0, st_ms;	/* staging began; it took (ms) */
	jv inputs;		/* what staging fetched (results), or null */
	/* periodic checkpoints (stage.json "checkpoint_ms") */
	struct nn_watch *ck_t;
	pid_t ck_pid;		/* the running `nunet-run checkpoint`, or 0 */
};

static void shim_finish(struct shim *s);
static int shim_start_job(struct shim *s, char *err);

static void shim_ready(const struct shim_opts *o, const char *error)
{
	char *line;
	if (o->ready_fd < 0)
		return;
	if (error) {
		jv v = jv_object_set(jv_object(), jv_string("error"), jv_string(error));
		char *s = nn_json_dump(v);
		jv_free(v);
		line = nn_xasprintf("%s\n", s);
		free(s);
	} else {
		line = nn_xasprintf("{\"ready\":true,\"pid\":%ld}\n", (long)getpid());
	}
	nn_write_all(o->ready_fd, line, strlen(line));	/* a node gone is no reason to stop */
	free(line);
	close(o->ready_fd);
}

static void shim_send(struct shim *s, jv msg)
{
	char *t = nn_json_dump(msg);
	size_t len = strlen(t);
	jv_free(msg);
	t[len] = '\n';
	if (s->cfd >= 0 && nn_write_all(s->cfd, t, len + 1) < 0) {
		nn_warn("lost the node: %s", strerror(errno));
		nn_loop_remove(s->l, s->cw);
		close(s->cfd);
		nn_lines_release(&s->in);
		s->cfd = -1;
		s->cw = NULL;
	}
	free(t);
}

static jv shim_msg(const char *t)
{
	return jv_object_set(jv_object(), jv_string("t"), jv_string(t));
}

static void shim_send_result(struct shim *s)
{
	jv m = shim_msg("result");
	m = jv_object_set(m, jv_string("run"), jv_number(s->o->run));
	m = jv_object_set(m, jv_string("result"), jv_copy(s->result));
	shim_send(s, m);
}

/* Write DIR/result.json (temp + rename) before telling anyone. */
static void shim_keep_result(struct shim *s)
{
	jv o = jv_object_set(jv_object(), jv_string("run"), jv_number(s->o->run));
	char *text, *tmp, *path;
	int fd;
	o = jv_object_set(o, jv_string("result"), jv_copy(s->result));
	text = nn_json_dump(o);
	jv_free(o);
	tmp = nn_exec_path(s->spec, "." NN_ALLOC_RESULT ".tmp");
	path = nn_exec_path(s->spec, NN_ALLOC_RESULT);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || nn_write_all(fd, text, strlen(text)) < 0 || nn_write_all(fd, "\n", 1) < 0 ||
	    close(fd) < 0 || rename(tmp, path) < 0)
		nn_warn("cannot write '%s': %s", path, strerror(errno));
	free(text);
	free(tmp);
	free(path);
}

/* ---- staging: a child moves the bytes, the loop stays free ---- */

static int stage_list_len(struct shim *s, const char *which)
{
	jv l;
	int n;
	if (jv_get_kind(s->stage) != JV_KIND_OBJECT)
		return 0;
	l = jv_object_get(jv_copy(s->stage), jv_string(which));
	n = jv_get_kind(l) == JV_KIND_ARRAY ? jv_array_length(jv_copy(l)) : 0;
	jv_free(l);
	return n;
}

static void stage_signal(struct shim *s, int sig)
{
	if (s->st_pid > 0) {
		if (!s->st_sig && !s->st_timed_out)
			s->st_sig = sig;
		kill(s->st_pid, sig == SIGKILL ? SIGKILL : SIGTERM);
	}
}

static void stage_on_timer(struct nn_loop *l, void *arg)
{
	struct shim *s = arg;
	nn_loop_remove(l, s->st_timer);
	s->st_timer = NULL;
	if (s->st_pid > 0 && !s->st_sig) {
		s->st_timed_out = 1;
		kill(s->st_pid, SIGTERM);
	}
}

/* The staging child is done (its pipe ended): reap it and go on. */
static void stage_end(struct shim *s)
{
	char err[NN_ERRLEN], why[NN_ERRLEN * 2];
	const char *e = NULL;
	jv done = s->st_done, ok, results;
	int status = 0, collect = s->collecting;
	int64_t tmo = 0;

	nn_loop_remove(s->l, s->st_w);
	if (s->st_timer)
		nn_loop_remove(s->l, s->st_timer);
	s->st_w = s->st_timer = NULL;
	close(s->st_fd);
	s->st_fd = -1;
	nn_lines_release(&s->st_in);
	while (waitpid(s->st_pid, &status, 0) < 0 && errno == EINTR)
		;
	s->st_pid = 0;
	s->st_done = jv_null();
	if (!collect)
		s->st_ms = nn_mono_ms() - s->st_t0;
	ok = jv_get_kind(done) == JV_KIND_OBJECT ? jv_object_get(jv_copy(done), jv_string("ok"))
						   : jv_false();
	results = jv_get_kind(done) == JV_KIND_OBJECT
		? jv_object_get(jv_copy(done), jv_string("results")) : jv_array();
	if (!jv_is_valid(results) || jv_get_kind(results) != JV_KIND_ARRAY) {
		jv_free(results);
		results = jv_array();
	}
	nn_json_get_int(s->stage, "timeout_ms", &tmo, NULL);
	if (jv_get_kind(ok) != JV_KIND_TRUE) {
		if (s->st_timed_out && jv_get_kind(done) == JV_KIND_OBJECT &&
		    nn_json_get_str(done, "error", &e, NULL) == 0)
			snprintf(why, sizeof why, "timed out after %lld ms: %.300s", (long long)tmo, e);
		else if (s->st_timed_out)
			snprintf(why, sizeof why, "timed out after %lld ms", (long long)tmo);
		else if (jv_get_kind(done) == JV_KIND_OBJECT &&
			 nn_json_get_str(done, "error", &e, NULL) == 0)
			snprintf(why, sizeof why, "%s", e);
		else if (WIFSIGNALED(status))
			snprintf(why, sizeof why, "the staging process was killed by signal %d",
				 WTERMSIG(status));
		else
			snprintf(why, sizeof why, "the staging process ended without a report");
	}
	if (collect) {
		s->collecting = 0;
		s->result = jv_object_set(s->result, jv_string("outputs"), results);
		if (jv_get_kind(ok) != JV_KIND_TRUE)
			s->result = jv_object_set(s->result, jv_string("outputs_error"), jv_string(why));
		shim_finish(s);
	} else if (jv_get_kind(ok) == JV_KIND_TRUE) {
		s->staging = 0;
		s->inputs = results;
		shim_send(s, shim_msg("staged"));
		if (shim_start_job(s, err) < 0) {
			nn_error("%s", err);
			s->done = 1;
			s->result = jv_object_set(jv_object(), jv_string("state"), jv_string("lost"));
			s->result = jv_object_set(s->result, jv_string("code"), jv_number(-1));
			s->result = jv_object_set(s->result, jv_string("signal"), jv_number(0));
			s->result = jv_object_set(s->result, jv_string("reason"), jv_string(err));
			shim_finish(s);
		} else {
			shim_send(s, shim_msg("started"));
		}
	} else {
		/* nothing was started; staging took back what it fetched */
		jv r = jv_object();
		char *reason;
		s->staging = 0;
		s->done = 1;
		jv_free(results);
		if (s->st_sig) {
			r = jv_object_set(r, jv_string("state"), jv_string("killed"));
			r = jv_object_set(r, jv_string("signal"), jv_number(s->st_sig));
			reason = nn_xasprintf("cancelled while staging (signal %d)", s->st_sig);
		} else {
			r = jv_object_set(r, jv_string("state"), jv_string("failed"));
			r = jv_object_set(r, jv_string("signal"), jv_number(0));
			r = jv_object_set(r, jv_string("step"), jv_string("staging"));
			reason = nn_xasprintf("staging: %s", why);
		}
		r = jv_object_set(r, jv_string("code"), jv_number(-1));
		r = jv_object_set(r, jv_string("reason"), jv_string(reason));
		free(reason);
		s->result = r;
		shim_finish(s);
	}
	jv_free(ok);
	jv_free(done);
}

static void stage_on_pipe(struct nn_loop *l, int fd, uint32_t ev, void *arg)
{
	struct shim *s = arg;
	char err[NN_ERRLEN];
	int eof = 0, code;
	eof = nn_lines_drain_fd(&s->st_in, fd, 16);
	for (;;) {
		jv v;
		const char *t;
		int k = nn_jsonl_next(&s->st_in, &v, &code, err);
		if (k == NN_JSONL_NONE)
			break;
		if (k == NN_JSONL_ERROR) {
			nn_warn("staging: %s", err);
			continue;
		}
		if (nn_json_get_str(v, "t", &t, NULL) == 0 && !strcmp(t, "done")) {
			jv_free(s->st_done);
			s->st_done = v;
			continue;
		}
		shim_send(s, v);	/* progress: the node makes it an event */
	}
	if (eof)
		stage_end(s);
}

/* Start the child for inputs (collect 0) or outputs (1). */
static int stage_begin(struct shim *s, int collect, char *err)
{
	jv items = jv_object_get(jv_copy(s->stage), jv_string(collect ? "outputs" : "inputs"));
	int64_t tmo = 0;
	nn_json_get_int(s->stage, "timeout_ms", &tmo, NULL);
	s->st_pid = nn_stage_spawn(items, s->spec->dir, collect, tmo, &s->st_fd, err);
	jv_free(items);
	if (s->st_pid < 0) {
		s->st_pid = 0;
		return -1;
	}
	nn_lines_init(&s->st_in, 4 * 1024 * 1024);
	s->st_done = jv_null();
	s->st_sig = s->st_timed_out = 0;
	s->st_w = nn_loop_fd(s->l, s->st_fd, EPOLLIN, stage_on_pipe, s, err);
	if (!s->st_w) {
		kill(s->st_pid, SIGKILL);
		waitpid(s->st_pid, NULL, 0);
		close(s->st_fd);
		nn_lines_release(&s->st_in);
		s->st_pid = 0;
		return -1;
	}
	if (tmo > 0)
		s->st_timer = nn_loop_timer(s->l, tmo, 0, stage_on_timer, s, NULL);
	if (collect)
		s->collecting = 1;
	else {
		s->staging = 1;
		s->st_t0 = nn_mono_ms();
	}
	return 0;
}

static void shim_done(struct shim *s, struct nn_exec_result *res)
{
	char err[NN_ERRLEN];
	struct nn_exec_stats st;
	jv out, stj;

	s->done = 1;
	if (s->jw)
		nn_loop_remove(s->l, s->jw);
	if (s->poll_t)
		nn_loop_remove(s->l, s->poll_t);
	if (s->hc_t)
		nn_loop_remove(s->l, s->hc_t);
	s->jw = s->poll_t = s->hc_t = NULL;
	if (s->ex->stats(&s->job, &st, err) < 0) {
		st.cpu_seconds = -1;
		st.memory_peak = st.memory_current = st.pids_current = -1;
	}
	out = nn_exec_result_json(res);
	stj = nn_exec_stats_json(&st);
	jv_object_foreach(stj, k, v) {
		if (strcmp(jv_string_value(k), "memory_current") && strcmp(jv_string_value(k), "pids_current"))
			out = jv_object_set(out, k, v);
		else {
			jv_free(k);
			jv_free(v);
		}
	}
	jv_free(stj);
	out = jv_object_set(out, jv_string("wall_seconds"),
			    jv_number((double)(nn_mono_ms() - s->t0) / 1000.0));
	out = jv_object_set(out, jv_string("status"), jv_number(nn_exec_result_status(res)));
	s->result = out;
	if (stage_list_len(s, "outputs") > 0 && stage_begin(s, 1, err) < 0) {
		s->result = jv_object_set(s->result, jv_string("outputs_error"), jv_string(err));
		shim_finish(s);
	} else if (!s->collecting) {
		shim_finish(s);
	}
}

/* The result is complete: keep it, tell the node, clean up. */
static void shim_finish(struct shim *s)
{
	char err[NN_ERRLEN];
	if (s->st_ms >= 0 && jv_get_kind(s->stage) == JV_KIND_OBJECT)
		s->result = jv_object_set(s->result, jv_string("stage_seconds"),
					  jv_number((double)s->st_ms / 1000.0));
	if (jv_get_kind(s->inputs) == JV_KIND_ARRAY)
		s->result = jv_object_set(s->result, jv_string("inputs"), jv_copy(s->inputs));
	shim_keep_result(s);
	/* tell first, then clean up: the node starts no new run before this
	 * shim has gone, so nothing of the next run meets what is removed */
	shim_send_result(s);
	if (s->job_started && s->ex->cleanup(&s->job, err) < 0)
		nn_warn("%s", err);
}

static void shim_check_job(struct shim *s)
{
	struct nn_exec_result res;
	char err[NN_ERRLEN];
	int r;
	if (s->done)
		return;
	r = s->ex->wait(&s->job, 0, &res, err);
	if (r < 0) {
		nn_error("%s", err);
		s->ex->signal(&s->job, SIGKILL, NULL);
		r = s->ex->wait(&s->job, -1, &res, err);
		if (r < 0) {
			memset(&res, 0, sizeof res);
			res.done = 1;
			res.code = -1;
			snprintf(res.reason, sizeof res.reason, "exit status lost: %.200s", err);
			r = 1;
		}
	}
	if (r == 1)
		shim_done(s, &res);
}

static void shim_on_job(struct nn_loop *l, int fd, uint32_t ev, void *arg)
{
	shim_check_job(arg);
}

static void shim_on_poll(struct nn_loop *l, void *arg)
{
	shim_check_job(arg);
}

/*
 * Keep a log under its cap: when NAME is over it, NAME.(k-1) becomes
 * NAME.k …, NAME's content is copied to NAME.1 and NAME is truncated.  The
 * job keeps its descriptor (opened for appending), so it writes on at the
 * new end; followers see the file shrink and start again at 0.  What the
 * job writes between the copy and the truncation (a few microseconds) is
 * lost: the price of rotating a file the shim does not sit in front of.
 */
static void rotate_log(struct shim *s, const char *name)
{
	char *path = nn_exec_path(s->spec, name), *from, *to;
	struct stat st;
	int in, out;
	if (stat(path, &st) < 0 || (uint64_t)st.st_size <= s->o->log_max) {
		free(path);
		return;
	}
	for (int k = s->o->log_keep; k > 1; k--) {
		from = nn_xasprintf("%s.%d", path, k - 1);
		to = nn_xasprintf("%s.%d", path, k);
		rename(from, to);
		free(from);
		free(to);
	}
	to = nn_xasprintf("%s.1", path);
	in = open(path, O_RDWR | O_CLOEXEC);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in >= 0 && out >= 0) {
		char buf[65536];
		ssize_t n;
		while ((n = read(in, buf, sizeof buf)) > 0)
			if (nn_write_all(out, buf, (size_t)n) < 0)
				break;
		if (ftruncate(in, 0) < 0)
			nn_warn("cannot truncate '%s': %s", path, strerror(errno));
	} else {
		nn_warn("cannot rotate '%s': %s", path, strerror(errno));
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(to);
	free(path);
}

static void rotate_logs(struct shim *s)
{
	if (!s->o->log_max)
		return;
	rotate_log(s, NN_EXEC_STDOUT);
	rotate_log(s, NN_EXEC_STDERR);
}

static void shim_on_hb(struct nn_loop *l, void *arg)
{
	struct shim *s = arg;
	jv m;
	rotate_logs(s);
	if (s->cfd < 0)
		return;
	m = jv_object_set(shim_msg("hb"), jv_string("ts"), jv_number((double)nn_now_ms()));
	if (!s->done && !s->staging) {
		struct nn_exec_stats st;
		if (s->ex->stats(&s->job, &st, NULL) == 0)
			m = jv_object_set(m, jv_string("stats"), nn_exec_stats_json(&st));
	}
	shim_send(s, m);
}

static void shim_on_health(struct nn_loop *l, void *arg)
{
	struct shim *s = arg;
	char msg[NN_ERRLEN];
	int ok;
	jv m;
	if (s->done || nn_mono_ms() < s->hc_from)
		return;
	ok = nn_alloc_health_check(&s->h, s->spec, msg);
	s->fails = ok ? 0 : s->fails + 1;
	m = jv_object_set(shim_msg("health"), jv_string("ok"), jv_bool(ok));
	m = jv_object_set(m, jv_string("failures"), jv_number(s->fails));
	m = jv_object_set(m, jv_string("message"), jv_string(msg));
	shim_send(s, m);
}

static void shim_on_conn(struct nn_loop *l, int fd, uint32_t ev, void *arg)
{
	struct shim *s = arg;
	char err[NN_ERRLEN];
	int eof = 0, code;
	ssize_t r = nn_lines_read_fd(&s->in, fd);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		eof = 1;
	for (;;) {
		jv v;
		const char *t;
		int64_t n;
		int k = nn_jsonl_next(&s->in, &v, &code, err);
		if (k == NN_JSONL_NONE)
			break;
		if (k == NN_JSONL_ERROR) {
			nn_warn("node: %s", err);
			continue;
		}
		if (nn_json_get_str(v, "t", &t, NULL) == 0) {
			if (!strcmp(t, "signal") && nn_json_get_int(v, "signal", &n, NULL) == 0 &&
			    n > 0 && n < NSIG && !s->done) {
				if (s->staging)
					stage_signal(s, (int)n);
				else if (s->ex->signal(&s->job, (int)n, err) < 0)
					nn_warn("%s", err);
			} else if (!strcmp(t, "ack") && s->done &&
				   nn_json_get_int(v, "run", &n, NULL) == 0 && n == s->o->run) {
				s->acked = 1;
				nn_loop_stop(l);
			}
		}
		jv_free(v);
	}
	if (eof && s->cfd == fd) {
		nn_loop_remove(l, s->cw);
		close(s->cfd);
		nn_lines_release(&s->in);
		s->cfd = -1;
		s->cw = NULL;
	}
}

static void shim_on_accept(struct nn_loop *l, int lfd, uint32_t ev, void *arg)
{
	struct shim *s = arg;
	char err[NN_ERRLEN];
	jv m;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	uid_t uid;
	if (fd < 0)
		return;
	if (nn_sock_peer(fd, &uid, NULL) < 0 || uid != geteuid()) {
		close(fd);
		return;
	}
	if (s->cfd >= 0) {	/* a new node replaces the old one */
		nn_loop_remove(l, s->cw);
		close(s->cfd);
		nn_lines_release(&s->in);
	}
	s->cfd = fd;
	nn_lines_init(&s->in, 64 * 1024);
	s->cw = nn_loop_fd(l, fd, EPOLLIN | EPOLLRDHUP, shim_on_conn, s, err);
	if (!s->cw) {
		nn_warn("%s", err);
		close(fd);
		nn_lines_release(&s->in);
		s->cfd = -1;
		return;
	}
	m = jv_object_set(shim_msg("hello"), jv_string("id"), jv_string(s->spec->id));
	m = jv_object_set(m, jv_string("pid"), jv_number(getpid()));
	m = jv_object_set(m, jv_string("run"), jv_number(s->o->run));
	m = jv_object_set(m, jv_string("done"), jv_bool(s->done && !s->collecting));
	m = jv_object_set(m, jv_string("staging"), jv_bool(s->staging));
	m = jv_object_set(m, jv_string("started"), jv_bool(s->job_started));
	m = jv_object_set(m, jv_string("job"), jv_string(s->job.handle));
	shim_send(s, m);
	if (s->done && !s->collecting)
		shim_send_result(s);
}

static void shim_on_signal(struct nn_loop *l, int sig, void *arg)
{
	struct shim *s = arg;
	char err[NN_ERRLEN];
	if (s->staging)
		stage_signal(s, sig);
	else if (!s->done && s->ex->signal(&s->job, sig, err) < 0)
		nn_warn("%s", err);
}

/* One request to `to` through the node of c: the reply's body, or
 * invalid and err (the refusal's message). */
static jv call_or_err(struct nn_client *c, const char *to, const char *be, jv body, char *err)
{
	enum nn_code code;
	char e[NN_ERRLEN];
	jv r = nn_run_call(c, to, be, body, 60000, &code, e);
	if (!jv_is_valid(r))
		nn_seterr(err, "%s: %s", be, e);
	return r;
}

/* Fetch from the orchestrator named in r (stage.json "restore" with
 * "fetch") a pack of what this node's snapshot repository lacks of the
 * kept snapshot, into path; its size into *bytes.  -1 + err. */
static int fetch_snapshot(jv r, const char *path, uint64_t *bytes, char *err)
{
	const char *home, *from, *dep, *name, *commit, *repo, *x;
	struct nn_client c;
	enum nn_code code;
	char e[NN_ERRLEN], *xfer = NULL;
	uint8_t *buf = NULL;
	int64_t size = -1, off = 0;
	int fd = -1, rc = -1;
	jv haves, b;

	if (nn_json_get_str(r, "home", &home, NULL) < 0 || nn_json_get_str(r, "fetch", &from, NULL) < 0 ||
	    nn_json_get_str(r, "deployment", &dep, NULL) < 0 || nn_json_get_str(r, "name", &name, NULL) < 0 ||
	    nn_json_get_str(r, "commit", &commit, NULL) < 0 || nn_json_get_str(r, "repo", &repo, NULL) < 0)
		return nn_seterr(err, "%s: restore: incomplete", NN_STAGE_FILE);
	if (nn_client_open(&c, home, NULL, &code, e) < 0) {
		nn_client_close(&c);
		return nn_seterr(err, "cannot reach this node: %s", e);
	}
	haves = nn_snapshot_haves(repo, e);
	if (!jv_is_valid(haves)) {
		jv_free(haves);
		haves = jv_array();
	}
	b = jv_object_set(jv_object(), jv_string("deployment"), jv_string(dep));
	b = jv_object_set(b, jv_string("name"), jv_string(name));
	b = jv_object_set(b, jv_string("commit"), jv_string(commit));
	b = jv_object_set(b, jv_string("haves"), haves);
	/* the orchestrator packs off its loop: asked again while pending */
	{
		int64_t until = nn_mono_ms() + 600000;
		jv ask = b;
		for (;;) {
			jv pd;
			b = call_or_err(&c, from, "/public/deploy/snapshot/pack", jv_copy(ask), err);
			if (!jv_is_valid(b))
				break;
			pd = jv_object_get(jv_copy(b), jv_string("pending"));
			if (jv_get_kind(pd) != JV_KIND_TRUE) {
				jv_free(pd);
				break;
			}
			jv_free(pd);
			jv_free(b);
			b = jv_invalid();
			if (nn_mono_ms() > until) {
				nn_seterr(err, "%s did not pack the snapshot within 10 minutes", from);
				break;
			}
			usleep(50000);
		}
		jv_free(ask);
	}
	if (!jv_is_valid(b))
		goto out;
	if (nn_json_get_str(b, "xfer", &x, NULL) < 0 || nn_json_get_int(b, "size", &size, NULL) < 0 || size < 0) {
		jv_free(b);
		nn_seterr(err, "%s offered no snapshot pack", from);
		goto out;
	}
	xfer = nn_xstrdup(x);
	jv_free(b);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		nn_seterr(err, "cannot create '%s': %s", path, strerror(errno));
		goto out;
	}
	buf = nn_xmalloc(NN_MIGRATE_CHUNK + 3);
	while (off < size) {
		const char *data;
		int64_t next = -1;
		int len;
		b = jv_object_set(jv_object(), jv_string("xfer"), jv_string(xfer));
		b = call_or_err(&c, from, "/public/deploy/snapshot/read",
				jv_object_set(b, jv_string("offset"), jv_number((double)off)), err);
		if (!jv_is_valid(b))
			goto out;
		if (nn_json_get_str(b, "data", &data, NULL) < 0 || nn_json_get_int(b, "offset", &next, NULL) < 0 ||
		    strlen(data) > nn_b64_len(NN_MIGRATE_CHUNK) ||
		    (len = nn_b64_decode(buf, NN_MIGRATE_CHUNK + 3, data, strlen(data))) <= 0 ||
		    next != off + len || next > size) {
			jv_free(b);
			nn_seterr(err, "a bad piece of the snapshot pack at offset %lld", (long long)off);
			goto out;
		}
		jv_free(b);
		if (nn_write_all(fd, buf, (size_t)len) < 0) {
			nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
			goto out;
		}
		off = next;
	}
	*bytes = (uint64_t)size;
	rc = 0;
out:
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
	if (rc < 0)
		unlink(path);
	free(buf);
	free(xfer);
	nn_client_close(&c);
	return rc;
}

/* Unpack a snapshot pack (received, or fetched from the orchestrator) and
 * restore its commit into the state directory (stage.json "restore");
 * nothing to do without one. */
static int shim_restore(struct shim *s, char *err)
{
	const char *pack, *commit, *repo, *sd;
	char ref[NN_ERRLEN], e[NN_ERRLEN];
	jv r;
	char *dir, *fetched = NULL;
	uint64_t bytes = 0;
	int rc;
	if (jv_get_kind(s->stage) != JV_KIND_OBJECT || !nn_json_has(s->stage, "restore"))
		return 0;
	r = jv_object_get(jv_copy(s->stage), jv_string("restore"));
	if (nn_json_has(r, "fetch") && nn_json_get_str(r, "home", &pack, NULL) == 0) {
		char *d = nn_xasprintf("%s/snapshots", pack);
		mkdir(d, 0700);
		free(d);
		fetched = nn_xasprintf("%s/snapshots/fetch.%ld.pack", pack, (long)getpid());
		if (fetch_snapshot(r, fetched, &bytes, e) < 0) {
			nn_seterr(err, "restoring the state: the last snapshot could not be fetched: %s", e);
			free(fetched);
			jv_free(r);
			return -1;
		}
		r = jv_object_set(r, jv_string("pack"), jv_string(fetched));
	}
	if (nn_json_get_str(r, "pack", &pack, NULL) < 0 || nn_json_get_str(r, "commit", &commit, NULL) < 0 ||
	    nn_json_get_str(r, "repo", &repo, NULL) < 0 ||
	    nn_json_get_str(s->stage, "state_dir", &sd, NULL) < 0) {
		jv_free(r);
		free(fetched);
		return nn_seterr(err, "%s: restore: incomplete", NN_STAGE_FILE);
	}
	nn_migrate_ref(s->spec->id, ref);
	dir = nn_xasprintf("%s/%s", s->spec->dir, sd);
	rc = nn_snapshot_unpack(repo, pack, commit, ref, e);
	if (rc == 0)
		rc = nn_snapshot_restore(repo, commit, dir, e);
	if (rc < 0)
		nn_seterr(err, "restoring the state (commit %.12s): %s", commit, e);
	else
		unlink(pack);
	if (rc == 0 && fetched)
		nn_info("restored the state from snapshot %.12s (%llu bytes fetched)", commit,
			(unsigned long long)bytes);
	if (fetched)
		unlink(fetched);
	free(fetched);
	free(dir);
	jv_free(r);
	return rc;
}

/* The checkpoint child, when it has ended (or, with wait, once it has). */
static void ck_reap(struct shim *s, int wait)
{
	int st;
	pid_t r;
	if (s->ck_pid <= 0)
		return;
	if (wait)
		kill(s->ck_pid, SIGTERM);
	while ((r = waitpid(s->ck_pid, &st, wait ? 0 : WNOHANG)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return;
	if (r == s->ck_pid && !wait && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
		nn_warn("the periodic checkpoint failed (status %d): see above",
			WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	s->ck_pid = 0;
}

/* Every checkpoint_ms while the job runs: `nunet-run checkpoint ID`
 * against this node (NUNET_HOME), which commits the state directory and,
 * for a deployed allocation, pushes it to the orchestrator.  One at a
 * time: a tick while the last one runs is skipped.  Its messages go to
 * shim.log. */
static void shim_on_checkpoint(struct nn_loop *l, void *arg)
{
	struct shim *s = arg;
	const char *home = NULL;
	pid_t pid;
	(void)l;
	ck_reap(s, 0);
	if (s->ck_pid > 0 || !s->job_started || s->done || s->staging ||
	    nn_json_get_str(s->stage, "home", &home, NULL) < 0)
		return;
	pid = fork();
	if (pid < 0) {
		nn_warn("cannot start a checkpoint: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		sigset_t none;
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (fd >= 0)
			dup2(fd, 1);
		setenv("NUNET_HOME", home, 1);
		unsetenv("NUNET_SOCKET");
		unsetenv("NUNET_KEY");
		unsetenv("NUNET_CAP");
		execl("/proc/self/exe", "nunet-run", "checkpoint", s->spec->id, (char *)NULL);
		_exit(127);
	}
	s->ck_pid = pid;
}

/* Watch the started job: its wait fd, or a timer; and health checks. */
static int shim_watch_job(struct shim *s, char *err)
{
	if (s->job.wait_fd >= 0)
		s->jw = nn_loop_fd(s->l, s->job.wait_fd, EPOLLIN, shim_on_job, s, err);
	if (!s->jw)
		s->poll_t = nn_loop_timer(s->l, 50, 50, shim_on_poll, s, err);
	if (s->have_h) {
		s->hc_from = nn_mono_ms() + s->h.start_ms;
		s->hc_t = nn_loop_timer(s->l, s->h.interval_ms, s->h.interval_ms, shim_on_health, s, err);
	}
	return s->jw || s->poll_t ? 0 : -1;
}

/* After staging: start the job (run time counts from here). */
static int shim_start_job(struct shim *s, char *err)
{
	if (s->ex->prepare(&s->job, err) < 0 || nn_exec_dir_create(s->spec, err) < 0 ||
	    s->ex->start(&s->job, err) < 0)
		return -1;
	s->job_started = 1;
	s->t0 = nn_mono_ms();
	if (shim_watch_job(s, err) < 0) {
		s->ex->signal(&s->job, SIGKILL, NULL);
		return -1;
	}
	shim_check_job(s);
	return 0;
}

static int shim_main(const struct shim_opts *o, struct nn_exec_spec *spec,
		     const struct nn_executor *ex)
{
	struct shim s;
	char err[NN_ERRLEN];
	int status = 0;

	memset(&s, 0, sizeof s);
	s.o = o;
	s.ex = ex;
	s.spec = spec;
	s.lfd = s.cfd = s.st_fd = -1;
	s.result = jv_null();
	s.stage = s.st_done = s.inputs = jv_null();
	s.st_ms = -1;
	signal(SIGPIPE, SIG_IGN);
	if (o->health) {
		jv h = nn_json_parse(o->health, strlen(o->health), err);
		if (!jv_is_valid(h) || nn_alloc_health_parse(h, &s.h, err) < 0) {
			jv_free(h);
			shim_ready(o, err);
			nn_error("--health: %s", err);
			return NN_EX_USAGE;
		}
		jv_free(h);
		s.have_h = 1;
	}
	nn_exec_job_init(&s.job, ex, spec);
	if (ex->available(err) < 0) {
		status = NN_EX_UNAVAILABLE;
		goto fail;
	}
	s.stage = nn_stage_read(spec->dir, err);
	if (!jv_is_valid(s.stage)) {
		status = NN_EX_IOERR;
		goto fail;
	}
	/* a migrated allocation's state comes first (migrate.h) */
	if (!o->adopt && o->run == 1 && shim_restore(&s, err) < 0) {
		status = NN_EX_SOFTWARE;
		goto fail;
	}
	/* inputs are fetched once, before the first run */
	s.staging = !o->adopt && o->run == 1 && stage_list_len(&s, "inputs") > 0;
	s.t0 = nn_mono_ms();
	if (o->adopt) {
		if (ex->adopt(&s.job, err) < 0) {
			status = NN_EX_UNAVAILABLE;
			goto fail;
		}
		s.job_started = 1;
	} else if (s.staging) {
		if (ex->prepare(&s.job, err) < 0) {	/* checked now, started later */
			status = s.job.ex_code ? s.job.ex_code : NN_EX_SOFTWARE;
			goto fail;
		}
	} else if (ex->prepare(&s.job, err) < 0 || nn_exec_dir_create(spec, err) < 0 ||
		   ex->start(&s.job, err) < 0) {
		status = s.job.ex_code ? s.job.ex_code : NN_EX_SOFTWARE;
		goto fail;
	} else {
		s.job_started = 1;
	}
	s.l = nn_loop_new(err);
	if (!s.l) {
		status = NN_EX_SOFTWARE;
		goto fail_job;
	}
	s.sock_path = nn_exec_path(spec, NN_ALLOC_SOCK);
	unlink(s.sock_path);
	s.lfd = nn_sock_listen(s.sock_path, 0600, err);
	if (s.lfd < 0) {
		status = NN_EX_IOERR;
		goto fail_job;
	}
	if (!(s.lw = nn_loop_fd(s.l, s.lfd, EPOLLIN, shim_on_accept, &s, err)) ||
	    !(s.hb_t = nn_loop_timer(s.l, o->hb_ms, o->hb_ms, shim_on_hb, &s, err)) ||
	    nn_loop_signal(s.l, SIGTERM, shim_on_signal, &s, err) < 0 ||
	    nn_loop_signal(s.l, SIGINT, shim_on_signal, &s, err) < 0 ||
	    nn_loop_signal(s.l, SIGHUP, shim_on_signal, &s, err) < 0) {
		status = NN_EX_SOFTWARE;
		goto fail_job;
	}
	{
		int64_t every = 0;
		if (jv_get_kind(s.stage) == JV_KIND_OBJECT &&
		    nn_json_get_int(s.stage, "checkpoint_ms", &every, NULL) == 0 && every > 0 &&
		    !(s.ck_t = nn_loop_timer(s.l, every, every, shim_on_checkpoint, &s, err))) {
			status = NN_EX_SOFTWARE;
			goto fail_job;
		}
	}
	if (s.staging) {
		s.staging = 0;
		if (stage_begin(&s, 0, err) < 0) {
			status = NN_EX_SOFTWARE;
			goto fail_job;
		}
	} else if (shim_watch_job(&s, err) < 0) {
		status = NN_EX_SOFTWARE;
		goto fail_job;
	}
	shim_ready(o, NULL);
	if (!s.staging)
		shim_check_job(&s);	/* it may be over already (adopted, or quick) */
	if (nn_loop_run(s.l) < 0)
		nn_error("event loop: %s", strerror(errno));
	unlink(s.sock_path);
	status = 0;
	goto out;
fail_job:
	nn_error("%s", err);
	shim_ready(o, err);
	if (s.job_started) {
		s.ex->signal(&s.job, SIGKILL, NULL);
		s.ex->cleanup(&s.job, NULL);
	}
	if (!status)
		status = NN_EX_SOFTWARE;
	goto out;
fail:
	nn_error("%s", err);
	shim_ready(o, err);
out:
	if (s.cfd >= 0) {
		close(s.cfd);
		nn_lines_release(&s.in);
	}
	if (s.lfd >= 0)
		close(s.lfd);
	nn_loop_free(s.l);
	free(s.sock_path);
	jv_free(s.result);
	jv_free(s.stage);
	jv_free(s.st_done);
	jv_free(s.inputs);
	if (s.st_pid > 0) {
		kill(s.st_pid, SIGKILL);
		waitpid(s.st_pid, NULL, 0);
	}
	ck_reap(&s, 1);
	if (s.have_h)
		nn_alloc_health_release(&s.h);
	nn_exec_job_release(&s.job);
	return status;
}

/* 1 when path names a file inside the directory root. */
static int under(const char *root, const char *path)
{
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	return n > 0 && !strncmp(path, root, n) && path[n] == '/' && nn_path_plain(path + n + 1);
}

/*
 * A spare shim (exec --shim --spare ROOT): started by a node before any
 * allocation needs it, so that starting one does not wait for a program
 * to be loaded.  It reads one line from stdin, {"argv":[…],"log":PATH}:
 * the arguments of `nunet-run exec` it is to go on with (a shim of an
 * allocation under ROOT) and the file for its stderr (DIR/shim.log).  End
 * of file instead (its node stopped or died): *nargv is NULL, nothing to
 * do.  -1 + err for a line that is not such.  *nargv is freed by the
 * caller (nn_exec_strv_free).
 */
static int spare_wait(const char *root, int *nargc, char ***nargv, char *err)
{
	struct nn_buf b;
	char chunk[4096], *nl = NULL, **v = NULL;
	const char *log;
	ssize_t r;
	jv o, a;
	int n, fd, rc = -1;

	*nargv = NULL;
	*nargc = 0;
	nn_buf_init(&b, 64 * 1024);
	while (!nl) {
		r = read(0, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			nn_buf_release(&b);
			return r == 0 ? 0 : nn_seterr(err, "spare: cannot read stdin: %s", strerror(errno));
		}
		if (nn_buf_add(&b, chunk, (size_t)r) < 0) {
			nn_buf_release(&b);
			return nn_seterr(err, "spare: a line longer than 64 KiB");
		}
		nl = memchr(b.data, '\n', b.len);
	}
	o = nn_json_parse(b.data, (size_t)(nl - b.data), err);
	nn_buf_release(&b);
	if (!jv_is_valid(o)) {
		jv_free(o);
		return -1;
	}
	a = jv_get_kind(o) == JV_KIND_OBJECT ? jv_object_get(jv_copy(o), jv_string("argv")) : jv_invalid();
	n = jv_get_kind(a) == JV_KIND_ARRAY ? jv_array_length(jv_copy(a)) : 0;
	if (n < 2 || n > 32 || nn_json_get_str(o, "log", &log, NULL) < 0 || !under(root, log)) {
		nn_seterr(err, "spare: expected {\"argv\":[\"exec\",…],\"log\":PATH under %s}", root);
		goto out;
	}
	v = nn_xcalloc((size_t)n + 1, sizeof *v);
	for (int i = 0; i < n; i++) {
		jv s = jv_array_get(jv_copy(a), i);
		if (jv_get_kind(s) == JV_KIND_STRING)
			v[i] = nn_xstrdup(jv_string_value(s));
		jv_free(s);
		if (!v[i] || !strcmp(v[i], "--spare")) {
			nn_seterr(err, "spare: argv[%d] is not an argument it takes", i);
			goto out;
		}
	}
	if (strcmp(v[0], "exec") || !under(root, v[n - 1])) {
		nn_seterr(err, "spare: not the arguments of a shim under %s", root);
		goto out;
	}
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		nn_seterr(err, "spare: cannot open '%s': %s", log, strerror(errno));
		goto out;
	}
	if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
		nn_seterr(err, "spare: cannot use '%s': %s", log, strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);	/* the node's pipe: nothing more comes on it */
		close(fd);
	}
	*nargv = v;
	*nargc = n;
	v = NULL;
	rc = 0;
out:
	nn_exec_strv_free(v);
	jv_free(a);
	jv_free(o);
	return rc;
}

static int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "result", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "grace", required_argument, NULL, 'g' },
		{ "available", no_argument, NULL, 'a' },
		{ "shim", no_argument, NULL, 'S' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "run", required_argument, NULL, 'N' },
		{ "heartbeat", required_argument, NULL, 'B' },
		{ "health", required_argument, NULL, 'C' },
		{ "adopt", no_argument, NULL, 'A' },
		{ "spare", no_argument, NULL, 'P' },
		{ "log-max", required_argument, NULL, 'L' },
		{ "log-keep", required_argument, NULL, 'K' },
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
	int forwarded = 0, out_gone = 0, err_gone = 0, spare = 0;
	struct shim_opts so = { 0, -1, 1, 1000, NULL, 0, 0, 1 };
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': result_file = optarg; break;
		case 't':
			if (nn_parse_duration_ms(optarg, &timeout_ms) < 0 || timeout_ms <= 0) {
				nn_error("--timeout: '%s' is not a duration", optarg);
				exec_usage(NN_EX_USAGE);
			}
			break;
		case 'g':
			if (nn_parse_duration_ms(optarg, &grace_ms) < 0) {
				nn_error("--grace: '%s' is not a duration", optarg);
				exec_usage(NN_EX_USAGE);
			}
			break;
		case 'a': available = 1; break;
		case 'S': so.shim = 1; break;
		case 'R':
			so.ready_fd = (int)strtol(optarg, &end, 10);
			if (*end || so.ready_fd < 0 || fcntl(so.ready_fd, F_GETFD) < 0) {
				nn_error("--ready-fd: '%s' is not an open file descriptor", optarg);
				exec_usage(NN_EX_USAGE);
			}
			break;
		case 'N':
			so.run = (int)strtol(optarg, &end, 10);
			if (*end || so.run < 1) {
				nn_error("--run: '%s' is not a run number", optarg);
				exec_usage(NN_EX_USAGE);
			}
			break;
		case 'B':
			if (nn_parse_duration_ms(optarg, &so.hb_ms) < 0 || so.hb_ms < 10) {
				nn_error("--heartbeat: '%s' is not a duration of 10ms or more", optarg);
				exec_usage(NN_EX_USAGE);
			}
			break;
		case 'C': so.health = optarg; break;
		case 'A': so.adopt = 1; break;
		case 'P': spare = 1; break;
		case 'L':
			if (nn_parse_size(optarg, &so.log_max) < 0) {
				nn_error("--log-max: '%s' is not a size", optarg);
				exec_usage(NN_EX_USAGE);
			}
			break;
		case 'K':
			so.log_keep = (int)strtol(optarg, &end, 10);
			if (*end || so.log_keep < 1 || so.log_keep > 100) {
				nn_error("--log-keep: '%s' is not a count from 1 to 100", optarg);
				exec_usage(NN_EX_USAGE);
			}
			break;
		case 'h': exec_usage(0); break;
		default: exec_usage(NN_EX_USAGE);
		}
	}
	if (available) {
		if (argc - optind > 1)
			exec_usage(NN_EX_USAGE);
		return cmd_available(optind < argc ? argv[optind] : NULL);
	}
	if (argc - optind != 1)
		exec_usage(NN_EX_USAGE);
	if (spare) {
		/* nothing but --shim with it: the rest comes on stdin */
		int nargc;
		char **nargv;
		if (!so.shim || so.ready_fd >= 0 || so.adopt || so.health || so.log_max ||
		    result_file || timeout_ms || argc != 4)
			exec_usage(NN_EX_USAGE);
		if (spare_wait(argv[optind], &nargc, &nargv, err) < 0)
			nn_die(NN_EX_DATAERR, "%s", err);
		if (!nargv)
			return 0;	/* no allocation came: the node is gone */
		status = cmd_exec(nargc, nargv);
		nn_exec_strv_free(nargv);
		return status;
	}
	if (so.ready_fd >= 0)
		fcntl(so.ready_fd, F_SETFD, FD_CLOEXEC);
	if (!so.shim && (so.ready_fd >= 0 || so.adopt || so.health || so.log_max))
		exec_usage(NN_EX_USAGE);
	/* started under a real-time policy (a node run by chrt -f): leave it,
	 * as the job must (its monitor does so too); health checks and
	 * staging run under SCHED_OTHER as well */
	if (nn_exec_sched_normal() < 0)
		nn_warn("cannot leave the real-time scheduling policy: %s", strerror(errno));

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
	if (so.shim) {
		status = shim_main(&so, &spec, ex);
		nn_exec_spec_release(&spec);
		return status;
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

/* ---- the porcelain: jobs through the local node ---- */

static volatile sig_atomic_t got_stop;

static void on_stop_signal(int sig)
{
	got_stop = sig;
}

void nn_run_node_open(struct nn_client *c)
{
	enum nn_code code;
	char err[NN_ERRLEN];
	const char *t = getenv("NUNET_TRACE");
	if (nn_client_open(c, NULL, NULL, &code, err) < 0) {
		nn_client_close(c);
		nn_die(code == NN_E_UNAVAILABLE ? NN_EX_UNAVAILABLE : NN_EX_CONFIG, "%s", err);
	}
	/* each invocation is a trace, unless the caller already is in one */
	if (t && *t && strlen(t) <= 64 && strspn(t, "0123456789abcdefABCDEF") == strlen(t))
		snprintf(c->trace, sizeof c->trace, "%s", t);
	else
		nn_random_id(c->trace);
}

static jv node_call_to(struct nn_client *c, const char *to, const char *be, jv body);

/* One request; dies on a refusal.  Returns the reply body (caller's). */
static jv node_call(struct nn_client *c, const char *be, jv body)
{
	return node_call_to(c, "local", be, body);
}

/* The same to any actor (a node's did: through the local node). */
static jv node_call_to(struct nn_client *c, const char *to, const char *be, jv body)
{
	enum nn_code code;
	char err[NN_ERRLEN];
	jv env = nn_client_call(c, to, be, body, 30000, &code, err), b;
	const char *msg = NULL, *cname = NULL;
	int ex;
	if (!jv_is_valid(env)) {
		jv_free(env);
		nn_client_close(c);
		nn_die(code == NN_E_TIMEOUT ? NN_EX_TEMPFAIL : NN_EX_UNAVAILABLE, "%s", err);
	}
	b = jv_object_get(jv_copy(env), jv_string("body"));
	if (!strcmp(nn_env_str(env, "type"), "reply")) {
		jv_free(env);
		return b;
	}
	nn_json_get_str(b, "message", &msg, NULL);
	nn_json_get_str(b, "code", &cname, NULL);
	code = cname ? nn_code_parse(cname) : NN_E_INTERNAL;
	ex = code == NN_E_BAD_BODY ? NN_EX_DATAERR
		: code == NN_E_UNAVAILABLE ? NN_EX_UNAVAILABLE
		: code == NN_E_UNKNOWN_BEHAVIOR ? NN_EX_UNAVAILABLE
		: code == NN_E_BUSY ? NN_EX_TEMPFAIL
		: code == NN_E_UNAUTHORIZED ? NN_EX_NO : NN_EX_SOFTWARE;
	if (code == NN_E_UNKNOWN_BEHAVIOR)
		nn_error("the node does not run allocations: %s", msg ? msg : "?");
	else
		nn_error("%s", msg ? msg : "the node refused");
	jv_free(b);
	jv_free(env);
	nn_client_close(c);
	exit(ex);
}

static void print_json(jv v)
{
	char *s = nn_json_dump(v);
	jv_free(v);
	printf("%s\n", s);
	free(s);
	fflush(stdout);
}

/*
 * Close an inotify instance without waiting for the kernel.  The last close
 * of one that had a watch waits until the watch is freed after an SRCU
 * grace period (fsnotify_destroy_group): 8 to 20 ms here, as long as the
 * rest of a short job's round trip, spent after the job is over.  So a
 * child that holds nothing else takes the last reference and waits
 * instead, and the caller goes on (to exit).  Without a child: close.
 */
static void inotify_drop(int in)
{
	pid_t p = fork();
	if (p == 0) {
		if (in > 0)
			close_range(0, (unsigned)in - 1, 0);
		close_range((unsigned)in + 1, ~0U, 0);
		close(in);
		_exit(0);
	}
	close(in);
}

/*
 * Follow an allocation through its directory until its state is final:
 * copy what stdout.log and stderr.log gain to fds 1 and 2 (when logs),
 * wake on inotify events, look at state.json.  On SIGINT/SIGTERM ask the
 * node to cancel (a second signal: at once).  Returns the final state
 * object (the caller's).
 */
static jv follow(struct nn_client *c, const char *id, const char *dir, int logs, int cancel_on_signal)
{
	struct nn_exec_follow fo, fe;
	char *po = nn_xasprintf("%s/%s", dir, NN_EXEC_STDOUT);
	char *pe = nn_xasprintf("%s/%s", dir, NN_EXEC_STDERR);
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), cancels = 0;
	jv st = jv_invalid();
	struct sigaction sa;

	nn_exec_follow_init(&fo, po, 0);
	nn_exec_follow_init(&fe, pe, 0);
	free(po);
	free(pe);
	if (in >= 0 && inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO |
					  IN_CLOSE_WRITE | IN_DELETE_SELF) < 0) {
		close(in);
		in = -1;
	}
	if (cancel_on_signal) {
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_stop_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		char err[NN_ERRLEN];
		const char *s;
		int final;
		if (logs) {
			nn_exec_follow_pump(&fo, 1, NULL);
			nn_exec_follow_pump(&fe, 2, NULL);
		}
		jv_free(st);
		st = nn_alloc_state_read(dir, err);
		final = jv_is_valid(st) && nn_json_get_str(st, "state", &s, NULL) == 0 &&
			nn_alloc_state_final(s);
		if (final) {
			if (logs) {
				nn_exec_follow_pump(&fo, 1, NULL);
				nn_exec_follow_pump(&fe, 2, NULL);
			}
			break;
		}
		if (got_stop && cancels < 2) {
			jv b = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
			if (cancels == 1)
				b = jv_object_set(b, jv_string("grace"), jv_string("0s"));
			got_stop = 0;
			cancels++;
			/* a second cancel of the same allocation is a no-op at the
			 * node; the first one's grace timer still applies */
			jv_free(node_call(c, "/alloc/cancel", b));
		}
		{
			struct pollfd p = { in, POLLIN, 0 };
			int r = poll(&p, in >= 0 ? 1 : 0, in >= 0 ? 1000 : 20);
			if (r > 0) {
				char buf[4096];
				while (read(in, buf, sizeof buf) > 0)
					;
			}
		}
	}
	if (in >= 0)
		inotify_drop(in);
	nn_exec_follow_release(&fo);
	nn_exec_follow_release(&fe);
	return st;
}

/* Exit status for a final state, with one line on stderr when it did not
 * simply exit. */
static int final_status(const char *id, jv st)
{
	const char *s = "?", *reason = NULL;
	int status = nn_alloc_state_status(st);
	nn_json_get_str(st, "state", &s, NULL);
	nn_json_get_str(st, "reason", &reason, NULL);
	if ((strcmp(s, "exited") && strcmp(s, "killed")) ||
	    (reason && !strncmp(reason, "unhealthy", 9)))
		nn_error("allocation %s %s: %s", id, s, reason ? reason : "no reason given");
	jv_free(st);
	return status;
}

/* The directory of an allocation, from the node (checks the id). */
static char *alloc_dir(struct nn_client *c, const char *id)
{
	jv r = node_call(c, "/alloc/logs", jv_object_set(jv_object(), jv_string("id"), jv_string(id)));
	const char *d = NULL;
	char *dir;
	if (nn_json_get_str(r, "dir", &d, NULL) < 0) {
		jv_free(r);
		nn_client_close(c);
		nn_die(NN_EX_SOFTWARE, "the node did not say where allocation %s is", id);
	}
	dir = nn_xstrdup(d);
	jv_free(r);
	return dir;
}

/* --restart POLICY[:MAX[/PERIOD]] */
static jv restart_arg(const char *a)
{
	char *s = nn_xstrdup(a), *colon = strchr(s, ':');
	jv r;
	if (!colon) {
		r = jv_string(s);
	} else {
		char *slash, *end;
		long max;
		*colon = '\0';
		slash = strchr(colon + 1, '/');
		if (slash)
			*slash = '\0';
		max = strtol(colon + 1, &end, 10);
		if (*end || end == colon + 1 || max < 0) {
			nn_error("--restart: '%s': expected POLICY[:MAX[/PERIOD]]", a);
			free(s);
			usage(NN_EX_USAGE);
		}
		r = jv_object_set(jv_object(), jv_string("policy"), jv_string(s));
		r = jv_object_set(r, jv_string("max"), jv_number((double)max));
		if (slash)
			r = jv_object_set(r, jv_string("period"), jv_string(slash + 1));
	}
	free(s);
	return r;
}

/*
 * --input URL:PATH and --output PATH:URL.  The allocation's path never
 * holds ':' and a URL usually does (scheme, port), so an input splits at
 * its last ':' and an output at its first.
 */
static jv stage_arg(const char *a, int input)
{
	const char *c = input ? strrchr(a, ':') : strchr(a, ':');
	const char *url, *path;
	size_t ulen, plen;
	jv o;
	if (!c || c == a || !c[1]) {
		nn_error("--%s: '%s': expected %s", input ? "input" : "output", a,
			 input ? "URL:PATH" : "PATH:URL");
		usage(NN_EX_USAGE);
	}
	if (input) {
		url = a, ulen = (size_t)(c - a), path = c + 1, plen = strlen(c + 1);
		const char *host = strstr(a, "://");
		/* no scheme before the last ':', or only a host: PATH was left out
		 * and the last ':' is the URL's own (its scheme or port) */
		if (!memchr(a, ':', ulen) ||
		    (host && host < c && !memchr(host + 3, '/', (size_t)(c - host - 3)) &&
		     strspn(path, "0123456789") > 0 &&
		     (path[strspn(path, "0123456789")] == '/' || !path[strspn(path, "0123456789")]))) {
			nn_error("--input: '%s': expected URL:PATH (PATH after the last ':')", a);
			usage(NN_EX_USAGE);
		}
	} else {
		path = a, plen = (size_t)(c - a), url = c + 1, ulen = strlen(c + 1);
	}
	o = jv_object_set(jv_object(), jv_string("url"), jv_string_sized(url, (int)ulen));
	return jv_object_set(o, jv_string("path"), jv_string_sized(path, (int)plen));
}

/* A did mentioned by an event (borrowed) in field f, appended to dids
 * (a jv array of strings) when new and not ours. */
static jv note_did(jv dids, jv fields, const char *f, const char *self)
{
	const char *v = NULL;
	size_t n;
	if (nn_json_get_str(fields, f, &v, NULL) < 0 || strncmp(v, "did:key:", 8) != 0)
		return dids;
	n = nn_did_len(v);
	jv d = jv_string_sized(v, (int)n);
	if (!strcmp(jv_string_value(d), self)) {
		jv_free(d);
		return dids;
	}
	jv_array_foreach(dids, i, x) {
		int same = !strcmp(jv_string_value(x), jv_string_value(d));
		jv_free(x);
		if (same) {
			jv_free(d);
			return dids;
		}
	}
	return jv_array_append(dids, d);
}

struct gathered {
	jv ev;
	int64_t ts;
	size_t order;	/* when gathered: the asking node first, then the ones it named */
};

/* Time order; within one millisecond, the order of gathering, which follows
 * the trace from the node where it began. */
static int by_time(const void *a, const void *b)
{
	const struct gathered *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);
}

/*
 * trace ID: the events of one trace, from this node and from every node
 * they name (senders, receivers, peers), asked in turn over the swarm,
 * merged into one list in time order.
 */
static int cmd_trace(int argc, char **argv)
{
	struct nn_client c;
	char err[NN_ERRLEN];
	enum nn_code code;
	const char *id;
	jv all, todo, asked;
	int nodes = 0, refused = 0;
	size_t n;
	struct gathered *v;

	if (argc != 2 || !*argv[1] || strlen(argv[1]) > 64 ||
	    strspn(argv[1], "0123456789abcdefABCDEF") != strlen(argv[1])) {
		fputs("usage: nunet-run trace ID\n", stderr);
		return NN_EX_USAGE;
	}
	all = jv_array();
	todo = jv_array();
	asked = jv_array();
	id = argv[1];
	nn_run_node_open(&c);
	c.trace[0] = '\0';	/* looking at a trace is not part of it */
	todo = jv_array_append(todo, jv_string("local"));
	while (jv_array_length(jv_copy(todo)) > 0 && nodes < 64) {
		jv who = jv_array_get(jv_copy(todo), 0), body, env, evs;
		todo = jv_array_slice(todo, 1, jv_array_length(jv_copy(todo)));
		asked = jv_array_append(asked, jv_copy(who));
		nodes++;
		body = jv_object_set(jv_object(), jv_string("trace"), jv_string(id));
		body = jv_object_set(body, jv_string("limit"), jv_number(10000));
		env = nn_client_call(&c, jv_string_value(who), "/node/events", body, 10000, &code, err);
		if (!jv_is_valid(env) || strcmp(nn_env_str(env, "type"), "reply") != 0) {
			jv b = jv_is_valid(env) ? jv_object_get(jv_copy(env), jv_string("body")) : jv_null();
			const char *m = NULL;
			nn_json_get_str(b, "message", &m, NULL);
			nn_log(NN_LOG_WARN, "%.80s: %s", jv_string_value(who), m ? m : err);
			refused++;
			jv_free(b);
			jv_free(env);
			jv_free(who);
			continue;
		}
		evs = jv_object_get(jv_object_get(jv_copy(env), jv_string("body")), jv_string("events"));
		jv_array_foreach(evs, i, e) {
			jv f = jv_object_get(jv_copy(e), jv_string("fields"));
			jv found = jv_array();
			found = note_did(found, f, "from", c.key.did);
			found = note_did(found, f, "to", c.key.did);
			found = note_did(found, f, "peer", c.key.did);
			jv_array_foreach(found, k, d) {
				int seen = 0;
				jv_array_foreach(asked, a, x) {
					seen |= !strcmp(jv_string_value(x), jv_string_value(d));
					jv_free(x);
				}
				jv_array_foreach(todo, a, x) {
					seen |= !strcmp(jv_string_value(x), jv_string_value(d));
					jv_free(x);
				}
				todo = seen ? todo : jv_array_append(todo, jv_copy(d));
				jv_free(d);
			}
			jv_free(found);
			jv_free(f);
			all = jv_array_append(all, e);
		}
		jv_free(evs);
		jv_free(env);
		jv_free(who);
	}
	n = (size_t)jv_array_length(jv_copy(all));
	v = nn_xcalloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		v[i].ev = jv_array_get(jv_copy(all), (int)i);
		v[i].order = i;
		nn_json_get_int(v[i].ev, "ts", &v[i].ts, NULL);
	}
	qsort(v, n, sizeof *v, by_time);
	for (size_t i = 0; i < n; i++) {
		char *line = nn_json_dump(v[i].ev);
		puts(line);
		free(line);
		jv_free(v[i].ev);
	}
	free(v);
	jv_free(all);
	jv_free(todo);
	jv_free(asked);
	nn_client_close(&c);
	return n ? (refused ? NN_EX_NO : 0) : NN_EX_NO;
}

/* How many peers the local node knows alive (0 when it is alone). */
static int alive_peers(struct nn_client *c)
{
	enum nn_code code;
	char err[NN_ERRLEN];
	jv env = nn_client_call(c, "local", "/swarm/peers", jv_object(), 10000, &code, err), ps;
	int n = 0;
	if (!jv_is_valid(env) || strcmp(nn_env_str(env, "type"), "reply") != 0) {
		jv_free(env);
		return 0;
	}
	ps = jv_object_get(jv_object_get(env, jv_string("body")), jv_string("peers"));
	if (jv_get_kind(ps) == JV_KIND_ARRAY)
		jv_array_foreach(ps, i, p) {
			const char *st = NULL;
			n += nn_json_get_str(p, "state", &st, NULL) == 0 && !strcmp(st, "alive");
			jv_free(p);
		}
	jv_free(ps);
	return n;
}

static int cmd_submit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "executor", required_argument, NULL, 'e' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "image", required_argument, NULL, 'i' },
		{ "restart", required_argument, NULL, 'r' },
		{ "env", required_argument, NULL, 'E' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "id", required_argument, NULL, 'I' },
		{ "parent", required_argument, NULL, 'P' },
		{ "health-cmd", required_argument, NULL, 'H' },
		{ "health-url", required_argument, NULL, 'U' },
		{ "detach", no_argument, NULL, 'd' },
		{ "input", required_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "stage-timeout", required_argument, NULL, 'T' },
		{ "state-dir", required_argument, NULL, 'D' },
		{ "swarm", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	jv spec = jv_object(), body = jv_object(), env = jv_object(), res = jv_object(), cmd, r, st;
	jv inputs = jv_array(), outputs = jv_array();
	int c, detach = 0, have_res = 0, status, swarm = 0;
	const char *id, *dir;
	char *idc, *dirc;
	struct nn_client cl;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+hd", opts, NULL)) != -1) {
		switch (c) {
		case 'e': spec = jv_object_set(spec, jv_string("executor"), jv_string(optarg)); break;
		case 'c': {
			char *end;
			double v = strtod(optarg, &end);
			if (*end || end == optarg || !(v > 0)) {
				nn_error("--cpu: '%s' is not a positive number of cores", optarg);
				usage(NN_EX_USAGE);
			}
			res = jv_object_set(res, jv_string("cpu"), jv_number(v));
			have_res = 1;
			break;
		}
		case 'm':
			res = jv_object_set(res, jv_string("memory"), jv_string(optarg));
			have_res = 1;
			break;
		case 'i': spec = jv_object_set(spec, jv_string("image"), jv_string(optarg)); break;
		case 'r': body = jv_object_set(body, jv_string("restart"), restart_arg(optarg)); break;
		case 'E': {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) {
				nn_error("--env: '%s' is not K=V", optarg);
				usage(NN_EX_USAGE);
			}
			env = jv_object_set(env, jv_string_sized(optarg, (int)(eq - optarg)),
					    jv_string(eq + 1));
			break;
		}
		case 'w': spec = jv_object_set(spec, jv_string("workdir"), jv_string(optarg)); break;
		case 'I': spec = jv_object_set(spec, jv_string("id"), jv_string(optarg)); break;
		case 'P': body = jv_object_set(body, jv_string("parent"), jv_string(optarg)); break;
		case 'H':
			body = jv_object_set(body, jv_string("healthcheck"),
				jv_object_set(jv_object(), jv_string("command"),
					      jv_array_append(jv_array_append(jv_array_append(jv_array(),
						jv_string("sh")), jv_string("-c")), jv_string(optarg))));
			break;
		case 'U':
			body = jv_object_set(body, jv_string("healthcheck"),
				jv_object_set(jv_object(), jv_string("http"), jv_string(optarg)));
			break;
		case 'd': detach = 1; break;
		case 'n': inputs = jv_array_append(inputs, stage_arg(optarg, 1)); break;
		case 'D': body = jv_object_set(body, jv_string("state_dir"), jv_string(optarg)); break;
		case 'o': outputs = jv_array_append(outputs, stage_arg(optarg, 0)); break;
		case 'T': {
			int64_t ms;
			if (nn_parse_duration_ms(optarg, &ms) < 0 || ms <= 0) {
				nn_error("--stage-timeout: '%s' is not a duration", optarg);
				usage(NN_EX_USAGE);
			}
			body = jv_object_set(body, jv_string("stage_timeout"), jv_string(optarg));
			break;
		}
		case 'S': swarm = 1; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (jv_array_length(jv_copy(inputs)) > 0)
		body = jv_object_set(body, jv_string("inputs"), jv_copy(inputs));
	if (jv_array_length(jv_copy(outputs)) > 0)
		body = jv_object_set(body, jv_string("outputs"), jv_copy(outputs));
	jv_free(inputs);
	jv_free(outputs);
	if (optind >= argc || strcmp(argv[optind - 1], "--")) {
		if (optind >= argc)
			nn_error("no command: give it after --");
		else
			nn_error("give the command after --");
		usage(NN_EX_USAGE);
	}
	cmd = jv_array();
	for (int i = optind; i < argc; i++)
		cmd = jv_array_append(cmd, jv_string(argv[i]));
	spec = jv_object_set(spec, jv_string("command"), cmd);
	spec = jv_object_set(spec, jv_string("env"), env);
	if (have_res)
		spec = jv_object_set(spec, jv_string("resources"), res);
	else
		jv_free(res);
	body = jv_object_set(body, jv_string("spec"), spec);

	if (swarm)
		return nn_run_swarm(body, detach);
	nn_run_node_open(&cl);
	/* here when it fits; else anywhere in the swarm that it fits */
	{
		enum nn_code code;
		char err[NN_ERRLEN];
		jv env2 = nn_client_call(&cl, "local", "/alloc/start", jv_copy(body), 30000, &code, err), b;
		const char *cname = NULL, *msg = NULL;
		r = jv_invalid();
		if (jv_is_valid(env2) && !strcmp(nn_env_str(env2, "type"), "reply")) {
			r = jv_object_get(jv_copy(env2), jv_string("body"));
		} else if (jv_is_valid(env2)) {
			b = jv_object_get(jv_copy(env2), jv_string("body"));
			nn_json_get_str(b, "code", &cname, NULL);
			nn_json_get_str(b, "message", &msg, NULL);
			if (cname && !strcmp(cname, "unavailable") && msg && !strncmp(msg, "resources:", 10) &&
			    alive_peers(&cl) > 0) {
				jv_free(b);
				jv_free(env2);
				nn_client_close(&cl);
				return nn_run_swarm(body, detach);
			}
			jv_free(b);
		}
		jv_free(env2);
	}
	/* a refusal is reported (and a lost answer retried once) as before */
	if (!jv_is_valid(r))
		r = node_call(&cl, "/alloc/start", body);
	else
		jv_free(body);
	nn_json_get_str(r, "id", &id, NULL);
	nn_json_get_str(r, "dir", &dir, NULL);
	idc = nn_xstrdup(id ? id : "?");
	dirc = nn_xstrdup(dir ? dir : "/");
	jv_free(r);
	if (detach) {
		printf("%s\n", idc);
		free(idc);
		free(dirc);
		nn_client_close(&cl);
		return 0;
	}
	st = follow(&cl, idc, dirc, 1, 1);
	status = final_status(idc, st);
	free(idc);
	free(dirc);
	nn_client_close(&cl);
	return status;
}

/* ls / status / logs / wait / cancel */
static int cmd_ls(int argc, char **argv)
{
	struct nn_client c;
	jv r, list;
	int all = 0, o;
	optind = 1;
	while ((o = getopt(argc, argv, "+ah")) != -1) {
		switch (o) {
		case 'a': all = 1; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (optind != argc)
		usage(NN_EX_USAGE);
	nn_run_node_open(&c);
	r = node_call(&c, "/alloc/list", jv_object_set(jv_object(), jv_string("all"), jv_bool(all)));
	list = jv_object_get(r, jv_string("allocations"));
	if (jv_get_kind(list) == JV_KIND_ARRAY)
		jv_array_foreach(list, i, a)
			print_json(a);
	jv_free(list);
	nn_client_close(&c);
	nn_run_ls_deployments(all);
	return 0;
}

static const char *one_id(int argc, char **argv, const char *flags, int *flag)
{
	int o;
	optind = 1;
	while ((o = getopt(argc, argv, flags)) != -1) {
		if (o == 'h')
			usage(0);
		if (o == '?' || !flag)
			usage(NN_EX_USAGE);
		*flag = 1;
	}
	if (argc - optind != 1)
		usage(NN_EX_USAGE);
	return argv[optind];
}

static int cmd_status(int argc, char **argv)
{
	struct nn_client c;
	const char *id = one_id(argc, argv, "+h", NULL);
	nn_run_node_open(&c);
	print_json(node_call(&c, "/alloc/status", jv_object_set(jv_object(), jv_string("id"),
								   jv_string(id))));
	nn_client_close(&c);
	return 0;
}

static int cmd_logs(int argc, char **argv)
{
	struct nn_client c;
	int f = 0;
	const char *id = one_id(argc, argv, "+fh", &f);
	char *dir;
	nn_run_node_open(&c);
	dir = alloc_dir(&c, id);
	if (f) {
		jv_free(follow(&c, id, dir, 1, 0));
	} else {
		struct nn_exec_follow fo, fe;
		char *po = nn_xasprintf("%s/%s", dir, NN_EXEC_STDOUT);
		char *pe = nn_xasprintf("%s/%s", dir, NN_EXEC_STDERR);
		nn_exec_follow_init(&fo, po, 0);
		nn_exec_follow_init(&fe, pe, 0);
		while (nn_exec_follow_pump(&fo, 1, NULL) > 0)
			;
		while (nn_exec_follow_pump(&fe, 2, NULL) > 0)
			;
		nn_exec_follow_release(&fo);
		nn_exec_follow_release(&fe);
		free(po);
		free(pe);
	}
	free(dir);
	nn_client_close(&c);
	return 0;
}

static int cmd_wait(int argc, char **argv)
{
	struct nn_client c;
	const char *id = one_id(argc, argv, "+h", NULL);
	char *dir;
	int status;
	nn_run_node_open(&c);
	dir = alloc_dir(&c, id);
	status = final_status(id, follow(&c, id, dir, 0, 0));
	free(dir);
	nn_client_close(&c);
	return status;
}

static int cmd_cancel(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "grace", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct nn_client c;
	const char *grace = NULL;
	int64_t ms;
	int o;
	jv b;
	optind = 1;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 'g':
			if (nn_parse_duration_ms(optarg, &ms) < 0) {
				nn_error("--grace: '%s' is not a duration", optarg);
				usage(NN_EX_USAGE);
			}
			grace = optarg;
			break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (argc - optind != 1)
		usage(NN_EX_USAGE);
	b = jv_object_set(jv_object(), jv_string("id"), jv_string(argv[optind]));
	if (grace)
		b = jv_object_set(b, jv_string("grace"), jv_string(grace));
	nn_run_node_open(&c);
	print_json(node_call(&c, "/alloc/cancel", b));
	nn_client_close(&c);
	return 0;
}

/* ---- checkpoint and migrate (migrate.h) ---- */

/* Of a deployed allocation (status st, borrowed): {"deployment","name",
 * "lease"} from its labels, with *orch (the caller's to free) the
 * orchestrator its lease names; null for an allocation of no deployment.
 * Dies when the lease names none. */
static jv deployed_who(struct nn_client *c, jv st, char **orch)
{
	jv lb = jv_object_get(jv_object_get(jv_copy(st), jv_string("spec")), jv_string("labels")), l, who;
	const char *dep, *name, *lease, *req;
	if (jv_get_kind(lb) != JV_KIND_OBJECT || nn_json_get_str(lb, "nunet.deployment", &dep, NULL) < 0 ||
	    nn_json_get_str(lb, "nunet.allocation", &name, NULL) < 0 ||
	    nn_json_get_str(lb, "nunet.lease", &lease, NULL) < 0) {
		jv_free(lb);
		return jv_null();
	}
	l = node_call(c, "/deploy/lease", jv_object_set(jv_object(), jv_string("lease"), jv_string(lease)));
	if (nn_json_get_str(l, "requester", &req, NULL) < 0) {
		nn_client_close(c);
		nn_die(NN_EX_SOFTWARE, "lease %s names no requester", lease);
	}
	*orch = nn_xstrdup(req);
	who = jv_object_set(jv_object(), jv_string("deployment"), jv_string(dep));
	who = jv_object_set(who, jv_string("name"), jv_string(name));
	who = jv_object_set(who, jv_string("lease"), jv_string(lease));
	jv_free(l);
	jv_free(lb);
	return who;
}

/* Commit the state directory of allocation id (its status st, borrowed)
 * into the node's snapshot repository; dies when it has none. */
static void snapshot_of(struct nn_client *c, jv st, const char *id, char out[65])
{
	const char *dir = NULL, *sd = NULL;
	char ref[NN_ERRLEN], err[NN_ERRLEN], *path, *repo, *msg;
	if (nn_json_get_str(st, "state_dir", &sd, NULL) < 0 || nn_json_get_str(st, "dir", &dir, NULL) < 0) {
		nn_client_close(c);
		nn_die(NN_EX_DATAERR, "allocation %s has no state directory (start it with --state-dir)",
		       id);
	}
	path = nn_xasprintf("%s/%s", dir, sd);
	repo = nn_migrate_repo(c->home);
	msg = nn_xasprintf("checkpoint of allocation %s", id);
	nn_migrate_ref(id, ref);
	if (nn_snapshot_commit(path, repo, ref, msg, out, err) < 0) {
		nn_client_close(c);
		nn_die(NN_EX_IOERR, "checkpoint of %s: %s", id, err);
	}
	free(path);
	free(repo);
	free(msg);
}

static jv push_snapshot(struct nn_client *c, jv st, const char *commit);

static int cmd_checkpoint(int argc, char **argv)
{
	struct nn_client c;
	const char *id = one_id(argc, argv, "+h", NULL);
	char commit[65];
	jv st, o;
	nn_run_node_open(&c);
	st = node_call(&c, "/alloc/status", jv_object_set(jv_object(), jv_string("id"), jv_string(id)));
	snapshot_of(&c, st, id, commit);
	o = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
	o = jv_object_set(o, jv_string("commit"), jv_string(commit));
	o = jv_object_set(o, jv_string("state_dir"), jv_object_get(jv_copy(st), jv_string("state_dir")));
	/* a deployed allocation's snapshot goes to its orchestrator */
	o = jv_object_set(o, jv_string("pushed"), push_snapshot(&c, st, commit));
	jv_free(st);
	print_json(o);
	nn_client_close(&c);
	return 0;
}

/* The spec to start elsewhere: no dir, a workdir relative to the
 * allocation directory, no readonly list (the target derives it again
 * from the inputs it stages). */
static jv portable_spec(jv st)
{
	jv spec = jv_object_get(jv_copy(st), jv_string("spec"));
	const char *dir = NULL, *wd = NULL;
	nn_json_get_str(st, "dir", &dir, NULL);
	if (dir && nn_json_get_str(spec, "workdir", &wd, NULL) == 0) {
		size_t n = strlen(dir);
		if (!strncmp(wd, dir, n) && wd[n] == '/')
			spec = jv_object_set(spec, jv_string("workdir"), jv_string(wd + n + 1));
		else
			spec = jv_object_delete(spec, jv_string("workdir"));
	}
	spec = jv_object_delete(spec, jv_string("dir"));
	spec = jv_object_delete(spec, jv_string("id"));
	return jv_object_delete(spec, jv_string("readonly"));
}

/* Send the pack at path (bytes long; removed once sent) to `to` through
 * PREFIX"receive" (body opening names the commit; the size is added) and
 * acknowledged PREFIX"chunk" pieces (opening: consumed): the transfer's id (caller frees);
 * *sent adds the bytes on the wire, *chunks the pieces.  Dies on a
 * refusal. */
static char *send_pack(struct nn_client *c, const char *to, const char *prefix, jv opening, const char *path,
		       uint64_t bytes, uint64_t *sent, int *chunks)
{
	char *be = nn_xasprintf("%sreceive", prefix), *xfer;
	const char *x = NULL;
	uint64_t off = 0;
	uint8_t *buf;
	char *b64;
	int fd;
	jv r = node_call_to(c, to, be, jv_object_set(opening, jv_string("size"), jv_number((double)bytes)));
	free(be);
	if (nn_json_get_str(r, "xfer", &x, NULL) < 0) {
		unlink(path);
		nn_client_close(c);
		nn_die(NN_EX_UNAVAILABLE, "%s opened no transfer", to);
	}
	xfer = nn_xstrdup(x);
	jv_free(r);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		nn_client_close(c);
		nn_die(NN_EX_IOERR, "cannot open '%s': %s", path, strerror(errno));
	}
	be = nn_xasprintf("%schunk", prefix);
	buf = nn_xmalloc(NN_MIGRATE_CHUNK);
	b64 = nn_xmalloc(nn_b64_len(NN_MIGRATE_CHUNK));
	while (off < bytes) {
		ssize_t n = read(fd, buf, NN_MIGRATE_CHUNK);
		jv b;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			nn_client_close(c);
			nn_die(NN_EX_IOERR, "cannot read '%s': %s", path, n < 0 ? strerror(errno) : "short");
		}
		nn_b64_encode(b64, buf, (size_t)n);
		b = jv_object_set(jv_object(), jv_string("xfer"), jv_string(xfer));
		b = jv_object_set(b, jv_string("offset"), jv_number((double)off));
		b = jv_object_set(b, jv_string("data"), jv_string(b64));
		jv_free(node_call_to(c, to, be, b));
		off += (uint64_t)n;
		*sent += strlen(b64);
		(*chunks)++;
	}
	close(fd);
	unlink(path);
	free(be);
	free(buf);
	free(b64);
	return xfer;
}

/* The checkpoint (commit) of a deployed allocation (status st, borrowed)
 * goes to the orchestrator of its lease (orch.h, /public/deploy/snapshot/):
 * what that node lacks, packed and sent in acknowledged pieces.  Returns
 * {"to","haves","pack_bytes","sent_bytes","chunks"}, or null for an
 * allocation of no deployment.  Dies on a refusal (the local commit stays). */
static jv push_snapshot(struct nn_client *c, jv st, const char *commit)
{
	char err[NN_ERRLEN], *repo, *pack, *xfer, *d, *to = NULL;
	uint64_t bytes = 0, sent = 0;
	int chunks = 0, nhaves;
	jv h, b, out, who = deployed_who(c, st, &to);
	if (jv_get_kind(who) != JV_KIND_OBJECT)
		return who;
	h = node_call_to(c, to, "/public/deploy/snapshot/haves", jv_copy(who));
	h = jv_object_get(h, jv_string("haves"));
	if (jv_get_kind(h) != JV_KIND_ARRAY) {
		jv_free(h);
		h = jv_array();
	}
	nhaves = jv_array_length(jv_copy(h));
	repo = nn_migrate_repo(c->home);
	d = nn_xasprintf("%s/snapshots", c->home);
	mkdir(d, 0700);
	free(d);
	pack = nn_xasprintf("%s/snapshots/push.%ld.pack", c->home, (long)getpid());
	if (nn_snapshot_pack(repo, commit, h, pack, &bytes, err) < 0) {
		unlink(pack);
		nn_client_close(c);
		nn_die(NN_EX_IOERR, "checkpoint: %s", err);
	}
	jv_free(h);
	xfer = send_pack(c, to, "/public/deploy/snapshot/",
			 jv_object_set(jv_copy(who), jv_string("commit"), jv_string(commit)), pack, bytes, &sent,
			 &chunks);
	b = jv_object_set(jv_copy(who), jv_string("xfer"), jv_string(xfer));
	b = jv_object_set(b, jv_string("commit"), jv_string(commit));
	/* the orchestrator unpacks off its loop: asked again until it kept it */
	{
		int64_t until = nn_mono_ms() + 600000;
		for (;;) {
			jv r = node_call_to(c, to, "/public/deploy/snapshot/commit", jv_copy(b)), p;
			p = jv_object_get(r, jv_string("pending"));
			if (jv_get_kind(p) != JV_KIND_TRUE) {
				jv_free(p);
				break;
			}
			jv_free(p);
			if (nn_mono_ms() > until) {
				nn_client_close(c);
				nn_die(NN_EX_UNAVAILABLE, "checkpoint: %s did not keep commit %s within 10 minutes", to,
				       commit);
			}
			usleep(50000);
		}
	}
	jv_free(b);
	out = jv_object_set(jv_object(), jv_string("to"), jv_string(to));
	out = jv_object_set(out, jv_string("haves"), jv_number(nhaves));
	out = jv_object_set(out, jv_string("pack_bytes"), jv_number((double)bytes));
	out = jv_object_set(out, jv_string("sent_bytes"), jv_number((double)sent));
	out = jv_object_set(out, jv_string("chunks"), jv_number(chunks));
	free(xfer);
	free(pack);
	free(repo);
	free(to);
	jv_free(who);
	return out;
}

/* A deployed allocation (status st, borrowed) moving to `to`: the
 * orchestrator of its lease grants the target a lease of its own
 * (/public/deploy/move; refused before anything moves).  Returns
 * {"orchestrator","deployment","name","lease","group","slot",
 * "heartbeat_ms","trace"}, or null for an allocation of no deployment. */
static jv move_grant(struct nn_client *c, jv st, const char *to)
{
	char *orch = NULL;
	jv g, who = deployed_who(c, st, &orch);
	if (jv_get_kind(who) != JV_KIND_OBJECT)
		return who;
	g = node_call_to(c, orch, "/public/deploy/move",
			 jv_object_set(jv_copy(who), jv_string("to"), jv_string(to)));
	g = jv_object_set(g, jv_string("orchestrator"), jv_string(orch));
	g = jv_object_set(g, jv_string("deployment"), jv_object_get(jv_copy(who), jv_string("deployment")));
	g = jv_object_set(g, jv_string("name"), jv_object_get(who, jv_string("name")));
	g = jv_object_delete(g, jv_string("requester"));
	free(orch);
	return g;
}

static int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "as", required_argument, NULL, 'a' },
		{ "cap", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const pass[] = { "restart", "healthcheck", "state_dir", "inputs", "outputs",
					    NULL };
	struct nn_client c;
	const char *to = NULL, *as = NULL, *id, *state = NULL;
	char commit[65], err[NN_ERRLEN], *repo, *pack, *xfer;
	jv caps = jv_null(), st, r, body, grant, pushed = jv_null();
	uint64_t bytes = 0, sent = 0;
	int o, chunks = 0, nhaves;
	int64_t deadline;

	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {	/* ID may come first */
		switch (o) {
		case 't': to = optarg; break;
		case 'a': as = optarg; break;
		case 'c':
			caps = nn_client_caps_load(caps, optarg, err);
			if (!jv_is_valid(caps))
				nn_die(NN_EX_DATAERR, "--cap: %s", err);
			break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (argc - optind != 1 || !to) {
		nn_error("migrate: give the allocation id and --to DID");
		usage(NN_EX_USAGE);
	}
	id = argv[optind];
	if (strncmp(to, "did:key:", 8)) {
		nn_error("--to: '%s' is not a node's did", to);
		usage(NN_EX_USAGE);
	}
	nn_run_node_open(&c);
	if (jv_get_kind(caps) == JV_KIND_ARRAY)
		c.caps = jv_get_kind(c.caps) == JV_KIND_ARRAY ? jv_array_concat(c.caps, caps) : caps;
	else
		jv_free(caps);
	st = node_call(&c, "/alloc/status", jv_object_set(jv_object(), jv_string("id"), jv_string(id)));
	nn_json_get_str(st, "state", &state, NULL);
	if (!state || strcmp(state, "running")) {
		nn_client_close(&c);
		nn_die(NN_EX_DATAERR, "allocation %s is %s, not running: nothing to migrate", id,
		       state ? state : "in no known state");
	}
	/* a deployed allocation: its orchestrator grants the target a lease */
	grant = move_grant(&c, st, to);
	/* 1-2: what the target has; commit; pack only what it lacks */
	r = node_call_to(&c, to, "/alloc/migrate/haves", jv_object());
	body = jv_object_get(r, jv_string("haves"));
	nhaves = jv_get_kind(body) == JV_KIND_ARRAY ? jv_array_length(jv_copy(body)) : 0;
	snapshot_of(&c, st, id, commit);
	/* and the orchestrator keeps this state as the allocation's last */
	if (jv_get_kind(grant) == JV_KIND_OBJECT)
		pushed = push_snapshot(&c, st, commit);
	repo = nn_migrate_repo(c.home);
	pack = nn_xasprintf("%s/snapshots/out.%ld.pack", c.home, (long)getpid());
	{
		char *d = nn_xasprintf("%s/snapshots", c.home);
		mkdir(d, 0700);
		free(d);
	}
	if (nn_snapshot_pack(repo, commit, jv_get_kind(body) == JV_KIND_ARRAY ? body : jv_array(), pack,
			     &bytes, err) < 0) {
		nn_client_close(&c);
		nn_die(NN_EX_IOERR, "migrate %s: %s", id, err);
	}
	jv_free(body);
	/* 3-4: the pack, in acknowledged pieces */
	xfer = send_pack(&c, to, "/alloc/migrate/",
			 jv_object_set(jv_object(), jv_string("commit"), jv_string(commit)), pack, bytes, &sent,
			 &chunks);
	/* 5: start it there from the pack */
	body = jv_object_set(jv_object(), jv_string("xfer"), jv_string(xfer));
	body = jv_object_set(body, jv_string("id"), jv_string(as ? as : id));
	body = jv_object_set(body, jv_string("spec"), portable_spec(st));
	if (jv_get_kind(grant) == JV_KIND_OBJECT) {	/* labelled with the granted lease */
		jv sp = jv_object_get(jv_copy(body), jv_string("spec"));
		jv lb = jv_object_get(jv_copy(sp), jv_string("labels"));
		lb = jv_object_set(lb, jv_string("nunet.lease"), jv_object_get(jv_copy(grant), jv_string("lease")));
		body = jv_object_set(body, jv_string("spec"), jv_object_set(sp, jv_string("labels"), lb));
	}
	for (int i = 0; pass[i]; i++) {
		jv v = jv_object_get(jv_copy(st), jv_string(pass[i]));
		if (jv_is_valid(v) && jv_get_kind(v) != JV_KIND_NULL)
			body = jv_object_set(body, jv_string(pass[i]), v);
		else
			jv_free(v);
	}
	jv_free(node_call_to(&c, to, "/alloc/migrate/start", body));
	/* 6: the source stops only once the target runs */
	deadline = nn_mono_ms() + 120000;
	for (;;) {
		jv ts = node_call_to(&c, to, "/alloc/status",
				     jv_object_set(jv_object(), jv_string("id"), jv_string(as ? as : id)));
		const char *s2 = NULL, *why = NULL;
		nn_json_get_str(ts, "state", &s2, NULL);
		if (s2 && !strcmp(s2, "running")) {
			jv_free(ts);
			break;
		}
		if (!s2 || nn_alloc_state_final(s2) || nn_mono_ms() > deadline) {
			nn_json_get_str(ts, "reason", &why, NULL);
			nn_error("migrate %s: the copy on %s is %s%s%s; %s keeps running here", id, to,
				 s2 ? s2 : "?", why ? ": " : "", why ? why : "", id);
			jv_free(ts);
			jv_free(st);
			jv_free(grant);
			jv_free(pushed);
			free(xfer);
			free(repo);
			free(pack);
			nn_client_close(&c);
			return NN_EX_UNAVAILABLE;
		}
		jv_free(ts);
		usleep(100000);
	}
	if (jv_get_kind(grant) == JV_KIND_OBJECT) {
		/* the target joins the granted lease; its first heartbeat moves
		 * the placement, and the orchestrator releases this copy's lease */
		const char *s3 = NULL;
		jv b = jv_object_set(jv_copy(grant), jv_string("id"), jv_string(as ? as : id));
		b = jv_object_set(b, jv_string("requester"), jv_object_get(jv_copy(grant), jv_string("orchestrator")));
		b = jv_object_delete(b, jv_string("orchestrator"));
		jv_free(node_call_to(&c, to, "/alloc/migrate/adopt", b));
		deadline = nn_mono_ms() + 60000;
		for (;;) {
			jv ss = node_call(&c, "/alloc/status", jv_object_set(jv_object(), jv_string("id"), jv_string(id)));
			s3 = NULL;
			nn_json_get_str(ss, "state", &s3, NULL);
			if (s3 && nn_alloc_state_final(s3)) {
				jv_free(ss);
				break;
			}
			jv_free(ss);
			if (nn_mono_ms() > deadline) {
				nn_error("migrate %s: its orchestrator did not take the copy on %s within 60 s; %s keeps"
					 " running here, the copy there ends when the orchestrator hears of it", id, to, id);
				jv_free(st);
				jv_free(grant);
				jv_free(pushed);
				free(xfer);
				free(repo);
				free(pack);
				nn_client_close(&c);
				return NN_EX_UNAVAILABLE;
			}
			usleep(100000);
		}
	} else {
		jv_free(node_call(&c, "/alloc/cancel", jv_object_set(jv_object(), jv_string("id"), jv_string(id))));
	}
	{
		jv out = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
		out = jv_object_set(out, jv_string("to"), jv_string(to));
		out = jv_object_set(out, jv_string("target_id"), jv_string(as ? as : id));
		out = jv_object_set(out, jv_string("commit"), jv_string(commit));
		out = jv_object_set(out, jv_string("haves"), jv_number(nhaves));
		out = jv_object_set(out, jv_string("pack_bytes"), jv_number((double)bytes));
		out = jv_object_set(out, jv_string("sent_bytes"), jv_number((double)sent));
		out = jv_object_set(out, jv_string("chunks"), jv_number(chunks));
		if (jv_get_kind(grant) == JV_KIND_OBJECT) {
			jv dp = jv_object_set(jv_object(), jv_string("orchestrator"),
					      jv_object_get(jv_copy(grant), jv_string("orchestrator")));
			dp = jv_object_set(dp, jv_string("deployment"), jv_object_get(jv_copy(grant), jv_string("deployment")));
			dp = jv_object_set(dp, jv_string("lease"), jv_object_get(jv_copy(grant), jv_string("lease")));
			dp = jv_object_set(dp, jv_string("pushed"), jv_copy(pushed));
			out = jv_object_set(out, jv_string("deployment"), dp);
		}
		print_json(out);
	}
	jv_free(grant);
	jv_free(pushed);
	jv_free(st);
	free(xfer);
	free(repo);
	free(pack);
	nn_client_close(&c);
	return 0;
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
	if (!strcmp(argv[1], "trace"))
		return cmd_trace(argc - 1, argv + 1);
	if (!strcmp(argv[1], "deploy")) {
		int r = nn_run_deploy(argc - 1, argv + 1);
		if (r < 0)
			usage(0);
		if (r == NN_EX_USAGE)
			usage(r);
		return r;
	}
	/* deployment ids first, then allocation ids */
	if (!strcmp(argv[1], "status") || !strcmp(argv[1], "logs") || !strcmp(argv[1], "wait") ||
	    !strcmp(argv[1], "cancel") || !strcmp(argv[1], "results")) {
		int r = nn_run_on_deployment(argv[1], argc - 1, argv + 1);
		if (r >= 0)
			return r;
		if (!strcmp(argv[1], "results")) {
			nn_error("results: '%s' is not a deployment of this node", argc > 2 ? argv[2] : "");
			usage(NN_EX_USAGE);
		}
	}
	if (!strcmp(argv[1], "ls"))
		return cmd_ls(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "logs"))
		return cmd_logs(argc - 1, argv + 1);
	if (!strcmp(argv[1], "wait"))
		return cmd_wait(argc - 1, argv + 1);
	if (!strcmp(argv[1], "cancel"))
		return cmd_cancel(argc - 1, argv + 1);
	if (!strcmp(argv[1], "checkpoint"))
		return cmd_checkpoint(argc - 1, argv + 1);
	if (!strcmp(argv[1], "migrate"))
		return cmd_migrate(argc - 1, argv + 1);
	if (!strcmp(argv[1], "validate"))
		return cmd_validate(argc - 1, argv + 1, usage);
	if (!strcmp(argv[1], "convert"))
		return cmd_convert(argc - 1, argv + 1, usage);
	if (argv[1][0] == '-')
		return cmd_submit(argc, argv);
	nn_error("unknown command '%s'", argv[1]);
	usage(NN_EX_USAGE);
}
