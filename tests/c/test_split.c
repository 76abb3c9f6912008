/* The splitting pass on small hand-built graphs: column/row pairs with uneven sizes, slices
 * that hold the right rows and columns, replication where the shard cannot go on, explicit
 * rules, and errors. The numerical equality of the rank models is tested in Python
 * (tests/python/test_split.py), where N processes run them. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "format/mindir/mindir.h"
#include "graph/split.h"
#include "shardlite/shardlite.h"


#define TMPDIR_NAME "split"
#include "tmpdir.h"

/* ---- graph building ---- */
static int add_act(sl_graph *g, const char *name)
{
    int v;
    assert_int_equal(sl_graph_add_value(g, name, SL_DTYPE_UNKNOWN, NULL, SL_VALUE_ACT, &v), SL_OK);
    return v;
}

/* A float weight [rows, cols] whose element (i, j) is i * 1000 + j: slices are recognisable. */
static int add_weight(sl_graph *g, const char *name, int64_t rows, int64_t cols)
{
    sl_shape s = {.rank = cols ? 2 : 1, .dims = {rows, cols}};
    int v;
    assert_int_equal(sl_graph_add_value(g, name, SL_DTYPE_FLOAT32, &s, SL_VALUE_CONST, &v), SL_OK);
    int64_t n = rows * (cols ? cols : 1);
    float *d = malloc(sizeof *d * (size_t)n);
    assert_non_null(d);
    for (int64_t k = 0; k < n; k++) {
        d[k] = cols ? (float)(k / cols * 1000 + k % cols) : (float)k;
    }
    g->values[v].data = g->values[v].owned = d;
    return v;
}

static int add_op(sl_graph *g, sl_op op, const char *name, int a, int b, int tb)
{
    int out = add_act(g, name);
    int in[2] = {a, b};
    sl_params p;
    memset(&p, 0, sizeof p);
    p.matmul.transpose_b = (uint8_t)tb;
    if (op == SL_OP_SOFTMAX) {
        p.axes.axis[0] = -1;
        p.axes.n_axis = 1;
    }
    assert_int_equal(sl_graph_add_node(g, op, name, in, b >= 0 ? 2 : 1, &out, 1, &p, NULL),
                     SL_OK);
    return out;
}

/* x[2, k] -> MatMul(w1 [k, h]) + b1 -> ReLU -> MatMul(w2, [o, h] transposed) -> `tail` */
static void save_mlp(const char *path, int64_t k, int64_t h, int64_t o, sl_op tail)
{
    sl_graph *g;
    assert_int_equal(sl_graph_create(&g), SL_OK);
    g->name = strdup("mlp");
    sl_shape xs = {.rank = 2, .dims = {2, k}};
    int x;
    assert_int_equal(sl_graph_add_value(g, "mlp:x", SL_DTYPE_FLOAT32, &xs, SL_VALUE_INPUT, &x),
                     SL_OK);
    g->inputs = malloc(sizeof(int));
    g->inputs[0] = x;
    g->n_inputs = 1;
    int y = add_op(g, SL_OP_MATMUL, "fc1", x, add_weight(g, "w1", k, h), 0);
    y = add_op(g, SL_OP_ADD, "bias1", y, add_weight(g, "b1", h, 0), 0);
    y = add_op(g, SL_OP_RELU, "relu", y, -1, 0);
    if (tail == SL_OP_SOFTMAX) {
        y = add_op(g, SL_OP_SOFTMAX, "softmax", y, -1, 0); /* over the sharded axis */
    }
    y = add_op(g, SL_OP_MATMUL, "fc2", y, add_weight(g, "w2", o, h), 1);
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = y;
    g->n_outputs = 1;
    assert_int_equal(sl_mindir_save(g, path, 1), SL_OK);
    sl_graph_destroy(g);
}

static size_t weight_index(const sl_split_report *r, const char *name)
{
    for (size_t i = 0; i < sl_split_report_weight_count(r); i++) {
        const char *n;
        assert_int_equal(sl_split_report_weight(r, i, &n, NULL, NULL, NULL), SL_OK);
        if (strcmp(n, name) == 0) {
            return i;
        }
    }
    fail_msg("no weight %s in the report", name);
    return 0;
}

static void expect_weight(const sl_split_report *r, const char *name, int axis, const char *role)
{
    int a;
    const char *ro;
    assert_int_equal(sl_split_report_weight(r, weight_index(r, name), NULL, &a, &ro, NULL), SL_OK);
    assert_int_equal(a, axis);
    assert_string_equal(ro, role);
}

/* The constant of rank model `file` called "<graph>:name" (NULL when absent). */
static const sl_value *find_const(const sl_graph *g, const char *name)
{
    for (int v = 0; v < g->n_values; v++) {
        const char *colon = strchr(g->values[v].name, ':');
        if (g->values[v].kind == SL_VALUE_CONST && colon && strcmp(colon + 1, name) == 0) {
            return &g->values[v];
        }
    }
    return NULL;
}

static int count_ops(const sl_graph *g, sl_op op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        n += g->nodes[i].op == op;
    }
    return n;
}

static void test_range(void **state)
{
    (void)state;
    int64_t lo, hi;
    sl_split_range(10, 1, 4, 0, &lo, &hi);
    assert_true(lo == 0 && hi == 3);
    sl_split_range(10, 1, 4, 3, &lo, &hi);
    assert_true(lo == 8 && hi == 10);
    sl_split_range(24, 4, 4, 2, &lo, &hi); /* 6 heads of 4: 2, 2, 1, 1 */
    assert_true(lo == 16 && hi == 20);
}

/* 7 hidden units over 3 ranks: 3, 2, 2 columns of w1 and b1, the same rows of w2. */
static void test_uneven_pair(void **state)
{
    (void)state;
    char path[256], out[256];
    snprintf(path, sizeof path, "%s/mlp.mindir", tmp_root);
    snprintf(out, sizeof out, "%s/uneven", tmp_root);
    save_mlp(path, 5, 7, 4, SL_OP_RELU);
    sl_split_report *r;
    assert_int_equal(sl_split_model(path, 3, out, NULL, NULL, 0, 0, &r), SL_OK);
    assert_int_equal(sl_split_report_ranks(r), 3);
    assert_int_equal(sl_split_report_all_reduces(r), 1);
    assert_int_equal(sl_split_report_all_gathers(r), 0);
    expect_weight(r, "w1", 1, "column");
    expect_weight(r, "b1", 0, "with-layer");
    expect_weight(r, "w2", 1, "row");
    static const int64_t cols[3] = {3, 2, 2}, first[3] = {0, 3, 5};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(sl_split_report_weight_rank_bytes(r, weight_index(r, "w1"), k),
                         (size_t)(5 * cols[k] * 4));
        sl_graph *g;
        assert_int_equal(sl_mindir_load(sl_split_report_file(r, k), &g), SL_OK);
        const sl_value *w1 = find_const(g, "w1"), *w2 = find_const(g, "w2");
        assert_non_null(w1);
        assert_non_null(w2);
        assert_true(w1->shape.dims[0] == 5 && w1->shape.dims[1] == cols[k]);
        assert_true(w2->shape.dims[0] == 4 && w2->shape.dims[1] == cols[k]);
        /* element (i, j) of the slice is element (i, first + j) of the full weight */
        const float *d1 = w1->data, *d2 = w2->data;
        assert_true(d1[1 * cols[k] + 1] == (float)(1000 + first[k] + 1));
        assert_true(d2[2 * cols[k]] == (float)(2000 + first[k]));
        assert_int_equal(count_ops(g, SL_OP_ALL_REDUCE), 1);
        sl_graph_destroy(g);
    }
    sl_split_report_destroy(r);
}

/* A softmax over the sharded axis stops the shard: the pair stays whole, w2 is then a last
 * layer: column-parallel with an AllGather (4 columns over 2 ranks: even). */
static void test_replicate_fallback(void **state)
{
    (void)state;
    char path[256], out[256];
    snprintf(path, sizeof path, "%s/soft.mindir", tmp_root);
    snprintf(out, sizeof out, "%s/soft", tmp_root);
    save_mlp(path, 5, 8, 4, SL_OP_SOFTMAX);
    sl_split_report *r;
    assert_int_equal(sl_split_model(path, 2, out, NULL, NULL, 0, 0, &r), SL_OK);
    expect_weight(r, "w1", -1, "replicated");
    expect_weight(r, "b1", -1, "replicated");
    expect_weight(r, "w2", 0, "column");
    assert_int_equal(sl_split_report_all_reduces(r), 0);
    assert_int_equal(sl_split_report_all_gathers(r), 1);
    sl_split_report_destroy(r);
    /* 3 output columns over 2 ranks cannot be gathered: all replicated */
    save_mlp(path, 5, 8, 3, SL_OP_SOFTMAX);
    assert_int_equal(sl_split_model(path, 2, out, NULL, NULL, 0, 0, &r), SL_OK);
    expect_weight(r, "w2", -1, "replicated");
    assert_int_equal(sl_split_report_all_gathers(r), 0);
    sl_split_report_destroy(r);
}

static void test_rules(void **state)
{
    (void)state;
    char path[256], out[256];
    snprintf(path, sizeof path, "%s/rules.mindir", tmp_root);
    snprintf(out, sizeof out, "%s/rules", tmp_root);
    save_mlp(path, 5, 8, 4, SL_OP_RELU);
    const char *names[] = {"w2", "w1"};
    int axes[] = {-1, 1};
    sl_split_report *r;
    /* w2 replicated: w1's shard ends at the output, where it is gathered */
    assert_int_equal(sl_split_model(path, 2, out, names, axes, 2, 0, &r), SL_OK);
    expect_weight(r, "w1", 1, "column");
    expect_weight(r, "w2", -1, "replicated");
    assert_int_equal(sl_split_report_all_gathers(r), 1);
    sl_split_report_destroy(r);
    /* a split no consumer takes, an unknown weight, an axis past the rank */
    axes[1] = 0;
    assert_int_equal(sl_split_model(path, 2, out, names + 1, axes + 1, 1, 0, &r),
                     SL_ERR_UNSUPPORTED);
    assert_non_null(strstr(sl_last_error(), "'w1' cannot be split on axis 0"));
    const char *bad[] = {"nope"};
    assert_int_equal(sl_split_model(path, 2, out, bad, axes, 1, 0, &r), SL_ERR_INVALID_ARG);
    axes[1] = 2;
    assert_int_equal(sl_split_model(path, 2, out, names + 1, axes + 1, 1, 0, &r),
                     SL_ERR_INVALID_ARG);
    assert_int_equal(sl_split_model(path, 0, out, NULL, NULL, 0, 0, &r), SL_ERR_INVALID_ARG);
}

/* Gather from an activation table (a graph input) that nothing shards: replicated. Its layout
 * was made a shard with the replicated layout's zero mul and div: a division by zero (SIGFPE)
 * in gcd reduction. */
static void test_gather_activation_table(void **state)
{
    (void)state;
    char path[256], out[256];
    snprintf(path, sizeof path, "%s/gather.mindir", tmp_root);
    snprintf(out, sizeof out, "%s/gather", tmp_root);
    sl_graph *g;
    assert_int_equal(sl_graph_create(&g), SL_OK);
    g->name = strdup("g");
    sl_shape ts = {.rank = 2, .dims = {4, 3}}, is = {.rank = 1, .dims = {2}}, as = {0};
    int in[3], y = add_act(g, "y");
    assert_int_equal(sl_graph_add_value(g, "g:x", SL_DTYPE_FLOAT32, &ts, SL_VALUE_INPUT, &in[0]),
                     SL_OK);
    assert_int_equal(sl_graph_add_value(g, "g:i", SL_DTYPE_INT32, &is, SL_VALUE_INPUT, &in[1]),
                     SL_OK);
    assert_int_equal(sl_graph_add_value(g, "axis", SL_DTYPE_INT64, &as, SL_VALUE_CONST, &in[2]),
                     SL_OK);
    int64_t *axis = malloc(sizeof *axis);
    assert_non_null(axis);
    *axis = 1; /* (axis 0 matched the replicated layout's axis field 0: not reached) */
    g->values[in[2]].data = g->values[in[2]].owned = axis;
    sl_params p;
    memset(&p, 0, sizeof p);
    assert_int_equal(sl_graph_add_node(g, SL_OP_GATHER, "gather", in, 3, &y, 1, &p, NULL), SL_OK);
    g->inputs = malloc(2 * sizeof(int));
    g->inputs[0] = in[0];
    g->inputs[1] = in[1];
    g->n_inputs = 2;
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = y;
    g->n_outputs = 1;
    assert_int_equal(sl_mindir_save(g, path, 0), SL_OK);
    sl_graph_destroy(g);
    sl_split_report *r;
    assert_int_equal(sl_split_model(path, 2, out, NULL, NULL, 0, 0, &r), SL_OK);
    assert_int_equal(sl_split_report_all_reduces(r), 0);
    assert_int_equal(sl_split_report_all_gathers(r), 0);
    sl_split_report_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_uneven_pair),
        cmocka_unit_test(test_replicate_fallback),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_gather_activation_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
