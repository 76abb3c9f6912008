/* shardlite: public C API.
 *
 * Conventions: every fallible function returns sl_status (SL_OK == 0); on failure a message
 * saying what and where is kept per thread and read with sl_last_error(). Objects are opaque;
 * each sl_x_create pairs with a NULL-safe sl_x_destroy. Out-parameters come last. Nothing in
 * the library calls exit() or abort().
 */
#ifndef SHARDLITE_H
#define SHARDLITE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SL_API __attribute__((visibility("default")))
#else
#define SL_API
#endif

typedef enum sl_status {
    SL_OK = 0,
    SL_ERR_INVALID_ARG,   /* a caller passed a bad argument */
    SL_ERR_IO,            /* a file could not be opened, mapped or written */
    SL_ERR_FORMAT,        /* a model file is malformed */
    SL_ERR_ENCRYPTED,     /* a model file is encrypted */
    SL_ERR_UNSUPPORTED,   /* an operator, dtype or feature the runtime does not have */
    SL_ERR_SHAPE,         /* shapes do not agree */
    SL_ERR_NOMEM,         /* an allocation failed */
    SL_ERR_STATE,         /* a call out of order (e.g. predict before build) */
    SL_ERR_INTERNAL,      /* a bug: please report */
    SL_ERR_INTERRUPTED,   /* a wait for other ranks was interrupted (sl_set_interrupt_check) */
} sl_status;

/* Values match MindSpore Lite's DataType numbering. */
typedef enum sl_dtype {
    SL_DTYPE_UNKNOWN = 0,
    SL_DTYPE_BOOL = 30,
    SL_DTYPE_INT8 = 32,
    SL_DTYPE_INT16 = 33,
    SL_DTYPE_INT32 = 34,
    SL_DTYPE_INT64 = 35,
    SL_DTYPE_UINT8 = 37,
    SL_DTYPE_UINT16 = 38,
    SL_DTYPE_UINT32 = 39,
    SL_DTYPE_UINT64 = 40,
    SL_DTYPE_FLOAT16 = 42,
    SL_DTYPE_FLOAT32 = 43,
    SL_DTYPE_FLOAT64 = 44,
    SL_DTYPE_BFLOAT16 = 46, /* extension: not in MindSpore Lite */
} sl_dtype;

#define SL_MAX_DIMS 8

typedef struct sl_context sl_context;
typedef struct sl_model sl_model;
typedef struct sl_tensor sl_tensor;

/* The message of the last failure on this thread ("" if none). Valid until the next call. */
SL_API const char *sl_last_error(void);
SL_API const char *sl_status_name(sl_status status);
SL_API const char *sl_version(void);
/* A comma-separated list of the backends compiled in, e.g. "cpu,blas=openblas". */
SL_API const char *sl_build_info(void);
/* Bytes per element of a dtype, 0 for an unknown one. */
SL_API size_t sl_dtype_size(sl_dtype dtype);
SL_API const char *sl_dtype_name(sl_dtype dtype);

/* ---- context ---- */
SL_API sl_status sl_context_create(sl_context **out);
SL_API void sl_context_destroy(sl_context *ctx);
/* 0 = automatic (the number of online CPUs). */
SL_API sl_status sl_context_set_thread_num(sl_context *ctx, int thread_num);
SL_API int sl_context_get_thread_num(const sl_context *ctx);

/* ---- model ---- */
/* Loads a MindIR file, infers shapes and plans memory. The context is copied; the caller keeps
 * ownership of ctx (NULL = defaults). */
SL_API sl_status sl_model_build_from_file(const char *path, const sl_context *ctx,
                                          sl_model **out);
/* Writes the model's graph and weights as MindIR (MindSpore 2.x encoding). external_data != 0
 * puts the weights into "<stem>_variables/data_0" beside the file, 64-byte aligned. */
SL_API sl_status sl_model_save(const sl_model *model, const char *path, int external_data);
SL_API void sl_model_destroy(sl_model *model);

SL_API size_t sl_model_input_count(const sl_model *model);
SL_API size_t sl_model_output_count(const sl_model *model);
/* Borrowed handles, valid until the model is destroyed. Input tensors own their buffers;
 * write input data into them before sl_model_predict. Output tensors hold the results of the
 * last predict until the next predict or resize. */
SL_API sl_tensor *sl_model_input(const sl_model *model, size_t index);
SL_API sl_tensor *sl_model_output(const sl_model *model, size_t index);
/* Sets new shapes for all inputs (dims[i] has ranks[i] entries), re-infers shapes and re-plans. */
SL_API sl_status sl_model_resize(sl_model *model, size_t n_inputs, const int64_t *const *dims,
                                 const size_t *ranks);
SL_API sl_status sl_model_predict(sl_model *model);

/* Metadata. Borrowed strings, valid until the model is destroyed. */
SL_API const char *sl_model_producer(const sl_model *model);         /* e.g. "MindSpore 2.5.0" */
SL_API size_t sl_model_node_count(const sl_model *model);
SL_API const char *sl_model_node_op(const sl_model *model, size_t index);
/* Weights: the graph's constant tensors (count, total bytes). */
SL_API size_t sl_model_weight_count(const sl_model *model);
SL_API size_t sl_model_weight_bytes(const sl_model *model);
/* Bytes of the activation arena planned for the current shapes. */
SL_API size_t sl_model_arena_bytes(const sl_model *model);
/* Whether the model communicates with other ranks (it has communication ops in a group of
 * more than one rank). A rank predicts with one such model at a time: sl_model_predict fails
 * (SL_ERR_STATE) while another model of the process predicts in one of its groups. */
SL_API int sl_model_communicates(const sl_model *model);
/* The model file's user_info entries (ModelProto.user_info): borrowed strings. */
SL_API size_t sl_model_user_info_count(const sl_model *model);
SL_API sl_status sl_model_user_info(const sl_model *model, size_t index, const char **key,
                                    const char **value);
/* Weight i (0 <= i < sl_model_weight_count): its name (the parameter's ref_key when the file
 * has one, else its graph name). Borrowed, valid until the model is destroyed. */
SL_API const char *sl_model_weight_name(const sl_model *model, size_t index);
/* Replaces the data of the weight called `name` (see sl_model_weight_name; the graph name
 * "<graph>:<name>" works too). dtype and dims must equal the weight's; size bytes are copied,
 * so other models sharing the file's weights keep theirs. Shapes are then re-inferred. */
SL_API sl_status sl_model_update_weight(sl_model *model, const char *name, sl_dtype dtype,
                                        const int64_t *dims, size_t rank, const void *data,
                                        size_t size);

/* ---- distributed jobs ----
 * One process per rank. The rank and world size come from explicit configuration (below), else
 * from the launcher's environment: shardlite's launcher (SHARDLITE_RANK/_WORLD_SIZE/_JOB_ID),
 * Open MPI (OMPI_COMM_WORLD_*), MPICH/Hydra (PMI_RANK/PMI_SIZE), Slurm (SLURM_PROCID/_NTASKS);
 * else rank 0 of 1. Models with communication ops join their groups when built. */
typedef struct sl_distributed_info {
    int rank, size;
    char job[64];     /* unique per job on a host */
    char source[32];  /* "config", "launcher", "openmpi", "pmi", "slurm" or "single" */
    char backend[16]; /* "shm" (one host) or "mpi" */
} sl_distributed_info;

SL_API sl_status sl_distributed_get(sl_distributed_info *out);
/* Explicit configuration (e.g. from a rank table): size 0 clears it. job: any string unique to
 * the job on this host (NULL: "configured"); backend: "shm", "mpi" or NULL/"" for automatic. */
SL_API sl_status sl_distributed_configure(int rank, int size, const char *job,
                                          const char *backend);
/* A function that a rank waiting for other ranks (at the rendezvous, in MPI_Init, or in a
 * collective before MPI's own blocking call) calls every ~10 ms, holding the library's locks
 * (it must not call the library): when it returns nonzero the wait ends with
 * SL_ERR_INTERRUPTED, and with the shared-memory backend the other ranks of the group fail too
 * (those that have met at the rendezvous; with MPI, mpirun ends the job when the rank exits).
 * NULL: none. The Python module sets one that reports Ctrl-C (SIGINT). */
typedef int (*sl_interrupt_check)(void);
SL_API void sl_set_interrupt_check(sl_interrupt_check check);

/* ---- tensor-parallel splitting ----
 * Cuts the full model at `path` into n rank models (Megatron layout: linear layers column- then
 * row-parallel with one AllReduce, attention by heads, vocabulary-parallel embeddings, a last
 * projection column-parallel with an AllGather; everything else replicated), written as
 * "<outdir>/<stem><r>.mindir" with their weights in "<stem><r>_variables/data_0". Rules (may be
 * NULL when n_rules is 0) override the automatic choice per weight: rule_axes[i] >= 0 splits
 * weight rule_names[i] (a name as sl_model_weight_name gives it) on that axis, -1 replicates it.
 * progress != 0 draws a progress bar on stderr for models over 256 MiB of weights. */
typedef struct sl_split_report sl_split_report;

SL_API sl_status sl_split_model(const char *path, int n, const char *outdir,
                                const char *const *rule_names, const int *rule_axes,
                                size_t n_rules, int progress, sl_split_report **out);
SL_API void sl_split_report_destroy(sl_split_report *report);
SL_API int sl_split_report_ranks(const sl_split_report *report);
/* The file written for rank r. Borrowed, valid until the report is destroyed. */
SL_API const char *sl_split_report_file(const sl_split_report *report, int rank);
/* Collectives each rank runs per inference. */
SL_API size_t sl_split_report_all_reduces(const sl_split_report *report);
SL_API size_t sl_split_report_all_gathers(const sl_split_report *report);
/* The weights (constants with a dim, shape tuples left out), in the model's order. */
SL_API size_t sl_split_report_weight_count(const sl_split_report *report);
/* Weight i: its name; axis: the split axis or -1 when replicated; role: "column", "row",
 * "vocab", "with-layer" (a bias sliced with its layer) or "replicated"; bytes: its size
 * in the full model. Borrowed strings. */
SL_API sl_status sl_split_report_weight(const sl_split_report *report, size_t index,
                                        const char **name, int *axis, const char **role,
                                        size_t *bytes);
/* Bytes of weight i that rank r holds. */
SL_API size_t sl_split_report_weight_rank_bytes(const sl_split_report *report, size_t index,
                                                int rank);

/* ---- tensor (borrowed from a model) ---- */
SL_API const char *sl_tensor_name(const sl_tensor *t);
SL_API sl_dtype sl_tensor_dtype(const sl_tensor *t);
SL_API size_t sl_tensor_rank(const sl_tensor *t);
/* Dimension i; -1 for a dynamic dimension not yet resolved. */
SL_API int64_t sl_tensor_dim(const sl_tensor *t, size_t i);
SL_API size_t sl_tensor_element_count(const sl_tensor *t);
SL_API size_t sl_tensor_byte_size(const sl_tensor *t);
/* The tensor's buffer (NULL while its shape is unresolved). Valid until the next resize. */
SL_API void *sl_tensor_data(sl_tensor *t);
/* Copies size bytes into the tensor; size must equal sl_tensor_byte_size. */
SL_API sl_status sl_tensor_set_data(sl_tensor *t, const void *data, size_t size);

#ifdef __cplusplus
}
#endif
#endif
