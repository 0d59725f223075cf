/*
 * alloclab.h — the port side of the WDDM allocation path (what dxgkrnl and VidMm do), as called
 * from user mode (modelled on the D3DKMT calls).
 *
 * DOC: Overview
 * An adapter is created from a miniport's DriverEntry. On it, callers create devices; allocations
 * either alone (owned by one device) or as a resource of N allocations (owned by the adapter, held
 * by the devices that created or opened it); add allocations to a resource; open a shared resource
 * on another device; destroy allocations or a device's hold on a resource; queue GPU work that
 * references allocations and wait for its fence. The port validates every call, owns every handle
 * and object, places allocations in the miniport's segments and calls the miniport's DDIs in the
 * legal order (../shared/wddm-contract.md):
 *  - DxgkDdiOpenAllocation(Create) right after DxgkDdiCreateAllocation, for the creating device;
 *  - every binding closed (DxgkDdiCloseAllocation) before DxgkDdiDestroyAllocation, a device's
 *    bindings of one resource closed together in one call;
 *  - DestroyResource set exactly when the whole resource goes;
 *  - memory that queued GPU work still references is released only after that work's fence
 *    signalled (unless the caller asserts AL_DESTROY_ASSUME_NOT_IN_USE).
 *
 * Ownership: al_adapter_create() returns an adapter the caller must al_adapter_destroy(); every
 * other object is named by an al_handle that the adapter owns. Pointers passed in are borrowed for
 * the duration of the call only.
 *
 * Errors: every call returns an NTSTATUS (alloclab/d3dkmddi.h). A failed call changes nothing:
 * a batch that fails at allocation k has rolled back the first k-1 when it returns. (Residency is
 * not part of that promise: a create or submit that evicted idle allocations to make room and
 * then failed leaves them where VidMm moved them, contents intact, as VidMm would.)
 *  - STATUS_INVALID_PARAMETER: a NULL pointer, a count of 0 or above its maximum, a reserved flag
 *    bit, a list with duplicates or with allocations of different owners, an operation that the
 *    object's state forbids (adding to a resource opened elsewhere, opening a resource that is not
 *    shared or is already open on the device, ...).
 *  - STATUS_INVALID_HANDLE: a handle that is 0, stale (its object is gone), of the wrong type, or
 *    not usable from the device named in the call (foreign).
 *  - STATUS_NO_VIDEO_MEMORY: no segment of the allocation's supported set has room.
 *  - STATUS_NO_MEMORY: host memory ran out.
 *  - STATUS_DEVICE_REMOVED: the adapter was removed; only destroy calls still work.
 *  - Other values a miniport returns are passed through.
 *
 * Handles: 32 bits = type (2) | generation (10) | slot (20). A stale or foreign handle is rejected
 * and never reaches another object. A handle value repeats only after its slot has been freed
 * 1024 times, and each reuse of a slot waits behind at least 1024 other freed slots (FIFO), so at
 * least about a million frees separate two equal values. At most 2^20-1 objects of each type live
 * on one adapter.
 *
 * Threading: every function may be called from several threads at once, on the same adapter and
 * the same objects. Calls that race on one object are serialised by that object's lock; a call
 * that lost the race (its handle was destroyed first) returns STATUS_INVALID_HANDLE.
 */
#ifndef ALLOCLAB_ALLOCLAB_H
#define ALLOCLAB_ALLOCLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h"
#include "alloclab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t al_handle;
typedef struct al_adapter al_adapter;

/* Documented maxima (STATUS_INVALID_PARAMETER above them). */
#define AL_MAX_ALLOCATIONS_PER_CALL 1024u /* as dxgkrnl's D3DKMT_CREATEALLOCATION_MAX */
#define AL_MAX_PRIVATE_DATA_SIZE 65536u
#define AL_MAX_COMMAND_SIZE 65536u

/* ---- Adapters -------------------------------------------------------------------------------- */

/* Check every DDI call in both directions against the contract; a broken rule aborts with a
 * message naming the rule and the objects (see core/src/verifier.h). */
#define AL_ADAPTER_VERIFIER 0x1u
#define AL_ADAPTER_FLAGS_ALL AL_ADAPTER_VERIFIER

typedef struct al_adapter_config {
  PDRIVER_INITIALIZE driver_entry; /* the miniport's DriverEntry (calls DxgkInitialize) */
  const void *hardware_config;     /* passed to the miniport in DEVICE_OBJECT; may be NULL */
  size_t hardware_config_size;
  uint32_t flags; /* AL_ADAPTER_* */
} al_adapter_config;

/*
 * al_adapter_create - load a miniport and bring an adapter up.
 * Calls the miniport's DriverEntry, then DxgkDdiAddDevice, DxgkDdiStartDevice and
 * DxgkDdiQueryAdapterInfo(QUERYSEGMENT). On success *out_adapter belongs to the caller.
 * Returns: STATUS_INVALID_PARAMETER (NULL config/out/driver_entry, unknown flags);
 * STATUS_GRAPHICS_DRIVER_MISMATCH (the miniport did not register a valid table, or described no
 * usable segment); STATUS_NO_MEMORY; or the miniport's failure. On failure nothing is left.
 */
NTSTATUS al_adapter_create(const al_adapter_config *config, al_adapter **out_adapter);

/*
 * al_adapter_destroy - tear an adapter down: waits for all queued GPU work, destroys every device
 * (and so every hold on every resource), releases deferred destroys, stops and removes the
 * miniport, frees the adapter. NULL is ignored. No other call may use the adapter concurrently
 * or afterwards.
 */
void al_adapter_destroy(al_adapter *adapter);

/* ---- Devices --------------------------------------------------------------------------------- */

/* al_device_create - creates a device (DxgkDdiCreateDevice); *out_device names it.
 * Returns STATUS_INVALID_PARAMETER (NULL), STATUS_DEVICE_REMOVED, STATUS_NO_MEMORY, or the
 * miniport's failure. */
NTSTATUS al_device_create(al_adapter *adapter, al_handle *out_device);

/* al_device_create_with_info - al_device_create() that also asks the miniport for the device's
 * limits (DXGKARG_CREATEDEVICE.pInfo: DMA buffer size and segment set, allocation and patch
 * location list sizes, flags). @out_info may be NULL: then it is al_device_create() (pInfo
 * NULL). Else the port passes a DXGK_DEVICEINFO it zeroed first (fields the miniport leaves
 * read 0) and copies it to *out_info on success only; on failure *out_info is not written.
 * Returns what al_device_create() returns. */
NTSTATUS al_device_create_with_info(al_adapter *adapter, al_handle *out_device, DXGK_DEVICEINFO *out_info);

/* al_device_destroy - destroys a device: waits for the GPU work it queued, releases its hold on
 * every resource (closing its bindings; a resource nobody else holds is destroyed), destroys its
 * device-owned allocations, then DxgkDdiDestroyDevice. Resources opened by other devices live on.
 * Returns STATUS_INVALID_HANDLE for a handle that is not a live device. */
NTSTATUS al_device_destroy(al_adapter *adapter, al_handle device);

/* ---- Allocations and resources ---------------------------------------------------------------- */

/* Create flags. */
#define AL_CREATE_RESOURCE 0x1u /* the allocations form a new resource (out_resource names it) */
#define AL_CREATE_SHARED 0x2u   /* the new resource may be opened on other devices; needs RESOURCE */
#define AL_CREATE_FLAGS_ALL (AL_CREATE_RESOURCE | AL_CREATE_SHARED)

typedef struct al_allocation_desc {
  const void *private_data; /* for the miniport (DXGK_ALLOCATIONINFO.pPrivateDriverData) */
  uint32_t private_data_size;
} al_allocation_desc;

typedef struct al_create_allocation_args {
  al_handle device;   /* the creating device */
  al_handle resource; /* 0, or a resource this device created, to add the allocations to */
  uint32_t flags;     /* AL_CREATE_*; must be 0 when resource != 0 */
  const void *resource_private_data; /* DXGKARG_CREATEALLOCATION.pPrivateDriverData; may be NULL */
  uint32_t resource_private_data_size;
  uint32_t allocation_count; /* 1..AL_MAX_ALLOCATIONS_PER_CALL */
  const al_allocation_desc *allocations;
  al_handle *out_allocations; /* allocation_count entries, written on success */
  al_handle *out_resource;    /* written on success with AL_CREATE_RESOURCE; else may be NULL */
} al_create_allocation_args;

/*
 * al_allocation_create - DxgkDdiCreateAllocation, place each allocation in a segment, then
 * DxgkDdiOpenAllocation(Create) on the creating device.
 * Without a resource the allocations are owned by the device. With AL_CREATE_RESOURCE they form
 * a new resource held by the device; with args->resource they are added to that resource, which
 * must have been created by args->device and must not be open on another device yet.
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER (NULL args/arrays/out pointers, count 0 or
 * above the maximum, private data too large or NULL with a size, reserved flag bits, SHARED
 * without RESOURCE, flags with args->resource, adding to a resource open elsewhere);
 * STATUS_INVALID_HANDLE (device or resource not live, resource not created by this device);
 * STATUS_NO_VIDEO_MEMORY; STATUS_NO_MEMORY; STATUS_DEVICE_REMOVED; the miniport's failure.
 */
NTSTATUS al_allocation_create(al_adapter *adapter, const al_create_allocation_args *args);

/*
 * al_resource_open - opens a shared resource on another device: every allocation of the resource
 * is bound on @device through one DxgkDdiOpenAllocation. From then on the resource is sealed:
 * nothing may be added to it. The device holds the resource until it destroys it (by handle) or is
 * destroyed itself.
 * Returns: STATUS_INVALID_HANDLE (device or resource not live); STATUS_INVALID_PARAMETER (the
 * resource was not created shared, or @device already holds it); STATUS_NO_MEMORY;
 * STATUS_DEVICE_REMOVED; the miniport's failure.
 */
NTSTATUS al_resource_open(al_adapter *adapter, al_handle device, al_handle resource);

/* Destroy flags (D3DKMT_DESTROYALLOCATION2.Flags). */
#define AL_DESTROY_ASSUME_NOT_IN_USE 0x1u /* caller guarantees no queued work uses them: no wait */
#define AL_DESTROY_SYNCHRONOUS 0x2u       /* return only once the memory is released */
#define AL_DESTROY_FLAGS_ALL (AL_DESTROY_ASSUME_NOT_IN_USE | AL_DESTROY_SYNCHRONOUS)

/* Modelled on D3DKMT_DESTROYALLOCATION2: exactly one of resource and allocation_count is
 * non-zero; with a resource, allocations must be NULL. */
typedef struct al_destroy_allocation_args {
  al_handle device;               /* hDevice */
  al_handle resource;             /* hResource */
  const al_handle *allocations;   /* phAllocationList */
  uint32_t allocation_count;      /* AllocationCount, 0..AL_MAX_ALLOCATIONS_PER_CALL */
  uint32_t flags;                 /* AL_DESTROY_* */
} al_destroy_allocation_args;

/*
 * al_allocation_destroy - with a resource: @device lets go of it. Its bindings are closed (one
 * DxgkDdiCloseAllocation); if no other device holds the resource, every allocation of it and the
 * resource itself are destroyed (DxgkDdiDestroyAllocation with DestroyResource).
 * With a list: the listed allocations are closed and destroyed. They must all be owned by @device,
 * or all belong to one resource held by @device alone (not shared-and-opened).
 * Handles are invalid as soon as the call returns. The memory is released when no queued work
 * references it any more: at once when its fences have signalled or with ASSUME_NOT_IN_USE,
 * otherwise deferred until they do (SYNCHRONOUS waits for that).
 * Returns: STATUS_INVALID_PARAMETER (NULL args, both or neither of resource and count, a list
 * with a resource, count above the maximum, reserved flags, duplicates, allocations of different
 * owners or of a resource open on several devices); STATUS_INVALID_HANDLE (device not live,
 * resource/allocation not live or not held by @device).
 */
NTSTATUS al_allocation_destroy(al_adapter *adapter, const al_destroy_allocation_args *args);

/* ---- GPU work and fences -------------------------------------------------------------------- */

typedef struct al_submit_args {
  al_handle device;
  const al_handle *allocations; /* the allocations the command references, each bound on device */
  uint32_t allocation_count;    /* 0..AL_MAX_ALLOCATIONS_PER_CALL */
  const void *command;          /* the miniport's command stream (may be NULL when size is 0) */
  uint32_t command_size;        /* 0..AL_MAX_COMMAND_SIZE */
  uint64_t *out_fence;          /* the fence value that signals when the work is done */
} al_submit_args;

/*
 * al_submit - queues GPU work on the device's engine (DxgkDdiSubmitCommand). Every referenced
 * allocation stays in memory until the returned fence signals, even if destroyed before.
 * Returns: STATUS_INVALID_PARAMETER (NULL args/out_fence, counts above the maximum, NULL arrays
 * with a count, duplicates); STATUS_INVALID_HANDLE (device not live, an allocation not live or
 * not bound on the device); STATUS_DEVICE_REMOVED; the miniport's failure.
 */
NTSTATUS al_submit(al_adapter *adapter, const al_submit_args *args);

/* al_fence_completed - the highest fence value that has signalled (0 before any work). */
uint64_t al_fence_completed(al_adapter *adapter);

/* al_fence_submitted - the highest fence value handed out so far. */
uint64_t al_fence_submitted(al_adapter *adapter);

/*
 * al_fence_wait - returns once @fence has signalled, running a deterministic engine as needed.
 * @timeout_ns bounds the wait for an engine with its own thread (UINT64_MAX = forever).
 * Deferred destroys whose fences signalled are released before it returns.
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER (a fence never handed out); STATUS_TIMEOUT;
 * STATUS_DEVICE_REMOVED (the adapter was removed while the fence was pending: it never signals).
 */
NTSTATUS al_fence_wait(al_adapter *adapter, uint64_t fence, uint64_t timeout_ns);

/*
 * al_gpu_run - lets a deterministic engine complete at most @max_submissions queued submissions
 * (AlDdiRunEngine), then releases deferred destroys whose fences signalled. *out_completed (may
 * be NULL) receives how many ran. An engine with its own thread runs by itself: *out_completed = 0.
 */
NTSTATUS al_gpu_run(al_adapter *adapter, uint32_t max_submissions, uint32_t *out_completed);

/* ---- Introspection (tests, oracles, benchmarks) --------------------------------------------- */

typedef struct al_segment_stats {
  uint32_t id; /* 1-based segment id */
  bool aperture;
  uint64_t size;
  uint64_t page_size;
  uint64_t used_bytes; /* exact: sum of the placed sizes of live and deferred allocations */
  uint64_t live_blocks;
} al_segment_stats;

typedef struct al_adapter_stats {
  uint32_t devices;
  uint32_t resources;        /* user-visible resources */
  uint32_t allocations;      /* user-visible allocations */
  uint32_t bindings;         /* open device bindings (hDeviceSpecificAllocation) */
  uint32_t deferred_destroys; /* teardowns waiting for a fence */
  uint32_t deferred_allocations; /* allocations whose memory waits for a fence */
  uint64_t fence_submitted;
  uint64_t fence_completed;
  uint64_t evictions; /* allocations VidMm moved out of a segment to make room */
  uint64_t page_ins;  /* allocations brought back for submitted work */
  uint64_t victim_scan_steps; /* blocks VidMm's eviction clock looked at for a victim (its cost) */
  uint32_t segment_count;
  al_segment_stats segments[DXGK_MAX_SEGMENTS];
} al_adapter_stats;

/* al_adapter_get_stats - a snapshot of the live object counts and segment usage. Exact when no
 * other thread is changing the adapter. */
void al_adapter_get_stats(al_adapter *adapter, al_adapter_stats *out_stats);

typedef struct al_allocation_info {
  al_handle resource;     /* 0 for a device-owned allocation */
  al_handle owner_device; /* the creating device (still valid or not) */
  uint32_t segment_id;    /* 0 = evicted to system memory */
  uint64_t segment_offset;
  uint64_t size;          /* placed size */
  uint64_t last_fence;    /* the last fence of work that referenced it (0 = none) */
} al_allocation_info;

/* al_allocation_query - what the port knows of a live allocation.
 * Returns STATUS_INVALID_PARAMETER (NULL) or STATUS_INVALID_HANDLE (not a live allocation). */
NTSTATUS al_allocation_query(al_adapter *adapter, al_handle allocation, al_allocation_info *out_info);

/*
 * al_adapter_check - walks every structure and checks every invariant: handle tables, the
 * objects they name and their counts, bindings on both sides, segment heaps and their byte
 * accounting, the deferred list; with the verifier, also the miniport's live objects against the
 * port's. Call it when no other thread is using the adapter. Returns true when all hold; else
 * false and a message naming the first broken invariant in @msg (NUL-terminated, cut to @cap).
 */
bool al_adapter_check(al_adapter *adapter, char *msg, size_t cap);

/*
 * al_adapter_check_live - al_adapter_check() with the table and heap walks bounded by what is
 * live instead of by capacity: every object, binding, block, non-empty free list and count is
 * checked as there; left to al_adapter_check() are the ~1000 unused chunk pointers and the 64
 * pristine slots above high water of each handle table, and the heads of empty free-list
 * classes of each segment heap. Meant for a check after every call (the fuzz executor's), with
 * al_adapter_check() at the end. Same conditions, arguments and result as al_adapter_check().
 */
bool al_adapter_check_live(al_adapter *adapter, char *msg, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_ALLOCLAB_H */
