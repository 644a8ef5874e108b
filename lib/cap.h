/*
 * cap — capability documents and resource arithmetic.  A capability
 * document (man/nunet-capability.5) says what a machine offers; a resource
 * vector is the part of it that can be reserved and used up: CPU in
 * millicores (1000 = one core, so a reservation can be half a core), RAM and
 * disk in bytes, and GPUs as a count plus their total VRAM in bytes.
 * Arithmetic on vectors refuses, with a sentence naming the resource, any
 * result that would overflow int64 or go negative, so a reservation can never
 * wrap around into a huge free amount.  Pure code: no I/O.
 */
#ifndef NN_CAP_H
#define NN_CAP_H

#include <stdint.h>
#include <jv.h>
#include "util.h"

struct nn_res {
	int64_t cpu;	/* millicores */
	int64_t ram;	/* bytes */
	int64_t disk;	/* bytes */
	int64_t gpus;	/* count */
	int64_t vram;	/* bytes, total over the GPUs counted */
};

/*
 * A size: a non-negative integer number of bytes, or a string "8G",
 * "512MiB", "1024" (suffixes k/m/g/t with optional "iB" or "B", powers of
 * 1024).  Borrows v.  -1 and err "FIELD: bad size 'x' (…)" otherwise.
 */
int nn_cap_size(jv v, const char *field, int64_t *out, char *err);

/*
 * A number of cores with at most three decimals as millicores: 0 and *milli
 * (1.007 gives 1007, exactly, though 1.007 * 1000 is 1006.9999999999999 in
 * a double), or -1 for a negative, non-finite or finer number, or one of
 * 2^63 millicores or more.
 */
int nn_cap_millicores(double cores, int64_t *milli);

/*
 * The vector of a capability or requirements document (borrows doc):
 * cpu.millicores, else cpu.cores * 1000 (cores may have 3 decimals); ram.size; disk.size; gpus: an array
 * of GPUs (count, sum of vram) or an object {"count":N,"vram":PER_GPU}
 * (count N, vram N * PER_GPU; count defaults to 1).  Missing parts are 0.
 * -1 and err naming the field on a wrong type, a bad size or an overflow.
 */
int nn_res_from_doc(struct nn_res *r, jv doc, char *err);

/*
 * The flat form {"cpu":MILLICORES,"ram":BYTES,"disk":BYTES,"gpus":N,
 * "vram":BYTES}: to_json returns a new object; from_json borrows v, accepts
 * sizes as strings for ram/disk/vram, missing members are 0, unknown members
 * are an error.
 */
jv nn_res_to_json(const struct nn_res *r);
int nn_res_from_json(struct nn_res *r, jv v, char *err);

/* out = a + b, out = a - b.  -1 and err ("ram: 4096 - 8192 would be
 * negative", "cpu: 9223372036854775807 + 1 overflows") leaving out
 * untouched; out may alias a or b.  Negative operands are refused too. */
int nn_res_add(struct nn_res *out, const struct nn_res *a, const struct nn_res *b, char *err);
int nn_res_sub(struct nn_res *out, const struct nn_res *a, const struct nn_res *b, char *err);

/* 1 when need fits in have (every component <=), else 0 with why (if not
 * NULL) naming the first short resource: "ram: need 8589934592, have
 * 4294967296". */
int nn_res_fits(const struct nn_res *need, const struct nn_res *have, char *why);

/* 0 when every component is >= 0, else -1 and err. */
int nn_res_check(const struct nn_res *r, char *err);

/*
 * Check that doc (borrowed) is a well-formed capability document: "v":1,
 * cpu/ram/disk objects with integer fields, gpus an array of objects,
 * executors/features arrays of strings, price values strings of digits,
 * labels string to string, where a string.  -1 and err naming the field.
 */
int nn_cap_check(jv doc, char *err);

/*
 * A copy of the capability document cap (consumed) describing only the
 * resources in r: cpu.millicores and cpu.cores (rounded down) set from
 * r->cpu, ram.size, disk.size, and the gpus array cut to the first r->gpus
 * entries.  This is what a node matches when it answers for its free
 * resources.
 */
jv nn_cap_restrict(jv cap, const struct nn_res *r);

#endif
