/*
 * onboard — the part of the machine a node offers to the network, and what
 * of it is in use.  Onboarding stores the machine's capability document
 * (nunet-bench's output), the reservation taken from it (a resource vector,
 * lib/cap.h) and the offered document: the machine's, cut down to the
 * reservation, with the operator's price and location.  Allocations commit
 * resources against the reservation and release them when they end; the
 * committed total is the sum of the commitments, one row per allocation id,
 * so a restarted node knows what is in use without asking anybody.
 *
 * Everything lives in the node's store (module "onboard", tables onboard
 * and onboard_commit); every change is one IMMEDIATE transaction, so the
 * checks (a reservation within the machine and above what is committed, a
 * commitment within what is free) hold against concurrent writers.  The
 * module keeps no state in memory: the store is the truth.
 *
 * In the daemon, nn_onboard_attach() registers the behaviors /node/onboard,
 * /node/offboard, /node/resources, /node/capability and /node/match.
 */
#ifndef NN_ONBOARD_H
#define NN_ONBOARD_H

#include <jv.h>
#include "cap.h"
#include "db.h"
#include "util.h"

struct nn_node;

/* Create or migrate the module's tables in db.  -1 + err. */
int nn_onboard_migrate(struct nn_db *db, char *err);

/* The daemon module: migrate, register the behaviors.  -1 + err. */
int nn_onboard_attach(struct nn_node *n, char *err);

/* Failures of the calls below: a malformed request; a well-formed one that
 * is refused (more than the machine has, less than committed, more than is
 * free, nothing onboarded); the store failed.  Transactions are the
 * module's own: call these outside any transaction on db. */
enum { NN_ONBOARD_BAD = -1, NN_ONBOARD_REFUSED = -2, NN_ONBOARD_FAIL = -3 };

/*
 * Onboard, or change the reservation of an onboarded node (no offboard
 * needed).  req (borrowed) is the body of /node/onboard:
 *   {"machine": CAPABILITY-DOCUMENT, "cpu": MILLICORES, "ram": SIZE,
 *    "disk": SIZE, "gpus": [INDEX, …], "price": {…}, "location": {…}}
 * gpus are indexes into the machine's gpus (default none).  location
 * replaces the machine document's (absent: the document's, else the
 * previous onboarding's); price's rates are set over the document's price,
 * else the previous onboarding's, so one rate changes alone.  The
 * machine's own total bounds the reservation.  did (may be NULL) is written
 * into the offered document.  Returns 0 and sets *state (if not NULL) to
 * what nn_onboard_state() gives, or a failure with err.
 */
int nn_onboard_set(struct nn_db *db, jv req, const char *did, jv *state, char *err);

/* Offboard: stop offering anything.  Refused (NN_ONBOARD_REFUSED) while
 * resources are committed, unless force; commitments stay and are released
 * as their allocations end.  Offboarding a node that is not onboarded
 * succeeds.  Returns 0 or a failure with err. */
int nn_onboard_clear(struct nn_db *db, int force, char *err);

/*
 * Commit resources r to allocation id (a string of at most 128 bytes).
 * Refused when the node is not onboarded, when id already holds a
 * commitment, or when r does not fit in what is free ("ram: need …, have
 * …").  Returns 0, or a failure with err.  The allocation module calls this
 * before it starts an allocation: nn_onboard_commit(nn_node_db(n), …).
 */
int nn_onboard_commit(struct nn_db *db, const char *id, const struct nn_res *r, char *err);

/* Release allocation id's commitment: 1 when it held one, 0 when it held
 * none (releasing twice is harmless), -1 + err on a store failure. */
int nn_onboard_release(struct nn_db *db, const char *id, char *err);

/* The commitments held (a new array, oldest first):
 * [{"id":ID,"resources":V,"ts":MS},…] with V the flat vector; for an
 * allocation module that reconciles after a restart.  Invalid + err. */
jv nn_onboard_commitments(struct nn_db *db, char *err);

/* What is onboarded and in use (zero vectors when nothing is onboarded);
 * free = onboarded - committed, zero when committed exceeds it (after a
 * forced offboard).  -1 + err. */
struct nn_onboard_res {
	int onboarded;
	struct nn_res total, reserved, committed, free;
	int64_t allocations;	/* commitments held */
	int64_t updated_ms;	/* last onboarding, 0 when none */
};
int nn_onboard_get(struct nn_db *db, struct nn_onboard_res *out, char *err);

/*
 * The reply of /node/resources (a new object):
 *   {"state":"onboarded"|"offboarded","total":V,"onboarded":V,
 *    "committed":V,"free":V,"allocations":N,"updated":MS}
 * with V in the flat form of nn_res_to_json(); /node/resources adds
 * "commitments" (nn_onboard_commitments()) when its body asks
 * {"commitments":true}.  Invalid + err on failure.
 */
jv nn_onboard_state(struct nn_db *db, char *err);

/*
 * The offered capability document (a new object): with free set, cut down
 * to what is free now, which is what the node matches a job against.
 * Sets *code to NN_ONBOARD_REFUSED when nothing is onboarded, else
 * NN_ONBOARD_FAIL on a store failure; returns invalid + err.
 */
jv nn_onboard_capability(struct nn_db *db, int free, int *code, char *err);

/*
 * /node/match's answer for requirements req (consumed), with optional extra
 * where and rank (jq, may be NULL), against the free capability:
 *   {"match":true,"score":S,"offer":DOC} or
 *   {"match":false,"rejected":["ram: need …, have …", …],"offer":DOC}
 * A node with nothing onboarded answers {"match":false,"rejected":
 * ["onboard: this node offers nothing (not onboarded)"]}.  Invalid + err
 * with *code NN_ONBOARD_BAD for requirements or jq that do not compile,
 * NN_ONBOARD_FAIL when the store fails.
 */
jv nn_onboard_match(struct nn_db *db, jv req, const char *where, const char *rank,
		    int *code, char *err);

#endif
