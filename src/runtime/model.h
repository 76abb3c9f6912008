/* The runtime: a built model (graph + thread pool + activation arena) and its execution. */
#ifndef SL_RUNTIME_MODEL_H
#define SL_RUNTIME_MODEL_H

#include "core/pool.h"
#include "graph/ir.h"

struct sl_context {
    int thread_num; /* 0 = one per online CPU */
};

struct sl_tensor {
    struct sl_model *model;
    int value; /* index in the graph */
};

struct sl_model {
    sl_graph *g;
    sl_pool *pool;
    int thread_num;
    void *arena;          /* activations, inputs and scratch, planned by prepare */
    size_t arena_bytes;
    void **scratch;       /* [n_nodes] each node's scratch in the arena */
    struct sl_comm **comms; /* [n_nodes] communication ops: their group's communicator */
    int *comm_model;        /* [n_nodes] the model's number in that one (0: not yet claimed) */
    int communicates;       /* some node has a communicator of more than one rank */
    int alone;              /* a communication node built with no rank source (-1: none) */
    sl_value **call_in;   /* [max inputs] reused by every call */
    sl_value **call_out;  /* [max outputs] */
    sl_tensor *inputs;    /* [g->n_inputs] */
    sl_tensor *outputs;   /* [g->n_outputs] */
    int ready;            /* shapes resolved and memory planned: predict may run */
    char producer[160];
};

/* Takes ownership of g (also on failure). */
sl_status sl_runtime_create(sl_graph *g, int thread_num, struct sl_model **out);
void sl_runtime_destroy(struct sl_model *m);
/* Infers shapes, folds what is computable from constants and static shapes, plans the arena.
 * With unresolved (-1) input dims it leaves the model not ready (resize first). */
sl_status sl_runtime_prepare(struct sl_model *m);
sl_status sl_runtime_predict(struct sl_model *m);

#endif
