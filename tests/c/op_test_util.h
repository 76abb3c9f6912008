/* A small harness shared by the op tests: values built by hand, one node inferred then run the
 * way the runtime does it, and error checks. Include after <cmocka.h>. */
#ifndef SL_TESTS_OP_TEST_UTIL_H
#define SL_TESTS_OP_TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "graph/ir.h"
#include "graph/ops.h"

static uint64_t rng_state = 0x243f6a8885a308d3u;

static inline int64_t rnd(int64_t lo, int64_t hi) /* uniform in [lo, hi] */
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return lo + (int64_t)((rng_state >> 33) % (uint64_t)(hi - lo + 1));
}

static sl_pool *test_pool; /* 4 threads, so that the parallel paths run under the sanitizers */

static inline int pool_setup(void **state)
{
    (void)state;
    return sl_pool_create(4, &test_pool) == SL_OK ? 0 : -1;
}

static inline int pool_teardown(void **state)
{
    (void)state;
    sl_pool_destroy(test_pool);
    return 0;
}

/* A constant value of the given shape; data (if not NULL) is copied in, else zeros. */
static inline sl_value *value_new(sl_dtype dtype, int rank, const int64_t *dims, const void *data)
{
    sl_value *v = calloc(1, sizeof *v);
    assert_non_null(v);
    v->name = "v";
    v->dtype = dtype;
    v->kind = SL_VALUE_CONST;
    v->shape.rank = rank;
    for (int i = 0; i < rank; i++) {
        v->shape.dims[i] = dims[i];
    }
    size_t bytes = sl_value_bytes(v);
    v->data = calloc(bytes ? bytes : 1, 1);
    assert_non_null(v->data);
    if (data) {
        memcpy(v->data, data, bytes);
    }
    return v;
}

/* A 0-d int64 constant, or a 1-D int64 constant of n values. */
static inline sl_value *value_i64(int64_t x)
{
    return value_new(SL_DTYPE_INT64, 0, NULL, &x);
}

static inline sl_value *value_ints(int n, const int64_t *vals)
{
    int64_t d = n;
    return value_new(SL_DTYPE_INT64, 1, &d, vals);
}

/* Random values: integers in [-9, 9], reals in [-1, 1] on a 1/1000 grid, bools 0/1. */
static inline sl_value *value_random(sl_dtype dtype, int rank, const int64_t *dims)
{
    sl_value *v = value_new(dtype, rank, dims, NULL);
    int64_t n = sl_shape_numel(&v->shape);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = rnd(-1000, 1000);
        switch (dtype) {
        case SL_DTYPE_FLOAT32: ((float *)v->data)[i] = (float)r / 1000.0f; break;
        case SL_DTYPE_FLOAT64: ((double *)v->data)[i] = (double)r / 1000.0; break;
        case SL_DTYPE_INT32: ((int32_t *)v->data)[i] = (int32_t)(r % 10); break;
        case SL_DTYPE_INT64: ((int64_t *)v->data)[i] = r % 10; break;
        case SL_DTYPE_BOOL: ((uint8_t *)v->data)[i] = r > 0; break;
        default: memset((char *)v->data + i * (int64_t)sl_dtype_size(dtype), (int)(r & 0xff),
                        sl_dtype_size(dtype)); break;
        }
    }
    return v;
}

static inline void value_free(sl_value *v)
{
    if (v) {
        free(v->data);
        free(v);
    }
}

static inline void values_free(sl_value **v, int n)
{
    for (int i = 0; i < n; i++) {
        value_free(v[i]);
    }
}

/* Infers one node (running = 0) and runs its kernel (running = 1) into outs[0..n_out), whose
 * data the caller frees with out_free. Outputs start as garbage so unwritten elements show. */
static inline sl_status run_op_n(sl_op op, const sl_params *p, sl_value **in, int n_in,
                                 sl_value *outs, int n_out)
{
    sl_node node = {.op = op, .name = "n0", .params = *p};
    sl_value *outp[16];
    assert_true(n_out <= 16);
    for (int i = 0; i < n_out; i++) {
        memset(&outs[i], 0, sizeof outs[i]);
        outp[i] = &outs[i];
    }
    sl_op_call call = {.node = &node, .p = &node.params, .in = in, .n_in = n_in, .out = outp,
                       .n_out = n_out, .pool = test_pool};
    const sl_op_info *info = sl_op_get(op);
    sl_status st = info->infer(&call);
    if (st != SL_OK) {
        return st;
    }
    for (int i = 0; i < n_out; i++) {
        size_t bytes = sl_value_bytes(&outs[i]);
        outs[i].data = malloc(bytes ? bytes : 1);
        assert_non_null(outs[i].data);
        memset(outs[i].data, 0xa5, bytes);
    }
    void *scratch = malloc(call.scratch_bytes ? call.scratch_bytes : 1);
    assert_non_null(scratch);
    call.scratch = scratch;
    call.running = 1;
    st = info->kernel(&call);
    free(scratch);
    return st;
}

static inline sl_status run_op(sl_op op, const sl_params *p, sl_value **in, int n_in,
                               sl_value *out)
{
    return run_op_n(op, p, in, n_in, out, 1);
}

static inline void out_free(sl_value *out)
{
    free(out->data);
    out->data = NULL;
}

/* Expects inference to fail with st and a message naming the node, the op and `needle`. */
static inline void expect_error(sl_op op, const sl_params *p, sl_value **in, int n_in,
                                sl_status st, const char *needle)
{
    sl_value out[4];
    sl_status got = run_op_n(op, p, in, n_in, out, op == SL_OP_SPLIT ? 2 : 1);
    if (got == SL_OK) {
        for (int i = 0; i < (op == SL_OP_SPLIT ? 2 : 1); i++) {
            out_free(&out[i]);
        }
    }
    assert_int_equal(got, st);
    const char *msg = sl_last_error();
    if (!strstr(msg, "n0 (") || !strstr(msg, sl_op_get(op)->name) || !strstr(msg, needle)) {
        fail_msg("unexpected message: %s", msg);
    }
}

static inline void expect_shape(const sl_value *v, int rank, const int64_t *dims)
{
    assert_int_equal(v->shape.rank, rank);
    for (int i = 0; i < rank; i++) {
        assert_int_equal(v->shape.dims[i], dims[i]);
    }
}

#endif
