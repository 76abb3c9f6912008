/* shardlite._shardlite: the module (multi-phase init, per-module state) and its functions. */
#include "shardlite_py.h"

#include <signal.h>
#include <string.h>

/* The thread that runs Python's signal handlers. */
static unsigned long main_thread;

/* The library's interrupt check (sl_set_interrupt_check), called every ~10 ms while a rank
 * waits for others, with the GIL released and the library's locks held: on the main thread,
 * whether SIGINT (Ctrl-C) has arrived. It runs no Python code (a handler could need those
 * locks): it takes the signal and sets it again, so Python's SIGINT handler runs once the call
 * that waited has returned (sl_py_raise_signal). Taking the GIL here cannot deadlock: no
 * thread holding the GIL waits for the library's locks (models are destroyed without it). */
static int check_signals(void)
{
    if (PyThread_get_thread_ident() != main_thread) {
        return 0;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    int hit = PyOS_InterruptOccurred();
    if (hit) {
        PyErr_SetInterruptEx(SIGINT);
    }
    PyGILState_Release(gil);
    return hit;
}

int sl_py_raise_signal(void)
{
    return PyErr_CheckSignals() != 0;
}

/* The library's message for a failed call, as a str (NULL with an exception set). */
static PyObject *error_text(sl_status status)
{
    const char *msg = sl_last_error();
    return sl_py_str(msg != NULL && msg[0] != '\0' ? msg : sl_status_name(status));
}

PyObject *sl_py_raise(sl_status status)
{
    PyObject *text = error_text(status);
    if (text != NULL) {
        PyErr_SetObject(PyExc_RuntimeError, text);
        Py_DECREF(text);
    }
    return NULL;
}

PyObject *sl_py_raise_waited(sl_status status)
{
    PyObject *text = error_text(status); /* before the handlers, which may call the library */
    if (text != NULL && !sl_py_raise_signal()) {
        PyErr_SetObject(PyExc_RuntimeError, text);
    }
    Py_XDECREF(text);
    return NULL;
}

PyObject *sl_py_str(const char *s)
{
    if (s == NULL) {
        s = "";
    }
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

void sl_py_lock(sl_py_model *model)
{
    if (!PyThread_acquire_lock(model->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(model->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

void sl_py_unlock(sl_py_model *model)
{
    PyThread_release_lock(model->lock);
}

/* Stores one item of sl_build_info() into dict: "key" or "key=1" -> True, "key=0" -> False,
 * "key=name" -> "name". */
static int put_build_item(PyObject *dict, const char *item, size_t len)
{
    const char *eq = memchr(item, '=', len);
    size_t key_len = eq != NULL ? (size_t)(eq - item) : len;
    size_t value_len = eq != NULL ? len - key_len - 1 : 0;
    PyObject *key = PyUnicode_DecodeUTF8(item, (Py_ssize_t)key_len, "replace");
    if (key == NULL) {
        return -1;
    }
    PyObject *value;
    if (eq == NULL || (value_len == 1 && eq[1] == '1')) {
        value = Py_NewRef(Py_True);
    } else if (value_len == 1 && eq[1] == '0') {
        value = Py_NewRef(Py_False);
    } else {
        value = PyUnicode_DecodeUTF8(eq + 1, (Py_ssize_t)value_len, "replace");
    }
    int rc = value != NULL ? PyDict_SetItem(dict, key, value) : -1;
    Py_DECREF(key);
    Py_XDECREF(value);
    return rc;
}

PyDoc_STRVAR(build_info_doc,
"build_info() -> dict\n\n"
"The backends compiled into the library: backend name -> True, False or a string naming the\n"
"implementation, e.g. {'cpu': True, 'blas': 'openblas', 'mpi': False, 'cuda': False,\n"
"'nccl': False}.");

static PyObject *build_info(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    /* The backends users ask about are always present, False when not compiled in. */
    static const char *const known[] = {"cpu", "blas", "mpi", "cuda", "nccl"};
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (PyDict_SetItemString(dict, known[i], Py_False) < 0) {
            goto fail;
        }
    }
    const char *info = sl_build_info();
    while (info != NULL && *info != '\0') {
        const char *comma = strchr(info, ',');
        size_t len = comma != NULL ? (size_t)(comma - info) : strlen(info);
        if (len > 0 && put_build_item(dict, info, len) < 0) {
            goto fail;
        }
        info = comma != NULL ? comma + 1 : NULL;
    }
    return dict;
fail:
    Py_DECREF(dict);
    return NULL;
}

PyDoc_STRVAR(version_doc, "version() -> str\n\nThe version of the shardlite C library.");

static PyObject *version(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return sl_py_str(sl_version());
}

PyDoc_STRVAR(setup_doc,
"_setup(tensor_cls, ndarray, dtypes, default_format, device)\n\n"
"Registers what Model.run() builds its results from: the Tensor class (a TensorBase\n"
"subclass), numpy.ndarray, a dict int -> DataType member, the default Format and device.");

static PyObject *setup(PyObject *module, PyObject *args)
{
    sl_py_state *state = PyModule_GetState(module);
    PyObject *cls, *ndarray, *dtypes, *format, *device;
    if (!PyArg_ParseTuple(args, "O!O!O!OU:_setup", &PyType_Type, &cls, &PyType_Type, &ndarray,
                          &PyDict_Type, &dtypes, &format, &device)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)cls, state->tensor_base)) {
        PyErr_SetString(PyExc_TypeError, "tensor_cls must subclass TensorBase");
        return NULL;
    }
    for (int i = 0; i <= SL_PY_DTYPE_MAX; i++) {
        PyObject *key = PyLong_FromLong(i);
        if (key == NULL) {
            return NULL;
        }
        PyObject *member = PyDict_GetItemWithError(dtypes, key);
        Py_DECREF(key);
        if (member == NULL && PyErr_Occurred()) {
            return NULL;
        }
        Py_XSETREF(state->dtypes[i], Py_XNewRef(member));
    }
    Py_XSETREF(state->tensor_cls, Py_NewRef(cls));
    Py_XSETREF(state->ndarray_type, Py_NewRef(ndarray));
    Py_XSETREF(state->default_format, Py_NewRef(format));
    Py_XSETREF(state->device, Py_NewRef(device));
    Py_RETURN_NONE;
}

PyDoc_STRVAR(distributed_doc,
"distributed() -> dict\n\n"
"This process's place in the job: {'rank', 'size', 'job', 'source', 'backend'} (source: where\n"
"the rank came from: 'config', 'launcher', 'openmpi', 'pmi', 'slurm' or 'single').");

static PyObject *distributed(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    sl_distributed_info d;
    sl_status st = sl_distributed_get(&d);
    if (st != SL_OK) {
        return sl_py_raise(st);
    }
    return Py_BuildValue("{s:i,s:i,s:s,s:s,s:s}", "rank", d.rank, "size", d.size, "job", d.job,
                         "source", d.source, "backend", d.backend);
}

PyDoc_STRVAR(configure_distributed_doc,
"configure_distributed(rank, size, job=None, backend=None)\n\n"
"Sets the rank and world size explicitly (the rank-table flow); size 0 clears it.");

static PyObject *configure_distributed(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"rank", "size", "job", "backend", NULL};
    int rank, size;
    const char *job = NULL, *backend = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ii|zz:configure_distributed", kwlist, &rank,
                                     &size, &job, &backend)) {
        return NULL;
    }
    sl_status st = sl_distributed_configure(rank, size, job, backend);
    return st == SL_OK ? Py_NewRef(Py_None) : sl_py_raise(st);
}

PyDoc_STRVAR(split_doc,
"_split(path, n, out_dir, rules, progress) -> dict\n\n"
"Cuts a model into n tensor-parallel rank models (see shardlite.split). rules: a list of\n"
"(weight name, axis) pairs, axis -1 = replicate. Returns the report as a dict.");

/* The report as plain Python objects: {"ranks", "files", "all_reduces", "all_gathers",
 * "weights": [{"name", "axis", "role", "bytes", "rank_bytes"}]}. */
static PyObject *split_report_dict(const sl_split_report *rep)
{
    int n = sl_split_report_ranks(rep);
    size_t n_w = sl_split_report_weight_count(rep);
    PyObject *files = PyList_New(n), *weights = PyList_New((Py_ssize_t)n_w), *out = NULL;
    if (files == NULL || weights == NULL) {
        goto done;
    }
    for (int r = 0; r < n; r++) {
        PyObject *f = sl_py_str(sl_split_report_file(rep, r));
        if (f == NULL) {
            goto done;
        }
        PyList_SET_ITEM(files, r, f);
    }
    for (size_t i = 0; i < n_w; i++) {
        const char *name, *role;
        int axis;
        size_t bytes;
        sl_split_report_weight(rep, i, &name, &axis, &role, &bytes);
        PyObject *per = PyList_New(n);
        if (per == NULL) {
            goto done;
        }
        for (int r = 0; r < n; r++) {
            PyObject *b = PyLong_FromSize_t(sl_split_report_weight_rank_bytes(rep, i, r));
            if (b == NULL) {
                Py_DECREF(per);
                goto done;
            }
            PyList_SET_ITEM(per, r, b);
        }
        PyObject *w = Py_BuildValue("{s:N,s:i,s:s,s:n,s:N}", "name", sl_py_str(name), "axis",
                                    axis, "role", role, "bytes", (Py_ssize_t)bytes,
                                    "rank_bytes", per);
        if (w == NULL) {
            goto done;
        }
        PyList_SET_ITEM(weights, (Py_ssize_t)i, w);
    }
    out = Py_BuildValue("{s:i,s:O,s:n,s:n,s:O}", "ranks", n, "files", files, "all_reduces",
                        (Py_ssize_t)sl_split_report_all_reduces(rep), "all_gathers",
                        (Py_ssize_t)sl_split_report_all_gathers(rep), "weights", weights);
done:
    Py_XDECREF(files);
    Py_XDECREF(weights);
    return out;
}

static PyObject *split(PyObject *module, PyObject *args)
{
    (void)module;
    const char *path, *out_dir;
    int n, progress;
    PyObject *rule_list;
    if (!PyArg_ParseTuple(args, "sisO!p:_split", &path, &n, &out_dir, &PyList_Type, &rule_list,
                          &progress)) {
        return NULL;
    }
    /* an immutable copy: its strings stay alive while the split runs without the GIL */
    PyObject *rules = PyList_AsTuple(rule_list);
    if (rules == NULL) {
        return NULL;
    }
    Py_ssize_t n_rules = PyTuple_GET_SIZE(rules);
    const char **names = PyMem_Calloc((size_t)n_rules + 1, sizeof *names);
    int *axes = PyMem_Calloc((size_t)n_rules + 1, sizeof *axes);
    PyObject *result = NULL;
    if (names == NULL || axes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_rules; i++) {
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(rules, i), "si:rule", &names[i], &axes[i])) {
            goto done;
        }
    }
    sl_split_report *rep = NULL;
    sl_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sl_split_model(path, n, out_dir, names, axes, (size_t)n_rules, progress, &rep);
    Py_END_ALLOW_THREADS
    if (st != SL_OK) {
        sl_py_raise(st);
        goto done;
    }
    result = split_report_dict(rep);
    sl_split_report_destroy(rep);
done:
    PyMem_Free(names);
    PyMem_Free(axes);
    Py_DECREF(rules);
    return result;
}

static PyMethodDef module_methods[] = {
    {"distributed", distributed, METH_NOARGS, distributed_doc},
    {"configure_distributed", (PyCFunction)(void (*)(void))configure_distributed,
     METH_VARARGS | METH_KEYWORDS, configure_distributed_doc},
    {"build_info", build_info, METH_NOARGS, build_info_doc},
    {"version", version, METH_NOARGS, version_doc},
    {"_setup", setup, METH_VARARGS, setup_doc},
    {"_split", split, METH_VARARGS, split_doc},
    {NULL, NULL, 0, NULL},
};

/* Creates one heap type of the module and adds it under its name. */
static PyTypeObject *add_type(PyObject *module, PyType_Spec *spec)
{
    PyTypeObject *type = (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL || PyModule_AddType(module, type) < 0) {
        Py_XDECREF(type);
        return NULL;
    }
    return type;
}

static int module_exec(PyObject *module)
{
    sl_py_state *state = PyModule_GetState(module);
    state->model_type = add_type(module, &sl_py_model_spec);
    state->tensor_type = state->model_type ? add_type(module, &sl_py_tensor_spec) : NULL;
    state->buffer_type = state->tensor_type ? add_type(module, &sl_py_buffer_spec) : NULL;
    state->tensor_base = state->buffer_type ? add_type(module, &sl_py_tensor_base_spec) : NULL;
    if (state->tensor_base == NULL) {
        return -1;
    }
    state->convert_error = PyErr_NewExceptionWithDoc(
        "shardlite._shardlite.ConvertInputs",
        "Raised by Model.run() when an input must be converted (byte order, dtype) first.",
        PyExc_TypeError, NULL);
    if (state->convert_error == NULL ||
        PyModule_AddObjectRef(module, "ConvertInputs", state->convert_error) < 0) {
        return -1;
    }
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *thread = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = thread ? PyObject_GetAttrString(thread, "ident") : NULL;
    main_thread = ident ? PyLong_AsUnsignedLong(ident) : 0;
    Py_XDECREF(ident);
    Py_XDECREF(thread);
    Py_XDECREF(threading);
    if (PyErr_Occurred()) {
        return -1;
    }
    sl_set_interrupt_check(check_signals);
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    sl_py_state *state = PyModule_GetState(module);
    Py_VISIT(state->model_type);
    Py_VISIT(state->tensor_type);
    Py_VISIT(state->buffer_type);
    Py_VISIT(state->tensor_base);
    Py_VISIT(state->tensor_cls);
    Py_VISIT(state->ndarray_type);
    for (int i = 0; i <= SL_PY_DTYPE_MAX; i++) {
        Py_VISIT(state->dtypes[i]);
    }
    Py_VISIT(state->default_format);
    Py_VISIT(state->device);
    Py_VISIT(state->convert_error);
    return 0;
}

static int module_clear(PyObject *module)
{
    sl_py_state *state = PyModule_GetState(module);
    Py_CLEAR(state->model_type);
    Py_CLEAR(state->tensor_type);
    Py_CLEAR(state->buffer_type);
    Py_CLEAR(state->tensor_base);
    Py_CLEAR(state->tensor_cls);
    Py_CLEAR(state->ndarray_type);
    for (int i = 0; i <= SL_PY_DTYPE_MAX; i++) {
        Py_CLEAR(state->dtypes[i]);
    }
    Py_CLEAR(state->default_format);
    Py_CLEAR(state->device);
    Py_CLEAR(state->convert_error);
    return 0;
}

static void module_free(void *module)
{
    sl_set_interrupt_check(NULL); /* it needs this interpreter */
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

PyDoc_STRVAR(module_doc,
"Low-level bindings of the shardlite C library. Use the `shardlite` package instead.");

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shardlite._shardlite",
    .m_doc = module_doc,
    .m_size = sizeof(sl_py_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__shardlite(void)
{
    return PyModuleDef_Init(&module_def);
}
