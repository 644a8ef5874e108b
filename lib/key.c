/*
 * key — key generation, did:key encoding, and the key file: plain or sealed
 * with a passphrase (argon2id13 + XSalsa20-Poly1305).  Secrets are wiped
 * with sodium_memzero as soon as they are no longer needed.
 */
#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "codec.h"
#include "json.h"
#include "util.h"

void nn_key_generate(struct nn_key *k)
{
	uint8_t seed[32];
	randombytes_buf(seed, sizeof seed);
	nn_key_from_seed(k, seed);
	sodium_memzero(seed, sizeof seed);
}

void nn_key_from_seed(struct nn_key *k, const uint8_t seed[32])
{
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	nn_did_from_pk(k->did, k->pk);
}

void nn_key_clear(struct nn_key *k)
{
	sodium_memzero(k, sizeof *k);
}

void nn_did_from_pk(char *out, const uint8_t pk[32])
{
	uint8_t mc[34] = { 0xed, 0x01 };
	memcpy(mc + 2, pk, 32);
	memcpy(out, "did:key:z", 9);
	nn_b58_encode(out + 9, NN_DID_MAX - 9, mc, sizeof mc);
}

size_t nn_did_len(const char *addr)
{
	const char *slash = strchr(addr, '/');
	return slash ? (size_t)(slash - addr) : strlen(addr);
}

/* The last few dids decoded, per thread: every envelope a node or client
 * verifies names its sender, mostly one of a few, and base58 decoding is
 * a visible part of a round trip's cost. */
#define DID_CACHE 8
static __thread struct {
	char did[NN_DID_MAX];
	uint8_t pk[32];
} did_cache[DID_CACHE];
static __thread unsigned did_cache_next;

int nn_did_to_pk(const char *addr, uint8_t pk[32], char *err)
{
	char b58[NN_DID_MAX];
	uint8_t mc[40];
	size_t n = nn_did_len(addr);

	if (n < NN_DID_MAX)
		for (int i = 0; i < DID_CACHE; i++)
			if (did_cache[i].did[0] && !strncmp(did_cache[i].did, addr, n) &&
			    did_cache[i].did[n] == '\0') {
				memcpy(pk, did_cache[i].pk, 32);
				return 0;
			}
	if (n < 10 || strncmp(addr, "did:key:z", 9) != 0)
		return nn_seterr(err, "'%.80s' is not a did:key address", addr);
	if (n - 9 >= sizeof b58)
		return nn_seterr(err, "'%.80s' is not an ed25519 did:key", addr);
	memcpy(b58, addr + 9, n - 9);
	b58[n - 9] = '\0';
	if (nn_b58_decode(mc, sizeof mc, b58) != 34 || mc[0] != 0xed || mc[1] != 0x01)
		return nn_seterr(err, "'%.80s' is not an ed25519 did:key", addr);
	memcpy(pk, mc + 2, 32);
	if (n < NN_DID_MAX) {
		unsigned i = did_cache_next++ % DID_CACHE;
		memcpy(did_cache[i].did, addr, n);
		did_cache[i].did[n] = '\0';
		memcpy(did_cache[i].pk, pk, 32);
	}
	return 0;
}

void nn_key_sign(const struct nn_key *k, uint8_t sig[64], const void *msg, size_t len)
{
	crypto_sign_detached(sig, NULL, msg, len, k->sk);
}

int nn_sig_verify(const uint8_t pk[32], const uint8_t sig[64], const void *msg, size_t len)
{
	return crypto_sign_verify_detached(sig, msg, len, pk);
}

static char *b64(const uint8_t *p, size_t n)
{
	char *s = nn_xmalloc(nn_b64_len(n));
	nn_b64_encode(s, p, n);
	return s;
}

static int getb64(jv o, const char *field, uint8_t *out, size_t n, char *err)
{
	const char *s;
	if (nn_json_get_str(o, field, &s, err) < 0)
		return -1;
	if (nn_b64_decode(out, n, s, strlen(s)) != (int)n)
		return nn_seterr(err, "%s: bad base64 or wrong length", field);
	return 0;
}

static int key_save(const struct nn_key *k, const char *path, const char *passphrase, int sync,
		    char *err)
{
	jv doc = jv_object();
	char *text = NULL, *s;
	int fd, r = -1;

	doc = jv_object_set(doc, jv_string("type"), jv_string("ed25519"));
	doc = jv_object_set(doc, jv_string("did"), jv_string(k->did));
	if (!passphrase) {
		s = b64(k->sk, 32);
		doc = jv_object_set(doc, jv_string("seed"), jv_string(s));
		sodium_memzero(s, strlen(s));
		free(s);
	} else {
		uint8_t salt[crypto_pwhash_SALTBYTES], nonce[crypto_secretbox_NONCEBYTES];
		uint8_t box[32 + crypto_secretbox_MACBYTES], kk[crypto_secretbox_KEYBYTES];
		unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
		size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;

		randombytes_buf(salt, sizeof salt);
		randombytes_buf(nonce, sizeof nonce);
		if (crypto_pwhash(kk, sizeof kk, passphrase, strlen(passphrase), salt, ops, mem,
				  crypto_pwhash_ALG_ARGON2ID13) != 0) {
			jv_free(doc);
			return nn_seterr(err, "cannot derive a key from the passphrase (out of memory)");
		}
		crypto_secretbox_easy(box, k->sk, 32, nonce, kk);
		sodium_memzero(kk, sizeof kk);
		doc = jv_object_set(doc, jv_string("kdf"), jv_string("argon2id13"));
		doc = jv_object_set(doc, jv_string("ops"), jv_number((double)ops));
		doc = jv_object_set(doc, jv_string("mem"), jv_number((double)mem));
		doc = jv_object_set(doc, jv_string("salt"), jv_string((s = b64(salt, sizeof salt))));
		free(s);
		doc = jv_object_set(doc, jv_string("nonce"), jv_string((s = b64(nonce, sizeof nonce))));
		free(s);
		doc = jv_object_set(doc, jv_string("box"), jv_string((s = b64(box, sizeof box))));
		free(s);
	}
	text = nn_json_dump(doc);
	jv_free(doc);

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			nn_seterr(err, "'%s' exists: refusing to overwrite an identity", path);
		else
			nn_seterr(err, "cannot create '%s': %s", path, strerror(errno));
		goto out;
	}
	if (nn_write_all(fd, text, strlen(text)) < 0 || nn_write_all(fd, "\n", 1) < 0 ||
	    (sync && fsync(fd) < 0)) {
		nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
		close(fd);
		unlink(path);
		goto out;
	}
	close(fd);
	r = 0;
out:
	sodium_memzero(text, strlen(text));
	free(text);
	return r;
}

int nn_key_save(const struct nn_key *k, const char *path, const char *passphrase, char *err)
{
	return key_save(k, path, passphrase, 1, err);
}

int nn_key_save_nosync(const struct nn_key *k, const char *path, char *err)
{
	return key_save(k, path, NULL, 0, err);
}

int nn_key_load(struct nn_key *k, const char *path, const char *passphrase, char *err)
{
	size_t len;
	char *text = nn_read_file(path, 4096, &len, err);
	const char *type;
	uint8_t seed[32];
	jv doc;
	int r = -1;
	struct stat st;

	if (!text)
		return -1;
	doc = nn_json_parse(text, len, err);
	sodium_memzero(text, len);
	free(text);
	if (!jv_is_valid(doc))
		return nn_seterr(err, "'%s': not a key file", path);
	if (stat(path, &st) == 0 && (st.st_mode & 077)) {
		nn_seterr(err, "'%s' is readable by others (mode %03o): chmod 600 it",
			  path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if (nn_json_get_str(doc, "type", &type, err) < 0 || strcmp(type, "ed25519") != 0) {
		nn_seterr(err, "'%s': not an ed25519 key file", path);
		goto out;
	}
	if (!nn_json_has(doc, "kdf")) {
		if (getb64(doc, "seed", seed, 32, err) < 0)
			goto out;
	} else {
		uint8_t salt[crypto_pwhash_SALTBYTES], nonce[crypto_secretbox_NONCEBYTES];
		uint8_t box[32 + crypto_secretbox_MACBYTES], kk[crypto_secretbox_KEYBYTES];
		int64_t ops, mem;
		const char *kdf;

		if (nn_json_get_str(doc, "kdf", &kdf, err) < 0 || strcmp(kdf, "argon2id13") != 0) {
			nn_seterr(err, "'%s': unknown key sealing", path);
			goto out;
		}
		if (!passphrase) {
			nn_seterr(err, "'%s' is sealed with a passphrase: set NUNET_PASSPHRASE", path);
			goto out;
		}
		if (nn_json_get_int(doc, "ops", &ops, err) < 0 || nn_json_get_int(doc, "mem", &mem, err) < 0 ||
		    ops < 1 || ops > 64 || mem < 8192 || mem > (1LL << 32) ||
		    getb64(doc, "salt", salt, sizeof salt, err) < 0 ||
		    getb64(doc, "nonce", nonce, sizeof nonce, err) < 0 ||
		    getb64(doc, "box", box, sizeof box, err) < 0) {
			nn_seterr(err, "'%s': damaged sealed key", path);
			goto out;
		}
		if (crypto_pwhash(kk, sizeof kk, passphrase, strlen(passphrase), salt,
				  (unsigned long long)ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
			nn_seterr(err, "cannot derive a key from the passphrase (out of memory)");
			goto out;
		}
		if (crypto_secretbox_open_easy(seed, box, sizeof box, nonce, kk) != 0) {
			sodium_memzero(kk, sizeof kk);
			nn_seterr(err, "'%s': wrong passphrase", path);
			goto out;
		}
		sodium_memzero(kk, sizeof kk);
	}
	nn_key_from_seed(k, seed);
	sodium_memzero(seed, sizeof seed);
	r = 0;
out:
	jv_free(doc);
	return r;
}
