/*
 * nunet-run validate and convert: the user's side of lib/ensemble.h and
 * lib/convert.h.  validate prints the normalized ensemble (--json) or a
 * one-line summary, else every error, one per line, "FILE: PATH: MESSAGE"
 * on stderr.  convert turns a Nomad job or a Kubernetes Pod, Job or
 * Deployment into an ensemble, prints it normalized (JSON, one line) and
 * says on stderr what it could not convert.  Neither talks to a node.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "convert.h"
#include "ensemble.h"
#include "json.h"
#include "log.h"
#include "util.h"
#include "yamldoc.h"
#include "ensemble_cmd.h"

static const char *shown(const char *file)
{
	return strcmp(file, "-") ? file : "stdin";
}

static char *slurp(const char *file, size_t *len, int *code)
{
	char err[NN_ERRLEN];
	char *text = nn_read_file(strcmp(file, "-") ? file : "/dev/stdin",
				  NN_ENSEMBLE_MAX_TEXT, len, err);
	if (!text) {
		nn_error("%s", err);
		*code = strstr(err, "larger than") ? NN_EX_DATAERR : NN_EX_IOERR;
	}
	return text;
}

static void print_errors(const char *file, jv errs)
{
	jv_array_foreach(errs, i, e) {
		(void)i;
		fprintf(stderr, "%s: %s\n", shown(file), jv_string_value(e));
		jv_free(e);
	}
	jv_free(errs);
}

jv ensemble_load(const char *file, int *code)
{
	size_t len;
	char *text = slurp(file, &len, code);
	jv errs = jv_invalid(), ens;

	if (!text)
		return jv_invalid();
	ens = nn_ensemble_parse(text, len, strcmp(file, "-") ? file : NULL, &errs);
	free(text);
	if (!jv_is_valid(ens)) {
		print_errors(file, errs);
		*code = NN_EX_DATAERR;
	}
	return ens;
}

static void flush_out(void)
{
	if (fflush(stdout) == EOF)
		nn_die(NN_EX_IOERR, "cannot write: %s", strerror(errno));
}

static void put_json(jv v)
{
	char *s = nn_json_dump(v);
	printf("%s\n", s);
	free(s);
	jv_free(v);
	flush_out();
}

int cmd_validate(int argc, char **argv, void (*usage)(int))
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int o, json = 0, code = 0;
	jv ens;

	optind = 1;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 'j': json = 1; break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (argc - optind != 1)
		usage(NN_EX_USAGE);
	ens = ensemble_load(argv[optind], &code);
	if (!jv_is_valid(ens))
		return code;
	if (json) {
		put_json(ens);
	} else {
		int na = jv_object_length(jv_object_get(jv_copy(ens), jv_string("allocations")));
		int ng = jv_object_length(jv_object_get(jv_copy(ens), jv_string("nodes")));
		printf("ok: %d allocation%s in %d node group%s\n", na, na == 1 ? "" : "s",
		       ng, ng == 1 ? "" : "s");
		jv_free(ens);
		flush_out();
	}
	return 0;
}

int cmd_convert(int argc, char **argv, void (*usage)(int))
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *from = NULL, *file;
	char err[NN_ERRLEN];
	int o, code = 0;
	size_t len;
	char *text;
	jv doc, notes = jv_array(), ens, errs = jv_invalid();

	optind = 1;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			if (strcmp(optarg, "nomad") && strcmp(optarg, "kubernetes")) {
				nn_error("--from: expected nomad or kubernetes, not '%s'", optarg);
				usage(NN_EX_USAGE);
			}
			from = optarg;
			break;
		case 'h': usage(0); break;
		default: usage(NN_EX_USAGE);
		}
	}
	if (!from || argc - optind != 1)
		usage(NN_EX_USAGE);
	file = argv[optind];
	if (!(text = slurp(file, &len, &code))) {
		jv_free(notes);
		return code;
	}
	/* a Nomad job is JSON; a manifest JSON or YAML (JSON is YAML too) */
	if (!strcmp(from, "nomad"))
		doc = nn_json_parse(text, len, err);
	else if (!(doc = nn_json_parse(text, len, err), jv_is_valid(doc)))
		doc = (jv_free(doc), nn_yamldoc_parse(text, len, err));
	free(text);
	if (!jv_is_valid(doc)) {
		jv_free(doc);
		jv_free(notes);
		nn_error("%s: %s", shown(file), err);
		return NN_EX_DATAERR;
	}
	doc = !strcmp(from, "nomad") ? nn_convert_nomad(doc, &notes, err) :
				       nn_convert_kubernetes(doc, &notes, err);
	if (!jv_is_valid(doc)) {
		jv_free(doc);
		jv_free(notes);
		nn_error("%s: %s", shown(file), err);
		return NN_EX_DATAERR;
	}
	jv_array_foreach(notes, i, n) {
		(void)i;
		fprintf(stderr, "convert: %s\n", jv_string_value(n));
		jv_free(n);
	}
	jv_free(notes);
	ens = nn_ensemble_normalize(doc, &errs);
	if (!jv_is_valid(ens)) {
		/* what was converted is not a valid ensemble (a value the
		 * source allowed and an ensemble does not) */
		print_errors(file, errs);
		return NN_EX_DATAERR;
	}
	put_json(ens);
	return 0;
}
