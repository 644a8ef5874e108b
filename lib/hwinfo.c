/*
 * hwinfo — detection of CPU, memory size, kernel, GPUs, kernel features and
 * executors from files under a root prefix, plus the two outside helpers a
 * detection may need: `nvidia-smi` (a child with a deadline, output capped)
 * and one Docker API ping over a unix socket through libcurl.  Every file
 * read here is small and capped; a file that is missing or unreadable means
 * "not present", never an error, except proc/cpuinfo and proc/meminfo
 * without which there is no document.
 */
#include "hwinfo.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <curl/curl.h>
#include "dlcurl.h"

#define SMALL_MAX (64 * 1024)		/* a sysfs attribute, a ping reply */
#define CPUINFO_MAX (8 * 1024 * 1024)	/* ~1.5 KiB per CPU */
#define PCIIDS_MAX (16 * 1024 * 1024)
#define SMI_MAX (256 * 1024)

char *nn_hwinfo_path(const char *sysroot, const char *path)
{
	size_t n = sysroot ? strlen(sysroot) : 0;
	while (n > 0 && sysroot[n - 1] == '/')
		n--;
	if (n == 0)
		return nn_xstrdup(path);
	return nn_xasprintf("%.*s%s%s", (int)n, sysroot, path[0] == '/' ? "" : "/", path);
}

/* A small file under sysroot, trailing whitespace removed; NULL if absent. */
static char *read_attr(const char *sysroot, const char *path, size_t max)
{
	char *p = nn_hwinfo_path(sysroot, path);
	size_t len = 0;
	char *s = nn_read_file(p, max, &len, NULL);
	free(p);
	if (!s)
		return NULL;
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* An unsigned integer attribute (decimal or 0x hex); -1 when absent. */
static int read_u64(const char *sysroot, const char *path, uint64_t *out)
{
	char *s = read_attr(sysroot, path, SMALL_MAX), *end;
	int rc = -1;
	if (s) {
		errno = 0;
		unsigned long long v = strtoull(s, &end, 0);
		if (!errno && end != s && *end == '\0' && s[0] != '-') {
			*out = v;
			rc = 0;
		}
		free(s);
	}
	return rc;
}

static char *trim(char *s)
{
	size_t n;
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int has_word(const char *list, const char *word, const char *seps);

/* ---- CPU ---- */

struct core_id {
	long pkg, core;
};

static void add_core(struct core_id **ids, size_t *n, size_t *cap, long pkg, long core)
{
	for (size_t i = 0; i < *n; i++)
		if ((*ids)[i].pkg == pkg && (*ids)[i].core == core)
			return;
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		*ids = nn_xrealloc(*ids, *cap * sizeof **ids);
	}
	(*ids)[*n].pkg = pkg;
	(*ids)[(*n)++].core = core;
}

jv nn_hwinfo_cpu(const char *sysroot, char *err)
{
	char *path = nn_hwinfo_path(sysroot, "/proc/cpuinfo");
	char *text = nn_read_file(path, CPUINFO_MAX, NULL, err);
	struct core_id *ids = NULL;
	size_t nids = 0, capids = 0;
	long threads = 0, pkg = -1, core = -1;
	double mhz = 0;
	char *model = NULL, *line, *save = NULL;
	struct utsname u;
	uint64_t khz = 0, best_khz = 0;
	jv cpu;

	free(path);
	if (!text)
		return jv_invalid();
	/* Each "processor" line opens one logical CPU's block; the "physical
	 * id" and "core id" pairs seen name physical cores, as lscpu counts. */
	for (line = strtok_r(text, "\n", &save);; line = strtok_r(NULL, "\n", &save)) {
		char *colon = line ? strchr(line, ':') : NULL;
		char *key = NULL, *val = NULL;
		if (line && !colon)
			continue;
		if (line) {
			*colon = '\0';
			key = trim(line);
			val = trim(colon + 1);
		}
		if (!line || !strcmp(key, "processor")) {
			if (threads > 0 && core >= 0)
				add_core(&ids, &nids, &capids, pkg, core);
			if (!line)
				break;
			pkg = core = -1;
			threads++;
		} else if (!strcmp(key, "physical id")) {
			pkg = strtol(val, NULL, 10);
		} else if (!strcmp(key, "core id")) {
			core = strtol(val, NULL, 10);
		} else if (!strcmp(key, "cpu MHz")) {
			double m = strtod(val, NULL);
			if (m > mhz)
				mhz = m;
		} else if (!model && *val && (!strcmp(key, "model name") ||
					      !strcmp(key, "Model") ||
					      !strcmp(key, "cpu model") ||
					      !strcmp(key, "uarch"))) {
			model = nn_xstrdup(val);
		}
	}
	free(text);
	if (threads == 0) {
		free(ids);
		free(model);
		nn_seterr(err, "no processor listed in /proc/cpuinfo");
		return jv_invalid();
	}
	/* The nominal clock, steadiest first: the cpufreq driver's base
	 * (intel_pstate) or nominal (amd-pstate) frequency; the "@ 2.00GHz"
	 * of the model name; the highest cpuinfo_max_freq; the highest
	 * "cpu MHz" seen (a current clock: what a VM reports). */
	static const char *const freq_files[] = {
		"base_frequency", "amd_pstate_nominal_freq", NULL, "cpuinfo_max_freq"
	};
	for (size_t f = 0; f < sizeof freq_files / sizeof *freq_files && !best_khz; f++) {
		if (!freq_files[f]) {
			const char *at = model ? strstr(model, " @ ") : NULL;
			char *end;
			double ghz = at ? strtod(at + 3, &end) : 0;
			if (at && ghz > 0 && !strncmp(end, "GHz", 3))
				best_khz = (uint64_t)(ghz * 1e6 + 0.5);
			continue;
		}
		for (long i = 0; i < threads; i++) {
			char p[96];
			snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%ld/cpufreq/%s", i, freq_files[f]);
			if (read_u64(sysroot, p, &khz) == 0 && khz > best_khz)
				best_khz = khz;
		}
	}
	if (best_khz)
		mhz = (double)((best_khz + 500) / 1000);
	if (uname(&u) < 0)
		strcpy(u.machine, "unknown");
	cpu = jv_object();
	cpu = jv_object_set(cpu, jv_string("arch"), jv_string(u.machine));
	cpu = jv_object_set(cpu, jv_string("model"), jv_string(model ? model : "unknown"));
	cpu = jv_object_set(cpu, jv_string("cores"),
			    jv_number(nids > 0 && (long)nids <= threads ? (double)nids : (double)threads));
	cpu = jv_object_set(cpu, jv_string("threads"), jv_number((double)threads));
	cpu = jv_object_set(cpu, jv_string("mhz"), jv_number((double)(int64_t)(mhz + 0.5)));
	free(ids);
	free(model);
	return cpu;
}

/* One cgroup directory's limit in millicores (at least 1), 0 when none. */
static int64_t quota_at(const char *dir, int v2)
{
	char *p, *s;
	long long q = -1, period = 0;

	if (v2) {
		/* "200000 100000", or "max 100000" for none */
		p = nn_xasprintf("%s/cpu.max", dir);
		s = read_attr(NULL, p, SMALL_MAX);
		free(p);
		if (!s || sscanf(s, "%lld %lld", &q, &period) != 2)
			q = -1;
		free(s);
	} else {
		/* cpu.cfs_quota_us is -1 for none */
		p = nn_xasprintf("%s/cpu.cfs_quota_us", dir);
		s = read_attr(NULL, p, SMALL_MAX);
		free(p);
		if (s)
			q = strtoll(s, NULL, 10);
		free(s);
		p = nn_xasprintf("%s/cpu.cfs_period_us", dir);
		s = read_attr(NULL, p, SMALL_MAX);
		free(p);
		if (s)
			period = strtoll(s, NULL, 10);
		free(s);
	}
	if (q <= 0 || period <= 0)
		return 0;
	return q * 1000 / period > 0 ? (int64_t)(q * 1000 / period) : 1;
}

int64_t nn_hwinfo_cpu_quota(const char *sysroot)
{
	char *cg = read_attr(sysroot, "/proc/self/cgroup", SMALL_MAX);
	char *mi = read_attr(sysroot, "/proc/self/mountinfo", CPUINFO_MAX);
	char *line, *save = NULL;
	int64_t best = 0;

	if (!cg || !mi)
		goto done;
	/* for each hierarchy that holds the cpu controller: its mount, and
	 * this process's path in it */
	for (line = strtok_r(cg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		int v2;
		char *copy, *ml, *msave = NULL;
		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		v2 = !strcmp(line, "0") && c1[1] == '\0';
		if (!v2 && !has_word(c1 + 1, "cpu", ","))
			continue;
		copy = nn_xstrdup(mi);
		for (ml = strtok_r(copy, "\n", &msave); ml; ml = strtok_r(NULL, "\n", &msave)) {
			char *dash = strstr(ml, " - "), *f[6], *tsave = NULL, *tok;
			char fstype[32], opts[512];
			int nf = 0;
			if (!dash)
				continue;
			*dash = '\0';
			if (sscanf(dash + 3, "%31s %*s %511s", fstype, opts) != 2)
				continue;
			if (v2 ? strcmp(fstype, "cgroup2") :
			    (strcmp(fstype, "cgroup") || !has_word(opts, "cpu", ",")))
				continue;
			for (tok = strtok_r(ml, " ", &tsave); tok && nf < 6; tok = strtok_r(NULL, " ", &tsave))
				f[nf++] = tok;
			if (nf < 5)
				continue;
			/* f[3]: the mount's root in the hierarchy; f[4]: where */
			const char *rel = c2 + 1;
			size_t rl = strlen(f[3]);
			if (strcmp(f[3], "/") && !strncmp(rel, f[3], rl) &&
			    (rel[rl] == '/' || rel[rl] == '\0'))
				rel += rl;
			else if (strcmp(f[3], "/"))
				continue;	/* not under this mount */
			char *base = nn_hwinfo_path(sysroot, f[4]);
			char *path = nn_xasprintf("%s%s", base, !strcmp(rel, "/") ? "" : rel);
			for (;;) {
				int64_t mc = quota_at(path, v2);
				if (mc > 0 && (best == 0 || mc < best))
					best = mc;
				if (strlen(path) <= strlen(base))
					break;
				*strrchr(path, '/') = '\0';
			}
			free(path);
			free(base);
			break;
		}
		free(copy);
	}
done:
	free(cg);
	free(mi);
	return best;
}

int nn_hwinfo_ram_size(const char *sysroot, uint64_t *out, char *err)
{
	char *path = nn_hwinfo_path(sysroot, "/proc/meminfo");
	char *text = nn_read_file(path, SMALL_MAX, NULL, err);
	char *p;
	unsigned long long kb;

	free(path);
	if (!text)
		return -1;
	p = strstr(text, "MemTotal:");
	if (!p || sscanf(p, "MemTotal: %llu kB", &kb) != 1) {
		free(text);
		return nn_seterr(err, "no MemTotal in /proc/meminfo");
	}
	free(text);
	*out = (uint64_t)kb * 1024;
	return 0;
}

char *nn_hwinfo_kernel(const char *sysroot)
{
	char *s = read_attr(sysroot, "/proc/sys/kernel/osrelease", SMALL_MAX);
	size_t n = 0;
	struct utsname u;

	if (!s) {
		if (uname(&u) < 0)
			return nn_xstrdup("unknown");
		s = nn_xstrdup(u.release);
	}
	while (s[n] && (isdigit((unsigned char)s[n]) || s[n] == '.'))
		n++;
	while (n > 0 && s[n - 1] == '.')
		n--;
	if (n > 0)
		s[n] = '\0';
	return s;
}

/* ---- child processes and PATH ---- */

/* An executable regular file named prog on $PATH (prog without '/'). */
static int on_path(const char *prog)
{
	const char *path = getenv("PATH"), *p, *q;
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; p = q + 1) {
		q = strchr(p, ':');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		char *f = nn_xasprintf("%.*s/%s", (int)n, n ? p : ".", prog);
		struct stat st;
		int ok = stat(f, &st) == 0 && S_ISREG(st.st_mode) && access(f, X_OK) == 0;
		free(f);
		if (ok)
			return 1;
		if (!q)
			return 0;
	}
}

/* Run argv (looked up on $PATH) with stdin and stderr on /dev/null; return
 * its stdout (caller frees) when it exits 0 within timeout_ms, else NULL.
 * A child past its deadline is killed with its process group. */
static char *run_capture(char *const argv[], int64_t timeout_ms, size_t max)
{
	int pfd[2], status, dead = 0;
	pid_t pid;
	struct nn_buf out;
	int64_t deadline = nn_mono_ms() + timeout_ms;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return NULL;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return NULL;
	}
	if (pid == 0) {
		/* its own process group, so a deadline kills what it started */
		int null = open("/dev/null", O_RDWR);
		setpgid(0, 0);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 2);
		}
		dup2(pfd[1], 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	setpgid(pid, pid);	/* also here: whichever runs first */
	close(pfd[1]);
	nn_buf_init(&out, max);
	for (;;) {
		int64_t left = deadline - nn_mono_ms();
		struct pollfd pf = { pfd[0], POLLIN, 0 };
		char chunk[4096];
		ssize_t n;
		if (left <= 0) {
			dead = 1;
			break;
		}
		int r = poll(&pf, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			dead = 1;
			break;
		}
		n = read(pfd[0], chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (nn_buf_add(&out, chunk, (size_t)n) < 0) {
			dead = 1;
			break;
		}
	}
	close(pfd[0]);
	if (dead) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (dead || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		nn_buf_release(&out);
		return NULL;
	}
	if (!out.data)
		nn_buf_adds(&out, "");
	return nn_buf_detach(&out, NULL);
}

/* ---- GPUs ---- */

struct gpu {
	char addr[64];		/* PCI address, "0000:01:00.0" */
	char *devdir;		/* sysfs device directory (under sysroot) */
	char *card;		/* sys/class/drm/cardN (under sysroot) or NULL */
	unsigned vendor, device;
	char *model;
	uint64_t vram;
	int matched;		/* claimed by an nvidia-smi line */
};

static struct gpu *gpu_find(struct gpu *g, size_t n, const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(g[i].addr, addr))
			return &g[i];
	return NULL;
}

/* PCI address order; "0000:c1:00.0" and "00000000:C1:00.0" (nvidia-smi's
 * spelling) compare as the same address. */
static int addr_cmp(const void *a, const void *b)
{
	const char *x = ((const struct gpu *)a)->addr, *y = ((const struct gpu *)b)->addr;
	unsigned long dx = strtoul(x, NULL, 16), dy = strtoul(y, NULL, 16);
	const char *cx = strchr(x, ':'), *cy = strchr(y, ':');
	if (dx != dy)
		return dx < dy ? -1 : 1;
	return strcasecmp(cx ? cx : x, cy ? cy : y);
}

static const char *vendor_name(unsigned v)
{
	switch (v) {
	case 0x10de: return "nvidia";
	case 0x1002: return "amd";
	case 0x8086: return "intel";
	default: return NULL;
	}
}

/* Read vendor, device and class from dir; 0 for a GPU we know. */
static int pci_gpu(const char *dir, unsigned *vendor, unsigned *device)
{
	char *p;
	uint64_t v = 0, d = 0, c = 0;
	p = nn_xasprintf("%s/class", dir);
	int rc = read_u64(NULL, p, &c);
	free(p);
	if (rc < 0 || (c >> 16) != 0x03)
		return -1;
	p = nn_xasprintf("%s/vendor", dir);
	rc = read_u64(NULL, p, &v);
	free(p);
	if (rc < 0 || !vendor_name((unsigned)v))
		return -1;
	p = nn_xasprintf("%s/device", dir);
	if (read_u64(NULL, p, &d) < 0)
		d = 0;
	free(p);
	*vendor = (unsigned)v;
	*device = (unsigned)d;
	return 0;
}

static void gpu_add(struct gpu **g, size_t *n, size_t *cap, const char *addr,
		    char *devdir, char *card)
{
	unsigned v, d;
	struct gpu *have = gpu_find(*g, *n, addr);
	if (have) {
		if (card && !have->card)
			have->card = card;
		else
			free(card);
		free(devdir);
		return;
	}
	if (pci_gpu(devdir, &v, &d) < 0) {
		free(devdir);
		free(card);
		return;
	}
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 4;
		*g = nn_xrealloc(*g, *cap * sizeof **g);
	}
	memset(&(*g)[*n], 0, sizeof **g);
	snprintf((*g)[*n].addr, sizeof (*g)[*n].addr, "%s", addr);
	(*g)[*n].devdir = devdir;
	(*g)[*n].card = card;
	(*g)[*n].vendor = v;
	(*g)[*n].device = d;
	(*n)++;
}

/* "0000:01:00.0" and "00000000:01:00.0" name the same device. */
static int same_addr(const char *a, const char *b)
{
	const char *ca = strchr(a, ':'), *cb = strchr(b, ':');
	if (!ca || !cb)
		return 0;
	if (strtoul(a, NULL, 16) != strtoul(b, NULL, 16))
		return 0;
	return !strcasecmp(ca, cb);
}

/* Model of vendor:device from a pci.ids file, or NULL. */
static char *pciids_model(const char *text, unsigned vendor, unsigned device)
{
	char vkey[8], dkey[8];
	const char *p = text;
	int in_vendor = 0;
	snprintf(vkey, sizeof vkey, "%04x  ", vendor);
	snprintf(dkey, sizeof dkey, "%04x  ", device);
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > 0 && p[0] != '#') {
			if (p[0] != '\t') {
				if (in_vendor)
					return NULL;
				in_vendor = len > 6 && !strncmp(p, vkey, 6);
			} else if (in_vendor && len > 7 && p[1] != '\t' &&
				   !strncmp(p + 1, dkey, 6)) {
				char *m = nn_xasprintf("%.*s", (int)(len - 7), p + 7);
				return m;
			}
		}
		p = eol ? eol + 1 : NULL;
	}
	return NULL;
}

static void gpu_from_smi(const struct nn_hwinfo_opts *o, struct gpu **g, size_t *n, size_t *cap)
{
	char *argv[] = { "nvidia-smi", "--query-gpu=pci.bus_id,name,memory.total",
			 "--format=csv,noheader,nounits", NULL };
	char *text, *line, *save = NULL;

	if (!on_path("nvidia-smi"))
		return;
	text = run_capture(argv, o->timeout_ms, SMI_MAX);
	if (!text)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[3], *s = line, *c;
		int nf = 0;
		struct gpu *hit = NULL;
		while (nf < 2 && (c = strchr(s, ','))) {
			*c = '\0';
			f[nf++] = trim(s);
			s = c + 1;
		}
		if (nf != 2)
			continue;
		f[2] = trim(s);
		for (size_t i = 0; i < *n; i++)
			if ((*g)[i].vendor == 0x10de && !(*g)[i].matched &&
			    same_addr((*g)[i].addr, f[0]))
				hit = &(*g)[i];
		if (!hit) {
			/* not in sysfs (a container): take nvidia-smi's word */
			if (*n == *cap) {
				*cap = *cap ? 2 * *cap : 4;
				*g = nn_xrealloc(*g, *cap * sizeof **g);
			}
			hit = &(*g)[(*n)++];
			memset(hit, 0, sizeof *hit);
			snprintf(hit->addr, sizeof hit->addr, "%s", f[0]);
			hit->vendor = 0x10de;
		}
		hit->matched = 1;
		if (*f[1] && strcmp(f[1], "[N/A]")) {
			free(hit->model);
			hit->model = nn_xstrdup(f[1]);
		}
		char *end;
		unsigned long long mib = strtoull(f[2], &end, 10);
		if (end != f[2] && *end == '\0')
			hit->vram = (uint64_t)mib * 1024 * 1024;
	}
	free(text);
}

jv nn_hwinfo_gpus(const struct nn_hwinfo_opts *o)
{
	struct gpu *g = NULL;
	size_t n = 0, cap = 0;
	char *pcidir = nn_hwinfo_path(o->sysroot, "/sys/bus/pci/devices");
	char *drmdir = nn_hwinfo_path(o->sysroot, "/sys/class/drm");
	char *pciids = NULL;
	DIR *d;
	struct dirent *e;
	jv out = jv_array();

	/* drm cards first, so each GPU learns its card directory */
	if ((d = opendir(drmdir))) {
		while ((e = readdir(d))) {
			char link[512], *dev, *card, *base;
			ssize_t k;
			if (strncmp(e->d_name, "card", 4) || !isdigit((unsigned char)e->d_name[4]) ||
			    strchr(e->d_name, '-'))
				continue;
			card = nn_xasprintf("%s/%s", drmdir, e->d_name);
			dev = nn_xasprintf("%s/device", card);
			k = readlink(dev, link, sizeof link - 1);
			if (k <= 0) {
				free(card);
				free(dev);
				continue;
			}
			link[k] = '\0';
			base = strrchr(link, '/');
			gpu_add(&g, &n, &cap, base ? base + 1 : link, dev, card);
		}
		closedir(d);
	}
	if ((d = opendir(pcidir))) {
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			gpu_add(&g, &n, &cap, e->d_name,
				nn_xasprintf("%s/%s", pcidir, e->d_name), NULL);
		}
		closedir(d);
	}
	gpu_from_smi(o, &g, &n, &cap);
	if (n > 1)
		qsort(g, n, sizeof *g, addr_cmp);

	for (size_t i = 0; i < n; i++) {
		struct gpu *x = &g[i];
		char *p;
		uint64_t v;
		if (x->vendor == 0x10de && !x->model) {
			char *info;
			p = nn_xasprintf("/proc/driver/nvidia/gpus/%s/information", x->addr);
			info = read_attr(o->sysroot, p, SMALL_MAX);
			free(p);
			if (info) {
				char *m = strstr(info, "Model:");
				if (m && (m == info || m[-1] == '\n')) {
					char *eol = strchr(m, '\n');
					if (eol)
						*eol = '\0';
					m = trim(m + 6);
					if (*m)
						x->model = nn_xstrdup(m);
				}
				free(info);
			}
		}
		if (x->devdir && x->vendor == 0x1002) {
			p = nn_xasprintf("%s/mem_info_vram_total", x->devdir);
			if (!x->vram && read_u64(NULL, p, &v) == 0)
				x->vram = v;
			free(p);
			p = nn_xasprintf("%s/product_name", x->devdir);
			char *name = x->model ? NULL : read_attr(NULL, p, SMALL_MAX);
			free(p);
			if (name && *trim(name))
				x->model = nn_xstrdup(trim(name));
			free(name);
		}
		if (x->devdir && x->vendor == 0x8086 && !x->vram) {
			for (int t = 0; t < 16; t++) {
				p = nn_xasprintf("%s/tile%d/physical_vram_size_bytes", x->devdir, t);
				int rc = read_u64(NULL, p, &v);
				free(p);
				if (rc < 0)
					break;
				x->vram += v;
			}
			if (!x->vram && x->card) {
				p = nn_xasprintf("%s/lmem_total_bytes", x->card);
				if (read_u64(NULL, p, &v) == 0)
					x->vram = v;
				free(p);
			}
		}
		if (!x->model && x->device) {
			if (!pciids) {
				pciids = read_attr(o->sysroot, "/usr/share/misc/pci.ids", PCIIDS_MAX);
				if (!pciids)
					pciids = read_attr(o->sysroot, "/usr/share/hwdata/pci.ids", PCIIDS_MAX);
				if (!pciids)
					pciids = nn_xstrdup("");
			}
			x->model = pciids_model(pciids, x->vendor, x->device);
		}
		if (!x->model)
			x->model = nn_xasprintf("PCI %04x:%04x", x->vendor, x->device);
		jv one = jv_object();
		one = jv_object_set(one, jv_string("vendor"), jv_string(vendor_name(x->vendor)));
		one = jv_object_set(one, jv_string("model"), jv_string(x->model));
		one = jv_object_set(one, jv_string("vram"), jv_number((double)x->vram));
		out = jv_array_append(out, one);
		free(x->devdir);
		free(x->card);
		free(x->model);
	}
	free(g);
	free(pciids);
	free(pcidir);
	free(drmdir);
	return out;
}

/* ---- features ---- */

static int has_word(const char *list, const char *word, const char *seps)
{
	size_t n = strlen(word);
	const char *p = list;
	while ((p = strstr(p, word))) {
		int start = p == list || strchr(seps, p[-1]);
		int end = p[n] == '\0' || strchr(seps, p[n]);
		if (start && end)
			return 1;
		p += n;
	}
	return 0;
}

/* Which cgroup versions offer both cpu and memory: bit 1 = v1, bit 2 = v2. */
static int cgroup_versions(const char *sysroot)
{
	char *text = read_attr(sysroot, "/proc/self/mountinfo", CPUINFO_MAX);
	char *line, *save = NULL;
	int v1cpu = 0, v1mem = 0, v2 = 0;

	if (!text)
		return 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *dash = strstr(line, " - "), *f[6], *s = line, *tok, *tsave = NULL;
		char fstype[32], opts[512];
		int nf = 0;
		if (!dash)
			continue;
		*dash = '\0';
		if (sscanf(dash + 3, "%31s %*s %511s", fstype, opts) != 2)
			continue;
		for (tok = strtok_r(s, " ", &tsave); tok && nf < 6; tok = strtok_r(NULL, " ", &tsave))
			f[nf++] = tok;
		if (nf < 5)
			continue;
		if (!strcmp(fstype, "cgroup")) {
			v1cpu |= has_word(opts, "cpu", ",");
			v1mem |= has_word(opts, "memory", ",");
		} else if (!strcmp(fstype, "cgroup2")) {
			char *p = nn_xasprintf("%s/cgroup.controllers", f[4]);
			char *c = read_attr(sysroot, p, SMALL_MAX);
			free(p);
			if (c && has_word(c, "cpu", " ") && has_word(c, "memory", " "))
				v2 = 1;
			free(c);
		}
	}
	free(text);
	return (v1cpu && v1mem ? 1 : 0) | (v2 ? 2 : 0);
}

static int exists(const char *sysroot, const char *path)
{
	char *p = nn_hwinfo_path(sysroot, path);
	struct stat st;
	int ok = lstat(p, &st) == 0;
	free(p);
	return ok;
}

static int openable(const char *sysroot, const char *path)
{
	char *p = nn_hwinfo_path(sysroot, path);
	int fd = open(p, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	free(p);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Whether a child can unshare flags (as root, or else in a new user
 * namespace, as a rootless runtime would). */
static int can_unshare(int flags)
{
	int status;
	pid_t pid = fork();
	if (pid < 0)
		return 0;
	if (pid == 0) {
		if (unshare(flags) == 0)
			_exit(0);
		if (unshare(CLONE_NEWUSER | flags) == 0)
			_exit(0);
		_exit(1);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

jv nn_hwinfo_features(const struct nn_hwinfo_opts *o)
{
	jv f = jv_array();
	int cg = cgroup_versions(o->sysroot);
	int fake = o->sysroot && *o->sysroot;

	if (cg & 1)
		f = jv_array_append(f, jv_string("cgroup1"));
	if (cg & 2)
		f = jv_array_append(f, jv_string("cgroup2"));
	if (exists(o->sysroot, "/proc/self/ns/pid") && exists(o->sysroot, "/proc/self/ns/mnt") &&
	    exists(o->sysroot, "/proc/self/ns/uts") && exists(o->sysroot, "/proc/self/ns/ipc") &&
	    (fake || can_unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC)))
		f = jv_array_append(f, jv_string("namespaces"));
	if (exists(o->sysroot, "/proc/self/ns/net") && (fake || can_unshare(CLONE_NEWNET)))
		f = jv_array_append(f, jv_string("netns"));
	if (openable(o->sysroot, "/dev/kvm"))
		f = jv_array_append(f, jv_string("kvm"));
	if (openable(o->sysroot, "/dev/net/tun"))
		f = jv_array_append(f, jv_string("tun"));
	return f;
}

/* ---- executors ---- */

static size_t ping_write(char *p, size_t size, size_t n, void *arg)
{
	if (nn_buf_add(arg, p, size * n) < 0)
		return 0;	/* more than a ping answer: abort */
	return size * n;
}

int nn_hwinfo_docker_ping(const char *sock, int64_t timeout_ms, char *err)
{
	CURL *c;
	struct nn_buf body;
	long code = 0;
	CURLcode rc;
	int ret = -1;

	if (nn_dlcurl_load(err) < 0)
		return -1;
	c = curl_easy_init();
	if (!c)
		return nn_seterr(err, "cannot start libcurl");
	nn_buf_init(&body, 256);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, "http://localhost/_ping");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ping_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		nn_seterr(err, "%s: %s", sock, curl_easy_strerror(rc));
		goto done;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200 || !body.data || strcmp(trim(body.data), "OK")) {
		nn_seterr(err, "%s: /_ping answered %ld", sock, code);
		goto done;
	}
	ret = 0;
done:
	nn_buf_release(&body);
	curl_easy_cleanup(c);
	return ret;
}

static int jv_has_string(jv arr, const char *s)
{
	int n = jv_array_length(jv_copy(arr));
	for (int i = 0; i < n; i++) {
		jv x = jv_array_get(jv_copy(arr), i);
		int hit = jv_get_kind(x) == JV_KIND_STRING && !strcmp(jv_string_value(x), s);
		jv_free(x);
		if (hit)
			return 1;
	}
	return 0;
}

jv nn_hwinfo_executors(const struct nn_hwinfo_opts *o, jv features)
{
	jv e = jv_array();
	char *sock = NULL;
	struct utsname u;
	struct stat st;

	if (jv_get_kind(features) == JV_KIND_ARRAY && jv_has_string(features, "namespaces"))
		e = jv_array_append(e, jv_string("native"));
	if (o->docker_host && *o->docker_host) {
		if (!strncmp(o->docker_host, "unix://", 7))
			sock = nn_xstrdup(o->docker_host + 7);
	} else {
		sock = nn_hwinfo_path(o->sysroot, "/var/run/docker.sock");
	}
	if (sock && stat(sock, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    nn_hwinfo_docker_ping(sock, o->timeout_ms, NULL) == 0)
		e = jv_array_append(e, jv_string("docker"));
	free(sock);
	if (uname(&u) == 0) {
		char *q = nn_xasprintf("qemu-system-%s", u.machine);
		if (on_path(q) || on_path("firecracker"))
			e = jv_array_append(e, jv_string("vm"));
		free(q);
	}
	return e;
}
