/*
 * sha256 — SHA-256 of bulk data with OpenSSL's EVP interface (the
 * low-level SHA256_* calls are deprecated in OpenSSL 3).  EVP picks the
 * fastest code the CPU allows; see sha256.h for why storage needs it.
 */
#include "sha256.h"

#include <openssl/evp.h>
#include "log.h"
#include "util.h"

void nn_sha256_init(struct nn_sha256 *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
		nn_die(NN_EX_SOFTWARE, "cannot start a SHA-256 (libcrypto)");
	h->ctx = c;
}

void nn_sha256_reset(struct nn_sha256 *h)
{
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		nn_die(NN_EX_SOFTWARE, "cannot start a SHA-256 (libcrypto)");
}

void nn_sha256_update(struct nn_sha256 *h, const void *p, size_t n)
{
	if (n && EVP_DigestUpdate(h->ctx, p, n) != 1)
		nn_die(NN_EX_SOFTWARE, "SHA-256 update failed (libcrypto)");
}

void nn_sha256_final(struct nn_sha256 *h, unsigned char md[32])
{
	unsigned int len = 0;
	if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != 32)
		nn_die(NN_EX_SOFTWARE, "SHA-256 final failed (libcrypto)");
	nn_sha256_release(h);
}

void nn_sha256_release(struct nn_sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void nn_sha256(unsigned char md[32], const void *p, size_t n)
{
	struct nn_sha256 h;
	nn_sha256_init(&h);
	nn_sha256_update(&h, p, n);
	nn_sha256_final(&h, md);
}
