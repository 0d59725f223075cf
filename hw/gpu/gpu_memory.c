/*
 * gpu_memory.c — memory and aperture segments of the simulated GPU (contract in gpu_memory.h).
 *
 * Layout of a segment:
 *   @pages: one struct gpu_segment_page (owner, last_owner: 16 bytes) per segment page, in an
 *           anonymous mapping (zero pages until touched, so a 1 TiB segment costs no memory
 *           until used).
 *   memory segment:   @base, one anonymous mapping of @size bytes (lazily backed, never moved).
 *   aperture segment: @host, one host pointer per segment page (NULL while free), in an
 *                     anonymous mapping; each committed page is a calloc'd block of page_size.
 * Every public call takes @lock (two segments: both, in address order) and checks the whole
 * range before any byte moves, so a refused call has no effect.
 */
#include "alloclab/hw/gpu_memory.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloclab/host_alloc.h"
#include <string.h>
#include <sys/mman.h>

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
  size_t host_map_bytes;
  size_t pages_map_bytes;
  uint64_t committed_pages;
  uint64_t commits, releases, injected_failures;
  /* Pages [dirty_first, dirty_end) hold every page ever committed (their tags, host pointers and
   * contents are what gpu_segment_destroy() scrubs); dirty_first > dirty_end while none was. */
  uint64_t dirty_first, dirty_end;
};

const char *gpu_status_name(NTSTATUS status) {
  switch (status) {
  case GPU_STATUS_PAGE_FAULT: return "GPU_STATUS_PAGE_FAULT";
  case GPU_STATUS_INVALID_COMMAND: return "GPU_STATUS_INVALID_COMMAND";
  default: return NULL;
  }
}

/* ---- Host mappings -------------------------------------------------------------------------- */

/*
 * Recycled mappings. A segment's regions (contents, tags, page pointers) are anonymous mappings;
 * mapping them anew for every segment and unmapping them at destroy makes the host kernel fault
 * in and zero every page a segment touches, again for each adapter (the fuzz executor brings up
 * one adapter per program: this was most of its system time). Instead a destroyed segment's
 * regions are scrubbed back to zero, only over the pages it dirtied, and kept here for the next
 * segment that needs a region of the same length. Every region in the cache is all zero, so a
 * recycled region is indistinguishable from a fresh mapping to its new segment. The cache holds
 * at most SEG_CACHE_SLOTS regions of at most SEG_CACHE_MAX_BYTES each; anything else is unmapped.
 */
#define SEG_CACHE_SLOTS 16u
#define SEG_CACHE_MAX_BYTES ((size_t)64 << 20)

static struct {
  pthread_mutex_t lock;
  uint32_t count;
  struct seg_cached_region {
    void *p;
    size_t bytes;
  } regions[SEG_CACHE_SLOTS];
} seg_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *seg_map_zeroed(size_t bytes) {
  pthread_mutex_lock(&seg_cache.lock);
  for (uint32_t i = seg_cache.count; i-- > 0;) {
    if (seg_cache.regions[i].bytes != bytes) continue;
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

/* Gives back a region of @bytes whose bytes are all zero except [@dirty, @dirty + @dirty_bytes),
 * which this call scrubs when it keeps the region. */
static void seg_unmap(void *p, size_t bytes, size_t dirty, size_t dirty_bytes) {
  if (p == NULL) return;
  if (bytes <= SEG_CACHE_MAX_BYTES) {
    memset((uint8_t *)p + dirty, 0, dirty_bytes); /* before another thread can take it */
    pthread_mutex_lock(&seg_cache.lock);
    bool kept = seg_cache.count < SEG_CACHE_SLOTS;
    if (kept) seg_cache.regions[seg_cache.count++] = (struct seg_cached_region){p, bytes};
    pthread_mutex_unlock(&seg_cache.lock);
    if (kept) return;
  }
  munmap(p, bytes);
}

void gpu_segment_drop_cached_regions(void) {
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
static uint8_t *seg_host_byte(const gpu_segment *s, uint64_t offset) {
  if (s->kind == GPU_SEGMENT_MEMORY) return s->base + offset;
  return s->host[offset >> s->page_shift] + (offset & (s->page_size - 1u));
}

/* Bytes from @offset that are contiguous in host memory (to the end of its page or segment). */
static uint64_t seg_host_run(const gpu_segment *s, uint64_t offset) {
  if (s->kind == GPU_SEGMENT_MEMORY) return s->size - offset;
  return s->page_size - (offset & (s->page_size - 1u));
}

/* True when every page touched by [offset, offset + size) is committed; otherwise describes
 * the first free one in @out_fault (may be NULL). @size > 0, range in bounds. */
static bool seg_range_committed(const gpu_segment *s, uint64_t offset, uint64_t size,
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
static uint64_t seg_single_owner(const gpu_segment *s, uint64_t offset, uint64_t size) {
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

/* ---- Locked operations ---------------------------------------------------------------------- */

static NTSTATUS seg_commit_locked(gpu_segment *s, uint64_t offset, uint64_t size, uint64_t owner) {
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
    for (uint64_t i = 0; i < count; i++) {
      bool injected = fault_injector_should_fail(s->inj, FAULT_SEGMENT_SPACE);
      uint8_t *page = injected ? NULL : al_host_calloc(1, s->page_size);
      if (page == NULL) {
        if (injected) s->injected_failures++;
        while (i-- > 0) {
          free(s->host[first + i]);
          s->host[first + i] = NULL;
        }
        return STATUS_NO_MEMORY;
      }
      s->host[first + i] = page;
    }
  }
  for (uint64_t i = 0; i < count; i++) s->pages[first + i].owner = owner;
  if (first < s->dirty_first) s->dirty_first = first;
  if (first + count > s->dirty_end) s->dirty_end = first + count;
  s->committed_pages += count;
  s->commits++;
  return STATUS_SUCCESS;
}

/* Releases a range known to be committed. */
static void seg_release_locked(gpu_segment *s, uint64_t offset, uint64_t size) {
  uint64_t first = offset >> s->page_shift;
  uint64_t count = size >> s->page_shift;
  for (uint64_t i = first; i < first + count; i++) {
    s->pages[i].last_owner = s->pages[i].owner;
    s->pages[i].owner = 0;
    if (s->kind == GPU_SEGMENT_APERTURE) {
      free(s->host[i]);
      s->host[i] = NULL;
    }
  }
  s->committed_pages -= count;
  s->releases++;
}

/* Copies between checked, committed ranges (@src and @dst locked). */
static void seg_copy_locked(gpu_segment *src, uint64_t src_offset, gpu_segment *dst,
                            uint64_t dst_offset, uint64_t size) {
  while (size > 0) {
    uint64_t n = size;
    uint64_t run = seg_host_run(src, src_offset);
    if (run < n) n = run;
    run = seg_host_run(dst, dst_offset);
    if (run < n) n = run;
    memcpy(seg_host_byte(dst, dst_offset), seg_host_byte(src, src_offset), (size_t)n);
    src_offset += n;
    dst_offset += n;
    size -= n;
  }
}

static void fill_bytes(uint8_t *dst, uint64_t n, uint32_t pattern, uint32_t phase) {
  uint8_t pat[4];
  for (uint32_t k = 0; k < 4; k++) pat[k] = (uint8_t)(pattern >> (8u * ((phase + k) & 3u)));
  if (pat[0] == pat[1] && pat[0] == pat[2] && pat[0] == pat[3]) {
    memset(dst, pat[0], (size_t)n); /* zero-fill of every new allocation takes this path */
    return;
  }
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) memcpy(dst + i, pat, 4);
  for (; i < n; i++) dst[i] = pat[i & 3u];
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
  if (s->kind == GPU_SEGMENT_MEMORY) {
    if (fault_injector_should_fail(inj, FAULT_SEGMENT_SPACE)) goto fail;
    s->base = seg_map_zeroed((size_t)s->size);
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
  seg_unmap(s->base, (size_t)s->size, 0, 0);
  seg_unmap(s->host, s->host_map_bytes, 0, 0);
  seg_unmap(s->pages, s->pages_map_bytes, 0, 0);
  free(s);
  return STATUS_NO_MEMORY;
}

void gpu_segment_destroy(gpu_segment *s) {
  if (s == NULL) return;
  uint64_t first = s->dirty_first <= s->dirty_end ? s->dirty_first : 0;
  uint64_t pages = s->dirty_first <= s->dirty_end ? s->dirty_end - s->dirty_first : 0;
  if (s->kind == GPU_SEGMENT_MEMORY) {
    seg_unmap(s->base, (size_t)s->size, (size_t)(first << s->page_shift), (size_t)(pages << s->page_shift));
  } else {
    for (uint64_t i = first; i < first + pages && s->committed_pages > 0; i++) {
      if (s->host[i] != NULL) {
        free(s->host[i]);
        s->host[i] = NULL;
        s->committed_pages--;
      }
    }
    seg_unmap(s->host, s->host_map_bytes, (size_t)first * sizeof *s->host, (size_t)pages * sizeof *s->host);
  }
  seg_unmap(s->pages, s->pages_map_bytes, (size_t)first * sizeof *s->pages, (size_t)pages * sizeof *s->pages);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

uint32_t gpu_segment_id(const gpu_segment *s) { return s->id; }
gpu_segment_kind gpu_segment_get_kind(const gpu_segment *s) { return s->kind; }
uint64_t gpu_segment_size(const gpu_segment *s) { return s->size; }
uint32_t gpu_segment_page_size(const gpu_segment *s) { return s->page_size; }

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

NTSTATUS gpu_segment_get_page_info(gpu_segment *s, uint64_t offset, gpu_segment_page_info *out) {
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
  uint8_t *p = buf;
  while (size > 0) {
    uint64_t n = seg_host_run(s, offset);
    if (n > size) n = size;
    uint8_t *host = seg_host_byte(s, offset);
    if (op == 0) {
      memcpy(p, host, (size_t)n);
      p += n;
    } else if (op == 1) {
      memcpy(host, p, (size_t)n);
      p += n;
    } else {
      fill_bytes(host, n, pattern, phase);
      phase = (uint32_t)((phase + n) & 3u);
    }
    offset += n;
    size -= n;
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
    uint8_t *p = host;
    for (uint64_t done = 0; done < size;) {
      uint64_t n = seg_host_run(src, src_offset + done);
      if (n > size - done) n = size - done;
      memcpy(p + done, seg_host_byte(src, src_offset + done), (size_t)n);
      done += n;
    }
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
    const uint8_t *p = host;
    for (uint64_t done = 0; done < size;) {
      uint64_t n = seg_host_run(dst, dst_offset + done);
      if (n > size - done) n = size - done;
      memcpy(seg_host_byte(dst, dst_offset + done), p + done, (size_t)n);
      done += n;
    }
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
  out->metadata_bytes = s->pages_map_bytes + s->host_map_bytes;
  out->commits = s->commits;
  out->releases = s->releases;
  out->injected_failures = s->injected_failures;
  pthread_mutex_unlock(&s->lock);
}

bool gpu_segment_check(gpu_segment *s) {
  if (s == NULL) return false;
  bool ok = true;
  pthread_mutex_lock(&s->lock);
  uint64_t owned = 0;
  for (uint64_t i = 0; i < s->page_count; i++) {
    bool committed = s->pages[i].owner != 0;
    owned += committed;
    if (s->kind == GPU_SEGMENT_APERTURE && committed != (s->host[i] != NULL)) {
      fprintf(stderr,
              "gpu_segment_check: segment %u page %" PRIu64 ": owner %" PRIu64
              " but host page %p (found), expected %s\n",
              s->id, i, s->pages[i].owner, (void *)s->host[i],
              committed ? "a host page" : "no host page");
      ok = false;
    }
  }
  if (owned != s->committed_pages) {
    fprintf(stderr,
            "gpu_segment_check: segment %u: %" PRIu64 " pages have an owner (found), the "
            "committed count says %" PRIu64 " (expected)\n",
            s->id, owned, s->committed_pages);
    ok = false;
  }
  pthread_mutex_unlock(&s->lock);
  return ok;
}
