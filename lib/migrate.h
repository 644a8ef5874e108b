/*
 * migrate — moving an allocation's state directory to another node.
 *
 * An allocation that declares a state directory ("state_dir", a path in
 * its directory) can be checkpointed: its state is committed as a
 * snapshot (storage.h nn_snapshot_*) on ref refs/nunet/ID of the node's
 * snapshot repository $NUNET_HOME/snapshots.git, shared by all of the
 * node's allocations so that any object the node ever held is one it
 * "has".  Commit and pack are made by the program that asks
 * (`nunet-run checkpoint` and `nunet-run migrate`, on the source's
 * machine), never in the node's loop.
 *
 * Migration, driven by `nunet-run migrate ID --to DID` through the local
 * node's routing (every request carries the caller's /alloc token for the
 * target):
 *
 *   1. /alloc/migrate/haves {} → {"haves":[commit…]}: the target's refs
 *   2. the source commits the state and packs what the haves lack
 *   3. /alloc/migrate/receive {"commit","size"} → {"xfer"}: the target
 *      opens $NUNET_HOME/snapshots/incoming/XFER.pack
 *   4. /alloc/migrate/chunk {"xfer","offset","data"} → {"have"}: base64
 *      pieces of at most NN_MIGRATE_CHUNK bytes, each acknowledged before
 *      the next (pushed, so that all authority is the one token on the
 *      target; the envelope size cap bounds a piece)
 *   5. /alloc/migrate/start {"xfer","id","spec","restart","healthcheck",
 *      "logs","state_dir","inputs","outputs"} → /alloc/start's reply: an
 *      allocation whose shim, before anything else, unpacks the pack into
 *      the snapshot repository and restores the commit into its state
 *      directory (stage.json "restore"), then stages inputs and starts
 *   6. the source watches the target's /alloc/status until "running",
 *      and only then cancels its own copy.
 *
 * A transfer not started within NN_MIGRATE_XFER_MS is dropped.  Only the
 * did that opened a transfer is heard about it (pieces, start).
 *
 * The same transfers carry a deployment's snapshots to and from its
 * orchestrator (orch.h, /public/deploy/snapshot/…): nn_migrate_open,
 * _piece and _claim receive a pack for another module; nn_migrate_offer
 * and _read hand one out, by offset, to the did it was made for.
 */
#ifndef NN_MIGRATE_H
#define NN_MIGRATE_H

#include <stdint.h>
#include <jv.h>
#include "env.h"
#include "util.h"

struct nn_node;

#define NN_MIGRATE_CHUNK (512 * 1024)
#define NN_MIGRATE_XFER_MS (10 * 60 * 1000)
#define NN_MIGRATE_EVERY_MIN_MS 1000	/* the shortest periodic checkpoint */
#define NN_SNAPSHOT_REPO "snapshots.git"

/* Register /alloc/migrate/{haves,receive,chunk,start} and a timer. */
int nn_migrate_attach(struct nn_node *n, char *err);

/* home/snapshots.git (caller frees) and the ref of allocation id
 * ("refs/nunet/ID", into ref of NN_ERRLEN bytes). */
char *nn_migrate_repo(const char *home);
void nn_migrate_ref(const char *id, char *ref);

/* For /alloc/start: take "state_dir" (a plain relative path) and
 * "restore" ({"xfer","commit"}, from step 5) from body (borrowed) into
 * *opts: state_dir, and restore as {"pack","commit","repo"} with absolute
 * paths under home.  -1 + err on a bad value or a transfer that is not
 * complete. */
int nn_migrate_take(jv body, jv *opts, const char *home, char *err);
/* "checkpoint" (a duration, at least NN_MIGRATE_EVERY_MIN_MS; needs the
 * state_dir) becomes opts "checkpoint_ms" and "home": the shim runs
 * `nunet-run checkpoint ID` that often while the job runs.
 * "restore" may also be {"fetch":DID,"deployment","name","commit"}: the last
 * snapshot of allocation name of a deployment, kept by its orchestrator
 * DID: restore becomes {"fetch","deployment","name","commit","repo",
 * "home"}, and the shim fetches what it lacks before the job starts. */

/* Open a transfer to this node of a pack of body.commit, body.size bytes
 * (body borrowed), for owner (the did of the request): {"xfer"} into
 * *reply.  NN_OK, or a code and err. */
enum nn_code nn_migrate_open(struct nn_node *n, const char *owner, jv body, jv *reply, char *err);

/* One piece {"xfer","offset","data":BASE64} of request req (borrowed),
 * from the transfer's owner only: {"have"} into *reply. */
enum nn_code nn_migrate_piece(struct nn_node *n, jv req, jv *reply, char *err);

/* A complete transfer xid of commit from owner: the path of its pack
 * (the caller frees the string and unlinks the file), its size in *size;
 * the transfer is forgotten.  NULL + err otherwise. */
char *nn_migrate_claim(struct nn_node *n, const char *owner, const char *xid, const char *commit,
		       uint64_t *size, char *err);

/* Offer the pack at path (bytes long, of commit; renamed into the
 * transfer's place, or removed) to owner, e.g. one a child process made:
 * {"xfer","size"} into *reply.  The pack is removed once its last byte
 * was read, or after NN_MIGRATE_XFER_MS. */
enum nn_code nn_migrate_offer(struct nn_node *n, const char *owner, const char *commit, const char *path,
			      uint64_t bytes, jv *reply, char *err);

/* {"xfer","offset"} of request req (borrowed), from the owner of a served
 * transfer: {"data":BASE64,"offset":NEXT,"size"} (at most NN_MIGRATE_CHUNK
 * bytes) into *reply. */
enum nn_code nn_migrate_read(struct nn_node *n, jv req, jv *reply, char *err);

#endif
