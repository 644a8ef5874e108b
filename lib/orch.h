/*
 * orch — deployments across the swarm (DESIGN.md section 6), the node
 * module behind `nunet-run deploy`.  One node plays two parts:
 *
 * Provider: answers bid requests for the node groups of an ensemble with
 * the matcher's verdict against its *free* resources, reserves resources
 * under a lease that expires by itself, provisions a group (starts its
 * allocations through /alloc/start, in depends_on order, each waiting for
 * those of the group it depends on: alloc.h's "after") turning the lease
 * into the allocations' own commitments, releases, serves allocation logs
 * by offset, and pushes every state change of the allocations it runs to
 * the orchestrator that asked for them.
 *
 * Orchestrator: /deploy/start takes a normalized ensemble from the local
 * user, asks for bids (gossip broadcast, a bounded traversal of peer edges,
 * or direct to pinned peers), chooses the best-scoring assignment of node
 * groups to distinct providers that satisfies every constraint (edges'
 * round-trip times from the bids, redundancy, pins), commits, provisions in
 * depends_on order, reverts and retries on any failure until the deadline,
 * and follows the allocations until the deployment is done: pushed states
 * and heartbeats; a provider lost (missed heartbeats or membership) has
 * only its node groups placed again (a repair) while the others run on;
 * leases of groups waiting for their dependencies are renewed.
 *
 * Behaviors (bodies are objects):
 *
 *   /broadcast/public/deploy/bid  {"deployment","groups":{G:REQ},"where","rank"}
 *        → {"did","groups":{G:{"match","score"|"rejected"}},"capability",
 *           "peers":[{"did","rtt_ms"}],"expires"}        anyone in the swarm
 *   /deploy/commit     {"deployment","group","resources":VEC,"lease_ms","contract"}
 *        → {"lease","expires"}
 *   /deploy/provision  {"lease","allocations":[{"name","start":BODY,
 *        "after":{NAME:"running"|"exited"}}]}
 *        → {"lease","allocations":{NAME:ID},"waiting":[NAME]}: an
 *        allocation with "after" waits on the provider (alloc.h) for
 *        those of its group it depends on
 *   /deploy/renew      {"lease","lease_ms"} → {"lease","expires"}  (still reserved)
 *   /deploy/release    {"lease"} → {"lease","released"}
 *   /deploy/lease      {"lease"} → the lease and its allocations' states
 *   /deploy/logs       {"lease","name","stream","offset","max"}
 *        → {"data":BASE64,"offset","size","final"}
 *   /public/deploy/update  {"deployment","name","slot","alloc","state",…}
 *        provider → orchestrator; only the placement's provider is heard
 *   /public/deploy/heartbeat  {"deployment","lease","allocations":{NAME:STATE}}
 *        provider → orchestrator every heartbeat_ms while any allocation of
 *        the lease has not ended; three missed: the provider is lost
 *   /public/deploy/snapshot/{haves,receive,chunk,commit} (commit: pending
 *        while a child process unpacks, off the loop; asked again)
 *        provider → orchestrator: a checkpoint of an allocation with a
 *        state_dir, only what the orchestrator lacks (migrate.h transfers);
 *        kept per deployment and name (orch_snapshot, snapshots.git)
 *   /public/deploy/snapshot/{pack,read}
 *        the provider placing it again fetches what it lacks of the kept
 *        snapshot (the /alloc/start body's "restore":{"fetch",…})
 *        all six: only from the provider of a placement of that allocation
 *   /public/deploy/move  {"deployment","name","lease","to"}
 *        → {"lease","group","slot","heartbeat_ms","trace"}: its provider
 *        migrates an allocation alone in its group; the target, once the
 *        copy runs, takes the granted lease (/alloc/migrate/adopt
 *        {"id","lease","requester","deployment","group","name","slot",
 *        "heartbeat_ms"}, an /alloc token), and its first heartbeat or
 *        state under it moves the placement; the source's lease is released
 *   /deploy/start   {"ensemble":ENS,"hops":N,"parent":ALLOC} → {"id","trace"}
 *   /deploy/list    {} → {"deployments":[…]}
 *   /deploy/status  {"id"} → the deployment, its placements and allocations
 *   /deploy/cancel  {"id"} → {"id","state"}
 *
 * Commit, provision, release, lease and logs need a capability token for
 * /deploy rooted in the provider's owner (or an owner's signature); the
 * orchestrator carries the tokens in $NUNET_HOME/tokens/ *.json whose root
 * issuer is the provider.  /deploy/start, list, status and cancel serve the
 * node's own control socket only.
 *
 * Tables (module "orch"): orch_deploy, orch_slot, orch_alloc,
 * orch_release, orch_snapshot (the orchestrator's), orch_lease,
 * orch_lease_alloc (the provider's).
 */
#ifndef NN_ORCH_H
#define NN_ORCH_H

#include <jv.h>

struct nn_node;

/* Register the behaviors, migrate the tables, resume what node.db holds
 * (leases expire or stay, deployments continue), arm the timer. */
int nn_orch_attach(struct nn_node *n, char *err);

/*
 * Selection, pure: slots (array of {"group","candidates":[{"did","score",
 * "price"}]}) best first per slot), edges (array of {"from","to",
 * "max_rtt_ms"}), rtt (object DID → object DID → ms, both directions
 * looked up) and a bound on the search nodes.  Returns {"assignment":
 * [DID per slot],"score":S} for the highest total score with distinct
 * providers satisfying every edge (ties: lower total price), or
 * {"assignment":null,"why":TEXT}.  Consumes nothing.
 */
jv nn_orch_select(jv slots, jv edges, jv rtt, long max_nodes);

#endif
