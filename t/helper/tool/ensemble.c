/*
 * ensemble units, driven from t/8001-ensemble.bats.
 *
 *   test-tool ensemble parse [NAME]  stdin (JSON or YAML) → the normalized
 *                                    ensemble (canonical JSON), or the
 *                                    errors one per line and exit 65
 *   test-tool ensemble normalize     stdin JSON through nn_ensemble_normalize
 *                                    (what a node does with one received)
 *   test-tool ensemble reqs GROUP    stdin ensemble → that group's
 *                                    requirements (canonical JSON)
 *   test-tool ensemble yaml          stdin YAML → its JSON (nn_yamldoc_parse)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ensemble.h"
#include "json.h"
#include "util.h"
#include "yamldoc.h"
#include "test-tool.h"

static char *slurp(size_t *len)
{
	struct nn_buf b = NN_BUF_INIT;
	char chunk[65536];
	ssize_t n;
	while ((n = read(0, chunk, sizeof chunk)) > 0)
		nn_buf_add(&b, chunk, (size_t)n);
	nn_buf_addc(&b, 0);
	*len = b.len - 1;
	return nn_buf_detach(&b, NULL);
}

static int put(jv v)
{
	char *s = nn_json_dump(v);
	printf("%s\n", s);
	free(s);
	jv_free(v);
	return 0;
}

static int result(jv ens, jv errs)
{
	if (jv_is_valid(ens))
		return put(ens);
	jv_free(ens);
	jv_array_foreach(errs, i, e) {
		(void)i;
		printf("%s\n", jv_string_value(e));
		jv_free(e);
	}
	jv_free(errs);
	return 65;
}

int cmd__ensemble(int argc, char **argv)
{
	char err[NN_ERRLEN];
	size_t len;
	char *text;
	jv errs = jv_invalid(), v;
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: test-tool ensemble parse|normalize|reqs|yaml\n");
		return 64;
	}
	text = slurp(&len);
	if (!strcmp(argv[1], "parse")) {
		rc = result(nn_ensemble_parse(text, len, argc > 2 ? argv[2] : NULL, &errs), errs);
	} else if (!strcmp(argv[1], "normalize")) {
		v = nn_json_parse(text, len, err);
		if (!jv_is_valid(v)) {
			printf("error: %s\n", err);
			rc = 65;
		} else {
			rc = result(nn_ensemble_normalize(v, &errs), errs);
		}
	} else if (!strcmp(argv[1], "reqs") && argc == 3) {
		jv ens = nn_ensemble_parse(text, len, NULL, &errs);
		if (!jv_is_valid(ens)) {
			rc = result(ens, errs);
		} else {
			v = nn_ensemble_group_requirements(ens, argv[2]);
			if (!jv_is_valid(v)) {
				jv msg = jv_invalid_get_msg(v);
				printf("error: %s\n", jv_string_value(msg));
				jv_free(msg);
				rc = 65;
			} else {
				rc = put(v);
			}
			jv_free(ens);
		}
	} else if (!strcmp(argv[1], "yaml")) {
		v = nn_yamldoc_parse(text, len, err);
		if (!jv_is_valid(v)) {
			printf("error: %s\n", err);
			rc = 65;
		} else {
			rc = put(v);
		}
	} else {
		fprintf(stderr, "test-tool ensemble: unknown subcommand '%s'\n", argv[1]);
		rc = 64;
	}
	free(text);
	return rc;
}
