/*
 * boxstream — box-stream encoder and decoder (see boxstream.h).  Bodies are
 * encrypted in place in the caller's output buffer with
 * crypto_secretbox_detached, and decrypted in place in the decoder's own
 * 4096-byte buffer with crypto_secretbox_open_detached; the headers are
 * ordinary crypto_secretbox_easy boxes of 18 bytes.
 */
#include "boxstream.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>

enum { ST_HDR = 0, ST_BODY, ST_GOODBYE, ST_FAILED };

void nn_bs_nonce_incr(uint8_t nonce[24])
{
	for (int i = 23; i >= 0; i--)
		if (++nonce[i] != 0)
			break;
}

void nn_bs_enc_init(struct nn_bs_enc *e, const uint8_t key[32], const uint8_t nonce[24])
{
	memcpy(e->key, key, 32);
	memcpy(e->nonce, nonce, 24);
	e->closed = 0;
}

size_t nn_bs_enc_size(size_t n)
{
	return n + NN_BS_HEADER_LEN * ((n + NN_BS_MAX_BODY - 1) / NN_BS_MAX_BODY);
}

static int room(const struct nn_buf *out, size_t need)
{
	return !out->max || (out->len <= out->max && need <= out->max - out->len);
}

/* Seal the message whose header starts at out->data + at (34 bytes reserved)
 * and whose len-byte plaintext body follows it. */
static void seal(struct nn_bs_enc *e, uint8_t *msg, size_t len)
{
	uint8_t hdr[18], body_nonce[24];

	memcpy(body_nonce, e->nonce, 24);
	nn_bs_nonce_incr(body_nonce);
	hdr[0] = (uint8_t)(len >> 8);
	hdr[1] = (uint8_t)len;
	crypto_secretbox_detached(msg + NN_BS_HEADER_LEN, hdr + 2,
				  msg + NN_BS_HEADER_LEN, len, body_nonce, e->key);
	crypto_secretbox_easy(msg, hdr, sizeof hdr, e->nonce, e->key);
	nn_bs_nonce_incr(e->nonce);
	nn_bs_nonce_incr(e->nonce);
}

int nn_bs_encode(struct nn_bs_enc *e, struct nn_buf *out, const void *p, size_t n,
		 const char *tail, char *err)
{
	static const uint8_t zeros[NN_BS_HEADER_LEN];
	const uint8_t *src[2] = { p, (const uint8_t *)tail };
	size_t left[2] = { n, tail ? strlen(tail) : 0 };
	size_t total = left[0] + left[1];
	int k = 0;

	if (e->closed)
		return nn_seterr(err, "box-stream: the goodbye was already sent");
	if (total > SIZE_MAX / 2 || !room(out, nn_bs_enc_size(total)))
		return nn_seterr(err, "box-stream: output buffer full (%zu bytes to encode)", total);
	while (total) {
		size_t chunk = total < NN_BS_MAX_BODY ? total : NN_BS_MAX_BODY;
		size_t at = out->len, fill = 0;

		if (nn_buf_add(out, zeros, sizeof zeros) < 0)
			return nn_seterr(err, "box-stream: output buffer full");
		while (fill < chunk) {
			size_t m;
			while (!left[k])
				k++;
			m = chunk - fill < left[k] ? chunk - fill : left[k];
			if (nn_buf_add(out, src[k], m) < 0)
				return nn_seterr(err, "box-stream: output buffer full");
			src[k] += m;
			left[k] -= m;
			fill += m;
		}
		seal(e, (uint8_t *)out->data + at, chunk);
		total -= chunk;
	}
	return 0;
}

int nn_bs_goodbye(struct nn_bs_enc *e, struct nn_buf *out, char *err)
{
	uint8_t zero[18] = { 0 }, box[NN_BS_HEADER_LEN];

	if (e->closed)
		return nn_seterr(err, "box-stream: the goodbye was already sent");
	if (!room(out, sizeof box))
		return nn_seterr(err, "box-stream: output buffer full");
	crypto_secretbox_easy(box, zero, sizeof zero, e->nonce, e->key);
	nn_buf_add(out, box, sizeof box);
	nn_bs_nonce_incr(e->nonce);
	nn_bs_nonce_incr(e->nonce);
	e->closed = 1;
	return 0;
}

void nn_bs_enc_clear(struct nn_bs_enc *e)
{
	sodium_memzero(e, sizeof *e);
}

void nn_bs_dec_init(struct nn_bs_dec *d, const uint8_t key[32], const uint8_t nonce[24])
{
	memset(d, 0, sizeof *d);
	memcpy(d->key, key, 32);
	memcpy(d->nonce, nonce, 24);
	d->state = ST_HDR;
}

static int dfail(struct nn_bs_dec *d, char *err, const char *what)
{
	d->state = ST_FAILED;
	snprintf(d->err, sizeof d->err, "box-stream: message %llu: %s",
		 (unsigned long long)d->messages + 1, what);
	sodium_memzero(d->key, sizeof d->key);
	sodium_memzero(d->body, sizeof d->body);
	return nn_seterr(err, "%s", d->err), NN_BS_ERROR;
}

int nn_bs_decode(struct nn_bs_dec *d, const void *p, size_t n, size_t *used,
		 const uint8_t **plain, size_t *plen, char *err)
{
	const uint8_t *q = p;
	size_t took = 0;

	*used = 0;
	*plain = NULL;
	*plen = 0;
	for (;;) {
		if (d->state == ST_FAILED) {
			nn_seterr(err, "%s", d->err);
			return NN_BS_ERROR;
		}
		if (d->state == ST_GOODBYE) {
			*used = took;
			return NN_BS_GOODBYE;
		}
		if (d->state == ST_HDR) {
			uint8_t hdr[18];
			size_t k = NN_BS_HEADER_LEN - d->hdrlen;
			if (k > n - took)
				k = n - took;
			memcpy(d->hdr + d->hdrlen, q + took, k);
			d->hdrlen += k;
			took += k;
			if (d->hdrlen < NN_BS_HEADER_LEN)
				break;
			d->hdrlen = 0;
			if (crypto_secretbox_open_easy(hdr, d->hdr, NN_BS_HEADER_LEN,
						       d->nonce, d->key) != 0) {
				*used = took;
				return dfail(d, err, "header failed authentication "
					     "(altered in transit, or not our key)");
			}
			if (sodium_is_zero(hdr, sizeof hdr)) {
				d->state = ST_GOODBYE;
				continue;
			}
			d->bodylen = (size_t)hdr[0] << 8 | hdr[1];
			if (d->bodylen > NN_BS_MAX_BODY) {
				*used = took;
				return dfail(d, err, "header announces a body over 4096 bytes");
			}
			memcpy(d->mac, hdr + 2, 16);
			d->have = 0;
			d->state = ST_BODY;
		}
		/* ST_BODY */
		{
			uint8_t body_nonce[24];
			size_t k = d->bodylen - d->have;
			if (k > n - took)
				k = n - took;
			memcpy(d->body + d->have, q + took, k);
			d->have += k;
			took += k;
			if (d->have < d->bodylen)
				break;
			memcpy(body_nonce, d->nonce, 24);
			nn_bs_nonce_incr(body_nonce);
			if (crypto_secretbox_open_detached(d->body, d->body, d->mac, d->bodylen,
							   body_nonce, d->key) != 0) {
				*used = took;
				return dfail(d, err, "body failed authentication "
					     "(altered in transit, or not our key)");
			}
			nn_bs_nonce_incr(d->nonce);
			nn_bs_nonce_incr(d->nonce);
			d->state = ST_HDR;
			d->messages++;
			if (d->bodylen) {
				*used = took;
				*plain = d->body;
				*plen = d->bodylen;
				return NN_BS_DATA;
			}
		}
		if (took == n)
			break;
	}
	*used = took;
	return NN_BS_MORE;
}

int nn_bs_dec_eof(struct nn_bs_dec *d, char *err)
{
	switch (d->state) {
	case ST_GOODBYE:
		return 0;
	case ST_FAILED:
		return nn_seterr(err, "%s", d->err);
	case ST_BODY:
		return nn_seterr(err, "box-stream: truncated inside message %llu "
				 "(%zu of %zu body bytes)", (unsigned long long)d->messages + 1,
				 d->have, d->bodylen);
	default:
		if (d->hdrlen)
			return nn_seterr(err, "box-stream: truncated inside message %llu "
					 "(%zu of %d header bytes)",
					 (unsigned long long)d->messages + 1, d->hdrlen,
					 NN_BS_HEADER_LEN);
		return nn_seterr(err, "box-stream: the stream ended without a goodbye "
				 "after %llu messages", (unsigned long long)d->messages);
	}
}

void nn_bs_dec_clear(struct nn_bs_dec *d)
{
	sodium_memzero(d, sizeof *d);
}
