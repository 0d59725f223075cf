/*
 * alloclab_benchmark_main.c — main of //bench:alloclab_benchmark: registers every benchmark
 * module, adds the report's context, and runs Google Benchmark (al_bench_main).
 *
 * Flags: every --benchmark_* flag of Google Benchmark 1.7.1 (--help lists them), plus
 *   --alloclab_smoke   tiny populations and fewer sizes, for the smoke test (every benchmark
 *                      family still runs); the context says mode=smoke.
 *
 * Context (in the JSON report's "context"): compiler, build_flags, allocator (what the build
 * links; a sanitizer's replaces it), miniport (al_selected_miniport.name), host_bytes_source
 * (where BM_memory_host_bytes reads host memory), mode, and git_commit: ./lab passes it with
 * --benchmark_context=git_commit=<sha>; run by hand, it comes from $ALLOCLAB_GIT_COMMIT, else
 * "unknown".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_fixture.h"

/* Whether a --benchmark_context flag already names @key (Google Benchmark adds those itself). */
static bool context_flag_has(int argc, char **argv, const char *key) {
  static const char flag[] = "--benchmark_context=";
  size_t key_len = strlen(key);
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], flag, sizeof flag - 1) != 0) continue;
    for (const char *p = argv[i] + sizeof flag - 1; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
      if (strncmp(p, key, key_len) == 0 && p[key_len] == '=') return true;
  }
  return false;
}

int main(int argc, char **argv) {
  bench_options options = {0};
  /* Take our own flags out; al_bench_main refuses flags it does not know. */
  int kept = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--alloclab_smoke") == 0)
      options.smoke = true;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = NULL;
  long nproc = sysconf(_SC_NPROCESSORS_ONLN);
  options.nproc = nproc < 1 ? 1 : nproc > 256 ? 256 : (int)nproc;

  /* Anchors first: they calibrate the run. */
  bench_register_anchors(&options);
  bench_register_port(&options);
  bench_register_gpu(&options);
  if (bench_register_segment_heap) bench_register_segment_heap(&options);

  al_bench_add_default_context();
  al_bench_add_context("miniport", al_selected_miniport.name);
  al_bench_add_context("mode", options.smoke ? "smoke (--alloclab_smoke: tiny sizes, not for comparison)" : "full");
  uint64_t ignored;
  const char *source = "none";
  if (!bench_host_allocated_bytes(&ignored, &source)) source = "none";
  al_bench_add_context("host_bytes_source", source);
  if (!context_flag_has(argc, argv, "git_commit")) {
    const char *commit = getenv("ALLOCLAB_GIT_COMMIT");
    al_bench_add_context("git_commit", commit && *commit ? commit : "unknown");
  }

  int rc = al_bench_main(argc, argv);
  bench_population_release();
  return rc;
}
