/*
 * segment_heap_test.c — unit tests of segment_heap (core/src/segment_heap.h).
 *
 * Every test runs segment_heap_check() after each operation it makes. The random test checks
 * the heap against a slow page-bitmap reference model; its seed comes from al_test_seed().
 */
#include "segment_heap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"

#define SEGMENT_HEAP_TEST_PAGE UINT64_C(4096)

/* ---- Helpers ------------------------------------------------------------------------------- */

/* Asserts that segment_heap_check() passes, naming @what on failure. */
#define segment_heap_test_assert_ok(heap, what)                                             \
  do {                                                                                     \
    char segment_heap_test_msg_[256];                                                      \
    bool segment_heap_test_ok_ =                                                           \
        segment_heap_check((heap), segment_heap_test_msg_, sizeof segment_heap_test_msg_); \
    assert_true(segment_heap_test_ok_, "segment_heap_check after %s: %s", (what),          \
                segment_heap_test_msg_);                                                   \
  } while (0)

static segment_heap_stats segment_heap_test_stats(const segment_heap *heap) {
  segment_heap_stats stats;
  memset(&stats, 0, sizeof stats);
  segment_heap_get_stats(heap, &stats);
  return stats;
}

static bool segment_heap_test_stats_equal(const segment_heap_stats *a,
                                          const segment_heap_stats *b) {
  return a->size == b->size && a->used_bytes == b->used_bytes &&
         a->free_bytes == b->free_bytes && a->largest_free == b->largest_free &&
         a->live_blocks == b->live_blocks && a->free_ranges == b->free_ranges &&
         a->metadata_bytes == b->metadata_bytes;
}

/* splitmix64: the random source of the randomized tests. */
static uint64_t segment_heap_test_rand(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* ---- Init ---------------------------------------------------------------------------------- */

TEST(test_init_rejects_bad_arguments) {
  segment_heap heap;
  static const struct {
    uint64_t size, page_size;
    const char *why;
  } bad[] = {
      {0, 4096, "size 0"},
      {4096, 0, "page size 0"},
      {4096, 2048, "page size below 4096"},
      {4097 * 4, 4097, "page size not a power of two"},
      {12288 * 2, 12288, "page size 12288 not a power of two"},
      {4096 * 3 + 1, 4096, "size not a page multiple"},
      {4096 * 3, 8192, "size not a multiple of an 8 KiB page"},
      {UINT64_C(1) << 44, 4096, "2^32 pages"},
      {UINT64_MAX, 4096, "size UINT64_MAX"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&heap, 0xa5, sizeof heap);
    expect_status(segment_heap_init(&heap, bad[i].size, bad[i].page_size),
                  STATUS_INVALID_PARAMETER, "init with %s", bad[i].why);
    expect_true(heap.chunks == NULL, "a failed init (%s) leaves the heap zeroed", bad[i].why);
    expect_false(segment_heap_check(&heap, NULL, 0), "a failed init (%s) is not initialized",
                 bad[i].why);
    segment_heap_fini(&heap); /* harmless on a failed init */
  }
  expect_status(segment_heap_init(NULL, 4096, 4096), STATUS_INVALID_PARAMETER, "NULL heap");
}

TEST(test_init_accepts_edge_sizes) {
  segment_heap heap;
  segment_heap_stats stats;
  uint32_t block;
  uint64_t offset;

  /* One page. */
  assert_status(segment_heap_init(&heap, 4096, 4096), STATUS_SUCCESS, "1-page segment");
  segment_heap_test_assert_ok(&heap, "init of 1 page");
  assert_status(segment_heap_alloc(&heap, 1, 0, &block, &offset), STATUS_SUCCESS, "the one page");
  expect_u64_eq(offset, 0, "the one page is at 0");
  expect_status(segment_heap_alloc(&heap, 1, 0, &block, &offset), STATUS_GRAPHICS_NO_VIDEO_MEMORY,
                "a second page does not exist");
  segment_heap_test_assert_ok(&heap, "fill of 1 page");
  segment_heap_fini(&heap);

  /* 64 KiB pages. */
  assert_status(segment_heap_init(&heap, 10 * 65536, 65536), STATUS_SUCCESS, "64 KiB pages");
  stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.size, 10 * 65536, "size");
  expect_u64_eq(stats.free_bytes, 10 * 65536, "free bytes");
  expect_u64_eq(stats.largest_free, 10 * 65536, "largest free");
  expect_u64_eq(stats.free_ranges, 1, "one free range");
  segment_heap_fini(&heap);

  /* The largest segment: 2^32 - 1 pages, taken whole by one request. */
  uint64_t max_size = (UINT64_C(1) << 44) - 4096;
  assert_status(segment_heap_init(&heap, max_size, 4096), STATUS_SUCCESS, "2^32 - 1 pages");
  segment_heap_test_assert_ok(&heap, "init of 2^32 - 1 pages");
  assert_status(segment_heap_alloc(&heap, max_size, 0, &block, &offset), STATUS_SUCCESS,
                "the whole largest segment");
  expect_u64_eq(offset, 0, "whole segment at 0");
  expect_u64_eq(segment_heap_block_size(&heap, block), max_size, "block size");
  stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.free_bytes, 0, "nothing free");
  segment_heap_free(&heap, block);
  segment_heap_test_assert_ok(&heap, "free of the whole largest segment");
  segment_heap_fini(&heap);
  segment_heap_fini(&heap); /* a second fini is harmless */
}

/* ---- Alloc arguments and exact fill -------------------------------------------------------- */

TEST(test_alloc_rejects_bad_arguments) {
  segment_heap heap;
  uint32_t block = 7;
  uint64_t offset = 9;
  assert_status(segment_heap_init(&heap, 64 * 4096, 4096), STATUS_SUCCESS, "init");
  segment_heap_stats before = segment_heap_test_stats(&heap);
  expect_status(segment_heap_alloc(&heap, 0, 0, &block, &offset), STATUS_INVALID_PARAMETER,
                "size 0");
  expect_status(segment_heap_alloc(&heap, 4096, 3, &block, &offset), STATUS_INVALID_PARAMETER,
                "alignment 3");
  expect_status(segment_heap_alloc(&heap, 4096, 3 * 4096, &block, &offset),
                STATUS_INVALID_PARAMETER, "alignment 12 KiB");
  expect_status(segment_heap_alloc(&heap, 4096, UINT64_MAX, &block, &offset),
                STATUS_INVALID_PARAMETER, "alignment UINT64_MAX");
  expect_status(segment_heap_alloc(&heap, 4096, 0, NULL, &offset), STATUS_INVALID_PARAMETER,
                "NULL out_block");
  expect_status(segment_heap_alloc(&heap, 4096, 0, &block, NULL), STATUS_INVALID_PARAMETER,
                "NULL out_offset");
  expect_status(segment_heap_alloc(&heap, UINT64_MAX, 0, &block, &offset),
                STATUS_GRAPHICS_NO_VIDEO_MEMORY, "size UINT64_MAX (no overflow)");
  expect_status(segment_heap_alloc(&heap, 65 * 4096, 0, &block, &offset),
                STATUS_GRAPHICS_NO_VIDEO_MEMORY, "one page more than the segment");
  expect_u64_eq(block, 7, "out_block untouched on failure");
  expect_u64_eq(offset, 9, "out_offset untouched on failure");
  segment_heap_stats after = segment_heap_test_stats(&heap);
  expect_true(segment_heap_test_stats_equal(&before, &after), "failed allocs change nothing");
  segment_heap_test_assert_ok(&heap, "rejected allocs");
  segment_heap_fini(&heap);
}

TEST(test_exact_fill_then_no_video_memory) {
  segment_heap heap;
  uint32_t block;
  uint64_t offset;
  const uint64_t pages = 1000;
  assert_status(segment_heap_init(&heap, pages * 4096, 4096), STATUS_SUCCESS, "init");

  /* Sizes of 1..50 pages requested as byte counts just past a page boundary, so each is
   * rounded up; the last request is exactly the remainder. */
  uint64_t used = 0;
  for (uint32_t i = 0; used < pages; i++) {
    uint64_t want = 1 + (i * 7) % 50;
    if (want > pages - used) want = pages - used;
    uint64_t bytes = (want - 1) * 4096 + 1 + (i % 4096);
    assert_status(segment_heap_alloc(&heap, bytes, 0, &block, &offset), STATUS_SUCCESS,
                  "fill step %u: %" PRIu64 " pages with %" PRIu64 " left", i, want, pages - used);
    expect_u64_eq(offset, used * 4096, "fill step %u packs the segment", i);
    expect_u64_eq(segment_heap_block_size(&heap, block), want * 4096, "step %u rounds up", i);
    expect_u64_eq(segment_heap_block_offset(&heap, block), offset, "step %u offset", i);
    used += want;
    segment_heap_test_assert_ok(&heap, "a fill step");
  }
  segment_heap_stats full = segment_heap_test_stats(&heap);
  expect_u64_eq(full.used_bytes, pages * 4096, "all bytes used");
  expect_u64_eq(full.free_bytes, 0, "no bytes free");
  expect_u64_eq(full.largest_free, 0, "no free range");
  expect_u64_eq(full.free_ranges, 0, "no free range");

  expect_status(segment_heap_alloc(&heap, 1, 0, &block, &offset), STATUS_GRAPHICS_NO_VIDEO_MEMORY,
                "1 byte in a full segment");
  expect_status(segment_heap_alloc(&heap, 4096, 65536, &block, &offset),
                STATUS_GRAPHICS_NO_VIDEO_MEMORY, "an aligned page in a full segment");
  segment_heap_stats after = segment_heap_test_stats(&heap);
  expect_true(segment_heap_test_stats_equal(&full, &after), "NO_VIDEO_MEMORY changes nothing");
  segment_heap_test_assert_ok(&heap, "failed allocs in a full segment");
  segment_heap_fini(&heap);

  /* A request for exactly the one free range succeeds even when the range's size class also
   * holds larger sizes (the good-fit search alone would skip it). */
  static const uint64_t odd_sizes[] = {31, 33, 101, 999, 1000, 4097, 65535};
  for (size_t i = 0; i < sizeof odd_sizes / sizeof odd_sizes[0]; i++) {
    assert_status(segment_heap_init(&heap, odd_sizes[i] * 4096, 4096), STATUS_SUCCESS, "init");
    expect_status(segment_heap_alloc(&heap, odd_sizes[i] * 4096, 0, &block, &offset),
                  STATUS_SUCCESS, "the whole %" PRIu64 "-page segment", odd_sizes[i]);
    segment_heap_test_assert_ok(&heap, "whole-segment alloc");
    segment_heap_fini(&heap);
  }
}

/* ---- Alignment ----------------------------------------------------------------------------- */

TEST(test_alignment) {
  segment_heap heap;
  uint32_t block, first;
  uint64_t offset;
  const uint64_t size = 1024 * 4096; /* 4 MiB */
  assert_status(segment_heap_init(&heap, size, 4096), STATUS_SUCCESS, "init");
  /* A page at 0, so that offset 0 is taken and alignment must be found higher up. */
  assert_status(segment_heap_alloc(&heap, 4096, 0, &first, &offset), STATUS_SUCCESS, "page 0");

  /* Below the page size (and 0) means the page size. */
  static const uint64_t small[] = {0, 1, 2, 64, 1024, 2048, 4096};
  for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
    assert_status(segment_heap_alloc(&heap, 3 * 4096, small[i], &block, &offset), STATUS_SUCCESS,
                  "alignment %" PRIu64, small[i]);
    expect_u64_eq(offset, 4096, "alignment %" PRIu64 " takes the next page", small[i]);
    segment_heap_free(&heap, block);
    segment_heap_test_assert_ok(&heap, "a small alignment");
  }
  /* 8 KiB .. 2 MiB: aligned, the leading padding stays free as its own range. */
  for (uint32_t shift = 13; shift <= 21; shift++) {
    uint64_t alignment = UINT64_C(1) << shift;
    assert_status(segment_heap_alloc(&heap, 3 * 4096, alignment, &block, &offset), STATUS_SUCCESS,
                  "alignment 2^%u", shift);
    expect_u64_eq(offset % alignment, 0, "offset %" PRIu64 " aligned to 2^%u", offset, shift);
    expect_u64_eq(offset, alignment, "the first aligned offset above page 0 (2^%u)", shift);
    segment_heap_stats stats = segment_heap_test_stats(&heap);
    expect_u64_eq(stats.free_ranges, 2, "padding and tail are free ranges (2^%u)", shift);
    expect_u64_eq(stats.free_bytes, size - 4 * 4096, "free bytes (2^%u)", shift);
    segment_heap_test_assert_ok(&heap, "an aligned alloc");
    segment_heap_free(&heap, block);
    segment_heap_test_assert_ok(&heap, "free of an aligned block");
    stats = segment_heap_test_stats(&heap);
    expect_u64_eq(stats.free_ranges, 1, "padding, block and tail merge again (2^%u)", shift);
  }
  /* The segment size and more: rounded size + alignment - page size exceeds the segment. */
  segment_heap_stats before = segment_heap_test_stats(&heap);
  for (uint32_t shift = 22; shift <= 63; shift++) {
    expect_status(segment_heap_alloc(&heap, 4096, UINT64_C(1) << shift, &block, &offset),
                  STATUS_GRAPHICS_NO_VIDEO_MEMORY, "alignment 2^%u with a 4 MiB segment", shift);
  }
  segment_heap_stats after = segment_heap_test_stats(&heap);
  expect_true(segment_heap_test_stats_equal(&before, &after),
              "failed aligned allocs change nothing");
  /* With page 0 free, an alignment equal to the segment size fits exactly once. */
  segment_heap_free(&heap, first);
  assert_status(segment_heap_alloc(&heap, 4096, size, &block, &offset), STATUS_SUCCESS,
                "alignment == segment size on an empty segment");
  expect_u64_eq(offset, 0, "only offset 0 is aligned to the segment size");
  expect_status(segment_heap_alloc(&heap, 4096, size * 2, &block, &offset),
                STATUS_GRAPHICS_NO_VIDEO_MEMORY, "alignment twice the segment size");
  segment_heap_test_assert_ok(&heap, "alignment == segment size");
  segment_heap_fini(&heap);

  /* The only free range is exactly the request and already aligned: no range has the padding
   * slack the search asks for, yet the probe of the request's own class finds it. */
  uint32_t a, b, c;
  assert_status(segment_heap_init(&heap, size, 4096), STATUS_SUCCESS, "init");
  assert_status(segment_heap_alloc(&heap, 512 * 4096, 0, &a, &offset), STATUS_SUCCESS, "a");
  assert_status(segment_heap_alloc(&heap, 200 * 4096, 0, &b, &offset), STATUS_SUCCESS, "b");
  assert_status(segment_heap_alloc(&heap, 312 * 4096, 0, &c, &offset), STATUS_SUCCESS, "c");
  segment_heap_free(&heap, b); /* free: pages [512, 712) */
  assert_status(segment_heap_alloc(&heap, 200 * 4096, 512 * 4096, &block, &offset),
                STATUS_SUCCESS, "200 pages aligned to 2 MiB into the 200-page hole at 2 MiB");
  expect_u64_eq(offset, 512 * 4096, "the hole");
  segment_heap_test_assert_ok(&heap, "aligned exact fit");
  segment_heap_fini(&heap);

  /* 64 KiB pages: a 4 KiB alignment means 64 KiB; 256 KiB is honoured. */
  assert_status(segment_heap_init(&heap, 64 * 65536, 65536), STATUS_SUCCESS, "64 KiB pages");
  assert_status(segment_heap_alloc(&heap, 100, 4096, &first, &offset), STATUS_SUCCESS, "one page");
  expect_u64_eq(segment_heap_block_size(&heap, first), 65536, "100 bytes round to a 64 KiB page");
  assert_status(segment_heap_alloc(&heap, 100, 4096, &block, &offset), STATUS_SUCCESS, "4 KiB");
  expect_u64_eq(offset, 65536, "4 KiB alignment below the page size means the page size");
  assert_status(segment_heap_alloc(&heap, 100, 262144, &block, &offset), STATUS_SUCCESS, "256K");
  expect_u64_eq(offset, 262144, "256 KiB alignment with 64 KiB pages");
  segment_heap_test_assert_ok(&heap, "64 KiB pages aligned");
  segment_heap_fini(&heap);
}

/* ---- Merging ------------------------------------------------------------------------------- */

/* A 16-page heap filled by blocks of 2, 3, 4 and 7 pages at 0, 2, 5 and 9. */
static void segment_heap_test_four_blocks(segment_heap *heap, uint32_t blocks[4]) {
  static const uint64_t pages[4] = {2, 3, 4, 7};
  uint64_t offset;
  assert_status(segment_heap_init(heap, 16 * 4096, 4096), STATUS_SUCCESS, "init 16 pages");
  for (int i = 0; i < 4; i++)
    assert_status(segment_heap_alloc(heap, pages[i] * 4096, 0, &blocks[i], &offset),
                  STATUS_SUCCESS, "block %d", i);
  segment_heap_test_assert_ok(heap, "four blocks");
}

/* Expects @ranges free ranges, the largest of @largest pages, and that a request for exactly
 * @largest pages lands at page @at (the merged range really is one block). */
static void segment_heap_test_expect_merged(segment_heap *heap, uint64_t ranges, uint64_t largest,
                                            uint64_t at, const char *what) {
  segment_heap_test_assert_ok(heap, what);
  segment_heap_stats stats = segment_heap_test_stats(heap);
  expect_u64_eq(stats.free_ranges, ranges, "%s: free ranges", what);
  expect_u64_eq(stats.largest_free, largest * 4096, "%s: largest free", what);
  uint32_t block;
  uint64_t offset;
  expect_status(segment_heap_alloc(heap, largest * 4096, 0, &block, &offset), STATUS_SUCCESS,
                "%s: the merged range as one block", what);
  expect_u64_eq(offset, at * 4096, "%s: merged range offset", what);
  segment_heap_test_assert_ok(heap, what);
}

TEST(test_merge_with_prev_next_both) {
  segment_heap heap;
  uint32_t b[4];

  segment_heap_test_four_blocks(&heap, b);
  segment_heap_free(&heap, b[0]);
  segment_heap_test_assert_ok(&heap, "free A");
  segment_heap_free(&heap, b[1]);
  segment_heap_test_expect_merged(&heap, 1, 5, 0, "B merged with the free block before it");
  segment_heap_fini(&heap);

  segment_heap_test_four_blocks(&heap, b);
  segment_heap_free(&heap, b[1]);
  segment_heap_test_assert_ok(&heap, "free B");
  segment_heap_free(&heap, b[0]);
  segment_heap_test_expect_merged(&heap, 1, 5, 0, "A merged with the free block after it");
  segment_heap_fini(&heap);

  segment_heap_test_four_blocks(&heap, b);
  segment_heap_free(&heap, b[0]);
  segment_heap_free(&heap, b[2]);
  segment_heap_test_assert_ok(&heap, "free A and C");
  segment_heap_stats stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.free_ranges, 2, "A and C apart");
  expect_u64_eq(stats.largest_free, 4 * 4096, "C is the largest");
  segment_heap_free(&heap, b[1]);
  segment_heap_test_expect_merged(&heap, 1, 9, 0, "B merged with both neighbours");
  segment_heap_fini(&heap);

  segment_heap_test_four_blocks(&heap, b);
  segment_heap_free(&heap, b[3]);
  segment_heap_free(&heap, b[1]);
  segment_heap_free(&heap, b[2]);
  segment_heap_test_expect_merged(&heap, 1, 14, 2, "C merged with B and the last block");
  segment_heap_fini(&heap);
}

TEST(test_largest_free_is_exact) {
  /* Free ranges of 101 and 100 pages share a size class ([100, 102)); the 100-page one, freed
   * last, heads the list, but largest_free must still report 101 pages. */
  segment_heap heap;
  uint32_t b[4];
  uint64_t offset;
  static const uint64_t pages[4] = {101, 1, 100, 1};
  assert_status(segment_heap_init(&heap, 203 * 4096, 4096), STATUS_SUCCESS, "init");
  for (int i = 0; i < 4; i++)
    assert_status(segment_heap_alloc(&heap, pages[i] * 4096, 0, &b[i], &offset), STATUS_SUCCESS,
                  "block %d", i);
  segment_heap_free(&heap, b[0]);
  segment_heap_free(&heap, b[2]);
  segment_heap_test_assert_ok(&heap, "two free ranges in one class");
  segment_heap_stats stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.free_ranges, 2, "two ranges");
  expect_u64_eq(stats.largest_free, 101 * 4096, "the larger range, not the list head");
  segment_heap_fini(&heap);
}

TEST(test_fragmentation_then_coalescing) {
  segment_heap heap;
  uint64_t rng = al_test_seed() ^ UINT64_C(0xF4A9);
  enum { PAGES = 8192 }; /* about 4100 blocks: more nodes than one 4096-node chunk */
  static uint32_t blocks[PAGES];
  static uint64_t sizes[PAGES];
  uint32_t count = 0;
  uint64_t offset, used = 0;
  assert_status(segment_heap_init(&heap, PAGES * 4096, 4096), STATUS_SUCCESS, "init");
  while (used < PAGES) {
    uint64_t want = 1 + count % 3;
    if (want > PAGES - used) want = PAGES - used;
    assert_status(segment_heap_alloc(&heap, want * 4096, 0, &blocks[count], &offset),
                  STATUS_SUCCESS, "fill block %u", count);
    sizes[count++] = want;
    used += want;
  }
  segment_heap_test_assert_ok(&heap, "fill");
  uint64_t metadata_full = segment_heap_test_stats(&heap).metadata_bytes;

  /* Free every other block: holes that never touch. */
  uint64_t largest_hole = 0, freed_bytes = 0;
  for (uint32_t i = 0; i < count; i += 2) {
    segment_heap_free(&heap, blocks[i]);
    if (sizes[i] > largest_hole) largest_hole = sizes[i];
    freed_bytes += sizes[i] * 4096;
    blocks[i] = SEGMENT_HEAP_NO_BLOCK;
  }
  segment_heap_test_assert_ok(&heap, "every other block freed");
  segment_heap_stats stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.free_ranges, (count + 1) / 2, "one range per freed block");
  expect_u64_eq(stats.largest_free, largest_hole * 4096, "the largest hole");
  expect_u64_eq(stats.free_bytes, freed_bytes, "free bytes");
  uint32_t block;
  expect_status(segment_heap_alloc(&heap, (largest_hole + 1) * 4096, 0, &block, &offset),
                STATUS_GRAPHICS_NO_VIDEO_MEMORY, "fragmented: free bytes but no range");

  /* Free the rest in random order: all coalesces back into one range. */
  for (uint32_t i = count - 1; i > 0; i--) { /* shuffle */
    uint32_t j = (uint32_t)(segment_heap_test_rand(&rng) % (i + 1));
    uint32_t t = blocks[i];
    blocks[i] = blocks[j];
    blocks[j] = t;
  }
  for (uint32_t i = 0; i < count; i++) {
    if (blocks[i] == SEGMENT_HEAP_NO_BLOCK) continue;
    segment_heap_free(&heap, blocks[i]);
    segment_heap_test_assert_ok(&heap, "coalescing free");
  }
  stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.free_ranges, 1, "one range again");
  expect_u64_eq(stats.largest_free, PAGES * 4096, "the whole segment");
  expect_u64_eq(stats.used_bytes, 0, "nothing used");
  expect_u64_eq(stats.live_blocks, 0, "nothing live");
  assert_status(segment_heap_alloc(&heap, PAGES * 4096, 0, &block, &offset), STATUS_SUCCESS,
                "the whole segment after coalescing");
  expect_u64_eq(offset, 0, "at 0");
  segment_heap_free(&heap, block);

  /* Refilling reuses the released nodes: no new host memory. */
  for (uint32_t i = 0; i < count; i++)
    assert_status(segment_heap_alloc(&heap, sizes[i] * 4096, 0, &blocks[i], &offset),
                  STATUS_SUCCESS, "refill block %u", i);
  expect_u64_eq(segment_heap_test_stats(&heap).metadata_bytes, metadata_full,
                "metadata after a refill (freed nodes are reused)");
  segment_heap_test_assert_ok(&heap, "refill");
  segment_heap_fini(&heap);
}

/* ---- Bugs abort; check catches corruption -------------------------------------------------- */

typedef struct segment_heap_test_death {
  segment_heap *heap;
  uint32_t block;
} segment_heap_test_death;

static void segment_heap_test_free_it(void *arg) {
  segment_heap_test_death *death = arg;
  segment_heap_free(death->heap, death->block);
}

static void segment_heap_test_offset_of_it(void *arg) {
  segment_heap_test_death *death = arg;
  (void)segment_heap_block_offset(death->heap, death->block);
}

TEST(test_free_of_non_live_block_aborts) {
  segment_heap heap;
  uint32_t a, b, c;
  uint64_t offset;
  char needle[96];
  assert_status(segment_heap_init(&heap, 64 * 4096, 4096), STATUS_SUCCESS, "init");
  assert_status(segment_heap_alloc(&heap, 4096, 0, &a, &offset), STATUS_SUCCESS, "a");
  assert_status(segment_heap_alloc(&heap, 4096, 0, &b, &offset), STATUS_SUCCESS, "b");
  assert_status(segment_heap_alloc(&heap, 4096, 0, &c, &offset), STATUS_SUCCESS, "c");
  segment_heap_free(&heap, b);

  /* b is now a free block: freeing it again is a double free. */
  segment_heap_test_death death = {&heap, b};
  snprintf(needle, sizeof needle, "segment_heap_free: block %u is not live", b);
  expect_death(segment_heap_test_free_it, &death, needle);
  snprintf(needle, sizeof needle, "segment_heap_block_offset: block %u is not live", b);
  expect_death(segment_heap_test_offset_of_it, &death, needle);

  /* Freeing a merges b's range into a's: b's node goes back to the pool, unused. */
  segment_heap_free(&heap, a);
  segment_heap_test_assert_ok(&heap, "free of a");
  snprintf(needle, sizeof needle, "segment_heap_free: block %u is not live", b);
  expect_death(segment_heap_test_free_it, &death, needle);
  snprintf(needle, sizeof needle, "segment_heap_free: block %u is not live", a);
  death.block = a;
  expect_death(segment_heap_test_free_it, &death, needle);

  /* Handles never handed out. */
  death.block = 12345;
  expect_death(segment_heap_test_free_it, &death, "segment_heap_free: block 12345 is not live");
  death.block = SEGMENT_HEAP_NO_BLOCK;
  snprintf(needle, sizeof needle, "segment_heap_free: block %u is not live", SEGMENT_HEAP_NO_BLOCK);
  expect_death(segment_heap_test_free_it, &death, needle);

  /* The parent is untouched by what the children did. */
  segment_heap_test_assert_ok(&heap, "death tests");
  segment_heap_free(&heap, c);
  segment_heap_test_assert_ok(&heap, "frees after the death tests");
  segment_heap_fini(&heap);
}

/* Expects segment_heap_check() and segment_heap_check_live() to fail with a message containing
 * @needle. */
static void segment_heap_test_expect_broken(const segment_heap *heap, const char *needle) {
  char msg[256];
  bool ok = segment_heap_check(heap, msg, sizeof msg);
  expect_false(ok, "check should catch: %s", needle);
  expect_true(strstr(msg, needle) != NULL, "check message \"%s\" lacks \"%s\"", msg, needle);
  ok = segment_heap_check_live(heap, msg, sizeof msg);
  expect_false(ok, "live check should catch: %s", needle);
  expect_true(strstr(msg, needle) != NULL, "live check message \"%s\" lacks \"%s\"", msg, needle);
}

TEST(test_check_catches_corruption) {
  segment_heap heap;
  uint32_t a, b;
  uint64_t offset;
  assert_status(segment_heap_init(&heap, 64 * 4096, 4096), STATUS_SUCCESS, "init");
  assert_status(segment_heap_alloc(&heap, 4096, 0, &a, &offset), STATUS_SUCCESS, "a");
  assert_status(segment_heap_alloc(&heap, 4096, 0, &b, &offset), STATUS_SUCCESS, "b");
  segment_heap_free(&heap, a);
  segment_heap_test_assert_ok(&heap, "setup");

  heap.used_pages++;
  segment_heap_test_expect_broken(&heap, "accounting: used_pages");
  heap.used_pages--;
  heap.free_ranges++;
  segment_heap_test_expect_broken(&heap, "accounting: free_ranges");
  heap.free_ranges--;
  heap.sl_bitmap[20] |= 1u << 7;
  segment_heap_test_expect_broken(&heap, "bitmap: first-level bit 20");
  heap.fl_bitmap |= 1u << 20;
  segment_heap_test_expect_broken(&heap, "list [20][7]");
  heap.sl_bitmap[20] = 0;
  segment_heap_test_expect_broken(&heap, "bitmap: first-level bit 20");
  heap.fl_bitmap &= ~(1u << 20);
  heap.fl_bitmap |= 1u << 30;
  segment_heap_test_expect_broken(&heap, "stray first-level bits");
  heap.fl_bitmap &= ~(1u << 30);
  uint32_t head = heap.heads[0][1]; /* a: the 1-page free block */
  heap.heads[0][1] = SEGMENT_HEAP_NO_BLOCK;
  segment_heap_test_expect_broken(&heap, "list [0][1]");
  heap.heads[0][1] = head;
  heap.unused_count++;
  segment_heap_test_expect_broken(&heap, "pool:");
  heap.unused_count--;
  segment_heap_test_assert_ok(&heap, "repaired");

  /* A stray head in an empty first-level class: only the full check reads those heads. */
  heap.heads[20][3] = head;
  char msg[256];
  expect_false(segment_heap_check(&heap, msg, sizeof msg), "check should catch a stray head");
  expect_true(strstr(msg, "list [20][3]") != NULL, "check message \"%s\" lacks list [20][3]", msg);
  expect_true(segment_heap_check_live(&heap, msg, sizeof msg),
              "the live check reads no head of an empty class: %s", msg);
  heap.heads[20][3] = SEGMENT_HEAP_NO_BLOCK;
  segment_heap_test_assert_ok(&heap, "repaired");

  segment_heap zero;
  memset(&zero, 0, sizeof zero);
  segment_heap_test_expect_broken(&zero, "not initialized");
  char tiny[8];
  heap.used_pages++;
  expect_false(segment_heap_check(&heap, tiny, sizeof tiny), "short buffer");
  expect_u64_eq(strlen(tiny), sizeof tiny - 1, "the message is truncated to the buffer");
  heap.used_pages--;
  segment_heap_fini(&heap);
}

/* ---- Random operations against a reference model ------------------------------------------- */

/* The reference: one byte per page, 1 = used. */
typedef struct segment_heap_ref {
  uint8_t *used;
  uint32_t pages;
} segment_heap_ref;

/* Longest run of free pages and the number of maximal free runs. */
static void segment_heap_ref_runs(const segment_heap_ref *ref, uint64_t *out_longest,
                                  uint64_t *out_runs) {
  uint64_t longest = 0, runs = 0, run = 0;
  for (uint32_t p = 0; p <= ref->pages; p++) {
    if (p < ref->pages && !ref->used[p]) {
      run++;
      continue;
    }
    if (run != 0) runs++;
    if (run > longest) longest = run;
    run = 0;
  }
  *out_longest = longest;
  *out_runs = runs;
}

/* The smallest free range TLSF good fit is sure to use for @need pages: @need rounded up to
 * the next class boundary (written independently of the heap). */
static uint64_t segment_heap_ref_fit_bound(uint64_t need) {
  if (need < 32) return need;
  uint32_t log2 = 63u - (uint32_t)__builtin_clzll(need);
  uint64_t rounded = need + (UINT64_C(1) << (log2 - 5)) - 1;
  log2 = 63u - (uint32_t)__builtin_clzll(rounded);
  return rounded & ~((UINT64_C(1) << (log2 - 5)) - 1);
}

typedef struct segment_heap_test_live {
  uint32_t block;
  uint32_t page, pages;
} segment_heap_test_live;

TEST(test_random_against_reference) {
  uint64_t rng = al_test_seed() ^ UINT64_C(0x5E6E);
  for (int round = 0; round < 8; round++) {
    uint64_t page_size = round % 3 == 2 ? 65536 : 4096;
    uint32_t pages = 64 + (uint32_t)(segment_heap_test_rand(&rng) % 4000);
    uint64_t size = pages * page_size;
    segment_heap heap;
    assert_status(segment_heap_init(&heap, size, page_size), STATUS_SUCCESS, "round %d", round);
    segment_heap_ref ref = {calloc(pages, 1), pages};
    segment_heap_test_live *live = calloc(pages, sizeof *live);
    assert_true(ref.used != NULL && live != NULL, "host memory");
    uint32_t live_count = 0;
    uint64_t used_pages = 0;

    for (int op = 0; op < 3000; op++) {
      uint64_t roll = segment_heap_test_rand(&rng) % 100;
      if (live_count == 0 || roll < 62) { /* more allocs than frees: the heap fills up */
        uint64_t r = segment_heap_test_rand(&rng);
        uint64_t req = r % 100 < 70   ? 1 + (r >> 8) % 8
                       : r % 100 < 95 ? 1 + (r >> 8) % 64
                                      : 1 + (r >> 8) % pages;
        uint64_t bytes = req * page_size - (r >> 32) % page_size; /* rounds up to req pages */
        uint64_t a = segment_heap_test_rand(&rng) % 100;
        uint64_t alignment = a < 40   ? 0
                             : a < 90 ? UINT64_C(1) << (12 + a % 7) /* 4 KiB .. 256 KiB */
                                      : UINT64_C(1) << (a % 31);    /* 1 B .. 1 GiB */
        uint64_t align_pages = alignment > page_size ? alignment / page_size : 1;
        segment_heap_stats before = segment_heap_test_stats(&heap);
        uint32_t block;
        uint64_t offset;
        NTSTATUS status = segment_heap_alloc(&heap, bytes, alignment, &block, &offset);
        if (status == STATUS_SUCCESS) {
          expect_u64_eq(offset % page_size, 0, "op %d: page aligned", op);
          expect_u64_eq(offset % (align_pages * page_size), 0, "op %d: alignment %" PRIu64, op,
                        alignment);
          expect_u64_eq(segment_heap_block_size(&heap, block), req * page_size, "op %d: size", op);
          expect_u64_eq(segment_heap_block_offset(&heap, block), offset, "op %d: offset", op);
          uint64_t first = offset / page_size;
          assert_true(first + req <= pages, "op %d: block inside the segment", op);
          for (uint64_t p = first; p < first + req; p++) {
            assert_false(ref.used[p], "op %d: page %" PRIu64 " handed out twice", op, p);
            ref.used[p] = 1;
          }
          live[live_count++] = (segment_heap_test_live){block, (uint32_t)first, (uint32_t)req};
          used_pages += req;
        } else {
          assert_status(status, STATUS_GRAPHICS_NO_VIDEO_MEMORY, "op %d: the only failure", op);
          segment_heap_stats after = segment_heap_test_stats(&heap);
          expect_true(segment_heap_test_stats_equal(&before, &after), "op %d: failure changed", op);
          uint64_t longest, runs;
          segment_heap_ref_runs(&ref, &longest, &runs);
          uint64_t need = req + align_pages - 1;
          if (need <= pages)
            expect_u64_lt(longest, segment_heap_ref_fit_bound(need),
                          "op %d: NO_VIDEO_MEMORY for %" PRIu64 " pages aligned to %" PRIu64
                          " pages, yet a free range of %" PRIu64 " pages exists",
                          op, req, align_pages, longest);
        }
      } else {
        uint32_t i = (uint32_t)(segment_heap_test_rand(&rng) % live_count);
        segment_heap_test_live gone = live[i];
        live[i] = live[--live_count];
        segment_heap_free(&heap, gone.block);
        for (uint32_t p = gone.page; p < gone.page + gone.pages; p++) ref.used[p] = 0;
        used_pages -= gone.pages;
      }
      segment_heap_test_assert_ok(&heap, "a random operation");
      uint64_t longest, runs;
      segment_heap_ref_runs(&ref, &longest, &runs);
      segment_heap_stats stats = segment_heap_test_stats(&heap);
      expect_u64_eq(stats.used_bytes, used_pages * page_size, "op %d: used bytes", op);
      expect_u64_eq(stats.free_bytes, size - used_pages * page_size, "op %d: free bytes", op);
      expect_u64_eq(stats.live_blocks, live_count, "op %d: live blocks", op);
      expect_u64_eq(stats.free_ranges, runs, "op %d: free ranges", op);
      expect_u64_eq(stats.largest_free, longest * page_size, "op %d: largest free", op);
    }
    while (live_count > 0) segment_heap_free(&heap, live[--live_count].block);
    segment_heap_test_assert_ok(&heap, "freeing everything");
    segment_heap_stats stats = segment_heap_test_stats(&heap);
    expect_u64_eq(stats.free_ranges, 1, "round %d ends with one range", round);
    free(ref.used);
    free(live);
    segment_heap_fini(&heap);
  }
}

/* ---- Scale --------------------------------------------------------------------------------- */

TEST(test_million_live_blocks) {
  enum { COUNT = 1 << 20 };
  const uint64_t pages = COUNT + 64;
  segment_heap heap;
  uint32_t *blocks = malloc(COUNT * sizeof *blocks);
  assert_true(blocks != NULL, "host memory");
  assert_status(segment_heap_init(&heap, pages * 4096, 4096), STATUS_SUCCESS, "init");
  for (uint32_t i = 0; i < COUNT; i++) {
    uint64_t offset;
    NTSTATUS status = segment_heap_alloc(&heap, 4096, 0, &blocks[i], &offset);
    if (status != STATUS_SUCCESS || offset != (uint64_t)i * 4096) {
      expect_status(status, STATUS_SUCCESS, "block %u", i);
      expect_u64_eq(offset, (uint64_t)i * 4096, "block %u packs", i);
      break;
    }
  }
  segment_heap_stats stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.live_blocks, COUNT, "a million live blocks");
  expect_u64_le(stats.metadata_bytes / stats.live_blocks, 32, "metadata per live block (%" PRIu64
                " bytes in all)", stats.metadata_bytes);
  segment_heap_test_assert_ok(&heap, "a million live blocks");

  for (uint32_t i = 0; i < COUNT; i += 2) segment_heap_free(&heap, blocks[i]);
  stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.free_ranges, COUNT / 2 + 1, "every other block free, plus the tail");
  segment_heap_test_assert_ok(&heap, "half freed");
  for (uint32_t i = 1; i < COUNT; i += 2) segment_heap_free(&heap, blocks[i]);
  stats = segment_heap_test_stats(&heap);
  expect_u64_eq(stats.free_ranges, 1, "everything merged back");
  expect_u64_eq(stats.largest_free, pages * 4096, "one range of the whole segment");
  expect_u64_eq(stats.live_blocks, 0, "nothing live");
  segment_heap_test_assert_ok(&heap, "all freed");
  segment_heap_fini(&heap);
  free(blocks);
}

/* Owner tags survive until free; next_live walks live blocks in address order, skips free
 * ranges, and starts over when its cursor block is gone. */
TEST(test_owner_tags_and_live_walk) {
  segment_heap heap;
  assert_status(segment_heap_init(&heap, 64 * 4096, 4096), STATUS_SUCCESS, "init");
  uint32_t blocks[6];
  uint64_t offset;
  for (uint32_t i = 0; i < 6; i++) {
    assert_status(segment_heap_alloc(&heap, 4096, 0, &blocks[i], &offset), STATUS_SUCCESS, "alloc %u", i);
    expect_u64_eq(segment_heap_block_owner(&heap, blocks[i]), 0, "a new block has no owner");
    segment_heap_set_owner(&heap, blocks[i], 100 + i);
  }
  segment_heap_free(&heap, blocks[1]);
  segment_heap_free(&heap, blocks[4]);
  const uint32_t expected[] = {100, 102, 103, 105};
  uint32_t cursor = SEGMENT_HEAP_NO_BLOCK, block, owner, seen = 0;
  uint64_t last_offset = 0;
  while (segment_heap_next_live(&heap, &cursor, &block, &owner)) {
    assert_true(seen < 4, "more live blocks than there are");
    expect_u64_eq(owner, expected[seen], "live block %u in address order", seen);
    uint64_t here = segment_heap_block_offset(&heap, block);
    if (seen) expect_u64_gt(here, last_offset, "address order");
    last_offset = here;
    seen++;
  }
  expect_u64_eq(seen, 4, "every live block once");
  expect_u64_eq(cursor, SEGMENT_HEAP_NO_BLOCK, "cursor reset at the end");
  /* A cursor whose block was freed (and its node recycled or merged) starts over. */
  cursor = blocks[2];
  segment_heap_free(&heap, blocks[2]);
  segment_heap_free(&heap, blocks[3]); /* merges 1..4: nodes 2 and 3 return to the pool */
  assert_true(segment_heap_next_live(&heap, &cursor, &block, &owner), "walk after free");
  expect_u64_eq(owner, 100, "started over at offset 0");
  segment_heap_fini(&heap);
}

/* free_many: runs of address-adjacent blocks are joined and freed once; any other order still
 * frees every block exactly as segment_heap_free would. Compared against a twin heap. */
TEST(test_free_many_matches_single_frees) {
  const uint32_t orders = 4;
  for (uint32_t order = 0; order < orders; order++) {
    segment_heap batch, single;
    assert_status(segment_heap_init(&batch, 256 * 4096, 4096), STATUS_SUCCESS, "init");
    assert_status(segment_heap_init(&single, 256 * 4096, 4096), STATUS_SUCCESS, "init");
    uint32_t a[40], b[40];
    uint64_t offset;
    for (uint32_t i = 0; i < 40; i++) {
      uint64_t size = 4096u * (1 + i % 3);
      assert_status(segment_heap_alloc(&batch, size, 0, &a[i], &offset), STATUS_SUCCESS, "alloc");
      assert_status(segment_heap_alloc(&single, size, 0, &b[i], &offset), STATUS_SUCCESS, "alloc");
    }
    /* Free a hole first so runs stop at free neighbours too. */
    segment_heap_free(&batch, a[20]);
    segment_heap_free(&single, b[20]);
    uint32_t list[39], count = 0;
    for (uint32_t i = 0; i < 40; i++) {
      uint32_t k = order == 0 ? i : order == 1 ? 39 - i : order == 2 ? (i * 7) % 40 : (i % 2 ? i : 39 - i);
      if (k == 20) continue;
      bool seen = false;
      for (uint32_t j = 0; j < count; j++) seen |= list[j] == k;
      if (!seen) list[count++] = k;
    }
    uint32_t batch_blocks[2 * 39]; /* stride 2: every other uint32 is padding */
    for (uint32_t j = 0; j < count; j++) {
      batch_blocks[2 * j] = a[list[j]];
      batch_blocks[2 * j + 1] = UINT32_MAX;
    }
    segment_heap_free_many(&batch, batch_blocks, 2, count);
    for (uint32_t j = 0; j < count; j++) segment_heap_free(&single, b[list[j]]);
    char msg[256];
    expect_true(segment_heap_check(&batch, msg, sizeof msg), "order %u: %s", order, msg);
    segment_heap_stats x, y;
    segment_heap_get_stats(&batch, &x);
    segment_heap_get_stats(&single, &y);
    expect_u64_eq(x.used_bytes, y.used_bytes, "order %u: used", order);
    expect_u64_eq(x.live_blocks, y.live_blocks, "order %u: live", order);
    expect_u64_eq(x.free_ranges, y.free_ranges, "order %u: ranges", order);
    expect_u64_eq(x.largest_free, y.largest_free, "order %u: largest", order);
    segment_heap_fini(&batch);
    segment_heap_fini(&single);
  }
}

static void free_many_twice(void *arg) {
  (void)arg;
  segment_heap heap;
  segment_heap_init(&heap, 16 * 4096, 4096);
  uint32_t blocks[2];
  uint64_t offset;
  segment_heap_alloc(&heap, 4096, 0, &blocks[0], &offset);
  blocks[1] = blocks[0];
  segment_heap_free_many(&heap, blocks, 1, 2);
}

TEST(test_free_many_of_a_block_twice_aborts) {
  expect_death(free_many_twice, NULL, "is not live");
}

/* segment_heap_check_block (the walks' accessor) reads what block_owner and block_size read. */
TEST(test_check_block_matches_owner_and_size) {
  segment_heap heap;
  assert_status(segment_heap_init(&heap, 64 * 4096, 4096), STATUS_SUCCESS, "init");
  uint32_t blocks[3];
  uint64_t offset;
  for (uint32_t i = 0; i < 3; i++) {
    assert_status(segment_heap_alloc(&heap, 4096u * (i + 1) - 100, 0, &blocks[i], &offset),
                  STATUS_SUCCESS, "alloc %u", i);
    segment_heap_set_owner(&heap, blocks[i], 0x40000000u + i);
  }
  for (uint32_t i = 0; i < 3; i++) {
    uint32_t owner = 0;
    uint64_t bytes = 0;
    segment_heap_check_block(&heap, blocks[i], &owner, &bytes);
    expect_u64_eq(owner, 0x40000000u + i, "owner of block %u", i);
    expect_u64_eq(owner, segment_heap_block_owner(&heap, blocks[i]), "as block_owner, %u", i);
    expect_u64_eq(bytes, 4096u * (i + 1), "size of block %u (whole pages)", i);
    expect_u64_eq(bytes, segment_heap_block_size(&heap, blocks[i]), "as block_size, %u", i);
  }
  segment_heap_fini(&heap);
}

static void check_block_of_freed(void *arg) {
  (void)arg;
  segment_heap heap;
  segment_heap_init(&heap, 16 * 4096, 4096);
  uint32_t block, owner;
  uint64_t offset, bytes;
  segment_heap_alloc(&heap, 4096, 0, &block, &offset);
  segment_heap_free(&heap, block);
  segment_heap_check_block(&heap, block, &owner, &bytes);
}

TEST(test_check_block_of_non_live_block_aborts) {
  expect_death(check_block_of_freed, NULL, "segment_heap_check_block: block 0 is not live");
}

RUN_TESTS(T(test_free_many_matches_single_frees), T(test_free_many_of_a_block_twice_aborts),
          T(test_check_block_matches_owner_and_size), T(test_check_block_of_non_live_block_aborts), T(test_owner_tags_and_live_walk), T(test_init_rejects_bad_arguments), T(test_init_accepts_edge_sizes),
          T(test_alloc_rejects_bad_arguments), T(test_exact_fill_then_no_video_memory),
          T(test_alignment), T(test_merge_with_prev_next_both), T(test_largest_free_is_exact),
          T(test_fragmentation_then_coalescing), T(test_free_of_non_live_block_aborts),
          T(test_check_catches_corruption), T(test_random_against_reference),
          T(test_million_live_blocks))
