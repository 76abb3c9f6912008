/* CPUs the process can use: the cgroup v2 quota read from a fake cgroup tree (the least along
 * the path, rounded up; "max", missing or malformed files and v1-only processes give none), and
 * sl_cpus_usable following the affinity mask. */
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

static int quota(const char *self_text)
{
    put("self", self_text);
    char root[256], self[256];
    snprintf(root, sizeof root, "%s/cg", tmp_root);
    snprintf(self, sizeof self, "%s/self", tmp_root);
    return sl_cpus_quota(root, self);
}

static void test_quota_along_the_path(void **state)
{
    (void)state;
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

static void test_no_quota(void **state)
{
    (void)state;
    folder("cg2");
    put("cg2/cpu.max", "garbage\n");
    char root[256], self[256];
    snprintf(root, sizeof root, "%s/cg2", tmp_root);
    snprintf(self, sizeof self, "%s/self2", tmp_root);
    put("self2", "0::/\n");
    assert_int_equal(sl_cpus_quota(root, self), 0);          /* malformed */
    assert_int_equal(quota("12:cpu,cpuacct:/a/b\n"), 0);     /* cgroup v1 only */
    assert_int_equal(quota("0::/../escape\n"), 0);           /* not a path below the root */
    assert_int_equal(quota("0::/nowhere\n"), 0);             /* no such folder */
    assert_int_equal(sl_cpus_quota(root, "/nonexistent/cgroup"), 0);
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
        cmocka_unit_test(test_no_quota),
        cmocka_unit_test(test_usable_follows_affinity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
