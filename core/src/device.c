/*
 * device.c — devices: create (DxgkDdiCreateDevice) and destroy, which first lets go of every
 * resource the device holds and every allocation it owns (rule 7).
 */
#include <stdlib.h>

#include "alloclab/host_alloc.h"
#include "port.h"

NTSTATUS al_device_create(al_adapter *adapter, al_handle *out_device) {
  return al_device_create_with_info(adapter, out_device, NULL);
}

NTSTATUS al_device_create_with_info(al_adapter *adapter, al_handle *out_device, DXGK_DEVICEINFO *out_info) {
  if (adapter == NULL || out_device == NULL) return STATUS_INVALID_PARAMETER;
  /* The miniport writes a zeroed copy; the caller's struct changes only on success. */
  DXGK_DEVICEINFO info = {0};
  if (atomic_load(&adapter->removed)) return STATUS_DEVICE_REMOVED;
  port_device *device = al_host_calloc(1, sizeof *device);
  if (device == NULL) return STATUS_NO_MEMORY;
  pthread_mutex_init(&device->lock, NULL);
  atomic_init(&device->refs, 1);
  /* The handle exists (unpublished) before the miniport sees the device: DxgkDdiCreateDevice
   * gets it as the port's hDevice. */
  handle_table_lock(&adapter->devices);
  NTSTATUS status = handle_table_insert_locked(&adapter->devices, device, 0, false, &device->handle);
  handle_table_unlock(&adapter->devices);
  if (NT_SUCCESS(status)) {
    status = ddi_create_device(adapter, device->handle, out_info ? &info : NULL, &device->driver_device);
    handle_table_lock(&adapter->devices);
    if (NT_SUCCESS(status))
      handle_table_publish_locked(&adapter->devices, device->handle);
    else
      handle_table_remove_locked(&adapter->devices, device->handle);
    handle_table_unlock(&adapter->devices);
  }
  if (!NT_SUCCESS(status)) {
    pthread_mutex_destroy(&device->lock);
    free(device);
    return status;
  }
  *out_device = device->handle;
  if (out_info) *out_info = info;
  return STATUS_SUCCESS;
}

NTSTATUS al_device_destroy(al_adapter *adapter, al_handle handle) {
  if (adapter == NULL) return STATUS_INVALID_PARAMETER;
  port_device *device = port_lookup_device(adapter, handle);
  if (device == NULL) return STATUS_INVALID_HANDLE;
  /* Other calls must see the device and everything it holds go at one moment: the handle's
   * removal below. Until the holds are released they wait for us (port.h "Device destroy is
   * atomic"), so devices_dying is raised before that moment. */
  port_lock(&adapter->device_destroy_lock);
  port_lock(&device->lock);
  bool already_dying = device->dying;
  if (!already_dying) {
    device->dying = true;
    atomic_fetch_add(&adapter->devices_dying, 1);
    handle_table_lock(&adapter->devices);
    handle_table_remove_locked(&adapter->devices, handle);
    handle_table_unlock(&adapter->devices);
  }
  port_unlock(&device->lock);
  if (already_dying) {
    port_unlock(&adapter->device_destroy_lock);
    port_device_unref(adapter, device);
    return STATUS_INVALID_HANDLE;
  }

  /* The device's queued work must finish before its bindings close; deferred closes of its
   * bindings run in the reap that follows. */
  fence_wait_idle(adapter);
  port_lock(&device->lock);
  NTSTATUS status = port_release_all_holds(adapter, device);
  port_unlock(&device->lock);
  fence_reap(adapter);
  ddi_destroy_device(adapter, device->driver_device);
  atomic_fetch_sub(&adapter->devices_dying, 1);
  port_unlock(&adapter->device_destroy_lock);
  port_device_unref(adapter, device); /* the lookup's */
  port_device_unref(adapter, device); /* the structural one */
  return status;
}
