/* libFuzzer harness for everything a model file reaches: bytes -> a model file -> build (load,
 * infer shapes, fold, plan) -> resize dynamic dims to 2 -> predict once on zero inputs when they
 * are small. Every failure must be an error status with a message; sanitizers catch the rest.
 *
 * Build (clang; ASan+UBSan with SL_SANITIZE, off by default):
 *   cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
 *         -DSL_SANITIZE=ON -DSL_BUILD_FUZZ=ON && cmake --build build-fuzz --target fuzz_mindir
 * Run (seeds: the MindIR fixtures, e.g. ../shared/fixtures/mindir, copied into a corpus folder):
 *   build-fuzz/tests/fuzz/fuzz_mindir -dict=tests/fuzz/mindir.dict -rss_limit_mb=2048 \
 *         -timeout=10 -max_total_time=900 corpus/
 * The model is written to a private temporary folder that also holds external data files
 * ("data_0", "m_variables/data_0") for models that point at them. The arenas that big shapes
 * ask for show up as out-of-memory reports (malloc over -rss_limit_mb); to have them fail like
 * on a machine without that much memory (SL_ERR_NOMEM), run with
 *   ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=2048 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shardlite/shardlite.h"

#define MAX_INPUT_ELEMENTS (1u << 20) /* predict only when the inputs are this small */
#define MAX_ARENA_BYTES ((size_t)512 << 20)

static char model_path[300];
static sl_context *context;

static void write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
    for (const uint8_t *p = data; n;) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            perror(path);
            abort();
        }
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char dir[64] = "/tmp/sl_fuzz_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(model_path, sizeof model_path, "%s/m.mindir", dir);
    uint8_t data[64 + 4096] = {1}; /* the 64-byte header (little-endian), then bytes */
    for (size_t i = 64; i < sizeof data; i++) {
        data[i] = (uint8_t)(i * 7);
    }
    char path[300];
    snprintf(path, sizeof path, "%s/data_0", dir);
    write_file(path, data, sizeof data);
    snprintf(path, sizeof path, "%s/m_variables", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/m_variables/data_0", dir);
    write_file(path, data, sizeof data);
    if (sl_context_create(&context) != SL_OK || sl_context_set_thread_num(context, 1) != SL_OK) {
        abort();
    }
    return 0;
}

/* A failure must come with a message. */
static void check_failure(sl_status st, const char *what)
{
    if (!sl_last_error()[0]) {
        fprintf(stderr, "%s failed (%s) without a message\n", what, sl_status_name(st));
        abort();
    }
}

static void resize_dynamic(sl_model *m)
{
    enum { MAX_IN = 64 };
    size_t n = sl_model_input_count(m), ranks[MAX_IN];
    int64_t dims[MAX_IN][SL_MAX_DIMS];
    const int64_t *shapes[MAX_IN];
    int dynamic = 0;
    if (n > MAX_IN) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sl_tensor *t = sl_model_input(m, i);
        ranks[i] = sl_tensor_rank(t);
        for (size_t k = 0; k < ranks[i]; k++) {
            dims[i][k] = sl_tensor_dim(t, k);
            dynamic |= dims[i][k] < 0;
            dims[i][k] = dims[i][k] < 0 ? 2 : dims[i][k];
        }
        shapes[i] = dims[i];
    }
    if (dynamic) {
        sl_status st = sl_model_resize(m, n, shapes, ranks);
        if (st != SL_OK) {
            check_failure(st, "resize");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unlink(model_path); /* a new file: never a mapping of the last one */
    write_file(model_path, data, size);
    sl_model *m = NULL;
    sl_status st = sl_model_build_from_file(model_path, context, &m);
    if (st != SL_OK) {
        if (m) {
            abort();
        }
        check_failure(st, "build");
        return 0;
    }
    resize_dynamic(m);
    size_t elements = 0;
    for (size_t i = 0; i < sl_model_input_count(m); i++) {
        sl_tensor *t = sl_model_input(m, i);
        size_t e = sl_tensor_element_count(t);
        elements = e > MAX_INPUT_ELEMENTS ? MAX_INPUT_ELEMENTS + 1 : elements + e;
        void *d = sl_tensor_data(t);
        if (d && elements <= MAX_INPUT_ELEMENTS) {
            memset(d, 0, sl_tensor_byte_size(t));
        }
    }
    if (elements <= MAX_INPUT_ELEMENTS && sl_model_arena_bytes(m) <= MAX_ARENA_BYTES) {
        st = sl_model_predict(m);
        if (st != SL_OK) {
            check_failure(st, "predict");
        }
    }
    for (size_t i = 0; i < sl_model_user_info_count(m); i++) {
        const char *k, *v;
        if (sl_model_user_info(m, i, &k, &v) != SL_OK || !k || !v) {
            abort();
        }
    }
    for (size_t i = 0; i < sl_model_weight_count(m); i++) {
        if (!sl_model_weight_name(m, i)) {
            abort();
        }
    }
    sl_model_destroy(m);
    return 0;
}
