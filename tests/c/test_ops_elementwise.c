/* Unary, Cast, the broadcasting binary ops, BiasAdd, scalar arithmetic and Softmax: each kernel
 * against plain loops or hand-computed values, plus the errors untrusted models must get. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "op_test_util.h"

static const sl_params no_params;

static double at(const sl_value *v, int64_t i)
{
    return sl_value_get_float(v, i);
}

static void expect_near(const sl_value *got, const double *want, int64_t n, double tol)
{
    for (int64_t i = 0; i < n; i++) {
        double g = at(got, i), w = want[i];
        if (isnan(w) ? !isnan(g) : fabs(g - w) > tol * (1 + fabs(w))) {
            fail_msg("element %lld: got %.9g, want %.9g", (long long)i, g, w);
        }
    }
}

/* ---- unary ---- */

static double ref_unary(sl_op op, double x, double alpha)
{
    switch (op) {
    case SL_OP_RELU: return x > 0 ? x : 0;
    case SL_OP_GELU: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case SL_OP_SIGMOID: return 1 / (1 + exp(-x));
    case SL_OP_TANH: return tanh(x);
    case SL_OP_EXP: return exp(x);
    case SL_OP_LOG: return log(x);
    case SL_OP_SQRT: return sqrt(x);
    case SL_OP_NEG: return -x;
    case SL_OP_ABS: return fabs(x);
    case SL_OP_CELU: return fmax(0, x) + fmin(0, alpha * (exp(x / alpha) - 1));
    default: fail(); return 0;
    }
}

static void test_unary_float(void **state)
{
    (void)state;
    static const sl_op ops[] = {SL_OP_RELU, SL_OP_GELU, SL_OP_SIGMOID, SL_OP_TANH, SL_OP_EXP,
                                SL_OP_LOG, SL_OP_SQRT, SL_OP_NEG, SL_OP_ABS, SL_OP_CELU};
    static const int64_t shapes[][3] = {{3, 5, 7}, {1, 1, 1}, {2, 0, 3}, {70000, 1, 1}};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (int dt = 0; dt < 2; dt++) {
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                sl_dtype t = dt ? SL_DTYPE_FLOAT64 : SL_DTYPE_FLOAT32;
                sl_value *x = value_random(t, 3, shapes[s]);
                int64_t n = sl_shape_numel(&x->shape);
                int positive = ops[o] == SL_OP_LOG || ops[o] == SL_OP_SQRT;
                for (int64_t i = 0; positive && i < n; i++) {
                    if (dt) {
                        ((double *)x->data)[i] = fabs(((double *)x->data)[i]) + 0.01;
                    } else {
                        ((float *)x->data)[i] = fabsf(((float *)x->data)[i]) + 0.01f;
                    }
                }
                sl_params p = {.unary = {.alpha = 0.5, .base = -1, .scale = 1, .shift = 0}};
                sl_value out;
                assert_int_equal(run_op(ops[o], &p, &x, 1, &out), SL_OK);
                assert_int_equal(out.dtype, t);
                expect_shape(&out, 3, shapes[s]);
                double *want = malloc(sizeof *want * (size_t)(n ? n : 1));
                for (int64_t i = 0; i < n; i++) {
                    want[i] = ref_unary(ops[o], at(x, i), 0.5);
                }
                expect_near(&out, want, n, dt ? 1e-12 : 2e-6);
                free(want);
                out_free(&out);
                value_free(x);
            }
        }
    }
}

static void test_unary_int(void **state)
{
    (void)state;
    int32_t x32[] = {INT32_MIN, -5, 0, 7, INT32_MAX};
    int64_t x64[] = {INT64_MIN, -5, 0, 7, INT64_MAX};
    int64_t d = 5;
    sl_value *in[2] = {value_new(SL_DTYPE_INT32, 1, &d, x32),
                       value_new(SL_DTYPE_INT64, 1, &d, x64)};
    static const sl_op ops[] = {SL_OP_RELU, SL_OP_NEG, SL_OP_ABS};
    /* negating the minimum wraps, like two's complement hardware does */
    static const int64_t want32[3][5] = {{0, 0, 0, 7, INT32_MAX},
                                         {INT32_MIN, 5, 0, -7, -INT32_MAX},
                                         {INT32_MIN, 5, 0, 7, INT32_MAX}};
    static const int64_t want64[3][5] = {{0, 0, 0, 7, INT64_MAX},
                                         {INT64_MIN, 5, 0, -7, -INT64_MAX},
                                         {INT64_MIN, 5, 0, 7, INT64_MAX}};
    for (int o = 0; o < 3; o++) {
        for (int k = 0; k < 2; k++) {
            sl_value out;
            assert_int_equal(run_op(ops[o], &no_params, &in[k], 1, &out), SL_OK);
            assert_int_equal(out.dtype, in[k]->dtype);
            for (int i = 0; i < 5; i++) {
                assert_int_equal(sl_value_get_int(&out, i), k ? want64[o][i] : want32[o][i]);
            }
            out_free(&out);
        }
    }
    values_free(in, 2);
}

static void test_unary_params(void **state)
{
    (void)state;
    double xs[] = {-2, -0.5, 0.25, 3};
    int64_t d = 4;
    sl_value *x = value_new(SL_DTYPE_FLOAT64, 1, &d, xs);
    /* CeLU: alpha from a run-time int32 scalar input overrides the attribute */
    int32_t a2 = 2;
    sl_value *in[2] = {x, value_new(SL_DTYPE_INT32, 0, NULL, &a2)};
    sl_params p = {.unary = {.alpha = 0.5}};
    sl_value out;
    double want[4];
    assert_int_equal(run_op(SL_OP_CELU, &p, in, 2, &out), SL_OK);
    for (int i = 0; i < 4; i++) {
        want[i] = ref_unary(SL_OP_CELU, xs[i], 2);
    }
    expect_near(&out, want, 4, 1e-12);
    out_free(&out);
    /* Log with base 2, scale 3, shift 7: log2(7 + 3x) */
    p = (sl_params){.unary = {.base = 2, .scale = 3, .shift = 7}};
    assert_int_equal(run_op(SL_OP_LOG, &p, &x, 1, &out), SL_OK);
    for (int i = 0; i < 4; i++) {
        want[i] = log2(7 + 3 * xs[i]);
    }
    expect_near(&out, want, 4, 1e-12);
    out_free(&out);
    value_free(in[1]);

    /* errors */
    int64_t two = 2;
    sl_value *i32 = value_new(SL_DTYPE_INT32, 1, &two, NULL);
    expect_error(SL_OP_SIGMOID, &no_params, &i32, 1, SL_ERR_UNSUPPORTED, "int32");
    sl_value *b = value_new(SL_DTYPE_BOOL, 1, &two, NULL);
    expect_error(SL_OP_RELU, &no_params, &b, 1, SL_ERR_UNSUPPORTED, "bool");
    p = (sl_params){.unary = {.base = 1, .scale = 1}};
    expect_error(SL_OP_LOG, &p, &x, 1, SL_ERR_INVALID_ARG, "base");
    sl_value *bad_alpha[2] = {x, value_new(SL_DTYPE_FLOAT32, 1, &two, NULL)};
    p = (sl_params){.unary = {.alpha = 1}};
    expect_error(SL_OP_CELU, &p, bad_alpha, 2, SL_ERR_SHAPE, "alpha");
    sl_value *two_in[2] = {x, x};
    expect_error(SL_OP_EXP, &no_params, two_in, 2, SL_ERR_FORMAT, "inputs");
    value_free(bad_alpha[1]);
    value_free(b);
    value_free(i32);
    value_free(x);
}

/* ---- cast ---- */

static void cast_check(sl_value *x, sl_dtype to, const double *want)
{
    sl_params p = {.cast = {.to = to}};
    sl_value out;
    assert_int_equal(run_op(SL_OP_CAST, &p, &x, 1, &out), SL_OK);
    assert_int_equal(out.dtype, to);
    assert_true(sl_shape_equal(&out.shape, &x->shape));
    expect_near(&out, want, sl_shape_numel(&x->shape), 0);
    out_free(&out);
}

static void test_cast(void **state)
{
    (void)state;
    float f[] = {1.5f, -1.5f, 300, -300, NAN, 1e10f, -0.0f, 2.7f};
    int64_t n8 = 8;
    sl_value *xf = value_new(SL_DTYPE_FLOAT32, 1, &n8, f);
    /* float to int truncates toward zero, saturates, and maps NaN to 0 */
    cast_check(xf, SL_DTYPE_INT8, (double[]){1, -1, 127, -128, 0, 127, 0, 2});
    cast_check(xf, SL_DTYPE_UINT8, (double[]){1, 0, 255, 0, 0, 255, 0, 2});
    cast_check(xf, SL_DTYPE_INT32, (double[]){1, -1, 300, -300, 0, 2147483647, 0, 2});
    cast_check(xf, SL_DTYPE_INT64, (double[]){1, -1, 300, -300, 0, 1e10, 0, 2});
    cast_check(xf, SL_DTYPE_BOOL, (double[]){1, 1, 1, 1, 1, 1, 0, 1});
    cast_check(xf, SL_DTYPE_FLOAT64, (double[]){1.5, -1.5, 300, -300, NAN, 1e10, 0,
                                                 (double)2.7f});
    /* integers wrap modulo 2^bits, like numpy */
    int64_t i[] = {300, -1, (int64_t)1 << 40};
    int64_t n3 = 3;
    sl_value *xi = value_new(SL_DTYPE_INT64, 1, &n3, i);
    cast_check(xi, SL_DTYPE_INT8, (double[]){44, -1, 0});
    cast_check(xi, SL_DTYPE_UINT8, (double[]){44, 255, 0});
    cast_check(xi, SL_DTYPE_FLOAT32, (double[]){300, -1, 1099511627776.0});
    cast_check(xi, SL_DTYPE_BOOL, (double[]){1, 1, 1});
    uint8_t bools[] = {1, 0, 1};
    sl_value *xb = value_new(SL_DTYPE_BOOL, 1, &n3, bools);
    cast_check(xb, SL_DTYPE_FLOAT32, (double[]){1, 0, 1});
    cast_check(xb, SL_DTYPE_INT32, (double[]){1, 0, 1});
    /* float16 and bfloat16 bit patterns, rounded to nearest even */
    float h[] = {1.0f, 0.5f, 65504, 1e5f, 6e-8f, -2.5f, 0.1f};
    uint16_t hb[] = {0x3c00, 0x3800, 0x7bff, 0x7c00, 0x0001, 0xc100, 0x2e66};
    int64_t n7 = 7;
    sl_value *xh = value_new(SL_DTYPE_FLOAT32, 1, &n7, h);
    sl_params p = {.cast = {.to = SL_DTYPE_FLOAT16}};
    sl_value out;
    assert_int_equal(run_op(SL_OP_CAST, &p, &xh, 1, &out), SL_OK);
    assert_memory_equal(out.data, hb, sizeof hb);
    out_free(&out);
    sl_value *xh16 = value_new(SL_DTYPE_FLOAT16, 1, &n7, hb);
    cast_check(xh16, SL_DTYPE_FLOAT32,
               (double[]){1, 0.5, 65504, INFINITY, 5.9604644775390625e-8, -2.5, 0.0999755859375});
    float bf[] = {1.0f, 3.14159f, -0.0f};
    uint16_t bfb[] = {0x3f80, 0x4049, 0x8000};
    sl_value *xbf = value_new(SL_DTYPE_FLOAT32, 1, &n3, bf);
    p.cast.to = SL_DTYPE_BFLOAT16;
    assert_int_equal(run_op(SL_OP_CAST, &p, &xbf, 1, &out), SL_OK);
    assert_memory_equal(out.data, bfb, sizeof bfb);
    out_free(&out);
    /* the target dtype from a constant second input */
    sl_value *in[2] = {xi, value_i64(SL_DTYPE_INT32)};
    p.cast.to = 0;
    assert_int_equal(run_op(SL_OP_CAST, &p, in, 2, &out), SL_OK);
    assert_int_equal(out.dtype, SL_DTYPE_INT32);
    out_free(&out);
    /* a large input takes the parallel path */
    int64_t big = 100003;
    sl_value *xl = value_random(SL_DTYPE_FLOAT64, 1, &big);
    p.cast.to = SL_DTYPE_FLOAT32;
    assert_int_equal(run_op(SL_OP_CAST, &p, &xl, 1, &out), SL_OK);
    for (int64_t k = 0; k < big; k++) {
        assert_true(((float *)out.data)[k] == (float)((double *)xl->data)[k]);
    }
    out_free(&out);
    /* errors */
    expect_error(SL_OP_CAST, &p, in, 2 + 1, SL_ERR_FORMAT, "inputs");
    p.cast.to = 0;
    expect_error(SL_OP_CAST, &p, &xi, 1, SL_ERR_UNSUPPORTED, "dtype");
    p.cast.to = 999;
    expect_error(SL_OP_CAST, &p, &xi, 1, SL_ERR_UNSUPPORTED, "999");
    value_free(in[1]);
    value_free(xl);
    value_free(xbf);
    value_free(xh16);
    value_free(xh);
    value_free(xb);
    value_free(xi);
    value_free(xf);
}

/* ---- binary ---- */

static int64_t ref_floordiv(int64_t x, int64_t y)
{
    if (y == 0) {
        return 0;
    }
    int64_t q = x / y;
    return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
}

static double ref_binary(sl_op op, int is_int, double x, double y)
{
    switch (op) {
    case SL_OP_ADD: return x + y;
    case SL_OP_SUB: return x - y;
    case SL_OP_MUL: return x * y;
    case SL_OP_MAXIMUM: return x > y ? x : y;
    case SL_OP_MINIMUM: return x < y ? x : y;
    default: return is_int ? (double)ref_floordiv((int64_t)x, (int64_t)y) : x / y;
    }
}

/* Offset in a (shape s) of the output multi-index idx (rank r), numpy broadcasting. */
static int64_t bcast_offset(const sl_shape *s, const int64_t *idx, int r)
{
    int64_t off = 0;
    for (int i = 0; i < s->rank; i++) {
        int64_t d = s->dims[i];
        off = off * d + (d == 1 ? 0 : idx[r - s->rank + i]);
    }
    return off;
}

static void check_binary(sl_op op, sl_value *a, sl_value *b)
{
    sl_value *in[2] = {a, b}, out;
    assert_int_equal(run_op(op, &no_params, in, 2, &out), SL_OK);
    int is_int = out.dtype == SL_DTYPE_INT32 || out.dtype == SL_DTYPE_INT64;
    int64_t n = sl_shape_numel(&out.shape), idx[SL_MAX_DIMS];
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i;
        for (int d = out.shape.rank - 1; d >= 0; d--) {
            idx[d] = rem % out.shape.dims[d];
            rem /= out.shape.dims[d];
        }
        double x = at(a, bcast_offset(&a->shape, idx, out.shape.rank));
        double y = at(b, bcast_offset(&b->shape, idx, out.shape.rank));
        if (out.dtype == SL_DTYPE_FLOAT32) { /* the kernel computes in float */
            x = (float)x;
            y = (float)y;
        } else if (is_int) {
            x = trunc(x);
            y = trunc(y);
        }
        double want = ref_binary(op, is_int, x, y);
        if (out.dtype == SL_DTYPE_FLOAT32) {
            want = (float)want;
        }
        if (at(&out, i) != want) {
            fail_msg("%s element %lld: got %.9g, want %.9g", sl_op_get(op)->name, (long long)i,
                     at(&out, i), want);
        }
    }
    out_free(&out);
}

static const sl_op binary_ops[] = {SL_OP_ADD, SL_OP_SUB, SL_OP_MUL, SL_OP_DIV, SL_OP_REAL_DIV,
                                   SL_OP_MAXIMUM, SL_OP_MINIMUM};
static const sl_dtype arith_dtypes[] = {SL_DTYPE_FLOAT32, SL_DTYPE_FLOAT64, SL_DTYPE_INT32,
                                        SL_DTYPE_INT64};

/* A random shape that broadcasts to out: a suffix of it with some dims replaced by 1. */
static void random_operand_shape(const sl_shape *out, sl_shape *s)
{
    s->rank = (int)rnd(0, out->rank);
    for (int i = 0; i < s->rank; i++) {
        s->dims[i] = rnd(0, 2) == 0 ? 1 : out->dims[out->rank - s->rank + i];
    }
}

static void test_binary_random(void **state)
{
    (void)state;
    for (int iter = 0; iter < 300; iter++) {
        sl_shape out = {.rank = (int)rnd(0, 4)};
        for (int i = 0; i < out.rank; i++) {
            out.dims[i] = rnd(0, 12) == 0 ? 0 : rnd(1, 5);
        }
        sl_shape sa, sb;
        random_operand_shape(&out, &sa);
        random_operand_shape(&out, &sb);
        sl_dtype t = arith_dtypes[rnd(0, 3)];
        sl_value *a = value_random(t, sa.rank, sa.dims), *b = value_random(t, sb.rank, sb.dims);
        for (size_t o = 0; o < sizeof binary_ops / sizeof binary_ops[0]; o++) {
            check_binary(binary_ops[o], a, b);
        }
        value_free(a);
        value_free(b);
    }
}

static void test_binary_large(void **state)
{
    (void)state;
    /* parallel paths: same shape, scalar operands, row broadcasting */
    static const int64_t shapes[][4] = {
        /* rank a, dims..., then b in the next row */
        {2, 3, 20000, 0}, {2, 3, 20000, 0},
        {1, 70001, 0, 0}, {0, 0, 0, 0},
        {0, 0, 0, 0}, {1, 70001, 0, 0},
        {2, 3, 20000, 0}, {1, 20000, 0, 0},
        {3, 50, 40, 30}, {3, 50, 1, 30},
        {3, 2000, 1, 40}, {3, 1, 30, 1},
    };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k += 2) {
        for (int d = 0; d < 4; d++) {
            sl_value *a = value_random(arith_dtypes[d], (int)shapes[k][0], &shapes[k][1]);
            sl_value *b = value_random(arith_dtypes[d], (int)shapes[k + 1][0], &shapes[k + 1][1]);
            check_binary(SL_OP_ADD, a, b);
            check_binary(SL_OP_DIV, a, b);
            check_binary(SL_OP_MAXIMUM, b, a);
            value_free(a);
            value_free(b);
        }
    }
}

static void test_binary_special(void **state)
{
    (void)state;
    /* integer division floors, x / 0 is 0 and MIN / -1 wraps (never a trap) */
    int32_t x[] = {-7, 7, -7, 7, 5, INT32_MIN, -6};
    int32_t y[] = {2, -2, -2, 0, 0, -1, 3};
    int32_t want[] = {-4, -4, 3, 0, 0, INT32_MIN, -2};
    int64_t n = 7;
    sl_value *in[2] = {value_new(SL_DTYPE_INT32, 1, &n, x), value_new(SL_DTYPE_INT32, 1, &n, y)};
    sl_value out;
    assert_int_equal(run_op(SL_OP_DIV, &no_params, in, 2, &out), SL_OK);
    assert_memory_equal(out.data, want, sizeof want);
    out_free(&out);
    /* wrapping integer add */
    int32_t big = INT32_MAX;
    sl_value *s = value_new(SL_DTYPE_INT32, 0, NULL, &big);
    sl_value *in2[2] = {s, s};
    assert_int_equal(run_op(SL_OP_ADD, &no_params, in2, 2, &out), SL_OK);
    assert_int_equal(*(int32_t *)out.data, -2);
    out_free(&out);
    /* NaN propagates through Maximum/Minimum */
    float fa[] = {NAN, 1, 2}, fb[] = {1, NAN, 3};
    int64_t n3 = 3;
    sl_value *f[2] = {value_new(SL_DTYPE_FLOAT32, 1, &n3, fa),
                      value_new(SL_DTYPE_FLOAT32, 1, &n3, fb)};
    assert_int_equal(run_op(SL_OP_MAXIMUM, &no_params, f, 2, &out), SL_OK);
    expect_near(&out, (double[]){NAN, NAN, 3}, 3, 0);
    out_free(&out);
    assert_int_equal(run_op(SL_OP_MINIMUM, &no_params, f, 2, &out), SL_OK);
    expect_near(&out, (double[]){NAN, NAN, 2}, 3, 0);
    out_free(&out);
    /* a 0-d operand of another dtype takes the tensor's dtype */
    int64_t three = 3;
    sl_value *i64s = value_new(SL_DTYPE_INT64, 0, NULL, &three);
    sl_value *mix[2] = {f[0], i64s};
    assert_int_equal(run_op(SL_OP_MUL, &no_params, mix, 2, &out), SL_OK);
    assert_int_equal(out.dtype, SL_DTYPE_FLOAT32);
    expect_near(&out, (double[]){NAN, 3, 6}, 3, 0);
    out_free(&out);
    double half = 2.5;
    sl_value *f64s = value_new(SL_DTYPE_FLOAT64, 0, NULL, &half);
    sl_value *mix2[2] = {f64s, in[0]};
    assert_int_equal(run_op(SL_OP_SUB, &no_params, mix2, 2, &out), SL_OK);
    assert_int_equal(out.dtype, SL_DTYPE_INT32);
    expect_near(&out, (double[]){9, -5, 9, -5, -3, (double)INT32_MIN + 2, 8}, 7, 0);
    out_free(&out);
    sl_value *mix3[2] = {f64s, i64s}; /* both 0-d: the wider arithmetic dtype */
    assert_int_equal(run_op(SL_OP_ADD, &no_params, mix3, 2, &out), SL_OK);
    assert_int_equal(out.dtype, SL_DTYPE_FLOAT64);
    assert_true(*(double *)out.data == 5.5);
    out_free(&out);

    /* errors */
    int64_t d2[] = {2, 3}, d3[] = {4};
    sl_value *bad[2] = {value_new(SL_DTYPE_FLOAT32, 2, d2, NULL),
                        value_new(SL_DTYPE_FLOAT32, 1, d3, NULL)};
    expect_error(SL_OP_ADD, &no_params, bad, 2, SL_ERR_SHAPE, "[2,3] and [4]");
    sl_value *bad2[2] = {bad[0], in[0]};
    expect_error(SL_OP_ADD, &no_params, bad2, 2, SL_ERR_UNSUPPORTED, "float32 and int32");
    sl_value *bools = value_new(SL_DTYPE_BOOL, 1, d3, NULL);
    sl_value *bad3[2] = {bools, bools};
    expect_error(SL_OP_MUL, &no_params, bad3, 2, SL_ERR_UNSUPPORTED, "bool");
    sl_value *bad4[2] = {bad[0], NULL};
    expect_error(SL_OP_SUB, &no_params, bad4, 2, SL_ERR_FORMAT, "missing");
    sl_value *neg = value_new(SL_DTYPE_FLOAT32, 1, d3, NULL);
    neg->shape.dims[0] = -1;
    sl_value *bad5[2] = {neg, neg};
    expect_error(SL_OP_SUB, &no_params, bad5, 2, SL_ERR_SHAPE, "[-1]");
    neg->shape.dims[0] = 4;
    value_free(neg);
    value_free(bools);
    values_free(bad, 2);
    value_free(f64s);
    value_free(i64s);
    values_free(f, 2);
    value_free(s);
    values_free(in, 2);
}

/* ---- bias_add ---- */

static void test_bias_add(void **state)
{
    (void)state;
    static const struct {
        int format, rank;
        int64_t dims[4];
        sl_dtype t;
    } cases[] = {
        {0, 4, {2, 3, 4, 5}, SL_DTYPE_FLOAT32}, {1, 3, {2, 4, 3}, SL_DTYPE_INT32},
        {0, 2, {4, 3}, SL_DTYPE_FLOAT64},       {1, 4, {2, 0, 2, 6}, SL_DTYPE_INT64},
        {0, 3, {64, 8, 300}, SL_DTYPE_FLOAT32},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int axis = cases[c].format == 0 ? 1 : cases[c].rank - 1;
        int64_t ch = cases[c].dims[axis];
        sl_value *in[2] = {value_random(cases[c].t, cases[c].rank, cases[c].dims),
                           value_random(cases[c].t, 1, &ch)};
        sl_params p = {.bias_add = {.format = cases[c].format}};
        sl_value out;
        assert_int_equal(run_op(SL_OP_BIAS_ADD, &p, in, 2, &out), SL_OK);
        int64_t n = sl_shape_numel(&out.shape);
        int64_t inner = 1;
        for (int i = axis + 1; i < cases[c].rank; i++) {
            inner *= cases[c].dims[i];
        }
        for (int64_t i = 0; i < n; i++) {
            double want = at(in[0], i) + at(in[1], i / inner % ch);
            if (cases[c].t == SL_DTYPE_FLOAT32) {
                want = (float)want;
            }
            assert_true(at(&out, i) == want);
        }
        out_free(&out);
        values_free(in, 2);
    }
    int64_t d[] = {2, 3}, five = 5;
    sl_value *x = value_new(SL_DTYPE_FLOAT32, 2, d, NULL);
    sl_value *bad[2] = {x, value_new(SL_DTYPE_FLOAT32, 1, &five, NULL)};
    sl_params p = {.bias_add = {.format = 0}};
    expect_error(SL_OP_BIAS_ADD, &p, bad, 2, SL_ERR_SHAPE, "3 channels");
    x->shape.rank = 1;
    bad[1]->shape.dims[0] = 2;
    expect_error(SL_OP_BIAS_ADD, &p, bad, 2, SL_ERR_SHAPE, "rank");
    x->shape.rank = 2;
    bad[1]->dtype = SL_DTYPE_FLOAT64;
    expect_error(SL_OP_BIAS_ADD, &p, bad, 2, SL_ERR_UNSUPPORTED, "float64");
    values_free(bad, 2);
}

/* ---- scalar ---- */

static void scalar_check(sl_op op, sl_dtype ta, double a, sl_dtype tb, double b, sl_dtype want_t,
                         double want)
{
    sl_value *in[2] = {value_new(ta, 0, NULL, NULL), value_new(tb, 0, NULL, NULL)};
    sl_params to_a = {.cast = {.to = ta}}, to_b = {.cast = {.to = tb}};
    /* fill the inputs through Cast from float64 */
    sl_value *src = value_new(SL_DTYPE_FLOAT64, 0, NULL, &a), out;
    assert_int_equal(run_op(SL_OP_CAST, &to_a, &src, 1, &out), SL_OK);
    memcpy(in[0]->data, out.data, sl_dtype_size(ta));
    out_free(&out);
    *(double *)src->data = b;
    assert_int_equal(run_op(SL_OP_CAST, &to_b, &src, 1, &out), SL_OK);
    memcpy(in[1]->data, out.data, sl_dtype_size(tb));
    out_free(&out);
    assert_int_equal(run_op(op, &no_params, in, 2, &out), SL_OK);
    assert_int_equal(out.dtype, want_t);
    assert_int_equal(out.shape.rank, 0);
    if (at(&out, 0) != want) {
        fail_msg("%s: got %.9g, want %.9g", sl_op_get(op)->name, at(&out, 0), want);
    }
    out_free(&out);
    value_free(src);
    values_free(in, 2);
}

static void test_scalar(void **state)
{
    (void)state;
    scalar_check(SL_OP_SCALAR_ADD, SL_DTYPE_INT32, 7, SL_DTYPE_INT64, -3, SL_DTYPE_INT64, 4);
    scalar_check(SL_OP_SCALAR_SUB, SL_DTYPE_INT64, 7, SL_DTYPE_INT64, 10, SL_DTYPE_INT64, -3);
    scalar_check(SL_OP_SCALAR_MUL, SL_DTYPE_BOOL, 1, SL_DTYPE_INT32, 6, SL_DTYPE_INT64, 6);
    scalar_check(SL_OP_SCALAR_FLOOR_DIV, SL_DTYPE_INT64, -7, SL_DTYPE_INT64, 2, SL_DTYPE_INT64,
                 -4);
    scalar_check(SL_OP_SCALAR_FLOOR_DIV, SL_DTYPE_INT64, 7, SL_DTYPE_INT64, 0, SL_DTYPE_INT64, 0);
    scalar_check(SL_OP_SCALAR_ADD, SL_DTYPE_FLOAT32, 1.5, SL_DTYPE_INT32, 2, SL_DTYPE_FLOAT32,
                 3.5);
    scalar_check(SL_OP_SCALAR_MUL, SL_DTYPE_FLOAT32, 1.5, SL_DTYPE_FLOAT64, 0.25,
                 SL_DTYPE_FLOAT64, 0.375);
    scalar_check(SL_OP_SCALAR_DIV, SL_DTYPE_INT64, 7, SL_DTYPE_INT32, 2, SL_DTYPE_FLOAT32, 3.5);
    scalar_check(SL_OP_SCALAR_DIV, SL_DTYPE_FLOAT64, 1, SL_DTYPE_FLOAT64, 4, SL_DTYPE_FLOAT32,
                 0.25);
    scalar_check(SL_OP_SCALAR_FLOOR_DIV, SL_DTYPE_FLOAT32, -7.5, SL_DTYPE_INT64, 2,
                 SL_DTYPE_FLOAT32, -4);
    int64_t two = 2;
    sl_value *in[2] = {value_new(SL_DTYPE_INT64, 1, &two, NULL), value_i64(1)};
    expect_error(SL_OP_SCALAR_ADD, &no_params, in, 2, SL_ERR_SHAPE, "scalar");
    in[0]->shape.rank = 0;
    in[0]->dtype = SL_DTYPE_UNKNOWN;
    expect_error(SL_OP_SCALAR_ADD, &no_params, in, 2, SL_ERR_UNSUPPORTED, "dtype");
    in[0]->dtype = SL_DTYPE_INT64;
    expect_error(SL_OP_SCALAR_ADD, &no_params, in, 1, SL_ERR_FORMAT, "inputs");
    values_free(in, 2);
}

/* ---- softmax ---- */

static void test_softmax(void **state)
{
    (void)state;
    for (int iter = 0; iter < 60; iter++) {
        int rank = (int)rnd(1, 4);
        int64_t dims[4];
        for (int i = 0; i < rank; i++) {
            dims[i] = rnd(0, 15) == 0 ? 0 : rnd(1, 6);
        }
        if (iter == 0) { /* one big enough for the pool */
            rank = 2;
            dims[0] = 300;
            dims[1] = 700;
        }
        sl_dtype t = iter % 2 ? SL_DTYPE_FLOAT64 : SL_DTYPE_FLOAT32;
        sl_value *x = value_random(t, rank, dims);
        int64_t axis = rnd(-rank, rank - 1);
        sl_params p = {.axes = {.axis = {axis}, .n_axis = iter % 5 == 0 ? 0 : 1}};
        int a = p.axes.n_axis ? (int)(axis < 0 ? axis + rank : axis) : rank - 1;
        sl_value out;
        assert_int_equal(run_op(SL_OP_SOFTMAX, &p, &x, 1, &out), SL_OK);
        int64_t n = sl_shape_numel(&x->shape), len = dims[a], inner = 1;
        for (int i = a + 1; i < rank; i++) {
            inner *= dims[i];
        }
        double *want = malloc(sizeof *want * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++) {
            int64_t base = i / (len * inner) * len * inner + i % inner;
            double sum = 0;
            for (int64_t k = 0; k < len; k++) {
                sum += exp(at(x, base + k * inner));
            }
            want[i] = exp(at(x, i)) / sum;
        }
        expect_near(&out, want, n, t == SL_DTYPE_FLOAT32 ? 1e-6 : 1e-12);
        free(want);
        out_free(&out);
        value_free(x);
    }
    /* stable for large inputs */
    float big[] = {1000, 1000};
    int64_t two = 2;
    sl_value *x = value_new(SL_DTYPE_FLOAT32, 1, &two, big);
    sl_value out;
    assert_int_equal(run_op(SL_OP_SOFTMAX, &no_params, &x, 1, &out), SL_OK);
    expect_near(&out, (double[]){0.5, 0.5}, 2, 0);
    out_free(&out);
    sl_params p = {.axes = {.axis = {1}, .n_axis = 1}};
    expect_error(SL_OP_SOFTMAX, &p, &x, 1, SL_ERR_SHAPE, "axis 1");
    p.axes.n_axis = 2;
    expect_error(SL_OP_SOFTMAX, &p, &x, 1, SL_ERR_UNSUPPORTED, "one axis");
    x->dtype = SL_DTYPE_INT32;
    expect_error(SL_OP_SOFTMAX, &no_params, &x, 1, SL_ERR_UNSUPPORTED, "int32");
    x->dtype = SL_DTYPE_FLOAT32;
    x->shape.rank = 0;
    expect_error(SL_OP_SOFTMAX, &no_params, &x, 1, SL_ERR_SHAPE, "rank 0");
    x->shape.rank = 1;
    value_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_float),   cmocka_unit_test(test_unary_int),
        cmocka_unit_test(test_unary_params),  cmocka_unit_test(test_cast),
        cmocka_unit_test(test_binary_random), cmocka_unit_test(test_binary_large),
        cmocka_unit_test(test_binary_special), cmocka_unit_test(test_bias_add),
        cmocka_unit_test(test_scalar),        cmocka_unit_test(test_softmax),
    };
    return cmocka_run_group_tests(tests, pool_setup, pool_teardown);
}
