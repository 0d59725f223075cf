/*
 * sim_miniport.h — "sim", alloclab's main display miniport: the DDIs of d3dkmddi.h over the
 * simulated GPU of hw/gpu (real segment memory, per-device page tables, a command engine).
 *
 * DOC: Overview
 * Per adapter (DxgkDdiAddDevice) the miniport builds a gpu_mmu, a memory segment ("VRAM") and an
 * aperture segment (gpu_memory) and a gpu_engine, deterministic or threaded. Per device
 * (DxgkDdiCreateDevice) it creates a GPU address space (gpu_as). Per allocation it keeps a driver
 * object with the allocation's placement; per binding (DxgkDdiOpenAllocation) a GPU VA range of
 * the device's address space, mapped to wherever the allocation lives. Paging is real:
 *  - FILL (DxgkDdiBuildPagingBuffer) commits the allocation's physical range with the allocation
 *    as owner, zero-fills it (then applies FillPattern to FillSize bytes) and maps every binding.
 *  - TRANSFER moves the contents: segment -> segment, segment -> system memory (a host buffer the
 *    miniport holds, SegmentId 0) and system memory -> segment; it re-maps every binding at its
 *    same VA (unmaps it while the allocation is in system memory) and only then releases the
 *    source range (unmap before free).
 *  - DestroyAllocation releases the physical range (or host buffer) during the call.
 * Submitted work (DxgkDdiSubmitCommand) is a SIM command stream naming allocations by their index
 * in pAlAllocationList; the miniport validates it, translates it into GPU VA commands through the
 * submitting device's bindings and queues it on the engine with the submission's fence. A GPU
 * page fault or a failed content check is logged (sim_miniport_events()) and, with
 * SIM_HW_ABORT_ON_GPU_FAULT (the default), aborts the process with a clear message.
 *
 * Segments (ids are fixed):
 *  - id 1 (SIM_SEGMENT_ID_MEMORY): MemorySegmentSize bytes in pages of MemoryPageSize
 *    (Flags.Use64KBPages when 64 KiB); CpuVisible (a resizable-BAR part).
 *  - id 2 (SIM_SEGMENT_ID_APERTURE): ApertureSegmentSize bytes, 4 KiB pages, Flags.Aperture and
 *    CpuVisible; the eviction target of allocations that may leave the memory segment.
 *
 * Ownership: adapter, device, resource, allocation and binding objects are allocated by the
 * miniport and handed to the port as opaque handles, valid until the DDI that ends them returns
 * (RemoveDevice, DestroyDevice, DestroyAllocation[DestroyResource], DestroyAllocation,
 * CloseAllocation). Allocations and resources belong to the adapter and never point into a
 * device; an allocation lists its open bindings (to re-map them when it moves), and a binding
 * unlinks itself when it is closed or its device is destroyed, so no pointer dangles. A device
 * destroyed while its address space still has queued work stays as an unnamed "zombie" until the
 * work completes (its address space is destroyed by the completion).
 *
 * Host memory (AlDdiQueryLiveObjects.HostBytes, exact): one block per DxgkDdiCreateAllocation
 * call (header + one allocation object per allocation, freed with its last allocation), one block
 * per DxgkDdiOpenAllocation call (header + one binding object per binding, freed with its last
 * binding), one object per device and per resource, the system-memory copy of every allocation
 * evicted to SegmentId 0 (gpu_host_copy_host_bytes(): a header of 24 + 8 bytes per 4 KiB of
 * Size, plus a block for each 4 KiB piece that holds contents written since its last zero fill;
 * pieces that read as zero cost nothing), every queued submission's record (translated commands,
 * checks, readback) until its completion, and each live device's page tables (gpu_as_get_stats()
 * pt_bytes, zombies included; a table is freed as soon as it is empty, so a failed or undone
 * open/map returns HostBytes exactly to its value before). Not counted: the GPU VA allocator's
 * records (48 bytes per VA block, ~35 per 4 KiB binding; the allocator keeps released blocks on
 * free lists for reuse like a malloc arena, so they would not return to the old value after an
 * open + close: sim_miniport_stats.va_host_bytes reports them), and adapter-lifetime costs
 * (adapter, MMU, segments' metadata and backing, engine), freed by DxgkDdiRemoveDevice.
 * sim_miniport_get_stats() reports the segments' committed bytes.
 * Per 4 KiB allocation with one binding, packed in one address space: 120 bytes (a one-entry
 * allocation block: 32-byte header + 88-byte allocation) + 88 (a one-entry binding block: 32 +
 * 56) + ~20 of page tables (an 8-byte leaf plus its share of the tables above it) = ~228 bytes
 * of HostBytes, + ~35 bytes of VA records.
 *
 * Locking: one mutex per adapter protects its object lists, placement records, binding lists,
 * mappings and the callbacks saved by StartDevice. The miniport never calls the port while
 * holding it: DxgkCbGetHandleData is called before it is taken, DxgkCbNotifyInterrupt after it
 * is dropped (from the engine thread in threaded mode, from AlDdiRunEngine in deterministic
 * mode). Paging operations copy contents outside the lock (the port serialises paging per
 * allocation; a concurrent second paging operation or destroy of the same allocation is refused
 * with STATUS_INVALID_PARAMETER).
 *
 * Fault injection (SIM_HARDWARE_CONFIG.Faults, may be NULL), the points this miniport asks:
 *  - FAULT_DEVICE_REMOVED: once at the start of every DDI that creates something
 *    (CreateDevice, CreateAllocation, OpenAllocation, SubmitCommand, BuildPagingBuffer): the
 *    call returns STATUS_DEVICE_REMOVED and the adapter stays removed (every later such call
 *    returns STATUS_DEVICE_REMOVED too; teardown DDIs, QueryLiveObjects and RunEngine still work).
 *  - FAULT_DRIVER_OBJECT: every host allocation of a driver object (device, resource, allocation
 *    block, binding block, system-memory copy, submission record) -> STATUS_NO_MEMORY.
 *  - FAULT_PRIVATE_DATA_BUFFER: the host copy of the submitted command stream (parsed from the
 *    copy, so a concurrent writer cannot change it between validation and use) -> STATUS_NO_MEMORY.
 *  - FAULT_SEGMENT_SPACE, FAULT_PAGE_TABLE_PAGE: asked by hw/gpu when committing segment pages
 *    and allocating page-table pages -> STATUS_NO_MEMORY.
 *  - The wrong answers (fault_point_is_wrong_answer()), asked once each by a call that is about
 *    to succeed, which then still returns STATUS_SUCCESS with one broken output:
 *    CreateAllocation's last allocation with FAULT_CREATE_UNALIGNED_SIZE (Size + 1),
 *    FAULT_CREATE_BAD_ALIGNMENT (Alignment 3 pages), FAULT_CREATE_UNDESCRIBED_SEGMENT (segment
 *    31 in SupportedWriteSegmentSet), FAULT_CREATE_NULL_ALLOCATION (a NULL hAllocation: that
 *    allocation is destroyed first); OpenAllocation's last binding NULL with
 *    FAULT_OPEN_NULL_BINDING (closed first); CreateDevice's hDevice NULL with
 *    FAULT_CREATE_DEVICE_NULL (destroyed first). What the sim still holds is exactly what its
 *    answer names, so a port that refuses the answer and undoes it leaves nothing behind.
 * Every failing call changes nothing. One exception by design: a TRANSFER or FILL whose re-map of
 * a binding fails (page-table page) still succeeds; that binding is left unmapped and is mapped
 * again on demand by the next SubmitCommand that references it (which fails with
 * STATUS_NO_MEMORY, queuing nothing, if that map fails too).
 *
 * Rejections: a malformed argument or hostile private data / command stream gives
 * STATUS_INVALID_PARAMETER; a handle that is NULL, of the wrong kind, no longer live, or of
 * another adapter/device gives STATUS_INVALID_HANDLE; host memory gives STATUS_NO_MEMORY.
 *
 * Glossary: binding = the device-specific allocation object (hDeviceSpecificAllocation); owner id
 * = the 64-bit id the GPU tags an allocation's physical pages with (sim_miniport_allocation_id);
 * system memory = a host buffer outside every segment (SegmentId 0).
 */
#ifndef ALLOCLAB_HW_SIM_MINIPORT_H
#define ALLOCLAB_HW_SIM_MINIPORT_H

#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h"
#include "alloclab/hw/fault_injection.h"
#include "alloclab/testing.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Segments ------------------------------------------------------------------------------ */

#define SIM_SEGMENT_ID_MEMORY 1u
#define SIM_SEGMENT_ID_APERTURE 2u
#define SIM_SEGMENT_COUNT 2u
#define SIM_APERTURE_PAGE_SIZE 4096u
/* The largest segment SIM_HARDWARE_CONFIG may describe (1 TiB, hw/gpu's limit). */
#define SIM_SEGMENT_SIZE_MAX ((UINT64)1 << 40)

/* ---- Hardware configuration (DEVICE_OBJECT.pAlHardwareConfig) ------------------------------- */

#define SIM_HARDWARE_MAGIC 0x414C5348u /* "ALSH": alloclab sim hardware */
#define SIM_HARDWARE_VERSION 1u

/* EngineMode values. */
#define SIM_ENGINE_DETERMINISTIC 1u /* work runs only in AlDdiRunEngine (replayable) */
#define SIM_ENGINE_THREADED 2u      /* an engine thread runs work as it arrives */

/* Flags. */
/* A GPU page fault or a failed SIM_CMD_CHECK prints "alloclab sim: GPU page fault: ..." or
 * "alloclab sim: content check failed: ..." on stderr and aborts. Without it both are only
 * logged (sim_miniport_events()) and counted. */
#define SIM_HW_ABORT_ON_GPU_FAULT 0x1u
#define SIM_HW_FLAGS_ALL 0x1u

/* The defaults (pAlHardwareConfig NULL with size 0): small and strict. */
#define SIM_HARDWARE_DEFAULT_PAGE_SIZE 4096u
#define SIM_HARDWARE_DEFAULT_MEMORY_SEGMENT_SIZE ((UINT64)16 << 20)
#define SIM_HARDWARE_DEFAULT_APERTURE_SEGMENT_SIZE ((UINT64)16 << 20)
#define SIM_HARDWARE_DEFAULT_ENGINE_MODE SIM_ENGINE_DETERMINISTIC
#define SIM_HARDWARE_DEFAULT_FLAGS SIM_HW_ABORT_ON_GPU_FAULT

/*
 * struct SIM_HARDWARE_CONFIG - the simulated GPU an adapter is created with. Host-endian, passed
 * in process (it holds a pointer): AlHardwareConfigSize must be sizeof(SIM_HARDWARE_CONFIG).
 * @Magic: SIM_HARDWARE_MAGIC. @Version: SIM_HARDWARE_VERSION.
 * @MemoryPageSize: 4096 or 65536 (the memory segment's page).
 * @EngineMode: SIM_ENGINE_DETERMINISTIC or SIM_ENGINE_THREADED.
 * @MemorySegmentSize: > 0, a multiple of @MemoryPageSize, <= SIM_SEGMENT_SIZE_MAX.
 * @ApertureSegmentSize: > 0, a multiple of 4096, <= SIM_SEGMENT_SIZE_MAX.
 * @Flags: SIM_HW_* bits; others reserved, 0.
 * @Reserved: 0.
 * @Faults: the adapter's fault injector (borrowed; must outlive the adapter), or NULL.
 * Anything else makes DxgkDdiAddDevice fail with STATUS_INVALID_PARAMETER.
 */
typedef struct SIM_HARDWARE_CONFIG {
  UINT Magic;
  UINT Version;
  UINT MemoryPageSize;
  UINT EngineMode;
  UINT64 MemorySegmentSize;
  UINT64 ApertureSegmentSize;
  UINT Flags;
  UINT Reserved;
  fault_injector *Faults;
} SIM_HARDWARE_CONFIG;

/* The default configuration as a struct (what a NULL config selects). */
SIM_HARDWARE_CONFIG sim_hardware_config_default(void);

/* ---- Allocation private data (DXGK_ALLOCATIONINFO.pPrivateDriverData) ----------------------- */

#define SIM_ALLOCATION_MAGIC 0x414C5341u /* "ALSA": alloclab sim allocation */
#define SIM_ALLOCATION_VERSION 1u

/* Kind. */
#define SIM_KIND_BUFFER 1u
#define SIM_KIND_TEXTURE2D 2u

/* Usage bits. */
#define SIM_USAGE_CPU_VISIBLE 0x1u   /* DXGK_ALLOCATIONINFOFLAGS.CpuVisible */
#define SIM_USAGE_RENDER_TARGET 0x2u /* recorded; textures only */
#define SIM_USAGE_SHADER_READ 0x4u   /* recorded */
#define SIM_USAGE_SHADER_WRITE 0x8u  /* recorded */
#define SIM_USAGE_CPU_CACHED 0x10u   /* Flags.Cached; needs SIM_USAGE_CPU_VISIBLE */
#define SIM_USAGE_ALL 0x1Fu

/* Placement. */
#define SIM_PLACEMENT_ANY 0u           /* memory preferred, aperture allowed; evicts to aperture */
#define SIM_PLACEMENT_MEMORY_ONLY 1u   /* memory segment only; evicts to the aperture */
#define SIM_PLACEMENT_APERTURE_ONLY 2u /* aperture only; evicts to system memory */

#define SIM_ALLOCATION_ALIGNMENT_MAX ((UINT)1 << 26) /* 64 MiB */
#define SIM_TEXTURE_PITCH_ALIGNMENT 256u
/* The AllocationPriority reported for Priority 0 (D3DDDI_ALLOCATIONPRIORITY_NORMAL). */
#define SIM_ALLOCATION_PRIORITY_DEFAULT 0x78000000u

/*
 * struct SIM_ALLOCATION_DATA - per-allocation private data, version 1. A wire format: 56 bytes,
 * little-endian, no padding:
 *   0 Magic u32 | 4 Version u32 | 8 Kind u32 | 12 Format u32 | 16 Width u64 | 24 Height u64 |
 *   32 Pitch u64 | 40 Usage u32 | 44 Placement u32 | 48 Alignment u32 | 52 Priority u32
 * Parsed as hostile input: PrivateDriverDataSize must be exactly 56 (anything else, any bad field,
 * any arithmetic overflow gives STATUS_INVALID_PARAMETER; nothing is read past the size given).
 * @Magic: SIM_ALLOCATION_MAGIC. @Version: SIM_ALLOCATION_VERSION.
 * @Kind: SIM_KIND_BUFFER or SIM_KIND_TEXTURE2D.
 * @Format: BUFFER: 0. TEXTURE2D: bytes per texel, 1, 2, 4, 8 or 16.
 * @Width: BUFFER: bytes, > 0. TEXTURE2D: texels per row, > 0; Width * Format must not overflow.
 * @Height: BUFFER: 0 or 1. TEXTURE2D: rows, > 0.
 * @Pitch: BUFFER: 0. TEXTURE2D: bytes per row; 0 = Width * Format rounded up to 256; else
 *	>= Width * Format and a multiple of 256. Pitch * Height must not overflow.
 * @Usage: SIM_USAGE_* bits; others reserved, 0; CPU_CACHED needs CPU_VISIBLE; RENDER_TARGET only
 *	for textures.
 * @Placement: SIM_PLACEMENT_*.
 * @Alignment: 0 (the segment's page) or a power of two <= SIM_ALLOCATION_ALIGNMENT_MAX.
 * @Priority: AllocationPriority; 0 = SIM_ALLOCATION_PRIORITY_DEFAULT.
 *
 * The outputs (SimDescribeAllocation, DxgkDdiCreateAllocation):
 *  - need = Width (buffer) or Pitch * Height (texture). Size = need rounded up to the largest
 *    page size among the allowed segments (64 KiB when the memory segment is allowed and has
 *    64 KiB pages, else 4 KiB); Size must fit the largest allowed segment, else
 *    STATUS_INVALID_PARAMETER. PitchAlignedSize: 0 for buffers, Size for textures.
 *  - Alignment as given. SupportedReadSegmentSet = SupportedWriteSegmentSet = 0x3 (ANY), 0x1
 *    (MEMORY_ONLY) or 0x2 (APERTURE_ONLY); PreferredSegment lists them, memory first.
 *    EvictionSegmentSet = 0x2 (the aperture), 0 for APERTURE_ONLY (evicted to system memory).
 *  - Flags.CpuVisible / Flags.Cached from Usage; every other flag 0. HintedBank 0,
 *    MaximumRenamingListLength 0, pAllocationUsageHint NULL.
 */
typedef struct SIM_ALLOCATION_DATA {
  UINT Magic;
  UINT Version;
  UINT Kind;
  UINT Format;
  UINT64 Width;
  UINT64 Height;
  UINT64 Pitch;
  UINT Usage;
  UINT Placement;
  UINT Alignment;
  UINT Priority;
} SIM_ALLOCATION_DATA;

#define SIM_ALLOCATION_DATA_SIZE 56u

/* A valid BUFFER of @size_bytes with @placement and @usage (Alignment 0, Priority 0). */
SIM_ALLOCATION_DATA sim_allocation_buffer(UINT64 size_bytes, UINT placement, UINT usage);
/* A valid TEXTURE2D (Pitch 0 = computed). */
SIM_ALLOCATION_DATA sim_allocation_texture2d(UINT64 width, UINT64 height, UINT bytes_per_texel,
                                             UINT placement, UINT usage);

/*
 * SimDescribeAllocation - the pure parser behind DxgkDdiCreateAllocation.
 * @Config: the adapter's configuration (NULL = the defaults).
 * @pPrivateDriverData, @PrivateDriverDataSize: the hostile bytes (may be NULL when size is 0).
 * @pInfo: receives every output of DXGK_ALLOCATIONINFO but hAllocation (which is not touched);
 *	pPrivateDriverData/PrivateDriverDataSize are not touched either.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for NULL @pInfo, a bad @Config or bad
 * private data (then @pInfo's outputs are not written). Never reads outside the given bytes.
 */
NTSTATUS SimDescribeAllocation(const SIM_HARDWARE_CONFIG *Config, const VOID *pPrivateDriverData,
                               UINT PrivateDriverDataSize, DXGK_ALLOCATIONINFO *pInfo);

/* ---- Command stream (DXGKARG_SUBMITCOMMAND.pAlDmaBuffer) -------------------------------------- */

/*
 * The stream is [DmaBufferSubmissionStartOffset, DmaBufferSubmissionEndOffset) of pAlDmaBuffer
 * (End <= DmaBufferSize, at most SIM_CMD_MAX_STREAM_BYTES; Flags.Null: no commands, only the
 * fence). A sequence of little-endian records { u32 Opcode; u32 Length; u8 Payload[Length]; },
 * no alignment:
 *   SIM_CMD_NOP   (0): any Length; the payload is skipped.
 *   SIM_CMD_FILL  (1): Length 24: u32 Index, u32 Pattern, u64 Offset, u64 Size — byte k of
 *                      [Offset, Offset + Size) of allocation Index gets byte k % 4 of Pattern.
 *   SIM_CMD_COPY  (2): Length 32: u32 SrcIndex, u32 DstIndex, u64 SrcOffset, u64 DstOffset,
 *                      u64 Size — ranges of one allocation must not overlap.
 *   SIM_CMD_CHECK (3): Length 24: u32 Index, u32 Pattern, u64 Offset, u64 Size — the GPU reads
 *                      the range back; byte k must equal byte k % 4 of Pattern. A mismatch is a
 *                      check failure (event SIM_EVENT_CHECK_FAILED naming the first wrong byte;
 *                      with SIM_HW_ABORT_ON_GPU_FAULT: abort, "alloclab sim: content check
 *                      failed ..."). The CHECK sizes of one submission add up to at most
 *                      SIM_CMD_MAX_CHECK_BYTES.
 * Index is a position in pAlAllocationList (< AlAllocationListSize); every entry's
 * hDeviceSpecificAllocation must be an open binding of the submitting device (hContext).
 * Offset + Size must lie inside the allocation's Size (no overflow); Size 0 accesses nothing.
 * Any violation (truncated record, unknown opcode, wrong Length, bad index/offset/size, too many
 * check bytes, a translation over GPU_ENGINE_MAX_STREAM_BYTES) rejects the submission with
 * STATUS_INVALID_PARAMETER at submit time: nothing is queued, no fence will complete.
 * Commands run in order; the first GPU page fault stops the submission (event
 * SIM_EVENT_GPU_FAULT; its fence still completes).
 */
#define SIM_CMD_NOP 0u
#define SIM_CMD_FILL 1u
#define SIM_CMD_COPY 2u
#define SIM_CMD_CHECK 3u
#define SIM_CMD_HEADER_BYTES 8u
#define SIM_CMD_FILL_BYTES 32u  /* whole record */
#define SIM_CMD_COPY_BYTES 40u  /* whole record */
#define SIM_CMD_CHECK_BYTES 32u /* whole record */
#define SIM_CMD_MAX_STREAM_BYTES ((UINT)1 << 20)
#define SIM_CMD_MAX_CHECK_BYTES ((UINT64)64 << 20)
/* The most entries pAlAllocationList may have. */
#define SIM_MAX_ALLOCATION_LIST 65536u

/* Encoders: each writes one whole record at @out (room for its *_BYTES) and returns its size. */
size_t sim_cmd_nop(void *out, UINT payload_bytes); /* writes 8 + payload_bytes (zeroes) */
size_t sim_cmd_fill(void *out, UINT index, UINT64 offset, UINT64 size, UINT pattern);
size_t sim_cmd_copy(void *out, UINT src_index, UINT64 src_offset, UINT dst_index,
                    UINT64 dst_offset, UINT64 size);
size_t sim_cmd_check(void *out, UINT index, UINT64 offset, UINT64 size, UINT pattern);

/* ---- Inspection (tests, fuzzers) ------------------------------------------------------------- */

/*
 * struct sim_miniport_stats - process-wide totals over every sim adapter (the port hides the
 * miniport's context, so the inspection API needs none). "Live" fields are summed over the
 * adapters alive at the call; the others count since process start and never go down.
 */
typedef struct sim_miniport_stats {
  /* live */
  uint64_t adapters, devices, zombie_devices, resources, allocations, bindings;
  uint64_t host_bytes;         /* sum of AlDdiQueryLiveObjects.HostBytes */
  uint64_t system_bytes;       /* of which: system-memory copies of evicted allocations */
  uint64_t page_table_bytes;   /* of which: page tables of live address spaces */
  uint64_t va_host_bytes;      /* not in host_bytes: VA-allocator records of live address spaces
                                  (released blocks stay on its free lists for reuse, so this may
                                  stay up after a failed call; va_reserved_bytes does not) */
  uint64_t committed_bytes;    /* GPU physical bytes committed, every segment */
  uint64_t mapped_bytes;       /* GPU VA bytes mapped (4 KiB leaves + 2 MiB leaves) */
  uint64_t va_reserved_bytes;  /* GPU VA reserved for bindings */
  uint64_t queued_submissions; /* submitted, not yet completed */
  /* totals */
  uint64_t submissions, completions;
  uint64_t gpu_faults, check_failures;
  uint64_t fills;
  uint64_t transfers;        /* every TRANSFER */
  uint64_t to_system;        /* of which segment -> system memory */
  uint64_t from_system;      /* of which system memory -> segment */
  uint64_t remaps;           /* binding mappings redone by FILL/TRANSFER */
  uint64_t lazy_maps;        /* bindings mapped on demand at submit */
  uint64_t rejected_submissions; /* SubmitCommand returned a failure */
} sim_miniport_stats;

/* sim_miniport_get_stats - a snapshot (exact when no other thread uses a sim adapter). */
void sim_miniport_get_stats(sim_miniport_stats *out);

/*
 * sim_miniport_check_hardware - the simulated hardware's invariant walk, for one sim adapter,
 * held against the sim's own records (a fuzzing oracle: the port's walk cannot see inside the
 * miniport).
 * @DeviceHandle: the port's handle of the adapter, as the port gave it to DxgkDdiStartDevice
 *	(DXGKRNL_INTERFACE.DeviceHandle; for alloclab's port, the al_adapter pointer).
 * @Flags: 0 for the whole walk, or SIM_CHECK_HARDWARE_LIVE.
 * @msg, @cap: receives a one-line description of the first disagreement (NUL-terminated, cut
 *	to @cap; nothing is written when @msg is NULL or @cap is 0).
 *
 * Under the adapter's lock, it checks:
 *  - each segment: gpu_segment_check() (not with SIM_CHECK_HARDWARE_LIVE), its id, kind, size
 *    and page size as configured; the
 *    committed bytes equal what the live allocations placed in it commit; each placed
 *    allocation's first and last page are owned by it (its owner id);
 *  - each live and zombie device's address space: gpu_as_check(); its mapped bytes equal the
 *    sizes of its mapped bindings; a zombie has queued work and no binding;
 *  - each open binding that is mapped and whose allocation is live: the leaves of its first and
 *    last page (gpu_as_query()) point into its allocation's segment at the offset the sim
 *    recorded, writable unless opened ReadOnly, and (once per allocation, its first binding) a
 *    GPU read of the first page (gpu_as_translate()) lands there (an allocation in system memory
 *    must not be mapped); an open binding that is not mapped, and a closed binding of a block
 *    still held, map nothing at their first and last page; per segment, the bytes the MMU maps
 *    equal the mapped bindings' (when no binding is orphaned: a port that destroyed an
 *    allocation under an open binding leaves a stale mapping, which the GPU reports as a fault);
 *  - the engine: the last submitted fence is the sim's; the completed fence, the completion
 *    count and the queued count match the sim's record of completions (on_complete); the last
 *    completed fence's status (gpu_engine_fence_status) is the one the sim was told; a fence
 *    submitted later has no status yet; every device's queued work adds up to the queued count;
 *  - the adapter's live counts (devices, zombies, resources, allocations, bindings).
 * A threaded engine may have finished one submission whose completion the sim has not recorded
 * yet: that lag of one is allowed. The walk is exact when no DDI of the adapter runs on another
 * thread meanwhile (the fuzz executor calls it between calls). A broken hw/gpu invariant's
 * findings (the gpu_*_check function's, found and expected values) end the message; nothing
 * is printed.
 *
 * Cost: O(segment pages + granules) for gpu_segment_check, O(page-table entries) for
 * gpu_as_check, two table walks per mapped binding, a GPU read and two page lookups per placed
 * allocation;
 * allocates nothing. SIM_CHECK_HARDWARE_LIVE leaves out the one part bounded by the segments'
 * size rather than by what is live (gpu_segment_check), for a caller that walks after every
 * call and runs the whole walk now and then (the fuzz executor: at the end of each program).
 *
 * Returns: true when everything agrees; false when something does not, when @Flags has an
 * unknown bit, or when no live sim adapter was started with @DeviceHandle.
 */
bool sim_miniport_check_hardware(HANDLE DeviceHandle, UINT Flags, char *msg, size_t cap);
#define SIM_CHECK_HARDWARE_LIVE 0x1u /* skip gpu_segment_check (see Cost) */

/*
 * The sim's damage kinds: the test of sim_miniport_check_hardware() (alloclab/testing.h, DOC:
 * Damage). For tests and fuzzers only. Each kind breaks one invariant of one sim adapter's state
 * that the walk guards (the sim's records of allocations, bindings, devices, submissions and
 * counts, or the simulated GPU's segments, page tables and engine as the sim sees them), runs
 * the whole walk (@Flags 0), and restores what it changed byte for byte.
 */

/* sim_testing_damage_kind_count - how many sim damage kinds there are (0 .. count-1). */
unsigned sim_testing_damage_kind_count(void);

/* sim_testing_damage_kind - kind @kind's static description; NULL when @kind >= the count. */
const al_damage_kind_info *sim_testing_damage_kind(unsigned kind);

/*
 * sim_testing_damage - break invariant @kind of the sim adapter started with @DeviceHandle, run
 * sim_miniport_check_hardware(@DeviceHandle, 0, ...), undo.
 * @DeviceHandle: as for sim_miniport_check_hardware(); the adapter must be quiescent for the
 *	whole call (testing.h, DOC: Damage).
 * @kind, @pick, @msg, @cap: as al_testing_damage() (alloclab/damage.h).
 *
 * Returns: AL_DAMAGE_DETECTED, AL_DAMAGE_MISSED, AL_DAMAGE_NO_TARGET (also when no live sim
 * adapter was started with @DeviceHandle) or AL_DAMAGE_UNKNOWN_KIND. The adapter's state is as
 * before the call in every case. Allocates nothing.
 */
al_damage_result sim_testing_damage(HANDLE DeviceHandle, unsigned kind, unsigned pick, char *msg,
                                    size_t cap);

/* Event kinds. */
#define SIM_EVENT_GPU_FAULT 1u
#define SIM_EVENT_CHECK_FAILED 2u
/* GPU fault kinds (values of gpu_fault_kind). */
#define SIM_FAULT_UNMAPPED 1u
#define SIM_FAULT_FREED_PAGE 2u
#define SIM_FAULT_WRITE_READ_ONLY 3u

/*
 * struct sim_event - one GPU page fault or check failure.
 * @seq: 1-based, process-wide. @kind: SIM_EVENT_*. @adapter: the adapter's 1-based serial.
 * @device: the port's handle of the submitting device (DXGKARG_CREATEDEVICE.hDevice on input).
 * @as_id: its GPU address space. @fence: the submission's fence (64-bit, as the engine saw it).
 * GPU_FAULT: @fault_kind (SIM_FAULT_*), @write (the access), @va, @segment_id/@phys (where the
 *	page-table entry points; 0 for unmapped), @allocation (the owner id the page last had:
 *	sim_miniport_allocation_id(); 0 when unknown).
 * CHECK_FAILED: @allocation (owner id of the checked allocation), @list_index, @offset (byte
 *	offset of the first wrong byte inside the allocation), @expected, @found.
 */
typedef struct sim_event {
  uint64_t seq;
  uint32_t kind;
  uint32_t adapter;
  uint32_t device;
  uint32_t as_id;
  uint64_t fence;
  uint32_t fault_kind;
  uint32_t write;
  uint64_t va;
  uint32_t segment_id;
  uint32_t list_index;
  uint64_t phys;
  uint64_t allocation;
  uint64_t offset;
  uint8_t expected, found;
} sim_event;

#define SIM_EVENT_LOG_SIZE 256u

/* sim_miniport_events - copies the most recent events (at most SIM_EVENT_LOG_SIZE kept), oldest
 * first, into @out (room for @max). Returns how many were written. */
size_t sim_miniport_events(sim_event *out, size_t max);
/* Empties the event log (totals keep counting). */
void sim_miniport_events_clear(void);
/* "unmapped", "freed page", "write to read-only page"; "unknown" otherwise. */
const char *sim_fault_kind_name(uint32_t fault_kind);

/* sim_miniport_allocation_id - the owner id the GPU tags @hAllocation's pages with (a live
 * allocation returned by DxgkDdiCreateAllocation); 0 for anything else. For direct-DDI tests. */
uint64_t sim_miniport_allocation_id(HANDLE hAllocation);

/* ---- Entry point ----------------------------------------------------------------------------- */

/*
 * SimMiniportDriverEntry - register the sim miniport with the port: every DDI of
 * DRIVER_INITIALIZATION_DATA including BuildPagingBuffer, AlDdiRunEngine (completes queued work
 * in deterministic mode; *pCompleted = 0 in threaded mode) and AlDdiQueryLiveObjects. Holds no
 * state: one driver object serves any number of adapters.
 * Returns: what DxgkInitialize returns.
 */
NTSTATUS SimMiniportDriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HW_SIM_MINIPORT_H */
