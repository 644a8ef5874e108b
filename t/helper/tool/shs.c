/*
 * shs and box-stream units: `test-tool shs pair …` drives a client and a
 * server handshake against each other in memory (fixed or random keys, a bit
 * flipped in transit, a wrong swarm or server key) and prints every message
 * and the derived keys; `test-tool shs bs enc|dec|roundtrip …` encodes and
 * decodes box-streams over stdin/stdout and round-trips lines of given
 * lengths in memory; `keygen`, `public-netkey`, `netkey-new`, `netkey-load`
 * expose the key helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "boxstream.h"
#include "key.h"
#include "lines.h"
#include "shs.h"
#include "util.h"
#include "test-tool.h"

static void print_hex(const char *label, const uint8_t *p, size_t n)
{
	char *hex = nn_xmalloc(2 * n + 1);
	nn_hex_encode(hex, p, n);
	printf("%s %s\n", label, hex);
	free(hex);
}

static int hexarg(uint8_t *out, size_t n, const char *s, const char *what)
{
	if (nn_hex_decode(out, n, s) < 0) {
		fprintf(stderr, "test-tool: %s must be %zu bytes of hex\n", what, n);
		return -1;
	}
	return 0;
}

/* A key from a 64-byte libsodium secret key in hex, or a random one. */
static int keyarg(struct nn_key *k, const char *s)
{
	uint8_t sk[64];
	if (!s || !strcmp(s, "random")) {
		nn_key_generate(k);
		return 0;
	}
	if (hexarg(sk, 64, s, "a secret key") < 0)
		return -1;
	nn_key_from_seed(k, sk);
	sodium_memzero(sk, sizeof sk);
	return 0;
}

/* --hello TEXT: the server sends TEXT as a box-stream line and a goodbye
 * right behind msg4, in the same write, as a busy peer would; the client
 * must stop its handshake at the end of msg4 and decode the rest. */
static const char *hello_text;

static int client_stream(struct nn_shs *to, struct nn_bs_dec *d, int *ready,
			 struct nn_lines *l, const uint8_t *p, size_t n, char *err)
{
	while (n) {
		const uint8_t *pl;
		size_t used, plen;
		int r;
		if (!*ready) {
			struct nn_shs_keys k;
			if (nn_shs_result(to, &k, err) < 0)
				return -1;
			nn_bs_dec_init(d, k.dec_key, k.dec_nonce);
			nn_shs_keys_clear(&k);
			*ready = 1;
		}
		r = nn_bs_decode(d, p, n, &used, &pl, &plen, err);
		if (r == NN_BS_ERROR)
			return -1;
		if (r == NN_BS_DATA)
			nn_lines_feed(l, (const char *)pl, plen);
		if (r == NN_BS_GOODBYE) {
			const char *line;
			size_t len;
			while (nn_lines_next(l, &line, &len) == NN_LINES_LINE)
				printf("client got: %.*s\n", (int)len, line);
			printf("client goodbye\n");
			return 0;
		}
		p += used;
		n -= used;
	}
	return 0;
}

/* Move the output of `from` to `to`, flipping bit `flipbit` of message
 * `flipmsg` when this is it, feeding at most `chunk` bytes at a time. */
static int pass(struct nn_shs *from, struct nn_shs *to, int *msgno, int flipmsg,
		int flipbit, size_t chunk, char *err)
{
	uint8_t msg[NN_SHS_MSG3_LEN];
	size_t n = nn_shs_output(from, msg, sizeof msg), off = 0, used;
	struct nn_buf wire = NN_BUF_INIT;
	struct nn_bs_dec *d = NULL;
	struct nn_lines l;
	int ready = 0, r = 1;
	char label[16];

	if (!n)
		return 0;
	++*msgno;
	if (*msgno == flipmsg)
		msg[flipbit / 8 % n] ^= (uint8_t)(1 << (flipbit % 8));
	snprintf(label, sizeof label, "msg%d", *msgno);
	print_hex(label, msg, n);
	nn_buf_add(&wire, msg, n);
	if (hello_text && from->role == NN_SHS_SERVER && nn_shs_status(from) == NN_SHS_DONE) {
		struct nn_shs_keys k;
		struct nn_bs_enc e;
		nn_shs_result(from, &k, NULL);
		nn_bs_enc_init(&e, k.enc_key, k.enc_nonce);
		nn_bs_encode(&e, &wire, hello_text, strlen(hello_text), "\n", NULL);
		nn_bs_goodbye(&e, &wire, NULL);
		nn_bs_enc_clear(&e);
		nn_shs_keys_clear(&k);
		d = nn_xmalloc(sizeof *d);
		nn_lines_init(&l, NN_LINE_MAX_DEFAULT);
	}
	while (off < wire.len && r > 0) {
		size_t k = wire.len - off < chunk ? wire.len - off : chunk;
		const uint8_t *p = (const uint8_t *)wire.data + off;
		if (nn_shs_status(to) != NN_SHS_DONE) {
			if (nn_shs_feed(to, p, k, &used, err) < 0) {
				r = -1;
				break;
			}
		} else {
			used = 0;
		}
		if (used < k && (!d || nn_shs_status(to) != NN_SHS_DONE)) {
			snprintf(err, NN_ERRLEN, "feed took %zu of %zu bytes", used, k);
			r = -1;
		} else if (used < k && client_stream(to, d, &ready, &l, p + used, k - used, err) < 0) {
			r = -1;
		}
		off += k;
	}
	if (d) {
		nn_bs_dec_clear(d);
		free(d);
		nn_lines_release(&l);
	}
	nn_buf_release(&wire);
	return r;
}

static void print_keys(const char *who, const struct nn_shs *s)
{
	struct nn_shs_keys k;
	char label[32];
	if (nn_shs_result(s, &k, NULL) < 0)
		return;
	snprintf(label, sizeof label, "%s_enc_key", who);
	print_hex(label, k.enc_key, 32);
	snprintf(label, sizeof label, "%s_enc_nonce", who);
	print_hex(label, k.enc_nonce, 24);
	snprintf(label, sizeof label, "%s_dec_key", who);
	print_hex(label, k.dec_key, 32);
	snprintf(label, sizeof label, "%s_dec_nonce", who);
	print_hex(label, k.dec_nonce, 24);
	snprintf(label, sizeof label, "%s_peer", who);
	print_hex(label, k.peer_pk, 32);
	nn_shs_keys_clear(&k);
}

static int deny_all(const uint8_t pk[32], void *arg, char *err)
{
	snprintf(err, NN_ERRLEN, "the client is not on our list");
	return -1;
}

/*
 * shs pair [--netkey HEX] [--server-netkey HEX] [--client-sk HEX|random]
 *          [--server-sk HEX|random] [--client-eph HEX] [--server-eph HEX]
 *          [--expect-pk HEX] [--flip MSG BIT] [--chunk N] [--deny]
 *          [--hello TEXT]
 */
static int shs_pair(int argc, char **argv)
{
	uint8_t netkey[32], snetkey[32], ceph[32], seph[32], expect[32];
	int have_snet = 0, have_ceph = 0, have_seph = 0, have_expect = 0;
	const char *csk = NULL, *ssk = NULL;
	int flipmsg = 0, flipbit = 0, msgno = 0, deny = 0, rc = 0;
	size_t chunk = NN_SHS_MSG3_LEN;
	struct nn_key ck, sk;
	struct nn_shs c, s;
	char err[NN_ERRLEN];

	memcpy(netkey, nn_shs_public_netkey, 32);
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(o, "--deny")) {
			deny = 1;
			continue;
		}
		if (!strcmp(o, "--hello") && v) {
			hello_text = v;
			i++;
			continue;
		}
		if (!v)
			return 64;
		i++;
		if (!strcmp(o, "--netkey")) {
			if (hexarg(netkey, 32, v, "--netkey") < 0)
				return 64;
		} else if (!strcmp(o, "--server-netkey")) {
			if (hexarg(snetkey, 32, v, "--server-netkey") < 0)
				return 64;
			have_snet = 1;
		} else if (!strcmp(o, "--client-sk")) {
			csk = v;
		} else if (!strcmp(o, "--server-sk")) {
			ssk = v;
		} else if (!strcmp(o, "--client-eph")) {
			if (hexarg(ceph, 32, v, "--client-eph") < 0)
				return 64;
			have_ceph = 1;
		} else if (!strcmp(o, "--server-eph")) {
			if (hexarg(seph, 32, v, "--server-eph") < 0)
				return 64;
			have_seph = 1;
		} else if (!strcmp(o, "--expect-pk")) {
			if (hexarg(expect, 32, v, "--expect-pk") < 0)
				return 64;
			have_expect = 1;
		} else if (!strcmp(o, "--flip")) {
			if (i + 1 >= argc)
				return 64;
			flipmsg = atoi(v);
			flipbit = atoi(argv[++i]);
		} else if (!strcmp(o, "--chunk")) {
			chunk = (size_t)atoi(v);
			if (!chunk)
				return 64;
		} else {
			return 64;
		}
	}
	if (keyarg(&ck, csk) < 0 || keyarg(&sk, ssk) < 0)
		return 64;
	nn_shs_client_init(&c, netkey, &ck, have_expect ? expect : sk.pk);
	nn_shs_server_init(&s, have_snet ? snetkey : netkey, &sk);
	if (have_ceph)
		nn_shs_set_ephemeral(&c, ceph);
	if (have_seph)
		nn_shs_set_ephemeral(&s, seph);
	if (deny)
		nn_shs_set_authorize(&s, deny_all, NULL);

	/* Ping-pong until both are done, or one fails and hangs up. */
	for (int round = 0; round < 8; round++) {
		int r1 = pass(&c, &s, &msgno, flipmsg, flipbit, chunk, err);
		if (r1 < 0 && nn_shs_status(&s) != NN_SHS_FAILED) {
			printf("error %s\n", err);
			rc = 70;
			break;
		}
		int r2 = pass(&s, &c, &msgno, flipmsg, flipbit, chunk, err);
		if (r2 < 0 && nn_shs_status(&c) != NN_SHS_FAILED) {
			printf("error %s\n", err);
			rc = 70;
			break;
		}
		if (nn_shs_status(&s) == NN_SHS_FAILED || nn_shs_status(&c) == NN_SHS_FAILED)
			break;
		if (nn_shs_status(&s) == NN_SHS_DONE && nn_shs_status(&c) == NN_SHS_DONE)
			break;
	}
	/* A side that failed closes the connection; the other sees the end. */
	if (nn_shs_status(&s) == NN_SHS_FAILED && nn_shs_status(&c) != NN_SHS_FAILED)
		nn_shs_eof(&c, NULL);
	if (nn_shs_status(&c) == NN_SHS_FAILED && nn_shs_status(&s) != NN_SHS_FAILED)
		nn_shs_eof(&s, NULL);
	if (rc == 0 && nn_shs_status(&c) == NN_SHS_DONE && nn_shs_status(&s) == NN_SHS_DONE) {
		print_keys("client", &c);
		print_keys("server", &s);
		printf("ok\n");
	} else if (rc == 0) {
		printf("client %s\n", nn_shs_status(&c) == NN_SHS_FAILED ? nn_shs_error(&c) : "ok");
		printf("server %s\n", nn_shs_status(&s) == NN_SHS_FAILED ? nn_shs_error(&s) : "ok");
		rc = 1;
	}
	nn_shs_clear(&c);
	nn_shs_clear(&s);
	nn_key_clear(&ck);
	nn_key_clear(&sk);
	return rc;
}

/* shs keygen: a random key pair as "SK_HEX PK_HEX". */
static int shs_keygen(void)
{
	struct nn_key k;
	char hex[129];
	nn_key_generate(&k);
	nn_hex_encode(hex, k.sk, 64);
	printf("%s ", hex);
	nn_hex_encode(hex, k.pk, 32);
	printf("%s\n", hex);
	nn_key_clear(&k);
	sodium_memzero(hex, sizeof hex);
	return 0;
}

static double now_s(void)
{
	return (double)nn_mono_ms() / 1000.0;
}

/* One in-memory handshake between fresh machines; 0 when both finish. */
static int one_handshake(const struct nn_key *ck, const struct nn_key *sk)
{
	struct nn_shs c, s;
	uint8_t buf[NN_SHS_MSG3_LEN];
	size_t n, used;
	int r = 0;

	nn_shs_client_init(&c, nn_shs_public_netkey, ck, sk->pk);
	nn_shs_server_init(&s, nn_shs_public_netkey, sk);
	while (r == 0 && (nn_shs_status(&c) == NN_SHS_RUNNING ||
			  nn_shs_status(&s) == NN_SHS_RUNNING)) {
		if ((n = nn_shs_output(&c, buf, sizeof buf)))
			r = nn_shs_feed(&s, buf, n, &used, NULL);
		else if ((n = nn_shs_output(&s, buf, sizeof buf)))
			r = nn_shs_feed(&c, buf, n, &used, NULL);
		else
			r = -1;
	}
	if (nn_shs_status(&c) != NN_SHS_DONE || nn_shs_status(&s) != NN_SHS_DONE)
		r = -1;
	nn_shs_clear(&c);
	nn_shs_clear(&s);
	return r;
}

/* shs bench SECONDS: handshakes/s and box-stream MB/s, each beside a
 * libsodium baseline measured in the same run, as one JSON line. */
static int shs_bench(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0, t0, t;
	struct nn_key ck, sk;
	uint8_t sig[64], msg[160] = { 0 }, key[32], nonce[24];
	long hs = 0, pairs = 0;
	double mb_bs, mb_raw;
	size_t line = 1024 * 1024, bytes;
	uint8_t *plain = nn_xmalloc(line), *box = nn_xmalloc(NN_BS_MAX_BODY + 16);
	struct nn_buf out = NN_BUF_INIT;
	struct nn_bs_enc e;
	struct nn_bs_dec *d = nn_xmalloc(sizeof *d);

	nn_key_generate(&ck);
	nn_key_generate(&sk);
	/* baseline: ed25519 sign+verify pairs (a handshake needs two of each) */
	t0 = now_s();
	do {
		for (int i = 0; i < 100; i++, pairs++) {
			crypto_sign_detached(sig, NULL, msg, sizeof msg, sk.sk);
			if (crypto_sign_verify_detached(sig, msg, sizeof msg, sk.pk) != 0)
				return 70;
		}
	} while ((t = now_s() - t0) < secs);
	double pairs_s = pairs / t;
	t0 = now_s();
	do {
		for (int i = 0; i < 20; i++, hs++)
			if (one_handshake(&ck, &sk) < 0)
				return 70;
	} while ((t = now_s() - t0) < secs);
	double hs_s = hs / t;

	/* baseline: crypto_secretbox of 4096-byte chunks, sealed and opened */
	randombytes_buf(key, sizeof key);
	randombytes_buf(nonce, sizeof nonce);
	randombytes_buf(plain, line);
	bytes = 0;
	t0 = now_s();
	do {
		for (size_t off = 0; off < line; off += NN_BS_MAX_BODY) {
			crypto_secretbox_easy(box, plain + off, NN_BS_MAX_BODY, nonce, key);
			if (crypto_secretbox_open_easy(plain + off, box, NN_BS_MAX_BODY + 16, nonce, key) != 0)
				return 70;
		}
		bytes += line;
	} while ((t = now_s() - t0) < secs);
	mb_raw = bytes / t / 1e6;
	/* box-stream: encode a 1 MiB line, decode it, in 64 KiB reads */
	bytes = 0;
	t0 = now_s();
	do {
		size_t off = 0, used, plen;
		const uint8_t *pl;
		nn_bs_enc_init(&e, key, nonce);
		nn_bs_dec_init(d, key, nonce);
		nn_buf_reset(&out);
		if (nn_bs_encode(&e, &out, plain, line, NULL, NULL) < 0)
			return 70;
		while (off < out.len) {
			size_t piece = out.len - off < 65536 ? out.len - off : 65536;
			if (nn_bs_decode(d, out.data + off, piece, &used, &pl, &plen, NULL) == NN_BS_ERROR)
				return 70;
			off += used;
		}
		bytes += line;
	} while ((t = now_s() - t0) < secs);
	mb_bs = bytes / t / 1e6;
	printf("{\"sign_verify_pairs_per_s\":%.0f,\"handshakes_per_s\":%.0f,"
	       "\"secretbox_mb_per_s\":%.1f,\"boxstream_mb_per_s\":%.1f}\n",
	       pairs_s, hs_s, mb_raw, mb_bs);
	nn_buf_release(&out);
	nn_bs_dec_clear(d);
	free(d);
	free(plain);
	free(box);
	nn_key_clear(&ck);
	nn_key_clear(&sk);
	return 0;
}

/*
 * shs conn [--server-netkey HEX] [--expect-pk HEX] [--early] SIZE...:
 * a client and a server nn_shs_conn on the two ends of a real TCP
 * connection over loopback, driven by one poll loop with non-blocking
 * sockets.  The client sends one line of each SIZE (before the handshake
 * ends with --early), the server echoes each line back, the client checks
 * the echoes and says goodbye, the server says goodbye in turn.
 */
struct side {
	const char *name;
	struct nn_shs_conn c;
	int fd, failed;
};

static void side_fail(struct side *sd, const char *msg)
{
	printf("%s error: %s\n", sd->name, msg);
	sd->failed = 1;
	if (sd->fd >= 0)
		close(sd->fd);
	sd->fd = -1;
}

static void make_line(struct nn_buf *b, int i, size_t size)
{
	nn_buf_reset(b);
	nn_buf_addf(b, "%d:", i);
	while (b->len < size)
		nn_buf_addc(b, (char)('a' + (i + b->len) % 26));
	b->len = size;	/* sizes under the prefix get a cut prefix */
	b->data[size] = '\0';
}

static int shs_conn(int argc, char **argv)
{
	uint8_t snet[32], expect[32];
	int have_snet = 0, have_expect = 0, early = 0, nsizes = 0, sent = 0, echoed = 0;
	size_t sizes[64];
	struct nn_key ck, sk;
	struct side cl = { .name = "client", .fd = -1 }, sv = { .name = "server", .fd = -1 };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof a;
	struct nn_buf want = NN_BUF_INIT;
	char err[NN_ERRLEN];
	int lfd, rc = 0;
	int64_t deadline;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--early")) {
			early = 1;
		} else if (!strcmp(argv[i], "--server-netkey") && i + 1 < argc) {
			if (hexarg(snet, 32, argv[++i], "--server-netkey") < 0)
				return 64;
			have_snet = 1;
		} else if (!strcmp(argv[i], "--expect-pk") && i + 1 < argc) {
			if (hexarg(expect, 32, argv[++i], "--expect-pk") < 0)
				return 64;
			have_expect = 1;
		} else if (nsizes < 64) {
			sizes[nsizes++] = strtoul(argv[i], NULL, 10);
		}
	}
	nn_key_generate(&ck);
	nn_key_generate(&sk);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		perror("test-tool: listen");
		return 70;
	}
	cl.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cl.fd < 0 || connect(cl.fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    (sv.fd = accept(lfd, NULL, NULL)) < 0) {
		perror("test-tool: connect");
		return 70;
	}
	close(lfd);
	fcntl(cl.fd, F_SETFL, O_NONBLOCK);
	fcntl(sv.fd, F_SETFL, O_NONBLOCK);
	nn_shs_conn_client_init(&cl.c, nn_shs_public_netkey, &ck, have_expect ? expect : sk.pk,
				0, 0);
	nn_shs_conn_server_init(&sv.c, have_snet ? snet : nn_shs_public_netkey, &sk, 0, 0);

	deadline = nn_mono_ms() + 20000;
	while ((cl.fd >= 0 || sv.fd >= 0) && nn_mono_ms() < deadline) {
		struct side *sides[2] = { &cl, &sv };
		struct pollfd pf[2];
		const char *line;
		size_t len;
		int r;

		/* the client's sending: early, or once open */
		if (!cl.failed && sent < nsizes &&
		    (early || nn_shs_conn_state(&cl.c) == NN_SHS_CONN_OPEN)) {
			for (; sent < nsizes; sent++) {
				make_line(&want, sent, sizes[sent]);
				if (nn_shs_conn_send(&cl.c, want.data, want.len, err) < 0) {
					side_fail(&cl, err);
					break;
				}
			}
		}
		for (int s = 0; s < 2; s++) {
			struct side *sd = sides[s];
			pf[s].fd = sd->fd;
			pf[s].events = POLLIN | (sd->c.out.len ? POLLOUT : 0);
			pf[s].revents = 0;
		}
		if (poll(pf, 2, 1000) < 0 && errno != EINTR)
			break;
		for (int s = 0; s < 2; s++) {
			struct side *sd = sides[s];
			if (sd->fd < 0)
				continue;
			if (sd->c.out.len) {
				ssize_t n = write(sd->fd, sd->c.out.data, sd->c.out.len);
				if (n > 0)
					nn_buf_consume(&sd->c.out, (size_t)n);
				else if (n < 0 && errno != EAGAIN && errno != EINTR)
					{ side_fail(sd, strerror(errno)); continue; }
			}
			if (pf[s].revents & (POLLIN | POLLHUP | POLLERR)) {
				char buf[65536];
				ssize_t n = read(sd->fd, buf, sizeof buf);
				if (n < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (n <= 0) {
					if (nn_shs_conn_eof(&sd->c, err) < 0) {
						side_fail(sd, err);
						continue;
					}
					close(sd->fd);
					sd->fd = -1;
					continue;
				}
				if (nn_shs_conn_recv(&sd->c, buf, (size_t)n, err) < 0) {
					side_fail(sd, err);
					continue;
				}
			}
		}
		/* the server echoes; both answer a goodbye with theirs */
		while (!sv.failed && (r = nn_shs_conn_next(&sv.c, &line, &len)) != NN_LINES_NONE) {
			if (r == NN_LINES_LINE && nn_shs_conn_send(&sv.c, line, len, err) < 0)
				side_fail(&sv, err);
		}
		while (!cl.failed && (r = nn_shs_conn_next(&cl.c, &line, &len)) != NN_LINES_NONE) {
			make_line(&want, echoed, echoed < nsizes ? sizes[echoed] : 0);
			if (r != NN_LINES_LINE || echoed >= nsizes || len != want.len ||
			    memcmp(line, want.data, len)) {
				printf("client error: echo %d differs\n", echoed);
				rc = 1;
			}
			echoed++;
		}
		if (!cl.failed && cl.fd >= 0 && echoed == nsizes && !cl.c.closing &&
		    nn_shs_conn_state(&cl.c) == NN_SHS_CONN_OPEN)
			nn_shs_conn_close(&cl.c, NULL);
		if (!sv.failed && sv.fd >= 0 && nn_shs_conn_peer_closed(&sv.c) && !sv.c.closing)
			nn_shs_conn_close(&sv.c, NULL);
		/* a side whose goodbye is written and who got the peer's hangs up */
		for (int s = 0; s < 2; s++) {
			struct side *sd = sides[s];
			if (sd->fd >= 0 && sd->c.sent_goodbye && !sd->c.out.len &&
			    nn_shs_conn_peer_closed(&sd->c)) {
				close(sd->fd);
				sd->fd = -1;
			}
		}
	}
	if (cl.fd >= 0 || sv.fd >= 0) {
		printf("error: timed out\n");
		rc = 1;
	}
	if (!cl.failed && !sv.failed && rc == 0) {
		print_hex("client_peer", cl.c.peer_pk, 32);
		print_hex("server_peer", sv.c.peer_pk, 32);
		print_hex("server_pk", sk.pk, 32);
		print_hex("client_pk", ck.pk, 32);
		printf("lines sent=%d echoed=%d\nok\n", sent, echoed);
	} else {
		rc = 1;
	}
	if (cl.fd >= 0)
		close(cl.fd);
	if (sv.fd >= 0)
		close(sv.fd);
	nn_shs_conn_release(&cl.c);
	nn_shs_conn_release(&sv.c);
	nn_buf_release(&want);
	nn_key_clear(&ck);
	nn_key_clear(&sk);
	return rc;
}

/*
 * One nn_shs_conn on a connected non-blocking socket, as the node would
 * drive it.  As a server (lines == NULL) it answers each line L with
 * "echo: L" and the peer's goodbye with its own; as a client it sends
 * `lines`, then its goodbye, and prints each line it receives as "got: L"
 * until the peer's goodbye.  0 when both goodbyes went through.
 */
static int run_conn(int fd, struct nn_shs_conn *c, char **lines, int nlines, int *count)
{
	struct nn_buf reply = NN_BUF_INIT;
	char err[NN_ERRLEN];
	int64_t deadline = nn_mono_ms() + 20000;
	int rc = 1;

	*count = 0;
	for (int i = 0; lines && i < nlines; i++)
		if (nn_shs_conn_send(c, lines[i], strlen(lines[i]), err) < 0) {
			printf("error %s\n", err);
			return 1;
		}
	if (lines)
		nn_shs_conn_close(c, NULL);
	while (nn_mono_ms() < deadline) {
		struct pollfd pf = { .fd = fd, .events = POLLIN | (c->out.len ? POLLOUT : 0) };
		const char *line;
		size_t len;
		int r;

		if (poll(&pf, 1, 1000) < 0 && errno != EINTR)
			break;
		if (c->out.len) {
			ssize_t n = write(fd, c->out.data, c->out.len);
			if (n > 0)
				nn_buf_consume(&c->out, (size_t)n);
			else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				printf("error %s\n", strerror(errno));
				break;
			}
		}
		if (c->sent_goodbye && !c->out.len && nn_shs_conn_peer_closed(c)) {
			rc = 0;
			break;
		}
		if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[65536];
			ssize_t n = read(fd, buf, sizeof buf);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0) {
				if (nn_shs_conn_eof(c, err) < 0)
					printf("error %s\n", err);
				else
					printf("error the peer hung up before our goodbye went out\n");
				break;
			}
			if (nn_shs_conn_recv(c, buf, (size_t)n, err) < 0) {
				printf("error %s\n", err);
				break;
			}
		}
		while ((r = nn_shs_conn_next(c, &line, &len)) != NN_LINES_NONE) {
			if (r != NN_LINES_LINE)
				continue;
			++*count;
			if (lines) {
				printf("got: %.*s\n", (int)len, line);
				continue;
			}
			nn_buf_reset(&reply);
			nn_buf_adds(&reply, "echo: ");
			nn_buf_add(&reply, line, len);
			if (nn_shs_conn_send(c, reply.data, reply.len, err) < 0)
				printf("error %s\n", err);
		}
		if (nn_shs_conn_peer_closed(c) && !c->closing)
			nn_shs_conn_close(c, NULL);
	}
	nn_buf_release(&reply);
	return rc;
}

/*
 * shs serve NETKEY SK [READY_FD]: accept one TCP connection on 127.0.0.1
 * (the port goes to READY_FD, or stdout, as "port N"), echo as run_conn
 * says, then print "peer HEX" and "lines N".  "error MSG", exit 1, on
 * failure.
 */
static int shs_serve(int argc, char **argv)
{
	uint8_t netkey[32];
	struct nn_key me;
	struct nn_shs_conn c;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof a;
	int lfd, fd, rc, lines = 0;

	if (argc < 3 || argc > 4 || hexarg(netkey, 32, argv[1], "NETKEY") < 0 ||
	    keyarg(&me, argv[2]) < 0)
		return 64;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		perror("test-tool: listen");
		return 70;
	}
	if (argc == 4) {
		int rfd = atoi(argv[3]);
		dprintf(rfd, "port %d\n", ntohs(a.sin_port));
		close(rfd);
	} else {
		printf("port %d\n", ntohs(a.sin_port));
		fflush(stdout);
	}
	fd = accept(lfd, NULL, NULL);
	close(lfd);
	if (fd < 0)
		return 70;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	nn_shs_conn_server_init(&c, netkey, &me, 0, 0);
	nn_key_clear(&me);
	rc = run_conn(fd, &c, NULL, 0, &lines);
	if (rc == 0) {
		print_hex("peer", c.peer_pk, 32);
		printf("lines %d\n", lines);
	}
	close(fd);
	nn_shs_conn_release(&c);
	return rc;
}

/* shs dial PORT NETKEY SERVER_PK LINE...: connect to 127.0.0.1:PORT with a
 * random key, send the lines and a goodbye, print what comes back. */
static int shs_dial(int argc, char **argv)
{
	uint8_t netkey[32], spk[32];
	struct nn_key me;
	struct nn_shs_conn c;
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd, rc, got = 0;

	if (argc < 4 || hexarg(netkey, 32, argv[2], "NETKEY") < 0 ||
	    hexarg(spk, 32, argv[3], "SERVER_PK") < 0)
		return 64;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("test-tool: connect");
		return 69;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	nn_key_generate(&me);
	nn_shs_conn_client_init(&c, netkey, &me, spk, 0, 0);
	print_hex("client", me.pk, 32);
	nn_key_clear(&me);
	rc = run_conn(fd, &c, argv + 4, argc - 4, &got);
	if (rc == 0)
		printf("lines %d\n", got);
	close(fd);
	nn_shs_conn_release(&c);
	return rc;
}

static int shs_bs(int argc, char **argv);

int cmd__shs(int argc, char **argv)
{
	uint8_t key[32];
	char err[NN_ERRLEN], hex[65];

	if (argc < 2)
		return 64;
	if (!strcmp(argv[1], "pair"))
		return shs_pair(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bs"))
		return shs_bs(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dial"))
		return shs_dial(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return shs_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "conn"))
		return shs_conn(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return shs_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "keygen"))
		return shs_keygen();
	if (!strcmp(argv[1], "public-netkey")) {
		nn_hex_encode(hex, nn_shs_public_netkey, 32);
		printf("%s\n%s\n", hex, NN_SHS_PUBLIC_NETKEY_HEX);
		return 0;
	}
	if (!strcmp(argv[1], "netkey-new") && argc == 3) {
		nn_shs_netkey_generate(key);
		if (nn_shs_netkey_save(argv[2], key, err) < 0) {
			fprintf(stderr, "test-tool: error: %s\n", err);
			return 74;
		}
		return 0;
	}
	if (!strcmp(argv[1], "netkey-load") && argc == 3) {
		if (nn_shs_netkey_load(argv[2], key, err) < 0) {
			fprintf(stderr, "test-tool: error: %s\n", err);
			return 65;
		}
		nn_hex_encode(hex, key, 32);
		printf("%s\n", hex);
		return 0;
	}
	return 64;
}

/* bs enc KEY NONCE: each stdin line becomes messages; goodbye at the end
 * (unless --no-goodbye). */
static int bs_enc(int argc, char **argv)
{
	uint8_t key[32], nonce[24];
	struct nn_bs_enc e;
	struct nn_lines l;
	struct nn_buf out = NN_BUF_INIT;
	const char *line;
	size_t len;
	char err[NN_ERRLEN];
	int r, rc = 0;

	if (argc < 3 || hexarg(key, 32, argv[1], "KEY") < 0 || hexarg(nonce, 24, argv[2], "NONCE") < 0)
		return 64;
	nn_bs_enc_init(&e, key, nonce);
	nn_lines_init(&l, 16 * 1024 * 1024);
	for (;;) {
		ssize_t n = nn_lines_read_fd(&l, 0);
		if (n < 0) {
			rc = 74;
			break;
		}
		while ((r = nn_lines_next(&l, &line, &len)) == NN_LINES_LINE) {
			if (nn_bs_encode(&e, &out, line, len, "\n", err) < 0) {
				fprintf(stderr, "test-tool: error: %s\n", err);
				rc = 70;
			}
			if (nn_write_all(1, out.data, out.len) < 0)
				rc = 74;
			nn_buf_reset(&out);
		}
		if (n == 0)
			break;
	}
	/* an unterminated last line goes as it is */
	if (rc == 0 && nn_lines_pending(&l)) {
		size_t plen = nn_lines_pending(&l);
		if (nn_bs_encode(&e, &out, l.buf.data + l.off, plen, NULL, err) < 0)
			rc = 70;
	}
	if (rc == 0 && !(argc > 3 && !strcmp(argv[3], "--no-goodbye")))
		nn_bs_goodbye(&e, &out, err);
	if (rc == 0 && nn_write_all(1, out.data, out.len) < 0)
		rc = 74;
	nn_buf_release(&out);
	nn_lines_release(&l);
	nn_bs_enc_clear(&e);
	return rc;
}

/* bs dec KEY NONCE [CHUNK]: stdin ciphertext → stdout plaintext, fed in
 * pieces of CHUNK bytes (default 1000); exit 0 on goodbye, 65 on an
 * authentication error, 74 on a truncated stream. */
static int bs_dec(int argc, char **argv)
{
	uint8_t key[32], nonce[24];
	struct nn_bs_dec *d = nn_xmalloc(sizeof *d);
	char err[NN_ERRLEN];
	size_t chunk = argc > 3 ? (size_t)atoi(argv[3]) : 1000;
	uint8_t *buf;
	int rc = -1;

	if (argc < 3 || hexarg(key, 32, argv[1], "KEY") < 0 || hexarg(nonce, 24, argv[2], "NONCE") < 0 || !chunk) {
		free(d);
		return 64;
	}
	buf = nn_xmalloc(chunk);
	nn_bs_dec_init(d, key, nonce);
	while (rc < 0) {
		ssize_t n = read(0, buf, chunk);
		size_t off = 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (nn_bs_dec_eof(d, err) < 0) {
				fprintf(stderr, "test-tool: error: %s\n", err);
				rc = 74;
			} else {
				rc = 0;
			}
			break;
		}
		while (off < (size_t)n && rc < 0) {
			const uint8_t *pl;
			size_t used, plen;
			int r = nn_bs_decode(d, buf + off, n - off, &used, &pl, &plen, err);
			off += used;
			if (r == NN_BS_DATA) {
				if (nn_write_all(1, pl, plen) < 0)
					rc = 74;
			} else if (r == NN_BS_GOODBYE) {
				rc = 0;
			} else if (r == NN_BS_ERROR) {
				fprintf(stderr, "test-tool: error: %s\n", err);
				rc = 65;
			} else if (used == 0) {
				break;
			}
		}
	}
	nn_bs_dec_clear(d);
	free(d);
	free(buf);
	return rc;
}

/* bs roundtrip LEN...: a line of LEN bytes (no newline in it), encoded,
 * decoded from pieces of random sizes, cut again with nn_lines. */
static int bs_roundtrip(int argc, char **argv)
{
	uint8_t key[32], nonce[24];
	struct nn_bs_enc e;
	struct nn_bs_dec *d = nn_xmalloc(sizeof *d);
	struct nn_buf out = NN_BUF_INIT;
	struct nn_lines l;
	char err[NN_ERRLEN];
	int rc = 0;

	randombytes_buf(key, sizeof key);
	randombytes_buf(nonce, sizeof nonce);
	/* start near a carry so that the counter's byte overflow is exercised */
	memset(nonce + 20, 0xff, 4);
	for (int i = 1; i < argc && rc == 0; i++) {
		size_t len = strtoul(argv[i], NULL, 10), off = 0, got = 0, msgs;
		char *line = nn_xmalloc(len + 1);
		const char *gl;
		size_t glen;
		int goodbye = 0, lines = 0;

		for (size_t j = 0; j < len; j++)
			line[j] = (char)('a' + randombytes_uniform(26));
		nn_bs_enc_init(&e, key, nonce);
		nn_bs_dec_init(d, key, nonce);
		nn_lines_init(&l, NN_LINE_MAX_DEFAULT);
		nn_buf_reset(&out);
		if (nn_bs_encode(&e, &out, line, len, "\n", err) < 0 ||
		    nn_bs_goodbye(&e, &out, err) < 0) {
			printf("error %s\n", err);
			rc = 70;
		}
		if (out.len != nn_bs_enc_size(len + 1) + NN_BS_HEADER_LEN) {
			printf("error size %zu\n", out.len);
			rc = 70;
		}
		while (rc == 0 && off < out.len && !goodbye) {
			size_t piece = 1 + randombytes_uniform(9000), used, plen;
			const uint8_t *pl;
			int r;
			if (piece > out.len - off)
				piece = out.len - off;
			r = nn_bs_decode(d, out.data + off, piece, &used, &pl, &plen, err);
			off += used;
			if (r == NN_BS_DATA) {
				nn_lines_feed(&l, (const char *)pl, plen);
				got += plen;
			} else if (r == NN_BS_GOODBYE) {
				goodbye = 1;
			} else if (r == NN_BS_ERROR) {
				printf("error %s\n", err);
				rc = 1;
			}
		}
		msgs = d->messages;
		while (rc == 0 && nn_lines_next(&l, &gl, &glen) == NN_LINES_LINE) {
			lines++;
			if (glen != len || memcmp(gl, line, len)) {
				printf("error line differs (%zu bytes)\n", glen);
				rc = 1;
			}
		}
		if (rc == 0 && (!goodbye || lines != 1 || got != len + 1 || off != out.len)) {
			printf("error goodbye=%d lines=%d got=%zu\n", goodbye, lines, got);
			rc = 1;
		}
		if (rc == 0)
			printf("%zu messages=%zu bytes=%zu ok\n", len, msgs, out.len);
		nn_lines_release(&l);
		free(line);
	}
	nn_buf_release(&out);
	nn_bs_dec_clear(d);
	free(d);
	return rc;
}

static int shs_bs(int argc, char **argv)
{
	if (argc < 2)
		return 64;
	if (!strcmp(argv[1], "enc"))
		return bs_enc(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dec"))
		return bs_dec(argc - 1, argv + 1);
	if (!strcmp(argv[1], "roundtrip"))
		return bs_roundtrip(argc - 1, argv + 1);
	if (!strcmp(argv[1], "header") && argc == 5) {
		/* bs header KEY NONCE LEN: a validly sealed header announcing
		 * LEN body bytes (and an all-zero body MAC) */
		uint8_t key[32], nonce[24], hdr[18] = { 0 }, box[NN_BS_HEADER_LEN];
		unsigned long len = strtoul(argv[4], NULL, 10);
		if (hexarg(key, 32, argv[2], "KEY") < 0 || hexarg(nonce, 24, argv[3], "NONCE") < 0)
			return 64;
		hdr[0] = (uint8_t)(len >> 8);
		hdr[1] = (uint8_t)len;
		crypto_secretbox_easy(box, hdr, sizeof hdr, nonce, key);
		return nn_write_all(1, box, sizeof box) < 0 ? 74 : 0;
	}
	return 64;
}
