/*
 * anchors.c — the anchor benchmarks: one malloc + free pair of a metadata-sized object in
 * jemalloc and in glibc malloc, measured in the same run as the port's benchmarks so that their
 * ratios mean something (the teardown goal is stated in jemalloc pairs).
 *
 * BM_anchor_jemalloc_malloc_free/bytes:64 — jemalloc's own mallocx + dallocx, whatever the
 *   process allocator is: the process's jemalloc when it is the allocator (--config=opt), else
 *   a private copy linked in with renamed symbols (//bench:jemalloc_private; linking
 *   libjemalloc.so itself would make jemalloc the allocator of the whole process, so a glibc
 *   build would not be one). The label says which.
 * BM_anchor_glibc_malloc_free/bytes:64 — glibc's own __libc_malloc + __libc_free, whatever the
 *   process allocator is.
 * 64 bytes: about what the port keeps per allocation in its hot records (the 24-byte
 * port_allocation, its hAllocation, its placement record and its handle slot).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "bench_fixture.h"

/* The private copy of jemalloc (bench/BUILD.bazel: jemalloc_private). */
void *alloclab_je_mallocx(size_t size, int flags);
void alloclab_je_dallocx(void *ptr, int flags);
/* glibc's own allocator, under the names glibc exports for it. */
void *__libc_malloc(size_t size);
void __libc_free(void *ptr);

typedef void *mallocx_fn(size_t, int);
typedef void dallocx_fn(void *, int);

typedef struct jemalloc_api {
  mallocx_fn *mallocx;
  dallocx_fn *dallocx;
  const char *label;
} jemalloc_api;

static jemalloc_api jemalloc_resolve(void) {
  jemalloc_api api = {alloclab_je_mallocx, alloclab_je_dallocx,
                      "jemalloc 5.3 private copy (jemalloc is not the process allocator)"};
  mallocx_fn *process_mallocx = (mallocx_fn *)dlsym(RTLD_DEFAULT, "mallocx");
  dallocx_fn *process_dallocx = (dallocx_fn *)dlsym(RTLD_DEFAULT, "dallocx");
  if (process_mallocx && process_dallocx) {
    api.mallocx = process_mallocx;
    api.dallocx = process_dallocx;
    api.label = "jemalloc 5.3, the process allocator (mallocx + dallocx)";
  }
  return api;
}

static void bm_jemalloc_malloc_free(al_bench_state *state) {
  size_t bytes = (size_t)al_bench_range_arg(state, 0);
  jemalloc_api api = jemalloc_resolve();
  int64_t n = 0;
  while (al_bench_keep_running_batch(state, &n)) {
    for (int64_t i = 0; i < n; i++) {
      void *p = api.mallocx(bytes, 0);
      AL_BENCH_DO_NOT_OPTIMIZE(p);
      api.dallocx(p, 0);
    }
  }
  al_bench_set_items_processed(state, al_bench_iteration_count(state));
  al_bench_set_label(state, api.label);
}

static void bm_glibc_malloc_free(al_bench_state *state) {
  size_t bytes = (size_t)al_bench_range_arg(state, 0);
  /* Name the library __libc_malloc comes from (glibc, unless something interposes it). */
  char label[256];
  Dl_info info;
  const char *from = dladdr((void *)__libc_malloc, &info) && info.dli_fname ? info.dli_fname : "?";
  snprintf(label, sizeof label, "glibc __libc_malloc + __libc_free (from %s)", from);
  int64_t n = 0;
  while (al_bench_keep_running_batch(state, &n)) {
    for (int64_t i = 0; i < n; i++) {
      void *p = __libc_malloc(bytes);
      AL_BENCH_DO_NOT_OPTIMIZE(p);
      __libc_free(p);
    }
  }
  al_bench_set_items_processed(state, al_bench_iteration_count(state));
  al_bench_set_label(state, label);
}

void bench_register_anchors(const bench_options *options) {
  (void)options;
  static const char *const names[] = {"bytes"};
  al_bench_arg_names(al_bench_arg(al_bench_register("BM_anchor_jemalloc_malloc_free", bm_jemalloc_malloc_free), 64),
                     1, names);
  al_bench_arg_names(al_bench_arg(al_bench_register("BM_anchor_glibc_malloc_free", bm_glibc_malloc_free), 64),
                     1, names);
}
