/* shardlite._shardlite: what the extension's files share (private to python/src/). */
#ifndef SHARDLITE_PY_H
#define SHARDLITE_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <shardlite/shardlite.h>

/* Per-module state: the heap types, created when the module is executed. */
typedef struct sl_py_state {
    PyTypeObject *model_type;
    PyTypeObject *tensor_type;
} sl_py_state;

/* shardlite._shardlite.Model: owns one sl_model. */
typedef struct sl_py_model {
    PyObject_HEAD
    sl_model *model;    /* NULL until build() succeeds */
    int busy;           /* set while a call runs without the GIL; guards concurrent use */
    Py_ssize_t exports; /* live buffer views of this model's tensors; resize waits for 0 */
} sl_py_model;

/* shardlite._shardlite.TensorRef: one input or output of a Model, which it keeps alive. */
typedef struct sl_py_tensor {
    PyObject_HEAD
    sl_py_model *owner;                /* strong reference */
    sl_tensor *tensor;                 /* borrowed from owner->model */
    int is_input;
    size_t index;
    Py_ssize_t shape[SL_MAX_DIMS];     /* buffer-view shape; stable while views exist */
    Py_ssize_t strides[SL_MAX_DIMS];   /* buffer-view strides in bytes (C order) */
} sl_py_tensor;

extern PyType_Spec sl_py_model_spec;
extern PyType_Spec sl_py_tensor_spec;

/* A new TensorRef for tensor `index` of `owner` (an input when is_input). */
PyObject *sl_py_tensor_new(sl_py_state *state, sl_py_model *owner, int is_input, size_t index);

/* Raises RuntimeError with the library's message for the failed call; returns NULL. */
PyObject *sl_py_raise(sl_status status);
/* A str from a library string that may not be valid UTF-8 (model files are untrusted). */
PyObject *sl_py_str(const char *s);
/* Raises RuntimeError if the model is running in another thread; returns -1 then, else 0. */
int sl_py_check_idle(const sl_py_model *model);

#endif
