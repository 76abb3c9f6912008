#include "graph/ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mapfile.h"

sl_status sl_graph_create(sl_graph **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? SL_OK : sl_error(SL_ERR_NOMEM, "graph: out of memory");
}

void sl_graph_destroy(sl_graph *g)
{
    if (!g) {
        return;
    }
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        free(g->values[i].owned);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].in);
        free(g->nodes[i].out);
    }
    for (int i = 0; i < g->n_maps; i++) {
        sl_mapfile_release(g->maps[i].file);
    }
    for (int i = 0; i < 2 * g->n_user_info; i++) {
        free(g->user_info[i]);
    }
    free(g->user_info);
    free(g->name);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->maps);
    free(g->producer_name);
    free(g->producer_version);
    free(g);
}

static sl_status grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap) {
        return SL_OK;
    }
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need) {
        ncap *= 2;
    }
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p) {
        return sl_error(SL_ERR_NOMEM, "graph: out of memory");
    }
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return SL_OK;
}

sl_status sl_graph_add_value(sl_graph *g, const char *name, sl_dtype dtype, const sl_shape *shape,
                             sl_value_kind kind, int *out)
{
    SL_TRY(grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values));
    sl_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = strdup(name ? name : "");
    if (!v->name) {
        return sl_error(SL_ERR_NOMEM, "graph: out of memory");
    }
    v->dtype = dtype;
    if (shape) {
        v->shape = *shape;
    }
    v->kind = kind;
    v->producer = -1;
    *out = g->n_values++;
    return SL_OK;
}

sl_status sl_graph_add_node(sl_graph *g, sl_op op, const char *name, const int *in, int n_in,
                            const int *out_values, int n_out, const sl_params *params, int *out)
{
    SL_TRY(grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes));
    sl_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = strdup(name ? name : "");
    n->in = malloc(sizeof(int) * (size_t)(n_in ? n_in : 1));
    n->out = malloc(sizeof(int) * (size_t)(n_out ? n_out : 1));
    if (!n->name || !n->in || !n->out) {
        free(n->name);
        free(n->in);
        free(n->out);
        return sl_error(SL_ERR_NOMEM, "graph: out of memory");
    }
    if (n_in) {
        memcpy(n->in, in, sizeof(int) * (size_t)n_in);
    }
    if (n_out) {
        memcpy(n->out, out_values, sizeof(int) * (size_t)n_out);
    }
    n->n_in = n_in;
    n->n_out = n_out;
    if (params) {
        n->params = *params;
    }
    for (int i = 0; i < n_out; i++) {
        g->values[out_values[i]].producer = g->n_nodes;
    }
    if (out) {
        *out = g->n_nodes;
    }
    g->n_nodes++;
    return SL_OK;
}

sl_status sl_graph_add_mapping(sl_graph *g, struct sl_mapfile *file)
{
    sl_mapping *m = realloc(g->maps, sizeof *m * (size_t)(g->n_maps + 1));
    if (!m) {
        sl_mapfile_release(file);
        return sl_error(SL_ERR_NOMEM, "graph: out of memory");
    }
    g->maps = m;
    g->maps[g->n_maps].addr = sl_mapfile_data(file);
    g->maps[g->n_maps].size = sl_mapfile_size(file);
    g->maps[g->n_maps].file = file;
    g->n_maps++;
    return SL_OK;
}

const char *sl_graph_weight_key(const sl_graph *g, const sl_value *v)
{
    size_t n = g->name ? strlen(g->name) : 0;
    if (n && strncmp(v->name, g->name, n) == 0 && v->name[n] == ':') {
        return v->name + n + 1;
    }
    return v->name;
}

int sl_graph_find_weight(const sl_graph *g, const char *name)
{
    for (int v = 0; v < g->n_values; v++) {
        const sl_value *x = &g->values[v];
        if (x->kind == SL_VALUE_CONST &&
            (strcmp(x->name, name) == 0 || strcmp(sl_graph_weight_key(g, x), name) == 0)) {
            return v;
        }
    }
    return -1;
}

int64_t sl_shape_numel(const sl_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < 0) {
            return -1;
        }
        n *= s->dims[i];
    }
    return n;
}

int sl_shape_equal(const sl_shape *a, const sl_shape *b)
{
    if (a->rank != b->rank) {
        return 0;
    }
    for (int i = 0; i < a->rank; i++) {
        if (a->dims[i] != b->dims[i]) {
            return 0;
        }
    }
    return 1;
}

size_t sl_value_bytes(const sl_value *v)
{
    int64_t n = sl_shape_numel(&v->shape);
    return n < 0 ? 0 : (size_t)n * sl_dtype_size(v->dtype);
}

int sl_value_known(const sl_op_call *call, const sl_value *v)
{
    if (!v || !v->data) {
        return 0;
    }
    return v->kind == SL_VALUE_CONST || v->folded || call->running;
}

int64_t sl_value_get_int(const sl_value *v, int64_t i)
{
    const void *d = v->data;
    switch (v->dtype) {
    case SL_DTYPE_BOOL:
    case SL_DTYPE_UINT8: return ((const uint8_t *)d)[i];
    case SL_DTYPE_INT8: return ((const int8_t *)d)[i];
    case SL_DTYPE_INT16: return ((const int16_t *)d)[i];
    case SL_DTYPE_UINT16: return ((const uint16_t *)d)[i];
    case SL_DTYPE_INT32: return ((const int32_t *)d)[i];
    case SL_DTYPE_UINT32: return ((const uint32_t *)d)[i];
    case SL_DTYPE_INT64: return ((const int64_t *)d)[i];
    case SL_DTYPE_UINT64: return (int64_t)((const uint64_t *)d)[i];
    case SL_DTYPE_FLOAT32: return sl_int64_from_double(((const float *)d)[i]);
    case SL_DTYPE_FLOAT64: return sl_int64_from_double(((const double *)d)[i]);
    default: return 0;
    }
}

int64_t sl_int64_from_double(double d)
{
    if (d != d) {
        return 0;
    }
    if (d <= -0x1p63) {
        return INT64_MIN;
    }
    if (d >= 0x1p63) {
        return INT64_MAX;
    }
    return (int64_t)d;
}

double sl_value_get_float(const sl_value *v, int64_t i)
{
    switch (v->dtype) {
    case SL_DTYPE_FLOAT32: return ((const float *)v->data)[i];
    case SL_DTYPE_FLOAT64: return ((const double *)v->data)[i];
    default: return (double)sl_value_get_int(v, i);
    }
}

const char *sl_shape_str(const sl_shape *s, char *buf, size_t n)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < s->rank && off < n; i++) {
        off += (size_t)snprintf(buf + off, n - off, i ? ",%lld" : "%lld", (long long)s->dims[i]);
    }
    if (off < n) {
        snprintf(buf + off, n - off, "]");
    }
    return buf;
}
