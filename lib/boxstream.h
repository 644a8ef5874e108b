/*
 * boxstream — the box-stream framing of the Scuttlebutt protocol guide, the
 * encrypted channel that follows a secret handshake (shs.h).
 *
 * Each message is a 34-byte header box followed by a body of at most 4096
 * bytes.  The header box is crypto_secretbox of (body length, 2 bytes big
 * endian || the body's 16-byte MAC) under nonce n; the body is encrypted
 * with nonce n+1 and sent without its MAC; the next message starts at n+2.
 * Nonces are 24-byte big-endian counters.  The stream ends with the goodbye:
 * a header box whose 18 plaintext bytes are all zero.
 *
 * The encoder turns bytes (typically one envelope line and its newline, of
 * any length) into as many messages as they need, appended to a buffer the
 * caller sends.  The decoder is an I/O-free state machine: feed it the
 * ciphertext as it arrives, in pieces of any size, and it hands back each
 * body's plaintext as soon as the body is complete (give it to nn_lines to
 * cut lines), reports the goodbye, and fails on any authentication error or
 * oversize header.  Neither ever allocates beyond its struct, except the
 * encoder's output buffer.
 */
#ifndef NN_BOXSTREAM_H
#define NN_BOXSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define NN_BS_MAX_BODY 4096
#define NN_BS_HEADER_LEN 34	/* 2 + 16 plaintext + 16 MAC */

struct nn_bs_enc {
	uint8_t key[32];
	uint8_t nonce[24];
	int closed;		/* goodbye sent */
};

/* Start with the handshake's enc_key/enc_nonce. */
void nn_bs_enc_init(struct nn_bs_enc *e, const uint8_t key[32], const uint8_t nonce[24]);
/* Ciphertext bytes that n plaintext bytes take (without the goodbye). */
size_t nn_bs_enc_size(size_t n);
/*
 * Encrypt p[0..n) (n may be anything; 0 writes nothing) followed by tail
 * (may be NULL; e.g. "\n" after a line without its newline), as messages
 * of at most 4096 body bytes appended to out.  -1 with err, out unchanged,
 * when out's maximum would be exceeded or the goodbye was already sent.
 */
int nn_bs_encode(struct nn_bs_enc *e, struct nn_buf *out, const void *p, size_t n,
		 const char *tail, char *err);
/* Append the goodbye (34 bytes); later encodes fail.  -1 when out is full. */
int nn_bs_goodbye(struct nn_bs_enc *e, struct nn_buf *out, char *err);
void nn_bs_enc_clear(struct nn_bs_enc *e);

enum { NN_BS_MORE = 0, NN_BS_DATA = 1, NN_BS_GOODBYE = 2, NN_BS_ERROR = -1 };

struct nn_bs_dec {
	uint8_t key[32];
	uint8_t nonce[24];
	int state;		/* private */
	uint8_t hdr[NN_BS_HEADER_LEN];
	size_t hdrlen;
	uint8_t mac[16];
	size_t bodylen, have;
	uint8_t body[NN_BS_MAX_BODY];
	uint64_t messages;	/* bodies delivered so far */
	char err[NN_ERRLEN];
};

/* Start with the handshake's dec_key/dec_nonce. */
void nn_bs_dec_init(struct nn_bs_dec *d, const uint8_t key[32], const uint8_t nonce[24]);
/*
 * Consume ciphertext p[0..n).  *used says how much was taken (call again
 * with the rest).  Returns
 *   NN_BS_DATA     a body is complete: *plain and *plen (valid until the next
 *                  call) hold its plaintext; more input may remain;
 *   NN_BS_MORE     all input taken, no body complete yet;
 *   NN_BS_GOODBYE  the peer closed the stream cleanly (now and on every
 *                  later call; bytes after the goodbye are not taken);
 *   NN_BS_ERROR    a header or body failed authentication, or a header
 *                  announced more than 4096 bytes; err says which and the
 *                  decoder stays failed.
 */
int nn_bs_decode(struct nn_bs_dec *d, const void *p, size_t n, size_t *used,
		 const uint8_t **plain, size_t *plen, char *err);
/* The connection ended: 0 after a goodbye, else -1 with err saying the
 * stream was truncated (inside a message, or between messages). */
int nn_bs_dec_eof(struct nn_bs_dec *d, char *err);
void nn_bs_dec_clear(struct nn_bs_dec *d);

/* Add one to a 24-byte big-endian nonce. */
void nn_bs_nonce_incr(uint8_t nonce[24]);

#endif
