/*
 * exec — the parts of the executor interface that do not depend on how a
 * job runs: the registry of executors, parsing and checking a job spec from
 * JSON (unknown fields refused, the workdir kept inside the allocation
 * directory), command lookup in PATH, result and stats as JSON, and the
 * readers that tail and follow the stdout.log/stderr.log files every
 * executor writes into the allocation directory.
 */
#include "exec/exec.h"
#include "json.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The registry: one line per executor. */
static const struct nn_executor *const executors[] = {
	&nn_exec_native,
	&nn_exec_docker,
	&nn_exec_vm,
	NULL
};

const struct nn_executor *const *nn_exec_list(void)
{
	return executors;
}

const struct nn_executor *nn_exec_find(const char *name, char *err)
{
	struct nn_buf known = NN_BUF_INIT;
	for (size_t i = 0; executors[i]; i++)
		if (!strcmp(executors[i]->name, name))
			return executors[i];
	for (size_t i = 0; executors[i]; i++)
		nn_buf_addf(&known, "%s%s", i ? ", " : "", executors[i]->name);
	nn_seterr(err, "unknown executor '%s' (known: %s)", name, known.data ? known.data : "");
	nn_buf_release(&known);
	return NULL;
}

void nn_exec_job_init(struct nn_exec_job *job, const struct nn_executor *ex,
		      const struct nn_exec_spec *spec)
{
	memset(job, 0, sizeof *job);
	job->ex = ex;
	job->spec = spec;
	job->wait_fd = -1;
}

void nn_exec_job_release(struct nn_exec_job *job)
{
	if (job->ex && job->ex->release && job->priv)
		job->ex->release(job);
	free(job->priv);
	job->priv = NULL;
}

char *nn_exec_path(const struct nn_exec_spec *spec, const char *name)
{
	return nn_xasprintf("%s/%s", spec->dir, name);
}

void nn_exec_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* ---- spec ---------------------------------------------------------- */

/* Normalise an absolute path lexically: no "//", ".", ".." (which stops at
 * "/").  Returns a new string. */
static char *normalise(const char *path)
{
	size_t n = strlen(path);
	char *out = nn_xmalloc(n + 2);
	size_t o = 0;
	const char *p = path;

	out[o++] = '/';
	while (*p) {
		const char *s;
		size_t len;
		while (*p == '/')
			p++;
		s = p;
		while (*p && *p != '/')
			p++;
		len = (size_t)(p - s);
		if (len == 0 || (len == 1 && s[0] == '.'))
			continue;
		if (len == 2 && s[0] == '.' && s[1] == '.') {
			while (o > 1 && out[o - 1] != '/')
				o--;
			if (o > 1)
				o--;	/* the slash before it */
			continue;
		}
		if (o > 1)
			out[o++] = '/';
		memcpy(out + o, s, len);
		o += len;
	}
	out[o] = '\0';
	return out;
}

/* True when path is dir or below it (both normalised). */
static int inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (!strcmp(dir, "/"))
		return 1;
	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

static int valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64 || s[0] == '.' || s[0] == '-')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

/* An object whose values are all strings (borrows o). */
static int string_map(jv o, const char *what, int envnames, char *err)
{
	int ok = 1;
	if (jv_get_kind(o) != JV_KIND_OBJECT)
		return nn_seterr(err, "%s: expected an object of strings, got %s", what,
				 nn_json_kind(o));
	jv_object_foreach(o, k, v) {
		if (ok && jv_get_kind(v) != JV_KIND_STRING) {
			nn_seterr(err, "%s: '%s': expected a string, got %s", what,
				  jv_string_value(k), nn_json_kind(v));
			ok = 0;
		} else if (ok && envnames &&
			   (!*jv_string_value(k) || strchr(jv_string_value(k), '=') ||
			    (size_t)jv_string_length_bytes(jv_copy(k)) != strlen(jv_string_value(k)) ||
			    (size_t)jv_string_length_bytes(jv_copy(v)) != strlen(jv_string_value(v)))) {
			nn_seterr(err, "%s: bad variable name '%s' (empty, or holds '=' or NUL)",
				  what, jv_string_value(k));
			ok = 0;
		}
		jv_free(k);
		jv_free(v);
	}
	return ok ? 0 : -1;
}

/* "cpu": 1, 0.5, "500m", "2" → millicores. */
static int parse_cpu(jv v, uint64_t *out, char *err)
{
	double d;
	if (jv_get_kind(v) == JV_KIND_NUMBER) {
		d = jv_number_value(v) * 1000.0;
	} else if (jv_get_kind(v) == JV_KIND_STRING) {
		const char *s = jv_string_value(v);
		char *end;
		errno = 0;
		d = strtod(s, &end);
		if (errno || end == s)
			return nn_seterr(err, "resources.cpu: '%s' is not a cpu count", s);
		if (!strcmp(end, "m"))
			;
		else if (!*end)
			d *= 1000.0;
		else
			return nn_seterr(err, "resources.cpu: '%s' is not a cpu count", s);
	} else {
		return nn_seterr(err, "resources.cpu: expected a number, got %s", nn_json_kind(v));
	}
	if (!isfinite(d) || d < 1 || d > 1e9)
		return nn_seterr(err, "resources.cpu: must be at least 0.001 (1m)");
	*out = (uint64_t)llround(d);
	return 0;
}

static int parse_count(jv v, const char *what, uint64_t *out, char *err)
{
	double d;
	if (jv_get_kind(v) == JV_KIND_STRING) {
		uint64_t u;
		if (nn_parse_size(jv_string_value(v), &u) < 0 || u == 0)
			return nn_seterr(err, "%s: '%s' is not a positive size", what,
					 jv_string_value(v));
		*out = u;
		return 0;
	}
	if (jv_get_kind(v) != JV_KIND_NUMBER)
		return nn_seterr(err, "%s: expected a number, got %s", what, nn_json_kind(v));
	d = jv_number_value(v);
	if (!nn_json_is_int(d) || d < 1)
		return nn_seterr(err, "%s: expected a positive integer", what);
	*out = (uint64_t)d;
	return 0;
}

static int parse_resources(struct nn_exec_spec *spec, jv r, char *err)
{
	int rc = 0;
	if (jv_get_kind(r) != JV_KIND_OBJECT)
		return nn_seterr(err, "resources: expected an object, got %s", nn_json_kind(r));
	jv_object_foreach(r, k, v) {
		const char *key = jv_string_value(k);
		if (rc < 0)
			;
		else if (!strcmp(key, "cpu"))
			rc = parse_cpu(v, &spec->limits.cpu_milli, err);
		else if (!strcmp(key, "memory"))
			rc = parse_count(v, "resources.memory", &spec->limits.memory, err);
		else if (!strcmp(key, "pids"))
			rc = parse_count(v, "resources.pids", &spec->limits.pids, err);
		else
			rc = nn_seterr(err, "resources: unknown field '%s' (known: cpu, memory, pids)",
				       key);
		jv_free(k);
		jv_free(v);
	}
	return rc;
}

static int get_bool(jv v, const char *what, int *out, char *err)
{
	if (jv_get_kind(v) == JV_KIND_TRUE)
		*out = 1;
	else if (jv_get_kind(v) == JV_KIND_FALSE)
		*out = 0;
	else
		return nn_seterr(err, "%s: expected true or false, got %s", what, nn_json_kind(v));
	return 0;
}

static const char *const spec_fields[] = {
	"executor", "id", "dir", "command", "env", "workdir", "resources", "image",
	"net", "allow_unlimited", "labels", "options", "readonly", NULL
};

/* "readonly": paths relative to dir, without ".." or empty components. */
static int parse_readonly(struct nn_exec_spec *spec, jv v, char *err)
{
	int n;
	if (jv_get_kind(v) != JV_KIND_ARRAY)
		return nn_seterr(err, "readonly: expected an array of paths inside the allocation directory");
	n = jv_array_length(jv_copy(v));
	nn_exec_strv_free(spec->readonly);
	spec->readonly = nn_xcalloc((size_t)n + 1, sizeof *spec->readonly);
	for (int i = 0; i < n; i++) {
		jv a = jv_array_get(jv_copy(v), i);
		const char *p = jv_get_kind(a) == JV_KIND_STRING ? jv_string_value(a) : NULL;
		int bad = !p || !*p || p[0] == '/' || strlen(p) != (size_t)jv_string_length_bytes(jv_copy(a));
		for (const char *c = p; !bad && c && *c;) {
			size_t len = strcspn(c, "/");
			bad = len == 0 || (len == 2 && !strncmp(c, "..", 2)) || (len == 1 && *c == '.');
			c += len;
			if (*c == '/')
				c++;
		}
		if (bad) {
			jv_free(a);
			return nn_seterr(err, "readonly: element %d: expected a path relative to the "
					 "allocation directory, without '.', '..' or empty parts", i);
		}
		spec->readonly[i] = nn_xstrdup(p);
		jv_free(a);
	}
	return 0;
}

static int parse_field(struct nn_exec_spec *spec, const char *key, jv v, char **workdir,
		       const char **dirarg, char *err)
{
	if (!strcmp(key, "executor") || !strcmp(key, "id") || !strcmp(key, "dir") ||
	    !strcmp(key, "workdir")) {
		if (jv_get_kind(v) != JV_KIND_STRING || !*jv_string_value(v))
			return nn_seterr(err, "%s: expected a non-empty string, got %s", key,
					 jv_get_kind(v) == JV_KIND_STRING ? "\"\"" : nn_json_kind(v));
		if (!strcmp(key, "executor")) {
			free(spec->executor);
			spec->executor = nn_xstrdup(jv_string_value(v));
		} else if (!strcmp(key, "id")) {
			if (!valid_id(jv_string_value(v)))
				return nn_seterr(err, "id: '%s' is not a valid id (1-64 of "
						 "A-Z a-z 0-9 . _ -, not starting with . or -)",
						 jv_string_value(v));
			spec->id = nn_xstrdup(jv_string_value(v));
		} else if (!strcmp(key, "dir")) {
			*dirarg = jv_string_value(v);
		} else {
			*workdir = nn_xstrdup(jv_string_value(v));
		}
		return 0;
	}
	if (!strcmp(key, "command")) {
		int n;
		if (jv_get_kind(v) != JV_KIND_ARRAY || (n = jv_array_length(jv_copy(v))) == 0)
			return nn_seterr(err, "command: expected a non-empty array of strings");
		spec->argv = nn_xcalloc((size_t)n + 1, sizeof *spec->argv);
		spec->argc = n;
		for (int i = 0; i < n; i++) {
			jv a = jv_array_get(jv_copy(v), i);
			if (jv_get_kind(a) != JV_KIND_STRING ||
			    (size_t)jv_string_length_bytes(jv_copy(a)) != strlen(jv_string_value(a)) ||
			    (i == 0 && !*jv_string_value(a))) {
				jv_free(a);
				return nn_seterr(err, "command: element %d: expected a string%s", i,
						 i == 0 ? " naming a program" : " without NUL");
			}
			spec->argv[i] = nn_xstrdup(jv_string_value(a));
			jv_free(a);
		}
		return 0;
	}
	if (!strcmp(key, "env")) {
		if (string_map(v, "env", 1, err) < 0)
			return -1;
		jv_free(spec->env);
		spec->env = jv_copy(v);
		return 0;
	}
	if (!strcmp(key, "labels")) {
		if (string_map(v, "labels", 0, err) < 0)
			return -1;
		jv_free(spec->labels);
		spec->labels = jv_copy(v);
		return 0;
	}
	if (!strcmp(key, "options")) {
		if (jv_get_kind(v) != JV_KIND_OBJECT)
			return nn_seterr(err, "options: expected an object, got %s", nn_json_kind(v));
		jv_free(spec->options);
		spec->options = jv_copy(v);
		return 0;
	}
	if (!strcmp(key, "image")) {
		if (jv_get_kind(v) == JV_KIND_STRING && *jv_string_value(v))
			spec->image = nn_xstrdup(jv_string_value(v));
		else if (jv_get_kind(v) != JV_KIND_OBJECT)
			return nn_seterr(err, "image: expected a string or an object, got %s",
					 nn_json_kind(v));
		jv_free(spec->image_jv);
		spec->image_jv = jv_copy(v);
		return 0;
	}
	if (!strcmp(key, "resources"))
		return parse_resources(spec, v, err);
	if (!strcmp(key, "readonly"))
		return parse_readonly(spec, v, err);
	if (!strcmp(key, "net"))
		return get_bool(v, "net", &spec->net, err);
	if (!strcmp(key, "allow_unlimited"))
		return get_bool(v, "allow_unlimited", &spec->allow_unlimited, err);
	{
		struct nn_buf known = NN_BUF_INIT;
		for (int i = 0; spec_fields[i]; i++)
			nn_buf_addf(&known, "%s%s", i ? ", " : "", spec_fields[i]);
		nn_seterr(err, "unknown field '%s' (known: %s)", key, known.data);
		nn_buf_release(&known);
		return -1;
	}
}

int nn_exec_spec_parse(struct nn_exec_spec *spec, jv json, const char *home, char *err)
{
	char *workdir = NULL;
	const char *dirarg = NULL;
	char *abs = NULL;
	int rc = 0;

	memset(spec, 0, sizeof *spec);
	spec->env = jv_object();
	spec->labels = jv_object();
	spec->options = jv_object();
	spec->image_jv = jv_null();
	if (jv_get_kind(json) != JV_KIND_OBJECT) {
		nn_seterr(err, "spec: expected an object, got %s", nn_json_kind(json));
		jv_free(json);
		nn_exec_spec_release(spec);
		return -1;
	}
	jv_object_foreach(json, k, v) {
		if (rc == 0)
			rc = parse_field(spec, jv_string_value(k), v, &workdir, &dirarg, err);
		jv_free(k);
		jv_free(v);
	}
	if (rc < 0)
		goto fail;
	if (!spec->argv) {
		nn_seterr(err, "command: missing");
		goto fail;
	}
	if (!spec->executor)
		spec->executor = nn_xstrdup("native");
	if (!spec->id) {
		char id[33];
		nn_random_id(id);
		spec->id = nn_xstrdup(id);
	}
	if (dirarg) {
		if (dirarg[0] == '/') {
			abs = nn_xstrdup(dirarg);
		} else {
			char cwd[PATH_MAX];
			if (!getcwd(cwd, sizeof cwd)) {
				nn_seterr(err, "dir: cannot get the current directory: %s",
					  strerror(errno));
				goto fail;
			}
			abs = nn_xasprintf("%s/%s", cwd, dirarg);
		}
	} else if (home && *home) {
		abs = nn_xasprintf("%s%s/alloc/%s", home[0] == '/' ? "" : "./", home, spec->id);
		if (home[0] != '/') {
			char cwd[PATH_MAX];
			free(abs);
			if (!getcwd(cwd, sizeof cwd)) {
				nn_seterr(err, "dir: cannot get the current directory: %s",
					  strerror(errno));
				goto fail;
			}
			abs = nn_xasprintf("%s/%s/alloc/%s", cwd, home, spec->id);
		}
	} else {
		nn_seterr(err, "dir: missing (and no NUNET_HOME to put the allocation in)");
		goto fail;
	}
	spec->dir = normalise(abs);
	free(abs);
	abs = NULL;
	if (!strcmp(spec->dir, "/")) {
		nn_seterr(err, "dir: the allocation directory cannot be '/'");
		goto fail;
	}
	if (workdir) {
		char *w = workdir[0] == '/' ? nn_xstrdup(workdir)
			: nn_xasprintf("%s/%s", spec->dir, workdir);
		spec->workdir = normalise(w);
		free(w);
		if (!inside(spec->workdir, spec->dir)) {
			nn_seterr(err, "workdir: '%s' is outside the allocation directory '%s'",
				  workdir, spec->dir);
			goto fail;
		}
	} else {
		spec->workdir = nn_xstrdup(spec->dir);
	}
	free(workdir);
	jv_free(json);
	return 0;
fail:
	free(workdir);
	free(abs);
	jv_free(json);
	nn_exec_spec_release(spec);
	return -1;
}

void nn_exec_spec_release(struct nn_exec_spec *spec)
{
	free(spec->id);
	free(spec->dir);
	free(spec->executor);
	nn_exec_strv_free(spec->argv);
	nn_exec_strv_free(spec->readonly);
	free(spec->image);
	free(spec->workdir);
	jv_free(spec->env);
	jv_free(spec->labels);
	jv_free(spec->options);
	jv_free(spec->image_jv);
	memset(spec, 0, sizeof *spec);
	spec->env = spec->labels = spec->options = spec->image_jv = jv_invalid();
}

char **nn_exec_spec_envp(const struct nn_exec_spec *spec)
{
	int n = jv_get_kind(spec->env) == JV_KIND_OBJECT ? jv_object_length(jv_copy(spec->env)) : 0;
	char **v = nn_xcalloc((size_t)n + 1, sizeof *v);
	int i = 0;
	if (n == 0)
		return v;
	jv_object_foreach(spec->env, k, val) {
		if (i < n)
			v[i++] = nn_xasprintf("%s=%s", jv_string_value(k), jv_string_value(val));
		jv_free(k);
		jv_free(val);
	}
	return v;
}

jv nn_exec_spec_json(const struct nn_exec_spec *spec)
{
	jv o = jv_object(), cmd = jv_array(), res = jv_object();
	for (int i = 0; i < spec->argc; i++)
		cmd = jv_array_append(cmd, jv_string(spec->argv[i]));
	o = jv_object_set(o, jv_string("executor"), jv_string(spec->executor));
	o = jv_object_set(o, jv_string("id"), jv_string(spec->id));
	o = jv_object_set(o, jv_string("dir"), jv_string(spec->dir));
	o = jv_object_set(o, jv_string("command"), cmd);
	o = jv_object_set(o, jv_string("env"), jv_copy(spec->env));
	o = jv_object_set(o, jv_string("workdir"), jv_string(spec->workdir));
	if (spec->limits.cpu_milli)
		res = jv_object_set(res, jv_string("cpu"),
				    jv_number((double)spec->limits.cpu_milli / 1000.0));
	if (spec->limits.memory)
		res = jv_object_set(res, jv_string("memory"), jv_number((double)spec->limits.memory));
	if (spec->limits.pids)
		res = jv_object_set(res, jv_string("pids"), jv_number((double)spec->limits.pids));
	o = jv_object_set(o, jv_string("resources"), res);
	if (jv_get_kind(spec->image_jv) != JV_KIND_NULL)
		o = jv_object_set(o, jv_string("image"), jv_copy(spec->image_jv));
	o = jv_object_set(o, jv_string("net"), jv_bool(spec->net));
	o = jv_object_set(o, jv_string("allow_unlimited"), jv_bool(spec->allow_unlimited));
	o = jv_object_set(o, jv_string("labels"), jv_copy(spec->labels));
	o = jv_object_set(o, jv_string("options"), jv_copy(spec->options));
	if (spec->readonly) {
		jv ro = jv_array();
		for (int i = 0; spec->readonly[i]; i++)
			ro = jv_array_append(ro, jv_string(spec->readonly[i]));
		o = jv_object_set(o, jv_string("readonly"), ro);
	}
	return o;
}

/* ---- directories --------------------------------------------------- */

/* The deepest existing ancestor of path (or path), resolved; NULL if none. */
static char *resolve_existing(const char *path)
{
	char *p = nn_xstrdup(path);
	for (;;) {
		char *r = realpath(p, NULL);
		char *slash;
		if (r) {
			free(p);
			return r;
		}
		slash = strrchr(p, '/');
		if (!slash || slash == p) {
			free(p);
			return realpath("/", NULL);
		}
		*slash = '\0';
	}
}

int nn_exec_dir_check(const struct nn_exec_spec *spec, char *err)
{
	char *rdir, *rwork;
	int ok;
	struct stat st;

	if (stat(spec->dir, &st) == 0 && !S_ISDIR(st.st_mode))
		return nn_seterr(err, "dir: '%s' is not a directory", spec->dir);
	if (stat(spec->workdir, &st) == 0 && !S_ISDIR(st.st_mode))
		return nn_seterr(err, "workdir: '%s' is not a directory", spec->workdir);
	if (stat(spec->dir, &st) < 0)
		return 0;	/* nothing exists yet: the lexical check holds */
	rdir = realpath(spec->dir, NULL);
	if (!rdir)
		return nn_seterr(err, "dir: '%s': %s", spec->dir, strerror(errno));
	/* workdir is lexically inside dir and dir exists, so the deepest
	 * existing part of workdir is dir or below it, unless a symlink
	 * leads elsewhere. */
	rwork = resolve_existing(spec->workdir);
	ok = rwork && inside(rwork, rdir);
	if (!ok)
		nn_seterr(err, "workdir: '%s' resolves to '%s', outside the allocation directory",
			  spec->workdir, rwork ? rwork : "?");
	free(rdir);
	free(rwork);
	return ok ? 0 : -1;
}

/* Remove the directories from path up to (excluding) keep that mkdirs made. */
static void rm_made(const char *path, const char *stop)
{
	char *p = nn_xstrdup(path);
	while (strlen(p) > strlen(stop)) {
		char *slash;
		if (rmdir(p) < 0)
			break;
		slash = strrchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	free(p);
}

int nn_exec_dir_create(const struct nn_exec_spec *spec, char *err)
{
	char *first = resolve_existing(spec->dir);	/* what existed before */
	char *rdir = NULL, *rwork = NULL;
	int rc = -1;

	if (nn_mkdirs(spec->dir, 0755, err) < 0)
		goto out;
	rdir = realpath(spec->dir, NULL);
	if (!rdir) {
		nn_seterr(err, "dir: '%s': %s", spec->dir, strerror(errno));
		goto undo;
	}
	rwork = resolve_existing(spec->workdir);
	if (!rwork || !(inside(rwork, rdir))) {
		nn_seterr(err, "workdir: '%s' resolves to '%s', outside the allocation directory",
			  spec->workdir, rwork ? rwork : "?");
		goto undo;
	}
	if (nn_mkdirs(spec->workdir, 0755, err) < 0)
		goto undo;
	free(rwork);
	rwork = realpath(spec->workdir, NULL);
	if (!rwork || !inside(rwork, rdir)) {
		nn_seterr(err, "workdir: '%s' resolves outside the allocation directory",
			  spec->workdir);
		goto undo;
	}
	rc = 0;
	goto out;
undo:
	if (first && inside(spec->dir, first)) {
		rm_made(spec->workdir, spec->dir);
		rm_made(spec->dir, first);
	}
out:
	free(first);
	free(rdir);
	free(rwork);
	return rc;
}

/* ---- command lookup ------------------------------------------------ */

static int runnable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *nn_exec_resolve(const char *name, const char *path, char *err)
{
	const char *p;
	if (strchr(name, '/')) {
		struct stat st;
		if (stat(name, &st) < 0) {
			nn_seterr(err, "command '%s' not found: %s", name, strerror(errno));
			return NULL;
		}
		if (!S_ISREG(st.st_mode) || access(name, X_OK) < 0) {
			nn_seterr(err, "command '%s' is not an executable file", name);
			return NULL;
		}
		return nn_xstrdup(name);
	}
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	p = path;
	for (;;) {
		const char *e = strchr(p, ':');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *cand = len ? nn_xasprintf("%.*s/%s", (int)len, p, name)
			: nn_xasprintf("./%s", name);
		if (runnable(cand))
			return cand;
		free(cand);
		if (!e)
			break;
		p = e + 1;
	}
	nn_seterr(err, "command '%s' not found in PATH (%s)", name, path);
	return NULL;
}

/* ---- results ------------------------------------------------------- */

int nn_exec_result_status(const struct nn_exec_result *r)
{
	if (!r->done)
		return -1;
	if (r->signal > 0)
		return 128 + r->signal;
	if (r->code >= 0)
		return r->code & 0xff;
	return r->oom ? 137 : NN_EX_SOFTWARE;
}

jv nn_exec_result_json(const struct nn_exec_result *r)
{
	const char *state = !r->done ? "running" : r->oom ? "oom" : r->signal > 0 ? "killed"
		: r->code >= 0 ? "exited" : "lost";
	jv o = jv_object();
	o = jv_object_set(o, jv_string("state"), jv_string(state));
	o = jv_object_set(o, jv_string("code"), r->done && r->code >= 0 ? jv_number(r->code) : jv_null());
	o = jv_object_set(o, jv_string("signal"), r->signal > 0 ? jv_number(r->signal) : jv_null());
	if (r->done)
		o = jv_object_set(o, jv_string("status"), jv_number(nn_exec_result_status(r)));
	o = jv_object_set(o, jv_string("reason"), jv_string(r->reason));
	return o;
}

jv nn_exec_stats_json(const struct nn_exec_stats *st)
{
	jv o = jv_object();
	o = jv_object_set(o, jv_string("cpu_seconds"),
			  st->cpu_seconds >= 0 ? jv_number(round(st->cpu_seconds * 1e6) / 1e6) : jv_null());
	o = jv_object_set(o, jv_string("memory_peak"),
			  st->memory_peak >= 0 ? jv_number((double)st->memory_peak) : jv_null());
	o = jv_object_set(o, jv_string("memory_current"),
			  st->memory_current >= 0 ? jv_number((double)st->memory_current) : jv_null());
	o = jv_object_set(o, jv_string("pids_current"),
			  st->pids_current >= 0 ? jv_number((double)st->pids_current) : jv_null());
	return o;
}

/* ---- logs ---------------------------------------------------------- */

void nn_exec_follow_init(struct nn_exec_follow *f, const char *path, int from_end)
{
	struct stat st;
	f->path = nn_xstrdup(path);
	f->fd = -1;
	f->off = 0;
	if (from_end && stat(path, &st) == 0)
		f->off = st.st_size;
}

void nn_exec_follow_release(struct nn_exec_follow *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->path);
	f->path = NULL;
}

ssize_t nn_exec_follow_pump(struct nn_exec_follow *f, int outfd, char *err)
{
	char buf[65536];
	ssize_t total = 0;
	struct stat st;

	if (f->fd < 0) {
		f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (f->fd < 0) {
			if (errno == ENOENT)
				return 0;
			return nn_seterr(err, "cannot open '%s': %s", f->path, strerror(errno));
		}
	}
	/* A log that shrank was truncated or rotated: start again at 0. */
	if (fstat(f->fd, &st) == 0 && st.st_size < f->off)
		f->off = 0;
	for (;;) {
		ssize_t n = pread(f->fd, buf, sizeof buf, f->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return nn_seterr(err, "cannot read '%s': %s", f->path, strerror(errno));
		}
		if (n == 0)
			break;
		if (nn_write_all(outfd, buf, (size_t)n) < 0)
			return nn_seterr(err, "cannot write: %s", strerror(errno));
		f->off += n;
		total += n;
	}
	return total;
}

int nn_exec_log_tail(const char *path, long nlines, int outfd, char *err)
{
	char buf[65536];
	struct stat st;
	off_t pos, start = 0;
	long seen = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return nn_seterr(err, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		close(fd);
		return nn_seterr(err, "cannot stat '%s': %s", path, strerror(errno));
	}
	pos = st.st_size;
	if (nlines <= 0) {
		start = pos;
		goto copy;
	}
	while (pos > 0) {
		size_t want = pos > (off_t)sizeof buf ? sizeof buf : (size_t)pos;
		ssize_t n = pread(fd, buf, want, pos - (off_t)want);
		if (n <= 0) {
			close(fd);
			return nn_seterr(err, "cannot read '%s': %s", path,
					 n < 0 ? strerror(errno) : "file shrank");
		}
		for (ssize_t i = n - 1; i >= 0; i--) {
			off_t at = pos - (off_t)want + i;
			if (buf[i] != '\n' || at == st.st_size - 1)
				continue;
			if (++seen == nlines) {
				start = at + 1;
				goto copy;
			}
		}
		pos -= (off_t)want;
	}
	start = 0;
copy:
	while (start < st.st_size) {
		ssize_t n = pread(fd, buf, sizeof buf, start);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (nn_write_all(outfd, buf, (size_t)n) < 0) {
			close(fd);
			return nn_seterr(err, "cannot write: %s", strerror(errno));
		}
		start += n;
	}
	close(fd);
	return 0;
}

unsigned long long nn_exec_proc_starttime(pid_t pid, int live_only)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd, field = 2;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* the command name may hold anything */
	if (!p || (live_only && (p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')))
		return 0;
	/* fields after the command: 3 state … 22 starttime */
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	return strtoull(p, NULL, 10);
}

int nn_exec_write_state(const struct nn_exec_spec *s, const char *name, jv o, char *err)
{
	char *text = nn_json_dump(o), *path = nn_exec_path(s, name);
	int rc = nn_write_file_nosync(path, text, strlen(text), 0644, err);
	jv_free(o);
	free(path);
	free(text);
	return rc;
}

/*
 * Leave a real-time scheduling policy (SCHED_FIFO, SCHED_RR) for
 * SCHED_OTHER, as a job must: a cgroup v1 cpu group gives real-time tasks
 * no runtime (cpu.rt_runtime_us 0), so the kernel refuses to move one in,
 * and a job is no place for a starter's real-time priority.  Other
 * policies (batch, idle) and the nice value are kept.  -1 with errno when
 * the policy cannot be changed.
 */
int nn_exec_sched_normal(void)
{
	int p = sched_getscheduler(0);
	struct sched_param sp = { 0 };
	if (p < 0)
		return -1;
	p &= ~SCHED_RESET_ON_FORK;
	if (p != SCHED_FIFO && p != SCHED_RR)
		return 0;
	return sched_setscheduler(0, SCHED_OTHER, &sp);
}
