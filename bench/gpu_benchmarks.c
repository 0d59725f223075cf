/*
 * gpu_benchmarks.c — the simulated GPU's MMU (//hw/gpu, used directly): GPU VA map + unmap by
 * allocation size.
 *
 *  BM_gpu_va_map_unmap/bytes:B            gpu_as_map + gpu_as_unmap of B bytes at a reserved VA
 *                                         (2 MiB leaves where VA and physical offset allow)
 *  BM_gpu_va_map_unmap_4k_pages/bytes:B   the same with GPU_MAP_NO_LARGE_PAGES
 *
 * The address space also holds 64 mapped 4 KiB pages reserved before the measured range, so the
 * upper page-table levels stay allocated between iterations, as they do in a device that has
 * other allocations bound; the leaf tables of the measured range are taken and freed by each
 * map / unmap (gpu_as_unmap frees tables it empties). Counter ns_per_4k_page: time per 4 KiB
 * of the range.
 */
#include <stdio.h>

#include "alloclab/hw/gpu_memory.h"
#include "alloclab/hw/gpu_mmu.h"
#include "bench_fixture.h"

#define MIB ((uint64_t)1 << 20)
#define SEGMENT_BYTES (64 * MIB)
#define BACKGROUND_PAGES 64u

typedef struct mmu_fixture {
  gpu_segment *segment;
  gpu_mmu *mmu;
  gpu_as *as;
} mmu_fixture;

static void mmu_close(mmu_fixture *f) {
  gpu_as_destroy(f->as); /* unmaps everything */
  if (f->mmu && f->segment) (void)gpu_mmu_detach_segment(f->mmu, f->segment);
  gpu_mmu_destroy(f->mmu);
  gpu_segment_destroy(f->segment);
}

static NTSTATUS mmu_open(mmu_fixture *f) {
  *f = (mmu_fixture){0};
  gpu_segment_desc desc = {.kind = GPU_SEGMENT_MEMORY, .id = 1, .size = SEGMENT_BYTES, .page_size = GPU_SEGMENT_PAGE_4K};
  NTSTATUS status = gpu_segment_create(&desc, NULL, &f->segment);
  if (NT_SUCCESS(status)) status = gpu_mmu_create(NULL, &f->mmu);
  if (NT_SUCCESS(status)) status = gpu_mmu_attach_segment(f->mmu, f->segment);
  if (NT_SUCCESS(status)) status = gpu_as_create(f->mmu, &f->as);
  /* Background mappings: their tables stay. */
  for (uint32_t i = 0; i < BACKGROUND_PAGES && NT_SUCCESS(status); i++) {
    uint64_t va;
    status = gpu_va_reserve(f->as, GPU_PAGE_SIZE, 0, &va);
    if (NT_SUCCESS(status))
      status = gpu_as_map(f->as, va, f->segment, SEGMENT_BYTES - (i + 1) * GPU_PAGE_SIZE, GPU_PAGE_SIZE, 0);
  }
  return status;
}

static void run_map_unmap(al_bench_state *state, uint32_t flags) {
  uint64_t bytes = (uint64_t)al_bench_range_arg(state, 0);
  mmu_fixture f;
  uint64_t va = 0;
  NTSTATUS status = mmu_open(&f);
  if (NT_SUCCESS(status)) status = gpu_va_reserve(f.as, bytes, 0, &va);
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "segment, MMU, address space and VA", status);
  } else {
    int64_t batch = 0;
    uint64_t elapsed = 0;
    while (NT_SUCCESS(status) && al_bench_keep_running_batch(state, &batch)) {
      uint64_t t0 = bench_now_ns();
      for (int64_t i = 0; i < batch && NT_SUCCESS(status); i++) {
        status = gpu_as_map(f.as, va, f.segment, 0, bytes, flags);
        if (NT_SUCCESS(status)) status = gpu_as_unmap(f.as, va, bytes);
      }
      elapsed += bench_now_ns() - t0;
      if (!NT_SUCCESS(status)) bench_fail_status(state, "gpu_as_map / gpu_as_unmap", status);
    }
    if (NT_SUCCESS(status)) {
      int64_t iterations = al_bench_iteration_count(state);
      al_bench_set_items_processed(state, iterations);
      al_bench_set_bytes_processed(state, iterations * (int64_t)bytes);
      al_bench_counter_set(state, "ns_per_4k_page",
                           (double)elapsed / ((double)iterations * (double)(bytes / GPU_PAGE_SIZE)), 0);
    }
  }
  mmu_close(&f);
}

static void bm_map_unmap(al_bench_state *state) { run_map_unmap(state, 0); }
static void bm_map_unmap_4k(al_bench_state *state) { run_map_unmap(state, GPU_MAP_NO_LARGE_PAGES); }

void bench_register_gpu(const bench_options *options) {
  (void)options;
  static const char *const names[] = {"bytes"};
  al_bench_def *d = al_bench_register("BM_gpu_va_map_unmap", bm_map_unmap);
  static const int64_t sizes[] = {4096, 65536, 1 << 20, 2 << 20, 16 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) al_bench_arg(d, sizes[i]);
  al_bench_arg_names(d, 1, names);
  d = al_bench_register("BM_gpu_va_map_unmap_4k_pages", bm_map_unmap_4k);
  al_bench_arg(d, 2 << 20);
  al_bench_arg(d, 16 << 20);
  al_bench_arg_names(d, 1, names);
}
