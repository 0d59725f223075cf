/*
 * adapter.c — registration (DxgkInitialize), adapter bring-up and teardown, the callbacks the
 * miniport calls, object references and lookups, statistics and the invariant walk.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"
#include "check.h"
#include "port.h"
#include "verifier.h"

/* ---- Registration ----------------------------------------------------------------------------- */

NTSTATUS DxgkInitialize(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath,
                        PDRIVER_INITIALIZATION_DATA DriverInitializationData) {
  (void)RegistryPath;
  if (DriverObject == NULL || DriverInitializationData == NULL) return STATUS_INVALID_PARAMETER;
  const DRIVER_INITIALIZATION_DATA *ddi = DriverInitializationData;
  if (ddi->Version != DXGKDDI_INTERFACE_VERSION || DriverObject->registered)
    return STATUS_GRAPHICS_DRIVER_MISMATCH;
  if (!ddi->DxgkDdiAddDevice || !ddi->DxgkDdiStartDevice || !ddi->DxgkDdiStopDevice ||
      !ddi->DxgkDdiRemoveDevice || !ddi->DxgkDdiQueryAdapterInfo || !ddi->DxgkDdiCreateDevice ||
      !ddi->DxgkDdiDestroyDevice || !ddi->DxgkDdiCreateAllocation ||
      !ddi->DxgkDdiDestroyAllocation || !ddi->DxgkDdiOpenAllocation ||
      !ddi->DxgkDdiCloseAllocation || !ddi->DxgkDdiSubmitCommand)
    return STATUS_INVALID_PARAMETER;
  DriverObject->ddi = *ddi;
  DriverObject->registered = true;
  return STATUS_SUCCESS;
}

/* ---- References -------------------------------------------------------------------------------- */

static void ref_get(atomic_uint *refs, const char *what) {
  unsigned before = atomic_fetch_add_explicit(refs, 1, memory_order_relaxed);
  if (before == 0) {
    fprintf(stderr, "alloclab: %s reference count increased from zero\n", what);
    abort();
  }
}

void port_device_ref(port_device *device) { ref_get(&device->refs, "device"); }
void port_resource_ref(port_resource *resource) { ref_get(&resource->refs, "resource"); }

void port_device_unref(al_adapter *adapter, port_device *device) {
  (void)adapter;
  if (atomic_fetch_sub_explicit(&device->refs, 1, memory_order_acq_rel) != 1) return;
  pthread_mutex_destroy(&device->lock);
  free(device);
}

static void private_data_free(port_private_data *data) {
  free(data->data);
  data->data = NULL;
  data->size = 0;
}

void port_resource_unref(al_adapter *adapter, port_resource *resource) {
  (void)adapter;
  if (atomic_fetch_sub_explicit(&resource->refs, 1, memory_order_acq_rel) != 1) return;
  if (resource->allocation_private) {
    for (uint32_t i = 0; i < resource->capacity; i++)
      private_data_free(&resource->allocation_private[i]);
    free(resource->allocation_private);
  }
  private_data_free(&resource->resource_private);
  free(resource->records); /* one block with miniport_allocations */
  pthread_mutex_destroy(&resource->lock);
  free(resource);
}

port_resource *port_resource_new(uint32_t flags, al_handle creator) {
  port_resource *resource = al_host_calloc(1, sizeof *resource);
  if (resource == NULL) return NULL;
  pthread_mutex_init(&resource->lock, NULL);
  atomic_init(&resource->refs, 1);
  atomic_init(&resource->pending_teardowns, 0);
  resource->flags = flags;
  resource->creator = creator;
  return resource;
}

void port_open_free(port_open *open) {
  if (open == NULL) return;
  free(open->bindings);
  free(open);
}

bool port_open_reserve(port_open *open, uint32_t needed) {
  if (needed <= open->capacity) return true;
  uint32_t capacity = open->capacity ? open->capacity : 4;
  while (capacity < needed) capacity = capacity > UINT32_MAX / 2 ? needed : capacity * 2;
  HANDLE *bindings = al_host_realloc(open->bindings, (size_t)capacity * sizeof *bindings);
  if (bindings == NULL) return false;
  open->bindings = bindings;
  open->capacity = capacity;
  return true;
}

bool port_resource_reserve(port_resource *resource, port_open *open, uint32_t needed) {
  if (needed > resource->capacity) {
    uint32_t capacity = resource->capacity ? resource->capacity : 4;
    while (capacity < needed) capacity = capacity > UINT32_MAX / 2 ? needed : capacity * 2;
    /* records, miniport_allocations and placement share one block: one host allocation per
     * growth */
    size_t records_bytes = (size_t)capacity * sizeof(port_allocation);
    size_t handles_bytes = (size_t)capacity * sizeof(HANDLE);
    void *block = al_host_malloc(records_bytes + handles_bytes + (size_t)capacity * sizeof(port_placement));
    if (block == NULL) return false;
    port_private_data *private_copies = NULL;
    if (resource->flags & RESOURCE_SHARED) {
      private_copies = al_host_calloc(capacity, sizeof *private_copies);
      if (private_copies == NULL) {
        free(block);
        return false;
      }
    }
    if (open != NULL && !port_open_reserve(open, needed)) {
      free(private_copies);
      free(block);
      return false;
    }
    port_allocation *records = block;
    HANDLE *miniport_allocations = (HANDLE *)(void *)((char *)block + records_bytes);
    port_placement *placement = (port_placement *)(void *)((char *)block + records_bytes + handles_bytes);
    if (resource->count) {
      memcpy(records, resource->records, resource->count * sizeof *records);
      memcpy(miniport_allocations, resource->miniport_allocations,
             resource->count * sizeof *miniport_allocations);
      memcpy(placement, resource->placement, resource->count * sizeof *placement);
    }
    if (private_copies && resource->allocation_private)
      memcpy(private_copies, resource->allocation_private,
             resource->count * sizeof *private_copies);
    free(resource->allocation_private);
    free(resource->records);
    resource->records = records;
    resource->miniport_allocations = miniport_allocations;
    resource->placement = placement;
    resource->allocation_private = private_copies;
    resource->capacity = capacity;
    return true;
  }
  return open == NULL || port_open_reserve(open, needed);
}

/* ---- Lookups ------------------------------------------------------------------------------------ */

port_device *port_lookup_device(al_adapter *adapter, al_handle handle) {
  handle_table_lock(&adapter->devices);
  port_device *device = handle_table_lookup_locked(&adapter->devices, handle, NULL);
  if (device) port_device_ref(device);
  handle_table_unlock(&adapter->devices);
  return device;
}

port_resource *port_lookup_resource(al_adapter *adapter, al_handle handle) {
  handle_table_lock(&adapter->resources);
  port_resource *resource = handle_table_lookup_locked(&adapter->resources, handle, NULL);
  if (resource) port_resource_ref(resource);
  handle_table_unlock(&adapter->resources);
  return resource;
}

bool port_resource_has_dying_holder(al_adapter *adapter, const port_resource *resource) {
  if (atomic_load(&adapter->devices_dying) == 0) return false; /* no destroy under way */
  bool dying = false;
  handle_table_lock(&adapter->devices);
  for (const port_open *open = resource->holders; open && !dying; open = open->next_holder)
    dying = handle_table_lookup_locked(&adapter->devices, open->device, NULL) == NULL;
  handle_table_unlock(&adapter->devices);
  return dying;
}

void port_wait_device_destroys(al_adapter *adapter) {
  port_lock(&adapter->device_destroy_lock);
  port_unlock(&adapter->device_destroy_lock);
}

port_open *port_find_open(port_resource *resource, al_handle device) {
  for (port_open *open = resource->holders; open; open = open->next_holder)
    if (open->device == device) return open;
  return NULL;
}

/* ---- Callbacks (miniport -> port) --------------------------------------------------------------- */

static VOID *APIENTRY port_get_handle_data(const DXGKARGCB_GETHANDLEDATA *data) {
  al_adapter *adapter = ddi_current_adapter;
  if (adapter == NULL || data == NULL) return NULL;
  void *answer = NULL;
  if (data->Type == DXGK_HANDLE_ALLOCATION) {
    uint32_t index = 0;
    handle_table_lock(&adapter->allocations);
    port_resource *resource =
        handle_table_lookup_any_locked(&adapter->allocations, data->hObject, &index);
    if (resource && index < resource->capacity) answer = resource->miniport_allocations[index];
    handle_table_unlock(&adapter->allocations);
  } else if (data->Type == DXGK_HANDLE_RESOURCE) {
    handle_table_lock(&adapter->resources);
    port_resource *resource = handle_table_lookup_any_locked(&adapter->resources, data->hObject, NULL);
    if (resource) answer = resource->miniport_resource;
    handle_table_unlock(&adapter->resources);
  }
  return answer;
}

static VOID APIENTRY port_notify_interrupt(const HANDLE hAdapter,
                                           const DXGKARGCB_NOTIFY_INTERRUPT_DATA *data) {
  al_adapter *adapter = hAdapter;
  if (adapter == NULL || data == NULL || data->InterruptType != DXGK_INTERRUPT_DMA_COMPLETED)
    return;
  port_lock(&adapter->fence_lock);
  uint64_t completed = atomic_load(&adapter->fence_completed);
  uint64_t submitted = atomic_load(&adapter->fence_issued);
  /* The DDI carries 32 bits: extend against the last completed value. A report at or behind it
   * is stale (completions may be reported out of order by concurrent engine runners, and a
   * newer fence implies the older ones), so only a step forward counts. */
  int32_t step = (int32_t)(data->DmaCompleted.SubmissionFenceId - (uint32_t)completed);
  if (step <= 0) {
    port_unlock(&adapter->fence_lock);
    return;
  }
  uint64_t fence = completed + (uint32_t)step;
  if (adapter->verifier) verifier_on_fence_completed(adapter->verifier, fence, submitted);
  if (fence > completed && fence <= submitted) {
    atomic_store(&adapter->fence_completed, fence);
    pthread_cond_broadcast(&adapter->fence_signalled);
  }
  port_unlock(&adapter->fence_lock);
}

/* ---- Bring-up ------------------------------------------------------------------------------------ */

static NTSTATUS query_segments(al_adapter *adapter) {
  const DRIVER_INITIALIZATION_DATA *ddi = &adapter->driver.ddi;
  DXGK_QUERYSEGMENTIN in = {0};
  DXGK_QUERYSEGMENTOUT out = {0};
  DXGKARG_QUERYADAPTERINFO query = {
      .Type = DXGKQAITYPE_QUERYSEGMENT,
      .pInputData = &in,
      .InputDataSize = sizeof in,
      .pOutputData = &out,
      .OutputDataSize = sizeof out,
  };
  NTSTATUS status = ddi->DxgkDdiQueryAdapterInfo(adapter->miniport, &query);
  if (!NT_SUCCESS(status)) return status;
  if (out.NbSegment == 0 || out.NbSegment > DXGK_MAX_SEGMENTS) return STATUS_GRAPHICS_DRIVER_MISMATCH;
  DXGK_SEGMENTDESCRIPTOR descriptors[DXGK_MAX_SEGMENTS];
  memset(descriptors, 0, sizeof descriptors);
  uint32_t count = out.NbSegment;
  out.pSegmentDescriptor = descriptors;
  status = ddi->DxgkDdiQueryAdapterInfo(adapter->miniport, &query);
  if (!NT_SUCCESS(status)) return status;
  if (out.NbSegment != count) return STATUS_GRAPHICS_DRIVER_MISMATCH;
  adapter->segments = al_host_calloc(count, sizeof *adapter->segments);
  if (adapter->segments == NULL) return STATUS_NO_MEMORY;
  for (uint32_t i = 0; i < count; i++) {
    port_segment *segment = &adapter->segments[i];
    uint64_t page_size = descriptors[i].AlPageSize ? descriptors[i].AlPageSize : 4096;
    if (!port_is_power_of_two(page_size) || page_size < 4096 || descriptors[i].Size == 0 ||
        descriptors[i].Size % page_size != 0)
      return STATUS_GRAPHICS_DRIVER_MISMATCH;
    status = segment_heap_init(&segment->heap, descriptors[i].Size, page_size);
    if (!NT_SUCCESS(status)) return status == STATUS_NO_MEMORY ? status : STATUS_GRAPHICS_DRIVER_MISMATCH;
    pthread_mutex_init(&segment->lock, NULL);
    segment->id = i + 1;
    segment->descriptor = descriptors[i];
    segment->page_size = page_size;
    adapter->segment_count = i + 1;
    adapter->segment_set_all |= 1u << i;
    if (descriptors[i].Flags.Aperture) adapter->segment_set_aperture |= 1u << i;
  }
  return STATUS_SUCCESS;
}

static void adapter_free(al_adapter *adapter) {
  for (uint32_t i = 0; i < adapter->segment_count; i++) {
    segment_heap_fini(&adapter->segments[i].heap);
    pthread_mutex_destroy(&adapter->segments[i].lock);
  }
  free(adapter->segments);
  handle_table_fini(&adapter->devices);
  handle_table_fini(&adapter->resources);
  handle_table_fini(&adapter->allocations);
  if (adapter->verifier) verifier_destroy(adapter->verifier);
  pthread_mutex_destroy(&adapter->submit_lock);
  pthread_mutex_destroy(&adapter->fence_lock);
  pthread_cond_destroy(&adapter->fence_signalled);
  pthread_mutex_destroy(&adapter->reap_lock);
  pthread_mutex_destroy(&adapter->deferred_lock);
  pthread_mutex_destroy(&adapter->device_destroy_lock);
  free(adapter);
}

NTSTATUS al_adapter_create(const al_adapter_config *config, al_adapter **out_adapter) {
  if (config == NULL || out_adapter == NULL || config->driver_entry == NULL ||
      (config->flags & ~AL_ADAPTER_FLAGS_ALL) ||
      (config->hardware_config == NULL && config->hardware_config_size != 0))
    return STATUS_INVALID_PARAMETER;
  al_adapter *adapter = al_host_calloc(1, sizeof *adapter);
  if (adapter == NULL) return STATUS_NO_MEMORY;
  pthread_mutex_init(&adapter->submit_lock, NULL);
  pthread_mutex_init(&adapter->fence_lock, NULL);
  pthread_cond_init(&adapter->fence_signalled, NULL);
  pthread_mutex_init(&adapter->reap_lock, NULL);
  pthread_mutex_init(&adapter->deferred_lock, NULL);
  pthread_mutex_init(&adapter->device_destroy_lock, NULL);
  adapter->flags = config->flags;
  adapter->physical_device.pAlHardwareConfig = config->hardware_config;
  adapter->physical_device.AlHardwareConfigSize = config->hardware_config_size;

  NTSTATUS status = handle_table_init(&adapter->devices, HANDLE_TYPE_DEVICE);
  if (NT_SUCCESS(status)) status = handle_table_init(&adapter->resources, HANDLE_TYPE_RESOURCE);
  if (NT_SUCCESS(status)) status = handle_table_init(&adapter->allocations, HANDLE_TYPE_ALLOCATION);
  if (!NT_SUCCESS(status)) goto fail_free;

  status = config->driver_entry(&adapter->driver, NULL);
  if (NT_SUCCESS(status) && !adapter->driver.registered) status = STATUS_GRAPHICS_DRIVER_MISMATCH;
  if (!NT_SUCCESS(status)) goto fail_free;

  const DRIVER_INITIALIZATION_DATA *ddi = &adapter->driver.ddi;
  status = ddi->DxgkDdiAddDevice(&adapter->physical_device, &adapter->miniport);
  if (!NT_SUCCESS(status)) goto fail_free;

  adapter->interface = (DXGKRNL_INTERFACE){
      .Size = sizeof(DXGKRNL_INTERFACE),
      .Version = DXGKDDI_INTERFACE_VERSION,
      .DeviceHandle = adapter,
      .DxgkCbGetHandleData = port_get_handle_data,
      .DxgkCbNotifyInterrupt = port_notify_interrupt,
  };
  DXGK_START_INFO start_info = {.RequiredDxgkInterfaceVersion = DXGKDDI_INTERFACE_VERSION,
                                .AdapterLuid = (UINT64)(uintptr_t)adapter};
  ULONG sources = 0, children = 0;
  status = ddi->DxgkDdiStartDevice(adapter->miniport, &start_info, &adapter->interface, &sources,
                                   &children);
  if (!NT_SUCCESS(status)) goto fail_remove;
  adapter->started = true;

  status = query_segments(adapter);
  if (!NT_SUCCESS(status)) goto fail_stop;

  if (config->flags & AL_ADAPTER_VERIFIER) {
    adapter->verifier = verifier_create(adapter->segment_set_all, adapter->segment_set_aperture);
    if (adapter->verifier == NULL) {
      status = STATUS_NO_MEMORY;
      goto fail_stop;
    }
  }
  *out_adapter = adapter;
  return STATUS_SUCCESS;

fail_stop:
  ddi->DxgkDdiStopDevice(adapter->miniport);
fail_remove:
  ddi->DxgkDdiRemoveDevice(adapter->miniport);
fail_free:
  adapter_free(adapter);
  return status;
}

void al_adapter_destroy(al_adapter *adapter) {
  if (adapter == NULL) return;
  /* Every device, and with them every hold on every resource. */
  for (;;) {
    uint32_t cursor = 0, handle = 0;
    void *object = NULL;
    handle_table_lock(&adapter->devices);
    bool found = handle_table_next_locked(&adapter->devices, &cursor, &handle, &object, NULL);
    handle_table_unlock(&adapter->devices);
    if (!found) break;
    NTSTATUS status = al_device_destroy(adapter, handle);
    if (!NT_SUCCESS(status)) {
      fprintf(stderr, "alloclab: adapter teardown could not destroy device 0x%08x: %s\n", handle,
              al_status_name(status));
      abort();
    }
  }
  fence_wait_idle(adapter);
  const DRIVER_INITIALIZATION_DATA *ddi = &adapter->driver.ddi;
  if (adapter->verifier) {
    ALDDI_LIVE_OBJECTS live = {0};
    bool have_live = ddi->AlDdiQueryLiveObjects &&
                     NT_SUCCESS(ddi->AlDdiQueryLiveObjects(adapter->miniport, &live));
    verifier_at_teardown(adapter->verifier, have_live ? &live : NULL);
  }
  ddi->DxgkDdiStopDevice(adapter->miniport);
  ddi->DxgkDdiRemoveDevice(adapter->miniport);
  adapter_free(adapter);
}

/* ---- Statistics ------------------------------------------------------------------------------------ */

void al_adapter_get_stats(al_adapter *adapter, al_adapter_stats *out) {
  if (adapter == NULL || out == NULL) return;
  memset(out, 0, sizeof *out);
  out->devices = handle_table_live_count(&adapter->devices);
  out->resources = handle_table_live_count(&adapter->resources);
  out->allocations = handle_table_live_count(&adapter->allocations);
  out->bindings = atomic_load(&adapter->bindings);
  out->deferred_destroys = atomic_load(&adapter->deferred_count);
  out->deferred_allocations = atomic_load(&adapter->deferred_allocations);
  out->fence_submitted = atomic_load(&adapter->fence_submitted);
  out->fence_completed = atomic_load(&adapter->fence_completed);
  out->evictions = atomic_load(&adapter->evictions);
  out->victim_scan_steps = atomic_load(&adapter->victim_scan_steps);
  out->page_ins = atomic_load(&adapter->page_ins);
  out->segment_count = adapter->segment_count;
  for (uint32_t i = 0; i < adapter->segment_count; i++) {
    port_segment *segment = &adapter->segments[i];
    segment_heap_stats heap;
    port_lock(&segment->lock);
    segment_heap_get_stats(&segment->heap, &heap);
    port_unlock(&segment->lock);
    out->segments[i] = (al_segment_stats){
        .id = segment->id,
        .aperture = segment->descriptor.Flags.Aperture != 0,
        .size = heap.size,
        .page_size = segment->page_size,
        .used_bytes = heap.used_bytes,
        .live_blocks = heap.live_blocks,
    };
  }
}

static NTSTATUS query_once(al_adapter *adapter, al_handle allocation, al_allocation_info *out) {
  handle_table_lock(&adapter->allocations);
  port_resource *resource = handle_table_lookup_locked(&adapter->allocations, allocation, NULL);
  if (resource) port_resource_ref(resource);
  handle_table_unlock(&adapter->allocations);
  if (resource == NULL) return STATUS_INVALID_HANDLE;
  NTSTATUS status = STATUS_INVALID_HANDLE;
  port_lock(&resource->lock);
  uint32_t index = 0;
  handle_table_lock(&adapter->allocations);
  bool still = handle_table_lookup_locked(&adapter->allocations, allocation, &index) == resource;
  handle_table_unlock(&adapter->allocations);
  if (still && port_resource_has_dying_holder(adapter, resource)) {
    status = PORT_STATUS_RETRY;
  } else if (still) {
    const port_allocation *record = &resource->records[index];
    *out = (al_allocation_info){
        .resource = resource->handle,
        .owner_device = resource->creator,
        .segment_id = record->segment_index == PORT_SYSTEM_MEMORY ? 0 : record->segment_index + 1,
        .segment_offset = placement_offset(adapter, record),
        .size = record->segment_index == PORT_SYSTEM_MEMORY ? resource->placement[index].size
                                                            : placement_size(adapter, record),
        .last_fence = record->last_fence,
    };
    status = STATUS_SUCCESS;
  }
  port_unlock(&resource->lock);
  port_resource_unref(adapter, resource);
  return status;
}

NTSTATUS al_allocation_query(al_adapter *adapter, al_handle allocation, al_allocation_info *out) {
  if (adapter == NULL || out == NULL) return STATUS_INVALID_PARAMETER;
  NTSTATUS status;
  while ((status = query_once(adapter, allocation, out)) == PORT_STATUS_RETRY)
    port_wait_device_destroys(adapter);
  return status;
}

/* ---- The invariant walk ---------------------------------------------------------------------------- */

typedef struct check_totals {
  uint64_t records;     /* live records over all resources and pools */
  uint64_t bindings;    /* over all opens */
  uint64_t placed[DXGK_MAX_SEGMENTS];
  uint64_t blocks[DXGK_MAX_SEGMENTS];
} check_totals;


/* Checks record @i of @resource (locked) past its handle: its miniport handle and its placement,
 * adding its block to @totals. *@held is the segment whose lock the caller holds (NULL: none);
 * a record in another segment releases it and takes that one, so a run of records in one
 * segment costs one lock hold. The caller releases *@held, also after a failure. */
AL_CHECK_CODE static bool check_record(al_adapter *adapter, const port_resource *resource, uint32_t i,
                                       port_segment **held, check_totals *totals, char *msg, size_t cap) {
  const port_allocation *record = &resource->records[i];
  if (resource->miniport_allocations[i] == NULL)
    return check_fail(msg, cap, "allocation 0x%08x has no miniport hAllocation", record->handle);
  if (record->segment_index == PORT_SYSTEM_MEMORY) {
    if (record->block != SEGMENT_HEAP_NO_BLOCK)
      return check_fail(msg, cap, "allocation 0x%08x is in system memory but holds block %u",
                        record->handle, record->block);
    totals->records++;
    return true;
  }
  if (record->segment_index >= adapter->segment_count)
    return check_fail(msg, cap, "allocation 0x%08x: segment index %u out of range",
                      record->handle, record->segment_index);
  port_segment *segment = &adapter->segments[record->segment_index];
  if (*held != segment) {
    if (*held != NULL) port_unlock(&(*held)->lock);
    port_lock(&segment->lock);
    *held = segment;
  }
  uint32_t tag = 0;
  uint64_t bytes = 0; /* placement_size() */
  segment_heap_check_block(&segment->heap, record->block, &tag, &bytes);
  if (tag != record->handle)
    return check_fail(msg, cap, "allocation 0x%08x: its block in segment %u is tagged 0x%08x",
                      record->handle, record->segment_index + 1, tag);
  if (record->last_fence > resource->last_fence)
    return check_fail(msg, cap, "allocation 0x%08x: fence %" PRIu64 " above its resource's %" PRIu64,
                      record->handle, record->last_fence, resource->last_fence);
  totals->placed[record->segment_index] += bytes;
  totals->blocks[record->segment_index]++;
  totals->records++;
  return true;
}

/* Checks @resource (its lock held) and adds its records, blocks and bindings to @totals.
 * Cost: O(records x holders) with two lock holds per resource plus one per change of segment
 * between consecutive records: the allocation table's lock once for every record's handle,
 * then the segments' locks (not a lock pair of each per record: in close_destroy, whose
 * resources hold up to 1024 allocations and are walked after every call, those were ~2% of
 * the CPU). Two passes because the handle table's lock is the innermost (port.h: no segment
 * lock under it). A state with one broken invariant fails with the message a single pass
 * gave; with several, a bad handle is reported before a later record's other faults. */
AL_CHECK_CODE static bool check_resource(al_adapter *adapter, port_resource *resource, check_totals *totals,
                           char *msg, size_t cap) {
  if (resource->flags & RESOURCE_DEAD)
    return check_fail(msg, cap, "resource 0x%08x is dead but its handle is live", resource->handle);
  if (resource->count > resource->capacity)
    return check_fail(msg, cap, "resource 0x%08x: count %u above capacity %u", resource->handle,
                      resource->count, resource->capacity);
  if (resource->holders == NULL)
    return check_fail(msg, cap, "resource 0x%08x is live but no device holds it", resource->handle);
  /* Pass 1: every record's handle names this resource and the record's index. */
  uint32_t r = 0, index = 0;
  void *owner = resource;
  handle_table_lock(&adapter->allocations);
  for (; r < resource->count; r++) {
    index = UINT32_MAX;
    owner = handle_table_check_lookup_locked(&adapter->allocations, resource->records[r].handle, &index);
    if (owner != resource || index != r) break;
  }
  handle_table_unlock(&adapter->allocations);
  if (r < resource->count)
    return check_fail(msg, cap,
                      "allocation 0x%08x (record %u of resource 0x%08x): its handle names "
                      "object %p index %u",
                      resource->records[r].handle, r, resource->handle, owner, index);
  /* Pass 2: the rest of each record. */
  port_segment *held = NULL;
  bool ok = true;
  for (uint32_t i = 0; ok && i < resource->count; i++)
    ok = check_record(adapter, resource, i, &held, totals, msg, cap);
  if (held != NULL) port_unlock(&held->lock);
  if (!ok) return false;
  uint32_t holders = 0;
  for (port_open *open = resource->holders; open; open = open->next_holder) {
    holders++;
    if (open->resource != resource)
      return check_fail(msg, cap, "an open of resource 0x%08x points at another resource",
                        resource->handle);
    if (open->capacity < resource->count)
      return check_fail(msg, cap, "device 0x%08x's open of resource 0x%08x has %u bindings for %u "
                        "allocations", open->device, resource->handle, open->capacity, resource->count);
    for (uint32_t i = 0; i < resource->count; i++)
      if (open->bindings[i] == NULL)
        return check_fail(msg, cap, "device 0x%08x: binding %u of resource 0x%08x is NULL",
                          open->device, i, resource->handle);
    totals->bindings += resource->count;
  }
  if (holders > 1 && !(resource->flags & RESOURCE_SEALED))
    return check_fail(msg, cap, "resource 0x%08x is held by %u devices but not sealed",
                      resource->handle, holders);
  if (holders > 1 && !(resource->flags & RESOURCE_SHARED))
    return check_fail(msg, cap, "resource 0x%08x is held by %u devices but not shared",
                      resource->handle, holders);
  return true;
}

/* The body of al_adapter_check (@full) and al_adapter_check_live (!@full). */
AL_CHECK_CODE static bool adapter_check(al_adapter *adapter, bool full, char *msg, size_t cap) {
  if (adapter == NULL) return check_fail(msg, cap, "adapter is NULL");
  handle_table *tables[] = {&adapter->devices, &adapter->resources, &adapter->allocations};
  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    handle_table_lock(tables[i]);
    bool ok = full ? handle_table_check(tables[i], msg, cap) : handle_table_check_live(tables[i], msg, cap);
    handle_table_unlock(tables[i]);
    if (!ok) return false;
  }
  check_totals totals;
  memset(&totals, 0, sizeof totals);

  /* Resources by handle. */
  uint32_t cursor = 0, handle = 0;
  void *object = NULL;
  for (;;) {
    handle_table_lock(&adapter->resources);
    bool found = handle_table_check_next_locked(&adapter->resources, &cursor, &handle, &object, NULL);
    handle_table_unlock(&adapter->resources);
    if (!found) break;
    port_resource *resource = object;
    if (resource->handle != handle)
      return check_fail(msg, cap, "resource handle 0x%08x names an object whose handle is 0x%08x",
                        handle, resource->handle);
    port_lock(&resource->lock);
    bool ok = check_resource(adapter, resource, &totals, msg, cap);
    port_unlock(&resource->lock);
    if (!ok) return false;
  }
  /* Devices, their opens and pools. */
  cursor = 0;
  for (;;) {
    handle_table_lock(&adapter->devices);
    bool found = handle_table_check_next_locked(&adapter->devices, &cursor, &handle, &object, NULL);
    handle_table_unlock(&adapter->devices);
    if (!found) break;
    port_device *device = object;
    port_lock(&device->lock);
    bool ok = true;
    if (device->handle != handle || device->dying)
      ok = check_fail(msg, cap, "device handle 0x%08x names object with handle 0x%08x (dying %d)",
                      handle, device->handle, device->dying);
    for (port_open *open = device->opens; ok && open; open = open->next_in_device) {
      if (open->device != handle)
        ok = check_fail(msg, cap, "device 0x%08x lists an open of device 0x%08x", handle, open->device);
      else if (open->next_in_device && open->next_in_device->prev_in_device != open)
        ok = check_fail(msg, cap, "device 0x%08x: open list links broken", handle);
      else if (port_find_open(open->resource, handle) != open)
        ok = check_fail(msg, cap, "device 0x%08x holds resource 0x%08x, which does not list it",
                        handle, open->resource->handle);
    }
    if (ok && device->pool) {
      port_resource *pool = device->pool;
      port_lock(&pool->lock);
      if (!(pool->flags & RESOURCE_POOL) || pool->creator != handle)
        ok = check_fail(msg, cap, "device 0x%08x: its pool is not its own", handle);
      else
        ok = check_resource(adapter, pool, &totals, msg, cap);
      port_unlock(&pool->lock);
    }
    port_unlock(&device->lock);
    if (!ok) return false;
  }
  if (totals.records != handle_table_live_count(&adapter->allocations))
    return check_fail(msg, cap, "%" PRIu64 " allocation records but %u live allocation handles",
                      totals.records, handle_table_live_count(&adapter->allocations));
  if (totals.bindings != atomic_load(&adapter->bindings) && atomic_load(&adapter->deferred_count) == 0)
    return check_fail(msg, cap, "%" PRIu64 " bindings in opens but %u counted", totals.bindings,
                      atomic_load(&adapter->bindings));

  /* Segments: exact byte accounting (deferred teardowns still hold their blocks). */
  port_lock(&adapter->deferred_lock);
  for (port_teardown *t = adapter->deferred_head; t; t = t->next)
    for (uint32_t i = 0; t->destroy && i < t->destroy_count; i++) {
      const port_allocation *record = &t->records[i];
      if (record->segment_index == PORT_SYSTEM_MEMORY) continue;
      port_segment *segment = &adapter->segments[record->segment_index];
      uint32_t tag = 0;
      uint64_t bytes = 0; /* placement_size() */
      port_lock(&segment->lock);
      segment_heap_check_block(&segment->heap, record->block, &tag, &bytes);
      port_unlock(&segment->lock);
      totals.placed[record->segment_index] += bytes;
      totals.blocks[record->segment_index]++;
    }
  port_unlock(&adapter->deferred_lock);
  for (uint32_t i = 0; i < adapter->segment_count; i++) {
    port_segment *segment = &adapter->segments[i];
    segment_heap_stats heap;
    port_lock(&segment->lock);
    bool ok = full ? segment_heap_check(&segment->heap, msg, cap)
                   : segment_heap_check_live(&segment->heap, msg, cap);
    segment_heap_get_stats(&segment->heap, &heap);
    port_unlock(&segment->lock);
    if (!ok) return false;
    if (heap.used_bytes != totals.placed[i] || heap.live_blocks != totals.blocks[i])
      return check_fail(msg, cap,
                        "segment %u: heap says %" PRIu64 " bytes in %" PRIu64
                        " blocks, allocations hold %" PRIu64 " bytes in %" PRIu64 " blocks",
                        i + 1, heap.used_bytes, heap.live_blocks, totals.placed[i], totals.blocks[i]);
  }
  if (adapter->verifier && atomic_load(&adapter->deferred_count) == 0) {
    uint32_t allocations = 0, bindings = 0, devices = 0;
    verifier_counts(adapter->verifier, &allocations, &bindings, &devices);
    if (allocations != totals.records || bindings != totals.bindings ||
        devices != handle_table_live_count(&adapter->devices))
      return check_fail(msg, cap,
                        "the DDI saw %u allocations, %u bindings, %u devices; the port holds "
                        "%" PRIu64 ", %" PRIu64 ", %u",
                        allocations, bindings, devices, totals.records, totals.bindings,
                        handle_table_live_count(&adapter->devices));
    const DRIVER_INITIALIZATION_DATA *ddi = &adapter->driver.ddi;
    ALDDI_LIVE_OBJECTS live = {0};
    if (ddi->AlDdiQueryLiveObjects && NT_SUCCESS(ddi->AlDdiQueryLiveObjects(adapter->miniport, &live)) &&
        (live.Allocations != totals.records || live.OpenAllocations != totals.bindings ||
         live.Devices != handle_table_live_count(&adapter->devices)))
      return check_fail(msg, cap,
                        "the miniport holds %u allocations, %u bindings, %u devices; the port "
                        "%" PRIu64 ", %" PRIu64 ", %u",
                        live.Allocations, live.OpenAllocations, live.Devices, totals.records,
                        totals.bindings, handle_table_live_count(&adapter->devices));
  }
  return true;
}

bool al_adapter_check(al_adapter *adapter, char *msg, size_t cap) {
  return adapter_check(adapter, true, msg, cap);
}

bool al_adapter_check_live(al_adapter *adapter, char *msg, size_t cap) {
  return adapter_check(adapter, false, msg, cap);
}
