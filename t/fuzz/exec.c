/*
 * Fuzz target: an allocation's executor spec (lib/exec/exec.h), which
 * arrives from a requester inside a deployment.  nn_exec_spec_parse must
 * accept or refuse with a message; an accepted spec must keep its
 * working directory inside the allocation directory (lexically), print back
 * as JSON that parses to the same spec again, and give an environment
 * without '=' in the names.
 */
#include <jv.h>
#include "exec/exec.h"
#include "json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	struct nn_exec_spec spec, again;
	jv j = nn_json_parse((const char *)data, size, err);
	if (!jv_is_valid(j)) {
		jv_free(j);
		return 0;
	}
	err[0] = 0;
	if (nn_exec_spec_parse(&spec, j, "/nonexistent/fuzz-home", err) < 0) {
		FUZZ_CHECK(err[0]);
		return 0;
	}
	FUZZ_CHECK(spec.dir && spec.dir[0] == '/');
	size_t dl = strlen(spec.dir);
	FUZZ_CHECK(spec.workdir && !strncmp(spec.workdir, spec.dir, dl) &&
		   (spec.workdir[dl] == '/' || spec.workdir[dl] == 0 || dl == 1));
	FUZZ_CHECK(!strstr(spec.workdir, "/../"));
	jv back = nn_exec_spec_json(&spec);
	char *t1 = nn_json_dump(back);
	FUZZ_CHECK(nn_exec_spec_parse(&again, back, "/nonexistent/fuzz-home", err) == 0);
	jv back2 = nn_exec_spec_json(&again);
	char *t2 = nn_json_dump(back2);
	FUZZ_CHECK(strcmp(t1, t2) == 0);
	free(t1);
	free(t2);
	jv_free(back2);
	char **envp = nn_exec_spec_envp(&spec);
	for (char **e = envp; e && *e; e++)
		FUZZ_CHECK(strchr(*e, '=') != NULL);
	nn_exec_strv_free(envp);
	nn_exec_spec_release(&again);
	nn_exec_spec_release(&spec);
	return 0;
}
