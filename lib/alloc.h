/*
 * alloc — allocations on one node: the node module that starts each job
 * under its own shim process (`nunet-run exec --shim`), talks with the shim
 * over a unix socket in the allocation's directory, records every state in
 * the node's store, restarts jobs by policy, stops parents after their
 * children, and after a crash of the node finds every live shim again from
 * what is on disk and in node.db.
 *
 * Files in an allocation's directory ($NUNET_HOME/alloc/ID):
 *
 *	spec.json	the executor spec the shim runs (written by the node)
 *	shim.sock	the shim's socket (0600); the node connects to it
 *	shim.log	the shim's own stderr
 *	result.json	the last run's result, written by the shim before it
 *			reports it (so a result survives the death of both)
 *	stage.json	inputs, outputs and stage timeout for the shim (stage.h)
 *	state.json	the allocation's state as the node last decided it,
 *			rewritten (atomically) on every change: what a local
 *			client such as `nunet-run wait` watches
 *	stdout.log, stderr.log, children.jsonl (failures of child allocations)
 *	cred/key	the allocation's own ed25519 identity (0600, in a 0700
 *			directory), made when the allocation is started
 *	cred/cap	its capability token: issued by the node's key to that
 *			identity for /alloc and /deploy on this node, depth 0,
 *			valid for NUNET_ALLOC_CAP_TTL (default 1h) and renewed
 *			(rewritten) at every run, at every start of the node
 *			and when half its time is gone; every token it was
 *			given is revoked, and cred/ removed, when it ends
 *
 * The node makes the next allocation's directory ahead, with its empty
 * files and cred/ (a new identity), in $NUNET_HOME/alloc.spare/PID.N, and
 * renames it to DIR when it starts one; it keeps a spare shim too
 * (`nunet-run exec --shim --spare`), loaded and waiting for an
 * allocation's arguments on its stdin.
 *
 * Credentials: the job's environment gets NUNET_SOCKET (the node's control
 * socket), NUNET_KEY, NUNET_CAP (the two files) and NUNET_ALLOC (its id),
 * which lib/client honours, so programs run by the job talk to the node as
 * the allocation.  A request signed by an allocation's identity acts on its
 * own subtree only: /alloc/start makes a child of the signer (or of the
 * descendant named in "parent"), and /alloc/status, list, logs and cancel
 * see only the signer and its descendants.  The node's owners see all.
 *
 * The shim protocol: JSON lines, one object each, field "t" the kind.
 *
 *	shim → node	{"t":"hello","id":ID,"pid":P,"run":N,"done":bool,
 *			 "staging":bool,"started":bool}
 *			{"t":"stage",…}  staging progress (stage.h): an
 *			                 alloc.stage event
 *			{"t":"staged"}   inputs in place: state starting
 *			{"t":"started"}  the job runs: state running
 *			{"t":"hb","ts":MS,"stats":{…}}             every heartbeat
 *			{"t":"health","ok":bool,"failures":N,"message":S}
 *			{"t":"result","run":N,"result":{…}}        at the end; again
 *			                                    on every reconnect until acked
 *	node → shim	{"t":"signal","signal":N}   signal the job
 *			{"t":"ack","run":N}         result recorded: clean up and exit
 *
 * States: pending → [waiting →] [staging →] starting → running → exited |
 * killed | oom | failed, and running → restarting → [waiting →] starting
 * when the restart policy says so.  staging: the first run's shim fetches
 * the inputs in a child process before it starts the job; a failed
 * staging ends the allocation failed (reason "staging: …", result step
 * "staging"), never restarted.  waiting: a run of an allocation started
 * with "after" waits, with no shim, until every allocation named there
 * runs ("running") or has exited 0 ("exited"), each run (a restart waits
 * again); one that ends otherwise fails it (reason "dependency NAME
 * exited with status N" or "dependency NAME ended (STATE…)", NAME its
 * nunet.allocation label or its id).
 *
 * Behaviors (bodies are objects; errors are bad_body unless noted):
 *
 *	/alloc/start   {"spec":SPEC, "restart":POLICY, "healthcheck":CHECK,
 *	                "parent":ID, "logs":{"max":SIZE,"keep":N},
 *	                "inputs":[{"url","path","sha256"?}],
 *	                "outputs":[{"path","url"}], "stage_timeout":"10m",
 *	                "state_dir":D, "restore":{"xfer","commit"} or
 *	                {"fetch","deployment","name","commit"},
 *	                "checkpoint":"30s" (migrate.h),
 *	                "contract":ID, "after":{ID:"running"|"exited"}}
 *	               → {"id","dir","executor"}.  SPEC is an exec spec
 *	               (exec.h) without "dir".  Refused before anything is
 *	               made; "unavailable" when the executor or a limit cannot
 *	               be had here or an onboarded node has not enough free.
 *	/alloc/status  {"id"} → the allocation: state, reason, status, run,
 *	               result, restarts, children, parent, states[] history,
 *	               final, spec, restart, healthcheck, shim_pid, dir, did,
 *	               failed_children[] ({id,state,reason,status} of each
 *	               child that ended other than by exiting 0)
 *	/alloc/list    {"all":bool} → {"allocations":[…]} (live ones unless all)
 *	/alloc/logs    {"id"} → {"dir","stdout","stderr","state","final"}:
 *	               where to read (the logs are files on this machine)
 *	/alloc/cancel  {"id","grace":"10s"} → {"id","cancelled":bool}:
 *	               children first, then SIGTERM, SIGKILL after grace
 *	/alloc/restart {"id","reason","escalate":bool} → {"id","restarted"}:
 *	               a running job is killed for a supervisor elsewhere
 *	               (the orchestrator's restart strategies): restarted at
 *	               once, state restarting with reason "supervisor: …",
 *	               not counted against its own intensity; with escalate
 *	               its end is a failure ("escalated: …") its policy judges;
 *	               with "hold":true its next run waits (state waiting,
 *	               reason NN_ALLOC_HELD, no shim) until the same
 *	               supervisor sends {"id","release":true} → {"id",
 *	               "released"}: what it depends on elsewhere runs again
 *	               (the hold is stored: it outlives the node)
 *
 * Waiting for the end is watching DIR/state.json (inotify) until its state
 * is final: a behavior's answer cannot be deferred by the node yet, and a
 * local client reads the logs from the directory anyway.
 *
 * The module keeps one state per process (one node per process).
 */
#ifndef NN_ALLOC_H
#define NN_ALLOC_H

#include <stdint.h>
#include <jv.h>
#include "env.h"
#include "exec/exec.h"
#include "util.h"

struct nn_node;

#define NN_ALLOC_SOCK "shim.sock"
#define NN_ALLOC_SPEC "spec.json"
#define NN_ALLOC_STATE "state.json"
#define NN_ALLOC_RESULT "result.json"
#define NN_ALLOC_SHIMLOG "shim.log"
#define NN_ALLOC_CHILDREN "children.jsonl"
#define NN_ALLOC_CRED "cred"
#define NN_ALLOC_KEY "cred/key"
#define NN_ALLOC_CAP "cred/cap"
/* the reason of a run held by its supervisor (/alloc/restart "hold") */
#define NN_ALLOC_HELD "held by its supervisor"

/* Register the /alloc/ behaviors, tables (module "alloc"), timers and a
 * closer, and reconnect to the shims of every allocation still live. */
int nn_alloc_attach(struct nn_node *n, char *err);

/* The id of the allocation whose identity is did (the did part of an
 * address is used), or NULL when did is not one; the caller frees it.
 * Ended allocations keep their identity (their tokens are revoked). */
char *nn_alloc_of_did(const char *did);

/*
 * Observers: another module follows allocations without polling (pay's
 * meter).  check runs in /alloc/start for a body that names a "contract",
 * before anything is made (req borrowed): NN_OK lets the start go on, any
 * other code refuses it with err; without an observer that checks, such a
 * body is refused.  event gets, with the allocation's id, its options as
 * /alloc/start kept them ("contract" among them; borrowed) and its run:
 * NN_ALLOC_STARTED once it is recorded (data null); NN_ALLOC_STATS at every
 * heartbeat that carries the executor's counters ({"cpu_seconds",
 * "memory_current",…}) and with each run's result (its "cpu_seconds" are
 * the run's last); NN_ALLOC_ENDED once, at its final state (data: the
 * result, or null).  data is borrowed.  At most 4 observers.
 */
enum nn_alloc_event { NN_ALLOC_STARTED, NN_ALLOC_STATS, NN_ALLOC_ENDED };
struct nn_alloc_observer {
	enum nn_code (*check)(struct nn_node *n, jv req, const char *contract, void *arg, char *err);
	void (*event)(struct nn_node *n, enum nn_alloc_event ev, const char *id, jv opts, int run,
		      jv data, void *arg);
	void *arg;
};
/* The table is kept by reference: keep it static.  -1 + err when full or
 * allocations are not attached. */
int nn_alloc_observe(struct nn_node *n, const struct nn_alloc_observer *o, char *err);

/* 1 when state is final (exited, killed, oom, failed). */
int nn_alloc_state_final(const char *state);

/*
 * Restart policy, from "never" | "on-failure" | "always", or an object
 * {"policy":P,"max":R,"period":"60s","delay":"0s"}: at most R restarts in
 * any window of T, then the allocation fails.  Defaults: never, 5, 60 s, 0.
 */
enum nn_alloc_policy { NN_RESTART_NEVER, NN_RESTART_ON_FAILURE, NN_RESTART_ALWAYS };
struct nn_alloc_restart {
	enum nn_alloc_policy policy;
	int max;
	int64_t period_ms, delay_ms;
};
/* Borrows v (null: the defaults).  -1 + err on anything else. */
int nn_alloc_restart_parse(jv v, struct nn_alloc_restart *r, char *err);
const char *nn_alloc_policy_name(enum nn_alloc_policy p);

/*
 * Health check: {"command":[…]} or {"http":"http://…"}, with "interval"
 * (default 1s), "timeout" (1s), "retries" (3 failures in a row make the job
 * unhealthy) and "start_period" (0s: failures in it do not count).
 * A command runs on the host, in the job's working directory, with the
 * job's environment; it is healthy when it exits 0 within the timeout.
 * An HTTP check is healthy on a 2xx or 3xx answer within the timeout.
 */
struct nn_alloc_health {
	char **argv;		/* NULL-terminated, or NULL */
	char *url;		/* or NULL */
	int64_t interval_ms, timeout_ms, start_ms;
	int retries;
};
/* Borrows v.  -1 + err on an unknown field or a bad value. */
int nn_alloc_health_parse(jv v, struct nn_alloc_health *h, char *err);
void nn_alloc_health_release(struct nn_alloc_health *h);
/* Run one check (blocks for at most its timeout).  1 healthy, 0 not, with
 * a message in msg either way. */
int nn_alloc_health_check(const struct nn_alloc_health *h, const struct nn_exec_spec *spec,
			  char *msg);

/*
 * Log cap: {"max":"64M","keep":1} (the defaults; max 0: no cap).  When a
 * log grows over max, the shim moves its content to NAME.1 (older ones to
 * NAME.2 … NAME.keep) and empties it.  Borrows v (null: the defaults).
 */
struct nn_alloc_logs {
	uint64_t max;
	int keep;
};
int nn_alloc_logs_parse(jv v, struct nn_alloc_logs *lg, char *err);

/* Read DIR/state.json; invalid jv + err when missing or unreadable. */
jv nn_alloc_state_read(const char *dir, char *err);
/* The exit status a shell would show for a final state object (borrows):
 * the job's status, or 70 when the allocation failed without one. */
int nn_alloc_state_status(jv state);

#endif
