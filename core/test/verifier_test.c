/*
 * verifier_test.c — the DDI verifier driven directly through its hooks with made-up HANDLE
 * values: legal sequences pass and leave nothing behind; each broken rule aborts with its rule
 * text (checked in a forked child with expect_death).
 */
#include "verifier.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "al_test.h"

#define H(x) ((HANDLE)(uintptr_t)(x))
#define MAX_LIST 64u

/* ---- Driving the hooks ---------------------------------------------------------------------- */

static verifier *new_verifier(void) {
  verifier *v = verifier_create(0x7, 0x4);
  if (v == NULL) {
    fprintf(stderr, "verifier_create: out of memory\n");
    abort();
  }
  return v;
}

/* A successful DxgkDdiCreateAllocation of @n allocations. @as_resource sets Flags.Resource;
 * @resource_in is hResource before the call, @resource_out after it. */
static void create_allocations(verifier *v, bool as_resource, HANDLE resource_in,
                               HANDLE resource_out, const HANDLE *allocations, uint32_t n) {
  DXGK_ALLOCATIONINFO info[MAX_LIST];
  memset(info, 0, sizeof info);
  for (uint32_t i = 0; i < n; i++) {
    info[i].Size = 4096;
    info[i].SupportedWriteSegmentSet = 0x1;
    info[i].AllocationPriority = 1;
    info[i].hAllocation = allocations[i];
  }
  DXGKARG_CREATEALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = n;
  args.pAllocationInfo = info;
  args.hResource = resource_out;
  args.Flags.Resource = as_resource;
  verifier_after_create_allocation(v, &args, resource_in);
}

/* DxgkDdiOpenAllocation of @allocations on @device: before, then after with @bindings. */
static void open_allocations(verifier *v, HANDLE device, bool create, const HANDLE *allocations,
                             const HANDLE *bindings, uint32_t n) {
  DXGK_OPENALLOCATIONINFO info[MAX_LIST];
  memset(info, 0, sizeof info);
  for (uint32_t i = 0; i < n; i++) info[i].hAllocation = (D3DKMT_HANDLE)(0x40000000u + i);
  DXGKARG_OPENALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = n;
  args.pOpenAllocation = info;
  args.Flags.Create = create;
  verifier_before_open_allocation(v, device, &args, allocations);
  for (uint32_t i = 0; i < n; i++) info[i].hDeviceSpecificAllocation = bindings[i];
  verifier_after_open_allocation(v, device, &args, allocations);
}

static void submit(verifier *v, HANDLE device, uint64_t fence, const HANDLE *bindings, uint32_t n) {
  DXGK_ALLOCATIONLIST list[MAX_LIST];
  memset(list, 0, sizeof list);
  for (uint32_t i = 0; i < n; i++) list[i].hDeviceSpecificAllocation = bindings[i];
  verifier_after_submit(v, device, fence, list, n);
}

static void expect_counts(verifier *v, uint32_t allocations, uint32_t bindings, uint32_t devices) {
  uint32_t a = 99, b = 99, d = 99;
  verifier_counts(v, &a, &b, &d);
  expect_u64_eq(a, allocations, "live allocations");
  expect_u64_eq(b, bindings, "live bindings");
  expect_u64_eq(d, devices, "live devices");
}

/* ---- The shared-resource world most tests start from ------------------------------------------
 * Devices D1 (creator) and D2; resource R of allocations A[0..2], opened on D1 as B1[] and on D2
 * as B2[]. */

static const HANDLE D1 = H(0x1000), D2 = H(0x2000), D3 = H(0x3000);
static const HANDLE R = H(0x5000), R2 = H(0x6000);
static const HANDLE A[3] = {H(0x10010), H(0x10020), H(0x10030)};
static const HANDLE B1[3] = {H(0x21010), H(0x21020), H(0x21030)};
static const HANDLE B2[3] = {H(0x22010), H(0x22020), H(0x22030)};
static const ALDDI_LIVE_OBJECTS NOTHING_LIVE = {0, 0, 0, 0, 0};

static verifier *shared_world(void) {
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  verifier_after_create_device(v, D2);
  create_allocations(v, true, NULL, R, A, 3);
  open_allocations(v, D1, true, A, B1, 3);
  open_allocations(v, D2, false, A, B2, 3);
  return v;
}

/* ---- Legal sequences ------------------------------------------------------------------------ */

TEST(test_legal_full_sequence) {
  verifier *v = shared_world();
  expect_counts(v, 3, 6, 2);
  submit(v, D1, 1, B1, 3);
  submit(v, D2, 2, B2, 2);
  verifier_on_fence_completed(v, 1, 2);
  verifier_on_fence_completed(v, 2, 2);
  verifier_on_fence_completed(v, 2, 2); /* a repeated report is not a step backwards */
  verifier_before_close_allocation(v, D1, B1, 3, false);
  expect_counts(v, 3, 3, 2);
  verifier_before_close_allocation(v, D2, B2, 3, false);
  expect_counts(v, 3, 0, 2);
  verifier_before_destroy_allocation(v, A, 3, R, true, false);
  expect_counts(v, 0, 0, 2);
  verifier_before_destroy_device(v, D1);
  verifier_before_destroy_device(v, D2);
  expect_counts(v, 0, 0, 0);
  verifier_at_teardown(v, &NOTHING_LIVE);
  verifier_at_teardown(v, NULL);
  verifier_destroy(v);
}

/* Close 2 of 3 bindings on each device, destroy those 2, later the rest. */
TEST(test_legal_partial_destroy) {
  verifier *v = shared_world();
  const HANDLE two_b1[2] = {B1[2], B1[0]}, two_b2[2] = {B2[0], B2[2]};
  const HANDLE two_a[2] = {A[0], A[2]};
  verifier_before_close_allocation(v, D1, two_b1, 2, false);
  verifier_before_close_allocation(v, D2, two_b2, 2, false);
  verifier_before_destroy_allocation(v, two_a, 2, R, false, false);
  expect_counts(v, 1, 2, 2);
  /* The last allocation goes with the resource: a later close of R is legal now. */
  verifier_before_close_allocation(v, D2, &B2[1], 1, false);
  verifier_before_close_allocation(v, D1, &B1[1], 1, false);
  verifier_before_destroy_allocation(v, &A[1], 1, R, true, false);
  verifier_before_destroy_device(v, D1);
  verifier_before_destroy_device(v, D2);
  verifier_at_teardown(v, &NOTHING_LIVE);
  verifier_destroy(v);
}

/* A partial destroy, then new allocations with the same handle values join the resource: the
 * old partial-close marks must not be mistaken for them. */
TEST(test_legal_handle_reuse_after_partial_destroy) {
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, true, NULL, R, A, 3);
  open_allocations(v, D1, true, A, B1, 3);
  verifier_before_close_allocation(v, D1, B1, 2, false);
  verifier_before_destroy_allocation(v, A, 2, R, false, false);
  create_allocations(v, true, R, R, A, 2);
  open_allocations(v, D1, true, A, B1, 2);
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_before_destroy_allocation(v, A, 3, R, true, false);
  verifier_before_destroy_device(v, D1);
  verifier_at_teardown(v, &NOTHING_LIVE);
  verifier_destroy(v);
}

/* Device-owned allocations (no resource), adding to a resource, handle values reused after
 * destroy, a device created and destroyed without ever opening anything. */
TEST(test_legal_misc) {
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  verifier_after_create_device(v, D3);
  verifier_before_destroy_device(v, D3); /* rolled-back create: legal */
  const HANDLE own[2] = {H(0x70010), H(0x70020)}, own_b[2] = {H(0x71010), H(0x71020)};
  create_allocations(v, false, NULL, NULL, own, 2);
  open_allocations(v, D1, true, own, own_b, 2);
  /* A resource whose miniport returned no handle: its allocations count as device-owned. */
  const HANDLE anon = H(0x70030);
  create_allocations(v, true, NULL, NULL, &anon, 1);
  /* A resource grows by one allocation. */
  create_allocations(v, true, NULL, R, A, 2);
  create_allocations(v, true, R, R, &A[2], 1);
  open_allocations(v, D1, true, A, B1, 3);
  expect_counts(v, 6, 5, 1);
  verifier_before_close_allocation(v, D1, own_b, 2, false);
  verifier_before_destroy_allocation(v, own, 2, NULL, false, false);
  verifier_before_destroy_allocation(v, &anon, 1, NULL, false, false);
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_before_destroy_allocation(v, A, 3, R, true, false);
  /* Every value is free again: the same values make a new resource. */
  create_allocations(v, true, NULL, R, A, 3);
  open_allocations(v, D1, true, A, B1, 3);
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_before_destroy_allocation(v, A, 3, R, true, false);
  /* An empty resource may be destroyed once its allocations went one by one. */
  create_allocations(v, true, NULL, R2, own, 2);
  verifier_before_destroy_allocation(v, &own[0], 1, R2, false, false);
  verifier_before_destroy_allocation(v, &own[1], 1, R2, false, false);
  verifier_before_destroy_allocation(v, NULL, 0, R2, true, false);
  verifier_before_destroy_device(v, D1);
  verifier_at_teardown(v, &NOTHING_LIVE);
  verifier_destroy(v);
}

/* AssumeNotInUse: bindings closed and allocations destroyed while their work is still queued. */
TEST(test_assume_not_in_use_lets_it_through) {
  verifier *v = shared_world();
  submit(v, D1, 1, B1, 3);
  verifier_before_close_allocation(v, D1, B1, 3, true);
  verifier_before_close_allocation(v, D2, B2, 3, true);
  verifier_before_destroy_allocation(v, A, 3, R, true, true);
  expect_counts(v, 0, 0, 2);
  /* The completion of that work still arrives later. */
  verifier_on_fence_completed(v, 1, 1);
  verifier_before_destroy_device(v, D1);
  verifier_before_destroy_device(v, D2);
  verifier_at_teardown(v, &NOTHING_LIVE);
  verifier_destroy(v);
}

/* Work on D1 does not hold D2's bindings: D2 may let the shared resource go at once. And a
 * binding closed between the submit DDI and its hook is skipped. */
TEST(test_fences_are_per_binding) {
  verifier *v = shared_world();
  submit(v, D1, 1, B1, 3);
  verifier_before_close_allocation(v, D2, B2, 3, false);
  /* D2's old binding value comes back in a late hook after the work is done. */
  verifier_on_fence_completed(v, 1, 1);
  submit(v, D2, 1, B2, 3);
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_before_destroy_allocation(v, A, 3, R, true, false);
  verifier_before_destroy_device(v, D1);
  verifier_before_destroy_device(v, D2);
  verifier_at_teardown(v, &NOTHING_LIVE);
  verifier_destroy(v);
}

/* ---- Rule 1 (create) ------------------------------------------------------------------------ */

static void die_create_null_allocation(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  const HANDLE list[2] = {H(0x10010), NULL};
  create_allocations(v, false, NULL, NULL, list, 2);
}

static void die_create_duplicate_in_batch(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  const HANDLE list[3] = {H(0x10010), H(0x10020), H(0x10010)};
  create_allocations(v, true, NULL, R, list, 3);
}

static void die_create_already_live(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, R, A, 3);
  create_allocations(v, false, NULL, NULL, &A[1], 1);
}

static void die_create_into_dead_resource(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, R, R, A, 1);
}

static void die_create_resource_changed(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, R, A, 1);
  create_allocations(v, true, R, R2, &A[1], 1);
}

static void die_create_resource_twice(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, R, A, 1);
  create_allocations(v, true, NULL, R, &A[1], 1);
}

static void die_create_reserved_flags(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  DXGK_ALLOCATIONINFO info;
  memset(&info, 0, sizeof info);
  info.hAllocation = A[0];
  DXGKARG_CREATEALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pAllocationInfo = &info;
  args.Flags.Value = 0x4u;
  verifier_after_create_allocation(v, &args, NULL);
}

TEST(test_rule1_create) {
  expect_death(die_create_reserved_flags, NULL,
               "rule 1 (create): DxgkDdiCreateAllocation called with reserved flag bits 0x4");
  expect_death(die_create_null_allocation, NULL,
               "alloclab verifier: rule 1 (create): the miniport returned a NULL hAllocation");
  expect_death(die_create_duplicate_in_batch, NULL,
               "rule 1 (create): the miniport returned hAllocation");
  expect_death(die_create_already_live, NULL, "rule 1 (create): the miniport returned hAllocation");
  expect_death(die_create_into_dead_resource, NULL,
               "rule 1 (create): 1 allocations added to resource");
  expect_death(die_create_resource_changed, NULL, "rule 1 (create): allocations added to resource");
  expect_death(die_create_resource_twice, NULL, "rule 1 (create): the miniport returned hResource");
}

/* ---- Rule 3 (open) -------------------------------------------------------------------------- */

static void die_open_dead_allocation(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, false, NULL, NULL, A, 2);
  verifier_before_destroy_allocation(v, &A[1], 1, NULL, false, false);
  open_allocations(v, D1, true, A, B1, 2);
}

static void die_open_twice_on_device(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  open_allocations(v, D2, false, &A[1], &B2[1], 1); /* the port forgot D2 already holds R */
}

static void die_open_listed_twice(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, true, NULL, R, A, 2);
  const HANDLE list[2] = {A[0], A[0]};
  open_allocations(v, D1, true, list, B1, 2);
}

static void die_open_reserved_flags(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, false, NULL, NULL, A, 1);
  DXGK_OPENALLOCATIONINFO info = {0};
  DXGKARG_OPENALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pOpenAllocation = &info;
  args.Flags.Value = 0x1u | 0x8u;
  verifier_before_open_allocation(v, D1, &args, A);
}

static void die_open_on_dead_device(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, false, NULL, NULL, A, 1);
  open_allocations(v, D1, true, A, B1, 1);
}

static void die_open_null_binding(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, true, NULL, R, A, 3);
  const HANDLE bindings[3] = {B1[0], NULL, B1[2]};
  open_allocations(v, D1, true, A, bindings, 3);
}

static void die_open_binding_already_live(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  verifier_after_create_device(v, D2);
  create_allocations(v, true, NULL, R, A, 3);
  open_allocations(v, D1, true, A, B1, 3);
  /* The miniport hands D2 the allocation's binding of D1 (one object for both devices). */
  open_allocations(v, D2, false, A, B1, 3);
}

static void die_open_binding_duplicate_in_call(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, true, NULL, R, A, 3);
  const HANDLE bindings[3] = {B1[0], B1[1], B1[0]};
  open_allocations(v, D1, true, A, bindings, 3);
}

static void die_submit_other_device_binding(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  submit(v, D1, 1, B2, 1);
}

/* Races in the port: the state changed between before_open and after_open. */
static DXGKARG_OPENALLOCATION one_open(DXGK_OPENALLOCATIONINFO *info, HANDLE binding) {
  memset(info, 0, sizeof *info);
  info->hDeviceSpecificAllocation = binding;
  DXGKARG_OPENALLOCATION args;
  memset(&args, 0, sizeof args);
  args.NumAllocations = 1;
  args.pOpenAllocation = info;
  return args;
}

static void die_open_device_destroyed_meanwhile(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, false, NULL, NULL, A, 1);
  DXGK_OPENALLOCATIONINFO info;
  DXGKARG_OPENALLOCATION args = one_open(&info, B1[0]);
  verifier_before_open_allocation(v, D1, &args, A);
  verifier_before_destroy_device(v, D1);
  verifier_after_open_allocation(v, D1, &args, A);
}

static void die_open_allocation_destroyed_meanwhile(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, false, NULL, NULL, A, 1);
  DXGK_OPENALLOCATIONINFO info;
  DXGKARG_OPENALLOCATION args = one_open(&info, B1[0]);
  verifier_before_open_allocation(v, D1, &args, A);
  verifier_before_destroy_allocation(v, A, 1, NULL, false, false);
  verifier_after_open_allocation(v, D1, &args, A);
}

static void die_open_concurrently_on_device(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  create_allocations(v, false, NULL, NULL, A, 1);
  DXGK_OPENALLOCATIONINFO info1, info2;
  DXGKARG_OPENALLOCATION first = one_open(&info1, B1[0]), second = one_open(&info2, B1[1]);
  verifier_before_open_allocation(v, D1, &first, A);
  verifier_before_open_allocation(v, D1, &second, A);
  verifier_after_open_allocation(v, D1, &first, A);
  verifier_after_open_allocation(v, D1, &second, A);
}

TEST(test_rule3_open) {
  expect_death(die_open_device_destroyed_meanwhile, NULL,
               "rule 3 (open): device 0x1000 was destroyed while it opened 1 allocations");
  expect_death(die_open_allocation_destroyed_meanwhile, NULL,
               "rule 3 (open): allocation 0x10010 was destroyed while device 0x1000 opened it");
  expect_death(die_open_concurrently_on_device, NULL,
               "rule 3 (open): allocation 0x10010 was opened twice on device 0x1000");
  expect_death(die_open_dead_allocation, NULL, "rule 3 (open): allocation 0x10020 (entry 1 of 2)");
  expect_death(die_open_twice_on_device, NULL, "a second binding on one device");
  expect_death(die_open_listed_twice, NULL, "rule 3 (open): allocation 0x10010 listed twice");
  expect_death(die_open_reserved_flags, NULL,
               "rule 3 (open): open on device 0x1000 with reserved flag bits 0x8");
  expect_death(die_open_on_dead_device, NULL,
               "rule 3 (open): open of 1 allocations on device 0x1000, which is not live");
  expect_death(die_open_null_binding, NULL,
               "rule 3 (open): the miniport returned a NULL hDeviceSpecificAllocation");
  expect_death(die_open_binding_already_live, NULL,
               "rule 3 (open): the miniport returned binding 0x21010");
  expect_death(die_open_binding_duplicate_in_call, NULL,
               "rule 3 (open): the miniport returned binding 0x21010");
  expect_death(
      die_submit_other_device_binding, NULL,
      "rule 3 (open): work with fence 1 submitted on device 0x1000 references binding 0x22010");
}

/* ---- Rule 4 (close before destroy) ---------------------------------------------------------- */

static void die_close_unknown_binding(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  const HANDLE list[2] = {B1[0], H(0xdead0)};
  verifier_before_close_allocation(v, D1, list, 2, false);
}

static void die_close_closed_binding(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_before_close_allocation(v, D1, B1, 1, false);
}

static void die_close_other_device_binding(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  const HANDLE list[3] = {B1[0], B1[1], B2[2]};
  verifier_before_close_allocation(v, D1, list, 3, false);
}

static void die_close_listed_twice(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  const HANDLE list[3] = {B1[0], B1[1], B1[0]};
  verifier_before_close_allocation(v, D1, list, 3, false);
}

static void die_close_resource_in_two_calls(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  verifier_before_close_allocation(v, D1, &B1[0], 1, false);
  verifier_before_close_allocation(v, D1, &B1[1], 2, false);
}

/* Closed in two calls, and the second close also came before the destroy. */
static void die_close_resource_in_two_calls_then_destroy(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  verifier_before_close_allocation(v, D2, B2, 3, false);
  verifier_before_close_allocation(v, D1, &B1[0], 2, false);
  verifier_before_destroy_allocation(v, &A[0], 1, R, false, false); /* only one of the two */
  verifier_before_close_allocation(v, D1, &B1[2], 1, false);
}

static void die_destroy_with_open_binding(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_before_destroy_allocation(v, A, 3, R, true, false); /* D2's bindings are still open */
}

TEST(test_rule4_close_before_destroy) {
  expect_death(die_close_unknown_binding, NULL,
               "rule 4 (close before destroy): binding 0xdead0 (entry 1 of 2) closed on device "
               "0x1000 is not live");
  expect_death(die_close_closed_binding, NULL,
               "rule 4 (close before destroy): binding 0x21010 (entry 0 of 1)");
  expect_death(die_close_other_device_binding, NULL,
               "rule 4 (close before destroy): binding 0x22030 (allocation 0x10030) belongs to "
               "device 0x2000, but was closed on device 0x1000");
  expect_death(die_close_listed_twice, NULL,
               "rule 4 (close before destroy): binding 0x21010 listed twice");
  expect_death(die_close_resource_in_two_calls, NULL,
               "rule 4 (close before destroy): bindings of resource 0x5000 on device 0x1000 closed "
               "in several calls");
  expect_death(die_close_resource_in_two_calls_then_destroy, NULL,
               "rule 4 (close before destroy): bindings of resource 0x5000 on device 0x1000 closed "
               "in several calls (allocation 0x10020");
  expect_death(die_destroy_with_open_binding, NULL,
               "rule 4 (close before destroy): allocation 0x10010 destroyed while 1 bindings of it "
               "are still open");
}

/* ---- Rule 5 (destroy) ----------------------------------------------------------------------- */

static void die_destroy_resource_partial_list(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_before_close_allocation(v, D2, B2, 3, false);
  verifier_before_destroy_allocation(v, A, 2, R, true, false);
}

static void die_destroy_wrong_resource(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, R, A, 2);
  create_allocations(v, false, NULL, NULL, &A[2], 1);
  const HANDLE list[2] = {A[0], A[2]};
  verifier_before_destroy_allocation(v, list, 2, R, false, false);
}

static void die_destroy_device_owned_as_resource(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, R, A, 2);
  verifier_before_destroy_allocation(v, A, 1, NULL, false, false);
}

static void die_destroy_dead_allocation(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, false, NULL, NULL, A, 2);
  verifier_before_destroy_allocation(v, &A[1], 1, NULL, false, false);
  verifier_before_destroy_allocation(v, A, 2, NULL, false, false);
}

static void die_destroy_listed_twice(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, R, A, 2);
  const HANDLE list[2] = {A[1], A[1]};
  verifier_before_destroy_allocation(v, list, 2, R, true, false);
}

static void die_destroy_dead_resource(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, R, A, 1);
  verifier_before_destroy_allocation(v, A, 1, R, true, false);
  verifier_before_destroy_allocation(v, NULL, 0, R, true, false);
}

static void die_destroy_resource_without_handle(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, NULL, A, 1);
  verifier_before_destroy_allocation(v, A, 1, NULL, true, false);
}

TEST(test_rule5_destroy) {
  expect_death(die_destroy_resource_without_handle, NULL,
               "rule 5 (destroy): DestroyResource of 1 allocations without a resource handle");
  expect_death(die_destroy_resource_partial_list, NULL,
               "rule 5 (destroy): DestroyResource of resource 0x5000 lists 2 allocations, but the "
               "resource has 3 live");
  expect_death(die_destroy_wrong_resource, NULL,
               "rule 5 (destroy): allocation 0x10030 belongs to resource (nil), but was destroyed "
               "as part of resource 0x5000");
  expect_death(die_destroy_device_owned_as_resource, NULL,
               "rule 5 (destroy): allocation 0x10010 belongs to resource 0x5000");
  expect_death(die_destroy_dead_allocation, NULL,
               "rule 5 (destroy): allocation 0x10020 (entry 1 of 2) destroyed, but it is not live");
  expect_death(die_destroy_listed_twice, NULL, "rule 5 (destroy): allocation 0x10020 listed twice");
  expect_death(die_destroy_dead_resource, NULL,
               "rule 5 (destroy): DestroyResource of resource 0x5000, which is not live");
}

/* ---- Rule 6 (fences) ------------------------------------------------------------------------ */

static void die_destroy_before_fence(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  submit(v, D2, 1, &B2[1], 1);
  verifier_on_fence_completed(v, 0, 1);
  /* the closes claim AssumeNotInUse, so the destroy's own check is what fires */
  verifier_before_close_allocation(v, D1, B1, 3, true);
  verifier_before_close_allocation(v, D2, B2, 3, true);
  verifier_before_destroy_allocation(v, A, 3, R, true, false);
}

/* A partial teardown that closes before its fence is caught at the close. */
static void die_close_before_fence(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  submit(v, D1, 1, B1, 3);
  submit(v, D1, 2, &B1[2], 1);
  verifier_on_fence_completed(v, 1, 2);
  verifier_before_close_allocation(v, D1, &B1[1], 2, false);
  verifier_before_close_allocation(v, D2, &B2[1], 2, false);
  verifier_before_destroy_allocation(v, &A[1], 2, R, false, false);
}

static void die_fence_beyond_submitted(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  submit(v, D1, 1, B1, 1);
  verifier_on_fence_completed(v, 2, 1);
}

static void die_fence_backwards(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  submit(v, D1, 1, B1, 1);
  submit(v, D1, 2, B1, 1);
  verifier_on_fence_completed(v, 2, 2);
  verifier_on_fence_completed(v, 1, 2);
}

TEST(test_rule6_fences) {
  expect_death(die_destroy_before_fence, NULL,
               "rule 6 (fences): allocation 0x10020 destroyed while fence 1 it is used by has not "
               "signalled (completed 0)");
  expect_death(die_close_before_fence, NULL, "rule 6 (fences): binding");
  expect_death(die_fence_beyond_submitted, NULL,
               "rule 6 (fences): miniport reported fence 2 beyond the last submitted 1");
  expect_death(
      die_fence_backwards, NULL,
      "rule 6 (fences): miniport reported fence 1 after fence 2: completed fences went backwards");
}

/* ---- Rule 7 (destroy device) ---------------------------------------------------------------- */

static void die_destroy_device_with_bindings(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_before_destroy_device(v, D1);
  verifier_before_destroy_device(v, D2);
}

static void die_destroy_dead_device(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  verifier_before_destroy_device(v, D1);
  verifier_before_destroy_device(v, D1);
}

static void die_create_null_device(void *arg) {
  (void)arg;
  verifier_after_create_device(new_verifier(), NULL);
}

static void die_create_device_twice(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  verifier_after_create_device(v, D1);
  verifier_after_create_device(v, D1);
}

TEST(test_rule7_destroy_device) {
  expect_death(
      die_destroy_device_with_bindings, NULL,
      "rule 7 (destroy device): device 0x2000 destroyed while 3 bindings on it are still open");
  expect_death(die_destroy_dead_device, NULL,
               "rule 7 (destroy device): device 0x1000 destroyed, but it is not live");
  expect_death(die_create_null_device, NULL,
               "rule 7 (destroy device): the miniport returned a NULL hDevice");
  expect_death(die_create_device_twice, NULL,
               "rule 7 (destroy device): the miniport returned hDevice 0x1000");
}

/* ---- Teardown ------------------------------------------------------------------------------- */

static void die_teardown_leak(void *arg) {
  (void)arg;
  verifier *v = shared_world();
  verifier_before_close_allocation(v, D1, B1, 3, false);
  verifier_at_teardown(v, NULL);
}

static void die_teardown_leak_resource_only(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  create_allocations(v, true, NULL, R, A, 1);
  verifier_before_destroy_allocation(v, A, 1, R, false, false);
  verifier_at_teardown(v, &NOTHING_LIVE);
}

static void die_miniport_leak(void *arg) {
  (void)arg;
  verifier *v = new_verifier();
  const ALDDI_LIVE_OBJECTS live = {
      .Devices = 0, .Resources = 1, .Allocations = 2, .OpenAllocations = 0, .HostBytes = 64};
  verifier_at_teardown(v, &live);
}

TEST(test_teardown) {
  expect_death(die_teardown_leak, NULL,
               "rule teardown (leak): 3 allocations still live (first 0x100");
  expect_death(
      die_teardown_leak_resource_only, NULL,
      "rule teardown (leak): 0 allocations still live (first (nil)), 1 resources (first 0x5000)");
  expect_death(die_miniport_leak, NULL,
               "rule teardown (miniport leak): the miniport still holds 2 allocations, 1 "
               "resources, 0 bindings, 0 devices, 64 host bytes");
}

static void die_verifier_fail(void *arg) {
  (void)arg;
  verifier_fail("9 (test)", "object %p count %u", H(0x42), 7u);
}

TEST(test_verifier_fail_message) {
  expect_death(die_verifier_fail, NULL, "alloclab verifier: rule 9 (test): object 0x42 count 7\n");
}

/* ---- Random legal workload: map growth, backward-shift deletion, handle reuse -----------------
 */

static uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

#define RANDOM_SLOTS 4096u
#define RANDOM_DEVICES 4u

typedef struct random_slot {
  bool live;
  bool bound[RANDOM_DEVICES];
} random_slot;

/* Allocation i's handle, its binding on device d; values densely packed so probes collide. */
static HANDLE random_allocation(uint32_t i) { return H(0x100000u + 16u * i); }
static HANDLE random_binding(uint32_t i, uint32_t d) {
  return H(0x800000u + 16u * (i * RANDOM_DEVICES + d));
}
static HANDLE random_device(uint32_t d) { return H(0x40u + 0x40u * d); }

TEST(test_random_legal_workload) {
  static random_slot slots[RANDOM_SLOTS];
  memset(slots, 0, sizeof slots);
  uint64_t rng = al_test_seed();
  verifier *v = new_verifier();
  for (uint32_t d = 0; d < RANDOM_DEVICES; d++) verifier_after_create_device(v, random_device(d));
  uint32_t live = 0, bound = 0, ops = 0;
  uint64_t fence = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (uint32_t step = 0; step < 400000; step++) {
    uint32_t i = (uint32_t)(rng_next(&rng) % RANDOM_SLOTS);
    uint32_t d = (uint32_t)(rng_next(&rng) % RANDOM_DEVICES);
    random_slot *s = &slots[i];
    HANDLE allocation = random_allocation(i), binding = random_binding(i, d);
    switch (rng_next(&rng) % 4) {
    case 0: /* create or destroy */
      if (!s->live) {
        create_allocations(v, false, NULL, NULL, &allocation, 1);
        s->live = true;
        live++;
      } else {
        for (uint32_t e = 0; e < RANDOM_DEVICES; e++) {
          if (!s->bound[e]) continue;
          HANDLE b = random_binding(i, e);
          verifier_before_close_allocation(v, random_device(e), &b, 1, false);
          s->bound[e] = false;
          bound--;
        }
        verifier_before_destroy_allocation(v, &allocation, 1, NULL, false, false);
        s->live = false;
        live--;
      }
      break;
    case 1: /* open */
      if (s->live && !s->bound[d]) {
        open_allocations(v, random_device(d), false, &allocation, &binding, 1);
        s->bound[d] = true;
        bound++;
      }
      break;
    case 2: /* close */
      if (s->bound[d]) {
        verifier_before_close_allocation(v, random_device(d), &binding, 1, false);
        s->bound[d] = false;
        bound--;
      }
      break;
    default: /* submit and complete at once */
      if (s->bound[d]) {
        submit(v, random_device(d), ++fence, &binding, 1);
        verifier_on_fence_completed(v, fence, fence);
      }
      break;
    }
    ops++;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / ops;
  fprintf(stderr, "random workload: %u steps, %.0f ns per step, %u allocations %u bindings live\n",
          ops, ns, live, bound);
  expect_counts(v, live, bound, RANDOM_DEVICES);
  for (uint32_t i = 0; i < RANDOM_SLOTS; i++) {
    if (!slots[i].live) continue;
    HANDLE allocation = random_allocation(i);
    for (uint32_t d = 0; d < RANDOM_DEVICES; d++) {
      if (!slots[i].bound[d]) continue;
      HANDLE b = random_binding(i, d);
      verifier_before_close_allocation(v, random_device(d), &b, 1, false);
    }
    verifier_before_destroy_allocation(v, &allocation, 1, NULL, false, false);
  }
  for (uint32_t d = 0; d < RANDOM_DEVICES; d++) verifier_before_destroy_device(v, random_device(d));
  verifier_at_teardown(v, &NOTHING_LIVE);
  verifier_destroy(v);
}

/* ---- Threads -------------------------------------------------------------------------------- */

#define THREADS 4
#define THREAD_ROUNDS 2000

static pthread_mutex_t fence_mutex = PTHREAD_MUTEX_INITIALIZER;
static uint64_t thread_fence;

typedef struct thread_arg {
  verifier *v;
  uint32_t index;
} thread_arg;

static void *thread_main(void *p) {
  const thread_arg *arg = p;
  verifier *v = arg->v;
  uintptr_t base = (uintptr_t)(arg->index + 1) << 20;
  HANDLE device = H(base), resource = H(base + 0x100);
  HANDLE allocations[3], bindings[3], own = H(base + 0x400), own_binding = H(base + 0x500);
  for (uint32_t i = 0; i < 3; i++) {
    allocations[i] = H(base + 0x200 + 16 * i);
    bindings[i] = H(base + 0x300 + 16 * i);
  }
  verifier_after_create_device(v, device);
  for (uint32_t round = 0; round < THREAD_ROUNDS; round++) {
    create_allocations(v, true, NULL, resource, allocations, 3);
    create_allocations(v, false, NULL, NULL, &own, 1);
    open_allocations(v, device, true, allocations, bindings, 3);
    open_allocations(v, device, true, &own, &own_binding, 1);
    /* Fences are adapter-wide: number, submit and complete them in one order. */
    pthread_mutex_lock(&fence_mutex);
    uint64_t fence = ++thread_fence;
    submit(v, device, fence, bindings, 3);
    submit(v, device, fence, &own_binding, 1);
    verifier_on_fence_completed(v, fence, fence);
    pthread_mutex_unlock(&fence_mutex);
    verifier_before_close_allocation(v, device, &bindings[1], 2, false);
    verifier_before_destroy_allocation(v, &allocations[1], 2, resource, false, false);
    verifier_before_close_allocation(v, device, bindings, 1, false);
    verifier_before_close_allocation(v, device, &own_binding, 1, false);
    verifier_before_destroy_allocation(v, allocations, 1, resource, true, false);
    verifier_before_destroy_allocation(v, &own, 1, NULL, false, false);
    uint32_t a, b, d;
    verifier_counts(v, &a, &b, &d);
  }
  verifier_before_destroy_device(v, device);
  return NULL;
}

TEST(test_threads) {
  verifier *v = new_verifier();
  pthread_t threads[THREADS];
  thread_arg args[THREADS];
  for (uint32_t t = 0; t < THREADS; t++) {
    args[t].v = v;
    args[t].index = t;
    assert_true(pthread_create(&threads[t], NULL, thread_main, &args[t]) == 0, "pthread_create");
  }
  for (uint32_t t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
  expect_counts(v, 0, 0, 0);
  verifier_at_teardown(v, &NOTHING_LIVE);
  verifier_destroy(v);
}

RUN_TESTS(T(test_legal_full_sequence), T(test_legal_partial_destroy),
          T(test_legal_handle_reuse_after_partial_destroy), T(test_legal_misc),
          T(test_assume_not_in_use_lets_it_through), T(test_fences_are_per_binding),
          T(test_rule1_create), T(test_rule3_open), T(test_rule4_close_before_destroy),
          T(test_rule5_destroy), T(test_rule6_fences), T(test_rule7_destroy_device),
          T(test_teardown), T(test_verifier_fail_message), T(test_random_legal_workload),
          T(test_threads))
