/*
 * stage — an allocation's inputs and outputs: what /alloc/start accepts,
 * what the node leaves for the shim in DIR/stage.json, and the child
 * process that moves the bytes.  The shim (nunet-run exec --shim) forks
 * that child before the job starts (inputs) and after it ends (outputs),
 * so neither the node's loop nor the shim's (heartbeats, signals) ever
 * waits on a transfer; the child reports on a pipe, in JSON lines:
 *
 *	{"t":"stage","phase":P,"input":I,"url":U,"bytes":B,"total":T}
 *	        P is start|progress|retry|done (nn_storage_event), I counts
 *	        from 1 ("output" instead when collecting), at most every 500 ms
 *	{"t":"done","ok":true,"results":[…]}
 *	{"t":"done","ok":false,"error":S,"code":N,"results":[…]}
 *
 * and exits.  Inputs are fetched with nn_storage_stage (all or nothing:
 * a failure removes what was staged, temporary files included), then made
 * read-only (chmod a-w, directories recursively); outputs go up with
 * nn_storage_collect (each one tried; failures named in its result).
 * SIGTERM cancels the child's transfer cleanly (the storage layer removes
 * its partial file) and it reports "cancelled".
 *
 * DIR/stage.json:
 *	{"inputs":[{"url","path","sha256"?,"max_size"?}],
 *	 "outputs":[{"path","url"}], "timeout_ms":N,
 *	 "restore":{"pack","commit","repo"} or {"fetch",…}, "state_dir":D,
 *	 "checkpoint_ms":N, "home":NUNET_HOME}
 * paths relative to DIR; restore (migrate.h): a received snapshot pack
 * (or one fetched from the deployment's orchestrator) the shim unpacks
 * and restores into D before it stages or starts; checkpoint_ms: the shim
 * runs `nunet-run checkpoint` that often while the job runs.
 */
#ifndef NN_STAGE_H
#define NN_STAGE_H

#include <stdint.h>
#include <sys/types.h>
#include <jv.h>
#include "util.h"

#define NN_STAGE_FILE "stage.json"

/* The shape of inputs and outputs (borrowed; null: none): arrays of
 * objects with string url and path (inputs: optional string sha256,
 * integer max_size).  Schemes and paths are checked by the staging
 * itself, which fails the allocation with a clear reason. */
int nn_stage_check(jv inputs, jv outputs, char *err);

/* The input paths a job should see read-only: those that are plain
 * relative paths (a path that escapes fails the staging anyway).  New jv
 * array. */
jv nn_stage_readonly(jv inputs);

/*
 * For /alloc/start: take "inputs", "outputs" and "stage_timeout" (a
 * duration; default default_ms) from body (borrowed), check them, add the
 * input paths to the spec's "readonly" list (*spec, an object, replaced)
 * and record them in *opts (replaced) as inputs, outputs and
 * stage_timeout_ms.  -1 + err on a bad shape.
 */
int nn_stage_take(jv body, jv *spec, jv *opts, int64_t default_ms, char *err);
/* 1 when opts (borrowed) name inputs or outputs. */
int nn_stage_has(jv opts, const char *which);
/* Write DIR/stage.json from opts (borrowed) when it names inputs, outputs,
 * a restore or periodic checkpoints; 0 when there is nothing to write. */
int nn_stage_prepare(const char *dir, jv opts, char *err);

/* Read it: the object, or jv_null() when there is none; invalid + err
 * when it cannot be read. */
jv nn_stage_read(const char *dir, char *err);

/* Fork the child that fetches items (collect 0: inputs) or uploads them
 * (collect 1: outputs) inside base, each transfer bounded by timeout_ms
 * (0: none).  *fd gets the read end of its report pipe (non-blocking,
 * close-on-exec; the caller closes it and reaps the pid).  -1 + err. */
pid_t nn_stage_spawn(jv items, const char *base, int collect, int64_t timeout_ms, int *fd,
		     char *err);

#endif
