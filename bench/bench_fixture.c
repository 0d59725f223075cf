/* bench_fixture.c — adapters, requests, host memory and the background population of the
 * benchmarks (bench_fixture.h). */
#include "bench_fixture.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bench_fail_status(al_bench_state *state, const char *what, NTSTATUS status) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, al_status_name(status));
  al_bench_skip_with_error(state, msg);
}

/* ---- Adapters ------------------------------------------------------------------------------- */

#define MIB ((uint64_t)1 << 20)

uint64_t bench_segment_bytes(uint64_t allocations, uint64_t bytes, uint64_t headroom) {
  uint64_t total = allocations * bytes + headroom;
  return (total + 64 * MIB - 1) / (64 * MIB) * (64 * MIB); /* whole 64 MiB, any page size */
}

NTSTATUS bench_adapter_create(uint64_t memory_bytes, bool threaded, al_adapter **out_adapter) {
  al_hardware_request request = {
      .memory_segment_size = memory_bytes,
      .threaded_engine = threaded,
  };
  /* Hardware configs are small structs; 4 KiB is plenty for any miniport's. */
  _Alignas(max_align_t) unsigned char config[4096];
  uint32_t size = al_selected_miniport.make_hardware_config(&request, config, sizeof config);
  if (size == 0) return STATUS_INVALID_PARAMETER;
  al_adapter_config adapter_config = {
      .driver_entry = al_selected_miniport.driver_entry,
      .hardware_config = config,
      .hardware_config_size = size,
  };
  return al_adapter_create(&adapter_config, out_adapter);
}

/* ---- Requests ------------------------------------------------------------------------------- */

bool bench_private_data_make(bench_private_data *data, uint64_t bytes) {
  memset(data, 0, sizeof *data);
  uint32_t cap = al_selected_miniport.allocation_data_size;
  data->bytes = malloc(cap ? cap : 1);
  if (data->bytes == NULL) abort();
  al_allocation_request request = {.size = bytes, .placement = AL_PLACEMENT_ANY};
  data->size = al_selected_miniport.make_allocation_data(&request, data->bytes, cap);
  data->request_bytes = bytes;
  if (data->size == 0) {
    bench_private_data_free(data);
    return false;
  }
  return true;
}

void bench_private_data_free(bench_private_data *data) {
  free(data->bytes);
  memset(data, 0, sizeof *data);
}

bench_scratch *bench_scratch_new(void) {
  bench_scratch *scratch = calloc(1, sizeof *scratch);
  if (scratch == NULL) abort();
  return scratch;
}

static void fill_descs(bench_scratch *scratch, uint32_t n, const bench_private_data *data) {
  for (uint32_t i = 0; i < n; i++) {
    scratch->descs[i].private_data = data->bytes;
    scratch->descs[i].private_data_size = data->size;
  }
}

NTSTATUS bench_resource_create(al_adapter *adapter, al_handle device, uint32_t n, bool shared,
                               const bench_private_data *data, bench_scratch *scratch,
                               al_handle *out_resource) {
  fill_descs(scratch, n, data);
  al_create_allocation_args args = {
      .device = device,
      .flags = AL_CREATE_RESOURCE | (shared ? AL_CREATE_SHARED : 0u),
      .allocation_count = n,
      .allocations = scratch->descs,
      .out_allocations = scratch->handles,
      .out_resource = out_resource,
  };
  return al_allocation_create(adapter, &args);
}

NTSTATUS bench_resource_release(al_adapter *adapter, al_handle device, al_handle resource) {
  al_destroy_allocation_args args = {.device = device, .resource = resource};
  return al_allocation_destroy(adapter, &args);
}

NTSTATUS bench_allocations_create(al_adapter *adapter, al_handle device, uint32_t n,
                                  const bench_private_data *data, bench_scratch *scratch,
                                  al_handle *out_handles) {
  fill_descs(scratch, n, data);
  al_create_allocation_args args = {
      .device = device,
      .allocation_count = n,
      .allocations = scratch->descs,
      .out_allocations = out_handles,
  };
  return al_allocation_create(adapter, &args);
}

NTSTATUS bench_allocations_destroy(al_adapter *adapter, al_handle device, const al_handle *handles,
                                   uint32_t n) {
  al_destroy_allocation_args args = {.device = device, .allocations = handles, .allocation_count = n};
  return al_allocation_destroy(adapter, &args);
}

/* ---- Host memory ---------------------------------------------------------------------------- */

typedef int mallctl_fn(const char *, void *, size_t *, void *, size_t);
typedef size_t sanitizer_bytes_fn(void);

bool bench_host_allocated_bytes(uint64_t *out_bytes, const char **out_source) {
  /* A sanitizer's allocator replaces the process allocator: ask it. */
  sanitizer_bytes_fn *sanitizer =
      (sanitizer_bytes_fn *)dlsym(RTLD_DEFAULT, "__sanitizer_get_current_allocated_bytes");
  if (sanitizer) {
    *out_bytes = sanitizer();
    *out_source = "sanitizer allocator (__sanitizer_get_current_allocated_bytes)";
    return true;
  }
  /* jemalloc as the process allocator (--config=opt links it into every binary): its mallctl is
   * a global symbol. (The private copy the jemalloc anchor may use has renamed symbols.) */
  mallctl_fn *mallctl = (mallctl_fn *)dlsym(RTLD_DEFAULT, "mallctl");
  if (mallctl) {
    (void)mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    uint64_t epoch = 1;
    size_t epoch_size = sizeof epoch;
    size_t allocated = 0, allocated_size = sizeof allocated;
    if (mallctl("epoch", &epoch, &epoch_size, &epoch, epoch_size) != 0 ||
        mallctl("stats.allocated", &allocated, &allocated_size, NULL, 0) != 0)
      return false;
    *out_bytes = allocated;
    *out_source = "jemalloc stats.allocated";
    return true;
  }
  /* glibc malloc: bytes in use in the arenas plus mmapped chunks. */
  struct mallinfo2 info = mallinfo2();
  *out_bytes = (uint64_t)info.uordblks + (uint64_t)info.hblkhd;
  *out_source = "glibc mallinfo2 (uordblks + hblkhd)";
  return true;
}

/* ---- Background population ------------------------------------------------------------------ */

static bench_population cached;
static bool cached_valid;

void bench_population_release(void) {
  if (!cached_valid) return;
  al_adapter_destroy(cached.adapter);
  bench_private_data_free(&cached.data);
  memset(&cached, 0, sizeof cached);
  cached_valid = false;
}

static bool build_population(bench_population *p, uint64_t live, char *err, size_t cap) {
  memset(p, 0, sizeof *p);
  p->live = live;
  if (!bench_private_data_make(&p->data, 4096)) {
    snprintf(err, cap, "miniport %s cannot express a 4 KiB allocation", al_selected_miniport.name);
    return false;
  }
  NTSTATUS status =
      bench_adapter_create(bench_segment_bytes(live, 4096, BENCH_POPULATION_HEADROOM), false, &p->adapter);
  if (!NT_SUCCESS(status)) {
    snprintf(err, cap, "adapter for %llu allocations: %s", (unsigned long long)live, al_status_name(status));
    bench_private_data_free(&p->data);
    return false;
  }
  for (uint32_t d = 0; d < BENCH_POPULATION_DEVICES && NT_SUCCESS(status); d++)
    status = al_device_create(p->adapter, &p->devices[d]);
  bench_scratch *scratch = bench_scratch_new();
  uint64_t before = 0, after = 0;
  const char *source = NULL;
  bool known = NT_SUCCESS(status) && bench_host_allocated_bytes(&before, &source);
  uint64_t start = bench_now_ns();
  uint64_t made = 0;
  for (uint32_t r = 0; made < live && NT_SUCCESS(status); r++) {
    uint64_t left = live - made;
    uint32_t n = left < BENCH_POPULATION_RESOURCE ? (uint32_t)left : BENCH_POPULATION_RESOURCE;
    al_handle resource;
    status = bench_resource_create(p->adapter, p->devices[r % BENCH_POPULATION_DEVICES], n, false,
                                   &p->data, scratch, &resource);
    made += n;
  }
  uint64_t elapsed = bench_now_ns() - start;
  free(scratch);
  if (!NT_SUCCESS(status)) {
    snprintf(err, cap, "population of %llu allocations: %s", (unsigned long long)live, al_status_name(status));
    al_adapter_destroy(p->adapter);
    bench_private_data_free(&p->data);
    return false;
  }
  known = known && bench_host_allocated_bytes(&after, &source);
  p->host_bytes_known = known && live > 0;
  p->host_bytes_per_allocation = p->host_bytes_known ? ((double)after - (double)before) / (double)live : 0;
  p->host_bytes_source = source ? source : "none";
  p->build_ns_per_allocation = live ? (double)elapsed / (double)live : 0;
  return true;
}

const bench_population *bench_population_get(uint64_t live, char *err, size_t cap) {
  if (cached_valid && cached.live == live) return &cached;
  bench_population_release(); /* one population at a time: a million of them is ~5 GiB */
  if (!build_population(&cached, live, err, cap)) return NULL;
  cached_valid = true;
  return &cached;
}
