/* Reshape/ExpandDims/Squeeze/Flatten, Transpose, Concat, Split, StridedSlice, Gather, Shape,
 * TupleGetItem and NonZero: against plain loops or values worked out by hand (numpy semantics),
 * plus the errors untrusted models must get. */
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

/* An int32 tensor holding 0, 1, 2, ... */
static sl_value *value_arange(int rank, const int64_t *dims)
{
    sl_value *v = value_new(SL_DTYPE_INT32, rank, dims, NULL);
    for (int64_t i = 0; i < sl_shape_numel(&v->shape); i++) {
        ((int32_t *)v->data)[i] = (int32_t)i;
    }
    return v;
}

static void expect_ints(const sl_value *v, int64_t n, const int64_t *want)
{
    assert_int_equal(sl_shape_numel(&v->shape), n);
    for (int64_t i = 0; i < n; i++) {
        if (sl_value_get_int(v, i) != want[i]) {
            fail_msg("element %lld: got %lld, want %lld", (long long)i,
                     (long long)sl_value_get_int(v, i), (long long)want[i]);
        }
    }
}

/* ---- reshape family ---- */

static void reshape_check(sl_op op, const sl_params *p, sl_value *x, sl_value *arg, int rank,
                          const int64_t *dims)
{
    sl_value *in[2] = {x, arg}, out;
    assert_int_equal(run_op(op, p, in, arg ? 2 : 1, &out), SL_OK);
    expect_shape(&out, rank, dims);
    assert_int_equal(out.dtype, x->dtype);
    assert_memory_equal(out.data, x->data, sl_value_bytes(x));
    out_free(&out);
}

static void test_reshape(void **state)
{
    (void)state;
    int64_t d[] = {2, 3, 4};
    sl_value *x = value_arange(3, d);
    sl_value *t = value_ints(2, (int64_t[]){4, -1});
    reshape_check(SL_OP_RESHAPE, &no_params, x, t, 2, (int64_t[]){4, 6});
    value_free(t);
    t = value_ints(4, (int64_t[]){1, 24, 1, 1});
    reshape_check(SL_OP_RESHAPE, &no_params, x, t, 4, (int64_t[]){1, 24, 1, 1});
    value_free(t);
    int64_t d1[] = {24};
    sl_value *x1 = value_arange(1, d1);
    t = value_i64(24); /* a 0-d target: one dim */
    reshape_check(SL_OP_RESHAPE, &no_params, x1, t, 1, d1);
    value_free(t);
    int64_t de[] = {2, 0};
    sl_value *xe = value_arange(2, de);
    t = value_ints(3, (int64_t[]){0, 5, 7}); /* 0 is a literal empty dim */
    reshape_check(SL_OP_RESHAPE, &no_params, xe, t, 3, (int64_t[]){0, 5, 7});
    value_free(t);
    /* errors */
    sl_value *in[2] = {x, value_ints(2, (int64_t[]){5, 5})};
    expect_error(SL_OP_RESHAPE, &no_params, in, 2, SL_ERR_SHAPE, "[2,3,4] into [5,5]");
    value_free(in[1]);
    in[1] = value_ints(2, (int64_t[]){-1, -1});
    expect_error(SL_OP_RESHAPE, &no_params, in, 2, SL_ERR_SHAPE, "-1");
    value_free(in[1]);
    in[1] = value_ints(2, (int64_t[]){0, -1});
    expect_error(SL_OP_RESHAPE, &no_params, in, 2, SL_ERR_SHAPE, "infer");
    value_free(in[1]);
    in[1] = value_ints(2, (int64_t[]){-2, 12});
    expect_error(SL_OP_RESHAPE, &no_params, in, 2, SL_ERR_SHAPE, "-2");
    value_free(in[1]);
    in[1] = value_ints(2, (int64_t[]){(int64_t)1 << 40, (int64_t)1 << 40});
    expect_error(SL_OP_RESHAPE, &no_params, in, 2, SL_ERR_SHAPE, "invalid");
    in[1]->kind = SL_VALUE_ACT; /* computed at run time: not readable at infer time */
    expect_error(SL_OP_RESHAPE, &no_params, in, 2, SL_ERR_UNSUPPORTED, "constant");
    value_free(in[1]);
    in[1] = value_new(SL_DTYPE_FLOAT32, 1, (int64_t[]){2}, NULL);
    expect_error(SL_OP_RESHAPE, &no_params, in, 2, SL_ERR_UNSUPPORTED, "float32");
    value_free(in[1]);
    expect_error(SL_OP_RESHAPE, &no_params, in, 1, SL_ERR_FORMAT, "inputs");
    value_free(xe);
    value_free(x1);
    value_free(x);
}

static void test_expand_squeeze_flatten(void **state)
{
    (void)state;
    int64_t d[] = {2, 3};
    sl_value *x = value_arange(2, d);
    sl_params p = {.axes = {.axis = {-1}, .n_axis = 1}};
    reshape_check(SL_OP_EXPAND_DIMS, &p, x, NULL, 3, (int64_t[]){2, 3, 1});
    p.axes.axis[0] = 0;
    reshape_check(SL_OP_EXPAND_DIMS, &p, x, NULL, 3, (int64_t[]){1, 2, 3});
    sl_value *axis = value_i64(1); /* the axis as a constant input */
    reshape_check(SL_OP_EXPAND_DIMS, &no_params, x, axis, 3, (int64_t[]){2, 1, 3});
    p.axes.axis[0] = 3;
    expect_error(SL_OP_EXPAND_DIMS, &p, &x, 1, SL_ERR_SHAPE, "axis");

    int64_t ds[] = {1, 3, 1, 2};
    sl_value *xs = value_arange(4, ds);
    reshape_check(SL_OP_SQUEEZE, &no_params, xs, NULL, 2, (int64_t[]){3, 2});
    p = (sl_params){.axes = {.axis = {2}, .n_axis = 1}};
    reshape_check(SL_OP_SQUEEZE, &p, xs, NULL, 3, (int64_t[]){1, 3, 2});
    p = (sl_params){.axes = {.axis = {-4, 2}, .n_axis = 2}};
    reshape_check(SL_OP_SQUEEZE, &p, xs, NULL, 2, (int64_t[]){3, 2});
    p = (sl_params){.axes = {.axis = {1}, .n_axis = 1}};
    expect_error(SL_OP_SQUEEZE, &p, &xs, 1, SL_ERR_SHAPE, "squeeze dim 1");
    p.axes.axis[0] = 4;
    expect_error(SL_OP_SQUEEZE, &p, &xs, 1, SL_ERR_SHAPE, "axis 4");

    int64_t df[] = {2, 3, 4};
    sl_value *xf = value_arange(3, df);
    reshape_check(SL_OP_FLATTEN, &no_params, xf, NULL, 2, (int64_t[]){2, 12});
    p = (sl_params){.axes = {.axis = {0}, .n_axis = 1}};
    reshape_check(SL_OP_FLATTEN, &p, xf, NULL, 2, (int64_t[]){1, 24});
    p.axes.axis[0] = -1;
    reshape_check(SL_OP_FLATTEN, &p, xf, NULL, 2, (int64_t[]){6, 4});
    int64_t d5 = 5;
    sl_value *x5 = value_arange(1, &d5);
    reshape_check(SL_OP_FLATTEN, &no_params, x5, NULL, 2, (int64_t[]){5, 1});
    p.axes.axis[0] = 4;
    expect_error(SL_OP_FLATTEN, &p, &xf, 1, SL_ERR_SHAPE, "axis 4");
    value_free(x5);
    value_free(xf);
    value_free(xs);
    value_free(axis);
    value_free(x);
}

/* ---- transpose ---- */

static void transpose_check(sl_value *x, const int64_t *perm)
{
    int rank = x->shape.rank;
    sl_value *in[2] = {x, value_ints(rank, perm)}, out;
    assert_int_equal(run_op(SL_OP_TRANSPOSE, &no_params, in, 2, &out), SL_OK);
    size_t esz = sl_dtype_size(x->dtype);
    int64_t n = sl_shape_numel(&x->shape), idx[SL_MAX_DIMS];
    for (int i = 0; i < rank; i++) {
        assert_int_equal(out.shape.dims[i], x->shape.dims[perm[i]]);
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, src = 0;
        for (int d = rank - 1; d >= 0; d--) {
            idx[d] = rem % out.shape.dims[d];
            rem /= out.shape.dims[d];
        }
        int64_t in_idx[SL_MAX_DIMS];
        for (int d = 0; d < rank; d++) {
            in_idx[perm[d]] = idx[d];
        }
        for (int d = 0; d < rank; d++) {
            src = src * x->shape.dims[d] + in_idx[d];
        }
        if (memcmp((char *)out.data + i * (int64_t)esz, (char *)x->data + src * (int64_t)esz,
                   esz) != 0) {
            fail_msg("element %lld differs", (long long)i);
        }
    }
    out_free(&out);
    value_free(in[1]);
}

static void test_transpose(void **state)
{
    (void)state;
    static const sl_dtype dtypes[] = {SL_DTYPE_INT8, SL_DTYPE_FLOAT16, SL_DTYPE_INT32,
                                      SL_DTYPE_FLOAT64, SL_DTYPE_BOOL};
    for (int iter = 0; iter < 200; iter++) {
        int rank = (int)rnd(0, 5);
        int64_t dims[SL_MAX_DIMS], perm[SL_MAX_DIMS];
        for (int i = 0; i < rank; i++) {
            dims[i] = rnd(0, 10) == 0 ? 0 : rnd(1, 4);
            perm[i] = i;
        }
        for (int i = rank - 1; i > 0; i--) {
            int j = (int)rnd(0, i);
            int64_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        sl_value *x = value_random(dtypes[iter % 5], rank, dims);
        transpose_check(x, perm);
        value_free(x);
    }
    sl_value *x = value_random(SL_DTYPE_FLOAT32, 3, (int64_t[]){64, 300, 7});
    transpose_check(x, (int64_t[]){2, 0, 1});
    transpose_check(x, (int64_t[]){0, 2, 1});
    transpose_check(x, (int64_t[]){1, 0, 2});
    /* a negative perm entry counts from the end */
    sl_value *in[2] = {x, value_ints(3, (int64_t[]){-1, 0, 1})}, out;
    assert_int_equal(run_op(SL_OP_TRANSPOSE, &no_params, in, 2, &out), SL_OK);
    expect_shape(&out, 3, (int64_t[]){7, 64, 300});
    out_free(&out);
    value_free(in[1]);
    in[1] = value_ints(3, (int64_t[]){0, 0, 1});
    expect_error(SL_OP_TRANSPOSE, &no_params, in, 2, SL_ERR_SHAPE, "permutation");
    value_free(in[1]);
    in[1] = value_ints(3, (int64_t[]){0, 1, 3});
    expect_error(SL_OP_TRANSPOSE, &no_params, in, 2, SL_ERR_SHAPE, "permutation");
    value_free(in[1]);
    in[1] = value_ints(2, (int64_t[]){0, 1});
    expect_error(SL_OP_TRANSPOSE, &no_params, in, 2, SL_ERR_SHAPE, "2 entries");
    in[1]->kind = SL_VALUE_INPUT;
    expect_error(SL_OP_TRANSPOSE, &no_params, in, 2, SL_ERR_UNSUPPORTED, "constant");
    value_free(in[1]);
    value_free(x);
}

/* ---- concat and split ---- */

static void test_concat(void **state)
{
    (void)state;
    for (int iter = 0; iter < 100; iter++) {
        int rank = (int)rnd(1, 4), n_in = (int)rnd(1, 4), axis = (int)rnd(0, rank - 1);
        int64_t dims[4];
        for (int i = 0; i < rank; i++) {
            dims[i] = rnd(0, 8) == 0 ? 0 : rnd(1, 4);
        }
        sl_value *in[4];
        int64_t total = 0, starts[4];
        for (int k = 0; k < n_in; k++) {
            dims[axis] = rnd(0, 3);
            starts[k] = total;
            total += dims[axis];
            in[k] = value_random(iter % 2 ? SL_DTYPE_INT64 : SL_DTYPE_INT8, rank, dims);
        }
        sl_params p = {.axes = {.axis = {iter % 3 ? axis : axis - rank}, .n_axis = 1}};
        sl_value out;
        assert_int_equal(run_op(SL_OP_CONCAT, &p, in, n_in, &out), SL_OK);
        assert_int_equal(out.shape.dims[axis], total);
        int64_t n = sl_shape_numel(&out.shape), inner = 1;
        for (int i = axis + 1; i < rank; i++) {
            inner *= dims[i];
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t o = i / (total * inner), a = i / inner % total, r = i % inner;
            int k = 0;
            while (k + 1 < n_in && a >= starts[k + 1]) {
                k++;
            }
            int64_t len = in[k]->shape.dims[axis];
            int64_t src = (o * len + (a - starts[k])) * inner + r;
            assert_int_equal(sl_value_get_int(&out, i), sl_value_get_int(in[k], src));
        }
        out_free(&out);
        values_free(in, n_in);
    }
    sl_value *in[2] = {value_arange(2, (int64_t[]){2, 3}), value_arange(2, (int64_t[]){2, 4})};
    sl_params p = {.axes = {.axis = {0}, .n_axis = 1}};
    expect_error(SL_OP_CONCAT, &p, in, 2, SL_ERR_SHAPE, "[2,4]");
    p.axes.axis[0] = 2;
    expect_error(SL_OP_CONCAT, &p, in, 2, SL_ERR_SHAPE, "axis 2");
    p.axes.axis[0] = 1;
    in[1]->dtype = SL_DTYPE_FLOAT32;
    expect_error(SL_OP_CONCAT, &p, in, 2, SL_ERR_UNSUPPORTED, "float32");
    values_free(in, 2);
}

static void test_split(void **state)
{
    (void)state;
    sl_value *x = value_arange(2, (int64_t[]){4, 6});
    sl_params p = {.split = {.axis = -1, .output_num = 3}};
    sl_value out[4];
    assert_int_equal(run_op_n(SL_OP_SPLIT, &p, &x, 1, out, 3), SL_OK);
    for (int k = 0; k < 3; k++) {
        expect_shape(&out[k], 2, (int64_t[]){4, 2});
        for (int64_t i = 0; i < 8; i++) {
            assert_int_equal(sl_value_get_int(&out[k], i), i / 2 * 6 + k * 2 + i % 2);
        }
        out_free(&out[k]);
    }
    p.split = (sl_params_split){.axis = 0, .output_num = 2};
    assert_int_equal(run_op_n(SL_OP_SPLIT, &p, &x, 1, out, 2), SL_OK);
    expect_ints(&out[1], 12, (int64_t[]){12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23});
    out_free(&out[0]);
    out_free(&out[1]);
    p.split = (sl_params_split){.axis = 1, .output_num = 4};
    assert_int_equal(run_op_n(SL_OP_SPLIT, &p, &x, 1, out, 4), SL_ERR_SHAPE);
    p.split.output_num = 2;
    x->shape.dims[1] = 5;
    expect_error(SL_OP_SPLIT, &p, &x, 1, SL_ERR_SHAPE, "equal parts");
    p.split.output_num = 3;
    expect_error(SL_OP_SPLIT, &p, &x, 1, SL_ERR_FORMAT, "output_num 3");
    p.split = (sl_params_split){.axis = 2, .output_num = 2};
    expect_error(SL_OP_SPLIT, &p, &x, 1, SL_ERR_SHAPE, "axis 2");
    value_free(x);
}

/* ---- strided_slice ---- */

typedef struct slice_case {
    int n;
    int64_t begin[4], end[4], strides[4];
    sl_params_strided_slice masks;
    int rank;
    int64_t dims[4];
    int64_t want[24];
} slice_case;

static sl_status slice_run(sl_value *x, const slice_case *c, sl_value *out)
{
    sl_value *in[4] = {x, value_ints(c->n, c->begin), value_ints(c->n, c->end),
                       value_ints(c->n, c->strides)};
    sl_params p = {.strided_slice = c->masks};
    sl_status st = run_op(SL_OP_STRIDED_SLICE, &p, in, 4, out);
    values_free(in + 1, 3);
    return st;
}

static void test_strided_slice(void **state)
{
    (void)state;
    /* x = arange(24).reshape(2, 3, 4); expected values from numpy */
    static const slice_case cases3[] = {
        /* x[0:2, 1:3, 0:4:2] */
        {3, {0, 1, 0}, {2, 3, 4}, {1, 1, 2}, {0}, 3, {2, 2, 2}, {4, 6, 8, 10, 16, 18, 20, 22}},
        /* x[1, :, 2] */
        {3, {1, 0, 2}, {2, 0, 3}, {1, 1, 1}, {.begin_mask = 2, .end_mask = 2,
         .shrink_axis_mask = 5}, 1, {3}, {14, 18, 22}},
        /* x[..., None, 1:3] */
        {3, {0, 0, 1}, {0, 0, 3}, {1, 1, 1}, {.ellipsis_mask = 1, .new_axis_mask = 2}, 4,
         {2, 3, 1, 2}, {1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}},
        /* x[None, 0] */
        {2, {0, 0}, {0, 1}, {1, 1}, {.new_axis_mask = 1, .shrink_axis_mask = 2}, 3, {1, 3, 4},
         {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
        /* x[:, -1] */
        {2, {0, -1}, {0, 0}, {1, 1}, {.begin_mask = 1, .end_mask = 1, .shrink_axis_mask = 2}, 2,
         {2, 4}, {8, 9, 10, 11, 20, 21, 22, 23}},
        /* x[::-1, ::-2, -1:0:-2] */
        {3, {0, 0, -1}, {0, 0, 0}, {-1, -2, -2}, {.begin_mask = 3, .end_mask = 3}, 3, {2, 2, 2},
         {23, 21, 15, 13, 11, 9, 3, 1}},
        /* x[1:] (the dims not named are kept whole) */
        {1, {1}, {5}, {1}, {0}, 3, {1, 3, 4},
         {12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}},
        /* x[:, 2:1] is empty */
        {2, {0, 2}, {0, 1}, {1, 1}, {.begin_mask = 1, .end_mask = 1}, 3, {2, 0, 4}, {0}},
        /* x[0:1:2**63-1] and x[-1:-3:-2**63]: one element along a dim with a step so large
         * that step * the dim's stride (12) overflows; the step is never taken */
        {1, {0}, {1}, {INT64_MAX}, {0}, 3, {1, 3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
        {1, {-1}, {-3}, {INT64_MIN}, {0}, 3, {1, 3, 4},
         {12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}},
    };
    sl_value *x = value_arange(3, (int64_t[]){2, 3, 4});
    for (size_t c = 0; c < sizeof cases3 / sizeof cases3[0]; c++) {
        sl_value out;
        assert_int_equal(slice_run(x, &cases3[c], &out), SL_OK);
        expect_shape(&out, cases3[c].rank, cases3[c].dims);
        expect_ints(&out, sl_shape_numel(&out.shape), cases3[c].want);
        out_free(&out);
    }
    /* y = arange(10) */
    static const slice_case cases1[] = {
        {1, {8}, {1}, {-3}, {0}, 1, {3}, {8, 5, 2}},                      /* y[8:1:-3] */
        {1, {-1}, {-11}, {-1}, {0}, 1, {10}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}}, /* y[-1:-11:-1] */
        {1, {100}, {-100}, {-4}, {0}, 1, {3}, {9, 5, 1}},                 /* y[100:-100:-4] */
        {1, {2}, {100}, {3}, {0}, 1, {3}, {2, 5, 8}},                     /* y[2:100:3] */
        {1, {5}, {2}, {1}, {0}, 1, {0}, {0}},                             /* y[5:2] */
        {1, {INT64_MIN}, {INT64_MAX}, {INT64_MAX}, {0}, 1, {1}, {0}},     /* extreme values */
        {1, {INT64_MAX}, {INT64_MIN}, {INT64_MIN}, {0}, 1, {1}, {9}},
    };
    sl_value *y = value_arange(1, (int64_t[]){10});
    for (size_t c = 0; c < sizeof cases1 / sizeof cases1[0]; c++) {
        sl_value out;
        assert_int_equal(slice_run(y, &cases1[c], &out), SL_OK);
        expect_shape(&out, cases1[c].rank, cases1[c].dims);
        expect_ints(&out, sl_shape_numel(&out.shape), cases1[c].want);
        out_free(&out);
    }
    /* a large slice takes the parallel path: z[:, 1::2] of a [500, 400] tensor */
    sl_value *z = value_arange(2, (int64_t[]){500, 400}), out;
    slice_case big = {2, {0, 1}, {0, 0}, {1, 2}, {.begin_mask = 1, .end_mask = 3}, 0, {0}, {0}};
    assert_int_equal(slice_run(z, &big, &out), SL_OK);
    expect_shape(&out, 2, (int64_t[]){500, 200});
    for (int64_t i = 0; i < 500 * 200; i++) {
        assert_int_equal(((int32_t *)out.data)[i], i / 200 * 400 + 1 + i % 200 * 2);
    }
    out_free(&out);
    /* errors */
    slice_case bad = {1, {0}, {1}, {0}, {0}, 0, {0}, {0}};
    sl_value *in[4] = {x, value_ints(1, bad.begin), value_ints(1, bad.end),
                       value_ints(1, bad.strides)};
    sl_params p = {0};
    expect_error(SL_OP_STRIDED_SLICE, &p, in, 4, SL_ERR_INVALID_ARG, "stride 0 is 0");
    value_free(in[3]);
    in[3] = value_ints(2, (int64_t[]){1, 1});
    expect_error(SL_OP_STRIDED_SLICE, &p, in, 4, SL_ERR_SHAPE, "1, 1 and 2 values");
    value_free(in[3]);
    in[3] = value_ints(1, (int64_t[]){1});
    value_free(in[1]);
    in[1] = value_ints(1, (int64_t[]){2});
    p.strided_slice.shrink_axis_mask = 1;
    expect_error(SL_OP_STRIDED_SLICE, &p, in, 4, SL_ERR_SHAPE, "out of range");
    in[1]->kind = SL_VALUE_ACT;
    expect_error(SL_OP_STRIDED_SLICE, &p, in, 4, SL_ERR_UNSUPPORTED, "constant");
    expect_error(SL_OP_STRIDED_SLICE, &p, in, 3, SL_ERR_FORMAT, "inputs");
    values_free(in + 1, 3);
    slice_case too_many = {4, {0, 0, 0, 0}, {1, 1, 1, 1}, {1, 1, 1, 1}, {0}, 0, {0}, {0}};
    assert_int_equal(slice_run(x, &too_many, &out), SL_ERR_SHAPE);
    value_free(z);
    value_free(y);
    value_free(x);
}

/* ---- gather ---- */

static void test_gather(void **state)
{
    (void)state;
    sl_value *x = value_new(SL_DTYPE_FLOAT32, 2, (int64_t[]){3, 4}, NULL);
    for (int i = 0; i < 12; i++) {
        ((float *)x->data)[i] = (float)i + 0.5f;
    }
    /* axis 0, 2-D int64 indices; out-of-range (negative or too big) rows are zeros */
    sl_value *in[3] = {x, value_new(SL_DTYPE_INT64, 2, (int64_t[]){2, 2},
                                    (int64_t[]){2, 0, -1, 3}),
                       value_i64(0)};
    sl_value out;
    assert_int_equal(run_op(SL_OP_GATHER, &no_params, in, 3, &out), SL_OK);
    expect_shape(&out, 3, (int64_t[]){2, 2, 4});
    float want0[] = {8.5f, 9.5f, 10.5f, 11.5f, 0.5f, 1.5f, 2.5f, 3.5f, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(out.data, want0, sizeof want0);
    out_free(&out);
    values_free(in + 1, 2);
    /* axis -1, int32 indices */
    int32_t idx[] = {3, 1, 4};
    in[1] = value_new(SL_DTYPE_INT32, 1, (int64_t[]){3}, idx);
    in[2] = value_i64(-1);
    assert_int_equal(run_op(SL_OP_GATHER, &no_params, in, 3, &out), SL_OK);
    expect_shape(&out, 2, (int64_t[]){3, 3});
    float want1[] = {3.5f, 1.5f, 0, 7.5f, 5.5f, 0, 11.5f, 9.5f, 0};
    assert_memory_equal(out.data, want1, sizeof want1);
    out_free(&out);
    /* 0-d indices drop the axis */
    value_free(in[1]);
    in[1] = value_i64(2);
    assert_int_equal(run_op(SL_OP_GATHER, &no_params, in, 3, &out), SL_OK);
    expect_shape(&out, 1, (int64_t[]){3});
    out_free(&out);
    values_free(in + 1, 2);
    /* large: the parallel path */
    sl_value *big = value_random(SL_DTYPE_INT64, 2, (int64_t[]){1000, 64});
    sl_value *bi = value_new(SL_DTYPE_INT32, 1, (int64_t[]){5000}, NULL);
    for (int i = 0; i < 5000; i++) {
        ((int32_t *)bi->data)[i] = (int32_t)rnd(0, 999);
    }
    sl_value *bin[3] = {big, bi, value_i64(0)};
    assert_int_equal(run_op(SL_OP_GATHER, &no_params, bin, 3, &out), SL_OK);
    for (int i = 0; i < 5000; i++) {
        assert_memory_equal((int64_t *)out.data + i * 64,
                            (int64_t *)big->data + ((int32_t *)bi->data)[i] * 64, 64 * 8);
    }
    out_free(&out);
    values_free(bin, 3);
    /* errors */
    in[1] = value_new(SL_DTYPE_FLOAT32, 1, (int64_t[]){3}, NULL);
    in[2] = value_i64(0);
    expect_error(SL_OP_GATHER, &no_params, in, 3, SL_ERR_UNSUPPORTED, "int32 or int64");
    in[1]->dtype = SL_DTYPE_INT32;
    sl_params p = {.gather = {.batch_dims = 1}};
    expect_error(SL_OP_GATHER, &p, in, 3, SL_ERR_UNSUPPORTED, "batch_dims");
    *(int64_t *)in[2]->data = 2;
    expect_error(SL_OP_GATHER, &no_params, in, 3, SL_ERR_SHAPE, "axis");
    in[2]->kind = SL_VALUE_ACT;
    expect_error(SL_OP_GATHER, &no_params, in, 3, SL_ERR_UNSUPPORTED, "constant");
    expect_error(SL_OP_GATHER, &no_params, in, 2, SL_ERR_FORMAT, "inputs");
    values_free(in, 3);
}

/* ---- shape, seq_get_item, non_zero ---- */

static void test_shape_and_item(void **state)
{
    (void)state;
    sl_value *x = value_new(SL_DTYPE_FLOAT32, 3, (int64_t[]){2, 0, 5}, NULL), out;
    assert_int_equal(run_op(SL_OP_SHAPE, &no_params, &x, 1, &out), SL_OK);
    assert_int_equal(out.dtype, SL_DTYPE_INT64);
    expect_ints(&out, 3, (int64_t[]){2, 0, 5});
    out_free(&out);
    x->shape.rank = 0;
    assert_int_equal(run_op(SL_OP_SHAPE, &no_params, &x, 1, &out), SL_OK);
    expect_shape(&out, 1, (int64_t[]){0});
    out_free(&out);
    value_free(x);

    sl_value *in[2] = {value_ints(3, (int64_t[]){10, 20, 30}), value_i64(-1)};
    assert_int_equal(run_op(SL_OP_SEQ_GET_ITEM, &no_params, in, 2, &out), SL_OK);
    assert_int_equal(out.shape.rank, 0);
    assert_int_equal(out.dtype, SL_DTYPE_INT64);
    assert_int_equal(*(int64_t *)out.data, 30);
    out_free(&out);
    *(int64_t *)in[1]->data = 1;
    assert_int_equal(run_op(SL_OP_SEQ_GET_ITEM, &no_params, in, 2, &out), SL_OK);
    assert_int_equal(*(int64_t *)out.data, 20);
    out_free(&out);
    *(int64_t *)in[1]->data = 3;
    expect_error(SL_OP_SEQ_GET_ITEM, &no_params, in, 2, SL_ERR_SHAPE, "[-3, 3)");
    in[1]->kind = SL_VALUE_ACT;
    expect_error(SL_OP_SEQ_GET_ITEM, &no_params, in, 2, SL_ERR_UNSUPPORTED, "constant");
    in[0]->shape.rank = 0;
    expect_error(SL_OP_SEQ_GET_ITEM, &no_params, in, 2, SL_ERR_SHAPE, "1-D");
    values_free(in, 2);
}

static void test_non_zero(void **state)
{
    (void)state;
    float f[] = {0, 1.5f, -0.0f, NAN, 0, -2};
    sl_value *x = value_new(SL_DTYPE_FLOAT32, 2, (int64_t[]){3, 2}, f), out;
    assert_int_equal(run_op(SL_OP_NON_ZERO, &no_params, &x, 1, &out), SL_OK);
    assert_int_equal(out.dtype, SL_DTYPE_INT64);
    assert_true(out.dynamic);
    expect_shape(&out, 2, (int64_t[]){3, 2});
    expect_ints(&out, 6, (int64_t[]){0, 1, 1, 1, 2, 1});
    out_free(&out);
    value_free(x);
    /* random int8 of rank 3 against a plain loop */
    sl_value *r = value_random(SL_DTYPE_INT32, 3, (int64_t[]){4, 5, 6});
    assert_int_equal(run_op(SL_OP_NON_ZERO, &no_params, &r, 1, &out), SL_OK);
    int64_t count = 0;
    for (int64_t i = 0; i < 120; i++) {
        if (((int32_t *)r->data)[i] != 0) {
            int64_t *row = (int64_t *)out.data + count * 3;
            assert_int_equal(row[0] * 30 + row[1] * 6 + row[2], i);
            count++;
        }
    }
    assert_int_equal(out.shape.dims[0], count);
    out_free(&out);
    value_free(r);
    /* bool, 0-d and empty inputs */
    uint8_t t = 1;
    sl_value *s = value_new(SL_DTYPE_BOOL, 0, NULL, &t);
    assert_int_equal(run_op(SL_OP_NON_ZERO, &no_params, &s, 1, &out), SL_OK);
    expect_shape(&out, 2, (int64_t[]){1, 0});
    out_free(&out);
    s->shape.rank = 1; /* [0] */
    assert_int_equal(run_op(SL_OP_NON_ZERO, &no_params, &s, 1, &out), SL_OK);
    expect_shape(&out, 2, (int64_t[]){0, 1});
    out_free(&out);
    s->dtype = SL_DTYPE_UNKNOWN;
    expect_error(SL_OP_NON_ZERO, &no_params, &s, 1, SL_ERR_UNSUPPORTED, "dtype");
    value_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reshape),       cmocka_unit_test(test_expand_squeeze_flatten),
        cmocka_unit_test(test_transpose),     cmocka_unit_test(test_concat),
        cmocka_unit_test(test_split),         cmocka_unit_test(test_strided_slice),
        cmocka_unit_test(test_gather),        cmocka_unit_test(test_shape_and_item),
        cmocka_unit_test(test_non_zero),
    };
    return cmocka_run_group_tests(tests, pool_setup, pool_teardown);
}
