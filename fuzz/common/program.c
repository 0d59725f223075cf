/*
 * program.c — names of the program vocabulary (program.h).
 */
#include "alloclab/fuzz/program.h"

#include <stddef.h>

const char *fz_op_name(fz_op op) {
  static const char *const names[FZ_OP_COUNT] = {
      [FZ_OP_CREATE_DEVICE] = "create_device",
      [FZ_OP_DESTROY_DEVICE] = "destroy_device",
      [FZ_OP_CREATE_ALLOCATIONS] = "create_allocations",
      [FZ_OP_CREATE_RESOURCE] = "create_resource",
      [FZ_OP_ADD_TO_RESOURCE] = "add_to_resource",
      [FZ_OP_OPEN_RESOURCE] = "open_resource",
      [FZ_OP_DESTROY_RESOURCE] = "destroy_resource",
      [FZ_OP_DESTROY_ALLOCATIONS] = "destroy_allocations",
      [FZ_OP_SUBMIT] = "submit",
      [FZ_OP_GPU_RUN] = "gpu_run",
      [FZ_OP_FENCE_WAIT] = "fence_wait",
      [FZ_OP_QUERY] = "query",
      [FZ_OP_DAMAGE] = "damage",
  };
  if ((unsigned)op >= FZ_OP_COUNT) {
    return NULL;
  }
  return names[op];
}
