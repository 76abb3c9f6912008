/* The public C API: argument checks, then the runtime. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "core/status.h"
#include "format/mindir/mindir.h"
#include "graph/shape_util.h"
#include "runtime/model.h"

#ifndef SL_VERSION
#define SL_VERSION "0.0.0"
#endif

#define CHECK_ARG(cond, what)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            return sl_error(SL_ERR_INVALID_ARG, "%s: %s", __func__, what);                  \
        }                                                                                  \
    } while (0)

const char *sl_version(void)
{
    return SL_VERSION;
}

const char *sl_build_info(void)
{
#ifdef SL_HAVE_MPI
    return "cpu=1,blas=openblas,shm=1,mpi=1,cuda=0,nccl=0";
#else
    return "cpu=1,blas=openblas,shm=1,mpi=0,cuda=0,nccl=0";
#endif
}

sl_status sl_context_create(sl_context **out)
{
    CHECK_ARG(out, "out is NULL");
    *out = calloc(1, sizeof **out);
    return *out ? SL_OK : sl_error(SL_ERR_NOMEM, "context: out of memory");
}

void sl_context_destroy(sl_context *ctx)
{
    free(ctx);
}

sl_status sl_context_set_thread_num(sl_context *ctx, int thread_num)
{
    CHECK_ARG(ctx, "ctx is NULL");
    if (thread_num < 0 || thread_num > 1024) {
        return sl_error(SL_ERR_INVALID_ARG, "thread_num %d is outside [0, 1024]", thread_num);
    }
    ctx->thread_num = thread_num;
    return SL_OK;
}

int sl_context_get_thread_num(const sl_context *ctx)
{
    return ctx ? ctx->thread_num : 0;
}

sl_status sl_model_build_from_file(const char *path, const sl_context *ctx, sl_model **out)
{
    CHECK_ARG(out, "out is NULL");
    *out = NULL;
    CHECK_ARG(path, "path is NULL");
    sl_graph *g;
    SL_TRY(sl_mindir_load(path, &g));
    sl_model *m;
    SL_TRY(sl_runtime_create(g, ctx ? ctx->thread_num : 0, &m));
    sl_status st = sl_runtime_prepare(m);
    if (st != SL_OK) {
        sl_runtime_destroy(m);
        return sl_error_wrap(st, "building '%s'", path);
    }
    *out = m;
    return SL_OK;
}

sl_status sl_model_save(const sl_model *model, const char *path, int external_data)
{
    CHECK_ARG(model && path, "model or path is NULL");
    return sl_mindir_save(model->g, path, external_data);
}

void sl_model_destroy(sl_model *model)
{
    sl_runtime_destroy(model);
}

size_t sl_model_input_count(const sl_model *m)
{
    return m ? (size_t)m->g->n_inputs : 0;
}

size_t sl_model_output_count(const sl_model *m)
{
    return m ? (size_t)m->g->n_outputs : 0;
}

sl_tensor *sl_model_input(const sl_model *m, size_t i)
{
    return m && i < (size_t)m->g->n_inputs ? &m->inputs[i] : NULL;
}

sl_tensor *sl_model_output(const sl_model *m, size_t i)
{
    return m && i < (size_t)m->g->n_outputs ? &m->outputs[i] : NULL;
}

sl_status sl_model_resize(sl_model *m, size_t n_inputs, const int64_t *const *dims,
                          const size_t *ranks)
{
    CHECK_ARG(m, "model is NULL");
    if (n_inputs != (size_t)m->g->n_inputs) {
        return sl_error(SL_ERR_INVALID_ARG, "resize: %zu shapes given, the model has %d inputs",
                        n_inputs, m->g->n_inputs);
    }
    CHECK_ARG(n_inputs == 0 || (dims && ranks), "dims or ranks is NULL");
    for (size_t i = 0; i < n_inputs; i++) {
        sl_value *v = &m->g->values[m->g->inputs[i]];
        if (ranks[i] != (size_t)v->shape.rank) {
            return sl_error(SL_ERR_SHAPE, "resize: input '%s' has rank %d, got %zu dims", v->name,
                            v->shape.rank, ranks[i]);
        }
        sl_shape s = {.rank = v->shape.rank};
        for (size_t k = 0; k < ranks[i]; k++) {
            if (dims[i][k] < 0 || dims[i][k] > ((int64_t)1 << 40)) {
                return sl_error(SL_ERR_SHAPE, "resize: input '%s' dim %zu = %lld is invalid",
                                v->name, k, (long long)dims[i][k]);
            }
            s.dims[k] = dims[i][k];
        }
        int64_t numel;
        if (!sl_shape_numel_checked(&s, &numel)) { /* dims of 2**40 multiply past int64 */
            char buf[160];
            return sl_error(SL_ERR_SHAPE, "resize: input '%s' shape %s has more than %lld elements",
                            v->name, sl_shape_str(&s, buf, sizeof buf), (long long)SL_MAX_NUMEL);
        }
    }
    sl_shape *old = malloc(sizeof *old * (n_inputs ? n_inputs : 1));
    if (!old) {
        return sl_error(SL_ERR_NOMEM, "resize: out of memory");
    }
    for (size_t i = 0; i < n_inputs; i++) {
        sl_value *v = &m->g->values[m->g->inputs[i]];
        old[i] = v->shape;
        for (size_t k = 0; k < ranks[i]; k++) {
            v->shape.dims[k] = dims[i][k];
        }
    }
    sl_status st = sl_runtime_prepare(m);
    if (st != SL_OK) {
        /* keep the model usable with the shapes it had */
        st = sl_error_wrap(st, "resize");
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sl_last_error());
        for (size_t i = 0; i < n_inputs; i++) {
            m->g->values[m->g->inputs[i]].shape = old[i];
        }
        if (sl_runtime_prepare(m) != SL_OK) {
            m->ready = 0;
        }
        sl_error(st, "%s", msg);
    }
    free(old);
    return st;
}

sl_status sl_model_predict(sl_model *m)
{
    CHECK_ARG(m, "model is NULL");
    return sl_runtime_predict(m);
}

const char *sl_model_producer(const sl_model *m)
{
    return m ? m->producer : "";
}

size_t sl_model_node_count(const sl_model *m)
{
    return m ? (size_t)m->g->n_nodes : 0;
}

const char *sl_model_node_op(const sl_model *m, size_t i)
{
    if (!m || i >= (size_t)m->g->n_nodes) {
        return NULL;
    }
    return sl_op_get(m->g->nodes[i].op)->name;
}

size_t sl_model_weight_count(const sl_model *m)
{
    size_t n = 0;
    for (int v = 0; m && v < m->g->n_values; v++) {
        n += m->g->values[v].kind == SL_VALUE_CONST;
    }
    return n;
}

size_t sl_model_weight_bytes(const sl_model *m)
{
    size_t n = 0;
    for (int v = 0; m && v < m->g->n_values; v++) {
        if (m->g->values[v].kind == SL_VALUE_CONST) {
            n += sl_value_bytes(&m->g->values[v]);
        }
    }
    return n;
}

size_t sl_model_arena_bytes(const sl_model *m)
{
    return m ? m->arena_bytes : 0;
}

int sl_model_communicates(const sl_model *m)
{
    return m ? m->communicates : 0;
}

size_t sl_model_user_info_count(const sl_model *m)
{
    return m ? (size_t)m->g->n_user_info : 0;
}

sl_status sl_model_user_info(const sl_model *m, size_t i, const char **key, const char **value)
{
    CHECK_ARG(m && key && value, "model, key or value is NULL");
    if (i >= (size_t)m->g->n_user_info) {
        return sl_error(SL_ERR_INVALID_ARG, "user_info index %zu out of range [0, %d)", i,
                        m->g->n_user_info);
    }
    *key = m->g->user_info[2 * i];
    *value = m->g->user_info[2 * i + 1];
    return SL_OK;
}

/* The value index of weight `index`, or -1. */
static int weight_value(const sl_model *m, size_t index)
{
    for (int v = 0; m && v < m->g->n_values; v++) {
        if (m->g->values[v].kind == SL_VALUE_CONST && index-- == 0) {
            return v;
        }
    }
    return -1;
}

const char *sl_model_weight_name(const sl_model *m, size_t index)
{
    int v = weight_value(m, index);
    return v < 0 ? NULL : sl_graph_weight_key(m->g, &m->g->values[v]);
}

sl_status sl_model_update_weight(sl_model *m, const char *name, sl_dtype dtype,
                                 const int64_t *dims, size_t rank, const void *data, size_t size)
{
    CHECK_ARG(m && name && (dims || rank == 0) && (data || size == 0),
              "model, name, dims or data is NULL");
    int found = sl_graph_find_weight(m->g, name);
    sl_value *w = found >= 0 ? &m->g->values[found] : NULL;
    if (!w) {
        return sl_error(SL_ERR_INVALID_ARG, "update_weight: the model has no weight '%s'", name);
    }
    int same = dtype == w->dtype && rank == (size_t)w->shape.rank;
    for (size_t k = 0; same && k < rank; k++) {
        same = dims[k] == w->shape.dims[k];
    }
    if (!same || size != sl_value_bytes(w)) {
        char buf[128];
        return sl_error(SL_ERR_SHAPE, "update_weight: weight '%s' is %s %s (%zu bytes), got %s "
                        "rank %zu (%zu bytes)", name, sl_dtype_name(w->dtype),
                        sl_shape_str(&w->shape, buf, sizeof buf), sl_value_bytes(w),
                        sl_dtype_name(dtype), rank, size);
    }
    void *copy = NULL;
    if (posix_memalign(&copy, 64, size ? size : 1) != 0) {
        return sl_error(SL_ERR_NOMEM, "update_weight: out of memory for %zu bytes", size);
    }
    if (size) {
        memcpy(copy, data, size);
    }
    free(w->owned); /* the file's bytes (possibly shared with other models) stay untouched */
    w->owned = copy;
    w->data = copy;
    sl_status st = sl_runtime_prepare(m); /* constants folded from the old value change */
    return st == SL_OK ? st : sl_error_wrap(st, "update_weight '%s'", name);
}

sl_status sl_distributed_get(sl_distributed_info *out)
{
    CHECK_ARG(out, "out is NULL");
    sl_rank_info w;
    SL_TRY(sl_comm_world(&w));
    memset(out, 0, sizeof *out);
    out->rank = w.rank;
    out->size = w.size;
    snprintf(out->job, sizeof out->job, "%s", w.job);
    snprintf(out->source, sizeof out->source, "%s", w.source);
    snprintf(out->backend, sizeof out->backend, "%s", w.backend);
    return SL_OK;
}

sl_status sl_distributed_configure(int rank, int size, const char *job, const char *backend)
{
    return sl_comm_configure(rank, size, job, backend);
}

static const sl_value *tv(const sl_tensor *t)
{
    return &t->model->g->values[t->value];
}

const char *sl_tensor_name(const sl_tensor *t)
{
    return t ? tv(t)->name : "";
}

sl_dtype sl_tensor_dtype(const sl_tensor *t)
{
    return t ? tv(t)->dtype : SL_DTYPE_UNKNOWN;
}

size_t sl_tensor_rank(const sl_tensor *t)
{
    return t ? (size_t)tv(t)->shape.rank : 0;
}

int64_t sl_tensor_dim(const sl_tensor *t, size_t i)
{
    return t && i < (size_t)tv(t)->shape.rank ? tv(t)->shape.dims[i] : -1;
}

size_t sl_tensor_element_count(const sl_tensor *t)
{
    int64_t n = t ? sl_shape_numel(&tv(t)->shape) : 0;
    return n < 0 ? 0 : (size_t)n;
}

size_t sl_tensor_byte_size(const sl_tensor *t)
{
    return t ? sl_value_bytes(tv(t)) : 0;
}

void *sl_tensor_data(sl_tensor *t)
{
    return t && t->model->ready ? t->model->g->values[t->value].data : NULL;
}

sl_status sl_tensor_set_data(sl_tensor *t, const void *data, size_t size)
{
    CHECK_ARG(t, "tensor is NULL");
    sl_value *v = &t->model->g->values[t->value];
    if (v->kind != SL_VALUE_INPUT) {
        return sl_error(SL_ERR_INVALID_ARG, "tensor '%s' is not a model input", v->name);
    }
    if (!t->model->ready) {
        return sl_error(SL_ERR_STATE, "input '%s' has unresolved dims: call resize first",
                        v->name);
    }
    if (size != sl_value_bytes(v)) {
        return sl_error(SL_ERR_SHAPE, "input '%s' holds %zu bytes, got %zu", v->name,
                        sl_value_bytes(v), size);
    }
    CHECK_ARG(data || size == 0, "data is NULL");
    if (size) {
        memcpy(v->data, data, size);
    }
    return SL_OK;
}
