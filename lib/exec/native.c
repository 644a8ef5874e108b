/*
 * native — the default executor: the job is a process started with clone3()
 * into new pid, mount, uts and ipc namespaces (and a network namespace with
 * only loopback when the spec asks), where it is pid 1 and sees a /proc of
 * its own, with the allocation id as hostname.  Before it may exec, the
 * parent puts it into the job's cgroups (lib/exec/cgroup.c: memory, cpu and
 * pids limits, v1 or v2), so every process it makes is limited and counted.
 * It runs in its working directory with exactly the spec's environment,
 * stdin from /dev/null and stdout/stderr appended to the allocation's log
 * files.  Its parent is a small monitor process outside the namespaces
 * that reaps it and writes its exit status to DIR/exit.json, so the status
 * outlives whoever started the job.  The pids, their start times and the
 * cgroup paths are recorded in DIR/native.json so another process can
 * adopt the job.
 */
#include "exec/exec.h"
#include "exec/cgroup.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define STATE_FILE "native.json"
#define EXIT_FILE "exit.json"

struct native {
	struct nn_cgroup_layout lo;
	struct nn_cgroup cg;
	struct nn_cgroup_join join;	/* open while a job is started */
	char *path;		/* the resolved command */
	int pidfd;		/* the job's main process, for signals */
	int monfd;		/* its monitor, which ends after it */
	int stfd;		/* the monitor's status socket (-1: none, adopted) */
	pid_t mon_pid;
	int mon_done;		/* the monitor has ended (or is gone) */
	unsigned long long starttime, mon_start;
	struct nn_exec_result res;
	struct rlimit rl[RLIM_NLIMITS];
	int rl_set[RLIM_NLIMITS];
	char hostname[HOST_NAME_MAX + 1];
};

static const struct {
	const char *name;
	int res;
} rlimit_names[] = {
	{ "core", RLIMIT_CORE }, { "cpu", RLIMIT_CPU }, { "data", RLIMIT_DATA },
	{ "fsize", RLIMIT_FSIZE }, { "nofile", RLIMIT_NOFILE }, { "nproc", RLIMIT_NPROC },
	{ "stack", RLIMIT_STACK }, { "as", RLIMIT_AS }, { "memlock", RLIMIT_MEMLOCK },
	{ "msgqueue", RLIMIT_MSGQUEUE }, { "nice", RLIMIT_NICE }, { "rtprio", RLIMIT_RTPRIO },
	{ "sigpending", RLIMIT_SIGPENDING },
};

static struct native *priv(struct nn_exec_job *job)
{
	if (!job->priv) {
		struct native *n = nn_xcalloc(1, sizeof *n);
		n->pidfd = n->monfd = n->stfd = -1;
		nn_cgroup_join_init(&n->join);
		job->priv = n;
	}
	return job->priv;
}

static int fail(struct nn_exec_job *job, int code, char *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct nn_exec_job *job, int code, char *err, const char *fmt, ...)
{
	va_list ap;
	job->ex_code = code;
	if (err) {
		va_start(ap, fmt);
		vsnprintf(err, NN_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int native_available(char *why)
{
	if (access("/proc/self/ns/pid", F_OK) < 0)
		return nn_seterr(why, "native executor: this kernel has no pid namespaces");
	if (geteuid() != 0)
		return nn_seterr(why, "native executor: namespaces and cgroups need root "
				 "(running as uid %d)", (int)geteuid());
	return 0;
}

/* options: {"hostname":"x","rlimits":{"nofile":1024,"core":0}} */
static int parse_options(struct nn_exec_job *job, struct native *n, char *err)
{
	int rc = 0;
	const char *id = job->spec->id;
	snprintf(n->hostname, sizeof n->hostname, "%.*s", 63, id);
	jv_object_foreach(job->spec->options, k, v) {
		const char *key = jv_string_value(k);
		if (rc < 0) {
			;
		} else if (!strcmp(key, "hostname")) {
			if (jv_get_kind(v) != JV_KIND_STRING || !*jv_string_value(v) ||
			    strlen(jv_string_value(v)) > 63)
				rc = fail(job, NN_EX_DATAERR, err,
					  "options.hostname: expected a string of 1 to 63 bytes");
			else
				snprintf(n->hostname, sizeof n->hostname, "%s", jv_string_value(v));
		} else if (!strcmp(key, "rlimits")) {
			if (jv_get_kind(v) != JV_KIND_OBJECT) {
				rc = fail(job, NN_EX_DATAERR, err, "options.rlimits: expected an object");
			} else {
				jv_object_foreach(v, rk, rv) {
					size_t i;
					const char *rn = jv_string_value(rk);
					for (i = 0; i < sizeof rlimit_names / sizeof *rlimit_names; i++)
						if (!strcmp(rlimit_names[i].name, rn))
							break;
					if (rc < 0) {
						;
					} else if (i == sizeof rlimit_names / sizeof *rlimit_names) {
						rc = fail(job, NN_EX_DATAERR, err,
							  "options.rlimits: unknown limit '%s'", rn);
					} else if (jv_get_kind(rv) != JV_KIND_NUMBER ||
						   !nn_json_is_int(jv_number_value(rv)) ||
						   jv_number_value(rv) < 0) {
						rc = fail(job, NN_EX_DATAERR, err,
							  "options.rlimits.%s: expected a non-negative integer", rn);
					} else {
						int r = rlimit_names[i].res;
						struct rlimit cur;
						rlim_t want = (rlim_t)jv_number_value(rv);
						getrlimit(r, &cur);
						if (cur.rlim_max != RLIM_INFINITY && want > cur.rlim_max)
							rc = fail(job, NN_EX_UNAVAILABLE, err,
								  "options.rlimits.%s: %llu is above this "
								  "machine's hard limit %llu", rn,
								  (unsigned long long)want,
								  (unsigned long long)cur.rlim_max);
						n->rl[r].rlim_cur = n->rl[r].rlim_max = want;
						n->rl_set[r] = 1;
					}
					jv_free(rk);
					jv_free(rv);
				}
			}
		} else {
			rc = fail(job, NN_EX_DATAERR, err,
				  "options: unknown field '%s' for the native executor "
				  "(known: hostname, rlimits)", key);
		}
		jv_free(k);
		jv_free(v);
	}
	return rc;
}

/* A limit above what this machine has can never be given: refuse it. */
static int capacity(struct nn_exec_job *job, char *err)
{
	const struct nn_exec_limits *l = &job->spec->limits;
	cpu_set_t set;
	struct sysinfo si;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (sched_getaffinity(0, sizeof set, &set) == 0)
		ncpu = CPU_COUNT(&set);
	if (l->cpu_milli && ncpu > 0 && l->cpu_milli > (uint64_t)ncpu * 1000)
		return fail(job, NN_EX_UNAVAILABLE, err,
			    "cpu limit: %.3g cpus asked, this machine gives at most %ld",
			    (double)l->cpu_milli / 1000.0, ncpu);
	if (l->memory && sysinfo(&si) == 0 &&
	    l->memory > (uint64_t)si.totalram * si.mem_unit)
		return fail(job, NN_EX_UNAVAILABLE, err,
			    "memory limit: %llu bytes asked, this machine has %llu",
			    (unsigned long long)l->memory,
			    (unsigned long long)si.totalram * si.mem_unit);
	return 0;
}

static int native_prepare(struct nn_exec_job *job, char *err)
{
	struct native *n = priv(job);
	const struct nn_exec_spec *s = job->spec;
	const char *path = NULL;
	jv pv;
	char why[NN_ERRLEN];

	if (native_available(why) < 0)
		return fail(job, NN_EX_UNAVAILABLE, err, "%s", why);
	if (jv_get_kind(s->image_jv) != JV_KIND_NULL)
		return fail(job, NN_EX_DATAERR, err,
			    "image: the native executor runs host programs and takes no image");
	if (parse_options(job, n, err) < 0)
		return -1;
	pv = jv_object_get(jv_copy(s->env), jv_string("PATH"));
	if (jv_get_kind(pv) == JV_KIND_STRING)
		path = jv_string_value(pv);
	free(n->path);
	n->path = nn_exec_resolve(s->argv[0], path, err);
	jv_free(pv);
	if (!n->path)
		return fail(job, NN_EX_DATAERR, NULL, "-");
	if (nn_exec_dir_check(s, err) < 0)
		return fail(job, NN_EX_DATAERR, NULL, "-");
	if (capacity(job, err) < 0)
		return -1;
	nn_cgroup_layout_release(&n->lo);
	nn_cgroup_probe(&n->lo, NULL);
	if (!s->allow_unlimited && nn_cgroup_check(&n->lo, &s->limits, err) < 0)
		return fail(job, NN_EX_UNAVAILABLE, NULL, "-");
	return 0;
}

/* ---- the child ----------------------------------------------------- */

/* Report why the child could not exec, then exit.  Async-signal-safe. */
static void child_fail(int fd, const char *what, int e)
{
	const char *m = strerror(e);
	if (write(fd, what, strlen(what)) < 0 || write(fd, ": ", 2) < 0 ||
	    write(fd, m, strlen(m)) < 0) {
		/* nothing more to do */
	}
	_exit(127);
}

static void lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		(void)ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
}

static void child(struct nn_exec_job *job, struct native *n, int in_v2, int syncfd, int errfd,
		  int outfd, int errlog, char **envp)
{
	const struct nn_exec_spec *s = job->spec;
	const char *dir = "";
	char c;
	sigset_t all;
	int in;

	/* Into the job's cgroups first, by ourselves: no wait for the
	 * kernel (nn_cgroup_join), and everything after is the job's. */
	if (nn_cgroup_join(&n->join, in_v2, &dir) < 0) {
		static char what[PATH_MAX + 32];
		snprintf(what, sizeof what, "cannot join cgroup %s", dir);
		child_fail(errfd, what, errno);
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(errfd, "cannot make mounts private", errno);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail(errfd, "cannot mount /proc", errno);
	/* staged inputs: read-only to the job (its own mount namespace) */
	for (int i = 0; s->readonly && s->readonly[i]; i++) {
		char ro[PATH_MAX];
		if (snprintf(ro, sizeof ro, "%s/%s", s->dir, s->readonly[i]) >= (int)sizeof ro)
			child_fail(errfd, "a read-only path is too long", ENAMETOOLONG);
		if (mount(ro, ro, NULL, MS_BIND | MS_REC, NULL) < 0 ||
		    mount(NULL, ro, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
			child_fail(errfd, "cannot make an input read-only", errno);
	}
	if (sethostname(n->hostname, strlen(n->hostname)) < 0)
		child_fail(errfd, "cannot set the hostname", errno);
	if (s->net)
		lo_up();
	for (int r = 0; r < RLIM_NLIMITS; r++)
		if (n->rl_set[r] && setrlimit(r, &n->rl[r]) < 0)
			child_fail(errfd, "cannot set an rlimit", errno);
	if (chdir(s->workdir) < 0)
		child_fail(errfd, "cannot enter the working directory", errno);
	in = open("/dev/null", O_RDONLY);
	if (in < 0 || dup2(in, 0) < 0 || dup2(outfd, 1) < 0 || dup2(errlog, 2) < 0)
		child_fail(errfd, "cannot set up stdin/stdout/stderr", errno);
	if (setsid() < 0)
		child_fail(errfd, "cannot start a session", errno);
	/* Nothing of the starter's signal state leaks into the job. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* the go: the starter watches us (EOF: it gave up) */
	if (read(syncfd, &c, 1) != 1)
		_exit(127);
	close(syncfd);
	syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
	execve(n->path, s->argv, envp);
	child_fail(errfd, "cannot execute the command", errno);
}

/* ---- start / record / adopt ---------------------------------------- */

static int record(struct nn_exec_job *job, struct native *n, char *err)
{
	jv o = jv_object();
	o = jv_object_set(o, jv_string("executor"), jv_string("native"));
	o = jv_object_set(o, jv_string("id"), jv_string(job->spec->id));
	o = jv_object_set(o, jv_string("pid"), jv_number(job->pid));
	o = jv_object_set(o, jv_string("starttime"), jv_number((double)n->starttime));
	o = jv_object_set(o, jv_string("monitor"), jv_number(n->mon_pid));
	o = jv_object_set(o, jv_string("monitor_starttime"), jv_number((double)n->mon_start));
	o = jv_object_set(o, jv_string("cgroups"), nn_cgroup_json(&n->cg));
	return nn_exec_write_state(job->spec, STATE_FILE, o, err);
}

static int open_log(const struct nn_exec_spec *s, const char *name, char *err)
{
	char *path = nn_exec_path(s, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		nn_seterr(err, "cannot open '%s': %s", path, strerror(errno));
	free(path);
	return fd;
}

struct clone_args_nn {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
		tls, set_tid, set_tid_size, cgroup;
};

/*
 * The monitor: a small process outside the job's namespaces whose only
 * child is the job.  It reaps the job and sends its exit status to the
 * starter on stfd; when the starter does not answer that it kept it ("k",
 * sent by cleanup() once the result is kept: it died, or was gone), the
 * status goes to DIR/exit.json, so it survives the death of whoever
 * started the job (adopt() reads it).  The starter learns the end without
 * waiting for a file and for this process to end.  It ignores the
 * terminal's signals: those are for the job, through its starter.
 */
static void monitor(struct nn_exec_job *job, struct native *n, int syncfd, int errp[2],
		    int pidw, int stfd, int cgfd, int out, int errlog, char **envp)
{
	struct clone_args_nn ca;
	siginfo_t si;
	long pid;
	char buf[128], *path, *tmp;
	int fd, in_v2, nsfd;

	/* Hold nothing of the starter's: not its terminal, not its pipes. */
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	/* before the job exists: it inherits the policy it may join with */
	if (nn_exec_sched_normal() < 0)
		child_fail(errp[1], "cannot leave the real-time scheduling policy", errno);
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
		(job->spec->net ? CLONE_NEWNET : 0);
	ca.exit_signal = SIGCHLD;
	/* straight into the job's cgroup2 group where there is one: no
	 * move at all; a kernel that cannot, has the job join it too */
	pid = -1;
	in_v2 = 0;
	if (cgfd >= 0) {
		struct clone_args_nn cc = ca;
		cc.flags |= CLONE_INTO_CGROUP;
		cc.cgroup = (uint64_t)cgfd;
		in_v2 = 1;
		pid = syscall(SYS_clone3, &cc, sizeof cc);
	}
	if (pid < 0) {
		in_v2 = 0;
		pid = syscall(SYS_clone3, &ca, sizeof ca);
	}
	if (pid == 0) {
		close(pidw);
		close(stfd);
		child(job, n, in_v2, syncfd, errp[1], out, errlog, envp);
		_exit(127);
	}
	if (pid < 0)
		child_fail(errp[1], "cannot create the job's namespaces", errno);
	close(syncfd);
	close(errp[1]);
	close(out);
	close(errlog);
	/* Hold the job's mount namespace (before its go, so before it can
	 * end): its teardown (unmounting the copy of every mount, waiting
	 * for an RCU grace period) then happens when this process ends,
	 * after the status is out, not in the job's exit, before it
	 * (0.15 instead of 0.25 ms median, 0.3 instead of 1 ms mean here) */
	{
		char ns[64];
		snprintf(ns, sizeof ns, "/proc/%ld/ns/mnt", pid);
		nsfd = open(ns, O_RDONLY | O_CLOEXEC);
		if (nsfd >= 0 && nsfd < 5) {	/* clear of 3 and 4 (below) */
			int d = fcntl(nsfd, F_DUPFD_CLOEXEC, 5);
			close(nsfd);
			nsfd = d;
		}
	}
	{
		int p = (int)pid;
		if (write(pidw, &p, sizeof p) != sizeof p)
			_exit(127);	/* the starter kills the job */
	}
	close(pidw);
	/* nothing open but the status socket, as fd 3, and the namespace */
	if (stfd != 3 && dup2(stfd, 3) < 0)
		_exit(127);
	stfd = 3;
	if (nsfd >= 0 && nsfd != 4)
		nsfd = dup2(nsfd, 4);
	syscall(SYS_close_range, nsfd >= 0 ? 5U : 4U, ~0U, 0U);
	memset(&si, 0, sizeof si);
	while (waitid(P_PID, (id_t)pid, &si, WEXITED) < 0)
		if (errno != EINTR)
			_exit(127);
	if (si.si_code == CLD_EXITED)
		snprintf(buf, sizeof buf, "{\"code\":%d,\"signal\":null}\n", si.si_status);
	else
		snprintf(buf, sizeof buf, "{\"code\":null,\"signal\":%d}\n", si.si_status);
	if (nn_write_all(stfd, buf, strlen(buf)) == 0) {
		char k = 0;
		ssize_t r;
		while ((r = read(stfd, &k, 1)) < 0 && errno == EINTR)
			;
		if (r == 1 && k == 'k')
			_exit(0);	/* kept: no file to write */
	}
	path = nn_exec_path(job->spec, EXIT_FILE);
	tmp = nn_xasprintf("%s.tmp", path);
	/* temp + rename, so a reader never sees half of it; no fsync: the
	 * status matters to whoever outlives the job, and a crash of the
	 * machine leaves no one (it cost 2 to 6 ms here, after the job) */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0 && nn_write_all(fd, buf, strlen(buf)) == 0 && close(fd) == 0)
		rename(tmp, path);
	_exit(0);
}

static int native_start(struct nn_exec_job *job, char *err)
{
	struct native *n = priv(job);
	const struct nn_exec_spec *s = job->spec;
	int syncp[2] = { -1, -1 }, errp[2] = { -1, -1 }, pidp[2] = { -1, -1 }, stp[2] = { -1, -1 };
	int out = -1, errlog = -1, monfd = -1, jobpid = 0, cgfd = -1, watch_errno = 0;
	char **envp = NULL;
	struct clone_args_nn ca;
	long mon;
	char msg[NN_ERRLEN];
	ssize_t got = 0;

	if (!n->path)
		return fail(job, NN_EX_SOFTWARE, err, "native: start() before prepare()");
	job->ex_code = NN_EX_SOFTWARE;
	if ((out = open_log(s, NN_EXEC_STDOUT, err)) < 0 ||
	    (errlog = open_log(s, NN_EXEC_STDERR, err)) < 0) {
		job->ex_code = NN_EX_IOERR;
		goto fail_early;
	}
	{
		char *ep = nn_exec_path(s, EXIT_FILE);
		unlink(ep);	/* a result of an earlier run is not ours */
		free(ep);
	}
	{
		/* ids are unique on one node, not on one machine: the groups
		 * are named by id and a digest of the allocation's directory,
		 * so two nodes (or a node and `nunet-run exec`) never meet */
		uint8_t h[crypto_generichash_BYTES_MIN];
		char hex[2 * sizeof h + 1], *name;
		int r;
		crypto_generichash(h, sizeof h, (const uint8_t *)s->dir, strlen(s->dir), NULL, 0);
		nn_hex_encode(hex, h, sizeof h);
		name = nn_xasprintf("%s.%.8s", s->id, hex);
		r = nn_cgroup_create(&n->cg, &n->lo, name, &s->limits, s->allow_unlimited, err);
		free(name);
		if (r < 0) {
			job->ex_code = NN_EX_UNAVAILABLE;
			goto fail_early;
		}
	}
	/* sync: a socket, so a go to a job that died meanwhile is an error
	 * (EPIPE), not a SIGPIPE */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, syncp) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stp) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0 || pipe2(pidp, O_CLOEXEC) < 0) {
		nn_seterr(err, "cannot make a pipe: %s", strerror(errno));
		goto fail_cg;
	}
	if (n->cg.v2dir && (cgfd = open(n->cg.v2dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		nn_seterr(err, "cannot open cgroup %s: %s", n->cg.v2dir, strerror(errno));
		goto fail_cg;
	}
	if (nn_cgroup_join_open(&n->join, &n->cg, err) < 0)
		goto fail_cg;
	envp = nn_exec_spec_envp(s);
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)&monfd;
	ca.exit_signal = SIGCHLD;
	mon = syscall(SYS_clone3, &ca, sizeof ca);
	if (mon < 0) {
		nn_seterr(err, "cannot start the job's monitor: %s", strerror(errno));
		goto fail_cg;
	}
	if (mon == 0) {
		close(syncp[1]);
		close(errp[0]);
		close(pidp[0]);
		close(stp[0]);
		monitor(job, n, syncp[0], errp, pidp[1], stp[1], cgfd, out, errlog, envp);
		_exit(127);
	}
	n->mon_pid = (pid_t)mon;
	n->monfd = monfd;
	close(syncp[0]);
	close(errp[1]);
	close(pidp[1]);
	close(stp[1]);
	syncp[0] = errp[1] = pidp[1] = stp[1] = -1;
	if (cgfd >= 0)
		close(cgfd);
	cgfd = -1;
	nn_cgroup_join_close(&n->join);
	/* The job's pid (as seen from here), or EOF when it could not be made. */
	for (;;) {
		ssize_t r = read(pidp[0], &jobpid, sizeof jobpid);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != sizeof jobpid)
			jobpid = 0;
		break;
	}
	close(pidp[0]);
	pidp[0] = -1;
	if (jobpid > 0) {
		/* the job waits for our go, so this is the job, not a reused
		 * pid (unless it failed: then the error pipe says why) */
		n->pidfd = (int)syscall(SYS_pidfd_open, jobpid, 0);
		watch_errno = errno;
		if (n->pidfd >= 0) {
			job->pid = jobpid;
			n->starttime = nn_exec_proc_starttime(job->pid, 0);
			n->mon_start = nn_exec_proc_starttime(n->mon_pid, 0);
			snprintf(job->handle, sizeof job->handle, "pid %d", (int)job->pid);
			if (send(syncp[1], "g", 1, MSG_NOSIGNAL) != 1) {
				/* it is gone: nothing to kill, its error follows */
				close(n->pidfd);
				n->pidfd = -1;
				watch_errno = ESRCH;
			} else if (record(job, n, err) < 0) {
				job->ex_code = NN_EX_IOERR;
				goto fail_child;
			}
		}
	}
	close(syncp[1]);
	syncp[1] = -1;
	/* EOF: exec succeeded (the pipe is close-on-exec); else why not. */
	for (;;) {
		ssize_t r = read(errp[0], msg + got, sizeof msg - 1 - (size_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
		if ((size_t)got >= sizeof msg - 1)
			break;
	}
	close(errp[0]);
	errp[0] = -1;
	if (got > 0 || jobpid <= 0 || n->pidfd < 0) {
		msg[got] = '\0';
		if (got == 0 && jobpid > 0)
			nn_seterr(err, "cannot watch the job: %s", strerror(watch_errno));
		else
			nn_seterr(err, "cannot start '%s': %s", s->argv[0],
				  got > 0 ? msg : "the monitor failed");
		job->ex_code = NN_EX_UNAVAILABLE;
		goto fail_child;
	}
	n->stfd = stp[0];
	job->wait_fd = n->stfd;
	nn_exec_strv_free(envp);
	close(out);
	close(errlog);
	job->ex_code = 0;
	return 0;

fail_child:
	if (n->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, n->pidfd, SIGKILL, NULL, 0);
	syscall(SYS_pidfd_send_signal, n->monfd, SIGKILL, NULL, 0);
	waitpid(n->mon_pid, NULL, 0);
	{
		char *ep = nn_exec_path(s, EXIT_FILE), *tp = nn_xasprintf("%s.tmp", ep);
		char *sp = nn_exec_path(s, STATE_FILE);
		unlink(ep);
		unlink(tp);
		unlink(sp);
		free(ep);
		free(tp);
		free(sp);
	}
fail_cg:
	nn_cgroup_remove(&n->cg, NULL);
	nn_cgroup_release(&n->cg);
fail_early:
	for (int i = 0; i < 2; i++) {
		if (syncp[i] >= 0)
			close(syncp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (pidp[i] >= 0)
			close(pidp[i]);
		if (stp[i] >= 0)
			close(stp[i]);
	}
	if (n->pidfd >= 0)
		close(n->pidfd);
	if (n->monfd >= 0)
		close(n->monfd);
	n->pidfd = n->monfd = -1;
	n->mon_pid = 0;
	job->wait_fd = -1;
	job->pid = 0;
	nn_exec_strv_free(envp);
	if (out >= 0)
		close(out);
	if (errlog >= 0)
		close(errlog);
	if (cgfd >= 0)
		close(cgfd);
	nn_cgroup_join_close(&n->join);
	return -1;
}

/* pidfd of a recorded process if it is still the same one, else -1. */
static int reopen(pid_t pid, unsigned long long start)
{
	if (pid < 2 || !start || nn_exec_proc_starttime(pid, 0) != start)
		return -1;
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static long long get_num(jv o, const char *key)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	long long r = jv_get_kind(v) == JV_KIND_NUMBER ? (long long)jv_number_value(v) : 0;
	jv_free(v);
	return r;
}

static int native_adopt(struct nn_exec_job *job, char *err)
{
	struct native *n = priv(job);
	char *path = nn_exec_path(job->spec, STATE_FILE);
	char *text = nn_read_file(path, 65536, NULL, err);
	jv o, v;
	int rc = -1;

	free(path);
	if (!text) {
		job->ex_code = NN_EX_UNAVAILABLE;
		return -1;
	}
	o = nn_json_parse(text, strlen(text), err);
	free(text);
	if (!jv_is_valid(o)) {
		jv_free(o);
		return fail(job, NN_EX_DATAERR, NULL, "-");
	}
	job->pid = (pid_t)get_num(o, "pid");
	n->starttime = (unsigned long long)get_num(o, "starttime");
	n->mon_pid = (pid_t)get_num(o, "monitor");
	n->mon_start = (unsigned long long)get_num(o, "monitor_starttime");
	if (job->pid < 2 || n->mon_pid < 2) {
		fail(job, NN_EX_DATAERR, err, "%s: no pid recorded", STATE_FILE);
		goto out;
	}
	nn_cgroup_release(&n->cg);
	v = jv_object_get(jv_copy(o), jv_string("cgroups"));
	if (nn_cgroup_from_json(&n->cg, v, err) < 0) {
		jv_free(v);
		goto out;
	}
	jv_free(v);
	job->adopted = 1;
	snprintf(job->handle, sizeof job->handle, "pid %d", (int)job->pid);
	n->pidfd = reopen(job->pid, n->starttime);
	n->monfd = reopen(n->mon_pid, n->mon_start);
	if (n->monfd < 0)
		n->mon_done = 1;	/* gone: its exit.json tells, if it wrote one */
	job->wait_fd = n->monfd;
	rc = 0;
out:
	jv_free(o);
	return rc;
}

/* ---- wait, signal, stats, cleanup ---------------------------------- */

static const char *signame(int sig)
{
	const char *d = sigabbrev_np(sig);
	return d ? d : "?";
}

static void finish(struct nn_exec_job *job, struct native *n, int code, int sig)
{
	struct nn_exec_result *r = &n->res;
	long kills = nn_cgroup_oom_kills(&n->cg);
	r->done = 1;
	r->code = code;
	r->signal = sig;
	if (kills > 0 && !(code == 0 && sig == 0)) {
		r->oom = 1;
		snprintf(r->reason, sizeof r->reason,
			 "out of memory: the kernel killed %ld process%s at the limit of %llu bytes",
			 kills, kills == 1 ? "" : "es", (unsigned long long)job->spec->limits.memory);
	} else if (sig > 0) {
		snprintf(r->reason, sizeof r->reason, "killed by signal %d (SIG%s)", sig, signame(sig));
	} else if (code >= 0) {
		snprintf(r->reason, sizeof r->reason, "exited with code %d", code);
	} else {
		snprintf(r->reason, sizeof r->reason,
			 "exit status lost: the job's monitor died before the job");
	}
}

/* The monitor has ended: the job's status is in exit.json, if anywhere. */
static void finish_from_file(struct nn_exec_job *job, struct native *n)
{
	char *path = nn_exec_path(job->spec, EXIT_FILE);
	char *text = nn_read_file(path, 4096, NULL, NULL);
	int code = -1, sig = 0;
	free(path);
	if (text) {
		jv o = nn_json_parse(text, strlen(text), NULL);
		if (jv_is_valid(o)) {
			jv c = jv_object_get(jv_copy(o), jv_string("code"));
			jv s = jv_object_get(jv_copy(o), jv_string("signal"));
			if (jv_get_kind(c) == JV_KIND_NUMBER)
				code = (int)jv_number_value(c);
			if (jv_get_kind(s) == JV_KIND_NUMBER)
				sig = (int)jv_number_value(s);
			jv_free(c);
			jv_free(s);
		}
		jv_free(o);
		free(text);
	}
	finish(job, n, code, sig);
}

static void close_fds(struct nn_exec_job *job, struct native *n)
{
	if (n->monfd >= 0)
		close(n->monfd);
	if (n->pidfd >= 0)
		close(n->pidfd);
	n->monfd = n->pidfd = -1;
	job->wait_fd = -1;
}

/*
 * The status from the monitor's socket: 1 it came (the result is
 * complete), 0 not yet (or interrupted), 2 the socket ended without one
 * (the monitor died or is ending: ask it and exit.json), -1 + err.
 */
static int status_read(struct nn_exec_job *job, struct native *n, int timeout_ms, char *err)
{
	struct pollfd p = { n->stfd, POLLIN, 0 };
	char buf[128];
	ssize_t got = 0, r;
	int code = -1, sig = 0, ok = 0;

	r = poll(&p, 1, timeout_ms);
	if (r < 0 && errno == EINTR)
		return 0;
	if (r < 0)
		return fail(job, NN_EX_SOFTWARE, err, "cannot wait for the job: %s", strerror(errno));
	if (r == 0)
		return 0;
	/* one short line, written at once; read to its end */
	while ((size_t)got < sizeof buf - 1) {
		r = read(n->stfd, buf + got, sizeof buf - 1 - (size_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
		if (memchr(buf, '\n', (size_t)got))
			break;
	}
	buf[got] = '\0';
	if (got > 0 && buf[got - 1] == '\n') {
		jv o = nn_json_parse(buf, (size_t)got, NULL);
		if (jv_get_kind(o) == JV_KIND_OBJECT) {
			jv c = jv_object_get(jv_copy(o), jv_string("code"));
			jv sg = jv_object_get(jv_copy(o), jv_string("signal"));
			ok = 1;
			if (jv_get_kind(c) == JV_KIND_NUMBER)
				code = (int)jv_number_value(c);
			if (jv_get_kind(sg) == JV_KIND_NUMBER)
				sig = (int)jv_number_value(sg);
			jv_free(c);
			jv_free(sg);
		}
		jv_free(o);
	}
	if (!ok) {
		close(n->stfd);
		n->stfd = -1;
		job->wait_fd = n->monfd;
		return 2;
	}
	finish(job, n, code, sig);	/* the socket stays: cleanup() answers */
	return 1;
}

static int native_wait(struct nn_exec_job *job, int timeout_ms, struct nn_exec_result *res,
		       char *err)
{
	struct native *n = priv(job);
	siginfo_t si;

	if (n->res.done)
		goto done;
	if (n->mon_done) {
		finish_from_file(job, n);
		close_fds(job, n);
		goto done;
	}
	if (n->monfd < 0)
		return fail(job, NN_EX_SOFTWARE, err, "native: wait() on a job that was not started");
	if (n->stfd >= 0) {
		int r = status_read(job, n, timeout_ms, err);
		if (r == 1)
			goto done;
		if (r != 2)
			return r;
		timeout_ms = -1;	/* its monitor is ending: exit.json tells */
	}
	for (;;) {
		struct pollfd p = { n->monfd, POLLIN, 0 };
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR) {
			if (timeout_ms < 0)
				continue;
			return 0;	/* interrupted: the caller looks at its signals */
		}
		if (r < 0)
			return fail(job, NN_EX_SOFTWARE, err, "cannot wait for the job: %s",
				    strerror(errno));
		if (r == 0)
			return 0;
		break;
	}
	if (!job->adopted) {
		memset(&si, 0, sizeof si);
		if (waitid((idtype_t)P_PIDFD, (id_t)n->monfd, &si, WEXITED | WNOHANG) < 0)
			return fail(job, NN_EX_SOFTWARE, err, "cannot wait for the job: %s",
				    strerror(errno));
		if (si.si_pid == 0)
			return 0;
	}
	n->mon_done = 1;
	finish_from_file(job, n);
	close_fds(job, n);
done:
	*res = n->res;
	return 1;
}

static int native_signal(struct nn_exec_job *job, int sig, char *err)
{
	struct native *n = priv(job);
	if (sig == SIGKILL)
		nn_cgroup_kill(&n->cg, NULL);
	if (n->pidfd < 0)
		return n->res.done || n->mon_done ? 0
			: fail(job, NN_EX_SOFTWARE, err, "native: no job to signal");
	if (syscall(SYS_pidfd_send_signal, n->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
		return fail(job, NN_EX_SOFTWARE, err, "cannot signal the job: %s", strerror(errno));
	return 0;
}

static int native_stats(struct nn_exec_job *job, struct nn_exec_stats *st, char *err)
{
	nn_cgroup_stats(&priv(job)->cg, st);
	return 0;
}

static int native_cleanup(struct nn_exec_job *job, char *err)
{
	struct native *n = priv(job);
	const char *files[] = { STATE_FILE, EXIT_FILE, EXIT_FILE ".tmp", NULL };
	int rc;

	if (n->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, n->pidfd, SIGKILL, NULL, 0);
	nn_cgroup_kill(&n->cg, NULL);
	if (n->stfd >= 0) {
		/* the result is kept (the caller has it): the monitor writes
		 * no exit.json and ends; wait for that, and reap it */
		if (n->res.done)
			(void)send(n->stfd, "k", 1, MSG_NOSIGNAL);
		close(n->stfd);
		n->stfd = -1;
		if (n->res.done && n->monfd >= 0) {
			struct pollfd p = { n->monfd, POLLIN, 0 };
			if (poll(&p, 1, 5000) != 1)
				syscall(SYS_pidfd_send_signal, n->monfd, SIGKILL, NULL, 0);
			if (!job->adopted)
				waitpid(n->mon_pid, NULL, 0);
			n->mon_done = 1;
		}
	}
	if (n->monfd >= 0 && !n->res.done) {
		/* the monitor ends right after the job: let it, and reap it */
		struct nn_exec_result r;
		if (native_wait(job, 5000, &r, NULL) != 1) {
			syscall(SYS_pidfd_send_signal, n->monfd, SIGKILL, NULL, 0);
			if (!job->adopted)
				waitpid(n->mon_pid, NULL, 0);
		}
	}
	close_fds(job, n);
	rc = nn_cgroup_remove(&n->cg, err);
	if (rc == 0 && job->spec && job->spec->dir) {
		for (int i = 0; files[i]; i++) {
			char *path = nn_exec_path(job->spec, files[i]);
			unlink(path);
			free(path);
		}
	}
	if (rc < 0)
		job->ex_code = NN_EX_SOFTWARE;
	return rc;
}

static void native_free(struct nn_exec_job *job)
{
	struct native *n = job->priv;
	if (!n)
		return;
	close_fds(job, n);
	if (n->stfd >= 0)
		close(n->stfd);
	n->stfd = -1;
	nn_cgroup_layout_release(&n->lo);
	nn_cgroup_release(&n->cg);
	free(n->path);
}

const struct nn_executor nn_exec_native = {
	.name = "native",
	.available = native_available,
	.prepare = native_prepare,
	.start = native_start,
	.wait = native_wait,
	.signal = native_signal,
	.stats = native_stats,
	.cleanup = native_cleanup,
	.adopt = native_adopt,
	.release = native_free,
};
