/* Operators: the op enum, typed parameters, the attribute schema that the MindIR loader and
 * writer share, and the infer/kernel dispatch table. */
#ifndef SL_GRAPH_OPS_H
#define SL_GRAPH_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum sl_op {
#define X(e, name, impl, attrs, flags) SL_OP_##e,
#include "graph/ops.def"
#undef X
    SL_OP_COUNT
} sl_op;

typedef enum sl_pad_mode { SL_PAD_VALID = 0, SL_PAD_SAME = 1, SL_PAD_PAD = 2 } sl_pad_mode;

/* Typed parameters of each op. Integer lists carry their length in n_<field>. */
typedef struct sl_params_matmul {
    uint8_t transpose_a, transpose_b;
} sl_params_matmul;

typedef struct sl_params_conv2d {
    int64_t kernel_size[2], n_kernel_size; /* informational: the weight's shape rules */
    int64_t stride[4], n_stride;           /* (h, w) or (1, 1, h, w) */
    int64_t dilation[4], n_dilation;       /* likewise */
    int64_t pad_list[4], n_pad_list;       /* top, bottom, left, right (pad_mode "pad") */
    int64_t group;                         /* >= 1 */
    int64_t out_channel;
    int64_t pad_mode;                      /* sl_pad_mode */
    int64_t format;                        /* 0 = NCHW (the only one supported) */
} sl_params_conv2d;

typedef struct sl_params_pool2d {
    int64_t kernel_size[4], n_kernel_size; /* (h, w) or (1, 1, h, w) */
    int64_t strides[4], n_strides;
    int64_t pad_list[4], n_pad_list;       /* pad_mode "pad": top, bottom, left, right */
    int64_t pad_mode;
    int64_t format;
} sl_params_pool2d;

typedef struct sl_params_unary {
    double alpha;               /* CeLU; an optional second input overrides it */
    double base, scale, shift;  /* Log: log(shift + scale * x) / ln(base), base -1 = e */
} sl_params_unary;

typedef struct sl_params_bias_add {
    int64_t format; /* 0 = NCHW: the bias runs along axis 1; 1 = NHWC: along the last axis */
} sl_params_bias_add;

typedef struct sl_params_cast {
    int64_t to; /* sl_dtype */
} sl_params_cast;

typedef struct sl_params_axes {
    int64_t axis[SL_MAX_DIMS], n_axis; /* Softmax, Squeeze, ExpandDims (one), Concat (one) */
} sl_params_axes;

typedef struct sl_params_split {
    int64_t axis;
    int64_t output_num;
} sl_params_split;

typedef struct sl_params_strided_slice {
    int64_t begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_axis_mask;
} sl_params_strided_slice;

typedef struct sl_params_gather {
    int64_t batch_dims;
} sl_params_gather;

#define SL_GROUP_MAX 64
#define SL_GROUP_ABSENT (-2) /* sl_params_coll.group: no group attribute */

typedef struct sl_params_coll {
    int64_t op;                               /* sl_reduce: sum, max, min, prod */
    int64_t group; /* 0..2: a world group's name, -1: another name, SL_GROUP_ABSENT: none */
    int64_t group_ranks[SL_GROUP_MAX], n_group_ranks; /* world ranks; empty: the world */
    int64_t ranks_from_ids; /* group_ranks came from group_rank_ids (see join_group) */
    int64_t rank_size;                        /* the group's size when exported (0: unset) */
    int64_t root_rank;                        /* Broadcast (group rank) */
    int64_t sr_tag, peer;                     /* Send dest_rank / Receive src_rank */
    int64_t split_count, split_dim, concat_dim; /* AlltoAll */
    int64_t shape[SL_MAX_DIMS], n_shape;      /* Receive */
    int64_t dtype;                            /* Receive (sl_dtype) */
} sl_params_coll;

typedef union sl_params {
    sl_params_matmul matmul;
    sl_params_conv2d conv2d;
    sl_params_pool2d pool2d;
    sl_params_unary unary;
    sl_params_bias_add bias_add;
    sl_params_cast cast;
    sl_params_axes axes;
    sl_params_split split;
    sl_params_strided_slice strided_slice;
    sl_params_gather gather;
    sl_params_coll coll;
} sl_params;

/* How one attribute maps between MindIR and sl_params. */
typedef enum sl_attr_type {
    SL_ATTR_BOOL,  /* uint8_t */
    SL_ATTR_INT,   /* int64_t */
    SL_ATTR_FLOAT, /* double */
    SL_ATTR_INTS,  /* int64_t[max_count] at offset, its length (int64_t) at count; a scalar
                    * counts as a list of one */
    SL_ATTR_ENUM,  /* int64_t index into names, matched case-insensitively */
    SL_ATTR_DTYPE, /* int64_t sl_dtype, from a MindIR type value */
    SL_ATTR_GROUP, /* int64_t: index of a world group name in names, -1 for any other name */
} sl_attr_type;

typedef struct sl_attr_desc {
    const char *name;        /* the MindSpore attribute name */
    const char *alias;       /* read instead when `name` is absent (another version's name) */
    size_t aliased;          /* > 0: offset of an int64 set to 1 when the alias was read */
    sl_attr_type type;
    size_t offset;           /* in sl_params */
    int max_count;           /* SL_ATTR_INTS */
    size_t count;            /* SL_ATTR_INTS: offset of the length in sl_params */
    const char *const *names;/* SL_ATTR_ENUM: NULL-terminated */
    double def;              /* default for scalars when absent */
    int input;               /* > 0: MindSpore >= 2.3 may pass it as this (constant) input */
} sl_attr_desc;

struct sl_op_call;
typedef sl_status (*sl_op_fn)(struct sl_op_call *call);

enum {
    SL_OPF_TUPLE_INPUT = 1,    /* input 0 is a tuple of tensors, flattened into the inputs */
    SL_OPF_DATA_DEPENDENT = 2, /* output shapes depend on input values (planned at the bound) */
    SL_OPF_TUPLE_OUTPUT = 4,   /* the outputs form a tuple (read with TupleGetItem) */
    SL_OPF_COMM = 8,           /* communicates with other ranks (needs a communicator) */
};

typedef struct sl_op_info {
    const char *name;
    const sl_attr_desc *attrs; /* ends with an entry whose name is NULL */
    int flags;
    sl_op_fn infer;  /* sets output dtypes/shapes and scratch bytes; validates */
    sl_op_fn kernel; /* computes the outputs */
} sl_op_info;

const sl_op_info *sl_op_get(sl_op op);
/* Looks an op up by its MindSpore primitive name; returns SL_OP_COUNT when unknown. */
sl_op sl_op_find(const char *name);

#endif
