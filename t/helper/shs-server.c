/*
 * shs-server — the server role of the Secret Handshake v1 over stdin and
 * stdout, for external SHS test suites (shs1-test's shs1testserver):
 * `shs-server NETKEY SERVER_SK SERVER_PK` (hex; SK is libsodium's 64-byte
 * secret key).  It reads msg1, writes msg2, reads msg3, then writes msg4
 * followed by its encryption key, encryption nonce, decryption key and
 * decryption nonce, and waits for stdin to close (or SIGTERM) before exiting
 * 0.  A misbehaving client makes it exit 1 at once, with one line on stderr
 * and nothing more on stdout.  The ephemeral key is random.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "shs.h"
#include "util.h"

static const char usage[] = "usage: shs-server NETKEY SERVER_SK SERVER_PK\n";

static int die(const char *msg)
{
	fprintf(stderr, "shs-server: error: %s\n", msg);
	return 1;
}

int main(int argc, char **argv)
{
	uint8_t netkey[32], sk[64], pk[32], buf[NN_SHS_MSG3_LEN], out[192];
	struct nn_key me;
	struct nn_shs s;
	struct nn_shs_keys k;
	char err[NN_ERRLEN];
	size_t n, used, outlen = 0;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc != 4) {
		fputs(usage, stderr);
		return NN_EX_USAGE;
	}
	if (sodium_init() < 0)
		return NN_EX_SOFTWARE;
	if (nn_hex_decode(netkey, 32, argv[1]) < 0 || nn_hex_decode(sk, 64, argv[2]) < 0 ||
	    nn_hex_decode(pk, 32, argv[3]) < 0) {
		fputs(usage, stderr);
		return NN_EX_USAGE;
	}
	nn_key_from_seed(&me, sk);
	if (memcmp(me.pk, pk, 32) != 0 || memcmp(me.pk, sk + 32, 32) != 0) {
		fprintf(stderr, "shs-server: error: SERVER_SK does not hold SERVER_PK\n");
		return NN_EX_USAGE;
	}
	sodium_memzero(sk, sizeof sk);
	nn_shs_server_init(&s, netkey, &me);
	nn_key_clear(&me);

	while (nn_shs_status(&s) == NN_SHS_RUNNING) {
		ssize_t r;
		n = nn_shs_output(&s, out, sizeof out);
		if (n && nn_shs_status(&s) == NN_SHS_DONE) {
			outlen = n;	/* msg4 goes out together with the keys */
			break;
		}
		if (n && nn_write_all(1, out, n) < 0)
			return die(strerror(errno));
		if (!nn_shs_want(&s))
			continue;
		r = read(0, buf, nn_shs_want(&s));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return die(strerror(errno));
		if (r == 0) {
			nn_shs_eof(&s, err);
			return die(err);
		}
		if (nn_shs_feed(&s, buf, (size_t)r, &used, err) < 0)
			return die(err);
	}
	if (nn_shs_result(&s, &k, err) < 0)
		return die(err);
	memcpy(out + outlen, k.enc_key, 32);
	memcpy(out + outlen + 32, k.enc_nonce, 24);
	memcpy(out + outlen + 56, k.dec_key, 32);
	memcpy(out + outlen + 88, k.dec_nonce, 24);
	if (nn_write_all(1, out, outlen + 112) < 0)
		return die(strerror(errno));
	sodium_memzero(out, sizeof out);
	nn_shs_keys_clear(&k);
	nn_shs_clear(&s);
	/* stay until the driver is done with us */
	while (read(0, buf, sizeof buf) > 0 || errno == EINTR)
		errno = 0;
	return 0;
}
