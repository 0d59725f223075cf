/*
 * gpu_paging_test.c — eviction round trips through the whole GPU: write a pattern with the
 * engine into an allocation mapped from VRAM, move it (VRAM -> aperture -> system memory ->
 * VRAM) with gpu_segment_transfer*, remap the VA to each new place, read it back through the
 * engine: identical every time. A mapping left pointing at the old place faults and names the
 * allocation (the "pages returned while the GPU can still map them" bug).
 */
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/hw/gpu_engine.h"
#include "alloclab/hw/gpu_memory.h"
#include "alloclab/hw/gpu_mmu.h"
#include "gpu_test_fixture.h"

#define KIB UINT64_C(1024)
#define MIB (UINT64_C(1024) * KIB)
#define ALLOC_ID UINT64_C(0x5150)

static uint64_t next_fence = 1;

/* Runs one command stream and returns its status. */
static NTSTATUS run_stream(gpu_fixture *f, const void *cmds, size_t n, void *rb, size_t rb_len) {
  gpu_submission s = {.as = f->as, .commands = cmds, .command_bytes = n, .fence = next_fence++,
                      .readback = rb, .readback_bytes = rb_len};
  NTSTATUS st = gpu_engine_submit(f->engine, &s);
  if (!NT_SUCCESS(st)) return st;
  gpu_engine_wait_idle(f->engine);
  NTSTATUS done = STATUS_SUCCESS;
  if (!gpu_engine_fence_status(f->engine, s.fence, &done)) return STATUS_TIMEOUT;
  return done;
}

/* Reads the allocation at @va through the engine into @out. */
static NTSTATUS engine_readback(gpu_fixture *f, uint64_t va, uint8_t *out, uint64_t size) {
  uint8_t cmd[GPU_CMD_READBACK_BYTES];
  size_t n = gpu_cmd_readback(cmd, va, size, 0);
  return run_stream(f, cmd, n, out, size);
}

static void paging_round_trip(uint32_t mem_page_size, uint64_t size, uint64_t mem_offset,
                              uint64_t ap_offset) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, mem_page_size, GPU_ENGINE_DETERMINISTIC), "fixture");
  uint64_t va = 0;
  assert_status(gpu_va_reserve(f.as, size, 0, &va), STATUS_SUCCESS, "reserve VA");
  assert_status(gpu_segment_commit(f.mem, mem_offset, size, ALLOC_ID), STATUS_SUCCESS, "commit");
  assert_status(gpu_as_map(f.as, va, f.mem, mem_offset, size, 0), STATUS_SUCCESS, "map VRAM");

  /* Write a position-dependent pattern through the engine: FILL then COPY of shifted pieces. */
  uint8_t cmds[8 * GPU_CMD_COPY_BYTES];
  size_t n = gpu_cmd_fill(cmds, va, size, 0x9E3779B9u);
  n += gpu_cmd_fill(cmds + n, va + 3 * KIB, 5 * KIB, 0x01020304u);
  n += gpu_cmd_copy(cmds + n, va + 3 * KIB, va + size - 9 * KIB, 5 * KIB);
  assert_status(run_stream(&f, cmds, n, NULL, 0), STATUS_SUCCESS, "write the pattern");
  uint8_t *want = malloc(size), *got = malloc(size), *sys = malloc(size);
  assert_true(want && got && sys, "host buffers");
  assert_status(engine_readback(&f, va, want, size), STATUS_SUCCESS, "reference readback");

  /* 1. VRAM -> aperture; remap. */
  assert_status(gpu_as_unmap(f.as, va, size), STATUS_SUCCESS, "unmap before moving");
  assert_status(gpu_segment_transfer(f.mem, mem_offset, f.aperture, ap_offset, size),
                STATUS_SUCCESS, "evict to the aperture");
  assert_status(gpu_as_map(f.as, va, f.aperture, ap_offset, size, 0), STATUS_SUCCESS, "remap");
  memset(got, 0, size);
  expect_status(engine_readback(&f, va, got, size), STATUS_SUCCESS, "read from the aperture");
  expect_true(memcmp(got, want, size) == 0, "identical after VRAM -> aperture");

  /* 2. aperture -> system memory -> VRAM (elsewhere); remap. */
  assert_status(gpu_as_unmap(f.as, va, size), STATUS_SUCCESS, "unmap");
  uint64_t owner = 0;
  assert_status(gpu_segment_transfer_to_host(f.aperture, ap_offset, sys, size, &owner),
                STATUS_SUCCESS, "evict to system memory");
  expect_u64_eq(owner, ALLOC_ID, "owner travels with the contents");
  const uint64_t back = mem_offset + 16 * MIB;
  assert_status(gpu_segment_transfer_from_host(f.mem, back, sys, size, owner), STATUS_SUCCESS,
                "page back into VRAM");
  assert_status(gpu_as_map(f.as, va, f.mem, back, size, 0), STATUS_SUCCESS, "remap to VRAM");
  memset(got, 0, size);
  expect_status(engine_readback(&f, va, got, size), STATUS_SUCCESS, "read from VRAM");
  expect_true(memcmp(got, want, size) == 0, "identical after aperture -> system -> VRAM");

  /* 3. Move again but forget to remap: the stale mapping must fault and name the allocation. */
  assert_status(gpu_segment_transfer(f.mem, back, f.aperture, ap_offset, size), STATUS_SUCCESS,
                "evict while still mapped (the bug)");
  expect_status(engine_readback(&f, va, got, size), GPU_STATUS_PAGE_FAULT,
                "the stale mapping faults");
  gpu_fault fault;
  assert_u64_eq(gpu_mmu_fault_log(f.mmu, &fault, 1), 1, "fault logged");
  expect_u64_eq(fault.kind, GPU_FAULT_FREED_PAGE, "freed page");
  expect_u64_eq(fault.last_owner, ALLOC_ID, "last owned by the evicted allocation");
  expect_u64_eq(fault.segment_id, FIX_MEM_ID, "in VRAM");
  expect_u64_eq(fault.va, va, "at the allocation's first byte");
  assert_status(gpu_as_unmap(f.as, va, size), STATUS_SUCCESS, "unmap");
  assert_status(gpu_va_release(f.as, va), STATUS_SUCCESS, "release VA");
  free(want);
  free(got);
  free(sys);
  gpu_fixture_fini(&f);
}

TEST(test_round_trip_4k_pages) { paging_round_trip(GPU_SEGMENT_PAGE_4K, 96 * KIB, 40 * KIB, 0); }

TEST(test_round_trip_64k_pages_large_mapping) {
  /* 4 MiB at 2 MiB-aligned offsets: large pages in VRAM and in the aperture. */
  paging_round_trip(GPU_SEGMENT_PAGE_64K, 4 * MIB, 2 * MIB, 4 * MIB);
}

TEST(test_round_trip_unaligned_placement) {
  /* VRAM offset not 2 MiB-aligned: 4 KiB leaves there, large pages after the move. */
  paging_round_trip(GPU_SEGMENT_PAGE_64K, 2 * MIB, 64 * KIB, 2 * MIB);
}

RUN_TESTS(T(test_round_trip_4k_pages), T(test_round_trip_64k_pages_large_mapping),
          T(test_round_trip_unaligned_placement))
