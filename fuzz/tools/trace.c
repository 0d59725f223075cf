/*
 * trace.c — print fuzz inputs as programs.
 *
 *   trace [--target NAME] [--run] FILE...
 *   trace --damage-kinds
 *
 * Decodes each input (fuzz/common/include/alloclab/fuzz/input.h) and prints it in the text
 * form (fuzz/common/text.h), one numbered call a line, after a "# FILE: ..." comment line; the
 * output can be fed back to `encode`. With --run, each program is also executed against the
 * port over the selected miniport with the reference-model oracle (fuzz/common execute.h), and
 * every call line ends with the status the port returned ("... = STATUS_SUCCESS"); when the
 * port and the model disagree, the oracle's message is printed instead and the exit status is 3.
 * --target NAME runs with the executor options of fuzz target NAME (fuzz/targets/program_target.h:
 * close_destroy has larger segments), so a target's inputs replay as the target ran them; the
 * default is ddi_sequence's. Every program target reads the same input format, so printing does
 * not depend on it.
 * --damage-kinds lists the kinds a `damage(kind=NAME, pick=N)` call can name (program.h
 * "Damage"): the port's (alloclab/damage.h) and the sim's, one a line: layer, name, what pick
 * counts among, and the phrase the walk's message must contain.
 * Exits 1 when a file cannot be read or names an unsupported format version (the other files
 * are still printed), 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/damage.h"
#include "alloclab/fuzz/execute.h"
#include "alloclab/fuzz/input.h"
#include "alloclab/hw/sim_miniport.h"
#include "fuzz/common/text.h"
#include "fuzz/targets/program_target.h"
#include "fuzz/tools/read_file.h"

static fz_program program;
static fz_exec_report report;

static int usage(int status) {
  fprintf(stderr,
          "usage: trace [--target NAME] [--run] FILE...\n"
          "       trace --damage-kinds\n"
          "Prints each fuzz input as a numbered program (the text form `encode` reads).\n"
          "--run: also executes it (port + selected miniport + reference model) and prints\n"
          "       each call's status; exits 3 when the port and the model disagree.\n"
          "--target NAME: run with the options of fuzz target NAME (ddi_sequence,\n"
          "       fault_injection, close_destroy; default ddi_sequence).\n"
          "--damage-kinds: list the kinds damage(kind=NAME, pick=N) can name.\n");
  return status;
}

/* Every damage kind of both layers: "LAYER NAME  (pick: TARGET; expect: \"PHRASE\")". */
static int list_damage_kinds(void) {
  for (unsigned layer = 0; layer < 2; layer++) {
    const unsigned count = layer ? sim_testing_damage_kind_count() : al_testing_damage_kind_count();
    for (unsigned k = 0; k < count; k++) {
      const al_damage_kind_info *info = layer ? sim_testing_damage_kind(k) : al_testing_damage_kind(k);
      printf("%-4s %-48s (pick: %s; expect: \"%s\")\n", layer ? "sim" : "port", info->name, info->target,
             info->expect);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  bool run = false;
  const char *target = "ddi_sequence";
  int first = 1;
  for (; first < argc; first++) {
    if (strcmp(argv[first], "--run") == 0) {
      run = true;
    } else if (strcmp(argv[first], "--target") == 0) {
      if (first + 1 >= argc) {
        fprintf(stderr, "trace: --target needs a target name\n");
        return usage(2);
      }
      target = argv[++first];
    } else if (strcmp(argv[first], "--damage-kinds") == 0) {
      if (first + 1 != argc) {
        fprintf(stderr, "trace: --damage-kinds takes no other argument\n");
        return usage(2);
      }
      return list_damage_kinds();
    } else if (strcmp(argv[first], "-h") == 0 || strcmp(argv[first], "--help") == 0) {
      return usage(0);
    } else {
      break;
    }
  }
  if (first >= argc) {
    return usage(2);
  }
  fz_exec_options options;
  if (!fzt_target_options(target, &options)) {
    fprintf(stderr, "trace: unknown target '%s' (the program targets: ddi_sequence, "
                    "fault_injection, close_destroy)\n", target);
    return 2;
  }
  options.return_on_mismatch = true;
  int status = 0;
  for (int i = first; i < argc; i++) {
    uint8_t *data;
    size_t size;
    if (!fz_read_file("trace", argv[i], &data, &size)) {
      status = 1;
      continue;
    }
    bool headed = size >= FZ_FORMAT_HEADER_SIZE && memcmp(data, FZ_FORMAT_MAGIC, 4) == 0;
    if (!fz_decode(data, size, &program)) {
      fprintf(stderr,
              "trace: %s: unsupported format version %u (this build reads versions %u to %u)\n",
              argv[i], (unsigned)data[4], FZ_FORMAT_VERSION_1, FZ_FORMAT_VERSION);
      free(data);
      status = 1;
      continue;
    }
    if (i > first) {
      printf("\n");
    }
    if (headed) {
      printf("# %s: %zu bytes, format version %u, %u calls, %u faults\n", argv[i], size,
             (unsigned)data[4], program.call_count, program.fault_count);
    } else {
      printf("# %s: %zu bytes, no header (read as a version %u body), %u calls, %u faults\n",
             argv[i], size, FZ_FORMAT_VERSION, program.call_count, program.fault_count);
    }
    if (!run) {
      fz_print_program(stdout, &program, NULL);
    } else {
      int result = fz_execute(&program, &options, &report);
      if (result == FZ_EXEC_OK && report.bring_up_failed) {
        fz_print_program(stdout, &program, NULL);
        printf("# adapter bring-up failed: %s (an injected failure, nothing left behind): no call ran\n",
               al_status_name(report.bring_up_status));
      } else if (result == FZ_EXEC_OK) {
        fz_print_program(stdout, &program, report.status);
      } else {
        fz_print_program(stdout, &program, NULL);
        printf("# the port and the model disagree:\n%s\n", report.message);
        status = 3;
      }
    }
    free(data);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "trace: cannot write the output\n");
    return 1;
  }
  return status;
}
