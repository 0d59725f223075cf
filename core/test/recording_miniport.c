/* recording_miniport.c — see recording_miniport.h. */
#include "recording_miniport.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/hw/miniport.h"
#include "alloclab/status.h"
#include "port.h" /* struct _DRIVER_OBJECT: to capture the inner miniport's table */

/* ---- State ---------------------------------------------------------------------------------- */

static pthread_once_t rec_once = PTHREAD_ONCE_INIT;
static DRIVER_INITIALIZATION_DATA rec_inner;
static NTSTATUS rec_inner_status;

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
/* Under rec_lock: */
static rec_call *rec_log;
static size_t rec_log_count, rec_log_capacity;
static bool rec_disabled;
static HANDLE rec_adapter;
static PDXGKCB_NOTIFY_INTERRUPT rec_port_notify;
static PDXGKCB_GETHANDLEDATA rec_port_get_handle_data;
/* The interfaces handed to the inner miniport's StartDevice (a ring: adapters are few at once). */
#define REC_MAX_INTERFACES 64
static DXGKRNL_INTERFACE rec_interfaces[REC_MAX_INTERFACES];
static size_t rec_next_interface;

#define REC_MAX_FAILURES 16
typedef struct rec_failure {
  bool armed;
  rec_ddi ddi;
  uint32_t skip;
  NTSTATUS status;
} rec_failure;
static rec_failure rec_failures[REC_MAX_FAILURES];
static bool rec_edit_armed;
static uint32_t rec_edit_index;
static rec_create_edit *rec_edit;
static bool rec_open_null_armed;
static uint32_t rec_open_null_index;
static bool rec_device_null_armed;
static rec_bad_segments rec_segments;

static const char *const rec_names[REC_DDI_COUNT] = {
    [REC_ADD_DEVICE] = "AddDevice",
    [REC_START_DEVICE] = "StartDevice",
    [REC_STOP_DEVICE] = "StopDevice",
    [REC_REMOVE_DEVICE] = "RemoveDevice",
    [REC_QUERY_ADAPTER_INFO] = "QueryAdapterInfo",
    [REC_CREATE_DEVICE] = "CreateDevice",
    [REC_DESTROY_DEVICE] = "DestroyDevice",
    [REC_CREATE_ALLOCATION] = "CreateAllocation",
    [REC_OPEN_ALLOCATION] = "OpenAllocation",
    [REC_CLOSE_ALLOCATION] = "CloseAllocation",
    [REC_DESTROY_ALLOCATION] = "DestroyAllocation",
    [REC_SUBMIT_COMMAND] = "SubmitCommand",
    [REC_BUILD_PAGING_BUFFER] = "BuildPagingBuffer",
    [REC_RUN_ENGINE] = "RunEngine",
    [REC_QUERY_LIVE_OBJECTS] = "QueryLiveObjects",
    [REC_NOTIFY_INTERRUPT] = "NotifyInterrupt",
};

const char *recording_ddi_name(rec_ddi ddi) {
  return ddi < REC_DDI_COUNT ? rec_names[ddi] : "?";
}

static _Noreturn void rec_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void rec_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("recording_miniport: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

static void rec_load_inner(void) {
  /* The miniport's DriverEntry registers into a driver object of our own (core's DxgkInitialize
   * fills it), so its table becomes the inner one. */
  DRIVER_OBJECT inner = {0};
  rec_inner_status = al_selected_miniport.driver_entry(&inner, NULL);
  if (NT_SUCCESS(rec_inner_status) && !inner.registered) rec_inner_status = STATUS_GRAPHICS_DRIVER_MISMATCH;
  if (NT_SUCCESS(rec_inner_status)) rec_inner = inner.ddi;
}

const DRIVER_INITIALIZATION_DATA *recording_inner_table(void) {
  pthread_once(&rec_once, rec_load_inner);
  if (!NT_SUCCESS(rec_inner_status))
    rec_die("the %s miniport's DriverEntry failed: %s", al_selected_miniport.name,
            al_status_name(rec_inner_status));
  return &rec_inner;
}

/* ---- The log -------------------------------------------------------------------------------- */

static void *rec_copy(const void *from, size_t count, size_t size) {
  if (from == NULL || count == 0) return NULL;
  void *to = malloc(count * size);
  if (to == NULL) rec_die("out of memory");
  memcpy(to, from, count * size);
  return to;
}

/* Appends @call; its lists are copied (call->count entries each). Returns its position, or
 * SIZE_MAX when logging is off. */
static size_t rec_append(const rec_call *call) {
  size_t index = SIZE_MAX;
  pthread_mutex_lock(&rec_lock);
  if (!rec_disabled) {
    index = rec_log_count;
    if (rec_log_count == rec_log_capacity) {
      size_t capacity = rec_log_capacity ? rec_log_capacity * 2 : 256;
      rec_call *log = realloc(rec_log, capacity * sizeof *log);
      if (log == NULL) rec_die("out of memory");
      rec_log = log;
      rec_log_capacity = capacity;
    }
    rec_call *entry = &rec_log[rec_log_count++];
    *entry = *call;
    entry->handles = rec_copy(call->handles, call->count, sizeof *call->handles);
    entry->allocations = rec_copy(call->allocations, call->count, sizeof *call->allocations);
    entry->port_handles = rec_copy(call->port_handles, call->count, sizeof *call->port_handles);
    entry->segment_ids = rec_copy(call->segment_ids, call->count, sizeof *call->segment_ids);
    entry->segment_offsets =
        rec_copy(call->segment_offsets, call->count, sizeof *call->segment_offsets);
  }
  pthread_mutex_unlock(&rec_lock);
  return index;
}

/* Sets the outcome of an entry appended before its call (calls that end objects are logged
 * before they run, so that a handle value the miniport reuses at once never appears in the log
 * before the entry that ended its previous life). */
static void rec_set_outcome(size_t index, NTSTATUS status, bool injected) {
  pthread_mutex_lock(&rec_lock);
  if (index < rec_log_count) {
    rec_log[index].status = status;
    rec_log[index].injected = injected;
  }
  pthread_mutex_unlock(&rec_lock);
}

static void rec_free_entry(rec_call *entry) {
  free(entry->handles);
  free(entry->allocations);
  free(entry->port_handles);
  free(entry->segment_ids);
  free(entry->segment_offsets);
}

void recording_reset(void) {
  pthread_mutex_lock(&rec_lock);
  for (size_t i = 0; i < rec_log_count; i++) rec_free_entry(&rec_log[i]);
  free(rec_log);
  rec_log = NULL;
  rec_log_count = rec_log_capacity = 0;
  memset(rec_failures, 0, sizeof rec_failures);
  rec_edit_armed = false;
  rec_edit = NULL;
  rec_open_null_armed = false;
  rec_device_null_armed = false;
  rec_segments = REC_SEGMENTS_OK;
  pthread_mutex_unlock(&rec_lock);
}

void recording_set_enabled(bool enabled) {
  pthread_mutex_lock(&rec_lock);
  rec_disabled = !enabled;
  pthread_mutex_unlock(&rec_lock);
}

size_t recording_count(void) {
  pthread_mutex_lock(&rec_lock);
  size_t count = rec_log_count;
  pthread_mutex_unlock(&rec_lock);
  return count;
}

rec_call recording_get(size_t index) {
  pthread_mutex_lock(&rec_lock);
  if (index >= rec_log_count) rec_die("recording_get(%zu): the log has %zu entries", index, rec_log_count);
  rec_call call = rec_log[index];
  pthread_mutex_unlock(&rec_lock);
  return call;
}

size_t recording_count_of(rec_ddi ddi, size_t from) {
  size_t count = 0;
  pthread_mutex_lock(&rec_lock);
  for (size_t i = from; i < rec_log_count; i++) count += rec_log[i].ddi == ddi;
  pthread_mutex_unlock(&rec_lock);
  return count;
}

size_t recording_find(rec_ddi ddi, size_t from) {
  size_t found = SIZE_MAX;
  pthread_mutex_lock(&rec_lock);
  for (size_t i = from; i < rec_log_count && found == SIZE_MAX; i++)
    if (rec_log[i].ddi == ddi) found = i;
  pthread_mutex_unlock(&rec_lock);
  return found;
}

void recording_dump(size_t from) {
  pthread_mutex_lock(&rec_lock);
  for (size_t i = from; i < rec_log_count; i++) {
    const rec_call *c = &rec_log[i];
    fprintf(stderr, "  #%zu %s%s -> %s: adapter %p device %p res %p->%p flags 0x%x count %u fence %" PRIu64,
            i, rec_names[c->ddi], c->injected ? " (injected)" : "", al_status_name(c->status),
            c->adapter, c->device, c->resource_in, c->resource_out, c->flags, c->count, c->fence);
    if (c->handles) {
      fputs(" [", stderr);
      for (uint32_t k = 0; k < c->count; k++) fprintf(stderr, "%s%p", k ? " " : "", c->handles[k]);
      fputc(']', stderr);
    }
    fputc('\n', stderr);
  }
  pthread_mutex_unlock(&rec_lock);
}

HANDLE recording_last_adapter(void) {
  pthread_mutex_lock(&rec_lock);
  HANDLE adapter = rec_adapter;
  pthread_mutex_unlock(&rec_lock);
  return adapter;
}

HANDLE recording_driver_device(uint32_t device) {
  HANDLE found = NULL;
  pthread_mutex_lock(&rec_lock);
  for (size_t i = rec_log_count; i-- > 0 && found == NULL;)
    if (rec_log[i].ddi == REC_CREATE_DEVICE && NT_SUCCESS(rec_log[i].status) &&
        rec_log[i].port_handle == device)
      found = rec_log[i].device;
  pthread_mutex_unlock(&rec_lock);
  return found;
}

/* ---- Injection -------------------------------------------------------------------------------- */

void recording_fail_call(rec_ddi ddi, uint32_t skip, NTSTATUS status) {
  pthread_mutex_lock(&rec_lock);
  int slot = -1;
  for (int i = 0; i < REC_MAX_FAILURES && slot < 0; i++)
    if (!rec_failures[i].armed) slot = i;
  if (slot < 0) rec_die("too many armed failures");
  rec_failures[slot] = (rec_failure){.armed = true, .ddi = ddi, .skip = skip, .status = status};
  pthread_mutex_unlock(&rec_lock);
}

/* True (with *status) when this call of @ddi is to fail. */
static bool rec_take_failure(rec_ddi ddi, NTSTATUS *status) {
  bool fail = false;
  pthread_mutex_lock(&rec_lock);
  for (int i = 0; i < REC_MAX_FAILURES; i++) {
    rec_failure *f = &rec_failures[i];
    if (!f->armed || f->ddi != ddi) continue;
    if (f->skip) {
      f->skip--;
      continue;
    }
    if (!fail) {
      f->armed = false;
      *status = f->status;
      fail = true;
    }
  }
  pthread_mutex_unlock(&rec_lock);
  return fail;
}

void recording_edit_create(uint32_t index, rec_create_edit *edit) {
  pthread_mutex_lock(&rec_lock);
  rec_edit_armed = true;
  rec_edit_index = index;
  rec_edit = edit;
  pthread_mutex_unlock(&rec_lock);
}

void rec_edit_null_allocation(DXGK_ALLOCATIONINFO *info) { info->hAllocation = NULL; }
void rec_edit_zero_size(DXGK_ALLOCATIONINFO *info) { info->Size = 0; }
void rec_edit_outside_segments(DXGK_ALLOCATIONINFO *info) {
  info->SupportedReadSegmentSet = info->SupportedWriteSegmentSet = 1u << 31;
  info->PreferredSegment.Value = 0;
}

void recording_null_open_binding(uint32_t index) {
  pthread_mutex_lock(&rec_lock);
  rec_open_null_armed = true;
  rec_open_null_index = index;
  pthread_mutex_unlock(&rec_lock);
}

void recording_null_device(void) {
  pthread_mutex_lock(&rec_lock);
  rec_device_null_armed = true;
  pthread_mutex_unlock(&rec_lock);
}

void recording_break_segments(rec_bad_segments kind) {
  pthread_mutex_lock(&rec_lock);
  rec_segments = kind;
  pthread_mutex_unlock(&rec_lock);
}

NTSTATUS recording_query_live(HANDLE adapter, ALDDI_LIVE_OBJECTS *out) {
  const DRIVER_INITIALIZATION_DATA *inner = recording_inner_table();
  if (inner->AlDdiQueryLiveObjects == NULL) return STATUS_INVALID_PARAMETER;
  return inner->AlDdiQueryLiveObjects(adapter, out);
}

NTSTATUS recording_run_engine_directly(HANDLE adapter, uint32_t max_submissions, uint32_t *out_ran) {
  UINT ran = 0;
  const DRIVER_INITIALIZATION_DATA *inner = recording_inner_table();
  if (inner->AlDdiRunEngine == NULL) return STATUS_INVALID_PARAMETER;
  NTSTATUS status = inner->AlDdiRunEngine(adapter, max_submissions, &ran);
  if (out_ran) *out_ran = ran;
  return status;
}

/* ---- Wrappers --------------------------------------------------------------------------------- */

static VOID APIENTRY rec_notify(const HANDLE hAdapter, const DXGKARGCB_NOTIFY_INTERRUPT_DATA *pArgs) {
  rec_call call = {.ddi = REC_NOTIFY_INTERRUPT, .adapter = hAdapter};
  if (pArgs && pArgs->InterruptType == DXGK_INTERRUPT_DMA_COMPLETED)
    call.fence = pArgs->DmaCompleted.SubmissionFenceId;
  rec_append(&call);
  pthread_mutex_lock(&rec_lock);
  PDXGKCB_NOTIFY_INTERRUPT forward = rec_port_notify;
  pthread_mutex_unlock(&rec_lock);
  forward(hAdapter, pArgs);
}

static DXGKDDI_ADD_DEVICE rec_add_device;
static NTSTATUS APIENTRY rec_add_device(const PDEVICE_OBJECT PhysicalDeviceObject,
                                        PVOID *MiniportDeviceContext) {
  NTSTATUS status;
  bool injected = rec_take_failure(REC_ADD_DEVICE, &status);
  if (!injected) status = rec_inner.DxgkDdiAddDevice(PhysicalDeviceObject, MiniportDeviceContext);
  rec_call call = {.ddi = REC_ADD_DEVICE, .status = status, .injected = injected};
  if (NT_SUCCESS(status)) {
    call.adapter = *MiniportDeviceContext;
    pthread_mutex_lock(&rec_lock);
    rec_adapter = call.adapter;
    pthread_mutex_unlock(&rec_lock);
  }
  rec_append(&call);
  return status;
}

static DXGKDDI_START_DEVICE rec_start_device;
static NTSTATUS APIENTRY rec_start_device(const PVOID MiniportDeviceContext,
                                          PDXGK_START_INFO DxgkStartInfo,
                                          PDXGKRNL_INTERFACE DxgkInterface,
                                          PULONG NumberOfVideoPresentSources,
                                          PULONG NumberOfChildren) {
  NTSTATUS status;
  bool injected = rec_take_failure(REC_START_DEVICE, &status);
  if (!injected) {
    PDXGKRNL_INTERFACE given = DxgkInterface;
    if (DxgkInterface && DxgkInterface->DxgkCbNotifyInterrupt) {
      pthread_mutex_lock(&rec_lock);
      rec_port_notify = DxgkInterface->DxgkCbNotifyInterrupt;
      rec_port_get_handle_data = DxgkInterface->DxgkCbGetHandleData;
      given = &rec_interfaces[rec_next_interface++ % REC_MAX_INTERFACES];
      *given = *DxgkInterface;
      given->DxgkCbNotifyInterrupt = rec_notify;
      pthread_mutex_unlock(&rec_lock);
    }
    status = rec_inner.DxgkDdiStartDevice(MiniportDeviceContext, DxgkStartInfo, given,
                                          NumberOfVideoPresentSources, NumberOfChildren);
  }
  /* .device: the port's DeviceHandle, which fence completions name. */
  rec_call call = {.ddi = REC_START_DEVICE, .status = status, .injected = injected,
                   .adapter = MiniportDeviceContext,
                   .device = DxgkInterface ? DxgkInterface->DeviceHandle : NULL};
  rec_append(&call);
  return status;
}

static DXGKDDI_STOP_DEVICE rec_stop_device;
static NTSTATUS APIENTRY rec_stop_device(const PVOID MiniportDeviceContext) {
  NTSTATUS status;
  bool injected = rec_take_failure(REC_STOP_DEVICE, &status);
  if (!injected) status = rec_inner.DxgkDdiStopDevice(MiniportDeviceContext);
  rec_call call = {.ddi = REC_STOP_DEVICE, .status = status, .injected = injected,
                   .adapter = MiniportDeviceContext};
  rec_append(&call);
  return status;
}

static DXGKDDI_REMOVE_DEVICE rec_remove_device;
static NTSTATUS APIENTRY rec_remove_device(const PVOID MiniportDeviceContext) {
  rec_call call = {.ddi = REC_REMOVE_DEVICE, .adapter = MiniportDeviceContext};
  size_t entry = rec_append(&call);
  NTSTATUS status;
  bool injected = rec_take_failure(REC_REMOVE_DEVICE, &status);
  if (!injected) status = rec_inner.DxgkDdiRemoveDevice(MiniportDeviceContext);
  rec_set_outcome(entry, status, injected);
  return status;
}

static DXGKDDI_QUERYADAPTERINFO rec_query_adapter_info;
static NTSTATUS APIENTRY rec_query_adapter_info(const HANDLE hAdapter,
                                                const DXGKARG_QUERYADAPTERINFO *pQueryAdapterInfo) {
  NTSTATUS status;
  bool injected = rec_take_failure(REC_QUERY_ADAPTER_INFO, &status);
  if (!injected) status = rec_inner.DxgkDdiQueryAdapterInfo(hAdapter, pQueryAdapterInfo);
  pthread_mutex_lock(&rec_lock);
  rec_bad_segments kind = rec_segments;
  pthread_mutex_unlock(&rec_lock);
  if (!injected && NT_SUCCESS(status) && kind != REC_SEGMENTS_OK && pQueryAdapterInfo &&
      pQueryAdapterInfo->Type == DXGKQAITYPE_QUERYSEGMENT && pQueryAdapterInfo->pOutputData) {
    DXGK_QUERYSEGMENTOUT *out = pQueryAdapterInfo->pOutputData;
    DXGK_SEGMENTDESCRIPTOR *d = out->pSegmentDescriptor;
    injected = true;
    switch (kind) {
    case REC_SEGMENTS_NONE: out->NbSegment = 0; break;
    case REC_SEGMENTS_TOO_MANY: out->NbSegment = DXGK_MAX_SEGMENTS + 1; break;
    case REC_SEGMENTS_COUNT_CHANGES: if (d) out->NbSegment = 1; break;
    case REC_SEGMENTS_BAD_PAGE_SIZE: if (d) d[1].AlPageSize = 3000; break;
    case REC_SEGMENTS_NOT_PAGE_MULTIPLE: if (d) d[1].Size = d[1].Size / 2 + 512; break;
    case REC_SEGMENTS_ZERO_SIZE: if (d) d[0].Size = 0; break;
    case REC_SEGMENTS_OK: break;
    }
  }
  rec_call call = {.ddi = REC_QUERY_ADAPTER_INFO, .status = status, .injected = injected,
                   .adapter = hAdapter};
  rec_append(&call);
  return status;
}

static DXGKDDI_CREATEDEVICE rec_create_device;
static NTSTATUS APIENTRY rec_create_device(const HANDLE hAdapter, DXGKARG_CREATEDEVICE *pCreateDevice) {
  uint32_t port_handle = pCreateDevice ? (uint32_t)(uintptr_t)pCreateDevice->hDevice : 0;
  NTSTATUS status;
  bool injected = rec_take_failure(REC_CREATE_DEVICE, &status);
  if (!injected) status = rec_inner.DxgkDdiCreateDevice(hAdapter, pCreateDevice);
  if (!injected && NT_SUCCESS(status)) {
    pthread_mutex_lock(&rec_lock);
    bool make_null = rec_device_null_armed;
    rec_device_null_armed = false;
    pthread_mutex_unlock(&rec_lock);
    if (make_null) {
      rec_inner.DxgkDdiDestroyDevice(pCreateDevice->hDevice);
      pCreateDevice->hDevice = NULL;
      injected = true;
    }
  }
  rec_call call = {.ddi = REC_CREATE_DEVICE, .status = status, .injected = injected,
                   .adapter = hAdapter, .port_handle = port_handle};
  if (NT_SUCCESS(status)) call.device = pCreateDevice->hDevice;
  rec_append(&call);
  return status;
}

static DXGKDDI_DESTROYDEVICE rec_destroy_device;
static NTSTATUS APIENTRY rec_destroy_device(const HANDLE hDevice) {
  rec_call call = {.ddi = REC_DESTROY_DEVICE, .device = hDevice};
  size_t entry = rec_append(&call);
  NTSTATUS status;
  bool injected = rec_take_failure(REC_DESTROY_DEVICE, &status);
  if (!injected) status = rec_inner.DxgkDdiDestroyDevice(hDevice);
  rec_set_outcome(entry, status, injected);
  return status;
}

static DXGKDDI_CREATEALLOCATION rec_create_allocation;
static NTSTATUS APIENTRY rec_create_allocation(const HANDLE hAdapter,
                                               DXGKARG_CREATEALLOCATION *pCreateAllocation) {
  DXGKARG_CREATEALLOCATION *args = pCreateAllocation;
  HANDLE resource_in = args ? args->hResource : NULL;
  NTSTATUS status;
  bool injected = rec_take_failure(REC_CREATE_ALLOCATION, &status);
  if (!injected) {
    status = rec_inner.DxgkDdiCreateAllocation(hAdapter, args);
    if (NT_SUCCESS(status)) {
      pthread_mutex_lock(&rec_lock);
      bool edit_now = rec_edit_armed;
      uint32_t index = rec_edit_index;
      rec_create_edit *edit = rec_edit;
      rec_edit_armed = false;
      pthread_mutex_unlock(&rec_lock);
      for (uint32_t i = 0; edit_now && i < args->NumAllocations; i++) {
        if (index != REC_ALL && index != i) continue;
        DXGK_ALLOCATIONINFO *info = &args->pAllocationInfo[i];
        HANDLE made = info->hAllocation;
        edit(info);
        injected = true;
        if (made != NULL && info->hAllocation == NULL) {
          /* The port never hears of it: take it back, so the miniport holds what it was told. */
          DXGKARG_DESTROYALLOCATION destroy = {.NumAllocations = 1, .pAllocationList = &made,
                                               .hResource = args->hResource};
          NTSTATUS destroyed = rec_inner.DxgkDdiDestroyAllocation(hAdapter, &destroy);
          if (!NT_SUCCESS(destroyed))
            rec_die("could not take back allocation %p: %s", made, al_status_name(destroyed));
        }
      }
    }
  }
  rec_call call = {.ddi = REC_CREATE_ALLOCATION, .status = status, .injected = injected,
                   .adapter = hAdapter, .resource_in = resource_in};
  HANDLE *made = NULL;
  if (args) {
    call.flags = args->Flags.Value;
    call.count = args->NumAllocations;
    if (NT_SUCCESS(status)) {
      call.resource_out = args->hResource;
      made = malloc((args->NumAllocations + 1) * sizeof *made);
      if (made == NULL) rec_die("out of memory");
      for (uint32_t i = 0; i < args->NumAllocations; i++) made[i] = args->pAllocationInfo[i].hAllocation;
      call.handles = made;
    }
  }
  rec_append(&call);
  free(made);
  return status;
}

static DXGKDDI_OPENALLOCATIONINFO rec_open_allocation;
static NTSTATUS APIENTRY rec_open_allocation(const HANDLE hDevice,
                                             const DXGKARG_OPENALLOCATION *pOpenAllocation) {
  const DXGKARG_OPENALLOCATION *args = pOpenAllocation;
  const uint32_t n = args ? args->NumAllocations : 0;
  HANDLE *resolved = calloc(n + 1, sizeof *resolved);
  D3DKMT_HANDLE *port_handles = calloc(n + 1, sizeof *port_handles);
  HANDLE *bindings = calloc(n + 1, sizeof *bindings);
  if (!resolved || !port_handles || !bindings) rec_die("out of memory");
  pthread_mutex_lock(&rec_lock);
  PDXGKCB_GETHANDLEDATA get_handle_data = rec_port_get_handle_data;
  pthread_mutex_unlock(&rec_lock);
  for (uint32_t i = 0; i < n && args->pOpenAllocation; i++) {
    port_handles[i] = args->pOpenAllocation[i].hAllocation;
    DXGKARGCB_GETHANDLEDATA query;
    memset(&query, 0, sizeof query);
    query.hObject = port_handles[i];
    query.Type = DXGK_HANDLE_ALLOCATION;
    resolved[i] = get_handle_data ? get_handle_data(&query) : NULL;
  }
  NTSTATUS status;
  bool injected = rec_take_failure(REC_OPEN_ALLOCATION, &status);
  if (!injected) {
    status = rec_inner.DxgkDdiOpenAllocation(hDevice, args);
    if (NT_SUCCESS(status)) {
      pthread_mutex_lock(&rec_lock);
      bool null_now = rec_open_null_armed && rec_open_null_index < n;
      uint32_t index = rec_open_null_index;
      if (null_now) rec_open_null_armed = false;
      pthread_mutex_unlock(&rec_lock);
      if (null_now) {
        HANDLE binding = args->pOpenAllocation[index].hDeviceSpecificAllocation;
        DXGKARG_CLOSEALLOCATION close = {.NumAllocations = 1, .pOpenHandleList = &binding};
        NTSTATUS closed = rec_inner.DxgkDdiCloseAllocation(hDevice, &close);
        if (!NT_SUCCESS(closed)) rec_die("could not take back binding %p: %s", binding, al_status_name(closed));
        args->pOpenAllocation[index].hDeviceSpecificAllocation = NULL;
        injected = true;
      }
      for (uint32_t i = 0; i < n; i++) bindings[i] = args->pOpenAllocation[i].hDeviceSpecificAllocation;
    }
  }
  rec_call call = {.ddi = REC_OPEN_ALLOCATION, .status = status, .injected = injected,
                   .device = hDevice, .count = n, .allocations = resolved,
                   .port_handles = port_handles, .handles = NT_SUCCESS(status) ? bindings : NULL};
  if (args) call.flags = args->Flags.Value;
  rec_append(&call);
  free(resolved);
  free(port_handles);
  free(bindings);
  return status;
}

static DXGKDDI_CLOSEALLOCATION rec_close_allocation;
static NTSTATUS APIENTRY rec_close_allocation(const HANDLE hDevice,
                                              const DXGKARG_CLOSEALLOCATION *pCloseAllocation) {
  rec_call call = {.ddi = REC_CLOSE_ALLOCATION, .device = hDevice};
  if (pCloseAllocation) {
    call.count = pCloseAllocation->NumAllocations;
    call.handles = (HANDLE *)pCloseAllocation->pOpenHandleList;
  }
  size_t entry = rec_append(&call);
  NTSTATUS status;
  bool injected = rec_take_failure(REC_CLOSE_ALLOCATION, &status);
  if (!injected) status = rec_inner.DxgkDdiCloseAllocation(hDevice, pCloseAllocation);
  rec_set_outcome(entry, status, injected);
  return status;
}

static DXGKDDI_DESTROYALLOCATION rec_destroy_allocation;
static NTSTATUS APIENTRY rec_destroy_allocation(const HANDLE hAdapter,
                                                const DXGKARG_DESTROYALLOCATION *pDestroyAllocation) {
  rec_call call = {.ddi = REC_DESTROY_ALLOCATION, .adapter = hAdapter};
  if (pDestroyAllocation) {
    call.count = pDestroyAllocation->NumAllocations;
    call.handles = (HANDLE *)pDestroyAllocation->pAllocationList;
    call.resource_in = pDestroyAllocation->hResource;
    call.flags = pDestroyAllocation->Flags.Value;
  }
  size_t entry = rec_append(&call);
  NTSTATUS status;
  bool injected = rec_take_failure(REC_DESTROY_ALLOCATION, &status);
  if (!injected) status = rec_inner.DxgkDdiDestroyAllocation(hAdapter, pDestroyAllocation);
  rec_set_outcome(entry, status, injected);
  return status;
}

static DXGKDDI_SUBMITCOMMAND rec_submit_command;
static NTSTATUS APIENTRY rec_submit_command(const HANDLE hAdapter,
                                            const DXGKARG_SUBMITCOMMAND *pSubmitCommand) {
  const DXGKARG_SUBMITCOMMAND *args = pSubmitCommand;
  const uint32_t n = args ? args->AlAllocationListSize : 0;
  HANDLE *bindings = calloc(n + 1, sizeof *bindings);
  uint32_t *ids = calloc(n + 1, sizeof *ids);
  uint64_t *offsets = calloc(n + 1, sizeof *offsets);
  if (!bindings || !ids || !offsets) rec_die("out of memory");
  for (uint32_t i = 0; i < n && args->pAlAllocationList; i++) {
    bindings[i] = args->pAlAllocationList[i].hDeviceSpecificAllocation;
    ids[i] = args->pAlAllocationList[i].SegmentId;
    offsets[i] = (uint64_t)args->pAlAllocationList[i].PhysicalAddress.QuadPart;
  }
  NTSTATUS status;
  bool injected = rec_take_failure(REC_SUBMIT_COMMAND, &status);
  /* Recorded before forwarding, so the submission precedes its completion in the log. */
  rec_call call = {.ddi = REC_SUBMIT_COMMAND, .injected = injected, .adapter = hAdapter,
                   .count = n, .handles = bindings, .segment_ids = ids, .segment_offsets = offsets};
  if (args) {
    call.device = args->hContext;
    call.fence = args->SubmissionFenceId;
    call.flags = args->Flags.Value;
  }
  size_t entry = rec_append(&call);
  if (!injected) status = rec_inner.DxgkDdiSubmitCommand(hAdapter, pSubmitCommand);
  rec_set_outcome(entry, status, injected);
  free(bindings);
  free(ids);
  free(offsets);
  return status;
}

static DXGKDDI_BUILDPAGINGBUFFER rec_build_paging_buffer;
static NTSTATUS APIENTRY rec_build_paging_buffer(const HANDLE hAdapter,
                                                 DXGKARG_BUILDPAGINGBUFFER *pBuildPagingBuffer) {
  NTSTATUS status;
  bool injected = rec_take_failure(REC_BUILD_PAGING_BUFFER, &status);
  if (!injected) status = rec_inner.DxgkDdiBuildPagingBuffer(hAdapter, pBuildPagingBuffer);
  rec_call call = {.ddi = REC_BUILD_PAGING_BUFFER, .status = status, .injected = injected,
                   .adapter = hAdapter};
  HANDLE allocations[2] = {NULL, NULL};
  uint32_t ids[2] = {0, 0};
  uint64_t offsets[2] = {0, 0};
  if (pBuildPagingBuffer) {
    const DXGKARG_BUILDPAGINGBUFFER *args = pBuildPagingBuffer;
    call.flags = (uint32_t)args->Operation;
    if (args->Operation == DXGK_OPERATION_FILL) {
      allocations[0] = args->Fill.hAllocation;
      ids[0] = args->Fill.Destination.SegmentId;
      offsets[0] = (uint64_t)args->Fill.Destination.SegmentAddress.QuadPart;
      call.count = 1;
    } else if (args->Operation == DXGK_OPERATION_TRANSFER) {
      allocations[0] = allocations[1] = args->Transfer.hAllocation;
      ids[0] = args->Transfer.Source.SegmentId;
      offsets[0] = (uint64_t)args->Transfer.Source.SegmentAddress.QuadPart;
      ids[1] = args->Transfer.Destination.SegmentId;
      offsets[1] = (uint64_t)args->Transfer.Destination.SegmentAddress.QuadPart;
      call.count = 2;
    }
    call.handles = allocations;
    call.segment_ids = ids;
    call.segment_offsets = offsets;
  }
  rec_append(&call);
  return status;
}

static ALDDI_RUN_ENGINE rec_run_engine;
static NTSTATUS APIENTRY rec_run_engine(const HANDLE hAdapter, UINT MaxSubmissions, UINT *pCompleted) {
  NTSTATUS status;
  bool injected = rec_take_failure(REC_RUN_ENGINE, &status);
  if (injected) {
    if (pCompleted) *pCompleted = 0;
  } else {
    status = rec_inner.AlDdiRunEngine(hAdapter, MaxSubmissions, pCompleted);
  }
  rec_call call = {.ddi = REC_RUN_ENGINE, .status = status, .injected = injected,
                   .adapter = hAdapter, .fence = pCompleted ? *pCompleted : 0};
  rec_append(&call);
  return status;
}

static ALDDI_QUERY_LIVE_OBJECTS rec_query_live_objects;
static NTSTATUS APIENTRY rec_query_live_objects(const HANDLE hAdapter, ALDDI_LIVE_OBJECTS *pLiveObjects) {
  NTSTATUS status;
  bool injected = rec_take_failure(REC_QUERY_LIVE_OBJECTS, &status);
  if (!injected) status = rec_inner.AlDdiQueryLiveObjects(hAdapter, pLiveObjects);
  rec_call call = {.ddi = REC_QUERY_LIVE_OBJECTS, .status = status, .injected = injected,
                   .adapter = hAdapter};
  rec_append(&call);
  return status;
}

void recording_table(DRIVER_INITIALIZATION_DATA *out) {
  (void)recording_inner_table();
  memset(out, 0, sizeof *out);
  out->Version = rec_inner.Version;
  out->DxgkDdiAddDevice = rec_add_device;
  out->DxgkDdiStartDevice = rec_start_device;
  out->DxgkDdiStopDevice = rec_stop_device;
  out->DxgkDdiRemoveDevice = rec_remove_device;
  out->DxgkDdiQueryAdapterInfo = rec_query_adapter_info;
  out->DxgkDdiCreateDevice = rec_create_device;
  out->DxgkDdiDestroyDevice = rec_destroy_device;
  out->DxgkDdiCreateAllocation = rec_create_allocation;
  out->DxgkDdiDestroyAllocation = rec_destroy_allocation;
  out->DxgkDdiOpenAllocation = rec_open_allocation;
  out->DxgkDdiCloseAllocation = rec_close_allocation;
  out->DxgkDdiSubmitCommand = rec_submit_command;
  /* Optional DDIs: wrapped only when the inner miniport has them. */
  out->DxgkDdiBuildPagingBuffer = rec_inner.DxgkDdiBuildPagingBuffer ? rec_build_paging_buffer : NULL;
  out->AlDdiRunEngine = rec_inner.AlDdiRunEngine ? rec_run_engine : NULL;
  out->AlDdiQueryLiveObjects = rec_inner.AlDdiQueryLiveObjects ? rec_query_live_objects : NULL;
}

NTSTATUS RecordingMiniportDriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath) {
  DRIVER_INITIALIZATION_DATA table;
  recording_table(&table);
  return DxgkInitialize(DriverObject, RegistryPath, &table);
}

/* ---- The contract checker --------------------------------------------------------------------- */

typedef struct ck_object {
  HANDLE key;
  HANDLE adapter;   /* the miniport adapter it belongs to (NULL when unknown) */
  HANDLE owner;     /* allocation: its resource (NULL: none); binding: its device */
  HANDLE target;    /* binding: its allocation */
  uint32_t count;   /* allocation: open bindings; resource: allocations; device: bindings */
  uint64_t fence;   /* allocation/binding: last fence of work that referenced it */
  bool opened;      /* allocation: Open(Create) has happened */
  uint64_t stamp;   /* duplicate detection within one call */
} ck_object;

typedef struct ck_set {
  ck_object *items;
  size_t count, capacity;
} ck_set;

/* A device's partial close of a resource: the allocations it closed (must be destroyed before
 * that device closes anything else of the resource). */
typedef struct ck_partial {
  HANDLE device, resource, allocation;
} ck_partial;

#define CK_MAX_ADAPTERS 64
typedef struct ck_adapter {
  HANDLE miniport; /* hAdapter */
  HANDLE port;     /* the DeviceHandle of its fence completions */
  uint64_t completed;
} ck_adapter;

typedef struct ck_state {
  ck_set devices, resources, allocations, bindings;
  ck_partial *partials;
  size_t partial_count, partial_capacity;
  ck_adapter adapters[CK_MAX_ADAPTERS];
  size_t adapter_count;
  uint64_t stamp;
  char *msg;
  size_t cap;
  size_t entry;
} ck_state;

static ck_object *ck_find(ck_set *set, HANDLE key) {
  if (key == NULL) return NULL;
  for (size_t i = set->count; i-- > 0;)
    if (set->items[i].key == key) return &set->items[i];
  return NULL;
}

static ck_object *ck_add(ck_set *set, HANDLE key) {
  if (set->count == set->capacity) {
    set->capacity = set->capacity ? set->capacity * 2 : 64;
    set->items = realloc(set->items, set->capacity * sizeof *set->items);
    if (set->items == NULL) rec_die("out of memory");
  }
  ck_object *object = &set->items[set->count++];
  memset(object, 0, sizeof *object);
  object->key = key;
  return object;
}

static void ck_remove(ck_set *set, HANDLE key) {
  ck_object *object = ck_find(set, key);
  if (object) *object = set->items[--set->count];
}

/* The completed fence of the miniport adapter @miniport. */
static uint64_t ck_completed(const ck_state *s, HANDLE miniport) {
  for (size_t i = 0; i < s->adapter_count; i++)
    if (s->adapters[i].miniport == miniport) return s->adapters[i].completed;
  return 0;
}

static bool ck_fail(ck_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool ck_fail(ck_state *s, const char *fmt, ...) {
  if (s->msg && s->cap) {
    int used = snprintf(s->msg, s->cap, "log entry #%zu: ", s->entry);
    if (used < 0) used = 0;
    if ((size_t)used < s->cap) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(s->msg + used, s->cap - (size_t)used, fmt, ap);
      va_end(ap);
    }
  }
  return false;
}

/* How many live bindings @device has of allocations of @resource. */
static uint32_t ck_device_bindings_of(ck_state *s, HANDLE device, HANDLE resource) {
  uint32_t count = 0;
  for (size_t i = 0; i < s->bindings.count; i++) {
    ck_object *b = &s->bindings.items[i];
    if (b->owner != device) continue;
    ck_object *a = ck_find(&s->allocations, b->target);
    if (a && a->owner == resource) count++;
  }
  return count;
}

static bool ck_close(ck_state *s, const rec_call *c, bool fences) {
  const uint64_t stamp = ++s->stamp;
  if (ck_find(&s->devices, c->device) == NULL)
    return ck_fail(s, "CloseAllocation on device %p, which is not live", c->device);
  for (uint32_t i = 0; i < c->count; i++) {
    ck_object *b = ck_find(&s->bindings, c->handles[i]);
    if (b == NULL) return ck_fail(s, "rule 4: binding %p (entry %u) closed, but it is not open", c->handles[i], i);
    if (b->owner != c->device)
      return ck_fail(s, "rule 4: binding %p of device %p closed on device %p", b->key, b->owner, c->device);
    if (b->stamp == stamp) return ck_fail(s, "rule 4: binding %p listed twice in one close", b->key);
    b->stamp = stamp;
    const uint64_t completed = ck_completed(s, ck_find(&s->devices, c->device)->adapter);
    if (fences && b->fence > completed)
      return ck_fail(s, "rule 6: binding %p closed while fence %" PRIu64 " that uses it has not signalled (completed %" PRIu64 ")",
                     b->key, b->fence, completed);
  }
  /* Rule 4's one-call rule, per resource touched. The resource of every listed binding is
   * looked up once (a close may list a whole resource of AL_MAX_ALLOCATIONS_PER_CALL). */
  HANDLE *targets = calloc(c->count + 1, sizeof *targets);
  HANDLE *resources = calloc(c->count + 1, sizeof *resources);
  if (targets == NULL || resources == NULL) rec_die("out of memory");
  bool ok = true;
  for (uint32_t i = 0; i < c->count && ok; i++) {
    ck_object *b = ck_find(&s->bindings, c->handles[i]);
    ck_object *a = ck_find(&s->allocations, b->target);
    if (a == NULL) ok = ck_fail(s, "binding %p names allocation %p, which is gone", b->key, b->target);
    else {
      targets[i] = b->target;
      resources[i] = a->owner;
    }
  }
  for (uint32_t i = 0; i < c->count && ok; i++) {
    HANDLE resource = resources[i];
    if (resource == NULL) continue;
    bool first_of_resource = true;
    for (uint32_t k = 0; k < i && first_of_resource; k++)
      if (resources[k] == resource) first_of_resource = false;
    if (!first_of_resource) continue;
    for (size_t p = 0; p < s->partial_count && ok; p++) {
      const ck_partial *partial = &s->partials[p];
      if (partial->device == c->device && partial->resource == resource &&
          ck_find(&s->allocations, partial->allocation) != NULL)
        ok = ck_fail(s, "rule 4: bindings of resource %p on device %p closed in several calls "
                     "(allocation %p was closed earlier and is still live)",
                     resource, c->device, partial->allocation);
    }
    if (!ok) break;
    /* Forget old marks of this (device, resource). */
    size_t kept = 0;
    for (size_t p = 0; p < s->partial_count; p++)
      if (!(s->partials[p].device == c->device && s->partials[p].resource == resource))
        s->partials[kept++] = s->partials[p];
    s->partial_count = kept;
    uint32_t in_call = 0;
    for (uint32_t k = i; k < c->count; k++) in_call += resources[k] == resource;
    if (in_call < ck_device_bindings_of(s, c->device, resource)) {
      for (uint32_t k = i; k < c->count; k++) {
        if (resources[k] != resource) continue;
        if (s->partial_count == s->partial_capacity) {
          s->partial_capacity = s->partial_capacity ? s->partial_capacity * 2 : 64;
          s->partials = realloc(s->partials, s->partial_capacity * sizeof *s->partials);
          if (s->partials == NULL) rec_die("out of memory");
        }
        s->partials[s->partial_count++] = (ck_partial){c->device, resource, targets[k]};
      }
    }
  }
  free(targets);
  free(resources);
  if (!ok) return false;
  if (!NT_SUCCESS(c->status) && !c->injected)
    return ck_fail(s, "CloseAllocation failed: %s", al_status_name(c->status));
  for (uint32_t i = 0; i < c->count; i++) {
    ck_object *b = ck_find(&s->bindings, c->handles[i]);
    ck_object *a = ck_find(&s->allocations, b->target);
    ck_object *d = ck_find(&s->devices, c->device);
    a->count--;
    d->count--;
    ck_remove(&s->bindings, c->handles[i]);
  }
  return true;
}

static bool ck_destroy(ck_state *s, const rec_call *c, bool fences) {
  const uint64_t stamp = ++s->stamp;
  const bool destroy_resource = c->flags & 1u;
  ck_object *resource = NULL;
  if (destroy_resource) {
    resource = ck_find(&s->resources, c->resource_in);
    if (resource == NULL) return ck_fail(s, "rule 5: DestroyResource of %p, which is not live", c->resource_in);
    if (resource->count != c->count)
      return ck_fail(s, "rule 5: DestroyResource of %p lists %u allocations; it has %u", c->resource_in,
                     c->count, resource->count);
  }
  for (uint32_t i = 0; i < c->count; i++) {
    ck_object *a = ck_find(&s->allocations, c->handles[i]);
    if (a == NULL) return ck_fail(s, "rule 5: allocation %p (entry %u) destroyed, but it is not live", c->handles[i], i);
    if (a->stamp == stamp) return ck_fail(s, "rule 5: allocation %p listed twice in one destroy", a->key);
    a->stamp = stamp;
    if (a->count != 0)
      return ck_fail(s, "rule 4: allocation %p destroyed while %u bindings of it are open", a->key, a->count);
    if (a->owner != c->resource_in)
      return ck_fail(s, "rule 5: allocation %p of resource %p destroyed as part of resource %p", a->key,
                     a->owner, c->resource_in);
    if (a->adapter != c->adapter)
      return ck_fail(s, "allocation %p of adapter %p destroyed on adapter %p", a->key, a->adapter, c->adapter);
    const uint64_t completed = ck_completed(s, c->adapter);
    if (fences && a->fence > completed)
      return ck_fail(s, "rule 6: allocation %p destroyed while fence %" PRIu64 " that uses it has not signalled (completed %" PRIu64 ")",
                     a->key, a->fence, completed);
  }
  if (!NT_SUCCESS(c->status) && !c->injected)
    return ck_fail(s, "DestroyAllocation failed: %s", al_status_name(c->status));
  for (uint32_t i = 0; i < c->count; i++) {
    ck_object *a = ck_find(&s->allocations, c->handles[i]);
    ck_object *r = ck_find(&s->resources, a->owner);
    if (r) r->count--;
    ck_remove(&s->allocations, c->handles[i]);
  }
  if (destroy_resource) ck_remove(&s->resources, c->resource_in);
  return true;
}

static bool ck_entry(ck_state *s, const rec_call *c, bool fences) {
  const bool ok = NT_SUCCESS(c->status);
  switch (c->ddi) {
  case REC_CREATE_DEVICE:
    if (!ok) return true;
    if (c->device == NULL) return c->injected ? true : ck_fail(s, "rule 7: CreateDevice returned NULL");
    if (ck_find(&s->devices, c->device)) return ck_fail(s, "device %p created twice", c->device);
    ck_add(&s->devices, c->device)->adapter = c->adapter;
    return true;
  case REC_DESTROY_DEVICE: {
    ck_object *d = ck_find(&s->devices, c->device);
    if (d == NULL) return ck_fail(s, "DestroyDevice of %p, which is not live", c->device);
    if (d->count) return ck_fail(s, "rule 7: device %p destroyed with %u bindings open", c->device, d->count);
    ck_remove(&s->devices, c->device);
    return true;
  }
  case REC_CREATE_ALLOCATION: {
    if (!ok) return true;
    HANDLE resource = NULL;
    if (c->flags & 1u) {
      if (c->resource_in) {
        if (!ck_find(&s->resources, c->resource_in))
          return ck_fail(s, "rule 1: allocations added to resource %p, which is not live", c->resource_in);
        resource = c->resource_in;
      } else if (c->resource_out) {
        if (ck_find(&s->resources, c->resource_out))
          return ck_fail(s, "rule 1: new resource %p is already live", c->resource_out);
        ck_add(&s->resources, c->resource_out)->adapter = c->adapter;
        resource = c->resource_out;
      }
    }
    for (uint32_t i = 0; i < c->count; i++) {
      HANDLE h = c->handles[i];
      if (h == NULL) {
        if (c->injected) continue;
        return ck_fail(s, "rule 1: NULL hAllocation for allocation %u", i);
      }
      if (ck_find(&s->allocations, h)) return ck_fail(s, "rule 1: hAllocation %p is already live", h);
      ck_object *a = ck_add(&s->allocations, h);
      a->owner = resource;
      a->adapter = c->adapter;
      if (resource) ck_find(&s->resources, resource)->count++;
    }
    return true;
  }
  case REC_OPEN_ALLOCATION: {
    ck_object *d = ck_find(&s->devices, c->device);
    if (d == NULL) return ck_fail(s, "rule 3: OpenAllocation on device %p, which is not live", c->device);
    const bool create = c->flags & 1u;
    const uint64_t stamp = ++s->stamp;
    for (uint32_t i = 0; i < c->count; i++) {
      ck_object *a = ck_find(&s->allocations, c->allocations[i]);
      if (a == NULL)
        return ck_fail(s, "rule 3: port handle 0x%08x (entry %u) resolves to %p, not a live allocation",
                       c->port_handles[i], i, c->allocations[i]);
      if (a->stamp == stamp) return ck_fail(s, "rule 3: allocation %p listed twice in one open", a->key);
      a->stamp = stamp;
      if (a->adapter != d->adapter)
        return ck_fail(s, "rule 3: allocation %p of adapter %p opened on a device of adapter %p", a->key,
                       a->adapter, d->adapter);
      if (create && a->opened)
        return ck_fail(s, "rule 3: Open(Create) of allocation %p, which was opened before", a->key);
      if (!create && !a->opened)
        return ck_fail(s, "rule 3: Open without Create of allocation %p before its Open(Create)", a->key);
      for (size_t k = 0; k < s->bindings.count; k++)
        if (s->bindings.items[k].owner == c->device && s->bindings.items[k].target == a->key)
          return ck_fail(s, "rule 3: allocation %p opened twice on device %p", a->key, c->device);
    }
    if (!ok) return true;
    for (uint32_t i = 0; i < c->count; i++) {
      HANDLE binding = c->handles[i];
      if (binding == NULL) {
        if (c->injected) continue;
        return ck_fail(s, "rule 3: NULL hDeviceSpecificAllocation for entry %u", i);
      }
      if (ck_find(&s->bindings, binding)) return ck_fail(s, "rule 3: binding %p is already live", binding);
      ck_object *b = ck_add(&s->bindings, binding);
      b->owner = c->device;
      b->target = c->allocations[i];
      ck_object *a = ck_find(&s->allocations, c->allocations[i]);
      a->count++;
      if (create) a->opened = true;
      ck_find(&s->devices, c->device)->count++;
    }
    return true;
  }
  case REC_CLOSE_ALLOCATION:
    return ck_close(s, c, fences);
  case REC_DESTROY_ALLOCATION:
    return ck_destroy(s, c, fences);
  case REC_SUBMIT_COMMAND:
    if (!ok) return true;
    for (uint32_t i = 0; i < c->count; i++) {
      ck_object *b = ck_find(&s->bindings, c->handles[i]);
      if (b == NULL) return ck_fail(s, "SubmitCommand lists binding %p, which is not open", c->handles[i]);
      if (b->owner != c->device)
        return ck_fail(s, "SubmitCommand on device %p lists binding %p of device %p", c->device, b->key, b->owner);
      if (c->fence > b->fence) b->fence = c->fence;
      ck_object *a = ck_find(&s->allocations, b->target);
      if (a && c->fence > a->fence) a->fence = c->fence;
    }
    return true;
  case REC_BUILD_PAGING_BUFFER:
    for (uint32_t i = 0; i < c->count; i++)
      if (ck_find(&s->allocations, c->handles[i]) == NULL)
        return ck_fail(s, "paging operation %u on allocation %p, which is not live", c->flags, c->handles[i]);
    return true;
  case REC_START_DEVICE:
    if (ok && s->adapter_count < CK_MAX_ADAPTERS)
      s->adapters[s->adapter_count++] = (ck_adapter){.miniport = c->adapter, .port = c->device};
    return true;
  case REC_NOTIFY_INTERRUPT:
    for (size_t i = s->adapter_count; i-- > 0;) {
      ck_adapter *a = &s->adapters[i];
      if (a->port != c->adapter) continue;
      if (c->fence <= a->completed)
        return ck_fail(s, "fence %" PRIu64 " reported after %" PRIu64, c->fence, a->completed);
      a->completed = c->fence;
      break;
    }
    return true;
  case REC_REMOVE_DEVICE:
    for (size_t i = 0; i < s->devices.count; i++)
      if (s->devices.items[i].adapter == c->adapter)
        return ck_fail(s, "RemoveDevice with device %p still live", s->devices.items[i].key);
    for (size_t i = 0; i < s->allocations.count; i++)
      if (s->allocations.items[i].adapter == c->adapter)
        return ck_fail(s, "RemoveDevice with allocation %p still live", s->allocations.items[i].key);
    for (size_t i = 0; i < s->resources.count; i++)
      if (s->resources.items[i].adapter == c->adapter)
        return ck_fail(s, "RemoveDevice with resource %p still live", s->resources.items[i].key);
    /* Its handles may be reused by the next adapter: forget it. */
    for (size_t i = 0; i < s->adapter_count; i++)
      if (s->adapters[i].miniport == c->adapter) s->adapters[i] = s->adapters[--s->adapter_count];
    return true;
  default:
    return true;
  }
}

bool recording_check_contract(bool fences, char *msg, size_t cap) {
  ck_state s;
  memset(&s, 0, sizeof s);
  s.msg = msg;
  s.cap = cap;
  if (msg && cap) msg[0] = '\0';
  pthread_mutex_lock(&rec_lock);
  bool ok = true;
  for (size_t i = 0; i < rec_log_count && ok; i++) {
    s.entry = i;
    ok = ck_entry(&s, &rec_log[i], fences);
  }
  pthread_mutex_unlock(&rec_lock);
  free(s.devices.items);
  free(s.resources.items);
  free(s.allocations.items);
  free(s.bindings.items);
  free(s.partials);
  return ok;
}
