/* MatMul/BatchMatMul, Conv2D, MaxPool/AvgPool and UpsampleNearest3D: each kernel against a naive
 * loop on small random shapes, plus the errors that untrusted models must get. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pool.h"
#include "graph/ir.h"
#include "graph/ops.h"

/* ---- harness ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static int64_t rnd(int64_t lo, int64_t hi) /* uniform in [lo, hi] */
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return lo + (int64_t)((rng_state >> 33) % (uint64_t)(hi - lo + 1));
}

static double rnd_real(void)
{
    return (double)rnd(-1000, 1000) / 1000.0;
}

static sl_value *value_new(sl_dtype dtype, int rank, const int64_t *dims)
{
    sl_value *v = calloc(1, sizeof *v);
    assert_non_null(v);
    v->dtype = dtype;
    v->kind = SL_VALUE_CONST;
    v->shape.rank = rank;
    for (int i = 0; i < rank; i++) {
        v->shape.dims[i] = dims[i];
    }
    int64_t n = sl_shape_numel(&v->shape);
    v->data = calloc(n > 0 ? (size_t)n : 1, sl_dtype_size(dtype));
    assert_non_null(v->data);
    return v;
}

/* A tensor of random values (integers in [-9, 9] for integer dtypes). */
static sl_value *value_random(sl_dtype dtype, int rank, const int64_t *dims)
{
    sl_value *v = value_new(dtype, rank, dims);
    int64_t n = sl_shape_numel(&v->shape);
    for (int64_t i = 0; i < n; i++) {
        switch (dtype) {
        case SL_DTYPE_FLOAT32: ((float *)v->data)[i] = (float)rnd_real(); break;
        case SL_DTYPE_FLOAT64: ((double *)v->data)[i] = rnd_real(); break;
        case SL_DTYPE_INT32: ((int32_t *)v->data)[i] = (int32_t)rnd(-9, 9); break;
        case SL_DTYPE_INT64: ((int64_t *)v->data)[i] = rnd(-9, 9); break;
        default: fail();
        }
    }
    return v;
}

static void value_free(sl_value *v)
{
    if (v) {
        free(v->data);
        free(v);
    }
}

static double value_at(const sl_value *v, int64_t i)
{
    return sl_value_get_float(v, i);
}

static sl_pool *test_pool; /* 4 threads: the kernels' parallel paths run under the sanitizers */

/* Infers and runs one node; on success out holds the result (out->data owned by the caller).
 * The output and scratch start as garbage so that unwritten elements show. */
static sl_status run_op(sl_op op, const sl_params *p, sl_value **in, int n_in, sl_value *out)
{
    sl_node node = {.op = op, .name = "n0", .params = *p};
    sl_op_call call = {.node = &node, .p = &node.params, .in = in, .n_in = n_in, .out = &out,
                       .n_out = 1, .pool = test_pool};
    const sl_op_info *info = sl_op_get(op);
    memset(out, 0, sizeof *out);
    sl_status st = info->infer(&call);
    if (st != SL_OK) {
        return st;
    }
    size_t bytes = sl_value_bytes(out);
    out->data = malloc(bytes ? bytes : 1);
    void *scratch = malloc(call.scratch_bytes ? call.scratch_bytes : 1);
    assert_non_null(out->data);
    assert_non_null(scratch);
    memset(out->data, 0xff, bytes);
    memset(scratch, 0xff, call.scratch_bytes);
    call.scratch = scratch;
    call.running = 1;
    st = info->kernel(&call);
    free(scratch);
    return st;
}

/* Expects infer to fail with st and a message that names the node and the op. */
static void expect_error(sl_op op, const sl_params *p, sl_value **in, int n_in, sl_status st,
                         const char *needle)
{
    sl_value out;
    assert_int_equal(run_op(op, p, in, n_in, &out), st);
    const char *msg = sl_last_error();
    if (!strstr(msg, "n0 (") || !strstr(msg, sl_op_get(op)->name) || !strstr(msg, needle)) {
        fail_msg("unexpected message: %s", msg);
    }
}

static void expect_close(const sl_value *got, const double *want, int64_t n, double tol)
{
    for (int64_t i = 0; i < n; i++) {
        double g = value_at(got, i);
        if (!(fabs(g - want[i]) <= tol * (1.0 + fabs(want[i])))) {
            fail_msg("element %lld: got %.9g, want %.9g", (long long)i, g, want[i]);
        }
    }
}

static void expect_shape(const sl_value *v, int rank, const int64_t *dims)
{
    assert_int_equal(v->shape.rank, rank);
    for (int i = 0; i < rank; i++) {
        assert_int_equal(v->shape.dims[i], dims[i]);
    }
}

/* ---- MatMul / BatchMatMul ---- */

/* Reference: numpy.matmul with the transposes, in double. Returns the output element count. */
static int64_t ref_matmul(const sl_value *a, const sl_value *b, int ta, int tb, double *c,
                          int64_t *out_dims, int *out_rank)
{
    int ra = a->shape.rank, rb = b->shape.rank, r = ra > rb ? ra : rb;
    int64_t m = a->shape.dims[ra - 2 + ta], k = a->shape.dims[ra - 1 - ta];
    int64_t n = b->shape.dims[rb - 1 - tb];
    int64_t batch = 1;
    for (int i = 0; i < r - 2; i++) {
        int64_t da = i - (r - ra) >= 0 ? a->shape.dims[i - (r - ra)] : 1;
        int64_t db = i - (r - rb) >= 0 ? b->shape.dims[i - (r - rb)] : 1;
        out_dims[i] = da == 1 ? db : da;
        batch *= out_dims[i];
    }
    out_dims[r - 2] = m;
    out_dims[r - 1] = n;
    *out_rank = r;
    for (int64_t bi = 0; bi < batch; bi++) {
        /* the batch index's coordinates, then a's and b's flat batch numbers */
        int64_t coord[SL_MAX_DIMS], rest = bi, fa = 0, fb = 0;
        for (int i = r - 3; i >= 0; i--) {
            coord[i] = rest % out_dims[i];
            rest /= out_dims[i];
        }
        for (int i = 0; i < r - 2; i++) {
            if (i - (r - ra) >= 0) {
                int64_t d = a->shape.dims[i - (r - ra)];
                fa = fa * d + (d == 1 ? 0 : coord[i]);
            }
            if (i - (r - rb) >= 0) {
                int64_t d = b->shape.dims[i - (r - rb)];
                fb = fb * d + (d == 1 ? 0 : coord[i]);
            }
        }
        for (int64_t i = 0; i < m; i++) {
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t x = 0; x < k; x++) {
                    double av = value_at(a, fa * m * k + (ta ? x * m + i : i * k + x));
                    double bv = value_at(b, fb * k * n + (tb ? j * k + x : x * n + j));
                    s += av * bv;
                }
                c[(bi * m + i) * n + j] = s;
            }
        }
    }
    return batch * m * n;
}

static void check_matmul(sl_op op, sl_dtype dt, int ra, const int64_t *da, int rb,
                         const int64_t *db, int ta, int tb)
{
    sl_value *a = value_random(dt, ra, da), *b = value_random(dt, rb, db);
    sl_value *in[2] = {a, b};
    sl_params p = {.matmul = {.transpose_a = (uint8_t)ta, .transpose_b = (uint8_t)tb}};
    sl_value out;
    assert_int_equal(run_op(op, &p, in, 2, &out), SL_OK);
    assert_int_equal(out.dtype, dt);
    int64_t dims[SL_MAX_DIMS];
    int rank;
    double *want = malloc(4096 * sizeof *want);
    int64_t n = ref_matmul(a, b, ta, tb, want, dims, &rank);
    expect_shape(&out, rank, dims);
    expect_close(&out, want, n, dt == SL_DTYPE_FLOAT32 ? 1e-5 : 1e-12);
    free(want);
    free(out.data);
    value_free(a);
    value_free(b);
}

/* A [.., m, k] (or [.., k, m] when transposed) operand shape with the given batch dims. */
static int mm_shape(int64_t *dims, const int64_t *batch, int nb, int64_t r, int64_t c, int t)
{
    for (int i = 0; i < nb; i++) {
        dims[i] = batch[i];
    }
    dims[nb] = t ? c : r;
    dims[nb + 1] = t ? r : c;
    return nb + 2;
}

static void test_matmul_random(void **state)
{
    (void)state;
    static const sl_dtype dts[] = {SL_DTYPE_FLOAT32, SL_DTYPE_FLOAT64, SL_DTYPE_INT32,
                                   SL_DTYPE_INT64};
    for (int it = 0; it < 200; it++) {
        sl_dtype dt = dts[it % 4];
        int ta = (int)rnd(0, 1), tb = (int)rnd(0, 1);
        /* m or n of 1 takes the GEMV path; 0 gives empty outputs (k == 0: zeros) */
        int64_t m = rnd(0, 6) ? rnd(1, 7) : rnd(0, 1), n = rnd(0, 6) ? rnd(1, 7) : rnd(0, 1);
        int64_t k = rnd(0, 8) ? rnd(1, 7) : 0;
        int64_t ba[3], bb[3];
        int nba = (int)rnd(0, 3), nbb = (int)rnd(0, 3);
        for (int i = 0; i < 3; i++) {
            int64_t d = rnd(1, 3);
            ba[i] = rnd(0, 2) ? d : 1; /* broadcast some dims */
            bb[i] = rnd(0, 2) ? d : 1;
        }
        sl_op op = nba + nbb ? SL_OP_BATCH_MATMUL : (it & 1 ? SL_OP_MATMUL : SL_OP_BATCH_MATMUL);
        int64_t da[SL_MAX_DIMS], db[SL_MAX_DIMS];
        int ra = mm_shape(da, ba + 3 - nba, nba, m, k, ta);
        int rb = mm_shape(db, bb + 3 - nbb, nbb, k, n, tb);
        check_matmul(op, dt, ra, da, rb, db, ta, tb);
    }
}

static void test_matmul_paths(void **state)
{
    (void)state;
    /* GEMV both ways, every transpose; a dot product; broadcast of a rank-2 b */
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        int64_t a1[2], b1[2];
        check_matmul(SL_OP_MATMUL, SL_DTYPE_FLOAT32, mm_shape(a1, NULL, 0, 1, 9, ta), a1,
                     mm_shape(b1, NULL, 0, 9, 5, tb), b1, ta, tb);
        check_matmul(SL_OP_MATMUL, SL_DTYPE_FLOAT64, mm_shape(a1, NULL, 0, 6, 9, ta), a1,
                     mm_shape(b1, NULL, 0, 9, 1, tb), b1, ta, tb);
        check_matmul(SL_OP_MATMUL, SL_DTYPE_FLOAT32, mm_shape(a1, NULL, 0, 1, 4, ta), a1,
                     mm_shape(b1, NULL, 0, 4, 1, tb), b1, ta, tb);
    }
    const int64_t a[] = {2, 3, 4, 5}, b[] = {5, 6}, c[] = {3, 5, 2};
    check_matmul(SL_OP_MATMUL, SL_DTYPE_FLOAT32, 4, a, 2, b, 0, 0);
    check_matmul(SL_OP_BATCH_MATMUL, SL_DTYPE_FLOAT32, 4, a, 3, c, 0, 0);
    /* integer arithmetic wraps instead of overflowing */
    const int64_t s[] = {1, 2};
    sl_value *x = value_new(SL_DTYPE_INT32, 2, s);
    sl_value *y = value_new(SL_DTYPE_INT32, 2, (int64_t[]){2, 1});
    ((int32_t *)x->data)[0] = ((int32_t *)x->data)[1] = INT32_MAX;
    ((int32_t *)y->data)[0] = ((int32_t *)y->data)[1] = 2;
    sl_value *in[2] = {x, y}, out;
    sl_params p = {0};
    assert_int_equal(run_op(SL_OP_MATMUL, &p, in, 2, &out), SL_OK);
    assert_int_equal(((int32_t *)out.data)[0], -4);
    free(out.data);
    value_free(x);
    value_free(y);
}

static void test_matmul_errors(void **state)
{
    (void)state;
    sl_params p = {0};
    sl_value *a = value_new(SL_DTYPE_FLOAT32, 2, (int64_t[]){2, 3});
    sl_value *b = value_new(SL_DTYPE_FLOAT32, 2, (int64_t[]){4, 5});
    sl_value *v = value_new(SL_DTYPE_FLOAT32, 1, (int64_t[]){3});
    sl_value *i = value_new(SL_DTYPE_INT32, 2, (int64_t[]){3, 5});
    sl_value *c = value_new(SL_DTYPE_FLOAT32, 3, (int64_t[]){2, 3, 5});
    sl_value *d = value_new(SL_DTYPE_FLOAT32, 3, (int64_t[]){3, 3, 5});
    sl_value *e = value_new(SL_DTYPE_FLOAT32, 3, (int64_t[]){3, 5, 3});
    expect_error(SL_OP_MATMUL, &p, (sl_value *[]){a, b}, 2, SL_ERR_SHAPE, "inner dimensions");
    expect_error(SL_OP_MATMUL, &p, (sl_value *[]){a, v}, 2, SL_ERR_SHAPE, "rank >= 2");
    expect_error(SL_OP_MATMUL, &p, (sl_value *[]){a, i}, 2, SL_ERR_UNSUPPORTED, "dtypes");
    expect_error(SL_OP_MATMUL, &p, (sl_value *[]){a}, 1, SL_ERR_FORMAT, "inputs");
    expect_error(SL_OP_BATCH_MATMUL, &p, (sl_value *[]){c, d}, 2, SL_ERR_SHAPE, "inner");
    expect_error(SL_OP_BATCH_MATMUL, &p, (sl_value *[]){e, c}, 2, SL_ERR_SHAPE, "broadcast");
    sl_value *f = value_new(SL_DTYPE_FLOAT32, 3, (int64_t[]){2, 5, 3});
    expect_error(SL_OP_BATCH_MATMUL, &p, (sl_value *[]){f, d}, 2, SL_ERR_SHAPE, "broadcast");
    /* the transposes pick the inner dims: 3 and 5 */
    p.matmul.transpose_a = 1;
    p.matmul.transpose_b = 1;
    expect_error(SL_OP_BATCH_MATMUL, &p, (sl_value *[]){c, d}, 2, SL_ERR_SHAPE, "inner");
    /* huge dims overflow the output size */
    sl_value h1 = {.dtype = SL_DTYPE_FLOAT32, .shape = {3, {INT64_MAX / 4, 1, 1}}};
    sl_value h2 = {.dtype = SL_DTYPE_FLOAT32, .shape = {3, {1, 1, 1 << 20}}};
    sl_value h3 = {.dtype = SL_DTYPE_FLOAT32, .shape = {2, {3, -5}}};
    p.matmul.transpose_a = p.matmul.transpose_b = 0;
    expect_error(SL_OP_BATCH_MATMUL, &p, (sl_value *[]){&h1, &h2}, 2, SL_ERR_SHAPE, "overflow");
    expect_error(SL_OP_BATCH_MATMUL, &p, (sl_value *[]){&h3, &h3}, 2, SL_ERR_SHAPE, "negative");
    sl_value *all[] = {a, b, v, i, c, d, e, f};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        value_free(all[k]);
    }
}

static void test_matmul_dynamic(void **state)
{
    (void)state;
    /* unknown dims propagate through infer */
    sl_value a = {.dtype = SL_DTYPE_FLOAT32, .shape = {3, {-1, -1, 8}}};
    sl_value b = {.dtype = SL_DTYPE_FLOAT32, .shape = {3, {4, 8, 16}}};
    sl_node node = {.op = SL_OP_BATCH_MATMUL, .name = "n0"};
    sl_value out = {0}, *outp = &out, *in[2] = {&a, &b};
    sl_op_call call = {.node = &node, .p = &node.params, .in = in, .n_in = 2, .out = &outp,
                       .n_out = 1};
    assert_int_equal(sl_op_get(SL_OP_BATCH_MATMUL)->infer(&call), SL_OK);
    expect_shape(&out, 3, (int64_t[]){4, -1, 16});
}

/* ---- Conv2D ---- */

typedef struct conv_case {
    int64_t n, c, h, w, o, kh, kw, group;
    int64_t sh, sw, dh, dw;
    int64_t mode, pads[4];
    int bias;
} conv_case;

/* Reference output extent and leading padding of one axis; -1 when no output is possible. */
static int64_t ref_axis(int64_t in, int64_t k, int64_t s, int64_t d, int64_t mode, int64_t p0,
                        int64_t p1, int64_t *lead)
{
    int64_t span = (k - 1) * d + 1;
    if (mode == SL_PAD_SAME) {
        int64_t out = (in + s - 1) / s;
        int64_t need = (out - 1) * s + span - in;
        *lead = need > 0 ? need / 2 : 0;
        return out;
    }
    if (mode == SL_PAD_VALID) {
        p0 = p1 = 0;
    }
    *lead = p0;
    return in + p0 + p1 < span ? -1 : (in + p0 + p1 - span) / s + 1;
}

static void params_conv(const conv_case *t, sl_params *p)
{
    memset(p, 0, sizeof *p);
    sl_params_conv2d *c = &p->conv2d;
    /* the (1, 1, h, w) forms MindSpore writes, and the (h, w) forms */
    if (t->sh != t->sw || t->n == 1) {
        c->stride[0] = t->sh, c->stride[1] = t->sw, c->n_stride = 2;
    } else {
        c->stride[0] = c->stride[1] = 1, c->stride[2] = t->sh, c->stride[3] = t->sw;
        c->n_stride = 4;
    }
    c->dilation[0] = c->dilation[1] = 1, c->dilation[2] = t->dh, c->dilation[3] = t->dw;
    c->n_dilation = 4;
    memcpy(c->pad_list, t->pads, sizeof t->pads);
    c->n_pad_list = 4;
    c->group = t->group;
    c->out_channel = t->o;
    c->pad_mode = t->mode;
}

static void check_conv(const conv_case *t)
{
    sl_value *x = value_random(SL_DTYPE_FLOAT32, 4, (int64_t[]){t->n, t->c, t->h, t->w});
    sl_value *wt = value_random(SL_DTYPE_FLOAT32, 4,
                                (int64_t[]){t->o, t->c / t->group, t->kh, t->kw});
    sl_value *b = t->bias ? value_random(SL_DTYPE_FLOAT32, 1, &t->o) : NULL;
    sl_params p;
    params_conv(t, &p);
    int64_t pt, pl;
    int64_t oh = ref_axis(t->h, t->kh, t->sh, t->dh, t->mode, t->pads[0], t->pads[1], &pt);
    int64_t ow = ref_axis(t->w, t->kw, t->sw, t->dw, t->mode, t->pads[2], t->pads[3], &pl);
    sl_value *in[3] = {x, wt, b}, out;
    sl_status st = run_op(SL_OP_CONV2D, &p, in, 2 + (t->bias || rnd(0, 1)), &out);
    if (oh < 0 || ow < 0) {
        assert_int_equal(st, SL_ERR_SHAPE);
        assert_non_null(strstr(sl_last_error(), "exceeds"));
    } else {
        assert_int_equal(st, SL_OK);
        expect_shape(&out, 4, (int64_t[]){t->n, t->o, oh, ow});
        int64_t cg = t->c / t->group, og = t->o / t->group, total = t->n * t->o * oh * ow;
        double *want = calloc(total ? (size_t)total : 1, sizeof *want);
        const float *xd = x->data, *wd = wt->data;
        for (int64_t n = 0; n < t->n; n++) {
            for (int64_t o = 0; o < t->o; o++) {
                for (int64_t y = 0; y < oh; y++) {
                    for (int64_t z = 0; z < ow; z++) {
                        double s = b ? ((float *)b->data)[o] : 0.0;
                        for (int64_t ci = 0; ci < cg; ci++) {
                            int64_t c = (o / og) * cg + ci;
                            for (int64_t i = 0; i < t->kh; i++) {
                                for (int64_t j = 0; j < t->kw; j++) {
                                    int64_t ih = y * t->sh - pt + i * t->dh;
                                    int64_t iw = z * t->sw - pl + j * t->dw;
                                    if (ih >= 0 && ih < t->h && iw >= 0 && iw < t->w) {
                                        s += xd[((n * t->c + c) * t->h + ih) * t->w + iw] *
                                             (double)wd[((o * cg + ci) * t->kh + i) * t->kw + j];
                                    }
                                }
                            }
                        }
                        want[((n * t->o + o) * oh + y) * ow + z] = s;
                    }
                }
            }
        }
        expect_close(&out, want, total, 1e-5);
        free(want);
        free(out.data);
    }
    value_free(x);
    value_free(wt);
    value_free(b);
}

static void test_conv_random(void **state)
{
    (void)state;
    for (int it = 0; it < 300; it++) {
        conv_case t = {.n = rnd(1, 2), .group = rnd(0, 2) ? 1 : rnd(2, 3), .kh = rnd(1, 3),
                       .kw = rnd(1, 3), .sh = rnd(1, 3), .sw = rnd(1, 3), .dh = rnd(1, 2),
                       .dw = rnd(1, 2), .mode = rnd(0, 2), .bias = (int)rnd(0, 1)};
        t.c = t.group * rnd(1, 3);
        t.o = t.group * rnd(0, 3) + (rnd(0, 9) ? t.group : 0);
        t.h = rnd(0, 9) ? rnd(1, 9) : 0;
        t.w = rnd(1, 9);
        if (t.mode == SL_PAD_PAD) {
            for (int i = 0; i < 4; i++) {
                t.pads[i] = rnd(0, 2);
            }
        }
        if (it % 10 == 0) { /* the 1x1 path that skips im2col */
            t.kh = t.kw = t.sh = t.sw = 1;
            t.mode = SL_PAD_VALID;
        }
        if (t.h == 0 && t.mode == SL_PAD_SAME) {
            t.h = 1;
        }
        check_conv(&t);
    }
    /* a larger one, for the threaded im2col */
    conv_case big = {.n = 2, .c = 8, .h = 40, .w = 37, .o = 6, .kh = 3, .kw = 3, .group = 2,
                     .sh = 1, .sw = 2, .dh = 1, .dw = 1, .mode = SL_PAD_SAME, .bias = 1};
    check_conv(&big);
}

/* Stride-1 convolutions big enough for the direct kernel's register tiles: LeNet's two layers,
 * padding, dilation, groups, channel counts that leave partial blocks of 4, rows that are not a
 * multiple of the vector width, and a 1x1 with padding (not pointwise, so direct too). */
static void test_conv_direct(void **state)
{
    (void)state;
    const conv_case cases[] = {
        {.n = 1, .c = 1, .h = 32, .w = 32, .o = 6, .kh = 5, .kw = 5, .group = 1, .sh = 1,
         .sw = 1, .dh = 1, .dw = 1, .mode = SL_PAD_VALID, .bias = 1},
        {.n = 1, .c = 6, .h = 14, .w = 14, .o = 16, .kh = 5, .kw = 5, .group = 1, .sh = 1,
         .sw = 1, .dh = 1, .dw = 1, .mode = SL_PAD_VALID, .bias = 1},
        {.n = 2, .c = 4, .h = 12, .w = 13, .o = 14, .kh = 3, .kw = 3, .group = 2, .sh = 1,
         .sw = 1, .dh = 1, .dw = 1, .mode = SL_PAD_SAME, .bias = 0},
        {.n = 1, .c = 3, .h = 17, .w = 23, .o = 5, .kh = 3, .kw = 2, .group = 1, .sh = 1,
         .sw = 1, .dh = 2, .dw = 3, .mode = SL_PAD_PAD, .pads = {1, 2, 0, 3}, .bias = 1},
        {.n = 1, .c = 2, .h = 9, .w = 40, .o = 7, .kh = 1, .kw = 1, .group = 1, .sh = 1,
         .sw = 1, .dh = 1, .dw = 1, .mode = SL_PAD_PAD, .pads = {1, 0, 2, 1}, .bias = 1},
        {.n = 1, .c = 2, .h = 30, .w = 30, .o = 3, .kh = 4, .kw = 4, .group = 1, .sh = 1,
         .sw = 1, .dh = 1, .dw = 1, .mode = SL_PAD_VALID, .bias = 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_conv(&cases[i]);
    }
}

static void test_conv_errors(void **state)
{
    (void)state;
    sl_value *x = value_new(SL_DTYPE_FLOAT32, 4, (int64_t[]){1, 4, 5, 5});
    sl_value *w = value_new(SL_DTYPE_FLOAT32, 4, (int64_t[]){6, 2, 3, 3});
    sl_value *w3 = value_new(SL_DTYPE_FLOAT32, 3, (int64_t[]){6, 2, 3});
    sl_value *b = value_new(SL_DTYPE_FLOAT32, 1, (int64_t[]){5});
    sl_value *xi = value_new(SL_DTYPE_INT32, 4, (int64_t[]){1, 4, 5, 5});
    sl_value *in[] = {x, w, b};
    conv_case t = {.group = 2, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .mode = SL_PAD_VALID,
                   .o = 6};
    sl_params p, ok;
    params_conv(&t, &ok);
    p = ok;
    p.conv2d.format = 1;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_UNSUPPORTED, "NCHW");
    p = ok;
    p.conv2d.group = 4;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_SHAPE, "group");
    p.conv2d.group = 0;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_FORMAT, "group");
    p = ok;
    p.conv2d.group = 1;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_SHAPE, "channels");
    p = ok;
    p.conv2d.stride[3] = 0;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_FORMAT, "stride");
    p = ok;
    p.conv2d.stride[2] = -2;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_FORMAT, "stride");
    p = ok;
    p.conv2d.n_stride = 3;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_FORMAT, "stride");
    p = ok;
    p.conv2d.dilation[2] = 0;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_FORMAT, "dilation");
    p = ok;
    p.conv2d.dilation[3] = 3; /* 7 wide > 5 */
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_SHAPE, "exceeds");
    p = ok;
    p.conv2d.dilation[3] = INT64_MAX / 2 + 1;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_SHAPE, "overflow");
    p = ok;
    p.conv2d.pad_mode = SL_PAD_PAD;
    p.conv2d.pad_list[1] = -1;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_FORMAT, "negative padding");
    p.conv2d.pad_list[1] = INT64_MAX;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_SHAPE, "overflow");
    p = ok;
    p.conv2d.pad_mode = 7;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_FORMAT, "pad_mode");
    p = ok;
    p.conv2d.out_channel = 5;
    expect_error(SL_OP_CONV2D, &p, in, 2, SL_ERR_SHAPE, "out_channel");
    expect_error(SL_OP_CONV2D, &ok, in, 3, SL_ERR_SHAPE, "bias");
    expect_error(SL_OP_CONV2D, &ok, (sl_value *[]){x, w3}, 2, SL_ERR_SHAPE, "rank 4");
    expect_error(SL_OP_CONV2D, &ok, (sl_value *[]){xi, w}, 2, SL_ERR_UNSUPPORTED, "int32");
    expect_error(SL_OP_CONV2D, &ok, (sl_value *[]){x, NULL}, 2, SL_ERR_FORMAT, "missing");
    sl_value huge = {.dtype = SL_DTYPE_FLOAT32, .shape = {4, {1 << 20, 4, 1 << 20, 1 << 20}}};
    p = ok;
    p.conv2d.pad_mode = SL_PAD_SAME;
    expect_error(SL_OP_CONV2D, &p, (sl_value *[]){&huge, w}, 2, SL_ERR_SHAPE, "overflow");
    value_free(x);
    value_free(w);
    value_free(w3);
    value_free(b);
    value_free(xi);
}

/* ---- MaxPool / AvgPool ---- */

static void check_pool(sl_op op, sl_dtype dt, const int64_t *xd, const sl_params *p,
                       int64_t kh, int64_t kw, int64_t sh, int64_t sw, const int64_t *pads)
{
    sl_value *x = value_random(dt, 4, xd), *in[1] = {x}, out;
    int64_t pt, pl, mode = p->pool2d.pad_mode;
    int64_t oh = ref_axis(xd[2], kh, sh, 1, mode, pads[0], pads[1], &pt);
    int64_t ow = ref_axis(xd[3], kw, sw, 1, mode, pads[2], pads[3], &pl);
    sl_status st = run_op(op, p, in, 1, &out);
    if (oh < 0 || ow < 0) {
        assert_int_equal(st, SL_ERR_SHAPE);
    } else {
        assert_int_equal(st, SL_OK);
        expect_shape(&out, 4, (int64_t[]){xd[0], xd[1], oh, ow});
        int64_t total = xd[0] * xd[1] * oh * ow;
        double *want = calloc(total ? (size_t)total : 1, sizeof *want);
        for (int64_t pl_ = 0; pl_ < xd[0] * xd[1]; pl_++) {
            for (int64_t y = 0; y < oh; y++) {
                for (int64_t z = 0; z < ow; z++) {
                    double mx = -INFINITY, sum = 0;
                    int cnt = 0;
                    for (int64_t i = 0; i < kh; i++) {
                        for (int64_t j = 0; j < kw; j++) {
                            int64_t ih = y * sh - pt + i, iw = z * sw - pl + j;
                            if (ih >= 0 && ih < xd[2] && iw >= 0 && iw < xd[3]) {
                                double v = value_at(x, (pl_ * xd[2] + ih) * xd[3] + iw);
                                mx = v > mx ? v : mx;
                                sum += v;
                                cnt++;
                            }
                        }
                    }
                    want[(pl_ * oh + y) * ow + z] = op == SL_OP_MAX_POOL ? mx : sum / cnt;
                }
            }
        }
        expect_close(&out, want, total, dt == SL_DTYPE_FLOAT32 ? 1e-6 : 1e-12);
        free(want);
        free(out.data);
    }
    value_free(x);
}

static void test_pool_random(void **state)
{
    (void)state;
    for (int it = 0; it < 300; it++) {
        int64_t kh = rnd(1, 4), kw = rnd(1, 4), sh = rnd(1, 3), sw = rnd(1, 3);
        int64_t mode = rnd(0, 2), pads[4] = {0};
        int64_t xd[4] = {rnd(0, 9) ? rnd(1, 2) : 0, rnd(1, 3), rnd(1, 9), rnd(1, 9)};
        sl_params p = {.pool2d = {.pad_mode = mode, .n_pad_list = 4}};
        if (mode == SL_PAD_PAD) {
            pads[0] = rnd(0, kh - 1), pads[1] = rnd(0, kh - 1);
            pads[2] = rnd(0, kw - 1), pads[3] = rnd(0, kw - 1);
        }
        memcpy(p.pool2d.pad_list, pads, sizeof pads);
        if (it & 1) {
            int64_t k[4] = {1, 1, kh, kw}, s[4] = {1, 1, sh, sw};
            memcpy(p.pool2d.kernel_size, k, sizeof k);
            memcpy(p.pool2d.strides, s, sizeof s);
            p.pool2d.n_kernel_size = p.pool2d.n_strides = 4;
        } else {
            int64_t k[2] = {kh, kw}, s[2] = {sh, sw};
            memcpy(p.pool2d.kernel_size, k, sizeof k);
            memcpy(p.pool2d.strides, s, sizeof s);
            p.pool2d.n_kernel_size = p.pool2d.n_strides = 2;
        }
        check_pool(it % 4 < 2 ? SL_OP_MAX_POOL : SL_OP_AVG_POOL,
                   it % 3 ? SL_DTYPE_FLOAT32 : SL_DTYPE_FLOAT64, xd, &p, kh, kw, sh, sw, pads);
    }
    /* big enough to split across the pool */
    sl_params p = {.pool2d = {.kernel_size = {3, 3}, .n_kernel_size = 2, .strides = {2, 2},
                              .n_strides = 2, .pad_mode = SL_PAD_SAME}};
    const int64_t pads[4] = {0}, xd[4] = {2, 16, 33, 30};
    check_pool(SL_OP_AVG_POOL, SL_DTYPE_FLOAT32, xd, &p, 3, 3, 2, 2, pads);
    check_pool(SL_OP_MAX_POOL, SL_DTYPE_FLOAT32, xd, &p, 3, 3, 2, 2, pads);
}

/* The 2x2 stride-2 max pool fast path (unpadded, windows inside the input), odd and even sizes,
 * and SAME padding on an odd size, which must take the general loop. */
static void test_pool_2x2(void **state)
{
    (void)state;
    const int64_t shapes[][4] = {{1, 6, 28, 28}, {2, 3, 7, 9}, {1, 1, 2, 2}, {1, 16, 10, 10}};
    const int64_t pads[4] = {0};
    const int64_t modes[] = {SL_PAD_VALID, SL_PAD_SAME};
    for (size_t m = 0; m < 2; m++) {
        sl_params p = {.pool2d = {.kernel_size = {2, 2}, .n_kernel_size = 2, .strides = {2, 2},
                                  .n_strides = 2, .pad_mode = modes[m]}};
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_pool(SL_OP_MAX_POOL, SL_DTYPE_FLOAT32, shapes[i], &p, 2, 2, 2, 2, pads);
            check_pool(SL_OP_MAX_POOL, SL_DTYPE_FLOAT64, shapes[i], &p, 2, 2, 2, 2, pads);
        }
    }
}

static void test_pool_errors(void **state)
{
    (void)state;
    sl_value *x = value_new(SL_DTYPE_FLOAT32, 4, (int64_t[]){1, 2, 4, 4});
    sl_value *x3 = value_new(SL_DTYPE_FLOAT32, 3, (int64_t[]){1, 4, 4});
    sl_value *xi = value_new(SL_DTYPE_INT64, 4, (int64_t[]){1, 2, 4, 4});
    const sl_params ok = {.pool2d = {.kernel_size = {2, 2}, .n_kernel_size = 2,
                                     .strides = {2, 2}, .n_strides = 2}};
    sl_params p = ok;
    p.pool2d.kernel_size[0] = 0;
    expect_error(SL_OP_MAX_POOL, &p, &x, 1, SL_ERR_FORMAT, "kernel_size");
    p = ok;
    p.pool2d.strides[1] = -1;
    expect_error(SL_OP_AVG_POOL, &p, &x, 1, SL_ERR_FORMAT, "stride");
    p = ok;
    p.pool2d.kernel_size[1] = 5;
    expect_error(SL_OP_AVG_POOL, &p, &x, 1, SL_ERR_SHAPE, "exceeds");
    p = ok;
    p.pool2d.pad_mode = SL_PAD_PAD;
    p.pool2d.pad_list[3] = 2;
    p.pool2d.n_pad_list = 4;
    expect_error(SL_OP_MAX_POOL, &p, &x, 1, SL_ERR_SHAPE, "smaller than the kernel");
    p = ok;
    p.pool2d.format = 1;
    expect_error(SL_OP_MAX_POOL, &p, &x, 1, SL_ERR_UNSUPPORTED, "NCHW");
    expect_error(SL_OP_MAX_POOL, &ok, &x3, 1, SL_ERR_SHAPE, "rank 4");
    expect_error(SL_OP_MAX_POOL, &ok, &xi, 1, SL_ERR_UNSUPPORTED, "int64");
    value_free(x);
    value_free(x3);
    value_free(xi);
}

/* ---- UpsampleNearest3D ---- */

static sl_value *tuple_f32(float a, float b, float c)
{
    sl_value *v = value_new(SL_DTYPE_FLOAT32, 1, (int64_t[]){3});
    float *d = v->data;
    d[0] = a, d[1] = b, d[2] = c;
    return v;
}

static sl_value *tuple_i64(int64_t a, int64_t b, int64_t c)
{
    sl_value *v = value_new(SL_DTYPE_INT64, 1, (int64_t[]){3});
    int64_t *d = v->data;
    d[0] = a, d[1] = b, d[2] = c;
    return v;
}

/* Reference: the source index MindSpore's CPU kernel picks along one axis (its NearestIndex in
 * kernel/ops_utils.h: exactly twice the input halves the index whatever the scale). */
static int64_t ref_nearest(int64_t o, int64_t in, int64_t out, double scale)
{
    if (out == in) {
        return o;
    }
    if (out == 2 * in) {
        return o >> 1;
    }
    float s = scale > 0 ? (float)(1.0 / scale) : (float)in / (float)out;
    int64_t i = (int64_t)floorf((float)o * s);
    return i < in - 1 ? i : in - 1;
}

static void check_upsample(sl_dtype dt, const int64_t *xd, sl_value *size, sl_value *scales)
{
    sl_value *x = value_random(dt, 5, xd), *in[3] = {x, size, scales}, out;
    assert_int_equal(run_op(SL_OP_UPSAMPLE_NEAREST3D, &(sl_params){0}, in, 3, &out), SL_OK);
    const int64_t *od = out.shape.dims;
    for (int a = 0; a < 3; a++) {
        int64_t want = size ? sl_value_get_int(size, a)
                            : (int64_t)floor((double)xd[2 + a] * sl_value_get_float(scales, a));
        assert_int_equal(od[2 + a], want);
    }
    int64_t total = sl_shape_numel(&out.shape);
    double *want = calloc(total ? (size_t)total : 1, sizeof *want);
    int64_t e = 0;
    for (int64_t pl = 0; pl < xd[0] * xd[1]; pl++) {
        for (int64_t d = 0; d < od[2]; d++) {
            for (int64_t h = 0; h < od[3]; h++) {
                for (int64_t w = 0; w < od[4]; w++) {
                    double s[3];
                    for (int a = 0; a < 3; a++) {
                        s[a] = scales ? sl_value_get_float(scales, a) : 0;
                    }
                    int64_t sd = ref_nearest(d, xd[2], od[2], s[0]);
                    int64_t sh = ref_nearest(h, xd[3], od[3], s[1]);
                    int64_t sw = ref_nearest(w, xd[4], od[4], s[2]);
                    want[e++] = value_at(x, ((pl * xd[2] + sd) * xd[3] + sh) * xd[4] + sw);
                }
            }
        }
    }
    expect_close(&out, want, total, 0);
    free(want);
    free(out.data);
    value_free(x);
}

static void test_upsample_fixture(void **state)
{
    (void)state;
    /* the ms_2_5_0 fixture: x [1,2,2,2,2] float64, scales (0.5, 1.5, 2.5) -> [1,2,1,3,5] */
    sl_value *x = value_new(SL_DTYPE_FLOAT64, 5, (int64_t[]){1, 2, 2, 2, 2});
    for (int i = 0; i < 16; i++) {
        ((double *)x->data)[i] = i;
    }
    sl_value *scales = tuple_f32(0.5f, 1.5f, 2.5f), *in[3] = {x, NULL, scales}, out;
    assert_int_equal(run_op(SL_OP_UPSAMPLE_NEAREST3D, &(sl_params){0}, in, 3, &out), SL_OK);
    expect_shape(&out, 5, (int64_t[]){1, 2, 1, 3, 5});
    assert_int_equal(out.dtype, SL_DTYPE_FLOAT64);
    /* h picks rows 0,0,1; w picks columns 0,0,0,1,1 */
    static const double want[] = {0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3,
                                  8, 8, 8, 9, 9, 8, 8, 8, 9, 9, 10, 10, 10, 11, 11};
    expect_close(&out, want, 30, 0);
    free(out.data);
    value_free(x);
    value_free(scales);
}

static void test_upsample_random(void **state)
{
    (void)state;
    for (int it = 0; it < 60; it++) {
        int64_t xd[5] = {rnd(1, 2), rnd(1, 3), rnd(1, 4), rnd(1, 4), rnd(1, 5)};
        sl_dtype dt = it & 1 ? SL_DTYPE_FLOAT32 : SL_DTYPE_FLOAT64;
        if (it % 3) {
            sl_value *s = tuple_f32((float)rnd(1, 12) / 4, (float)rnd(1, 12) / 4,
                                    (float)rnd(1, 14) / 3);
            check_upsample(dt, xd, NULL, s);
            value_free(s);
        } else {
            sl_value *s = tuple_i64(rnd(1, 7), rnd(1, 7), xd[4] * 2);
            check_upsample(dt, xd, s, NULL);
            value_free(s);
        }
    }
    /* big enough to split across the pool */
    sl_value *s = tuple_i64(9, 40, 600);
    check_upsample(SL_DTYPE_FLOAT32, (int64_t[]){1, 2, 3, 20, 300}, s, NULL);
    value_free(s);
}

static void test_upsample_errors(void **state)
{
    (void)state;
    sl_value *x = value_new(SL_DTYPE_FLOAT32, 5, (int64_t[]){1, 1, 2, 2, 2});
    sl_value *x0 = value_new(SL_DTYPE_FLOAT32, 5, (int64_t[]){1, 1, 0, 2, 2});
    sl_value *x4 = value_new(SL_DTYPE_FLOAT32, 4, (int64_t[]){1, 1, 2, 2});
    sl_value *xi = value_new(SL_DTYPE_INT32, 5, (int64_t[]){1, 1, 2, 2, 2});
    sl_value *sc = tuple_f32(1, 2, 3), *bad = tuple_f32(1, 0, 3), *sz = tuple_i64(2, 2, 2);
    sl_value *neg = tuple_i64(2, -1, 2), *two = value_new(SL_DTYPE_INT64, 1, (int64_t[]){2});
    sl_value *big = tuple_f32(1, 1, 1e30f);
    sl_params p = {0};
    sl_op op = SL_OP_UPSAMPLE_NEAREST3D;
    expect_error(op, &p, (sl_value *[]){x, sz, sc}, 3, SL_ERR_FORMAT, "exactly one");
    expect_error(op, &p, (sl_value *[]){x, NULL, NULL}, 3, SL_ERR_FORMAT, "exactly one");
    expect_error(op, &p, (sl_value *[]){x}, 1, SL_ERR_FORMAT, "exactly one");
    expect_error(op, &p, (sl_value *[]){x, NULL, bad}, 3, SL_ERR_SHAPE, "scale");
    expect_error(op, &p, (sl_value *[]){x, NULL, big}, 3, SL_ERR_SHAPE, "overflow");
    expect_error(op, &p, (sl_value *[]){x, neg}, 2, SL_ERR_SHAPE, "output_size");
    expect_error(op, &p, (sl_value *[]){x, two}, 2, SL_ERR_SHAPE, "3 values");
    expect_error(op, &p, (sl_value *[]){x, NULL, sz}, 3, SL_ERR_UNSUPPORTED, "dtype");
    expect_error(op, &p, (sl_value *[]){x, sc}, 2, SL_ERR_UNSUPPORTED, "dtype");
    expect_error(op, &p, (sl_value *[]){x4, sz}, 2, SL_ERR_SHAPE, "rank 5");
    expect_error(op, &p, (sl_value *[]){xi, sz}, 2, SL_ERR_UNSUPPORTED, "int32");
    expect_error(op, &p, (sl_value *[]){x0, sz}, 2, SL_ERR_SHAPE, "empty axis");
    /* a size computed at run time cannot be read at infer time */
    sz->kind = SL_VALUE_ACT;
    sl_value out, *outp = &out;
    sl_node node = {.op = op, .name = "n0"};
    sl_op_call call = {.node = &node, .p = &node.params, .in = (sl_value *[]){x, sz}, .n_in = 2,
                       .out = &outp, .n_out = 1};
    assert_int_equal(sl_op_get(op)->infer(&call), SL_ERR_UNSUPPORTED);
    assert_non_null(strstr(sl_last_error(), "constant"));
    sl_value *all[] = {x, x0, x4, xi, sc, bad, sz, neg, two, big};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        value_free(all[i]);
    }
}

static int setup(void **state)
{
    (void)state;
    return sl_pool_create(4, &test_pool) == SL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sl_pool_destroy(test_pool);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_random),   cmocka_unit_test(test_matmul_paths),
        cmocka_unit_test(test_matmul_errors),   cmocka_unit_test(test_matmul_dynamic),
        cmocka_unit_test(test_conv_random),     cmocka_unit_test(test_conv_direct),
        cmocka_unit_test(test_conv_errors),     cmocka_unit_test(test_pool_random),
        cmocka_unit_test(test_pool_2x2),        cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_upsample_fixture), cmocka_unit_test(test_upsample_random),
        cmocka_unit_test(test_upsample_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
