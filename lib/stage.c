/*
 * stage — the staging of an allocation's inputs and outputs (stage.h):
 * shape checks for /alloc/start, DIR/stage.json, and the child process
 * that runs nn_storage_stage / nn_storage_collect and reports on a pipe.
 */
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "json.h"
#include "storage.h"

#define STAGE_MAX (4 * 1024 * 1024)

static int check_list(jv list, const char *what, int inputs, char *err)
{
	int n;
	if (jv_get_kind(list) == JV_KIND_NULL || !jv_is_valid(list))
		return 0;
	if (jv_get_kind(list) != JV_KIND_ARRAY)
		return nn_seterr(err, "%s: expected an array of {\"url\",\"path\"} objects", what);
	n = jv_array_length(jv_copy(list));
	for (int i = 0; i < n; i++) {
		jv it = jv_array_get(jv_copy(list), i);
		const char *s;
		int rc = 0;
		if (jv_get_kind(it) != JV_KIND_OBJECT)
			rc = nn_seterr(err, "%s[%d]: expected an object with url and path", what, i);
		else if (nn_json_get_str(it, "url", &s, NULL) < 0 || !*s)
			rc = nn_seterr(err, "%s[%d].url: expected a URL (a non-empty string)", what, i);
		else if (nn_json_get_str(it, "path", &s, NULL) < 0 || !*s)
			rc = nn_seterr(err, "%s[%d].path: expected a path in the allocation directory",
				       what, i);
		else {
			jv_object_foreach(it, k, v) {
				const char *key = jv_string_value(k);
				if (rc == 0 && strcmp(key, "url") && strcmp(key, "path") &&
				    (!inputs || (strcmp(key, "sha256") && strcmp(key, "max_size"))))
					rc = nn_seterr(err, "%s[%d]: unknown field '%.40s' (known: url, path%s)",
						       what, i, key, inputs ? ", sha256, max_size" : "");
				else if (rc == 0 && !strcmp(key, "sha256") && jv_get_kind(v) != JV_KIND_STRING)
					rc = nn_seterr(err, "%s[%d].sha256: expected a hex string", what, i);
				else if (rc == 0 && !strcmp(key, "max_size") &&
					 (jv_get_kind(v) != JV_KIND_NUMBER || jv_number_value(v) < 0 ||
					  !nn_json_is_int(jv_number_value(v))))
					rc = nn_seterr(err, "%s[%d].max_size: expected bytes (an integer)",
						       what, i);
				jv_free(k);
				jv_free(v);
			}
		}
		jv_free(it);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int nn_stage_check(jv inputs, jv outputs, char *err)
{
	if (check_list(inputs, "inputs", 1, err) < 0 || check_list(outputs, "outputs", 0, err) < 0)
		return -1;
	return 0;
}


jv nn_stage_readonly(jv inputs)
{
	jv out = jv_array();
	if (jv_get_kind(inputs) != JV_KIND_ARRAY)
		return out;
	jv_array_foreach(inputs, i, it) {
		const char *p;
		if (nn_json_get_str(it, "path", &p, NULL) == 0 && nn_path_plain(p))
			out = jv_array_append(out, jv_string(p));
		jv_free(it);
	}
	return out;
}

jv nn_stage_read(const char *dir, char *err)
{
	char *path = nn_xasprintf("%s/%s", dir, NN_STAGE_FILE);
	char *text;
	jv v;
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		free(path);
		return jv_null();
	}
	text = nn_read_file(path, STAGE_MAX, NULL, err);
	free(path);
	if (!text)
		return jv_invalid();
	v = nn_json_parse(text, strlen(text), err);
	free(text);
	if (jv_is_valid(v) && jv_get_kind(v) != JV_KIND_OBJECT) {
		jv_free(v);
		nn_seterr(err, "%s: expected an object", NN_STAGE_FILE);
		return jv_invalid();
	}
	return v;
}

static jv field(jv o, const char *key)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	return jv_is_valid(v) ? v : (jv_free(v), jv_null());
}

int nn_stage_take(jv body, jv *spec, jv *opts, int64_t default_ms, char *err)
{
	jv in = field(body, "inputs"), out = field(body, "outputs"), t = field(body, "stage_timeout");
	int64_t ms = default_ms;
	int rc = nn_stage_check(in, out, err);
	if (rc == 0 && jv_get_kind(t) != JV_KIND_NULL &&
	    (jv_get_kind(t) != JV_KIND_STRING || nn_parse_duration_ms(jv_string_value(t), &ms) < 0 ||
	     ms <= 0))
		rc = nn_seterr(err, "stage_timeout: expected a duration such as \"10m\"");
	if (rc == 0 && jv_get_kind(in) == JV_KIND_ARRAY && jv_array_length(jv_copy(in)) > 0) {
		jv ro = field(*spec, "readonly"), add = nn_stage_readonly(in);
		if (jv_get_kind(ro) != JV_KIND_ARRAY) {
			jv_free(ro);
			ro = jv_array();
		}
		*spec = jv_object_set(*spec, jv_string("readonly"), jv_array_concat(ro, add));
		*opts = jv_object_set(*opts, jv_string("inputs"), jv_copy(in));
	}
	if (rc == 0 && jv_get_kind(out) == JV_KIND_ARRAY && jv_array_length(jv_copy(out)) > 0)
		*opts = jv_object_set(*opts, jv_string("outputs"), jv_copy(out));
	if (rc == 0 && (nn_stage_has(*opts, "inputs") || nn_stage_has(*opts, "outputs")))
		*opts = jv_object_set(*opts, jv_string("stage_timeout_ms"), jv_number((double)ms));
	jv_free(in);
	jv_free(out);
	jv_free(t);
	return rc;
}

int nn_stage_has(jv opts, const char *which)
{
	jv v = jv_get_kind(opts) == JV_KIND_OBJECT ? field(opts, which) : jv_null();
	int has = jv_get_kind(v) == JV_KIND_ARRAY && jv_array_length(jv_copy(v)) > 0;
	jv_free(v);
	return has;
}

int nn_stage_prepare(const char *dir, jv opts, char *err)
{
	int64_t ms = 0;
	jv in, out, o;
	char *text, *path;
	int rc;
	if (!nn_stage_has(opts, "inputs") && !nn_stage_has(opts, "outputs") &&
	    !nn_json_has(opts, "restore") && !nn_json_has(opts, "checkpoint_ms"))
		return 0;
	nn_json_get_int(opts, "stage_timeout_ms", &ms, NULL);
	in = field(opts, "inputs");
	out = field(opts, "outputs");
	o = jv_object_set(jv_object(), jv_string("inputs"),
			  jv_get_kind(in) == JV_KIND_ARRAY ? in : (jv_free(in), jv_array()));
	o = jv_object_set(o, jv_string("outputs"),
			  jv_get_kind(out) == JV_KIND_ARRAY ? out : (jv_free(out), jv_array()));
	o = jv_object_set(o, jv_string("timeout_ms"), jv_number((double)ms));
	if (nn_json_has(opts, "restore"))
		o = jv_object_set(o, jv_string("restore"), field(opts, "restore"));
	if (nn_json_has(opts, "checkpoint_ms")) {
		o = jv_object_set(o, jv_string("checkpoint_ms"), field(opts, "checkpoint_ms"));
		o = jv_object_set(o, jv_string("home"), field(opts, "home"));
	}
	if (nn_json_has(opts, "restore") || nn_json_has(opts, "checkpoint_ms"))
		o = jv_object_set(o, jv_string("state_dir"), field(opts, "state_dir"));
	text = nn_json_dump(o);
	jv_free(o);
	path = nn_xasprintf("%s/%s", dir, NN_STAGE_FILE);
	rc = nn_write_file(path, text, strlen(text), 0600, err);
	free(path);
	free(text);
	return rc;
}

/* ---- the child ---- */

static volatile sig_atomic_t cancelled;

static void on_term(int sig)
{
	cancelled = 1;
}

struct report {
	int fd;
	int index;
	const char *what;	/* "input" or "output" */
};

static void put_line(int fd, jv o)
{
	char *s = nn_json_dump(o);
	size_t len = strlen(s);
	jv_free(o);
	s[len] = '\n';
	nn_write_all(fd, s, len + 1);	/* a reader gone: the work goes on */
	free(s);
}

static int on_progress(const struct nn_storage_event *ev, void *arg)
{
	struct report *r = arg;
	jv o;
	if (!strcmp(ev->phase, "start"))
		r->index++;
	o = jv_object_set(jv_object(), jv_string("t"), jv_string("stage"));
	o = jv_object_set(o, jv_string("phase"), jv_string(ev->phase));
	o = jv_object_set(o, jv_string(r->what), jv_number(r->index));
	o = jv_object_set(o, jv_string("url"), jv_string(ev->url ? ev->url : ""));
	o = jv_object_set(o, jv_string("bytes"), jv_number((double)ev->bytes));
	o = jv_object_set(o, jv_string("total"), jv_number((double)ev->total));
	if (ev->error)
		o = jv_object_set(o, jv_string("error"), jv_string(ev->error));
	put_line(r->fd, o);
	return cancelled;
}

static int ro_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_SL)
		return 0;
	chmod(path, st->st_mode & ~(mode_t)0222);
	return 0;
}

/* chmod a-w every staged input (what the job sees when no executor can
 * mount it read-only; root ignores it, the mounts do not). */
static void make_readonly(jv results)
{
	jv_array_foreach(results, i, r) {
		const char *p;
		if (nn_json_get_str(r, "path", &p, NULL) == 0)
			nftw(p, ro_one, 16, FTW_PHYS | FTW_DEPTH);
		jv_free(r);
	}
}

static void child_main(jv items, const char *base, int collect, int64_t timeout_ms, int fd)
{
	struct nn_storage_opts o;
	struct report r = { fd, 0, collect ? "output" : "input" };
	struct sigaction sa;
	sigset_t none;
	char err[NN_ERRLEN];
	int code = 0;
	jv res, out;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;	/* no SA_RESTART: waits return early */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	nn_storage_opts_init(&o);
	o.timeout_ms = timeout_ms;
	o.progress = on_progress;
	o.progress_arg = &r;
	o.progress_interval_ms = 500;
	if (collect)
		res = nn_storage_collect(items, base, &o, &code, err);
	else
		res = nn_storage_stage(items, base, &o, &code, err);
	out = jv_object_set(jv_object(), jv_string("t"), jv_string("done"));
	if (cancelled && !code && !jv_is_valid(res)) {
		snprintf(err, sizeof err, "cancelled");
		code = NN_EX_TEMPFAIL;
	}
	out = jv_object_set(out, jv_string("ok"), jv_bool(jv_is_valid(res) && code == 0));
	if (code) {
		out = jv_object_set(out, jv_string("error"), jv_string(err));
		out = jv_object_set(out, jv_string("code"), jv_number(code));
	}
	if (jv_is_valid(res) && !collect && code == 0) {
		/* nn_storage_stage answers paths as given: resolve them in base */
		jv full = jv_array();
		jv_array_foreach(res, i, x) {
			const char *p;
			char *f = NULL;
			if (nn_json_get_str(x, "path", &p, NULL) == 0 &&
			    nn_storage_join(base, p, &f, NULL) == 0) {
				full = jv_array_append(full, jv_object_set(jv_object(), jv_string("path"),
									   jv_string(f)));
				free(f);
			}
			jv_free(x);
		}
		make_readonly(full);
		jv_free(full);
	}
	out = jv_object_set(out, jv_string("results"), jv_is_valid(res) ? res : (jv_free(res), jv_array()));
	put_line(fd, out);
}

pid_t nn_stage_spawn(jv items, const char *base, int collect, int64_t timeout_ms, int *fd, char *err)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return nn_seterr(err, "cannot make a pipe for staging: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return nn_seterr(err, "cannot fork the staging process: %s", strerror(e));
	}
	if (pid == 0) {
		/* nothing of the parent's sockets stays open in here */
		if (p[1] != 3) {
			if (dup2(p[1], 3) < 0)
				_exit(NN_EX_SOFTWARE);
		}
		syscall(SYS_close_range, 4U, ~0U, 0U);
		child_main(items, base, collect, timeout_ms, 3);
		_exit(0);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
	*fd = p[0];
	return pid;
}
