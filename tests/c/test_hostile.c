/* Hostile models, built here byte by byte (the cases a fuzzer found): each must fail to build
 * with an error status and a message saying what is wrong, never crash, overflow or allocate
 * from a size it has not checked (this test also runs under ASan+UBSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#define TMPDIR_NAME "hostile"
#include "tmpdir.h"

#include "format/mindir/mindir.h"
#include "format/pb/pb.h"
#include "shardlite/shardlite.h"

/* MindIR TensorProto data_type values */
enum { DT_FLOAT32 = 1, DT_INT64 = 7, DT_FLOAT64 = 11 };

static char model_path[128];

/* ---- writing models ---- */

/* ModelProto fields up to an open GraphProto; returns where the graph starts. */
static size_t model_begin(sl_pbw *w)
{
    memset(w, 0, sizeof *w);
    sl_pbw_str(w, 1, "0.1.1");
    sl_pbw_str(w, 2, "MindSpore");
    sl_pbw_str(w, 5, "2.2.0");
    return sl_pbw_begin(w);
}

/* Closes the graph (named "g") and writes the model to model_path. */
static void model_end(sl_pbw *w, size_t graph)
{
    sl_pbw_str(w, 2, "g");
    sl_pbw_end(w, 7, graph);
    assert_false(w->failed);
    FILE *f = fopen(model_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(w->buf, 1, w->len, f), w->len);
    fclose(f);
    sl_pbw_free(w);
}

/* A TensorProto as field `field`: dims, data_type, name (may be NULL), no data. */
static void put_tensor(sl_pbw *w, uint32_t field, int rank, const int64_t *dims, int data_type,
                       const char *name)
{
    size_t t = sl_pbw_begin(w);
    for (int i = 0; i < rank; i++) {
        sl_pbw_varint(w, 1, (uint64_t)dims[i]);
    }
    sl_pbw_varint(w, 2, (uint64_t)data_type);
    if (name) {
        sl_pbw_str(w, 7, name);
    }
    sl_pbw_end(w, field, t);
}

/* GraphProto.input `name` of the given shape. */
static void put_input(sl_pbw *w, const char *name, int rank, const int64_t *dims, int data_type)
{
    size_t v = sl_pbw_begin(w);
    sl_pbw_str(w, 1, name);
    put_tensor(w, 2, rank, dims, data_type, NULL);
    sl_pbw_end(w, 5, v);
}

static void put_output(sl_pbw *w, const char *name)
{
    size_t v = sl_pbw_begin(w);
    sl_pbw_str(w, 1, name);
    sl_pbw_end(w, 6, v);
}

/* A NodeProto with bare op_type `op` (MindSpore 1.x style), left open for attributes: close
 * it with node_end. */
static size_t node_begin(sl_pbw *w, const char *op, const char *out, int n_in, ...)
{
    size_t n = sl_pbw_begin(w);
    va_list ap;
    va_start(ap, n_in);
    for (int i = 0; i < n_in; i++) {
        sl_pbw_str(w, 1, va_arg(ap, const char *));
    }
    va_end(ap);
    sl_pbw_str(w, 2, out);
    sl_pbw_str(w, 3, out);
    sl_pbw_str(w, 4, op);
    return n;
}

static void node_end(sl_pbw *w, size_t n)
{
    sl_pbw_end(w, 1, n);
}

/* A Constant node `out` holding a 0-d float32 tensor of value x. */
static void put_float_constant(sl_pbw *w, const char *out, float x)
{
    size_t n = node_begin(w, "Constant", out, 0);
    size_t a = sl_pbw_begin(w);
    sl_pbw_str(w, 1, "value");
    size_t t = sl_pbw_begin(w);
    sl_pbw_varint(w, 2, DT_FLOAT32);
    sl_pbw_bytes(w, 9, &x, sizeof x);
    sl_pbw_end(w, 6, t);
    sl_pbw_varint(w, 16, 17); /* AttributeProto.type: TENSOR */
    sl_pbw_end(w, 5, a);
    node_end(w, n);
}

/* ---- checks ---- */

/* Building model_path fails with st and a message holding `needle`. */
static void expect_build_error(sl_status st, const char *needle)
{
    sl_model *m = NULL;
    sl_status got = sl_model_build_from_file(model_path, NULL, &m);
    if (got == SL_OK) {
        sl_model_destroy(m);
    }
    if (got != st || !strstr(sl_last_error(), needle)) {
        fail_msg("got %s '%s', expected %s with '%s'", sl_status_name(got),
                 got == SL_OK ? "" : sl_last_error(), sl_status_name(st), needle);
    }
    assert_null(m);
}

/* ---- cases ---- */

/* Shapes whose element count overflows int64: every size computed from them would too. */
static void test_shape_too_large(void **state)
{
    (void)state;
    const int64_t huge[] = {(int64_t)1 << 62, 4}, one = 1, dyn[] = {-1, (int64_t)1 << 62, 4};
    sl_pbw w;
    size_t g = model_begin(&w);
    node_end(&w, node_begin(&w, "Add", "y", 2, "x", "g:w"));
    put_tensor(&w, 3, 2, huge, DT_FLOAT32, "g:w"); /* a parameter without data */
    put_input(&w, "x", 1, &one, DT_FLOAT32);
    put_output(&w, "y");
    model_end(&w, g);
    expect_build_error(SL_ERR_FORMAT, "tensor 'g:w' of shape [4611686018427387904,4] has more");

    g = model_begin(&w);
    node_end(&w, node_begin(&w, "ReLU", "y", 1, "x"));
    put_input(&w, "x", 2, huge, DT_FLOAT32);
    put_output(&w, "y");
    model_end(&w, g);
    expect_build_error(SL_ERR_FORMAT, "graph input 'x': a tensor of shape");

    g = model_begin(&w); /* the known dims of a dynamic shape count too */
    node_end(&w, node_begin(&w, "ReLU", "y", 1, "x"));
    put_input(&w, "x", 3, dyn, DT_FLOAT32);
    put_output(&w, "y");
    model_end(&w, g);
    expect_build_error(SL_ERR_FORMAT, "more than 576460752303423487 elements");
}

/* A constant's buffer is allocated only once its data is known to fill it: a 4 TiB parameter
 * with no data, or with one typed value, fails without asking for 4 TiB. */
static void test_constant_data_checked_before_allocation(void **state)
{
    (void)state;
    const int64_t one = 1, huge = (int64_t)1 << 40;
    for (int typed = 0; typed < 2; typed++) {
        sl_pbw w;
        size_t g = model_begin(&w);
        node_end(&w, node_begin(&w, "Add", "y", 2, "x", "g:w"));
        size_t t = sl_pbw_begin(&w);
        sl_pbw_varint(&w, 1, (uint64_t)huge);
        sl_pbw_varint(&w, 2, DT_FLOAT32);
        if (typed) {
            sl_pbw_fixed32(&w, 3, 0x3f800000u); /* float_data: 1.0f */
        }
        sl_pbw_str(&w, 7, "g:w");
        sl_pbw_end(&w, 3, t);
        put_input(&w, "x", 1, &one, DT_FLOAT32);
        put_output(&w, "y");
        model_end(&w, g);
        expect_build_error(SL_ERR_FORMAT, typed ? "constant 'g:w': g:w: 1099511627776 elements, "
                                                  "but the tensor's 19 bytes cannot hold"
                                                : "constant 'g:w': g:w: tensor has no data");
    }
}

/* Floats where integers are meant (an attribute, an attribute passed as a constant input, a
 * TupleGetItem index) convert without undefined behaviour: out-of-range values saturate and
 * then fail the range checks, NaN gives 0. */
static void test_float_as_integer(void **state)
{
    (void)state;
    const int64_t dims[] = {1, 2};
    const uint32_t flatten_axis[] = {0x7149f2cau /* 1e30f */, 0x7fc00000u /* NaN */};
    for (int k = 0; k < 2; k++) {
        sl_pbw w;
        size_t g = model_begin(&w);
        size_t n = node_begin(&w, "Flatten", "y", 1, "x");
        size_t a = sl_pbw_begin(&w);
        sl_pbw_str(&w, 1, "axis");
        sl_pbw_fixed32(&w, 2, flatten_axis[k]); /* AttributeProto.f */
        sl_pbw_end(&w, 5, a);
        node_end(&w, n);
        put_input(&w, "x", 2, dims, DT_FLOAT32);
        put_output(&w, "y");
        model_end(&w, g);
        if (k == 0) {
            expect_build_error(SL_ERR_SHAPE, "axis 9223372036854775807 is out of range");
        } else { /* axis 0: [1, 2] flattens to [1, 2] */
            sl_model *m = NULL;
            assert_int_equal(sl_model_build_from_file(model_path, NULL, &m), SL_OK);
            assert_int_equal(sl_tensor_dim(sl_model_output(m, 0), 0), 1);
            sl_model_destroy(m);
        }
    }

    sl_pbw w; /* Softmax's axis as a constant input */
    size_t g = model_begin(&w);
    put_float_constant(&w, "c", -1e30f);
    node_end(&w, node_begin(&w, "Softmax", "y", 2, "x", "c"));
    put_input(&w, "x", 2, dims, DT_FLOAT32);
    put_output(&w, "y");
    model_end(&w, g);
    expect_build_error(SL_ERR_SHAPE, "axis -9223372036854775808 is out of range");

    g = model_begin(&w);
    node_end(&w, node_begin(&w, "MakeTuple", "t", 2, "x", "x"));
    put_float_constant(&w, "c", 1e30f);
    node_end(&w, node_begin(&w, "TupleGetItem", "y", 2, "t", "c"));
    put_input(&w, "x", 2, dims, DT_FLOAT32);
    put_output(&w, "y");
    model_end(&w, g);
    expect_build_error(SL_ERR_FORMAT, "TupleGetItem index 9223372036854775807 out of range");
}

/* An inferred shape past SL_MAX_NUMEL fails the build: broadcasting [2**40, 1] with [1, 2**40]
 * gives 2**80 elements, which overflowed int64 when counted. */
static void test_inferred_shape_too_large(void **state)
{
    (void)state;
    const int64_t col[] = {(int64_t)1 << 40, 1}, row[] = {1, (int64_t)1 << 40};
    sl_pbw w;
    size_t g = model_begin(&w);
    node_end(&w, node_begin(&w, "Add", "y", 2, "a", "b"));
    put_input(&w, "a", 2, col, DT_FLOAT32);
    put_input(&w, "b", 2, row, DT_FLOAT32);
    put_output(&w, "y");
    model_end(&w, g);
    expect_build_error(SL_ERR_SHAPE, "node 'y' (Add): output 0 of shape "
                                     "[1099511627776,1099511627776] has more than");
}

/* Prepends a varint to buf[*at..]. */
static void prepend_varint(uint8_t *buf, size_t *at, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
        v >>= 7;
    } while (v);
    *at -= n;
    memcpy(buf + *at, tmp, n);
}

/* A Constant's tuple value nesting 200000 one-item tuples around the number 1 (1 MB): reading
 * it recursed once per level and overflowed the stack. */
static void test_deeply_nested_tuple(void **state)
{
    (void)state;
    enum { DEPTH = 200000 };
    size_t cap = (size_t)DEPTH * 8 + 64, at = cap;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    /* built from the inside out: the innermost AttributeProto {i: 1, type: INT64} */
    const uint8_t inner[] = {0x18, 0x01, 0x80, 0x01, 0x07};
    at -= sizeof inner;
    memcpy(buf + at, inner, sizeof inner);
    for (int i = 0; i < DEPTH; i++) { /* wrap it: {values (17): it} */
        prepend_varint(buf, &at, cap - at);
        prepend_varint(buf, &at, 17 << 3 | SL_PB_LEN);
    }
    const uint8_t head[] = {0x0a, 5, 'v', 'a', 'l', 'u', 'e', 0x80, 0x01, 20}; /* name, TUPLE */
    at -= sizeof head;
    memcpy(buf + at, head, sizeof head);

    sl_pbw w;
    size_t g = model_begin(&w);
    size_t n = node_begin(&w, "Constant", "c", 0);
    sl_pbw_bytes(&w, 5, buf + at, cap - at);
    node_end(&w, n);
    put_output(&w, "c");
    model_end(&w, g);
    free(buf);
    expect_build_error(SL_ERR_FORMAT, "node 'c' (Constant): attribute: tuples nested more than");
}

/* A chain of n Neg nodes listed last first: node i computes "a<i>" from "a<i+1>" (the last
 * from "x"); the graph output is "a0". */
static void write_reversed_chain(int n)
{
    const int64_t two = 2;
    sl_pbw w;
    size_t g = model_begin(&w);
    for (int i = 0; i < n; i++) {
        char in[32], out[32];
        snprintf(in, sizeof in, "a%d", i + 1);
        snprintf(out, sizeof out, "a%d", i);
        node_end(&w, node_begin(&w, "Neg", out, 1, i + 1 < n ? in : "x"));
    }
    put_input(&w, "x", 1, &two, DT_FLOAT32);
    put_output(&w, "a0");
    model_end(&w, g);
}

/* Nodes out of order load in time linear in their count: passes over the node list until none
 * was left took quadratic time (100000 nodes listed last first, a 3 MB file: minutes). */
static void test_nodes_out_of_order(void **state)
{
    (void)state;
    write_reversed_chain(3); /* -(-(-x)) */
    sl_model *m = NULL;
    assert_int_equal(sl_model_build_from_file(model_path, NULL, &m), SL_OK);
    const float x[2] = {1.5f, -2.0f};
    assert_int_equal(sl_tensor_set_data(sl_model_input(m, 0), x, sizeof x), SL_OK);
    assert_int_equal(sl_model_predict(m), SL_OK);
    const float *y = sl_tensor_data(sl_model_output(m, 0));
    assert_true(y[0] == -1.5f && y[1] == 2.0f);
    sl_model_destroy(m);

    write_reversed_chain(100000);
    alarm(60); /* well over the time taken (about a second under ASan), far below quadratic */
    sl_graph *g = NULL;
    assert_int_equal(sl_mindir_load(model_path, &g), SL_OK);
    alarm(0);
    assert_int_equal(g->n_nodes, 100000);
    assert_string_equal(g->nodes[0].name, "a99999"); /* in dependency order */
    sl_graph_destroy(g);

    sl_pbw w; /* an input nothing defines; a cycle */
    size_t gr = model_begin(&w);
    node_end(&w, node_begin(&w, "Neg", "a", 1, "b"));
    node_end(&w, node_begin(&w, "Neg", "b", 1, "nowhere"));
    put_output(&w, "a");
    model_end(&w, gr);
    expect_build_error(SL_ERR_FORMAT, "node 'b' uses input 'nowhere', which nothing defines");
    gr = model_begin(&w);
    node_end(&w, node_begin(&w, "Neg", "a", 1, "b"));
    node_end(&w, node_begin(&w, "Neg", "b", 1, "a"));
    put_output(&w, "a");
    model_end(&w, gr);
    expect_build_error(SL_ERR_FORMAT, "node 'b' uses input 'a', which depends on it (a cycle)");
}

/* resize checks the element count of the shapes it is given, not only each dim (at most
 * 2**40): three dims of 2**40 overflowed int64 when counted. */
static void test_resize_too_large(void **state)
{
    (void)state;
    const int64_t dyn[] = {-1, -1, -1}, big[] = {(int64_t)1 << 40, (int64_t)1 << 40, 1 << 20};
    sl_pbw w;
    size_t g = model_begin(&w);
    node_end(&w, node_begin(&w, "ReLU", "y", 1, "x"));
    put_input(&w, "x", 3, dyn, DT_FLOAT32);
    put_output(&w, "y");
    model_end(&w, g);
    sl_model *m = NULL;
    assert_int_equal(sl_model_build_from_file(model_path, NULL, &m), SL_OK);
    const int64_t *dims[] = {big};
    const size_t ranks[] = {3};
    assert_int_equal(sl_model_resize(m, 1, dims, ranks), SL_ERR_SHAPE);
    assert_non_null(strstr(sl_last_error(), "resize: input 'x' shape "
                                            "[1099511627776,1099511627776,1048576] has more"));
    const int64_t fine[] = {2, 3, 4};
    dims[0] = fine;
    assert_int_equal(sl_model_resize(m, 1, dims, ranks), SL_OK);
    assert_int_equal(sl_tensor_element_count(sl_model_output(m, 0)), 24);
    sl_model_destroy(m);
}

/* The arena's offsets may not wrap around: 8 float64 inputs of 2**58 elements and their 8 ReLU
 * results (16 live buffers of 2**61 bytes) planned a 7 * 2**61-byte arena of overlapping
 * buffers. */
static void test_arena_size_overflow(void **state)
{
    (void)state;
    const int64_t dims = (int64_t)1 << 58;
    sl_pbw w;
    size_t g = model_begin(&w);
    for (int i = 0; i < 8; i++) {
        char x[8], y[8];
        snprintf(x, sizeof x, "x%d", i);
        snprintf(y, sizeof y, "y%d", i);
        node_end(&w, node_begin(&w, "ReLU", y, 1, x));
        put_input(&w, x, 1, &dims, DT_FLOAT64);
    }
    for (int i = 0; i < 8; i++) {
        char y[8];
        snprintf(y, sizeof y, "y%d", i);
        put_output(&w, y);
    }
    model_end(&w, g);
    expect_build_error(SL_ERR_NOMEM, "model: the activation arena would exceed");
}

/* MakeTuple of 256 copies of the previous level, `levels` deep over `leaf`, as the output. */
static void write_tuple_fanout(int levels, const char *leaf, int leaf_is_none)
{
    const int64_t one = 1;
    sl_pbw w;
    size_t g = model_begin(&w);
    if (leaf_is_none) {
        size_t n = node_begin(&w, "Constant", leaf, 0);
        size_t a = sl_pbw_begin(&w);
        sl_pbw_str(&w, 1, "value");
        sl_pbw_varint(&w, 16, 25); /* AttributeProto.type: NONE */
        sl_pbw_end(&w, 5, a);
        node_end(&w, n);
    }
    char prev[16], name[16];
    snprintf(prev, sizeof prev, "%s", leaf);
    for (int l = 0; l < levels; l++) {
        snprintf(name, sizeof name, "t%d", l);
        size_t n = node_begin(&w, "MakeTuple", name, 0);
        for (int i = 0; i < 256; i++) {
            sl_pbw_str(&w, 1, prev);
        }
        node_end(&w, n);
        snprintf(prev, sizeof prev, "%s", name);
    }
    put_input(&w, "x", 1, &one, DT_FLOAT32);
    put_output(&w, prev);
    model_end(&w, g);
}

/* Flattening the graph outputs walks at most 65536 items: tuples of 256 copies of the level
 * below, 3 levels deep (a 3 KB file), gave 2**24 outputs; 5 levels asked for 2**40 (4 TiB of
 * output indices); tuples of None took as long with no output at all. */
static void test_output_tuple_fanout(void **state)
{
    (void)state;
    write_tuple_fanout(3, "x", 0);
    expect_build_error(SL_ERR_UNSUPPORTED, "graph output 't2': graph outputs of more than 65536");
    write_tuple_fanout(8, "none", 1);
    expect_build_error(SL_ERR_UNSUPPORTED, "graph output 't7': graph outputs of more than 65536");
    write_tuple_fanout(1, "x", 0); /* 256 outputs are fine */
    sl_model *m = NULL;
    assert_int_equal(sl_model_build_from_file(model_path, NULL, &m), SL_OK);
    assert_int_equal(sl_model_output_count(m), 256);
    sl_model_destroy(m);
}

static int setup_all(void **state)
{
    int rc = setup(state);
    snprintf(model_path, sizeof model_path, "%s/m.mindir", tmp_root);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_too_large),
        cmocka_unit_test(test_constant_data_checked_before_allocation),
        cmocka_unit_test(test_float_as_integer),
        cmocka_unit_test(test_inferred_shape_too_large),
        cmocka_unit_test(test_deeply_nested_tuple),
        cmocka_unit_test(test_nodes_out_of_order),
        cmocka_unit_test(test_resize_too_large),
        cmocka_unit_test(test_arena_size_overflow),
        cmocka_unit_test(test_output_tuple_fanout),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown);
}
