/*
 * sim_test_port.c — the fake port of the sim's direct DDI tests (see sim_test_port.h).
 */
#include "sim_test_port.h"

#include <stdlib.h>
#include <string.h>

#include "al_test.h"

#define MiB ((UINT64)1 << 20)

/* Strict like core's: a table of another interface version, or a second registration on one
 * driver object, is refused. */
NTSTATUS DxgkInitialize(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath,
                        PDRIVER_INITIALIZATION_DATA DriverInitializationData) {
  (void)RegistryPath;
  if (!DriverObject || !DriverInitializationData) return STATUS_INVALID_PARAMETER;
  if (DriverInitializationData->Version != DXGKDDI_INTERFACE_VERSION || DriverObject->registered)
    return STATUS_GRAPHICS_DRIVER_MISMATCH;
  DriverObject->ddi = *DriverInitializationData;
  DriverObject->registered = true;
  return STATUS_SUCCESS;
}

/* Process-wide, like dxgkrnl's handle table: the threaded tests register from several threads. */
#define FAKE_HANDLE_MAX 4096u
static pthread_mutex_t fake_handle_lock = PTHREAD_MUTEX_INITIALIZER;
static HANDLE fake_handles[FAKE_HANDLE_MAX];
static UINT fake_handle_count;

D3DKMT_HANDLE fake_handle_register(HANDLE object) {
  pthread_mutex_lock(&fake_handle_lock);
  D3DKMT_HANDLE handle = 0;
  if (fake_handle_count < FAKE_HANDLE_MAX) {
    fake_handles[fake_handle_count++] = object;
    handle = fake_handle_count;
  }
  pthread_mutex_unlock(&fake_handle_lock);
  return handle;
}

static VOID *APIENTRY fake_get_handle_data(const DXGKARGCB_GETHANDLEDATA *pData) {
  if (!pData || pData->Type != DXGK_HANDLE_ALLOCATION) return NULL;
  pthread_mutex_lock(&fake_handle_lock);
  HANDLE object = pData->hObject && pData->hObject <= fake_handle_count ? fake_handles[pData->hObject - 1] : NULL;
  pthread_mutex_unlock(&fake_handle_lock);
  return object;
}

static VOID APIENTRY fake_notify(const HANDLE hAdapter, const DXGKARGCB_NOTIFY_INTERRUPT_DATA *pArgs) {
  fake_port *f = hAdapter;
  pthread_mutex_lock(&f->lock);
  if (pArgs && pArgs->InterruptType == DXGK_INTERRUPT_DMA_COMPLETED && f->fence_count < FAKE_PORT_MAX_FENCES)
    f->fences[f->fence_count++] = pArgs->DmaCompleted.SubmissionFenceId;
  pthread_mutex_unlock(&f->lock);
}

UINT fake_fences(fake_port *f) {
  pthread_mutex_lock(&f->lock);
  UINT n = f->fence_count;
  pthread_mutex_unlock(&f->lock);
  return n;
}

SIM_HARDWARE_CONFIG fake_quiet_config(void) {
  SIM_HARDWARE_CONFIG config = sim_hardware_config_default();
  config.MemorySegmentSize = 4 * MiB;
  config.ApertureSegmentSize = 4 * MiB;
  config.Flags = 0;
  return config;
}

fake_port *fake_start(const SIM_HARDWARE_CONFIG *config) {
  fake_port *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  pthread_mutex_init(&f->lock, NULL);
  f->config = *config;
  f->next_fence = 1;
  if (SimMiniportDriverEntry(&f->driver, NULL) != STATUS_SUCCESS) return NULL;
  f->ddi = &f->driver.ddi;
  DEVICE_OBJECT pdo = {&f->config, sizeof f->config};
  if (f->ddi->DxgkDdiAddDevice(&pdo, &f->ctx) != STATUS_SUCCESS) return NULL;
  DXGK_START_INFO info = {DXGKDDI_INTERFACE_VERSION, 1};
  DXGKRNL_INTERFACE iface = {sizeof(DXGKRNL_INTERFACE), DXGKDDI_INTERFACE_VERSION, f, fake_get_handle_data, fake_notify};
  ULONG sources = 9, children = 9;
  if (f->ddi->DxgkDdiStartDevice(f->ctx, &info, &iface, &sources, &children) != STATUS_SUCCESS) return NULL;
  return f;
}

ALDDI_LIVE_OBJECTS fake_live(fake_port *f) {
  ALDDI_LIVE_OBJECTS live;
  memset(&live, 0xFF, sizeof live);
  f->ddi->AlDdiQueryLiveObjects(f->ctx, &live);
  return live;
}

void fake_end(fake_port *f, bool expect_empty) {
  if (expect_empty) {
    ALDDI_LIVE_OBJECTS live = fake_live(f);
    expect_u64_eq(live.Devices + live.Resources + live.Allocations + live.OpenAllocations, 0, "nothing live");
    expect_u64_eq(live.HostBytes, 0, "no host bytes");
  }
  expect_status(f->ddi->DxgkDdiStopDevice(f->ctx), STATUS_SUCCESS, "stop");
  expect_status(f->ddi->DxgkDdiRemoveDevice(f->ctx), STATUS_SUCCESS, "remove");
  pthread_mutex_destroy(&f->lock);
  free(f);
  sim_miniport_stats s;
  sim_miniport_get_stats(&s);
  expect_u64_eq(s.adapters + s.host_bytes + s.committed_bytes + s.allocations + s.bindings, 0, "process-wide: nothing left");
}

HANDLE fake_device_create(fake_port *f, UINT port_handle) {
  DXGKARG_CREATEDEVICE args;
  memset(&args, 0, sizeof args);
  args.hDevice = (HANDLE)(uintptr_t)port_handle;
  NTSTATUS status = f->ddi->DxgkDdiCreateDevice(f->ctx, &args);
  expect_status(status, STATUS_SUCCESS, "create device");
  return NT_SUCCESS(status) ? args.hDevice : NULL;
}

NTSTATUS fake_alloc_create(fake_port *f, const SIM_ALLOCATION_DATA *data, HANDLE *out, D3DKMT_HANDLE *out_kmt) {
  DXGK_ALLOCATIONINFO info;
  memset(&info, 0, sizeof info);
  info.pPrivateDriverData = (void *)data;
  info.PrivateDriverDataSize = sizeof *data;
  DXGKARG_CREATEALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pAllocationInfo = &info;
  NTSTATUS status = f->ddi->DxgkDdiCreateAllocation(f->ctx, &args);
  if (NT_SUCCESS(status)) {
    *out = info.hAllocation;
    if (out_kmt) *out_kmt = fake_handle_register(info.hAllocation);
  }
  return status;
}

NTSTATUS fake_paging(fake_port *f, DXGK_BUILDPAGINGBUFFER_OPERATION op, HANDLE allocation, UINT64 size, UINT from,
                     UINT64 from_offset, UINT to, UINT64 to_offset) {
  DXGKARG_BUILDPAGINGBUFFER args;
  memset(&args, 0, sizeof args);
  args.Operation = op;
  if (op == DXGK_OPERATION_FILL) {
    args.Fill.hAllocation = allocation;
    args.Fill.FillSize = size;
    args.Fill.Destination.SegmentId = to;
    args.Fill.Destination.SegmentAddress.QuadPart = (LONGLONG)to_offset;
  } else {
    args.Transfer.hAllocation = allocation;
    args.Transfer.TransferSize = size;
    args.Transfer.Source.SegmentId = from;
    args.Transfer.Source.SegmentAddress.QuadPart = (LONGLONG)from_offset;
    args.Transfer.Destination.SegmentId = to;
    args.Transfer.Destination.SegmentAddress.QuadPart = (LONGLONG)to_offset;
  }
  return f->ddi->DxgkDdiBuildPagingBuffer(f->ctx, &args);
}

NTSTATUS fake_close_one(fake_port *f, HANDLE device, HANDLE binding) {
  DXGKARG_CLOSEALLOCATION args = {1, &binding};
  return f->ddi->DxgkDdiCloseAllocation(device, &args);
}

NTSTATUS fake_destroy_one(fake_port *f, HANDLE allocation) {
  DXGKARG_DESTROYALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pAllocationList = &allocation;
  return f->ddi->DxgkDdiDestroyAllocation(f->ctx, &args);
}

NTSTATUS fake_submit(fake_port *f, HANDLE device, const HANDLE *bindings, UINT n, const void *stream, UINT bytes) {
  DXGK_ALLOCATIONLIST list[8];
  memset(list, 0, sizeof list);
  for (UINT i = 0; i < n && i < 8; i++) list[i].hDeviceSpecificAllocation = bindings[i];
  DXGKARG_SUBMITCOMMAND args;
  memset(&args, 0, sizeof args);
  args.DmaBufferSize = bytes;
  args.DmaBufferSubmissionEndOffset = bytes;
  args.SubmissionFenceId = f->next_fence;
  args.Flags.Null = bytes == 0;
  args.hContext = device;
  args.pAlDmaBuffer = stream;
  args.pAlAllocationList = list;
  args.AlAllocationListSize = n;
  NTSTATUS status = f->ddi->DxgkDdiSubmitCommand(f->ctx, &args);
  if (NT_SUCCESS(status)) f->next_fence++;
  return status;
}

UINT fake_run_engine(fake_port *f) {
  UINT ran = 0;
  expect_status(f->ddi->AlDdiRunEngine(f->ctx, 1000, &ran), STATUS_SUCCESS, "run engine");
  return ran;
}
