/*
 * test_util.c — see test_util.h.
 */
#include "fuzz/common/test_util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/input.h"
#include "fuzz/common/text.h"
#include "fuzz/common/track.h"

int fz_test_failures;
static int tests_run;
static int tests_failed;

uint64_t fz_test_seed(void) {
  static bool printed;
  static uint64_t seed = UINT64_C(0x5EED0A110C1AB);
  const char *env = getenv("FZ_TEST_SEED");
  if (!printed) {
    if (env != NULL) {
      seed = strtoull(env, NULL, 0);
    }
    printf("seed: 0x%" PRIx64 " (set FZ_TEST_SEED to replay another)\n", seed);
    printed = true;
  }
  return seed;
}

uint64_t fz_test_next(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

uint32_t fz_test_below(uint64_t *rng, uint32_t n) {
  return n > 1 ? (uint32_t)(fz_test_next(rng) % n) : 0u;
}

static fz_ref random_ref(uint64_t *rng, const fz_track *t, const fz_call *call, fz_slot slot,
                         const uint32_t *listed) {
  fz_ref r = {.kind = FZ_REF_LITERAL};
  uint32_t k = t->count;
  uint32_t what = fz_test_below(rng, 10);
  if (what < 5 && k > 0) { /* a tracker pick */
    fz_ref_ctx ctx;
    fz_ref_ctx_init(&ctx, t, call, slot, listed);
    fz_pick pick = (fz_pick)fz_test_below(rng, 3);
    uint32_t n = fz_track_count(t, &ctx, pick);
    if (n > 0) {
      return fz_track_nth(t, &ctx, pick, fz_test_below(rng, n));
    }
  }
  if (what < 8 && k > 0) { /* any earlier result */
    r.kind = FZ_REF_RESULT;
    r.call = (uint16_t)fz_test_below(rng, k);
    r.element = fz_test_below(rng, 3) == 0   ? (uint16_t)FZ_ELEMENT_SELF
                : fz_test_below(rng, 8) == 0 ? (uint16_t)fz_test_below(rng, FZ_MAX_ELEMENTS)
                                             : (uint16_t)fz_test_below(rng, FZ_MAX_LIST);
    return r;
  }
  r.literal = fz_test_below(rng, 2) ? fz_literal_table[fz_test_below(rng, 16)]
                                    : (uint32_t)fz_test_next(rng);
  return r;
}

static uint64_t random_size(uint64_t *rng) {
  switch (fz_test_below(rng, 5)) {
  case 0:
    return (1u + (uint64_t)fz_test_below(rng, 128)) * 4096u;
  case 1:
    return (uint64_t)fz_test_below(rng, 0x10000) * 4096u;
  case 2:
    return fz_size_table[fz_test_below(rng, 16)];
  case 3:
    return fz_test_below(rng, 100000);
  default:
    return fz_test_next(rng);
  }
}

void fz_test_random_program(uint64_t *rng, fz_program *out) {
  memset(out, 0, sizeof *out);
  if (fz_test_below(rng, 3) == 0) {
    out->fault_count = 1u + fz_test_below(rng, 4);
    for (uint32_t i = 0; i < out->fault_count; i++) {
      out->faults[i].point = fz_test_below(rng, 2) ? fz_test_below(rng, 6) : (uint32_t)fz_test_next(rng);
      out->faults[i].nth = fz_test_below(rng, 2) ? fz_test_below(rng, 10) : (uint32_t)fz_test_next(rng);
      out->faults[i].repeat = fz_test_below(rng, 2) ? UINT32_MAX : fz_test_below(rng, 300);
    }
  }
  uint32_t n = fz_test_below(rng, 4) == 0 ? fz_test_below(rng, FZ_MAX_CALLS + 1u)
                                          : fz_test_below(rng, 16);
  fz_track t;
  fz_track_init(&t);
  for (uint32_t k = 0; k < n; k++) {
    fz_call *c = &out->calls[k];
    c->op = (fz_op)fz_test_below(rng, FZ_OP_COUNT);
    if (fz_test_below(rng, 8) == 0) {
      c->hostile = fz_test_below(rng, FZ_HOSTILE_ALL + 1u);
    }
    uint32_t f = fz_op_fields(c->op);
    if (c->op == FZ_OP_OPEN_RESOURCE) {
      c->resource = random_ref(rng, &t, c, FZ_SLOT_RESOURCE, NULL);
      c->device = random_ref(rng, &t, c, FZ_SLOT_DEVICE, NULL);
    } else {
      if (f & FZ_FIELD_DEVICE) {
        c->device = random_ref(rng, &t, c, FZ_SLOT_DEVICE, NULL);
      }
      if (f & FZ_FIELD_RESOURCE) {
        c->resource = random_ref(rng, &t, c, FZ_SLOT_RESOURCE, NULL);
      }
    }
    if (f & FZ_FIELD_FENCE) {
      c->fence = random_ref(rng, &t, c, FZ_SLOT_FENCE, NULL);
    }
    if (f & FZ_FIELD_ALLOCATION) {
      c->allocation = random_ref(rng, &t, c, FZ_SLOT_ALLOCATION, NULL);
    }
    if (f & FZ_FIELD_COUNT) {
      uint32_t r = fz_test_below(rng, 10);
      c->count = r < 6   ? 1u + fz_test_below(rng, 8)
                 : r < 8 ? fz_test_below(rng, 33)
                 : r < 9 ? (fz_test_below(rng, 2) ? fz_count_table[fz_test_below(rng, 14)]
                                                  : fz_test_below(rng, FZ_MAX_ELEMENTS + 1u))
                         : FZ_COUNT_OVER_MAXIMUM;
    }
    if (f & FZ_FIELD_SIZE) {
      c->size = random_size(rng);
    }
    if (f & FZ_FIELD_PLACEMENT) {
      c->placement = (fz_placement)fz_test_below(rng, 3);
    }
    if (f & FZ_FIELD_SHARED) {
      c->shared = fz_test_below(rng, 2) != 0;
    }
    if (f & FZ_FIELD_INFO) {
      c->info = fz_test_below(rng, 2) != 0;
    }
    if ((f & FZ_FIELD_ALIGN) && fz_test_below(rng, 3) == 0) {
      /* a power of two (one-byte form), a small literal, or a u32 */
      uint32_t r = fz_test_below(rng, 3);
      c->align = r == 0 ? UINT32_C(1) << fz_test_below(rng, 32)
                 : r == 1 ? 32u + fz_test_below(rng, 223)
                          : (uint32_t)fz_test_next(rng);
    }
    if (f & FZ_FIELD_FLAGS) {
      c->flags = fz_test_below(rng, 2) ? fz_test_below(rng, 4) : fz_test_below(rng, 256);
    }
    if (f & FZ_FIELD_COMMAND) {
      c->command = (fz_command)fz_test_below(rng, FZ_COMMAND_COPY + 1u);
    }
    if (f & FZ_FIELD_DAMAGE) { /* any kind byte: the layers' kinds and numbers no layer has */
      c->damage = (uint8_t)fz_test_below(rng, 256);
    }
    if (f & FZ_FIELD_PICK) {
      c->pick = (uint8_t)fz_test_below(rng, 256);
    }
    if (f & FZ_FIELD_LIST) {
      uint32_t listed[FZ_MAX_CALLS] = {0};
      c->list_length = fz_test_below(rng, 4) == 0 ? fz_test_below(rng, 33) : fz_test_below(rng, 5);
      for (uint32_t i = 0; i < c->list_length; i++) {
        c->list[i] = random_ref(rng, &t, c, FZ_SLOT_ALLOCATION, listed);
        fz_ref *r = &c->list[i];
        if (r->kind == FZ_REF_RESULT && r->element != FZ_ELEMENT_SELF && fz_test_below(rng, 4) == 0) {
          /* a range: to the end of its call, one past it, or any length that fits */
          uint32_t made = t.nalloc[r->call], room = FZ_MAX_ELEMENTS - 1u - r->element;
          uint32_t span = fz_test_below(rng, 3) == 0   ? (made > r->element + 1u ? made - 1u - r->element : 1u)
                          : fz_test_below(rng, 2) == 0 ? (made > r->element ? made - r->element : 1u)
                                                       : 1u + fz_test_below(rng, FZ_MAX_ELEMENTS);
          r->span = (uint16_t)(span < room ? span : room);
        }
        fz_track_mark_listed(listed, r);
      }
    }
    fz_track_apply(&t, c);
    out->call_count = k + 1u;
  }
  /* Drawn last, so the calls drawn for a seed are what they were before the engine choice. */
  out->threaded_engine = fz_test_below(rng, 4) == 0;
}

bool fz_test_run(const char *name, void (*fn)(void)) {
  int before = fz_test_failures;
  printf("[ RUN  ] %s\n", name);
  fflush(stdout);
  fn();
  bool ok = fz_test_failures == before;
  printf("[ %s ] %s\n", ok ? " OK " : "FAIL", name);
  tests_run++;
  if (!ok) {
    tests_failed++;
  }
  return ok;
}

int fz_test_finish(void) {
  printf("%d tests, %d failed (%d failed checks)\n", tests_run, tests_failed, fz_test_failures);
  return fz_test_failures == 0 ? 0 : 1;
}

const char *fz_test_text(const fz_program *p) {
  static char text[64 * 1024];
  FILE *f = fmemopen(text, sizeof text, "w");
  if (f == NULL) {
    return "(fmemopen failed)";
  }
  fz_print_program(f, p, NULL);
  long n = ftell(f);
  fclose(f);
  text[n >= 0 && (size_t)n < sizeof text ? (size_t)n : sizeof text - 1u] = '\0';
  return text;
}
