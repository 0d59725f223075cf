/*
 * gpu_damage_internal.h — the damage kinds' write helper, shared by gpu_memory.c and gpu_mmu.c
 * (the kinds themselves live beside the structures they break; contract in gpu_testing.h).
 */
#ifndef ALLOCLAB_HW_GPU_DAMAGE_INTERNAL_H
#define ALLOCLAB_HW_GPU_DAMAGE_INTERNAL_H

#include <string.h>

#include "alloclab/hw/gpu_testing.h"

/* Saves the bytes of @lvalue in @undo, then sets it to @value (the object's lock held). The
 * kinds change at most GPU_DAMAGE_MAX_FIELDS fields; the size is checked at compile time. */
#define GPU_DAMAGE_SET(undo, lvalue, value)                                                        \
  do {                                                                                             \
    _Static_assert(sizeof(lvalue) <= GPU_DAMAGE_MAX_FIELD_BYTES, "a field the undo can save");    \
    __typeof__(lvalue) damaged_ = (value);                                                         \
    gpu_damage_write((undo), (void *)&(lvalue), &damaged_, sizeof damaged_);                       \
  } while (0)

static inline void gpu_damage_write(gpu_damage_undo *undo, void *field, const void *value, size_t size) {
  unsigned i = undo->fields++;
  undo->field[i].address = field;
  undo->field[i].size = size;
  memcpy(undo->field[i].saved, field, size);
  memcpy(field, value, size);
}

#endif /* ALLOCLAB_HW_GPU_DAMAGE_INTERNAL_H */
