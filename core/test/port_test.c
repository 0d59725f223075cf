/*
 * port_test.c — end-to-end tests of the port (core/) through its public API, against the
 * selected miniport (al_selected_miniport, //hw:miniport) wrapped by the recording miniport
 * (recording_miniport.h), so every DDI the port makes is logged and failures can be injected.
 *
 * The tests use only generic requests (al_allocation_request / al_hardware_request), so the same
 * source runs against any miniport the label flag selects. Most adapters run with the DDI
 * verifier (AL_ADAPTER_VERIFIER), which aborts on any DDI-order violation: a clean run also
 * proves the order. Every test ends with al_adapter_check() and, after the adapter is gone, a
 * replay of the DDI log against the contract (recording_check_contract).
 *
 * "Changes nothing" is checked by comparing al_adapter_get_stats before and after a failing call
 * (object counts and per-segment used bytes / blocks) and, where the miniport is involved, its
 * live objects (AlDdiQueryLiveObjects through the inner table).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/alloclab.h"
#include "alloclab/hw/miniport.h"
#include "recording_miniport.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define PDATA_CAP 256u
#define MSG_CAP 512u

/* ---- Fixtures ------------------------------------------------------------------------------- */

/* Private data for one generic allocation request. */
typedef struct pdata {
  unsigned char bytes[PDATA_CAP];
  uint32_t size;
} pdata;

static pdata make_pdata(uint64_t size, al_placement placement, uint32_t alignment) {
  pdata p;
  memset(&p, 0, sizeof p);
  al_allocation_request request = {.size = size, .alignment = alignment, .placement = placement};
  p.size = al_selected_miniport.make_allocation_data(&request, p.bytes, sizeof p.bytes);
  if (p.size == 0 || p.size > PDATA_CAP) {
    fprintf(stderr, "port_test: the %s miniport cannot express a %llu-byte allocation (placement %d)\n",
            al_selected_miniport.name, (unsigned long long)size, (int)placement);
    abort();
  }
  return p;
}

/* A hardware configuration that must outlive the adapter (the port keeps the pointer). */
typedef struct hw_config {
  unsigned char bytes[512];
  uint32_t size;
} hw_config;

static hw_config hw_configs[8];
static unsigned hw_config_next;

/* Creates an adapter on @entry (NULL: the recording miniport) with @memory / @aperture byte
 * segments (0: the miniport's default). Returns NULL and marks the test skipped when the
 * miniport cannot honour the request; asserts success otherwise. */
static al_adapter *adapter_on(PDRIVER_INITIALIZE entry, uint64_t memory, uint64_t aperture, uint32_t flags) {
  hw_config *config = &hw_configs[hw_config_next++ % 8];
  al_hardware_request request = {.memory_segment_size = memory, .aperture_segment_size = aperture};
  config->size = al_selected_miniport.make_hardware_config(&request, config->bytes, sizeof config->bytes);
  if (config->size == 0) {
    al_test_skip("the selected miniport cannot make this hardware configuration");
    return NULL;
  }
  al_adapter_config ac = {
      .driver_entry = entry ? entry : RecordingMiniportDriverEntry,
      .hardware_config = config->bytes,
      .hardware_config_size = config->size,
      .flags = flags,
  };
  al_adapter *adapter = NULL;
  NTSTATUS status = al_adapter_create(&ac, &adapter);
  assert_status(status, STATUS_SUCCESS, "al_adapter_create (memory %llu, aperture %llu, flags 0x%x)",
                (unsigned long long)memory, (unsigned long long)aperture, flags);
  return adapter;
}

/* The usual adapter: recording miniport, 1 MiB memory + 1 MiB aperture, verifier on. */
static al_adapter *new_adapter(void) {
  recording_reset();
  return adapter_on(NULL, 1 * MiB, 1 * MiB, AL_ADAPTER_VERIFIER);
}

static al_handle new_device(al_adapter *adapter) {
  al_handle device = 0;
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "al_device_create");
  assert_u64_ne(device, 0, "a device handle is never 0");
  return device;
}

static void expect_check(al_adapter *adapter, const char *when) {
  char msg[MSG_CAP];
  bool ok = al_adapter_check(adapter, msg, sizeof msg);
  expect_true(ok, "al_adapter_check (%s): %s", when, msg);
}

/* Checks the adapter, destroys it, then replays the DDI log against the contract (@fences:
 * also rule 6; false when the test used AL_DESTROY_ASSUME_NOT_IN_USE). */
static void finish_with(al_adapter *adapter, bool fences) {
  if (adapter == NULL) return;
  expect_check(adapter, "at the end of the test");
  al_adapter_destroy(adapter);
  char msg[MSG_CAP];
  bool ok = recording_check_contract(fences, msg, sizeof msg);
  expect_true(ok, "recording_check_contract: %s", msg);
  if (!ok) recording_dump(0);
}

static void finish(al_adapter *adapter) { finish_with(adapter, true); }

/* Creates @n allocations, each with private data @p, on @device. @flags / @resource as in
 * al_create_allocation_args; @out_resource may be NULL. */
static NTSTATUS create_n(al_adapter *adapter, al_handle device, uint32_t flags, al_handle resource,
                         uint32_t n, const pdata *p, al_handle *out, al_handle *out_resource) {
  al_allocation_desc *descs = calloc(n ? n : 1, sizeof *descs);
  if (descs == NULL) abort();
  for (uint32_t i = 0; i < n; i++) descs[i] = (al_allocation_desc){p->bytes, p->size};
  al_create_allocation_args args = {
      .device = device,
      .resource = resource,
      .flags = flags,
      .allocation_count = n,
      .allocations = descs,
      .out_allocations = out,
      .out_resource = out_resource,
  };
  NTSTATUS status = al_allocation_create(adapter, &args);
  free(descs);
  return status;
}

static NTSTATUS destroy_list(al_adapter *adapter, al_handle device, const al_handle *list, uint32_t n,
                             uint32_t flags) {
  al_destroy_allocation_args args = {
      .device = device, .allocations = list, .allocation_count = n, .flags = flags};
  return al_allocation_destroy(adapter, &args);
}

static NTSTATUS destroy_resource(al_adapter *adapter, al_handle device, al_handle resource, uint32_t flags) {
  al_destroy_allocation_args args = {.device = device, .resource = resource, .flags = flags};
  return al_allocation_destroy(adapter, &args);
}

static NTSTATUS submit_commands(al_adapter *adapter, al_handle device, const al_handle *list,
                                uint32_t n, al_command_kind kind, uint64_t *out_fence);

static NTSTATUS submit(al_adapter *adapter, al_handle device, const al_handle *list, uint32_t n,
                       uint64_t *out_fence) {
  return submit_commands(adapter, device, list, n, AL_COMMAND_FILL, out_fence);
}

/* Work that references the allocations (so they are pinned to it) but, with AL_COMMAND_NOP,
 * never touches their memory: what a caller may truthfully destroy with ASSUME_NOT_IN_USE. */
static NTSTATUS submit_commands(al_adapter *adapter, al_handle device, const al_handle *list,
                                uint32_t n, al_command_kind kind, uint64_t *out_fence) {
  /* Real work for any miniport: a small FILL of each referenced allocation (generic commands
   * through al_selected_miniport.append_command). */
  uint32_t cap = (n ? n : 1) * al_selected_miniport.command_size_max;
  unsigned char *command = malloc(cap);
  if (command == NULL) return STATUS_NO_MEMORY;
  uint32_t used = 0;
  for (uint32_t i = 0; i < n; i++) {
    al_command_request fill = {.kind = kind, .index = i, .offset = 0, .size = 64, .pattern = 0xA5A5A5A5u};
    used += al_selected_miniport.append_command(&fill, command + used, cap - used);
  }
  al_submit_args args = {
      .device = device,
      .allocations = list,
      .allocation_count = n,
      .command = used ? command : NULL,
      .command_size = used,
      .out_fence = out_fence,
  };
  NTSTATUS status = al_submit(adapter, &args);
  free(command);
  return status;
}

static al_adapter_stats stats_of(al_adapter *adapter) {
  al_adapter_stats stats;
  al_adapter_get_stats(adapter, &stats);
  return stats;
}

/* True when the user-visible state of the two snapshots is the same (counts, fences, segments). */
static bool same_state(const al_adapter_stats *a, const al_adapter_stats *b, char *why, size_t cap) {
#define SAME_(field)                                                                                        \
  if (a->field != b->field) {                                                                               \
    snprintf(why, cap, #field " %llu -> %llu", (unsigned long long)a->field, (unsigned long long)b->field); \
    return false;                                                                                           \
  }
  SAME_(devices);
  SAME_(resources);
  SAME_(allocations);
  SAME_(bindings);
  SAME_(deferred_destroys);
  SAME_(deferred_allocations);
  SAME_(fence_submitted);
  SAME_(fence_completed);
  SAME_(evictions);
  SAME_(page_ins);
  SAME_(segment_count);
  for (uint32_t i = 0; i < a->segment_count; i++) {
    SAME_(segments[i].used_bytes);
    SAME_(segments[i].live_blocks);
  }
#undef SAME_
  return true;
}

#define expect_unchanged(adapter, before, what)                                           \
  do {                                                                                    \
    al_adapter_stats after_ = stats_of(adapter);                                          \
    char why_[128];                                                                       \
    bool same_ = same_state(&(before), &after_, why_, sizeof why_);                       \
    expect_true(same_, "the adapter changed (%s) after: %s", why_, (const char *)(what)); \
  } while (0)

/* The miniport's live objects (through the inner table: not logged, not seen by the port). */
static ALDDI_LIVE_OBJECTS miniport_live(void) {
  ALDDI_LIVE_OBJECTS live;
  memset(&live, 0, sizeof live);
  (void)recording_query_live(recording_last_adapter(), &live);
  return live;
}

static bool same_live(const ALDDI_LIVE_OBJECTS *a, const ALDDI_LIVE_OBJECTS *b) {
  return a->Devices == b->Devices && a->Resources == b->Resources && a->Allocations == b->Allocations &&
         a->OpenAllocations == b->OpenAllocations && a->HostBytes == b->HostBytes;
}

#define expect_live_unchanged(before, what)                                                               \
  do {                                                                                                    \
    ALDDI_LIVE_OBJECTS now_ = miniport_live();                                                            \
    expect_true(same_live(&(before), &now_),                                                              \
                "miniport live objects changed (devices %u->%u resources %u->%u allocations "             \
                "%u->%u bindings %u->%u bytes %llu->%llu) after: %s",                                     \
                (before).Devices, now_.Devices, (before).Resources, now_.Resources, (before).Allocations, \
                now_.Allocations, (before).OpenAllocations, now_.OpenAllocations,                         \
                (unsigned long long)(before).HostBytes, (unsigned long long)now_.HostBytes,               \
                (const char *)(what));                                                                    \
  } while (0)

/* The 1-based id of the first memory (non-aperture) / aperture segment, 0 when none. */
static uint32_t segment_id(al_adapter *adapter, bool aperture) {
  al_adapter_stats stats = stats_of(adapter);
  for (uint32_t i = 0; i < stats.segment_count; i++)
    if (stats.segments[i].aperture == aperture) return stats.segments[i].id;
  return 0;
}

static uint64_t used_in(al_adapter *adapter, uint32_t id) {
  al_adapter_stats stats = stats_of(adapter);
  for (uint32_t i = 0; i < stats.segment_count; i++)
    if (stats.segments[i].id == id) return stats.segments[i].used_bytes;
  return 0;
}

static uint64_t used_total(const al_adapter_stats *stats) {
  uint64_t used = 0;
  for (uint32_t i = 0; i < stats->segment_count; i++) used += stats->segments[i].used_bytes;
  return used;
}

static al_allocation_info query(al_adapter *adapter, al_handle allocation) {
  al_allocation_info info;
  memset(&info, 0, sizeof info);
  NTSTATUS status = al_allocation_query(adapter, allocation, &info);
  expect_status(status, STATUS_SUCCESS, "al_allocation_query(0x%08x)", allocation);
  return info;
}

/* ---- 1. Adapter bring-up and DxgkInitialize -------------------------------------------------- */

static NTSTATUS APIENTRY entry_registers_nothing(PDRIVER_OBJECT driver, PUNICODE_STRING path) {
  (void)driver;
  (void)path;
  return STATUS_SUCCESS;
}

static NTSTATUS APIENTRY entry_fails(PDRIVER_OBJECT driver, PUNICODE_STRING path) {
  (void)driver;
  (void)path;
  return STATUS_NO_MEMORY;
}

/* Registers a table with the wrong Version, ignores the answer and claims success. */
static NTSTATUS APIENTRY entry_wrong_version(PDRIVER_OBJECT driver, PUNICODE_STRING path) {
  DRIVER_INITIALIZATION_DATA table;
  recording_table(&table);
  table.Version = DXGKDDI_INTERFACE_VERSION + 1;
  (void)DxgkInitialize(driver, path, &table);
  return STATUS_SUCCESS;
}

/* What entry_probe_initialize saw from each DxgkInitialize call. */
#define REQUIRED_DDIS 12
static const size_t required_ddi_offsets[REQUIRED_DDIS] = {
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiAddDevice),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiStartDevice),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiStopDevice),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiRemoveDevice),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiQueryAdapterInfo),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiCreateDevice),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiDestroyDevice),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiCreateAllocation),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiDestroyAllocation),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiOpenAllocation),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiCloseAllocation),
    offsetof(DRIVER_INITIALIZATION_DATA, DxgkDdiSubmitCommand),
};
static struct {
  NTSTATUS null_driver, null_table, wrong_version, missing[REQUIRED_DDIS], valid, second;
} probe;

static NTSTATUS APIENTRY failing_create_device(const HANDLE adapter, DXGKARG_CREATEDEVICE *args) {
  (void)adapter;
  (void)args;
  return STATUS_NO_MEMORY;
}

/* Every DxgkInitialize error on the adapter's own driver object, then one valid registration,
 * then a second one (whose table, if it were taken, would fail every CreateDevice). */
static NTSTATUS APIENTRY entry_probe_initialize(PDRIVER_OBJECT driver, PUNICODE_STRING path) {
  DRIVER_INITIALIZATION_DATA table;
  recording_table(&table);
  probe.null_driver = DxgkInitialize(NULL, path, &table);
  probe.null_table = DxgkInitialize(driver, path, NULL);
  DRIVER_INITIALIZATION_DATA bad = table;
  bad.Version = DXGKDDI_INTERFACE_VERSION ^ 0x100u;
  probe.wrong_version = DxgkInitialize(driver, path, &bad);
  for (int i = 0; i < REQUIRED_DDIS; i++) {
    bad = table;
    memset((char *)&bad + required_ddi_offsets[i], 0, sizeof(void (*)(void)));
    probe.missing[i] = DxgkInitialize(driver, path, &bad);
  }
  probe.valid = DxgkInitialize(driver, path, &table);
  bad = table;
  bad.DxgkDdiCreateDevice = failing_create_device;
  probe.second = DxgkInitialize(driver, path, &bad);
  return probe.valid;
}

TEST(test_adapter_create_errors) {
  recording_reset();
  hw_config config;
  al_hardware_request request = {.memory_segment_size = 1 * MiB, .aperture_segment_size = 1 * MiB};
  config.size = al_selected_miniport.make_hardware_config(&request, config.bytes, sizeof config.bytes);
  assert_true(config.size != 0, "make_hardware_config");
  al_adapter_config good = {.driver_entry = RecordingMiniportDriverEntry,
                            .hardware_config = config.bytes,
                            .hardware_config_size = config.size,
                            .flags = AL_ADAPTER_VERIFIER};
  al_adapter *const sentinel = (al_adapter *)(uintptr_t)0x1234;
  al_adapter *adapter = sentinel;
  expect_status(al_adapter_create(NULL, &adapter), STATUS_INVALID_PARAMETER, "NULL config");
  expect_status(al_adapter_create(&good, NULL), STATUS_INVALID_PARAMETER, "NULL out_adapter");
  al_adapter_config bad = good;
  bad.driver_entry = NULL;
  expect_status(al_adapter_create(&bad, &adapter), STATUS_INVALID_PARAMETER, "NULL driver_entry");
  bad = good;
  bad.flags = AL_ADAPTER_FLAGS_ALL + 1;
  expect_status(al_adapter_create(&bad, &adapter), STATUS_INVALID_PARAMETER, "unknown flag bit");
  bad.flags = 0x80000000u;
  expect_status(al_adapter_create(&bad, &adapter), STATUS_INVALID_PARAMETER, "unknown flag bit 31");
  bad = good;
  bad.driver_entry = entry_registers_nothing;
  expect_status(al_adapter_create(&bad, &adapter), STATUS_GRAPHICS_DRIVER_MISMATCH,
                "a DriverEntry that registers nothing");
  bad.driver_entry = entry_wrong_version;
  expect_status(al_adapter_create(&bad, &adapter), STATUS_GRAPHICS_DRIVER_MISMATCH,
                "a DriverEntry whose registration was refused (wrong Version)");
  bad.driver_entry = entry_fails;
  expect_status(al_adapter_create(&bad, &adapter), STATUS_NO_MEMORY, "a failing DriverEntry");
  expect_ptr_eq(adapter, sentinel, "a failed al_adapter_create writes no adapter");
  expect_u64_eq(recording_count(), 0, "no DDI was called by the failed creates");

  /* Bring-up failures of the miniport pass through and leave nothing (RemoveDevice after a
   * successful AddDevice; the miniport's objects are freed: ASan checks the leak). */
  const rec_ddi steps[] = {REC_ADD_DEVICE, REC_START_DEVICE, REC_QUERY_ADAPTER_INFO};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    recording_reset();
    recording_fail_call(steps[i], 0, STATUS_NO_MEMORY);
    adapter = sentinel;
    expect_status(al_adapter_create(&good, &adapter), STATUS_NO_MEMORY, "%s fails",
                  recording_ddi_name(steps[i]));
    expect_ptr_eq(adapter, sentinel, "no adapter after a failed %s", recording_ddi_name(steps[i]));
    bool added = steps[i] != REC_ADD_DEVICE;
    expect_u64_eq(recording_count_of(REC_REMOVE_DEVICE, 0), added ? 1 : 0, "RemoveDevice after a failed %s",
                  recording_ddi_name(steps[i]));
    expect_u64_eq(recording_count_of(REC_STOP_DEVICE, 0), steps[i] == REC_QUERY_ADAPTER_INFO ? 1 : 0,
                  "StopDevice after a failed %s", recording_ddi_name(steps[i]));
  }
  const rec_bad_segments broken[] = {
      REC_SEGMENTS_NONE,          REC_SEGMENTS_TOO_MANY,          REC_SEGMENTS_COUNT_CHANGES,
      REC_SEGMENTS_BAD_PAGE_SIZE, REC_SEGMENTS_NOT_PAGE_MULTIPLE, REC_SEGMENTS_ZERO_SIZE};
  for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
    recording_reset();
    recording_break_segments(broken[i]);
    adapter = sentinel;
    expect_status(al_adapter_create(&good, &adapter), STATUS_GRAPHICS_DRIVER_MISMATCH,
                  "segments broken in way %d", (int)broken[i]);
    expect_ptr_eq(adapter, sentinel, "no adapter with broken segments %d", (int)broken[i]);
    expect_u64_eq(recording_count_of(REC_REMOVE_DEVICE, 0), 1, "RemoveDevice (segments %d)", (int)broken[i]);
  }

  /* DxgkInitialize's own errors, on the adapter's driver object: none registers anything. */
  recording_reset();
  memset(&probe, 0, sizeof probe);
  bad = good;
  bad.driver_entry = entry_probe_initialize;
  adapter = NULL;
  assert_status(al_adapter_create(&bad, &adapter), STATUS_SUCCESS, "after the refused registrations");
  expect_status(probe.null_driver, STATUS_INVALID_PARAMETER, "DxgkInitialize(NULL driver)");
  expect_status(probe.null_table, STATUS_INVALID_PARAMETER, "DxgkInitialize(NULL table)");
  expect_status(probe.wrong_version, STATUS_GRAPHICS_DRIVER_MISMATCH, "DxgkInitialize(wrong Version)");
  for (int i = 0; i < REQUIRED_DDIS; i++)
    expect_status(probe.missing[i], STATUS_INVALID_PARAMETER,
                  "DxgkInitialize without required DDI #%d (offset %zu)", i, required_ddi_offsets[i]);
  expect_status(probe.valid, STATUS_SUCCESS, "the valid registration after the refused ones");
  expect_status(probe.second, STATUS_GRAPHICS_DRIVER_MISMATCH, "a second registration");
  /* The second table was not taken: devices are created by the first. */
  al_handle device = 0;
  expect_status(al_device_create(adapter, &device), STATUS_SUCCESS,
                "al_device_create uses the first registration");
  finish(adapter);
}

/* ---- 2. Every documented error changes nothing --------------------------------------------- */

/* A populated adapter: devices A and B; on A two device-owned allocations, a resource R of two,
 * a resource R2 of one and a shared resource S of two (opened on B); on B one device-owned
 * allocation; and stale handles of each type. */
typedef struct world {
  al_adapter *adapter;
  pdata p;
  al_handle a, b;
  al_handle own_a[2], r, ra[2], r2, r2a[1], s, sa[2], own_b[1];
  al_handle dead_device, dead_allocation, dead_resource;
} world;

static bool world_make(world *w) {
  memset(w, 0, sizeof *w);
  w->adapter = new_adapter();
  if (w->adapter == NULL) return false;
  w->p = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  w->a = new_device(w->adapter);
  w->b = new_device(w->adapter);
  assert_status(create_n(w->adapter, w->a, 0, 0, 2, &w->p, w->own_a, NULL), STATUS_SUCCESS, "own_a");
  assert_status(create_n(w->adapter, w->a, AL_CREATE_RESOURCE, 0, 2, &w->p, w->ra, &w->r), STATUS_SUCCESS,
                "R");
  assert_status(create_n(w->adapter, w->a, AL_CREATE_RESOURCE, 0, 1, &w->p, w->r2a, &w->r2), STATUS_SUCCESS,
                "R2");
  assert_status(create_n(w->adapter, w->a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &w->p, w->sa, &w->s),
                STATUS_SUCCESS, "S");
  assert_status(al_resource_open(w->adapter, w->b, w->s), STATUS_SUCCESS, "open S on B");
  assert_status(create_n(w->adapter, w->b, 0, 0, 1, &w->p, w->own_b, NULL), STATUS_SUCCESS, "own_b");
  w->dead_device = new_device(w->adapter);
  assert_status(al_device_destroy(w->adapter, w->dead_device), STATUS_SUCCESS, "dead device");
  al_handle dead_resource_allocations[1];
  assert_status(create_n(w->adapter, w->a, 0, 0, 1, &w->p, &w->dead_allocation, NULL), STATUS_SUCCESS, "x");
  assert_status(destroy_list(w->adapter, w->a, &w->dead_allocation, 1, 0), STATUS_SUCCESS, "x");
  assert_status(create_n(w->adapter, w->a, AL_CREATE_RESOURCE, 0, 1, &w->p, dead_resource_allocations,
                         &w->dead_resource),
                STATUS_SUCCESS, "y");
  assert_status(destroy_resource(w->adapter, w->a, w->dead_resource, 0), STATUS_SUCCESS, "y");
  expect_check(w->adapter, "world made");
  return true;
}

#define GARBAGE_HANDLE 0x5a5a5a5au

TEST(test_create_errors) {
  world w;
  if (!world_make(&w)) return;
  al_adapter *adapter = w.adapter;
  const al_adapter_stats before = stats_of(adapter);
  const ALDDI_LIVE_OBJECTS live = miniport_live();
  const size_t log_mark = recording_count();

  al_allocation_desc descs[2] = {{w.p.bytes, w.p.size}, {w.p.bytes, w.p.size}};
  al_handle out[2] = {GARBAGE_HANDLE, GARBAGE_HANDLE};
  al_handle out_resource = GARBAGE_HANDLE;
  const al_create_allocation_args good = {.device = w.a,
                                          .allocation_count = 2,
                                          .allocations = descs,
                                          .out_allocations = out,
                                          .out_resource = &out_resource};
  al_create_allocation_args args;
#define CREATE_FAILS(want, what, ...)                                \
  do {                                                               \
    args = good;                                                     \
    __VA_ARGS__;                                                     \
    expect_status(al_allocation_create(adapter, &args), want, what); \
    expect_unchanged(adapter, before, what);                         \
  } while (0)
  expect_status(al_allocation_create(NULL, &good), STATUS_INVALID_PARAMETER, "NULL adapter");
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "NULL allocations", args.allocations = NULL);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "NULL out_allocations", args.out_allocations = NULL);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "count 0", args.allocation_count = 0);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "count above the maximum",
               args.allocation_count = AL_MAX_ALLOCATIONS_PER_CALL + 1);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "count UINT32_MAX", args.allocation_count = UINT32_MAX);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "reserved flag bit", args.flags = AL_CREATE_FLAGS_ALL + 1);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "reserved flag bit 31",
               args.flags = AL_CREATE_RESOURCE | 0x80000000u);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "SHARED without RESOURCE", args.flags = AL_CREATE_SHARED);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "RESOURCE without out_resource", args.flags = AL_CREATE_RESOURCE;
               args.out_resource = NULL);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "flags with a resource", args.resource = w.r;
               args.flags = AL_CREATE_RESOURCE);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "SHARED with a resource", args.resource = w.r;
               args.flags = AL_CREATE_RESOURCE | AL_CREATE_SHARED);
  /* Private data. */
  unsigned char *big = calloc(1, AL_MAX_PRIVATE_DATA_SIZE + 1);
  assert_ptr_ne(big, NULL, "calloc");
  memcpy(big, w.p.bytes, w.p.size);
  al_allocation_desc too_big[2] = {{w.p.bytes, w.p.size}, {big, AL_MAX_PRIVATE_DATA_SIZE + 1}};
  al_allocation_desc null_sized[2] = {{w.p.bytes, w.p.size}, {NULL, w.p.size}};
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "allocation private data too large", args.allocations = too_big);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "allocation private data NULL with a size",
               args.allocations = null_sized);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "resource private data too large", args.flags = AL_CREATE_RESOURCE;
               args.resource_private_data = big;
               args.resource_private_data_size = AL_MAX_PRIVATE_DATA_SIZE + 1);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "resource private data NULL with a size",
               args.flags = AL_CREATE_RESOURCE;
               args.resource_private_data = NULL; args.resource_private_data_size = 8);
  free(big);
  /* Devices. */
  CREATE_FAILS(STATUS_INVALID_HANDLE, "device 0", args.device = 0);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "garbage device", args.device = GARBAGE_HANDLE);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "stale device", args.device = w.dead_device);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "a resource handle as device", args.device = w.r);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "an allocation handle as device", args.device = w.own_a[0]);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "device flipped by one generation", args.device = w.a ^ (1u << 20));
  /* Resources to add to. */
  CREATE_FAILS(STATUS_INVALID_HANDLE, "garbage resource", args.resource = GARBAGE_HANDLE);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "stale resource", args.resource = w.dead_resource);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "a device handle as resource", args.resource = w.a);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "an allocation handle as resource", args.resource = w.ra[0]);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "adding to a resource of another device (not held)", args.device = w.b;
               args.resource = w.r);
  CREATE_FAILS(STATUS_INVALID_HANDLE, "adding to a shared resource opened, not created, by the device",
               args.device = w.b;
               args.resource = w.s);
  CREATE_FAILS(STATUS_INVALID_PARAMETER, "adding to a shared resource opened elsewhere", args.resource = w.s);
  expect_u64_eq(out[0], GARBAGE_HANDLE, "a failed create writes no handle");
  expect_u64_eq(out[1], GARBAGE_HANDLE, "a failed create writes no handle");
  expect_u64_eq(out_resource, GARBAGE_HANDLE, "a failed create writes no resource handle");
  expect_u64_eq(recording_count_of(REC_CREATE_ALLOCATION, log_mark), 0,
                "a call the port refuses never reaches the miniport");
  expect_live_unchanged(live, "the refused creates");

  /* The miniport refuses: private data it cannot read; an allocation no segment can hold. */
  unsigned char junk[PDATA_CAP];
  memset(junk, 0xa5, sizeof junk);
  al_allocation_desc junk_descs[2] = {{w.p.bytes, w.p.size}, {junk, w.p.size}};
  args = good;
  args.allocations = junk_descs;
  expect_false(NT_SUCCESS(al_allocation_create(adapter, &args)), "junk private data");
  expect_unchanged(adapter, before, "junk private data");
  pdata huge = make_pdata(4 * MiB, AL_PLACEMENT_ANY, 0);
  al_allocation_desc huge_descs[2] = {{w.p.bytes, w.p.size}, {huge.bytes, huge.size}};
  args = good;
  args.allocations = huge_descs;
  args.flags = AL_CREATE_RESOURCE;
  expect_false(NT_SUCCESS(al_allocation_create(adapter, &args)), "an allocation larger than every segment");
  expect_unchanged(adapter, before, "an allocation larger than every segment");
  expect_u64_eq(out[0], GARBAGE_HANDLE, "a failed create writes no handle");
  expect_u64_eq(out_resource, GARBAGE_HANDLE, "a failed create writes no resource handle");
  expect_live_unchanged(live, "the refused creates");

  /* What still works: the world is intact. */
  args = good;
  expect_status(al_allocation_create(adapter, &args), STATUS_SUCCESS, "a good create after the errors");
  args.resource = w.r;
  expect_status(al_allocation_create(adapter, &args), STATUS_SUCCESS, "adding to R after the errors");
#undef CREATE_FAILS
  finish(adapter);
}

TEST(test_resource_open_errors) {
  world w;
  if (!world_make(&w)) return;
  al_adapter *adapter = w.adapter;
  const al_adapter_stats before = stats_of(adapter);
  const ALDDI_LIVE_OBJECTS live = miniport_live();
  const size_t log_mark = recording_count();
#define OPEN_FAILS(want, device, resource, what)                            \
  do {                                                                      \
    expect_status(al_resource_open(adapter, device, resource), want, what); \
    expect_unchanged(adapter, before, what);                                \
  } while (0)
  expect_status(al_resource_open(NULL, w.b, w.s), STATUS_INVALID_PARAMETER, "NULL adapter");
  OPEN_FAILS(STATUS_INVALID_HANDLE, 0, w.s, "device 0");
  OPEN_FAILS(STATUS_INVALID_HANDLE, GARBAGE_HANDLE, w.s, "garbage device");
  OPEN_FAILS(STATUS_INVALID_HANDLE, w.dead_device, w.s, "stale device");
  OPEN_FAILS(STATUS_INVALID_HANDLE, w.s, w.s, "a resource handle as device");
  OPEN_FAILS(STATUS_INVALID_HANDLE, w.b, 0, "resource 0");
  OPEN_FAILS(STATUS_INVALID_HANDLE, w.b, GARBAGE_HANDLE, "garbage resource");
  OPEN_FAILS(STATUS_INVALID_HANDLE, w.b, w.dead_resource, "stale resource");
  OPEN_FAILS(STATUS_INVALID_HANDLE, w.b, w.sa[0], "an allocation handle as resource");
  OPEN_FAILS(STATUS_INVALID_HANDLE, w.b, w.a, "a device handle as resource");
  OPEN_FAILS(STATUS_INVALID_PARAMETER, w.b, w.r, "a resource that is not shared");
  OPEN_FAILS(STATUS_INVALID_PARAMETER, w.b, w.s, "a resource the device already opened");
  OPEN_FAILS(STATUS_INVALID_PARAMETER, w.a, w.s, "a resource the device created");
  expect_u64_eq(recording_count_of(REC_OPEN_ALLOCATION, log_mark), 0,
                "an open the port refuses never reaches the miniport");
  expect_live_unchanged(live, "the refused opens");

  /* The miniport refuses: the status passes through, and the resource is not sealed by it. */
  al_handle s2 = 0, s2a[2];
  assert_status(create_n(adapter, w.a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &w.p, s2a, &s2),
                STATUS_SUCCESS, "S2");
  const al_adapter_stats with_s2 = stats_of(adapter);
  const ALDDI_LIVE_OBJECTS live_s2 = miniport_live();
  recording_fail_call(REC_OPEN_ALLOCATION, 0, STATUS_NO_MEMORY);
  expect_status(al_resource_open(adapter, w.b, s2), STATUS_NO_MEMORY, "OpenAllocation fails");
  expect_unchanged(adapter, with_s2, "a failed OpenAllocation");
  expect_live_unchanged(live_s2, "a failed OpenAllocation");
  al_handle more[1];
  expect_status(create_n(adapter, w.a, 0, s2, 1, &w.p, more, NULL), STATUS_SUCCESS,
                "a resource whose open failed is not sealed");
  expect_status(al_resource_open(adapter, w.b, s2), STATUS_SUCCESS, "the open, retried");
  expect_status(create_n(adapter, w.a, 0, s2, 1, &w.p, more, NULL), STATUS_INVALID_PARAMETER,
                "a resource opened elsewhere is sealed");
#undef OPEN_FAILS
  finish(adapter);
}

TEST(test_destroy_errors) {
  world w;
  if (!world_make(&w)) return;
  al_adapter *adapter = w.adapter;
  const al_adapter_stats before = stats_of(adapter);
  const ALDDI_LIVE_OBJECTS live = miniport_live();
  const size_t log_mark = recording_count();
  al_destroy_allocation_args args;
#define DESTROY_FAILS(want, what, ...)                                \
  do {                                                                \
    memset(&args, 0, sizeof args);                                    \
    args.device = w.a;                                                \
    __VA_ARGS__;                                                      \
    expect_status(al_allocation_destroy(adapter, &args), want, what); \
    expect_unchanged(adapter, before, what);                          \
  } while (0)
  memset(&args, 0, sizeof args);
  args.device = w.a;
  args.resource = w.r;
  expect_status(al_allocation_destroy(NULL, &args), STATUS_INVALID_PARAMETER, "NULL adapter");
  expect_status(al_allocation_destroy(adapter, NULL), STATUS_INVALID_PARAMETER, "NULL args");
  expect_unchanged(adapter, before, "NULL args");
  /* Shape of the call. */
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "neither resource nor list", (void)0);
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "a resource and a list", args.resource = w.r;
                args.allocations = w.ra; args.allocation_count = 1);
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "a resource with a non-NULL list of 0", args.resource = w.r;
                args.allocations = w.ra);
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "a list of 0", args.allocations = w.own_a);
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "NULL list with a count", args.allocation_count = 1);
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "count above the maximum", args.allocations = w.own_a;
                args.allocation_count = AL_MAX_ALLOCATIONS_PER_CALL + 1);
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "reserved flag bit", args.resource = w.r;
                args.flags = AL_DESTROY_FLAGS_ALL + 1);
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "reserved flag bit 31", args.allocations = w.own_a;
                args.allocation_count = 1; args.flags = 0x80000000u);
  /* Devices. */
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "device 0", args.device = 0; args.resource = w.r);
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "garbage device", args.device = GARBAGE_HANDLE; args.resource = w.r);
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "stale device", args.device = w.dead_device; args.resource = w.r);
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "a resource handle as device", args.device = w.r; args.resource = w.r);
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "an allocation handle as device", args.device = w.own_a[0];
                args.allocations = w.own_a; args.allocation_count = 1);
  /* Resources. */
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "garbage resource", args.resource = GARBAGE_HANDLE);
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "stale resource", args.resource = w.dead_resource);
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "a device handle as resource", args.resource = w.a);
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "an allocation handle as resource", args.resource = w.ra[0]);
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "a resource the device does not hold (foreign)", args.device = w.b;
                args.resource = w.r);
  /* Lists. */
  al_handle list[4];
#define LIST(...)                                                         \
  do {                                                                    \
    const al_handle items_[] = {__VA_ARGS__};                             \
    memcpy(list, items_, sizeof items_);                                  \
    args.allocations = list;                                              \
    args.allocation_count = (uint32_t)(sizeof items_ / sizeof items_[0]); \
  } while (0)
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "allocation 0", LIST(0));
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "a live allocation and 0", LIST(w.own_a[0], 0));
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "garbage allocation", LIST(w.own_a[0], GARBAGE_HANDLE));
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "stale allocation", LIST(w.own_a[0], w.dead_allocation));
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "a resource handle in the list", LIST(w.own_a[0], w.r));
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "a device handle in the list", LIST(w.a));
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "an allocation of device A destroyed through device B",
                args.device = w.b;
                LIST(w.own_a[0]));
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "an allocation of device B destroyed through device A",
                LIST(w.own_b[0]));
  DESTROY_FAILS(STATUS_INVALID_HANDLE, "an allocation of R destroyed through device B", args.device = w.b;
                LIST(w.ra[0]));
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "duplicates", LIST(w.own_a[0], w.own_a[1], w.own_a[0]));
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "duplicates in a resource", LIST(w.ra[1], w.ra[1]));
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "device-owned and resource allocations", LIST(w.own_a[0], w.ra[0]));
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "allocations of two resources", LIST(w.ra[0], w.r2a[0]));
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "allocations of a resource open on two devices", LIST(w.sa[0]));
  DESTROY_FAILS(STATUS_INVALID_PARAMETER, "a shared resource's allocations through the opener",
                args.device = w.b;
                LIST(w.sa[0], w.sa[1]));
  expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, log_mark), 0, "no CloseAllocation");
  expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, log_mark), 0, "no DestroyAllocation");
  expect_live_unchanged(live, "the refused destroys");
  for (size_t i = 0; i < 2; i++) {
    query(adapter, w.own_a[i]);
    query(adapter, w.ra[i]);
    query(adapter, w.sa[i]);
  }

  /* A handle destroyed once is stale the second time. */
  expect_status(destroy_list(adapter, w.a, w.own_a, 1, 0), STATUS_SUCCESS, "own_a[0]");
  expect_status(destroy_list(adapter, w.a, w.own_a, 1, 0), STATUS_INVALID_HANDLE, "own_a[0] twice");
  expect_status(destroy_resource(adapter, w.a, w.r, 0), STATUS_SUCCESS, "R");
  expect_status(destroy_resource(adapter, w.a, w.r, 0), STATUS_INVALID_HANDLE, "R twice");
  expect_status(destroy_list(adapter, w.a, w.ra, 1, 0), STATUS_INVALID_HANDLE,
                "an allocation of a gone resource");
  expect_status(destroy_resource(adapter, w.b, w.s, 0), STATUS_SUCCESS, "B lets S go");
  expect_status(destroy_resource(adapter, w.b, w.s, 0), STATUS_INVALID_HANDLE, "B lets S go twice");
  query(adapter, w.sa[0]);
#undef LIST
#undef DESTROY_FAILS
  finish(adapter);
}

TEST(test_submit_errors) {
  world w;
  if (!world_make(&w)) return;
  al_adapter *adapter = w.adapter;
  const al_adapter_stats before = stats_of(adapter);
  const size_t log_mark = recording_count();
  static const unsigned char command[8] = {0};
  al_handle list[4];
  uint64_t fence = UINT64_MAX;
  al_submit_args args;
#define SUBMIT_FAILS(want, what, ...)                     \
  do {                                                    \
    memset(&args, 0, sizeof args);                        \
    args.device = w.a;                                    \
    args.out_fence = &fence;                              \
    __VA_ARGS__;                                          \
    expect_status(al_submit(adapter, &args), want, what); \
    expect_unchanged(adapter, before, what);              \
  } while (0)
#define LIST(...)                                                         \
  do {                                                                    \
    const al_handle items_[] = {__VA_ARGS__};                             \
    memcpy(list, items_, sizeof items_);                                  \
    args.allocations = list;                                              \
    args.allocation_count = (uint32_t)(sizeof items_ / sizeof items_[0]); \
  } while (0)
  memset(&args, 0, sizeof args);
  args.device = w.a;
  args.out_fence = &fence;
  expect_status(al_submit(NULL, &args), STATUS_INVALID_PARAMETER, "NULL adapter");
  expect_status(al_submit(adapter, NULL), STATUS_INVALID_PARAMETER, "NULL args");
  SUBMIT_FAILS(STATUS_INVALID_PARAMETER, "NULL out_fence", args.out_fence = NULL);
  SUBMIT_FAILS(STATUS_INVALID_PARAMETER, "NULL list with a count", args.allocation_count = 1);
  SUBMIT_FAILS(STATUS_INVALID_PARAMETER, "count above the maximum", args.allocations = w.own_a;
               args.allocation_count = AL_MAX_ALLOCATIONS_PER_CALL + 1);
  SUBMIT_FAILS(STATUS_INVALID_PARAMETER, "command above the maximum", args.command = command;
               args.command_size = AL_MAX_COMMAND_SIZE + 1);
  SUBMIT_FAILS(STATUS_INVALID_PARAMETER, "NULL command with a size", args.command_size = 8);
  SUBMIT_FAILS(STATUS_INVALID_PARAMETER, "duplicates", LIST(w.own_a[0], w.ra[0], w.own_a[0]));
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "device 0", args.device = 0);
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "garbage device", args.device = GARBAGE_HANDLE);
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "stale device", args.device = w.dead_device);
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "a resource handle as device", args.device = w.r);
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "allocation 0", LIST(w.own_a[0], 0));
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "garbage allocation", LIST(GARBAGE_HANDLE));
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "stale allocation", LIST(w.own_a[1], w.dead_allocation));
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "a resource handle as allocation", LIST(w.r));
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "an allocation of device B on device A", LIST(w.own_b[0]));
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "an allocation of device A on device B", args.device = w.b;
               LIST(w.sa[0], w.own_a[0]));
  SUBMIT_FAILS(STATUS_INVALID_HANDLE, "an allocation of R (not opened) on device B", args.device = w.b;
               LIST(w.ra[0]));
  expect_u64_eq(fence, UINT64_MAX, "a failed submit writes no fence");
  expect_u64_eq(recording_count_of(REC_SUBMIT_COMMAND, log_mark), 0, "no SubmitCommand");

  /* The miniport refuses: no fence is used up. */
  recording_fail_call(REC_SUBMIT_COMMAND, 0, STATUS_NO_MEMORY);
  SUBMIT_FAILS(STATUS_NO_MEMORY, "SubmitCommand fails", LIST(w.own_a[0]));
  expect_u64_eq(al_fence_submitted(adapter), 0, "the failed submission handed out no fence");
  expect_status(submit(adapter, w.b, w.sa, 2, &fence), STATUS_SUCCESS, "B submits on S");
  expect_u64_eq(fence, 1, "the first fence after a failed submission is 1");
  expect_status(submit(adapter, w.a, w.sa, 2, &fence), STATUS_SUCCESS, "A submits on S");
  expect_u64_eq(fence, 2, "fences count up");
  expect_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
#undef LIST
#undef SUBMIT_FAILS
  finish(adapter);
}

TEST(test_device_errors) {
  world w;
  if (!world_make(&w)) return;
  al_adapter *adapter = w.adapter;
  const al_adapter_stats before = stats_of(adapter);
  const ALDDI_LIVE_OBJECTS live = miniport_live();
  al_handle device = GARBAGE_HANDLE;
  expect_status(al_device_create(NULL, &device), STATUS_INVALID_PARAMETER, "NULL adapter");
  expect_status(al_device_create(adapter, NULL), STATUS_INVALID_PARAMETER, "NULL out_device");
  recording_fail_call(REC_CREATE_DEVICE, 0, STATUS_NO_MEMORY);
  expect_status(al_device_create(adapter, &device), STATUS_NO_MEMORY, "CreateDevice fails");
  expect_u64_eq(device, GARBAGE_HANDLE, "a failed create writes no device");
  expect_status(al_device_destroy(NULL, w.a), STATUS_INVALID_PARAMETER, "NULL adapter");
  expect_status(al_device_destroy(adapter, 0), STATUS_INVALID_HANDLE, "device 0");
  expect_status(al_device_destroy(adapter, GARBAGE_HANDLE), STATUS_INVALID_HANDLE, "garbage device");
  expect_status(al_device_destroy(adapter, w.dead_device), STATUS_INVALID_HANDLE, "stale device");
  expect_status(al_device_destroy(adapter, w.r), STATUS_INVALID_HANDLE, "a resource handle");
  expect_status(al_device_destroy(adapter, w.own_a[0]), STATUS_INVALID_HANDLE, "an allocation handle");
  expect_status(al_device_destroy(adapter, w.a ^ (1u << 20)), STATUS_INVALID_HANDLE, "another generation");
  expect_unchanged(adapter, before, "the refused device calls");
  expect_live_unchanged(live, "the refused device calls");
  al_allocation_info info;
  expect_status(al_allocation_query(NULL, w.own_a[0], &info), STATUS_INVALID_PARAMETER,
                "query: NULL adapter");
  expect_status(al_allocation_query(adapter, w.own_a[0], NULL), STATUS_INVALID_PARAMETER, "query: NULL out");
  expect_status(al_allocation_query(adapter, w.r, &info), STATUS_INVALID_HANDLE, "query: a resource");
  expect_status(al_allocation_query(adapter, w.dead_allocation, &info), STATUS_INVALID_HANDLE,
                "query: stale");
  expect_status(al_allocation_query(adapter, 0, &info), STATUS_INVALID_HANDLE, "query: 0");
  /* What query reports. */
  info = query(adapter, w.ra[1]);
  expect_u64_eq(info.resource, w.r, "an allocation of R names R");
  expect_u64_eq(info.owner_device, w.a, "and its creator");
  info = query(adapter, w.own_b[0]);
  expect_u64_eq(info.resource, 0, "a device-owned allocation has no resource");
  expect_u64_eq(info.owner_device, w.b, "and names its device");
  expect_u64_ge(info.size, 64 * KiB, "placed size");
  expect_u64_ne(info.segment_id, 0, "placed in a segment");

  /* A NULL hDevice from the miniport (no verifier: the port refuses it and leaves nothing). */
  al_adapter *plain = adapter_on(NULL, 1 * MiB, 1 * MiB, 0);
  const ALDDI_LIVE_OBJECTS plain_live = miniport_live();
  recording_null_device();
  device = GARBAGE_HANDLE;
  expect_status(al_device_create(plain, &device), STATUS_GRAPHICS_DRIVER_MISMATCH, "NULL hDevice");
  expect_u64_eq(device, GARBAGE_HANDLE, "no device written");
  expect_u64_eq(stats_of(plain).devices, 0, "no device");
  expect_live_unchanged(plain_live, "a NULL hDevice");
  expect_check(plain, "after a NULL hDevice");
  al_adapter_destroy(plain);
  /* Both adapters were recorded into one log; replay it at the end. */
  finish(adapter);
}

/* ---- 3. Stale handles stay stale ----------------------------------------------------------- */

static int compare_handles(const void *a, const void *b) {
  al_handle x = *(const al_handle *)a, y = *(const al_handle *)b;
  return (x > y) - (x < y);
}

TEST(test_stale_handles_after_many_reuses) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(4 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  enum { ROUNDS = 3000, BATCH = 3, KEEP = 4 };
  al_handle *old = calloc(ROUNDS * (BATCH + 2), sizeof *old);
  assert_ptr_ne(old, NULL, "calloc");
  size_t old_count = 0;
  al_handle live[KEEP];
  assert_status(create_n(adapter, a, 0, 0, KEEP, &p, live, NULL), STATUS_SUCCESS, "long-lived allocations");
  for (int round = 0; round < ROUNDS; round++) {
    al_handle batch[BATCH], resource = 0, in_resource[1];
    assert_status(create_n(adapter, a, 0, 0, BATCH, &p, batch, NULL), STATUS_SUCCESS, "round %d", round);
    assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 1, &p, in_resource, &resource), STATUS_SUCCESS,
                  "round %d: resource", round);
    /* Destroy in a varying order, so slots are freed in every order. */
    if (round % 2) {
      assert_status(destroy_list(adapter, a, batch, BATCH, 0), STATUS_SUCCESS, "round %d", round);
    } else {
      for (int i = BATCH; i-- > 0;)
        assert_status(destroy_list(adapter, a, &batch[i], 1, 0), STATUS_SUCCESS, "round %d", round);
    }
    assert_status(destroy_resource(adapter, a, resource, 0), STATUS_SUCCESS, "round %d: resource", round);
    for (int i = 0; i < BATCH; i++) old[old_count++] = batch[i];
    old[old_count++] = in_resource[0];
    old[old_count++] = resource;
  }
  /* A few new live objects, made after all that reuse. */
  al_handle fresh[KEEP], fresh_resource = 0, fresh_in_resource[2];
  assert_status(create_n(adapter, a, 0, 0, KEEP, &p, fresh, NULL), STATUS_SUCCESS, "fresh");
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 2, &p, fresh_in_resource, &fresh_resource),
                STATUS_SUCCESS, "fresh resource");
  const al_adapter_stats before = stats_of(adapter);
  size_t still_live = 0, destroyable = 0;
  for (size_t i = 0; i < old_count; i++) {
    al_allocation_info info;
    if (al_allocation_query(adapter, old[i], &info) != STATUS_INVALID_HANDLE) still_live++;
    const bool is_resource = (i % (BATCH + 2)) == BATCH + 1;
    NTSTATUS status =
        is_resource ? destroy_resource(adapter, a, old[i], 0) : destroy_list(adapter, a, &old[i], 1, 0);
    if (status != STATUS_INVALID_HANDLE) destroyable++;
  }
  expect_u64_eq(still_live, 0, "old allocation handles answer al_allocation_query");
  expect_u64_eq(destroyable, 0, "old handles are accepted by al_allocation_destroy");
  expect_unchanged(adapter, before, "using every stale handle");
  /* No value was ever handed out twice, and no old value equals a live one. */
  al_handle *all = calloc(old_count + 3 * KEEP + 3, sizeof *all);
  assert_ptr_ne(all, NULL, "calloc");
  size_t n = 0;
  memcpy(all, old, old_count * sizeof *old);
  n = old_count;
  for (int i = 0; i < KEEP; i++) all[n++] = live[i];
  for (int i = 0; i < KEEP; i++) all[n++] = fresh[i];
  all[n++] = fresh_resource;
  all[n++] = fresh_in_resource[0];
  all[n++] = fresh_in_resource[1];
  qsort(all, n, sizeof *all, compare_handles);
  size_t repeats = 0;
  for (size_t i = 1; i < n; i++) repeats += all[i] == all[i - 1];
  expect_u64_eq(repeats, 0, "handle values repeated within %zu handles", n);
  for (int i = 0; i < KEEP; i++) {
    query(adapter, live[i]);
    query(adapter, fresh[i]);
  }
  free(all);
  free(old);
  finish(adapter);
}

TEST(test_stale_device_handles) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(4 * KiB, AL_PLACEMENT_ANY, 0);
  enum { ROUNDS = 2000 };
  al_handle *old = calloc(ROUNDS, sizeof *old);
  assert_ptr_ne(old, NULL, "calloc");
  const al_handle keeper = new_device(adapter);
  for (int round = 0; round < ROUNDS; round++) {
    old[round] = new_device(adapter);
    al_handle allocation;
    assert_status(create_n(adapter, old[round], 0, 0, 1, &p, &allocation, NULL), STATUS_SUCCESS, "round %d",
                  round);
    assert_status(al_device_destroy(adapter, old[round]), STATUS_SUCCESS, "round %d", round);
  }
  const al_handle fresh = new_device(adapter);
  size_t accepted = 0;
  for (int i = 0; i < ROUNDS; i++) {
    al_handle allocation;
    uint64_t fence;
    accepted += old[i] == keeper || old[i] == fresh;
    accepted += create_n(adapter, old[i], 0, 0, 1, &p, &allocation, NULL) != STATUS_INVALID_HANDLE;
    accepted += submit(adapter, old[i], NULL, 0, &fence) != STATUS_INVALID_HANDLE;
    accepted += al_device_destroy(adapter, old[i]) != STATUS_INVALID_HANDLE;
  }
  expect_u64_eq(accepted, 0, "stale device handles accepted (or equal to a live one)");
  expect_u64_eq(stats_of(adapter).devices, 2, "two live devices");
  free(old);
  finish(adapter);
}

/* ---- 4. All-or-nothing: rollback at every position ------------------------------------------ */

enum rollback_mode { INTO_POOL, INTO_NEW_RESOURCE, INTO_EXISTING_RESOURCE, ROLLBACK_MODES };
static const char *const rollback_mode_names[ROLLBACK_MODES] = {"device-owned", "new resource",
                                                                "existing resource"};

TEST(test_rollback_when_memory_runs_out_at_k) {
  enum { N = 5 };
  const uint64_t size = 64 * KiB;
  const pdata memory_only = make_pdata(size, AL_PLACEMENT_MEMORY_ONLY, 0);
  const pdata aperture_only = make_pdata(size, AL_PLACEMENT_APERTURE_ONLY, 0);
  for (int mode = 0; mode < ROLLBACK_MODES; mode++) {
    for (uint32_t k = 0; k < N; k++) {
      recording_reset();
      /* Exactly k fit in the memory segment; the aperture holds the one allocation an existing
       * resource starts with. k = 0: the segment holds one, taken by busy work of another
       * device (a segment smaller than the allocation is refused by the miniport instead). */
      al_adapter *adapter = adapter_on(NULL, k ? k * size : size, size, AL_ADAPTER_VERIFIER);
      if (adapter == NULL) return;
      const al_handle a = new_device(adapter);
      al_handle resource = 0, first[1], out[N];
      if (k == 0) {
        const al_handle other = new_device(adapter);
        al_handle filler;
        uint64_t fence;
        assert_status(create_n(adapter, other, 0, 0, 1, &memory_only, &filler, NULL), STATUS_SUCCESS,
                      "filler");
        assert_status(submit(adapter, other, &filler, 1, &fence), STATUS_SUCCESS, "busy filler");
      }
      if (mode == INTO_EXISTING_RESOURCE)
        assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 1, &aperture_only, first, &resource),
                      STATUS_SUCCESS, "the existing resource");
      const al_adapter_stats before = stats_of(adapter);
      const ALDDI_LIVE_OBJECTS live = miniport_live();
      const size_t log_mark = recording_count();
      for (uint32_t i = 0; i < N; i++) out[i] = GARBAGE_HANDLE;
      al_handle out_resource = GARBAGE_HANDLE;
      NTSTATUS status =
          create_n(adapter, a, mode == INTO_NEW_RESOURCE ? AL_CREATE_RESOURCE : 0,
                   mode == INTO_EXISTING_RESOURCE ? resource : 0, N, &memory_only, out, &out_resource);
      char what[96];
      snprintf(what, sizeof what, "%s: a batch of %d with room for %u", rollback_mode_names[mode], N, k);
      expect_status(status, STATUS_NO_VIDEO_MEMORY, "%s", what);
      expect_unchanged(adapter, before, what);
      expect_live_unchanged(live, what);
      expect_u64_eq(out[0], GARBAGE_HANDLE, "%s: no handle written", what);
      expect_u64_eq(out_resource, GARBAGE_HANDLE, "%s: no resource written", what);
      expect_check(adapter, what);
      /* The miniport was told: one CreateAllocation of N, one DestroyAllocation of the same N
       * (with DestroyResource for a new resource), no OpenAllocation. */
      expect_u64_eq(recording_count_of(REC_OPEN_ALLOCATION, log_mark), 0, "%s: no open", what);
      size_t c = recording_find(REC_CREATE_ALLOCATION, log_mark);
      size_t d = recording_find(REC_DESTROY_ALLOCATION, log_mark);
      assert_true(c != SIZE_MAX && d != SIZE_MAX && c < d, "%s: create then destroy", what);
      rec_call created = recording_get(c), destroyed = recording_get(d);
      expect_u64_eq(destroyed.count, N, "%s: every allocation taken back", what);
      for (uint32_t i = 0; i < N && destroyed.count == N; i++)
        expect_ptr_eq(destroyed.handles[i], created.handles[i], "%s: allocation %u taken back", what, i);
      expect_u64_eq(destroyed.flags & 1u, mode == INTO_NEW_RESOURCE, "%s: DestroyResource", what);
      /* The room that is there can still be used, all of it. */
      if (k) {
        status = create_n(adapter, a, mode == INTO_NEW_RESOURCE ? AL_CREATE_RESOURCE : 0,
                          mode == INTO_EXISTING_RESOURCE ? resource : 0, k, &memory_only, out, &out_resource);
        expect_status(status, STATUS_SUCCESS, "%s: a batch of exactly %u", what, k);
      }
      finish(adapter);
    }
  }
}

TEST(test_rollback_when_a_paging_operation_fails_at_k) {
  enum { N = 4 };
  if (recording_inner_table()->DxgkDdiBuildPagingBuffer == NULL) {
    al_test_skip("the miniport has no DxgkDdiBuildPagingBuffer");
    return;
  }
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  for (int mode = 0; mode < ROLLBACK_MODES; mode++) {
    for (uint32_t k = 0; k < N; k++) {
      al_adapter *adapter = new_adapter();
      if (adapter == NULL) return;
      const al_handle a = new_device(adapter);
      al_handle resource = 0, first[1], out[N], out_resource = 0;
      if (mode == INTO_EXISTING_RESOURCE)
        assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 1, &p, first, &resource), STATUS_SUCCESS,
                      "the existing resource");
      const al_adapter_stats before = stats_of(adapter);
      const ALDDI_LIVE_OBJECTS live = miniport_live();
      recording_fail_call(REC_BUILD_PAGING_BUFFER, k, STATUS_NO_MEMORY);
      NTSTATUS status = create_n(adapter, a, mode == INTO_NEW_RESOURCE ? AL_CREATE_RESOURCE : 0,
                                 mode == INTO_EXISTING_RESOURCE ? resource : 0, N, &p, out, &out_resource);
      char what[96];
      snprintf(what, sizeof what, "%s: paging operation %u of %d fails", rollback_mode_names[mode], k, N);
      expect_status(status, STATUS_NO_MEMORY, "%s", what);
      expect_unchanged(adapter, before, what);
      expect_live_unchanged(live, what);
      finish(adapter);
    }
  }
}

static rec_create_edit *const create_edits[] = {rec_edit_null_allocation, rec_edit_zero_size,
                                                rec_edit_outside_segments};
static const char *const create_edit_names[] = {"NULL hAllocation", "Size 0",
                                                "write set outside the segments"};

TEST(test_broken_create_output_at_k) {
  enum { N = 4 };
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  for (size_t e = 0; e < sizeof create_edits / sizeof create_edits[0]; e++) {
    for (int mode = 0; mode < ROLLBACK_MODES; mode++) {
      for (uint32_t k = 0; k < N; k++) {
        recording_reset();
        al_adapter *adapter = adapter_on(NULL, 1 * MiB, 1 * MiB, 0); /* no verifier: it would abort */
        if (adapter == NULL) return;
        const al_handle a = new_device(adapter);
        al_handle resource = 0, first[1], out[N], out_resource = GARBAGE_HANDLE;
        if (mode == INTO_EXISTING_RESOURCE)
          assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 1, &p, first, &resource), STATUS_SUCCESS,
                        "the existing resource");
        const al_adapter_stats before = stats_of(adapter);
        const ALDDI_LIVE_OBJECTS live = miniport_live();
        for (uint32_t i = 0; i < N; i++) out[i] = GARBAGE_HANDLE;
        recording_edit_create(k, create_edits[e]);
        NTSTATUS status = create_n(adapter, a, mode == INTO_NEW_RESOURCE ? AL_CREATE_RESOURCE : 0,
                                   mode == INTO_EXISTING_RESOURCE ? resource : 0, N, &p, out, &out_resource);
        char what[128];
        snprintf(what, sizeof what, "%s: create output %u of %d has %s", rollback_mode_names[mode], k, N,
                 create_edit_names[e]);
        expect_status(status, STATUS_GRAPHICS_DRIVER_MISMATCH, "%s", what);
        expect_unchanged(adapter, before, what);
        expect_live_unchanged(live, what);
        expect_u64_eq(out[0], GARBAGE_HANDLE, "%s: no handle written", what);
        expect_u64_eq(out_resource, GARBAGE_HANDLE, "%s: no resource written", what);
        /* Still usable. */
        expect_status(create_n(adapter, a, 0, 0, N, &p, out, NULL), STATUS_SUCCESS, "%s: then a good create",
                      what);
        finish(adapter);
      }
    }
  }
}

typedef struct death_case {
  int edit;      /* index into create_edits, or -1 */
  int null_open; /* entry of OpenAllocation to answer NULL, or -1 */
  uint32_t k;
  bool new_resource;
} death_case;

static void die_on_broken_miniport(void *arg) {
  const death_case *c = arg;
  recording_reset();
  al_adapter *adapter = adapter_on(NULL, 1 * MiB, 1 * MiB, AL_ADAPTER_VERIFIER);
  if (adapter == NULL) exit(0);
  al_handle a = 0, out[4], out_resource;
  if (al_device_create(adapter, &a) != STATUS_SUCCESS) exit(0);
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  if (c->edit >= 0) recording_edit_create(c->k, create_edits[c->edit]);
  if (c->null_open >= 0) recording_null_open_binding((uint32_t)c->null_open);
  NTSTATUS status =
      create_n(adapter, a, c->new_resource ? AL_CREATE_RESOURCE : 0, 0, 4, &p, out, &out_resource);
  fprintf(stderr, "the create returned %s\n", al_status_name(status));
  exit(0);
}

TEST(test_verifier_aborts_on_broken_miniport_answers) {
  for (int e = 0; e < 3; e++)
    for (uint32_t k = 0; k < 4; k += 3) {
      death_case c = {.edit = e, .null_open = -1, .k = k, .new_resource = k == 3};
      expect_death(die_on_broken_miniport, &c, "alloclab verifier: rule 1");
    }
  for (int k = 0; k < 4; k += 3) {
    death_case c = {.edit = -1, .null_open = k, .new_resource = k == 0};
    expect_death(die_on_broken_miniport, &c, "alloclab verifier: rule 3");
  }
}

TEST(test_rollback_when_open_fails) {
  enum { N = 3 };
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  for (int verified = 0; verified < 2; verified++) {
    for (int mode = 0; mode < ROLLBACK_MODES; mode++) {
      for (int how = 0; how < 1 + N; how++) { /* 0: Open fails; 1 + i: Open returns NULL at i */
        if (verified && how) continue;        /* the verifier aborts on a NULL binding */
        recording_reset();
        al_adapter *adapter = adapter_on(NULL, 1 * MiB, 1 * MiB, verified ? AL_ADAPTER_VERIFIER : 0);
        if (adapter == NULL) return;
        const al_handle a = new_device(adapter);
        al_handle resource = 0, first[1], out[N], out_resource = GARBAGE_HANDLE;
        if (mode == INTO_EXISTING_RESOURCE)
          assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 1, &p, first, &resource), STATUS_SUCCESS,
                        "the existing resource");
        const al_adapter_stats before = stats_of(adapter);
        const ALDDI_LIVE_OBJECTS live = miniport_live();
        if (how == 0)
          recording_fail_call(REC_OPEN_ALLOCATION, 0, STATUS_NO_MEMORY);
        else
          recording_null_open_binding((uint32_t)how - 1);
        for (uint32_t i = 0; i < N; i++) out[i] = GARBAGE_HANDLE;
        NTSTATUS status = create_n(adapter, a, mode == INTO_NEW_RESOURCE ? AL_CREATE_RESOURCE : 0,
                                   mode == INTO_EXISTING_RESOURCE ? resource : 0, N, &p, out, &out_resource);
        char what[128];
        snprintf(what, sizeof what, "%s%s: %s %d", rollback_mode_names[mode], verified ? " (verifier)" : "",
                 how ? "Open returns a NULL binding for entry" : "Open fails", how - 1);
        expect_status(status, how ? STATUS_GRAPHICS_DRIVER_MISMATCH : STATUS_NO_MEMORY, "%s", what);
        expect_unchanged(adapter, before, what);
        expect_live_unchanged(live, what);
        expect_u64_eq(out[0], GARBAGE_HANDLE, "%s: no handle written", what);
        expect_u64_eq(out_resource, GARBAGE_HANDLE, "%s: no resource written", what);
        expect_check(adapter, what);
        /* The handles made for the failed create were never published. */
        expect_status(create_n(adapter, a, 0, 0, N, &p, out, NULL), STATUS_SUCCESS, "%s: then a good create",
                      what);
        finish(adapter);
      }
    }
  }
}

TEST(test_create_allocation_failure_passes_through) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  al_handle out[2], resource = 0;
  const al_adapter_stats before = stats_of(adapter);
  const ALDDI_LIVE_OBJECTS live = miniport_live();
  const NTSTATUS failures[] = {STATUS_NO_MEMORY, STATUS_INVALID_PARAMETER};
  for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++) {
    recording_fail_call(REC_CREATE_ALLOCATION, 0, failures[i]);
    expect_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 2, &p, out, &resource), failures[i],
                  "CreateAllocation fails with %s", al_status_name(failures[i]));
    expect_unchanged(adapter, before, "a failed CreateAllocation");
    expect_live_unchanged(live, "a failed CreateAllocation");
  }
  finish(adapter);
}

/* ---- 5. The DDI order, as recorded ---------------------------------------------------------- */

/* True when the @n handles of @a are a permutation of those of @b. */
static bool same_set(const HANDLE *a, const HANDLE *b, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    uint32_t hits = 0;
    for (uint32_t k = 0; k < n; k++) hits += a[i] == b[k];
    if (hits != 1) return false;
  }
  return true;
}

/* The last successful OpenAllocation on @driver_device at or after @from (SIZE_MAX if none). */
static size_t last_open_on(HANDLE driver_device, size_t from) {
  size_t found = SIZE_MAX;
  for (size_t i = from; i < recording_count(); i++) {
    rec_call c = recording_get(i);
    if (c.ddi == REC_OPEN_ALLOCATION && NT_SUCCESS(c.status) && c.device == driver_device) found = i;
  }
  return found;
}

TEST(test_ddi_order_create_then_open_create) {
  enum { N = 3 };
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  for (int mode = 0; mode < ROLLBACK_MODES; mode++) {
    al_handle out[N], resource = 0;
    HANDLE resource_before = NULL;
    if (mode == INTO_EXISTING_RESOURCE) {
      const size_t r_mark = recording_count();
      assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 1, &p, out, &resource), STATUS_SUCCESS, "R");
      resource_before = recording_get(recording_find(REC_CREATE_ALLOCATION, r_mark)).resource_out;
    }
    const size_t mark = recording_count();
    al_handle made_resource = 0;
    assert_status(create_n(adapter, a, mode == INTO_NEW_RESOURCE ? AL_CREATE_RESOURCE : 0,
                           mode == INTO_EXISTING_RESOURCE ? resource : 0, N, &p, out, &made_resource),
                  STATUS_SUCCESS, "%s", rollback_mode_names[mode]);
    expect_u64_eq(recording_count_of(REC_CREATE_ALLOCATION, mark), 1, "%s: one CreateAllocation",
                  rollback_mode_names[mode]);
    expect_u64_eq(recording_count_of(REC_OPEN_ALLOCATION, mark), 1, "%s: one OpenAllocation",
                  rollback_mode_names[mode]);
    expect_u64_eq(
        recording_count_of(REC_CLOSE_ALLOCATION, mark) + recording_count_of(REC_DESTROY_ALLOCATION, mark), 0,
        "%s: nothing closed or destroyed", rollback_mode_names[mode]);
    size_t c = recording_find(REC_CREATE_ALLOCATION, mark), o = recording_find(REC_OPEN_ALLOCATION, mark);
    assert_true(c != SIZE_MAX && o != SIZE_MAX, "both recorded");
    expect_true(c < o, "%s: CreateAllocation (#%zu) before OpenAllocation (#%zu)", rollback_mode_names[mode],
                c, o);
    rec_call create = recording_get(c), open = recording_get(o);
    expect_u64_eq(create.count, N, "create count");
    expect_u64_eq(create.flags & 1u, mode != INTO_POOL, "%s: Flags.Resource", rollback_mode_names[mode]);
    if (mode == INTO_EXISTING_RESOURCE) {
      expect_ptr_ne(create.resource_in, NULL, "adding passes the resource's hResource");
      expect_ptr_eq(create.resource_in, resource_before, "the hResource its create returned");
    } else {
      expect_ptr_eq(create.resource_in, NULL, "%s: no hResource in", rollback_mode_names[mode]);
    }
    expect_u64_eq(open.flags, 1, "%s: Open with Create (and nothing else)", rollback_mode_names[mode]);
    expect_ptr_eq(open.device, recording_driver_device(a), "%s: opened on the creator",
                  rollback_mode_names[mode]);
    assert_u64_eq(open.count, N, "open count");
    for (uint32_t i = 0; i < N; i++) {
      expect_u64_eq(open.port_handles[i], out[i], "%s: open entry %u names the new handle",
                    rollback_mode_names[mode], i);
      expect_ptr_eq(open.allocations[i], create.handles[i],
                    "%s: which resolves to the created hAllocation %u", rollback_mode_names[mode], i);
      expect_ptr_ne(open.handles[i], NULL, "a binding");
    }
    /* Only paging operations (placement) between create and open. */
    for (size_t i = c + 1; i < o; i++)
      expect_u64_eq(recording_get(i).ddi, REC_BUILD_PAGING_BUFFER, "between create and open: %s",
                    recording_ddi_name(recording_get(i).ddi));
  }
  finish(adapter);
}

TEST(test_ddi_order_destroy_shared_resource) {
  enum { N = 4, D = 3 };
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  al_handle devices[D], out[N], resource = 0;
  for (int d = 0; d < D; d++) devices[d] = new_device(adapter);
  const size_t create_mark = recording_count();
  assert_status(
      create_n(adapter, devices[0], AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, N, &p, out, &resource),
      STATUS_SUCCESS, "shared resource");
  for (int d = 1; d < D; d++)
    assert_status(al_resource_open(adapter, devices[d], resource), STATUS_SUCCESS, "open %d", d);
  const rec_call create = recording_get(recording_find(REC_CREATE_ALLOCATION, create_mark));
  HANDLE driver[D];
  rec_call opens[D];
  for (int d = 0; d < D; d++) {
    driver[d] = recording_driver_device(devices[d]);
    size_t o = last_open_on(driver[d], create_mark);
    assert_true(o != SIZE_MAX, "device %d opened", d);
    opens[d] = recording_get(o);
    expect_u64_eq(opens[d].flags, d == 0 ? 1 : 0, "Open(Create) only on the creator (device %d)", d);
    assert_u64_eq(opens[d].count, N, "device %d bound all %d", d, N);
    for (uint32_t i = 0; i < N; i++)
      expect_ptr_eq(opens[d].allocations[i], create.handles[i], "device %d entry %u", d, i);
  }
  /* Every device lets go, the creator first. */
  const size_t mark = recording_count();
  for (int d = 0; d < D; d++) {
    expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 0, "nothing destroyed while held");
    assert_status(destroy_resource(adapter, devices[d], resource, 0), STATUS_SUCCESS, "device %d lets go", d);
  }
  expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, mark), D, "exactly one close per device");
  expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 1, "exactly one destroy");
  size_t destroy_at = recording_find(REC_DESTROY_ALLOCATION, mark);
  bool closed[D] = {false};
  for (size_t i = mark; i < recording_count(); i++) {
    rec_call c = recording_get(i);
    if (c.ddi != REC_CLOSE_ALLOCATION) continue;
    expect_true(i < destroy_at, "close #%zu after the destroy #%zu", i, destroy_at);
    int d = 0;
    while (d < D && driver[d] != c.device) d++;
    assert_true(d < D, "close on an unknown device %p", c.device);
    expect_false(closed[d], "device %d closed twice", d);
    closed[d] = true;
    assert_u64_eq(c.count, N, "device %d closes all %d bindings in one call", d, N);
    expect_true(same_set(c.handles, opens[d].handles, N), "device %d closes exactly its bindings", d);
  }
  assert_true(destroy_at != SIZE_MAX, "destroyed");
  rec_call destroy = recording_get(destroy_at);
  expect_u64_eq(destroy.flags, 1, "DestroyResource");
  expect_ptr_eq(destroy.resource_in, create.resource_out, "of the resource made");
  assert_u64_eq(destroy.count, N, "all %d allocations in one destroy", N);
  expect_true(same_set(destroy.handles, create.handles, N), "exactly the resource's allocations");
  al_adapter_stats stats = stats_of(adapter);
  expect_u64_eq(stats.resources + stats.allocations + stats.bindings, 0, "nothing left");
  expect_u64_eq(used_total(&stats), 0, "no memory used");
  finish(adapter);
}

TEST(test_ddi_order_partial_destroy) {
  enum { N = 5 };
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  for (int owned = 0; owned < 2; owned++) {
    al_handle out[N], resource = 0;
    const size_t create_mark = recording_count();
    assert_status(create_n(adapter, a, owned ? 0 : AL_CREATE_RESOURCE, 0, N, &p, out, &resource),
                  STATUS_SUCCESS, "create");
    const rec_call create = recording_get(recording_find(REC_CREATE_ALLOCATION, create_mark));
    const rec_call open = recording_get(recording_find(REC_OPEN_ALLOCATION, create_mark));
    const al_handle listed[2] = {out[3], out[1]};
    const HANDLE want_bindings[2] = {open.handles[3], open.handles[1]};
    const HANDLE want_allocations[2] = {create.handles[3], create.handles[1]};
    const size_t mark = recording_count();
    assert_status(destroy_list(adapter, a, listed, 2, 0), STATUS_SUCCESS, "partial destroy");
    expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, mark), 1, "one close");
    expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 1, "one destroy");
    size_t c = recording_find(REC_CLOSE_ALLOCATION, mark), d = recording_find(REC_DESTROY_ALLOCATION, mark);
    assert_true(c != SIZE_MAX && d != SIZE_MAX, "both recorded");
    expect_true(c < d, "close before destroy");
    rec_call close = recording_get(c), destroy = recording_get(d);
    expect_ptr_eq(close.device, recording_driver_device(a), "closed on the device");
    assert_u64_eq(close.count, 2, "the listed bindings");
    expect_true(same_set(close.handles, want_bindings, 2), "exactly the listed bindings");
    assert_u64_eq(destroy.count, 2, "the listed allocations");
    expect_true(same_set(destroy.handles, want_allocations, 2), "exactly the listed allocations");
    expect_u64_eq(destroy.flags, 0, "no DestroyResource in a partial destroy");
    al_allocation_info info;
    expect_status(al_allocation_query(adapter, out[1], &info), STATUS_INVALID_HANDLE, "gone");
    expect_status(al_allocation_query(adapter, out[3], &info), STATUS_INVALID_HANDLE, "gone");
    for (int i = 0; i < N; i += 2) query(adapter, out[i]);
    /* The survivors moved inside the port's arrays: each handle still names its own binding and
     * hAllocation. */
    const al_handle survivors[3] = {out[4], out[0], out[2]};
    const int survivor_index[3] = {4, 0, 2};
    uint64_t fence;
    const size_t submit_mark = recording_count();
    assert_status(submit(adapter, a, survivors, 3, &fence), STATUS_SUCCESS, "work on the survivors");
    rec_call work = recording_get(recording_find(REC_SUBMIT_COMMAND, submit_mark));
    assert_u64_eq(work.count, 3, "three listed");
    for (int i = 0; i < 3; i++)
      expect_ptr_eq(work.handles[i], open.handles[survivor_index[i]], "survivor %d's binding",
                    survivor_index[i]);
    assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
    const size_t one_mark = recording_count();
    assert_status(destroy_list(adapter, a, &out[4], 1, 0), STATUS_SUCCESS, "the last one alone");
    rec_call one_close = recording_get(recording_find(REC_CLOSE_ALLOCATION, one_mark));
    rec_call one_destroy = recording_get(recording_find(REC_DESTROY_ALLOCATION, one_mark));
    expect_true(one_close.count == 1 && one_close.handles[0] == open.handles[4], "closes out[4]'s binding");
    expect_true(one_destroy.count == 1 && one_destroy.handles[0] == create.handles[4],
                "destroys out[4]'s hAllocation");
    if (!owned) {
      /* What is left of the resource goes with it, in one close and one destroy. */
      const size_t rest = recording_count();
      assert_status(destroy_resource(adapter, a, resource, 0), STATUS_SUCCESS, "the rest");
      expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, rest), 1, "one close");
      expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, rest), 1, "one destroy");
      rec_call last = recording_get(recording_find(REC_DESTROY_ALLOCATION, rest));
      expect_u64_eq(last.count, N - 3, "the rest");
      expect_u64_eq(last.flags, 1, "DestroyResource");
      expect_ptr_eq(last.resource_in, create.resource_out, "of the resource");
    }
  }
  finish(adapter);
}

TEST(test_ddi_order_device_destroy) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter), b = new_device(adapter);
  al_handle own[3], ra[2], r = 0, sa[2], s = 0, theirs[2], t = 0, used[1];
  assert_status(create_n(adapter, b, 0, 0, 3, &p, own, NULL), STATUS_SUCCESS, "own");
  assert_status(create_n(adapter, b, AL_CREATE_RESOURCE, 0, 2, &p, ra, &r), STATUS_SUCCESS, "R");
  assert_status(create_n(adapter, b, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &p, sa, &s), STATUS_SUCCESS,
                "S");
  assert_status(al_resource_open(adapter, a, s), STATUS_SUCCESS, "A opens S");
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &p, theirs, &t),
                STATUS_SUCCESS, "T");
  assert_status(al_resource_open(adapter, b, t), STATUS_SUCCESS, "B opens T");
  assert_status(create_n(adapter, a, 0, 0, 1, &p, used, NULL), STATUS_SUCCESS, "A's own");
  const HANDLE driver_b = recording_driver_device(b);
  const uint32_t bindings_before = stats_of(adapter).bindings;
  const size_t mark = recording_count();
  assert_status(al_device_destroy(adapter, b), STATUS_SUCCESS, "destroy B");
  size_t destroy_device = recording_find(REC_DESTROY_DEVICE, mark);
  assert_true(destroy_device != SIZE_MAX, "DestroyDevice recorded");
  expect_ptr_eq(recording_get(destroy_device).device, driver_b, "of B");
  expect_u64_eq(recording_count_of(REC_DESTROY_DEVICE, mark), 1, "one DestroyDevice");
  uint32_t closed = 0;
  for (size_t i = mark; i < recording_count(); i++) {
    rec_call c = recording_get(i);
    if (c.ddi == REC_CLOSE_ALLOCATION) {
      expect_true(i < destroy_device, "CloseAllocation #%zu after DestroyDevice #%zu", i, destroy_device);
      expect_ptr_eq(c.device, driver_b, "only B's bindings close");
      closed += c.count;
    }
    if (c.ddi == REC_DESTROY_ALLOCATION)
      expect_true(i < destroy_device, "DestroyAllocation #%zu after DestroyDevice #%zu", i, destroy_device);
  }
  /* B's bindings: own 3, R 2, S 2, T 2. */
  expect_u64_eq(closed, 9, "every binding of B closed");
  expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, mark), 4, "one close per pool/resource");
  expect_u64_eq(stats_of(adapter).bindings, bindings_before - 9, "bindings left");
  /* Own 3 and R 2 destroyed; S (opened by A) and T (A's) live on. */
  uint32_t destroyed = 0;
  for (size_t i = mark; i < recording_count(); i++)
    if (recording_get(i).ddi == REC_DESTROY_ALLOCATION) destroyed += recording_get(i).count;
  expect_u64_eq(destroyed, 5, "B's own allocations and R destroyed, not S or T");
  al_allocation_info info;
  expect_status(al_allocation_query(adapter, own[0], &info), STATUS_INVALID_HANDLE, "B's own gone");
  expect_status(al_allocation_query(adapter, ra[0], &info), STATUS_INVALID_HANDLE, "R gone");
  query(adapter, sa[0]);
  query(adapter, theirs[0]);
  finish(adapter);
}

/* ---- 6. Shared resources outlive their creator ---------------------------------------------- */

TEST(test_shared_resource_outlives_creator) {
  enum { N = 3 };
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter), b = new_device(adapter);
  al_handle sa[N], s = 0, own_a[2];
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, N, &p, sa, &s), STATUS_SUCCESS,
                "S");
  assert_status(create_n(adapter, a, 0, 0, 2, &p, own_a, NULL), STATUS_SUCCESS, "A's own");
  assert_status(al_resource_open(adapter, b, s), STATUS_SUCCESS, "B opens S");
  uint64_t fence = 0;
  assert_status(submit(adapter, a, sa, N, &fence), STATUS_SUCCESS, "A uses S");
  const size_t mark = recording_count();
  assert_status(al_device_destroy(adapter, a), STATUS_SUCCESS, "destroy A");
  expect_u64_ge(al_fence_completed(adapter), fence, "A's work finished before its bindings closed");
  expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 1, "only A's own allocations destroyed");
  al_adapter_stats stats = stats_of(adapter);
  expect_u64_eq(stats.devices, 1, "B is left");
  expect_u64_eq(stats.resources, 1, "S lives on");
  expect_u64_eq(stats.allocations, N, "S's allocations live on");
  expect_u64_eq(stats.bindings, N, "B's bindings");
  expect_u64_eq(used_total(&stats), N * 64 * KiB, "S's memory");
  for (int i = 0; i < N; i++) {
    al_allocation_info info = query(adapter, sa[i]);
    expect_u64_eq(info.resource, s, "allocation %d still names S", i);
    expect_u64_eq(info.owner_device, a, "and its (gone) creator");
  }
  expect_check(adapter, "after the creator is gone");
  /* B uses it, and may not add to it (B did not create it; A is gone). */
  assert_status(submit(adapter, b, sa, N, &fence), STATUS_SUCCESS, "B uses S");
  expect_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  al_handle more[1];
  expect_status(create_n(adapter, b, 0, s, 1, &p, more, NULL), STATUS_INVALID_HANDLE, "B adds to S");
  expect_status(al_resource_open(adapter, b, s), STATUS_INVALID_PARAMETER, "B opens S again");
  expect_status(create_n(adapter, a, 0, s, 1, &p, more, NULL), STATUS_INVALID_HANDLE, "the gone A adds to S");
  /* A third device can still open it. */
  const al_handle c = new_device(adapter);
  expect_status(al_resource_open(adapter, c, s), STATUS_SUCCESS, "C opens S after A is gone");
  expect_status(destroy_resource(adapter, c, s, 0), STATUS_SUCCESS, "C lets go");
  assert_status(destroy_resource(adapter, b, s, 0), STATUS_SUCCESS, "B lets go: the last holder");
  stats = stats_of(adapter);
  expect_u64_eq(stats.resources + stats.allocations + stats.bindings + stats.deferred_destroys, 0,
                "nothing left");
  expect_u64_eq(used_total(&stats), 0, "no memory used");
  ALDDI_LIVE_OBJECTS live = miniport_live();
  expect_u64_eq(live.Allocations + live.Resources + live.OpenAllocations, 0, "the miniport holds nothing");
  for (int i = 0; i < N; i++) {
    al_allocation_info info;
    expect_status(al_allocation_query(adapter, sa[i], &info), STATUS_INVALID_HANDLE, "allocation %d gone", i);
  }
  finish(adapter);
}

/* ---- 7. Deferred destroy (rule 6) ---------------------------------------------------------- */

TEST(test_deferred_destroy_waits_for_the_fence) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  for (int as_resource = 0; as_resource < 2; as_resource++) {
    al_handle out[2], r = 0;
    assert_status(create_n(adapter, a, as_resource ? AL_CREATE_RESOURCE : 0, 0, 2, &p, out, &r),
                  STATUS_SUCCESS, "create");
    uint64_t fence = 0;
    assert_status(submit(adapter, a, out, 2, &fence), STATUS_SUCCESS, "submit");
    expect_u64_lt(al_fence_completed(adapter), fence, "the example engine runs only when asked");
    const al_adapter_stats before = stats_of(adapter);
    const size_t mark = recording_count();
    NTSTATUS status = as_resource ? destroy_resource(adapter, a, r, 0) : destroy_list(adapter, a, out, 2, 0);
    assert_status(status, STATUS_SUCCESS, "destroy with work pending");
    al_allocation_info info;
    expect_status(al_allocation_query(adapter, out[0], &info), STATUS_INVALID_HANDLE, "invalid at once");
    expect_status(destroy_list(adapter, a, out, 1, 0), STATUS_INVALID_HANDLE, "cannot be destroyed twice");
    uint64_t other_fence;
    expect_status(submit(adapter, a, out, 1, &other_fence), STATUS_INVALID_HANDLE, "cannot be used");
    al_adapter_stats stats = stats_of(adapter);
    expect_u64_eq(stats.deferred_destroys, 1, "one deferred teardown");
    expect_u64_eq(stats.deferred_allocations, 2, "of two allocations");
    expect_u64_eq(stats.allocations, before.allocations - 2, "no longer visible");
    expect_u64_eq(used_total(&stats), used_total(&before), "memory still used");
    expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 0, "no DestroyAllocation yet");
    expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, mark), 0, "no CloseAllocation yet");
    expect_check(adapter, "with a deferred destroy");
    uint32_t ran = 0;
    assert_status(al_gpu_run(adapter, 1, &ran), STATUS_SUCCESS, "al_gpu_run");
    expect_u64_eq(ran, 1, "one submission ran");
    stats = stats_of(adapter);
    expect_u64_eq(stats.deferred_destroys, 0, "released");
    expect_u64_eq(stats.deferred_allocations, 0, "released");
    expect_u64_eq(used_total(&stats), 0, "memory released");
    expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, mark), 1, "closed now");
    expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 1, "destroyed now");
    size_t notify = recording_find(REC_NOTIFY_INTERRUPT, mark);
    expect_true(notify != SIZE_MAX && notify < recording_find(REC_CLOSE_ALLOCATION, mark),
                "the fence signalled before the close");
  }
  finish(adapter);
}

TEST(test_deferred_destroy_of_a_shared_resource) {
  /* B's work holds S after both devices let go: the close of A (no work) runs at once, B's close
   * and the destroy wait; the destroy never overtakes B's close. */
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter), b = new_device(adapter);
  for (int a_first = 0; a_first < 2; a_first++) {
    al_handle sa[2], s = 0;
    assert_status(create_n(adapter, a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &p, sa, &s),
                  STATUS_SUCCESS, "S");
    assert_status(al_resource_open(adapter, b, s), STATUS_SUCCESS, "B opens S");
    uint64_t fence;
    assert_status(submit(adapter, b, sa, 2, &fence), STATUS_SUCCESS, "B uses S");
    const size_t mark = recording_count();
    assert_status(destroy_resource(adapter, a_first ? a : b, s, 0), STATUS_SUCCESS, "first lets go");
    assert_status(destroy_resource(adapter, a_first ? b : a, s, 0), STATUS_SUCCESS, "second lets go");
    expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 0, "not destroyed while B's work runs");
    expect_u64_le(recording_count_of(REC_CLOSE_ALLOCATION, mark), 1, "only A's close may run");
    expect_u64_eq(stats_of(adapter).resources, 0, "S is gone for the user");
    al_adapter_stats deferred = stats_of(adapter);
    expect_u64_eq(deferred.deferred_allocations, 2, "two allocations deferred");
    expect_u64_eq(used_total(&deferred), 2 * 64 * KiB, "their memory still used");
    expect_check(adapter, "deferred shared teardown");
    assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
    al_adapter_stats stats = stats_of(adapter);
    expect_u64_eq(stats.deferred_destroys, 0, "released");
    expect_u64_eq(used_total(&stats), 0, "memory released");
    expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, mark), 2, "two closes");
    expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 1, "one destroy");
  }
  finish(adapter);
}

TEST(test_destroy_assume_not_in_use_and_synchronous) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  for (int as_resource = 0; as_resource < 2; as_resource++) {
    /* ASSUME_NOT_IN_USE: released at once although the work has not run (work that does not
     * touch the memory, so the caller's assertion is true: a GPU would fault otherwise). */
    al_handle out[2], r = 0;
    assert_status(create_n(adapter, a, as_resource ? AL_CREATE_RESOURCE : 0, 0, 2, &p, out, &r),
                  STATUS_SUCCESS, "create");
    uint64_t fence = 0;
    assert_status(submit_commands(adapter, a, out, 2, AL_COMMAND_NOP, &fence), STATUS_SUCCESS, "submit");
    size_t mark = recording_count();
    NTSTATUS status = as_resource ? destroy_resource(adapter, a, r, AL_DESTROY_ASSUME_NOT_IN_USE)
                                  : destroy_list(adapter, a, out, 2, AL_DESTROY_ASSUME_NOT_IN_USE);
    assert_status(status, STATUS_SUCCESS, "destroy, assuming not in use");
    al_adapter_stats stats = stats_of(adapter);
    expect_u64_lt(al_fence_completed(adapter), fence, "the work has not run");
    expect_u64_eq(stats.deferred_destroys, 0, "nothing deferred");
    expect_u64_eq(used_total(&stats), 0, "memory released at once");
    expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 1, "destroyed at once");
    assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "drain");

    /* SYNCHRONOUS: returns with the memory released (the fence has signalled). */
    assert_status(create_n(adapter, a, as_resource ? AL_CREATE_RESOURCE : 0, 0, 2, &p, out, &r),
                  STATUS_SUCCESS, "create");
    assert_status(submit(adapter, a, out, 2, &fence), STATUS_SUCCESS, "submit");
    mark = recording_count();
    status = as_resource ? destroy_resource(adapter, a, r, AL_DESTROY_SYNCHRONOUS)
                         : destroy_list(adapter, a, out, 2, AL_DESTROY_SYNCHRONOUS);
    assert_status(status, STATUS_SUCCESS, "synchronous destroy");
    stats = stats_of(adapter);
    expect_u64_ge(al_fence_completed(adapter), fence, "the work ran");
    expect_u64_eq(stats.deferred_destroys, 0, "nothing deferred");
    expect_u64_eq(used_total(&stats), 0, "memory released before the call returned");
    expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 1, "destroyed");
  }
  expect_check(adapter, "after ASSUME_NOT_IN_USE");
  finish_with(adapter, false); /* rule 6 was waived by the caller */
}

TEST(test_device_destroy_waits_for_its_work) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter), b = new_device(adapter);
  al_handle own[2], ra[2], r = 0, sa[2], s = 0;
  assert_status(create_n(adapter, a, 0, 0, 2, &p, own, NULL), STATUS_SUCCESS, "own");
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 2, &p, ra, &r), STATUS_SUCCESS, "R");
  assert_status(create_n(adapter, b, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &p, sa, &s), STATUS_SUCCESS,
                "S");
  assert_status(al_resource_open(adapter, a, s), STATUS_SUCCESS, "A opens S");
  uint64_t f1, f2, f3;
  assert_status(submit(adapter, a, own, 2, &f1), STATUS_SUCCESS, "A's own");
  assert_status(submit(adapter, a, ra, 2, &f2), STATUS_SUCCESS, "R");
  assert_status(submit(adapter, a, sa, 2, &f3), STATUS_SUCCESS, "S on A");
  const size_t mark = recording_count();
  assert_status(al_device_destroy(adapter, a), STATUS_SUCCESS, "destroy A with work queued");
  expect_u64_ge(al_fence_completed(adapter), f3, "its work ran first");
  al_adapter_stats stats = stats_of(adapter);
  expect_u64_eq(stats.devices, 1, "B left");
  expect_u64_eq(stats.deferred_destroys, 0, "nothing deferred");
  expect_u64_eq(stats.allocations, 2, "S left");
  expect_u64_eq(used_total(&stats), 2 * 64 * KiB, "S's memory only");
  size_t last_notify = SIZE_MAX, first_close = recording_find(REC_CLOSE_ALLOCATION, mark);
  for (size_t i = mark; i < recording_count(); i++)
    if (recording_get(i).ddi == REC_NOTIFY_INTERRUPT) last_notify = i;
  expect_true(last_notify != SIZE_MAX && first_close != SIZE_MAX && last_notify < first_close,
              "fences (last #%zu) signalled before the first close (#%zu)", last_notify, first_close);
  finish(adapter);
}

TEST(test_destroy_never_overtakes_a_deferred_close) {
  /* B's work uses only sa[1]; B lets S go (its close of sa[0] and sa[1] waits for that work).
   * A, now S's only holder, destroys sa[0], which no work uses: the DestroyAllocation of sa[0]
   * must still wait for B's close (rule 4: every binding closed before the destroy). No
   * verifier: it would abort the whole test; the log is checked instead. */
  for (int flags = 0; flags < 2; flags++) {
    recording_reset();
    al_adapter *adapter = adapter_on(NULL, 1 * MiB, 1 * MiB, 0);
    if (adapter == NULL) return;
    const pdata p = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
    const al_handle a = new_device(adapter), b = new_device(adapter);
    al_handle sa[2], s = 0;
    assert_status(create_n(adapter, a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &p, sa, &s),
                  STATUS_SUCCESS, "S");
    assert_status(al_resource_open(adapter, b, s), STATUS_SUCCESS, "B opens S");
    uint64_t fence;
    assert_status(submit(adapter, b, &sa[1], 1, &fence), STATUS_SUCCESS, "B uses sa[1]");
    const size_t mark = recording_count();
    assert_status(destroy_resource(adapter, b, s, 0), STATUS_SUCCESS, "B lets S go");
    expect_u64_eq(recording_count_of(REC_CLOSE_ALLOCATION, mark), 0, "B's close waits for B's work");
    const uint32_t destroy_flags = flags ? AL_DESTROY_SYNCHRONOUS : 0;
    assert_status(destroy_list(adapter, a, &sa[0], 1, destroy_flags), STATUS_SUCCESS, "A destroys sa[0]");
    if (destroy_flags & AL_DESTROY_SYNCHRONOUS)
      expect_u64_eq(stats_of(adapter).deferred_allocations, 0, "SYNCHRONOUS returns with sa[0] released");
    size_t b_close = SIZE_MAX, destroy = recording_find(REC_DESTROY_ALLOCATION, mark);
    const HANDLE driver_b = recording_driver_device(b);
    for (size_t i = mark; i < recording_count() && b_close == SIZE_MAX; i++)
      if (recording_get(i).ddi == REC_CLOSE_ALLOCATION && recording_get(i).device == driver_b) b_close = i;
    if (destroy != SIZE_MAX)
      expect_true(b_close < destroy,
                  "flags 0x%x: DestroyAllocation of sa[0] (log #%zu) came before B closed "
                  "its binding of it",
                  destroy_flags, destroy);
    assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
    b_close = SIZE_MAX;
    for (size_t i = mark; i < recording_count() && b_close == SIZE_MAX; i++)
      if (recording_get(i).ddi == REC_CLOSE_ALLOCATION && recording_get(i).device == driver_b) b_close = i;
    destroy = recording_find(REC_DESTROY_ALLOCATION, mark);
    expect_true(b_close != SIZE_MAX && destroy != SIZE_MAX && b_close < destroy,
                "flags 0x%x: B's close (#%zu) before the destroy of sa[0] (#%zu)", destroy_flags, b_close,
                destroy);
    expect_u64_eq(stats_of(adapter).deferred_destroys, 0, "all released");
    finish(adapter);
  }
}

TEST(test_empty_resources) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter), b = new_device(adapter);
  al_handle ra[2], r = 0;
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &p, ra, &r), STATUS_SUCCESS,
                "R");
  assert_status(destroy_list(adapter, a, ra, 2, 0), STATUS_SUCCESS, "every allocation of R by list");
  expect_u64_eq(stats_of(adapter).resources, 1, "the empty resource lives on");
  expect_check(adapter, "an empty resource");
  assert_status(create_n(adapter, a, 0, r, 1, &p, ra, NULL), STATUS_SUCCESS, "refill it");
  assert_status(destroy_list(adapter, a, ra, 1, 0), STATUS_SUCCESS, "empty again");
  assert_status(al_resource_open(adapter, b, r), STATUS_SUCCESS, "open the empty shared resource");
  expect_status(create_n(adapter, a, 0, r, 1, &p, ra, NULL), STATUS_INVALID_PARAMETER,
                "sealed although empty");
  assert_status(destroy_resource(adapter, b, r, 0), STATUS_SUCCESS, "B lets go");
  const size_t mark = recording_count();
  assert_status(destroy_resource(adapter, a, r, 0), STATUS_SUCCESS, "A lets go");
  expect_u64_eq(recording_count_of(REC_DESTROY_ALLOCATION, mark), 1, "the miniport's resource is destroyed");
  if (recording_count_of(REC_DESTROY_ALLOCATION, mark) == 1) {
    rec_call d = recording_get(recording_find(REC_DESTROY_ALLOCATION, mark));
    expect_u64_eq(d.flags, 1, "with DestroyResource");
    expect_u64_eq(d.count, 0, "and no allocations");
  }
  al_adapter_stats stats = stats_of(adapter);
  expect_u64_eq(stats.resources + stats.allocations + stats.bindings, 0, "nothing left");
  ALDDI_LIVE_OBJECTS live = miniport_live();
  expect_u64_eq(live.Resources + live.Allocations + live.OpenAllocations, 0, "the miniport holds nothing");
  finish(adapter);
}

TEST(test_largest_batches) {
  /* AL_MAX_ALLOCATIONS_PER_CALL is allowed everywhere it is the maximum. */
  recording_reset();
  al_adapter *adapter = adapter_on(NULL, 8 * MiB, 8 * MiB, AL_ADAPTER_VERIFIER);
  if (adapter == NULL) return;
  const uint32_t n = AL_MAX_ALLOCATIONS_PER_CALL;
  const pdata p = make_pdata(4 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter), b = new_device(adapter);
  al_handle *out = calloc(n, sizeof *out), r = 0;
  assert_ptr_ne(out, NULL, "calloc");
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, n, &p, out, &r),
                STATUS_SUCCESS, "create %u", n);
  assert_status(al_resource_open(adapter, b, r), STATUS_SUCCESS, "open %u", n);
  uint64_t fence;
  assert_status(submit(adapter, b, out, n, &fence), STATUS_SUCCESS, "submit %u", n);
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  assert_status(destroy_resource(adapter, b, r, 0), STATUS_SUCCESS, "B lets go");
  assert_status(destroy_list(adapter, a, out, n, 0), STATUS_SUCCESS, "destroy %u by list", n);
  al_adapter_stats stats = stats_of(adapter);
  expect_u64_eq(stats.allocations + stats.bindings, 0, "all gone");
  expect_u64_eq(used_total(&stats), 0, "no memory used");
  free(out);
  finish(adapter);
}

TEST(test_device_removed) {
  /* The engine reports the GPU gone: only destroy calls still work, and teardown completes. */
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter), b = new_device(adapter);
  al_handle own[2], sa[2], s = 0, shared2[1], s2 = 0;
  assert_status(create_n(adapter, a, 0, 0, 2, &p, own, NULL), STATUS_SUCCESS, "own");
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, &p, sa, &s), STATUS_SUCCESS,
                "S");
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 1, &p, shared2, &s2),
                STATUS_SUCCESS, "S2");
  assert_status(al_resource_open(adapter, b, s), STATUS_SUCCESS, "B opens S");
  uint64_t fence;
  assert_status(submit(adapter, a, own, 2, &fence), STATUS_SUCCESS, "work");
  recording_fail_call(REC_RUN_ENGINE, 0, STATUS_DEVICE_REMOVED);
  NTSTATUS status = al_fence_wait(adapter, fence, UINT64_MAX);
  expect_true(status == STATUS_DEVICE_REMOVED || status == STATUS_SUCCESS, "wait on a removed GPU: %s",
              al_status_name(status));
  const al_adapter_stats before = stats_of(adapter);
  al_handle x[1], device = 0;
  uint64_t f2;
  expect_status(al_device_create(adapter, &device), STATUS_DEVICE_REMOVED, "device create");
  expect_status(create_n(adapter, a, 0, 0, 1, &p, x, NULL), STATUS_DEVICE_REMOVED, "allocation create");
  expect_status(al_resource_open(adapter, b, s2), STATUS_DEVICE_REMOVED, "open");
  expect_status(submit(adapter, a, own, 1, &f2), STATUS_DEVICE_REMOVED, "submit");
  expect_unchanged(adapter, before, "calls on a removed adapter");
  expect_status(destroy_list(adapter, a, own, 2, 0), STATUS_SUCCESS, "destroy still works");
  expect_status(destroy_resource(adapter, b, s, 0), STATUS_SUCCESS, "release still works");
  expect_status(al_device_destroy(adapter, a), STATUS_SUCCESS, "device destroy still works");
  expect_status(al_device_destroy(adapter, b), STATUS_SUCCESS, "device destroy still works");
  al_adapter_stats stats = stats_of(adapter);
  expect_u64_eq(
      stats.devices + stats.resources + stats.allocations + stats.bindings + stats.deferred_destroys, 0,
      "everything released");
  expect_u64_eq(used_total(&stats), 0, "no memory used");
  finish(adapter);
}

/* ---- 8. Placement and paging ---------------------------------------------------------------- */

TEST(test_placement_preferred_and_fallback) {
  recording_reset();
  al_adapter *adapter = adapter_on(NULL, 256 * KiB, 256 * KiB, AL_ADAPTER_VERIFIER);
  if (adapter == NULL) return;
  const uint32_t memory = segment_id(adapter, false), aperture = segment_id(adapter, true);
  assert_true(memory && aperture, "a memory and an aperture segment");
  const pdata any = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const pdata memory_only = make_pdata(64 * KiB, AL_PLACEMENT_MEMORY_ONLY, 0);
  const pdata aperture_only = make_pdata(64 * KiB, AL_PLACEMENT_APERTURE_ONLY, 0);
  const al_handle a = new_device(adapter);
  al_handle x[4];
  assert_status(create_n(adapter, a, 0, 0, 1, &aperture_only, x, NULL), STATUS_SUCCESS, "aperture only");
  expect_u64_eq(query(adapter, x[0]).segment_id, aperture, "APERTURE_ONLY in the aperture");
  assert_status(create_n(adapter, a, 0, 0, 1, &any, x, NULL), STATUS_SUCCESS, "any");
  expect_u64_eq(query(adapter, x[0]).segment_id, memory, "ANY prefers the memory segment");
  assert_status(create_n(adapter, a, 0, 0, 3, &memory_only, x, NULL), STATUS_SUCCESS, "memory only");
  for (int i = 0; i < 3; i++) expect_u64_eq(query(adapter, x[i]).segment_id, memory, "MEMORY_ONLY %d", i);
  expect_u64_eq(used_in(adapter, memory), 256 * KiB, "the memory segment is full");
  /* Memory full (of idle allocations): ANY falls back to the aperture, before any eviction. */
  assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 2, &any, x, &(al_handle){0}), STATUS_SUCCESS,
                "any");
  for (int i = 0; i < 2; i++)
    expect_u64_eq(query(adapter, x[i]).segment_id, aperture, "ANY %d falls back", i);
  expect_u64_eq(stats_of(adapter).evictions, 0, "a fallback evicts nothing");
  expect_u64_eq(used_in(adapter, aperture), 3 * 64 * KiB, "three in the aperture");
  finish(adapter);
}

TEST(test_placement_alignment) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const al_handle a = new_device(adapter);
  const uint32_t alignments[] = {4096, 16 * 1024, 64 * 1024, 256 * 1024};
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
      /* An odd-sized allocation first, so the next free offset is not aligned by chance. */
      const pdata small =
          make_pdata(4 * KiB, round ? AL_PLACEMENT_APERTURE_ONLY : AL_PLACEMENT_MEMORY_ONLY, 0);
      const pdata aligned =
          make_pdata(8 * KiB, round ? AL_PLACEMENT_APERTURE_ONLY : AL_PLACEMENT_MEMORY_ONLY, alignments[i]);
      al_handle x[3];
      assert_status(create_n(adapter, a, 0, 0, 1, &small, x, NULL), STATUS_SUCCESS, "small");
      assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 3, &aligned, x, &(al_handle){0}),
                    STATUS_SUCCESS, "aligned to %u", alignments[i]);
      for (int k = 0; k < 3; k++) {
        al_allocation_info info = query(adapter, x[k]);
        expect_u64_eq(info.segment_offset % alignments[i], 0,
                      "allocation %d aligned to %u (offset %llu, segment %u)", k, alignments[i],
                      (unsigned long long)info.segment_offset, info.segment_id);
      }
    }
  }
  finish(adapter);
}

TEST(test_placement_no_video_memory) {
  recording_reset();
  al_adapter *adapter = adapter_on(NULL, 256 * KiB, 256 * KiB, AL_ADAPTER_VERIFIER);
  if (adapter == NULL) return;
  const pdata any = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  al_handle busy[8];
  uint64_t fence;
  assert_status(create_n(adapter, a, 0, 0, 8, &any, busy, NULL), STATUS_SUCCESS, "fill both segments");
  assert_status(submit(adapter, a, busy, 8, &fence), STATUS_SUCCESS, "all busy");
  const al_adapter_stats before = stats_of(adapter);
  const ALDDI_LIVE_OBJECTS live = miniport_live();
  al_handle x[1];
  expect_status(create_n(adapter, a, 0, 0, 1, &any, x, NULL), STATUS_NO_VIDEO_MEMORY,
                "nothing fits, nothing can go");
  expect_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, 1, &any, x, &(al_handle){0}),
                STATUS_NO_VIDEO_MEMORY, "nothing fits (resource)");
  expect_unchanged(adapter, before, "NO_VIDEO_MEMORY");
  expect_live_unchanged(live, "NO_VIDEO_MEMORY");
  for (int i = 0; i < 8; i++) expect_u64_ne(query(adapter, busy[i]).segment_id, 0, "busy %d stays", i);
  /* Once the work is done the same create succeeds (an idle allocation goes to system memory). */
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  if (recording_inner_table()->DxgkDdiBuildPagingBuffer) {
    expect_status(create_n(adapter, a, 0, 0, 1, &any, x, NULL), STATUS_SUCCESS, "after the work is done");
    expect_u64_ge(stats_of(adapter).evictions, 1, "by eviction");
    uint32_t in_system = 0;
    for (int i = 0; i < 8; i++) in_system += query(adapter, busy[i]).segment_id == 0;
    expect_u64_eq(in_system, 1, "one victim went to system memory (both segments are full)");
  }
  finish(adapter);
}

TEST(test_placement_reclaims_deferred_memory) {
  recording_reset();
  al_adapter *adapter = adapter_on(NULL, 256 * KiB, 256 * KiB, AL_ADAPTER_VERIFIER);
  if (adapter == NULL) return;
  const pdata memory_only = make_pdata(64 * KiB, AL_PLACEMENT_MEMORY_ONLY, 0);
  const uint32_t memory = segment_id(adapter, false);
  const al_handle a = new_device(adapter);
  al_handle x[4];
  uint64_t fence;
  assert_status(create_n(adapter, a, 0, 0, 4, &memory_only, x, NULL), STATUS_SUCCESS,
                "fill the memory segment");
  assert_status(submit(adapter, a, x, 4, &fence), STATUS_SUCCESS, "busy");
  assert_status(destroy_list(adapter, a, x, 4, 0), STATUS_SUCCESS, "deferred destroy");
  expect_u64_eq(stats_of(adapter).deferred_destroys, 1, "deferred");
  /* The fence signals without the port reaping (as with an engine that has its own thread). */
  uint32_t ran = 0;
  assert_status(recording_run_engine_directly(recording_last_adapter(), 1, &ran), STATUS_SUCCESS,
                "run directly");
  expect_u64_eq(ran, 1, "ran");
  expect_u64_eq(al_fence_completed(adapter), fence, "signalled");
  expect_u64_eq(stats_of(adapter).deferred_destroys, 1, "not yet reaped");
  expect_u64_eq(used_in(adapter, memory), 256 * KiB, "still used");
  assert_status(create_n(adapter, a, 0, 0, 4, &memory_only, x, NULL), STATUS_SUCCESS,
                "a create that fits only in the deferred memory");
  al_adapter_stats stats = stats_of(adapter);
  expect_u64_eq(stats.deferred_destroys, 0, "reaped by the create");
  expect_u64_eq(stats.evictions, 0, "no eviction needed");
  expect_u64_eq(used_in(adapter, memory), 256 * KiB, "the new ones fill it");
  finish(adapter);
}

TEST(test_eviction_of_idle_allocations) {
  if (recording_inner_table()->DxgkDdiBuildPagingBuffer == NULL) {
    al_test_skip("eviction needs DxgkDdiBuildPagingBuffer");
    return;
  }
  enum { FILL = 16, MORE = 4, BUSY = 10 };
  for (int busy_count = 0; busy_count <= BUSY; busy_count += BUSY) {
    al_adapter *adapter = new_adapter(); /* 1 MiB each */
    if (adapter == NULL) return;
    const uint32_t memory = segment_id(adapter, false), aperture = segment_id(adapter, true);
    const pdata any = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
    const pdata memory_only = make_pdata(64 * KiB, AL_PLACEMENT_MEMORY_ONLY, 0);
    const al_handle a = new_device(adapter), b = new_device(adapter);
    al_handle fill[FILL], r = 0, more[MORE];
    assert_status(create_n(adapter, a, 0, 0, FILL / 2, &any, fill, NULL), STATUS_SUCCESS, "fill (own)");
    assert_status(create_n(adapter, a, AL_CREATE_RESOURCE, 0, FILL / 2, &any, fill + FILL / 2, &r),
                  STATUS_SUCCESS, "fill (resource)");
    for (int i = 0; i < FILL; i++)
      assert_u64_eq(query(adapter, fill[i]).segment_id, memory, "fill %d in memory", i);
    uint64_t fence = 0;
    if (busy_count) assert_status(submit(adapter, a, fill + 3, busy_count, &fence), STATUS_SUCCESS, "busy");
    const size_t mark = recording_count();
    assert_status(create_n(adapter, b, 0, 0, MORE, &memory_only, more, NULL), STATUS_SUCCESS,
                  "MEMORY_ONLY into a full memory segment (%d busy)", busy_count);
    al_adapter_stats stats = stats_of(adapter);
    expect_u64_ge(stats.evictions, MORE, "VidMm evicted idle allocations");
    uint32_t moved = 0;
    for (int i = 0; i < FILL; i++) {
      al_allocation_info info = query(adapter, fill[i]);
      if (info.segment_id == memory) continue;
      moved++;
      expect_true(info.segment_id == aperture || info.segment_id == 0, "victim %d went to %u", i,
                  info.segment_id);
      expect_false(i >= 3 && i < 3 + busy_count, "busy allocation %d was evicted", i);
    }
    expect_u64_eq(moved, stats.evictions, "every eviction moved one allocation");
    for (int i = 0; i < MORE; i++)
      expect_u64_eq(query(adapter, more[i]).segment_id, memory, "new %d in memory", i);
    expect_u64_eq(used_in(adapter, memory), 1 * MiB, "memory segment full");
    expect_u64_eq(used_in(adapter, aperture), moved * 64 * KiB, "the victims in the aperture");
    size_t transfers = 0;
    for (size_t i = mark; i < recording_count(); i++) {
      rec_call c = recording_get(i);
      if (c.ddi != REC_BUILD_PAGING_BUFFER || c.flags != DXGK_OPERATION_TRANSFER) continue;
      transfers++;
      assert_u64_eq(c.count, 2, "a TRANSFER has a source and a destination");
      expect_u64_eq(c.segment_ids[0], memory, "evicted out of the memory segment");
      expect_true(c.segment_ids[1] == aperture || c.segment_ids[1] == 0,
                  "into the aperture or system memory (%u)", c.segment_ids[1]);
    }
    expect_u64_eq(transfers, moved, "one TRANSFER per eviction");
    expect_check(adapter, "after eviction");
    if (busy_count) assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
    finish(adapter);
  }
}

TEST(test_eviction_of_the_creators_own_idle_allocations) {
  /* One device fills the memory segment with idle device-owned allocations, then asks for more
   * MEMORY_ONLY device-owned ones: VidMm must make room by evicting the idle ones (they are its
   * own, but nothing uses them). */
  if (recording_inner_table()->DxgkDdiBuildPagingBuffer == NULL) {
    al_test_skip("eviction needs DxgkDdiBuildPagingBuffer");
    return;
  }
  for (int as_resource = 0; as_resource < 2; as_resource++) {
    al_adapter *adapter = new_adapter();
    if (adapter == NULL) return;
    const uint32_t memory = segment_id(adapter, false);
    const pdata any = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
    const pdata memory_only = make_pdata(64 * KiB, AL_PLACEMENT_MEMORY_ONLY, 0);
    const al_handle a = new_device(adapter);
    al_handle fill[16], more[2], r = 0;
    assert_status(create_n(adapter, a, as_resource ? AL_CREATE_RESOURCE : 0, 0, 16, &any, fill, &r),
                  STATUS_SUCCESS, "fill");
    NTSTATUS status = as_resource ? create_n(adapter, a, 0, r, 2, &memory_only, more, NULL)
                                  : create_n(adapter, a, 0, 0, 2, &memory_only, more, NULL);
    expect_status(status, STATUS_SUCCESS, "%s: more MEMORY_ONLY allocations into the same %s",
                  as_resource ? "resource" : "device-owned", as_resource ? "resource" : "pool");
    if (NT_SUCCESS(status)) {
      expect_u64_ge(stats_of(adapter).evictions, 2, "by evicting idle ones");
      for (int i = 0; i < 2; i++) expect_u64_eq(query(adapter, more[i]).segment_id, memory, "in memory");
    }
    finish(adapter);
  }
}

TEST(test_busy_allocations_are_never_evicted) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const uint32_t memory = segment_id(adapter, false);
  const pdata any = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const pdata memory_only = make_pdata(64 * KiB, AL_PLACEMENT_MEMORY_ONLY, 0);
  const al_handle a = new_device(adapter);
  al_handle fill[16], x[1];
  uint64_t fence;
  assert_status(create_n(adapter, a, 0, 0, 16, &any, fill, NULL), STATUS_SUCCESS, "fill");
  assert_status(submit(adapter, a, fill, 16, &fence), STATUS_SUCCESS, "all busy");
  const al_adapter_stats before = stats_of(adapter);
  expect_status(create_n(adapter, a, 0, 0, 1, &memory_only, x, NULL), STATUS_NO_VIDEO_MEMORY, "all busy");
  expect_unchanged(adapter, before, "a create that would need a busy victim");
  for (int i = 0; i < 16; i++) expect_u64_eq(query(adapter, fill[i]).segment_id, memory, "busy %d stays", i);
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  if (recording_inner_table()->DxgkDdiBuildPagingBuffer)
    expect_status(create_n(adapter, a, 0, 0, 1, &memory_only, x, NULL), STATUS_SUCCESS, "idle now");
  finish(adapter);
}

TEST(test_page_in_for_submitted_work) {
  if (recording_inner_table()->DxgkDdiBuildPagingBuffer == NULL) {
    al_test_skip("paging needs DxgkDdiBuildPagingBuffer");
    return;
  }
  recording_reset();
  al_adapter *adapter = adapter_on(NULL, 256 * KiB, 64 * KiB, AL_ADAPTER_VERIFIER);
  if (adapter == NULL) return;
  const pdata any = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const pdata memory_only = make_pdata(64 * KiB, AL_PLACEMENT_MEMORY_ONLY, 0);
  const pdata aperture_only = make_pdata(64 * KiB, AL_PLACEMENT_APERTURE_ONLY, 0);
  const al_handle a = new_device(adapter);
  al_handle v[4], filler[1], m[2];
  assert_status(create_n(adapter, a, 0, 0, 4, &any, v, NULL), STATUS_SUCCESS, "fill memory");
  assert_status(create_n(adapter, a, 0, 0, 1, &aperture_only, filler, NULL), STATUS_SUCCESS,
                "fill the aperture");
  assert_status(create_n(adapter, a, 0, 0, 2, &memory_only, m, NULL), STATUS_SUCCESS, "evicts two");
  int evicted = -1;
  uint32_t in_system = 0;
  for (int i = 0; i < 4; i++)
    if (query(adapter, v[i]).segment_id == 0) {
      in_system++;
      evicted = i;
    }
  expect_u64_eq(in_system, 2, "two victims in system memory (the aperture is full)");
  assert_true(evicted >= 0, "a victim");
  expect_u64_eq(query(adapter, v[evicted]).size, 64 * KiB, "an evicted allocation keeps its size");
  expect_u64_eq(query(adapter, v[evicted]).segment_offset, 0, "and has no offset");
  const uint64_t page_ins = stats_of(adapter).page_ins;
  const size_t mark = recording_count();
  uint64_t fence;
  assert_status(submit(adapter, a, &v[evicted], 1, &fence), STATUS_SUCCESS, "work on an evicted allocation");
  al_allocation_info info = query(adapter, v[evicted]);
  expect_u64_ne(info.segment_id, 0, "paged back into a segment");
  expect_u64_gt(stats_of(adapter).page_ins, page_ins, "a page-in counted");
  size_t at = recording_find(REC_SUBMIT_COMMAND, mark);
  assert_true(at != SIZE_MAX, "submitted");
  rec_call c = recording_get(at);
  assert_u64_eq(c.count, 1, "one allocation listed");
  expect_u64_eq(c.segment_ids[0], info.segment_id, "the miniport was given the new segment");
  expect_u64_eq(c.segment_offsets[0], info.segment_offset, "and the new offset");
  size_t transfer = SIZE_MAX;
  for (size_t i = mark; i < at; i++) {
    rec_call t = recording_get(i);
    if (t.ddi == REC_BUILD_PAGING_BUFFER && t.flags == DXGK_OPERATION_TRANSFER && t.count == 2 &&
        t.segment_ids[0] == 0)
      transfer = i;
  }
  assert_true(transfer != SIZE_MAX, "a TRANSFER out of system memory before the submission");
  rec_call t = recording_get(transfer);
  expect_u64_eq(t.segment_ids[1], info.segment_id, "the TRANSFER's destination segment");
  expect_u64_eq(t.segment_offsets[1], info.segment_offset, "the TRANSFER's destination offset");
  /* Work on several evicted allocations at once: all come back. */
  al_handle all[4] = {v[0], v[1], v[2], v[3]};
  assert_status(submit(adapter, a, all, 4, &fence), STATUS_SUCCESS, "work on all four");
  c = recording_get(recording_find(REC_SUBMIT_COMMAND, at + 1));
  for (int i = 0; i < 4; i++) expect_u64_ne(c.segment_ids[i], 0, "entry %d in a segment", i);
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  expect_check(adapter, "after page-ins");
  finish(adapter);
}

TEST(test_page_in_moves_back_home) {
  /* An ANY allocation that fell back to the aperture goes back to the memory segment for work
   * once there is room. */
  recording_reset();
  al_adapter *adapter = adapter_on(NULL, 128 * KiB, 1 * MiB, AL_ADAPTER_VERIFIER);
  if (adapter == NULL) return;
  if (recording_inner_table()->DxgkDdiBuildPagingBuffer == NULL) {
    al_test_skip("paging needs DxgkDdiBuildPagingBuffer");
    finish(adapter);
    return;
  }
  const uint32_t memory = segment_id(adapter, false), aperture = segment_id(adapter, true);
  const pdata any = make_pdata(64 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  al_handle first[2], late[1];
  assert_status(create_n(adapter, a, 0, 0, 2, &any, first, NULL), STATUS_SUCCESS, "fill memory");
  assert_status(create_n(adapter, a, 0, 0, 1, &any, late, NULL), STATUS_SUCCESS, "falls back");
  expect_u64_eq(query(adapter, late[0]).segment_id, aperture, "in the aperture");
  uint64_t fence;
  assert_status(submit(adapter, a, late, 1, &fence), STATUS_SUCCESS, "work while memory is full");
  expect_u64_eq(query(adapter, late[0]).segment_id, aperture, "stays: no room at home");
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  assert_status(destroy_list(adapter, a, first, 1, 0), STATUS_SUCCESS, "room at home");
  const uint64_t page_ins = stats_of(adapter).page_ins;
  assert_status(submit(adapter, a, late, 1, &fence), STATUS_SUCCESS, "work with room");
  expect_u64_eq(query(adapter, late[0]).segment_id, memory, "back home");
  expect_u64_eq(stats_of(adapter).page_ins, page_ins + 1, "counted");
  expect_u64_eq(used_in(adapter, aperture), 0, "the aperture is empty");
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  finish(adapter);
}

/* ---- 9. Fences ---------------------------------------------------------------------------------- */

TEST(test_fence_api) {
  al_adapter *adapter = new_adapter();
  if (adapter == NULL) return;
  const pdata p = make_pdata(16 * KiB, AL_PLACEMENT_ANY, 0);
  const al_handle a = new_device(adapter);
  expect_u64_eq(al_fence_submitted(adapter), 0, "none submitted");
  expect_u64_eq(al_fence_completed(adapter), 0, "none completed");
  expect_u64_eq(al_fence_submitted(NULL), 0, "NULL adapter");
  expect_u64_eq(al_fence_completed(NULL), 0, "NULL adapter");
  expect_status(al_fence_wait(adapter, 1, 0), STATUS_INVALID_PARAMETER, "a fence never handed out");
  expect_status(al_fence_wait(adapter, UINT64_MAX, UINT64_MAX), STATUS_INVALID_PARAMETER, "UINT64_MAX");
  expect_status(al_fence_wait(NULL, 0, 0), STATUS_INVALID_PARAMETER, "NULL adapter");
  expect_status(al_gpu_run(NULL, 1, NULL), STATUS_INVALID_PARAMETER, "NULL adapter");
  uint32_t ran = 99;
  expect_status(al_gpu_run(adapter, 5, &ran), STATUS_SUCCESS, "nothing queued");
  expect_u64_eq(ran, 0, "nothing ran");
  al_handle x[2];
  assert_status(create_n(adapter, a, 0, 0, 2, &p, x, NULL), STATUS_SUCCESS, "create");
  uint64_t fences[4];
  for (int i = 0; i < 4; i++) {
    assert_status(submit(adapter, a, i % 2 ? x : NULL, i % 2 ? 2 : 0, &fences[i]), STATUS_SUCCESS,
                  "submit %d", i);
    expect_u64_eq(fences[i], (uint64_t)i + 1, "fences count from 1");
  }
  expect_u64_eq(al_fence_submitted(adapter), 4, "submitted");
  expect_u64_eq(al_fence_completed(adapter), 0, "nothing ran yet");
  expect_u64_eq(stats_of(adapter).fence_submitted, 4, "stats");
  expect_status(al_fence_wait(adapter, 5, 0), STATUS_INVALID_PARAMETER, "one past the last");
  expect_status(al_gpu_run(adapter, 0, &ran), STATUS_SUCCESS, "run 0");
  expect_u64_eq(ran, 0, "ran 0");
  expect_status(al_gpu_run(adapter, 2, &ran), STATUS_SUCCESS, "run 2");
  expect_u64_eq(ran, 2, "ran 2");
  expect_u64_eq(al_fence_completed(adapter), 2, "two completed");
  expect_status(al_fence_wait(adapter, 1, 0), STATUS_SUCCESS, "an already signalled fence");
  expect_u64_eq(al_fence_completed(adapter), 2, "waiting on a signalled fence runs nothing");
  expect_status(al_fence_wait(adapter, 3, UINT64_MAX), STATUS_SUCCESS, "wait 3");
  expect_u64_eq(al_fence_completed(adapter), 3, "runs exactly up to 3");
  /* An engine that fails to run: a bounded wait times out, and a later wait succeeds. */
  recording_fail_call(REC_RUN_ENGINE, 0, STATUS_NO_MEMORY);
  expect_status(al_fence_wait(adapter, 4, 0), STATUS_TIMEOUT, "the engine did not run");
  expect_u64_eq(al_fence_completed(adapter), 3, "nothing completed");
  expect_status(al_gpu_run(adapter, 10, NULL), STATUS_SUCCESS, "run the rest, no out");
  expect_u64_eq(al_fence_completed(adapter), 4, "all done");
  expect_status(al_gpu_run(adapter, 10, &ran), STATUS_SUCCESS, "nothing left");
  expect_u64_eq(ran, 0, "nothing ran");
  al_adapter_stats stats = stats_of(adapter);
  expect_u64_eq(stats.fence_completed, 4, "stats");
  expect_u64_eq(query(adapter, x[0]).last_fence, 4, "last_fence of the last work that used it");
  /* Completions were reported in order, once each. */
  uint64_t last = 0;
  size_t notifies = 0;
  for (size_t i = 0; i < recording_count(); i++) {
    rec_call c = recording_get(i);
    if (c.ddi != REC_NOTIFY_INTERRUPT) continue;
    notifies++;
    expect_u64_eq(c.fence, last + 1, "completion %zu in order", notifies);
    last = c.fence;
  }
  expect_u64_eq(notifies, 4, "four completions");
  finish(adapter);
}

RUN_TESTS(T(test_adapter_create_errors), T(test_create_errors), T(test_resource_open_errors),
          T(test_destroy_errors), T(test_submit_errors), T(test_device_errors),
          T(test_stale_handles_after_many_reuses), T(test_stale_device_handles),
          T(test_rollback_when_memory_runs_out_at_k), T(test_rollback_when_a_paging_operation_fails_at_k),
          T(test_broken_create_output_at_k), T(test_verifier_aborts_on_broken_miniport_answers),
          T(test_rollback_when_open_fails), T(test_create_allocation_failure_passes_through),
          T(test_ddi_order_create_then_open_create), T(test_ddi_order_destroy_shared_resource),
          T(test_ddi_order_partial_destroy), T(test_ddi_order_device_destroy),
          T(test_shared_resource_outlives_creator), T(test_deferred_destroy_waits_for_the_fence),
          T(test_deferred_destroy_of_a_shared_resource), T(test_destroy_assume_not_in_use_and_synchronous),
          T(test_device_destroy_waits_for_its_work), T(test_destroy_never_overtakes_a_deferred_close),
          T(test_empty_resources), T(test_largest_batches), T(test_device_removed),
          T(test_placement_preferred_and_fallback), T(test_placement_alignment),
          T(test_placement_no_video_memory), T(test_placement_reclaims_deferred_memory),
          T(test_eviction_of_idle_allocations), T(test_eviction_of_the_creators_own_idle_allocations),
          T(test_busy_allocations_are_never_evicted), T(test_page_in_for_submitted_work),
          T(test_page_in_moves_back_home), T(test_fence_api))
