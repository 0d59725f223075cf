/*
 * read_file.c — see read_file.h.
 */
#include "fuzz/tools/read_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool fz_read_file(const char *tool, const char *path, uint8_t **data, size_t *size) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    fprintf(stderr, "%s: cannot read '%s': it is a directory\n", tool, path);
    return false;
  }
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "%s: cannot read '%s': %s\n", tool, path, strerror(errno));
    return false;
  }
  size_t cap = 4096;
  size_t len = 0;
  uint8_t *buf = malloc(cap);
  while (buf != NULL) {
    if (len + 1u >= cap) {
      uint8_t *bigger = realloc(buf, cap * 2u);
      if (bigger == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap *= 2u;
    }
    size_t n = fread(buf + len, 1, cap - len - 1u, f);
    len += n;
    if (n == 0) {
      break;
    }
  }
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (buf == NULL) {
    fprintf(stderr, "%s: cannot read '%s': out of memory\n", tool, path);
    return false;
  }
  if (err != 0) {
    fprintf(stderr, "%s: cannot read '%s': %s\n", tool, path, strerror(err));
    free(buf);
    return false;
  }
  buf[len] = 0;
  *data = buf;
  *size = len;
  return true;
}
