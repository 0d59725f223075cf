/*
 * program_target.c — decode and run one program input (see program_target.h).
 */
#include "fuzz/targets/program_target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/execute.h"
#include "alloclab/fuzz/input.h"
#include "alloclab/hw/fault_injection.h"

/* Static: a program is ~80 KiB, too big for libFuzzer's stack. One thread runs the target. */
static fz_program program;
static fz_exec_options options;
static int options_ready;

static bool requests_a_fault(const fz_program *p) {
  uint32_t n = p->fault_count < 4u ? p->fault_count : 4u;
  for (uint32_t f = 0; f < n; f++) {
    enum fault_point point;
    if (fault_injector_point_from_id(p->faults[f].point & ~FZ_FAULT_AT_BRING_UP, &point)) return true;
  }
  return false;
}

bool fzt_target_options(const char *name, fz_exec_options *out) {
  fz_exec_options_default(out);
  if (strcmp(name, "ddi_sequence") == 0 || strcmp(name, "fault_injection") == 0) return true;
  if (strcmp(name, "close_destroy") == 0) {
    out->memory_segment_size = FZT_CLOSE_DESTROY_SEGMENT_SIZE;
    out->aperture_segment_size = FZT_CLOSE_DESTROY_SEGMENT_SIZE;
    return true;
  }
  return false;
}

int fzt_run_program_input(const uint8_t *data, size_t size, fzt_faults faults) {
  return fzt_run_target_input("ddi_sequence", data, size, faults);
}

int fzt_run_target_input(const char *name, const uint8_t *data, size_t size, fzt_faults faults) {
  if (!options_ready) {
    if (!fzt_target_options(name, &options)) {
      fprintf(stderr, "program_target: '%s' is not a program target\n", name);
      abort();
    }
    const char *verbose = getenv("ALLOCLAB_FUZZ_VERBOSE");
    options.verbose = verbose != NULL && verbose[0] != '\0' && verbose[0] != '0';
    options_ready = 1;
  }
  if (!fz_decode(data, size, &program)) return -1; /* an unsupported format version */
  if (faults == FZT_FAULTS_IGNORED) {
    program.fault_count = 0;
  } else if (!requests_a_fault(&program) || program.threaded_engine) {
    return -1; /* nothing to inject (a threaded program injects none): ddi_sequence's job */
  }
  fz_execute(&program, &options, NULL);
  return 0;
}
