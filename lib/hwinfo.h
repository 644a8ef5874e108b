/*
 * hwinfo — what this machine is, read from /proc, /sys and /dev (and, for
 * NVIDIA GPUs, from `nvidia-smi` run as a child with a timeout; for Docker,
 * from one GET /_ping on its unix socket).  Nothing here measures speed
 * (that is bench.c) and nothing prints.
 *
 * Every path is read under a root prefix (`sysroot`: NULL or "" for "/"),
 * so detection can be tested against a fake tree: sysroot "/tmp/x" reads
 * /tmp/x/proc/cpuinfo, /tmp/x/sys/bus/pci/devices/…, /tmp/x/dev/kvm,
 * /tmp/x/var/run/docker.sock.  With a sysroot, probes that would need the
 * real kernel (unshare(2) of namespaces) are replaced by the files alone.
 *
 * Results are jv values in the capability document's vocabulary
 * (man/nunet-capability.5); integers only, sizes in bytes, MHz for clocks.
 */
#ifndef NN_HWINFO_H
#define NN_HWINFO_H

#include <stdint.h>
#include <jv.h>
#include "util.h"

struct nn_hwinfo_opts {
	const char *sysroot;	/* prefix for every path; NULL or "" = "/" */
	const char *docker_host;/* $DOCKER_HOST (unix://PATH) or NULL */
	int64_t timeout_ms;	/* for nvidia-smi and the Docker ping */
};

/* "path" under sysroot, as a new string (caller frees). */
char *nn_hwinfo_path(const char *sysroot, const char *path);

/* {"arch","model","cores","threads","mhz"}: arch from uname(2); model,
 * cores (distinct physical id + core id pairs) and threads (processor
 * entries) from proc/cpuinfo; mhz, the nominal clock, from cpufreq's
 * base_frequency or amd_pstate_nominal_freq, else the model name's
 * "@ 2.00GHz", else cpufreq's cpuinfo_max_freq, else the highest "cpu MHz".
 * Invalid + err when cpuinfo cannot be read. */
jv nn_hwinfo_cpu(const char *sysroot, char *err);

/* The CPU time the cgroups of this process may use, in millicores (1000 =
 * one CPU), from cgroup v2 cpu.max or v1 cpu.cfs_quota_us over
 * cpu.cfs_period_us: the smallest limit on the way from this process's
 * cgroup (proc/self/cgroup) up to its hierarchy's mount (proc/self/
 * mountinfo).  0 when there is no limit or it cannot be read. */
int64_t nn_hwinfo_cpu_quota(const char *sysroot);

/* MemTotal from proc/meminfo, in bytes.  0, or -1 + err. */
int nn_hwinfo_ram_size(const char *sysroot, uint64_t *out, char *err);

/* The kernel release's leading numeric part ("6.18.44" of
 * "6.18.44-fc-v657"), from proc/sys/kernel/osrelease, else uname(2).
 * Caller frees. */
char *nn_hwinfo_kernel(const char *sysroot);

/* GPUs: [{"vendor","model","vram"}], one per PCI display controller (class
 * 0x03xxxx) of vendor 0x10de (nvidia), 0x1002 (amd) or 0x8086 (intel) under
 * sys/bus/pci/devices and sys/class/drm/cardN/device, in PCI address order.
 * Model and vram come, best first, from nvidia-smi, from
 * proc/driver/nvidia/gpus/ADDR/information, from sysfs (amdgpu
 * mem_info_vram_total and product_name; xe tileN/physical_vram_size_bytes;
 * i915 lmem_total_bytes), and from usr/share/misc/pci.ids; an unknown vram
 * is 0.  Never fails: what cannot be read is left out. */
jv nn_hwinfo_gpus(const struct nn_hwinfo_opts *o);

/* Kernel features: a subset of ["cgroup1","cgroup2","namespaces","netns",
 * "kvm","tun"] in that order.  cgroupN: that version's hierarchy offers
 * both the cpu and the memory controller.  namespaces: pid, mnt, uts and
 * ipc namespaces exist (and, without a sysroot, a child can unshare them);
 * netns: likewise for net.  kvm, tun: dev/kvm, dev/net/tun open read-write. */
jv nn_hwinfo_features(const struct nn_hwinfo_opts *o);

/* Executors: a subset of ["native","docker","vm"].  native when features
 * (borrowed) has "namespaces"; docker when the Docker API socket answers
 * GET /_ping with OK ($DOCKER_HOST unix://PATH, else var/run/docker.sock;
 * other DOCKER_HOST schemes are not probed); vm when qemu-system-ARCH
 * (ARCH from uname(2)) or firecracker is an executable on $PATH (QEMU runs
 * without KVM too; "kvm" in features says whether it is accelerated). */
jv nn_hwinfo_executors(const struct nn_hwinfo_opts *o, jv features);

/* One GET /_ping on a Docker API unix socket: 0 when it answers 200 "OK",
 * -1 + err otherwise. */
int nn_hwinfo_docker_ping(const char *sock, int64_t timeout_ms, char *err);

#endif
