/*
 * bench_fixture.h — what alloclab's benchmarks share: adapters on the selected miniport
 * (//hw:miniport), allocation requests in its private-data format, timing, the host-memory
 * probe, and the cached background population of live allocations.
 *
 * DOC: Overview
 * Every benchmark runs against al_selected_miniport, the library the Bazel label flag
 * //hw:miniport names (default: the sim miniport), and builds its requests through the
 * descriptor (make_hardware_config, make_allocation_data, append_command), so a vendor's miniport
 * is benchmarked with `--//hw:miniport=//vendor:selected`.
 *
 * Timing: benchmarks that need setup between measured operations use manual time: they read
 * CLOCK_MONOTONIC around the measured part only (bench_now_ns) and hand the sum to
 * al_bench_set_iteration_time. One clock pair costs about 40 ns, so short operations are timed
 * in blocks and only the latency benchmarks time each operation on its own.
 *
 * Errors: a call that fails ends the run with al_bench_skip_with_error() naming the call and
 * the status (bench_fail_status); the benchmark then cleans up and returns.
 *
 * Threads: bench_scratch and bench_private_data are per thread; the population cache belongs
 * to benchmarks that run on one thread.
 */
#ifndef ALLOCLAB_BENCH_FIXTURE_H
#define ALLOCLAB_BENCH_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "alloclab/alloclab.h"
#include "alloclab/bench/bench.h"
#include "alloclab/hw/miniport.h"

/* What main passes to every module's registration function. */
typedef struct bench_options {
  bool smoke; /* --alloclab_smoke: tiny populations, for the smoke test */
  int nproc;  /* online CPUs: the largest thread count */
} bench_options;

/* The modules (each file registers its benchmarks; main calls them in this order). */
void bench_register_anchors(const bench_options *options);
void bench_register_port(const bench_options *options);
void bench_register_gpu(const bench_options *options);
/* Defined only when //bench:segment_heap_benchmarks is linked (see bench/BUILD.bazel). */
void bench_register_segment_heap(const bench_options *options) __attribute__((weak));

/* ---- Time ----------------------------------------------------------------------------------- */

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Ends the run as an error: "<what>: <status name>". */
void bench_fail_status(al_bench_state *state, const char *what, NTSTATUS status);

/* ---- Adapters ------------------------------------------------------------------------------- */

/* The size of a memory segment that holds @allocations of @bytes each plus @headroom bytes. */
uint64_t bench_segment_bytes(uint64_t allocations, uint64_t bytes, uint64_t headroom);

/* Creates an adapter on the selected miniport: a memory segment of @memory_bytes (0: the
 * miniport's default), a deterministic engine unless @threaded, no verifier. */
NTSTATUS bench_adapter_create(uint64_t memory_bytes, bool threaded, al_adapter **out_adapter);

/* ---- Requests ------------------------------------------------------------------------------- */

/* Private data for one allocation request, in the miniport's format. */
typedef struct bench_private_data {
  void *bytes;
  uint32_t size;
  uint64_t request_bytes;
} bench_private_data;

/* Makes the private data of a @bytes allocation (AL_PLACEMENT_ANY, page alignment); false when
 * the miniport cannot express it. Free with bench_private_data_free. */
bool bench_private_data_make(bench_private_data *data, uint64_t bytes);
void bench_private_data_free(bench_private_data *data);

/* Per-thread arrays for one create / destroy call (too big for a benchmark thread's stack). */
typedef struct bench_scratch {
  al_allocation_desc descs[AL_MAX_ALLOCATIONS_PER_CALL];
  al_handle handles[AL_MAX_ALLOCATIONS_PER_CALL];
} bench_scratch;

bench_scratch *bench_scratch_new(void); /* aborts when out of memory */

/* Creates a resource of @n (1..1024) allocations of @data on @device, shared when @shared.
 * The allocations' handles land in scratch->handles. */
NTSTATUS bench_resource_create(al_adapter *adapter, al_handle device, uint32_t n, bool shared,
                               const bench_private_data *data, bench_scratch *scratch,
                               al_handle *out_resource);

/* @device lets go of @resource (al_allocation_destroy by resource). */
NTSTATUS bench_resource_release(al_adapter *adapter, al_handle device, al_handle resource);

/* Creates @n (1..1024) device-owned allocations of @data on @device into @out_handles. */
NTSTATUS bench_allocations_create(al_adapter *adapter, al_handle device, uint32_t n,
                                  const bench_private_data *data, bench_scratch *scratch,
                                  al_handle *out_handles);

/* Destroys @n device-owned allocations of @device (one list call). */
NTSTATUS bench_allocations_destroy(al_adapter *adapter, al_handle device, const al_handle *handles,
                                   uint32_t n);

/* ---- Host memory ---------------------------------------------------------------------------- */

/* Bytes the process allocator holds for the program now, and where the number comes from
 * ("jemalloc stats.allocated", "glibc mallinfo2", "<sanitizer> allocator"); false when no
 * source is available. jemalloc's thread cache is flushed first, so cached free objects do not
 * count. */
bool bench_host_allocated_bytes(uint64_t *out_bytes, const char **out_source);

/* ---- Background population ------------------------------------------------------------------ */

/* An adapter holding @live allocations of 4 KiB in resources of 64 (the last one smaller),
 * spread round-robin over BENCH_POPULATION_DEVICES devices, with room left for the measured
 * operations (BENCH_POPULATION_HEADROOM bytes of memory segment). Built once and cached: the
 * next bench_population_get() with the same @live returns it again (benchmarks add and remove
 * their own objects on top, leaving it as it was); another @live frees it first. */
#define BENCH_POPULATION_DEVICES 8u
#define BENCH_POPULATION_RESOURCE 64u
#define BENCH_POPULATION_HEADROOM ((uint64_t)256 << 20)

typedef struct bench_population {
  uint64_t live;
  al_adapter *adapter;
  al_handle devices[BENCH_POPULATION_DEVICES];
  bench_private_data data; /* 4 KiB */
  /* Measured while building: host bytes held per live allocation (process allocator growth),
   * its source, and the build time per allocation. */
  bool host_bytes_known;
  double host_bytes_per_allocation;
  const char *host_bytes_source;
  double build_ns_per_allocation;
} bench_population;

/* Returns the cached population of @live allocations, building it if needed; NULL on failure,
 * with a message in @err. */
const bench_population *bench_population_get(uint64_t live, char *err, size_t cap);

/* Frees the cached population (main calls it after al_bench_main). */
void bench_population_release(void);

#endif /* ALLOCLAB_BENCH_FIXTURE_H */
