/*
 * cap — capability documents and the resource vector: parsing sizes, the
 * vector of a document, add/subtract/fits with overflow and negative
 * results refused, a schema check of capability documents, and the copy of
 * a document restricted to a vector (what a node offers when it answers for
 * its free resources).  All of it pure: jv in, jv or numbers out.
 */
#include <math.h>
#include <string.h>
#include <stdio.h>
#include "cap.h"
#include "json.h"

static const char *const res_names[] = { "cpu", "ram", "disk", "gpus", "vram" };

static int64_t *res_at(struct nn_res *r, int i)
{
	switch (i) {
	case 0: return &r->cpu;
	case 1: return &r->ram;
	case 2: return &r->disk;
	case 3: return &r->gpus;
	default: return &r->vram;
	}
}

static int64_t res_get(const struct nn_res *r, int i)
{
	return *res_at((struct nn_res *)r, i);
}

/* An integer in [0, 2^63) held in a jv number (borrows). */
static int num_ok(jv v, int64_t *out)
{
	double d;
	if (jv_get_kind(v) != JV_KIND_NUMBER)
		return 0;
	d = jv_number_value(v);
	if (d < 0 || d >= 9223372036854775808.0 || !nn_json_is_int(d))
		return 0;
	*out = (int64_t)d;
	return 1;
}

int nn_cap_size(jv v, const char *field, int64_t *out, char *err)
{
	uint64_t u;
	if (jv_get_kind(v) == JV_KIND_NUMBER) {
		if (!num_ok(v, out))
			return nn_seterr(err, "%s: bad size %g (need a whole number of bytes "
					 "from 0 to 9223372036854775807)", field, jv_number_value(v));
		return 0;
	}
	if (jv_get_kind(v) == JV_KIND_STRING) {
		const char *s = jv_string_value(v);
		if (nn_parse_size(s, &u) < 0 || u > INT64_MAX)
			return nn_seterr(err, "%s: bad size '%.64s' (use bytes, or a number "
					 "with K, M, G or T, as in 8G or 512MiB)", field, s);
		*out = (int64_t)u;
		return 0;
	}
	return nn_seterr(err, "%s: bad size: expected a number or a string, not %s",
			 field, nn_json_kind(v));
}

/* doc.obj.key as a size into *out when present (borrows doc). */
static int get_size(jv doc, const char *obj, const char *key, int64_t *out, char *err)
{
	char field[64];
	jv o = jv_object_get(jv_copy(doc), jv_string(obj));
	int rc = 0;
	if (jv_get_kind(o) == JV_KIND_OBJECT) {
		jv x = jv_object_get(jv_copy(o), jv_string(key));
		snprintf(field, sizeof field, "%s.%s", obj, key);
		if (jv_is_valid(x) && jv_get_kind(x) != JV_KIND_NULL)
			rc = nn_cap_size(x, field, out, err);
		jv_free(x);
	} else if (jv_is_valid(o) && jv_get_kind(o) != JV_KIND_NULL) {
		rc = nn_seterr(err, "%s: expected an object, not %s", obj, nn_json_kind(o));
	}
	jv_free(o);
	return rc;
}

static int mul_ok(int64_t a, int64_t b, int64_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

int nn_cap_millicores(double cores, int64_t *milli)
{
	double k;
	if (!(cores >= 0) || cores * 1000 >= 9223372036854775808.0)
		return -1;
	/* the nearest whole number of millicores, and whether that many
	 * thousandths reads back as the same double: a correctly rounded
	 * division gives the double nearest to k/1000, which is what the
	 * decimal text "1.007" was read as */
	k = nearbyint(cores * 1000);
	if (k / 1000 != cores && k != cores * 1000)
		return -1;
	*milli = (int64_t)k;
	return 0;
}

int nn_res_from_doc(struct nn_res *r, jv doc, char *err)
{
	struct nn_res x = { 0, 0, 0, 0, 0 };
	int64_t cores = 0, milli = -1;
	jv g;

	if (jv_get_kind(doc) != JV_KIND_OBJECT)
		return nn_seterr(err, "expected an object, not %s", nn_json_kind(doc));
	if (get_size(doc, "ram", "size", &x.ram, err) < 0 ||
	    get_size(doc, "disk", "size", &x.disk, err) < 0)
		return -1;
	{
		jv c = jv_object_get(jv_copy(doc), jv_string("cpu"));
		int rc = 0;
		if (jv_get_kind(c) == JV_KIND_OBJECT) {
			jv m = jv_object_get(jv_copy(c), jv_string("millicores"));
			jv k = jv_object_get(jv_copy(c), jv_string("cores"));
			if (jv_is_valid(m) && jv_get_kind(m) != JV_KIND_NULL && !num_ok(m, &milli))
				rc = nn_seterr(err, "cpu.millicores: expected a non-negative integer");
			else if (jv_get_kind(k) == JV_KIND_NUMBER) {
				if (nn_cap_millicores(jv_number_value(k), &cores) < 0)
					rc = nn_seterr(err, "cpu.cores: expected a non-negative number "
						       "(at most 3 decimals)");
			} else if (jv_is_valid(k) && jv_get_kind(k) != JV_KIND_NULL)
				rc = nn_seterr(err, "cpu.cores: expected a non-negative number "
					       "(at most 3 decimals)");
			jv_free(m);
			jv_free(k);
		} else if (jv_is_valid(c) && jv_get_kind(c) != JV_KIND_NULL)
			rc = nn_seterr(err, "cpu: expected an object, not %s", nn_json_kind(c));
		jv_free(c);
		if (rc < 0)
			return -1;
	}
	x.cpu = milli >= 0 ? milli : cores;	/* cores already in millicores */

	g = jv_object_get(jv_copy(doc), jv_string("gpus"));
	if (jv_get_kind(g) == JV_KIND_ARRAY) {
		int n = jv_array_length(jv_copy(g));
		x.gpus = n;
		for (int i = 0; i < n; i++) {
			jv e = jv_array_get(jv_copy(g), i);
			int64_t v = 0;
			char field[48];
			snprintf(field, sizeof field, "gpus[%d].vram", i);
			if (jv_get_kind(e) != JV_KIND_OBJECT) {
				jv_free(e);
				jv_free(g);
				return nn_seterr(err, "gpus[%d]: expected an object", i);
			}
			jv vr = jv_object_get(e, jv_string("vram"));
			if (jv_is_valid(vr) && jv_get_kind(vr) != JV_KIND_NULL &&
			    nn_cap_size(vr, field, &v, err) < 0) {
				jv_free(vr);
				jv_free(g);
				return -1;
			}
			jv_free(vr);
			if (__builtin_add_overflow(x.vram, v, &x.vram)) {
				jv_free(g);
				return nn_seterr(err, "gpus: total vram overflows");
			}
		}
	} else if (jv_get_kind(g) == JV_KIND_OBJECT) {
		int64_t count = 1, per = 0;
		jv c = jv_object_get(jv_copy(g), jv_string("count"));
		if (jv_is_valid(c) && jv_get_kind(c) != JV_KIND_NULL && !num_ok(c, &count)) {
			jv_free(c);
			jv_free(g);
			return nn_seterr(err, "gpus.count: expected a non-negative integer");
		}
		jv_free(c);
		if (get_size(doc, "gpus", "vram", &per, err) < 0) {
			jv_free(g);
			return -1;
		}
		x.gpus = count;
		if (!mul_ok(count, per, &x.vram)) {
			jv_free(g);
			return nn_seterr(err, "gpus: %lld x %lld bytes of vram overflows",
					 (long long)count, (long long)per);
		}
	} else if (jv_is_valid(g) && jv_get_kind(g) != JV_KIND_NULL) {
		nn_seterr(err, "gpus: expected an array or an object, not %s", nn_json_kind(g));
		jv_free(g);
		return -1;
	}
	jv_free(g);
	*r = x;
	return 0;
}

jv nn_res_to_json(const struct nn_res *r)
{
	jv o = jv_object();
	for (int i = 0; i < 5; i++)
		o = jv_object_set(o, jv_string(res_names[i]), jv_number((double)res_get(r, i)));
	return o;
}

int nn_res_from_json(struct nn_res *r, jv v, char *err)
{
	struct nn_res x = { 0, 0, 0, 0, 0 };
	int it;
	if (jv_get_kind(v) != JV_KIND_OBJECT)
		return nn_seterr(err, "resources: expected an object, not %s", nn_json_kind(v));
	for (it = jv_object_iter(v); jv_object_iter_valid(v, it); it = jv_object_iter_next(v, it)) {
		jv k = jv_object_iter_key(v, it);
		jv val = jv_object_iter_value(v, it);
		const char *ks = jv_string_value(k);
		int i, rc = 0;
		for (i = 0; i < 5; i++)
			if (!strcmp(ks, res_names[i]))
				break;
		if (i == 5)
			rc = nn_seterr(err, "resources: unknown member '%.64s'", ks);
		else if (i == 0 || i == 3) {
			if (!num_ok(val, res_at(&x, i)))
				rc = nn_seterr(err, "%s: expected a non-negative integer", ks);
		} else {
			rc = nn_cap_size(val, ks, res_at(&x, i), err);
		}
		jv_free(k);
		jv_free(val);
		if (rc < 0)
			return -1;
	}
	*r = x;
	return 0;
}

int nn_res_check(const struct nn_res *r, char *err)
{
	for (int i = 0; i < 5; i++)
		if (res_get(r, i) < 0)
			return nn_seterr(err, "%s: %lld is negative", res_names[i],
					 (long long)res_get(r, i));
	return 0;
}

int nn_res_add(struct nn_res *out, const struct nn_res *a, const struct nn_res *b, char *err)
{
	struct nn_res x;
	if (nn_res_check(a, err) < 0 || nn_res_check(b, err) < 0)
		return -1;
	for (int i = 0; i < 5; i++)
		if (__builtin_add_overflow(res_get(a, i), res_get(b, i), res_at(&x, i)))
			return nn_seterr(err, "%s: %lld + %lld overflows", res_names[i],
					 (long long)res_get(a, i), (long long)res_get(b, i));
	*out = x;
	return 0;
}

int nn_res_sub(struct nn_res *out, const struct nn_res *a, const struct nn_res *b, char *err)
{
	struct nn_res x;
	if (nn_res_check(a, err) < 0 || nn_res_check(b, err) < 0)
		return -1;
	for (int i = 0; i < 5; i++) {
		if (res_get(b, i) > res_get(a, i))
			return nn_seterr(err, "%s: %lld - %lld would be negative", res_names[i],
					 (long long)res_get(a, i), (long long)res_get(b, i));
		*res_at(&x, i) = res_get(a, i) - res_get(b, i);
	}
	*out = x;
	return 0;
}

int nn_res_fits(const struct nn_res *need, const struct nn_res *have, char *why)
{
	for (int i = 0; i < 5; i++)
		if (res_get(need, i) > res_get(have, i)) {
			if (why)
				nn_seterr(why, "%s: need %lld, have %lld", res_names[i],
					  (long long)res_get(need, i), (long long)res_get(have, i));
			return 0;
		}
	return 1;
}

/* --- schema check ------------------------------------------------------ */

static int check_int(jv o, const char *obj, const char *key, int required, char *err)
{
	jv x = jv_object_get(jv_copy(o), jv_string(key));
	int64_t n;
	int ok = num_ok(x, &n), present = jv_is_valid(x);
	jv_free(x);
	if (!present)
		return required ? nn_seterr(err, "%s.%s: missing", obj, key) : 0;
	if (!ok)
		return nn_seterr(err, "%s.%s: expected a non-negative integer", obj, key);
	return 0;
}

static int check_str(jv o, const char *obj, const char *key, char *err)
{
	jv x = jv_object_get(jv_copy(o), jv_string(key));
	int present = jv_is_valid(x), ok = jv_get_kind(x) == JV_KIND_STRING;
	jv_free(x);
	if (present && !ok)
		return nn_seterr(err, "%s%s%s: expected a string", obj, *obj ? "." : "", key);
	return 0;
}

/* o.key: absent, or an object (then *sub gets it), else error. */
static int sub_obj(jv o, const char *key, jv *sub, char *err)
{
	jv x = jv_object_get(jv_copy(o), jv_string(key));
	*sub = jv_null();
	if (!jv_is_valid(x)) {
		jv_free(x);
		return 0;
	}
	if (jv_get_kind(x) != JV_KIND_OBJECT) {
		jv_free(x);
		return nn_seterr(err, "%s: expected an object", key);
	}
	*sub = x;
	return 1;
}

static int check_strings(jv o, const char *key, char *err)
{
	jv x = jv_object_get(jv_copy(o), jv_string(key));
	int rc = 0;
	if (!jv_is_valid(x)) {
		jv_free(x);
		return 0;
	}
	if (jv_get_kind(x) != JV_KIND_ARRAY)
		rc = nn_seterr(err, "%s: expected an array of strings", key);
	else
		jv_array_foreach(x, i, e) {
			if (rc == 0 && jv_get_kind(e) != JV_KIND_STRING)
				rc = nn_seterr(err, "%s[%d]: expected a string", key, i);
			jv_free(e);
		}
	jv_free(x);
	return rc;
}

static int digits(const char *s)
{
	if (!*s || strlen(s) > 18)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

int nn_cap_check(jv doc, char *err)
{
	static const char *const cpu_ints[] = { "cores", "threads", "mhz", "millicores" };
	jv s;
	int64_t v;
	int rc = 0;

	if (jv_get_kind(doc) != JV_KIND_OBJECT)
		return nn_seterr(err, "capability: expected an object, not %s", nn_json_kind(doc));
	s = jv_object_get(jv_copy(doc), jv_string("v"));
	rc = num_ok(s, &v) && v == 1 ? 0 : nn_seterr(err, "v: expected 1");
	jv_free(s);
	if (rc < 0)
		return -1;

	switch (sub_obj(doc, "cpu", &s, err)) {
	case -1: return -1;
	case 0: return nn_seterr(err, "cpu: missing");
	}
	for (size_t i = 0; i < 4 && rc == 0; i++)
		rc = check_int(s, "cpu", cpu_ints[i], i == 0, err);
	if (rc == 0)
		rc = check_str(s, "cpu", "arch", err);
	if (rc == 0)
		rc = check_str(s, "cpu", "model", err);
	if (rc == 0 && nn_json_has(s, "score")) {
		jv sc = jv_object_get(jv_copy(s), jv_string("score"));
		if (jv_get_kind(sc) != JV_KIND_OBJECT)
			rc = nn_seterr(err, "cpu.score: expected an object");
		else if ((rc = check_int(sc, "cpu.score", "single", 0, err)) == 0)
			rc = check_int(sc, "cpu.score", "multi", 0, err);
		jv_free(sc);
	}
	jv_free(s);
	if (rc < 0)
		return -1;

	static const char *const ram_ints[] = { "size", "bandwidth" };
	static const char *const disk_ints[] = { "size", "read", "write" };
	switch (sub_obj(doc, "ram", &s, err)) {
	case -1: return -1;
	case 0: return nn_seterr(err, "ram: missing");
	}
	for (size_t i = 0; i < 2 && rc == 0; i++)
		rc = check_int(s, "ram", ram_ints[i], i == 0, err);
	jv_free(s);
	if (rc < 0)
		return -1;
	switch (sub_obj(doc, "disk", &s, err)) {
	case -1: return -1;
	case 1:
		for (size_t i = 0; i < 3 && rc == 0; i++)
			rc = check_int(s, "disk", disk_ints[i], i == 0, err);
		jv_free(s);
		if (rc < 0)
			return -1;
	}

	s = jv_object_get(jv_copy(doc), jv_string("gpus"));
	if (jv_is_valid(s)) {
		if (jv_get_kind(s) != JV_KIND_ARRAY)
			rc = nn_seterr(err, "gpus: expected an array");
		else
			jv_array_foreach(s, i, e) {
				char name[32];
				snprintf(name, sizeof name, "gpus[%d]", i);
				if (rc == 0 && jv_get_kind(e) != JV_KIND_OBJECT)
					rc = nn_seterr(err, "%s: expected an object", name);
				if (rc == 0)
					rc = check_int(e, name, "vram", 0, err);
				if (rc == 0)
					rc = check_str(e, name, "vendor", err);
				if (rc == 0)
					rc = check_str(e, name, "model", err);
				jv_free(e);
			}
	} else {
		jv_free(s);
		s = jv_null();
	}
	jv_free(s);
	if (rc < 0 || check_strings(doc, "executors", err) < 0 ||
	    check_strings(doc, "features", err) < 0 || check_str(doc, "", "kernel", err) < 0 ||
	    check_str(doc, "", "where", err) < 0 || check_str(doc, "", "did", err) < 0)
		return -1;

	switch (sub_obj(doc, "location", &s, err)) {
	case -1: return -1;
	case 1:
		if ((rc = check_str(s, "location", "continent", err)) == 0 &&
		    (rc = check_str(s, "location", "country", err)) == 0)
			rc = check_str(s, "location", "city", err);
		jv_free(s);
		if (rc < 0)
			return -1;
	}
	static const char *const rates[] = { "cpu_second", "ram_gib_second", "disk_gib", "gpu_second" };
	switch (sub_obj(doc, "price", &s, err)) {
	case -1: return -1;
	case 1:
		rc = check_str(s, "price", "currency", err);
		for (size_t i = 0; i < 4 && rc == 0; i++) {
			jv p = jv_object_get(jv_copy(s), jv_string(rates[i]));
			if (jv_is_valid(p) && (jv_get_kind(p) != JV_KIND_STRING ||
					       !digits(jv_string_value(p))))
				rc = nn_seterr(err, "price.%s: expected a string of at most 18 "
					       "digits (integer minor units)", rates[i]);
			jv_free(p);
		}
		jv_free(s);
		if (rc < 0)
			return -1;
	}
	switch (sub_obj(doc, "labels", &s, err)) {
	case -1: return -1;
	case 1:
		jv_object_foreach(s, k, val) {
			if (rc == 0 && jv_get_kind(val) != JV_KIND_STRING)
				rc = nn_seterr(err, "labels.%.64s: expected a string", jv_string_value(k));
			jv_free(k);
			jv_free(val);
		}
		jv_free(s);
		if (rc < 0)
			return -1;
	}
	return 0;
}

jv nn_cap_restrict(jv cap, const struct nn_res *r)
{
	jv cpu = jv_object_get(jv_copy(cap), jv_string("cpu"));
	jv ram = jv_object_get(jv_copy(cap), jv_string("ram"));
	jv disk = jv_object_get(jv_copy(cap), jv_string("disk"));
	jv gpus = jv_object_get(jv_copy(cap), jv_string("gpus"));
	if (jv_get_kind(cpu) != JV_KIND_OBJECT) {
		jv_free(cpu);
		cpu = jv_object();
	}
	if (jv_get_kind(ram) != JV_KIND_OBJECT) {
		jv_free(ram);
		ram = jv_object();
	}
	if (jv_get_kind(disk) != JV_KIND_OBJECT) {
		jv_free(disk);
		disk = jv_object();
	}
	cpu = jv_object_set(cpu, jv_string("cores"), jv_number((double)(r->cpu / 1000)));
	cpu = jv_object_set(cpu, jv_string("millicores"), jv_number((double)r->cpu));
	ram = jv_object_set(ram, jv_string("size"), jv_number((double)r->ram));
	disk = jv_object_set(disk, jv_string("size"), jv_number((double)r->disk));
	cap = jv_object_set(cap, jv_string("cpu"), cpu);
	cap = jv_object_set(cap, jv_string("ram"), ram);
	cap = jv_object_set(cap, jv_string("disk"), disk);
	if (jv_get_kind(gpus) == JV_KIND_ARRAY) {
		int n = jv_array_length(jv_copy(gpus));
		if (r->gpus < n)
			gpus = jv_array_slice(gpus, 0, (int)r->gpus);
		cap = jv_object_set(cap, jv_string("gpus"), gpus);
	} else {
		jv_free(gpus);
	}
	return cap;
}
