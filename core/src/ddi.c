/*
 * ddi.c — every call from the port into the miniport goes through here, so the verifier (when
 * on) sees each one, and the rules the miniport's answers must keep live in one place
 * (ddi_check_create_output). A broken miniport rule aborts under the verifier; without it the
 * call fails with STATUS_GRAPHICS_DRIVER_MISMATCH after what the miniport made is undone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"
#include "port.h"
#include "verifier.h"

/* The adapter whose DDI is running on this thread: DxgkCbGetHandleData has no adapter argument. */
_Thread_local al_adapter *ddi_current_adapter;

/* Brackets a DDI call: sets the thread's current adapter for the callbacks. */
static al_adapter *ddi_enter(al_adapter *adapter) {
  al_adapter *saved = ddi_current_adapter;
  ddi_current_adapter = adapter;
  return saved;
}

static NTSTATUS ddi_leave(al_adapter *adapter, al_adapter *saved, NTSTATUS status) {
  ddi_current_adapter = saved;
  ddi_note_status(adapter, status);
  return status;
}

/* Handles undone per DDI call when the miniport's answer is refused (a stack array). */
#define DDI_UNDO_BATCH 64u

#define DDI_CALL(adapter, call)                                                                 \
  do {                                                                                          \
    al_adapter *ddi_saved_ = ddi_enter(adapter);                                                \
    status = ddi_leave((adapter), ddi_saved_, (call));                                          \
  } while (0)

void ddi_note_status(al_adapter *adapter, NTSTATUS status) {
  if (status == STATUS_DEVICE_REMOVED) atomic_store(&adapter->removed, true);
}

const char *ddi_check_create_output(const al_adapter *adapter, const DXGKARG_CREATEALLOCATION *args,
                                    uint32_t *out_bad_index) {
  static _Thread_local char message[256];
  for (UINT i = 0; i < args->NumAllocations; i++) {
    const DXGK_ALLOCATIONINFO *info = &args->pAllocationInfo[i];
    const char *broken = NULL;
    uint32_t write_set = info->SupportedWriteSegmentSet;
    if (info->hAllocation == NULL)
      broken = "hAllocation is NULL";
    else if (info->Size == 0 || info->Size % 4096 != 0)
      broken = "Size is not a positive multiple of 4096";
    else if (info->PitchAlignedSize != 0 && info->PitchAlignedSize < info->Size)
      broken = "PitchAlignedSize is neither 0 nor >= Size";
    else if (info->Alignment != 0 && !port_is_power_of_two(info->Alignment))
      broken = "Alignment is not a power of two";
    else if (write_set == 0 || (write_set & ~adapter->segment_set_all))
      broken = "SupportedWriteSegmentSet is empty or names a segment that was not described";
    else if (info->EvictionSegmentSet & ~adapter->segment_set_aperture)
      broken = "EvictionSegmentSet names a segment that is not an aperture segment";
    else if (info->AllocationPriority == 0)
      broken = "AllocationPriority is 0";
    else if ((info->Flags.PermanentSysMem || info->Flags.Cached) && !info->Flags.CpuVisible)
      broken = "PermanentSysMem or Cached without CpuVisible";
    else if (info->PreferredSegment.Reserved)
      broken = "PreferredSegment.Reserved is not 0";
    else {
      const UINT preferred[5] = {info->PreferredSegment.SegmentId0, info->PreferredSegment.SegmentId1,
                                 info->PreferredSegment.SegmentId2, info->PreferredSegment.SegmentId3,
                                 info->PreferredSegment.SegmentId4};
      for (int k = 0; k < 5 && preferred[k] && !broken; k++)
        if (!(write_set & (1u << (preferred[k] - 1))))
          broken = "PreferredSegment names a segment outside SupportedWriteSegmentSet";
    }
    if (broken) {
      snprintf(message, sizeof message, "allocation %u of %u (hAllocation %p, Size %zu): %s", i,
               args->NumAllocations, info->hAllocation, (size_t)info->Size, broken);
      if (out_bad_index) *out_bad_index = i;
      return message;
    }
  }
  return NULL;
}

NTSTATUS ddi_create_allocation(al_adapter *adapter, DXGKARG_CREATEALLOCATION *args) {
  HANDLE resource_in = args->hResource;
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiCreateAllocation(adapter->miniport, args));
  if (!NT_SUCCESS(status)) return status;
  const char *broken = ddi_check_create_output(adapter, args, NULL);
  if (broken) {
    if (adapter->verifier) verifier_fail("1 (create)", "DxgkDdiCreateAllocation returned %s", broken);
    /* Undo what the miniport made: every allocation it returned, and a new resource. The
     * handles go in batches from the stack: an undo that needed host memory could fail and
     * leave the miniport's objects behind. */
    HANDLE made[DDI_UNDO_BATCH];
    UINT count = 0;
    bool new_resource = args->Flags.Resource && resource_in == NULL && args->hResource != NULL;
    for (UINT i = 0; i < args->NumAllocations; i++) {
      if (args->pAllocationInfo[i].hAllocation) made[count++] = args->pAllocationInfo[i].hAllocation;
      if (count == DDI_UNDO_BATCH) {
        ddi_destroy_allocation(adapter, made, count, args->hResource, false, true);
        count = 0;
      }
    }
    if (count || new_resource)
      ddi_destroy_allocation(adapter, made, count, args->hResource, new_resource, true);
    return STATUS_GRAPHICS_DRIVER_MISMATCH;
  }
  if (adapter->verifier) verifier_after_create_allocation(adapter->verifier, args, resource_in);
  return STATUS_SUCCESS;
}

NTSTATUS ddi_open_allocation(al_adapter *adapter, HANDLE driver_device, const DXGKARG_OPENALLOCATION *args) {
  HANDLE *resolved = NULL;
  if (adapter->verifier) {
    resolved = al_host_malloc(args->NumAllocations * sizeof *resolved);
    if (resolved == NULL) return STATUS_NO_MEMORY;
    for (UINT i = 0; i < args->NumAllocations; i++) {
      DXGKARGCB_GETHANDLEDATA query = {.hObject = args->pOpenAllocation[i].hAllocation,
                                       .Type = DXGK_HANDLE_ALLOCATION};
      al_adapter *saved = ddi_enter(adapter);
      resolved[i] = adapter->interface.DxgkCbGetHandleData(&query);
      ddi_current_adapter = saved;
    }
    verifier_before_open_allocation(adapter->verifier, driver_device, args, resolved);
  }
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiOpenAllocation(driver_device, args));
  if (NT_SUCCESS(status)) {
    UINT missing = args->NumAllocations;
    for (UINT i = 0; i < args->NumAllocations; i++)
      if (args->pOpenAllocation[i].hDeviceSpecificAllocation == NULL) missing = i;
    if (missing != args->NumAllocations) {
      if (adapter->verifier)
        verifier_fail("3 (open)", "DxgkDdiOpenAllocation returned a NULL hDeviceSpecificAllocation "
                      "for allocation %u of %u on device %p", missing, args->NumAllocations,
                      driver_device);
      /* The bindings it did return are closed again, in batches from the stack (see create). */
      HANDLE opened[DDI_UNDO_BATCH];
      UINT count = 0;
      for (UINT i = 0; i < args->NumAllocations; i++) {
        if (args->pOpenAllocation[i].hDeviceSpecificAllocation)
          opened[count++] = args->pOpenAllocation[i].hDeviceSpecificAllocation;
        if (count == DDI_UNDO_BATCH || (count && i + 1 == args->NumAllocations)) {
          atomic_fetch_add(&adapter->bindings, count);
          ddi_close_allocation(adapter, driver_device, opened, count, true);
          count = 0;
        }
      }
      status = STATUS_GRAPHICS_DRIVER_MISMATCH;
    } else {
      atomic_fetch_add(&adapter->bindings, args->NumAllocations);
      if (adapter->verifier)
        verifier_after_open_allocation(adapter->verifier, driver_device, args, resolved);
    }
  }
  free(resolved);
  return status;
}

void ddi_close_allocation(al_adapter *adapter, HANDLE driver_device, const HANDLE *bindings,
                          uint32_t count, bool assume_not_in_use) {
  if (adapter->verifier)
    verifier_before_close_allocation(adapter->verifier, driver_device, bindings, count, assume_not_in_use);
  DXGKARG_CLOSEALLOCATION args = {.NumAllocations = count, .pOpenHandleList = bindings};
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiCloseAllocation(driver_device, &args));
  if (!NT_SUCCESS(status) && status != STATUS_DEVICE_REMOVED && adapter->verifier)
    verifier_fail("4 (close)", "DxgkDdiCloseAllocation of %u bindings on device %p failed: %s",
                  count, driver_device, al_status_name(status));
  atomic_fetch_sub(&adapter->bindings, count);
}

void ddi_destroy_allocation(al_adapter *adapter, const HANDLE *allocations, uint32_t count,
                            HANDLE miniport_resource, bool destroy_resource, bool assume_not_in_use) {
  if (adapter->verifier)
    verifier_before_destroy_allocation(adapter->verifier, allocations, count, miniport_resource,
                                       destroy_resource, assume_not_in_use);
  DXGKARG_DESTROYALLOCATION args = {
      .NumAllocations = count,
      .pAllocationList = allocations,
      .hResource = miniport_resource,
      .Flags.DestroyResource = destroy_resource,
  };
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiDestroyAllocation(adapter->miniport, &args));
  if (!NT_SUCCESS(status) && status != STATUS_DEVICE_REMOVED && adapter->verifier)
    verifier_fail("5 (destroy)", "DxgkDdiDestroyAllocation of %u allocations failed: %s", count,
                  al_status_name(status));
}

NTSTATUS ddi_create_device(al_adapter *adapter, uint32_t device_handle, DXGK_DEVICEINFO *info,
                           HANDLE *out_driver_device) {
  DXGKARG_CREATEDEVICE args = {.hDevice = (HANDLE)(uintptr_t)device_handle, .pInfo = info};
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiCreateDevice(adapter->miniport, &args));
  if (!NT_SUCCESS(status)) return status;
  if (args.hDevice == NULL) {
    if (adapter->verifier) verifier_fail("7 (device)", "DxgkDdiCreateDevice returned a NULL hDevice");
    return STATUS_GRAPHICS_DRIVER_MISMATCH;
  }
  if (adapter->verifier) verifier_after_create_device(adapter->verifier, args.hDevice);
  *out_driver_device = args.hDevice;
  return STATUS_SUCCESS;
}

void ddi_destroy_device(al_adapter *adapter, HANDLE driver_device) {
  if (adapter->verifier) verifier_before_destroy_device(adapter->verifier, driver_device);
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiDestroyDevice(driver_device));
  (void)status;
}

NTSTATUS ddi_submit(al_adapter *adapter, HANDLE driver_device, uint64_t fence, const void *command,
                    uint32_t command_size, const DXGK_ALLOCATIONLIST *list, uint32_t list_size) {
  DXGKARG_SUBMITCOMMAND args = {
      .DmaBufferSize = command_size,
      .DmaBufferSubmissionEndOffset = command_size,
      .SubmissionFenceId = (UINT)fence,
      .Flags.Null = command_size == 0,
      .hContext = driver_device,
      .pAlDmaBuffer = command,
      .pAlAllocationList = list,
      .AlAllocationListSize = list_size,
  };
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiSubmitCommand(adapter->miniport, &args));
  if (NT_SUCCESS(status) && adapter->verifier)
    verifier_after_submit(adapter->verifier, driver_device, fence, list, list_size);
  return status;
}

NTSTATUS ddi_transfer(al_adapter *adapter, HANDLE allocation, uint64_t size, uint32_t from_id,
                      uint64_t from_offset, uint32_t to_id, uint64_t to_offset) {
  if (adapter->driver.ddi.DxgkDdiBuildPagingBuffer == NULL) return STATUS_NO_VIDEO_MEMORY;
  DXGKARG_BUILDPAGINGBUFFER args = {.Operation = DXGK_OPERATION_TRANSFER};
  args.Transfer.hAllocation = allocation;
  args.Transfer.TransferSize = size;
  args.Transfer.Source.SegmentId = from_id;
  args.Transfer.Source.SegmentAddress.QuadPart = (LONGLONG)from_offset;
  args.Transfer.Destination.SegmentId = to_id;
  args.Transfer.Destination.SegmentAddress.QuadPart = (LONGLONG)to_offset;
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiBuildPagingBuffer(adapter->miniport, &args));
  return status;
}

NTSTATUS ddi_run_engine(al_adapter *adapter, uint32_t max, uint32_t *out_ran) {
  UINT ran = 0;
  NTSTATUS status = STATUS_SUCCESS;
  if (adapter->driver.ddi.AlDdiRunEngine != NULL && max != 0)
    DDI_CALL(adapter, adapter->driver.ddi.AlDdiRunEngine(adapter->miniport, max, &ran));
  *out_ran = ran;
  return status;
}

NTSTATUS ddi_fill(al_adapter *adapter, HANDLE allocation, uint32_t segment_id, uint64_t offset, uint64_t size) {
  if (adapter->driver.ddi.DxgkDdiBuildPagingBuffer == NULL) return STATUS_SUCCESS;
  DXGKARG_BUILDPAGINGBUFFER args = {.Operation = DXGK_OPERATION_FILL};
  args.Fill.hAllocation = allocation;
  args.Fill.FillSize = size;
  args.Fill.FillPattern = 0;
  args.Fill.Destination.SegmentId = segment_id;
  args.Fill.Destination.SegmentAddress.QuadPart = (LONGLONG)offset;
  NTSTATUS status;
  DDI_CALL(adapter, adapter->driver.ddi.DxgkDdiBuildPagingBuffer(adapter->miniport, &args));
  return status;
}
