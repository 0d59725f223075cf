/*
 * port.h — the port's objects and their rules (private to core/).
 *
 * DOC: Objects
 *  - al_adapter: the miniport's DDI table, the three handle tables, the segments, fences and the
 *    deferred-destroy list.
 *  - port_device: one per device handle. Holds a list of port_open (its holds on resources) and
 *    its pool: a hidden port_resource that keeps the device-owned allocations.
 *  - port_resource: a resource (or a device's pool). Owned by the adapter, never by a device: it
 *    names devices by handle only and survives the device that created it. Its allocations are
 *    records in one array (struct of arrays with miniport_allocations, so the whole-resource
 *    DxgkDdiDestroyAllocation list is the array itself, no copy).
 *  - port_open: a device's bindings of one resource (hDeviceSpecificAllocation per record index),
 *    so a whole-resource close is one DxgkDdiCloseAllocation over the array itself.
 *  - an allocation is (resource, index); its handle slot stores both.
 *
 * DOC: Lifetime
 * Devices and resources are reference counted (refs). One reference is structural (the object is
 * live, or a deferred teardown still needs it); every lookup that found the object through its
 * handle holds one more until the call ends. A lookup takes its reference under the handle-table
 * lock while the slot is live, so a count never goes up from zero; the object is freed when the
 * count drops to zero. Handles are removed first when an object goes (so the value cannot be used
 * while it is half gone), then the miniport is told, then memory is freed.
 *
 * DOC: Device destroy is atomic to other threads (rule 7 as one step). al_device_destroy runs
 * under adapter->device_destroy_lock with adapter->devices_dying raised, from before its
 * device's handle goes (the moment it takes effect) until every hold the device had is
 * released. Meanwhile another call may meet a resource still held by that device (a holder
 * whose device handle is gone: its own allocations, a resource only it held, a shared one it
 * also held). Deciding on that half-destroyed state would show other threads a device that is
 * gone while its objects are not, so such a call changes nothing, returns PORT_STATUS_RETRY
 * inside the port, waits for the destroy (port_wait_device_destroys) and starts over.
 *
 * DOC: Lock order (outer -> inner). Never take an outer lock while holding an inner one.
 *   adapter->device_destroy_lock (held by al_device_destroy only; waited on holding nothing)
 *   -> port_device.lock
 *   -> port_resource.lock (several: in ascending address order)
 *   -> adapter->reap_lock (runs deferred teardowns one at a time, in insertion order; a teardown
 *      takes no device or resource lock)
 *   -> adapter->submit_lock (fence numbering + DxgkDdiSubmitCommand, so fences reach the engine
 *      in order)
 *   -> port_segment.lock, adapter->deferred_lock, adapter->fence_lock, the verifier's lock
 *   -> handle_table locks (innermost; the miniport's DxgkCbGetHandleData takes one)
 * No lock from segment level inward is held across a DDI call. The hot close/destroy path takes
 * one device lock, one resource lock and the handle-table lock once per call, and each segment
 * lock once per run of allocations in that segment: no lock per allocation.
 */
#ifndef ALLOCLAB_CORE_PORT_H
#define ALLOCLAB_CORE_PORT_H

#include <pthread.h>
#include <stdatomic.h>

#include "alloclab/alloclab.h"
#include "handle_table.h"
#include "schedule_points.h"
#include "segment_heap.h"

typedef struct verifier verifier;
typedef struct port_open port_open;

/* The driver object a miniport's DriverEntry registers into (DxgkInitialize). */
struct _DRIVER_OBJECT {
  bool registered;
  DRIVER_INITIALIZATION_DATA ddi;
};

/* record->segment_index of an allocation evicted to system memory (no segment block). */
#define PORT_SYSTEM_MEMORY UINT32_MAX

/* One allocation inside its resource: what the close/destroy path reads (hot, 24 bytes). */
typedef struct port_allocation {
  uint32_t handle;        /* D3DKMT_HANDLE (0 while not yet created) */
  uint32_t block;         /* segment_heap block (SEGMENT_HEAP_NO_BLOCK in system memory) */
  uint32_t segment_index; /* 0-based index into adapter->segments, or PORT_SYSTEM_MEMORY */
  uint32_t pinned;        /* (resource lock) referenced by a submission being built: no victim */
  uint64_t last_fence;    /* last work that referenced it (resource lock) */
} port_allocation;

/* Where an allocation may live, as the miniport said at create: read only when placing and
 * paging (cold, kept apart from the records). */
typedef struct port_placement {
  uint64_t size;         /* DXGK_ALLOCATIONINFO.Size */
  uint32_t alignment;    /* .Alignment */
  uint32_t preferred;    /* .PreferredSegment.Value */
  uint32_t write_set;    /* .SupportedWriteSegmentSet, limited to the described segments */
  uint32_t eviction_set; /* .EvictionSegmentSet (aperture segments; 0 = system memory) */
} port_placement;

typedef struct port_private_data {
  void *data;
  uint32_t size;
} port_private_data;

enum {
  RESOURCE_POOL = 0x1,   /* a device's device-owned allocations (no handle, no hResource) */
  RESOURCE_SHARED = 0x2, /* may be opened on other devices */
  RESOURCE_SEALED = 0x4, /* opened on another device: nothing may be added */
  RESOURCE_DEAD = 0x8,   /* its handles are gone; only a teardown still uses it */
};

typedef struct port_resource {
  pthread_mutex_t lock;
  atomic_uint refs;
  uint32_t handle; /* 0 for a pool */
  uint32_t flags;  /* RESOURCE_* (lock) */
  al_handle creator;
  HANDLE miniport_resource; /* hResource from DxgkDdiCreateAllocation (NULL for a pool) */
  uint32_t count;           /* live records */
  uint32_t capacity;
  port_allocation *records;     /* [capacity]; one host block with the two arrays below */
  HANDLE *miniport_allocations; /* [capacity], hAllocation per record */
  port_placement *placement;    /* [capacity], per record */
  port_private_data *allocation_private; /* [capacity] copies, shared resources only */
  port_private_data resource_private;    /* copy, shared resources only */
  port_open *holders; /* devices holding it (linked through next_holder) */
  uint64_t last_fence;
  /* Deferred teardowns of this resource not yet run. A whole-resource teardown defers while it
   * is non-zero, so it cannot overtake an earlier close of the same resource. */
  atomic_uint pending_teardowns;
  /* The highest fence its deferred teardowns wait for (lock). A teardown queued behind them
   * waits for it too, so it is never ready before them; only meaningful while
   * pending_teardowns is non-zero. Not last_fence: work on the resource's other allocations
   * must not hold back memory it never used. */
  uint64_t deferred_fence;
} port_resource;

struct port_open {
  port_resource *resource;
  al_handle device;       /* a handle, never a pointer into a device */
  HANDLE driver_device;   /* the miniport's hDevice, for DxgkDdiCloseAllocation */
  port_open *next_holder; /* resource->holders (resource lock) */
  port_open *prev_in_device, *next_in_device; /* device->opens (device lock) */
  uint64_t last_fence;    /* last work on this device that referenced the resource */
  uint32_t capacity;
  HANDLE *bindings;       /* [capacity]; valid up to resource->count */
};

typedef struct port_device {
  pthread_mutex_t lock;
  atomic_uint refs;
  uint32_t handle;
  bool dying; /* (lock) destroy has begun: every other call fails */
  HANDLE driver_device;
  port_open *opens;    /* (lock) */
  port_resource *pool; /* (lock) device-owned allocations; NULL until the first */
  uint64_t last_fence; /* (lock) */
} port_device;

typedef struct port_segment {
  pthread_mutex_t lock;
  segment_heap heap;
  uint32_t clock; /* (lock) eviction cursor: the block looked at last */
  atomic_uint_fast64_t victims_moved_in; /* bumped after a record moved into this segment (it
                                            may be a victim now): see placement_scan_memo */
  uint32_t id; /* 1-based */
  DXGK_SEGMENTDESCRIPTOR descriptor;
  uint64_t page_size;
} port_segment;

/* A teardown: close some bindings of one device, then destroy some allocations, then release
 * their memory and the objects. Runs at once or, deferred, when its fence has signalled. */
typedef struct port_teardown {
  struct port_teardown *next;
  uint64_t fence;
  bool assume_not_in_use; /* runs before its fence: the caller said no work uses it */
  port_resource *resource; /* holds a reference */
  /* close */
  HANDLE driver_device;
  const HANDLE *close_list;
  uint32_t close_count;
  port_open *open_to_free; /* freed after the close */
  /* destroy */
  bool destroy;
  bool destroy_resource; /* whole resource: DestroyResource (if it has an hResource) */
  const HANDLE *destroy_list;
  uint32_t destroy_count;
  const port_allocation *records; /* whose blocks to release (destroy_count of them) */
  void *owned;                    /* one block holding copied lists, freed at the end */
} port_teardown;

struct al_adapter {
  DRIVER_OBJECT driver;
  DEVICE_OBJECT physical_device;
  PVOID miniport; /* MiniportDeviceContext = hAdapter of adapter-level DDIs */
  uint32_t flags;
  bool started;
  atomic_bool removed;
  verifier *verifier;

  handle_table devices;
  handle_table resources;
  handle_table allocations;

  uint32_t segment_count;
  port_segment *segments; /* [segment_count], as the miniport described them */
  uint32_t segment_set_all; /* bit (id-1) per described segment */
  uint32_t segment_set_aperture;

  pthread_mutex_t submit_lock;
  atomic_uint_fast64_t fence_issued;    /* handed to the miniport (submit_lock) */
  atomic_uint_fast64_t fence_submitted; /* accepted by the miniport: what waits may name */
  atomic_uint_fast64_t fence_completed;
  pthread_mutex_t fence_lock;
  pthread_cond_t fence_signalled;
  DXGKRNL_INTERFACE interface; /* what the miniport was given at StartDevice */

  pthread_mutex_t device_destroy_lock; /* one device destroy at a time (see DOC above) */
  atomic_uint devices_dying;           /* device destroys begun and not finished */

  pthread_mutex_t reap_lock;
  pthread_mutex_t deferred_lock;
  port_teardown *deferred_head, *deferred_tail; /* insertion order (deferred_lock) */
  atomic_uint deferred_count;
  atomic_uint deferred_allocations;
  atomic_uint bindings; /* live hDeviceSpecificAllocation values */
  atomic_uint_fast64_t evictions; /* allocations moved out of their segment under pressure */
  atomic_uint_fast64_t page_ins;  /* allocations brought back for GPU work */
  atomic_uint_fast64_t victim_scan_steps; /* blocks the eviction clock looked at */
  atomic_uint_fast64_t victims_released; /* bumped after records were published or unpinned
                                            (placement_victims_released) */
};

/* ---- small helpers ------------------------------------------------------------------------- */

static inline bool port_is_power_of_two(uint64_t value) { return value && (value & (value - 1)) == 0; }

/* qsort comparison of uint32_t values. */
static inline int port_compare_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* ---- adapter.c: references and lookups ------------------------------------------------------ */

void port_device_ref(port_device *device);
void port_device_unref(al_adapter *adapter, port_device *device);
void port_resource_ref(port_resource *resource);
void port_resource_unref(al_adapter *adapter, port_resource *resource);
/* Lookups take a reference (drop it with *_unref); NULL when the handle is not live. */
port_device *port_lookup_device(al_adapter *adapter, al_handle device);
port_resource *port_lookup_resource(al_adapter *adapter, al_handle resource);
/* Internal status (never returned to a caller of the public API): the call met a device
 * destroy half done, changed nothing, and must wait (port_wait_device_destroys) and retry. */
#define PORT_STATUS_RETRY ((NTSTATUS)0xC000022DL) /* STATUS_RETRY */
/* True when a device destroy is under way and one of @resource's holders is its device (the
 * holder's device handle is gone). Resource lock held. O(1) when no destroy is under way. */
bool port_resource_has_dying_holder(al_adapter *adapter, const port_resource *resource);
/* Returns once every device destroy begun before the call has finished. Holds no lock. */
void port_wait_device_destroys(al_adapter *adapter);
/* Finds @device's hold on @resource (resource lock held); NULL when it has none. */
port_open *port_find_open(port_resource *resource, al_handle device);
/* Allocates a zeroed resource with one structural reference; NULL when out of memory. */
port_resource *port_resource_new(uint32_t flags, al_handle creator);
/* allocation.c: releases every hold of a dying device (device lock held); DestroyDevice may
 * follow once it returns. */
NTSTATUS port_release_all_holds(al_adapter *adapter, port_device *device);
/* Frees a port_open and its bindings array. */
void port_open_free(port_open *open);
/* Grows the records (and bindings of @open, if not NULL) to hold @needed; false on NO_MEMORY,
 * leaving everything as it was. Resource lock held. */
bool port_resource_reserve(port_resource *resource, port_open *open, uint32_t needed);
bool port_open_reserve(port_open *open, uint32_t needed);

/* ---- placement.c: VidMm segment placement and paging ------------------------------------------- */

/* The placement request the miniport's create outputs make. */
port_placement placement_request(const al_adapter *adapter, const DXGK_ALLOCATIONINFO *info);
/* What one caller's earlier victim scans found (placement_place): for each segment, whether a
 * full scan found no victim, and the state it found none in. Start it zeroed; it is only valid
 * for calls with the same @held resources, made by one thread. */
typedef struct placement_scan_state {
  uint64_t fence_completed, released, moved_in; /* the adapter's and the segment's counters */
} placement_scan_state;
typedef struct placement_scan_memo {
  bool none[DXGK_MAX_SEGMENTS];
  placement_scan_state at[DXGK_MAX_SEGMENTS];
} placement_scan_memo;

/* Places one allocation by PreferredSegment, then SupportedWriteSegmentSet, with its Alignment;
 * when nothing fits, evicts idle allocations from those segments to make room: of other
 * resources whose lock is free (trylock), and of the @held_count resources in @held (which the
 * caller holds locked; their unpublished and pinned records are never victims). The block is
 * tagged with record->handle (so eviction can find who lives there). @memo (NULL: none) lets a
 * caller that places many records in a row (a create) skip a segment's scan while nothing that
 * could give a victim has happened since one found none. Returns STATUS_SUCCESS (record's
 * segment_index/block set, *out_offset when not NULL), STATUS_NO_VIDEO_MEMORY or
 * STATUS_NO_MEMORY. Takes segment locks itself; the caller may hold device and resource locks. */
NTSTATUS placement_place(al_adapter *adapter, const port_placement *request, port_allocation *record,
                         port_resource *const *held, uint32_t held_count, placement_scan_memo *memo,
                         uint64_t *out_offset);
/* Says that records may have become victims (published by a create, unpinned by a submit): call
 * it after the change, so that no placement_scan_memo made before it is trusted. */
void placement_victims_released(al_adapter *adapter);
/* Releases the blocks of @count records, one segment lock per run of records in a segment
 * (records in system memory have none). */
void placement_release(al_adapter *adapter, const port_allocation *records, uint32_t count);
/* Offset and placed size of a record's block (0 and 0 in system memory). */
uint64_t placement_offset(al_adapter *adapter, const port_allocation *record);
uint64_t placement_size(al_adapter *adapter, const port_allocation *record);
/* Brings record @index of @resource (locked by the caller) into a segment the GPU can use, back
 * to its preferred segment when there is room: called for every allocation submitted work
 * references. Returns STATUS_SUCCESS or the placement/transfer failure. */
NTSTATUS placement_page_in(al_adapter *adapter, port_resource *resource, uint32_t index,
                           port_resource *const *held, uint32_t held_count);

/* ---- fence.c: fences and deferred teardown -------------------------------------------------- */

/* Runs @teardown now if its fence has signalled (or @assume_not_in_use) and no earlier teardown
 * of its resource is still queued; else queues a copy of it for the reaper, waiting for
 * max(its fence, the highest fence its resource's queued teardowns wait for) when it is behind
 * others. The caller holds the resource lock. The teardown's lists must stay valid until it
 * runs (they point into a dead resource or into teardown->owned). Returns 0 when it ran now, else the fence the queued
 * copy waits for (what a synchronous caller waits on). */
uint64_t fence_teardown_or_defer(al_adapter *adapter, const port_teardown *teardown, bool assume_not_in_use);
/* Runs a teardown (close, destroy, release memory, free objects). */
void fence_run_teardown(al_adapter *adapter, port_teardown *teardown);
/* Runs every deferred teardown whose fence has signalled, in insertion order. No object lock may
 * be held. */
void fence_reap(al_adapter *adapter);
/* Waits until the GPU has finished everything submitted so far, then reaps. */
void fence_wait_idle(al_adapter *adapter);

/* ---- ddi.c: calls into the miniport, each checked by the verifier when it is on --------------- */

NTSTATUS ddi_create_allocation(al_adapter *adapter, DXGKARG_CREATEALLOCATION *args);
NTSTATUS ddi_open_allocation(al_adapter *adapter, HANDLE driver_device, const DXGKARG_OPENALLOCATION *args);
void ddi_close_allocation(al_adapter *adapter, HANDLE driver_device, const HANDLE *bindings,
                          uint32_t count, bool assume_not_in_use);
void ddi_destroy_allocation(al_adapter *adapter, const HANDLE *allocations, uint32_t count,
                            HANDLE miniport_resource, bool destroy_resource, bool assume_not_in_use);
NTSTATUS ddi_create_device(al_adapter *adapter, uint32_t device_handle, DXGK_DEVICEINFO *info,
                           HANDLE *out_driver_device);
void ddi_destroy_device(al_adapter *adapter, HANDLE driver_device);
NTSTATUS ddi_submit(al_adapter *adapter, HANDLE driver_device, uint64_t fence, const void *command,
                    uint32_t command_size, const DXGK_ALLOCATIONLIST *list, uint32_t list_size);
/* DXGK_OPERATION_FILL with zeroes: tells the miniport where a new allocation lives. */
NTSTATUS ddi_fill(al_adapter *adapter, HANDLE allocation, uint32_t segment_id, uint64_t offset, uint64_t size);
/* AlDdiRunEngine (the simulated GPU's engine, run by the caller) for at most @max submissions;
 * *out_ran = how many ran (0, STATUS_SUCCESS when the miniport has no such entry point). A DDI
 * call like the others: the completion interrupts it raises run inside it, with no schedule
 * point, so no other logical thread ever finds the engine busy half-way through a job. */
NTSTATUS ddi_run_engine(al_adapter *adapter, uint32_t max, uint32_t *out_ran);
/* DXGK_OPERATION_TRANSFER of @size bytes between (segment id, offset) pairs; id 0 = system memory. */
NTSTATUS ddi_transfer(al_adapter *adapter, HANDLE allocation, uint64_t size, uint32_t from_id,
                      uint64_t from_offset, uint32_t to_id, uint64_t to_offset);
/* The DDI rules the miniport's answers must keep (one place for each rule): returns NULL when
 * the create outputs are legal, else a message naming the broken rule. */
const char *ddi_check_create_output(const al_adapter *adapter, const DXGKARG_CREATEALLOCATION *args,
                                    uint32_t *out_bad_index);
/* Marks the adapter removed when a DDI says so. */
void ddi_note_status(al_adapter *adapter, NTSTATUS status);

#endif /* ALLOCLAB_CORE_PORT_H */
