/* CPUs the process can use: the cgroup quota read from a fake mount table and cgroup trees (v2
 * and v1; the least along the path, rounded up; "max", -1, missing or malformed files give
 * none), and sl_cpus_usable following the affinity mask. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TMPDIR_NAME "cpus"
#include "tmpdir.h"

#include "core/cpus.h"

static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_root, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void folder(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_root, rel);
    assert_int_equal(mkdir(path, 0700), 0);
}

/* A mount table with the v2 hierarchy at <tmp>/cg (and a part of it, /other, at <tmp>/other)
 * and v1's cpu controller whole at <tmp>/v1all (empty here) and from /docker/x of its hierarchy
 * at "<tmp>/v 1" (escaped as mountinfo does; as in a container: the mount with the longest root
 * holding the process's cgroup counts), then the quota for a process in the cgroups self_text
 * names. */
static int quota(const char *self_text)
{
    char table[2048], mountinfo[256], self[256];
    snprintf(table, sizeof table,
             "24 1 0:23 /other %s/other rw,relatime shared:5 - cgroup2 cgroup2 rw\n"
             "25 1 0:23 / %s/cg rw,relatime shared:5 - cgroup2 cgroup2 rw\n"
             "26 1 0:24 / %s/acct rw,relatime - cgroup cgroup rw,cpuacct\n"
             "27 1 0:25 / %s/v1all rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
             "28 1 0:25 /docker/x %s/v\\0401 rw,relatime - cgroup cgroup rw,cpu,cpuacct\n",
             tmp_root, tmp_root, tmp_root, tmp_root, tmp_root);
    put("mountinfo", table);
    put("self", self_text);
    snprintf(mountinfo, sizeof mountinfo, "%s/mountinfo", tmp_root);
    snprintf(self, sizeof self, "%s/self", tmp_root);
    return sl_cpus_quota(mountinfo, self);
}

static void test_quota_along_the_path(void **state)
{
    (void)state;
    put("cpu.max", "100000 100000\n"); /* above the mount point: never read */
    folder("cg");
    folder("cg/a");
    folder("cg/a/b");
    put("cg/cpu.max", "max 100000\n");
    put("cg/a/b/cpu.max", "max 100000\n");
    assert_int_equal(quota("0::/a/b\n"), 0); /* no quota anywhere */
    put("cg/a/cpu.max", "150000 100000\n");   /* 1.5 CPUs in the parent: 2 */
    assert_int_equal(quota("0::/a/b\n"), 2);
    put("cg/a/b/cpu.max", "400000 100000\n"); /* the least wins */
    assert_int_equal(quota("0::/a/b\n"), 2);
    put("cg/cpu.max", "100000 100000\n");
    assert_int_equal(quota("0::/a/b\n"), 1);
    assert_int_equal(quota("0::/\n"), 1); /* the root itself */
    put("cg/cpu.max", "max 100000\n");
    assert_int_equal(quota("0::/a\n"), 2);
}

/* cgroup v1 (a hybrid or v1-only host): the cpu controller's cfs quota, read below the mount's
 * root; the least of the two hierarchies when both have one. */
static void test_v1_quota(void **state)
{
    (void)state;
    folder("v1all");
    folder("v 1");
    folder("v 1/c");
    folder("acct");
    folder("acct/c");
    put("v 1/cpu.cfs_quota_us", "-1\n");
    put("v 1/cpu.cfs_period_us", "100000\n");
    put("v 1/c/cpu.cfs_quota_us", "-1\n");
    put("v 1/c/cpu.cfs_period_us", "100000\n");
    put("acct/c/cpu.cfs_quota_us", "100000\n"); /* not the cpu controller: ignored */
    put("acct/c/cpu.cfs_period_us", "100000\n");
    /* the cpuacct line comes first, with another path: the cpu controller's line counts */
    const char *self = "12:cpuacct:/docker/x\n4:cpu,cpuacct:/docker/x/c\n0::/\n";
    assert_int_equal(quota(self), 0); /* -1: none */
    put("v 1/cpu.cfs_quota_us", "250000\n"); /* the container's own: 2.5 CPUs, 3 */
    assert_int_equal(quota(self), 3);
    put("v 1/c/cpu.cfs_quota_us", "150000\n");
    assert_int_equal(quota(self), 2);
    assert_int_equal(quota("4:cpu,cpuacct:/docker/x\n"), 3);
    assert_int_equal(quota("4:cpu,cpuacct:/docker/y/c\n"), 0); /* not below the mount's root */
    assert_int_equal(quota("4:cpu,cpuacct:/c\n"), 0); /* <tmp>/v1all/c: none (acct/c: not cpu) */
    folder("v 1c"); /* where /docker/xc would land if the root matched it as a prefix */
    put("v 1c/cpu.cfs_quota_us", "100000\n");
    put("v 1c/cpu.cfs_period_us", "100000\n");
    assert_int_equal(quota("4:cpu,cpuacct:/docker/xc\n"), 0);
    folder("cg/c");
    put("cg/c/cpu.max", "100000 100000\n"); /* v2 says 1, v1 says 2: 1 */
    assert_int_equal(quota("4:cpu,cpuacct:/docker/x/c\n0::/c\n"), 1);
    put("cg/c/cpu.max", "400000 100000\n"); /* v2 says 4: 2 */
    assert_int_equal(quota("4:cpu,cpuacct:/docker/x/c\n0::/c\n"), 2);
}

static void test_no_quota(void **state)
{
    (void)state;
    folder("cg/g");
    put("cg/g/cpu.max", "garbage\n");
    assert_int_equal(quota("0::/g\n"), 0);                 /* malformed */
    assert_int_equal(quota("12:cpuset:/a/b\n"), 0);        /* no cpu controller line */
    folder("escape");
    put("escape/cpu.max", "100000 100000\n");
    assert_int_equal(quota("0::/../escape\n"), 0); /* not a path below the root */
    folder("cg/..x");
    put("cg/..x/cpu.max", "100000 100000\n");
    assert_int_equal(quota("0::/..x\n"), 1); /* a name, not a climb */
    assert_int_equal(quota("0::/nowhere\n"), 0);           /* no such folder */
    char mountinfo[256];
    snprintf(mountinfo, sizeof mountinfo, "%s/mountinfo", tmp_root);
    assert_int_equal(sl_cpus_quota(mountinfo, "/nonexistent/cgroup"), 0);
    assert_int_equal(sl_cpus_quota("/nonexistent/mountinfo", "/proc/self/cgroup"), 0);
}

static void test_usable_follows_affinity(void **state)
{
    (void)state;
    cpu_set_t allowed;
    sl_cpus_allowed(&allowed);
    int n = sl_cpus_usable(&allowed);
    assert_true(n >= 1 && n <= CPU_COUNT(&allowed));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* bound to one CPU: one usable */
        cpu_set_t one;
        CPU_ZERO(&one);
        for (int i = 0; i < CPU_SETSIZE; i++) {
            if (CPU_ISSET(i, &allowed)) {
                CPU_SET(i, &one);
                break;
            }
        }
        int bound = sched_setaffinity(0, sizeof one, &one) == 0;
        cpu_set_t now;
        sl_cpus_allowed(&now);
        _exit(bound && CPU_EQUAL(&now, &one) && sl_cpus_usable(&now) == 1 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_along_the_path),
        cmocka_unit_test(test_v1_quota),
        cmocka_unit_test(test_no_quota),
        cmocka_unit_test(test_usable_follows_affinity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
