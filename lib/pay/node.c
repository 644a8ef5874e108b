/*
 * pay/node — the economy inside the daemon: nn_pay_attach() opens the
 * node's ledger ($NUNET_HOME/ledger.db, with the node's key) and registers
 * the behaviors /pay/usage (body: a usage report; reply: the voucher that
 * answers it) and /pay/voucher (body: a voucher; reply: {"contract","seq",
 * "amount"}), and a closer.  The handlers are thin: they check that the
 * envelope comes from the document's counterparty (the provider for a
 * report, the requester for a voucher) or from an owner of this node
 * relaying it, then call nn_pay_handle().  Whether a peer may invoke them
 * at all is the node's authority check (capability tokens), as for any
 * behavior outside /public/.  One node per process: the ledger handle is
 * this file's.
 */
#include "pay.h"

#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "json.h"
#include "node.h"
#include "util.h"

static struct nn_pay ledger;
static int attached;

static enum nn_code code_for(int rc)
{
	return rc == NN_PAY_ESTORE ? NN_E_INTERNAL : NN_E_BAD_BODY;
}

/* The handler of both behaviors; party names the body's field that must
 * match the sender. */
static enum nn_code handle(struct nn_node *n, jv req, const char *be, const char *party,
			   jv *reply, char *err)
{
	const char *from = nn_env_str(req, "from"), *who;
	jv body = jv_object_get(jv_copy(req), jv_string("body"));
	enum nn_code code = NN_OK;
	int rc;

	if (jv_get_kind(body) != JV_KIND_OBJECT) {
		jv_free(body);
		nn_seterr(err, "body: expected an object");
		return NN_E_BAD_BODY;
	}
	if (nn_json_get_str(body, party, &who, err) < 0) {
		jv_free(body);
		return NN_E_BAD_BODY;
	}
	if (!from || (!nn_node_is_owner(n, from) &&
		      (nn_did_len(from) != strlen(who) || strncmp(from, who, strlen(who))))) {
		nn_seterr(err, "%s: only the %s named in the body (%.80s) or an owner may send it",
			   be, party, who);
		jv_free(body);
		return NN_E_UNAUTHORIZED;
	}
	rc = nn_pay_handle(&ledger, be, body, reply, err);
	jv_free(body);
	if (rc < 0)
		code = code_for(rc);
	return code;
}

static enum nn_code be_usage(struct nn_node *n, jv req, jv *reply, char *err)
{
	return handle(n, req, "/pay/usage", "provider", reply, err);
}

static enum nn_code be_voucher(struct nn_node *n, jv req, jv *reply, char *err)
{
	return handle(n, req, "/pay/voucher", "requester", reply, err);
}

static const struct nn_behavior behaviors[] = {
	{ "/pay/usage", be_usage, "answer a signed usage report with a voucher", 0 },
	{ "/pay/voucher", be_voucher, "keep a voucher for a contract we provide under", 0 },
};

static void closer(struct nn_node *n, void *arg)
{
	if (attached)
		nn_pay_close(&ledger);
	attached = 0;
}

int nn_pay_attach(struct nn_node *n, char *err)
{
	char *path;
	int rc;
	if (attached)
		return nn_seterr(err, "pay: already attached to a node");
	path = nn_home_file(nn_node_home(n), "ledger.db");
	rc = nn_pay_open(&ledger, path, nn_node_key(n), err);
	free(path);
	if (rc < 0)
		return -1;
	attached = 1;
	for (size_t i = 0; i < sizeof behaviors / sizeof *behaviors; i++)
		nn_node_behavior(n, &behaviors[i]);
	nn_node_on_close(n, closer, NULL);
	return 0;
}

struct nn_pay *nn_pay_attached(void)
{
	return attached ? &ledger : NULL;
}
