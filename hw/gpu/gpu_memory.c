/*
 * gpu_memory.c — memory and aperture segments of the simulated GPU (contract in gpu_memory.h).
 *
 * Layout of a segment:
 *   @pages: one struct gpu_segment_page (owner, last_owner: 16 bytes) per segment page, in an
 *           anonymous mapping (zero pages until touched, so a 1 TiB segment costs no memory
 *           until used).
 *   memory segment:   @base, one anonymous mapping of @size bytes (lazily backed, never moved).
 *   aperture segment: @host, one host pointer per segment page (NULL while free), in an
 *                     anonymous mapping; each committed page is a malloc'd block of page_size.
 *                     A released 4 KiB page's block is kept for the next commit of any
 *                     segment (see "Spare aperture page blocks" below).
 *   @stored: one bit per content granule (GPU_CONTENT_GRANULE, 4 KiB) of the segment. Set: the
 *           granule's contents are its host bytes. Clear: the granule reads as zero and its host
 *           bytes are stale (never read, and never written until the granule is stored again).
 * Sparse contents, as emulators and hypervisors keep guest memory: a zero fill or a copy of zero
 * granules clears bits instead of writing bytes, a read of a clear granule produces zeros, and
 * only stored granules are copied, so host pages behind contents nobody wrote are never touched
 * (no page faults, no memset, no memmove). A partial write to a clear granule first zeroes the
 * whole granule's host bytes ("materializes" it). A fresh segment has every bit clear, so it
 * reads as zero whatever host bytes its recycled regions hold; that is why a destroyed
 * segment's contents region is kept without scrubbing (only @stored, the tags and the page
 * pointers are scrubbed). An aperture page's bits are cleared when it is committed (it starts
 * zeroed) and when it is released (its host block is gone).
 * Every public call takes @lock (two segments: both, in address order) and checks the whole
 * range before any byte moves, so a refused call has no effect.
 */
#include "alloclab/hw/gpu_memory.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloclab/host_alloc.h"
#include "alloclab/hw/gpu_testing.h" /* the damage kinds (testing only) */

#include "alloclab/sanitizers.h"
#include "gpu_check_report.h"

#ifdef AL_ASAN
#include <sanitizer/asan_interface.h>
#define SEG_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define SEG_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SEG_POISON(p, n) ((void)(p), (void)(n))
#define SEG_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct gpu_segment_page {
  uint64_t owner;
  uint64_t last_owner;
};

struct gpu_segment {
  gpu_segment_kind kind;
  uint32_t id;
  uint64_t size;
  uint32_t page_size;
  uint32_t page_shift;
  uint64_t page_count;
  fault_injector *inj; /* borrowed */
  pthread_mutex_t lock;
  /* Everything below is protected by @lock. */
  uint8_t *base; /* memory segment: @size bytes */
  uint8_t **host; /* aperture segment: @page_count pointers */
  struct gpu_segment_page *pages;
  uint64_t *stored; /* one bit per content granule (see the top of this file) */
  size_t host_map_bytes;
  size_t pages_map_bytes;
  size_t stored_map_bytes;
  uint64_t stored_granules; /* bits set in @stored */
  uint64_t committed_pages;
  uint64_t commits, releases, injected_failures;
  /* Pages [dirty_first, dirty_end) hold every page ever committed (their tags, host pointers and
   * contents are what gpu_segment_destroy() scrubs); dirty_first > dirty_end while none was. */
  uint64_t dirty_first, dirty_end;
};

/* Marks a page or granule bookkeeping loop: under libFuzzer (clang's SanitizerCoverage) it is
 * not instrumented. Its per-page branches and compares follow the range's size and the pages'
 * tags, not anything new an input did (whether a range was committed, refused or faulted stays
 * visible in its instrumented callers), yet they ran for every page of every allocation and
 * gave libFuzzer compare features that mean nothing. ASan and UBSan still check it. */
#if defined(__clang__)
#define SEG_UNTRACED __attribute__((no_sanitize("coverage")))
#else
#define SEG_UNTRACED
#endif

/* The small helpers the untraced loops call per page or granule: always inlined, so that those
 * loops run untraced copies of them (an out-of-line helper is traced, and clang 14 does not
 * inline a traced function into an untraced one on its own: seg_stored was ~1% of
 * fault_injection's CPU as a traced call per granule). A traced caller gets a traced copy. */
#define SEG_INLINE static inline __attribute__((always_inline))

const char *gpu_status_name(NTSTATUS status) {
  switch (status) {
  case GPU_STATUS_PAGE_FAULT: return "GPU_STATUS_PAGE_FAULT";
  case GPU_STATUS_INVALID_COMMAND: return "GPU_STATUS_INVALID_COMMAND";
  default: return NULL;
  }
}

/* ---- Host mappings -------------------------------------------------------------------------- */

/*
 * Recycled mappings. A segment's regions (contents, tags, page pointers, stored bits) are
 * anonymous mappings; mapping them anew for every segment and unmapping them at destroy makes the
 * host kernel fault in and zero every page a segment touches, again for each adapter (the fuzz
 * executor brings up one adapter per program: this was most of its system time). Instead a
 * destroyed segment's metadata regions are scrubbed back to zero, only over the pages it
 * dirtied, and kept here for the next segment that needs a region of the same length; its
 * contents region is kept as it is (stale bytes), marked not zeroed: only a contents region may
 * take it, and a new segment's clear @stored bits make its bytes unobservable. So a recycled
 * region is indistinguishable from a fresh mapping to its new segment. The cache holds at most
 * SEG_CACHE_SLOTS regions of at most SEG_CACHE_MAX_BYTES each; anything else is unmapped.
 */
#define SEG_CACHE_SLOTS 16u
#define SEG_CACHE_MAX_BYTES ((size_t)64 << 20)

static struct {
  pthread_mutex_t lock;
  uint32_t count;
  struct seg_cached_region {
    void *p;
    size_t bytes;
    bool zeroed; /* every byte is zero (else: stale contents, only for a contents region) */
  } regions[SEG_CACHE_SLOTS];
} seg_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A region of @bytes: all zero, or (@any_bytes: for contents, whose bytes are never read before
 * they are stored) with stale bytes. NULL when the host refuses. */
static void *seg_map(size_t bytes, bool any_bytes) {
  pthread_mutex_lock(&seg_cache.lock);
  for (uint32_t i = seg_cache.count; i-- > 0;) {
    if (seg_cache.regions[i].bytes != bytes || !(seg_cache.regions[i].zeroed || any_bytes)) continue;
    void *p = seg_cache.regions[i].p;
    seg_cache.regions[i] = seg_cache.regions[--seg_cache.count];
    pthread_mutex_unlock(&seg_cache.lock);
    return p;
  }
  pthread_mutex_unlock(&seg_cache.lock);
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void *seg_map_zeroed(size_t bytes) { return seg_map(bytes, false); }

/* Gives back a region of @bytes. @zeroed: its bytes are all zero except [@dirty, @dirty +
 * @dirty_bytes), which this call scrubs when it keeps the region; else its bytes are stale
 * contents, kept as they are. */
static void seg_unmap(void *p, size_t bytes, bool zeroed, size_t dirty, size_t dirty_bytes) {
  if (p == NULL) return;
  if (bytes <= SEG_CACHE_MAX_BYTES) {
    if (zeroed) memset((uint8_t *)p + dirty, 0, dirty_bytes); /* before another thread can take it */
    pthread_mutex_lock(&seg_cache.lock);
    bool kept = seg_cache.count < SEG_CACHE_SLOTS;
    if (kept) seg_cache.regions[seg_cache.count++] = (struct seg_cached_region){p, bytes, zeroed};
    pthread_mutex_unlock(&seg_cache.lock);
    if (kept) return;
  }
  munmap(p, bytes);
}

/* ---- Spare aperture page blocks ------------------------------------------------------------- */

/*
 * A released 4 KiB aperture page's host block is kept here, for the next commit of any aperture
 * segment, instead of being freed: a malloc (ASan's fill of the whole block, a stack trace, fresh
 * quarantined memory) and a free per page were a sixth of a typical fuzz input's time, and a
 * fuzz input's adapter, with its segments, lives for one input. The blocks are not zeroed (a
 * committed aperture page's granules start clear, so its host bytes are never read before they
 * are stored). A kept block is poisoned under ASan but for the link in its first 8 bytes, so a
 * use of a released page's memory is still reported. Taking one asks the host-allocation fault
 * hook as malloc would (al_host_reuse_allowed): a fault input fails the same n-th allocation with
 * the spares as without. At most SEG_SPARE_MAX_PAGES blocks are kept; others are freed.
 */
#define SEG_SPARE_PAGE_SIZE 4096u
#define SEG_SPARE_MAX_PAGES 16384u /* 64 MiB: a close_destroy adapter's whole aperture */

static struct {
  pthread_mutex_t lock;
  void *head; /* each block's first 8 bytes link the next */
  size_t count;
} seg_spares = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Unlinks the first spare block (there is one), usable again. seg_spares.lock held. */
SEG_UNTRACED static uint8_t *seg_spare_pop_locked(void) {
  uint8_t *page = seg_spares.head;
  SEG_UNPOISON(page, SEG_SPARE_PAGE_SIZE);
  memcpy(&seg_spares.head, page, sizeof seg_spares.head);
  seg_spares.count--;
  return page;
}

/* Takes seg_spares.lock when @s's pages are spare-sized (4 KiB), for a whole range of pages:
 * one lock per commit or release, not one per page (a mutex pair per page was ~2% of
 * close_destroy's CPU). Returns whether it took it, for seg_spares_unlock. */
SEG_UNTRACED static bool seg_spares_lock(const gpu_segment *s) {
  if (s->page_size != SEG_SPARE_PAGE_SIZE) return false;
  pthread_mutex_lock(&seg_spares.lock);
  return true;
}

SEG_UNTRACED static void seg_spares_unlock(bool locked) {
  if (locked) pthread_mutex_unlock(&seg_spares.lock);
}

/* A block for an aperture page of @s: a spare one when there is one, else al_host_malloc.
 * @locked: seg_spares_lock's answer (the lock is held when true). */
SEG_UNTRACED static uint8_t *seg_take_page(const gpu_segment *s, bool locked) {
  if (locked && seg_spares.head != NULL) /* NULL: the fault hook refused it, as it would have malloc */
    return al_host_reuse_allowed(SEG_SPARE_PAGE_SIZE) ? seg_spare_pop_locked() : NULL;
  return al_host_malloc(s->page_size);
}

/* Gives back the block of a released aperture page. @locked: as for seg_take_page. */
SEG_UNTRACED static void seg_keep_page(bool locked, uint8_t *page) {
  if (locked && seg_spares.count < SEG_SPARE_MAX_PAGES) {
    memcpy(page, &seg_spares.head, sizeof seg_spares.head);
    SEG_POISON(page + sizeof seg_spares.head, SEG_SPARE_PAGE_SIZE - sizeof seg_spares.head);
    seg_spares.head = page;
    seg_spares.count++;
    return;
  }
  free(page);
}

size_t gpu_segment_spare_pages(void) {
  pthread_mutex_lock(&seg_spares.lock);
  size_t count = seg_spares.count;
  pthread_mutex_unlock(&seg_spares.lock);
  return count;
}

void gpu_segment_drop_cached_regions(void) {
  pthread_mutex_lock(&seg_spares.lock);
  while (seg_spares.head != NULL) free(seg_spare_pop_locked());
  pthread_mutex_unlock(&seg_spares.lock);
  pthread_mutex_lock(&seg_cache.lock);
  while (seg_cache.count > 0) {
    struct seg_cached_region r = seg_cache.regions[--seg_cache.count];
    munmap(r.p, r.bytes);
  }
  pthread_mutex_unlock(&seg_cache.lock);
}

size_t gpu_segment_cached_regions(void) {
  pthread_mutex_lock(&seg_cache.lock);
  size_t n = seg_cache.count;
  pthread_mutex_unlock(&seg_cache.lock);
  return n;
}

/* ---- Range helpers (caller holds the lock where the segment state is read) ------------------- */

static bool seg_in_bounds(const gpu_segment *s, uint64_t offset, uint64_t size) {
  return offset <= s->size && size <= s->size - offset;
}

static bool seg_page_aligned(const gpu_segment *s, uint64_t offset, uint64_t size) {
  return size > 0 && ((offset | size) & (s->page_size - 1u)) == 0;
}

/* Host address of byte @offset; the page must be backed. */
SEG_INLINE uint8_t *seg_host_byte(const gpu_segment *s, uint64_t offset) {
  if (s->kind == GPU_SEGMENT_MEMORY) return s->base + offset;
  return s->host[offset >> s->page_shift] + (offset & (s->page_size - 1u));
}

/* Bytes from @offset that are contiguous in host memory (to the end of its page or segment). */
SEG_INLINE uint64_t seg_host_run(const gpu_segment *s, uint64_t offset) {
  if (s->kind == GPU_SEGMENT_MEMORY) return s->size - offset;
  return s->page_size - (offset & (s->page_size - 1u));
}

/* True when every page touched by [offset, offset + size) is committed; otherwise describes
 * the first free one in @out_fault (may be NULL). @size > 0, range in bounds. */
SEG_UNTRACED static bool seg_range_committed(const gpu_segment *s, uint64_t offset, uint64_t size,
                                gpu_segment_fault *out_fault) {
  uint64_t first = offset >> s->page_shift;
  uint64_t last = (offset + size - 1) >> s->page_shift;
  for (uint64_t i = first; i <= last; i++) {
    if (s->pages[i].owner == 0) {
      if (out_fault != NULL) {
        uint64_t page_start = i << s->page_shift;
        out_fault->segment_id = s->id;
        out_fault->offset = page_start > offset ? page_start : offset;
        out_fault->last_owner = s->pages[i].last_owner;
      }
      return false;
    }
  }
  return true;
}

/* The single owner of a page-aligned range, or 0 when a page is free or owners differ. */
SEG_UNTRACED static uint64_t seg_single_owner(const gpu_segment *s, uint64_t offset, uint64_t size) {
  uint64_t first = offset >> s->page_shift;
  uint64_t count = size >> s->page_shift;
  uint64_t owner = s->pages[first].owner;
  for (uint64_t i = 1; i < count && owner != 0; i++) {
    if (s->pages[first + i].owner != owner) owner = 0;
  }
  return owner;
}

static void seg_lock2(gpu_segment *a, gpu_segment *b) {
  if (a == b) {
    pthread_mutex_lock(&a->lock);
  } else if ((uintptr_t)a < (uintptr_t)b) {
    pthread_mutex_lock(&a->lock);
    pthread_mutex_lock(&b->lock);
  } else {
    pthread_mutex_lock(&b->lock);
    pthread_mutex_lock(&a->lock);
  }
}

static void seg_unlock2(gpu_segment *a, gpu_segment *b) {
  pthread_mutex_unlock(&a->lock);
  if (a != b) pthread_mutex_unlock(&b->lock);
}

static bool ranges_overlap(uint64_t a, uint64_t b, uint64_t size) {
  return a < b + size && b < a + size;
}

/* ---- Sparse contents (caller holds the lock; ranges checked and committed) ------------------- */

#define SEG_GRANULE_SHIFT 12u
#define SEG_GRANULE ((uint64_t)GPU_CONTENT_GRANULE)
_Static_assert(GPU_CONTENT_GRANULE == (1u << SEG_GRANULE_SHIFT), "granule shift");
_Static_assert(GPU_CONTENT_GRANULE <= GPU_SEGMENT_PAGE_4K, "a granule lies inside one page");

SEG_INLINE bool seg_stored(const gpu_segment *s, uint64_t granule) {
  return (s->stored[granule >> 6] >> (granule & 63u)) & 1u;
}

SEG_INLINE void seg_mark_stored(gpu_segment *s, uint64_t granule) {
  s->stored[granule >> 6] |= UINT64_C(1) << (granule & 63u);
  s->stored_granules++;
}

/* Marks granules [@first, @end) as reading zero: O(1) per 64 granules. */
SEG_UNTRACED static void seg_mark_zero(gpu_segment *s, uint64_t first, uint64_t end) {
  while (first < end) {
    uint64_t lo = first & 63u;
    uint64_t n = 64u - lo;
    if (n > end - first) n = end - first;
    uint64_t mask = (n == 64u ? ~UINT64_C(0) : (UINT64_C(1) << n) - 1u) << lo;
    uint64_t *word = &s->stored[first >> 6];
    uint64_t was = *word & mask;
    if (was != 0) { /* an all-clear word is only read: its host page stays the zero page */
      s->stored_granules -= (uint64_t)__builtin_popcountll(was);
      *word &= ~mask;
    }
    first += n;
  }
}

/* Bytes from @offset (at most @max) over which the stored state stays that of @offset's
 * granule; *@out_stored receives it. */
SEG_UNTRACED static uint64_t seg_state_run(const gpu_segment *s, uint64_t offset, uint64_t max, bool *out_stored) {
  uint64_t granule = offset >> SEG_GRANULE_SHIFT;
  bool stored = seg_stored(s, granule);
  uint64_t n = SEG_GRANULE - (offset & (SEG_GRANULE - 1u));
  while (n < max && seg_stored(s, ++granule) == stored) n += SEG_GRANULE;
  *out_stored = stored;
  return n < max ? n : max;
}

/*
 * What seg_store() writes: @bytes (advanced as it goes), zeros (@bytes NULL and @pattern_fill
 * false), or a 32-bit @pattern from @phase (see gpu_segment_fill(); @phase advances).
 */
typedef struct seg_source {
  const uint8_t *bytes;
  bool pattern_fill;
  uint32_t pattern, phase;
} seg_source;

SEG_UNTRACED static void fill_bytes(uint8_t *dst, uint64_t n, uint32_t pattern, uint32_t phase) {
  uint8_t pat[4];
  for (uint32_t k = 0; k < 4; k++) pat[k] = (uint8_t)(pattern >> (8u * ((phase + k) & 3u)));
  if (pat[0] == pat[1] && pat[0] == pat[2] && pat[0] == pat[3]) {
    memset(dst, pat[0], (size_t)n);
    return;
  }
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) memcpy(dst + i, pat, 4);
  for (; i < n; i++) dst[i] = pat[i & 3u];
}

/*
 * Stores @n bytes of @src at @offset. Zeros: whole granules are marked (no byte written), a part
 * of a stored granule is zeroed, a part of a zero granule needs nothing. Data: a zero granule is
 * materialized (its host bytes zeroed) unless the store covers all of it, then marked stored.
 */
SEG_UNTRACED static void seg_store(gpu_segment *s, uint64_t offset, seg_source *src, uint64_t n) {
  const bool zeros = src->bytes == NULL && !src->pattern_fill;
  while (n > 0) {
    uint64_t granule = offset >> SEG_GRANULE_SHIFT;
    uint64_t in = offset & (SEG_GRANULE - 1u);
    if (zeros && in == 0 && n >= SEG_GRANULE) {
      uint64_t whole = n >> SEG_GRANULE_SHIFT;
      seg_mark_zero(s, granule, granule + whole);
      offset += whole << SEG_GRANULE_SHIFT;
      n -= whole << SEG_GRANULE_SHIFT;
      continue;
    }
    uint64_t c = SEG_GRANULE - in;
    if (c > n) c = n;
    bool stored = seg_stored(s, granule);
    if (zeros) {
      if (stored) memset(seg_host_byte(s, offset), 0, (size_t)c);
    } else {
      if (!stored) {
        if (c < SEG_GRANULE) memset(seg_host_byte(s, offset - in), 0, (size_t)SEG_GRANULE);
        seg_mark_stored(s, granule);
      }
      if (src->pattern_fill) {
        fill_bytes(seg_host_byte(s, offset), c, src->pattern, src->phase);
        src->phase = (uint32_t)((src->phase + c) & 3u);
      } else {
        memcpy(seg_host_byte(s, offset), src->bytes, (size_t)c);
        src->bytes += c;
      }
    }
    offset += c;
    n -= c;
  }
}

/* Copies @n bytes at @offset out to @dst: zeros for zero granules. */
SEG_UNTRACED static void seg_load(const gpu_segment *s, uint64_t offset, uint8_t *dst, uint64_t n) {
  while (n > 0) {
    bool stored;
    uint64_t c = seg_state_run(s, offset, n, &stored);
    if (stored) {
      for (uint64_t done = 0; done < c;) { /* stored runs may cross aperture pages */
        uint64_t k = seg_host_run(s, offset + done);
        if (k > c - done) k = c - done;
        memcpy(dst + done, seg_host_byte(s, offset + done), (size_t)k);
        done += k;
      }
    } else {
      memset(dst, 0, (size_t)c);
    }
    offset += c;
    dst += c;
    n -= c;
  }
}

/* Copies between checked, committed ranges (@src and @dst locked; no overlap in one segment):
 * runs of zero granules become zero stores, only stored bytes move. A store may materialize a
 * @dst granule that the rest of @src shares: it then holds zeros, which is what it read as. */
SEG_UNTRACED static void seg_copy_locked(gpu_segment *src, uint64_t src_offset, gpu_segment *dst,
                            uint64_t dst_offset, uint64_t size) {
  while (size > 0) {
    bool stored;
    uint64_t n = seg_state_run(src, src_offset, size, &stored);
    if (stored) {
      uint64_t run = seg_host_run(src, src_offset);
      if (run < n) n = run;
    }
    seg_source from = {.bytes = stored ? seg_host_byte(src, src_offset) : NULL};
    seg_store(dst, dst_offset, &from, n);
    src_offset += n;
    dst_offset += n;
    size -= n;
  }
}

/* ---- System memory: sparse host copies ------------------------------------------------------ */

/* @block[i] holds bytes [i * GPU_CONTENT_GRANULE, ...) of the range (the last block only up to
 * @size); NULL: those bytes are zero. */
struct gpu_host_copy {
  uint64_t size;
  uint64_t block_count;
  uint64_t host_bytes; /* this header + every allocated block */
  uint8_t *block[];
};

static uint64_t host_copy_block_bytes(const gpu_host_copy *copy, uint64_t i) {
  uint64_t start = i << SEG_GRANULE_SHIFT;
  return copy->size - start < SEG_GRANULE ? copy->size - start : SEG_GRANULE;
}

/* ---- Locked operations ---------------------------------------------------------------------- */

SEG_UNTRACED static NTSTATUS seg_commit_locked(gpu_segment *s, uint64_t offset, uint64_t size, uint64_t owner) {
  uint64_t first = offset >> s->page_shift;
  uint64_t count = size >> s->page_shift;
  for (uint64_t i = 0; i < count; i++) {
    if (s->pages[first + i].owner != 0) return STATUS_INVALID_PARAMETER;
  }
  if (s->kind == GPU_SEGMENT_MEMORY) {
    if (fault_injector_should_fail(s->inj, FAULT_SEGMENT_SPACE)) {
      s->injected_failures++;
      return STATUS_NO_MEMORY;
    }
  } else {
    const bool spares = seg_spares_lock(s);
    for (uint64_t i = 0; i < count; i++) {
      bool injected = fault_injector_should_fail(s->inj, FAULT_SEGMENT_SPACE);
      /* Not zeroed: a free aperture page has no stored granule, so the page reads as zero. */
      uint8_t *page = injected ? NULL : seg_take_page(s, spares);
      if (page == NULL) {
        if (injected) s->injected_failures++;
        while (i-- > 0) {
          seg_keep_page(spares, s->host[first + i]);
          s->host[first + i] = NULL;
        }
        seg_spares_unlock(spares);
        return STATUS_NO_MEMORY;
      }
      s->host[first + i] = page;
    }
    seg_spares_unlock(spares);
  }
  for (uint64_t i = 0; i < count; i++) s->pages[first + i].owner = owner;
  if (first < s->dirty_first) s->dirty_first = first;
  if (first + count > s->dirty_end) s->dirty_end = first + count;
  s->committed_pages += count;
  s->commits++;
  return STATUS_SUCCESS;
}

/* Releases a range known to be committed. */
SEG_UNTRACED static void seg_release_locked(gpu_segment *s, uint64_t offset, uint64_t size) {
  uint64_t first = offset >> s->page_shift;
  uint64_t count = size >> s->page_shift;
  const bool spares = s->kind == GPU_SEGMENT_APERTURE && seg_spares_lock(s);
  for (uint64_t i = first; i < first + count; i++) {
    s->pages[i].last_owner = s->pages[i].owner;
    s->pages[i].owner = 0;
    if (s->kind == GPU_SEGMENT_APERTURE) {
      seg_keep_page(spares, s->host[i]);
      s->host[i] = NULL;
    }
  }
  seg_spares_unlock(spares);
  if (s->kind == GPU_SEGMENT_APERTURE) /* the host blocks are gone: nothing is stored there */
    seg_mark_zero(s, offset >> SEG_GRANULE_SHIFT, (offset + size) >> SEG_GRANULE_SHIFT);
  s->committed_pages -= count;
  s->releases++;
}

/* ---- Public API ----------------------------------------------------------------------------- */

NTSTATUS gpu_segment_create(const gpu_segment_desc *desc, fault_injector *inj,
                            gpu_segment **out_segment) {
  if (desc == NULL || out_segment == NULL) return STATUS_INVALID_PARAMETER;
  uint32_t page_size = desc->page_size == 0 ? GPU_SEGMENT_PAGE_4K : desc->page_size;
  if (desc->kind != GPU_SEGMENT_MEMORY && desc->kind != GPU_SEGMENT_APERTURE) {
    return STATUS_INVALID_PARAMETER;
  }
  if (desc->id == 0 || desc->id > GPU_SEGMENT_MAX_ID) return STATUS_INVALID_PARAMETER;
  if (page_size != GPU_SEGMENT_PAGE_4K && page_size != GPU_SEGMENT_PAGE_64K) {
    return STATUS_INVALID_PARAMETER;
  }
  if (desc->size == 0 || desc->size > GPU_SEGMENT_MAX_SIZE || desc->size % page_size != 0) {
    return STATUS_INVALID_PARAMETER;
  }
  gpu_segment *s = al_host_calloc(1, sizeof *s);
  if (s == NULL) return STATUS_NO_MEMORY;
  s->kind = desc->kind;
  s->id = desc->id;
  s->size = desc->size;
  s->page_size = page_size;
  s->page_shift = (uint32_t)__builtin_ctz(page_size);
  s->page_count = desc->size >> s->page_shift;
  s->inj = inj;
  s->dirty_first = UINT64_MAX;
  s->pages_map_bytes = (size_t)s->page_count * sizeof(struct gpu_segment_page);
  s->pages = seg_map_zeroed(s->pages_map_bytes);
  if (s->pages == NULL) goto fail;
  s->stored_map_bytes = (size_t)(((s->size >> SEG_GRANULE_SHIFT) + 63u) / 64u) * sizeof(uint64_t);
  s->stored = seg_map_zeroed(s->stored_map_bytes);
  if (s->stored == NULL) goto fail;
  if (s->kind == GPU_SEGMENT_MEMORY) {
    if (fault_injector_should_fail(inj, FAULT_SEGMENT_SPACE)) goto fail;
    s->base = seg_map((size_t)s->size, true);
    if (s->base == NULL) goto fail;
  } else {
    s->host_map_bytes = (size_t)s->page_count * sizeof(uint8_t *);
    s->host = seg_map_zeroed(s->host_map_bytes);
    if (s->host == NULL) goto fail;
  }
  if (pthread_mutex_init(&s->lock, NULL) != 0) goto fail;
  *out_segment = s;
  return STATUS_SUCCESS;
fail:
  seg_unmap(s->base, (size_t)s->size, false, 0, 0);
  seg_unmap(s->host, s->host_map_bytes, true, 0, 0);
  seg_unmap(s->stored, s->stored_map_bytes, true, 0, 0);
  seg_unmap(s->pages, s->pages_map_bytes, true, 0, 0);
  free(s);
  return STATUS_NO_MEMORY;
}

void gpu_segment_destroy(gpu_segment *s) {
  if (s == NULL) return;
  uint64_t first = s->dirty_first <= s->dirty_end ? s->dirty_first : 0;
  uint64_t pages = s->dirty_first <= s->dirty_end ? s->dirty_end - s->dirty_first : 0;
  if (s->kind == GPU_SEGMENT_MEMORY) {
    seg_unmap(s->base, (size_t)s->size, false, 0, 0); /* stale bytes: @stored hides them */
  } else {
    const bool spares = seg_spares_lock(s);
    for (uint64_t i = first; i < first + pages && s->committed_pages > 0; i++) {
      if (s->host[i] != NULL) {
        seg_keep_page(spares, s->host[i]);
        s->host[i] = NULL;
        s->committed_pages--;
      }
    }
    seg_spares_unlock(spares);
    seg_unmap(s->host, s->host_map_bytes, true, (size_t)first * sizeof *s->host, (size_t)pages * sizeof *s->host);
  }
  /* Stored granules lie in pages ever committed: scrub the words that cover them. */
  uint64_t word_first = ((first << s->page_shift) >> SEG_GRANULE_SHIFT) / 64u;
  uint64_t word_end = ((((first + pages) << s->page_shift) >> SEG_GRANULE_SHIFT) + 63u) / 64u;
  seg_unmap(s->stored, s->stored_map_bytes, true, (size_t)word_first * sizeof *s->stored,
            pages ? (size_t)(word_end - word_first) * sizeof *s->stored : 0);
  seg_unmap(s->pages, s->pages_map_bytes, true, (size_t)first * sizeof *s->pages, (size_t)pages * sizeof *s->pages);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

uint32_t gpu_segment_id(const gpu_segment *s) { return s->id; }
SEG_UNTRACED gpu_segment_kind gpu_segment_get_kind(const gpu_segment *s) { return s->kind; }
uint64_t gpu_segment_size(const gpu_segment *s) { return s->size; }
SEG_UNTRACED uint32_t gpu_segment_page_size(const gpu_segment *s) { return s->page_size; }

NTSTATUS gpu_segment_commit(gpu_segment *s, uint64_t offset, uint64_t size, uint64_t owner) {
  if (s == NULL || owner == 0 || !seg_page_aligned(s, offset, size) ||
      !seg_in_bounds(s, offset, size)) {
    return STATUS_INVALID_PARAMETER;
  }
  pthread_mutex_lock(&s->lock);
  NTSTATUS st = seg_commit_locked(s, offset, size, owner);
  pthread_mutex_unlock(&s->lock);
  return st;
}

NTSTATUS gpu_segment_release(gpu_segment *s, uint64_t offset, uint64_t size) {
  if (s == NULL || !seg_page_aligned(s, offset, size) || !seg_in_bounds(s, offset, size)) {
    return STATUS_INVALID_PARAMETER;
  }
  pthread_mutex_lock(&s->lock);
  NTSTATUS st = STATUS_INVALID_PARAMETER;
  if (seg_range_committed(s, offset, size, NULL)) {
    seg_release_locked(s, offset, size);
    st = STATUS_SUCCESS;
  }
  pthread_mutex_unlock(&s->lock);
  return st;
}

/* Untraced, as the accessors only the sim's hardware walk (an oracle) calls in a fuzz target:
 * its owner checks would otherwise give libFuzzer features of their own. */
SEG_UNTRACED NTSTATUS gpu_segment_get_page_info(gpu_segment *s, uint64_t offset, gpu_segment_page_info *out) {
  if (s == NULL || out == NULL || offset >= s->size) return STATUS_INVALID_PARAMETER;
  pthread_mutex_lock(&s->lock);
  uint64_t i = offset >> s->page_shift;
  out->owner = s->pages[i].owner;
  out->last_owner = s->pages[i].last_owner;
  out->host_backed = s->kind == GPU_SEGMENT_MEMORY || s->host[i] != NULL;
  pthread_mutex_unlock(&s->lock);
  return STATUS_SUCCESS;
}

/* Shared body of read, write and fill. @op: 0 read, 1 write, 2 fill. */
static NTSTATUS seg_access(gpu_segment *s, uint64_t offset, uint64_t size, int op, void *buf,
                           uint32_t pattern, uint32_t phase, gpu_segment_fault *out_fault) {
  if (s == NULL || (buf == NULL && op != 2 && size > 0) || !seg_in_bounds(s, offset, size)) {
    return STATUS_INVALID_PARAMETER;
  }
  if (size == 0) return STATUS_SUCCESS;
  pthread_mutex_lock(&s->lock);
  if (!seg_range_committed(s, offset, size, out_fault)) {
    pthread_mutex_unlock(&s->lock);
    return GPU_STATUS_PAGE_FAULT;
  }
  if (op == 0) {
    seg_load(s, offset, buf, size);
  } else {
    /* A fill of zeros (every new allocation's) is a zero store: it marks, writes nothing. */
    seg_source src = {.bytes = op == 1 ? buf : NULL, .pattern_fill = op == 2 && pattern != 0,
                      .pattern = pattern, .phase = phase};
    seg_store(s, offset, &src, size);
  }
  pthread_mutex_unlock(&s->lock);
  return STATUS_SUCCESS;
}

NTSTATUS gpu_segment_read(gpu_segment *s, uint64_t offset, void *dst, uint64_t size,
                          gpu_segment_fault *out_fault) {
  return seg_access(s, offset, size, 0, dst, 0, 0, out_fault);
}

NTSTATUS gpu_segment_write(gpu_segment *s, uint64_t offset, const void *src, uint64_t size,
                           gpu_segment_fault *out_fault) {
  return seg_access(s, offset, size, 1, (void *)(uintptr_t)src, 0, 0, out_fault);
}

NTSTATUS gpu_segment_fill(gpu_segment *s, uint64_t offset, uint64_t size, uint32_t pattern,
                          uint32_t phase, gpu_segment_fault *out_fault) {
  if (phase > 3) return STATUS_INVALID_PARAMETER;
  return seg_access(s, offset, size, 2, NULL, pattern, phase, out_fault);
}

NTSTATUS gpu_segment_copy(gpu_segment *src, uint64_t src_offset, gpu_segment *dst,
                          uint64_t dst_offset, uint64_t size, gpu_segment_fault *out_fault) {
  if (src == NULL || dst == NULL || !seg_in_bounds(src, src_offset, size) ||
      !seg_in_bounds(dst, dst_offset, size)) {
    return STATUS_INVALID_PARAMETER;
  }
  if (size == 0) return STATUS_SUCCESS;
  if (src == dst && ranges_overlap(src_offset, dst_offset, size)) return STATUS_INVALID_PARAMETER;
  seg_lock2(src, dst);
  NTSTATUS st = GPU_STATUS_PAGE_FAULT;
  if (seg_range_committed(src, src_offset, size, out_fault) &&
      seg_range_committed(dst, dst_offset, size, out_fault)) {
    seg_copy_locked(src, src_offset, dst, dst_offset, size);
    st = STATUS_SUCCESS;
  }
  seg_unlock2(src, dst);
  return st;
}

NTSTATUS gpu_segment_transfer(gpu_segment *src, uint64_t src_offset, gpu_segment *dst,
                              uint64_t dst_offset, uint64_t size) {
  if (src == NULL || dst == NULL || !seg_page_aligned(src, src_offset, size) ||
      !seg_page_aligned(dst, dst_offset, size) || !seg_page_aligned(src, dst_offset, size) ||
      !seg_page_aligned(dst, src_offset, size) || !seg_in_bounds(src, src_offset, size) ||
      !seg_in_bounds(dst, dst_offset, size)) {
    return STATUS_INVALID_PARAMETER;
  }
  if (src == dst && ranges_overlap(src_offset, dst_offset, size)) return STATUS_INVALID_PARAMETER;
  seg_lock2(src, dst);
  NTSTATUS st = STATUS_INVALID_PARAMETER;
  uint64_t owner = seg_single_owner(src, src_offset, size);
  if (owner != 0) st = seg_commit_locked(dst, dst_offset, size, owner);
  if (NT_SUCCESS(st)) {
    seg_copy_locked(src, src_offset, dst, dst_offset, size);
    seg_release_locked(src, src_offset, size);
  }
  seg_unlock2(src, dst);
  return st;
}

NTSTATUS gpu_segment_transfer_to_host(gpu_segment *src, uint64_t src_offset, void *host,
                                      uint64_t size, uint64_t *out_owner) {
  if (src == NULL || host == NULL || !seg_page_aligned(src, src_offset, size) ||
      !seg_in_bounds(src, src_offset, size)) {
    return STATUS_INVALID_PARAMETER;
  }
  pthread_mutex_lock(&src->lock);
  uint64_t owner = seg_single_owner(src, src_offset, size);
  if (owner != 0) {
    seg_load(src, src_offset, host, size);
    seg_release_locked(src, src_offset, size);
  }
  pthread_mutex_unlock(&src->lock);
  if (owner == 0) return STATUS_INVALID_PARAMETER;
  if (out_owner != NULL) *out_owner = owner;
  return STATUS_SUCCESS;
}

NTSTATUS gpu_segment_transfer_from_host(gpu_segment *dst, uint64_t dst_offset, const void *host,
                                        uint64_t size, uint64_t owner) {
  if (dst == NULL || host == NULL || owner == 0 || !seg_page_aligned(dst, dst_offset, size) ||
      !seg_in_bounds(dst, dst_offset, size)) {
    return STATUS_INVALID_PARAMETER;
  }
  pthread_mutex_lock(&dst->lock);
  NTSTATUS st = seg_commit_locked(dst, dst_offset, size, owner);
  if (NT_SUCCESS(st)) {
    seg_source src = {.bytes = host};
    seg_store(dst, dst_offset, &src, size);
  }
  pthread_mutex_unlock(&dst->lock);
  return st;
}

void gpu_segment_get_stats(gpu_segment *s, gpu_segment_stats *out) {
  if (out == NULL) return;
  memset(out, 0, sizeof *out);
  if (s == NULL) return;
  pthread_mutex_lock(&s->lock);
  out->size = s->size;
  out->page_size = s->page_size;
  out->committed_bytes = s->committed_pages << s->page_shift;
  out->backing_bytes = s->kind == GPU_SEGMENT_MEMORY ? s->size : out->committed_bytes;
  out->metadata_bytes = s->pages_map_bytes + s->host_map_bytes + s->stored_map_bytes;
  out->stored_bytes = s->stored_granules << SEG_GRANULE_SHIFT;
  out->commits = s->commits;
  out->releases = s->releases;
  out->injected_failures = s->injected_failures;
  pthread_mutex_unlock(&s->lock);
}

SEG_UNTRACED bool gpu_segment_check(gpu_segment *s, char *msg, size_t cap) {
  if (msg != NULL && cap > 0) msg[0] = '\0';
  if (s == NULL) {
    if (msg != NULL && cap > 0) snprintf(msg, cap, "gpu_segment_check: no segment");
    return false;
  }
  bool ok = true;
  pthread_mutex_lock(&s->lock);
  uint64_t owned = 0;
  for (uint64_t i = 0; i < s->page_count; i++) {
    bool committed = s->pages[i].owner != 0;
    owned += committed;
    if (s->kind == GPU_SEGMENT_APERTURE && committed != (s->host[i] != NULL))
      gpu_check_fail(&ok, msg, cap,
                     "gpu_segment_check: segment %u page %" PRIu64 ": owner %" PRIu64
                     " but host page %p (found), expected %s",
                     s->id, i, s->pages[i].owner, (void *)s->host[i], committed ? "a host page" : "no host page");
  }
  uint64_t stored = 0;
  for (uint64_t w = 0; w < s->stored_map_bytes / sizeof *s->stored; w++) {
    uint64_t bits = s->stored[w];
    stored += (uint64_t)__builtin_popcountll(bits);
    for (; bits != 0 && s->kind == GPU_SEGMENT_APERTURE; bits &= bits - 1u) {
      uint64_t granule = w * 64u + (uint64_t)__builtin_ctzll(bits);
      uint64_t page = (granule << SEG_GRANULE_SHIFT) >> s->page_shift;
      if (s->pages[page].owner == 0)
        gpu_check_fail(&ok, msg, cap,
                       "gpu_segment_check: segment %u granule %" PRIu64 ": stored (found) on free page %" PRIu64
                       ", expected zero (a free aperture page has no host block)",
                       s->id, granule, page);
    }
  }
  if (stored != s->stored_granules)
    gpu_check_fail(&ok, msg, cap,
                   "gpu_segment_check: segment %u: %" PRIu64 " granules marked stored (found), the "
                   "stored count says %" PRIu64 " (expected)",
                   s->id, stored, s->stored_granules);
  if (owned != s->committed_pages)
    gpu_check_fail(&ok, msg, cap,
                   "gpu_segment_check: segment %u: %" PRIu64 " pages have an owner (found), the "
                   "committed count says %" PRIu64 " (expected)",
                   s->id, owned, s->committed_pages);
  pthread_mutex_unlock(&s->lock);
  return ok;
}

/* ---- System memory: public API -------------------------------------------------------------- */

/* Whether any byte of [@offset, @offset + @n) lies in a stored granule. */
/* noinline: its one caller is traced, and clang 14 would inline it there, traced. */
SEG_UNTRACED __attribute__((noinline)) static bool seg_any_stored(const gpu_segment *s, uint64_t offset, uint64_t n) {
  for (uint64_t g = offset >> SEG_GRANULE_SHIFT; g <= (offset + n - 1) >> SEG_GRANULE_SHIFT; g++) {
    if (seg_stored(s, g)) return true;
  }
  return false;
}

void gpu_host_copy_free(gpu_host_copy *copy) {
  if (copy == NULL) return;
  /* Zero granules have no block: no free(NULL) each (ASan's free interceptor is not free). */
  for (uint64_t i = 0; i < copy->block_count; i++)
    if (copy->block[i] != NULL) free(copy->block[i]);
  free(copy);
}

NTSTATUS gpu_host_copy_save(gpu_segment *src, uint64_t offset, uint64_t size,
                            gpu_host_copy **out_copy, gpu_segment_fault *out_fault) {
  if (src == NULL || out_copy == NULL || size == 0 || !seg_in_bounds(src, offset, size)) {
    return STATUS_INVALID_PARAMETER;
  }
  const uint64_t block_count = (size + SEG_GRANULE - 1u) >> SEG_GRANULE_SHIFT;
  const size_t header = sizeof(gpu_host_copy) + (size_t)block_count * sizeof(uint8_t *);
  pthread_mutex_lock(&src->lock);
  if (!seg_range_committed(src, offset, size, out_fault)) {
    pthread_mutex_unlock(&src->lock);
    return GPU_STATUS_PAGE_FAULT;
  }
  gpu_host_copy *copy = al_host_malloc(header);
  NTSTATUS st = copy != NULL ? STATUS_SUCCESS : STATUS_NO_MEMORY;
  if (copy != NULL) {
    copy->size = size;
    copy->block_count = block_count;
    copy->host_bytes = header;
    for (uint64_t i = 0; i < block_count; i++) copy->block[i] = NULL; /* freeable on failure */
    for (uint64_t i = 0; i < block_count && NT_SUCCESS(st); i++) {
      const uint64_t at = offset + (i << SEG_GRANULE_SHIFT), n = host_copy_block_bytes(copy, i);
      if (!seg_any_stored(src, at, n)) continue; /* zeros: no block */
      copy->block[i] = al_host_malloc((size_t)n);
      if (copy->block[i] == NULL) {
        st = STATUS_NO_MEMORY;
      } else {
        seg_load(src, at, copy->block[i], n);
        copy->host_bytes += n;
      }
    }
  }
  pthread_mutex_unlock(&src->lock);
  if (!NT_SUCCESS(st)) {
    gpu_host_copy_free(copy);
    return st;
  }
  *out_copy = copy;
  return STATUS_SUCCESS;
}

NTSTATUS gpu_host_copy_restore(const gpu_host_copy *copy, gpu_segment *dst, uint64_t offset,
                               gpu_segment_fault *out_fault) {
  if (copy == NULL || dst == NULL || !seg_in_bounds(dst, offset, copy->size)) {
    return STATUS_INVALID_PARAMETER;
  }
  pthread_mutex_lock(&dst->lock);
  if (!seg_range_committed(dst, offset, copy->size, out_fault)) {
    pthread_mutex_unlock(&dst->lock);
    return GPU_STATUS_PAGE_FAULT;
  }
  for (uint64_t i = 0; i < copy->block_count;) {
    /* A run of zero blocks is one zero store (marked a word at a time where aligned). */
    uint64_t end = i + 1;
    if (copy->block[i] == NULL) {
      while (end < copy->block_count && copy->block[end] == NULL) end++;
    }
    const uint64_t at = i << SEG_GRANULE_SHIFT;
    const uint64_t run_end = end << SEG_GRANULE_SHIFT;
    const uint64_t n = (run_end < copy->size ? run_end : copy->size) - at;
    seg_source src = {.bytes = copy->block[i]};
    seg_store(dst, offset + at, &src, n);
    i = end;
  }
  pthread_mutex_unlock(&dst->lock);
  return STATUS_SUCCESS;
}

NTSTATUS gpu_host_copy_read(const gpu_host_copy *copy, uint64_t offset, void *dst, uint64_t size) {
  if (copy == NULL || (dst == NULL && size > 0) || offset > copy->size || size > copy->size - offset) {
    return STATUS_INVALID_PARAMETER;
  }
  uint8_t *p = dst;
  while (size > 0) {
    const uint64_t i = offset >> SEG_GRANULE_SHIFT, in = offset & (SEG_GRANULE - 1u);
    uint64_t n = host_copy_block_bytes(copy, i) - in;
    if (n > size) n = size;
    if (copy->block[i] != NULL) {
      memcpy(p, copy->block[i] + in, (size_t)n);
    } else {
      memset(p, 0, (size_t)n);
    }
    p += n;
    offset += n;
    size -= n;
  }
  return STATUS_SUCCESS;
}

SEG_UNTRACED uint64_t gpu_host_copy_size(const gpu_host_copy *copy) { return copy != NULL ? copy->size : 0; }

uint64_t gpu_host_copy_host_bytes(const gpu_host_copy *copy) {
  return copy != NULL ? copy->host_bytes : 0;
}

/* ---- Testing only: damage kinds for gpu_segment_check (gpu_testing.h) ----------------------- */

static const al_damage_kind_info segment_damage_kinds[GPU_SEGMENT_DAMAGE_KINDS] = {
    [GPU_DAMAGE_SEGMENT_COMMITTED_COUNT] = {"segment_committed_count", "any segment",
                                            "pages have an owner (found), the committed count says"},
    [GPU_DAMAGE_SEGMENT_STORED_COUNT] = {"segment_stored_count", "any segment",
                                         "granules marked stored (found), the stored count says"},
    [GPU_DAMAGE_SEGMENT_OWNER_CLEARED] = {"segment_owner_cleared", "committed page",
                                          "pages have an owner (found), the committed count says"},
    [GPU_DAMAGE_SEGMENT_OWNER_ON_FREE_PAGE] = {"segment_owner_on_free_page", "free page",
                                               "pages have an owner (found), the committed count says"},
    [GPU_DAMAGE_APERTURE_HOST_MISSING] = {"aperture_host_missing", "committed aperture page",
                                          "expected a host page"},
    [GPU_DAMAGE_APERTURE_STORED_FREE_PAGE] = {"aperture_stored_free_page", "free aperture page",
                                              "stored (found) on free page"},
};

SEG_UNTRACED const al_damage_kind_info *gpu_testing_segment_damage_kind(unsigned kind) {
  return kind < GPU_SEGMENT_DAMAGE_KINDS ? &segment_damage_kinds[kind] : NULL;
}

/* The page (pick modulo their number, in page order) whose committed state is @committed;
 * false when there is none. Lock held. */
SEG_UNTRACED static bool seg_damage_pick_page(const gpu_segment *s, bool committed, uint64_t pick,
                                              uint64_t *out_page) {
  const uint64_t count = committed ? s->committed_pages : s->page_count - s->committed_pages;
  if (count == 0) return false;
  uint64_t seen = 0, wanted = pick % count;
  for (uint64_t i = 0; i < s->page_count; i++) {
    if ((s->pages[i].owner != 0) != committed) continue;
    if (seen++ == wanted) {
      *out_page = i;
      return true;
    }
  }
  return false;
}

SEG_UNTRACED static bool seg_damage_locked(gpu_segment *s, unsigned kind, uint64_t pick, gpu_damage_undo *undo) {
  const bool aperture = s->kind == GPU_SEGMENT_APERTURE;
  uint64_t page = 0;
  switch (kind) {
  case GPU_DAMAGE_SEGMENT_COMMITTED_COUNT:
    AL_DAMAGE_SET(&undo->fields, s->committed_pages, s->committed_pages + 1u);
    return true;
  case GPU_DAMAGE_SEGMENT_STORED_COUNT:
    AL_DAMAGE_SET(&undo->fields, s->stored_granules, s->stored_granules + 1u);
    return true;
  case GPU_DAMAGE_SEGMENT_OWNER_CLEARED:
    if (!seg_damage_pick_page(s, true, pick, &page)) return false;
    AL_DAMAGE_SET(&undo->fields, s->pages[page].owner, (uint64_t)0);
    return true;
  case GPU_DAMAGE_SEGMENT_OWNER_ON_FREE_PAGE:
    if (!seg_damage_pick_page(s, false, pick, &page)) return false;
    AL_DAMAGE_SET(&undo->fields, s->pages[page].owner, UINT64_MAX);
    return true;
  case GPU_DAMAGE_APERTURE_HOST_MISSING:
    if (!aperture || !seg_damage_pick_page(s, true, pick, &page)) return false;
    AL_DAMAGE_SET(&undo->fields, s->host[page], (uint8_t *)NULL);
    return true;
  case GPU_DAMAGE_APERTURE_STORED_FREE_PAGE: {
    if (!aperture || !seg_damage_pick_page(s, false, pick, &page)) return false;
    /* The page's first granule (a free aperture page has every bit clear), counted, so only the
     * free-page branch disagrees. */
    const uint64_t granule = (page << s->page_shift) >> SEG_GRANULE_SHIFT;
    uint64_t *word = &s->stored[granule / 64u];
    AL_DAMAGE_SET(&undo->fields, *word, *word | (UINT64_C(1) << (granule % 64u)));
    AL_DAMAGE_SET(&undo->fields, s->stored_granules, s->stored_granules + 1u);
    return true;
  }
  default:
    return false;
  }
}

SEG_UNTRACED bool gpu_testing_damage_segment(gpu_segment *s, unsigned kind, uint64_t pick, gpu_damage_undo *undo) {
  if (s == NULL || undo == NULL || kind >= GPU_SEGMENT_DAMAGE_KINDS) return false;
  gpu_damage_undo fresh = {.lock = &s->lock};
  pthread_mutex_lock(&s->lock);
  const bool damaged = seg_damage_locked(s, kind, pick, &fresh);
  pthread_mutex_unlock(&s->lock);
  if (damaged) *undo = fresh;
  return damaged;
}

SEG_UNTRACED void gpu_testing_undo(gpu_damage_undo *undo) {
  if (undo == NULL || undo->fields.count == 0) return;
  pthread_mutex_lock(undo->lock);
  al_damage_fields_restore(&undo->fields);
  pthread_mutex_unlock(undo->lock);
}
