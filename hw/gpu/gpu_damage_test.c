/*
 * gpu_damage_test.c — the damage kinds of gpu_testing.h: every kind makes its walk
 * (gpu_segment_check, gpu_as_check) fail with the finding of the branch meant for it in the
 * caller's buffer, printing nothing, and the walk passes again after gpu_testing_undo(); a kind
 * with no target changes nothing.
 */
#include "alloclab/hw/gpu_testing.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "al_test.h"
#include "gpu_test_fixture.h"

#define PAGE UINT64_C(4096)
#define LARGE (UINT64_C(2) << 20)

/* Runs @check(@object) with stderr going to a temporary file, whose text lands in @out. */
static bool run_captured(bool (*check)(void *), void *object, char *out, size_t cap) {
  out[0] = '\0';
  fflush(stderr);
  FILE *tmp = tmpfile();
  if (tmp == NULL) return check(object);
  const int saved = dup(STDERR_FILENO);
  dup2(fileno(tmp), STDERR_FILENO);
  const bool ok = check(object);
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  rewind(tmp);
  const size_t n = fread(out, 1, cap - 1, tmp);
  out[n] = '\0';
  fclose(tmp);
  return ok;
}

/* The walks' first finding (their message buffer). */
static char finding[512];
static bool segment_check(void *s) { return gpu_segment_check(s, finding, sizeof finding); }
static bool as_check(void *as) { return gpu_as_check(as, finding, sizeof finding); }

/*
 * Content every kind finds a target in: memory pages 0..3 committed (owner 7), two of them
 * written (stored); aperture pages 16..19 committed (owner 8), one written; VA 4 KiB and
 * 64 KiB.. mapped 4 KiB pages (so VA 0's level-1 table exists), VA 4 MiB a 2 MiB leaf.
 */
static void build(gpu_fixture *f) {
  const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  assert_status(gpu_segment_commit(f->mem, 0, 4 * PAGE, 7), STATUS_SUCCESS, "commit memory");
  assert_status(gpu_segment_write(f->mem, PAGE, bytes, sizeof bytes, NULL), STATUS_SUCCESS, "write memory");
  assert_status(gpu_segment_write(f->mem, 3 * PAGE, bytes, sizeof bytes, NULL), STATUS_SUCCESS, "write memory");
  assert_status(gpu_segment_commit(f->aperture, 16 * PAGE, 4 * PAGE, 8), STATUS_SUCCESS, "commit aperture");
  assert_status(gpu_segment_write(f->aperture, 17 * PAGE, bytes, sizeof bytes, NULL), STATUS_SUCCESS, "write aperture");
  assert_status(gpu_segment_commit(f->mem, LARGE, LARGE, 9), STATUS_SUCCESS, "commit a large range");
  assert_status(gpu_as_map(f->as, PAGE, f->mem, 0, PAGE, 0), STATUS_SUCCESS, "map page 1");
  assert_status(gpu_as_map(f->as, 16 * PAGE, f->aperture, 16 * PAGE, 4 * PAGE, GPU_MAP_READ_ONLY), STATUS_SUCCESS,
                "map the aperture pages");
  assert_status(gpu_as_map(f->as, 2 * LARGE, f->mem, LARGE, LARGE, 0), STATUS_SUCCESS, "map a 2 MiB leaf");
  gpu_as_stats st;
  gpu_as_get_stats(f->as, &st);
  assert_u64_eq(st.mapped_2m, 1, "one 2 MiB leaf");
  assert_true(gpu_segment_check(f->mem, NULL, 0) && gpu_segment_check(f->aperture, NULL, 0) && gpu_as_check(f->as, NULL, 0), "sound");
}

static void teardown(gpu_fixture *f) {
  expect_status(gpu_as_unmap(f->as, PAGE, PAGE), STATUS_SUCCESS, "unmap page 1");
  expect_status(gpu_as_unmap(f->as, 16 * PAGE, 4 * PAGE), STATUS_SUCCESS, "unmap the aperture pages");
  expect_status(gpu_as_unmap(f->as, 2 * LARGE, LARGE), STATUS_SUCCESS, "unmap the 2 MiB leaf");
  expect_status(gpu_segment_release(f->mem, 0, 4 * PAGE), STATUS_SUCCESS, "release");
  expect_status(gpu_segment_release(f->mem, LARGE, LARGE), STATUS_SUCCESS, "release");
  expect_status(gpu_segment_release(f->aperture, 16 * PAGE, 4 * PAGE), STATUS_SUCCESS, "release");
  gpu_fixture_fini(f);
}

TEST(kinds_are_named) {
  expect_ptr_eq(gpu_testing_segment_damage_kind(GPU_SEGMENT_DAMAGE_KINDS), NULL, "past the segment kinds");
  expect_ptr_eq(gpu_testing_as_damage_kind(GPU_AS_DAMAGE_KINDS), NULL, "past the address-space kinds");
  for (unsigned k = 0; k < GPU_SEGMENT_DAMAGE_KINDS + GPU_AS_DAMAGE_KINDS; k++) {
    const al_damage_kind_info *info = k < GPU_SEGMENT_DAMAGE_KINDS ? gpu_testing_segment_damage_kind(k)
                                                                     : gpu_testing_as_damage_kind(k - GPU_SEGMENT_DAMAGE_KINDS);
    assert_ptr_ne(info, NULL, "kind %u", k);
    expect_true(info->name && info->target && info->expect && info->expect[0], "kind %u is described", k);
  }
}

/* Segment @s (memory: the aperture kinds have no target there), every kind, picks 0..4. */
static void every_segment_kind(gpu_segment *s, bool aperture) {
  char err[4096];
  for (unsigned k = 0; k < GPU_SEGMENT_DAMAGE_KINDS; k++) {
    const al_damage_kind_info *info = gpu_testing_segment_damage_kind(k);
    const bool aperture_only = k == GPU_DAMAGE_APERTURE_HOST_MISSING || k == GPU_DAMAGE_APERTURE_STORED_FREE_PAGE;
    for (uint64_t pick = 0; pick < 5; pick++) {
      gpu_damage_undo undo = {0};
      const bool damaged = gpu_testing_damage_segment(s, k, pick, &undo);
      if (aperture_only && !aperture) {
        expect_false(damaged, "%s: no target in a memory segment", info->name);
        expect_true(gpu_segment_check(s, NULL, 0), "%s: nothing changed", info->name);
        continue;
      }
      assert_true(damaged, "%s pick %" PRIu64 ": damaged", info->name, pick);
      expect_false(run_captured(segment_check, s, err, sizeof err), "%s pick %" PRIu64 ": caught", info->name, pick);
      expect_true(strstr(finding, info->expect) != NULL, "%s: finding \"%s\" lacks \"%s\"", info->name, finding,
                  info->expect);
      expect_true(err[0] == '\0', "%s: the walk printed \"%s\"", info->name, err);
      gpu_testing_undo(&undo);
      expect_u64_eq(undo.fields.count, 0, "%s: undone", info->name);
      gpu_testing_undo(&undo); /* a second undo does nothing */
      expect_true(run_captured(segment_check, s, err, sizeof err), "%s pick %" PRIu64 ": restored: %s", info->name,
                  pick, finding);
      expect_true(finding[0] == '\0', "%s: no finding once restored: %s", info->name, finding);
    }
  }
}

TEST(every_segment_kind_caught_and_undone) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, 0), "fixture");
  build(&f);
  gpu_segment_stats before, after;
  gpu_segment_get_stats(f.aperture, &before);
  every_segment_kind(f.mem, false);
  every_segment_kind(f.aperture, true);
  gpu_segment_get_stats(f.aperture, &after);
  expect_u64_eq(after.committed_bytes, before.committed_bytes, "committed bytes restored");
  expect_u64_eq(after.stored_bytes, before.stored_bytes, "stored bytes restored");
  uint8_t back[8] = {0};
  expect_status(gpu_segment_read(f.aperture, 17 * PAGE, back, sizeof back, NULL), STATUS_SUCCESS, "read back");
  expect_u64_eq(back[7], 8, "contents kept");
  teardown(&f);
}

TEST(every_as_kind_caught_and_undone) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, 0), "fixture");
  build(&f);
  char err[8192];
  for (unsigned k = 0; k < GPU_AS_DAMAGE_KINDS; k++) {
    const al_damage_kind_info *info = gpu_testing_as_damage_kind(k);
    for (uint64_t pick = 0; pick < 7; pick++) {
      gpu_damage_undo undo = {0};
      assert_true(gpu_testing_damage_as(f.as, k, pick, &undo), "%s pick %" PRIu64 ": damaged", info->name, pick);
      expect_false(run_captured(as_check, f.as, err, sizeof err), "%s pick %" PRIu64 ": caught", info->name, pick);
      expect_true(strstr(finding, info->expect) != NULL, "%s pick %" PRIu64 ": finding \"%s\" lacks \"%s\"",
                  info->name, pick, finding, info->expect);
      expect_true(err[0] == '\0', "%s pick %" PRIu64 ": the walk printed \"%s\"", info->name, pick, err);
      gpu_testing_undo(&undo);
      expect_true(run_captured(as_check, f.as, err, sizeof err), "%s pick %" PRIu64 ": restored: %s", info->name,
                  pick, finding);
    }
  }
  gpu_segment *seg = NULL;
  uint64_t phys = 0;
  expect_status(gpu_as_translate(f.as, 2 * LARGE + PAGE, GPU_ACCESS_READ, &seg, &phys), STATUS_SUCCESS,
                "the restored tables still translate");
  expect_u64_eq(phys, LARGE + PAGE, "to the same place");
  teardown(&f);
}

/* No target: false, the undo untouched, the walk still passing. */
TEST(no_target_changes_nothing) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, 0), "fixture");
  gpu_damage_undo undo = {0};
  expect_false(gpu_testing_damage_segment(f.aperture, GPU_DAMAGE_SEGMENT_OWNER_CLEARED, 0, &undo), "no committed page");
  expect_false(gpu_testing_damage_segment(f.aperture, GPU_DAMAGE_APERTURE_HOST_MISSING, 0, &undo), "no committed page");
  expect_false(gpu_testing_damage_segment(f.mem, GPU_DAMAGE_APERTURE_STORED_FREE_PAGE, 0, &undo), "not an aperture");
  expect_false(gpu_testing_damage_segment(f.mem, GPU_SEGMENT_DAMAGE_KINDS, 0, &undo), "unknown kind");
  expect_false(gpu_testing_damage_segment(NULL, GPU_DAMAGE_SEGMENT_COMMITTED_COUNT, 0, &undo), "NULL segment");
  expect_false(gpu_testing_damage_segment(f.mem, GPU_DAMAGE_SEGMENT_COMMITTED_COUNT, 0, NULL), "NULL undo");
  expect_false(gpu_testing_damage_as(f.as, GPU_DAMAGE_AS_POINTER_AT_LEVEL_1, 0, &undo), "no leaf");
  expect_false(gpu_testing_damage_as(f.as, GPU_DAMAGE_AS_TABLE_AS_LEAF, 0, &undo), "no table below the root");
  expect_false(gpu_testing_damage_as(f.as, GPU_DAMAGE_AS_EMPTY_TABLE_KEPT, 0, &undo), "no table below the root");
  expect_false(gpu_testing_damage_as(f.as, GPU_DAMAGE_AS_PAGE_ZERO_MAPPED, 0, &undo), "no table over VA 0");
  expect_false(gpu_testing_damage_as(f.as, GPU_AS_DAMAGE_KINDS, 0, &undo), "unknown kind");
  expect_false(gpu_testing_damage_as(NULL, GPU_DAMAGE_AS_TABLES_COUNTER, 0, &undo), "NULL address space");
  expect_u64_eq(undo.fields.count, 0, "the undo record was not touched");
  gpu_testing_undo(&undo);
  gpu_testing_undo(NULL);
  /* A table over VA 0 whose page 0 ... never exists; but the root-count kind always has the root. */
  char err[2048];
  assert_true(gpu_testing_damage_as(f.as, GPU_DAMAGE_AS_TABLE_COUNT, 3, &undo), "the root's count");
  expect_false(run_captured(as_check, f.as, err, sizeof err), "an empty space's root count caught");
  expect_true(strcmp(finding, "gpu_as_check: AS 1 level-4 table at VA 0x0: 0 live entries (found), count says 1 "
                              "(expected)") == 0,
              "%s", finding);
  /* The buffer is cut to its size, with a NUL; NULL keeps nothing. */
  char small[16];
  expect_false(gpu_as_check(f.as, small, sizeof small), "caught with a small buffer");
  expect_true(strcmp(small, "gpu_as_check: A") == 0, "cut: \"%s\"", small);
  expect_false(gpu_as_check(f.as, NULL, 0), "caught with no buffer");
  gpu_testing_undo(&undo);
  gpu_fixture_fini(&f);
}

RUN_TESTS(T(kinds_are_named), T(every_segment_kind_caught_and_undone), T(every_as_kind_caught_and_undone),
          T(no_target_changes_nothing))
