#include "graph/ops.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "graph/op_impl.h"

#define P(field) offsetof(sl_params, field)

static const sl_attr_desc none_attrs[] = {{0}};

static const char *const pad_modes[] = {"valid", "same", "pad", NULL};
static const char *const formats[] = {"NCHW", "NHWC", NULL};

static const char *const reduce_ops[] = {"sum", "max", "min", "prod", NULL};
/* the world group's names on Ascend, GPU and CPU */
static const char *const world_groups[] = {"hccl_world_group", "nccl_world_group",
                                           "mccl_world_group", NULL};

#define GROUP_ATTRS                                                                          \
    {.name = "group", .type = SL_ATTR_GROUP, .offset = P(coll.group), .names = world_groups,   \
     .def = SL_GROUP_ABSENT},                                                                 \
    {.name = "group_ranks", .alias = "group_rank_ids", .aliased = P(coll.ranks_from_ids),       \
     .type = SL_ATTR_INTS, .offset = P(coll.group_ranks), .count = P(coll.n_group_ranks),       \
     .max_count = SL_GROUP_MAX}

static const sl_attr_desc all_reduce_attrs[] = {
    {.name = "op", .type = SL_ATTR_ENUM, .offset = P(coll.op), .names = reduce_ops},
    GROUP_ATTRS,
    {0},
};
static const sl_attr_desc all_gather_attrs[] = {
    GROUP_ATTRS,
    {.name = "rank_size", .type = SL_ATTR_INT, .offset = P(coll.rank_size)},
    {0},
};
static const sl_attr_desc reduce_scatter_attrs[] = {
    {.name = "op", .type = SL_ATTR_ENUM, .offset = P(coll.op), .names = reduce_ops},
    GROUP_ATTRS,
    {.name = "rank_size", .type = SL_ATTR_INT, .offset = P(coll.rank_size)},
    {0},
};
static const sl_attr_desc broadcast_attrs[] = {
    {.name = "root_rank", .type = SL_ATTR_INT, .offset = P(coll.root_rank)},
    GROUP_ATTRS,
    {0},
};
static const sl_attr_desc all_to_all_attrs[] = {
    {.name = "split_count", .type = SL_ATTR_INT, .offset = P(coll.split_count)},
    {.name = "split_dim", .type = SL_ATTR_INT, .offset = P(coll.split_dim)},
    {.name = "concat_dim", .type = SL_ATTR_INT, .offset = P(coll.concat_dim)},
    GROUP_ATTRS,
    {.name = "rank_size", .type = SL_ATTR_INT, .offset = P(coll.rank_size)},
    {0},
};
static const sl_attr_desc send_attrs[] = {
    {.name = "sr_tag", .type = SL_ATTR_INT, .offset = P(coll.sr_tag)},
    {.name = "dest_rank", .type = SL_ATTR_INT, .offset = P(coll.peer)},
    GROUP_ATTRS,
    {0},
};
static const sl_attr_desc receive_attrs[] = {
    {.name = "sr_tag", .type = SL_ATTR_INT, .offset = P(coll.sr_tag)},
    {.name = "src_rank", .type = SL_ATTR_INT, .offset = P(coll.peer)},
    {.name = "shape", .type = SL_ATTR_INTS, .offset = P(coll.shape), .count = P(coll.n_shape),
     .max_count = SL_MAX_DIMS},
    {.name = "dtype", .type = SL_ATTR_DTYPE, .offset = P(coll.dtype)},
    GROUP_ATTRS,
    {0},
};

static const sl_attr_desc matmul_attrs[] = {
    {.name = "transpose_a", .type = SL_ATTR_BOOL, .offset = P(matmul.transpose_a), .input = 2},
    {.name = "transpose_b", .type = SL_ATTR_BOOL, .offset = P(matmul.transpose_b), .input = 3},
    {0},
};
static const sl_attr_desc conv2d_attrs[] = {
    {.name = "kernel_size", .type = SL_ATTR_INTS, .offset = P(conv2d.kernel_size),
      .count = P(conv2d.n_kernel_size), .max_count = 2},
    {.name = "stride", .type = SL_ATTR_INTS, .offset = P(conv2d.stride),
      .count = P(conv2d.n_stride), .max_count = 4},
    {.name = "dilation", .type = SL_ATTR_INTS, .offset = P(conv2d.dilation),
      .count = P(conv2d.n_dilation), .max_count = 4},
    {.name = "pad_list", .type = SL_ATTR_INTS, .offset = P(conv2d.pad_list),
      .count = P(conv2d.n_pad_list), .max_count = 4},
    {.name = "group", .alias = "groups", .type = SL_ATTR_INT, .offset = P(conv2d.group), .def = 1},
    {.name = "out_channel", .type = SL_ATTR_INT, .offset = P(conv2d.out_channel)},
    {.name = "pad_mode", .type = SL_ATTR_ENUM, .offset = P(conv2d.pad_mode), .names = pad_modes},
    {.name = "format", .type = SL_ATTR_ENUM, .offset = P(conv2d.format), .names = formats},
    {0},
};
static const sl_attr_desc pool2d_attrs[] = {
    {.name = "kernel_size", .type = SL_ATTR_INTS, .offset = P(pool2d.kernel_size),
      .count = P(pool2d.n_kernel_size), .max_count = 4},
    {.name = "strides", .type = SL_ATTR_INTS, .offset = P(pool2d.strides),
      .count = P(pool2d.n_strides), .max_count = 4},
    {.name = "pad_list", .type = SL_ATTR_INTS, .offset = P(pool2d.pad_list),
      .count = P(pool2d.n_pad_list), .max_count = 4},
    {.name = "pad_mode", .type = SL_ATTR_ENUM, .offset = P(pool2d.pad_mode), .names = pad_modes},
    {.name = "format", .type = SL_ATTR_ENUM, .offset = P(pool2d.format), .names = formats},
    {0},
};
static const sl_attr_desc celu_attrs[] = {
    {.name = "alpha", .type = SL_ATTR_FLOAT, .offset = P(unary.alpha), .def = 1.0, .input = 1},
    {0},
};
static const sl_attr_desc log_attrs[] = {
    {.name = "base", .type = SL_ATTR_FLOAT, .offset = P(unary.base), .def = -1.0},
    {.name = "scale", .type = SL_ATTR_FLOAT, .offset = P(unary.scale), .def = 1.0},
    {.name = "shift", .type = SL_ATTR_FLOAT, .offset = P(unary.shift), .def = 0.0},
    {0},
};
static const sl_attr_desc cast_attrs[] = {
    {.name = "dst_type", .type = SL_ATTR_DTYPE, .offset = P(cast.to), .input = 1},
    {0},
};
static const sl_attr_desc bias_add_attrs[] = {
    {.name = "format", .type = SL_ATTR_ENUM, .offset = P(bias_add.format), .names = formats},
    {0},
};
static const sl_attr_desc softmax_attrs[] = {
    {.name = "axis", .type = SL_ATTR_INTS, .offset = P(axes.axis),
      .count = P(axes.n_axis), .max_count = SL_MAX_DIMS,
     .def = -1, .input = 1},
    {0},
};
static const sl_attr_desc squeeze_attrs[] = {
    {.name = "axis", .type = SL_ATTR_INTS, .offset = P(axes.axis),
      .count = P(axes.n_axis), .max_count = SL_MAX_DIMS,
     .input = 1},
    {0},
};
static const sl_attr_desc expand_dims_attrs[] = {
    {.name = "axis", .type = SL_ATTR_INTS, .offset = P(axes.axis),
      .count = P(axes.n_axis), .max_count = 1, .input = 1},
    {0},
};
static const sl_attr_desc flatten_attrs[] = {
    {.name = "axis", .type = SL_ATTR_INTS, .offset = P(axes.axis),
      .count = P(axes.n_axis), .max_count = 1, .def = 1},
    {0},
};
static const sl_attr_desc concat_attrs[] = {
    {.name = "axis", .type = SL_ATTR_INTS, .offset = P(axes.axis),
      .count = P(axes.n_axis), .max_count = 1, .input = 1},
    {0},
};
static const sl_attr_desc split_attrs[] = {
    {.name = "axis", .type = SL_ATTR_INT, .offset = P(split.axis), .input = 1},
    {.name = "output_num", .type = SL_ATTR_INT, .offset = P(split.output_num), .def = 1,
     .input = 2},
    {0},
};
static const sl_attr_desc strided_slice_attrs[] = {
    {.name = "begin_mask", .type = SL_ATTR_INT, .offset = P(strided_slice.begin_mask), .input = 4},
    {.name = "end_mask", .type = SL_ATTR_INT, .offset = P(strided_slice.end_mask), .input = 5},
    {.name = "ellipsis_mask", .type = SL_ATTR_INT, .offset = P(strided_slice.ellipsis_mask),
     .input = 6},
    {.name = "new_axis_mask", .type = SL_ATTR_INT, .offset = P(strided_slice.new_axis_mask),
     .input = 7},
    {.name = "shrink_axis_mask", .type = SL_ATTR_INT,
     .offset = P(strided_slice.shrink_axis_mask), .input = 8},
    {0},
};
static const sl_attr_desc gather_attrs[] = {
    {.name = "batch_dims", .type = SL_ATTR_INT, .offset = P(gather.batch_dims), .input = 3},
    {0},
};

static const sl_op_info op_table[] = {
#define X(e, nm, impl, at, fl)                                                          \
    [SL_OP_##e] = {.name = nm, .attrs = at, .flags = fl, .infer = sl_infer_##impl,          \
                   .kernel = sl_kernel_##impl},
#include "graph/ops.def"
#undef X
};
_Static_assert(sizeof op_table / sizeof op_table[0] == SL_OP_COUNT, "one entry per op");

const sl_op_info *sl_op_get(sl_op op)
{
    if ((unsigned)op >= SL_OP_COUNT) {
        return NULL;
    }
    return &op_table[op];
}

sl_op sl_op_find(const char *name)
{
    for (int i = 0; i < SL_OP_COUNT; i++) {
        if (strcmp(op_table[i].name, name) == 0) {
            return (sl_op)i;
        }
    }
    return SL_OP_COUNT;
}
