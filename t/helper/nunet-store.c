/*
 * nunet-store — a small test CLI over lib/storage: fetch and put by URL,
 * snapshot a directory into a repository, restore it, and move snapshots
 * between repositories as packs of only the missing objects.  Results are
 * one JSON line on stdout; with --progress, progress events come first as
 * JSON lines ({"event":"progress",…}); errors are one line on stderr and
 * the exit code the library suggests (sysexits).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "json.h"
#include "log.h"
#include "storage.h"
#include "util.h"

static const char usage[] =
	"usage: nunet-store fetch URL PATH [--sha256 HEX] [--max SIZE] [--base DIR]\n"
	"                   [--retries N] [--backoff MS] [--stall DURATION] [--timeout DURATION]\n"
	"                   [--s3-config FILE] [--ca FILE] [--no-sha256] [--progress]\n"
	"       nunet-store put PATH URL [--part-size SIZE] [--message TEXT] [--sha256 HEX] [--progress]\n"
	"       nunet-store snapshot DIR REPO [--ref REF] [--message TEXT]\n"
	"       nunet-store restore REPO COMMIT DIR\n"
	"       nunet-store haves REPO\n"
	"       nunet-store pack REPO COMMIT PACKFILE [--have COMMIT]...\n"
	"       nunet-store unpack REPO PACKFILE COMMIT [--ref REF]\n"
	"       nunet-store migrate FROM_REPO COMMIT TO_REPO\n"
	"       nunet-store mkbucket BUCKET\n"
	"       nunet-store stage DIR < INPUTS.json\n"
	"       nunet-store collect DIR < OUTPUTS.json\n";

static void print_json(jv v)
{
	char *s = nn_json_dump(v);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	jv_free(v);
}

static int on_event(const struct nn_storage_event *ev, void *arg)
{
	jv o = jv_object();
	(void)arg;
	o = jv_object_set(o, jv_string("event"), jv_string(ev->phase));
	o = jv_object_set(o, jv_string("url"), jv_string(ev->url));
	o = jv_object_set(o, jv_string("bytes"), jv_number((double)ev->bytes));
	if (ev->total)
		o = jv_object_set(o, jv_string("total"), jv_number((double)ev->total));
	o = jv_object_set(o, jv_string("attempt"), jv_number(ev->attempt));
	if (ev->error)
		o = jv_object_set(o, jv_string("error"), jv_string(ev->error));
	if (!strcmp(ev->phase, "retry"))
		o = jv_object_set(o, jv_string("delay_ms"), jv_number((double)ev->delay_ms));
	print_json(o);
	return 0;
}

static int bad_usage(const char *msg)
{
	if (msg)
		fprintf(stderr, "nunet-store: error: %s\n", msg);
	fputs(usage, stderr);
	return NN_EX_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "sha256", required_argument, NULL, 's' },
		{ "max", required_argument, NULL, 'm' },
		{ "base", required_argument, NULL, 'b' },
		{ "retries", required_argument, NULL, 'r' },
		{ "backoff", required_argument, NULL, 'B' },
		{ "stall", required_argument, NULL, 'S' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "part-size", required_argument, NULL, 'P' },
		{ "message", required_argument, NULL, 'M' },
		{ "ref", required_argument, NULL, 'R' },
		{ "have", required_argument, NULL, 'H' },
		{ "progress", no_argument, NULL, 'p' },
		{ "s3-config", required_argument, NULL, 'C' },
		{ "ca", required_argument, NULL, 'A' },
		{ "no-sha256", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct nn_storage_opts o;
	struct nn_storage_result r;
	struct nn_s3_config s3;
	int have_s3 = 0;
	char err[NN_ERRLEN] = "";
	const char *ref = NULL, *cmd;
	jv haves = jv_null();	/* an array once --have is given */
	uint64_t u;
	int64_t ms;
	int c, rc;

	nn_log_init("nunet-store");
	if (sodium_init() < 0)
		return NN_EX_SOFTWARE;
	nn_storage_opts_init(&o);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o.sha256 = optarg; break;
		case 'm':
			if (nn_parse_size(optarg, &u) < 0)
				return bad_usage("--max: expected a size such as 10M");
			o.max_size = u;
			break;
		case 'b': o.base = optarg; break;
		case 'r': o.retries = atoi(optarg); break;
		case 'B': o.backoff_ms = atoll(optarg); break;
		case 'S':
			if (nn_parse_duration_ms(optarg, &ms) < 0)
				return bad_usage("--stall: expected a duration such as 2s");
			o.stall_ms = ms;
			break;
		case 'T':
			if (nn_parse_duration_ms(optarg, &ms) < 0)
				return bad_usage("--timeout: expected a duration such as 30s");
			o.timeout_ms = ms;
			break;
		case 'P':
			if (nn_parse_size(optarg, &u) < 0)
				return bad_usage("--part-size: expected a size such as 8M");
			o.part_size = u;
			break;
		case 'M': o.message = optarg; break;
		case 'R': ref = optarg; break;
		case 'H':
			if (jv_get_kind(haves) != JV_KIND_ARRAY)
				haves = jv_array();
			haves = jv_array_append(haves, jv_string(optarg));
			break;
		case 'p': o.progress = on_event; break;
		case 'A': o.ca_file = optarg; break;
		case 'N': o.no_sha256 = 1; break;
		case 'C': {
			size_t len;
			char *text = nn_read_file(optarg, 1 << 16, &len, err);
			jv conf = text ? nn_json_parse(text, len, err) : jv_invalid();
			free(text);
			if (have_s3)
				nn_s3_config_release(&s3);
			have_s3 = 0;
			if (!jv_is_valid(conf) || nn_s3_config_from_json(&s3, conf, err) < 0) {
				jv_free(conf);
				jv_free(haves);
				fprintf(stderr, "nunet-store: error: %s: %s\n", optarg, err);
				return NN_EX_CONFIG;
			}
			jv_free(conf);
			have_s3 = 1;
			o.s3 = &s3;
			break;
		}
		case 'h': fputs(usage, stdout); return 0;
		case 'V': printf("nunet-store %s\n", NN_VERSION); return 0;
		default: jv_free(haves); return bad_usage(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		jv_free(haves);
		return bad_usage(NULL);
	}
	cmd = argv[0];
	memset(&r, 0, sizeof r);
	if (!strcmp(cmd, "fetch") && argc == 3) {
		rc = nn_storage_fetch(argv[1], argv[2], &o, &r, err);
		if (rc == 0)
			print_json(nn_storage_result_json(&r, argv[1], argv[2]));
		else
			rc = r.code;
	} else if (!strcmp(cmd, "put") && argc == 3) {
		rc = nn_storage_put(argv[1], argv[2], &o, &r, err);
		if (rc == 0)
			print_json(nn_storage_result_json(&r, argv[2], argv[1]));
		else
			rc = r.code;
	} else if (!strcmp(cmd, "snapshot") && argc == 3) {
		char id[65];
		rc = nn_snapshot_commit(argv[1], argv[2], ref, o.message, id, err);
		if (rc == 0)
			print_json(jv_object_set(jv_object(), jv_string("commit"), jv_string(id)));
		else
			rc = NN_EX_IOERR;
	} else if (!strcmp(cmd, "restore") && argc == 4) {
		rc = nn_snapshot_restore(argv[1], argv[2], argv[3], err);
		if (rc == 0)
			print_json(jv_object_set(jv_object(), jv_string("dir"), jv_string(argv[3])));
		else
			rc = NN_EX_IOERR;
	} else if (!strcmp(cmd, "haves") && argc == 2) {
		jv h = nn_snapshot_haves(argv[1], err);
		rc = jv_is_valid(h) ? 0 : NN_EX_IOERR;
		if (rc == 0)
			print_json(h);
		else
			jv_free(h);
	} else if (!strcmp(cmd, "pack") && argc == 4) {
		rc = nn_snapshot_pack(argv[1], argv[2], haves, argv[3], &u, err);
		if (rc == 0)
			print_json(jv_object_set(jv_object(), jv_string("bytes"), jv_number((double)u)));
		else
			rc = NN_EX_IOERR;
	} else if (!strcmp(cmd, "unpack") && argc == 4) {
		rc = nn_snapshot_unpack(argv[1], argv[2], argv[3], ref, err);
		if (rc == 0)
			print_json(jv_object_set(jv_object(), jv_string("commit"), jv_string(argv[3])));
		else
			rc = NN_EX_DATAERR;
	} else if ((!strcmp(cmd, "stage") || !strcmp(cmd, "collect")) && argc == 2) {
		size_t len;
		char *text = nn_read_file("/dev/stdin", 1 << 20, &len, err);
		jv list = text ? nn_json_parse(text, len, err) : jv_invalid();
		free(text);
		rc = NN_EX_DATAERR;
		if (jv_is_valid(list)) {
			jv res = !strcmp(cmd, "stage") ? nn_storage_stage(list, argv[1], &o, &rc, err)
						       : nn_storage_collect(list, argv[1], &o, &rc, err);
			if (jv_is_valid(res))
				print_json(res);
			else
				jv_free(res);
		}
		jv_free(list);
	} else if (!strcmp(cmd, "mkbucket") && argc == 2) {
		rc = nn_s3_create_bucket(argv[1], o.s3, err);
		if (rc == 0)
			print_json(jv_object_set(jv_object(), jv_string("bucket"), jv_string(argv[1])));
		else
			rc = NN_EX_UNAVAILABLE;
	} else if (!strcmp(cmd, "migrate") && argc == 4) {
		/* What a migration does between two nodes, on one machine: the
		 * target says what it has, the source packs the rest. */
		char *pack = nn_xasprintf("%s.pack.XXXXXX", argv[3]);
		jv h = nn_snapshot_haves(argv[3], err);
		int fd = mkstemp(pack);
		rc = NN_EX_IOERR;
		if (fd >= 0 && jv_is_valid(h)) {
			close(fd);
			if (nn_snapshot_pack(argv[1], argv[2], h, pack, &u, err) == 0 &&
			    nn_snapshot_unpack(argv[3], pack, argv[2], ref, err) == 0) {
				jv out = jv_object_set(jv_object(), jv_string("commit"), jv_string(argv[2]));
				out = jv_object_set(out, jv_string("bytes"), jv_number((double)u));
				print_json(out);
				rc = 0;
			}
			unlink(pack);
			jv_free(h);
		} else {
			if (fd >= 0) {
				close(fd);
				unlink(pack);
			}
			jv_free(h);
		}
		free(pack);
	} else {
		jv_free(haves);
		return bad_usage(NULL);
	}
	jv_free(haves);
	if (have_s3)
		nn_s3_config_release(&s3);
	if (rc != 0)
		fprintf(stderr, "nunet-store: error: %s\n", err[0] ? err : "failed");
	return rc;
}
