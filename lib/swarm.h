/*
 * swarm — the node's transport to other nodes and its view of the swarm.
 * Every peer connection is TCP, then the Secret Handshake under the swarm
 * key, then box-stream (struct nn_shs_conn), driven by the node's loop.
 * Over it travel two kinds of lines: signed envelopes, which the swarm
 * hands to nn_node_deliver (origin PEER) or routes on (replies go back the
 * way their request came, by its id), and membership lines
 * ({"swim":…}), which carry SWIM-style probing (ping, ping-req, ack),
 * suspicion, death and piggybacked updates, plus broadcasts by gossip
 * ({"swim":"bc","hops":N,"env":…}, deduplicated by from+id).
 *
 * Membership lines need no signature of their own: the handshake proved
 * who is at the other end of the connection.  Envelopes keep theirs end to
 * end: relays forward them unchanged, receivers verify.
 *
 * What a node knows of its peers is kept as edges from itself in node.db
 * (table swarm_edges, module "swarm"), which `nunet-node peers` reads.
 */
#ifndef NN_SWARM_H
#define NN_SWARM_H

#include <stdint.h>
#include "node.h"

struct nn_swarm_opts {
	const char *listen;		/* "HOST:PORT" to accept peers on, or NULL */
	const char *const *bootstrap;	/* "DID@HOST:PORT" each */
	size_t nbootstrap;
	int64_t probe_ms;		/* probe period (0: 500) */
	int64_t suspect_ms;		/* suspect → dead (0: 3000) */
	int64_t handshake_ms;		/* handshake deadline (0: 5000) */
	int hops;			/* broadcast hop limit (0: 8) */
};

/*
 * Attach the swarm to a node: load the swarm key ($NUNET_HOME/swarm.key, or
 * the public one), migrate the tables, listen (the bound address goes into
 * the ready line as "listen"), dial the bootstrap peers, install the router
 * for envelopes addressed to other nodes and a closer.  o is copied.
 */
int nn_swarm_attach(struct nn_node *n, const struct nn_swarm_opts *o, char *err);

/* The swarm key a home uses: swarm.key there, else the public key.
 * *private says which.  -1 + err when swarm.key exists but is unreadable. */
int nn_swarm_key(const char *home, uint8_t key[32], int *private_key, char *err);

/* Parse "HOST:PORT" ("[v6]:PORT" too) into host (cap bytes) and port. */
int nn_swarm_parse_addr(const char *s, char *host, size_t cap, int *port, char *err);

/* The module's schema steps (module "swarm"). */
extern const char *const nn_swarm_schema[];

#endif
