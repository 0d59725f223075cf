/*
 * example_miniport.h — "example", the smallest complete alloclab display miniport.
 *
 * DOC: Overview
 * A deliberately small but complete miniport that the port (core/) loads end to end: it registers
 * every DDI of d3dkmddi.h, describes two segments, turns per-allocation private data into
 * DXGK_ALLOCATIONINFO outputs, keeps device-specific bindings, and runs a deterministic engine that
 * completes submitted fences only when the port calls AlDdiRunEngine. It models no GPU memory
 * contents: paging operations only record where an allocation lives.
 *
 * Segments (ids are fixed):
 *  - id 1 (EXAMPLE_SEGMENT_ID_MEMORY): the memory segment, MemorySegmentSize bytes in pages of
 *    MemoryPageSize (Flags.Use64KBPages when 64 KiB). The simulated GPU exposes all of it to the
 *    CPU (Flags.CpuVisible = 1, a resizable-BAR part), so EXAMPLE_ALLOCATION_CPU_VISIBLE combines
 *    with every placement flag.
 *  - id 2 (EXAMPLE_SEGMENT_ID_APERTURE): the aperture segment, ApertureSegmentSize bytes, 4 KiB
 *    pages, Flags.Aperture = Flags.CpuVisible = 1. It is also the eviction target.
 *
 * Ownership: adapter, device, resource, allocation and binding objects are allocated by the
 * miniport and handed to the port as opaque handles (hAdapter = the MiniportDeviceContext of
 * DxgkDdiAddDevice, hDevice, hResource, hAllocation, hDeviceSpecificAllocation). They stay valid
 * until the DDI that ends them (RemoveDevice, DestroyDevice, DestroyAllocation with
 * DestroyResource, DestroyAllocation, CloseAllocation) returns. Allocation and resource objects
 * belong to the adapter and hold no pointer into a device; a binding belongs to the device that
 * opened it and never dereferences its allocation, so a binding the port forgot to close stays
 * harmless until DxgkDdiDestroyDevice (or RemoveDevice) frees it. Every object starts with a
 * magic/state word that is checked on use: it catches a handle of the wrong kind, a double close or
 * destroy while the memory is still held, and a cross-adapter or cross-device mix-up — not an
 * arbitrary or already-freed pointer (that is the port's handle table's job, and ASan's).
 *
 * Host memory (what AlDdiQueryLiveObjects.HostBytes counts, exactly): one block per
 * DxgkDdiCreateAllocation call (a 32-byte header plus 40 bytes per allocation, freed when its last
 * allocation is destroyed), one block per DxgkDdiOpenAllocation call (a 32-byte header plus 16
 * bytes per binding, freed when its last binding is closed), 48 bytes per device, 32 bytes per
 * resource. Not counted: the adapter context and the engine's fence ring (adapter-lifetime costs,
 * freed by DxgkDdiRemoveDevice). All calls are O(number of listed objects), with no search.
 *
 * Locking: one mutex per adapter protects the adapter's object lists (devices, allocation blocks,
 * resources), the resource allocation counts, allocation placement, the engine queue and the
 * callbacks saved by StartDevice, and each device's binding blocks (the port may open and close
 * on one device from two threads at once). Live counters are atomics. The miniport never calls
 * back into the port while holding its mutex (AlDdiRunEngine pops one fence under the mutex, then
 * reports it), so DxgkCbNotifyInterrupt may call any DDI, AlDdiRunEngine included.
 *
 * DDI notes (beyond d3dkmddi.h and ../shared/wddm-contract.md):
 *  - CreateAllocation: resource-level private data is ignored; without Flags.Resource, hResource
 *    is ignored and left unchanged; with it, a NULL hResource makes a new resource (returned).
 *  - OpenAllocation: NumAllocations 0 succeeds and binds nothing; per-allocation private data is
 *    never changed. DestroyAllocation: without Flags.DestroyResource, hResource is ignored.
 *  - SubmitCommand: hContext is NULL or a device of the adapter; every allocation-list entry must
 *    be an open binding (of hContext, when given); the command stream is not interpreted. Its
 *    fence is queued (FIFO) and reported, with NodeOrdinal = EngineOrdinal = 0, only by
 *    AlDdiRunEngine. StopDevice drops fences still queued (a stopped GPU completes nothing).
 *  - BuildPagingBuffer: FILL and TRANSFER only (executed during the call; they record placement).
 *
 * Rejections: a malformed argument (NULL pointer, reserved bit, bad private data, a duplicate in a
 * list, a list that breaks the resource rules) gives STATUS_INVALID_PARAMETER; a handle that is
 * NULL, of the wrong kind, no longer live, or of another adapter/device gives
 * STATUS_INVALID_HANDLE; a host allocation failure gives STATUS_NO_MEMORY. Every failing call
 * changes nothing (all-or-nothing) and writes no handle into its outputs.
 *
 * Glossary: DDI = device driver interface (port -> miniport); binding = the device-specific
 * allocation object created by DxgkDdiOpenAllocation; block = one host allocation holding every
 * object one DDI call created; segment set = bitmask, bit (id - 1) for segment id.
 */
#ifndef ALLOCLAB_HW_EXAMPLE_MINIPORT_H
#define ALLOCLAB_HW_EXAMPLE_MINIPORT_H

#include "alloclab/d3dkmddi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Segments ------------------------------------------------------------------------------ */

#define EXAMPLE_SEGMENT_ID_MEMORY 1u
#define EXAMPLE_SEGMENT_ID_APERTURE 2u
#define EXAMPLE_SEGMENT_COUNT 2u
/* The aperture segment's page size; also the smallest unit of every allocation Size. */
#define EXAMPLE_APERTURE_PAGE_SIZE 4096u
/* The largest segment EXAMPLE_HARDWARE_CONFIG may describe (1 TiB). */
#define EXAMPLE_SEGMENT_SIZE_MAX ((UINT64)1 << 40)

/* ---- Hardware configuration (DEVICE_OBJECT.pAlHardwareConfig) ------------------------------- */

#define EXAMPLE_HARDWARE_MAGIC 0x414C4548u /* "ALEH": alloclab example hardware */
#define EXAMPLE_HARDWARE_DEFAULT_PAGE_SIZE 4096u
#define EXAMPLE_HARDWARE_DEFAULT_MEMORY_SEGMENT_SIZE ((UINT64)64 << 20)
#define EXAMPLE_HARDWARE_DEFAULT_APERTURE_SEGMENT_SIZE ((UINT64)64 << 20)

/*
 * struct EXAMPLE_HARDWARE_CONFIG - the simulated GPU an adapter is created with.
 * @Magic: EXAMPLE_HARDWARE_MAGIC.
 * @MemoryPageSize: page size of the memory segment, 4096 or 65536.
 * @MemorySegmentSize: bytes, > 0, a multiple of @MemoryPageSize, <= EXAMPLE_SEGMENT_SIZE_MAX.
 * @ApertureSegmentSize: bytes, > 0, a multiple of 4096, <= EXAMPLE_SEGMENT_SIZE_MAX.
 *
 * The port passes it through DEVICE_OBJECT.pAlHardwareConfig with AlHardwareConfigSize =
 * sizeof(EXAMPLE_HARDWARE_CONFIG); pAlHardwareConfig NULL with size 0 selects the defaults above
 * (64 MiB memory segment with 4 KiB pages, 64 MiB aperture). Host-endian, not a wire format.
 */
typedef struct EXAMPLE_HARDWARE_CONFIG {
  UINT Magic;
  UINT MemoryPageSize;
  UINT64 MemorySegmentSize;
  UINT64 ApertureSegmentSize;
} EXAMPLE_HARDWARE_CONFIG;

/* ---- Allocation private data (DXGK_ALLOCATIONINFO.pPrivateDriverData) ----------------------- */

#define EXAMPLE_ALLOCATION_MAGIC 0x414C4558u /* "ALEX": alloclab example allocation */
/* The allocation can be locked by the CPU (DXGK_ALLOCATIONINFOFLAGS.CpuVisible). */
#define EXAMPLE_ALLOCATION_CPU_VISIBLE 0x1u
/* Only the aperture segment (id 2); evicted to system memory. */
#define EXAMPLE_ALLOCATION_APERTURE_ONLY 0x2u
/* Only the memory segment (id 1); still evicted to the aperture segment. */
#define EXAMPLE_ALLOCATION_MEMORY_ONLY 0x4u
#define EXAMPLE_ALLOCATION_FLAGS_ALL 0x7u
#define EXAMPLE_ALLOCATION_ALIGNMENT_MAX (1u << 20)
/* The AllocationPriority reported for Priority 0 (D3DDDI_ALLOCATIONPRIORITY_NORMAL). */
#define EXAMPLE_ALLOCATION_PRIORITY_DEFAULT 0x78000000u

/*
 * struct EXAMPLE_ALLOCATION_DATA - per-allocation private data: a wire format, 24 bytes,
 * little-endian, no padding (Magic at 0, Flags at 4, Alignment at 8, Priority at 12, SizeBytes
 * at 16). The miniport copies it before looking at it and treats it as hostile.
 * @Magic: EXAMPLE_ALLOCATION_MAGIC.
 * @Flags: EXAMPLE_ALLOCATION_* bits; other bits reserved, 0; APERTURE_ONLY and MEMORY_ONLY are
 *         mutually exclusive.
 * @Alignment: 0 (the segment's page size) or a power of two <= EXAMPLE_ALLOCATION_ALIGNMENT_MAX;
 *             reported unchanged in DXGK_ALLOCATIONINFO.Alignment.
 * @Priority: DXGK_ALLOCATIONINFO.AllocationPriority; 0 = EXAMPLE_ALLOCATION_PRIORITY_DEFAULT.
 * @SizeBytes: > 0; once rounded up (see below) it must fit the largest segment the allocation may
 *             use (both segments, or the one its *_ONLY flag names).
 *
 * The outputs DxgkDdiCreateAllocation derives from it:
 *  - Size: SizeBytes rounded up to the largest page size among the allowed segments (64 KiB when
 *    the memory segment is allowed and has 64 KiB pages, else 4 KiB), so Size is a page multiple
 *    of every segment the allocation may be placed in and the port need not round it.
 *  - SupportedReadSegmentSet = SupportedWriteSegmentSet = 0x3, or 0x1 (MEMORY_ONLY), or 0x2
 *    (APERTURE_ONLY); PreferredSegment lists the allowed ids, memory first.
 *  - EvictionSegmentSet = 0x2 (the aperture), 0 for APERTURE_ONLY (evicted to system memory).
 *  - Flags.CpuVisible from EXAMPLE_ALLOCATION_CPU_VISIBLE, every other flag 0; PitchAlignedSize 0.
 */
typedef struct EXAMPLE_ALLOCATION_DATA {
  UINT Magic;
  UINT Flags;
  UINT Alignment;
  UINT Priority;
  UINT64 SizeBytes;
} EXAMPLE_ALLOCATION_DATA;

/*
 * example_allocation_data - build valid private data for one allocation.
 * @size_bytes: the requested size in bytes.
 * @flags: EXAMPLE_ALLOCATION_* bits.
 *
 * Returns: the struct with Magic set, the given size and flags, Alignment 0 and Priority 0. It
 * does not validate: DxgkDdiCreateAllocation does.
 */
EXAMPLE_ALLOCATION_DATA example_allocation_data(UINT64 size_bytes, UINT flags);

/* ---- Entry point ----------------------------------------------------------------------------- */

/*
 * ExampleMiniportDriverEntry - register the example miniport with the port.
 * @DriverObject: the driver object the port created for this miniport.
 * @RegistryPath: passed through to DxgkInitialize (may be NULL).
 *
 * Fills a DRIVER_INITIALIZATION_DATA (Version = DXGKDDI_INTERFACE_VERSION, every DDI including
 * the optional DxgkDdiBuildPagingBuffer, AlDdiRunEngine and AlDdiQueryLiveObjects) and calls
 * DxgkInitialize. Holds no state of its own: one driver object may serve any number of adapters.
 *
 * Returns: what DxgkInitialize returns.
 */
NTSTATUS ExampleMiniportDriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HW_EXAMPLE_MINIPORT_H */
