/*
 * program_target.h — what the program fuzz targets (ddi_sequence, fault_injection) share: an
 * input is decoded into a program (alloclab/fuzz/input.h) and run by the executor
 * (alloclab/fuzz/execute.h) with its default options — the DDI verifier on, the reference model
 * checked after every call, the adapter checked after every call, the sim's live totals checked
 * after the program. Any disagreement aborts with "alloclab oracle: ..." and the program, which
 * is what libFuzzer reports as a crash.
 *
 * ALLOCLAB_FUZZ_VERBOSE=1 in the environment prints every call and its status on stderr (to
 * read what a corpus file or a crash does: `ALLOCLAB_FUZZ_VERBOSE=1 <target>_raw FILE`).
 */
#ifndef ALLOCLAB_FUZZ_TARGETS_PROGRAM_TARGET_H
#define ALLOCLAB_FUZZ_TARGETS_PROGRAM_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/fuzz/execute.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Segments of the close_destroy target: room for a resource of 1024 allocations of up to
 * 16 KiB, several times over (the backing memory is committed page by page, on use). */
#define FZT_CLOSE_DESTROY_SEGMENT_SIZE ((uint64_t)64 << 20)

/*
 * fzt_target_options - the executor options fuzz target @name runs its programs with (what
 * `trace --target NAME --run` must use to replay its inputs faithfully): ddi_sequence and
 * fault_injection the defaults, close_destroy FZT_CLOSE_DESTROY_SEGMENT_SIZE segments.
 * Returns false for a name that is not a program target (*out then holds the defaults).
 */
bool fzt_target_options(const char *name, fz_exec_options *out);

typedef enum fzt_faults {
  FZT_FAULTS_IGNORED = 0,  /* ddi_sequence: the program's fault requests are dropped */
  FZT_FAULTS_REQUIRED = 1, /* fault_injection: they arm the sim's injector; an input that
                              requests no valid fault point, or runs on the threaded engine
                              (which arms none: execute.h), is not run (returns -1) */
} fzt_faults;

/*
 * fzt_run_program_input - decode @data and run it.
 * Returns 0 when the program ran (and agreed with the model: a mismatch aborts), -1 when the
 * input was not run (an unsupported format version; FZT_FAULTS_REQUIRED without a valid fault
 * request, or with a threaded program). -1 asks libFuzzer to keep the input out of the corpus;
 * clang 14's libFuzzer does not honour it yet (such an input may still be added for the
 * decoder's coverage: harmless, it costs a decode).
 */
int fzt_run_program_input(const uint8_t *data, size_t size, fzt_faults faults);

/* The same with the options of target @name (fzt_target_options; an unknown name aborts). */
int fzt_run_target_input(const char *name, const uint8_t *data, size_t size, fzt_faults faults);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_FUZZ_TARGETS_PROGRAM_TARGET_H */
