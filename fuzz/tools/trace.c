/*
 * trace.c — print fuzz inputs as programs.
 *
 *   trace [--run] FILE...
 *
 * Decodes each input (fuzz/common/include/alloclab/fuzz/input.h) and prints it in the text
 * form (fuzz/common/text.h), one numbered call a line, after a "# FILE: ..." comment line; the
 * output can be fed back to `encode`. With --run, each program is also executed against the
 * port over the selected miniport with the reference-model oracle (fuzz/common execute.h), and
 * every call line ends with the status the port returned ("... = STATUS_SUCCESS"); when the
 * port and the model disagree, the oracle's message is printed instead and the exit status is 3.
 * Exits 1 when a file cannot be read or names an unsupported format version (the other files
 * are still printed), 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/execute.h"
#include "alloclab/fuzz/input.h"
#include "fuzz/common/text.h"
#include "fuzz/tools/read_file.h"

static fz_program program;
static fz_exec_report report;

int main(int argc, char **argv) {
  bool run = argc > 1 && strcmp(argv[1], "--run") == 0;
  int first = run ? 2 : 1;
  if (argc <= first || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr,
            "usage: trace [--run] FILE...\n"
            "Prints each fuzz input as a numbered program (the text form `encode` reads).\n"
            "--run: also executes it (port + selected miniport + reference model) and prints\n"
            "       each call's status; exits 3 when the port and the model disagree.\n");
    return argc <= first ? 2 : 0;
  }
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
              "trace: %s: unsupported format version %u (this build reads versions %u and %u)\n",
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
      fz_exec_options options;
      fz_exec_options_default(&options);
      options.return_on_mismatch = true;
      int result = fz_execute(&program, &options, &report);
      if (result == FZ_EXEC_OK) {
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
