/*
 * Fuzz target: nunet-run convert's library (lib/convert.h).  Input: a
 * Nomad job (JSON) when it starts with '{' and mentions "TaskGroups", else
 * a Kubernetes manifest (JSON or YAML).  Whatever converts must give an
 * ensemble document and notes that are one line each, "PATH: not
 * converted: WHY"; the document is then normalized (without its where,
 * whose jq costs milliseconds to compile) and a valid result is checked
 * like the ensemble targets' (t/fuzz/ensemble-oracle.h).
 */
#include "convert.h"
#include "yamldoc.h"
#include "ensemble-oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	int nomad = size > 0 && data[0] == '{' && memmem(data, size, "TaskGroups", 10);
	jv doc = nn_json_parse((const char *)data, size, err), notes = jv_array(), ens;

	if (!jv_is_valid(doc) && !nomad) {
		jv_free(doc);
		doc = nn_yamldoc_parse((const char *)data, size, err);
	}
	if (!jv_is_valid(doc)) {
		jv_free(doc);
		jv_free(notes);
		return 0;
	}
	err[0] = 0;
	ens = nomad ? nn_convert_nomad(doc, &notes, err) : nn_convert_kubernetes(doc, &notes, err);
	jv_array_foreach(notes, i, n) {
		(void)i;
		FUZZ_CHECK(jv_get_kind(n) == JV_KIND_STRING);
		FUZZ_CHECK(strstr(jv_string_value(n), ": not converted: ") != NULL);
		FUZZ_CHECK(strchr(jv_string_value(n), '\n') == NULL);
		jv_free(n);
	}
	jv_free(notes);
	if (!jv_is_valid(ens)) {
		FUZZ_CHECK(err[0] != 0);
		jv_free(ens);
		return 0;
	}
	FUZZ_CHECK(jv_get_kind(ens) == JV_KIND_OBJECT);
	fuzz_ensemble_doc(ens);
	return 0;
}
