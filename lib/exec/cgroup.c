/*
 * cgroup — finds the cgroup hierarchies of this machine in mountinfo, makes
 * one group per job under a "nunet" parent in each hierarchy it uses, writes
 * the limits (v2: memory.max, cpu.max, pids.max; v1: memory.limit_in_bytes,
 * cpu.cfs_quota_us, pids.max), reads usage and OOM kills back, kills a job's
 * whole tree and removes the groups.  It knows nothing of namespaces or of
 * how the job's processes are started.
 */
#include "exec/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const ctl_name[NN_CG_NCTL] = { "memory", "cpu", "cpuacct", "pids" };

/* ---- small file helpers -------------------------------------------- */

static int write_str(const char *dir, const char *file, const char *val, char *err)
{
	char *path = nn_xasprintf("%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int rc = 0;
	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		rc = nn_seterr(err, "cannot write '%s' to %s: %s", val, path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

/* Read a small file into buf; -1 when it cannot. */
static int read_str(const char *dir, const char *file, char *buf, size_t n)
{
	char *path = nn_xasprintf("%s/%s", dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;
	free(path);
	if (fd < 0)
		return -1;
	r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	return 0;
}

static long long read_ll(const char *dir, const char *file)
{
	char buf[64];
	char *end;
	long long v;
	if (!dir || read_str(dir, file, buf, sizeof buf) < 0)
		return -1;
	v = strtoll(buf, &end, 10);
	return end == buf ? -1 : v;
}

/* The value of "key N" in a flat keyed file (memory.events, cpu.stat). */
static long long read_key(const char *dir, const char *file, const char *key)
{
	char buf[4096];
	size_t kl = strlen(key);
	if (!dir || read_str(dir, file, buf, sizeof buf) < 0)
		return -1;
	for (char *line = buf; line && *line; ) {
		char *nl = strchr(line, '\n');
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			return strtoll(line + kl + 1, NULL, 10);
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

static int exists(const char *dir, const char *file)
{
	char *path = nn_xasprintf("%s/%s", dir, file);
	int ok = access(path, F_OK) == 0;
	free(path);
	return ok;
}

/* ---- probing ------------------------------------------------------- */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

static int has_word(const char *list, const char *word, char sep)
{
	size_t n = strlen(word);
	for (const char *p = list; p && *p; ) {
		const char *e = strchr(p, sep);
		size_t len = e ? (size_t)(e - p) : strlen(p);
		while (len && (p[len - 1] == '\n' || p[len - 1] == ' '))
			len--;
		if (len == n && !strncmp(p, word, n))
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

/* A group can be made under root: the "nunet" parent exists and is
 * writable, or root is writable (the parent is made on first use). */
static int can_make(const char *root)
{
	char *parent = nn_xasprintf("%s/nunet", root);
	int ok = access(parent, W_OK) == 0 || (errno == ENOENT && access(root, W_OK) == 0);
	free(parent);
	return ok && exists(root, "cgroup.procs");
}

int nn_cgroup_probe(struct nn_cgroup_layout *lo, char *err)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;

	memset(lo, 0, sizeof *lo);
	if (!f)
		return 0;	/* no /proc: no cgroups we can find */
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SRC SUPER */
		char *fields[6] = { 0 }, *sep, *save = NULL, *tok, *fstype, *super;
		int i = 0;
		sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		for (tok = strtok_r(line, " ", &save); tok && i < 6; tok = strtok_r(NULL, " ", &save))
			fields[i++] = tok;
		if (i < 5)
			continue;
		fstype = strtok_r(sep + 3, " ", &save);
		(void)strtok_r(NULL, " ", &save);
		super = strtok_r(NULL, " \n", &save);
		if (!fstype || strcmp(fields[3], "/"))
			continue;	/* only whole hierarchies, not bind mounts of a subtree */
		unescape(fields[4]);
		if (!strcmp(fstype, "cgroup2")) {
			if (!lo->v2root && exists(fields[4], "cgroup.procs"))
				lo->v2root = nn_xstrdup(fields[4]);
		} else if (!strcmp(fstype, "cgroup") && super) {
			for (int c = 0; c < NN_CG_NCTL; c++)
				if (!lo->v1[c] && has_word(super, ctl_name[c], ',') &&
				    exists(fields[4], "cgroup.procs"))
					lo->v1[c] = nn_xstrdup(fields[4]);
		}
	}
	free(line);
	fclose(f);
	if (lo->v2root) {
		char buf[512];
		if (read_str(lo->v2root, "cgroup.controllers", buf, sizeof buf) == 0) {
			lo->on_v2[NN_CG_MEMORY] = has_word(buf, "memory", ' ');
			lo->on_v2[NN_CG_CPU] = has_word(buf, "cpu", ' ');
			lo->on_v2[NN_CG_CPUACCT] = lo->on_v2[NN_CG_CPU];
			lo->on_v2[NN_CG_PIDS] = has_word(buf, "pids", ' ');
		}
		lo->v2_writable = can_make(lo->v2root);
	}
	for (int c = 0; c < NN_CG_NCTL; c++) {
		if (lo->on_v2[c]) {
			free(lo->v1[c]);	/* a controller lives in one hierarchy */
			lo->v1[c] = NULL;
			lo->writable[c] = lo->v2_writable;
		} else if (lo->v1[c]) {
			lo->writable[c] = can_make(lo->v1[c]);
		}
	}
	(void)err;
	return 0;
}

void nn_cgroup_layout_release(struct nn_cgroup_layout *lo)
{
	free(lo->v2root);
	for (int c = 0; c < NN_CG_NCTL; c++)
		free(lo->v1[c]);
	memset(lo, 0, sizeof *lo);
}

const char *nn_cgroup_where(const struct nn_cgroup_layout *lo, enum nn_cg_ctl c)
{
	if (lo->on_v2[c])
		return "cgroup v2";
	if (lo->v1[c])
		return "cgroup v1";
	return "none";
}

static int need(const struct nn_cgroup_layout *lo, enum nn_cg_ctl c, const char *what,
		char *err)
{
	if (!lo->on_v2[c] && !lo->v1[c])
		return nn_seterr(err, "%s limit: this machine has no %s cgroup controller "
				 "(set allow_unlimited to run without limits)", what, ctl_name[c]);
	if (!lo->writable[c])
		return nn_seterr(err, "%s limit: the %s cgroup controller (%s) is not writable "
				 "(set allow_unlimited to run without limits)", what, ctl_name[c],
				 nn_cgroup_where(lo, c));
	return 0;
}

int nn_cgroup_check(const struct nn_cgroup_layout *lo, const struct nn_exec_limits *lim,
		    char *err)
{
	if (lim->memory && need(lo, NN_CG_MEMORY, "memory", err) < 0)
		return -1;
	if (lim->cpu_milli && need(lo, NN_CG_CPU, "cpu", err) < 0)
		return -1;
	if (lim->pids && need(lo, NN_CG_PIDS, "pids", err) < 0)
		return -1;
	return 0;
}

jv nn_cgroup_layout_json(const struct nn_cgroup_layout *lo)
{
	jv o = jv_object();
	o = jv_object_set(o, jv_string("cgroup2"), lo->v2root ? jv_string(lo->v2root) : jv_null());
	for (int c = 0; c < NN_CG_NCTL; c++) {
		jv e = jv_object();
		e = jv_object_set(e, jv_string("where"), jv_string(nn_cgroup_where(lo, c)));
		e = jv_object_set(e, jv_string("writable"), jv_bool(lo->writable[c]));
		o = jv_object_set(o, jv_string(ctl_name[c]), e);
	}
	return o;
}

/* ---- one job's groups ---------------------------------------------- */

static int enable_v2(const char *dir, const struct nn_cgroup_layout *lo, char *err)
{
	static const char *const names[] = { "memory", "cpu", NULL, "pids" };
	for (int c = 0; c < NN_CG_NCTL; c++) {
		char *v;
		char buf[512];
		if (!names[c] || !lo->on_v2[c])
			continue;
		if (read_str(dir, "cgroup.subtree_control", buf, sizeof buf) == 0 &&
		    has_word(buf, names[c], ' '))
			continue;
		v = nn_xasprintf("+%s", names[c]);
		if (write_str(dir, "cgroup.subtree_control", v, err) < 0) {
			free(v);
			return -1;
		}
		free(v);
	}
	return 0;
}

/* mkdir root/nunet (shared, kept) and root/nunet/NAME (the job's). */
static char *make_group(const char *root, const char *name, int v2,
			const struct nn_cgroup_layout *lo, char *err)
{
	char *parent = nn_xasprintf("%s/nunet", root);
	char *dir = NULL;
	if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
		nn_seterr(err, "cannot create cgroup %s: %s", parent, strerror(errno));
		goto out;
	}
	if (v2 && (enable_v2(root, lo, err) < 0 || enable_v2(parent, lo, err) < 0))
		goto out;
	dir = nn_xasprintf("%s/%s", parent, name);
	if (mkdir(dir, 0755) < 0) {
		nn_seterr(err, "cannot create cgroup %s: %s", dir,
			  errno == EEXIST ? "it exists already (is the allocation running?)"
			  : strerror(errno));
		free(dir);
		dir = NULL;
	}
out:
	free(parent);
	return dir;
}

/* Is controller c of this job in the cgroup2 tree (v2 file names)? */
static int v2(const struct nn_cgroup *cg, enum nn_cg_ctl c)
{
	return cg->v2ctl && cg->v2dir && cg->dir[c] && !strcmp(cg->dir[c], cg->v2dir);
}

static int set_limits(struct nn_cgroup *cg, const struct nn_exec_limits *lim, char *err)
{
	char v[64];
	if (lim->memory && cg->dir[NN_CG_MEMORY]) {
		const char *d = cg->dir[NN_CG_MEMORY];
		snprintf(v, sizeof v, "%llu", (unsigned long long)lim->memory);
		if (v2(cg, NN_CG_MEMORY)) {
			if (write_str(d, "memory.max", v, err) < 0)
				return -1;
			if (exists(d, "memory.swap.max"))
				(void)write_str(d, "memory.swap.max", "0", NULL);
		} else {
			if (write_str(d, "memory.limit_in_bytes", v, err) < 0)
				return -1;
			if (exists(d, "memory.memsw.limit_in_bytes"))
				(void)write_str(d, "memory.memsw.limit_in_bytes", v, NULL);
		}
	}
	if (lim->cpu_milli && cg->dir[NN_CG_CPU]) {
		const char *d = cg->dir[NN_CG_CPU];
		unsigned long long quota = (unsigned long long)lim->cpu_milli * 100;
		if (quota < 1000)
			quota = 1000;	/* the kernel's smallest quota: 1 ms */
		if (v2(cg, NN_CG_CPU)) {
			snprintf(v, sizeof v, "%llu 100000", quota);
			if (write_str(d, "cpu.max", v, err) < 0)
				return -1;
		} else {
			if (write_str(d, "cpu.cfs_period_us", "100000", err) < 0)
				return -1;
			snprintf(v, sizeof v, "%llu", quota);
			if (write_str(d, "cpu.cfs_quota_us", v, err) < 0)
				return -1;
		}
	}
	if (lim->pids && cg->dir[NN_CG_PIDS]) {
		snprintf(v, sizeof v, "%llu", (unsigned long long)lim->pids);
		if (write_str(cg->dir[NN_CG_PIDS], "pids.max", v, err) < 0)
			return -1;
	}
	return 0;
}

int nn_cgroup_create(struct nn_cgroup *cg, const struct nn_cgroup_layout *lo,
		     const char *name, const struct nn_exec_limits *lim,
		     int allow_unlimited, char *err)
{
	memset(cg, 0, sizeof *cg);
	if (!allow_unlimited && nn_cgroup_check(lo, lim, err) < 0)
		return -1;
	if (lo->v2root && lo->v2_writable) {
		int ctl = lo->on_v2[NN_CG_MEMORY] || lo->on_v2[NN_CG_CPU] || lo->on_v2[NN_CG_PIDS];
		cg->v2dir = make_group(lo->v2root, name, ctl, lo, err);
		if (!cg->v2dir)
			goto fail;
		cg->v2ctl = ctl;
	}
	for (int c = 0; c < NN_CG_NCTL; c++) {
		if (!lo->writable[c])
			continue;
		if (lo->on_v2[c]) {
			cg->dir[c] = nn_xstrdup(cg->v2dir);
			continue;
		}
		/* controllers mounted together share a directory */
		for (int d = 0; d < c; d++)
			if (lo->v1[d] && !strcmp(lo->v1[d], lo->v1[c]) && cg->dir[d]) {
				cg->dir[c] = nn_xstrdup(cg->dir[d]);
				break;
			}
		if (!cg->dir[c] && !(cg->dir[c] = make_group(lo->v1[c], name, 0, lo, err)))
			goto fail;
	}
	if (set_limits(cg, lim, err) < 0)
		goto fail;
	return 0;
fail:
	nn_cgroup_remove(cg, NULL);
	nn_cgroup_release(cg);
	return -1;
}

/* Every distinct directory of the job, v2 first; returns how many. */
static int dirs(const struct nn_cgroup *cg, const char *out[NN_CG_NCTL + 1])
{
	int n = 0;
	if (cg->v2dir)
		out[n++] = cg->v2dir;
	for (int c = 0; c < NN_CG_NCTL; c++) {
		int dup = 0;
		if (!cg->dir[c])
			continue;
		for (int i = 0; i < n; i++)
			dup |= !strcmp(out[i], cg->dir[c]);
		if (!dup)
			out[n++] = cg->dir[c];
	}
	return n;
}

int nn_cgroup_attach(const struct nn_cgroup *cg, pid_t pid, char *err)
{
	const char *d[NN_CG_NCTL + 1];
	int n = dirs(cg, d);
	char v[32];
	snprintf(v, sizeof v, "%d", (int)pid);
	for (int i = 0; i < n; i++)
		if (write_str(d[i], "cgroup.procs", v, err) < 0)
			return -1;
	return 0;
}

void nn_cgroup_join_init(struct nn_cgroup_join *j)
{
	memset(j, 0, sizeof *j);
	for (int i = 0; i < NN_CG_NCTL + 1; i++)
		j->fd[i] = -1;
}

int nn_cgroup_join_open(struct nn_cgroup_join *j, const struct nn_cgroup *cg, char *err)
{
	const char *d[NN_CG_NCTL + 1];
	int n = dirs(cg, d);
	nn_cgroup_join_init(j);
	for (int i = 0; i < n; i++) {
		/* v1: the calling thread by "0" in tasks; v2 has no such
		 * file for a domain group: the process, in cgroup.procs */
		int v2 = cg->v2dir && !strcmp(d[i], cg->v2dir);
		char *path = nn_xasprintf("%s/%s", d[i], v2 ? "cgroup.procs" : "tasks");
		j->fd[j->n] = open(path, O_WRONLY | O_CLOEXEC);
		if (j->fd[j->n] < 0) {
			nn_seterr(err, "cannot open %s: %s", path, strerror(errno));
			free(path);
			nn_cgroup_join_close(j);
			return -1;
		}
		free(path);
		j->v2[j->n] = v2;
		j->dir[j->n] = d[i];
		j->n++;
	}
	return 0;
}

int nn_cgroup_join(const struct nn_cgroup_join *j, int in_v2, const char **dir)
{
	for (int i = 0; i < j->n; i++) {
		if (j->v2[i] && in_v2)
			continue;
		if (write(j->fd[i], "0", 1) != 1) {
			*dir = j->dir[i];
			return -1;
		}
	}
	return 0;
}

void nn_cgroup_join_close(struct nn_cgroup_join *j)
{
	for (int i = 0; i < NN_CG_NCTL + 1; i++)
		if (j->fd[i] >= 0)
			close(j->fd[i]);
	nn_cgroup_join_init(j);
}

long nn_cgroup_oom_kills(const struct nn_cgroup *cg)
{
	const char *d = cg->dir[NN_CG_MEMORY];
	if (!d)
		return -1;
	return v2(cg, NN_CG_MEMORY) ? read_key(d, "memory.events", "oom_kill")
		: read_key(d, "memory.oom_control", "oom_kill");
}

void nn_cgroup_stats(const struct nn_cgroup *cg, struct nn_exec_stats *st)
{
	long long v;
	st->cpu_seconds = -1;
	st->memory_peak = st->memory_current = st->pids_current = -1;
	if (!v2(cg, NN_CG_CPUACCT) && cg->dir[NN_CG_CPUACCT] && (v = read_ll(cg->dir[NN_CG_CPUACCT], "cpuacct.usage")) >= 0)
		st->cpu_seconds = (double)v / 1e9;
	else if (cg->v2dir && (v = read_key(cg->v2dir, "cpu.stat", "usage_usec")) >= 0)
		st->cpu_seconds = (double)v / 1e6;
	if (cg->dir[NN_CG_MEMORY]) {
		st->memory_peak = read_ll(cg->dir[NN_CG_MEMORY],
					  v2(cg, NN_CG_MEMORY) ? "memory.peak" : "memory.max_usage_in_bytes");
		st->memory_current = read_ll(cg->dir[NN_CG_MEMORY],
					     v2(cg, NN_CG_MEMORY) ? "memory.current" : "memory.usage_in_bytes");
	}
	if (cg->dir[NN_CG_PIDS])
		st->pids_current = read_ll(cg->dir[NN_CG_PIDS], "pids.current");
}

/* Pids listed in dir/cgroup.procs, into a new array; returns the count. */
static long procs(const char *dir, pid_t **out)
{
	char *path = nn_xasprintf("%s/cgroup.procs", dir);
	FILE *f = fopen(path, "re");
	long n = 0, cap = 0;
	int p;
	*out = NULL;
	free(path);
	if (!f)
		return -1;
	while (fscanf(f, "%d", &p) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = nn_xrealloc(*out, (size_t)cap * sizeof **out);
		}
		(*out)[n++] = p;
	}
	fclose(f);
	return n;
}

long nn_cgroup_nprocs(const struct nn_cgroup *cg)
{
	const char *d[NN_CG_NCTL + 1];
	int n = dirs(cg, d);
	long most = -1;
	for (int i = 0; i < n; i++) {
		pid_t *p;
		long k = procs(d[i], &p);
		free(p);
		if (k > most)
			most = k;
	}
	return most;
}

int nn_cgroup_kill(const struct nn_cgroup *cg, char *err)
{
	const char *d[NN_CG_NCTL + 1];
	int n = dirs(cg, d);
	if (cg->v2dir && exists(cg->v2dir, "cgroup.kill") &&
	    write_str(cg->v2dir, "cgroup.kill", "1", NULL) == 0)
		return 0;
	/* No cgroup.kill: signal each process listed, a few rounds, since
	 * a fork can race with the listing (pids.max bounds the rounds). */
	for (int round = 0; round < 8; round++) {
		long total = 0;
		for (int i = 0; i < n; i++) {
			pid_t *p;
			long k = procs(d[i], &p);
			for (long j = 0; j < k; j++)
				kill(p[j], SIGKILL);
			total += k > 0 ? k : 0;
			free(p);
		}
		if (total == 0)
			break;
	}
	(void)err;
	return 0;
}

int nn_cgroup_remove(struct nn_cgroup *cg, char *err)
{
	const char *d[NN_CG_NCTL + 1];
	int n = dirs(cg, d), rc = 0;
	if (n == 0)
		return 0;
	nn_cgroup_kill(cg, NULL);
	for (int i = 0; i < n; i++) {
		struct timespec ts = { 0, 1000000 };
		int tries = 0;
		while (rmdir(d[i]) < 0) {
			if (errno == ENOENT)
				break;
			if (errno != EBUSY || ++tries > 2000) {
				rc = nn_seterr(err, "cannot remove cgroup %s: %s", d[i], strerror(errno));
				break;
			}
			if (tries % 50 == 0)
				nn_cgroup_kill(cg, NULL);
			nanosleep(&ts, NULL);
		}
	}
	if (rc == 0) {
		for (int c = 0; c < NN_CG_NCTL; c++) {
			free(cg->dir[c]);
			cg->dir[c] = NULL;
		}
		free(cg->v2dir);
		cg->v2dir = NULL;
	}
	return rc;
}

void nn_cgroup_release(struct nn_cgroup *cg)
{
	for (int c = 0; c < NN_CG_NCTL; c++)
		free(cg->dir[c]);
	free(cg->v2dir);
	memset(cg, 0, sizeof *cg);
}

jv nn_cgroup_json(const struct nn_cgroup *cg)
{
	jv o = jv_object();
	o = jv_object_set(o, jv_string("v2"), cg->v2dir ? jv_string(cg->v2dir) : jv_null());
	o = jv_object_set(o, jv_string("v2ctl"), jv_bool(cg->v2ctl));
	for (int c = 0; c < NN_CG_NCTL; c++)
		o = jv_object_set(o, jv_string(ctl_name[c]),
				  cg->dir[c] ? jv_string(cg->dir[c]) : jv_null());
	return o;
}

/* A recorded path must be a nunet group below /sys/fs/cgroup or a cgroup
 * mount: never let a file in the allocation directory aim rmdir elsewhere. */
static int sane_path(const char *p)
{
	return p[0] == '/' && strstr(p, "/nunet/") && !strstr(p, "/../") && !strstr(p, "/./");
}

int nn_cgroup_from_json(struct nn_cgroup *cg, jv j, char *err)
{
	jv v;
	memset(cg, 0, sizeof *cg);
	if (jv_get_kind(j) != JV_KIND_OBJECT)
		return nn_seterr(err, "cgroups: expected an object");
	v = jv_object_get(jv_copy(j), jv_string("v2"));
	if (jv_get_kind(v) == JV_KIND_STRING && sane_path(jv_string_value(v)))
		cg->v2dir = nn_xstrdup(jv_string_value(v));
	jv_free(v);
	v = jv_object_get(jv_copy(j), jv_string("v2ctl"));
	cg->v2ctl = jv_get_kind(v) == JV_KIND_TRUE;
	jv_free(v);
	for (int c = 0; c < NN_CG_NCTL; c++) {
		v = jv_object_get(jv_copy(j), jv_string(ctl_name[c]));
		if (jv_get_kind(v) == JV_KIND_STRING && sane_path(jv_string_value(v)))
			cg->dir[c] = nn_xstrdup(jv_string_value(v));
		jv_free(v);
	}
	return 0;
}
