/* shardlite._shardlite.TensorRef: an input or output of a Model, with the N-d buffer protocol. */
#include "shardlite_py.h"

#include <string.h>

PyObject *sl_py_tensor_new(sl_py_state *state, sl_py_model *owner, int is_input, size_t index)
{
    sl_tensor *tensor = is_input ? sl_model_input(owner->model, index)
                                 : sl_model_output(owner->model, index);
    if (tensor == NULL) {
        return sl_py_raise(SL_ERR_INTERNAL);
    }
    sl_py_tensor *self = PyObject_New(sl_py_tensor, state->tensor_type);
    if (self == NULL) {
        return NULL;
    }
    self->owner = (sl_py_model *)Py_NewRef((PyObject *)owner);
    self->tensor = tensor;
    self->is_input = is_input;
    self->index = index;
    return (PyObject *)self;
}

static void tensor_dealloc(PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    Py_DECREF(((sl_py_tensor *)obj)->owner);
    type->tp_free(obj);
    Py_DECREF(type);
}

const char *sl_py_dtype_format(sl_dtype dtype)
{
    switch (dtype) {
    case SL_DTYPE_BOOL:
        return "?";
    case SL_DTYPE_INT8:
        return "b";
    case SL_DTYPE_INT16:
        return "h";
    case SL_DTYPE_INT32:
        return "i";
    case SL_DTYPE_INT64:
        return "q";
    case SL_DTYPE_UINT8:
        return "B";
    case SL_DTYPE_UINT16:
    case SL_DTYPE_BFLOAT16:
        return "H";
    case SL_DTYPE_UINT32:
        return "I";
    case SL_DTYPE_UINT64:
        return "Q";
    case SL_DTYPE_FLOAT16:
        return "e";
    case SL_DTYPE_FLOAT32:
        return "f";
    case SL_DTYPE_FLOAT64:
        return "d";
    default:
        return NULL;
    }
}

static int tensor_getbuffer(PyObject *obj, Py_buffer *view, int flags)
{
    sl_py_tensor *self = (sl_py_tensor *)obj;
    sl_tensor *t = self->tensor;
    const char *name = sl_tensor_name(t);
    sl_dtype dtype = sl_tensor_dtype(t);
    const char *format = sl_py_dtype_format(dtype);
    if (format == NULL) {
        PyErr_Format(PyExc_BufferError, "tensor '%s' has dtype %s, which has no buffer format",
                     name, sl_dtype_name(dtype));
        return -1;
    }
    /* The shape is stable while views exist: resize refuses to run until they are released. */
    size_t rank = sl_tensor_rank(t);
    for (size_t i = 0; i < rank; i++) {
        int64_t d = sl_tensor_dim(t, i);
        if (d < 0) {
            PyErr_Format(PyExc_BufferError,
                         "tensor '%s' has a dynamic dimension %zu; resize the model first", name,
                         i);
            return -1;
        }
        self->shape[i] = (Py_ssize_t)d;
    }
    Py_ssize_t itemsize = (Py_ssize_t)sl_dtype_size(dtype);
    Py_ssize_t stride = itemsize;
    for (size_t i = rank; i-- > 0;) {
        self->strides[i] = stride;
        stride *= self->shape[i];
    }
    void *data = sl_tensor_data(t);
    size_t size = sl_tensor_byte_size(t);
    if (data == NULL && size > 0) {
        PyErr_Format(PyExc_BufferError, "tensor '%s' has no data buffer", name);
        return -1;
    }
    static char empty; /* a valid address for a zero-size tensor without a buffer */
    view->buf = data != NULL ? data : &empty;
    view->obj = Py_NewRef(obj);
    view->len = (Py_ssize_t)size;
    view->readonly = 0;
    view->itemsize = itemsize;
    view->format = (flags & PyBUF_FORMAT) ? (char *)format : NULL;
    view->ndim = (int)rank;
    view->shape = (flags & PyBUF_ND) == PyBUF_ND && rank > 0 ? self->shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES && rank > 0 ? self->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    self->owner->exports++;
    return 0;
}

static void tensor_releasebuffer(PyObject *obj, Py_buffer *view)
{
    (void)view;
    ((sl_py_tensor *)obj)->owner->exports--;
}

PyDoc_STRVAR(set_data_doc,
"set_data(data)\n\nCopies the elements of a buffer (e.g. a numpy array, in any memory order) into\n"
"the tensor; its size in bytes must equal data_size. The dtype is not checked.");

static PyObject *tensor_set_data(PyObject *obj, PyObject *data)
{
    sl_py_tensor *self = (sl_py_tensor *)obj;
    if (!PyObject_CheckBuffer(data)) {
        PyErr_Format(PyExc_TypeError, "data must support the buffer protocol, but got %R.",
                     (PyObject *)Py_TYPE(data));
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_STRIDED_RO) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    sl_py_lock(self->owner);
    size_t size = sl_tensor_byte_size(self->tensor);
    void *dst = sl_tensor_data(self->tensor);
    if ((size_t)view.len != size) {
        PyErr_Format(PyExc_ValueError, "data size not equal! tensor '%s' needs %zu bytes, got %zd",
                     sl_tensor_name(self->tensor), size, view.len);
    } else if (size > 0 && dst == NULL) {
        PyErr_Format(PyExc_RuntimeError, "tensor '%s' has no data buffer; resize the model first",
                     sl_tensor_name(self->tensor));
    } else if (view.buf == dst || size == 0) {
        result = Py_NewRef(Py_None); /* setting a tensor from a view of itself */
    } else if (PyBuffer_ToContiguous(dst, &view, view.len, 'C') == 0) {
        result = Py_NewRef(Py_None);
    }
    sl_py_unlock(self->owner);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *get_name(PyObject *obj, void *closure)
{
    (void)closure;
    return sl_py_str(sl_tensor_name(((sl_py_tensor *)obj)->tensor));
}

static PyObject *get_dtype(PyObject *obj, void *closure)
{
    (void)closure;
    return PyLong_FromLong((long)sl_tensor_dtype(((sl_py_tensor *)obj)->tensor));
}

static PyObject *get_shape(PyObject *obj, void *closure)
{
    (void)closure;
    const sl_tensor *t = ((sl_py_tensor *)obj)->tensor;
    size_t rank = sl_tensor_rank(t);
    PyObject *shape = PyTuple_New((Py_ssize_t)rank);
    if (shape == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < rank; i++) {
        PyObject *d = PyLong_FromLongLong((long long)sl_tensor_dim(t, i));
        if (d == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, (Py_ssize_t)i, d);
    }
    return shape;
}

static PyObject *get_element_num(PyObject *obj, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(sl_tensor_element_count(((sl_py_tensor *)obj)->tensor));
}

static PyObject *get_data_size(PyObject *obj, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(sl_tensor_byte_size(((sl_py_tensor *)obj)->tensor));
}

static PyObject *get_model(PyObject *obj, void *closure)
{
    (void)closure;
    return Py_NewRef((PyObject *)((sl_py_tensor *)obj)->owner);
}

static PyObject *get_is_input(PyObject *obj, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((sl_py_tensor *)obj)->is_input);
}

static PyObject *get_index(PyObject *obj, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(((sl_py_tensor *)obj)->index);
}

static PyObject *tensor_repr(PyObject *obj)
{
    sl_py_tensor *self = (sl_py_tensor *)obj;
    PyObject *name = get_name(obj, NULL);
    PyObject *shape = name != NULL ? get_shape(obj, NULL) : NULL;
    PyObject *repr = NULL;
    if (shape != NULL) {
        repr = PyUnicode_FromFormat("<TensorRef %s %zu %R: %s %R>",
                                    self->is_input ? "input" : "output", self->index, name,
                                    sl_dtype_name(sl_tensor_dtype(self->tensor)), shape);
    }
    Py_XDECREF(name);
    Py_XDECREF(shape);
    return repr;
}

static PyGetSetDef tensor_getset[] = {
    {"name", get_name, NULL, "The tensor's name in the graph.", NULL},
    {"dtype", get_dtype, NULL, "The element type, an sl_dtype (MindSpore Lite DataType) number.",
     NULL},
    {"shape", get_shape, NULL, "The dimensions (a tuple); -1 marks an unresolved dynamic one.",
     NULL},
    {"element_num", get_element_num, NULL, "The number of elements.", NULL},
    {"data_size", get_data_size, NULL, "The size of the data in bytes.", NULL},
    {"size", get_element_num, NULL, "The number of elements (as numpy's ndarray.size).", NULL},
    {"nbytes", get_data_size, NULL, "The size of the data in bytes (as numpy's ndarray.nbytes).",
     NULL},
    {"model", get_model, NULL, "The Model this tensor belongs to.", NULL},
    {"is_input", get_is_input, NULL, "True for a model input, False for an output.", NULL},
    {"index", get_index, NULL, "The position among the model's inputs or outputs.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef tensor_methods[] = {
    {"set_data", tensor_set_data, METH_O, set_data_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(tensor_doc,
"An input or output tensor of a Model (from Model.inputs() or Model.outputs()); it keeps the\n"
"Model alive. It exports its data through the buffer protocol, so numpy.asarray(ref) is a\n"
"zero-copy view (bfloat16 data appears as uint16 bits).");

static PyType_Slot tensor_slots[] = {
    {Py_tp_doc, (void *)tensor_doc},
    {Py_tp_dealloc, tensor_dealloc},
    {Py_tp_repr, tensor_repr},
    {Py_tp_methods, tensor_methods},
    {Py_tp_getset, tensor_getset},
    {Py_bf_getbuffer, tensor_getbuffer},
    {Py_bf_releasebuffer, tensor_releasebuffer},
    {0, NULL},
};

PyType_Spec sl_py_tensor_spec = {
    .name = "shardlite._shardlite.TensorRef",
    .basicsize = sizeof(sl_py_tensor),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = tensor_slots,
};
