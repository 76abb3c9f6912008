/* shardlite._shardlite.Model: a built model (one sl_model) with its inputs, outputs and info. */
#include "shardlite_py.h"

/* Raises unless the model is built. */
static int check_built(const sl_py_model *self)
{
    if (self->model == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the model is not built: call build() first");
        return -1;
    }
    return 0;
}

/* Raises unless the model is built and not running in another thread (for calls that change
 * it; reading metadata and tensor handles is safe meanwhile). */
static int check_ready(const sl_py_model *self)
{
    return check_built(self) < 0 ? -1 : sl_py_check_idle(self);
}

static void model_dealloc(PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    sl_model_destroy(((sl_py_model *)obj)->model);
    type->tp_free(obj);
    Py_DECREF(type);
}

PyDoc_STRVAR(build_doc,
"build(path, thread_num=0)\n\n"
"Loads the MindIR file at path, infers shapes and plans memory, with thread_num worker threads\n"
"(0 = one per online CPU). The GIL is released meanwhile. A Model is built once.");

static PyObject *model_build(PyObject *obj, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"path", "thread_num", NULL};
    sl_py_model *self = (sl_py_model *)obj;
    PyObject *path = NULL;
    int thread_num = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|i:build", keywords, PyUnicode_FSConverter,
                                     &path, &thread_num)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (thread_num < 0) {
        PyErr_SetString(PyExc_ValueError, "thread_num must be a non-negative int");
        goto done;
    }
    if (self->model != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the model is already built");
        goto done;
    }
    if (sl_py_check_idle(self) < 0) {
        goto done;
    }
    sl_context *ctx = NULL;
    sl_status st = sl_context_create(&ctx);
    if (st == SL_OK) {
        st = sl_context_set_thread_num(ctx, thread_num);
    }
    if (st != SL_OK) {
        sl_context_destroy(ctx);
        sl_py_raise(st);
        goto done;
    }
    sl_model *model = NULL;
    const char *cpath = PyBytes_AS_STRING(path);
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    st = sl_model_build_from_file(cpath, ctx, &model);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    sl_context_destroy(ctx);
    if (st != SL_OK) {
        sl_py_raise(st);
        goto done;
    }
    self->model = model;
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(path);
    return result;
}

/* A list of TensorRefs for the model's inputs (is_input) or outputs. */
static PyObject *tensor_list(sl_py_model *self, int is_input)
{
    if (check_built(self) < 0) {
        return NULL;
    }
    sl_py_state *state = PyType_GetModuleState(Py_TYPE(self));
    if (state == NULL) {
        return NULL;
    }
    size_t n = is_input ? sl_model_input_count(self->model) : sl_model_output_count(self->model);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *ref = sl_py_tensor_new(state, self, is_input, i);
        if (ref == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, ref);
    }
    return list;
}

PyDoc_STRVAR(inputs_doc,
"inputs() -> list[TensorRef]\n\nThe model's inputs; write data into them before predict().");

static PyObject *model_inputs(PyObject *obj, PyObject *unused)
{
    (void)unused;
    return tensor_list((sl_py_model *)obj, 1);
}

PyDoc_STRVAR(outputs_doc,
"outputs() -> list[TensorRef]\n\nThe model's outputs; they hold the results of the last\n"
"predict() until the next predict() or resize().");

static PyObject *model_outputs(PyObject *obj, PyObject *unused)
{
    (void)unused;
    return tensor_list((sl_py_model *)obj, 0);
}

PyDoc_STRVAR(predict_doc,
"predict()\n\nRuns the model on the data in its inputs, writing its outputs. The GIL is\n"
"released meanwhile.");

static PyObject *model_predict(PyObject *obj, PyObject *unused)
{
    (void)unused;
    sl_py_model *self = (sl_py_model *)obj;
    if (check_ready(self) < 0) {
        return NULL;
    }
    sl_status st;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    st = sl_model_predict(self->model);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st != SL_OK) {
        return sl_py_raise(st);
    }
    Py_RETURN_NONE;
}

/* Reads one shape (a sequence of non-negative ints, at most SL_MAX_DIMS) into dims. */
static int parse_shape(PyObject *shape, Py_ssize_t index, int64_t *dims, size_t *rank)
{
    PyObject *seq = PySequence_Fast(shape, "");
    if (seq == NULL) {
        PyErr_Format(PyExc_TypeError, "dims element must be list of int, but got %R at index %zd.",
                     (PyObject *)Py_TYPE(shape), index);
        return -1;
    }
    int rc = -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > SL_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "dims[%zd] has %zd dimensions; at most %d are supported",
                     index, n, SL_MAX_DIMS);
        goto done;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, j);
        if (!PyLong_Check(item) || PyBool_Check(item)) {
            PyErr_Format(PyExc_TypeError, "dims[%zd] element must be int, but got %R at index %zd.",
                         index, (PyObject *)Py_TYPE(item), j);
            goto done;
        }
        long long d = PyLong_AsLongLong(item);
        if (d == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (d < 0) {
            PyErr_Format(PyExc_ValueError, "dims[%zd][%zd] is %lld; dimensions must be >= 0",
                         index, j, d);
            goto done;
        }
        dims[j] = (int64_t)d;
    }
    *rank = (size_t)n;
    rc = 0;
done:
    Py_DECREF(seq);
    return rc;
}

PyDoc_STRVAR(resize_doc,
"resize(shapes)\n\nSets new shapes for all inputs (a list with one list of ints per input),\n"
"then re-infers shapes and re-plans memory. Fails with BufferError while buffer views of the\n"
"model's tensors (e.g. numpy.asarray(ref)) are alive.");

static PyObject *model_resize(PyObject *obj, PyObject *shapes)
{
    sl_py_model *self = (sl_py_model *)obj;
    if (check_ready(self) < 0) {
        return NULL;
    }
    if (!PyList_Check(shapes) && !PyTuple_Check(shapes)) {
        PyErr_Format(PyExc_TypeError, "dims must be list, but got %R.", (PyObject *)Py_TYPE(shapes));
        return NULL;
    }
    if (self->exports > 0) {
        PyErr_Format(PyExc_BufferError,
                     "cannot resize: %zd buffer view(s) of this model's tensors are alive",
                     self->exports);
        return NULL;
    }
    Py_ssize_t n = PySequence_Size(shapes);
    /* One block: the dims of every input, then the per-input pointers and ranks. */
    size_t count = n > 0 ? (size_t)n : 1;
    int64_t *dims = PyMem_Calloc(count, SL_MAX_DIMS * sizeof(int64_t));
    const int64_t **rows = PyMem_Calloc(count, sizeof(*rows));
    size_t *ranks = PyMem_Calloc(count, sizeof(*ranks));
    PyObject *result = NULL;
    if (dims == NULL || rows == NULL || ranks == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        rows[i] = dims + (size_t)i * SL_MAX_DIMS;
        if (parse_shape(PySequence_Fast_GET_ITEM(shapes, i), i, dims + (size_t)i * SL_MAX_DIMS,
                        &ranks[i]) < 0) {
            goto done;
        }
    }
    sl_status st = sl_model_resize(self->model, (size_t)n, rows, ranks);
    if (st != SL_OK) {
        sl_py_raise(st);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(dims);
    PyMem_Free(rows);
    PyMem_Free(ranks);
    return result;
}

PyDoc_STRVAR(node_ops_doc,
"node_ops() -> list[str]\n\nThe operator name of every node of the graph, in execution order.");

static PyObject *model_node_ops(PyObject *obj, PyObject *unused)
{
    (void)unused;
    sl_py_model *self = (sl_py_model *)obj;
    if (check_built(self) < 0) {
        return NULL;
    }
    size_t n = sl_model_node_count(self->model);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *name = sl_py_str(sl_model_node_op(self->model, i));
        if (name == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, name);
    }
    return list;
}

static PyObject *get_producer(PyObject *obj, void *closure)
{
    (void)closure;
    sl_py_model *self = (sl_py_model *)obj;
    return check_built(self) < 0 ? NULL : sl_py_str(sl_model_producer(self->model));
}

/* The size_t-valued info accessors, selected by the getset closure. */
typedef size_t (*size_getter)(const sl_model *model);

static PyObject *get_size(PyObject *obj, void *closure)
{
    sl_py_model *self = (sl_py_model *)obj;
    if (check_built(self) < 0) {
        return NULL;
    }
    size_getter fn = *(const size_getter *)closure;
    return PyLong_FromSize_t(fn(self->model));
}

static const size_getter weight_count_fn = sl_model_weight_count;
static const size_getter weight_bytes_fn = sl_model_weight_bytes;
static const size_getter arena_bytes_fn = sl_model_arena_bytes;

static PyObject *get_built(PyObject *obj, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((sl_py_model *)obj)->model != NULL);
}

static PyGetSetDef model_getset[] = {
    {"built", get_built, NULL, "True once build() has succeeded.", NULL},
    {"producer", get_producer, NULL, "The producer recorded in the file, e.g. 'MindSpore 2.5.0'.",
     NULL},
    {"weight_count", get_size, NULL, "The number of constant tensors (weights) in the graph.",
     (void *)&weight_count_fn},
    {"weight_bytes", get_size, NULL, "The total bytes of the graph's weights.",
     (void *)&weight_bytes_fn},
    {"arena_bytes", get_size, NULL, "Bytes of the activation arena planned for the current shapes.",
     (void *)&arena_bytes_fn},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef model_methods[] = {
    {"build", (PyCFunction)(void (*)(void))model_build, METH_VARARGS | METH_KEYWORDS, build_doc},
    {"inputs", model_inputs, METH_NOARGS, inputs_doc},
    {"outputs", model_outputs, METH_NOARGS, outputs_doc},
    {"predict", model_predict, METH_NOARGS, predict_doc},
    {"resize", model_resize, METH_O, resize_doc},
    {"node_ops", model_node_ops, METH_NOARGS, node_ops_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(model_doc,
"Model()\n\nA shardlite model: create it empty, then build(path, thread_num).");

static PyType_Slot model_slots[] = {
    {Py_tp_doc, (void *)model_doc},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, model_dealloc},
    {Py_tp_methods, model_methods},
    {Py_tp_getset, model_getset},
    {0, NULL},
};

PyType_Spec sl_py_model_spec = {
    .name = "shardlite._shardlite.Model",
    .basicsize = sizeof(sl_py_model),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = model_slots,
};
