/*
 * gpu_text.c — the text form of the gpu target's inputs (format: gpu_input.h), so that its
 * seeds are written and reviewed as text.
 *
 *   gpu_text encode IN.txt OUT.bin    text -> input bytes
 *   gpu_text trace FILE...            input bytes -> text (what encode reads back)
 *   gpu_text run FILE...              trace, then run each input and say where it disagrees
 *
 * Exit status: 0; 1 on an error (a text error names its file and line; an input that is not
 * version 1; a run that disagrees); 2 on a usage error.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/tools/read_file.h"
#include "gpu_exec.h"
#include "gpu_input.h"

static gpu_input input;

static int usage(void) {
  fprintf(stderr, "usage: gpu_text encode IN.txt OUT.bin | gpu_text trace FILE... | gpu_text run FILE...\n");
  return 2;
}

static int encode(const char *in_path, const char *out_path) {
  uint8_t *text;
  size_t size;
  if (!fz_read_file("gpu_text", in_path, &text, &size)) return 1;
  char err[256];
  bool ok = gpu_input_parse((const char *)text, &input, err, sizeof err);
  free(text);
  if (!ok) {
    fprintf(stderr, "gpu_text: %s: %s\n", in_path, err);
    return 1;
  }
  size_t need = gpu_input_encode(&input, NULL, 0);
  uint8_t *bytes = malloc(need);
  if (bytes == NULL) {
    fprintf(stderr, "gpu_text: %s: no memory for its %zu encoded bytes\n", in_path, need);
    return 1;
  }
  gpu_input_encode(&input, bytes, need);
  FILE *f = fopen(out_path, "wb");
  bool written = f != NULL && fwrite(bytes, 1, need, f) == need;
  if (f != NULL && fclose(f) != 0) written = false;
  free(bytes);
  if (!written) {
    fprintf(stderr, "gpu_text: cannot write '%s'\n", out_path);
    return 1;
  }
  return 0;
}

static int trace(const char *path, bool run) {
  uint8_t *bytes;
  size_t size;
  if (!fz_read_file("gpu_text", path, &bytes, &size)) return 1;
  bool ok = gpu_input_decode(bytes, size, &input);
  free(bytes);
  if (!ok) {
    fprintf(stderr, "gpu_text: %s: not a gpu input (the first byte must be version %u, and 2 bytes at least)\n",
            path, GPU_INPUT_VERSION);
    return 1;
  }
  gpu_input_print(&input, stdout);
  if (!run) return 0;
  gpu_exec_result result;
  if (!gpu_execute(&input, NULL, &result)) {
    printf("# MISMATCH: %s\n", result.message);
    return 1;
  }
  printf("# ran %zu ops (%zu skipped): the GPU agreed with the model\n", result.ops_run, result.ops_skipped);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  if (strcmp(argv[1], "encode") == 0) {
    if (argc != 4) return usage();
    return encode(argv[2], argv[3]);
  }
  bool run = strcmp(argv[1], "run") == 0;
  if ((!run && strcmp(argv[1], "trace") != 0) || argc < 3) return usage();
  int rc = 0;
  for (int i = 2; i < argc; i++) {
    if (trace(argv[i], run) != 0) rc = 1;
  }
  return rc;
}
