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

/* folder/name opened for reading, or NULL. */
static FILE *open_in(const char *folder, const char *name)
{
    char path[8300];
    return snprintf(path, sizeof path, "%s/%s", folder, name) < (int)sizeof path
               ? fopen(path, "r")
               : NULL;
}

/* The first number in folder/name, or -1. */
static long long read_number(const char *folder, const char *name)
{
    FILE *f = open_in(folder, name);
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
    FILE *f = open_in(folder, "cpu.max");
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

/* Decodes mountinfo's octal escapes ("\\040" for a space) in place. */
static void unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* The length of root as a prefix of path ("/" and "" match every path), or -1 when path is not
 * at or below root. */
static int below(const char *path, const char *root)
{
    size_t n = strcmp(root, "/") == 0 ? 0 : strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0') ? (int)n : -1;
}

/* From mountinfo, the mount of the v2 hierarchy (cgroup2) or of v1's cpu controller that holds
 * the cgroup at `path` (the one whose root is its longest prefix, when there are several): into
 * `folder` the folder of that cgroup, and into *top the length of the mount point's part. */
static int find_folder(const char *mountinfo, int v2, const char *path, char *folder, size_t n,
                       size_t *top)
{
    FILE *f = fopen(mountinfo, "r");
    if (!f) {
        return 0;
    }
    char line[8192];
    int best = -1;
    while (fgets(line, sizeof line, f)) {
        char root[4096], point[4096], fstype[64], opts[1024];
        const char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) != 2 ||
            sscanf(dash + 3, "%63s %*s %1023s", fstype, opts) != 2 ||
            !(v2 ? strcmp(fstype, "cgroup2") == 0
                 : strcmp(fstype, "cgroup") == 0 && has_word(opts, "cpu"))) {
            continue;
        }
        unescape(root);
        unescape(point);
        int skip = below(path, root);
        if (skip > best && snprintf(folder, n, "%s%s", point, path + skip) < (int)n) {
            best = skip;
            *top = strlen(point);
        }
    }
    fclose(f);
    return best >= 0;
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

/* Whether path has a ".." component. */
static int climbs(const char *path)
{
    for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/* The least quota along the process's cgroup path in one hierarchy, up to its mount's root. */
static int hierarchy_quota(const char *mountinfo, const char *self, int v2)
{
    char path[4096], folder[8192];
    size_t top = 0;
    if (!find_cgroup(self, v2, path, sizeof path) || path[0] != '/' || climbs(path) ||
        !find_folder(mountinfo, v2, path, folder, sizeof folder, &top)) {
        return 0;
    }
    int least = 0;
    for (;;) { /* the folder, then each parent up to the mount's root */
        int q = folder_quota(folder, v2);
        if (q > 0 && (least == 0 || q < least)) {
            least = q;
        }
        char *slash = strrchr(folder, '/');
        if (!slash || (size_t)(slash - folder) < top) {
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
