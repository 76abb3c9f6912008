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
    /* every exploration shows as calls of way 1. Small calls (equal ways) explore one epoch
     * in SL_TUNER_EXPLORE (after the first) */
    sl_tuner t = {0};
    int way = 0;
    const double small[2] = {1e-6, 1e-6};
    assert_int_equal(drive(&t, &way, small, (2 * EXPLORE + 2) * EPOCH, 0), 3 * EPOCH);
    /* 2.1 ms calls (epochs of 10 calls, 21 ms; the other way, 3x slower, 5 calls): every
     * SL_TUNER_EXPLORE_S seconds, far more often than by count */
    sl_tuner u = {0};
    way = 0;
    const double mid[2] = {2.1e-3, 6e-3};
    int quiet = (int)(SL_TUNER_EXPLORE_S / (10 * mid[0])) + 1; /* epochs between explorations */
    assert_true(quiet >= SL_TUNER_EXPLORE_MIN - 1 && quiet < SL_TUNER_EXPLORE - 1);
    int calls = 10 + 5 + 30 * (quiet * 10 + 5); /* 30 cycles: an epoch's error adds up */
    assert_int_equal(drive(&u, &way, mid, calls, 0), 31 * 5);
    assert_int_equal(u.base, 0);
    /* long calls (an epoch of 5 calls takes 0.6 s): still one epoch in SL_TUNER_EXPLORE_MIN */
    sl_tuner v = {0};
    way = 0;
    const double long_calls[2] = {0.12, 0.36};
    calls = 5 + 5 + 2 * ((SL_TUNER_EXPLORE_MIN - 1) * 5 + 5);
    assert_int_equal(drive(&v, &way, long_calls, calls, 0), 3 * 5);
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
