/*
 * bench-sign — the bound for envelope round trips: ed25519 sign+verify pairs
 * per second with libsodium on this machine, on one core, over a message the
 * size of a small signed envelope.  Usage: bench-sign [SECONDS]
 * Prints {"pairs_per_s":N,"pairs_per_cpu_s":N,"bytes":N}: per second of
 * wall-clock time, and per second of this thread's CPU time (the figure
 * that holds on a busy machine).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include "util.h"

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	unsigned char pk[32], sk[64], sig[64], msg[300];
	int64_t t0, t;
	long n = 0;
	struct timespec c0, c1;

	if (sodium_init() < 0)
		return 70;
	crypto_sign_keypair(pk, sk);
	randombytes_buf(msg, sizeof msg);
	t0 = nn_mono_ms();
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	do {
		for (int i = 0; i < 100; i++) {
			msg[0] = (unsigned char)n;
			crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
			if (crypto_sign_verify_detached(sig, msg, sizeof msg, pk) != 0)
				return 70;
			n++;
		}
		t = nn_mono_ms();
	} while (t - t0 < secs * 1000);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	printf("{\"pairs_per_s\":%.0f,\"pairs_per_cpu_s\":%.0f,\"bytes\":%zu}\n",
	       n * 1000.0 / (t - t0),
	       n / ((c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9), sizeof msg);
	return 0;
}
