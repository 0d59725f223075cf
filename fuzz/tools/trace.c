/*
 * trace.c — print fuzz inputs as programs.
 *
 *   trace FILE...
 *
 * Decodes each input (fuzz/common/include/alloclab/fuzz/input.h) and prints it in the text
 * form (fuzz/common/text.h), one numbered call a line, after a "# FILE: ..." comment line; the
 * output can be fed back to `encode`. Nothing is executed (the executor prints statuses).
 * Exits 1 when a file cannot be read or names an unsupported format version (the other files
 * are still printed), 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/input.h"
#include "fuzz/common/text.h"
#include "fuzz/tools/read_file.h"

static fz_program program;

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr,
            "usage: trace FILE...\n"
            "Prints each fuzz input as a numbered program (the text form `encode` reads).\n");
    return argc < 2 ? 2 : 0;
  }
  int status = 0;
  for (int i = 1; i < argc; i++) {
    uint8_t *data;
    size_t size;
    if (!fz_read_file("trace", argv[i], &data, &size)) {
      status = 1;
      continue;
    }
    bool headed = size >= FZ_FORMAT_HEADER_SIZE && memcmp(data, FZ_FORMAT_MAGIC, 4) == 0;
    if (!fz_decode(data, size, &program)) {
      fprintf(stderr, "trace: %s: unsupported format version %u (this build reads version %u)\n",
              argv[i], (unsigned)data[4], FZ_FORMAT_VERSION);
      free(data);
      status = 1;
      continue;
    }
    if (i > 1) {
      printf("\n");
    }
    printf("# %s: %zu bytes, %s, %u calls, %u faults\n", argv[i], size,
           headed ? "format version 1" : "no header (read as a version 1 body)",
           program.call_count, program.fault_count);
    fz_print_program(stdout, &program, NULL);
    free(data);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "trace: cannot write the output\n");
    return 1;
  }
  return status;
}
