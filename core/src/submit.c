/*
 * submit.c — queueing GPU work (DxgkDdiSubmitCommand). Each referenced allocation, its resource
 * and the device's hold on it remember the fence, so nothing the work uses is closed or released
 * before the fence signals (rule 6).
 */
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"
#include "port.h"

static int compare_pointers(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return (x > y) - (x < y);
}

NTSTATUS al_submit(al_adapter *adapter, const al_submit_args *args) {
  if (adapter == NULL || args == NULL || args->out_fence == NULL ||
      args->allocation_count > AL_MAX_ALLOCATIONS_PER_CALL || args->command_size > AL_MAX_COMMAND_SIZE ||
      (args->allocation_count && args->allocations == NULL) ||
      (args->command_size && args->command == NULL))
    return STATUS_INVALID_PARAMETER;
  const uint32_t n = args->allocation_count;
  if (n > 1) {
    uint32_t *sorted = al_host_malloc(n * sizeof *sorted);
    if (sorted == NULL) return STATUS_NO_MEMORY;
    memcpy(sorted, args->allocations, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, port_compare_u32);
    bool duplicates = false;
    for (uint32_t i = 1; i < n; i++) duplicates |= sorted[i] == sorted[i - 1];
    free(sorted);
    if (duplicates) return STATUS_INVALID_PARAMETER;
  }
  if (atomic_load(&adapter->removed)) return STATUS_DEVICE_REMOVED;
  port_device *device = port_lookup_device(adapter, args->device);
  if (device == NULL) return STATUS_INVALID_HANDLE;

  /* owners[i]: resource of allocation i (a reference each); locks: distinct, by address. */
  port_resource **owners = al_host_calloc(2 * (size_t)n + 1, sizeof *owners);
  port_resource **locks = owners ? owners + n : NULL; /* no arithmetic on a failed allocation */
  DXGK_ALLOCATIONLIST *list = al_host_calloc((size_t)n + 1, sizeof *list);
  port_open **opens = al_host_calloc((size_t)n + 1, sizeof *opens);
  uint32_t *indices = al_host_calloc((size_t)n + 1, sizeof *indices);
  NTSTATUS status = (owners && list && opens && indices) ? STATUS_SUCCESS : STATUS_NO_MEMORY;
  uint32_t found = 0;
  if (NT_SUCCESS(status)) {
    handle_table_lock(&adapter->allocations);
    for (; found < n; found++) {
      owners[found] = handle_table_lookup_locked(&adapter->allocations, args->allocations[found], NULL);
      if (owners[found] == NULL) break;
      port_resource_ref(owners[found]);
    }
    handle_table_unlock(&adapter->allocations);
    if (found < n) status = STATUS_INVALID_HANDLE;
  }
  uint32_t lock_count = 0;
  if (NT_SUCCESS(status)) {
    memcpy(locks, owners, n * sizeof *locks);
    qsort(locks, n, sizeof *locks, compare_pointers);
    for (uint32_t i = 0; i < n; i++)
      if (i == 0 || locks[i] != locks[i - 1]) locks[lock_count++] = locks[i];
  }
  port_lock(&device->lock);
  if (NT_SUCCESS(status) && device->dying) status = STATUS_INVALID_HANDLE;
  uint32_t locked = 0;
  if (NT_SUCCESS(status))
    for (; locked < lock_count; locked++) port_lock(&locks[locked]->lock);
  if (NT_SUCCESS(status)) {
    /* Re-check under the locks: still live, still in the same place, bound on this device. */
    handle_table_lock(&adapter->allocations);
    for (uint32_t i = 0; i < n && NT_SUCCESS(status); i++)
      if (handle_table_lookup_locked(&adapter->allocations, args->allocations[i], &indices[i]) != owners[i])
        status = STATUS_INVALID_HANDLE;
    handle_table_unlock(&adapter->allocations);
    for (uint32_t i = 0; i < n && NT_SUCCESS(status); i++) {
      opens[i] = port_find_open(owners[i], device->handle);
      if (opens[i] == NULL) status = STATUS_INVALID_HANDLE;
    }
    /* Work needs its allocations where the GPU can reach them (VidMm pages them in); none of
     * them may be evicted to make room for another. */
    if (NT_SUCCESS(status)) {
      for (uint32_t i = 0; i < n; i++) owners[i]->records[indices[i]].pinned = 1;
      for (uint32_t i = 0; i < n && NT_SUCCESS(status); i++)
        status = placement_page_in(adapter, owners[i], indices[i], locks, lock_count);
      for (uint32_t i = 0; i < n; i++) owners[i]->records[indices[i]].pinned = 0;
      placement_victims_released(adapter);
    }
    for (uint32_t i = 0; i < n && NT_SUCCESS(status); i++) {
      const port_allocation *record = &owners[i]->records[indices[i]];
      list[i].hDeviceSpecificAllocation = opens[i]->bindings[indices[i]];
      list[i].WriteOperation = 1;
      list[i].SegmentId = record->segment_index + 1;
      list[i].PhysicalAddress.QuadPart = (LONGLONG)placement_offset(adapter, record);
    }
  }
  uint64_t fence = 0;
  if (NT_SUCCESS(status)) {
    /* The fence is issued (so a completion reported from inside the DDI is accepted) but
     * published as submitted only once the miniport took the work. */
    port_lock(&adapter->submit_lock);
    fence = atomic_load(&adapter->fence_issued) + 1;
    atomic_store(&adapter->fence_issued, fence);
    status = ddi_submit(adapter, device->driver_device, fence, args->command, args->command_size, list, n);
    atomic_store(NT_SUCCESS(status) ? &adapter->fence_submitted : &adapter->fence_issued,
                 NT_SUCCESS(status) ? fence : fence - 1);
    port_unlock(&adapter->submit_lock);
  }
  if (NT_SUCCESS(status)) {
    for (uint32_t i = 0; i < n; i++) {
      owners[i]->records[indices[i]].last_fence = fence;
      owners[i]->last_fence = fence;
      opens[i]->last_fence = fence;
    }
    device->last_fence = fence;
    *args->out_fence = fence;
  }
  while (locked) port_unlock(&locks[--locked]->lock);
  port_unlock(&device->lock);
  for (uint32_t i = 0; i < found; i++) port_resource_unref(adapter, owners[i]);
  free(owners);
  free(list);
  free(opens);
  free(indices);
  port_device_unref(adapter, device);
  return status;
}
