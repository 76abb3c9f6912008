#include "core/cpus.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void sl_cpus_allowed(cpu_set_t *out)
{
    if (sched_getaffinity(0, sizeof *out, out) == 0 && CPU_COUNT(out) > 0) {
        return;
    }
    CPU_ZERO(out);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 0; i < (n > 0 ? n : 1) && i < CPU_SETSIZE; i++) {
        CPU_SET((int)i, out);
    }
}

/* The quota of one cgroup folder's cpu.max ("max 100000" or "150000 100000"), or 0. */
static int folder_quota(const char *folder)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/cpu.max", folder) >= (int)sizeof path) {
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    long long quota = 0, period = 0;
    int got = fscanf(f, "%lld %lld", &quota, &period);
    fclose(f);
    if (got != 2 || quota <= 0 || period <= 0) { /* "max": no number */
        return 0;
    }
    long long cpus = (quota + period - 1) / period;
    return cpus > 1 << 20 ? 1 << 20 : (int)cpus;
}

int sl_cpus_quota(const char *root, const char *self)
{
    FILE *f = fopen(self, "r");
    if (!f) {
        return 0;
    }
    char line[4096], rel[4096] = "";
    int v2 = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) == 0) { /* the unified (v2) hierarchy */
            snprintf(rel, sizeof rel, "%s", line + 3);
            rel[strcspn(rel, "\n")] = '\0';
            v2 = 1;
        }
    }
    fclose(f);
    if (!v2 || rel[0] != '/' || strstr(rel, "/..")) {
        return 0;
    }
    int least = 0;
    for (;;) { /* the folder, then each parent up to the root */
        char folder[4200];
        int q = snprintf(folder, sizeof folder, "%s%s", root, rel) < (int)sizeof folder
                    ? folder_quota(folder)
                    : 0;
        if (q > 0 && (least == 0 || q < least)) {
            least = q;
        }
        char *slash = strrchr(rel, '/');
        if (!slash || rel[1] == '\0') {
            break;
        }
        slash[slash == rel ? 1 : 0] = '\0';
    }
    return least;
}

int sl_cpus_usable(const cpu_set_t *cpus)
{
    int n = CPU_COUNT(cpus);
    int quota = sl_cpus_quota("/sys/fs/cgroup", "/proc/self/cgroup");
    if (quota > 0 && quota < n) {
        n = quota;
    }
    return n > 0 ? n : 1;
}
