/* handle_table.c — typed, generation-checked 32-bit handles (see handle_table.h). */
#include "handle_table.h"

#include "check.h"

/* How many slots above high water handle_table_check looks at. */
#define HANDLE_TABLE_CHECK_ABOVE_HIGH_WATER 64u

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/host_alloc.h"

_Static_assert(sizeof(void *) != 8 || sizeof(handle_table_slot) == 16,
               "a slot is 16 bytes on LP64");
_Static_assert(HANDLE_TABLE_TYPE_SHIFT == 30, "two type bits on top of a 32-bit handle");
_Static_assert(HANDLE_TABLE_CHUNK_COUNT * HANDLE_TABLE_CHUNK_SLOTS == 1u << HANDLE_TABLE_INDEX_BITS,
               "the chunk array covers every index");
_Static_assert(HANDLE_TABLE_REUSE_DELAY < HANDLE_TABLE_MAX_LIVE, "the delay fits in the table");

/* ---- Handle and slot encoding ----------------------------------------------------------------- */

AL_CHECK_INLINE uint32_t ht_index(uint32_t handle) { return handle & HANDLE_TABLE_INDEX_MASK; }

AL_CHECK_INLINE uint32_t ht_generation(uint32_t handle) {
  return (handle >> HANDLE_TABLE_INDEX_BITS) & HANDLE_TABLE_GENERATION_MASK;
}

AL_CHECK_INLINE uint32_t ht_make_handle(handle_type type, uint32_t generation, uint32_t index) {
  return (uint32_t)type << HANDLE_TABLE_TYPE_SHIFT | generation << HANDLE_TABLE_INDEX_BITS | index;
}

AL_CHECK_INLINE uint32_t ht_meta(uint32_t generation, uint32_t state) {
  return generation | state << HANDLE_TABLE_STATE_SHIFT;
}

AL_CHECK_INLINE uint32_t ht_meta_generation(uint32_t meta) {
  return meta & HANDLE_TABLE_GENERATION_MASK;
}

AL_CHECK_INLINE uint32_t ht_meta_state(uint32_t meta) { return meta >> HANDLE_TABLE_STATE_SHIFT; }

/* The slot of @index, or NULL when its chunk was never allocated. */
AL_CHECK_INLINE handle_table_slot *ht_slot(const handle_table *table, uint32_t index) {
  handle_table_slot *chunk = table->chunks[index >> HANDLE_TABLE_CHUNK_BITS];
  return chunk ? &chunk[index & (HANDLE_TABLE_CHUNK_SLOTS - 1)] : NULL;
}

/* ---- Bugs ------------------------------------------------------------------------------------ */

static _Noreturn void ht_bug(const char *function, uint32_t handle, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static _Noreturn void ht_bug(const char *function, uint32_t handle, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: handle 0x%08" PRIx32 ": ", function, handle);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

/*
 * The slot of a live handle of @table, for the functions whose precondition is "a live handle"
 * (@want_state: RESERVED, PUBLISHED, or ~0u for either); aborts naming @function otherwise.
 */
static handle_table_slot *ht_live_slot_or_die(const handle_table *table, uint32_t handle,
                                              uint32_t want_state, const char *function) {
  if (handle_type_of(handle) != table->type)
    ht_bug(function, handle, "type %u, but the table holds type %u",
           (unsigned)handle_type_of(handle), (unsigned)table->type);
  uint32_t index = ht_index(handle);
  handle_table_slot *slot = index ? ht_slot(table, index) : NULL;
  if (slot == NULL || index >= table->high_water)
    ht_bug(function, handle, "index %" PRIu32 " was never handed out (high water %" PRIu32 ")",
           index, table->high_water);
  uint32_t state = ht_meta_state(slot->meta);
  uint32_t generation = ht_meta_generation(slot->meta);
  if (generation != ht_generation(handle))
    ht_bug(function, handle, "stale: generation %" PRIu32 ", slot %" PRIu32 " is at generation %" PRIu32,
           ht_generation(handle), index, generation);
  if (state == HANDLE_TABLE_STATE_FREE)
    ht_bug(function, handle, "slot %" PRIu32 " is free", index);
  if (want_state != ~0u && state != want_state)
    ht_bug(function, handle, "slot %" PRIu32 " is %s", index,
           state == HANDLE_TABLE_STATE_PUBLISHED ? "already published" : "reserved, not published");
  return slot;
}

/* ---- Life cycle and lock ----------------------------------------------------------------------- */

NTSTATUS handle_table_init(handle_table *table, handle_type type) {
  if (type < HANDLE_TYPE_DEVICE || type > HANDLE_TYPE_ALLOCATION)
    ht_bug(__func__, 0, "invalid handle type %d", (int)type);
  memset(table->chunks, 0, sizeof table->chunks);
  handle_table_slot *first = al_host_calloc(HANDLE_TABLE_CHUNK_SLOTS, sizeof *first);
  if (first == NULL) return STATUS_NO_MEMORY;
  if (pthread_mutex_init(&table->mutex, NULL) != 0) {
    free(first);
    return STATUS_NO_MEMORY;
  }
  table->chunks[0] = first;
  table->type = type;
  table->chunk_count = 1;
  table->max_chunks = HANDLE_TABLE_CHUNK_COUNT;
  table->high_water = 1; /* index 0 is never handed out */
  table->free_head = 0;
  table->free_tail = 0;
  table->free_count = 0;
  atomic_init(&table->live_count, 0);
  return STATUS_SUCCESS;
}

void handle_table_fini(handle_table *table) {
  for (uint32_t i = 0; i < table->chunk_count; i++) {
    free(table->chunks[i]);
    table->chunks[i] = NULL;
  }
  table->chunk_count = 0;
  table->high_water = 0;
  table->free_head = table->free_tail = table->free_count = 0;
  atomic_store_explicit(&table->live_count, 0, memory_order_relaxed);
  pthread_mutex_destroy(&table->mutex);
}

void handle_table_lock(handle_table *table) {
  int rc = pthread_mutex_lock(&table->mutex);
  if (rc != 0) ht_bug(__func__, 0, "pthread_mutex_lock failed (%d)", rc);
}

void handle_table_unlock(handle_table *table) {
  int rc = pthread_mutex_unlock(&table->mutex);
  if (rc != 0) ht_bug(__func__, 0, "pthread_mutex_unlock failed (%d)", rc);
}

AL_CHECK_INLINE handle_type ht_type_of(uint32_t handle) {
  return (handle_type)(handle >> HANDLE_TABLE_TYPE_SHIFT);
}

handle_type handle_type_of(uint32_t handle) { return ht_type_of(handle); }

uint32_t handle_table_live_count(const handle_table *table) {
  /* The counter is _Atomic; reading it through a const pointer is a plain atomic load. */
  return atomic_load_explicit((_Atomic uint32_t *)&table->live_count, memory_order_relaxed);
}

/* ---- Insert and remove ------------------------------------------------------------------------ */

/* Takes the oldest slot off the free list. The list must not be empty. */
static uint32_t ht_pop_free(handle_table *table) {
  uint32_t index = table->free_head;
  handle_table_slot *slot = ht_slot(table, index);
  table->free_head = slot->aux;
  if (table->free_head == 0) table->free_tail = 0;
  table->free_count--;
  return index;
}

/* Hands out the never-used slot at high water, allocating its chunk if needed. Returns 0 when
 * the table cannot grow (indexes, chunk budget or host memory exhausted); changes nothing then. */
static uint32_t ht_grow(handle_table *table) {
  uint32_t index = table->high_water;
  if (index > HANDLE_TABLE_MAX_LIVE) return 0;
  uint32_t chunk = index >> HANDLE_TABLE_CHUNK_BITS;
  if (chunk == table->chunk_count) {
    if (table->chunk_count >= table->max_chunks) return 0;
    handle_table_slot *slots = al_host_calloc(HANDLE_TABLE_CHUNK_SLOTS, sizeof *slots);
    if (slots == NULL) return 0;
    table->chunks[chunk] = slots;
    table->chunk_count++;
  }
  table->high_water++;
  return index;
}

NTSTATUS handle_table_insert_locked(handle_table *table, void *object, uint32_t aux,
                                    bool published, uint32_t *out_handle) {
  if (out_handle == NULL) ht_bug(__func__, 0, "out_handle is NULL");
  if (published && object == NULL) ht_bug(__func__, 0, "publishing a NULL object");
  uint32_t index = 0;
  if (table->free_count > HANDLE_TABLE_REUSE_DELAY) index = ht_pop_free(table);
  if (index == 0) index = ht_grow(table);
  if (index == 0 && table->free_count > 0) index = ht_pop_free(table);
  if (index == 0) {
    *out_handle = 0;
    return STATUS_NO_MEMORY;
  }
  handle_table_slot *slot = ht_slot(table, index);
  uint32_t generation = ht_meta_generation(slot->meta);
  slot->object = object;
  slot->aux = aux;
  slot->meta = ht_meta(generation, published ? HANDLE_TABLE_STATE_PUBLISHED
                                             : HANDLE_TABLE_STATE_RESERVED);
  atomic_store_explicit(&table->live_count,
                        atomic_load_explicit(&table->live_count, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  *out_handle = ht_make_handle(table->type, generation, index);
  return STATUS_SUCCESS;
}

void handle_table_remove_locked(handle_table *table, uint32_t handle) {
  handle_table_slot *slot = ht_live_slot_or_die(table, handle, ~0u, __func__);
  uint32_t index = ht_index(handle);
  uint32_t generation = (ht_meta_generation(slot->meta) + 1) & HANDLE_TABLE_GENERATION_MASK;
  slot->object = NULL;
  slot->aux = 0; /* end of the free list */
  slot->meta = ht_meta(generation, HANDLE_TABLE_STATE_FREE);
  if (table->free_tail)
    ht_slot(table, table->free_tail)->aux = index;
  else
    table->free_head = index;
  table->free_tail = index;
  table->free_count++;
  atomic_store_explicit(&table->live_count,
                        atomic_load_explicit(&table->live_count, memory_order_relaxed) - 1,
                        memory_order_relaxed);
}

void handle_table_publish_locked(handle_table *table, uint32_t handle) {
  handle_table_slot *slot = ht_live_slot_or_die(table, handle, HANDLE_TABLE_STATE_RESERVED, __func__);
  if (slot->object == NULL) ht_bug(__func__, handle, "publishing a NULL object");
  slot->meta = ht_meta(ht_meta_generation(slot->meta), HANDLE_TABLE_STATE_PUBLISHED);
}

void handle_table_update_locked(handle_table *table, uint32_t handle, void *object,
                                uint32_t aux) {
  handle_table_slot *slot = ht_live_slot_or_die(table, handle, ~0u, __func__);
  if (object == NULL && ht_meta_state(slot->meta) == HANDLE_TABLE_STATE_PUBLISHED)
    ht_bug(__func__, handle, "a published handle cannot hold a NULL object");
  slot->object = object;
  slot->aux = aux;
}

/* ---- Lookup and iteration --------------------------------------------------------------------- */

/* The slot @handle names when its type is the table's, its generation is the slot's and the
 * slot is published (or, with @any, reserved); else NULL. Slot 0 and never-used slots are all
 * zero (state FREE), so they fail without a range check. */
AL_CHECK_INLINE const handle_table_slot *ht_match(const handle_table *table, uint32_t handle,
                                                bool any) {
  if (ht_type_of(handle) != table->type) return NULL;
  const handle_table_slot *slot = ht_slot(table, ht_index(handle));
  if (slot == NULL) return NULL;
  uint32_t meta = slot->meta;
  if (any) {
    if (ht_meta_generation(meta) != ht_generation(handle) ||
        ht_meta_state(meta) == HANDLE_TABLE_STATE_FREE)
      return NULL;
  } else if (meta != ht_meta(ht_generation(handle), HANDLE_TABLE_STATE_PUBLISHED)) {
    return NULL;
  }
  return slot;
}

/* The bodies of handle_table_lookup_locked and handle_table_next_locked, shared with their
 * check-code accessors. */
AL_CHECK_INLINE void *ht_lookup(const handle_table *table, uint32_t handle, uint32_t *out_aux) {
  const handle_table_slot *slot = ht_match(table, handle, false);
  if (slot == NULL) return NULL;
  if (out_aux) *out_aux = slot->aux;
  return slot->object;
}

AL_CHECK_INLINE bool ht_next(const handle_table *table, uint32_t *cursor, uint32_t *out_handle,
                             void **out_object, uint32_t *out_aux) {
  for (uint32_t index = *cursor + 1; index < table->high_water; index++) {
    const handle_table_slot *slot = ht_slot(table, index);
    uint32_t state = ht_meta_state(slot->meta);
    if (state == HANDLE_TABLE_STATE_FREE) continue;
    *cursor = index;
    if (out_handle) *out_handle = ht_make_handle(table->type, ht_meta_generation(slot->meta), index);
    if (out_object) *out_object = slot->object;
    if (out_aux) *out_aux = slot->aux;
    return true;
  }
  return false;
}

void *handle_table_lookup_locked(const handle_table *table, uint32_t handle, uint32_t *out_aux) {
  return ht_lookup(table, handle, out_aux);
}

AL_CHECK_CODE void *handle_table_check_lookup_locked(const handle_table *table, uint32_t handle,
                                                     uint32_t *out_aux) {
  return ht_lookup(table, handle, out_aux);
}

void *handle_table_lookup_any_locked(const handle_table *table, uint32_t handle,
                                     uint32_t *out_aux) {
  const handle_table_slot *slot = ht_match(table, handle, true);
  if (slot == NULL) return NULL;
  if (out_aux) *out_aux = slot->aux;
  return slot->object;
}

bool handle_table_next_locked(const handle_table *table, uint32_t *cursor, uint32_t *out_handle,
                              void **out_object, uint32_t *out_aux) {
  return ht_next(table, cursor, out_handle, out_object, out_aux);
}

AL_CHECK_CODE bool handle_table_check_next_locked(const handle_table *table, uint32_t *cursor,
                                                  uint32_t *out_handle, void **out_object,
                                                  uint32_t *out_aux) {
  return ht_next(table, cursor, out_handle, out_object, out_aux);
}

/* ---- Invariants ------------------------------------------------------------------------------- */


static bool ht_slot_is_pristine(const handle_table_slot *slot) {
  return slot->object == NULL && slot->aux == 0 && slot->meta == 0;
}

/* The body of handle_table_check (@full) and handle_table_check_live (!@full). */
AL_CHECK_CODE static bool ht_check(const handle_table *table, bool full, char *msg, size_t cap) {
  if (table->type < HANDLE_TYPE_DEVICE || table->type > HANDLE_TYPE_ALLOCATION)
    return check_fail(msg, cap, "invalid type %d", (int)table->type);
  if (table->chunk_count < 1 || table->chunk_count > table->max_chunks ||
      table->chunk_count > HANDLE_TABLE_CHUNK_COUNT)
    return check_fail(msg, cap, "chunk_count %" PRIu32 " out of range (max_chunks %" PRIu32 ")",
                   table->chunk_count, table->max_chunks);
  /* The live check looks at the allocated chunks and the first unallocated one: what the
   * table reaches; the pointers beyond are read only by a grow, which the full check covers. */
  uint32_t chunks_end = full || table->chunk_count >= HANDLE_TABLE_CHUNK_COUNT ? HANDLE_TABLE_CHUNK_COUNT
                                                                             : table->chunk_count + 1;
  for (uint32_t i = 0; i < chunks_end; i++)
    if ((table->chunks[i] != NULL) != (i < table->chunk_count))
      return check_fail(msg, cap, "chunk %" PRIu32 " is %s, chunk_count %" PRIu32, i,
                     table->chunks[i] ? "allocated" : "NULL", table->chunk_count);
  uint32_t capacity = table->chunk_count * HANDLE_TABLE_CHUNK_SLOTS;
  if (table->high_water < 1 || table->high_water > capacity)
    return check_fail(msg, cap, "high water %" PRIu32 " outside [1, %" PRIu32 "]",
                   table->high_water, capacity);
  if (!ht_slot_is_pristine(ht_slot(table, 0)))
    return check_fail(msg, cap, "slot 0 was written (meta 0x%" PRIx32 ")", ht_slot(table, 0)->meta);

  /* Slots at and above high water must be pristine; looking at the first few of them catches a
   * stray write without making the check cost O(capacity) (it runs after every fuzzed call). */
  uint32_t end = table->high_water + (full ? HANDLE_TABLE_CHECK_ABOVE_HIGH_WATER : 1u);
  if (end > capacity) end = capacity;
  uint32_t live = 0, free_slots = 0;
  for (uint32_t index = 1; index < end; index++) {
    const handle_table_slot *slot = ht_slot(table, index);
    if (index >= table->high_water) {
      if (!ht_slot_is_pristine(slot))
        return check_fail(msg, cap, "slot %" PRIu32 " above high water %" PRIu32 " was written",
                       index, table->high_water);
      continue;
    }
    uint32_t state = ht_meta_state(slot->meta);
    if (state > HANDLE_TABLE_STATE_PUBLISHED)
      return check_fail(msg, cap, "slot %" PRIu32 ": meta 0x%" PRIx32 " has a bad state or stray bits",
                     index, slot->meta);
    if (state == HANDLE_TABLE_STATE_FREE) {
      free_slots++;
      if (slot->object != NULL)
        return check_fail(msg, cap, "free slot %" PRIu32 " still holds object %p", index, slot->object);
      if (slot->aux >= table->high_water)
        return check_fail(msg, cap, "free slot %" PRIu32 " links to %" PRIu32 " (high water %" PRIu32 ")",
                       index, slot->aux, table->high_water);
    } else {
      live++;
      if (state == HANDLE_TABLE_STATE_PUBLISHED && slot->object == NULL)
        return check_fail(msg, cap, "published slot %" PRIu32 " holds a NULL object", index);
    }
  }
  if (free_slots != table->free_count)
    return check_fail(msg, cap, "%" PRIu32 " free slots, free_count %" PRIu32, free_slots,
                   table->free_count);
  uint32_t live_count = handle_table_live_count(table);
  if (live != live_count)
    return check_fail(msg, cap, "%" PRIu32 " live slots, live count %" PRIu32, live, live_count);

  /* The list: head and tail are 0 exactly when it is empty; free_count steps from head through
   * free slots end at tail, whose link is 0. A repeated slot would make the walk periodic and
   * it could not end on a 0 link, so the walk visits free_count distinct free slots: with the
   * count above, every free slot exactly once. */
  if ((table->free_count == 0) != (table->free_head == 0) ||
      (table->free_count == 0) != (table->free_tail == 0))
    return check_fail(msg, cap, "free list head %" PRIu32 " tail %" PRIu32 " with free_count %" PRIu32,
                   table->free_head, table->free_tail, table->free_count);
  uint32_t index = table->free_head;
  for (uint32_t step = 1; step <= table->free_count; step++) {
    if (index == 0 || index >= table->high_water)
      return check_fail(msg, cap, "free list ends or leaves the table at step %" PRIu32 " of %" PRIu32
                     " (index %" PRIu32 ")", step, table->free_count, index);
    const handle_table_slot *slot = ht_slot(table, index);
    if (ht_meta_state(slot->meta) != HANDLE_TABLE_STATE_FREE)
      return check_fail(msg, cap, "free list step %" PRIu32 " reaches live slot %" PRIu32, step, index);
    if (step == table->free_count) {
      if (index != table->free_tail || slot->aux != 0)
        return check_fail(msg, cap, "free list ends at %" PRIu32 " (link %" PRIu32 "), tail is %" PRIu32,
                       index, slot->aux, table->free_tail);
    } else if (index == table->free_tail) {
      return check_fail(msg, cap, "free list reaches tail %" PRIu32 " at step %" PRIu32 " of %" PRIu32,
                     index, step, table->free_count);
    }
    index = slot->aux;
  }
  return true;
}

bool handle_table_check(const handle_table *table, char *msg, size_t cap) {
  return ht_check(table, true, msg, cap);
}

bool handle_table_check_live(const handle_table *table, char *msg, size_t cap) {
  return ht_check(table, false, msg, cap);
}
