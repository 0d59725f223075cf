/*
 * gpu_mmu.c — page tables, VA allocator, translation and fault log (contract in gpu_mmu.h).
 *
 * Table walks are written once as recursive helpers over [lo, hi) ranges of one table:
 *   pt_range_empty  - no leaf in the range (map's precondition, release's check);
 *   pt_range_full   - every page mapped, no large leaf crossing the ends (unmap's precondition);
 *   pt_clear        - clear every leaf of the range, free tables left empty (unmap, rollback,
 *                     destroy);
 *   pt_prune        - free the empty tables on one VA's path (rollback of a failed map).
 * They visit only the entries of the range, skipping empty subtrees, so their cost is the
 * number of leaves touched plus the tables on the range's two edges.
 */
#include "alloclab/hw/gpu_mmu.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"
#include "alloclab/hw/gpu_testing.h" /* the damage kinds (testing only) */

#include "alloclab/sanitizers.h"
#include "gpu_check_report.h"

#ifdef AL_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if defined(AL_ASAN) || defined(__clang__)
#define PT_UNCHECKED __attribute__((no_sanitize("address", "undefined")))
#else
#define PT_UNCHECKED
#endif

/*
 * A page-table page: 512 entries and nothing else, so that it is exactly one 4 KiB allocation
 * (a header of even 8 bytes would push it into the allocator's next size class: 5 KiB with
 * jemalloc). Its bookkeeping, the number of non-zero entries, lives in the pointer entry that
 * links it (PTE_COUNT_*), the root's in the address space's root_entry; table pages are 4 KiB
 * aligned so the address leaves those bits free.
 */
struct gpu_pt {
  uint64_t e[GPU_PT_ENTRIES];
};
_Static_assert(sizeof(struct gpu_pt) == 4096, "table page size is documented as 4096 bytes");

/* Live-entry count of the linked table, in bits 2..11 of a pointer entry (0..512 fits in 10). */
#define PTE_COUNT_SHIFT 2u
#define PTE_COUNT_ONE (UINT64_C(1) << PTE_COUNT_SHIFT)
#define PTE_COUNT_MASK (UINT64_C(0x3FF) << PTE_COUNT_SHIFT)
#define PTE_TABLE_ADDRESS_MASK (~UINT64_C(0xFFF))
_Static_assert(GPU_PT_ENTRIES <= (PTE_COUNT_MASK >> PTE_COUNT_SHIFT), "count fits its bits");

/* One VA block: reserved or on its order's free list; always in the hash of block starts. */
struct gpu_va_block {
  uint64_t va;
  uint32_t order;
  uint32_t free;
  struct gpu_va_block *hash_next;
  struct gpu_va_block *free_next;
};
_Static_assert(sizeof(struct gpu_va_block) == 32, "VA block record size is documented as 32");

struct gpu_mmu {
  fault_injector *inj; /* borrowed */
  pthread_mutex_t lock;
  /* Protected by @lock (the segment table is also read with atomic loads). */
  gpu_segment *segments[GPU_SEGMENT_MAX_ID + 1];
  uint64_t mapped_pages[GPU_SEGMENT_MAX_ID + 1]; /* 4 KiB pages mapped, atomics */
  uint32_t next_as_id;
  uint32_t live_as;
  uint64_t fault_total;
  uint32_t ring_count; /* records in the ring */
  uint32_t ring_next;  /* slot of the next record */
  gpu_fault ring[GPU_MMU_FAULT_LOG_SIZE];
};

struct gpu_as {
  gpu_mmu *mmu;
  uint32_t id;
  uint64_t pins; /* atomics */
  pthread_mutex_t lock;
  /* Protected by @lock. */
  uint64_t root_entry; /* a pointer entry to the root table (its address and live count) */
  gpu_as_stats st; /* va_* fields are filled from the allocator at snapshot time */
  struct gpu_va_block *va_free[GPU_VA_ORDERS];
  struct gpu_va_block **va_hash;
  uint64_t va_hash_mask; /* buckets - 1 */
  uint32_t va_hash_bits;
  uint64_t va_blocks; /* blocks in the hash */
  uint64_t va_bump;
};

#define VA_HASH_INITIAL_BITS 6u

/* The entry helpers: always inlined, so that the untraced range predicates (PT_UNTRACED
 * below) run untraced copies of them. */
#define PT_INLINE static inline __attribute__((always_inline))

/* ---- Entries -------------------------------------------------------------------------------- */

PT_INLINE unsigned level_shift(int level) { return 12u + 9u * (unsigned)(level - 1); }

PT_INLINE unsigned pt_index(uint64_t va, int level) {
  return (unsigned)(va >> level_shift(level)) & (GPU_PT_ENTRIES - 1u);
}

PT_INLINE struct gpu_pt *pte_table(uint64_t e) {
  return (struct gpu_pt *)(uintptr_t)(e & PTE_TABLE_ADDRESS_MASK);
}

/* The live-entry count of the table a pointer entry links. */
PT_INLINE uint32_t pte_table_used(uint64_t e) {
  return (uint32_t)((e & PTE_COUNT_MASK) >> PTE_COUNT_SHIFT);
}

static uint64_t make_table_entry(struct gpu_pt *t) {
  return (uint64_t)(uintptr_t)t | GPU_PTE_VALID | GPU_PTE_TABLE;
}

static struct gpu_pt *as_root(const gpu_as *as) { return pte_table(as->root_entry); }

PT_INLINE bool pte_is_table(uint64_t e) { return (e & GPU_PTE_TABLE) != 0; }

PT_INLINE uint32_t pte_segment_id(uint64_t e) {
  return (uint32_t)((e & GPU_PTE_SEGMENT_MASK) >> GPU_PTE_SEGMENT_SHIFT);
}

static uint64_t pte_phys(uint64_t e) { return e & GPU_PTE_FRAME_MASK; }

PT_INLINE uint64_t make_leaf(uint32_t segment_id, uint64_t phys, uint32_t flags, bool large) {
  uint64_t e = GPU_PTE_VALID | (phys & GPU_PTE_FRAME_MASK) |
               ((uint64_t)segment_id << GPU_PTE_SEGMENT_SHIFT);
  if (!(flags & GPU_MAP_READ_ONLY)) e |= GPU_PTE_WRITE;
  if (large) e |= GPU_PTE_LARGE;
  return e;
}

PT_INLINE uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
PT_INLINE uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* ---- Tables --------------------------------------------------------------------------------- */

static struct gpu_pt *pt_alloc(gpu_as *as) {
  if (fault_injector_should_fail(as->mmu->inj, FAULT_PAGE_TABLE_PAGE)) {
    as->st.injected_failures++;
    return NULL;
  }
  /* 4 KiB aligned: the low 12 bits of a pointer entry hold flags and the count. */
  struct gpu_pt *t = al_host_aligned_alloc(sizeof *t, sizeof *t);
  if (t == NULL) return NULL;
  memset(t, 0, sizeof *t);
  as->st.pt_pages++;
  as->st.pt_bytes += sizeof *t;
  as->st.tables_allocated++;
  return t;
}

static void pt_free(gpu_as *as, struct gpu_pt *t) {
  free(t);
  as->st.pt_pages--;
  as->st.pt_bytes -= sizeof *t;
  as->st.tables_freed++;
}

/* The pointer entry @i of the table that @ref links, its table allocated when missing (and
 * counted in @ref); NULL when allocation failed. */
static uint64_t *pt_ensure(gpu_as *as, uint64_t *ref, unsigned i) {
  uint64_t *slot = &pte_table(*ref)->e[i];
  if (*slot != 0) return slot; /* callers checked the range is free: never a leaf */
  struct gpu_pt *child = pt_alloc(as);
  if (child == NULL) return NULL;
  *slot = make_table_entry(child);
  *ref += PTE_COUNT_ONE;
  as->st.pde_writes++;
  return slot;
}

/* Walks @va to its leaf. Returns the leaf (0: unmapped) and its page size. */
PT_INLINE uint64_t pt_lookup(const gpu_as *as, uint64_t va, uint64_t *out_page_size) {
  if (va >= GPU_VA_LIMIT) return 0;
  const struct gpu_pt *t = as_root(as);
  for (int level = 4; level >= 1; level--) {
    uint64_t e = t->e[pt_index(va, level)];
    if (e == 0) return 0;
    if (!pte_is_table(e)) {
      *out_page_size = UINT64_C(1) << level_shift(level);
      return e;
    }
    t = pte_table(e);
  }
  return 0;
}

/* The index range of @t (covering VA from @base) that [lo, hi) touches; lo < hi. */
PT_INLINE void pt_span(int level, uint64_t base, uint64_t lo, uint64_t hi, unsigned *i0,
                    unsigned *i1) {
  unsigned shift = level_shift(level);
  *i0 = (unsigned)((lo - base) >> shift);
  *i1 = (unsigned)((hi - 1 - base) >> shift);
}

/* Marks the read-only range predicates below: under libFuzzer (clang's SanitizerCoverage) they
 * are not instrumented. They visit every entry of the range, and their per-entry branches and
 * compares (in clang 14 also UBSan's inserted ones) follow the range's size, not anything new
 * an input did; what they answer stays visible in their instrumented callers, which branch on
 * it (a map over a mapped page, an unmap of a hole). In close_destroy, where every binding maps
 * and unmaps, pt_range_empty alone was 3.3% of the CPU. ASan and UBSan still check them. */
#if defined(__clang__)
#define PT_UNTRACED __attribute__((no_sanitize("coverage")))
#else
#define PT_UNTRACED
#endif

PT_UNTRACED static bool pt_range_empty(const struct gpu_pt *t, int level, uint64_t base,
                                       uint64_t lo, uint64_t hi) {
  unsigned i0, i1;
  pt_span(level, base, lo, hi, &i0, &i1);
  uint64_t span = UINT64_C(1) << level_shift(level);
  for (unsigned i = i0; i <= i1; i++) {
    uint64_t e = t->e[i];
    if (e == 0) continue;
    if (!pte_is_table(e)) return false;
    uint64_t cb = base + i * span;
    if (!pt_range_empty(pte_table(e), level - 1, cb, max_u64(lo, cb), min_u64(hi, cb + span))) {
      return false;
    }
  }
  return true;
}

PT_UNTRACED static bool pt_range_full(const struct gpu_pt *t, int level, uint64_t base,
                                      uint64_t lo, uint64_t hi) {
  unsigned i0, i1;
  pt_span(level, base, lo, hi, &i0, &i1);
  uint64_t span = UINT64_C(1) << level_shift(level);
  for (unsigned i = i0; i <= i1; i++) {
    uint64_t e = t->e[i];
    uint64_t cb = base + i * span;
    if (e == 0) return false;
    if (pte_is_table(e)) {
      if (!pt_range_full(pte_table(e), level - 1, cb, max_u64(lo, cb), min_u64(hi, cb + span))) {
        return false;
      }
    } else if (cb < lo || cb + span > hi) {
      return false; /* a large leaf crossing an end of the range */
    }
  }
  return true;
}

/* pt_clear's level-1 step: clears the 4 KiB leaves of [lo, hi) in the level-1 table @ref links.
 * Untraced: its per-leaf branches and compares follow how many pages the range maps, not anything
 * new an input did (as the segments' per-page loops, gpu_memory.c SEG_UNTRACED); whether tables
 * were emptied and freed stays in the instrumented pt_clear. ASan and UBSan still check it.
 * noinline: clang 14 inlines an untraced function into a traced caller, which then traces it. */
PT_UNTRACED __attribute__((noinline)) static void pt_clear_leaves(gpu_as *as, uint64_t *ref, uint64_t base, uint64_t lo,
                                        uint64_t hi, uint64_t *unmapped) {
  struct gpu_pt *t = pte_table(*ref);
  unsigned i0, i1;
  pt_span(1, base, lo, hi, &i0, &i1);
  uint64_t cleared = 0;
  const uint32_t live = pte_table_used(*ref);
  for (unsigned i = i0; i <= i1 && cleared < live; i++) {
    const uint64_t e = t->e[i];
    if (e == 0) continue;
    unmapped[pte_segment_id(e)]++;
    t->e[i] = 0;
    cleared++;
  }
  as->st.mapped_4k -= cleared;
  as->st.pte_writes += cleared;
  *ref -= cleared * PTE_COUNT_ONE;
}

/* Clears every leaf in [lo, hi) of the table @ref links (a large leaf there must lie inside
 * the range) and frees the tables it empties; @ref's count drops by the entries cleared.
 * @unmapped[id] accumulates the 4 KiB pages unmapped per segment.
 * Cost: proportional to what is mapped, not to the range: the scan of a table stops once its
 * live-entry count is used up (after that only zero entries are left), so tearing down an
 * address space that maps little (gpu_as_destroy clears the whole VA range) does not read the
 * 512 entries of every table level. */
static void pt_clear(gpu_as *as, uint64_t *ref, int level, uint64_t base, uint64_t lo,
                     uint64_t hi, uint64_t *unmapped) {
  if (level == 1) {
    pt_clear_leaves(as, ref, base, lo, hi, unmapped);
    return;
  }
  struct gpu_pt *t = pte_table(*ref);
  unsigned i0, i1;
  pt_span(level, base, lo, hi, &i0, &i1);
  uint64_t span = UINT64_C(1) << level_shift(level);
  uint64_t cleared = 0;
  uint32_t live = pte_table_used(*ref), seen = 0;
  for (unsigned i = i0; i <= i1 && seen < live; i++) {
    uint64_t e = t->e[i];
    if (e == 0) continue;
    seen++;
    if (pte_is_table(e)) {
      uint64_t cb = base + i * span;
      pt_clear(as, &t->e[i], level - 1, cb, max_u64(lo, cb), min_u64(hi, cb + span), unmapped);
      if (pte_table_used(t->e[i]) != 0) continue;
      pt_free(as, pte_table(e));
      as->st.pde_writes++;
    } else {
      unmapped[pte_segment_id(e)] += span / GPU_PAGE_SIZE;
      if (level == 2) {
        as->st.mapped_2m--;
      } else {
        as->st.mapped_4k--;
      }
      as->st.pte_writes++;
    }
    t->e[i] = 0;
    cleared++;
  }
  *ref -= cleared * PTE_COUNT_ONE;
}

/* Frees the empty non-root tables on @va's path, bottom-up. */
static void pt_prune(gpu_as *as, uint64_t va) {
  uint64_t *ref[GPU_PT_LEVELS + 1]; /* ref[level]: the pointer entry of @va's level table */
  int level = 4;
  ref[4] = &as->root_entry;
  while (level > 1) {
    uint64_t *slot = &pte_table(*ref[level])->e[pt_index(va, level)];
    if (*slot == 0 || !pte_is_table(*slot)) break;
    ref[level - 1] = slot;
    level--;
  }
  for (; level < 4 && pte_table_used(*ref[level]) == 0; level++) {
    pt_free(as, pte_table(*ref[level]));
    *ref[level] = 0;
    *ref[level + 1] -= PTE_COUNT_ONE;
    as->st.pde_writes++;
  }
}

/* Untraced: a bookkeeping loop over every segment id, after every unmap; what was unmapped is
 * the instrumented callers' business. */
PT_UNTRACED __attribute__((noinline)) static void mmu_account_unmapped(gpu_mmu *mmu, const uint64_t *unmapped) {
  for (uint32_t id = 1; id <= GPU_SEGMENT_MAX_ID; id++) {
    if (unmapped[id] == 0) continue;
    __atomic_sub_fetch(&mmu->mapped_pages[id], unmapped[id], __ATOMIC_RELAXED);
  }
}

/* ---- Fault log ------------------------------------------------------------------------------ */

static void mmu_record_fault(gpu_mmu *mmu, gpu_fault *f) {
  pthread_mutex_lock(&mmu->lock);
  f->seq = ++mmu->fault_total;
  mmu->ring[mmu->ring_next] = *f;
  mmu->ring_next = (mmu->ring_next + 1) % GPU_MMU_FAULT_LOG_SIZE;
  if (mmu->ring_count < GPU_MMU_FAULT_LOG_SIZE) mmu->ring_count++;
  pthread_mutex_unlock(&mmu->lock);
}

static void as_fault(gpu_as *as, gpu_fault_kind kind, gpu_access access, uint64_t va,
                     uint32_t segment_id, uint64_t phys, uint64_t last_owner) {
  gpu_fault f = {
      .as_id = as->id,
      .kind = kind,
      .access = access,
      .segment_id = segment_id,
      .va = va,
      .phys = phys,
      .last_owner = last_owner,
  };
  mmu_record_fault(as->mmu, &f);
}

uint64_t gpu_mmu_fault_total(gpu_mmu *mmu) {
  pthread_mutex_lock(&mmu->lock);
  uint64_t total = mmu->fault_total;
  pthread_mutex_unlock(&mmu->lock);
  return total;
}

size_t gpu_mmu_fault_log(gpu_mmu *mmu, gpu_fault *out, size_t max) {
  if (mmu == NULL || out == NULL) return 0;
  pthread_mutex_lock(&mmu->lock);
  size_t n = mmu->ring_count < max ? mmu->ring_count : max;
  /* The newest record is at ring_next - 1; copy the n newest, oldest first. */
  for (size_t k = 0; k < n; k++) {
    size_t slot = (mmu->ring_next + GPU_MMU_FAULT_LOG_SIZE - n + k) % GPU_MMU_FAULT_LOG_SIZE;
    out[k] = mmu->ring[slot];
  }
  pthread_mutex_unlock(&mmu->lock);
  return n;
}

void gpu_mmu_fault_clear(gpu_mmu *mmu) {
  pthread_mutex_lock(&mmu->lock);
  mmu->ring_count = 0;
  pthread_mutex_unlock(&mmu->lock);
}

/* ---- The MMU -------------------------------------------------------------------------------- */

NTSTATUS gpu_mmu_create(fault_injector *inj, gpu_mmu **out_mmu) {
  if (out_mmu == NULL) return STATUS_INVALID_PARAMETER;
  gpu_mmu *mmu = al_host_calloc(1, sizeof *mmu);
  if (mmu == NULL) return STATUS_NO_MEMORY;
  if (pthread_mutex_init(&mmu->lock, NULL) != 0) {
    free(mmu);
    return STATUS_NO_MEMORY;
  }
  mmu->inj = inj;
  mmu->next_as_id = 1;
  *out_mmu = mmu;
  return STATUS_SUCCESS;
}

void gpu_mmu_destroy(gpu_mmu *mmu) {
  if (mmu == NULL) return;
  if (mmu->live_as != 0) {
    fprintf(stderr, "gpu_mmu_destroy: %" PRIu32 " address spaces still live\n", mmu->live_as);
    abort();
  }
  pthread_mutex_destroy(&mmu->lock);
  free(mmu);
}

static gpu_segment *mmu_segment(gpu_mmu *mmu, uint32_t id) {
  return __atomic_load_n(&mmu->segments[id], __ATOMIC_ACQUIRE);
}

NTSTATUS gpu_mmu_attach_segment(gpu_mmu *mmu, gpu_segment *segment) {
  if (mmu == NULL || segment == NULL) return STATUS_INVALID_PARAMETER;
  uint32_t id = gpu_segment_id(segment);
  NTSTATUS st = STATUS_SUCCESS;
  pthread_mutex_lock(&mmu->lock);
  if (mmu->segments[id] == NULL) {
    __atomic_store_n(&mmu->segments[id], segment, __ATOMIC_RELEASE);
  } else if (mmu->segments[id] != segment) {
    st = STATUS_INVALID_PARAMETER;
  }
  pthread_mutex_unlock(&mmu->lock);
  return st;
}

NTSTATUS gpu_mmu_detach_segment(gpu_mmu *mmu, gpu_segment *segment) {
  if (mmu == NULL || segment == NULL) return STATUS_INVALID_PARAMETER;
  uint32_t id = gpu_segment_id(segment);
  NTSTATUS st = STATUS_INVALID_PARAMETER;
  pthread_mutex_lock(&mmu->lock);
  if (mmu->segments[id] == segment &&
      __atomic_load_n(&mmu->mapped_pages[id], __ATOMIC_RELAXED) == 0) {
    __atomic_store_n(&mmu->segments[id], NULL, __ATOMIC_RELEASE);
    st = STATUS_SUCCESS;
  }
  pthread_mutex_unlock(&mmu->lock);
  return st;
}

PT_UNTRACED uint64_t gpu_mmu_segment_mapped_bytes(gpu_mmu *mmu, const gpu_segment *segment) {
  if (mmu == NULL || segment == NULL) return 0;
  return __atomic_load_n(&mmu->mapped_pages[gpu_segment_id(segment)], __ATOMIC_RELAXED) *
         GPU_PAGE_SIZE;
}

/* ---- Address spaces ------------------------------------------------------------------------- */

NTSTATUS gpu_as_create(gpu_mmu *mmu, gpu_as **out_as) {
  if (mmu == NULL || out_as == NULL) return STATUS_INVALID_PARAMETER;
  gpu_as *as = al_host_calloc(1, sizeof *as);
  if (as == NULL) return STATUS_NO_MEMORY;
  as->mmu = mmu;
  as->va_hash_bits = VA_HASH_INITIAL_BITS;
  as->va_hash_mask = (UINT64_C(1) << VA_HASH_INITIAL_BITS) - 1;
  as->va_hash = al_host_calloc((size_t)as->va_hash_mask + 1, sizeof *as->va_hash);
  as->va_bump = GPU_PAGE_SIZE; /* page 0 is never handed out */
  if (as->va_hash == NULL) goto fail;
  struct gpu_pt *root = pt_alloc(as);
  if (root == NULL) goto fail;
  as->root_entry = make_table_entry(root);
  if (pthread_mutex_init(&as->lock, NULL) != 0) {
    pt_free(as, root);
    goto fail;
  }
  pthread_mutex_lock(&mmu->lock);
  as->id = mmu->next_as_id++;
  mmu->live_as++;
  pthread_mutex_unlock(&mmu->lock);
  *out_as = as;
  return STATUS_SUCCESS;
fail:
  free(as->va_hash);
  free(as);
  return STATUS_NO_MEMORY;
}

void gpu_as_destroy(gpu_as *as) {
  if (as == NULL) return;
  uint64_t pins = gpu_as_pins(as);
  if (pins != 0) {
    fprintf(stderr, "gpu_as_destroy: address space %" PRIu32 " has %" PRIu64
            " queued submissions\n", as->id, pins);
    abort();
  }
  uint64_t unmapped[GPU_SEGMENT_MAX_ID + 1] = {0};
  pt_clear(as, &as->root_entry, 4, 0, GPU_PAGE_SIZE, GPU_VA_LIMIT, unmapped);
  mmu_account_unmapped(as->mmu, unmapped);
  pt_free(as, as_root(as));
  for (uint64_t b = 0; b <= as->va_hash_mask; b++) {
    struct gpu_va_block *blk = as->va_hash[b];
    while (blk != NULL) {
      struct gpu_va_block *next = blk->hash_next;
      free(blk);
      blk = next;
    }
  }
  free(as->va_hash);
  pthread_mutex_lock(&as->mmu->lock);
  as->mmu->live_as--;
  pthread_mutex_unlock(&as->mmu->lock);
  pthread_mutex_destroy(&as->lock);
  free(as);
}

uint32_t gpu_as_id(const gpu_as *as) { return as->id; }
gpu_mmu *gpu_as_mmu(const gpu_as *as) { return as->mmu; }

void gpu_as_pin(gpu_as *as) { __atomic_add_fetch(&as->pins, 1, __ATOMIC_ACQ_REL); }
void gpu_as_unpin(gpu_as *as) { __atomic_sub_fetch(&as->pins, 1, __ATOMIC_ACQ_REL); }
uint64_t gpu_as_pins(const gpu_as *as) { return __atomic_load_n(&as->pins, __ATOMIC_ACQUIRE); }

/* ---- VA allocator --------------------------------------------------------------------------- */

static uint64_t va_hash_slot(const gpu_as *as, uint64_t va) {
  return ((va >> 12) * UINT64_C(0x9E3779B97F4A7C15)) >> (64u - as->va_hash_bits);
}

static struct gpu_va_block *va_find(const gpu_as *as, uint64_t va) {
  struct gpu_va_block *b = as->va_hash[va_hash_slot(as, va)];
  while (b != NULL && b->va != va) b = b->hash_next;
  return b;
}

/* Doubles the hash when it holds more than two blocks per bucket; a failed growth keeps the
 * old table (chains get longer, nothing breaks). */
static void va_hash_maybe_grow(gpu_as *as) {
  if (as->va_blocks <= 2 * (as->va_hash_mask + 1) || as->va_hash_bits >= 40) return;
  uint32_t bits = as->va_hash_bits + 1;
  struct gpu_va_block **table = al_host_calloc((size_t)1 << bits, sizeof *table);
  if (table == NULL) return;
  struct gpu_va_block **old = as->va_hash;
  uint64_t old_buckets = as->va_hash_mask + 1;
  as->va_hash = table;
  as->va_hash_bits = bits;
  as->va_hash_mask = (UINT64_C(1) << bits) - 1;
  for (uint64_t i = 0; i < old_buckets; i++) {
    struct gpu_va_block *b = old[i];
    while (b != NULL) {
      struct gpu_va_block *next = b->hash_next;
      uint64_t slot = va_hash_slot(as, b->va);
      b->hash_next = table[slot];
      table[slot] = b;
      b = next;
    }
  }
  free(old);
}

static void va_insert(gpu_as *as, struct gpu_va_block *b) {
  uint64_t slot = va_hash_slot(as, b->va);
  b->hash_next = as->va_hash[slot];
  as->va_hash[slot] = b;
  as->va_blocks++;
}

static void va_push_free(gpu_as *as, struct gpu_va_block *b) {
  b->free = 1;
  b->free_next = as->va_free[b->order];
  as->va_free[b->order] = b;
  as->st.va_free_blocks++;
}

static struct gpu_va_block *va_pop_free(gpu_as *as, uint32_t order) {
  struct gpu_va_block *b = as->va_free[order];
  if (b == NULL) return NULL;
  as->va_free[order] = b->free_next;
  b->free_next = NULL;
  b->free = 0;
  as->st.va_free_blocks--;
  return b;
}

static uint32_t log2_u64(uint64_t x) { return 63u - (uint32_t)__builtin_clzll(x); }

NTSTATUS gpu_va_reserve(gpu_as *as, uint64_t size, uint64_t alignment, uint64_t *out_va) {
  if (as == NULL || out_va == NULL || size == 0) return STATUS_INVALID_PARAMETER;
  if (alignment != 0 && (alignment & (alignment - 1)) != 0) return STATUS_INVALID_PARAMETER;
  if (size > GPU_VA_LIMIT || alignment > GPU_VA_LIMIT) return STATUS_GRAPHICS_NO_VIDEO_MEMORY;
  uint64_t bytes = max_u64(max_u64(size, alignment), GPU_PAGE_SIZE);
  if (bytes & (bytes - 1)) bytes = UINT64_C(1) << (log2_u64(bytes) + 1);
  uint32_t order = log2_u64(bytes) - 12u;
  if (order >= GPU_VA_ORDERS) return STATUS_GRAPHICS_NO_VIDEO_MEMORY;

  pthread_mutex_lock(&as->lock);
  NTSTATUS st = STATUS_SUCCESS;
  struct gpu_va_block *b = va_pop_free(as, order);
  uint64_t aligned = (as->va_bump + bytes - 1) & ~(bytes - 1);
  if (b == NULL && aligned <= GPU_VA_LIMIT - bytes) {
    /* Cut from the bump pointer; the gap [bump, aligned) becomes naturally aligned blocks. */
    struct gpu_va_block *fresh[GPU_VA_ORDERS + 1];
    uint32_t pieces = 0;
    for (uint64_t g = as->va_bump; g < aligned; g += g & (~g + 1)) pieces++;
    uint32_t got = 0;
    for (; got <= pieces; got++) {
      fresh[got] = al_host_calloc(1, sizeof **fresh);
      if (fresh[got] == NULL) break;
    }
    if (got <= pieces) {
      while (got > 0) free(fresh[--got]);
      st = STATUS_NO_MEMORY;
    } else {
      uint32_t k = 0;
      for (uint64_t g = as->va_bump; g < aligned; g += g & (~g + 1)) {
        struct gpu_va_block *piece = fresh[k++];
        piece->va = g;
        piece->order = log2_u64(g & (~g + 1)) - 12u;
        va_insert(as, piece);
        va_push_free(as, piece);
      }
      b = fresh[k];
      b->va = aligned;
      b->order = order;
      va_insert(as, b);
      as->va_bump = aligned + bytes;
      va_hash_maybe_grow(as);
    }
  }
  for (uint32_t o = order + 1; b == NULL && st == STATUS_SUCCESS && o < GPU_VA_ORDERS; o++) {
    b = va_pop_free(as, o); /* near exhaustion: a whole larger block */
  }
  if (b == NULL && st == STATUS_SUCCESS) st = STATUS_GRAPHICS_NO_VIDEO_MEMORY;
  if (b != NULL) {
    as->st.va_reserved_blocks++;
    as->st.va_reserved_bytes += GPU_PAGE_SIZE << b->order;
    *out_va = b->va;
  }
  pthread_mutex_unlock(&as->lock);
  return st;
}

NTSTATUS gpu_va_release(gpu_as *as, uint64_t va) {
  if (as == NULL || va == 0 || (va & (GPU_PAGE_SIZE - 1)) != 0 || va >= GPU_VA_LIMIT) {
    return STATUS_INVALID_PARAMETER;
  }
  NTSTATUS st = STATUS_INVALID_PARAMETER;
  pthread_mutex_lock(&as->lock);
  struct gpu_va_block *b = va_find(as, va);
  if (b != NULL && !b->free) {
    uint64_t bytes = GPU_PAGE_SIZE << b->order;
    if (pt_range_empty(as_root(as), 4, 0, va, va + bytes)) {
      va_push_free(as, b);
      as->st.va_reserved_blocks--;
      as->st.va_reserved_bytes -= bytes;
      st = STATUS_SUCCESS;
    }
  }
  pthread_mutex_unlock(&as->lock);
  return st;
}

/* ---- Map and unmap -------------------------------------------------------------------------- */

/* gpu_as_map's level-1 step: writes 4 KiB leaves from entry @i of @l1 for @left bytes at @phys
 * (to the end of the table at most); returns how many. Untraced, as pt_clear_leaves. */
PT_UNTRACED __attribute__((noinline)) static uint64_t pt_write_leaves(struct gpu_pt *l1, unsigned i, uint32_t segment_id, uint64_t phys,
                                            uint64_t left, uint32_t flags) {
  uint64_t written = 0;
  for (; i < GPU_PT_ENTRIES && written * GPU_PAGE_SIZE < left; i++, written++)
    l1->e[i] = make_leaf(segment_id, phys + written * GPU_PAGE_SIZE, flags, false);
  return written;
}

NTSTATUS gpu_as_map(gpu_as *as, uint64_t va, gpu_segment *segment, uint64_t phys_offset,
                    uint64_t size, uint32_t flags) {
  if (as == NULL || segment == NULL || size == 0 || (flags & ~GPU_MAP_FLAGS_ALL) != 0) {
    return STATUS_INVALID_PARAMETER;
  }
  if (((va | phys_offset | size) & (GPU_PAGE_SIZE - 1)) != 0 || va < GPU_PAGE_SIZE ||
      va > GPU_VA_LIMIT || size > GPU_VA_LIMIT - va) {
    return STATUS_INVALID_PARAMETER;
  }
  uint64_t seg_size = gpu_segment_size(segment);
  if (phys_offset > seg_size || size > seg_size - phys_offset) return STATUS_INVALID_PARAMETER;
  uint32_t id = gpu_segment_id(segment);
  if (mmu_segment(as->mmu, id) != segment) return STATUS_INVALID_PARAMETER;

  pthread_mutex_lock(&as->lock);
  if (!pt_range_empty(as_root(as), 4, 0, va, va + size)) {
    pthread_mutex_unlock(&as->lock);
    return STATUS_INVALID_PARAMETER;
  }
  bool allow_large = !(flags & GPU_MAP_NO_LARGE_PAGES);
  uint64_t done = 0;
  NTSTATUS st = STATUS_SUCCESS;
  while (done < size) {
    uint64_t v = va + done;
    uint64_t p = phys_offset + done;
    uint64_t *l3_ref = pt_ensure(as, &as->root_entry, pt_index(v, 4));
    uint64_t *l2_ref = l3_ref == NULL ? NULL : pt_ensure(as, l3_ref, pt_index(v, 3));
    if (l2_ref == NULL) {
      st = STATUS_NO_MEMORY;
      break;
    }
    unsigned i2 = pt_index(v, 2);
    if (allow_large && ((v | p) & (GPU_LARGE_PAGE_SIZE - 1)) == 0 &&
        size - done >= GPU_LARGE_PAGE_SIZE) {
      pte_table(*l2_ref)->e[i2] = make_leaf(id, p, flags, true);
      *l2_ref += PTE_COUNT_ONE;
      as->st.pte_writes++;
      as->st.mapped_2m++;
      done += GPU_LARGE_PAGE_SIZE;
      continue;
    }
    uint64_t *l1_ref = pt_ensure(as, l2_ref, i2);
    if (l1_ref == NULL) {
      st = STATUS_NO_MEMORY;
      break;
    }
    const uint64_t written = pt_write_leaves(pte_table(*l1_ref), pt_index(v, 1), id, p, size - done, flags);
    done += written * GPU_PAGE_SIZE;
    *l1_ref += written * PTE_COUNT_ONE;
    as->st.pte_writes += written;
    as->st.mapped_4k += written;
  }
  __atomic_add_fetch(&as->mmu->mapped_pages[id], done / GPU_PAGE_SIZE, __ATOMIC_RELAXED);
  if (st == STATUS_SUCCESS) {
    as->st.maps++;
  } else {
    /* Roll back: clear what was written, then free tables allocated for the failed step. */
    uint64_t unmapped[GPU_SEGMENT_MAX_ID + 1] = {0};
    if (done > 0) pt_clear(as, &as->root_entry, 4, 0, va, va + done, unmapped);
    pt_prune(as, va + done);
    mmu_account_unmapped(as->mmu, unmapped);
  }
  pthread_mutex_unlock(&as->lock);
  return st;
}

NTSTATUS gpu_as_unmap(gpu_as *as, uint64_t va, uint64_t size) {
  if (as == NULL || size == 0 || ((va | size) & (GPU_PAGE_SIZE - 1)) != 0 ||
      va < GPU_PAGE_SIZE || va > GPU_VA_LIMIT || size > GPU_VA_LIMIT - va) {
    return STATUS_INVALID_PARAMETER;
  }
  pthread_mutex_lock(&as->lock);
  NTSTATUS st = STATUS_INVALID_PARAMETER;
  if (pt_range_full(as_root(as), 4, 0, va, va + size)) {
    uint64_t unmapped[GPU_SEGMENT_MAX_ID + 1] = {0};
    pt_clear(as, &as->root_entry, 4, 0, va, va + size, unmapped);
    mmu_account_unmapped(as->mmu, unmapped);
    as->st.unmaps++;
    st = STATUS_SUCCESS;
  }
  pthread_mutex_unlock(&as->lock);
  return st;
}

/* One walk, no check pass: the caller vouches that [va, va + size) is what one gpu_as_map
 * mapped (holes are skipped, so a range some of which was never mapped is harmless too). */
NTSTATUS gpu_as_unmap_known(gpu_as *as, uint64_t va, uint64_t size) {
  if (as == NULL || size == 0 || ((va | size) & (GPU_PAGE_SIZE - 1)) != 0 ||
      va < GPU_PAGE_SIZE || va > GPU_VA_LIMIT || size > GPU_VA_LIMIT - va) {
    return STATUS_INVALID_PARAMETER;
  }
  uint64_t unmapped[GPU_SEGMENT_MAX_ID + 1] = {0};
  pthread_mutex_lock(&as->lock);
  pt_clear(as, &as->root_entry, 4, 0, va, va + size, unmapped);
  mmu_account_unmapped(as->mmu, unmapped);
  as->st.unmaps++;
  pthread_mutex_unlock(&as->lock);
  return STATUS_SUCCESS;
}

NTSTATUS gpu_as_unmap_release(gpu_as *as, uint64_t va) {
  if (as == NULL || va == 0 || (va & (GPU_PAGE_SIZE - 1)) != 0 || va >= GPU_VA_LIMIT) {
    return STATUS_INVALID_PARAMETER;
  }
  NTSTATUS st = STATUS_INVALID_PARAMETER;
  uint64_t unmapped[GPU_SEGMENT_MAX_ID + 1] = {0};
  pthread_mutex_lock(&as->lock);
  struct gpu_va_block *b = va_find(as, va);
  if (b != NULL && !b->free) {
    uint64_t bytes = GPU_PAGE_SIZE << b->order;
    /* Blocks are naturally aligned: only a block under 2 MiB can lie inside a large leaf. */
    uint64_t page_size = 0;
    bool straddled = bytes < GPU_LARGE_PAGE_SIZE && pt_lookup(as, va, &page_size) != 0 &&
                     page_size > bytes;
    if (!straddled) {
      pt_clear(as, &as->root_entry, 4, 0, va, va + bytes, unmapped);
      mmu_account_unmapped(as->mmu, unmapped);
      va_push_free(as, b);
      as->st.va_reserved_blocks--;
      as->st.va_reserved_bytes -= bytes;
      st = STATUS_SUCCESS;
    }
  }
  pthread_mutex_unlock(&as->lock);
  return st;
}

/* ---- Translation and access ----------------------------------------------------------------- */

/* Untraced (with its inlined pt_lookup): outside hw/gpu's tests only the sim's hardware walk, an
 * oracle, queries, two lookups per binding after every GPU call (in close_destroy, thousands). */
PT_UNTRACED bool gpu_as_query(gpu_as *as, uint64_t va, gpu_mapping *out) {
  if (as == NULL) return false;
  uint64_t page_size = 0;
  pthread_mutex_lock(&as->lock);
  uint64_t e = pt_lookup(as, va, &page_size);
  pthread_mutex_unlock(&as->lock);
  if (e == 0) return false;
  if (out != NULL) {
    out->segment = mmu_segment(as->mmu, pte_segment_id(e));
    out->phys = pte_phys(e) + (va & (page_size - 1));
    out->writable = (e & GPU_PTE_WRITE) != 0;
    out->large = (e & GPU_PTE_LARGE) != 0;
    out->pte = e;
  }
  return true;
}

/*
 * Resolves @va for @access: on success the segment, the physical offset and the bytes left in
 * the leaf's page. Records UNMAPPED / WRITE_READ_ONLY faults (the owner check is the caller's).
 */
PT_INLINE NTSTATUS as_resolve(gpu_as *as, uint64_t va, gpu_access access, gpu_segment **out_seg,
                           uint64_t *out_phys, uint64_t *out_run) {
  uint64_t page_size = 0;
  pthread_mutex_lock(&as->lock);
  uint64_t e = pt_lookup(as, va, &page_size);
  pthread_mutex_unlock(&as->lock);
  if (e == 0) {
    as_fault(as, GPU_FAULT_UNMAPPED, access, va, 0, 0, 0);
    return GPU_STATUS_PAGE_FAULT;
  }
  gpu_segment *seg = mmu_segment(as->mmu, pte_segment_id(e));
  uint64_t phys = pte_phys(e) + (va & (page_size - 1));
  if (access == GPU_ACCESS_WRITE && !(e & GPU_PTE_WRITE)) {
    gpu_segment_page_info info = {0};
    (void)gpu_segment_get_page_info(seg, phys, &info);
    as_fault(as, GPU_FAULT_WRITE_READ_ONLY, access, va, pte_segment_id(e), phys, info.owner);
    return GPU_STATUS_PAGE_FAULT;
  }
  *out_seg = seg;
  *out_phys = phys;
  *out_run = page_size - (va & (page_size - 1));
  return STATUS_SUCCESS;
}

/* Untraced (with its inlined as_resolve): in a fuzz target only the sim's hardware walk, an
 * oracle, translates; the engine's accesses keep their instrumented copy of as_resolve. */
PT_UNTRACED NTSTATUS gpu_as_translate(gpu_as *as, uint64_t va, gpu_access access, gpu_segment **out_segment,
                          uint64_t *out_phys) {
  if (as == NULL || (access != GPU_ACCESS_READ && access != GPU_ACCESS_WRITE)) {
    return STATUS_INVALID_PARAMETER;
  }
  gpu_segment *seg;
  uint64_t phys, run;
  NTSTATUS st = as_resolve(as, va, access, &seg, &phys, &run);
  if (!NT_SUCCESS(st)) return st;
  gpu_segment_page_info info = {0};
  (void)gpu_segment_get_page_info(seg, phys, &info);
  if (info.owner == 0) {
    as_fault(as, GPU_FAULT_FREED_PAGE, access, va, gpu_segment_id(seg), phys, info.last_owner);
    return GPU_STATUS_PAGE_FAULT;
  }
  if (out_segment != NULL) *out_segment = seg;
  if (out_phys != NULL) *out_phys = phys;
  return STATUS_SUCCESS;
}

enum as_op { AS_READ, AS_WRITE, AS_FILL };

static NTSTATUS as_access(gpu_as *as, uint64_t va, uint64_t size, enum as_op op, uint8_t *buf,
                          uint32_t pattern) {
  gpu_access access = op == AS_READ ? GPU_ACCESS_READ : GPU_ACCESS_WRITE;
  uint32_t phase = 0;
  while (size > 0) {
    gpu_segment *seg;
    uint64_t phys, run;
    NTSTATUS st = as_resolve(as, va, access, &seg, &phys, &run);
    if (!NT_SUCCESS(st)) return st;
    uint64_t n = min_u64(run, size);
    gpu_segment_fault sf = {0};
    if (op == AS_READ) {
      st = gpu_segment_read(seg, phys, buf, n, &sf);
    } else if (op == AS_WRITE) {
      st = gpu_segment_write(seg, phys, buf, n, &sf);
    } else {
      st = gpu_segment_fill(seg, phys, n, pattern, phase, &sf);
    }
    if (st == GPU_STATUS_PAGE_FAULT) {
      as_fault(as, GPU_FAULT_FREED_PAGE, access, va + (sf.offset - phys), sf.segment_id,
               sf.offset, sf.last_owner);
      return st;
    }
    if (!NT_SUCCESS(st)) return st;
    if (buf != NULL) buf += n;
    phase = (uint32_t)((phase + n) & 3u);
    va += n;
    size -= n;
  }
  return STATUS_SUCCESS;
}

NTSTATUS gpu_as_read(gpu_as *as, uint64_t va, void *dst, uint64_t size) {
  if (as == NULL || (dst == NULL && size > 0)) return STATUS_INVALID_PARAMETER;
  return as_access(as, va, size, AS_READ, dst, 0);
}

NTSTATUS gpu_as_write(gpu_as *as, uint64_t va, const void *src, uint64_t size) {
  if (as == NULL || (src == NULL && size > 0)) return STATUS_INVALID_PARAMETER;
  return as_access(as, va, size, AS_WRITE, (uint8_t *)(uintptr_t)src, 0);
}

NTSTATUS gpu_as_fill(gpu_as *as, uint64_t va, uint64_t size, uint32_t pattern) {
  if (as == NULL) return STATUS_INVALID_PARAMETER;
  return as_access(as, va, size, AS_FILL, NULL, pattern);
}

/* ---- Stats and checks ----------------------------------------------------------------------- */

void gpu_as_get_stats(gpu_as *as, gpu_as_stats *out) {
  if (out == NULL) return;
  memset(out, 0, sizeof *out);
  if (as == NULL) return;
  pthread_mutex_lock(&as->lock);
  *out = as->st;
  out->va_host_bytes = as->va_blocks * sizeof(struct gpu_va_block) +
                       (as->va_hash_mask + 1) * sizeof(struct gpu_va_block *);
  pthread_mutex_unlock(&as->lock);
}

struct pt_census {
  uint64_t tables, leaves_4k, leaves_2m;
  bool ok;
  char *msg; /* the findings (gpu_as_check's buffer; NULL: none kept) */
  size_t cap;
};

/* Under ASan: the whole table page @t must be addressable (a live 4 KiB block: not freed, not
 * out of bounds); a poisoned byte is reported by the instrumented load of it. One check per
 * table, so that pt_next_used can skip the empty entries without a check per load
 * (gpu_mmu_test's test_check_reports_freed_table_under_asan). */
PT_UNTRACED static void pt_check_addressable(const struct gpu_pt *t) {
#ifdef AL_ASAN
  const volatile uint8_t *bad = __asan_region_is_poisoned((void *)(uintptr_t)t, sizeof *t);
  if (bad != NULL) (void)*bad;
#else
  (void)t;
#endif
}

/* The first non-zero entry of @t at or after @i (GPU_PT_ENTRIES: none), eight entries a test.
 * The scan covers every entry of every table after every GPU call, however few are used
 * (typically 1-2 of the 512 in each table above the leaves): with ASan's and UBSan's checks per
 * load it was ~2.3% of ddi_sequence's CPU (perf; 1.5% this way). Unchecked: pt_check_addressable
 * checked the page (ASan), the page is 4 KiB aligned (pte_table masks the entry) and @i stays in
 * bounds (UBSan). */
PT_UNTRACED PT_UNCHECKED static unsigned pt_next_used(const struct gpu_pt *t, unsigned i) {
  for (; i < GPU_PT_ENTRIES && (i & 7u) != 0; i++)
    if (t->e[i] != 0) return i;
  for (; i < GPU_PT_ENTRIES; i += 8) {
    const uint64_t *e = &t->e[i];
    if ((e[0] | e[1] | e[2] | e[3] | e[4] | e[5] | e[6] | e[7]) != 0) break;
  }
  while (i < GPU_PT_ENTRIES && t->e[i] == 0) i++;
  return i;
}

/* Checks the table that pointer entry @ref links (and its subtree). Untraced, as gpu_as_check:
 * the sim's hardware walk (a fuzzing oracle) runs it after every GPU call, and its per-entry
 * compares were an eighth of ddi_sequence's CPU while telling libFuzzer nothing about the input. */
PT_UNTRACED static void pt_check_table(const gpu_as *as, uint64_t ref, int level, uint64_t base,
                           struct pt_census *c) {
  const struct gpu_pt *t = pte_table(ref);
  c->tables++;
  uint32_t used = 0;
  uint64_t span = UINT64_C(1) << level_shift(level);
  pt_check_addressable(t);
  for (unsigned i = pt_next_used(t, 0); i < GPU_PT_ENTRIES; i = pt_next_used(t, i + 1)) {
    uint64_t e = t->e[i];
    used++;
    uint64_t va = base + i * span;
    if (pte_is_table(e)) {
      if (level == 1) {
        gpu_check_fail(&c->ok, c->msg, c->cap,
                       "gpu_as_check: AS %" PRIu32 " VA 0x%" PRIx64 ": pointer entry at level 1", as->id, va);
        continue;
      }
      if (pte_table_used(e) == 0) {
        gpu_check_fail(&c->ok, c->msg, c->cap,
                       "gpu_as_check: AS %" PRIu32 " VA 0x%" PRIx64
                       ": empty level-%d table kept (found 0 entries, expected > 0)",
                       as->id, va, level - 1);
      }
      pt_check_table(as, e, level - 1, va, c);
    } else if (level == 1) {
      c->leaves_4k++;
    } else if (level == 2 && (e & GPU_PTE_LARGE)) {
      c->leaves_2m++;
    } else {
      gpu_check_fail(&c->ok, c->msg, c->cap,
                     "gpu_as_check: AS %" PRIu32 " VA 0x%" PRIx64 ": leaf 0x%" PRIx64 " at level %d", as->id, va, e,
                     level);
    }
    if (pte_is_table(e) || va != 0) continue;
    gpu_check_fail(&c->ok, c->msg, c->cap, "gpu_as_check: AS %" PRIu32 ": page 0 is mapped", as->id);
  }
  if (used != pte_table_used(ref)) {
    gpu_check_fail(&c->ok, c->msg, c->cap,
                   "gpu_as_check: AS %" PRIu32 " level-%d table at VA 0x%" PRIx64
                   ": %" PRIu32 " live entries (found), count says %" PRIu32 " (expected)",
                   as->id, level, base, used, pte_table_used(ref));
  }
}

PT_UNTRACED bool gpu_as_check(gpu_as *as, char *msg, size_t cap) {
  if (msg != NULL && cap > 0) msg[0] = '\0';
  if (as == NULL) {
    if (msg != NULL && cap > 0) snprintf(msg, cap, "gpu_as_check: no address space");
    return false;
  }
  struct pt_census c = {.ok = true, .msg = msg, .cap = cap};
  pthread_mutex_lock(&as->lock);
  pt_check_table(as, as->root_entry, 4, 0, &c);
  const struct {
    const char *what;
    uint64_t found, expected;
  } rows[] = {
      {"tables", c.tables, as->st.pt_pages},
      {"table bytes", c.tables * sizeof(struct gpu_pt), as->st.pt_bytes},
      {"4 KiB leaves", c.leaves_4k, as->st.mapped_4k},
      {"2 MiB leaves", c.leaves_2m, as->st.mapped_2m},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    if (rows[i].found == rows[i].expected) continue;
    gpu_check_fail(&c.ok, c.msg, c.cap, "gpu_as_check: AS %" PRIu32 ": %s: %" PRIu64 " (found), %" PRIu64 " (counter)",
                   as->id, rows[i].what, rows[i].found, rows[i].expected);
  }
  pthread_mutex_unlock(&as->lock);
  return c.ok;
}

/* ---- Testing only: damage kinds for gpu_as_check (gpu_testing.h) ---------------------------- */

static const al_damage_kind_info as_damage_kinds[GPU_AS_DAMAGE_KINDS] = {
    [GPU_DAMAGE_AS_POINTER_AT_LEVEL_1] = {"as_pointer_at_level_1", "4 KiB leaf", "pointer entry at level 1"},
    [GPU_DAMAGE_AS_TABLE_AS_LEAF] = {"as_table_as_leaf", "table below the root", ": leaf 0x"},
    [GPU_DAMAGE_AS_EMPTY_TABLE_KEPT] = {"as_empty_table_kept", "table below the root", "table kept (found 0 entries"},
    [GPU_DAMAGE_AS_TABLE_COUNT] = {"as_table_count", "any table (the root first)",
                                   "live entries (found), count says"},
    [GPU_DAMAGE_AS_PAGE_ZERO_MAPPED] = {"as_page_zero_mapped", "level-1 table over VA 0", "page 0 is mapped"},
    [GPU_DAMAGE_AS_TABLES_COUNTER] = {"as_tables_counter", "any address space", ": tables: "},
    [GPU_DAMAGE_AS_TABLE_BYTES_COUNTER] = {"as_table_bytes_counter", "any address space", ": table bytes: "},
    [GPU_DAMAGE_AS_MAPPED_4K_COUNTER] = {"as_mapped_4k_counter", "any address space", ": 4 KiB leaves: "},
    [GPU_DAMAGE_AS_MAPPED_2M_COUNTER] = {"as_mapped_2m_counter", "any address space", ": 2 MiB leaves: "},
};

PT_UNTRACED const al_damage_kind_info *gpu_testing_as_damage_kind(unsigned kind) {
  return kind < GPU_AS_DAMAGE_KINDS ? &as_damage_kinds[kind] : NULL;
}

/* Whether entry @e of a level-@level table is a target. */
typedef bool (*pt_entry_fit)(uint64_t e, int level);

PT_UNTRACED static bool pt_fit_leaf_4k(uint64_t e, int level) { return level == 1 && e != 0 && !pte_is_table(e); }

PT_UNTRACED static bool pt_fit_pointer(uint64_t e, int level) { return level >= 2 && pte_is_table(e); }

/* Depth first, entries by index: counts in *@seen the entries of @t's subtree that @fit accepts
 * and returns the one numbered @wanted (NULL when it is not there). */
PT_UNTRACED static uint64_t *pt_damage_find(struct gpu_pt *t, int level, pt_entry_fit fit, uint64_t *seen,
                                            uint64_t wanted) {
  uint64_t *found = NULL;
  for (unsigned i = 0; i < GPU_PT_ENTRIES; i++) {
    const uint64_t e = t->e[i];
    if (e == 0) continue;
    if (fit(e, level) && (*seen)++ == wanted && found == NULL) found = &t->e[i];
    if (level >= 2 && pte_is_table(e)) {
      uint64_t *below = pt_damage_find(pte_table(e), level - 1, fit, seen, wanted);
      if (found == NULL) found = below;
    }
  }
  return found;
}

/* The entry @fit accepts numbered @pick modulo their number; NULL when there is none. */
PT_UNTRACED static uint64_t *pt_damage_pick(gpu_as *as, pt_entry_fit fit, uint64_t pick) {
  uint64_t count = 0;
  pt_damage_find(as_root(as), 4, fit, &count, UINT64_MAX);
  if (count == 0) return NULL;
  uint64_t seen = 0;
  return pt_damage_find(as_root(as), 4, fit, &seen, pick % count);
}

PT_UNTRACED static bool as_damage_locked(gpu_as *as, unsigned kind, uint64_t pick, gpu_damage_undo *undo) {
  uint64_t *entry = NULL;
  switch (kind) {
  case GPU_DAMAGE_AS_POINTER_AT_LEVEL_1:
    if ((entry = pt_damage_pick(as, pt_fit_leaf_4k, pick)) == NULL) return false;
    AL_DAMAGE_SET(&undo->fields, *entry, *entry | GPU_PTE_TABLE);
    return true;
  case GPU_DAMAGE_AS_TABLE_AS_LEAF:
    /* LARGE cleared too: a count's bit there would make it a well-formed 2 MiB leaf at level 2. */
    if ((entry = pt_damage_pick(as, pt_fit_pointer, pick)) == NULL) return false;
    AL_DAMAGE_SET(&undo->fields, *entry, *entry & ~(GPU_PTE_TABLE | GPU_PTE_LARGE));
    return true;
  case GPU_DAMAGE_AS_EMPTY_TABLE_KEPT:
    if ((entry = pt_damage_pick(as, pt_fit_pointer, pick)) == NULL) return false;
    AL_DAMAGE_SET(&undo->fields, *entry, *entry & ~PTE_COUNT_MASK);
    return true;
  case GPU_DAMAGE_AS_TABLE_COUNT: {
    uint64_t count = 0;
    pt_damage_find(as_root(as), 4, pt_fit_pointer, &count, UINT64_MAX);
    const uint64_t wanted = pick % (count + 1u); /* 0: the root */
    uint64_t seen = 1;
    entry = wanted == 0 ? &as->root_entry : pt_damage_find(as_root(as), 4, pt_fit_pointer, &seen, wanted);
    AL_DAMAGE_SET(&undo->fields, *entry, *entry + PTE_COUNT_ONE);
    return true;
  }
  case GPU_DAMAGE_AS_PAGE_ZERO_MAPPED: {
    /* The pointer entries on VA 0's path down to its level-1 table; none: no target. */
    uint64_t *ref = &as->root_entry;
    for (int level = 4; level > 1; level--) {
      uint64_t *next = &pte_table(*ref)->e[0];
      if (!pte_is_table(*next)) return false;
      ref = next;
    }
    struct gpu_pt *table = pte_table(*ref);
    if (table->e[0] != 0) return false; /* page 0 is never handed out: cannot happen */
    AL_DAMAGE_SET(&undo->fields, table->e[0], make_leaf(0, 0, 0, false));
    AL_DAMAGE_SET(&undo->fields, *ref, *ref + PTE_COUNT_ONE);
    AL_DAMAGE_SET(&undo->fields, as->st.mapped_4k, as->st.mapped_4k + 1u);
    return true;
  }
  case GPU_DAMAGE_AS_TABLES_COUNTER:
    AL_DAMAGE_SET(&undo->fields, as->st.pt_pages, as->st.pt_pages + 1u);
    return true;
  case GPU_DAMAGE_AS_TABLE_BYTES_COUNTER:
    AL_DAMAGE_SET(&undo->fields, as->st.pt_bytes, as->st.pt_bytes + sizeof(struct gpu_pt));
    return true;
  case GPU_DAMAGE_AS_MAPPED_4K_COUNTER:
    AL_DAMAGE_SET(&undo->fields, as->st.mapped_4k, as->st.mapped_4k + 1u);
    return true;
  case GPU_DAMAGE_AS_MAPPED_2M_COUNTER:
    AL_DAMAGE_SET(&undo->fields, as->st.mapped_2m, as->st.mapped_2m + 1u);
    return true;
  default:
    return false;
  }
}

PT_UNTRACED bool gpu_testing_damage_as(gpu_as *as, unsigned kind, uint64_t pick, gpu_damage_undo *undo) {
  if (as == NULL || undo == NULL || kind >= GPU_AS_DAMAGE_KINDS) return false;
  gpu_damage_undo fresh = {.lock = &as->lock};
  pthread_mutex_lock(&as->lock);
  const bool damaged = as_damage_locked(as, kind, pick, &fresh);
  pthread_mutex_unlock(&as->lock);
  if (damaged) *undo = fresh;
  return damaged;
}
