/* shardlite._shardlite: what the extension's files share (private to python/src/). */
#ifndef SHARDLITE_PY_H
#define SHARDLITE_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include <shardlite/shardlite.h>

/* The highest sl_dtype value, for tables indexed by dtype. */
#define SL_PY_DTYPE_MAX SL_DTYPE_BFLOAT16

/* Per-module state: the heap types, created when the module is executed, and what the package
 * registers with _setup() so that predict can build its results in C. */
typedef struct sl_py_state {
    PyTypeObject *model_type;
    PyTypeObject *tensor_type;     /* TensorRef */
    PyTypeObject *buffer_type;     /* Buffer */
    PyTypeObject *tensor_base;     /* TensorBase */
    PyObject *tensor_cls;          /* shardlite.Tensor, a TensorBase subclass (None until set) */
    PyObject *ndarray_type;        /* numpy.ndarray */
    PyObject *dtypes[SL_PY_DTYPE_MAX + 1]; /* DataType members by value (NULL: none) */
    PyObject *default_format;      /* Format.NCHW */
    PyObject *device;              /* "cpu" */
    PyObject *convert_error;       /* raised when an input needs converting in Python first */
} sl_py_state;

/* shardlite._shardlite.Model: owns one sl_model. */
typedef struct sl_py_model {
    PyObject_HEAD
    sl_model *model;      /* NULL until build() succeeds */
    PyThread_type_lock lock; /* serialises calls that use or change the model */
    Py_ssize_t exports;   /* live buffer views of this model's tensors; resize waits for 0 */
    PyObject *out_names;  /* tuple of the outputs' names (str), set by build() */
    int predicting;       /* a thread is in predict or run (kept for models that communicate) */
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

/* shardlite._shardlite.Buffer: an immutable-shape N-d array of one dtype that owns its memory
 * (predict's results); exported through the buffer protocol. */
typedef struct sl_py_buffer {
    PyObject_HEAD
    void *data;
    size_t size;                       /* bytes */
    sl_dtype dtype;
    int rank;
    Py_ssize_t shape[SL_MAX_DIMS];
    Py_ssize_t strides[SL_MAX_DIMS];
} sl_py_buffer;

/* shardlite._shardlite.TensorBase: the fields of shardlite.Tensor. Its buffer protocol hands
 * out the buffer of `data` (a numpy array, a TensorRef or a Buffer). */
typedef struct sl_py_tensor_base {
    PyObject_HEAD
    PyObject *data;
    PyObject *dtype;   /* a DataType member */
    PyObject *name;    /* str */
    PyObject *format;  /* a Format member */
    PyObject *device;  /* str */
} sl_py_tensor_base;

extern PyType_Spec sl_py_model_spec;
extern PyType_Spec sl_py_tensor_spec;
extern PyType_Spec sl_py_buffer_spec;
extern PyType_Spec sl_py_tensor_base_spec;

/* A new TensorRef for tensor `index` of `owner` (an input when is_input). */
PyObject *sl_py_tensor_new(sl_py_state *state, sl_py_model *owner, int is_input, size_t index);
/* A new Buffer with a copy of a model tensor's data and shape. */
PyObject *sl_py_buffer_copy(sl_py_state *state, sl_tensor *tensor);
/* The struct-module format of a dtype's elements (bfloat16: "H"), NULL if it has none. */
const char *sl_py_dtype_format(sl_dtype dtype);
/* The dtype of a buffer view's elements (bfloat16 is never returned: it arrives as uint16);
 * SL_DTYPE_UNKNOWN for a format shardlite has no dtype for or a non-native byte order. */
sl_dtype sl_py_view_dtype(const Py_buffer *view);

/* Raises RuntimeError with the library's message for the failed call; returns NULL. */
PyObject *sl_py_raise(sl_status status);
/* For a failed call that may have waited for other ranks (build, predict), with no lock held:
 * runs Python's pending signal handlers first (Ctrl-C during the wait: KeyboardInterrupt) and
 * raises what they raise, else as sl_py_raise. */
PyObject *sl_py_raise_waited(sl_status status);
/* Runs Python's pending signal handlers; returns whether they raised. */
int sl_py_raise_signal(void);
/* A str from a library string that may not be valid UTF-8 (model files are untrusted). */
PyObject *sl_py_str(const char *s);
/* Takes the model's lock, waiting without the GIL when another thread holds it. */
void sl_py_lock(sl_py_model *model);
void sl_py_unlock(sl_py_model *model);

#endif
