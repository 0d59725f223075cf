/*
 * miniport.h — how alloclab's tests, fuzzers and benchmarks find the miniport they run against.
 *
 * DOC: Overview
 * Everything above the DDI (core's tests, fuzz/, bench/) is written once and runs against any
 * miniport. The miniport is chosen at build time: the Bazel label flag //hw:miniport names a
 * cc_library that defines the one symbol below, al_selected_miniport (default: the simulated GPU,
 * //hw/sim:selected). A vendor plugs in their own miniport by writing such a library:
 *
 *     cc_library(name = "selected", srcs = ["my_selected.c"], deps = [":my_miniport", "//hw:miniport_interface"])
 *     bazel test --//hw:miniport=//path/to:selected //...
 *
 * The descriptor says how to start the miniport (its DriverEntry and a hardware configuration)
 * and how to express a generic allocation request in the miniport's own private-data format, so
 * generic code never needs to know that format.
 */
#ifndef ALLOCLAB_HW_MINIPORT_H
#define ALLOCLAB_HW_MINIPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a generic allocation may be placed. */
typedef enum al_placement {
  AL_PLACEMENT_ANY = 0,           /* memory segment preferred, aperture allowed */
  AL_PLACEMENT_MEMORY_ONLY = 1,   /* only the (non-aperture) memory segment(s) */
  AL_PLACEMENT_APERTURE_ONLY = 2, /* only aperture segment(s) */
} al_placement;

typedef struct al_allocation_request {
  uint64_t size;      /* bytes, > 0 */
  uint32_t alignment; /* 0 or a power of two */
  al_placement placement;
  bool cpu_visible;
} al_allocation_request;

typedef struct al_hardware_request {
  uint64_t memory_segment_size;   /* 0 = the miniport's default */
  uint64_t aperture_segment_size; /* 0 = the miniport's default */
  uint32_t memory_page_size;      /* 0 = default; else 4096 or 65536 */
  bool threaded_engine;           /* false: the engine runs only when the port says (AlDdiRunEngine) */
} al_hardware_request;

/* Generic GPU work, so code above the DDI can submit real commands to any miniport. Allocations
 * are named by their index in the submission's allocation list. */
typedef enum al_command_kind {
  AL_COMMAND_NOP = 0,   /* touches nothing */
  AL_COMMAND_FILL = 1,  /* write @pattern over [offset, offset + size) of allocation @index */
  AL_COMMAND_CHECK = 2, /* the GPU compares that range with @pattern; a mismatch is a reported
                           failure (the sim aborts by default) */
  AL_COMMAND_COPY = 3,  /* copy [offset, offset + size) of allocation @index to [dst_offset,
                           dst_offset + size) of allocation @dst_index (@pattern unused); the two
                           ranges must not overlap (the sim rejects the stream) */
} al_command_kind;

typedef struct al_command_request {
  al_command_kind kind;
  uint32_t index;
  uint64_t offset;
  uint64_t size;
  uint32_t pattern;
  uint32_t dst_index;  /* AL_COMMAND_COPY only */
  uint64_t dst_offset; /* AL_COMMAND_COPY only */
} al_command_request;

typedef struct al_miniport_descriptor {
  const char *name; /* short, for reports and benchmark context: "sim", "example", ... */
  PDRIVER_INITIALIZE driver_entry;
  /* Writes the miniport's hardware-config blob for @request into @out (at most @cap bytes) and
   * returns its size; 0 when the miniport cannot honour the request. */
  uint32_t (*make_hardware_config)(const al_hardware_request *request, void *out, uint32_t cap);
  /* Writes the miniport's per-allocation private data for @request into @out (at most @cap
   * bytes) and returns its size; 0 when the request cannot be expressed. */
  uint32_t (*make_allocation_data)(const al_allocation_request *request, void *out, uint32_t cap);
  /* The largest private data make_allocation_data writes. */
  uint32_t allocation_data_size;
  /* Writes the miniport's encoding of one command at @out (at most @cap bytes) and returns its
   * size; commands appended one after another form a command stream for al_submit. 0 when the
   * request cannot be expressed. A miniport that does not interpret commands may encode any
   * bytes it accepts. */
  uint32_t (*append_command)(const al_command_request *request, void *out, uint32_t cap);
  /* The largest command append_command writes. */
  uint32_t command_size_max;
} al_miniport_descriptor;

/* Defined by the library that //hw:miniport names. */
extern const al_miniport_descriptor al_selected_miniport;

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HW_MINIPORT_H */
