/* MindIR (MindSpore's protobuf model format) <-> graph IR. */
#ifndef SL_FORMAT_MINDIR_H
#define SL_FORMAT_MINDIR_H

#include "graph/ir.h"

/* Maps the file and builds the graph. Weights point into the mapping when their alignment
 * allows, otherwise they are copied once. External data files must lie inside the model's
 * folder. Encrypted files fail with SL_ERR_ENCRYPTED. */
sl_status sl_mindir_load(const char *path, sl_graph **out);

/* Writes g as MindSpore 2.x MindIR. external_data != 0 puts the weights into
 * "<stem>_variables/data_0" beside path (64-byte header, 64-byte aligned tensors). */
sl_status sl_mindir_save(const sl_graph *g, const char *path, int external_data);

/* MindIR TensorProto data_type <-> sl_dtype (SL_DTYPE_UNKNOWN / 0 when there is none). */
sl_dtype sl_mindir_dtype(int64_t data_type);
int64_t sl_mindir_data_type(sl_dtype dtype);

#endif
