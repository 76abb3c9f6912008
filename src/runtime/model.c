#include "runtime/model.h"

#include "backend/cpu/gemm.h"
#include "comm/comm.h"
#include "core/cpus.h"
#include "graph/shape_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

/* Communication ops join their group's communicator at build time (the rendezvous). */
static sl_status join_group(struct sl_model *m, int i)
{
    const sl_node *n = &m->g->nodes[i];
    if (!(sl_op_get(n->op)->flags & SL_OPF_COMM)) {
        return SL_OK;
    }
    const sl_params_coll *p = &n->params.coll;
    int ranks[SL_COMM_MAX_RANKS];
    /* a world group's name means every rank, whatever ranks the file lists (MindSpore's exports
     * give every op the ranks of its group: group_rank_ids); no group and no ranks: the world */
    int64_t n_ranks = p->group >= 0 ? 0 : p->n_group_ranks;
    if (n_ranks < 0 || n_ranks > SL_COMM_MAX_RANKS) {
        return sl_error(SL_ERR_FORMAT, "node '%s': a group of %lld ranks", n->name,
                        (long long)n_ranks);
    }
    if (p->group == -1 && n_ranks == 0) {
        return sl_error(SL_ERR_FORMAT, "node '%s': a sub-group without its ranks (group_ranks or "
                        "group_rank_ids; only a world group may omit them)", n->name);
    }
    for (int64_t k = 0; k < n_ranks; k++) {
        ranks[k] = (int)p->group_ranks[k];
    }
    const char *op = sl_op_get(n->op)->name;
    sl_rank_info w;
    SL_TRY(sl_comm_world(&w));
    int every = p->ranks_from_ids && n_ranks == w.size && w.size > 1;
    for (int k = 0; every && k < n_ranks; k++) {
        every = ranks[k] == k;
    }
    if (every) { /* (only a sub-group lists ranks: a world name's are ignored above) */
        return sl_error(SL_ERR_FORMAT,
                        "node '%s' (%s): its sub-group's group_rank_ids list every rank: "
                        "MindSpore names such a group after the world, and lists every rank "
                        "there for a group its parallel pass did not make, whatever its members; "
                        "give the group's ranks as group_ranks",
                        n->name, op);
    }
    sl_status st = sl_comm_get(ranks, (int)n_ranks, &m->comms[i]);
    if (st != SL_OK) {
        return sl_error_wrap(st, "node '%s' (%s)", n->name, op);
    }
    int size = sl_comm_size(m->comms[i]);
    if (strcmp(w.source, "single") == 0) { /* built alone (to inspect or save it?): see predict */
        m->alone = i;
    } else if (p->rank_size > 0 && p->rank_size != size && w.size > 1) { /* (1: on purpose) */
        return sl_error(SL_ERR_STATE,
                        "node '%s' (%s) was exported for a group of %lld ranks (rank_size), but "
                        "its group here has %d (world: %d ranks from %s)",
                        n->name, op, (long long)p->rank_size, size, w.size, w.source);
    }
    m->communicates |= size > 1; /* alone: no order to keep */
    return SL_OK;
}

sl_status sl_runtime_create(sl_graph *g, int thread_num, struct sl_model **out)
{
    *out = NULL;
    struct sl_model *m = calloc(1, sizeof *m);
    if (!m) {
        sl_graph_destroy(g);
        return sl_error(SL_ERR_NOMEM, "model: out of memory");
    }
    m->g = g;
    m->alone = -1;
    sl_gemm_init();
    if (thread_num <= 0) {
        cpu_set_t allowed;
        sl_cpus_allowed(&allowed);
        thread_num = sl_cpus_usable(&allowed);
    }
    m->thread_num = thread_num;
    int max_in = 1, max_out = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        max_in = g->nodes[i].n_in > max_in ? g->nodes[i].n_in : max_in;
        max_out = g->nodes[i].n_out > max_out ? g->nodes[i].n_out : max_out;
    }
    m->scratch = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *m->scratch);
    m->comms = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *m->comms);
    m->comm_model = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *m->comm_model);
    m->call_in = calloc((size_t)max_in, sizeof *m->call_in);
    m->call_out = calloc((size_t)max_out, sizeof *m->call_out);
    m->inputs = calloc((size_t)(g->n_inputs ? g->n_inputs : 1), sizeof *m->inputs);
    m->outputs = calloc((size_t)(g->n_outputs ? g->n_outputs : 1), sizeof *m->outputs);
    if (!m->scratch || !m->comms || !m->comm_model || !m->call_in || !m->call_out || !m->inputs ||
        !m->outputs) {
        sl_runtime_destroy(m);
        return sl_error(SL_ERR_NOMEM, "model: out of memory");
    }
    for (int i = 0; i < g->n_inputs; i++) {
        m->inputs[i] = (struct sl_tensor){m, g->inputs[i]};
    }
    for (int i = 0; i < g->n_outputs; i++) {
        m->outputs[i] = (struct sl_tensor){m, g->outputs[i]};
    }
    snprintf(m->producer, sizeof m->producer, "%s %s", g->producer_name ? g->producer_name : "",
             g->producer_version ? g->producer_version : "");
    sl_status st = sl_pool_create(thread_num, &m->pool);
    for (int i = 0; i < g->n_nodes && st == SL_OK; i++) {
        st = join_group(m, i);
    }
    if (st != SL_OK) {
        sl_runtime_destroy(m);
        return st;
    }
    *out = m;
    return SL_OK;
}

void sl_runtime_destroy(struct sl_model *m)
{
    if (!m) {
        return;
    }
    sl_pool_destroy(m->pool);
    for (int i = 0; m->comms && i < m->g->n_nodes; i++) {
        sl_comm_release(m->comms[i]);
    }
    free(m->comms);
    free(m->comm_model);
    free(m->arena);
    free(m->scratch);
    free(m->call_in);
    free(m->call_out);
    free(m->inputs);
    free(m->outputs);
    sl_graph_destroy(m->g);
    free(m);
}

static void bind_call(struct sl_model *m, int ni, sl_op_call *call)
{
    const sl_node *n = &m->g->nodes[ni];
    memset(call, 0, sizeof *call);
    call->node = n;
    call->p = &n->params;
    call->in = m->call_in;
    call->out = m->call_out;
    call->n_in = n->n_in;
    call->n_out = n->n_out;
    call->comm = m->comms[ni];
    call->comm_model = m->comm_model[ni];
    for (int k = 0; k < n->n_in; k++) {
        call->in[k] = n->in[k] >= 0 ? &m->g->values[n->in[k]] : NULL;
    }
    for (int k = 0; k < n->n_out; k++) {
        call->out[k] = &m->g->values[n->out[k]];
    }
}

static sl_status node_error(const sl_node *n, sl_status st)
{
    return sl_error_wrap(st, "node '%s' (%s)", n->name, sl_op_get(n->op)->name);
}

/* Checks infer's results: every output typed, with non-negative dims and at most SL_MAX_NUMEL
 * elements (e.g. broadcasting [n, 1] with [1, n] squares n: sizes must not overflow). */
static sl_status check_outputs(const sl_op_call *call)
{
    for (int k = 0; k < call->n_out; k++) {
        const sl_value *v = call->out[k];
        int known = v->shape.rank >= 0 && v->shape.rank <= SL_MAX_DIMS;
        for (int i = 0; known && i < v->shape.rank; i++) {
            known = v->shape.dims[i] >= 0;
        }
        if (sl_dtype_size(v->dtype) == 0 || !known) {
            return sl_error(SL_ERR_INTERNAL, "output %d was not inferred", k);
        }
        int64_t n;
        if (!sl_shape_numel_checked(&v->shape, &n)) {
            char buf[160];
            return sl_error(SL_ERR_SHAPE, "output %d of shape %s has more than %lld elements", k,
                            sl_shape_str(&v->shape, buf, sizeof buf), (long long)SL_MAX_NUMEL);
        }
    }
    return SL_OK;
}

/* Runs a node whose inputs are all known at prepare time, keeping its outputs as constants. */
static sl_status fold_node(struct sl_model *m, sl_op_call *call)
{
    for (int k = 0; k < call->n_out; k++) {
        sl_value *v = call->out[k];
        size_t bytes = sl_value_bytes(v);
        if (posix_memalign(&v->owned, ARENA_ALIGN, bytes ? bytes : 1) != 0) {
            v->owned = NULL;
            return sl_error(SL_ERR_NOMEM, "out of memory folding a constant");
        }
        v->data = v->owned;
        v->folded = 1;
    }
    void *scratch = NULL;
    if (call->scratch_bytes && posix_memalign(&scratch, ARENA_ALIGN, call->scratch_bytes) != 0) {
        return sl_error(SL_ERR_NOMEM, "out of memory folding a constant");
    }
    call->scratch = scratch;
    call->pool = NULL;
    sl_status st = sl_op_get(call->node->op)->kernel(call);
    free(scratch);
    for (int k = 0; k < call->n_out; k++) {
        call->out[k]->dynamic = 0;
    }
    (void)m;
    return st;
}

/* One buffer to place in the arena: live from node `first` to node `last` (inclusive). */
typedef struct buffer {
    size_t size, offset;
    int first, last;
    void **slot; /* where the address goes */
    size_t *capacity;
} buffer;

static int by_size_desc(const void *a, const void *b)
{
    const buffer *x = a, *y = b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

/* Greedy by size: each buffer goes at the lowest offset that no buffer live at the same time
 * overlaps. Sets the arena size; returns 0 when an offset would pass SIZE_MAX (sizes come from
 * the model: 16 live buffers of 2**61 bytes wrapped around to a plan of overlapping buffers). */
static int place_buffers(buffer *b, int n, size_t *total)
{
    qsort(b, (size_t)n, sizeof *b, by_size_desc);
    *total = 0;
    for (int i = 0; i < n; i++) {
        size_t off = 0, end = b[i].size;
        for (int again = 1; again;) {
            again = 0;
            for (int j = 0; j < i; j++) {
                if (b[j].last < b[i].first || b[i].last < b[j].first) {
                    continue;
                }
                if (off < b[j].offset + b[j].size && b[j].offset < end) {
                    off = b[j].offset + b[j].size;
                    if (__builtin_add_overflow(off, b[i].size, &end)) {
                        return 0;
                    }
                    again = 1;
                }
            }
        }
        b[i].offset = off;
        if (end > *total) {
            *total = end;
        }
    }
    return 1;
}

static sl_status plan_arena(struct sl_model *m)
{
    sl_graph *g = m->g;
    int n_buf = 0;
    buffer *bufs = calloc((size_t)(g->n_values + g->n_nodes + 1), sizeof *bufs);
    int *last_use = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    if (!bufs || !last_use) {
        free(bufs);
        free(last_use);
        return sl_error(SL_ERR_NOMEM, "model: out of memory planning memory");
    }
    for (int v = 0; v < g->n_values; v++) {
        last_use[v] = -1;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            if (g->nodes[i].in[k] >= 0) {
                last_use[g->nodes[i].in[k]] = i;
            }
        }
    }
    for (int k = 0; k < g->n_outputs; k++) {
        last_use[g->outputs[k]] = g->n_nodes;
    }
    for (int v = 0; v < g->n_values; v++) {
        sl_value *val = &g->values[v];
        if (val->kind == SL_VALUE_CONST || val->folded) {
            continue;
        }
        if (val->kind == SL_VALUE_ACT && val->producer < 0) {
            continue; /* never produced (e.g. an unused loader placeholder) */
        }
        buffer *b = &bufs[n_buf++];
        b->size = align_up(sl_value_bytes(val) ? sl_value_bytes(val) : 1);
        b->first = val->kind == SL_VALUE_INPUT ? -1 : val->producer;
        b->last = val->kind == SL_VALUE_INPUT ? g->n_nodes : last_use[v];
        if (b->last < b->first) {
            b->last = b->first; /* produced but unused: live while its producer runs */
        }
        b->slot = &val->data;
        b->capacity = &val->capacity;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        m->scratch[i] = NULL;
        if (g->nodes[i].scratch && !g->values[g->nodes[i].out[0]].folded) {
            buffer *b = &bufs[n_buf++];
            b->size = align_up(g->nodes[i].scratch);
            b->first = b->last = i;
            b->slot = &m->scratch[i];
        }
    }
    size_t total;
    int placed = place_buffers(bufs, n_buf, &total);
    free(m->arena);
    m->arena = NULL;
    m->arena_bytes = 0;
    if (!placed) {
        free(bufs);
        free(last_use);
        return sl_error(SL_ERR_NOMEM, "model: the activation arena would exceed %zu bytes",
                        (size_t)SIZE_MAX);
    }
    if (posix_memalign(&m->arena, ARENA_ALIGN, total ? total : ARENA_ALIGN) != 0) {
        m->arena = NULL;
        free(bufs);
        free(last_use);
        return sl_error(SL_ERR_NOMEM, "model: cannot allocate a %zu-byte activation arena", total);
    }
    m->arena_bytes = total;
    for (int i = 0; i < n_buf; i++) {
        *bufs[i].slot = (char *)m->arena + bufs[i].offset;
        if (bufs[i].capacity) {
            *bufs[i].capacity = bufs[i].size;
        }
    }
    free(bufs);
    free(last_use);
    return SL_OK;
}

sl_status sl_runtime_prepare(struct sl_model *m)
{
    sl_graph *g = m->g;
    m->ready = 0;
    free(m->arena);
    m->arena = NULL;
    m->arena_bytes = 0;
    for (int v = 0; v < g->n_values; v++) {
        sl_value *val = &g->values[v];
        if (val->kind == SL_VALUE_CONST) {
            continue;
        }
        free(val->owned);
        val->owned = NULL;
        val->data = NULL;
        val->folded = 0;
        val->dynamic = 0;
        val->capacity = 0;
    }
    for (int k = 0; k < g->n_inputs; k++) {
        if (sl_shape_numel(&g->values[g->inputs[k]].shape) < 0) {
            return SL_OK; /* dynamic dims: wait for resize */
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        sl_node *n = &g->nodes[i];
        const sl_op_info *info = sl_op_get(n->op);
        sl_op_call call;
        bind_call(m, i, &call);
        int dynamic = 0, known = 1;
        for (int k = 0; k < n->n_in; k++) {
            const sl_value *v = call.in[k];
            if (!v) {
                continue;
            }
            dynamic |= v->dynamic;
            known &= v->kind == SL_VALUE_CONST || v->folded;
        }
        /* a Shape needs only its input's (static) shape; communication runs every predict */
        known |= n->op == SL_OP_SHAPE && !dynamic;
        known &= !(info->flags & SL_OPF_COMM);
        sl_status st = info->infer(&call);
        if (st == SL_OK) {
            st = check_outputs(&call);
        }
        if (st != SL_OK) {
            return node_error(n, st);
        }
        n->scratch = call.scratch_bytes;
        n->dynamic = (uint8_t)dynamic;
        for (int k = 0; k < n->n_out; k++) {
            call.out[k]->dynamic |= (uint8_t)dynamic;
        }
        if (known) {
            st = fold_node(m, &call);
            if (st != SL_OK) {
                return node_error(n, st);
            }
        }
    }
    SL_TRY(plan_arena(m));
    m->ready = 1;
    return SL_OK;
}

static sl_status run_nodes(struct sl_model *m)
{
    sl_graph *g = m->g;
    for (int i = 0; i < g->n_nodes; i++) {
        sl_node *n = &g->nodes[i];
        if (g->values[n->out[0]].folded) {
            continue;
        }
        const sl_op_info *info = sl_op_get(n->op);
        sl_op_call call;
        bind_call(m, i, &call);
        call.pool = m->pool;
        call.scratch = m->scratch[i];
        sl_status st = SL_OK;
        if (n->dynamic) {
            call.running = 1;
            st = info->infer(&call);
            for (int k = 0; k < n->n_out && st == SL_OK; k++) {
                if (sl_value_bytes(call.out[k]) > call.out[k]->capacity) {
                    st = sl_error(SL_ERR_SHAPE,
                                  "output %d needs %zu bytes at run time, %zu were planned", k,
                                  sl_value_bytes(call.out[k]), call.out[k]->capacity);
                }
            }
            if (st == SL_OK && call.scratch_bytes > n->scratch) {
                st = sl_error(SL_ERR_SHAPE, "scratch of %zu bytes needed, %zu planned",
                              call.scratch_bytes, n->scratch);
            }
        }
        if (st == SL_OK) {
            st = info->kernel(&call);
        }
        if (st != SL_OK) {
            return node_error(n, st);
        }
    }
    return SL_OK;
}

/* A model's communicators, claimed for one predict (claim) or let go (!claim). */
static sl_status claim_groups(struct sl_model *m, int claim)
{
    for (int i = 0; i < m->g->n_nodes; i++) {
        if (!m->comms[i] || sl_comm_size(m->comms[i]) < 2) {
            continue;
        }
        if (!claim) {
            sl_comm_unclaim(m->comms[i], m);
            continue;
        }
        for (int j = 0; j < i && !m->comm_model[i]; j++) { /* one number per communicator */
            m->comm_model[i] = m->comms[j] == m->comms[i] ? m->comm_model[j] : 0;
        }
        sl_status st = sl_comm_claim(m->comms[i], m, &m->comm_model[i]);
        if (st != SL_OK) {
            claim_groups(m, 0);
            return node_error(&m->g->nodes[i], st);
        }
    }
    return SL_OK;
}

sl_status sl_runtime_predict(struct sl_model *m)
{
    sl_graph *g = m->g;
    if (!m->ready) {
        for (int k = 0; k < g->n_inputs; k++) {
            const sl_value *v = &g->values[g->inputs[k]];
            if (sl_shape_numel(&v->shape) < 0) {
                char buf[128];
                return sl_error(SL_ERR_STATE,
                                "input '%s' has unresolved dims %s: call resize with concrete "
                                "shapes before predict",
                                v->name, sl_shape_str(&v->shape, buf, sizeof buf));
            }
        }
        return sl_error(SL_ERR_STATE, "the model is not built");
    }
    if (m->alone >= 0) { /* a slice run alone would give a slice's results */
        const sl_node *n = &g->nodes[m->alone];
        return sl_error(SL_ERR_STATE,
                        "node '%s' (%s) needs the other ranks of a distributed job, but this "
                        "process was started alone (no shardlite launch, mpirun, Slurm or "
                        "[distributed] configuration found): start every rank with `shardlite "
                        "launch -n N` or mpirun; to run this slice alone on purpose, set "
                        "SHARDLITE_RANK=0 and SHARDLITE_WORLD_SIZE=1",
                        n->name, sl_op_get(n->op)->name);
    }
    if (!m->communicates) {
        return run_nodes(m);
    }
    SL_TRY(claim_groups(m, 1));
    sl_status st = run_nodes(m);
    claim_groups(m, 0);
    return st;
}
