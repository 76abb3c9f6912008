/* Malformed models: every truncation and thousands of random corruptions of the real fixtures
 * must give an error status with a message (or, for corrupted weight bytes, a model that runs):
 * no crash, no hang, no leak (this test also runs under ASan+UBSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>

#include "fixtures.h"
#include "shardlite/shardlite.h"

#define N_CORRUPTIONS 10000

static char tmp_path[256];

/* Builds the model at tmp_path; when it builds, fills inputs and predicts once. Returns 1 when
 * the build failed (with a message), 0 when it built. */
static int try_model(void)
{
    sl_model *m = NULL;
    sl_status st = sl_model_build_from_file(tmp_path, NULL, &m);
    if (st != SL_OK) {
        assert_null(m);
        assert_true(strlen(sl_last_error()) > 0);
        return 1;
    }
    for (size_t i = 0; i < sl_model_input_count(m); i++) {
        sl_tensor *t = sl_model_input(m, i);
        size_t n = sl_tensor_byte_size(t);
        void *d = sl_tensor_data(t);
        if (d) {
            memset(d, 0x3c, n); /* small positive floats, valid ints */
        }
    }
    st = sl_model_predict(m);
    assert_true(st == SL_OK || strlen(sl_last_error()) > 0);
    sl_model_destroy(m);
    return 0;
}

static void test_truncated(void **state)
{
    (void)state;
    for (size_t f = 0; f < SL_N_FIXTURES; f++) {
        char path[512];
        size_t size;
        unsigned char *buf = sl_fixture_read(sl_fixture_names[f], &size, path, sizeof path);
        assert_non_null(buf);
        /* every offset; the 250 KB LeNet every 61st (its weights are one long field) */
        size_t step = size > 100000 ? 61 : 1;
        size_t failed = 0, tried = 0;
        for (size_t cut = 0; cut < size; cut += step) {
            sl_write_file(tmp_path, buf, cut);
            failed += (size_t)try_model();
            tried++;
        }
        /* a protobuf cut anywhere but at a field boundary is malformed: nearly all must fail */
        assert_true(failed * 10 >= tried * 9);
        free(buf);
    }
}

static void test_corrupted(void **state)
{
    (void)state;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    size_t sizes[SL_N_FIXTURES];
    unsigned char *bufs[SL_N_FIXTURES];
    for (size_t f = 0; f < SL_N_FIXTURES; f++) {
        char path[512];
        bufs[f] = sl_fixture_read(sl_fixture_names[f], &sizes[f], path, sizeof path);
        assert_non_null(bufs[f]);
    }
    size_t failed = 0;
    for (int i = 0; i < N_CORRUPTIONS; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        size_t f = rng % SL_N_FIXTURES;
        if (f == 2 && i % 8) {
            f = 0; /* LeNet is big: corrupt it one time in eight */
        }
        unsigned char *copy = malloc(sizes[f]);
        assert_non_null(copy);
        memcpy(copy, bufs[f], sizes[f]);
        int flips = 1 + (int)(rng >> 60) % 4;
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            copy[rng % sizes[f]] = (unsigned char)(rng >> 32);
        }
        sl_write_file(tmp_path, copy, sizes[f]);
        failed += (size_t)try_model();
        free(copy);
    }
    for (size_t f = 0; f < SL_N_FIXTURES; f++) {
        free(bufs[f]);
    }
    print_message("%zu of %d corrupted models were refused\n", failed, N_CORRUPTIONS);
    assert_true(failed > 0);
}

static void test_bad_paths(void **state)
{
    (void)state;
    sl_model *m = NULL;
    assert_int_equal(sl_model_build_from_file("/nonexistent/x.mindir", NULL, &m), SL_ERR_IO);
    assert_non_null(strstr(sl_last_error(), "/nonexistent/x.mindir"));
    assert_int_equal(sl_model_build_from_file(NULL, NULL, &m), SL_ERR_INVALID_ARG);
    assert_int_equal(sl_model_build_from_file("/", NULL, &m), SL_ERR_IO);
    sl_write_file(tmp_path, "", 0);
    assert_int_equal(sl_model_build_from_file(tmp_path, NULL, &m), SL_ERR_FORMAT);
}

static void test_encrypted(void **state)
{
    (void)state;
    char path[512];
    size_t size;
    unsigned char *buf =
        sl_fixture_read("add_encrpty_key_0123456789ABCDEF.mindir", &size, path, sizeof path);
    assert_non_null(buf);
    free(buf);
    sl_model *m = NULL;
    assert_int_equal(sl_model_build_from_file(path, NULL, &m), SL_ERR_ENCRYPTED);
    assert_non_null(strstr(sl_last_error(), "encrypted model"));
}

int main(void)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/sl_malformed_%d.mindir", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_encrypted),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupted),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(tmp_path);
    return rc;
}
