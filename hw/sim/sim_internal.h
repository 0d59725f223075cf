/*
 * sim_internal.h — the sim miniport's objects and the functions its files share (private).
 *
 * Object layout (every handle points at a 32-bit magic/state word at offset 0):
 *   sim_adapter          hAdapter; owns the GPU (MMU, two segments, engine), the device list,
 *                        the zombie list, allocation blocks and resources.
 *   sim_device           hDevice; owns its GPU address space and its binding blocks.
 *   sim_resource         hResource; counts its allocations.
 *   sim_allocation       hAllocation, inside a sim_allocation_block (one per CreateAllocation
 *                        call); holds its placement and the list of its open bindings.
 *   sim_binding          hDeviceSpecificAllocation, inside a sim_binding_block (one per
 *                        OpenAllocation call, which holds one VA block for all of them); holds
 *                        its VA range and whether it is mapped.
 *   sim_submission       one queued submission: translated GPU commands, checks, readback.
 * An object finds its block from its index (container_of), so it carries no block pointer.
 *
 * Every field marked (lock) is read and written under adapter->lock.
 */
#ifndef ALLOCLAB_HW_SIM_INTERNAL_H
#define ALLOCLAB_HW_SIM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/hw/gpu_engine.h"
#include "alloclab/hw/gpu_memory.h"
#include "alloclab/hw/gpu_mmu.h"
#include "alloclab/hw/sim_miniport.h"

/* Magic/state words. Distinct per kind, so a handle of the wrong kind is refused. */
#define SIM_ADAPTER_LIVE 0x53414431u      /* adapter context */
#define SIM_DEVICE_LIVE 0x53444531u       /* device */
#define SIM_DEVICE_ZOMBIE 0x53444532u     /* destroyed, waiting for its queued work */
#define SIM_RESOURCE_LIVE 0x53525331u     /* resource */
#define SIM_ALLOCATION_NEW 0x53414E30u    /* being created, not yet a handle */
#define SIM_ALLOCATION_LIVE 0x53414C31u   /* allocation */
#define SIM_ALLOCATION_DOOMED 0x53414432u /* listed by the DestroyAllocation in progress */
#define SIM_BINDING_OPEN 0x53424E31u      /* binding */
#define SIM_BINDING_CLOSING 0x53424E32u   /* listed by the CloseAllocation in progress */
#define SIM_DEAD 0xDEADDEADu              /* destroyed (the memory may still be held) */

#define SIM_SEGMENT_BIT(id) (1u << ((id) - 1u))
#define SIM_SEGMENT_SET_ALL (SIM_SEGMENT_BIT(1) | SIM_SEGMENT_BIT(2))

#define SIM_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ---- Lists ------------------------------------------------------------------------------------ */

/* A circular doubly-linked list node; a head is a node linked to itself when empty. */
typedef struct sim_link {
  struct sim_link *prev;
  struct sim_link *next;
} sim_link;

static inline void sim_list_init(sim_link *head) { head->prev = head->next = head; }
static inline bool sim_list_empty(const sim_link *head) { return head->next == head; }
static inline void sim_list_add(sim_link *head, sim_link *node) {
  node->prev = head->prev;
  node->next = head;
  head->prev->next = node;
  head->prev = node;
}
static inline void sim_list_del(sim_link *node) {
  node->prev->next = node->next;
  node->next->prev = node->prev;
  node->prev = node->next = node;
}

/* ---- Objects ---------------------------------------------------------------------------------- */

typedef struct sim_adapter sim_adapter;
typedef struct sim_resource sim_resource;

/* Where an allocation's contents are. */
enum {
  SIM_PLACE_NONE = 0,    /* not placed yet (no FILL) */
  SIM_PLACE_SEGMENT = 1, /* committed in segment_id at offset */
  SIM_PLACE_SYSTEM = 2,  /* in system memory: the sparse host copy @system */
};

/*
 * Lean objects (host bytes per allocation are a goal): what is shared by a whole CreateAllocation
 * or OpenAllocation call lives in its block header (resource, first owner id; VA block,
 * ReadOnly), what can be derived is not stored (committed = Size rounded to the segment's page;
 * id = block->first_id + index), offset and system copy share a word (place says which), and the
 * bindings of an allocation are a singly-linked list (an allocation has one binding per device
 * that opened it: a handful).
 */
typedef struct sim_binding sim_binding;

typedef struct sim_allocation {
  _Atomic UINT state; /* SIM_ALLOCATION_*; written under the lock */
  UINT index;         /* position in its block */
  UINT64 size;        /* Size reported to the port */
  sim_binding *bindings; /* (lock) its open bindings (linked by sim_binding.next) */
  union {
    UINT64 offset; /* (lock) SEGMENT: offset in the segment */
    gpu_host_copy *system; /* (lock) SYSTEM: Size bytes of contents (zero pieces cost nothing) */
  };
  UCHAR va_align_shift;   /* log2 of the VA alignment: max(Alignment reported, 4 KiB) */
  UCHAR place;            /* (lock) SIM_PLACE_* */
  UCHAR segment_id;       /* (lock) SEGMENT: 1 or 2 */
  UCHAR supported_set;    /* may be placed in */
  UCHAR eviction_set;     /* may be evicted to (0 = system memory) */
  bool paging;            /* (lock) a FILL/TRANSFER is in progress */
} sim_allocation;

typedef struct sim_allocation_block {
  sim_link link;          /* adapter->allocation_blocks (lock) */
  sim_adapter *adapter;   /* the adapter that created it */
  UINT count;             /* allocations in the block */
  UINT live;              /* not yet destroyed; the block is freed at 0 (lock) */
  sim_resource *resource; /* NULL, or the resource of every allocation of it (fixed at create) */
  UINT64 first_id;        /* owner id of allocations[0]; allocations[i] has first_id + i */
  sim_allocation allocations[];
} sim_allocation_block;

struct sim_resource {
  UINT magic;            /* SIM_RESOURCE_LIVE (lock) */
  UINT allocation_count; /* live allocations of it (lock) */
  sim_adapter *adapter;
  sim_link link; /* adapter->resources (lock) */
};

typedef struct sim_device {
  UINT magic;       /* SIM_DEVICE_LIVE / SIM_DEVICE_ZOMBIE (lock once published) */
  UINT port_handle; /* DXGKARG_CREATEDEVICE.hDevice on input (for messages) */
  sim_adapter *adapter;
  gpu_as *as;
  sim_link link;           /* adapter->devices or adapter->zombies (lock) */
  sim_link binding_blocks; /* its sim_binding_block (lock) */
  UINT64 pending;          /* queued submissions (lock) */
} sim_device;

/*
 * One OpenAllocation call reserves ONE VA block in the device's address space and lays its
 * bindings out back to back in it (each at its allocation's alignment). Each binding maps its own
 * range. A CloseAllocation that closes every binding still open in a block (the port closes a
 * device's bindings of a resource in one call) unmaps nothing binding by binding: the block's
 * last close clears the whole block and releases its VA in one walk (gpu_as_unmap_release).
 * A partial close unmaps just that binding (gpu_as_unmap_known: one walk); the VA block stays
 * until its last binding closes.
 */
struct sim_binding {
  _Atomic UINT state;         /* SIM_BINDING_* */
  UINT index;                 /* position in its block */
  sim_allocation *allocation; /* (lock) NULL once the allocation was destroyed under it */
  sim_binding *next;          /* (lock) in allocation->bindings */
  UINT64 va;                  /* its range's start, inside the block's VA block */
  UINT pages;                 /* the allocation's Size in 4 KiB pages: the mapped length */
  bool mapped;                /* (lock) [va, va + size) is mapped */
};

typedef struct sim_binding_block {
  sim_link link;      /* device->binding_blocks (lock) */
  sim_device *device; /* the device that opened the bindings */
  UINT count;
  UINT live;          /* (lock) not yet closed; freed at 0 */
  UINT64 va;          /* the VA block (gpu_va_reserve) holding every binding's range */
  UINT closing;       /* (lock) bindings of it listed by the CloseAllocation in progress */
  bool read_only;     /* opened with Flags.ReadOnly */
  sim_binding bindings[];
} sim_binding_block;

struct sim_adapter {
  UINT magic; /* SIM_ADAPTER_LIVE */
  UINT serial;
  SIM_HARDWARE_CONFIG config;
  fault_injector *faults;
  gpu_mmu *mmu;
  gpu_segment *segments[SIM_SEGMENT_COUNT]; /* [id - 1] */
  gpu_engine *engine;
  sim_link registry_link; /* the process-wide adapter list (registry lock) */

  pthread_mutex_t lock;
  /* (lock) */
  bool started;
  HANDLE device_handle; /* DXGKRNL_INTERFACE.DeviceHandle */
  PDXGKCB_GETHANDLEDATA get_handle_data;
  PDXGKCB_NOTIFY_INTERRUPT notify_interrupt;
  UINT64 last_fence; /* the last fence given to the engine (64-bit extension) */
  /* The sim's own record of what the engine completed (on_complete), which the hardware walk
   * holds against the engine's: the last completed fence, its status, and how many completed. */
  UINT64 completed_fence;
  NTSTATUS completed_status;
  UINT64 completions;
  sim_link devices;
  sim_link zombies;
  sim_link allocation_blocks;
  sim_link resources;

  atomic_bool removed;
  _Atomic UINT64 next_allocation_id;
  /* Live counts (AlDdiQueryLiveObjects). */
  _Atomic UINT live_devices;
  _Atomic UINT live_zombies;
  _Atomic UINT live_resources;
  _Atomic UINT live_allocations;
  _Atomic UINT live_bindings;
  _Atomic UINT64 object_bytes; /* devices, resources, blocks, submission records */
  _Atomic UINT64 system_bytes; /* system-memory copies */
  _Atomic UINT64 queued;       /* submissions queued, not completed */
};

_Static_assert(SIZE_MAX / 128u >= UINT32_MAX, "64-bit size_t: block byte counts cannot overflow");
_Static_assert(sizeof(sim_allocation) == 40, "keep allocations lean");
_Static_assert(sizeof(sim_binding) == 40, "keep bindings lean");
_Static_assert(offsetof(sim_allocation_block, allocations) == 48, "48-byte block header");
_Static_assert(offsetof(sim_binding_block, bindings) == 48, "48-byte block header");

static inline sim_allocation_block *sim_allocation_block_of(sim_allocation *allocation) {
  return SIM_CONTAINER_OF(allocation - allocation->index, sim_allocation_block, allocations);
}
static inline sim_binding_block *sim_binding_block_of(sim_binding *binding) {
  return SIM_CONTAINER_OF(binding - binding->index, sim_binding_block, bindings);
}
static inline UINT64 sim_allocation_id(sim_allocation *allocation) {
  return sim_allocation_block_of(allocation)->first_id + allocation->index;
}
static inline sim_resource *sim_allocation_resource(sim_allocation *allocation) {
  return sim_allocation_block_of(allocation)->resource;
}
static inline UINT64 sim_binding_size(const sim_binding *binding) { return (UINT64)binding->pages << 12; }
static inline size_t sim_allocation_block_bytes(UINT count) {
  return offsetof(sim_allocation_block, allocations) + (size_t)count * sizeof(sim_allocation);
}
static inline size_t sim_binding_block_bytes(UINT count) {
  return offsetof(sim_binding_block, bindings) + (size_t)count * sizeof(sim_binding);
}

static inline UINT sim_load(_Atomic UINT *word) { return atomic_load_explicit(word, memory_order_acquire); }
static inline void sim_store(_Atomic UINT *word, UINT value) {
  atomic_store_explicit(word, value, memory_order_release);
}

/* An open binding of @device; NULL for anything else. */
static inline sim_binding *sim_binding_from(HANDLE handle, const sim_device *device) {
  sim_binding *binding = handle;
  if (!binding || sim_load(&binding->state) != SIM_BINDING_OPEN) return NULL;
  return sim_binding_block_of(binding)->device == device ? binding : NULL;
}

/* ---- Process-wide totals and the event log (sim_adapter.c) ------------------------------------- */

typedef struct sim_totals {
  _Atomic uint64_t submissions, completions, gpu_faults, check_failures, fills, transfers,
      to_system, from_system, remaps, lazy_maps, rejected_submissions;
} sim_totals;
extern sim_totals sim_global_totals;

static inline void sim_total_add(_Atomic uint64_t *counter, uint64_t n) {
  atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

/* Appends @event (its seq is assigned) to the process-wide ring. */
void sim_event_record(sim_event *event);

/* ---- Shared helpers --------------------------------------------------------------------------- */

/* The adapter/device a handle names, or NULL. */
sim_adapter *sim_adapter_from(HANDLE handle);
sim_device *sim_device_from(HANDLE handle); /* live devices only (not zombies) */

/* malloc with FAULT_DRIVER_OBJECT asked first; NULL on (injected) failure. */
void *sim_object_alloc(sim_adapter *adapter, size_t bytes);

/* True (and the adapter marked removed) when the adapter is removed or FAULT_DEVICE_REMOVED
 * fires now. Ask once at the start of every creating DDI. */
bool sim_check_removed(sim_adapter *adapter);

static inline void sim_count_bytes(_Atomic UINT64 *counter, size_t bytes) {
  atomic_fetch_add_explicit(counter, (UINT64)bytes, memory_order_relaxed);
}
static inline void sim_uncount_bytes(_Atomic UINT64 *counter, size_t bytes) {
  atomic_fetch_sub_explicit(counter, (UINT64)bytes, memory_order_relaxed);
}

static inline gpu_segment *sim_segment(sim_adapter *adapter, UINT id) {
  return adapter->segments[id - 1u];
}
static inline UINT64 sim_segment_page(const sim_adapter *adapter, UINT id) {
  return id == SIM_SEGMENT_ID_MEMORY ? adapter->config.MemoryPageSize : SIM_APERTURE_PAGE_SIZE;
}
static inline UINT64 sim_segment_bytes(const sim_adapter *adapter, UINT id) {
  return id == SIM_SEGMENT_ID_MEMORY ? adapter->config.MemorySegmentSize
                                     : adapter->config.ApertureSegmentSize;
}

/* SEGMENT: the committed bytes of @allocation (Size rounded up to its segment's page). */
static inline UINT64 sim_allocation_committed(const sim_adapter *adapter, const sim_allocation *allocation) {
  const UINT64 page = sim_segment_page(adapter, allocation->segment_id);
  return (allocation->size + page - 1u) / page * page;
}

/* Maps @binding (lock held) to its allocation's segment placement. Does nothing when it is
 * mapped already, orphaned, or its allocation is not in a segment. STATUS_NO_MEMORY when a
 * page-table page could not be had. */
NTSTATUS sim_binding_map_locked(sim_adapter *adapter, sim_binding *binding);
/* Unmaps @binding (lock held) if mapped. Never fails. */
void sim_binding_unmap_locked(sim_binding *binding);
/* Closes @binding (lock held): unlinks it and, when @unmap, unmaps it. Does not release the
 * block's VA nor free the block: sim_binding_block_release_va_locked does, at its last close. */
void sim_binding_close_locked(sim_binding *binding, bool unmap);
/* Clears whatever is still mapped in @block's VA block and releases it (one walk). */
void sim_binding_block_release_va_locked(sim_binding_block *block);
/* Frees every binding block of @device (lock held), closing what is still open. */
void sim_device_free_bindings_locked(sim_device *device);
/* Frees a device object and its address space (lock held; device unlinked, no pending work). */
void sim_device_free_locked(sim_device *device);
/* Releases what an allocation holds (lock held): its segment range or system copy. Bindings
 * still open under it are orphaned (their stale mappings stay: a later access faults). */
void sim_allocation_release_locked(sim_adapter *adapter, sim_allocation *allocation);

/* ---- The hardware walk (sim_check.c) ------------------------------------------------------------ */

/* Marks the sim's own invariant-walk glue: not instrumented under libFuzzer (its branches take
 * the same path on every sound state and say nothing about an input), as core's AL_CHECK_CODE.
 * The hw/gpu checks it calls keep their instrumentation. */
#if defined(__clang__)
#define SIM_CHECK_CODE __attribute__((no_sanitize("coverage")))
#else
#define SIM_CHECK_CODE
#endif

/* sim_miniport_check_hardware's walk of one adapter (lock held): see sim_miniport.h; without
 * @segment_pages, as with SIM_CHECK_HARDWARE_LIVE. */
bool sim_adapter_check_hardware_locked(sim_adapter *adapter, bool segment_pages, char *msg, size_t cap);

/* The live adapter started with @DeviceHandle (DXGKRNL_INTERFACE.DeviceHandle), as
 * sim_miniport_check_hardware() finds it; NULL when none. The registry lock is released on
 * return: the caller keeps the adapter alive (a quiescent adapter: testing.h, DOC: Damage). */
sim_adapter *sim_adapter_started_with(HANDLE DeviceHandle); /* sim_adapter.c, for sim_damage.c */

/* ---- Config and private data (sim_private_data.c) ---------------------------------------------- */

/* Reads and validates the configuration of @pdo (NULL blob: defaults). */
NTSTATUS sim_config_read(const DEVICE_OBJECT *pdo, SIM_HARDWARE_CONFIG *out);
/* Validates a configuration struct. */
bool sim_config_valid(const SIM_HARDWARE_CONFIG *config);

/* ---- DDIs ---------------------------------------------------------------------------------------- */

DXGKDDI_ADD_DEVICE sim_ddi_add_device;
DXGKDDI_START_DEVICE sim_ddi_start_device;
DXGKDDI_STOP_DEVICE sim_ddi_stop_device;
DXGKDDI_REMOVE_DEVICE sim_ddi_remove_device;
DXGKDDI_QUERYADAPTERINFO sim_ddi_query_adapter_info;
DXGKDDI_CREATEDEVICE sim_ddi_create_device;
DXGKDDI_DESTROYDEVICE sim_ddi_destroy_device;
DXGKDDI_CREATEALLOCATION sim_ddi_create_allocation;
DXGKDDI_DESTROYALLOCATION sim_ddi_destroy_allocation;
DXGKDDI_OPENALLOCATIONINFO sim_ddi_open_allocation;
DXGKDDI_CLOSEALLOCATION sim_ddi_close_allocation;
DXGKDDI_SUBMITCOMMAND sim_ddi_submit_command;
DXGKDDI_BUILDPAGINGBUFFER sim_ddi_build_paging_buffer;
ALDDI_RUN_ENGINE sim_ddi_run_engine;
ALDDI_QUERY_LIVE_OBJECTS sim_ddi_query_live_objects;

#endif /* ALLOCLAB_HW_SIM_INTERNAL_H */
