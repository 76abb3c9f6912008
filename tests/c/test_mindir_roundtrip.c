/* MindIR writer: every fixture in $SL_FIXTURES (and a hand-built graph with Split, Concat, Cast,
 * tuple constants and several outputs) is run, saved (inline and with external data), loaded
 * again and run on the same inputs: outputs must be bit-identical. Also checks the external
 * data layout, that saving the reloaded model gives the same bytes, that save failures leave
 * no files behind, and that an external data location outside the model's folder is refused. */
#include <dirent.h>
#include <errno.h>
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
#include "format/pb/pb.h"
#include "runtime/model.h"
#include "shardlite/shardlite.h"

/* ---- helpers ---- */


#define PATH_LEN 1024

/* snprintf into a PATH_LEN buffer (the paths here are short) */
static void fmt(char *buf, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void fmt(char *buf, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, PATH_LEN, f, ap);
    va_end(ap);
}

#define TMPDIR_NAME "mindir_rt"
#include "tmpdir.h"

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

static void assert_same_files(const char *a, const char *b)
{
    size_t na, nb;
    uint8_t *x = read_file(a, &na), *y = read_file(b, &nb);
    if (na != nb || memcmp(x, y, na) != 0) {
        fail_msg("'%s' and '%s' differ", a, b);
    }
    free(x);
    free(y);
}

static void mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fail_msg("mkdir %s: %s", path, strerror(errno));
    }
}

static sl_model *build(const char *path)
{
    sl_model *m = NULL;
    if (sl_model_build_from_file(path, NULL, &m) != SL_OK) {
        fail_msg("building %s: %s", path, sl_last_error());
    }
    return m;
}

static uint64_t rng = 0x2545f4914f6cdd1du;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Deterministic inputs: floats in [-1, 1], integers in [0, 3], booleans. */
typedef struct run_data {
    size_t n_in, n_out;
    void **in;
    size_t *in_bytes;
    void **out;
    size_t *out_bytes;
} run_data;

static void fill_random(void *p, sl_dtype dtype, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double r = (double)(next_rand() % 2001) / 1000.0 - 1.0;
        int64_t k = (int64_t)(next_rand() % 4);
        switch (dtype) {
        case SL_DTYPE_FLOAT32: ((float *)p)[i] = (float)r; break;
        case SL_DTYPE_FLOAT64: ((double *)p)[i] = r; break;
        case SL_DTYPE_INT64: ((int64_t *)p)[i] = k; break;
        case SL_DTYPE_INT32: ((int32_t *)p)[i] = (int32_t)k; break;
        case SL_DTYPE_BOOL:
        case SL_DTYPE_UINT8:
        case SL_DTYPE_INT8: ((uint8_t *)p)[i] = (uint8_t)(k & 1); break;
        default: fail_msg("no random data for dtype %s", sl_dtype_name(dtype));
        }
    }
}

static void make_inputs(sl_model *m, run_data *r)
{
    r->n_in = sl_model_input_count(m);
    r->in = calloc(r->n_in + 1, sizeof *r->in);
    r->in_bytes = calloc(r->n_in + 1, sizeof *r->in_bytes);
    assert_true(r->in && r->in_bytes);
    for (size_t i = 0; i < r->n_in; i++) {
        sl_tensor *t = sl_model_input(m, i);
        r->in_bytes[i] = sl_tensor_byte_size(t);
        r->in[i] = malloc(r->in_bytes[i] + 1);
        assert_non_null(r->in[i]);
        fill_random(r->in[i], sl_tensor_dtype(t), sl_tensor_element_count(t));
    }
}

/* Runs m on r's inputs; keeps the outputs in r (when `keep`) or compares them with r's. */
static void run(sl_model *m, run_data *r, int keep, const char *what)
{
    assert_int_equal(sl_model_input_count(m), r->n_in);
    for (size_t i = 0; i < r->n_in; i++) {
        sl_tensor *t = sl_model_input(m, i);
        if (sl_tensor_set_data(t, r->in[i], r->in_bytes[i]) != SL_OK) {
            fail_msg("%s: input %zu: %s", what, i, sl_last_error());
        }
    }
    if (sl_model_predict(m) != SL_OK) {
        fail_msg("%s: predict: %s", what, sl_last_error());
    }
    if (keep) {
        r->n_out = sl_model_output_count(m);
        r->out = calloc(r->n_out + 1, sizeof *r->out);
        r->out_bytes = calloc(r->n_out + 1, sizeof *r->out_bytes);
        assert_true(r->out && r->out_bytes);
    }
    assert_int_equal(sl_model_output_count(m), r->n_out);
    for (size_t i = 0; i < r->n_out; i++) {
        sl_tensor *t = sl_model_output(m, i);
        size_t n = sl_tensor_byte_size(t);
        const void *d = sl_tensor_data(t);
        assert_true(d != NULL || n == 0);
        if (keep) {
            r->out_bytes[i] = n;
            r->out[i] = malloc(n + 1);
            assert_non_null(r->out[i]);
            memcpy(r->out[i], d, n);
        } else if (n != r->out_bytes[i] || memcmp(d, r->out[i], n) != 0) {
            fail_msg("%s: output %zu differs after the round trip", what, i);
        }
    }
}

static void run_data_free(run_data *r)
{
    for (size_t i = 0; i < r->n_in; i++) {
        free(r->in[i]);
    }
    for (size_t i = 0; i < r->n_out; i++) {
        free(r->out[i]);
    }
    free(r->in);
    free(r->in_bytes);
    free(r->out);
    free(r->out_bytes);
}

/* The ModelProto's graph parameters must all be external: at 64-byte aligned offsets from 64 on,
 * inside data_0, whose 64-byte header starts with 1 (little-endian). */
static void check_external_layout(const char *model, const char *dir, const char *stem)
{
    char data[PATH_LEN], location[PATH_LEN];
    fmt(location, "%s_variables/data_0", stem);
    fmt(data, "%s/%s", dir, location);
    size_t size, dsize = 0;
    uint8_t *buf = read_file(model, &size);
    uint8_t *dbuf = file_exists(data) ? read_file(data, &dsize) : NULL;
    if (dbuf) {
        assert_true(dsize >= 64);
        assert_int_equal(dbuf[0], 1);
        for (int i = 1; i < 64; i++) {
            assert_int_equal(dbuf[i], 0);
        }
    }
    sl_pb m = sl_pb_make(buf, size), g = {0};
    sl_pb_field f;
    int has;
    for (;;) {
        assert_int_equal(sl_pb_next(&m, &f, &has, "model"), SL_OK);
        if (!has) {
            break;
        }
        if (f.num == 7) {
            g = f.bytes;
        }
    }
    assert_non_null(g.p);
    uint64_t end = 64;
    int n_params = 0;
    for (;;) {
        assert_int_equal(sl_pb_next(&g, &f, &has, "graph"), SL_OK);
        if (!has) {
            break;
        }
        if (f.num != 3) {
            continue;
        }
        n_params++;
        sl_pb t = f.bytes, loc = {0};
        int64_t off = -1, len = -1;
        for (;;) {
            assert_int_equal(sl_pb_next(&t, &f, &has, "tensor"), SL_OK);
            if (!has) {
                break;
            }
            assert_int_not_equal(f.num, 9); /* no raw_data */
            if (f.num != 12) {
                continue;
            }
            sl_pb e = f.bytes;
            for (;;) {
                assert_int_equal(sl_pb_next(&e, &f, &has, "external"), SL_OK);
                if (!has) {
                    break;
                }
                if (f.num == 1) {
                    loc = f.bytes;
                } else if (f.num == 2) {
                    off = (int64_t)f.u;
                } else if (f.num == 3) {
                    len = (int64_t)f.u;
                }
            }
        }
        assert_true(sl_pb_eq(loc, location));
        assert_true(off >= (int64_t)end && off % 64 == 0 && len >= 0);
        assert_true((uint64_t)(off + len) <= dsize);
        end = (uint64_t)(off + len);
    }
    assert_true(n_params == 0 || dbuf != NULL);
    free(buf);
    free(dbuf);
}

/* Saves m as <dir>/<stem>.mindir, reloads it, runs it and compares; saves the reloaded model
 * as <dir>2/<stem>.mindir and requires the same bytes (the writer is deterministic and stable). */
static void round_trip(sl_model *m, run_data *r, const char *stem, int external)
{
    char dir[PATH_LEN], dir2[PATH_LEN], path[512], path2[512];
    fmt(dir, "%s/%s", tmp_root, external ? "ext" : "inline");
    fmt(dir2, "%s2", dir);
    mkdir_p(dir);
    mkdir_p(dir2);
    fmt(path, "%s/%s.mindir", dir, stem);
    fmt(path2, "%s/%s.mindir", dir2, stem);
    if (sl_model_save(m, path, external) != SL_OK) {
        fail_msg("saving %s: %s", path, sl_last_error());
    }
    char tmp[PATH_LEN];
    fmt(tmp, "%s.tmp", path);
    assert_false(file_exists(tmp));
    if (external) {
        check_external_layout(path, dir, stem);
    }
    sl_model *back = build(path);
    assert_int_equal(sl_model_output_count(back), sl_model_output_count(m));
    for (size_t i = 0; i < sl_model_input_count(m); i++) {
        sl_tensor *a = sl_model_input(m, i), *b = sl_model_input(back, i);
        assert_non_null(b);
        assert_int_equal(sl_tensor_dtype(a), sl_tensor_dtype(b));
        assert_int_equal(sl_tensor_rank(a), sl_tensor_rank(b));
        assert_string_equal(sl_tensor_name(a), sl_tensor_name(b));
    }
    run(back, r, 0, path);
    if (sl_model_save(back, path2, external) != SL_OK) {
        fail_msg("saving %s: %s", path2, sl_last_error());
    }
    assert_same_files(path, path2);
    if (external) {
        char d1[PATH_LEN], d2[PATH_LEN];
        fmt(d1, "%s/%s_variables/data_0", dir, stem);
        fmt(d2, "%s/%s_variables/data_0", dir2, stem);
        assert_int_equal(file_exists(d1), file_exists(d2));
        if (file_exists(d1)) {
            assert_same_files(d1, d2);
        }
    }
    sl_model_destroy(back);
}

/* ---- fixtures ---- */

static char **fixture_list;
static int n_fixtures;

static int collect(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t n = strlen(p);
    if (flag == FTW_F && n > 7 && strcmp(p + n - 7, ".mindir") == 0) {
        fixture_list = realloc(fixture_list, sizeof *fixture_list * (size_t)(n_fixtures + 1));
        fixture_list[n_fixtures++] = strdup(p);
    }
    return 0;
}

static void test_fixtures_round_trip(void **state)
{
    (void)state;
    const char *dir = getenv("SL_FIXTURES");
    struct stat sb;
    if (!dir || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fail_msg("SL_FIXTURES ('%s') is not a folder of MindIR fixtures", dir ? dir : "unset");
    }
    assert_int_equal(nftw(dir, collect, 16, FTW_PHYS), 0);
    int tested = 0;
    for (int i = 0; i < n_fixtures; i++) {
        const char *path = fixture_list[i];
        sl_model *m = NULL;
        sl_status st = sl_model_build_from_file(path, NULL, &m);
        if (st == SL_ERR_ENCRYPTED) {
            free(fixture_list[i]);
            continue;
        }
        if (st != SL_OK) {
            fail_msg("building %s: %s", path, sl_last_error());
        }
        char stem[PATH_LEN];
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        snprintf(stem, sizeof stem, "%.*s", (int)(strlen(base) - 7), base);
        run_data r = {0};
        make_inputs(m, &r);
        run(m, &r, 1, path);
        round_trip(m, &r, stem, 0);
        round_trip(m, &r, stem, 1);
        run_data_free(&r);
        sl_model_destroy(m);
        free(fixture_list[i]);
        tested++;
    }
    free(fixture_list);
    assert_true(tested >= 1);
}

/* ---- a hand-built graph: what the fixtures lack ---- */

static int add_value(sl_graph *g, const char *name, sl_dtype dt, int rank, const int64_t *dims,
                     sl_value_kind kind, const void *data)
{
    sl_shape s = {.rank = rank};
    for (int i = 0; i < rank; i++) {
        s.dims[i] = dims[i];
    }
    int v;
    assert_int_equal(sl_graph_add_value(g, name, dt, &s, kind, &v), SL_OK);
    if (data) {
        size_t n = sl_value_bytes(&g->values[v]);
        g->values[v].owned = malloc(n + 1);
        assert_non_null(g->values[v].owned);
        memcpy(g->values[v].owned, data, n);
        g->values[v].data = g->values[v].owned;
    }
    return v;
}

static void add_node(sl_graph *g, sl_op op, const char *name, const int *in, int n_in,
                     const int *out, int n_out, const sl_params *p)
{
    assert_int_equal(sl_graph_add_node(g, op, name, in, n_in, out, n_out, p, NULL), SL_OK);
}

/* x [2,6] f32 -> Split(axis 1, 2) -> Concat(axis 0) -> Transpose(perm const) -> Cast(f64);
 * Reshape(second half, shape const); Mul(first half, 0-d weight); Gather(w, idx, axis 0);
 * Shape -> TupleGetItem -> ScalarMul(scalar input); four outputs. */
static void test_built_graph_round_trip(void **state)
{
    (void)state;
    sl_graph *g;
    assert_int_equal(sl_graph_create(&g), SL_OK);
    const int64_t d26[] = {2, 6}, d23[] = {2, 3}, d43[] = {4, 3}, d34[] = {3, 4}, d2[] = {2},
                  d32[] = {3, 2}, d5_3[] = {5, 3}, d3[] = {3}, d33[] = {3, 3};
    int x = add_value(g, "net:x", SL_DTYPE_FLOAT32, 2, d26, SL_VALUE_INPUT, NULL);
    int s = add_value(g, "net:s", SL_DTYPE_INT64, 0, NULL, SL_VALUE_INPUT, NULL);
    int a = add_value(g, "split:0", SL_DTYPE_UNKNOWN, 2, d23, SL_VALUE_ACT, NULL);
    int b = add_value(g, "split:1", SL_DTYPE_UNKNOWN, 2, d23, SL_VALUE_ACT, NULL);
    sl_params p;
    memset(&p, 0, sizeof p);
    p.split.axis = 1;
    p.split.output_num = 2;
    add_node(g, SL_OP_SPLIT, "split", (int[]){x}, 1, (int[]){a, b}, 2, &p);
    int c = add_value(g, "concat", SL_DTYPE_UNKNOWN, 2, d43, SL_VALUE_ACT, NULL);
    memset(&p, 0, sizeof p);
    p.axes.n_axis = 1;
    add_node(g, SL_OP_CONCAT, "concat", (int[]){a, b}, 2, (int[]){c}, 1, &p);
    const int64_t perm_data[] = {1, 0};
    int perm = add_value(g, "perm", SL_DTYPE_INT64, 1, d2, SL_VALUE_CONST, perm_data);
    int t = add_value(g, "transpose", SL_DTYPE_UNKNOWN, 2, d34, SL_VALUE_ACT, NULL);
    memset(&p, 0, sizeof p);
    add_node(g, SL_OP_TRANSPOSE, "transpose", (int[]){c, perm}, 2, (int[]){t}, 1, &p);
    int out1 = add_value(g, "cast", SL_DTYPE_UNKNOWN, 2, d34, SL_VALUE_ACT, NULL);
    p.cast.to = SL_DTYPE_FLOAT64;
    add_node(g, SL_OP_CAST, "cast", (int[]){t}, 1, (int[]){out1}, 1, &p);
    const int64_t shape_data[] = {3, 2};
    int shape = add_value(g, "shape", SL_DTYPE_INT64, 1, d2, SL_VALUE_CONST, shape_data);
    int out2 = add_value(g, "reshape", SL_DTYPE_UNKNOWN, 2, d32, SL_VALUE_ACT, NULL);
    memset(&p, 0, sizeof p);
    add_node(g, SL_OP_RESHAPE, "reshape", (int[]){b, shape}, 2, (int[]){out2}, 1, &p);
    const float two = 2.5f;
    int w0 = add_value(g, "net:scale", SL_DTYPE_FLOAT32, 0, NULL, SL_VALUE_CONST, &two);
    int out3 = add_value(g, "mul", SL_DTYPE_UNKNOWN, 2, d23, SL_VALUE_ACT, NULL);
    add_node(g, SL_OP_MUL, "mul", (int[]){a, w0}, 2, (int[]){out3}, 1, &p);
    float table[15];
    for (int i = 0; i < 15; i++) {
        table[i] = (float)i * 0.25f;
    }
    const int64_t idx_data[] = {4, 0, 2}, zero = 0;
    int w = add_value(g, "net:table", SL_DTYPE_FLOAT32, 2, d5_3, SL_VALUE_CONST, table);
    int idx = add_value(g, "net:idx", SL_DTYPE_INT64, 1, d3, SL_VALUE_CONST, idx_data);
    int axis = add_value(g, "axis", SL_DTYPE_INT64, 0, NULL, SL_VALUE_CONST, &zero);
    int out4 = add_value(g, "gather", SL_DTYPE_UNKNOWN, 2, d33, SL_VALUE_ACT, NULL);
    add_node(g, SL_OP_GATHER, "gather", (int[]){w, idx, axis}, 3, (int[]){out4}, 1, &p);
    int shp = add_value(g, "shape_of", SL_DTYPE_UNKNOWN, 1, d2, SL_VALUE_ACT, NULL);
    add_node(g, SL_OP_SHAPE, "shape_of", (int[]){x}, 1, (int[]){shp}, 1, &p);
    const int64_t one = 1;
    int i1 = add_value(g, "index", SL_DTYPE_INT64, 0, NULL, SL_VALUE_CONST, &one);
    int dim = add_value(g, "dim", SL_DTYPE_UNKNOWN, 0, NULL, SL_VALUE_ACT, NULL);
    add_node(g, SL_OP_SEQ_GET_ITEM, "dim", (int[]){shp, i1}, 2, (int[]){dim}, 1, &p);
    int out5 = add_value(g, "scaled", SL_DTYPE_UNKNOWN, 0, NULL, SL_VALUE_ACT, NULL);
    add_node(g, SL_OP_SCALAR_MUL, "scaled", (int[]){dim, s}, 2, (int[]){out5}, 1, &p);
    g->inputs = malloc(2 * sizeof(int));
    g->outputs = malloc(5 * sizeof(int));
    assert_true(g->inputs && g->outputs);
    g->inputs[0] = x;
    g->inputs[1] = s;
    g->n_inputs = 2;
    memcpy(g->outputs, (int[]){out1, out2, out3, out4, out5}, 5 * sizeof(int));
    g->n_outputs = 5;

    sl_model *m;
    assert_int_equal(sl_runtime_create(g, 1, &m), SL_OK);
    if (sl_runtime_prepare(m) != SL_OK) {
        fail_msg("prepare: %s", sl_last_error());
    }
    run_data r = {0};
    make_inputs(m, &r);
    run(m, &r, 1, "built graph");
    round_trip(m, &r, "built", 0);
    round_trip(m, &r, "built", 1);

    /* what the file holds: MindSpore's forms for tuples, scalars and the Cast type */
    char path[PATH_LEN];
    fmt(path, "%s/inline/built.mindir", tmp_root);
    size_t size;
    char *text = (char *)read_file(path, &size);
    text[size] = 0;
    const char *expect[] = {"REF::Split:", "REF::TupleGetItem:", "REF::MakeTuple:",
                            "REF::Concat:", "REF::Cast:", "net:table", "perm", "Tuple:5"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        assert_non_null(memmem(text, size, expect[i], strlen(expect[i])));
    }
    free(text);
    run_data_free(&r);
    sl_runtime_destroy(m);
}

/* ---- failures ---- */

static void test_save_failures(void **state)
{
    (void)state;
    char fixture[PATH_LEN], path[PATH_LEN], tmp[600];
    const char *dir = getenv("SL_FIXTURES");
    assert_non_null(dir);
    fmt(fixture, "%s/ori_net.mindir", dir);
    sl_model *m = build(fixture);

    /* a folder that does not exist: an error naming the path, no file left */
    fmt(path, "%s/missing/net.mindir", tmp_root);
    assert_int_equal(sl_model_save(m, path, 0), SL_ERR_IO);
    assert_non_null(strstr(sl_last_error(), path));

    /* the data folder's name is taken by a file: no model, no data */
    char blocked[PATH_LEN];
    fmt(blocked, "%s/fail", tmp_root);
    mkdir_p(blocked);
    fmt(blocked, "%s/fail/net_variables", tmp_root);
    FILE *f = fopen(blocked, "w");
    assert_non_null(f);
    fclose(f);
    fmt(path, "%s/fail/net.mindir", tmp_root);
    assert_int_equal(sl_model_save(m, path, 1), SL_ERR_IO);
    assert_non_null(strstr(sl_last_error(), "net_variables"));
    fmt(tmp, "%s.tmp", path);
    assert_false(file_exists(path));
    assert_false(file_exists(tmp));
    sl_model_destroy(m);
}

/* A model with one external weight at `location` (relative to the model's folder). */
static void write_external_model(const char *path, const char *location)
{
    sl_pbw w = {0};
    sl_pbw_str(&w, 1, "0.1.1");
    size_t prim = sl_pbw_begin(&w);
    sl_pbw_str(&w, 1, "Add:1");
    sl_pbw_str(&w, 2, "Add");
    sl_pbw_end(&w, 12, prim);
    size_t graph = sl_pbw_begin(&w);
    size_t node = sl_pbw_begin(&w);
    sl_pbw_str(&w, 1, "g:x");
    sl_pbw_str(&w, 1, "g:w");
    sl_pbw_str(&w, 2, "g:y");
    sl_pbw_str(&w, 4, "REF::Add:1");
    sl_pbw_end(&w, 1, node);
    sl_pbw_str(&w, 2, "g");
    size_t param = sl_pbw_begin(&w);
    sl_pbw_varint(&w, 1, 2);
    sl_pbw_varint(&w, 2, 1);
    sl_pbw_str(&w, 7, "g:w");
    size_t ext = sl_pbw_begin(&w);
    sl_pbw_str(&w, 1, location);
    sl_pbw_varint(&w, 2, 64);
    sl_pbw_varint(&w, 3, 8);
    sl_pbw_end(&w, 12, ext);
    sl_pbw_end(&w, 3, param);
    size_t input = sl_pbw_begin(&w);
    sl_pbw_str(&w, 1, "g:x");
    size_t t = sl_pbw_begin(&w);
    sl_pbw_varint(&w, 1, 2);
    sl_pbw_varint(&w, 2, 1);
    sl_pbw_end(&w, 2, t);
    sl_pbw_end(&w, 5, input);
    size_t output = sl_pbw_begin(&w);
    sl_pbw_str(&w, 1, "g:y");
    sl_pbw_end(&w, 6, output);
    sl_pbw_end(&w, 7, graph);
    assert_false(w.failed);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(w.buf, 1, w.len, f), w.len);
    fclose(f);
    sl_pbw_free(&w);
}

static void write_data_file(const char *path)
{
    uint8_t data[72] = {1};
    const float w[2] = {1.5f, -2.0f};
    memcpy(data + 64, w, sizeof w);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, sizeof data, f), sizeof data);
    fclose(f);
}

static void test_external_location_confined(void **state)
{
    (void)state;
    char dir[PATH_LEN], path[PATH_LEN], data[512];
    fmt(dir, "%s/confine", tmp_root);
    mkdir_p(dir);
    fmt(path, "%s/confine/model_variables", tmp_root);
    mkdir_p(path);
    fmt(data, "%s/confine/model_variables/data_0", tmp_root);
    write_data_file(data);
    fmt(data, "%s/x", tmp_root); /* beside the model's folder */
    write_data_file(data);

    /* the well-formed model loads and runs: the harness itself is right */
    fmt(path, "%s/confine/model.mindir", tmp_root);
    write_external_model(path, "model_variables/data_0");
    sl_model *m = build(path);
    const float x[2] = {1.0f, 1.0f};
    assert_int_equal(sl_tensor_set_data(sl_model_input(m, 0), x, sizeof x), SL_OK);
    assert_int_equal(sl_model_predict(m), SL_OK);
    const float *y = sl_tensor_data(sl_model_output(m, 0));
    assert_true(y[0] == 2.5f && y[1] == -1.0f);
    sl_model_destroy(m);

    const char *bad[] = {"../x", "model_variables/../../x", data};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_external_model(path, bad[i]);
        m = NULL;
        assert_int_equal(sl_model_build_from_file(path, NULL, &m), SL_ERR_FORMAT);
        assert_null(m);
        assert_non_null(strstr(sl_last_error(), "external data location"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_round_trip),
        cmocka_unit_test(test_built_graph_round_trip),
        cmocka_unit_test(test_save_failures),
        cmocka_unit_test(test_external_location_confined),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
