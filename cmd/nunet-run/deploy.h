/*
 * The deployment commands of nunet-run (cmd/nunet-run/deploy.c), called
 * from main() in cmd/nunet-run.c.
 */
#ifndef NN_RUN_DEPLOY_H
#define NN_RUN_DEPLOY_H

#include <jv.h>
#include "env.h"

struct nn_client;
/* Connect to the local node as the caller (dies on failure); the client's
 * trace is NUNET_TRACE when set, else new (cmd/nunet-run.c). */
void nn_run_node_open(struct nn_client *c);

/* nunet-run deploy [--wait] [--hops N] FILE; -1 asks for the usage text. */
int nn_run_deploy(int argc, char **argv);
/* status|wait|cancel|logs|results on a deployment id: the exit status, or
 * -1 when argv does not name a deployment of the local node. */
int nn_run_on_deployment(const char *cmd, int argc, char **argv);
/* One line per deployment ("kind":"deployment"), live ones unless all. */
void nn_run_ls_deployments(int all);
/* Run the /alloc/start body (consumed) as a one-allocation deployment
 * anywhere in the swarm; streams its output, returns its exit status. */
int nn_run_swarm(jv body, int detach);
/* One request to node `to` (NULL: the local one), waiting up to timeout_ms:
 * the reply body, or invalid with *code and the node's message (or the
 * client's error) in err. */
jv nn_run_call(struct nn_client *c, const char *to, const char *be, jv body, int timeout_ms,
	       enum nn_code *code, char *err);

#endif
