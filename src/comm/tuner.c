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
    int explored = way != t->base;
    t->quiet = explored ? 0 : t->quiet + 1;
    t->quiet_s = explored ? 0 : t->quiet_s + t->total;
    t->calls = 0;
    t->total = 0;
    if (explored && t->median[way] < 0.9 * t->median[t->base]) {
        t->base = way;
    }
    t->epochs++;
    int explore = t->epochs == 1 || t->quiet >= SL_TUNER_EXPLORE - 1 ||
                  (t->quiet >= SL_TUNER_EXPLORE_MIN - 1 && t->quiet_s >= SL_TUNER_EXPLORE_S);
    return explore ? !t->base : t->base;
}
