/* shardlite._shardlite.Model: a built model (one sl_model) with its inputs, outputs and info. */
#include "shardlite_py.h"

#include <stdarg.h>
#include <string.h>

/* Raises unless the model is built. */
static int check_built(const sl_py_model *self)
{
    if (self->model == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the model is not built: call build() first");
        return -1;
    }
    return 0;
}

static PyObject *model_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    sl_py_model *self = (sl_py_model *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void model_dealloc(PyObject *obj)
{
    PyTypeObject *type = Py_TYPE(obj);
    sl_py_model *self = (sl_py_model *)obj;
    /* without the GIL: releasing a communicator may wait for another thread's rendezvous,
     * which may want the GIL for its interrupt check */
    Py_BEGIN_ALLOW_THREADS
    sl_model_destroy(self->model);
    Py_END_ALLOW_THREADS
    if (self->lock != NULL) {
        PyThread_free_lock(self->lock);
    }
    Py_XDECREF(self->out_names);
    type->tp_free(obj);
    Py_DECREF(type);
}

/* A tuple of the names of the model's outputs. */
static PyObject *output_names(const sl_model *model)
{
    size_t n = sl_model_output_count(model);
    PyObject *names = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; names != NULL && i < n; i++) {
        PyObject *name = sl_py_str(sl_tensor_name(sl_model_output(model, i)));
        if (name == NULL) {
            Py_CLEAR(names);
            break;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, name);
    }
    return names;
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
    sl_py_lock(self);
    Py_BEGIN_ALLOW_THREADS
    st = sl_model_build_from_file(cpath, ctx, &model);
    Py_END_ALLOW_THREADS
    sl_context_destroy(ctx);
    if (st != SL_OK) {
        sl_py_unlock(self);
        sl_py_raise_waited(st);
        goto done;
    }
    PyObject *names = output_names(model);
    if (names == NULL || self->model != NULL) {
        Py_BEGIN_ALLOW_THREADS /* see model_dealloc */
        sl_model_destroy(model);
        Py_END_ALLOW_THREADS
        if (names != NULL) {
            Py_DECREF(names);
            PyErr_SetString(PyExc_RuntimeError, "the model is already built");
        }
    } else {
        self->model = model;
        self->out_names = names;
        result = Py_NewRef(Py_None);
    }
    sl_py_unlock(self);
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

/* A model with communication ops predicts from one thread at a time: two threads' turns could
 * come in different orders on different ranks, pairing one call's collectives with the
 * other's. So a second thread's predict fails rather than waits. Call with the GIL; returns 0
 * (then call end_predict) or -1 with RuntimeError set. */
static int begin_predict(sl_py_model *self)
{
    if (!sl_model_communicates(self->model)) {
        return 0;
    }
    if (self->predicting) {
        PyErr_SetString(PyExc_RuntimeError,
                        "predict failed! Error is another thread is predicting with this model, "
                        "which communicates with other ranks: every rank must run its "
                        "collectives in the same order, so a distributed model predicts from one "
                        "thread at a time.");
        return -1;
    }
    self->predicting = 1;
    return 0;
}

static void end_predict(sl_py_model *self)
{
    self->predicting = 0;
}

static PyObject *model_predict(PyObject *obj, PyObject *unused)
{
    (void)unused;
    sl_py_model *self = (sl_py_model *)obj;
    if (check_built(self) < 0) {
        return NULL;
    }
    if (begin_predict(self) < 0) {
        return NULL;
    }
    sl_status st;
    sl_py_lock(self);
    Py_BEGIN_ALLOW_THREADS
    st = sl_model_predict(self->model);
    Py_END_ALLOW_THREADS
    sl_py_unlock(self);
    end_predict(self);
    if (st != SL_OK) {
        return sl_py_raise_waited(st);
    }
    Py_RETURN_NONE;
}

/* Reads one shape (a sequence of ints in [0, 2**63), at most SL_MAX_DIMS) into dims;
 * ValueError for a dimension out of range. */
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
        int overflow = 0;
        long long d = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (d == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (overflow != 0) {
            PyErr_Format(PyExc_ValueError, "dims[%zd][%zd] is %s; dimensions must be >= 0 and "
                         "< 2**63", index, j, overflow > 0 ? "2**63 or more" : "below -2**63");
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
    if (check_built(self) < 0) {
        return NULL;
    }
    if (!PyList_Check(shapes) && !PyTuple_Check(shapes)) {
        PyErr_Format(PyExc_TypeError, "dims must be list, but got %R.", (PyObject *)Py_TYPE(shapes));
        return NULL;
    }
    /* an immutable copy: parsing an item may run Python code that changes the list */
    shapes = PySequence_Tuple(shapes);
    if (shapes == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(shapes);
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
        if (parse_shape(PyTuple_GET_ITEM(shapes, i), i, dims + (size_t)i * SL_MAX_DIMS,
                        &ranks[i]) < 0) {
            goto done;
        }
    }
    sl_py_lock(self);
    sl_status st = self->exports > 0 ? SL_ERR_STATE
                                     : sl_model_resize(self->model, (size_t)n, rows, ranks);
    sl_py_unlock(self);
    if (st == SL_ERR_STATE && self->exports > 0) {
        PyErr_Format(PyExc_BufferError,
                     "cannot resize: %zd buffer view(s) of this model's tensors are alive",
                     self->exports);
        goto done;
    }
    if (st != SL_OK) {
        sl_py_raise(st);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(dims);
    PyMem_Free(rows);
    PyMem_Free(ranks);
    Py_DECREF(shapes);
    return result;
}

/* One input of run(): where its data comes from. */
typedef struct feed {
    Py_buffer view;
    int has_view;
    int inplace;   /* the model's own input buffer: nothing to copy */
} feed;

/* Raises RuntimeError("predict failed! Error is <message>"). */
static void predict_failed(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    PyObject *detail = PyUnicode_FromFormatV(fmt, args);
    va_end(args);
    if (detail != NULL) {
        PyErr_Format(PyExc_RuntimeError, "predict failed! Error is %U", detail);
        Py_DECREF(detail);
    }
}

/* Raises TypeError unless item, inputs[i] of run(), is a Tensor or a numpy array. */
static int check_input(sl_py_state *state, PyObject *item, Py_ssize_t i)
{
    if (PyObject_TypeCheck(item, state->tensor_base) ||
        (state->ndarray_type != NULL &&
         PyObject_TypeCheck(item, (PyTypeObject *)state->ndarray_type))) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "inputs element must be Tensor or numpy.ndarray, but got %R at index %zd.",
                 (PyObject *)Py_TYPE(item), i);
    return -1;
}

/* Fills feeds[i] for input i of the model from item (a Tensor or a numpy array, as
 * check_input() found). */
static int gather(sl_py_model *self, sl_py_state *state, PyObject *item, Py_ssize_t i, feed *f)
{
    sl_tensor *dst = sl_model_input(self->model, (size_t)i);
    sl_dtype want = sl_tensor_dtype(dst);
    PyObject *src = item;
    long declared = -1;
    PyObject *copy = NULL;
    if (PyObject_TypeCheck(item, state->tensor_base)) {
        sl_py_tensor_base *base = (sl_py_tensor_base *)item;
        src = base->data;
        /* only the holders shardlite makes, and an int dtype: no user code runs here, under
         * the model's lock */
        int known = src != NULL && (Py_IS_TYPE(src, state->tensor_type) ||
                                    Py_IS_TYPE(src, state->buffer_type) ||
                                    (state->ndarray_type != NULL &&
                                     Py_IS_TYPE(src, (PyTypeObject *)state->ndarray_type)));
        declared = base->dtype != NULL && PyLong_Check(base->dtype) ? PyLong_AsLong(base->dtype)
                                                                    : -1;
        if (!known || declared == -1) {
            PyErr_Clear();
            predict_failed("inputs[%zd] is a Tensor without valid data", i);
            return -1;
        }
        if (Py_IS_TYPE(src, state->tensor_type)) {
            sl_py_tensor *ref = (sl_py_tensor *)src;
            if (ref->owner == self && ref->is_input && ref->index == (size_t)i) {
                f->inplace = 1;
                return 0;
            }
            if (ref->owner == self) {
                /* Another buffer of this model: copy it, a resize would move it. */
                copy = sl_py_buffer_copy(state, ref->tensor);
                if (copy == NULL) {
                    return -1;
                }
                src = copy;
            }
        }
    }
    int rc = PyObject_GetBuffer(src, &f->view, PyBUF_RECORDS_RO);
    Py_XDECREF(copy); /* the view keeps it alive */
    if (rc < 0) {
        if (declared < 0) {
            PyErr_Clear(); /* e.g. an ml_dtypes array: let Python convert it */
            PyErr_SetString(state->convert_error, "convert");
        }
        return -1;
    }
    f->has_view = 1;
    sl_dtype got = sl_py_view_dtype(&f->view);
    if (got == SL_DTYPE_UNKNOWN && declared < 0) {
        PyErr_SetString(state->convert_error, "convert");
        return -1;
    }
    int ok = got == want || (want == SL_DTYPE_BFLOAT16 && got == SL_DTYPE_UINT16);
    if (declared >= 0) {
        ok = ok && declared == (long)want;
        got = (sl_dtype)declared;
    }
    if (!ok) {
        predict_failed("inputs[%zd] ('%s'): data type not equal! got %s, the model's input is %s",
                       i, sl_tensor_name(dst), sl_dtype_name(got), sl_dtype_name(want));
        return -1;
    }
    if (f->view.ndim > SL_MAX_DIMS) {
        predict_failed("inputs[%zd] has %d dimensions; at most %d are supported", i,
                       f->view.ndim, SL_MAX_DIMS);
        return -1;
    }
    return 0;
}

/* Whether input i of the model already has the shape of view. */
static int same_shape(const sl_tensor *t, const Py_buffer *view)
{
    if (sl_tensor_rank(t) != (size_t)view->ndim) {
        return 0;
    }
    for (int d = 0; d < view->ndim; d++) {
        if (sl_tensor_dim(t, (size_t)d) != (int64_t)view->shape[d]) {
            return 0;
        }
    }
    return 1;
}

/* Resizes the model to the shapes of the feeds (in-place inputs keep theirs). */
static int resize_to(sl_py_model *self, const feed *feeds, size_t n)
{
    if (self->exports > 0) {
        predict_failed("the inputs' shapes changed, but the model cannot be resized while %zd "
                       "numpy view(s) of its tensors are alive", self->exports);
        return -1;
    }
    int64_t *dims = PyMem_Calloc(n > 0 ? n : 1, SL_MAX_DIMS * sizeof(int64_t));
    const int64_t **rows = PyMem_Calloc(n > 0 ? n : 1, sizeof(*rows));
    size_t *ranks = PyMem_Calloc(n > 0 ? n : 1, sizeof(*ranks));
    int rc = -1;
    if (dims == NULL || rows == NULL || ranks == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t *row = dims + i * SL_MAX_DIMS;
        rows[i] = row;
        if (feeds[i].inplace) {
            const sl_tensor *t = sl_model_input(self->model, i);
            ranks[i] = sl_tensor_rank(t);
            for (size_t d = 0; d < ranks[i]; d++) {
                row[d] = sl_tensor_dim(t, d);
            }
        } else {
            ranks[i] = (size_t)feeds[i].view.ndim;
            for (size_t d = 0; d < ranks[i]; d++) {
                row[d] = (int64_t)feeds[i].view.shape[d];
            }
        }
    }
    sl_status st = sl_model_resize(self->model, n, rows, ranks);
    if (st != SL_OK) {
        predict_failed("resize to the inputs' shapes failed: %s", sl_last_error());
        goto done;
    }
    rc = 0;
done:
    PyMem_Free(dims);
    PyMem_Free(rows);
    PyMem_Free(ranks);
    return rc;
}

/* The results of the last predict: one new Tensor (owning a copy) per output. */
static PyObject *results(sl_py_model *self, sl_py_state *state)
{
    Py_ssize_t n = PyTuple_GET_SIZE(self->out_names);
    PyTypeObject *cls = (PyTypeObject *)state->tensor_cls;
    PyObject *list = PyList_New(n);
    for (Py_ssize_t j = 0; list != NULL && j < n; j++) {
        sl_tensor *t = sl_model_output(self->model, (size_t)j);
        sl_dtype dtype = sl_tensor_dtype(t);
        PyObject *dt = (int)dtype >= 0 && dtype <= SL_PY_DTYPE_MAX ? state->dtypes[dtype] : NULL;
        PyObject *data = dt != NULL ? sl_py_buffer_copy(state, t) : NULL;
        sl_py_tensor_base *r = data != NULL ? (sl_py_tensor_base *)cls->tp_alloc(cls, 0) : NULL;
        if (r == NULL) {
            if (dt == NULL) {
                predict_failed("output %zd has dtype %s, which has no DataType", j,
                               sl_dtype_name(dtype));
            }
            Py_XDECREF(data);
            Py_CLEAR(list);
            break;
        }
        r->data = data;
        r->dtype = Py_NewRef(dt);
        r->name = Py_NewRef(PyTuple_GET_ITEM(self->out_names, j));
        r->format = Py_NewRef(state->default_format);
        r->device = Py_NewRef(state->device);
        PyList_SET_ITEM(list, j, (PyObject *)r);
    }
    return list;
}

PyDoc_STRVAR(run_doc,
"run(inputs) -> list[Tensor]\n\n"
"predict() in one call: copies inputs (a list or tuple of Tensor or numpy arrays, one per\n"
"model input; a Tensor bound to this model's own input i is used in place) into the model,\n"
"resizing it first when their shapes differ, runs it without the GIL and returns new Tensors\n"
"owning copies of the outputs. Raises ConvertInputs when an array needs converting first\n"
"(another byte order, a dtype without a buffer format).");

static PyObject *model_run(PyObject *obj, PyObject *inputs)
{
    sl_py_model *self = (sl_py_model *)obj;
    sl_py_state *state = PyType_GetModuleState(Py_TYPE(obj));
    if (state == NULL || check_built(self) < 0) {
        return NULL;
    }
    if (state->tensor_cls == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "run() needs _setup() first");
        return NULL;
    }
    if (!PyList_Check(inputs) && !PyTuple_Check(inputs)) {
        PyErr_Format(PyExc_TypeError, "inputs must be list or tuple, but got %R.",
                     (PyObject *)Py_TYPE(inputs));
        return NULL;
    }
    /* an immutable copy: the items stay alive and in place whatever other threads do */
    inputs = PySequence_Tuple(inputs);
    if (inputs == NULL) {
        return NULL;
    }
    /* the elements' types first, then their count (the reference's order) */
    Py_ssize_t n = PyTuple_GET_SIZE(inputs);
    size_t count = sl_model_input_count(self->model);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (check_input(state, PyTuple_GET_ITEM(inputs, i), i) < 0) {
            Py_DECREF(inputs);
            return NULL;
        }
    }
    if ((size_t)n != count) {
        PyErr_Format(PyExc_RuntimeError, "model input len:%zu not equal input len:%zd!", count, n);
        Py_DECREF(inputs);
        return NULL;
    }
    feed small[8];
    feed *feeds = n <= 8 ? small : PyMem_Malloc((size_t)n * sizeof(feed));
    if (feeds == NULL) {
        Py_DECREF(inputs);
        return PyErr_NoMemory();
    }
    memset(feeds, 0, (size_t)(n > 0 ? n : 0) * sizeof(feed));
    PyObject *list = NULL, *failure = NULL;
    if (begin_predict(self) < 0) {
        Py_DECREF(inputs);
        if (feeds != small) {
            PyMem_Free(feeds);
        }
        return NULL;
    }
    sl_py_lock(self);
    int resize = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (gather(self, state, PyTuple_GET_ITEM(inputs, i), i, &feeds[i]) < 0) {
            goto done;
        }
        if (!feeds[i].inplace && !same_shape(sl_model_input(self->model, (size_t)i),
                                             &feeds[i].view)) {
            resize = 1;
        }
    }
    if (resize && resize_to(self, feeds, (size_t)n) < 0) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (feeds[i].inplace) {
            continue;
        }
        sl_tensor *dst = sl_model_input(self->model, (size_t)i);
        void *data = sl_tensor_data(dst);
        size_t size = sl_tensor_byte_size(dst);
        Py_buffer *view = &feeds[i].view;
        if ((size_t)view->len != size || (data == NULL && size > 0)) {
            predict_failed("inputs[%zd] ('%s') has %zd bytes, the model's input needs %zu", i,
                           sl_tensor_name(dst), view->len, size);
            goto done;
        }
        if (size > 0 && PyBuffer_ToContiguous(data, view, view->len, 'C') < 0) {
            goto done;
        }
        PyBuffer_Release(view);
        feeds[i].has_view = 0;
    }
    sl_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sl_model_predict(self->model);
    Py_END_ALLOW_THREADS
    if (st != SL_OK) {
        failure = sl_py_str(sl_last_error()); /* raised below, out of the lock */
        goto done;
    }
    list = results(self, state);
done:
    sl_py_unlock(self);
    end_predict(self);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (feeds[i].has_view) {
            PyBuffer_Release(&feeds[i].view);
        }
    }
    if (feeds != small) {
        PyMem_Free(feeds);
    }
    if (failure != NULL) { /* Python's signal handlers first: Ctrl-C during a wait */
        if (!sl_py_raise_signal()) {
            predict_failed("%U", failure);
        }
        Py_DECREF(failure);
    }
    Py_DECREF(inputs);
    return list;
}

PyDoc_STRVAR(save_doc,
"save(path, external_data=False)\n\n"
"Writes the model as MindIR (MindSpore 2.x encoding). external_data puts the weights into\n"
"'<stem>_variables/data_0' beside the file, 64-byte aligned.");

static PyObject *model_save(PyObject *obj, PyObject *args, PyObject *kwargs)
{
    sl_py_model *self = (sl_py_model *)obj;
    static char *kwlist[] = {"path", "external_data", NULL};
    PyObject *path_obj;
    int external = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|p:save", kwlist, PyUnicode_FSConverter,
                                     &path_obj, &external)) {
        return NULL;
    }
    if (check_built(self) < 0) {
        Py_DECREF(path_obj);
        return NULL;
    }
    sl_status st;
    sl_py_lock(self); /* takes the GIL-free wait itself: call it holding the GIL */
    Py_BEGIN_ALLOW_THREADS
    st = sl_model_save(self->model, PyBytes_AS_STRING(path_obj), external);
    Py_END_ALLOW_THREADS
    sl_py_unlock(self);
    Py_DECREF(path_obj);
    return st == SL_OK ? Py_NewRef(Py_None) : sl_py_raise(st);
}

PyDoc_STRVAR(update_weight_doc,
"update_weight(name, dtype, data)\n\n"
"Replaces the data of weight `name` (see weight_names(); '<graph>:<name>' works too) with a\n"
"copy of data (a C-contiguous buffer of the weight's shape; dtype an sl_dtype number).");

static PyObject *model_update_weight(PyObject *obj, PyObject *args)
{
    sl_py_model *self = (sl_py_model *)obj;
    const char *name;
    int dtype;
    PyObject *data;
    if (!PyArg_ParseTuple(args, "siO:update_weight", &name, &dtype, &data) ||
        check_built(self) < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    int64_t dims[SL_MAX_DIMS];
    PyObject *result = NULL;
    if (view.ndim > SL_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "weight '%s': at most %d dimensions", name, SL_MAX_DIMS);
        goto done;
    }
    for (int d = 0; d < view.ndim; d++) {
        dims[d] = (int64_t)view.shape[d];
    }
    sl_py_lock(self);
    sl_status st = sl_model_update_weight(self->model, name, (sl_dtype)dtype, dims,
                                          (size_t)view.ndim, view.buf, (size_t)view.len);
    sl_py_unlock(self);
    result = st == SL_OK ? Py_NewRef(Py_None) : sl_py_raise(st);
done:
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(weight_names_doc,
"weight_names() -> list[str]\n\nThe names of the graph's weights (what update_weight takes).");

static PyObject *model_weight_names(PyObject *obj, PyObject *unused)
{
    (void)unused;
    sl_py_model *self = (sl_py_model *)obj;
    if (check_built(self) < 0) {
        return NULL;
    }
    size_t n = sl_model_weight_count(self->model);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *name = sl_py_str(sl_model_weight_name(self->model, i));
        if (name == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, name);
    }
    return list;
}

PyDoc_STRVAR(user_info_doc,
"user_info() -> dict[str, str]\n\nThe model file's user_info map, in file order.");

static PyObject *model_user_info(PyObject *obj, PyObject *unused)
{
    (void)unused;
    sl_py_model *self = (sl_py_model *)obj;
    if (check_built(self) < 0) {
        return NULL;
    }
    PyObject *dict = PyDict_New();
    size_t n = sl_model_user_info_count(self->model);
    for (size_t i = 0; dict != NULL && i < n; i++) {
        const char *key = NULL;
        const char *value = NULL;
        sl_status st = sl_model_user_info(self->model, i, &key, &value);
        PyObject *k = st == SL_OK ? sl_py_str(key) : sl_py_raise(st);
        PyObject *v = k != NULL ? sl_py_str(value) : NULL;
        if (v == NULL || PyDict_SetItem(dict, k, v) < 0) {
            Py_CLEAR(dict);
        }
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return dict;
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

static PyObject *get_communicates(PyObject *obj, void *closure)
{
    (void)closure;
    sl_py_model *self = (sl_py_model *)obj;
    return check_built(self) < 0 ? NULL : PyBool_FromLong(sl_model_communicates(self->model));
}

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
    {"communicates", get_communicates, NULL,
     "True when the model communicates with other ranks (communication ops in a group of more\n"
     "than one rank): a rank predicts with one such model at a time, from one thread.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef model_methods[] = {
    {"build", (PyCFunction)(void (*)(void))model_build, METH_VARARGS | METH_KEYWORDS, build_doc},
    {"inputs", model_inputs, METH_NOARGS, inputs_doc},
    {"outputs", model_outputs, METH_NOARGS, outputs_doc},
    {"predict", model_predict, METH_NOARGS, predict_doc},
    {"resize", model_resize, METH_O, resize_doc},
    {"node_ops", model_node_ops, METH_NOARGS, node_ops_doc},
    {"run", model_run, METH_O, run_doc},
    {"update_weight", model_update_weight, METH_VARARGS, update_weight_doc},
    {"save", (PyCFunction)(void (*)(void))model_save, METH_VARARGS | METH_KEYWORDS, save_doc},
    {"weight_names", model_weight_names, METH_NOARGS, weight_names_doc},
    {"user_info", model_user_info, METH_NOARGS, user_info_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(model_doc,
"Model()\n\nA shardlite model: create it empty, then build(path, thread_num).");

static PyType_Slot model_slots[] = {
    {Py_tp_doc, (void *)model_doc},
    {Py_tp_new, model_new},
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
