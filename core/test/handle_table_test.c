/* handle_table_test.c — unit tests of the typed, generation-checked handle table. */
#include "handle_table.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"

/* al_test.h's expect_ptr_eq/ne expand to `const void *al_a_, al_b_` (al_b_ is then `const
 * void`) and do not compile; these local forms compare pointers through uintptr_t instead. */
#define expect_ptr_is(got, want, ...)                                                      \
  expect_u64_eq((uintptr_t)(const void *)(got), (uintptr_t)(const void *)(want), __VA_ARGS__)

/* ---- Helpers ---------------------------------------------------------------------------------- */

/* Distinct non-NULL objects: the table never dereferences them. */
static char object_pool[1u << 16];
static void *obj(uint32_t i) { return &object_pool[i % sizeof object_pool]; }

static uint32_t index_of(uint32_t handle) { return handle & HANDLE_TABLE_INDEX_MASK; }
static uint32_t generation_of(uint32_t handle) {
  return (handle >> HANDLE_TABLE_INDEX_BITS) & HANDLE_TABLE_GENERATION_MASK;
}
static uint32_t make_handle(uint32_t type, uint32_t generation, uint32_t index) {
  return type << HANDLE_TABLE_TYPE_SHIFT | generation << HANDLE_TABLE_INDEX_BITS | index;
}

/* The slot behind an index (tests poke at it to corrupt the table on purpose). */
static handle_table_slot *slot_at(handle_table *table, uint32_t index) {
  return &table->chunks[index >> HANDLE_TABLE_CHUNK_BITS][index & (HANDLE_TABLE_CHUNK_SLOTS - 1)];
}

#define expect_table_ok(table)                                                             \
  do {                                                                                     \
    char check_msg_[256] = "";                                                             \
    expect_true(handle_table_check((table), check_msg_, sizeof check_msg_),                \
                "handle_table_check: %s", check_msg_);                                     \
  } while (0)

static uint32_t must_insert(handle_table *table, void *object, uint32_t aux, bool published) {
  uint32_t handle = 0;
  NTSTATUS status = handle_table_insert_locked(table, object, aux, published, &handle);
  assert_status(status, STATUS_SUCCESS, "insert aux %" PRIu32, aux);
  return handle;
}

static uint64_t rng_next(uint64_t *state) { /* splitmix64 */
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---- Handle encoding -------------------------------------------------------------------------- */

TEST(test_type_bits_and_zero_never_returned) {
  expect_u64_eq(handle_type_of(0), 0, "0 has no type");
  expect_u64_eq(handle_type_of(0x3FFFFFFFu), 0, "type bits 0");
  expect_u64_eq(handle_type_of(0x40000000u), HANDLE_TYPE_DEVICE, "type 1");
  expect_u64_eq(handle_type_of(0x80000000u), HANDLE_TYPE_RESOURCE, "type 2");
  expect_u64_eq(handle_type_of(0xFFFFFFFFu), HANDLE_TYPE_ALLOCATION, "type 3");
  const handle_type types[] = {HANDLE_TYPE_DEVICE, HANDLE_TYPE_RESOURCE, HANDLE_TYPE_ALLOCATION};
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    handle_table table;
    assert_status(handle_table_init(&table, types[t]), STATUS_SUCCESS, "init type %d", types[t]);
    handle_table_lock(&table);
    /* Enough churn that slots are reused with later generations, including generation 0's
     * neighbours: the value must stay non-zero and typed whatever the generation. */
    uint32_t live[3000];
    for (uint32_t i = 0; i < 3000; i++) live[i] = must_insert(&table, obj(i), i, i % 2);
    for (uint32_t round = 0; round < 4; round++) {
      for (uint32_t i = 0; i < 3000; i++) {
        handle_table_remove_locked(&table, live[i]);
        live[i] = must_insert(&table, obj(i), i, i % 2);
      }
    }
    for (uint32_t i = 0; i < 3000; i++) {
      expect_u64_ne(live[i], 0, "handle %" PRIu32 " is 0", i);
      expect_u64_eq(handle_type_of(live[i]), types[t], "handle 0x%08" PRIx32, live[i]);
      expect_u64_ne(index_of(live[i]), 0, "index 0 handed out: 0x%08" PRIx32, live[i]);
    }
    expect_table_ok(&table);
    handle_table_unlock(&table);
    handle_table_fini(&table);
  }
}

/* ---- Lookup ------------------------------------------------------------------------------------ */

TEST(test_lookup_rejects_invalid_handles) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_RESOURCE), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  uint32_t pub = must_insert(&table, obj(1), 7, true);
  uint32_t res = must_insert(&table, obj(2), 8, false);
  uint32_t gone = must_insert(&table, obj(3), 9, true);
  handle_table_remove_locked(&table, gone);

  uint32_t aux = 0;
  expect_ptr_is(handle_table_lookup_locked(&table, pub, &aux), obj(1), "published handle");
  expect_u64_eq(aux, 7, "aux of the published handle");
  expect_ptr_is(handle_table_lookup_locked(&table, pub, NULL), obj(1), "out_aux may be NULL");

  /* Wrong type: the same index and generation under every other type bits. */
  for (uint32_t type = 0; type < 4; type++) {
    if (type == HANDLE_TYPE_RESOURCE) continue;
    uint32_t other = (pub & ~(3u << HANDLE_TABLE_TYPE_SHIFT)) | type << HANDLE_TABLE_TYPE_SHIFT;
    expect_ptr_is(handle_table_lookup_locked(&table, other, NULL), NULL, "type %" PRIu32, type);
    expect_ptr_is(handle_table_lookup_any_locked(&table, other, NULL), NULL, "any, type %" PRIu32,
                  type);
  }
  expect_ptr_is(handle_table_lookup_locked(&table, 0, NULL), NULL, "value 0");

  /* Stale: every other generation of a live slot. */
  for (uint32_t g = 0; g <= HANDLE_TABLE_GENERATION_MASK; g++) {
    if (g == generation_of(pub)) continue;
    uint32_t stale = make_handle(HANDLE_TYPE_RESOURCE, g, index_of(pub));
    expect_ptr_is(handle_table_lookup_locked(&table, stale, NULL), NULL, "generation %" PRIu32, g);
    expect_ptr_is(handle_table_lookup_any_locked(&table, stale, NULL), NULL, "any, gen %" PRIu32, g);
  }

  /* Removed: the old value, and the slot's current generation (matches, but the slot is free). */
  expect_ptr_is(handle_table_lookup_locked(&table, gone, NULL), NULL, "removed handle");
  expect_ptr_is(handle_table_lookup_any_locked(&table, gone, NULL), NULL, "any, removed handle");
  uint32_t free_now = make_handle(HANDLE_TYPE_RESOURCE, generation_of(gone) + 1, index_of(gone));
  expect_ptr_is(handle_table_lookup_locked(&table, free_now, NULL), NULL, "free slot, current gen");
  expect_ptr_is(handle_table_lookup_any_locked(&table, free_now, NULL), NULL, "any, free slot");

  /* Out of range: index 0, just past high water, in an allocated chunk, in a missing chunk. */
  const uint32_t indexes[] = {0, index_of(gone) + 1, 1000, 1024, 5000, HANDLE_TABLE_INDEX_MASK};
  for (size_t i = 0; i < sizeof indexes / sizeof indexes[0]; i++) {
    uint32_t far = make_handle(HANDLE_TYPE_RESOURCE, 0, indexes[i]);
    expect_ptr_is(handle_table_lookup_locked(&table, far, NULL), NULL, "index %" PRIu32, indexes[i]);
    expect_ptr_is(handle_table_lookup_any_locked(&table, far, NULL), NULL, "any, index %" PRIu32,
                  indexes[i]);
  }

  /* Reserved: lookup rejects it, lookup_any finds it. */
  expect_ptr_is(handle_table_lookup_locked(&table, res, NULL), NULL, "reserved handle");
  aux = 0;
  expect_ptr_is(handle_table_lookup_any_locked(&table, res, &aux), obj(2), "any, reserved");
  expect_u64_eq(aux, 8, "aux of the reserved handle");

  /* A rejected lookup leaves out_aux alone (a free slot's aux is its free-list link, a
   * never-used slot's is 0: neither may leak out). */
  const uint32_t rejected[] = {gone, free_now, make_handle(HANDLE_TYPE_RESOURCE, 0, 1000), res};
  for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
    aux = 12345;
    expect_ptr_is(handle_table_lookup_locked(&table, rejected[i], &aux), NULL, "case %zu", i);
    expect_u64_eq(aux, 12345, "lookup: out_aux untouched on failure, case %zu", i);
    if (rejected[i] == res) continue; /* lookup_any accepts the reserved one */
    aux = 12345;
    expect_ptr_is(handle_table_lookup_any_locked(&table, rejected[i], &aux), NULL, "case %zu", i);
    expect_u64_eq(aux, 12345, "lookup_any: out_aux untouched on failure, case %zu", i);
  }

  /* The walks' accessor answers as lookup does, for every case above. */
  const uint32_t every[] = {pub, res, gone, free_now, 0, make_handle(HANDLE_TYPE_RESOURCE, 0, 1000),
                            make_handle(HANDLE_TYPE_RESOURCE, generation_of(pub) + 1, index_of(pub)),
                            (pub & ~(3u << HANDLE_TABLE_TYPE_SHIFT)) |
                                (uint32_t)HANDLE_TYPE_DEVICE << HANDLE_TABLE_TYPE_SHIFT};
  for (size_t i = 0; i < sizeof every / sizeof every[0]; i++) {
    uint32_t want_aux = 12345, got_aux = 12345;
    void *want = handle_table_lookup_locked(&table, every[i], &want_aux);
    expect_ptr_is(handle_table_check_lookup_locked(&table, every[i], &got_aux), want,
                  "check lookup, case %zu", i);
    expect_u64_eq(got_aux, want_aux, "check lookup's aux, case %zu", i);
  }

  /* No single-bit corruption of a live handle reaches anything but another live handle. */
  for (uint32_t bit = 0; bit < 32; bit++) {
    uint32_t flipped = pub ^ (1u << bit);
    void *found = handle_table_lookup_any_locked(&table, flipped, NULL);
    expect_true(found == NULL || flipped == res, "bit %" PRIu32 " flipped: 0x%08" PRIx32 " -> %p",
                bit, flipped, found);
  }
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

TEST(test_publish) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_ALLOCATION), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  uint32_t h = must_insert(&table, obj(5), 50, false);
  expect_ptr_is(handle_table_lookup_locked(&table, h, NULL), NULL, "reserved before publish");
  handle_table_publish_locked(&table, h);
  uint32_t aux = 0;
  expect_ptr_is(handle_table_lookup_locked(&table, h, &aux), obj(5), "published");
  expect_u64_eq(aux, 50, "aux survives publish");
  expect_ptr_is(handle_table_lookup_any_locked(&table, h, NULL), obj(5), "any, published");

  /* A handle reserved before its object exists: NULL object, then update, then publish. */
  uint32_t early = must_insert(&table, NULL, 0, false);
  expect_ptr_is(handle_table_lookup_any_locked(&table, early, NULL), NULL, "NULL object");
  uint32_t cursor = 0, seen = 0;
  void *seen_object = obj(0);
  expect_true(handle_table_next_locked(&table, &cursor, NULL, NULL, NULL), "first live handle");
  expect_true(handle_table_next_locked(&table, &cursor, &seen, &seen_object, NULL), "second");
  expect_u64_eq(seen, early, "iteration reports the NULL-object reservation");
  expect_ptr_is(seen_object, NULL, "with its NULL object");
  handle_table_update_locked(&table, early, obj(6), 60);
  handle_table_publish_locked(&table, early);
  expect_ptr_is(handle_table_lookup_locked(&table, early, &aux), obj(6), "published late");
  expect_u64_eq(aux, 60, "aux set by update");
  expect_u64_eq(handle_table_live_count(&table), 2, "live count");
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

TEST(test_update) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_DEVICE), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  uint32_t pub = must_insert(&table, obj(1), 1, true);
  uint32_t res = must_insert(&table, obj(2), 2, false);
  handle_table_update_locked(&table, pub, obj(10), 10);
  handle_table_update_locked(&table, res, obj(20), 20);
  uint32_t aux = 0;
  expect_ptr_is(handle_table_lookup_locked(&table, pub, &aux), obj(10), "updated published");
  expect_u64_eq(aux, 10, "updated aux");
  expect_ptr_is(handle_table_lookup_locked(&table, res, NULL), NULL, "update does not publish");
  expect_ptr_is(handle_table_lookup_any_locked(&table, res, &aux), obj(20), "updated reserved");
  expect_u64_eq(aux, 20, "updated reserved aux");
  handle_table_update_locked(&table, res, NULL, 0);
  expect_ptr_is(handle_table_lookup_any_locked(&table, res, NULL), NULL, "reserved may go NULL");
  expect_u64_eq(handle_table_live_count(&table), 2, "update changes no count");
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* ---- Reuse policy ------------------------------------------------------------------------------ */

/* A freed slot comes back only once HANDLE_TABLE_REUSE_DELAY slots freed after it wait behind it;
 * until then inserts take new slots; then reuse is FIFO. */
TEST(test_fifo_reuse_delay) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_ALLOCATION), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  enum { OTHERS = 2 * HANDLE_TABLE_REUSE_DELAY };
  uint32_t h = must_insert(&table, obj(0), 0, true);
  static uint32_t others[OTHERS];
  for (uint32_t i = 0; i < OTHERS; i++) others[i] = must_insert(&table, obj(i + 1), i, true);
  handle_table_remove_locked(&table, h);

  /* Alone on the free list, it is not reused however many inserts follow. */
  static uint32_t fresh[4000];
  for (uint32_t i = 0; i < 4000; i++) {
    fresh[i] = must_insert(&table, obj(i), i, true);
    expect_u64_ne(index_of(fresh[i]), index_of(h), "insert %" PRIu32 " reused the only freed slot", i);
  }
  for (uint32_t i = 0; i < 4000; i++) handle_table_remove_locked(&table, fresh[i]);
  handle_table_unlock(&table);
  handle_table_fini(&table);

  /* Exact boundary: after h is freed, inserts 1..1023 (each after one more free) take new slots,
   * insert 1024 — the first with 1024 younger frees waiting behind h — takes h's slot. */
  assert_status(handle_table_init(&table, HANDLE_TYPE_ALLOCATION), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  h = must_insert(&table, obj(0), 0, true);
  for (uint32_t i = 0; i < OTHERS; i++) others[i] = must_insert(&table, obj(i + 1), i, true);
  handle_table_remove_locked(&table, h);
  for (uint32_t k = 1; k <= HANDLE_TABLE_REUSE_DELAY; k++) {
    handle_table_remove_locked(&table, others[k - 1]);
    uint32_t got = must_insert(&table, obj(k), k, true);
    if (k < HANDLE_TABLE_REUSE_DELAY) {
      expect_u64_ne(index_of(got), index_of(h), "insert %" PRIu32 " reused h's slot too early", k);
    } else {
      expect_u64_eq(index_of(got), index_of(h), "insert %" PRIu32 " should reuse h's slot", k);
      expect_u64_eq(generation_of(got), generation_of(h) + 1, "reuse bumps the generation");
      expect_ptr_is(handle_table_lookup_locked(&table, h, NULL), NULL, "old value stays stale");
    }
  }
  /* Then FIFO: the next reuses come back in the order they were freed. */
  for (uint32_t k = 0; k < 16; k++) {
    handle_table_remove_locked(&table, others[HANDLE_TABLE_REUSE_DELAY + k]);
    uint32_t got = must_insert(&table, obj(k), k, true);
    expect_u64_eq(index_of(got), index_of(others[k]), "reuse %" PRIu32 " is not FIFO", k);
  }
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* Forces one slot through 1024 reuses while more than HANDLE_TABLE_REUSE_DELAY slots wait on the
 * free list: every earlier value of the slot stays rejected through reuses 1..1023, each reuse
 * waits behind >= 1024 other frees, and reuse 1024 repeats the first value (generation wrapped):
 * the documented bound is exact, not pessimistic. */
TEST(test_stale_handles_across_many_reuses) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_RESOURCE), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  enum { REUSES = 1u << HANDLE_TABLE_GENERATION_BITS, SPARE = HANDLE_TABLE_REUSE_DELAY + 1 };
  static uint32_t values[REUSES + 1];
  values[0] = must_insert(&table, obj(0), 0, true);
  static uint32_t spare[SPARE];
  for (uint32_t i = 0; i < SPARE; i++) spare[i] = must_insert(&table, obj(i + 1), i, true);
  for (uint32_t i = 0; i < SPARE; i++) handle_table_remove_locked(&table, spare[i]);

  uint64_t total_frees = 0;
  for (uint32_t reuse = 1; reuse <= REUSES; reuse++) {
    handle_table_remove_locked(&table, values[reuse - 1]);
    total_frees++;
    uint32_t other_frees = 0;
    for (;;) {
      assert_true(table.free_count > 0, "free list drained");
      uint32_t got = must_insert(&table, obj(reuse), reuse, true);
      if (index_of(got) == index_of(values[0])) {
        values[reuse] = got;
        break;
      }
      handle_table_remove_locked(&table, got);
      other_frees++;
      total_frees++;
    }
    expect_u64_ge(other_frees, HANDLE_TABLE_REUSE_DELAY, "reuse %" PRIu32 " came too soon", reuse);
    expect_u64_eq(generation_of(values[reuse]), reuse % REUSES, "generation of reuse %" PRIu32,
                  reuse);
    expect_ptr_is(handle_table_lookup_locked(&table, values[reuse], NULL), obj(reuse),
                  "reuse %" PRIu32 " resolves", reuse);
    if (reuse < REUSES) {
      for (uint32_t earlier = 0; earlier < reuse; earlier++) {
        if (handle_table_lookup_any_locked(&table, values[earlier], NULL) != NULL) {
          expect_true(false, "value 0x%08" PRIx32 " of reuse %" PRIu32 " resolves at reuse %" PRIu32,
                      values[earlier], earlier, reuse);
          break;
        }
      }
    }
  }
  /* The bound: the 1024th reuse repeats the first value, after at least ~1M frees; a stale
   * copy of values[0] held that long now reaches the new object (the ABA the delay bounds). */
  expect_u64_eq(values[REUSES], values[0], "the 1024th reuse repeats the first value");
  expect_ptr_is(handle_table_lookup_locked(&table, values[0], NULL), obj(REUSES),
                "after the bound the first value names the new object");
  expect_u64_ge(total_frees,
                (uint64_t)HANDLE_TABLE_REUSE_DELAY * REUSES + REUSES,
                "frees between two equal values");
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* ---- Exhaustion ------------------------------------------------------------------------------- */

typedef struct table_snapshot {
  uint32_t chunk_count, high_water, free_head, free_tail, free_count, live;
} table_snapshot;

static table_snapshot snapshot(const handle_table *table) {
  return (table_snapshot){table->chunk_count, table->high_water, table->free_head,
                          table->free_tail, table->free_count, handle_table_live_count(table)};
}

static bool snapshots_equal(table_snapshot a, table_snapshot b) {
  return a.chunk_count == b.chunk_count && a.high_water == b.high_water &&
         a.free_head == b.free_head && a.free_tail == b.free_tail &&
         a.free_count == b.free_count && a.live == b.live;
}

TEST(test_exhaustion_of_indexes) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_ALLOCATION), STATUS_SUCCESS, "init");
  uint32_t *handles = malloc(sizeof *handles * HANDLE_TABLE_MAX_LIVE);
  assert_true(handles != NULL, "malloc");
  handle_table_lock(&table);
  for (uint32_t i = 0; i < HANDLE_TABLE_MAX_LIVE; i++) {
    if (handle_table_insert_locked(&table, obj(i), i, true, &handles[i]) != STATUS_SUCCESS) {
      expect_true(false, "insert %" PRIu32 " of %" PRIu32 " failed", i, HANDLE_TABLE_MAX_LIVE);
      goto out;
    }
  }
  expect_u64_eq(handle_table_live_count(&table), HANDLE_TABLE_MAX_LIVE, "full");
  table_snapshot before = snapshot(&table);
  uint32_t extra = 0xDEADBEEF;
  expect_status(handle_table_insert_locked(&table, obj(1), 1, true, &extra), STATUS_NO_MEMORY,
                "insert into a full table");
  expect_u64_eq(extra, 0, "failed insert writes 0");
  expect_status(handle_table_insert_locked(&table, NULL, 1, false, &extra), STATUS_NO_MEMORY,
                "reserve in a full table");
  expect_true(snapshots_equal(before, snapshot(&table)), "a failed insert changed the table");
  expect_table_ok(&table);
  for (uint32_t i = 0; i < HANDLE_TABLE_MAX_LIVE; i += 4099)
    expect_ptr_is(handle_table_lookup_locked(&table, handles[i], NULL), obj(i), "handle %" PRIu32, i);

  /* Cannot grow: a freed slot is reused at once, delay or not (documented), with a new
   * generation, and the old value stays rejected. */
  uint32_t victim = handles[HANDLE_TABLE_MAX_LIVE / 2];
  handle_table_remove_locked(&table, victim);
  uint32_t again = 0;
  assert_status(handle_table_insert_locked(&table, obj(7), 7, true, &again), STATUS_SUCCESS,
                "insert after one free (a table that cannot grow reuses free slots at once)");
  expect_u64_eq(index_of(again), index_of(victim), "the only free slot is reused");
  expect_ptr_is(handle_table_lookup_locked(&table, victim, NULL), NULL, "old value rejected");
  handles[HANDLE_TABLE_MAX_LIVE / 2] = again;
  expect_status(handle_table_insert_locked(&table, obj(1), 1, true, &extra), STATUS_NO_MEMORY,
                "full again");

  for (uint32_t i = 0; i < HANDLE_TABLE_MAX_LIVE; i++) handle_table_remove_locked(&table, handles[i]);
  expect_u64_eq(handle_table_live_count(&table), 0, "all freed");
  expect_u64_eq(table.free_count, HANDLE_TABLE_MAX_LIVE, "every slot on the free list");
  expect_table_ok(&table);
out:
  handle_table_unlock(&table);
  handle_table_fini(&table);
  free(handles);
}

/* The chunk budget stands in for host memory running out: the table stops growing at a chunk
 * boundary, reuses free slots at once, and fails cleanly when none is free. */
TEST(test_exhaustion_of_chunk_budget) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_DEVICE), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  table.max_chunks = 2;
  enum { CAP = 2 * HANDLE_TABLE_CHUNK_SLOTS - 1 };
  static uint32_t handles[CAP];
  for (uint32_t i = 0; i < CAP; i++) handles[i] = must_insert(&table, obj(i), i, i % 3 != 0);
  table_snapshot before = snapshot(&table);
  uint32_t extra = 1;
  expect_status(handle_table_insert_locked(&table, obj(1), 1, true, &extra), STATUS_NO_MEMORY,
                "insert beyond the chunk budget");
  expect_true(snapshots_equal(before, snapshot(&table)), "a failed insert changed the table");
  expect_u64_eq(table.chunk_count, 2, "no chunk beyond the budget");
  handle_table_remove_locked(&table, handles[10]);
  handle_table_remove_locked(&table, handles[20]);
  uint32_t a = must_insert(&table, obj(1), 1, true);
  uint32_t b = must_insert(&table, obj(2), 2, true);
  expect_u64_eq(index_of(a), index_of(handles[10]), "oldest free slot first");
  expect_u64_eq(index_of(b), index_of(handles[20]), "then the next");
  expect_status(handle_table_insert_locked(&table, obj(1), 1, true, &extra), STATUS_NO_MEMORY,
                "full again");
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* ---- Iteration -------------------------------------------------------------------------------- */

TEST(test_iteration_with_removal) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_RESOURCE), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  uint32_t cursor = 0;
  expect_false(handle_table_next_locked(&table, &cursor, NULL, NULL, NULL), "empty table");
  enum { N = 3000 };
  static uint32_t handles[N];
  static bool live[N];
  for (uint32_t i = 0; i < N; i++) {
    handles[i] = must_insert(&table, obj(i), i, i % 4 != 0);
    live[i] = true;
  }
  for (uint32_t i = 0; i < N; i += 3) { /* holes, including across chunk boundaries */
    handle_table_remove_locked(&table, handles[i]);
    live[i] = false;
  }
  uint32_t visited = 0, removed = 0, last_index = 0, handle = 0, aux = 0;
  void *object = NULL;
  cursor = 0;
  while (handle_table_next_locked(&table, &cursor, &handle, &object, &aux)) {
    assert_true(aux < N, "aux %" PRIu32, aux);
    expect_u64_gt(index_of(handle), last_index, "index order");
    last_index = index_of(handle);
    expect_true(live[aux], "visited a removed handle (aux %" PRIu32 ")", aux);
    expect_u64_eq(handle, handles[aux], "handle of aux %" PRIu32, aux);
    expect_ptr_is(object, obj(aux), "object of aux %" PRIu32, aux);
    live[aux] = false; /* visited */
    visited++;
    if (visited % 2 == 0) { /* remove the handle just returned */
      handle_table_remove_locked(&table, handle);
      handles[aux] = 0;
      removed++;
    }
  }
  for (uint32_t i = 0; i < N; i++) expect_false(live[i], "live handle %" PRIu32 " not visited", i);
  expect_u64_eq(visited, N - (N + 2) / 3, "every live handle exactly once");
  expect_u64_eq(handle_table_live_count(&table), visited - removed, "live after removal");
  /* A second pass sees exactly the survivors. */
  uint32_t survivors = 0;
  cursor = 0;
  while (handle_table_next_locked(&table, &cursor, &handle, NULL, &aux)) {
    expect_u64_eq(handle, handles[aux], "survivor aux %" PRIu32, aux);
    survivors++;
  }
  expect_u64_eq(survivors, visited - removed, "survivors");
  /* The walks' accessor visits the same handles, objects and aux values in the same order. */
  uint32_t check_cursor = 0, check_handle = 0, check_aux = 0, steps = 0;
  void *check_object = NULL;
  cursor = 0;
  for (;;) {
    bool more = handle_table_next_locked(&table, &cursor, &handle, &object, &aux);
    bool check_more = handle_table_check_next_locked(&table, &check_cursor, &check_handle,
                                                     &check_object, &check_aux);
    expect_true(more == check_more, "check walk ends with the walk (step %" PRIu32 ")", steps);
    if (!more || !check_more) break;
    expect_true(check_cursor == cursor && check_handle == handle && check_object == object &&
                    check_aux == aux,
                "check walk step %" PRIu32 ": handle 0x%08" PRIx32 ", want 0x%08" PRIx32, steps,
                check_handle, handle);
    steps++;
  }
  expect_u64_eq(steps, survivors, "check walk: every survivor");
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* ---- The checker ------------------------------------------------------------------------------ */

static void expect_corrupt(const handle_table *table, const char *what) {
  char msg[256] = "";
  expect_false(handle_table_check(table, msg, sizeof msg), "check missed: %s", what);
  expect_true(msg[0] != '\0', "no message for: %s", what);
  msg[0] = '\0';
  expect_false(handle_table_check_live(table, msg, sizeof msg), "live check missed: %s", what);
  expect_true(msg[0] != '\0', "no live message for: %s", what);
}

/* Corruption far from what the table uses: the full check catches it, the live one does not
 * look there (its documented bound). */
static void expect_corrupt_full_only(const handle_table *table, const char *what) {
  char msg[256] = "";
  expect_false(handle_table_check(table, msg, sizeof msg), "check missed: %s", what);
  expect_true(handle_table_check_live(table, msg, sizeof msg), "live check looked at %s: %s", what, msg);
}

TEST(test_check_catches_corruption) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_ALLOCATION), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  enum { N = 1500 };
  static uint32_t handles[N];
  for (uint32_t i = 0; i < N; i++) handles[i] = must_insert(&table, obj(i), i, i % 5 != 0);
  for (uint32_t i = 0; i < N; i += 7) handle_table_remove_locked(&table, handles[i]);
  expect_table_ok(&table);
  uint32_t head = table.free_head, tail = table.free_tail;
  uint32_t second = slot_at(&table, head)->aux;
  handle_table_slot *live_slot = slot_at(&table, index_of(handles[1]));
  assert_true(second != 0 && second != tail, "need three free slots");

  /* Scalar fields: corrupt a copy (the chunks are shared, the copy is only read). */
  handle_table copy;
#define CORRUPT_COPY(what, stmt)                                                           \
  do {                                                                                     \
    memcpy(&copy, &table, sizeof copy);                                                    \
    stmt;                                                                                  \
    expect_corrupt(&copy, what);                                                           \
  } while (0)
  CORRUPT_COPY("free_count + 1", copy.free_count++);
  CORRUPT_COPY("free_count - 1", copy.free_count--);
  CORRUPT_COPY("live count + 1", atomic_store(&copy.live_count, handle_table_live_count(&table) + 1));
  CORRUPT_COPY("tail not at the end", copy.free_tail = second);
  CORRUPT_COPY("head skips a slot", copy.free_head = second);
  CORRUPT_COPY("empty head", copy.free_head = 0);
  CORRUPT_COPY("high water beyond the chunks", copy.high_water = 5 * HANDLE_TABLE_CHUNK_SLOTS);
  CORRUPT_COPY("high water 0", copy.high_water = 0);
  CORRUPT_COPY("chunk_count too high", copy.chunk_count++);
  CORRUPT_COPY("chunk budget below chunk_count", copy.max_chunks = 1);
  CORRUPT_COPY("type 0", copy.type = (handle_type)0);
#undef CORRUPT_COPY

  /* Slots: corrupt in place, check, restore. */
  handle_table_slot saved;
#define CORRUPT_SLOT(what, slot, stmt)                                                     \
  do {                                                                                     \
    saved = *(slot);                                                                       \
    stmt;                                                                                  \
    expect_corrupt(&table, what);                                                          \
    *(slot) = saved;                                                                       \
    expect_table_ok(&table);                                                               \
  } while (0)
  handle_table_slot *head_slot = slot_at(&table, head), *tail_slot = slot_at(&table, tail);
  CORRUPT_SLOT("free list cycle", tail_slot, tail_slot->aux = head);
  CORRUPT_SLOT("free list loops on itself", head_slot, head_slot->aux = head);
  CORRUPT_SLOT("free list skips a slot", head_slot, head_slot->aux = slot_at(&table, second)->aux);
  CORRUPT_SLOT("free list link out of range", head_slot, head_slot->aux = 70000);
  CORRUPT_SLOT("free slot holds an object", head_slot, head_slot->object = obj(1));
  CORRUPT_SLOT("free slot marked published", head_slot,
               head_slot->meta |= HANDLE_TABLE_STATE_PUBLISHED << HANDLE_TABLE_STATE_SHIFT);
  CORRUPT_SLOT("live slot marked free", live_slot,
               live_slot->meta &= HANDLE_TABLE_GENERATION_MASK);
  CORRUPT_SLOT("bad state", live_slot, live_slot->meta |= 3u << HANDLE_TABLE_STATE_SHIFT);
  CORRUPT_SLOT("stray generation bits", live_slot, live_slot->meta |= 1u << 20);
  CORRUPT_SLOT("published NULL object", live_slot, live_slot->object = NULL);
  handle_table_slot *slot0 = slot_at(&table, 0);
  CORRUPT_SLOT("slot 0 written", slot0, slot0->meta = HANDLE_TABLE_STATE_PUBLISHED
                                                     << HANDLE_TABLE_STATE_SHIFT);
  handle_table_slot *above = slot_at(&table, table.high_water);
  CORRUPT_SLOT("slot above high water written", above, above->object = obj(3));
#undef CORRUPT_SLOT
  handle_table_slot *far_above = slot_at(&table, table.high_water + 10);
  saved = *far_above;
  far_above->aux = 5;
  expect_corrupt_full_only(&table, "a slot 10 above high water");
  *far_above = saved;
  memcpy(&copy, &table, sizeof copy);
  copy.chunks[HANDLE_TABLE_CHUNK_COUNT - 1] = copy.chunks[0];
  expect_corrupt_full_only(&copy, "the last chunk pointer");
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* ---- Bugs abort -------------------------------------------------------------------------------- */

typedef struct death_case {
  handle_table *table;
  uint32_t handle;
} death_case;

static void call_remove(void *arg) {
  death_case *c = arg;
  handle_table_lock(c->table);
  handle_table_remove_locked(c->table, c->handle);
}
static void call_publish(void *arg) {
  death_case *c = arg;
  handle_table_lock(c->table);
  handle_table_publish_locked(c->table, c->handle);
}
static void call_update(void *arg) {
  death_case *c = arg;
  handle_table_lock(c->table);
  handle_table_update_locked(c->table, c->handle, obj(1), 1);
}
static void call_update_null(void *arg) {
  death_case *c = arg;
  handle_table_lock(c->table);
  handle_table_update_locked(c->table, c->handle, NULL, 1);
}
static void call_insert_published_null(void *arg) {
  death_case *c = arg;
  uint32_t h;
  handle_table_lock(c->table);
  (void)handle_table_insert_locked(c->table, NULL, 0, true, &h);
}

static void expect_bug(void (*fn)(void *), handle_table *table, uint32_t handle,
                       const char *function, const char *why) {
  death_case c = {table, handle};
  char needle[128];
  snprintf(needle, sizeof needle, "%s: handle 0x%08" PRIx32 ": %s", function, handle, why);
  expect_death(fn, &c, needle);
}

TEST(test_bugs_abort) {
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_RESOURCE), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  uint32_t pub = must_insert(&table, obj(1), 1, true);
  uint32_t res = must_insert(&table, obj(2), 2, false);
  uint32_t stale = must_insert(&table, obj(3), 3, true);
  handle_table_remove_locked(&table, stale);
  uint32_t free_now = make_handle(HANDLE_TYPE_RESOURCE, generation_of(stale) + 1, index_of(stale));
  uint32_t wrong_type = (pub & ~(3u << HANDLE_TABLE_TYPE_SHIFT)) |
                        (uint32_t)HANDLE_TYPE_ALLOCATION << HANDLE_TABLE_TYPE_SHIFT;
  uint32_t unknown = make_handle(HANDLE_TYPE_RESOURCE, 0, 777);
  handle_table_unlock(&table);

  expect_bug(call_remove, &table, stale, "handle_table_remove_locked", "stale");
  expect_bug(call_remove, &table, free_now, "handle_table_remove_locked", "slot 3 is free");
  expect_bug(call_remove, &table, wrong_type, "handle_table_remove_locked", "type 3");
  expect_bug(call_remove, &table, unknown, "handle_table_remove_locked", "index 777 was never handed out");
  expect_bug(call_remove, &table, 0, "handle_table_remove_locked", "type 0");
  expect_bug(call_publish, &table, pub, "handle_table_publish_locked", "slot 1 is already published");
  expect_bug(call_publish, &table, stale, "handle_table_publish_locked", "stale");
  expect_bug(call_update, &table, stale, "handle_table_update_locked", "stale");
  expect_bug(call_update_null, &table, pub, "handle_table_update_locked", "a published handle cannot hold a NULL object");
  expect_bug(call_insert_published_null, &table, 0, "handle_table_insert_locked", "publishing a NULL object");

  /* The children changed nothing here; the valid calls still work. */
  handle_table_lock(&table);
  handle_table_publish_locked(&table, res);
  handle_table_remove_locked(&table, res);
  handle_table_remove_locked(&table, pub);
  expect_u64_eq(handle_table_live_count(&table), 0, "all removed");
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* ---- Random operations against a reference model ----------------------------------------------- */

/* The model predicts every handle value from the documented policy (FIFO free list, reuse only
 * above the delay, generation + 1 per free) and every lookup answer, garbage handles included. */
TEST(test_random_against_model) {
  enum { MAX_INDEX = 8192, OPS = 300000, TARGET_LIVE = 2500 };
  static uint32_t gen[MAX_INDEX], state[MAX_INDEX], aux_of[MAX_INDEX], queue[MAX_INDEX];
  memset(gen, 0, sizeof gen);
  memset(state, 0, sizeof state);
  uint32_t q_head = 0, q_len = 0, high_water = 1, live = 0;
  uint64_t rng = al_test_seed();
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_DEVICE), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  for (uint32_t op = 0; op < OPS; op++) {
    uint64_t r = rng_next(&rng);
    uint32_t pick = 1 + (uint32_t)(r >> 40) % (high_water > 1 ? high_water - 1 : 1);
    uint32_t kind = (uint32_t)(r % 100);
    uint32_t current = make_handle(HANDLE_TYPE_DEVICE, gen[pick], pick);
    if (kind < 40 && (live < TARGET_LIVE || kind < 10)) { /* insert */
      uint32_t expect_index;
      if (q_len > HANDLE_TABLE_REUSE_DELAY) {
        expect_index = queue[q_head];
        q_head = (q_head + 1) % MAX_INDEX;
        q_len--;
      } else {
        expect_index = high_water++;
      }
      assert_true(expect_index < MAX_INDEX, "model overflow");
      bool published = (r >> 8) % 3 != 0;
      uint32_t h = must_insert(&table, obj(expect_index), (uint32_t)(r >> 16), published);
      assert_u64_eq(h, make_handle(HANDLE_TYPE_DEVICE, gen[expect_index], expect_index),
                    "op %" PRIu32 ": insert value", op);
      state[expect_index] = published ? 2 : 1;
      aux_of[expect_index] = (uint32_t)(r >> 16);
      live++;
    } else if (kind < 60) { /* remove, publish or update a live one */
      if (pick >= high_water || state[pick] == 0) continue;
      if (kind < 50) {
        handle_table_remove_locked(&table, current);
        state[pick] = 0;
        gen[pick] = (gen[pick] + 1) & HANDLE_TABLE_GENERATION_MASK;
        queue[(q_head + q_len) % MAX_INDEX] = pick;
        q_len++;
        live--;
      } else if (kind < 55 && state[pick] == 1) {
        handle_table_publish_locked(&table, current);
        state[pick] = 2;
      } else {
        aux_of[pick] = (uint32_t)r;
        handle_table_update_locked(&table, current, obj(pick), aux_of[pick]);
      }
    } else { /* lookups: current value, stale value, garbage */
      uint32_t candidates[3] = {
          current,
          make_handle(HANDLE_TYPE_DEVICE, (gen[pick] + 1 + (uint32_t)(r >> 20) % 1023) &
                                              HANDLE_TABLE_GENERATION_MASK, pick),
          (uint32_t)(r >> 32)};
      for (int c = 0; c < 3; c++) {
        uint32_t h = candidates[c];
        uint32_t i = index_of(h);
        bool valid = handle_type_of(h) == HANDLE_TYPE_DEVICE && i != 0 && i < high_water &&
                     i < MAX_INDEX && generation_of(h) == gen[i];
        void *want = valid && state[i] == 2 ? obj(i) : NULL;
        void *want_any = valid && state[i] != 0 ? obj(i) : NULL;
        uint32_t aux = 0xFFFFFFFF;
        void *got = handle_table_lookup_locked(&table, h, &aux);
        if (got != want || (want && aux != aux_of[i])) {
          expect_true(false, "op %" PRIu32 ": lookup 0x%08" PRIx32 " got %p want %p", op, h, got, want);
          goto out;
        }
        if (handle_table_lookup_any_locked(&table, h, NULL) != want_any) {
          expect_true(false, "op %" PRIu32 ": lookup_any 0x%08" PRIx32, op, h);
          goto out;
        }
      }
    }
    if (op % 20000 == 0) {
      expect_table_ok(&table);
      expect_u64_eq(handle_table_live_count(&table), live, "live count at op %" PRIu32, op);
    }
  }
  expect_table_ok(&table);
  expect_u64_eq(table.free_count, q_len, "free list length");
out:
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* ---- Threads ---------------------------------------------------------------------------------- */

enum { THREADS = 4, THREAD_OPS = 40000, THREAD_KEEP = 128, THREAD_STALE = 64 };

typedef struct thread_ctx {
  handle_table *table;
  uint32_t id;
  uint64_t seed;
  uint32_t handles[THREAD_KEEP];
  uint32_t count;
  uint32_t errors;
  char first_error[160];
} thread_ctx;

static char thread_objects[THREADS][THREAD_KEEP];

static void thread_error(thread_ctx *ctx, const char *what, uint32_t handle) {
  if (ctx->errors++ == 0)
    snprintf(ctx->first_error, sizeof ctx->first_error, "thread %" PRIu32 ": %s (0x%08" PRIx32 ")",
             ctx->id, what, handle);
}

static void *thread_main(void *arg) {
  thread_ctx *ctx = arg;
  uint32_t stale[THREAD_STALE] = {0};
  uint32_t stale_next = 0;
  uint64_t rng = ctx->seed;
  for (uint32_t op = 0; op < THREAD_OPS; op++) {
    uint64_t r = rng_next(&rng);
    uint32_t kind = (uint32_t)(r % 100);
    handle_table_lock(ctx->table);
    if (kind < 40 && ctx->count < THREAD_KEEP) {
      /* Insert reserved, then publish in the same critical section (a batch). Slot k of this
       * thread's array holds &thread_objects[id][k]; aux = id << 16 | k. */
      uint32_t k = ctx->count;
      uint32_t h = 0;
      if (handle_table_insert_locked(ctx->table, &thread_objects[ctx->id][k], ctx->id << 16 | k,
                                     false, &h) != STATUS_SUCCESS) {
        thread_error(ctx, "insert failed", 0);
      } else {
        handle_table_publish_locked(ctx->table, h);
        ctx->handles[ctx->count++] = h;
      }
    } else if (kind < 70 && ctx->count > 0) {
      uint32_t k = (uint32_t)(r >> 32) % ctx->count;
      uint32_t aux = 0;
      void *got = handle_table_lookup_locked(ctx->table, ctx->handles[k], &aux);
      if (got != &thread_objects[ctx->id][k] || aux != (ctx->id << 16 | k))
        thread_error(ctx, "own handle resolves wrongly", ctx->handles[k]);
    } else if (kind < 95 && ctx->count > 0) {
      /* Remove the last one (keeps slot k <-> handles[k] aligned). */
      uint32_t h = ctx->handles[--ctx->count];
      handle_table_remove_locked(ctx->table, h);
      if (handle_table_lookup_any_locked(ctx->table, h, NULL) != NULL)
        thread_error(ctx, "removed handle still resolves", h);
      stale[stale_next++ % THREAD_STALE] = h;
    } else {
      /* Fewer than 1M frees happen in this test, so no stale value can come back. */
      for (uint32_t s = 0; s < THREAD_STALE; s++)
        if (stale[s] && handle_table_lookup_any_locked(ctx->table, stale[s], NULL) != NULL)
          thread_error(ctx, "stale handle resolves", stale[s]);
    }
    handle_table_unlock(ctx->table);
    if (handle_table_live_count(ctx->table) > THREADS * THREAD_KEEP) /* lock-free read */
      thread_error(ctx, "live count out of range", handle_table_live_count(ctx->table));
  }
  return NULL;
}

TEST(test_threads) {
  static handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_ALLOCATION), STATUS_SUCCESS, "init");
  static thread_ctx ctx[THREADS];
  pthread_t threads[THREADS];
  uint64_t seed = al_test_seed();
  for (uint32_t t = 0; t < THREADS; t++) {
    ctx[t] = (thread_ctx){.table = &table, .id = t, .seed = seed + t * 7919};
    assert_true(pthread_create(&threads[t], NULL, thread_main, &ctx[t]) == 0, "pthread_create");
  }
  uint32_t expected_live = 0;
  for (uint32_t t = 0; t < THREADS; t++) {
    pthread_join(threads[t], NULL);
    expect_u64_eq(ctx[t].errors, 0, "%s", ctx[t].first_error);
    expected_live += ctx[t].count;
  }
  handle_table_lock(&table);
  expect_table_ok(&table);
  expect_u64_eq(handle_table_live_count(&table), expected_live, "live count after the threads");
  for (uint32_t t = 0; t < THREADS; t++)
    for (uint32_t k = 0; k < ctx[t].count; k++) handle_table_remove_locked(&table, ctx[t].handles[k]);
  expect_u64_eq(handle_table_live_count(&table), 0, "all removed");
  expect_table_ok(&table);
  handle_table_unlock(&table);
  handle_table_fini(&table);
}

/* ---- Life cycle -------------------------------------------------------------------------------- */

TEST(test_fini_with_live_handles) {
  /* fini frees the slots (ASan would report a leak otherwise) and leaves the objects alone. */
  handle_table table;
  assert_status(handle_table_init(&table, HANDLE_TYPE_DEVICE), STATUS_SUCCESS, "init");
  handle_table_lock(&table);
  for (uint32_t i = 0; i < 5000; i++) must_insert(&table, obj(i), i, true);
  handle_table_unlock(&table);
  handle_table_fini(&table);
  assert_status(handle_table_init(&table, HANDLE_TYPE_DEVICE), STATUS_SUCCESS, "init again");
  expect_u64_eq(handle_table_live_count(&table), 0, "fresh after re-init");
  expect_table_ok(&table);
  handle_table_fini(&table);
}

RUN_TESTS(T(test_type_bits_and_zero_never_returned), T(test_lookup_rejects_invalid_handles),
          T(test_publish), T(test_update), T(test_fifo_reuse_delay),
          T(test_stale_handles_across_many_reuses), T(test_exhaustion_of_indexes),
          T(test_exhaustion_of_chunk_budget), T(test_iteration_with_removal),
          T(test_check_catches_corruption), T(test_bugs_abort), T(test_random_against_model),
          T(test_threads), T(test_fini_with_live_handles))
