/*
 * sha256 — SHA-256 of bulk data with OpenSSL's EVP interface (the
 * low-level SHA256_* calls are deprecated in OpenSSL 3).  EVP picks the
 * fastest code the CPU allows; see sha256.h for why storage needs it.
 */
#include "sha256.h"

#include <dlfcn.h>
#include <pthread.h>
#include <openssl/evp.h>
#include "log.h"
#include "util.h"

/*
 * libcrypto is not linked but loaded here on first use, as lib/dlcurl.c
 * does for libcurl: mapping and relocating it costs every program start
 * about a millisecond and 1.4 MiB of resident memory, and only storage
 * transfers hash.  These names are what the rest of this file calls.
 */
#define FUNCS(X) X(EVP_MD_CTX_new) X(EVP_MD_CTX_free) X(EVP_DigestInit_ex) \
	X(EVP_DigestUpdate) X(EVP_DigestFinal_ex) X(EVP_sha256)
static struct {
#define MEMBER(f) __typeof__(f) *f;
	FUNCS(MEMBER)
#undef MEMBER
} fn;
static char why[NN_ERRLEN];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load_once(void)
{
	void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		nn_seterr(why, "cannot load libcrypto (%s): install it (Debian: libssl3)", dlerror());
		return;
	}
#define LOOK(f) \
	if (!(*(void **)&fn.f = dlsym(h, #f))) { \
		nn_seterr(why, "cannot load libcrypto: libcrypto.so.3 has no %s", #f); \
		dlclose(h); \
		return; \
	}
	FUNCS(LOOK)
#undef LOOK
}

static void load(void)
{
	pthread_once(&once, load_once);
	if (why[0])
		nn_die(NN_EX_UNAVAILABLE, "%s", why);
}
#define EVP_MD_CTX_new fn.EVP_MD_CTX_new
#define EVP_MD_CTX_free fn.EVP_MD_CTX_free
#define EVP_DigestInit_ex fn.EVP_DigestInit_ex
#define EVP_DigestUpdate fn.EVP_DigestUpdate
#define EVP_DigestFinal_ex fn.EVP_DigestFinal_ex
#define EVP_sha256 fn.EVP_sha256

void nn_sha256_init(struct nn_sha256 *h)
{
	EVP_MD_CTX *c;
	load();
	c = EVP_MD_CTX_new();
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
	if (h->ctx)
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
