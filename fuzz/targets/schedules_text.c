/*
 * schedules_text.c — the text form of schedules inputs (schedules_input.h), so that its seeds
 * are written and reviewed as text.
 *
 *   schedules_text encode IN.txt OUT.bin    text -> input bytes
 *   schedules_text trace FILE...            input bytes -> text (what encode reads back)
 *
 * Exit status: 0, 1 on an error (named with the file), 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/common/text.h"
#include "fuzz/targets/schedules_input.h"
#include "fuzz/tools/read_file.h"

static fzs_input input;
static uint8_t bytes[1u << 16];

static int encode(const char *in_path, const char *out_path) {
  uint8_t *text;
  size_t size;
  if (!fz_read_file("schedules_text", in_path, &text, &size)) return 1;
  if (memchr(text, '\0', size) != NULL) {
    fprintf(stderr, "schedules_text: %s: not a text file (it holds NUL bytes)\n", in_path);
    free(text);
    return 1;
  }
  char err[512];
  bool ok = fzs_parse((const char *)text, &input, err, sizeof err);
  free(text);
  if (!ok) {
    fprintf(stderr, "schedules_text: %s: %s\n", in_path, err);
    return 1;
  }
  size_t n = fzs_encode(&input, bytes, sizeof bytes);
  if (n == 0) {
    fprintf(stderr, "schedules_text: %s: internal error: the input does not encode\n", in_path);
    return 1;
  }
  FILE *f = fopen(out_path, "wb");
  if (f == NULL) {
    fprintf(stderr, "schedules_text: cannot write '%s': %s\n", out_path, strerror(errno));
    return 1;
  }
  size_t w = fwrite(bytes, 1, n, f);
  int werr = errno;
  if (fclose(f) != 0 || w != n) {
    fprintf(stderr, "schedules_text: cannot write '%s': %s\n", out_path, strerror(werr));
    remove(out_path);
    return 1;
  }
  return 0;
}

static int trace(const char *path) {
  uint8_t *data;
  size_t size;
  if (!fz_read_file("schedules_text", path, &data, &size)) return 1;
  bool ok = fzs_decode(data, size, &input);
  free(data);
  if (!ok) {
    fprintf(stderr, "schedules_text: %s: the program part has an unsupported format version\n", path);
    return 1;
  }
  char line[2048];
  fzs_format_schedule(&input, line, sizeof line);
  printf("%s\n", line);
  fz_print_program(stdout, &input.program, NULL);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "encode") == 0) return encode(argv[2], argv[3]);
  if (argc >= 3 && strcmp(argv[1], "trace") == 0) {
    int rc = 0;
    for (int i = 2; i < argc; i++) {
      if (argc > 3) printf("# %s\n", argv[i]);
      if (trace(argv[i]) != 0) rc = 1;
    }
    return rc;
  }
  fprintf(stderr, "usage: schedules_text encode IN.txt OUT.bin\n"
                  "       schedules_text trace FILE...\n");
  return 2;
}
