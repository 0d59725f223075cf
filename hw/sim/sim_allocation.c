/*
 * sim_allocation.c — allocations, resources and bindings: CreateAllocation, DestroyAllocation,
 * OpenAllocation, CloseAllocation, and paging (BuildPagingBuffer FILL / TRANSFER) on the
 * simulated GPU's segments and page tables.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* A live allocation of @adapter; NULL for anything else. Lock held (or the state read once). */
static sim_allocation *allocation_from(HANDLE handle, const sim_adapter *adapter) {
  sim_allocation *allocation = handle;
  if (!allocation || sim_load(&allocation->state) != SIM_ALLOCATION_LIVE) return NULL;
  return sim_allocation_block_of(allocation)->adapter == adapter ? allocation : NULL;
}

/* Resource of @adapter, lock held. */
static sim_resource *resource_from(HANDLE handle, const sim_adapter *adapter) {
  sim_resource *resource = handle;
  if (!resource || resource->magic != SIM_RESOURCE_LIVE) return NULL;
  return resource->adapter == adapter ? resource : NULL;
}

uint64_t sim_miniport_allocation_id(HANDLE hAllocation) {
  sim_allocation *allocation = hAllocation;
  if (!allocation || sim_load(&allocation->state) != SIM_ALLOCATION_LIVE) return 0;
  return sim_allocation_id(allocation);
}

static UINT64 round_up(UINT64 value, UINT64 unit) { return (value + unit - 1u) / unit * unit; }

/* ---- Bindings: mapping --------------------------------------------------------------------------- */

static gpu_as *binding_as(sim_binding *binding) { return sim_binding_block_of(binding)->device->as; }

NTSTATUS sim_binding_map_locked(sim_adapter *adapter, sim_binding *binding) {
  sim_allocation *allocation = binding->allocation;
  if (binding->mapped || allocation == NULL || allocation->place != SIM_PLACE_SEGMENT) return STATUS_SUCCESS;
  NTSTATUS status = gpu_as_map(binding_as(binding), binding->va, sim_segment(adapter, allocation->segment_id),
                               allocation->offset, sim_binding_size(binding),
                               sim_binding_block_of(binding)->read_only ? GPU_MAP_READ_ONLY : 0u);
  if (NT_SUCCESS(status)) binding->mapped = true;
  return status;
}

/* Its own mapping, made by one gpu_as_map: the one-walk unmap. */
void sim_binding_unmap_locked(sim_binding *binding) {
  if (!binding->mapped) return;
  (void)gpu_as_unmap_known(binding_as(binding), binding->va, sim_binding_size(binding));
  binding->mapped = false;
}

/* Removes @binding from its allocation's list (lock held). */
static void binding_unlink_locked(sim_binding *binding) {
  sim_allocation *allocation = binding->allocation;
  if (!allocation) return;
  sim_binding **link = &allocation->bindings;
  while (*link != binding) link = &(*link)->next;
  *link = binding->next;
  binding->next = NULL;
  binding->allocation = NULL;
}

void sim_binding_close_locked(sim_binding *binding, bool unmap) {
  if (unmap) sim_binding_unmap_locked(binding); /* unmap before the VA (and anything else) goes */
  binding->mapped = false;
  binding_unlink_locked(binding);
}

void sim_binding_block_release_va_locked(sim_binding_block *block) {
  (void)gpu_as_unmap_release(block->device->as, block->va);
}

/* Maps every binding of @allocation again (after FILL/TRANSFER); a failure leaves that binding
 * unmapped, to be mapped on demand at submit. */
static void remap_bindings_locked(sim_adapter *adapter, sim_allocation *allocation) {
  for (sim_binding *binding = allocation->bindings; binding; binding = binding->next) {
    if (NT_SUCCESS(sim_binding_map_locked(adapter, binding)) && binding->mapped)
      sim_total_add(&sim_global_totals.remaps, 1);
  }
}

static void unmap_bindings_locked(sim_allocation *allocation) {
  for (sim_binding *binding = allocation->bindings; binding; binding = binding->next)
    sim_binding_unmap_locked(binding);
}

void sim_allocation_release_locked(sim_adapter *adapter, sim_allocation *allocation) {
  /* Bindings the port left open: orphaned, their mappings kept (stale on purpose). */
  while (allocation->bindings) {
    sim_binding *binding = allocation->bindings;
    allocation->bindings = binding->next;
    binding->next = NULL;
    binding->allocation = NULL;
  }
  if (allocation->place == SIM_PLACE_SEGMENT) {
    (void)gpu_segment_release(sim_segment(adapter, allocation->segment_id), allocation->offset,
                              sim_allocation_committed(adapter, allocation));
  } else if (allocation->place == SIM_PLACE_SYSTEM) {
    sim_uncount_bytes(&adapter->system_bytes, (size_t)gpu_host_copy_host_bytes(allocation->system));
    gpu_host_copy_free(allocation->system);
  }
  allocation->offset = 0; /* and system */
  allocation->place = SIM_PLACE_NONE;
}

/* ---- CreateAllocation ------------------------------------------------------------------------------ */

/*
 * All-or-nothing without unwinding objects: the block is allocated first and filled while the
 * private data is parsed; a failure at allocation k frees the block (nothing was published).
 * Then, under the lock, the resource is checked or created and the block linked; handles are
 * written last.
 */
/*
 * The injected wrong answers of CreateAllocation (fault_injection.h, ids 6-9, 12-17): each armed point
 * that fires breaks one output of the last allocation of a call that succeeded. A NULL handle
 * first takes its allocation back (a one-element DestroyAllocation), so the sim holds exactly
 * what the answer names and the port's undo can leave nothing behind.
 */
static void create_allocation_wrong_answer(sim_adapter *adapter, DXGKARG_CREATEALLOCATION *args) {
  DXGK_ALLOCATIONINFO *last = &args->pAllocationInfo[args->NumAllocations - 1];
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_UNALIGNED_SIZE)) last->Size += 1;
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_BAD_ALIGNMENT))
    last->Alignment = 3u * GPU_PAGE_SIZE;
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_UNDESCRIBED_SEGMENT))
    last->SupportedWriteSegmentSet |= 1u << (DXGK_MAX_SEGMENTS - 1); /* the sim describes 2 */
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_SHORT_PITCH)) last->PitchAlignedSize = last->Size / 2;
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_EVICTION_NOT_APERTURE))
    last->EvictionSegmentSet |= 1u << (SIM_SEGMENT_ID_MEMORY - 1);
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_ZERO_PRIORITY)) last->AllocationPriority = 0;
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_CACHED_NOT_CPU_VISIBLE)) {
    last->Flags.Cached = 1;
    last->Flags.CpuVisible = 0;
  }
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_PREFERRED_RESERVED)) last->PreferredSegment.Reserved = 1;
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_PREFERRED_UNSUPPORTED)) {
    /* A segment the sim described but the allocation cannot use, else one never described. */
    UINT outside = DXGK_MAX_SEGMENTS;
    for (UINT id = SIM_SEGMENT_COUNT; id >= 1; id--)
      if (!(last->SupportedWriteSegmentSet & (1u << (id - 1)))) outside = id;
    last->PreferredSegment.SegmentId0 = outside;
  }
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_NULL_ALLOCATION)) {
    const HANDLE taken_back = last->hAllocation;
    DXGKARG_DESTROYALLOCATION destroy = {.NumAllocations = 1, .pAllocationList = &taken_back};
    (void)sim_ddi_destroy_allocation(adapter, &destroy);
    last->hAllocation = NULL;
  }
}

NTSTATUS APIENTRY sim_ddi_create_allocation(const HANDLE hAdapter, DXGKARG_CREATEALLOCATION *pCreateAllocation) {
  sim_adapter *adapter = sim_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  DXGKARG_CREATEALLOCATION *args = pCreateAllocation;
  if (!args || args->Flags.Reserved != 0 || args->NumAllocations == 0 || !args->pAllocationInfo)
    return STATUS_INVALID_PARAMETER;
  if (sim_check_removed(adapter)) return STATUS_DEVICE_REMOVED;
  const UINT count = args->NumAllocations;
  const bool with_resource = args->Flags.Resource;
  HANDLE existing_resource = with_resource ? args->hResource : NULL;

  const size_t block_bytes = sim_allocation_block_bytes(count);
  sim_allocation_block *block = sim_object_alloc(adapter, block_bytes);
  if (!block) return STATUS_NO_MEMORY;
  block->adapter = adapter;
  block->count = block->live = count;
  for (UINT i = 0; i < count; i++) {
    DXGK_ALLOCATIONINFO *info = &args->pAllocationInfo[i];
    /* Writes the outputs (not hAllocation, which is written only once the call succeeds). */
    NTSTATUS status = SimDescribeAllocation(&adapter->config, info->pPrivateDriverData,
                                            info->PrivateDriverDataSize, info);
    if (!NT_SUCCESS(status)) {
      free(block);
      return status;
    }
    sim_allocation *allocation = &block->allocations[i];
    memset(allocation, 0, sizeof *allocation);
    atomic_init(&allocation->state, SIM_ALLOCATION_NEW);
    allocation->index = i;
    allocation->size = info->Size;
    allocation->va_align_shift = 12;
    while (((UINT64)1 << allocation->va_align_shift) < info->Alignment) allocation->va_align_shift++;
    allocation->supported_set = (UCHAR)info->SupportedWriteSegmentSet;
    allocation->eviction_set = (UCHAR)info->EvictionSegmentSet;
    allocation->place = SIM_PLACE_NONE;
    allocation->bindings = NULL;
  }

  sim_resource *new_resource = NULL;
  if (with_resource && !existing_resource) {
    new_resource = sim_object_alloc(adapter, sizeof *new_resource);
    if (!new_resource) {
      free(block);
      return STATUS_NO_MEMORY;
    }
    new_resource->magic = SIM_RESOURCE_LIVE;
    new_resource->allocation_count = 0;
    new_resource->adapter = adapter;
  }

  pthread_mutex_lock(&adapter->lock);
  sim_resource *resource = new_resource;
  if (existing_resource) {
    resource = resource_from(existing_resource, adapter);
    if (!resource || resource->allocation_count > UINT_MAX - count) {
      pthread_mutex_unlock(&adapter->lock);
      free(block);
      return resource ? STATUS_INVALID_PARAMETER : STATUS_INVALID_HANDLE;
    }
  }
  if (new_resource) sim_list_add(&adapter->resources, &new_resource->link);
  if (resource) resource->allocation_count += count;
  block->resource = resource;
  block->first_id = atomic_fetch_add(&adapter->next_allocation_id, (UINT64)count);
  for (UINT i = 0; i < count; i++) sim_store(&block->allocations[i].state, SIM_ALLOCATION_LIVE);
  sim_list_add(&adapter->allocation_blocks, &block->link);
  /* Counted before the handles escape, so a destroy can never count below zero. */
  atomic_fetch_add(&adapter->live_allocations, count);
  sim_count_bytes(&adapter->object_bytes, block_bytes);
  if (new_resource) {
    atomic_fetch_add(&adapter->live_resources, 1);
    sim_count_bytes(&adapter->object_bytes, sizeof *new_resource);
  }
  pthread_mutex_unlock(&adapter->lock);

  if (new_resource) args->hResource = new_resource;
  for (UINT i = 0; i < count; i++) args->pAllocationInfo[i].hAllocation = &block->allocations[i];
  create_allocation_wrong_answer(adapter, args);
  return STATUS_SUCCESS;
}

/* ---- DestroyAllocation ----------------------------------------------------------------------------- */

/*
 * Validates the whole list under the lock, marking each allocation DOOMED (a second sighting is
 * a duplicate); any failure restores the marks and changes nothing. Then every listed allocation
 * releases its memory (segment range or system copy) and its block goes with its last
 * allocation; with DestroyResource the resource goes too (the list must name all of it).
 */
NTSTATUS APIENTRY sim_ddi_destroy_allocation(const HANDLE hAdapter,
                                             const DXGKARG_DESTROYALLOCATION *pDestroyAllocation) {
  sim_adapter *adapter = sim_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  const DXGKARG_DESTROYALLOCATION *args = pDestroyAllocation;
  if (!args || args->Flags.Reserved != 0) return STATUS_INVALID_PARAMETER;
  const UINT count = args->NumAllocations;
  const bool destroy_resource = args->Flags.DestroyResource;
  if ((count == 0 && !destroy_resource) || (count != 0 && !args->pAllocationList))
    return STATUS_INVALID_PARAMETER;

  NTSTATUS status = STATUS_SUCCESS;
  sim_resource *resource = NULL;
  UINT marked = 0;
  size_t freed_bytes = 0;
  pthread_mutex_lock(&adapter->lock);
  if (destroy_resource) {
    resource = resource_from(args->hResource, adapter);
    if (!resource) status = STATUS_INVALID_HANDLE;
  }
  for (; NT_SUCCESS(status) && marked < count; marked++) {
    sim_allocation *allocation = args->pAllocationList[marked];
    if (allocation && sim_load(&allocation->state) == SIM_ALLOCATION_DOOMED) {
      status = STATUS_INVALID_PARAMETER; /* listed twice */
      break;
    }
    if (!allocation_from(allocation, adapter)) {
      status = STATUS_INVALID_HANDLE;
      break;
    }
    if ((destroy_resource && sim_allocation_resource(allocation) != resource) || allocation->paging) {
      status = STATUS_INVALID_PARAMETER;
      break;
    }
    sim_store(&allocation->state, SIM_ALLOCATION_DOOMED);
  }
  if (NT_SUCCESS(status) && destroy_resource && resource->allocation_count != count)
    status = STATUS_INVALID_PARAMETER;
  if (!NT_SUCCESS(status)) {
    for (UINT i = 0; i < marked; i++)
      sim_store(&((sim_allocation *)args->pAllocationList[i])->state, SIM_ALLOCATION_LIVE);
    pthread_mutex_unlock(&adapter->lock);
    return status;
  }

  /* Physical ranges that follow each other (adjacent allocations of one CreateAllocation are
   * usually placed back to back) are released by one gpu_segment_release per run. */
  gpu_segment *run_segment = NULL;
  UINT64 run_offset = 0, run_bytes = 0;
  for (UINT i = 0; i < count; i++) {
    sim_allocation *allocation = args->pAllocationList[i];
    sim_allocation_block *block = sim_allocation_block_of(allocation);
    if (allocation->place == SIM_PLACE_SEGMENT) {
      gpu_segment *segment = sim_segment(adapter, allocation->segment_id);
      const UINT64 bytes = sim_allocation_committed(adapter, allocation);
      if (segment == run_segment && run_offset + run_bytes == allocation->offset) {
        run_bytes += bytes;
      } else {
        if (run_segment) (void)gpu_segment_release(run_segment, run_offset, run_bytes);
        run_segment = segment;
        run_offset = allocation->offset;
        run_bytes = bytes;
      }
      allocation->place = SIM_PLACE_NONE; /* released with its run */
    }
    sim_allocation_release_locked(adapter, allocation);
    sim_store(&allocation->state, SIM_DEAD);
    if (block->resource) block->resource->allocation_count--;
    if (--block->live == 0) {
      sim_list_del(&block->link);
      freed_bytes += sim_allocation_block_bytes(block->count);
      free(block);
    }
  }
  if (run_segment) (void)gpu_segment_release(run_segment, run_offset, run_bytes);
  if (resource) {
    sim_list_del(&resource->link);
    resource->magic = SIM_DEAD;
    free(resource);
    freed_bytes += sizeof *resource;
    atomic_fetch_sub(&adapter->live_resources, 1);
  }
  atomic_fetch_sub(&adapter->live_allocations, count);
  sim_uncount_bytes(&adapter->object_bytes, freed_bytes);
  pthread_mutex_unlock(&adapter->lock);
  return STATUS_SUCCESS;
}

/* ---- OpenAllocation / CloseAllocation --------------------------------------------------------------- */

/* Whether @allocation already has an open binding on @device (lock held). */
static bool bound_on(const sim_allocation *allocation, const sim_device *device) {
  for (sim_binding *binding = allocation->bindings; binding; binding = binding->next)
    if (sim_binding_block_of(binding)->device == device) return true;
  return false;
}

/*
 * One block of bindings per call. Port handles are resolved (DxgkCbGetHandleData) before the lock
 * is taken; then, under it, the allocations are checked and linked, the bindings laid out back to
 * back (each at its allocation's alignment) in ONE VA block reserved in the device's address
 * space for the whole call, and each binding is mapped to its allocation's current placement.
 * Any failure closes the bindings made so far and releases the block.
 */
NTSTATUS APIENTRY sim_ddi_open_allocation(const HANDLE hDevice, const DXGKARG_OPENALLOCATION *pOpenAllocation) {
  sim_device *device = sim_device_from(hDevice);
  if (!device) return STATUS_INVALID_HANDLE;
  sim_adapter *adapter = device->adapter;
  const DXGKARG_OPENALLOCATION *args = pOpenAllocation;
  if (!args || args->Flags.Reserved != 0 || (args->NumAllocations != 0 && !args->pOpenAllocation))
    return STATUS_INVALID_PARAMETER;
  const UINT count = args->NumAllocations;
  if (count == 0) return STATUS_SUCCESS; /* an empty resource: nothing to bind */
  if (sim_check_removed(adapter)) return STATUS_DEVICE_REMOVED;

  pthread_mutex_lock(&adapter->lock);
  PDXGKCB_GETHANDLEDATA get_handle_data = adapter->get_handle_data;
  pthread_mutex_unlock(&adapter->lock);
  if (!get_handle_data) return STATUS_INVALID_PARAMETER; /* not started */

  const size_t block_bytes = sim_binding_block_bytes(count);
  sim_binding_block *block = sim_object_alloc(adapter, block_bytes);
  if (!block) return STATUS_NO_MEMORY;
  block->device = device;
  block->count = block->live = count;
  block->va = 0;
  block->closing = 0;
  block->read_only = args->Flags.ReadOnly;
  for (UINT i = 0; i < count; i++) {
    DXGKARGCB_GETHANDLEDATA query;
    memset(&query, 0, sizeof query);
    query.hObject = args->pOpenAllocation[i].hAllocation;
    query.Type = DXGK_HANDLE_ALLOCATION;
    sim_binding *binding = &block->bindings[i];
    memset(binding, 0, sizeof *binding);
    atomic_init(&binding->state, SIM_BINDING_OPEN);
    binding->index = i;
    binding->allocation = get_handle_data(&query); /* checked under the lock */
  }

  NTSTATUS status = STATUS_SUCCESS;
  UINT linked = 0;
  UINT64 layout = 0, alignment = GPU_PAGE_SIZE;
  pthread_mutex_lock(&adapter->lock);
  if (sim_device_from(hDevice) != device) status = STATUS_INVALID_HANDLE;
  /* Check and link every binding; lay them out (va relative to the block for now). */
  for (; NT_SUCCESS(status) && linked < count; linked++) {
    sim_binding *binding = &block->bindings[linked];
    sim_allocation *allocation = allocation_from(binding->allocation, adapter);
    binding->allocation = NULL;
    if (!allocation) {
      status = STATUS_INVALID_HANDLE;
      break;
    }
    if (bound_on(allocation, device)) {
      status = STATUS_INVALID_PARAMETER; /* a second binding on one device */
      break;
    }
    const UINT64 align = (UINT64)1 << allocation->va_align_shift;
    layout = round_up(layout, align);
    if (layout > GPU_VA_LIMIT || allocation->size > GPU_VA_LIMIT - layout) {
      status = STATUS_NO_MEMORY; /* more than the VA space */
      break;
    }
    if (align > alignment) alignment = align;
    binding->va = layout;
    binding->pages = (UINT)(allocation->size >> 12);
    layout += allocation->size;
    binding->allocation = allocation;
    binding->next = allocation->bindings;
    allocation->bindings = binding;
  }
  bool reserved = false;
  if (NT_SUCCESS(status)) {
    status = gpu_va_reserve(device->as, layout, alignment, &block->va);
    if (!NT_SUCCESS(status)) status = STATUS_NO_MEMORY; /* VA space exhausted */
    reserved = NT_SUCCESS(status);
  }
  for (UINT i = 0; NT_SUCCESS(status) && i < count; i++) {
    sim_binding *binding = &block->bindings[i];
    binding->va += block->va;
    if (!NT_SUCCESS(sim_binding_map_locked(adapter, binding))) status = STATUS_NO_MEMORY;
  }
  if (!NT_SUCCESS(status)) {
    for (UINT i = 0; i < linked; i++) sim_binding_close_locked(&block->bindings[i], !reserved);
    if (reserved) sim_binding_block_release_va_locked(block);
    pthread_mutex_unlock(&adapter->lock);
    free(block);
    return status;
  }
  sim_list_add(&device->binding_blocks, &block->link);
  atomic_fetch_add(&adapter->live_bindings, count);
  sim_count_bytes(&adapter->object_bytes, block_bytes);
  pthread_mutex_unlock(&adapter->lock);
  for (UINT i = 0; i < count; i++) args->pOpenAllocation[i].hDeviceSpecificAllocation = &block->bindings[i];
  if (fault_injector_should_fail(adapter->faults, FAULT_OPEN_NULL_BINDING)) {
    /* The injected wrong answer: a NULL binding for the last allocation, closed here first so
     * the sim holds exactly the bindings its answer names. */
    const HANDLE taken_back = args->pOpenAllocation[count - 1].hDeviceSpecificAllocation;
    DXGKARG_CLOSEALLOCATION close = {.NumAllocations = 1, .pOpenHandleList = &taken_back};
    (void)sim_ddi_close_allocation(hDevice, &close);
    args->pOpenAllocation[count - 1].hDeviceSpecificAllocation = NULL;
  }
  return STATUS_SUCCESS;
}

/*
 * Validates the whole list under the lock, marking each binding CLOSING (a second sighting is a
 * duplicate) and counting, per block, the bindings listed; any failure restores the marks and
 * changes nothing. A binding whose block has all its open bindings in this call is not unmapped
 * by itself: the block's last close clears the whole VA block and releases it in one walk.
 */
NTSTATUS APIENTRY sim_ddi_close_allocation(const HANDLE hDevice, const DXGKARG_CLOSEALLOCATION *pCloseAllocation) {
  sim_device *device = sim_device_from(hDevice);
  if (!device) return STATUS_INVALID_HANDLE;
  sim_adapter *adapter = device->adapter;
  const DXGKARG_CLOSEALLOCATION *args = pCloseAllocation;
  if (!args || (args->NumAllocations != 0 && !args->pOpenHandleList)) return STATUS_INVALID_PARAMETER;
  const UINT count = args->NumAllocations;

  NTSTATUS status = STATUS_SUCCESS;
  UINT marked = 0;
  pthread_mutex_lock(&adapter->lock);
  for (; marked < count; marked++) {
    sim_binding *binding = args->pOpenHandleList[marked];
    if (binding && sim_load(&binding->state) == SIM_BINDING_CLOSING &&
        sim_binding_block_of(binding)->device == device) {
      status = STATUS_INVALID_PARAMETER; /* listed twice */
      break;
    }
    if (!sim_binding_from(binding, device)) {
      status = STATUS_INVALID_HANDLE;
      break;
    }
    sim_store(&binding->state, SIM_BINDING_CLOSING);
    sim_binding_block_of(binding)->closing++;
  }
  if (!NT_SUCCESS(status)) {
    for (UINT i = 0; i < marked; i++) {
      sim_binding *binding = args->pOpenHandleList[i];
      sim_store(&binding->state, SIM_BINDING_OPEN);
      sim_binding_block_of(binding)->closing--;
    }
    pthread_mutex_unlock(&adapter->lock);
    return status;
  }
  size_t freed_bytes = 0;
  for (UINT i = 0; i < count; i++) {
    sim_binding *binding = args->pOpenHandleList[i];
    sim_binding_block *block = sim_binding_block_of(binding);
    /* closing == live: every binding still open in the block goes now (invariant in the loop). */
    sim_binding_close_locked(binding, block->closing != block->live);
    sim_store(&binding->state, SIM_DEAD);
    block->closing--;
    if (--block->live == 0) {
      sim_binding_block_release_va_locked(block);
      sim_list_del(&block->link);
      freed_bytes += sim_binding_block_bytes(block->count);
      free(block);
    }
  }
  atomic_fetch_sub(&adapter->live_bindings, count);
  sim_uncount_bytes(&adapter->object_bytes, freed_bytes);
  pthread_mutex_unlock(&adapter->lock);
  return STATUS_SUCCESS;
}

/* ---- Paging: BuildPagingBuffer ------------------------------------------------------------------------ */

/* Whether @bytes at @address of segment @id fit and are page-aligned. */
static bool location_fits(const sim_adapter *adapter, UINT id, LARGE_INTEGER address, UINT64 bytes) {
  if (address.QuadPart < 0) return false;
  const UINT64 offset = (UINT64)address.QuadPart, segment = sim_segment_bytes(adapter, id);
  return offset % sim_segment_page(adapter, id) == 0 && bytes <= segment && offset <= segment - bytes;
}

static bool valid_segment_id(UINT id) { return id >= 1 && id <= SIM_SEGMENT_COUNT; }

/* FILL: first placement. Commits the range (owner: the allocation), zero-fills it, applies
 * FillPattern to FillSize bytes, maps every binding. */
static NTSTATUS paging_fill(sim_adapter *adapter, const DXGKARG_BUILDPAGINGBUFFER *args) {
  const DXGK_PAGING_LOCATION *destination = &args->Fill.Destination;
  const UINT id = destination->SegmentId;
  pthread_mutex_lock(&adapter->lock);
  sim_allocation *allocation = allocation_from(args->Fill.hAllocation, adapter);
  if (!allocation) {
    pthread_mutex_unlock(&adapter->lock);
    return STATUS_INVALID_HANDLE;
  }
  UINT64 committed = 0;
  NTSTATUS status = STATUS_SUCCESS;
  if (allocation->paging || allocation->place != SIM_PLACE_NONE || !valid_segment_id(id) ||
      !(allocation->supported_set & SIM_SEGMENT_BIT(id)))
    status = STATUS_INVALID_PARAMETER;
  if (NT_SUCCESS(status)) {
    committed = round_up(allocation->size, sim_segment_page(adapter, id));
    if (!location_fits(adapter, id, destination->SegmentAddress, committed) || args->Fill.FillSize > committed)
      status = STATUS_INVALID_PARAMETER;
  }
  if (NT_SUCCESS(status)) allocation->paging = true;
  const UINT64 owner = sim_allocation_id(allocation);
  pthread_mutex_unlock(&adapter->lock);
  if (!NT_SUCCESS(status)) return status;

  const UINT64 offset = (UINT64)destination->SegmentAddress.QuadPart;
  gpu_segment *segment = sim_segment(adapter, id);
  status = gpu_segment_commit(segment, offset, committed, owner);
  if (NT_SUCCESS(status)) {
    (void)gpu_segment_fill(segment, offset, committed, 0, 0, NULL);
    if (args->Fill.FillPattern != 0 && args->Fill.FillSize != 0)
      (void)gpu_segment_fill(segment, offset, args->Fill.FillSize, args->Fill.FillPattern, 0, NULL);
  } else if (status != STATUS_NO_MEMORY) {
    status = STATUS_INVALID_PARAMETER; /* a page of the range is taken: a placement bug */
  }
  pthread_mutex_lock(&adapter->lock);
  allocation->paging = false;
  if (NT_SUCCESS(status)) {
    allocation->place = SIM_PLACE_SEGMENT;
    allocation->segment_id = (UCHAR)id;
    allocation->offset = offset;
    remap_bindings_locked(adapter, allocation);
  }
  pthread_mutex_unlock(&adapter->lock);
  if (NT_SUCCESS(status)) sim_total_add(&sim_global_totals.fills, 1);
  return status;
}

/*
 * TRANSFER: moves the whole allocation (TransferOffset 0, TransferSize = Size) from where it is
 * (Source must say exactly that) to Destination: a free range of a segment of its supported or
 * eviction set, or system memory (SegmentId 0). Destination resources are taken and the contents
 * copied outside the lock; then, under it, every binding is unmapped, the placement switched and
 * the bindings mapped at the new place (none in system memory); the source is released last.
 */
static NTSTATUS paging_transfer(sim_adapter *adapter, const DXGKARG_BUILDPAGINGBUFFER *args) {
  const DXGK_PAGING_LOCATION *source = &args->Transfer.Source, *destination = &args->Transfer.Destination;
  const UINT to = destination->SegmentId;
  pthread_mutex_lock(&adapter->lock);
  sim_allocation *allocation = allocation_from(args->Transfer.hAllocation, adapter);
  if (!allocation) {
    pthread_mutex_unlock(&adapter->lock);
    return STATUS_INVALID_HANDLE;
  }
  NTSTATUS status = STATUS_SUCCESS;
  const UINT64 size = allocation->size;
  UINT64 to_committed = 0;
  if (allocation->paging || args->Transfer.TransferOffset != 0 || args->Transfer.TransferSize != size)
    status = STATUS_INVALID_PARAMETER;
  /* The source must be where the allocation is. */
  if (NT_SUCCESS(status)) {
    if (source->SegmentId == 0)
      status = allocation->place == SIM_PLACE_SYSTEM ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
    else if (allocation->place != SIM_PLACE_SEGMENT || allocation->segment_id != source->SegmentId ||
             source->SegmentAddress.QuadPart < 0 || (UINT64)source->SegmentAddress.QuadPart != allocation->offset)
      status = STATUS_INVALID_PARAMETER;
  }
  if (NT_SUCCESS(status)) {
    if (to == 0) {
      if (source->SegmentId == 0) status = STATUS_INVALID_PARAMETER; /* system to system */
    } else if (!valid_segment_id(to) ||
               !((allocation->supported_set | allocation->eviction_set) & SIM_SEGMENT_BIT(to))) {
      status = STATUS_INVALID_PARAMETER;
    } else {
      to_committed = round_up(size, sim_segment_page(adapter, to));
      if (!location_fits(adapter, to, destination->SegmentAddress, to_committed)) status = STATUS_INVALID_PARAMETER;
    }
  }
  const UINT from = allocation->place == SIM_PLACE_SEGMENT ? allocation->segment_id : 0u;
  const UINT64 from_offset = from ? allocation->offset : 0;
  const UINT64 from_committed = from ? sim_allocation_committed(adapter, allocation) : 0;
  gpu_host_copy *from_system = allocation->place == SIM_PLACE_SYSTEM ? allocation->system : NULL;
  const UINT64 owner = sim_allocation_id(allocation);
  if (NT_SUCCESS(status)) allocation->paging = true;
  pthread_mutex_unlock(&adapter->lock);
  if (!NT_SUCCESS(status)) return status;

  /* Take the destination and copy the contents (the allocation is idle: the port says so). Only
   * stored contents move: what reads as zero is marked zero at the destination (gpu_memory.h). */
  const UINT64 to_offset = to ? (UINT64)destination->SegmentAddress.QuadPart : 0;
  gpu_host_copy *to_system = NULL;
  if (to) {
    gpu_segment *dst = sim_segment(adapter, to);
    status = gpu_segment_commit(dst, to_offset, to_committed, owner);
    if (!NT_SUCCESS(status) && status != STATUS_NO_MEMORY) status = STATUS_INVALID_PARAMETER;
    if (NT_SUCCESS(status)) {
      status = from ? gpu_segment_copy(sim_segment(adapter, from), from_offset, dst, to_offset, size, NULL)
                    : gpu_host_copy_restore(from_system, dst, to_offset, NULL);
      if (NT_SUCCESS(status) && to_committed > size)
        status = gpu_segment_fill(dst, to_offset + size, to_committed - size, 0, 0, NULL);
      if (!NT_SUCCESS(status)) {
        (void)gpu_segment_release(dst, to_offset, to_committed);
        status = STATUS_INVALID_PARAMETER;
      }
    }
  } else if (fault_injector_should_fail(adapter->faults, FAULT_DRIVER_OBJECT)) {
    status = STATUS_NO_MEMORY; /* the system copy is a driver object, as sim_object_alloc() asks */
  } else {
    status = gpu_host_copy_save(sim_segment(adapter, from), from_offset, size, &to_system, NULL);
    if (!NT_SUCCESS(status) && status != STATUS_NO_MEMORY) status = STATUS_INVALID_PARAMETER;
  }

  pthread_mutex_lock(&adapter->lock);
  allocation->paging = false;
  if (NT_SUCCESS(status)) {
    unmap_bindings_locked(allocation); /* unmap before the source is released */
    if (to) {
      allocation->place = SIM_PLACE_SEGMENT;
      allocation->segment_id = (UCHAR)to;
      allocation->offset = to_offset;
    } else {
      allocation->place = SIM_PLACE_SYSTEM;
      allocation->segment_id = 0;
      allocation->system = to_system;
      sim_count_bytes(&adapter->system_bytes, (size_t)gpu_host_copy_host_bytes(to_system));
    }
    remap_bindings_locked(adapter, allocation);
    if (!from) sim_uncount_bytes(&adapter->system_bytes, (size_t)gpu_host_copy_host_bytes(from_system));
  }
  pthread_mutex_unlock(&adapter->lock);
  if (!NT_SUCCESS(status)) return status;

  /* Release the source: no binding maps it any more. */
  if (from)
    (void)gpu_segment_release(sim_segment(adapter, from), from_offset, from_committed);
  else
    gpu_host_copy_free(from_system);
  sim_total_add(&sim_global_totals.transfers, 1);
  if (!to) sim_total_add(&sim_global_totals.to_system, 1);
  if (!from) sim_total_add(&sim_global_totals.from_system, 1);
  return STATUS_SUCCESS;
}

NTSTATUS APIENTRY sim_ddi_build_paging_buffer(const HANDLE hAdapter, DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer) {
  sim_adapter *adapter = sim_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  DXGKARG_BUILDPAGINGBUFFER *args = pBuildPagingBuffer;
  if (!args || (args->Operation != DXGK_OPERATION_FILL && args->Operation != DXGK_OPERATION_TRANSFER))
    return STATUS_INVALID_PARAMETER;
  if (sim_check_removed(adapter)) return STATUS_DEVICE_REMOVED;
  return args->Operation == DXGK_OPERATION_FILL ? paging_fill(adapter, args) : paging_transfer(adapter, args);
}
