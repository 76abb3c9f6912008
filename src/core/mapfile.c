#include "core/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct aligned_copy {
    size_t offset, size;
    void *data;
} aligned_copy;

struct sl_mapfile {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    const uint8_t *addr;
    int refs;
    aligned_copy *copies;
    int n_copies;
    struct sl_mapfile *next;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static sl_mapfile *registry;

static int same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

sl_status sl_mapfile_open(const char *path, sl_mapfile **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return sl_error(SL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return sl_error(SL_ERR_IO, "'%s' is not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return sl_error(SL_ERR_FORMAT, "'%s' is empty", path);
    }
    pthread_mutex_lock(&registry_mu);
    for (sl_mapfile *f = registry; f; f = f->next) {
        if (f->dev == sb.st_dev && f->ino == sb.st_ino && f->size == sb.st_size &&
            same_time(f->mtime, sb.st_mtim) && same_time(f->ctime, sb.st_ctim)) {
            f->refs++;
            pthread_mutex_unlock(&registry_mu);
            close(fd);
            *out = f;
            return SL_OK;
        }
    }
    sl_status st = SL_OK;
    sl_mapfile *f = calloc(1, sizeof *f);
    void *addr = MAP_FAILED;
    if (!f) {
        st = sl_error(SL_ERR_NOMEM, "out of memory mapping '%s'", path);
    } else {
        addr = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (addr == MAP_FAILED) {
            st = sl_error(SL_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
        }
    }
    close(fd);
    if (st != SL_OK) {
        free(f);
        pthread_mutex_unlock(&registry_mu);
        return st;
    }
    f->dev = sb.st_dev;
    f->ino = sb.st_ino;
    f->size = sb.st_size;
    f->mtime = sb.st_mtim;
    f->ctime = sb.st_ctim;
    f->addr = addr;
    f->refs = 1;
    f->next = registry;
    registry = f;
    pthread_mutex_unlock(&registry_mu);
    *out = f;
    return SL_OK;
}

void sl_mapfile_release(sl_mapfile *f)
{
    if (!f) {
        return;
    }
    pthread_mutex_lock(&registry_mu);
    if (--f->refs > 0) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    for (sl_mapfile **p = &registry; *p; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);
    munmap((void *)f->addr, (size_t)f->size);
    for (int i = 0; i < f->n_copies; i++) {
        free(f->copies[i].data);
    }
    free(f->copies);
    free(f);
}

const uint8_t *sl_mapfile_data(const sl_mapfile *f)
{
    return f->addr;
}

size_t sl_mapfile_size(const sl_mapfile *f)
{
    return (size_t)f->size;
}

sl_status sl_mapfile_aligned_copy(sl_mapfile *f, size_t offset, size_t size, const void **out)
{
    *out = NULL;
    if (offset > (size_t)f->size || size > (size_t)f->size - offset) {
        return sl_error(SL_ERR_INTERNAL, "copy of [%zu, +%zu) outside a %lld-byte file", offset,
                        size, (long long)f->size);
    }
    sl_status st = SL_OK;
    pthread_mutex_lock(&registry_mu);
    for (int i = 0; i < f->n_copies; i++) {
        if (f->copies[i].offset == offset && f->copies[i].size == size) {
            *out = f->copies[i].data;
            pthread_mutex_unlock(&registry_mu);
            return SL_OK;
        }
    }
    aligned_copy *c = realloc(f->copies, sizeof *c * (size_t)(f->n_copies + 1));
    void *data = NULL;
    if (!c || posix_memalign(&data, 64, size ? size : 1) != 0) {
        if (c) {
            f->copies = c;
        }
        st = sl_error(SL_ERR_NOMEM, "out of memory copying %zu bytes of weights", size);
    } else {
        memcpy(data, f->addr + offset, size);
        /* the file's pages of this range are not read again: drop them from memory (only
         * whole pages inside the range; the mapping is private and unmodified, so they come
         * back from the file should anything touch them) */
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)(f->addr + offset) + page - 1) / page * page;
        uintptr_t hi = (uintptr_t)(f->addr + offset + size) / page * page;
        if (hi > lo) {
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
        }
        f->copies = c;
        c[f->n_copies++] = (aligned_copy){offset, size, data};
        *out = data;
    }
    pthread_mutex_unlock(&registry_mu);
    return st;
}

int sl_mapfile_live_count(void)
{
    int n = 0;
    pthread_mutex_lock(&registry_mu);
    for (sl_mapfile *f = registry; f; f = f->next) {
        n++;
    }
    pthread_mutex_unlock(&registry_mu);
    return n;
}
