/*
 * core units: canonical JSON, base58/base64, did:key, key files,
 * envelopes, the replay cache, the line reader, the store, the loop and
 * size parsing.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "codec.h"
#include "config.h"
#include "db.h"
#include "dlcurl.h"
#include "env.h"
#include "events.h"
#include "json.h"
#include "key.h"
#include "lines.h"
#include "loop.h"
#include "util.h"
#include "test-tool.h"

static char *slurp_stdin(size_t *len)
{
	struct nn_buf b = NN_BUF_INIT;
	char chunk[65536];
	ssize_t n;
	while ((n = read(0, chunk, sizeof chunk)) > 0)
		nn_buf_add(&b, chunk, n);
	return nn_buf_detach(&b, len);
}

/* canon: each stdin JSON line → its RFC 8785 form. */
int cmd__canon(int argc, char **argv)
{
	struct nn_lines l;
	char err[NN_ERRLEN];
	jv v;
	int rc = 0, code;
	nn_lines_init(&l, 0);
	while (nn_lines_read_fd(&l, 0) > 0)
		;
	nn_lines_feed(&l, "\n", 1);
	for (;;) {
		int r = nn_jsonl_next(&l, &v, &code, err);
		if (r == NN_JSONL_NONE)
			break;
		if (r == NN_JSONL_ERROR) {
			printf("error: %s\n", err);
			rc = 65;
			continue;
		}
		char *s = nn_json_canon_str(v, err);
		if (s)
			printf("%s\n", s);
		else {
			printf("error: %s\n", err);
			rc = 65;
		}
		free(s);
		jv_free(v);
	}
	nn_lines_release(&l);
	return rc;
}

/* b58 enc HEX | b58 dec B58 */
int cmd__b58(int argc, char **argv)
{
	uint8_t buf[128];
	char out[256];
	if (argc != 3)
		return 64;
	if (!strcmp(argv[1], "enc")) {
		size_t n = strlen(argv[2]) / 2;
		if (n > sizeof buf || nn_hex_decode(buf, n, argv[2]) < 0)
			return 65;
		if (nn_b58_encode(out, sizeof out, buf, n) < 0)
			return 65;
		printf("%s\n", out);
		return 0;
	}
	int n = nn_b58_decode(buf, sizeof buf, argv[2]);
	if (n < 0) {
		printf("error\n");
		return 65;
	}
	nn_hex_encode(out, buf, n);
	printf("%s\n", out);
	return 0;
}

/* Both base64 codecs (libsodium's and the one for public data) on n
 * random strings over an alphabet with padding and a stray character, and
 * their encodings of random bytes: the first difference, or "same N". */
static int b64_compare(long n)
{
	static const char alpha[] = "AQgw+/=!";
	uint8_t a[16], b[16], raw[16];
	char s[32], e1[32], e2[32];
	srandom(8);
	for (long k = 0; k < n; k++) {
		size_t len = (size_t)random() % 13;
		for (size_t i = 0; i < len; i++)
			s[i] = alpha[random() % 8];
		s[len] = '\0';
		size_t outlen = (size_t)random() % 10;
		int r1 = nn_b64_decode(a, outlen, s, len), r2 = nn_b64_decode_pub(b, outlen, s, len);
		if (r1 != r2 || (r1 > 0 && memcmp(a, b, (size_t)r1))) {
			printf("differ: '%s' (room %zu): %d %d\n", s, outlen, r1, r2);
			return 1;
		}
		len = (size_t)random() % 16;
		for (size_t i = 0; i < len; i++)
			raw[i] = (uint8_t)random();
		nn_b64_encode(e1, raw, len);
		nn_b64_encode_pub(e2, raw, len);
		if (strcmp(e1, e2)) {
			printf("differ: encoding %zu bytes: %s %s\n", len, e1, e2);
			return 1;
		}
	}
	printf("same %ld\n", n);
	return 0;
}

/* b64 enc HEX | b64 dec B64 | b64 compare N */
int cmd__b64(int argc, char **argv)
{
	uint8_t buf[128];
	char out[512];
	if (argc != 3)
		return 64;
	if (!strcmp(argv[1], "compare"))
		return b64_compare(atol(argv[2]));
	if (!strcmp(argv[1], "enc")) {
		size_t n = strlen(argv[2]) / 2;
		if (n > sizeof buf || nn_hex_decode(buf, n, argv[2]) < 0)
			return 65;
		nn_b64_encode(out, buf, n);
		printf("%s\n", out);
		return 0;
	}
	int n = nn_b64_decode(buf, sizeof buf, argv[2], strlen(argv[2]));
	if (n < 0) {
		printf("error\n");
		return 65;
	}
	nn_hex_encode(out, buf, n);
	printf("%s\n", out);
	return 0;
}

/* did seed HEXSEED → did and pk hex | did pk ADDR → pk hex */
int cmd__did(int argc, char **argv)
{
	uint8_t seed[32], pk[32];
	char hex[65], err[NN_ERRLEN];
	struct nn_key k;
	if (argc != 3)
		return 64;
	if (!strcmp(argv[1], "seed")) {
		if (nn_hex_decode(seed, 32, argv[2]) < 0)
			return 65;
		nn_key_from_seed(&k, seed);
		nn_hex_encode(hex, k.pk, 32);
		printf("%s %s\n", k.did, hex);
		return 0;
	}
	if (nn_did_to_pk(argv[2], pk, err) < 0) {
		printf("error: %s\n", err);
		return 65;
	}
	nn_hex_encode(hex, pk, 32);
	printf("%s\n", hex);
	return 0;
}

/* key gen PATH [PASS] | key load PATH [PASS] */
int cmd__key(int argc, char **argv)
{
	struct nn_key k;
	char err[NN_ERRLEN];
	if (argc < 3)
		return 64;
	if (!strcmp(argv[1], "gen")) {
		nn_key_generate(&k);
		if (nn_key_save(&k, argv[2], argc > 3 ? argv[3] : NULL, err) < 0) {
			printf("error: %s\n", err);
			return 74;
		}
	} else if (nn_key_load(&k, argv[2], argc > 3 ? argv[3] : NULL, err) < 0) {
		printf("error: %s\n", err);
		return 1;
	}
	printf("%s\n", k.did);
	nn_key_clear(&k);
	return 0;
}

/*
 * env sign SEEDHEX|KEYFILE: stdin envelope → the same, signed, as one line
 * env verify [NOW]: stdin envelope → "ok" or "CODE: message"
 */
int cmd__env(int argc, char **argv)
{
	char err[NN_ERRLEN];
	size_t len;
	char *text;
	jv e;
	if (argc < 2)
		return 64;
	text = slurp_stdin(&len);
	e = nn_json_parse(text, len, err);
	free(text);
	if (!strcmp(argv[1], "sign")) {
		uint8_t seed[32];
		struct nn_key k;
		struct nn_buf out = NN_BUF_INIT;
		if (argc < 3)
			return 64;
		if (nn_hex_decode(seed, 32, argv[2]) == 0)
			nn_key_from_seed(&k, seed);
		else if (nn_key_load(&k, argv[2], getenv("NUNET_PASSPHRASE"), err) < 0) {
			printf("error: %s\n", err);
			return 64;
		}
		if (!jv_is_valid(e)) {
			printf("error: %s\n", err);
			return 65;
		}
		if (nn_env_sign_line(e, &k, &out, err) < 0) {
			printf("error: %s\n", err);
			return 65;
		}
		fputs(out.data, stdout);
		nn_buf_release(&out);
		return 0;
	}
	if (!strcmp(argv[1], "request")) {
		/* request SEED ID TS TO BE BODY [TRACE] (stdin unused): a
		 * request line written by nn_env_line and through a jv
		 * (nn_env_new + nn_env_sign_line): prints both, exit 0 when
		 * they are the same bytes */
		uint8_t seed[32];
		struct nn_key k;
		struct nn_buf direct = NN_BUF_INIT, via = NN_BUF_INIT;
		struct nn_env_head h = { .type = "msg" };
		jv body, env;
		int same;
		jv_free(e);
		if (argc < 8 || argc > 9 || nn_hex_decode(seed, 32, argv[2]) != 0)
			return 64;
		nn_key_from_seed(&k, seed);
		h.id = argv[3];
		h.ts = strtoll(argv[4], NULL, 10);
		h.exp = h.ts + 60000;
		h.from = k.did;
		h.to = argv[5];
		h.be = *argv[6] ? argv[6] : NULL;
		h.trace = argc == 9 ? argv[8] : NULL;
		body = nn_json_parse(argv[7], strlen(argv[7]), err);
		if (!jv_is_valid(body)) {
			printf("parse: %s\n", err);
			return 65;
		}
		env = nn_env_new("msg", k.did, h.to, h.be, jv_copy(body), 60000);
		env = jv_object_set(env, jv_string("id"), jv_string(h.id));
		env = jv_object_set(env, jv_string("ts"), jv_number((double)h.ts));
		env = jv_object_set(env, jv_string("exp"), jv_number((double)h.exp));
		if (h.trace)
			env = jv_object_set(env, jv_string("trace"), jv_string(h.trace));
		if (nn_env_line(&h, body, &k, &direct, err) < 0 ||
		    nn_env_sign_line(env, &k, &via, err) < 0) {
			printf("error: %s\n", err);
			return 65;
		}
		fputs(direct.data, stdout);
		fputs(via.data, stdout);
		same = direct.len == via.len && !memcmp(direct.data, via.data, via.len);
		nn_buf_release(&direct);
		nn_buf_release(&via);
		return same ? 0 : 1;
	}
	if (!strcmp(argv[1], "answer")) {
		/* answer SEED ID TS BODY: the reply line to the envelope on
		 * stdin, written by nn_env_answer_line and through a jv
		 * (nn_env_answer + nn_env_sign_line): prints both, exit 0
		 * when they are the same bytes */
		uint8_t seed[32];
		struct nn_key k;
		struct nn_env_head h;
		struct nn_buf direct = NN_BUF_INIT, via = NN_BUF_INIT;
		int64_t ts;
		jv body, ans;
		enum nn_code c;
		int same;
		if (argc != 6 || nn_hex_decode(seed, 32, argv[2]) != 0)
			return 64;
		nn_key_from_seed(&k, seed);
		ts = strtoll(argv[4], NULL, 10);
		body = nn_json_parse(argv[5], strlen(argv[5]), err);
		if (!jv_is_valid(e) || !jv_is_valid(body)) {
			printf("parse: %s\n", err);
			return 65;
		}
		c = nn_env_verify_head(e, NULL, ts, 1, &h, err);
		if (c != NN_OK) {
			printf("%s: %s\n", nn_code_name(c), err);
			return 1;
		}
		if (nn_env_answer_line(&h, "reply", k.did, jv_copy(body), argv[3], ts, 60000, &k,
				       &direct, err) < 0) {
			printf("error: %s\n", err);
			return 65;
		}
		ans = nn_env_answer(e, "reply", k.did, body, 60000);
		ans = jv_object_set(ans, jv_string("id"), jv_string(argv[3]));
		ans = jv_object_set(ans, jv_string("ts"), jv_number((double)ts));
		ans = jv_object_set(ans, jv_string("exp"), jv_number((double)(ts + 60000)));
		if (nn_env_sign_line(ans, &k, &via, err) < 0) {
			printf("error: %s\n", err);
			return 65;
		}
		fputs(direct.data, stdout);
		fputs(via.data, stdout);
		same = direct.len == via.len && !memcmp(direct.data, via.data, via.len);
		nn_buf_release(&direct);
		nn_buf_release(&via);
		jv_free(e);
		return same ? 0 : 1;
	}
	if (!strcmp(argv[1], "verify")) {
		int64_t now = argc > 2 ? strtoll(argv[2], NULL, 10) : nn_now_ms();
		enum nn_code c;
		if (!jv_is_valid(e)) {
			printf("parse: %s\n", err);
			return 1;
		}
		c = nn_env_verify(e, NULL, now, err);
		jv_free(e);
		if (c == NN_OK) {
			printf("ok\n");
			return 0;
		}
		printf("%s: %s\n", nn_code_name(c), err);
		return 1;
	}
	jv_free(e);
	return 64;
}

/* replay MAX: stdin lines "FROM ID EXP NOW" → new|seen|full */
int cmd__replay(int argc, char **argv)
{
	struct nn_replay *r;
	char from[256], id[128];
	long long exp, now;
	if (argc != 2)
		return 64;
	r = nn_replay_new(strtoul(argv[1], NULL, 10));
	while (scanf("%255s %127s %lld %lld", from, id, &exp, &now) == 4) {
		int x = nn_replay_check(r, from, id, exp, now);
		printf("%s\n", x == 0 ? "new" : x == 1 ? "seen" : "full");
	}
	printf("size %zu\n", nn_replay_size(r));
	nn_replay_free(r);
	return 0;
}

/* lines MAX [CHUNK]: stdin fed CHUNK bytes at a time → "value JSON" or
 * "error MESSAGE" per line */
int cmd__lines(int argc, char **argv)
{
	struct nn_lines l;
	size_t len, chunk = argc > 2 ? strtoul(argv[2], NULL, 10) : 4096;
	char *text = slurp_stdin(&len), err[NN_ERRLEN];
	int code;
	jv v;
	if (argc < 2)
		return 64;
	nn_lines_init(&l, strtoul(argv[1], NULL, 10));
	for (size_t off = 0; off < len; off += chunk) {
		nn_lines_feed(&l, text + off, off + chunk <= len ? chunk : len - off);
		for (;;) {
			int r = nn_jsonl_next(&l, &v, &code, err);
			if (r == NN_JSONL_NONE)
				break;
			if (r == NN_JSONL_ERROR) {
				printf("error %s\n", err);
				continue;
			}
			char *s = nn_json_dump(v);
			printf("value %s\n", s);
			free(s);
			jv_free(v);
		}
	}
	printf("pending %zu\n", nn_lines_pending(&l));
	free(text);
	nn_lines_release(&l);
	return 0;
}

/* db PATH N: open with the first N steps of a test schema; print version
 * and tables.  N beyond the schema: the extra step fails on purpose. */
int cmd__db(int argc, char **argv)
{
	static const char *steps[] = {
		"CREATE TABLE a (x INTEGER);",
		"CREATE TABLE b (y TEXT); INSERT INTO a VALUES (1);",
		"CREATE TABLE c (z); THIS IS NOT SQL;",
	};
	const char *mig[4] = { NULL, NULL, NULL, NULL };
	struct nn_db db;
	char err[NN_ERRLEN];
	sqlite3_stmt *st;
	int n;
	if (argc == 4) {
		/* db PATH MODULE N: the same steps as a module of a node store */
		n = atoi(argv[3]);
		for (int i = 0; i < n && i < 3; i++)
			mig[i] = steps[i];
		if (nn_db_open(&db, argv[1], nn_node_schema, err) < 0) {
			printf("error: %s\n", err);
			return 1;
		}
		if (nn_db_migrate_module(&db, argv[2], mig, err) < 0) {
			printf("error: %s\n", err);
			nn_db_close(&db);
			return 1;
		}
		printf("user_version %d\n", db.version);
		sqlite3_prepare_v2(db.h, "SELECT name, version FROM nn_modules ORDER BY name", -1, &st, NULL);
		while (sqlite3_step(st) == SQLITE_ROW)
			printf("module %s %d\n", sqlite3_column_text(st, 0), sqlite3_column_int(st, 1));
		sqlite3_finalize(st);
		nn_db_close(&db);
		return 0;
	}
	if (argc != 3)
		return 64;
	n = atoi(argv[2]);
	for (int i = 0; i < n && i < 3; i++)
		mig[i] = steps[i];
	if (nn_db_open(&db, argv[1], mig, err) < 0) {
		printf("error: %s\n", err);
		return 1;
	}
	printf("version %d\n", db.version);
	sqlite3_prepare_v2(db.h, "PRAGMA journal_mode", -1, &st, NULL);
	if (sqlite3_step(st) == SQLITE_ROW)
		printf("journal %s\n", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_prepare_v2(db.h, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name",
			   -1, &st, NULL);
	while (sqlite3_step(st) == SQLITE_ROW)
		printf("table %s\n", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	nn_db_close(&db);
	return 0;
}

struct loopstate {
	int ticks, pipefd[2];
	struct nn_watch *periodic, *pw;
	int64_t t0;
};

static void on_once(struct nn_loop *l, void *arg)
{
	printf("once\n");
	kill(getpid(), SIGUSR1);
}

static void on_tick(struct nn_loop *l, void *arg)
{
	struct loopstate *s = arg;
	printf("tick %d\n", ++s->ticks);
	if (s->ticks == 3) {
		nn_loop_remove(l, s->periodic);
		if (write(s->pipefd[1], "x", 1) != 1)
			exit(70);
	}
}

static void on_sig(struct nn_loop *l, int signo, void *arg)
{
	struct loopstate *s = arg;
	char err[NN_ERRLEN];
	printf("signal %s\n", signo == SIGUSR1 ? "USR1" : "other");
	/* the periodic timer starts from here, so the order printed does not
	 * depend on how late a loaded machine wakes the loop */
	if (!s->periodic && !(s->periodic = nn_loop_timer(l, 10, 10, on_tick, s, err))) {
		printf("error: %s\n", err);
		exit(70);
	}
}

static void on_pipe(struct nn_loop *l, int fd, uint32_t ev, void *arg)
{
	struct loopstate *s = arg;
	char c;
	if (read(fd, &c, 1) == 1)
		printf("readable %c after %s\n", c, nn_mono_ms() - s->t0 >= 30 ? ">=30ms" : "<30ms");
	nn_loop_remove(l, s->pw);
	nn_loop_stop(l);
}

/* loop: a one-shot timer at 5 ms raising SIGUSR1, whose handler starts a
 * 10 ms periodic timer removed after 3 ticks, which then makes a pipe
 * readable and stops. */
int cmd__loop(int argc, char **argv)
{
	char err[NN_ERRLEN];
	struct loopstate s = { 0 };
	struct nn_loop *l = nn_loop_new(err);
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!l || pipe(s.pipefd) < 0)
		return 70;
	s.t0 = nn_mono_ms();
	if (nn_loop_signal(l, SIGUSR1, on_sig, &s, err) < 0 ||
	    !nn_loop_timer(l, 5, 0, on_once, &s, err) ||
	    !(s.pw = nn_loop_fd(l, s.pipefd[0], EPOLLIN, on_pipe, &s, err))) {
		printf("error: %s\n", err);
		return 70;
	}
	if (nn_loop_run(l) < 0)
		return 70;
	nn_loop_free(l);
	close(s.pipefd[0]);
	close(s.pipefd[1]);
	return 0;
}

/* size S | duration D */
int cmd__size(int argc, char **argv)
{
	uint64_t v;
	int64_t ms;
	if (argc != 3)
		return 64;
	if (!strcmp(argv[1], "size")) {
		if (nn_parse_size(argv[2], &v) < 0) {
			printf("error\n");
			return 65;
		}
		printf("%llu\n", (unsigned long long)v);
		return 0;
	}
	if (nn_parse_duration_ms(argv[2], &ms) < 0) {
		printf("error\n");
		return 65;
	}
	printf("%lld\n", (long long)ms);
	return 0;
}

/*
 * events-bench N DB: emit N events (msg.in-like fields) through
 * nn_events_emit into a node store, flushing in batches as the node does;
 * then insert the same number of rows with one prepared statement in one
 * transaction, the baseline.  Prints {"events_per_s":…,"baseline_per_s":…}.
 */
int cmd__events_bench(int argc, char **argv)
{
	struct nn_db db;
	struct nn_events *ev;
	char err[NN_ERRLEN];
	long n;
	int64_t t0, t1, t2;
	sqlite3_stmt *st;

	if (argc != 3)
		return 64;
	n = atol(argv[1]);
	if (nn_db_open(&db, argv[2], nn_node_schema, err) < 0 ||
	    !(ev = nn_events_open(&db, "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", NULL, err))) {
		printf("error: %s\n", err);
		return 1;
	}
	t0 = nn_mono_ms();
	for (long i = 0; i < n; i++) {
		jv f = jv_object();
		f = jv_object_set(f, jv_string("type"), jv_string("msg"));
		f = jv_object_set(f, jv_string("be"), jv_string("/node/ping"));
		f = jv_object_set(f, jv_string("id"), jv_string("0123456789abcdef0123456789abcdef"));
		f = jv_object_set(f, jv_string("client"), jv_number((double)(i % 100)));
		nn_events_emit(ev, NN_LOG_DEBUG, "msg.in", "5eed", NULL, f);
	}
	nn_events_close(ev);
	t1 = nn_mono_ms();
	nn_db_exec(&db, "CREATE TABLE base (seq INTEGER PRIMARY KEY, ts INTEGER, kind TEXT, trace TEXT,"
		   " body TEXT, level TEXT, span TEXT)", NULL);
	nn_db_exec(&db, "BEGIN", NULL);
	sqlite3_prepare_v2(db.h, "INSERT INTO base VALUES (?, ?, ?, ?, ?, ?, NULL)", -1, &st, NULL);
	for (long i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, i + 1);
		sqlite3_bind_int64(st, 2, nn_now_ms());
		sqlite3_bind_text(st, 3, "msg.in", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, "5eed", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, "{\"be\":\"/node/ping\",\"client\":1,\"id\":\"0123456789abcdef0123456789abcdef\",\"type\":\"msg\"}", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, "debug", -1, SQLITE_STATIC);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	nn_db_exec(&db, "COMMIT", NULL);
	t2 = nn_mono_ms();
	nn_db_close(&db);
	printf("{\"events_per_s\":%.0f,\"baseline_per_s\":%.0f}\n", n * 1000.0 / (t1 - t0 ? t1 - t0 : 1),
	       n * 1000.0 / (t2 - t1 ? t2 - t1 : 1));
	return 0;
}

/*
 * dlcurl: load libcurl through lib/dlcurl.c and call it: escape "a b&c",
 * parse a URL and print its host, set options of each argument type on an
 * easy handle.  dlcurl SONAME: only try to load SONAME, print why not.
 */
int cmd__dlcurl(int argc, char **argv)
{
	char err[NN_ERRLEN], *esc, *host = NULL;
	CURL *c;
	CURLU *u;
	if (argc == 2) {
		if (nn_dlcurl_probe(argv[1], err) < 0) {
			printf("%s\n", err);
			return 69;
		}
		printf("loaded\n");
		return 0;
	}
	if (nn_dlcurl_load(err) < 0) {
		printf("%s\n", err);
		return 69;
	}
	c = curl_easy_init();
	if (!c)
		return 70;
	esc = curl_easy_escape(c, "a b&c", 0);
	printf("%s\n", esc);
	curl_free(esc);
	u = curl_url();
	if (curl_url_set(u, CURLUPART_URL, "http://example.invalid:8080/x", 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		return 70;
	printf("%s\n", host);
	curl_free(host);
	curl_url_cleanup(u);
	if (curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_URL, "http://127.0.0.1:1/") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)1 << 40) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "nosuchproto") != CURLE_UNSUPPORTED_PROTOCOL)
		return 70;
	printf("%s\n", curl_easy_strerror(CURLE_COULDNT_CONNECT));
	curl_easy_cleanup(c);
	return 0;
}
