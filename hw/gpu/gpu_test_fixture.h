/*
 * gpu_test_fixture.h — a whole simulated GPU for the hw/gpu tests: one fault injector, a memory
 * segment (id 1), an aperture segment (id 2), an MMU with both attached, one address space and
 * an engine. gpu_fixture_fini() checks the invariants of every part before freeing it.
 */
#ifndef ALLOCLAB_HW_GPU_TEST_FIXTURE_H
#define ALLOCLAB_HW_GPU_TEST_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/hw/fault_injection.h"
#include "alloclab/hw/gpu_engine.h"
#include "alloclab/hw/gpu_memory.h"
#include "alloclab/hw/gpu_mmu.h"

#define FIX_MEM_ID 1u
#define FIX_APERTURE_ID 2u
#define FIX_MEM_SIZE (UINT64_C(64) << 20)
#define FIX_APERTURE_SIZE (UINT64_C(16) << 20)

typedef struct gpu_fixture {
  fault_injector inj;
  gpu_segment *mem;
  gpu_segment *aperture;
  gpu_mmu *mmu;
  gpu_as *as;
  gpu_engine *engine;
} gpu_fixture;

/* Builds every part; @mem_page_size: 4 KiB or 64 KiB; @mode 0 = no engine. */
static inline bool gpu_fixture_init(gpu_fixture *f, uint32_t mem_page_size,
                                    gpu_engine_mode mode) {
  memset(f, 0, sizeof *f);
  fault_injector_init(&f->inj);
  gpu_segment_desc mem = {GPU_SEGMENT_MEMORY, FIX_MEM_ID, FIX_MEM_SIZE, mem_page_size};
  gpu_segment_desc ap = {GPU_SEGMENT_APERTURE, FIX_APERTURE_ID, FIX_APERTURE_SIZE, 0};
  if (gpu_segment_create(&mem, &f->inj, &f->mem) != STATUS_SUCCESS) return false;
  if (gpu_segment_create(&ap, &f->inj, &f->aperture) != STATUS_SUCCESS) return false;
  if (gpu_mmu_create(&f->inj, &f->mmu) != STATUS_SUCCESS) return false;
  if (gpu_mmu_attach_segment(f->mmu, f->mem) != STATUS_SUCCESS) return false;
  if (gpu_mmu_attach_segment(f->mmu, f->aperture) != STATUS_SUCCESS) return false;
  if (gpu_as_create(f->mmu, &f->as) != STATUS_SUCCESS) return false;
  if ((int)mode != 0 && gpu_engine_create(f->mmu, mode, &f->engine) != STATUS_SUCCESS) {
    return false;
  }
  return true;
}

static inline void gpu_fixture_fini(gpu_fixture *f) {
  char finding[512];
  gpu_engine_destroy(f->engine);
  if (f->as != NULL)
    expect_true(gpu_as_check(f->as, finding, sizeof finding), "page table consistent at teardown: %s", finding);
  gpu_as_destroy(f->as);
  if (f->mmu != NULL && f->mem != NULL) {
    expect_u64_eq(gpu_mmu_segment_mapped_bytes(f->mmu, f->mem), 0, "nothing maps VRAM");
    expect_u64_eq(gpu_mmu_segment_mapped_bytes(f->mmu, f->aperture), 0, "nothing maps aperture");
  }
  gpu_mmu_destroy(f->mmu);
  if (f->mem != NULL)
    expect_true(gpu_segment_check(f->mem, finding, sizeof finding), "memory segment consistent: %s", finding);
  if (f->aperture != NULL)
    expect_true(gpu_segment_check(f->aperture, finding, sizeof finding), "aperture consistent: %s", finding);
  gpu_segment_destroy(f->mem);
  gpu_segment_destroy(f->aperture);
  memset(f, 0, sizeof *f);
}

/* A tiny deterministic PRNG for tests (splitmix64). */
static inline uint64_t gpu_test_rand(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

#endif /* ALLOCLAB_HW_GPU_TEST_FIXTURE_H */
