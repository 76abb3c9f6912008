/* Protobuf wire format: a bounds-checked reader over bytes in memory (a mapped file: nothing is
 * copied) and a growable writer. Only what MindIR needs: varint, fixed32/64, length-delimited. */
#ifndef SL_FORMAT_PB_H
#define SL_FORMAT_PB_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

enum { SL_PB_VARINT = 0, SL_PB_FIXED64 = 1, SL_PB_LEN = 2, SL_PB_FIXED32 = 5 };

/* A message (or any byte range) being read. */
typedef struct sl_pb {
    const uint8_t *p, *end;
} sl_pb;

typedef struct sl_pb_field {
    uint32_t num;
    int wire;
    uint64_t u;   /* VARINT, FIXED32, FIXED64 payloads */
    sl_pb bytes;  /* LEN payload */
} sl_pb_field;

static inline sl_pb sl_pb_make(const void *data, size_t size)
{
    sl_pb m = {(const uint8_t *)data, (const uint8_t *)data + size};
    return m;
}

static inline size_t sl_pb_size(sl_pb m)
{
    return (size_t)(m.end - m.p);
}

/* Reads the next field of *m. Returns SL_OK with *has = 0 at the end; SL_ERR_FORMAT on a
 * truncated or malformed field (the message names `what`). */
sl_status sl_pb_next(sl_pb *m, sl_pb_field *f, int *has, const char *what);

/* Repeated scalar fields arrive unpacked (one field each) or packed (one LEN field). These
 * iterate one field's values: call with the field, get each value in *out; *has = 0 at the end. */
typedef struct sl_pb_rep {
    sl_pb_field f;
    sl_pb packed;
    int done;
} sl_pb_rep;
void sl_pb_rep_init(sl_pb_rep *r, const sl_pb_field *f);
sl_status sl_pb_rep_next(sl_pb_rep *r, int wire, uint64_t *out, int *has, const char *what);

/* The payload of the first length-delimited field `num` of m; *found = 0 when there is none. */
sl_status sl_pb_find(sl_pb m, uint32_t num, sl_pb *out, int *found, const char *what);

/* Field payload helpers. */
static inline float sl_pb_float(uint64_t u)
{
    union { uint32_t u; float f; } c = {(uint32_t)u};
    return c.f;
}
static inline double sl_pb_double(uint64_t u)
{
    union { uint64_t u; double d; } c = {u};
    return c.d;
}
/* Compares a LEN payload with a C string. */
int sl_pb_eq(sl_pb s, const char *str);
/* Copies a LEN payload into a NUL-terminated heap string (NULL on allocation failure). */
char *sl_pb_strdup(sl_pb s);

/* ---- writer ---- */
typedef struct sl_pbw {
    uint8_t *buf;
    size_t len, cap;
    int failed; /* set on allocation failure; every later write is a no-op */
} sl_pbw;

void sl_pbw_varint(sl_pbw *w, uint32_t num, uint64_t v);
void sl_pbw_fixed32(sl_pbw *w, uint32_t num, uint32_t v);
void sl_pbw_fixed64(sl_pbw *w, uint32_t num, uint64_t v);
void sl_pbw_bytes(sl_pbw *w, uint32_t num, const void *data, size_t n);
void sl_pbw_str(sl_pbw *w, uint32_t num, const char *s);
/* Nested message: `size_t at = sl_pbw_begin(w); ...fields...; sl_pbw_end(w, num, at);` */
size_t sl_pbw_begin(sl_pbw *w);
void sl_pbw_end(sl_pbw *w, uint32_t num, size_t at);
void sl_pbw_free(sl_pbw *w);

#endif
