/*
 * test-tool swarm — a raw peer for tests of the node's swarm transport:
 * connect to a node over TCP, run the Secret Handshake as its client, send
 * every line of stdin over box-stream, then print each envelope line the
 * node sends back (membership lines, {"swim":…}, are not printed) until
 * COUNT of them have arrived or TIMEOUT_MS has passed.
 *
 *   test-tool swarm HOST:PORT SERVER_DID KEYFILE NETKEYFILE|public COUNT TIMEOUT_MS
 *
 * KEYFILE is an identity file ($NUNET_HOME/key); exit 0 when COUNT lines
 * arrived, 1 on timeout, 69 when the connection or handshake fails.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "captoken.h"
#include "codec.h"
#include "json.h"
#include "key.h"
#include "shs.h"
#include "swarm.h"
#include "test-tool.h"
#include "util.h"

int cmd__swarm(int argc, char **argv)
{
	char err[NN_ERRLEN], host[256], port[8], buf[65536];
	struct nn_shs_conn c;
	struct nn_key k;
	uint8_t pk[32], netkey[32];
	struct addrinfo hints = { 0 }, *res;
	struct nn_buf in = NN_BUF_INIT;
	int p, fd, count, got = 0, rc = 1;
	int64_t deadline;
	ssize_t r;

	if (argc != 7)
		return 64;
	if (nn_swarm_parse_addr(argv[1], host, sizeof host, &p, err) < 0 ||
	    nn_did_to_pk(argv[2], pk, err) < 0 || nn_key_load(&k, argv[3], NULL, err) < 0 ||
	    (strcmp(argv[4], "public") ? nn_shs_netkey_load(argv[4], netkey, err) < 0
	     : (memcpy(netkey, nn_shs_public_netkey, 32), 0))) {
		fprintf(stderr, "test-tool swarm: %s\n", err);
		return 64;
	}
	count = atoi(argv[5]);
	deadline = nn_mono_ms() + atoll(argv[6]);
	snprintf(port, sizeof port, "%d", p);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return 69;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		fprintf(stderr, "test-tool swarm: connect: %s\n", strerror(errno));
		freeaddrinfo(res);
		return 69;
	}
	freeaddrinfo(res);
	nn_buf_init(&in, 0);
	while ((r = read(0, buf, sizeof buf)) > 0)
		nn_buf_add(&in, buf, (size_t)r);
	nn_shs_conn_client_init(&c, netkey, &k, pk, 0, 0);
	/* queue every stdin line: they go out once the keys exist */
	for (size_t off = 0; off < in.len;) {
		char *nl = memchr(in.data + off, '\n', in.len - off);
		size_t len = nl ? (size_t)(nl - (in.data + off)) : in.len - off;
		if (len)
			nn_shs_conn_send(&c, in.data + off, len, err);
		off += len + 1;
	}
	while (got < count) {
		int64_t left = deadline - nn_mono_ms();
		struct pollfd pf = { fd, POLLIN | (c.out.len ? POLLOUT : 0), 0 };
		const char *line;
		size_t len;
		if (left <= 0)
			break;
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		if (pf.revents & POLLOUT) {
			ssize_t w = send(fd, c.out.data, c.out.len, MSG_NOSIGNAL);
			if (w > 0)
				nn_buf_consume(&c.out, (size_t)w);
		}
		if (!(pf.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = recv(fd, buf, sizeof buf, 0);
		if (r <= 0) {
			if (nn_shs_conn_eof(&c, err) < 0)
				fprintf(stderr, "test-tool swarm: %s\n", err);
			rc = 69;
			break;
		}
		if (nn_shs_conn_recv(&c, buf, (size_t)r, err) < 0) {
			fprintf(stderr, "test-tool swarm: %s\n", err);
			rc = 69;
			break;
		}
		while (nn_shs_conn_next(&c, &line, &len) == NN_LINES_LINE) {
			jv v = nn_json_parse(line, len, NULL);
			int swim = nn_json_has(v, "swim");
			jv_free(v);
			if (swim)
				continue;
			printf("%.*s\n", (int)len, line);
			fflush(stdout);
			got++;
		}
	}
	if (got >= count)
		rc = 0;
	close(fd);
	nn_shs_conn_release(&c);
	nn_buf_release(&in);
	nn_key_clear(&k);
	return rc;
}

/*
 * test-tool captoken sign KEYFILE: sign the token on stdin (any content,
 * "sig" replaced) with KEYFILE, without the checks nunet-node cap makes,
 * so tests can build tokens a node must refuse.
 */
int cmd__captoken(int argc, char **argv)
{
	char err[NN_ERRLEN], buf[65536], *sig64;
	struct nn_buf in = NN_BUF_INIT, msg = NN_BUF_INIT;
	struct nn_key k;
	uint8_t sig[64];
	ssize_t r;
	jv t;

	if (argc != 3 || strcmp(argv[1], "sign") != 0)
		return 64;
	if (nn_key_load(&k, argv[2], NULL, err) < 0) {
		fprintf(stderr, "test-tool captoken: %s\n", err);
		return 64;
	}
	while ((r = read(0, buf, sizeof buf)) > 0)
		nn_buf_add(&in, buf, (size_t)r);
	t = nn_json_parse(in.data ? in.data : "", in.len, err);
	nn_buf_release(&in);
	if (jv_get_kind(t) != JV_KIND_OBJECT) {
		jv_free(t);
		fprintf(stderr, "test-tool captoken: not an object\n");
		return 65;
	}
	t = jv_object_delete(t, jv_string("sig"));
	nn_buf_adds(&msg, NN_CAPTOKEN_PREFIX);
	if (nn_json_canon(t, &msg, err) < 0) {
		jv_free(t);
		return 65;
	}
	nn_key_sign(&k, sig, msg.data, msg.len);
	nn_buf_release(&msg);
	sig64 = malloc(nn_b64_len(64));
	nn_b64_encode(sig64, sig, 64);
	t = jv_object_set(t, jv_string("sig"), jv_string(sig64));
	free(sig64);
	sig64 = nn_json_dump(t);
	printf("%s\n", sig64);
	free(sig64);
	jv_free(t);
	nn_key_clear(&k);
	return 0;
}
