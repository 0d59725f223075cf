/*
 * placement.c — VidMm's part: which segment an allocation goes to, where in it, and paging.
 *
 * Policy: the PreferredSegment ids in order (each only if it is in the allocation's
 * SupportedWriteSegmentSet: WDDM 2 places by the write set), then the rest of that set in id
 * order. When none has room, idle allocations are evicted from those segments, in the same
 * order, to their EvictionSegmentSet (aperture segments) or else to system memory, through
 * DXGK_OPERATION_TRANSFER (the miniport moves the contents and its mappings). Submitted work
 * brings an allocation back (placement_page_in): out of system memory always, and back to its
 * preferred segment when that has room.
 *
 * Victims: a clock walk over each segment's live blocks, which carry their allocation handle as
 * owner tag. A victim must be idle (its last fence signalled) and its resource lock free
 * (trylock: the caller may hold other resource locks, so waiting could deadlock). Of the
 * resources the caller holds, only the one it names may give victims: its published records,
 * never the ones it is still creating. Each segment is a segment_heap (O(1) TLSF) under its
 * own lock, held only for heap operations, never across a DDI call.
 */
#include <stddef.h>

#include "port.h"

/* placement_release passes &records[i].block with a stride in uint32_t units. */
_Static_assert(sizeof(port_allocation) % sizeof(uint32_t) == 0 &&
                   offsetof(port_allocation, block) % sizeof(uint32_t) == 0,
               "port_allocation is walked as an array of uint32_t");

static uint32_t preferred_id(uint32_t preferred, int k) { return (preferred >> (6 * k)) & 0x1f; }

port_placement placement_request(const al_adapter *adapter, const DXGK_ALLOCATIONINFO *info) {
  return (port_placement){
      .size = info->Size,
      .alignment = info->Alignment,
      .preferred = info->PreferredSegment.Value,
      .write_set = info->SupportedWriteSegmentSet & adapter->segment_set_all,
      .eviction_set = info->EvictionSegmentSet & adapter->segment_set_aperture,
  };
}

/* The candidate segment indices in placement order; returns how many. */
static uint32_t candidates(const port_placement *request, uint32_t out[DXGK_MAX_SEGMENTS]) {
  uint32_t count = 0, taken = 0;
  for (int k = 0; k < 5; k++) {
    uint32_t id = preferred_id(request->preferred, k);
    if (id == 0) break;
    uint32_t bit = 1u << (id - 1);
    if (!(request->write_set & bit) || (taken & bit)) continue;
    taken |= bit;
    out[count++] = id - 1;
  }
  for (uint32_t rest = request->write_set & ~taken; rest; rest &= rest - 1)
    out[count++] = (uint32_t)__builtin_ctz(rest);
  return count;
}

/* Allocates a block for @request in segment @index, tagged with @owner, in one lock hold. */
static NTSTATUS alloc_in(al_adapter *adapter, uint32_t index, const port_placement *request,
                         uint32_t owner, uint32_t *out_block, uint64_t *out_offset) {
  port_segment *segment = &adapter->segments[index];
  port_lock(&segment->lock);
  NTSTATUS status = segment_heap_alloc(&segment->heap, request->size, request->alignment, out_block, out_offset);
  if (NT_SUCCESS(status)) segment_heap_set_owner(&segment->heap, *out_block, owner);
  port_unlock(&segment->lock);
  return status;
}

static void free_block(al_adapter *adapter, uint32_t index, uint32_t block) {
  port_segment *segment = &adapter->segments[index];
  port_lock(&segment->lock);
  segment_heap_free(&segment->heap, block);
  port_unlock(&segment->lock);
}

/*
 * Moves record @index of @resource (locked) to segment @to (PORT_SYSTEM_MEMORY for system
 * memory) at @to_block/@to_offset, through DXGK_OPERATION_TRANSFER. On failure the record is
 * unchanged and the destination block is released.
 */
static NTSTATUS move_record(al_adapter *adapter, port_resource *resource, uint32_t index, uint32_t to,
                            uint32_t to_block, uint64_t to_offset) {
  port_allocation *record = &resource->records[index];
  uint32_t from = record->segment_index;
  uint64_t from_offset = placement_offset(adapter, record);
  NTSTATUS status = ddi_transfer(adapter, resource->miniport_allocations[index],
                                 resource->placement[index].size,
                                 from == PORT_SYSTEM_MEMORY ? 0 : from + 1, from_offset,
                                 to == PORT_SYSTEM_MEMORY ? 0 : to + 1, to_offset);
  if (!NT_SUCCESS(status)) {
    if (to != PORT_SYSTEM_MEMORY) free_block(adapter, to, to_block);
    return status;
  }
  if (from != PORT_SYSTEM_MEMORY) free_block(adapter, from, record->block);
  record->segment_index = to;
  record->block = to_block; /* tagged with the record's handle when it was allocated */
  if (to != PORT_SYSTEM_MEMORY) atomic_fetch_add(&adapter->segments[to].victims_moved_in, 1);
  return STATUS_SUCCESS;
}

/* Evicts record @index of @resource (locked) out of its segment: to an eviction segment with
 * room, else to system memory. */
static NTSTATUS evict_record(al_adapter *adapter, port_resource *resource, uint32_t index) {
  const port_placement *request = &resource->placement[index];
  uint32_t from = resource->records[index].segment_index;
  for (uint32_t set = request->eviction_set & ~(1u << from); set; set &= set - 1) {
    uint32_t to = (uint32_t)__builtin_ctz(set), block;
    uint64_t offset;
    if (NT_SUCCESS(alloc_in(adapter, to, request, resource->records[index].handle, &block, &offset)))
      return move_record(adapter, resource, index, to, block, offset);
  }
  return move_record(adapter, resource, index, PORT_SYSTEM_MEMORY, SEGMENT_HEAP_NO_BLOCK, 0);
}

/* Evicts one idle allocation from segment @index. Returns false when no victim can be found. */
static bool is_held(const port_resource *resource, port_resource *const *held, uint32_t held_count) {
  for (uint32_t i = 0; i < held_count; i++)
    if (held[i] == resource) return true;
  return false;
}

void placement_victims_released(al_adapter *adapter) { atomic_fetch_add(&adapter->victims_released, 1); }

/* Moves segment @segment's clock to the next live block (the first after the end wraps to the
 * start); false when the segment has none. Segment lock held. */
static bool clock_step(port_segment *segment, uint32_t *out_block, uint32_t *out_owner) {
  return segment_heap_next_live(&segment->heap, &segment->clock, out_block, out_owner) ||
         segment_heap_next_live(&segment->heap, &segment->clock, out_block, out_owner);
}

/*
 * A victim can only appear when a record is published or unpinned (placement_victims_released),
 * a fence completes (its records go idle) or a record moves into the segment (move_record). So a
 * scan that looked at every live block and found none (no resource lock was busy either) stays
 * right while those three stand still, however many blocks the scanning caller adds meanwhile:
 * its own records are unpublished. Without this, a create of n allocations under pressure
 * rescanned every block of a full segment for each of them (O(n^2): 90 blocks looked at per
 * eviction on a typical ddi_sequence input, most of them the create's own).
 */
static placement_scan_state scan_state(al_adapter *adapter, port_segment *segment) {
  return (placement_scan_state){.fence_completed = atomic_load(&adapter->fence_completed),
                                .released = atomic_load(&adapter->victims_released),
                                .moved_in = atomic_load(&segment->victims_moved_in)};
}

static bool scan_known_fruitless(const placement_scan_memo *memo, uint32_t index, placement_scan_state now) {
  return memo != NULL && memo->none[index] && memo->at[index].fence_completed == now.fence_completed &&
         memo->at[index].released == now.released && memo->at[index].moved_in == now.moved_in;
}

static bool evict_one(al_adapter *adapter, uint32_t index, port_resource *const *held,
                      uint32_t held_count, placement_scan_memo *memo) {
  port_segment *segment = &adapter->segments[index];
  /* Read before the scan: a change during it makes the memo stale, never wrong. */
  placement_scan_state now = scan_state(adapter, segment);
  if (scan_known_fruitless(memo, index, now)) {
    /* The full scan would find no victim again and leave the clock one live block on. */
    uint32_t block = SEGMENT_HEAP_NO_BLOCK, owner = 0;
    port_lock(&segment->lock);
    (void)clock_step(segment, &block, &owner);
    port_unlock(&segment->lock);
    atomic_fetch_add(&adapter->victim_scan_steps, 1);
    return false;
  }
  port_lock(&segment->lock);
  segment_heap_stats stats;
  segment_heap_get_stats(&segment->heap, &stats);
  port_unlock(&segment->lock);
  bool conclusive = true; /* every block looked at, none behind a busy lock */
  /* Every live block once, starting where the last eviction stopped (a clock). */
  for (uint64_t looked = 0; looked <= stats.live_blocks; looked++) {
    uint32_t block = SEGMENT_HEAP_NO_BLOCK, owner = 0;
    port_lock(&segment->lock);
    bool found = clock_step(segment, &block, &owner);
    port_unlock(&segment->lock);
    if (!found) break;
    atomic_fetch_add(&adapter->victim_scan_steps, 1);
    if (owner == 0) continue; /* still being created */
    uint32_t slot = 0;
    handle_table_lock(&adapter->allocations);
    port_resource *resource = handle_table_lookup_locked(&adapter->allocations, owner, &slot);
    if (resource) port_resource_ref(resource);
    handle_table_unlock(&adapter->allocations);
    if (resource == NULL) continue;
    bool evicted = false;
    bool ours = is_held(resource, held, held_count);
    bool locked = ours || pthread_mutex_trylock(&resource->lock) == 0;
    if (locked) {
      /* Re-check under the lock: the same allocation, still there, and idle. */
      handle_table_lock(&adapter->allocations);
      bool same = handle_table_lookup_locked(&adapter->allocations, owner, &slot) == resource;
      handle_table_unlock(&adapter->allocations);
      port_allocation *record = same ? &resource->records[slot] : NULL;
      if (record && record->segment_index == index && record->block == block && !record->pinned &&
          record->last_fence <= atomic_load(&adapter->fence_completed)) {
        evicted = NT_SUCCESS(evict_record(adapter, resource, slot));
        if (evicted) atomic_fetch_add(&adapter->evictions, 1);
        else conclusive = false; /* a victim whose move failed (injected): a later try may work */
      } else if (!same) {
        conclusive = false; /* changed between the two lookups (another thread) */
      }
      if (!ours) port_unlock(&resource->lock);
    } else {
      conclusive = false;
    }
    port_resource_unref(adapter, resource);
    if (evicted) return true;
  }
  if (memo != NULL && conclusive) {
    memo->none[index] = true;
    memo->at[index] = now;
  }
  return false;
}

NTSTATUS placement_place(al_adapter *adapter, const port_placement *request, port_allocation *record,
                         port_resource *const *held, uint32_t held_count, placement_scan_memo *memo,
                         uint64_t *out_offset) {
  uint32_t order[DXGK_MAX_SEGMENTS];
  uint32_t count = candidates(request, order);
  bool host_memory_ran_out = false;
  for (int evicting = 0; evicting < 2; evicting++) {
    for (uint32_t k = 0; k < count; k++) {
      uint32_t index = order[k];
      for (;;) {
        uint64_t offset = 0;
        uint32_t block = SEGMENT_HEAP_NO_BLOCK;
        NTSTATUS status = alloc_in(adapter, index, request, record->handle, &block, &offset);
        if (NT_SUCCESS(status)) {
          record->segment_index = index;
          record->block = block;
          if (out_offset) *out_offset = offset;
          return status;
        }
        if (status == STATUS_NO_MEMORY) host_memory_ran_out = true;
        if (status != STATUS_GRAPHICS_NO_VIDEO_MEMORY || !evicting || !evict_one(adapter, index, held, held_count, memo)) break;
      }
    }
  }
  return host_memory_ran_out ? STATUS_NO_MEMORY : STATUS_GRAPHICS_NO_VIDEO_MEMORY;
}

NTSTATUS placement_page_in(al_adapter *adapter, port_resource *resource, uint32_t index,
                           port_resource *const *held, uint32_t held_count) {
  port_allocation *record = &resource->records[index];
  const port_placement *request = &resource->placement[index];
  uint32_t first = preferred_id(request->preferred, 0);
  bool in_system = record->segment_index == PORT_SYSTEM_MEMORY;
  bool away = first && (request->write_set & (1u << (first - 1))) && record->segment_index != first - 1;
  if (!in_system && !(away && record->last_fence <= atomic_load(&adapter->fence_completed)))
    return STATUS_SUCCESS;
  port_allocation placed = {.handle = record->handle};
  uint64_t offset = 0;
  NTSTATUS status;
  if (in_system) {
    status = placement_place(adapter, request, &placed, held, held_count, NULL, &offset); /* may evict others */
  } else {
    /* Back home only if it fits without pushing others out. */
    status = alloc_in(adapter, first - 1, request, record->handle, &placed.block, &offset);
    placed.segment_index = first - 1;
    if (!NT_SUCCESS(status)) return STATUS_SUCCESS;
  }
  if (!NT_SUCCESS(status)) return status;
  status = move_record(adapter, resource, index, placed.segment_index, placed.block, offset);
  if (NT_SUCCESS(status)) atomic_fetch_add(&adapter->page_ins, 1);
  return status;
}

void placement_release(al_adapter *adapter, const port_allocation *records, uint32_t count) {
  uint32_t i = 0;
  while (i < count) {
    if (records[i].segment_index == PORT_SYSTEM_MEMORY) {
      i++;
      continue;
    }
    uint32_t segment_index = records[i].segment_index, run = 1;
    while (i + run < count && records[i + run].segment_index == segment_index) run++;
    port_segment *segment = &adapter->segments[segment_index];
    port_lock(&segment->lock);
    segment_heap_free_many(&segment->heap, &records[i].block, sizeof *records / sizeof(uint32_t), run);
    port_unlock(&segment->lock);
    i += run;
  }
}

uint64_t placement_offset(al_adapter *adapter, const port_allocation *record) {
  if (record->segment_index == PORT_SYSTEM_MEMORY) return 0;
  port_segment *segment = &adapter->segments[record->segment_index];
  port_lock(&segment->lock);
  uint64_t offset = segment_heap_block_offset(&segment->heap, record->block);
  port_unlock(&segment->lock);
  return offset;
}

uint64_t placement_size(al_adapter *adapter, const port_allocation *record) {
  if (record->segment_index == PORT_SYSTEM_MEMORY) return 0;
  port_segment *segment = &adapter->segments[record->segment_index];
  port_lock(&segment->lock);
  uint64_t size = segment_heap_block_size(&segment->heap, record->block);
  port_unlock(&segment->lock);
  return size;
}
