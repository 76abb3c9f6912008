/* shardlite._shardlite: the module (multi-phase init, per-module state) and its functions. */
#include "shardlite_py.h"

#include <string.h>

PyObject *sl_py_raise(sl_status status)
{
    const char *msg = sl_last_error();
    if (msg == NULL || msg[0] == '\0') {
        msg = sl_status_name(status);
    }
    PyObject *text = sl_py_str(msg);
    if (text != NULL) {
        PyErr_SetObject(PyExc_RuntimeError, text);
        Py_DECREF(text);
    }
    return NULL;
}

PyObject *sl_py_str(const char *s)
{
    if (s == NULL) {
        s = "";
    }
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

int sl_py_check_idle(const sl_py_model *model)
{
    if (model->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the model is in use by another thread");
        return -1;
    }
    return 0;
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

static PyMethodDef module_methods[] = {
    {"build_info", build_info, METH_NOARGS, build_info_doc},
    {"version", version, METH_NOARGS, version_doc},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module)
{
    sl_py_state *state = PyModule_GetState(module);
    state->model_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &sl_py_model_spec, NULL);
    if (state->model_type == NULL || PyModule_AddType(module, state->model_type) < 0) {
        return -1;
    }
    state->tensor_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &sl_py_tensor_spec, NULL);
    if (state->tensor_type == NULL || PyModule_AddType(module, state->tensor_type) < 0) {
        return -1;
    }
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    sl_py_state *state = PyModule_GetState(module);
    Py_VISIT(state->model_type);
    Py_VISIT(state->tensor_type);
    return 0;
}

static int module_clear(PyObject *module)
{
    sl_py_state *state = PyModule_GetState(module);
    Py_CLEAR(state->model_type);
    Py_CLEAR(state->tensor_type);
    return 0;
}

static void module_free(void *module)
{
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
