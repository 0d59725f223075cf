/*
 * track.h — the static object tracker shared by the decoder, the encoder and the mutator
 * (internal to fuzz/common; see input.h "References" for what it decides).
 *
 * A tracker replays a program's calls in order without running anything and knows, before
 * each call, which earlier results are devices, resources, allocations and fences, and which
 * of them are (statically) live. A reference slot of a call asks it for candidates: the
 * PREFERRED ones (live, fitting the call), all LIVE ones, or the STALE (destroyed) ones, in a
 * fixed order (most recent call first, a call's allocations by ascending element). Decoder and
 * encoder use the same tracker on the same partial call, which is what makes
 * decode(encode(p)) == p.
 */
#ifndef ALLOCLAB_FUZZ_COMMON_TRACK_H
#define ALLOCLAB_FUZZ_COMMON_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/fuzz/program.h"

typedef enum fz_slot {
  FZ_SLOT_DEVICE,
  FZ_SLOT_RESOURCE,
  FZ_SLOT_ALLOCATION,
  FZ_SLOT_FENCE,
} fz_slot;

typedef enum fz_pick {
  FZ_PICK_PREFERRED,
  FZ_PICK_LIVE,
  FZ_PICK_STALE,
} fz_pick;

enum {
  FZ_PRODUCES_NOTHING = 0,
  FZ_PRODUCES_DEVICE = 1,
  FZ_PRODUCES_RESOURCE = 2,
  FZ_PRODUCES_FENCE = 3,
};

typedef struct fz_track {
  uint32_t count;                   /* calls applied so far */
  uint64_t devices_live;            /* bit d: device made by call d is live */
  uint8_t produces[FZ_MAX_CALLS];   /* FZ_PRODUCES_*: what v<call> (SELF) is */
  uint16_t nalloc[FZ_MAX_CALLS];    /* allocations v<call>.a0 .. made (0 = none) */
  int8_t owner[FZ_MAX_CALLS];       /* allocations / resource: the creating device's call, -1 */
  int8_t resource[FZ_MAX_CALLS];    /* allocations: the resource's call, -1 = device-owned */
  bool shared[FZ_MAX_CALLS];        /* resource */
  uint64_t holders[FZ_MAX_CALLS];   /* resource: bit d = device d holds it (live iff != 0) */
  uint32_t dead[FZ_MAX_CALLS];      /* allocations a0..a31 destroyed by a list (elements from 32
                                       on are not followed: live while their owner is) */
  uint64_t calls_of[4];             /* per fz_slot: the calls that made objects of that type */
} fz_track;

/* What a reference slot of one call asks for. */
typedef struct fz_ref_ctx {
  fz_slot slot;
  fz_op op;
  uint32_t cur;            /* index of the referring call (== track->count) */
  int device;              /* the call's device (a device call), or -1 when not known yet */
  int resource;            /* open_resource's resource (a resource call), or -1 */
  const uint32_t *listed;  /* per call: allocations already in this list (NULL: none) */
} fz_ref_ctx;

void fz_track_init(fz_track *t);
/* Apply @call as call number t->count, then count it. */
void fz_track_apply(fz_track *t, const fz_call *call);

/* The context for @slot of @call (call number t->count), from the fields that precede the
 * slot in the encoding only: open_resource's resource slot sees no device, its device slot
 * sees the resource; every other non-device slot sees the call's device. */
void fz_ref_ctx_init(fz_ref_ctx *ctx, const fz_track *t, const fz_call *call, fz_slot slot,
                     const uint32_t *listed);

/* The members of a candidate set in call @c: a bit mask of elements (bit 0 = SELF for the
 * device, resource and fence slots). */
uint32_t fz_track_members(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick, uint32_t c);
uint32_t fz_track_count(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick);
/* The j-th candidate (j < count). */
fz_ref fz_track_nth(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick, uint32_t j);
/* The rank of @ref among the candidates, or -1 when it is not one. */
int fz_track_rank(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick, const fz_ref *ref);

/* A candidate set computed once: the calls with members and their member masks. */
typedef struct fz_cands {
  uint64_t calls;                /* bit c: call c has members (masks[c] != 0) */
  uint32_t count;                /* the number of members */
  uint32_t masks[FZ_MAX_CALLS];  /* valid where calls has the bit */
} fz_cands;

uint32_t fz_track_collect(const fz_track *t, const fz_ref_ctx *ctx, fz_pick pick, fz_cands *out);
fz_ref fz_cands_nth(const fz_cands *c, fz_slot slot, uint32_t j);
int fz_cands_rank(const fz_cands *c, fz_slot slot, const fz_ref *ref);

/* fz_encode() for a program known to be valid (no validation pass). */
size_t fz_encode_valid(const fz_program *p, uint8_t *out, size_t cap);

/* The device call a reference names (RESULT, SELF, a device call), else -1. */
int fz_track_device_of(const fz_track *t, const fz_ref *ref);
/* The resource call a reference names (RESULT, SELF, a resource call), else -1. */
int fz_track_resource_of(const fz_track *t, const fz_ref *ref);
/* Whether the allocation (call, element) is statically live (from element 32 on: made by the
 * call and its owner live). */
bool fz_track_allocation_live(const fz_track *t, uint32_t call, uint32_t element);
/* Marks the elements below 32 that list entry @r names (one, or a range) in @listed (per call). */
void fz_track_mark_listed(uint32_t *listed, const fz_ref *r);

#endif /* ALLOCLAB_FUZZ_COMMON_TRACK_H */
