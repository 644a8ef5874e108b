/*
 * Fuzz target: ensembles written as YAML (lib/yamldoc.h, lib/ensemble.h):
 * the document from nn_yamldoc_parse normalized, and the text through
 * nn_ensemble_parse; the oracles are in t/fuzz/ensemble-oracle.h.  A YAML
 * error must say where (line and column).
 */
#include "ensemble.h"
#include "yamldoc.h"
#include "ensemble-oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	jv doc = nn_yamldoc_parse((const char *)data, size, err);
	if (jv_is_valid(doc)) {
		fuzz_ensemble_doc(doc);
	} else {
		jv_free(doc);
		FUZZ_CHECK(!strncmp(err, "line ", 5) || !strncmp(err, "not YAML", 8));
	}
	fuzz_ensemble_text(data, size);
	return 0;
}
