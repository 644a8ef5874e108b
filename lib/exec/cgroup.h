/*
 * cgroup — control groups for the native executor, on cgroup v2, v1 or a
 * hybrid of both, found by reading /proc/self/mountinfo (never assumed).
 * Each controller the executor needs (memory, cpu, cpuacct, pids) is taken
 * from the cgroup2 hierarchy when its root lists it in cgroup.controllers,
 * else from a v1 hierarchy that has it mounted.  A controller-less cgroup2
 * mount (the "unified" tree of a hybrid host) is still used to track the
 * job's processes and to kill them all with cgroup.kill.  A job's groups are
 * called "nunet/NAME" in every hierarchy used (the native executor names
 * them ID.DIGEST, DIGEST from the allocation directory, unique per machine).
 */
#ifndef NN_CGROUP_H
#define NN_CGROUP_H

#include <sys/types.h>
#include <jv.h>
#include "exec/exec.h"

enum nn_cg_ctl { NN_CG_MEMORY, NN_CG_CPU, NN_CG_CPUACCT, NN_CG_PIDS, NN_CG_NCTL };

/* What this machine offers. */
struct nn_cgroup_layout {
	char *v2root;			/* cgroup2 mount point, or NULL */
	char *v1[NN_CG_NCTL];		/* v1 mount point per controller, or NULL */
	int on_v2[NN_CG_NCTL];		/* 1: the controller is in v2root's cgroup.controllers */
	int writable[NN_CG_NCTL];	/* 1: a group with it can be made here */
	int v2_writable;		/* 1: v2root accepts new groups */
};

/* Probe the machine (fills lo; release with nn_cgroup_layout_release).
 * Never fails for a machine without cgroups: it then offers nothing. */
int nn_cgroup_probe(struct nn_cgroup_layout *lo, char *err);
void nn_cgroup_layout_release(struct nn_cgroup_layout *lo);
/* "cgroup v2", "cgroup v1", or "none" for a controller. */
const char *nn_cgroup_where(const struct nn_cgroup_layout *lo, enum nn_cg_ctl c);
/* Can these limits be enforced here?  0, or -1 with err naming the limit
 * and the controller that is missing or read-only. */
int nn_cgroup_check(const struct nn_cgroup_layout *lo, const struct nn_exec_limits *lim,
		    char *err);
/* A short JSON description of the layout (for `nunet-run exec --probe`). */
jv nn_cgroup_layout_json(const struct nn_cgroup_layout *lo);

/* One job's groups: a directory per controller (NULL when unused; two
 * controllers mounted together share one directory) and the v2 group. */
struct nn_cgroup {
	char *dir[NN_CG_NCTL];
	char *v2dir;		/* the job's group in the cgroup2 tree, or NULL */
	int v2ctl;		/* 1: v2dir holds the controllers (pure v2) */
};

/* Make the groups "nunet/NAME" wherever the layout allows and set the
 * limits (0 = none).  On failure removes what it made.  Limits that cannot
 * be enforced are refused unless allow_unlimited. */
int nn_cgroup_create(struct nn_cgroup *cg, const struct nn_cgroup_layout *lo,
		     const char *name, const struct nn_exec_limits *lim,
		     int allow_unlimited, char *err);
/* Move pid into every group of the job.  Each such move waits for an RCU
 * grace period in the kernel when none is under way (it write-locks
 * cgroup_threadgroup_rwsem): several ms, 6 to 24 here.  A new process
 * joins faster by itself, through nn_cgroup_join. */
int nn_cgroup_attach(const struct nn_cgroup *cg, pid_t pid, char *err);

/*
 * A process joining the job's groups by itself, as a job does before it
 * execs: the starter opens the groups' files (nn_cgroup_join_open), the
 * new process writes "0" (itself) to each (nn_cgroup_join).  On v1 that
 * is the "tasks" file, which moves the calling thread alone, so the kernel
 * takes no global lock and waits for no grace period (0.1 ms instead of
 * several; the caller must be single-threaded, as a fresh clone is).  The
 * v2 group is joined through cgroup.procs, unless in_v2 says the process
 * was forked into it already (CLONE_INTO_CGROUP), which costs nothing.
 * The descriptors are close-on-exec; dir pointers borrow cg.
 */
struct nn_cgroup_join {
	int fd[NN_CG_NCTL + 1];
	int v2[NN_CG_NCTL + 1];
	const char *dir[NN_CG_NCTL + 1];
	int n;
};
void nn_cgroup_join_init(struct nn_cgroup_join *j);
int nn_cgroup_join_open(struct nn_cgroup_join *j, const struct nn_cgroup *cg, char *err);
/* Async-signal-safe.  0, or -1 with errno and *dir the group refused. */
int nn_cgroup_join(const struct nn_cgroup_join *j, int in_v2, const char **dir);
void nn_cgroup_join_close(struct nn_cgroup_join *j);

/* How many processes the kernel's OOM killer killed in the job (-1: unknown). */
long nn_cgroup_oom_kills(const struct nn_cgroup *cg);
/* Fill cpu_seconds, memory_peak, memory_current, pids_current (-1 unknown). */
void nn_cgroup_stats(const struct nn_cgroup *cg, struct nn_exec_stats *st);
/* Processes in the job now (-1: no group to tell). */
long nn_cgroup_nprocs(const struct nn_cgroup *cg);
/* SIGKILL every process of the job (cgroup.kill where it exists). */
int nn_cgroup_kill(const struct nn_cgroup *cg, char *err);
/* Kill what is left, wait (at most about 2 s) until the groups are empty and
 * remove them.  Safe to call twice and on a zeroed struct. */
int nn_cgroup_remove(struct nn_cgroup *cg, char *err);
void nn_cgroup_release(struct nn_cgroup *cg);

/* To and from what is recorded in the allocation directory (borrows). */
jv nn_cgroup_json(const struct nn_cgroup *cg);
int nn_cgroup_from_json(struct nn_cgroup *cg, jv j, char *err);

#endif
