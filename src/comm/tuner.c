#include "comm/tuner.h"

#include <stdlib.h>

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int sl_tuner_add(sl_tuner *t, int way, double secs)
{
    t->secs[t->calls++] = secs;
    t->total += secs;
    if (t->calls < SL_TUNER_EPOCH &&
        (t->calls < SL_TUNER_EPOCH_MIN || t->total < SL_TUNER_EPOCH_S)) {
        return way;
    }
    qsort(t->secs, t->calls, sizeof t->secs[0], by_value);
    t->median[way] = t->secs[t->calls / 2];
    t->calls = 0;
    t->total = 0;
    if (way != t->base && t->median[way] < 0.9 * t->median[t->base]) {
        t->base = way;
    }
    t->epochs++;
    return t->epochs % SL_TUNER_EXPLORE == 1 ? !t->base : t->base;
}
