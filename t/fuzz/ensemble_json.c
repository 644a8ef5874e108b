/*
 * Fuzz target: ensembles written as JSON (lib/ensemble.h): the document
 * parsed with nn_json_parse and normalized, and the text through
 * nn_ensemble_parse; the oracles are in t/fuzz/ensemble-oracle.h.
 */
#include "ensemble.h"
#include "ensemble-oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	jv doc = nn_json_parse((const char *)data, size, err);
	if (jv_is_valid(doc))
		fuzz_ensemble_doc(doc);
	else
		jv_free(doc);
	fuzz_ensemble_text(data, size);
	return 0;
}
