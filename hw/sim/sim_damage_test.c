/*
 * sim_damage_test.c — the sim's damage kinds (sim_testing_damage*, sim_miniport.h), through the
 * public API only.
 *
 * The test builds one adapter state in which every kind has a target (three devices, allocations
 * in the memory and aperture segments and in system memory, one placed but never opened, two
 * allocations opened on two devices, one of them read-only, a block with a closed binding, an
 * orphaned binding, completed work, queued work, a zombie), then for every kind and several picks:
 * the walk catches the damage with the kind's expect phrase and with no other kind's phrase (so
 * each kind reaches the branch meant for it, not another), the walk passes afterwards, and the
 * same damage again gives the same message (restored byte for byte, deterministic targets).
 *
 * The test is its own tiny port (sim_test_port.h, shared with sim_ddi_test.c): DxgkInitialize, a
 * handle table behind DxgkCbGetHandleData, a DxgkCbNotifyInterrupt. It does not link core/.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "al_test.h"
#include "alloclab/hw/gpu_testing.h"
#include "alloclab/hw/sim_miniport.h"
#include "sim_test_port.h"

#define KiB ((UINT64)1 << 10)
#define MiB ((UINT64)1 << 20)

/* ---- Helpers over the fake port ------------------------------------------------------------- */

/* The quiet hardware (faults logged, not fatal) with the deterministic engine: queued work waits
 * for AlDdiRunEngine, so the rich state keeps its queued submissions. */
static fake_port *start_deterministic(void) {
  SIM_HARDWARE_CONFIG config = fake_quiet_config();
  config.EngineMode = SIM_ENGINE_DETERMINISTIC;
  return fake_start(&config);
}

typedef struct allocation {
  HANDLE handle;
  D3DKMT_HANDLE kmt;
} allocation;

static allocation alloc_create(fake_port *f, UINT64 size, UINT placement) {
  SIM_ALLOCATION_DATA data = sim_allocation_buffer(size, placement, 0);
  allocation a = {NULL, 0};
  expect_status(fake_alloc_create(f, &data, &a.handle, &a.kmt), STATUS_SUCCESS, "create allocation");
  return a;
}

static void fill(fake_port *f, allocation a, UINT64 size, UINT segment, UINT64 offset) {
  expect_status(fake_paging(f, DXGK_OPERATION_FILL, a.handle, size, 0, 0, segment, offset), STATUS_SUCCESS, "fill");
}

static void evict_to_system(fake_port *f, allocation a, UINT64 size, UINT segment, UINT64 offset) {
  expect_status(fake_paging(f, DXGK_OPERATION_TRANSFER, a.handle, size, segment, offset, 0, 0), STATUS_SUCCESS,
                "evict to system memory");
}

/* Opens @n allocations on @device in ONE call (one binding block); the bindings go to @out. */
static void open_block(fake_port *f, HANDLE device, const allocation *a, UINT n, bool read_only, HANDLE *out) {
  DXGK_OPENALLOCATIONINFO info[4];
  memset(info, 0, sizeof info);
  for (UINT i = 0; i < n && i < 4; i++) info[i].hAllocation = a[i].kmt;
  DXGKARG_OPENALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = n;
  args.pOpenAllocation = info;
  args.Flags.ReadOnly = read_only;
  expect_status(f->ddi->DxgkDdiOpenAllocation(device, &args), STATUS_SUCCESS, "open");
  for (UINT i = 0; i < n && i < 4; i++) out[i] = info[i].hDeviceSpecificAllocation;
}

static bool hardware_ok(fake_port *f, char *msg, size_t cap) {
  msg[0] = '\0';
  return sim_miniport_check_hardware(f, 0, msg, cap);
}

/*
 * The state every kind finds a target in:
 *   d1 (0x11): A (16 KiB, memory at 0) and B (8 KiB, aperture at 64 KiB) in one block, mapped;
 *              S (16 KiB, evicted to system memory), open and unmapped; one Null submission queued.
 *   d2 (0x22): A and B in one block, A's binding closed (a closed binding of a held block).
 *   d3 (0x33): B read-only; O's binding orphaned (O destroyed while open, in system memory, so
 *              the orphan maps nothing and the walk's MMU comparison stays on).
 *   zombie (0x44): destroyed with a Null submission queued.
 *   P (8 KiB, memory at 1 MiB): placed, never opened. One submission completed (fence 1).
 */
static fake_port *rich_state(void) {
  fake_port *f = start_deterministic();
  if (!f) return NULL;
  HANDLE d1 = fake_device_create(f, 0x11), d2 = fake_device_create(f, 0x22), d3 = fake_device_create(f, 0x33);
  allocation ab[2] = {alloc_create(f, 16 * KiB, SIM_PLACEMENT_ANY), alloc_create(f, 8 * KiB, SIM_PLACEMENT_APERTURE_ONLY)};
  fill(f, ab[0], 16 * KiB, SIM_SEGMENT_ID_MEMORY, 0);
  fill(f, ab[1], 8 * KiB, SIM_SEGMENT_ID_APERTURE, 64 * KiB);
  HANDLE bindings[2];
  open_block(f, d1, ab, 2, false, bindings);
  open_block(f, d2, ab, 2, false, bindings);
  expect_status(fake_close_one(f, d2, bindings[0]), STATUS_SUCCESS, "close");
  open_block(f, d3, &ab[1], 1, true, bindings);

  allocation s = alloc_create(f, 16 * KiB, SIM_PLACEMENT_ANY);
  fill(f, s, 16 * KiB, SIM_SEGMENT_ID_MEMORY, 2 * MiB);
  open_block(f, d1, &s, 1, false, bindings);
  evict_to_system(f, s, 16 * KiB, SIM_SEGMENT_ID_MEMORY, 2 * MiB);

  allocation o = alloc_create(f, 4 * KiB, SIM_PLACEMENT_ANY);
  fill(f, o, 4 * KiB, SIM_SEGMENT_ID_MEMORY, 3 * MiB);
  open_block(f, d3, &o, 1, false, bindings);
  evict_to_system(f, o, 4 * KiB, SIM_SEGMENT_ID_MEMORY, 3 * MiB);
  /* What a buggy port does: the binding is orphaned. */
  expect_status(fake_destroy_one(f, o.handle), STATUS_SUCCESS, "destroy while open");

  allocation p = alloc_create(f, 8 * KiB, SIM_PLACEMENT_MEMORY_ONLY);
  fill(f, p, 8 * KiB, SIM_SEGMENT_ID_MEMORY, 1 * MiB);

  expect_status(fake_submit(f, d1, NULL, 0, NULL, 0), STATUS_SUCCESS, "a Null submission");
  expect_u64_eq(fake_run_engine(f), 1, "fence 1 completes");
  HANDLE zombie = fake_device_create(f, 0x44);
  expect_status(fake_submit(f, zombie, NULL, 0, NULL, 0), STATUS_SUCCESS, "the zombie's work");
  expect_status(f->ddi->DxgkDdiDestroyDevice(zombie), STATUS_SUCCESS, "a zombie (work queued)");
  /* Queued, not run: the deterministic engine waits for AlDdiRunEngine. */
  expect_status(fake_submit(f, d1, NULL, 0, NULL, 0), STATUS_SUCCESS, "queued work");
  return f;
}

/* ---- Tests -------------------------------------------------------------------------------------- */

TEST(kinds_are_named_and_described) {
  const unsigned count = sim_testing_damage_kind_count();
  expect_u64_ge(count, 30, "at least 30 kinds");
  expect_ptr_eq(sim_testing_damage_kind(count), NULL, "past the end");
  expect_ptr_eq(sim_testing_damage_kind(UINT32_MAX), NULL, "far past the end");
  for (unsigned k = 0; k < count; k++) {
    const al_damage_kind_info *info = sim_testing_damage_kind(k);
    assert_ptr_ne(info, NULL, "kind %u", k);
    expect_true(strncmp(info->name, "sim_", 4) == 0, "%s starts with sim_", info->name);
    bool snake = true;
    for (const char *c = info->name; *c; c++) snake &= islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_';
    expect_true(snake, "%s is lower_snake_case", info->name);
    expect_true(info->target[0] != '\0' && info->expect[0] != '\0', "%s has a target and an expect phrase",
                info->name);
    for (unsigned j = 0; j < k; j++)
      expect_true(strcmp(info->name, sim_testing_damage_kind(j)->name) != 0, "%s is unique", info->name);
  }
}

TEST(out_of_range_kind_and_unknown_adapter) {
  fake_port *f = start_deterministic();
  assert_ptr_ne(f, NULL, "adapter");
  char msg[256] = "untouched";
  expect_u64_eq(sim_testing_damage(f, sim_testing_damage_kind_count(), 0, msg, sizeof msg), AL_DAMAGE_UNKNOWN_KIND,
                "kind past the end");
  expect_u64_eq(sim_testing_damage(f, UINT32_MAX, 0, msg, sizeof msg), AL_DAMAGE_UNKNOWN_KIND, "kind far past");
  int not_a_device;
  for (unsigned k = 0; k < sim_testing_damage_kind_count(); k++) {
    expect_u64_eq(sim_testing_damage(&not_a_device, k, 0, msg, sizeof msg), AL_DAMAGE_NO_TARGET,
                  "kind %u: a DeviceHandle no adapter was started with", k);
    expect_u64_eq(sim_testing_damage(NULL, k, 0, msg, sizeof msg), AL_DAMAGE_NO_TARGET, "kind %u: NULL handle", k);
  }
  expect_true(strcmp(msg, "untouched") == 0, "no walk ran: %s", msg);
  fake_end(f, false);
}

/* On an empty adapter a kind either has nothing to damage or is caught: never missed. */
TEST(empty_adapter_no_target_or_detected) {
  fake_port *f = start_deterministic();
  assert_ptr_ne(f, NULL, "adapter");
  unsigned detected = 0, no_target = 0;
  for (unsigned k = 0; k < sim_testing_damage_kind_count(); k++) {
    const al_damage_kind_info *info = sim_testing_damage_kind(k);
    char msg[512] = "";
    const al_damage_result r = sim_testing_damage(f, k, 0, msg, sizeof msg);
    expect_true(r == AL_DAMAGE_DETECTED || r == AL_DAMAGE_NO_TARGET, "%s: result %d", info->name, (int)r);
    if (r == AL_DAMAGE_DETECTED) {
      detected++;
      expect_true(strstr(msg, info->expect) != NULL, "%s: \"%s\" lacks \"%s\"", info->name, msg, info->expect);
    } else {
      no_target++;
    }
    expect_true(hardware_ok(f, msg, sizeof msg), "%s: restored: %s", info->name, msg);
  }
  expect_u64_gt(detected, 0, "the adapter-wide kinds have their target");
  expect_u64_gt(no_target, 0, "the object kinds have none");
  fake_end(f, false);
}

/* Every kind, picks 0..5, on the rich state: caught by its own branch only, and undone. */
TEST(every_kind_detected_by_its_branch_and_undone) {
  fake_port *f = rich_state();
  assert_ptr_ne(f, NULL, "adapter");
  char msg[512], again[512];
  assert_true(hardware_ok(f, msg, sizeof msg), "the rich state is sound: %s", msg);
  sim_miniport_stats before, after;
  sim_miniport_get_stats(&before);
  const unsigned count = sim_testing_damage_kind_count();
  for (unsigned k = 0; k < count; k++) {
    const al_damage_kind_info *info = sim_testing_damage_kind(k);
    for (unsigned pick = 0; pick < 6; pick++) {
      msg[0] = '\0';
      const al_damage_result r = sim_testing_damage(f, k, pick, msg, sizeof msg);
      expect_u64_eq(r, AL_DAMAGE_DETECTED, "%s pick %u: detected (%s)", info->name, pick, msg);
      expect_true(strstr(msg, info->expect) != NULL, "%s pick %u: \"%s\" lacks \"%s\"", info->name, pick, msg,
                  info->expect);
      /* No other branch's phrase: the kind reached the check meant for it. */
      for (unsigned j = 0; j < count; j++) {
        const char *other = sim_testing_damage_kind(j)->expect;
        if (strcmp(other, info->expect) != 0)
          expect_true(strstr(msg, other) == NULL, "%s pick %u: \"%s\" also holds %s's \"%s\"", info->name, pick,
                      msg, sim_testing_damage_kind(j)->name, other);
      }
      char walk[512];
      expect_true(hardware_ok(f, walk, sizeof walk), "%s pick %u: the walk passes after: %s", info->name, pick, walk);
      again[0] = '\0';
      expect_u64_eq(sim_testing_damage(f, k, pick, again, sizeof again), AL_DAMAGE_DETECTED, "%s: again",
                    info->name);
      expect_true(strcmp(msg, again) == 0, "%s pick %u: the same damage again says \"%s\", first \"%s\"", info->name,
                  pick, again, msg);
    }
  }
  sim_miniport_get_stats(&after);
  expect_u64_eq(after.devices, before.devices, "devices");
  expect_u64_eq(after.zombie_devices, before.zombie_devices, "zombies");
  expect_u64_eq(after.allocations, before.allocations, "allocations");
  expect_u64_eq(after.bindings, before.bindings, "bindings");
  expect_u64_eq(after.host_bytes, before.host_bytes, "host bytes: nothing allocated or freed");
  expect_u64_eq(after.committed_bytes, before.committed_bytes, "committed bytes");
  expect_u64_eq(after.mapped_bytes, before.mapped_bytes, "mapped bytes");
  expect_u64_eq(after.queued_submissions, before.queued_submissions, "queued work");
  /* The restored state still works: the queued work runs, the zombie goes. */
  expect_u64_eq(fake_run_engine(f), 2, "the queued submissions run");
  expect_true(hardware_ok(f, msg, sizeof msg), "after running: %s", msg);
  sim_miniport_get_stats(&after);
  expect_u64_eq(after.zombie_devices, 0, "the zombie was freed by its completion");
  fake_end(f, false);
}

static unsigned kind_named(const char *name) {
  for (unsigned k = 0; k < sim_testing_damage_kind_count(); k++)
    if (strcmp(sim_testing_damage_kind(k)->name, name) == 0) return k;
  return UINT32_MAX;
}

/* The pick counts among the kind's targets modulo their number, in the adapter's order: the live
 * devices 0x11, 0x22, 0x33 (the zombie is not one of them). */
TEST(pick_wraps_over_the_targets) {
  fake_port *f = rich_state();
  assert_ptr_ne(f, NULL, "adapter");
  const unsigned kind = kind_named("sim_device_magic");
  assert_true(kind != UINT32_MAX, "sim_device_magic exists");
  const char *named[] = {"device 0x00000011 ", "device 0x00000022 ", "device 0x00000033 "};
  for (unsigned pick = 0; pick < 7; pick++) {
    char msg[512] = "";
    expect_u64_eq(sim_testing_damage(f, kind, pick, msg, sizeof msg), AL_DAMAGE_DETECTED, "pick %u", pick);
    expect_true(strstr(msg, named[pick % 3]) != NULL, "pick %u names %s: %s", pick, named[pick % 3], msg);
  }
  const unsigned zombie_kind = kind_named("sim_zombie_pending");
  assert_true(zombie_kind != UINT32_MAX, "sim_zombie_pending exists");
  for (unsigned pick = 0; pick < 3; pick++) {
    char msg[512] = "";
    expect_u64_eq(sim_testing_damage(f, zombie_kind, pick, msg, sizeof msg), AL_DAMAGE_DETECTED, "zombie pick %u",
                  pick);
    expect_true(strstr(msg, "zombie device 0x00000044 ") != NULL, "the one zombie, whatever the pick: %s", msg);
  }
  fake_end(f, false);
}

/* The hw/gpu kind behind a sim_gpu_* kind (its name is "sim_gpu_" + the hw/gpu name); NULL
 * for the other kinds. */
static const al_damage_kind_info *gpu_kind_of(const char *sim_name) {
  if (strncmp(sim_name, "sim_gpu_", 8) != 0) return NULL;
  for (unsigned k = 0; k < GPU_SEGMENT_DAMAGE_KINDS; k++)
    if (strcmp(sim_name + 8, gpu_testing_segment_damage_kind(k)->name) == 0) return gpu_testing_segment_damage_kind(k);
  for (unsigned k = 0; k < GPU_AS_DAMAGE_KINDS; k++)
    if (strcmp(sim_name + 8, gpu_testing_as_damage_kind(k)->name) == 0) return gpu_testing_as_damage_kind(k);
  return NULL;
}

/* Each sim_gpu_* kind is a hw/gpu kind, and the sim's message carries that kind's line (the
 * hw/gpu walk's findings, after the name of the walk that failed); nothing goes to stderr. */
TEST(gpu_kinds_reach_their_hw_gpu_branch) {
  fake_port *f = rich_state();
  assert_ptr_ne(f, NULL, "adapter");
  unsigned gpu_kinds = 0;
  for (unsigned k = 0; k < sim_testing_damage_kind_count(); k++) {
    const al_damage_kind_info *info = sim_testing_damage_kind(k);
    if (strncmp(info->name, "sim_gpu_", 8) != 0) continue;
    const al_damage_kind_info *gpu = gpu_kind_of(info->name);
    assert_ptr_ne(gpu, NULL, "%s names a hw/gpu kind", info->name);
    gpu_kinds++;
    for (unsigned pick = 0; pick < 4; pick++) {
      char msg[512] = "", err[8192] = "";
      fflush(stderr);
      FILE *tmp = tmpfile();
      assert_ptr_ne(tmp, NULL, "tmpfile");
      const int saved = dup(STDERR_FILENO);
      dup2(fileno(tmp), STDERR_FILENO);
      const al_damage_result r = sim_testing_damage(f, k, pick, msg, sizeof msg);
      fflush(stderr);
      dup2(saved, STDERR_FILENO);
      close(saved);
      rewind(tmp);
      err[fread(err, 1, sizeof err - 1, tmp)] = '\0';
      fclose(tmp);
      expect_u64_eq(r, AL_DAMAGE_DETECTED, "%s pick %u: %s", info->name, pick, msg);
      expect_true(strstr(msg, gpu->expect) != NULL, "%s pick %u: message \"%s\" lacks \"%s\"", info->name, pick, msg,
                  gpu->expect);
      expect_true(err[0] == '\0', "%s pick %u: the walk printed \"%s\"", info->name, pick, err);
    }
  }
  expect_u64_eq(gpu_kinds, GPU_SEGMENT_DAMAGE_KINDS - 1u + GPU_AS_DAMAGE_KINDS,
                "every hw/gpu kind but segment_owner_cleared (check_page_owner's) is a sim kind");
  char msg[512];
  expect_true(hardware_ok(f, msg, sizeof msg), "restored: %s", msg);
  fake_end(f, false);
}

RUN_TESTS(T(kinds_are_named_and_described), T(out_of_range_kind_and_unknown_adapter),
          T(empty_adapter_no_target_or_detected), T(every_kind_detected_by_its_branch_and_undone),
          T(pick_wraps_over_the_targets), T(gpu_kinds_reach_their_hw_gpu_branch))
