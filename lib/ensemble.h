/*
 * ensemble — the job description a user deploys (man/nunet-ensemble.5):
 * allocations, node groups, edges between groups, where/rank, price cap and
 * deadlines, written as JSON or YAML.  Parsing reports every error with its
 * path and gives back the normalized ensemble: every default filled in,
 * sizes as integer bytes, durations as integer milliseconds, so consumers
 * (the orchestrator, the node receiving it over the wire) never re-parse
 * units.  Normalizing a normalized ensemble gives it back unchanged.  Pure:
 * no I/O, no printing.
 *
 * Errors are strings "PATH: MESSAGE", PATH in jq-like dotted form
 * ("allocations.web.resources.ram: not a size", "edges[0].to: ...", "." for
 * the document itself); at most NN_ENSEMBLE_MAX_ERRORS are kept, the last
 * one saying that more were dropped.
 */
#ifndef NN_ENSEMBLE_H
#define NN_ENSEMBLE_H

#include <stddef.h>
#include <jv.h>

#define NN_ENSEMBLE_MAX_TEXT (4 << 20)	/* bytes of JSON or YAML text */
#define NN_ENSEMBLE_MAX_ALLOCS 1000	/* allocations, node groups, edges */
#define NN_ENSEMBLE_MAX_ERRORS 200

/* Parse an ensemble from text: JSON or YAML (YAML through libyaml; JSON
 * is YAML too, but parse JSON with jv so numbers stay exact).  Returns the
 * normalized ensemble, or jv_invalid() with *errors set to an array of
 * strings "PATH: MESSAGE" (every error, not just the first), e.g.
 * "allocations.web.resources.ram: not a size". name is for messages.
 * (name, when not NULL, also gives the default ensemble name: its file
 * name stem when that is a valid name, else "ensemble".  errors may be
 * NULL; it is left alone on success.) */
jv nn_ensemble_parse(const char *text, size_t len, const char *name, jv *errors);

/* The same checks on an already parsed document (what a node receives
 * over the wire: never trust it).  Consumes doc. */
jv nn_ensemble_normalize(jv doc, jv *errors);

/* The requirements (man/nunet-capability.5 / lib/match.h form) that one
 * node group of a normalized ensemble puts on a provider: sums of its
 * allocations' resources, the executors they need, location, where/rank,
 * max price.  Borrowed ens.  (An unknown group gives jv_invalid with a
 * message.) */
jv nn_ensemble_group_requirements(jv ens, const char *group);

#endif
