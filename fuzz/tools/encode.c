/*
 * encode.c — turn a text program into a fuzz input.
 *
 *   encode IN.txt OUT.bin
 *
 * Parses the text form (fuzz/common/text.h; what `trace` prints, statuses included) and writes
 * its encoding (input.h, current format version). Errors name the file and line
 * ("encode: prog.txt: line 3: unknown call 'foo'"); the exit status is then 1 (2 for usage)
 * and OUT.bin is not written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloclab/fuzz/input.h"
#include "fuzz/common/text.h"
#include "fuzz/tools/read_file.h"

static fz_program program;
static uint8_t out[FZ_ENCODE_MAX_SIZE];

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: encode IN.txt OUT.bin\n"
                    "Writes the fuzz input of a text program (the form `trace` prints).\n");
    return 2;
  }
  const char *in_path = argv[1];
  const char *out_path = argv[2];
  uint8_t *text;
  size_t size;
  if (!fz_read_file("encode", in_path, &text, &size)) {
    return 1;
  }
  if (memchr(text, '\0', size) != NULL) {
    fprintf(stderr, "encode: %s: not a text file (it holds NUL bytes; trace turns an input into "
                    "text)\n", in_path);
    free(text);
    return 1;
  }
  char err[512];
  bool ok = fz_parse_program((const char *)text, &program, err, sizeof err);
  free(text);
  if (!ok) {
    fprintf(stderr, "encode: %s: %s\n", in_path, err);
    return 1;
  }
  size_t n = fz_encode(&program, out, sizeof out);
  if (n == 0 || n > sizeof out) {
    fprintf(stderr, "encode: %s: internal error: the program does not encode\n", in_path);
    return 1;
  }
  FILE *f = fopen(out_path, "wb");
  if (f == NULL) {
    fprintf(stderr, "encode: cannot write '%s': %s\n", out_path, strerror(errno));
    return 1;
  }
  size_t w = fwrite(out, 1, n, f);
  int werr = errno;
  if (fclose(f) != 0 || w != n) {
    fprintf(stderr, "encode: cannot write '%s': %s\n", out_path, strerror(werr));
    remove(out_path);
    return 1;
  }
  printf("encode: %s: %u calls, %u faults -> %s (%zu bytes)\n", in_path, program.call_count,
         program.fault_count, out_path, n);
  return 0;
}
