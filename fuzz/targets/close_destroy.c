/*
 * close_destroy.c — fuzzes how resources and allocations go away (issue 4, target 2): shared
 * resources of up to 1024 allocations bound on up to 8 devices, device-owned allocations, GPU
 * work pending, and the close/destroy calls in every grouping, order and hostile shape —
 * duplicates, foreign, stale and mixed-owner lists, counts one off (FZ_HOSTILE_COUNT_PLUS_ONE /
 * _MINUS_ONE), a resource with and without a list, a partial destroy of a resource, destroys
 * with fences pending, a device destroyed before or after its bindings.
 *
 * Inputs are ordinary programs (alloclab/fuzz/input.h, format version 3), so trace, encode, the
 * call-level mutator and the oracle (the executor and the reference model, with the port's DDI
 * verifier checking every close/destroy rule) all apply as they are; long lists are written as
 * ranges (v2.a0..a1023). What makes the target its own: segments large enough for 1024-allocation
 * resources (fzt_target_options; `trace --target close_destroy --run` replays with them), seeds
 * (corpus/close_destroy/seeds) that each set up the scenario — devices, a big shared resource
 * opened on the others, device-owned allocations, submits left pending — so that any mutation
 * of their close/destroy calls lands in it, and a dictionary of range and hostile-count tokens.
 */
#include "fuzz/common/libfuzzer.h"
#include "fuzz/targets/program_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fzt_run_target_input("close_destroy", data, size, FZT_FAULTS_IGNORED);
}
