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

/* The CPUs' worth of time a quota of `quota` per `period` allows (rounded up), or 0 for none
 * (v2 "max", v1 -1, malformed). */
static int cpus_of(long long quota, long long period)
{
    if (quota <= 0 || period <= 0) {
        return 0;
    }
    long long cpus = (quota + period - 1) / period;
    return cpus > 1 << 20 ? 1 << 20 : (int)cpus;
}

/* The first number in folder/name, or -1. */
static long long read_number(const char *folder, const char *name)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", folder, name) >= (int)sizeof path) {
        return -1;
    }
    FILE *f = fopen(path, "r");
    long long v = -1;
    if (f) {
        if (fscanf(f, "%lld", &v) != 1) {
            v = -1;
        }
        fclose(f);
    }
    return v;
}

/* The quota of one cgroup folder: v2's cpu.max ("max 100000" or "150000 100000"), v1's
 * cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us; 0 without one. */
static int folder_quota(const char *folder, int v2)
{
    if (!v2) {
        return cpus_of(read_number(folder, "cpu.cfs_quota_us"),
                       read_number(folder, "cpu.cfs_period_us"));
    }
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
    return got == 2 ? cpus_of(quota, period) : 0; /* "max": no number */
}

/* Whether `list` (comma-separated) holds `word`. */
static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/* From mountinfo, the mount of the v2 hierarchy (cgroup2) or of v1's cpu controller: its root
 * within the hierarchy and where it is mounted. */
static int find_mount(const char *mountinfo, int v2, char *root, char *point)
{
    FILE *f = fopen(mountinfo, "r");
    if (!f) {
        return 0;
    }
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char fstype[64], opts[1024];
        const char *dash = strstr(line, " - ");
        found = dash && sscanf(line, "%*s %*s %*s %1023s %1023s", root, point) == 2 &&
                sscanf(dash + 3, "%63s %*s %1023s", fstype, opts) == 2 &&
                (v2 ? strcmp(fstype, "cgroup2") == 0
                    : strcmp(fstype, "cgroup") == 0 && has_word(opts, "cpu"));
    }
    fclose(f);
    return found;
}

/* From self (/proc/self/cgroup), the process's cgroup in the v2 hierarchy ("0::/path") or in
 * v1's cpu controller ("4:cpu,cpuacct:/path"). */
static int find_cgroup(const char *self, int v2, char *path, size_t n)
{
    FILE *f = fopen(self, "r");
    if (!f) {
        return 0;
    }
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *colon = strchr(line, ':');
        char *rel = colon ? strchr(colon + 1, ':') : NULL;
        if (rel) {
            const char *controllers = colon + 1;
            *colon = '\0';
            *rel++ = '\0';
            found = v2 ? strcmp(line, "0") == 0 && controllers[0] == '\0'
                       : has_word(controllers, "cpu");
            found = found && snprintf(path, n, "%s", rel) < (int)n;
        }
    }
    fclose(f);
    return found;
}

/* The least quota along the process's cgroup path in one hierarchy, up to its mount's root. */
static int hierarchy_quota(const char *mountinfo, const char *self, int v2)
{
    char root[1024], point[1024], path[4096];
    if (!find_mount(mountinfo, v2, root, point) || !find_cgroup(self, v2, path, sizeof path)) {
        return 0;
    }
    /* the path below the mount's root (a container sees only its own part of the hierarchy) */
    size_t skip = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (strncmp(path, root, skip) != 0 || (path[skip] != '/' && path[skip] != '\0') ||
        strstr(path, "/..")) {
        return 0;
    }
    char *rel = path + skip;
    int least = 0;
    for (;;) { /* the folder, then each parent up to the mount's root */
        char folder[6000];
        int q = snprintf(folder, sizeof folder, "%s%s", point, rel) < (int)sizeof folder
                    ? folder_quota(folder, v2)
                    : 0;
        if (q > 0 && (least == 0 || q < least)) {
            least = q;
        }
        char *slash = strrchr(rel, '/');
        if (!slash) {
            break;
        }
        *slash = '\0';
    }
    return least;
}

int sl_cpus_quota(const char *mountinfo, const char *self)
{
    int v2 = hierarchy_quota(mountinfo, self, 1), v1 = hierarchy_quota(mountinfo, self, 0);
    return v1 > 0 && (v2 == 0 || v1 < v2) ? v1 : v2;
}

int sl_cpus_usable(const cpu_set_t *cpus)
{
    int n = CPU_COUNT(cpus);
    int quota = sl_cpus_quota("/proc/self/mountinfo", "/proc/self/cgroup");
    if (quota > 0 && quota < n) {
        n = quota;
    }
    return n > 0 ? n : 1;
}
