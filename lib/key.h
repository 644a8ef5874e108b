/*
 * key — ed25519 identities and their did:key addresses.
 *
 * A node (or a user) is identified by an ed25519 key pair.  Its address is
 * did:key:z<base58btc(0xed 0x01 || public key)>.  The key file is JSON, mode
 * 0600, either plain ({"type":"ed25519","seed":B64}) or sealed with a
 * passphrase (argon2id via crypto_pwhash, then crypto_secretbox):
 * {"type":"ed25519","kdf":"argon2id13","ops":N,"mem":N,"salt":B64,
 *  "nonce":B64,"box":B64}.
 */
#ifndef NN_KEY_H
#define NN_KEY_H

#include <stddef.h>
#include <stdint.h>

#define NN_DID_MAX 64	/* "did:key:z" + 48 base58 chars + NUL fits */

struct nn_key {
	uint8_t pk[32];
	uint8_t sk[64];		/* libsodium's secret key: seed || pk */
	char did[NN_DID_MAX];
};

/* Generate a new key pair. */
void nn_key_generate(struct nn_key *k);
/* Derive from a 32-byte seed. */
void nn_key_from_seed(struct nn_key *k, const uint8_t seed[32]);
/* Wipe the secret. */
void nn_key_clear(struct nn_key *k);

/* Save to path (refuses to overwrite an existing file), mode 0600.  A
 * non-NULL passphrase seals the seed. */
int nn_key_save(const struct nn_key *k, const char *path, const char *passphrase, char *err);
/* The same, unsealed and without waiting for the disk (no fsync, which
 * costs milliseconds): for short-lived identities, such as an allocation's,
 * that a crash of the machine may lose. */
int nn_key_save_nosync(const struct nn_key *k, const char *path, char *err);
/* Load from path; a sealed key needs its passphrase (NULL: error saying so). */
int nn_key_load(struct nn_key *k, const char *path, const char *passphrase, char *err);

/* did:key for a public key; out has NN_DID_MAX bytes. */
void nn_did_from_pk(char *out, const uint8_t pk[32]);
/* Public key from an actor address: "did:key:z6Mk…" optionally followed by
 * "/kind/id".  -1 + err when it is not an ed25519 did:key. */
int nn_did_to_pk(const char *addr, uint8_t pk[32], char *err);
/* Length of the did part of an address (up to the first '/'). */
size_t nn_did_len(const char *addr);

/* Detached signature over msg; sig has 64 bytes. */
void nn_key_sign(const struct nn_key *k, uint8_t sig[64], const void *msg, size_t len);
__attribute__((warn_unused_result))
int nn_sig_verify(const uint8_t pk[32], const uint8_t sig[64], const void *msg, size_t len);

#endif
