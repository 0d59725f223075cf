/*
 * track.c — the static object tracker (track.h).
 */
#include "fuzz/common/track.h"

#include <string.h>

#define BIT64(i) (UINT64_C(1) << (i))

static uint32_t popcount32(uint32_t x) { return (uint32_t)__builtin_popcount(x); }

static uint32_t full_mask(uint32_t n) { return n >= 32 ? UINT32_MAX : (UINT32_C(1) << n) - 1u; }

void fz_track_init(fz_track *t) {
  memset(t, 0, sizeof *t);
  memset(t->owner, -1, sizeof t->owner);
  memset(t->resource, -1, sizeof t->resource);
}

int fz_track_device_of(const fz_track *t, const fz_ref *ref) {
  if (ref->kind != FZ_REF_RESULT || ref->element != FZ_ELEMENT_SELF || ref->call >= t->count) {
    return -1;
  }
  return t->produces[ref->call] == FZ_PRODUCES_DEVICE ? (int)ref->call : -1;
}

int fz_track_resource_of(const fz_track *t, const fz_ref *ref) {
  if (ref->kind != FZ_REF_RESULT || ref->element != FZ_ELEMENT_SELF || ref->call >= t->count) {
    return -1;
  }
  return t->produces[ref->call] == FZ_PRODUCES_RESOURCE ? (int)ref->call : -1;
}

static bool device_live(const fz_track *t, int d) {
  return d >= 0 && (t->devices_live & BIT64(d)) != 0;
}

/* Whether the owner (resource or device) of call c's allocations is live. */
static bool owner_live(const fz_track *t, uint32_t c) {
  if (t->resource[c] >= 0) {
    return t->holders[t->resource[c]] != 0;
  }
  return device_live(t, t->owner[c]);
}

/* The live allocations of call c among a0..a31. */
static uint32_t live_allocations(const fz_track *t, uint32_t c) {
  uint32_t n = t->nalloc[c];
  if (n == 0 || !owner_live(t, c)) {
    return 0;
  }
  return full_mask(n) & ~t->dead[c];
}

bool fz_track_allocation_live(const fz_track *t, uint32_t call, uint32_t element) {
  if (call >= t->count) {
    return false;
  }
  if (element >= 32) {
    return element < t->nalloc[call] && owner_live(t, call);
  }
  return ((live_allocations(t, call) >> element) & 1u) != 0;
}

void fz_track_mark_listed(uint32_t *listed, const fz_ref *r) {
  if (r->kind != FZ_REF_RESULT || r->element >= 32u || r->call >= FZ_MAX_CALLS) {
    return;
  }
  uint32_t last = (uint32_t)r->element + r->span;
  uint32_t upto = last < 31u ? last : 31u;
  listed[r->call] |= full_mask(upto + 1u) & ~full_mask(r->element);
}

/* Whether the allocations of call c fit the call in ctx (PREFERRED). */
static bool allocations_fit(const fz_track *t, const fz_ref_ctx *ctx, uint32_t c) {
  int d = ctx->device;
  if (d < 0) {
    return true;
  }
  int r = t->resource[c];
  if (ctx->op == FZ_OP_DESTROY_ALLOCATIONS) {
    return r >= 0 ? t->holders[r] == BIT64(d) : t->owner[c] == d;
  }
  if (ctx->op == FZ_OP_SUBMIT) {
    return r >= 0 ? (t->holders[r] & BIT64(d)) != 0 : t->owner[c] == d;
  }
  return true;
}

static bool resource_fits(const fz_track *t, const fz_ref_ctx *ctx, uint32_t c) {
  int d = ctx->device;
  switch (ctx->op) {
  case FZ_OP_OPEN_RESOURCE:
    return t->shared[c];
  case FZ_OP_ADD_TO_RESOURCE:
    return d < 0 || (t->owner[c] == d && t->holders[c] == BIT64(d));
  case FZ_OP_DESTROY_RESOURCE:
    return d < 0 || (t->holders[c] & BIT64(d)) != 0;
  default:
    return true;
  }
}

uint32_t fz_track_members(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick, uint32_t c) {
  if (c >= t->count) {
    return 0;
  }
  switch (ctx->slot) {
  case FZ_SLOT_DEVICE: {
    if (t->produces[c] != FZ_PRODUCES_DEVICE) {
      return 0;
    }
    bool live = device_live(t, (int)c);
    if (pick == FZ_PICK_STALE) {
      return live ? 0u : 1u;
    }
    if (pick == FZ_PICK_PREFERRED && ctx->op == FZ_OP_OPEN_RESOURCE && ctx->resource >= 0 &&
        (t->holders[ctx->resource] & BIT64(c)) != 0) {
      return 0;
    }
    return live ? 1u : 0u;
  }
  case FZ_SLOT_RESOURCE: {
    if (t->produces[c] != FZ_PRODUCES_RESOURCE) {
      return 0;
    }
    bool live = t->holders[c] != 0;
    if (pick == FZ_PICK_STALE) {
      return live ? 0u : 1u;
    }
    if (pick == FZ_PICK_PREFERRED && !resource_fits(t, ctx, c)) {
      return 0;
    }
    return live ? 1u : 0u;
  }
  case FZ_SLOT_ALLOCATION: {
    uint32_t listed = ctx->listed != NULL ? ctx->listed[c] : 0u;
    uint32_t live = live_allocations(t, c);
    if (pick == FZ_PICK_STALE) {
      return full_mask(t->nalloc[c]) & ~live & ~listed;
    }
    if (pick == FZ_PICK_PREFERRED && live != 0 && !allocations_fit(t, ctx, c)) {
      return 0;
    }
    return live & ~listed;
  }
  case FZ_SLOT_FENCE:
    return (t->produces[c] == FZ_PRODUCES_FENCE && pick != FZ_PICK_STALE) ? 1u : 0u;
  }
  return 0;
}

/* The calls below the referring one that made objects of the slot's type. */
static uint64_t candidate_calls(const fz_track *t, const fz_ref_ctx *ctx) {
  uint32_t top = ctx->cur < t->count ? ctx->cur : t->count;
  uint64_t below = top >= 64 ? UINT64_MAX : BIT64(top) - 1u;
  return t->calls_of[ctx->slot] & below;
}

uint32_t fz_track_collect(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick, fz_cands *out) {
  out->calls = 0;
  out->count = 0;
  for (uint64_t m = candidate_calls(t, ctx); m != 0; m &= m - 1u) {
    uint32_t c = (uint32_t)__builtin_ctzll(m);
    uint32_t members = fz_track_members(t, ctx, pick, c);
    if (members != 0) {
      out->calls |= BIT64(c);
      out->masks[c] = members;
      out->count += popcount32(members);
    }
  }
  return out->count;
}

fz_ref fz_cands_nth(const fz_cands *cands, fz_slot slot, uint32_t j) {
  fz_ref ref = {.kind = FZ_REF_LITERAL};
  for (uint64_t calls = cands->calls; calls != 0;) {
    uint32_t c = 63u - (uint32_t)__builtin_clzll(calls); /* the most recent first */
    calls &= ~BIT64(c);
    uint32_t m = cands->masks[c];
    uint32_t pc = popcount32(m);
    if (j >= pc) {
      j -= pc;
      continue;
    }
    while (j-- > 0) {
      m &= m - 1u; /* drop the lowest set bit */
    }
    ref.kind = FZ_REF_RESULT;
    ref.call = (uint16_t)c;
    ref.element =
        slot == FZ_SLOT_ALLOCATION ? (uint16_t)__builtin_ctz(m) : (uint16_t)FZ_ELEMENT_SELF;
    return ref;
  }
  return ref; /* j out of range: literal 0 */
}

int fz_cands_rank(const fz_cands *cands, fz_slot slot, const fz_ref *ref) {
  if (ref->kind != FZ_REF_RESULT || ref->call >= 64u || ((cands->calls >> ref->call) & 1u) == 0) {
    return -1;
  }
  uint32_t bit;
  if (slot == FZ_SLOT_ALLOCATION) {
    if (ref->element >= 32) {
      return -1;
    }
    bit = ref->element;
  } else {
    if (ref->element != FZ_ELEMENT_SELF) {
      return -1;
    }
    bit = 0;
  }
  uint32_t m = cands->masks[ref->call];
  if (((m >> bit) & 1u) == 0) {
    return -1;
  }
  uint32_t rank = popcount32(m & ((UINT32_C(1) << bit) - 1u));
  uint64_t later = ref->call >= 63u ? 0u : cands->calls & ~(BIT64(ref->call + 1u) - 1u);
  for (; later != 0; later &= later - 1u) {
    rank += popcount32(cands->masks[__builtin_ctzll(later)]);
  }
  return (int)rank;
}

uint32_t fz_track_count(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick) {
  fz_cands cands;
  return fz_track_collect(t, ctx, pick, &cands);
}

fz_ref fz_track_nth(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick, uint32_t j) {
  fz_cands cands;
  fz_track_collect(t, ctx, pick, &cands);
  return fz_cands_nth(&cands, ctx->slot, j);
}

int fz_track_rank(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick, const fz_ref *ref) {
  fz_cands cands;
  fz_track_collect(t, ctx, pick, &cands);
  return fz_cands_rank(&cands, ctx->slot, ref);
}

void fz_ref_ctx_init(fz_ref_ctx *ctx, const fz_track *t, const fz_call *call, fz_slot slot,
                     const uint32_t *listed) {
  ctx->slot = slot;
  ctx->op = call->op;
  ctx->cur = t->count;
  ctx->device = -1;
  ctx->resource = -1;
  ctx->listed = listed;
  if (call->op == FZ_OP_OPEN_RESOURCE) {
    if (slot == FZ_SLOT_DEVICE) {
      ctx->resource = fz_track_resource_of(t, &call->resource);
    }
  } else if (slot != FZ_SLOT_DEVICE) {
    ctx->device = fz_track_device_of(t, &call->device);
  }
}

static bool count_creates(uint32_t count) { return count >= 1 && count <= FZ_MAX_ELEMENTS; }

static void destroy_list(fz_track *t, const fz_call *call) {
  uint32_t seen[FZ_MAX_CALLS];
  memset(seen, 0, sizeof seen);
  if (call->flags > 3 || call->list_length == 0 || call->list_length > FZ_MAX_LIST) {
    return;
  }
  for (uint32_t i = 0; i < call->list_length; i++) {
    const fz_ref *r = &call->list[i];
    if (r->kind != FZ_REF_RESULT || r->element == FZ_ELEMENT_SELF) {
      return; /* the call fails as a whole */
    }
    uint32_t last = (uint32_t)r->element + r->span;
    /* The ends of the range decide for the elements in between (a range of live elements). */
    if (!fz_track_allocation_live(t, r->call, r->element) ||
        !fz_track_allocation_live(t, r->call, last)) {
      return;
    }
    for (uint32_t j = 0; j < i; j++) { /* duplicates: overlapping entries of one call */
      const fz_ref *o = &call->list[j];
      if (o->call == r->call && o->element <= last && r->element <= (uint32_t)o->element + o->span) {
        return;
      }
    }
    for (uint32_t e = r->element; e <= last && e < 32u; e++) {
      if (((live_allocations(t, r->call) >> e) & 1u) == 0) {
        return;
      }
    }
  }
  for (uint32_t i = 0; i < call->list_length; i++) {
    fz_track_mark_listed(seen, &call->list[i]);
  }
  for (uint32_t c = 0; c < t->count; c++) {
    t->dead[c] |= seen[c];
  }
}

void fz_track_apply(fz_track *t, const fz_call *call) {
  uint32_t k = t->count;
  if (k >= FZ_MAX_CALLS) {
    return;
  }
  int d = -1;
  int r = -1;
  if (!call->hostile) {
    d = fz_track_device_of(t, &call->device);
    r = fz_track_resource_of(t, &call->resource);
  }
  bool dlive = device_live(t, d);
  t->count = k + 1u;
  if (call->hostile) {
    return;
  }
  switch (call->op) {
  case FZ_OP_CREATE_DEVICE:
    t->produces[k] = FZ_PRODUCES_DEVICE;
    t->devices_live |= BIT64(k);
    t->calls_of[FZ_SLOT_DEVICE] |= BIT64(k);
    break;
  case FZ_OP_DESTROY_DEVICE:
    if (dlive) {
      t->devices_live &= ~BIT64(d);
      for (uint32_t c = 0; c < k; c++) {
        t->holders[c] &= ~BIT64(d);
      }
    }
    break;
  case FZ_OP_CREATE_ALLOCATIONS:
    if (dlive && count_creates(call->count)) {
      t->nalloc[k] = (uint16_t)call->count;
      t->owner[k] = (int8_t)d;
      t->calls_of[FZ_SLOT_ALLOCATION] |= BIT64(k);
    }
    break;
  case FZ_OP_CREATE_RESOURCE:
    if (dlive && count_creates(call->count)) {
      t->produces[k] = FZ_PRODUCES_RESOURCE;
      t->holders[k] = BIT64(d);
      t->shared[k] = call->shared;
      t->nalloc[k] = (uint16_t)call->count;
      t->owner[k] = (int8_t)d;
      t->resource[k] = (int8_t)k;
      t->calls_of[FZ_SLOT_RESOURCE] |= BIT64(k);
      t->calls_of[FZ_SLOT_ALLOCATION] |= BIT64(k);
    }
    break;
  case FZ_OP_ADD_TO_RESOURCE:
    if (dlive && r >= 0 && t->owner[r] == d && t->holders[r] == BIT64(d) &&
        count_creates(call->count)) {
      t->nalloc[k] = (uint16_t)call->count;
      t->owner[k] = (int8_t)d;
      t->resource[k] = (int8_t)r;
      t->calls_of[FZ_SLOT_ALLOCATION] |= BIT64(k);
    }
    break;
  case FZ_OP_OPEN_RESOURCE:
    if (dlive && r >= 0 && t->holders[r] != 0 && t->shared[r] && (t->holders[r] & BIT64(d)) == 0) {
      t->holders[r] |= BIT64(d);
    }
    break;
  case FZ_OP_DESTROY_RESOURCE:
    if (call->flags <= 3 && d >= 0 && r >= 0) {
      t->holders[r] &= ~BIT64(d);
    }
    break;
  case FZ_OP_DESTROY_ALLOCATIONS:
    destroy_list(t, call);
    break;
  case FZ_OP_SUBMIT:
    t->produces[k] = FZ_PRODUCES_FENCE;
    t->calls_of[FZ_SLOT_FENCE] |= BIT64(k);
    break;
  default:
    break;
  }
}
