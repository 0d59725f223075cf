/*
 * replay_main.c — the replay driver: a plain main() that runs a fuzz target's
 * LLVMFuzzerTestOneInput on every file named on the command line (a directory: on every
 * regular file in it, recursively, in name order). It stands in for libFuzzer in builds
 * without it (gcc, asan, tsan, valgrind) and is what `<name>` tests run on the corpus.
 *
 *   replay [-flag=value ...] FILE_OR_DIR...
 *
 * Arguments starting with '-' are libFuzzer flags and are ignored (so a libFuzzer command line
 * works unchanged). A missing or unreadable file is an error (exit 1); no input at all is a
 * usage error (exit 2). A crash in the target ends the run like any crash; the file being run
 * is printed first ("replay: running FILE") when REPLAY_VERBOSE is set in the environment.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/common/libfuzzer.h"

static bool verbose;
static unsigned long inputs;

static bool run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: cannot open '%s': %s\n", path, strerror(errno));
    return false;
  }
  size_t cap = 4096;
  size_t len = 0;
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    fprintf(stderr, "replay: out of memory reading '%s'\n", path);
    fclose(f);
    return false;
  }
  for (;;) {
    if (len == cap) {
      uint8_t *bigger = realloc(buf, cap * 2u);
      if (bigger == NULL) {
        fprintf(stderr, "replay: out of memory reading '%s'\n", path);
        free(buf);
        fclose(f);
        return false;
      }
      buf = bigger;
      cap *= 2u;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0) {
      break;
    }
  }
  bool failed = ferror(f) != 0;
  int saved = errno;
  fclose(f);
  if (failed) {
    fprintf(stderr, "replay: cannot read '%s': %s\n", path, strerror(saved));
    free(buf);
    return false;
  }
  if (verbose) {
    fprintf(stderr, "replay: running %s (%zu bytes)\n", path, len);
  }
  /* A copy of exactly len bytes, so ASan sees reads past the end of the input. */
  uint8_t *exact = malloc(len > 0 ? len : 1u);
  if (exact == NULL) {
    fprintf(stderr, "replay: out of memory running '%s'\n", path);
    free(buf);
    return false;
  }
  if (len > 0) {
    memcpy(exact, buf, len);
  }
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  inputs++;
  return true;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool run_path(const char *path);

static bool run_dir(const char *path) {
  DIR *dir = opendir(path);
  if (dir == NULL) {
    fprintf(stderr, "replay: cannot open directory '%s': %s\n", path, strerror(errno));
    return false;
  }
  char **names = NULL;
  size_t count = 0;
  size_t cap = 0;
  bool ok = true;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
      continue;
    }
    if (count == cap) {
      size_t ncap = cap ? cap * 2u : 64u;
      char **bigger = realloc(names, ncap * sizeof *names);
      if (bigger == NULL) {
        ok = false;
        break;
      }
      names = bigger;
      cap = ncap;
    }
    size_t n = strlen(path) + strlen(e->d_name) + 2u;
    names[count] = malloc(n);
    if (names[count] == NULL) {
      ok = false;
      break;
    }
    snprintf(names[count], n, "%s/%s", path, e->d_name);
    count++;
  }
  closedir(dir);
  if (!ok) {
    fprintf(stderr, "replay: out of memory listing '%s'\n", path);
  }
  if (count > 0) {
    qsort(names, count, sizeof *names, compare_names);
  }
  for (size_t i = 0; i < count; i++) {
    if (ok && !run_path(names[i])) {
      ok = false;
    }
    free(names[i]);
  }
  free(names);
  return ok;
}

static bool run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: cannot open '%s': %s\n", path, strerror(errno));
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    return run_dir(path);
  }
  return run_file(path);
}

int main(int argc, char **argv) {
  verbose = getenv("REPLAY_VERBOSE") != NULL;
  if (LLVMFuzzerInitialize != NULL) {
    LLVMFuzzerInitialize(&argc, &argv);
  }
  unsigned long paths = 0;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-') {
      continue; /* a libFuzzer flag */
    }
    paths++;
    if (!run_path(argv[i])) {
      return 1;
    }
  }
  if (paths == 0) {
    fprintf(stderr,
            "usage: %s [-libfuzzer_flag=value ...] FILE_OR_DIR...\n"
            "Runs the fuzz target on each input (a directory: on every file in it). This build "
            "has no libFuzzer: build with --config=fuzz to fuzz.\n",
            argv[0]);
    return 2;
  }
  fprintf(stderr, "replay: ran %lu inputs\n", inputs);
  return 0;
}
