/*
 * docker — the executor that runs a job as a container of a Docker engine
 * (or Podman's Docker-compatible service) through the engine's REST API
 * (lib/exec/dockerapi.c).  The container is created from an image already
 * present in the engine (no registry pull), named nunet-ID and labelled
 * nunet.alloc=ID and nunet.dir=DIR so a restarted node can find it again;
 * the spec's command replaces the image's entrypoint and command, its env is
 * passed as is (the engine adds PATH when the env has none), the allocation
 * directory is bind-mounted at /alloc (options.mount) and the workdir is the
 * same place below it, and the limits become Memory (= MemorySwap),
 * NanoCpus and PidsLimit.  options.binds adds bind mounts
 * ("HOST:CONTAINER:ro", as the engine's Binds: the node hands a job its
 * control socket and credentials so).  "net":true gives NetworkMode none (own network
 * namespace, loopback only); otherwise the engine's default network, or
 * options.network.
 *
 * The engine keeps the container's output; a log follower, a child process
 * in its own session (so it outlives the process that started the job),
 * follows the multiplexed log stream and appends it decoded to stdout.log
 * and stderr.log in the allocation directory, and ends when the container
 * does.  Its pid and start time go into DIR/docker.json with the container
 * id and the engine, for adopt().  Usage figures come from the engine's
 * one-shot stats, sampled about once a second while the job is waited on
 * (a job shorter than that may show none).  A kill for memory is told by
 * State.OOMKilled; Podman 4.3 never sets it here, so a SIGKILL we did not
 * send, under a memory limit, is reported as oom and the reason says it
 * was inferred.
 *
 * The engine is options.host, else $DOCKER_HOST (unix:// only), else
 * /var/run/docker.sock; available(), which has no spec, pings only the
 * latter two.  A job stopped with SIGTERM runs as the container's pid 1,
 * which ignores signals it has no handler for (as in the native executor).
 */
#include "exec/exec.h"
#include "exec/dockerapi.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define STATE_FILE "docker.json"
#define MIN_MEMORY (6 * 1024 * 1024)	/* the engine refuses less */
#define SAMPLE_MS 1000
#define DRAIN_MS 5000			/* wait this long for the follower */

struct dock {
	struct nn_docker d;
	int have_d;
	char *host;		/* options.host, or NULL */
	char *user;		/* options.user */
	char *network;		/* options.network */
	char *mount;		/* where DIR appears in the container, or NULL */
	jv binds;		/* options.binds: more "HOST:CONTAINER[:ro]", or null */
	int drop_memory, drop_cpu, drop_pids;	/* allow_unlimited said so */
	char cid[65];		/* container id, "" when none */
	pid_t follower;		/* log follower, 0 when none */
	unsigned long long follower_start;
	int follower_ours;	/* 1: our child, reaped with waitpid */
	int signalled;		/* last signal we sent */
	struct nn_exec_result res;
	struct nn_exec_stats st;
	int64_t sampled_ms;	/* monotonic time of the last stats sample */
};

static struct dock *priv(struct nn_exec_job *job)
{
	if (!job->priv) {
		struct dock *k = nn_xcalloc(1, sizeof *k);
		k->st.cpu_seconds = -1;
		k->binds = jv_null();
		k->st.memory_peak = k->st.memory_current = k->st.pids_current = -1;
		job->priv = k;
	}
	return job->priv;
}

static int fail(struct nn_exec_job *job, int code, char *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct nn_exec_job *job, int code, char *err, const char *fmt, ...)
{
	va_list ap;
	job->ex_code = code;
	if (err && fmt) {
		va_start(ap, fmt);
		vsnprintf(err, NN_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The engine client, made on first use from options.host or DOCKER_HOST. */
static struct nn_docker *engine(struct nn_exec_job *job, char *err)
{
	struct dock *k = priv(job);
	if (!k->have_d) {
		if (nn_docker_init(&k->d, k->host, err) < 0)
			return NULL;
		k->have_d = 1;
	}
	return &k->d;
}

static int docker_available(char *why)
{
	struct nn_docker d;
	char err[NN_ERRLEN];
	int rc;
	if (nn_docker_init(&d, NULL, err) < 0)
		return nn_seterr(why, "docker executor: %s", err);
	rc = nn_docker_ping(&d, err);
	if (rc < 0)
		nn_seterr(why, "docker executor: %s", err);
	nn_docker_release(&d);
	return rc;
}

/* A bind "HOST:CONTAINER" or "HOST:CONTAINER:ro": two absolute paths
 * (CONTAINER not '/'), HOST existing. */
static int bind_ok(const char *b)
{
	const char *c = strchr(b, ':'), *m;
	char *host;
	int ok;
	if (b[0] != '/' || !c || c[1] != '/' || c[2] == '\0' || c[2] == ':')
		return 0;
	m = strchr(c + 1, ':');
	if (m && strcmp(m, ":ro") != 0 && strcmp(m, ":rw") != 0)
		return 0;
	host = nn_xasprintf("%.*s", (int)(c - b), b);
	ok = access(host, F_OK) == 0;
	free(host);
	return ok;
}

/* options: {"host":"unix:///…","user":"1000:1000","network":"host",
 * "mount":"/alloc" (or "" for no bind mount), "binds":["HOST:CONTAINER:ro"]} */
static int parse_options(struct nn_exec_job *job, struct dock *k, char *err)
{
	int rc = 0;
	free(k->mount);
	k->mount = nn_xstrdup("/alloc");
	jv_free(k->binds);
	k->binds = jv_null();
	jv_object_foreach(job->spec->options, key, v) {
		const char *name = jv_string_value(key);
		char **slot = !strcmp(name, "host") ? &k->host : !strcmp(name, "user") ? &k->user
			: !strcmp(name, "network") ? &k->network : !strcmp(name, "mount") ? &k->mount
			: NULL;
		if (rc < 0) {
			;
		} else if (!strcmp(name, "binds")) {
			int good = jv_get_kind(v) == JV_KIND_ARRAY;
			if (good)
				jv_array_foreach(v, i, b) {
					good &= jv_get_kind(b) == JV_KIND_STRING && bind_ok(jv_string_value(b));
					jv_free(b);
				}
			if (!good)
				rc = fail(job, NN_EX_DATAERR, err, "options.binds: expected an array of "
					  "\"HOST:CONTAINER[:ro]\" with absolute paths, HOST existing");
			else
				k->binds = jv_copy(v);
		} else if (!slot) {
			rc = fail(job, NN_EX_DATAERR, err,
				  "options: unknown field '%s' for the docker executor "
				  "(known: binds, host, mount, network, user)", name);
		} else if (jv_get_kind(v) != JV_KIND_STRING ||
			   (strcmp(name, "mount") && !*jv_string_value(v))) {
			rc = fail(job, NN_EX_DATAERR, err, "options.%s: expected a%s string", name,
				  strcmp(name, "mount") ? " non-empty" : "");
		} else {
			free(*slot);
			*slot = nn_xstrdup(jv_string_value(v));
		}
		jv_free(key);
		jv_free(v);
	}
	if (rc == 0 && k->mount[0] == '\0') {
		free(k->mount);
		k->mount = NULL;
	} else if (rc == 0 && (k->mount[0] != '/' || strchr(k->mount, ':') || !strcmp(k->mount, "/"))) {
		rc = fail(job, NN_EX_DATAERR, err,
			  "options.mount: '%s' is not an absolute path other than '/' without ':'",
			  k->mount);
	}
	return rc;
}

/* Is the engine able to enforce a limit?  /info says (booleans). */
static int engine_can(jv info, const char *field)
{
	jv v = jv_object_get(jv_copy(info), jv_string(field));
	int ok = jv_get_kind(v) != JV_KIND_FALSE;	/* unknown engines: assume yes */
	jv_free(v);
	return ok;
}

static int check_limits(struct nn_exec_job *job, struct dock *k, struct nn_docker *d, char *err)
{
	const struct nn_exec_limits *l = &job->spec->limits;
	static const struct { const char *field, *what; } need[] = {
		{ "MemoryLimit", "memory" }, { "CpuCfsQuota", "cpu" }, { "PidsLimit", "pids" },
	};
	uint64_t asked[3] = { l->memory, l->cpu_milli, l->pids };
	int *drop[3] = { &k->drop_memory, &k->drop_cpu, &k->drop_pids };
	jv info;

	if (l->memory && l->memory < MIN_MEMORY)
		return fail(job, NN_EX_DATAERR, err,
			    "resources.memory: %llu bytes is below the 6 MiB a container needs",
			    (unsigned long long)l->memory);
	if (!l->memory && !l->cpu_milli && !l->pids)
		return 0;
	if (nn_docker_call(d, "GET", "/info", jv_invalid(), &info, err) < 0)
		return fail(job, NN_EX_UNAVAILABLE, NULL, NULL);
	for (int i = 0; i < 3; i++) {
		if (!asked[i] || engine_can(info, need[i].field))
			continue;
		if (!job->spec->allow_unlimited) {
			jv_free(info);
			return fail(job, NN_EX_UNAVAILABLE, err,
				    "%s limit: the engine at %s cannot enforce it (%s is false; "
				    "set allow_unlimited to run without it)", need[i].what,
				    d->host, need[i].field);
		}
		*drop[i] = 1;
	}
	jv_free(info);
	return 0;
}

static int docker_prepare(struct nn_exec_job *job, char *err)
{
	struct dock *k = priv(job);
	const struct nn_exec_spec *s = job->spec;
	struct nn_docker *d;
	int r;

	if (parse_options(job, k, err) < 0)
		return -1;
	if (!s->image)
		return fail(job, NN_EX_DATAERR, err, "image: the docker executor needs an image "
			    "name (a string such as \"debian:bookworm\")");
	if (!k->mount && strcmp(s->workdir, s->dir))
		return fail(job, NN_EX_DATAERR, err, "workdir: without options.mount the "
			    "allocation directory is not in the container, so no workdir can be set");
	if (nn_exec_dir_check(s, err) < 0)
		return fail(job, NN_EX_DATAERR, NULL, NULL);
	if (!(d = engine(job, err)))
		return fail(job, NN_EX_CONFIG, NULL, NULL);
	if (nn_docker_ping(d, err) < 0)
		return fail(job, NN_EX_UNAVAILABLE, NULL, NULL);
	r = nn_docker_image_exists(d, s->image, NULL, err);
	if (r < 0)
		return fail(job, NN_EX_UNAVAILABLE, NULL, NULL);
	if (r == 0)
		return fail(job, NN_EX_DATAERR, err, "image '%s' is not present in the engine at %s "
			    "(images are never pulled: load or import it first)", s->image, d->host);
	return check_limits(job, k, d, err);
}

/* ---- start ----------------------------------------------------------- */

static jv container_config(struct nn_exec_job *job, struct dock *k)
{
	const struct nn_exec_spec *s = job->spec;
	const struct nn_exec_limits *l = &s->limits;
	jv c = jv_object(), host = jv_object(), cmd = jv_array(), env = jv_array();
	jv labels = jv_copy(s->labels);
	char **envp = nn_exec_spec_envp(s);

	for (int i = 1; i < s->argc; i++)
		cmd = jv_array_append(cmd, jv_string(s->argv[i]));
	for (char **e = envp; *e; e++)
		env = jv_array_append(env, jv_string(*e));
	nn_exec_strv_free(envp);
	labels = jv_object_set(labels, jv_string("nunet.alloc"), jv_string(s->id));
	labels = jv_object_set(labels, jv_string("nunet.dir"), jv_string(s->dir));
	c = jv_object_set(c, jv_string("Image"), jv_string(s->image));
	c = jv_object_set(c, jv_string("Entrypoint"), jv_array_append(jv_array(), jv_string(s->argv[0])));
	c = jv_object_set(c, jv_string("Cmd"), cmd);
	c = jv_object_set(c, jv_string("Env"), env);
	c = jv_object_set(c, jv_string("Labels"), labels);
	c = jv_object_set(c, jv_string("Tty"), jv_false());
	c = jv_object_set(c, jv_string("OpenStdin"), jv_false());
	c = jv_object_set(c, jv_string("AttachStdin"), jv_false());
	if (k->user)
		c = jv_object_set(c, jv_string("User"), jv_string(k->user));
	{
		jv binds = jv_get_kind(k->binds) == JV_KIND_ARRAY ? jv_copy(k->binds) : jv_array();
		if (k->mount) {
			char *wd = nn_xasprintf("%s%s", k->mount, s->workdir + strlen(s->dir));
			char *bind = nn_xasprintf("%s:%s", s->dir, k->mount);
			c = jv_object_set(c, jv_string("WorkingDir"), jv_string(wd));
			binds = jv_array_concat(jv_array_append(jv_array(), jv_string(bind)), binds);
			/* inputs the job may not change: bound again over the first, read-only */
			for (int i = 0; s->readonly && s->readonly[i]; i++) {
				char *ro = nn_xasprintf("%s/%s:%s/%s:ro", s->dir, s->readonly[i], k->mount,
							s->readonly[i]);
				binds = jv_array_append(binds, jv_string(ro));
				free(ro);
			}
			free(wd);
			free(bind);
		}
		if (jv_array_length(jv_copy(binds)) > 0)
			host = jv_object_set(host, jv_string("Binds"), binds);
		else
			jv_free(binds);
	}
	if (l->memory && !k->drop_memory) {
		host = jv_object_set(host, jv_string("Memory"), jv_number((double)l->memory));
		host = jv_object_set(host, jv_string("MemorySwap"), jv_number((double)l->memory));
	}
	if (l->cpu_milli && !k->drop_cpu)
		host = jv_object_set(host, jv_string("NanoCpus"), jv_number((double)l->cpu_milli * 1e6));
	if (l->pids && !k->drop_pids)
		host = jv_object_set(host, jv_string("PidsLimit"), jv_number((double)l->pids));
	host = jv_object_set(host, jv_string("NetworkMode"),
			     jv_string(k->network ? k->network : s->net ? "none" : "default"));
	c = jv_object_set(c, jv_string("HostConfig"), host);
	return c;
}

static int record(struct nn_exec_job *job, struct dock *k, char *err)
{
	jv o = jv_object();
	o = jv_object_set(o, jv_string("executor"), jv_string("docker"));
	o = jv_object_set(o, jv_string("id"), jv_string(job->spec->id));
	o = jv_object_set(o, jv_string("container"), jv_string(k->cid));
	o = jv_object_set(o, jv_string("host"), jv_string(k->d.host));
	o = jv_object_set(o, jv_string("follower"), jv_number(k->follower));
	o = jv_object_set(o, jv_string("follower_start"), jv_number((double)k->follower_start));
	return nn_exec_write_state(job->spec, STATE_FILE, o, err);
}

static int open_log(const struct nn_exec_spec *s, const char *name, int trunc, char *err)
{
	char *path = nn_exec_path(s, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0644);
	if (fd < 0)
		nn_seterr(err, "cannot open '%s': %s", path, strerror(errno));
	free(path);
	return fd;
}

/*
 * Copy the container's logs into stdout.log/stderr.log (truncated first
 * when trunc).  With follow, a child process in its own session does it
 * until the container stops (k->follower); without, it is done here, now.
 */
static int copy_logs(struct nn_exec_job *job, struct dock *k, int follow, int trunc, char *err)
{
	int out = open_log(job->spec, NN_EXEC_STDOUT, trunc, err), errfd = -1, rc = 0;
	pid_t pid;

	if (out < 0 || (errfd = open_log(job->spec, NN_EXEC_STDERR, trunc, err)) < 0) {
		if (out >= 0)
			close(out);
		return -1;
	}
	if (!follow) {
		rc = nn_docker_logs(&k->d, k->cid, 0, out, errfd, err);
		close(out);
		close(errfd);
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		rc = nn_seterr(err, "cannot start the log follower: %s", strerror(errno));
	} else if (pid == 0) {
		struct nn_docker d;
		char cerr[NN_ERRLEN];
		int null = open("/dev/null", O_RDWR);
		setsid();
		signal(SIGPIPE, SIG_IGN);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
			_exit(1);
		/* Only 0-2 stay open: the parent's sockets are none of ours. */
		if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
		/* A fresh client: the parent's handle holds a connection that is
		 * the parent's. */
		if (nn_docker_init(&d, k->d.host, cerr) < 0 ||
		    nn_docker_logs(&d, k->cid, 1, 1, 2, cerr) < 0)
			_exit(1);
		_exit(0);
	} else {
		k->follower = pid;
		k->follower_ours = 1;
		k->follower_start = nn_exec_proc_starttime(pid, 1);
	}
	close(out);
	close(errfd);
	return rc;
}

/* Is the follower (ours or adopted) still there? */
static int follower_alive(struct dock *k)
{
	if (!k->follower)
		return 0;
	if (k->follower_ours) {
		int st;
		pid_t r = waitpid(k->follower, &st, WNOHANG);
		if (r == k->follower || (r < 0 && errno == ECHILD)) {
			k->follower = 0;
			return 0;
		}
		return 1;
	}
	if (nn_exec_proc_starttime(k->follower, 1) != k->follower_start) {
		k->follower = 0;
		return 0;
	}
	return 1;
}

/* Stop the follower now (SIGKILL) and reap it if it is ours. */
static void follower_stop(struct dock *k)
{
	if (!follower_alive(k))
		return;
	kill(k->follower, SIGKILL);
	if (k->follower_ours)
		while (waitpid(k->follower, NULL, 0) < 0 && errno == EINTR)
			;
	k->follower = 0;
}

/* After the container stopped: let the follower finish the stream (it
 * ends by itself) for at most ms; if it does not, stop it and, when
 * refetch, copy the whole log again (the container must still exist). */
static void follower_drain(struct nn_exec_job *job, struct dock *k, int64_t ms, int refetch)
{
	int64_t until = nn_mono_ms() + ms;
	while (follower_alive(k) && nn_mono_ms() < until)
		poll(NULL, 0, 10);
	if (follower_alive(k)) {
		follower_stop(k);
		if (refetch && k->cid[0])
			copy_logs(job, k, 0, 1, NULL);
	}
}

static int ex_code_for(const char *msg)
{
	if (strstr(msg, "not found") || strstr(msg, "no such file") ||
	    strstr(msg, "No such file") || strstr(msg, "permission denied"))
		return NN_EX_DATAERR;
	return NN_EX_SOFTWARE;
}

static void sample(struct nn_exec_job *job, struct dock *k);

static int docker_start(struct nn_exec_job *job, char *err)
{
	struct dock *k = priv(job);
	struct nn_docker *d = engine(job, err);
	char *name;
	jv info;

	if (!d)
		return fail(job, NN_EX_CONFIG, NULL, NULL);
	name = nn_xasprintf("nunet-%s", job->spec->id);
	if (nn_docker_create(d, name, container_config(job, k), k->cid, err) < 0) {
		free(name);
		k->cid[0] = '\0';
		return fail(job, d->status == 409 ? NN_EX_TEMPFAIL : ex_code_for(err), NULL, NULL);
	}
	free(name);
	snprintf(job->handle, sizeof job->handle, "container %.12s", k->cid);
	if (nn_docker_start(d, k->cid, err) < 0) {
		job->ex_code = ex_code_for(err);
		nn_docker_remove(d, k->cid, NULL);
		k->cid[0] = '\0';
		return -1;
	}
	if (copy_logs(job, k, 1, 0, err) < 0 || record(job, k, err) < 0) {
		char *path = nn_exec_path(job->spec, STATE_FILE);
		nn_docker_remove(d, k->cid, NULL);
		follower_stop(k);
		unlink(path);
		free(path);
		k->cid[0] = '\0';
		return fail(job, NN_EX_IOERR, NULL, NULL);
	}
	if (nn_docker_inspect(d, k->cid, &info, NULL) == 0) {
		jv pid = jv_getpath(info, jv_parse("[\"State\",\"Pid\"]"));
		if (jv_get_kind(pid) == JV_KIND_NUMBER)
			job->pid = (pid_t)jv_number_value(pid);
		jv_free(pid);
	}
	sample(job, k);
	return 0;
}

/* ---- wait, signal, stats --------------------------------------------- */

static int64_t num_at(jv v, const char *a, const char *b, const char *c)
{
	jv path = jv_array_append(jv_array_append(jv_array(), jv_string(a)), jv_string(b));
	jv x;
	int64_t r = -1;
	if (c)
		path = jv_array_append(path, jv_string(c));
	x = jv_getpath(jv_copy(v), path);
	if (jv_get_kind(x) == JV_KIND_NUMBER)
		r = (int64_t)jv_number_value(x);
	jv_free(x);
	return r;
}

/* Take one stats sample (the engine's numbers for a running container). */
static void sample(struct nn_exec_job *job, struct dock *k)
{
	jv s;
	int64_t cpu, peak, cur, pids;

	k->sampled_ms = nn_mono_ms();
	if (nn_docker_stats(&k->d, k->cid, &s, NULL) < 0)
		return;
	cpu = num_at(s, "cpu_stats", "cpu_usage", "total_usage");
	peak = num_at(s, "memory_stats", "max_usage", NULL);
	cur = num_at(s, "memory_stats", "usage", NULL);
	pids = num_at(s, "pids_stats", "current", NULL);
	jv_free(s);
	/* A stopped container reports zeros: keep what was seen running. */
	if (cpu > 0 && (double)cpu / 1e9 > k->st.cpu_seconds)
		k->st.cpu_seconds = (double)cpu / 1e9;
	else if (cpu == 0 && k->st.cpu_seconds < 0)
		k->st.cpu_seconds = 0;
	if (peak < cur)
		peak = cur;
	if (peak > k->st.memory_peak)
		k->st.memory_peak = peak;
	if (cur >= 0)
		k->st.memory_current = cur;
	if (pids >= 0)
		k->st.pids_current = pids;
}

static const char *signame(int sig)
{
	const char *d = sigabbrev_np(sig);
	return d ? d : "?";
}

static void finish(struct nn_exec_job *job, struct dock *k, jv state)
{
	struct nn_exec_result *r = &k->res;
	jv oom = jv_object_get(jv_copy(state), jv_string("OOMKilled"));
	jv code = jv_object_get(jv_copy(state), jv_string("ExitCode"));
	jv error = jv_object_get(jv_copy(state), jv_string("Error"));
	int c = jv_get_kind(code) == JV_KIND_NUMBER ? (int)jv_number_value(code) : -1;

	memset(r, 0, sizeof *r);
	r->done = 1;
	r->code = c;
	if (jv_get_kind(oom) == JV_KIND_TRUE) {
		r->oom = 1;
		r->code = -1;
		r->signal = SIGKILL;
		snprintf(r->reason, sizeof r->reason,
			 "out of memory: the container went over its limit of %llu bytes",
			 (unsigned long long)job->spec->limits.memory);
	} else if (c == 128 + SIGKILL && !k->signalled && job->spec->limits.memory &&
		   !k->drop_memory) {
		/* Podman (4.3 on cgroup v1) never sets OOMKilled: a SIGKILL that
		 * we did not send, under a memory limit, is taken as the kernel's
		 * OOM killer, and the reason says it was inferred. */
		r->oom = 1;
		r->code = -1;
		r->signal = SIGKILL;
		snprintf(r->reason, sizeof r->reason,
			 "out of memory (inferred: SIGKILL under a memory limit of %llu bytes; "
			 "the engine did not report OOMKilled)",
			 (unsigned long long)job->spec->limits.memory);
	} else if (k->signalled && c == 128 + k->signalled) {
		/* The engine reports a death by signal as 128+N. */
		r->code = -1;
		r->signal = k->signalled;
		snprintf(r->reason, sizeof r->reason, "killed by signal %d (SIG%s)", r->signal,
			 signame(r->signal));
	} else if (c >= 0) {
		snprintf(r->reason, sizeof r->reason, "exited with code %d", c);
		if (jv_get_kind(error) == JV_KIND_STRING && *jv_string_value(error))
			snprintf(r->reason, sizeof r->reason, "exited with code %d: %.200s", c,
				 jv_string_value(error));
	} else {
		snprintf(r->reason, sizeof r->reason, "exit status lost: the engine did not say");
	}
	jv_free(oom);
	jv_free(code);
	jv_free(error);
	follower_drain(job, k, DRAIN_MS, 1);
}

static void lost(struct dock *k, const char *why)
{
	struct nn_exec_result *r = &k->res;
	memset(r, 0, sizeof *r);
	r->done = 1;
	r->code = -1;
	snprintf(r->reason, sizeof r->reason, "exit status lost: %s", why);
	follower_stop(k);
}

static int docker_wait(struct nn_exec_job *job, int timeout_ms, struct nn_exec_result *res,
		       char *err)
{
	struct dock *k = priv(job);
	int64_t until = timeout_ms < 0 ? -1 : nn_mono_ms() + timeout_ms;

	if (k->res.done)
		goto done;
	if (!k->cid[0])
		return fail(job, NN_EX_SOFTWARE, err, "docker: wait() on a job that was not started");
	for (;;) {
		jv info, state, st;
		const char *status;
		int64_t now, left;

		if (nn_docker_inspect(&k->d, k->cid, &info, err) < 0) {
			if (k->d.status == 404) {
				lost(k, "the container was removed behind our back");
				goto done;
			}
			return fail(job, NN_EX_UNAVAILABLE, NULL, NULL);
		}
		state = jv_object_get(info, jv_string("State"));
		st = jv_object_get(jv_copy(state), jv_string("Status"));
		status = jv_get_kind(st) == JV_KIND_STRING ? jv_string_value(st) : "";
		if (!strcmp(status, "exited") || !strcmp(status, "dead") ||
		    !strcmp(status, "stopped")) {
			jv_free(st);
			finish(job, k, state);
			jv_free(state);
			goto done;
		}
		jv_free(st);
		jv_free(state);
		if (nn_mono_ms() - k->sampled_ms >= SAMPLE_MS)
			sample(job, k);
		now = nn_mono_ms();
		if (until >= 0 && now >= until)
			return 0;
		left = until < 0 ? 50 : until - now;
		if (left > 50)
			left = 50;
		if (poll(NULL, 0, (int)left) < 0 && errno == EINTR)
			return 0;	/* a signal: the caller looks at it */
	}
done:
	*res = k->res;
	return 1;
}

static int docker_signal(struct nn_exec_job *job, int sig, char *err)
{
	struct dock *k = priv(job);
	if (!k->cid[0])
		return k->res.done ? 0 : fail(job, NN_EX_SOFTWARE, err, "docker: no job to signal");
	if (k->res.done)
		return 0;
	k->signalled = sig;
	if (nn_docker_kill(&k->d, k->cid, sig, err) < 0)
		return fail(job, NN_EX_UNAVAILABLE, NULL, NULL);
	return 0;
}

static int docker_stats(struct nn_exec_job *job, struct nn_exec_stats *st, char *err)
{
	struct dock *k = priv(job);
	if (k->cid[0] && !k->res.done)
		sample(job, k);
	*st = k->st;
	if (k->res.done) {
		st->memory_current = k->st.memory_current >= 0 ? 0 : -1;
		st->pids_current = k->st.pids_current >= 0 ? 0 : -1;
	}
	return 0;
}

/* ---- cleanup, adopt -------------------------------------------------- */

static int docker_cleanup(struct nn_exec_job *job, char *err)
{
	struct dock *k = priv(job);
	char *path;

	if (k->cid[0]) {
		if (!k->have_d && !engine(job, err))
			return fail(job, NN_EX_CONFIG, NULL, NULL);
		if (nn_docker_remove(&k->d, k->cid, err) < 0)
			return fail(job, NN_EX_UNAVAILABLE, NULL, NULL);
		k->cid[0] = '\0';
	}
	/* With the container gone the follower's stream ends; make sure. */
	follower_drain(job, k, 1000, 0);
	if (job->spec && job->spec->dir) {
		path = nn_exec_path(job->spec, STATE_FILE);
		unlink(path);
		free(path);
	}
	return 0;
}

/* Find the container labelled for this allocation; 1 found, 0 none, -1. */
static int find_labelled(struct nn_exec_job *job, struct dock *k, char *err)
{
	char *l1 = nn_xasprintf("nunet.alloc=%s", job->spec->id);
	char *l2 = nn_xasprintf("nunet.dir=%s", job->spec->dir);
	const char *labels[] = { l1, l2, NULL };
	jv list, first, id;
	int n, rc;

	rc = nn_docker_list(&k->d, labels, &list, err);
	free(l1);
	free(l2);
	if (rc < 0)
		return -1;
	n = jv_array_length(jv_copy(list));
	if (n == 0) {
		jv_free(list);
		return 0;
	}
	if (n > 1) {
		jv_free(list);
		return nn_seterr(err, "docker: %d containers are labelled nunet.alloc=%s", n,
				 job->spec->id);
	}
	first = jv_array_get(list, 0);
	id = jv_object_get(first, jv_string("Id"));
	if (jv_get_kind(id) != JV_KIND_STRING || strlen(jv_string_value(id)) > 64) {
		jv_free(id);
		return nn_seterr(err, "docker: the engine listed a container without an id");
	}
	snprintf(k->cid, sizeof k->cid, "%s", jv_string_value(id));
	jv_free(id);
	return 1;
}

static int docker_adopt(struct nn_exec_job *job, char *err)
{
	struct dock *k = priv(job);
	char *path = nn_exec_path(job->spec, STATE_FILE);
	char *text = nn_read_file(path, 65536, NULL, NULL);
	jv rec = text ? nn_json_parse(text, strlen(text), NULL) : jv_invalid();
	jv info, running;
	int r;

	free(path);
	free(text);
	if (parse_options(job, k, err) < 0)
		goto fail;
	if (!k->host && jv_get_kind(rec) == JV_KIND_OBJECT) {
		jv h = jv_object_get(jv_copy(rec), jv_string("host"));
		if (jv_get_kind(h) == JV_KIND_STRING)
			k->host = nn_xstrdup(jv_string_value(h));
		jv_free(h);
	}
	if (!engine(job, err)) {
		job->ex_code = NN_EX_CONFIG;
		goto fail;
	}
	r = find_labelled(job, k, err);
	if (r <= 0) {
		if (r == 0)
			nn_seterr(err, "docker: no container labelled nunet.alloc=%s in the engine at %s",
				  job->spec->id, k->d.host);
		job->ex_code = NN_EX_UNAVAILABLE;
		goto fail;
	}
	job->adopted = 1;
	snprintf(job->handle, sizeof job->handle, "container %.12s", k->cid);
	if (jv_get_kind(rec) == JV_KIND_OBJECT) {
		jv fp = jv_object_get(jv_copy(rec), jv_string("follower"));
		jv fs = jv_object_get(jv_copy(rec), jv_string("follower_start"));
		if (jv_get_kind(fp) == JV_KIND_NUMBER && jv_number_value(fp) > 1 &&
		    jv_get_kind(fs) == JV_KIND_NUMBER) {
			k->follower = (pid_t)jv_number_value(fp);
			k->follower_start = (unsigned long long)jv_number_value(fs);
			k->follower_ours = 0;
			if (!follower_alive(k))
				k->follower = 0;
		}
		jv_free(fp);
		jv_free(fs);
	}
	if (nn_docker_inspect(&k->d, k->cid, &info, err) < 0) {
		job->ex_code = NN_EX_UNAVAILABLE;
		goto fail;
	}
	running = jv_getpath(jv_copy(info), jv_parse("[\"State\",\"Running\"]"));
	{
		jv pid = jv_getpath(info, jv_parse("[\"State\",\"Pid\"]"));
		if (jv_get_kind(pid) == JV_KIND_NUMBER && jv_number_value(pid) > 0)
			job->pid = (pid_t)jv_number_value(pid);
		jv_free(pid);
	}
	/* No follower left: copy the whole log again, following it while the
	 * container runs. */
	if (!k->follower &&
	    copy_logs(job, k, jv_get_kind(running) == JV_KIND_TRUE, 1, err) < 0) {
		jv_free(running);
		job->ex_code = NN_EX_IOERR;
		goto fail;
	}
	jv_free(running);
	jv_free(rec);
	record(job, k, NULL);
	return 0;
fail:
	jv_free(rec);
	k->cid[0] = '\0';
	return -1;
}

static void docker_free(struct nn_exec_job *job)
{
	struct dock *k = job->priv;
	if (!k)
		return;
	/* A follower of ours that still runs keeps running (the job does);
	 * reap it if it is done so no zombie is left. */
	if (k->follower && k->follower_ours)
		waitpid(k->follower, NULL, WNOHANG);
	if (k->have_d)
		nn_docker_release(&k->d);
	free(k->host);
	free(k->user);
	free(k->network);
	free(k->mount);
	jv_free(k->binds);
}

const struct nn_executor nn_exec_docker = {
	.name = "docker",
	.available = docker_available,
	.prepare = docker_prepare,
	.start = docker_start,
	.wait = docker_wait,
	.signal = docker_signal,
	.stats = docker_stats,
	.cleanup = docker_cleanup,
	.adopt = docker_adopt,
	.release = docker_free,
};
