/*
 * mutator_test.c — the call-level mutator: its output always decodes to a valid program that
 * differs from the input, fits max_size, and is deterministic for a seed.
 */
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/input.h"
#include "alloclab/hw/fault_injection.h"
#include "fuzz/common/mutator.h"
#include "fuzz/common/test_util.h"
#include "fuzz/common/text.h"

static fz_program before, after;
static uint8_t data[FZ_ENCODE_MAX_SIZE];
static uint8_t copy[FZ_ENCODE_MAX_SIZE];

/* A stand-in for LLVMFuzzerMutate: flips or sets a byte, sometimes shrinks. */
static uint64_t bytes_rng = 42;
static size_t flip_bytes(uint8_t *d, size_t size, size_t max_size) {
  (void)max_size;
  if (size == 0) {
    return 0;
  }
  size_t i = fz_test_below(&bytes_rng, (uint32_t)size);
  switch (fz_test_below(&bytes_rng, 3)) {
  case 0:
    d[i] ^= (uint8_t)(1u << fz_test_below(&bytes_rng, 8));
    return size;
  case 1:
    d[i] = (uint8_t)fz_test_next(&bytes_rng);
    return size;
  default:
    return size > 1 ? size - 1u : size;
  }
}

static void check_mutation(const uint8_t *in, size_t size, size_t max_size, unsigned seed,
                           fz_mutate_bytes_fn mb, const char *what) {
  char why[256];
  memcpy(data, in, size);
  bool in_ok = fz_decode(in, size, &before);
  size_t n = fz_mutate(data, size, max_size, seed, mb);
  CHECK(n <= max_size, "%s: %zu bytes > max_size %zu", what, n, max_size);
  CHECK(fz_decode(data, n, &after), "%s: the output does not decode", what);
  CHECK(fz_program_validate(&after, why, sizeof why), "%s: invalid output: %s", what, why);
  if (in_ok) {
    CHECK(!fz_program_equal(&before, &after), "%s: nothing changed\n%s", what,
          fz_test_text(&before));
  }
}

static void test_random_programs(void) {
  uint64_t rng = fz_test_seed() ^ 0xAAAAu;
  static uint8_t in[FZ_ENCODE_MAX_SIZE];
  for (int i = 0; i < 4000 && fz_test_failures == 0; i++) {
    fz_program prog;
    fz_test_random_program(&rng, &prog);
    size_t size = fz_encode(&prog, in, sizeof in);
    char what[64];
    snprintf(what, sizeof what, "program %d", i);
    check_mutation(in, size, sizeof data, (unsigned)fz_test_next(&rng),
                   i % 2 ? flip_bytes : NULL, what);
  }
}

static void test_random_bytes(void) {
  uint64_t rng = fz_test_seed() ^ 0xBBBBu;
  static uint8_t in[1024];
  for (int i = 0; i < 2000 && fz_test_failures == 0; i++) {
    size_t size = fz_test_below(&rng, sizeof in);
    for (size_t j = 0; j < size; j++) {
      in[j] = (uint8_t)fz_test_next(&rng);
    }
    char what[64];
    snprintf(what, sizeof what, "random bytes %d", i);
    check_mutation(in, size, sizeof data, (unsigned)fz_test_next(&rng), flip_bytes, what);
  }
  check_mutation(in, 0, sizeof data, 1, NULL, "empty input");
  static const uint8_t v9[] = {'A', 'L', 'F', 'Z', 9, 1, 2, 3};
  memcpy(data, v9, sizeof v9);
  size_t n = fz_mutate(data, sizeof v9, sizeof data, 7, NULL);
  CHECK(n >= 5 && memcmp(data, FZ_FORMAT_MAGIC, 4) == 0 && data[4] == FZ_FORMAT_VERSION,
        "an unsupported version is replaced by a program of the current version");
}

static void test_max_size(void) {
  uint64_t rng = fz_test_seed() ^ 0xCCCCu;
  static uint8_t in[FZ_ENCODE_MAX_SIZE];
  for (int i = 0; i < 1000 && fz_test_failures == 0; i++) {
    fz_program prog;
    fz_test_random_program(&rng, &prog);
    size_t size = fz_encode(&prog, in, sizeof in);
    size_t max = 6u + fz_test_below(&rng, (uint32_t)size); /* often smaller than the input */
    char what[64];
    snprintf(what, sizeof what, "program %d, max_size %zu of %zu", i, max, size);
    memcpy(data, in, size);
    size_t n = fz_mutate(data, size, max, (unsigned)i, NULL);
    CHECK(n <= max, "%s: got %zu bytes", what, n);
    CHECK(fz_decode(data, n, &after) && fz_program_validate(&after, NULL, 0), "%s: invalid",
          what);
  }
}

static void test_deterministic(void) {
  uint64_t rng = fz_test_seed() ^ 0xDDDDu;
  static uint8_t in[FZ_ENCODE_MAX_SIZE];
  for (int i = 0; i < 200; i++) {
    fz_program prog;
    fz_test_random_program(&rng, &prog);
    size_t size = fz_encode(&prog, in, sizeof in);
    memcpy(data, in, size);
    size_t a = fz_mutate(data, size, sizeof data, (unsigned)i * 77u, NULL);
    memcpy(copy, data, a);
    memcpy(data, in, size);
    size_t b = fz_mutate(data, size, sizeof data, (unsigned)i * 77u, NULL);
    CHECK(a == b && memcmp(copy, data, a) == 0, "program %d: same seed, other output", i);
  }
}

/* Over many mutations, every kind of change shows up. */
static void test_variety(void) {
  uint64_t rng = fz_test_seed() ^ 0xEEEEu;
  static uint8_t in[FZ_ENCODE_MAX_SIZE];
  unsigned grew = 0, shrank = 0, same_count = 0, faults = 0, hostile = 0, lists = 0, wrong_answers = 0, engines = 0,
           teardowns = 0;
  for (int i = 0; i < 3000; i++) {
    fz_program prog;
    fz_test_random_program(&rng, &prog);
    size_t size = fz_encode(&prog, in, sizeof in);
    memcpy(data, in, size);
    size_t n = fz_mutate(data, size, sizeof data, (unsigned)fz_test_next(&rng), NULL);
    fz_decode(data, n, &after);
    grew += after.call_count > prog.call_count;
    shrank += after.call_count < prog.call_count;
    same_count += after.call_count == prog.call_count;
    faults += after.fault_count != prog.fault_count;
    engines += after.threaded_engine != prog.threaded_engine;
    teardowns += after.adapter_teardown != prog.adapter_teardown;
    for (uint32_t k = prog.fault_count; k < after.fault_count && k < 4; k++)
      wrong_answers += fault_point_is_wrong_answer((enum fault_point)after.faults[k].point);
    if (after.call_count == prog.call_count) {
      for (uint32_t k = 0; k < prog.call_count; k++) {
        hostile += after.calls[k].hostile != prog.calls[k].hostile;
        lists += after.calls[k].list_length != prog.calls[k].list_length;
      }
    }
  }
  printf("  grew %u, shrank %u, same call count %u, faults changed %u, hostile changed %u, "
         "list lengths changed %u\n",
         grew, shrank, same_count, faults, hostile, lists);
  CHECK(grew > 300 && shrank > 150 && same_count > 300 && faults > 20 && hostile > 20 &&
            lists > 50,
        "variety");
  CHECK(wrong_answers > 0, "the mutator adds the wrong-answer fault points too");
  CHECK(engines > 20, "the mutator switches the engine (%u times)", engines);
  CHECK(teardowns > 20, "the mutator switches the teardown (%u times)", teardowns);
}

/* The mutator reaches the long-list shapes from a program that has none: ranges to the end of a
 * create and one past it, big creates, and the count_plus_one / count_minus_one bits. */
static void test_long_lists(void) {
  char err[256];
  static const char text[] = "v1 = create_device()\n"
                             "v2 = create_resource(dev=v1, n=300, size=4096, placement=any, "
                             "shared=1)\n"
                             "v3 = create_device()\n"
                             "v4 = open_resource(dev=v3, resource=v2)\n"
                             "v5 = destroy_allocations(dev=v1, list=[v2.a0], flags=0)\n"
                             "v6 = submit(dev=v3, list=[v2.a1], command=fill)\n";
  fz_program prog;
  CHECK(fz_parse_program(text, &prog, err, sizeof err), "parse: %s", err);
  static uint8_t in[FZ_ENCODE_MAX_SIZE];
  size_t size = fz_encode(&prog, in, sizeof in);
  unsigned to_end = 0, past_end = 0, other_ranges = 0, big_creates = 0, plus = 0, minus = 0;
  for (unsigned seed = 0; seed < 4000; seed++) {
    memcpy(data, in, size);
    size_t n = fz_mutate(data, size, sizeof data, seed, NULL);
    fz_decode(data, n, &after);
    for (uint32_t k = 0; k < after.call_count; k++) {
      const fz_call *c = &after.calls[k];
      plus += (c->hostile & FZ_HOSTILE_COUNT_PLUS_ONE) != 0;
      minus += (c->hostile & FZ_HOSTILE_COUNT_MINUS_ONE) != 0;
      big_creates += (c->op == FZ_OP_CREATE_RESOURCE || c->op == FZ_OP_CREATE_ALLOCATIONS) &&
                     c->count > FZ_MAX_LIST && c->count != 300u && c->count <= FZ_MAX_ELEMENTS;
      for (uint32_t i = 0; i < c->list_length; i++) {
        const fz_ref *r = &c->list[i];
        if (r->span == 0) {
          continue;
        }
        uint32_t last = (uint32_t)r->element + r->span;
        if (r->call == 1 && last == 299u) {
          to_end++;
        } else if (r->call == 1 && last == 300u) {
          past_end++;
        } else {
          other_ranges++;
        }
      }
    }
  }
  printf("  ranges to the end %u, one past it %u, others %u; creates above 32 %u; "
         "count_plus_one %u, count_minus_one %u\n",
         to_end, past_end, other_ranges, big_creates, plus, minus);
  CHECK(to_end > 20 && past_end > 10 && other_ranges > 10 && big_creates > 10 && plus > 5 &&
            minus > 5,
        "long-list shapes");
}

/* Inserting and deleting calls renumber references; a deleted result gets a stand-in. */
static void test_renumbering(void) {
  char err[256];
  static const char text[] = "v1 = create_device()\n"
                             "v2 = create_device()\n"
                             "v3 = create_resource(dev=v2, n=2, size=4096, placement=any, "
                             "shared=0)\n"
                             "v4 = submit(dev=v2, list=[v3.a0, v3.a1, v1], command=nop)\n"
                             "v5 = fence_wait(fence=v4)\n";
  fz_program prog;
  CHECK(fz_parse_program(text, &prog, err, sizeof err), "parse: %s", err);

  after = prog;
  CHECK(fz_program_delete_call(&after, 0), "delete v1");
  CHECK(after.call_count == 4 && fz_program_validate(&after, err, sizeof err), "valid: %s", err);
  CHECK(strcmp(fz_test_text(&after),
               "v1 = create_device()\n"
               "v2 = create_resource(dev=v1, n=2, size=4096, placement=any, shared=0)\n"
               "v3 = submit(dev=v1, list=[v2.a0, v2.a1, 0], command=nop)\n"
               "v4 = fence_wait(fence=v3)\n") == 0,
        "delete v1: later calls renumbered, the reference to v1 became literal 0:\n%s",
        fz_test_text(&after));

  after = prog;
  CHECK(fz_program_delete_call(&after, 1), "delete v2");
  CHECK(strcmp(fz_test_text(&after),
               "v1 = create_device()\n"
               "v2 = create_resource(dev=v1, n=2, size=4096, placement=any, shared=0)\n"
               "v3 = submit(dev=v1, list=[v2.a0, v2.a1, v1], command=nop)\n"
               "v4 = fence_wait(fence=v3)\n") == 0,
        "delete v2: its references go to the earlier device v1:\n%s", fz_test_text(&after));

  after = prog;
  CHECK(fz_program_delete_call(&after, 3), "delete v4");
  CHECK(strstr(fz_test_text(&after), "v4 = fence_wait(fence=0)") != NULL,
        "delete the only submit: the fence becomes literal 0:\n%s", fz_test_text(&after));

  after = prog;
  fz_call call;
  memset(&call, 0, sizeof call);
  call.op = FZ_OP_DESTROY_DEVICE;
  call.device.element = FZ_ELEMENT_SELF; /* v1 */
  CHECK(fz_program_insert_call(&after, 1, &call), "insert at 1");
  CHECK(strcmp(fz_test_text(&after),
               "v1 = create_device()\n"
               "v2 = destroy_device(dev=v1)\n"
               "v3 = create_device()\n"
               "v4 = create_resource(dev=v3, n=2, size=4096, placement=any, shared=0)\n"
               "v5 = submit(dev=v3, list=[v4.a0, v4.a1, v1], command=nop)\n"
               "v6 = fence_wait(fence=v5)\n") == 0,
        "insert: later references renumbered:\n%s", fz_test_text(&after));
  CHECK(!fz_program_insert_call(&after, 7, &call), "insert past the end");
  CHECK(!fz_program_delete_call(&after, 6), "delete past the end");
}

int main(void) {
  fz_test_run("random_programs", test_random_programs);
  fz_test_run("random_bytes", test_random_bytes);
  fz_test_run("max_size", test_max_size);
  fz_test_run("deterministic", test_deterministic);
  fz_test_run("variety", test_variety);
  fz_test_run("renumbering", test_renumbering);
  fz_test_run("long_lists", test_long_lists);
  return fz_test_finish();
}
