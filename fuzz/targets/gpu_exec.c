/*
 * gpu_exec.c — the gpu target's executor and reference model (contract in gpu_exec.h).
 */
#include "gpu_exec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/hw/fault_injection.h"
#include "alloclab/hw/gpu_engine.h"
#include "alloclab/hw/gpu_memory.h"
#include "alloclab/hw/gpu_mmu.h"

#define NSEG 4u
#define MAX_AS 3u
#define KIB UINT64_C(1024)
#define PAGE UINT64_C(4096)
#define LARGE (UINT64_C(2) << 20)
#define VA_LIMIT (UINT64_C(1) << 48)
#define FAULT_RING GPU_MMU_FAULT_LOG_SIZE
#define HISTORY GPU_ENGINE_HISTORY
#define COPY_CHUNK (UINT64_C(64) << 10)

static const struct {
  gpu_segment_kind kind;
  uint32_t id;
  uint64_t size;
  uint32_t page;
} seg_cfg[NSEG] = {
    {GPU_SEGMENT_MEMORY, 1, 64 * KIB, 4096},
    {GPU_SEGMENT_APERTURE, 2, 64 * KIB, 4096},
    {GPU_SEGMENT_MEMORY, 3, 4096 * KIB, 65536},
    {GPU_SEGMENT_APERTURE, 4, 256 * KIB, 65536},
};

/* The model's own host memory ran out: not a finding about the GPU, so no oracle tag; the
 * message says where, and the abort lets libFuzzer report it as the harness's crash. */
static _Noreturn void out_of_memory(const char *where) {
  fprintf(stderr, "alloclab gpu target: out of host memory in %s (the model's own allocation)\n", where);
  fflush(stderr);
  abort();
}

/* ---- A small u64 -> entry hash (open addressing, linear probing, backward-shift delete) ----- */

/* The key of a VA's page in a page map (0 marks an empty slot). */
#define PKEY(va) (((va) >> 12) + 1)

typedef struct entry {
  uint64_t key; /* 0: empty. Page maps: PKEY(va); prefix counts: prefix + 1 */
  uint64_t phys; /* page maps: physical offset of the 4 KiB page; prefix counts: the count */
  uint64_t large_base; /* 0: a 4 KiB leaf; else the VA of the 2 MiB leaf mapping the page */
  uint8_t seg;
  bool writable;
} entry;

typedef struct hmap {
  entry *e;
  size_t cap, count; /* cap: power of two or 0 */
} hmap;

static size_t h_slot(const hmap *m, uint64_t key) {
  return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (m->cap - 1);
}

static entry *h_get(const hmap *m, uint64_t key) {
  if (m->cap == 0) return NULL;
  for (size_t i = h_slot(m, key);; i = (i + 1) & (m->cap - 1)) {
    if (m->e[i].key == key) return &m->e[i];
    if (m->e[i].key == 0) return NULL;
  }
}

static entry *h_put(hmap *m, uint64_t key);

static void h_grow(hmap *m) {
  hmap n = {calloc(m->cap ? m->cap * 2 : 64, sizeof(entry)), m->cap ? m->cap * 2 : 64, 0};
  if (n.e == NULL) out_of_memory(__func__);
  for (size_t i = 0; i < m->cap; i++) {
    if (m->e[i].key != 0) *h_put(&n, m->e[i].key) = m->e[i];
  }
  free(m->e);
  *m = n;
}

/* The entry for @key, inserted zeroed (with its key) when absent. */
static entry *h_put(hmap *m, uint64_t key) {
  if ((m->count + 1) * 2 > m->cap) h_grow(m);
  size_t i = h_slot(m, key);
  while (m->e[i].key != 0 && m->e[i].key != key) i = (i + 1) & (m->cap - 1);
  if (m->e[i].key == 0) {
    memset(&m->e[i], 0, sizeof m->e[i]);
    m->e[i].key = key;
    m->count++;
  }
  return &m->e[i];
}

static void h_del(hmap *m, uint64_t key) {
  if (m->cap == 0) return;
  size_t i = h_slot(m, key);
  while (m->e[i].key != key) {
    if (m->e[i].key == 0) return;
    i = (i + 1) & (m->cap - 1);
  }
  m->count--;
  for (size_t j = i;;) {
    m->e[i].key = 0;
    for (;;) {
      j = (j + 1) & (m->cap - 1);
      if (m->e[j].key == 0) return;
      size_t home = h_slot(m, m->e[j].key);
      /* Move e[j] into the hole at i unless its home lies cyclically in (i, j]. */
      if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) continue;
      m->e[i] = m->e[j];
      i = j;
      break;
    }
  }
}

/* ---- The model -------------------------------------------------------------------------------- */

typedef struct mseg {
  uint64_t size;
  uint32_t page;
  gpu_segment_kind kind;
  uint64_t *owner, *last_owner; /* per page */
  uint8_t *bytes;               /* shadow of the contents */
  uint8_t *dirty;               /* per page: contents changed since the last comparison */
  uint64_t commits, releases, committed_pages;
  uint64_t touched_end; /* bytes [0, touched_end) of @bytes may be non-zero */
} mseg;

/* The model's per-segment arrays, kept zeroed between inputs (the 4 MiB shadow would otherwise
 * cost every input a fresh mapping and its page faults). Single-threaded use only. */
static struct {
  uint64_t *owner, *last_owner;
  uint8_t *bytes, *dirty;
} mseg_cache[NSEG];

typedef struct mblock {
  uint64_t va, bytes;
} mblock;

typedef struct mas {
  hmap pages;            /* PKEY(va) -> mapping */
  hmap l3, l2, l1;       /* table prefixes in use (key prefix + 1, phys = count of pages) */
  mblock *blocks;        /* live VA blocks */
  size_t nblocks, capblocks;
  /* The VA allocator as gpu_mmu.h documents it: free blocks by start (phys = order), how many
   * of each order, and the bump pointer (from the first page after page 0). */
  hmap free_blocks;
  uint64_t free_count[GPU_VA_ORDERS];
  uint64_t bump;
  uint64_t slot[GPU_VA_SLOTS]; /* VA slots: block starts (0: empty) */
  uint64_t mapped_4k, mapped_2m;
  uint64_t mapped_pages[NSEG]; /* 4 KiB pages mapped per segment index */
  uint64_t queued;          /* submissions queued in this space (its pins) */
} mas;

typedef struct msub {
  unsigned as;
  uint64_t fence;
  uint8_t *stream;
  size_t stream_len;
  uint8_t *readback; /* what the GPU writes (borrowed by the engine until completion) */
  size_t readback_bytes;
  unsigned callback; /* submit's callback mode (gpu_input.h) */
} msub;

typedef struct completion {
  uint64_t fence;
  NTSTATUS status;
  /* what the callback saw when it called back into the engine (modes 1 and 2) */
  size_t reentrant_runs;
  NTSTATUS reentrant_submit;
} completion;

typedef struct world {
  const gpu_exec_options *opt;
  gpu_exec_result *res;
  const gpu_input *in;
  size_t op_index;
  bool failed;

  fault_injector inj;
  gpu_segment *seg[NSEG];
  gpu_mmu *mmu;
  gpu_as *as[MAX_AS];
  unsigned nas;
  gpu_engine *engine;

  mseg ms[NSEG];
  mas ma[MAX_AS];

  /* host buffers (to_host / from_host): the harness's buffer and the model's bytes */
  uint8_t *host[GPU_SLOTS], *mhost[GPU_SLOTS];
  uint64_t host_size[GPU_SLOTS], host_owner[GPU_SLOTS];
  /* host copies */
  gpu_host_copy *copy[GPU_SLOTS];
  uint8_t *mcopy[GPU_SLOTS];
  uint64_t mcopy_size[GPU_SLOTS];

  /* the command stream being built */
  uint8_t *stream;
  size_t stream_len, stream_cap;

  /* engine model */
  msub *queue;
  size_t qhead, qlen, qcap;
  uint64_t last_submitted, completed_fence;
  gpu_engine_stats est;
  completion *history; /* every completion, in order */
  size_t nhistory, caphistory;
  /* completions the engine reported through the callback, not yet checked */
  completion got[GPU_INPUT_MAX_OPS];
  size_t ngot;
  bool predicted_fire; /* the op in progress expects the armed failure to fire */
  bool has_status;      /* the op in progress returned a status (for the verbose trace) */
  NTSTATUS last_status;

  /* fault log model */
  gpu_fault ring[FAULT_RING];
  size_t ring_start, ring_len;
  uint64_t fault_total;
} world;

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static const char *status_name(NTSTATUS st, char *buf, size_t cap) {
  if (gpu_status_name(st) != NULL) return gpu_status_name(st);
  switch (st) {
  case STATUS_SUCCESS: return "STATUS_SUCCESS";
  case STATUS_TIMEOUT: return "STATUS_TIMEOUT";
  case STATUS_INVALID_PARAMETER: return "STATUS_INVALID_PARAMETER";
  case STATUS_NO_MEMORY: return "STATUS_NO_MEMORY";
  case STATUS_DEVICE_REMOVED: return "STATUS_DEVICE_REMOVED";
  case STATUS_GRAPHICS_NO_VIDEO_MEMORY: return "STATUS_GRAPHICS_NO_VIDEO_MEMORY";
  case GPU_STATUS_PAGE_FAULT: return "GPU_STATUS_PAGE_FAULT";
  case GPU_STATUS_INVALID_COMMAND: return "GPU_STATUS_INVALID_COMMAND";
  default: snprintf(buf, cap, "STATUS_%08" PRIx32, (uint32_t)st); return buf;
  }
}

__attribute__((format(printf, 2, 3))) static void fail(world *w, const char *fmt, ...) {
  if (w->failed) return;
  w->failed = true;
  char line[256] = "teardown";
  if (w->op_index < w->in->op_count) gpu_op_format(&w->in->ops[w->op_index], line, sizeof line);
  int n = snprintf(w->res->message, sizeof w->res->message, "op %zu (%s): ", w->op_index, line);
  if (n < 0 || (size_t)n >= sizeof w->res->message) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->res->message + n, sizeof w->res->message - (size_t)n, fmt, ap);
  va_end(ap);
  w->res->failed_op = w->op_index;
}

static void expect_status(world *w, const char *what, NTSTATUS got, NTSTATUS want) {
  w->last_status = got;
  w->has_status = true;
  if (got == want) return;
  char a[32], b[32];
  fail(w, "%s returned %s, the model expects %s", what, status_name(got, a, sizeof a),
       status_name(want, b, sizeof b));
}

/* ---- Model: segments ---------------------------------------------------------------------- */

static bool m_in_bounds(const mseg *s, uint64_t off, uint64_t size) {
  return off <= s->size && size <= s->size - off;
}

static bool m_aligned(const mseg *s, uint64_t off, uint64_t size) {
  return size > 0 && off % s->page == 0 && size % s->page == 0;
}

/* The first byte of [off, off + size) (size > 0) on a free page, or UINT64_MAX. */
static uint64_t m_first_free(const mseg *s, uint64_t off, uint64_t size) {
  for (uint64_t p = off / s->page; p <= (off + size - 1) / s->page; p++) {
    if (s->owner[p] == 0) return p * s->page > off ? p * s->page : off;
  }
  return UINT64_MAX;
}

/* The one owner of every page of an aligned range, or 0 (a free page or two owners). */
static uint64_t m_single_owner(const mseg *s, uint64_t off, uint64_t size) {
  uint64_t owner = s->owner[off / s->page];
  for (uint64_t p = off / s->page; p < (off + size) / s->page; p++) {
    if (s->owner[p] != owner) return 0;
  }
  return owner;
}

static bool m_any_committed(const mseg *s, uint64_t off, uint64_t size) {
  for (uint64_t p = off / s->page; p < (off + size) / s->page; p++) {
    if (s->owner[p] != 0) return true;
  }
  return false;
}

static void m_touch(mseg *s, uint64_t off, uint64_t size) {
  if (size == 0) return;
  if (off + size > s->touched_end) s->touched_end = off + size;
  for (uint64_t p = off / s->page; p <= (off + size - 1) / s->page; p++) s->dirty[p] = 1;
}

static void m_commit(mseg *s, uint64_t off, uint64_t size, uint64_t owner) {
  for (uint64_t p = off / s->page; p < (off + size) / s->page; p++) s->owner[p] = owner;
  if (s->kind == GPU_SEGMENT_APERTURE) memset(s->bytes + off, 0, size);
  m_touch(s, off, size);
  s->committed_pages += size / s->page;
  s->commits++;
}

static void m_release(mseg *s, uint64_t off, uint64_t size) {
  for (uint64_t p = off / s->page; p < (off + size) / s->page; p++) {
    s->last_owner[p] = s->owner[p];
    s->owner[p] = 0;
  }
  s->committed_pages -= size / s->page;
  s->releases++;
}

/* How many FAULT_SEGMENT_SPACE calls committing @size bytes makes (header: once per memory
 * commit, once per aperture host page). */
static uint64_t m_commit_consults(const mseg *s, uint64_t size) {
  return s->kind == GPU_SEGMENT_MEMORY ? 1 : size / s->page;
}

/* Byte k of @dst gets byte (phase + k) % 4 of @pattern (the first 4 bytes, then doubling copies). */
static void pattern_bytes(uint8_t *dst, uint64_t size, uint32_t pattern, uint32_t phase) {
  for (uint64_t k = 0; k < size && k < 4; k++) dst[k] = (uint8_t)(pattern >> (8u * ((phase + k) & 3u)));
  for (uint64_t have = 4; have < size; have *= 2) memcpy(dst + have, dst, min_u64(have, size - have));
}

/* Byte k gets seed + 13 k (mod 256): period 256, so the same doubling copies. */
static void seed_bytes(uint8_t *dst, uint64_t size, uint32_t seed) {
  for (uint64_t k = 0; k < size && k < 256; k++) dst[k] = (uint8_t)(seed + 13u * k);
  for (uint64_t have = 256; have < size; have *= 2) memcpy(dst + have, dst, min_u64(have, size - have));
}

/* ---- Model: address spaces ---------------------------------------------------------------- */

static void prefix_add(hmap *m, uint64_t prefix, int delta) {
  entry *e = h_put(m, prefix + 1);
  e->phys = (uint64_t)((int64_t)e->phys + delta);
  if (e->phys == 0) h_del(m, prefix + 1);
}

static void m_map_page(mas *a, uint64_t va, unsigned seg, uint64_t phys, bool writable, uint64_t large_base) {
  entry *e = h_put(&a->pages, PKEY(va));
  e->phys = phys;
  e->seg = (uint8_t)seg;
  e->writable = writable;
  e->large_base = large_base;
  a->mapped_pages[seg]++;
  prefix_add(&a->l3, va >> 39, 1);
  prefix_add(&a->l2, va >> 30, 1);
  if (large_base == 0) {
    prefix_add(&a->l1, va >> 21, 1);
    a->mapped_4k++;
  } else if (va == large_base) {
    a->mapped_2m++;
  }
}

static void m_unmap_page(mas *a, uint64_t va) {
  entry *e = h_get(&a->pages, PKEY(va));
  if (e == NULL) return;
  bool large = e->large_base != 0;
  bool head = e->large_base == va;
  a->mapped_pages[e->seg]--;
  h_del(&a->pages, PKEY(va));
  prefix_add(&a->l3, va >> 39, -1);
  prefix_add(&a->l2, va >> 30, -1);
  if (!large) {
    prefix_add(&a->l1, va >> 21, -1);
    a->mapped_4k--;
  } else if (head) {
    a->mapped_2m--;
  }
}

static uint64_t m_pt_pages(const mas *a) { return 1 + a->l3.count + a->l2.count + a->l1.count; }

/* Whether a 2 MiB leaf covers part of [va, va + size) and part of what is outside it. */
static bool m_large_straddles(const mas *a, uint64_t va, uint64_t size) {
  uint64_t ends[2] = {va, va + size - PAGE};
  for (int i = 0; i < 2; i++) {
    const entry *e = h_get(&a->pages, PKEY(ends[i]));
    if (e != NULL && e->large_base != 0 && (e->large_base < va || e->large_base + LARGE > va + size)) {
      return true;
    }
  }
  return false;
}

static bool m_any_mapped(const mas *a, uint64_t va, uint64_t size) {
  if (size / PAGE <= a->pages.count) {
    for (uint64_t v = va; v < va + size; v += PAGE) {
      if (h_get(&a->pages, PKEY(v)) != NULL) return true;
    }
    return false;
  }
  for (size_t i = 0; i < a->pages.cap; i++) {
    uint64_t v = (a->pages.e[i].key - 1) << 12;
    if (a->pages.e[i].key != 0 && v >= va && v < va + size) return true;
  }
  return false;
}

static void m_unmap_range(mas *a, uint64_t va, uint64_t size) {
  if (size / PAGE <= a->pages.count) {
    for (uint64_t v = va; v < va + size; v += PAGE) m_unmap_page(a, v);
    return;
  }
  /* Collect first: deleting while scanning moves entries. */
  uint64_t *keys = malloc((a->pages.count + 1) * sizeof *keys);
  if (keys == NULL) out_of_memory(__func__);
  size_t n = 0;
  for (size_t i = 0; i < a->pages.cap; i++) {
    uint64_t v = (a->pages.e[i].key - 1) << 12;
    if (a->pages.e[i].key != 0 && v >= va && v < va + size) keys[n++] = v;
  }
  for (size_t i = 0; i < n; i++) m_unmap_page(a, keys[i]);
  free(keys);
}

static mblock *m_block_at(mas *a, uint64_t va) {
  for (size_t i = 0; i < a->nblocks; i++) {
    if (a->blocks[i].va == va) return &a->blocks[i];
  }
  return NULL;
}

static void m_block_remove(mas *a, mblock *b) { *b = a->blocks[--a->nblocks]; }

static uint64_t va_of(const world *w, unsigned asi, gpu_va_operand v) {
  if (v.base < GPU_VA_SLOTS) return w->ma[asi].slot[v.base] + v.value;
  if (v.base == GPU_VA_BASE_TOP) return VA_LIMIT - v.value;
  return v.value;
}

/* The number of page-table pages mapping [va, va + size) would add (rule of gpu_mmu.h). */
static uint64_t m_map_new_tables(const mas *a, uint64_t va, uint64_t phys, uint64_t size, bool allow_large) {
  hmap seen = {0};
  uint64_t n = 0;
  for (uint64_t done = 0; done < size;) {
    uint64_t v = va + done, p = phys + done;
    uint64_t keys[3] = {(v >> 39) + 1, ((v >> 30) + 1) | (UINT64_C(1) << 62), ((v >> 21) + 1) | (UINT64_C(2) << 62)};
    const hmap *have[3] = {&a->l3, &a->l2, &a->l1};
    bool large = allow_large && (v % LARGE) == 0 && (p % LARGE) == 0 && size - done >= LARGE;
    for (int l = 0; l < (large ? 2 : 3); l++) {
      uint64_t plain = keys[l] & ~(UINT64_C(3) << 62);
      if (h_get(have[l], plain) == NULL && h_get(&seen, keys[l]) == NULL) {
        h_put(&seen, keys[l]);
        n++;
      }
    }
    done += large ? LARGE : PAGE;
  }
  free(seen.e);
  return n;
}

/* ---- Model: faults -------------------------------------------------------------------------- */

static void m_fault(world *w, unsigned asi, gpu_fault_kind kind, gpu_access access, uint64_t va,
                    uint32_t seg_id, uint64_t phys, uint64_t last_owner) {
  w->fault_total++;
  gpu_fault f = {w->fault_total, asi + 1, kind, access, seg_id, va, phys, last_owner};
  if (w->ring_len < FAULT_RING) {
    w->ring[(w->ring_start + w->ring_len++) % FAULT_RING] = f;
  } else {
    w->ring[w->ring_start] = f;
    w->ring_start = (w->ring_start + 1) % FAULT_RING;
  }
}

enum { ACC_READ, ACC_WRITE, ACC_FILL };

/*
 * An access through address space @asi as gpu_mmu.h describes it: walked leaf by leaf (4 KiB,
 * or the rest of a 2 MiB leaf); a leaf's run faults whole when one of its segment pages is free
 * (nothing of that run is accessed; the runs before it were). @buf: read destination / write
 * source. Returns the status; records the fault.
 */
static NTSTATUS m_access(world *w, unsigned asi, uint64_t va, uint64_t size, int op, uint8_t *buf,
                         uint32_t pattern) {
  gpu_access access = op == ACC_READ ? GPU_ACCESS_READ : GPU_ACCESS_WRITE;
  const mas *a = &w->ma[asi];
  for (uint64_t k = 0; k < size;) {
    uint64_t v = va + k;
    const entry *e = v < VA_LIMIT ? h_get(&a->pages, PKEY(v)) : NULL;
    if (e == NULL) {
      m_fault(w, asi, GPU_FAULT_UNMAPPED, access, v, 0, 0, 0);
      return GPU_STATUS_PAGE_FAULT;
    }
    mseg *s = &w->ms[e->seg];
    uint64_t phys = e->phys + (v & (PAGE - 1));
    if (access == GPU_ACCESS_WRITE && !e->writable) {
      m_fault(w, asi, GPU_FAULT_WRITE_READ_ONLY, access, v, seg_cfg[e->seg].id, phys, s->owner[phys / s->page]);
      return GPU_STATUS_PAGE_FAULT;
    }
    uint64_t leaf_end = e->large_base != 0 ? e->large_base + LARGE : (v & ~(PAGE - 1)) + PAGE;
    uint64_t n = min_u64(leaf_end - v, size - k);
    uint64_t free_at = m_first_free(s, phys, n);
    if (free_at != UINT64_MAX) {
      m_fault(w, asi, GPU_FAULT_FREED_PAGE, access, v + (free_at - phys), seg_cfg[e->seg].id, free_at,
              s->last_owner[free_at / s->page]);
      return GPU_STATUS_PAGE_FAULT;
    }
    if (op == ACC_READ) {
      memcpy(buf + k, s->bytes + phys, n);
    } else if (op == ACC_WRITE) {
      memcpy(s->bytes + phys, buf + k, n);
      m_touch(s, phys, n);
    } else {
      pattern_bytes(s->bytes + phys, n, pattern, (uint32_t)(k & 3u));
      m_touch(s, phys, n);
    }
    k += n;
  }
  return STATUS_SUCCESS;
}

/* ---- Model: command streams --------------------------------------------------------------- */

static uint64_t le(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* Validates a stream as gpu_engine.h's format says; counts its records. */
static bool m_stream_valid(const uint8_t *s, size_t len, size_t readback, size_t *records) {
  const uint64_t max = GPU_CMD_MAX_BYTES;
  size_t pos = 0;
  *records = 0;
  while (pos < len) {
    if (len - pos < 8) return false;
    uint64_t opcode = le(s + pos, 4), length = le(s + pos + 4, 4);
    if (length > len - pos - 8) return false;
    const uint8_t *p = s + pos + 8;
    if (opcode == 1) {
      if (length != 20) return false;
      uint64_t va = le(p, 8), size = le(p + 8, 8);
      if (size > max || va > UINT64_MAX - size) return false;
    } else if (opcode == 2) {
      if (length != 24) return false;
      uint64_t src = le(p, 8), dst = le(p + 8, 8), size = le(p + 16, 8);
      if (size > max || src > UINT64_MAX - size || dst > UINT64_MAX - size) return false;
      if (size > 0 && src < dst + size && dst < src + size) return false;
    } else if (opcode == 3) {
      if (length != 24) return false;
      uint64_t va = le(p, 8), size = le(p + 8, 8), off = le(p + 16, 8);
      if (size > max || va > UINT64_MAX - size || off > readback || size > readback - off) return false;
    } else if (opcode != 0) {
      return false;
    }
    pos += 8 + (size_t)length;
    (*records)++;
  }
  return true;
}

/* Executes one submission in the model: its status; @commands: records run; @rb: the model's
 * readback buffer. */
static NTSTATUS m_execute(world *w, const msub *sub, uint8_t *rb, uint64_t *commands) {
  size_t records;
  *commands = 0;
  if (!m_stream_valid(sub->stream, sub->stream_len, sub->readback_bytes, &records)) {
    return GPU_STATUS_INVALID_COMMAND;
  }
  uint8_t *chunk = NULL;
  NTSTATUS st = STATUS_SUCCESS;
  for (size_t pos = 0; pos < sub->stream_len && st == STATUS_SUCCESS;) {
    const uint8_t *r = sub->stream + pos;
    uint64_t opcode = le(r, 4), length = le(r + 4, 4);
    const uint8_t *p = r + 8;
    if (opcode == 1) {
      st = m_access(w, sub->as, le(p, 8), le(p + 8, 8), ACC_FILL, NULL, (uint32_t)le(p + 16, 4));
    } else if (opcode == 2) {
      uint64_t src = le(p, 8), dst = le(p + 8, 8), size = le(p + 16, 8);
      if (chunk == NULL && (chunk = malloc(COPY_CHUNK)) == NULL) out_of_memory(__func__);
      for (uint64_t done = 0; done < size && st == STATUS_SUCCESS;) {
        uint64_t n = min_u64(COPY_CHUNK, size - done);
        st = m_access(w, sub->as, src + done, n, ACC_READ, chunk, 0);
        if (st == STATUS_SUCCESS) st = m_access(w, sub->as, dst + done, n, ACC_WRITE, chunk, 0);
        done += n;
      }
    } else if (opcode == 3) {
      st = m_access(w, sub->as, le(p, 8), le(p + 8, 8), ACC_READ, rb + le(p + 16, 8), 0);
    }
    if (st == STATUS_SUCCESS) (*commands)++;
    pos += 8 + (size_t)length;
  }
  free(chunk);
  return st;
}

/* ---- The harness ---------------------------------------------------------------------------- */

/* The completion callback: records what the engine reported. Callbacks come in submit order,
 * so the ngot-th belongs to the submission ngot places after the model's queue head. */
static void on_complete(void *ctx, uint64_t fence, NTSTATUS status) {
  world *w = ctx;
  completion c = {fence, status, 0, STATUS_SUCCESS};
  unsigned mode = w->ngot < w->qlen ? w->queue[w->qhead + w->ngot].callback : 0;
  if (mode == 1) {
    c.reentrant_runs = gpu_engine_run(w->engine, SIZE_MAX);
    gpu_engine_wait_idle(w->engine);
  } else if (mode == 2 && status == STATUS_DEVICE_REMOVED) {
    gpu_submission more = {w->as[w->queue[w->qhead + w->ngot].as], NULL, 0, UINT64_MAX, NULL, 0, NULL, NULL};
    c.reentrant_submit = gpu_engine_submit(w->engine, &more);
  }
  if (w->ngot < sizeof w->got / sizeof w->got[0]) w->got[w->ngot] = c;
  w->ngot++;
}

static void record_completion(world *w, uint64_t fence, NTSTATUS st) {
  if (w->nhistory == w->caphistory) {
    w->caphistory = w->caphistory ? w->caphistory * 2 : 64;
    w->history = realloc(w->history, w->caphistory * sizeof *w->history);
    if (w->history == NULL) out_of_memory(__func__);
  }
  w->history[w->nhistory++] = (completion){.fence = fence, .status = st};
  w->completed_fence = fence;
  w->est.completed++;
  w->est.queued--;
  if (st == STATUS_SUCCESS) {
    w->est.succeeded++;
  } else if (st == GPU_STATUS_PAGE_FAULT) {
    w->est.faulted++;
  } else if (st == STATUS_DEVICE_REMOVED) {
    w->est.cancelled++;
  } else {
    w->est.invalid++;
  }
}

/* Runs the model for the @n submissions at the head of the queue, which the engine just ran
 * (or cancelled, @cancel), and compares their completions and readback bytes. */
static void complete_queued(world *w, size_t n, bool cancel) {
  if (w->ngot != n) {
    fail(w, "%zu completion callbacks, the model expects %zu", w->ngot, n);
  }
  for (size_t i = 0; i < n && !w->failed; i++) {
    msub *sub = &w->queue[w->qhead];
    NTSTATUS want = STATUS_DEVICE_REMOVED;
    uint64_t commands = 0;
    uint8_t *rb = calloc(sub->readback_bytes + 1, 1);
    if (rb == NULL) out_of_memory(__func__);
    if (!cancel) want = m_execute(w, sub, rb, &commands);
    w->est.commands += commands;
    w->ma[sub->as].queued--;
    record_completion(w, sub->fence, want);
    char a[32], b[32];
    if (w->got[i].fence != sub->fence || w->got[i].status != want) {
      fail(w, "completion %zu: fence %" PRIu64 " status %s, the model expects fence %" PRIu64 " status %s", i,
           w->got[i].fence, status_name(w->got[i].status, a, sizeof a), sub->fence, status_name(want, b, sizeof b));
    } else if (w->got[i].reentrant_runs != 0) {
      fail(w, "fence %" PRIu64 ": gpu_engine_run from its completion callback ran %zu submissions, the contract "
              "says none",
           sub->fence, w->got[i].reentrant_runs);
    } else if (sub->callback == 2 && cancel && w->got[i].reentrant_submit != STATUS_DEVICE_REMOVED) {
      fail(w, "fence %" PRIu64 ": a submit from its cancellation callback returned %s, the model expects "
              "STATUS_DEVICE_REMOVED",
           sub->fence, status_name(w->got[i].reentrant_submit, a, sizeof a));
    } else if (sub->readback_bytes > 0 && memcmp(rb, sub->readback, sub->readback_bytes) != 0) {
      size_t at = 0;
      while (rb[at] == sub->readback[at]) at++;
      fail(w, "fence %" PRIu64 ": readback byte %zu is 0x%02x, the model expects 0x%02x", sub->fence, at,
           sub->readback[at], rb[at]);
    }
    free(rb);
    free(sub->stream);
    free(sub->readback);
    sub->stream = NULL;
    sub->readback = NULL;
    w->qhead++;
    w->qlen--;
  }
  w->ngot = 0;
}

static bool bytes_equal(world *w, const char *what, const uint8_t *got, const uint8_t *want, uint64_t size) {
  if (memcmp(got, want, size) == 0) return true;
  uint64_t at = 0;
  while (got[at] == want[at]) at++;
  fail(w, "%s: byte %" PRIu64 " is 0x%02x, the model expects 0x%02x", what, at, got[at], want[at]);
  return false;
}

static void check_fault_struct(world *w, const char *what, const gpu_segment_fault *f, const mseg *s,
                               unsigned si, uint64_t at) {
  if (f->segment_id != seg_cfg[si].id || f->offset != at || f->last_owner != s->last_owner[at / s->page]) {
    fail(w, "%s fault {segment %u, offset 0x%" PRIx64 ", last owner %" PRIu64 "}, the model expects {%u, 0x%" PRIx64
            ", %" PRIu64 "}",
         what, f->segment_id, f->offset, f->last_owner, seg_cfg[si].id, at, s->last_owner[at / s->page]);
  }
}

/* Every page the model maps must be mapped the same way (with the leaf counts equal, checked
 * after every op, nothing else is mapped either). */
static void compare_mappings(world *w) {
  for (unsigned i = 0; i < w->nas && !w->failed; i++) {
    const hmap *m = &w->ma[i].pages;
    for (size_t k = 0; k < m->cap && !w->failed; k++) {
      const entry *e = &m->e[k];
      if (e->key == 0) continue;
      uint64_t va = (e->key - 1) << 12;
      gpu_mapping g;
      memset(&g, 0, sizeof g);
      bool found = gpu_as_query(w->as[i], va, &g);
      if (!found || g.segment != w->seg[e->seg] || g.phys != e->phys || g.writable != e->writable ||
          g.large != (e->large_base != 0)) {
        fail(w, "address space %u VA 0x%" PRIx64 ": %s segment %u phys 0x%" PRIx64 " writable %d large %d, the model "
                "maps segment %u phys 0x%" PRIx64 " writable %d large %d",
             i + 1, va, found ? "mapped to" : "unmapped;", g.segment ? gpu_segment_id(g.segment) : 0, g.phys,
             g.writable, g.large, seg_cfg[e->seg].id, e->phys, e->writable, e->large_base != 0);
      }
    }
  }
}

/* Compares the contents of the segment's committed pages (all, or only dirty ones). */
static void compare_contents(world *w, bool all) {
  if (all) compare_mappings(w);
  uint8_t *buf = NULL;
  for (unsigned si = 0; si < NSEG && !w->failed; si++) {
    mseg *s = &w->ms[si];
    for (uint64_t p = 0; p < s->size / s->page && !w->failed; p++) {
      if (all) {
        gpu_segment_page_info info;
        memset(&info, 0, sizeof info);
        NTSTATUS st = gpu_segment_get_page_info(w->seg[si], p * s->page + s->page - 1, &info);
        bool backed = s->kind == GPU_SEGMENT_MEMORY || s->owner[p] != 0;
        if (st != STATUS_SUCCESS || info.owner != s->owner[p] || info.last_owner != s->last_owner[p] ||
            info.host_backed != backed) {
          fail(w, "segment %u page %" PRIu64 ": owner %" PRIu64 " last owner %" PRIu64 " host backed %d, the model "
                  "expects %" PRIu64 " %" PRIu64 " %d",
               seg_cfg[si].id, p, info.owner, info.last_owner, info.host_backed, s->owner[p], s->last_owner[p], backed);
          break;
        }
      }
      if (!all && !s->dirty[p]) continue;
      s->dirty[p] = 0;
      if (s->owner[p] == 0) continue;
      if (buf == NULL && (buf = malloc(65536)) == NULL) out_of_memory(__func__);
      NTSTATUS st = gpu_segment_read(w->seg[si], p * s->page, buf, s->page, NULL);
      char what[96];
      snprintf(what, sizeof what, "segment %u page %" PRIu64 " contents", seg_cfg[si].id, p);
      if (st != STATUS_SUCCESS) {
        expect_status(w, what, st, STATUS_SUCCESS);
      } else {
        bytes_equal(w, what, buf, s->bytes + p * s->page, s->page);
      }
    }
  }
  free(buf);
}

/* The checks after every op: walks, statistics, fault total, changed contents. */
static void check_world(world *w) {
  for (unsigned i = 0; i < w->nas && !w->failed; i++) {
    char finding[512];
    if (!gpu_as_check(w->as[i], finding, sizeof finding))
      fail(w, "gpu_as_check failed on address space %u: %s", i + 1, finding);
    gpu_as_stats st;
    gpu_as_get_stats(w->as[i], &st);
    const mas *a = &w->ma[i];
    uint64_t va_bytes = 0;
    for (size_t b = 0; b < a->nblocks; b++) va_bytes += a->blocks[b].bytes;
    const struct {
      const char *name;
      uint64_t got, want;
    } fields[] = {
        {"mapped_4k", st.mapped_4k, a->mapped_4k},
        {"mapped_2m", st.mapped_2m, a->mapped_2m},
        {"pt_pages", st.pt_pages, m_pt_pages(a)},
        {"pt_bytes", st.pt_bytes, m_pt_pages(a) * PAGE},
        {"va_reserved_blocks", st.va_reserved_blocks, a->nblocks},
        {"va_reserved_bytes", st.va_reserved_bytes, va_bytes},
        {"va_free_blocks", st.va_free_blocks, a->free_blocks.count},
        {"tables_allocated - tables_freed", st.tables_allocated - st.tables_freed, m_pt_pages(a)},
        {"pins (gpu_as_pins)", gpu_as_pins(w->as[i]), a->queued},
    };
    for (size_t f = 0; f < sizeof fields / sizeof fields[0] && !w->failed; f++) {
      if (fields[f].got != fields[f].want) {
        fail(w, "address space %u statistics: %s %" PRIu64 ", model %" PRIu64, i + 1, fields[f].name, fields[f].got,
             fields[f].want);
      }
    }
  }
  for (unsigned si = 0; si < NSEG && !w->failed; si++) {
    char finding[512];
    if (!gpu_segment_check(w->seg[si], finding, sizeof finding))
      fail(w, "gpu_segment_check failed on segment %u: %s", seg_cfg[si].id, finding);
    uint64_t mapped = 0;
    for (unsigned i = 0; i < w->nas; i++) mapped += w->ma[i].mapped_pages[si] * PAGE;
    if (gpu_mmu_segment_mapped_bytes(w->mmu, w->seg[si]) != mapped) {
      fail(w, "gpu_mmu_segment_mapped_bytes(segment %u) = %" PRIu64 ", the model maps %" PRIu64, seg_cfg[si].id,
           gpu_mmu_segment_mapped_bytes(w->mmu, w->seg[si]), mapped);
    }
    gpu_segment_stats st;
    gpu_segment_get_stats(w->seg[si], &st);
    const mseg *s = &w->ms[si];
    if (st.committed_bytes != s->committed_pages * s->page || st.commits != s->commits || st.releases != s->releases) {
      fail(w, "segment %u statistics: committed_bytes %" PRIu64 " commits %" PRIu64 " releases %" PRIu64
              ", model %" PRIu64 " %" PRIu64 " %" PRIu64,
           seg_cfg[si].id, st.committed_bytes, st.commits, st.releases, s->committed_pages * s->page, s->commits,
           s->releases);
    }
  }
  if (!w->failed) {
    gpu_engine_stats st;
    gpu_engine_get_stats(w->engine, &st);
    w->est.last_submitted_fence = w->last_submitted;
    w->est.completed_fence = w->completed_fence;
    if (memcmp(&st, &w->est, sizeof st) != 0) {
      fail(w, "engine statistics: submitted %" PRIu64 " completed %" PRIu64 " succeeded %" PRIu64 " faulted %" PRIu64
              " invalid %" PRIu64 " cancelled %" PRIu64 " commands %" PRIu64 " queued %" PRIu64
              " last_submitted %" PRIu64 " completed_fence %" PRIu64 "; model %" PRIu64 " %" PRIu64 " %" PRIu64
              " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
           st.submitted, st.completed, st.succeeded, st.faulted, st.invalid, st.cancelled, st.commands, st.queued,
           st.last_submitted_fence, st.completed_fence, w->est.submitted, w->est.completed, w->est.succeeded,
           w->est.faulted, w->est.invalid, w->est.cancelled, w->est.commands, w->est.queued,
           w->est.last_submitted_fence, w->est.completed_fence);
    }
  }
  if (!w->failed && gpu_mmu_fault_total(w->mmu) != w->fault_total) {
    fail(w, "fault total %" PRIu64 ", the model expects %" PRIu64, gpu_mmu_fault_total(w->mmu), w->fault_total);
  }
  if (!w->failed) compare_contents(w, false);
}

static void compare_fault(world *w, size_t i, const gpu_fault *got, const gpu_fault *want) {
  if (got->seq == want->seq && got->as_id == want->as_id && got->kind == want->kind &&
      got->access == want->access && got->segment_id == want->segment_id && got->va == want->va &&
      got->phys == want->phys && got->last_owner == want->last_owner) {
    return;
  }
  fail(w,
       "fault record %zu {seq %" PRIu64 " as %u kind %d access %d segment %u va 0x%" PRIx64 " phys 0x%" PRIx64
       " last_owner %" PRIu64 "}, the model expects {%" PRIu64 " %u %d %d %u 0x%" PRIx64 " 0x%" PRIx64 " %" PRIu64 "}",
       i, got->seq, got->as_id, (int)got->kind, (int)got->access, got->segment_id, got->va, got->phys,
       got->last_owner, want->seq, want->as_id, (int)want->kind, (int)want->access, want->segment_id, want->va,
       want->phys, want->last_owner);
}

/* Compares the fault log's newest records with the model's. */
static void compare_fault_log(world *w, size_t max) {
  gpu_fault *got = calloc(max + 1, sizeof *got);
  if (got == NULL) out_of_memory(__func__);
  size_t n = gpu_mmu_fault_log(w->mmu, got, max);
  size_t want_n = min_u64(max, w->ring_len);
  if (n != want_n) fail(w, "gpu_mmu_fault_log returned %zu records, the model expects %zu", n, want_n);
  for (size_t i = 0; i < n && !w->failed; i++) {
    const gpu_fault *want = &w->ring[(w->ring_start + w->ring_len - want_n + i) % FAULT_RING];
    gpu_fault g = got[i];
    compare_fault(w, i, &g, want);
  }
  free(got);
}

/* ---- Ops ------------------------------------------------------------------------------------ */

static void stream_append(world *w, const void *bytes, size_t n) {
  if (n == 0) return;
  if (w->stream_len + n > w->stream_cap) {
    w->stream_cap = (w->stream_len + n) * 2;
    w->stream = realloc(w->stream, w->stream_cap);
    if (w->stream == NULL) out_of_memory(__func__);
  }
  memcpy(w->stream + w->stream_len, bytes, n);
  w->stream_len += n;
}

/* Whether an armed failure fires, given how many consulting calls the op makes at @point. */
typedef struct armed {
  bool on;
  enum fault_point point;
  uint32_t nth;
} armed;

static bool fires(world *w, const armed *arm, enum fault_point point, uint64_t consults) {
  bool yes = arm->on && arm->point == point && arm->nth <= consults;
  if (yes) w->predicted_fire = true;
  return yes;
}

static uint32_t log2_floor(uint64_t x) { return 63u - (uint32_t)__builtin_clzll(x); }

static void m_free_push(mas *a, uint64_t va, uint32_t order) {
  entry *e = h_put(&a->free_blocks, PKEY(va));
  e->phys = order;
  a->free_count[order]++;
}

/*
 * gpu_va_reserve as gpu_mmu.h's DOC describes the allocator: the class's free list (any of its
 * blocks), else a new block cut from the bump pointer (the alignment gap split into naturally
 * aligned blocks on their free lists), else any block of the smallest larger class with one,
 * else STATUS_GRAPHICS_NO_VIDEO_MEMORY. The model checks the block the GPU returns is one the
 * rule allows, and tracks which blocks are free.
 */
static void op_va_reserve(world *w, const gpu_op *op, unsigned asi) {
  mas *a = &w->ma[asi];
  uint64_t size = gpu_op_field(op, "size");
  uint32_t raw = gpu_op_field(op, "align");
  uint64_t align = raw == 0 ? 0 : raw <= 49 ? UINT64_C(1) << (raw - 1) : raw;
  unsigned slot = gpu_op_field(op, "slot") % GPU_VA_SLOTS;
  uint64_t va = 0;
  NTSTATUS st = gpu_va_reserve(w->as[asi], size, align, &va);
  uint64_t bytes = PAGE;
  while (bytes < size || bytes < align) bytes <<= 1;
  uint32_t order = log2_floor(bytes) - 12u;
  NTSTATUS want = STATUS_SUCCESS;
  uint32_t from = GPU_VA_ORDERS; /* the class the block must come from; GPU_VA_ORDERS: the bump */
  uint64_t aligned = 0;
  if (size == 0 || (align & (align - 1)) != 0) {
    want = STATUS_INVALID_PARAMETER;
  } else if (order >= GPU_VA_ORDERS) {
    want = STATUS_GRAPHICS_NO_VIDEO_MEMORY;
  } else if (a->free_count[order] > 0) {
    from = order;
  } else if ((aligned = (a->bump + bytes - 1) & ~(bytes - 1)) <= VA_LIMIT - bytes) {
    from = GPU_VA_ORDERS;
  } else {
    want = STATUS_GRAPHICS_NO_VIDEO_MEMORY;
    for (uint32_t o = order + 1; o < GPU_VA_ORDERS; o++) {
      if (a->free_count[o] > 0) {
        want = STATUS_SUCCESS;
        from = o;
        break;
      }
    }
  }
  expect_status(w, "gpu_va_reserve", st, want);
  if (w->failed || st != STATUS_SUCCESS) return;
  if (from < GPU_VA_ORDERS) {
    entry *e = h_get(&a->free_blocks, PKEY(va));
    if (e == NULL || e->phys != from) {
      fail(w, "gpu_va_reserve gave VA 0x%" PRIx64 ", not a free block of order %u (the model has %" PRIu64 " of them)",
           va, from, a->free_count[from]);
      return;
    }
    h_del(&a->free_blocks, PKEY(va));
    a->free_count[from]--;
    bytes = PAGE << from;
  } else {
    if (va != aligned) {
      fail(w, "gpu_va_reserve gave VA 0x%" PRIx64 ", the model cuts the block at 0x%" PRIx64 " from the bump pointer", va,
           aligned);
      return;
    }
    for (uint64_t g = a->bump; g < aligned; g += g & (~g + 1)) m_free_push(a, g, log2_floor(g & (~g + 1)) - 12u);
    a->bump = aligned + bytes;
  }
  for (size_t i = 0; i < a->nblocks; i++) {
    if (va < a->blocks[i].va + a->blocks[i].bytes && a->blocks[i].va < va + bytes) {
      fail(w, "gpu_va_reserve gave [0x%" PRIx64 ", +0x%" PRIx64 ") overlapping the live block [0x%" PRIx64
              ", +0x%" PRIx64 ")",
           va, bytes, a->blocks[i].va, a->blocks[i].bytes);
      return;
    }
  }
  if (a->nblocks == a->capblocks) {
    a->capblocks = a->capblocks ? a->capblocks * 2 : 16;
    a->blocks = realloc(a->blocks, a->capblocks * sizeof *a->blocks);
    if (a->blocks == NULL) out_of_memory(__func__);
  }
  a->blocks[a->nblocks++] = (mblock){va, bytes};
  a->slot[slot] = va;
  if (w->opt->verbose) fprintf(stderr, "  va_reserve: block [0x%" PRIx64 ", +0x%" PRIx64 ") in slot %u\n", va, bytes, slot);
}

static void op_va_release(world *w, unsigned asi, uint64_t va, bool unmap_too) {
  mas *a = &w->ma[asi];
  mblock *b = (va != 0 && va % PAGE == 0 && va < VA_LIMIT) ? m_block_at(a, va) : NULL;
  NTSTATUS want = STATUS_INVALID_PARAMETER;
  if (b != NULL) {
    if (!unmap_too) {
      if (!m_any_mapped(a, b->va, b->bytes)) want = STATUS_SUCCESS;
    } else if (!m_large_straddles(a, b->va, b->bytes)) {
      want = STATUS_SUCCESS;
    }
  }
  NTSTATUS st = unmap_too ? gpu_as_unmap_release(w->as[asi], va) : gpu_va_release(w->as[asi], va);
  expect_status(w, unmap_too ? "gpu_as_unmap_release" : "gpu_va_release", st, want);
  if (w->failed || want != STATUS_SUCCESS) return;
  if (unmap_too) m_unmap_range(a, b->va, b->bytes);
  m_free_push(a, b->va, log2_floor(b->bytes) - 12u);
  m_block_remove(a, b);
}

static void op_map(world *w, const gpu_op *op, unsigned asi, const armed *arm) {
  mas *a = &w->ma[asi];
  uint64_t va = va_of(w, asi, gpu_op_va(op, "va"));
  unsigned si = gpu_op_field(op, "seg") % NSEG;
  uint64_t phys = gpu_op_field(op, "phys"), size = gpu_op_field(op, "size");
  uint32_t flags = gpu_op_field(op, "flags");
  mseg *s = &w->ms[si];
  NTSTATUS want = STATUS_SUCCESS;
  if (size == 0 || (flags & ~(uint32_t)GPU_MAP_FLAGS_ALL) != 0 || (va | phys | size) % PAGE != 0 || va < PAGE ||
      va > VA_LIMIT || size > VA_LIMIT - va || !m_in_bounds(s, phys, size) || m_any_mapped(a, va, size)) {
    want = STATUS_INVALID_PARAMETER;
  }
  bool allow_large = !(flags & GPU_MAP_NO_LARGE_PAGES);
  if (want == STATUS_SUCCESS &&
      fires(w, arm, FAULT_PAGE_TABLE_PAGE, m_map_new_tables(a, va, phys, size, allow_large))) {
    want = STATUS_NO_MEMORY;
  }
  NTSTATUS st = gpu_as_map(w->as[asi], va, w->seg[si], phys, size, flags);
  expect_status(w, "gpu_as_map", st, want);
  if (w->failed || want != STATUS_SUCCESS) return;
  bool writable = !(flags & GPU_MAP_READ_ONLY);
  for (uint64_t done = 0; done < size;) {
    uint64_t v = va + done, p = phys + done;
    if (allow_large && v % LARGE == 0 && p % LARGE == 0 && size - done >= LARGE) {
      for (uint64_t k = 0; k < LARGE; k += PAGE) m_map_page(a, v + k, si, p + k, writable, v);
      done += LARGE;
    } else {
      m_map_page(a, v, si, p, writable, 0);
      done += PAGE;
    }
  }
}

static void op_unmap(world *w, const gpu_op *op, unsigned asi, bool known) {
  mas *a = &w->ma[asi];
  uint64_t va = va_of(w, asi, gpu_op_va(op, "va"));
  uint64_t size = gpu_op_field(op, "size");
  bool malformed = size == 0 || (va | size) % PAGE != 0 || va < PAGE || va > VA_LIMIT || size > VA_LIMIT - va;
  NTSTATUS want = malformed ? STATUS_INVALID_PARAMETER : STATUS_SUCCESS;
  if (!malformed && m_large_straddles(a, va, size)) {
    if (known) { /* the contract calls this a bug: not a GPU answer to check */
      w->res->ops_skipped++;
      return;
    }
    want = STATUS_INVALID_PARAMETER;
  }
  if (!malformed && !known) {
    for (uint64_t v = va; v < va + size && want == STATUS_SUCCESS; v += PAGE) {
      if (h_get(&a->pages, PKEY(v)) == NULL) want = STATUS_INVALID_PARAMETER;
    }
  }
  gpu_mapping first;
  bool had_first = w->opt->sabotage == GPU_SABOTAGE_UNMAP_LEAVES_PAGE && gpu_as_query(w->as[asi], va, &first);
  NTSTATUS st = known ? gpu_as_unmap_known(w->as[asi], va, size) : gpu_as_unmap(w->as[asi], va, size);
  if (st == STATUS_SUCCESS && had_first) {
    (void)gpu_as_map(w->as[asi], va, first.segment, first.phys & ~(PAGE - 1), PAGE, GPU_MAP_NO_LARGE_PAGES);
  }
  expect_status(w, known ? "gpu_as_unmap_known" : "gpu_as_unmap", st, want);
  if (w->failed || want != STATUS_SUCCESS) return;
  m_unmap_range(a, va, size);
}

static void op_query(world *w, const gpu_op *op, unsigned asi) {
  uint64_t va = va_of(w, asi, gpu_op_va(op, "va"));
  gpu_mapping m;
  memset(&m, 0, sizeof m);
  bool found = gpu_as_query(w->as[asi], va, &m);
  const entry *e = va < VA_LIMIT ? h_get(&w->ma[asi].pages, PKEY(va)) : NULL;
  if (found != (e != NULL)) {
    fail(w, "gpu_as_query says VA 0x%" PRIx64 " is %s, the model says %s", va, found ? "mapped" : "unmapped",
         e ? "mapped" : "unmapped");
    return;
  }
  if (e == NULL) return;
  uint64_t phys = e->phys + (va & (PAGE - 1));
  if (m.segment != w->seg[e->seg] || m.phys != phys || m.writable != e->writable || m.large != (e->large_base != 0)) {
    fail(w, "gpu_as_query(0x%" PRIx64 ") = {segment %u, phys 0x%" PRIx64 ", writable %d, large %d}, the model expects "
            "{%u, 0x%" PRIx64 ", %d, %d}",
         va, m.segment ? gpu_segment_id(m.segment) : 0, m.phys, m.writable, m.large, seg_cfg[e->seg].id, phys,
         e->writable, e->large_base != 0);
  }
}

static void op_translate(world *w, const gpu_op *op, unsigned asi) {
  uint64_t va = va_of(w, asi, gpu_op_va(op, "va"));
  uint32_t access = gpu_op_field(op, "access");
  gpu_segment *seg = NULL;
  uint64_t phys = UINT64_MAX;
  NTSTATUS st = gpu_as_translate(w->as[asi], va, (gpu_access)access, &seg, &phys);
  NTSTATUS want = STATUS_INVALID_PARAMETER;
  const entry *e = va < VA_LIMIT ? h_get(&w->ma[asi].pages, PKEY(va)) : NULL;
  if (access == GPU_ACCESS_READ || access == GPU_ACCESS_WRITE) {
    want = GPU_STATUS_PAGE_FAULT;
    if (e == NULL) {
      m_fault(w, asi, GPU_FAULT_UNMAPPED, access, va, 0, 0, 0);
    } else {
      const mseg *s = &w->ms[e->seg];
      uint64_t p = e->phys + (va & (PAGE - 1));
      if (access == GPU_ACCESS_WRITE && !e->writable) {
        m_fault(w, asi, GPU_FAULT_WRITE_READ_ONLY, access, va, seg_cfg[e->seg].id, p, s->owner[p / s->page]);
      } else if (s->owner[p / s->page] == 0) {
        m_fault(w, asi, GPU_FAULT_FREED_PAGE, access, va, seg_cfg[e->seg].id, p, s->last_owner[p / s->page]);
      } else {
        want = STATUS_SUCCESS;
        if (seg != w->seg[e->seg] || phys != p) {
          fail(w, "gpu_as_translate(0x%" PRIx64 ") = segment %u offset 0x%" PRIx64 ", the model expects %u 0x%" PRIx64,
               va, seg ? gpu_segment_id(seg) : 0, phys, seg_cfg[e->seg].id, p);
        }
      }
    }
  }
  expect_status(w, "gpu_as_translate", st, want);
  if (!w->failed && st != STATUS_SUCCESS && (seg != NULL || phys != UINT64_MAX)) {
    fail(w, "gpu_as_translate failed but wrote its outputs (the contract: only on success)");
  }
}

/* How many bytes from @va on are mapped without a hole (at most @size): all an access through
 * the address space can touch before it faults. */
static uint64_t m_mapped_extent(const mas *a, uint64_t va, uint64_t size) {
  uint64_t n = 0;
  while (n < size) {
    uint64_t v = va + n;
    if (v >= VA_LIMIT || h_get(&a->pages, PKEY(v)) == NULL) break;
    n += PAGE - (v & (PAGE - 1));
  }
  return min_u64(n, size);
}

/*
 * as_read / as_write / as_fill. The host buffer holds only the bytes the model says the access
 * can reach (up to the first unmapped page): an access that went further than the contract
 * allows (past its fault) is caught by ASan.
 */
static void op_as_access(world *w, const gpu_op *op, unsigned asi, int kind) {
  uint64_t va = va_of(w, asi, gpu_op_va(op, "va"));
  uint64_t size = gpu_op_field(op, "size");
  uint64_t reach = m_mapped_extent(&w->ma[asi], va, size);
  uint8_t *got = calloc(reach + 1, 1), *want_bytes = calloc(reach + 1, 1);
  if (got == NULL || want_bytes == NULL) out_of_memory(__func__);
  NTSTATUS st, want;
  if (kind == ACC_READ) {
    st = gpu_as_read(w->as[asi], va, got, size);
    want = m_access(w, asi, va, size, ACC_READ, want_bytes, 0);
  } else if (kind == ACC_WRITE) {
    seed_bytes(got, reach, gpu_op_field(op, "seed"));
    st = gpu_as_write(w->as[asi], va, got, size);
    want = m_access(w, asi, va, size, ACC_WRITE, got, 0);
  } else {
    uint32_t pattern = gpu_op_field(op, "pattern");
    st = gpu_as_fill(w->as[asi], va, size, pattern);
    want = m_access(w, asi, va, size, ACC_FILL, NULL, pattern);
  }
  expect_status(w, kind == ACC_READ ? "gpu_as_read" : kind == ACC_WRITE ? "gpu_as_write" : "gpu_as_fill", st, want);
  if (!w->failed && kind == ACC_READ && want == STATUS_SUCCESS) bytes_equal(w, "gpu_as_read", got, want_bytes, size);
  free(got);
  free(want_bytes);
}

static void op_commit(world *w, const gpu_op *op, const armed *arm) {
  unsigned si = gpu_op_field(op, "seg") % NSEG;
  mseg *s = &w->ms[si];
  uint64_t off = gpu_op_field(op, "offset"), size = gpu_op_field(op, "size"), owner = gpu_op_field(op, "owner");
  NTSTATUS want = STATUS_SUCCESS;
  if (!m_aligned(s, off, size) || !m_in_bounds(s, off, size) || owner == 0 || m_any_committed(s, off, size)) {
    want = STATUS_INVALID_PARAMETER;
  } else if (fires(w, arm, FAULT_SEGMENT_SPACE, m_commit_consults(s, size))) {
    want = STATUS_NO_MEMORY;
  }
  NTSTATUS st = gpu_segment_commit(w->seg[si], off, size, owner);
  if (st == STATUS_SUCCESS && w->opt->sabotage == GPU_SABOTAGE_COMMIT_STATUS) st = STATUS_INVALID_PARAMETER;
  expect_status(w, "gpu_segment_commit", st, want);
  if (!w->failed && want == STATUS_SUCCESS) m_commit(s, off, size, owner);
}

static void op_release(world *w, const gpu_op *op) {
  unsigned si = gpu_op_field(op, "seg") % NSEG;
  mseg *s = &w->ms[si];
  uint64_t off = gpu_op_field(op, "offset"), size = gpu_op_field(op, "size");
  NTSTATUS want = STATUS_SUCCESS;
  if (!m_aligned(s, off, size) || !m_in_bounds(s, off, size) || m_first_free(s, off, size) != UINT64_MAX) {
    want = STATUS_INVALID_PARAMETER;
  }
  uint64_t owner = want == STATUS_SUCCESS ? s->owner[off / s->page] : 0;
  NTSTATUS st = gpu_segment_release(w->seg[si], off, size);
  if (st == STATUS_SUCCESS && w->opt->sabotage == GPU_SABOTAGE_RELEASE_KEEPS_PAGE) {
    (void)gpu_segment_commit(w->seg[si], off, s->page, owner);
  }
  expect_status(w, "gpu_segment_release", st, want);
  if (!w->failed && want == STATUS_SUCCESS) m_release(s, off, size);
}

/* read / write / fill of a segment range. */
static void op_seg_access(world *w, const gpu_op *op, int kind) {
  unsigned si = gpu_op_field(op, "seg") % NSEG;
  mseg *s = &w->ms[si];
  uint64_t off = gpu_op_field(op, "offset"), size = gpu_op_field(op, "size");
  uint32_t phase = gpu_op_field(op, "phase"), pattern = gpu_op_field(op, "pattern");
  NTSTATUS want = STATUS_SUCCESS;
  uint64_t free_at = UINT64_MAX;
  if ((kind == ACC_FILL && phase > 3) || !m_in_bounds(s, off, size)) {
    want = STATUS_INVALID_PARAMETER;
  } else if (size > 0 && (free_at = m_first_free(s, off, size)) != UINT64_MAX) {
    want = GPU_STATUS_PAGE_FAULT;
  }
  /* Out of bounds: a 1-byte buffer (the call must refuse before touching any). */
  uint64_t room = m_in_bounds(s, off, size) ? size : 0;
  uint8_t *buf = calloc(room + 1, 1);
  if (buf == NULL) out_of_memory(__func__);
  gpu_segment_fault f = {0};
  NTSTATUS st;
  const char *name = kind == ACC_READ ? "gpu_segment_read" : kind == ACC_WRITE ? "gpu_segment_write" : "gpu_segment_fill";
  if (kind == ACC_READ) {
    st = gpu_segment_read(w->seg[si], off, buf, size, &f);
  } else if (kind == ACC_WRITE) {
    seed_bytes(buf, room, gpu_op_field(op, "seed"));
    st = gpu_segment_write(w->seg[si], off, buf, size, &f);
    if (st == STATUS_SUCCESS && size > 0 && w->opt->sabotage == GPU_SABOTAGE_WRITE_BYTE) {
      uint8_t flipped = (uint8_t)~buf[size - 1];
      (void)gpu_segment_write(w->seg[si], off + size - 1, &flipped, 1, NULL);
    }
  } else {
    st = gpu_segment_fill(w->seg[si], off, size, pattern, phase, &f);
  }
  expect_status(w, name, st, want);
  if (!w->failed && want == GPU_STATUS_PAGE_FAULT) check_fault_struct(w, name, &f, s, si, free_at);
  if (!w->failed && want == STATUS_SUCCESS && size > 0) {
    if (kind == ACC_READ) {
      bytes_equal(w, name, buf, s->bytes + off, size);
    } else if (kind == ACC_WRITE) {
      memcpy(s->bytes + off, buf, size);
      m_touch(s, off, size);
    } else {
      pattern_bytes(s->bytes + off, size, pattern, phase);
      m_touch(s, off, size);
    }
  }
  free(buf);
}

static void op_copy(world *w, const gpu_op *op, bool transfer, const armed *arm) {
  unsigned si = gpu_op_field(op, "seg") % NSEG, di = gpu_op_field(op, "dst") % NSEG;
  mseg *s = &w->ms[si], *d = &w->ms[di];
  uint64_t off = gpu_op_field(op, "offset"), doff = gpu_op_field(op, "dst_offset"), size = gpu_op_field(op, "size");
  bool overlap = si == di && off < doff + size && doff < off + size;
  NTSTATUS want = STATUS_SUCCESS;
  gpu_segment_fault f = {0};
  uint64_t free_at = UINT64_MAX;
  unsigned fault_seg = si;
  uint64_t owner = 0;
  if (!transfer) {
    if (!m_in_bounds(s, off, size) || !m_in_bounds(d, doff, size)) {
      want = STATUS_INVALID_PARAMETER;
    } else if (size == 0) {
      want = STATUS_SUCCESS;
    } else if (overlap) {
      want = STATUS_INVALID_PARAMETER;
    } else if ((free_at = m_first_free(s, off, size)) != UINT64_MAX) {
      want = GPU_STATUS_PAGE_FAULT;
    } else if ((free_at = m_first_free(d, doff, size)) != UINT64_MAX) {
      want = GPU_STATUS_PAGE_FAULT;
      fault_seg = di;
    }
  } else {
    if (!m_aligned(s, off, size) || !m_aligned(d, doff, size) || !m_aligned(s, doff, size) ||
        !m_aligned(d, off, size) || !m_in_bounds(s, off, size) || !m_in_bounds(d, doff, size) || overlap ||
        (owner = m_single_owner(s, off, size)) == 0 || m_any_committed(d, doff, size)) {
      want = STATUS_INVALID_PARAMETER;
    } else if (fires(w, arm, FAULT_SEGMENT_SPACE, m_commit_consults(d, size))) {
      want = STATUS_NO_MEMORY;
    }
  }
  NTSTATUS st = transfer ? gpu_segment_transfer(w->seg[si], off, w->seg[di], doff, size)
                         : gpu_segment_copy(w->seg[si], off, w->seg[di], doff, size, &f);
  const char *name = transfer ? "gpu_segment_transfer" : "gpu_segment_copy";
  expect_status(w, name, st, want);
  if (!w->failed && want == GPU_STATUS_PAGE_FAULT) check_fault_struct(w, name, &f, &w->ms[fault_seg], fault_seg, free_at);
  if (w->failed || want != STATUS_SUCCESS || size == 0) return;
  if (transfer) {
    uint8_t *tmp = malloc(size);
    if (tmp == NULL) out_of_memory(__func__);
    memcpy(tmp, s->bytes + off, size);
    m_commit(d, doff, size, owner);
    memcpy(d->bytes + doff, tmp, size);
    m_release(s, off, size);
    free(tmp);
  } else {
    memmove(d->bytes + doff, s->bytes + off, size);
  }
  m_touch(d, doff, size);
}

/* A copy of @size model bytes (the model's side of a host buffer or host copy). */
static uint8_t *model_bytes_copy(const uint8_t *bytes, uint64_t size) {
  uint8_t *copy = malloc(size);
  if (copy == NULL) out_of_memory(__func__);
  memcpy(copy, bytes, size);
  return copy;
}

static void op_to_host(world *w, const gpu_op *op) {
  unsigned si = gpu_op_field(op, "seg") % NSEG, slot = gpu_op_field(op, "slot") % GPU_SLOTS;
  mseg *s = &w->ms[si];
  uint64_t off = gpu_op_field(op, "offset"), size = gpu_op_field(op, "size");
  uint64_t owner = 0;
  NTSTATUS want = STATUS_SUCCESS;
  if (!m_aligned(s, off, size) || !m_in_bounds(s, off, size) || (owner = m_single_owner(s, off, size)) == 0) {
    want = STATUS_INVALID_PARAMETER;
  }
  uint8_t *buf = malloc((m_in_bounds(s, off, size) ? size : 0) + 1);
  if (buf == NULL) out_of_memory(__func__);
  uint64_t got_owner = 0;
  NTSTATUS st = gpu_segment_transfer_to_host(w->seg[si], off, buf, size, &got_owner);
  expect_status(w, "gpu_segment_transfer_to_host", st, want);
  if (w->failed || want != STATUS_SUCCESS) {
    free(buf);
    return;
  }
  if (got_owner != owner) fail(w, "gpu_segment_transfer_to_host: owner %" PRIu64 ", model %" PRIu64, got_owner, owner);
  bytes_equal(w, "gpu_segment_transfer_to_host", buf, s->bytes + off, size);
  free(w->host[slot]);
  free(w->mhost[slot]);
  w->host[slot] = buf;
  w->mhost[slot] = model_bytes_copy(s->bytes + off, size);
  w->host_size[slot] = size;
  w->host_owner[slot] = owner;
  m_release(s, off, size);
}

static void op_from_host(world *w, const gpu_op *op, const armed *arm) {
  unsigned si = gpu_op_field(op, "seg") % NSEG, slot = gpu_op_field(op, "slot") % GPU_SLOTS;
  mseg *s = &w->ms[si];
  uint64_t off = gpu_op_field(op, "offset");
  static const uint8_t zeros[4096];
  const uint8_t *host = w->host[slot] ? w->host[slot] : zeros;
  const uint8_t *mhost = w->host[slot] ? w->mhost[slot] : zeros;
  uint64_t size = w->host[slot] ? w->host_size[slot] : sizeof zeros;
  uint64_t owner = w->host[slot] ? w->host_owner[slot] : 0;
  NTSTATUS want = STATUS_SUCCESS;
  if (owner == 0 || !m_aligned(s, off, size) || !m_in_bounds(s, off, size) || m_any_committed(s, off, size)) {
    want = STATUS_INVALID_PARAMETER;
  } else if (fires(w, arm, FAULT_SEGMENT_SPACE, m_commit_consults(s, size))) {
    want = STATUS_NO_MEMORY;
  }
  NTSTATUS st = gpu_segment_transfer_from_host(w->seg[si], off, host, size, owner);
  expect_status(w, "gpu_segment_transfer_from_host", st, want);
  if (w->failed || want != STATUS_SUCCESS) return;
  m_commit(s, off, size, owner);
  memcpy(s->bytes + off, mhost, size);
}

static void op_copy_save(world *w, const gpu_op *op) {
  unsigned si = gpu_op_field(op, "seg") % NSEG, slot = gpu_op_field(op, "slot") % GPU_SLOTS;
  mseg *s = &w->ms[si];
  uint64_t off = gpu_op_field(op, "offset"), size = gpu_op_field(op, "size");
  NTSTATUS want = STATUS_SUCCESS;
  uint64_t free_at = UINT64_MAX;
  if (size == 0 || !m_in_bounds(s, off, size)) {
    want = STATUS_INVALID_PARAMETER;
  } else if ((free_at = m_first_free(s, off, size)) != UINT64_MAX) {
    want = GPU_STATUS_PAGE_FAULT;
  }
  gpu_host_copy *copy = NULL;
  gpu_segment_fault f = {0};
  NTSTATUS st = gpu_host_copy_save(w->seg[si], off, size, &copy, &f);
  expect_status(w, "gpu_host_copy_save", st, want);
  if (!w->failed && want == GPU_STATUS_PAGE_FAULT) check_fault_struct(w, "gpu_host_copy_save", &f, s, si, free_at);
  if (st != STATUS_SUCCESS) {
    if (copy != NULL) fail(w, "gpu_host_copy_save failed but wrote a copy");
    return;
  }
  if (w->failed) {
    gpu_host_copy_free(copy);
    return;
  }
  if (gpu_host_copy_size(copy) != size) fail(w, "gpu_host_copy_size %" PRIu64 ", model %" PRIu64, gpu_host_copy_size(copy), size);
  /* Its host bytes are a header (a pointer per 4 KiB block) plus blocks of at most @size bytes. */
  uint64_t blocks = (size + PAGE - 1) / PAGE, host_bytes = gpu_host_copy_host_bytes(copy);
  if (host_bytes < 8 * blocks || host_bytes > 64 + 8 * blocks + size) {
    fail(w, "gpu_host_copy_host_bytes %" PRIu64 " for %" PRIu64 " bytes in %" PRIu64 " blocks: not a header plus blocks",
         host_bytes, size, blocks);
  }
  gpu_host_copy_free(w->copy[slot]);
  free(w->mcopy[slot]);
  w->copy[slot] = copy;
  w->mcopy[slot] = model_bytes_copy(s->bytes + off, size);
  w->mcopy_size[slot] = size;
}

static void op_copy_restore(world *w, const gpu_op *op) {
  unsigned si = gpu_op_field(op, "seg") % NSEG, slot = gpu_op_field(op, "slot") % GPU_SLOTS;
  mseg *s = &w->ms[si];
  uint64_t off = gpu_op_field(op, "offset"), size = w->mcopy_size[slot];
  NTSTATUS want = STATUS_SUCCESS;
  uint64_t free_at = UINT64_MAX;
  if (w->copy[slot] == NULL || !m_in_bounds(s, off, size)) {
    want = STATUS_INVALID_PARAMETER;
  } else if ((free_at = m_first_free(s, off, size)) != UINT64_MAX) {
    want = GPU_STATUS_PAGE_FAULT;
  }
  gpu_segment_fault f = {0};
  NTSTATUS st = gpu_host_copy_restore(w->copy[slot], w->seg[si], off, &f);
  expect_status(w, "gpu_host_copy_restore", st, want);
  if (!w->failed && want == GPU_STATUS_PAGE_FAULT) check_fault_struct(w, "gpu_host_copy_restore", &f, s, si, free_at);
  if (w->failed || want != STATUS_SUCCESS) return;
  memcpy(s->bytes + off, w->mcopy[slot], size);
  m_touch(s, off, size);
}

static void op_copy_read(world *w, const gpu_op *op) {
  unsigned slot = gpu_op_field(op, "slot") % GPU_SLOTS;
  uint64_t off = gpu_op_field(op, "offset"), size = gpu_op_field(op, "size"), csize = w->mcopy_size[slot];
  NTSTATUS want = w->copy[slot] == NULL || off > csize || size > csize - off ? STATUS_INVALID_PARAMETER : STATUS_SUCCESS;
  uint8_t *buf = calloc((want == STATUS_SUCCESS ? size : 0) + 1, 1);
  if (buf == NULL) out_of_memory(__func__);
  if (w->copy[slot] == NULL && (gpu_host_copy_size(NULL) != 0 || gpu_host_copy_host_bytes(NULL) != 0)) {
    fail(w, "gpu_host_copy_size / _host_bytes of no copy are not 0");
  }
  NTSTATUS st = gpu_host_copy_read(w->copy[slot], off, buf, size);
  expect_status(w, "gpu_host_copy_read", st, want);
  if (!w->failed && want == STATUS_SUCCESS && size > 0) bytes_equal(w, "gpu_host_copy_read", buf, w->mcopy[slot] + off, size);
  free(buf);
}

static void op_submit(world *w, const gpu_op *op, unsigned asi) {
  uint64_t fence = w->last_submitted + gpu_op_field(op, "fence");
  size_t rb = gpu_op_field(op, "readback");
  msub sub = {asi, fence, w->stream, w->stream_len, calloc(rb + 1, 1), rb, gpu_op_field(op, "callback") % 3};
  if (sub.readback == NULL) out_of_memory(__func__);
  w->stream = NULL;
  w->stream_len = w->stream_cap = 0;
  gpu_submission s = {w->as[asi], sub.stream, sub.stream_len, fence, sub.readback, rb, on_complete, w};
  NTSTATUS want = fence == 0 || fence <= w->last_submitted ? STATUS_INVALID_PARAMETER : STATUS_SUCCESS;
  NTSTATUS st = gpu_engine_submit(w->engine, &s);
  expect_status(w, "gpu_engine_submit", st, want);
  if (st != STATUS_SUCCESS) {
    free(sub.stream);
    free(sub.readback);
    return;
  }
  /* Queued (even after a mismatch): the teardown's cancellation frees it. */
  if (w->qhead + w->qlen == w->qcap) {
    w->qcap = w->qcap ? w->qcap * 2 : 16;
    w->queue = realloc(w->queue, w->qcap * sizeof *w->queue);
    if (w->queue == NULL) out_of_memory(__func__);
  }
  w->queue[w->qhead + w->qlen++] = sub;
  w->ma[asi].queued++;
  w->last_submitted = fence;
  w->est.submitted++;
  w->est.queued++;
}

static void op_run(world *w, size_t max) {
  size_t want = min_u64(max, w->qlen);
  w->ngot = 0;
  size_t ran = gpu_engine_run(w->engine, max);
  if (ran != want) fail(w, "gpu_engine_run ran %zu submissions, the model expects %zu", ran, want);
  complete_queued(w, ran < w->qlen ? ran : w->qlen, false);
}

static uint64_t fence_back(const world *w, uint32_t back) {
  return w->last_submitted + 1 >= back ? w->last_submitted + 1 - back : 0;
}

static void op_fence_status(world *w, uint64_t fence) {
  NTSTATUS got = 0;
  bool found = gpu_engine_fence_status(w->engine, fence, &got);
  bool want_found = false;
  NTSTATUS want = 0;
  size_t first = w->nhistory > HISTORY ? w->nhistory - HISTORY : 0;
  for (size_t i = first; i < w->nhistory; i++) {
    if (w->history[i].fence == fence) {
      want_found = true;
      want = w->history[i].status;
    }
  }
  char a[32], b[32];
  if (found != want_found || (found && got != want)) {
    fail(w, "gpu_engine_fence_status(%" PRIu64 ") = %s %s, the model expects %s %s", fence, found ? "true" : "false",
         found ? status_name(got, a, sizeof a) : "", want_found ? "true" : "false",
         want_found ? status_name(want, b, sizeof b) : "");
  }
  if (gpu_engine_completed_fence(w->engine) != w->completed_fence) {
    fail(w, "gpu_engine_completed_fence %" PRIu64 ", model %" PRIu64, gpu_engine_completed_fence(w->engine),
         w->completed_fence);
  }
}

static void op_segment_create(world *w, const gpu_op *op, const armed *arm) {
  uint32_t kind = gpu_op_field(op, "kind"), id = gpu_op_field(op, "id"), page = gpu_op_field(op, "page");
  uint32_t units = gpu_op_field(op, "size");
  uint64_t size = units == 0xffffu ? UINT64_C(2) << 40 : (uint64_t)units * PAGE;
  uint32_t eff_page = page == 0 ? 4096 : page;
  bool valid = (kind == GPU_SEGMENT_MEMORY || kind == GPU_SEGMENT_APERTURE) && id >= 1 && id <= GPU_SEGMENT_MAX_ID &&
               (eff_page == 4096 || eff_page == 65536) && size > 0 && size <= GPU_SEGMENT_MAX_SIZE &&
               size % eff_page == 0;
  gpu_segment_desc d = {(gpu_segment_kind)kind, id, size, page};
  gpu_segment *seg = NULL;
  NTSTATUS want = valid ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
  /* A memory segment asks FAULT_SEGMENT_SPACE once when it is created. */
  if (valid && kind == GPU_SEGMENT_MEMORY && fires(w, arm, FAULT_SEGMENT_SPACE, 1)) want = STATUS_NO_MEMORY;
  NTSTATUS st = gpu_segment_create(&d, &w->inj, &seg);
  expect_status(w, "gpu_segment_create", st, want);
  if (st != STATUS_SUCCESS) {
    if (!w->failed && seg != NULL) fail(w, "gpu_segment_create failed but wrote its output");
    return;
  }
  if (!w->failed && (gpu_segment_id(seg) != id || gpu_segment_get_kind(seg) != (gpu_segment_kind)kind ||
                     gpu_segment_size(seg) != size || gpu_segment_page_size(seg) != eff_page)) {
    fail(w, "the new segment reads id %u kind %d size 0x%" PRIx64 " page %u", gpu_segment_id(seg),
         (int)gpu_segment_get_kind(seg), gpu_segment_size(seg), gpu_segment_page_size(seg));
  }
  bool taken = id >= 1 && id <= NSEG;
  if (!w->failed) {
    expect_status(w, "gpu_mmu_attach_segment of the new segment", gpu_mmu_attach_segment(w->mmu, seg),
                  taken ? STATUS_INVALID_PARAMETER : STATUS_SUCCESS);
  }
  if (!w->failed && !taken) {
    expect_status(w, "gpu_mmu_detach_segment of the new segment", gpu_mmu_detach_segment(w->mmu, seg),
                  STATUS_SUCCESS);
  }
  gpu_segment_destroy(seg);
}

static void run_op(world *w, const gpu_op *op, armed *arm) {
  unsigned asi = gpu_op_field(op, "as") % w->nas;
  switch (op->kind) {
  case GPU_OP_VA_RESERVE: op_va_reserve(w, op, asi); break;
  case GPU_OP_VA_RELEASE: op_va_release(w, asi, va_of(w, asi, gpu_op_va(op, "va")), false); break;
  case GPU_OP_UNMAP_RELEASE: op_va_release(w, asi, va_of(w, asi, gpu_op_va(op, "va")), true); break;
  case GPU_OP_MAP: op_map(w, op, asi, arm); break;
  case GPU_OP_UNMAP: op_unmap(w, op, asi, false); break;
  case GPU_OP_UNMAP_KNOWN: op_unmap(w, op, asi, true); break;
  case GPU_OP_QUERY: op_query(w, op, asi); break;
  case GPU_OP_COMMIT: op_commit(w, op, arm); break;
  case GPU_OP_RELEASE: op_release(w, op); break;
  case GPU_OP_READ: op_seg_access(w, op, ACC_READ); break;
  case GPU_OP_WRITE: op_seg_access(w, op, ACC_WRITE); break;
  case GPU_OP_FILL: op_seg_access(w, op, ACC_FILL); break;
  case GPU_OP_COPY: op_copy(w, op, false, arm); break;
  case GPU_OP_TRANSFER: op_copy(w, op, true, arm); break;
  case GPU_OP_TO_HOST: op_to_host(w, op); break;
  case GPU_OP_FROM_HOST: op_from_host(w, op, arm); break;
  case GPU_OP_COPY_SAVE: op_copy_save(w, op); break;
  case GPU_OP_COPY_RESTORE: op_copy_restore(w, op); break;
  case GPU_OP_COPY_READ: op_copy_read(w, op); break;
  case GPU_OP_COPY_FREE: {
    unsigned slot = gpu_op_field(op, "slot") % GPU_SLOTS;
    gpu_host_copy_free(w->copy[slot]);
    free(w->mcopy[slot]);
    w->copy[slot] = NULL;
    w->mcopy[slot] = NULL;
    w->mcopy_size[slot] = 0;
    break;
  }
  case GPU_OP_AS_READ: op_as_access(w, op, asi, ACC_READ); break;
  case GPU_OP_AS_WRITE: op_as_access(w, op, asi, ACC_WRITE); break;
  case GPU_OP_AS_FILL: op_as_access(w, op, asi, ACC_FILL); break;
  case GPU_OP_TRANSLATE: op_translate(w, op, asi); break;
  case GPU_OP_CMD_FILL: {
    uint8_t rec[GPU_CMD_FILL_BYTES];
    size_t n = gpu_cmd_fill(rec, va_of(w, 0, gpu_op_va(op, "va")), gpu_op_field(op, "size"), gpu_op_field(op, "pattern"));
    stream_append(w, rec, n);
    break;
  }
  case GPU_OP_CMD_COPY: {
    uint8_t rec[GPU_CMD_COPY_BYTES];
    size_t n = gpu_cmd_copy(rec, va_of(w, 0, gpu_op_va(op, "va")), va_of(w, 0, gpu_op_va(op, "dst")),
                            gpu_op_field(op, "size"));
    stream_append(w, rec, n);
    break;
  }
  case GPU_OP_CMD_READBACK: {
    uint8_t rec[GPU_CMD_READBACK_BYTES];
    size_t n = gpu_cmd_readback(rec, va_of(w, 0, gpu_op_va(op, "va")), gpu_op_field(op, "size"),
                                gpu_op_field(op, "offset"));
    stream_append(w, rec, n);
    break;
  }
  case GPU_OP_CMD_NOP: {
    uint8_t rec[8 + 255];
    size_t n = gpu_cmd_nop(rec, gpu_op_field(op, "payload"));
    stream_append(w, rec, n);
    break;
  }
  case GPU_OP_CMD_RAW: {
    uint8_t rec[8 + 255];
    uint32_t length = gpu_op_field(op, "length");
    uint32_t opcode = gpu_op_field(op, "opcode");
    for (unsigned i = 0; i < 4; i++) {
      rec[i] = (uint8_t)(opcode >> (8 * i));
      rec[4 + i] = (uint8_t)(length >> (8 * i));
    }
    memset(rec + 8, (int)gpu_op_field(op, "byte"), length);
    size_t n = 8 + length, cut = gpu_op_field(op, "cut");
    stream_append(w, rec, n > cut ? n - cut : 0);
    break;
  }
  case GPU_OP_SUBMIT: op_submit(w, op, asi); break;
  case GPU_OP_RUN: {
    uint32_t max = gpu_op_field(op, "max");
    op_run(w, max == 0 ? SIZE_MAX : max);
    break;
  }
  case GPU_OP_WAIT_IDLE:
    w->ngot = 0;
    gpu_engine_wait_idle(w->engine);
    complete_queued(w, w->qlen, false);
    break;
  case GPU_OP_WAIT_FENCE: {
    uint64_t fence = fence_back(w, gpu_op_field(op, "back"));
    /* 999 ms: a deterministic engine never waits, whatever the deadline. */
    NTSTATUS st = gpu_engine_wait_fence(w->engine, fence, 999);
    expect_status(w, "gpu_engine_wait_fence", st, w->completed_fence >= fence ? STATUS_SUCCESS : STATUS_TIMEOUT);
    break;
  }
  case GPU_OP_FENCE_STATUS: op_fence_status(w, fence_back(w, gpu_op_field(op, "back"))); break;
  case GPU_OP_FAULT_LOG: compare_fault_log(w, gpu_op_field(op, "max")); break;
  case GPU_OP_FAULT_CLEAR:
    gpu_mmu_fault_clear(w->mmu);
    w->ring_len = 0;
    w->ring_start = 0;
    break;
  case GPU_OP_INJECT: break; /* handled by the loop */
  case GPU_OP_STATS: compare_contents(w, true); break;
  case GPU_OP_SEGMENT_CREATE: op_segment_create(w, op, arm); break;
  case GPU_OP_DETACH: {
    unsigned si = gpu_op_field(op, "seg") % NSEG;
    uint64_t mapped = 0;
    for (unsigned i = 0; i < w->nas; i++) mapped += w->ma[i].mapped_pages[si];
    NTSTATUS st = gpu_mmu_detach_segment(w->mmu, w->seg[si]);
    expect_status(w, "gpu_mmu_detach_segment", st, mapped ? STATUS_INVALID_PARAMETER : STATUS_SUCCESS);
    if (st != STATUS_SUCCESS) break;
    expect_status(w, "gpu_mmu_detach_segment of a detached segment", gpu_mmu_detach_segment(w->mmu, w->seg[si]),
                  STATUS_INVALID_PARAMETER);
    expect_status(w, "gpu_mmu_attach_segment", gpu_mmu_attach_segment(w->mmu, w->seg[si]), STATUS_SUCCESS);
    expect_status(w, "gpu_mmu_attach_segment twice", gpu_mmu_attach_segment(w->mmu, w->seg[si]), STATUS_SUCCESS);
    break;
  }
  case GPU_OP_COUNT: break;
  }
}

/* ---- Setup and teardown ------------------------------------------------------------------- */

/* The argument rules of the constructors and gpu_status_name, once per input (the world's own
 * creates only take the valid paths). */
static void check_constructor_rules(world *w) {
  gpu_engine *engine = NULL;
  gpu_as *as = NULL;
  expect_status(w, "gpu_engine_create with mode 3", gpu_engine_create(w->mmu, (gpu_engine_mode)3, &engine),
                STATUS_INVALID_PARAMETER);
  expect_status(w, "gpu_engine_create without an MMU", gpu_engine_create(NULL, GPU_ENGINE_DETERMINISTIC, &engine),
                STATUS_INVALID_PARAMETER);
  expect_status(w, "gpu_mmu_create with no output", gpu_mmu_create(&w->inj, NULL), STATUS_INVALID_PARAMETER);
  expect_status(w, "gpu_as_create with no output", gpu_as_create(w->mmu, NULL), STATUS_INVALID_PARAMETER);
  expect_status(w, "gpu_as_create without an MMU", gpu_as_create(NULL, &as), STATUS_INVALID_PARAMETER);
  if (engine != NULL || as != NULL) fail(w, "a refused create wrote its output");
  const char *pf = gpu_status_name(GPU_STATUS_PAGE_FAULT), *ic = gpu_status_name(GPU_STATUS_INVALID_COMMAND);
  if (pf == NULL || strcmp(pf, "GPU_STATUS_PAGE_FAULT") != 0 || ic == NULL ||
      strcmp(ic, "GPU_STATUS_INVALID_COMMAND") != 0 || gpu_status_name(STATUS_SUCCESS) != NULL) {
    fail(w, "gpu_status_name does not name the GPU's two status codes (and only them)");
  }
}

static bool setup(world *w) {
  fault_injector_init(&w->inj);
  if (gpu_mmu_create(&w->inj, &w->mmu) != STATUS_SUCCESS) return false;
  for (unsigned si = 0; si < NSEG; si++) {
    gpu_segment_desc d = {seg_cfg[si].kind, seg_cfg[si].id, seg_cfg[si].size, seg_cfg[si].page};
    if (gpu_segment_create(&d, &w->inj, &w->seg[si]) != STATUS_SUCCESS) return false;
    if (gpu_mmu_attach_segment(w->mmu, w->seg[si]) != STATUS_SUCCESS) return false;
    mseg *s = &w->ms[si];
    s->size = seg_cfg[si].size;
    s->page = seg_cfg[si].page;
    s->kind = seg_cfg[si].kind;
    uint64_t pages = s->size / s->page;
    if (mseg_cache[si].bytes == NULL) {
      mseg_cache[si].owner = calloc(pages, sizeof *s->owner);
      mseg_cache[si].last_owner = calloc(pages, sizeof *s->last_owner);
      mseg_cache[si].dirty = calloc(pages, 1);
      mseg_cache[si].bytes = calloc(s->size, 1);
      if (!mseg_cache[si].owner || !mseg_cache[si].last_owner || !mseg_cache[si].dirty || !mseg_cache[si].bytes) out_of_memory(__func__);
    }
    s->owner = mseg_cache[si].owner;
    s->last_owner = mseg_cache[si].last_owner;
    s->dirty = mseg_cache[si].dirty;
    s->bytes = mseg_cache[si].bytes;
  }
  for (unsigned i = 0; i < w->nas; i++) {
    w->ma[i].bump = PAGE; /* nothing of page 0 is handed out */
    if (gpu_as_create(w->mmu, &w->as[i]) != STATUS_SUCCESS) return false;
    if (gpu_as_id(w->as[i]) != i + 1) {
      fail(w, "address space %u has id %u", i + 1, gpu_as_id(w->as[i]));
      return true;
    }
  }
  check_constructor_rules(w);
  return gpu_engine_create(w->mmu, GPU_ENGINE_DETERMINISTIC, &w->engine) == STATUS_SUCCESS;
}

static void teardown(world *w) {
  if (w->engine != NULL) {
    w->ngot = 0;
    gpu_engine_destroy(w->engine);
    size_t queued = w->qlen;
    if (!w->failed) {
      complete_queued(w, queued, true);
    }
    for (size_t i = 0; i < w->qlen; i++) {
      free(w->queue[w->qhead + i].stream);
      free(w->queue[w->qhead + i].readback);
    }
  }
  for (unsigned i = 0; i < MAX_AS; i++) {
    gpu_as_destroy(w->as[i]);
    free(w->ma[i].pages.e);
    free(w->ma[i].l3.e);
    free(w->ma[i].l2.e);
    free(w->ma[i].l1.e);
    free(w->ma[i].blocks);
    free(w->ma[i].free_blocks.e);
  }
  for (unsigned si = 0; si < NSEG; si++) {
    if (w->seg[si] != NULL) {
      NTSTATUS st = gpu_mmu_detach_segment(w->mmu, w->seg[si]);
      if (st != STATUS_SUCCESS) expect_status(w, "gpu_mmu_detach_segment after every address space went", st, STATUS_SUCCESS);
      gpu_segment_destroy(w->seg[si]);
    }
    mseg *s = &w->ms[si];
    if (s->bytes != NULL) { /* back to zero for the next input */
      uint64_t pages = s->size / s->page;
      memset(s->owner, 0, pages * sizeof *s->owner);
      memset(s->last_owner, 0, pages * sizeof *s->last_owner);
      memset(s->dirty, 0, pages);
      memset(s->bytes, 0, s->touched_end);
    }
  }
  gpu_mmu_destroy(w->mmu);
  for (unsigned i = 0; i < GPU_SLOTS; i++) {
    free(w->host[i]);
    free(w->mhost[i]);
    gpu_host_copy_free(w->copy[i]);
    free(w->mcopy[i]);
  }
  free(w->stream);
  free(w->queue);
  free(w->history);
}

bool gpu_execute(const gpu_input *in, const gpu_exec_options *options, gpu_exec_result *out) {
  static const gpu_exec_options defaults = {GPU_SABOTAGE_NONE, false, NULL};
  world *w = calloc(1, sizeof *w);
  if (w == NULL) out_of_memory(__func__);
  memset(out, 0, sizeof *out);
  w->opt = options ? options : &defaults;
  w->res = out;
  w->in = in;
  w->nas = in->address_spaces < 1 ? 1 : in->address_spaces > MAX_AS ? MAX_AS : in->address_spaces;
  w->op_index = in->op_count;
  if (!setup(w)) fail(w, "setting up the GPU failed (host memory)");
  armed arm = {false, FAULT_SEGMENT_SPACE, 0};
  for (size_t i = 0; w->opt->statuses != NULL && i < in->op_count; i++) w->opt->statuses[i] = GPU_EXEC_NO_STATUS;
  for (size_t i = 0; i < in->op_count && !w->failed; i++) {
    const gpu_op *op = &in->ops[i];
    w->op_index = i;
    out->ops_run++;
    if (op->kind == GPU_OP_INJECT) {
      arm.on = true;
      arm.point = gpu_op_field(op, "point") % 2 ? FAULT_PAGE_TABLE_PAGE : FAULT_SEGMENT_SPACE;
      arm.nth = 1u + gpu_op_field(op, "nth");
      fault_injector_disarm_all(&w->inj); /* an inject not used yet is replaced */
      fault_injector_arm(&w->inj, arm.point, arm.nth, 0);
      continue;
    }
    uint64_t before = arm.on ? fault_injector_failures(&w->inj, arm.point) : 0;
    w->has_status = false;
    run_op(w, op, &arm);
    /* An armed failure that fired must have been predicted (the op then expected NO_MEMORY). */
    if (arm.on && !w->failed && fault_injector_failures(&w->inj, arm.point) != before && !w->predicted_fire) {
      fail(w, "the armed %s failure fired, but the model says the op makes fewer than %u such calls",
           fault_injector_point_name(arm.point), arm.nth);
    }
    w->predicted_fire = false;
    if (arm.on) {
      fault_injector_disarm_all(&w->inj);
      arm.on = false;
    }
    if (w->has_status && w->opt->statuses != NULL) w->opt->statuses[i] = w->last_status;
    if (!w->failed) check_world(w);
    if (w->opt->verbose) {
      char line[256];
      gpu_op_format(op, line, sizeof line);
      char name[32];
      fprintf(stderr, "%zu %s = %s%s\n", i, line, w->has_status ? status_name(w->last_status, name, sizeof name) : "-",
              w->failed ? "  <- mismatch" : "");
    }
  }
  w->op_index = in->op_count;
  if (!w->failed) {
    compare_contents(w, true);
    compare_fault_log(w, FAULT_RING);
  }
  teardown(w);
  out->ok = !w->failed;
  free(w);
  return out->ok;
}
