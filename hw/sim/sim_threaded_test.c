/*
 * sim_threaded_test.c — the threaded engine through the port (verifier on, faults abort): two
 * devices on two threads create, fill, copy, check and destroy allocations under memory pressure
 * (so VidMm evicts and pages in while the engine thread runs), and share a resource. Short by
 * design: it is the TSan run of the miniport.
 */
#include <pthread.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/alloclab.h"
#include "alloclab/hw/sim_miniport.h"

#define KiB ((UINT64)1 << 10)

typedef struct worker {
  al_adapter *adapter;
  al_handle device;
  al_handle shared[2];
  UINT seed;
  int rounds;
  int failures;
} worker;

static NTSTATUS make(al_adapter *adapter, al_handle device, UINT64 size, UINT placement, al_handle *out) {
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(size, placement, 0);
  al_allocation_desc desc = {&data, sizeof data};
  al_create_allocation_args args = {.device = device, .allocation_count = 1, .allocations = &desc, .out_allocations = out};
  return al_allocation_create(adapter, &args);
}

static NTSTATUS work(worker *w, const al_handle *list, uint32_t n, const uint8_t *cmd, uint32_t bytes) {
  uint64_t fence = 0;
  al_submit_args args = {.device = w->device, .allocations = list, .allocation_count = n,
                         .command = cmd, .command_size = bytes, .out_fence = &fence};
  NTSTATUS status = al_submit(w->adapter, &args);
  if (NT_SUCCESS(status)) status = al_fence_wait(w->adapter, fence, UINT64_MAX);
  return status;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  for (int round = 0; round < w->rounds; round++) {
    al_handle a, b;
    UINT pattern = w->seed * 0x01000193u + (UINT)round;
    if (make(w->adapter, w->device, 64 * KiB, SIM_PLACEMENT_ANY, &a) != STATUS_SUCCESS) {
      w->failures++;
      continue;
    }
    if (make(w->adapter, w->device, 64 * KiB, round % 2 ? SIM_PLACEMENT_MEMORY_ONLY : SIM_PLACEMENT_APERTURE_ONLY,
             &b) != STATUS_SUCCESS) {
      w->failures++;
      al_destroy_allocation_args d = {.device = w->device, .allocations = &a, .allocation_count = 1};
      al_allocation_destroy(w->adapter, &d);
      continue;
    }
    al_handle list[4] = {a, b, w->shared[0], w->shared[1]};
    uint8_t cmd[512];
    uint32_t bytes = 0;
    bytes += (uint32_t)sim_cmd_fill(cmd + bytes, 0, 0, 64 * KiB, pattern);
    bytes += (uint32_t)sim_cmd_copy(cmd + bytes, 0, 0, 1, 0, 64 * KiB);
    bytes += (uint32_t)sim_cmd_check(cmd + bytes, 1, 0, 64 * KiB, pattern);
    bytes += (uint32_t)sim_cmd_check(cmd + bytes, 2, 0, 32 * KiB, 0x5AFE5AFEu); /* shared, read only */
    if (work(w, list, 4, cmd, bytes) != STATUS_SUCCESS) w->failures++;
    al_destroy_allocation_args d = {.device = w->device, .allocations = list, .allocation_count = 1};
    al_allocation_destroy(w->adapter, &d);
    d.allocations = &list[1];
    al_allocation_destroy(w->adapter, &d);
  }
  return NULL;
}

TEST(two_devices_two_threads_threaded_engine) {
  SIM_HARDWARE_CONFIG hardware = sim_hardware_config_default();
  hardware.EngineMode = SIM_ENGINE_THREADED;
  hardware.MemorySegmentSize = 256 * KiB; /* small: the workers' allocations evict each other */
  hardware.ApertureSegmentSize = 256 * KiB;
  al_adapter_config config = {.driver_entry = SimMiniportDriverEntry, .hardware_config = &hardware,
                              .hardware_config_size = sizeof hardware, .flags = AL_ADAPTER_VERIFIER};
  al_adapter *adapter = NULL;
  assert_status(al_adapter_create(&config, &adapter), STATUS_SUCCESS, "adapter");
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  worker workers[2];
  memset(workers, 0, sizeof workers);
  al_handle resource;
  for (int i = 0; i < 2; i++) {
    workers[i].adapter = adapter;
    workers[i].seed = (UINT)i + 1;
    workers[i].rounds = 40;
    assert_status(al_device_create(adapter, &workers[i].device), STATUS_SUCCESS, "device %d", i);
  }
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(32 * KiB, SIM_PLACEMENT_ANY, 0);
  al_allocation_desc descs[2] = {{&data, sizeof data}, {&data, sizeof data}};
  al_create_allocation_args args = {.device = workers[0].device, .flags = AL_CREATE_RESOURCE | AL_CREATE_SHARED,
                                    .allocation_count = 2, .allocations = descs,
                                    .out_allocations = workers[0].shared, .out_resource = &resource};
  assert_status(al_allocation_create(adapter, &args), STATUS_SUCCESS, "shared resource");
  memcpy(workers[1].shared, workers[0].shared, sizeof workers[1].shared);
  assert_status(al_resource_open(adapter, workers[1].device, resource), STATUS_SUCCESS, "open on device 2");
  uint8_t cmd[64];
  uint32_t bytes = (uint32_t)sim_cmd_fill(cmd, 0, 0, 32 * KiB, 0x5AFE5AFEu);
  assert_status(work(&workers[0], workers[0].shared, 2, cmd, bytes), STATUS_SUCCESS, "fill the shared one");

  pthread_t threads[2];
  for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, worker_main, &workers[i]);
  for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < 2; i++) expect_u64_eq(workers[i].failures, 0, "worker %d", i);

  sim_miniport_get_stats(&after);
  expect_u64_eq(after.check_failures, before.check_failures, "every check passed");
  expect_u64_eq(after.gpu_faults, before.gpu_faults, "no GPU fault");
  expect_u64_gt(after.transfers, before.transfers, "VidMm paged while the engine ran");
  char msg[512];
  expect_true(al_adapter_check(adapter, msg, sizeof msg), "al_adapter_check: %s", msg);
  /* The hardware walk while the engine thread completes work (no DDI runs meanwhile): a
   * completion the sim has not recorded yet is no disagreement. */
  uint64_t last = 0;
  for (int k = 0; k < 16; k++) {
    al_submit_args submit = {.device = workers[0].device, .allocations = workers[0].shared, .allocation_count = 2,
                             .command = cmd, .command_size = bytes, .out_fence = &last};
    expect_status(al_submit(adapter, &submit), STATUS_SUCCESS, "queue fill %d", k);
  }
  for (int k = 0; k < 200; k++)
    expect_true(sim_miniport_check_hardware(adapter, k % 2 ? SIM_CHECK_HARDWARE_LIVE : 0, msg, sizeof msg),
                "hardware walk %d while the engine runs: %s",
                k, msg);
  expect_status(al_fence_wait(adapter, last, UINT64_MAX), STATUS_SUCCESS, "drain");
  expect_true(sim_miniport_check_hardware(adapter, 0, msg, sizeof msg), "hardware walk, drained: %s", msg);
  al_adapter_destroy(adapter);
  sim_miniport_get_stats(&after);
  expect_u64_eq(after.adapters + after.host_bytes + after.committed_bytes, 0, "nothing left");
}

RUN_TESTS(T(two_devices_two_threads_threaded_engine))
