/*
 * gpu_memory.h — physical memory of the simulated GPU: memory and aperture segments with real
 * host backing, and an owner tag on every physical page.
 *
 * DOC: Overview
 * A segment is a range of GPU physical memory, addressed by byte offsets [0, size). Two kinds:
 *  - memory segment (GPU_SEGMENT_MEMORY, "VRAM"): one dedicated host region of the segment's
 *    size, reserved with mmap at creation and backed lazily by the host kernel as it is touched.
 *  - aperture segment (GPU_SEGMENT_APERTURE, system pages the GPU reaches through an aperture):
 *    a range of physical addresses with no backing until a range is committed; commit allocates
 *    one host page per segment page (zero-filled), release frees them.
 * The page size (the commit granule and the unit of owner tags) is 4 KiB or 64 KiB.
 *
 * Owner tags: every page carries @owner (the allocation id that committed it; 0 = free) and
 * @last_owner (kept after release), so a later access to a released page is reported as "freed
 * page, last owned by allocation X" — the use-after-free the lab hunts (pages returned while the
 * GPU can still map them). Allocation ids are chosen by the caller (the miniport); 0 is reserved.
 *
 * Accesses (read, write, fill, copy) are bounds-checked and ownership-checked before any byte
 * moves: a range that leaves the segment is STATUS_INVALID_PARAMETER; a range touching a free
 * page is GPU_STATUS_PAGE_FAULT with the first such page described in a gpu_segment_fault, and
 * nothing is copied. No call ever touches host memory outside the segment's backing.
 * A committed memory-segment page keeps whatever bytes it held before (as on hardware: no
 * scrubbing); an aperture page starts zeroed.
 *
 * Sparse contents: a segment keeps one bit per 4 KiB content granule (GPU_CONTENT_GRANULE)
 * saying whether its contents are held in host memory ("stored") or read as zero. A fill with
 * zeros marks whole granules zero instead of writing them, a read of a zero granule produces
 * zeros, a copy or transfer of zero granules marks the destination's granules zero, and only
 * stored granules' bytes are copied; a partial write to a zero granule zeroes that one granule's
 * host bytes first. Host pages behind contents never written are therefore never touched. None
 * of this is observable through reads (gpu_segment_stats.stored_bytes tells how much is stored).
 *
 * Moving contents (eviction, paging): gpu_segment_transfer() moves one allocation's range to a
 * free range of another (or the same) segment — commit destination, copy, release source —
 * and gpu_segment_transfer_to_host() / gpu_segment_transfer_from_host() do the same to and from
 * "system memory", a host buffer the caller owns. A gpu_host_copy is system memory kept sparse
 * the same way: gpu_host_copy_save() copies a committed range out (a host block only per
 * granule that holds stored contents), gpu_host_copy_restore() writes it back.
 *
 * Fault injection: FAULT_SEGMENT_SPACE is asked once when a memory segment is created, once per
 * commit of a memory segment range, and once per host page when an aperture range is committed
 * (so an n-loop fails at every page). A failed call changes nothing.
 *
 * Ownership: gpu_segment_create() returns a segment the caller owns until
 * gpu_segment_destroy(); the segment owns its backing and metadata. The fault injector is
 * borrowed and must outlive the segment.
 *
 * Locking: each segment has a mutex; every call takes it (two of them, in address order, for a
 * copy or transfer between segments), so any call may run on any thread. Contents written by
 * two threads to the same bytes at once are the callers' race, as on hardware.
 *
 * Cost (p = pages of the range, g = its 4 KiB granules, b = bytes stored or copied): create O(1)
 * plus an mmap (metadata is reserved lazily: 16 bytes per page, plus 8 per aperture page for the
 * host page pointer, plus one bit per granule, touched only when used); commit/release O(p) (+
 * one host allocation/free per aperture page, whose bytes are not zeroed; a 4 KiB page's block
 * is taken from and given back to the spare list under one lock per range); a zero fill O(p +
 * g / 64); read/write/copy/transfer O(p + g + b) where only stored granules' bytes count in b;
 * check O(pages + granules of the segment).
 *
 * Glossary: segment = a range of GPU physical memory; offset = a GPU physical address inside one
 * segment; page = the segment's page (4 KiB or 64 KiB); commit = give pages to an owner
 * (aperture: back them with host pages); release = take them back (owner becomes 0); owner =
 * allocation id (uint64, 0 = none); system memory = a host buffer outside every segment.
 */
#ifndef ALLOCLAB_HW_GPU_MEMORY_H
#define ALLOCLAB_HW_GPU_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h" /* NTSTATUS */
#include "alloclab/hw/fault_injection.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Status codes of the simulated GPU, beyond those of d3dkmddi.h. They are real NTSTATUS values
 * (al_status_name() prints them as STATUS_<hex>; gpu_status_name() names them).
 *
 * GPU_STATUS_PAGE_FAULT (STATUS_ACCESS_VIOLATION): an access hit an unmapped GPU virtual
 * address, a free physical page, or wrote a read-only mapping.
 * GPU_STATUS_INVALID_COMMAND (STATUS_ILLEGAL_INSTRUCTION): a command stream is malformed.
 */
#define GPU_STATUS_PAGE_FAULT ((NTSTATUS)0xC0000005L)
#define GPU_STATUS_INVALID_COMMAND ((NTSTATUS)0xC000001DL)

/* The name of a GPU status code ("GPU_STATUS_PAGE_FAULT"), or NULL for any other value. */
const char *gpu_status_name(NTSTATUS status);

/* Largest segment: 1 TiB. Page sizes: 4 KiB and 64 KiB. Contents are tracked (stored or zero)
 * per GPU_CONTENT_GRANULE bytes, which divides every page size. */
#define GPU_CONTENT_GRANULE 4096u
#define GPU_SEGMENT_MAX_SIZE (UINT64_C(1) << 40)
#define GPU_SEGMENT_PAGE_4K 4096u
#define GPU_SEGMENT_PAGE_64K 65536u
/* Segment ids are 1..31 (the 5-bit DDI segment id; 0 = none). */
#define GPU_SEGMENT_MAX_ID 31u

typedef enum gpu_segment_kind {
  GPU_SEGMENT_MEMORY = 1,
  GPU_SEGMENT_APERTURE = 2,
} gpu_segment_kind;

/*
 * struct gpu_segment_desc - what gpu_segment_create() builds.
 * @kind: memory or aperture.
 * @id: the segment id, 1..GPU_SEGMENT_MAX_ID (the MMU names segments by it in its PTEs).
 * @size: bytes: > 0, a multiple of @page_size, at most GPU_SEGMENT_MAX_SIZE.
 * @page_size: GPU_SEGMENT_PAGE_4K or GPU_SEGMENT_PAGE_64K; 0 means 4 KiB.
 */
typedef struct gpu_segment_desc {
  gpu_segment_kind kind;
  uint32_t id;
  uint64_t size;
  uint32_t page_size;
} gpu_segment_desc;

typedef struct gpu_segment gpu_segment;

/*
 * struct gpu_segment_fault - the page an access was refused on (GPU_STATUS_PAGE_FAULT).
 * @segment_id: the segment's id. @offset: the first byte of the access that lies on a free
 * page. @last_owner: the allocation that last owned that page (0: never committed).
 */
typedef struct gpu_segment_fault {
  uint32_t segment_id;
  uint64_t offset;
  uint64_t last_owner;
} gpu_segment_fault;

/*
 * struct gpu_segment_page_info - one page's tags (gpu_segment_get_page_info()).
 * @owner: current owner, 0 = free. @last_owner: the owner before the last release (0 = none).
 * @host_backed: the page has host memory behind it (always true for a memory segment).
 */
typedef struct gpu_segment_page_info {
  uint64_t owner;
  uint64_t last_owner;
  bool host_backed;
} gpu_segment_page_info;

/*
 * struct gpu_segment_stats - a snapshot (gpu_segment_get_stats()).
 * @size, @page_size: as created. @committed_bytes: bytes of committed pages.
 * @backing_bytes: host bytes backing contents: the reserved region of a memory segment (backed
 *	lazily, so resident memory may be less), the allocated pages of an aperture segment.
 * @metadata_bytes: host bytes reserved for tags, page pointers and stored bits (touched lazily).
 * @stored_bytes: bytes of the granules whose contents are held in host memory (the others read
 *	as zero and cost no host page).
 * @commits, @releases: successful calls (transfers count as a commit plus a release).
 * @injected_failures: calls failed by FAULT_SEGMENT_SPACE.
 */
typedef struct gpu_segment_stats {
  uint64_t size, page_size, committed_bytes, backing_bytes, metadata_bytes;
  uint64_t commits, releases, injected_failures;
  uint64_t stored_bytes;
} gpu_segment_stats;

/**
 * gpu_segment_create - create a segment with no page committed.
 * @desc: what to build (rules on struct gpu_segment_desc).
 * @inj: the adapter's fault injector (borrowed), or NULL.
 * @out_segment: receives the segment on success.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for a NULL pointer or a @desc that breaks
 * a rule; STATUS_NO_MEMORY when host memory (or FAULT_SEGMENT_SPACE) refused. On failure
 * nothing is held and @out_segment is not written.
 */
NTSTATUS gpu_segment_create(const gpu_segment_desc *desc, fault_injector *inj,
                            gpu_segment **out_segment);

/**
 * gpu_segment_destroy - free the segment, its backing and metadata (NULL: no-op).
 *
 * Committed pages are simply dropped. It is a bug to destroy a segment an MMU still has attached
 * (see gpu_mmu_detach_segment()) or that a call is still using.
 */
void gpu_segment_destroy(gpu_segment *segment);

/*
 * gpu_segment_cached_regions - host regions kept for reuse (for tests and leak accounting).
 *
 * A destroyed segment's host regions (page tags, aperture page pointers, stored bits) are
 * scrubbed to zero over the pages it ever committed, its memory-segment contents region is left
 * as it is (a new segment's clear stored bits make those bytes read as zero), and all are kept,
 * process-wide, for the next segment that needs a region of the same length (at most 16 regions
 * of at most 64 MiB each; others are unmapped). A new segment therefore starts exactly as from a
 * fresh mapping (contents read as zero, no owner or last owner on any page), but a program that
 * creates one adapter after another (the fuzz executor) no longer pays the host kernel to map,
 * fault in and zero the pages again. The regions stay mapped until the process exits.
 */
size_t gpu_segment_cached_regions(void);

/* gpu_segment_spare_pages - host blocks of released 4 KiB aperture pages kept for the next
 * commits of any aperture segment (at most 16384, 64 MiB; poisoned under ASan while kept). */
size_t gpu_segment_spare_pages(void);

/* gpu_segment_drop_cached_regions - unmaps every region gpu_segment_cached_regions() counts and
 * frees every block gpu_segment_spare_pages() counts. */
void gpu_segment_drop_cached_regions(void);

uint32_t gpu_segment_id(const gpu_segment *segment);
gpu_segment_kind gpu_segment_get_kind(const gpu_segment *segment);
uint64_t gpu_segment_size(const gpu_segment *segment);
uint32_t gpu_segment_page_size(const gpu_segment *segment);

/**
 * gpu_segment_commit - give a free page range to @owner.
 * @offset, @size: page-aligned, @size > 0, inside the segment.
 * @owner: the allocation id, non-zero.
 *
 * Every page of the range must be free. Aperture pages get zero-filled host pages.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for a misaligned or out-of-bounds range,
 * owner 0, or a page of the range that is already committed; STATUS_NO_MEMORY when host memory
 * or FAULT_SEGMENT_SPACE refused. On failure nothing changed (pages allocated so far are freed).
 */
NTSTATUS gpu_segment_commit(gpu_segment *segment, uint64_t offset, uint64_t size, uint64_t owner);

/**
 * gpu_segment_release - free a committed page range.
 * @offset, @size: page-aligned, @size > 0, inside the segment; every page must be committed.
 *
 * Each page's owner moves to @last_owner; aperture pages return their host memory. Never fails
 * for a valid range (no allocation).
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for a misaligned or out-of-bounds range or
 * one with a free page (a double release): then nothing changed.
 */
NTSTATUS gpu_segment_release(gpu_segment *segment, uint64_t offset, uint64_t size);

/**
 * gpu_segment_get_page_info - the tags of the page holding byte @offset.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when @offset is outside the segment or a
 * pointer is NULL.
 */
NTSTATUS gpu_segment_get_page_info(gpu_segment *segment, uint64_t offset,
                                   gpu_segment_page_info *out_info);

/**
 * gpu_segment_read - copy bytes out of committed pages.
 * @offset, @size: any byte range inside the segment (@size 0 does nothing).
 * @dst: host buffer of @size bytes.
 * @out_fault: receives the faulting page on GPU_STATUS_PAGE_FAULT; may be NULL.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when the range leaves the segment or a
 * required pointer is NULL; GPU_STATUS_PAGE_FAULT when a page of the range is free (nothing
 * copied).
 */
NTSTATUS gpu_segment_read(gpu_segment *segment, uint64_t offset, void *dst, uint64_t size,
                          gpu_segment_fault *out_fault);

/* gpu_segment_write - copy @size bytes from @src into committed pages; rules as for read. */
NTSTATUS gpu_segment_write(gpu_segment *segment, uint64_t offset, const void *src,
                           uint64_t size, gpu_segment_fault *out_fault);

/**
 * gpu_segment_fill - fill a byte range with a repeated 32-bit pattern.
 * @pattern: little-endian: byte k of the range gets byte ((@phase + k) % 4) of @pattern.
 * @phase: 0..3, so a fill split into pieces continues the pattern (callers filling a whole range
 *	pass 0).
 *
 * Rules and returns as for gpu_segment_read() (STATUS_INVALID_PARAMETER also for @phase > 3).
 */
NTSTATUS gpu_segment_fill(gpu_segment *segment, uint64_t offset, uint64_t size,
                          uint32_t pattern, uint32_t phase, gpu_segment_fault *out_fault);

/**
 * gpu_segment_copy - copy bytes between committed ranges (of one or two segments).
 *
 * Both ranges must lie inside their segments and be committed; in one segment they must not
 * overlap. Ownership does not change.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER (bounds, overlap, NULL); GPU_STATUS_PAGE_FAULT
 * with the first free page of the source, else of the destination (nothing copied).
 */
NTSTATUS gpu_segment_copy(gpu_segment *src, uint64_t src_offset, gpu_segment *dst,
                          uint64_t dst_offset, uint64_t size, gpu_segment_fault *out_fault);

/**
 * gpu_segment_transfer - move one allocation's pages to another place, contents and owner.
 * @src, @src_offset: a committed range, every page owned by the same allocation.
 * @dst, @dst_offset: a free range (of @src itself or another segment; no overlap).
 * @size: bytes, > 0; offsets and @size are multiples of both segments' page sizes.
 *
 * Commits the destination to the source's owner, copies the bytes, releases the source (its
 * pages keep that owner as @last_owner): what eviction from VRAM to an aperture does.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when a rule above is broken;
 * STATUS_NO_MEMORY when backing the destination failed (FAULT_SEGMENT_SPACE). On failure nothing
 * changed.
 */
NTSTATUS gpu_segment_transfer(gpu_segment *src, uint64_t src_offset, gpu_segment *dst,
                              uint64_t dst_offset, uint64_t size);

/**
 * gpu_segment_transfer_to_host - move one allocation's pages out to system memory.
 * @src, @src_offset, @size: a committed, page-aligned range, every page owned by one allocation.
 * @host: a host buffer of @size bytes that receives the contents.
 * @out_owner: receives that allocation id; may be NULL.
 *
 * Copies the contents, then releases the range. Never allocates.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for a misaligned, out-of-bounds, partly
 * free or mixed-owner range (nothing changed).
 */
NTSTATUS gpu_segment_transfer_to_host(gpu_segment *src, uint64_t src_offset, void *host,
                                      uint64_t size, uint64_t *out_owner);

/**
 * gpu_segment_transfer_from_host - bring contents back from system memory.
 * @dst, @dst_offset, @size: a free, page-aligned range. @host: @size bytes to copy in.
 * @owner: the allocation id to commit to (non-zero).
 *
 * Returns: as gpu_segment_commit(); on success the range holds the bytes of @host.
 */
NTSTATUS gpu_segment_transfer_from_host(gpu_segment *dst, uint64_t dst_offset, const void *host,
                                        uint64_t size, uint64_t owner);

/*
 * System memory, sparse: a gpu_host_copy holds the contents of a byte range in host memory, one
 * block of GPU_CONTENT_GRANULE bytes (the last one shorter) per granule-sized piece of the range
 * that touches a stored granule; a piece that reads as zero has no block.
 */
typedef struct gpu_host_copy gpu_host_copy;

/**
 * gpu_host_copy_save - copy a committed byte range out into a new host copy.
 * @src, @offset, @size: any byte range inside the segment, @size > 0, every page committed.
 * @out_copy: receives the copy (the caller owns it: gpu_host_copy_free()).
 * @out_fault: receives the faulting page on GPU_STATUS_PAGE_FAULT; may be NULL.
 *
 * The range is left as it was (callers release it afterwards if they move it).
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for NULL, size 0 or a range that leaves the
 * segment; GPU_STATUS_PAGE_FAULT when a page is free; STATUS_NO_MEMORY when host memory ran
 * out. On failure nothing is held and @out_copy is not written.
 */
NTSTATUS gpu_host_copy_save(gpu_segment *src, uint64_t offset, uint64_t size,
                            gpu_host_copy **out_copy, gpu_segment_fault *out_fault);

/**
 * gpu_host_copy_restore - write a host copy's contents into a committed range.
 * @copy: from gpu_host_copy_save() (borrowed; unchanged). @dst, @offset: the first byte of a
 * range of gpu_host_copy_size(@copy) bytes inside the segment, every page committed.
 *
 * Zero pieces are written as zero stores (marked, not copied). Never allocates.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER for NULL or a range that leaves the
 * segment; GPU_STATUS_PAGE_FAULT (@out_fault as for gpu_segment_read()) when a page is free:
 * then nothing is written.
 */
NTSTATUS gpu_host_copy_restore(const gpu_host_copy *copy, gpu_segment *dst, uint64_t offset,
                               gpu_segment_fault *out_fault);

/* gpu_host_copy_read - copy @size bytes at @offset of the copy to @dst (zeros where it has no
 * block). STATUS_INVALID_PARAMETER for NULL or a range past gpu_host_copy_size(). */
NTSTATUS gpu_host_copy_read(const gpu_host_copy *copy, uint64_t offset, void *dst, uint64_t size);

/* gpu_host_copy_size - the bytes the copy holds (0 for NULL). */
uint64_t gpu_host_copy_size(const gpu_host_copy *copy);

/* gpu_host_copy_host_bytes - host memory the copy holds: its header plus its blocks (0 for
 * NULL). What a miniport reports as the system-memory cost of an evicted allocation. */
uint64_t gpu_host_copy_host_bytes(const gpu_host_copy *copy);

/* gpu_host_copy_free - free the copy and its blocks (NULL: no-op). */
void gpu_host_copy_free(gpu_host_copy *copy);

/* gpu_segment_get_stats - a snapshot of the counters (NULL segment: zeroes). */
void gpu_segment_get_stats(gpu_segment *segment, gpu_segment_stats *out_stats);

/**
 * gpu_segment_check - walk every page and check the segment's invariants.
 *
 * Checks: the committed-page count equals the pages whose owner is non-zero; an aperture page
 * has host memory exactly when it is committed; the stored-granule count equals the bits set;
 * no granule of a free aperture page is stored. O(pages + granules of the segment).
 *
 * Returns: true when consistent; otherwise false, with each broken invariant (its found and
 * expected values, "gpu_segment_check: segment 2: ...") in @msg in walk order, "; " between
 * them, cut to @cap bytes with a NUL (@msg may be NULL; "" on success). Prints nothing. A
 * NULL @segment is inconsistent.
 */
bool gpu_segment_check(gpu_segment *segment, char *msg, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HW_GPU_MEMORY_H */
