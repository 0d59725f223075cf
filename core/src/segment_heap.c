/*
 * segment_heap.c — TLSF allocator of one segment's pages; see segment_heap.h for the contract.
 *
 * Node states, told apart by link_prev (so a node stays 24 bytes):
 *   free   — link_prev/link_next: neighbours on the TLSF list (SEGMENT_HEAP_NIL at the ends);
 *   live   — link_prev == SEGMENT_HEAP_MARK_LIVE, link_next: the owner tag (segment_heap_set_owner);
 *   unused — link_prev == SEGMENT_HEAP_MARK_UNUSED, link_next: next node on the pool free list.
 * Node indices therefore stay below SEGMENT_HEAP_MARK_UNUSED: a heap holds at most
 * SEGMENT_HEAP_NODE_LIMIT blocks, which only a segment of 2^32 - 2 or more pages cut into
 * 1-page blocks could exceed; alloc then answers STATUS_NO_MEMORY.
 *
 * Splits keep the original node for the lower part and merges keep the lower node, so node 0
 * is always the block at page 0: the physical chain starts there.
 */
#include "segment_heap.h"

#include "check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"

/* The end of a list or chain (same value as SEGMENT_HEAP_NO_BLOCK). */
#define SEGMENT_HEAP_NIL UINT32_MAX
#define SEGMENT_HEAP_MARK_LIVE (UINT32_MAX - 1u)
#define SEGMENT_HEAP_MARK_UNUSED (UINT32_MAX - 2u)
/* Nodes a heap can name: indices 0 .. SEGMENT_HEAP_MARK_UNUSED - 1. */
#define SEGMENT_HEAP_NODE_LIMIT SEGMENT_HEAP_MARK_UNUSED
/* A chunk holds 2^chunk_shift nodes: 4096 (96 KiB), fewer for segments of fewer pages. */
#define SEGMENT_HEAP_CHUNK_SHIFT_MAX 12u
#define SEGMENT_HEAP_CHUNK_SHIFT_MIN 4u
#define SEGMENT_HEAP_MIN_PAGE_SIZE 4096u

/* The host record of one block (or of an unused pool slot). Pages, not bytes. */
struct segment_heap_node {
  uint32_t page;      /* first page of the block */
  uint32_t pages;     /* length in pages, >= 1 */
  uint32_t phys_prev; /* block just below, SEGMENT_HEAP_NIL for the block at page 0 */
  uint32_t phys_next; /* block just above, SEGMENT_HEAP_NIL for the last block */
  uint32_t link_prev; /* see the node states above */
  uint32_t link_next;
};
_Static_assert(sizeof(struct segment_heap_node) == 24, "a node is six uint32 fields");

AL_CHECK_INLINE struct segment_heap_node *segment_heap_node_at(const segment_heap *heap,
                                                             uint32_t index) {
  uint32_t mask = (UINT32_C(1) << heap->chunk_shift) - 1u;
  return &heap->chunks[index >> heap->chunk_shift][index & mask];
}

AL_CHECK_INLINE bool segment_heap_node_is_free(const struct segment_heap_node *node) {
  return node->link_prev != SEGMENT_HEAP_MARK_LIVE && node->link_prev != SEGMENT_HEAP_MARK_UNUSED;
}

AL_CHECK_INLINE uint32_t segment_heap_log2(uint32_t value) {
  return 31u - (uint32_t)__builtin_clz(value);
}

/* The TLSF class of a block of @pages (>= 1) pages. */
AL_CHECK_INLINE void segment_heap_mapping(uint32_t pages, uint32_t *out_fl, uint32_t *out_sl) {
  if (pages < SEGMENT_HEAP_SL_COUNT) {
    *out_fl = 0;
    *out_sl = pages;
    return;
  }
  uint32_t log2 = segment_heap_log2(pages);
  *out_fl = log2 - SEGMENT_HEAP_SL_LOG2 + 1u;
  *out_sl = (pages >> (log2 - SEGMENT_HEAP_SL_LOG2)) - SEGMENT_HEAP_SL_COUNT;
}

/* ---- TLSF lists ----------------------------------------------------------------------------- */

static void segment_heap_list_insert(segment_heap *heap, uint32_t index,
                                     struct segment_heap_node *node) {
  uint32_t fl, sl;
  segment_heap_mapping(node->pages, &fl, &sl);
  uint32_t head = heap->heads[fl][sl];
  node->link_prev = SEGMENT_HEAP_NIL;
  node->link_next = head;
  if (head != SEGMENT_HEAP_NIL) segment_heap_node_at(heap, head)->link_prev = index;
  heap->heads[fl][sl] = index;
  heap->sl_bitmap[fl] |= UINT32_C(1) << sl;
  heap->fl_bitmap |= UINT32_C(1) << fl;
}

static void segment_heap_list_remove(segment_heap *heap, struct segment_heap_node *node) {
  uint32_t fl, sl;
  segment_heap_mapping(node->pages, &fl, &sl);
  uint32_t prev = node->link_prev, next = node->link_next;
  if (next != SEGMENT_HEAP_NIL) segment_heap_node_at(heap, next)->link_prev = prev;
  if (prev != SEGMENT_HEAP_NIL) {
    segment_heap_node_at(heap, prev)->link_next = next;
  } else {
    heap->heads[fl][sl] = next;
    if (next == SEGMENT_HEAP_NIL) {
      heap->sl_bitmap[fl] &= ~(UINT32_C(1) << sl);
      if (heap->sl_bitmap[fl] == 0) heap->fl_bitmap &= ~(UINT32_C(1) << fl);
    }
  }
}

/* Good fit: the head of the first non-empty list whose every block holds @need pages, or
 * SEGMENT_HEAP_NIL. Rounds @need up to the next class boundary so no list is walked. */
static uint32_t segment_heap_find(const segment_heap *heap, uint32_t need) {
  uint64_t rounded = need;
  if (need >= SEGMENT_HEAP_SL_COUNT)
    rounded += (UINT64_C(1) << (segment_heap_log2(need) - SEGMENT_HEAP_SL_LOG2)) - 1u;
  if (rounded > UINT32_MAX) return SEGMENT_HEAP_NIL; /* no block is that large */
  uint32_t fl, sl;
  segment_heap_mapping((uint32_t)rounded, &fl, &sl);
  uint32_t sl_map = heap->sl_bitmap[fl] & (UINT32_MAX << sl);
  if (sl_map == 0) {
    uint32_t fl_map = heap->fl_bitmap & (UINT32_MAX << (fl + 1u)); /* fl + 1 <= 28 */
    if (fl_map == 0) return SEGMENT_HEAP_NIL;
    fl = (uint32_t)__builtin_ctz(fl_map);
    sl_map = heap->sl_bitmap[fl];
  }
  sl = (uint32_t)__builtin_ctz(sl_map);
  return heap->heads[fl][sl];
}

/* Whether @node holds @req pages at a multiple of @align pages; the padding in *out_pad. */
static bool segment_heap_fits(const struct segment_heap_node *node, uint32_t req, uint32_t align,
                              uint32_t *out_pad) {
  uint64_t start = ((uint64_t)node->page + align - 1u) & ~((uint64_t)align - 1u);
  uint64_t pad = start - node->page;
  if (pad + req > node->pages) return false;
  *out_pad = (uint32_t)pad;
  return true;
}

/* O(1) fallback: the head of the list of @pages' own class, when it holds the request. */
static uint32_t segment_heap_probe(const segment_heap *heap, uint32_t pages, uint32_t req,
                                   uint32_t align, uint32_t *out_pad) {
  uint32_t fl, sl;
  segment_heap_mapping(pages, &fl, &sl);
  uint32_t head = heap->heads[fl][sl];
  if (head == SEGMENT_HEAP_NIL) return SEGMENT_HEAP_NIL;
  return segment_heap_fits(segment_heap_node_at(heap, head), req, align, out_pad)
             ? head
             : SEGMENT_HEAP_NIL;
}

/* ---- Node pool ------------------------------------------------------------------------------ */

/* Makes sure @want nodes can be taken without failing; false when host memory ran out. */
static bool segment_heap_pool_reserve(segment_heap *heap, uint32_t want) {
  while (heap->unused_count + (heap->node_capacity - heap->node_count) < want) {
    if (heap->chunk_count == heap->dir_len) return false; /* index space exhausted */
    struct segment_heap_node *chunk = al_host_malloc(sizeof *chunk << heap->chunk_shift);
    if (chunk == NULL) return false;
    heap->chunks[heap->chunk_count++] = chunk;
    uint64_t capacity = (uint64_t)heap->chunk_count << heap->chunk_shift;
    heap->node_capacity = capacity < heap->node_max ? (uint32_t)capacity : heap->node_max;
  }
  return true;
}

/* Takes a node; only after segment_heap_pool_reserve() said it can. */
static uint32_t segment_heap_pool_take(segment_heap *heap) {
  uint32_t index = heap->unused_head;
  if (index != SEGMENT_HEAP_NIL) {
    heap->unused_head = segment_heap_node_at(heap, index)->link_next;
    heap->unused_count--;
    return index;
  }
  return heap->node_count++;
}

static void segment_heap_pool_put(segment_heap *heap, uint32_t index,
                                  struct segment_heap_node *node) {
  node->link_prev = SEGMENT_HEAP_MARK_UNUSED;
  node->link_next = heap->unused_head;
  heap->unused_head = index;
  heap->unused_count++;
}

/* ---- Public API ----------------------------------------------------------------------------- */

NTSTATUS segment_heap_init(segment_heap *heap, uint64_t size, uint64_t page_size) {
  if (heap == NULL) return STATUS_INVALID_PARAMETER;
  memset(heap, 0, sizeof *heap);
  if (page_size < SEGMENT_HEAP_MIN_PAGE_SIZE || (page_size & (page_size - 1u)) != 0)
    return STATUS_INVALID_PARAMETER;
  if (size == 0 || (size & (page_size - 1u)) != 0) return STATUS_INVALID_PARAMETER;
  uint32_t page_shift = (uint32_t)__builtin_ctzll(page_size);
  if ((size >> page_shift) > UINT32_MAX) return STATUS_INVALID_PARAMETER;

  uint32_t pages = (uint32_t)(size >> page_shift);
  uint32_t node_max = pages < SEGMENT_HEAP_NODE_LIMIT ? pages : SEGMENT_HEAP_NODE_LIMIT;
  uint32_t chunk_shift = SEGMENT_HEAP_CHUNK_SHIFT_MIN;
  while (chunk_shift < SEGMENT_HEAP_CHUNK_SHIFT_MAX && (UINT64_C(1) << chunk_shift) < node_max)
    chunk_shift++;
  uint32_t dir_len = (uint32_t)(((uint64_t)node_max + (UINT64_C(1) << chunk_shift) - 1u) >>
                                chunk_shift);
  struct segment_heap_node **chunks = al_host_calloc(dir_len, sizeof *chunks);
  if (chunks == NULL) return STATUS_NO_MEMORY;

  heap->page_size = page_size;
  heap->page_shift = page_shift;
  heap->pages = pages;
  heap->chunks = chunks;
  heap->chunk_shift = chunk_shift;
  heap->dir_len = dir_len;
  heap->node_max = node_max;
  heap->unused_head = SEGMENT_HEAP_NIL;
  memset(heap->heads, 0xff, sizeof heap->heads); /* every list SEGMENT_HEAP_NIL */
  if (!segment_heap_pool_reserve(heap, 1)) {
    free(chunks);
    memset(heap, 0, sizeof *heap);
    return STATUS_NO_MEMORY;
  }
  uint32_t index = segment_heap_pool_take(heap); /* 0 */
  struct segment_heap_node *node = segment_heap_node_at(heap, index);
  node->page = 0;
  node->pages = pages;
  node->phys_prev = SEGMENT_HEAP_NIL;
  node->phys_next = SEGMENT_HEAP_NIL;
  segment_heap_list_insert(heap, index, node);
  heap->free_pages = pages;
  heap->free_ranges = 1;
  return STATUS_SUCCESS;
}

void segment_heap_fini(segment_heap *heap) {
  if (heap == NULL) return;
  if (heap->chunks != NULL) {
    for (uint32_t i = 0; i < heap->chunk_count; i++) free(heap->chunks[i]);
    free(heap->chunks);
  }
  memset(heap, 0, sizeof *heap);
}

NTSTATUS segment_heap_alloc(segment_heap *heap, uint64_t size, uint64_t alignment,
                            uint32_t *out_block, uint64_t *out_offset) {
  if (heap == NULL || out_block == NULL || out_offset == NULL || size == 0)
    return STATUS_INVALID_PARAMETER;
  if ((alignment & (alignment - 1u)) != 0) return STATUS_INVALID_PARAMETER;

  /* Pages wanted and alignment in pages; written so no step can overflow. */
  uint64_t req64 = (size >> heap->page_shift) + ((size & (heap->page_size - 1u)) != 0);
  uint64_t align64 = alignment > heap->page_size ? alignment >> heap->page_shift : 1u;
  if (req64 > heap->pages || align64 > heap->pages || req64 + align64 - 1u > heap->pages)
    return STATUS_GRAPHICS_NO_VIDEO_MEMORY;
  uint32_t req = (uint32_t)req64, align = (uint32_t)align64;
  uint32_t need = req + align - 1u; /* worst-case padding from any page to a multiple of align */

  uint32_t pad = 0;
  uint32_t index = segment_heap_find(heap, need);
  if (index != SEGMENT_HEAP_NIL) {
    bool fits = segment_heap_fits(segment_heap_node_at(heap, index), req, align, &pad);
    (void)fits; /* guaranteed: the block has at least need pages */
  } else {
    index = segment_heap_probe(heap, need, req, align, &pad);
    if (index == SEGMENT_HEAP_NIL && need != req)
      index = segment_heap_probe(heap, req, req, align, &pad);
    if (index == SEGMENT_HEAP_NIL) return STATUS_GRAPHICS_NO_VIDEO_MEMORY;
  }

  struct segment_heap_node *block = segment_heap_node_at(heap, index);
  uint32_t rem = block->pages - pad - req;
  if (!segment_heap_pool_reserve(heap, (uint32_t)(pad != 0) + (uint32_t)(rem != 0)))
    return STATUS_NO_MEMORY;

  segment_heap_list_remove(heap, block);
  heap->free_ranges--;
  if (pad != 0) { /* the lower part stays free in the old node; the rest moves to a new one */
    uint32_t upper = segment_heap_pool_take(heap);
    struct segment_heap_node *node = segment_heap_node_at(heap, upper);
    node->page = block->page + pad;
    node->pages = block->pages - pad;
    node->phys_prev = index;
    node->phys_next = block->phys_next;
    if (block->phys_next != SEGMENT_HEAP_NIL)
      segment_heap_node_at(heap, block->phys_next)->phys_prev = upper;
    block->phys_next = upper;
    block->pages = pad;
    segment_heap_list_insert(heap, index, block);
    heap->free_ranges++;
    index = upper;
    block = node;
  }
  if (rem != 0) { /* the trailing remainder becomes a free block */
    uint32_t tail = segment_heap_pool_take(heap);
    struct segment_heap_node *node = segment_heap_node_at(heap, tail);
    node->page = block->page + req;
    node->pages = rem;
    node->phys_prev = index;
    node->phys_next = block->phys_next;
    if (block->phys_next != SEGMENT_HEAP_NIL)
      segment_heap_node_at(heap, block->phys_next)->phys_prev = tail;
    block->phys_next = tail;
    block->pages = req;
    segment_heap_list_insert(heap, tail, node);
    heap->free_ranges++;
  }
  block->link_prev = SEGMENT_HEAP_MARK_LIVE;
  block->link_next = 0; /* a live block's owner tag */
  heap->used_pages += req;
  heap->free_pages -= req;
  heap->live_blocks++;
  *out_block = index;
  *out_offset = (uint64_t)block->page << heap->page_shift;
  return STATUS_SUCCESS;
}

/* The node of live block @block, or an abort naming @caller. */
AL_CHECK_INLINE struct segment_heap_node *segment_heap_live_node(const segment_heap *heap,
                                                                 uint32_t block,
                                                                 const char *caller) {
  if (heap->chunks != NULL && block < heap->node_count) {
    struct segment_heap_node *node = segment_heap_node_at(heap, block);
    if (node->link_prev == SEGMENT_HEAP_MARK_LIVE) return node;
  }
  fprintf(stderr, "%s: block %" PRIu32 " is not live\n", caller, block);
  abort();
}

void segment_heap_free_many(segment_heap *heap, const uint32_t *blocks, size_t stride, uint32_t count) {
  uint32_t i = 0;
  while (i < count) {
    uint32_t first = blocks[(size_t)i * stride];
    struct segment_heap_node *run = segment_heap_live_node(heap, first, "segment_heap_free_many");
    /* Absorb the following blocks of the list while each is the live block just above the run:
     * they become one live block (no TLSF list is touched), freed once below. */
    for (i++; i < count; i++) {
      uint32_t next = blocks[(size_t)i * stride];
      if (next != run->phys_next) break;
      struct segment_heap_node *above = segment_heap_live_node(heap, next, "segment_heap_free_many");
      run->pages += above->pages;
      run->phys_next = above->phys_next;
      if (above->phys_next != SEGMENT_HEAP_NIL)
        segment_heap_node_at(heap, above->phys_next)->phys_prev = first;
      segment_heap_pool_put(heap, next, above);
      heap->live_blocks--;
    }
    segment_heap_free(heap, first);
  }
}

void segment_heap_set_owner(segment_heap *heap, uint32_t block, uint32_t owner) {
  segment_heap_live_node(heap, block, "segment_heap_set_owner")->link_next = owner;
}

uint32_t segment_heap_block_owner(const segment_heap *heap, uint32_t block) {
  return segment_heap_live_node(heap, block, "segment_heap_block_owner")->link_next;
}

bool segment_heap_next_live(const segment_heap *heap, uint32_t *cursor, uint32_t *out_block,
                            uint32_t *out_owner) {
  if (heap->chunks == NULL) return false;
  uint32_t index = 0; /* node 0 is always the block at page 0 */
  if (*cursor < heap->node_count &&
      segment_heap_node_at(heap, *cursor)->link_prev != SEGMENT_HEAP_MARK_UNUSED) {
    index = segment_heap_node_at(heap, *cursor)->phys_next;
  } else if (*cursor != SEGMENT_HEAP_NO_BLOCK) {
    index = 0; /* the cursor's block went away: start over */
  }
  for (; index != SEGMENT_HEAP_NIL; index = segment_heap_node_at(heap, index)->phys_next) {
    const struct segment_heap_node *node = segment_heap_node_at(heap, index);
    if (node->link_prev == SEGMENT_HEAP_MARK_LIVE) {
      *cursor = index;
      *out_block = index;
      if (out_owner) *out_owner = node->link_next;
      return true;
    }
  }
  *cursor = SEGMENT_HEAP_NO_BLOCK;
  return false;
}

void segment_heap_free(segment_heap *heap, uint32_t block) {
  struct segment_heap_node *node = segment_heap_live_node(heap, block, "segment_heap_free");
  heap->used_pages -= node->pages;
  heap->free_pages += node->pages;
  heap->live_blocks--;
  heap->free_ranges++;

  uint32_t keep = block;
  if (node->phys_prev != SEGMENT_HEAP_NIL) { /* merge into the free block below */
    uint32_t prev = node->phys_prev;
    struct segment_heap_node *below = segment_heap_node_at(heap, prev);
    if (segment_heap_node_is_free(below)) {
      segment_heap_list_remove(heap, below);
      below->pages += node->pages;
      below->phys_next = node->phys_next;
      if (node->phys_next != SEGMENT_HEAP_NIL)
        segment_heap_node_at(heap, node->phys_next)->phys_prev = prev;
      segment_heap_pool_put(heap, block, node);
      heap->free_ranges--;
      keep = prev;
      node = below;
    }
  }
  if (node->phys_next != SEGMENT_HEAP_NIL) { /* absorb the free block above */
    uint32_t next = node->phys_next;
    struct segment_heap_node *above = segment_heap_node_at(heap, next);
    if (segment_heap_node_is_free(above)) {
      segment_heap_list_remove(heap, above);
      node->pages += above->pages;
      node->phys_next = above->phys_next;
      if (above->phys_next != SEGMENT_HEAP_NIL)
        segment_heap_node_at(heap, above->phys_next)->phys_prev = keep;
      segment_heap_pool_put(heap, next, above);
      heap->free_ranges--;
    }
  }
  segment_heap_list_insert(heap, keep, node);
}

uint64_t segment_heap_block_offset(const segment_heap *heap, uint32_t block) {
  const struct segment_heap_node *node =
      segment_heap_live_node(heap, block, "segment_heap_block_offset");
  return (uint64_t)node->page << heap->page_shift;
}

uint64_t segment_heap_block_size(const segment_heap *heap, uint32_t block) {
  const struct segment_heap_node *node =
      segment_heap_live_node(heap, block, "segment_heap_block_size");
  return (uint64_t)node->pages << heap->page_shift;
}

AL_CHECK_CODE void segment_heap_check_block(const segment_heap *heap, uint32_t block,
                                            uint32_t *out_owner, uint64_t *out_bytes) {
  const struct segment_heap_node *node =
      segment_heap_live_node(heap, block, "segment_heap_check_block");
  *out_owner = node->link_next;
  *out_bytes = (uint64_t)node->pages << heap->page_shift;
}

void segment_heap_get_stats(const segment_heap *heap, segment_heap_stats *out) {
  uint32_t largest = 0;
  if (heap->fl_bitmap != 0) {
    uint32_t fl = segment_heap_log2(heap->fl_bitmap);
    uint32_t sl = segment_heap_log2(heap->sl_bitmap[fl]);
    for (uint32_t i = heap->heads[fl][sl]; i != SEGMENT_HEAP_NIL;) {
      const struct segment_heap_node *node = segment_heap_node_at(heap, i);
      if (node->pages > largest) largest = node->pages;
      i = node->link_next;
    }
  }
  out->size = (uint64_t)heap->pages << heap->page_shift;
  out->used_bytes = (uint64_t)heap->used_pages << heap->page_shift;
  out->free_bytes = (uint64_t)heap->free_pages << heap->page_shift;
  out->largest_free = (uint64_t)largest << heap->page_shift;
  out->live_blocks = heap->live_blocks;
  out->free_ranges = heap->free_ranges;
  out->metadata_bytes = sizeof *heap + (uint64_t)heap->dir_len * sizeof *heap->chunks +
                        ((uint64_t)heap->chunk_count << heap->chunk_shift) *
                            sizeof(struct segment_heap_node);
}

/* ---- Invariant check ------------------------------------------------------------------------ */


#define SEGMENT_HEAP_CHECK(cond, ...)                                                      \
  do {                                                                                     \
    if (!(cond)) return check_fail(msg, cap, __VA_ARGS__);                    \
  } while (0)

/* The body of segment_heap_check (@full) and segment_heap_check_live (!@full). */
AL_CHECK_CODE static bool sh_check(const segment_heap *heap, bool full, char *msg, size_t cap) {
  if (msg != NULL && cap > 0) msg[0] = '\0';
  SEGMENT_HEAP_CHECK(heap != NULL && heap->chunks != NULL && heap->pages != 0 &&
                         heap->node_count != 0,
                     "heap: not initialized");
  SEGMENT_HEAP_CHECK(heap->chunk_count <= heap->dir_len &&
                         heap->node_count <= heap->node_capacity &&
                         heap->node_capacity <= heap->node_max &&
                         heap->node_capacity <= ((uint64_t)heap->chunk_count << heap->chunk_shift),
                     "pool: %" PRIu32 " nodes handed out, capacity %" PRIu32 ", max %" PRIu32
                     ", %" PRIu32 "/%" PRIu32 " chunks inconsistent",
                     heap->node_count, heap->node_capacity, heap->node_max, heap->chunk_count,
                     heap->dir_len);

  /* The physical chain from block 0. */
  uint64_t end = 0, used = 0, free_pages = 0;
  uint32_t live = 0, free_blocks = 0, steps = 0;
  uint32_t prev = SEGMENT_HEAP_NIL;
  bool prev_free = false;
  for (uint32_t i = 0; i != SEGMENT_HEAP_NIL;) {
    SEGMENT_HEAP_CHECK(i < heap->node_count,
                       "block %" PRIu32 ": index past the pool's %" PRIu32
                       " nodes (phys_next of block %" PRIu32 ")",
                       i, heap->node_count, prev);
    SEGMENT_HEAP_CHECK(++steps <= heap->node_count, "block %" PRIu32 ": physical chain loops", i);
    const struct segment_heap_node *node = segment_heap_node_at(heap, i);
    SEGMENT_HEAP_CHECK(node->link_prev != SEGMENT_HEAP_MARK_UNUSED,
                       "block %" PRIu32 ": unused pool node on the physical chain", i);
    SEGMENT_HEAP_CHECK(node->phys_prev == prev,
                       "block %" PRIu32 ": phys_prev is %" PRIu32 ", want %" PRIu32, i,
                       node->phys_prev, prev);
    SEGMENT_HEAP_CHECK(node->pages != 0, "block %" PRIu32 ": empty block", i);
    SEGMENT_HEAP_CHECK(node->page == end,
                       "block %" PRIu32 ": starts at page %" PRIu32 ", want %" PRIu64
                       " (gap or overlap)",
                       i, node->page, end);
    SEGMENT_HEAP_CHECK(end + node->pages <= heap->pages,
                       "block %" PRIu32 ": ends at page %" PRIu64 ", past the segment's %" PRIu32,
                       i, end + node->pages, heap->pages);
    bool is_free = segment_heap_node_is_free(node);
    if (is_free) {
      SEGMENT_HEAP_CHECK(!prev_free, "blocks %" PRIu32 " and %" PRIu32 ": adjacent free blocks",
                         prev, i);
      uint32_t fl, sl;
      segment_heap_mapping(node->pages, &fl, &sl);
      SEGMENT_HEAP_CHECK((heap->sl_bitmap[fl] >> sl & 1u) && (heap->fl_bitmap >> fl & 1u),
                         "block %" PRIu32 ": free, but the bitmap bits of its list [%" PRIu32
                         "][%" PRIu32 "] are clear",
                         i, fl, sl);
      free_blocks++;
      free_pages += node->pages;
    } else {
      live++;
      used += node->pages;
    }
    end += node->pages;
    prev = i;
    prev_free = is_free;
    i = node->phys_next;
  }
  SEGMENT_HEAP_CHECK(end == heap->pages,
                     "block %" PRIu32 ": the chain ends at page %" PRIu64 ", want %" PRIu32, prev,
                     end, heap->pages);

  /* Accounting. */
  SEGMENT_HEAP_CHECK(used == heap->used_pages,
                     "accounting: used_pages %" PRIu32 ", blocks hold %" PRIu64, heap->used_pages,
                     used);
  SEGMENT_HEAP_CHECK(free_pages == heap->free_pages,
                     "accounting: free_pages %" PRIu32 ", blocks hold %" PRIu64, heap->free_pages,
                     free_pages);
  SEGMENT_HEAP_CHECK(live == heap->live_blocks,
                     "accounting: live_blocks %" PRIu32 ", chain has %" PRIu32, heap->live_blocks,
                     live);
  SEGMENT_HEAP_CHECK(free_blocks == heap->free_ranges,
                     "accounting: free_ranges %" PRIu32 ", chain has %" PRIu32, heap->free_ranges,
                     free_blocks);

  /* Bitmaps and lists: every entry a free block of the list's class, each at most once (a
   * repeat would loop and overrun the count), as many entries as free blocks. */
  SEGMENT_HEAP_CHECK(heap->fl_bitmap >> SEGMENT_HEAP_FL_COUNT == 0,
                     "bitmap: stray first-level bits %#" PRIx32, heap->fl_bitmap);
  uint32_t listed = 0;
  for (uint32_t fl = 0; fl < SEGMENT_HEAP_FL_COUNT; fl++) {
    SEGMENT_HEAP_CHECK((heap->fl_bitmap >> fl & 1u) == (heap->sl_bitmap[fl] != 0),
                       "bitmap: first-level bit %" PRIu32 " is %" PRIu32
                       " but second-level word %#" PRIx32,
                       fl, heap->fl_bitmap >> fl & 1u, heap->sl_bitmap[fl]);
    /* An empty first-level class has 32 heads that must all be NIL; only the full check reads
     * them (placement reads a head only where a bit is set). */
    if (!full && heap->sl_bitmap[fl] == 0) continue;
    for (uint32_t sl = 0; sl < SEGMENT_HEAP_SL_COUNT; sl++) {
      uint32_t head = heap->heads[fl][sl];
      SEGMENT_HEAP_CHECK((heap->sl_bitmap[fl] >> sl & 1u) == (head != SEGMENT_HEAP_NIL),
                         "list [%" PRIu32 "][%" PRIu32 "]: bitmap bit %" PRIu32
                         " but head %" PRIu32 " (stray or missing bit)",
                         fl, sl, heap->sl_bitmap[fl] >> sl & 1u, head);
      uint32_t link_prev = SEGMENT_HEAP_NIL;
      for (uint32_t i = head; i != SEGMENT_HEAP_NIL;) {
        SEGMENT_HEAP_CHECK(i < heap->node_count,
                           "list [%" PRIu32 "][%" PRIu32 "]: block %" PRIu32
                           " past the pool's %" PRIu32 " nodes",
                           fl, sl, i, heap->node_count);
        SEGMENT_HEAP_CHECK(++listed <= free_blocks,
                           "list [%" PRIu32 "][%" PRIu32 "]: block %" PRIu32
                           ": more list entries than the %" PRIu32 " free blocks (loop or stray)",
                           fl, sl, i, free_blocks);
        const struct segment_heap_node *node = segment_heap_node_at(heap, i);
        SEGMENT_HEAP_CHECK(segment_heap_node_is_free(node),
                           "list [%" PRIu32 "][%" PRIu32 "]: block %" PRIu32 " is not free", fl,
                           sl, i);
        SEGMENT_HEAP_CHECK(node->link_prev == link_prev,
                           "list [%" PRIu32 "][%" PRIu32 "]: block %" PRIu32
                           " has link_prev %" PRIu32 ", want %" PRIu32,
                           fl, sl, i, node->link_prev, link_prev);
        uint32_t want_fl = 0, want_sl = 0;
        if (node->pages != 0) segment_heap_mapping(node->pages, &want_fl, &want_sl);
        SEGMENT_HEAP_CHECK(node->pages != 0 && want_fl == fl && want_sl == sl,
                           "list [%" PRIu32 "][%" PRIu32 "]: block %" PRIu32 " of %" PRIu32
                           " pages belongs on [%" PRIu32 "][%" PRIu32 "]",
                           fl, sl, i, node->pages, want_fl, want_sl);
        link_prev = i;
        i = node->link_next;
      }
    }
  }
  SEGMENT_HEAP_CHECK(listed == free_blocks,
                     "lists: %" PRIu32 " entries, but %" PRIu32 " free blocks (one is off-list)",
                     listed, free_blocks);

  /* The pool: every node handed out is a block or unused. */
  uint32_t unused = 0;
  for (uint32_t i = heap->unused_head; i != SEGMENT_HEAP_NIL;) {
    SEGMENT_HEAP_CHECK(i < heap->node_count && ++unused <= heap->unused_count,
                       "pool: unused node %" PRIu32 " out of range or the free list loops", i);
    const struct segment_heap_node *node = segment_heap_node_at(heap, i);
    SEGMENT_HEAP_CHECK(node->link_prev == SEGMENT_HEAP_MARK_UNUSED,
                       "pool: node %" PRIu32 " on the pool free list is a block", i);
    i = node->link_next;
  }
  SEGMENT_HEAP_CHECK(unused == heap->unused_count,
                     "pool: %" PRIu32 " nodes on the free list, unused_count %" PRIu32, unused,
                     heap->unused_count);
  SEGMENT_HEAP_CHECK((uint64_t)heap->node_count - unused == (uint64_t)live + free_blocks,
                     "pool: %" PRIu32 " nodes handed out, %" PRIu32 " unused, but %" PRIu32
                     " blocks (a node leaked)",
                     heap->node_count, unused, live + free_blocks);
  return true;
}

bool segment_heap_check(const segment_heap *heap, char *msg, size_t cap) {
  return sh_check(heap, true, msg, cap);
}

bool segment_heap_check_live(const segment_heap *heap, char *msg, size_t cap) {
  return sh_check(heap, false, msg, cap);
}
