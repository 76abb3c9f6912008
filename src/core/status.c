#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SL_ERROR_MAX 1024

static _Thread_local char last_error[SL_ERROR_MAX];

sl_status sl_error(sl_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

sl_status sl_error_wrap(sl_status status, const char *fmt, ...)
{
    char prefix[256];
    char old[SL_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3) {
        n = sizeof last_error - 3;
    }
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t rest = sizeof last_error - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = '\0';
    return status;
}

void sl_error_clear(void)
{
    last_error[0] = '\0';
}

const char *sl_last_error(void)
{
    return last_error;
}

const char *sl_status_name(sl_status status)
{
    switch (status) {
    case SL_OK: return "ok";
    case SL_ERR_INVALID_ARG: return "invalid argument";
    case SL_ERR_IO: return "i/o error";
    case SL_ERR_FORMAT: return "malformed model";
    case SL_ERR_ENCRYPTED: return "encrypted model";
    case SL_ERR_UNSUPPORTED: return "unsupported";
    case SL_ERR_SHAPE: return "shape mismatch";
    case SL_ERR_NOMEM: return "out of memory";
    case SL_ERR_STATE: return "wrong state";
    case SL_ERR_INTERNAL: return "internal error";
    case SL_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}
