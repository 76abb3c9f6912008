/* MindIR -> graph IR. The file is memory-mapped and read in place: names are slices of the
 * mapping during the load, weight bytes stay in it whenever their alignment allows. */
#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mapfile.h"
#include "format/mindir/mindir.h"
#include "format/pb/pb.h"
#include "graph/shape_util.h"

/* AttributeProto.type values used here. */
enum {
    AT_FLOAT = 1, AT_UINT8 = 2, AT_INT8 = 3, AT_UINT16 = 4, AT_INT16 = 5, AT_INT32 = 6,
    AT_INT64 = 7, AT_STRING = 8, AT_BOOL = 9, AT_FLOAT16 = 10, AT_DOUBLE = 11, AT_UINT32 = 12,
    AT_UINT64 = 13, AT_TENSOR = 17, AT_TENSORS = 19, AT_TUPLE = 20, AT_LIST = 21, AT_UMONAD = 23,
    AT_IOMONAD = 24, AT_NONE = 25, AT_SCALAR = 39,
};

static const uint32_t encrypted_magics[] = {0x7F3A5ED8u, 0x7F3A5ED9u, 0x7F3A5EDAu};
#define MAX_TUPLE_ITEMS 4096
/* The graph outputs are the tensors of (nested) tuples, flattened: at most this many items are
 * walked in all, since tuples sharing items multiply (8 levels of 256 items: 2**64). */
#define MAX_OUTPUT_ITEMS 65536

sl_dtype sl_mindir_dtype(int64_t t)
{
    switch (t) {
    case 1: return SL_DTYPE_FLOAT32;
    case 2: return SL_DTYPE_UINT8;
    case 3: return SL_DTYPE_INT8;
    case 4: return SL_DTYPE_UINT16;
    case 5: return SL_DTYPE_INT16;
    case 6: return SL_DTYPE_INT32;
    case 7: return SL_DTYPE_INT64;
    case 9: return SL_DTYPE_BOOL;
    case 10: return SL_DTYPE_FLOAT16;
    case 11:
    case 17: return SL_DTYPE_FLOAT64;
    case 12: return SL_DTYPE_UINT32;
    case 13: return SL_DTYPE_UINT64;
    case 16: return SL_DTYPE_BFLOAT16;
    default: return SL_DTYPE_UNKNOWN;
    }
}

int64_t sl_mindir_data_type(sl_dtype d)
{
    for (int64_t t = 1; t <= 16; t++) {
        if (sl_mindir_dtype(t) == d) {
            return t;
        }
    }
    return 0;
}

/* ---- what a name in the model's namespace stands for ---- */
typedef enum ref_kind { REF_VALUE, REF_TUPLE, REF_NONE, REF_MONAD, REF_TYPE } ref_kind;

typedef struct ref {
    ref_kind kind;
    int value;      /* REF_VALUE; REF_TUPLE: its 1-D tensor once made (MakeTuple of scalars) */
    int *items;     /* REF_TUPLE: ref indices */
    int n_items;
    sl_dtype dtype; /* REF_TYPE */
} ref;

/* Open-addressing map from a name (a slice of the mapping) to an int. */
typedef struct name_map {
    sl_pb *keys;
    int *vals;
    size_t cap, count;
} name_map;

static uint64_t hash_name(sl_pb k)
{
    uint64_t h = 1469598103934665603ull;
    for (const uint8_t *p = k.p; p < k.end; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return h;
}

static int map_find(const name_map *m, sl_pb k)
{
    if (!m->cap) {
        return -1;
    }
    size_t n = sl_pb_size(k);
    for (size_t i = hash_name(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i].p) {
            return -1;
        }
        if (sl_pb_size(m->keys[i]) == n && memcmp(m->keys[i].p, k.p, n) == 0) {
            return m->vals[i];
        }
    }
}

static sl_status map_put(name_map *m, sl_pb k, int v)
{
    if ((m->count + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        name_map n = {calloc(cap, sizeof *n.keys), calloc(cap, sizeof *n.vals), cap, 0};
        if (!n.keys || !n.vals) {
            free(n.keys);
            free(n.vals);
            return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i].p) {
                SL_TRY(map_put(&n, m->keys[i], m->vals[i]));
            }
        }
        free(m->keys);
        free(m->vals);
        *m = n;
    }
    size_t n = sl_pb_size(k);
    size_t i = hash_name(k) & (m->cap - 1);
    for (; m->keys[i].p; i = (i + 1) & (m->cap - 1)) {
        if (sl_pb_size(m->keys[i]) == n && memcmp(m->keys[i].p, k.p, n) == 0) {
            m->vals[i] = v; /* a later definition of a name wins */
            return SL_OK;
        }
    }
    /* an empty name still needs a non-NULL key pointer to mark the slot used */
    static const uint8_t empty = 0;
    m->keys[i] = k.p ? k : sl_pb_make(&empty, 0);
    m->vals[i] = v;
    m->count++;
    return SL_OK;
}

static void map_free(name_map *m)
{
    free(m->keys);
    free(m->vals);
}

/* External data files mapped so far, by location. */
typedef struct ext_file {
    char *location;
    sl_mapfile *file; /* the graph holds the reference */
} ext_file;

typedef struct loader {
    sl_graph *g;
    const char *path;
    char dir[PATH_MAX];  /* the model's folder, resolved */
    ref *refs;
    int n_refs, cap_refs;
    name_map names;      /* model namespace -> ref */
    name_map prims;      /* primitive name -> index in prim_msgs */
    sl_pb *prim_msgs;
    int n_prims;
    sl_mapfile *file;    /* the model file (the graph holds the reference) */
    name_map graphs;     /* function graph names, to recognise calls */
    ext_file *ext;
    int n_ext;
    int output_items;    /* items walked flattening the graph outputs */
} loader;

static sl_status add_ref(loader *L, ref r, int *out)
{
    if (L->n_refs == L->cap_refs) {
        int cap = L->cap_refs ? L->cap_refs * 2 : 64;
        ref *n = realloc(L->refs, sizeof *n * (size_t)cap);
        if (!n) {
            free(r.items);
            return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
        }
        L->refs = n;
        L->cap_refs = cap;
    }
    L->refs[L->n_refs] = r;
    *out = L->n_refs++;
    return SL_OK;
}

static sl_status define(loader *L, sl_pb name, ref r)
{
    int id = -1;
    SL_TRY(add_ref(L, r, &id));
    return map_put(&L->names, name, id);
}

static sl_status define_value(loader *L, sl_pb name, int value)
{
    ref r = {.kind = REF_VALUE, .value = value};
    return define(L, name, r);
}

/* ---- attributes ---- */
typedef struct attr {
    sl_pb msg; /* the whole AttributeProto, to walk repeated fields */
    sl_pb name, s, t, ref_attr_name;
    int64_t type, i;
    double f;
    int has_i, has_f, has_s, has_t;
} attr;

static sl_status attr_parse(sl_pb msg, attr *a)
{
    memset(a, 0, sizeof *a);
    a->msg = msg;
    sl_pb_field f;
    int has;
    for (;;) {
        SL_TRY(sl_pb_next(&msg, &f, &has, "AttributeProto"));
        if (!has) {
            return SL_OK;
        }
        switch (f.num) {
        case 1: a->name = f.bytes; break;
        case 2: a->f = sl_pb_float(f.u); a->has_f = 1; break;
        case 3: a->i = (int64_t)f.u; a->has_i = 1; break;
        case 4: a->f = sl_pb_double(f.u); a->has_f = 1; break;
        case 5: a->s = f.bytes; a->has_s = 1; break;
        case 6: a->t = f.bytes; a->has_t = 1; break;
        case 12:
            if (!a->has_t) {
                a->t = f.bytes;
                a->has_t = 1;
            }
            break;
        case 15: a->ref_attr_name = f.bytes; break;
        case 16: a->type = (int64_t)f.u; break;
        default: break;
        }
        if (f.wire != SL_PB_LEN && (f.num == 1 || f.num == 5 || f.num == 6 || f.num == 12)) {
            return sl_error(SL_ERR_FORMAT, "AttributeProto: field %u has the wrong wire type",
                            f.num);
        }
    }
}

/* How deep a tuple item may itself be a (one-item) tuple: the file sets the depth of
 * attr_numbers' recursion, so it is bounded. */
#define MAX_TUPLE_DEPTH 8

/* Collects numbers from an attribute: scalar i/f, repeated ints/floats/doubles, or a tuple's
 * values[] (each a scalar attribute). as_float selects doubles, else int64s. depth: how many
 * tuples hold this one. */
static sl_status attr_numbers_at(const attr *a, int as_float, int64_t *ints, double *dbls,
                                 int max, int *n, int depth)
{
    *n = 0;
    sl_pb m = a->msg;
    sl_pb_field f;
    int has;
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, "AttributeProto"));
        if (!has) {
            break;
        }
        int wire;
        if (f.num == 10) {
            wire = SL_PB_VARINT;
        } else if (f.num == 8) {
            wire = SL_PB_FIXED32;
        } else if (f.num == 9) {
            wire = SL_PB_FIXED64;
        } else if (f.num == 17 && f.wire == SL_PB_LEN) {
            if (depth >= MAX_TUPLE_DEPTH) {
                return sl_error(SL_ERR_FORMAT, "attribute: tuples nested more than %d deep",
                                MAX_TUPLE_DEPTH);
            }
            attr sub;
            SL_TRY(attr_parse(f.bytes, &sub));
            int k;
            int64_t si = 0;
            double sd = 0;
            SL_TRY(attr_numbers_at(&sub, as_float, &si, &sd, 1, &k, depth + 1));
            if (k != 1) {
                return sl_error(SL_ERR_FORMAT, "attribute: a tuple item is not a number");
            }
            if (*n >= max) {
                return sl_error(SL_ERR_FORMAT, "attribute: more than %d values", max);
            }
            if (as_float) {
                dbls[*n] = sd;
            } else {
                ints[*n] = si;
            }
            (*n)++;
            continue;
        } else {
            continue;
        }
        sl_pb_rep r;
        uint64_t u;
        sl_pb_rep_init(&r, &f);
        for (;;) {
            SL_TRY(sl_pb_rep_next(&r, wire, &u, &has, "AttributeProto"));
            if (!has) {
                break;
            }
            if (*n >= max) {
                return sl_error(SL_ERR_FORMAT, "attribute: more than %d values", max);
            }
            double d = wire == SL_PB_VARINT    ? (double)(int64_t)u
                       : wire == SL_PB_FIXED32 ? sl_pb_float(u)
                                               : sl_pb_double(u);
            if (as_float) {
                dbls[*n] = d;
            } else {
                ints[*n] = wire == SL_PB_VARINT ? (int64_t)u : sl_int64_from_double(d);
            }
            (*n)++;
        }
    }
    if (*n == 0 && (a->has_i || a->has_f) && max >= 1) {
        if (as_float) {
            dbls[0] = a->has_f ? a->f : (double)a->i;
        } else {
            ints[0] = a->has_i ? a->i : sl_int64_from_double(a->f);
        }
        *n = 1;
    }
    return SL_OK;
}

static sl_status attr_numbers(const attr *a, int as_float, int64_t *ints, double *dbls, int max,
                              int *n)
{
    return attr_numbers_at(a, as_float, ints, dbls, max, n, 0);
}

/* The attribute's string: s, or strings[0]. */
static sl_status attr_string(const attr *a, sl_pb *out, int *found)
{
    *found = 0;
    if (a->has_s) {
        *out = a->s;
        *found = 1;
        return SL_OK;
    }
    return sl_pb_find(a->msg, 11, out, found, "AttributeProto");
}

/* ---- tensors ---- */
typedef struct tensor_info {
    sl_dtype dtype;
    sl_shape shape;
    sl_pb raw, name, ref_key, location;
    int has_raw, has_ext;
    int64_t ext_offset, ext_length;
    sl_pb_field typed; /* first float_data/int32_data/int64_data/double_data field */
    int n_typed;       /* count of typed fields seen (0 = none) */
    sl_pb msg;
    int64_t data_type;
} tensor_info;

static sl_status parse_external(sl_pb m, tensor_info *t)
{
    sl_pb_field f;
    int has;
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, "ExternalDataProto"));
        if (!has) {
            return SL_OK;
        }
        if (f.num == 1 && f.wire == SL_PB_LEN) {
            t->location = f.bytes;
        } else if (f.num == 2 && f.wire == SL_PB_VARINT) {
            t->ext_offset = (int64_t)f.u;
        } else if (f.num == 3 && f.wire == SL_PB_VARINT) {
            t->ext_length = (int64_t)f.u;
        }
    }
}

/* allow_dynamic: dims may be -1 (graph inputs); otherwise every dim must be >= 0. */
static sl_status tensor_parse(sl_pb msg, int allow_dynamic, tensor_info *t)
{
    memset(t, 0, sizeof *t);
    t->msg = msg;
    sl_pb_field f;
    int has;
    for (;;) {
        SL_TRY(sl_pb_next(&msg, &f, &has, "TensorProto"));
        if (!has) {
            break;
        }
        switch (f.num) {
        case 1: {
            sl_pb_rep r;
            uint64_t u;
            sl_pb_rep_init(&r, &f);
            for (;;) {
                SL_TRY(sl_pb_rep_next(&r, SL_PB_VARINT, &u, &has, "TensorProto.dims"));
                if (!has) {
                    break;
                }
                if (t->shape.rank >= SL_MAX_DIMS) {
                    return sl_error(SL_ERR_UNSUPPORTED, "tensor has more than %d dims",
                                    SL_MAX_DIMS);
                }
                int64_t d = (int64_t)u;
                if (d < 0 && !(allow_dynamic && d == -1)) {
                    return sl_error(d == -2 ? SL_ERR_UNSUPPORTED : SL_ERR_FORMAT,
                                    "tensor has dim %lld (%s)", (long long)d,
                                    d == -2 ? "dynamic rank is not supported" : "invalid");
                }
                t->shape.dims[t->shape.rank++] = d;
            }
            break;
        }
        case 2: t->data_type = (int64_t)f.u; break;
        case 3:
        case 4:
        case 6:
        case 10:
            if (!t->n_typed) {
                t->typed = f;
            } else if (t->typed.num != f.num) {
                return sl_error(SL_ERR_FORMAT, "TensorProto mixes typed data fields");
            }
            t->n_typed++;
            break;
        case 7: t->name = f.bytes; break;
        case 9: t->raw = f.bytes; t->has_raw = 1; break;
        case 12:
            if (f.wire != SL_PB_LEN) {
                return sl_error(SL_ERR_FORMAT, "TensorProto.external_data is not a message");
            }
            t->has_ext = 1;
            SL_TRY(parse_external(f.bytes, t));
            break;
        case 13: t->ref_key = f.bytes; break;
        default: break;
        }
    }
    /* the known dims' element count must fit SL_MAX_NUMEL: sizes computed from it (bytes,
     * strides, the arena) then cannot overflow */
    sl_shape known = t->shape;
    for (int i = 0; i < known.rank; i++) {
        known.dims[i] = known.dims[i] < 0 ? 1 : known.dims[i];
    }
    int64_t numel;
    if (!sl_shape_numel_checked(&known, &numel)) {
        char buf[160];
        sl_shape_str(&t->shape, buf, sizeof buf);
        if (t->name.p) {
            return sl_error(SL_ERR_FORMAT, "tensor '%.*s' of shape %s has more than %lld elements",
                            (int)sl_pb_size(t->name), (const char *)t->name.p, buf,
                            (long long)SL_MAX_NUMEL);
        }
        return sl_error(SL_ERR_FORMAT, "a tensor of shape %s has more than %lld elements", buf,
                        (long long)SL_MAX_NUMEL);
    }
    t->dtype = sl_mindir_dtype(t->data_type);
    return SL_OK;
}

/* Maps an external data file, confined to the model's folder. */
static sl_status map_external(loader *L, sl_pb location, sl_mapfile **out)
{
    char *loc = sl_pb_strdup(location);
    if (!loc) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    for (int i = 0; i < L->n_ext; i++) {
        if (strcmp(L->ext[i].location, loc) == 0) {
            free(loc);
            *out = L->ext[i].file;
            return SL_OK;
        }
    }
    sl_status st = SL_OK;
    char full[PATH_MAX], real[PATH_MAX];
    size_t dl = strlen(L->dir);
    if (loc[0] == '\0' || loc[0] == '/' || strlen(loc) != sl_pb_size(location) ||
        snprintf(full, sizeof full, "%s/%s", L->dir, loc) >= (int)sizeof full) {
        st = sl_error(SL_ERR_FORMAT, "external data location '%s' is not a relative path", loc);
    } else if (!realpath(full, real)) {
        st = sl_error(SL_ERR_IO, "external data file '%s': %s", full, strerror(errno));
    } else if (strncmp(real, L->dir, dl) != 0 || real[dl] != '/') {
        st = sl_error(SL_ERR_FORMAT, "external data location '%s' escapes the model's folder %s",
                      loc, L->dir);
    }
    sl_mapfile *file = NULL;
    if (st == SL_OK) {
        st = sl_mapfile_open(real, &file);
    }
    if (st == SL_OK && (sl_mapfile_size(file) < 64 || sl_mapfile_data(file)[0] != 1)) {
        sl_mapfile_release(file);
        st = sl_error(SL_ERR_FORMAT, "external data file '%s' has no little-endian 64-byte header",
                      real);
    }
    if (st == SL_OK) {
        st = sl_graph_add_mapping(L->g, file);
    }
    ext_file *e = st == SL_OK ? realloc(L->ext, sizeof *e * (size_t)(L->n_ext + 1)) : NULL;
    if (st == SL_OK && !e) {
        st = sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    if (st != SL_OK) {
        free(loc);
        return st;
    }
    L->ext = e;
    L->ext[L->n_ext].location = loc;
    L->ext[L->n_ext].file = file;
    L->n_ext++;
    *out = file;
    return SL_OK;
}

static void *alloc_aligned(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1) != 0) {
        return NULL;
    }
    return p;
}

/* Sets v's data from t: in place when aligned, else one aligned copy. */
static sl_status tensor_data(loader *L, const tensor_info *t, sl_value *v, const char *what)
{
    int64_t numel = sl_shape_numel(&t->shape);
    size_t esz = sl_dtype_size(t->dtype);
    if (esz == 0) {
        return sl_error(SL_ERR_UNSUPPORTED, "%s: unsupported data_type %lld", what,
                        (long long)t->data_type);
    }
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / esz) {
        return sl_error(SL_ERR_FORMAT, "%s: tensor too large", what);
    }
    size_t bytes = (size_t)numel * esz;
    const uint8_t *src = NULL;
    sl_mapfile *file = L->file;
    if (t->has_ext) {
        SL_TRY(map_external(L, t->location, &file));
        const uint8_t *base = sl_mapfile_data(file);
        size_t size = sl_mapfile_size(file);
        if (t->ext_offset < 0 || t->ext_length < 0 || (uint64_t)t->ext_offset > size ||
            (uint64_t)t->ext_length > size - (uint64_t)t->ext_offset) {
            return sl_error(SL_ERR_FORMAT, "%s: external data [%lld, +%lld) lies outside its file",
                            what, (long long)t->ext_offset, (long long)t->ext_length);
        }
        if ((uint64_t)t->ext_length != bytes) {
            return sl_error(SL_ERR_FORMAT, "%s: external data holds %lld bytes, shape needs %zu",
                            what, (long long)t->ext_length, bytes);
        }
        src = base + t->ext_offset;
    } else if (t->has_raw) {
        if (sl_pb_size(t->raw) != bytes) {
            return sl_error(SL_ERR_FORMAT, "%s: raw_data holds %zu bytes, shape needs %zu", what,
                            sl_pb_size(t->raw), bytes);
        }
        src = t->raw.p;
    }
    if (src && bytes && ((uintptr_t)src % esz) == 0) {
        v->data = (void *)src; /* in place: the mapping is read-only and outlives the graph */
        return SL_OK;
    }
    if (src && bytes) { /* misaligned: one aligned copy, shared like the mapping */
        const void *copy;
        SL_TRY(sl_mapfile_aligned_copy(file, (size_t)(src - sl_mapfile_data(file)), bytes, &copy));
        v->data = (void *)copy;
        return SL_OK;
    }
    /* the shape is the file's word: check it against the data before allocating for it */
    if (!t->n_typed && bytes != 0) {
        return sl_error(SL_ERR_FORMAT, "%s: tensor has no data", what);
    }
    if (t->n_typed && (uint64_t)numel > sl_pb_size(t->msg)) { /* a value takes a byte at least */
        return sl_error(SL_ERR_FORMAT, "%s: %lld elements, but the tensor's %zu bytes cannot "
                        "hold as many typed values", what, (long long)numel, sl_pb_size(t->msg));
    }
    v->owned = alloc_aligned(bytes);
    if (!v->owned) {
        return sl_error(SL_ERR_NOMEM, "%s: out of memory for %zu bytes", what, bytes);
    }
    v->data = v->owned;
    if (!t->n_typed) {
        return SL_OK;
    }
    /* typed repeated fields: re-walk the message and convert each value */
    int wire = t->typed.num == 3 ? SL_PB_FIXED32 : t->typed.num == 10 ? SL_PB_FIXED64 : SL_PB_VARINT;
    int64_t k = 0;
    sl_pb m = t->msg;
    sl_pb_field f;
    int has;
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, what));
        if (!has) {
            break;
        }
        if (f.num != t->typed.num) {
            continue;
        }
        sl_pb_rep r;
        uint64_t u;
        sl_pb_rep_init(&r, &f);
        for (;;) {
            SL_TRY(sl_pb_rep_next(&r, wire, &u, &has, what));
            if (!has) {
                break;
            }
            if (k >= numel) {
                return sl_error(SL_ERR_FORMAT, "%s: more typed values than the shape holds", what);
            }
            double d = wire == SL_PB_FIXED32 ? sl_pb_float(u)
                       : wire == SL_PB_FIXED64 ? sl_pb_double(u)
                                               : (double)(int64_t)u;
            uint8_t *dst = (uint8_t *)v->owned + (size_t)k * esz;
            switch (t->dtype) {
            case SL_DTYPE_FLOAT32: *(float *)dst = (float)d; break;
            case SL_DTYPE_FLOAT64: *(double *)dst = d; break;
            case SL_DTYPE_INT64: *(int64_t *)dst = (int64_t)u; break;
            case SL_DTYPE_INT32: *(int32_t *)dst = (int32_t)(int64_t)u; break;
            case SL_DTYPE_BOOL:
            case SL_DTYPE_UINT8:
            case SL_DTYPE_INT8: *dst = (uint8_t)u; break;
            default:
                return sl_error(SL_ERR_UNSUPPORTED, "%s: typed data for %s", what,
                                sl_dtype_name(t->dtype));
            }
            k++;
        }
    }
    if (k != numel) {
        return sl_error(SL_ERR_FORMAT, "%s: %lld typed values for %lld elements", what,
                        (long long)k, (long long)numel);
    }
    return SL_OK;
}

/* Adds a constant value holding t's data. */
static sl_status add_const_tensor(loader *L, sl_pb name, const tensor_info *t, int *out)
{
    char *nm = sl_pb_strdup(name);
    if (!nm) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    sl_status st = sl_graph_add_value(L->g, nm, t->dtype, &t->shape, SL_VALUE_CONST, out);
    if (st == SL_OK) {
        st = tensor_data(L, t, &L->g->values[*out], nm);
        if (st != SL_OK) {
            st = sl_error_wrap(st, "constant '%s'", nm);
        }
    }
    free(nm);
    return st;
}

/* Adds a constant from numbers (scalars: rank 0; tuples: rank 1). */
static sl_status add_const_numbers(loader *L, sl_pb name, sl_dtype dtype, int rank,
                                   const int64_t *ints, const double *dbls, int n, int *out)
{
    char *nm = sl_pb_strdup(name);
    if (!nm) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    sl_shape shape = {.rank = rank, .dims = {n}};
    sl_status st = sl_graph_add_value(L->g, nm, dtype, &shape, SL_VALUE_CONST, out);
    free(nm);
    SL_TRY(st);
    sl_value *v = &L->g->values[*out];
    size_t esz = sl_dtype_size(dtype);
    v->owned = alloc_aligned(esz * (size_t)(n ? n : 1));
    if (!v->owned) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    v->data = v->owned;
    for (int i = 0; i < n; i++) {
        switch (dtype) {
        case SL_DTYPE_FLOAT32: ((float *)v->owned)[i] = (float)dbls[i]; break;
        case SL_DTYPE_FLOAT64: ((double *)v->owned)[i] = dbls[i]; break;
        case SL_DTYPE_INT32: ((int32_t *)v->owned)[i] = (int32_t)ints[i]; break;
        case SL_DTYPE_BOOL: ((uint8_t *)v->owned)[i] = ints[i] != 0; break;
        default: ((int64_t *)v->owned)[i] = ints[i]; break;
        }
    }
    return SL_OK;
}

/* Does a tuple attribute hold floats? (any item typed FLOAT/DOUBLE or carrying floats) */
static sl_status tuple_is_float(const attr *a, int *is_float)
{
    *is_float = 0;
    sl_pb m = a->msg;
    sl_pb_field f;
    int has;
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, "AttributeProto"));
        if (!has) {
            return SL_OK;
        }
        if (f.num == 8 || f.num == 9) {
            *is_float = 1;
        } else if (f.num == 17 && f.wire == SL_PB_LEN) {
            attr sub;
            SL_TRY(attr_parse(f.bytes, &sub));
            if (sub.type == AT_FLOAT || sub.type == AT_DOUBLE || sub.has_f) {
                *is_float = 1;
            }
        }
    }
}

static int starts_with(sl_pb s, const char *prefix, sl_pb *rest)
{
    size_t n = strlen(prefix);
    if (sl_pb_size(s) < n || memcmp(s.p, prefix, n) != 0) {
        return 0;
    }
    rest->p = s.p + n;
    rest->end = s.end;
    return 1;
}

/* Defines `name` from a Constant node's "value" attribute. */
static sl_status define_constant(loader *L, sl_pb name, const attr *a)
{
    ref r = {.kind = REF_NONE};
    int v;
    sl_pb rest;
    /* <= 1.6 writes a tuple as repeated ints/floats typed by their element type */
    int old_tuple = starts_with(a->ref_attr_name, "scalar:Tuple[", &rest) ||
                    starts_with(a->ref_attr_name, "scalar:List[", &rest);
    switch (old_tuple ? AT_TUPLE : a->type) {
    case AT_NONE: return define(L, name, r);
    case AT_UMONAD:
    case AT_IOMONAD: r.kind = REF_MONAD; return define(L, name, r);
    case AT_TENSOR:
    case AT_TENSORS: {
        if (!a->has_t) {
            return sl_error(SL_ERR_FORMAT, "constant has no tensor");
        }
        tensor_info t;
        SL_TRY(tensor_parse(a->t, 0, &t));
        if (t.shape.rank == 0 && !t.has_raw && !t.has_ext && !t.n_typed) {
            /* a bare data type: a type value (e.g. Cast's target) */
            r.kind = REF_TYPE;
            r.dtype = t.dtype;
            return define(L, name, r);
        }
        SL_TRY(add_const_tensor(L, name, &t, &v));
        return define_value(L, name, v);
    }
    case AT_FLOAT:
    case AT_DOUBLE: {
        double d = a->f;
        SL_TRY(add_const_numbers(L, name, a->type == AT_FLOAT ? SL_DTYPE_FLOAT32 : SL_DTYPE_FLOAT64,
                                 0, NULL, &d, 1, &v));
        return define_value(L, name, v);
    }
    case AT_BOOL:
    case AT_INT8:
    case AT_INT16:
    case AT_INT32:
    case AT_INT64:
    case AT_UINT8:
    case AT_UINT16:
    case AT_UINT32:
    case AT_UINT64: {
        int64_t i = a->i;
        sl_dtype dt = a->type == AT_BOOL ? SL_DTYPE_BOOL
                      : a->type == AT_INT32 ? SL_DTYPE_INT32
                                            : SL_DTYPE_INT64;
        SL_TRY(add_const_numbers(L, name, dt, 0, &i, NULL, 1, &v));
        return define_value(L, name, v);
    }
    case AT_TUPLE:
    case AT_LIST: {
        int is_float, n;
        SL_TRY(tuple_is_float(a, &is_float));
        int64_t *ints = malloc(sizeof *ints * MAX_TUPLE_ITEMS);
        double *dbls = malloc(sizeof *dbls * MAX_TUPLE_ITEMS);
        sl_status st = ints && dbls ? SL_OK : sl_error(SL_ERR_NOMEM, "mindir: out of memory");
        if (st == SL_OK) {
            st = attr_numbers(a, is_float, ints, dbls, MAX_TUPLE_ITEMS, &n);
        }
        if (st == SL_OK) {
            st = add_const_numbers(L, name, is_float ? SL_DTYPE_FLOAT32 : SL_DTYPE_INT64, 1, ints,
                                   dbls, n, &v);
        }
        free(ints);
        free(dbls);
        SL_TRY(st);
        return define_value(L, name, v);
    }
    default:
        return sl_error(SL_ERR_UNSUPPORTED, "constant of attribute type %lld is not supported",
                        (long long)a->type);
    }
}

/* ---- nodes ---- */
typedef struct node_msg {
    sl_pb msg, op_type, name, key; /* key: output[0], or name */
    sl_pb inputs;                  /* the message again, for walking input fields */
    int n_inputs;
    int done;    /* processed */
    int waiting; /* on the load order's stack, waiting for the node defining an input */
} node_msg;

static int name_is(sl_pb s, const char *a, const char *b)
{
    return sl_pb_eq(s, a) || (b && sl_pb_eq(s, b));
}

/* Finds attribute `name` among the AttributeProto fields `field` of msg. */
static sl_status find_attr(sl_pb msg, uint32_t field, const char *name, attr *a, int *found)
{
    *found = 0;
    sl_pb_field f;
    int has;
    for (;;) {
        SL_TRY(sl_pb_next(&msg, &f, &has, "attributes"));
        if (!has) {
            return SL_OK;
        }
        if (f.num == field && f.wire == SL_PB_LEN) {
            SL_TRY(attr_parse(f.bytes, a));
            if (sl_pb_eq(a->name, name)) {
                *found = 1;
                return SL_OK;
            }
        }
    }
}

/* "0-1-2-3" -> {0, 1, 2, 3} */
static sl_status parse_dashed_ints(sl_pb s, int64_t *vals, int max, int *n, const char *what)
{
    *n = 0;
    const uint8_t *p = s.p;
    while (p < s.end) {
        int64_t v = 0;
        const uint8_t *start = p;
        while (p < s.end && *p >= '0' && *p <= '9' && v < ((int64_t)1 << 40)) {
            v = v * 10 + (*p++ - '0');
        }
        if (p == start || *n >= max || (p < s.end && *p != '-')) {
            return sl_error(SL_ERR_FORMAT, "attribute '%s' is not a list like \"0-1-2\"", what);
        }
        vals[(*n)++] = v;
        p += p < s.end;
    }
    return SL_OK;
}

static sl_status decode_attr(const sl_attr_desc *d, const attr *a, sl_params *p)
{
    char *base = (char *)p + d->offset;
    int n;
    switch (d->type) {
    case SL_ATTR_GROUP: {
        sl_pb g;
        int found;
        SL_TRY(attr_string(a, &g, &found));
        *(int64_t *)base = -1;
        for (int i = 0; found && d->names[i]; i++) {
            if (sl_pb_eq(g, d->names[i])) {
                *(int64_t *)base = i;
            }
        }
        return SL_OK;
    }
    case SL_ATTR_DTYPE:
        if (a->has_t) { /* a type value: a tensor holding only a data_type */
            tensor_info t;
            SL_TRY(tensor_parse(a->t, 1, &t));
            *(int64_t *)base = t.dtype;
            return SL_OK;
        }
        __attribute__((fallthrough)); /* else an int holding an sl_dtype */
    case SL_ATTR_BOOL:
    case SL_ATTR_INT: {
        int64_t i;
        SL_TRY(attr_numbers(a, 0, &i, NULL, 1, &n));
        if (n != 1) {
            return sl_error(SL_ERR_FORMAT, "attribute '%s' is not a number", d->name);
        }
        if (d->type == SL_ATTR_BOOL) {
            *(uint8_t *)base = i != 0;
        } else {
            *(int64_t *)base = i;
        }
        return SL_OK;
    }
    case SL_ATTR_FLOAT: {
        double f;
        SL_TRY(attr_numbers(a, 1, NULL, &f, 1, &n));
        if (n != 1) {
            return sl_error(SL_ERR_FORMAT, "attribute '%s' is not a number", d->name);
        }
        *(double *)base = f;
        return SL_OK;
    }
    case SL_ATTR_INTS: {
        int64_t *vals = (int64_t *)base;
        if (!a->has_s) {
            SL_TRY(attr_numbers(a, 0, vals, NULL, d->max_count, &n));
        } else if (sl_pb_eq(a->s, "WORLD_GROUP")) { /* MindSpore's group_ranks of a world group:
                                                       every rank, none listed */
            n = 0;
        } else { /* a list written as a string: "0-1-2-3" (group_ranks) */
            SL_TRY(parse_dashed_ints(a->s, vals, d->max_count, &n, d->name));
        }
        *(int64_t *)((char *)p + d->count) = n;
        return SL_OK;
    }
    case SL_ATTR_ENUM: {
        sl_pb s;
        int found;
        SL_TRY(attr_string(a, &s, &found));
        if (!found) {
            return sl_error(SL_ERR_FORMAT, "attribute '%s' is not a string", d->name);
        }
        for (int i = 0; d->names[i]; i++) {
            size_t len = strlen(d->names[i]);
            if (sl_pb_size(s) == len && strncasecmp((const char *)s.p, d->names[i], len) == 0) {
                *(int64_t *)base = i;
                return SL_OK;
            }
        }
        return sl_error(SL_ERR_UNSUPPORTED, "attribute '%s' has unsupported value '%.*s'", d->name,
                        (int)sl_pb_size(s), (const char *)s.p);
    }
    }
    return sl_error(SL_ERR_INTERNAL, "attribute '%s': bad schema type", d->name);
}

/* Takes an attribute's value from a constant input (MindSpore >= 2.3 passes many as inputs). */
static sl_status lift_attr(const sl_attr_desc *d, const ref *r, const sl_value *v, sl_params *p)
{
    char *base = (char *)p + d->offset;
    if (d->type == SL_ATTR_DTYPE && r->kind == REF_TYPE) {
        *(int64_t *)base = r->dtype;
        return SL_OK;
    }
    int64_t n = sl_shape_numel(&v->shape);
    if (d->type == SL_ATTR_INTS) {
        if (v->shape.rank > 1 || n > d->max_count) {
            return sl_error(SL_ERR_FORMAT, "input for '%s' has %lld values, at most %d allowed",
                            d->name, (long long)n, d->max_count);
        }
        for (int64_t i = 0; i < n; i++) {
            ((int64_t *)base)[i] = sl_value_get_int(v, i);
        }
        *(int64_t *)((char *)p + d->count) = n;
        return SL_OK;
    }
    if (n != 1 || d->type == SL_ATTR_ENUM || d->type == SL_ATTR_GROUP) {
        return sl_error(SL_ERR_UNSUPPORTED, "input for '%s' is not a scalar", d->name);
    }
    switch (d->type) {
    case SL_ATTR_BOOL: *(uint8_t *)base = sl_value_get_int(v, 0) != 0; break;
    case SL_ATTR_FLOAT: *(double *)base = sl_value_get_float(v, 0); break;
    default: *(int64_t *)base = sl_value_get_int(v, 0); break;
    }
    return SL_OK;
}

/* A tuple of scalars used where a tensor is expected (e.g. a shape computed from Shape items)
 * becomes a 1-D tensor, made once per tuple. */
static sl_status tuple_as_tensor(loader *L, const node_msg *nm, int tuple_ref, int *out)
{
    ref *t = &L->refs[tuple_ref];
    if (t->value > 0) {
        *out = t->value - 1;
        return SL_OK;
    }
    int ids[256];
    if (t->n_items > 256) {
        return sl_error(SL_ERR_UNSUPPORTED, "a tuple of more than 256 items");
    }
    for (int k = 0; k < t->n_items; k++) {
        const ref *item = &L->refs[t->items[k]];
        if (item->kind != REF_VALUE) {
            return sl_error(SL_ERR_UNSUPPORTED, "tuple item %d is not a tensor", k);
        }
        ids[k] = item->value;
    }
    char name[300];
    snprintf(name, sizeof name, "%.*s:tuple%d", (int)sl_pb_size(nm->key) % 256,
             (const char *)nm->key.p, tuple_ref);
    int v;
    SL_TRY(sl_graph_add_value(L->g, name, SL_DTYPE_UNKNOWN, NULL, SL_VALUE_ACT, &v));
    SL_TRY(sl_graph_add_node(L->g, SL_OP_MAKE_SEQ, name, ids, t->n_items, &v, 1, NULL, NULL));
    L->refs[tuple_ref].value = v + 1; /* 0 means "not made yet" */
    *out = v;
    return SL_OK;
}

static sl_status emit_op(loader *L, node_msg *nm, sl_op op, sl_pb attrs_msg, uint32_t attrs_field,
                         const int *in_refs, int n_in)
{
    const sl_op_info *info = sl_op_get(op);
    sl_params params;
    memset(&params, 0, sizeof params);
    uint8_t lifted[64] = {0};
    if (n_in > 64) {
        return sl_error(SL_ERR_UNSUPPORTED, "more than 64 inputs");
    }
    for (const sl_attr_desc *d = info->attrs; d->name; d++) {
        char *base = (char *)&params + d->offset;
        if (d->type == SL_ATTR_BOOL) {
            *(uint8_t *)base = d->def != 0;
        } else if (d->type == SL_ATTR_FLOAT) {
            *(double *)base = d->def;
        } else if (d->type == SL_ATTR_INTS) {
            ((int64_t *)base)[0] = (int64_t)d->def;
            *(int64_t *)((char *)&params + d->count) = d->def != 0;
        } else {
            *(int64_t *)base = (int64_t)d->def;
        }
        attr a;
        int found;
        SL_TRY(find_attr(attrs_msg, attrs_field, d->name, &a, &found));
        if (!found && d->alias) {
            SL_TRY(find_attr(attrs_msg, attrs_field, d->alias, &a, &found));
            if (found && d->aliased) {
                *(int64_t *)((char *)&params + d->aliased) = 1;
            }
        }
        if (found) {
            SL_TRY(decode_attr(d, &a, &params));
        }
        /* a tuple-input op takes attributes as inputs only after its tuple */
        int tuple_first = !(info->flags & SL_OPF_TUPLE_INPUT) ||
                          (n_in > 0 && L->refs[in_refs[0]].kind == REF_TUPLE);
        if (d->input > 0 && d->input < n_in && tuple_first) {
            const ref *r = &L->refs[in_refs[d->input]];
            const sl_value *v = r->kind == REF_VALUE ? &L->g->values[r->value] : NULL;
            if (r->kind == REF_TYPE || (v && v->kind == SL_VALUE_CONST)) {
                SL_TRY(lift_attr(d, r, v, &params));
                lifted[d->input] = 1;
            } else if (r->kind == REF_NONE) {
                lifted[d->input] = 1;
            }
        }
    }
    /* inputs: flatten a leading tuple, drop lifted ones and monads, None -> absent */
    int ids[256];
    int n_ids = 0;
    for (int i = 0; i < n_in; i++) {
        if (lifted[i]) {
            continue;
        }
        const ref *r = &L->refs[in_refs[i]];
        if (r->kind == REF_MONAD) {
            continue;
        }
        if (r->kind == REF_TUPLE && i == 0 && (info->flags & SL_OPF_TUPLE_INPUT)) {
            for (int k = 0; k < r->n_items; k++) {
                const ref *item = &L->refs[r->items[k]];
                if (item->kind != REF_VALUE || n_ids >= 256) {
                    return sl_error(SL_ERR_UNSUPPORTED, "tuple input item %d is not a tensor", k);
                }
                ids[n_ids++] = item->value;
            }
            continue;
        }
        if (n_ids >= 256) {
            return sl_error(SL_ERR_UNSUPPORTED, "more than 256 inputs");
        }
        if (r->kind == REF_TUPLE) {
            int v = -1;
            SL_TRY(tuple_as_tensor(L, nm, in_refs[i], &v));
            ids[n_ids++] = v;
        } else if (r->kind == REF_NONE) {
            ids[n_ids++] = -1;
        } else if (r->kind == REF_VALUE) {
            ids[n_ids++] = r->value;
        } else {
            return sl_error(SL_ERR_UNSUPPORTED, "input %d is a %s, not a tensor", i,
                            r->kind == REF_TUPLE ? "tuple" : "type");
        }
    }
    /* outputs: a tuple for Split (output_num tensors) and Broadcast (one per input) */
    int n_out = 1;
    if (op == SL_OP_SPLIT) {
        if (params.split.output_num < 1 || params.split.output_num > 256) {
            return sl_error(SL_ERR_FORMAT, "Split output_num %lld out of range",
                            (long long)params.split.output_num);
        }
        n_out = (int)params.split.output_num;
    } else if (op == SL_OP_BROADCAST) {
        n_out = n_ids;
    }
    int outs[256];
    char *key = sl_pb_strdup(nm->key);
    if (!key) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    size_t klen = strlen(key) + 16;
    char *vname = malloc(klen);
    sl_status st = vname ? SL_OK : sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    for (int k = 0; k < n_out && st == SL_OK; k++) {
        if (!(info->flags & SL_OPF_TUPLE_OUTPUT)) {
            snprintf(vname, klen, "%s", key);
        } else {
            snprintf(vname, klen, "%s:%d", key, k);
        }
        st = sl_graph_add_value(L->g, vname, SL_DTYPE_UNKNOWN, NULL, SL_VALUE_ACT, &outs[k]);
    }
    if (st == SL_OK) {
        st = sl_graph_add_node(L->g, op, key, ids, n_ids, outs, n_out, &params, NULL);
    }
    free(vname);
    free(key);
    SL_TRY(st);
    if (!(info->flags & SL_OPF_TUPLE_OUTPUT)) {
        return define_value(L, nm->key, outs[0]);
    }
    ref t = {.kind = REF_TUPLE, .n_items = n_out, .items = malloc(sizeof(int) * (size_t)n_out)};
    if (!t.items) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    for (int k = 0; k < n_out; k++) {
        ref r = {.kind = REF_VALUE, .value = outs[k]};
        sl_status s2 = add_ref(L, r, &t.items[k]);
        if (s2 != SL_OK) {
            free(t.items);
            return s2;
        }
    }
    return define(L, nm->key, t);
}

/* Processes one node; *ready = 0 when an input is not defined yet (its name in *missing). */
static sl_status process_node(loader *L, node_msg *nm, int *ready, sl_pb *missing)
{
    int in_refs[256];
    int n_in = 0;
    sl_pb m = nm->msg;
    sl_pb_field f;
    int has;
    *ready = 0;
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, "NodeProto"));
        if (!has) {
            break;
        }
        if (f.num == 1 && f.wire == SL_PB_LEN) {
            if (n_in >= 256) {
                return sl_error(SL_ERR_UNSUPPORTED, "more than 256 inputs");
            }
            int id = map_find(&L->names, f.bytes);
            if (id < 0) {
                *missing = f.bytes; /* not yet defined */
                return SL_OK;
            }
            in_refs[n_in++] = id;
        }
    }
    *ready = 1;

    sl_pb op_name = nm->op_type, rest;
    sl_pb attrs_msg = nm->msg;
    uint32_t attrs_field = 5;
    if (starts_with(nm->op_type, "REF::", &rest)) {
        int pi = map_find(&L->prims, rest);
        if (pi < 0) {
            if (map_find(&L->graphs, rest) >= 0) {
                return sl_error(SL_ERR_UNSUPPORTED, "calls to sub-graph '%.*s' are not supported",
                                (int)sl_pb_size(rest), (const char *)rest.p);
            }
            return sl_error(SL_ERR_FORMAT, "op_type '%.*s' names no primitive",
                            (int)sl_pb_size(nm->op_type), (const char *)nm->op_type.p);
        }
        attrs_msg = L->prim_msgs[pi];
        attrs_field = 3;
        int found;
        SL_TRY(sl_pb_find(attrs_msg, 2, &op_name, &found, "PrimitiveProto"));
        if (!found) {
            return sl_error(SL_ERR_FORMAT, "primitive '%.*s' has no op_type",
                            (int)sl_pb_size(rest), (const char *)rest.p);
        }
    }
    if (starts_with(op_name, "S-Prim-", &rest) || starts_with(op_name, "S_Prim_", &rest)) {
        op_name = rest;
    }

    if (sl_pb_eq(op_name, "Constant")) {
        attr a;
        int found;
        SL_TRY(find_attr(nm->msg, 5, "value", &a, &found));
        if (!found) {
            return sl_error(SL_ERR_FORMAT, "Constant has no 'value' attribute");
        }
        return define_constant(L, nm->key, &a);
    }
    if (name_is(op_name, "Load", "Depend") || name_is(op_name, "Return", "return")) {
        if (n_in < 1) {
            return sl_error(SL_ERR_FORMAT, "%.*s without inputs", (int)sl_pb_size(op_name),
                            (const char *)op_name.p);
        }
        ref r = L->refs[in_refs[0]];
        if (r.kind == REF_TUPLE) { /* share the items: copy the index list */
            int *items = malloc(sizeof(int) * (size_t)(r.n_items ? r.n_items : 1));
            if (!items) {
                return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
            }
            memcpy(items, r.items, sizeof(int) * (size_t)r.n_items);
            r.items = items;
        }
        return define(L, nm->key, r);
    }
    if (name_is(op_name, "UpdateState", NULL)) {
        ref r = {.kind = REF_MONAD};
        return define(L, nm->key, r);
    }
    if (name_is(op_name, "MakeTuple", "make_tuple")) {
        ref r = {.kind = REF_TUPLE, .n_items = n_in, .items = malloc(sizeof(int) * (size_t)(n_in ? n_in : 1))};
        if (!r.items) {
            return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
        }
        memcpy(r.items, in_refs, sizeof(int) * (size_t)n_in);
        return define(L, nm->key, r);
    }
    if (name_is(op_name, "TupleGetItem", "tuple_getitem")) {
        const ref *idx = n_in == 2 ? &L->refs[in_refs[1]] : NULL;
        const sl_value *iv = idx && idx->kind == REF_VALUE ? &L->g->values[idx->value] : NULL;
        if (!iv || iv->kind != SL_VALUE_CONST || sl_shape_numel(&iv->shape) != 1) {
            return sl_error(SL_ERR_FORMAT, "TupleGetItem needs a tuple and a constant index");
        }
        const ref *t = &L->refs[in_refs[0]];
        int64_t i = sl_value_get_int(iv, 0);
        if (t->kind == REF_TUPLE) {
            if (i < 0) {
                i += t->n_items;
            }
            if (i < 0 || i >= t->n_items) {
                return sl_error(SL_ERR_FORMAT, "TupleGetItem index %lld out of range [0, %d)",
                                (long long)i, t->n_items);
            }
            ref r = L->refs[t->items[i]];
            if (r.kind == REF_TUPLE) {
                return sl_error(SL_ERR_UNSUPPORTED, "nested tuples are not supported");
            }
            return define(L, nm->key, r);
        }
        /* an item of a sequence tensor (e.g. of a Shape) */
        return emit_op(L, nm, SL_OP_SEQ_GET_ITEM, attrs_msg, attrs_field, in_refs, n_in);
    }
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)sl_pb_size(op_name), (const char *)op_name.p);
    sl_op op = sl_op_find(name);
    if (op == SL_OP_COUNT || op == SL_OP_SEQ_GET_ITEM || op == SL_OP_MAKE_SEQ) {
        return sl_error(SL_ERR_UNSUPPORTED, "operator '%s' is not supported", name);
    }
    return emit_op(L, nm, op, attrs_msg, attrs_field, in_refs, n_in);
}

static sl_status parse_node_msg(sl_pb msg, node_msg *nm)
{
    memset(nm, 0, sizeof *nm);
    nm->msg = msg;
    sl_pb_field f;
    int has, have_out = 0;
    for (;;) {
        SL_TRY(sl_pb_next(&msg, &f, &has, "NodeProto"));
        if (!has) {
            break;
        }
        if (f.wire != SL_PB_LEN) {
            continue;
        }
        if (f.num == 2 && !have_out) {
            nm->key = f.bytes;
            have_out = 1;
        } else if (f.num == 3) {
            nm->name = f.bytes;
        } else if (f.num == 4) {
            nm->op_type = f.bytes;
        }
    }
    if (!have_out) {
        nm->key = nm->name;
    }
    if (!nm->op_type.p || !nm->key.p) {
        return sl_error(SL_ERR_FORMAT, "NodeProto without op_type or output");
    }
    return SL_OK;
}

static sl_status add_graph_input(loader *L, sl_pb msg)
{
    sl_pb name = {0}, tensor = {0}, attr_info = {0};
    sl_pb_field f;
    int has;
    for (;;) {
        SL_TRY(sl_pb_next(&msg, &f, &has, "ValueInfoProto"));
        if (!has) {
            break;
        }
        if (f.wire != SL_PB_LEN) {
            continue;
        }
        if (f.num == 1) {
            name = f.bytes;
        } else if (f.num == 2 && !tensor.p) {
            tensor = f.bytes;
        } else if (f.num == 5) {
            attr_info = f.bytes;
        }
    }
    if (!name.p) {
        return sl_error(SL_ERR_FORMAT, "graph input without a name");
    }
    tensor_info t;
    sl_status st = SL_OK;
    if (tensor.p) {
        st = tensor_parse(tensor, 1, &t);
    } else if (attr_info.p) { /* a scalar input: the abstract's tensor gives the dtype */
        attr a;
        SL_TRY(attr_parse(attr_info, &a));
        if (!a.has_t) {
            return sl_error(SL_ERR_UNSUPPORTED, "graph input '%.*s' is not a tensor or scalar",
                            (int)sl_pb_size(name), (const char *)name.p);
        }
        st = tensor_parse(a.t, 1, &t);
        t.shape.rank = 0;
    } else {
        return sl_error(SL_ERR_FORMAT, "graph input '%.*s' has no type",
                        (int)sl_pb_size(name), (const char *)name.p);
    }
    if (st != SL_OK) {
        return sl_error_wrap(st, "graph input '%.*s'", (int)sl_pb_size(name),
                             (const char *)name.p);
    }
    if (t.dtype == SL_DTYPE_UNKNOWN) {
        return sl_error(SL_ERR_UNSUPPORTED, "graph input '%.*s' has unsupported data_type %lld",
                        (int)sl_pb_size(name), (const char *)name.p, (long long)t.data_type);
    }
    char *nm = sl_pb_strdup(name);
    if (!nm) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    int v;
    st = sl_graph_add_value(L->g, nm, t.dtype, &t.shape, SL_VALUE_INPUT, &v);
    free(nm);
    SL_TRY(st);
    int *ins = realloc(L->g->inputs, sizeof(int) * (size_t)(L->g->n_inputs + 1));
    if (!ins) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    L->g->inputs = ins;
    ins[L->g->n_inputs++] = v;
    return define_value(L, name, v);
}

static sl_status add_output_ref(loader *L, int r, int depth)
{
    const ref *x = &L->refs[r];
    if (++L->output_items > MAX_OUTPUT_ITEMS) {
        return sl_error(SL_ERR_UNSUPPORTED, "graph outputs of more than %d tensors and tuple items",
                        MAX_OUTPUT_ITEMS);
    }
    if (x->kind == REF_TUPLE) {
        if (depth > 8) {
            return sl_error(SL_ERR_UNSUPPORTED, "graph output tuples nested too deep");
        }
        for (int i = 0; i < x->n_items; i++) {
            SL_TRY(add_output_ref(L, x->items[i], depth + 1));
        }
        return SL_OK;
    }
    if (x->kind != REF_VALUE) {
        return SL_OK; /* monads and None carry no data */
    }
    int *outs = realloc(L->g->outputs, sizeof(int) * (size_t)(L->g->n_outputs + 1));
    if (!outs) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    L->g->outputs = outs;
    outs[L->g->n_outputs++] = x->value;
    return SL_OK;
}

/* The types and shapes an output's ValueInfoProto declares (MindSpore's exports do: one
 * TensorProto per tensor of the output, -1 for a dynamic dimension), given to the outputs from
 * `first` on when they are as many: what the model reports for them until inference, which
 * replaces them, knows better (a model whose inputs have dynamic dimensions, before a resize). */
static sl_status declare_outputs(loader *L, sl_pb info, int first)
{
    int k = first, tensors = 0;
    sl_pb_field f;
    int has;
    for (sl_pb m = info;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, "ValueInfoProto"));
        if (!has) {
            break;
        }
        tensors += f.num == 2 && f.wire == SL_PB_LEN;
    }
    if (tensors != L->g->n_outputs - first) {
        return SL_OK; /* not one per output: not a declaration to trust */
    }
    for (;;) {
        SL_TRY(sl_pb_next(&info, &f, &has, "ValueInfoProto"));
        if (!has) {
            break;
        }
        if (f.num != 2 || f.wire != SL_PB_LEN) {
            continue;
        }
        tensor_info t;
        SL_TRY(tensor_parse(f.bytes, 1, &t));
        sl_value *v = &L->g->values[L->g->outputs[k++]];
        if (v->kind != SL_VALUE_CONST && v->dtype == SL_DTYPE_UNKNOWN &&
            t.dtype != SL_DTYPE_UNKNOWN) {
            v->dtype = t.dtype;
            v->shape = t.shape;
        }
    }
    return SL_OK;
}

static sl_status load_graph(loader *L, sl_pb graph)
{
    sl_pb_field f;
    int has;
    int n_nodes = 0;
    sl_pb m = graph;
    /* pass 1: parameters and inputs, count nodes */
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, "GraphProto"));
        if (!has) {
            break;
        }
        if (f.wire != SL_PB_LEN) {
            continue;
        }
        if (f.num == 1) {
            n_nodes++;
        } else if (f.num == 2 && !L->g->name) {
            L->g->name = sl_pb_strdup(f.bytes);
            if (!L->g->name) {
                return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
            }
        } else if (f.num == 3) {
            tensor_info t;
            SL_TRY(tensor_parse(f.bytes, 0, &t));
            if (!t.name.p) {
                return sl_error(SL_ERR_FORMAT, "graph parameter without a name");
            }
            int v;
            SL_TRY(add_const_tensor(L, t.name, &t, &v));
            SL_TRY(define_value(L, t.name, v));
        } else if (f.num == 5) {
            SL_TRY(add_graph_input(L, f.bytes));
        }
    }
    node_msg *nodes = calloc((size_t)(n_nodes ? n_nodes : 1), sizeof *nodes);
    if (!nodes) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    sl_status st = SL_OK;
    int k = 0;
    m = graph;
    while (st == SL_OK) {
        st = sl_pb_next(&m, &f, &has, "GraphProto");
        if (st != SL_OK || !has) {
            break;
        }
        if (f.num == 1 && f.wire == SL_PB_LEN) {
            st = parse_node_msg(f.bytes, &nodes[k++]);
        }
    }
    /* nodes normally come in topological order; one that uses a name not defined yet waits on a
     * stack while the node defining it goes first. Each node is pushed once: linear, where
     * passes over the list until none was left took quadratic time (100000 nodes listed last
     * first: minutes) */
    name_map producers = {0}; /* node key -> index */
    int *stack = malloc(sizeof(int) * (size_t)(n_nodes ? n_nodes : 1));
    if (st == SL_OK && !stack) {
        st = sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    for (int i = 0; i < k && st == SL_OK; i++) {
        st = map_put(&producers, nodes[i].key, i);
    }
    for (int i = 0; i < n_nodes && st == SL_OK; i++) {
        int depth = 0;
        if (!nodes[i].done) {
            stack[depth++] = i;
            nodes[i].waiting = 1;
        }
        while (depth > 0 && st == SL_OK) {
            node_msg *nm = &nodes[stack[depth - 1]];
            int ready;
            sl_pb missing = {0};
            st = process_node(L, nm, &ready, &missing);
            if (st != SL_OK) {
                st = sl_error_wrap(st, "node '%.*s' (%.*s)", (int)sl_pb_size(nm->key),
                                   (const char *)nm->key.p, (int)sl_pb_size(nm->op_type),
                                   (const char *)nm->op_type.p);
            } else if (ready) {
                nm->done = 1;
                nm->waiting = 0;
                depth--;
            } else {
                int p = map_find(&producers, missing);
                if (p < 0 || nodes[p].done || nodes[p].waiting) {
                    st = sl_error(SL_ERR_FORMAT, "node '%.*s' uses input '%.*s', which %s",
                                  (int)sl_pb_size(nm->key), (const char *)nm->key.p,
                                  (int)sl_pb_size(missing), (const char *)missing.p,
                                  p < 0 || nodes[p].done ? "nothing defines"
                                                         : "depends on it (a cycle)");
                } else {
                    nodes[p].waiting = 1;
                    stack[depth++] = p;
                }
            }
        }
    }
    map_free(&producers);
    free(stack);
    free(nodes);
    SL_TRY(st);
    /* outputs */
    m = graph;
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, "GraphProto"));
        if (!has) {
            break;
        }
        if (f.num != 6 || f.wire != SL_PB_LEN) {
            continue;
        }
        sl_pb name = {0};
        int found;
        SL_TRY(sl_pb_find(f.bytes, 1, &name, &found, "ValueInfoProto"));
        int r = found ? map_find(&L->names, name) : -1;
        if (r < 0) {
            return sl_error(SL_ERR_FORMAT, "graph output '%.*s' is not defined",
                            (int)sl_pb_size(name), name.p ? (const char *)name.p : "");
        }
        int first = L->g->n_outputs;
        st = add_output_ref(L, r, 0);
        if (st != SL_OK) {
            return sl_error_wrap(st, "graph output '%.*s'", (int)sl_pb_size(name),
                                 (const char *)name.p);
        }
        SL_TRY(declare_outputs(L, f.bytes, first));
    }
    if (L->g->n_outputs == 0) {
        return sl_error(SL_ERR_FORMAT, "the graph has no outputs");
    }
    return SL_OK;
}

/* One ModelProto.user_info map entry {1: key, 2: value}. */
static sl_status add_user_info(sl_graph *g, sl_pb entry)
{
    sl_pb key = {0}, value = {0};
    int found;
    SL_TRY(sl_pb_find(entry, 1, &key, &found, "user_info"));
    SL_TRY(sl_pb_find(entry, 2, &value, &found, "user_info"));
    char **kv = realloc(g->user_info, sizeof *kv * (size_t)(2 * g->n_user_info + 2));
    if (!kv) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    g->user_info = kv;
    kv[2 * g->n_user_info] = sl_pb_strdup(key);
    kv[2 * g->n_user_info + 1] = sl_pb_strdup(value);
    g->n_user_info++;
    if (!kv[2 * g->n_user_info - 2] || !kv[2 * g->n_user_info - 1]) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    return SL_OK;
}

static sl_status load_model(loader *L, sl_pb model)
{
    sl_pb graph = {0};
    int n_graphs = 0;
    sl_pb_field f;
    int has;
    sl_pb m = model;
    for (;;) {
        SL_TRY(sl_pb_next(&m, &f, &has, "ModelProto"));
        if (!has) {
            break;
        }
        if (f.num == 13 && f.wire == SL_PB_VARINT) {
            L->g->mind_ir_version = (int64_t)f.u;
            continue;
        }
        if (f.wire != SL_PB_LEN) {
            continue;
        }
        switch (f.num) {
        case 2:
            free(L->g->producer_name);
            L->g->producer_name = sl_pb_strdup(f.bytes);
            break;
        case 5:
            free(L->g->producer_version);
            L->g->producer_version = sl_pb_strdup(f.bytes);
            break;
        case 7:
            graph = f.bytes;
            n_graphs++;
            break;
        case 14: SL_TRY(add_user_info(L->g, f.bytes)); break;
        case 8: {
            sl_pb name;
            int found;
            SL_TRY(sl_pb_find(f.bytes, 2, &name, &found, "GraphProto"));
            if (found) {
                SL_TRY(map_put(&L->graphs, name, 0));
            }
            break;
        }
        case 12: {
            sl_pb name = {0};
            int found;
            SL_TRY(sl_pb_find(f.bytes, 1, &name, &found, "PrimitiveProto"));
            if (!found) {
                return sl_error(SL_ERR_FORMAT, "primitive without a name");
            }
            sl_pb *msgs = realloc(L->prim_msgs, sizeof *msgs * (size_t)(L->n_prims + 1));
            if (!msgs) {
                return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
            }
            L->prim_msgs = msgs;
            msgs[L->n_prims] = f.bytes;
            SL_TRY(map_put(&L->prims, name, L->n_prims));
            L->n_prims++;
            break;
        }
        default: break;
        }
    }
    if (n_graphs != 1) {
        return sl_error(SL_ERR_FORMAT, "expected one graph, found %d", n_graphs);
    }
    if (!L->g->producer_name) {
        L->g->producer_name = strdup("");
    }
    if (!L->g->producer_version) {
        L->g->producer_version = strdup("");
    }
    if (!L->g->producer_name || !L->g->producer_version) {
        return sl_error(SL_ERR_NOMEM, "mindir: out of memory");
    }
    return load_graph(L, graph);
}

sl_status sl_mindir_load(const char *path, sl_graph **out)
{
    *out = NULL;
    loader L;
    memset(&L, 0, sizeof L);
    L.path = path;
    sl_mapfile *file;
    sl_status st = sl_mapfile_open(path, &file);
    if (st != SL_OK) {
        return sl_error_wrap(st, "model");
    }
    const uint8_t *addr = sl_mapfile_data(file);
    size_t size = sl_mapfile_size(file);
    if (size >= 4) {
        uint32_t magic = (uint32_t)addr[0] | (uint32_t)addr[1] << 8 | (uint32_t)addr[2] << 16 |
                         (uint32_t)addr[3] << 24;
        for (size_t i = 0; i < sizeof encrypted_magics / sizeof encrypted_magics[0]; i++) {
            if (magic == encrypted_magics[i]) {
                sl_mapfile_release(file);
                return sl_error(SL_ERR_ENCRYPTED,
                                "model '%s' is an encrypted model (%s): pass dec_key to decrypt it; "
                                "shardlite does not decrypt models yet",
                                path, i == 0 ? "AES-GCM" : i == 1 ? "AES-CBC" : "SM4-CBC");
            }
        }
    }
    st = sl_graph_create(&L.g);
    if (st != SL_OK) {
        sl_mapfile_release(file);
        return st;
    }
    L.file = file;
    st = sl_graph_add_mapping(L.g, file);
    char dirbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    char *slash = strrchr(dirbuf, '/');
    if (slash) {
        *slash = '\0';
    }
    if (st == SL_OK && !realpath(slash ? (dirbuf[0] ? dirbuf : "/") : ".", L.dir)) {
        st = sl_error(SL_ERR_IO, "cannot resolve the folder of '%s': %s", path, strerror(errno));
    }
    if (st == SL_OK) {
        st = load_model(&L, sl_pb_make(addr, size));
    }
    if (st != SL_OK) {
        st = sl_error_wrap(st, "loading '%s'", path);
    }
    for (int i = 0; i < L.n_refs; i++) {
        free(L.refs[i].items);
    }
    for (int i = 0; i < L.n_ext; i++) {
        free(L.ext[i].location);
    }
    free(L.ext);
    free(L.refs);
    free(L.prim_msgs);
    map_free(&L.names);
    map_free(&L.prims);
    map_free(&L.graphs);
    if (st != SL_OK) {
        sl_graph_destroy(L.g);
        return st;
    }
    *out = L.g;
    return SL_OK;
}
