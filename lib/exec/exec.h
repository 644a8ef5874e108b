/*
 * exec — the executor interface: how one allocation's job is checked,
 * started, waited for, signalled, measured and cleaned up, whatever runs it
 * (a process in namespaces, a container, a virtual machine).  A job is
 * described by a spec (parsed from JSON by nn_exec_spec_parse, which refuses
 * unknown fields), run by one executor found by name in a registry, and ends
 * with a result (exit code, signal, or "oom").  Its stdout and stderr are
 * kept as files stdout.log and stderr.log in the allocation directory, so
 * logs outlive the process that started the job; the readers that tail and
 * follow them are generic and live here too.
 *
 * Life of a job (cmd/nunet-run.c `exec` is the reference caller):
 *
 *	struct nn_exec_spec spec; struct nn_exec_job job;
 *	nn_exec_spec_parse(&spec, json, err);          consumes json
 *	ex = nn_exec_find(spec.executor, err);
 *	nn_exec_job_init(&job, ex, &spec);             job borrows spec
 *	ex->prepare(&job, err);   checks everything; creates nothing
 *	nn_exec_dir_create(&spec, err);                dir + workdir
 *	ex->start(&job, err);     on failure leaves nothing behind
 *	ex->wait(&job, -1, &res, err);  ... ex->stats(), ex->signal()
 *	ex->cleanup(&job, err);   removes cgroups / container / VM files
 *	nn_exec_job_release(&job); nn_exec_spec_release(&spec);
 *
 * After a restart of whatever started it, a job is found again with
 * nn_exec_job_init() on a spec naming the same dir and id, then ex->adopt().
 *
 * Every op returns 0 on success and -1 with one sentence in err (naming the
 * cause: "command 'nosuch' not found in PATH", "memory limit: no writable
 * memory cgroup controller (set allow_unlimited to run without limits)").
 */
#ifndef NN_EXEC_H
#define NN_EXEC_H

#include <stdint.h>
#include <sys/types.h>
#include <jv.h>
#include "util.h"

/* Resource limits; 0 means "no limit asked". */
struct nn_exec_limits {
	uint64_t memory;	/* bytes ("resources":{"memory":"64M"}) */
	uint64_t cpu_milli;	/* millicores: "cpu":1 = 1000, "cpu":0.5 = 500 */
	uint64_t pids;		/* most tasks at once */
};

/*
 * A job description.  All strings are owned by the spec (freed by
 * nn_exec_spec_release).  JSON form, the only one users write:
 *
 *   {"executor":"native",                  default "native"
 *    "id":"a1b2",                          default: a random 32-hex id
 *    "dir":"/abs/alloc/dir",               default $NUNET_HOME/alloc/ID
 *    "command":["sh","-c","echo hi"],       required, non-empty strings
 *    "env":{"K":"V"},                      exactly this environment
 *    "workdir":"sub",                      relative to dir, or absolute
 *                                           inside dir; default dir
 *    "resources":{"cpu":1,"memory":"64M","pids":64},
 *    "image":"bb:local" | {...},           docker image / vm description
 *    "net":false,                          true: own network namespace
 *                                           (docker: NetworkMode none)
 *    "allow_unlimited":false,              run without limits when the
 *                                           machine cannot enforce them
 *    "labels":{"k":"v"},                   kept with the job (docker labels)
 *    "readonly":["in/data.csv"],           paths inside dir the job may not
 *                                           change: native bind-mounts each
 *                                           read-only in the job's mount
 *                                           namespace, docker binds it ":ro";
 *                                           the vm executor cannot (staging
 *                                           also makes inputs a-w)
 *    "options":{...}}                      executor-specific; the executor's
 *                                           prepare refuses keys it lacks
 */
struct nn_exec_spec {
	char *id;		/* allocation id: [A-Za-z0-9._-], 1..64 chars */
	char *dir;		/* allocation directory, absolute, normalised */
	char *executor;		/* "native", "docker", "vm" */
	char **argv;		/* NULL-terminated command */
	int argc;
	char *image;		/* image when it is a string, else NULL */
	jv image_jv;		/* image as given (string/object), or jv_null() */
	jv env;			/* object of string values; nothing inherited */
	char *workdir;		/* absolute, normalised, inside dir */
	struct nn_exec_limits limits;
	int net;		/* 1: own network namespace, loopback only */
	int allow_unlimited;	/* 1: run even if limits cannot be enforced */
	jv labels;		/* object of string values (maybe empty) */
	jv options;		/* executor-specific object (maybe empty) */
	char **readonly;	/* NULL-terminated paths relative to dir, or NULL */
};

/*
 * Parse and check a spec (consumes json).  Refuses unknown fields, wrong
 * types, bad sizes, a workdir outside dir (lexically: ".." escapes, other
 * absolute paths), and environment names with '=' or NUL.  When dir is
 * absent, home ($NUNET_HOME, may be NULL: then the dir is required) is used
 * to make $NUNET_HOME/alloc/ID.  On failure the spec is left released.
 */
int nn_exec_spec_parse(struct nn_exec_spec *spec, jv json, const char *home, char *err);
void nn_exec_spec_release(struct nn_exec_spec *spec);
/* The environment as a NULL-terminated "K=V" array; free with nn_exec_strv_free. */
char **nn_exec_spec_envp(const struct nn_exec_spec *spec);
void nn_exec_strv_free(char **v);
/* The spec back as JSON (borrows spec; the returned jv is the caller's). */
jv nn_exec_spec_json(const struct nn_exec_spec *spec);

/*
 * Create the allocation directory and the workdir (mode 0755) and check,
 * after symlinks are resolved, that the workdir is still inside dir.
 * Called after prepare() and before start().  When it fails it removes the
 * directories it made.  nn_exec_dir_check() does the same check without
 * creating anything (for prepare: what exists must not escape).
 */
int nn_exec_dir_create(const struct nn_exec_spec *spec, char *err);
int nn_exec_dir_check(const struct nn_exec_spec *spec, char *err);

/*
 * Resolve a command name against a PATH string (NULL: the spec's env PATH,
 * else "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
 * like execvp() would.  Names containing '/' are checked as they are.
 * Returns a new string (caller frees) or NULL + err naming the command.
 */
char *nn_exec_resolve(const char *name, const char *path, char *err);

/* The outcome of a job. */
struct nn_exec_result {
	int done;		/* 0: still running (other fields unset) */
	int code;		/* exit code when it exited, else -1 */
	int signal;		/* terminating signal, else 0 */
	int oom;		/* 1: killed because it went over its memory */
	char reason[NN_ERRLEN];	/* "exited with code 3", "killed by signal 9
				 * (SIGKILL)", "out of memory: the kernel killed
				 * 1 process at the limit of 33554432 bytes",
				 * "exit status lost: ..." */
};
/* Exit status a shell would show: code, or 128+signal; 137 for oom. */
int nn_exec_result_status(const struct nn_exec_result *r);
/* "state" (exited|killed|oom|lost), "code", "signal", "reason". */
jv nn_exec_result_json(const struct nn_exec_result *r);

/* Usage so far (or at the end, before cleanup). -1 means unknown. */
struct nn_exec_stats {
	double cpu_seconds;	/* user+system cpu of the whole job */
	int64_t memory_peak;	/* bytes, highest usage seen by the kernel */
	int64_t memory_current;	/* bytes now */
	int64_t pids_current;	/* tasks now */
};
jv nn_exec_stats_json(const struct nn_exec_stats *st);

struct nn_exec_job;

/*
 * An executor: a table of operations.  All ops return 0 / -1 + err except
 * where noted.  None prints, none exits, none leaves a zombie.
 */
struct nn_executor {
	const char *name;
	/* Can this executor run here at all?  0, or -1 with why it cannot. */
	int (*available)(char *why);
	/* Check everything that can be checked before starting: executor
	 * installed, command/image present, limits enforceable (or
	 * allow_unlimited), options known, workdir allowed.  Creates nothing. */
	int (*prepare)(struct nn_exec_job *job, char *err);
	/* Start the job, stdout/stderr appended to DIR/stdout.log and
	 * DIR/stderr.log, and record what adopt() needs in DIR.  On failure
	 * everything it created is removed again. */
	int (*start)(struct nn_exec_job *job, char *err);
	/* Wait for the end: timeout_ms 0 polls, -1 blocks, else at most that
	 * long.  Returns 1 when done (res filled), 0 when still running,
	 * -1 on error.  Once done, later calls return the same result. */
	int (*wait)(struct nn_exec_job *job, int timeout_ms, struct nn_exec_result *res,
		    char *err);
	/* Send a signal to the job (its main process; SIGKILL kills the whole
	 * tree).  Note a pid-namespace init ignores signals it has no handler
	 * for, except SIGKILL. */
	int (*signal)(struct nn_exec_job *job, int sig, char *err);
	/* Usage figures; valid until cleanup(). */
	int (*stats)(struct nn_exec_job *job, struct nn_exec_stats *st, char *err);
	/* Kill whatever is left and remove cgroups, containers, VM files (not
	 * the allocation directory and its logs).  Safe to call twice. */
	int (*cleanup)(struct nn_exec_job *job, char *err);
	/* Re-attach to a job started by another process, from what start()
	 * recorded in DIR (and labels).  -1 when there is nothing to adopt. */
	int (*adopt)(struct nn_exec_job *job, char *err);
	/* Free what the executor keeps in job->priv (not the priv block
	 * itself: nn_exec_job_release frees that).  May be NULL. */
	void (*release)(struct nn_exec_job *job);
};

/* A running (or prepared) job: the spec it runs and the executor's state. */
struct nn_exec_job {
	const struct nn_executor *ex;
	const struct nn_exec_spec *spec;	/* borrowed; outlives the job */
	pid_t pid;		/* main process as seen from here, or 0 */
	char handle[128];	/* container id, cgroup name, …: for messages */
	void *priv;		/* the executor's own state */
	int adopted;		/* 1: found by adopt(), not started by us */
	int wait_fd;		/* readable when the job may have ended (native:
				 * the pidfd of the job's monitor), for an event
				 * loop to watch (EPOLLIN), then
				 * call wait(job, 0, …); -1: poll wait() on a
				 * timer.  Owned by the executor: never close. */
	int ex_code;		/* set by a failing op: NN_EX_DATAERR when the
				 * spec is at fault (command or image missing,
				 * unknown option), NN_EX_UNAVAILABLE when this
				 * machine lacks something (executor, limit),
				 * NN_EX_SOFTWARE/NN_EX_IOERR otherwise */
};

void nn_exec_job_init(struct nn_exec_job *job, const struct nn_executor *ex,
		      const struct nn_exec_spec *spec);
/* Frees the executor's state (does not clean up: call cleanup() first). */
void nn_exec_job_release(struct nn_exec_job *job);

/* Registry: the executor called name, or NULL + err ("unknown executor
 * 'x' (known: native, docker, vm)").  nn_exec_list() is NULL-terminated. */
const struct nn_executor *nn_exec_find(const char *name, char *err);
const struct nn_executor *const *nn_exec_list(void);

/* The executors (each in its own lib/exec/NAME.c; listed in exec.c). */
extern const struct nn_executor nn_exec_native;
extern const struct nn_executor nn_exec_docker;
extern const struct nn_executor nn_exec_vm;

/* Leave a real-time scheduling policy (SCHED_FIFO, SCHED_RR) for
 * SCHED_OTHER; other policies are kept.  For whatever starts jobs: a
 * cgroup v1 cpu group refuses real-time tasks.  0, or -1 with errno. */
int nn_exec_sched_normal(void);

/* Paths inside the allocation directory (caller frees). */
/* The start time of pid (clock ticks since boot, field 22 of
 * /proc/PID/stat), which with the pid names a process without doubt; 0
 * when it is gone, or, with live_only, a zombie. */
unsigned long long nn_exec_proc_starttime(pid_t pid, int live_only);
/* Write the state object o (consumed) to DIR/name, mode 0644, atomically
 * but without fsync: it describes live processes, which do not outlive a
 * crash of the machine either. */
int nn_exec_write_state(const struct nn_exec_spec *s, const char *name, jv o, char *err);

char *nn_exec_path(const struct nn_exec_spec *spec, const char *name);
#define NN_EXEC_STDOUT "stdout.log"
#define NN_EXEC_STDERR "stderr.log"

/*
 * Log readers.  A follower copies what a log file gains to an fd; it opens
 * the file when it appears.  nn_exec_log_tail() writes the last n lines.
 */
struct nn_exec_follow {
	char *path;
	int fd;			/* -1 until the file exists */
	off_t off;
};
void nn_exec_follow_init(struct nn_exec_follow *f, const char *path, int from_end);
void nn_exec_follow_release(struct nn_exec_follow *f);
/* Copy new bytes to outfd; returns bytes copied (0: nothing new) or -1. */
ssize_t nn_exec_follow_pump(struct nn_exec_follow *f, int outfd, char *err);
int nn_exec_log_tail(const char *path, long nlines, int outfd, char *err);

#endif
