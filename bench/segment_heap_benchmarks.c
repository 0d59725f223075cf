/*
 * segment_heap_benchmarks.c — VidMm's per-segment allocator (core/src/segment_heap.h) used
 * directly, without the port around it. Built only when //bench can see
 * //core:internal_for_tests (see bench/BUILD.bazel); main registers these when they are linked.
 *
 *  BM_segment_heap_alloc_free/bytes:B        alloc + free of B bytes on an empty 4 GiB segment
 *  BM_segment_heap_churn/live:L              L live blocks of a size distribution (4 KiB..1 MiB,
 *                                            mostly small); free a random one, allocate another
 *  BM_segment_heap_fragmented/bytes:B        alloc + free of B bytes in a segment cut into
 *                                            alternating live and free 4 KiB pages (every hole
 *                                            too small), so each alloc takes the one big range
 *  BM_segment_heap_free_many/blocks:N        N address-adjacent blocks (a resource) allocated,
 *                                            then released with one segment_heap_free_many
 * Counters: free_ranges (fragmentation at the end of the run).
 */
#include <stdlib.h>

#include "bench_fixture.h"
#include "segment_heap.h"

#define PAGE UINT64_C(4096)
#define SEGMENT_BYTES (UINT64_C(4) << 30)

static segment_heap *heap_new(al_bench_state *state) {
  segment_heap *heap = calloc(1, sizeof *heap);
  if (heap == NULL) abort();
  NTSTATUS status = segment_heap_init(heap, SEGMENT_BYTES, PAGE);
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "segment_heap_init", status);
    free(heap);
    return NULL;
  }
  return heap;
}

static void heap_free(al_bench_state *state, segment_heap *heap) {
  segment_heap_stats stats;
  segment_heap_get_stats(heap, &stats);
  al_bench_counter_set(state, "free_ranges", (double)stats.free_ranges, 0);
  segment_heap_fini(heap);
  free(heap);
}

static void bm_alloc_free(al_bench_state *state) {
  uint64_t bytes = (uint64_t)al_bench_range_arg(state, 0);
  segment_heap *heap = heap_new(state);
  if (heap == NULL) return;
  int64_t n = 0;
  NTSTATUS status = STATUS_SUCCESS;
  while (al_bench_keep_running_batch(state, &n)) {
    for (int64_t i = 0; i < n && NT_SUCCESS(status); i++) {
      uint32_t block;
      uint64_t offset;
      status = segment_heap_alloc(heap, bytes, 0, &block, &offset);
      if (NT_SUCCESS(status)) segment_heap_free(heap, block);
    }
    if (!NT_SUCCESS(status)) {
      bench_fail_status(state, "segment_heap_alloc", status);
      break;
    }
  }
  if (NT_SUCCESS(status)) al_bench_set_items_processed(state, al_bench_iteration_count(state));
  heap_free(state, heap);
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* 4 KiB .. 1 MiB, each size half as likely as the one below it. */
static uint64_t pick_size(uint64_t r) {
  uint32_t k = 0;
  while (k < 8 && (r & (UINT64_C(1) << k))) k++;
  return PAGE << k;
}

static void bm_churn(al_bench_state *state) {
  uint32_t live = (uint32_t)al_bench_range_arg(state, 0);
  segment_heap *heap = heap_new(state);
  if (heap == NULL) return;
  uint32_t *blocks = malloc(live * sizeof *blocks);
  if (blocks == NULL) abort();
  uint64_t rng = 0x9E3779B97F4A7C15u, offset;
  NTSTATUS status = STATUS_SUCCESS;
  for (uint32_t i = 0; i < live && NT_SUCCESS(status); i++)
    status = segment_heap_alloc(heap, pick_size(xorshift(&rng)), 0, &blocks[i], &offset);
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "segment_heap_alloc (initial blocks)", status);
  } else {
    int64_t n = 0;
    while (al_bench_keep_running_batch(state, &n)) {
      for (int64_t i = 0; i < n && NT_SUCCESS(status); i++) {
        uint64_t r = xorshift(&rng);
        uint32_t slot = (uint32_t)((r >> 16) % live);
        segment_heap_free(heap, blocks[slot]);
        status = segment_heap_alloc(heap, pick_size(r), 0, &blocks[slot], &offset);
      }
      if (!NT_SUCCESS(status)) {
        bench_fail_status(state, "segment_heap_alloc", status);
        break;
      }
    }
    if (NT_SUCCESS(status)) al_bench_set_items_processed(state, al_bench_iteration_count(state));
  }
  free(blocks);
  heap_free(state, heap);
}

static void bm_fragmented(al_bench_state *state) {
  uint64_t bytes = (uint64_t)al_bench_range_arg(state, 0);
  segment_heap *heap = heap_new(state);
  if (heap == NULL) return;
  /* 2 x 64 Ki pages: live, free, live, free, ... then the rest of the segment free. */
  const uint32_t pairs = 65536;
  uint32_t *blocks = malloc(2 * pairs * sizeof *blocks);
  if (blocks == NULL) abort();
  uint64_t offset;
  NTSTATUS status = STATUS_SUCCESS;
  for (uint32_t i = 0; i < 2 * pairs && NT_SUCCESS(status); i++)
    status = segment_heap_alloc(heap, PAGE, 0, &blocks[i], &offset);
  for (uint32_t i = 1; i < 2 * pairs && NT_SUCCESS(status); i += 2) segment_heap_free(heap, blocks[i]);
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "segment_heap_alloc (fragmenting)", status);
  } else {
    int64_t n = 0;
    while (al_bench_keep_running_batch(state, &n)) {
      for (int64_t i = 0; i < n && NT_SUCCESS(status); i++) {
        uint32_t block;
        status = segment_heap_alloc(heap, bytes, 0, &block, &offset);
        if (NT_SUCCESS(status)) segment_heap_free(heap, block);
      }
      if (!NT_SUCCESS(status)) {
        bench_fail_status(state, "segment_heap_alloc", status);
        break;
      }
    }
    if (NT_SUCCESS(status)) al_bench_set_items_processed(state, al_bench_iteration_count(state));
  }
  free(blocks);
  heap_free(state, heap);
}

static void bm_free_many(al_bench_state *state) {
  uint32_t count = (uint32_t)al_bench_range_arg(state, 0);
  segment_heap *heap = heap_new(state);
  if (heap == NULL) return;
  uint32_t *blocks = malloc(count * sizeof *blocks);
  if (blocks == NULL) abort();
  uint64_t offset, timed = 0;
  NTSTATUS status = STATUS_SUCCESS;
  int64_t n = 0;
  while (NT_SUCCESS(status) && al_bench_keep_running_batch(state, &n)) {
    for (int64_t i = 0; i < n && NT_SUCCESS(status); i++) {
      for (uint32_t b = 0; b < count && NT_SUCCESS(status); b++)
        status = segment_heap_alloc(heap, PAGE, 0, &blocks[b], &offset);
      if (!NT_SUCCESS(status)) break;
      uint64_t t0 = bench_now_ns();
      segment_heap_free_many(heap, blocks, 1, count);
      timed += bench_now_ns() - t0;
    }
    if (!NT_SUCCESS(status)) bench_fail_status(state, "segment_heap_alloc", status);
    al_bench_set_iteration_time(state, (double)timed * 1e-9);
    timed = 0;
  }
  if (NT_SUCCESS(status)) al_bench_set_items_processed(state, al_bench_iteration_count(state) * count);
  free(blocks);
  heap_free(state, heap);
}

void bench_register_segment_heap(const bench_options *options) {
  static const char *const bytes[] = {"bytes"}, *const live[] = {"live"}, *const blocks[] = {"blocks"};
  static const int64_t sizes[] = {4096, 65536, 1 << 20, 16 << 20};
  al_bench_def *d = al_bench_register("BM_segment_heap_alloc_free", bm_alloc_free);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) al_bench_arg(d, sizes[i]);
  al_bench_arg_names(d, 1, bytes);
  d = al_bench_register("BM_segment_heap_churn", bm_churn);
  al_bench_arg(d, options->smoke ? 256 : 4096);
  al_bench_arg(d, options->smoke ? 1024 : 65536);
  al_bench_arg_names(d, 1, live);
  d = al_bench_register("BM_segment_heap_fragmented", bm_fragmented);
  al_bench_arg(d, 8192);
  al_bench_arg(d, 1 << 20);
  al_bench_arg_names(d, 1, bytes);
  d = al_bench_use_manual_time(al_bench_register("BM_segment_heap_free_many", bm_free_many));
  al_bench_arg(d, 64);
  al_bench_arg(d, 1024);
  al_bench_arg_names(d, 1, blocks);
}
