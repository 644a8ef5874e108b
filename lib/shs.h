/*
 * shs — the Secret Handshake, version 1, exactly as the Scuttlebutt protocol
 * guide specifies it, as a state machine that does no I/O: the caller moves
 * bytes between the machine and its socket, so a non-blocking event loop
 * (or a test feeding memory) can drive it.
 *
 * The client knows the server's long-term ed25519 key before it connects;
 * the server learns the client's during the handshake.  Both must hold the
 * same 32-byte network key: that is the swarm key, and a peer holding
 * another one cannot get past the first message.  The four messages are
 * msg1 (client hello, 64 bytes), msg2 (server hello, 64), msg3 (client
 * authenticate, 112) and msg4 (server accept, 80).  Afterwards each side
 * holds the box-stream keys and starting nonces of both directions (see
 * boxstream.h) and the peer's long-term public key.
 *
 * Driving it:
 *
 *	struct nn_shs s;
 *	nn_shs_client_init(&s, netkey, &me, server_pk);	// or _server_init
 *	for (;;) {
 *		n = nn_shs_output(&s, buf, sizeof buf);	// bytes to send now
 *		... queue buf[0..n) for the socket ...
 *		if (nn_shs_status(&s) != NN_SHS_RUNNING) break;
 *		... when bytes arrive: ...
 *		if (nn_shs_feed(&s, p, n, &used, err) < 0) fail;
 *		... bytes past `used` are the peer's first box-stream bytes ...
 *		... on end of file: nn_shs_eof(&s, err) explains the failure ...
 *	}
 *	nn_shs_result(&s, &keys);	// when status is NN_SHS_DONE
 *	nn_shs_clear(&s);
 *
 * The machine keeps no clock: the caller bounds the handshake's time (a
 * peer that stops halfway must not hold a connection open), and closes the
 * connection at once when nn_shs_feed fails, writing nothing more.
 *
 * Network keys.  The public swarm uses a fixed, documented key: the SHA-256
 * of the ASCII string "nunet public swarm v1" (NN_SHS_PUBLIC_NETKEY below;
 * the test suite recomputes it).  A private swarm's key is 32 random bytes
 * (nn_shs_netkey_generate) kept in a file as 64 lowercase hexadecimal
 * characters and a newline, mode 0600 (nn_shs_netkey_save); every member
 * of the swarm gets a copy of that file.  nn_shs_netkey_load reads such a
 * file, accepting upper case and surrounding white space.
 */
#ifndef NN_SHS_H
#define NN_SHS_H

#include <stddef.h>
#include <stdint.h>
#include "boxstream.h"
#include "key.h"
#include "lines.h"
#include "util.h"

#define NN_SHS_KEYBYTES 32
#define NN_SHS_NONCEBYTES 24
#define NN_SHS_MSG1_LEN 64
#define NN_SHS_MSG2_LEN 64
#define NN_SHS_MSG3_LEN 112
#define NN_SHS_MSG4_LEN 80

/* sha256("nunet public swarm v1") */
#define NN_SHS_PUBLIC_NETKEY_HEX \
	"052f92b3d49419498c2e962f45cf3878756b74e3899ee7ec4a315d84a1c13860"
#define NN_SHS_PUBLIC_NETKEY_INIT { \
	0x05, 0x2f, 0x92, 0xb3, 0xd4, 0x94, 0x19, 0x49, \
	0x8c, 0x2e, 0x96, 0x2f, 0x45, 0xcf, 0x38, 0x78, \
	0x75, 0x6b, 0x74, 0xe3, 0x89, 0x9e, 0xe7, 0xec, \
	0x4a, 0x31, 0x5d, 0x84, 0xa1, 0xc1, 0x38, 0x60 }
extern const uint8_t nn_shs_public_netkey[NN_SHS_KEYBYTES];

enum { NN_SHS_CLIENT = 1, NN_SHS_SERVER = 2 };
enum { NN_SHS_RUNNING = 0, NN_SHS_DONE = 1, NN_SHS_FAILED = 2 };

/* What a finished handshake yields.  enc_* protects what this side sends,
 * dec_* what it receives; peer_pk is the other side's long-term ed25519
 * public key (for the server: the client it now knows). */
struct nn_shs_keys {
	uint8_t enc_key[NN_SHS_KEYBYTES];
	uint8_t enc_nonce[NN_SHS_NONCEBYTES];
	uint8_t dec_key[NN_SHS_KEYBYTES];
	uint8_t dec_nonce[NN_SHS_NONCEBYTES];
	uint8_t peer_pk[32];
};

/*
 * Server only, optional: called once the client has proven its identity and
 * before the server reveals its own (msg4).  Return 0 to accept, -1 to
 * refuse (the handshake then fails with err, which the callback may fill).
 */
typedef int nn_shs_authorize_fn(const uint8_t client_pk[32], void *arg, char *err);

/* All fields are private; secrets are wiped by nn_shs_clear(). */
struct nn_shs {
	int role, step, status;
	uint8_t netkey[32];
	uint8_t pk[32], sk[64];		/* our long-term key */
	uint8_t peer_pk[32];		/* theirs (client: given; server: learned) */
	uint8_t eph_pk[32], eph_sk[32];
	uint8_t peer_eph_pk[32];
	uint8_t mac[32], peer_mac[32];	/* the hmacs of msg1 and msg2 */
	uint8_t ab[32], aB[32], Ab[32];
	uint8_t hello[96];		/* client's signature || client pk */
	uint8_t in[NN_SHS_MSG3_LEN];
	size_t inlen;
	uint8_t out[NN_SHS_MSG3_LEN];
	size_t outlen;
	nn_shs_authorize_fn *authorize;
	void *authorize_arg;
	struct nn_shs_keys keys;	/* valid once done */
	char err[NN_ERRLEN];
};

/* Start a handshake.  me is copied; netkey is the swarm key. */
void nn_shs_client_init(struct nn_shs *s, const uint8_t netkey[32],
			const struct nn_key *me, const uint8_t server_pk[32]);
void nn_shs_server_init(struct nn_shs *s, const uint8_t netkey[32],
			const struct nn_key *me);
/* Replace the random ephemeral key by one derived from eph_sk (a curve25519
 * secret).  Only for known-answer tests; call right after _init. */
void nn_shs_set_ephemeral(struct nn_shs *s, const uint8_t eph_sk[32]);
/* Server: install the authorization callback (see above). */
void nn_shs_set_authorize(struct nn_shs *s, nn_shs_authorize_fn *fn, void *arg);

/* NN_SHS_RUNNING, NN_SHS_DONE (verified, and all output taken) or
 * NN_SHS_FAILED (nn_shs_error() says why). */
int nn_shs_status(const struct nn_shs *s);
const char *nn_shs_error(const struct nn_shs *s);

/* Bytes the machine still expects before it can move on (0 when it waits
 * for nothing: it has output to hand over, or it is finished). */
size_t nn_shs_want(const struct nn_shs *s);

/* Take up to cap pending output bytes into buf; returns how many.  The
 * total is never more than 112 bytes at a time. */
size_t nn_shs_output(struct nn_shs *s, uint8_t *buf, size_t cap);

/*
 * Consume received bytes.  Only the handshake's own bytes are taken: *used
 * says how many, and anything after them is the start of the peer's
 * box-stream.  Returns 0 (possibly having finished a message, so call
 * nn_shs_output again) or -1 with err when the peer misbehaved: a wrong
 * network key, a wrong server key, a forged or altered message.  After a
 * failure the machine stays failed.
 */
int nn_shs_feed(struct nn_shs *s, const void *p, size_t n, size_t *used, char *err);

/* The peer closed the connection: fail (unless already done) with a
 * message that says at which step, and what that usually means. */
int nn_shs_eof(struct nn_shs *s, char *err);

/* Copy the result; -1 with err unless the status is NN_SHS_DONE. */
int nn_shs_result(const struct nn_shs *s, struct nn_shs_keys *k, char *err);

/* Wipe every secret (keep nothing usable). */
void nn_shs_clear(struct nn_shs *s);
void nn_shs_keys_clear(struct nn_shs_keys *k);

/* Swarm (network) keys. */
void nn_shs_netkey_generate(uint8_t key[32]);
/* Parse 64 hex characters, white space around them allowed. */
int nn_shs_netkey_parse(const char *text, size_t len, uint8_t key[32], char *err);
int nn_shs_netkey_load(const char *path, uint8_t key[32], char *err);
/* Write "HEX\n" with mode 0600; refuses to overwrite an existing file. */
int nn_shs_netkey_save(const char *path, const uint8_t key[32], char *err);

/*
 * A secure connection: the handshake, then box-stream in both directions,
 * cut into lines: what the node runs on each peer TCP connection.  Still no
 * I/O: the caller hands every received byte to nn_shs_conn_recv, takes
 * complete lines with nn_shs_conn_next, queues lines with nn_shs_conn_send,
 * and writes conn->out to the socket (then nn_buf_consume(&conn->out, n)).
 * Lines sent before the handshake finishes wait in plaintext and go out
 * encrypted as soon as the keys exist.
 */
enum { NN_SHS_CONN_HANDSHAKE = 0, NN_SHS_CONN_OPEN = 1, NN_SHS_CONN_FAILED = 2 };

struct nn_shs_conn {
	struct nn_shs hs;
	struct nn_bs_enc enc;
	struct nn_bs_dec dec;
	struct nn_lines lines;		/* received plaintext, cut into lines */
	struct nn_buf out;		/* ciphertext to write, capped */
	struct nn_buf pending;		/* lines queued before the keys exist */
	uint8_t peer_pk[32];		/* valid once open */
	int state;
	int closing;			/* nn_shs_conn_close was called */
	int sent_goodbye, got_goodbye;
	char err[NN_ERRLEN];
};

/* line_max caps received lines (0: NN_LINE_MAX_DEFAULT); out_max caps the
 * unsent ciphertext (0: unlimited). */
void nn_shs_conn_client_init(struct nn_shs_conn *c, const uint8_t netkey[32],
			     const struct nn_key *me, const uint8_t server_pk[32],
			     size_t line_max, size_t out_max);
void nn_shs_conn_server_init(struct nn_shs_conn *c, const uint8_t netkey[32],
			     const struct nn_key *me, size_t line_max, size_t out_max);
/* NN_SHS_CONN_HANDSHAKE, _OPEN or _FAILED (c->err says why). */
int nn_shs_conn_state(const struct nn_shs_conn *c);
/* Take all of p[0..n).  -1 with err (and the connection failed) when the
 * handshake fails or a box-stream message does not authenticate.  Bytes
 * after the peer's goodbye are ignored. */
int nn_shs_conn_recv(struct nn_shs_conn *c, const void *p, size_t n, char *err);
/* The next received line, as nn_lines_next: NN_LINES_LINE (*line valid
 * until the next call), NN_LINES_NONE, or NN_LINES_OVERSIZE once for each
 * line over line_max (its bytes are dropped). */
int nn_shs_conn_next(struct nn_shs_conn *c, const char **line, size_t *len);
/* Queue one line (without its newline; one is added).  -1 with err when the
 * connection failed or is closing, or out (or the pending queue) is full;
 * a full buffer does not fail the connection: nothing was queued, and the
 * caller may retry once the socket has taken some of out. */
int nn_shs_conn_send(struct nn_shs_conn *c, const char *line, size_t len, char *err);
/* Queue the goodbye (after the pending lines; at once if open). */
int nn_shs_conn_close(struct nn_shs_conn *c, char *err);
/* The peer's goodbye arrived: it will send nothing more. */
int nn_shs_conn_peer_closed(const struct nn_shs_conn *c);
/* The socket reached end of file: 0 if the peer said goodbye first, else
 * -1 with err saying how the stream or the handshake was cut. */
int nn_shs_conn_eof(struct nn_shs_conn *c, char *err);
/* Free the buffers and wipe every key. */
void nn_shs_conn_release(struct nn_shs_conn *c);

#endif
