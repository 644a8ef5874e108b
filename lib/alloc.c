/*
 * alloc — the node's allocations.  /alloc/start checks a job completely
 * (spec, executor, command or image, limits, working directory) before it
 * creates anything, then makes the allocation directory, records the
 * allocation in node.db and spawns its shim (`nunet-run exec --shim`, in
 * its own session) without waiting for it: the shim says it is ready on a
 * pipe the loop watches, and the node then connects to its socket and
 * follows its heartbeats, health reports and result.  Results decide, by
 * the restart policy and its intensity, between a restart and a final
 * state; every state goes to the store and to DIR/state.json.  A node that
 * starts (after a crash or a clean stop) reconnects to the shim of every
 * allocation the store says is live, or, when the shim is gone, takes the
 * result it left in result.json or starts a shim that adopts the job.
 */
#include "alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <curl/curl.h>
#include "captoken.h"
#include "dlcurl.h"
#include "db.h"
#include "json.h"
#include "lines.h"
#include "log.h"
#include "node.h"
#include "onboard.h"
#include "sock.h"
#include "migrate.h"
#include "stage.h"
#include "storage.h"

extern char **environ;

#define SHIM_LINE_MAX (256 * 1024)
#define HEARTBEAT_MS 1000
#define HB_MISSES 5		/* heartbeats missed before a shim is killed */
#define MAX_RECOVER 3
#define DEFAULT_GRACE_MS 10000
#define READY_MS 120000		/* a shim not ready by then is killed */
#define CAP_TTL_MS 3600000	/* an allocation's token, renewed at half */

static const char *const schema[] = {
	"CREATE TABLE allocations (id TEXT PRIMARY KEY, parent TEXT, dir TEXT NOT NULL,"
	" executor TEXT NOT NULL, spec TEXT NOT NULL, opts TEXT NOT NULL, state TEXT NOT NULL,"
	" reason TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
	" run INTEGER NOT NULL DEFAULT 0, shim_pid INTEGER, status INTEGER, result TEXT,"
	" cancel INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX allocations_state ON allocations (state);"
	"CREATE TABLE alloc_states (id TEXT NOT NULL, ts INTEGER NOT NULL, state TEXT NOT NULL,"
	" reason TEXT);"
	"CREATE INDEX alloc_states_id ON alloc_states (id);"
	"CREATE TABLE alloc_links (parent TEXT NOT NULL, child TEXT NOT NULL,"
	" PRIMARY KEY (parent, child));"
	"CREATE TABLE alloc_restarts (id TEXT NOT NULL, ts INTEGER NOT NULL, run INTEGER NOT NULL,"
	" reason TEXT);"
	"CREATE TABLE alloc_results (id TEXT NOT NULL, run INTEGER NOT NULL, ts INTEGER NOT NULL,"
	" result TEXT NOT NULL, PRIMARY KEY (id, run));",
	/* 2: the allocation's own identity (its tokens are in cap_tokens) */
	"ALTER TABLE allocations ADD COLUMN did TEXT;"
	"CREATE INDEX allocations_did ON allocations (did);"
	/* the swarm module's table (attached first): revoked by audience */
	"CREATE INDEX IF NOT EXISTS cap_tokens_aud ON cap_tokens (aud);",
	/* 3: the prune at each end of an allocation reads the expired
	 * tokens only (it scanned every token and every allocation ever) */
	"CREATE INDEX IF NOT EXISTS cap_tokens_exp ON cap_tokens (exp);",
	/* 4: a hold outlives the node (/alloc/restart "hold") */
	"ALTER TABLE allocations ADD COLUMN held INTEGER NOT NULL DEFAULT 0;",
	NULL
};

struct amod;

struct alloc {
	struct amod *m;
	char *id, *dir, *parent;
	char state[16];
	jv spec;		/* the executor spec (object) */
	jv opts;		/* {"restart":…, "healthcheck":…} */
	struct nn_alloc_restart rp;
	int run;
	pid_t shim_pid;
	int ready_fd;
	int64_t spawned;	/* monotonic ms the shim was started */
	struct nn_watch *ready_w;
	struct nn_buf ready_buf;
	int adopting;
	int fd;			/* connection to the shim, or -1 */
	struct nn_watch *w;
	struct nn_lines in;
	int64_t last_msg;
	int respawn;		/* start a new run once the shim is gone */
	int cancel, cancel_wait, pending_sig;
	int64_t grace_ms;
	struct nn_watch *kill_timer, *delay_timer;
	int unhealthy;
	char health_msg[NN_ERRLEN];
	int sup;		/* its supervisor asked: 1 restart it, 2 fail it (/alloc/restart) */
	char sup_msg[256];
	int held;		/* its next run waits for its supervisor's release
				 * (/alloc/restart "hold", then "release";
				 * column held: set_held) */
	int recoveries;
	int swrites;		/* state.json written (by this node process) */
	char did[NN_DID_MAX];	/* its identity ("" when it has none) */
	int64_t cap_exp;	/* expiry of its latest token (ms), 0: none */
	struct alloc *next;
};

struct reap {
	pid_t pid;
	int pidfd;
	struct nn_watch *w;
	struct amod *m;
	struct reap *next;
};

struct amod {
	struct nn_node *n;
	struct alloc *list;
	struct reap *reaps;
	struct nn_watch *tick;
	struct nn_watch *wake;	/* one-shot: look at the waiting allocations */
	char *shim_path;
	int64_t hb_ms;
	int64_t cap_ttl_ms;	/* lifetime of an allocation's token */
	int64_t pruned;		/* monotonic ms of the last prune of expired tokens */
	int orphans;		/* a parent ended with live children */
	const struct nn_alloc_observer *obs[4];
	int nobs;
	/* a spare shim, loaded and waiting on its stdin for an allocation */
	int spare_on;		/* NUNET_ALLOC_SPARE=0 turns it off */
	pid_t spare_pid;	/* 0: none */
	int spare_ctl;		/* its stdin (write end) */
	int spare_ready;	/* its ready pipe (read end) */
	char *sdir;		/* a spare directory (sdir_make), or NULL */
	char sdid[NN_DID_MAX];	/* the identity whose key it holds */
	long sdirs;		/* spare directories made */
};

static struct amod *the_mod;

static void spawn(struct alloc *a, int adopt);
static void run_next(struct alloc *a);
static void wake_arm(struct amod *m);
static void spare_start(struct amod *m);
static void recover(struct alloc *a);
static void check_cancel_parent(struct amod *m, const char *parent);
static void cancel_tree(struct alloc *a, int64_t grace_ms);
static int live_children(struct amod *m, const char *id);

/* Tell the observers (data borrowed). */
static void notify(struct alloc *a, enum nn_alloc_event ev, jv data)
{
	for (int i = 0; i < a->m->nobs; i++)
		if (a->m->obs[i]->event)
			a->m->obs[i]->event(a->m->n, ev, a->id, a->opts, a->run, data, a->m->obs[i]->arg);
}

/* ---- policies and checks (pure) ---- */

/* o.key when o is an object holding key, else null (borrows o). */
static jv jget(jv o, const char *key)
{
	jv v;
	if (jv_get_kind(o) != JV_KIND_OBJECT)
		return jv_null();
	v = jv_object_get(jv_copy(o), jv_string(key));
	return jv_is_valid(v) ? v : (jv_free(v), jv_null());
}

int nn_alloc_state_final(const char *s)
{
	return !strcmp(s, "exited") || !strcmp(s, "killed") || !strcmp(s, "oom") ||
	       !strcmp(s, "failed");
}

const char *nn_alloc_policy_name(enum nn_alloc_policy p)
{
	return p == NN_RESTART_ALWAYS ? "always" : p == NN_RESTART_ON_FAILURE ? "on-failure" : "never";
}

static int parse_policy(const char *s, enum nn_alloc_policy *p, char *err)
{
	if (!strcmp(s, "never"))
		*p = NN_RESTART_NEVER;
	else if (!strcmp(s, "on-failure"))
		*p = NN_RESTART_ON_FAILURE;
	else if (!strcmp(s, "always"))
		*p = NN_RESTART_ALWAYS;
	else
		return nn_seterr(err, "restart: unknown policy '%.60s' (known: never, on-failure, always)", s);
	return 0;
}

static int get_duration(jv o, const char *key, int64_t *out, const char *what, char *err)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	int rc = 0;
	if (jv_get_kind(v) == JV_KIND_NULL || !jv_is_valid(v))
		;
	else if (jv_get_kind(v) != JV_KIND_STRING ||
		 nn_parse_duration_ms(jv_string_value(v), out) < 0 || *out < 0)
		rc = nn_seterr(err, "%s: %s: expected a duration such as \"30s\"", what, key);
	jv_free(v);
	return rc;
}

static int get_count(jv o, const char *key, int *out, int min, const char *what, char *err)
{
	jv v = jv_object_get(jv_copy(o), jv_string(key));
	int rc = 0;
	if (jv_get_kind(v) == JV_KIND_NULL || !jv_is_valid(v))
		;
	else if (jv_get_kind(v) != JV_KIND_NUMBER || !nn_json_is_int(jv_number_value(v)) ||
		 jv_number_value(v) < min || jv_number_value(v) > 1000000)
		rc = nn_seterr(err, "%s: %s: expected an integer from %d", what, key, min);
	else
		*out = (int)jv_number_value(v);
	jv_free(v);
	return rc;
}

static int only_keys(jv o, const char *const *keys, const char *what, const char *known, char *err)
{
	int rc = 0;
	jv_object_foreach(o, k, v) {
		int ok = 0;
		for (int i = 0; keys[i]; i++)
			ok |= !strcmp(keys[i], jv_string_value(k));
		if (!ok && rc == 0)
			rc = nn_seterr(err, "%s: unknown field '%.60s' (known: %s)", what,
				       jv_string_value(k), known);
		jv_free(k);
		jv_free(v);
	}
	return rc;
}

int nn_alloc_restart_parse(jv v, struct nn_alloc_restart *r, char *err)
{
	static const char *const keys[] = { "policy", "max", "period", "delay", NULL };
	r->policy = NN_RESTART_NEVER;
	r->max = 5;
	r->period_ms = 60000;
	r->delay_ms = 0;
	switch (jv_get_kind(v)) {
	case JV_KIND_NULL:
		return 0;
	case JV_KIND_STRING:
		return parse_policy(jv_string_value(v), &r->policy, err);
	case JV_KIND_OBJECT: {
		const char *p;
		if (only_keys(v, keys, "restart", "policy, max, period, delay", err) < 0)
			return -1;
		if (nn_json_get_str(v, "policy", &p, NULL) == 0) {
			if (parse_policy(p, &r->policy, err) < 0)
				return -1;
		} else if (nn_json_has(v, "policy")) {
			return nn_seterr(err, "restart: policy: expected a string");
		}
		if (get_count(v, "max", &r->max, 0, "restart", err) < 0 ||
		    get_duration(v, "period", &r->period_ms, "restart", err) < 0 ||
		    get_duration(v, "delay", &r->delay_ms, "restart", err) < 0)
			return -1;
		if (r->period_ms <= 0)
			return nn_seterr(err, "restart: period must be longer than 0");
		return 0;
	}
	default:
		return nn_seterr(err, "restart: expected a policy name or an object");
	}
}

int nn_alloc_logs_parse(jv v, struct nn_alloc_logs *lg, char *err)
{
	static const char *const keys[] = { "max", "keep", NULL };
	jv m;
	lg->max = 64 * 1024 * 1024;
	lg->keep = 1;
	if (jv_get_kind(v) == JV_KIND_NULL)
		return 0;
	if (jv_get_kind(v) != JV_KIND_OBJECT)
		return nn_seterr(err, "logs: expected an object {\"max\":SIZE,\"keep\":N}");
	if (only_keys(v, keys, "logs", "max, keep", err) < 0)
		return -1;
	m = jget(v, "max");
	if (jv_get_kind(m) == JV_KIND_STRING) {
		if (nn_parse_size(jv_string_value(m), &lg->max) < 0) {
			jv_free(m);
			return nn_seterr(err, "logs: max: expected a size such as \"64M\"");
		}
	} else if (jv_get_kind(m) == JV_KIND_NUMBER && nn_json_is_int(jv_number_value(m)) &&
		   jv_number_value(m) >= 0) {
		lg->max = (uint64_t)jv_number_value(m);
	} else if (jv_get_kind(m) != JV_KIND_NULL) {
		jv_free(m);
		return nn_seterr(err, "logs: max: expected a size such as \"64M\" (0: no cap)");
	}
	jv_free(m);
	if (get_count(v, "keep", &lg->keep, 1, "logs", err) < 0)
		return -1;
	if (lg->keep > 100)
		return nn_seterr(err, "logs: keep: at most 100");
	return 0;
}

void nn_alloc_health_release(struct nn_alloc_health *h)
{
	nn_exec_strv_free(h->argv);
	free(h->url);
	h->argv = NULL;
	h->url = NULL;
}

int nn_alloc_health_parse(jv v, struct nn_alloc_health *h, char *err)
{
	static const char *const keys[] = { "command", "http", "interval", "timeout", "retries",
					    "start_period", NULL };
	jv c;
	memset(h, 0, sizeof *h);
	h->interval_ms = 1000;
	h->timeout_ms = 1000;
	h->retries = 3;
	if (jv_get_kind(v) != JV_KIND_OBJECT)
		return nn_seterr(err, "healthcheck: expected an object");
	if (only_keys(v, keys, "healthcheck", "command, http, interval, timeout, retries, start_period",
		      err) < 0)
		return -1;
	c = jv_object_get(jv_copy(v), jv_string("command"));
	if (jv_get_kind(c) == JV_KIND_ARRAY) {
		int n = jv_array_length(jv_copy(c));
		if (n == 0) {
			jv_free(c);
			return nn_seterr(err, "healthcheck: command: expected a non-empty array of strings");
		}
		h->argv = nn_xcalloc((size_t)n + 1, sizeof *h->argv);
		jv_array_foreach(c, i, s) {
			if (jv_get_kind(s) != JV_KIND_STRING) {
				jv_free(s);
				jv_free(c);
				nn_alloc_health_release(h);
				return nn_seterr(err, "healthcheck: command: expected a non-empty array of strings");
			}
			h->argv[i] = nn_xstrdup(jv_string_value(s));
			jv_free(s);
		}
	} else if (jv_is_valid(c) && jv_get_kind(c) != JV_KIND_NULL) {
		jv_free(c);
		return nn_seterr(err, "healthcheck: command: expected a non-empty array of strings");
	}
	jv_free(c);
	c = jv_object_get(jv_copy(v), jv_string("http"));
	if (jv_get_kind(c) == JV_KIND_STRING) {
		const char *u = jv_string_value(c);
		if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) {
			jv_free(c);
			nn_alloc_health_release(h);
			return nn_seterr(err, "healthcheck: http: expected an http:// or https:// URL");
		}
		h->url = nn_xstrdup(u);
	} else if (jv_is_valid(c) && jv_get_kind(c) != JV_KIND_NULL) {
		jv_free(c);
		nn_alloc_health_release(h);
		return nn_seterr(err, "healthcheck: http: expected a URL");
	}
	jv_free(c);
	if (!h->argv == !h->url) {
		nn_alloc_health_release(h);
		return nn_seterr(err, "healthcheck: give exactly one of command and http");
	}
	if (get_duration(v, "interval", &h->interval_ms, "healthcheck", err) < 0 ||
	    get_duration(v, "timeout", &h->timeout_ms, "healthcheck", err) < 0 ||
	    get_duration(v, "start_period", &h->start_ms, "healthcheck", err) < 0 ||
	    get_count(v, "retries", &h->retries, 1, "healthcheck", err) < 0) {
		nn_alloc_health_release(h);
		return -1;
	}
	if (h->interval_ms < 10 || h->timeout_ms < 1) {
		nn_alloc_health_release(h);
		return nn_seterr(err, "healthcheck: interval must be at least 10ms and timeout positive");
	}
	return 0;
}

static size_t discard(char *p, size_t s, size_t n, void *arg)
{
	return s * n;
}

static int check_http(const struct nn_alloc_health *h, char *msg)
{
	CURL *c;
	long code = 0;
	CURLcode rc;
	if (nn_dlcurl_load(msg) < 0)
		return 0;
	c = curl_easy_init();
	if (!c) {
		snprintf(msg, NN_ERRLEN, "cannot make an HTTP client");
		return 0;
	}
	curl_easy_setopt(c, CURLOPT_URL, h->url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		snprintf(msg, NN_ERRLEN, "GET %.100s: %s", h->url, curl_easy_strerror(rc));
		return 0;
	}
	snprintf(msg, NN_ERRLEN, "GET %.100s: HTTP %ld", h->url, code);
	return code >= 200 && code < 400;
}

static int check_command(const struct nn_alloc_health *h, const struct nn_exec_spec *spec, char *msg)
{
	char e[NN_ERRLEN];
	char *path = nn_exec_resolve(h->argv[0], NULL, e);
	char **envp;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	pid_t pid;
	int rc, pidfd, status = 0;
	struct pollfd p;

	if (!path) {
		snprintf(msg, NN_ERRLEN, "%s", e);
		return 0;
	}
	envp = nn_exec_spec_envp(spec);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addchdir_np(&fa, spec->workdir);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&at, 0);
	rc = posix_spawn(&pid, path, &fa, &at, h->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	nn_exec_strv_free(envp);
	if (rc != 0) {
		snprintf(msg, NN_ERRLEN, "cannot run '%.80s': %s", path, strerror(rc));
		free(path);
		return 0;
	}
	free(path);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	p.fd = pidfd;
	p.events = POLLIN;
	if (pidfd < 0 || poll(&p, 1, (int)h->timeout_ms) != 1) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		if (pidfd >= 0)
			close(pidfd);
		snprintf(msg, NN_ERRLEN, "'%.80s' did not answer within %lld ms", h->argv[0],
			 (long long)h->timeout_ms);
		return 0;
	}
	close(pidfd);
	waitpid(pid, &status, 0);
	if (WIFEXITED(status)) {
		snprintf(msg, NN_ERRLEN, "'%.80s' exited with code %d", h->argv[0], WEXITSTATUS(status));
		return WEXITSTATUS(status) == 0;
	}
	snprintf(msg, NN_ERRLEN, "'%.80s' was killed by signal %d", h->argv[0], WTERMSIG(status));
	return 0;
}

int nn_alloc_health_check(const struct nn_alloc_health *h, const struct nn_exec_spec *spec, char *msg)
{
	return h->url ? check_http(h, msg) : check_command(h, spec, msg);
}

jv nn_alloc_state_read(const char *dir, char *err)
{
	char *path = nn_xasprintf("%s/%s", dir, NN_ALLOC_STATE);
	char *text = nn_read_file(path, 1024 * 1024, NULL, err);
	jv v;
	free(path);
	if (!text)
		return jv_invalid();
	v = nn_json_parse(text, strlen(text), err);
	free(text);
	return v;
}

int nn_alloc_state_status(jv st)
{
	int64_t s;
	if (nn_json_get_int(st, "status", &s, NULL) == 0 && s >= 0 && s < 256)
		return (int)s;
	return NN_EX_SOFTWARE;
}

/* ---- the store ---- */

static sqlite3 *dbh(struct amod *m)
{
	return nn_node_db(m->n)->h;
}

static sqlite3_stmt *prep(struct amod *m, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(dbh(m), sql, -1, &st, NULL) != SQLITE_OK) {
		nn_error("alloc: %s: %s", sql, sqlite3_errmsg(dbh(m)));
		return NULL;
	}
	return st;
}

static void step_done(struct amod *m, sqlite3_stmt *st)
{
	if (st && sqlite3_step(st) != SQLITE_DONE)
		nn_error("alloc: cannot update the store: %s", sqlite3_errmsg(dbh(m)));
	sqlite3_finalize(st);
}

/* Write DIR/state.json (temp + rename, no fsync: the store is what counts). */
/* The temporary file of state.json's nth writing: the first three are
 * made ahead with the directory (sdir_make); the others, made now. */
#define STATE_TMPS 3
static char *state_tmp(const char *dir, int n)
{
	return n > 0 && n < STATE_TMPS ? nn_xasprintf("%s/.%s.%d.tmp", dir, NN_ALLOC_STATE, n)
				       : nn_xasprintf("%s/.%s.tmp", dir, NN_ALLOC_STATE);
}

/* What the directory made ahead had and the state did not use. */
static void state_tmps_remove(const char *dir)
{
	for (int i = 1; i < STATE_TMPS; i++) {
		char *p = state_tmp(dir, i);
		unlink(p);
		free(p);
	}
}

static void write_state_file(struct alloc *a, jv o)
{
	char *s = nn_json_dump(o);
	char *tmp = state_tmp(a->dir, a->swrites++);
	char *path = nn_xasprintf("%s/%s", a->dir, NN_ALLOC_STATE);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		size_t len = strlen(s);
		s[len] = '\n';
		if (nn_write_all(fd, s, len + 1) < 0 || close(fd) < 0 || rename(tmp, path) < 0)
			nn_warn("alloc %s: cannot write %s: %s", a->id, path, strerror(errno));
		s[len] = '\0';
	}
	free(s);
	free(tmp);
	free(path);
}

/* One transaction for the statements until tx_end(), unless one is open
 * already: 1 when this call opened it.  (Nothing that may open its own,
 * such as events or observers, runs in between.) */
static int tx_begin(struct amod *m)
{
	char e[NN_ERRLEN];
	if (!sqlite3_get_autocommit(dbh(m)))
		return 0;
	if (nn_db_exec(nn_node_db(m->n), "BEGIN IMMEDIATE", e) < 0) {
		nn_error("alloc: %s", e);
		return 0;	/* each statement commits on its own */
	}
	return 1;
}

static void tx_end(struct amod *m, int began)
{
	char e[NN_ERRLEN];
	if (began && nn_db_exec(nn_node_db(m->n), "COMMIT", e) < 0) {
		nn_error("alloc: %s", e);
		nn_db_exec(nn_node_db(m->n), "ROLLBACK", NULL);
	}
}

static void cred_revoke(struct amod *m, const char *did);
static void cred_files_remove(const char *dir);
static void cred_prune(struct amod *m);

/* Record a state: store and history (one commit, after DIR/state.json),
 * event.  result is consumed (null when none); status < 0: none.
 * ending: the final state, after the revocation of the allocation's
 * tokens is committed and their files are removed (whoever sees the end
 * finds them revoked and gone). */
static void record_state(struct alloc *a, const char *state, const char *reason, jv result,
			 int status, int ending)
{
	struct amod *m = a->m;
	int64_t now = nn_now_ms();
	sqlite3_stmt *st;
	char *rtext = jv_get_kind(result) == JV_KIND_OBJECT ? nn_json_dump(result) : NULL;
	int began;
	jv o;

	snprintf(a->state, sizeof a->state, "%s", state);
	if (ending) {
		began = tx_begin(m);
		cred_revoke(m, a->did);
		cred_prune(m);
		tx_end(m, began);
		a->cap_exp = 0;
		cred_files_remove(a->dir);
	}
	began = tx_begin(m);
	st = prep(m, "UPDATE allocations SET state = ?2, reason = ?3, updated = ?4, run = ?5,"
		  " shim_pid = ?6, status = coalesce(?7, status), result = coalesce(?8, result)"
		  " WHERE id = ?1");
	if (st) {
		sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
		if (reason)
			sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_int(st, 5, a->run);
		sqlite3_bind_int(st, 6, (int)a->shim_pid);
		if (status >= 0)
			sqlite3_bind_int(st, 7, status);
		if (rtext)
			sqlite3_bind_text(st, 8, rtext, -1, SQLITE_STATIC);
	}
	step_done(m, st);
	st = prep(m, "INSERT INTO alloc_states (id, ts, state, reason) VALUES (?, ?, ?, ?)");
	if (st) {
		sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
		if (reason)
			sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
	}
	step_done(m, st);
	free(rtext);

	o = jv_object_set(jv_object(), jv_string("id"), jv_string(a->id));
	o = jv_object_set(o, jv_string("state"), jv_string(state));
	o = jv_object_set(o, jv_string("reason"), reason ? jv_string(reason) : jv_null());
	o = jv_object_set(o, jv_string("run"), jv_number(a->run));
	o = jv_object_set(o, jv_string("status"), status >= 0 ? jv_number(status) : jv_null());
	o = jv_object_set(o, jv_string("ts"), jv_number((double)now));
	o = jv_object_set(o, jv_string("result"), result);
	/* the file before the commit: a node killed in between finds the
	 * earlier state in its store and takes up the allocation again (a
	 * commit first could leave a final store and a file that never
	 * ends, which `nunet-run wait` watches for ever) */
	write_state_file(a, o);
	tx_end(m, began);
	nn_node_event(m->n, "alloc.state", o);
	/* what waits for this one (its "after") may start or fail now */
	if (strcmp(state, "waiting") != 0)
		wake_arm(m);
}

static void signal_job(struct alloc *a, int sig);

/* Hold a's next runs for its supervisor, or not: kept in the store, so a
 * node started again does not start what was held. */
static void set_held(struct alloc *a, int held)
{
	sqlite3_stmt *st = prep(a->m, "UPDATE allocations SET held = ? WHERE id = ?");
	a->held = held;
	if (st) {
		sqlite3_bind_int(st, 1, held);
		sqlite3_bind_text(st, 2, a->id, -1, SQLITE_STATIC);
	}
	step_done(a->m, st);
}

static void set_state(struct alloc *a, const char *state, const char *reason, jv result, int status)
{
	record_state(a, state, reason, result, status, 0);
	/* held while it was starting: this run ends at once, for its
	 * supervisor, and the next one waits for the release */
	if (a->held && !a->cancel && !strcmp(state, "running")) {
		if (!a->sup) {
			a->sup = 1;
			snprintf(a->sup_msg, sizeof a->sup_msg, "held while starting");
		}
		signal_job(a, SIGKILL);
	}
}

/* ---- credentials: an identity and a token for each allocation ---- */

/* Write text and a newline to path, mode 0600: a new file (or the empty
 * one a spare directory has), or (replace) through a temporary file and a
 * rename, so a reader never sees half of it.  No fsync: a node that
 * starts issues a new token anyway, and file creations are what an
 * allocation's start costs most here. */
static int put_file(const char *path, const char *text, int replace, char *err)
{
	char *tmp = replace ? nn_xasprintf("%s.tmp", path) : nn_xstrdup(path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC | O_TRUNC, 0600);
	int bad = fd < 0 || nn_write_all(fd, text, strlen(text)) < 0 || nn_write_all(fd, "\n", 1) < 0;
	if (fd >= 0 && close(fd) < 0)
		bad = 1;
	if (!bad && replace && rename(tmp, path) < 0)
		bad = 1;
	if (bad) {
		nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return bad ? -1 : 0;
}

/*
 * Issue a token from the node's key to the identity did for /alloc and
 * /deploy on this node, and /public/deploy sent on through it (reading its
 * deployments' output from their providers), record it with the tokens the node issued (so the
 * end of the allocation revokes it), then write it to DIR/cred/cap.
 * *exp gets its expiry.
 */
static int cred_token(struct amod *m, const char *dir, const char *did, int64_t *exp, int renew,
		      char *err)
{
	jv caps = jv_array_append(jv_array_append(jv_array(), jv_string("/alloc")), jv_string("/deploy"));
	caps = jv_array_append(caps, jv_string("/public/deploy"));
	int64_t e = nn_now_ms() + m->cap_ttl_ms;
	jv tok = nn_captoken_make(nn_node_key(m->n), did, jv_copy(caps), e, 0, jv_null(), err);
	char *text, *ctext, *path;
	sqlite3_stmt *st;
	int rc = -1;

	if (!jv_is_valid(tok)) {
		jv_free(caps);
		return -1;
	}
	text = nn_json_dump(tok);
	ctext = nn_json_dump(caps);
	st = prep(m, "INSERT OR IGNORE INTO cap_tokens (nonce, iss, aud, cap, exp, depth, token, created)"
		  " VALUES (?, ?, ?, ?, ?, 0, ?, ?)");
	if (!st) {
		nn_seterr(err, "cannot record the token: %s", sqlite3_errmsg(dbh(m)));
	} else {
		sqlite3_bind_text(st, 1, nn_env_str(tok, "nonce"), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, nn_node_did(m->n), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, did, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, ctext, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, e);
		sqlite3_bind_text(st, 6, text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, nn_now_ms());
		if (sqlite3_step(st) != SQLITE_DONE)
			nn_seterr(err, "cannot record the token: %s", sqlite3_errmsg(dbh(m)));
		else
			rc = 0;
		sqlite3_finalize(st);
	}
	if (rc == 0) {
		path = nn_xasprintf("%s/%s", dir, NN_ALLOC_CAP);
		rc = put_file(path, text, renew, err);
		free(path);
	}
	if (rc == 0)
		*exp = e;
	free(text);
	free(ctext);
	jv_free(tok);
	jv_free(caps);
	return rc;
}

/* Make a new allocation's identity in DIR/cred (0700): the key (0600) and
 * a first token.  did gets the identity (also when a later step fails, so
 * that what was issued can be revoked). */
static int cred_make(struct amod *m, const char *dir, char did[NN_DID_MAX], int64_t *exp, char *err)
{
	char *path = nn_xasprintf("%s/%s", dir, NN_ALLOC_CRED);
	struct nn_key k;
	int rc;

	did[0] = '\0';
	if (mkdir(path, 0700) < 0) {
		nn_seterr(err, "cannot make '%s': %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	nn_key_generate(&k);
	path = nn_xasprintf("%s/%s", dir, NN_ALLOC_KEY);
	rc = nn_key_save_nosync(&k, path, err);
	free(path);
	if (rc == 0)
		snprintf(did, NN_DID_MAX, "%s", k.did);
	nn_key_clear(&k);
	return rc < 0 ? -1 : cred_token(m, dir, did, exp, 0, err);
}

/* Revoke every token the identity did was given. */
static void cred_revoke(struct amod *m, const char *did)
{
	sqlite3_stmt *st;
	if (did[0]) {
		st = prep(m, "INSERT OR IGNORE INTO cap_revoked (nonce, revoked)"
			  " SELECT nonce, ? FROM cap_tokens WHERE aud = ?");
		if (st) {
			sqlite3_bind_int64(st, 1, nn_now_ms());
			sqlite3_bind_text(st, 2, did, -1, SQLITE_STATIC);
		}
		step_done(m, st);
	}
}

/* Remove DIR/cred. */
static void cred_files_remove(const char *dir)
{
	char *p = nn_xasprintf("%s/%s", dir, NN_ALLOC_KEY);
	unlink(p);
	free(p);
	p = nn_xasprintf("%s/%s", dir, NN_ALLOC_CAP);
	unlink(p);
	free(p);
	p = nn_xasprintf("%s/%s", dir, NN_ALLOC_CRED);
	rmdir(p);
	free(p);
}

/* Revoke every token the identity did was given; remove DIR/cred. */
static void cred_remove(struct amod *m, const char *dir, const char *did)
{
	cred_revoke(m, did);
	cred_files_remove(dir);
}

/*
 * Forget the tokens given to allocations that have expired, and their
 * revocations: an expired token is refused for that alone.  A revoked
 * token that has not expired keeps its revocation (a copy of it must stay
 * worthless) until it expires; pruned at each end of an allocation, and
 * from the tick at most every half token lifetime (at most a minute).
 */
static void cred_prune(struct amod *m)
{
	int64_t now = nn_now_ms();
	sqlite3_stmt *st;
	m->pruned = nn_mono_ms();
	st = prep(m, "DELETE FROM cap_revoked WHERE nonce IN (SELECT t.nonce FROM cap_tokens t"
		  " JOIN allocations a ON a.did = t.aud WHERE t.exp <= ?)");
	if (st)
		sqlite3_bind_int64(st, 1, now);
	step_done(m, st);
	st = prep(m, "DELETE FROM cap_tokens WHERE exp <= ? AND EXISTS (SELECT 1 FROM allocations a"
		  " WHERE a.did = cap_tokens.aud)");
	if (st)
		sqlite3_bind_int64(st, 1, now);
	step_done(m, st);
}

/* Where a container finds the control socket and DIR/cred (read-only). */
#define CONTAINER_SOCK "/run/nunet/node.sock"
#define CONTAINER_CRED "/run/nunet/cred"

/*
 * The environment that hands the credentials to the job, added to the
 * spec's env (specj, consumed and returned): paths as the job sees them.
 * A native job shares the host's files; a container gets the socket and
 * DIR/cred bind-mounted read-only (options.binds).
 */
static jv cred_env(struct amod *m, const struct nn_exec_spec *spec, jv specj)
{
	jv env = jv_object_get(jv_copy(specj), jv_string("env"));
	char *sock = nn_home_file(nn_node_home(m->n), "node.sock");
	char *cred = nn_xasprintf("%s/%s", spec->dir, NN_ALLOC_CRED);
	char *key, *cap;
	if (jv_get_kind(env) != JV_KIND_OBJECT) {
		jv_free(env);
		env = jv_object();
	}
	if (!strcmp(spec->executor, "docker")) {
		jv o = jv_object_get(jv_copy(specj), jv_string("options"));
		jv b = jv_get_kind(o) == JV_KIND_OBJECT ? jv_object_get(jv_copy(o), jv_string("binds")) : jv_null();
		char *sb = nn_xasprintf("%s:" CONTAINER_SOCK ":ro", sock);
		char *cb = nn_xasprintf("%s:" CONTAINER_CRED ":ro", cred);
		if (jv_get_kind(o) != JV_KIND_OBJECT) {
			jv_free(o);
			o = jv_object();
		}
		if (jv_get_kind(b) != JV_KIND_ARRAY) {
			jv_free(b);
			b = jv_array();
		}
		b = jv_array_append(jv_array_append(b, jv_string(sb)), jv_string(cb));
		specj = jv_object_set(specj, jv_string("options"), jv_object_set(o, jv_string("binds"), b));
		free(sb);
		free(cb);
		free(sock);
		free(cred);
		sock = nn_xstrdup(CONTAINER_SOCK);
		cred = nn_xstrdup(CONTAINER_CRED);
	}
	key = nn_xasprintf("%s/key", cred);
	cap = nn_xasprintf("%s/cap", cred);
	env = jv_object_set(env, jv_string("NUNET_SOCKET"), jv_string(sock));
	env = jv_object_set(env, jv_string("NUNET_KEY"), jv_string(key));
	env = jv_object_set(env, jv_string("NUNET_CAP"), jv_string(cap));
	env = jv_object_set(env, jv_string("NUNET_ALLOC"), jv_string(spec->id));
	free(sock);
	free(cred);
	free(key);
	free(cap);
	return jv_object_set(specj, jv_string("env"), env);
}

/* ---- allocations in memory ---- */

static struct alloc *find(struct amod *m, const char *id)
{
	for (struct alloc *a = m->list; a; a = a->next)
		if (!strcmp(a->id, id))
			return a;
	return NULL;
}

static void conn_close(struct alloc *a)
{
	if (a->w)
		nn_loop_remove(nn_node_loop(a->m->n), a->w);
	if (a->fd >= 0) {
		close(a->fd);
		nn_lines_release(&a->in);
	}
	a->w = NULL;
	a->fd = -1;
}

static void ready_close(struct alloc *a)
{
	if (a->ready_w)
		nn_loop_remove(nn_node_loop(a->m->n), a->ready_w);
	if (a->ready_fd >= 0)
		close(a->ready_fd);
	a->ready_w = NULL;
	a->ready_fd = -1;
	nn_buf_release(&a->ready_buf);
}

static void alloc_free(struct alloc *a)
{
	struct nn_loop *l = nn_node_loop(a->m->n);
	conn_close(a);
	ready_close(a);
	if (a->kill_timer)
		nn_loop_remove(l, a->kill_timer);
	if (a->delay_timer)
		nn_loop_remove(l, a->delay_timer);
	jv_free(a->spec);
	jv_free(a->opts);
	free(a->id);
	free(a->dir);
	free(a->parent);
	free(a);
}

static void alloc_drop(struct alloc *a)
{
	struct alloc **p = &a->m->list;
	while (*p && *p != a)
		p = &(*p)->next;
	if (*p)
		*p = a->next;
	alloc_free(a);
}

static struct alloc *alloc_new(struct amod *m, const char *id, const char *dir, const char *parent,
			       jv spec, jv opts)
{
	struct alloc *a = nn_xcalloc(1, sizeof *a);
	jv r = jget(opts, "restart");
	a->m = m;
	a->id = nn_xstrdup(id);
	a->dir = nn_xstrdup(dir);
	a->parent = parent ? nn_xstrdup(parent) : NULL;
	a->spec = spec;
	a->opts = opts;
	a->fd = a->ready_fd = -1;
	a->grace_ms = DEFAULT_GRACE_MS;
	if (nn_alloc_restart_parse(r, &a->rp, NULL) < 0)
		nn_alloc_restart_parse(jv_null(), &a->rp, NULL);
	jv_free(r);
	snprintf(a->state, sizeof a->state, "pending");
	a->next = m->list;
	m->list = a;
	return a;
}

/* A fresh token for a live allocation: a new run, a start of the node,
 * or half of the last one's time gone.  The older ones stay valid until
 * they expire (a program may have read one just now). */
static void cred_renew(struct alloc *a)
{
	char e[NN_ERRLEN];
	if (!a->did[0] || nn_alloc_state_final(a->state))
		return;
	if (cred_token(a->m, a->dir, a->did, &a->cap_exp, 1, e) < 0)
		nn_warn("alloc %s: cannot renew its token: %s", a->id, e);
}

static void shim_send(struct alloc *a, jv msg)
{
	char *s = nn_json_dump(msg);
	size_t len = strlen(s);
	jv_free(msg);
	if (a->fd >= 0) {
		s[len] = '\n';
		if (send(a->fd, s, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)(len + 1))
			nn_warn("alloc %s: cannot talk to the shim: %s", a->id, strerror(errno));
	}
	free(s);
}

static void signal_job(struct alloc *a, int sig)
{
	if (a->fd < 0) {
		a->pending_sig = sig;
		return;
	}
	shim_send(a, jv_object_set(jv_object_set(jv_object(), jv_string("t"), jv_string("signal")),
				   jv_string("signal"), jv_number(sig)));
}

/* ---- reaping the shims we spawned ---- */

static void reap_free(struct amod *m, struct reap *r)
{
	struct reap **p = &m->reaps;
	while (*p && *p != r)
		p = &(*p)->next;
	if (*p)
		*p = r->next;
	nn_loop_remove(nn_node_loop(m->n), r->w);
	close(r->pidfd);
	free(r);
}

static void on_reap(struct nn_loop *l, int fd, uint32_t ev, void *arg)
{
	struct reap *r = arg;
	if (waitpid(r->pid, NULL, WNOHANG) != 0)
		reap_free(r->m, r);
}

static void reap_track(struct amod *m, pid_t pid)
{
	struct reap *r;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return;
	r = nn_xcalloc(1, sizeof *r);
	r->pid = pid;
	r->pidfd = fd;
	r->m = m;
	r->w = nn_loop_fd(nn_node_loop(m->n), fd, EPOLLIN, on_reap, r, NULL);
	if (!r->w) {
		close(fd);
		free(r);
		return;
	}
	r->next = m->reaps;
	m->reaps = r;
}

/* ---- the end of a run ---- */

static void tell_parent(struct alloc *a, const char *state, const char *reason, int status)
{
	struct alloc *p;
	char *path, *line;
	jv o;
	int fd;

	if (!a->parent)
		return;
	o = jv_object_set(jv_object(), jv_string("child"), jv_string(a->id));
	o = jv_object_set(o, jv_string("parent"), jv_string(a->parent));
	o = jv_object_set(o, jv_string("state"), jv_string(state));
	o = jv_object_set(o, jv_string("reason"), reason ? jv_string(reason) : jv_null());
	o = jv_object_set(o, jv_string("status"), status >= 0 ? jv_number(status) : jv_null());
	o = jv_object_set(o, jv_string("ts"), jv_number((double)nn_now_ms()));
	line = nn_json_dump(o);
	p = find(a->m, a->parent);
	if (p) {
		path = nn_xasprintf("%s/%s", p->dir, NN_ALLOC_CHILDREN);
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			size_t len = strlen(line);
			line[len] = '\n';
			nn_write_all(fd, line, len + 1);
			line[len] = '\0';
			close(fd);
		}
		free(path);
	}
	free(line);
	nn_node_event(a->m->n, "alloc.child_failed", o);
}

static void finish(struct alloc *a, const char *state, const char *reason, jv result, int status)
{
	char *parent = a->parent ? nn_xstrdup(a->parent) : NULL;
	if (a->kill_timer) {
		nn_loop_remove(nn_node_loop(a->m->n), a->kill_timer);
		a->kill_timer = NULL;
	}
	a->respawn = 0;
	if (a->m->nobs)
		notify(a, NN_ALLOC_ENDED, result);
	/* revoked before the final state is out: whoever sees the end
	 * (a client watching state.json) finds its tokens revoked */
	record_state(a, state, reason, result, status, 1);
	state_tmps_remove(a->dir);
	if (live_children(a->m, a->id) > 0)
		a->m->orphans = 1;	/* the next tick tears them down */
	{
		char e[NN_ERRLEN];
		if (nn_onboard_release(nn_node_db(a->m->n), a->id, e) < 0)
			nn_warn("alloc %s: cannot release its resources: %s", a->id, e);
	}
	if (strcmp(state, "exited") || status != 0)
		tell_parent(a, state, reason, status);
	if (parent) {
		check_cancel_parent(a->m, parent);
		free(parent);
	}
	/* now, not at the next start: the client that saw the end leaves,
	 * and the spare loads meanwhile */
	spare_start(a->m);
}

static int result_status(jv res, const char **state)
{
	int64_t code = -1, sig = 0;
	jv oom = jget(res, "state");
	const char *s = jv_get_kind(oom) == JV_KIND_STRING ? jv_string_value(oom) : "lost";
	int status;
	nn_json_get_int(res, "code", &code, NULL);
	nn_json_get_int(res, "signal", &sig, NULL);
	if (!strcmp(s, "oom")) {
		*state = "oom";
		status = 137;
	} else if (!strcmp(s, "killed") || sig > 0) {
		*state = "killed";
		status = 128 + (int)sig;
	} else if (!strcmp(s, "exited") && code >= 0) {
		*state = "exited";
		status = (int)code;
	} else {
		*state = "failed";
		status = -1;
	}
	jv_free(oom);
	return status;
}

static int restarts_in_window(struct alloc *a)
{
	sqlite3_stmt *st = prep(a->m, "SELECT count(*) FROM alloc_restarts WHERE id = ? AND ts > ?");
	int n = 0;
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, nn_now_ms() - a->rp.period_ms);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* A job that never started because its inputs could not be staged: no
 * restart would fetch them better. */
static int staging_failed(jv res)
{
	jv step = jget(res, "step");
	int r = jv_get_kind(step) == JV_KIND_STRING && !strcmp(jv_string_value(step), "staging");
	jv_free(step);
	return r;
}

/* A run's result (consumed): ack it, then restart or finish. */
static void on_result(struct alloc *a, int run, jv res)
{
	struct amod *m = a->m;
	sqlite3_stmt *st;
	char *text = nn_json_dump(res);
	const char *state;
	const char *why;
	char reason[NN_ERRLEN * 2];
	int status, fresh, failed;

	st = prep(m, "INSERT OR IGNORE INTO alloc_results (id, run, ts, result) VALUES (?, ?, ?, ?)");
	fresh = 0;
	if (st) {
		sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, run);
		sqlite3_bind_int64(st, 3, nn_now_ms());
		sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
		fresh = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(dbh(m)) > 0;
		sqlite3_finalize(st);
	}
	free(text);
	shim_send(a, jv_object_set(jv_object_set(jv_object(), jv_string("t"), jv_string("ack")),
				   jv_string("run"), jv_number(run)));
	/* a result seen before is decided on again only when its run did
	 * not end: a node killed after recording it, before deciding */
	if (run != a->run || nn_alloc_state_final(a->state) ||
	    (!fresh && !strcmp(a->state, "restarting"))) {
		jv_free(res);
		return;
	}
	notify(a, NN_ALLOC_STATS, res);
	status = result_status(res, &state);
	{
		jv r = jget(res, "reason");
		snprintf(reason, sizeof reason, "%s",
			 jv_get_kind(r) == JV_KIND_STRING ? jv_string_value(r) : "no reason given");
		jv_free(r);
	}
	if (a->unhealthy) {
		char *tmp = nn_xasprintf("unhealthy (%.200s): %.200s", a->health_msg, reason);
		snprintf(reason, sizeof reason, "%s", tmp);
		free(tmp);
	}
	failed = status != 0 || a->unhealthy;
	a->unhealthy = 0;
	if (a->sup && !a->cancel) {
		/* a supervisor elsewhere (the orchestrator) decided: a restart
		 * of its own is not the job's failure and is not counted here;
		 * an escalation is a failure its own policy judges */
		char *tmp = nn_xasprintf("%s: %.200s", a->sup == 1 ? "supervisor" : "escalated", a->sup_msg);
		int restart = a->sup == 1;
		snprintf(reason, sizeof reason, "%s", tmp);
		free(tmp);
		a->sup = 0;
		failed = 1;
		if (restart) {
			set_state(a, "restarting", reason, res, status);
			a->respawn = 1;
			return;
		}
	}
	if (a->cancel || a->rp.policy == NN_RESTART_NEVER || staging_failed(res) ||
	    (a->rp.policy == NN_RESTART_ON_FAILURE && !failed)) {
		finish(a, state, reason, res, status);
		return;
	}
	if (restarts_in_window(a) >= a->rp.max) {
		char r2[sizeof reason + 128];
		snprintf(r2, sizeof r2, "restart intensity reached (%d restarts in %lld ms); last run: %s",
			 a->rp.max, (long long)a->rp.period_ms, reason);
		finish(a, "failed", r2, res, status);
		return;
	}
	st = prep(m, "INSERT INTO alloc_restarts (id, ts, run, reason) VALUES (?, ?, ?, ?)");
	if (st) {
		sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, nn_now_ms());
		sqlite3_bind_int(st, 3, run);
		sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
	}
	step_done(m, st);
	why = reason;
	set_state(a, "restarting", why, res, status);
	a->respawn = 1;		/* once the shim is gone: see recover() */
}

/* ---- the shim's connection ---- */

/* Staging reports (stage.h): progress becomes alloc.stage events; the end
 * of staging and the start of the job move the state on. */
static void on_stage_msg(struct alloc *a, const char *t, jv msg)
{
	if (!strcmp(t, "stage")) {
		jv ev = jv_object_set(jv_object_delete(jv_copy(msg), jv_string("t")), jv_string("id"),
				      jv_string(a->id));
		nn_node_event(a->m->n, "alloc.stage", ev);
	} else if (!strcmp(t, "staged") && !strcmp(a->state, "staging")) {
		set_state(a, "starting", NULL, jv_null(), -1);
	} else if (!strcmp(t, "started") &&
		   (!strcmp(a->state, "staging") || !strcmp(a->state, "starting"))) {
		set_state(a, "running", NULL, jv_null(), -1);
	}
}

static void on_msg(struct alloc *a, jv msg)
{
	const char *t;
	if (nn_json_get_str(msg, "t", &t, NULL) < 0)
		return;
	a->last_msg = nn_mono_ms();
	if (!strcmp(t, "hello")) {
		int64_t pid;
		if (nn_json_get_int(msg, "pid", &pid, NULL) == 0)
			a->shim_pid = (pid_t)pid;
		/* a shim still staging, or whose staging failed, has no job yet */
		jv stg = jget(msg, "staging"), started = jget(msg, "started");
		if ((!strcmp(a->state, "starting") || !strcmp(a->state, "pending") ||
		     !strcmp(a->state, "staging")) && jv_get_kind(stg) != JV_KIND_TRUE &&
		    jv_get_kind(started) != JV_KIND_FALSE)
			set_state(a, "running", NULL, jv_null(), -1);
		jv_free(stg);
		jv_free(started);
		if (a->pending_sig) {
			int s = a->pending_sig;
			a->pending_sig = 0;
			signal_job(a, s);
		}
	} else if (!strcmp(t, "stage") || !strcmp(t, "staged") || !strcmp(t, "started")) {
		on_stage_msg(a, t, msg);
	} else if (!strcmp(t, "hb")) {
		if (a->m->nobs && nn_json_has(msg, "stats")) {
			jv st = jv_object_get(jv_copy(msg), jv_string("stats"));
			notify(a, NN_ALLOC_STATS, st);
			jv_free(st);
		}
	} else if (!strcmp(t, "result")) {
		int64_t run = a->run;
		nn_json_get_int(msg, "run", &run, NULL);
		on_result(a, (int)run, jv_object_get(jv_copy(msg), jv_string("result")));
	} else if (!strcmp(t, "health")) {
		jv ok = jv_object_get(jv_copy(msg), jv_string("ok"));
		int64_t fails = 0;
		const char *hm = "";
		jv hc = jget(a->opts, "healthcheck");
		struct nn_alloc_health h;
		nn_json_get_int(msg, "failures", &fails, NULL);
		nn_json_get_str(msg, "message", &hm, NULL);
		if (jv_get_kind(ok) == JV_KIND_FALSE && !a->unhealthy && !a->cancel &&
		    nn_alloc_health_parse(hc, &h, NULL) == 0) {
			if (fails >= h.retries) {
				a->unhealthy = 1;
				snprintf(a->health_msg, sizeof a->health_msg, "%s", hm);
				nn_warn("alloc %s: unhealthy after %lld failed checks: %s", a->id,
					(long long)fails, hm);
				nn_node_event(a->m->n, "alloc.unhealthy",
					      jv_object_set(jv_object_set(jv_object(), jv_string("id"),
									  jv_string(a->id)),
							    jv_string("message"), jv_string(hm)));
				signal_job(a, SIGKILL);
			}
			nn_alloc_health_release(&h);
		}
		jv_free(hc);
		jv_free(ok);
	}
}

static void on_shim(struct nn_loop *l, int fd, uint32_t events, void *arg)
{
	struct alloc *a = arg;
	char err[NN_ERRLEN];
	int eof = 0, code;
	eof = nn_lines_drain_fd(&a->in, fd, 16);
	for (;;) {
		jv v;
		int r = nn_jsonl_next(&a->in, &v, &code, err);
		if (r == NN_JSONL_NONE)
			break;
		if (r == NN_JSONL_ERROR) {
			nn_warn("alloc %s: shim: %s", a->id, err);
			continue;
		}
		on_msg(a, v);
		jv_free(v);
		if (a->fd < 0)
			return;
	}
	if (!eof)
		return;
	conn_close(a);
	if (nn_alloc_state_final(a->state) && !a->respawn) {
		alloc_drop(a);
		return;
	}
	recover(a);
}

static int shim_connect(struct alloc *a, char *err)
{
	char *path = nn_xasprintf("%s/%s", a->dir, NN_ALLOC_SOCK);
	int fd = nn_sock_connect(path, err);
	free(path);
	if (fd < 0)
		return -1;
	nn_sock_nonblock(fd);
	a->fd = fd;
	nn_lines_init(&a->in, SHIM_LINE_MAX);
	a->w = nn_loop_fd(nn_node_loop(a->m->n), fd, EPOLLIN | EPOLLRDHUP, on_shim, a, err);
	if (!a->w) {
		close(fd);
		nn_lines_release(&a->in);
		a->fd = -1;
		return -1;
	}
	a->last_msg = nn_mono_ms();
	return 0;
}

/* ---- starting shims ---- */

static void on_ready(struct nn_loop *l, int fd, uint32_t events, void *arg)
{
	struct alloc *a = arg;
	char buf[4096], err[NN_ERRLEN];
	ssize_t r;
	char *nl;
	jv v;

	for (;;) {
		r = read(fd, buf, sizeof buf);
		if (r > 0) {
			if (nn_buf_add(&a->ready_buf, buf, (size_t)r) < 0)
				break;
			if (memchr(buf, '\n', (size_t)r))
				break;	/* the one line the shim writes */
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break;		/* end of file or error */
	}
	nl = a->ready_buf.data ? memchr(a->ready_buf.data, '\n', a->ready_buf.len) : NULL;
	v = nl ? nn_json_parse(a->ready_buf.data, (size_t)(nl - a->ready_buf.data), NULL) : jv_invalid();
	ready_close(a);
	if (jv_get_kind(v) == JV_KIND_OBJECT && nn_json_has(v, "ready")) {
		jv_free(v);
		if (shim_connect(a, err) < 0) {
			nn_warn("alloc %s: %s", a->id, err);
			recover(a);
		}
		return;
	}
	{
		const char *msg = "the shim ended before it was ready (see shim.log)";
		char reason[NN_ERRLEN + 32];
		jv e = jv_get_kind(v) == JV_KIND_OBJECT ? jv_object_get(jv_copy(v), jv_string("error"))
							  : jv_invalid();
		if (jv_get_kind(e) == JV_KIND_STRING)
			msg = jv_string_value(e);
		if (a->adopting)
			snprintf(reason, sizeof reason, "lost: %s", msg);
		else
			snprintf(reason, sizeof reason, "%s", msg);
		finish(a, "failed", reason, jv_null(), -1);
		jv_free(e);
		jv_free(v);
		alloc_drop(a);
	}
}

static char *find_shim(void)
{
	char self[PATH_MAX];
	const char *env = getenv("NUNET_SHIM");
	ssize_t n;
	if (env && *env)
		return nn_xstrdup(env);
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		char *slash, *p;
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			p = nn_xasprintf("%s/nunet-run", self);
			if (access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	return nn_xstrdup("nunet-run");
}

/* fd moved above the three standard ones and 3 (a child's dup2 targets) */
static int fd_high(int fd)
{
	if (fd >= 0 && fd <= 3) {
		int d = fcntl(fd, F_DUPFD_CLOEXEC, 10);
		close(fd);
		fd = d;
	}
	return fd;
}

/*
 * Spawn the shim program with argv in a session of its own: stdin from
 * in_fd (-1: /dev/null), stdout and stderr appended to log (NULL:
 * /dev/null), fd 3 the write end of its ready pipe.  0, or an errno.
 */
static int shim_spawn(struct amod *m, const char *const *argv, int in_fd, const char *log,
		      int ready_w, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	int rc;

	posix_spawn_file_actions_init(&fa);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawn_file_actions_adddup2(&fa, ready_w, 3);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	sigaddset(&def, SIGCHLD);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	rc = strchr(m->shim_path, '/')
		? posix_spawn(pid, m->shim_path, &fa, &at, (char **)argv, environ)
		: posix_spawnp(pid, m->shim_path, &fa, &at, (char **)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return rc;
}

static void spare_close(struct amod *m)
{
	if (m->spare_ctl >= 0)
		close(m->spare_ctl);	/* its end of file: it exits */
	if (m->spare_ready >= 0)
		close(m->spare_ready);
	m->spare_ctl = m->spare_ready = -1;
	m->spare_pid = 0;
}

/*
 * Spare directories.  Every allocation's directory starts with the same
 * files, and on a file system such as this machine's (ext4 without a
 * journal, where each new inode is looked for past the recently deleted
 * ones) each file made costs 0.3 to 2 ms: so the node makes them ahead,
 * in HOME/alloc.spare/PID.N, and a start renames that directory to DIR.
 * Made: cred/ (0700) with a new identity's key and an empty cap,
 * spec.json, shim.log, .state.json.tmp, .state.json.1.tmp,
 * .state.json.2.tmp and .result.json.tmp (0600: what the first three
 * states and the first result are written to, then renamed; those the
 * allocation did not use are removed at its end), stdout.log and
 * stderr.log (0644), all empty but the key.  HOME/alloc.spare is emptied
 * when the node starts and when it stops.
 */
#define SPARE_DIRS "alloc.spare"

static char *sdir_root(struct amod *m)
{
	return nn_xasprintf("%s/%s", nn_node_home(m->n), SPARE_DIRS);
}

static void sdir_make(struct amod *m)
{
	static const struct {
		const char *name;
		mode_t mode;
	} files[] = {
		{ NN_ALLOC_SPEC, 0600 }, { NN_ALLOC_SHIMLOG, 0600 }, { "." NN_ALLOC_STATE ".tmp", 0600 },
		{ "." NN_ALLOC_RESULT ".tmp", 0600 }, { "." NN_ALLOC_STATE ".1.tmp", 0600 },
		{ "." NN_ALLOC_STATE ".2.tmp", 0600 },
		{ NN_ALLOC_CAP, 0600 }, { NN_EXEC_STDOUT, 0644 }, { NN_EXEC_STDERR, 0644 },
	};
	char *root, *d, *p, e[NN_ERRLEN];
	struct nn_key k;
	int rc;

	if (!m->spare_on || m->sdir)
		return;
	root = sdir_root(m);
	d = nn_xasprintf("%s/%ld.%ld", root, (long)getpid(), m->sdirs++);
	free(root);
	if (mkdir(d, 0755) < 0) {
		free(d);
		return;
	}
	p = nn_xasprintf("%s/%s", d, NN_ALLOC_CRED);
	rc = mkdir(p, 0700);
	free(p);
	nn_key_generate(&k);
	p = nn_xasprintf("%s/%s", d, NN_ALLOC_KEY);
	if (rc == 0)
		rc = nn_key_save_nosync(&k, p, e);
	free(p);
	snprintf(m->sdid, sizeof m->sdid, "%s", k.did);
	nn_key_clear(&k);
	for (size_t i = 0; rc == 0 && i < sizeof files / sizeof *files; i++) {
		int fd;
		p = nn_xasprintf("%s/%s", d, files[i].name);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, files[i].mode);
		free(p);
		if (fd < 0)
			rc = -1;
		else
			close(fd);
	}
	if (rc < 0) {
		nn_storage_rmtree(d);
		free(d);
		return;
	}
	m->sdir = d;
}

/* The spare directory becomes dir (its parent exists): 1 with the
 * identity in did, or 0 (there was none, or it could not be moved). */
static int sdir_take(struct amod *m, const char *dir, char did[NN_DID_MAX])
{
	int ok;
	if (!m->sdir)
		return 0;
	ok = rename(m->sdir, dir) == 0;
	if (!ok)
		nn_storage_rmtree(m->sdir);
	else
		snprintf(did, NN_DID_MAX, "%s", m->sdid);
	free(m->sdir);
	m->sdir = NULL;
	return ok;
}

/* Remove what spare directories there are (sdir_make makes the next). */
static void sdir_clear(struct amod *m)
{
	char *root = sdir_root(m);
	free(m->sdir);
	m->sdir = NULL;
	nn_storage_rmtree(root);
	free(root);
}

/*
 * Keep a spare shim: `nunet-run exec --shim --spare HOME/alloc`, loaded
 * and waiting for the arguments of an allocation's shim on its stdin, so
 * an allocation's start does not wait for the program to be loaded
 * (spare_use).  It is in its own session like every shim; the end of its
 * stdin (the node stopped, or was killed) ends it.
 */
static void spare_start(struct amod *m)
{
	int ctl[2], rp[2], rc;
	pid_t pid;
	char *root;
	const char *argv[6];

	sdir_make(m);
	if (!m->spare_on || m->spare_pid > 0)
		return;
	if (pipe2(ctl, O_CLOEXEC) < 0)
		return;
	if (pipe2(rp, O_CLOEXEC) < 0) {
		close(ctl[0]);
		close(ctl[1]);
		return;
	}
	ctl[0] = fd_high(ctl[0]);
	rp[1] = fd_high(rp[1]);
	/* no slash after it: what looks for an allocation's processes by
	 * "HOME/alloc/" in their command line does not find the spare */
	root = nn_xasprintf("%s/alloc", nn_node_home(m->n));
	argv[0] = m->shim_path;
	argv[1] = "exec";
	argv[2] = "--shim";
	argv[3] = "--spare";
	argv[4] = root;
	argv[5] = NULL;
	rc = ctl[0] < 0 || rp[1] < 0 ? EBADF : shim_spawn(m, argv, ctl[0], NULL, rp[1], &pid);
	free(root);
	if (ctl[0] >= 0)
		close(ctl[0]);
	if (rp[1] >= 0)
		close(rp[1]);
	if (rc != 0) {
		close(ctl[1]);
		close(rp[0]);
		return;
	}
	reap_track(m, pid);
	nn_sock_nonblock(ctl[1]);	/* a spare that does not read is no spare */
	m->spare_pid = pid;
	m->spare_ctl = ctl[1];
	m->spare_ready = rp[0];
}

/*
 * Hand the spare shim an allocation: argv (from "exec" on) and its
 * shim.log.  0 with *pid and *ready (the read end of its ready pipe, the
 * caller's), or -1 when there is no spare or it is gone (spawn one).
 */
static int spare_use(struct amod *m, const char *const *argv, const char *log, pid_t *pid, int *ready)
{
	jv v;
	char *line;
	size_t len;
	int ok;

	if (m->spare_pid <= 0)
		return -1;
	v = jv_array();
	for (int i = 0; argv[i]; i++)
		v = jv_array_append(v, jv_string(argv[i]));
	v = jv_object_set(jv_object_set(jv_object(), jv_string("argv"), v), jv_string("log"), jv_string(log));
	line = nn_json_dump(v);
	jv_free(v);
	len = strlen(line);
	line[len] = '\n';
	ok = nn_write_all(m->spare_ctl, line, len + 1) == 0;
	free(line);
	*pid = m->spare_pid;
	*ready = m->spare_ready;
	m->spare_ready = -1;
	spare_close(m);
	if (!ok) {		/* it died (EPIPE: SIGPIPE is ignored) or is stuck */
		kill(*pid, SIGKILL);
		close(*ready);
		return -1;
	}
	return 0;
}

/* Start a shim: a new run, or (adopt) one that finds the running job. */
static void spawn(struct alloc *a, int adopt)
{
	struct amod *m = a->m;
	char hb[32], runs[24], lmax[32], lkeep[16], *specpath, *logpath, *health = NULL;
	const char *argv[24];
	int argc = 0, p[2] = { -1, -1 }, rc;
	pid_t pid;
	jv hc;

	snprintf(hb, sizeof hb, "%lldms", (long long)m->hb_ms);
	specpath = nn_xasprintf("%s/%s", a->dir, NN_ALLOC_SPEC);
	logpath = nn_xasprintf("%s/%s", a->dir, NN_ALLOC_SHIMLOG);
	hc = jget(a->opts, "healthcheck");
	if (jv_get_kind(hc) == JV_KIND_OBJECT)
		health = nn_json_dump(hc);
	jv_free(hc);
	argv[argc++] = m->shim_path;
	argv[argc++] = "exec";
	argv[argc++] = "--shim";
	argv[argc++] = "--ready-fd";
	argv[argc++] = "3";
	argv[argc++] = "--heartbeat";
	argv[argc++] = hb;
	snprintf(runs, sizeof runs, "%d", adopt ? a->run : a->run + 1);
	argv[argc++] = "--run";
	argv[argc++] = runs;
	if (adopt)
		argv[argc++] = "--adopt";
	{
		struct nn_alloc_logs lg;
		jv lj = jget(a->opts, "logs");
		if (nn_alloc_logs_parse(lj, &lg, NULL) < 0)
			nn_alloc_logs_parse(jv_null(), &lg, NULL);
		jv_free(lj);
		if (lg.max) {
			snprintf(lmax, sizeof lmax, "%llu", (unsigned long long)lg.max);
			snprintf(lkeep, sizeof lkeep, "%d", lg.keep);
			argv[argc++] = "--log-max";
			argv[argc++] = lmax;
			argv[argc++] = "--log-keep";
			argv[argc++] = lkeep;
		}
	}
	if (health) {
		argv[argc++] = "--health";
		argv[argc++] = health;
	}
	argv[argc++] = "--";
	argv[argc++] = specpath;
	argv[argc] = NULL;

	/* a new run goes to the spare shim when there is one (already
	 * loaded), else to a shim started now */
	rc = -1;
	if (!adopt && spare_use(m, argv + 1, logpath, &pid, &p[0]) == 0) {
		rc = 0;
	} else if (pipe2(p, O_CLOEXEC) < 0) {
		rc = errno;
	} else if ((p[1] = fd_high(p[1])) < 0) {
		rc = errno;
		close(p[0]);
	} else {
		rc = shim_spawn(m, argv, -1, logpath, p[1], &pid);
		close(p[1]);
		if (rc != 0)
			close(p[0]);
		else
			reap_track(m, pid);
	}
	free(specpath);
	free(logpath);
	free(health);
	if (rc != 0) {
		char reason[NN_ERRLEN];
		snprintf(reason, sizeof reason, "cannot start the shim '%s': %s", m->shim_path, strerror(rc));
		finish(a, "failed", reason, jv_null(), -1);
		alloc_drop(a);
		return;
	}
	a->shim_pid = pid;
	a->spawned = nn_mono_ms();
	a->adopting = adopt;
	a->ready_fd = p[0];
	nn_sock_nonblock(p[0]);
	nn_buf_init(&a->ready_buf, 64 * 1024);
	a->ready_w = nn_loop_fd(nn_node_loop(m->n), p[0], EPOLLIN, on_ready, a, NULL);
	if (!adopt) {
		if (a->run > 0)
			cred_renew(a);
		a->run++;
		/* the first run fetches the inputs before it starts (stage.h) */
		set_state(a, a->run == 1 && nn_stage_has(a->opts, "inputs") ? "staging" : "starting",
			  NULL, jv_null(), -1);
	}
}

/* ---- waiting for other allocations ("after") ---- */

/*
 * Whether a's "after" holds: every allocation it names is running
 * ("running") or has exited 0 ("exited").  1: it holds (or a has none);
 * 0: not yet, what it waits for in why; -1: it never will (one of them
 * ended otherwise, or is gone), why says which.
 */
static int after_holds(struct alloc *a, char *why, size_t cap)
{
	jv after = jget(a->opts, "after");
	int r = 1;
	why[0] = '\0';
	if (jv_get_kind(after) != JV_KIND_OBJECT) {
		jv_free(after);
		if (a->held)
			snprintf(why, cap, NN_ALLOC_HELD);
		return a->held ? 0 : 1;
	}
	jv_object_foreach(after, k, v) {
		const char *id = jv_string_value(k);
		int run = jv_get_kind(v) == JV_KIND_STRING && !strcmp(jv_string_value(v), "running");
		sqlite3_stmt *st = r < 0 ? NULL
			: prep(a->m, "SELECT state, status, reason, coalesce(json_extract(spec,"
			       " '$.labels.\"nunet.allocation\"'), id) FROM allocations WHERE id = ?");
		if (st) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW) {
				const char *s = (const char *)sqlite3_column_text(st, 0);
				const char *rs = (const char *)sqlite3_column_text(st, 2);
				const char *nm = (const char *)sqlite3_column_text(st, 3);
				int status = sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 1);
				struct alloc *da = find(a->m, id);
				s = s ? s : "";
				/* one its supervisor is restarting runs no more (its
				 * end is on the way): one_for_all keeps the order */
				if (run ? !strcmp(s, "running") && !(da && da->sup) : !strcmp(s, "exited") && status == 0) {
					;
				} else if (nn_alloc_state_final(s)) {
					if (!strcmp(s, "exited"))
						snprintf(why, cap, "dependency %.64s exited with status %d", nm, status);
					else
						snprintf(why, cap, "dependency %.64s ended (%s%s%.200s)", nm, s,
							 rs ? ": " : "", rs ? rs : "");
					r = -1;
				} else if (r > 0) {
					snprintf(why, cap, "waiting for %.64s to %s", nm, run ? "run" : "exit 0");
					r = 0;
				}
			} else {
				snprintf(why, cap, "dependency %.64s is gone from this node", id);
				r = -1;
			}
			sqlite3_finalize(st);
		}
		jv_free(k);
		jv_free(v);
	}
	jv_free(after);
	/* held by its supervisor: what it depends on elsewhere is not up */
	if (r >= 0 && a->held) {
		snprintf(why, cap, NN_ALLOC_HELD);
		r = 0;
	}
	return r;
}

/* A new run of a: now, or once its "after" holds (state waiting, no
 * shim meanwhile); an "after" that never will hold fails it. */
static void run_next(struct alloc *a)
{
	char why[NN_ERRLEN];
	int r = after_holds(a, why, sizeof why);
	if (r > 0) {
		spawn(a, 0);
	} else if (r < 0) {
		finish(a, "failed", why, jv_null(), -1);
		if (a->fd < 0 && a->ready_fd < 0)
			alloc_drop(a);
	} else if (strcmp(a->state, "waiting") != 0) {
		set_state(a, "waiting", why, jv_null(), -1);
	}
}

/* Every waiting allocation whose "after" is decided now starts or fails
 * (each start or end arms this again: what waits on it is looked at). */
static void on_wake(struct nn_loop *l, void *arg)
{
	struct amod *m = arg;
	char why[NN_ERRLEN];
	(void)l;
again:
	for (struct alloc *a = m->list; a; a = a->next)
		if (!strcmp(a->state, "waiting") && !a->cancel && after_holds(a, why, sizeof why) != 0) {
			run_next(a);	/* a is no longer waiting; it may be gone */
			goto again;
		}
}

/* Look at the waiting allocations at the next turn of the loop (never
 * from inside a state change: the caller may be walking the list). */
static void wake_arm(struct amod *m)
{
	struct alloc *a = m->list;
	while (a && strcmp(a->state, "waiting") != 0)
		a = a->next;
	if (!a)
		return;
	if (!m->wake)
		m->wake = nn_loop_timer(nn_node_loop(m->n), 0, 0, on_wake, m, NULL);
	else
		nn_loop_timer_arm(nn_node_loop(m->n), m->wake, 0, 0);
}

static void on_delay(struct nn_loop *l, void *arg)
{
	struct alloc *a = arg;
	nn_loop_remove(l, a->delay_timer);
	a->delay_timer = NULL;
	if (a->respawn && !nn_alloc_state_final(a->state)) {
		a->respawn = 0;
		run_next(a);
	}
}

/*
 * The shim is gone (or was never reached): a new run when one is due; else
 * the result it left on disk; else a shim that adopts the job.
 */
static void recover(struct alloc *a)
{
	char *path;
	char *text;

	if (nn_alloc_state_final(a->state)) {
		alloc_drop(a);
		return;
	}
	if (!strcmp(a->state, "waiting")) {
		/* no shim while it waits (its last run's result was decided) */
		a->respawn = 0;
		run_next(a);
		return;
	}
	if (a->respawn) {
		if (a->rp.delay_ms > 0 && !a->delay_timer)
			a->delay_timer = nn_loop_timer(nn_node_loop(a->m->n), a->rp.delay_ms, 0,
						       on_delay, a, NULL);
		else if (!a->delay_timer) {
			a->respawn = 0;
			run_next(a);
		}
		return;
	}
	if (!strcmp(a->state, "pending")) {
		run_next(a);
		return;
	}
	path = nn_xasprintf("%s/%s", a->dir, NN_ALLOC_RESULT);
	text = nn_read_file(path, 64 * 1024, NULL, NULL);
	free(path);
	if (text) {
		jv v = nn_json_parse(text, strlen(text), NULL);
		int64_t run = -1;
		free(text);
		if (jv_get_kind(v) == JV_KIND_OBJECT && nn_json_get_int(v, "run", &run, NULL) == 0 &&
		    run == a->run) {
			on_result(a, (int)run, jv_object_get(v, jv_string("result")));
			if (nn_alloc_state_final(a->state))
				alloc_drop(a);
			else if (a->respawn)
				recover(a);
			return;
		}
		jv_free(v);
	}
	if (++a->recoveries > MAX_RECOVER) {
		finish(a, "failed", "lost: the shim died again and again", jv_null(), -1);
		alloc_drop(a);
		return;
	}
	nn_warn("alloc %s: no shim answers: starting one to adopt the job", a->id);
	spawn(a, 1);
}

/* ---- cancelling ---- */

static void on_kill_timer(struct nn_loop *l, void *arg)
{
	struct alloc *a = arg;
	nn_loop_remove(l, a->kill_timer);
	a->kill_timer = NULL;
	if (!nn_alloc_state_final(a->state))
		signal_job(a, SIGKILL);
}

static int live_children(struct amod *m, const char *id)
{
	sqlite3_stmt *st = prep(m, "SELECT l.child FROM alloc_links l JOIN allocations a"
			       " ON a.id = l.child WHERE l.parent = ? AND a.state NOT IN"
			       " ('exited', 'killed', 'oom', 'failed')");
	int n = 0;
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		if (find(m, (const char *)sqlite3_column_text(st, 0)))
			n++;
	sqlite3_finalize(st);
	return n;
}

static void stop_now(struct alloc *a)
{
	a->cancel_wait = 0;
	if (a->respawn || a->delay_timer || !strcmp(a->state, "restarting") || !strcmp(a->state, "waiting")) {
		/* between runs, or before the first: nothing to signal */
		int waited = !strcmp(a->state, "waiting");
		if (a->delay_timer) {
			nn_loop_remove(nn_node_loop(a->m->n), a->delay_timer);
			a->delay_timer = NULL;
		}
		a->respawn = 0;
		finish(a, "killed", waited ? "cancelled while waiting" : "cancelled between runs", jv_null(), -1);
		if (a->fd < 0 && a->ready_fd < 0)
			alloc_drop(a);
		return;
	}
	signal_job(a, SIGTERM);
	if (!a->kill_timer)
		a->kill_timer = nn_loop_timer(nn_node_loop(a->m->n), a->grace_ms > 0 ? a->grace_ms : 1,
					      0, on_kill_timer, a, NULL);
}

static void check_cancel_parent(struct amod *m, const char *parent)
{
	struct alloc *p = find(m, parent);
	if (p && p->cancel_wait && live_children(m, p->id) == 0)
		stop_now(p);
}

/* The ids sql (one text parameter: id) selects, as a NULL-terminated
 * array; the caller frees each and the array. */
static char **ids_of(struct amod *m, const char *sql, const char *id)
{
	sqlite3_stmt *st = prep(m, sql);
	char **v = nn_xcalloc(1, sizeof *v);
	size_t n = 0;
	if (!st)
		return v;
	if (id)
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		v = nn_xrealloc(v, (n + 2) * sizeof *v);
		v[n++] = nn_xstrdup((const char *)sqlite3_column_text(st, 0));
		v[n] = NULL;
	}
	sqlite3_finalize(st);
	return v;
}

/* Cancel a and, first, every live child of it. */
static void cancel_tree(struct alloc *a, int64_t grace_ms)
{
	struct amod *m = a->m;
	sqlite3_stmt *st;
	char **kids;

	if (a->cancel || nn_alloc_state_final(a->state))
		return;
	a->cancel = 1;
	a->grace_ms = grace_ms;
	st = prep(m, "UPDATE allocations SET cancel = 1 WHERE id = ?");
	if (st)
		sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
	step_done(m, st);
	kids = ids_of(m, "SELECT child FROM alloc_links WHERE parent = ?", a->id);
	for (size_t i = 0; kids[i]; i++) {
		struct alloc *c = find(m, kids[i]);
		if (c)
			cancel_tree(c, grace_ms);
		free(kids[i]);
	}
	free(kids);
	if (live_children(m, a->id) > 0)
		a->cancel_wait = 1;
	else
		stop_now(a);
}

/* Children whose parent has ended are torn down (a supervisor that ends
 * takes its subtree with it), with the default grace. */
static void reap_orphans(struct amod *m)
{
	char **v;
	m->orphans = 0;
	v = ids_of(m, "SELECT c.id FROM allocations c JOIN allocations p ON p.id = c.parent"
		   " WHERE c.cancel = 0 AND c.state NOT IN ('exited', 'killed', 'oom', 'failed')"
		   " AND p.state IN ('exited', 'killed', 'oom', 'failed')", NULL);
	for (size_t i = 0; v[i]; i++) {
		struct alloc *c = find(m, v[i]);
		if (c) {
			nn_info("alloc %s: its parent has ended: cancelling it", c->id);
			cancel_tree(c, DEFAULT_GRACE_MS);
		}
		free(v[i]);
	}
	free(v);
}

/* ---- watchdog ---- */

static void on_tick(struct nn_loop *l, void *arg)
{
	struct amod *m = arg;
	int64_t now = nn_mono_ms();
	for (struct alloc *a = m->list; a; a = a->next) {
		if (a->ready_fd >= 0 && now - a->spawned > READY_MS && a->shim_pid > 1) {
			/* its end of file on the ready pipe fails the allocation */
			nn_warn("alloc %s: shim %ld not ready after %d s: killing it", a->id,
				(long)a->shim_pid, READY_MS / 1000);
			kill(a->shim_pid, SIGKILL);
			a->spawned = now;
			continue;
		}
		if (a->fd < 0 || now - a->last_msg < HB_MISSES * m->hb_ms)
			continue;
		nn_warn("alloc %s: no heartbeat from shim %ld for %lld ms: killing it", a->id,
			(long)a->shim_pid, (long long)(now - a->last_msg));
		nn_node_event(m->n, "alloc.unresponsive",
			      jv_object_set(jv_object(), jv_string("id"), jv_string(a->id)));
		if (a->shim_pid > 1)
			kill(a->shim_pid, SIGKILL);
		a->last_msg = now;	/* its end of file starts the recovery */
	}
	for (struct alloc *a = m->list; a; a = a->next)
		if (a->cap_exp && a->cap_exp - nn_now_ms() < m->cap_ttl_ms / 2)
			cred_renew(a);
	if (m->orphans)
		reap_orphans(m);
	if (now - m->pruned >= (m->cap_ttl_ms / 2 < 60000 ? m->cap_ttl_ms / 2 : 60000))
		cred_prune(m);
	spare_start(m);		/* when the last one was used, or never made */
}

/* ---- behaviors ---- */

static struct amod *mod(struct nn_node *n)
{
	return the_mod && the_mod->n == n ? the_mod : NULL;
}

static const char *body_id(jv req, jv *body, char *err)
{
	const char *id;
	*body = jv_object_get(jv_copy(req), jv_string("body"));
	if (nn_json_get_str(*body, "id", &id, NULL) < 0) {
		nn_seterr(err, "id: expected the allocation id (a string)");
		return NULL;
	}
	return id;
}

static int exists(struct amod *m, const char *id)
{
	sqlite3_stmt *st = prep(m, "SELECT 1 FROM allocations WHERE id = ?");
	int r = 0;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		r = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	return r;
}

char *nn_alloc_of_did(const char *did)
{
	struct amod *m = the_mod;
	sqlite3_stmt *st;
	char *id = NULL;
	if (!m || !did || strncmp(did, "did:key:", 8) != 0)
		return NULL;
	st = prep(m, "SELECT id FROM allocations WHERE did = ?");
	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, did, (int)nn_did_len(did), SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		id = nn_xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return id;
}

/* The allocation to whose subtree the signer of req is held: its own when
 * it signs as an allocation (caller frees), NULL for the node's owners and
 * any other holder of a token (the whole node). */
static char *scope_of(struct nn_node *n, jv req)
{
	const char *from = nn_env_str(req, "from");
	if (!from || nn_node_is_owner(n, from))
		return NULL;
	return nn_alloc_of_did(from);
}

#define SUBTREE "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION SELECT l.child FROM alloc_links l" \
	" JOIN sub ON l.parent = sub.id) "

/* Is id root itself or one of its descendants? */
static int in_subtree(struct amod *m, const char *root, const char *id)
{
	sqlite3_stmt *st = prep(m, SUBTREE "SELECT 1 FROM sub WHERE id = ?2");
	int r = 0;
	if (st) {
		sqlite3_bind_text(st, 1, root, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		r = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	return r;
}

/* NN_OK when the signer of req may see or act on allocation id; else
 * unauthorized, with err (whether id exists is not told). */
static enum nn_code check_scope(struct nn_node *n, jv req, const char *id, char *err)
{
	char *root = scope_of(n, req);
	enum nn_code c = NN_OK;
	if (root && !in_subtree(mod(n), root, id)) {
		nn_seterr(err, "allocation %.80s may act only on itself and its descendants, not on '%.80s'",
			  root, id);
		c = NN_E_UNAUTHORIZED;
	}
	free(root);
	return c;
}

/* body_id, then the caller's scope over that allocation (check_scope):
 * the id, or NULL with *code set and body already freed. */
static const char *scoped_id(struct nn_node *n, jv req, jv *body, enum nn_code *code, char *err)
{
	const char *id = body_id(req, body, err);
	*code = id ? check_scope(n, req, id, err) : NN_E_BAD_BODY;
	if (*code != NN_OK) {
		jv_free(*body);
		*body = jv_invalid();
		return NULL;
	}
	return id;
}

static enum nn_code be_start(struct nn_node *n, jv req, jv *reply, char *err)
{
	static const char *const keys[] = { "spec", "restart", "healthcheck", "parent", "logs",
					    "inputs", "outputs", "stage_timeout", "state_dir", "restore",
					    "checkpoint", "contract", "after", NULL };
	struct amod *m = mod(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	jv specj = jv_invalid(), opts = jv_object(), tmp;
	struct nn_exec_spec spec;
	struct nn_exec_job job;
	const struct nn_executor *ex;
	struct nn_alloc_restart rp;
	struct nn_alloc_health h;
	const char *parent = NULL;
	enum nn_code code = NN_E_BAD_BODY;
	struct stat sb;
	struct alloc *a;
	sqlite3_stmt *st;
	char *text, *root = NULL, did[NN_DID_MAX] = "";
	int64_t cap_exp = 0;
	int have_spec = 0, have_job = 0, committed = 0, spared = 0;

	if (!m) {
		jv_free(body);
		jv_free(opts);
		nn_seterr(err, "allocations are not attached");
		return NN_E_INTERNAL;
	}
	if (jv_get_kind(body) != JV_KIND_OBJECT) {
		nn_seterr(err, "body: expected an object");
		goto out;
	}
	if (only_keys(body, keys, "body", "spec, restart, healthcheck, parent, logs, inputs, outputs,"
		      " stage_timeout, state_dir, restore, contract, after", err) < 0)
		goto out;
	if (nn_json_has(body, "contract")) {
		const char *c;
		int checked = 0;
		if (nn_json_get_str(body, "contract", &c, err) < 0)
			goto out;
		for (int i = 0; i < m->nobs; i++) {
			if (!m->obs[i]->check)
				continue;
			checked = 1;
			if ((code = m->obs[i]->check(n, req, c, m->obs[i]->arg, err)) != NN_OK)
				goto out;
		}
		code = NN_E_BAD_BODY;
		if (!checked) {
			nn_seterr(err, "contract: this node does not work under contracts");
			code = NN_E_UNAVAILABLE;
			goto out;
		}
		opts = jv_object_set(opts, jv_string("contract"), jv_string(c));
		/* metered per deployment, when a deployment started it */
		{
			jv sp = jget(body, "spec"), lb = jget(sp, "labels");
			tmp = jget(lb, "nunet.deployment");
			jv_free(lb);
			jv_free(sp);
		}
		if (jv_get_kind(tmp) == JV_KIND_STRING)
			opts = jv_object_set(opts, jv_string("deployment"), tmp);
		else
			jv_free(tmp);
	}
	tmp = jget(body, "logs");
	{
		struct nn_alloc_logs lg;
		if (nn_alloc_logs_parse(tmp, &lg, err) < 0) {
			jv_free(tmp);
			goto out;
		}
	}
	if (jv_get_kind(tmp) != JV_KIND_NULL)
		opts = jv_object_set(opts, jv_string("logs"), tmp);
	else
		jv_free(tmp);
	specj = jv_object_get(jv_copy(body), jv_string("spec"));
	if (jv_get_kind(specj) != JV_KIND_OBJECT) {
		nn_seterr(err, "spec: expected the job spec (an object)");
		goto out;
	}
	if (nn_json_has(specj, "dir")) {
		nn_seterr(err, "spec: dir: the node puts allocations in %s/alloc/ID", nn_node_home(n));
		goto out;
	}
	if (nn_stage_take(body, &specj, &opts, nn_node_config(n)->stage_timeout_ms, err) < 0 ||
	    nn_migrate_take(body, &opts, nn_node_home(n), err) < 0)
		goto out;
	tmp = jv_object_get(jv_copy(body), jv_string("restart"));
	if (nn_alloc_restart_parse(jv_is_valid(tmp) ? tmp : jv_null(), &rp, err) < 0) {
		jv_free(tmp);
		goto out;
	}
	if (jv_is_valid(tmp))
		opts = jv_object_set(opts, jv_string("restart"), tmp);
	else
		jv_free(tmp);
	tmp = jv_object_get(jv_copy(body), jv_string("healthcheck"));
	if (jv_is_valid(tmp) && jv_get_kind(tmp) != JV_KIND_NULL) {
		if (nn_alloc_health_parse(tmp, &h, err) < 0) {
			jv_free(tmp);
			goto out;
		}
		nn_alloc_health_release(&h);
		opts = jv_object_set(opts, jv_string("healthcheck"), tmp);
	} else {
		jv_free(tmp);
	}
	root = scope_of(n, req);
	if (nn_json_has(body, "parent")) {
		if (nn_json_get_str(body, "parent", &parent, err) < 0)
			goto out;
		/* an allocation starts children in its own subtree only */
		if (root && !in_subtree(m, root, parent)) {
			nn_seterr(err, "parent: allocation %.80s may start children only under itself and"
				  " its descendants, not under '%.80s'", root, parent);
			code = NN_E_UNAUTHORIZED;
			goto out;
		}
	} else if (root) {
		parent = root;	/* what an allocation starts is its child */
	}
	if (parent) {
		if (!exists(m, parent)) {
			nn_seterr(err, "parent: no allocation '%.80s' on this node", parent);
			goto out;
		}
		{
			struct alloc *pa = find(m, parent);
			if (!pa || nn_alloc_state_final(pa->state) || pa->cancel) {
				nn_seterr(err, "parent: allocation '%.80s' is not running", parent);
				goto out;
			}
		}
	}
	/* "after": {ID: "running" | "exited"}: allocations of this node, in
	 * the caller's scope, that must run (or have exited 0) first */
	tmp = jget(body, "after");
	if (jv_get_kind(tmp) != JV_KIND_NULL) {
		int bad = jv_get_kind(tmp) != JV_KIND_OBJECT || jv_object_length(jv_copy(tmp)) > 64;
		if (bad)
			nn_seterr(err, "after: expected an object of at most 64 allocation ids, each"
				  " \"running\" or \"exited\"");
		else
			jv_object_foreach(tmp, k, v) {
				const char *id = jv_string_value(k);
				if (!bad && (jv_get_kind(v) != JV_KIND_STRING ||
					     (strcmp(jv_string_value(v), "running") && strcmp(jv_string_value(v), "exited")))) {
					nn_seterr(err, "after.%.80s: expected \"running\" or \"exited\"", id);
					bad = 1;
				} else if (!bad && !exists(m, id)) {
					nn_seterr(err, "after.%.80s: no allocation '%.80s' on this node", id, id);
					bad = 1;
				} else if (!bad && root && !in_subtree(m, root, id)) {
					nn_seterr(err, "after.%.80s: allocation %.80s may wait only for itself and its"
						  " descendants", id, root);
					code = NN_E_UNAUTHORIZED;
					bad = 1;
				}
				jv_free(k);
				jv_free(v);
			}
		if (bad) {
			jv_free(tmp);
			goto out;
		}
		opts = jv_object_set(opts, jv_string("after"), tmp);
	} else {
		jv_free(tmp);
	}
	if (nn_exec_spec_parse(&spec, jv_copy(specj), nn_node_home(n), err) < 0)
		goto out;
	have_spec = 1;
	if (exists(m, spec.id) || stat(spec.dir, &sb) == 0) {
		nn_seterr(err, "id: allocation '%s' exists already", spec.id);
		goto out;
	}
	ex = nn_exec_find(spec.executor, err);
	if (!ex)
		goto out;
	if (ex->available(err) < 0) {
		code = NN_E_UNAVAILABLE;
		goto out;
	}
	nn_exec_job_init(&job, ex, &spec);
	have_job = 1;
	if (ex->prepare(&job, err) < 0) {
		if (job.ex_code == NN_EX_UNAVAILABLE)
			code = NN_E_UNAVAILABLE;
		goto out;
	}
	/* an onboarded node commits what the job asks for, or refuses it */
	{
		struct nn_onboard_res ob;
		char e[NN_ERRLEN];
		if (nn_onboard_get(nn_node_db(n), &ob, e) < 0) {
			nn_seterr(err, "resources: %s", e);
			code = NN_E_INTERNAL;
			goto out;
		}
		if (ob.onboarded) {
			struct nn_res r = { (int64_t)spec.limits.cpu_milli, (int64_t)spec.limits.memory,
					    0, 0, 0 };
			int rc = nn_onboard_commit(nn_node_db(n), spec.id, &r, e);
			if (rc < 0) {
				nn_seterr(err, "resources: %s", e);
				code = rc == NN_ONBOARD_REFUSED ? NN_E_UNAVAILABLE : NN_E_INTERNAL;
				goto out;
			}
			committed = 1;
		}
	}
	/* checked: now make things (the spare directory, when there is one,
	 * unless inputs come first: logs there say the job started) */
	spared = !nn_stage_has(opts, "inputs") && sdir_take(m, spec.dir, did);
	if (nn_exec_dir_create(&spec, err) < 0) {
		if (spared)
			nn_storage_rmtree(spec.dir);
		code = NN_E_INTERNAL;
		goto out;
	}
	if ((spared ? cred_token(m, spec.dir, did, &cap_exp, 0, err)
		    : cred_make(m, spec.dir, did, &cap_exp, err)) < 0) {
		cred_remove(m, spec.dir, did);
		if (spared)
			nn_storage_rmtree(spec.dir);
		rmdir(spec.workdir);
		rmdir(spec.dir);
		code = NN_E_INTERNAL;
		goto out;
	}
	tmp = cred_env(m, &spec, nn_exec_spec_json(&spec));
	text = nn_json_dump(tmp);
	{
		char *path = nn_xasprintf("%s/%s", spec.dir, NN_ALLOC_SPEC);
		/* new, or the spare directory's empty one */
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int bad = fd < 0 || nn_write_all(fd, text, strlen(text)) < 0;
		if (fd >= 0)
			close(fd);
		if (bad) {
			nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
			unlink(path);
			free(path);
			free(text);
			jv_free(tmp);
			cred_remove(m, spec.dir, did);
			if (spared)
				nn_storage_rmtree(spec.dir);
			rmdir(spec.workdir);
			rmdir(spec.dir);
			code = NN_E_INTERNAL;
			goto out;
		}
		free(path);
	}
	if (nn_stage_prepare(spec.dir, opts, err) < 0) {
		nn_storage_rmtree(spec.dir);
		free(text);
		jv_free(tmp);
		code = NN_E_INTERNAL;
		goto out;
	}
	st = prep(m, "INSERT INTO allocations (id, parent, dir, executor, spec, opts, state, created,"
		  " updated, did) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)");
	if (st) {
		char *otext = nn_json_dump(opts);
		int64_t now = nn_now_ms();
		sqlite3_bind_text(st, 1, spec.id, -1, SQLITE_STATIC);
		if (parent)
			sqlite3_bind_text(st, 2, parent, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, spec.dir, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, spec.executor, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, otext, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 7, now);
		sqlite3_bind_int64(st, 8, now);
		sqlite3_bind_text(st, 9, did, -1, SQLITE_STATIC);
		free(otext);
	}
	step_done(m, st);
	free(text);
	if (parent) {
		st = prep(m, "INSERT OR IGNORE INTO alloc_links (parent, child) VALUES (?, ?)");
		if (st) {
			sqlite3_bind_text(st, 1, parent, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, spec.id, -1, SQLITE_STATIC);
		}
		step_done(m, st);
	}
	a = alloc_new(m, spec.id, spec.dir, parent, tmp, jv_copy(opts));
	snprintf(a->did, sizeof a->did, "%s", did);
	a->cap_exp = cap_exp;
	*reply = jv_object_set(jv_object(), jv_string("id"), jv_string(spec.id));
	*reply = jv_object_set(*reply, jv_string("dir"), jv_string(spec.dir));
	*reply = jv_object_set(*reply, jv_string("executor"), jv_string(spec.executor));
	*reply = jv_object_set(*reply, jv_string("did"), jv_string(did));
	if (parent)
		*reply = jv_object_set(*reply, jv_string("parent"), jv_string(parent));
	nn_node_event(n, "alloc.start", jv_copy(*reply));
	notify(a, NN_ALLOC_STARTED, jv_null());
	run_next(a);	/* a may be gone: its "after" failed already */
	code = NN_OK;
out:
	if (committed && code != NN_OK)
		nn_onboard_release(nn_node_db(n), spec.id, NULL);
	if (have_job)
		nn_exec_job_release(&job);
	if (have_spec)
		nn_exec_spec_release(&spec);
	free(root);
	jv_free(specj);
	jv_free(opts);
	jv_free(body);
	return code;
}

#define col_json nn_db_col_json
#define col_str nn_db_col_str

static jv col_int(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? jv_null()
		: jv_number((double)sqlite3_column_int64(st, i));
}

#define ROW_COLS "id, parent, dir, executor, spec, state, reason, created, updated, run," \
	" status, shim_pid, opts, result, did"

static jv row_json(sqlite3_stmt *st, int full)
{
	jv o = jv_object(), spec = col_json(st, 4);
	o = jv_object_set(o, jv_string("id"), col_str(st, 0));
	o = jv_object_set(o, jv_string("state"), col_str(st, 5));
	o = jv_object_set(o, jv_string("executor"), col_str(st, 3));
	o = jv_object_set(o, jv_string("command"), jget(spec, "command"));
	o = jv_object_set(o, jv_string("status"), col_int(st, 10));
	o = jv_object_set(o, jv_string("run"), col_int(st, 9));
	o = jv_object_set(o, jv_string("parent"), col_str(st, 1));
	o = jv_object_set(o, jv_string("created"), col_int(st, 7));
	o = jv_object_set(o, jv_string("updated"), col_int(st, 8));
	o = jv_object_set(o, jv_string("reason"), col_str(st, 6));
	if (full) {
		jv opts = col_json(st, 12);
		o = jv_object_set(o, jv_string("dir"), col_str(st, 2));
		o = jv_object_set(o, jv_string("shim_pid"), col_int(st, 11));
		o = jv_object_set(o, jv_string("spec"), jv_copy(spec));
		o = jv_object_set(o, jv_string("restart"), jget(opts, "restart"));
		o = jv_object_set(o, jv_string("healthcheck"), jget(opts, "healthcheck"));
		o = jv_object_set(o, jv_string("inputs"), jget(opts, "inputs"));
		o = jv_object_set(o, jv_string("outputs"), jget(opts, "outputs"));
		o = jv_object_set(o, jv_string("state_dir"), jget(opts, "state_dir"));
		o = jv_object_set(o, jv_string("result"), col_json(st, 13));
		o = jv_object_set(o, jv_string("did"), col_str(st, 14));
		jv_free(opts);
	}
	jv_free(spec);
	return o;
}

static jv id_list(struct amod *m, const char *sql, const char *id)
{
	sqlite3_stmt *st = prep(m, sql);
	jv a = jv_array();
	if (!st)
		return a;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW)
		a = jv_array_append(a, col_str(st, 0));
	sqlite3_finalize(st);
	return a;
}

static enum nn_code be_status(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct amod *m = mod(n);
	jv body, o, hist;
	enum nn_code code;
	const char *id = scoped_id(n, req, &body, &code, err);
	sqlite3_stmt *st;
	if (!id)
		return code;
	st = prep(m, "SELECT " ROW_COLS " FROM allocations WHERE id = ?");
	if (!st) {
		jv_free(body);
		return NN_E_INTERNAL;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		nn_seterr(err, "no allocation '%.80s' on this node", id);
		sqlite3_finalize(st);
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	o = row_json(st, 1);
	sqlite3_finalize(st);
	o = jv_object_set(o, jv_string("children"),
			  id_list(m, "SELECT child FROM alloc_links WHERE parent = ? ORDER BY rowid", id));
	{
		/* what reached it of its children's ends (children.jsonl too) */
		jv f = jv_array();
		st = prep(m, "SELECT a.id, a.state, a.reason, a.status FROM alloc_links l JOIN allocations a"
			  " ON a.id = l.child WHERE l.parent = ? AND a.state IN ('exited', 'killed', 'oom',"
			  " 'failed') AND NOT (a.state = 'exited' AND a.status = 0) ORDER BY a.updated, l.rowid");
		if (st) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			while (sqlite3_step(st) == SQLITE_ROW) {
				jv c = jv_object_set(jv_object(), jv_string("id"), col_str(st, 0));
				c = jv_object_set(c, jv_string("state"), col_str(st, 1));
				c = jv_object_set(c, jv_string("reason"), col_str(st, 2));
				c = jv_object_set(c, jv_string("status"), col_int(st, 3));
				f = jv_array_append(f, c);
			}
			sqlite3_finalize(st);
		}
		o = jv_object_set(o, jv_string("failed_children"), f);
	}
	{
		sqlite3_stmt *c = prep(m, "SELECT count(*) FROM alloc_restarts WHERE id = ?");
		int nr = 0;
		if (c) {
			sqlite3_bind_text(c, 1, id, -1, SQLITE_STATIC);
			if (sqlite3_step(c) == SQLITE_ROW)
				nr = sqlite3_column_int(c, 0);
			sqlite3_finalize(c);
		}
		o = jv_object_set(o, jv_string("restarts"), jv_number(nr));
	}
	hist = jv_array();
	st = prep(m, "SELECT state, ts, reason FROM alloc_states WHERE id = ? ORDER BY rowid");
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			jv h = jv_object_set(jv_object(), jv_string("state"), col_str(st, 0));
			h = jv_object_set(h, jv_string("ts"), col_int(st, 1));
			if (sqlite3_column_type(st, 2) != SQLITE_NULL)
				h = jv_object_set(h, jv_string("reason"), col_str(st, 2));
			hist = jv_array_append(hist, h);
		}
		sqlite3_finalize(st);
	}
	o = jv_object_set(o, jv_string("states"), hist);
	{
		jv f = jv_object_get(jv_copy(o), jv_string("state"));
		o = jv_object_set(o, jv_string("final"),
				  jv_bool(nn_alloc_state_final(jv_string_value(f))));
		jv_free(f);
	}
	jv_free(body);
	*reply = o;
	return NN_OK;
}

static enum nn_code be_list(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct amod *m = mod(n);
	jv body = jv_object_get(jv_copy(req), jv_string("body")), a = jv_array(), all;
	sqlite3_stmt *st;
	int every;
	char *root = scope_of(n, req);
	all = jget(body, "all");
	every = jv_get_kind(all) == JV_KIND_TRUE;
	jv_free(all);
	jv_free(body);
	/* an allocation sees its own subtree */
	if (root)
		st = prep(m, every ? SUBTREE "SELECT " ROW_COLS " FROM allocations WHERE id IN"
			  " (SELECT id FROM sub) ORDER BY created, rowid"
			  : SUBTREE "SELECT " ROW_COLS " FROM allocations WHERE id IN (SELECT id FROM sub)"
			    " AND state NOT IN ('exited', 'killed', 'oom', 'failed') ORDER BY created, rowid");
	else
		st = prep(m, every ? "SELECT " ROW_COLS " FROM allocations ORDER BY created, rowid"
			  : "SELECT " ROW_COLS " FROM allocations WHERE state NOT IN"
			    " ('exited', 'killed', 'oom', 'failed') ORDER BY created, rowid");
	if (!st) {
		free(root);
		jv_free(a);
		return NN_E_INTERNAL;
	}
	if (root)
		sqlite3_bind_text(st, 1, root, -1, SQLITE_TRANSIENT);
	free(root);
	while (sqlite3_step(st) == SQLITE_ROW)
		a = jv_array_append(a, row_json(st, 0));
	sqlite3_finalize(st);
	*reply = jv_object_set(jv_object(), jv_string("allocations"), a);
	return NN_OK;
}

static enum nn_code be_logs(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct amod *m = mod(n);
	jv body, o;
	enum nn_code code;
	const char *id = scoped_id(n, req, &body, &code, err);
	sqlite3_stmt *st;
	if (!id)
		return code;
	st = prep(m, "SELECT dir, state FROM allocations WHERE id = ?");
	if (!st) {
		jv_free(body);
		return NN_E_INTERNAL;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		nn_seterr(err, "no allocation '%.80s' on this node", id);
		sqlite3_finalize(st);
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	{
		const char *dir = (const char *)sqlite3_column_text(st, 0);
		const char *state = (const char *)sqlite3_column_text(st, 1);
		char *p;
		o = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
		o = jv_object_set(o, jv_string("dir"), jv_string(dir));
		o = jv_object_set(o, jv_string("state"), jv_string(state));
		o = jv_object_set(o, jv_string("final"), jv_bool(nn_alloc_state_final(state)));
		p = nn_xasprintf("%s/%s", dir, NN_EXEC_STDOUT);
		o = jv_object_set(o, jv_string("stdout"), jv_string(p));
		free(p);
		p = nn_xasprintf("%s/%s", dir, NN_EXEC_STDERR);
		o = jv_object_set(o, jv_string("stderr"), jv_string(p));
		free(p);
	}
	sqlite3_finalize(st);
	jv_free(body);
	*reply = o;
	return NN_OK;
}

static enum nn_code be_cancel(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct amod *m = mod(n);
	jv body;
	enum nn_code code;
	const char *id = scoped_id(n, req, &body, &code, err);
	struct alloc *a;
	int64_t grace = DEFAULT_GRACE_MS;
	if (!id)
		return code;
	if (get_duration(body, "grace", &grace, "body", err) < 0) {
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	if (!exists(m, id)) {
		nn_seterr(err, "no allocation '%.80s' on this node", id);
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	a = find(m, id);
	*reply = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
	if (a && !nn_alloc_state_final(a->state)) {
		cancel_tree(a, grace);
		*reply = jv_object_set(*reply, jv_string("cancelled"), jv_true());
	} else {
		*reply = jv_object_set(*reply, jv_string("cancelled"), jv_false());
	}
	jv_free(body);
	return NN_OK;
}

/* /alloc/restart {"id","reason","escalate","hold","release"}: for a
 * supervisor on another node.  A running job is killed; then restarted at
 * once, not counted against its own restart intensity (the supervisor
 * counts), or with escalate its end is a failure that its own policy
 * judges.  With hold its next run (this one's, or that of one not running
 * now) waits, state waiting, reason NN_ALLOC_HELD, until release. */
static enum nn_code be_restart(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct amod *m = mod(n);
	jv body, esc, hold, rel;
	enum nn_code code;
	const char *id = scoped_id(n, req, &body, &code, err), *why = "restarted by its supervisor";
	struct alloc *a;
	int ok = 0;
	if (!id)
		return code;
	if (nn_json_has(body, "reason") && nn_json_get_str(body, "reason", &why, err) < 0) {
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	if (!exists(m, id)) {
		nn_seterr(err, "no allocation '%.80s' on this node", id);
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	esc = jget(body, "escalate");
	hold = jget(body, "hold");
	rel = jget(body, "release");
	a = find(m, id);
	if (jv_get_kind(rel) == JV_KIND_TRUE) {
		/* its held run may start (once its "after" holds) */
		if (a && a->held) {
			set_held(a, 0);
			ok = 1;
			if (!strcmp(a->state, "waiting") && !a->cancel)
				run_next(a);	/* a may be gone */
		}
		*reply = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
		*reply = jv_object_set(*reply, jv_string("released"), jv_bool(ok));
		goto out;
	}
	if (a && !a->cancel && jv_get_kind(hold) == JV_KIND_TRUE && !nn_alloc_state_final(a->state) &&
	    jv_get_kind(esc) != JV_KIND_TRUE) {
		set_held(a, 1);
		if (!strcmp(a->state, "waiting"))
			set_state(a, "waiting", NN_ALLOC_HELD, jv_null(), -1);
		/* a run starting now is ended once it runs (set_state) */
		if ((!strcmp(a->state, "starting") || !strcmp(a->state, "staging")) && !a->sup) {
			a->sup = 1;
			snprintf(a->sup_msg, sizeof a->sup_msg, "%s", why);
			ok = 1;
		}
	}
	if (a && !a->cancel && !a->sup && !strcmp(a->state, "running")) {
		a->sup = jv_get_kind(esc) == JV_KIND_TRUE ? 2 : 1;
		snprintf(a->sup_msg, sizeof a->sup_msg, "%s", why);
		signal_job(a, SIGKILL);
		ok = 1;
	}
	*reply = jv_object_set(jv_object(), jv_string("id"), jv_string(id));
	*reply = jv_object_set(*reply, jv_string("restarted"), jv_bool(ok));
out:
	jv_free(hold);
	jv_free(rel);
	jv_free(esc);
	jv_free(body);
	return NN_OK;
}

static const struct nn_behavior behaviors[] = {
	{ "/alloc/start", be_start, "check a job spec, then start it as an allocation", 0 },
	{ "/alloc/list", be_list, "list live allocations (all with {\"all\":true})", 0 },
	{ "/alloc/status", be_status, "one allocation: state, result, history, children", 0 },
	{ "/alloc/logs", be_logs, "where an allocation's logs are", 0 },
	{ "/alloc/cancel", be_cancel, "stop an allocation, its children first", 0 },
	{ "/alloc/restart", be_restart, "kill a running job for its supervisor: restart it, or fail it", 0 },
};

/* ---- attach, reconnect, close ---- */

static void on_close(struct nn_node *n, void *arg)
{
	struct amod *m = arg;
	while (m->list) {
		struct alloc *a = m->list;
		m->list = a->next;
		alloc_free(a);
	}
	spare_close(m);
	sdir_clear(m);
	while (m->reaps)
		reap_free(m, m->reaps);
	if (m->tick)
		nn_loop_remove(nn_node_loop(n), m->tick);
	if (m->wake)
		nn_loop_remove(nn_node_loop(n), m->wake);
	free(m->shim_path);
	if (the_mod == m)
		the_mod = NULL;
	free(m);
}

/* Every allocation the store says is live: find its shim again. */
static int reconnect_all(struct amod *m, char *err)
{
	sqlite3_stmt *st = prep(m, "SELECT id, parent, dir, spec, opts, state, run, cancel, did, held"
			       " FROM allocations WHERE state NOT IN"
			       " ('exited', 'killed', 'oom', 'failed') ORDER BY created, rowid");
	if (!st)
		return nn_seterr(err, "cannot read the allocations: %s", sqlite3_errmsg(dbh(m)));
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct alloc *a = alloc_new(m, (const char *)sqlite3_column_text(st, 0),
					    (const char *)sqlite3_column_text(st, 2),
					    (const char *)sqlite3_column_text(st, 1),
					    col_json(st, 3), col_json(st, 4));
		snprintf(a->state, sizeof a->state, "%s", sqlite3_column_text(st, 5));
		a->run = sqlite3_column_int(st, 6);
		a->cancel = sqlite3_column_int(st, 7);
		if (sqlite3_column_text(st, 8))
			snprintf(a->did, sizeof a->did, "%s", sqlite3_column_text(st, 8));
		a->held = sqlite3_column_int(st, 9);
	}
	sqlite3_finalize(st);
	/* m->list now holds them; connect each (recover may drop one) */
	for (struct alloc *a = m->list, *next; a; a = next) {
		char e[NN_ERRLEN];
		next = a->next;
		/* between runs, the last run's shim may still wait for its
		 * ack: let it have it (and go) before the next run starts */
		if (!strcmp(a->state, "restarting"))
			a->respawn = 1;
		cred_renew(a);	/* renewed at every start of the node */
		if (shim_connect(a, e) < 0)
			recover(a);
	}
	return 0;
}

/* /node/metrics: allocations by state, and restarts so far. */
static void alloc_metrics(struct nn_node *n, struct nn_buf *b, void *arg)
{
	sqlite3_stmt *st;
	sqlite3 *h = nn_node_db(n)->h;
	nn_buf_adds(b, "# HELP nunet_allocations Allocations on this node, by state.\n"
		       "# TYPE nunet_allocations gauge\n");
	if (sqlite3_prepare_v2(h, "SELECT state, count(*) FROM allocations GROUP BY state ORDER BY state",
			       -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			nn_buf_addf(b, "nunet_allocations{state=\"%s\"} %lld\n", sqlite3_column_text(st, 0),
				    (long long)sqlite3_column_int64(st, 1));
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(h, "SELECT count(*) FROM alloc_restarts", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			nn_buf_addf(b, "# HELP nunet_allocation_restarts_total Restarts by supervision.\n"
				    "# TYPE nunet_allocation_restarts_total counter\n"
				    "nunet_allocation_restarts_total %lld\n", (long long)sqlite3_column_int64(st, 0));
		sqlite3_finalize(st);
	}
}

int nn_alloc_observe(struct nn_node *n, const struct nn_alloc_observer *o, char *err)
{
	struct amod *m = mod(n);
	if (!m)
		return nn_seterr(err, "allocations are not attached");
	if (m->nobs == (int)(sizeof m->obs / sizeof *m->obs))
		return nn_seterr(err, "alloc: too many observers");
	m->obs[m->nobs++] = o;
	return 0;
}

int nn_alloc_attach(struct nn_node *n, char *err)
{
	struct amod *m;
	char e[NN_ERRLEN];
	if (the_mod)
		return nn_seterr(err, "alloc: attached twice");
	if (nn_db_migrate_module(nn_node_db(n), "alloc", schema, e) < 0)
		return nn_seterr(err, "alloc: %s", e);
	m = nn_xcalloc(1, sizeof *m);
	m->n = n;
	m->hb_ms = HEARTBEAT_MS;
	m->cap_ttl_ms = CAP_TTL_MS;
	m->orphans = 1;		/* parents may have ended while the node was down */
	{
		/* for tests: tokens that must be renewed within seconds */
		const char *t = getenv("NUNET_ALLOC_CAP_TTL");
		int64_t ms;
		if (t && *t && nn_parse_duration_ms(t, &ms) == 0 && ms >= 1000)
			m->cap_ttl_ms = ms;
	}
	m->shim_path = find_shim();
	m->spare_ctl = m->spare_ready = -1;
	{
		const char *sp = getenv("NUNET_ALLOC_SPARE");
		m->spare_on = !sp || strcmp(sp, "0");
	}
	the_mod = m;
	nn_node_on_close(n, on_close, m);
	nn_node_metrics_hook(n, alloc_metrics, m);
	for (size_t i = 0; i < sizeof behaviors / sizeof *behaviors; i++)
		nn_node_behavior(n, &behaviors[i]);
	m->tick = nn_loop_timer(nn_node_loop(n), m->hb_ms, m->hb_ms, on_tick, m, e);
	if (!m->tick)
		return nn_seterr(err, "alloc: %s", e);
	{
		char *dir = nn_xasprintf("%s/alloc", nn_node_home(n));
		mkdir(dir, 0700);
		free(dir);
	}
	sdir_clear(m);		/* what a node killed before left */
	{
		char *root = sdir_root(m);
		mkdir(root, 0700);
		free(root);
	}
	if (reconnect_all(m, err) < 0)
		return -1;
	spare_start(m);
	return 0;
}
