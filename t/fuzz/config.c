/*
 * Fuzz target: nn_config_load on an arbitrary config.json (written to a
 * temporary file, as the node reads it).  It must load or refuse with a
 * message, and the limits it yields must be usable.
 */
#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	struct nn_config c;
	struct nn_env_limits lim;

	const char *path = fuzz_file(data, size);
	nn_config_init(&c);
	err[0] = 0;
	if (nn_config_load(&c, path, err) < 0)
		FUZZ_CHECK(err[0]);
	else
		nn_config_limits(&c, &lim);
	nn_config_release(&c);
	return 0;
}
