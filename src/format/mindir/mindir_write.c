/* Graph IR -> MindIR, in the encoding MindSpore 2.0-2.2 export (mind_ir_version 1): "REF::" nodes
 * with one PrimitiveProto each, attributes on the primitives, weights as GraphProto parameters
 * (inline or in an external data file), small shape-like constants as Constant nodes.
 * The model goes to "<path>.tmp" (and the data to "data_0.tmp") and is renamed into place, so a
 * failed save never leaves a truncated model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/mindir/mindir.h"
#include "format/pb/pb.h"
#include "graph/shape_util.h"

/* AttributeProto.type values written here. */
enum {
    AT_FLOAT = 1, AT_INT32 = 6, AT_INT64 = 7, AT_STRING = 8, AT_BOOL = 9, AT_DOUBLE = 11,
    AT_TENSORS = 19, AT_TUPLE = 20, AT_NONE = 25, AT_SCALAR = 39,
};
enum { PRIM_TYPE_PRIMITIVE = 1 };

#define MAX_CONST_ITEMS 64 /* larger constants become parameters */
#define DATA_ALIGN 64      /* external data: header size and tensor alignment */
#define MAX_INLINE_BYTES 0x7fffffffu /* protobuf's limit on one message */

/* How a value is written. */
typedef enum form {
    FORM_SKIP,   /* not referenced */
    FORM_NAMED,  /* a graph input or a node output */
    FORM_SCALAR, /* a constant, as a Constant node holding a scalar */
    FORM_TUPLE,  /* a constant, as a Constant node holding a tuple of scalars */
    FORM_PARAM,  /* a constant, as a GraphProto.parameter */
} form;

/* The abstract ("shape" attribute, value info) of a value. */
typedef enum abs_kind { ABS_TENSOR, ABS_SCALAR, ABS_SEQ } abs_kind;

/* Uses of a value (bits). */
enum { USED = 1, USED_AS_TENSOR = 2, USED_NOT_AS_TUPLE = 4 };

/* The model-wide namespace: every name written, owned here. */
typedef struct name_set {
    char **keys;
    size_t cap, count;
} name_set;

typedef struct writer {
    const sl_graph *g;
    const char *path;
    char *model_tmp, *vars_dir, *location, *data_path, *data_tmp;
    name_set names;
    const char **vname; /* [n_values] the value's name in the file */
    uint8_t *form;      /* [n_values] */
    uint8_t *abs;       /* [n_values] */
    const char *graph_name, *none_name;
    int counter;        /* numbers primitives: "<op>:<counter>" */
    sl_pbw model;       /* ModelProto fields except the graph (primitives go here) */
    sl_pbw graph;       /* GraphProto body */
    FILE *data;         /* external data file, while writing */
    uint64_t data_len;
    int made_dir;
} writer;

/* ---- names ---- */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

static int set_has(const name_set *s, const char *k)
{
    if (!s->cap) {
        return 0;
    }
    for (size_t i = hash_str(k) & (s->cap - 1); s->keys[i]; i = (i + 1) & (s->cap - 1)) {
        if (strcmp(s->keys[i], k) == 0) {
            return 1;
        }
    }
    return 0;
}

static void set_insert(name_set *s, char *k)
{
    size_t i = hash_str(k) & (s->cap - 1);
    while (s->keys[i]) {
        i = (i + 1) & (s->cap - 1);
    }
    s->keys[i] = k;
    s->count++;
}

/* Takes ownership of k (freed on failure). */
static sl_status set_add(name_set *s, char *k)
{
    if ((s->count + 1) * 2 > s->cap) {
        name_set n = {calloc(s->cap ? s->cap * 2 : 256, sizeof *n.keys),
                      s->cap ? s->cap * 2 : 256, 0};
        if (!n.keys) {
            free(k);
            return sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (s->keys[i]) {
                set_insert(&n, s->keys[i]);
            }
        }
        free(s->keys);
        *s = n;
    }
    set_insert(s, k);
    return SL_OK;
}

static void set_free(name_set *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->keys[i]);
    }
    free(s->keys);
}

/* Reserves base, or base_1, base_2... when taken; *out stays valid while the writer lives. */
static sl_status unique_name(writer *W, const char *base, const char **out)
{
    size_t n = strlen(base) + 24;
    char *s = malloc(n);
    if (!s) {
        return sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
    }
    snprintf(s, n, "%s", base);
    for (unsigned k = 1; set_has(&W->names, s); k++) {
        snprintf(s, n, "%s_%u", base, k);
    }
    SL_TRY(set_add(&W->names, s));
    *out = s;
    return SL_OK;
}

/* ---- analysis: how each value is written ---- */

/* Ops on MindSpore scalars (Python numbers). */
static int scalar_op(sl_op op)
{
    return op == SL_OP_SCALAR_ADD || op == SL_OP_SCALAR_SUB || op == SL_OP_SCALAR_MUL ||
           op == SL_OP_SCALAR_DIV || op == SL_OP_SCALAR_FLOOR_DIV;
}

/* Inputs that MindSpore takes as scalars, not tensors. */
static int scalar_input(sl_op op, int k)
{
    if (scalar_op(op)) {
        return 1;
    }
    switch (op) {
    case SL_OP_SEQ_GET_ITEM:
    case SL_OP_CELU: return k == 1;
    case SL_OP_GATHER: return k == 2;
    default: return 0;
    }
}

/* Inputs that MindSpore takes as tuples of numbers (shapes, permutations, slices, scales). */
static int tuple_input(sl_op op, int k)
{
    switch (op) {
    case SL_OP_RESHAPE:
    case SL_OP_TRANSPOSE: return k == 1;
    case SL_OP_STRIDED_SLICE: return k >= 1 && k <= 3;
    case SL_OP_UPSAMPLE_NEAREST3D: return k == 1 || k == 2;
    default: return 0;
    }
}

/* dtypes whose scalar Constant reads back with the same dtype */
static int scalar_dtype(sl_dtype d)
{
    return d == SL_DTYPE_FLOAT32 || d == SL_DTYPE_FLOAT64 || d == SL_DTYPE_INT64 ||
           d == SL_DTYPE_INT32 || d == SL_DTYPE_BOOL;
}

static abs_kind produced_kind(const sl_graph *g, const sl_value *v)
{
    sl_op op = g->nodes[v->producer].op;
    if (scalar_op(op) || op == SL_OP_SEQ_GET_ITEM) {
        return ABS_SCALAR;
    }
    return op == SL_OP_SHAPE ? ABS_SEQ : ABS_TENSOR;
}

static sl_status classify(writer *W)
{
    const sl_graph *g = W->g;
    uint8_t *use = calloc((size_t)g->n_values + 1, 1);
    if (!use) {
        return sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const sl_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] >= 0) {
                use[n->in[k]] |= USED | (scalar_input(n->op, k) ? 0 : USED_AS_TENSOR) |
                                 (tuple_input(n->op, k) ? 0 : USED_NOT_AS_TUPLE);
            }
        }
    }
    for (int k = 0; k < g->n_outputs; k++) {
        use[g->outputs[k]] |= USED | USED_AS_TENSOR | USED_NOT_AS_TUPLE;
    }
    sl_status st = SL_OK;
    uint64_t inline_bytes = 0;
    for (int v = 0; v < g->n_values && st == SL_OK; v++) {
        const sl_value *val = &g->values[v];
        int scalar = val->shape.rank == 0 && scalar_dtype(val->dtype) && (use[v] & USED) &&
                     !(use[v] & USED_AS_TENSOR);
        W->abs[v] = scalar ? ABS_SCALAR : ABS_TENSOR;
        if (val->kind == SL_VALUE_INPUT) {
            W->form[v] = FORM_NAMED;
        } else if (val->kind == SL_VALUE_ACT) {
            if (val->producer >= 0) {
                W->form[v] = FORM_NAMED;
                W->abs[v] = produced_kind(g, val);
            } else if (use[v]) {
                st = sl_error(SL_ERR_FORMAT, "mindir save: value '%s' is used but no node makes it",
                              val->name);
            }
        } else if (!use[v]) {
            W->form[v] = FORM_SKIP;
        } else if (scalar) {
            W->form[v] = FORM_SCALAR;
        } else if (val->shape.rank == 1 && val->shape.dims[0] >= 0 &&
                   val->shape.dims[0] <= MAX_CONST_ITEMS && !(use[v] & USED_NOT_AS_TUPLE) &&
                   (val->dtype == SL_DTYPE_INT64 || val->dtype == SL_DTYPE_FLOAT32)) {
            W->form[v] = FORM_TUPLE;
        } else {
            W->form[v] = FORM_PARAM;
            inline_bytes += sl_value_bytes(val);
        }
    }
    free(use);
    if (st == SL_OK && !W->location && inline_bytes > MAX_INLINE_BYTES) {
        st = sl_error(SL_ERR_UNSUPPORTED,
                      "mindir save '%s': %llu bytes of weights do not fit in one protobuf "
                      "file (2 GiB); save with external data",
                      W->path, (unsigned long long)inline_bytes);
    }
    return st;
}

/* Names every written value; inputs keep theirs first, parameters are "<graph>:<key>". */
static sl_status assign_names(writer *W)
{
    const sl_graph *g = W->g;
    /* MindSpore names inputs "<graph>:<name>": reuse that graph name when there is one */
    const char *first = g->n_inputs > 0 ? g->values[g->inputs[0]].name : "";
    const char *colon = strrchr(first, ':');
    char *gname = colon && colon > first ? strndup(first, (size_t)(colon - first))
                                         : strdup("shardlite_graph");
    if (!gname) {
        return sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
    }
    SL_TRY(set_add(&W->names, gname));
    W->graph_name = gname;
    size_t glen = strlen(gname);
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (!W->vname[v]) {
            SL_TRY(unique_name(W, g->values[v].name, &W->vname[v]));
        }
    }
    char buf[64];
    for (int v = 0; v < g->n_values; v++) {
        const char *name = g->values[v].name;
        if (W->vname[v] || W->form[v] == FORM_SKIP) {
            continue;
        }
        if (!name[0]) {
            snprintf(buf, sizeof buf, "value_%d", v);
            name = buf;
        }
        if (W->form[v] != FORM_PARAM) {
            SL_TRY(unique_name(W, name, &W->vname[v]));
            continue;
        }
        if (strncmp(name, gname, glen) == 0 && name[glen] == ':') {
            name += glen + 1;
        }
        char *full = malloc(glen + strlen(name) + 2);
        if (!full) {
            return sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
        }
        sprintf(full, "%s:%s", gname, name);
        sl_status st = unique_name(W, full, &W->vname[v]);
        free(full);
        SL_TRY(st);
    }
    return SL_OK;
}

/* ---- protobuf pieces ---- */
static uint32_t f32_bits(float f)
{
    union { float f; uint32_t u; } c = {f};
    return c.u;
}

static uint64_t f64_bits(double d)
{
    union { double d; uint64_t u; } c = {d};
    return c.u;
}

/* An AttributeProto holding one integer (BOOL, INT32, INT64). name may be NULL (tuple items). */
static void attr_int(sl_pbw *w, uint32_t field, const char *name, int type, int64_t i)
{
    size_t at = sl_pbw_begin(w);
    if (name) {
        sl_pbw_str(w, 1, name);
    }
    sl_pbw_varint(w, 3, (uint64_t)i);
    sl_pbw_varint(w, 16, (uint64_t)type);
    sl_pbw_end(w, field, at);
}

/* type AT_FLOAT (f) or AT_DOUBLE (d) */
static void attr_real(sl_pbw *w, uint32_t field, const char *name, int type, double x)
{
    size_t at = sl_pbw_begin(w);
    sl_pbw_str(w, 1, name);
    if (type == AT_FLOAT) {
        sl_pbw_fixed32(w, 2, f32_bits((float)x));
    } else {
        sl_pbw_fixed64(w, 4, f64_bits(x));
    }
    sl_pbw_varint(w, 16, (uint64_t)type);
    sl_pbw_end(w, field, at);
}

static void attr_str(sl_pbw *w, uint32_t field, const char *name, const char *s)
{
    size_t at = sl_pbw_begin(w);
    sl_pbw_str(w, 1, name);
    sl_pbw_str(w, 5, s);
    sl_pbw_varint(w, 16, AT_STRING);
    sl_pbw_end(w, field, at);
}

/* A TUPLE of INT64 scalars, each in ints[0] (as MindSpore writes them). */
static void attr_int_tuple(sl_pbw *w, uint32_t field, const char *name, const int64_t *v, int n)
{
    size_t at = sl_pbw_begin(w);
    sl_pbw_str(w, 1, name);
    for (int i = 0; i < n; i++) {
        size_t item = sl_pbw_begin(w);
        sl_pbw_varint(w, 10, (uint64_t)v[i]);
        sl_pbw_varint(w, 16, AT_INT64);
        sl_pbw_end(w, 17, item);
    }
    sl_pbw_varint(w, 16, AT_TUPLE);
    sl_pbw_end(w, field, at);
}

/* A TensorProto with only a type and dims; shape NULL writes a scalar's dims [0]. A dynamic
 * (data-dependent) shape is written with every dim -1: the IR holds only its bound. */
static void tensor_type(sl_pbw *w, uint32_t field, int64_t data_type, const sl_shape *shape,
                        int dynamic)
{
    size_t at = sl_pbw_begin(w);
    if (!shape) {
        sl_pbw_varint(w, 1, 0);
    } else {
        for (int i = 0; i < shape->rank; i++) {
            sl_pbw_varint(w, 1, dynamic ? (uint64_t)-1 : (uint64_t)shape->dims[i]);
        }
    }
    sl_pbw_varint(w, 2, (uint64_t)data_type);
    sl_pbw_end(w, field, at);
}

/* ---- abstracts ---- */
static int abstract_known(const writer *W, int v)
{
    if (v < 0 || sl_mindir_data_type(W->g->values[v].dtype) == 0) {
        return 0;
    }
    const sl_value *val = &W->g->values[v];
    return W->abs[v] != ABS_SEQ ||
           (val->shape.rank == 1 && val->shape.dims[0] >= 0 &&
            val->shape.dims[0] <= MAX_CONST_ITEMS * 64);
}

/* The fields of an AttributeProto describing value v (type, tensors or values). */
static void abstract_body(const writer *W, sl_pbw *w, int v)
{
    const sl_value *val = &W->g->values[v];
    int64_t dt = sl_mindir_data_type(val->dtype);
    switch ((abs_kind)W->abs[v]) {
    case ABS_TENSOR:
        tensor_type(w, 12, dt, &val->shape, val->dynamic);
        sl_pbw_varint(w, 16, AT_TENSORS);
        break;
    case ABS_SCALAR:
        tensor_type(w, 12, dt, NULL, 0);
        sl_pbw_varint(w, 16, AT_SCALAR);
        break;
    case ABS_SEQ: {
        for (int64_t i = 0; i < val->shape.dims[0]; i++) {
            size_t item = sl_pbw_begin(w);
            tensor_type(w, 12, dt, NULL, 0);
            sl_pbw_varint(w, 16, AT_SCALAR);
            sl_pbw_end(w, 17, item);
        }
        sl_pbw_varint(w, 16, AT_TUPLE);
        size_t seq = sl_pbw_begin(w);
        sl_pbw_varint(w, 1, 0); /* is_dyn_len */
        sl_pbw_end(w, 18, seq);
        break;
    }
    }
}

/* The node attribute "shape": the abstract of one value, or a tuple of them. Left out when a
 * dtype is unknown (a graph not prepared). */
static void shape_attr(writer *W, const int *values, int n, int tuple)
{
    for (int i = 0; i < n; i++) {
        if (!abstract_known(W, values[i])) {
            return;
        }
    }
    sl_pbw *w = &W->graph;
    size_t at = sl_pbw_begin(w);
    sl_pbw_str(w, 1, "shape");
    if (!tuple) {
        abstract_body(W, w, values[0]);
    } else {
        for (int i = 0; i < n; i++) {
            size_t item = sl_pbw_begin(w);
            abstract_body(W, w, values[i]);
            sl_pbw_end(w, 17, item);
        }
        sl_pbw_varint(w, 16, AT_TUPLE);
    }
    sl_pbw_end(w, 5, at);
}

/* A ValueInfoProto (graph input or output). */
static void value_info(writer *W, uint32_t field, int v)
{
    const sl_value *val = &W->g->values[v];
    sl_pbw *w = &W->graph;
    size_t at = sl_pbw_begin(w);
    sl_pbw_str(w, 1, W->vname[v]);
    if (abstract_known(W, v)) {
        if (W->abs[v] == ABS_TENSOR) {
            tensor_type(w, 2, sl_mindir_data_type(val->dtype), &val->shape, val->dynamic);
        } else {
            /* MindSpore's scalar inputs: the type's name, and a SCALAR abstract */
            sl_pbw_str(w, 4, val->dtype == SL_DTYPE_BOOL       ? "Bool"
                             : sl_dtype_is_float(val->dtype) ? "Float"
                                                             : "Int");
            size_t info = sl_pbw_begin(w);
            abstract_body(W, w, v);
            sl_pbw_end(w, 5, info);
        }
    }
    sl_pbw_end(w, field, at);
}

/* ---- nodes ---- */

/* Ops whose MindSpore "axis" is one int, not a tuple. */
/* The primitive's attributes from the op's schema; `skip` is passed as an input instead. */
static sl_status prim_attrs(sl_pbw *w, const sl_node *n, const sl_attr_desc *skip)
{
    for (const sl_attr_desc *d = sl_op_get(n->op)->attrs; d->name; d++) {
        const char *base = (const char *)&n->params + d->offset;
        const int64_t *ints = (const int64_t *)base;
        if (d == skip) {
            continue;
        }
        switch (d->type) {
        case SL_ATTR_BOOL: attr_int(w, 3, d->name, AT_BOOL, *(const uint8_t *)base); break;
        case SL_ATTR_INT:
        case SL_ATTR_DTYPE: attr_int(w, 3, d->name, AT_INT64, ints[0]); break;
        case SL_ATTR_FLOAT: {
            double x = *(const double *)base;
            /* MindSpore writes FLOAT; a value a float cannot hold goes as DOUBLE */
            attr_real(w, 3, d->name, (double)(float)x == x || x != x ? AT_FLOAT : AT_DOUBLE, x);
            break;
        }
        case SL_ATTR_INTS: {
            int64_t count = *(const int64_t *)((const char *)&n->params + d->count);
            if (count < 0 || count > d->max_count) {
                return sl_error(SL_ERR_INTERNAL, "attribute '%s' holds %lld values", d->name,
                                (long long)count);
            }
            if (count == 0 && d->def == 0) {
                break; /* absent reads back the same */
            }
            if (count == 1 && d->max_count == 1) {
                attr_int(w, 3, d->name, AT_INT64, ints[0]); /* an int in MindSpore */
            } else {
                attr_int_tuple(w, 3, d->name, ints, (int)count);
            }
            break;
        }
        case SL_ATTR_ENUM: {
            int64_t i = ints[0], n_names = 0;
            while (d->names[n_names]) {
                n_names++;
            }
            if (i < 0 || i >= n_names) {
                return sl_error(SL_ERR_INTERNAL, "attribute '%s' has value %lld", d->name,
                                (long long)i);
            }
            attr_str(w, 3, d->name, d->names[i]);
            break;
        }
        case SL_ATTR_GROUP: {
            /* a world name (whatever ranks it lists: see join_group in runtime/model.c), or a
             * sub-group named like MindSpore's: "<size>-<hash of ranks>" */
            const sl_params_coll *c = &n->params.coll;
            if (ints[0] == SL_GROUP_ABSENT && c->n_group_ranks == 0) {
                break; /* absent reads back the same: the world */
            }
            if (ints[0] >= 0) {
                attr_str(w, 3, d->name, d->names[ints[0]]);
                break;
            }
            uint64_t h = 1469598103934665603ull;
            for (int64_t k = 0; k < c->n_group_ranks; k++) {
                h = (h ^ (uint64_t)c->group_ranks[k]) * 1099511628211ull;
            }
            char name[64];
            snprintf(name, sizeof name, "%lld-%llu", (long long)c->n_group_ranks,
                     (unsigned long long)h);
            attr_str(w, 3, d->name, name);
            break;
        }
        }
    }
    if (n->op == SL_OP_CONV2D) { /* what MindSpore's Conv2D also carries */
        const sl_params_conv2d *c = &n->params.conv2d;
        static const int64_t zeros[4] = {0};
        attr_int(w, 3, "groups", AT_INT64, c->group);
        attr_int(w, 3, "mode", AT_INT64, 1);
        attr_int_tuple(w, 3, "pad", c->n_pad_list == 4 ? c->pad_list : zeros, 4);
    }
    return SL_OK;
}

/* Writes a node "REF::<op>:<k>" and its primitive (attributes from `attrs_of` when not NULL),
 * with the abstract of `abs` (a tuple when abs_tuple) as its "shape". */
static sl_status write_node(writer *W, const char *op, const char *const *in, int n_in,
                            const char *out, const sl_node *attrs_of, const sl_attr_desc *skip,
                            const int *abs, int n_abs, int abs_tuple)
{
    char buf[160];
    const char *prim;
    snprintf(buf, sizeof buf, "%s:%d", op, ++W->counter);
    SL_TRY(unique_name(W, buf, &prim));
    sl_pbw *m = &W->model;
    size_t at = sl_pbw_begin(m);
    sl_pbw_str(m, 1, prim);
    sl_pbw_str(m, 2, op);
    if (attrs_of) {
        SL_TRY(prim_attrs(m, attrs_of, skip));
    }
    sl_pbw_varint(m, 5, PRIM_TYPE_PRIMITIVE);
    sl_pbw_end(m, 12, at);

    sl_pbw *w = &W->graph;
    at = sl_pbw_begin(w);
    for (int k = 0; k < n_in; k++) {
        sl_pbw_str(w, 1, in[k]);
    }
    sl_pbw_str(w, 2, out);
    sl_pbw_str(w, 3, out);
    snprintf(buf, sizeof buf, "REF::%s", prim);
    sl_pbw_str(w, 4, buf);
    shape_attr(W, abs, n_abs, abs_tuple);
    sl_pbw_end(w, 1, at);
    return SL_OK;
}

/* Starts a Constant node named `name`; the caller writes the "value" attribute's payload
 * and calls const_end. */
static void const_begin(writer *W, const char *name, size_t *node, size_t *value)
{
    sl_pbw *w = &W->graph;
    *node = sl_pbw_begin(w);
    sl_pbw_str(w, 2, name);
    sl_pbw_str(w, 3, name);
    sl_pbw_str(w, 4, "Constant");
    *value = sl_pbw_begin(w);
    sl_pbw_str(w, 1, "value");
}

static void const_end(writer *W, int type, size_t node, size_t value)
{
    sl_pbw_varint(&W->graph, 16, (uint64_t)type);
    sl_pbw_end(&W->graph, 5, value);
    sl_pbw_end(&W->graph, 1, node);
}

/* A constant value as a Constant node: a scalar, or a tuple of INT64 / FLOAT scalars. */
static void write_constant(writer *W, int v)
{
    const sl_value *val = &W->g->values[v];
    sl_pbw *w = &W->graph;
    size_t node, value;
    const_begin(W, W->vname[v], &node, &value);
    if (W->form[v] == FORM_TUPLE) {
        for (int64_t i = 0; i < val->shape.dims[0]; i++) {
            size_t item = sl_pbw_begin(w);
            if (val->dtype == SL_DTYPE_INT64) {
                sl_pbw_varint(w, 10, (uint64_t)((const int64_t *)val->data)[i]);
                sl_pbw_varint(w, 16, AT_INT64);
            } else {
                sl_pbw_fixed32(w, 8, f32_bits(((const float *)val->data)[i]));
                sl_pbw_varint(w, 16, AT_FLOAT);
            }
            sl_pbw_end(w, 17, item);
        }
        const_end(W, AT_TUPLE, node, value);
        return;
    }
    switch (val->dtype) {
    case SL_DTYPE_FLOAT32:
        sl_pbw_fixed32(w, 2, f32_bits(*(const float *)val->data));
        const_end(W, AT_FLOAT, node, value);
        break;
    case SL_DTYPE_FLOAT64:
        sl_pbw_fixed64(w, 4, f64_bits(*(const double *)val->data));
        const_end(W, AT_DOUBLE, node, value);
        break;
    case SL_DTYPE_BOOL:
        sl_pbw_varint(w, 3, *(const uint8_t *)val->data != 0);
        const_end(W, AT_BOOL, node, value);
        break;
    default: /* INT32, INT64 */
        sl_pbw_varint(w, 3, (uint64_t)sl_value_get_int(val, 0));
        const_end(W, val->dtype == SL_DTYPE_INT32 ? AT_INT32 : AT_INT64, node, value);
        break;
    }
}

/* The shared None constant for absent inputs, written on first use. */
static sl_status none_name(writer *W, const char **out)
{
    if (!W->none_name) {
        SL_TRY(unique_name(W, "None", &W->none_name));
        size_t node, value;
        const_begin(W, W->none_name, &node, &value);
        const_end(W, AT_NONE, node, value);
    }
    *out = W->none_name;
    return SL_OK;
}

/* A type value (e.g. Cast's target) as MindSpore writes it: TENSORS with a data-less tensor. */
static sl_status write_type_constant(writer *W, const sl_node *n, int64_t dtype, const char **out)
{
    int64_t dt = dtype > 0 && dtype <= 1000 ? sl_mindir_data_type((sl_dtype)dtype) : 0;
    if (!dt) {
        return sl_error(SL_ERR_UNSUPPORTED, "node '%s' (%s): dtype %lld has no MindIR type",
                        n->name, sl_op_get(n->op)->name, (long long)dtype);
    }
    SL_TRY(unique_name(W, "dst_type", out));
    size_t node, value;
    const_begin(W, *out, &node, &value);
    size_t t = sl_pbw_begin(&W->graph);
    sl_pbw_str(&W->graph, 7, "value0");
    sl_pbw_varint(&W->graph, 2, (uint64_t)dt);
    sl_pbw_end(&W->graph, 12, t);
    const_end(W, AT_TENSORS, node, value);
    return SL_OK;
}

static sl_status write_op_node(writer *W, const sl_node *n)
{
    const sl_op_info *info = sl_op_get(n->op);
    const char **in = malloc(sizeof *in * (size_t)(n->n_in + 2));
    if (!in) {
        return sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
    }
    sl_status st = SL_OK;
    int n_in = 0;
    for (int k = 0; k < n->n_in && st == SL_OK; k++) {
        if (n->in[k] >= 0) {
            in[n_in++] = W->vname[n->in[k]];
        } else {
            st = none_name(W, &in[n_in++]);
        }
    }
    const char *out = NULL;
    char buf[160];
    const char *base = n->name[0] ? n->name : info->name;
    if (st == SL_OK && (info->flags & SL_OPF_TUPLE_INPUT)) {
        /* MindSpore passes these inputs as one tuple */
        const char *tuple;
        snprintf(buf, sizeof buf, "%.120s:inputs", base);
        st = unique_name(W, buf, &tuple);
        if (st == SL_OK) {
            st = write_node(W, "MakeTuple", in, n_in, tuple, NULL, NULL, n->in, n->n_in, 1);
        }
        in[0] = tuple;
        n_in = 1;
    }
    /* a type attribute that MindSpore passes as an input (Cast's dtype) goes there */
    const sl_attr_desc *type_input = NULL;
    for (const sl_attr_desc *d = info->attrs; d->name && st == SL_OK; d++) {
        if (d->type == SL_ATTR_DTYPE && d->input > 0 && d->input == n_in) {
            type_input = d;
            st = write_type_constant(W, n, *(const int64_t *)((const char *)&n->params + d->offset),
                                     &in[n_in++]);
        }
    }
    if (st == SL_OK) {
        if (n->n_out == 1) {
            out = W->vname[n->out[0]];
        } else {
            st = unique_name(W, base, &out);
        }
    }
    if (st == SL_OK) {
        st = write_node(W, info->name, in, n_in, out, n, type_input, n->out, n->n_out,
                        n->n_out != 1);
    }
    /* several outputs: one TupleGetItem per output gives each its name */
    for (int k = 0; k < n->n_out && n->n_out > 1 && st == SL_OK; k++) {
        const char *idx;
        snprintf(buf, sizeof buf, "%.120s:index%d", out, k);
        st = unique_name(W, buf, &idx);
        if (st == SL_OK) {
            size_t node, value;
            const_begin(W, idx, &node, &value);
            sl_pbw_varint(&W->graph, 3, (uint64_t)k);
            const_end(W, AT_INT64, node, value);
            const char *args[2] = {out, idx};
            st = write_node(W, "TupleGetItem", args, 2, W->vname[n->out[k]], NULL, NULL,
                            &n->out[k], 1, 0);
        }
    }
    free(in);
    if (st != SL_OK) {
        return sl_error_wrap(st, "node '%s' (%s)", n->name, info->name);
    }
    return SL_OK;
}

/* ---- parameters and external data ---- */
static sl_status data_write(writer *W, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, W->data) != n) {
        return sl_error(SL_ERR_IO, "cannot write '%s': %s", W->data_tmp, strerror(errno));
    }
    W->data_len += n;
    return SL_OK;
}

static sl_status data_open(writer *W)
{
    if (mkdir(W->vars_dir, 0755) == 0) {
        W->made_dir = 1;
    } else {
        struct stat sb;
        if (errno != EEXIST || stat(W->vars_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            return sl_error(SL_ERR_IO, "cannot create the folder '%s': %s", W->vars_dir,
                            errno == EEXIST ? "a file has that name" : strerror(errno));
        }
    }
    W->data = fopen(W->data_tmp, "wb");
    if (!W->data) {
        return sl_error(SL_ERR_IO, "cannot create '%s': %s", W->data_tmp, strerror(errno));
    }
    uint8_t header[DATA_ALIGN] = {1}; /* byte 0: 1 = little-endian */
    return data_write(W, header, sizeof header);
}

static sl_status write_param(writer *W, int v)
{
    static const uint8_t zeros[DATA_ALIGN] = {0};
    const sl_value *val = &W->g->values[v];
    int64_t dt = sl_mindir_data_type(val->dtype);
    int64_t numel = sl_shape_numel(&val->shape);
    size_t bytes = sl_value_bytes(val);
    if (!dt || numel < 0 || (bytes && !val->data)) {
        return sl_error(SL_ERR_UNSUPPORTED, "mindir save: constant '%s' (%s) cannot be written",
                        val->name, dt ? "no data" : sl_dtype_name(val->dtype));
    }
    sl_pbw *w = &W->graph;
    size_t at = sl_pbw_begin(w);
    for (int i = 0; i < val->shape.rank; i++) {
        sl_pbw_varint(w, 1, (uint64_t)val->shape.dims[i]);
    }
    sl_pbw_varint(w, 2, (uint64_t)dt);
    sl_pbw_str(w, 7, W->vname[v]);
    if (W->location) {
        if (!W->data) {
            SL_TRY(data_open(W));
        }
        SL_TRY(data_write(W, zeros, (size_t)(-W->data_len & (DATA_ALIGN - 1))));
        uint64_t offset = W->data_len;
        SL_TRY(data_write(W, val->data, bytes));
        size_t ext = sl_pbw_begin(w);
        sl_pbw_str(w, 1, W->location);
        sl_pbw_varint(w, 2, offset);
        sl_pbw_varint(w, 3, bytes);
        sl_pbw_end(w, 12, ext);
    } else {
        sl_pbw_bytes(w, 9, val->data, bytes);
    }
    sl_pbw_str(w, 13, W->vname[v] + strlen(W->graph_name) + 1);
    sl_pbw_end(w, 3, at);
    return SL_OK;
}

/* ---- the model ---- */
static sl_status write_graph(writer *W)
{
    const sl_graph *g = W->g;
    for (int v = 0; v < g->n_values; v++) {
        if (W->form[v] == FORM_SCALAR || W->form[v] == FORM_TUPLE) {
            write_constant(W, v);
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        SL_TRY(write_op_node(W, &g->nodes[i]));
    }
    int out = g->n_outputs == 1 ? g->outputs[0] : -1;
    const char *tuple = NULL;
    if (g->n_outputs != 1) { /* several outputs: one MakeTuple is the graph's output */
        const char **in = malloc(sizeof *in * (size_t)(g->n_outputs + 1));
        char buf[160];
        snprintf(buf, sizeof buf, "%.120s:outputs", W->graph_name);
        sl_status st = in ? unique_name(W, buf, &tuple)
                          : sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
        for (int k = 0; k < g->n_outputs && st == SL_OK; k++) {
            in[k] = W->vname[g->outputs[k]];
        }
        if (st == SL_OK) {
            st = write_node(W, "MakeTuple", in, g->n_outputs, tuple, NULL, NULL, g->outputs,
                            g->n_outputs, 1);
        }
        free(in);
        SL_TRY(st);
    }
    sl_pbw *w = &W->graph;
    sl_pbw_str(w, 2, W->graph_name);
    for (int v = 0; v < g->n_values; v++) {
        if (W->form[v] == FORM_PARAM) {
            SL_TRY(write_param(W, v));
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const sl_value *val = &g->values[g->inputs[i]];
        if (sl_mindir_data_type(val->dtype) == 0) {
            return sl_error(SL_ERR_UNSUPPORTED, "mindir save: graph input '%s' has dtype %s",
                            val->name, sl_dtype_name(val->dtype));
        }
        value_info(W, 5, g->inputs[i]);
    }
    if (out >= 0) {
        value_info(W, 6, out);
    } else {
        size_t at = sl_pbw_begin(w);
        char buf[32];
        snprintf(buf, sizeof buf, "Tuple:%d", g->n_outputs);
        sl_pbw_str(w, 1, tuple);
        sl_pbw_str(w, 4, buf);
        sl_pbw_end(w, 6, at);
    }
    return SL_OK;
}

static sl_status write_header(writer *W)
{
    const sl_graph *g = W->g;
    sl_pbw *m = &W->model;
    sl_pbw_str(m, 1, "0.1.1");
    sl_pbw_str(m, 2, g->producer_name && g->producer_name[0] ? g->producer_name : "shardlite");
    sl_pbw_str(m, 5, g->producer_version && g->producer_version[0] ? g->producer_version
                                                                     : sl_version());
    sl_pbw_varint(m, 10, 1); /* little_endian */
    /* the encoding written is that of mind_ir_version 1, whatever the source file had */
    sl_pbw_varint(m, 13, 1);
    return SL_OK;
}

/* Writes the model file: the ModelProto fields, then the graph field around W->graph. */
static sl_status write_file(writer *W)
{
    uint8_t head[16];
    size_t n = 0;
    head[n++] = 7 << 3 | SL_PB_LEN;
    for (uint64_t len = W->graph.len; ; len >>= 7) {
        head[n++] = (uint8_t)(len & 0x7f) | (len >= 0x80 ? 0x80 : 0);
        if (len < 0x80) {
            break;
        }
    }
    FILE *f = fopen(W->model_tmp, "wb");
    if (!f) {
        return sl_error(SL_ERR_IO, "cannot create '%s': %s", W->model_tmp, strerror(errno));
    }
    int ok = fwrite(W->model.buf, 1, W->model.len, f) == W->model.len &&
             fwrite(head, 1, n, f) == n && fwrite(W->graph.buf, 1, W->graph.len, f) == W->graph.len;
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        return sl_error(SL_ERR_IO, "cannot write '%s': %s", W->model_tmp, strerror(err));
    }
    return SL_OK;
}

static sl_status commit(writer *W)
{
    if (W->data) {
        FILE *f = W->data;
        W->data = NULL;
        if (fclose(f) != 0) {
            return sl_error(SL_ERR_IO, "cannot write '%s': %s", W->data_tmp, strerror(errno));
        }
        if (rename(W->data_tmp, W->data_path) != 0) {
            return sl_error(SL_ERR_IO, "cannot rename '%s' to '%s': %s", W->data_tmp,
                            W->data_path, strerror(errno));
        }
    }
    if (rename(W->model_tmp, W->path) != 0) {
        return sl_error(SL_ERR_IO, "cannot rename '%s' to '%s': %s", W->model_tmp, W->path,
                        strerror(errno));
    }
    return SL_OK;
}

/* Paths: "<path>.tmp"; with external data "<dir>/<stem>_variables/data_0" (+ ".tmp"). */
static sl_status make_paths(writer *W, int external_data)
{
    const char *path = W->path;
    if (asprintf(&W->model_tmp, "%s.tmp", path) < 0) {
        W->model_tmp = NULL;
        return sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
    }
    if (!external_data) {
        return SL_OK;
    }
    const char *slash = strrchr(path, '/');
    const char *file = slash ? slash + 1 : path;
    size_t stem = strlen(file);
    if (stem > 7 && strcmp(file + stem - 7, ".mindir") == 0) {
        stem -= 7;
    }
    int dir = slash ? (int)(slash - path) + 1 : 0; /* keeps the slash */
    if (asprintf(&W->location, "%.*s_variables/data_0", (int)stem, file) < 0 ||
        asprintf(&W->vars_dir, "%.*s%.*s_variables", dir, path, (int)stem, file) < 0 ||
        asprintf(&W->data_path, "%.*s%s", dir, path, W->location) < 0 ||
        asprintf(&W->data_tmp, "%s.tmp", W->data_path) < 0) {
        return sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
    }
    return SL_OK;
}

sl_status sl_mindir_save(const sl_graph *g, const char *path, int external_data)
{
    if (!g || !path || !path[0]) {
        return sl_error(SL_ERR_INVALID_ARG, "mindir save: graph or path is missing");
    }
    writer W;
    memset(&W, 0, sizeof W);
    W.g = g;
    W.path = path;
    sl_status st = make_paths(&W, external_data);
    if (st == SL_OK) {
        W.vname = calloc((size_t)g->n_values + 1, sizeof *W.vname);
        W.form = calloc((size_t)g->n_values + 1, 1);
        W.abs = calloc((size_t)g->n_values + 1, 1);
        if (!W.vname || !W.form || !W.abs) {
            st = sl_error(SL_ERR_NOMEM, "mindir save: out of memory");
        }
    }
    if (st == SL_OK) {
        st = classify(&W);
    }
    if (st == SL_OK) {
        st = assign_names(&W);
    }
    if (st == SL_OK) {
        st = write_header(&W);
    }
    if (st == SL_OK) {
        st = write_graph(&W);
    }
    if (st == SL_OK && (W.model.failed || W.graph.failed)) {
        st = sl_error(SL_ERR_NOMEM, "mindir save: out of memory building the model");
    }
    if (st == SL_OK) {
        st = write_file(&W);
    }
    if (st == SL_OK) {
        st = commit(&W);
    }
    if (W.data) {
        fclose(W.data);
    }
    if (st != SL_OK) {
        if (W.model_tmp) {
            unlink(W.model_tmp);
        }
        if (W.data_tmp) {
            unlink(W.data_tmp);
        }
        if (W.made_dir) {
            rmdir(W.vars_dir);
        }
        st = sl_error_wrap(st, "saving '%s'", path);
    }
    sl_pbw_free(&W.model);
    sl_pbw_free(&W.graph);
    set_free(&W.names);
    free(W.vname);
    free(W.form);
    free(W.abs);
    free(W.model_tmp);
    free(W.vars_dir);
    free(W.location);
    free(W.data_path);
    free(W.data_tmp);
    return st;
}
