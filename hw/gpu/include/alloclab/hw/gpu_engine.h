/*
 * gpu_engine.h — the command engine of the simulated GPU: executes queued command streams
 * through an address space and completes monotonic 64-bit fences.
 *
 * DOC: Overview
 * A submission names an address space, a command stream (copied at submit), a fence value, an
 * optional host readback buffer and an optional completion callback. Submissions run one at a
 * time in submit order; when one finishes, the engine's completed fence becomes its fence value,
 * its status is kept in a short history, and its callback runs. Fences are monotonic: each
 * submission's value must exceed the previous one's.
 *
 * Modes:
 *  - GPU_ENGINE_DETERMINISTIC: nothing runs by itself. gpu_engine_run() executes queued
 *    submissions on the calling thread; the same inputs give the same run (results, statuses,
 *    fault log), which is what fuzzers and replays need.
 *  - GPU_ENGINE_THREADED: an engine thread drains the queue as work arrives;
 *    gpu_engine_wait_idle() / gpu_engine_wait_fence() wait for it; gpu_engine_destroy() stops
 *    and joins the thread.
 *
 * Command stream format (little-endian; parsed as hostile input):
 *   a sequence of records, each  { u32 opcode; u32 length; u8 payload[length]; }
 *   GPU_CMD_NOP      (0): any length; the payload is skipped (padding).
 *   GPU_CMD_FILL     (1): length 20: u64 va, u64 size, u32 pattern — byte k of
 *                         [va, va + size) gets byte k % 4 of pattern.
 *   GPU_CMD_COPY     (2): length 24: u64 src_va, u64 dst_va, u64 size — the two VA ranges must
 *                         not overlap.
 *   GPU_CMD_READBACK (3): length 24: u64 va, u64 size, u64 offset — copies GPU memory
 *                         [va, va + size) to readback[offset, offset + size) of the submission.
 *   Sizes are at most GPU_CMD_MAX_BYTES (0 allowed: no access). A stream is validated whole
 *   before anything executes: a truncated record, a length that overruns the stream or
 *   mismatches the opcode, an unknown opcode, an oversized or overflowing size, overlapping
 *   COPY ranges or a READBACK outside the buffer make the submission complete with
 *   GPU_STATUS_INVALID_COMMAND having done nothing. A stream of 0 bytes is valid and empty.
 *
 * Faults: a command that faults (unmapped VA, freed page, write to a read-only mapping) stops
 * the submission: it completes with GPU_STATUS_PAGE_FAULT, its fence still completes (the port
 * is never wedged), and the fault stays in the MMU's fault log. Commands before the faulting one
 * took effect, and so did the part of the faulting command before the faulting page.
 *
 * Ownership: the engine copies the command bytes; the readback buffer is borrowed and must stay
 * valid until the submission's fence completes. A queued submission pins its address space
 * (gpu_as_pin()), so destroying that space before completion aborts. gpu_engine_destroy()
 * cancels what is still queued: each cancelled submission completes with STATUS_DEVICE_REMOVED
 * (fence and callback included) on the destroying thread.
 *
 * Callbacks run on the engine thread (threaded) or inside gpu_engine_run() (deterministic), with
 * no engine lock held, after the fence completed and the address space was unpinned: they may
 * submit more work, read results, even destroy the address space. No callback may call
 * gpu_engine_destroy(); a threaded-mode callback must not call gpu_engine_wait_idle() or
 * gpu_engine_wait_fence() either (it would wait for itself); a deterministic-mode callback calling
 * gpu_engine_run() or gpu_engine_wait_idle() gets nothing run (the outer run goes on).
 *
 * Cost: submit O(stream bytes) (one host copy) — FILL/COPY/READBACK cost O(bytes) plus one table
 * walk per 4 KiB page (per 2 MiB large page); COPY moves data through a 64 KiB bounce buffer
 * (malloc'd by the engine's first COPY).
 *
 * Glossary: submission = one queued command stream; fence = the 64-bit value a submission
 * completes; record = one command of a stream; readback = the host buffer a READBACK writes.
 */
#ifndef ALLOCLAB_HW_GPU_ENGINE_H
#define ALLOCLAB_HW_GPU_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/d3dkmddi.h" /* NTSTATUS */
#include "alloclab/hw/gpu_mmu.h"

#ifdef __cplusplus
extern "C" {
#endif

enum gpu_cmd_opcode {
  GPU_CMD_NOP = 0,
  GPU_CMD_FILL = 1,
  GPU_CMD_COPY = 2,
  GPU_CMD_READBACK = 3,
};

#define GPU_CMD_HEADER_BYTES 8u
#define GPU_CMD_FILL_PAYLOAD 20u
#define GPU_CMD_COPY_PAYLOAD 24u
#define GPU_CMD_READBACK_PAYLOAD 24u
/* Whole records, header included: what the gpu_cmd_* encoders write. */
#define GPU_CMD_FILL_BYTES (GPU_CMD_HEADER_BYTES + GPU_CMD_FILL_PAYLOAD)
#define GPU_CMD_COPY_BYTES (GPU_CMD_HEADER_BYTES + GPU_CMD_COPY_PAYLOAD)
#define GPU_CMD_READBACK_BYTES (GPU_CMD_HEADER_BYTES + GPU_CMD_READBACK_PAYLOAD)
/* The largest size a FILL, COPY or READBACK may name: 256 MiB. */
#define GPU_CMD_MAX_BYTES (UINT64_C(256) << 20)
/* The largest command stream gpu_engine_submit() accepts: 16 MiB. */
#define GPU_ENGINE_MAX_STREAM_BYTES ((size_t)16 << 20)
/* Completions remembered by gpu_engine_fence_status(). */
#define GPU_ENGINE_HISTORY 256u

/* Encoders: each writes one whole record at @out (room for its *_BYTES) and returns its size. */
size_t gpu_cmd_nop(void *out, uint32_t payload_bytes); /* writes 8 + payload_bytes (zeroes) */
size_t gpu_cmd_fill(void *out, uint64_t va, uint64_t size, uint32_t pattern);
size_t gpu_cmd_copy(void *out, uint64_t src_va, uint64_t dst_va, uint64_t size);
size_t gpu_cmd_readback(void *out, uint64_t va, uint64_t size, uint64_t offset);

/**
 * gpu_cmd_validate - check a command stream as the engine does before running it.
 * @stream, @bytes: the stream (@stream may be NULL when @bytes is 0).
 * @readback_bytes: size of the readback buffer READBACK records are checked against.
 * @out_records: receives the number of records when valid; may be NULL.
 *
 * O(bytes / 8) at most. Returns: STATUS_SUCCESS or GPU_STATUS_INVALID_COMMAND.
 */
NTSTATUS gpu_cmd_validate(const void *stream, size_t bytes, size_t readback_bytes,
                          size_t *out_records);

typedef enum gpu_engine_mode {
  GPU_ENGINE_DETERMINISTIC = 1,
  GPU_ENGINE_THREADED = 2,
} gpu_engine_mode;

/* Called once per submission when its fence completes (see DOC: Overview for the thread). */
typedef void (*gpu_engine_callback)(void *ctx, uint64_t fence, NTSTATUS status);

/*
 * struct gpu_submission - one unit of work for gpu_engine_submit().
 * @as: the address space the commands run in (of the engine's MMU).
 * @commands, @command_bytes: the stream (copied; at most GPU_ENGINE_MAX_STREAM_BYTES).
 * @fence: the value completed with it: > 0 and > every earlier submission's fence.
 * @readback, @readback_bytes: where READBACK writes (borrowed until completion); may be NULL/0.
 * @callback, @callback_ctx: optional completion callback.
 */
typedef struct gpu_submission {
  gpu_as *as;
  const void *commands;
  size_t command_bytes;
  uint64_t fence;
  void *readback;
  size_t readback_bytes;
  gpu_engine_callback callback;
  void *callback_ctx;
} gpu_submission;

/*
 * struct gpu_engine_stats - a snapshot. @submitted, @completed (= @succeeded + @faulted +
 * @invalid + @cancelled); @commands: records executed; @queued: submitted, not yet completed;
 * @last_submitted_fence, @completed_fence.
 */
typedef struct gpu_engine_stats {
  uint64_t submitted, completed, succeeded, faulted, invalid, cancelled, commands, queued;
  uint64_t last_submitted_fence, completed_fence;
} gpu_engine_stats;

typedef struct gpu_engine gpu_engine;

/**
 * gpu_engine_create - create an engine over @mmu's address spaces.
 * @mode: GPU_ENGINE_DETERMINISTIC or GPU_ENGINE_THREADED (starts the engine thread).
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER (NULL, bad mode); STATUS_NO_MEMORY (also
 * when the thread could not be started).
 */
NTSTATUS gpu_engine_create(gpu_mmu *mmu, gpu_engine_mode mode, gpu_engine **out_engine);

/**
 * gpu_engine_destroy - stop the engine (threaded: the running submission finishes, then the
 * thread is joined), cancel every queued submission (STATUS_DEVICE_REMOVED), free it. NULL: no-op.
 */
void gpu_engine_destroy(gpu_engine *engine);

/**
 * gpu_engine_submit - queue a submission.
 *
 * Returns: STATUS_SUCCESS; STATUS_INVALID_PARAMETER when a rule of struct gpu_submission is
 * broken (NULL, foreign address space, stream too large, fence not increasing);
 * STATUS_NO_MEMORY when the copy could not be allocated; STATUS_DEVICE_REMOVED once
 * gpu_engine_destroy() has begun. A malformed stream is not refused here: it completes with
 * GPU_STATUS_INVALID_COMMAND.
 */
NTSTATUS gpu_engine_submit(gpu_engine *engine, const gpu_submission *submission);

/**
 * gpu_engine_run - deterministic mode: execute up to @max_submissions queued submissions (also
 * those their callbacks submit) on this thread, in order.
 *
 * Returns: how many ran; 0 in threaded mode or when called from inside a run.
 */
size_t gpu_engine_run(gpu_engine *engine, size_t max_submissions);

/**
 * gpu_engine_wait_idle - return once nothing is queued or running and every callback returned.
 * Deterministic mode: runs everything queued (gpu_engine_run(engine, SIZE_MAX)).
 */
void gpu_engine_wait_idle(gpu_engine *engine);

/**
 * gpu_engine_wait_fence - wait until the completed fence reaches @fence.
 * @timeout_ms: how long to wait (threaded mode); deterministic mode never waits.
 *
 * Returns: STATUS_SUCCESS when it has; STATUS_TIMEOUT otherwise.
 */
NTSTATUS gpu_engine_wait_fence(gpu_engine *engine, uint64_t fence, uint32_t timeout_ms);

/* The fence of the last completed submission (0 before any). */
uint64_t gpu_engine_completed_fence(gpu_engine *engine);

/**
 * gpu_engine_fence_status - the status a submission completed with.
 *
 * Returns: true and writes @out_status when @fence is among the last GPU_ENGINE_HISTORY
 * completions; false when it has not completed (or is older, or never existed).
 */
bool gpu_engine_fence_status(gpu_engine *engine, uint64_t fence, NTSTATUS *out_status);

void gpu_engine_get_stats(gpu_engine *engine, gpu_engine_stats *out_stats);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_HW_GPU_ENGINE_H */
