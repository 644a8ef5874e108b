/*
 * convert — other schedulers' job descriptions as ensembles
 * (man/nunet-ensemble.5, CONVERSION): a Nomad job in JSON (the API form,
 * {"Job":{…}}, as `nomad job run -output` prints it, or the bare job) and a
 * Kubernetes Pod, Job or Deployment manifest (parsed from JSON or YAML by
 * the caller).  The result is an ensemble document to be normalized with
 * nn_ensemble_normalize(); each thing that has no counterpart is appended
 * to *notes as "PATH: not converted: WHY".  Pure: no I/O, no printing.
 */
#ifndef NN_CONVERT_H
#define NN_CONVERT_H

#include <jv.h>
#include "util.h"

/* Both consume doc.  jv_invalid() and err when doc is not such a document
 * or nothing in it could be converted. */
jv nn_convert_nomad(jv doc, jv *notes, char *err);
jv nn_convert_kubernetes(jv doc, jv *notes, char *err);

#endif
