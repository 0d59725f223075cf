/* sim_selected.c — the sim miniport as the //hw:miniport selection. */
#include <string.h>

#include "alloclab/hw/miniport.h"
#include "alloclab/hw/sim_miniport.h"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "SIM_ALLOCATION_DATA is little-endian on the wire; add byte swapping for this host"
#endif
#endif

/* Honours sizes, page size and the engine mode; aborts on GPU faults (the default), no fault
 * injector. 0 when a size is not a multiple of its page or above the limit. */
static uint32_t sim_make_hardware_config(const al_hardware_request *request, void *out, uint32_t cap) {
  if (request == NULL || out == NULL || cap < sizeof(SIM_HARDWARE_CONFIG)) return 0;
  SIM_HARDWARE_CONFIG config = sim_hardware_config_default();
  if (request->memory_page_size) config.MemoryPageSize = request->memory_page_size;
  if (request->memory_segment_size) config.MemorySegmentSize = request->memory_segment_size;
  if (request->aperture_segment_size) config.ApertureSegmentSize = request->aperture_segment_size;
  config.EngineMode = request->threaded_engine ? SIM_ENGINE_THREADED : SIM_ENGINE_DETERMINISTIC;
  /* Validated as DxgkDdiAddDevice would: SimDescribeAllocation refuses a bad configuration. */
  DXGK_ALLOCATIONINFO probe;
  memset(&probe, 0, sizeof probe);
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(1, SIM_PLACEMENT_ANY, 0);
  if (SimDescribeAllocation(&config, &data, sizeof data, &probe) != STATUS_SUCCESS) return 0;
  memcpy(out, &config, sizeof config);
  return sizeof config;
}

static uint32_t sim_make_allocation_data(const al_allocation_request *request, void *out, uint32_t cap) {
  if (request == NULL || out == NULL || cap < sizeof(SIM_ALLOCATION_DATA) || request->size == 0) return 0;
  if ((request->alignment & (request->alignment - 1u)) != 0 || request->alignment > SIM_ALLOCATION_ALIGNMENT_MAX)
    return 0;
  UINT placement = SIM_PLACEMENT_ANY;
  if (request->placement == AL_PLACEMENT_MEMORY_ONLY) placement = SIM_PLACEMENT_MEMORY_ONLY;
  else if (request->placement == AL_PLACEMENT_APERTURE_ONLY) placement = SIM_PLACEMENT_APERTURE_ONLY;
  else if (request->placement != AL_PLACEMENT_ANY) return 0;
  SIM_ALLOCATION_DATA data =
      sim_allocation_buffer(request->size, placement, request->cpu_visible ? SIM_USAGE_CPU_VISIBLE : 0u);
  data.Alignment = request->alignment;
  memcpy(out, &data, sizeof data);
  return sizeof data;
}

static uint32_t sim_append_command(const al_command_request *request, void *out, uint32_t cap) {
  if (request == NULL || out == NULL || cap < SIM_CMD_FILL_BYTES) return 0;
  switch (request->kind) {
  case AL_COMMAND_COPY:
    if (cap < SIM_CMD_COPY_BYTES) return 0;
    return (uint32_t)sim_cmd_copy(out, request->index, request->offset, request->dst_index, request->dst_offset,
                                  request->size);
  case AL_COMMAND_NOP: return (uint32_t)sim_cmd_nop(out, 0);
  case AL_COMMAND_FILL:
    return (uint32_t)sim_cmd_fill(out, request->index, request->offset, request->size, request->pattern);
  case AL_COMMAND_CHECK:
    return (uint32_t)sim_cmd_check(out, request->index, request->offset, request->size, request->pattern);
  }
  return 0;
}

const al_miniport_descriptor al_selected_miniport = {
    .name = "sim",
    .append_command = sim_append_command,
    .command_size_max = SIM_CMD_COPY_BYTES, /* the largest record: COPY */
    .driver_entry = SimMiniportDriverEntry,
    .make_hardware_config = sim_make_hardware_config,
    .make_allocation_data = sim_make_allocation_data,
    .allocation_data_size = sizeof(SIM_ALLOCATION_DATA),
};
