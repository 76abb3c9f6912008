/* How many threads this process can run at once: the CPUs it may run on (its affinity mask, as
 * taskset, numactl, a container's cpuset or the launcher's binding leave it), capped by its
 * cgroup's CPU quota (a container's --cpus, a Kubernetes CPU limit). */
#ifndef SL_CORE_CPUS_H
#define SL_CORE_CPUS_H

#include <sched.h>

/* The CPUs this process may run on (all online ones if the mask cannot be read). */
void sl_cpus_allowed(cpu_set_t *out);
/* The CPUs' worth of time the cgroup quota allows (quota / period, rounded up: v2's cpu.max, v1's
 * cpu.cfs_quota_us and cpu.cfs_period_us; the least along the process's cgroup path up to the
 * hierarchy's mount, and of the two hierarchies), or 0 without a quota. `mountinfo` and `self`:
 * the mount table and the process's cgroup file (/proc/self/mountinfo and /proc/self/cgroup;
 * tests give others). */
int sl_cpus_quota(const char *mountinfo, const char *self);
/* How many threads can run at once on `cpus`: their count, capped by this process's cgroup
 * quota (sl_cpus_quota) when there is one; at least 1. */
int sl_cpus_usable(const cpu_set_t *cpus);

#endif
