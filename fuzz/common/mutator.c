/*
 * mutator.c — the call-level mutator (mutator.h).
 */
#include "fuzz/common/mutator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/damage.h"
#include "alloclab/fuzz/input.h"
#include "alloclab/hw/fault_injection.h"
#include "alloclab/hw/sim_miniport.h"
#include "fuzz/common/track.h"

/* ---- Randomness --------------------------------------------------------------------------- */

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static uint32_t below(uint64_t *s, uint32_t n) { return n > 1 ? (uint32_t)(next_u64(s) % n) : 0u; }

static bool chance(uint64_t *s, uint32_t num, uint32_t den) { return below(s, den) < num; }

/* An index into n candidates, biased toward the most recent ones. */
static uint32_t small_index(uint64_t *s, uint32_t n) {
  uint32_t r = below(s, 10);
  if (r < 5) {
    return 0;
  }
  if (r < 8) {
    return below(s, n < 4 ? n : 4);
  }
  return below(s, n);
}

static uint64_t mutate_number(uint64_t v, unsigned width, uint64_t *rng, fz_mutate_bytes_fn mb) {
  uint8_t buf[8] = {0};
  for (unsigned i = 0; i < width; i++) {
    buf[i] = (uint8_t)(v >> (8u * i));
  }
  if (mb != NULL && chance(rng, 3, 4)) {
    size_t n = mb(buf, width, width);
    for (size_t i = n; i < width; i++) {
      buf[i] = 0;
    }
    v = 0;
    for (unsigned i = 0; i < width; i++) {
      v |= (uint64_t)buf[i] << (8u * i);
    }
  } else {
    switch (below(rng, 4)) {
    case 0:
      v ^= UINT64_C(1) << below(rng, 8u * width);
      break;
    case 1:
      v += 1u + below(rng, 16);
      break;
    case 2:
      v -= 1u + below(rng, 16);
      break;
    default:
      v = next_u64(rng);
      break;
    }
  }
  return width >= 8 ? v : v & ((UINT64_C(1) << (8u * width)) - 1u);
}

/* ---- References of a call -------------------------------------------------------------------- */

typedef struct ref_slot {
  fz_ref *ref;
  fz_slot slot;
} ref_slot;

static size_t call_refs(fz_call *call, ref_slot out[FZ_MAX_LIST + 4]) {
  uint32_t fields = fz_op_fields(call->op);
  size_t n = 0;
  if (fields & FZ_FIELD_DEVICE) {
    out[n++] = (ref_slot){&call->device, FZ_SLOT_DEVICE};
  }
  if (fields & FZ_FIELD_RESOURCE) {
    out[n++] = (ref_slot){&call->resource, FZ_SLOT_RESOURCE};
  }
  if (fields & FZ_FIELD_FENCE) {
    out[n++] = (ref_slot){&call->fence, FZ_SLOT_FENCE};
  }
  if (fields & FZ_FIELD_ALLOCATION) {
    out[n++] = (ref_slot){&call->allocation, FZ_SLOT_ALLOCATION};
  }
  if (fields & FZ_FIELD_LIST) {
    for (uint32_t i = 0; i < call->list_length && i < FZ_MAX_LIST; i++) {
      out[n++] = (ref_slot){&call->list[i], FZ_SLOT_ALLOCATION};
    }
  }
  return n;
}

static void track_upto(const fz_program *p, uint32_t k, fz_track *t) {
  fz_track_init(t);
  for (uint32_t i = 0; i < k && i < p->call_count; i++) {
    fz_track_apply(t, &p->calls[i]);
  }
}

static fz_ref literal_ref(uint32_t v) {
  fz_ref r = {.kind = FZ_REF_LITERAL, .literal = v};
  return r;
}

/* A new reference for @slot of @call (call number t->count). */
static fz_ref gen_ref(const fz_track *t, const fz_call *call, fz_slot slot, const uint32_t *listed,
                      uint64_t *rng, fz_mutate_bytes_fn mb) {
  fz_ref_ctx ctx;
  fz_ref_ctx_init(&ctx, t, call, slot, listed);
  uint32_t r = below(rng, 100);
  if (r < 85) {
    fz_pick first = r < 65 ? FZ_PICK_PREFERRED : r < 75 ? FZ_PICK_LIVE : FZ_PICK_STALE;
    fz_pick chain[2] = {first, FZ_PICK_LIVE};
    for (int i = 0; i < 2; i++) {
      uint32_t n = fz_track_count(t, &ctx, chain[i]);
      if (n > 0) {
        return fz_track_nth(t, &ctx, chain[i], small_index(rng, n));
      }
    }
  }
  if (r < 93 && ctx.cur > 0) {
    fz_ref ref = {.kind = FZ_REF_RESULT};
    ref.call = (uint16_t)below(rng, ctx.cur);
    uint32_t nalloc = t->nalloc[ref.call];
    if (slot == FZ_SLOT_ALLOCATION ? chance(rng, 7, 8) : chance(rng, 1, 8)) {
      ref.element = (uint16_t)(nalloc > 0 && chance(rng, 3, 4) ? below(rng, nalloc)
                                                                : below(rng, FZ_MAX_LIST));
    } else {
      ref.element = FZ_ELEMENT_SELF;
    }
    return ref;
  }
  switch (below(rng, 3)) {
  case 0:
    return literal_ref(fz_literal_table[below(rng, 16)]);
  case 1:
    return literal_ref((uint32_t)next_u64(rng));
  default:
    return literal_ref((uint32_t)mutate_number(fz_literal_table[below(rng, 16)], 4, rng, mb));
  }
}

/* ---- Generated values ------------------------------------------------------------------------ */

static uint32_t gen_count(uint64_t *rng) {
  uint32_t r = below(rng, 22);
  if (r >= 20) { /* a big create: up to the port's maximum of 1024 */
    return r == 20 ? fz_count_table[below(rng, 14)] : 1u + below(rng, FZ_MAX_ELEMENTS);
  }
  if (r < 14) {
    return 1u + below(rng, 4);
  }
  if (r < 17) {
    return below(rng, FZ_MAX_LIST + 1u);
  }
  if (r < 18) {
    return 0;
  }
  if (r < 19) {
    return FZ_MAX_LIST;
  }
  return FZ_COUNT_OVER_MAXIMUM;
}

static uint64_t gen_size(uint64_t *rng, fz_mutate_bytes_fn mb) {
  uint32_t r = below(rng, 20);
  if (r < 14) {
    return (1u + (uint64_t)below(rng, 16)) * 4096u;
  }
  if (r < 16) {
    return fz_size_table[below(rng, 16)];
  }
  if (r < 18) {
    return (uint64_t)below(rng, 0x10000u) * 4096u;
  }
  if (r < 19) {
    return mutate_number(fz_size_table[below(rng, 16)], 8, rng, mb);
  }
  return next_u64(rng);
}

/* An alignment: mostly a power of two from 4 KiB to 16 MiB (the padding split of a segment
 * heap), sometimes one below the page, above what the miniport takes, or no power of two. */
static uint32_t gen_align(uint64_t *rng) {
  uint32_t r = below(rng, 10);
  if (r < 6) {
    return UINT32_C(1) << (12u + below(rng, 13));
  }
  if (r < 7) {
    return UINT32_C(1) << below(rng, 12);
  }
  if (r < 8) {
    return UINT32_C(1) << (25u + below(rng, 7));
  }
  return chance(rng, 1, 2) ? 3u * 4096u : (uint32_t)next_u64(rng);
}

/* A damage kind byte (program.h "Damage") naming a kind one of the layers has. */
static uint8_t gen_damage(uint64_t *rng) {
  const unsigned port = al_testing_damage_kind_count(), sim = sim_testing_damage_kind_count();
  if (port + sim == 0) {
    return 0;
  }
  const unsigned k = below(rng, port + sim);
  return k < port ? (uint8_t)(k & FZ_DAMAGE_KIND_MASK) : (uint8_t)(FZ_DAMAGE_SIM | ((k - port) & FZ_DAMAGE_KIND_MASK));
}

static fz_op gen_op(uint64_t *rng) {
  static const uint8_t weights[FZ_OP_COUNT] = {
      [FZ_OP_CREATE_DEVICE] = 8,      [FZ_OP_DESTROY_DEVICE] = 3,
      [FZ_OP_CREATE_ALLOCATIONS] = 10, [FZ_OP_CREATE_RESOURCE] = 12,
      [FZ_OP_ADD_TO_RESOURCE] = 6,    [FZ_OP_OPEN_RESOURCE] = 8,
      [FZ_OP_DESTROY_RESOURCE] = 8,   [FZ_OP_DESTROY_ALLOCATIONS] = 10,
      [FZ_OP_SUBMIT] = 12,            [FZ_OP_GPU_RUN] = 6,
      [FZ_OP_FENCE_WAIT] = 6,         [FZ_OP_QUERY] = 6,
      /* Rare: a damage op tests the oracle, not the port, and runs the whole walk. */
      [FZ_OP_DAMAGE] = 2,
  };
  uint32_t total = 0;
  for (int i = 0; i < FZ_OP_COUNT; i++) {
    total += weights[i];
  }
  uint32_t r = below(rng, total);
  for (int i = 0; i < FZ_OP_COUNT; i++) {
    if (r < weights[i]) {
      return (fz_op)i;
    }
    r -= weights[i];
  }
  return FZ_OP_CREATE_DEVICE;
}

/* Makes list entry @r a range of its call's elements (when it names one element): to the
 * call's last allocation, one past it (off by one), or some other length. */
static void make_range(const fz_track *t, fz_ref *r, uint64_t *rng) {
  if (r->kind != FZ_REF_RESULT || r->element == FZ_ELEMENT_SELF) {
    return;
  }
  uint32_t e = r->element;
  uint32_t n = r->call < t->count ? t->nalloc[r->call] : 0u;
  uint32_t span;
  switch (below(rng, 4)) {
  case 0:
  case 1:
    span = n > e + 1u ? n - 1u - e : 1u;
    break;
  case 2:
    span = n > e ? n - e : 1u;
    break;
  default:
    span = 1u + below(rng, chance(rng, 1, 2) ? 8u : FZ_MAX_ELEMENTS);
    break;
  }
  uint32_t room = FZ_MAX_ELEMENTS - 1u - e;
  r->span = (uint16_t)(span < room ? span : room);
}

/* A new call of @op valid as call number k of p (its references name calls < k). */
static void gen_call(const fz_program *p, uint32_t k, fz_op op, fz_call *call, uint64_t *rng,
                     fz_mutate_bytes_fn mb) {
  fz_track t;
  track_upto(p, k, &t);
  memset(call, 0, sizeof *call);
  call->op = op;
  uint32_t fields = fz_op_fields(op);
  if (op == FZ_OP_OPEN_RESOURCE) {
    call->resource = gen_ref(&t, call, FZ_SLOT_RESOURCE, NULL, rng, mb);
    call->device = gen_ref(&t, call, FZ_SLOT_DEVICE, NULL, rng, mb);
  } else {
    if (fields & FZ_FIELD_DEVICE) {
      call->device = gen_ref(&t, call, FZ_SLOT_DEVICE, NULL, rng, mb);
    }
    if (fields & FZ_FIELD_RESOURCE) {
      call->resource = gen_ref(&t, call, FZ_SLOT_RESOURCE, NULL, rng, mb);
    }
  }
  if (fields & FZ_FIELD_FENCE) {
    call->fence = gen_ref(&t, call, FZ_SLOT_FENCE, NULL, rng, mb);
  }
  if (fields & FZ_FIELD_ALLOCATION) {
    call->allocation = gen_ref(&t, call, FZ_SLOT_ALLOCATION, NULL, rng, mb);
  }
  if (fields & FZ_FIELD_COUNT) {
    call->count = gen_count(rng);
  }
  if (fields & FZ_FIELD_SIZE) {
    call->size = gen_size(rng, mb);
  }
  if (fields & FZ_FIELD_PLACEMENT) {
    call->placement = chance(rng, 3, 5) ? FZ_PLACEMENT_ANY : (fz_placement)below(rng, 3);
  }
  if (fields & FZ_FIELD_SHARED) {
    call->shared = chance(rng, 1, 2);
  }
  if (fields & FZ_FIELD_INFO) {
    call->info = chance(rng, 1, 4);
  }
  if ((fields & FZ_FIELD_ALIGN) && chance(rng, 1, 5)) {
    call->align = gen_align(rng);
  }
  if (fields & FZ_FIELD_FLAGS) {
    call->flags = chance(rng, 9, 10) ? below(rng, 4) : below(rng, 256);
  }
  if (fields & FZ_FIELD_COMMAND) {
    call->command = (fz_command)below(rng, FZ_COMMAND_COPY + 1u);
  }
  if (fields & FZ_FIELD_DAMAGE) {
    call->damage = gen_damage(rng);
  }
  if (fields & FZ_FIELD_PICK) {
    call->pick = (uint8_t)(chance(rng, 3, 4) ? below(rng, 4) : below(rng, 256));
  }
  if (fields & FZ_FIELD_LIST) {
    uint32_t listed[FZ_MAX_CALLS];
    memset(listed, 0, sizeof listed);
    uint32_t r = below(rng, 10);
    call->list_length = r < 8 ? 1u + below(rng, 4) : r < 9 ? 0u : below(rng, FZ_MAX_LIST + 1u);
    for (uint32_t i = 0; i < call->list_length; i++) {
      fz_ref ref = gen_ref(&t, call, FZ_SLOT_ALLOCATION, listed, rng, mb);
      if (chance(rng, 1, 6)) {
        make_range(&t, &ref, rng);
      }
      call->list[i] = ref;
      fz_track_mark_listed(listed, &ref);
    }
  }
  if (chance(rng, 1, 20)) {
    call->hostile = UINT32_C(1) << below(rng, 7);
  }
}

/* ---- Structural edits (references stay pointing at earlier calls) ----------------------------- */

/* What a call's result is, for finding a stand-in when it is deleted. */
static int result_group(fz_op op) {
  switch (op) {
  case FZ_OP_CREATE_DEVICE:
    return 1;
  case FZ_OP_CREATE_ALLOCATIONS:
  case FZ_OP_CREATE_RESOURCE:
  case FZ_OP_ADD_TO_RESOURCE:
    return 2;
  case FZ_OP_SUBMIT:
    return 3;
  default:
    return 0;
  }
}

bool fz_program_insert_call(fz_program *p, uint32_t pos, const fz_call *call) {
  uint32_t n = p->call_count;
  if (n >= FZ_MAX_CALLS || pos > n) {
    return false;
  }
  memmove(&p->calls[pos + 1u], &p->calls[pos], (n - pos) * sizeof p->calls[0]);
  p->calls[pos] = *call;
  p->call_count = n + 1u;
  for (uint32_t k = pos + 1u; k < p->call_count; k++) {
    ref_slot refs[FZ_MAX_LIST + 4];
    size_t nr = call_refs(&p->calls[k], refs);
    for (size_t i = 0; i < nr; i++) {
      if (refs[i].ref->kind == FZ_REF_RESULT && refs[i].ref->call >= pos) {
        refs[i].ref->call++;
      }
    }
  }
  return true;
}

bool fz_program_delete_call(fz_program *p, uint32_t pos) {
  if (pos >= p->call_count) {
    return false;
  }
  fz_op deleted = p->calls[pos].op;
  int group = result_group(deleted);
  int stand_in = -1;
  for (uint32_t c = pos; group != 0 && c-- > 0;) {
    if (result_group(p->calls[c].op) == group) {
      stand_in = (int)c;
      break;
    }
  }
  memmove(&p->calls[pos], &p->calls[pos + 1u], (p->call_count - pos - 1u) * sizeof p->calls[0]);
  p->call_count--;
  memset(&p->calls[p->call_count], 0, sizeof p->calls[0]);
  for (uint32_t k = pos; k < p->call_count; k++) {
    ref_slot refs[FZ_MAX_LIST + 4];
    size_t nr = call_refs(&p->calls[k], refs);
    for (size_t i = 0; i < nr; i++) {
      fz_ref *r = refs[i].ref;
      if (r->kind != FZ_REF_RESULT || r->call < pos) {
        continue;
      }
      if (r->call > pos) {
        r->call--;
      } else if (stand_in >= 0) {
        r->call = (uint16_t)stand_in;
      } else {
        *r = literal_ref(0);
      }
    }
  }
  return true;
}

/* Re-point references that no longer name an earlier call. */
static void repair(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  fz_track t;
  fz_track_init(&t);
  for (uint32_t k = 0; k < p->call_count; k++) {
    fz_call *call = &p->calls[k];
    ref_slot refs[FZ_MAX_LIST + 4];
    size_t nr = call_refs(call, refs);
    for (size_t i = 0; i < nr; i++) {
      if (refs[i].ref->kind == FZ_REF_RESULT && refs[i].ref->call >= k) {
        *refs[i].ref = gen_ref(&t, call, refs[i].slot, NULL, rng, mb);
      }
    }
    fz_track_apply(&t, call);
  }
}

/* Calls in a new order: new call i is old call order[i]. */
static void permute(fz_program *p, const uint32_t *order, uint64_t *rng, fz_mutate_bytes_fn mb) {
  static _Thread_local fz_call old[FZ_MAX_CALLS];
  uint32_t inv[FZ_MAX_CALLS];
  uint32_t n = p->call_count;
  memcpy(old, p->calls, n * sizeof old[0]);
  for (uint32_t i = 0; i < n; i++) {
    p->calls[i] = old[order[i]];
    inv[order[i]] = i;
  }
  for (uint32_t k = 0; k < n; k++) {
    ref_slot refs[FZ_MAX_LIST + 4];
    size_t nr = call_refs(&p->calls[k], refs);
    for (size_t i = 0; i < nr; i++) {
      if (refs[i].ref->kind == FZ_REF_RESULT) {
        refs[i].ref->call = (uint16_t)inv[refs[i].ref->call];
      }
    }
  }
  repair(p, rng, mb);
}

/* ---- Edits ---------------------------------------------------------------------------------- */

typedef bool (*edit_fn)(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb);

static bool edit_insert(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  if (p->call_count >= FZ_MAX_CALLS) {
    return false;
  }
  /* Mostly append or insert near the end, where the state is richest. */
  uint32_t pos = chance(rng, 1, 2) ? p->call_count : below(rng, p->call_count + 1u);
  fz_call call;
  gen_call(p, pos, gen_op(rng), &call, rng, mb);
  fz_program_insert_call(p, pos, &call);
  return true;
}

static bool edit_delete(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  (void)mb;
  if (p->call_count == 0) {
    return false;
  }
  fz_program_delete_call(p, below(rng, p->call_count));
  return true;
}

static bool edit_duplicate(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  (void)mb;
  if (p->call_count == 0 || p->call_count >= FZ_MAX_CALLS) {
    return false;
  }
  uint32_t from = below(rng, p->call_count);
  uint32_t to = from + 1u + below(rng, p->call_count - from); /* from+1 .. call_count */
  fz_call copy = p->calls[from];
  fz_program_insert_call(p, to, &copy);
  return true;
}

static bool edit_move(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  uint32_t n = p->call_count;
  if (n < 2) {
    return false;
  }
  uint32_t order[FZ_MAX_CALLS];
  uint32_t a = below(rng, n);
  uint32_t b = below(rng, n);
  if (a == b) {
    b = (a + 1u) % n;
  }
  bool swap = chance(rng, 1, 2);
  if (swap && chance(rng, 1, 2)) { /* adjacent swaps keep most references meaningful */
    a = below(rng, n - 1u);
    b = a + 1u;
  }
  for (uint32_t i = 0; i < n; i++) {
    order[i] = i;
  }
  if (swap) {
    order[a] = b;
    order[b] = a;
  } else { /* move call a to position b */
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
      if (i == a) {
        continue;
      }
      if (w == b) {
        order[w++] = a;
      }
      order[w++] = i;
    }
    if (w == b) {
      order[w++] = a;
    }
  }
  permute(p, order, rng, mb);
  return true;
}

/* A random call that has at least one reference, or -1. */
static int call_with_refs(fz_program *p, uint64_t *rng) {
  for (int tries = 0; tries < 16 && p->call_count > 0; tries++) {
    uint32_t k = below(rng, p->call_count);
    ref_slot refs[FZ_MAX_LIST + 4];
    if (call_refs(&p->calls[k], refs) > 0) {
      return (int)k;
    }
  }
  return -1;
}

static bool edit_rewire(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  int k = call_with_refs(p, rng);
  if (k < 0) {
    return false;
  }
  fz_call *call = &p->calls[k];
  ref_slot refs[FZ_MAX_LIST + 4];
  size_t nr = call_refs(call, refs);
  ref_slot s = refs[below(rng, (uint32_t)nr)];
  fz_track t;
  track_upto(p, (uint32_t)k, &t);
  fz_ref old = *s.ref;
  for (int tries = 0; tries < 4; tries++) {
    if (s.ref->kind == FZ_REF_LITERAL && chance(rng, 1, 3)) {
      s.ref->literal = (uint32_t)mutate_number(s.ref->literal, 4, rng, mb);
    } else {
      *s.ref = gen_ref(&t, call, s.slot, NULL, rng, mb);
    }
    if (s.ref->kind != old.kind || s.ref->call != old.call || s.ref->element != old.element ||
        s.ref->literal != old.literal) {
      return true;
    }
  }
  return false;
}

static bool edit_tweak(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  if (p->call_count == 0) {
    return false;
  }
  fz_call *call = &p->calls[below(rng, p->call_count)];
  uint32_t fields = fz_op_fields(call->op);
  uint32_t choices[12];
  uint32_t n = 0;
  static const uint32_t tweakable[] = {FZ_FIELD_COUNT, FZ_FIELD_SIZE,    FZ_FIELD_PLACEMENT, FZ_FIELD_SHARED,
                                       FZ_FIELD_FLAGS, FZ_FIELD_COMMAND, FZ_FIELD_ALIGN,     FZ_FIELD_INFO,
                                       FZ_FIELD_DAMAGE, FZ_FIELD_PICK};
  for (size_t i = 0; i < sizeof tweakable / sizeof tweakable[0]; i++) {
    if (fields & tweakable[i]) {
      choices[n++] = tweakable[i];
    }
  }
  choices[n++] = 0; /* hostile */
  switch (choices[below(rng, n)]) {
  case FZ_FIELD_COUNT: {
    uint32_t old = call->count;
    switch (below(rng, 4)) {
    case 0:
      call->count = gen_count(rng);
      break;
    case 1:
      call->count = old == FZ_COUNT_OVER_MAXIMUM ? FZ_MAX_LIST
                    : chance(rng, 1, 2)          ? (old < FZ_MAX_ELEMENTS ? old + 1u : 0u)
                                                 : (old > 0 ? old - 1u : FZ_MAX_ELEMENTS);
      break;
    case 2: {
      uint32_t v = (uint32_t)mutate_number(old == FZ_COUNT_OVER_MAXIMUM ? 0xFFu : old, 1, rng, mb);
      call->count = v == 0xFFu ? FZ_COUNT_OVER_MAXIMUM : v % (FZ_MAX_LIST + 1u);
      break;
    }
    default:
      call->count = old == FZ_COUNT_OVER_MAXIMUM ? 1u : FZ_COUNT_OVER_MAXIMUM;
      break;
    }
    return call->count != old;
  }
  case FZ_FIELD_SIZE: {
    uint64_t old = call->size;
    switch (below(rng, 4)) {
    case 0:
      call->size = gen_size(rng, mb);
      break;
    case 1:
      call->size = mutate_number(old, 8, rng, mb);
      break;
    case 2:
      call->size = chance(rng, 1, 2) ? old * 2u : old / 2u;
      break;
    default:
      call->size = old + (chance(rng, 1, 2) ? 1u : 4096u);
      break;
    }
    return call->size != old;
  }
  case FZ_FIELD_PLACEMENT:
    call->placement = (fz_placement)(((unsigned)call->placement + 1u + below(rng, 2)) % 3u);
    return true;
  case FZ_FIELD_SHARED:
    call->shared = !call->shared;
    return true;
  case FZ_FIELD_INFO:
    call->info = !call->info;
    return true;
  case FZ_FIELD_ALIGN: {
    uint32_t old = call->align;
    switch (below(rng, 3)) {
    case 0:
      call->align = gen_align(rng);
      break;
    case 1: /* the next power of two up or down (0 below 1) */
      call->align = chance(rng, 1, 2) ? (old ? old << 1 : 1u) : old >> 1;
      break;
    default:
      call->align = (uint32_t)mutate_number(old, 4, rng, mb);
      break;
    }
    return call->align != old;
  }
  case FZ_FIELD_FLAGS: {
    uint32_t old = call->flags;
    call->flags = chance(rng, 3, 4) ? old ^ (UINT32_C(1) << below(rng, chance(rng, 3, 4) ? 2 : 8))
                                    : (uint32_t)mutate_number(old, 1, rng, mb);
    return call->flags != old;
  }
  case FZ_FIELD_COMMAND:
    call->command = (fz_command)(((unsigned)call->command + 1u + below(rng, FZ_COMMAND_COPY)) % (FZ_COMMAND_COPY + 1u));
    return true;
  case FZ_FIELD_DAMAGE: {
    uint8_t old = call->damage;
    call->damage = gen_damage(rng);
    return call->damage != old;
  }
  case FZ_FIELD_PICK: {
    uint8_t old = call->pick;
    call->pick = chance(rng, 1, 2) ? (uint8_t)(old + 1u) : (uint8_t)mutate_number(old, 1, rng, mb);
    return call->pick != old;
  }
  default:
    call->hostile ^= UINT32_C(1) << below(rng, 7);
    return true;
  }
}

static bool edit_replace_op(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  if (p->call_count == 0) {
    return false;
  }
  uint32_t k = below(rng, p->call_count);
  fz_call call;
  gen_call(p, k, gen_op(rng), &call, rng, mb);
  p->calls[k] = call;
  return true;
}

static bool edit_list(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  int k = -1;
  for (int tries = 0; tries < 16 && p->call_count > 0; tries++) {
    uint32_t c = below(rng, p->call_count);
    if (fz_op_fields(p->calls[c].op) & FZ_FIELD_LIST) {
      k = (int)c;
      break;
    }
  }
  if (k < 0) {
    return false;
  }
  fz_call *call = &p->calls[k];
  uint32_t n = call->list_length;
  switch (below(rng, 6)) {
  case 4:
  case 5: { /* an entry becomes a range, or its range changes or goes (long lists, off by one) */
    if (n == 0) {
      return false;
    }
    fz_ref *r = &call->list[below(rng, n)];
    uint16_t old = r->span;
    if (old != 0 && chance(rng, 1, 2)) {
      uint32_t room = FZ_MAX_ELEMENTS - 1u - r->element;
      switch (below(rng, 3)) {
      case 0:
        r->span = 0;
        break;
      case 1:
        r->span = (uint16_t)(old - 1u);
        break;
      default: /* one more: one past the end when it ended there */
        r->span = (uint16_t)(old < room ? old + 1u : old - 1u);
        break;
      }
    } else {
      fz_track t;
      track_upto(p, (uint32_t)k, &t);
      make_range(&t, r, rng);
    }
    return r->span != old;
  }
  case 0: { /* add an entry (not yet listed, mostly) */
    if (n >= FZ_MAX_LIST) {
      return false;
    }
    uint32_t listed[FZ_MAX_CALLS];
    memset(listed, 0, sizeof listed);
    for (uint32_t i = 0; i < n; i++) {
      fz_track_mark_listed(listed, &call->list[i]);
    }
    fz_track t;
    track_upto(p, (uint32_t)k, &t);
    uint32_t at = below(rng, n + 1u);
    memmove(&call->list[at + 1u], &call->list[at], (n - at) * sizeof call->list[0]);
    call->list[at] = gen_ref(&t, call, FZ_SLOT_ALLOCATION, listed, rng, mb);
    call->list_length = n + 1u;
    return true;
  }
  case 1: { /* drop an entry */
    if (n == 0) {
      return false;
    }
    uint32_t at = below(rng, n);
    memmove(&call->list[at], &call->list[at + 1u], (n - at - 1u) * sizeof call->list[0]);
    memset(&call->list[n - 1u], 0, sizeof call->list[0]);
    call->list_length = n - 1u;
    return true;
  }
  case 2: { /* duplicate an entry: a list with duplicates */
    if (n == 0 || n >= FZ_MAX_LIST) {
      return false;
    }
    call->list[n] = call->list[below(rng, n)];
    call->list_length = n + 1u;
    return true;
  }
  default: { /* swap two entries */
    if (n < 2) {
      return false;
    }
    uint32_t a = below(rng, n);
    uint32_t b = (a + 1u + below(rng, n - 1u)) % n;
    fz_ref tmp = call->list[a];
    call->list[a] = call->list[b];
    call->list[b] = tmp;
    return call->list[a].kind != call->list[b].kind || call->list[a].call != call->list[b].call ||
           call->list[a].element != call->list[b].element ||
           call->list[a].literal != call->list[b].literal;
  }
  }
}

static bool edit_fault(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  uint32_t n = p->fault_count;
  uint32_t r = below(rng, 3);
  if (r == 0 || n == 0) { /* add one */
    if (n >= 4) {
      return false;
    }
    /* the fault points of hw/fault (failures and wrong answers), and one past */
    p->faults[n].point = below(rng, FAULT_POINT_COUNT + 1u);
    /* 1 in 8 at adapter bring-up (program.h FZ_FAULT_AT_BRING_UP) */
    if (chance(rng, 1, 8)) p->faults[n].point |= FZ_FAULT_AT_BRING_UP;
    p->faults[n].nth = 1u + (chance(rng, 3, 4) ? below(rng, 8) : below(rng, 256));
    static const uint32_t repeats[] = {0, 1, 2, 8, UINT32_MAX};
    p->faults[n].repeat = repeats[below(rng, 5)];
    p->fault_count = n + 1u;
    return true;
  }
  uint32_t i = below(rng, n);
  if (r == 1) { /* drop one */
    memmove(&p->faults[i], &p->faults[i + 1u], (n - i - 1u) * sizeof p->faults[0]);
    memset(&p->faults[n - 1u], 0, sizeof p->faults[0]);
    p->fault_count = n - 1u;
    return true;
  }
  uint32_t *field = below(rng, 3) == 0   ? &p->faults[i].point
                    : chance(rng, 1, 2) ? &p->faults[i].nth
                                         : &p->faults[i].repeat;
  uint32_t old = *field;
  *field = chance(rng, 1, 2) ? (uint32_t)mutate_number(old, 4, rng, mb) : old + 1u;
  return *field != old;
}

/* Switches the program between the deterministic and the threaded GPU engine (program.h
 * "Engine"), so fuzzing from either kind of seed reaches the other. */
static bool edit_engine(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  (void)rng;
  (void)mb;
  p->threaded_engine = !p->threaded_engine;
  return true;
}

/* Switches who destroys the devices left at the end: the executor, or al_adapter_destroy
 * (program.h "Teardown"), so fuzzing reaches the port's own cleanup of live devices. */
static bool edit_teardown(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  (void)rng;
  (void)mb;
  p->adapter_teardown = !p->adapter_teardown;
  return true;
}

/* ---- Entry points --------------------------------------------------------------------------- */

bool fz_mutate_program(fz_program *p, uint64_t *rng, fz_mutate_bytes_fn mb) {
  static const struct {
    edit_fn fn;
    uint32_t weight;
  } edits[] = {
      {edit_insert, 20}, {edit_delete, 10},  {edit_duplicate, 6}, {edit_move, 8},
      {edit_rewire, 20}, {edit_tweak, 18},   {edit_replace_op, 4}, {edit_list, 10},
      {edit_fault, 4},  {edit_engine, 2},    {edit_teardown, 2},
  };
  const size_t count = sizeof edits / sizeof edits[0];
  uint32_t total = 0;
  for (size_t i = 0; i < count; i++) {
    total += edits[i].weight;
  }
  static _Thread_local fz_program before;
  before = *p;
  uint32_t rounds = 1u + below(rng, 3);
  for (uint32_t round = 0; round < rounds; round++) {
    for (int tries = 0; tries < 8; tries++) {
      uint32_t r = below(rng, total);
      size_t e = 0;
      while (r >= edits[e].weight) {
        r -= edits[e].weight;
        e++;
      }
      if (edits[e].fn(p, rng, mb)) {
        break;
      }
    }
  }
  char why[200];
  if (!fz_program_validate(p, why, sizeof why)) {
    fprintf(stderr, "fz_mutate_program: an edit made an invalid program: %s\n", why);
    abort();
  }
  return !fz_program_equal(p, &before);
}

size_t fz_mutate(uint8_t *data, size_t size, size_t max_size, unsigned seed,
                 fz_mutate_bytes_fn mutate_bytes) {
  static _Thread_local fz_program orig;
  static _Thread_local fz_program p;
  static _Thread_local uint8_t buf[FZ_ENCODE_MAX_SIZE];
  (void)fz_decode(data, size, &orig); /* an unsupported version: the empty program */
  uint64_t rng = (uint64_t)seed * UINT64_C(0x9E3779B97F4A7C15) + UINT64_C(0x2545F4914F6CDD1D);
  for (int attempt = 0; attempt < 16; attempt++) {
    p = orig;
    if (!fz_mutate_program(&p, &rng, mutate_bytes)) {
      continue;
    }
    size_t n = fz_encode_valid(&p, buf, sizeof buf);
    while (n > max_size && p.call_count > 0) {
      fz_program_delete_call(&p, p.call_count - 1u); /* the last call: nothing refers to it */
      n = fz_encode_valid(&p, buf, sizeof buf);
    }
    if (n == 0 || n > max_size || n > sizeof buf || fz_program_equal(&p, &orig)) {
      continue;
    }
    memcpy(data, buf, n);
    return n;
  }
  return size <= max_size ? size : max_size;
}
