/*
 * example_miniport_test.c — direct DDI tests of the example miniport.
 *
 * The test is its own tiny port: it defines DxgkInitialize (capturing the DDI table in the driver
 * object), a global fake handle table behind DxgkCbGetHandleData and a DxgkCbNotifyInterrupt that
 * records completed fences per adapter. It does not link core/. Every test makes its own adapter
 * and, on the way out, checks that the miniport's live counts are back to zero before removing it.
 * Expected allocation outputs come from a reference decoder written independently of the
 * miniport (it reads the wire format byte by byte).
 */
#include "al_test.h"
#include "alloclab/hw/example_miniport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB ((UINT64)1 << 20)

/* ---- The fake port: registration ------------------------------------------------------------- */

struct _DRIVER_OBJECT {
  DRIVER_INITIALIZATION_DATA ddi;
  bool registered;
};

NTSTATUS DxgkInitialize(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath,
                        PDRIVER_INITIALIZATION_DATA DriverInitializationData) {
  (void)RegistryPath;
  const DRIVER_INITIALIZATION_DATA *init = DriverInitializationData;
  if (!DriverObject || !init) return STATUS_INVALID_PARAMETER;
  if (init->Version != DXGKDDI_INTERFACE_VERSION || DriverObject->registered)
    return STATUS_GRAPHICS_DRIVER_MISMATCH;
  if (!init->DxgkDdiAddDevice || !init->DxgkDdiStartDevice || !init->DxgkDdiStopDevice ||
      !init->DxgkDdiRemoveDevice || !init->DxgkDdiQueryAdapterInfo || !init->DxgkDdiCreateDevice ||
      !init->DxgkDdiDestroyDevice || !init->DxgkDdiCreateAllocation ||
      !init->DxgkDdiDestroyAllocation || !init->DxgkDdiOpenAllocation ||
      !init->DxgkDdiCloseAllocation || !init->DxgkDdiSubmitCommand)
    return STATUS_INVALID_PARAMETER;
  DriverObject->ddi = *init;
  DriverObject->registered = true;
  return STATUS_SUCCESS;
}

/* ---- The fake port: handle table (DxgkCbGetHandleData) --------------------------------------- */

#define FAKE_HANDLE_MAX (1u << 16)

static pthread_mutex_t fake_handle_lock = PTHREAD_MUTEX_INITIALIZER;
static HANDLE fake_handles[FAKE_HANDLE_MAX];
static UINT fake_handle_count;
static atomic_uint fake_handle_bad_queries;

static void fake_handles_reset(void) {
  pthread_mutex_lock(&fake_handle_lock);
  memset(fake_handles, 0, sizeof fake_handles);
  fake_handle_count = 0;
  pthread_mutex_unlock(&fake_handle_lock);
  atomic_store(&fake_handle_bad_queries, 0);
}

/* Gives @object a port handle (1-based); 0 when the table is full. */
static D3DKMT_HANDLE fake_handle_register(HANDLE object) {
  pthread_mutex_lock(&fake_handle_lock);
  D3DKMT_HANDLE handle = 0;
  if (fake_handle_count < FAKE_HANDLE_MAX) {
    fake_handles[fake_handle_count++] = object;
    handle = fake_handle_count;
  }
  pthread_mutex_unlock(&fake_handle_lock);
  return handle;
}

static void fake_handle_forget(D3DKMT_HANDLE handle) {
  pthread_mutex_lock(&fake_handle_lock);
  if (handle != 0 && handle <= fake_handle_count) fake_handles[handle - 1] = NULL;
  pthread_mutex_unlock(&fake_handle_lock);
}

static VOID *APIENTRY fake_get_handle_data(const DXGKARGCB_GETHANDLEDATA *pData) {
  if (!pData || pData->Type != DXGK_HANDLE_ALLOCATION || pData->Flags.DeviceSpecific) {
    atomic_fetch_add(&fake_handle_bad_queries, 1);
    return NULL;
  }
  pthread_mutex_lock(&fake_handle_lock);
  HANDLE object = NULL;
  if (pData->hObject != 0 && pData->hObject <= fake_handle_count)
    object = fake_handles[pData->hObject - 1];
  pthread_mutex_unlock(&fake_handle_lock);
  return object;
}

/* ---- The fake port: adapters and completed fences (DxgkCbNotifyInterrupt) -------------------- */

#define FAKE_FENCE_MAX (1u << 15)

typedef struct fake_adapter {
  DRIVER_OBJECT driver;
  const DRIVER_INITIALIZATION_DATA *ddi;
  HANDLE ctx; /* the miniport's adapter context */
  EXAMPLE_HARDWARE_CONFIG config;
  bool skip_zero_check; /* set by tests that end with objects left on purpose */
  pthread_mutex_t lock;
  UINT fences[FAKE_FENCE_MAX]; /* completed fences in notification order */
  UINT fence_count;
  UINT bad_interrupts;
  void (*on_notify)(struct fake_adapter *fake, UINT fence);
} fake_adapter;

static VOID APIENTRY fake_notify_interrupt(const HANDLE hAdapter,
                                           const DXGKARGCB_NOTIFY_INTERRUPT_DATA *pArgs) {
  fake_adapter *fake = hAdapter;
  pthread_mutex_lock(&fake->lock);
  if (!pArgs || pArgs->InterruptType != DXGK_INTERRUPT_DMA_COMPLETED ||
      fake->fence_count == FAKE_FENCE_MAX) {
    fake->bad_interrupts++;
    pthread_mutex_unlock(&fake->lock);
    return;
  }
  UINT fence = pArgs->DmaCompleted.SubmissionFenceId;
  fake->fences[fake->fence_count++] = fence;
  pthread_mutex_unlock(&fake->lock);
  if (fake->on_notify) fake->on_notify(fake, fence);
}

static UINT fake_fence_count(fake_adapter *fake) {
  pthread_mutex_lock(&fake->lock);
  UINT count = fake->fence_count;
  pthread_mutex_unlock(&fake->lock);
  return count;
}

static EXAMPLE_HARDWARE_CONFIG config_default(void) {
  EXAMPLE_HARDWARE_CONFIG config = {EXAMPLE_HARDWARE_MAGIC, EXAMPLE_HARDWARE_DEFAULT_PAGE_SIZE,
                                    EXAMPLE_HARDWARE_DEFAULT_MEMORY_SEGMENT_SIZE,
                                    EXAMPLE_HARDWARE_DEFAULT_APERTURE_SEGMENT_SIZE};
  return config;
}

static EXAMPLE_HARDWARE_CONFIG config_64k(void) {
  EXAMPLE_HARDWARE_CONFIG config = {EXAMPLE_HARDWARE_MAGIC, 65536u, 32 * MiB, 48 * MiB};
  return config;
}

/* Registers the miniport and brings an adapter up (config NULL = defaults). Heap-allocated: the
 * fence record is large. */
static fake_adapter *fake_setup(const EXAMPLE_HARDWARE_CONFIG *config) {
  fake_handles_reset();
  fake_adapter *fake = calloc(1, sizeof *fake);
  assert_ptr_ne(fake, NULL, "calloc of the fake adapter");
  pthread_mutex_init(&fake->lock, NULL);
  fake->config = config ? *config : config_default();
  assert_status(ExampleMiniportDriverEntry(&fake->driver, NULL), STATUS_SUCCESS, "DriverEntry");
  fake->ddi = &fake->driver.ddi;
  DEVICE_OBJECT pdo = {config, config ? sizeof *config : 0};
  assert_status(fake->ddi->DxgkDdiAddDevice(&pdo, &fake->ctx), STATUS_SUCCESS, "AddDevice");
  assert_ptr_ne(fake->ctx, NULL, "AddDevice returns a context");
  DXGK_START_INFO start_info = {DXGKDDI_INTERFACE_VERSION, 1};
  DXGKRNL_INTERFACE iface = {sizeof iface, DXGKDDI_INTERFACE_VERSION, fake, fake_get_handle_data,
                             fake_notify_interrupt};
  ULONG sources = 99, children = 99;
  assert_status(fake->ddi->DxgkDdiStartDevice(fake->ctx, &start_info, &iface, &sources, &children),
                STATUS_SUCCESS, "StartDevice");
  expect_u64_eq(sources, 0, "no video present sources");
  expect_u64_eq(children, 0, "no children");
  return fake;
}

static ALDDI_LIVE_OBJECTS fake_live(fake_adapter *fake) {
  ALDDI_LIVE_OBJECTS live;
  memset(&live, 0xA5, sizeof live);
  expect_status(fake->ddi->AlDdiQueryLiveObjects(fake->ctx, &live), STATUS_SUCCESS,
                "QueryLiveObjects");
  return live;
}

/* Checker: the live counts equal @want; prints found versus expected. */
static bool live_is(fake_adapter *fake, ALDDI_LIVE_OBJECTS want, const char *when) {
  ALDDI_LIVE_OBJECTS got = fake_live(fake);
  if (got.Devices == want.Devices && got.Resources == want.Resources &&
      got.Allocations == want.Allocations && got.OpenAllocations == want.OpenAllocations &&
      got.HostBytes == want.HostBytes)
    return true;
  al_test_fail(__FILE__, __LINE__,
               "%s: live objects {devices %u, resources %u, allocations %u, bindings %u, bytes "
               "%" PRIu64 "}, expected {%u, %u, %u, %u, %" PRIu64 "}",
               when, got.Devices, got.Resources, got.Allocations, got.OpenAllocations,
               got.HostBytes, want.Devices, want.Resources, want.Allocations, want.OpenAllocations,
               want.HostBytes);
  return false;
}

static const ALDDI_LIVE_OBJECTS live_zero = {0, 0, 0, 0, 0};

static void fake_teardown(fake_adapter *fake) {
  if (!fake->skip_zero_check) live_is(fake, live_zero, "teardown: every object released");
  expect_u64_eq(fake->bad_interrupts, 0, "every interrupt was a DMA completion");
  expect_u64_eq(atomic_load(&fake_handle_bad_queries), 0, "every GetHandleData was well formed");
  expect_status(fake->ddi->DxgkDdiStopDevice(fake->ctx), STATUS_SUCCESS, "StopDevice");
  expect_status(fake->ddi->DxgkDdiRemoveDevice(fake->ctx), STATUS_SUCCESS, "RemoveDevice");
  pthread_mutex_destroy(&fake->lock);
  free(fake);
}

static HANDLE fake_create_device(fake_adapter *fake) {
  DXGK_DEVICEINFO info;
  DXGKARG_CREATEDEVICE args;
  memset(&args, 0, sizeof args);
  args.hDevice = (HANDLE)(uintptr_t)0x1234; /* in: the port's handle */
  args.pInfo = &info;
  assert_status(fake->ddi->DxgkDdiCreateDevice(fake->ctx, &args), STATUS_SUCCESS, "CreateDevice");
  assert_ptr_ne(args.hDevice, NULL, "CreateDevice returns a device");
  return args.hDevice;
}

static void fake_destroy_device(fake_adapter *fake, HANDLE device) {
  expect_status(fake->ddi->DxgkDdiDestroyDevice(device), STATUS_SUCCESS, "DestroyDevice");
}

/* Creates @n allocations described by @data (infos[i] get pointers to data[i]). */
static NTSTATUS fake_create(fake_adapter *fake, UINT n, EXAMPLE_ALLOCATION_DATA *data,
                            DXGK_ALLOCATIONINFO *infos, bool resource, HANDLE *inout_resource) {
  memset(infos, 0, n * sizeof *infos);
  for (UINT i = 0; i < n; i++) {
    infos[i].pPrivateDriverData = &data[i];
    infos[i].PrivateDriverDataSize = sizeof data[i];
  }
  DXGKARG_CREATEALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = n;
  args.pAllocationInfo = infos;
  args.Flags.Resource = resource;
  args.hResource = inout_resource ? *inout_resource : NULL;
  NTSTATUS status = fake->ddi->DxgkDdiCreateAllocation(fake->ctx, &args);
  if (inout_resource) *inout_resource = args.hResource;
  return status;
}

static NTSTATUS fake_destroy(fake_adapter *fake, UINT n, const HANDLE *allocations, HANDLE resource,
                             bool destroy_resource) {
  DXGKARG_DESTROYALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = n;
  args.pAllocationList = allocations;
  args.hResource = resource;
  args.Flags.DestroyResource = destroy_resource;
  return fake->ddi->DxgkDdiDestroyAllocation(fake->ctx, &args);
}

/* Destroys infos[0..n) one call. */
static void fake_destroy_infos(fake_adapter *fake, UINT n, const DXGK_ALLOCATIONINFO *infos) {
  HANDLE list[64];
  assert_true(n <= 64, "at most 64 at once");
  for (UINT i = 0; i < n; i++) list[i] = infos[i].hAllocation;
  expect_status(fake_destroy(fake, n, list, NULL, false), STATUS_SUCCESS, "DestroyAllocation");
}

static NTSTATUS fake_open(fake_adapter *fake, HANDLE device, UINT n, const D3DKMT_HANDLE *handles,
                          HANDLE *out_bindings, bool create) {
  DXGK_OPENALLOCATIONINFO infos[64];
  if (n > 64) return STATUS_INVALID_PARAMETER;
  memset(infos, 0, sizeof infos);
  for (UINT i = 0; i < n; i++) infos[i].hAllocation = handles[i];
  DXGKARG_OPENALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = n;
  args.pOpenAllocation = infos;
  args.Flags.Create = create;
  NTSTATUS status = fake->ddi->DxgkDdiOpenAllocation(device, &args);
  for (UINT i = 0; i < n; i++) out_bindings[i] = infos[i].hDeviceSpecificAllocation;
  return status;
}

static NTSTATUS fake_close(fake_adapter *fake, HANDLE device, UINT n, const HANDLE *bindings) {
  DXGKARG_CLOSEALLOCATION args = {n, bindings};
  return fake->ddi->DxgkDdiCloseAllocation(device, &args);
}

static NTSTATUS fake_submit(fake_adapter *fake, HANDLE device, UINT fence, UINT n,
                            const HANDLE *bindings) {
  DXGK_ALLOCATIONLIST list[16];
  if (n > 16) return STATUS_INVALID_PARAMETER;
  memset(list, 0, sizeof list);
  for (UINT i = 0; i < n; i++) list[i].hDeviceSpecificAllocation = bindings[i];
  DXGKARG_SUBMITCOMMAND args;
  memset(&args, 0, sizeof args);
  args.SubmissionFenceId = fence;
  args.hContext = device;
  args.pAlAllocationList = n ? list : NULL;
  args.AlAllocationListSize = n;
  return fake->ddi->DxgkDdiSubmitCommand(fake->ctx, &args);
}

static UINT fake_run(fake_adapter *fake, UINT max) {
  UINT completed = 0xFFFFFFFFu;
  expect_status(fake->ddi->AlDdiRunEngine(fake->ctx, max, &completed), STATUS_SUCCESS, "RunEngine");
  return completed;
}

/* ---- Reference model of the private data (independent of the miniport) ----------------------- */

typedef struct ref_allocation {
  bool valid;
  UINT64 size;
  UINT supported;
  UINT eviction;
  UINT alignment;
  UINT priority;
  bool cpu_visible;
} ref_allocation;

static UINT64 ref_le(const unsigned char *bytes, int count) {
  UINT64 value = 0;
  for (int i = count - 1; i >= 0; i--) value = value << 8 | bytes[i];
  return value;
}

static ref_allocation ref_decode(const EXAMPLE_HARDWARE_CONFIG *config, const void *data,
                                 size_t size) {
  ref_allocation ref;
  memset(&ref, 0, sizeof ref);
  if (!data || size != 24) return ref;
  const unsigned char *bytes = data;
  UINT magic = (UINT)ref_le(bytes, 4), flags = (UINT)ref_le(bytes + 4, 4);
  UINT alignment = (UINT)ref_le(bytes + 8, 4), priority = (UINT)ref_le(bytes + 12, 4);
  UINT64 request = ref_le(bytes + 16, 8);
  if (magic != 0x414C4558u || flags > 7u || flags == 6u || flags == 7u) return ref;
  bool alignment_ok = alignment == 0;
  for (UINT shift = 0; shift <= 20; shift++) alignment_ok |= alignment == 1u << shift;
  if (!alignment_ok) return ref;
  bool memory = !(flags & 2u), aperture = !(flags & 4u);
  UINT64 page = memory && config->MemoryPageSize > 4096u ? config->MemoryPageSize : 4096u;
  UINT64 largest = 0;
  if (memory && config->MemorySegmentSize > largest) largest = config->MemorySegmentSize;
  if (aperture && config->ApertureSegmentSize > largest) largest = config->ApertureSegmentSize;
  if (request == 0 || request > largest) return ref;
  UINT64 rounded = request % page ? request + (page - request % page) : request;
  if (rounded > largest) return ref;
  ref.valid = true;
  ref.size = rounded;
  ref.supported = (memory ? 1u : 0u) | (aperture ? 2u : 0u);
  ref.eviction = memory ? 2u : 0u;
  ref.alignment = alignment;
  ref.priority = priority ? priority : 0x78000000u;
  ref.cpu_visible = flags & 1u;
  return ref;
}

/* Checker: @info holds the outputs @ref predicts and the rules of d3dkmddi.h. */
static bool check_allocation_info(const DXGK_ALLOCATIONINFO *info, const ref_allocation *ref,
                                  UINT64 request) {
  int failures = 0;
#define CHECK_(cond, ...)                                                                          \
  do {                                                                                             \
    if (!(cond)) failures += !al_test_fail(__FILE__, __LINE__, __VA_ARGS__);                       \
  } while (0)
  CHECK_(info->hAllocation != NULL, "hAllocation is NULL");
  CHECK_(info->Size == ref->size, "Size %zu, expected %" PRIu64, (size_t)info->Size, ref->size);
  CHECK_(info->Size >= request && info->Size % 4096 == 0,
         "Size %zu: not a 4 KiB multiple >= %" PRIu64, (size_t)info->Size, request);
  CHECK_(info->Alignment == ref->alignment, "Alignment %u, expected %u", info->Alignment,
         ref->alignment);
  CHECK_(info->PitchAlignedSize == 0, "PitchAlignedSize %zu", (size_t)info->PitchAlignedSize);
  CHECK_(info->SupportedWriteSegmentSet == ref->supported, "write set %#x, expected %#x",
         info->SupportedWriteSegmentSet, ref->supported);
  CHECK_(info->SupportedReadSegmentSet == ref->supported, "read set %#x, expected %#x",
         info->SupportedReadSegmentSet, ref->supported);
  CHECK_((info->SupportedWriteSegmentSet & ~3u) == 0 && info->SupportedWriteSegmentSet != 0,
         "write set %#x not a non-empty subset of {1,2}", info->SupportedWriteSegmentSet);
  CHECK_(info->EvictionSegmentSet == ref->eviction, "eviction set %#x, expected %#x",
         info->EvictionSegmentSet, ref->eviction);
  CHECK_((info->EvictionSegmentSet & ~2u) == 0, "eviction set %#x holds a non-aperture segment",
         info->EvictionSegmentSet);
  UINT ids[5] = {info->PreferredSegment.SegmentId0, info->PreferredSegment.SegmentId1,
                 info->PreferredSegment.SegmentId2, info->PreferredSegment.SegmentId3,
                 info->PreferredSegment.SegmentId4};
  UINT listed = 0;
  for (int i = 0; i < 5 && ids[i] != 0; i++) {
    CHECK_(info->SupportedWriteSegmentSet & (1u << (ids[i] - 1)),
           "preferred segment %u outside the supported set %#x", ids[i],
           info->SupportedWriteSegmentSet);
    listed |= 1u << (ids[i] - 1);
  }
  CHECK_(listed == ref->supported, "preferred segments %#x, expected %#x", listed, ref->supported);
  if (ref->supported == 3u)
    CHECK_(ids[0] == 1 && ids[1] == 2, "memory preferred first: %u, %u", ids[0], ids[1]);
  CHECK_(info->Flags.CpuVisible == ref->cpu_visible, "CpuVisible %u, expected %d",
         (UINT)info->Flags.CpuVisible, ref->cpu_visible);
  CHECK_((info->Flags.Value & ~1u) == 0, "unexpected allocation flags %#x", info->Flags.Value);
  CHECK_(info->AllocationPriority == ref->priority && info->AllocationPriority != 0,
         "priority %#x, expected %#x", info->AllocationPriority, ref->priority);
#undef CHECK_
  return failures == 0;
}

/* xorshift64*: the random tests' generator, seeded from al_test_seed(). */
static UINT64 rng_next(UINT64 *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * 0x2545F4914F6CDD1DULL;
}

/* ---- Registration and adapter bring-up ------------------------------------------------------- */

TEST(registration_fills_every_entry) {
  DRIVER_OBJECT driver;
  memset(&driver, 0, sizeof driver);
  assert_status(ExampleMiniportDriverEntry(&driver, NULL), STATUS_SUCCESS, "DriverEntry");
  const DRIVER_INITIALIZATION_DATA *ddi = &driver.ddi;
  expect_u64_eq(ddi->Version, DXGKDDI_INTERFACE_VERSION, "Version");
  expect_true(ddi->DxgkDdiAddDevice && ddi->DxgkDdiStartDevice && ddi->DxgkDdiStopDevice &&
                  ddi->DxgkDdiRemoveDevice && ddi->DxgkDdiQueryAdapterInfo &&
                  ddi->DxgkDdiCreateDevice && ddi->DxgkDdiDestroyDevice &&
                  ddi->DxgkDdiCreateAllocation && ddi->DxgkDdiDestroyAllocation &&
                  ddi->DxgkDdiOpenAllocation && ddi->DxgkDdiCloseAllocation &&
                  ddi->DxgkDdiSubmitCommand,
              "every required DDI is registered");
  expect_true(ddi->DxgkDdiBuildPagingBuffer && ddi->AlDdiRunEngine && ddi->AlDdiQueryLiveObjects,
              "the optional DDIs are registered too");
  /* The miniport holds no global state: a second driver object registers the same table. */
  DRIVER_OBJECT second;
  memset(&second, 0, sizeof second);
  expect_status(ExampleMiniportDriverEntry(&second, NULL), STATUS_SUCCESS, "second driver object");
  expect_true(memcmp(&second.ddi, &driver.ddi, sizeof driver.ddi) == 0, "same table");
  expect_status(ExampleMiniportDriverEntry(NULL, NULL), STATUS_INVALID_PARAMETER,
                "DxgkInitialize's answer is passed through");
}

TEST(add_device_rejects_bad_config) {
  DRIVER_OBJECT driver;
  memset(&driver, 0, sizeof driver);
  assert_status(ExampleMiniportDriverEntry(&driver, NULL), STATUS_SUCCESS, "DriverEntry");
  const DRIVER_INITIALIZATION_DATA *ddi = &driver.ddi;
  const EXAMPLE_HARDWARE_CONFIG good = config_default();
  struct {
    const char *what;
    EXAMPLE_HARDWARE_CONFIG config;
    SIZE_T size;
  } bad[] = {
      {"bad magic", {0x12345678u, 4096u, 64 * MiB, 64 * MiB}, sizeof good},
      {"size 0 with a config", good, 0},
      {"short size", good, sizeof good - 1},
      {"long size", good, sizeof good + 1},
      {"page size 0", {EXAMPLE_HARDWARE_MAGIC, 0, 64 * MiB, 64 * MiB}, sizeof good},
      {"page size 8192", {EXAMPLE_HARDWARE_MAGIC, 8192u, 64 * MiB, 64 * MiB}, sizeof good},
      {"page size 2 MiB", {EXAMPLE_HARDWARE_MAGIC, 2u << 20, 64 * MiB, 64 * MiB}, sizeof good},
      {"memory size 0", {EXAMPLE_HARDWARE_MAGIC, 4096u, 0, 64 * MiB}, sizeof good},
      {"aperture size 0", {EXAMPLE_HARDWARE_MAGIC, 4096u, 64 * MiB, 0}, sizeof good},
      {"memory not a page multiple",
       {EXAMPLE_HARDWARE_MAGIC, 65536u, 64 * MiB + 4096, 64 * MiB},
       sizeof good},
      {"aperture not a page multiple",
       {EXAMPLE_HARDWARE_MAGIC, 4096u, 64 * MiB, 64 * MiB + 512},
       sizeof good},
      {"memory too large",
       {EXAMPLE_HARDWARE_MAGIC, 4096u, EXAMPLE_SEGMENT_SIZE_MAX + 4096, 64 * MiB},
       sizeof good},
      {"aperture too large",
       {EXAMPLE_HARDWARE_MAGIC, 4096u, 64 * MiB, EXAMPLE_SEGMENT_SIZE_MAX * 2},
       sizeof good},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    DEVICE_OBJECT pdo = {&bad[i].config, bad[i].size};
    PVOID ctx = (PVOID)(uintptr_t)1;
    expect_status(ddi->DxgkDdiAddDevice(&pdo, &ctx), STATUS_INVALID_PARAMETER, "%s", bad[i].what);
    expect_ptr_eq(ctx, NULL, "%s: no context", bad[i].what);
  }
  DEVICE_OBJECT null_with_size = {NULL, sizeof good};
  PVOID ctx = NULL;
  expect_status(ddi->DxgkDdiAddDevice(&null_with_size, &ctx), STATUS_INVALID_PARAMETER,
                "NULL config with a size");
  expect_status(ddi->DxgkDdiAddDevice(NULL, &ctx), STATUS_INVALID_PARAMETER, "NULL PDO");
  DEVICE_OBJECT pdo = {NULL, 0};
  expect_status(ddi->DxgkDdiAddDevice(&pdo, NULL), STATUS_INVALID_PARAMETER, "NULL context out");
  /* The largest legal segments are accepted. */
  EXAMPLE_HARDWARE_CONFIG big = {EXAMPLE_HARDWARE_MAGIC, 65536u, EXAMPLE_SEGMENT_SIZE_MAX,
                                 EXAMPLE_SEGMENT_SIZE_MAX};
  DEVICE_OBJECT big_pdo = {&big, sizeof big};
  assert_status(ddi->DxgkDdiAddDevice(&big_pdo, &ctx), STATUS_SUCCESS, "1 TiB segments");
  expect_status(ddi->DxgkDdiRemoveDevice(ctx), STATUS_SUCCESS, "RemoveDevice without start");
}

TEST(start_device_checks_interface) {
  DRIVER_OBJECT driver;
  memset(&driver, 0, sizeof driver);
  assert_status(ExampleMiniportDriverEntry(&driver, NULL), STATUS_SUCCESS, "DriverEntry");
  const DRIVER_INITIALIZATION_DATA *ddi = &driver.ddi;
  DEVICE_OBJECT pdo = {NULL, 0};
  PVOID ctx = NULL;
  assert_status(ddi->DxgkDdiAddDevice(&pdo, &ctx), STATUS_SUCCESS, "AddDevice, defaults");
  DXGKRNL_INTERFACE no_cb = {sizeof no_cb, DXGKDDI_INTERFACE_VERSION, NULL, NULL, NULL};
  expect_status(ddi->DxgkDdiStartDevice(ctx, NULL, NULL, NULL, NULL), STATUS_INVALID_PARAMETER,
                "NULL interface");
  expect_status(ddi->DxgkDdiStartDevice(ctx, NULL, &no_cb, NULL, NULL), STATUS_INVALID_PARAMETER,
                "no callbacks");
  /* Not started: the engine and opens refuse. */
  UINT completed = 7;
  expect_status(ddi->AlDdiRunEngine(ctx, 1, &completed), STATUS_INVALID_PARAMETER,
                "RunEngine before StartDevice");
  DXGKARG_SUBMITCOMMAND submit;
  memset(&submit, 0, sizeof submit);
  expect_status(ddi->DxgkDdiSubmitCommand(ctx, &submit), STATUS_INVALID_PARAMETER,
                "SubmitCommand before StartDevice");
  DXGKRNL_INTERFACE iface = {sizeof iface, DXGKDDI_INTERFACE_VERSION, NULL, fake_get_handle_data,
                             fake_notify_interrupt};
  expect_status(ddi->DxgkDdiStartDevice(ctx, NULL, &iface, NULL, NULL), STATUS_SUCCESS,
                "StartDevice with NULL start info and counts");
  expect_status(ddi->DxgkDdiStartDevice(ctx, NULL, &iface, NULL, NULL), STATUS_INVALID_PARAMETER,
                "started twice");
  expect_status(ddi->DxgkDdiStopDevice(ctx), STATUS_SUCCESS, "StopDevice");
  expect_status(ddi->DxgkDdiStartDevice(ctx, NULL, &iface, NULL, NULL), STATUS_SUCCESS,
                "restart after StopDevice");
  expect_status(ddi->DxgkDdiStopDevice(NULL), STATUS_INVALID_HANDLE, "StopDevice(NULL)");
  expect_status(ddi->DxgkDdiRemoveDevice(NULL), STATUS_INVALID_HANDLE, "RemoveDevice(NULL)");
  expect_status(ddi->DxgkDdiRemoveDevice(ctx), STATUS_SUCCESS, "RemoveDevice");
}

/* ---- QueryAdapterInfo ------------------------------------------------------------------------ */

static void check_segments(fake_adapter *fake) {
  DXGK_QUERYSEGMENTOUT out;
  memset(&out, 0, sizeof out);
  DXGKARG_QUERYADAPTERINFO query;
  memset(&query, 0, sizeof query);
  query.Type = DXGKQAITYPE_QUERYSEGMENT;
  query.pOutputData = &out;
  query.OutputDataSize = sizeof out;
  assert_status(fake->ddi->DxgkDdiQueryAdapterInfo(fake->ctx, &query), STATUS_SUCCESS,
                "first call");
  assert_u64_eq(out.NbSegment, 2, "two segments");
  DXGK_SEGMENTDESCRIPTOR desc[2];
  memset(desc, 0xCC, sizeof desc);
  out.pSegmentDescriptor = desc;
  assert_status(fake->ddi->DxgkDdiQueryAdapterInfo(fake->ctx, &query), STATUS_SUCCESS,
                "second call");
  expect_u64_eq(out.NbSegment, 2, "two segments filled");
  expect_u64_eq(desc[0].Size, fake->config.MemorySegmentSize, "memory segment size");
  expect_u64_eq(desc[0].AlPageSize, fake->config.MemoryPageSize, "memory page size");
  expect_u64_eq(desc[0].Flags.Aperture, 0, "memory segment is not an aperture");
  expect_u64_eq(desc[0].Flags.Use64KBPages, fake->config.MemoryPageSize == 65536u,
                "Use64KBPages matches the page size");
  expect_u64_eq(desc[0].NbOfBanks, 0, "no banks");
  expect_ptr_eq(desc[0].pBankRangeTable, NULL, "no bank table");
  expect_u64_eq(desc[1].Size, fake->config.ApertureSegmentSize, "aperture segment size");
  expect_u64_eq(desc[1].AlPageSize, 4096, "aperture page size");
  expect_u64_eq(desc[1].Flags.Aperture, 1, "aperture flag");
  expect_u64_eq(desc[1].Flags.CpuVisible, 1, "aperture is CPU visible");
  expect_u64_eq(desc[1].NbOfBanks, 0, "no banks");
}

TEST(query_segments_two_calls) {
  fake_adapter *fake = fake_setup(NULL);
  check_segments(fake);
  fake_teardown(fake);
  EXAMPLE_HARDWARE_CONFIG config = config_64k();
  fake = fake_setup(&config);
  check_segments(fake);
  fake_teardown(fake);
}

TEST(query_segments_rejects_bad_arguments) {
  fake_adapter *fake = fake_setup(NULL);
  DXGK_QUERYSEGMENTOUT out;
  DXGK_SEGMENTDESCRIPTOR desc[3];
  DXGKARG_QUERYADAPTERINFO query;
  memset(&out, 0, sizeof out);
  memset(&query, 0, sizeof query);
  query.Type = DXGKQAITYPE_QUERYSEGMENT;
  query.pOutputData = &out;
  for (UINT size = 0; size < sizeof out; size++) {
    query.OutputDataSize = size;
    expect_status(fake->ddi->DxgkDdiQueryAdapterInfo(fake->ctx, &query), STATUS_INVALID_PARAMETER,
                  "OutputDataSize %u", size);
  }
  query.OutputDataSize = sizeof out;
  query.pOutputData = NULL;
  expect_status(fake->ddi->DxgkDdiQueryAdapterInfo(fake->ctx, &query), STATUS_INVALID_PARAMETER,
                "NULL output");
  query.pOutputData = &out;
  out.pSegmentDescriptor = desc;
  out.NbSegment = 1;
  expect_status(fake->ddi->DxgkDdiQueryAdapterInfo(fake->ctx, &query), STATUS_INVALID_PARAMETER,
                "room for one descriptor only");
  out.NbSegment = 3;
  expect_status(fake->ddi->DxgkDdiQueryAdapterInfo(fake->ctx, &query), STATUS_SUCCESS,
                "room for three");
  expect_u64_eq(out.NbSegment, 2, "NbSegment says how many were filled");
  const DXGK_QUERYADAPTERINFOTYPE others[] = {DXGKQAITYPE_UMDRIVERPRIVATE, DXGKQAITYPE_DRIVERCAPS,
                                              (DXGK_QUERYADAPTERINFOTYPE)77};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    query.Type = others[i];
    expect_status(fake->ddi->DxgkDdiQueryAdapterInfo(fake->ctx, &query), STATUS_INVALID_PARAMETER,
                  "type %d", (int)others[i]);
  }
  expect_status(fake->ddi->DxgkDdiQueryAdapterInfo(fake->ctx, NULL), STATUS_INVALID_PARAMETER,
                "NULL query");
  expect_status(fake->ddi->DxgkDdiQueryAdapterInfo(NULL, &query), STATUS_INVALID_HANDLE,
                "NULL adapter");
  fake_teardown(fake);
}

/* ---- Devices --------------------------------------------------------------------------------- */

TEST(create_device_fills_info) {
  fake_adapter *fake = fake_setup(NULL);
  DXGK_DEVICEINFO info;
  memset(&info, 0xCC, sizeof info);
  DXGKARG_CREATEDEVICE args;
  memset(&args, 0, sizeof args);
  args.pInfo = &info;
  assert_status(fake->ddi->DxgkDdiCreateDevice(fake->ctx, &args), STATUS_SUCCESS, "CreateDevice");
  HANDLE first = args.hDevice;
  expect_ptr_ne(first, NULL, "device handle");
  expect_u64_gt(info.DmaBufferSize, 0, "DMA buffer size");
  expect_u64_gt(info.AllocationListSize, 0, "allocation list size");
  expect_u64_eq(info.Flags, 0, "device info flags");
  args.pInfo = NULL;
  args.Flags.SystemDevice = 1;
  assert_status(fake->ddi->DxgkDdiCreateDevice(fake->ctx, &args), STATUS_SUCCESS,
                "system device, NULL info");
  HANDLE second = args.hDevice;
  expect_ptr_ne(second, first, "distinct devices");
  ALDDI_LIVE_OBJECTS live = fake_live(fake);
  expect_u64_eq(live.Devices, 2, "two devices");
  expect_u64_gt(live.HostBytes, 0, "devices take host memory");
  args.Flags.Value = 1u << 5;
  expect_status(fake->ddi->DxgkDdiCreateDevice(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                "reserved flag");
  expect_status(fake->ddi->DxgkDdiCreateDevice(fake->ctx, NULL), STATUS_INVALID_PARAMETER, "NULL");
  expect_status(fake->ddi->DxgkDdiCreateDevice(NULL, &args), STATUS_INVALID_HANDLE, "NULL adapter");
  expect_status(fake->ddi->DxgkDdiDestroyDevice(NULL), STATUS_INVALID_HANDLE, "destroy NULL");
  expect_status(fake->ddi->DxgkDdiDestroyDevice(fake->ctx), STATUS_INVALID_HANDLE,
                "destroy an adapter handle");
  live_is(fake, live, "failed calls change nothing");
  fake_destroy_device(fake, first);
  fake_destroy_device(fake, second);
  fake_teardown(fake);
}

/* ---- CreateAllocation ------------------------------------------------------------------------ */

static const UINT valid_flag_sets[] = {
    0,
    EXAMPLE_ALLOCATION_CPU_VISIBLE,
    EXAMPLE_ALLOCATION_APERTURE_ONLY,
    EXAMPLE_ALLOCATION_MEMORY_ONLY,
    EXAMPLE_ALLOCATION_CPU_VISIBLE | EXAMPLE_ALLOCATION_APERTURE_ONLY,
    EXAMPLE_ALLOCATION_CPU_VISIBLE | EXAMPLE_ALLOCATION_MEMORY_ONLY,
};

/* For each flag combination, one call of N allocations of assorted sizes; every output checked
 * against the reference, handles distinct. */
static void create_every_combination(const EXAMPLE_HARDWARE_CONFIG *config) {
  fake_adapter *fake = fake_setup(config);
  const UINT64 sizes[] = {1, 4095, 4096, 4097, 65535, 65536, 65537, MiB + 1, 3 * MiB};
  enum { N = sizeof sizes / sizeof sizes[0] };
  for (size_t f = 0; f < sizeof valid_flag_sets / sizeof valid_flag_sets[0]; f++) {
    EXAMPLE_ALLOCATION_DATA data[N];
    DXGK_ALLOCATIONINFO infos[N];
    for (UINT i = 0; i < N; i++) {
      data[i] = example_allocation_data(sizes[i], valid_flag_sets[f]);
      data[i].Alignment = i % 3 == 0 ? 0 : 1u << (10 + i);
      data[i].Priority = i % 2 ? 0 : 0x100u + i;
    }
    assert_status(fake_create(fake, N, data, infos, false, NULL), STATUS_SUCCESS, "flags %#x",
                  valid_flag_sets[f]);
    for (UINT i = 0; i < N; i++) {
      ref_allocation ref = ref_decode(&fake->config, &data[i], sizeof data[i]);
      expect_true(ref.valid, "reference accepts flags %#x size %" PRIu64, valid_flag_sets[f],
                  sizes[i]);
      expect_true(check_allocation_info(&infos[i], &ref, sizes[i]), "flags %#x, allocation %u",
                  valid_flag_sets[f], i);
      for (UINT j = 0; j < i; j++)
        expect_ptr_ne(infos[i].hAllocation, infos[j].hAllocation, "distinct handles %u, %u", i, j);
    }
    ALDDI_LIVE_OBJECTS live = fake_live(fake);
    expect_u64_eq(live.Allocations, N, "N live allocations");
    expect_u64_eq(live.Resources, 0, "no resource without Flags.Resource");
    fake_destroy_infos(fake, N, infos);
  }
  /* Sizes up to a whole segment. */
  EXAMPLE_ALLOCATION_DATA whole[2] = {
      example_allocation_data(fake->config.MemorySegmentSize, EXAMPLE_ALLOCATION_MEMORY_ONLY),
      example_allocation_data(fake->config.ApertureSegmentSize, EXAMPLE_ALLOCATION_APERTURE_ONLY)};
  DXGK_ALLOCATIONINFO infos[2];
  assert_status(fake_create(fake, 2, whole, infos, false, NULL), STATUS_SUCCESS, "whole segments");
  expect_u64_eq(infos[0].Size, fake->config.MemorySegmentSize, "the whole memory segment");
  expect_u64_eq(infos[1].Size, fake->config.ApertureSegmentSize, "the whole aperture segment");
  fake_destroy_infos(fake, 2, infos);
  fake_teardown(fake);
}

TEST(create_allocation_flag_combinations) {
  EXAMPLE_HARDWARE_CONFIG config = config_default();
  create_every_combination(&config);
  config = config_64k();
  create_every_combination(&config);
}

TEST(create_allocation_rounds_to_segment_pages) {
  EXAMPLE_HARDWARE_CONFIG config = config_64k();
  fake_adapter *fake = fake_setup(&config);
  EXAMPLE_ALLOCATION_DATA data[4] = {
      example_allocation_data(5000, 0),
      example_allocation_data(5000, EXAMPLE_ALLOCATION_MEMORY_ONLY),
      example_allocation_data(5000, EXAMPLE_ALLOCATION_APERTURE_ONLY),
      example_allocation_data(65536 * 3, EXAMPLE_ALLOCATION_CPU_VISIBLE)};
  DXGK_ALLOCATIONINFO infos[4];
  assert_status(fake_create(fake, 4, data, infos, false, NULL), STATUS_SUCCESS, "create");
  expect_u64_eq(infos[0].Size, 65536, "may go to the 64 KiB-page memory segment");
  expect_u64_eq(infos[1].Size, 65536, "memory only");
  expect_u64_eq(infos[2].Size, 8192, "aperture only: 4 KiB pages");
  expect_u64_eq(infos[3].Size, 65536 * 3, "already a 64 KiB multiple");
  expect_u64_eq(infos[0].EvictionSegmentSet, 2, "evicted to the aperture");
  expect_u64_eq(infos[1].EvictionSegmentSet, 2, "memory only: evicted to the aperture");
  expect_u64_eq(infos[2].EvictionSegmentSet, 0, "aperture only: evicted to system memory");
  expect_u64_eq(infos[3].Flags.CpuVisible, 1, "CPU visible");
  expect_u64_eq(infos[0].AllocationPriority, EXAMPLE_ALLOCATION_PRIORITY_DEFAULT,
                "default priority");
  fake_destroy_infos(fake, 4, infos);
  /* A request that fits the 48 MiB aperture but not the 32 MiB memory segment: legal unless it
   * is MEMORY_ONLY. */
  EXAMPLE_ALLOCATION_DATA big = example_allocation_data(40 * MiB + 1, 0);
  DXGK_ALLOCATIONINFO info;
  expect_status(fake_create(fake, 1, &big, &info, false, NULL), STATUS_SUCCESS,
                "fits the largest segment");
  fake_destroy_infos(fake, 1, &info);
  big.Flags = EXAMPLE_ALLOCATION_MEMORY_ONLY;
  expect_status(fake_create(fake, 1, &big, &info, false, NULL), STATUS_INVALID_PARAMETER,
                "larger than the only allowed segment");
  fake_teardown(fake);

  /* An aperture that is not a 64 KiB multiple and larger than the memory segment: a request of
   * the whole aperture fits it, but rounded to 64 KiB (the memory segment may take it) it no
   * longer fits anywhere unless APERTURE_ONLY. */
  EXAMPLE_HARDWARE_CONFIG odd = {EXAMPLE_HARDWARE_MAGIC, 65536u, 32 * MiB, 48 * MiB + 4096};
  fake = fake_setup(&odd);
  EXAMPLE_ALLOCATION_DATA whole = example_allocation_data(48 * MiB + 4096, 0);
  expect_status(fake_create(fake, 1, &whole, &info, false, NULL), STATUS_INVALID_PARAMETER,
                "rounded past every segment");
  expect_false(ref_decode(&odd, &whole, sizeof whole).valid, "the reference agrees");
  whole.Flags = EXAMPLE_ALLOCATION_APERTURE_ONLY;
  assert_status(fake_create(fake, 1, &whole, &info, false, NULL), STATUS_SUCCESS,
                "aperture only: 4 KiB rounding fits");
  expect_u64_eq(info.Size, 48 * MiB + 4096, "the whole aperture");
  fake_destroy_infos(fake, 1, &info);
  fake_teardown(fake);
}

TEST(create_allocation_rejects_bad_arguments) {
  fake_adapter *fake = fake_setup(NULL);
  EXAMPLE_ALLOCATION_DATA data = example_allocation_data(4096, 0);
  DXGK_ALLOCATIONINFO info;
  memset(&info, 0, sizeof info);
  info.pPrivateDriverData = &data;
  info.PrivateDriverDataSize = sizeof data;
  DXGKARG_CREATEALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pAllocationInfo = &info;
  for (UINT bit = 1; bit < 32; bit++) {
    args.Flags.Value = 1u << bit;
    expect_status(fake->ddi->DxgkDdiCreateAllocation(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                  "reserved create flag bit %u", bit);
  }
  args.Flags.Value = 0;
  args.NumAllocations = 0;
  expect_status(fake->ddi->DxgkDdiCreateAllocation(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                "NumAllocations 0");
  args.NumAllocations = 1;
  args.pAllocationInfo = NULL;
  expect_status(fake->ddi->DxgkDdiCreateAllocation(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                "NULL pAllocationInfo");
  args.pAllocationInfo = &info;
  expect_status(fake->ddi->DxgkDdiCreateAllocation(fake->ctx, NULL), STATUS_INVALID_PARAMETER,
                "NULL args");
  expect_status(fake->ddi->DxgkDdiCreateAllocation(NULL, &args), STATUS_INVALID_HANDLE,
                "NULL adapter");
  expect_ptr_eq(info.hAllocation, NULL, "no handle written by a failed call");
  live_is(fake, live_zero, "nothing created");
  fake_teardown(fake);
}

/* Every private-data size 0..64 with random bytes (magic valid where it fits): only exactly 24
 * bytes may pass, and then only as the reference says. The buffers are exactly that large, so
 * ASan sees any read past them. */
TEST(hostile_private_data_every_size) {
  fake_adapter *fake = fake_setup(NULL);
  UINT64 rng = al_test_seed() | 1;
  for (UINT round = 0; round < 16; round++) {
    for (UINT size = 0; size <= 64; size++) {
      unsigned char *bytes = malloc(size ? size : 1);
      assert_ptr_ne(bytes, NULL, "malloc");
      for (UINT i = 0; i < size; i++) bytes[i] = (unsigned char)rng_next(&rng);
      if (size >= 4 && round % 2 == 0) memcpy(bytes, &(UINT){EXAMPLE_ALLOCATION_MAGIC}, 4);
      if (size >= 8 && round % 4 == 0) memcpy(bytes + 4, &(UINT){0}, 4);
      if (size >= 24 && round % 4 == 0) {
        memcpy(bytes + 8, &(UINT){0}, 4);
        memcpy(bytes + 16, &(UINT64){rng_next(&rng) % (80 * MiB)}, 8);
      }
      void *pointers[2] = {bytes, size == 0 ? NULL : bytes};
      for (int p = 0; p < 2; p++) {
        DXGK_ALLOCATIONINFO info;
        memset(&info, 0, sizeof info);
        info.pPrivateDriverData = pointers[p];
        info.PrivateDriverDataSize = size;
        DXGKARG_CREATEALLOCATION args;
        memset(&args, 0, sizeof args);
        args.NumAllocations = 1;
        args.pAllocationInfo = &info;
        NTSTATUS status = fake->ddi->DxgkDdiCreateAllocation(fake->ctx, &args);
        ref_allocation ref = ref_decode(&fake->config, pointers[p], size);
        if (ref.valid) {
          expect_status(status, STATUS_SUCCESS, "size %u, round %u: the reference accepts it", size,
                        round);
          if (NT_SUCCESS(status)) {
            UINT64 request;
            memcpy(&request, bytes + 16, 8);
            expect_true(check_allocation_info(&info, &ref, request), "size %u, round %u", size,
                        round);
            fake_destroy_infos(fake, 1, &info);
          }
        } else {
          expect_status(status, STATUS_INVALID_PARAMETER, "size %u, round %u, pointer %s", size,
                        round, pointers[p] ? "set" : "NULL");
          expect_ptr_eq(info.hAllocation, NULL, "no handle on failure");
        }
        live_is(fake, live_zero, "hostile data leaves nothing behind");
      }
      free(bytes);
    }
  }
  DXGK_ALLOCATIONINFO info;
  memset(&info, 0, sizeof info);
  info.PrivateDriverDataSize = sizeof(EXAMPLE_ALLOCATION_DATA);
  DXGKARG_CREATEALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pAllocationInfo = &info;
  expect_status(fake->ddi->DxgkDdiCreateAllocation(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                "NULL private data with the right size");
  fake_teardown(fake);
}

TEST(hostile_private_data_bad_fields) {
  fake_adapter *fake = fake_setup(NULL);
  const EXAMPLE_ALLOCATION_DATA good = example_allocation_data(4096, 0);
  struct {
    const char *what;
    EXAMPLE_ALLOCATION_DATA data;
  } bad[40];
  size_t count = 0;
#define BAD_(text, field, value)                                                                   \
  do {                                                                                             \
    bad[count].what = text;                                                                        \
    bad[count].data = good;                                                                        \
    bad[count].data.field = value;                                                                 \
    count++;                                                                                       \
  } while (0)
  BAD_("magic 0", Magic, 0);
  BAD_("magic byte-swapped", Magic, 0x58454C41u);
  BAD_("both ONLY flags", Flags, EXAMPLE_ALLOCATION_APERTURE_ONLY | EXAMPLE_ALLOCATION_MEMORY_ONLY);
  BAD_("both ONLY flags + CPU", Flags, EXAMPLE_ALLOCATION_FLAGS_ALL);
  BAD_("reserved flag 0x8", Flags, 0x8u);
  BAD_("reserved flag 0x80000000", Flags, 0x80000000u);
  BAD_("alignment 3", Alignment, 3u);
  BAD_("alignment 4097", Alignment, 4097u);
  BAD_("alignment 2 MiB", Alignment, 2u << 20);
  BAD_("alignment 0x80000000", Alignment, 0x80000000u);
  BAD_("alignment all ones", Alignment, 0xFFFFFFFFu);
  BAD_("size 0", SizeBytes, 0);
  BAD_("size > largest segment", SizeBytes, 64 * MiB + 1);
  BAD_("size UINT64_MAX", SizeBytes, UINT64_MAX);
  BAD_("size UINT64_MAX - 4095", SizeBytes, UINT64_MAX - 4095);
#undef BAD_
  for (UINT bit = 3; bit < 32; bit += 4) {
    bad[count].what = "a reserved flag bit";
    bad[count].data = good;
    bad[count].data.Flags = 1u << bit;
    count++;
  }
  assert_true(count <= sizeof bad / sizeof bad[0], "table fits");
  for (size_t i = 0; i < count; i++) {
    DXGK_ALLOCATIONINFO info;
    expect_status(fake_create(fake, 1, &bad[i].data, &info, false, NULL), STATUS_INVALID_PARAMETER,
                  "%s (flags %#x)", bad[i].what, bad[i].data.Flags);
    expect_ptr_eq(info.hAllocation, NULL, "%s: no handle", bad[i].what);
    expect_false(ref_decode(&fake->config, &bad[i].data, sizeof bad[i].data).valid,
                 "%s: the reference agrees", bad[i].what);
  }
  live_is(fake, live_zero, "nothing created");
  /* Edge values that are legal. */
  EXAMPLE_ALLOCATION_DATA edge[3] = {good, good, good};
  edge[0].Alignment = EXAMPLE_ALLOCATION_ALIGNMENT_MAX;
  edge[1].Alignment = 1;
  edge[2].SizeBytes = 64 * MiB;
  edge[2].Priority = 0xFFFFFFFFu;
  DXGK_ALLOCATIONINFO infos[3];
  expect_status(fake_create(fake, 3, edge, infos, false, NULL), STATUS_SUCCESS, "legal edges");
  fake_destroy_infos(fake, 3, infos);
  fake_teardown(fake);
}

/* Random private data, biased toward the boundaries; every answer must match the reference. */
TEST(random_private_data_matches_reference) {
  EXAMPLE_HARDWARE_CONFIG configs[2] = {config_default(), config_64k()};
  UINT64 rng = al_test_seed() ^ 0x9E3779B97F4A7C15ULL;
  for (int c = 0; c < 2; c++) {
    fake_adapter *fake = fake_setup(&configs[c]);
    UINT accepted = 0, refused = 0;
    for (UINT iter = 0; iter < 20000; iter++) {
      EXAMPLE_ALLOCATION_DATA data;
      UINT64 r = rng_next(&rng);
      data.Magic = r % 16 ? EXAMPLE_ALLOCATION_MAGIC : (UINT)rng_next(&rng);
      data.Flags = r >> 4 & 1 ? (UINT)(rng_next(&rng) % 8) : (UINT)rng_next(&rng) & 0x1Fu;
      switch (r >> 8 & 3) {
      case 0: data.Alignment = 0; break;
      case 1: data.Alignment = 1u << (rng_next(&rng) % 23); break;
      case 2: data.Alignment = (UINT)rng_next(&rng) % 5000; break;
      default: data.Alignment = (UINT)rng_next(&rng); break;
      }
      data.Priority = r >> 10 & 1 ? 0 : (UINT)rng_next(&rng);
      UINT64 segment =
          (r >> 11 & 1) ? configs[c].MemorySegmentSize : configs[c].ApertureSegmentSize;
      switch (r >> 12 & 7) {
      case 0: data.SizeBytes = 0; break;
      case 1: data.SizeBytes = rng_next(&rng); break;
      case 2: data.SizeBytes = segment - 64 + rng_next(&rng) % 128; break;
      case 3: data.SizeBytes = segment - 65536 + rng_next(&rng) % 131072; break;
      default: data.SizeBytes = 1 + rng_next(&rng) % (4 * MiB); break;
      }
      DXGK_ALLOCATIONINFO info;
      NTSTATUS status = fake_create(fake, 1, &data, &info, false, NULL);
      ref_allocation ref = ref_decode(&configs[c], &data, sizeof data);
      if (ref.valid) {
        accepted++;
        if (!NT_SUCCESS(status)) {
          expect_status(status, STATUS_SUCCESS,
                        "iter %u: magic %#x flags %#x align %#x size %" PRIu64 " should pass", iter,
                        data.Magic, data.Flags, data.Alignment, data.SizeBytes);
          continue;
        }
        expect_true(check_allocation_info(&info, &ref, data.SizeBytes),
                    "iter %u: flags %#x align %#x size %" PRIu64, iter, data.Flags, data.Alignment,
                    data.SizeBytes);
        fake_destroy_infos(fake, 1, &info);
      } else {
        refused++;
        expect_status(status, STATUS_INVALID_PARAMETER,
                      "iter %u: magic %#x flags %#x align %#x size %" PRIu64 " should fail", iter,
                      data.Magic, data.Flags, data.Alignment, data.SizeBytes);
        if (NT_SUCCESS(status)) fake_destroy_infos(fake, 1, &info);
      }
    }
    expect_u64_gt(accepted, 1000, "the generator reaches valid data");
    expect_u64_gt(refused, 1000, "the generator reaches invalid data");
    fake_teardown(fake);
  }
}

/* Allocation k of N invalid (each k): the call fails and the k-1 before it leave no trace. */
TEST(create_failure_at_k_rolls_back) {
  fake_adapter *fake = fake_setup(NULL);
  enum { N = 8 };
  HANDLE device = fake_create_device(fake);
  ALDDI_LIVE_OBJECTS before = fake_live(fake);
  for (UINT k = 0; k < N; k++) {
    for (int kind = 0; kind < 3; kind++) {
      EXAMPLE_ALLOCATION_DATA data[N];
      DXGK_ALLOCATIONINFO infos[N];
      for (UINT i = 0; i < N; i++) data[i] = example_allocation_data(4096 * (i + 1), 0);
      if (kind == 0) data[k].Magic ^= 1;
      if (kind == 1) data[k].SizeBytes = 0;
      if (kind == 2) data[k].Flags = 0x100;
      for (int resource = 0; resource < 2; resource++) {
        HANDLE hResource = NULL;
        expect_status(fake_create(fake, N, data, infos, resource, &hResource),
                      STATUS_INVALID_PARAMETER, "allocation %u invalid (kind %d)", k, kind);
        expect_ptr_eq(hResource, NULL, "no resource returned");
        for (UINT i = 0; i < N; i++)
          expect_ptr_eq(infos[i].hAllocation, NULL, "k=%u: no handle %u", k, i);
        live_is(fake, before, "rolled back");
      }
    }
    /* NULL private data at k. */
    EXAMPLE_ALLOCATION_DATA data[N];
    DXGK_ALLOCATIONINFO infos[N];
    for (UINT i = 0; i < N; i++) data[i] = example_allocation_data(4096, 0);
    memset(infos, 0, sizeof infos);
    for (UINT i = 0; i < N; i++) {
      infos[i].pPrivateDriverData = i == k ? NULL : &data[i];
      infos[i].PrivateDriverDataSize = sizeof data[i];
    }
    DXGKARG_CREATEALLOCATION args;
    memset(&args, 0, sizeof args);
    args.NumAllocations = N;
    args.pAllocationInfo = infos;
    expect_status(fake->ddi->DxgkDdiCreateAllocation(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                  "NULL data at %u", k);
    live_is(fake, before, "rolled back");
  }
  fake_destroy_device(fake, device);
  fake_teardown(fake);
}

/* One host block per call: HostBytes is affine in N, the per-allocation cost small, and the
 * block is freed with its last allocation, whatever the order. */
TEST(one_block_per_create_call) {
  fake_adapter *fake = fake_setup(NULL);
  UINT64 bytes[4];
  for (UINT n = 1; n <= 4; n++) {
    EXAMPLE_ALLOCATION_DATA data[4];
    DXGK_ALLOCATIONINFO infos[4];
    for (UINT i = 0; i < n; i++) data[i] = example_allocation_data(4096, 0);
    assert_status(fake_create(fake, n, data, infos, false, NULL), STATUS_SUCCESS, "create %u", n);
    bytes[n - 1] = fake_live(fake).HostBytes;
    fake_destroy_infos(fake, n, infos);
  }
  UINT64 per_allocation = bytes[1] - bytes[0];
  expect_u64_eq(bytes[2] - bytes[1], per_allocation, "affine in N");
  expect_u64_eq(bytes[3] - bytes[2], per_allocation, "affine in N");
  expect_u64_le(per_allocation, 48, "lean: at most 48 host bytes per allocation");
  expect_u64_le(bytes[0] - per_allocation, 64, "lean: at most 64 bytes of block overhead");
  fprintf(stderr, "  host bytes: %" PRIu64 " per allocation + %" PRIu64 " per call\n",
          per_allocation, bytes[0] - per_allocation);

  enum { N = 5 };
  EXAMPLE_ALLOCATION_DATA data[N];
  DXGK_ALLOCATIONINFO infos[N];
  for (UINT i = 0; i < N; i++) data[i] = example_allocation_data(4096, 0);
  assert_status(fake_create(fake, N, data, infos, false, NULL), STATUS_SUCCESS, "create");
  UINT64 block = fake_live(fake).HostBytes;
  const UINT order[N] = {3, 0, 4, 1, 2};
  for (UINT i = 0; i < N; i++) {
    HANDLE h = infos[order[i]].hAllocation;
    expect_status(fake_destroy(fake, 1, &h, NULL, false), STATUS_SUCCESS, "destroy %u", order[i]);
    ALDDI_LIVE_OBJECTS live = fake_live(fake);
    expect_u64_eq(live.Allocations, N - 1 - i, "allocations left");
    expect_u64_eq(live.HostBytes, i + 1 < N ? block : 0, "the block lives until its last one");
  }
  fake_teardown(fake);
}

/* ---- DestroyAllocation ----------------------------------------------------------------------- */

TEST(destroy_allocation_validates_list) {
  fake_adapter *fake = fake_setup(NULL);
  enum { N = 4 };
  EXAMPLE_ALLOCATION_DATA data[N];
  DXGK_ALLOCATIONINFO infos[N];
  for (UINT i = 0; i < N; i++) data[i] = example_allocation_data(4096, 0);
  assert_status(fake_create(fake, N, data, infos, false, NULL), STATUS_SUCCESS, "create");
  ALDDI_LIVE_OBJECTS before = fake_live(fake);
  HANDLE dup[3] = {infos[0].hAllocation, infos[1].hAllocation, infos[0].hAllocation};
  expect_status(fake_destroy(fake, 3, dup, NULL, false), STATUS_INVALID_PARAMETER, "duplicate");
  HANDLE with_null[2] = {infos[0].hAllocation, NULL};
  expect_status(fake_destroy(fake, 2, with_null, NULL, false), STATUS_INVALID_HANDLE, "NULL entry");
  HANDLE device = fake_create_device(fake);
  HANDLE wrong_kind[2] = {infos[1].hAllocation, device};
  expect_status(fake_destroy(fake, 2, wrong_kind, NULL, false), STATUS_INVALID_HANDLE,
                "a device handle in the list");
  expect_status(fake_destroy(fake, 1, NULL, NULL, false), STATUS_INVALID_PARAMETER, "NULL list");
  expect_status(fake_destroy(fake, 0, NULL, NULL, false), STATUS_INVALID_PARAMETER,
                "nothing to destroy");
  DXGKARG_DESTROYALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pAllocationList = &infos[0].hAllocation;
  args.Flags.Value = 2;
  expect_status(fake->ddi->DxgkDdiDestroyAllocation(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                "reserved flag");
  expect_status(fake->ddi->DxgkDdiDestroyAllocation(fake->ctx, NULL), STATUS_INVALID_PARAMETER,
                "NULL args");
  args.Flags.Value = 0;
  expect_status(fake->ddi->DxgkDdiDestroyAllocation(NULL, &args), STATUS_INVALID_HANDLE,
                "NULL adapter");
  fake_destroy_device(fake, device);
  live_is(fake, before, "failed destroys changed nothing");
  /* Destroyed while its block lives on (the others hold it): a second destroy is refused. */
  HANDLE first = infos[0].hAllocation;
  expect_status(fake_destroy(fake, 1, &first, NULL, false), STATUS_SUCCESS, "destroy #0");
  expect_status(fake_destroy(fake, 1, &first, NULL, false), STATUS_INVALID_HANDLE,
                "destroy #0 twice");
  HANDLE rest[3] = {infos[1].hAllocation, infos[2].hAllocation, infos[3].hAllocation};
  HANDLE rest_and_dead[4] = {rest[0], rest[1], rest[2], first};
  expect_status(fake_destroy(fake, 4, rest_and_dead, NULL, false), STATUS_INVALID_HANDLE,
                "a destroyed one in the list");
  expect_u64_eq(fake_live(fake).Allocations, 3, "all-or-nothing");
  expect_status(fake_destroy(fake, 3, rest, NULL, false), STATUS_SUCCESS, "the rest");
  fake_teardown(fake);
}

/* ---- Resources ------------------------------------------------------------------------------- */

TEST(resource_create_add_destroy) {
  fake_adapter *fake = fake_setup(NULL);
  EXAMPLE_ALLOCATION_DATA data[3] = {example_allocation_data(4096, 0),
                                     example_allocation_data(8192, EXAMPLE_ALLOCATION_CPU_VISIBLE),
                                     example_allocation_data(12288, 0)};
  DXGK_ALLOCATIONINFO first[2], added[1];
  HANDLE resource = NULL;
  assert_status(fake_create(fake, 2, data, first, true, &resource), STATUS_SUCCESS,
                "create with a new resource");
  assert_ptr_ne(resource, NULL, "hResource returned");
  ALDDI_LIVE_OBJECTS live = fake_live(fake);
  expect_u64_eq(live.Resources, 1, "one resource");
  expect_u64_eq(live.Allocations, 2, "two allocations");
  HANDLE same = resource;
  assert_status(fake_create(fake, 1, &data[2], added, true, &same), STATUS_SUCCESS,
                "add to the resource");
  expect_ptr_eq(same, resource, "hResource unchanged when adding");
  live = fake_live(fake);
  expect_u64_eq(live.Resources, 1, "still one resource");
  expect_u64_eq(live.Allocations, 3, "three allocations");
  /* Destroy one without DestroyResource: the resource stays. */
  expect_status(fake_destroy(fake, 1, &first[1].hAllocation, NULL, false), STATUS_SUCCESS,
                "destroy one allocation of the resource");
  expect_u64_eq(fake_live(fake).Resources, 1, "resource kept");
  /* Destroy the rest with the resource. */
  HANDLE rest[2] = {first[0].hAllocation, added[0].hAllocation};
  expect_status(fake_destroy(fake, 2, rest, resource, true), STATUS_SUCCESS,
                "destroy the rest with the resource");
  live_is(fake, live_zero, "all gone");

  /* An empty resource: its allocations destroyed one by one, then the resource alone. */
  resource = NULL;
  DXGK_ALLOCATIONINFO one[1];
  assert_status(fake_create(fake, 1, data, one, true, &resource), STATUS_SUCCESS, "create");
  expect_status(fake_destroy(fake, 1, &one[0].hAllocation, NULL, false), STATUS_SUCCESS,
                "destroy its only allocation");
  ALDDI_LIVE_OBJECTS empty = fake_live(fake);
  expect_u64_eq(empty.Resources, 1, "empty resource lives");
  expect_u64_eq(empty.Allocations, 0, "no allocations");
  expect_status(fake_destroy(fake, 0, NULL, resource, true), STATUS_SUCCESS,
                "destroy the empty resource");
  live_is(fake, live_zero, "all gone");
  fake_teardown(fake);
}

TEST(resource_destroy_rules) {
  fake_adapter *fake = fake_setup(NULL);
  EXAMPLE_ALLOCATION_DATA data[2] = {example_allocation_data(4096, 0),
                                     example_allocation_data(4096, 0)};
  DXGK_ALLOCATIONINFO in_a[2], in_b[1], loose[1];
  HANDLE a = NULL, b = NULL;
  assert_status(fake_create(fake, 2, data, in_a, true, &a), STATUS_SUCCESS, "resource a");
  assert_status(fake_create(fake, 1, data, in_b, true, &b), STATUS_SUCCESS, "resource b");
  assert_status(fake_create(fake, 1, data, loose, false, NULL), STATUS_SUCCESS, "no resource");
  expect_ptr_ne(a, b, "distinct resources");
  ALDDI_LIVE_OBJECTS before = fake_live(fake);
  expect_status(fake_destroy(fake, 1, &in_a[0].hAllocation, a, true), STATUS_INVALID_PARAMETER,
                "DestroyResource that leaves an allocation of it behind");
  HANDLE mixed[3] = {in_a[0].hAllocation, in_a[1].hAllocation, in_b[0].hAllocation};
  expect_status(fake_destroy(fake, 3, mixed, a, true), STATUS_INVALID_PARAMETER,
                "an allocation of another resource");
  HANDLE swapped[2] = {in_a[0].hAllocation, in_b[0].hAllocation};
  expect_status(fake_destroy(fake, 2, swapped, a, true), STATUS_INVALID_PARAMETER,
                "the right count, but one allocation of another resource");
  HANDLE with_loose[3] = {in_a[0].hAllocation, in_a[1].hAllocation, loose[0].hAllocation};
  expect_status(fake_destroy(fake, 3, with_loose, a, true), STATUS_INVALID_PARAMETER,
                "an allocation of no resource");
  expect_status(fake_destroy(fake, 2, mixed, NULL, true), STATUS_INVALID_HANDLE, "NULL hResource");
  expect_status(fake_destroy(fake, 1, &loose[0].hAllocation, loose[0].hAllocation, true),
                STATUS_INVALID_HANDLE, "an allocation as hResource");
  /* Adding to something that is not a resource of this miniport. */
  HANDLE not_resource = loose[0].hAllocation;
  DXGK_ALLOCATIONINFO more[1];
  expect_status(fake_create(fake, 1, data, more, true, &not_resource), STATUS_INVALID_HANDLE,
                "add to an allocation handle");
  expect_ptr_eq(more[0].hAllocation, NULL, "no handle");
  live_is(fake, before, "failed calls changed nothing");
  expect_status(fake_destroy(fake, 2, mixed, a, true), STATUS_SUCCESS, "resource a");
  expect_status(fake_destroy(fake, 1, &in_b[0].hAllocation, b, true), STATUS_SUCCESS, "resource b");
  fake_destroy_infos(fake, 1, loose);
  fake_teardown(fake);
}

/* ---- Open / Close ---------------------------------------------------------------------------- */

TEST(open_close_bindings) {
  fake_adapter *fake = fake_setup(NULL);
  enum { N = 4 };
  EXAMPLE_ALLOCATION_DATA data[N];
  DXGK_ALLOCATIONINFO infos[N];
  for (UINT i = 0; i < N; i++) data[i] = example_allocation_data(4096, 0);
  HANDLE resource = NULL;
  assert_status(fake_create(fake, N, data, infos, true, &resource), STATUS_SUCCESS, "create");
  D3DKMT_HANDLE handles[N];
  for (UINT i = 0; i < N; i++) handles[i] = fake_handle_register(infos[i].hAllocation);
  HANDLE dev_a = fake_create_device(fake), dev_b = fake_create_device(fake);
  UINT64 bytes0 = fake_live(fake).HostBytes;

  HANDLE bind_a[N], bind_b[N], bind_a2[N];
  assert_status(fake_open(fake, dev_a, N, handles, bind_a, true), STATUS_SUCCESS, "open (create)");
  UINT64 bytes1 = fake_live(fake).HostBytes;
  assert_status(fake_open(fake, dev_b, N, handles, bind_b, false), STATUS_SUCCESS, "open (shared)");
  assert_status(fake_open(fake, dev_a, N, handles, bind_a2, false), STATUS_SUCCESS,
                "open again on the same device");
  for (UINT i = 0; i < N; i++) {
    expect_ptr_ne(bind_a[i], NULL, "binding %u", i);
    for (UINT j = 0; j < N; j++) {
      if (i != j) expect_ptr_ne(bind_a[i], bind_a[j], "distinct within a call");
      expect_ptr_ne(bind_a[i], bind_b[j], "distinct across devices");
      expect_ptr_ne(bind_a[i], bind_a2[j], "distinct per open");
    }
  }
  ALDDI_LIVE_OBJECTS live = fake_live(fake);
  expect_u64_eq(live.OpenAllocations, 3 * N, "bindings counted");
  UINT64 per_call = bytes1 - bytes0;
  fprintf(stderr, "  host bytes: %" PRIu64 " per open call of %u bindings\n", per_call, (UINT)N);
  expect_u64_le(per_call, 64 + 24 * N, "lean bindings");
  expect_u64_eq(live.HostBytes, bytes0 + 3 * per_call, "one block per open call");

  /* Close a subset, then the rest (rule 4: all of a device's handles of a resource at once). */
  expect_status(fake_close(fake, dev_a, 2, bind_a), STATUS_SUCCESS, "close 2 of dev_a");
  expect_u64_eq(fake_live(fake).OpenAllocations, 3 * N - 2, "two closed");
  expect_u64_eq(fake_live(fake).HostBytes, bytes0 + 3 * per_call, "block kept while in use");
  expect_status(fake_close(fake, dev_a, 2, bind_a + 2), STATUS_SUCCESS, "close the other 2");
  expect_u64_eq(fake_live(fake).HostBytes, bytes0 + 2 * per_call, "block freed with its last");
  expect_status(fake_close(fake, dev_b, N, bind_b), STATUS_SUCCESS, "close dev_b");
  expect_status(fake_close(fake, dev_a, N, bind_a2), STATUS_SUCCESS, "close dev_a again");
  expect_status(fake_close(fake, dev_a, 0, NULL), STATUS_SUCCESS, "close nothing");
  expect_status(fake_open(fake, dev_a, 0, NULL, NULL, false), STATUS_SUCCESS, "open nothing");

  live = fake_live(fake);
  expect_u64_eq(live.OpenAllocations, 0, "all closed");
  expect_u64_eq(live.HostBytes, bytes0, "binding memory returned");
  expect_status(fake_destroy(fake, N,
                             (HANDLE[]){infos[0].hAllocation, infos[1].hAllocation,
                                        infos[2].hAllocation, infos[3].hAllocation},
                             resource, true),
                STATUS_SUCCESS, "destroy");
  fake_destroy_device(fake, dev_a);
  fake_destroy_device(fake, dev_b);
  fake_teardown(fake);
}

TEST(close_rejects_foreign_and_duplicate) {
  fake_adapter *fake = fake_setup(NULL);
  enum { N = 3 };
  EXAMPLE_ALLOCATION_DATA data[N];
  DXGK_ALLOCATIONINFO infos[N];
  for (UINT i = 0; i < N; i++) data[i] = example_allocation_data(4096, 0);
  assert_status(fake_create(fake, N, data, infos, false, NULL), STATUS_SUCCESS, "create");
  D3DKMT_HANDLE handles[N];
  for (UINT i = 0; i < N; i++) handles[i] = fake_handle_register(infos[i].hAllocation);
  HANDLE dev_a = fake_create_device(fake), dev_b = fake_create_device(fake);
  HANDLE bind_a[N], bind_b[N];
  assert_status(fake_open(fake, dev_a, N, handles, bind_a, true), STATUS_SUCCESS, "open a");
  assert_status(fake_open(fake, dev_b, N, handles, bind_b, false), STATUS_SUCCESS, "open b");
  ALDDI_LIVE_OBJECTS before = fake_live(fake);
  HANDLE dup[3] = {bind_a[0], bind_a[1], bind_a[0]};
  expect_status(fake_close(fake, dev_a, 3, dup), STATUS_INVALID_PARAMETER, "duplicate");
  HANDLE foreign[2] = {bind_a[2], bind_b[0]};
  expect_status(fake_close(fake, dev_a, 2, foreign), STATUS_INVALID_HANDLE,
                "a binding of another device");
  HANDLE with_null[2] = {bind_a[2], NULL};
  expect_status(fake_close(fake, dev_a, 2, with_null), STATUS_INVALID_HANDLE, "NULL entry");
  HANDLE alloc_handle[1] = {infos[0].hAllocation};
  expect_status(fake_close(fake, dev_a, 1, alloc_handle), STATUS_INVALID_HANDLE,
                "an allocation handle");
  expect_status(fake_close(fake, dev_a, 1, NULL), STATUS_INVALID_PARAMETER, "NULL list");
  expect_status(fake_close(fake, NULL, 1, bind_a), STATUS_INVALID_HANDLE, "NULL device");
  expect_status(fake->ddi->DxgkDdiCloseAllocation(dev_a, NULL), STATUS_INVALID_PARAMETER,
                "NULL args");
  live_is(fake, before, "failed closes changed nothing");
  /* Closed while its block lives on: closing it again is refused. */
  expect_status(fake_close(fake, dev_a, 1, bind_a), STATUS_SUCCESS, "close one");
  expect_status(fake_close(fake, dev_a, 1, bind_a), STATUS_INVALID_HANDLE, "close it twice");
  expect_status(fake_close(fake, dev_a, 2, bind_a + 1), STATUS_SUCCESS, "close the rest");
  expect_status(fake_close(fake, dev_b, N, bind_b), STATUS_SUCCESS, "close b");
  /* Open flags. */
  DXGK_OPENALLOCATIONINFO open_info = {handles[0], NULL, 0, NULL};
  DXGKARG_OPENALLOCATION open_args;
  memset(&open_args, 0, sizeof open_args);
  open_args.NumAllocations = 1;
  open_args.pOpenAllocation = &open_info;
  open_args.Flags.Value = 4;
  expect_status(fake->ddi->DxgkDdiOpenAllocation(dev_a, &open_args), STATUS_INVALID_PARAMETER,
                "reserved open flag");
  open_args.Flags.Value = 0;
  open_args.pOpenAllocation = NULL;
  expect_status(fake->ddi->DxgkDdiOpenAllocation(dev_a, &open_args), STATUS_INVALID_PARAMETER,
                "NULL open list");
  expect_status(fake->ddi->DxgkDdiOpenAllocation(NULL, &open_args), STATUS_INVALID_HANDLE,
                "NULL device");
  expect_ptr_eq(open_info.hDeviceSpecificAllocation, NULL, "nothing written");
  fake_destroy_infos(fake, N, infos);
  fake_destroy_device(fake, dev_a);
  fake_destroy_device(fake, dev_b);
  fake_teardown(fake);
}

TEST(open_fails_when_handle_unknown) {
  fake_adapter *fake = fake_setup(NULL);
  enum { N = 5 };
  EXAMPLE_ALLOCATION_DATA data[N];
  DXGK_ALLOCATIONINFO infos[N];
  for (UINT i = 0; i < N; i++) data[i] = example_allocation_data(4096, 0);
  assert_status(fake_create(fake, N, data, infos, false, NULL), STATUS_SUCCESS, "create");
  D3DKMT_HANDLE handles[N];
  for (UINT i = 0; i < N; i++) handles[i] = fake_handle_register(infos[i].hAllocation);
  HANDLE device = fake_create_device(fake);
  ALDDI_LIVE_OBJECTS before = fake_live(fake);
  for (UINT k = 0; k < N; k++) {
    D3DKMT_HANDLE bad[N];
    memcpy(bad, handles, sizeof bad);
    bad[k] = k % 2 ? 0 : 0xFFFFu; /* 0, or a handle the port does not know: GetHandleData NULL */
    HANDLE bindings[N];
    expect_status(fake_open(fake, device, N, bad, bindings, false), STATUS_INVALID_HANDLE,
                  "unknown handle at %u", k);
    for (UINT i = 0; i < N; i++) expect_ptr_eq(bindings[i], NULL, "k=%u: no binding %u", k, i);
    live_is(fake, before, "nothing left");
  }
  /* A handle the port forgot (GetHandleData returns NULL) fails the same way. */
  fake_handle_forget(handles[2]);
  HANDLE bindings[N];
  expect_status(fake_open(fake, device, N, handles, bindings, false), STATUS_INVALID_HANDLE,
                "forgotten handle");
  live_is(fake, before, "nothing left");
  fake_destroy_infos(fake, N, infos);
  fake_destroy_device(fake, device);
  fake_teardown(fake);
}

TEST(open_rejects_non_allocation_handle_data) {
  fake_adapter *fake = fake_setup(NULL);
  EXAMPLE_ALLOCATION_DATA data[2] = {example_allocation_data(4096, 0),
                                     example_allocation_data(4096, 0)};
  DXGK_ALLOCATIONINFO infos[2];
  HANDLE resource = NULL;
  assert_status(fake_create(fake, 2, data, infos, true, &resource), STATUS_SUCCESS, "create");
  HANDLE device = fake_create_device(fake);
  D3DKMT_HANDLE good = fake_handle_register(infos[0].hAllocation);
  HANDLE bound;
  assert_status(fake_open(fake, device, 1, &good, &bound, true), STATUS_SUCCESS, "open");
  ALDDI_LIVE_OBJECTS before = fake_live(fake);
  HANDLE wrong[3] = {resource, device, bound};
  for (int i = 0; i < 3; i++) {
    D3DKMT_HANDLE pair[2] = {good, fake_handle_register(wrong[i])};
    HANDLE out[2];
    expect_status(fake_open(fake, device, 2, pair, out, false), STATUS_INVALID_HANDLE,
                  "GetHandleData resolves to a non-allocation (%d)", i);
  }
  /* An allocation destroyed while its block lives on. */
  expect_status(fake_destroy(fake, 1, &infos[1].hAllocation, NULL, false), STATUS_SUCCESS,
                "destroy #1");
  before.Allocations--;
  D3DKMT_HANDLE stale = fake_handle_register(infos[1].hAllocation);
  HANDLE out;
  expect_status(fake_open(fake, device, 1, &stale, &out, false), STATUS_INVALID_HANDLE,
                "a destroyed allocation");
  live_is(fake, before, "nothing left");
  expect_status(fake_close(fake, device, 1, &bound), STATUS_SUCCESS, "close");
  expect_status(fake_destroy(fake, 1, &infos[0].hAllocation, resource, true), STATUS_SUCCESS,
                "destroy");
  fake_destroy_device(fake, device);
  fake_teardown(fake);
}

/* ---- Engine ---------------------------------------------------------------------------------- */

TEST(engine_completes_in_order_on_run) {
  fake_adapter *fake = fake_setup(NULL);
  HANDLE device = fake_create_device(fake);
  enum { SUBMITS = 300 }; /* more than the ring's first capacity: it grows */
  for (UINT i = 0; i < SUBMITS; i++)
    assert_status(fake_submit(fake, device, 1000 + i, 0, NULL), STATUS_SUCCESS, "submit %u", i);
  expect_u64_eq(fake_fence_count(fake), 0, "nothing completes until RunEngine");
  expect_u64_eq(fake_run(fake, 0), 0, "RunEngine(0) runs nothing");
  expect_u64_eq(fake_run(fake, 2), 2, "RunEngine(2)");
  assert_u64_eq(fake_fence_count(fake), 2, "two notifications");
  expect_u64_eq(fake->fences[0], 1000, "first fence");
  expect_u64_eq(fake->fences[1], 1001, "second fence");
  /* Interleave submissions with partial runs: the ring wraps and grows. */
  for (UINT i = 0; i < 100; i++) {
    assert_status(fake_submit(fake, NULL, 1000 + SUBMITS + i, 0, NULL), STATUS_SUCCESS,
                  "paging submit (no context)");
    expect_u64_eq(fake_run(fake, 1), 1, "one at a time");
  }
  expect_u64_eq(fake_run(fake, 1000000), SUBMITS + 100 - 102, "the rest");
  expect_u64_eq(fake_run(fake, 5), 0, "empty");
  assert_u64_eq(fake_fence_count(fake), SUBMITS + 100, "every fence once");
  for (UINT i = 0; i < SUBMITS + 100; i++)
    expect_u64_eq(fake->fences[i], 1000 + i, "in submission order (%u)", i);
  expect_status(fake->ddi->AlDdiRunEngine(fake->ctx, 1, NULL), STATUS_INVALID_PARAMETER,
                "NULL pCompleted");
  UINT completed;
  expect_status(fake->ddi->AlDdiRunEngine(NULL, 1, &completed), STATUS_INVALID_HANDLE,
                "NULL adapter");
  expect_status(fake->ddi->DxgkDdiSubmitCommand(fake->ctx, NULL), STATUS_INVALID_PARAMETER,
                "NULL submit");
  /* StopDevice drops what is queued. */
  expect_status(fake_submit(fake, device, 1, 0, NULL), STATUS_SUCCESS, "submit before stop");
  fake_destroy_device(fake, device);
  fake_teardown(fake);
}

TEST(submit_validates_allocation_list) {
  fake_adapter *fake = fake_setup(NULL);
  EXAMPLE_ALLOCATION_DATA data[2] = {example_allocation_data(4096, 0),
                                     example_allocation_data(4096, 0)};
  DXGK_ALLOCATIONINFO infos[2];
  assert_status(fake_create(fake, 2, data, infos, false, NULL), STATUS_SUCCESS, "create");
  D3DKMT_HANDLE handles[2] = {fake_handle_register(infos[0].hAllocation),
                              fake_handle_register(infos[1].hAllocation)};
  HANDLE dev_a = fake_create_device(fake), dev_b = fake_create_device(fake);
  HANDLE bind_a[2], bind_b[2];
  assert_status(fake_open(fake, dev_a, 2, handles, bind_a, true), STATUS_SUCCESS, "open a");
  assert_status(fake_open(fake, dev_b, 2, handles, bind_b, false), STATUS_SUCCESS, "open b");
  expect_status(fake_submit(fake, dev_a, 1, 2, bind_a), STATUS_SUCCESS, "own bindings");
  expect_status(fake_submit(fake, NULL, 2, 2, bind_b), STATUS_SUCCESS, "no context");
  HANDLE with_null[2] = {bind_a[0], NULL};
  expect_status(fake_submit(fake, dev_a, 3, 2, with_null), STATUS_INVALID_HANDLE, "NULL binding");
  expect_status(fake_submit(fake, dev_a, 4, 2, bind_b), STATUS_INVALID_HANDLE,
                "another device's bindings");
  expect_status(fake_submit(fake, fake->ctx, 5, 0, NULL), STATUS_INVALID_HANDLE,
                "an adapter as hContext");
  HANDLE alloc_as_binding[1] = {infos[0].hAllocation};
  expect_status(fake_submit(fake, dev_a, 6, 1, alloc_as_binding), STATUS_INVALID_HANDLE,
                "an allocation handle in the list");
  DXGKARG_SUBMITCOMMAND args;
  memset(&args, 0, sizeof args);
  args.AlAllocationListSize = 1;
  expect_status(fake->ddi->DxgkDdiSubmitCommand(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                "list size without a list");
  expect_status(fake_close(fake, dev_a, 1, bind_a), STATUS_SUCCESS, "close one of a");
  expect_status(fake_submit(fake, dev_a, 7, 2, bind_a), STATUS_INVALID_HANDLE, "a closed binding");
  expect_u64_eq(fake_run(fake, 100), 2, "only the two valid submissions were queued");
  assert_u64_eq(fake_fence_count(fake), 2, "two fences");
  expect_u64_eq(fake->fences[0], 1, "fence 1");
  expect_u64_eq(fake->fences[1], 2, "fence 2");
  expect_status(fake_close(fake, dev_a, 1, bind_a + 1), STATUS_SUCCESS, "close a");
  expect_status(fake_close(fake, dev_b, 2, bind_b), STATUS_SUCCESS, "close b");
  fake_destroy_infos(fake, 2, infos);
  fake_destroy_device(fake, dev_a);
  fake_destroy_device(fake, dev_b);
  fake_teardown(fake);
}

/* The notification callback re-enters the miniport: RunEngine (nested), SubmitCommand,
 * DestroyAllocation, QueryLiveObjects. No deadlock, each fence once, order kept. */
static HANDLE reenter_allocation;
static void reenter_on_notify(fake_adapter *fake, UINT fence) {
  ALDDI_LIVE_OBJECTS live;
  expect_status(fake->ddi->AlDdiQueryLiveObjects(fake->ctx, &live), STATUS_SUCCESS, "query");
  if (fence == 1) {
    expect_status(fake_submit(fake, NULL, 100, 0, NULL), STATUS_SUCCESS, "submit from callback");
    UINT completed = 0;
    expect_status(fake->ddi->AlDdiRunEngine(fake->ctx, 1, &completed), STATUS_SUCCESS,
                  "nested RunEngine");
    expect_u64_eq(completed, 1, "nested run completes fence 2");
    expect_status(fake_destroy(fake, 1, &reenter_allocation, NULL, false), STATUS_SUCCESS,
                  "destroy from callback");
  }
}

TEST(engine_notify_may_reenter) {
  fake_adapter *fake = fake_setup(NULL);
  EXAMPLE_ALLOCATION_DATA data = example_allocation_data(4096, 0);
  DXGK_ALLOCATIONINFO info;
  assert_status(fake_create(fake, 1, &data, &info, false, NULL), STATUS_SUCCESS, "create");
  reenter_allocation = info.hAllocation;
  for (UINT f = 1; f <= 5; f++)
    assert_status(fake_submit(fake, NULL, f, 0, NULL), STATUS_SUCCESS, "submit %u", f);
  fake->on_notify = reenter_on_notify;
  expect_u64_eq(fake_run(fake, 100), 5, "outer run: 1, 3, 4, 5, 100 (2 ran nested)");
  fake->on_notify = NULL;
  const UINT want[6] = {1, 2, 3, 4, 5, 100};
  assert_u64_eq(fake_fence_count(fake), 6, "six notifications");
  for (int i = 0; i < 6; i++) expect_u64_eq(fake->fences[i], want[i], "notification %d", i);
  expect_u64_eq(fake_live(fake).Allocations, 0, "destroyed from the callback");
  fake_teardown(fake);
}

/* ---- Paging ---------------------------------------------------------------------------------- */

static NTSTATUS paging(fake_adapter *fake, DXGK_BUILDPAGINGBUFFER_OPERATION op, HANDLE allocation,
                       UINT src_segment, LONGLONG src_address, UINT dst_segment,
                       LONGLONG dst_address, SIZE_T size) {
  DXGKARG_BUILDPAGINGBUFFER args;
  memset(&args, 0, sizeof args);
  args.Operation = op;
  if (op == DXGK_OPERATION_FILL) {
    args.Fill.hAllocation = allocation;
    args.Fill.FillSize = size;
    args.Fill.Destination.SegmentId = dst_segment;
    args.Fill.Destination.SegmentAddress.QuadPart = dst_address;
  } else {
    args.Transfer.hAllocation = allocation;
    args.Transfer.TransferSize = size;
    args.Transfer.Source.SegmentId = src_segment;
    args.Transfer.Source.SegmentAddress.QuadPart = src_address;
    args.Transfer.Destination.SegmentId = dst_segment;
    args.Transfer.Destination.SegmentAddress.QuadPart = dst_address;
  }
  return fake->ddi->DxgkDdiBuildPagingBuffer(fake->ctx, &args);
}

TEST(paging_fill_and_transfer) {
  EXAMPLE_HARDWARE_CONFIG config = config_64k();
  fake_adapter *fake = fake_setup(&config);
  EXAMPLE_ALLOCATION_DATA data[3] = {
      example_allocation_data(65536, EXAMPLE_ALLOCATION_MEMORY_ONLY),
      example_allocation_data(8192, EXAMPLE_ALLOCATION_APERTURE_ONLY),
      example_allocation_data(4096, 0)};
  DXGK_ALLOCATIONINFO infos[3];
  assert_status(fake_create(fake, 3, data, infos, false, NULL), STATUS_SUCCESS, "create");
  HANDLE mem = infos[0].hAllocation, ap = infos[1].hAllocation, any = infos[2].hAllocation;
  const LONGLONG mem_end = (LONGLONG)config.MemorySegmentSize;
  const LONGLONG ap_end = (LONGLONG)config.ApertureSegmentSize;
  const DXGK_BUILDPAGINGBUFFER_OPERATION F = DXGK_OPERATION_FILL, X = DXGK_OPERATION_TRANSFER;

  expect_status(paging(fake, F, mem, 0, 0, 1, 0, 65536), STATUS_SUCCESS, "fill memory at 0");
  expect_status(paging(fake, F, mem, 0, 0, 1, mem_end - 65536, 65536), STATUS_SUCCESS,
                "fill at the end of the segment");
  expect_status(paging(fake, F, mem, 0, 0, 1, mem_end, 65536), STATUS_INVALID_PARAMETER,
                "past the end");
  expect_status(paging(fake, F, mem, 0, 0, 1, 4096, 65536), STATUS_INVALID_PARAMETER,
                "not 64 KiB aligned");
  expect_status(paging(fake, F, mem, 0, 0, 1, -65536, 65536), STATUS_INVALID_PARAMETER,
                "negative address");
  expect_status(paging(fake, F, mem, 0, 0, 2, 0, 65536), STATUS_INVALID_PARAMETER,
                "memory-only into the aperture");
  expect_status(paging(fake, F, mem, 0, 0, 0, 0, 65536), STATUS_INVALID_PARAMETER,
                "fill into system memory");
  expect_status(paging(fake, F, mem, 0, 0, 3, 0, 65536), STATUS_INVALID_PARAMETER, "segment 3");
  expect_status(paging(fake, F, mem, 0, 0, 1, 0, 65537), STATUS_INVALID_PARAMETER,
                "FillSize > Size");
  expect_status(paging(fake, F, ap, 0, 0, 2, ap_end - 8192, 8192), STATUS_SUCCESS,
                "aperture: 4 KiB pages");
  expect_status(paging(fake, F, ap, 0, 0, 1, 0, 8192), STATUS_INVALID_PARAMETER,
                "aperture-only into memory");
  expect_status(paging(fake, X, mem, 1, 0, 2, 4096, 65536), STATUS_SUCCESS,
                "memory-only evicted to the aperture");
  expect_status(paging(fake, X, mem, 2, 4096, 0, 0, 65536), STATUS_SUCCESS, "to system memory");
  expect_status(paging(fake, X, mem, 0, 0, 1, 65536, 65536), STATUS_SUCCESS, "back to memory");
  expect_status(paging(fake, X, ap, 2, 0, 1, 0, 8192), STATUS_INVALID_PARAMETER,
                "aperture-only to memory");
  expect_status(paging(fake, X, ap, 2, ap_end - 8192, 0, 0, 8192), STATUS_SUCCESS,
                "aperture-only evicted to system memory");
  expect_status(paging(fake, X, any, 0, 0, 2, 8192, 65537), STATUS_INVALID_PARAMETER,
                "TransferSize > Size");
  expect_status(paging(fake, X, any, 7, 0, 2, 8192, 4096), STATUS_INVALID_PARAMETER,
                "bad source segment");
  expect_status(paging(fake, X, any, 0, 0, 2, 8192, 4096), STATUS_SUCCESS, "any: to the aperture");
  const DXGK_BUILDPAGINGBUFFER_OPERATION others[] = {
      DXGK_OPERATION_DISCARD_CONTENT,        DXGK_OPERATION_READ_PHYSICAL,
      DXGK_OPERATION_WRITE_PHYSICAL,         DXGK_OPERATION_MAP_APERTURE_SEGMENT,
      DXGK_OPERATION_UNMAP_APERTURE_SEGMENT, (DXGK_BUILDPAGINGBUFFER_OPERATION)99};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    DXGKARG_BUILDPAGINGBUFFER args;
    memset(&args, 0, sizeof args);
    args.Operation = others[i];
    args.Transfer.hAllocation = any;
    args.Transfer.TransferSize = 4096;
    expect_status(fake->ddi->DxgkDdiBuildPagingBuffer(fake->ctx, &args), STATUS_INVALID_PARAMETER,
                  "operation %d", (int)others[i]);
  }
  expect_status(paging(fake, F, NULL, 0, 0, 1, 0, 4096), STATUS_INVALID_HANDLE, "NULL allocation");
  expect_status(paging(fake, X, fake->ctx, 0, 0, 1, 0, 4096), STATUS_INVALID_HANDLE,
                "an adapter as allocation");
  expect_status(fake->ddi->DxgkDdiBuildPagingBuffer(fake->ctx, NULL), STATUS_INVALID_PARAMETER,
                "NULL args");
  /* Destroyed while its block lives on: refused. */
  expect_status(fake_destroy(fake, 1, &any, NULL, false), STATUS_SUCCESS, "destroy any");
  expect_status(paging(fake, X, any, 0, 0, 2, 0, 4096), STATUS_INVALID_HANDLE, "destroyed");
  HANDLE rest[2] = {mem, ap};
  expect_status(fake_destroy(fake, 2, rest, NULL, false), STATUS_SUCCESS, "destroy the rest");
  fake_teardown(fake);
}

/* ---- Teardown paths -------------------------------------------------------------------------- */

TEST(destroy_device_reclaims_forgotten_bindings) {
  fake_adapter *fake = fake_setup(NULL);
  enum { N = 3 };
  EXAMPLE_ALLOCATION_DATA data[N];
  DXGK_ALLOCATIONINFO infos[N];
  for (UINT i = 0; i < N; i++) data[i] = example_allocation_data(4096, 0);
  assert_status(fake_create(fake, N, data, infos, false, NULL), STATUS_SUCCESS, "create");
  D3DKMT_HANDLE handles[N];
  for (UINT i = 0; i < N; i++) handles[i] = fake_handle_register(infos[i].hAllocation);
  UINT64 allocation_bytes = fake_live(fake).HostBytes;
  HANDLE keeper = fake_create_device(fake), forgetful = fake_create_device(fake);
  UINT64 with_devices = fake_live(fake).HostBytes;
  HANDLE kept[N], lost1[N], lost2[N];
  assert_status(fake_open(fake, keeper, N, handles, kept, true), STATUS_SUCCESS, "open keeper");
  assert_status(fake_open(fake, forgetful, N, handles, lost1, false), STATUS_SUCCESS, "open 1");
  assert_status(fake_open(fake, forgetful, 2, handles, lost2, false), STATUS_SUCCESS, "open 2");
  expect_status(fake_close(fake, forgetful, 1, lost1), STATUS_SUCCESS, "close one of them");
  expect_u64_eq(fake_live(fake).OpenAllocations, 2 * N + 1, "bindings before");
  /* The port forgets the rest and destroys the device. */
  fake_destroy_device(fake, forgetful);
  ALDDI_LIVE_OBJECTS live = fake_live(fake);
  expect_u64_eq(live.Devices, 1, "one device left");
  expect_u64_eq(live.OpenAllocations, N, "only the keeper's bindings");
  expect_status(fake_close(fake, keeper, N, kept), STATUS_SUCCESS, "keeper closes");
  fake_destroy_device(fake, keeper);
  live = fake_live(fake);
  expect_u64_eq(live.HostBytes, allocation_bytes, "only the allocations' block is held");
  expect_u64_gt(with_devices, allocation_bytes, "devices were counted");
  /* Bindings left on a destroyed allocation are freed with their device too (the binding never
   * touches the allocation). */
  HANDLE late = fake_create_device(fake);
  HANDLE late_bindings[N];
  assert_status(fake_open(fake, late, N, handles, late_bindings, false), STATUS_SUCCESS, "open");
  fake_destroy_infos(fake, N, infos);
  fake_destroy_device(fake, late);
  fake_teardown(fake);
}

/* RemoveDevice frees whatever the port left (ASan's leak check is the judge). */
TEST(remove_device_frees_everything) {
  fake_adapter *fake = fake_setup(NULL);
  EXAMPLE_ALLOCATION_DATA data[4];
  for (UINT i = 0; i < 4; i++) data[i] = example_allocation_data(4096 << i, 0);
  DXGK_ALLOCATIONINFO loose[2], in_resource[2];
  HANDLE resource = NULL, empty = NULL;
  assert_status(fake_create(fake, 2, data, loose, false, NULL), STATUS_SUCCESS, "loose");
  assert_status(fake_create(fake, 2, data + 2, in_resource, true, &resource), STATUS_SUCCESS,
                "in a resource");
  DXGK_ALLOCATIONINFO gone;
  assert_status(fake_create(fake, 1, data, &gone, true, &empty), STATUS_SUCCESS, "to be emptied");
  expect_status(fake_destroy(fake, 1, &gone.hAllocation, NULL, false), STATUS_SUCCESS, "empty it");
  D3DKMT_HANDLE handles[2] = {fake_handle_register(loose[0].hAllocation),
                              fake_handle_register(in_resource[1].hAllocation)};
  HANDLE devices[2] = {fake_create_device(fake), fake_create_device(fake)};
  HANDLE bindings[2];
  assert_status(fake_open(fake, devices[0], 2, handles, bindings, true), STATUS_SUCCESS, "open");
  assert_status(fake_open(fake, devices[1], 2, handles, bindings, false), STATUS_SUCCESS, "open");
  for (UINT f = 0; f < 10; f++)
    assert_status(fake_submit(fake, devices[1], f, 2, bindings), STATUS_SUCCESS, "submit");
  ALDDI_LIVE_OBJECTS live = fake_live(fake);
  expect_u64_eq(live.Devices, 2, "devices");
  expect_u64_eq(live.Resources, 2, "resources");
  expect_u64_eq(live.Allocations, 4, "allocations");
  expect_u64_eq(live.OpenAllocations, 4, "bindings");
  fake->skip_zero_check = true;
  fake_teardown(fake);
}

/* ---- Concurrency ----------------------------------------------------------------------------- */

enum { STRESS_THREADS = 4, STRESS_ITERATIONS = 4000 };

/* Workers never call the harness (its failure count and longjmp belong to the main thread):
 * they count their own failures and remember the first one. */
typedef struct stress_worker {
  fake_adapter *fake;
  HANDLE shared_resource;
  HANDLE device; /* created and destroyed by the main thread */
  UINT id;
  UINT submitted;
  UINT failures;
  const char *first_failure;
  UINT first_failure_iteration;
} stress_worker;

static atomic_uint stress_workers_done;

static bool stress_ok(stress_worker *worker, NTSTATUS status, const char *what, UINT iteration) {
  if (NT_SUCCESS(status)) return true;
  if (worker->failures++ == 0) {
    worker->first_failure = what;
    worker->first_failure_iteration = iteration;
  }
  return false;
}

static void *stress_worker_main(void *arg) {
  stress_worker *worker = arg;
  fake_adapter *fake = worker->fake;
  for (UINT i = 0; i < STRESS_ITERATIONS; i++) {
    EXAMPLE_ALLOCATION_DATA data[3] = {
        example_allocation_data(4096 * (i % 7 + 1), 0),
        example_allocation_data(8192, EXAMPLE_ALLOCATION_MEMORY_ONLY),
        example_allocation_data(65536, EXAMPLE_ALLOCATION_APERTURE_ONLY)};
    DXGK_ALLOCATIONINFO infos[3];
    bool shared = i % 5 == 0; /* every fifth batch goes into the shared resource */
    HANDLE resource = worker->shared_resource;
    if (!stress_ok(worker, fake_create(fake, 3, data, infos, shared, shared ? &resource : NULL),
                   "create", i))
      break;
    D3DKMT_HANDLE handles[3];
    for (int j = 0; j < 3; j++) handles[j] = fake_handle_register(infos[j].hAllocation);
    HANDLE bindings[3];
    if (!stress_ok(worker, fake_open(fake, worker->device, 3, handles, bindings, true), "open", i))
      break;
    UINT fence = worker->id << 24 | i;
    if (stress_ok(worker, fake_submit(fake, worker->device, fence, 3, bindings), "submit", i))
      worker->submitted++;
    stress_ok(worker, fake_close(fake, worker->device, 3, bindings), "close", i);
    for (int j = 0; j < 3; j++) fake_handle_forget(handles[j]);
    HANDLE list[3] = {infos[0].hAllocation, infos[1].hAllocation, infos[2].hAllocation};
    stress_ok(worker, fake_destroy(fake, 3, list, NULL, false), "destroy", i);
  }
  atomic_fetch_add(&stress_workers_done, 1);
  return NULL;
}

static void *stress_runner_main(void *arg) {
  fake_adapter *fake = arg;
  while (atomic_load(&stress_workers_done) < STRESS_THREADS) {
    UINT completed;
    fake->ddi->AlDdiRunEngine(fake->ctx, 7, &completed);
    ALDDI_LIVE_OBJECTS live;
    fake->ddi->AlDdiQueryLiveObjects(fake->ctx, &live);
  }
  return NULL;
}

TEST(concurrent_devices_and_engine) {
  fake_adapter *fake = fake_setup(NULL);
  atomic_store(&stress_workers_done, 0);
  EXAMPLE_ALLOCATION_DATA seed = example_allocation_data(4096, 0);
  DXGK_ALLOCATIONINFO seed_info;
  HANDLE resource = NULL;
  assert_status(fake_create(fake, 1, &seed, &seed_info, true, &resource), STATUS_SUCCESS,
                "the shared resource");
  stress_worker workers[STRESS_THREADS];
  pthread_t threads[STRESS_THREADS], runner;
  for (UINT t = 0; t < STRESS_THREADS; t++) {
    memset(&workers[t], 0, sizeof workers[t]);
    workers[t].fake = fake;
    workers[t].shared_resource = resource;
    workers[t].device = fake_create_device(fake);
    workers[t].id = t + 1;
  }
  for (UINT t = 0; t < STRESS_THREADS; t++)
    assert_true(pthread_create(&threads[t], NULL, stress_worker_main, &workers[t]) == 0, "thread");
  assert_true(pthread_create(&runner, NULL, stress_runner_main, fake) == 0, "runner");
  for (UINT t = 0; t < STRESS_THREADS; t++) pthread_join(threads[t], NULL);
  pthread_join(runner, NULL);
  for (UINT t = 0; t < STRESS_THREADS; t++) {
    expect_u64_eq(workers[t].failures, 0, "worker %u: first failure: %s at iteration %u", t + 1,
                  workers[t].first_failure ? workers[t].first_failure : "-",
                  workers[t].first_failure_iteration);
    fake_destroy_device(fake, workers[t].device);
  }
  UINT completed;
  do completed = fake_run(fake, 1000);
  while (completed != 0);

  UINT total = 0;
  for (UINT t = 0; t < STRESS_THREADS; t++) total += workers[t].submitted;
  expect_u64_eq(total, STRESS_THREADS * STRESS_ITERATIONS, "every submission accepted");
  assert_u64_eq(fake_fence_count(fake), total, "every fence completed once");
  /* One runner: each worker's fences complete in its submission order. */
  UINT next[STRESS_THREADS + 1] = {0};
  for (UINT i = 0; i < total; i++) {
    UINT id = fake->fences[i] >> 24, seq = fake->fences[i] & 0xFFFFFFu;
    if (id == 0 || id > STRESS_THREADS) {
      expect_true(false, "fence %#x from no worker", fake->fences[i]);
      continue;
    }
    expect_u64_eq(seq, next[id], "worker %u in order", id);
    next[id] = seq + 1;
  }
  ALDDI_LIVE_OBJECTS live = fake_live(fake);
  expect_u64_eq(live.Allocations, 1, "only the shared resource's first allocation remains");
  expect_u64_eq(live.Resources, 1, "the shared resource");
  expect_u64_eq(live.OpenAllocations, 0, "no bindings");
  expect_u64_eq(live.Devices, 0, "no devices");
  expect_status(fake_destroy(fake, 1, &seed_info.hAllocation, resource, true), STATUS_SUCCESS,
                "destroy the shared resource");
  fake_teardown(fake);
}

/* ---- The whole path, ending at zero ---------------------------------------------------------- */

TEST(full_lifecycle_ends_at_zero) {
  fake_adapter *fake = fake_setup(NULL);
  HANDLE device = fake_create_device(fake);
  EXAMPLE_ALLOCATION_DATA data[2] = {
      example_allocation_data(100000, EXAMPLE_ALLOCATION_CPU_VISIBLE),
      example_allocation_data(1, 0)};
  DXGK_ALLOCATIONINFO infos[2];
  HANDLE resource = NULL;
  assert_status(fake_create(fake, 2, data, infos, true, &resource), STATUS_SUCCESS, "create");
  D3DKMT_HANDLE handles[2] = {fake_handle_register(infos[0].hAllocation),
                              fake_handle_register(infos[1].hAllocation)};
  HANDLE bindings[2];
  assert_status(fake_open(fake, device, 2, handles, bindings, true), STATUS_SUCCESS, "open");
  expect_status(paging(fake, DXGK_OPERATION_FILL, infos[0].hAllocation, 0, 0, 1, 0, infos[0].Size),
                STATUS_SUCCESS, "place");
  assert_status(fake_submit(fake, device, 42, 2, bindings), STATUS_SUCCESS, "submit");
  expect_u64_eq(fake_run(fake, 10), 1, "run");
  assert_u64_eq(fake_fence_count(fake), 1, "one fence");
  expect_u64_eq(fake->fences[0], 42, "fence 42");
  expect_status(fake_close(fake, device, 2, bindings), STATUS_SUCCESS, "close");
  HANDLE list[2] = {infos[0].hAllocation, infos[1].hAllocation};
  expect_status(fake_destroy(fake, 2, list, resource, true), STATUS_SUCCESS, "destroy");
  fake_destroy_device(fake, device);
  live_is(fake, live_zero, "everything back to zero");
  fake_teardown(fake);
}

RUN_TESTS(T(registration_fills_every_entry), T(add_device_rejects_bad_config),
          T(start_device_checks_interface), T(query_segments_two_calls),
          T(query_segments_rejects_bad_arguments), T(create_device_fills_info),
          T(create_allocation_flag_combinations), T(create_allocation_rounds_to_segment_pages),
          T(create_allocation_rejects_bad_arguments), T(hostile_private_data_every_size),
          T(hostile_private_data_bad_fields), T(random_private_data_matches_reference),
          T(create_failure_at_k_rolls_back), T(one_block_per_create_call),
          T(destroy_allocation_validates_list), T(resource_create_add_destroy),
          T(resource_destroy_rules), T(open_close_bindings), T(close_rejects_foreign_and_duplicate),
          T(open_fails_when_handle_unknown), T(open_rejects_non_allocation_handle_data),
          T(engine_completes_in_order_on_run), T(submit_validates_allocation_list),
          T(engine_notify_may_reenter), T(paging_fill_and_transfer),
          T(destroy_device_reclaims_forgotten_bindings), T(remove_device_frees_everything),
          T(concurrent_devices_and_engine), T(full_lifecycle_ends_at_zero))
