/*
 * shs — Secret Handshake v1 as an I/O-free state machine (see shs.h), and
 * the swarm's network keys.  Every primitive is libsodium's: crypto_auth
 * (HMAC-SHA-512-256) authenticates the ephemeral keys with the network key,
 * crypto_scalarmult makes the three shared secrets ab, aB and Ab (the
 * long-term ed25519 keys converted to curve25519), crypto_sign signs, and
 * crypto_secretbox with an all-zero nonce seals msg3 and msg4 under keys
 * hashed with crypto_hash_sha256.  Names follow the guide: a/A are the
 * client's ephemeral/long-term keys, b/B the server's.  Secrets are wiped as
 * soon as they are no longer needed, and on failure.  At the end of the
 * file, nn_shs_conn strings the handshake, the two box-streams and a line
 * reader together into the one object a peer connection needs.
 */
#include "shs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

const uint8_t nn_shs_public_netkey[NN_SHS_KEYBYTES] = NN_SHS_PUBLIC_NETKEY_INIT;

/* Steps: which message each side is waiting for. */
enum { WAIT_MSG1 = 1, WAIT_MSG2, WAIT_MSG3, WAIT_MSG4, FINISHED };

static const uint8_t zero_nonce[crypto_secretbox_NONCEBYTES];

static void wipe_secrets(struct nn_shs *s)
{
	sodium_memzero(s->sk, sizeof s->sk);
	sodium_memzero(s->eph_sk, sizeof s->eph_sk);
	sodium_memzero(s->ab, sizeof s->ab);
	sodium_memzero(s->aB, sizeof s->aB);
	sodium_memzero(s->Ab, sizeof s->Ab);
	sodium_memzero(s->in, sizeof s->in);
	sodium_memzero(s->out, sizeof s->out);
}

static int fail(struct nn_shs *s, char *err, const char *msg)
{
	s->status = NN_SHS_FAILED;
	s->step = FINISHED;
	s->inlen = s->outlen = 0;
	snprintf(s->err, sizeof s->err, "handshake failed: %s", msg);
	wipe_secrets(s);
	sodium_memzero(&s->keys, sizeof s->keys);
	return nn_seterr(err, "%s", s->err);
}

static void queue(struct nn_shs *s, const uint8_t *p, size_t n)
{
	memcpy(s->out + s->outlen, p, n);
	s->outlen += n;
}

static void init_common(struct nn_shs *s, int role, const uint8_t netkey[32],
			const struct nn_key *me)
{
	memset(s, 0, sizeof *s);
	s->role = role;
	s->status = NN_SHS_RUNNING;
	memcpy(s->netkey, netkey, 32);
	memcpy(s->pk, me->pk, 32);
	memcpy(s->sk, me->sk, 64);
	crypto_box_keypair(s->eph_pk, s->eph_sk);
	crypto_auth(s->mac, s->eph_pk, 32, s->netkey);
}

/* msg1 or msg2: hmac(netkey, our ephemeral pk) || our ephemeral pk */
static void queue_hello(struct nn_shs *s)
{
	s->outlen = 0;
	queue(s, s->mac, 32);
	queue(s, s->eph_pk, 32);
}

void nn_shs_client_init(struct nn_shs *s, const uint8_t netkey[32],
			const struct nn_key *me, const uint8_t server_pk[32])
{
	init_common(s, NN_SHS_CLIENT, netkey, me);
	memcpy(s->peer_pk, server_pk, 32);
	s->step = WAIT_MSG2;
	queue_hello(s);
}

void nn_shs_server_init(struct nn_shs *s, const uint8_t netkey[32],
			const struct nn_key *me)
{
	init_common(s, NN_SHS_SERVER, netkey, me);
	s->step = WAIT_MSG1;
}

void nn_shs_set_ephemeral(struct nn_shs *s, const uint8_t eph_sk[32])
{
	memcpy(s->eph_sk, eph_sk, 32);
	crypto_scalarmult_base(s->eph_pk, s->eph_sk);
	crypto_auth(s->mac, s->eph_pk, 32, s->netkey);
	if (s->role == NN_SHS_CLIENT)
		queue_hello(s);
}

void nn_shs_set_authorize(struct nn_shs *s, nn_shs_authorize_fn *fn, void *arg)
{
	s->authorize = fn;
	s->authorize_arg = arg;
}

int nn_shs_status(const struct nn_shs *s)
{
	if (s->status == NN_SHS_DONE && s->outlen)
		return NN_SHS_RUNNING;
	return s->status;
}

const char *nn_shs_error(const struct nn_shs *s)
{
	return s->status == NN_SHS_FAILED ? s->err : "";
}

static size_t msg_len(int step)
{
	switch (step) {
	case WAIT_MSG1: return NN_SHS_MSG1_LEN;
	case WAIT_MSG2: return NN_SHS_MSG2_LEN;
	case WAIT_MSG3: return NN_SHS_MSG3_LEN;
	case WAIT_MSG4: return NN_SHS_MSG4_LEN;
	default: return 0;
	}
}

size_t nn_shs_want(const struct nn_shs *s)
{
	if (s->status != NN_SHS_RUNNING)
		return 0;
	return msg_len(s->step) - s->inlen;
}

size_t nn_shs_output(struct nn_shs *s, uint8_t *buf, size_t cap)
{
	size_t n = s->outlen < cap ? s->outlen : cap;
	memcpy(buf, s->out, n);
	memmove(s->out, s->out + n, s->outlen - n);
	s->outlen -= n;
	return n;
}

/* sha256 over the concatenation of up to four 32-byte pieces */
static void hash_cat(uint8_t out[32], const uint8_t *a, const uint8_t *b,
		     const uint8_t *c, const uint8_t *d)
{
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, a, 32);
	if (b)
		crypto_hash_sha256_update(&h, b, 32);
	if (c)
		crypto_hash_sha256_update(&h, c, 32);
	if (d)
		crypto_hash_sha256_update(&h, d, 32);
	crypto_hash_sha256_final(&h, out);
	sodium_memzero(&h, sizeof h);
}

/* msg1 (server) or msg2 (client): check the hmac, learn the peer's
 * ephemeral key, compute ab. */
static int take_hello(struct nn_shs *s, char *err)
{
	if (crypto_auth_verify(s->in, s->in + 32, 32, s->netkey) != 0)
		return fail(s, err, s->role == NN_SHS_SERVER ?
			"the client's hello (msg1) is not authenticated by our network key: "
			"the client is in another swarm, or does not speak SHS" :
			"the server's hello (msg2) is not authenticated by our network key: "
			"the server is in another swarm, or does not speak SHS");
	memcpy(s->peer_mac, s->in, 32);
	memcpy(s->peer_eph_pk, s->in + 32, 32);
	if (crypto_scalarmult(s->ab, s->eph_sk, s->peer_eph_pk) != 0)
		return fail(s, err, "the peer's ephemeral key is a weak point");
	return 0;
}

/* The box-stream keys: sha256(sha256(key3) || pk), key3 being the msg4
 * box key sha256(N||ab||aB||Ab); the receiver's pk names the direction. */
static void derive_keys(struct nn_shs *s, const uint8_t key3[32])
{
	uint8_t t[32];
	crypto_hash_sha256(t, key3, 32);
	hash_cat(s->keys.enc_key, t, s->peer_pk, NULL, NULL);
	hash_cat(s->keys.dec_key, t, s->pk, NULL, NULL);
	memcpy(s->keys.enc_nonce, s->peer_mac, 24);
	memcpy(s->keys.dec_nonce, s->mac, 24);
	memcpy(s->keys.peer_pk, s->peer_pk, 32);
	sodium_memzero(t, sizeof t);
}

static void finish(struct nn_shs *s, const uint8_t key3[32])
{
	derive_keys(s, key3);
	s->status = NN_SHS_DONE;
	s->step = FINISHED;
	/* forward secrecy: the handshake's secrets are of no further use */
	sodium_memzero(s->sk, sizeof s->sk);
	sodium_memzero(s->eph_sk, sizeof s->eph_sk);
	sodium_memzero(s->ab, sizeof s->ab);
	sodium_memzero(s->aB, sizeof s->aB);
	sodium_memzero(s->Ab, sizeof s->Ab);
	sodium_memzero(s->in, sizeof s->in);
}

/* Client, on msg2: send msg3 = box(sig_A || A, key N||ab||aB). */
static int client_msg2(struct nn_shs *s, char *err)
{
	uint8_t Bc[32], shash[32], key2[32], signed_[96];
	if (take_hello(s, err) < 0)
		return -1;
	if (crypto_sign_ed25519_pk_to_curve25519(Bc, s->peer_pk) != 0)
		return fail(s, err, "the server's public key is not a valid ed25519 key");
	if (crypto_scalarmult(s->aB, s->eph_sk, Bc) != 0)
		return fail(s, err, "the server's public key is a weak point");
	crypto_hash_sha256(shash, s->ab, 32);
	memcpy(signed_, s->netkey, 32);
	memcpy(signed_ + 32, s->peer_pk, 32);
	memcpy(signed_ + 64, shash, 32);
	crypto_sign_detached(s->hello, NULL, signed_, sizeof signed_, s->sk);
	memcpy(s->hello + 64, s->pk, 32);
	hash_cat(key2, s->netkey, s->ab, s->aB, NULL);
	s->outlen = 0;
	crypto_secretbox_easy(s->out, s->hello, sizeof s->hello, zero_nonce, key2);
	s->outlen = NN_SHS_MSG3_LEN;
	s->step = WAIT_MSG4;
	sodium_memzero(key2, sizeof key2);
	sodium_memzero(shash, sizeof shash);
	return 0;
}

/* Server, on msg3: open it, check the client's signature, send msg4. */
static int server_msg3(struct nn_shs *s, char *err)
{
	uint8_t bc[32], Ac[32], shash[32], key2[32], key3[32], signed_[160], sig[64];
	int r = -1;

	if (crypto_sign_ed25519_sk_to_curve25519(bc, s->sk) != 0 ||
	    crypto_scalarmult(s->aB, bc, s->peer_eph_pk) != 0) {
		fail(s, err, "cannot compute the shared secret aB");
		goto out;
	}
	hash_cat(key2, s->netkey, s->ab, s->aB, NULL);
	if (crypto_secretbox_open_easy(s->hello, s->in, NN_SHS_MSG3_LEN, zero_nonce, key2) != 0) {
		fail(s, err, "cannot open the client's authentication (msg3): "
		     "the client expects another server key, or the message was altered");
		goto out;
	}
	crypto_hash_sha256(shash, s->ab, 32);
	memcpy(signed_, s->netkey, 32);
	memcpy(signed_ + 32, s->pk, 32);
	memcpy(signed_ + 64, shash, 32);
	if (crypto_sign_verify_detached(s->hello, signed_, 96, s->hello + 64) != 0) {
		fail(s, err, "the client's signature in msg3 does not verify");
		goto out;
	}
	memcpy(s->peer_pk, s->hello + 64, 32);
	if (crypto_sign_ed25519_pk_to_curve25519(Ac, s->peer_pk) != 0 ||
	    crypto_scalarmult(s->Ab, s->eph_sk, Ac) != 0) {
		fail(s, err, "the client's public key is not a usable ed25519 key");
		goto out;
	}
	if (s->authorize) {
		char aerr[NN_ERRLEN] = "the client is not authorized";
		if (s->authorize(s->peer_pk, s->authorize_arg, aerr) < 0) {
			fail(s, err, aerr);
			goto out;
		}
	}
	hash_cat(key3, s->netkey, s->ab, s->aB, s->Ab);
	memcpy(signed_, s->netkey, 32);
	memcpy(signed_ + 32, s->hello, 96);
	memcpy(signed_ + 128, shash, 32);
	crypto_sign_detached(sig, NULL, signed_, sizeof signed_, s->sk);
	s->outlen = 0;
	crypto_secretbox_easy(s->out, sig, sizeof sig, zero_nonce, key3);
	s->outlen = NN_SHS_MSG4_LEN;
	finish(s, key3);
	r = 0;
out:
	sodium_memzero(bc, sizeof bc);
	sodium_memzero(key2, sizeof key2);
	sodium_memzero(key3, sizeof key3);
	sodium_memzero(shash, sizeof shash);
	return r;
}

/* Client, on msg4: open it and check the server's signature. */
static int client_msg4(struct nn_shs *s, char *err)
{
	uint8_t Ac[32], shash[32], key3[32], signed_[160], sig[64];
	int r = -1;

	if (crypto_sign_ed25519_sk_to_curve25519(Ac, s->sk) != 0 ||
	    crypto_scalarmult(s->Ab, Ac, s->peer_eph_pk) != 0) {
		fail(s, err, "cannot compute the shared secret Ab");
		goto out;
	}
	hash_cat(key3, s->netkey, s->ab, s->aB, s->Ab);
	if (crypto_secretbox_open_easy(sig, s->in, NN_SHS_MSG4_LEN, zero_nonce, key3) != 0) {
		fail(s, err, "cannot open the server's accept (msg4): it was forged or altered");
		goto out;
	}
	crypto_hash_sha256(shash, s->ab, 32);
	memcpy(signed_, s->netkey, 32);
	memcpy(signed_ + 32, s->hello, 96);
	memcpy(signed_ + 128, shash, 32);
	if (crypto_sign_verify_detached(sig, signed_, sizeof signed_, s->peer_pk) != 0) {
		fail(s, err, "the server's signature in msg4 does not verify");
		goto out;
	}
	finish(s, key3);
	r = 0;
out:
	sodium_memzero(Ac, sizeof Ac);
	sodium_memzero(key3, sizeof key3);
	sodium_memzero(shash, sizeof shash);
	return r;
}

static int server_msg1(struct nn_shs *s, char *err)
{
	if (take_hello(s, err) < 0)
		return -1;
	queue_hello(s);
	s->step = WAIT_MSG3;
	return 0;
}

int nn_shs_feed(struct nn_shs *s, const void *p, size_t n, size_t *used, char *err)
{
	const uint8_t *q = p;
	size_t took = 0;
	int r = 0;

	if (s->status == NN_SHS_FAILED) {
		*used = 0;
		return nn_seterr(err, "%s", s->err);
	}
	while (took < n && s->status == NN_SHS_RUNNING) {
		size_t need = msg_len(s->step) - s->inlen;
		size_t k = n - took < need ? n - took : need;
		memcpy(s->in + s->inlen, q + took, k);
		s->inlen += k;
		took += k;
		if (s->inlen < msg_len(s->step))
			break;
		switch (s->step) {
		case WAIT_MSG1: r = server_msg1(s, err); break;
		case WAIT_MSG2: r = client_msg2(s, err); break;
		case WAIT_MSG3: r = server_msg3(s, err); break;
		case WAIT_MSG4: r = client_msg4(s, err); break;
		default: r = fail(s, err, "internal error: bad step");
		}
		s->inlen = 0;
		if (r < 0)
			break;
	}
	*used = took;
	return r;
}

int nn_shs_eof(struct nn_shs *s, char *err)
{
	char msg[NN_ERRLEN];
	const char *what;

	if (s->status == NN_SHS_DONE)
		return 0;
	if (s->status == NN_SHS_FAILED)
		return nn_seterr(err, "%s", s->err);
	switch (s->step) {
	case WAIT_MSG1:
		what = "the client closed the connection before its hello (msg1)";
		break;
	case WAIT_MSG2:
		what = "the server closed the connection instead of answering our hello (msg1): "
		       "it is probably in another swarm (a different network key)";
		break;
	case WAIT_MSG3:
		what = "the client closed the connection after our hello (msg2) "
		       "instead of authenticating (msg3)";
		break;
	default:
		what = "the server closed the connection after our authentication (msg3): "
		       "its identity is not the key we expected, or it refused us";
	}
	if (s->inlen)
		snprintf(msg, sizeof msg, "%s (%zu bytes of a %zu-byte message arrived)",
			 what, s->inlen, msg_len(s->step));
	else
		snprintf(msg, sizeof msg, "%s", what);
	return fail(s, err, msg);
}

int nn_shs_result(const struct nn_shs *s, struct nn_shs_keys *k, char *err)
{
	if (s->status != NN_SHS_DONE)
		return nn_seterr(err, "handshake not finished");
	*k = s->keys;
	return 0;
}

void nn_shs_clear(struct nn_shs *s)
{
	sodium_memzero(s, sizeof *s);
}

void nn_shs_keys_clear(struct nn_shs_keys *k)
{
	sodium_memzero(k, sizeof *k);
}

void nn_shs_netkey_generate(uint8_t key[32])
{
	randombytes_buf(key, 32);
}

int nn_shs_netkey_parse(const char *text, size_t len, uint8_t key[32], char *err)
{
	size_t i = 0, j, got;
	const char *end;

	while (i < len && strchr(" \t\r\n", text[i]))
		i++;
	j = len;
	while (j > i && strchr(" \t\r\n", text[j - 1]))
		j--;
	if (j - i != 64 ||
	    sodium_hex2bin(key, 32, text + i, 64, NULL, &got, &end) != 0 || got != 32)
		return nn_seterr(err, "a swarm key is 64 hexadecimal characters (32 bytes)");
	return 0;
}

int nn_shs_netkey_load(const char *path, uint8_t key[32], char *err)
{
	char ferr[NN_ERRLEN];
	size_t len;
	char *text = nn_read_file(path, 4096, &len, ferr);
	int r;

	if (!text)
		return nn_seterr(err, "%s", ferr);
	r = nn_shs_netkey_parse(text, len, key, ferr);
	sodium_memzero(text, len);
	free(text);
	if (r < 0)
		return nn_seterr(err, "'%s': %s", path, ferr);
	return 0;
}

int nn_shs_netkey_save(const char *path, const uint8_t key[32], char *err)
{
	char hex[66];
	int fd, r = 0;

	nn_hex_encode(hex, key, 32);
	hex[64] = '\n';
	hex[65] = '\0';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return nn_seterr(err, "cannot create '%s': %s", path, strerror(errno));
	if (nn_write_all(fd, hex, 65) < 0 || fsync(fd) < 0)
		r = nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
	if (close(fd) < 0 && r == 0)
		r = nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
	if (r < 0)
		unlink(path);
	sodium_memzero(hex, sizeof hex);
	return r;
}

/* -- the secure connection: handshake, box-stream, lines -- */

static void conn_init(struct nn_shs_conn *c, size_t line_max, size_t out_max)
{
	memset(&c->enc, 0, sizeof c->enc);
	memset(&c->dec, 0, sizeof c->dec);
	nn_lines_init(&c->lines, line_max ? line_max : NN_LINE_MAX_DEFAULT);
	nn_buf_init(&c->out, out_max);
	nn_buf_init(&c->pending, out_max);
	memset(c->peer_pk, 0, sizeof c->peer_pk);
	c->state = NN_SHS_CONN_HANDSHAKE;
	c->closing = c->sent_goodbye = c->got_goodbye = 0;
	c->err[0] = '\0';
}

static int conn_fail(struct nn_shs_conn *c, const char *msg, char *err)
{
	if (c->state != NN_SHS_CONN_FAILED) {
		c->state = NN_SHS_CONN_FAILED;
		snprintf(c->err, sizeof c->err, "%s", msg);
		nn_bs_enc_clear(&c->enc);
		nn_bs_dec_clear(&c->dec);
		nn_shs_clear(&c->hs);
		if (c->pending.data)
			sodium_memzero(c->pending.data, c->pending.len);
		nn_buf_reset(&c->pending);
	}
	return nn_seterr(err, "%s", c->err);
}

/* Move the handshake's output to out; when it is done, open the streams. */
static int conn_pump(struct nn_shs_conn *c, char *err)
{
	uint8_t buf[NN_SHS_MSG3_LEN];
	size_t n;
	struct nn_shs_keys k;
	char e[NN_ERRLEN];

	while ((n = nn_shs_output(&c->hs, buf, sizeof buf)) > 0)
		if (nn_buf_add(&c->out, buf, n) < 0)
			return conn_fail(c, "output buffer full during the handshake", err);
	if (nn_shs_status(&c->hs) == NN_SHS_FAILED)
		return conn_fail(c, nn_shs_error(&c->hs), err);
	if (nn_shs_status(&c->hs) != NN_SHS_DONE || c->state != NN_SHS_CONN_HANDSHAKE)
		return 0;
	if (nn_shs_result(&c->hs, &k, e) < 0)
		return conn_fail(c, e, err);
	nn_bs_enc_init(&c->enc, k.enc_key, k.enc_nonce);
	nn_bs_dec_init(&c->dec, k.dec_key, k.dec_nonce);
	memcpy(c->peer_pk, k.peer_pk, 32);
	nn_shs_keys_clear(&k);
	nn_shs_clear(&c->hs);
	c->state = NN_SHS_CONN_OPEN;
	if (c->pending.len) {
		/* the queued lines, each already ending in a newline */
		int r = nn_bs_encode(&c->enc, &c->out, c->pending.data, c->pending.len, NULL, e);
		sodium_memzero(c->pending.data, c->pending.len);
		nn_buf_release(&c->pending);
		if (r < 0)
			return conn_fail(c, e, err);
	}
	if (c->closing && !c->sent_goodbye) {
		if (nn_bs_goodbye(&c->enc, &c->out, e) < 0)
			return conn_fail(c, e, err);
		c->sent_goodbye = 1;
	}
	return 0;
}

void nn_shs_conn_client_init(struct nn_shs_conn *c, const uint8_t netkey[32],
			     const struct nn_key *me, const uint8_t server_pk[32],
			     size_t line_max, size_t out_max)
{
	conn_init(c, line_max, out_max);
	nn_shs_client_init(&c->hs, netkey, me, server_pk);
	conn_pump(c, NULL);	/* msg1 */
}

void nn_shs_conn_server_init(struct nn_shs_conn *c, const uint8_t netkey[32],
			     const struct nn_key *me, size_t line_max, size_t out_max)
{
	conn_init(c, line_max, out_max);
	nn_shs_server_init(&c->hs, netkey, me);
}

int nn_shs_conn_state(const struct nn_shs_conn *c)
{
	return c->state;
}

int nn_shs_conn_recv(struct nn_shs_conn *c, const void *p, size_t n, char *err)
{
	const uint8_t *q = p;
	char e[NN_ERRLEN];

	if (c->state == NN_SHS_CONN_FAILED)
		return nn_seterr(err, "%s", c->err);
	if (c->state == NN_SHS_CONN_HANDSHAKE) {
		size_t used;
		if (nn_shs_feed(&c->hs, q, n, &used, e) < 0)
			return conn_fail(c, e, err);
		if (conn_pump(c, err) < 0)
			return -1;
		q += used;
		n -= used;
	}
	while (n && c->state == NN_SHS_CONN_OPEN && !c->got_goodbye) {
		const uint8_t *pl;
		size_t used, plen;
		int r = nn_bs_decode(&c->dec, q, n, &used, &pl, &plen, e);
		if (r == NN_BS_ERROR)
			return conn_fail(c, e, err);
		if (r == NN_BS_DATA)
			nn_lines_feed(&c->lines, (const char *)pl, plen);
		if (r == NN_BS_GOODBYE)
			c->got_goodbye = 1;
		q += used;
		n -= used;
	}
	return 0;
}

int nn_shs_conn_next(struct nn_shs_conn *c, const char **line, size_t *len)
{
	return nn_lines_next(&c->lines, line, len);
}

int nn_shs_conn_send(struct nn_shs_conn *c, const char *line, size_t len, char *err)
{
	if (c->state == NN_SHS_CONN_FAILED)
		return nn_seterr(err, "%s", c->err);
	if (c->closing)
		return nn_seterr(err, "the connection is closing");
	if (c->state == NN_SHS_CONN_HANDSHAKE) {
		size_t before = c->pending.len;
		if (nn_buf_add(&c->pending, line, len) < 0 || nn_buf_addc(&c->pending, '\n') < 0) {
			c->pending.len = before;
			return nn_seterr(err, "send queue full (%zu bytes waiting for the handshake)",
					 before);
		}
		return 0;
	}
	return nn_bs_encode(&c->enc, &c->out, line, len, "\n", err);
}

int nn_shs_conn_close(struct nn_shs_conn *c, char *err)
{
	if (c->state == NN_SHS_CONN_FAILED)
		return nn_seterr(err, "%s", c->err);
	c->closing = 1;
	if (c->state == NN_SHS_CONN_OPEN && !c->sent_goodbye) {
		if (nn_bs_goodbye(&c->enc, &c->out, err) < 0)
			return -1;
		c->sent_goodbye = 1;
	}
	return 0;
}

int nn_shs_conn_peer_closed(const struct nn_shs_conn *c)
{
	return c->got_goodbye;
}

int nn_shs_conn_eof(struct nn_shs_conn *c, char *err)
{
	char e[NN_ERRLEN];

	if (c->state == NN_SHS_CONN_FAILED)
		return nn_seterr(err, "%s", c->err);
	if (c->state == NN_SHS_CONN_HANDSHAKE) {
		nn_shs_eof(&c->hs, e);
		return conn_fail(c, e, err);
	}
	if (c->got_goodbye)
		return 0;
	nn_bs_dec_eof(&c->dec, e);
	return conn_fail(c, e, err);
}

void nn_shs_conn_release(struct nn_shs_conn *c)
{
	nn_shs_clear(&c->hs);
	nn_bs_enc_clear(&c->enc);
	nn_bs_dec_clear(&c->dec);
	nn_lines_release(&c->lines);
	nn_buf_release(&c->out);
	if (c->pending.data)
		sodium_memzero(c->pending.data, c->pending.len);
	nn_buf_release(&c->pending);
}
