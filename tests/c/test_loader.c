/* Loader properties the other tests do not show: weights stay in the mapped file (zero-copy)
 * when aligned, external data always is, and the namespace rules (Load/Depend aliases, tuple
 * outputs) leave no stray values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>

#include "fixtures.h"
#include "core/mapfile.h"
#include "format/mindir/mindir.h"
#include "shardlite/shardlite.h"

/* Whether p lies inside one of g's file mappings. */
static int in_mapping(const sl_graph *g, const void *p)
{
    for (int i = 0; i < g->n_maps; i++) {
        const char *a = g->maps[i].addr;
        if ((const char *)p >= a && (const char *)p < a + g->maps[i].size) {
            return 1;
        }
    }
    return 0;
}

static void test_inline_weights_in_place_when_aligned(void **state)
{
    (void)state;
    char path[512];
    size_t size;
    free(sl_fixture_read("ori_net.mindir", &size, path, sizeof path));
    sl_graph *g;
    assert_int_equal(sl_mindir_load(path, &g), SL_OK);
    int consts = 0;
    for (int v = 0; v < g->n_values; v++) {
        const sl_value *val = &g->values[v];
        if (val->kind != SL_VALUE_CONST || sl_value_bytes(val) < 64) {
            continue;
        }
        consts++;
        uintptr_t addr = (uintptr_t)val->data;
        assert_int_equal(addr % sl_dtype_size(val->dtype), 0);
        /* in the mapping, or (misaligned there) a shared 64-byte-aligned copy */
        assert_null(val->owned);
        if (!in_mapping(g, val->data)) {
            assert_int_equal(addr % 64, 0);
        }
    }
    assert_int_equal(consts, 5); /* two conv kernels, three MatMul weights */
    sl_graph_destroy(g);
}

static void test_external_weights_always_in_place(void **state)
{
    (void)state;
    char path[512], out[256];
    size_t size;
    free(sl_fixture_read("ori_net.mindir", &size, path, sizeof path));
    sl_model *m;
    assert_int_equal(sl_model_build_from_file(path, NULL, &m), SL_OK);
    snprintf(out, sizeof out, "/tmp/sl_loader_%d.mindir", (int)getpid());
    assert_int_equal(sl_model_save(m, out, 1), SL_OK);
    sl_model_destroy(m);
    sl_graph *g;
    assert_int_equal(sl_mindir_load(out, &g), SL_OK);
    int external = 0;
    for (int v = 0; v < g->n_values; v++) {
        const sl_value *val = &g->values[v];
        if (val->kind == SL_VALUE_CONST && sl_value_bytes(val) >= 64) {
            assert_null(val->owned);
            assert_true(in_mapping(g, val->data));
            assert_int_equal((uintptr_t)val->data % 64, 0);
            external++;
        }
    }
    assert_int_equal(external, 5);
    assert_int_equal(g->n_maps, 2); /* the model file and its one data file */
    sl_graph_destroy(g);
    char data[300];
    snprintf(data, sizeof data, "/tmp/sl_loader_%d_variables/data_0", (int)getpid());
    unlink(data);
    data[strlen(data) - strlen("/data_0")] = '\0';
    rmdir(data);
    unlink(out);
}

static void test_lenet_graph_shape(void **state)
{
    (void)state;
    char path[512];
    size_t size;
    free(sl_fixture_read("ori_net.mindir", &size, path, sizeof path));
    sl_graph *g;
    assert_int_equal(sl_mindir_load(path, &g), SL_OK);
    /* Load, UpdateState, Depend, MakeTuple vanish: 12 compute nodes remain */
    assert_int_equal(g->n_nodes, 12);
    assert_int_equal(g->n_inputs, 1);
    assert_int_equal(g->n_outputs, 1);
    assert_int_equal(g->nodes[g->n_nodes - 1].op, SL_OP_MATMUL);
    assert_int_equal(g->outputs[0], g->nodes[g->n_nodes - 1].out[0]);
    assert_int_equal(g->mind_ir_version, 1);
    assert_string_equal(g->producer_version, "2.0.0a0");
    sl_graph_destroy(g);
}

static void test_models_of_one_file_share_weights(void **state)
{
    (void)state;
    char path[512];
    size_t size;
    free(sl_fixture_read("ori_net.mindir", &size, path, sizeof path));
    int before = sl_mapfile_live_count();
    sl_graph *a, *b;
    assert_int_equal(sl_mindir_load(path, &a), SL_OK);
    assert_int_equal(sl_mindir_load(path, &b), SL_OK);
    assert_int_equal(sl_mapfile_live_count(), before + 1);
    assert_int_equal(a->n_values, b->n_values);
    int shared = 0;
    for (int v = 0; v < a->n_values; v++) {
        if (a->values[v].kind == SL_VALUE_CONST && sl_value_bytes(&a->values[v]) >= 64) {
            assert_ptr_equal(a->values[v].data, b->values[v].data);
            shared++;
        }
    }
    assert_int_equal(shared, 5);
    sl_graph_destroy(a);
    assert_int_equal(sl_mapfile_live_count(), before + 1);
    sl_graph_destroy(b);
    assert_int_equal(sl_mapfile_live_count(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_weights_in_place_when_aligned),
        cmocka_unit_test(test_external_weights_always_in_place),
        cmocka_unit_test(test_lenet_graph_shape),
        cmocka_unit_test(test_models_of_one_file_share_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
