/*
 * dlcurl — libcurl, loaded on first use instead of at every program start.
 *
 * libcurl pulls in some 35 more shared libraries (TLS, Kerberos, LDAP,
 * HTTP/2, ...): mapping and relocating them cost about 6 ms and 1.5 MiB of
 * resident memory in every process that links it, although most runs of
 * nunet-run, nunet-node and nunet-bench never make an HTTP request.  So no
 * program links libcurl: lib/dlcurl.c defines the curl_* functions that
 * libcommon calls (the prototypes are those of <curl/curl.h>, checked by the
 * compiler), and the first call loads libcurl.so.4 with dlopen and forwards
 * to it.  Code keeps calling libcurl as documented.
 *
 * A path that needs HTTP calls nn_dlcurl_load first, to fail with a clear
 * error when libcurl is not installed.  Without it, the curl_* functions
 * fail as libcurl does when it cannot start: curl_easy_init, curl_multi_init,
 * curl_url and curl_slist_append return NULL, curl_global_init and the
 * functions that return a code return CURLE_FAILED_INIT (CURLM_INTERNAL_ERROR,
 * CURLUE_OUT_OF_MEMORY), curl_easy_strerror returns the reason.
 */
#ifndef NN_DLCURL_H
#define NN_DLCURL_H

/* The soname loaded. */
#define NN_DLCURL_SONAME "libcurl.so.4"

/* Load libcurl once (thread-safe).  0, or -1 with err saying why, e.g.
 * "cannot load libcurl (libcurl.so.4: cannot open shared object file: No
 * such file or directory): install it (Debian: libcurl4)". */
int nn_dlcurl_load(char *err);

/* The same for another soname, without keeping it: for tests of the
 * error path.  0 when NAME loads and has every function used. */
int nn_dlcurl_probe(const char *name, char *err);

#endif
