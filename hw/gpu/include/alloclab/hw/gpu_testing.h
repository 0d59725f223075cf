/*
 * gpu_testing.h — TESTING ONLY: damage kinds for hw/gpu's own invariant walks,
 * gpu_segment_check() (gpu_memory.h) and gpu_as_check() (gpu_mmu.h).
 *
 * DOC: GPU damage
 * Why: on a sound segment or address space the walks take the same path every time, so no test
 * or fuzzer ever reaches their failure branches (alloclab/testing.h, "DOC: Damage"). Each kind
 * here breaks exactly the invariant one failure branch guards (a counter, a tag, a table entry,
 * a host pointer), saving the bytes it changes in a gpu_damage_undo; the caller runs the walk
 * (directly, or through the sim's hardware walk) and then gpu_testing_undo() puts the bytes back.
 * Each kind's @expect is a phrase of the line the walk prints on stderr for that branch.
 *
 * The damage never makes a walk follow a pointer it should not: a host pointer is cleared (never
 * invented), a stored bit or an owner tag is set on a page that exists, an entry turned into a
 * leaf is no longer followed, and a leaf marked as a pointer at level 1 is reported, not followed.
 * Nothing is allocated or freed. The object must be quiescent (no other thread calls it) from
 * the damage to the undo, and must not be destroyed in between: calls on a damaged object other
 * than its check have undefined results.
 * Oracle code, like the walks: not coverage-instrumented under libFuzzer (SEG_UNTRACED,
 * PT_UNTRACED), so the fuzzers' damage op adds no coverage features of its own.
 */
#ifndef ALLOCLAB_HW_GPU_TESTING_H
#define ALLOCLAB_HW_GPU_TESTING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/hw/gpu_memory.h"
#include "alloclab/hw/gpu_mmu.h"
#include "alloclab/testing.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct gpu_damage_undo - the bytes one damage changed, to put back. Filled by
 * gpu_testing_damage_segment() / gpu_testing_damage_as(); consumed by gpu_testing_undo().
 * @lock: the damaged object's lock (borrowed), taken by gpu_testing_undo() for the write back.
 * @fields: the changed fields and their saved bytes (alloclab/testing.h; count 0: nothing to undo).
 */
typedef struct gpu_damage_undo {
  pthread_mutex_t *lock;
  al_damage_fields fields;
} gpu_damage_undo;

/* The segment kinds (gpu_segment_check's branches). */
enum gpu_segment_damage_kind {
  GPU_DAMAGE_SEGMENT_COMMITTED_COUNT,   /* committed_pages one too many */
  GPU_DAMAGE_SEGMENT_STORED_COUNT,      /* stored_granules one too many */
  GPU_DAMAGE_SEGMENT_OWNER_CLEARED,     /* a committed page's owner tag cleared */
  GPU_DAMAGE_SEGMENT_OWNER_ON_FREE_PAGE,/* a free page given an owner tag */
  GPU_DAMAGE_APERTURE_HOST_MISSING,     /* a committed aperture page's host pointer cleared */
  GPU_DAMAGE_APERTURE_STORED_FREE_PAGE, /* a stored bit (and its count) on a free aperture page */
  GPU_SEGMENT_DAMAGE_KINDS
};

/* The address-space kinds (gpu_as_check's and pt_check_table's branches). */
enum gpu_as_damage_kind {
  GPU_DAMAGE_AS_POINTER_AT_LEVEL_1, /* a 4 KiB leaf marked as a pointer entry */
  GPU_DAMAGE_AS_TABLE_AS_LEAF,      /* a pointer entry made a leaf (its table no longer walked) */
  GPU_DAMAGE_AS_EMPTY_TABLE_KEPT,   /* a pointer entry's live count set to 0 */
  GPU_DAMAGE_AS_TABLE_COUNT,        /* a pointer entry's (or the root's) live count one too many */
  GPU_DAMAGE_AS_PAGE_ZERO_MAPPED,   /* a leaf at VA 0, its table's count and mapped_4k agreeing */
  GPU_DAMAGE_AS_TABLES_COUNTER,     /* pt_pages one too many */
  GPU_DAMAGE_AS_TABLE_BYTES_COUNTER,/* pt_bytes one table too many */
  GPU_DAMAGE_AS_MAPPED_4K_COUNTER,  /* mapped_4k one too many */
  GPU_DAMAGE_AS_MAPPED_2M_COUNTER,  /* mapped_2m one too many */
  GPU_AS_DAMAGE_KINDS
};

/* gpu_testing_segment_damage_kind - the info of segment kind @kind (static storage; @name
 * unique among the segment kinds, @target what the kind needs in the segment, @expect a phrase
 * of the walk's stderr line); NULL when kind >= count. */
const al_damage_kind_info *gpu_testing_segment_damage_kind(unsigned kind);

/* gpu_testing_as_damage_kind - the same for address-space kind @kind. */
const al_damage_kind_info *gpu_testing_as_damage_kind(unsigned kind);

/*
 * gpu_testing_damage_segment - breaks segment @s the way @kind says (enum
 * gpu_segment_damage_kind), so that gpu_segment_check(@s) fails with its line for that branch.
 * @pick: which target, modulo their number, in page order (ignored by the counter kinds).
 * @undo: out; filled on success for gpu_testing_undo(), untouched on failure.
 * Takes and releases @s's lock. Returns false, changing nothing, when @s or @undo is NULL, @kind
 * is unknown, or @s has no target for it (no committed page, no free page, not an aperture).
 */
bool gpu_testing_damage_segment(gpu_segment *s, unsigned kind, uint64_t pick, gpu_damage_undo *undo);

/*
 * gpu_testing_damage_as - breaks address space @as the way @kind says (enum gpu_as_damage_kind),
 * so that gpu_as_check(@as) fails with its line for that branch.
 * @pick: which target, modulo their number, in table order (depth first, entries by index;
 *   ignored by the counter kinds).
 * @undo: out; filled on success for gpu_testing_undo(), untouched on failure.
 * Takes and releases @as's lock. Returns false, changing nothing, when @as or @undo is NULL,
 * @kind is unknown, or @as has no target for it (no 4 KiB leaf, no table below the root, no
 * level-1 table over VA 0).
 */
bool gpu_testing_damage_as(gpu_as *as, unsigned kind, uint64_t pick, gpu_damage_undo *undo);

/*
 * gpu_testing_undo - writes back every field @undo saved, the last first, byte for byte, under
 * the lock it names; then empties @undo (a second call does nothing). NULL: nothing.
 */
void gpu_testing_undo(gpu_damage_undo *undo);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HW_GPU_TESTING_H */
