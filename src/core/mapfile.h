/* Read-only file mappings shared by every model of the process: a file that is already mapped
 * (same device, inode, size and modification time) is not mapped again, so models built from
 * the same weights share one copy of them (ModelGroup SHARE_WEIGHT, ModelParallelRunner). */
#ifndef SL_CORE_MAPFILE_H
#define SL_CORE_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct sl_mapfile sl_mapfile;

/* Maps path (a regular, non-empty file), or takes one more reference to its mapping. */
sl_status sl_mapfile_open(const char *path, sl_mapfile **out);
void sl_mapfile_release(sl_mapfile *f);
const uint8_t *sl_mapfile_data(const sl_mapfile *f);
size_t sl_mapfile_size(const sl_mapfile *f);
/* A 64-byte-aligned copy of bytes [offset, offset + size) of the file, made once and shared by
 * every holder of the mapping (for weights whose place in the file is misaligned). */
sl_status sl_mapfile_aligned_copy(sl_mapfile *f, size_t offset, size_t size, const void **out);
/* Mappings alive in the process (for tests and diagnostics). */
int sl_mapfile_live_count(void);

#endif
