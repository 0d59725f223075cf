/* gpu_memory_test.c — segments: bounds, ownership tags, aperture backing, transfers. */
#include "alloclab/hw/gpu_memory.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "alloclab/testing.h"
#include "gpu_test_fixture.h"

#define KIB UINT64_C(1024)
#define MIB (UINT64_C(1024) * KIB)

static gpu_segment *make_segment(gpu_segment_kind kind, uint32_t id, uint64_t size,
                                 uint32_t page_size, fault_injector *inj) {
  gpu_segment_desc d = {kind, id, size, page_size};
  gpu_segment *s = NULL;
  NTSTATUS st = gpu_segment_create(&d, inj, &s);
  expect_status(st, STATUS_SUCCESS, "create segment %u", id);
  return s;
}

TEST(test_create_rejects_bad_descriptions) {
  static const gpu_segment_desc bad[] = {
      {GPU_SEGMENT_MEMORY, 0, MIB, 0},                      /* id 0 */
      {GPU_SEGMENT_MEMORY, GPU_SEGMENT_MAX_ID + 1, MIB, 0}, /* id too large */
      {GPU_SEGMENT_MEMORY, 1, 0, 0},                        /* empty */
      {GPU_SEGMENT_MEMORY, 1, MIB + 4096, 65536},           /* not a page multiple */
      {GPU_SEGMENT_MEMORY, 1, MIB, 8192},                   /* bad page size */
      {(gpu_segment_kind)0, 1, MIB, 0},                     /* bad kind */
      {GPU_SEGMENT_APERTURE, 1, GPU_SEGMENT_MAX_SIZE * 2, 0}, /* too large */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    gpu_segment *s = (gpu_segment *)1;
    expect_status(gpu_segment_create(&bad[i], NULL, &s), STATUS_INVALID_PARAMETER, "desc %zu", i);
    expect_ptr_eq(s, (gpu_segment *)1, "out not written for desc %zu", i);
  }
  gpu_segment *s = NULL;
  expect_status(gpu_segment_create(NULL, NULL, &s), STATUS_INVALID_PARAMETER, "NULL desc");
  gpu_segment_desc ok = {GPU_SEGMENT_MEMORY, 3, MIB, 0};
  expect_status(gpu_segment_create(&ok, NULL, NULL), STATUS_INVALID_PARAMETER, "NULL out");
  assert_status(gpu_segment_create(&ok, NULL, &s), STATUS_SUCCESS, "page size 0 means 4 KiB");
  expect_u64_eq(gpu_segment_page_size(s), 4096, "default page size");
  expect_u64_eq(gpu_segment_id(s), 3, "id");
  gpu_segment_destroy(s);
}

/* A segment built on a recycled region starts as a fresh one: what its predecessor of the same
 * size committed, wrote and released (tags, last owners, contents) is gone. */
static void expect_recycled_segment_is_fresh(gpu_segment_kind kind) {
  const uint64_t size = 3 * MIB + 64 * KIB; /* a length no other test uses */
  gpu_segment_drop_cached_regions();
  expect_u64_eq(gpu_segment_cached_regions(), 0, "dropped");
  gpu_segment *s = make_segment(kind, 7, size, 0, NULL);
  assert_true(s != NULL, "first segment");
  uint8_t pattern[256];
  memset(pattern, 0xA5, sizeof pattern);
  assert_status(gpu_segment_commit(s, 64 * KIB, 8192, 11), STATUS_SUCCESS, "commit");
  assert_status(gpu_segment_write(s, 64 * KIB + 100, pattern, sizeof pattern, NULL), STATUS_SUCCESS, "write");
  assert_status(gpu_segment_commit(s, 2 * MIB, 4096, 12), STATUS_SUCCESS, "commit, left committed");
  assert_status(gpu_segment_write(s, 2 * MIB, pattern, sizeof pattern, NULL), STATUS_SUCCESS, "write");
  assert_status(gpu_segment_release(s, 64 * KIB, 8192), STATUS_SUCCESS, "release");
  size_t cached = gpu_segment_cached_regions();
  gpu_segment_destroy(s);
  /* Its stored bits, its tags, and its contents (memory) or page pointers (aperture). */
  expect_u64_eq(gpu_segment_cached_regions(), cached + 3, "the destroyed segment's three regions are kept");
  s = make_segment(kind, 7, size, 0, NULL);
  assert_true(s != NULL, "second segment");
  expect_u64_eq(gpu_segment_cached_regions(), cached, "the new segment took them back");
  gpu_segment_page_info info;
  for (uint64_t offset = 0; offset < size; offset += 4096) {
    assert_status(gpu_segment_get_page_info(s, offset, &info), STATUS_SUCCESS, "info");
    if (info.owner != 0 || info.last_owner != 0)
      expect_true(false, "page at %llu: owner %llu, last owner %llu in a new segment",
                  (unsigned long long)offset, (unsigned long long)info.owner,
                  (unsigned long long)info.last_owner);
  }
  gpu_segment_stats st;
  gpu_segment_get_stats(s, &st);
  expect_u64_eq(st.committed_bytes, 0, "nothing committed");
  gpu_segment_fault fault;
  expect_status(gpu_segment_read(s, 2 * MIB, pattern, 16, &fault), GPU_STATUS_PAGE_FAULT, "uncommitted");
  expect_u64_eq(fault.last_owner, 0, "no last owner from the old segment");
  assert_status(gpu_segment_commit(s, 0, size, 13), STATUS_SUCCESS, "commit all");
  uint8_t *all = malloc(size);
  assert_true(all != NULL, "buffer");
  assert_status(gpu_segment_read(s, 0, all, size, NULL), STATUS_SUCCESS, "read all");
  uint64_t nonzero = 0;
  for (uint64_t i = 0; i < size; i++) nonzero += all[i] != 0;
  expect_u64_eq(nonzero, 0, "every byte of the new segment reads zero");
  free(all);
  gpu_segment_destroy(s);
}

TEST(test_recycled_memory_segment_starts_fresh) { expect_recycled_segment_is_fresh(GPU_SEGMENT_MEMORY); }
TEST(test_recycled_aperture_segment_starts_fresh) { expect_recycled_segment_is_fresh(GPU_SEGMENT_APERTURE); }

TEST(test_commit_release_ownership) {
  gpu_segment *s = make_segment(GPU_SEGMENT_MEMORY, 1, 4 * MIB, GPU_SEGMENT_PAGE_64K, NULL);
  assert_true(s != NULL, "segment");
  const uint64_t ps = 64 * KIB;
  expect_status(gpu_segment_commit(s, ps, 2 * ps, 5), STATUS_SUCCESS, "commit 2 pages");
  gpu_segment_page_info info;
  expect_status(gpu_segment_get_page_info(s, ps + 100, &info), STATUS_SUCCESS, "info");
  expect_u64_eq(info.owner, 5, "owner tag");
  expect_true(info.host_backed, "memory segment is backed");
  /* Table of refused commits: each changes nothing. */
  static const struct {
    uint64_t offset, size, owner;
    const char *why;
  } bad[] = {
      {0, 2 * 64 * 1024, 6, "overlaps a committed page"},
      {2 * 64 * 1024, 64 * 1024, 6, "page already committed"},
      {4096, 64 * 1024, 6, "misaligned offset"},
      {0, 4096, 6, "misaligned size"},
      {0, 64 * 1024, 0, "owner 0"},
      {0, 0, 6, "empty"},
      {4 * 1024 * 1024 - 64 * 1024, 2 * 64 * 1024, 6, "past the end"},
      {UINT64_MAX - 65535, 65536, 6, "offset overflow"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    expect_status(gpu_segment_commit(s, bad[i].offset, bad[i].size, bad[i].owner),
                  STATUS_INVALID_PARAMETER, "commit refused: %s", bad[i].why);
  }
  expect_status(gpu_segment_get_page_info(s, 0, &info), STATUS_SUCCESS, "info page 0");
  expect_u64_eq(info.owner, 0, "page 0 still free after refused commits");
  expect_status(gpu_segment_release(s, 0, 2 * ps), STATUS_INVALID_PARAMETER,
                "release of a partly free range");
  expect_status(gpu_segment_get_page_info(s, ps, &info), STATUS_SUCCESS, "info");
  expect_u64_eq(info.owner, 5, "refused release changed nothing");
  expect_status(gpu_segment_release(s, ps, 2 * ps), STATUS_SUCCESS, "release");
  expect_status(gpu_segment_get_page_info(s, 2 * ps, &info), STATUS_SUCCESS, "info");
  expect_u64_eq(info.owner, 0, "free after release");
  expect_u64_eq(info.last_owner, 5, "last owner kept");
  expect_status(gpu_segment_release(s, ps, 2 * ps), STATUS_INVALID_PARAMETER, "double release");
  expect_status(gpu_segment_commit(s, ps, ps, 9), STATUS_SUCCESS, "recommit");
  expect_status(gpu_segment_get_page_info(s, ps, &info), STATUS_SUCCESS, "info");
  expect_u64_eq(info.owner, 9, "new owner");
  expect_u64_eq(info.last_owner, 5, "last owner survives a new commit");
  expect_status(gpu_segment_get_page_info(s, 4 * MIB, &info), STATUS_INVALID_PARAMETER, "oob info");
  expect_true(gpu_segment_check(s, NULL, 0), "consistent");
  gpu_segment_destroy(s);
}

TEST(test_access_bounds) {
  gpu_segment *s = make_segment(GPU_SEGMENT_APERTURE, 2, 64 * KIB, 0, NULL);
  assert_true(s != NULL, "segment");
  assert_status(gpu_segment_commit(s, 0, 64 * KIB, 1), STATUS_SUCCESS, "commit all");
  uint8_t buf[64];
  memset(buf, 0xAB, sizeof buf);
  static const struct {
    uint64_t offset, size;
  } bad[] = {{64 * 1024 - 1, 2}, {64 * 1024, 1}, {UINT64_MAX, 1}, {1, UINT64_MAX}, {70000, 0}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    expect_status(gpu_segment_read(s, bad[i].offset, buf, bad[i].size, NULL),
                  STATUS_INVALID_PARAMETER, "read %zu out of bounds", i);
    expect_status(gpu_segment_write(s, bad[i].offset, buf, bad[i].size, NULL),
                  STATUS_INVALID_PARAMETER, "write %zu out of bounds", i);
    expect_status(gpu_segment_fill(s, bad[i].offset, bad[i].size, 1, 0, NULL),
                  STATUS_INVALID_PARAMETER, "fill %zu out of bounds", i);
  }
  expect_status(gpu_segment_read(s, 0, NULL, 4, NULL), STATUS_INVALID_PARAMETER, "NULL dst");
  expect_status(gpu_segment_fill(s, 0, 4, 1, 4, NULL), STATUS_INVALID_PARAMETER, "phase 4");
  expect_status(gpu_segment_read(s, 64 * KIB - 1, buf, 1, NULL), STATUS_SUCCESS, "last byte");
  expect_status(gpu_segment_read(s, 64 * KIB, buf, 0, NULL), STATUS_SUCCESS, "empty at end");
  expect_true(buf[1] == 0xAB, "read of 1 byte wrote 1 byte");
  gpu_segment_destroy(s);
}

TEST(test_freed_page_access_reports_last_owner) {
  gpu_segment *kinds[2] = {
      make_segment(GPU_SEGMENT_MEMORY, 1, MIB, GPU_SEGMENT_PAGE_4K, NULL),
      make_segment(GPU_SEGMENT_APERTURE, 2, MIB, GPU_SEGMENT_PAGE_4K, NULL),
  };
  for (int k = 0; k < 2; k++) {
    gpu_segment *s = kinds[k];
    assert_true(s != NULL, "segment %d", k);
    assert_status(gpu_segment_commit(s, 0, 4 * 4096, 11), STATUS_SUCCESS, "commit");
    uint8_t pattern[4 * 4096];
    for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (uint8_t)i;
    assert_status(gpu_segment_write(s, 0, pattern, sizeof pattern, NULL), STATUS_SUCCESS, "w");
    assert_status(gpu_segment_release(s, 2 * 4096, 4096), STATUS_SUCCESS, "release page 2");
    uint8_t got[4 * 4096];
    memset(got, 0xEE, sizeof got);
    gpu_segment_fault fault = {0};
    expect_status(gpu_segment_read(s, 100, got, 3 * 4096, &fault), GPU_STATUS_PAGE_FAULT,
                  "read across a freed page (kind %d)", k);
    expect_u64_eq(fault.offset, 2 * 4096, "first byte on the freed page");
    expect_u64_eq(fault.last_owner, 11, "freed page, last owned by 11");
    expect_u64_eq(fault.segment_id, gpu_segment_id(s), "segment id");
    expect_true(got[0] == 0xEE && got[3 * 4096 - 1] == 0xEE, "nothing copied on a fault");
    expect_status(gpu_segment_write(s, 2 * 4096 + 5, pattern, 1, &fault), GPU_STATUS_PAGE_FAULT,
                  "write to a freed page");
    expect_u64_eq(fault.offset, 2 * 4096 + 5, "fault at the access's first byte");
    expect_status(gpu_segment_fill(s, 4 * 4096, 10, 7, 0, &fault), GPU_STATUS_PAGE_FAULT,
                  "fill of a never-committed page");
    expect_u64_eq(fault.last_owner, 0, "never committed: no last owner");
    expect_status(gpu_segment_read(s, 4096, got, 4096, NULL), STATUS_SUCCESS, "page 1 is live");
    expect_true(memcmp(got, pattern + 4096, 4096) == 0, "page 1 contents");
    expect_true(gpu_segment_check(s, NULL, 0), "consistent");
    gpu_segment_destroy(s);
  }
}

TEST(test_fill_pattern_and_phase) {
  gpu_segment *s = make_segment(GPU_SEGMENT_APERTURE, 2, 2 * 4096, 0, NULL);
  assert_true(s != NULL, "segment");
  assert_status(gpu_segment_commit(s, 0, 2 * 4096, 1), STATUS_SUCCESS, "commit");
  /* Fill across the page boundary (two host pages) starting at an odd offset. */
  assert_status(gpu_segment_fill(s, 4096 - 3, 10, 0x44332211u, 0, NULL), STATUS_SUCCESS, "fill");
  uint8_t got[12];
  assert_status(gpu_segment_read(s, 4096 - 4, got, 12, NULL), STATUS_SUCCESS, "read");
  static const uint8_t want[12] = {0, 0x11, 0x22, 0x33, 0x44, 0x11, 0x22,
                                   0x33, 0x44, 0x11, 0x22, 0};
  expect_true(memcmp(got, want, sizeof want) == 0, "pattern continues across host pages");
  assert_status(gpu_segment_fill(s, 0, 3, 0x44332211u, 2, NULL), STATUS_SUCCESS, "phase 2");
  assert_status(gpu_segment_read(s, 0, got, 3, NULL), STATUS_SUCCESS, "read");
  expect_true(got[0] == 0x33 && got[1] == 0x44 && got[2] == 0x11, "phase 2 starts at byte 2");
  gpu_segment_destroy(s);
}

TEST(test_aperture_commit_backs_and_release_frees) {
  gpu_segment *s = make_segment(GPU_SEGMENT_APERTURE, 2, 8 * MIB, 0, NULL);
  assert_true(s != NULL, "segment");
  gpu_segment_stats st;
  gpu_segment_get_stats(s, &st);
  expect_u64_eq(st.backing_bytes, 0, "no backing before commit");
  assert_status(gpu_segment_commit(s, MIB, 40 * 4096, 3), STATUS_SUCCESS, "commit");
  gpu_segment_get_stats(s, &st);
  expect_u64_eq(st.backing_bytes, 40 * 4096, "one host page per committed page");
  expect_u64_eq(st.committed_bytes, 40 * 4096, "committed");
  uint8_t got[64];
  memset(got, 1, sizeof got);
  assert_status(gpu_segment_read(s, MIB + 4000, got, sizeof got, NULL), STATUS_SUCCESS, "read");
  for (size_t i = 0; i < sizeof got; i++) {
    if (got[i] != 0) {
      expect_true(false, "aperture page not zeroed at %zu", i);
      break;
    }
  }
  gpu_segment_page_info info;
  gpu_segment_get_page_info(s, MIB, &info);
  expect_true(info.host_backed, "backed while committed");
  assert_status(gpu_segment_release(s, MIB, 40 * 4096), STATUS_SUCCESS, "release");
  gpu_segment_get_stats(s, &st);
  expect_u64_eq(st.backing_bytes, 0, "host pages returned");
  gpu_segment_get_page_info(s, MIB, &info);
  expect_false(info.host_backed, "unbacked after release");
  expect_true(gpu_segment_check(s, NULL, 0), "consistent");
  gpu_segment_destroy(s); /* ASan: no leak of host pages */
}

/* A released aperture page's host block is kept for the next commit (no malloc/free per page);
 * a page committed from it still reads as zero, and taking it still asks the host-allocation
 * fault hook, so the n-th host allocation is the same one with the spares as without. */
static bool fail_third_page(void *context, size_t bytes) {
  uint32_t *calls = context;
  return bytes == 4096 && ++*calls == 3;
}

/* The spares are capped at 16384 blocks (64 MiB): releasing more frees the rest, so a large
 * aperture's release does not keep its memory for the rest of the process. */
TEST(test_spare_aperture_blocks_are_capped) {
  enum { CAP = 16384, OVER = 100 };
  gpu_segment_drop_cached_regions();
  gpu_segment *s = make_segment(GPU_SEGMENT_APERTURE, 2, (uint64_t)(CAP + OVER) * 4096, 0, NULL);
  assert_true(s != NULL, "segment");
  assert_status(gpu_segment_commit(s, 0, (uint64_t)(CAP + OVER) * 4096, 1), STATUS_SUCCESS, "commit past the cap");
  assert_status(gpu_segment_release(s, 0, (uint64_t)(CAP + OVER) * 4096), STATUS_SUCCESS, "release it all");
  expect_u64_eq(gpu_segment_spare_pages(), CAP, "kept up to the cap, the rest freed");
  gpu_segment_destroy(s);
  gpu_segment_drop_cached_regions();
  expect_u64_eq(gpu_segment_spare_pages(), 0, "dropped");
}

TEST(test_aperture_release_keeps_blocks_for_the_next_commit) {
  gpu_segment_drop_cached_regions();
  gpu_segment *s = make_segment(GPU_SEGMENT_APERTURE, 2, MIB, 0, NULL);
  assert_true(s != NULL, "segment");
  assert_status(gpu_segment_commit(s, 0, 40 * 4096, 3), STATUS_SUCCESS, "commit 40");
  assert_status(gpu_segment_fill(s, 0, 40 * 4096, 0xA5A5A5A5u, 0, NULL), STATUS_SUCCESS, "fill");
  expect_u64_eq(gpu_segment_spare_pages(), 0, "none kept yet");
  assert_status(gpu_segment_release(s, 0, 40 * 4096), STATUS_SUCCESS, "release");
  gpu_segment_stats st;
  gpu_segment_get_stats(s, &st);
  expect_u64_eq(st.backing_bytes, 0, "nothing backs a free page");
  expect_u64_eq(gpu_segment_spare_pages(), 40, "the 40 blocks are kept");
  assert_status(gpu_segment_commit(s, 64 * 4096, 10 * 4096, 4), STATUS_SUCCESS, "commit 10 elsewhere");
  expect_u64_eq(gpu_segment_spare_pages(), 30, "10 blocks reused");
  gpu_segment_get_stats(s, &st);
  expect_u64_eq(st.backing_bytes, 10 * 4096, "backed");
  uint8_t got[4096];
  assert_status(gpu_segment_read(s, 64 * 4096 + 4096, got, sizeof got, NULL), STATUS_SUCCESS, "read");
  size_t nonzero = 0;
  for (size_t i = 0; i < sizeof got; i++) nonzero += got[i] != 0;
  expect_u64_eq(nonzero, 0, "a page committed from a reused block reads as zero");
  /* The hook fails the 3rd page of the next commit, served from the spares. */
  uint32_t calls = 0;
  al_host_alloc_fault hook = {fail_third_page, &calls};
  al_testing_set_host_alloc_fault(&hook);
  NTSTATUS failed = gpu_segment_commit(s, 128 * 4096, 5 * 4096, 5);
  al_testing_set_host_alloc_fault(NULL);
  expect_status(failed, STATUS_NO_MEMORY, "the hook's 3rd page allocation fails the commit");
  expect_u64_eq(calls, 3, "one hook call per page taken, spare or not");
  gpu_segment_get_stats(s, &st);
  expect_u64_eq(st.committed_bytes, 10 * 4096, "nothing of the failed commit stays");
  expect_u64_eq(gpu_segment_spare_pages(), 30, "its two blocks went back to the spares");
  expect_true(gpu_segment_check(s, NULL, 0), "consistent");
  /* A destroyed segment's pages outlive it as spares, for the next adapter's segments. */
  gpu_segment_destroy(s);
  expect_u64_eq(gpu_segment_spare_pages(), 40, "the 10 committed blocks kept at destroy");
  gpu_segment *t = make_segment(GPU_SEGMENT_APERTURE, 3, MIB, 0, NULL);
  assert_true(t != NULL, "another segment");
  assert_status(gpu_segment_commit(t, 0, 8 * 4096, 6), STATUS_SUCCESS, "commit in the next segment");
  expect_u64_eq(gpu_segment_spare_pages(), 32, "served from the spares");
  gpu_segment_destroy(t);
  gpu_segment_drop_cached_regions();
  expect_u64_eq(gpu_segment_spare_pages(), 0, "dropped (ASan: nothing leaks)");
}

/* SQLite-style: fail the n-th aperture page allocation for n = 1, 2, ... until the commit
 * completes; every failure must leave nothing behind. */
TEST(test_aperture_commit_under_segment_space_faults) {
  const uint32_t pages = 9;
  for (int forever = 0; forever <= 1; forever++) {
    fault_injector inj = FAULT_INJECTOR_INIT;
    gpu_segment *s = make_segment(GPU_SEGMENT_APERTURE, 2, MIB, 0, &inj);
    assert_true(s != NULL, "segment");
    assert_status(gpu_segment_commit(s, 0, 4096, 77), STATUS_SUCCESS, "neighbour page");
    uint32_t n = 1;
    for (;; n++) {
      uint64_t before = fault_injector_failures(&inj, FAULT_SEGMENT_SPACE);
      fault_injector_arm(&inj, FAULT_SEGMENT_SPACE, n, forever ? FAULT_REPEAT_FOREVER : 0);
      NTSTATUS st = gpu_segment_commit(s, 4096, pages * 4096, 78);
      bool injected = fault_injector_failures(&inj, FAULT_SEGMENT_SPACE) != before;
      fault_injector_disarm_all(&inj);
      gpu_segment_stats ss;
      gpu_segment_get_stats(s, &ss);
      if (!injected) {
        expect_status(st, STATUS_SUCCESS, "commit completes once nothing is injected");
        expect_u64_eq(ss.backing_bytes, (pages + 1) * 4096, "all pages backed");
        break;
      }
      expect_status(st, STATUS_NO_MEMORY, "n=%u: injected failure reported", n);
      expect_u64_eq(ss.backing_bytes, 4096, "n=%u: no page left behind", n);
      expect_u64_eq(ss.committed_bytes, 4096, "n=%u: nothing committed", n);
      gpu_segment_page_info info;
      gpu_segment_get_page_info(s, 4096, &info);
      expect_u64_eq(info.owner, 0, "n=%u: range still free", n);
      expect_true(gpu_segment_check(s, NULL, 0), "n=%u: consistent", n);
      if (n > 100) break;
    }
    expect_u64_eq(n, pages + 1, "one injected failure per page, then success");
    gpu_segment_destroy(s);
  }
}

TEST(test_memory_segment_under_segment_space_faults) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  gpu_segment_desc d = {GPU_SEGMENT_MEMORY, 1, MIB, 0};
  gpu_segment *s = NULL;
  fault_injector_arm(&inj, FAULT_SEGMENT_SPACE, 1, 0);
  expect_status(gpu_segment_create(&d, &inj, &s), STATUS_NO_MEMORY, "create refused");
  expect_true(s == NULL, "no segment");
  assert_status(gpu_segment_create(&d, &inj, &s), STATUS_SUCCESS, "create");
  fault_injector_arm(&inj, FAULT_SEGMENT_SPACE, 1, 0);
  expect_status(gpu_segment_commit(s, 0, 8192, 4), STATUS_NO_MEMORY, "commit refused");
  gpu_segment_stats st;
  gpu_segment_get_stats(s, &st);
  expect_u64_eq(st.committed_bytes, 0, "nothing committed");
  expect_u64_eq(st.injected_failures, 1, "counted");
  expect_status(gpu_segment_commit(s, 0, 8192, 4), STATUS_SUCCESS, "commit succeeds after");
  gpu_segment_destroy(s);
}

TEST(test_copy_between_segments) {
  gpu_segment *mem = make_segment(GPU_SEGMENT_MEMORY, 1, MIB, GPU_SEGMENT_PAGE_64K, NULL);
  gpu_segment *ap = make_segment(GPU_SEGMENT_APERTURE, 2, MIB, 0, NULL);
  assert_true(mem != NULL && ap != NULL, "segments");
  assert_status(gpu_segment_commit(mem, 0, 128 * KIB, 1), STATUS_SUCCESS, "commit mem");
  assert_status(gpu_segment_commit(ap, 0, 32 * KIB, 2), STATUS_SUCCESS, "commit ap");
  uint8_t src[20000], got[20000];
  for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 7 + 3);
  assert_status(gpu_segment_write(mem, 60000, src, sizeof src, NULL), STATUS_SUCCESS, "write");
  expect_status(gpu_segment_copy(mem, 60000, ap, 1234, sizeof src, NULL), STATUS_SUCCESS,
                "copy across 64 KiB and 4 KiB page boundaries");
  assert_status(gpu_segment_read(ap, 1234, got, sizeof got, NULL), STATUS_SUCCESS, "read");
  expect_true(memcmp(src, got, sizeof src) == 0, "copied bytes");
  expect_status(gpu_segment_copy(mem, 0, mem, 100, 200, NULL), STATUS_INVALID_PARAMETER,
                "overlap in one segment");
  expect_status(gpu_segment_copy(mem, 0, mem, 65536, 200, NULL), STATUS_SUCCESS,
                "disjoint in one segment");
  gpu_segment_fault fault = {0};
  expect_status(gpu_segment_copy(mem, 0, ap, 30 * KIB, 4 * KIB, &fault), GPU_STATUS_PAGE_FAULT,
                "destination page free");
  expect_u64_eq(fault.segment_id, 2, "fault names the destination");
  expect_u64_eq(fault.offset, 32 * KIB, "first free destination byte");
  expect_status(gpu_segment_copy(mem, MIB - 10, ap, 0, 20, NULL), STATUS_INVALID_PARAMETER,
                "source out of bounds");
  gpu_segment_destroy(mem);
  gpu_segment_destroy(ap);
}

TEST(test_transfer_round_trip) {
  fault_injector inj = FAULT_INJECTOR_INIT;
  gpu_segment *mem = make_segment(GPU_SEGMENT_MEMORY, 1, 4 * MIB, GPU_SEGMENT_PAGE_64K, &inj);
  gpu_segment *ap = make_segment(GPU_SEGMENT_APERTURE, 2, 4 * MIB, 0, &inj);
  assert_true(mem != NULL && ap != NULL, "segments");
  const uint64_t size = 192 * KIB;
  assert_status(gpu_segment_commit(mem, MIB, size, 21), STATUS_SUCCESS, "commit");
  uint8_t *pattern = malloc(size), *got = malloc(size), *sys = malloc(size);
  assert_true(pattern && got && sys, "host buffers");
  for (uint64_t i = 0; i < size; i++) pattern[i] = (uint8_t)(i ^ (i >> 9));
  assert_status(gpu_segment_write(mem, MIB, pattern, size, NULL), STATUS_SUCCESS, "write");

  /* Refusals first: each changes nothing. */
  expect_status(gpu_segment_transfer(mem, MIB, ap, 4096, size), STATUS_INVALID_PARAMETER,
                "destination not aligned to the source's 64 KiB pages");
  assert_status(gpu_segment_commit(ap, 0, 4096, 99), STATUS_SUCCESS, "occupy aperture page 0");
  expect_status(gpu_segment_transfer(mem, MIB, ap, 0, size), STATUS_INVALID_PARAMETER,
                "destination not free");
  expect_status(gpu_segment_transfer(mem, 0, ap, 2 * MIB, size), STATUS_INVALID_PARAMETER,
                "source not committed");
  fault_injector_arm(&inj, FAULT_SEGMENT_SPACE, 5, 0);
  expect_status(gpu_segment_transfer(mem, MIB, ap, MIB, size), STATUS_NO_MEMORY,
                "backing the destination failed");
  fault_injector_disarm_all(&inj);
  gpu_segment_stats st;
  gpu_segment_get_stats(ap, &st);
  expect_u64_eq(st.committed_bytes, 4096, "failed transfer committed nothing");

  /* memory -> aperture */
  assert_status(gpu_segment_transfer(mem, MIB, ap, MIB, size), STATUS_SUCCESS, "evict");
  gpu_segment_page_info info;
  gpu_segment_get_page_info(mem, MIB, &info);
  expect_u64_eq(info.owner, 0, "source released");
  expect_u64_eq(info.last_owner, 21, "source remembers its owner");
  gpu_segment_get_page_info(ap, MIB + size - 1, &info);
  expect_u64_eq(info.owner, 21, "destination owned by the same allocation");
  /* aperture -> system memory -> memory */
  uint64_t owner = 0;
  assert_status(gpu_segment_transfer_to_host(ap, MIB, sys, size, &owner), STATUS_SUCCESS, "out");
  expect_u64_eq(owner, 21, "owner reported");
  expect_true(memcmp(sys, pattern, size) == 0, "system memory copy");
  gpu_segment_get_stats(ap, &st);
  expect_u64_eq(st.committed_bytes, 4096, "aperture pages returned");
  assert_status(gpu_segment_transfer_from_host(mem, 2 * MIB, sys, size, owner), STATUS_SUCCESS,
                "page back in");
  assert_status(gpu_segment_read(mem, 2 * MIB, got, size, NULL), STATUS_SUCCESS, "read");
  expect_true(memcmp(got, pattern, size) == 0, "contents survived the round trip");

  /* Mixed owners are not one allocation. */
  assert_status(gpu_segment_commit(mem, 3 * MIB, 64 * KIB, 31), STATUS_SUCCESS, "commit");
  assert_status(gpu_segment_commit(mem, 3 * MIB + 64 * KIB, 64 * KIB, 32), STATUS_SUCCESS, "c");
  expect_status(gpu_segment_transfer_to_host(mem, 3 * MIB, sys, 128 * KIB, NULL),
                STATUS_INVALID_PARAMETER, "mixed owners");
  expect_true(gpu_segment_check(mem, NULL, 0) && gpu_segment_check(ap, NULL, 0), "consistent");
  free(pattern);
  free(got);
  free(sys);
  gpu_segment_destroy(mem);
  gpu_segment_destroy(ap);
}

/* Random commit/release/write/read against a byte-and-owner model of the segment. */
TEST(test_random_against_model) {
  uint64_t seed = al_test_seed();
  const uint64_t pages = 64, ps = 4096;
  for (int kind = GPU_SEGMENT_MEMORY; kind <= GPU_SEGMENT_APERTURE; kind++) {
    gpu_segment *s = make_segment((gpu_segment_kind)kind, 1, pages * ps, 0, NULL);
    assert_true(s != NULL, "segment");
    uint64_t owner[64] = {0}, last[64] = {0};
    uint8_t *model = calloc(pages, ps), *buf = malloc(pages * ps);
    assert_true(model && buf, "buffers");
    for (int step = 0; step < 3000; step++) {
      uint64_t r = gpu_test_rand(&seed);
      uint64_t first = r % pages, count = 1 + (r >> 8) % 4;
      if (first + count > pages) count = pages - first;
      uint64_t op = (r >> 16) % 4;
      bool all_free = true, all_owned = true;
      for (uint64_t i = first; i < first + count; i++) {
        all_free &= owner[i] == 0;
        all_owned &= owner[i] != 0;
      }
      if (op == 0) {
        uint64_t id = 1 + (r >> 24) % 1000;
        NTSTATUS st = gpu_segment_commit(s, first * ps, count * ps, id);
        expect_status(st, all_free ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER, "step %d", step);
        if (!NT_SUCCESS(st)) continue;
        for (uint64_t i = first; i < first + count; i++) {
          owner[i] = id;
          if (kind == GPU_SEGMENT_APERTURE) memset(model + i * ps, 0, ps);
        }
      } else if (op == 1) {
        NTSTATUS st = gpu_segment_release(s, first * ps, count * ps);
        expect_status(st, all_owned ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER, "step %d", step);
        if (!NT_SUCCESS(st)) continue;
        for (uint64_t i = first; i < first + count; i++) last[i] = owner[i], owner[i] = 0;
      } else {
        uint64_t off = first * ps + (r >> 32) % ps;
        uint64_t len = 1 + (r >> 44) % (count * ps);
        if (off + len > pages * ps) len = pages * ps - off;
        uint64_t lp = off / ps, hp = (off + len - 1) / ps, bad = UINT64_MAX;
        for (uint64_t i = lp; i <= hp && bad == UINT64_MAX; i++) {
          if (owner[i] == 0) bad = i;
        }
        gpu_segment_fault f = {0};
        NTSTATUS st;
        if (op == 2) {
          for (uint64_t i = 0; i < len; i++) buf[i] = (uint8_t)(r >> (i % 56));
          st = gpu_segment_write(s, off, buf, len, &f);
          if (st == STATUS_SUCCESS) memcpy(model + off, buf, len);
        } else {
          st = gpu_segment_read(s, off, buf, len, &f);
          if (st == STATUS_SUCCESS && memcmp(buf, model + off, len) != 0) {
            expect_true(false, "step %d: read differs from the model", step);
          }
        }
        expect_status(st, bad == UINT64_MAX ? STATUS_SUCCESS : GPU_STATUS_PAGE_FAULT, "step %d",
                      step);
        if (bad != UINT64_MAX) {
          expect_u64_eq(f.last_owner, last[bad], "step %d: last owner", step);
        }
      }
    }
    expect_true(gpu_segment_check(s, NULL, 0), "consistent after random ops");
    free(model);
    free(buf);
    gpu_segment_destroy(s);
  }
}

/* ---- Sparse contents ------------------------------------------------------------------------ */

static uint64_t stored_bytes(gpu_segment *s) {
  gpu_segment_stats st;
  gpu_segment_get_stats(s, &st);
  return st.stored_bytes;
}

/* The first byte of @got[0, n) that is not @value, or n. */
static uint64_t first_not(const uint8_t *got, uint64_t n, uint8_t value) {
  for (uint64_t i = 0; i < n; i++) {
    if (got[i] != value) return i;
  }
  return n;
}

/* A zero fill marks granules (no host byte stored), a partial write stores only the granules it
 * touches, and every byte reads back as written. */
static void expect_fill_then_read_is_sparse(gpu_segment_kind kind, uint32_t page_size) {
  gpu_segment *s = make_segment(kind, 1, 4 * MIB, page_size, NULL);
  assert_true(s != NULL, "segment");
  const uint64_t base = MIB, size = 512 * KIB;
  uint8_t *got = malloc(size), *ones = malloc(size);
  assert_true(got && ones, "buffers");
  memset(ones, 0xFF, size);
  assert_status(gpu_segment_commit(s, base, size, 9), STATUS_SUCCESS, "commit");
  expect_u64_eq(stored_bytes(s), 0, "a commit stores nothing");
  assert_status(gpu_segment_write(s, base, ones, size, NULL), STATUS_SUCCESS, "write all");
  expect_u64_eq(stored_bytes(s), size, "a full write stores every granule");
  assert_status(gpu_segment_fill(s, base, size, 0, 0, NULL), STATUS_SUCCESS, "zero fill");
  expect_u64_eq(stored_bytes(s), 0, "a zero fill of whole granules stores nothing");
  assert_status(gpu_segment_read(s, base, got, size, NULL), STATUS_SUCCESS, "read");
  expect_u64_eq(first_not(got, size, 0), size, "zero-filled bytes read as zero");

  /* 100 bytes across the boundary of granules 1 and 2: those two are stored, zero around. */
  assert_status(gpu_segment_write(s, base + 2 * 4096 - 50, ones, 100, NULL), STATUS_SUCCESS, "partial");
  expect_u64_eq(stored_bytes(s), 2 * 4096, "a partial write stores only the granules it touches");
  assert_status(gpu_segment_read(s, base, got, 3 * 4096, NULL), STATUS_SUCCESS, "read");
  expect_u64_eq(first_not(got, 2 * 4096 - 50, 0), 2 * 4096 - 50, "zeros before the write");
  expect_u64_eq(first_not(got + 2 * 4096 - 50, 100, 0xFF), 100, "the written bytes");
  expect_u64_eq(first_not(got + 2 * 4096 + 50, 4096 - 50, 0), 4096 - 50, "zeros after the write");

  /* A pattern fill stores; a partial zero fill of a stored granule zeroes only its part. */
  assert_status(gpu_segment_fill(s, base + 8 * 4096, 3 * 4096, 0x04030201u, 0, NULL), STATUS_SUCCESS, "pattern");
  expect_u64_eq(stored_bytes(s), 5 * 4096, "a pattern fill stores its granules");
  assert_status(gpu_segment_fill(s, base + 8 * 4096 + 10, 4096, 0, 0, NULL), STATUS_SUCCESS, "partial zero");
  expect_u64_eq(stored_bytes(s), 5 * 4096, "a partial zero fill keeps the granules stored");
  assert_status(gpu_segment_read(s, base + 8 * 4096, got, 3 * 4096, NULL), STATUS_SUCCESS, "read");
  expect_true(got[9] == 0x02 && got[4096 + 10] == 0x03 && got[3 * 4096 - 1] == 0x04, "pattern kept around the zeros");
  expect_u64_eq(first_not(got + 10, 4096, 0), 4096, "the zero-filled part");
  expect_true(gpu_segment_check(s, NULL, 0), "consistent");
  /* Released and committed again, a memory page keeps its bytes; an aperture page reads zero. */
  assert_status(gpu_segment_release(s, base, size), STATUS_SUCCESS, "release");
  assert_status(gpu_segment_commit(s, base, size, 10), STATUS_SUCCESS, "commit again");
  assert_status(gpu_segment_read(s, base + 2 * 4096 - 50, got, 100, NULL), STATUS_SUCCESS, "read");
  expect_u64_eq(first_not(got, 100, kind == GPU_SEGMENT_MEMORY ? 0xFF : 0), 100, "contents after recommit");
  expect_u64_eq(stored_bytes(s), kind == GPU_SEGMENT_MEMORY ? 5 * 4096 : 0, "stored after recommit");
  expect_true(gpu_segment_check(s, NULL, 0), "consistent");
  free(got);
  free(ones);
  gpu_segment_destroy(s);
}

TEST(test_sparse_fill_then_read_memory) { expect_fill_then_read_is_sparse(GPU_SEGMENT_MEMORY, 0); }
TEST(test_sparse_fill_then_read_memory_64k) { expect_fill_then_read_is_sparse(GPU_SEGMENT_MEMORY, GPU_SEGMENT_PAGE_64K); }
TEST(test_sparse_fill_then_read_aperture) { expect_fill_then_read_is_sparse(GPU_SEGMENT_APERTURE, 0); }

/* Copies and transfers of mixed granules: stored ones move, zero ones become zero granules at the
 * destination (whatever it held), also when the two ranges are not granule-aligned alike. */
TEST(test_sparse_copy_and_transfer_of_mixed_granules) {
  gpu_segment *mem = make_segment(GPU_SEGMENT_MEMORY, 1, 4 * MIB, GPU_SEGMENT_PAGE_64K, NULL);
  gpu_segment *ap = make_segment(GPU_SEGMENT_APERTURE, 2, 4 * MIB, 0, NULL);
  assert_true(mem && ap, "segments");
  const uint64_t size = 64 * KIB; /* 16 granules: stored 0, 3, 4 (partly), 15 */
  uint8_t *want = calloc(1, size), *got = malloc(size), *junk = malloc(size);
  assert_true(want && got && junk, "buffers");
  memset(junk, 0x5A, size);
  assert_status(gpu_segment_commit(mem, 0, size, 1), STATUS_SUCCESS, "commit source");
  for (uint64_t i = 0; i < 4096; i++) want[i] = (uint8_t)(i * 7 + 1);
  memset(want + 3 * 4096, 0x33, 4096 + 100);
  memset(want + 15 * 4096, 0xEE, 4096);
  assert_status(gpu_segment_write(mem, 0, want, 4096, NULL), STATUS_SUCCESS, "granule 0");
  assert_status(gpu_segment_write(mem, 3 * 4096, want + 3 * 4096, 4096 + 100, NULL), STATUS_SUCCESS, "3, 4");
  assert_status(gpu_segment_write(mem, 15 * 4096, want + 15 * 4096, 4096, NULL), STATUS_SUCCESS, "15");
  expect_u64_eq(stored_bytes(mem), 4 * 4096, "four granules stored");

  /* Copy onto junk in the aperture, aligned: the destination stores exactly the same granules. */
  assert_status(gpu_segment_commit(ap, MIB, size, 2), STATUS_SUCCESS, "commit destination");
  assert_status(gpu_segment_write(ap, MIB, junk, size, NULL), STATUS_SUCCESS, "junk");
  assert_status(gpu_segment_copy(mem, 0, ap, MIB, size, NULL), STATUS_SUCCESS, "copy");
  assert_status(gpu_segment_read(ap, MIB, got, size, NULL), STATUS_SUCCESS, "read");
  expect_true(memcmp(got, want, size) == 0, "aligned copy: contents equal");
  expect_u64_eq(stored_bytes(ap), 4 * 4096, "aligned copy: zero granules were marked, not copied");

  /* Unaligned (destination 100 bytes into a granule) onto junk: contents equal all the same. */
  assert_status(gpu_segment_commit(mem, 2 * MIB, 2 * size, 3), STATUS_SUCCESS, "commit");
  assert_status(gpu_segment_write(mem, 2 * MIB, junk, size, NULL), STATUS_SUCCESS, "junk");
  assert_status(gpu_segment_write(mem, 2 * MIB + size, junk, size, NULL), STATUS_SUCCESS, "junk");
  assert_status(gpu_segment_copy(mem, 0, mem, 2 * MIB + 100, size, NULL), STATUS_SUCCESS, "copy");
  assert_status(gpu_segment_read(mem, 2 * MIB + 100, got, size, NULL), STATUS_SUCCESS, "read");
  expect_true(memcmp(got, want, size) == 0, "unaligned copy: contents equal");
  assert_status(gpu_segment_read(mem, 2 * MIB, got, 100, NULL), STATUS_SUCCESS, "read before");
  expect_u64_eq(first_not(got, 100, 0x5A), 100, "bytes before the copy untouched");

  /* Transfer (eviction) memory -> aperture -> memory keeps contents and sparseness. */
  assert_status(gpu_segment_transfer(mem, 0, ap, 2 * MIB, size), STATUS_SUCCESS, "evict");
  uint64_t ap_stored = stored_bytes(ap);
  expect_u64_eq(ap_stored, 8 * 4096, "evicted: only the stored granules stored");
  assert_status(gpu_segment_transfer(ap, 2 * MIB, mem, 3 * MIB, size), STATUS_SUCCESS, "back");
  expect_u64_eq(stored_bytes(ap), 4 * 4096, "the released aperture pages store nothing");
  assert_status(gpu_segment_read(mem, 3 * MIB, got, size, NULL), STATUS_SUCCESS, "read");
  expect_true(memcmp(got, want, size) == 0, "round trip: contents equal");
  expect_true(gpu_segment_check(mem, NULL, 0) && gpu_segment_check(ap, NULL, 0), "consistent");
  free(want);
  free(got);
  free(junk);
  gpu_segment_destroy(mem);
  gpu_segment_destroy(ap);
}

/* Eviction to system memory and back through a gpu_host_copy: a host block only per granule that
 * holds stored contents, contents equal after the round trip, a failed save holds nothing. */
TEST(test_sparse_host_copy_round_trip) {
  gpu_segment *mem = make_segment(GPU_SEGMENT_MEMORY, 1, 4 * MIB, 0, NULL);
  gpu_segment *ap = make_segment(GPU_SEGMENT_APERTURE, 2, 4 * MIB, 0, NULL);
  assert_true(mem && ap, "segments");
  const uint64_t size = 40 * KIB + 300; /* 11 pieces, the last one 300 bytes */
  const uint64_t committed = 44 * KIB;
  uint8_t *want = calloc(1, size), *got = malloc(size), *junk = malloc(committed);
  assert_true(want && got && junk, "buffers");
  memset(junk, 0xA7, committed);
  assert_status(gpu_segment_commit(ap, 0, committed, 5), STATUS_SUCCESS, "commit");
  memset(want + 5 * 4096 + 10, 0x42, 20);
  memset(want + 10 * 4096, 0x99, 300);
  assert_status(gpu_segment_write(ap, 5 * 4096 + 10, want + 5 * 4096 + 10, 20, NULL), STATUS_SUCCESS, "w");
  assert_status(gpu_segment_write(ap, 10 * 4096, want + 10 * 4096, 300, NULL), STATUS_SUCCESS, "w");

  gpu_host_copy *copy = NULL;
  gpu_segment_fault fault = {0};
  expect_status(gpu_host_copy_save(ap, committed, 4096, &copy, &fault), GPU_STATUS_PAGE_FAULT, "free page");
  expect_true(copy == NULL && fault.offset == committed, "nothing saved, the fault names the page");
  expect_status(gpu_host_copy_save(ap, 0, 0, &copy, NULL), STATUS_INVALID_PARAMETER, "empty");
  assert_status(gpu_host_copy_save(ap, 0, size, &copy, NULL), STATUS_SUCCESS, "save");
  expect_u64_eq(gpu_host_copy_size(copy), size, "size");
  uint64_t header = gpu_host_copy_host_bytes(copy) - 4096 - 300;
  expect_true(header < 512, "host bytes: a small header + one 4 KiB block + the 300-byte tail (got %llu)",
              (unsigned long long)gpu_host_copy_host_bytes(copy));
  assert_status(gpu_host_copy_read(copy, 0, got, size), STATUS_SUCCESS, "read the copy");
  expect_true(memcmp(got, want, size) == 0, "the copy holds the contents");
  expect_status(gpu_host_copy_read(copy, 1, got, size), STATUS_INVALID_PARAMETER, "read past the end");
  assert_status(gpu_segment_release(ap, 0, committed), STATUS_SUCCESS, "evicted");

  /* Back into memory over junk (64 bytes past the copy's end stay junk). */
  assert_status(gpu_segment_commit(mem, MIB, committed, 5), STATUS_SUCCESS, "commit");
  assert_status(gpu_segment_write(mem, MIB, junk, committed, NULL), STATUS_SUCCESS, "junk");
  expect_status(gpu_host_copy_restore(copy, mem, 4 * MIB - 4096, NULL), STATUS_INVALID_PARAMETER, "out of bounds");
  expect_status(gpu_host_copy_restore(copy, mem, 0, &fault), GPU_STATUS_PAGE_FAULT, "free range");
  assert_status(gpu_host_copy_restore(copy, mem, MIB, NULL), STATUS_SUCCESS, "restore");
  assert_status(gpu_segment_read(mem, MIB, got, size, NULL), STATUS_SUCCESS, "read");
  expect_true(memcmp(got, want, size) == 0, "contents survived memory -> system -> memory");
  assert_status(gpu_segment_read(mem, MIB + size, got, 64, NULL), STATUS_SUCCESS, "read past");
  expect_u64_eq(first_not(got, 64, 0xA7), 64, "bytes past the copy untouched");
  expect_u64_eq(stored_bytes(mem), 2 * 4096, "stored: granule 5, and 10 (the tail and the junk after it)");
  gpu_host_copy_free(copy);

  /* An allocation nobody wrote costs only the header in system memory. */
  assert_status(gpu_segment_commit(ap, MIB, MIB, 6), STATUS_SUCCESS, "commit");
  assert_status(gpu_host_copy_save(ap, MIB, MIB, &copy, NULL), STATUS_SUCCESS, "save");
  expect_true(gpu_host_copy_host_bytes(copy) == header + sizeof(void *) * (256 - 11), "only the header (got %llu)",
              (unsigned long long)gpu_host_copy_host_bytes(copy));
  gpu_host_copy_free(copy);
  expect_true(gpu_segment_check(mem, NULL, 0) && gpu_segment_check(ap, NULL, 0), "consistent");
  free(want);
  free(got);
  free(junk);
  gpu_segment_destroy(mem);
  gpu_segment_destroy(ap);
}

/* Random writes, fills (zero and pattern), copies and host-copy round trips on committed ranges
 * of two segments, against a byte model; the stored/zero state is invisible to reads. */
TEST(test_sparse_random_against_model) {
  uint64_t seed = al_test_seed();
  const uint64_t size = 64 * 4096;
  for (int variant = 0; variant < 3; variant++) {
    gpu_segment_kind kind = variant == 2 ? GPU_SEGMENT_APERTURE : GPU_SEGMENT_MEMORY;
    uint32_t page = variant == 1 ? GPU_SEGMENT_PAGE_64K : GPU_SEGMENT_PAGE_4K;
    gpu_segment *s = make_segment(kind, 1, size, page, NULL);
    gpu_segment *t = make_segment(GPU_SEGMENT_APERTURE, 2, size, 0, NULL);
    assert_true(s && t, "segments");
    assert_status(gpu_segment_commit(s, 0, size, 1), STATUS_SUCCESS, "commit s");
    assert_status(gpu_segment_commit(t, 0, size, 2), STATUS_SUCCESS, "commit t");
    uint8_t *model_s = calloc(1, size), *model_t = calloc(1, size), *buf = malloc(size);
    assert_true(model_s && model_t && buf, "buffers");
    for (int step = 0; step < 4000; step++) {
      uint64_t r = gpu_test_rand(&seed), r2 = gpu_test_rand(&seed);
      bool on_t = (r >> 60) & 1u;
      gpu_segment *seg = on_t ? t : s;
      uint8_t *model = on_t ? model_t : model_s;
      uint64_t off = r % size;
      /* Lengths from a few bytes to several granules, often whole granules. */
      uint64_t len = (r2 & 1u) ? 1 + (r2 >> 8) % (6 * 4096) : 4096 * (1 + (r2 >> 8) % 6);
      if ((r2 >> 1) & 1u) off &= ~UINT64_C(4095);
      if (len > size - off) len = size - off;
      switch ((r >> 20) % 6) {
      case 0:
        for (uint64_t i = 0; i < len; i++) buf[i] = (uint8_t)(r2 >> (i % 53)) | 1u;
        assert_status(gpu_segment_write(seg, off, buf, len, NULL), STATUS_SUCCESS, "step %d write", step);
        memcpy(model + off, buf, len);
        break;
      case 1:
        assert_status(gpu_segment_fill(seg, off, len, 0, 0, NULL), STATUS_SUCCESS, "step %d zero", step);
        memset(model + off, 0, len);
        break;
      case 2: {
        uint32_t pattern = (uint32_t)r2 | 0x01000000u, phase = (uint32_t)(r >> 40) & 3u;
        assert_status(gpu_segment_fill(seg, off, len, pattern, phase, NULL), STATUS_SUCCESS, "step %d fill", step);
        for (uint64_t i = 0; i < len; i++) model[off + i] = (uint8_t)(pattern >> (8u * ((phase + i) & 3u)));
        break;
      }
      case 3: { /* copy to the other segment */
        gpu_segment *other = on_t ? s : t;
        uint8_t *other_model = on_t ? model_s : model_t;
        uint64_t to = (r2 >> 24) % (size - len + 1);
        assert_status(gpu_segment_copy(seg, off, other, to, len, NULL), STATUS_SUCCESS, "step %d copy", step);
        memmove(other_model + to, model + off, len);
        break;
      }
      case 4: { /* host copy out, then back elsewhere in the same segment */
        gpu_host_copy *copy = NULL;
        uint64_t to = (r2 >> 24) % (size - len + 1);
        assert_status(gpu_host_copy_save(seg, off, len, &copy, NULL), STATUS_SUCCESS, "step %d save", step);
        assert_status(gpu_host_copy_restore(copy, seg, to, NULL), STATUS_SUCCESS, "step %d restore", step);
        memmove(model + to, model + off, len);
        gpu_host_copy_free(copy);
        break;
      }
      default:
        assert_status(gpu_segment_read(seg, off, buf, len, NULL), STATUS_SUCCESS, "step %d read", step);
        if (memcmp(buf, model + off, len) != 0)
          expect_true(false, "variant %d step %d: read of %llu bytes at %llu differs from the model", variant, step,
                      (unsigned long long)len, (unsigned long long)off);
        break;
      }
    }
    assert_status(gpu_segment_read(s, 0, buf, size, NULL), STATUS_SUCCESS, "read s");
    expect_true(memcmp(buf, model_s, size) == 0, "variant %d: s equals its model", variant);
    assert_status(gpu_segment_read(t, 0, buf, size, NULL), STATUS_SUCCESS, "read t");
    expect_true(memcmp(buf, model_t, size) == 0, "variant %d: t equals its model", variant);
    expect_true(gpu_segment_check(s, NULL, 0) && gpu_segment_check(t, NULL, 0), "consistent");
    free(model_s);
    free(model_t);
    free(buf);
    gpu_segment_destroy(s);
    gpu_segment_destroy(t);
  }
}

/* ---- Concurrency (TSan) --------------------------------------------------------------------- */

struct conc_arg {
  gpu_segment *s;
  uint64_t base;
  int id;
  int errors;
};

static void *conc_worker(void *p) {
  struct conc_arg *a = p;
  uint8_t buf[8192], got[8192];
  for (int i = 0; i < 300; i++) {
    uint64_t off = a->base + (uint64_t)(i % 4) * 8192;
    memset(buf, (uint8_t)(a->id * 16 + i), sizeof buf);
    if (gpu_segment_commit(a->s, off, 8192, (uint64_t)a->id + 1) != STATUS_SUCCESS) a->errors++;
    if (gpu_segment_write(a->s, off, buf, sizeof buf, NULL) != STATUS_SUCCESS) a->errors++;
    if (gpu_segment_read(a->s, off, got, sizeof got, NULL) != STATUS_SUCCESS) a->errors++;
    if (memcmp(buf, got, sizeof buf) != 0) a->errors++;
    gpu_segment_stats st;
    gpu_segment_get_stats(a->s, &st);
    if (gpu_segment_release(a->s, off, 8192) != STATUS_SUCCESS) a->errors++;
  }
  return NULL;
}

TEST(test_concurrent_disjoint_ranges) {
  gpu_segment *s = make_segment(GPU_SEGMENT_APERTURE, 2, 4 * MIB, 0, NULL);
  assert_true(s != NULL, "segment");
  pthread_t t[4];
  struct conc_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (struct conc_arg){.s = s, .base = (uint64_t)i * MIB, .id = i};
    assert_true(pthread_create(&t[i], NULL, conc_worker, &args[i]) == 0, "thread");
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    expect_u64_eq(args[i].errors, 0, "thread %d saw no error", i);
  }
  expect_true(gpu_segment_check(s, NULL, 0), "consistent");
  gpu_segment_destroy(s);
}

RUN_TESTS(T(test_create_rejects_bad_descriptions), T(test_recycled_memory_segment_starts_fresh),
          T(test_recycled_aperture_segment_starts_fresh), T(test_commit_release_ownership),
          T(test_access_bounds), T(test_freed_page_access_reports_last_owner),
          T(test_aperture_release_keeps_blocks_for_the_next_commit), T(test_spare_aperture_blocks_are_capped),
          T(test_fill_pattern_and_phase), T(test_aperture_commit_backs_and_release_frees),
          T(test_aperture_commit_under_segment_space_faults),
          T(test_memory_segment_under_segment_space_faults), T(test_copy_between_segments),
          T(test_transfer_round_trip), T(test_random_against_model),
          T(test_sparse_fill_then_read_memory), T(test_sparse_fill_then_read_memory_64k),
          T(test_sparse_fill_then_read_aperture), T(test_sparse_copy_and_transfer_of_mixed_granules),
          T(test_sparse_host_copy_round_trip), T(test_sparse_random_against_model),
          T(test_concurrent_disjoint_ranges))
