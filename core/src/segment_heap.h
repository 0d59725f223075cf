/*
 * segment_heap.h — the per-segment video-memory allocator of the port's VidMm model.
 *
 * DOC: Overview
 * A segment_heap hands out ranges of one memory segment: it decides at which byte offset an
 * allocation of the segment lives. It never touches the segment's memory (that is GPU memory);
 * it keeps host-side block metadata only, and it never allocates video memory itself.
 *
 * The segment is cut into blocks that cover [0, size) in address order without gaps; each block
 * is live (handed out) or free. Free neighbours are merged at once, so no two free blocks touch
 * and free_ranges counts maximal free ranges. Offsets and lengths are kept in pages (uint32), so
 * a segment holds fewer than 2^32 pages: at 4 KiB pages that is 16 TiB minus one page.
 *
 * Complexity: segment_heap_alloc() and segment_heap_free() are O(1) — no list or tree walk, no
 * host allocation in steady state. Free blocks sit on TLSF lists (two-level segregated fit):
 * a first-level bitmap picks the power-of-two size class, a second-level bitmap picks one of 32
 * linear subclasses, and each (fl, sl) list holds free blocks of that class. Block metadata
 * lives in a node pool addressed by uint32 indices: fixed-size chunks of nodes reached through a
 * directory sized at init, so a node never moves; a released node goes on a node free list and
 * is reused before any new chunk is allocated. A new chunk (the only host allocation after
 * init) is taken when the pool runs dry, once per 4096 nodes of high-water mark.
 *
 * Good fit: a request for n pages is rounded up to the first size class whose every block is
 * at least n pages (n + 2^(floor(log2 n) - 5) - 1, truncated to its class, for n >= 32; n itself
 * below 32), and the head of the first non-empty list at or above that class is taken. The block
 * found always fits, so no list is walked. This can miss a fit: a block of n..(rounded - 1)
 * pages sharing n's class. To keep exact fills working, when the bitmap search finds nothing
 * the heap also probes the head of the request's own class (and, for an aligned request, the
 * head of the unpadded size's class) and takes it when it fits — still O(1). Hence: when
 * segment_heap_alloc() fails with STATUS_GRAPHICS_NO_VIDEO_MEMORY, no free range holds
 * rounded(n + padding bound) pages; a free range of between n and that many pages may exist.
 *
 * Alignment: every block starts on a page. For an alignment of a pages (a > 1) the search asks
 * for n + a - 1 pages — the worst-case padding from a page boundary to the next multiple of a —
 * then splits the found block into leading padding (free), the live block, and the trailing
 * remainder (free). A request whose rounded size plus alignment - page_size exceeds the segment
 * size fails with STATUS_GRAPHICS_NO_VIDEO_MEMORY, even on an empty segment (where offset 0
 * would be aligned): alignments larger than the segment always fail.
 *
 * Locking: none inside. The caller serializes every call on one heap (VidMm holds the
 * segment's lock); different heaps are independent. Read-only calls (block_offset, block_size,
 * get_stats, check) may run concurrently with each other but not with alloc, free or fini.
 *
 * Ownership: the segment_heap struct belongs to the caller (embed it or allocate it); the heap
 * owns the node chunks and the directory it allocates, released by segment_heap_fini(). Block
 * handles are plain indices, recycled after free: a handle is valid from the alloc that
 * returned it to the free that releases it, and the caller must not use it afterwards.
 *
 * Glossary: page = the segment's allocation granule (page_size bytes); block = a range of
 * whole pages, live or free; node = the host record of one block, named by a uint32 index
 * (the block handle); TLSF = two-level segregated fit; fl / sl = first-level (power-of-two)
 * and second-level (linear subdivision) size class; phys = address-order neighbour links;
 * pool = the node chunks; unused node = a node on the pool's free list, naming no block.
 */
#ifndef ALLOCLAB_SEGMENT_HEAP_H
#define ALLOCLAB_SEGMENT_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h" /* NTSTATUS */

#ifdef __cplusplus
extern "C" {
#endif

/* A block handle that names no block (never returned by segment_heap_alloc()). */
#define SEGMENT_HEAP_NO_BLOCK UINT32_MAX

/* log2 of the second-level subdivisions per power of two, and their count. */
#define SEGMENT_HEAP_SL_LOG2 5u
#define SEGMENT_HEAP_SL_COUNT (1u << SEGMENT_HEAP_SL_LOG2)
/* First-level classes: 0 holds sizes 1..31 pages exactly; class f >= 1 holds
 * [2^(f+4), 2^(f+5)). Page counts are below 2^32, so f <= 27. */
#define SEGMENT_HEAP_FL_COUNT 28u

/* The host record of one block; private to segment_heap.c. */
struct segment_heap_node;

/*
 * struct segment_heap - one segment's allocator state.
 *
 * Visible so callers can embed it (3776 bytes, mostly list heads); only segment_heap_*()
 * may read or write the fields. A zeroed struct (and one whose init failed) is "not
 * initialized": segment_heap_fini() accepts it, every other call requires a successful init.
 */
typedef struct segment_heap {
  /* @page_size: bytes per page, a power of two >= 4096; @page_shift: its log2. */
  uint64_t page_size;
  uint32_t page_shift;
  /* @pages: segment length in pages (>= 1, < 2^32). */
  uint32_t pages;
  /* Accounting, kept exact by alloc and free: @used_pages + @free_pages == @pages. */
  uint32_t used_pages;
  uint32_t free_pages;
  uint32_t live_blocks;
  uint32_t free_ranges;
  /* Node pool. Node i lives at @chunks[i >> @chunk_shift][i & (chunk nodes - 1)]; @chunks has
   * @dir_len slots, of which the first @chunk_count hold allocated chunks (never moved or
   * freed before fini). @node_count: nodes ever handed out (high-water mark; indices below it
   * are valid). @node_capacity: nodes in allocated chunks, capped at @node_max. @unused_head /
   * @unused_count: the pool's free list of released nodes. */
  struct segment_heap_node **chunks;
  uint32_t chunk_shift;
  uint32_t chunk_count;
  uint32_t dir_len;
  uint32_t node_count;
  uint32_t node_capacity;
  uint32_t node_max;
  uint32_t unused_head;
  uint32_t unused_count;
  /* TLSF index. Bit f of @fl_bitmap is set iff @sl_bitmap[f] != 0; bit s of @sl_bitmap[f] is
   * set iff list @heads[f][s] is non-empty (SEGMENT_HEAP_NO_BLOCK = empty). */
  uint32_t fl_bitmap;
  uint32_t sl_bitmap[SEGMENT_HEAP_FL_COUNT];
  uint32_t heads[SEGMENT_HEAP_FL_COUNT][SEGMENT_HEAP_SL_COUNT];
} segment_heap;

/*
 * struct segment_heap_stats - a snapshot from segment_heap_get_stats(); bytes unless noted.
 * @size: the segment size. @used_bytes / @free_bytes: in live / free blocks (sum == @size).
 * @largest_free: the largest free range. @live_blocks: blocks handed out and not freed.
 * @free_ranges: maximal free ranges (free blocks; neighbours are always merged).
 * @metadata_bytes: host memory the heap holds: the struct, its directory and its node chunks.
 */
typedef struct segment_heap_stats {
  uint64_t size, used_bytes, free_bytes, largest_free, live_blocks, free_ranges, metadata_bytes;
} segment_heap_stats;

/**
 * segment_heap_init - make @heap manage an empty segment of @size bytes.
 * @heap: the struct to initialize; its previous contents are ignored (not freed).
 * @size: segment size in bytes: > 0, a multiple of @page_size, and @size / @page_size < 2^32.
 * @page_size: allocation granule in bytes: a power of two >= 4096.
 *
 * Allocates the node directory (8 bytes per 4096 pages of the segment) and the first node
 * chunk; the whole segment starts as one free block at offset 0.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when @heap is NULL or @size / @page_size
 * break a rule above; STATUS_NO_MEMORY when host memory for the metadata ran out. On failure
 * @heap is left zeroed (not initialized) and nothing is held.
 */
NTSTATUS segment_heap_init(segment_heap *heap, uint64_t size, uint64_t page_size);

/**
 * segment_heap_fini - release all metadata of @heap.
 * @heap: an initialized heap, a zeroed one, or one whose init failed.
 *
 * Live blocks are simply dropped (their handles become invalid). @heap is left zeroed, so a
 * second fini is harmless; it may be initialized again.
 */
void segment_heap_fini(segment_heap *heap);

/**
 * segment_heap_alloc - reserve an aligned range of the segment.
 * @heap: an initialized heap.
 * @size: bytes, > 0; rounded up to whole pages.
 * @alignment: the offset must be a multiple of this many bytes: 0 means the page size; else a
 *	power of two, where values below the page size mean the page size.
 * @out_block: on success, the new block's handle (never SEGMENT_HEAP_NO_BLOCK); the caller
 *	owns it until segment_heap_free().
 * @out_offset: on success, the block's byte offset in the segment (a multiple of the page size
 *	and of @alignment).
 *
 * O(1): good-fit search as in the overview. Leading padding and trailing remainder of the
 * block found become free blocks (needing up to two pool nodes).
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when @size is 0, @alignment is neither 0
 * nor a power of two, or a pointer argument is NULL; STATUS_GRAPHICS_NO_VIDEO_MEMORY when no
 * free range fits (always when rounded @size + @alignment - page size exceeds the segment);
 * STATUS_NO_MEMORY when host memory for a new node chunk ran out (or, only on a segment of
 * 2^32 - 2 pages or more, when it is already cut into 2^32 - 3 blocks and the node index space
 * is spent). On any failure nothing changed and the out parameters are not written.
 */
NTSTATUS segment_heap_alloc(segment_heap *heap, uint64_t size, uint64_t alignment,
                            uint32_t *out_block, uint64_t *out_offset);

/**
 * segment_heap_free - release a block and merge it with its free neighbours.
 * @heap: an initialized heap.
 * @block: a live block handle from segment_heap_alloc() on this heap.
 *
 * O(1); never allocates. The block's node (and those of merged neighbours) return to the pool.
 * It is a bug to free a handle that is not live (never returned, out of range, already freed,
 * SEGMENT_HEAP_NO_BLOCK): the heap prints "segment_heap_free: block N is not live" to stderr
 * and aborts. A freed handle that was recycled by a later alloc is live again and cannot be
 * told apart; not reusing freed handles is the caller's duty.
 */
void segment_heap_free(segment_heap *heap, uint32_t block);

/**
 * segment_heap_free_many - release @count live blocks, as segment_heap_free() on each.
 * @blocks: the first block handle; the i-th is blocks[i * @stride] (so a caller can pass a field
 *	of an array of records without copying it).
 *
 * Blocks that follow each other in the list and in the segment (each the block just above the
 * one before, as a resource's allocations usually are) are joined first and freed as one range:
 * a run costs one TLSF operation plus O(1) node work per block. It is a bug to list a block
 * that is not live, or one block twice (the call aborts as segment_heap_free() does).
 */
void segment_heap_free_many(segment_heap *heap, const uint32_t *blocks, size_t stride, uint32_t count);

/**
 * segment_heap_block_offset - the byte offset of a live block.
 * @heap: an initialized heap. @block: a live block handle.
 *
 * Returns: the offset segment_heap_alloc() reported. A handle that is not live is a bug: the
 * heap prints "segment_heap_block_offset: block N is not live" and aborts.
 */
uint64_t segment_heap_block_offset(const segment_heap *heap, uint32_t block);

/**
 * segment_heap_block_size - the byte size of a live block.
 * @heap: an initialized heap. @block: a live block handle.
 *
 * Returns: the requested size rounded up to whole pages. A handle that is not live is a bug:
 * the heap prints "segment_heap_block_size: block N is not live" and aborts.
 */
uint64_t segment_heap_block_size(const segment_heap *heap, uint32_t block);

/**
 * segment_heap_set_owner - tag a live block with a caller value (0 after alloc).
 * segment_heap_block_owner - read it back.
 * VidMm tags each block with the allocation handle placed in it, so an eviction can find who
 * lives in a segment. A handle that is not live aborts, as for segment_heap_free(). O(1).
 */
void segment_heap_set_owner(segment_heap *heap, uint32_t block, uint32_t owner);
uint32_t segment_heap_block_owner(const segment_heap *heap, uint32_t block);

/**
 * segment_heap_check_block - segment_heap_block_owner() and segment_heap_block_size() of one
 * live block in one call, for the invariant walks: the same code compiled as check code
 * (check.h AL_CHECK_CODE, not coverage-instrumented under libFuzzer).
 * @heap: an initialized heap. @block: a live block handle. @out_owner, @out_bytes: non-NULL.
 * A handle that is not live aborts with "segment_heap_check_block: block N is not live".
 */
void segment_heap_check_block(const segment_heap *heap, uint32_t block, uint32_t *out_owner,
                              uint64_t *out_bytes);

/**
 * segment_heap_next_live - walk live blocks in address order, for victim selection.
 * @cursor: in: SEGMENT_HEAP_NO_BLOCK to start at offset 0, or the block returned last time (if
 *	that block has been freed meanwhile, the walk starts over at offset 0); out: the block
 *	returned, or SEGMENT_HEAP_NO_BLOCK at the end.
 * @out_block / @out_owner: the next live block above the cursor and its owner tag.
 *
 * Returns: false at the end of the segment. Costs O(free ranges skipped).
 */
bool segment_heap_next_live(const segment_heap *heap, uint32_t *cursor, uint32_t *out_block,
                            uint32_t *out_owner);

/**
 * segment_heap_get_stats - snapshot the accounting of @heap into @out.
 * @heap: an initialized heap. @out: written in full.
 *
 * O(1) except @largest_free, which walks the highest non-empty TLSF list (its blocks differ
 * by less than 1/32 in size, so that list is short unless the segment is full of
 * near-equal free ranges).
 */
void segment_heap_get_stats(const segment_heap *heap, segment_heap_stats *out);

/**
 * segment_heap_check - verify every invariant of @heap (slow: O(blocks + nodes)).
 * @heap: a heap; a zeroed one fails the check ("not initialized").
 * @msg: receives a message naming the first broken invariant and the block (or list) where
 *	it broke, NUL-terminated and truncated to @cap bytes; "" when all hold. May be NULL when
 *	@cap is 0.
 * @cap: bytes available at @msg.
 *
 * Checks: the address-order chain from block 0 covers [0, size) in order without gaps or
 * overlap and its back links match; no two adjacent blocks are free; every free block is on
 * exactly the TLSF list of its size class, and lists hold only free blocks of their class;
 * a list's bitmap bit is set iff the list is non-empty and the bitmaps have no stray bits;
 * the accounting fields match the blocks; every pool node is either a block or on the pool
 * free list.
 *
 * Returns: true when all hold; else false with @msg filled.
 */
bool segment_heap_check(const segment_heap *heap, char *msg, size_t cap);

/**
 * segment_heap_check_live - segment_heap_check() without reading the list heads of empty
 * first-level classes (28 x 32 heads, most of them NIL): for those it checks only that the
 * bitmap says empty. Every block, every non-empty list and all accounting are checked as
 * there, so it costs O(blocks + nodes) with a small constant and suits a check after every
 * call; segment_heap_check() catches a stray head in an empty class. Same arguments and result.
 */
bool segment_heap_check_live(const segment_heap *heap, char *msg, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_SEGMENT_HEAP_H */
