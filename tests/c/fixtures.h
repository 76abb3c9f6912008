/* Shared helpers for C tests that read the MindIR fixtures ($SL_FIXTURES). A missing folder is
 * a test failure, never a skip. */
#ifndef SL_TEST_FIXTURES_H
#define SL_TEST_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sl_fixture_names[] = {
    "relu.mindir",
    "add_no_encrpty.mindir",
    "ori_net.mindir",
    "ms_2_5_0/test_ops_celu_cast_float_fp32_cnode_to_fp64.mindir",
    "ms_2_5_0/test_ops_celu_cast_float_fp32_cnode_to_fp64_v2.mindir",
    "ms_2_5_0/test_ops_celu_cast_float_fp32_parameter_node_to_fp64.mindir",
    "ms_2_5_0/test_ops_celu_cast_float_fp32_value_node_to_fp64.mindir",
    "ms_2_5_0/test_ops_log_cast_primitive_attribute_fp32_to_fp64.mindir",
    "ms_2_5_0/test_ops_upsample_cast_tuple_float_fp32_value_node_to_fp64.mindir",
};
#define SL_N_FIXTURES (sizeof sl_fixture_names / sizeof sl_fixture_names[0])

/* Reads fixture `name` into a malloc'd buffer; returns NULL (and prints why) when missing. */
static inline unsigned char *sl_fixture_read(const char *name, size_t *size, char *path, size_t path_n)
{
    *size = 0;
    const char *dir = getenv("SL_FIXTURES");
    if (!dir || !*dir) {
        fprintf(stderr, "SL_FIXTURES is not set\n");
        return NULL;
    }
    snprintf(path, path_n, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fixture %s is missing\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static inline void sl_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

#endif
