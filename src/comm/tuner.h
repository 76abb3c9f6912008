#ifndef SL_COMM_TUNER_H
#define SL_COMM_TUNER_H

#include <stdint.h>

/* Chooses between two ways of doing one thing (the shm backend: cached or streaming stores, per
 * message size) by timing calls. Calls are timed in epochs: SL_TUNER_EPOCH calls, or
 * SL_TUNER_EPOCH_S seconds of at least SL_TUNER_EPOCH_MIN (an epoch of large messages the slower
 * way must not cost long). The epoch after the first runs the other way, then one epoch in
 * SL_TUNER_EXPLORE, or sooner once the epochs since the last exploration took
 * SL_TUNER_EXPLORE_S seconds of timed calls (but never more than one in SL_TUNER_EXPLORE_MIN);
 * the tuner switches when that epoch's median call is 10% faster than the latest median of the
 * way it holds. (Exploring one epoch in 16 cost a 4 KiB all-reduce 10-15% where the other way
 * was 2-3x slower; by count alone, one in 64 would leave 16 MiB messages, whose epochs are
 * time-bound, on a way turned slow for over a second.) */
#define SL_TUNER_EPOCH 63
#define SL_TUNER_EPOCH_MIN 5
#define SL_TUNER_EPOCH_S 0.02
#define SL_TUNER_EXPLORE 64
#define SL_TUNER_EXPLORE_S 0.5
#define SL_TUNER_EXPLORE_MIN 16

typedef struct sl_tuner {
    double secs[SL_TUNER_EPOCH]; /* this epoch's calls */
    double total;                /* their sum */
    uint32_t calls, epochs;
    int base;                    /* the way found faster (starts at 0) */
    uint32_t quiet;              /* epochs the way it holds since the last exploration */
    double quiet_s;              /* ... and their timed seconds */
    double median[2];            /* seconds per call in the latest epoch of each way */
} sl_tuner;

/* One more call of `secs` made `way` (0 or 1, the way the last result said). Returns the way
 * the next calls take: `way` until the epoch ends. */
int sl_tuner_add(sl_tuner *t, int way, double secs);

#endif
