/*
 * sha256 — SHA-256 through OpenSSL's libcrypto, which uses the CPU's SHA
 * instructions (x86 SHA-NI, ARMv8 SHA2) or AVX2 where it finds them: about
 * 1.5-2 GB/s on one core here, where libsodium's portable C manages about
 * 200 MB/s — slower than a loopback download, which it then throttled to
 * ~30 % of curl's speed (t/perf/storage).  For bulk data (downloads,
 * uploads, snapshots); signatures keep using libsodium.
 *
 *	struct nn_sha256 h;
 *	nn_sha256_init(&h);
 *	nn_sha256_update(&h, p, n); ...
 *	nn_sha256_final(&h, md);        also releases h
 *
 * nn_sha256_release() frees a state that will not be finished.  Out of
 * memory dies, as everywhere in libcommon.
 */
#ifndef NN_SHA256_H
#define NN_SHA256_H

#include <stddef.h>

struct nn_sha256 {
	void *ctx;		/* EVP_MD_CTX */
};

void nn_sha256_init(struct nn_sha256 *h);
/* Start again from nothing (a download that restarts from byte 0). */
void nn_sha256_reset(struct nn_sha256 *h);
void nn_sha256_update(struct nn_sha256 *h, const void *p, size_t n);
void nn_sha256_final(struct nn_sha256 *h, unsigned char md[32]);
void nn_sha256_release(struct nn_sha256 *h);
/* One call: md = SHA-256(p[0..n)). */
void nn_sha256(unsigned char md[32], const void *p, size_t n);

#endif
