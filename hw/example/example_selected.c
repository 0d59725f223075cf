/* example_selected.c — the example miniport as the //hw:miniport selection. */
#include <string.h>

#include "alloclab/hw/example_miniport.h"
#include "alloclab/hw/miniport.h"

static uint32_t example_make_hardware_config(const al_hardware_request *request, void *out,
                                             uint32_t cap) {
  if (request->threaded_engine || cap < sizeof(EXAMPLE_HARDWARE_CONFIG)) return 0;
  EXAMPLE_HARDWARE_CONFIG config = {
      .Magic = EXAMPLE_HARDWARE_MAGIC,
      .MemoryPageSize = request->memory_page_size ? request->memory_page_size
                                                  : EXAMPLE_HARDWARE_DEFAULT_PAGE_SIZE,
      .MemorySegmentSize = request->memory_segment_size ? request->memory_segment_size
                                                        : EXAMPLE_HARDWARE_DEFAULT_MEMORY_SEGMENT_SIZE,
      .ApertureSegmentSize = request->aperture_segment_size
                                 ? request->aperture_segment_size
                                 : EXAMPLE_HARDWARE_DEFAULT_APERTURE_SEGMENT_SIZE,
  };
  memcpy(out, &config, sizeof config);
  return sizeof config;
}

static uint32_t example_make_allocation_data(const al_allocation_request *request, void *out,
                                             uint32_t cap) {
  if (cap < sizeof(EXAMPLE_ALLOCATION_DATA)) return 0;
  UINT flags = request->cpu_visible ? EXAMPLE_ALLOCATION_CPU_VISIBLE : 0;
  if (request->placement == AL_PLACEMENT_MEMORY_ONLY) flags |= EXAMPLE_ALLOCATION_MEMORY_ONLY;
  if (request->placement == AL_PLACEMENT_APERTURE_ONLY) flags |= EXAMPLE_ALLOCATION_APERTURE_ONLY;
  EXAMPLE_ALLOCATION_DATA data = example_allocation_data(request->size, flags);
  data.Alignment = request->alignment;
  memcpy(out, &data, sizeof data);
  return sizeof data;
}

/* The example does not interpret commands: one 8-byte record (kind, index) stands for each. */
static uint32_t example_append_command(const al_command_request *request, void *out, uint32_t cap) {
  if (request == NULL || out == NULL || cap < 8) return 0;
  uint32_t record[2] = {(uint32_t)request->kind, request->index};
  memcpy(out, record, sizeof record);
  return sizeof record;
}

const al_miniport_descriptor al_selected_miniport = {
    .name = "example",
    .append_command = example_append_command,
    .command_size_max = 8,
    .driver_entry = ExampleMiniportDriverEntry,
    .make_hardware_config = example_make_hardware_config,
    .make_allocation_data = example_make_allocation_data,
    .allocation_data_size = sizeof(EXAMPLE_ALLOCATION_DATA),
};
