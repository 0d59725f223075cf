/*
 * concurrent_test.c — tests of the deterministic scheduler (scheduler.h) and of
 * fz_execute_concurrent (execute.h): the same choices replay the same interleaving, other
 * choices give other interleavings, a correct port passes, and the linearizability check
 * notices a port whose statuses no order explains.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/execute.h"
#include "alloclab/fuzz/scheduler.h"
#include "alloclab/schedule.h"
#include "al_test.h"
#include "fuzz/common/text.h"

static const char program_text[] =
    "v1 = create_device()\n"
    "v2 = create_device()\n"
    "v3 = create_resource(dev=v1, n=4, size=4096, placement=any, shared=1)\n"
    "v4 = open_resource(dev=v2, resource=v3)\n"
    "v5 = destroy_resource(dev=v1, resource=v3, flags=0)\n"
    "v6 = destroy_resource(dev=v2, resource=v3, flags=0)\n"
    "v7 = query(allocation=v3.a1)\n"
    "v8 = query(allocation=v3.a3)\n";

static fz_program program;

static int run(const uint8_t *choices, size_t n, fz_exec_report *rep, const fz_port_ops *port) {
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  o.port = port;
  fz_concurrency cc = {.fork = 4, .threads = 2, .choices = choices, .choice_count = n};
  return fz_execute_concurrent(&program, &cc, &o, rep);
}

static void parse(void) {
  char err[256];
  if (!fz_parse_program(program_text, &program, err, sizeof err)) {
    fprintf(stderr, "test program does not parse: %s\n", err);
    abort();
  }
}

TEST(test_same_choices_same_run) {
  parse();
  static const uint8_t choices[] = {1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1};
  static fz_exec_report a, b;
  expect_u64_eq(run(choices, sizeof choices, &a, NULL), FZ_EXEC_OK, "%s", a.message);
  expect_u64_eq(run(choices, sizeof choices, &b, NULL), FZ_EXEC_OK, "%s", b.message);
  for (uint32_t i = 0; i < program.call_count; i++)
    expect_u64_eq((uint64_t)a.status[i], (uint64_t)b.status[i], "call %u", i + 1);
}

TEST(test_choices_change_the_interleaving) {
  parse();
  /* Thread 0 destroys v1's hold then queries; thread 1 destroys v2's hold then queries. Run
   * thread 0 to the end first: its query sees the resource (v2 still holds it). Run thread 1
   * first and switch to thread 0 only after it let go: thread 0's destroy is the last and its
   * query fails. Some choice sequence must make the two queries disagree with the first run. */
  static fz_exec_report first, other;
  expect_u64_eq(run(NULL, 0, &first, NULL), FZ_EXEC_OK, "%s", first.message);
  expect_status(first.status[6], STATUS_SUCCESS, "v7 without choices (thread 0 runs to the end)");
  bool differs = false;
  for (uint32_t seed = 0; seed < 64 && !differs; seed++) {
    uint8_t choices[32];
    for (uint32_t k = 0; k < sizeof choices; k++) choices[k] = (uint8_t)((seed >> (k % 6)) & 1u);
    int rc = run(choices, sizeof choices, &other, NULL);
    expect_u64_eq(rc, FZ_EXEC_OK, "seed %u: %s", seed, other.message);
    differs = other.status[6] != first.status[6] || other.status[7] != first.status[7];
  }
  expect_true(differs, "no choice sequence changed the outcome of the racing queries");
}

/* A port whose query of a destroyed allocation still succeeds (a lookup that races a destroy
 * and wins even after it): no order explains that. */
static NTSTATUS query_always_succeeds(al_adapter *adapter, al_handle allocation, al_allocation_info *out) {
  NTSTATUS st = fz_port_alloclab.allocation_query(adapter, allocation, out);
  return st == STATUS_INVALID_HANDLE && out != NULL ? STATUS_SUCCESS : st;
}

TEST(test_linearizability_check_catches_a_broken_port) {
  parse();
  static fz_port_ops broken;
  broken = fz_port_alloclab;
  broken.allocation_query = query_always_succeeds;
  static fz_exec_report rep;
  /* Thread 1 runs first to the end (choice 1 at the first point, then no more choices): both
   * holds are gone before thread 0's query. */
  static const uint8_t choices[] = {1};
  int rc = run(choices, sizeof choices, &rep, &broken);
  expect_u64_eq(rc, FZ_EXEC_MISMATCH, "the broken query went unnoticed");
  expect_true(strstr(rep.message, "no order of the") != NULL, "message: %s", rep.message);
}

/* ---- Preemptive mode (fz_scheduler_run_preempting) ------------------------------------------- */

/* The scheduler's hooks as the port calls them: the test's logical threads take locks of their
 * own through the installed scheduler (core/src/schedule_points.h's port_lock/port_unlock), so
 * each step is two schedule points (before the lock, after the unlock) and nothing else is. */
extern _Atomic(const al_scheduler *) port_scheduler;

#define STEPS 4u
#define expect_str_eq(got, want, what) expect_true(strcmp((got), (want)) == 0, "%s: got '%s', want '%s'", what, got, want)
typedef struct step_trace {
  pthread_mutex_t locks[FZ_SCHED_MAX_THREADS];
  char events[64][8]; /* "t1s2": thread 1 took its lock for step 2 */
  uint32_t count;
} step_trace;

static void stepping_thread(void *arg, uint32_t index) {
  step_trace *t = arg;
  for (uint32_t step = 0; step < STEPS; step++) {
    const al_scheduler *s = atomic_load(&port_scheduler);
    s->lock(s->ctx, &t->locks[index], true);
    /* Each event is written by the thread fz_scheduler_running_thread() names (a mismatch
     * shows as "?"), so every expected trace below checks it too. */
    bool me = fz_scheduler_running_thread() == index;
    snprintf(t->events[t->count++], sizeof t->events[0], "t%cs%u", me ? (char)('0' + index) : '?', step);
    pthread_mutex_unlock(&t->locks[index]);
    s->unlocked(s->ctx, &t->locks[index], true);
  }
}

/* Runs @threads stepping threads under @pre; writes the events joined by spaces into @out. */
static void run_steps(uint32_t threads, const fz_preemption *pre, size_t n, char *out, size_t cap,
                      fz_schedule_report *report) {
  static step_trace t;
  memset(&t, 0, sizeof t);
  for (uint32_t i = 0; i < FZ_SCHED_MAX_THREADS; i++) pthread_mutex_init(&t.locks[i], NULL);
  int rc = fz_scheduler_run_preempting(threads, stepping_thread, &t, pre, n, report);
  expect_u64_eq(rc, FZ_SCHED_OK, "the stepping threads deadlocked");
  size_t at = 0;
  out[0] = '\0';
  for (uint32_t i = 0; i < t.count && at < cap; i++)
    at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? " " : "", t.events[i]);
  for (uint32_t i = 0; i < FZ_SCHED_MAX_THREADS; i++) pthread_mutex_destroy(&t.locks[i]);
}

TEST(test_no_preemption_runs_threads_one_after_another) {
  char got[512];
  fz_schedule_report r;
  expect_u64_eq(fz_scheduler_running_thread(), FZ_SCHED_NO_THREAD, "before a run");
  run_steps(2, NULL, 0, got, sizeof got, &r);
  expect_u64_eq(fz_scheduler_running_thread(), FZ_SCHED_NO_THREAD, "after a run");
  expect_str_eq(got, "t0s0 t0s1 t0s2 t0s3 t1s0 t1s1 t1s2 t1s3", "no preemption");
  expect_u64_eq(r.switches, 0, "switches without preemptions");
}

TEST(test_preemption_switches_at_the_threads_own_point) {
  char got[512];
  fz_schedule_report r;
  /* Thread 0's points: 1 before step 0's lock, 2 after its unlock, 3 before step 1's lock. */
  static const fz_preemption at3[] = {{.thread = 0, .after = 3, .to = 1}};
  run_steps(2, at3, 1, got, sizeof got, &r);
  expect_str_eq(got, "t0s0 t1s0 t1s1 t1s2 t1s3 t0s1 t0s2 t0s3", "t0 preempted before step 1");
  expect_u64_eq(r.preemptions, 1, "preemptions reached");
  static const fz_preemption at2[] = {{.thread = 0, .after = 2, .to = 1}};
  run_steps(2, at2, 1, got, sizeof got, &r);
  expect_str_eq(got, "t0s0 t1s0 t1s1 t1s2 t1s3 t0s1 t0s2 t0s3", "t0 preempted after step 0's unlock");
  static const fz_preemption at1[] = {{.thread = 0, .after = 1, .to = 1}};
  run_steps(2, at1, 1, got, sizeof got, &r);
  expect_str_eq(got, "t1s0 t1s1 t1s2 t1s3 t0s0 t0s1 t0s2 t0s3", "t0 preempted at its first point");
  static const fz_preemption at0[] = {{.thread = 0, .after = 0, .to = 1}};
  run_steps(2, at0, 1, got, sizeof got, &r);
  expect_str_eq(got, "t0s0 t0s1 t0s2 t0s3 t1s0 t1s1 t1s2 t1s3", "after=0 never matches");
}

TEST(test_moving_one_preemption_leaves_the_others_in_place) {
  /* Thread 1's preemption names its own second point (after step 0): wherever thread 0's
   * preemption moves, thread 1 runs exactly one step before it hands back. */
  char got[512];
  fz_schedule_report r;
  static const fz_preemption early[] = {{.thread = 0, .after = 3, .to = 1}, {.thread = 1, .after = 2, .to = 0}};
  run_steps(2, early, 2, got, sizeof got, &r);
  expect_str_eq(got, "t0s0 t1s0 t0s1 t0s2 t0s3 t1s1 t1s2 t1s3", "t0 preempted before step 1");
  static const fz_preemption late[] = {{.thread = 0, .after = 7, .to = 1}, {.thread = 1, .after = 2, .to = 0}};
  run_steps(2, late, 2, got, sizeof got, &r);
  expect_str_eq(got, "t0s0 t0s1 t0s2 t1s0 t0s3 t1s1 t1s2 t1s3", "t0 preempted before step 3");
  expect_u64_eq(r.preemptions, 2, "preemptions reached");
}

TEST(test_preemption_target_that_cannot_run_falls_to_the_next_thread) {
  char got[512];
  fz_schedule_report r;
  /* To itself, or to a thread out of range: the next runnable thread after it (thread 1). */
  static const fz_preemption self[] = {{.thread = 0, .after = 1, .to = 0}};
  run_steps(3, self, 1, got, sizeof got, &r);
  expect_str_eq(got,
                "t1s0 t1s1 t1s2 t1s3 t0s0 t0s1 t0s2 t0s3 t2s0 t2s1 t2s2 t2s3", "to itself");
  static const fz_preemption wild[] = {{.thread = 2, .after = 1, .to = 9}, {.thread = 0, .after = 1, .to = 2}};
  run_steps(3, wild, 2, got, sizeof got, &r);
  /* Thread 0 hands to thread 2 at once; thread 2's target is out of range: back to thread 0
   * (the next after 2), not thread 2 going on. */
  expect_str_eq(got,
                "t0s0 t0s1 t0s2 t0s3 t1s0 t1s1 t1s2 t1s3 t2s0 t2s1 t2s2 t2s3", "out of range");
  expect_u64_eq(r.preemptions, 2, "preemptions reached");
  static const fz_preemption stay[] = {{.thread = 0, .after = 1, .to = 2}};
  run_steps(3, stay, 1, got, sizeof got, &r);
  expect_str_eq(got,
                "t2s0 t2s1 t2s2 t2s3 t0s0 t0s1 t0s2 t0s3 t1s0 t1s1 t1s2 t1s3", "thread 2 alone");
}

TEST(test_one_preemption_finds_the_racing_outcome) {
  /* Without preemptions thread 0 (v5 destroy by v1, v7 query) runs before thread 1 (v6, the
   * last destroy): v7 succeeds. One preemption of thread 0 between its two calls lets v6 run
   * first: v7 fails. Some k in thread 0's first points must do it. */
  parse();
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  static fz_exec_report rep;
  fz_concurrency cc = {.fork = 4, .threads = 2, .preemptive = true};
  expect_u64_eq(fz_execute_concurrent(&program, &cc, &o, &rep), FZ_EXEC_OK, "%s", rep.message);
  expect_status(rep.status[6], STATUS_SUCCESS, "v7 without preemptions");
  bool raced = false;
  for (uint32_t k = 1; k <= 40 && !raced; k++) {
    fz_preemption pre = {.thread = 0, .after = k, .to = 1};
    cc.preemptions = &pre;
    cc.preemption_count = 1;
    expect_u64_eq(fz_execute_concurrent(&program, &cc, &o, &rep), FZ_EXEC_OK, "k=%u: %s", k, rep.message);
    raced = rep.status[6] == STATUS_INVALID_HANDLE;
  }
  expect_true(raced, "no single preemption of thread 0 let thread 1's last destroy run first");
}

/* Parses @text into @prog and runs its calls from @fork on 2 logical threads, PCT-style with no
 * preemption (each thread runs unpreempted in turn), into @rep; the run must pass the oracle. */
static void run_text_preemptive(const char *text, uint32_t fork, fz_program *prog, fz_exec_report *rep) {
  char err[256];
  assert_true(fz_parse_program(text, prog, err, sizeof err), "parse: %s", err);
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  fz_concurrency cc = {.fork = fork, .threads = 2, .preemptive = true};
  expect_u64_eq(fz_execute_concurrent(prog, &cc, &o, rep), FZ_EXEC_OK, "%s", rep->message);
}

/* A damage op runs before the fork (the adapter is quiescent) and not after it (other logical
 * threads would see the damaged state), and its status says which (program.h "Damage"). */
TEST(test_damage_runs_only_before_the_fork) {
  static const char text[] =
      "v1 = create_device()\n"
      "v2 = damage(kind=handle_table_live_count_off_by_one, pick=0)\n"
      "v3 = create_device()\n"
      "v4 = damage(kind=handle_table_live_count_off_by_one, pick=0)\n"
      "v5 = create_device()\n";
  static fz_program damaging;
  static fz_exec_report rep;
  run_text_preemptive(text, 3, &damaging, &rep);
  expect_status(rep.status[1], STATUS_SUCCESS, "v2, before the fork: caught");
  expect_status(rep.status[3], STATUS_INVALID_PARAMETER, "v4, after the fork: not run");
  expect_status(rep.status[4], STATUS_SUCCESS, "v5 ran concurrently");
}

/* The calls the concurrent part does not make (gpu_run, fence_wait, those past
 * FZ_CONCURRENT_MAX_CALLS) read FZ_STATUS_NOT_RUN, not the zeroed STATUS_SUCCESS, and the
 * printed program says "# not run" where a status would be. */
TEST(test_calls_not_run_say_so) {
  char text[4096];
  size_t used = (size_t)snprintf(text, sizeof text, "v1 = create_device()\nv2 = gpu_run(n=1)\nv3 = fence_wait(fence=0)\n");
  const uint32_t concurrent = FZ_CONCURRENT_MAX_CALLS + 2u; /* creates after the two GPU calls */
  for (uint32_t k = 0; k < concurrent; k++)
    used += (size_t)snprintf(text + used, sizeof text - used, "v%u = create_device()\n", k + 4u);
  assert_true(used < sizeof text, "the program text fits");
  static fz_program prog;
  static fz_exec_report rep;
  run_text_preemptive(text, 1, &prog, &rep);
  expect_status(rep.status[0], STATUS_SUCCESS, "v1, before the fork");
  expect_status(rep.status[1], FZ_STATUS_NOT_RUN, "v2 = gpu_run after the fork");
  expect_status(rep.status[2], FZ_STATUS_NOT_RUN, "v3 = fence_wait after the fork");
  for (uint32_t i = 3; i < prog.call_count; i++) {
    bool ran = i < 3u + FZ_CONCURRENT_MAX_CALLS;
    expect_status(rep.status[i], ran ? STATUS_SUCCESS : FZ_STATUS_NOT_RUN, "v%u (%s)", i + 1,
                  ran ? "ran concurrently" : "past the cap");
  }
  char *printed = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&printed, &len);
  assert_true(out != NULL, "open_memstream");
  fz_print_program(out, &prog, rep.status);
  fclose(out);
  expect_true(strstr(printed, "v2 = gpu_run(n=1)  # not run\n") != NULL, "gpu_run printed as not run:\n%s", printed);
  char last[64];
  snprintf(last, sizeof last, "v%u = create_device()  # not run\n", prog.call_count);
  expect_true(strstr(printed, last) != NULL, "the last call printed as not run:\n%s", printed);
  expect_true(strstr(printed, "v4 = create_device() = STATUS_SUCCESS\n") != NULL, "a concurrent call's status:\n%s",
              printed);
  static fz_program reparsed;
  char err[256];
  expect_true(fz_parse_program(printed, &reparsed, err, sizeof err) && reparsed.call_count == prog.call_count,
              "the printed program parses back: %s", err);
  free(printed);
}

/* Parses @text into @prog; the test stops when it does not parse. */
static void parse_text(const char *text, fz_program *prog) {
  char err[256];
  if (!fz_parse_program(text, prog, err, sizeof err)) {
    fprintf(stderr, "test program does not parse: %s\n", err);
    abort();
  }
}

/* Runs @prog's calls from @fork on 2 logical threads, thread 0 preempted at its own @after-th
 * schedule point for thread 1 (0: no preemption), into @rep. */
static int run_preempted(const fz_program *prog, uint32_t fork, uint32_t after, fz_exec_report *rep) {
  fz_exec_options o;
  fz_exec_options_default(&o);
  o.return_on_mismatch = true;
  fz_preemption pre = {.thread = 0, .after = after, .to = 1};
  fz_concurrency cc = {.fork = fork, .threads = 2, .preemptive = true, .preemptions = &pre,
                       .preemption_count = after ? 1u : 0u};
  return fz_execute_concurrent(prog, &cc, &o, rep);
}

/* A fault request of a concurrent program is armed: the n-th driver object after bring-up
 * fails in whichever concurrent call the schedule lets reach it first, that call fails with
 * STATUS_NO_MEMORY and changes nothing, and the oracle accepts the run. The two devices are
 * driver objects 1 and 2, so the third is the first allocation a concurrent create makes. */
TEST(test_fault_requests_reach_the_concurrent_calls) {
  static const char text[] =
      "fault(point=driver_object, nth=3, repeat=1)\n"
      "v1 = create_device()\n"
      "v2 = create_device()\n"
      "v3 = create_allocations(dev=v1, n=1, size=4096, placement=any)\n"
      "v4 = create_allocations(dev=v2, n=1, size=4096, placement=any)\n";
  static fz_program prog;
  static fz_exec_report rep;
  parse_text(text, &prog);
  expect_u64_eq(run_preempted(&prog, 2, 0, &rep), FZ_EXEC_OK, "thread 0 first: %s", rep.message);
  expect_u64_eq(rep.faults_injected, 1, "one failure injected");
  expect_status(rep.status[2], STATUS_NO_MEMORY, "v3 (thread 0) met the fault");
  expect_status(rep.status[3], STATUS_SUCCESS, "v4 (thread 1) after it");
  /* Thread 0 preempted at its first schedule point: thread 1's create comes first. */
  expect_u64_eq(run_preempted(&prog, 2, 1, &rep), FZ_EXEC_OK, "thread 1 first: %s", rep.message);
  expect_u64_eq(rep.faults_injected, 1, "one failure injected");
  expect_status(rep.status[2], STATUS_SUCCESS, "v3 (thread 0) after it");
  expect_status(rep.status[3], STATUS_NO_MEMORY, "v4 (thread 1) met the fault");
}

/* Each concurrent call is told only of the failures injected while its own logical thread ran,
 * not of every failure between its start and its return. Thread 0's create is preempted at each
 * of its schedule points in turn; where thread 1 then runs its whole create inside thread 0's
 * call and meets the wrong answer, thread 0's create (which succeeds) must still be checked as
 * an unfaulted call: told of thread 1's wrong answer, the model would refuse its success (no
 * create survives a wrong answer). */
TEST(test_failures_belong_to_the_running_thread) {
  static const char text[] =
      "fault(point=create_null_allocation, nth=1, repeat=1)\n"
      "v1 = create_device()\n"
      "v2 = create_allocations(dev=v1, n=1, size=4096, placement=any)\n"
      "v3 = create_allocations(dev=v1, n=1, size=4096, placement=any)\n";
  static fz_program prog;
  static fz_exec_report rep;
  parse_text(text, &prog);
  uint32_t nested = 0;
  for (uint32_t after = 0; after <= 8; after++) {
    expect_u64_eq(run_preempted(&prog, 1, after, &rep), FZ_EXEC_OK, "after=%u: %s", after, rep.message);
    expect_u64_eq(rep.faults_injected, 1, "after=%u: one failure injected", after);
    bool second = rep.status[2] == STATUS_GRAPHICS_DRIVER_MISMATCH;
    expect_status(rep.status[second ? 1 : 2], STATUS_SUCCESS, "after=%u: the other create", after);
    expect_status(rep.status[second ? 2 : 1], STATUS_GRAPHICS_DRIVER_MISMATCH, "after=%u: the wrong answer", after);
    /* Thread 1 runs only while thread 0 is preempted inside its call: meeting the fault, it ran
     * nested in thread 0's call. */
    if (second) nested++;
  }
  expect_u64_gt(nested, 0, "no preemption let thread 1 meet the wrong answer inside thread 0's call");
}

/* An injected bring-up failure ends a concurrent program as it ends fz_execute's: cleanly, with
 * no call run. */
TEST(test_bring_up_failure_ends_a_concurrent_program) {
  static const char text[] =
      "fault(point=host_allocation, nth=1, repeat=0, at=bring_up)\n"
      "v1 = create_device()\n"
      "v2 = create_device()\n"
      "v3 = create_device()\n";
  static fz_program prog;
  static fz_exec_report rep;
  parse_text(text, &prog);
  expect_u64_eq(run_preempted(&prog, 1, 0, &rep), FZ_EXEC_OK, "%s", rep.message);
  expect_true(rep.bring_up_failed, "bring-up failed");
  expect_status(rep.bring_up_status, STATUS_NO_MEMORY, "al_adapter_create's status");
  for (uint32_t i = 0; i < prog.call_count; i++) expect_status(rep.status[i], FZ_STATUS_NOT_RUN, "v%u", i + 1);
}

RUN_TESTS(T(test_same_choices_same_run), T(test_choices_change_the_interleaving),
          T(test_linearizability_check_catches_a_broken_port), T(test_no_preemption_runs_threads_one_after_another),
          T(test_preemption_switches_at_the_threads_own_point),
          T(test_moving_one_preemption_leaves_the_others_in_place),
          T(test_preemption_target_that_cannot_run_falls_to_the_next_thread),
          T(test_one_preemption_finds_the_racing_outcome), T(test_damage_runs_only_before_the_fork),
          T(test_calls_not_run_say_so), T(test_fault_requests_reach_the_concurrent_calls),
          T(test_failures_belong_to_the_running_thread), T(test_bring_up_failure_ends_a_concurrent_program))
