/* fault_injection_test.c — unit tests of the adapter fault injector. */
#include "alloclab/hw/fault_injection.h"

#include <pthread.h>
#include <string.h>

#include "al_test.h"

/* Calls should_fail @count times and returns the bitmask of the failing calls (count <= 64). */
static uint64_t fail_mask(fault_injector *inj, enum fault_point point, unsigned count) {
  uint64_t mask = 0;
  for (unsigned i = 0; i < count; i++) {
    if (fault_injector_should_fail(inj, point)) mask |= UINT64_C(1) << i;
  }
  return mask;
}

TEST(test_disarmed_never_fails) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  for (int p = 0; p < FAULT_POINT_COUNT; p++) {
    expect_u64_eq(fail_mask(&inj, (enum fault_point)p, 50), 0, "point %d is disarmed", p);
    expect_u64_eq(fault_injector_calls(&inj, (enum fault_point)p), 50, "calls counted");
    expect_u64_eq(fault_injector_failures(&inj, (enum fault_point)p), 0, "no failures");
  }
}

TEST(test_nth_fails_once) {
  /* Table: nth -> exactly bit nth-1 set among the next 10 calls. */
  for (uint32_t nth = 1; nth <= 10; nth++) {
    fault_injector inj = FAULT_INJECTOR_INIT;
    assert_true(fault_injector_arm(&inj, FAULT_PAGE_TABLE_PAGE, nth, 0), "arm nth=%u", nth);
    expect_true(fault_injector_armed(&inj, FAULT_PAGE_TABLE_PAGE), "armed before the fault");
    expect_u64_eq(fail_mask(&inj, FAULT_PAGE_TABLE_PAGE, 12), UINT64_C(1) << (nth - 1),
                  "only call %u fails", nth);
    expect_false(fault_injector_armed(&inj, FAULT_PAGE_TABLE_PAGE), "spent after the fault");
    expect_u64_eq(fault_injector_failures(&inj, FAULT_PAGE_TABLE_PAGE), 1, "one failure");
  }
}

TEST(test_nth_counts_from_arm_time) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  fail_mask(&inj, FAULT_SEGMENT_SPACE, 7); /* calls before arming do not count */
  fault_injector_arm(&inj, FAULT_SEGMENT_SPACE, 3, 0);
  expect_u64_eq(fail_mask(&inj, FAULT_SEGMENT_SPACE, 5), 0x4, "third call after arm fails");
  expect_u64_eq(fault_injector_calls(&inj, FAULT_SEGMENT_SPACE), 12, "calls keep counting");
}

TEST(test_repeat) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  fault_injector_arm(&inj, FAULT_DRIVER_OBJECT, 2, 3);
  expect_u64_eq(fail_mask(&inj, FAULT_DRIVER_OBJECT, 8), 0xE, "calls 2, 3, 4 fail");
  fault_injector_arm(&inj, FAULT_DRIVER_OBJECT, 1, 1);
  expect_u64_eq(fail_mask(&inj, FAULT_DRIVER_OBJECT, 4), 0x1, "repeat 1 = once");
  expect_u64_eq(fault_injector_failures(&inj, FAULT_DRIVER_OBJECT), 4, "3 + 1 failures");
}

TEST(test_every_call_after) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  fault_injector_arm(&inj, FAULT_PRIVATE_DATA_BUFFER, 4, FAULT_REPEAT_FOREVER);
  expect_u64_eq(fail_mask(&inj, FAULT_PRIVATE_DATA_BUFFER, 64), ~UINT64_C(0) << 3,
                "every call from the 4th fails");
  for (int i = 0; i < 10000; i++) {
    if (!fault_injector_should_fail(&inj, FAULT_PRIVATE_DATA_BUFFER)) {
      expect_true(false, "call %d after the window opened succeeded", i);
      break;
    }
  }
  expect_true(fault_injector_armed(&inj, FAULT_PRIVATE_DATA_BUFFER), "still armed");
  fault_injector_disarm(&inj, FAULT_PRIVATE_DATA_BUFFER);
  expect_u64_eq(fail_mask(&inj, FAULT_PRIVATE_DATA_BUFFER, 10), 0, "disarmed");
  expect_u64_eq(fault_injector_failures(&inj, FAULT_PRIVATE_DATA_BUFFER), 61 + 10000,
                "failures");
  expect_u64_eq(fault_injector_calls(&inj, FAULT_PRIVATE_DATA_BUFFER), 64 + 10000 + 10,
                "calls");
}

TEST(test_points_are_independent) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  fault_injector_arm(&inj, FAULT_DEVICE_REMOVED, 1, FAULT_REPEAT_FOREVER);
  expect_u64_eq(fail_mask(&inj, FAULT_SEGMENT_SPACE, 10), 0, "other point unaffected");
  expect_u64_eq(fail_mask(&inj, FAULT_DEVICE_REMOVED, 3), 0x7, "armed point fails");
  fault_injector_arm(&inj, FAULT_SEGMENT_SPACE, 1, 0);
  fault_injector_disarm_all(&inj);
  expect_u64_eq(fail_mask(&inj, FAULT_DEVICE_REMOVED, 3), 0, "disarm_all: removed");
  expect_u64_eq(fail_mask(&inj, FAULT_SEGMENT_SPACE, 3), 0, "disarm_all: segment");
  expect_u64_eq(fault_injector_failures(&inj, FAULT_DEVICE_REMOVED), 3, "counters kept");
  fault_injector_init(&inj);
  expect_u64_eq(fault_injector_calls(&inj, FAULT_DEVICE_REMOVED), 0, "init zeroes counters");
}

TEST(test_invalid_arguments) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  expect_false(fault_injector_arm(&inj, FAULT_SEGMENT_SPACE, 0, 0), "nth 0 refused");
  expect_false(fault_injector_arm(&inj, FAULT_POINT_COUNT, 1, 0), "COUNT is no point");
  expect_false(fault_injector_arm(&inj, (enum fault_point)-1, 1, 0), "negative point");
  expect_false(fault_injector_should_fail(&inj, FAULT_POINT_COUNT), "invalid point");
  expect_u64_eq(fault_injector_calls(&inj, FAULT_POINT_COUNT), 0, "invalid: no counter");
  expect_u64_eq(fail_mask(&inj, FAULT_SEGMENT_SPACE, 5), 0, "nothing was armed");
}

TEST(test_null_injector) {
  expect_false(fault_injector_should_fail(NULL, FAULT_PAGE_TABLE_PAGE), "NULL never fails");
  expect_false(fault_injector_arm(NULL, FAULT_PAGE_TABLE_PAGE, 1, 0), "arm NULL");
  expect_false(fault_injector_armed(NULL, FAULT_PAGE_TABLE_PAGE), "armed NULL");
  expect_u64_eq(fault_injector_calls(NULL, FAULT_PAGE_TABLE_PAGE), 0, "calls NULL");
  expect_u64_eq(fault_injector_failures(NULL, FAULT_PAGE_TABLE_PAGE), 0, "failures NULL");
  fault_injector_disarm(NULL, FAULT_PAGE_TABLE_PAGE);
  fault_injector_disarm_all(NULL);
  fault_injector_init(NULL);
}

/* What test_observer's observer saw. */
struct observed {
  unsigned calls;
  enum fault_point last;
  uint64_t failures_then; /* the point's failure counter when the observer ran */
  fault_injector *inj;
};

static void observe(void *ctx, enum fault_point point) {
  struct observed *o = ctx;
  o->calls++;
  o->last = point;
  o->failures_then = fault_injector_failures(o->inj, point);
}

TEST(test_observer) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  struct observed seen = {.inj = &inj};
  fault_injector_observe(&inj, observe, &seen);
  fault_injector_arm(&inj, FAULT_DRIVER_OBJECT, 2, 2);
  expect_u64_eq(fail_mask(&inj, FAULT_DRIVER_OBJECT, 5), 0x6, "calls 2 and 3 fail");
  expect_u64_eq(seen.calls, 2, "the observer sees each injected failure, not the other calls");
  expect_u64_eq(seen.last, FAULT_DRIVER_OBJECT, "and its point");
  expect_u64_eq(seen.failures_then, 2, "after the failure was counted");
  fail_mask(&inj, FAULT_PAGE_TABLE_PAGE, 3);
  expect_u64_eq(seen.calls, 2, "a disarmed point reports nothing");

  fault_injector_observe(&inj, NULL, NULL);
  fault_injector_arm(&inj, FAULT_DRIVER_OBJECT, 1, 0);
  expect_u64_eq(fail_mask(&inj, FAULT_DRIVER_OBJECT, 1), 0x1, "still fails without an observer");
  expect_u64_eq(seen.calls, 2, "a removed observer is not called");

  fault_injector_observe(&inj, observe, &seen);
  fault_injector_init(&inj);
  fault_injector_arm(&inj, FAULT_DRIVER_OBJECT, 1, 0);
  expect_u64_eq(fail_mask(&inj, FAULT_DRIVER_OBJECT, 1), 0x1, "fails after init");
  expect_u64_eq(seen.calls, 2, "init removes the observer");
  fault_injector_observe(NULL, observe, &seen); /* a NULL injector: nothing happens */
}

TEST(test_names_round_trip) {
  static const struct {
    enum fault_point point;
    uint32_t id;
    const char *name;
  } table[] = {
      {FAULT_SEGMENT_SPACE, 0, "segment_space"},
      {FAULT_PAGE_TABLE_PAGE, 1, "page_table_page"},
      {FAULT_DRIVER_OBJECT, 2, "driver_object"},
      {FAULT_PRIVATE_DATA_BUFFER, 3, "private_data_buffer"},
      {FAULT_DEVICE_REMOVED, 4, "device_removed"},
      {FAULT_HOST_ALLOCATION, 5, "host_allocation"},
      {FAULT_CREATE_NULL_ALLOCATION, 6, "create_null_allocation"},
      {FAULT_CREATE_UNALIGNED_SIZE, 7, "create_unaligned_size"},
      {FAULT_CREATE_BAD_ALIGNMENT, 8, "create_bad_alignment"},
      {FAULT_CREATE_UNDESCRIBED_SEGMENT, 9, "create_undescribed_segment"},
      {FAULT_OPEN_NULL_BINDING, 10, "open_null_binding"},
      {FAULT_CREATE_DEVICE_NULL, 11, "create_device_null"},
      {FAULT_CREATE_SHORT_PITCH, 12, "create_short_pitch"},
      {FAULT_CREATE_EVICTION_NOT_APERTURE, 13, "create_eviction_not_aperture"},
      {FAULT_CREATE_ZERO_PRIORITY, 14, "create_zero_priority"},
      {FAULT_CREATE_CACHED_NOT_CPU_VISIBLE, 15, "create_cached_not_cpu_visible"},
      {FAULT_CREATE_PREFERRED_RESERVED, 16, "create_preferred_reserved"},
      {FAULT_CREATE_PREFERRED_UNSUPPORTED, 17, "create_preferred_unsupported"},
  };
  _Static_assert(sizeof table / sizeof table[0] == FAULT_POINT_COUNT, "every point listed");
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    const char *name = fault_injector_point_name(table[i].point);
    assert_true(name != NULL, "point %u has a name", table[i].id);
    expect_true(strcmp(name, table[i].name) == 0, "stable name of %u: %s", table[i].id, name);
    expect_u64_eq((uint64_t)table[i].point, table[i].id, "stable id of %s", table[i].name);
    enum fault_point parsed = FAULT_POINT_COUNT;
    expect_true(fault_injector_point_from_name(name, &parsed), "parse %s", name);
    expect_u64_eq(parsed, table[i].point, "round trip of %s", name);
    parsed = FAULT_POINT_COUNT;
    expect_true(fault_injector_point_from_id(table[i].id, &parsed), "id %u", table[i].id);
    expect_u64_eq(parsed, table[i].point, "id round trip %u", table[i].id);
  }
}

TEST(test_unknown_name) {
  enum fault_point p = FAULT_DEVICE_REMOVED;
  expect_false(fault_injector_point_from_name("no_such_point", &p), "unknown name");
  expect_false(fault_injector_point_from_name("", &p), "empty name");
  expect_false(fault_injector_point_from_name("Segment_Space", &p), "case-sensitive");
  expect_false(fault_injector_point_from_name("segment_space ", &p), "trailing space");
  expect_false(fault_injector_point_from_name(NULL, &p), "NULL name");
  expect_u64_eq(p, FAULT_DEVICE_REMOVED, "out not written on failure");
  expect_false(fault_injector_point_from_id(FAULT_POINT_COUNT, &p), "id out of range");
  expect_false(fault_injector_point_from_id(UINT32_MAX, &p), "huge id");
  expect_true(fault_injector_point_name(FAULT_POINT_COUNT) == NULL, "no name for COUNT");
}

TEST(test_wrong_answer_points) {
  for (int p = 0; p < FAULT_POINT_COUNT; p++)
    expect_true(fault_point_is_wrong_answer((enum fault_point)p) == (p >= 6 && p <= 17),
                "point %d is a wrong answer exactly when its id is 6-17", p);
  expect_false(fault_point_is_wrong_answer(FAULT_POINT_COUNT), "COUNT is no point");
}

/* ---- Concurrency ---------------------------------------------------------------------------- */

#define CONC_THREADS 4
#define CONC_CALLS 50000

struct conc_arg {
  fault_injector *inj;
  pthread_barrier_t *start;
  uint64_t failed_window;  /* failures on FAULT_PAGE_TABLE_PAGE (windowed) */
  uint64_t failed_forever; /* failures on FAULT_DRIVER_OBJECT (every call) */
};

static void *conc_thread(void *p) {
  struct conc_arg *arg = p;
  pthread_barrier_wait(arg->start);
  for (int i = 0; i < CONC_CALLS; i++) {
    if (fault_injector_should_fail(arg->inj, FAULT_PAGE_TABLE_PAGE)) arg->failed_window++;
    if (fault_injector_should_fail(arg->inj, FAULT_DRIVER_OBJECT)) arg->failed_forever++;
    (void)fault_injector_should_fail(arg->inj, FAULT_SEGMENT_SPACE);
  }
  return NULL;
}

TEST(test_concurrent_counts_exact) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  fault_injector_arm(&inj, FAULT_PAGE_TABLE_PAGE, 1000, 7777);
  fault_injector_arm(&inj, FAULT_DRIVER_OBJECT, 1, FAULT_REPEAT_FOREVER);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, CONC_THREADS + 1);
  pthread_t threads[CONC_THREADS];
  struct conc_arg args[CONC_THREADS];
  for (int t = 0; t < CONC_THREADS; t++) {
    args[t] = (struct conc_arg){.inj = &inj, .start = &start};
    assert_true(pthread_create(&threads[t], NULL, conc_thread, &args[t]) == 0, "thread %d", t);
  }
  pthread_barrier_wait(&start);
  /* Arm and disarm an unrelated point meanwhile: readers must retry, never miscount. */
  for (int i = 0; i < 2000; i++) {
    fault_injector_arm(&inj, FAULT_SEGMENT_SPACE, 5, 3);
    fault_injector_disarm(&inj, FAULT_SEGMENT_SPACE);
  }
  uint64_t window = 0, forever = 0;
  for (int t = 0; t < CONC_THREADS; t++) {
    pthread_join(threads[t], NULL);
    window += args[t].failed_window;
    forever += args[t].failed_forever;
    expect_u64_eq(args[t].failed_forever, CONC_CALLS, "thread %d: every call failed", t);
  }
  pthread_barrier_destroy(&start);
  expect_u64_eq(window, 7777, "exactly the armed window failed across threads");
  expect_u64_eq(fault_injector_failures(&inj, FAULT_PAGE_TABLE_PAGE), 7777, "failure counter");
  expect_u64_eq(fault_injector_calls(&inj, FAULT_PAGE_TABLE_PAGE),
                (uint64_t)CONC_THREADS * CONC_CALLS, "call counter");
  expect_u64_eq(forever, (uint64_t)CONC_THREADS * CONC_CALLS, "every-call point");
  expect_u64_eq(fault_injector_calls(&inj, FAULT_SEGMENT_SPACE),
                (uint64_t)CONC_THREADS * CONC_CALLS, "third point's calls");
}

RUN_TESTS(T(test_disarmed_never_fails), T(test_nth_fails_once), T(test_nth_counts_from_arm_time),
          T(test_repeat), T(test_every_call_after), T(test_points_are_independent),
          T(test_invalid_arguments), T(test_null_injector), T(test_observer), T(test_names_round_trip),
          T(test_unknown_name), T(test_wrong_answer_points), T(test_concurrent_counts_exact))
