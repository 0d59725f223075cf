/*
 * sim_damage.c — the sim miniport's damage kinds (sim_testing_damage*, sim_miniport.h): the
 * mutation test of the hardware walk (sim_check.c).
 *
 * Why: on a sound state the walk takes the same path every time, so its failure branches are
 * reached by nothing the fuzzers or the tests do, and a branch that is wrong (a check that can
 * never fire, a message that names the wrong object) goes unnoticed. Each kind here breaks
 * exactly one invariant that one of the walk's failure branches guards, in the live state of a
 * sim adapter, runs the whole walk through its public entry point
 * (sim_miniport_check_hardware(DeviceHandle, 0, ...)), and restores the bytes it changed. The
 * kind's @expect is a phrase only the message of the branch meant for it contains, so "caught,
 * but by another check" is told from "caught".
 *
 * How: a kind picks its target under the adapter lock (the pick-th, modulo their number, in the
 * adapter's own order: allocation blocks then allocations by index; live devices then zombies,
 * each device's binding blocks, bindings by index), records each field it changes (at most
 * AL_DAMAGE_MAX_FIELDS, saved byte for byte: alloclab/testing.h) and writes the damaged value.
 * The lock is dropped for the walk (which takes it itself) and taken again to write the saved
 * bytes back, in reverse order. Nothing is allocated. The sim's own records are damaged directly: where the walk holds a
 * record against the GPU, the record is what changes. hw/gpu's private structures are damaged
 * only through hw/gpu's own kinds (alloclab/hw/gpu_testing.h), which save and restore their
 * bytes under the GPU object's lock (the sim_gpu_* kinds).
 *
 * The groups (in the walk's order, which decides what a kind must leave sound before it):
 *  - allocations: state, placement, segment id, supported/eviction sets, offset (unaligned, or
 *    shifted onto a page it does not own), the system copy's size, the block's live count, and a
 *    placement dropped from the committed bytes;
 *  - bindings: the allocation's binding list (a cycle, a binding not open on it), state, pages,
 *    the allocation's block adapter, the mapped flag both ways, the VA (onto nothing, or one page
 *    on), a block's read-only flag, closing count and live count, a closed binding's VA, an
 *    orphaned binding's mapped flag;
 *  - devices: magic of a live device and of a zombie, a zombie's queued work and bindings, the
 *    device and zombie counts, a device missing from the list (its mappings then unaccounted),
 *    a device's queued count;
 *  - segments: the configured segment size;
 *  - the engine: the last fence given, the queued counts (the adapter's alone, and the adapter's
 *    with a device's), the completion count, the completed fence and its status, and a
 *    threaded-engine lag whose fence did not move;
 *  - the live counts of allocations, bindings and resources;
 *  - hw/gpu's own walks (sim_gpu_*): gpu_segment_check (committed and stored counts, an owner on
 *    a free page, an aperture page's host pointer, a stored bit on a free aperture page) and
 *    gpu_as_check (a pointer entry at level 1, a table turned leaf, an empty table kept, a
 *    table's live count, page 0 mapped, the table and leaf counters).
 * Branches no kind reaches (shadowed by an earlier check, or they need hw/gpu to disagree with
 * itself): check_page_owner's "has no page" (the bounds check before it refuses every offset
 * without a page), a GPU read that fails or lands elsewhere than its leaf (gpu_as_translate
 * reads the same leaf gpu_as_query does, and the owner it checks is check_page_owner's), and the
 * engine's own readers disagreeing (completed fence read twice, no status for the completed
 * fence, a status for a fence still queued).
 *
 * Oracle code: like sim_check.c, not coverage-instrumented under libFuzzer.
 */
#include <limits.h>
#include <string.h>

#include "alloclab/hw/gpu_testing.h"
#include "sim_internal.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)
#endif

/* ---- The damaged fields, saved byte for byte (alloclab/testing.h al_damage_fields) -------------- */

typedef struct damage {
  sim_adapter *adapter;
  al_damage_fields fields; /* the sim's own records, under the adapter's lock */
  gpu_damage_undo gpu;     /* the hw/gpu kinds' fields (gpu_testing.h), under the object's own lock */
} damage;

/* Puts every damaged field back, the last first (lock held; the hw/gpu fields under their
 * object's lock, taken after the adapter's as everywhere). */
static void damage_restore(damage *d) {
  gpu_testing_undo(&d->gpu);
  al_damage_fields_restore(&d->fields);
}

/* Sets @lvalue (any scalar field, atomics included) to @value, saving its bytes first. The
 * kinds change at most AL_DAMAGE_MAX_FIELDS fields (the most, engine_lag_fence, 4). */
#define DAMAGE_SET(d, lvalue, value) AL_DAMAGE_SET(&(d)->fields, lvalue, value)

/* ---- Targets, in the adapter's deterministic order --------------------------------------------- */

typedef bool (*allocation_filter)(sim_adapter *adapter, sim_allocation *allocation);

/* The @index-th live allocation that @fit accepts (NULL past the end); *@count: how many it
 * accepts in all. */
static sim_allocation *allocation_at(sim_adapter *adapter, allocation_filter fit, unsigned index, unsigned *count) {
  sim_allocation *found = NULL;
  unsigned n = 0;
  for (sim_link *node = adapter->allocation_blocks.next; node != &adapter->allocation_blocks; node = node->next) {
    sim_allocation_block *block = SIM_CONTAINER_OF(node, sim_allocation_block, link);
    for (UINT i = 0; i < block->count; i++) {
      sim_allocation *allocation = &block->allocations[i];
      if (sim_load(&allocation->state) != SIM_ALLOCATION_LIVE || !fit(adapter, allocation)) continue;
      if (n++ == index) found = allocation;
    }
  }
  *count = n;
  return found;
}

/* The pick-th (modulo their number) live allocation @fit accepts; NULL when none. */
static sim_allocation *pick_allocation(sim_adapter *adapter, unsigned pick, allocation_filter fit) {
  unsigned count;
  allocation_at(adapter, fit, UINT_MAX, &count);
  return count ? allocation_at(adapter, fit, pick % count, &count) : NULL;
}

typedef bool (*binding_filter)(sim_adapter *adapter, sim_device *device, sim_binding_block *block,
                               sim_binding *binding);

/* Over every binding of every binding block of the live devices, then of the zombies. */
static sim_binding *binding_at(sim_adapter *adapter, binding_filter fit, unsigned index, unsigned *count) {
  sim_binding *found = NULL;
  unsigned n = 0;
  sim_link *lists[2] = {&adapter->devices, &adapter->zombies};
  for (int l = 0; l < 2; l++) {
    for (sim_link *node = lists[l]->next; node != lists[l]; node = node->next) {
      sim_device *device = SIM_CONTAINER_OF(node, sim_device, link);
      for (sim_link *bnode = device->binding_blocks.next; bnode != &device->binding_blocks; bnode = bnode->next) {
        sim_binding_block *block = SIM_CONTAINER_OF(bnode, sim_binding_block, link);
        for (UINT i = 0; i < block->count; i++) {
          if (!fit(adapter, device, block, &block->bindings[i])) continue;
          if (n++ == index) found = &block->bindings[i];
        }
      }
    }
  }
  *count = n;
  return found;
}

static sim_binding *pick_binding(sim_adapter *adapter, unsigned pick, binding_filter fit) {
  unsigned count;
  binding_at(adapter, fit, UINT_MAX, &count);
  return count ? binding_at(adapter, fit, pick % count, &count) : NULL;
}

typedef bool (*device_filter)(sim_adapter *adapter, sim_device *device);

/* Over the devices of @list (adapter->devices or adapter->zombies); NULL @list: both, live first. */
static sim_device *device_at(sim_adapter *adapter, sim_link *list, device_filter fit, unsigned index,
                             unsigned *count) {
  sim_device *found = NULL;
  unsigned n = 0;
  sim_link *lists[2] = {&adapter->devices, &adapter->zombies};
  for (int l = 0; l < 2; l++) {
    if (list != NULL && list != lists[l]) continue;
    for (sim_link *node = lists[l]->next; node != lists[l]; node = node->next) {
      sim_device *device = SIM_CONTAINER_OF(node, sim_device, link);
      if (fit && !fit(adapter, device)) continue;
      if (n++ == index) found = device;
    }
  }
  *count = n;
  return found;
}

static sim_device *pick_device(sim_adapter *adapter, sim_link *list, unsigned pick, device_filter fit) {
  unsigned count;
  device_at(adapter, list, fit, UINT_MAX, &count);
  return count ? device_at(adapter, list, fit, pick % count, &count) : NULL;
}

/* ---- Filters -------------------------------------------------------------------------------------- */

static bool any_allocation(sim_adapter *adapter, sim_allocation *allocation) {
  (void)adapter, (void)allocation;
  return true;
}

static bool placed(sim_adapter *adapter, sim_allocation *allocation) {
  (void)adapter;
  return allocation->place == SIM_PLACE_SEGMENT;
}

/* Placed, with a page of the segment to spare beside it (so it can be moved off its pages). */
static bool placed_with_room(sim_adapter *adapter, sim_allocation *allocation) {
  return placed(adapter, allocation) &&
         sim_allocation_committed(adapter, allocation) + sim_segment_page(adapter, allocation->segment_id) <=
             sim_segment_bytes(adapter, allocation->segment_id);
}

static bool in_system_memory(sim_adapter *adapter, sim_allocation *allocation) {
  (void)adapter;
  return allocation->place == SIM_PLACE_SYSTEM;
}

/* Placed, and no binding maps it (a mapped binding would name the lost placement first). */
static bool placed_unmapped(sim_adapter *adapter, sim_allocation *allocation) {
  if (!placed(adapter, allocation)) return false;
  for (const sim_binding *binding = allocation->bindings; binding; binding = binding->next)
    if (binding->mapped) return false;
  return true;
}

static bool is_open(sim_binding *binding) { return sim_load(&binding->state) == SIM_BINDING_OPEN; }

static bool open_binding(sim_adapter *adapter, sim_device *device, sim_binding_block *block, sim_binding *binding) {
  (void)adapter, (void)device, (void)block;
  return is_open(binding);
}

/* Open on a live allocation: on that allocation's binding list. */
static bool listed_binding(sim_adapter *adapter, sim_device *device, sim_binding_block *block, sim_binding *binding) {
  (void)adapter, (void)device, (void)block;
  return is_open(binding) && binding->allocation != NULL;
}

/* On no allocation's list: closed in a block still held, or orphaned by a destroy. */
static bool unlisted_binding(sim_adapter *adapter, sim_device *device, sim_binding_block *block, sim_binding *binding) {
  (void)adapter, (void)device, (void)block;
  return sim_load(&binding->state) == SIM_DEAD || (is_open(binding) && binding->allocation == NULL);
}

static bool orphaned_binding(sim_adapter *adapter, sim_device *device, sim_binding_block *block, sim_binding *binding) {
  (void)adapter, (void)device, (void)block;
  return is_open(binding) && binding->allocation == NULL;
}

static bool mapped_binding(sim_adapter *adapter, sim_device *device, sim_binding_block *block, sim_binding *binding) {
  return listed_binding(adapter, device, block, binding) && binding->mapped;
}

static bool mapped_binding_of_two_pages(sim_adapter *adapter, sim_device *device, sim_binding_block *block,
                                        sim_binding *binding) {
  return mapped_binding(adapter, device, block, binding) && binding->pages >= 2;
}

/* Open on a live allocation that is not in a segment (so it maps nothing). */
static bool unmapped_binding_unplaced(sim_adapter *adapter, sim_device *device, sim_binding_block *block,
                                      sim_binding *binding) {
  return listed_binding(adapter, device, block, binding) && !binding->mapped &&
         binding->allocation->place != SIM_PLACE_SEGMENT;
}

/* The first binding of @block that maps a live allocation; NULL when none. */
static sim_binding *first_mapped_of_block(sim_adapter *adapter, sim_device *device, sim_binding_block *block) {
  for (UINT i = 0; i < block->count; i++)
    if (mapped_binding(adapter, device, block, &block->bindings[i])) return &block->bindings[i];
  return NULL;
}

/* The VA of the first mapped open binding of @device (orphans' stale mappings included). */
static bool first_mapped_va(sim_device *device, UINT64 *va) {
  for (sim_link *node = device->binding_blocks.next; node != &device->binding_blocks; node = node->next) {
    sim_binding_block *block = SIM_CONTAINER_OF(node, sim_binding_block, link);
    for (UINT i = 0; i < block->count; i++) {
      if (is_open(&block->bindings[i]) && block->bindings[i].mapped) {
        *va = block->bindings[i].va;
        return true;
      }
    }
  }
  return false;
}

static bool closed_binding_beside_a_mapping(sim_adapter *adapter, sim_device *device, sim_binding_block *block,
                                            sim_binding *binding) {
  (void)adapter, (void)block;
  UINT64 va;
  return sim_load(&binding->state) == SIM_DEAD && first_mapped_va(device, &va);
}

/* The first binding of each block that maps a live allocation: one target per such block. */
static bool first_mapped_binding_of_block(sim_adapter *adapter, sim_device *device, sim_binding_block *block,
                                          sim_binding *binding) {
  return first_mapped_of_block(adapter, device, block) == binding;
}

/* The first binding of each block: one target per binding block. */
static bool first_binding_of_block(sim_adapter *adapter, sim_device *device, sim_binding_block *block,
                                   sim_binding *binding) {
  (void)adapter, (void)device;
  return binding == &block->bindings[0];
}

static bool mapped_orphan(sim_adapter *adapter, sim_device *device, sim_binding_block *block, sim_binding *binding) {
  return orphaned_binding(adapter, device, block, binding) && binding->mapped;
}

/* A live device one of whose bindings maps a live allocation. */
static bool device_with_mappings(sim_adapter *adapter, sim_device *device) {
  for (sim_link *node = device->binding_blocks.next; node != &device->binding_blocks; node = node->next)
    if (first_mapped_of_block(adapter, device, SIM_CONTAINER_OF(node, sim_binding_block, link))) return true;
  return false;
}

static bool any_allocation_paging(sim_adapter *adapter) {
  for (sim_link *node = adapter->allocation_blocks.next; node != &adapter->allocation_blocks; node = node->next) {
    sim_allocation_block *block = SIM_CONTAINER_OF(node, sim_allocation_block, link);
    for (UINT i = 0; i < block->count; i++)
      if (sim_load(&block->allocations[i].state) == SIM_ALLOCATION_LIVE && block->allocations[i].paging) return true;
  }
  return false;
}

/* ---- The kinds: each damages its pick-th target; false when there is none ---------------------- */

typedef bool (*damage_fn)(damage *d, unsigned pick);

/* Allocations (check_allocations, check_allocation, check_page_owner). */

static bool allocation_state(damage *d, unsigned pick) {
  sim_allocation *allocation = pick_allocation(d->adapter, pick, any_allocation);
  if (!allocation) return false;
  DAMAGE_SET(d, allocation->state, SIM_ALLOCATION_DOOMED);
  return true;
}

static bool allocation_block_live(damage *d, unsigned pick) {
  sim_allocation *allocation = pick_allocation(d->adapter, pick, any_allocation);
  if (!allocation) return false;
  sim_allocation_block *block = sim_allocation_block_of(allocation);
  DAMAGE_SET(d, block->live, block->live + 1u);
  return true;
}

static bool allocation_placement(damage *d, unsigned pick) {
  sim_allocation *allocation = pick_allocation(d->adapter, pick, any_allocation);
  if (!allocation) return false;
  DAMAGE_SET(d, allocation->place, (UCHAR)7);
  return true;
}

static bool allocation_segment_id(damage *d, unsigned pick) {
  sim_allocation *allocation = pick_allocation(d->adapter, pick, placed);
  if (!allocation) return false;
  DAMAGE_SET(d, allocation->segment_id, (UCHAR)(SIM_SEGMENT_COUNT + 1u));
  return true;
}

static bool allocation_segment_sets(damage *d, unsigned pick) {
  sim_allocation *allocation = pick_allocation(d->adapter, pick, placed);
  if (!allocation) return false;
  const UCHAR bit = (UCHAR)SIM_SEGMENT_BIT(allocation->segment_id);
  DAMAGE_SET(d, allocation->supported_set, (UCHAR)(allocation->supported_set & ~bit));
  DAMAGE_SET(d, allocation->eviction_set, (UCHAR)(allocation->eviction_set & ~bit));
  return true;
}

static bool allocation_offset_unaligned(damage *d, unsigned pick) {
  sim_allocation *allocation = pick_allocation(d->adapter, pick, placed);
  if (!allocation) return false;
  DAMAGE_SET(d, allocation->offset, allocation->offset + 1u);
  return true;
}

/* One page on (or back, at the segment's end): its first or last page is then another's or free. */
static bool allocation_offset_foreign_page(damage *d, unsigned pick) {
  sim_allocation *allocation = pick_allocation(d->adapter, pick, placed_with_room);
  if (!allocation) return false;
  const UINT64 page = sim_segment_page(d->adapter, allocation->segment_id);
  const UINT64 end = allocation->offset + sim_allocation_committed(d->adapter, allocation);
  const bool room_after = end + page <= sim_segment_bytes(d->adapter, allocation->segment_id);
  DAMAGE_SET(d, allocation->offset, room_after ? allocation->offset + page : allocation->offset - page);
  return true;
}

static bool allocation_system_copy_size(damage *d, unsigned pick) {
  sim_allocation *allocation = pick_allocation(d->adapter, pick, in_system_memory);
  if (!allocation) return false;
  DAMAGE_SET(d, allocation->size, allocation->size + GPU_PAGE_SIZE);
  return true;
}

/* A placement the sim forgot: the segment's committed bytes then exceed the placements'. */
static bool allocation_placement_lost(damage *d, unsigned pick) {
  if (any_allocation_paging(d->adapter)) return false; /* the walk skips the committed bytes then */
  sim_allocation *allocation = pick_allocation(d->adapter, pick, placed_unmapped);
  if (!allocation) return false;
  DAMAGE_SET(d, allocation->place, (UCHAR)SIM_PLACE_NONE);
  return true;
}

/* Bindings (check_allocation's list walk, check_device, check_open_binding, check_mapped_binding). */

static bool binding_list_cycle(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, listed_binding);
  if (!binding) return false;
  DAMAGE_SET(d, binding->next, binding);
  return true;
}

static bool binding_state_listed(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, listed_binding);
  if (!binding) return false;
  DAMAGE_SET(d, binding->state, SIM_BINDING_CLOSING);
  return true;
}

static bool binding_state_unlisted(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, unlisted_binding);
  if (!binding) return false;
  DAMAGE_SET(d, binding->state, SIM_BINDING_CLOSING);
  return true;
}

static bool binding_block_closing(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, first_binding_of_block);
  if (!binding) return false;
  sim_binding_block *block = sim_binding_block_of(binding);
  DAMAGE_SET(d, block->closing, 1u);
  return true;
}

static bool binding_block_live(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, first_binding_of_block);
  if (!binding) return false;
  sim_binding_block *block = sim_binding_block_of(binding);
  DAMAGE_SET(d, block->live, block->live + 1u);
  return true;
}

static bool binding_pages_zero(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, open_binding);
  if (!binding) return false;
  DAMAGE_SET(d, binding->pages, 0u);
  return true;
}

static bool binding_pages_span(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, listed_binding);
  if (!binding) return false;
  DAMAGE_SET(d, binding->pages, binding->pages + 1u);
  return true;
}

/* The allocation's block claims another adapter: the binding names an allocation not live here. */
static bool binding_allocation_foreign(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, listed_binding);
  if (!binding) return false;
  sim_allocation_block *block = sim_allocation_block_of(binding->allocation);
  DAMAGE_SET(d, block->adapter, (sim_adapter *)NULL);
  return true;
}

static bool binding_mapped_cleared(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, mapped_binding);
  if (!binding) return false;
  DAMAGE_SET(d, binding->mapped, false);
  return true;
}

static bool binding_mapped_unplaced(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, unmapped_binding_unplaced);
  if (!binding) return false;
  DAMAGE_SET(d, binding->mapped, true);
  return true;
}

/* The VA moved onto a page nothing maps: the walk finds the leaf gone. */
static bool binding_va_unmapped(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, mapped_binding);
  if (!binding) return false;
  gpu_as *as = sim_binding_block_of(binding)->device->as;
  const UINT64 candidates[] = {GPU_VA_LIMIT - GPU_PAGE_SIZE, 0, GPU_VA_LIMIT / 2u, GPU_VA_LIMIT / 4u};
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
    if (!gpu_as_query(as, candidates[i], NULL)) {
      DAMAGE_SET(d, binding->va, candidates[i]);
      return true;
    }
  }
  return false;
}

/* The VA one page on, inside its own range: the leaf there points one page past the placement. */
static bool binding_va_shifted(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, mapped_binding_of_two_pages);
  if (!binding) return false;
  DAMAGE_SET(d, binding->va, binding->va + GPU_PAGE_SIZE);
  return true;
}

static bool binding_block_read_only(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, first_mapped_binding_of_block);
  if (!binding) return false;
  sim_binding_block *block = sim_binding_block_of(binding);
  DAMAGE_SET(d, block->read_only, !block->read_only);
  return true;
}

/* A closed binding's range moved onto a mapped one of the same device. */
static bool closed_binding_va(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, closed_binding_beside_a_mapping);
  if (!binding) return false;
  UINT64 va = 0;
  first_mapped_va(sim_binding_block_of(binding)->device, &va);
  DAMAGE_SET(d, binding->va, va);
  return true;
}

static bool orphan_binding_mapped(damage *d, unsigned pick) {
  sim_binding *binding = pick_binding(d->adapter, pick, orphaned_binding);
  if (!binding) return false;
  DAMAGE_SET(d, binding->mapped, !binding->mapped);
  return true;
}

/* Devices (check_devices, check_device). */

static bool device_magic(damage *d, unsigned pick) {
  sim_device *device = pick_device(d->adapter, &d->adapter->devices, pick, NULL);
  if (!device) return false;
  DAMAGE_SET(d, device->magic, SIM_DEVICE_ZOMBIE);
  return true;
}

static bool zombie_magic(damage *d, unsigned pick) {
  sim_device *device = pick_device(d->adapter, &d->adapter->zombies, pick, NULL);
  if (!device) return false;
  DAMAGE_SET(d, device->magic, SIM_DEVICE_LIVE);
  return true;
}

static bool zombie_pending(damage *d, unsigned pick) {
  sim_device *device = pick_device(d->adapter, &d->adapter->zombies, pick, NULL);
  if (!device) return false;
  DAMAGE_SET(d, device->pending, (UINT64)0);
  return true;
}

/* The list head says non-empty; the walk refuses before following the link. */
static bool zombie_bindings(damage *d, unsigned pick) {
  sim_device *device = pick_device(d->adapter, &d->adapter->zombies, pick, NULL);
  if (!device) return false;
  DAMAGE_SET(d, device->binding_blocks.next, &device->link);
  return true;
}

static bool live_devices_count(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->live_devices, atomic_load(&d->adapter->live_devices) + 1u);
  return true;
}

static bool live_zombies_count(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->live_zombies, atomic_load(&d->adapter->live_zombies) + 1u);
  return true;
}

/* A device with mappings unlinked from the live list (and uncounted, so the counts agree): its
 * mappings are then the MMU's alone. Needs no orphan's stale mapping (the walk skips the MMU's
 * bytes then). */
static bool device_unlisted(damage *d, unsigned pick) {
  sim_adapter *adapter = d->adapter;
  if (pick_binding(adapter, 0, mapped_orphan)) return false;
  sim_device *device = pick_device(adapter, &adapter->devices, pick, device_with_mappings);
  if (!device) return false;
  sim_link *prev = device->link.prev, *next = device->link.next;
  DAMAGE_SET(d, prev->next, next);
  DAMAGE_SET(d, next->prev, prev);
  DAMAGE_SET(d, adapter->live_devices, atomic_load(&adapter->live_devices) - 1u);
  return true;
}

static bool device_pending(damage *d, unsigned pick) {
  sim_device *device = pick_device(d->adapter, NULL, pick, NULL);
  if (!device) return false;
  DAMAGE_SET(d, device->pending, device->pending + 1u);
  return true;
}

/* Segments (check_segments). */

static bool segment_size_config(damage *d, unsigned pick) {
  SIM_HARDWARE_CONFIG *config = &d->adapter->config;
  if (pick % SIM_SEGMENT_COUNT == 0)
    DAMAGE_SET(d, config->MemorySegmentSize, config->MemorySegmentSize * 2u);
  else
    DAMAGE_SET(d, config->ApertureSegmentSize, config->ApertureSegmentSize * 2u);
  return true;
}

/* The engine (check_engine). */

static bool last_fence(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->last_fence, d->adapter->last_fence + 1u);
  return true;
}

static bool adapter_queued_count(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->queued, atomic_load(&d->adapter->queued) + 1u);
  return true;
}

/* A submission the sim counts (adapter and device agree) that the engine never had. */
static bool phantom_submission(damage *d, unsigned pick) {
  sim_device *device = pick_device(d->adapter, NULL, pick, NULL);
  if (!device) return false;
  DAMAGE_SET(d, device->pending, device->pending + 1u);
  DAMAGE_SET(d, d->adapter->queued, atomic_load(&d->adapter->queued) + 1u);
  return true;
}

static bool completions_count(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->completions, d->adapter->completions + 1u);
  return true;
}

static bool completed_fence(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->completed_fence, d->adapter->completed_fence + 1u);
  return true;
}

static bool completed_status(damage *d, unsigned pick) {
  (void)pick;
  if (d->adapter->completed_fence == 0) return false; /* no completion, no status to compare */
  const NTSTATUS told = d->adapter->completed_status == STATUS_SUCCESS ? GPU_STATUS_PAGE_FAULT : STATUS_SUCCESS;
  DAMAGE_SET(d, d->adapter->completed_status, told);
  return true;
}

/* The state a threaded engine has when it completed a submission whose callback has not run
 * yet (the sim one completion behind, the submission still queued in its records) — except
 * that the engine's completed fence did not move past the sim's. */
static bool engine_lag_fence(damage *d, unsigned pick) {
  sim_adapter *adapter = d->adapter;
  if (adapter->completions == 0) return false;
  sim_device *device = pick_device(adapter, NULL, pick, NULL);
  if (!device) return false;
  DAMAGE_SET(d, adapter->config.EngineMode, SIM_ENGINE_THREADED);
  DAMAGE_SET(d, adapter->completions, adapter->completions - 1u);
  DAMAGE_SET(d, adapter->queued, atomic_load(&adapter->queued) + 1u);
  DAMAGE_SET(d, device->pending, device->pending + 1u);
  return true;
}

/* The live counts (the walk's last check). */

static bool live_allocations_count(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->live_allocations, atomic_load(&d->adapter->live_allocations) + 1u);
  return true;
}

static bool live_bindings_count(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->live_bindings, atomic_load(&d->adapter->live_bindings) + 1u);
  return true;
}

static bool live_resources_count(damage *d, unsigned pick) {
  (void)pick;
  DAMAGE_SET(d, d->adapter->live_resources, atomic_load(&d->adapter->live_resources) + 1u);
  return true;
}

/* hw/gpu's own structures (check_devices' gpu_as_check, check_segments' gpu_segment_check):
 * the kinds of gpu_testing.h, on the first segment or device from the pick on that has a target
 * (the pick divided by their number chooses among that object's targets). Not
 * segment_owner_cleared: check_page_owner, earlier in the walk, sees a placement's page lose
 * its owner first (sim_allocation_offset_foreign_page covers that branch). */

static bool gpu_segment_damage(damage *d, unsigned pick, unsigned kind) {
  for (unsigned i = 0; i < SIM_SEGMENT_COUNT; i++) {
    gpu_segment *segment = sim_segment(d->adapter, 1u + (pick + i) % SIM_SEGMENT_COUNT);
    if (gpu_testing_damage_segment(segment, kind, pick / SIM_SEGMENT_COUNT, &d->gpu)) return true;
  }
  return false;
}

/* Over the live devices, then the zombies (each has its address space until freed). */
static bool gpu_as_damage(damage *d, unsigned pick, unsigned kind) {
  unsigned count;
  device_at(d->adapter, NULL, NULL, UINT_MAX, &count);
  for (unsigned i = 0; i < count; i++) {
    unsigned again;
    sim_device *device = device_at(d->adapter, NULL, NULL, (pick + i) % count, &again);
    if (gpu_testing_damage_as(device->as, kind, pick / count, &d->gpu)) return true;
  }
  return false;
}

#define GPU_SEGMENT_KIND(fn, kind) \
  static bool fn(damage *d, unsigned pick) { return gpu_segment_damage(d, pick, (kind)); }
#define GPU_AS_KIND(fn, kind) \
  static bool fn(damage *d, unsigned pick) { return gpu_as_damage(d, pick, (kind)); }

GPU_SEGMENT_KIND(gpu_segment_committed_count, GPU_DAMAGE_SEGMENT_COMMITTED_COUNT)
GPU_SEGMENT_KIND(gpu_segment_stored_count, GPU_DAMAGE_SEGMENT_STORED_COUNT)
GPU_SEGMENT_KIND(gpu_segment_owner_on_free_page, GPU_DAMAGE_SEGMENT_OWNER_ON_FREE_PAGE)
GPU_SEGMENT_KIND(gpu_aperture_host_missing, GPU_DAMAGE_APERTURE_HOST_MISSING)
GPU_SEGMENT_KIND(gpu_aperture_stored_free_page, GPU_DAMAGE_APERTURE_STORED_FREE_PAGE)
GPU_AS_KIND(gpu_as_pointer_at_level_1, GPU_DAMAGE_AS_POINTER_AT_LEVEL_1)
GPU_AS_KIND(gpu_as_table_as_leaf, GPU_DAMAGE_AS_TABLE_AS_LEAF)
GPU_AS_KIND(gpu_as_empty_table_kept, GPU_DAMAGE_AS_EMPTY_TABLE_KEPT)
GPU_AS_KIND(gpu_as_table_count, GPU_DAMAGE_AS_TABLE_COUNT)
GPU_AS_KIND(gpu_as_page_zero_mapped, GPU_DAMAGE_AS_PAGE_ZERO_MAPPED)
GPU_AS_KIND(gpu_as_tables_counter, GPU_DAMAGE_AS_TABLES_COUNTER)
GPU_AS_KIND(gpu_as_table_bytes_counter, GPU_DAMAGE_AS_TABLE_BYTES_COUNTER)
GPU_AS_KIND(gpu_as_mapped_4k_counter, GPU_DAMAGE_AS_MAPPED_4K_COUNTER)
GPU_AS_KIND(gpu_as_mapped_2m_counter, GPU_DAMAGE_AS_MAPPED_2M_COUNTER)

/* ---- The table ---------------------------------------------------------------------------------- */

typedef struct damage_kind {
  al_damage_kind_info info;
  damage_fn apply;
} damage_kind;

/* The state words the expect phrases print (the walk prints a state in hex). */
_Static_assert(SIM_ALLOCATION_DOOMED == 0x53414432u, "expect phrase of sim_allocation_state");
_Static_assert(SIM_BINDING_CLOSING == 0x53424E32u, "expect phrase of sim_binding_state_*");

static const damage_kind kinds[] = {
    /* allocations */
    {{"sim_allocation_state", "live allocation", "is left in state 0x53414432 between calls"}, allocation_state},
    {{"sim_allocation_block_live", "live allocation (its block)", "live allocations, its count says"},
     allocation_block_live},
    {{"sim_allocation_placement", "live allocation", "has placement"}, allocation_placement},
    {{"sim_allocation_segment_id", "allocation placed in a segment", "which does not exist"}, allocation_segment_id},
    {{"sim_allocation_segment_sets", "allocation placed in a segment", "outside its supported and eviction sets"},
     allocation_segment_sets},
    {{"sim_allocation_offset_unaligned", "allocation placed in a segment", "unaligned or outside the segment"},
     allocation_offset_unaligned},
    {{"sim_allocation_offset_foreign_page", "allocation placed in a segment with a page to spare", "is owned by"},
     allocation_offset_foreign_page},
    {{"sim_allocation_system_copy_size", "allocation in system memory", "is in system memory with a copy of"},
     allocation_system_copy_size},
    {{"sim_allocation_placement_lost", "allocation placed in a segment, mapped by no binding",
      "bytes committed, the allocations placed in it"},
     allocation_placement_lost},
    /* bindings */
    {{"sim_binding_list_cycle", "open binding of a live allocation", "(a cycle?)"}, binding_list_cycle},
    {{"sim_binding_state_listed", "open binding of a live allocation", "that is not open on it"},
     binding_state_listed},
    {{"sim_binding_state_unlisted", "closed binding of a held block, or orphaned binding",
      "a binding is left in state 0x53424e32 between calls"},
     binding_state_unlisted},
    {{"sim_binding_block_closing", "binding block", "or is left closing"}, binding_block_closing},
    {{"sim_binding_block_live", "binding block", "open bindings, its count says"}, binding_block_live},
    {{"sim_binding_pages_zero", "open binding", "a binding maps no page"}, binding_pages_zero},
    {{"sim_binding_pages_span", "open binding of a live allocation", "bytes, the allocation 0x"}, binding_pages_span},
    {{"sim_binding_allocation_foreign", "open binding of a live allocation", "which is not live here"},
     binding_allocation_foreign},
    {{"sim_binding_mapped_cleared", "mapped binding of a live allocation", "an unmapped binding at VA"},
     binding_mapped_cleared},
    {{"sim_binding_mapped_unplaced", "unmapped binding of an allocation not in a segment",
      "is mapped, but the allocation is"},
     binding_mapped_unplaced},
    {{"sim_binding_va_unmapped", "mapped binding of a live allocation", "the page table lost its entry"},
     binding_va_unmapped},
    {{"sim_binding_va_shifted", "mapped binding of two pages or more", ", the allocation is at segment"},
     binding_va_shifted},
    {{"sim_binding_block_read_only", "binding block mapping a live allocation", ", opened "}, binding_block_read_only},
    {{"sim_closed_binding_va", "closed binding of a device with a mapping", "a closed binding at VA"},
     closed_binding_va},
    {{"sim_orphan_binding_mapped", "orphaned binding", "bytes, its bindings 0x"}, orphan_binding_mapped},
    /* devices */
    {{"sim_device_magic", "live device", "on the live list is not a live device"}, device_magic},
    {{"sim_zombie_magic", "zombie device", "on the zombie list is not a zombie"}, zombie_magic},
    {{"sim_zombie_pending", "zombie device", "has no queued work left"}, zombie_pending},
    {{"sim_zombie_bindings", "zombie device", "still holds bindings"}, zombie_bindings},
    {{"sim_live_devices_count", "the adapter", "zombies are listed, the counts say"}, live_devices_count},
    {{"sim_live_zombies_count", "the adapter", "zombies are listed, the counts say"}, live_zombies_count},
    {{"sim_device_unlisted", "live device mapping a live allocation (no orphan mapped)", "the MMU maps"},
     device_unlisted},
    {{"sim_device_pending", "live or zombie device", "submissions queued, the adapter counts"}, device_pending},
    /* segments */
    {{"sim_segment_size_config", "segment (memory, aperture)", "not as configured"}, segment_size_config},
    /* the engine */
    {{"sim_last_fence", "the adapter", "the sim gave it"}, last_fence},
    {{"sim_adapter_queued_count", "the adapter", "submissions queued, the adapter counts"}, adapter_queued_count},
    {{"sim_phantom_submission", "live or zombie device", "submissions queued, the sim "}, phantom_submission},
    {{"sim_completions_count", "the adapter", "submissions, the sim recorded"}, completions_count},
    {{"sim_completed_fence", "the adapter", "the sim's record"}, completed_fence},
    {{"sim_completed_status", "the adapter, once a fence completed", "the sim was told"}, completed_status},
    {{"sim_engine_lag_fence", "live or zombie device, once a fence completed", "is not past the sim's"},
     engine_lag_fence},
    /* the live counts */
    {{"sim_live_allocations_count", "the adapter", "resources are held, the live counts say"}, live_allocations_count},
    {{"sim_live_bindings_count", "the adapter", "resources are held, the live counts say"}, live_bindings_count},
    {{"sim_live_resources_count", "the adapter", "resources are held, the live counts say"}, live_resources_count},    /* hw/gpu's structures (gpu_testing.h); appended, so the earlier kinds keep their numbers */
    {{"sim_gpu_segment_committed_count", "segment (memory, aperture)", "gpu_segment_check found a broken invariant"}, gpu_segment_committed_count},
    {{"sim_gpu_segment_stored_count", "segment (memory, aperture)", "gpu_segment_check found a broken invariant"}, gpu_segment_stored_count},
    {{"sim_gpu_segment_owner_on_free_page", "free page of a segment", "gpu_segment_check found a broken invariant"}, gpu_segment_owner_on_free_page},
    {{"sim_gpu_aperture_host_missing", "committed aperture page", "gpu_segment_check found a broken invariant"}, gpu_aperture_host_missing},
    {{"sim_gpu_aperture_stored_free_page", "free aperture page", "gpu_segment_check found a broken invariant"}, gpu_aperture_stored_free_page},
    {{"sim_gpu_as_pointer_at_level_1", "device's 4 KiB leaf", "gpu_as_check found a broken page table"}, gpu_as_pointer_at_level_1},
    {{"sim_gpu_as_table_as_leaf", "device's page table below the root", "gpu_as_check found a broken page table"}, gpu_as_table_as_leaf},
    {{"sim_gpu_as_empty_table_kept", "device's page table below the root", "gpu_as_check found a broken page table"}, gpu_as_empty_table_kept},
    {{"sim_gpu_as_table_count", "device's page table (the root first)", "gpu_as_check found a broken page table"}, gpu_as_table_count},
    {{"sim_gpu_as_page_zero_mapped", "device's level-1 table over VA 0", "gpu_as_check found a broken page table"}, gpu_as_page_zero_mapped},
    {{"sim_gpu_as_tables_counter", "live or zombie device", "gpu_as_check found a broken page table"}, gpu_as_tables_counter},
    {{"sim_gpu_as_table_bytes_counter", "live or zombie device", "gpu_as_check found a broken page table"}, gpu_as_table_bytes_counter},
    {{"sim_gpu_as_mapped_4k_counter", "live or zombie device", "gpu_as_check found a broken page table"}, gpu_as_mapped_4k_counter},
    {{"sim_gpu_as_mapped_2m_counter", "live or zombie device", "gpu_as_check found a broken page table"}, gpu_as_mapped_2m_counter},
};

#define KIND_COUNT (sizeof kinds / sizeof kinds[0])

unsigned sim_testing_damage_kind_count(void) { return (unsigned)KIND_COUNT; }

const al_damage_kind_info *sim_testing_damage_kind(unsigned kind) {
  return kind < KIND_COUNT ? &kinds[kind].info : NULL;
}

al_damage_result sim_testing_damage(HANDLE DeviceHandle, unsigned kind, unsigned pick, char *msg, size_t cap) {
  if (kind >= KIND_COUNT) return AL_DAMAGE_UNKNOWN_KIND;
  sim_adapter *adapter = sim_adapter_started_with(DeviceHandle);
  if (adapter == NULL) return AL_DAMAGE_NO_TARGET;
  damage d = {.adapter = adapter};
  pthread_mutex_lock(&adapter->lock);
  const bool damaged = kinds[kind].apply(&d, pick);
  pthread_mutex_unlock(&adapter->lock);
  if (!damaged) return AL_DAMAGE_NO_TARGET;
  /* The whole walk, through its public entry point (it takes the registry and adapter locks). */
  const bool passed = sim_miniport_check_hardware(DeviceHandle, 0, msg, cap);
  pthread_mutex_lock(&adapter->lock);
  damage_restore(&d);
  pthread_mutex_unlock(&adapter->lock);
  return passed ? AL_DAMAGE_MISSED : AL_DAMAGE_DETECTED;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
