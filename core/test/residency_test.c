/*
 * residency_test.c — VidMm paging in the port: eviction under pressure (to the aperture, then to
 * system memory), page-in for submitted work, and what is never evicted (busy, pinned, being
 * created). Runs against the example miniport, whose TRANSFER records where an allocation lives.
 */
#include "al_test.h"
#include "alloclab/alloclab.h"
#include "alloclab/hw/example_miniport.h"
#include "example_adapter.h"

static NTSTATUS make(al_adapter *adapter, al_handle device, UINT flags, al_handle *out) {
  EXAMPLE_ALLOCATION_DATA data = example_allocation_data(16384, flags);
  al_allocation_desc desc = {&data, sizeof data};
  al_create_allocation_args args = {
      .device = device, .allocation_count = 1, .allocations = &desc, .out_allocations = out};
  return al_allocation_create(adapter, &args);
}

static uint32_t segment_of(al_adapter *adapter, al_handle allocation) {
  al_allocation_info info = {0};
  if (al_allocation_query(adapter, allocation, &info) != STATUS_SUCCESS) return UINT32_MAX;
  return info.segment_id;
}

static void expect_consistent(al_adapter *adapter) {
  char msg[512];
  expect_true(al_adapter_check(adapter, msg, sizeof msg), "al_adapter_check: %s", msg);
}

TEST(test_eviction_to_aperture_then_system_memory) {
  al_adapter *adapter = small_example_adapter();
  assert_ptr_ne(adapter, NULL, "adapter");
  al_handle device, any[4], memory_only[3];
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  for (int i = 0; i < 4; i++)
    assert_status(make(adapter, device, 0, &any[i]), STATUS_SUCCESS, "fill the memory segment (%d)", i);
  for (int i = 0; i < 4; i++) expect_u64_eq(segment_of(adapter, any[i]), 1, "preferred segment first");
  al_adapter_stats stats;
  al_adapter_get_stats(adapter, &stats);
  expect_u64_eq(stats.evictions, 0, "no pressure yet");
  /* Three MEMORY_ONLY allocations push three idle ones out: two fit the aperture, one goes to
   * system memory. */
  for (int i = 0; i < 3; i++)
    assert_status(make(adapter, device, EXAMPLE_ALLOCATION_MEMORY_ONLY, &memory_only[i]), STATUS_SUCCESS,
                  "memory-only allocation %d evicts another", i);
  al_adapter_get_stats(adapter, &stats);
  expect_u64_eq(stats.evictions, 3, "one eviction per memory-only allocation");
  int in_aperture = 0, in_system = 0;
  for (int i = 0; i < 4; i++) {
    uint32_t segment = segment_of(adapter, any[i]);
    in_aperture += segment == 2;
    in_system += segment == 0;
  }
  expect_u64_eq(in_aperture, 2, "evicted to the aperture while it has room");
  expect_u64_eq(in_system, 1, "then to system memory");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
}

TEST(test_page_in_for_submitted_work) {
  al_adapter *adapter = small_example_adapter();
  assert_ptr_ne(adapter, NULL, "adapter");
  al_handle device, any[4], memory_only[3];
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  for (int i = 0; i < 4; i++) assert_status(make(adapter, device, 0, &any[i]), STATUS_SUCCESS, "fill");
  for (int i = 0; i < 3; i++)
    assert_status(make(adapter, device, EXAMPLE_ALLOCATION_MEMORY_ONLY, &memory_only[i]), STATUS_SUCCESS,
                  "evict");
  /* Work on all four: the one in system memory must come back, pushing out an idle
   * memory-only allocation that the work does not use. */
  uint64_t fence = 0;
  al_submit_args submit = {.device = device, .allocations = any, .allocation_count = 4, .out_fence = &fence};
  assert_status(al_submit(adapter, &submit), STATUS_SUCCESS, "submit pages in");
  al_adapter_stats stats;
  al_adapter_get_stats(adapter, &stats);
  expect_u64_ge(stats.page_ins, 1, "paged in");
  for (int i = 0; i < 4; i++) expect_u64_ne(segment_of(adapter, any[i]), 0, "any[%d] reachable by the GPU", i);
  /* Busy allocations are never victims: with all four busy, a new memory-only allocation can
   * only push out idle memory-only ones. */
  al_handle extra;
  NTSTATUS status = make(adapter, device, EXAMPLE_ALLOCATION_MEMORY_ONLY, &extra);
  expect_true(status == STATUS_SUCCESS || status == STATUS_NO_VIDEO_MEMORY, "create under pressure: %s",
              al_status_name(status));
  for (int i = 0; i < 4; i++) {
    al_allocation_info info;
    assert_status(al_allocation_query(adapter, any[i], &info), STATUS_SUCCESS, "query");
    expect_u64_eq(info.last_fence, fence, "busy");
    expect_u64_ne(info.segment_id, 0, "a busy allocation stays where the work expects it");
  }
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
}

TEST(test_no_victim_means_no_video_memory) {
  al_adapter *adapter = small_example_adapter();
  assert_ptr_ne(adapter, NULL, "adapter");
  al_handle device, busy[4];
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  for (int i = 0; i < 4; i++)
    assert_status(make(adapter, device, EXAMPLE_ALLOCATION_MEMORY_ONLY, &busy[i]), STATUS_SUCCESS, "fill");
  uint64_t fence = 0;
  al_submit_args submit = {.device = device, .allocations = busy, .allocation_count = 4, .out_fence = &fence};
  assert_status(al_submit(adapter, &submit), STATUS_SUCCESS, "all busy");
  al_adapter_stats before, after;
  al_adapter_get_stats(adapter, &before);
  al_handle extra;
  expect_status(make(adapter, device, EXAMPLE_ALLOCATION_MEMORY_ONLY, &extra), STATUS_NO_VIDEO_MEMORY,
                "every candidate victim is busy");
  al_adapter_get_stats(adapter, &after);
  expect_u64_eq(after.allocations, before.allocations, "nothing created");
  expect_u64_eq(after.evictions, before.evictions, "nothing evicted");
  expect_u64_eq(after.segments[0].used_bytes, before.segments[0].used_bytes, "nothing moved");
  /* Once the work is done they are idle again: now one can go. */
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  expect_status(make(adapter, device, EXAMPLE_ALLOCATION_MEMORY_ONLY, &extra), STATUS_SUCCESS, "idle victims");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
}

/* One create of 8 allocations into a full memory segment of 64 busy allocations and a full
 * aperture of 8 idle ones: each allocation evicts one idle allocation from the aperture, after
 * a scan of the memory segment finds no victim. Nothing between two of those scans can make a
 * victim (the create's own blocks are unpublished, no fence completes), so the memory segment
 * is scanned in full once, not once per allocation (VidMm's clock stays O(n) per create). The
 * outcome is the same either way: every allocation placed, 8 evictions to system memory. */
TEST(test_fruitless_victim_scan_not_repeated_within_a_create) {
  static const EXAMPLE_HARDWARE_CONFIG hardware = {EXAMPLE_HARDWARE_MAGIC, 4096, 64 * 16384, 8 * 16384};
  al_adapter_config config = {.driver_entry = ExampleMiniportDriverEntry,
                              .hardware_config = &hardware,
                              .hardware_config_size = sizeof hardware,
                              .flags = AL_ADAPTER_VERIFIER};
  al_adapter *adapter = NULL;
  assert_status(al_adapter_create(&config, &adapter), STATUS_SUCCESS, "adapter");
  al_handle device, busy[64], idle[8], created[8];
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  for (int i = 0; i < 64; i++)
    assert_status(make(adapter, device, EXAMPLE_ALLOCATION_MEMORY_ONLY, &busy[i]), STATUS_SUCCESS, "fill memory");
  uint64_t fence = 0;
  al_submit_args submit = {.device = device, .allocations = busy, .allocation_count = 64, .out_fence = &fence};
  assert_status(al_submit(adapter, &submit), STATUS_SUCCESS, "memory all busy");
  for (int i = 0; i < 8; i++) {
    assert_status(make(adapter, device, 0, &idle[i]), STATUS_SUCCESS, "fill the aperture");
    expect_u64_eq(segment_of(adapter, idle[i]), 2, "memory is full: the aperture");
  }
  al_adapter_stats before, after;
  al_adapter_get_stats(adapter, &before);
  EXAMPLE_ALLOCATION_DATA data = example_allocation_data(16384, 0);
  al_allocation_desc descs[8];
  for (int i = 0; i < 8; i++) descs[i] = (al_allocation_desc){&data, sizeof data};
  al_create_allocation_args args = {
      .device = device, .allocation_count = 8, .allocations = descs, .out_allocations = created};
  assert_status(al_allocation_create(adapter, &args), STATUS_SUCCESS, "8 at once under pressure");
  al_adapter_get_stats(adapter, &after);
  expect_u64_eq(after.evictions - before.evictions, 8, "one aperture victim per allocation");
  for (int i = 0; i < 8; i++) {
    expect_u64_eq(segment_of(adapter, created[i]), 2, "created[%d] took an evicted one's place", i);
    expect_u64_eq(segment_of(adapter, idle[i]), 0, "idle[%d] went to system memory", i);
  }
  /* Rescanning would look at the 64 busy blocks for each of the 8: >= 512 steps. Once: 65 for
   * the memory segment, 1 for each later skip, and the aperture's clock (at most 9 per
   * allocation). */
  uint64_t steps = after.victim_scan_steps - before.victim_scan_steps;
  expect_u64_le(steps, 65 + 7 + 8 * 9, "victim scan steps (%llu)", (unsigned long long)steps);
  expect_u64_ge(steps, 64 + 8, "the memory segment was looked at in full once, the aperture each time");
  assert_status(al_fence_wait(adapter, fence, UINT64_MAX), STATUS_SUCCESS, "wait");
  /* A completed fence makes the memory segment's allocations victims again: the next create
   * must scan it (and find one) instead of trusting what the last create saw. */
  al_handle again;
  assert_status(make(adapter, device, EXAMPLE_ALLOCATION_MEMORY_ONLY, &again), STATUS_SUCCESS,
                "a memory-only allocation after the work finished");
  expect_u64_eq(segment_of(adapter, again), 1, "placed in memory, an idle victim moved out");
  expect_consistent(adapter);
  al_adapter_destroy(adapter);
}

RUN_TESTS(T(test_eviction_to_aperture_then_system_memory), T(test_page_in_for_submitted_work),
          T(test_no_victim_means_no_video_memory), T(test_fruitless_victim_scan_not_repeated_within_a_create))
