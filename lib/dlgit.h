/*
 * dlgit — libgit2, loaded on first use instead of at every program start,
 * as dlcurl.h does for libcurl: libgit2 and its dependencies (libssh2,
 * mbedTLS, Kerberos, ...) cost every run of nunet-run, shim included,
 * several milliseconds and over a MiB of resident memory, although only
 * git inputs and outputs of a job need them.  No program links libgit2:
 * lib/dlgit.c defines the git_* functions libcommon calls and forwards
 * them to libgit2.so loaded with dlopen.
 *
 * A path that uses git calls nn_dlgit_load first, to fail with a clear
 * error when libgit2 is not installed.  Without it the git_* functions
 * fail as libgit2 does: -1 or NULL, and git_error_last() says why.
 */
#ifndef NN_DLGIT_H
#define NN_DLGIT_H

#define NN_DLGIT_SONAME "libgit2.so.1.5"

/* Load libgit2 once (thread-safe).  0, or -1 with err saying why. */
int nn_dlgit_load(char *err);

#endif
