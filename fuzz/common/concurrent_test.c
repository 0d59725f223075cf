/*
 * concurrent_test.c — tests of the deterministic scheduler (scheduler.h) and of
 * fz_execute_concurrent (execute.h): the same choices replay the same interleaving, other
 * choices give other interleavings, a correct port passes, and the linearizability check
 * notices a port whose statuses no order explains.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/execute.h"
#include "alloclab/fuzz/scheduler.h"
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

RUN_TESTS(T(test_same_choices_same_run), T(test_choices_change_the_interleaving),
          T(test_linearizability_check_catches_a_broken_port))
