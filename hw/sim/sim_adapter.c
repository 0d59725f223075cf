/*
 * sim_adapter.c — the sim miniport's registration, adapter life (Add/Start/Stop/Remove), segment
 * description, devices, live-object counts, and the process-wide inspection API (registry of
 * adapters, totals, event log).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"
#include "sim_internal.h"

/* ---- Process-wide registry, totals and events -------------------------------------------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static sim_link registry = {&registry, &registry};
static UINT registry_serial; /* (registry_lock) */

sim_totals sim_global_totals;

static pthread_mutex_t event_lock = PTHREAD_MUTEX_INITIALIZER;
static sim_event event_ring[SIM_EVENT_LOG_SIZE]; /* (event_lock) */
static uint64_t event_seq;                        /* (event_lock) events ever recorded */
static uint64_t event_first;                      /* (event_lock) seq - 1 of the oldest kept */

void sim_event_record(sim_event *event) {
  pthread_mutex_lock(&event_lock);
  event->seq = ++event_seq;
  event_ring[(event->seq - 1) % SIM_EVENT_LOG_SIZE] = *event;
  if (event_seq - event_first > SIM_EVENT_LOG_SIZE) event_first = event_seq - SIM_EVENT_LOG_SIZE;
  pthread_mutex_unlock(&event_lock);
}

size_t sim_miniport_events(sim_event *out, size_t max) {
  if (out == NULL) return 0;
  pthread_mutex_lock(&event_lock);
  size_t n = 0;
  for (uint64_t seq = event_first + 1; seq <= event_seq && n < max; seq++)
    out[n++] = event_ring[(seq - 1) % SIM_EVENT_LOG_SIZE];
  pthread_mutex_unlock(&event_lock);
  return n;
}

void sim_miniport_events_clear(void) {
  pthread_mutex_lock(&event_lock);
  event_first = event_seq;
  pthread_mutex_unlock(&event_lock);
}

const char *sim_fault_kind_name(uint32_t fault_kind) {
  switch (fault_kind) {
  case SIM_FAULT_UNMAPPED: return "unmapped";
  case SIM_FAULT_FREED_PAGE: return "freed page";
  case SIM_FAULT_WRITE_READ_ONLY: return "write to read-only page";
  default: return "unknown";
  }
}

/* The page-table bytes of @adapter's live devices' (and zombies') address spaces, and what the
 * inspection API reports besides; lock held. */
static void address_space_bytes_locked(sim_adapter *adapter, UINT64 *out_host, UINT64 *out_pt,
                                       UINT64 *out_va_host, UINT64 *out_mapped, UINT64 *out_va) {
  sim_link *lists[2] = {&adapter->devices, &adapter->zombies};
  for (int l = 0; l < 2; l++) {
    for (sim_link *node = lists[l]->next; node != lists[l]; node = node->next) {
      sim_device *device = SIM_CONTAINER_OF(node, sim_device, link);
      gpu_as_stats stats;
      gpu_as_get_stats(device->as, &stats);
      *out_host += stats.pt_bytes; /* not va_host_bytes: see HostBytes in sim_miniport.h */
      if (out_pt) *out_pt += stats.pt_bytes;
      if (out_va_host) *out_va_host += stats.va_host_bytes;
      if (out_mapped) *out_mapped += stats.mapped_4k * GPU_PAGE_SIZE + stats.mapped_2m * GPU_LARGE_PAGE_SIZE;
      if (out_va) *out_va += stats.va_reserved_bytes;
    }
  }
}

static UINT64 adapter_host_bytes_locked(sim_adapter *adapter, UINT64 *out_pt, UINT64 *out_va_host,
                                        UINT64 *out_mapped, UINT64 *out_va) {
  UINT64 host = atomic_load(&adapter->object_bytes) + atomic_load(&adapter->system_bytes);
  address_space_bytes_locked(adapter, &host, out_pt, out_va_host, out_mapped, out_va);
  return host;
}

void sim_miniport_get_stats(sim_miniport_stats *out) {
  if (out == NULL) return;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&registry_lock);
  for (sim_link *node = registry.next; node != &registry; node = node->next) {
    sim_adapter *adapter = SIM_CONTAINER_OF(node, sim_adapter, registry_link);
    out->adapters++;
    pthread_mutex_lock(&adapter->lock);
    out->host_bytes += adapter_host_bytes_locked(adapter, &out->page_table_bytes, &out->va_host_bytes, &out->mapped_bytes,
                                                 &out->va_reserved_bytes);
    pthread_mutex_unlock(&adapter->lock);
    out->devices += atomic_load(&adapter->live_devices);
    out->zombie_devices += atomic_load(&adapter->live_zombies);
    out->resources += atomic_load(&adapter->live_resources);
    out->allocations += atomic_load(&adapter->live_allocations);
    out->bindings += atomic_load(&adapter->live_bindings);
    out->system_bytes += atomic_load(&adapter->system_bytes);
    out->queued_submissions += atomic_load(&adapter->queued);
    for (UINT id = 1; id <= SIM_SEGMENT_COUNT; id++) {
      gpu_segment_stats stats;
      gpu_segment_get_stats(sim_segment(adapter, id), &stats);
      out->committed_bytes += stats.committed_bytes;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  sim_totals *t = &sim_global_totals;
  out->submissions = atomic_load(&t->submissions);
  out->completions = atomic_load(&t->completions);
  out->gpu_faults = atomic_load(&t->gpu_faults);
  out->check_failures = atomic_load(&t->check_failures);
  out->fills = atomic_load(&t->fills);
  out->transfers = atomic_load(&t->transfers);
  out->to_system = atomic_load(&t->to_system);
  out->from_system = atomic_load(&t->from_system);
  out->remaps = atomic_load(&t->remaps);
  out->lazy_maps = atomic_load(&t->lazy_maps);
  out->rejected_submissions = atomic_load(&t->rejected_submissions);
}

SIM_CHECK_CODE bool sim_miniport_check_hardware(HANDLE DeviceHandle, UINT Flags, char *msg, size_t cap) {
  if (Flags & ~SIM_CHECK_HARDWARE_LIVE) {
    if (msg && cap) snprintf(msg, cap, "unknown flags 0x%x", Flags & ~SIM_CHECK_HARDWARE_LIVE);
    return false;
  }
  bool found = false, ok = false;
  /* The registry lock keeps the adapter alive (RemoveDevice unlinks it first). */
  pthread_mutex_lock(&registry_lock);
  for (sim_link *node = registry.next; node != &registry && !found; node = node->next) {
    sim_adapter *adapter = SIM_CONTAINER_OF(node, sim_adapter, registry_link);
    pthread_mutex_lock(&adapter->lock);
    if (DeviceHandle != NULL && adapter->device_handle == DeviceHandle) {
      found = true;
      ok = sim_adapter_check_hardware_locked(adapter, !(Flags & SIM_CHECK_HARDWARE_LIVE), msg, cap);
    }
    pthread_mutex_unlock(&adapter->lock);
  }
  pthread_mutex_unlock(&registry_lock);
  if (!found && msg && cap) snprintf(msg, cap, "no live sim adapter was started with DeviceHandle %p", DeviceHandle);
  return ok;
}

SIM_CHECK_CODE sim_adapter *sim_adapter_started_with(HANDLE DeviceHandle) {
  sim_adapter *found = NULL;
  pthread_mutex_lock(&registry_lock);
  for (sim_link *node = registry.next; node != &registry && !found; node = node->next) {
    sim_adapter *adapter = SIM_CONTAINER_OF(node, sim_adapter, registry_link);
    pthread_mutex_lock(&adapter->lock);
    if (DeviceHandle != NULL && adapter->device_handle == DeviceHandle) found = adapter;
    pthread_mutex_unlock(&adapter->lock);
  }
  pthread_mutex_unlock(&registry_lock);
  return found;
}

/* ---- Shared helpers ------------------------------------------------------------------------------ */

sim_adapter *sim_adapter_from(HANDLE handle) {
  sim_adapter *adapter = handle;
  return adapter && adapter->magic == SIM_ADAPTER_LIVE ? adapter : NULL;
}

sim_device *sim_device_from(HANDLE handle) {
  sim_device *device = handle;
  return device && device->magic == SIM_DEVICE_LIVE ? device : NULL;
}

void *sim_object_alloc(sim_adapter *adapter, size_t bytes) {
  if (fault_injector_should_fail(adapter->faults, FAULT_DRIVER_OBJECT)) return NULL;
  return al_host_malloc(bytes);
}

bool sim_check_removed(sim_adapter *adapter) {
  if (atomic_load(&adapter->removed)) return true;
  if (fault_injector_should_fail(adapter->faults, FAULT_DEVICE_REMOVED)) {
    atomic_store(&adapter->removed, true);
    return true;
  }
  return false;
}

void sim_device_free_locked(sim_device *device) {
  sim_adapter *adapter = device->adapter;
  sim_list_del(&device->link);
  device->magic = SIM_DEAD;
  gpu_as_destroy(device->as);
  free(device);
  sim_uncount_bytes(&adapter->object_bytes, sizeof *device);
}

/* ---- Adapter: AddDevice / StartDevice / StopDevice / RemoveDevice --------------------------------- */

static void adapter_free_gpu(sim_adapter *adapter) {
  gpu_engine_destroy(adapter->engine);
  adapter->engine = NULL;
  for (UINT id = 1; id <= SIM_SEGMENT_COUNT; id++) {
    gpu_segment *segment = adapter->segments[id - 1];
    if (segment == NULL) continue;
    if (adapter->mmu) (void)gpu_mmu_detach_segment(adapter->mmu, segment);
    gpu_segment_destroy(segment);
    adapter->segments[id - 1] = NULL;
  }
  gpu_mmu_destroy(adapter->mmu);
  adapter->mmu = NULL;
}

NTSTATUS APIENTRY sim_ddi_add_device(const PDEVICE_OBJECT PhysicalDeviceObject, PVOID *MiniportDeviceContext) {
  if (!PhysicalDeviceObject || !MiniportDeviceContext) return STATUS_INVALID_PARAMETER;
  *MiniportDeviceContext = NULL;
  SIM_HARDWARE_CONFIG config;
  NTSTATUS status = sim_config_read(PhysicalDeviceObject, &config);
  if (!NT_SUCCESS(status)) return status;

  sim_adapter *adapter = al_host_calloc(1, sizeof *adapter);
  if (!adapter) return STATUS_NO_MEMORY;
  if (pthread_mutex_init(&adapter->lock, NULL) != 0) {
    free(adapter);
    return STATUS_NO_MEMORY;
  }
  adapter->config = config;
  adapter->faults = config.Faults;
  sim_list_init(&adapter->devices);
  sim_list_init(&adapter->zombies);
  sim_list_init(&adapter->allocation_blocks);
  sim_list_init(&adapter->resources);
  atomic_init(&adapter->removed, false);
  atomic_init(&adapter->next_allocation_id, 1);

  status = gpu_mmu_create(adapter->faults, &adapter->mmu);
  const gpu_segment_desc descs[SIM_SEGMENT_COUNT] = {
      {GPU_SEGMENT_MEMORY, SIM_SEGMENT_ID_MEMORY, config.MemorySegmentSize, config.MemoryPageSize},
      {GPU_SEGMENT_APERTURE, SIM_SEGMENT_ID_APERTURE, config.ApertureSegmentSize, SIM_APERTURE_PAGE_SIZE},
  };
  for (UINT i = 0; i < SIM_SEGMENT_COUNT && NT_SUCCESS(status); i++) {
    status = gpu_segment_create(&descs[i], adapter->faults, &adapter->segments[i]);
    if (NT_SUCCESS(status)) status = gpu_mmu_attach_segment(adapter->mmu, adapter->segments[i]);
  }
  if (NT_SUCCESS(status))
    status = gpu_engine_create(adapter->mmu,
                               config.EngineMode == SIM_ENGINE_THREADED ? GPU_ENGINE_THREADED
                                                                        : GPU_ENGINE_DETERMINISTIC,
                               &adapter->engine);
  if (!NT_SUCCESS(status)) {
    adapter_free_gpu(adapter);
    pthread_mutex_destroy(&adapter->lock);
    free(adapter);
    return status == STATUS_INVALID_PARAMETER ? STATUS_INVALID_PARAMETER : STATUS_NO_MEMORY;
  }
  adapter->magic = SIM_ADAPTER_LIVE;
  pthread_mutex_lock(&registry_lock);
  adapter->serial = ++registry_serial;
  sim_list_add(&registry, &adapter->registry_link);
  pthread_mutex_unlock(&registry_lock);
  *MiniportDeviceContext = adapter;
  return STATUS_SUCCESS;
}

NTSTATUS APIENTRY sim_ddi_start_device(const PVOID MiniportDeviceContext, PDXGK_START_INFO DxgkStartInfo,
                                       PDXGKRNL_INTERFACE DxgkInterface, PULONG NumberOfVideoPresentSources,
                                       PULONG NumberOfChildren) {
  (void)DxgkStartInfo;
  sim_adapter *adapter = sim_adapter_from(MiniportDeviceContext);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!DxgkInterface || !DxgkInterface->DxgkCbGetHandleData || !DxgkInterface->DxgkCbNotifyInterrupt)
    return STATUS_INVALID_PARAMETER;
  pthread_mutex_lock(&adapter->lock);
  bool was_started = adapter->started || adapter->device_handle != NULL;
  if (!was_started) {
    adapter->device_handle = DxgkInterface->DeviceHandle;
    adapter->get_handle_data = DxgkInterface->DxgkCbGetHandleData;
    adapter->notify_interrupt = DxgkInterface->DxgkCbNotifyInterrupt;
    adapter->started = true;
  }
  pthread_mutex_unlock(&adapter->lock);
  if (was_started) return STATUS_INVALID_PARAMETER;
  if (NumberOfVideoPresentSources) *NumberOfVideoPresentSources = 0;
  if (NumberOfChildren) *NumberOfChildren = 0;
  return STATUS_SUCCESS;
}

/* Stops the adapter: no new work is taken, completions are no longer reported. A threaded engine
 * finishes what is queued first (and the in-flight callbacks return) so that no notification can
 * reach the port after this returns; a deterministic engine keeps its queue until RemoveDevice
 * cancels it. Objects stay; RemoveDevice frees them. */
NTSTATUS APIENTRY sim_ddi_stop_device(const PVOID MiniportDeviceContext) {
  sim_adapter *adapter = sim_adapter_from(MiniportDeviceContext);
  if (!adapter) return STATUS_INVALID_HANDLE;
  pthread_mutex_lock(&adapter->lock);
  adapter->started = false;
  pthread_mutex_unlock(&adapter->lock);
  if (adapter->config.EngineMode == SIM_ENGINE_THREADED) gpu_engine_wait_idle(adapter->engine);
  pthread_mutex_lock(&adapter->lock);
  adapter->get_handle_data = NULL;
  adapter->notify_interrupt = NULL;
  pthread_mutex_unlock(&adapter->lock);
  return STATUS_SUCCESS;
}

/* Frees the adapter and everything still held for it. The port calls it once nothing else runs
 * on the adapter. */
NTSTATUS APIENTRY sim_ddi_remove_device(const PVOID MiniportDeviceContext) {
  sim_adapter *adapter = sim_adapter_from(MiniportDeviceContext);
  if (!adapter) return STATUS_INVALID_HANDLE;
  pthread_mutex_lock(&registry_lock);
  sim_list_del(&adapter->registry_link);
  pthread_mutex_unlock(&registry_lock);
  pthread_mutex_lock(&adapter->lock);
  adapter->started = false;
  adapter->notify_interrupt = NULL;
  pthread_mutex_unlock(&adapter->lock);
  /* Cancels what is still queued: the completions free their records (and zombie devices). */
  gpu_engine_destroy(adapter->engine);
  adapter->engine = NULL;
  pthread_mutex_lock(&adapter->lock);
  adapter->magic = SIM_DEAD;
  while (!sim_list_empty(&adapter->devices)) {
    sim_device *device = SIM_CONTAINER_OF(adapter->devices.next, sim_device, link);
    sim_device_free_bindings_locked(device);
    atomic_fetch_sub(&adapter->live_devices, 1);
    sim_device_free_locked(device);
  }
  while (!sim_list_empty(&adapter->zombies)) { /* none after the cancel; kept for safety */
    sim_device *device = SIM_CONTAINER_OF(adapter->zombies.next, sim_device, link);
    atomic_fetch_sub(&adapter->live_zombies, 1);
    sim_device_free_locked(device);
  }
  while (!sim_list_empty(&adapter->allocation_blocks)) {
    sim_allocation_block *block = SIM_CONTAINER_OF(adapter->allocation_blocks.next, sim_allocation_block, link);
    sim_list_del(&block->link);
    for (UINT i = 0; i < block->count; i++) {
      sim_allocation *allocation = &block->allocations[i];
      UINT state = sim_load(&allocation->state);
      if (state == SIM_ALLOCATION_LIVE || state == SIM_ALLOCATION_DOOMED) {
        sim_allocation_release_locked(adapter, allocation);
        atomic_fetch_sub(&adapter->live_allocations, 1);
      }
      sim_store(&allocation->state, SIM_DEAD);
    }
    sim_uncount_bytes(&adapter->object_bytes, sim_allocation_block_bytes(block->count));
    free(block);
  }
  while (!sim_list_empty(&adapter->resources)) {
    sim_resource *resource = SIM_CONTAINER_OF(adapter->resources.next, sim_resource, link);
    sim_list_del(&resource->link);
    resource->magic = SIM_DEAD;
    free(resource);
    atomic_fetch_sub(&adapter->live_resources, 1);
    sim_uncount_bytes(&adapter->object_bytes, sizeof *resource);
  }
  pthread_mutex_unlock(&adapter->lock);
  adapter_free_gpu(adapter);
  pthread_mutex_destroy(&adapter->lock);
  free(adapter);
  return STATUS_SUCCESS;
}

/* ---- QueryAdapterInfo: the two segments ------------------------------------------------------------ */

static void describe_segment(const sim_adapter *adapter, UINT id, DXGK_SEGMENTDESCRIPTOR *out) {
  memset(out, 0, sizeof *out);
  out->Size = (SIZE_T)sim_segment_bytes(adapter, id);
  out->CommitLimit = out->Size;
  out->AlPageSize = (SIZE_T)sim_segment_page(adapter, id);
  out->Flags.CpuVisible = 1;
  if (id == SIM_SEGMENT_ID_APERTURE) {
    out->Flags.Aperture = 1;
    out->Flags.PopulatedFromSystemMemory = 1;
  } else {
    out->Flags.Use64KBPages = adapter->config.MemoryPageSize == 65536u;
  }
}

NTSTATUS APIENTRY sim_ddi_query_adapter_info(const HANDLE hAdapter, const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo) {
  sim_adapter *adapter = sim_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  const DXGKARG_QUERYADAPTERINFO *query = pQueryAdapterInfo;
  if (!query || query->Type != DXGKQAITYPE_QUERYSEGMENT || !query->pOutputData ||
      query->OutputDataSize < sizeof(DXGK_QUERYSEGMENTOUT))
    return STATUS_INVALID_PARAMETER;
  DXGK_QUERYSEGMENTOUT *out = query->pOutputData;
  if (out->pSegmentDescriptor != NULL) {
    if (out->NbSegment < SIM_SEGMENT_COUNT) return STATUS_INVALID_PARAMETER;
    describe_segment(adapter, SIM_SEGMENT_ID_MEMORY, &out->pSegmentDescriptor[0]);
    describe_segment(adapter, SIM_SEGMENT_ID_APERTURE, &out->pSegmentDescriptor[1]);
  }
  out->NbSegment = SIM_SEGMENT_COUNT;
  /* Paging runs during DxgkDdiBuildPagingBuffer: no paging buffer. */
  out->PagingBufferSegmentId = 0;
  out->PagingBufferSize = 0;
  out->PagingBufferPrivateDataSize = 0;
  return STATUS_SUCCESS;
}

/* ---- Devices ---------------------------------------------------------------------------------------- */

NTSTATUS APIENTRY sim_ddi_create_device(const HANDLE hAdapter, DXGKARG_CREATEDEVICE *pCreateDevice) {
  sim_adapter *adapter = sim_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!pCreateDevice || pCreateDevice->Flags.Reserved != 0) return STATUS_INVALID_PARAMETER;
  if (sim_check_removed(adapter)) return STATUS_DEVICE_REMOVED;
  sim_device *device = sim_object_alloc(adapter, sizeof *device);
  if (!device) return STATUS_NO_MEMORY;
  memset(device, 0, sizeof *device);
  NTSTATUS status = gpu_as_create(adapter->mmu, &device->as);
  if (!NT_SUCCESS(status)) {
    free(device);
    return status == STATUS_INVALID_PARAMETER ? STATUS_INVALID_PARAMETER : STATUS_NO_MEMORY;
  }
  device->magic = SIM_DEVICE_LIVE;
  device->port_handle = (UINT)(uintptr_t)pCreateDevice->hDevice;
  device->adapter = adapter;
  sim_list_init(&device->binding_blocks);
  pthread_mutex_lock(&adapter->lock);
  sim_list_add(&adapter->devices, &device->link);
  pthread_mutex_unlock(&adapter->lock);
  atomic_fetch_add(&adapter->live_devices, 1);
  sim_count_bytes(&adapter->object_bytes, sizeof *device);
  if (pCreateDevice->pInfo) {
    DXGK_DEVICEINFO *info = pCreateDevice->pInfo;
    memset(info, 0, sizeof *info);
    info->DmaBufferSize = SIM_CMD_MAX_STREAM_BYTES;
    info->AllocationListSize = SIM_MAX_ALLOCATION_LIST;
    info->PatchLocationListSize = 0;
  }
  if (fault_injector_should_fail(adapter->faults, FAULT_CREATE_DEVICE_NULL)) {
    /* The injected wrong answer: success with a NULL hDevice. The device is taken back first,
     * so the sim holds nothing its answer does not name. */
    sim_ddi_destroy_device(device);
    pCreateDevice->hDevice = NULL;
    return STATUS_SUCCESS;
  }
  pCreateDevice->hDevice = device;
  return STATUS_SUCCESS;
}

void sim_device_free_bindings_locked(sim_device *device) {
  sim_adapter *adapter = device->adapter;
  while (!sim_list_empty(&device->binding_blocks)) {
    sim_binding_block *block = SIM_CONTAINER_OF(device->binding_blocks.next, sim_binding_block, link);
    sim_list_del(&block->link);
    for (UINT i = 0; i < block->count; i++) {
      sim_binding *binding = &block->bindings[i];
      if (sim_load(&binding->state) != SIM_DEAD) {
        sim_binding_close_locked(binding, false); /* the block's VA release clears its mapping */
        atomic_fetch_sub(&adapter->live_bindings, 1);
      }
      sim_store(&binding->state, SIM_DEAD);
    }
    sim_binding_block_release_va_locked(block);
    sim_uncount_bytes(&adapter->object_bytes, sim_binding_block_bytes(block->count));
    free(block);
  }
}

/* Frees the device's bindings (closing the ones the port forgot), then its address space — at
 * once, or, while queued work still runs in it, when that work completes (zombie). */
NTSTATUS APIENTRY sim_ddi_destroy_device(const HANDLE hDevice) {
  sim_adapter *adapter;
  {
    sim_device *device = sim_device_from(hDevice);
    if (!device) return STATUS_INVALID_HANDLE;
    adapter = device->adapter;
  }
  pthread_mutex_lock(&adapter->lock);
  sim_device *device = sim_device_from(hDevice); /* re-check under the lock */
  if (!device) {
    pthread_mutex_unlock(&adapter->lock);
    return STATUS_INVALID_HANDLE;
  }
  sim_device_free_bindings_locked(device);
  atomic_fetch_sub(&adapter->live_devices, 1);
  if (device->pending == 0) {
    sim_device_free_locked(device);
  } else {
    device->magic = SIM_DEVICE_ZOMBIE;
    sim_list_del(&device->link);
    sim_list_add(&adapter->zombies, &device->link);
    atomic_fetch_add(&adapter->live_zombies, 1);
  }
  pthread_mutex_unlock(&adapter->lock);
  return STATUS_SUCCESS;
}

/* ---- QueryLiveObjects ---------------------------------------------------------------------------------- */

NTSTATUS APIENTRY sim_ddi_query_live_objects(const HANDLE hAdapter, ALDDI_LIVE_OBJECTS *pLiveObjects) {
  sim_adapter *adapter = sim_adapter_from(hAdapter);
  if (!adapter) return STATUS_INVALID_HANDLE;
  if (!pLiveObjects) return STATUS_INVALID_PARAMETER;
  pthread_mutex_lock(&adapter->lock);
  pLiveObjects->Devices = atomic_load(&adapter->live_devices);
  pLiveObjects->Resources = atomic_load(&adapter->live_resources);
  pLiveObjects->Allocations = atomic_load(&adapter->live_allocations);
  pLiveObjects->OpenAllocations = atomic_load(&adapter->live_bindings);
  pLiveObjects->HostBytes = adapter_host_bytes_locked(adapter, NULL, NULL, NULL, NULL);
  pthread_mutex_unlock(&adapter->lock);
  return STATUS_SUCCESS;
}

/* ---- Entry point ----------------------------------------------------------------------------------- */

NTSTATUS SimMiniportDriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath) {
  DRIVER_INITIALIZATION_DATA init;
  memset(&init, 0, sizeof init);
  init.Version = DXGKDDI_INTERFACE_VERSION;
  init.DxgkDdiAddDevice = sim_ddi_add_device;
  init.DxgkDdiStartDevice = sim_ddi_start_device;
  init.DxgkDdiStopDevice = sim_ddi_stop_device;
  init.DxgkDdiRemoveDevice = sim_ddi_remove_device;
  init.DxgkDdiQueryAdapterInfo = sim_ddi_query_adapter_info;
  init.DxgkDdiCreateDevice = sim_ddi_create_device;
  init.DxgkDdiDestroyDevice = sim_ddi_destroy_device;
  init.DxgkDdiCreateAllocation = sim_ddi_create_allocation;
  init.DxgkDdiDestroyAllocation = sim_ddi_destroy_allocation;
  init.DxgkDdiOpenAllocation = sim_ddi_open_allocation;
  init.DxgkDdiCloseAllocation = sim_ddi_close_allocation;
  init.DxgkDdiSubmitCommand = sim_ddi_submit_command;
  init.DxgkDdiBuildPagingBuffer = sim_ddi_build_paging_buffer;
  init.AlDdiRunEngine = sim_ddi_run_engine;
  init.AlDdiQueryLiveObjects = sim_ddi_query_live_objects;
  return DxgkInitialize(DriverObject, RegistryPath, &init);
}
