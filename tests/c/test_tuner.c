/* The stores tuner (comm/tuner.h) on synthetic timings: it settles on the way that is faster by
 * more than 10%, keeps the way it holds otherwise, follows a change of which way is faster, ends
 * epochs and explores by count or by time, and judges by the median call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "comm/tuner.h"

/* Runs `calls` calls, each taking secs[way] (and every 10th call of the epoch `outlier` times as
 * long when outlier > 0), starting from *way; returns how many took way 1. */
static int drive(sl_tuner *t, int *way, const double secs[2], int calls, double outlier)
{
    int ones = 0;
    for (int i = 0; i < calls; i++) {
        double s = secs[*way];
        if (outlier > 0 && t->calls % 10 == 9) {
            s *= outlier;
        }
        ones += *way;
        *way = sl_tuner_add(t, *way, s);
    }
    return ones;
}

enum { EPOCH = SL_TUNER_EPOCH, EXPLORE = SL_TUNER_EXPLORE };

static void test_settles_on_the_faster_way(void **state)
{
    (void)state;
    sl_tuner t = {0};
    int way = 0;
    const double secs[2] = {10e-6, 5e-6}; /* streaming twice as fast */
    drive(&t, &way, secs, 2 * EPOCH, 0);  /* the first epoch, then the other way's */
    assert_int_equal(t.base, 1);
    /* from then on: every epoch streaming but the explorations of the other way */
    int calls = 4 * EXPLORE * EPOCH;
    int ones = drive(&t, &way, secs, calls, 0);
    assert_int_equal(ones, calls - 4 * EPOCH);
    assert_int_equal(t.base, 1);
}

static void test_keeps_its_way_unless_10_percent_faster(void **state)
{
    (void)state;
    sl_tuner t = {0};
    int way = 0;
    const double secs[2] = {10e-6, 9.5e-6}; /* 5% faster: not enough */
    int calls = 3 * EXPLORE * EPOCH;
    int ones = drive(&t, &way, secs, calls, 0);
    assert_int_equal(t.base, 0);
    assert_int_equal(ones, 3 * EPOCH); /* its explorations only */
}

static void test_follows_a_change(void **state)
{
    (void)state;
    sl_tuner t = {0};
    int way = 0;
    const double before[2] = {5e-6, 10e-6}, after[2] = {10e-6, 5e-6};
    drive(&t, &way, before, 2 * EXPLORE * EPOCH, 0);
    assert_int_equal(t.base, 0);
    /* the next exploration finds streaming faster: within EXPLORE + 1 epochs */
    drive(&t, &way, after, (EXPLORE + 1) * EPOCH, 0);
    assert_int_equal(t.base, 1);
    drive(&t, &way, before, (EXPLORE + 1) * EPOCH, 0);
    assert_int_equal(t.base, 0);
}

static void test_epochs_end_by_count_or_time(void **state)
{
    (void)state;
    /* small calls: an epoch is SL_TUNER_EPOCH calls; the one after the first explores */
    sl_tuner t = {0};
    int way = 0;
    const double small[2] = {1e-6, 1e-6}, large[2] = {10e-3, 10e-3};
    assert_int_equal(drive(&t, &way, small, EPOCH - 1, 0), 0);
    assert_int_equal(way, 0);
    drive(&t, &way, small, 1, 0);
    assert_int_equal(way, 1);
    /* large calls: an epoch ends after SL_TUNER_EPOCH_S seconds of at least EPOCH_MIN calls */
    sl_tuner u = {0};
    way = 0;
    drive(&u, &way, large, SL_TUNER_EPOCH_MIN - 1, 0);
    assert_int_equal(way, 0);
    drive(&u, &way, large, 1, 0);
    assert_int_equal(way, 1);
}

static void test_explores_by_count_or_time(void **state)
{
    (void)state;
    /* equal ways: every exploration shows as an epoch of way 1. Small calls explore one epoch
     * in SL_TUNER_EXPLORE (after the first) */
    sl_tuner t = {0};
    int way = 0;
    const double small[2] = {1e-6, 1e-6}, large[2] = {10e-3, 10e-3};
    assert_int_equal(drive(&t, &way, small, (2 * EXPLORE + 2) * EPOCH, 0), 3 * EPOCH);
    /* large calls (epochs of SL_TUNER_EPOCH_MIN calls, 50 ms): at least every
     * SL_TUNER_EXPLORE_S seconds, far more often than by count */
    sl_tuner u = {0};
    way = 0;
    int calls = 300, epoch_calls = SL_TUNER_EPOCH_MIN;
    int cycle = ((int)(SL_TUNER_EXPLORE_S / (epoch_calls * large[0]) + 0.999) + 1) * epoch_calls;
    int ones = drive(&u, &way, large, calls, 0);
    assert_true(ones >= calls / cycle * epoch_calls);
    assert_true(ones <= (calls / cycle + 2) * epoch_calls);
}

static void test_judges_by_the_median(void **state)
{
    (void)state;
    /* streaming 2x faster per call, but one call in ten 50x slower: its mean is worse, its
     * median better */
    sl_tuner t = {0};
    int way = 0;
    const double secs[2] = {10e-6, 5e-6};
    drive(&t, &way, secs, EPOCH, 0);
    assert_int_equal(way, 1);
    drive(&t, &way, secs, EPOCH, 50.0);
    assert_int_equal(t.base, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settles_on_the_faster_way),
        cmocka_unit_test(test_keeps_its_way_unless_10_percent_faster),
        cmocka_unit_test(test_follows_a_change),
        cmocka_unit_test(test_epochs_end_by_count_or_time),
        cmocka_unit_test(test_explores_by_count_or_time),
        cmocka_unit_test(test_judges_by_the_median),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
