/* CPU kernels of the elementwise ops: unary, cast, binary (numpy broadcasting), bias_add, scalar
 * arithmetic and softmax. */
#include <stdint.h>
#include <string.h>
#include <tgmath.h>

#include "core/pool.h"
#include "graph/op_impl.h"
#include "graph/shape_util.h"

/* Elements per pool chunk: big enough that scheduling costs nothing next to the work. */
#define GRAIN 16384

/* ---- dtype conversion (Cast, mixed-dtype scalars) ---- */

/* Conversions go through blocks of int64 (integer to integer, exact) or double (anything with a
 * float on either side). */
#define BLOCK 256

static double half_to_double(uint16_t h)
{
    int e = h >> 10 & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp((double)m, -24)
               : e == 31 ? (m ? NAN : INFINITY)
                         : ldexp((double)(m + 1024), e - 25);
    return h & 0x8000 ? -v : v;
}

static uint16_t double_to_half(double d)
{
    float f = (float)d;
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)(x >> 16 & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    }
    if (ax >= 0x477ff000u) { /* rounds past the largest half: infinity */
        return (uint16_t)(sign | 0x7c00);
    }
    if (ax < 0x38800000u) { /* below the smallest normal half: a subnormal, rounded to even */
        float a;
        memcpy(&a, &ax, sizeof a);
        return (uint16_t)(sign | (uint16_t)lrint(a * 16777216.0f));
    }
    uint32_t r = ax - 0x38000000u; /* rebias the exponent, then round 13 bits to even */
    r += 0xfffu + (r >> 13 & 1);
    return (uint16_t)(sign | (uint16_t)(r >> 13));
}

static double bf16_to_double(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static uint16_t double_to_bf16(double d)
{
    float f = (float)d;
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)(x >> 16 | 0x40);
    }
    return (uint16_t)((x + 0x7fffu + (x >> 16 & 1)) >> 16);
}

/* Float to integer without undefined behaviour: NaN gives 0, out-of-range values saturate. */
static int64_t sat_i64(double v, int64_t lo, int64_t hi)
{
    if (v != v) {
        return 0;
    }
    if (v <= (double)lo) {
        return lo;
    }
    if (v >= (double)hi) {
        return hi;
    }
    return (int64_t)v;
}

static uint64_t sat_u64(double v)
{
    if (v != v || v <= 0) {
        return 0;
    }
    return v >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)v;
}

#define LOOP_LOAD(T, EXPR)                                                                 \
    {                                                                                      \
        const T *s = (const T *)src + off;                                                 \
        for (int i = 0; i < n; i++) {                                                      \
            buf[i] = (EXPR);                                                               \
        }                                                                                  \
    }                                                                                      \
    break

#define LOOP_STORE(T, EXPR)                                                                \
    {                                                                                      \
        T *d = (T *)dst + off;                                                             \
        for (int i = 0; i < n; i++) {                                                      \
            d[i] = (EXPR);                                                                 \
        }                                                                                  \
    }                                                                                      \
    break

/* The integer and bool cases, shared by both loaders; ACC is the accumulator type. */
#define INT_LOADS(ACC)                                                                     \
    case SL_DTYPE_BOOL: LOOP_LOAD(uint8_t, (ACC)(s[i] != 0));                              \
    case SL_DTYPE_INT8: LOOP_LOAD(int8_t, (ACC)s[i]);                                      \
    case SL_DTYPE_INT16: LOOP_LOAD(int16_t, (ACC)s[i]);                                    \
    case SL_DTYPE_INT32: LOOP_LOAD(int32_t, (ACC)s[i]);                                    \
    case SL_DTYPE_INT64: LOOP_LOAD(int64_t, (ACC)s[i]);                                    \
    case SL_DTYPE_UINT8: LOOP_LOAD(uint8_t, (ACC)s[i]);                                    \
    case SL_DTYPE_UINT16: LOOP_LOAD(uint16_t, (ACC)s[i]);                                  \
    case SL_DTYPE_UINT32: LOOP_LOAD(uint32_t, (ACC)s[i]);                                  \
    case SL_DTYPE_UINT64: LOOP_LOAD(uint64_t, (ACC)s[i])

static void load_i64(sl_dtype t, const void *src, int64_t off, int n, int64_t *buf)
{
    switch (t) {
    INT_LOADS(int64_t);
    default: memset(buf, 0, sizeof *buf * (size_t)n); break;
    }
}

static void load_f64(sl_dtype t, const void *src, int64_t off, int n, double *buf)
{
    switch (t) {
    INT_LOADS(double);
    case SL_DTYPE_FLOAT16: LOOP_LOAD(uint16_t, half_to_double(s[i]));
    case SL_DTYPE_BFLOAT16: LOOP_LOAD(uint16_t, bf16_to_double(s[i]));
    case SL_DTYPE_FLOAT32: LOOP_LOAD(float, s[i]);
    case SL_DTYPE_FLOAT64: LOOP_LOAD(double, s[i]);
    default: memset(buf, 0, sizeof *buf * (size_t)n); break;
    }
}

/* Integer to integer wraps modulo 2^bits, like numpy. */
static void store_i64(sl_dtype t, void *dst, int64_t off, int n, const int64_t *buf)
{
    switch (t) {
    case SL_DTYPE_BOOL: LOOP_STORE(uint8_t, buf[i] != 0);
    case SL_DTYPE_INT8: LOOP_STORE(int8_t, (int8_t)(uint8_t)buf[i]);
    case SL_DTYPE_INT16: LOOP_STORE(int16_t, (int16_t)(uint16_t)buf[i]);
    case SL_DTYPE_INT32: LOOP_STORE(int32_t, (int32_t)(uint32_t)buf[i]);
    case SL_DTYPE_INT64: LOOP_STORE(int64_t, buf[i]);
    case SL_DTYPE_UINT8: LOOP_STORE(uint8_t, (uint8_t)buf[i]);
    case SL_DTYPE_UINT16: LOOP_STORE(uint16_t, (uint16_t)buf[i]);
    case SL_DTYPE_UINT32: LOOP_STORE(uint32_t, (uint32_t)buf[i]);
    case SL_DTYPE_UINT64: LOOP_STORE(uint64_t, (uint64_t)buf[i]);
    default: break;
    }
}

static void store_f64(sl_dtype t, void *dst, int64_t off, int n, const double *buf)
{
    switch (t) {
    case SL_DTYPE_BOOL: LOOP_STORE(uint8_t, buf[i] != 0);
    case SL_DTYPE_INT8: LOOP_STORE(int8_t, (int8_t)sat_i64(buf[i], INT8_MIN, INT8_MAX));
    case SL_DTYPE_INT16: LOOP_STORE(int16_t, (int16_t)sat_i64(buf[i], INT16_MIN, INT16_MAX));
    case SL_DTYPE_INT32: LOOP_STORE(int32_t, (int32_t)sat_i64(buf[i], INT32_MIN, INT32_MAX));
    case SL_DTYPE_INT64: LOOP_STORE(int64_t, sat_i64(buf[i], INT64_MIN, INT64_MAX));
    case SL_DTYPE_UINT8: LOOP_STORE(uint8_t, (uint8_t)sat_i64(buf[i], 0, UINT8_MAX));
    case SL_DTYPE_UINT16: LOOP_STORE(uint16_t, (uint16_t)sat_i64(buf[i], 0, UINT16_MAX));
    case SL_DTYPE_UINT32: LOOP_STORE(uint32_t, (uint32_t)sat_i64(buf[i], 0, UINT32_MAX));
    case SL_DTYPE_UINT64: LOOP_STORE(uint64_t, sat_u64(buf[i]));
    case SL_DTYPE_FLOAT16: LOOP_STORE(uint16_t, double_to_half(buf[i]));
    case SL_DTYPE_BFLOAT16: LOOP_STORE(uint16_t, double_to_bf16(buf[i]));
    case SL_DTYPE_FLOAT32: LOOP_STORE(float, (float)buf[i]);
    case SL_DTYPE_FLOAT64: LOOP_STORE(double, buf[i]);
    default: break;
    }
}

/* Converts elements [begin, end) of src (dtype st) into dst (dtype dt). */
static void convert(sl_dtype dt, void *dst, sl_dtype st, const void *src, int64_t begin,
                    int64_t end)
{
    if (dt == st) {
        size_t es = sl_dtype_size(dt);
        memcpy((char *)dst + begin * es, (const char *)src + begin * es,
               (size_t)(end - begin) * es);
        return;
    }
    int exact = !sl_dtype_is_float(dt) && !sl_dtype_is_float(st);
    for (int64_t off = begin; off < end; off += BLOCK) {
        int n = (int)(end - off < BLOCK ? end - off : BLOCK);
        if (exact) {
            int64_t buf[BLOCK];
            load_i64(st, src, off, n, buf);
            store_i64(dt, dst, off, n, buf);
        } else {
            double buf[BLOCK];
            load_f64(st, src, off, n, buf);
            store_f64(dt, dst, off, n, buf);
        }
    }
}

typedef struct cast_job {
    sl_dtype dt, st;
    void *dst;
    const void *src;
} cast_job;

static void cast_chunk(void *arg, int64_t begin, int64_t end)
{
    const cast_job *j = arg;
    convert(j->dt, j->dst, j->st, j->src, begin, end);
}

sl_status sl_kernel_cast(sl_op_call *call)
{
    cast_job j = {call->out[0]->dtype, call->in[0]->dtype, call->out[0]->data, call->in[0]->data};
    sl_pool_for(call->pool, sl_shape_numel(&call->in[0]->shape), GRAIN, cast_chunk, &j);
    return SL_OK;
}

/* ---- unary ---- */

typedef struct unary_job {
    sl_op op;
    sl_dtype dtype;
    const void *x;
    void *y;
    double alpha;                         /* CeLU */
    double log_scale, log_shift, log_mul; /* Log: log(shift + scale * x) * mul */
} unary_job;

/* One loop per op so that each vectorises on its own; tgmath picks the float or double
 * functions from T. */
#define UNARY_LOOP(T, EXPR)                                                                \
    for (int64_t i = begin; i < end; i++) {                                                \
        T v = x[i];                                                                        \
        y[i] = (T)(EXPR);                                                                  \
    }                                                                                      \
    break

#define DEFINE_UNARY_FLOAT(SUF, T)                                                         \
    static void unary_##SUF(const unary_job *j, int64_t begin, int64_t end)                \
    {                                                                                      \
        const T *restrict x = j->x;                                                        \
        T *restrict y = j->y;                                                              \
        const T a = (T)j->alpha, sc = (T)j->log_scale, sh = (T)j->log_shift;               \
        const T mul = (T)j->log_mul, k = (T)0.7978845608028654; /* sqrt(2/pi) */           \
        switch (j->op) {                                                                   \
        case SL_OP_RELU: UNARY_LOOP(T, v > 0 ? v : (T)0);                                  \
        case SL_OP_GELU:                                                                   \
            UNARY_LOOP(T, (T)0.5 * v * ((T)1 + tanh(k * (v + (T)0.044715 * v * v * v))));  \
        case SL_OP_SIGMOID: UNARY_LOOP(T, (T)1 / ((T)1 + exp(-v)));                        \
        case SL_OP_TANH: UNARY_LOOP(T, tanh(v));                                           \
        case SL_OP_EXP: UNARY_LOOP(T, exp(v));                                             \
        case SL_OP_LOG: UNARY_LOOP(T, log(sh + sc * v) * mul);                             \
        case SL_OP_SQRT: UNARY_LOOP(T, sqrt(v));                                           \
        case SL_OP_NEG: UNARY_LOOP(T, -v);                                                 \
        case SL_OP_ABS: UNARY_LOOP(T, fabs(v));                                            \
        case SL_OP_CELU:                                                                   \
            UNARY_LOOP(T, (v > 0 ? v : (T)0) + fmin((T)0, a * (exp(v / a) - (T)1)));       \
        default: break;                                                                    \
        }                                                                                  \
    }

/* Negation through the unsigned type, so that INT_MIN wraps instead of overflowing. */
#define DEFINE_UNARY_INT(SUF, T, UT)                                                       \
    static void unary_##SUF(const unary_job *j, int64_t begin, int64_t end)                \
    {                                                                                      \
        const T *restrict x = j->x;                                                        \
        T *restrict y = j->y;                                                              \
        switch (j->op) {                                                                   \
        case SL_OP_RELU: UNARY_LOOP(T, v > 0 ? v : 0);                                     \
        case SL_OP_NEG: UNARY_LOOP(T, (UT)0 - (UT)v);                                      \
        case SL_OP_ABS: UNARY_LOOP(T, v < 0 ? (UT)0 - (UT)v : (UT)v);                      \
        default: break;                                                                    \
        }                                                                                  \
    }

DEFINE_UNARY_FLOAT(f32, float)
DEFINE_UNARY_FLOAT(f64, double)
DEFINE_UNARY_INT(i32, int32_t, uint32_t)
DEFINE_UNARY_INT(i64, int64_t, uint64_t)

static void unary_chunk(void *arg, int64_t begin, int64_t end)
{
    const unary_job *j = arg;
    switch (j->dtype) {
    case SL_DTYPE_FLOAT32: unary_f32(j, begin, end); break;
    case SL_DTYPE_FLOAT64: unary_f64(j, begin, end); break;
    case SL_DTYPE_INT32: unary_i32(j, begin, end); break;
    case SL_DTYPE_INT64: unary_i64(j, begin, end); break;
    default: break;
    }
}

sl_status sl_kernel_unary(sl_op_call *call)
{
    const sl_params_unary *p = &call->p->unary;
    unary_job j = {
        .op = call->node->op,
        .dtype = call->in[0]->dtype,
        .x = call->in[0]->data,
        .y = call->out[0]->data,
        .alpha = p->alpha,
        .log_scale = p->scale,
        .log_shift = p->shift,
        .log_mul = p->base == -1 ? 1.0 : 1.0 / log(p->base),
    };
    /* CeLU's alpha may be an input computed at run time */
    if (j.op == SL_OP_CELU && call->n_in > 1 && call->in[1]) {
        j.alpha = sl_value_get_float(call->in[1], 0);
    }
    sl_pool_for(call->pool, sl_shape_numel(&call->in[0]->shape), GRAIN, unary_chunk, &j);
    return SL_OK;
}

/* ---- binary ---- */

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MAX, BIN_MIN, BIN_NOPS };
enum { VV, SV, VS }; /* both vectors, scalar a, scalar b */

typedef void (*bin_fn)(void *o, const void *a, const void *b, int64_t n);

#define DEFINE_BIN(NAME, T, EXPR)                                                          \
    static void NAME##_vv(void *o_, const void *a_, const void *b_, int64_t n)             \
    {                                                                                      \
        T *restrict o = o_;                                                                \
        const T *restrict a = a_, *restrict b = b_;                                        \
        for (int64_t i = 0; i < n; i++) {                                                  \
            T x = a[i], y = b[i];                                                          \
            o[i] = (T)(EXPR);                                                              \
        }                                                                                  \
    }                                                                                      \
    static void NAME##_sv(void *o_, const void *a_, const void *b_, int64_t n)             \
    {                                                                                      \
        T *restrict o = o_;                                                                \
        const T *restrict b = b_;                                                          \
        const T x = *(const T *)a_;                                                        \
        for (int64_t i = 0; i < n; i++) {                                                  \
            T y = b[i];                                                                    \
            o[i] = (T)(EXPR);                                                              \
        }                                                                                  \
    }                                                                                      \
    static void NAME##_vs(void *o_, const void *a_, const void *b_, int64_t n)             \
    {                                                                                      \
        T *restrict o = o_;                                                                \
        const T *restrict a = a_;                                                          \
        const T y = *(const T *)b_;                                                        \
        for (int64_t i = 0; i < n; i++) {                                                  \
            T x = a[i];                                                                    \
            o[i] = (T)(EXPR);                                                              \
        }                                                                                  \
    }

/* Floor division (MindSpore's Div on integers); x / 0 gives 0 and MIN / -1 wraps. */
#define DEFINE_FLOORDIV(SUF, T, UT)                                                        \
    static inline T floordiv_##SUF(T x, T y)                                               \
    {                                                                                      \
        if (y == 0) {                                                                      \
            return 0;                                                                      \
        }                                                                                  \
        if (y == -1) {                                                                     \
            return (T)((UT)0 - (UT)x);                                                     \
        }                                                                                  \
        T q = x / y;                                                                       \
        return q * y != x && (x < 0) != (y < 0) ? q - 1 : q;                               \
    }

DEFINE_FLOORDIV(i32, int32_t, uint32_t)
DEFINE_FLOORDIV(i64, int64_t, uint64_t)

/* Maximum/Minimum propagate NaN, like MindSpore. */
#define DEFINE_BIN_FLOAT(SUF, T)                                                           \
    DEFINE_BIN(add_##SUF, T, x + y)                                                        \
    DEFINE_BIN(sub_##SUF, T, x - y)                                                        \
    DEFINE_BIN(mul_##SUF, T, x * y)                                                        \
    DEFINE_BIN(div_##SUF, T, x / y)                                                        \
    DEFINE_BIN(max_##SUF, T, x > y || x != x ? x : y)                                      \
    DEFINE_BIN(min_##SUF, T, x < y || x != x ? x : y)

/* Integer add/sub/mul wrap through the unsigned type instead of overflowing. */
#define DEFINE_BIN_INT(SUF, T, UT)                                                         \
    DEFINE_BIN(add_##SUF, T, (UT)x + (UT)y)                                                \
    DEFINE_BIN(sub_##SUF, T, (UT)x - (UT)y)                                                \
    DEFINE_BIN(mul_##SUF, T, (UT)x * (UT)y)                                                \
    DEFINE_BIN(div_##SUF, T, floordiv_##SUF(x, y))                                         \
    DEFINE_BIN(max_##SUF, T, x > y ? x : y)                                                \
    DEFINE_BIN(min_##SUF, T, x < y ? x : y)

DEFINE_BIN_FLOAT(f32, float)
DEFINE_BIN_FLOAT(f64, double)
DEFINE_BIN_INT(i32, int32_t, uint32_t)
DEFINE_BIN_INT(i64, int64_t, uint64_t)

#define BIN_ROW(NAME) {NAME##_vv, NAME##_sv, NAME##_vs}
#define BIN_TABLE(SUF)                                                                     \
    {BIN_ROW(add_##SUF), BIN_ROW(sub_##SUF), BIN_ROW(mul_##SUF),                           \
     BIN_ROW(div_##SUF), BIN_ROW(max_##SUF), BIN_ROW(min_##SUF)}

static const bin_fn bin_fns[4][BIN_NOPS][3] = {
    BIN_TABLE(f32), BIN_TABLE(f64), BIN_TABLE(i32), BIN_TABLE(i64)};

static const bin_fn *bin_lookup(sl_dtype t, int op)
{
    int d = t == SL_DTYPE_FLOAT32 ? 0 : t == SL_DTYPE_FLOAT64 ? 1 : t == SL_DTYPE_INT32 ? 2 : 3;
    return bin_fns[d][op];
}

typedef struct bin_job {
    const bin_fn *fn;
    const char *a, *b;
    char *o;
    int64_t esz;
    int rank;                                  /* after merging dims */
    int64_t dims[SL_MAX_DIMS];                 /* output dims */
    int64_t sa[SL_MAX_DIMS], sb[SL_MAX_DIMS];  /* element strides, 0 where broadcast */
    int variant;                               /* VV/SV/VS along the last dim */
} bin_job;

/* rank <= 1: a flat range of elements. */
static void bin_flat_chunk(void *arg, int64_t begin, int64_t end)
{
    const bin_job *j = arg;
    const char *a = j->a + (j->variant == SV ? 0 : begin * j->esz);
    const char *b = j->b + (j->variant == VS ? 0 : begin * j->esz);
    j->fn[j->variant](j->o + begin * j->esz, a, b, end - begin);
}

/* rank >= 2: a range of rows (all dims but the last). */
static void bin_rows_chunk(void *arg, int64_t begin, int64_t end)
{
    const bin_job *j = arg;
    int last = j->rank - 1;
    int64_t inner = j->dims[last];
    int64_t idx[SL_MAX_DIMS] = {0};
    int64_t oa = 0, ob = 0, rem = begin;
    for (int d = last - 1; d >= 0; d--) {
        idx[d] = rem % j->dims[d];
        rem /= j->dims[d];
        oa += idx[d] * j->sa[d];
        ob += idx[d] * j->sb[d];
    }
    for (int64_t r = begin; r < end; r++) {
        j->fn[j->variant](j->o + r * inner * j->esz, j->a + oa * j->esz, j->b + ob * j->esz,
                          inner);
        for (int d = last - 1; d >= 0; d--) { /* next row: odometer step */
            oa += j->sa[d];
            ob += j->sb[d];
            if (++idx[d] < j->dims[d]) {
                break;
            }
            oa -= idx[d] * j->sa[d];
            ob -= idx[d] * j->sb[d];
            idx[d] = 0;
        }
    }
}

/* Element strides of s broadcast to out (rank out->rank), 0 along broadcast dims. */
static void broadcast_strides(const sl_shape *s, const sl_shape *out, int64_t *st)
{
    int64_t acc = 1;
    for (int i = out->rank - 1; i >= 0; i--) {
        int k = i - (out->rank - s->rank);
        int64_t d = k >= 0 ? s->dims[k] : 1;
        st[i] = d == 1 ? 0 : acc;
        acc *= d;
    }
}

/* out = a op b with numpy broadcasting; a and b already have out's dtype. */
static void binary_run(sl_pool *pool, int op, sl_dtype t, const void *a, const sl_shape *as,
                       const void *b, const sl_shape *bs, void *o, const sl_shape *os)
{
    if (sl_shape_numel(os) <= 0) {
        return;
    }
    bin_job j = {.fn = bin_lookup(t, op), .a = a, .b = b, .o = o,
                 .esz = (int64_t)sl_dtype_size(t)};
    int64_t sa[SL_MAX_DIMS], sb[SL_MAX_DIMS];
    broadcast_strides(as, os, sa);
    broadcast_strides(bs, os, sb);
    /* drop size-1 dims and merge neighbours that both inputs walk contiguously */
    for (int i = 0; i < os->rank; i++) {
        if (os->dims[i] == 1) {
            continue;
        }
        int r = j.rank;
        if (r > 0 && j.sa[r - 1] == sa[i] * os->dims[i] && j.sb[r - 1] == sb[i] * os->dims[i]) {
            j.dims[r - 1] *= os->dims[i];
            j.sa[r - 1] = sa[i];
            j.sb[r - 1] = sb[i];
            continue;
        }
        j.dims[r] = os->dims[i];
        j.sa[r] = sa[i];
        j.sb[r] = sb[i];
        j.rank++;
    }
    if (j.rank == 0) { /* a single element */
        j.dims[j.rank++] = 1;
        j.sa[0] = j.sb[0] = 1;
    }
    int last = j.rank - 1;
    j.variant = j.sa[last] == 0 ? SV : j.sb[last] == 0 ? VS : VV;
    if (j.rank == 1) {
        sl_pool_for(pool, j.dims[0], GRAIN, bin_flat_chunk, &j);
    } else {
        int64_t inner = j.dims[last], rows = sl_shape_numel(os) / inner;
        sl_pool_for(pool, rows, inner >= GRAIN ? 1 : GRAIN / inner, bin_rows_chunk, &j);
    }
}

static int bin_op(sl_op op)
{
    switch (op) {
    case SL_OP_ADD: return BIN_ADD;
    case SL_OP_SUB: return BIN_SUB;
    case SL_OP_MUL: return BIN_MUL;
    case SL_OP_MAXIMUM: return BIN_MAX;
    case SL_OP_MINIMUM: return BIN_MIN;
    default: return BIN_DIV; /* Div and RealDiv */
    }
}

sl_status sl_kernel_binary(sl_op_call *call)
{
    const sl_value *a = call->in[0], *b = call->in[1];
    sl_value *o = call->out[0];
    /* a 0-d input of another dtype is converted first (infer allows only that) */
    uint64_t ca, cb;
    const void *pa = a->data, *pb = b->data;
    if (a->dtype != o->dtype) {
        convert(o->dtype, &ca, a->dtype, a->data, 0, 1);
        pa = &ca;
    }
    if (b->dtype != o->dtype) {
        convert(o->dtype, &cb, b->dtype, b->data, 0, 1);
        pb = &cb;
    }
    binary_run(call->pool, bin_op(call->node->op), o->dtype, pa, &a->shape, pb, &b->shape,
               o->data, &o->shape);
    return SL_OK;
}

sl_status sl_kernel_bias_add(sl_op_call *call)
{
    const sl_value *x = call->in[0], *bias = call->in[1];
    /* the bias, seen as a tensor of x's rank that is 1 everywhere but the channel dim */
    sl_shape bs = {.rank = x->shape.rank};
    for (int i = 0; i < bs.rank; i++) {
        bs.dims[i] = 1;
    }
    bs.dims[call->p->bias_add.format == 0 ? 1 : bs.rank - 1] = bias->shape.dims[0];
    binary_run(call->pool, BIN_ADD, x->dtype, x->data, &x->shape, bias->data, &bs,
               call->out[0]->data, &call->out[0]->shape);
    return SL_OK;
}

/* ---- scalar arithmetic ---- */

sl_status sl_kernel_scalar(sl_op_call *call)
{
    const sl_value *a = call->in[0], *b = call->in[1];
    sl_value *o = call->out[0];
    sl_op op = call->node->op;
    if (o->dtype == SL_DTYPE_INT64) {
        int64_t x, y, r;
        convert(SL_DTYPE_INT64, &x, a->dtype, a->data, 0, 1);
        convert(SL_DTYPE_INT64, &y, b->dtype, b->data, 0, 1);
        switch (op) {
        case SL_OP_SCALAR_ADD: r = (int64_t)((uint64_t)x + (uint64_t)y); break;
        case SL_OP_SCALAR_SUB: r = (int64_t)((uint64_t)x - (uint64_t)y); break;
        case SL_OP_SCALAR_MUL: r = (int64_t)((uint64_t)x * (uint64_t)y); break;
        default: r = floordiv_i64(x, y); break;
        }
        *(int64_t *)o->data = r;
        return SL_OK;
    }
    double x, y, r;
    convert(SL_DTYPE_FLOAT64, &x, a->dtype, a->data, 0, 1);
    convert(SL_DTYPE_FLOAT64, &y, b->dtype, b->data, 0, 1);
    switch (op) {
    case SL_OP_SCALAR_ADD: r = x + y; break;
    case SL_OP_SCALAR_SUB: r = x - y; break;
    case SL_OP_SCALAR_MUL: r = x * y; break;
    case SL_OP_SCALAR_DIV: r = x / y; break;
    default: r = floor(x / y); break;
    }
    convert(o->dtype, o->data, SL_DTYPE_FLOAT64, &r, 0, 1);
    return SL_OK;
}

/* ---- softmax ---- */

typedef struct softmax_job {
    const void *x;
    void *y;
    int64_t axis_len, inner; /* lanes are (outer, inner) pairs; a lane walks axis_len values */
} softmax_job;

#define DEFINE_SOFTMAX(SUF, T)                                                             \
    static void softmax_##SUF(void *arg, int64_t begin, int64_t end)                       \
    {                                                                                      \
        const softmax_job *j = arg;                                                        \
        const int64_t n = j->axis_len, st = j->inner;                                      \
        for (int64_t lane = begin; lane < end; lane++) {                                   \
            int64_t base = lane / st * n * st + lane % st;                                 \
            const T *x = (const T *)j->x + base;                                           \
            T *y = (T *)j->y + base;                                                       \
            T m = x[0];                                                                    \
            for (int64_t i = 1; i < n; i++) {                                              \
                m = x[i * st] > m ? x[i * st] : m;                                         \
            }                                                                              \
            double sum = 0;                                                                \
            for (int64_t i = 0; i < n; i++) {                                              \
                T e = exp(x[i * st] - m);                                                  \
                y[i * st] = e;                                                             \
                sum += e;                                                                  \
            }                                                                              \
            T inv = (T)(1.0 / sum);                                                        \
            for (int64_t i = 0; i < n; i++) {                                              \
                y[i * st] *= inv;                                                          \
            }                                                                              \
        }                                                                                  \
    }

DEFINE_SOFTMAX(f32, float)
DEFINE_SOFTMAX(f64, double)

sl_status sl_kernel_softmax(sl_op_call *call)
{
    const sl_value *x = call->in[0];
    const sl_params_axes *p = &call->p->axes;
    int axis = 0;
    sl_axis_normalize(p->n_axis ? p->axis[0] : -1, x->shape.rank, &axis);
    int64_t numel = sl_shape_numel(&x->shape), n = x->shape.dims[axis];
    if (numel == 0) {
        return SL_OK;
    }
    softmax_job j = {x->data, call->out[0]->data, n, sl_shape_prod(&x->shape, axis + 1,
                                                                  x->shape.rank)};
    sl_pool_for(call->pool, numel / n, n >= GRAIN ? 1 : GRAIN / n,
                x->dtype == SL_DTYPE_FLOAT32 ? softmax_f32 : softmax_f64, &j);
    return SL_OK;
}
