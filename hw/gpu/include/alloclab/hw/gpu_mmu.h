/*
 * gpu_mmu.h — the MMU of the simulated GPU: per-device GPU virtual address spaces with 4-level
 * page tables, a VA-range allocator, translation, and the GPU page-fault log.
 *
 * DOC: Overview
 * One gpu_mmu per GPU holds the attached segments (by id), the fault log and the fault injector.
 * Each device gets an address space (gpu_as) from it: a 48-bit GPU VA space, a page table and a
 * VA allocator. The MMU knows nothing of DDIs or handles; the miniport maps what it decides.
 *
 * Page table: 4 levels of 512 eight-byte entries (9 VA bits per level), 4 KiB leaf pages:
 *   level 4 (root) VA[47:39] -> level 3 VA[38:30] -> level 2 VA[29:21] -> level 1 VA[20:12].
 * A level-2 entry is either a pointer to a level-1 table or a 2 MiB large-page leaf; level-1
 * entries are 4 KiB leaves; level-4/3 entries are always pointers (no 1 GiB pages).
 * Leaf format (GPU_PTE_*): bit 0 valid, bit 2 writable, bit 3 large (level 2), bits 12..51 the
 * physical frame (segment offset >> 12), bits 52..56 the segment id. A pointer entry holds
 * valid | GPU_PTE_TABLE (bit 1), in bits 2..11 the number of live (non-zero) entries of the
 * table it links, and in bits 12..63 the host address of that table (a simulation shortcut for
 * the physical address real hardware keeps there). Each table page is a host allocation of
 * exactly 4096 bytes, 4096-aligned (the 512 entries and nothing else, so it fills one 4 KiB
 * size class of the process allocator: a table with an 8-byte count of its own would take 4104
 * bytes and land in jemalloc's 5 KiB class), taken at FAULT_PAGE_TABLE_PAGE and freed as soon as
 * its last entry is cleared; the root lives as long as the address space, which keeps the
 * root's pointer entry (address and count) itself, as a page-table base register would.
 *
 * Large-page rule: while mapping, at each point of the range where the VA and the physical
 * offset are both 2 MiB-aligned and at least 2 MiB remain, one level-2 large leaf maps the next
 * 2 MiB (unless GPU_MAP_NO_LARGE_PAGES); everywhere else 4 KiB leaves are written. A segment's
 * 64 KiB pages are mapped with 4 KiB leaves (16 per segment page) or with large pages.
 *
 * Page 0 (VA [0, 4096)) is never mapped and never handed out, so a NULL GPU VA always faults.
 *
 * Map is all-or-nothing: the range must be unmapped; if a table allocation fails part-way, every
 * leaf written so far is cleared and every table that became (or was left) empty is freed, so
 * the page-table bytes are back to their value before the call. Unmap requires the whole range
 * to be mapped and no large page to straddle its ends, else it changes nothing.
 *
 * Faults: an access (gpu_as_translate, gpu_as_read/write/fill, the engine) to an unmapped VA, to
 * a physical page whose owner is 0 (released: the page went back while still mapped), or a
 * write through a read-only mapping is a GPU page fault: it returns GPU_STATUS_PAGE_FAULT and
 * appends a gpu_fault record {address space id, VA, kind, segment, offset, last owner} to the
 * MMU's fault log (a ring of the last GPU_MMU_FAULT_LOG_SIZE records plus a total count).
 *
 * VA allocator (gpu_va_reserve/gpu_va_release): power-of-two size classes ("orders": a block of
 * order k is 4 KiB << k bytes, naturally aligned, k = 0..35). A request takes the class of
 * max(size rounded up to a power of two, alignment); it pops that class's free list, else cuts
 * a new block from a bump pointer (the alignment gap before it is split into naturally aligned
 * power-of-two blocks pushed on their free lists), else takes a whole block of the smallest
 * larger class that has one. Blocks are never split or merged once made: reserve and release are
 * O(1) expected (hash of block starts) + O(log VA) for the bump split. Costs: up to 2x internal
 * VA waste per block (VA is plentiful: 256 TiB), and VA in use is bounded by the sum over
 * classes of each class's peak; host memory: a 32-byte record (a heap block) per block plus at
 * most 8 bytes of hash bucket. Blocks of 2 MiB and more are 2 MiB-aligned, so they can take
 * large pages.
 *
 * Ownership: gpu_mmu_create()/gpu_as_create() return objects the caller owns until the matching
 * destroy. Segments are borrowed: attach them before mapping, detach (or destroy the MMU) before
 * destroying them. The fault injector is borrowed and must outlive the MMU.
 *
 * Locking: each address space has a mutex over its page table, VA allocator and counters; the MMU
 * has one over the segment table and the fault log (taken after an address space's, never the
 * other way). Every call may run on any thread; an engine thread may access an address space
 * while another thread maps or unmaps in it. An access takes the address-space lock only to walk
 * the table, then the segment lock for the bytes, so a page released between the walk and the
 * access is caught by the owner check.
 *
 * Cost (p = 4 KiB pages of the range, L = 2 MiB large pages, b = bytes):
 *   map:    O(p + L) entry writes + the missing tables (one per 2 MiB of 4 KiB leaves).
 *   unmap:  O(p + L): one cleared entry per 4 KiB page, one per large page (O(1) per 2 MiB),
 *           plus one check pass of the same size (gpu_as_unmap_known and gpu_as_unmap_release
 *           skip the check pass: one walk; release's own emptiness walk is skipped too).
 *   translate: O(1) (a 4-level walk) + the segment's owner check.
 *   read/write/fill: one walk per 4 KiB page (per 2 MiB for a large page) + O(b).
 *   host memory: 8 bytes of leaf per mapped 4 KiB page, which is the level-1 table's 4096
 *   bytes shared by its 512 pages when it is full; a large page costs 8 bytes at level 2 (per
 *   2 MiB, when the level-2 table is full). Isolated small mappings pay whole tables: a lone
 *   4 KiB page in an empty space costs 3 tables (12 KiB) besides the root.
 *
 * Glossary: VA = GPU virtual address; AS = address space (one per device); PTE = page-table
 * entry (any level); leaf = an entry that maps memory; table = a page-table page; large page =
 * a 2 MiB leaf at level 2; order = log2(block bytes / 4 KiB) of a VA block; pin = a reference a
 * queued engine submission holds on an AS.
 */
#ifndef ALLOCLAB_HW_GPU_MMU_H
#define ALLOCLAB_HW_GPU_MMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h" /* NTSTATUS */
#include "alloclab/hw/fault_injection.h"
#include "alloclab/hw/gpu_memory.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GPU_VA_BITS 48u
#define GPU_VA_LIMIT (UINT64_C(1) << GPU_VA_BITS)
#define GPU_PAGE_SIZE UINT64_C(4096)
#define GPU_LARGE_PAGE_SIZE (UINT64_C(2) << 20)
#define GPU_PT_LEVELS 4u
#define GPU_PT_ENTRIES 512u
/* Orders of VA blocks: 4 KiB << 0 .. 4 KiB << 35 (128 TiB). */
#define GPU_VA_ORDERS 36u
/* Records kept by the fault log ring. */
#define GPU_MMU_FAULT_LOG_SIZE 256u

/* Page-table entry bits (see DOC: Overview). */
#define GPU_PTE_VALID (UINT64_C(1) << 0)
#define GPU_PTE_TABLE (UINT64_C(1) << 1)
#define GPU_PTE_WRITE (UINT64_C(1) << 2)
#define GPU_PTE_LARGE (UINT64_C(1) << 3)
#define GPU_PTE_FRAME_SHIFT 12u
#define GPU_PTE_FRAME_MASK (((UINT64_C(1) << 40) - 1) << GPU_PTE_FRAME_SHIFT)
#define GPU_PTE_SEGMENT_SHIFT 52u
#define GPU_PTE_SEGMENT_MASK (UINT64_C(0x1F) << GPU_PTE_SEGMENT_SHIFT)

/* gpu_as_map() flags. */
#define GPU_MAP_READ_ONLY 0x1u      /* leaves without GPU_PTE_WRITE: writes fault */
#define GPU_MAP_NO_LARGE_PAGES 0x2u /* 4 KiB leaves only */
#define GPU_MAP_FLAGS_ALL (GPU_MAP_READ_ONLY | GPU_MAP_NO_LARGE_PAGES)

typedef struct gpu_mmu gpu_mmu;
typedef struct gpu_as gpu_as;

typedef enum gpu_access {
  GPU_ACCESS_READ = 1,
  GPU_ACCESS_WRITE = 2,
} gpu_access;

typedef enum gpu_fault_kind {
  GPU_FAULT_UNMAPPED = 1,        /* no leaf maps the VA (includes page 0 and VAs >= 2^48) */
  GPU_FAULT_FREED_PAGE = 2,      /* the leaf maps a physical page whose owner is 0 */
  GPU_FAULT_WRITE_READ_ONLY = 3, /* a write through a read-only leaf */
} gpu_fault_kind;

/*
 * struct gpu_fault - one GPU page fault.
 * @seq: 1-based number of the fault in the MMU's life (gpu_mmu_fault_total() at record time).
 * @as_id: the faulting address space (gpu_as_id()).
 * @kind, @access: what went wrong, on a read or a write.
 * @va: the first faulting byte.
 * @segment_id, @phys: where the leaf points (0, 0 for GPU_FAULT_UNMAPPED).
 * @last_owner: GPU_FAULT_FREED_PAGE: the allocation that last owned the page (0: never
 *	committed); GPU_FAULT_WRITE_READ_ONLY: the page's current owner; GPU_FAULT_UNMAPPED: 0.
 */
typedef struct gpu_fault {
  uint64_t seq;
  uint32_t as_id;
  gpu_fault_kind kind;
  gpu_access access;
  uint32_t segment_id;
  uint64_t va;
  uint64_t phys;
  uint64_t last_owner;
} gpu_fault;

/*
 * struct gpu_mapping - what gpu_as_query() found for a VA.
 * @segment, @phys: the byte's physical location. @writable: no GPU_MAP_READ_ONLY.
 * @large: mapped by a 2 MiB leaf. @pte: the raw leaf entry.
 */
typedef struct gpu_mapping {
  gpu_segment *segment;
  uint64_t phys;
  bool writable;
  bool large;
  uint64_t pte;
} gpu_mapping;

/*
 * struct gpu_as_stats - a snapshot of an address space (gpu_as_get_stats()).
 * @pt_pages, @pt_bytes: page-table pages held (root included) and their host bytes: the page
 *	table's memory cost, to share among allocations by mapped bytes.
 * @mapped_4k, @mapped_2m: live 4 KiB and 2 MiB leaves.
 * @pte_writes: leaf entries written (set or cleared) since creation.
 * @pde_writes: pointer entries written (a table linked or unlinked).
 * @tables_allocated, @tables_freed: table pages taken / returned since creation (root included).
 * @maps, @unmaps: successful calls. @injected_failures: FAULT_PAGE_TABLE_PAGE failures.
 * @va_reserved_bytes, @va_reserved_blocks: VA blocks reserved now (bytes include class
 *	rounding). @va_free_blocks: blocks on the free lists. @va_host_bytes: the allocator's host
 *	memory (blocks and hash table).
 */
typedef struct gpu_as_stats {
  uint64_t pt_pages, pt_bytes;
  uint64_t mapped_4k, mapped_2m;
  uint64_t pte_writes, pde_writes;
  uint64_t tables_allocated, tables_freed;
  uint64_t maps, unmaps, injected_failures;
  uint64_t va_reserved_bytes, va_reserved_blocks, va_free_blocks, va_host_bytes;
} gpu_as_stats;

/* ---- The MMU ------------------------------------------------------------------------------- */

/**
 * gpu_mmu_create - create an MMU with no segment and an empty fault log.
 * @inj: the adapter's fault injector (borrowed), or NULL.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when @out_mmu is NULL; STATUS_NO_MEMORY.
 */
NTSTATUS gpu_mmu_create(fault_injector *inj, gpu_mmu **out_mmu);

/**
 * gpu_mmu_destroy - free the MMU (NULL: no-op). Every address space must be destroyed first:
 * otherwise it prints "gpu_mmu_destroy: N address spaces still live" and aborts.
 */
void gpu_mmu_destroy(gpu_mmu *mmu);

/**
 * gpu_mmu_attach_segment - make @segment mappable, under its id.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when an argument is NULL or another
 * segment holds that id (attaching the same segment twice is a no-op success).
 */
NTSTATUS gpu_mmu_attach_segment(gpu_mmu *mmu, gpu_segment *segment);

/**
 * gpu_mmu_detach_segment - forget @segment so it may be destroyed.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when it is not attached or some address
 * space still maps a page of it (nothing changed).
 */
NTSTATUS gpu_mmu_detach_segment(gpu_mmu *mmu, gpu_segment *segment);

/* Bytes of @segment that address spaces map now (a page mapped twice counts twice). */
uint64_t gpu_mmu_segment_mapped_bytes(gpu_mmu *mmu, const gpu_segment *segment);

/* Faults recorded since creation (the ring keeps the last GPU_MMU_FAULT_LOG_SIZE). */
uint64_t gpu_mmu_fault_total(gpu_mmu *mmu);

/**
 * gpu_mmu_fault_log - copy the most recent faults, oldest first.
 * @out: room for @max records. Returns: how many were written (<= @max, <= ring content).
 */
size_t gpu_mmu_fault_log(gpu_mmu *mmu, gpu_fault *out, size_t max);

/* Empties the ring (the total keeps counting). */
void gpu_mmu_fault_clear(gpu_mmu *mmu);

/* ---- Address spaces ------------------------------------------------------------------------ */

/**
 * gpu_as_create - create an empty address space (allocates the root table).
 * @out_as: receives it; its id (gpu_as_id()) is 1 for the MMU's first, then 2, ... (never 0).
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for NULL; STATUS_NO_MEMORY (also when
 * FAULT_PAGE_TABLE_PAGE refuses the root).
 */
NTSTATUS gpu_as_create(gpu_mmu *mmu, gpu_as **out_as);

/**
 * gpu_as_destroy - unmap everything, free every table and VA block, free the space (NULL:
 * no-op). It is a bug to destroy a space queued engine work still uses (pinned): the MMU prints
 * "gpu_as_destroy: address space N has K queued submissions" and aborts.
 */
void gpu_as_destroy(gpu_as *as);

uint32_t gpu_as_id(const gpu_as *as);
gpu_mmu *gpu_as_mmu(const gpu_as *as);

/**
 * gpu_va_reserve - reserve a VA block.
 * @size: bytes, > 0 (the block is the next power of two >= max(@size, 4 KiB)).
 * @alignment: 0 or a power of two; below 4 KiB means 4 KiB. The block is aligned to its own
 *	size, which is at least @alignment.
 * @out_va: receives the block's start (never 0; nothing of page 0).
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER (NULL, @size 0, bad @alignment);
 * STATUS_GRAPHICS_NO_VIDEO_MEMORY when no block of the class is left in the 48-bit space;
 * STATUS_NO_MEMORY when host memory for the block records ran out. Failure changes nothing.
 */
NTSTATUS gpu_va_reserve(gpu_as *as, uint64_t size, uint64_t alignment, uint64_t *out_va);

/**
 * gpu_va_release - return a reserved block.
 * @va: a start returned by gpu_va_reserve() and not released since.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when @va starts no reserved block (never
 * reserved, released already) or a page of the block is still mapped (nothing changed).
 */
NTSTATUS gpu_va_release(gpu_as *as, uint64_t va);

/**
 * gpu_as_map - map [@va, @va + @size) to @segment's [@phys_offset, @phys_offset + @size).
 * @va, @phys_offset, @size: multiples of 4 KiB, @size > 0, @va >= 4096, @va + @size <= 2^48,
 *	the physical range inside the segment.
 * @segment: attached to this address space's MMU. Its pages need not be committed yet: the
 *	owner is checked on access.
 * @flags: GPU_MAP_* bits.
 *
 * The VA range need not come from gpu_va_reserve(), but it must be entirely unmapped.
 * Large pages per the rule in DOC: Overview. All-or-nothing.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when a rule above is broken or a page of
 * the range is mapped already; STATUS_NO_MEMORY when a table page could not be allocated
 * (FAULT_PAGE_TABLE_PAGE). On failure nothing is mapped and no table is left over.
 */
NTSTATUS gpu_as_map(gpu_as *as, uint64_t va, gpu_segment *segment, uint64_t phys_offset,
                    uint64_t size, uint32_t flags);

/**
 * gpu_as_unmap - clear the leaves of [@va, @va + @size) and free tables left empty.
 * @va, @size: multiples of 4 KiB, @size > 0. Every page must be mapped, and a 2 MiB leaf must
 *	lie wholly inside or outside the range.
 *
 * Never allocates. Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER (nothing changed).
 */
NTSTATUS gpu_as_unmap(gpu_as *as, uint64_t va, uint64_t size);

/**
 * gpu_as_unmap_known - gpu_as_unmap's fast path: clears the leaves of [@va, @va + @size) and
 * frees tables left empty in ONE walk, with no check pass.
 * @va, @size: as gpu_as_unmap. The range should be exactly what one successful gpu_as_map
 *	mapped (a caller that tracks its own mappings, like the sim miniport's bindings). It is a
 *	bug to call it on a range a 2 MiB leaf straddles (that leaf is cleared whole). Pages of the
 *	range that are not mapped are skipped, so no check is needed for them.
 *
 * Never allocates. Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for a malformed range.
 */
NTSTATUS gpu_as_unmap_known(gpu_as *as, uint64_t va, uint64_t size);

/**
 * gpu_as_unmap_release - clear every leaf inside the reserved VA block that starts at @va, free
 * the tables left empty, and release the block (gpu_va_release without its emptiness walk): one
 * walk of the block's live entries in all.
 * @va: a start returned by gpu_va_reserve() and not released since. Whatever is mapped inside
 *	the block is the caller's (it reserved it), so it may map many ranges there and drop them
 *	all at once.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when @va starts no reserved block or a 2 MiB
 * leaf straddles the block (only possible for a block under 2 MiB): nothing changed.
 */
NTSTATUS gpu_as_unmap_release(gpu_as *as, uint64_t va);

/**
 * gpu_as_query - look a VA up without recording anything.
 *
 * Returns: true and fills @out (may be NULL) when a leaf maps @va; false otherwise.
 */
bool gpu_as_query(gpu_as *as, uint64_t va, gpu_mapping *out);

/**
 * gpu_as_translate - translate one access, as the GPU would.
 * @access: GPU_ACCESS_READ or GPU_ACCESS_WRITE.
 * @out_segment, @out_phys: receive the physical location on success (either may be NULL).
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for a NULL @as or a bad @access;
 * GPU_STATUS_PAGE_FAULT, with a record in the fault log, when @va is unmapped, its page is free
 * (owner 0), or @access writes a read-only leaf. Outputs are written only on success.
 */
NTSTATUS gpu_as_translate(gpu_as *as, uint64_t va, gpu_access access, gpu_segment **out_segment,
                          uint64_t *out_phys);

/**
 * gpu_as_read - read bytes through the address space, as the GPU would.
 * gpu_as_write - write bytes. gpu_as_fill - fill with a 32-bit pattern (byte k gets byte k % 4
 * of @pattern, little-endian).
 *
 * The range is walked page by page: at the first page that faults the call records the fault
 * and returns GPU_STATUS_PAGE_FAULT; pages before it have been accessed. @size 0 does nothing.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for a NULL pointer; GPU_STATUS_PAGE_FAULT.
 */
NTSTATUS gpu_as_read(gpu_as *as, uint64_t va, void *dst, uint64_t size);
NTSTATUS gpu_as_write(gpu_as *as, uint64_t va, const void *src, uint64_t size);
NTSTATUS gpu_as_fill(gpu_as *as, uint64_t va, uint64_t size, uint32_t pattern);

/* gpu_as_get_stats - a snapshot of the counters (NULL @as: zeroes). */
void gpu_as_get_stats(gpu_as *as, gpu_as_stats *out_stats);

/**
 * gpu_as_check - walk the page table and check its invariants: every table's live-entry count
 * matches its non-zero entries, no table but the root is empty, leaf counts and table bytes
 * match the counters. Returns true when consistent; else false, with each finding (found and
 * expected, "gpu_as_check: AS 3: ...") in @msg in walk order, "; " between them, cut to @cap
 * bytes with a NUL (@msg may be NULL; "" on success). Prints nothing. A NULL @as is
 * inconsistent.
 * Cost: O(512 per table) reads, the empty entries read eight at a time without ASan's and
 * UBSan's per-load checks (under ASan each table page is checked addressable once instead).
 */
bool gpu_as_check(gpu_as *as, char *msg, size_t cap);

/* For the engine: a queued submission pins its address space; gpu_as_destroy() refuses a
 * pinned one. gpu_as_pins() says how many pins are held. */
void gpu_as_pin(gpu_as *as);
void gpu_as_unpin(gpu_as *as);
uint64_t gpu_as_pins(const gpu_as *as);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HW_GPU_MMU_H */
