/* CPU kernels of the data-movement ops. They copy bytes, so they serve every dtype by element
 * size. */
#include <stdint.h>
#include <string.h>

#include "core/pool.h"
#include "graph/op_impl.h"
#include "graph/shape_util.h"

/* Bytes per pool chunk. */
#define GRAIN_BYTES (64 * 1024)

static int64_t grain_for(int64_t bytes_per_item)
{
    return bytes_per_item >= GRAIN_BYTES ? 1 : GRAIN_BYTES / (bytes_per_item ? bytes_per_item : 1);
}

/* ---- row copies (concat, split, gather) ---- */

typedef struct rows_job {
    char *dst;
    const char *src;
    int64_t dst_pitch, src_pitch, row_bytes;
} rows_job;

static void rows_chunk(void *arg, int64_t begin, int64_t end)
{
    const rows_job *j = arg;
    for (int64_t r = begin; r < end; r++) {
        memcpy(j->dst + r * j->dst_pitch, j->src + r * j->src_pitch, (size_t)j->row_bytes);
    }
}

/* Copies `rows` rows of row_bytes between buffers with the given pitches. */
static void copy_rows(sl_pool *pool, void *dst, int64_t dst_pitch, const void *src,
                      int64_t src_pitch, int64_t rows, int64_t row_bytes)
{
    if (rows <= 0 || row_bytes <= 0) {
        return;
    }
    rows_job j = {dst, src, dst_pitch, src_pitch, row_bytes};
    sl_pool_for(pool, rows, grain_for(row_bytes), rows_chunk, &j);
}

/* ---- strided gathers into a contiguous output (transpose, strided_slice) ---- */

typedef struct strided_job {
    char *dst;
    const char *src;  /* the first element read */
    int64_t esz;
    int rank;         /* >= 1 after merging */
    int64_t dims[SL_MAX_DIMS];
    int64_t st[SL_MAX_DIMS]; /* source strides in elements, may be negative */
} strided_job;

#define STRIDED_LOOP(T)                                                                    \
    {                                                                                      \
        T *d = (T *)dst;                                                                   \
        const T *s = (const T *)src;                                                       \
        for (int64_t i = 0; i < n; i++) {                                                  \
            d[i] = s[i * st];                                                              \
        }                                                                                  \
    }                                                                                      \
    break

/* One output row of n elements read with source stride st. */
static void strided_row(char *dst, const char *src, int64_t n, int64_t st, int64_t esz)
{
    if (st == 1) {
        memcpy(dst, src, (size_t)(n * esz));
        return;
    }
    switch (esz) {
    case 1: STRIDED_LOOP(uint8_t);
    case 2: STRIDED_LOOP(uint16_t);
    case 4: STRIDED_LOOP(uint32_t);
    case 8: STRIDED_LOOP(uint64_t);
    default:
        for (int64_t i = 0; i < n; i++) {
            memcpy(dst + i * esz, src + i * st * esz, (size_t)esz);
        }
        break;
    }
}

static void strided_chunk(void *arg, int64_t begin, int64_t end)
{
    const strided_job *j = arg;
    int last = j->rank - 1;
    int64_t inner = j->dims[last], idx[SL_MAX_DIMS] = {0}, off = 0, rem = begin;
    for (int d = last - 1; d >= 0; d--) {
        idx[d] = rem % j->dims[d];
        rem /= j->dims[d];
        off += idx[d] * j->st[d];
    }
    for (int64_t r = begin; r < end; r++) {
        strided_row(j->dst + r * inner * j->esz, j->src + off * j->esz, inner, j->st[last],
                    j->esz);
        for (int d = last - 1; d >= 0; d--) { /* next row: odometer step */
            off += j->st[d];
            if (++idx[d] < j->dims[d]) {
                break;
            }
            off -= idx[d] * j->st[d];
            idx[d] = 0;
        }
    }
}

/* dst[i...] = src[sum(i_d * st[d])] over dims, dst contiguous. */
static void copy_strided(sl_pool *pool, void *dst, const void *src, int64_t esz, int rank,
                         const int64_t *dims, const int64_t *st)
{
    strided_job j = {.dst = dst, .src = src, .esz = esz};
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        numel *= dims[i];
    }
    if (numel == 0) {
        return;
    }
    /* drop size-1 dims and merge neighbours that the source walks contiguously */
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 1) {
            continue;
        }
        if (j.rank > 0 && j.st[j.rank - 1] == st[i] * dims[i]) {
            j.dims[j.rank - 1] *= dims[i];
            j.st[j.rank - 1] = st[i];
            continue;
        }
        j.dims[j.rank] = dims[i];
        j.st[j.rank++] = st[i];
    }
    if (j.rank == 0) {
        j.dims[0] = j.st[0] = 1;
        j.rank = 1;
    }
    int64_t inner = j.dims[j.rank - 1];
    sl_pool_for(pool, numel / inner, grain_for(inner * esz), strided_chunk, &j);
}

/* Element strides of a contiguous shape. */
static void contiguous_strides(const sl_shape *s, int64_t *st)
{
    int64_t acc = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s->dims[i];
    }
}

/* ---- kernels ---- */

sl_status sl_kernel_reshape(sl_op_call *call)
{
    size_t bytes = sl_value_bytes(call->in[0]);
    if (bytes && call->out[0]->data != call->in[0]->data) {
        memmove(call->out[0]->data, call->in[0]->data, bytes);
    }
    return SL_OK;
}

sl_status sl_kernel_transpose(sl_op_call *call)
{
    const sl_value *x = call->in[0], *pv = call->in[1];
    int rank = x->shape.rank;
    int64_t ist[SL_MAX_DIMS], dims[SL_MAX_DIMS], st[SL_MAX_DIMS];
    contiguous_strides(&x->shape, ist);
    for (int i = 0; i < rank; i++) {
        int64_t a = sl_value_get_int(pv, i);
        a = a < 0 ? a + rank : a;
        dims[i] = x->shape.dims[a];
        st[i] = ist[a];
    }
    copy_strided(call->pool, call->out[0]->data, x->data, (int64_t)sl_dtype_size(x->dtype), rank,
                 dims, st);
    return SL_OK;
}

sl_status sl_kernel_strided_slice(sl_op_call *call)
{
    const sl_value *x = call->in[0];
    sl_slice_plan plan;
    SL_TRY(sl_strided_slice_plan(call, &plan));
    int64_t ist[SL_MAX_DIMS], st[SL_MAX_DIMS], first = 0;
    contiguous_strides(&x->shape, ist);
    for (int i = 0; i < x->shape.rank; i++) {
        st[i] = plan.step[i] * ist[i];
        first += plan.begin[i] * ist[i];
    }
    int64_t esz = (int64_t)sl_dtype_size(x->dtype);
    /* begin may sit one past the end when the slice is empty: never form that pointer */
    if (sl_shape_numel(&plan.out) == 0) {
        return SL_OK;
    }
    copy_strided(call->pool, call->out[0]->data, (const char *)x->data + first * esz, esz,
                 x->shape.rank, plan.len, st);
    return SL_OK;
}

/* A tensor of shape (outer, n, inner) along axis; the bytes of one (n, inner) block. */
static void split_axis(const sl_shape *s, int axis, int64_t esz, int64_t *outer, int64_t *block)
{
    *outer = sl_shape_prod(s, 0, axis);
    *block = sl_shape_prod(s, axis, s->rank) * esz;
}

sl_status sl_kernel_concat(sl_op_call *call)
{
    const sl_value *o = call->out[0];
    int axis = 0;
    sl_axis_normalize(call->p->axes.n_axis ? call->p->axes.axis[0] : 0, o->shape.rank, &axis);
    int64_t esz = (int64_t)sl_dtype_size(o->dtype), outer, out_pitch, off = 0;
    split_axis(&o->shape, axis, esz, &outer, &out_pitch);
    for (int i = 0; i < call->n_in; i++) {
        int64_t rows, pitch;
        split_axis(&call->in[i]->shape, axis, esz, &rows, &pitch);
        copy_rows(call->pool, (char *)o->data + off, out_pitch, call->in[i]->data, pitch, outer,
                  pitch);
        off += pitch;
    }
    return SL_OK;
}

sl_status sl_kernel_split(sl_op_call *call)
{
    const sl_value *x = call->in[0];
    int axis = 0;
    sl_axis_normalize(call->p->split.axis, x->shape.rank, &axis);
    int64_t esz = (int64_t)sl_dtype_size(x->dtype), outer, in_pitch, off = 0;
    split_axis(&x->shape, axis, esz, &outer, &in_pitch);
    for (int i = 0; i < call->n_out; i++) {
        int64_t rows, pitch;
        split_axis(&call->out[i]->shape, axis, esz, &rows, &pitch);
        copy_rows(call->pool, call->out[i]->data, pitch, (const char *)x->data + off, in_pitch,
                  outer, pitch);
        off += pitch;
    }
    return SL_OK;
}

typedef struct gather_job {
    char *dst;
    const char *src;
    const sl_value *indices;
    int64_t n_idx, dim, inner_bytes;
} gather_job;

static void gather_chunk(void *arg, int64_t begin, int64_t end)
{
    const gather_job *j = arg;
    const int64_t *i64 = j->indices->dtype == SL_DTYPE_INT64 ? j->indices->data : NULL;
    const int32_t *i32 = j->indices->data;
    for (int64_t r = begin; r < end; r++) {
        int64_t o = r / j->n_idx, k = r % j->n_idx;
        int64_t idx = i64 ? i64[k] : i32[k];
        char *d = j->dst + r * j->inner_bytes;
        /* like MindSpore's CPU kernel: an index outside [0, dim) gives zeros */
        if (idx < 0 || idx >= j->dim) {
            memset(d, 0, (size_t)j->inner_bytes);
        } else {
            memcpy(d, j->src + (o * j->dim + idx) * j->inner_bytes, (size_t)j->inner_bytes);
        }
    }
}

sl_status sl_kernel_gather(sl_op_call *call)
{
    const sl_value *x = call->in[0];
    int axis = 0;
    sl_axis_normalize(sl_value_get_int(call->in[2], 0), x->shape.rank, &axis);
    int64_t esz = (int64_t)sl_dtype_size(x->dtype);
    gather_job j = {
        .dst = call->out[0]->data,
        .src = x->data,
        .indices = call->in[1],
        .n_idx = sl_shape_numel(&call->in[1]->shape),
        .dim = x->shape.dims[axis],
        .inner_bytes = sl_shape_prod(&x->shape, axis + 1, x->shape.rank) * esz,
    };
    int64_t rows = sl_shape_prod(&x->shape, 0, axis) * j.n_idx;
    if (rows > 0 && j.inner_bytes > 0) {
        sl_pool_for(call->pool, rows, grain_for(j.inner_bytes), gather_chunk, &j);
    }
    return SL_OK;
}

sl_status sl_kernel_shape(sl_op_call *call)
{
    const sl_shape *s = &call->in[0]->shape;
    int64_t *o = call->out[0]->data;
    for (int i = 0; i < s->rank; i++) {
        o[i] = s->dims[i];
    }
    return SL_OK;
}

sl_status sl_kernel_seq_get_item(sl_op_call *call)
{
    const sl_value *seq = call->in[0];
    int64_t idx = sl_value_get_int(call->in[1], 0), n = seq->shape.dims[0];
    size_t esz = sl_dtype_size(seq->dtype);
    idx = idx < 0 ? idx + n : idx;
    memcpy(call->out[0]->data, (const char *)seq->data + (size_t)idx * esz, esz);
    return SL_OK;
}

sl_status sl_kernel_make_seq(sl_op_call *call)
{
    void *out = call->out[0]->data;
    for (int i = 0; i < call->n_in; i++) {
        switch (call->out[0]->dtype) {
        case SL_DTYPE_FLOAT64: ((double *)out)[i] = sl_value_get_float(call->in[i], 0); break;
        case SL_DTYPE_FLOAT32: ((float *)out)[i] = (float)sl_value_get_float(call->in[i], 0); break;
        default: ((int64_t *)out)[i] = sl_value_get_int(call->in[i], 0); break;
        }
    }
    return SL_OK;
}

/* Whether element i is non-zero: floats compare as numbers (-0.0 is zero, NaN is not). */
static int is_nonzero(const void *data, sl_dtype t, int64_t i)
{
    switch (t) {
    case SL_DTYPE_FLOAT32: return ((const float *)data)[i] != 0;
    case SL_DTYPE_FLOAT64: return ((const double *)data)[i] != 0;
    case SL_DTYPE_FLOAT16:
    case SL_DTYPE_BFLOAT16: return (((const uint16_t *)data)[i] & 0x7fff) != 0;
    default: break;
    }
    size_t esz = sl_dtype_size(t);
    const uint8_t *p = (const uint8_t *)data + (size_t)i * esz;
    for (size_t b = 0; b < esz; b++) {
        if (p[b]) {
            return 1;
        }
    }
    return 0;
}

sl_status sl_kernel_non_zero(sl_op_call *call)
{
    const sl_value *x = call->in[0];
    int rank = x->shape.rank;
    int64_t numel = sl_shape_numel(&x->shape), count = 0, idx[SL_MAX_DIMS] = {0};
    int64_t *o = call->out[0]->data;
    for (int64_t i = 0; i < numel; i++) {
        if (is_nonzero(x->data, x->dtype, i)) {
            for (int d = 0; d < rank; d++) {
                o[count * rank + d] = idx[d];
            }
            count++;
        }
        for (int d = rank - 1; d >= 0; d--) { /* next multi-index */
            if (++idx[d] < x->shape.dims[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
    call->out[0]->shape.dims[0] = count;
    return SL_OK;
}
