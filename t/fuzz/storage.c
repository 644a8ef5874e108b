/*
 * Fuzz target: what lib/storage.h takes from a job description before any
 * transfer: the scheme check on a URL, the join of an input or output path
 * with the allocation directory (nn_storage_join, which must never yield a
 * path outside it), and the "s3" settings object.  Input: a path or URL,
 * optionally followed by a line "--" and an S3 settings JSON object.
 */
#include <jv.h>
#include "storage.h"
#include "json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *a, *b;
	size_t alen, blen;
	char err[NN_ERRLEN];

	fuzz_split(data, size, &a, &alen, &b, &blen);
	char *s = strndup((const char *)a, alen);
	(void)nn_storage_supported(s);
	char *out = NULL;
	const char *base = fuzz_dir();
	if (nn_storage_join(base, s, &out, err) == 0) {
		size_t bl = strlen(base);
		FUZZ_CHECK(out && !strncmp(out, base, bl) && out[bl] == '/');
		FUZZ_CHECK(s[0] != '/');
		size_t ol = strlen(out);
		FUZZ_CHECK(!strstr(out + bl, "/../"));
		FUZZ_CHECK(ol < bl + 3 || strcmp(out + ol - 3, "/.."));
		free(out);
	} else {
		FUZZ_CHECK(err[0]);
	}
	free(s);
	if (blen) {
		jv conf = nn_json_parse((const char *)b, blen, err);
		if (jv_is_valid(conf)) {
			struct nn_s3_config c;
			memset(&c, 0, sizeof c);
			if (nn_s3_config_from_json(&c, conf, err) < 0)
				FUZZ_CHECK(err[0]);
			nn_s3_config_release(&c);	/* either way: it is left empty */
		}
		jv_free(conf);
	}
	return 0;
}
