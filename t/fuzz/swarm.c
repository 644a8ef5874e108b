/*
 * Fuzz target: what the swarm reads from its operator and its peers before
 * any handshake: a peer address (nn_swarm_parse_addr, from config and from
 * gossip) and a swarm key file's text (nn_shs_netkey_parse).  Input: an
 * address, optionally followed by a line "--" and key text.  An address
 * that parses must give a non-empty host within the buffer and a port in
 * 0..65535, and print back to an address that parses the same; a key that
 * parses must be the hexadecimal digits of the text.
 */
#include <ctype.h>
#include "swarm.h"
#include "shs.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *a, *b;
	size_t alen, blen;
	char err[NN_ERRLEN], host[64], host2[64];
	int port = -1, port2 = -1;

	fuzz_split(data, size, &a, &alen, &b, &blen);
	char *s = strndup((const char *)a, alen);
	if (nn_swarm_parse_addr(s, host, sizeof host, &port, err) == 0) {
		FUZZ_CHECK(host[0] && strlen(host) < sizeof host);
		FUZZ_CHECK(port >= 0 && port <= 65535);
		if (!strpbrk(host, "[]")) {
			char again[80];
			snprintf(again, sizeof again, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
			FUZZ_CHECK(nn_swarm_parse_addr(again, host2, sizeof host2, &port2, err) == 0);
			FUZZ_CHECK(!strcmp(host, host2) && port == port2);
		}
	} else {
		FUZZ_CHECK(err[0]);
	}
	free(s);

	uint8_t key[32];
	if (nn_shs_netkey_parse((const char *)b, blen, key, err) == 0) {
		char hex[65], text[65];
		size_t n = 0;
		nn_hex_encode(hex, key, 32);
		for (size_t i = 0; i < blen && n < 64; i++)
			if (isxdigit(b[i]))
				text[n++] = (char)tolower(b[i]);
		text[n] = 0;
		FUZZ_CHECK(n == 64 && !strcmp(hex, text));
	}
	return 0;
}
