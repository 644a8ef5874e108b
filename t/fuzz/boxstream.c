/*
 * Fuzz target: box-stream frames (lib/boxstream.h) and the secure
 * connection that cuts them into lines (nn_shs_conn in lib/shs.h).  Keys and
 * nonces are fixed, so seeds can be real ciphertext.  Input: one mode byte,
 * one chunking byte, then bytes.
 *
 *   mode % 3 == 0  the bytes are ciphertext fed to a decoder in pieces:
 *                  whatever comes out must be a body of at most 4096 bytes,
 *                  and once failed or closed the decoder stays so;
 *   mode % 3 == 1  round trip: the bytes are plaintext, cut at each newline,
 *                  encoded, followed by the goodbye, and decoded in pieces:
 *                  the plaintext must come back exactly, then the goodbye;
 *   mode % 3 == 2  the bytes are ciphertext after an honest handshake
 *                  between two nn_shs_conn (a server taking the bytes as
 *                  its client's stream): lines come out within the cap.
 */
#include "boxstream.h"
#include "shs.h"
#include "fuzz.h"

static const uint8_t key[32] = FUZZ_SEED(0x51);
static const uint8_t nonce[24] = { 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52,
	0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52,
	0x52, 0x52, 0x52, 0x52 };

/* Decode p[0..n) in pieces of step; append the plaintext to plain (may be
 * NULL).  Returns the last result: NN_BS_MORE, _GOODBYE or _ERROR. */
static int decode(struct nn_bs_dec *d, const uint8_t *p, size_t n, unsigned step,
		  struct nn_buf *plain)
{
	char err[NN_ERRLEN];
	size_t off = 0;
	int r = NN_BS_MORE;
	while (off < n) {
		size_t k = n - off < step ? n - off : step, used = 0;
		const uint8_t *pl;
		size_t plen;
		r = nn_bs_decode(d, p + off, k, &used, &pl, &plen, err);
		FUZZ_CHECK(used <= k);
		if (r == NN_BS_ERROR) {
			FUZZ_CHECK(err[0]);
			/* stays failed */
			FUZZ_CHECK(nn_bs_decode(d, p + off, k, &used, &pl, &plen, err) == NN_BS_ERROR);
			return r;
		}
		if (r == NN_BS_GOODBYE) {
			FUZZ_CHECK(nn_bs_decode(d, p + off, k, &used, &pl, &plen, err) == NN_BS_GOODBYE);
			return r;
		}
		if (r == NN_BS_DATA) {
			FUZZ_CHECK(plen <= NN_BS_MAX_BODY);
			if (plain)
				FUZZ_CHECK(nn_buf_add(plain, pl, plen) == 0);
		} else {
			FUZZ_CHECK(r == NN_BS_MORE && used == k);
		}
		off += used;
	}
	return r;
}

static void roundtrip(const uint8_t *p, size_t n, unsigned step)
{
	struct nn_bs_enc e;
	struct nn_bs_dec d;
	struct nn_buf ct, plain;
	char err[NN_ERRLEN];
	nn_buf_init(&ct, 0);
	nn_buf_init(&plain, 0);
	nn_bs_enc_init(&e, key, nonce);
	size_t off = 0, want = 0;
	while (off < n) {
		const uint8_t *nl = memchr(p + off, '\n', n - off);
		size_t k = nl ? (size_t)(nl - (p + off)) : n - off;
		size_t before = ct.len;
		FUZZ_CHECK(nn_bs_encode(&e, &ct, p + off, k, nl ? "\n" : NULL, err) == 0);
		FUZZ_CHECK(ct.len - before == nn_bs_enc_size(k + (nl ? 1 : 0)));
		want += k + (nl ? 1 : 0);
		off += k + (nl ? 1 : 0);
	}
	FUZZ_CHECK(want == n);
	FUZZ_CHECK(nn_bs_goodbye(&e, &ct, err) == 0);
	FUZZ_CHECK(nn_bs_encode(&e, &ct, "x", 1, NULL, err) < 0);
	nn_bs_dec_init(&d, key, nonce);
	FUZZ_CHECK(decode(&d, (const uint8_t *)ct.data, ct.len, step, &plain) == NN_BS_GOODBYE);
	FUZZ_CHECK(plain.len == n && (n == 0 || memcmp(plain.data, p, n) == 0));
	FUZZ_CHECK(nn_bs_dec_eof(&d, err) == 0);
	nn_bs_dec_clear(&d);
	nn_bs_enc_clear(&e);
	nn_buf_release(&ct);
	nn_buf_release(&plain);
}

static void conn(const uint8_t *p, size_t n, unsigned step)
{
	static struct nn_key sk, ck;
	static const uint8_t s1[32] = FUZZ_SEED(2), s2[32] = FUZZ_SEED(3);
	static const uint8_t ceph[32] = FUZZ_SEED(0x41), seph[32] = FUZZ_SEED(0x42);
	char err[NN_ERRLEN];
	if (!sk.did[0]) {
		nn_key_from_seed(&sk, s1);
		nn_key_from_seed(&ck, s2);
	}
	struct nn_shs_conn c, s;
	nn_shs_conn_client_init(&c, nn_shs_public_netkey, &ck, sk.pk, 64, 1 << 16);
	nn_shs_conn_server_init(&s, nn_shs_public_netkey, &sk, 64, 1 << 16);
	/* fixed ephemeral keys, so seeds can be real ciphertext: the client's
	 * msg1 made with a random one is replaced */
	nn_shs_set_ephemeral(&c.hs, ceph);
	nn_shs_set_ephemeral(&s.hs, seph);
	uint8_t hello[NN_SHS_MSG3_LEN];
	size_t hn;
	nn_buf_reset(&c.out);
	while ((hn = nn_shs_output(&c.hs, hello, sizeof hello)) > 0)
		FUZZ_CHECK(nn_buf_add(&c.out, hello, hn) == 0);
	for (int i = 0; i < 4; i++) {
		if (c.out.len) {
			FUZZ_CHECK(nn_shs_conn_recv(&s, c.out.data, c.out.len, err) == 0);
			nn_buf_consume(&c.out, c.out.len);
		}
		if (s.out.len) {
			FUZZ_CHECK(nn_shs_conn_recv(&c, s.out.data, s.out.len, err) == 0);
			nn_buf_consume(&s.out, s.out.len);
		}
	}
	FUZZ_CHECK(nn_shs_conn_state(&c) == NN_SHS_CONN_OPEN);
	FUZZ_CHECK(nn_shs_conn_state(&s) == NN_SHS_CONN_OPEN);
	size_t off = 0;
	while (off < n) {
		size_t k = n - off < step ? n - off : step;
		int r = nn_shs_conn_recv(&s, p + off, k, err);
		off += k;
		const char *line;
		size_t len;
		int x;
		while ((x = nn_shs_conn_next(&s, &line, &len)) != NN_LINES_NONE)
			FUZZ_CHECK(x == NN_LINES_OVERSIZE || (x == NN_LINES_LINE && len <= 64));
		if (r < 0) {
			FUZZ_CHECK(nn_shs_conn_state(&s) == NN_SHS_CONN_FAILED);
			break;
		}
	}
	(void)nn_shs_conn_peer_closed(&s);
	(void)nn_shs_conn_eof(&s, err);
	nn_shs_conn_release(&c);
	nn_shs_conn_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	fuzz_sodium();
	unsigned mode = data[0] % 3, step = 1 + data[1] % 200;
	const uint8_t *p = data + 2;
	size_t n = size - 2;
	char err[NN_ERRLEN];
	if (mode == 0) {
		struct nn_bs_dec d;
		nn_bs_dec_init(&d, key, nonce);
		int r = decode(&d, p, n, step, NULL);
		if (r == NN_BS_GOODBYE)
			FUZZ_CHECK(nn_bs_dec_eof(&d, err) == 0);
		else
			FUZZ_CHECK(nn_bs_dec_eof(&d, err) < 0);
		nn_bs_dec_clear(&d);
	} else if (mode == 1) {
		roundtrip(p, n, step);
	} else {
		conn(p, n, step);
	}
	return 0;
}
