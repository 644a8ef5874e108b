/*
 * storage — moving a job's data in and out by URL, and snapshots of an
 * allocation's state directory as git commits.  One entry point dispatches
 * on the URL scheme to a provider (lib/storage/: file.c, http.c, git.c):
 *
 *   file:///abs/path                 a local file (copied, never linked)
 *   http://…  https://…              libcurl; GET to fetch (resumed with a
 *                                    Range request after a broken transfer),
 *                                    PUT to store
 *   s3://BUCKET/KEY                  any S3-compatible server, path-style
 *                                    requests signed with AWS SigV4 by libcurl
 *                                    (CURLOPT_AWS_SIGV4) plus an
 *                                    x-amz-content-sha256 header; files larger
 *                                    than part_size go up as a multipart upload
 *   git+https://HOST/REPO#REV        libgit2: clone, check out REV (a commit
 *   git+file:///abs/repo#REV         id, or a branch or tag name) detached, and
 *                                    verify HEAD is that commit.  As an output,
 *                                    git+file:///abs/repo#BRANCH commits the
 *                                    file or directory onto BRANCH (default
 *                                    "main"; the repository is created bare
 *                                    when missing).
 *
 * Every fetch writes to a temporary name beside its destination and renames
 * it into place only after the size limit and the checksum were checked, so
 * a failure (bad checksum, 404, 403, refused connection, a stalled or
 * truncated body, a missing git ref, an unsupported scheme, a path escaping
 * the base directory) leaves nothing behind.  Temporary failures (refused or
 * reset connections, stalls, truncated bodies, HTTP 5xx/408/429) are retried
 * with exponential backoff; permanent ones (4xx, checksum, size, bad URL) are
 * not.
 *
 * S3 settings, from struct nn_s3_config, else the environment:
 *   NUNET_S3_ENDPOINT      base URL of the server, e.g. http://127.0.0.1:8080
 *                          (default https://s3.REGION.amazonaws.com)
 *   AWS_REGION             signing region (else AWS_DEFAULT_REGION, else
 *                          us-east-1)
 *   AWS_ACCESS_KEY_ID      access key (may contain ':', as Swift's
 *                          "test:tester" does)
 *   AWS_SECRET_ACCESS_KEY  secret key
 *   AWS_SESSION_TOKEN      optional, sent as x-amz-security-token
 * The JSON form (config.json "s3" object) has the keys endpoint, region,
 * access_key_id, secret_access_key, session_token; the environment fills
 * what it leaves out.
 *
 * Errors follow util.h: -1 and a sentence in err.  The result's `code` then
 * holds the exit code a program should use (NN_EX_DATAERR for bad URLs,
 * checksums and sizes, NN_EX_UNAVAILABLE for refusals by the server such as
 * 403 and 404, NN_EX_TEMPFAIL when retries ran out on a temporary failure,
 * NN_EX_IOERR for local files, NN_EX_CONFIG for missing S3 credentials).
 */
#ifndef NN_STORAGE_H
#define NN_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include <jv.h>
#include "util.h"

/* A progress report.  phase is "start", "progress" (at most every
 * progress_interval_ms), "retry" (with delay_ms and error) or "done". */
struct nn_storage_event {
	const char *phase;
	const char *url;
	uint64_t bytes;		/* bytes moved so far */
	uint64_t total;		/* expected total, 0 when unknown */
	int attempt;		/* 1 for the first try */
	int64_t delay_ms;	/* retry: wait before the next attempt */
	const char *error;	/* retry: why the last attempt failed */
};

struct nn_s3_config {
	char *endpoint, *region, *access_key, *secret_key, *session_token;
};

struct nn_storage_opts {
	const char *sha256;		/* expected lowercase hex digest, or NULL */
	uint64_t max_size;		/* refuse more bytes than this; 0: no limit */
	int retries;			/* attempts after the first (default 3) */
	int64_t backoff_ms;		/* first retry delay, doubling (default 200) */
	int64_t backoff_max_ms;		/* cap on one delay (default 5000) */
	int64_t connect_timeout_ms;	/* per attempt (default 10000) */
	int64_t stall_ms;		/* fail an attempt that moves no byte for
					 * this long (default 30000) */
	int64_t timeout_ms;		/* whole call, retries included; 0: none */
	uint64_t part_size;		/* S3 multipart part (default 8 MiB, min 5 MiB
					 * on AWS; Swift accepts less) */
	const char *base;		/* when set, the local path must lie inside
					 * this directory (no "..", no symlink out) */
	const struct nn_s3_config *s3;	/* NULL: from the environment */
	const char *ca_file;		/* https: CA bundle to trust instead of
					 * the system's (NULL: system default) */
	const char *message;		/* git output: commit message */
	int no_sha256;			/* fetch: skip the checksum (result has
					 * no sha256; refused with sha256) */
	/* Called with each event; a nonzero return cancels the transfer. */
	int (*progress)(const struct nn_storage_event *ev, void *arg);
	void *progress_arg;
	int64_t progress_interval_ms;	/* default 250 */
};

struct nn_storage_result {
	uint64_t size;		/* bytes of the file fetched or stored */
	char sha256[65];	/* its SHA-256, lowercase hex ("" for git trees) */
	char commit[65];	/* git: the commit checked out or made */
	int attempts;		/* attempts made */
	int code;		/* on failure: the NN_EX_* code to exit with */
};

void nn_storage_opts_init(struct nn_storage_opts *o);

/* True when url has a scheme this library handles. */
int nn_storage_supported(const char *url);

/*
 * Fetch url to path (a file; for git URLs a directory).  path must not
 * exist as a directory for git; an existing file is replaced atomically.
 * With o->base, path is taken relative to base and must stay inside it.
 * r (may be NULL) receives size, sha256, commit, attempts and code.
 */
int nn_storage_fetch(const char *url, const char *path,
		     const struct nn_storage_opts *o, struct nn_storage_result *r,
		     char *err);

/* Store the file at path (for git outputs: a file or a directory) at url. */
int nn_storage_put(const char *path, const char *url,
		   const struct nn_storage_opts *o, struct nn_storage_result *r,
		   char *err);

/*
 * Staging for an allocation.  inputs (borrowed) is a JSON array of
 * {"url":…, "path":… (relative to base), "sha256":… (optional),
 * "max_size":… (optional, bytes)}; each is fetched inside base (o->base is
 * ignored).  All or nothing: on the first failure the inputs this call
 * already staged are removed, err names the input ("input 2 (URL): …"),
 * *code gets the exit code, and the result is jv_invalid().  On success,
 * an array of result objects (nn_storage_result_json), one per input.
 */
jv nn_storage_stage(jv inputs, const char *base, const struct nn_storage_opts *o,
		    int *code, char *err);

/* Collect outputs after exit: outputs (borrowed) is an array of
 * {"path":… (relative to base), "url":…}.  Every output is tried; the
 * result is an array of result objects, with "error" on those that failed;
 * *code is 0 when all went up, else the code of the first failure (err
 * names it). */
jv nn_storage_collect(jv outputs, const char *base, const struct nn_storage_opts *o,
		      int *code, char *err);

/* {"url":…, "path":…, "size":…, "sha256":…, "commit":…, "attempts":…}
 * (empty fields left out); a new jv. */
jv nn_storage_result_json(const struct nn_storage_result *r, const char *url,
			  const char *path);

/* base + "/" + rel, refusing absolute rel and any ".." component, and
 * checking that the deepest existing parent resolves inside base (so a
 * symlink cannot lead out).  Caller frees *out. */
int nn_storage_join(const char *base, const char *rel, char **out, char *err);

/* SHA-256 of a file as lowercase hex, and its size. */
int nn_storage_sha256_file(const char *path, char hex[65], uint64_t *size, char *err);

/* S3 settings: from the environment (see above), or from a JSON object
 * (borrows conf) with the environment filling the gaps.  Release wipes the
 * secret. */
int nn_s3_config_from_env(struct nn_s3_config *c, char *err);
int nn_s3_config_from_json(struct nn_s3_config *c, jv conf, char *err);
void nn_s3_config_release(struct nn_s3_config *c);
/* Create a bucket (conf NULL: from the environment). */
int nn_s3_create_bucket(const char *bucket, const struct nn_s3_config *conf, char *err);

/*
 * Snapshots: a state directory as a commit in a (bare) repository.
 *
 * commit: record dir (regular files with their executable bit, symlinks,
 * subdirectories; empty directories and special files are not kept) as a
 * commit on ref (e.g. "refs/heads/snapshots"; NULL for that default) whose
 * parent is the ref's previous commit; repo is created bare when missing.
 * Unchanged files are hashed but not rewritten; an unchanged directory
 * gives the previous commit again.  Files over 2 MiB are stored as a
 * subtree NAME.nunet-chunks of 1 MiB blobs (00000000, 00000001, …), so that
 * a change inside a large file moves only the chunks it touched;
 * nn_snapshot_restore joins them again.  out gets the commit id.
 */
int nn_snapshot_commit(const char *dir, const char *repo, const char *ref,
		       const char *message, char out[65], char *err);

/* Replace dir with the tree of commit (hex id or ref) from repo: written
 * beside dir first, then swapped in, so a failure leaves dir as it was. */
int nn_snapshot_restore(const char *repo, const char *commit, const char *dir,
			char *err);

/* The commits repo has at its refs (what a receiver tells a sender it
 * "has"), as a jv array of hex strings.  A missing repo has none: []. */
jv nn_snapshot_haves(const char *repo, char *err);

/* Write to packpath a pack holding what commit needs that is not reachable
 * from any of haves (jv array of hex ids, borrowed; ids repo does not know
 * are ignored).  *bytes gets the pack's size: what travels to the target. */
int nn_snapshot_pack(const char *repo, const char *commit, jv haves,
		     const char *packpath, uint64_t *bytes, char *err);

/* Receive a pack made by nn_snapshot_pack into repo (created bare when
 * missing), check that commit and everything it needs are now present,
 * and point ref (NULL: "refs/heads/snapshots") at it. */
int nn_snapshot_unpack(const char *repo, const char *packpath,
		       const char *commit, const char *ref, char *err);

/* Remove refs (jv array of names, borrowed) from repo, then keep in one
 * new pack what the remaining refs reach and delete the other packs and
 * the loose objects older than grace_s seconds (younger ones may belong to
 * a writer that has not set its ref yet).  *removed: refs removed;
 * *pruned: files deleted.  A missing repo: nothing to do. */
int nn_snapshot_drop(const char *repo, jv refs, int64_t grace_s, int *removed, int *pruned, char *err);

/* ---- between storage.c and its providers (not for other callers) ---- */

struct nn_xfer;	/* one running call: options, progress, counters */
struct nn_xfer {
	const struct nn_storage_opts *o;
	const char *url;
	struct nn_storage_result *r;
	int attempt;
	int64_t deadline;		/* monotonic ms, 0 none */
	int64_t last_event;
	uint64_t bytes;			/* last progress reported */
	int temporary;			/* the last failure may be retried */
	int code;			/* NN_EX_* of the last failure */
};
/* Report progress (rate-limited unless force); returns nonzero to cancel. */
int nn_xfer_progress(struct nn_xfer *x, uint64_t bytes, uint64_t total, int force);
/* Fail with code and temporary flag set on x; returns -1. */
int nn_xfer_fail(struct nn_xfer *x, int code, int temporary, char *err,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Providers: one attempt each; storage.c retries.  Fetchers write to tmp
 * (a file they may append to when resuming: *have bytes are already there
 * and already hashed into hash_state, a struct nn_sha256 from sha256.h;
 * see http.c). */

int nn_storage_file_fetch(struct nn_xfer *x, const char *src, const char *tmp, char *err);
int nn_storage_file_put(struct nn_xfer *x, const char *path, const char *dst, char *err);
int nn_storage_http_fetch(struct nn_xfer *x, const char *url, int fd, uint64_t *have,
			  void *hash_state, char *err);
int nn_storage_http_put(struct nn_xfer *x, const char *path, const char *url, char *err);
int nn_storage_s3_fetch(struct nn_xfer *x, const char *url, int fd, uint64_t *have,
			void *hash_state, char *err);
int nn_storage_s3_put(struct nn_xfer *x, const char *path, const char *url, char *err);
int nn_storage_git_fetch(struct nn_xfer *x, const char *url, const char *dir, char *err);
int nn_storage_git_put(struct nn_xfer *x, const char *path, const char *url, char *err);
/* rm -rf path (a file or a tree; symlinks are removed, not followed). */
int nn_storage_rmtree(const char *path);

#endif
