/*
 * bench-sign — the bound for envelope round trips: ed25519 sign+verify pairs
 * per second with libsodium on this machine, on one core, over a message the
 * size of a small signed envelope.  Usage: bench-sign [SECONDS]
 * Prints {"pairs_per_s":N,"bytes":N}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "util.h"

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	unsigned char pk[32], sk[64], sig[64], msg[300];
	int64_t t0, t;
	long n = 0;

	if (sodium_init() < 0)
		return 70;
	crypto_sign_keypair(pk, sk);
	randombytes_buf(msg, sizeof msg);
	t0 = nn_mono_ms();
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
	printf("{\"pairs_per_s\":%.0f,\"bytes\":%zu}\n", n * 1000.0 / (t - t0), sizeof msg);
	return 0;
}
