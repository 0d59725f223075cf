/*
 * damage_test.c — the port's damage kinds (alloclab/damage.h): in a state where every kind has a
 * target, each one is caught by the check it is meant for (its expect phrase), and the state is
 * sound again afterwards. Runs against the example miniport (deterministic engine, so a submitted
 * fence stays pending and a destroy defers).
 */
#include "alloclab/damage.h"

#include <ctype.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/alloclab.h"
#include "alloclab/hw/example_miniport.h"
#include "example_adapter.h"

/* Picks tried per kind: more than any kind's target count here, so every target is hit and the
 * pick wraps. */
#define PICKS 24u

/* @count allocations of 16 KiB: device-owned (@create_flags 0) or a new resource. */
static NTSTATUS make(al_adapter *adapter, al_handle device, uint32_t create_flags, UINT example_flags,
                     uint32_t count, al_handle *out, al_handle *out_resource) {
  EXAMPLE_ALLOCATION_DATA data = example_allocation_data(16384, example_flags);
  al_allocation_desc desc[4];
  for (uint32_t i = 0; i < count; i++) desc[i] = (al_allocation_desc){&data, sizeof data};
  al_create_allocation_args args = {.device = device,
                                    .flags = create_flags,
                                    .allocation_count = count,
                                    .allocations = desc,
                                    .out_allocations = out,
                                    .out_resource = out_resource};
  return al_allocation_create(adapter, &args);
}

static void expect_consistent(al_adapter *adapter, const char *what) {
  char msg[512];
  expect_true(al_adapter_check(adapter, msg, sizeof msg), "%s: al_adapter_check: %s", what, msg);
}

static int kind_named(const char *name) {
  for (unsigned kind = 0; kind < al_testing_damage_kind_count(); kind++)
    if (strcmp(al_testing_damage_kind(kind)->name, name) == 0) return (int)kind;
  return -1;
}

/*
 * Two devices A and B; a shared resource of A (2 allocations) opened on B; a resource of A
 * (1 allocation) that GPU work uses and is destroyed while the work is pending (a deferred
 * teardown, while @with_deferred); A's pool, pushed by memory-only allocations into the aperture
 * and system memory; a destroyed device, resource and allocations (free handle slots).
 */
typedef struct rich_state {
  al_adapter *adapter;
  al_handle a, b;
  uint64_t fence;
} rich_state;

static bool build_rich_state(rich_state *s) {
  s->adapter = small_example_adapter();
  assert_ptr_ne(s->adapter, NULL, "adapter");
  al_adapter *adapter = s->adapter;
  al_handle gone_device, gone[2], gone_resource, shared[2], shared_resource, busy, busy_resource, pool[4];
  assert_status(al_device_create(adapter, &s->a), STATUS_SUCCESS, "device A");
  assert_status(al_device_create(adapter, &s->b), STATUS_SUCCESS, "device B");
  assert_status(al_device_create(adapter, &gone_device), STATUS_SUCCESS, "device to destroy");
  assert_status(al_device_destroy(adapter, gone_device), STATUS_SUCCESS, "destroy it: a free device slot");
  assert_status(make(adapter, s->a, 0, 0, 2, gone, NULL), STATUS_SUCCESS, "allocations to destroy");
  al_destroy_allocation_args destroy = {.device = s->a, .allocations = gone, .allocation_count = 2};
  assert_status(al_allocation_destroy(adapter, &destroy), STATUS_SUCCESS, "two free allocation slots");
  assert_status(make(adapter, s->a, AL_CREATE_RESOURCE, 0, 1, gone, &gone_resource), STATUS_SUCCESS,
                "resource to destroy");
  destroy = (al_destroy_allocation_args){.device = s->a, .resource = gone_resource};
  assert_status(al_allocation_destroy(adapter, &destroy), STATUS_SUCCESS, "a free resource slot");

  assert_status(make(adapter, s->a, AL_CREATE_RESOURCE | AL_CREATE_SHARED, 0, 2, shared, &shared_resource),
                STATUS_SUCCESS, "shared resource");
  assert_status(al_resource_open(adapter, s->b, shared_resource), STATUS_SUCCESS, "opened on B");
  assert_status(make(adapter, s->a, AL_CREATE_RESOURCE, 0, 1, &busy, &busy_resource), STATUS_SUCCESS,
                "resource for GPU work");
  assert_status(make(adapter, s->a, 0, 0, 1, &pool[0], NULL), STATUS_SUCCESS, "pool allocation");
  for (int i = 1; i < 4; i++)
    assert_status(make(adapter, s->a, 0, EXAMPLE_ALLOCATION_MEMORY_ONLY, 1, &pool[i], NULL), STATUS_SUCCESS,
                  "memory-only allocation %d evicts another", i);
  al_adapter_stats stats;
  al_adapter_get_stats(adapter, &stats);
  assert_u64_ne(stats.evictions, 0, "something was evicted");

  al_submit_args submit = {
      .device = s->a, .allocations = &busy, .allocation_count = 1, .out_fence = &s->fence};
  assert_status(al_submit(adapter, &submit), STATUS_SUCCESS, "GPU work on the busy resource");
  destroy = (al_destroy_allocation_args){.device = s->a, .resource = busy_resource};
  assert_status(al_allocation_destroy(adapter, &destroy), STATUS_SUCCESS, "destroy it while busy: deferred");
  al_adapter_get_stats(adapter, &stats);
  assert_u64_ne(stats.deferred_destroys, 0, "a teardown waits for the fence");

  /* Some allocation lives in system memory (the eviction chain ran out of aperture). */
  bool in_system = false;
  al_handle all[] = {shared[0], shared[1], pool[0], pool[1], pool[2], pool[3]};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    al_allocation_info info;
    assert_status(al_allocation_query(adapter, all[i], &info), STATUS_SUCCESS, "query %zu", i);
    in_system |= info.segment_id == 0;
  }
  assert_true(in_system, "an allocation was evicted to system memory");
  expect_consistent(adapter, "the rich state");
  return true;
}

/* Every pick of @kind: DETECTED with its phrase, or NO_TARGET when @may_lack says so; the state
 * is sound afterwards. Returns how many picks were detected. */
static unsigned damage_every_pick(al_adapter *adapter, unsigned kind, bool may_lack, const char *state) {
  const al_damage_kind_info *info = al_testing_damage_kind(kind);
  unsigned detected = 0;
  for (unsigned pick = 0; pick < PICKS; pick++) {
    char msg[512] = "";
    al_damage_result result = al_testing_damage(adapter, kind, pick, msg, sizeof msg);
    if (result == AL_DAMAGE_NO_TARGET && may_lack) {
      expect_u64_eq(pick, 0, "%s: %s: NO_TARGET does not depend on the pick", state, info->name);
      break;
    }
    expect_u64_eq(result, AL_DAMAGE_DETECTED, "%s: %s pick %u: detected", state, info->name, pick);
    expect_ptr_ne(strstr(msg, info->expect), NULL, "%s: %s pick %u: message \"%s\" has \"%s\"", state,
                  info->name, pick, msg, info->expect);
    detected += result == AL_DAMAGE_DETECTED;
    char after[512];
    expect_true(al_adapter_check(adapter, after, sizeof after), "%s: %s pick %u: restored: %s", state,
                info->name, pick, after);
  }
  return detected;
}

/* The small segments here hold only free ranges of the smallest size class (under 32 pages), so
 * no class below the highest one in use is empty: that kind is tested on a large segment. */
static bool needs_large_free_range(const char *name) {
  return strcmp(name, "segment_heap_first_level_bit_without_lists") == 0;
}

TEST(test_every_kind_detected_by_its_check) {
  rich_state s;
  if (!build_rich_state(&s)) return;
  unsigned count = al_testing_damage_kind_count();
  /* With a teardown deferred, the binding and verifier totals are not compared. */
  for (unsigned kind = 0; kind < count; kind++) {
    const char *name = al_testing_damage_kind(kind)->name;
    bool needs_quiet = strcmp(name, "adapter_bindings_count_off_by_one") == 0 ||
                       strcmp(name, "verifier_device_count_off_by_one") == 0;
    /* Both segments are full (no free range at all) while the teardown holds its block. */
    bool needs_free_range = strcmp(name, "segment_heap_list_bit_without_head") == 0;
    bool may_lack = needs_quiet || needs_free_range || needs_large_free_range(name);
    unsigned detected = damage_every_pick(s.adapter, kind, may_lack, "deferred");
    if (!may_lack) expect_u64_ne(detected, 0, "deferred: %s has a target", name);
    if (needs_free_range) expect_u64_eq(detected, 0, "deferred: %s: the segments are full", name);
  }
  assert_status(al_fence_wait(s.adapter, s.fence, UINT64_MAX), STATUS_SUCCESS, "the work completes");
  al_adapter_stats stats;
  al_adapter_get_stats(s.adapter, &stats);
  assert_u64_eq(stats.deferred_destroys, 0, "the teardown ran");
  for (unsigned kind = 0; kind < count; kind++) {
    const char *name = al_testing_damage_kind(kind)->name;
    bool needs_deferred = strcmp(name, "deferred_teardown_blocks_uncounted") == 0;
    unsigned detected =
        damage_every_pick(s.adapter, kind, needs_deferred || needs_large_free_range(name), "idle");
    if (needs_large_free_range(name)) {
      continue;
    } else if (needs_deferred) {
      char msg[64];
      expect_u64_eq(al_testing_damage(s.adapter, kind, 0, msg, sizeof msg), AL_DAMAGE_NO_TARGET,
                    "no teardown left to damage");
    } else {
      expect_u64_ne(detected, 0, "idle: %s has a target", name);
    }
  }
  expect_consistent(s.adapter, "after every kind");
  al_adapter_destroy(s.adapter);
}

/* The example miniport's default segments (64 MiB) with one allocation: each holds one large free
 * range, so every segment-heap kind has a target. */
TEST(test_segment_heap_kinds_on_large_segments) {
  al_adapter_config config = {.driver_entry = ExampleMiniportDriverEntry, .flags = AL_ADAPTER_VERIFIER};
  al_adapter *adapter = NULL;
  assert_status(al_adapter_create(&config, &adapter), STATUS_SUCCESS, "adapter");
  al_handle device, allocation;
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  assert_status(make(adapter, device, 0, 0, 1, &allocation, NULL), STATUS_SUCCESS, "allocation");
  unsigned heap_kinds = 0;
  for (unsigned kind = 0; kind < al_testing_damage_kind_count(); kind++) {
    const char *name = al_testing_damage_kind(kind)->name;
    bool heap_kind = strncmp(name, "segment_heap_", 13) == 0;
    heap_kinds += heap_kind;
    unsigned detected = damage_every_pick(adapter, kind, !heap_kind, "large");
    if (heap_kind) expect_u64_ne(detected, 0, "large: %s has a target", name);
  }
  expect_u64_ne(heap_kinds, 0, "there are segment-heap kinds");
  expect_consistent(adapter, "after every kind");
  al_adapter_destroy(adapter);
}

TEST(test_pick_wraps_over_the_targets) {
  rich_state s;
  if (!build_rich_state(&s)) return;
  int kind = kind_named("handle_table_live_count_off_by_one");
  assert_true(kind >= 0, "kind exists");
  /* Three handle tables with different live counts: picks 0, 1, 2 name different tables,
   * pick 3 is pick 0 again. */
  char first[256], second[256], wrapped[256];
  assert_u64_eq(al_testing_damage(s.adapter, (unsigned)kind, 0, first, sizeof first), AL_DAMAGE_DETECTED,
                "0");
  assert_u64_eq(al_testing_damage(s.adapter, (unsigned)kind, 2, second, sizeof second), AL_DAMAGE_DETECTED,
                "2");
  assert_u64_eq(al_testing_damage(s.adapter, (unsigned)kind, 3, wrapped, sizeof wrapped), AL_DAMAGE_DETECTED,
                "3");
  expect_true(strcmp(first, second) != 0, "different tables: \"%s\" vs \"%s\"", first, second);
  expect_true(strcmp(first, wrapped) == 0, "pick 3 wraps to pick 0: \"%s\" vs \"%s\"", first, wrapped);
  /* NULL message: still detected, nothing written. */
  expect_u64_eq(al_testing_damage(s.adapter, (unsigned)kind, 0, NULL, 0), AL_DAMAGE_DETECTED, "no message");
  char untouched[8] = "keep";
  expect_u64_eq(al_testing_damage(s.adapter, (unsigned)kind, 0, untouched, 0), AL_DAMAGE_DETECTED, "cap 0");
  expect_true(strcmp(untouched, "keep") == 0, "cap 0 writes nothing");
  expect_consistent(s.adapter, "after");
  al_adapter_destroy(s.adapter);
}

TEST(test_empty_adapter_has_no_object_targets) {
  al_adapter *adapter = small_example_adapter();
  assert_ptr_ne(adapter, NULL, "adapter");
  for (unsigned kind = 0; kind < al_testing_damage_kind_count(); kind++) {
    const al_damage_kind_info *info = al_testing_damage_kind(kind);
    /* The tables, the segments and the adapter exist before any object does. */
    bool adapter_level = strncmp(info->target, "handle table", 12) == 0 ||
                         strncmp(info->target, "segment", 7) == 0 || strstr(info->target, "adapter");
    char msg[512] = "";
    al_damage_result result = al_testing_damage(adapter, kind, 0, msg, sizeof msg);
    if (!adapter_level) {
      expect_u64_eq(result, AL_DAMAGE_NO_TARGET, "%s: no %s in an empty adapter", info->name, info->target);
    } else if (result == AL_DAMAGE_DETECTED) {
      expect_ptr_ne(strstr(msg, info->expect), NULL, "%s: \"%s\" has \"%s\"", info->name, msg, info->expect);
    } else {
      expect_u64_eq(result, AL_DAMAGE_NO_TARGET, "%s: detected or no target", info->name);
    }
  }
  char msg[512];
  expect_u64_eq(al_testing_damage(adapter, (unsigned)kind_named("handle_table_free_count_off_by_one"), 0, msg,
                                  sizeof msg),
                AL_DAMAGE_DETECTED, "an empty table's counts are damaged all the same");
  expect_u64_eq(al_testing_damage(adapter, (unsigned)kind_named("handle_table_free_slot_holds_object"), 0,
                                  msg, sizeof msg),
                AL_DAMAGE_NO_TARGET, "no freed slot yet");
  expect_consistent(adapter, "after");
  al_adapter_destroy(adapter);
}

TEST(test_unknown_kind) {
  unsigned count = al_testing_damage_kind_count();
  expect_ptr_eq(al_testing_damage_kind(count), NULL, "one past the last kind");
  char msg[16] = "keep";
  expect_u64_eq(al_testing_damage(NULL, count, 0, msg, sizeof msg), AL_DAMAGE_UNKNOWN_KIND, "out of range");
  expect_u64_eq(al_testing_damage(NULL, UINT32_MAX, 0, msg, sizeof msg), AL_DAMAGE_UNKNOWN_KIND, "far out");
  expect_true(strcmp(msg, "keep") == 0, "nothing written");
}

TEST(test_names_unique_and_descriptive) {
  unsigned count = al_testing_damage_kind_count();
  expect_u64_ge(count, 30, "a kind for most failure branches");
  for (unsigned kind = 0; kind < count; kind++) {
    const al_damage_kind_info *info = al_testing_damage_kind(kind);
    assert_ptr_ne(info, NULL, "kind %u", kind);
    expect_true(info->name[0] != '\0' && info->target[0] != '\0' && info->expect[0] != '\0',
                "kind %u: name, target and expect are set", kind);
    expect_true(strncmp(info->name, "sim_", 4) != 0, "%s: sim_ is the sim miniport's prefix", info->name);
    for (const char *c = info->name; *c; c++)
      expect_true(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_',
                  "%s: lower_snake_case", info->name);
    for (unsigned other = 0; other < kind; other++)
      expect_true(strcmp(info->name, al_testing_damage_kind(other)->name) != 0, "%s: unique", info->name);
  }
}

/* One resource whose records alternate between the memory segment and the aperture: the walk
 * takes a segment's lock once per run of records in it (adapter.c check_resource), so here it
 * switches segments at every record. Every allocation kind is still caught on every record, and
 * the sound state still passes (each record's block is read in its own segment's heap and
 * counted there: the per-segment byte totals would differ otherwise). */
TEST(test_records_alternating_between_segments) {
  al_adapter_config config = {.driver_entry = ExampleMiniportDriverEntry, .flags = AL_ADAPTER_VERIFIER};
  al_adapter *adapter = NULL;
  assert_status(al_adapter_create(&config, &adapter), STATUS_SUCCESS, "adapter");
  al_handle device, resource, allocations[6];
  assert_status(al_device_create(adapter, &device), STATUS_SUCCESS, "device");
  EXAMPLE_ALLOCATION_DATA local = example_allocation_data(16384, 0);
  EXAMPLE_ALLOCATION_DATA aperture = example_allocation_data(16384, EXAMPLE_ALLOCATION_APERTURE_ONLY);
  al_allocation_desc desc[6];
  for (uint32_t i = 0; i < 6; i++)
    desc[i] = i % 2 ? (al_allocation_desc){&aperture, sizeof aperture} : (al_allocation_desc){&local, sizeof local};
  al_create_allocation_args args = {.device = device,
                                    .flags = AL_CREATE_RESOURCE,
                                    .allocation_count = 6,
                                    .allocations = desc,
                                    .out_allocations = allocations,
                                    .out_resource = &resource};
  assert_status(al_allocation_create(adapter, &args), STATUS_SUCCESS, "resource");
  uint32_t first_segment = 0;
  for (uint32_t i = 0; i < 6; i++) {
    al_allocation_info info;
    assert_status(al_allocation_query(adapter, allocations[i], &info), STATUS_SUCCESS, "query %u", i);
    expect_u64_ne(info.segment_id, 0, "allocation %u is in a segment", i);
    if (i == 0) first_segment = info.segment_id;
    expect_true((info.segment_id == first_segment) == (i % 2 == 0), "allocation %u: segment %u alternates", i,
                info.segment_id);
  }
  expect_consistent(adapter, "alternating segments");
  unsigned allocation_kinds = 0;
  for (unsigned kind = 0; kind < al_testing_damage_kind_count(); kind++) {
    const char *name = al_testing_damage_kind(kind)->name;
    if (strncmp(name, "allocation_", 11) != 0) continue;
    bool system_only = strcmp(name, "allocation_in_system_memory_holds_block") == 0;
    unsigned detected = damage_every_pick(adapter, kind, system_only, "alternating");
    if (!system_only) expect_u64_ne(detected, 0, "alternating: %s has a target", name);
    allocation_kinds++;
  }
  expect_u64_ge(allocation_kinds, 5, "the allocation kinds");
  expect_consistent(adapter, "after every kind");
  al_adapter_destroy(adapter);
}

RUN_TESTS(T(test_every_kind_detected_by_its_check), T(test_segment_heap_kinds_on_large_segments),
          T(test_pick_wraps_over_the_targets), T(test_empty_adapter_has_no_object_targets),
          T(test_unknown_kind), T(test_names_unique_and_descriptive),
          T(test_records_alternating_between_segments))
