/* The graph IR: values (tensors), nodes (ops) and the graph that owns both. */
#ifndef SL_GRAPH_IR_H
#define SL_GRAPH_IR_H

#include <stddef.h>
#include <stdint.h>

#include "graph/ops.h"

typedef struct sl_shape {
    int32_t rank;
    int64_t dims[SL_MAX_DIMS]; /* -1: dynamic, not yet known */
} sl_shape;

typedef enum sl_value_kind {
    SL_VALUE_ACT,   /* produced by a node: lives in the arena */
    SL_VALUE_INPUT, /* a graph input: lives in the arena */
    SL_VALUE_CONST, /* a weight or constant: data in a mapped file or owned */
} sl_value_kind;

typedef struct sl_value {
    char *name;
    sl_dtype dtype;
    sl_shape shape;
    sl_value_kind kind;
    void *data;       /* CONST: the bytes; ACT/INPUT: set by the planner, NULL before */
    void *owned;      /* heap bytes this value owns (CONST copies, folded results), or NULL */
    uint8_t folded;   /* ACT computed at prepare time from constants and static shapes */
    uint8_t dynamic;  /* shape known only when its producer runs (data-dependent) */
    size_t capacity;  /* ACT/INPUT: bytes reserved in the arena */
    int producer;     /* node index, -1 for inputs and constants */
} sl_value;

typedef struct sl_node {
    sl_op op;
    char *name;
    int n_in, n_out;
    int *in;          /* [n_in] value indices; -1 marks an absent optional input (None) */
    int *out;         /* [n_out] value indices */
    sl_params params;
    size_t scratch;   /* bytes of scratch the kernel asked for at infer time */
    uint8_t dynamic;  /* re-inferred at run time (an input's shape is data-dependent) */
} sl_node;

/* A file mapping that constants point into; released with the graph. */
typedef struct sl_mapping {
    const void *addr;
    size_t size;
    struct sl_mapfile *file;
} sl_mapping;

typedef struct sl_graph {
    sl_value *values;
    int n_values, cap_values;
    sl_node *nodes;   /* in topological order */
    int n_nodes, cap_nodes;
    int *inputs, n_inputs;
    int *outputs, n_outputs;
    sl_mapping *maps;
    int n_maps;
    char *name;             /* the graph's name: parameters are called "<name>:<key>" */
    char *producer_name, *producer_version;
    int64_t mind_ir_version;
    char **user_info;       /* [2 * n_user_info]: key, value, key, value... */
    int n_user_info;
} sl_graph;

/* What infer and kernel functions get for one node. */
typedef struct sl_op_call {
    const sl_node *node;
    const sl_params *p;
    sl_value **in;        /* [n_in]; an absent optional input is NULL */
    int n_in;
    sl_value **out;       /* [n_out] */
    int n_out;
    struct sl_pool *pool; /* kernels: the model's thread pool */
    struct sl_comm *comm; /* communication ops: the communicator of the node's group */
    int comm_model;       /* ... and the model's number in it (sl_comm_claim), for fingerprints */
    void *scratch;        /* kernels: node->scratch bytes */
    size_t scratch_bytes; /* infer: the scratch bytes the kernel will need */
    int running;          /* infer: 1 when re-run during predict (every input has its data) */
} sl_op_call;

sl_status sl_graph_create(sl_graph **out);
void sl_graph_destroy(sl_graph *g);
/* Adds a value; name is copied. Returns its index in *out. */
sl_status sl_graph_add_value(sl_graph *g, const char *name, sl_dtype dtype, const sl_shape *shape,
                             sl_value_kind kind, int *out);
/* Adds a node; in/out are copied. Returns its index in *out. */
sl_status sl_graph_add_node(sl_graph *g, sl_op op, const char *name, const int *in, int n_in,
                            const int *out_values, int n_out, const sl_params *params, int *out);
/* Takes over one reference to file. */
sl_status sl_graph_add_mapping(sl_graph *g, struct sl_mapfile *file);

/* A weight's name without the "<graph>:" prefix that parameters carry. */
const char *sl_graph_weight_key(const sl_graph *g, const sl_value *v);
/* The constant called `name` (its graph name or its key), or -1. */
int sl_graph_find_weight(const sl_graph *g, const char *name);

/* Shape helpers. */
int64_t sl_shape_numel(const sl_shape *s);     /* -1 if any dim is unknown */
int sl_shape_equal(const sl_shape *a, const sl_shape *b);
size_t sl_value_bytes(const sl_value *v);      /* numel * dtype size; 0 if unknown */
/* True when v's data can be read at infer time (constants, folded values, or while running). */
int sl_value_known(const sl_op_call *call, const sl_value *v);
/* Reads element i of a known integer or floating tensor as int64 / double (floats to int64 as
 * sl_int64_from_double converts them). */
int64_t sl_value_get_int(const sl_value *v, int64_t i);
double sl_value_get_float(const sl_value *v, int64_t i);
/* A double as int64 without undefined behaviour: truncated toward zero, NaN gives 0, values
 * beyond int64's range saturate (file numbers meant as integers may be any float). */
int64_t sl_int64_from_double(double d);
/* Formats a shape as "[1,3,224,224]" into buf. */
const char *sl_shape_str(const sl_shape *s, char *buf, size_t n);

#endif
