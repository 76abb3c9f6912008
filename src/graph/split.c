/* Tensor-parallel splitting (Megatron layout) of a loaded model into N rank models.
 *
 * The pass propagates a layout through the graph in topological order: every activation is
 * replicated (the same on all ranks), sharded (rank r holds a contiguous slice of one axis) or
 * partial (every rank holds a full-shaped partial sum). Shards start at "origins": a MatMul
 * whose input is replicated and whose weight is a constant matrix (column-parallel: the weight
 * is cut on its output dim) and a Gather on a constant table (vocabulary-parallel: rows cut, the
 * output is partial). Known ops carry a shard through (elementwise ops, bias adds, reshapes,
 * transposes, softmax off the sharded axis, batched products of two shards); a MatMul whose
 * input is sharded on its contraction axis cuts its weight on the input dim (row-parallel) and
 * gives a partial sum. A partial value meets an AllReduce(sum) before its first use; a shard
 * reaching a graph output is gathered (AllGather on axis 0, with transposes around it).
 * Anything else ends the origin's shard: the origin is replicated and the pass starts again, so
 * the result is always the full model's. Uneven sizes: slices are whole multiples of a unit
 * (1, or a head's width once a reshape splits heads), dealt as evenly as possible; gathers need
 * equal slices, otherwise the origin is replicated.
 *
 * Rank models are built one at a time from the loaded graph: replicated weights point into its
 * file mapping, sliced ones into buffers owned by the rank's graph, freed once it is written. */
#include "graph/split.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "comm/comm.h"
#include "format/mindir/mindir.h"
#include "graph/shape_util.h"
#include "runtime/model.h"

enum { L_REPL, L_SHARD, L_PARTIAL, L_UNSET };

typedef struct layout {
    uint8_t kind;
    int8_t axis;     /* L_SHARD: the sharded axis */
    int group;       /* L_SHARD: the origin node */
    int64_t mul, div; /* L_SHARD: axis offset = origin offset * mul / div */
} layout;

enum { ROLE_REPL, ROLE_COLUMN, ROLE_ROW, ROLE_VOCAB, ROLE_WITH };
static const char *const role_names[] = {"replicated", "column", "row", "vocab", "with-layer"};

/* An origin: a node whose constant operand starts a shard. */
typedef struct group {
    int64_t full;   /* elements along the cut dim; 0: this node is no origin */
    int64_t unit;   /* slices are multiples of unit */
    uint8_t off;    /* replicated (a rule says so, or a use could not take the shard) */
    uint8_t forced; /* a rule asks for the split: gather where the shard cannot go on */
} group;

/* What an input needs before its node runs. */
enum { NEED_NONE, NEED_REDUCE, NEED_GATHER };

/* transfer results */
enum { T_OK, T_UNSUP, T_FAIL };

#define RULE_NONE (-2)
#define RULE_REPLICATE (-1)

typedef struct plan {
    sl_graph *g;
    int n;
    layout *lay;     /* [n_values] activations and inputs */
    layout *cl;      /* [n_values] constants */
    uint8_t *role;   /* [n_values] constants */
    group *grp;      /* [n_nodes] */
    uint8_t *need;   /* [n_nodes * max_in] */
    int max_in;
    layout *eff;     /* [max_in] the inputs' layouts as the node sees them */
    int *rule;       /* [n_values] RULE_NONE, RULE_REPLICATE or an axis */
    sl_shape *in_shapes; /* [n_inputs] the inputs' shapes as in the file (-1 dims kept) */
    int dynamic;     /* some input dim is -1: the rank models keep activation shapes open */
    int fail_group;  /* T_FAIL: the origin to change */
    int64_t fail_unit; /* > 0: raise its unit to a multiple of this; 0: replicate it */
} plan;

void sl_split_range(int64_t full, int64_t unit, int n, int r, int64_t *lo, int64_t *hi)
{
    int64_t units = full / unit, base = units / n, rem = units % n;
    *lo = unit * (r * base + (r < rem ? r : rem));
    *hi = *lo + unit * (base + (r < rem ? 1 : 0));
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ---- layouts ---- */
static layout repl(void)
{
    return (layout){.kind = L_REPL};
}

static layout shard(int axis, int origin, int64_t mul, int64_t div)
{
    int64_t d = gcd64(mul, div);
    return (layout){.kind = L_SHARD, .axis = (int8_t)axis, .group = origin, .mul = mul / d,
                    .div = div / d};
}

/* Where rank r's slice starts on the layout's axis (r == n: the axis's size). */
static int64_t axis_off(const plan *P, const layout *l, int r)
{
    const group *G = &P->grp[l->group];
    int64_t lo, hi;
    sl_split_range(G->full, G->unit, P->n, r < P->n ? r : P->n - 1, &lo, &hi);
    return (r < P->n ? lo : hi) * l->mul / l->div;
}

static int64_t local_size(const plan *P, const layout *l, int r)
{
    return axis_off(P, l, r + 1) - axis_off(P, l, r);
}

static int fail(plan *P, int origin, int64_t unit)
{
    P->fail_group = origin;
    P->fail_unit = unit;
    return T_FAIL;
}

/* Every slice boundary falls on a whole index of the axis; else asks for a coarser unit. */
static int check_aligned(plan *P, const layout *l)
{
    const group *G = &P->grp[l->group];
    for (int r = 0; r < P->n; r++) {
        int64_t lo, hi;
        sl_split_range(G->full, G->unit, P->n, r, &lo, &hi);
        if ((lo * l->mul) % l->div != 0) {
            return fail(P, l->group, l->div);
        }
    }
    return T_OK;
}

static int same_slices(const plan *P, const layout *a, const layout *b)
{
    for (int r = 0; r <= P->n; r++) {
        if (axis_off(P, a, r) != axis_off(P, b, r)) {
            return 0;
        }
    }
    return 1;
}

static int is_even(const plan *P, int origin)
{
    const group *G = &P->grp[origin];
    return (G->full / G->unit) % P->n == 0;
}

/* A constant used with layout `want`: the first use decides; a different later use fails.
 * A cut that a rule forbids stops the shard at this node (T_UNSUP). */
static int use_const(plan *P, int c, layout want, int role)
{
    layout *have = &P->cl[c];
    if (want.kind == L_SHARD &&
        (P->rule[c] == RULE_REPLICATE || (P->rule[c] >= 0 && P->rule[c] != want.axis))) {
        return T_UNSUP;
    }
    if (have->kind == L_UNSET) {
        *have = want;
        P->role[c] = (uint8_t)(want.kind == L_SHARD ? role : ROLE_REPL);
        return T_OK;
    }
    if (have->kind == want.kind &&
        (have->kind != L_SHARD || (have->axis == want.axis && same_slices(P, have, &want)))) {
        return T_OK;
    }
    return fail(P, have->kind == L_SHARD ? have->group : want.group, 0);
}

static const sl_value *val(const plan *P, int v)
{
    return &P->g->values[v];
}

static int is_const(const plan *P, int v)
{
    return v >= 0 && val(P, v)->kind == SL_VALUE_CONST;
}

/* ---- transfer rules: the outputs' layouts from the inputs' (eff, partial already reduced) ---- */

/* An input that takes no part in the sharding (an attribute-like constant or a broadcast
 * scalar): replicated. */
static int keep_repl(plan *P, const sl_node *n, int k)
{
    return k < n->n_in && is_const(P, n->in[k]) ? use_const(P, n->in[k], repl(), 0) : T_OK;
}

static int transfer_matmul(plan *P, int i, const layout *eff)
{
    const sl_node *n = &P->g->nodes[i];
    int ta = n->params.matmul.transpose_a, tb = n->params.matmul.transpose_b;
    int a = n->in[0], b = n->in[1];
    int ra = val(P, a)->shape.rank, rb = val(P, b)->shape.rank;
    int ro = P->g->values[n->out[0]].shape.rank;
    int ka = ra - 1 - ta, ma = ra - 2 + ta, kb = rb - 2 + tb, nb = rb - 1 - tb;
    layout *out = &P->lay[n->out[0]];
    for (int k = 2; k < n->n_in; k++) {
        if (keep_repl(P, n, k) != T_OK) {
            return T_FAIL;
        }
    }
    if (is_const(P, a)) {
        return T_UNSUP;
    }
    const layout *la = &eff[0];
    if (is_const(P, b)) {
        group *G = &P->grp[i];
        if (la->kind == L_REPL) {
            if (G->full && !G->off) {
                *out = shard(ro - 1, i, 1, 1);
                return use_const(P, b, shard(nb, i, 1, 1), ROLE_COLUMN);
            }
            return use_const(P, b, repl(), 0);
        }
        if (la->axis == ka) { /* row-parallel */
            *out = (layout){.kind = L_PARTIAL};
            return use_const(P, b, shard(kb, la->group, la->mul, la->div), ROLE_ROW);
        }
        if (la->axis == ma || la->axis < ra - 2) {
            int bo = la->axis == ma ? ro - 2 : la->axis + (ro - ra);
            /* a batch axis must not meet a batch dim of the weight */
            if (la->axis != ma && la->axis + (ro - ra) >= ro - rb) {
                return T_UNSUP;
            }
            *out = shard(bo, la->group, la->mul, la->div);
            return use_const(P, b, repl(), 0);
        }
        return T_UNSUP;
    }
    /* two activations */
    const layout *lb = &eff[1];
    if (la->kind == L_REPL && lb->kind == L_REPL) {
        *out = repl();
        return T_OK;
    }
    if (la->kind == L_SHARD && lb->kind == L_SHARD) {
        if (!same_slices(P, la, lb)) {
            return fail(P, lb->group, 0);
        }
        if (la->axis == ka && lb->axis == kb) {
            *out = (layout){.kind = L_PARTIAL};
            return T_OK;
        }
        if (la->axis < ra - 2 && lb->axis < rb - 2 &&
            la->axis + (ro - ra) == lb->axis + (ro - rb)) {
            *out = shard(la->axis + (ro - ra), la->group, la->mul, la->div);
            return T_OK;
        }
        return T_UNSUP;
    }
    if (la->kind == L_SHARD && la->axis == ma) {
        *out = shard(ro - 2, la->group, la->mul, la->div);
        return T_OK;
    }
    if (lb->kind == L_SHARD && lb->axis == nb) {
        *out = shard(ro - 1, lb->group, lb->mul, lb->div);
        return T_OK;
    }
    return T_UNSUP;
}

static int is_binary(sl_op op)
{
    switch (op) {
    case SL_OP_ADD:
    case SL_OP_SUB:
    case SL_OP_MUL:
    case SL_OP_DIV:
    case SL_OP_REAL_DIV:
    case SL_OP_MAXIMUM:
    case SL_OP_MINIMUM:
    case SL_OP_BIAS_ADD: return 1;
    default: return 0;
    }
}

/* Elementwise ops with numpy broadcasting (and BiasAdd): the shard goes through; a constant
 * with the full size on the sharded axis is cut with it (a bias). */
static int transfer_elementwise(plan *P, int i, const layout *eff)
{
    const sl_node *n = &P->g->nodes[i];
    const sl_shape *os = &P->g->values[n->out[0]].shape;
    int ro = os->rank, n_in = n->n_in;
    if (!is_binary(n->op)) {
        n_in = 1; /* unary ops: further inputs are attributes */
    }
    int where[SL_MAX_DIMS + 2]; /* the output axis input k's axis 0 aligns with */
    const layout *s = NULL;
    for (int k = 0; k < n_in; k++) {
        int v = n->in[k];
        if (v < 0) {
            continue;
        }
        where[k] = ro - val(P, v)->shape.rank;
        if (n->op == SL_OP_BIAS_ADD && k == 1) {
            where[k] = n->params.bias_add.format == 1 ? ro - 1 : 1;
        }
        if (!is_const(P, v) && eff[k].kind == L_SHARD) {
            int at = eff[k].axis + where[k];
            if (val(P, v)->shape.dims[eff[k].axis] != os->dims[at]) {
                return T_UNSUP;
            }
            if (s && (s->axis + where[s - eff] != at || !same_slices(P, s, &eff[k]))) {
                return T_UNSUP;
            }
            s = &eff[k];
        }
    }
    for (int k = n_in; k < n->n_in; k++) {
        if (keep_repl(P, n, k) != T_OK) {
            return T_FAIL;
        }
    }
    if (!s) {
        for (int k = 0; k < n_in; k++) {
            if (keep_repl(P, n, k) != T_OK) {
                return T_FAIL;
            }
        }
        P->lay[n->out[0]] = repl();
        return T_OK;
    }
    int at = s->axis + where[s - eff];
    /* check every operand before cutting any constant */
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < n_in; k++) {
            int v = n->in[k];
            if (v < 0 || (!is_const(P, v) && eff[k].kind == L_SHARD)) {
                continue;
            }
            int ax = at - where[k];
            int64_t d = ax >= 0 && ax < val(P, v)->shape.rank ? val(P, v)->shape.dims[ax] : 1;
            if (d != 1 && (d != os->dims[at] || !is_const(P, v))) {
                return T_UNSUP; /* a full replicated activation: it would need a slice */
            }
            if (pass == 1) {
                layout want = d == 1 ? repl() : shard(ax, s->group, s->mul, s->div);
                int t = use_const(P, v, want, ROLE_WITH);
                if (t != T_OK) {
                    return t;
                }
            }
        }
    }
    P->lay[n->out[0]] = shard(at, s->group, s->mul, s->div);
    return T_OK;
}

/* Reshape-like ops: the output axis with the same outer product; its slices must be whole. */
static int transfer_reshape(plan *P, int i, const layout *eff)
{
    const sl_node *n = &P->g->nodes[i];
    const layout *l = &eff[0];
    for (int k = 1; k < n->n_in; k++) {
        if (keep_repl(P, n, k) != T_OK) {
            return T_FAIL;
        }
    }
    if (n->op == SL_OP_RESHAPE && (n->n_in < 2 || !is_const(P, n->in[1]))) {
        return T_UNSUP; /* a computed target cannot be adjusted per rank */
    }
    const sl_shape *is = &val(P, n->in[0])->shape, *os = &P->g->values[n->out[0]].shape;
    int64_t outer = sl_shape_prod(is, 0, l->axis), p = 1;
    for (int b = 0; b < os->rank && p <= outer; b++) {
        if (p == outer && os->dims[b] != 1) {
            int64_t inner_in = sl_shape_prod(is, l->axis + 1, is->rank);
            int64_t inner_out = sl_shape_prod(os, b + 1, os->rank);
            if (inner_in <= 0 || inner_out <= 0) {
                return T_UNSUP;
            }
            layout o = shard(b, l->group, l->mul * inner_in, l->div * inner_out);
            if (check_aligned(P, &o) != T_OK) {
                return T_FAIL;
            }
            P->lay[n->out[0]] = o;
            return T_OK;
        }
        p *= os->dims[b];
    }
    return T_UNSUP;
}

static int transfer_transpose(plan *P, int i, const layout *eff)
{
    const sl_node *n = &P->g->nodes[i];
    if (n->n_in < 2 || !is_const(P, n->in[1]) || keep_repl(P, n, 1) != T_OK) {
        return P->fail_group >= 0 ? T_FAIL : T_UNSUP;
    }
    const sl_value *perm = val(P, n->in[1]);
    int rank = val(P, n->in[0])->shape.rank;
    for (int b = 0; b < rank && b < sl_shape_numel(&perm->shape); b++) {
        int a;
        if (sl_axis_normalize(sl_value_get_int(perm, b), rank, &a) && a == eff[0].axis) {
            P->lay[n->out[0]] = shard(b, eff[0].group, eff[0].mul, eff[0].div);
            return T_OK;
        }
    }
    return T_UNSUP;
}

static int transfer_softmax(plan *P, int i, const layout *eff)
{
    const sl_node *n = &P->g->nodes[i];
    const sl_params_axes *p = &n->params.axes;
    int rank = val(P, n->in[0])->shape.rank;
    for (int k = 0; k < (p->n_axis ? p->n_axis : 1); k++) {
        int a;
        if (!sl_axis_normalize(p->n_axis ? p->axis[k] : -1, rank, &a) || a == eff[0].axis) {
            return T_UNSUP;
        }
    }
    for (int k = 1; k < n->n_in; k++) {
        if (keep_repl(P, n, k) != T_OK) {
            return T_FAIL;
        }
    }
    P->lay[n->out[0]] = eff[0];
    return T_OK;
}

/* Gather(table, indices, axis): a constant table with replicated indices on axis 0 is
 * vocabulary-parallel (the rank's rows; others give zeros: a partial sum). */
static int transfer_gather(plan *P, int i, const layout *eff)
{
    const sl_node *n = &P->g->nodes[i];
    if (n->n_in < 3 || is_const(P, n->in[1]) || eff[1].kind != L_REPL ||
        keep_repl(P, n, 2) != T_OK) {
        return P->fail_group >= 0 ? T_FAIL : T_UNSUP;
    }
    group *G = &P->grp[i];
    if (is_const(P, n->in[0])) {
        if (!G->full || G->off) {
            return use_const(P, n->in[0], repl(), 0);
        }
        P->lay[n->out[0]] = (layout){.kind = L_PARTIAL};
        return use_const(P, n->in[0], shard(0, i, 1, 1), ROLE_VOCAB);
    }
    if (eff[0].kind != L_SHARD) {
        return T_UNSUP; /* an activation table, not sharded: the caller replicates */
    }
    int axis;
    const sl_value *x = val(P, n->in[0]);
    if (!sl_axis_normalize(sl_value_get_int(val(P, n->in[2]), 0), x->shape.rank, &axis) ||
        eff[0].axis == axis) {
        return T_UNSUP;
    }
    int shift = eff[0].axis < axis ? 0 : val(P, n->in[1])->shape.rank - 1;
    P->lay[n->out[0]] = shard(eff[0].axis + shift, eff[0].group, eff[0].mul, eff[0].div);
    return T_OK;
}

static int transfer(plan *P, int i, const layout *eff)
{
    const sl_node *n = &P->g->nodes[i];
    int any = 0;
    for (int k = 0; k < n->n_in; k++) {
        any |= n->in[k] >= 0 && !is_const(P, n->in[k]) && eff[k].kind == L_SHARD;
    }
    if (!any && n->op != SL_OP_MATMUL && n->op != SL_OP_BATCH_MATMUL && n->op != SL_OP_GATHER) {
        return T_UNSUP; /* nothing sharded: the caller replicates */
    }
    if (is_binary(n->op)) {
        return transfer_elementwise(P, i, eff);
    }
    switch (n->op) {
    case SL_OP_MATMUL:
    case SL_OP_BATCH_MATMUL: return n->n_in >= 2 ? transfer_matmul(P, i, eff) : T_UNSUP;
    case SL_OP_RELU:
    case SL_OP_GELU:
    case SL_OP_SIGMOID:
    case SL_OP_TANH:
    case SL_OP_EXP:
    case SL_OP_LOG:
    case SL_OP_SQRT:
    case SL_OP_NEG:
    case SL_OP_ABS:
    case SL_OP_CELU:
    case SL_OP_CAST: return transfer_elementwise(P, i, eff);
    case SL_OP_RESHAPE:
    case SL_OP_EXPAND_DIMS:
    case SL_OP_SQUEEZE:
    case SL_OP_FLATTEN: return transfer_reshape(P, i, eff);
    case SL_OP_TRANSPOSE: return transfer_transpose(P, i, eff);
    case SL_OP_SOFTMAX: return transfer_softmax(P, i, eff);
    case SL_OP_GATHER: return transfer_gather(P, i, eff);
    default: return T_UNSUP;
    }
}

/* Gives up on a shard that cannot go on: a rule's split is gathered when its slices are equal;
 * any other origin is replicated. */
static int end_shard(plan *P, const layout *l, uint8_t *need)
{
    if (P->grp[l->group].forced && is_even(P, l->group)) {
        *need = NEED_GATHER;
        return T_OK;
    }
    return fail(P, l->group, 0);
}

/* One pass over the graph. T_OK, or T_FAIL with the origin to change. */
static int propagate(plan *P)
{
    sl_graph *g = P->g;
    for (int v = 0; v < g->n_values; v++) {
        P->lay[v] = repl();
        P->cl[v] = (layout){.kind = L_UNSET};
        P->role[v] = ROLE_REPL;
    }
    memset(P->need, 0, (size_t)g->n_nodes * (size_t)P->max_in);
    layout *eff = P->eff;
    for (int i = 0; i < g->n_nodes; i++) {
        const sl_node *n = &g->nodes[i];
        uint8_t *need = &P->need[(size_t)i * (size_t)P->max_in];
        for (int k = 0; k < n->n_in; k++) {
            eff[k] = n->in[k] >= 0 && !is_const(P, n->in[k]) ? P->lay[n->in[k]] : repl();
            if (eff[k].kind == L_PARTIAL) {
                need[k] = NEED_REDUCE;
                eff[k] = repl();
            }
        }
        P->fail_group = -1;
        int t = transfer(P, i, eff);
        if (t == T_FAIL) {
            return T_FAIL;
        }
        if (t == T_UNSUP) {
            for (int k = 0; k < n->n_in; k++) {
                if (n->in[k] >= 0 && !is_const(P, n->in[k]) && eff[k].kind == L_SHARD &&
                    end_shard(P, &eff[k], &need[k]) != T_OK) {
                    return T_FAIL;
                }
                if (keep_repl(P, n, k) != T_OK) {
                    return T_FAIL;
                }
            }
            for (int k = 0; k < n->n_out; k++) {
                P->lay[n->out[k]] = repl();
            }
        }
    }
    for (int k = 0; k < g->n_outputs; k++) {
        const layout *l = &P->lay[g->outputs[k]];
        if (l->kind == L_SHARD && !is_even(P, l->group)) {
            return fail(P, l->group, 0);
        }
    }
    return T_OK;
}

/* A weight's name without the "<graph>:" prefix of parameters. */
/* Finds the origins, then propagates until no origin has to change. */
static sl_status make_plan(plan *P)
{
    sl_graph *g = P->g;
    for (int i = 0; i < g->n_nodes; i++) {
        const sl_node *n = &g->nodes[i];
        group *G = &P->grp[i];
        int w = n->n_in >= 2 ? n->in[n->op == SL_OP_GATHER ? 0 : 1] : -1;
        int axis = -1;
        if ((n->op == SL_OP_MATMUL || n->op == SL_OP_BATCH_MATMUL) && is_const(P, w) &&
            !is_const(P, n->in[0]) && val(P, w)->shape.rank == 2) {
            axis = n->params.matmul.transpose_b ? 0 : 1;
        } else if (n->op == SL_OP_GATHER && n->n_in >= 3 && is_const(P, w) &&
                   val(P, w)->shape.rank >= 1 && is_const(P, n->in[2]) &&
                   sl_shape_numel(&val(P, n->in[2])->shape) == 1 &&
                   sl_value_get_int(val(P, n->in[2]), 0) == 0 &&
                   n->params.gather.batch_dims == 0) {
            axis = 0;
        }
        if (axis < 0) {
            continue;
        }
        G->full = val(P, w)->shape.dims[axis];
        G->unit = 1;
        G->forced = P->rule[w] == axis;
        G->off = G->full < P->n || (P->rule[w] != RULE_NONE && P->rule[w] != axis);
    }
    for (int iter = 0;; iter++) {
        if (propagate(P) == T_OK) {
            break;
        }
        group *G = &P->grp[P->fail_group];
        if (P->fail_unit > 0 && !G->off) {
            int64_t u = G->unit / gcd64(G->unit, P->fail_unit) * P->fail_unit;
            if (u != G->unit && G->full % u == 0 && G->full / u >= P->n) {
                G->unit = u;
                continue;
            }
        }
        if (G->off) {
            return sl_error(SL_ERR_INTERNAL, "split: no progress at node '%s'",
                            g->nodes[P->fail_group].name);
        }
        G->off = 1;
    }
    /* every rule is honoured, or the split says why not */
    for (int v = 0; v < g->n_values; v++) {
        if (P->rule[v] >= 0 && (P->cl[v].kind != L_SHARD || P->cl[v].axis != P->rule[v])) {
            return sl_error(SL_ERR_UNSUPPORTED,
                            "split: weight '%s' cannot be split on axis %d: no consumer of it "
                            "takes that split (supported: linear layers, attention, embeddings "
                            "and what follows them); replicate it or choose another axis",
                            sl_graph_weight_key(g, val(P, v)), P->rule[v]);
        }
    }
    return SL_OK;
}

/* ---- building one rank's graph ---- */
typedef struct emit {
    const plan *P;
    int r;
    sl_graph *R;
    int *reduced;  /* [n_values] the AllReduce'd value in R, or -1 */
    int *gathered; /* [n_values] the gathered value in R, or -1 */
    size_t all_reduces, all_gathers;
} emit;

static sl_shape local_shape(const plan *P, int v, int r)
{
    const sl_value *x = val(P, v);
    sl_shape s = x->shape;
    const layout *l = x->kind == SL_VALUE_CONST ? &P->cl[v] : &P->lay[v];
    if (l->kind == L_SHARD) {
        s.dims[l->axis] = local_size(P, l, r);
    }
    return s;
}

/* Adds a new value to R: a node's output, or a constant owning `data` (taken over). */
static sl_status add_value(emit *E, const char *base, const char *suffix, sl_dtype dtype,
                           const sl_shape *shape, void *data, int *out)
{
    char name[256];
    snprintf(name, sizeof name, "%.200s%s", base, suffix);
    sl_status st = sl_graph_add_value(E->R, name, dtype, shape,
                                      data ? SL_VALUE_CONST : SL_VALUE_ACT, out);
    if (st != SL_OK) {
        free(data);
        return st;
    }
    sl_value *v = &E->R->values[*out];
    v->data = v->owned = data;
    v->dynamic = (uint8_t)(!data && E->P->dynamic);
    return SL_OK;
}

static sl_status add_int_const(emit *E, const char *base, const char *suffix, sl_dtype dtype,
                               const int64_t *vals, int count, int rank, int *out)
{
    size_t esz = sl_dtype_size(dtype);
    void *d = calloc((size_t)(count ? count : 1), esz);
    if (!d) {
        return sl_error(SL_ERR_NOMEM, "split: out of memory");
    }
    for (int i = 0; i < count; i++) {
        if (dtype == SL_DTYPE_INT32) {
            ((int32_t *)d)[i] = (int32_t)vals[i];
        } else {
            ((int64_t *)d)[i] = vals[i];
        }
    }
    sl_shape s = {.rank = rank, .dims = {count}};
    return add_value(E, base, suffix, dtype, &s, d, out);
}

static sl_status add_node(emit *E, sl_op op, const char *base, const char *suffix, const int *in,
                          int n_in, int out, const sl_params *p)
{
    char name[256];
    snprintf(name, sizeof name, "%.200s%s", base, suffix);
    return sl_graph_add_node(E->R, op, name, in, n_in, &out, 1, p, NULL);
}

static sl_status comm_node(emit *E, sl_op op, int src, const sl_shape *shape, const char *suffix,
                           int *out)
{
    const sl_value *x = &E->R->values[src];
    char base[256];
    snprintf(base, sizeof base, "%s", x->name);
    sl_dtype dt = x->dtype;
    SL_TRY(add_value(E, base, suffix, dt, shape, NULL, out));
    sl_params p;
    memset(&p, 0, sizeof p);
    p.coll.op = SL_REDUCE_SUM;
    p.coll.rank_size = E->P->n;
    *(op == SL_OP_ALL_REDUCE ? &E->all_reduces : &E->all_gathers) += 1;
    return add_node(E, op, base, suffix, &src, 1, *out, &p);
}

static sl_status transpose_node(emit *E, int src, const int64_t *perm, int rank, int *out)
{
    const sl_value *x = &E->R->values[src];
    char base[256];
    snprintf(base, sizeof base, "%s", x->name);
    sl_shape s = {.rank = rank};
    for (int i = 0; i < rank; i++) {
        s.dims[i] = x->shape.dims[perm[i]];
    }
    sl_dtype dt = x->dtype;
    int in[2] = {src, -1};
    SL_TRY(add_int_const(E, base, "_perm", SL_DTYPE_INT64, perm, rank, 1, &in[1]));
    SL_TRY(add_value(E, base, "_t", dt, &s, NULL, out));
    sl_params p;
    memset(&p, 0, sizeof p);
    return add_node(E, SL_OP_TRANSPOSE, base, "_transpose", in, 2, *out, &p);
}

/* The replicated form of value v (index in G and R): summed or gathered once, then shared. */
static sl_status materialize(emit *E, int v, int *out)
{
    const plan *P = E->P;
    const layout *l = &P->lay[v];
    int *cache = l->kind == L_PARTIAL ? &E->reduced[v] : &E->gathered[v];
    if (*cache >= 0) {
        *out = *cache;
        return SL_OK;
    }
    sl_shape full = val(P, v)->shape;
    if (l->kind == L_PARTIAL) {
        SL_TRY(comm_node(E, SL_OP_ALL_REDUCE, v, &full, "_all_reduce", cache));
    } else if (l->axis == 0) {
        SL_TRY(comm_node(E, SL_OP_ALL_GATHER, v, &full, "_all_gather", cache));
    } else {
        /* AllGather joins axis 0: bring the sharded axis there and back */
        int rank = full.rank, a = l->axis, t, gathered;
        int64_t perm[SL_MAX_DIMS], inv[SL_MAX_DIMS];
        for (int i = 0; i < rank; i++) {
            perm[i] = i == 0 ? a : i <= a ? i - 1 : i;
            inv[i] = i < a ? i + 1 : i == a ? 0 : i;
        }
        SL_TRY(transpose_node(E, v, perm, rank, &t));
        sl_shape gs = E->R->values[t].shape;
        gs.dims[0] = full.dims[a];
        SL_TRY(comm_node(E, SL_OP_ALL_GATHER, t, &gs, "_all_gather", &gathered));
        SL_TRY(transpose_node(E, gathered, inv, rank, cache));
    }
    *out = *cache;
    return SL_OK;
}

/* Rank r's slice of constant v along the plan's axis, into an owned buffer. */
static sl_status cut_const(emit *E, int v, sl_value *dst)
{
    const plan *P = E->P;
    const sl_value *x = val(P, v);
    const layout *l = &P->cl[v];
    int64_t lo = axis_off(P, l, E->r), hi = axis_off(P, l, E->r + 1);
    int64_t dim = x->shape.dims[l->axis];
    int64_t outer = sl_shape_prod(&x->shape, 0, l->axis);
    size_t inner = (size_t)sl_shape_prod(&x->shape, l->axis + 1, x->shape.rank) *
                   sl_dtype_size(x->dtype);
    size_t row = (size_t)(hi - lo) * inner;
    char *d = malloc(row * (size_t)outer + 1);
    if (!d) {
        return sl_error(SL_ERR_NOMEM, "split: out of memory cutting '%s'", x->name);
    }
    for (int64_t o = 0; o < outer; o++) {
        memcpy(d + (size_t)o * row, (const char *)x->data + ((size_t)(o * dim + lo)) * inner, row);
    }
    dst->data = dst->owned = d;
    return SL_OK;
}

/* R starts with a copy of every value of G (same indices), at rank r's shapes. */
static sl_status copy_values(emit *E)
{
    const plan *P = E->P;
    for (int v = 0; v < P->g->n_values; v++) {
        const sl_value *x = val(P, v);
        sl_shape s = local_shape(P, v, E->r);
        int idx;
        SL_TRY(sl_graph_add_value(E->R, x->name, x->dtype, &s, x->kind, &idx));
        sl_value *y = &E->R->values[idx];
        if (x->kind == SL_VALUE_CONST) {
            if (P->cl[v].kind == L_SHARD) {
                SL_TRY(cut_const(E, v, y));
            } else {
                y->data = x->data; /* the file mapping (or the loader's copy) */
            }
        } else if (x->kind == SL_VALUE_ACT) {
            y->dynamic = (uint8_t)P->dynamic;
        }
    }
    for (int k = 0; k < P->g->n_inputs; k++) {
        E->R->values[P->g->inputs[k]].shape = P->in_shapes[k];
    }
    return SL_OK;
}

/* The input a node reads in R: v itself, its replicated form, or a rank-adjusted constant. */
static sl_status node_input(emit *E, int i, int k, int *out)
{
    const plan *P = E->P;
    const sl_node *n = &P->g->nodes[i];
    int v = n->in[k];
    *out = v;
    if (v < 0) {
        return SL_OK;
    }
    uint8_t need = P->need[(size_t)i * (size_t)P->max_in + (size_t)k];
    if (need != NEED_NONE) {
        return materialize(E, v, out);
    }
    const layout *o = &P->lay[n->out[0]];
    if (n->op == SL_OP_RESHAPE && k == 1 && o->kind == L_SHARD) {
        /* the target names the full size on the sharded axis: the rank's size instead */
        const sl_value *t = val(P, v);
        int64_t vals[SL_MAX_DIMS];
        int count = (int)sl_shape_numel(&t->shape);
        if (count < 0 || count > SL_MAX_DIMS) {
            return sl_error(SL_ERR_SHAPE, "split: node '%s' has a %d-item target", n->name, count);
        }
        for (int j = 0; j < count; j++) {
            vals[j] = sl_value_get_int(t, j);
        }
        if (o->axis < count && vals[o->axis] != -1) {
            vals[o->axis] = local_size(P, o, E->r);
        }
        return add_int_const(E, t->name, "_rank", t->dtype, vals, count, t->shape.rank, out);
    }
    if (n->op == SL_OP_GATHER && k == 1 && P->cl[n->in[0]].kind == L_SHARD &&
        P->cl[n->in[0]].axis == 0 && P->grp[i].full && !P->grp[i].off) {
        /* vocabulary-parallel: ids relative to the rank's first row; others fall outside */
        const sl_value *ids = val(P, v);
        int64_t first = axis_off(P, &P->cl[n->in[0]], E->r);
        int c, shifted;
        sl_shape s = E->R->values[v].shape; /* copied: adding values moves them */
        SL_TRY(add_int_const(E, ids->name, "_first_row", ids->dtype, &first, 1, 0, &c));
        SL_TRY(add_value(E, ids->name, "_local", ids->dtype, &s, NULL, &shifted));
        sl_params p;
        memset(&p, 0, sizeof p);
        int in[2] = {v, c};
        SL_TRY(add_node(E, SL_OP_SUB, ids->name, "_local", in, 2, shifted, &p));
        *out = shifted;
    }
    return SL_OK;
}

static sl_status build_rank(emit *E)
{
    const plan *P = E->P;
    const sl_graph *g = P->g;
    sl_graph *R = E->R;
    SL_TRY(copy_values(E));
    int *in = malloc(sizeof *in * (size_t)(P->max_in + 1));
    if (!in) {
        return sl_error(SL_ERR_NOMEM, "split: out of memory");
    }
    sl_status st = SL_OK;
    for (int i = 0; i < g->n_nodes && st == SL_OK; i++) {
        const sl_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in && st == SL_OK; k++) {
            st = node_input(E, i, k, &in[k]);
        }
        if (st == SL_OK) {
            st = sl_graph_add_node(R, n->op, n->name, in, n->n_in, n->out, n->n_out, &n->params,
                                   NULL);
        }
    }
    free(in);
    SL_TRY(st);
    R->inputs = malloc(sizeof(int) * (size_t)(g->n_inputs + 1));
    R->outputs = malloc(sizeof(int) * (size_t)(g->n_outputs + 1));
    if (!R->inputs || !R->outputs) {
        return sl_error(SL_ERR_NOMEM, "split: out of memory");
    }
    memcpy(R->inputs, g->inputs, sizeof(int) * (size_t)g->n_inputs);
    R->n_inputs = g->n_inputs;
    for (int k = 0; k < g->n_outputs; k++) {
        int v = g->outputs[k];
        R->outputs[k] = v;
        if (P->lay[v].kind != L_REPL) {
            SL_TRY(materialize(E, v, &R->outputs[k]));
        }
        R->n_outputs = k + 1;
    }
    if (g->name && !(R->name = strdup(g->name))) {
        return sl_error(SL_ERR_NOMEM, "split: out of memory");
    }
    return SL_OK;
}

/* ---- the report ---- */
typedef struct split_weight {
    char *name;
    int axis;
    int role;
    size_t bytes;
    size_t *rank_bytes; /* [n] */
} split_weight;

struct sl_split_report {
    int n;
    char **files; /* [n] */
    size_t all_reduces, all_gathers;
    split_weight *w;
    size_t n_w;
};

void sl_split_report_destroy(sl_split_report *r)
{
    if (!r) {
        return;
    }
    for (int i = 0; r->files && i < r->n; i++) {
        free(r->files[i]);
    }
    for (size_t i = 0; i < r->n_w; i++) {
        free(r->w[i].name);
        free(r->w[i].rank_bytes);
    }
    free(r->files);
    free(r->w);
    free(r);
}

int sl_split_report_ranks(const sl_split_report *r)
{
    return r ? r->n : 0;
}

const char *sl_split_report_file(const sl_split_report *r, int rank)
{
    return r && rank >= 0 && rank < r->n ? r->files[rank] : NULL;
}

size_t sl_split_report_all_reduces(const sl_split_report *r)
{
    return r ? r->all_reduces : 0;
}

size_t sl_split_report_all_gathers(const sl_split_report *r)
{
    return r ? r->all_gathers : 0;
}

size_t sl_split_report_weight_count(const sl_split_report *r)
{
    return r ? r->n_w : 0;
}

sl_status sl_split_report_weight(const sl_split_report *r, size_t i, const char **name,
                                 int *axis, const char **role, size_t *bytes)
{
    if (!r || i >= r->n_w) {
        return sl_error(SL_ERR_INVALID_ARG, "split report: no weight %zu", i);
    }
    if (name) {
        *name = r->w[i].name;
    }
    if (axis) {
        *axis = r->w[i].axis;
    }
    if (role) {
        *role = role_names[r->w[i].role];
    }
    if (bytes) {
        *bytes = r->w[i].bytes;
    }
    return SL_OK;
}

size_t sl_split_report_weight_rank_bytes(const sl_split_report *r, size_t i, int rank)
{
    return r && i < r->n_w && rank >= 0 && rank < r->n ? r->w[i].rank_bytes[rank] : 0;
}

/* Constants listed in the report: tensors, shape tuples left out. */
static int is_weight(const sl_value *v)
{
    int64_t numel = sl_shape_numel(&v->shape);
    return v->kind == SL_VALUE_CONST && v->shape.rank >= 1 && numel > 0 &&
           !(sl_dtype_is_int(v->dtype) && numel <= SL_MAX_DIMS * 8);
}

static sl_status make_report(const plan *P, sl_split_report *rep)
{
    const sl_graph *g = P->g;
    rep->w = calloc((size_t)g->n_values + 1, sizeof *rep->w);
    if (!rep->w) {
        return sl_error(SL_ERR_NOMEM, "split: out of memory");
    }
    for (int v = 0; v < g->n_values; v++) {
        const sl_value *x = val(P, v);
        if (!is_weight(x)) {
            continue;
        }
        split_weight *w = &rep->w[rep->n_w++];
        w->name = strdup(sl_graph_weight_key(g, x));
        w->rank_bytes = calloc((size_t)P->n, sizeof *w->rank_bytes);
        if (!w->name || !w->rank_bytes) {
            return sl_error(SL_ERR_NOMEM, "split: out of memory");
        }
        int cut = P->cl[v].kind == L_SHARD;
        w->axis = cut ? P->cl[v].axis : -1;
        w->role = cut ? P->role[v] : ROLE_REPL;
        w->bytes = sl_value_bytes(x);
        for (int r = 0; r < P->n; r++) {
            sl_shape s = local_shape(P, v, r);
            w->rank_bytes[r] = (size_t)sl_shape_numel(&s) * sl_dtype_size(x->dtype);
        }
    }
    return SL_OK;
}

/* ---- driver ---- */
#define PROGRESS_MIN_BYTES ((size_t)256 << 20)

static void progress_bar(size_t done, size_t total, int r, int n)
{
    int width = 40, fill = total ? (int)((double)done / (double)total * width) : width;
    fprintf(stderr, "\rsplit [%.*s%*s] %3d%%  rank %d/%d", fill,
            "########################################", width - fill, "",
            total ? (int)((double)done * 100.0 / (double)total) : 100, r, n);
    if (done >= total) {
        fputc('\n', stderr);
    }
    fflush(stderr);
}

static sl_status read_rules(plan *P, const char *const *names, const int *axes, size_t n_rules)
{
    sl_graph *g = P->g;
    for (int v = 0; v < g->n_values; v++) {
        P->rule[v] = RULE_NONE;
    }
    for (size_t i = 0; i < n_rules; i++) {
        if (!names[i] || axes[i] < RULE_REPLICATE) {
            return sl_error(SL_ERR_INVALID_ARG, "split: rule %zu has no name or axis %d", i,
                            axes[i]);
        }
        int found = sl_graph_find_weight(g, names[i]);
        if (found < 0) {
            return sl_error(SL_ERR_INVALID_ARG, "split: the strategy names weight '%s', which "
                            "the model does not have", names[i]);
        }
        if (axes[i] >= val(P, found)->shape.rank) {
            return sl_error(SL_ERR_INVALID_ARG, "split: weight '%s' has %d dims, the strategy "
                            "splits axis %d", names[i], val(P, found)->shape.rank, axes[i]);
        }
        P->rule[found] = axes[i];
    }
    return SL_OK;
}

/* Infers every activation's shape on the loaded graph (-1 input dims taken as 1). */
static sl_status infer_shapes(plan *P, struct sl_model *m)
{
    sl_graph *g = P->g;
    for (int i = 0; i < g->n_nodes; i++) {
        if (sl_op_get(g->nodes[i].op)->flags & SL_OPF_COMM) {
            return sl_error(SL_ERR_UNSUPPORTED, "split: the model already communicates (node "
                            "'%s' is a %s): split the single-device model",
                            g->nodes[i].name, sl_op_get(g->nodes[i].op)->name);
        }
    }
    for (int k = 0; k < g->n_inputs; k++) {
        sl_shape *s = &g->values[g->inputs[k]].shape;
        P->in_shapes[k] = *s;
        for (int d = 0; d < s->rank; d++) {
            if (s->dims[d] < 0) {
                s->dims[d] = 1;
                P->dynamic = 1;
            }
        }
    }
    return sl_runtime_prepare(m);
}

static sl_status write_ranks(plan *P, const char *path, const char *outdir, int progress,
                             sl_split_report *rep)
{
    const char *slash = strrchr(path, '/');
    const char *file = slash ? slash + 1 : path;
    size_t stem = strlen(file);
    if (stem > 7 && strcmp(file + stem - 7, ".mindir") == 0) {
        stem -= 7;
    }
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        return sl_error(SL_ERR_IO, "split: cannot create '%s': %s", outdir, strerror(errno));
    }
    size_t total = 0, done = 0;
    for (size_t i = 0; i < rep->n_w; i++) {
        for (int r = 0; r < P->n; r++) {
            total += rep->w[i].rank_bytes[r];
        }
    }
    progress = progress && total >= PROGRESS_MIN_BYTES;
    int *cache = malloc(sizeof(int) * 2 * ((size_t)P->g->n_values + 1));
    if (!cache) {
        return sl_error(SL_ERR_NOMEM, "split: out of memory");
    }
    sl_status st = SL_OK;
    for (int r = 0; r < P->n && st == SL_OK; r++) {
        if (asprintf(&rep->files[r], "%s/%.*s%d.mindir", outdir, (int)stem, file, r) < 0) {
            rep->files[r] = NULL;
            st = sl_error(SL_ERR_NOMEM, "split: out of memory");
            break;
        }
        emit E = {.P = P, .r = r, .reduced = cache, .gathered = cache + P->g->n_values + 1};
        for (int v = 0; v < 2 * (P->g->n_values + 1); v++) {
            cache[v] = -1;
        }
        st = sl_graph_create(&E.R);
        if (st == SL_OK) {
            st = build_rank(&E);
        }
        if (st == SL_OK) {
            st = sl_mindir_save(E.R, rep->files[r], 1);
        }
        sl_graph_destroy(E.R);
        rep->all_reduces = E.all_reduces;
        rep->all_gathers = E.all_gathers;
        for (size_t i = 0; i < rep->n_w; i++) {
            done += rep->w[i].rank_bytes[r];
        }
        if (progress && st == SL_OK) {
            progress_bar(done, total, r + 1, P->n);
        }
    }
    free(cache);
    return st;
}

sl_status sl_split_model(const char *path, int n, const char *outdir,
                         const char *const *rule_names, const int *rule_axes, size_t n_rules,
                         int progress, sl_split_report **out)
{
    if (!path || !outdir || !out || n < 1 || n > SL_GROUP_MAX ||
        (n_rules && (!rule_names || !rule_axes))) {
        return sl_error(SL_ERR_INVALID_ARG, "sl_split_model: path, outdir, out or rules missing, "
                        "or %d ranks (1 to %d)", n, SL_GROUP_MAX);
    }
    *out = NULL;
    sl_graph *g;
    SL_TRY(sl_mindir_load(path, &g));
    struct sl_model *m;
    SL_TRY(sl_runtime_create(g, 1, &m));
    plan P = {.g = g, .n = n};
    int max_in = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        max_in = g->nodes[i].n_in > max_in ? g->nodes[i].n_in : max_in;
    }
    P.max_in = max_in;
    size_t nv = (size_t)g->n_values + 1;
    P.lay = malloc(sizeof *P.lay * nv);
    P.cl = malloc(sizeof *P.cl * nv);
    P.role = malloc(nv);
    P.rule = malloc(sizeof *P.rule * nv);
    P.grp = calloc((size_t)g->n_nodes + 1, sizeof *P.grp);
    P.need = malloc((size_t)(g->n_nodes + 1) * (size_t)max_in);
    P.eff = malloc(sizeof *P.eff * (size_t)max_in);
    P.in_shapes = malloc(sizeof *P.in_shapes * ((size_t)g->n_inputs + 1));
    sl_split_report *rep = calloc(1, sizeof *rep);
    sl_status st = SL_OK;
    if (!P.lay || !P.cl || !P.role || !P.rule || !P.grp || !P.need || !P.eff || !P.in_shapes ||
        !rep ||
        !(rep->files = calloc((size_t)n, sizeof *rep->files))) {
        st = sl_error(SL_ERR_NOMEM, "split: out of memory");
    }
    if (rep) {
        rep->n = n;
    }
    if (st == SL_OK) {
        st = read_rules(&P, rule_names, rule_axes, n_rules);
    }
    if (st == SL_OK) {
        st = infer_shapes(&P, m);
    }
    if (st == SL_OK) {
        st = make_plan(&P);
    }
    if (st == SL_OK) {
        st = make_report(&P, rep);
    }
    if (st == SL_OK) {
        st = write_ranks(&P, path, outdir, progress, rep);
    }
    free(P.lay);
    free(P.cl);
    free(P.role);
    free(P.rule);
    free(P.grp);
    free(P.need);
    free(P.eff);
    free(P.in_shapes);
    sl_runtime_destroy(m);
    if (st != SL_OK) {
        sl_split_report_destroy(rep);
        return sl_error_wrap(st, "splitting '%s' for %d ranks", path, n);
    }
    *out = rep;
    return SL_OK;
}
