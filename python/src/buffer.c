/* shardlite._shardlite.Buffer (predict's results) and TensorBase (the fields and buffer
 * protocol of shardlite.Tensor). */
#include "shardlite_py.h"

#include <structmember.h>

#include <stddef.h>
#include <string.h>

sl_dtype sl_py_view_dtype(const Py_buffer *view)
{
    const char *f = view->format != NULL ? view->format : "B";
#if PY_LITTLE_ENDIAN
    const char native = '<';
#else
    const char native = '>';
#endif
    if (*f == '@' || *f == '=' || *f == native) {
        f++;
    }
    if (f[0] == '\0' || f[1] != '\0') {
        return SL_DTYPE_UNKNOWN; /* a byte-order mark of the other order, or a struct */
    }
    static const sl_dtype signed_of[9] = {
        [1] = SL_DTYPE_INT8, [2] = SL_DTYPE_INT16, [4] = SL_DTYPE_INT32, [8] = SL_DTYPE_INT64};
    static const sl_dtype unsigned_of[9] = {
        [1] = SL_DTYPE_UINT8, [2] = SL_DTYPE_UINT16, [4] = SL_DTYPE_UINT32, [8] = SL_DTYPE_UINT64};
    Py_ssize_t size = view->itemsize;
    if (size < 1 || size > 8) {
        return SL_DTYPE_UNKNOWN;
    }
    switch (f[0]) {
    case '?':
        return size == 1 ? SL_DTYPE_BOOL : SL_DTYPE_UNKNOWN;
    case 'b':
    case 'h':
    case 'i':
    case 'l':
    case 'q':
    case 'n':
        return signed_of[size];
    case 'B':
    case 'H':
    case 'I':
    case 'L':
    case 'Q':
    case 'N':
        return unsigned_of[size];
    case 'e':
        return SL_DTYPE_FLOAT16;
    case 'f':
        return SL_DTYPE_FLOAT32;
    case 'd':
        return SL_DTYPE_FLOAT64;
    default:
        return SL_DTYPE_UNKNOWN;
    }
}

/* ---- Buffer ---- */

PyObject *sl_py_buffer_copy(sl_py_state *state, sl_tensor *tensor)
{
    size_t rank = sl_tensor_rank(tensor);
    size_t size = sl_tensor_byte_size(tensor);
    sl_dtype dtype = sl_tensor_dtype(tensor);
    const void *src = sl_tensor_data(tensor);
    if (sl_py_dtype_format(dtype) == NULL || rank > SL_MAX_DIMS || (src == NULL && size > 0)) {
        PyErr_Format(PyExc_RuntimeError, "output '%s' (%s) cannot be read",
                     sl_tensor_name(tensor), sl_dtype_name(dtype));
        return NULL;
    }
    sl_py_buffer *self = PyObject_New(sl_py_buffer, state->buffer_type);
    if (self == NULL) {
        return NULL;
    }
    self->data = PyMem_Malloc(size > 0 ? size : 1);
    if (self->data == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    if (size > 0) {
        memcpy(self->data, src, size);
    }
    self->size = size;
    self->dtype = dtype;
    self->rank = (int)rank;
    Py_ssize_t stride = (Py_ssize_t)sl_dtype_size(dtype);
    for (size_t i = 0; i < rank; i++) {
        int64_t d = sl_tensor_dim(tensor, i);
        self->shape[i] = d > 0 ? (Py_ssize_t)d : 0;
    }
    for (size_t i = rank; i-- > 0;) {
        self->strides[i] = stride;
        stride *= self->shape[i];
    }
    return (PyObject *)self;
}

static void buffer_dealloc(PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    PyMem_Free(((sl_py_buffer *)obj)->data);
    type->tp_free(obj);
    Py_DECREF(type);
}

static int buffer_getbuffer(PyObject *obj, Py_buffer *view, int flags)
{
    sl_py_buffer *self = (sl_py_buffer *)obj;
    view->buf = self->data;
    view->obj = Py_NewRef(obj);
    view->len = (Py_ssize_t)self->size;
    view->readonly = 0;
    view->itemsize = (Py_ssize_t)sl_dtype_size(self->dtype);
    view->format = (flags & PyBUF_FORMAT) ? (char *)sl_py_dtype_format(self->dtype) : NULL;
    view->ndim = self->rank;
    view->shape = (flags & PyBUF_ND) == PyBUF_ND && self->rank > 0 ? self->shape : NULL;
    view->strides =
        (flags & PyBUF_STRIDES) == PyBUF_STRIDES && self->rank > 0 ? self->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    return 0;
}

static PyObject *buffer_shape(PyObject *obj, void *closure)
{
    (void)closure;
    sl_py_buffer *self = (sl_py_buffer *)obj;
    PyObject *shape = PyTuple_New(self->rank);
    for (int i = 0; shape != NULL && i < self->rank; i++) {
        PyObject *d = PyLong_FromSsize_t(self->shape[i]);
        if (d == NULL) {
            Py_CLEAR(shape);
            break;
        }
        PyTuple_SET_ITEM(shape, i, d);
    }
    return shape;
}

static PyObject *buffer_size(PyObject *obj, void *closure)
{
    (void)closure;
    sl_py_buffer *self = (sl_py_buffer *)obj;
    size_t item = sl_dtype_size(self->dtype);
    return PyLong_FromSize_t(item > 0 ? self->size / item : 0);
}

static PyObject *buffer_nbytes(PyObject *obj, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(((sl_py_buffer *)obj)->size);
}

static PyObject *buffer_dtype(PyObject *obj, void *closure)
{
    (void)closure;
    return PyLong_FromLong((long)((sl_py_buffer *)obj)->dtype);
}

static PyGetSetDef buffer_getset[] = {
    {"shape", buffer_shape, NULL, "The dimensions (a tuple).", NULL},
    {"size", buffer_size, NULL, "The number of elements.", NULL},
    {"nbytes", buffer_nbytes, NULL, "The size of the data in bytes.", NULL},
    {"dtype", buffer_dtype, NULL, "The element type, an sl_dtype number.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(buffer_doc,
"An N-d array owning a copy of a model output (what predict returns inside each Tensor).\n"
"numpy.asarray(buffer) is a zero-copy view; bfloat16 data appears as uint16 bits.");

static PyType_Slot buffer_slots[] = {
    {Py_tp_doc, (void *)buffer_doc},
    {Py_tp_dealloc, buffer_dealloc},
    {Py_tp_getset, buffer_getset},
    {Py_bf_getbuffer, buffer_getbuffer},
    {0, NULL},
};

PyType_Spec sl_py_buffer_spec = {
    .name = "shardlite._shardlite.Buffer",
    .basicsize = sizeof(sl_py_buffer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = buffer_slots,
};

/* ---- TensorBase ---- */

static int base_traverse(PyObject *obj, visitproc visit, void *arg)
{
    sl_py_tensor_base *self = (sl_py_tensor_base *)obj;
    Py_VISIT(Py_TYPE(obj));
    Py_VISIT(self->data);
    Py_VISIT(self->dtype);
    Py_VISIT(self->name);
    Py_VISIT(self->format);
    Py_VISIT(self->device);
    return 0;
}

static int base_clear(PyObject *obj)
{
    sl_py_tensor_base *self = (sl_py_tensor_base *)obj;
    Py_CLEAR(self->data);
    Py_CLEAR(self->dtype);
    Py_CLEAR(self->name);
    Py_CLEAR(self->format);
    Py_CLEAR(self->device);
    return 0;
}

static void base_dealloc(PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    PyObject_GC_UnTrack(obj);
    base_clear(obj);
    type->tp_free(obj);
    Py_DECREF(type);
}

/* Hands out the buffer of the object holding the data (the view then belongs to it). */
static int base_getbuffer(PyObject *obj, Py_buffer *view, int flags)
{
    sl_py_tensor_base *self = (sl_py_tensor_base *)obj;
    if (self->data == NULL) {
        PyErr_SetString(PyExc_BufferError, "the Tensor has no data");
        view->obj = NULL;
        return -1;
    }
    return PyObject_GetBuffer(self->data, view, flags);
}

static PyMemberDef base_members[] = {
    {"_data", T_OBJECT_EX, offsetof(sl_py_tensor_base, data), 0,
     "The object holding the data: a numpy array, a TensorRef or a Buffer."},
    {"_dtype", T_OBJECT_EX, offsetof(sl_py_tensor_base, dtype), 0, "The DataType."},
    {"_name", T_OBJECT_EX, offsetof(sl_py_tensor_base, name), 0, "The name (str)."},
    {"_format", T_OBJECT_EX, offsetof(sl_py_tensor_base, format), 0, "The Format."},
    {"_device", T_OBJECT_EX, offsetof(sl_py_tensor_base, device), 0, "The device (str)."},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(base_doc,
"The C part of shardlite.Tensor: its fields, and the buffer protocol, which hands out the\n"
"buffer of the object holding the data (so numpy.asarray(tensor) does not copy).");

static PyType_Slot base_slots[] = {
    {Py_tp_doc, (void *)base_doc},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, base_dealloc},
    {Py_tp_traverse, base_traverse},
    {Py_tp_clear, base_clear},
    {Py_tp_members, base_members},
    {Py_bf_getbuffer, base_getbuffer},
    {0, NULL},
};

PyType_Spec sl_py_tensor_base_spec = {
    .name = "shardlite._shardlite.TensorBase",
    .basicsize = sizeof(sl_py_tensor_base),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = base_slots,
};
