/*
 * Fuzz target: nn_json_parse and the RFC 8785 canonical form.  Whatever
 * parses must canonicalize (or fail cleanly), and canonical text must be a
 * fixed point: canon(parse(canon(x))) == canon(x).  The typed getters and
 * nn_json_dump run on the value too.
 */
#include <jv.h>
#include "json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[NN_ERRLEN];
	jv v = nn_json_parse((const char *)data, size, err);
	if (!jv_is_valid(v)) {
		FUZZ_CHECK(err[0]);
		jv_free(v);
		return 0;
	}
	struct nn_buf c1, c2;
	nn_buf_init(&c1, 1 << 20);
	nn_buf_init(&c2, 1 << 20);
	if (nn_json_canon(v, &c1, err) == 0) {
		jv w = nn_json_parse(c1.data, c1.len, err);
		FUZZ_CHECK(jv_is_valid(w));
		FUZZ_CHECK(nn_json_canon(w, &c2, err) == 0);
		FUZZ_CHECK(c1.len == c2.len && memcmp(c1.data, c2.data, c1.len) == 0);
		char *s = nn_json_canon_str(w, err);
		FUZZ_CHECK(s && strlen(s) == c1.len && memcmp(s, c1.data, c1.len) == 0);
		free(s);
		jv_free(w);
	}
	char *d = nn_json_dump(v);
	free(d);
	if (jv_get_kind(v) == JV_KIND_OBJECT) {
		const char *str;
		int64_t i;
		nn_buf_reset(&c2);
		(void)nn_json_canon_without(v, "sig", &c2, err);
		(void)nn_json_get_str(v, "type", &str, err);
		(void)nn_json_get_int(v, "v", &i, err);
		(void)nn_json_get_obj(v, "body", err);
		(void)nn_json_has(v, "sig");
	}
	(void)nn_json_kind(v);
	nn_buf_release(&c1);
	nn_buf_release(&c2);
	jv_free(v);
	return 0;
}
