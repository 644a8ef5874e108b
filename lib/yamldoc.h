/*
 * yamldoc — one YAML document to a jv, for ensembles and the Kubernetes
 * manifests `nunet-run convert` reads.  Mappings become objects (keys must
 * be scalars; a key given twice is an error), sequences arrays, scalars
 * strings, except plain (unquoted) scalars that read as YAML 1.2 core
 * schema values: null (~, null, empty), booleans (true, false), integers
 * (decimal, 0x hex, 0o octal, within +-2^53 so they stay exact, else a
 * string) and decimal floats.  Quoted scalars and "!!str" stay strings.
 *
 * Bounded for untrusted input: aliases are refused (so no "billion laughs"),
 * more than one document is refused, nesting is capped at NN_YAMLDOC_MAX_DEPTH
 * and the node count at NN_YAMLDOC_MAX_NODES.  Pure: no I/O, no printing.
 */
#ifndef NN_YAMLDOC_H
#define NN_YAMLDOC_H

#include <stddef.h>
#include <jv.h>
#include "util.h"

#define NN_YAMLDOC_MAX_DEPTH 64
#define NN_YAMLDOC_MAX_NODES 200000

/* The document in s[0..len), or jv_invalid() and err ("line 3 column 5:
 * mapping values are not allowed in this context").  An empty stream is
 * null. */
jv nn_yamldoc_parse(const char *s, size_t len, char *err);

#endif
