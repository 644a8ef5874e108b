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

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void nn_b64_encode_pub(char *out, const uint8_t *in, size_t n)
{
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*out++ = B64[w >> 18];
		*out++ = B64[w >> 12 & 63];
		*out++ = B64[w >> 6 & 63];
		*out++ = B64[w & 63];
	}
	if (i < n) {
		uint32_t w = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
		*out++ = B64[w >> 18];
		*out++ = B64[w >> 12 & 63];
		*out++ = i + 1 < n ? B64[w >> 6 & 63] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

/* The value of each base64 digit, -1 for any other character (a table:
 * branches on the characters of a signature are mispredicted). */
#define D(c, v) [c] = (v) + 1
static const signed char b64_value1[256] = {
	D('A', 0), D('B', 1), D('C', 2), D('D', 3), D('E', 4), D('F', 5), D('G', 6), D('H', 7),
	D('I', 8), D('J', 9), D('K', 10), D('L', 11), D('M', 12), D('N', 13), D('O', 14),
	D('P', 15), D('Q', 16), D('R', 17), D('S', 18), D('T', 19), D('U', 20), D('V', 21),
	D('W', 22), D('X', 23), D('Y', 24), D('Z', 25), D('a', 26), D('b', 27), D('c', 28),
	D('d', 29), D('e', 30), D('f', 31), D('g', 32), D('h', 33), D('i', 34), D('j', 35),
	D('k', 36), D('l', 37), D('m', 38), D('n', 39), D('o', 40), D('p', 41), D('q', 42),
	D('r', 43), D('s', 44), D('t', 45), D('u', 46), D('v', 47), D('w', 48), D('x', 49),
	D('y', 50), D('z', 51), D('0', 52), D('1', 53), D('2', 54), D('3', 55), D('4', 56),
	D('5', 57), D('6', 58), D('7', 59), D('8', 60), D('9', 61), D('+', 62), D('/', 63),
};
#undef D

static int b64_digit(char c)
{
	return b64_value1[(unsigned char)c] - 1;
}

int nn_b64_decode_pub(uint8_t *out, size_t outlen, const char *in, size_t inlen)
{
	size_t pad = 0, n, o = 0;
	if (inlen % 4)
		return -1;
	if (inlen && in[inlen - 1] == '=')
		pad = inlen > 1 && in[inlen - 2] == '=' ? 2 : 1;
	n = inlen / 4 * 3 - pad;
	if (n > outlen)
		return -1;
	for (size_t i = 0; i < inlen; i += 4) {
		int last = i + 4 == inlen, p = last ? (int)pad : 0;
		int a = b64_digit(in[i]), b = b64_digit(in[i + 1]);
		int c = p == 2 ? 0 : b64_digit(in[i + 2]);
		int d = p >= 1 ? 0 : b64_digit(in[i + 3]);
		uint32_t w;
		if ((a | b | c | d) < 0)
			return -1;
		w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		out[o++] = (uint8_t)(w >> 16);
		if (p == 2) {
			if (w & 0xffff)	/* stray bits after the last byte */
				return -1;
			break;
		}
		out[o++] = (uint8_t)(w >> 8);
		if (p == 1) {
			if (w & 0xff)
				return -1;
			break;
		}
		out[o++] = (uint8_t)w;
	}
	return (int)n;
}
