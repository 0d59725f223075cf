/*
 * schedules_input_test.c — the schedules target's input (schedules_input.h): version-1 inputs
 * decode as they always did, version 2 (preemptions) decodes, encodes and parses back, bad
 * text is refused with a message, the schedule mutator keeps inputs valid, leaves the program
 * alone and takes small steps, and fzs_mutate splits its work between the schedule, the program
 * and libFuzzer's bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/fuzz/input.h"
#include "fuzz/targets/schedules_input.h"

static const char text_v2[] =
    "# a comment line first\n"
    "schedule(threads=3, fork=2, preempt=[t0@3->t1, t2@256->t0])\n"
    "v1 = create_device()\n"
    "v2 = create_resource(dev=v1, n=2, size=4096, placement=any, shared=1)\n"
    "v3 = destroy_resource(dev=v1, resource=v2, flags=0)\n"
    "v4 = query(allocation=v2.a1)\n";

static fzs_input a, b;
static uint8_t bytes[1u << 16], again[1u << 16];

static void parse_or_die(const char *text, fzs_input *out) {
  char err[512];
  if (!fzs_parse(text, out, err, sizeof err)) {
    fprintf(stderr, "test input does not parse: %s\n", err);
    abort();
  }
}

TEST(test_version_1_decodes_as_before) {
  /* threads byte 4 -> 2 + 4 % 3 = 3; fork 5; two choices; then an empty program. */
  static const uint8_t v1[] = {4, 5, 2, 7, 3};
  expect_true(fzs_decode(v1, sizeof v1, &a), "a version-1 input");
  expect_u64_eq(a.version, 1, "version");
  expect_u64_eq(a.threads, 3, "threads");
  expect_u64_eq(a.fork, 5, "fork");
  expect_u64_eq(a.choice_count, 2, "choices");
  expect_u64_eq(a.choices[0], 7, "choice 0");
  expect_u64_eq(a.choices[1], 3, "choice 1");
  expect_u64_eq(a.preemption_count, 0, "no preemptions in version 1");
  /* A magic with another version byte is a version-1 input too ('A' = 65 -> 2 + 65 % 3 = 4). */
  static const uint8_t other[] = {'A', 'L', 'S', 'C', 3, 0};
  expect_true(fzs_decode(other, sizeof other, &a), "magic with version 3");
  expect_u64_eq(a.version, 1, "version");
  expect_u64_eq(a.threads, 4, "threads");
  expect_u64_eq(a.fork, 'L', "fork");
  expect_u64_eq(a.choice_count, 'S', "choices");
}

TEST(test_version_2_decodes_preemptions) {
  static const uint8_t v2[] = {'A', 'L', 'S', 'C', 2, 1, 4, 2, 0, 2, 1, 5, 255, 7};
  expect_true(fzs_decode(v2, sizeof v2, &a), "a version-2 input");
  expect_u64_eq(a.version, 2, "version");
  expect_u64_eq(a.threads, 3, "threads");
  expect_u64_eq(a.fork, 4, "fork");
  expect_u64_eq(a.preemption_count, 2, "preemptions");
  expect_u64_eq(a.preemptions[0].thread, 0, "thread");
  expect_u64_eq(a.preemptions[0].after, 3, "after = byte + 1");
  expect_u64_eq(a.preemptions[0].to, 1, "to");
  expect_u64_eq(a.preemptions[1].thread, 2, "thread 5 %% 3");
  expect_u64_eq(a.preemptions[1].after, 256, "after 255 + 1");
  expect_u64_eq(a.preemptions[1].to, 1, "to 7 %% 3");
  /* A count above the maximum reads the maximum. */
  uint8_t many[5 + 3 + 3 * 40];
  memset(many, 1, sizeof many);
  memcpy(many, "ALSC\x02\x00\x00\xff", 8);
  expect_true(fzs_decode(many, sizeof many, &a), "many preemptions");
  expect_u64_eq(a.preemption_count, FZS_MAX_PREEMPTIONS, "clamped");
}

TEST(test_round_trips) {
  parse_or_die(text_v2, &a);
  expect_u64_eq(a.version, 2, "version");
  expect_u64_eq(a.preemption_count, 2, "preemptions");
  expect_u64_eq(a.preemptions[1].thread, 2, "thread");
  expect_u64_eq(a.preemptions[1].after, 256, "after");
  size_t n = fzs_encode(&a, bytes, sizeof bytes);
  expect_true(n > 0, "encodes");
  expect_true(fzs_decode(bytes, n, &b), "decodes");
  expect_u64_eq(fzs_encode(&b, again, sizeof again), n, "same size again");
  expect_true(memcmp(bytes, again, n) == 0, "same bytes again");
  char line[512];
  fzs_format_schedule(&b, line, sizeof line);
  expect_true(strcmp(line, "schedule(threads=3, fork=2, preempt=[t0@3->t1, t2@256->t0])") == 0, "line: %s", line);
  /* The length alone (no buffer), and a cut buffer: snprintf's contract. */
  expect_u64_eq(fzs_format_schedule(&b, NULL, 0), strlen(line), "length with no buffer");
  char cut[10];
  expect_u64_eq(fzs_format_schedule(&b, cut, sizeof cut), strlen(line), "length when cut");
  expect_true(strcmp(cut, "schedule(") == 0, "cut line: %s", cut);
  /* Version 1 keeps its bytes: threads-2, fork, count, choices, program. */
  parse_or_die("schedule(threads=2, fork=1, choices=[0, 1, 1])\nv1 = create_device()\n", &a);
  n = fzs_encode(&a, bytes, sizeof bytes);
  static const uint8_t head[] = {0, 1, 3, 0, 1, 1};
  expect_true(n > sizeof head && memcmp(bytes, head, sizeof head) == 0, "version-1 head");
  fzs_format_schedule(&a, line, sizeof line);
  expect_true(strcmp(line, "schedule(threads=2, fork=1, choices=[0, 1, 1])") == 0, "line: %s", line);
  parse_or_die("schedule(threads=2, fork=1, preempt=[])\nv1 = create_device()\n", &a);
  expect_u64_eq(a.version, 2, "an empty preempt list is version 2");
  expect_u64_eq(a.preemption_count, 0, "none");
}

static void expect_refused(const char *schedule, const char *needle) {
  char text[512], err[512];
  snprintf(text, sizeof text, "%s\nv1 = create_device()\n", schedule);
  bool ok = fzs_parse(text, &a, err, sizeof err);
  expect_false(ok, "%s was accepted", schedule);
  expect_true(ok || strstr(err, needle) != NULL, "%s: message '%s' lacks '%s'", schedule, err, needle);
}

TEST(test_bad_preemptions_are_refused) {
  expect_refused("schedule(threads=2, fork=1, preempt=[t2@1->t0])", "threads t0 to t1");
  expect_refused("schedule(threads=2, fork=1, preempt=[t0@1->t2])", "threads t0 to t1");
  expect_refused("schedule(threads=2, fork=1, preempt=[t0@0->t1])", "from 1 to 256");
  expect_refused("schedule(threads=2, fork=1, preempt=[t0@257->t1])", "from 1 to 256");
  expect_refused("schedule(threads=2, fork=1, preempt=[t0@3-t1])", "'->'");
  expect_refused("schedule(threads=2, fork=1, preempt=[t0@3->t1 t1@2->t0])", "expected ',' or ']'");
  expect_refused("schedule(threads=2, fork=1, preempts=[])", "'preempt=[...]'");
}

static bool same_program(const fzs_input *x, const fzs_input *y) {
  static uint8_t px[1u << 15], py[1u << 15];
  size_t nx = fz_encode(&x->program, px, sizeof px), ny = fz_encode(&y->program, py, sizeof py);
  return nx == ny && nx > 0 && memcmp(px, py, nx) == 0;
}

static bool same_preemption(const fz_preemption *x, const fz_preemption *y) {
  return x->thread == y->thread && x->after == y->after && x->to == y->to;
}

TEST(test_mutations_stay_valid_and_small) {
  uint32_t rng = 12345;
  bool moved_one_point = false, converted = false, added = false, dropped = false;
  for (uint32_t round = 0; round < 4000; round++) {
    /* Three preemptions, two of them at one point: dropping the first must not swap the others. */
    static const char three[] = "schedule(threads=3, fork=1, preempt=[t0@2->t1, t1@4->t2, t1@4->t0])\n"
                                "v1 = create_device()\n";
    parse_or_die(round % 3 == 1   ? text_v2
                 : round % 3 == 2 ? three
                                  : "schedule(threads=2, fork=1, choices=[0, 0, 1])\nv1 = create_device()\n",
                 &a);
    b = a;
    fzs_mutate_schedule(&b, &rng);
    expect_true(fzs_encode(&b, bytes, sizeof bytes) > 0, "round %u: the mutant does not encode", round);
    expect_true(same_program(&a, &b), "round %u: the program changed", round);
    if (a.version == 1 && b.version == 2) converted = converted || b.preemption_count == 1;
    if (a.version == 2 && b.version == 2) {
      added = added || b.preemption_count == a.preemption_count + 1;
      if (b.preemption_count + 1 == a.preemption_count) {
        dropped = true;
        /* The rest keep their order: b is a with one preemption taken out. */
        uint32_t skip = 0;
        while (skip < b.preemption_count && same_preemption(&a.preemptions[skip], &b.preemptions[skip])) skip++;
        for (uint32_t i = skip; i < b.preemption_count; i++)
          expect_true(same_preemption(&a.preemptions[i + 1], &b.preemptions[i]),
                      "round %u: dropping preemption %u reordered the others (at %u)", round, skip, i);
      }
      if (b.preemption_count == a.preemption_count) {
        uint32_t differ = 0, step = 0;
        for (uint32_t i = 0; i < a.preemption_count; i++) {
          const fz_preemption *x = &a.preemptions[i], *y = &b.preemptions[i];
          if (x->thread != y->thread || x->to != y->to || x->after != y->after) differ++;
          if (x->thread == y->thread && x->to == y->to && x->after != y->after)
            step = x->after > y->after ? x->after - y->after : y->after - x->after;
        }
        expect_true(differ <= 1, "round %u: %u preemptions changed at once", round, differ);
        moved_one_point = moved_one_point || (differ == 1 && step >= 1 && step <= 3);
      }
    }
  }
  expect_true(moved_one_point, "no mutation moved one switch point by a few points");
  expect_true(converted, "no version-1 input became a version-2 input with one preemption");
  expect_true(added, "no mutation added a preemption");
  expect_true(dropped, "no mutation dropped a preemption");
}

/* A byte mutator that marks the input it was given, so a test sees which mutations were left to
 * libFuzzer's bytes (fz_mutate_program also asks it to change single values: those are left
 * alone and not counted). */
static unsigned byte_mutations;
static size_t mark_bytes(uint8_t *data, size_t size, size_t max_size) {
  if (data != again) return size;
  byte_mutations++;
  if (size < max_size) data[size++] = 0xA5;
  return size;
}

static bool same_schedule(const fzs_input *x, const fzs_input *y) {
  if (x->version != y->version || x->threads != y->threads || x->fork != y->fork ||
      x->choice_count != y->choice_count || x->preemption_count != y->preemption_count)
    return false;
  for (uint32_t i = 0; i < x->preemption_count; i++)
    if (!same_preemption(&x->preemptions[i], &y->preemptions[i])) return false;
  return memcmp(x->choices, y->choices, x->choice_count) == 0;
}

/* fzs_mutate: half of the seeds go to the byte mutator; of the others, some change only the
 * schedule and some only the program, and the program mutations reach fault requests (a
 * concurrent program's faults are armed). Without a byte mutator every mutation is structural.
 * Every mutant decodes and fits. */
TEST(test_fzs_mutate_splits_schedule_program_and_bytes) {
  size_t n0 = 0;
  parse_or_die(text_v2, &a);
  n0 = fzs_encode(&a, bytes, sizeof bytes);
  assert_true(n0 > 0, "the input encodes");
  unsigned schedule_only = 0, program_only = 0, faults_added = 0, structural = 0;
  byte_mutations = 0;
  for (unsigned seed = 0; seed < 2000; seed++) {
    memcpy(again, bytes, n0);
    size_t n = fzs_mutate(again, n0, sizeof again, seed, mark_bytes);
    assert_true(n > 0 && n <= sizeof again, "seed %u: size %zu", seed, n);
    if ((seed & 1u) == 0) {
      expect_true(n == n0 + 1 && again[n0] == 0xA5, "seed %u: even seeds are the byte mutator's", seed);
      continue;
    }
    expect_true(fzs_decode(again, n, &b), "seed %u: the mutant decodes", seed);
    bool same_s = same_schedule(&a, &b), same_p = same_program(&a, &b);
    expect_false(same_s && same_p, "seed %u: nothing changed", seed);
    expect_false(!same_s && !same_p, "seed %u: the schedule and the program changed at once", seed);
    if (same_s) program_only++;
    if (same_p) schedule_only++;
    if (b.program.fault_count > a.program.fault_count) faults_added++;
  }
  expect_u64_eq(byte_mutations, 1000, "the even seeds went to the byte mutator");
  expect_u64_gt(schedule_only, 300, "schedule mutations");
  expect_u64_gt(program_only, 300, "program mutations");
  expect_u64_gt(faults_added, 0, "no program mutation added a fault request");
  byte_mutations = 0;
  for (unsigned seed = 0; seed < 200; seed++) {
    memcpy(again, bytes, n0);
    size_t n = fzs_mutate(again, n0, sizeof again, seed, NULL);
    expect_true(fzs_decode(again, n, &b), "seed %u: the mutant decodes", seed);
    structural += !same_schedule(&a, &b) || !same_program(&a, &b);
  }
  expect_u64_eq(structural, 200, "without a byte mutator every mutation is structural");
  expect_u64_eq(byte_mutations, 0, "and the byte mutator is not called");
}

RUN_TESTS(T(test_version_1_decodes_as_before), T(test_version_2_decodes_preemptions), T(test_round_trips),
          T(test_bad_preemptions_are_refused), T(test_mutations_stay_valid_and_small),
          T(test_fzs_mutate_splits_schedule_program_and_bytes))
