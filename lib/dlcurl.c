/*
 * dlcurl — the curl_* functions libcommon uses, each forwarding to libcurl
 * loaded with dlopen on first use (dlcurl.h says why).  One table of
 * function pointers filled once under pthread_once; the two variadic
 * functions pass their one argument on with the type libcurl reads for
 * that option (curl's own rule: the option's number range says the type).
 * A function that libcommon starts calling must be added to FUNCS.
 */
#define CURL_DISABLE_TYPECHECK	/* we define curl_easy_setopt itself */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <curl/curl.h>
#include "dlcurl.h"
#include "util.h"

#define FUNCS(X) \
	X(curl_global_init) X(curl_global_cleanup) X(curl_free) \
	X(curl_easy_init) X(curl_easy_cleanup) X(curl_easy_reset) \
	X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_perform) \
	X(curl_easy_strerror) X(curl_easy_escape) \
	X(curl_slist_append) X(curl_slist_free_all) \
	X(curl_multi_init) X(curl_multi_cleanup) X(curl_multi_add_handle) \
	X(curl_multi_remove_handle) X(curl_multi_perform) X(curl_multi_poll) \
	X(curl_multi_wakeup) X(curl_multi_info_read) \
	X(curl_url) X(curl_url_cleanup) X(curl_url_set) X(curl_url_get)

struct table {
#define MEMBER(f) __typeof__(f) *f;
	FUNCS(MEMBER)
#undef MEMBER
};

static struct table fn;
static int loaded;
static char why[NN_ERRLEN];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Open NAME and fill t; on failure close it again and say why. */
static int open_lib(const char *name, struct table *t, void **handle, char *err)
{
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return nn_seterr(err, "cannot load libcurl (%s): install it (Debian: libcurl4)",
				 dlerror());
#define LOOK(f) \
	if (!(*(void **)&t->f = dlsym(h, #f))) { \
		nn_seterr(err, "cannot load libcurl: %s has no %s", name, #f); \
		dlclose(h); \
		return -1; \
	}
	FUNCS(LOOK)
#undef LOOK
	*handle = h;
	return 0;
}

static void load_once(void)
{
	void *h;
	loaded = open_lib(NN_DLCURL_SONAME, &fn, &h, why) == 0;
}

int nn_dlcurl_load(char *err)
{
	pthread_once(&once, load_once);
	if (!loaded)
		return nn_seterr(err, "%s", why);
	return 0;
}

int nn_dlcurl_probe(const char *name, char *err)
{
	struct table t;
	void *h;
	if (open_lib(name, &t, &h, err) < 0)
		return -1;
	dlclose(h);
	return 0;
}

#define READY() (nn_dlcurl_load(NULL) == 0)

CURLcode curl_global_init(long flags)
{
	return READY() ? fn.curl_global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
	if (READY())
		fn.curl_global_cleanup();
}

void curl_free(void *p)
{
	if (READY())
		fn.curl_free(p);
}

CURL *curl_easy_init(void)
{
	return READY() ? fn.curl_easy_init() : NULL;
}

void curl_easy_cleanup(CURL *c)
{
	if (READY())
		fn.curl_easy_cleanup(c);
}

void curl_easy_reset(CURL *c)
{
	if (READY())
		fn.curl_easy_reset(c);
}

CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
	va_list ap;
	CURLcode r;
	if (!READY())
		return CURLE_FAILED_INIT;
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		r = fn.curl_easy_setopt(c, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_OFF_T)	/* objects, strings, functions */
		r = fn.curl_easy_setopt(c, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_BLOB)
		r = fn.curl_easy_setopt(c, opt, va_arg(ap, curl_off_t));
	else
		r = fn.curl_easy_setopt(c, opt, va_arg(ap, void *));
	va_end(ap);
	return r;
}

CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	va_list ap;
	CURLcode r;
	if (!READY())
		return CURLE_FAILED_INIT;
	va_start(ap, info);	/* always a pointer to where the answer goes */
	r = fn.curl_easy_getinfo(c, info, va_arg(ap, void *));
	va_end(ap);
	return r;
}

CURLcode curl_easy_perform(CURL *c)
{
	return READY() ? fn.curl_easy_perform(c) : CURLE_FAILED_INIT;
}

const char *curl_easy_strerror(CURLcode code)
{
	return READY() ? fn.curl_easy_strerror(code) : why;
}

char *curl_easy_escape(CURL *c, const char *s, int len)
{
	return READY() ? fn.curl_easy_escape(c, s, len) : NULL;
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
	return READY() ? fn.curl_slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
	if (READY())
		fn.curl_slist_free_all(l);
}

CURLM *curl_multi_init(void)
{
	return READY() ? fn.curl_multi_init() : NULL;
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
	return READY() ? fn.curl_multi_cleanup(m) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *c)
{
	return READY() ? fn.curl_multi_add_handle(m, c) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *c)
{
	return READY() ? fn.curl_multi_remove_handle(m, c) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_perform(CURLM *m, int *running)
{
	return READY() ? fn.curl_multi_perform(m, running) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd extra[], unsigned int n,
			  int timeout_ms, int *ret)
{
	return READY() ? fn.curl_multi_poll(m, extra, n, timeout_ms, ret) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_wakeup(CURLM *m)
{
	return READY() ? fn.curl_multi_wakeup(m) : CURLM_INTERNAL_ERROR;
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
	return READY() ? fn.curl_multi_info_read(m, left) : NULL;
}

CURLU *curl_url(void)
{
	return READY() ? fn.curl_url() : NULL;
}

void curl_url_cleanup(CURLU *u)
{
	if (READY())
		fn.curl_url_cleanup(u);
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
	return READY() ? fn.curl_url_set(u, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
	return READY() ? fn.curl_url_get(u, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}
