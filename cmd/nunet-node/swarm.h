/*
 * The swarm's part of nunet-node (cmd/nunet-node/swarm.c): run options
 * --listen and --bootstrap, the swarm key at init, and `nunet-node peers`.
 */
#ifndef NUNET_NODE_SWARM_H
#define NUNET_NODE_SWARM_H

struct nn_node;

/* run: remember --listen HOST:PORT / --bootstrap DID@HOST:PORT[,…]. */
void swarm_opt_listen(const char *arg);
void swarm_opt_bootstrap(const char *arg);
/* The attach[] entry: nn_swarm_attach with the options given to run. */
int swarm_attach(struct nn_node *n, char *err);
/* init: check --swarm-key FILE before anything is created (dies on error)… */
void swarm_init_check(const char *keyfile);
/* …and install it (or a new one with --new-swarm, printed) into home. */
void swarm_init_install(const char *home, const char *keyfile, int new_swarm);
/* `nunet-node peers`. */
int cmd_peers(int argc, char **argv, const char *home_opt, void (*usage)(int));
/* `nunet-node cap grant|delegate|list|revoke` (cmd/nunet-node/cap.c). */
int cmd_cap(int argc, char **argv, const char *home_opt, void (*usage)(int));

#endif
