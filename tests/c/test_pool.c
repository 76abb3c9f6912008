/* The thread pool: every index is visited exactly once, for many sizes, grains and pool sizes,
 * and repeated jobs do not lose or repeat work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/pool.h"

typedef struct job {
    _Atomic int *hits;
    _Atomic int64_t calls;
} job;

static void visit(void *arg, int64_t begin, int64_t end)
{
    job *j = arg;
    atomic_fetch_add(&j->calls, 1);
    for (int64_t i = begin; i < end; i++) {
        atomic_fetch_add(&j->hits[i], 1);
    }
}

static void check_pool(sl_pool *pool, int threads)
{
    const int64_t sizes[] = {0, 1, 2, 3, 7, 64, 1000, 100003};
    const int64_t grains[] = {1, 5, 1000, 1 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
            int64_t n = sizes[s];
            job j = {calloc((size_t)(n ? n : 1), sizeof(_Atomic int)), 0};
            assert_non_null(j.hits);
            sl_pool_for(pool, n, grains[g], visit, &j);
            for (int64_t i = 0; i < n; i++) {
                assert_int_equal(atomic_load(&j.hits[i]), 1);
            }
            assert_true(atomic_load(&j.calls) <= threads);
            free((void *)j.hits);
        }
    }
}

static void test_pools(void **state)
{
    (void)state;
    check_pool(NULL, 1);
    for (int threads = 1; threads <= 4; threads++) {
        sl_pool *pool;
        assert_int_equal(sl_pool_create(threads, &pool), SL_OK);
        assert_int_equal(sl_pool_size(pool), threads);
        for (int rep = 0; rep < 50; rep++) {
            check_pool(pool, threads);
        }
        sl_pool_destroy(pool);
    }
}

static void test_bad_size(void **state)
{
    (void)state;
    sl_pool *pool = (sl_pool *)1;
    assert_int_equal(sl_pool_create(0, &pool), SL_ERR_INVALID_ARG);
    assert_null(pool);
    sl_pool_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_bad_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
