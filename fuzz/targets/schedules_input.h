/*
 * schedules_input.h — the input of the `schedules` fuzz target: a schedule, then a program.
 *
 * DOC: Format, version 2 (version 1 below)
 *   input_v2   := "ALSC" 0x02 threads:u8 fork:u8 n:u8 preemption*n program
 *   preemption := thread:u8 after:u8 to:u8
 * threads = 2 + (byte % 3) logical threads (2..4); fork = how many of the program's first calls
 * run alone before the threads start (clamped to the program); n = how many preemptions (a
 * byte above FZS_MAX_PREEMPTIONS reads as FZS_MAX_PREEMPTIONS); each preemption says: when
 * logical thread (thread % threads) reaches its own (after + 1)-th schedule point, switch to
 * thread (to % threads) (fz_scheduler_run_preempting in alloclab/fuzz/scheduler.h: PCT-style,
 * few switches at named points, each staying put when another moves). program = a program input
 * (alloclab/fuzz/input.h: any bytes). Reading past the end yields zero bytes, as everywhere.
 *
 * Version 1 (any input that does not start with "ALSC" 0x02; still read as it always was):
 *   input_v1   := threads:u8 fork:u8 n:u8 choice:u8*n program
 * choice = the scheduler's choice bytes, one per schedule point (fz_scheduler_run).
 * Calls fork, fork+1, ... run on threads 0, 1, ... in turn (fz_execute_concurrent).
 *
 * Text form (schedules_text): the program's text form (text.h) with one more line before the
 * first call, one of
 *   schedule(threads=3, fork=4, choices=[0, 1, 1, 2])           version 1
 *   schedule(threads=3, fork=4, preempt=[t0@3->t1, t1@2->t2])   version 2: "t0@3->t1" = when
 *       thread 0 reaches its own 3rd schedule point (1..256), thread 1 runs; preempt=[] is
 *       a run without preemptions
 *
 * DOC: Mutation (fzs_mutate, fzs_mutate_schedule)
 * The target's custom mutator (fzs_mutate) changes the schedule structurally a quarter of the
 * time, the program at the call level another quarter (fault requests included: a concurrent
 * program's faults are armed, fz_execute_concurrent in execute.h), and leaves the rest to
 * libFuzzer's byte mutations. A schedule step is one preemption moved by a few points, retargeted, moved
 * to another thread, added or dropped; fork moved by one call (the thread count is left
 * alone); a version-1 input's choice changed, or the input rewritten as version 2 with one
 * preemption.
 */
#ifndef ALLOCLAB_FUZZ_TARGETS_SCHEDULES_INPUT_H
#define ALLOCLAB_FUZZ_TARGETS_SCHEDULES_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/fuzz/program.h"
#include "alloclab/fuzz/scheduler.h"
#include "fuzz/common/mutator.h"

#define FZS_MAX_CHOICES 255u
#define FZS_MAX_PREEMPTIONS 16u
#define FZS_MAX_AFTER 256u
#define FZS_MAGIC "ALSC"
#define FZS_VERSION_2 2u

typedef struct fzs_input {
  uint32_t version; /* 1 (choices) or 2 (preemptions) */
  uint32_t threads; /* 2..4 */
  uint32_t fork;    /* as read (0..255); fz_execute_concurrent clamps it */
  uint32_t choice_count; /* version 1 */
  uint8_t choices[FZS_MAX_CHOICES];
  uint32_t preemption_count; /* version 2; each thread and to < threads, after 1..256 */
  fz_preemption preemptions[FZS_MAX_PREEMPTIONS];
  fz_program program;
} fzs_input;

/* Decodes any bytes; false only when the program part has an unsupported format version. */
bool fzs_decode(const uint8_t *data, size_t size, fzs_input *out);

/* Writes @in's bytes into @buf (version 1 or 2 as @in->version says); returns the size (0 when
 * @cap is too small or @in is invalid: threads outside 2..4, fork above 255, too many choices
 * or preemptions, a preemption's thread or to not below threads, after outside 1..256). */
size_t fzs_encode(const fzs_input *in, uint8_t *buf, size_t cap);

/* Parses the text form; false with a message naming the line in @err. */
bool fzs_parse(const char *text, fzs_input *out, char *err, size_t cap);

/* Writes @in's schedule line ("schedule(threads=..., ...)", no newline) into @buf (cut to @cap,
 * NUL-terminated; @buf may be NULL when @cap is 0); returns its whole length as snprintf does.
 * fzs_parse reads it back. */
size_t fzs_format_schedule(const fzs_input *in, char *buf, size_t cap);

/* Changes @in's schedule (never its program) by one structural step (DOC: Mutation), drawing
 * from the xorshift state @rng (not 0). The result is valid for fzs_encode. */
void fzs_mutate_schedule(fzs_input *in, uint32_t *rng);

/*
 * fzs_mutate - the schedules target's custom mutation (LLVMFuzzerCustomMutator) of the input
 * data[0..size) in place, with room for @max_size bytes; returns the new size (<= max_size).
 * By @seed: one in two is @mutate_bytes on the whole input (libFuzzer's LLVMFuzzerMutate, so the
 * decoder still sees raw bytes); one in four changes the schedule (fzs_mutate_schedule); one in
 * four changes the program at the call level (fz_mutate_program in fuzz/common/mutator.h:
 * calls, references, lists, fault requests; the schedule stays as it was). An input that does
 * not decode, or a mutant that does not fit @max_size, gets @mutate_bytes instead. @mutate_bytes
 * may be NULL (outside libFuzzer): every mutation is then structural. The same input and seed
 * (and a deterministic @mutate_bytes) give the same result. Not thread-safe (static buffers; one
 * fuzzing thread).
 */
size_t fzs_mutate(uint8_t *data, size_t size, size_t max_size, unsigned seed, fz_mutate_bytes_fn mutate_bytes);

#endif /* ALLOCLAB_FUZZ_TARGETS_SCHEDULES_INPUT_H */
