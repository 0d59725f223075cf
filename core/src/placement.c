/*
 * placement.c — VidMm's part: which segment an allocation goes to, and where in it.
 *
 * Policy: the PreferredSegment ids in order (each only if it is in the allocation's
 * SupportedWriteSegmentSet: WDDM 2 places by the write set), then the rest of that set in id
 * order. Each segment is a segment_heap (O(1) TLSF) under its own lock; the lock is held only
 * for the heap operation, never across a DDI call.
 */
#include "port.h"

static NTSTATUS place_in(al_adapter *adapter, uint32_t index, const DXGK_ALLOCATIONINFO *info,
                         port_allocation *record) {
  port_segment *segment = &adapter->segments[index];
  uint64_t offset = 0;
  uint32_t block = SEGMENT_HEAP_NO_BLOCK;
  pthread_mutex_lock(&segment->lock);
  NTSTATUS status = segment_heap_alloc(&segment->heap, info->Size, info->Alignment, &block, &offset);
  pthread_mutex_unlock(&segment->lock);
  if (NT_SUCCESS(status)) {
    record->segment_index = index;
    record->block = block;
  }
  return status;
}

NTSTATUS placement_place(al_adapter *adapter, const DXGK_ALLOCATIONINFO *info, port_allocation *record) {
  uint32_t allowed = info->SupportedWriteSegmentSet & adapter->segment_set_all;
  uint32_t tried = 0;
  bool host_memory_ran_out = false;
  const UINT preferred[5] = {info->PreferredSegment.SegmentId0, info->PreferredSegment.SegmentId1,
                             info->PreferredSegment.SegmentId2, info->PreferredSegment.SegmentId3,
                             info->PreferredSegment.SegmentId4};
  for (int i = 0; i < 5 && preferred[i] != 0; i++) {
    uint32_t bit = 1u << (preferred[i] - 1);
    if (!(allowed & bit) || (tried & bit)) continue;
    tried |= bit;
    NTSTATUS status = place_in(adapter, preferred[i] - 1, info, record);
    if (NT_SUCCESS(status)) return status;
    if (status == STATUS_NO_MEMORY) host_memory_ran_out = true;
  }
  for (uint32_t rest = allowed & ~tried; rest; rest &= rest - 1) {
    uint32_t index = (uint32_t)__builtin_ctz(rest);
    NTSTATUS status = place_in(adapter, index, info, record);
    if (NT_SUCCESS(status)) return status;
    if (status == STATUS_NO_MEMORY) host_memory_ran_out = true;
  }
  return host_memory_ran_out ? STATUS_NO_MEMORY : STATUS_GRAPHICS_NO_VIDEO_MEMORY;
}

void placement_release(al_adapter *adapter, const port_allocation *records, uint32_t count) {
  uint32_t i = 0;
  while (i < count) {
    port_segment *segment = &adapter->segments[records[i].segment_index];
    pthread_mutex_lock(&segment->lock);
    do {
      segment_heap_free(&segment->heap, records[i].block);
      i++;
    } while (i < count && &adapter->segments[records[i].segment_index] == segment);
    pthread_mutex_unlock(&segment->lock);
  }
}

uint64_t placement_offset(al_adapter *adapter, const port_allocation *record) {
  port_segment *segment = &adapter->segments[record->segment_index];
  pthread_mutex_lock(&segment->lock);
  uint64_t offset = segment_heap_block_offset(&segment->heap, record->block);
  pthread_mutex_unlock(&segment->lock);
  return offset;
}

uint64_t placement_size(al_adapter *adapter, const port_allocation *record) {
  port_segment *segment = &adapter->segments[record->segment_index];
  pthread_mutex_lock(&segment->lock);
  uint64_t size = segment_heap_block_size(&segment->heap, record->block);
  pthread_mutex_unlock(&segment->lock);
  return size;
}
