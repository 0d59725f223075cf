/*
 * handle_table.h — the port's typed, generation-checked 32-bit handle table.
 *
 * DOC: Overview
 * The port names every device, resource and allocation it hands out with a D3DKMT_HANDLE: a
 * 32-bit value that this table turns back into the object. There is one table per object type
 * per adapter. The table owns its slots and nothing else: the objects stored in it belong to the
 * caller, who creates them before inserting and frees them after removing.
 *
 * Handle layout (a handle is never the value 0, because type 0 is never valid):
 *
 *     bit 31..30   type         1 device, 2 resource, 3 allocation (enum handle_type)
 *     bit 29..20   generation   10 bits, the slot's generation when the handle was issued
 *     bit 19..0    index        the slot; index 0 is never used, so a table holds at most
 *                               HANDLE_TABLE_MAX_LIVE = 2^20 - 1 live handles
 *
 * Slots live in fixed chunks of HANDLE_TABLE_CHUNK_SLOTS (1024) slots, reached through an array
 * of HANDLE_TABLE_CHUNK_COUNT chunk pointers embedded in the table and sized for all 2^20
 * indexes. Chunks are allocated on demand and never move or shrink until handle_table_fini(), so
 * a slot's address is stable and a lookup is O(1): one load of the chunk pointer, one of the slot.
 *
 * A slot is free, reserved (inserted with published = false: the object is still being built,
 * handle_table_lookup_locked() rejects it, handle_table_lookup_any_locked() finds it) or
 * published. A handle is accepted only when its type is the table's, its index names a slot
 * that is reserved or published (published for handle_table_lookup_locked()), and its
 * generation equals the slot's. Anything else — a stale handle (generation mismatch), a handle
 * of another type, an index the table never handed out, a free or (for lookup) reserved slot —
 * is rejected: the lookup returns NULL and never reaches another object.
 *
 * DOC: Reuse and the ABA bound
 * Freeing a slot bumps its generation by one (mod 2^10, every value used, none skipped) and
 * appends the slot to a FIFO free list. An insert reuses the oldest free slot only when more
 * than HANDLE_TABLE_REUSE_DELAY (1024) slots wait on the list — that is, when at least 1024
 * slots freed after it are still waiting behind it — and otherwise takes a never-used slot.
 * Hence, for one table:
 *   - a handle value repeats only when its slot has been freed a multiple of 1024 times, so at
 *     least 1024 frees of that slot lie between two equal values;
 *   - each of those reuses waits behind at least 1024 frees of other slots (the ones behind it
 *     on the list), so at least 1024 * 1024 + 1024 = 1,049,600 (~1M) frees, and as many
 *     inserts, happen between two identical values;
 *   - every value in between differs from it, so a stale copy of the handle is rejected during
 *     all that time; only after the bound can it reach the slot's new object.
 * Exception: when the table cannot grow (all 2^20 - 1 indexes have been handed out, or the
 * chunk budget @max_chunks or host memory is exhausted), an insert reuses the oldest free slot
 * however few wait. The bound then falls to 1024 frees of that slot (plus whatever else waits
 * on the list): the generation check alone stands between a stale handle and a new object.
 *
 * DOC: Locking
 * Each table has one pthread mutex, taken with handle_table_lock() and released with
 * handle_table_unlock(). Every *_locked function requires the caller to hold it, so a caller can
 * run a batch of N operations (a whole CreateAllocation list, a rollback) under one lock.
 * This lock is the innermost lock of the port: never call out (into the miniport, a callback,
 * an allocator that may take other port locks, or anything that may take another port lock)
 * while holding it, and never take another lock while holding it. Only
 * handle_table_live_count() needs no lock: it reads an atomic counter, for statistics.
 *
 * DOC: Ownership
 * The table stores object pointers and aux values but never dereferences or frees an object.
 * Removing a handle forgets the object; the caller frees it (after removing the handle, so the
 * value cannot resolve to a half-destroyed object). handle_table_fini() frees the slots only.
 *
 * DOC: Bugs
 * Preconditions written "It is a bug ..." are checked in every build: the call prints
 * "<function>: handle 0x<handle>: <what is wrong>" on stderr and aborts. Lookups never abort:
 * an invalid handle is a normal input there (user mode can pass anything).
 *
 * Glossary: index = slot number (bits 19..0); gen / generation = the slot's reuse counter
 * (bits 29..20); chunk = a fixed block of HANDLE_TABLE_CHUNK_SLOTS slots; live = reserved or
 * published; reserved = inserted but not yet published; high water = one past the highest index
 * ever handed out; aux = a 32-bit caller value stored beside the object; FIFO = first in, first
 * out (the free list).
 */
#ifndef ALLOCLAB_HANDLE_TABLE_H
#define ALLOCLAB_HANDLE_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h"

/* The object type a handle names (bits 31..30). 0 is never a valid type. */
typedef enum handle_type {
  HANDLE_TYPE_DEVICE = 1,
  HANDLE_TYPE_RESOURCE = 2,
  HANDLE_TYPE_ALLOCATION = 3
} handle_type;

#define HANDLE_TABLE_INDEX_BITS 20
#define HANDLE_TABLE_GENERATION_BITS 10
#define HANDLE_TABLE_TYPE_SHIFT (HANDLE_TABLE_INDEX_BITS + HANDLE_TABLE_GENERATION_BITS)
#define HANDLE_TABLE_INDEX_MASK ((1u << HANDLE_TABLE_INDEX_BITS) - 1)
#define HANDLE_TABLE_GENERATION_MASK ((1u << HANDLE_TABLE_GENERATION_BITS) - 1)
/* Live handles per table: indexes 1 .. 2^20 - 1 (index 0 is never used). */
#define HANDLE_TABLE_MAX_LIVE ((1u << HANDLE_TABLE_INDEX_BITS) - 1)
/* A freed slot is reused only when at least this many slots freed after it wait on the list. */
#define HANDLE_TABLE_REUSE_DELAY 1024

#define HANDLE_TABLE_CHUNK_BITS 10
#define HANDLE_TABLE_CHUNK_SLOTS (1u << HANDLE_TABLE_CHUNK_BITS)
#define HANDLE_TABLE_CHUNK_COUNT (1u << (HANDLE_TABLE_INDEX_BITS - HANDLE_TABLE_CHUNK_BITS))

/* handle_table_slot.meta: bits 9..0 generation, bits 11..10 state, every other bit 0. */
#define HANDLE_TABLE_STATE_SHIFT HANDLE_TABLE_GENERATION_BITS
#define HANDLE_TABLE_STATE_FREE 0u      /* on the free list, or never handed out */
#define HANDLE_TABLE_STATE_RESERVED 1u  /* live, not published: only lookup_any finds it */
#define HANDLE_TABLE_STATE_PUBLISHED 2u /* live and visible to lookup */

/*
 * One slot, 16 bytes on LP64. Internal to the table; visible only so that the table can be
 * embedded and its checker tested.
 * @object: the caller's object while live (the table never dereferences it); NULL while free.
 * @aux:    the caller's 32-bit value while live; while free, the index of the next slot on the
 *          free list (0 = end of list).
 * @meta:   generation | state << HANDLE_TABLE_STATE_SHIFT.
 */
typedef struct handle_table_slot {
  void *object;
  uint32_t aux;
  uint32_t meta;
} handle_table_slot;

/*
 * A table. Visible so it can be embedded (it is about 8 KiB: the chunk-pointer array); use it
 * only through the functions below. Every field but @live_count is protected by @mutex.
 * @chunks:      chunks[i] holds indexes [i * 1024, (i + 1) * 1024); chunks[0, chunk_count) are
 *               allocated, the rest are NULL. Slot 0 (chunks[0][0]) stays free and unlisted.
 * @mutex:       the table's lock, the innermost lock of the port.
 * @type:        the type every handle of this table carries.
 * @chunk_count: allocated chunks.
 * @max_chunks:  how many chunks the table may allocate in all (chunk 0 included). init sets it to
 *               HANDLE_TABLE_CHUNK_COUNT; a caller may lower it (under the lock) to cap the
 *               table's host memory, and tests lower it to simulate host memory running out.
 * @high_water:  indexes [1, high_water) have been handed out at least once; higher ones never.
 * @free_head:   oldest freed slot (next to be reused), 0 when the list is empty.
 * @free_tail:   newest freed slot, 0 when the list is empty.
 * @free_count:  slots on the free list.
 * @live_count:  reserved + published slots; written under @mutex, readable without it.
 */
typedef struct handle_table {
  handle_table_slot *chunks[HANDLE_TABLE_CHUNK_COUNT];
  pthread_mutex_t mutex;
  handle_type type;
  uint32_t chunk_count;
  uint32_t max_chunks;
  uint32_t high_water;
  uint32_t free_head;
  uint32_t free_tail;
  uint32_t free_count;
  _Atomic uint32_t live_count;
} handle_table;

/*
 * handle_table_init - make @table an empty table of handles of @type.
 * @table: the storage to initialise (contents ignored).
 * @type:  HANDLE_TYPE_DEVICE, HANDLE_TYPE_RESOURCE or HANDLE_TYPE_ALLOCATION; it is a bug to pass
 *         anything else.
 * Allocates the first chunk and initialises the mutex. No lock needed: nobody else may see
 * @table yet.
 * Returns: STATUS_SUCCESS, or STATUS_NO_MEMORY when host memory (or a mutex) could not be had;
 * then @table holds nothing that needs handle_table_fini().
 */
NTSTATUS handle_table_init(handle_table *table, handle_type type);

/*
 * handle_table_fini - free the table's slots and destroy its mutex.
 * @table: an initialised table; nobody may hold its lock or use it concurrently.
 * Live handles may remain: their objects belong to the caller and are not touched (collect them
 * first with handle_table_next_locked() if they must be freed). Afterwards @table must be
 * initialised again before any other use.
 */
void handle_table_fini(handle_table *table);

/*
 * handle_table_lock - take the table's mutex (the innermost lock of the port).
 * It is a bug to take it again from the thread that holds it (a default mutex: that thread
 * deadlocks), to call out while holding it, or to take another port lock while holding it.
 */
void handle_table_lock(handle_table *table);

/* handle_table_unlock - release the table's mutex; it is a bug not to hold it. */
void handle_table_unlock(handle_table *table);

/*
 * handle_type_of - the type bits of @handle.
 * Returns: the type in bits 31..30, or 0 when those bits are 0 (never a valid handle). Says
 * nothing about whether the handle is live. No lock, no table.
 */
handle_type handle_type_of(uint32_t handle);

/*
 * handle_table_insert_locked - give @object a new handle.
 * @table:      caller holds its lock.
 * @object:     the caller's object (still owned by the caller). May be NULL only when
 *              @published is false (a handle reserved before its object exists); it is a bug to
 *              publish NULL.
 * @aux:        any 32-bit value the caller wants back with the object (e.g. an index in it).
 * @published:  true: lookup finds the handle at once. false: a reserved handle, which
 *              handle_table_lookup_locked() rejects and handle_table_lookup_any_locked() finds,
 *              until handle_table_publish_locked().
 * @out_handle: receives the handle (0 on failure); it is a bug to pass NULL.
 * Takes the oldest free slot when more than HANDLE_TABLE_REUSE_DELAY wait, else a never-used
 * slot (allocating a chunk every 1024), else — when the table cannot grow — the oldest free slot.
 * Returns: STATUS_SUCCESS with *out_handle set; STATUS_NO_MEMORY when no slot is free and the
 * table cannot grow (2^20 - 1 live handles, @max_chunks reached, or host memory exhausted). A
 * failed insert leaves the table unchanged.
 */
NTSTATUS handle_table_insert_locked(handle_table *table, void *object, uint32_t aux,
                                    bool published, uint32_t *out_handle);

/*
 * handle_table_lookup_locked - the object of a live published handle.
 * @table:   caller holds its lock (the object stays registered only while it is held; the
 *           caller's own rules — e.g. a reference taken under the lock — keep it alive after).
 * @handle:  any 32-bit value (user mode may pass garbage).
 * @out_aux: receives the handle's aux value on success; untouched on failure; may be NULL.
 * Returns: the object when @handle has this table's type, names a published slot and carries
 * its current generation; else NULL (wrong type, 0, stale, never handed out, free, reserved).
 * Never aborts. O(1): two dependent loads.
 */
void *handle_table_lookup_locked(const handle_table *table, uint32_t handle, uint32_t *out_aux);

/*
 * handle_table_check_lookup_locked, handle_table_check_next_locked - handle_table_lookup_locked()
 * and handle_table_next_locked(), same contract, for the invariant walks: the same code
 * compiled as check code (check.h AL_CHECK_CODE, not coverage-instrumented under libFuzzer).
 */
void *handle_table_check_lookup_locked(const handle_table *table, uint32_t handle,
                                       uint32_t *out_aux);
bool handle_table_check_next_locked(const handle_table *table, uint32_t *cursor,
                                    uint32_t *out_handle, void **out_object, uint32_t *out_aux);

/*
 * handle_table_lookup_any_locked - like handle_table_lookup_locked(), but also finds reserved
 * handles (for the code that is still building the object, and for teardown).
 * Returns: the object of a live (reserved or published) handle — which may be NULL for a
 * reserved handle inserted with a NULL object — else NULL.
 */
void *handle_table_lookup_any_locked(const handle_table *table, uint32_t handle,
                                     uint32_t *out_aux);

/*
 * handle_table_publish_locked - make a reserved handle visible to handle_table_lookup_locked().
 * @table:  caller holds its lock.
 * @handle: a live reserved handle of this table. It is a bug to pass anything else (published,
 *          stale, free, wrong type), or one whose object is NULL.
 */
void handle_table_publish_locked(handle_table *table, uint32_t handle);

/*
 * handle_table_update_locked - replace the object and aux of a live handle (value unchanged).
 * @table:  caller holds its lock.
 * @handle: a live (reserved or published) handle of this table; it is a bug to pass anything
 *          else, or a NULL @object for a published handle.
 * The old object is forgotten, not freed.
 */
void handle_table_update_locked(handle_table *table, uint32_t handle, void *object,
                                uint32_t aux);

/*
 * handle_table_remove_locked - free a live handle.
 * @table:  caller holds its lock.
 * @handle: a live (reserved or published) handle of this table. It is a bug to pass anything
 *          else: removing twice, a stale or unknown handle, another type.
 * Bumps the slot's generation (so @handle and every copy of it are rejected from now on) and
 * appends the slot to the FIFO free list. The object is forgotten, not freed: the caller frees
 * it, after this call.
 */
void handle_table_remove_locked(handle_table *table, uint32_t handle);

/*
 * handle_table_live_count - live (reserved + published) handles, for statistics.
 * No lock needed (an atomic read): the value may be out of date by the time it is used.
 */
uint32_t handle_table_live_count(const handle_table *table);

/*
 * handle_table_next_locked - iterate over live handles (reserved and published) in index order.
 * @table:      caller holds its lock for the whole iteration, or at least across each call.
 * @cursor:     start with *cursor = 0; the call advances it (it holds the last index returned).
 * @out_handle: receives the next live handle; @out_object and @out_aux its object and aux; each
 *              may be NULL.
 * Removing the handle just returned (or any other) during the iteration is allowed; a handle
 * inserted during the iteration is returned only if its index lies beyond the cursor.
 * Returns: true with the next live handle, false when there is none (outputs untouched).
 * A whole iteration costs O(high water).
 */
bool handle_table_next_locked(const handle_table *table, uint32_t *cursor, uint32_t *out_handle,
                              void **out_object, uint32_t *out_aux);

/*
 * handle_table_check - check every invariant of @table.
 * @table: caller holds its lock, or no other thread uses the table.
 * @msg:   receives a one-line description of the first violation found (may be NULL if @cap is 0).
 * @cap:   size of @msg in bytes.
 * Checks: the type is valid; chunks [0, chunk_count) are allocated and the rest NULL;
 * chunk_count <= max_chunks; 1 <= high_water <= min(2^20, chunk_count * 1024); slot 0 and every
 * the first 64 slots at and above high water are pristine (all zero); every slot's meta holds a generation in
 * range and a valid state and no other bit; free slots hold a NULL object; the free list is well
 * formed: head and tail are 0 exactly when free_count is 0, following the FIFO links from head
 * reaches tail in exactly free_count steps through free, in-range slots and ends there (tail's
 * link is 0), so every free slot is on it exactly once; and the live count matches the slots
 * that are reserved or published. Costs O(high water); allocates nothing.
 * Returns: true if all hold; else false, with the message in @msg.
 */
bool handle_table_check(const handle_table *table, char *msg, size_t cap);

/*
 * handle_table_check_live - handle_table_check() without the parts that only a stray write far
 * from anything the table uses would break: of the chunk pointers it checks the allocated ones
 * and the first NULL one (not the other ~1000), and of the pristine slots above high water only
 * the one at high water (not 64). Everything else is checked as there. Costs O(high water)
 * with a small constant, so it suits a check after every call (the fuzz executor's), with
 * handle_table_check() at the end. Same arguments and result as handle_table_check().
 */
bool handle_table_check_live(const handle_table *table, char *msg, size_t cap);

#endif /* ALLOCLAB_HANDLE_TABLE_H */
