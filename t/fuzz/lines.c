/*
 * Fuzz target: the JSON-lines reader (lib/lines.h) with tiny caps.  The
 * first byte picks the line cap (1..64) and the second how the rest is cut
 * into feeds; the lines that come out must be exactly the input's lines in
 * order (a CR before the newline dropped), each line over the cap reported
 * once as OVERSIZE, whatever the feed sizes.  The same bytes then go through nn_jsonl_next.
 */
#include <jv.h>
#include "lines.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t cap = 1 + data[0] % 64;
	unsigned step = 1 + data[1] % 17;
	const char *in = (const char *)data + 2;
	size_t n = size - 2;

	struct nn_lines l;
	nn_lines_init(&l, cap);
	size_t pos = 0;		/* oracle: start of the line expected next */
	size_t off = 0;
	while (off < n) {
		size_t k = n - off < step ? n - off : step;
		nn_lines_feed(&l, in + off, k);
		off += k;
		const char *line;
		size_t len;
		int r;
		while ((r = nn_lines_next(&l, &line, &len)) != NN_LINES_NONE) {
			FUZZ_CHECK(pos < n);
			const char *nl = memchr(in + pos, '\n', n - pos);
			size_t want = nl ? (size_t)(nl - (in + pos)) : n - pos;
			if (r == NN_LINES_LINE) {
				/* the cap counts a CR before the newline; the line
				 * comes without it */
				FUZZ_CHECK(nl && nl < in + off && want <= cap);
				if (want && in[pos + want - 1] == '\r')
					want--;
				FUZZ_CHECK(len == want);
				FUZZ_CHECK(memcmp(line, in + pos, len) == 0);
			} else {
				FUZZ_CHECK(r == NN_LINES_OVERSIZE);
				FUZZ_CHECK(want > cap);
			}
			pos = nl ? (size_t)(nl - in) + 1 : n;
		}
	}
	/* every complete line was returned; what is left is one partial line,
	 * already reported when it is known to be over the cap */
	if (pos < n) {
		FUZZ_CHECK(memchr(in + pos, '\n', n - pos) == NULL);
		FUZZ_CHECK(n - pos > cap || nn_lines_pending(&l) == n - pos);
	}
	nn_lines_release(&l);

	nn_lines_init(&l, cap * 4);
	nn_lines_feed(&l, in, n);
	for (;;) {
		jv v;
		int code = 0;
		char err[NN_ERRLEN];
		int r = nn_jsonl_next(&l, &v, &code, err);
		if (r == NN_JSONL_NONE)
			break;
		if (r == NN_JSONL_VALUE)
			jv_free(v);
		else
			FUZZ_CHECK(r == NN_JSONL_ERROR && err[0]);
	}
	nn_lines_release(&l);
	return 0;
}
