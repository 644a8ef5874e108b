/*
 * onboard units: commitments against a node's reservation, made the way
 * the allocation module makes them (nn_onboard_commit on the node's
 * store), so the bats suite can hold resources while a real node runs.
 *
 *   test-tool onboard commit DB ID VECTOR   commit the flat vector
 *                                            ({"cpu":1500,"ram":"1G"}) to ID
 *   test-tool onboard release DB ID         release ID: prints 1 or 0
 *
 * Exit 0 done, 1 refused (the message on stderr), 65 bad input, 74 store.
 */
#include <stdio.h>
#include <string.h>
#include "cap.h"
#include "db.h"
#include "json.h"
#include "onboard.h"
#include "util.h"
#include "test-tool.h"

int cmd__onboard(int argc, char **argv)
{
	char err[NN_ERRLEN];
	struct nn_db db;
	struct nn_res r;
	int rc;

	if (argc < 4 || (strcmp(argv[1], "commit") != 0 && strcmp(argv[1], "release") != 0) ||
	    (!strcmp(argv[1], "commit") && argc != 5) || (!strcmp(argv[1], "release") && argc != 4)) {
		fprintf(stderr, "usage: test-tool onboard commit DB ID VECTOR | release DB ID\n");
		return 64;
	}
	if (nn_db_open(&db, argv[2], nn_node_schema, err) < 0 ||
	    nn_onboard_migrate(&db, err) < 0) {
		fprintf(stderr, "error: %s\n", err);
		nn_db_close(&db);
		return 74;
	}
	if (!strcmp(argv[1], "release")) {
		rc = nn_onboard_release(&db, argv[3], err);
		nn_db_close(&db);
		if (rc < 0) {
			fprintf(stderr, "error: %s\n", err);
			return 74;
		}
		printf("%d\n", rc);
		return 0;
	}
	jv v = nn_json_parse(argv[4], strlen(argv[4]), err);
	if (!jv_is_valid(v) || nn_res_from_json(&r, v, err) < 0) {
		fprintf(stderr, "error: %s\n", err);
		jv_free(v);
		nn_db_close(&db);
		return 65;
	}
	jv_free(v);
	rc = nn_onboard_commit(&db, argv[3], &r, err);
	nn_db_close(&db);
	if (rc < 0) {
		fprintf(stderr, "error: %s\n", err);
		return rc == NN_ONBOARD_REFUSED ? 1 : rc == NN_ONBOARD_BAD ? 65 : 74;
	}
	return 0;
}
