/* Status codes and the per-thread last-error message. */
#ifndef SL_CORE_STATUS_H
#define SL_CORE_STATUS_H

#include "shardlite/shardlite.h"

/* Records a formatted message for sl_last_error() and returns status, so callers can write
 * `return sl_error(SL_ERR_FORMAT, "node %s: ...", name);`. */
/* Exported (though not in the public header) for plugins such as the MPI backend. */
SL_API sl_status sl_error(sl_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "<context>: " (for adding where a failure happened). */
SL_API sl_status sl_error_wrap(sl_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sl_error_clear(void);

#define SL_TRY(expr)                                                                       \
    do {                                                                                   \
        sl_status sl_try_st_ = (expr);                                                     \
        if (sl_try_st_ != SL_OK) {                                                         \
            return sl_try_st_;                                                             \
        }                                                                                  \
    } while (0)

#endif
