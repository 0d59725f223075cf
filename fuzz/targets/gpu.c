/*
 * gpu.c — fuzzes the simulated GPU of hw/gpu directly (segments, MMU and address spaces, the
 * engine), below the sim miniport: the input is a program of GPU calls (gpu_input.h, text form:
 * gpu_text), run by gpu_exec.h against a reference model that checks every result, the page
 * tables' and segments' invariants and the statistics after every op. A disagreement prints
 * "alloclab gpu: op N (TEXT): WHAT" and aborts; everything is freed per input (LeakSanitizer).
 * ALLOCLAB_FUZZ_VERBOSE=1 prints each op as it runs.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/common/libfuzzer.h"
#include "gpu_exec.h"
#include "gpu_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static gpu_input input; /* 512 ops: too large for the stack of every caller */
  if (!gpu_input_decode(data, size, &input)) return 0;
  const char *verbose = getenv("ALLOCLAB_FUZZ_VERBOSE");
  gpu_exec_options options = {GPU_SABOTAGE_NONE, verbose != NULL && verbose[0] == '1', NULL};
  gpu_exec_result result;
  if (!gpu_execute(&input, &options, &result)) {
    fprintf(stderr, "alloclab gpu: %s\n", result.message);
    abort();
  }
  return 0;
}
