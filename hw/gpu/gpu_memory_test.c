/* gpu_memory_test.c — segments: bounds, ownership tags, aperture backing, transfers. */
#include "alloclab/hw/gpu_memory.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
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
  expect_u64_eq(gpu_segment_cached_regions(), cached + 2, "the destroyed segment's two regions are kept");
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
  expect_true(gpu_segment_check(s), "consistent");
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
    expect_true(gpu_segment_check(s), "consistent");
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
  expect_true(gpu_segment_check(s), "consistent");
  gpu_segment_destroy(s); /* ASan: no leak of host pages */
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
      expect_true(gpu_segment_check(s), "n=%u: consistent", n);
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
  expect_true(gpu_segment_check(mem) && gpu_segment_check(ap), "consistent");
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
    expect_true(gpu_segment_check(s), "consistent after random ops");
    free(model);
    free(buf);
    gpu_segment_destroy(s);
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
  expect_true(gpu_segment_check(s), "consistent");
  gpu_segment_destroy(s);
}

RUN_TESTS(T(test_create_rejects_bad_descriptions), T(test_recycled_memory_segment_starts_fresh),
          T(test_recycled_aperture_segment_starts_fresh), T(test_commit_release_ownership),
          T(test_access_bounds), T(test_freed_page_access_reports_last_owner),
          T(test_fill_pattern_and_phase), T(test_aperture_commit_backs_and_release_frees),
          T(test_aperture_commit_under_segment_space_faults),
          T(test_memory_segment_under_segment_space_faults), T(test_copy_between_segments),
          T(test_transfer_round_trip), T(test_random_against_model),
          T(test_concurrent_disjoint_ranges))
