/*
 * damage.c — the port's damage kinds: the test of al_adapter_check() (alloclab/damage.h,
 * alloclab/testing.h DOC: Damage).
 *
 * Each kind names one failure branch (one check_fail) of the walk: handle_table_check (ht_check
 * in handle_table.c), adapter_check and check_resource (adapter.c), segment_heap_check (sh_check
 * in segment_heap.c, which the walk runs on every segment). Why: no sound state reaches these
 * branches, so without damage neither the fuzzers nor coverage ever show that they fire.
 * A kind finds its pick-th target in a deterministic order (handle-table index order, then list
 * order), changes one field to a value that breaks exactly the invariant that branch guards, runs
 * al_adapter_check() and writes the saved bytes back. The walk stops at its first failure, so
 * every damaged value is chosen to pass every check the walk makes before the intended one (the
 * comments say how).
 *
 * The groups:
 *  - handle tables (3 tables: devices, resources, allocations): every branch of ht_check, since
 *    a corrupt table makes every lookup wrong, and its branches are reached by no sound state.
 *  - resources (resource-table order) and their opens (holder-list order): the record/holder
 *    shape check_resource relies on (count within capacity, someone holds it, sharing flags).
 *  - allocations (allocation-table order; in resources and pools): what one record must agree
 *    on with the allocation handle table, the miniport and its segment's block.
 *  - devices and their opens (device-table order, open-list order): the device's handle, its
 *    open list's links and the resources' holder lists naming each open, its pool.
 *  - segment heaps (segment order): the header of each segment's heap (its accounting, its TLSF
 *    bitmaps, its node pool's counts), which segment_heap_check walks for the adapter.
 *  - totals and cross-layer counts: the adapter's binding counter, the deferred teardowns' blocks
 *    in the segments' byte accounting, the verifier's view of the DDI.
 *
 * Not reachable by damage (so no kind):
 *  - "adapter is NULL": the argument, not state.
 *  - "the miniport holds ... the port ...": every port count it compares is checked against the
 *    verifier's first, so only the miniport's own counters could break it, and they are the
 *    miniport's private state (the sim's own damage kinds, alloclab/hw/sim_miniport.h, are
 *    judged by sim_miniport_check_hardware instead).
 *  - segment_heap_check's branches about nodes (the physical chain, the TLSF lists' links, the
 *    pool's free list): the nodes are the heap's private structure (segment_heap_test's
 *    corruption test reaches them); the heap's header fields are damaged here. Nor its stray
 *    first-level bit (above every class): the walk reads the heap's stats after a failed check,
 *    and they follow the highest bit into an empty class and crash.
 *  - dangling pointers (an open whose resource is freed, a chunk pointer into nothing): the walk
 *    itself would crash; it follows pointers it trusts.
 *
 * Locking: the adapter is quiescent (the precondition). Targets are looked up as the walk looks
 * them up (the handle-table lock per step), the chosen one is inspected under its own lock, the
 * field is written and restored under the lock that guards it, and no lock is held while the
 * walk runs (it takes them itself). Nothing is allocated.
 */
#include "alloclab/damage.h"

#include <stdint.h>
#include <string.h>

#include "check.h"
#include "port.h"
#include "verifier.h"

/* What a kind's pick counts among. */
typedef enum damage_scope {
  SCOPE_TABLE,         /* the three handle tables: devices, resources, allocations */
  SCOPE_RESOURCE,      /* live resources, in resource-table order */
  SCOPE_RESOURCE_OPEN, /* opens of live resources: resource order, then holder-list order */
  SCOPE_ALLOCATION,    /* live allocations (resources and pools), in allocation-table order */
  SCOPE_DEVICE,        /* live devices, in device-table order */
  SCOPE_DEVICE_OPEN,   /* opens of live devices (pools' too): device order, then list order */
  SCOPE_SEGMENT,       /* the segments, in id order */
  SCOPE_TEARDOWN,      /* deferred teardowns, in insertion order */
  SCOPE_ADAPTER,       /* the adapter itself (one target) */
} damage_scope;

typedef struct damage_target {
  handle_table *table;
  port_resource *resource;
  uint32_t index; /* SCOPE_ALLOCATION: the record */
  port_device *device;
  port_open *open;
  port_teardown *teardown;
  port_segment *segment;
} damage_target;

/* One field to damage: its address and size, the damaged bytes, and the lock that guards it
 * (a handle table's, a port mutex, or none for an atomic counter). With @heap set, the field is
 * the owner tag of block @block of @heap instead (reached through segment_heap_set_owner). */
typedef struct damage_patch {
  handle_table *table;
  pthread_mutex_t *mutex;
  void *field;
  size_t size;
  unsigned char value[sizeof(uint64_t)];
  segment_heap *heap;
  uint32_t block, owner;
} damage_patch;

/* Points @patch at @lvalue with the damaged value @new_value (the field's own type). */
#define DAMAGE_SET(patch, lvalue, new_value)                                              \
  do {                                                                                    \
    __typeof__(lvalue) damage_value_ = (new_value);                                       \
    _Static_assert(sizeof damage_value_ <= sizeof(patch)->value, "field fits the patch"); \
    (patch)->field = (void *)&(lvalue);                                                   \
    (patch)->size = sizeof damage_value_;                                                 \
    memcpy((patch)->value, &damage_value_, sizeof damage_value_);                         \
  } while (0)

/* A kind's filter: whether @target has what the kind damages (called under the target's lock). */
typedef bool (*damage_filter)(al_adapter *adapter, const damage_target *target);
/* A kind's damage: fills @patch for @target (called under the target's lock, after the filter). */
typedef void (*damage_make)(al_adapter *adapter, const damage_target *target, damage_patch *patch);

typedef struct damage_kind {
  al_damage_kind_info info;
  damage_scope scope;
  damage_filter filter; /* NULL: every target of the scope */
  damage_make make;
} damage_kind;

/* A generation bit of a handle: flipping it gives a value of the same type and index that no
 * live handle has (the slot carries the other generation). */
#define DAMAGE_GENERATION_BIT (1u << HANDLE_TABLE_INDEX_BITS)

/* ---- Handle tables --------------------------------------------------------------------------- */

AL_CHECK_CODE static handle_table_slot *table_slot(handle_table *table, uint32_t index) {
  return &table->chunks[index / HANDLE_TABLE_CHUNK_SLOTS][index % HANDLE_TABLE_CHUNK_SLOTS];
}

AL_CHECK_CODE static uint32_t table_slot_state(handle_table *table, uint32_t index) {
  return table_slot(table, index)->meta >> HANDLE_TABLE_STATE_SHIFT;
}

/* The first slot below high water in @state, 0 when none. */
AL_CHECK_CODE static uint32_t table_first_in_state(handle_table *table, uint32_t state) {
  for (uint32_t index = 1; index < table->high_water; index++)
    if (table_slot_state(table, index) == state) return index;
  return 0;
}

AL_CHECK_CODE static uint32_t table_capacity(const handle_table *table) {
  return table->chunk_count * HANDLE_TABLE_CHUNK_SLOTS;
}

AL_CHECK_CODE static void table_lock_patch(const damage_target *t, damage_patch *p) {
  p->table = t->table;
}

AL_CHECK_CODE static void make_table_type_invalid(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->type, (handle_type)0);
}

/* chunk_count itself stays right (the chunk pointers agree with it); the budget falls below it. */
AL_CHECK_CODE static void make_table_chunk_count_above_max(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->max_chunks, t->table->chunk_count - 1);
}

AL_CHECK_CODE static bool table_can_grow(al_adapter *a, const damage_target *t) {
  (void)a;
  return t->table->chunk_count < HANDLE_TABLE_CHUNK_COUNT;
}

/* A chunk pointer past chunk_count set to a real chunk: nothing below high water reads it. */
AL_CHECK_CODE static void make_table_chunk_beyond_count(al_adapter *a, const damage_target *t,
                                                        damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->chunks[t->table->chunk_count], t->table->chunks[0]);
}

AL_CHECK_CODE static void make_table_high_water_above_capacity(al_adapter *a, const damage_target *t,
                                                               damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->high_water, table_capacity(t->table) + 1);
}

AL_CHECK_CODE static void make_table_slot_zero_written(al_adapter *a, const damage_target *t,
                                                       damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, table_slot(t->table, 0)->meta, 1u);
}

AL_CHECK_CODE static bool table_has_room_above_high_water(al_adapter *a, const damage_target *t) {
  (void)a;
  return t->table->high_water < table_capacity(t->table);
}

/* The never-used slot at high water gets an aux value (as if a grow wrote it and was lost). */
AL_CHECK_CODE static void make_table_slot_above_high_water(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, table_slot(t->table, t->table->high_water)->aux, 1u);
}

AL_CHECK_CODE static bool table_has_slots(al_adapter *a, const damage_target *t) {
  (void)a;
  return t->table->high_water > 1;
}

/* State bits 3: above PUBLISHED, whatever the slot's state was. */
AL_CHECK_CODE static void make_table_slot_state_invalid(al_adapter *a, const damage_target *t,
                                                        damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  handle_table_slot *slot = table_slot(t->table, 1);
  DAMAGE_SET(p, slot->meta, slot->meta | 3u << HANDLE_TABLE_STATE_SHIFT);
}

AL_CHECK_CODE static bool table_has_free_slots(al_adapter *a, const damage_target *t) {
  (void)a;
  return t->table->free_count > 0 && t->table->free_head != 0;
}

AL_CHECK_CODE static void make_table_free_slot_holds_object(al_adapter *a, const damage_target *t,
                                                            damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, table_slot(t->table, t->table->free_head)->object, (void *)t->table);
}

AL_CHECK_CODE static void make_table_free_slot_link_out_of_range(al_adapter *a, const damage_target *t,
                                                                 damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, table_slot(t->table, t->table->free_head)->aux, t->table->high_water);
}

AL_CHECK_CODE static bool table_has_published_slot(al_adapter *a, const damage_target *t) {
  (void)a;
  return table_first_in_state(t->table, HANDLE_TABLE_STATE_PUBLISHED) != 0;
}

AL_CHECK_CODE static void make_table_published_null(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  uint32_t index = table_first_in_state(t->table, HANDLE_TABLE_STATE_PUBLISHED);
  DAMAGE_SET(p, table_slot(t->table, index)->object, NULL);
}

AL_CHECK_CODE static void make_table_free_count_off_by_one(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->free_count, t->table->free_count + 1);
}

AL_CHECK_CODE static void make_table_live_count_off_by_one(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->live_count, handle_table_live_count(t->table) + 1);
}

/* An empty list gets a tail, a non-empty one loses it: either way the tail disagrees. */
AL_CHECK_CODE static void make_table_free_tail_disagrees(al_adapter *a, const damage_target *t,
                                                         damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->free_tail, t->table->free_count ? 0u : 1u);
}

AL_CHECK_CODE static void make_table_free_head_beyond_high_water(al_adapter *a, const damage_target *t,
                                                                 damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->free_head, t->table->high_water);
}

AL_CHECK_CODE static bool table_has_free_and_live_slots(al_adapter *a, const damage_target *t) {
  return table_has_free_slots(a, t) && (table_first_in_state(t->table, HANDLE_TABLE_STATE_PUBLISHED) ||
                                        table_first_in_state(t->table, HANDLE_TABLE_STATE_RESERVED));
}

AL_CHECK_CODE static void make_table_free_list_reaches_live(al_adapter *a, const damage_target *t,
                                                            damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  uint32_t live = table_first_in_state(t->table, HANDLE_TABLE_STATE_PUBLISHED);
  if (live == 0) live = table_first_in_state(t->table, HANDLE_TABLE_STATE_RESERVED);
  DAMAGE_SET(p, t->table->free_head, live);
}

/* The tail links on (to the head: in range, so the per-slot check passes). */
AL_CHECK_CODE static void make_table_free_tail_links_on(al_adapter *a, const damage_target *t,
                                                        damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, table_slot(t->table, t->table->free_tail)->aux, t->table->free_head);
}

AL_CHECK_CODE static bool table_has_two_free_slots(al_adapter *a, const damage_target *t) {
  return table_has_free_slots(a, t) && t->table->free_count >= 2;
}

AL_CHECK_CODE static void make_table_free_tail_not_last(al_adapter *a, const damage_target *t,
                                                        damage_patch *p) {
  (void)a;
  table_lock_patch(t, p);
  DAMAGE_SET(p, t->table->free_tail, t->table->free_head);
}

/* ---- Resources and their opens -------------------------------------------------------------- */

AL_CHECK_CODE static void make_resource_handle_mismatch(al_adapter *a, const damage_target *t,
                                                        damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->resource->handle, t->resource->handle ^ DAMAGE_GENERATION_BIT);
}

AL_CHECK_CODE static void make_resource_dead(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->resource->flags, t->resource->flags | RESOURCE_DEAD);
}

/* The walk returns before it reads a record, so count may point past the arrays. */
AL_CHECK_CODE static void make_resource_count_above_capacity(al_adapter *a, const damage_target *t,
                                                             damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->resource->count, t->resource->capacity + 1);
}

AL_CHECK_CODE static void make_resource_without_holders(al_adapter *a, const damage_target *t,
                                                        damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->resource->holders, NULL);
}

AL_CHECK_CODE static bool resource_has_records(al_adapter *a, const damage_target *t) {
  (void)a;
  return t->resource->count > 0;
}

/* One record fewer: each record and binding left is sound; only the totals disagree, and the
 * record total is compared first. */
AL_CHECK_CODE static void make_resource_count_below_records(al_adapter *a, const damage_target *t,
                                                            damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->resource->count, t->resource->count - 1);
}

AL_CHECK_CODE static uint32_t resource_holder_count(const port_resource *resource) {
  uint32_t holders = 0;
  for (const port_open *open = resource->holders; open; open = open->next_holder) holders++;
  return holders;
}

AL_CHECK_CODE static bool resource_has_two_holders(al_adapter *a, const damage_target *t) {
  (void)a;
  return resource_holder_count(t->resource) >= 2;
}

AL_CHECK_CODE static void make_resource_not_sealed(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->resource->flags, t->resource->flags & ~(uint32_t)RESOURCE_SEALED);
}

AL_CHECK_CODE static void make_resource_not_shared(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->resource->flags, t->resource->flags & ~(uint32_t)RESOURCE_SHARED);
}

/* One past the resource: a pointer that is not the resource and that the walk, which stops at
 * this check, never follows. */
AL_CHECK_CODE static void make_open_names_another_resource(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->open->resource, t->resource + 1);
}

AL_CHECK_CODE static void make_open_bindings_below_count(al_adapter *a, const damage_target *t,
                                                         damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->open->capacity, t->resource->count - 1);
}

AL_CHECK_CODE static void make_open_binding_null(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->open->bindings[0], NULL);
}

/* ---- Allocations ---------------------------------------------------------------------------- */

AL_CHECK_CODE static port_allocation *target_record(const damage_target *t) {
  return &t->resource->records[t->index];
}

AL_CHECK_CODE static void make_allocation_handle_stale(al_adapter *a, const damage_target *t,
                                                       damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, target_record(t)->handle, target_record(t)->handle ^ DAMAGE_GENERATION_BIT);
}

AL_CHECK_CODE static void make_allocation_without_miniport_handle(al_adapter *a, const damage_target *t,
                                                                  damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, t->resource->miniport_allocations[t->index], NULL);
}

AL_CHECK_CODE static bool allocation_in_system_memory(al_adapter *a, const damage_target *t) {
  (void)a;
  return target_record(t)->segment_index == PORT_SYSTEM_MEMORY;
}

AL_CHECK_CODE static void make_allocation_system_memory_block(al_adapter *a, const damage_target *t,
                                                              damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, target_record(t)->block, 0u);
}

AL_CHECK_CODE static bool allocation_in_segment(al_adapter *a, const damage_target *t) {
  return !allocation_in_system_memory(a, t);
}

AL_CHECK_CODE static void make_allocation_segment_out_of_range(al_adapter *a, const damage_target *t,
                                                               damage_patch *p) {
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, target_record(t)->segment_index, a->segment_count);
}

/* The record stays; its block is tagged with another handle value (the handle's other
 * generation), in the segment heap. */
AL_CHECK_CODE static void make_allocation_block_tag_mismatch(al_adapter *a, const damage_target *t,
                                                             damage_patch *p) {
  const port_allocation *record = target_record(t);
  port_segment *segment = &a->segments[record->segment_index];
  p->mutex = &segment->lock;
  p->heap = &segment->heap;
  p->block = record->block;
  p->owner = record->handle ^ DAMAGE_GENERATION_BIT;
}

AL_CHECK_CODE static void make_allocation_fence_above_resource(al_adapter *a, const damage_target *t,
                                                               damage_patch *p) {
  (void)a;
  p->mutex = &t->resource->lock;
  DAMAGE_SET(p, target_record(t)->last_fence, t->resource->last_fence + 1);
}

/* ---- Devices and their opens ---------------------------------------------------------------- */

AL_CHECK_CODE static void make_device_handle_mismatch(al_adapter *a, const damage_target *t,
                                                      damage_patch *p) {
  (void)a;
  p->mutex = &t->device->lock;
  DAMAGE_SET(p, t->device->handle, t->device->handle ^ DAMAGE_GENERATION_BIT);
}

AL_CHECK_CODE static void make_device_dying(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  p->mutex = &t->device->lock;
  DAMAGE_SET(p, t->device->dying, true);
}

/* Resources are walked first and read open->device only for messages. */
AL_CHECK_CODE static void make_device_open_names_other_device(al_adapter *a, const damage_target *t,
                                                              damage_patch *p) {
  (void)a;
  p->mutex = &t->device->lock;
  DAMAGE_SET(p, t->open->device, t->open->device ^ DAMAGE_GENERATION_BIT);
}

AL_CHECK_CODE static bool device_open_has_next(al_adapter *a, const damage_target *t) {
  (void)a;
  return t->open->next_in_device != NULL;
}

AL_CHECK_CODE static void make_device_open_back_link(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  p->mutex = &t->device->lock;
  DAMAGE_SET(p, t->open->next_in_device->prev_in_device, NULL);
}

AL_CHECK_CODE static bool device_open_resource_has_two_holders(al_adapter *a, const damage_target *t) {
  (void)a;
  port_lock(&t->open->resource->lock); /* device lock -> resource lock: the port's order */
  bool two = resource_holder_count(t->open->resource) >= 2;
  port_unlock(&t->open->resource->lock);
  return two;
}

/* The resource's holder list skips this open (the link before it points past it). One holder
 * is left, so the resource itself still checks out; the device's open finds itself unlisted. */
AL_CHECK_CODE static void make_device_open_unlisted(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  port_resource *resource = t->open->resource;
  port_lock(&resource->lock);
  port_open **link = &resource->holders;
  while (*link != t->open) link = &(*link)->next_holder;
  p->mutex = &resource->lock;
  DAMAGE_SET(p, *link, t->open->next_holder);
  port_unlock(&resource->lock);
}

AL_CHECK_CODE static bool device_has_pool(al_adapter *a, const damage_target *t) {
  (void)a;
  return t->device->pool != NULL;
}

AL_CHECK_CODE static void make_device_pool_not_pool(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  port_resource *pool = t->device->pool;
  p->mutex = &pool->lock;
  DAMAGE_SET(p, pool->flags, pool->flags & ~(uint32_t)RESOURCE_POOL);
}

/* ---- Segment heaps ---------------------------------------------------------------------------- */

/* The heap's own fields (its header: the node pool and the TLSF index stay as they are), so
 * every block the records name stays live and the record checks before pass. */
AL_CHECK_CODE static segment_heap *target_heap(const damage_target *t, damage_patch *p) {
  p->mutex = &t->segment->lock;
  return &t->segment->heap;
}

AL_CHECK_CODE static void make_heap_not_initialized(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->pages, 0u);
}

AL_CHECK_CODE static void make_heap_pool_above_max(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->node_max, heap->node_capacity - 1);
}

/* One page more than the chain covers: every block still ends inside the segment. */
AL_CHECK_CODE static void make_heap_pages_beyond_chain(al_adapter *a, const damage_target *t,
                                                       damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->pages, heap->pages + 1);
}

AL_CHECK_CODE static void make_heap_used_pages_off_by_one(al_adapter *a, const damage_target *t,
                                                          damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->used_pages, heap->used_pages + 1);
}

AL_CHECK_CODE static void make_heap_free_pages_off_by_one(al_adapter *a, const damage_target *t,
                                                          damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->free_pages, heap->free_pages + 1);
}

AL_CHECK_CODE static void make_heap_live_blocks_off_by_one(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->live_blocks, heap->live_blocks + 1);
}

AL_CHECK_CODE static void make_heap_free_ranges_off_by_one(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->free_ranges, heap->free_ranges + 1);
}

/* The first first-level class below the highest one in use that has no free block;
 * SEGMENT_HEAP_FL_COUNT when there is none. Below the highest: the walk reads the heap's stats
 * (segment_heap_get_stats) after its check even when the check failed, and they follow the
 * highest first-level bit to its lists; a bit above every real one would send them into an
 * empty class (its second-level word 0) and crash the walk. */
AL_CHECK_CODE static uint32_t heap_empty_class(const segment_heap *heap) {
  if (heap->fl_bitmap == 0) return SEGMENT_HEAP_FL_COUNT;
  uint32_t top = 31u - (uint32_t)__builtin_clz(heap->fl_bitmap);
  for (uint32_t fl = 0; fl < top; fl++)
    if (heap->sl_bitmap[fl] == 0) return fl;
  return SEGMENT_HEAP_FL_COUNT;
}

AL_CHECK_CODE static bool heap_has_empty_class(al_adapter *a, const damage_target *t) {
  (void)a;
  return heap_empty_class(&t->segment->heap) < SEGMENT_HEAP_FL_COUNT;
}

/* Its first-level bit says it has free blocks; its second-level word says none. */
AL_CHECK_CODE static void make_heap_first_level_bit_without_lists(al_adapter *a, const damage_target *t,
                                                                  damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->fl_bitmap, heap->fl_bitmap | 1u << heap_empty_class(heap));
}

/* A class with free blocks (first-level bit set) and an empty list in it: its bit is the damage.
 * Sets *out_fl, *out_sl. */
AL_CHECK_CODE static bool heap_find_empty_list(const segment_heap *heap, uint32_t *out_fl, uint32_t *out_sl) {
  for (uint32_t fl = 0; fl < SEGMENT_HEAP_FL_COUNT; fl++) {
    if (heap->sl_bitmap[fl] == 0) continue;
    for (uint32_t sl = 0; sl < SEGMENT_HEAP_SL_COUNT; sl++) {
      if (heap->sl_bitmap[fl] >> sl & 1u) continue;
      *out_fl = fl;
      *out_sl = sl;
      return true;
    }
  }
  return false;
}

AL_CHECK_CODE static bool heap_has_empty_list_in_used_class(al_adapter *a, const damage_target *t) {
  (void)a;
  uint32_t fl, sl;
  return heap_find_empty_list(&t->segment->heap, &fl, &sl);
}

AL_CHECK_CODE static void make_heap_list_bit_without_head(al_adapter *a, const damage_target *t,
                                                          damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  uint32_t fl = 0, sl = 0;
  heap_find_empty_list(heap, &fl, &sl);
  DAMAGE_SET(p, heap->sl_bitmap[fl], heap->sl_bitmap[fl] | 1u << sl);
}

AL_CHECK_CODE static void make_heap_unused_count_off_by_one(al_adapter *a, const damage_target *t,
                                                            damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->unused_count, heap->unused_count + 1);
}

AL_CHECK_CODE static bool heap_has_spare_node(al_adapter *a, const damage_target *t) {
  (void)a;
  return t->segment->heap.node_count < t->segment->heap.node_capacity;
}

/* One more node handed out than blocks and unused nodes account for: nothing reads it. */
AL_CHECK_CODE static void make_heap_node_leaked(al_adapter *a, const damage_target *t, damage_patch *p) {
  (void)a;
  segment_heap *heap = target_heap(t, p);
  DAMAGE_SET(p, heap->node_count, heap->node_count + 1);
}

/* ---- Totals and the other layers ------------------------------------------------------------ */

/* The binding and verifier totals are compared only while no teardown is deferred. */
AL_CHECK_CODE static bool adapter_has_no_deferred(al_adapter *a, const damage_target *t) {
  (void)t;
  return atomic_load(&a->deferred_count) == 0;
}

AL_CHECK_CODE static void make_adapter_bindings_off_by_one(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)t;
  DAMAGE_SET(p, a->bindings, atomic_load(&a->bindings) + 1);
}

AL_CHECK_CODE static bool teardown_holds_blocks(al_adapter *a, const damage_target *t) {
  (void)a;
  for (uint32_t i = 0; t->teardown->destroy && i < t->teardown->destroy_count; i++)
    if (t->teardown->records[i].segment_index != PORT_SYSTEM_MEMORY) return true;
  return false;
}

/* Its blocks stay allocated in the heaps but the walk no longer counts them. */
AL_CHECK_CODE static void make_teardown_blocks_uncounted(al_adapter *a, const damage_target *t,
                                                         damage_patch *p) {
  p->mutex = &a->deferred_lock;
  DAMAGE_SET(p, t->teardown->destroy, false);
}

AL_CHECK_CODE static bool adapter_has_verifier_and_no_deferred(al_adapter *a, const damage_target *t) {
  return a->verifier != NULL && adapter_has_no_deferred(a, t);
}

AL_CHECK_CODE static void make_verifier_devices_off_by_one(al_adapter *a, const damage_target *t,
                                                           damage_patch *p) {
  (void)t;
  size_t *devices = verifier_damage_device_count(a->verifier, &p->mutex);
  DAMAGE_SET(p, *devices, *devices + 1);
}

/* ---- The kinds ------------------------------------------------------------------------------ */

#define TABLE "handle table"
#define RESOURCE "live resource"
#define RESOURCE_OPEN "open of a live resource"
#define ALLOCATION "live allocation"
#define DEVICE "live device"
#define DEVICE_OPEN "open of a live device"
#define SEGMENT "segment"

static const damage_kind damage_kinds[] = {
    /* handle tables (ht_check), in its order */
    {{"handle_table_type_invalid", TABLE, "invalid type"}, SCOPE_TABLE, NULL, make_table_type_invalid},
    {{"handle_table_chunk_count_above_max_chunks", TABLE, "out of range (max_chunks"},
     SCOPE_TABLE,
     NULL,
     make_table_chunk_count_above_max},
    {{"handle_table_chunk_beyond_count_allocated", TABLE, "is allocated, chunk_count"},
     SCOPE_TABLE,
     table_can_grow,
     make_table_chunk_beyond_count},
    {{"handle_table_high_water_above_capacity", TABLE, "outside [1,"},
     SCOPE_TABLE,
     NULL,
     make_table_high_water_above_capacity},
    {{"handle_table_slot_zero_written", TABLE, "slot 0 was written"},
     SCOPE_TABLE,
     NULL,
     make_table_slot_zero_written},
    {{"handle_table_slot_above_high_water_written", TABLE, "above high water"},
     SCOPE_TABLE,
     table_has_room_above_high_water,
     make_table_slot_above_high_water},
    {{"handle_table_slot_state_invalid", TABLE, "bad state or stray bits"},
     SCOPE_TABLE,
     table_has_slots,
     make_table_slot_state_invalid},
    {{"handle_table_free_slot_holds_object", TABLE, "still holds object"},
     SCOPE_TABLE,
     table_has_free_slots,
     make_table_free_slot_holds_object},
    {{"handle_table_free_slot_link_out_of_range", TABLE, "links to"},
     SCOPE_TABLE,
     table_has_free_slots,
     make_table_free_slot_link_out_of_range},
    {{"handle_table_published_slot_null_object", TABLE, "holds a NULL object"},
     SCOPE_TABLE,
     table_has_published_slot,
     make_table_published_null},
    {{"handle_table_free_count_off_by_one", TABLE, "free slots, free_count"},
     SCOPE_TABLE,
     NULL,
     make_table_free_count_off_by_one},
    {{"handle_table_live_count_off_by_one", TABLE, "live slots, live count"},
     SCOPE_TABLE,
     NULL,
     make_table_live_count_off_by_one},
    {{"handle_table_free_tail_disagrees_with_count", TABLE, "free list head"},
     SCOPE_TABLE,
     NULL,
     make_table_free_tail_disagrees},
    {{"handle_table_free_head_beyond_high_water", TABLE, "leaves the table"},
     SCOPE_TABLE,
     table_has_free_slots,
     make_table_free_head_beyond_high_water},
    {{"handle_table_free_list_reaches_live_slot", TABLE, "reaches live slot"},
     SCOPE_TABLE,
     table_has_free_and_live_slots,
     make_table_free_list_reaches_live},
    {{"handle_table_free_tail_links_on", TABLE, "free list ends at"},
     SCOPE_TABLE,
     table_has_free_slots,
     make_table_free_tail_links_on},
    {{"handle_table_free_tail_not_last", TABLE, "free list reaches tail"},
     SCOPE_TABLE,
     table_has_two_free_slots,
     make_table_free_tail_not_last},
    /* resources (adapter_check, check_resource) */
    {{"resource_handle_mismatch", RESOURCE, "names an object whose handle is"},
     SCOPE_RESOURCE,
     NULL,
     make_resource_handle_mismatch},
    {{"resource_dead_but_handle_live", RESOURCE, "is dead but its handle is live"},
     SCOPE_RESOURCE,
     NULL,
     make_resource_dead},
    {{"resource_count_above_capacity", RESOURCE, "above capacity"},
     SCOPE_RESOURCE,
     NULL,
     make_resource_count_above_capacity},
    {{"resource_without_holders", RESOURCE, "no device holds it"},
     SCOPE_RESOURCE,
     NULL,
     make_resource_without_holders},
    {{"resource_count_below_live_records", RESOURCE, "allocation records but"},
     SCOPE_RESOURCE,
     resource_has_records,
     make_resource_count_below_records},
    {{"shared_resource_not_sealed", "resource held by two devices", "but not sealed"},
     SCOPE_RESOURCE,
     resource_has_two_holders,
     make_resource_not_sealed},
    {{"shared_resource_not_shared", "resource held by two devices", "but not shared"},
     SCOPE_RESOURCE,
     resource_has_two_holders,
     make_resource_not_shared},
    {{"resource_open_names_another_resource", RESOURCE_OPEN, "points at another resource"},
     SCOPE_RESOURCE_OPEN,
     NULL,
     make_open_names_another_resource},
    {{"resource_open_bindings_below_count", RESOURCE_OPEN, "bindings for"},
     SCOPE_RESOURCE_OPEN,
     resource_has_records,
     make_open_bindings_below_count},
    {{"resource_open_binding_null", RESOURCE_OPEN, ": binding "},
     SCOPE_RESOURCE_OPEN,
     resource_has_records,
     make_open_binding_null},
    /* allocations (check_resource's record loop) */
    {{"allocation_record_handle_stale", ALLOCATION, "its handle names object"},
     SCOPE_ALLOCATION,
     NULL,
     make_allocation_handle_stale},
    {{"allocation_without_miniport_handle", ALLOCATION, "has no miniport hAllocation"},
     SCOPE_ALLOCATION,
     NULL,
     make_allocation_without_miniport_handle},
    {{"allocation_in_system_memory_holds_block", "allocation in system memory",
      "is in system memory but holds block"},
     SCOPE_ALLOCATION,
     allocation_in_system_memory,
     make_allocation_system_memory_block},
    {{"allocation_segment_index_out_of_range", "allocation in a segment", "segment index"},
     SCOPE_ALLOCATION,
     allocation_in_segment,
     make_allocation_segment_out_of_range},
    {{"allocation_block_tagged_with_another_handle", "allocation in a segment", "its block in segment"},
     SCOPE_ALLOCATION,
     allocation_in_segment,
     make_allocation_block_tag_mismatch},
    {{"allocation_fence_above_resource_fence", "allocation in a segment", "above its resource's"},
     SCOPE_ALLOCATION,
     allocation_in_segment,
     make_allocation_fence_above_resource},
    /* devices, their opens and pools (adapter_check) */
    {{"device_handle_mismatch", DEVICE, "names object with handle"},
     SCOPE_DEVICE,
     NULL,
     make_device_handle_mismatch},
    {{"device_marked_dying", DEVICE, "(dying 1)"}, SCOPE_DEVICE, NULL, make_device_dying},
    {{"device_open_names_another_device", DEVICE_OPEN, "lists an open of device"},
     SCOPE_DEVICE_OPEN,
     NULL,
     make_device_open_names_other_device},
    {{"device_open_list_back_link", "open of a device with a next open", "open list links broken"},
     SCOPE_DEVICE_OPEN,
     device_open_has_next,
     make_device_open_back_link},
    {{"device_open_missing_from_resource_holders", "open of a resource held by two devices",
      "which does not list it"},
     SCOPE_DEVICE_OPEN,
     device_open_resource_has_two_holders,
     make_device_open_unlisted},
    {{"device_pool_not_marked_pool", "device with a pool", "its pool is not its own"},
     SCOPE_DEVICE,
     device_has_pool,
     make_device_pool_not_pool},
    /* segment heaps (segment_heap_check, run by the walk on every segment) */
    {{"segment_heap_not_initialized", SEGMENT, "heap: not initialized"},
     SCOPE_SEGMENT,
     NULL,
     make_heap_not_initialized},
    {{"segment_heap_node_capacity_above_max", SEGMENT, "chunks inconsistent"},
     SCOPE_SEGMENT,
     NULL,
     make_heap_pool_above_max},
    {{"segment_heap_pages_beyond_chain", SEGMENT, "the chain ends at page"},
     SCOPE_SEGMENT,
     NULL,
     make_heap_pages_beyond_chain},
    {{"segment_heap_used_pages_off_by_one", SEGMENT, "accounting: used_pages"},
     SCOPE_SEGMENT,
     NULL,
     make_heap_used_pages_off_by_one},
    {{"segment_heap_free_pages_off_by_one", SEGMENT, "accounting: free_pages"},
     SCOPE_SEGMENT,
     NULL,
     make_heap_free_pages_off_by_one},
    {{"segment_heap_live_blocks_off_by_one", SEGMENT, "accounting: live_blocks"},
     SCOPE_SEGMENT,
     NULL,
     make_heap_live_blocks_off_by_one},
    {{"segment_heap_free_ranges_off_by_one", SEGMENT, "accounting: free_ranges"},
     SCOPE_SEGMENT,
     NULL,
     make_heap_free_ranges_off_by_one},
    {{"segment_heap_first_level_bit_without_lists", "segment with an empty size class below a used one",
      "but second-level word"},
     SCOPE_SEGMENT,
     heap_has_empty_class,
     make_heap_first_level_bit_without_lists},
    {{"segment_heap_list_bit_without_head", "segment with an empty list in a used class",
      "(stray or missing bit)"},
     SCOPE_SEGMENT,
     heap_has_empty_list_in_used_class,
     make_heap_list_bit_without_head},
    {{"segment_heap_unused_count_off_by_one", SEGMENT, "unused_count"},
     SCOPE_SEGMENT,
     NULL,
     make_heap_unused_count_off_by_one},
    {{"segment_heap_node_leaked", "segment with a spare pool node", "a node leaked"},
     SCOPE_SEGMENT,
     heap_has_spare_node,
     make_heap_node_leaked},
    /* totals and the other layers */
    {{"adapter_bindings_count_off_by_one", "adapter with no deferred teardown", "bindings in opens but"},
     SCOPE_ADAPTER,
     adapter_has_no_deferred,
     make_adapter_bindings_off_by_one},
    {{"deferred_teardown_blocks_uncounted", "deferred teardown holding segment blocks", "heap says"},
     SCOPE_TEARDOWN,
     teardown_holds_blocks,
     make_teardown_blocks_uncounted},
    {{"verifier_device_count_off_by_one", "adapter with the verifier and no deferred teardown",
      "the DDI saw"},
     SCOPE_ADAPTER,
     adapter_has_verifier_and_no_deferred,
     make_verifier_devices_off_by_one},
};

#define DAMAGE_KIND_COUNT (sizeof damage_kinds / sizeof damage_kinds[0])

/* ---- Finding the target ---------------------------------------------------------------------- */

/* One pass over a kind's targets: counts those its filter accepts; at the @want-th one (0-based)
 * calls the kind's make (still under the target's lock) and stops. */
typedef struct damage_walk {
  al_adapter *adapter;
  const damage_kind *kind;
  unsigned want; /* UINT32_MAX: count only */
  unsigned seen;
  damage_patch *patch;
} damage_walk;

/* Offers @target (its lock held); true to stop the pass. */
AL_CHECK_CODE static bool damage_offer(damage_walk *walk, const damage_target *target) {
  if (walk->kind->filter && !walk->kind->filter(walk->adapter, target)) return false;
  if (walk->seen++ != walk->want) return false;
  walk->kind->make(walk->adapter, target, walk->patch);
  return true;
}

/* The next live slot of @table after *cursor, as the walk steps (table lock per step). */
AL_CHECK_CODE static bool damage_next(handle_table *table, uint32_t *cursor, void **object, uint32_t *aux) {
  for (;;) {
    handle_table_lock(table);
    bool found = handle_table_check_next_locked(table, cursor, NULL, object, aux);
    handle_table_unlock(table);
    if (!found) return false;
    if (*object) return true; /* a reserved slot without its object yet: not a target */
  }
}

AL_CHECK_CODE static void damage_pass(damage_walk *walk) {
  al_adapter *adapter = walk->adapter;
  uint32_t cursor = 0, aux = 0;
  void *object = NULL;
  damage_target target;
  memset(&target, 0, sizeof target);
  switch (walk->kind->scope) {
  case SCOPE_TABLE: {
    handle_table *tables[] = {&adapter->devices, &adapter->resources, &adapter->allocations};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
      target.table = tables[i];
      handle_table_lock(tables[i]);
      bool stop = damage_offer(walk, &target);
      handle_table_unlock(tables[i]);
      if (stop) return;
    }
    return;
  }
  case SCOPE_RESOURCE:
  case SCOPE_RESOURCE_OPEN:
    while (damage_next(&adapter->resources, &cursor, &object, NULL)) {
      target.resource = object;
      port_lock(&target.resource->lock);
      bool stop = false;
      if (walk->kind->scope == SCOPE_RESOURCE) {
        stop = damage_offer(walk, &target);
      } else {
        for (target.open = target.resource->holders; !stop && target.open;
             target.open = target.open->next_holder)
          stop = damage_offer(walk, &target);
      }
      port_unlock(&target.resource->lock);
      if (stop) return;
    }
    return;
  case SCOPE_ALLOCATION:
    while (damage_next(&adapter->allocations, &cursor, &object, &aux)) {
      target.resource = object;
      target.index = aux;
      port_lock(&target.resource->lock);
      bool stop = damage_offer(walk, &target);
      port_unlock(&target.resource->lock);
      if (stop) return;
    }
    return;
  case SCOPE_DEVICE:
  case SCOPE_DEVICE_OPEN:
    while (damage_next(&adapter->devices, &cursor, &object, NULL)) {
      target.device = object;
      port_lock(&target.device->lock);
      bool stop = false;
      if (walk->kind->scope == SCOPE_DEVICE) {
        stop = damage_offer(walk, &target);
      } else {
        for (target.open = target.device->opens; !stop && target.open;
             target.open = target.open->next_in_device)
          stop = damage_offer(walk, &target);
      }
      port_unlock(&target.device->lock);
      if (stop) return;
    }
    return;
  case SCOPE_SEGMENT:
    for (uint32_t i = 0; i < adapter->segment_count; i++) {
      target.segment = &adapter->segments[i];
      port_lock(&target.segment->lock);
      bool stop = damage_offer(walk, &target);
      port_unlock(&target.segment->lock);
      if (stop) return;
    }
    return;
  case SCOPE_TEARDOWN: {
    port_lock(&adapter->deferred_lock);
    bool stop = false;
    for (target.teardown = adapter->deferred_head; !stop && target.teardown;
         target.teardown = target.teardown->next)
      stop = damage_offer(walk, &target);
    port_unlock(&adapter->deferred_lock);
    return;
  }
  case SCOPE_ADAPTER:
    damage_offer(walk, &target);
    return;
  }
}

/* ---- Applying a patch ------------------------------------------------------------------------ */

AL_CHECK_CODE static void patch_lock(const damage_patch *patch) {
  if (patch->table)
    handle_table_lock(patch->table);
  else if (patch->mutex)
    port_lock(patch->mutex);
}

AL_CHECK_CODE static void patch_unlock(const damage_patch *patch) {
  if (patch->table)
    handle_table_unlock(patch->table);
  else if (patch->mutex)
    port_unlock(patch->mutex);
}

/* Writes the damaged value, runs the walk with no lock held, writes the saved bytes back. */
AL_CHECK_CODE static al_damage_result patch_apply(al_adapter *adapter, const damage_patch *patch, char *msg,
                                                  size_t cap) {
  unsigned char saved[sizeof patch->value];
  uint32_t saved_owner = 0;
  patch_lock(patch);
  if (patch->heap) {
    saved_owner = segment_heap_block_owner(patch->heap, patch->block);
    segment_heap_set_owner(patch->heap, patch->block, patch->owner);
  } else {
    memcpy(saved, patch->field, patch->size);
    memcpy(patch->field, patch->value, patch->size);
  }
  patch_unlock(patch);
  bool passed = al_adapter_check(adapter, msg, cap);
  patch_lock(patch);
  if (patch->heap)
    segment_heap_set_owner(patch->heap, patch->block, saved_owner);
  else
    memcpy(patch->field, saved, patch->size);
  patch_unlock(patch);
  return passed ? AL_DAMAGE_MISSED : AL_DAMAGE_DETECTED;
}

/* ---- API ------------------------------------------------------------------------------------- */

AL_CHECK_CODE unsigned al_testing_damage_kind_count(void) {
  return (unsigned)DAMAGE_KIND_COUNT;
}

AL_CHECK_CODE const al_damage_kind_info *al_testing_damage_kind(unsigned kind) {
  return kind < DAMAGE_KIND_COUNT ? &damage_kinds[kind].info : NULL;
}

AL_CHECK_CODE al_damage_result al_testing_damage(al_adapter *adapter, unsigned kind, unsigned pick, char *msg,
                                                 size_t cap) {
  if (kind >= DAMAGE_KIND_COUNT) return AL_DAMAGE_UNKNOWN_KIND;
  if (adapter == NULL) return AL_DAMAGE_NO_TARGET;
  damage_patch patch;
  memset(&patch, 0, sizeof patch);
  damage_walk walk = {.adapter = adapter, .kind = &damage_kinds[kind], .want = UINT32_MAX, .patch = &patch};
  damage_pass(&walk);
  if (walk.seen == 0) return AL_DAMAGE_NO_TARGET;
  walk.want = pick % walk.seen;
  walk.seen = 0;
  damage_pass(&walk);
  return patch_apply(adapter, &patch, msg, cap);
}
