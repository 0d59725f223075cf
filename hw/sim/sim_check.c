/*
 * sim_check.c — the hardware walk behind sim_miniport_check_hardware() (contract in
 * sim_miniport.h): hw/gpu's own invariant walks over the adapter's segments and address spaces,
 * and the agreement of the segments, page tables and engine with what the sim recorded
 * (placements, bindings, completed fences). Run with the adapter's lock held.
 *
 * The walk is an oracle, not code under test: under libFuzzer it is not coverage-instrumented
 * (the pragma below), as core's invariant walks are (core/src/check.h AL_CHECK_CODE).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

/* Pushed before sim_internal.h, so that this file's copies of its static inline helpers
 * (sim_allocation_id, sim_segment_bytes, sim_load, ...) are untraced too: clang does not inline
 * an instrumented function into an uninstrumented one, so with the pragma after the include the
 * walk called out-of-line, traced copies of them for every allocation and binding (measured:
 * sim_allocation_id alone 1.2% of ddi_sequence's CPU, 1.7% of close_destroy's). The other
 * files' copies, which the miniport runs for real, keep their instrumentation. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)
#endif

#include "sim_internal.h"

typedef struct hw_walk {
  sim_adapter *adapter;
  char *msg;
  size_t cap;
  /* Gathered from the allocations and bindings, held against the GPU's totals at the end. */
  UINT64 committed[SIM_SEGMENT_COUNT];   /* bytes live placed allocations commit, per segment */
  UINT64 mapped[SIM_SEGMENT_COUNT];      /* bytes mapped bindings of live allocations map */
  UINT64 orphans_mapped;                 /* mapped bindings whose allocation was destroyed */
  UINT64 allocations, bindings, pending; /* live allocations, open bindings, queued work */
  bool paging;                           /* a FILL/TRANSFER is between its two locked parts */
  bool segment_pages;                    /* run gpu_segment_check (O(segment size)) */
} hw_walk;

/* Writes the disagreement into the caller's buffer; returns false. The first words name the
 * object (no number first: the fuzz executor makes the message's number-free words the
 * finding's signature). */
__attribute__((format(printf, 2, 3))) static bool hw_fail(hw_walk *w, const char *fmt, ...) {
  if (w->msg == NULL || w->cap == 0) return false;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->msg, w->cap, fmt, ap);
  va_end(ap);
  return false;
}

/* A status for a message: gpu_status_name() for the GPU's own codes. */
static const char *status_text(NTSTATUS status, char *buf, size_t cap) {
  const char *gpu = gpu_status_name(status);
  if (gpu) return gpu;
  if (status == STATUS_SUCCESS) return "STATUS_SUCCESS";
  if (status == STATUS_DEVICE_REMOVED) return "STATUS_DEVICE_REMOVED";
  snprintf(buf, cap, "0x%08x", (unsigned)status);
  return buf;
}

static const char *segment_name(UINT id) { return id == SIM_SEGMENT_ID_MEMORY ? "memory" : "aperture"; }

/* ---- Allocations and segment pages --------------------------------------------------------------- */

/* The page of @allocation at @offset (inside its committed range) must be its own. */
static bool check_page_owner(hw_walk *w, const sim_allocation *allocation, UINT64 id, UINT64 offset) {
  gpu_segment_page_info info;
  NTSTATUS st = gpu_segment_get_page_info(sim_segment(w->adapter, allocation->segment_id), offset, &info);
  if (st != STATUS_SUCCESS)
    return hw_fail(w, "allocation %" PRIu64 ": segment %u offset 0x%" PRIx64 " has no page (0x%08x)", id,
                   allocation->segment_id, offset, (unsigned)st);
  if (info.owner != id)
    return hw_fail(w,
                   "allocation %" PRIu64 " is placed in segment %u (%s) at 0x%" PRIx64
                   ", but the page at 0x%" PRIx64 " is owned by %" PRIu64 " (0 = free; last owner %" PRIu64 ")",
                   id, allocation->segment_id, segment_name(allocation->segment_id), allocation->offset, offset,
                   info.owner, info.last_owner);
  return true;
}

static bool check_allocation(hw_walk *w, sim_allocation *allocation) {
  sim_adapter *adapter = w->adapter;
  const UINT64 id = sim_allocation_id(allocation);
  if (allocation->paging) w->paging = true;
  switch (allocation->place) {
  case SIM_PLACE_NONE:
    break;
  case SIM_PLACE_SEGMENT: {
    const UINT sid = allocation->segment_id;
    if (sid < 1 || sid > SIM_SEGMENT_COUNT)
      return hw_fail(w, "allocation %" PRIu64 " is placed in segment %u, which does not exist", id, sid);
    if (!((allocation->supported_set | allocation->eviction_set) & SIM_SEGMENT_BIT(sid)))
      return hw_fail(w, "allocation %" PRIu64 " is placed in segment %u, outside its supported and eviction sets",
                     id, sid);
    const UINT64 page = sim_segment_page(adapter, sid), committed = sim_allocation_committed(adapter, allocation);
    if (allocation->offset % page != 0 || committed > sim_segment_bytes(adapter, sid) ||
        allocation->offset > sim_segment_bytes(adapter, sid) - committed)
      return hw_fail(w, "allocation %" PRIu64 " is placed at segment %u offset 0x%" PRIx64 " (+0x%" PRIx64
                     "), unaligned or outside the segment",
                     id, sid, allocation->offset, committed);
    if (!check_page_owner(w, allocation, id, allocation->offset) ||
        !check_page_owner(w, allocation, id, allocation->offset + committed - page))
      return false;
    w->committed[sid - 1] += committed;
    break;
  }
  case SIM_PLACE_SYSTEM:
    if (allocation->system == NULL || gpu_host_copy_size(allocation->system) != allocation->size)
      return hw_fail(w, "allocation %" PRIu64 " is in system memory with a copy of %" PRIu64 " bytes, not %" PRIu64,
                     id, gpu_host_copy_size(allocation->system), allocation->size);
    break;
  default:
    return hw_fail(w, "allocation %" PRIu64 " has placement %u", id, allocation->place);
  }
  /* Its bindings name it back, and are open (the list is short: one per device). */
  UINT64 seen = 0;
  for (sim_binding *binding = allocation->bindings; binding; binding = binding->next) {
    if (++seen > atomic_load(&adapter->live_bindings))
      return hw_fail(w, "allocation %" PRIu64 ": its binding list is longer than the live bindings (a cycle?)", id);
    if (binding->allocation != allocation || sim_load(&binding->state) != SIM_BINDING_OPEN)
      return hw_fail(w, "allocation %" PRIu64 " lists a binding (VA 0x%" PRIx64 ") that is not open on it", id,
                     binding->va);
  }
  return true;
}

static bool check_allocations(hw_walk *w) {
  sim_link *head = &w->adapter->allocation_blocks;
  for (sim_link *node = head->next; node != head; node = node->next) {
    sim_allocation_block *block = SIM_CONTAINER_OF(node, sim_allocation_block, link);
    UINT live = 0;
    for (UINT i = 0; i < block->count; i++) {
      sim_allocation *allocation = &block->allocations[i];
      const UINT state = sim_load(&allocation->state);
      if (state == SIM_DEAD) continue;
      if (state != SIM_ALLOCATION_LIVE)
        return hw_fail(w, "allocation %" PRIu64 " is left in state 0x%08x between calls",
                       sim_allocation_id(allocation), state);
      live++;
      if (!check_allocation(w, allocation)) return false;
    }
    if (live != block->live || live == 0)
      return hw_fail(w, "an allocation block (first id %" PRIu64 ") has %u live allocations, its count says %u",
                     block->first_id, live, block->live);
    w->allocations += live;
  }
  return true;
}

/* ---- Bindings and page tables ---------------------------------------------------------------------- */

/* [@va, @va + 4 KiB) must not be mapped. */
static bool check_unmapped(hw_walk *w, const sim_device *device, UINT64 va, const char *what) {
  gpu_mapping m;
  if (!gpu_as_query(device->as, va, &m)) return true;
  return hw_fail(w, "device 0x%08x: %s at VA 0x%" PRIx64 " is still mapped (to segment %u offset 0x%" PRIx64 ")",
                 device->port_handle, what, va, gpu_segment_id(m.segment), m.phys);
}

/* A mapped binding maps its allocation's placement: the leaves of its first and last page point
 * there with the binding's access (gpu_as_query), and, for the first binding of each allocation,
 * a GPU read of the first page translates there too (gpu_as_translate: the page walk the engine
 * makes, with its owner check). Once per allocation, not per binding: close_destroy's programs
 * bind a resource of 1024 allocations on up to 8 devices, and the read's segment lock and owner
 * lookup repeat what check_page_owner saw. */
static bool check_mapped_binding(hw_walk *w, const sim_device *device, const sim_binding *binding, bool read_only) {
  const sim_allocation *allocation = binding->allocation;
  const UINT64 id = sim_allocation_id(binding->allocation);
  gpu_segment *segment = sim_segment(w->adapter, allocation->segment_id);
  const UINT64 last = sim_binding_size(binding) - GPU_PAGE_SIZE;
  for (int page = 0; page < 2; page++) {
    const UINT64 va = binding->va + (page ? last : 0), phys = allocation->offset + (page ? last : 0);
    gpu_mapping m;
    if (!gpu_as_query(device->as, va, &m))
      return hw_fail(w, "device 0x%08x: binding of allocation %" PRIu64 " is mapped, but VA 0x%" PRIx64
                     " is not (the page table lost its entry)",
                     device->port_handle, id, va);
    if (m.segment != segment || m.phys != phys)
      return hw_fail(w, "device 0x%08x: binding of allocation %" PRIu64 ": VA 0x%" PRIx64
                     " maps segment %u offset 0x%" PRIx64 ", the allocation is at segment %u offset 0x%" PRIx64,
                     device->port_handle, id, va, gpu_segment_id(m.segment), m.phys, allocation->segment_id, phys);
    if (m.writable == read_only)
      return hw_fail(w, "device 0x%08x: binding of allocation %" PRIu64 ": VA 0x%" PRIx64 " is %s, opened %s",
                     device->port_handle, id, va, m.writable ? "writable" : "read-only",
                     read_only ? "ReadOnly" : "read-write");
  }
  if (allocation->bindings != binding) return true;
  gpu_segment *found = NULL;
  uint64_t found_phys = 0;
  char buf[16];
  NTSTATUS st = gpu_as_translate(device->as, binding->va, GPU_ACCESS_READ, &found, &found_phys);
  if (st != STATUS_SUCCESS)
    return hw_fail(w, "device 0x%08x: binding of allocation %" PRIu64 ": a GPU read of VA 0x%" PRIx64 " gives %s",
                   device->port_handle, id, binding->va, status_text(st, buf, sizeof buf));
  if (found != segment || found_phys != allocation->offset)
    return hw_fail(w, "device 0x%08x: binding of allocation %" PRIu64 ": a GPU read of VA 0x%" PRIx64
                   " reaches segment %u offset 0x%" PRIx64 ", its leaf says segment %u offset 0x%" PRIx64,
                   device->port_handle, id, binding->va, gpu_segment_id(found), found_phys, allocation->segment_id,
                   allocation->offset);
  return true;
}

static bool check_open_binding(hw_walk *w, const sim_device *device, const sim_binding_block *block,
                               sim_binding *binding) {
  const UINT64 size = sim_binding_size(binding), last = size - GPU_PAGE_SIZE;
  sim_allocation *allocation = binding->allocation;
  if (binding->pages == 0) return hw_fail(w, "device 0x%08x: a binding maps no page", device->port_handle);
  if (allocation == NULL) { /* orphaned by a destroy the port should not have made: stale mapping */
    if (binding->mapped) w->orphans_mapped++;
    return true;
  }
  const UINT64 id = sim_allocation_id(allocation);
  if (sim_load(&allocation->state) != SIM_ALLOCATION_LIVE || sim_allocation_block_of(allocation)->adapter != w->adapter)
    return hw_fail(w, "device 0x%08x: an open binding names allocation %" PRIu64 ", which is not live here",
                   device->port_handle, id);
  if (allocation->size != size)
    return hw_fail(w, "device 0x%08x: binding of allocation %" PRIu64 " spans 0x%" PRIx64 " bytes, the allocation 0x%" PRIx64,
                   device->port_handle, id, size, allocation->size);
  if (!binding->mapped)
    return check_unmapped(w, device, binding->va, "an unmapped binding") &&
           check_unmapped(w, device, binding->va + last, "an unmapped binding");
  if (allocation->place != SIM_PLACE_SEGMENT)
    return hw_fail(w, "device 0x%08x: binding of allocation %" PRIu64 " is mapped, but the allocation is %s",
                   device->port_handle, id, allocation->place == SIM_PLACE_SYSTEM ? "in system memory" : "not placed");
  if (!check_mapped_binding(w, device, binding, block->read_only)) return false;
  w->mapped[allocation->segment_id - 1] += size;
  return true;
}

static bool check_device(hw_walk *w, sim_device *device, bool zombie) {
  char finding[512];
  if (!gpu_as_check(device->as, finding, sizeof finding))
    return hw_fail(w, "device 0x%08x: address space %u: gpu_as_check found a broken page table: %s",
                   device->port_handle, gpu_as_id(device->as), finding);
  w->pending += device->pending;
  if (zombie) {
    if (device->pending == 0)
      return hw_fail(w, "zombie device 0x%08x has no queued work left, yet was not freed", device->port_handle);
    if (!sim_list_empty(&device->binding_blocks))
      return hw_fail(w, "zombie device 0x%08x still holds bindings", device->port_handle);
  }
  UINT64 mapped_bytes = 0;
  for (sim_link *node = device->binding_blocks.next; node != &device->binding_blocks; node = node->next) {
    sim_binding_block *block = SIM_CONTAINER_OF(node, sim_binding_block, link);
    if (block->device != device || block->closing != 0)
      return hw_fail(w, "device 0x%08x: a binding block belongs to another device or is left closing",
                     device->port_handle);
    UINT open = 0;
    for (UINT i = 0; i < block->count; i++) {
      sim_binding *binding = &block->bindings[i];
      const UINT state = sim_load(&binding->state);
      if (state == SIM_BINDING_OPEN) {
        open++;
        if (!check_open_binding(w, device, block, binding)) return false;
        if (binding->mapped) mapped_bytes += sim_binding_size(binding);
      } else if (state == SIM_DEAD) {
        /* Closed while others of its block stay open: its range was unmapped. */
        if (!check_unmapped(w, device, binding->va, "a closed binding") ||
            !check_unmapped(w, device, binding->va + sim_binding_size(binding) - GPU_PAGE_SIZE, "a closed binding"))
          return false;
      } else {
        return hw_fail(w, "device 0x%08x: a binding is left in state 0x%08x between calls", device->port_handle, state);
      }
    }
    if (open != block->live || open == 0)
      return hw_fail(w, "device 0x%08x: a binding block has %u open bindings, its count says %u", device->port_handle,
                     open, block->live);
    w->bindings += open;
  }
  gpu_as_stats stats;
  gpu_as_get_stats(device->as, &stats);
  const UINT64 as_mapped = stats.mapped_4k * GPU_PAGE_SIZE + stats.mapped_2m * GPU_LARGE_PAGE_SIZE;
  if (as_mapped != mapped_bytes)
    return hw_fail(w, "device 0x%08x: address space %u maps 0x%" PRIx64 " bytes, its bindings 0x%" PRIx64,
                   device->port_handle, gpu_as_id(device->as), as_mapped, mapped_bytes);
  return true;
}

static bool check_devices(hw_walk *w) {
  sim_adapter *adapter = w->adapter;
  UINT64 devices = 0, zombies = 0;
  for (sim_link *node = adapter->devices.next; node != &adapter->devices; node = node->next, devices++) {
    sim_device *device = SIM_CONTAINER_OF(node, sim_device, link);
    if (device->magic != SIM_DEVICE_LIVE || device->adapter != adapter)
      return hw_fail(w, "device 0x%08x on the live list is not a live device of this adapter", device->port_handle);
    if (!check_device(w, device, false)) return false;
  }
  for (sim_link *node = adapter->zombies.next; node != &adapter->zombies; node = node->next, zombies++) {
    sim_device *device = SIM_CONTAINER_OF(node, sim_device, link);
    if (device->magic != SIM_DEVICE_ZOMBIE || device->adapter != adapter)
      return hw_fail(w, "device 0x%08x on the zombie list is not a zombie of this adapter", device->port_handle);
    if (!check_device(w, device, true)) return false;
  }
  if (devices != atomic_load(&adapter->live_devices) || zombies != atomic_load(&adapter->live_zombies))
    return hw_fail(w, "%" PRIu64 " devices and %" PRIu64 " zombies are listed, the counts say %u and %u", devices,
                   zombies, atomic_load(&adapter->live_devices), atomic_load(&adapter->live_zombies));
  return true;
}

/* ---- Segments ---------------------------------------------------------------------------------------- */

static bool check_segments(hw_walk *w) {
  sim_adapter *adapter = w->adapter;
  for (UINT id = 1; id <= SIM_SEGMENT_COUNT; id++) {
    gpu_segment *segment = sim_segment(adapter, id);
    const gpu_segment_kind kind = id == SIM_SEGMENT_ID_MEMORY ? GPU_SEGMENT_MEMORY : GPU_SEGMENT_APERTURE;
    if (gpu_segment_id(segment) != id || gpu_segment_get_kind(segment) != kind ||
        gpu_segment_size(segment) != sim_segment_bytes(adapter, id) ||
        gpu_segment_page_size(segment) != sim_segment_page(adapter, id))
      return hw_fail(w, "segment %u (%s) is id %u, kind %d, 0x%" PRIx64 " bytes in pages of %u: not as configured", id,
                     segment_name(id), gpu_segment_id(segment), (int)gpu_segment_get_kind(segment),
                     gpu_segment_size(segment), gpu_segment_page_size(segment));
    char finding[512];
    if (w->segment_pages && !gpu_segment_check(segment, finding, sizeof finding))
      return hw_fail(w, "segment %u (%s): gpu_segment_check found a broken invariant: %s", id, segment_name(id),
                     finding);
    gpu_segment_stats stats;
    gpu_segment_get_stats(segment, &stats);
    if (!w->paging && stats.committed_bytes != w->committed[id - 1])
      return hw_fail(w, "segment %u (%s) has 0x%" PRIx64 " bytes committed, the allocations placed in it 0x%" PRIx64,
                     id, segment_name(id), stats.committed_bytes, w->committed[id - 1]);
    const UINT64 mapped = gpu_mmu_segment_mapped_bytes(adapter->mmu, segment);
    if (w->orphans_mapped == 0 && mapped != w->mapped[id - 1])
      return hw_fail(w, "the MMU maps 0x%" PRIx64 " bytes of segment %u (%s), the bindings 0x%" PRIx64, mapped, id,
                     segment_name(id), w->mapped[id - 1]);
  }
  return true;
}

/* ---- The engine -------------------------------------------------------------------------------------- */

static bool check_engine(hw_walk *w) {
  sim_adapter *adapter = w->adapter;
  gpu_engine *engine = adapter->engine;
  gpu_engine_stats stats;
  gpu_engine_get_stats(engine, &stats);
  const UINT64 queued = atomic_load(&adapter->queued);
  char buf[2][16];
  if (stats.last_submitted_fence != adapter->last_fence)
    return hw_fail(w, "the engine's last submitted fence is %" PRIu64 ", the sim gave it %" PRIu64,
                   stats.last_submitted_fence, adapter->last_fence);
  if (w->pending != queued)
    return hw_fail(w, "the devices have %" PRIu64 " submissions queued, the adapter counts %" PRIu64, w->pending,
                   queued);
  /* A threaded engine may have completed one submission whose callback waits for the lock. */
  const UINT64 lag_allowed = adapter->config.EngineMode == SIM_ENGINE_THREADED ? 1u : 0u;
  if (stats.completed < adapter->completions || stats.completed - adapter->completions > lag_allowed)
    return hw_fail(w, "the engine completed %" PRIu64 " submissions, the sim recorded %" PRIu64, stats.completed,
                   adapter->completions);
  const UINT64 lag = stats.completed - adapter->completions;
  if (stats.queued + lag != queued)
    return hw_fail(w, "the engine has %" PRIu64 " submissions queued, the sim %" PRIu64, stats.queued, queued);
  /* One snapshot decides (a threaded engine moves on between two reads); a deterministic one
   * cannot, so there its other readers must agree with the snapshot too. */
  const UINT64 completed_fence = stats.completed_fence;
  if (lag_allowed == 0 && gpu_engine_completed_fence(engine) != completed_fence)
    return hw_fail(w, "the engine's completed fence reads %" PRIu64 " and %" PRIu64,
                   gpu_engine_completed_fence(engine), completed_fence);
  if (lag == 0) {
    if (completed_fence != adapter->completed_fence)
      return hw_fail(w, "the engine's completed fence is %" PRIu64 ", the sim's record %" PRIu64, completed_fence,
                     adapter->completed_fence);
    NTSTATUS status = STATUS_SUCCESS;
    if (completed_fence != 0 && !gpu_engine_fence_status(engine, completed_fence, &status))
      return hw_fail(w, "the engine has no status for its completed fence %" PRIu64, completed_fence);
    if (completed_fence != 0 && status != adapter->completed_status)
      return hw_fail(w, "fence %" PRIu64 " completed with %s in the engine, the sim was told %s", completed_fence,
                     status_text(status, buf[0], sizeof buf[0]),
                     status_text(adapter->completed_status, buf[1], sizeof buf[1]));
  } else if (completed_fence <= adapter->completed_fence) {
    return hw_fail(w, "the engine completed one more submission, yet its fence %" PRIu64 " is not past the sim's %" PRIu64,
                   completed_fence, adapter->completed_fence);
  }
  NTSTATUS status;
  if (lag_allowed == 0 && adapter->last_fence > completed_fence &&
      gpu_engine_fence_status(engine, adapter->last_fence, &status))
    return hw_fail(w, "fence %" PRIu64 " is still queued, yet the engine has a status for it (%s)", adapter->last_fence,
                   status_text(status, buf[0], sizeof buf[0]));
  return true;
}

/* ---- The walk ---------------------------------------------------------------------------------------- */

bool sim_adapter_check_hardware_locked(sim_adapter *adapter, bool segment_pages, char *msg, size_t cap) {
  hw_walk w = {.adapter = adapter, .msg = msg, .cap = cap, .segment_pages = segment_pages};
  if (!check_allocations(&w) || !check_devices(&w) || !check_segments(&w) || !check_engine(&w)) return false;
  UINT resources = 0;
  for (sim_link *node = adapter->resources.next; node != &adapter->resources; node = node->next) resources++;
  if (w.allocations != atomic_load(&adapter->live_allocations) || w.bindings != atomic_load(&adapter->live_bindings) ||
      resources != atomic_load(&adapter->live_resources))
    return hw_fail(&w,
                   "%" PRIu64 " allocations, %" PRIu64 " open bindings and %u resources are held, the live counts say "
                   "%u, %u and %u",
                   w.allocations, w.bindings, resources, atomic_load(&adapter->live_allocations),
                   atomic_load(&adapter->live_bindings), atomic_load(&adapter->live_resources));
  return true;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
