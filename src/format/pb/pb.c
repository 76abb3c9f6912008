#include "format/pb/pb.h"

#include <stdlib.h>
#include <string.h>

static sl_status read_varint(sl_pb *m, uint64_t *out, const char *what)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (m->p >= m->end) {
            return sl_error(SL_ERR_FORMAT, "%s: truncated varint", what);
        }
        uint8_t b = *m->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return SL_OK;
        }
    }
    return sl_error(SL_ERR_FORMAT, "%s: varint longer than 10 bytes", what);
}

static sl_status read_fixed(sl_pb *m, int n, uint64_t *out, const char *what)
{
    if (m->end - m->p < n) {
        return sl_error(SL_ERR_FORMAT, "%s: truncated fixed%d field", what, n * 8);
    }
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | m->p[i];
    }
    m->p += n;
    *out = v;
    return SL_OK;
}

sl_status sl_pb_next(sl_pb *m, sl_pb_field *f, int *has, const char *what)
{
    *has = 0;
    if (m->p >= m->end) {
        return SL_OK;
    }
    uint64_t key = 0;
    SL_TRY(read_varint(m, &key, what));
    f->num = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    if (f->num == 0 || key >> 32) {
        return sl_error(SL_ERR_FORMAT, "%s: invalid field number %llu", what,
                        (unsigned long long)(key >> 3));
    }
    f->u = 0;
    f->bytes.p = f->bytes.end = NULL;
    switch (f->wire) {
    case SL_PB_VARINT: SL_TRY(read_varint(m, &f->u, what)); break;
    case SL_PB_FIXED64: SL_TRY(read_fixed(m, 8, &f->u, what)); break;
    case SL_PB_FIXED32: SL_TRY(read_fixed(m, 4, &f->u, what)); break;
    case SL_PB_LEN: {
        uint64_t n = 0;
        SL_TRY(read_varint(m, &n, what));
        if (n > (uint64_t)(m->end - m->p)) {
            return sl_error(SL_ERR_FORMAT, "%s: field %u claims %llu bytes, %zu left", what, f->num,
                            (unsigned long long)n, (size_t)(m->end - m->p));
        }
        f->bytes.p = m->p;
        f->bytes.end = m->p + n;
        m->p += n;
        break;
    }
    default:
        return sl_error(SL_ERR_FORMAT, "%s: field %u has unsupported wire type %d", what, f->num,
                        f->wire);
    }
    *has = 1;
    return SL_OK;
}

void sl_pb_rep_init(sl_pb_rep *r, const sl_pb_field *f)
{
    r->f = *f;
    r->packed = f->bytes;
    r->done = 0;
}

sl_status sl_pb_rep_next(sl_pb_rep *r, int wire, uint64_t *out, int *has, const char *what)
{
    *has = 0;
    if (r->done) {
        return SL_OK;
    }
    if (r->f.wire == wire) { /* unpacked: exactly one value */
        *out = r->f.u;
        r->done = 1;
        *has = 1;
        return SL_OK;
    }
    if (r->f.wire != SL_PB_LEN) {
        return sl_error(SL_ERR_FORMAT, "%s: field %u has wire type %d, expected %d", what, r->f.num,
                        r->f.wire, wire);
    }
    if (r->packed.p >= r->packed.end) {
        r->done = 1;
        return SL_OK;
    }
    switch (wire) {
    case SL_PB_VARINT: SL_TRY(read_varint(&r->packed, out, what)); break;
    case SL_PB_FIXED32: SL_TRY(read_fixed(&r->packed, 4, out, what)); break;
    case SL_PB_FIXED64: SL_TRY(read_fixed(&r->packed, 8, out, what)); break;
    default: return sl_error(SL_ERR_INTERNAL, "%s: bad packed wire type %d", what, wire);
    }
    *has = 1;
    return SL_OK;
}

sl_status sl_pb_find(sl_pb m, uint32_t num, sl_pb *out, int *found, const char *what)
{
    sl_pb_field f;
    int has;
    *found = 0;
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, what));
        if (!has) {
            return SL_OK;
        }
        if (f.num == num && f.wire == SL_PB_LEN) {
            *out = f.bytes;
            *found = 1;
            return SL_OK;
        }
    }
}

int sl_pb_eq(sl_pb s, const char *str)
{
    size_t n = strlen(str);
    return sl_pb_size(s) == n && memcmp(s.p, str, n) == 0;
}

char *sl_pb_strdup(sl_pb s)
{
    size_t n = sl_pb_size(s);
    char *r = malloc(n + 1);
    if (r) {
        if (n) {
            memcpy(r, s.p, n);
        }
        r[n] = '\0';
    }
    return r;
}

/* ---- writer ---- */

static int reserve(sl_pbw *w, size_t extra)
{
    if (w->failed) {
        return 0;
    }
    if (w->len + extra <= w->cap) {
        return 1;
    }
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + extra) {
        cap *= 2;
    }
    uint8_t *b = realloc(w->buf, cap);
    if (!b) {
        w->failed = 1;
        return 0;
    }
    w->buf = b;
    w->cap = cap;
    return 1;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p = (uint8_t)v;
}

static void raw_varint(sl_pbw *w, uint64_t v)
{
    if (reserve(w, 10)) {
        put_varint(w->buf + w->len, v);
        w->len += varint_len(v);
    }
}

static void raw_fixed(sl_pbw *w, uint64_t v, int n)
{
    if (reserve(w, (size_t)n)) {
        for (int i = 0; i < n; i++) {
            w->buf[w->len++] = (uint8_t)(v >> (8 * i));
        }
    }
}

void sl_pbw_varint(sl_pbw *w, uint32_t num, uint64_t v)
{
    raw_varint(w, (uint64_t)num << 3 | SL_PB_VARINT);
    raw_varint(w, v);
}

void sl_pbw_fixed32(sl_pbw *w, uint32_t num, uint32_t v)
{
    raw_varint(w, (uint64_t)num << 3 | SL_PB_FIXED32);
    raw_fixed(w, v, 4);
}

void sl_pbw_fixed64(sl_pbw *w, uint32_t num, uint64_t v)
{
    raw_varint(w, (uint64_t)num << 3 | SL_PB_FIXED64);
    raw_fixed(w, v, 8);
}

void sl_pbw_bytes(sl_pbw *w, uint32_t num, const void *data, size_t n)
{
    raw_varint(w, (uint64_t)num << 3 | SL_PB_LEN);
    raw_varint(w, n);
    if (n && reserve(w, n)) {
        memcpy(w->buf + w->len, data, n);
        w->len += n;
    }
}

void sl_pbw_str(sl_pbw *w, uint32_t num, const char *s)
{
    sl_pbw_bytes(w, num, s, strlen(s));
}

size_t sl_pbw_begin(sl_pbw *w)
{
    return w->len;
}

void sl_pbw_end(sl_pbw *w, uint32_t num, size_t at)
{
    if (w->failed) {
        return;
    }
    size_t body = w->len - at;
    uint64_t key = (uint64_t)num << 3 | SL_PB_LEN;
    size_t head = varint_len(key) + varint_len(body);
    if (!reserve(w, head)) {
        return;
    }
    memmove(w->buf + at + head, w->buf + at, body);
    put_varint(w->buf + at, key);
    put_varint(w->buf + at + varint_len(key), body);
    w->len += head;
}

void sl_pbw_free(sl_pbw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}
