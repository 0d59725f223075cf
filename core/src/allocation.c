/*
 * allocation.c — create, open and destroy of allocations and resources (the D3DKMT side), with
 * the DDI order of the contract and all-or-nothing failure.
 *
 * The close/destroy path is built so that a resource of N allocations goes with one device lock,
 * one resource lock, one handle-table lock hold, one DxgkDdiCloseAllocation per holding device
 * over its bindings array as it is, one DxgkDdiDestroyAllocation over the resource's
 * miniport_allocations array as it is, one segment lock hold per run of allocations in a segment,
 * and a handful of host frees per resource (none per allocation).
 */
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"
#include "port.h"

/* Removes the handles of every record of @resource (and its own handle). Resource lock held. */
static void remove_all_handles(al_adapter *adapter, port_resource *resource) {
  handle_table_lock(&adapter->allocations);
  for (uint32_t i = 0; i < resource->count; i++)
    handle_table_remove_locked(&adapter->allocations, resource->records[i].handle);
  handle_table_unlock(&adapter->allocations);
  if (resource->handle) {
    handle_table_lock(&adapter->resources);
    handle_table_remove_locked(&adapter->resources, resource->handle);
    handle_table_unlock(&adapter->resources);
  }
}

static void unlink_from_device(port_device *device, port_open *open) {
  if (open->prev_in_device)
    open->prev_in_device->next_in_device = open->next_in_device;
  else
    device->opens = open->next_in_device;
  if (open->next_in_device) open->next_in_device->prev_in_device = open->prev_in_device;
  open->prev_in_device = open->next_in_device = NULL;
}

static void link_into_device(port_device *device, port_open *open) {
  open->prev_in_device = NULL;
  open->next_in_device = device->opens;
  if (device->opens) device->opens->prev_in_device = open;
  device->opens = open;
}

static bool unlink_holder(port_resource *resource, port_open *open) {
  for (port_open **link = &resource->holders; *link; link = &(*link)->next_holder) {
    if (*link == open) {
      *link = open->next_holder;
      open->next_holder = NULL;
      return true;
    }
  }
  return false;
}

/*
 * Releases @device's hold on @resource: closes its bindings (one DxgkDdiCloseAllocation) and,
 * when it was the last holder, destroys the whole resource (DestroyResource). Device lock held
 * by the caller. Returns STATUS_INVALID_HANDLE when the device holds no such resource,
 * PORT_STATUS_RETRY (nothing done) when a live device's release meets a holder being destroyed;
 * else STATUS_SUCCESS with *out_wait_fence the fence a synchronous caller waits for (0 = done).
 */
static NTSTATUS release_hold(al_adapter *adapter, port_device *device, port_resource *resource,
                             bool assume_not_in_use, uint64_t *out_wait_fence) {
  *out_wait_fence = 0;
  port_resource_ref(resource); /* the teardown may drop the last reference */
  port_lock(&resource->lock);
  port_open *open = (resource->flags & RESOURCE_DEAD) ? NULL : port_find_open(resource, device->handle);
  NTSTATUS refused = STATUS_INVALID_HANDLE;
  if (open && !device->dying && port_resource_has_dying_holder(adapter, resource)) {
    open = NULL; /* whether this hold is the last depends on a destroy under way */
    refused = PORT_STATUS_RETRY;
  }
  if (open == NULL) {
    port_unlock(&resource->lock);
    port_resource_unref(adapter, resource);
    return refused;
  }
  unlink_holder(resource, open);
  unlink_from_device(device, open);
  bool last = resource->holders == NULL;
  if (last) {
    resource->flags |= RESOURCE_DEAD;
    remove_all_handles(adapter, resource);
    if (resource->flags & RESOURCE_POOL) device->pool = NULL;
  }
  port_teardown close = {
      .fence = open->last_fence,
      .driver_device = open->driver_device,
      .close_list = open->bindings,
      .close_count = resource->count,
      .open_to_free = open,
  };
  port_teardown destroy = {
      .fence = resource->last_fence,
      .resource = resource, /* the resource's structural reference goes with it */
      .destroy = true,
      .destroy_resource = true,
      .destroy_list = resource->miniport_allocations,
      .destroy_count = resource->count,
      .records = resource->records,
  };
  bool close_ready = assume_not_in_use || close.fence <= atomic_load(&adapter->fence_completed);
  if (!last) {
    port_resource_ref(resource);
    close.resource = resource;
    *out_wait_fence = fence_teardown_or_defer(adapter, &close, assume_not_in_use);
  } else if (close_ready) {
    /* Close now (this device's work is done), destroy now or when the others' work is. */
    port_resource_ref(resource);
    close.resource = resource;
    fence_teardown_or_defer(adapter, &close, assume_not_in_use); /* ready: runs now */
    *out_wait_fence = fence_teardown_or_defer(adapter, &destroy, assume_not_in_use);
  } else {
    /* One deferred teardown: close, then destroy. */
    destroy.driver_device = close.driver_device;
    destroy.close_list = close.close_list;
    destroy.close_count = close.close_count;
    destroy.open_to_free = open;
    if (destroy.fence < close.fence) destroy.fence = close.fence;
    *out_wait_fence = fence_teardown_or_defer(adapter, &destroy, assume_not_in_use);
  }
  port_unlock(&resource->lock);
  port_resource_unref(adapter, resource);
  return STATUS_SUCCESS;
}

NTSTATUS port_release_all_holds(al_adapter *adapter, port_device *device) {
  uint64_t ignored;
  while (device->opens) {
    NTSTATUS status = release_hold(adapter, device, device->opens->resource, false, &ignored);
    if (!NT_SUCCESS(status)) return status;
  }
  return STATUS_SUCCESS;
}

/* ---- Create ------------------------------------------------------------------------------------ */

static bool private_data_ok(const void *data, uint32_t size) {
  return size <= AL_MAX_PRIVATE_DATA_SIZE && (data != NULL || size == 0);
}

static bool copy_private(port_private_data *to, const void *data, uint32_t size) {
  to->data = NULL;
  to->size = size;
  if (size == 0) return true;
  to->data = al_host_malloc(size);
  if (to->data == NULL) return false;
  memcpy(to->data, data, size);
  return true;
}

static NTSTATUS validate_create(const al_create_allocation_args *args) {
  if (args == NULL || args->allocations == NULL || args->out_allocations == NULL ||
      args->allocation_count == 0 || args->allocation_count > AL_MAX_ALLOCATIONS_PER_CALL ||
      (args->flags & ~AL_CREATE_FLAGS_ALL) ||
      ((args->flags & AL_CREATE_SHARED) && !(args->flags & AL_CREATE_RESOURCE)) ||
      (args->resource != 0 && args->flags != 0) ||
      ((args->flags & AL_CREATE_RESOURCE) && args->out_resource == NULL) ||
      !private_data_ok(args->resource_private_data, args->resource_private_data_size))
    return STATUS_INVALID_PARAMETER;
  for (uint32_t i = 0; i < args->allocation_count; i++)
    if (!private_data_ok(args->allocations[i].private_data, args->allocations[i].private_data_size))
      return STATUS_INVALID_PARAMETER;
  return STATUS_SUCCESS;
}

/* Where a create puts its allocations. */
typedef struct create_target {
  port_resource *resource;
  port_open *open;
  bool new_resource;
} create_target;

static NTSTATUS ensure_pool(port_device *device) {
  if (device->pool) return STATUS_SUCCESS;
  port_resource *pool = port_resource_new(RESOURCE_POOL, device->handle);
  port_open *open = al_host_calloc(1, sizeof *open);
  if (pool == NULL || open == NULL) {
    free(open);
    if (pool) {
      pthread_mutex_destroy(&pool->lock);
      free(pool);
    }
    return STATUS_NO_MEMORY;
  }
  open->resource = pool;
  open->device = device->handle;
  open->driver_device = device->driver_device;
  pool->holders = open;
  link_into_device(device, open);
  device->pool = pool;
  return STATUS_SUCCESS;
}

/* Undoes a create after DxgkDdiCreateAllocation succeeded: blocks, handles, miniport objects. */
static void undo_create(al_adapter *adapter, const create_target *target, uint32_t first,
                        const DXGKARG_CREATEALLOCATION *ddi_args, uint32_t placed,
                        uint32_t handles_made, uint32_t resource_handle) {
  port_resource *resource = target->resource;
  if (handles_made) {
    handle_table_lock(&adapter->allocations);
    for (uint32_t i = 0; i < handles_made; i++)
      handle_table_remove_locked(&adapter->allocations, resource->records[first + i].handle);
    handle_table_unlock(&adapter->allocations);
  }
  if (resource_handle) {
    handle_table_lock(&adapter->resources);
    handle_table_remove_locked(&adapter->resources, resource_handle);
    handle_table_unlock(&adapter->resources);
  }
  /* Tell the miniport first, then give the memory back: a block released earlier could be
   * placed for another thread's allocation while the miniport still holds it. */
  HANDLE *list = &resource->miniport_allocations[first];
  for (uint32_t i = 0; i < ddi_args->NumAllocations; i++) list[i] = ddi_args->pAllocationInfo[i].hAllocation;
  ddi_destroy_allocation(adapter, list, ddi_args->NumAllocations, ddi_args->hResource,
                         target->new_resource && ddi_args->hResource != NULL, true);
  placement_release(adapter, &resource->records[first], placed);
}

static NTSTATUS create_into(al_adapter *adapter, port_device *device, const create_target *target,
                            const al_create_allocation_args *args, uint32_t *out_resource_handle) {
  port_resource *resource = target->resource;
  const uint32_t n = args->allocation_count, first = resource->count;
  if (!port_resource_reserve(resource, target->open, first + n)) return STATUS_NO_MEMORY;
  if (resource->flags & RESOURCE_SHARED) {
    for (uint32_t i = 0; i < n; i++) {
      if (!copy_private(&resource->allocation_private[first + i], args->allocations[i].private_data,
                        args->allocations[i].private_data_size)) {
        for (uint32_t k = 0; k <= i; k++) {
          free(resource->allocation_private[first + k].data);
          resource->allocation_private[first + k] = (port_private_data){0};
        }
        return STATUS_NO_MEMORY;
      }
    }
  }
  DXGK_ALLOCATIONINFO *infos = al_host_calloc(n, sizeof *infos);
  DXGK_OPENALLOCATIONINFO *opens = al_host_calloc(n, sizeof *opens);
  NTSTATUS status = STATUS_NO_MEMORY;
  if (infos == NULL || opens == NULL) goto out_private;
  for (uint32_t i = 0; i < n; i++) {
    infos[i].pPrivateDriverData = (void *)args->allocations[i].private_data;
    infos[i].PrivateDriverDataSize = args->allocations[i].private_data_size;
  }
  DXGKARG_CREATEALLOCATION create = {
      .pPrivateDriverData = args->resource_private_data,
      .PrivateDriverDataSize = args->resource_private_data_size,
      .NumAllocations = n,
      .pAllocationInfo = infos,
      .hResource = target->new_resource ? NULL : resource->miniport_resource,
      .Flags.Resource = !(resource->flags & RESOURCE_POOL),
  };
  status = ddi_create_allocation(adapter, &create);
  if (!NT_SUCCESS(status)) goto out_private;

  /* Handles first, unpublished until the whole call has succeeded: placement tags each block
   * with its allocation's handle in the same segment-lock hold. */
  for (uint32_t i = 0; i < n; i++) {
    memset(&resource->records[first + i], 0, sizeof resource->records[first + i]);
    resource->placement[first + i] = placement_request(adapter, &infos[i]);
    resource->miniport_allocations[first + i] = infos[i].hAllocation;
  }
  uint32_t made = 0, resource_handle = 0;
  handle_table_lock(&adapter->allocations);
  for (; made < n; made++) {
    status = handle_table_insert_locked(&adapter->allocations, resource, first + made, false,
                                        &resource->records[first + made].handle);
    if (!NT_SUCCESS(status)) break;
  }
  handle_table_unlock(&adapter->allocations);
  if (NT_SUCCESS(status) && target->new_resource) {
    handle_table_lock(&adapter->resources);
    status = handle_table_insert_locked(&adapter->resources, resource, 0, false, &resource_handle);
    handle_table_unlock(&adapter->resources);
  }
  if (!NT_SUCCESS(status)) {
    undo_create(adapter, target, first, &create, 0, made, resource_handle);
    goto out_private;
  }

  /* Place every allocation (VidMm; deferred memory is reclaimed first) and tell the miniport
   * where it lives. */
  if (atomic_load(&adapter->deferred_count)) fence_reap(adapter);
  placement_scan_memo memo = {0};
  for (uint32_t placed = 0; placed < n; placed++) {
    port_allocation *record = &resource->records[first + placed];
    const port_placement *request = &resource->placement[first + placed];
    uint64_t offset = 0;
    status = placement_place(adapter, request, record, &resource, 1, &memo, &offset);
    if (NT_SUCCESS(status)) {
      uint64_t page = adapter->segments[record->segment_index].page_size;
      status = ddi_fill(adapter, infos[placed].hAllocation, record->segment_index + 1, offset,
                        (request->size + page - 1) & ~(page - 1));
      if (!NT_SUCCESS(status)) placement_release(adapter, record, 1);
    }
    if (!NT_SUCCESS(status)) {
      undo_create(adapter, target, first, &create, placed, n, resource_handle);
      goto out_private;
    }
  }
  /* Written once, before the resource is published: a queued teardown reads it without the lock. */
  if (target->new_resource) resource->miniport_resource = create.hResource;

  /* DxgkDdiOpenAllocation(Create) on the creating device. */
  for (uint32_t i = 0; i < n; i++) {
    opens[i].hAllocation = resource->records[first + i].handle;
    opens[i].pPrivateDriverData = (void *)args->allocations[i].private_data;
    opens[i].PrivateDriverDataSize = args->allocations[i].private_data_size;
  }
  DXGKARG_OPENALLOCATION open_args = {
      .NumAllocations = n,
      .pOpenAllocation = opens,
      .pPrivateDriverData = (void *)args->resource_private_data,
      .PrivateDriverSize = args->resource_private_data_size,
      .Flags.Create = 1,
  };
  status = ddi_open_allocation(adapter, device->driver_device, &open_args);
  if (!NT_SUCCESS(status)) {
    if (target->new_resource) resource->miniport_resource = NULL;
    undo_create(adapter, target, first, &create, n, n, resource_handle);
    goto out_private;
  }

  /* Commit. */
  for (uint32_t i = 0; i < n; i++) target->open->bindings[first + i] = opens[i].hDeviceSpecificAllocation;
  resource->count = first + n;
  handle_table_lock(&adapter->allocations);
  for (uint32_t i = 0; i < n; i++)
    handle_table_publish_locked(&adapter->allocations, resource->records[first + i].handle);
  handle_table_unlock(&adapter->allocations);
  placement_victims_released(adapter); /* published records may be evicted now */
  if (target->new_resource) {
    resource->handle = resource_handle;
    target->open->resource = resource;
    target->open->device = device->handle;
    target->open->driver_device = device->driver_device;
    resource->holders = target->open;
    link_into_device(device, target->open);
    handle_table_lock(&adapter->resources);
    handle_table_publish_locked(&adapter->resources, resource_handle);
    handle_table_unlock(&adapter->resources);
  }
  *out_resource_handle = resource_handle;
  free(infos);
  free(opens);
  return STATUS_SUCCESS;

out_private:
  if (resource->allocation_private)
    for (uint32_t i = 0; i < n; i++) {
      free(resource->allocation_private[first + i].data);
      resource->allocation_private[first + i] = (port_private_data){0};
    }
  free(infos);
  free(opens);
  return status;
}

static NTSTATUS create_once(al_adapter *adapter, const al_create_allocation_args *args) {
  NTSTATUS status;
  if (atomic_load(&adapter->removed)) return STATUS_DEVICE_REMOVED;
  port_device *device = port_lookup_device(adapter, args->device);
  if (device == NULL) return STATUS_INVALID_HANDLE;
  port_resource *existing = NULL;
  if (args->resource && (existing = port_lookup_resource(adapter, args->resource)) == NULL) {
    port_device_unref(adapter, device);
    return STATUS_INVALID_HANDLE;
  }
  port_lock(&device->lock);
  create_target target = {0};
  uint32_t resource_handle = 0;
  if (device->dying) {
    status = STATUS_INVALID_HANDLE;
  } else if (existing) {
    port_lock(&existing->lock);
    target.resource = existing;
    target.open = port_find_open(existing, device->handle);
    if ((existing->flags & RESOURCE_DEAD) || target.open == NULL || existing->creator != device->handle)
      status = STATUS_INVALID_HANDLE;
    else if (port_resource_has_dying_holder(adapter, existing))
      status = PORT_STATUS_RETRY; /* sealed or not may depend on a destroy under way */
    else if (existing->flags & RESOURCE_SEALED)
      status = STATUS_INVALID_PARAMETER;
    else
      status = create_into(adapter, device, &target, args, &resource_handle);
    port_unlock(&existing->lock);
  } else if (args->flags & AL_CREATE_RESOURCE) {
    target.new_resource = true;
    target.resource = port_resource_new((args->flags & AL_CREATE_SHARED) ? RESOURCE_SHARED : 0,
                                        device->handle);
    target.open = al_host_calloc(1, sizeof *target.open);
    status = STATUS_NO_MEMORY;
    if (target.resource && target.open && (!(args->flags & AL_CREATE_SHARED) ||
        copy_private(&target.resource->resource_private, args->resource_private_data,
                     args->resource_private_data_size))) {
      port_lock(&target.resource->lock);
      status = create_into(adapter, device, &target, args, &resource_handle);
      port_unlock(&target.resource->lock);
    }
    if (!NT_SUCCESS(status)) {
      port_open_free(target.open);
      if (target.resource) port_resource_unref(adapter, target.resource);
    }
  } else {
    status = ensure_pool(device);
    if (NT_SUCCESS(status)) {
      target.resource = device->pool;
      target.open = device->pool->holders;
      port_lock(&target.resource->lock);
      status = create_into(adapter, device, &target, args, &resource_handle);
      port_unlock(&target.resource->lock);
    }
  }
  if (NT_SUCCESS(status)) {
    for (uint32_t i = 0; i < args->allocation_count; i++)
      args->out_allocations[i] = target.resource->records[target.resource->count - args->allocation_count + i].handle;
    if (target.new_resource) *args->out_resource = resource_handle;
  }
  port_unlock(&device->lock);
  if (existing) port_resource_unref(adapter, existing);
  port_device_unref(adapter, device);
  return status;
}

NTSTATUS al_allocation_create(al_adapter *adapter, const al_create_allocation_args *args) {
  if (adapter == NULL) return STATUS_INVALID_PARAMETER;
  NTSTATUS status = validate_create(args);
  if (!NT_SUCCESS(status)) return status;
  while ((status = create_once(adapter, args)) == PORT_STATUS_RETRY) port_wait_device_destroys(adapter);
  return status;
}

/* ---- Open a shared resource on another device ---------------------------------------------------- */

static NTSTATUS open_on(al_adapter *adapter, port_device *device, port_resource *resource) {
  if (resource->flags & RESOURCE_DEAD) return STATUS_INVALID_HANDLE;
  if (port_resource_has_dying_holder(adapter, resource)) return PORT_STATUS_RETRY;
  if (!(resource->flags & RESOURCE_SHARED) || port_find_open(resource, device->handle))
    return STATUS_INVALID_PARAMETER;
  /* A queued close of this device's earlier bindings must happen before it binds again (one
   * binding per allocation and device): let the resource's queued teardowns finish. */
  if (atomic_load(&resource->pending_teardowns) != 0) {
    NTSTATUS status = al_fence_wait(adapter, resource->last_fence, UINT64_MAX);
    if (!NT_SUCCESS(status)) return status;
    if (atomic_load(&resource->pending_teardowns) != 0) fence_reap(adapter);
  }
  port_open *open = al_host_calloc(1, sizeof *open);
  if (open == NULL || !port_open_reserve(open, resource->count ? resource->count : 1)) {
    port_open_free(open);
    return STATUS_NO_MEMORY;
  }
  NTSTATUS status = STATUS_SUCCESS;
  if (resource->count) {
    DXGK_OPENALLOCATIONINFO *infos = al_host_calloc(resource->count, sizeof *infos);
    if (infos == NULL) {
      port_open_free(open);
      return STATUS_NO_MEMORY;
    }
    for (uint32_t i = 0; i < resource->count; i++) {
      infos[i].hAllocation = resource->records[i].handle;
      infos[i].pPrivateDriverData = resource->allocation_private[i].data;
      infos[i].PrivateDriverDataSize = resource->allocation_private[i].size;
    }
    DXGKARG_OPENALLOCATION args = {
        .NumAllocations = resource->count,
        .pOpenAllocation = infos,
        .pPrivateDriverData = resource->resource_private.data,
        .PrivateDriverSize = resource->resource_private.size,
    };
    status = ddi_open_allocation(adapter, device->driver_device, &args);
    if (NT_SUCCESS(status))
      for (uint32_t i = 0; i < resource->count; i++) open->bindings[i] = infos[i].hDeviceSpecificAllocation;
    free(infos);
  }
  if (!NT_SUCCESS(status)) {
    port_open_free(open);
    return status;
  }
  open->resource = resource;
  open->device = device->handle;
  open->driver_device = device->driver_device;
  open->next_holder = resource->holders;
  resource->holders = open;
  resource->flags |= RESOURCE_SEALED;
  link_into_device(device, open);
  return STATUS_SUCCESS;
}

static NTSTATUS open_once(al_adapter *adapter, al_handle device_handle, al_handle resource_handle) {
  if (atomic_load(&adapter->removed)) return STATUS_DEVICE_REMOVED;
  port_device *device = port_lookup_device(adapter, device_handle);
  if (device == NULL) return STATUS_INVALID_HANDLE;
  port_resource *resource = port_lookup_resource(adapter, resource_handle);
  if (resource == NULL) {
    port_device_unref(adapter, device);
    return STATUS_INVALID_HANDLE;
  }
  port_lock(&device->lock);
  NTSTATUS status = STATUS_INVALID_HANDLE;
  if (!device->dying) {
    port_lock(&resource->lock);
    status = open_on(adapter, device, resource);
    port_unlock(&resource->lock);
  }
  port_unlock(&device->lock);
  port_resource_unref(adapter, resource);
  port_device_unref(adapter, device);
  return status;
}

NTSTATUS al_resource_open(al_adapter *adapter, al_handle device_handle, al_handle resource_handle) {
  if (adapter == NULL) return STATUS_INVALID_PARAMETER;
  NTSTATUS status;
  while ((status = open_once(adapter, device_handle, resource_handle)) == PORT_STATUS_RETRY)
    port_wait_device_destroys(adapter);
  return status;
}

/* ---- Destroy ---------------------------------------------------------------------------------------- */

/* Destroys the listed allocations of @resource, held by @device alone. Both locks held. */
static NTSTATUS destroy_listed(al_adapter *adapter, port_device *device, port_resource *resource,
                               const al_handle *handles, uint32_t n, uint32_t flags,
                               uint64_t *out_wait_fence) {
  port_open *open = port_find_open(resource, device->handle);
  if (open == NULL || (resource->flags & RESOURCE_DEAD)) return STATUS_INVALID_HANDLE;
  /* Held elsewhere or not may depend on a destroy under way. */
  if (port_resource_has_dying_holder(adapter, resource)) return PORT_STATUS_RETRY;
  if (resource->holders->next_holder) return STATUS_INVALID_PARAMETER; /* open on several devices */

  /* One block for the indices and the teardown's lists. */
  size_t bytes = n * (sizeof(uint32_t) + 2 * sizeof(HANDLE) + sizeof(port_allocation));
  void *block = al_host_malloc(bytes);
  if (block == NULL) return STATUS_NO_MEMORY;
  port_allocation *records = block;
  HANDLE *close_list = (HANDLE *)(void *)(records + n);
  HANDLE *destroy_list = close_list + n;
  uint32_t *indices = (uint32_t *)(void *)(destroy_list + n);

  NTSTATUS status = STATUS_SUCCESS;
  handle_table_lock(&adapter->allocations);
  for (uint32_t i = 0; i < n && NT_SUCCESS(status); i++)
    if (handle_table_lookup_locked(&adapter->allocations, handles[i], &indices[i]) != resource)
      status = STATUS_INVALID_HANDLE; /* destroyed by another thread since the lookup */
  handle_table_unlock(&adapter->allocations);
  if (NT_SUCCESS(status)) {
    qsort(indices, n, sizeof *indices, port_compare_u32);
    for (uint32_t i = 1; i < n; i++)
      if (indices[i] == indices[i - 1]) status = STATUS_INVALID_PARAMETER; /* duplicates */
  }
  if (!NT_SUCCESS(status)) {
    free(block);
    return status;
  }

  uint64_t fence = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t index = indices[i];
    records[i] = resource->records[index];
    close_list[i] = open->bindings[index];
    destroy_list[i] = resource->miniport_allocations[index];
    if (records[i].last_fence > fence) fence = records[i].last_fence;
  }
  /* Remove the handles, then swap-remove the records from the highest index down, so a record
   * moved into a hole is never one still to be removed. */
  handle_table_lock(&adapter->allocations);
  for (uint32_t k = n; k-- > 0;) {
    uint32_t index = indices[k], last = resource->count - 1;
    handle_table_remove_locked(&adapter->allocations, resource->records[index].handle);
    if (resource->allocation_private) {
      free(resource->allocation_private[index].data);
      resource->allocation_private[index] = resource->allocation_private[last];
      resource->allocation_private[last] = (port_private_data){0};
    }
    if (index != last) {
      resource->records[index] = resource->records[last];
      resource->miniport_allocations[index] = resource->miniport_allocations[last];
      resource->placement[index] = resource->placement[last];
      open->bindings[index] = open->bindings[last];
      handle_table_update_locked(&adapter->allocations, resource->records[index].handle, resource, index);
    }
    resource->count--;
  }
  handle_table_unlock(&adapter->allocations);

  port_resource_ref(resource);
  port_teardown teardown = {
      .fence = fence,
      .resource = resource,
      .driver_device = open->driver_device,
      .close_list = close_list,
      .close_count = n,
      .destroy = true,
      .destroy_list = destroy_list,
      .destroy_count = n,
      .records = records,
      .owned = block,
  };
  *out_wait_fence = fence_teardown_or_defer(adapter, &teardown, flags & AL_DESTROY_ASSUME_NOT_IN_USE);
  return STATUS_SUCCESS;
}

static NTSTATUS destroy_once(al_adapter *adapter, const al_destroy_allocation_args *args) {
  port_device *device = port_lookup_device(adapter, args->device);
  if (device == NULL) return STATUS_INVALID_HANDLE;
  port_resource *resource = NULL;
  NTSTATUS status = STATUS_SUCCESS;
  if (args->resource) {
    resource = port_lookup_resource(adapter, args->resource);
    if (resource == NULL) status = STATUS_INVALID_HANDLE;
  } else {
    /* Every listed allocation must be live, and all of one owner. */
    bool mixed = false;
    handle_table_lock(&adapter->allocations);
    for (uint32_t i = 0; i < args->allocation_count; i++) {
      port_resource *owner = handle_table_lookup_locked(&adapter->allocations, args->allocations[i], NULL);
      if (owner == NULL) {
        status = STATUS_INVALID_HANDLE;
        break;
      }
      if (resource == NULL) resource = owner;
      else if (owner != resource) mixed = true;
    }
    /* Mixed owners, unless some of them are a dying device's (to other threads already gone). */
    if (NT_SUCCESS(status) && mixed)
      status = atomic_load(&adapter->devices_dying) ? PORT_STATUS_RETRY : STATUS_INVALID_PARAMETER;
    if (NT_SUCCESS(status)) port_resource_ref(resource);
    else resource = NULL;
    handle_table_unlock(&adapter->allocations);
  }
  uint64_t wait_fence = 0;
  if (NT_SUCCESS(status)) {
    bool assume = args->flags & AL_DESTROY_ASSUME_NOT_IN_USE;
    port_lock(&device->lock);
    if (device->dying) {
      status = STATUS_INVALID_HANDLE;
    } else if (args->resource) {
      status = release_hold(adapter, device, resource, assume, &wait_fence);
    } else {
      port_lock(&resource->lock);
      status = destroy_listed(adapter, device, resource, args->allocations, args->allocation_count,
                              args->flags, &wait_fence);
      port_unlock(&resource->lock);
    }
    port_unlock(&device->lock);
  }
  if (resource) port_resource_unref(adapter, resource);
  port_device_unref(adapter, device);
  if (NT_SUCCESS(status) && wait_fence && (args->flags & AL_DESTROY_SYNCHRONOUS))
    (void)al_fence_wait(adapter, wait_fence, UINT64_MAX);
  else if (NT_SUCCESS(status))
    fence_reap(adapter);
  return status;
}

NTSTATUS al_allocation_destroy(al_adapter *adapter, const al_destroy_allocation_args *args) {
  if (adapter == NULL || args == NULL || (args->flags & ~AL_DESTROY_FLAGS_ALL) ||
      (args->resource == 0) == (args->allocation_count == 0) ||
      (args->resource != 0 && args->allocations != NULL) ||
      args->allocation_count > AL_MAX_ALLOCATIONS_PER_CALL ||
      (args->allocation_count && args->allocations == NULL))
    return STATUS_INVALID_PARAMETER;
  NTSTATUS status;
  while ((status = destroy_once(adapter, args)) == PORT_STATUS_RETRY) port_wait_device_destroys(adapter);
  return status;
}
