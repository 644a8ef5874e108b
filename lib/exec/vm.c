/*
 * vm — the executor that runs a job inside a virtual machine: QEMU boots a
 * Linux kernel with an initramfs ("image":{"kernel":PATH,"initrd":PATH,
 * "append":"extra kernel arguments"}), with TCG by default (options.accel
 * "kvm" where KVM boots guests; on this project's machines a nested KVM
 * hangs stock kernels, so TCG is the default, or $NUNET_VM_ACCEL), machine
 * type "pc" by default (options.machine: pc, q35, microvm — microvm hangs
 * the Debian kernel here, it has no PIT/HPET to calibrate against), no
 * network device at all, RAM from the memory limit (default 256 MiB, at
 * least 64) and whole vCPUs from the cpu limit (rounded up).  A pids limit
 * cannot be given to a VM and is refused unless allow_unlimited.
 *
 * Guest contract.  The executor appends to a copy of the initramfs a small
 * cpio archive holding /nunet/init, a shell script booted with
 * rdinit=/nunet/init, so the image needs only a POSIX sh with mount, stty,
 * env, kill, grep and poweroff (busybox).  The script mounts /proc, /sys
 * and /dev, makes the workdir (the spec's workdir relative to the
 * allocation directory, below /alloc in the guest: the host's directory is
 * not shared), runs the command with exactly the spec's environment, its
 * stdout on the second serial port and stderr on the third (QEMU appends
 * them to stdout.log and stderr.log, so they stream while the VM runs), and
 * listens on the fourth port for signal numbers the host forwards (written
 * through a socket chardev).  The first port is the console, kept as
 * vm-console.log.  The exit status comes back as a marked console line,
 * "nunet-exit-TOKEN: CODE OOMKILLS" (TOKEN is random per start, so a job
 * cannot forge it; OOMKILLS is the guest's oom_kill count, which turns a
 * 137 into "oom"), then the guest powers off and QEMU exits (-no-reboot).
 * No marker (a panic, a guest that never booted) means the exit status is
 * lost, and the result says so.
 *
 * QEMU runs in its own session, controlled over QMP on an abstract unix
 * socket named from the allocation directory (qmp.c): query-status after
 * start, quit for SIGKILL and cleanup; signals go through a second abstract
 * socket, NAME-sig, the fourth serial port's backend.  Its pid,
 * start time, socket and token go to DIR/vm.json for adopt().  Usage is
 * QEMU's own: cpu seconds and peak RSS (from wait4 at the end when QEMU is
 * our child, else sampled from /proc).
 */
#include "exec/exec.h"
#include "exec/qmp.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define STATE_FILE "vm.json"
#define CONSOLE_FILE "vm-console.log"
#define INITRD_FILE "vm-initrd"
#define QEMU_LOG "vm-qemu.log"
#define MIB (1024ULL * 1024ULL)
#define DEFAULT_MEM_MIB 256
#define MIN_MEM_MIB 64
#define SAMPLE_MS 1000

struct vm {
	char *qemu;		/* resolved QEMU binary */
	char *kernel, *initrd, *append;
	char *machine, *accel;
	unsigned long mem_mib, smp;
	pid_t pid;
	int pidfd;
	int ours;		/* QEMU is our child: reap it with wait4 */
	unsigned long long starttime;
	struct nn_qmp q;
	char sock[64];		/* "@nunet-vm-HASH" */
	char token[33];
	int ready;		/* the guest's init listens for signals */
	int pending_sig;	/* to forward once ready */
	int signalled;		/* last signal forwarded */
	int killed;		/* we stopped the VM */
	struct nn_exec_result res;
	struct nn_exec_stats st;
	int64_t sampled_ms;
};

static struct vm *priv(struct nn_exec_job *job)
{
	if (!job->priv) {
		struct vm *v = nn_xcalloc(1, sizeof *v);
		v->pidfd = -1;
		v->q.fd = -1;
		v->st.cpu_seconds = -1;
		v->st.memory_peak = v->st.memory_current = v->st.pids_current = -1;
		job->priv = v;
	}
	return job->priv;
}

static int fail(struct nn_exec_job *job, int code, char *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct nn_exec_job *job, int code, char *err, const char *fmt, ...)
{
	va_list ap;
	job->ex_code = code;
	if (err && fmt) {
		va_start(ap, fmt);
		vsnprintf(err, NN_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static char *find_qemu(const char *name, char *err)
{
	return nn_exec_resolve(name ? name : "qemu-system-x86_64", getenv("PATH"), err);
}

static int vm_available(char *why)
{
	char err[NN_ERRLEN];
	char *q = find_qemu(NULL, err);
	if (!q)
		return nn_seterr(why, "vm executor: %s (Debian: qemu-system-x86)", err);
	free(q);
	return 0;
}

/* ---- prepare ----------------------------------------------------------- */

static int get_str(struct nn_exec_job *job, jv v, const char *what, char **slot, char *err)
{
	if (jv_get_kind(v) != JV_KIND_STRING || !*jv_string_value(v))
		return fail(job, NN_EX_DATAERR, err, "%s: expected a non-empty string", what);
	free(*slot);
	*slot = nn_xstrdup(jv_string_value(v));
	return 0;
}

static int parse_image(struct nn_exec_job *job, struct vm *v, char *err)
{
	jv img = job->spec->image_jv;
	int rc = 0;

	if (jv_get_kind(img) != JV_KIND_OBJECT)
		return fail(job, NN_EX_DATAERR, err, "image: the vm executor needs "
			    "{\"kernel\":PATH,\"initrd\":PATH} (and optionally \"append\")");
	jv_object_foreach(img, k, val) {
		const char *key = jv_string_value(k);
		if (rc < 0)
			;
		else if (!strcmp(key, "kernel"))
			rc = get_str(job, val, "image.kernel", &v->kernel, err);
		else if (!strcmp(key, "initrd"))
			rc = get_str(job, val, "image.initrd", &v->initrd, err);
		else if (!strcmp(key, "append"))
			rc = get_str(job, val, "image.append", &v->append, err);
		else
			rc = fail(job, NN_EX_DATAERR, err, "image: unknown field '%s' for the vm "
				  "executor (known: append, initrd, kernel)", key);
		jv_free(k);
		jv_free(val);
	}
	if (rc < 0)
		return -1;
	if (!v->kernel || !v->initrd)
		return fail(job, NN_EX_DATAERR, err, "image: %s missing", v->kernel ? "initrd" : "kernel");
	{
		const char *files[] = { v->kernel, v->initrd };
		const char *names[] = { "kernel", "initrd" };
		for (int i = 0; i < 2; i++) {
			struct stat st;
			if (stat(files[i], &st) < 0 || !S_ISREG(st.st_mode) || access(files[i], R_OK) < 0)
				return fail(job, NN_EX_DATAERR, err, "image.%s: cannot read '%s': %s",
					    names[i], files[i], errno ? strerror(errno) : "not a file");
		}
	}
	return 0;
}

/* options: {"accel":"tcg"|"kvm","machine":"pc"|"q35"|"microvm","qemu":PATH} */
static int parse_options(struct nn_exec_job *job, struct vm *v, char *err)
{
	const char *envaccel = getenv("NUNET_VM_ACCEL");
	char *qemu = NULL;
	int rc = 0;

	free(v->accel);
	free(v->machine);
	v->accel = nn_xstrdup(envaccel && *envaccel ? envaccel : "tcg");
	v->machine = nn_xstrdup("pc");
	jv_object_foreach(job->spec->options, k, val) {
		const char *key = jv_string_value(k);
		if (rc < 0)
			;
		else if (!strcmp(key, "accel"))
			rc = get_str(job, val, "options.accel", &v->accel, err);
		else if (!strcmp(key, "machine"))
			rc = get_str(job, val, "options.machine", &v->machine, err);
		else if (!strcmp(key, "qemu"))
			rc = get_str(job, val, "options.qemu", &qemu, err);
		else
			rc = fail(job, NN_EX_DATAERR, err, "options: unknown field '%s' for the vm "
				  "executor (known: accel, machine, qemu)", key);
		jv_free(k);
		jv_free(val);
	}
	if (rc == 0 && strcmp(v->accel, "tcg") && strcmp(v->accel, "kvm"))
		rc = fail(job, NN_EX_DATAERR, err, "options.accel: '%s' is not tcg or kvm", v->accel);
	if (rc == 0 && strcmp(v->machine, "pc") && strcmp(v->machine, "q35") &&
	    strcmp(v->machine, "microvm"))
		rc = fail(job, NN_EX_DATAERR, err, "options.machine: '%s' is not pc, q35 or microvm",
			  v->machine);
	if (rc == 0) {
		free(v->qemu);
		v->qemu = find_qemu(qemu, err);
		if (!v->qemu)
			rc = fail(job, NN_EX_UNAVAILABLE, NULL, NULL);
	}
	free(qemu);
	return rc;
}

static int vm_prepare(struct nn_exec_job *job, char *err)
{
	struct vm *v = priv(job);
	const struct nn_exec_spec *s = job->spec;
	const struct nn_exec_limits *l = &s->limits;

	if (parse_options(job, v, err) < 0 || parse_image(job, v, err) < 0)
		return -1;
	if (!strcmp(v->accel, "kvm")) {
		int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return fail(job, NN_EX_UNAVAILABLE, err, "options.accel kvm: cannot open "
				    "/dev/kvm: %s", strerror(errno));
		close(fd);
	}
	if (l->memory && l->memory < MIN_MEM_MIB * MIB)
		return fail(job, NN_EX_DATAERR, err, "resources.memory: %llu bytes is below the "
			    "%d MiB a VM needs", (unsigned long long)l->memory, MIN_MEM_MIB);
	v->mem_mib = l->memory ? (unsigned long)((l->memory + MIB - 1) / MIB) : DEFAULT_MEM_MIB;
	v->smp = l->cpu_milli ? (unsigned long)((l->cpu_milli + 999) / 1000) : 1;
	if (l->pids && !s->allow_unlimited)
		return fail(job, NN_EX_UNAVAILABLE, err, "pids limit: a VM cannot be given one "
			    "(set allow_unlimited to run without it)");
	if (nn_exec_dir_check(s, err) < 0)
		return fail(job, NN_EX_DATAERR, NULL, NULL);
	return 0;
}

/* ---- the guest's init -------------------------------------------------- */

/* Append s single-quoted for sh. */
static void shq(struct nn_buf *b, const char *s)
{
	nn_buf_addc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			nn_buf_adds(b, "'\\''");
		else
			nn_buf_addc(b, *s);
	}
	nn_buf_addc(b, '\'');
}

static char *init_script(struct nn_exec_job *job, struct vm *v)
{
	const struct nn_exec_spec *s = job->spec;
	struct nn_buf b = NN_BUF_INIT;
	char **envp = nn_exec_spec_envp(s);
	char *wd = nn_xasprintf("/alloc%s", s->workdir + strlen(s->dir));

	nn_buf_addf(&b,
		"#!/bin/sh\n"
		"# nunet vm executor: runs one job, reports its exit status, powers off\n"
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH\n"
		"mkdir -p /proc /sys /dev /tmp\n"
		"mount -t proc proc /proc 2>/dev/null\n"
		"mount -t sysfs sysfs /sys 2>/dev/null\n"
		"mount -t devtmpfs devtmpfs /dev 2>/dev/null\n"
		"stty -F /dev/ttyS1 raw -echo 2>/dev/null\n"
		"stty -F /dev/ttyS2 raw -echo 2>/dev/null\n"
		"exec 3</dev/ttyS3\n"	/* open now: input before an open is lost */
		"stty -F /dev/ttyS3 -echo 2>/dev/null\n"
		"done_() { echo \"nunet-exit-%s: $1 $2\" >/dev/ttyS0; poweroff -f; }\n"
		"mkdir -p ", v->token);
	shq(&b, wd);
	nn_buf_adds(&b, " && cd ");
	shq(&b, wd);
	nn_buf_adds(&b, " || done_ 126 0\nenv -i");
	for (char **e = envp; *e; e++) {
		nn_buf_addc(&b, ' ');
		shq(&b, *e);
	}
	for (int i = 0; i < s->argc; i++) {
		nn_buf_addc(&b, ' ');
		shq(&b, s->argv[i]);
	}
	nn_buf_addf(&b,
		" </dev/null >/dev/ttyS1 2>/dev/ttyS2 3<&- &\n"
		"pid=$!\n"
		"(while read -r s <&3; do kill -\"$s\" \"$pid\" 2>/dev/null; done) &\n"
		"echo nunet-ready-%s >/dev/ttyS0\n"
		"wait \"$pid\"; rc=$?\n"
		"oom=$(grep '^oom_kill ' /proc/vmstat 2>/dev/null); oom=${oom#oom_kill }\n"
		"done_ \"$rc\" \"${oom:-0}\"\n", v->token);
	nn_exec_strv_free(envp);
	free(wd);
	return nn_buf_detach(&b, NULL);
}

/* One entry of a cpio "newc" archive. */
static void cpio_entry(struct nn_buf *b, const char *name, unsigned mode, const char *data,
		       size_t len, unsigned ino)
{
	size_t namesize = strlen(name) + 1;
	nn_buf_addf(b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		    ino, mode, 0u, 0u, 1u, 0u, (unsigned)len, 0u, 0u, 0u, 0u,
		    (unsigned)namesize, 0u);
	nn_buf_add(b, name, namesize);
	while (b->len % 4)
		nn_buf_addc(b, '\0');
	if (len)
		nn_buf_add(b, data, len);
	while (b->len % 4)
		nn_buf_addc(b, '\0');
}

/* DIR/vm-initrd: the image's initrd, zero padding to 4 bytes, then our
 * uncompressed archive with /nunet/init (the kernel unpacks both). */
static int make_initrd(struct nn_exec_job *job, struct vm *v, char *err)
{
	char *path = nn_exec_path(job->spec, INITRD_FILE);
	char *script = init_script(job, v);
	struct nn_buf a = NN_BUF_INIT;
	char buf[65536];
	int in = -1, out = -1, rc = -1;
	off_t total = 0;

	in = open(v->initrd, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		nn_seterr(err, "image.initrd: cannot open '%s': %s", v->initrd, strerror(errno));
		goto out;
	}
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		nn_seterr(err, "cannot create '%s': %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			nn_seterr(err, "cannot read '%s': %s", v->initrd, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (nn_write_all(out, buf, (size_t)n) < 0)
			goto werr;
		total += n;
	}
	while ((total + (off_t)a.len) % 4)
		nn_buf_addc(&a, '\0');
	{
		/* entries align to 4 bytes from the start of their archive */
		struct nn_buf e = NN_BUF_INIT;
		cpio_entry(&e, "nunet", 040755, NULL, 0, 1);
		cpio_entry(&e, "nunet/init", 0100755, script, strlen(script), 2);
		cpio_entry(&e, "TRAILER!!!", 0, NULL, 0, 0);
		nn_buf_add(&a, e.data, e.len);
		nn_buf_release(&e);
	}
	if (nn_write_all(out, a.data, a.len) < 0)
		goto werr;
	rc = 0;
	goto out;
werr:
	nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
out:
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && rc == 0)
		rc = nn_seterr(err, "cannot write '%s': %s", path, strerror(errno));
	if (rc < 0)
		unlink(path);
	nn_buf_release(&a);
	free(script);
	free(path);
	return rc;
}

/* ---- start --------------------------------------------------------------- */

/* A chardev path for QEMU's option syntax: commas doubled. */
static char *optpath(const struct nn_exec_spec *s, const char *name)
{
	char *p = nn_exec_path(s, name);
	struct nn_buf b = NN_BUF_INIT;
	for (const char *c = p; *c; c++) {
		if (*c == ',')
			nn_buf_addc(&b, ',');
		nn_buf_addc(&b, *c);
	}
	free(p);
	return nn_buf_detach(&b, NULL);
}

static void socket_name(const struct nn_exec_spec *s, char out[64])
{
	unsigned char h[16];
	char hex[33];
	crypto_generichash(h, sizeof h, (const unsigned char *)s->dir, strlen(s->dir), NULL, 0);
	nn_hex_encode(hex, h, sizeof h);
	snprintf(out, 64, "@nunet-vm-%s", hex);
}

static char **qemu_argv(struct nn_exec_job *job, struct vm *v)
{
	const struct nn_exec_spec *s = job->spec;
	char **a = nn_xcalloc(64, sizeof *a);
	int n = 0;
	char *con = optpath(s, CONSOLE_FILE), *out = optpath(s, NN_EXEC_STDOUT);
	char *errp = optpath(s, NN_EXEC_STDERR), *initrd = nn_exec_path(s, INITRD_FILE);

#define A(x) (a[n++] = (x))
	A(nn_xstrdup(v->qemu));
	A(nn_xstrdup("-M"));
	A(nn_xstrdup(v->machine));
	A(nn_xstrdup("-accel"));
	A(nn_xstrdup(v->accel));
	A(nn_xstrdup("-m"));
	A(nn_xasprintf("%lu", v->mem_mib));
	A(nn_xstrdup("-smp"));
	A(nn_xasprintf("%lu", v->smp));
	A(nn_xstrdup("-nodefaults"));
	A(nn_xstrdup("-no-user-config"));
	A(nn_xstrdup("-display"));
	A(nn_xstrdup("none"));
	A(nn_xstrdup("-no-reboot"));
	A(nn_xstrdup("-net"));
	A(nn_xstrdup("none"));
	A(nn_xstrdup("-kernel"));
	A(nn_xstrdup(v->kernel));
	A(nn_xstrdup("-initrd"));
	A(initrd);
	A(nn_xstrdup("-append"));
	A(nn_xasprintf("console=ttyS0 panic=-1 quiet rdinit=/nunet/init%s%s",
		       v->append ? " " : "", v->append ? v->append : ""));
	A(nn_xstrdup("-chardev"));
	A(nn_xasprintf("file,id=con,path=%s,append=on", con));
	A(nn_xstrdup("-serial"));
	A(nn_xstrdup("chardev:con"));
	A(nn_xstrdup("-chardev"));
	A(nn_xasprintf("file,id=out,path=%s,append=on", out));
	A(nn_xstrdup("-serial"));
	A(nn_xstrdup("chardev:out"));
	A(nn_xstrdup("-chardev"));
	A(nn_xasprintf("file,id=err,path=%s,append=on", errp));
	A(nn_xstrdup("-serial"));
	A(nn_xstrdup("chardev:err"));
	A(nn_xstrdup("-chardev"));
	A(nn_xasprintf("socket,id=sig,path=%s-sig,abstract=on,server=on,wait=off", v->sock + 1));
	A(nn_xstrdup("-serial"));
	A(nn_xstrdup("chardev:sig"));
	A(nn_xstrdup("-chardev"));
	A(nn_xasprintf("socket,id=qmp,path=%s,abstract=on,server=on,wait=off", v->sock + 1));
	A(nn_xstrdup("-mon"));
	A(nn_xstrdup("chardev=qmp,mode=control"));
#undef A
	free(con);
	free(out);
	free(errp);
	return a;
}

static int record(struct nn_exec_job *job, struct vm *v, char *err)
{
	jv o = jv_object();
	o = jv_object_set(o, jv_string("executor"), jv_string("vm"));
	o = jv_object_set(o, jv_string("id"), jv_string(job->spec->id));
	o = jv_object_set(o, jv_string("pid"), jv_number(v->pid));
	o = jv_object_set(o, jv_string("starttime"), jv_number((double)v->starttime));
	o = jv_object_set(o, jv_string("qmp"), jv_string(v->sock));
	o = jv_object_set(o, jv_string("token"), jv_string(v->token));
	return nn_exec_write_state(job->spec, STATE_FILE, o, err);
}

/* The last line of DIR/vm-qemu.log, for messages. */
static void qemu_complaint(const struct nn_exec_spec *s, char *out, size_t n)
{
	char *path = nn_exec_path(s, QEMU_LOG);
	char *text = nn_read_file(path, 65536, NULL, NULL);
	char *end, *start;
	free(path);
	snprintf(out, n, "no message");
	if (!text)
		return;
	end = text + strlen(text);
	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	start = strrchr(text, '\n');
	start = start ? start + 1 : text;
	if (*start)
		snprintf(out, n, "%s", start);
	free(text);
}

static void remove_files(const struct nn_exec_spec *s)
{
	const char *files[] = { INITRD_FILE, STATE_FILE, QEMU_LOG, NULL };
	for (int i = 0; files[i]; i++) {
		char *p = nn_exec_path(s, files[i]);
		unlink(p);
		free(p);
	}
}

static void reap(struct vm *v, int block)
{
	struct rusage ru;
	int st;
	pid_t r;
	if (!v->pid || !v->ours)
		return;
	do
		r = wait4(v->pid, &st, block ? 0 : WNOHANG, &ru);
	while (r < 0 && errno == EINTR);
	if (r == v->pid) {
		v->ours = 0;
		v->st.cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
		if ((int64_t)ru.ru_maxrss * 1024 > v->st.memory_peak)
			v->st.memory_peak = (int64_t)ru.ru_maxrss * 1024;
		v->st.memory_current = 0;
	}
}

static void vm_stop_now(struct vm *v)
{
	if (v->q.fd >= 0 && nn_qmp_execute(&v->q, "quit", jv_invalid(), NULL, 2000, NULL) == 0) {
		struct pollfd p = { v->pidfd, POLLIN, 0 };
		if (v->pidfd >= 0)
			poll(&p, 1, 3000);
	}
	if (v->pid && nn_exec_proc_starttime(v->pid, 1) == v->starttime)
		kill(v->pid, SIGKILL);
	reap(v, 1);
}

static int vm_start(struct nn_exec_job *job, char *err)
{
	struct vm *v = priv(job);
	const struct nn_exec_spec *s = job->spec;
	char **argv;
	char *logpath;
	int logfd, null;
	pid_t pid;
	jv status;

	nn_random_id(v->token);
	socket_name(s, v->sock);
	if (make_initrd(job, v, err) < 0)
		return fail(job, NN_EX_IOERR, NULL, NULL);
	logpath = nn_exec_path(s, QEMU_LOG);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	free(logpath);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (logfd < 0 || null < 0) {
		nn_seterr(err, "cannot open '%s': %s", QEMU_LOG, strerror(errno));
		if (logfd >= 0)
			close(logfd);
		if (null >= 0)
			close(null);
		remove_files(s);
		return fail(job, NN_EX_IOERR, NULL, NULL);
	}
	argv = qemu_argv(job, v);
	pid = fork();
	if (pid == 0) {
		setsid();
		if (dup2(null, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
		execv(argv[0], argv);
		_exit(127);
	}
	nn_exec_strv_free(argv);
	close(logfd);
	close(null);
	if (pid < 0) {
		remove_files(s);
		return fail(job, NN_EX_SOFTWARE, err, "cannot start QEMU: %s", strerror(errno));
	}
	v->pid = pid;
	v->ours = 1;
	v->starttime = nn_exec_proc_starttime(pid, 1);
	v->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	job->pid = pid;
	snprintf(job->handle, sizeof job->handle, "qemu pid %d", (int)pid);
	/* Wait for QMP while QEMU lives (a bad option ends it at once). */
	{
		int64_t until = nn_mono_ms() + 15000;
		char qerr[NN_ERRLEN] = "";
		for (;;) {
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid) {
				char why[200];
				v->ours = 0;
				v->pid = 0;
				qemu_complaint(s, why, sizeof why);
				remove_files(s);
				return fail(job, NN_EX_SOFTWARE, err, "QEMU exited at once: %s", why);
			}
			if (nn_qmp_connect(&v->q, v->sock, 200, qerr) == 0)
				break;
			if (nn_mono_ms() >= until) {
				vm_stop_now(v);
				remove_files(s);
				return fail(job, NN_EX_SOFTWARE, err, "QEMU did not open its QMP socket: %s",
					    qerr);
			}
		}
	}
	if (nn_qmp_execute(&v->q, "query-status", jv_invalid(), &status, 5000, err) < 0) {
		vm_stop_now(v);
		remove_files(s);
		return fail(job, NN_EX_SOFTWARE, NULL, NULL);
	}
	jv_free(status);
	if (record(job, v, err) < 0) {
		vm_stop_now(v);
		remove_files(s);
		return fail(job, NN_EX_IOERR, NULL, NULL);
	}
	return 0;
}

/* ---- console, wait, signal, stats -------------------------------------- */

/* Look for "PREFIX-TOKEN" in the last 64 KiB of the console; returns a
 * pointer just after it inside *buf (caller frees *buf), or NULL. */
static const char *console_find(const struct nn_exec_spec *s, const char *prefix,
				const char *token, char **buf)
{
	char *path = nn_exec_path(s, CONSOLE_FILE);
	char *needle = nn_xasprintf("%s-%s", prefix, token);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	const char *hit = NULL;
	size_t want;
	ssize_t n;

	*buf = NULL;
	free(path);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		free(needle);
		return NULL;
	}
	want = st.st_size > 65536 ? 65536 : (size_t)st.st_size;
	*buf = nn_xmalloc(want + 1);
	n = pread(fd, *buf, want, st.st_size - (off_t)want);
	close(fd);
	if (n > 0) {
		(*buf)[n] = '\0';
		/* the file may hold NULs (firmware noise): search piecewise */
		for (char *p = *buf; p < *buf + n; p += strlen(p) + 1) {
			const char *h = strstr(p, needle);
			if (h)
				hit = h + strlen(needle);
		}
	}
	free(needle);
	return hit;
}

static const char *signame(int sig)
{
	const char *d = sigabbrev_np(sig);
	return d ? d : "?";
}

static void finish(struct nn_exec_job *job, struct vm *v)
{
	struct nn_exec_result *r = &v->res;
	char *buf;
	const char *hit = console_find(job->spec, "nunet-exit", v->token, &buf);
	int code = -1;
	long ooms = 0;

	memset(r, 0, sizeof *r);
	r->done = 1;
	r->code = -1;
	if (hit && sscanf(hit, ": %d %ld", &code, &ooms) >= 1 && code >= 0 && code <= 255) {
		r->code = code;
		if (code == 128 + SIGKILL && ooms > 0) {
			r->code = -1;
			r->oom = 1;
			r->signal = SIGKILL;
			snprintf(r->reason, sizeof r->reason, "out of memory: the guest kernel killed "
				 "%ld process%s in a VM of %lu MiB", ooms, ooms == 1 ? "" : "es",
				 v->mem_mib);
		} else if (v->signalled && code == 128 + v->signalled) {
			r->code = -1;
			r->signal = v->signalled;
			snprintf(r->reason, sizeof r->reason, "killed by signal %d (SIG%s)",
				 r->signal, signame(r->signal));
		} else {
			snprintf(r->reason, sizeof r->reason, "exited with code %d", code);
		}
	} else if (v->killed) {
		r->signal = SIGKILL;
		snprintf(r->reason, sizeof r->reason, "killed by signal 9 (SIGKILL): the VM was stopped");
	} else {
		snprintf(r->reason, sizeof r->reason, "exit status lost: the VM stopped without "
			 "reporting one (see %s)", CONSOLE_FILE);
	}
	free(buf);
}

static void sample(struct vm *v)
{
	char path[64], *text;
	v->sampled_ms = nn_mono_ms();
	if (!v->pid)
		return;
	snprintf(path, sizeof path, "/proc/%d/status", (int)v->pid);
	text = nn_read_file(path, 65536, NULL, NULL);
	if (text) {
		const char *p = strstr(text, "VmHWM:"), *c = strstr(text, "VmRSS:");
		if (p && strtoll(p + 6, NULL, 10) * 1024 > v->st.memory_peak)
			v->st.memory_peak = strtoll(p + 6, NULL, 10) * 1024;
		if (c)
			v->st.memory_current = strtoll(c + 6, NULL, 10) * 1024;
		free(text);
	}
	snprintf(path, sizeof path, "/proc/%d/stat", (int)v->pid);
	text = nn_read_file(path, 65536, NULL, NULL);
	if (text) {
		char *p = strrchr(text, ')');
		unsigned long long ut = 0, stime = 0;
		int field = 2;
		for (p = p ? p + 1 : text; *p && field < 14; p++)
			if (*p == ' ')
				field++;
		if (sscanf(p, "%llu %llu", &ut, &stime) == 2)
			v->st.cpu_seconds = (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
		free(text);
	}
}

/* Forward a signal number to the guest's listener on the fourth serial
 * port (a socket chardev; QEMU holds the bytes until the guest reads). */
static int deliver(struct vm *v, int sig, char *err)
{
	char data[16], *path = nn_xasprintf("%s-sig", v->sock);
	int fd = nn_qmp_dial(path, err), rc = 0;
	free(path);
	if (fd < 0)
		return -1;
	snprintf(data, sizeof data, "%d\n", sig);
	if (nn_write_all(fd, data, strlen(data)) < 0)
		rc = nn_seterr(err, "vm: cannot forward signal %d: %s", sig, strerror(errno));
	close(fd);
	return rc;
}

static int vm_wait(struct nn_exec_job *job, int timeout_ms, struct nn_exec_result *res,
		   char *err)
{
	struct vm *v = priv(job);
	int64_t until = timeout_ms < 0 ? -1 : nn_mono_ms() + timeout_ms;

	if (v->res.done)
		goto done;
	if (!v->pid)
		return fail(job, NN_EX_SOFTWARE, err, "vm: wait() on a job that was not started");
	for (;;) {
		struct pollfd p = { v->pidfd, POLLIN, 0 };
		int64_t left;
		int r;

		if (!v->ready) {
			char *buf;
			if (console_find(job->spec, "nunet-ready", v->token, &buf))
				v->ready = 1;
			free(buf);
			if (v->ready && v->pending_sig) {
				deliver(v, v->pending_sig, NULL);
				v->pending_sig = 0;
			}
		}
		if (nn_mono_ms() - v->sampled_ms >= SAMPLE_MS)
			sample(v);
		left = until < 0 ? 50 : until - nn_mono_ms();
		if (left > 50)
			left = 50;
		if (left < 0)
			left = 0;
		if (v->pidfd >= 0) {
			r = poll(&p, 1, (int)left);
		} else {
			r = nn_exec_proc_starttime(v->pid, 1) == v->starttime ? 0 : 1;
			if (r == 0 && left > 0)
				r = poll(NULL, 0, (int)left) < 0 ? -1 : 0;
		}
		if (r < 0 && errno == EINTR)
			return 0;
		if (r > 0) {
			reap(v, 1);
			finish(job, v);
			break;
		}
		if (until >= 0 && nn_mono_ms() >= until)
			return 0;
	}
done:
	*res = v->res;
	return 1;
}

static int vm_signal(struct nn_exec_job *job, int sig, char *err)
{
	struct vm *v = priv(job);
	if (v->res.done)
		return 0;
	if (!v->pid)
		return fail(job, NN_EX_SOFTWARE, err, "vm: no job to signal");
	if (sig == SIGKILL) {
		v->killed = 1;
		if (v->q.fd < 0 || nn_qmp_execute(&v->q, "quit", jv_invalid(), NULL, 2000, NULL) < 0)
			if (nn_exec_proc_starttime(v->pid, 1) == v->starttime)
				kill(v->pid, SIGKILL);
		return 0;
	}
	v->signalled = sig;
	if (!v->ready) {
		v->pending_sig = sig;	/* the guest is still booting */
		return 0;
	}
	if (deliver(v, sig, err) < 0)
		return fail(job, NN_EX_SOFTWARE, NULL, NULL);
	return 0;
}

static int vm_stats(struct nn_exec_job *job, struct nn_exec_stats *st, char *err)
{
	struct vm *v = priv(job);
	if (v->pid && !v->res.done)
		sample(v);
	*st = v->st;
	if (v->res.done)
		st->memory_current = st->memory_current >= 0 ? 0 : -1;
	return 0;
}

/* ---- cleanup, adopt ------------------------------------------------------ */

static int vm_cleanup(struct nn_exec_job *job, char *err)
{
	struct vm *v = priv(job);
	if (v->pid && !v->res.done) {
		v->killed = 1;
		vm_stop_now(v);
		finish(job, v);
	}
	nn_qmp_close(&v->q);
	if (v->pidfd >= 0)
		close(v->pidfd);
	v->pidfd = -1;
	if (job->spec && job->spec->dir)
		remove_files(job->spec);
	return 0;
}

static int vm_adopt(struct nn_exec_job *job, char *err)
{
	struct vm *v = priv(job);
	char *path = nn_exec_path(job->spec, STATE_FILE);
	char *text = nn_read_file(path, 65536, NULL, err);
	jv o, x;
	int rc = -1;

	free(path);
	if (!text)
		return fail(job, NN_EX_UNAVAILABLE, NULL, NULL);
	o = nn_json_parse(text, strlen(text), err);
	free(text);
	x = jv_object_get(jv_copy(o), jv_string("pid"));
	if (jv_get_kind(x) != JV_KIND_NUMBER || jv_number_value(x) < 2) {
		jv_free(x);
		fail(job, NN_EX_DATAERR, err, "%s: no pid recorded", STATE_FILE);
		goto out;
	}
	v->pid = (pid_t)jv_number_value(x);
	jv_free(x);
	x = jv_object_get(jv_copy(o), jv_string("starttime"));
	v->starttime = jv_get_kind(x) == JV_KIND_NUMBER ? (unsigned long long)jv_number_value(x) : 0;
	jv_free(x);
	x = jv_object_get(jv_copy(o), jv_string("token"));
	snprintf(v->token, sizeof v->token, "%s",
		 jv_get_kind(x) == JV_KIND_STRING ? jv_string_value(x) : "");
	jv_free(x);
	x = jv_object_get(jv_copy(o), jv_string("qmp"));
	snprintf(v->sock, sizeof v->sock, "%s",
		 jv_get_kind(x) == JV_KIND_STRING ? jv_string_value(x) : "");
	jv_free(x);
	v->ours = 0;
	v->ready = 1;	/* a guest that was ever waited for has long booted */
	job->adopted = 1;
	job->pid = v->pid;
	snprintf(job->handle, sizeof job->handle, "qemu pid %d", (int)v->pid);
	if (v->starttime && nn_exec_proc_starttime(v->pid, 1) == v->starttime) {
		v->pidfd = (int)syscall(SYS_pidfd_open, v->pid, 0);
		if (v->sock[0] == '@')
			nn_qmp_connect(&v->q, v->sock, 2000, NULL);
		{
			char *buf;
			v->ready = console_find(job->spec, "nunet-ready", v->token, &buf) != NULL;
			free(buf);
		}
	} else {
		finish(job, v);	/* it ended while nobody watched */
	}
	rc = 0;
out:
	jv_free(o);
	return rc;
}

static void vm_free(struct nn_exec_job *job)
{
	struct vm *v = job->priv;
	if (!v)
		return;
	nn_qmp_close(&v->q);
	if (v->pidfd >= 0)
		close(v->pidfd);
	if (v->ours)
		reap(v, 0);
	free(v->qemu);
	free(v->kernel);
	free(v->initrd);
	free(v->append);
	free(v->machine);
	free(v->accel);
}

const struct nn_executor nn_exec_vm = {
	.name = "vm",
	.available = vm_available,
	.prepare = vm_prepare,
	.start = vm_start,
	.wait = vm_wait,
	.signal = vm_signal,
	.stats = vm_stats,
	.cleanup = vm_cleanup,
	.adopt = vm_adopt,
	.release = vm_free,
};
