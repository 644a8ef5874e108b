/*
 * codec — base58btc by repeated division (inputs here are tens of bytes, so
 * the quadratic algorithm is the right one), and base64 as libsodium does it.
 */
#include "codec.h"

#include <string.h>
#include <sodium.h>

static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

int nn_b58_encode(char *out, size_t outlen, const uint8_t *in, size_t n)
{
	uint8_t tmp[256];
	size_t zeros = 0, size, len = 0;

	while (zeros < n && in[zeros] == 0)
		zeros++;
	size = (n - zeros) * 138 / 100 + 1;
	if (size > sizeof tmp)
		return -1;
	memset(tmp, 0, size);
	for (size_t i = zeros; i < n; i++) {
		unsigned carry = in[i];
		size_t j = 0;
		for (size_t k = size; k-- > 0 && (carry || j < len); j++) {
			carry += 256u * tmp[k];
			tmp[k] = carry % 58;
			carry /= 58;
		}
		len = j;
	}
	size_t start = size - len;
	while (start < size && tmp[start] == 0)
		start++;
	if (zeros + (size - start) + 1 > outlen)
		return -1;
	memset(out, '1', zeros);
	size_t o = zeros;
	for (size_t i = start; i < size; i++)
		out[o++] = B58[tmp[i]];
	out[o] = '\0';
	return (int)o;
}

int nn_b58_decode(uint8_t *out, size_t outlen, const char *in)
{
	uint8_t tmp[256];
	size_t n = strlen(in), zeros = 0, size, len = 0;

	while (zeros < n && in[zeros] == '1')
		zeros++;
	size = (n - zeros) * 733 / 1000 + 1;
	if (size > sizeof tmp)
		return -1;
	memset(tmp, 0, size);
	for (size_t i = zeros; i < n; i++) {
		const char *p = strchr(B58, in[i]);
		unsigned carry;
		size_t j = 0;
		if (!p || !in[i])
			return -1;
		carry = (unsigned)(p - B58);
		for (size_t k = size; k-- > 0 && (carry || j < len); j++) {
			carry += 58u * tmp[k];
			tmp[k] = carry & 0xff;
			carry >>= 8;
		}
		len = j;
	}
	size_t start = size - len;
	while (start < size && tmp[start] == 0)
		start++;
	if (zeros + (size - start) > outlen)
		return -1;
	memset(out, 0, zeros);
	memcpy(out + zeros, tmp + start, size - start);
	return (int)(zeros + size - start);
}

size_t nn_b64_len(size_t n)
{
	return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
}

void nn_b64_encode(char *out, const uint8_t *in, size_t n)
{
	sodium_bin2base64(out, nn_b64_len(n), in, n, sodium_base64_VARIANT_ORIGINAL);
}

int nn_b64_decode(uint8_t *out, size_t outlen, const char *in, size_t inlen)
{
	size_t got;
	const char *end;
	if (sodium_base642bin(out, outlen, in, inlen, NULL, &got, &end,
			      sodium_base64_VARIANT_ORIGINAL) < 0 || end != in + inlen)
		return -1;
	return (int)got;
}
