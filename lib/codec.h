/*
 * codec — base58btc (Bitcoin alphabet) and base64 (standard alphabet, with
 * padding; through libsodium) for keys, signatures and addresses.
 */
#ifndef NN_CODEC_H
#define NN_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* base58btc: encode n bytes into out (outlen includes the NUL).  Returns the
 * string length or -1 if out is too small. */
int nn_b58_encode(char *out, size_t outlen, const uint8_t *in, size_t n);
/* Decode; returns the number of bytes written or -1 on a bad character or
 * when the result would not fit in outlen. */
int nn_b58_decode(uint8_t *out, size_t outlen, const char *in);

/* base64 of n bytes; out needs nn_b64_len(n) bytes (including the NUL). */
size_t nn_b64_len(size_t n);
void nn_b64_encode(char *out, const uint8_t *in, size_t n);
/* Decode exactly; returns the decoded length or -1 on malformed input. */
int nn_b64_decode(uint8_t *out, size_t outlen, const char *in, size_t inlen);
/* The same two for public data only (signatures, not keys): the same
 * strings, the same verdicts (padding required, no stray bits, no other
 * character), in variable time and about ten times fewer instructions
 * than libsodium's constant-time code. */
void nn_b64_encode_pub(char *out, const uint8_t *in, size_t n);
int nn_b64_decode_pub(uint8_t *out, size_t outlen, const char *in, size_t inlen);

#endif
