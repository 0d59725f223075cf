/*
 * gpu_exec.h — runs a gpu_input (gpu_input.h) against the simulated GPU of hw/gpu and checks
 * every result against a reference model of its own.
 *
 * DOC: The world
 * Four segments, attached to one MMU: id 1 a memory segment of 64 KiB (4 KiB pages), id 2 an
 * aperture segment of 64 KiB (4 KiB pages), id 3 a memory segment of 4 MiB (64 KiB pages, so
 * 2 MiB large pages can map it), id 4 an aperture segment of 256 KiB (64 KiB pages: one host
 * block of 16 content granules per page); 1-3 address spaces (ids 1..3); an engine in
 * GPU_ENGINE_DETERMINISTIC mode; one fault injector shared by all (armed only by `inject`, for
 * the next op). Everything is created per input and destroyed at its end (engine first: it
 * cancels what is still queued, and those completions are checked too).
 *
 * DOC: The reference model
 * Written from the headers' contracts (hw/gpu/include/alloclab/hw/gpu_*.h), not from their
 * code: per segment each page's owner and last owner and a byte shadow of its contents (a
 * memory page keeps its bytes across release, an aperture page reads zero when committed); per
 * address space the mapped 4 KiB pages (segment, physical offset, writable, the 2 MiB leaf that
 * maps it if any, placed by the large-page rule), the live VA blocks (size rule: the next power
 * of two >= max(size, alignment, 4 KiB), naturally aligned, inside the 48-bit space, no overlap)
 * and the allocator's free blocks and bump pointer (its documented rule says which block a
 * reserve may return, when the space is exhausted and when a larger block is handed out whole;
 * the model assumes the bump pointer starts at 4 KiB, page 0 never being handed out), the
 * page-table pages the mapped pages need (root + one table per used 512 GiB, 1 GiB and,
 * for 4 KiB leaves, 2 MiB region); the fault log (ring of 256 + total); the engine's queue, its
 * stream validation, execution (FILL / COPY through 64 KiB chunks / READBACK, faults stopping a
 * submission), fences, completion statuses, readback bytes and counters; the injector (which
 * calls consult it, so whether an armed failure fires). Each op's expected status and outputs
 * are computed by the model and compared with hw/gpu's; after every op gpu_as_check and
 * gpu_segment_check run and the address spaces', segments' and engine's statistics and the
 * fault total must equal the model's; pages whose contents an op changed are compared byte for
 * byte (`stats` and the end compare every committed page).
 *
 * A disagreement is reported as "op N (TEXT): WHAT" (TEXT: the op's text line), e.g.
 *   op 4 (unmap as=0 va=b0+0x0 size=0x1000): address space 1 statistics: mapped_4k 1, model 0
 * and the run stops there.
 */
#ifndef ALLOCLAB_FUZZ_TARGETS_GPU_EXEC_H
#define ALLOCLAB_FUZZ_TARGETS_GPU_EXEC_H

#include <stdbool.h>
#include <stddef.h>

#include "alloclab/d3dkmddi.h" /* NTSTATUS */
#include "gpu_input.h"

/* Deliberately wrong GPU answers, for the executor's own tests (a broken GPU must be caught). */
typedef enum gpu_sabotage {
  GPU_SABOTAGE_NONE = 0,
  GPU_SABOTAGE_UNMAP_LEAVES_PAGE, /* after a successful unmap, the first page is mapped again */
  GPU_SABOTAGE_COMMIT_STATUS,     /* a successful commit is reported as STATUS_INVALID_PARAMETER */
  GPU_SABOTAGE_WRITE_BYTE,        /* a successful segment write changes one more byte */
  GPU_SABOTAGE_RELEASE_KEEPS_PAGE, /* a successful release is undone (page committed again) */
} gpu_sabotage;

/* gpu_exec_options.statuses: an op that returned no status (query, cmd_*, run, ...). */
#define GPU_EXEC_NO_STATUS ((NTSTATUS)0x7fffffff)

typedef struct gpu_exec_options {
  gpu_sabotage sabotage;
  bool verbose; /* print each op and its status to stderr */
  /* When not NULL (room for the input's op_count): each op's status as hw/gpu returned it (the
   * last call's, for ops that make several), or GPU_EXEC_NO_STATUS; ops after a mismatch keep
   * GPU_EXEC_NO_STATUS. For tests that hold the model to statuses worked out by hand. */
  NTSTATUS *statuses;
} gpu_exec_options;

typedef struct gpu_exec_result {
  bool ok;
  size_t ops_run;     /* ops executed (those skipped included) */
  size_t ops_skipped; /* unmap_known on a range a 2 MiB leaf straddles (a contract violation) */
  size_t failed_op;   /* when !ok: the op's index (input->op_count: the final teardown checks) */
  char message[1024]; /* when !ok: "op N (TEXT): WHAT" */
} gpu_exec_result;

/*
 * gpu_execute - run @in (see DOC) and check it. @options may be NULL (no sabotage, quiet).
 * Returns true when hw/gpu agreed with the model on every op; false with @out->message set.
 * Everything it creates is freed before it returns, on both paths, but for the model's segment
 * arrays, which it keeps zeroed in static storage for the next call: one thread at a time.
 */
bool gpu_execute(const gpu_input *in, const gpu_exec_options *options, gpu_exec_result *out);

#endif /* ALLOCLAB_FUZZ_TARGETS_GPU_EXEC_H */
