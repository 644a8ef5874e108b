/*
 * convert — Nomad jobs and Kubernetes manifests as ensembles.  Each
 * converter walks the fields it knows, builds the ensemble document with
 * the same vocabulary a user would write (sizes as bytes, durations as
 * *_ms), and reports every other field that carries a value as "not
 * converted", so nothing is dropped silently.  The result is normalized
 * (and so checked) by the caller.  The mapping tables are in
 * man/nunet-ensemble.5, CONVERSION.
 */
#include "convert.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "storage.h"

#define PATHLEN NN_JSON_PATHLEN

static jv get(jv obj, const char *key)	/* borrows obj; null when absent */
{
	jv v;
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return jv_null();
	v = jv_object_get(jv_copy(obj), jv_string(key));
	if (!jv_is_valid(v)) {
		jv_free(v);
		return jv_null();
	}
	return v;
}

static int kind(jv obj, const char *key)
{
	jv v = get(obj, key);
	int k = jv_get_kind(v);
	jv_free(v);
	return k;
}

/* A string member's text, valid while obj lives; NULL when not a string. */
static const char *str(jv obj, const char *key)
{
	jv v = get(obj, key);
	const char *s = jv_get_kind(v) == JV_KIND_STRING ? jv_string_value(v) : NULL;
	jv_free(v);
	return s;
}

static double num(jv obj, const char *key, double def)
{
	jv v = get(obj, key);
	double d = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : def;
	jv_free(v);
	return d;
}

__attribute__((format(printf, 3, 4)))
static void note(jv *notes, const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	jv n;
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
	n = jv_string_fmt("%s: not converted: %s", path, msg);
	jv_array_foreach(*notes, i, o) {	/* a group's field seen from each task */
		(void)i;
		if (jv_equal(o, jv_copy(n))) {
			jv_free(n);
			return;
		}
	}
	*notes = jv_array_append(*notes, n);
}


/* A value worth reporting when dropped: not null, false, 0, "", [] or {}. */
static int carries(jv v)
{
	switch (jv_get_kind(v)) {
	case JV_KIND_NULL: case JV_KIND_FALSE: case JV_KIND_INVALID:
		return 0;
	case JV_KIND_NUMBER:
		return jv_number_value(v) != 0;
	case JV_KIND_STRING:
		return jv_string_length_bytes(jv_copy(v)) > 0;
	case JV_KIND_ARRAY:
		return jv_array_length(jv_copy(v)) > 0;
	case JV_KIND_OBJECT:
		return jv_object_length(jv_copy(v)) > 0;
	default:
		return 1;
	}
}

struct why {
	const char *key, *why;
};

/* Every member of obj that carries a value and is not in handled (NULL-
 * terminated) is noted, with its reason from whys (or a general one). */
static void leftovers(jv obj, const char *path, const char *const *handled,
		      const struct why *whys, jv *notes)
{
	if (jv_get_kind(obj) != JV_KIND_OBJECT)
		return;
	jv keys = jv_keys(jv_copy(obj));
	jv_array_foreach(keys, i, k) {
		const char *s = jv_string_value(k);
		const char *const *h;
		jv v;
		(void)i;
		for (h = handled; *h && strcmp(*h, s); h++)
			;
		v = get(obj, s);
		if (!*h && carries(v)) {
			const char *why = "no counterpart in an ensemble";
			char p[PATHLEN];
			for (const struct why *w = whys; w && w->key; w++)
				if (!strcmp(w->key, s))
					why = w->why;
			nn_json_path_key(p, path, s);
			note(notes, p, "%s", why);
		}
		jv_free(v);
		jv_free(k);
	}
	jv_free(keys);
}

/* A name under the ensemble's rule: lowercase, other characters as '-',
 * starting with a letter or digit, at most 63; def when nothing is left. */
static void clean_name(const char *s, const char *def, char out[64])
{
	size_t n = 0;
	for (; s && *s && n < 63; s++) {
		char c = (char)tolower((unsigned char)*s);
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			out[n++] = c;
		else if (n > 0 && (c == '_' || c == '-' || c == '.' || c == ' ' || c == '/'))
			out[n++] = c == '_' ? '_' : '-';
	}
	out[n] = 0;
	if (!n)
		snprintf(out, 64, "%s", def);
}

/* The names used so far (an object), so that a second one gets a suffix. */
static jv unique_name(jv *used, const char *want)
{
	char buf[80];
	snprintf(buf, sizeof buf, "%s", want);
	for (int i = 2; jv_object_has(jv_copy(*used), jv_string(buf)); i++)
		snprintf(buf, sizeof buf, "%.56s-%d", want, i);
	*used = jv_object_set(*used, jv_string(buf), jv_true());
	return jv_string(buf);
}

static jv strings(jv a)	/* consumes a; the strings in it, others dropped */
{
	jv out = jv_array();
	if (jv_get_kind(a) == JV_KIND_ARRAY)
		jv_array_foreach(a, i, s) {
			(void)i;
			if (jv_get_kind(s) == JV_KIND_STRING)
				out = jv_array_append(out, s);
			else
				jv_free(s);
		}
	jv_free(a);
	return out;
}

static jv concat(jv a, jv b)
{
	jv_array_foreach(b, i, x) {
		(void)i;
		a = jv_array_append(a, x);
	}
	jv_free(b);
	return a;
}

/* Add clause to the where of ens ("A and B"). */
static jv add_where(jv ens, const char *clause)
{
	const char *w = str(ens, "where");
	jv nw = w ? jv_string_fmt("(%s) and (%s)", w, clause) : jv_string(clause);
	return jv_object_set(ens, jv_string("where"), nw);
}


/* ---------------------------------------------------------------- Nomad */

#define NS_PER_MS 1000000.0

/* Constraints Nomad can express and an offer can answer. */
static void nomad_constraints(jv cons, const char *path, jv *ens, jv *notes)
{
	if (jv_get_kind(cons) != JV_KIND_ARRAY) {
		jv_free(cons);
		return;
	}
	jv_array_foreach(cons, i, c) {
		char p[PATHLEN];
		const char *l = str(c, "LTarget"), *r = str(c, "RTarget"), *op = str(c, "Operand");
		nn_json_path_index(p, path, i);
		if (!op || !*op)
			op = "=";
		if (l && r && !strcmp(l, "${attr.kernel.name}") && !strcmp(op, "=") &&
		    !strcmp(r, "linux")) {
			/* every nunet node is Linux */
		} else if (l && r && !strcmp(l, "${attr.cpu.arch}") && (!strcmp(op, "=") ||
			   !strcmp(op, "=="))) {
			const char *arch = !strcmp(r, "amd64") ? "x86_64" : !strcmp(r, "arm64") ?
					   "aarch64" : r;
			char clause[160];
			snprintf(clause, sizeof clause, ".cpu.arch == \"%.64s\"", arch);
			if (strchr(arch, '"') || strchr(arch, '\\'))
				note(notes, p, "odd architecture");
			else
				*ens = add_where(*ens, clause);
		} else {
			note(notes, p, "constraint %.64s %.16s %.64s has no counterpart in a capability document",
			     l ? l : "?", op, r ? r : "?");
		}
		jv_free(c);
	}
	jv_free(cons);
}

/* Group networks: port label -> number (ReservedPorts Value, DynamicPorts To). */
static jv nomad_ports(jv group, const char *gpath, jv *notes)
{
	jv labels = jv_object(), nets = get(group, "Networks");
	if (jv_get_kind(nets) == JV_KIND_ARRAY)
		jv_array_foreach(nets, i, net) {
			for (int d = 0; d < 2; d++) {
				jv ports = get(net, d ? "DynamicPorts" : "ReservedPorts");
				if (jv_get_kind(ports) == JV_KIND_ARRAY)
					jv_array_foreach(ports, j, pt) {
						char p[PATHLEN], q[PATHLEN];
						const char *label = str(pt, "Label");
						double v = d ? num(pt, "To", 0) : num(pt, "Value", 0);
						nn_json_path_key(p, gpath, "Networks");
						nn_json_path_index(q, p, i);
						nn_json_path_key(p, q, d ? "DynamicPorts" : "ReservedPorts");
						strcpy(q, p);
						nn_json_path_index(p, q, j);
						if (label && v >= 1 && v <= 65535 && v == floor(v))
							labels = jv_object_set(labels, jv_string(label),
									       jv_number(v));
						else
							note(notes, p, "a dynamic port without a fixed 'To' port");
						jv_free(pt);
					}
				jv_free(ports);
			}
			jv_free(net);
		}
	jv_free(nets);
	return labels;
}

/* The first check of the services: a healthcheck, or null. */
static jv nomad_check(jv services, const char *path, jv labels, jv *notes)
{
	jv hc = jv_null();
	if (jv_get_kind(services) != JV_KIND_ARRAY) {
		jv_free(services);
		return hc;
	}
	jv_array_foreach(services, i, svc) {
		jv checks = get(svc, "Checks");
		char sp[PATHLEN], cp[PATHLEN], p[PATHLEN];
		nn_json_path_index(sp, path, i);
		nn_json_path_key(cp, sp, "Checks");
		if (jv_get_kind(checks) == JV_KIND_ARRAY)
			jv_array_foreach(checks, j, ck) {
				const char *type = str(ck, "Type");
				nn_json_path_index(p, cp, j);
				if (jv_is_valid(hc) && jv_get_kind(hc) != JV_KIND_NULL) {
					note(notes, p, "an allocation has one health check (the first is kept)");
				} else if (type && !strcmp(type, "http")) {
					const char *label = str(ck, "PortLabel");
					const char *ppath = str(ck, "Path");
					jv port;
					if (!label)
						label = str(svc, "PortLabel");
					port = label ? get(labels, label) : jv_null();
					int pn = jv_get_kind(port) == JV_KIND_NUMBER ?
						 (int)jv_number_value(port) :
						 label && label[0] >= '1' && label[0] <= '9' ? atoi(label) : 0;
					if (pn >= 1 && pn <= 65535) {
						jv_free(hc);
						hc = jv_object_set(jv_object(), jv_string("http"),
							jv_string_fmt("http://127.0.0.1:%d%s%.200s", pn,
								      ppath && ppath[0] == '/' ? "" : "/",
								      ppath ? ppath : ""));
					} else {
						note(notes, p, "http check on port '%.64s', which has no fixed number",
						     label ? label : "");
					}
					jv_free(port);
				} else if (type && !strcmp(type, "script") && str(ck, "Command")) {
					jv_free(hc);
					hc = jv_object_set(jv_object(), jv_string("cmd"),
						concat(JV_ARRAY(jv_string(str(ck, "Command"))),
						       strings(get(ck, "Args"))));
				} else {
					note(notes, p, "%.16s checks are not supported (http and script are)",
					     type ? type : "untyped");
				}
				if (jv_get_kind(hc) == JV_KIND_OBJECT && !jv_object_has(jv_copy(hc),
				    jv_string("interval_ms"))) {
					if (num(ck, "Interval", 0) > 0)
						hc = jv_object_set(hc, jv_string("interval_ms"), jv_number(
							fmax(10, ceil(num(ck, "Interval", 0) / NS_PER_MS))));
					if (num(ck, "Timeout", 0) > 0)
						hc = jv_object_set(hc, jv_string("timeout_ms"), jv_number(
							ceil(num(ck, "Timeout", 0) / NS_PER_MS)));
				}
				jv_free(ck);
			}
		jv_free(checks);
		jv_free(svc);
	}
	jv_free(services);
	return hc;
}

static jv nomad_restart(jv rp, const char *path, int batch, jv *notes)
{
	jv r = jv_object();
	double attempts = num(rp, "Attempts", -1);
	const char *mode = str(rp, "Mode");
	char p[PATHLEN];
	if (jv_get_kind(rp) != JV_KIND_OBJECT) {
		jv_free(rp);
		jv_free(r);
		return jv_null();
	}
	if (attempts == 0) {
		r = jv_object_set(r, jv_string("policy"), jv_string("never"));
	} else {
		r = jv_object_set(r, jv_string("policy"), jv_string(batch ? "on-failure" : "always"));
		if (attempts > 0 && attempts == floor(attempts) && attempts <= 1000000)
			r = jv_object_set(r, jv_string("intensity"), jv_number(attempts));
	}
	if (num(rp, "Interval", 0) >= NS_PER_MS)
		r = jv_object_set(r, jv_string("period_ms"),
				  jv_number(floor(num(rp, "Interval", 0) / NS_PER_MS)));
	if (mode && !strcmp(mode, "delay")) {
		nn_json_path_key(p, path, "Mode");
		note(notes, p, "mode delay: restarts past the intensity escalate to the parent instead");
	}
	if (num(rp, "Delay", 0) > 0) {
		nn_json_path_key(p, path, "Delay");
		note(notes, p, "restarts are not delayed");
	}
	jv_free(rp);
	return r;
}

static const struct why nomad_whys[] = {
	{ "Templates", "templates are not supported" },
	{ "Vault", "Vault is not supported" },
	{ "Volumes", "volumes are not supported" },
	{ "VolumeMounts", "volumes are not supported" },
	{ "Datacenters", "there are no datacenters (use a node group's location)" },
	{ "Affinities", "affinities are not supported (use rank)" },
	{ "Spreads", "spreads are not supported" },
	{ "Update", "rolling updates are not supported" },
	{ "Migrate", "migration is not supported" },
	{ "Periodic", "periodic jobs are not supported" },
	{ "ParameterizedJob", "parameterized jobs are not supported" },
	{ "KillTimeout", "the grace period is the node's" },
	{ "LogConfig", "log rotation is the node's" },
	{ "User", "jobs run as the node's user" },
	{ NULL, NULL }
};

static const char *const nomad_job_keys[] = {
	"ID", "Name", "Type", "TaskGroups", "Constraints", "Region", "Namespace", "Priority",
	"AllAtOnce", "Status", "StatusDescription", "Stable", "Stop", "Version", "SubmitTime",
	"CreateIndex", "ModifyIndex", "JobModifyIndex", "Dispatched", "ParentID", "Meta", NULL
};
static const char *const nomad_group_keys[] = {
	"Name", "Count", "Tasks", "Constraints", "RestartPolicy", "ReschedulePolicy", "Networks",
	"Services", "EphemeralDisk", "Meta", NULL
};
static const char *const nomad_task_keys[] = {
	"Name", "Driver", "Config", "Env", "Resources", "RestartPolicy", "Services", "Artifacts",
	"Lifecycle", "Constraints", "Leader", "Meta", NULL
};

static jv nomad_task(jv task, const char *path, jv group, const char *gpath, jv labels,
		     int batch, jv *ens, jv *notes)
{
	jv a = jv_object(), cfg = get(task, "Config"), res = get(task, "Resources"), v;
	jv lc = get(task, "Lifecycle");
	const char *driver = str(task, "Driver");
	const char *hook = str(lc, "Hook");
	/* a prestart task runs before the others: the group's ports and
	 * checks are theirs */
	int pre = hook && !strcmp(hook, "prestart") && kind(lc, "Sidecar") != JV_KIND_TRUE;
	char p[PATHLEN];

	jv_free(lc);
	nn_json_path_key(p, path, "Driver");
	if (!driver || (strcmp(driver, "exec") && strcmp(driver, "raw_exec") &&
			strcmp(driver, "docker") && strcmp(driver, "podman"))) {
		note(notes, p, "driver '%.32s' (exec, raw_exec, docker and podman are converted)",
		     driver ? driver : "");
		jv_free(cfg);
		jv_free(res);
		jv_free(a);
		return jv_invalid();
	}
	a = jv_object_set(a, jv_string("type"), jv_string(batch ? "task" : "service"));
	if (!strcmp(driver, "docker") || !strcmp(driver, "podman")) {
		static const char *const ck[] = { "image", "command", "args", "ports", NULL };
		a = jv_object_set(a, jv_string("executor"), jv_string("docker"));
		if (str(cfg, "image"))
			a = jv_object_set(a, jv_string("image"), jv_string(str(cfg, "image")));
		nn_json_path_key(p, path, "Config");
		leftovers(cfg, p, ck, NULL, notes);
		if (!str(cfg, "command") && kind(cfg, "args") == JV_KIND_ARRAY) {
			char q[PATHLEN];
			nn_json_path_key(q, p, "args");
			note(notes, q, "args without command need the image's entrypoint, which an ensemble replaces (give command)");
		}
	} else {
		static const char *const ck[] = { "command", "args", NULL };
		a = jv_object_set(a, jv_string("executor"), jv_string("native"));
		nn_json_path_key(p, path, "Config");
		leftovers(cfg, p, ck, NULL, notes);
	}
	if (str(cfg, "command"))
		a = jv_object_set(a, jv_string("command"),
				  concat(JV_ARRAY(jv_string(str(cfg, "command"))),
					 strings(get(cfg, "args"))));

	/* resources: CPU in MHz at 1000 MHz a core; Cores as cores */
	{
		jv r = jv_object();
		double mhz = num(res, "CPU", 0), cores = num(res, "Cores", 0);
		if (cores >= 1)
			r = jv_object_set(r, jv_string("cpu"), jv_number(floor(cores)));
		else if (mhz > 0)
			r = jv_object_set(r, jv_string("cpu"), jv_number(ceil(mhz) / 1000));
		if (num(res, "MemoryMB", 0) >= 1)
			r = jv_object_set(r, jv_string("ram"),
					  jv_number(floor(num(res, "MemoryMB", 0)) * 1048576));
		if (num(res, "MemoryMaxMB", 0) > 0) {
			nn_json_path_key(p, path, "Resources.MemoryMaxMB");
			note(notes, p, "memory is reserved, not oversubscribed (MemoryMB is kept)");
		}
		v = get(res, "Devices");
		if (jv_get_kind(v) == JV_KIND_ARRAY)
			jv_array_foreach(v, i, dev) {
				const char *dn = str(dev, "Name");
				if (dn && strstr(dn, "gpu"))
					r = jv_object_set(r, jv_string("gpus"),
							  jv_number(num(dev, "Count", 1)));
				else {
					char q[PATHLEN];
					nn_json_path_index(q, "Resources.Devices", i);
					nn_json_path_key(p, path, q);
					note(notes, p, "devices other than GPUs");
				}
				jv_free(dev);
			}
		jv_free(v);
		v = get(group, "EphemeralDisk");
		if (num(v, "SizeMB", 0) >= 1)
			r = jv_object_set(r, jv_string("disk"),
					  jv_number(floor(num(v, "SizeMB", 0)) * 1048576));
		jv_free(v);
		a = jv_object_set(a, jv_string("resources"), r);
		{
			static const char *const rk[] = { "CPU", "Cores", "MemoryMB", "MemoryMaxMB",
							  "Devices", "DiskMB", "IOPS", NULL };
			nn_json_path_key(p, path, "Resources");
			leftovers(res, p, rk, NULL, notes);
		}
	}
	v = get(task, "Env");
	if (jv_get_kind(v) == JV_KIND_OBJECT)
		a = jv_object_set(a, jv_string("env"), v);
	else
		jv_free(v);

	/* ports: those of the group the docker config names, else all */
	{
		jv ports = jv_array(), want = strings(get(cfg, "ports"));
		int all = jv_array_length(jv_copy(want)) == 0 && !pre;
		jv_object_foreach(labels, k, n) {
			int use = all;
			jv_array_foreach(want, i, w) {
				(void)i;
				if (jv_equal(w, jv_copy(k)))
					use = 1;
			}
			if (use) {
				char nm[64];
				clean_name(jv_string_value(k), "port", nm);
				ports = jv_array_append(ports, jv_object_set(jv_object_set(jv_object(),
					jv_string("name"), jv_string(nm)), jv_string("port"), jv_copy(n)));
			}
			jv_free(k);
			jv_free(n);
		}
		jv_free(want);
		a = jv_object_set(a, jv_string("ports"), ports);
	}

	/* restart: the task's policy, else the group's */
	v = get(task, "RestartPolicy");
	if (jv_get_kind(v) == JV_KIND_OBJECT) {
		nn_json_path_key(p, path, "RestartPolicy");
	} else {
		jv_free(v);
		v = get(group, "RestartPolicy");
		nn_json_path_key(p, gpath, "RestartPolicy");
	}
	v = nomad_restart(v, p, batch, notes);
	if (jv_get_kind(v) == JV_KIND_OBJECT)
		a = jv_object_set(a, jv_string("restart"), v);
	else
		jv_free(v);
	v = get(group, "ReschedulePolicy");
	if (batch && num(v, "Attempts", 0) >= 1)
		a = jv_object_set(a, jv_string("retries"),
				  jv_number(fmin(floor(num(v, "Attempts", 0)), 1000)));
	jv_free(v);

	/* health: the task's services, else the group's */
	nn_json_path_key(p, path, "Services");
	v = nomad_check(get(task, "Services"), p, labels, notes);
	if (jv_get_kind(v) == JV_KIND_NULL && !pre) {
		nn_json_path_key(p, gpath, "Services");
		v = nomad_check(get(group, "Services"), p, labels, notes);
	}
	a = jv_object_set(a, jv_string("healthcheck"), v);

	/* artifacts: inputs into their destination directory */
	v = get(task, "Artifacts");
	if (jv_get_kind(v) == JV_KIND_ARRAY) {
		jv inputs = jv_array();
		jv_array_foreach(v, i, art) {
			const char *src = str(art, "GetterSource");
			const char *dest = str(art, "RelativeDest");
			char q[PATHLEN];
			nn_json_path_index(q, "Artifacts", i);
			nn_json_path_key(p, path, q);
			if (src && nn_storage_supported(src) && !strchr(src, '?')) {
				const char *base = strrchr(src, '/');
				base = base && base[1] ? base + 1 : "artifact";
				inputs = jv_array_append(inputs, jv_object_set(jv_object_set(jv_object(),
					jv_string("url"), jv_string(src)), jv_string("path"),
					jv_string_fmt("%s%s%.128s", dest ? dest : "local/",
						      dest && *dest && dest[strlen(dest) - 1] != '/' ? "/" : "",
						      base)));
			} else {
				note(notes, p, "source '%.80s' (file, http(s), s3 and git URLs without go-getter options are converted)",
				     src ? src : "");
			}
			jv_free(art);
		}
		a = jv_object_set(a, jv_string("inputs"), inputs);
	}
	jv_free(v);

	nn_json_path_key(p, path, "Constraints");
	nomad_constraints(get(task, "Constraints"), p, ens, notes);
	leftovers(task, path, nomad_task_keys, nomad_whys, notes);
	jv_free(cfg);
	jv_free(res);
	return a;
}

jv nn_convert_nomad(jv doc, jv *notes, char *err)
{
	jv job, groups, ens = jv_object(), allocs = jv_object(), nodes = jv_object();
	jv used = jv_object();
	const char *type;
	char nm[64];
	int batch;

	if (jv_get_kind(doc) == JV_KIND_OBJECT && kind(doc, "Job") == JV_KIND_OBJECT) {
		job = get(doc, "Job");
		jv_free(doc);
	} else {
		job = doc;
	}
	if (kind(job, "TaskGroups") != JV_KIND_ARRAY) {
		jv_free(job);
		jv_free(ens);
		jv_free(allocs);
		jv_free(nodes);
		jv_free(used);
		nn_seterr(err, "not a Nomad job: expected {\"Job\":{...,\"TaskGroups\":[...]}}, the API form 'nomad job run -output' prints");
		return jv_invalid();
	}
	type = str(job, "Type");
	batch = type && (!strcmp(type, "batch") || !strcmp(type, "sysbatch"));
	if (type && (!strcmp(type, "system") || !strcmp(type, "sysbatch")))
		note(notes, "Job.Type", "%s jobs run on every client; converted as one placement", type);
	clean_name(str(job, "Name") ? str(job, "Name") : str(job, "ID"), "nomad-job", nm);
	ens = jv_object_set(ens, jv_string("name"), jv_string(nm));
	nomad_constraints(get(job, "Constraints"), "Job.Constraints", &ens, notes);

	groups = get(job, "TaskGroups");
	jv_array_foreach(groups, gi, group) {
		char gpath[PATHLEN], p[PATHLEN], gname[64];
		jv labels, tasks, members = jv_array(), prestart = jv_array(), gnode, gn;
		double count = num(group, "Count", 1);
		snprintf(gpath, sizeof gpath, "Job.TaskGroups[%d]", gi);
		clean_name(str(group, "Name"), "group", gname);
		gn = unique_name(&used, gname);
		labels = nomad_ports(group, gpath, notes);
		nn_json_path_key(p, gpath, "Constraints");
		nomad_constraints(get(group, "Constraints"), p, &ens, notes);
		tasks = get(group, "Tasks");
		if (jv_get_kind(tasks) == JV_KIND_ARRAY)
			jv_array_foreach(tasks, ti, task) {
				char tpath[PATHLEN], tname[64];
				jv a, an;
				const char *hook;
				nn_json_path_key(p, gpath, "Tasks");
				nn_json_path_index(tpath, p, ti);
				a = nomad_task(task, tpath, group, gpath, labels, batch, &ens, notes);
				if (!jv_is_valid(a)) {
					jv_free(task);
					continue;
				}
				clean_name(str(task, "Name"), "task", tname);
				an = unique_name(&used, tname);
				hook = NULL;
				{
					jv lc = get(task, "Lifecycle");
					hook = str(lc, "Hook");
					if (hook && !strcmp(hook, "prestart") &&
					    !(kind(lc, "Sidecar") == JV_KIND_TRUE)) {
						prestart = jv_array_append(prestart, jv_copy(an));
						a = jv_object_set(a, jv_string("type"), jv_string("task"));
						a = jv_object_set(a, jv_string("restart"), jv_object_set(
							jv_object(), jv_string("policy"), jv_string("on-failure")));
					} else if (hook) {
						char q[PATHLEN];
						nn_json_path_key(q, tpath, "Lifecycle");
						note(notes, q, "%.16s%s hooks are not supported",
						     hook, kind(lc, "Sidecar") == JV_KIND_TRUE ? " sidecar" : "");
					}
					jv_free(lc);
				}
				allocs = jv_object_set(allocs, jv_copy(an), a);
				members = jv_array_append(members, an);
				jv_free(task);
			}
		jv_free(tasks);
		/* the group's other tasks start after its prestart tasks */
		jv_array_foreach(members, i, m) {
			jv a = jv_object_get(jv_copy(allocs), jv_copy(m));
			int is_pre = 0;
			(void)i;
			jv_array_foreach(prestart, j, ps) {
				(void)j;
				if (jv_equal(ps, jv_copy(m)))
					is_pre = 1;
			}
			if (!is_pre && jv_array_length(jv_copy(prestart)) > 0)
				a = jv_object_set(a, jv_string("depends_on"), jv_copy(prestart));
			allocs = jv_object_set(allocs, m, a);
		}
		if (jv_array_length(jv_copy(members)) > 0) {
			gnode = jv_object_set(jv_object(), jv_string("allocations"), members);
			if (count > 1 && count <= 100 && count == floor(count))
				gnode = jv_object_set(gnode, jv_string("redundancy"), jv_number(count));
			else if (count > 100 || count < 0 || count != floor(count)) {
				nn_json_path_key(p, gpath, "Count");
				note(notes, p, "a count of %g (redundancy is 1 to 100)", count);
			}
			if (count == 0) {
				nn_json_path_key(p, gpath, "Count");
				note(notes, p, "a count of 0 is converted as 1");
			}
			nodes = jv_object_set(nodes, gn, gnode);
		} else {
			jv_free(members);
			jv_free(gn);
		}
		jv_free(prestart);
		jv_free(labels);
		leftovers(group, gpath, nomad_group_keys, nomad_whys, notes);
		jv_free(group);
	}
	jv_free(groups);
	leftovers(job, "Job", nomad_job_keys, nomad_whys, notes);
	jv_free(job);
	jv_free(used);
	if (jv_object_length(jv_copy(allocs)) == 0) {
		jv_free(ens);
		jv_free(allocs);
		jv_free(nodes);
		nn_seterr(err, "nothing to convert: no task with a supported driver");
		return jv_invalid();
	}
	ens = jv_object_set(ens, jv_string("allocations"), allocs);
	ens = jv_object_set(ens, jv_string("nodes"), nodes);
	return ens;
}

/* ----------------------------------------------------------- Kubernetes */

/* A quantity ("500m", "0.5", "512Mi", "1G", "129e6", or a number) in base
 * units; -1 when it is not one. */
static int quantity(jv v, double *out)
{
	static const struct { const char *sfx; double mul; } sfx[] = {
		{ "", 1 }, { "m", 1e-3 }, { "k", 1e3 }, { "M", 1e6 }, { "G", 1e9 }, { "T", 1e12 },
		{ "P", 1e15 }, { "E", 1e18 }, { "Ki", 1024.0 }, { "Mi", 1048576.0 },
		{ "Gi", 1073741824.0 }, { "Ti", 1099511627776.0 }, { "Pi", 1125899906842624.0 },
		{ "Ei", 1152921504606846976.0 },
	};
	const char *s;
	char *end;
	double d;

	if (jv_get_kind(v) == JV_KIND_NUMBER) {
		*out = jv_number_value(v);
		return isfinite(*out) && *out >= 0 ? 0 : -1;
	}
	if (jv_get_kind(v) != JV_KIND_STRING)
		return -1;
	s = jv_string_value(v);
	if (!(s[0] >= '0' && s[0] <= '9') && s[0] != '.')
		return -1;
	d = strtod(s, &end);
	for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++)
		if (!strcmp(end, sfx[i].sfx)) {
			*out = d * sfx[i].mul;
			return isfinite(*out) && *out >= 0 ? 0 : -1;
		}
	return -1;
}

static const struct why k8s_whys[] = {
	{ "volumes", "volumes are not supported" },
	{ "volumeMounts", "volumes are not supported" },
	{ "nodeSelector", "node labels are not capabilities (use where)" },
	{ "affinity", "affinities are not supported (use where and rank)" },
	{ "tolerations", "taints and tolerations are not supported" },
	{ "readinessProbe", "an allocation has one health check (livenessProbe is converted)" },
	{ "startupProbe", "an allocation has one health check (livenessProbe is converted)" },
	{ "workingDir", "the working directory is relative to the allocation directory" },
	{ "envFrom", "config maps and secrets are not supported" },
	{ "securityContext", "jobs run as the node decides" },
	{ "serviceAccountName", "service accounts are not supported" },
	{ "imagePullSecrets", "registry credentials are the node's" },
	{ "hostNetwork", "the network is the executor's" },
	{ "completions", "a job runs once per placement (use redundancy)" },
	{ "parallelism", "a job runs once per placement (use redundancy)" },
	{ "strategy", "rolling updates are not supported" },
	{ NULL, NULL }
};

static jv k8s_container(jv c, const char *path, int init, jv *notes)
{
	static const char *const keys[] = {
		"name", "image", "command", "args", "env", "ports", "resources", "livenessProbe",
		"imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy", NULL
	};
	jv a = jv_object(), v, portmap = jv_object();
	char p[PATHLEN];

	a = jv_object_set(a, jv_string("executor"), jv_string("docker"));
	if (str(c, "image"))
		a = jv_object_set(a, jv_string("image"), jv_string(str(c, "image")));
	if (kind(c, "command") == JV_KIND_ARRAY) {
		a = jv_object_set(a, jv_string("command"),
				  concat(strings(get(c, "command")), strings(get(c, "args"))));
	} else if (kind(c, "args") == JV_KIND_ARRAY) {
		nn_json_path_key(p, path, "args");
		note(notes, p, "args without command need the image's entrypoint, which an ensemble replaces (give command)");
	}

	/* resources: requests (what is reserved), else limits */
	v = get(c, "resources");
	{
		jv req = get(v, "requests"), lim = get(v, "limits"), r = jv_object();
		static const char *const rk[] = { "cpu", "memory", "ephemeral-storage", "nvidia.com/gpu",
						  "amd.com/gpu", NULL };
		double q;
		for (int i = 0; rk[i]; i++) {
			jv x = get(req, rk[i]), y = get(lim, rk[i]);
			const char *from = "requests";
			double qy;
			if (jv_get_kind(x) != JV_KIND_NULL && jv_get_kind(y) != JV_KIND_NULL &&
			    quantity(x, &q) == 0 && quantity(y, &qy) == 0 && qy > q) {
				char q1[PATHLEN];
				nn_json_path_key(q1, path, "resources.limits");
				nn_json_path_key(p, q1, rk[i]);
				note(notes, p, "above the request: the allocation reserves its request");
			}
			jv_free(y);
			if (jv_get_kind(x) == JV_KIND_NULL) {
				jv_free(x);
				x = get(lim, rk[i]);
				from = "limits";
			}
			if (jv_get_kind(x) != JV_KIND_NULL) {
				char q1[PATHLEN];
				nn_json_path_key(q1, path, "resources");
				nn_json_path_key(p, q1, from);
				nn_json_path_key(q1, p, rk[i]);
				if (quantity(x, &q) < 0 || q <= 0) {
					note(notes, q1, "not a quantity");
				} else if (i == 0) {
					r = jv_object_set(r, jv_string("cpu"), jv_number(ceil(q * 1000) / 1000));
				} else if (i == 1 || i == 2) {
					r = jv_object_set(r, jv_string(i == 1 ? "ram" : "disk"),
							  jv_number(ceil(q)));
				} else {
					r = jv_object_set(r, jv_string("gpus"), jv_number(ceil(q)));
				}
			}
			jv_free(x);
		}
		{
			char q1[PATHLEN];
			nn_json_path_key(q1, path, "resources");
			nn_json_path_key(p, q1, "requests");
			leftovers(req, p, rk, NULL, notes);
			nn_json_path_key(p, q1, "limits");
			leftovers(lim, p, rk, NULL, notes);
		}
		jv_free(req);
		jv_free(lim);
		a = jv_object_set(a, jv_string("resources"), r);
	}
	jv_free(v);

	v = get(c, "env");
	if (jv_get_kind(v) == JV_KIND_ARRAY) {
		jv env = jv_object();
		jv_array_foreach(v, i, e) {
			const char *n = str(e, "name"), *val = str(e, "value");
			char q[PATHLEN];
			nn_json_path_index(q, "env", i);
			nn_json_path_key(p, path, q);
			if (n && kind(e, "valueFrom") != JV_KIND_NULL)
				note(notes, p, "valueFrom (secrets, config maps, fields) is not supported");
			else if (n)
				env = jv_object_set(env, jv_string(n), jv_string(val ? val : ""));
			jv_free(e);
		}
		a = jv_object_set(a, jv_string("env"), env);
	}
	jv_free(v);

	v = get(c, "ports");
	if (jv_get_kind(v) == JV_KIND_ARRAY) {
		jv ports = jv_array();
		jv_array_foreach(v, i, pt) {
			double n = num(pt, "containerPort", 0);
			const char *proto = str(pt, "protocol"), *pn = str(pt, "name");
			char q[PATHLEN];
			nn_json_path_index(q, "ports", i);
			nn_json_path_key(p, path, q);
			if (proto && strcasecmp(proto, "tcp") && strcasecmp(proto, "udp")) {
				note(notes, p, "protocol %.16s (tcp and udp are)", proto);
			} else if (n >= 1 && n <= 65535 && n == floor(n)) {
				jv o = jv_object_set(jv_object(), jv_string("port"), jv_number(n));
				o = jv_object_set(o, jv_string("protocol"),
						  jv_string(proto && !strcasecmp(proto, "udp") ? "udp" : "tcp"));
				if (pn) {
					char nm[64];
					clean_name(pn, "port", nm);
					o = jv_object_set(o, jv_string("name"), jv_string(nm));
					portmap = jv_object_set(portmap, jv_string(pn), jv_number(n));
				}
				ports = jv_array_append(ports, o);
			} else {
				note(notes, p, "no containerPort");
			}
			if (kind(pt, "hostPort") != JV_KIND_NULL) {
				char q2[PATHLEN];
				nn_json_path_key(q2, p, "hostPort");
				note(notes, q2, "ports are the executor's to publish");
			}
			jv_free(pt);
		}
		a = jv_object_set(a, jv_string("ports"), ports);
	}
	jv_free(v);

	v = get(c, "livenessProbe");
	if (jv_get_kind(v) == JV_KIND_OBJECT && !init) {
		jv hc = jv_null(), hg = get(v, "httpGet"), ex = get(v, "exec");
		nn_json_path_key(p, path, "livenessProbe");
		if (kind(ex, "command") == JV_KIND_ARRAY) {
			hc = jv_object_set(jv_object(), jv_string("cmd"), strings(get(ex, "command")));
		} else if (jv_get_kind(hg) == JV_KIND_OBJECT) {
			jv port = get(hg, "port");
			const char *hp = str(hg, "path"), *host = str(hg, "host"), *scheme = str(hg, "scheme");
			if (jv_get_kind(port) == JV_KIND_STRING) {
				jv n = get(portmap, jv_string_value(port));
				jv_free(port);
				port = n;
			}
			if (jv_get_kind(port) == JV_KIND_NUMBER)
				hc = jv_object_set(jv_object(), jv_string("http"),
					jv_string_fmt("%s://%.128s:%d%s%.200s",
						      scheme && !strcasecmp(scheme, "https") ? "https" : "http",
						      host ? host : "127.0.0.1", (int)jv_number_value(port),
						      hp && hp[0] == '/' ? "" : "/", hp ? hp : ""));
			else
				note(notes, p, "httpGet on a port that is not a number or a named container port");
			jv_free(port);
		} else {
			note(notes, p, "only exec and httpGet probes are supported");
		}
		if (jv_get_kind(hc) == JV_KIND_OBJECT) {
			if (num(v, "periodSeconds", 0) > 0)
				hc = jv_object_set(hc, jv_string("interval_ms"),
						   jv_number(num(v, "periodSeconds", 0) * 1000));
			if (num(v, "timeoutSeconds", 0) > 0)
				hc = jv_object_set(hc, jv_string("timeout_ms"),
						   jv_number(num(v, "timeoutSeconds", 0) * 1000));
			if (num(v, "failureThreshold", 0) >= 1)
				hc = jv_object_set(hc, jv_string("retries"),
						   jv_number(num(v, "failureThreshold", 0)));
			if (num(v, "initialDelaySeconds", 0) > 0) {
				char q[PATHLEN];
				nn_json_path_key(q, p, "initialDelaySeconds");
				note(notes, q, "checks start with the allocation");
			}
		}
		a = jv_object_set(a, jv_string("healthcheck"), hc);
		jv_free(hg);
		jv_free(ex);
	}
	jv_free(v);
	jv_free(portmap);
	leftovers(c, path, keys, k8s_whys, notes);
	return a;
}

jv nn_convert_kubernetes(jv doc, jv *notes, char *err)
{
	static const char *const pod_keys[] = {
		"containers", "initContainers", "restartPolicy", "terminationGracePeriodSeconds",
		"dnsPolicy", "schedulerName", NULL
	};
	const char *k = str(doc, "kind"), *policy, *type;
	jv ens = jv_object(), allocs = jv_object(), members = jv_array(), inits = jv_array();
	jv meta = get(doc, "metadata"), spec = get(doc, "spec"), pod, top, used = jv_object(), v;
	char name[64], podpath[64], p[PATHLEN];
	double redundancy = 1;

	if (!k || (strcmp(k, "Pod") && strcmp(k, "Job") && strcmp(k, "Deployment"))) {
		if (k)
			nn_seterr(err, "not a Kubernetes Pod, Job or Deployment (kind %.64s)", k);
		else
			nn_seterr(err, "not a Kubernetes manifest (no kind)");
		goto fail;
	}
	if (!strcmp(k, "Pod")) {
		pod = jv_copy(spec);
		snprintf(podpath, sizeof podpath, "spec");
	} else {
		jv tmpl = get(spec, "template");
		pod = get(tmpl, "spec");
		jv_free(tmpl);
		snprintf(podpath, sizeof podpath, "spec.template.spec");
	}
	if (kind(pod, "containers") != JV_KIND_ARRAY) {
		nn_seterr(err, "%s.containers: missing: not a %s manifest", podpath, k);
		jv_free(pod);
		goto fail;
	}
	clean_name(str(meta, "name"), "pod", name);
	ens = jv_object_set(ens, jv_string("name"), jv_string(name));

	policy = str(pod, "restartPolicy");
	if (!strcmp(k, "Job"))
		type = "task";
	else if (!strcmp(k, "Pod") && policy && strcmp(policy, "Always"))
		type = "task";
	else
		type = "service";

	/* init containers run first, in order, each after the one before */
	for (int w = 0; w < 2; w++) {
		const char *key = w ? "containers" : "initContainers";
		jv list = get(pod, key);
		if (jv_get_kind(list) == JV_KIND_ARRAY)
			jv_array_foreach(list, i, c) {
				char cpath[PATHLEN], nm[64];
				jv a, an;
				nn_json_path_key(p, podpath, key);
				nn_json_path_index(cpath, p, i);
				a = k8s_container(c, cpath, !w, notes);
				clean_name(str(c, "name"), w ? "container" : "init", nm);
				an = unique_name(&used, nm);
				if (!w) {
					a = jv_object_set(a, jv_string("type"), jv_string("task"));
					a = jv_object_set(a, jv_string("restart"), jv_object_set(jv_object(),
						jv_string("policy"), jv_string("on-failure")));
					if (jv_array_length(jv_copy(inits)) > 0)
						a = jv_object_set(a, jv_string("depends_on"), JV_ARRAY(
							jv_array_get(jv_copy(inits), jv_array_length(jv_copy(inits)) - 1)));
					inits = jv_array_append(inits, jv_copy(an));
				} else {
					const char *rp = !policy ? NULL : !strcmp(policy, "Always") ? "always" :
							 !strcmp(policy, "OnFailure") ? "on-failure" :
							 !strcmp(policy, "Never") ? "never" : NULL;
					a = jv_object_set(a, jv_string("type"), jv_string(type));
					if (rp)
						a = jv_object_set(a, jv_string("restart"), jv_object_set(
							jv_object(), jv_string("policy"), jv_string(rp)));
					if (jv_array_length(jv_copy(inits)) > 0)
						a = jv_object_set(a, jv_string("depends_on"), jv_copy(inits));
				}
				allocs = jv_object_set(allocs, jv_copy(an), a);
				members = jv_array_append(members, an);
				jv_free(c);
			}
		jv_free(list);
	}
	if (policy && strcmp(policy, "Always") && strcmp(policy, "OnFailure") && strcmp(policy, "Never")) {
		nn_json_path_key(p, podpath, "restartPolicy");
		note(notes, p, "unknown policy %.32s", policy);
	}
	leftovers(pod, podpath, pod_keys, k8s_whys, notes);
	jv_free(pod);

	if (!strcmp(k, "Job")) {
		static const char *const jk[] = { "template", "backoffLimit", "activeDeadlineSeconds",
						  "selector", "manualSelector", NULL };
		double bl = num(spec, "backoffLimit", 6);
		if (num(spec, "activeDeadlineSeconds", 0) > 0)
			jv_object_foreach(allocs, an, a) {
				a = jv_object_set(a, jv_string("timeout_ms"),
						  jv_number(num(spec, "activeDeadlineSeconds", 0) * 1000));
				allocs = jv_object_set(allocs, an, a);
			}
		if (policy && !strcmp(policy, "OnFailure") && bl == floor(bl) && bl >= 0 && bl <= 1000000) {
			jv_object_foreach(allocs, an, a) {
				jv r = get(a, "restart");
				if (!str(r, "policy") || !strcmp(str(r, "policy"), "on-failure"))
					r = jv_object_set(r, jv_string("intensity"), jv_number(bl));
				a = jv_object_set(a, jv_string("restart"), r);
				allocs = jv_object_set(allocs, an, a);
			}
		} else if (kind(spec, "backoffLimit") != JV_KIND_NULL) {
			note(notes, "spec.backoffLimit", "a failed task is not started again (retries count redeploys after a lost node)");
		}
		if (num(spec, "completions", 1) > 1)
			note(notes, "spec.completions", "a job runs once per placement (use redundancy)");
		if (num(spec, "parallelism", 1) > 1)
			note(notes, "spec.parallelism", "a job runs once per placement (use redundancy)");
		{
			static const char *const jk2[] = { "template", "backoffLimit", "activeDeadlineSeconds",
							   "selector", "manualSelector", "completions",
							   "parallelism", NULL };
			(void)jk;
			leftovers(spec, "spec", jk2, k8s_whys, notes);
		}
	} else if (!strcmp(k, "Deployment")) {
		static const char *const dk[] = { "template", "replicas", "selector", NULL };
		redundancy = num(spec, "replicas", 1);
		if (redundancy < 1 || redundancy > 100 || redundancy != floor(redundancy)) {
			note(notes, "spec.replicas", "%g replicas (redundancy is 1 to 100)", redundancy);
			redundancy = redundancy < 1 ? 1 : 100;
		}
		leftovers(spec, "spec", dk, k8s_whys, notes);
	}
	/* one pod: one node group, its containers together */
	top = jv_object_set(jv_object(), jv_string("allocations"), members);
	if (redundancy > 1)
		top = jv_object_set(top, jv_string("redundancy"), jv_number(redundancy));
	v = jv_object_set(jv_object(), jv_string(name), top);
	ens = jv_object_set(ens, jv_string("allocations"), allocs);
	ens = jv_object_set(ens, jv_string("nodes"), v);
	jv_free(inits);
	jv_free(used);
	jv_free(meta);
	jv_free(spec);
	jv_free(doc);
	return ens;
fail:
	jv_free(ens);
	jv_free(allocs);
	jv_free(members);
	jv_free(inits);
	jv_free(meta);
	jv_free(spec);
	jv_free(used);
	jv_free(doc);
	return jv_invalid();
}
