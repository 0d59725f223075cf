/*
 * sim_port_test.c — the sim miniport end to end through the port (//core:alloclab) with the DDI
 * verifier on: contents written and checked by submitted work, COPY, eviction round trips through
 * the aperture and through system memory with contents preserved, a shared resource seen from two
 * devices, check failures, hostile command streams rejected at submit, determinism, and every
 * fault-injection point (SQLite style) with nothing leaked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/alloclab.h"
#include "alloclab/hw/sim_miniport.h"

#define KiB ((UINT64)1 << 10)
#define MiB ((UINT64)1 << 20)

/* ---- Helpers ------------------------------------------------------------------------------------ */

static SIM_HARDWARE_CONFIG hw(UINT64 memory, UINT64 aperture, UINT flags) {
  SIM_HARDWARE_CONFIG config = sim_hardware_config_default();
  config.MemorySegmentSize = memory;
  config.ApertureSegmentSize = aperture;
  config.Flags = flags;
  return config;
}

static al_adapter *adapter_with(const SIM_HARDWARE_CONFIG *hardware) {
  al_adapter_config config = {.driver_entry = SimMiniportDriverEntry,
                              .hardware_config = hardware,
                              .hardware_config_size = hardware ? sizeof *hardware : 0,
                              .flags = AL_ADAPTER_VERIFIER};
  al_adapter *adapter = NULL;
  NTSTATUS status = al_adapter_create(&config, &adapter);
  expect_status(status, STATUS_SUCCESS, "al_adapter_create");
  return NT_SUCCESS(status) ? adapter : NULL;
}

static void expect_consistent(al_adapter *adapter) {
  char msg[512];
  expect_true(al_adapter_check(adapter, msg, sizeof msg), "al_adapter_check: %s", msg);
}

/* After every adapter is gone, the miniport holds nothing anywhere. */
static void expect_nothing_left(const char *what) {
  sim_miniport_stats s;
  sim_miniport_get_stats(&s);
  expect_u64_eq(s.adapters, 0, "%s: adapters", what);
  expect_u64_eq(s.devices + s.zombie_devices + s.resources + s.allocations + s.bindings, 0, "%s: objects", what);
  expect_u64_eq(s.host_bytes, 0, "%s: host bytes", what);
  expect_u64_eq(s.committed_bytes, 0, "%s: committed", what);
  expect_u64_eq(s.queued_submissions, 0, "%s: queued", what);
}

static NTSTATUS make(al_adapter *adapter, al_handle device, const SIM_ALLOCATION_DATA *data, al_handle *out) {
  al_allocation_desc desc = {data, sizeof *data};
  al_create_allocation_args args = {.device = device, .allocation_count = 1, .allocations = &desc, .out_allocations = out};
  return al_allocation_create(adapter, &args);
}

static NTSTATUS make_buffer(al_adapter *adapter, al_handle device, UINT64 size, UINT placement, al_handle *out) {
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(size, placement, 0);
  return make(adapter, device, &data, out);
}

static NTSTATUS make_shared(al_adapter *adapter, al_handle device, UINT64 size, uint32_t count, al_handle *out,
                            al_handle *out_resource) {
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(size, SIM_PLACEMENT_ANY, 0);
  al_allocation_desc descs[8];
  for (uint32_t i = 0; i < count; i++) descs[i] = (al_allocation_desc){&data, sizeof data};
  al_create_allocation_args args = {.device = device,
                                    .flags = AL_CREATE_RESOURCE | AL_CREATE_SHARED,
                                    .allocation_count = count,
                                    .allocations = descs,
                                    .out_allocations = out,
                                    .out_resource = out_resource};
  return al_allocation_create(adapter, &args);
}

static NTSTATUS destroy(al_adapter *adapter, al_handle device, al_handle allocation) {
  al_destroy_allocation_args args = {.device = device, .allocations = &allocation, .allocation_count = 1};
  return al_allocation_destroy(adapter, &args);
}

static uint32_t segment_of(al_adapter *adapter, al_handle allocation) {
  al_allocation_info info = {0};
  if (al_allocation_query(adapter, allocation, &info) != STATUS_SUCCESS) return UINT32_MAX;
  return info.segment_id;
}

typedef struct cmds {
  uint8_t bytes[16384];
  uint32_t size;
} cmds;

static void c_fill(cmds *c, UINT index, UINT64 offset, UINT64 size, UINT pattern) {
  c->size += (uint32_t)sim_cmd_fill(c->bytes + c->size, index, offset, size, pattern);
}
static void c_check(cmds *c, UINT index, UINT64 offset, UINT64 size, UINT pattern) {
  c->size += (uint32_t)sim_cmd_check(c->bytes + c->size, index, offset, size, pattern);
}
static void c_copy(cmds *c, UINT src, UINT64 src_offset, UINT dst, UINT64 dst_offset, UINT64 size) {
  c->size += (uint32_t)sim_cmd_copy(c->bytes + c->size, src, src_offset, dst, dst_offset, size);
}

/* Submits @c referencing @list on @device; waits for it when @wait. */
static NTSTATUS run(al_adapter *adapter, al_handle device, const al_handle *list, uint32_t n, const cmds *c,
                    bool wait, uint64_t *out_fence) {
  uint64_t fence = 0;
  al_submit_args args = {.device = device, .allocations = list, .allocation_count = n,
                         .command = c->size ? c->bytes : NULL, .command_size = c->size, .out_fence = &fence};
  NTSTATUS status = al_submit(adapter, &args);
  if (out_fence) *out_fence = fence;
  if (NT_SUCCESS(status) && wait) status = al_fence_wait(adapter, fence, UINT64_MAX);
  return status;
}

static uint64_t check_failures(void) {
  sim_miniport_stats s;
  sim_miniport_get_stats(&s);
  return s.check_failures;
}

static uint64_t gpu_faults(void) {
  sim_miniport_stats s;
  sim_miniport_get_stats(&s);
  return s.gpu_faults;
}

/* ---- Contents ------------------------------------------------------------------------------------ */

TEST(fill_then_check_passes) {
  al_adapter *adapter = adapter_with(NULL); /* the defaults: abort on any fault or failed check */
  assert_ptr_ne(adapter, NULL, "adapter");
  uint64_t failures = check_failures(), faults = gpu_faults();
  al_handle device, a, b;
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  assert_status(make_buffer(adapter, device, 64 * KiB, SIM_PLACEMENT_ANY, &a), STATUS_SUCCESS, "a");
  assert_status(make_buffer(adapter, device, 10000, SIM_PLACEMENT_APERTURE_ONLY, &b), STATUS_SUCCESS, "b");
  al_handle list[2] = {a, b};
  cmds c = {.size = 0};
  c_check(&c, 0, 0, 64 * KiB, 0); /* FILL at placement zeroes it */
  c_check(&c, 1, 0, 12288, 0);
  c_fill(&c, 0, 0, 64 * KiB, 0xA5A5A5A5u);
  c_fill(&c, 1, 3, 9000, 0x04030201u);
  c_check(&c, 0, 0, 64 * KiB, 0xA5A5A5A5u);
  c_check(&c, 1, 3, 9000, 0x04030201u);
  c_check(&c, 1, 0, 3, 0);
  c_check(&c, 1, 9003, 12288 - 9003, 0);
  assert_status(run(adapter, device, list, 2, &c, true, NULL), STATUS_SUCCESS, "fill and check");
  expect_u64_eq(check_failures(), failures, "every check passed");
  expect_u64_eq(gpu_faults(), faults, "no fault");
  /* A second submission sees what the first wrote. */
  c.size = 0;
  c_check(&c, 0, 100, 4000, 0xA5A5A5A5u);
  assert_status(run(adapter, device, list, 2, &c, true, NULL), STATUS_SUCCESS, "check later");
  expect_u64_eq(check_failures(), failures, "contents persist");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
  expect_nothing_left("fill_then_check");
}

/* al_device_create_with_info: the sim's limits arrive through the port (pInfo); a failed call
 * writes nothing; without info it is al_device_create. */
TEST(device_info_through_the_port) {
  al_adapter *adapter = adapter_with(NULL);
  assert_ptr_ne(adapter, NULL, "adapter");
  DXGK_DEVICEINFO info;
  memset(&info, 0xA5, sizeof info);
  al_handle device = 0, plain = 0;
  assert_status(al_device_create_with_info(adapter, NULL, &info), STATUS_INVALID_PARAMETER, "NULL out_device");
  expect_u64_eq(info.DmaBufferSize, 0xA5A5A5A5u, "a failed call leaves the info alone");
  assert_status(al_device_create_with_info(adapter, &device, &info), STATUS_SUCCESS, "device with info");
  expect_u64_eq(info.DmaBufferSize, SIM_CMD_MAX_STREAM_BYTES, "DmaBufferSize");
  expect_u64_eq(info.AllocationListSize, SIM_MAX_ALLOCATION_LIST, "AllocationListSize");
  expect_u64_eq(info.PatchLocationListSize, 0, "PatchLocationListSize");
  expect_u64_eq(info.DmaBufferSegmentSet, 0, "fields the sim leaves are zeroed by the port");
  expect_u64_eq(info.Flags, 0, "Flags");
  assert_status(al_device_create_with_info(adapter, &plain, NULL), STATUS_SUCCESS, "device without info");
  expect_u64_eq(plain != device && plain != 0, 1, "a second device");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
  expect_nothing_left("device_info_through_the_port");
}

TEST(copy_between_allocations) {
  al_adapter *adapter = adapter_with(NULL);
  assert_ptr_ne(adapter, NULL, "adapter");
  uint64_t failures = check_failures();
  al_handle device, a, b;
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  assert_status(make_buffer(adapter, device, 256 * KiB, SIM_PLACEMENT_ANY, &a), STATUS_SUCCESS, "a");
  assert_status(make_buffer(adapter, device, 256 * KiB, SIM_PLACEMENT_APERTURE_ONLY, &b), STATUS_SUCCESS, "b");
  al_handle list[2] = {a, b};
  cmds c = {.size = 0};
  c_fill(&c, 0, 0, 256 * KiB, 0x11223344u);
  c_copy(&c, 0, 0, 1, 0, 128 * KiB);              /* A -> B, whole pages */
  c_copy(&c, 0, 4, 1, 128 * KiB + 8, 5000);       /* odd offsets, same pattern phase */
  c_fill(&c, 0, 0, 4096, 0x55555555u);           /* later writes to A do not reach B */
  c_copy(&c, 1, 0, 0, 128 * KiB, 64 * KiB);       /* B -> A */
  c_check(&c, 1, 0, 128 * KiB, 0x11223344u);
  c_check(&c, 1, 128 * KiB + 8, 5000, 0x11223344u);
  c_check(&c, 1, 128 * KiB, 8, 0);
  c_check(&c, 0, 0, 4096, 0x55555555u);
  c_check(&c, 0, 128 * KiB, 64 * KiB, 0x11223344u);
  assert_status(run(adapter, device, list, 2, &c, true, NULL), STATUS_SUCCESS, "copies");
  expect_u64_eq(check_failures(), failures, "copied contents are right");
  /* Inside one allocation, non-overlapping. */
  c.size = 0;
  c_copy(&c, 0, 0, 0, 64 * KiB, 4096);
  c_check(&c, 0, 64 * KiB, 4096, 0x55555555u);
  assert_status(run(adapter, device, list, 2, &c, true, NULL), STATUS_SUCCESS, "copy within");
  expect_u64_eq(check_failures(), failures, "copy within one allocation");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
  expect_nothing_left("copy");
}

TEST(check_failure_is_logged) {
  SIM_HARDWARE_CONFIG hardware = hw(16 * MiB, 16 * MiB, 0); /* no abort */
  al_adapter *adapter = adapter_with(&hardware);
  assert_ptr_ne(adapter, NULL, "adapter");
  sim_miniport_events_clear();
  uint64_t failures = check_failures();
  al_handle device, a;
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  assert_status(make_buffer(adapter, device, 8192, SIM_PLACEMENT_ANY, &a), STATUS_SUCCESS, "a");
  cmds c = {.size = 0};
  c_fill(&c, 0, 0, 8192, 0xCAFEF00Du);
  c_fill(&c, 0, 4101, 1, 0x000000EEu);
  c_check(&c, 0, 0, 8192, 0xCAFEF00Du);  /* wrong at 4101 */
  c_check(&c, 0, 0, 4096, 0xCAFEF00Du);  /* right */
  c_check(&c, 0, 16, 16, 0x12345678u);   /* wrong at 16 */
  assert_status(run(adapter, device, &a, 1, &c, true, NULL), STATUS_SUCCESS, "submit");
  expect_u64_eq(check_failures(), failures + 2, "two checks failed");
  sim_event events[4];
  size_t n = sim_miniport_events(events, 4);
  assert_u64_eq(n, 2, "two events");
  expect_u64_eq(events[0].kind, SIM_EVENT_CHECK_FAILED, "kind");
  expect_u64_eq(events[0].offset, 4101, "first wrong byte");
  expect_u64_eq(events[0].expected, 0xF0, "byte 1 of 0xCAFEF00D (4101 mod 4)");
  expect_u64_eq(events[0].found, 0xEE, "found");
  expect_u64_eq(events[0].list_index, 0, "list index");
  expect_u64_ne(events[0].allocation, 0, "allocation id");
  expect_u64_eq(events[0].device, device, "the port's device handle");
  expect_u64_eq(events[1].offset, 16, "second check");
  expect_u64_eq(events[1].expected, 0x78, "expected");
  expect_u64_eq(events[1].found, 0x0D, "found");
  al_adapter_destroy(adapter);
  expect_nothing_left("check_failure_is_logged");
}

static void failing_check_with_abort(void *unused) {
  (void)unused;
  al_adapter *adapter = adapter_with(NULL);
  al_handle device, a;
  al_device_create(adapter, &device);
  make_buffer(adapter, device, 4096, SIM_PLACEMENT_ANY, &a);
  cmds c = {.size = 0};
  c_check(&c, 0, 0, 4096, 0x01010101u); /* it holds zeroes */
  run(adapter, device, &a, 1, &c, true, NULL);
}

TEST(check_failure_aborts_by_default) {
  expect_death(failing_check_with_abort, NULL, "alloclab sim: content check failed: allocation");
}

TEST(textures_and_64k_pages) {
  SIM_HARDWARE_CONFIG hardware = hw(256 * KiB, 1 * MiB, SIM_HW_ABORT_ON_GPU_FAULT);
  hardware.MemoryPageSize = 65536;
  al_adapter *adapter = adapter_with(&hardware);
  assert_ptr_ne(adapter, NULL, "adapter");
  uint64_t failures = check_failures();
  al_handle device, tex, buf;
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  SIM_ALLOCATION_DATA data = sim_allocation_texture2d(300, 40, 4, SIM_PLACEMENT_ANY, SIM_USAGE_RENDER_TARGET);
  assert_status(make(adapter, device, &data, &tex), STATUS_SUCCESS, "texture");
  al_allocation_info info;
  assert_status(al_allocation_query(adapter, tex, &info), STATUS_SUCCESS, "query");
  expect_u64_eq(info.size, 65536, "pitch 1280 * 40 = 51200 -> one 64 KiB page");
  expect_u64_eq(info.segment_id, 1, "memory first");
  expect_u64_eq(info.segment_offset % 65536, 0, "64K aligned");
  assert_status(make_buffer(adapter, device, 5000, SIM_PLACEMENT_APERTURE_ONLY, &buf), STATUS_SUCCESS, "buffer");
  al_handle list[2] = {tex, buf};
  cmds c = {.size = 0};
  for (UINT row = 0; row < 40; row++) c_fill(&c, 0, (UINT64)row * 1280, 1200, 0x01000000u | row);
  c_copy(&c, 0, 1280 * 7, 1, 0, 1200);
  for (UINT row = 0; row < 40; row++) c_check(&c, 0, (UINT64)row * 1280, 1200, 0x01000000u | row);
  c_check(&c, 1, 0, 1200, 0x01000007u);
  assert_status(run(adapter, device, list, 2, &c, true, NULL), STATUS_SUCCESS, "rows");
  expect_u64_eq(check_failures(), failures, "rows written and read back");
  /* 64 KiB memory pages against the 4 KiB-page aperture: evict the texture, check it there. */
  al_handle pressure[16];
  int made = 0;
  while (made < 16 && segment_of(adapter, tex) == 1) {
    assert_status(make_buffer(adapter, device, 64 * KiB, SIM_PLACEMENT_MEMORY_ONLY, &pressure[made]), STATUS_SUCCESS,
                  "pressure %d", made);
    made++;
  }
  expect_u64_eq(segment_of(adapter, tex), 2, "the texture went to the aperture");
  c.size = 0;
  for (UINT row = 0; row < 40; row++) c_check(&c, 0, (UINT64)row * 1280, 1200, 0x01000000u | row);
  assert_status(run(adapter, device, list, 2, &c, true, NULL), STATUS_SUCCESS, "rows after eviction");
  expect_u64_eq(check_failures(), failures, "rows survived the move between page sizes");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
  expect_nothing_left("textures");
}

/* ---- Paging ----------------------------------------------------------------------------------------- */

TEST(eviction_round_trip_through_the_aperture) {
  SIM_HARDWARE_CONFIG hardware = hw(1 * MiB, 1 * MiB, SIM_HW_ABORT_ON_GPU_FAULT);
  al_adapter *adapter = adapter_with(&hardware);
  assert_ptr_ne(adapter, NULL, "adapter");
  uint64_t failures = check_failures();
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  al_handle device, a, pressure[8];
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  assert_status(make_buffer(adapter, device, 256 * KiB, SIM_PLACEMENT_ANY, &a), STATUS_SUCCESS, "a");
  expect_u64_eq(segment_of(adapter, a), 1, "a starts in memory");
  cmds c = {.size = 0};
  c_fill(&c, 0, 0, 256 * KiB, 0x600DF00Du);
  assert_status(run(adapter, device, &a, 1, &c, true, NULL), STATUS_SUCCESS, "fill a");
  /* Memory-only pressure until a is pushed out. */
  int made = 0;
  while (made < 8 && segment_of(adapter, a) == 1) {
    assert_status(make_buffer(adapter, device, 256 * KiB, SIM_PLACEMENT_MEMORY_ONLY, &pressure[made]),
                  STATUS_SUCCESS, "pressure %d", made);
    made++;
  }
  expect_u64_eq(segment_of(adapter, a), 2, "a was evicted to the aperture");
  sim_miniport_get_stats(&after);
  expect_u64_gt(after.transfers, before.transfers, "through DXGK_OPERATION_TRANSFER");
  expect_consistent(adapter);
  /* Work on a: it runs where a is now; the contents came along. */
  c.size = 0;
  c_check(&c, 0, 0, 256 * KiB, 0x600DF00Du);
  assert_status(run(adapter, device, &a, 1, &c, true, NULL), STATUS_SUCCESS, "check a in the aperture");
  expect_u64_eq(check_failures(), failures, "contents preserved by the eviction");
  /* Make room at home: the next work brings a back to memory (TRANSFER aperture -> memory). */
  for (int i = 0; i < made; i++) assert_status(destroy(adapter, device, pressure[i]), STATUS_SUCCESS, "free");
  c.size = 0;
  c_check(&c, 0, 0, 256 * KiB, 0x600DF00Du);
  c_fill(&c, 0, 0, 4, 0x0BADCAFEu);
  c_check(&c, 0, 0, 4, 0x0BADCAFEu);
  assert_status(run(adapter, device, &a, 1, &c, true, NULL), STATUS_SUCCESS, "check a back home");
  expect_u64_eq(segment_of(adapter, a), 1, "a paged back in to its preferred segment");
  expect_u64_eq(check_failures(), failures, "contents preserved both ways");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
  expect_nothing_left("eviction via aperture");
}

TEST(eviction_round_trip_through_system_memory) {
  SIM_HARDWARE_CONFIG hardware = hw(1 * MiB, 512 * KiB, SIM_HW_ABORT_ON_GPU_FAULT);
  al_adapter *adapter = adapter_with(&hardware);
  assert_ptr_ne(adapter, NULL, "adapter");
  uint64_t failures = check_failures();
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  al_handle device, a, others[8];
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  assert_status(make_buffer(adapter, device, 256 * KiB, SIM_PLACEMENT_APERTURE_ONLY, &a), STATUS_SUCCESS, "a");
  cmds c = {.size = 0};
  c_fill(&c, 0, 0, 256 * KiB, 0x5157E4A1u);
  assert_status(run(adapter, device, &a, 1, &c, true, NULL), STATUS_SUCCESS, "fill a");
  int made = 0;
  while (made < 8 && segment_of(adapter, a) == 2) {
    assert_status(make_buffer(adapter, device, 256 * KiB, SIM_PLACEMENT_APERTURE_ONLY, &others[made]),
                  STATUS_SUCCESS, "aperture pressure %d", made);
    made++;
  }
  expect_u64_eq(segment_of(adapter, a), 0, "a was evicted to system memory");
  sim_miniport_get_stats(&after);
  expect_u64_gt(after.to_system, before.to_system, "segment -> system TRANSFER");
  expect_u64_ge(after.system_bytes, 256 * KiB, "the miniport holds a's contents in host memory");
  expect_consistent(adapter);
  /* Work on a brings it back (possibly pushing another out to system memory). */
  c.size = 0;
  c_check(&c, 0, 0, 256 * KiB, 0x5157E4A1u);
  assert_status(run(adapter, device, &a, 1, &c, true, NULL), STATUS_SUCCESS, "check a");
  expect_u64_eq(segment_of(adapter, a), 2, "a is back in the aperture");
  sim_miniport_get_stats(&after);
  expect_u64_gt(after.from_system, before.from_system, "system -> segment TRANSFER");
  expect_u64_eq(check_failures(), failures, "contents survived system memory");
  /* Everyone's contents: fill each, force rotations, check each. */
  al_handle all[9];
  all[0] = a;
  for (int i = 0; i < made; i++) all[i + 1] = others[i];
  for (int i = 0; i <= made; i++) {
    c.size = 0;
    c_fill(&c, 0, 0, 256 * KiB, 0x1000u + (UINT)i);
    assert_status(run(adapter, device, &all[i], 1, &c, true, NULL), STATUS_SUCCESS, "fill %d", i);
  }
  for (int round = 0; round < 2; round++)
    for (int i = 0; i <= made; i++) {
      c.size = 0;
      c_check(&c, 0, 0, 256 * KiB, 0x1000u + (UINT)i);
      assert_status(run(adapter, device, &all[i], 1, &c, true, NULL), STATUS_SUCCESS, "check %d", i);
    }
  expect_u64_eq(check_failures(), failures, "rotation through system memory preserves everything");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
  expect_nothing_left("eviction via system memory");
}

/* ---- Sharing ------------------------------------------------------------------------------------- */

TEST(shared_resource_on_two_devices) {
  al_adapter *adapter = adapter_with(NULL);
  assert_ptr_ne(adapter, NULL, "adapter");
  uint64_t failures = check_failures();
  al_handle d1, d2, xy[2], resource;
  assert_status(al_device_create(adapter, &d1), STATUS_SUCCESS, "d1");
  assert_status(al_device_create(adapter, &d2), STATUS_SUCCESS, "d2");
  assert_status(make_shared(adapter, d1, 64 * KiB, 2, xy, &resource), STATUS_SUCCESS, "shared resource");
  cmds c = {.size = 0};
  c_fill(&c, 0, 0, 64 * KiB, 0xD1D1D1D1u);
  c_fill(&c, 1, 0, 64 * KiB, 0xD1D2D1D2u);
  assert_status(run(adapter, d1, xy, 2, &c, true, NULL), STATUS_SUCCESS, "d1 writes");
  assert_status(al_resource_open(adapter, d2, resource), STATUS_SUCCESS, "open on d2");
  c.size = 0;
  c_check(&c, 0, 0, 64 * KiB, 0xD1D1D1D1u);
  c_check(&c, 1, 0, 64 * KiB, 0xD1D2D1D2u);
  c_fill(&c, 0, 32 * KiB, 32 * KiB, 0xD2D2D2D2u);
  assert_status(run(adapter, d2, xy, 2, &c, true, NULL), STATUS_SUCCESS, "d2 reads what d1 wrote, writes");
  c.size = 0;
  c_check(&c, 0, 0, 32 * KiB, 0xD1D1D1D1u);
  c_check(&c, 0, 32 * KiB, 32 * KiB, 0xD2D2D2D2u);
  assert_status(run(adapter, d1, xy, 2, &c, true, NULL), STATUS_SUCCESS, "d1 reads what d2 wrote");
  expect_u64_eq(check_failures(), failures, "both devices see the same contents");
  /* d1 lets go; d2 still sees everything. */
  al_destroy_allocation_args release = {.device = d1, .resource = resource};
  assert_status(al_allocation_destroy(adapter, &release), STATUS_SUCCESS, "d1 releases");
  c.size = 0;
  c_check(&c, 1, 0, 64 * KiB, 0xD1D2D1D2u);
  assert_status(run(adapter, d2, xy, 2, &c, true, NULL), STATUS_SUCCESS, "d2 still reads");
  assert_status(al_device_destroy(adapter, d1), STATUS_SUCCESS, "d1 gone");
  assert_status(run(adapter, d2, xy, 2, &c, true, NULL), STATUS_SUCCESS, "outlives its creator");
  expect_u64_eq(check_failures(), failures, "contents intact");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
  expect_nothing_left("shared");
}

/* ---- Hostile command streams ------------------------------------------------------------------------ */

TEST(invalid_streams_rejected_at_submit) {
  al_adapter *adapter = adapter_with(NULL);
  assert_ptr_ne(adapter, NULL, "adapter");
  al_handle device, a, b;
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  assert_status(make_buffer(adapter, device, 8192, SIM_PLACEMENT_ANY, &a), STATUS_SUCCESS, "a");
  assert_status(make_buffer(adapter, device, 4096, SIM_PLACEMENT_ANY, &b), STATUS_SUCCESS, "b");
  al_handle list[2] = {a, b};
  cmds c;
  int k = 0;
#define BAD(stmt, what)                                                                                  \
  do {                                                                                                   \
    c.size = 0;                                                                                          \
    stmt;                                                                                                \
    uint64_t submitted = al_fence_submitted(adapter);                                                    \
    expect_status(run(adapter, device, list, 2, &c, false, NULL), STATUS_INVALID_PARAMETER, "%s", what); \
    expect_u64_eq(al_fence_submitted(adapter), submitted, "%s: nothing queued", what);                   \
    k++;                                                                                                 \
  } while (0)
  BAD(c_fill(&c, 2, 0, 1, 0), "index past the list");
  BAD(c_fill(&c, UINT32_MAX, 0, 1, 0), "index 2^32-1");
  BAD(c_fill(&c, 0, 8192, 1, 0), "offset at the end");
  BAD(c_fill(&c, 0, 8191, 2, 0), "range past the end");
  BAD(c_fill(&c, 0, 1, UINT64_MAX, 0), "offset + size overflows");
  BAD(c_fill(&c, 0, UINT64_MAX, 2, 0), "offset 2^64-1");
  BAD(c_check(&c, 1, 0, 4097, 0), "check past the end");
  BAD(c_copy(&c, 0, 0, 1, 1, 4096), "copy past the destination");
  BAD(c_copy(&c, 0, 4096, 1, 0, 4097), "copy past the source");
  BAD(c_copy(&c, 0, 0, 0, 100, 200), "overlapping copy in one allocation");
  BAD(c_copy(&c, 5, 0, 0, 0, 1), "copy source index");
  BAD((c_fill(&c, 0, 0, 8, 0), c.size -= 1), "truncated record");
  BAD((c_fill(&c, 0, 0, 8, 0), c.bytes[4] = 23), "fill with the wrong length");
  BAD((c_fill(&c, 0, 0, 8, 0), c.bytes[0] = 9), "unknown opcode");
  BAD((c.size = (uint32_t)sim_cmd_nop(c.bytes, 16), c.bytes[4] = 17), "nop longer than the stream");
  BAD((c.bytes[0] = 1, c.size = 5), "header cut short");
  BAD((c_fill(&c, 0, 0, 8, 0), c.bytes[4] = 0xFF, c.bytes[5] = 0xFF, c.bytes[6] = 0xFF, c.bytes[7] = 0xFF),
      "length 2^32-1");
#undef BAD
  expect_u64_gt(k, 10, "cases ran");
  /* Valid edge cases are accepted: size 0 anywhere inside, NOPs, an empty stream. */
  c.size = 0;
  c_fill(&c, 0, 8192, 0, 0);
  c.size += (uint32_t)sim_cmd_nop(c.bytes + c.size, 0);
  c.size += (uint32_t)sim_cmd_nop(c.bytes + c.size, 13);
  c_copy(&c, 0, 0, 0, 0, 0);
  c_check(&c, 1, 0, 4096, 0);
  assert_status(run(adapter, device, list, 2, &c, true, NULL), STATUS_SUCCESS, "edge cases");
  c.size = 0;
  assert_status(run(adapter, device, list, 2, &c, true, NULL), STATUS_SUCCESS, "empty stream (Null)");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
  expect_nothing_left("invalid streams");
}

/* ---- Determinism --------------------------------------------------------------------------------- */

typedef struct trace {
  uint64_t values[4096];
  size_t count;
} trace;

static void note(trace *t, uint64_t value) {
  if (t->count < sizeof t->values / sizeof t->values[0]) t->values[t->count++] = value;
}

static void note_placement(trace *t, al_adapter *adapter, const al_handle *handles, int n) {
  for (int i = 0; i < n; i++) {
    al_allocation_info info = {0};
    note(t, al_allocation_query(adapter, handles[i], &info) == STATUS_SUCCESS);
    note(t, info.segment_id);
    note(t, info.segment_offset);
  }
}

/* A scenario with pressure, sharing, copies and a deliberately failing check. */
static void deterministic_scenario(trace *t) {
  SIM_HARDWARE_CONFIG hardware = hw(512 * KiB, 256 * KiB, 0);
  al_adapter *adapter = adapter_with(&hardware);
  if (!adapter) return;
  sim_miniport_events_clear();
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  al_handle d1, d2, h[12], shared[2], resource;
  al_device_create(adapter, &d1);
  al_device_create(adapter, &d2);
  int n = 0;
  for (; n < 4; n++) make_buffer(adapter, d1, 64 * KiB * (UINT64)(n + 1), (UINT)(n % 3), &h[n]);
  make_shared(adapter, d1, 48 * KiB, 2, shared, &resource);
  al_resource_open(adapter, d2, resource);
  cmds c = {.size = 0};
  for (int i = 0; i < 4; i++) c_fill(&c, (UINT)i, 0, 64 * KiB, 0x01010101u * (UINT)(i + 1));
  c_copy(&c, 0, 0, 3, 64 * KiB, 64 * KiB);
  c_check(&c, 3, 64 * KiB, 64 * KiB, 0x01010101u);
  c_check(&c, 2, 0, 100, 0x77777777u); /* fails */
  uint64_t fence = 0;
  run(adapter, d1, h, 4, &c, false, &fence);
  note(t, fence);
  c.size = 0;
  c_fill(&c, 0, 0, 48 * KiB, 0xABCDEF01u);
  c_copy(&c, 0, 0, 1, 0, 48 * KiB);
  run(adapter, d2, shared, 2, &c, false, &fence);
  note(t, fence);
  uint32_t ran = 0;
  al_gpu_run(adapter, 1, &ran);
  note(t, ran);
  for (; n < 12; n++) {
    NTSTATUS status = make_buffer(adapter, d1, 64 * KiB, (UINT)(n % 2 ? SIM_PLACEMENT_MEMORY_ONLY : SIM_PLACEMENT_APERTURE_ONLY), &h[n]);
    note(t, (uint64_t)(uint32_t)status);
    if (!NT_SUCCESS(status)) h[n] = 0;
    note_placement(t, adapter, h, n + 1);
  }
  c.size = 0;
  c_check(&c, 0, 0, 48 * KiB, 0xABCDEF01u);
  c_check(&c, 1, 0, 48 * KiB, 0xABCDEF00u); /* fails at byte 0 */
  run(adapter, d1, shared, 2, &c, true, &fence);
  note(t, fence);
  note_placement(t, adapter, shared, 2);
  note_placement(t, adapter, h, 12);
  sim_event events[16];
  size_t count = sim_miniport_events(events, 16);
  note(t, count);
  for (size_t i = 0; i < count; i++) {
    note(t, events[i].kind);
    note(t, events[i].fence);
    note(t, events[i].offset);
    note(t, events[i].allocation);
    note(t, events[i].list_index);
    note(t, events[i].expected);
    note(t, events[i].found);
  }
  sim_miniport_get_stats(&after);
  note(t, after.transfers - before.transfers);
  note(t, after.to_system - before.to_system);
  note(t, after.from_system - before.from_system);
  note(t, after.check_failures - before.check_failures);
  note(t, after.committed_bytes);
  note(t, after.host_bytes);
  al_adapter_destroy(adapter);
}

TEST(deterministic_engine_same_inputs_same_results) {
  static trace first, second;
  memset(&first, 0, sizeof first);
  memset(&second, 0, sizeof second);
  deterministic_scenario(&first);
  deterministic_scenario(&second);
  assert_u64_eq(first.count, second.count, "same trace length");
  expect_u64_gt(first.count, 100, "the scenario ran");
  for (size_t i = 0; i < first.count; i++)
    if (first.values[i] != second.values[i]) {
      expect_u64_eq(first.values[i], second.values[i], "trace entry %zu differs", i);
      break;
    }
  expect_nothing_left("deterministic");
}

/* ---- Fault injection: every point, every n (SQLite style) --------------------------------------------- */

static bool documented_failure(NTSTATUS status) {
  return status == STATUS_NO_MEMORY || status == STATUS_GRAPHICS_NO_VIDEO_MEMORY || status == STATUS_DEVICE_REMOVED;
}

static void expect_same_live(const sim_miniport_stats *a, const sim_miniport_stats *b, const char *what) {
  expect_u64_eq(a->devices, b->devices, "%s: devices", what);
  expect_u64_eq(a->zombie_devices, b->zombie_devices, "%s: zombies", what);
  expect_u64_eq(a->resources, b->resources, "%s: resources", what);
  expect_u64_eq(a->allocations, b->allocations, "%s: allocations", what);
  expect_u64_eq(a->bindings, b->bindings, "%s: bindings", what);
  expect_u64_eq(a->host_bytes, b->host_bytes, "%s: host bytes", what);
  expect_u64_eq(a->system_bytes, b->system_bytes, "%s: system bytes", what);
  expect_u64_eq(a->page_table_bytes, b->page_table_bytes, "%s: page-table bytes", what);
  expect_u64_eq(a->committed_bytes, b->committed_bytes, "%s: committed bytes", what);
  expect_u64_eq(a->mapped_bytes, b->mapped_bytes, "%s: mapped bytes", what);
  expect_u64_eq(a->va_reserved_bytes, b->va_reserved_bytes, "%s: VA", what);
}

typedef struct fi_state {
  al_adapter *adapter;
  const char *point;
  uint32_t n;
  uint32_t failed_steps;
} fi_state;

/* Runs one step; a failure must be documented and, for a @pure step (one that cannot have paged
 * anything), must have changed nothing in the miniport. Returns whether it succeeded. */
static bool fi_step(fi_state *s, bool pure, NTSTATUS (*call)(fi_state *, void *), void *arg, const char *what) {
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  NTSTATUS status = call(s, arg);
  if (!NT_SUCCESS(status)) {
    s->failed_steps++;
    expect_true(documented_failure(status), "%s failed with %s (point %s, n %u)", what, al_status_name(status),
                s->point, s->n);
    if (pure) {
      sim_miniport_get_stats(&after);
      char label[160];
      snprintf(label, sizeof label, "%s failed (point %s, n %u) yet changed", what, s->point, s->n);
      expect_same_live(&before, &after, label);
    }
  }
  expect_consistent(s->adapter);
  return NT_SUCCESS(status);
}

typedef struct fi_handles {
  al_handle d1, d2, a, r[2], resource, pressure[6];
} fi_handles;

static NTSTATUS step_device1(fi_state *s, void *arg) { return al_device_create(s->adapter, &((fi_handles *)arg)->d1); }
static NTSTATUS step_device2(fi_state *s, void *arg) { return al_device_create(s->adapter, &((fi_handles *)arg)->d2); }
static NTSTATUS step_a(fi_state *s, void *arg) {
  fi_handles *h = arg;
  return make_buffer(s->adapter, h->d1, 64 * KiB, SIM_PLACEMENT_ANY, &h->a);
}
static NTSTATUS step_shared(fi_state *s, void *arg) {
  fi_handles *h = arg;
  return make_shared(s->adapter, h->d1, 32 * KiB, 2, h->r, &h->resource);
}
static NTSTATUS step_open(fi_state *s, void *arg) {
  fi_handles *h = arg;
  return al_resource_open(s->adapter, h->d2, h->resource);
}
static NTSTATUS step_fill_copy(fi_state *s, void *arg) {
  fi_handles *h = arg;
  al_handle list[3] = {h->a, h->r[0], h->r[1]};
  cmds c = {.size = 0};
  c_fill(&c, 0, 0, 64 * KiB, 0x5EED5EEDu);
  c_copy(&c, 0, 0, 1, 0, 32 * KiB);
  c_fill(&c, 2, 0, 32 * KiB, 0x0F0F0F0Fu);
  c_check(&c, 1, 0, 32 * KiB, 0x5EED5EEDu);
  return run(s->adapter, h->d1, list, 3, &c, true, NULL);
}
static int pressure_index;
static NTSTATUS step_pressure(fi_state *s, void *arg) {
  fi_handles *h = arg;
  int i = pressure_index;
  return make_buffer(s->adapter, h->d1, 64 * KiB, i < 4 ? SIM_PLACEMENT_MEMORY_ONLY : SIM_PLACEMENT_APERTURE_ONLY,
                     &h->pressure[i]);
}
static NTSTATUS step_check_d2(fi_state *s, void *arg) {
  fi_handles *h = arg;
  cmds c = {.size = 0};
  c_check(&c, 0, 0, 32 * KiB, 0x5EED5EEDu);
  c_check(&c, 1, 0, 32 * KiB, 0x0F0F0F0Fu);
  return run(s->adapter, h->d2, h->r, 2, &c, true, NULL);
}
static NTSTATUS step_check_a(fi_state *s, void *arg) {
  fi_handles *h = arg;
  cmds c = {.size = 0};
  c_check(&c, 0, 0, 64 * KiB, 0x5EED5EEDu);
  return run(s->adapter, h->d1, &h->a, 1, &c, true, NULL);
}

/* One run of the scenario on a fresh adapter with @point armed at @n. Returns whether a failure
 * was injected. Contents are checked with aborting checks: no failure path may corrupt them. */
static bool fi_run(enum fault_point point, uint32_t n, uint32_t repeat) {
  fault_injector inj;
  fault_injector_init(&inj);
  SIM_HARDWARE_CONFIG hardware = hw(256 * KiB, 128 * KiB, SIM_HW_ABORT_ON_GPU_FAULT);
  hardware.Faults = &inj;
  al_adapter *adapter = adapter_with(&hardware);
  if (!adapter) return false;
  fi_state s = {.adapter = adapter, .point = fault_injector_point_name(point), .n = n};
  fi_handles h;
  memset(&h, 0, sizeof h);
  uint64_t before = fault_injector_failures(&inj, point);
  fault_injector_arm(&inj, point, n, repeat);
  bool d1 = fi_step(&s, true, step_device1, &h, "device 1");
  bool a = d1 && fi_step(&s, true, step_a, &h, "allocation a");
  bool shared = d1 && fi_step(&s, true, step_shared, &h, "shared resource");
  bool d2 = fi_step(&s, true, step_device2, &h, "device 2");
  bool opened = d2 && shared && fi_step(&s, true, step_open, &h, "open on device 2");
  bool filled = a && shared && fi_step(&s, false, step_fill_copy, &h, "fill + copy + check");
  for (pressure_index = 0; d1 && pressure_index < 6; pressure_index++)
    fi_step(&s, false, step_pressure, &h, "pressure");
  if (opened && filled) fi_step(&s, false, step_check_d2, &h, "check on device 2 (page-in)");
  if (filled) fi_step(&s, false, step_check_a, &h, "check a (page-in)");
  bool injected = fault_injector_failures(&inj, point) != before;
  fault_injector_disarm_all(&inj);
  /* Teardown with the injector quiet: the verifier checks that the miniport holds nothing. */
  al_adapter_destroy(adapter);
  if (injected) expect_u64_gt(s.failed_steps + 1, 0, "bookkeeping");
  return injected;
}

TEST(fault_injection_every_point_every_n) {
  const enum fault_point points[] = {FAULT_DRIVER_OBJECT, FAULT_PRIVATE_DATA_BUFFER, FAULT_SEGMENT_SPACE,
                                     FAULT_PAGE_TABLE_PAGE, FAULT_DEVICE_REMOVED};
  const uint32_t repeats[] = {0, FAULT_REPEAT_FOREVER};
  for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
    for (size_t r = 0; r < 2; r++) {
      uint32_t n = 1;
      while (n < 5000 && fi_run(points[p], n, repeats[r])) {
        n++;
        char label[96];
        snprintf(label, sizeof label, "after %s n %u", fault_injector_point_name(points[p]), n - 1);
        expect_nothing_left(label);
      }
      printf("fault point %-20s repeat %-10u: %u injected runs\n", fault_injector_point_name(points[p]),
             repeats[r], n - 1);
      expect_u64_lt(n, 5000, "%s: the loop ends", fault_injector_point_name(points[p]));
      if (points[p] != FAULT_PRIVATE_DATA_BUFFER)
        expect_u64_gt(n, 1, "%s is reached by the scenario", fault_injector_point_name(points[p]));
    }
  }
  expect_nothing_left("fault injection");
}

TEST(fault_injection_in_add_device) {
  fault_injector inj;
  fault_injector_init(&inj);
  SIM_HARDWARE_CONFIG hardware = hw(256 * KiB, 128 * KiB, SIM_HW_ABORT_ON_GPU_FAULT);
  hardware.Faults = &inj;
  const enum fault_point points[] = {FAULT_SEGMENT_SPACE, FAULT_PAGE_TABLE_PAGE, FAULT_DRIVER_OBJECT};
  for (size_t p = 0; p < 3; p++) {
    fault_injector_arm(&inj, points[p], 1, FAULT_REPEAT_FOREVER);
    al_adapter_config config = {.driver_entry = SimMiniportDriverEntry, .hardware_config = &hardware,
                                .hardware_config_size = sizeof hardware, .flags = AL_ADAPTER_VERIFIER};
    al_adapter *adapter = NULL;
    NTSTATUS status = al_adapter_create(&config, &adapter);
    fault_injector_disarm_all(&inj);
    if (NT_SUCCESS(status)) {
      al_adapter_destroy(adapter);
    } else {
      expect_status(status, STATUS_NO_MEMORY, "adapter bring-up under %s", fault_injector_point_name(points[p]));
    }
    expect_nothing_left("add device");
  }
  expect_u64_gt(fault_injector_failures(&inj, FAULT_SEGMENT_SPACE), 0, "the memory segment's backing is asked");
}

RUN_TESTS(T(fill_then_check_passes), T(device_info_through_the_port), T(copy_between_allocations), T(check_failure_is_logged),
          T(check_failure_aborts_by_default), T(textures_and_64k_pages),
          T(eviction_round_trip_through_the_aperture), T(eviction_round_trip_through_system_memory),
          T(shared_resource_on_two_devices), T(invalid_streams_rejected_at_submit),
          T(deterministic_engine_same_inputs_same_results), T(fault_injection_every_point_every_n),
          T(fault_injection_in_add_device))
