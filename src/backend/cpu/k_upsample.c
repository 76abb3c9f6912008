/* UpsampleNearest3D: each output voxel copies its nearest source voxel, with the index rule of
 * MindSpore's CPU kernel. */
#include <stdint.h>

#include "core/pool.h"
#include "graph/op_impl.h"

/* Source index of every output index along one axis. The scale is a float, as in MindSpore,
 * so that rounding matches it: 1/scale when scales were given, else in/out. */
static void nearest_indices(int64_t in, int64_t out, const sl_value *scales, int axis, int64_t *idx)
{
    float s = scales ? (float)(1.0 / sl_value_get_float(scales, axis)) : (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        int64_t i = o;
        if (out == 2 * in) {
            i = o / 2;
        } else if (out != in) {
            i = (int64_t)((float)o * s);
            i = i < in - 1 ? i : in - 1;
        }
        idx[o] = i;
    }
}

typedef struct upsample_job {
    const int64_t *id, *ih, *iw; /* source indices per output index along D, H, W */
    int64_t d, h, w;             /* input extents */
    int64_t od, oh, ow;          /* output extents */
    const void *x;               /* [N * C, D, H, W] */
    void *y;                     /* [N * C, OD, OH, OW] */
} upsample_job;

/* Output rows [begin, end) of OW elements; row r = (plane * OD + od) * OH + oh. */
#define DEFINE_UPSAMPLE_ROWS(name, T)                                                              \
    static void name(void *arg, int64_t begin, int64_t end)                                        \
    {                                                                                              \
        const upsample_job *j = arg;                                                               \
        for (int64_t r = begin; r < end; r++) {                                                    \
            int64_t oh = r % j->oh, od = (r / j->oh) % j->od, pl = r / (j->oh * j->od);            \
            const T *src = (const T *)j->x + ((pl * j->d + j->id[od]) * j->h + j->ih[oh]) * j->w;  \
            T *dst = (T *)j->y + r * j->ow;                                                        \
            for (int64_t ow = 0; ow < j->ow; ow++) {                                               \
                dst[ow] = src[j->iw[ow]];                                                          \
            }                                                                                      \
        }                                                                                          \
    }
DEFINE_UPSAMPLE_ROWS(upsample_4, uint32_t)
DEFINE_UPSAMPLE_ROWS(upsample_8, uint64_t)

sl_status sl_kernel_upsample_nearest3d(sl_op_call *call)
{
    const sl_value *x = call->in[0];
    const sl_value *scales = call->n_in > 2 ? call->in[2] : NULL;
    const int64_t *in = x->shape.dims, *out = call->out[0]->shape.dims;
    if (sl_shape_numel(&call->out[0]->shape) == 0) {
        return SL_OK;
    }
    int64_t *id = call->scratch, *ih = id + out[2], *iw = ih + out[3]; /* scratch: [OD+OH+OW] */
    nearest_indices(in[2], out[2], scales, 0, id);
    nearest_indices(in[3], out[3], scales, 1, ih);
    nearest_indices(in[4], out[4], scales, 2, iw);
    upsample_job j = {.id = id, .ih = ih, .iw = iw, .d = in[2], .h = in[3], .w = in[4],
                      .od = out[2], .oh = out[3], .ow = out[4], .x = x->data,
                      .y = call->out[0]->data};
    sl_pool_for(call->pool, in[0] * in[1] * out[2] * out[3], j.ow >= 16384 ? 1 : 16384 / j.ow,
                sl_dtype_size(x->dtype) == 4 ? upsample_4 : upsample_8, &j);
    return SL_OK;
}
