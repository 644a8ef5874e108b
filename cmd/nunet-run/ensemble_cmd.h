/*
 * Ensembles in nunet-run (cmd/nunet-run/ensemble.c): `nunet-run validate`
 * and `nunet-run convert`, and the loading that deploy shares with them.
 */
#ifndef NUNET_RUN_ENSEMBLE_CMD_H
#define NUNET_RUN_ENSEMBLE_CMD_H

#include <jv.h>

/* Read FILE (or "-" for stdin) and parse it as an ensemble: the normalized
 * ensemble, or jv_invalid() after printing every error on stderr as
 * "FILE: PATH: MESSAGE" with *code set (65 bad data, 74 unreadable). */
jv ensemble_load(const char *file, int *code);

/* `nunet-run validate [--json] FILE|-` and `nunet-run convert --from
 * nomad|kubernetes FILE|-`; argv[0] is the subcommand.  Return the exit
 * status; usage(64) for bad options. */
int cmd_validate(int argc, char **argv, void (*usage)(int));
int cmd_convert(int argc, char **argv, void (*usage)(int));

#endif
