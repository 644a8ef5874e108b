/*
 * Fuzz target: the secret handshake (lib/shs.h) fed arbitrary bytes as
 * msg1..msg4.  Every key, ephemeral ones included, is fixed, so a recorded
 * honest transcript replays exactly and the seeds (real messages) let the
 * fuzzer mutate its way through every step.  Input: one mode byte, one
 * chunking byte, then bytes.
 *
 *   mode % 3 == 0  the bytes are what a client sends (msg1 || msg3 || …),
 *                  fed to a server;
 *   mode % 3 == 1  the bytes are what a server sends (msg2 || msg4 || …),
 *                  fed to a client;
 *   mode % 3 == 2  an honest client and server talk in memory while the
 *                  bytes, as a mask, are XORed into what travels: the
 *                  handshake must finish with matching keys when nothing
 *                  was changed, and fail on one side at least otherwise
 *                  (every message is authenticated).
 *
 * A side that finishes must have authenticated the right peer.
 */
#include "shs.h"
#include "fuzz.h"

static struct nn_key server, client;
static uint8_t netkey[32];
static const uint8_t ceph[32] = FUZZ_SEED(0x41), seph[32] = FUZZ_SEED(0x42);

static void setup(void)
{
	static const uint8_t s1[32] = FUZZ_SEED(2), s2[32] = FUZZ_SEED(3);
	fuzz_sodium();
	if (server.did[0])
		return;
	nn_key_from_seed(&server, s1);
	nn_key_from_seed(&client, s2);
	memcpy(netkey, nn_shs_public_netkey, 32);
}

/* Feed p[0..n) to s in pieces of step bytes, draining its output. */
static void feed(struct nn_shs *s, const uint8_t *p, size_t n, unsigned step)
{
	uint8_t out[256];
	char err[NN_ERRLEN];
	size_t off = 0;
	while (nn_shs_output(s, out, sizeof out) > 0)
		;
	while (off < n && nn_shs_status(s) == NN_SHS_RUNNING) {
		size_t k = n - off < step ? n - off : step, used = 0;
		int r = nn_shs_feed(s, p + off, k, &used, err);
		FUZZ_CHECK(used <= k);
		if (r < 0) {
			FUZZ_CHECK(nn_shs_status(s) == NN_SHS_FAILED && err[0]);
			break;
		}
		off += used ? used : k;
		while (nn_shs_output(s, out, sizeof out) > 0)
			;
		if (!used)
			break;
	}
	(void)nn_shs_want(s);
	if (nn_shs_status(s) == NN_SHS_RUNNING)
		FUZZ_CHECK(nn_shs_eof(s, err) < 0);
}

static void done_check(struct nn_shs *s, const uint8_t *peer)
{
	struct nn_shs_keys k;
	char err[NN_ERRLEN];
	if (nn_shs_status(s) == NN_SHS_DONE) {
		FUZZ_CHECK(nn_shs_result(s, &k, err) == 0);
		FUZZ_CHECK(memcmp(k.peer_pk, peer, 32) == 0);
	} else {
		FUZZ_CHECK(nn_shs_result(s, &k, err) < 0);
		(void)nn_shs_error(s);
	}
}

/* Move bytes from a to b through the mask; returns 1 if it changed any. */
static int pass(struct nn_shs *a, struct nn_shs *b, const uint8_t **mask, size_t *mlen,
		unsigned step, int *fail)
{
	uint8_t buf[256];
	size_t n = nn_shs_output(a, buf, sizeof buf);
	int changed = 0;
	char err[NN_ERRLEN];
	for (size_t i = 0; i < n && *mlen; i++, (*mask)++, (*mlen)--)
		if (**mask) {
			buf[i] ^= **mask;
			changed = 1;
		}
	size_t off = 0;
	while (off < n && nn_shs_status(b) == NN_SHS_RUNNING) {
		size_t k = n - off < step ? n - off : step, used = 0;
		if (nn_shs_feed(b, buf + off, k, &used, err) < 0) {
			*fail = 1;
			break;
		}
		FUZZ_CHECK(used == k);
		off += k;
	}
	return changed;
}

static void honest(const uint8_t *mask, size_t mlen, unsigned step)
{
	struct nn_shs c, s;
	nn_shs_client_init(&c, netkey, &client, server.pk);
	nn_shs_set_ephemeral(&c, ceph);
	nn_shs_server_init(&s, netkey, &server);
	nn_shs_set_ephemeral(&s, seph);
	int changed = 0, fail = 0;
	for (int round = 0; round < 4 && !fail; round++) {
		changed |= pass(&c, &s, &mask, &mlen, step, &fail);
		if (fail)
			break;
		changed |= pass(&s, &c, &mask, &mlen, step, &fail);
	}
	/* take the last output (msg4 for the client side to see) */
	changed |= pass(&s, &c, &mask, &mlen, step, &fail);
	if (!changed) {
		struct nn_shs_keys kc, ks;
		char err[NN_ERRLEN];
		FUZZ_CHECK(nn_shs_status(&c) == NN_SHS_DONE && nn_shs_status(&s) == NN_SHS_DONE);
		FUZZ_CHECK(nn_shs_result(&c, &kc, err) == 0 && nn_shs_result(&s, &ks, err) == 0);
		FUZZ_CHECK(!memcmp(kc.enc_key, ks.dec_key, 32) && !memcmp(kc.dec_key, ks.enc_key, 32));
		FUZZ_CHECK(!memcmp(kc.enc_nonce, ks.dec_nonce, 24) &&
			   !memcmp(kc.dec_nonce, ks.enc_nonce, 24));
		nn_shs_keys_clear(&kc);
		nn_shs_keys_clear(&ks);
	} else {
		FUZZ_CHECK(nn_shs_status(&c) != NN_SHS_DONE || nn_shs_status(&s) != NN_SHS_DONE);
	}
	done_check(&c, server.pk);
	done_check(&s, client.pk);
	nn_shs_clear(&c);
	nn_shs_clear(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	setup();
	unsigned mode = data[0] % 3, step = 1 + data[1] % 128;
	const uint8_t *p = data + 2;
	size_t n = size - 2;
	struct nn_shs s;
	if (mode == 0) {
		nn_shs_server_init(&s, netkey, &server);
		nn_shs_set_ephemeral(&s, seph);
		feed(&s, p, n, step);
		done_check(&s, client.pk);
	} else if (mode == 1) {
		nn_shs_client_init(&s, netkey, &client, server.pk);
		nn_shs_set_ephemeral(&s, ceph);
		feed(&s, p, n, step);
		done_check(&s, server.pk);
	} else {
		honest(p, n, step);
		return 0;
	}
	nn_shs_clear(&s);
	return 0;
}
