/*
 * port_benchmarks.c — the port's allocation path through its public API (alloclab.h), on the
 * selected miniport: close, destroy, whole-resource teardown, create, tail latency, churn,
 * deferred destroy, threads, scaling with live allocations, host memory per allocation.
 *
 * Allocations are 4 KiB (AL_PLACEMENT_ANY) unless a benchmark says otherwise. Benchmarks whose
 * name holds "teardown" report the user counter ns_per_allocation (the reported time per
 * operation divided by the allocations the operation tears down). Times are manual (op_driver.h):
 * only the measured call is timed, never the setup between calls.
 *
 *  BM_close/bindings:N                  one DxgkDdiCloseAllocation of N bindings: a non-last
 *                                       holder of a shared resource lets go of it
 *  BM_destroy_allocations/allocations:N DestroyAllocation of N device-owned allocations (list)
 *  BM_create_resource/allocations:N     a resource of N allocations created
 *  BM_teardown_resource/devices:D/allocations:N
 *                                       whole-resource teardown: closed on D devices (the D-1
 *                                       openers, then the creator, whose release destroys it
 *                                       with DestroyResource)
 *  BM_teardown_latency_pXX/allocations:N, BM_create_latency_pXX/allocations:N
 *                                       the XX-th percentile (50, 99, 99.9) of single
 *                                       teardowns / creates (op_driver.h: reported as the time)
 *  BM_teardown_device/allocations:N     al_device_destroy of a device holding N allocations (in
 *                                       resources of 64)
 *  BM_teardown_deferred/allocations:N   destroy of a resource that queued GPU work still uses
 *                                       (deferred), then the engine completes the work and the
 *                                       reaper runs the teardown; counters split the two
 *  BM_churn_mixed_sizes/live:L          destroy a random one of L live allocations and create one
 *                                       of a random size (4..64 KiB)
 *  BM_teardown_threads/allocations:64/threads:T
 *                                       T threads on one adapter, a device each, tearing down
 *                                       their own resources
 *  BM_close_shared_across_threads/bindings:64/threads:T
 *                                       T threads opening and closing one shared resource
 *  BM_teardown_scaling/live:L/allocations:64, BM_device_create_destroy/live:L,
 *  BM_memory_host_bytes/live:L          with L live allocations in the adapter (built once per
 *                                       L and cached: bench_fixture.h)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_driver.h"

#define MIB ((uint64_t)1 << 20)
#define MAX_HOLDERS 8u
#define MAX_CHUNK 64u

/* Subjects per chunk: about 2048 allocations' worth, 1..MAX_CHUNK. */
static uint32_t chunk_for(uint32_t allocations_per_subject) {
  uint32_t chunk = 2048u / (allocations_per_subject ? allocations_per_subject : 1u);
  return chunk < 1 ? 1 : chunk > MAX_CHUNK ? MAX_CHUNK : chunk;
}

/* ---- A fresh adapter with some devices ------------------------------------------------------ */

typedef struct port_fixture {
  al_adapter *adapter;
  al_handle devices[MAX_CHUNK + 1];
  uint32_t device_count;
  bench_private_data data; /* 4 KiB */
  bench_scratch *scratch;
} port_fixture;

static void fixture_close(port_fixture *f) {
  al_adapter_destroy(f->adapter); /* tears down whatever a failed run left */
  bench_private_data_free(&f->data);
  free(f->scratch);
  memset(f, 0, sizeof *f);
}

/* An adapter with a memory segment of @memory_bytes and @devices devices. */
static bool fixture_open(al_bench_state *state, port_fixture *f, uint32_t devices, uint64_t memory_bytes) {
  memset(f, 0, sizeof *f);
  f->scratch = bench_scratch_new();
  if (!bench_private_data_make(&f->data, 4096)) {
    al_bench_skip_with_error(state, "the miniport cannot express a 4 KiB allocation");
    fixture_close(f);
    return false;
  }
  NTSTATUS status = bench_adapter_create(memory_bytes, false, &f->adapter);
  for (uint32_t i = 0; i < devices && NT_SUCCESS(status); i++) {
    status = al_device_create(f->adapter, &f->devices[i]);
    f->device_count += NT_SUCCESS(status);
  }
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "fixture (adapter and devices)", status);
    fixture_close(f);
    return false;
  }
  return true;
}

static void set_per_allocation(al_bench_state *state, const char *name, const op_result *r, uint32_t allocations) {
  al_bench_counter_set(state, name, r->reported_ns / (double)allocations, AL_BENCH_COUNTER_AVG_THREADS);
}

/* ---- Whole-resource teardown (and its building blocks) -------------------------------------- */

/* Resources of n allocations on devices[0], opened on devices[1..holders-1]. */
typedef struct teardown_ctx {
  al_adapter *adapter;
  const al_handle *devices;
  uint32_t holders;
  uint32_t n;
  const bench_private_data *data;
  bench_scratch *scratch;
  al_handle resources[MAX_CHUNK];
} teardown_ctx;

static NTSTATUS teardown_prepare(void *ctx, uint32_t count) {
  teardown_ctx *c = ctx;
  for (uint32_t i = 0; i < count; i++) {
    NTSTATUS status = bench_resource_create(c->adapter, c->devices[0], c->n, c->holders > 1, c->data,
                                            c->scratch, &c->resources[i]);
    for (uint32_t d = 1; d < c->holders && NT_SUCCESS(status); d++)
      status = al_resource_open(c->adapter, c->devices[d], c->resources[i]);
    if (!NT_SUCCESS(status)) return status;
  }
  return STATUS_SUCCESS;
}

static NTSTATUS teardown_op(void *ctx, uint32_t index) {
  teardown_ctx *c = ctx;
  for (uint32_t d = c->holders; d-- > 0;) {
    NTSTATUS status = bench_resource_release(c->adapter, c->devices[d], c->resources[index]);
    if (!NT_SUCCESS(status)) return status;
  }
  return STATUS_SUCCESS;
}

static op_driver teardown_driver(teardown_ctx *c) {
  return (op_driver){
      .ctx = c,
      .chunk = chunk_for(c->n * c->holders),
      .prepare = teardown_prepare,
      .op = teardown_op,
      .prepare_what = "create resource (and open it on the other devices)",
      .op_what = "al_allocation_destroy (resource)",
  };
}

/* Runs teardowns of resources of @n allocations held by @holders devices; reports the mean or
 * @percentile, and ns_per_allocation. */
static void run_teardown(al_bench_state *state, al_adapter *adapter, const al_handle *devices, uint32_t holders,
                         uint32_t n, const bench_private_data *data, bench_scratch *scratch, double percentile) {
  teardown_ctx c = {.adapter = adapter, .devices = devices, .holders = holders, .n = n, .data = data, .scratch = scratch};
  op_driver d = teardown_driver(&c);
  char trace_name[64];
  snprintf(trace_name, sizeof trace_name, "teardown devices:%u allocations:%u", holders, n);
  d.trace_name = trace_name;
  if (percentile >= 0) d.chunk = 1; /* latency: each teardown right after its setup */
  op_result r;
  if (!op_drive(state, &d, percentile, &r)) return;
  set_per_allocation(state, "ns_per_allocation", &r, n);
  al_bench_set_items_processed(state, (int64_t)(r.ops * n));
}

static uint64_t teardown_memory(uint32_t n, uint32_t holders) {
  return bench_segment_bytes((uint64_t)chunk_for(n * holders) * n, 4096, 64 * MIB);
}

static void bm_teardown_resource(al_bench_state *state) {
  uint32_t holders = (uint32_t)al_bench_range_arg(state, 0), n = (uint32_t)al_bench_range_arg(state, 1);
  port_fixture f;
  if (!fixture_open(state, &f, holders, teardown_memory(n, holders))) return;
  run_teardown(state, f.adapter, f.devices, holders, n, &f.data, f.scratch, -1);
  fixture_close(&f);
}

static void bm_teardown_latency(al_bench_state *state) {
  double percentile = *(const double *)al_bench_user_data(state);
  uint32_t n = (uint32_t)al_bench_range_arg(state, 0);
  port_fixture f;
  if (!fixture_open(state, &f, 1, teardown_memory(n, 1))) return;
  run_teardown(state, f.adapter, f.devices, 1, n, &f.data, f.scratch, percentile);
  fixture_close(&f);
}

/* ---- Close: a non-last holder lets go ------------------------------------------------------- */

/* One shared resource of n allocations on devices[0]; devices[1..chunk] open and close it. */
typedef struct close_ctx {
  al_adapter *adapter;
  const al_handle *devices;
  al_handle resource;
} close_ctx;

static NTSTATUS close_prepare(void *ctx, uint32_t count) {
  close_ctx *c = ctx;
  for (uint32_t i = 0; i < count; i++) {
    NTSTATUS status = al_resource_open(c->adapter, c->devices[1 + i], c->resource);
    if (!NT_SUCCESS(status)) return status;
  }
  return STATUS_SUCCESS;
}

static NTSTATUS close_op(void *ctx, uint32_t index) {
  close_ctx *c = ctx;
  return bench_resource_release(c->adapter, c->devices[1 + index], c->resource);
}

static void bm_close(al_bench_state *state) {
  uint32_t n = (uint32_t)al_bench_range_arg(state, 0);
  uint32_t chunk = chunk_for(n);
  port_fixture f;
  if (!fixture_open(state, &f, chunk + 1, bench_segment_bytes(n, 4096, 64 * MIB))) return;
  close_ctx c = {.adapter = f.adapter, .devices = f.devices};
  NTSTATUS status = bench_resource_create(f.adapter, f.devices[0], n, true, &f.data, f.scratch, &c.resource);
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "create shared resource", status);
  } else {
    op_driver d = {.ctx = &c, .chunk = chunk, .prepare = close_prepare, .op = close_op,
                   .prepare_what = "al_resource_open", .op_what = "al_allocation_destroy (non-last holder)"};
    op_result r;
    if (op_drive(state, &d, -1, &r)) {
      set_per_allocation(state, "ns_per_binding", &r, n);
      al_bench_set_items_processed(state, (int64_t)(r.ops * n));
    }
  }
  fixture_close(&f);
}

/* ---- Destroy: DestroyAllocation of N device-owned allocations ------------------------------- */

typedef struct destroy_ctx {
  al_adapter *adapter;
  al_handle device;
  uint32_t n;
  const bench_private_data *data;
  bench_scratch *scratch;
  al_handle *handles; /* chunk * n */
} destroy_ctx;

static NTSTATUS destroy_prepare(void *ctx, uint32_t count) {
  destroy_ctx *c = ctx;
  for (uint32_t i = 0; i < count; i++) {
    NTSTATUS status = bench_allocations_create(c->adapter, c->device, c->n, c->data, c->scratch,
                                               &c->handles[(size_t)i * c->n]);
    if (!NT_SUCCESS(status)) return status;
  }
  return STATUS_SUCCESS;
}

static NTSTATUS destroy_op(void *ctx, uint32_t index) {
  destroy_ctx *c = ctx;
  return bench_allocations_destroy(c->adapter, c->device, &c->handles[(size_t)index * c->n], c->n);
}

static void bm_destroy_allocations(al_bench_state *state) {
  uint32_t n = (uint32_t)al_bench_range_arg(state, 0), chunk = chunk_for(n);
  port_fixture f;
  if (!fixture_open(state, &f, 1, bench_segment_bytes((uint64_t)chunk * n, 4096, 64 * MIB))) return;
  destroy_ctx c = {.adapter = f.adapter, .device = f.devices[0], .n = n, .data = &f.data, .scratch = f.scratch};
  c.handles = malloc((size_t)chunk * n * sizeof *c.handles);
  if (c.handles == NULL) abort();
  op_driver d = {.ctx = &c, .chunk = chunk, .prepare = destroy_prepare, .op = destroy_op,
                 .prepare_what = "create device-owned allocations", .op_what = "al_allocation_destroy (list)"};
  op_result r;
  if (op_drive(state, &d, -1, &r)) {
    set_per_allocation(state, "ns_per_allocation", &r, n);
    al_bench_set_items_processed(state, (int64_t)(r.ops * n));
  }
  free(c.handles);
  fixture_close(&f);
}

/* ---- Create ---------------------------------------------------------------------------------- */

static NTSTATUS create_op(void *ctx, uint32_t index) {
  teardown_ctx *c = ctx;
  return bench_resource_create(c->adapter, c->devices[0], c->n, false, c->data, c->scratch, &c->resources[index]);
}

static NTSTATUS create_finish(void *ctx, uint32_t count) {
  teardown_ctx *c = ctx;
  for (uint32_t i = 0; i < count; i++) {
    NTSTATUS status = bench_resource_release(c->adapter, c->devices[0], c->resources[i]);
    if (!NT_SUCCESS(status)) return status;
  }
  return STATUS_SUCCESS;
}

static void run_create(al_bench_state *state, double percentile) {
  uint32_t n = (uint32_t)al_bench_range_arg(state, 0);
  port_fixture f;
  if (!fixture_open(state, &f, 1, teardown_memory(n, 1))) return;
  teardown_ctx c = {.adapter = f.adapter, .devices = f.devices, .holders = 1, .n = n, .data = &f.data, .scratch = f.scratch};
  /* Latency: one create per chunk, so each follows the previous one's teardown alike. */
  op_driver d = {.ctx = &c, .chunk = percentile >= 0 ? 1 : chunk_for(n), .op = create_op, .finish = create_finish,
                 .op_what = "al_allocation_create (resource)", .finish_what = "al_allocation_destroy (resource)"};
  char trace_name[64];
  snprintf(trace_name, sizeof trace_name, "create allocations:%u", n);
  d.trace_name = trace_name;
  op_result r;
  if (op_drive(state, &d, percentile, &r)) {
    set_per_allocation(state, "ns_per_allocation", &r, n);
    al_bench_set_items_processed(state, (int64_t)(r.ops * n));
  }
  fixture_close(&f);
}

static void bm_create_resource(al_bench_state *state) { run_create(state, -1); }

static void bm_create_latency(al_bench_state *state) {
  run_create(state, *(const double *)al_bench_user_data(state));
}

/* ---- Device teardown --------------------------------------------------------------------------- */

/* Devices holding n allocations each, in resources of up to 64. */
typedef struct device_ctx {
  al_adapter *adapter;
  uint32_t n;
  const bench_private_data *data;
  bench_scratch *scratch;
  al_handle devices[MAX_CHUNK];
} device_ctx;

static NTSTATUS device_prepare(void *ctx, uint32_t count) {
  device_ctx *c = ctx;
  for (uint32_t i = 0; i < count; i++) {
    NTSTATUS status = al_device_create(c->adapter, &c->devices[i]);
    for (uint32_t made = 0; made < c->n && NT_SUCCESS(status);) {
      uint32_t k = c->n - made < BENCH_POPULATION_RESOURCE ? c->n - made : BENCH_POPULATION_RESOURCE;
      al_handle resource;
      status = bench_resource_create(c->adapter, c->devices[i], k, false, c->data, c->scratch, &resource);
      made += k;
    }
    if (!NT_SUCCESS(status)) return status;
  }
  return STATUS_SUCCESS;
}

static NTSTATUS device_destroy_op(void *ctx, uint32_t index) {
  device_ctx *c = ctx;
  return al_device_destroy(c->adapter, c->devices[index]);
}

static void bm_teardown_device(al_bench_state *state) {
  uint32_t n = (uint32_t)al_bench_range_arg(state, 0), chunk = chunk_for(n);
  port_fixture f;
  if (!fixture_open(state, &f, 0, bench_segment_bytes((uint64_t)chunk * n, 4096, 64 * MIB))) return;
  device_ctx c = {.adapter = f.adapter, .n = n, .data = &f.data, .scratch = f.scratch};
  op_driver d = {.ctx = &c, .chunk = chunk, .prepare = device_prepare, .op = device_destroy_op,
                 .prepare_what = "device with resources", .op_what = "al_device_destroy"};
  op_result r;
  if (op_drive(state, &d, -1, &r)) {
    set_per_allocation(state, "ns_per_allocation", &r, n);
    al_bench_set_items_processed(state, (int64_t)(r.ops * n));
  }
  fixture_close(&f);
}

/* ---- Deferred destroy: queued work still uses the resource ------------------------------------ */

typedef struct deferred_ctx {
  al_adapter *adapter;
  al_handle device;
  uint32_t n;
  const bench_private_data *data;
  bench_scratch *scratch;
  al_handle resources[MAX_CHUNK];
  uint64_t fences[MAX_CHUNK];
  unsigned char *command;
  uint32_t command_size;
  uint64_t destroy_ns, complete_ns; /* split of the timed operations */
} deferred_ctx;

static NTSTATUS deferred_prepare(void *ctx, uint32_t count) {
  deferred_ctx *c = ctx;
  for (uint32_t i = 0; i < count; i++) {
    NTSTATUS status = bench_resource_create(c->adapter, c->device, c->n, false, c->data, c->scratch, &c->resources[i]);
    if (!NT_SUCCESS(status)) return status;
    al_submit_args submit = {
        .device = c->device,
        .allocations = c->scratch->handles,
        .allocation_count = c->n,
        .command = c->command,
        .command_size = c->command_size,
        .out_fence = &c->fences[i],
    };
    status = al_submit(c->adapter, &submit);
    if (!NT_SUCCESS(status)) return status;
  }
  return STATUS_SUCCESS;
}

/* The destroy is deferred (its fence is pending); the wait runs the engine up to that fence and
 * reaps the teardown. */
static NTSTATUS deferred_op(void *ctx, uint32_t index) {
  deferred_ctx *c = ctx;
  uint64_t t0 = bench_now_ns();
  NTSTATUS status = bench_resource_release(c->adapter, c->device, c->resources[index]);
  uint64_t t1 = bench_now_ns();
  if (NT_SUCCESS(status)) status = al_fence_wait(c->adapter, c->fences[index], UINT64_MAX);
  uint64_t t2 = bench_now_ns();
  c->destroy_ns += t1 - t0;
  c->complete_ns += t2 - t1;
  return status;
}

static void bm_teardown_deferred(al_bench_state *state) {
  uint32_t n = (uint32_t)al_bench_range_arg(state, 0), chunk = chunk_for(n);
  port_fixture f;
  if (!fixture_open(state, &f, 1, bench_segment_bytes((uint64_t)chunk * n, 4096, 64 * MIB))) return;
  deferred_ctx c = {.adapter = f.adapter, .device = f.devices[0], .n = n, .data = &f.data, .scratch = f.scratch};
  uint32_t cap = al_selected_miniport.command_size_max;
  c.command = malloc(cap ? cap : 1);
  if (c.command == NULL) abort();
  al_command_request nop = {.kind = AL_COMMAND_NOP};
  c.command_size = al_selected_miniport.append_command(&nop, c.command, cap);
  if (c.command_size == 0) {
    al_bench_skip_with_error(state, "the miniport cannot express a NOP command");
  } else {
    op_driver d = {.ctx = &c, .chunk = chunk, .prepare = deferred_prepare, .op = deferred_op,
                   .prepare_what = "create resource and submit work on it",
                   .op_what = "al_allocation_destroy (deferred) + al_fence_wait"};
    op_result r;
    if (op_drive(state, &d, -1, &r) && r.ops) {
      set_per_allocation(state, "ns_per_allocation", &r, n);
      /* destroy call (queues the teardown) vs fence wait (engine completes the work, the
       * reaper runs the teardown), per allocation. */
      al_bench_counter_set(state, "destroy_call_ns_per_allocation", (double)c.destroy_ns / (double)r.ops / n, 0);
      al_bench_counter_set(state, "complete_ns_per_allocation", (double)c.complete_ns / (double)r.ops / n, 0);
      al_bench_set_items_processed(state, (int64_t)(r.ops * n));
    }
  }
  free(c.command);
  fixture_close(&f);
}

/* ---- Churn: create + destroy of mixed sizes ----------------------------------------------------- */

#define CHURN_CLASSES 5u
static const uint64_t churn_sizes[CHURN_CLASSES] = {4096, 8192, 16384, 32768, 65536};
/* Weights 8:4:2:1:1 as a 16-entry table of class indices. */
static const uint8_t churn_pick[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4};

static uint64_t xorshift(uint64_t *state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

static void bm_churn_mixed_sizes(al_bench_state *state) {
  uint32_t live = (uint32_t)al_bench_range_arg(state, 0);
  port_fixture f;
  if (!fixture_open(state, &f, 1, bench_segment_bytes(live, 65536, 64 * MIB))) return;
  bench_private_data data[CHURN_CLASSES];
  uint32_t classes = 0;
  for (; classes < CHURN_CLASSES; classes++)
    if (!bench_private_data_make(&data[classes], churn_sizes[classes])) break;
  al_handle *handles = calloc(live, sizeof *handles);
  if (handles == NULL) abort();
  uint64_t rng = 0x2545F4914F6CDD1Du;
  NTSTATUS status = classes == CHURN_CLASSES ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
  for (uint32_t i = 0; i < live && NT_SUCCESS(status); i++)
    status = bench_allocations_create(f.adapter, f.devices[0], 1, &data[churn_pick[xorshift(&rng) & 15u]],
                                      f.scratch, &handles[i]);
  int64_t bytes = 0;
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "initial live allocations", status);
  } else {
    int64_t batch = 0;
    while (al_bench_keep_running_batch(state, &batch)) {
      for (int64_t i = 0; i < batch && NT_SUCCESS(status); i++) {
        uint64_t r = xorshift(&rng);
        uint32_t slot = (uint32_t)((r >> 8) % live);
        const bench_private_data *d = &data[churn_pick[r & 15u]];
        status = bench_allocations_destroy(f.adapter, f.devices[0], &handles[slot], 1);
        if (NT_SUCCESS(status))
          status = bench_allocations_create(f.adapter, f.devices[0], 1, d, f.scratch, &handles[slot]);
        bytes += (int64_t)d->request_bytes;
      }
      if (!NT_SUCCESS(status)) {
        bench_fail_status(state, "churn (destroy one, create one)", status);
        break;
      }
    }
    if (NT_SUCCESS(status)) {
      al_bench_set_items_processed(state, al_bench_iteration_count(state));
      al_bench_set_bytes_processed(state, bytes);
    }
  }
  free(handles);
  for (uint32_t k = 0; k < classes; k++) bench_private_data_free(&data[k]);
  fixture_close(&f);
}

/* ---- Threads: one adapter, a device per thread -------------------------------------------------- */

/* The adapter the threads of one run share: the first thread in creates it, the last one out
 * destroys it. Every thread acquires before the loop's start barrier and releases after its end
 * barrier, so no thread can find it gone. */
static struct {
  pthread_mutex_t lock;
  int users;
  NTSTATUS status;
  al_adapter *adapter;
  al_handle creator;
  al_handle resource; /* shared, opened by every thread (close_shared) */
  bench_private_data data;
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};

static NTSTATUS shared_acquire(uint64_t memory_bytes, uint32_t shared_allocations) {
  pthread_mutex_lock(&shared.lock);
  if (shared.users++ == 0) {
    shared.status = bench_private_data_make(&shared.data, 4096) ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
    if (NT_SUCCESS(shared.status)) shared.status = bench_adapter_create(memory_bytes, false, &shared.adapter);
    if (NT_SUCCESS(shared.status)) shared.status = al_device_create(shared.adapter, &shared.creator);
    if (NT_SUCCESS(shared.status) && shared_allocations) {
      bench_scratch *scratch = bench_scratch_new();
      shared.status = bench_resource_create(shared.adapter, shared.creator, shared_allocations, true, &shared.data,
                                            scratch, &shared.resource);
      free(scratch);
    }
  }
  NTSTATUS status = shared.status;
  pthread_mutex_unlock(&shared.lock);
  return status;
}

static void shared_release(void) {
  pthread_mutex_lock(&shared.lock);
  if (--shared.users == 0) {
    al_adapter_destroy(shared.adapter);
    bench_private_data_free(&shared.data);
    shared.adapter = NULL;
    shared.creator = shared.resource = 0;
    shared.status = STATUS_SUCCESS;
  }
  pthread_mutex_unlock(&shared.lock);
}

static void bm_teardown_threads(al_bench_state *state) {
  uint32_t n = (uint32_t)al_bench_range_arg(state, 0);
  uint64_t threads = (uint64_t)al_bench_threads_count(state);
  NTSTATUS status = shared_acquire(teardown_memory(n, 1) * threads, 0);
  al_handle device = 0;
  if (NT_SUCCESS(status)) status = al_device_create(shared.adapter, &device);
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "shared adapter and this thread's device", status);
  } else {
    bench_scratch *scratch = bench_scratch_new();
    run_teardown(state, shared.adapter, &device, 1, n, &shared.data, scratch, -1);
    free(scratch);
  }
  if (device) (void)al_device_destroy(shared.adapter, device);
  shared_release();
}

static void bm_close_shared_across_threads(al_bench_state *state) {
  uint32_t n = (uint32_t)al_bench_range_arg(state, 0);
  NTSTATUS status = shared_acquire(bench_segment_bytes(n, 4096, 64 * MIB), n);
  al_handle devices[2] = {shared.creator, 0};
  if (NT_SUCCESS(status)) status = al_device_create(shared.adapter, &devices[1]);
  if (!NT_SUCCESS(status)) {
    bench_fail_status(state, "shared adapter, shared resource and this thread's device", status);
  } else {
    close_ctx c = {.adapter = shared.adapter, .devices = devices, .resource = shared.resource};
    op_driver d = {.ctx = &c, .chunk = 1, .prepare = close_prepare, .op = close_op,
                   .prepare_what = "al_resource_open", .op_what = "al_allocation_destroy (non-last holder)"};
    op_result r;
    if (op_drive(state, &d, -1, &r)) {
      set_per_allocation(state, "ns_per_binding", &r, n);
      al_bench_set_items_processed(state, (int64_t)(r.ops * n));
    }
  }
  if (devices[1]) (void)al_device_destroy(shared.adapter, devices[1]);
  shared_release();
}

/* ---- Scaling with the live allocations of the adapter ------------------------------------------ */

static const bench_population *population_or_fail(al_bench_state *state, uint64_t live) {
  char err[256];
  const bench_population *p = bench_population_get(live, err, sizeof err);
  if (p == NULL) al_bench_skip_with_error(state, err);
  return p;
}

static void bm_teardown_scaling(al_bench_state *state) {
  uint64_t live = (uint64_t)al_bench_range_arg(state, 0);
  uint32_t n = (uint32_t)al_bench_range_arg(state, 1);
  const bench_population *p = population_or_fail(state, live);
  if (p == NULL) return;
  bench_scratch *scratch = bench_scratch_new();
  run_teardown(state, p->adapter, p->devices, 1, n, &p->data, scratch, -1);
  free(scratch);
}

static NTSTATUS device_create_destroy_op(void *ctx, uint32_t index) {
  (void)index;
  al_adapter *adapter = ctx;
  al_handle device;
  NTSTATUS status = al_device_create(adapter, &device);
  return NT_SUCCESS(status) ? al_device_destroy(adapter, device) : status;
}

static void bm_device_create_destroy(al_bench_state *state) {
  const bench_population *p = population_or_fail(state, (uint64_t)al_bench_range_arg(state, 0));
  if (p == NULL) return;
  op_driver d = {.ctx = p->adapter, .chunk = MAX_CHUNK, .op = device_create_destroy_op,
                 .op_what = "al_device_create + al_device_destroy"};
  op_result r;
  if (op_drive(state, &d, -1, &r)) al_bench_set_items_processed(state, (int64_t)r.ops);
}

/* Host memory: reported by counters; the time is the population's build time per allocation. */
static void bm_memory_host_bytes(al_bench_state *state) {
  const bench_population *p = population_or_fail(state, (uint64_t)al_bench_range_arg(state, 0));
  if (p == NULL) return;
  if (!p->host_bytes_known) {
    al_bench_skip_with_error(state, "no source of the process allocator's statistics");
    return;
  }
  int64_t batch = 0;
  while (al_bench_keep_running_batch(state, &batch))
    al_bench_set_iteration_time(state, p->build_ns_per_allocation * (double)batch * 1e-9);
  al_bench_counter_set(state, "host_bytes_per_allocation", p->host_bytes_per_allocation, 0);
  al_bench_counter_set(state, "live_allocations", (double)p->live, 0);
  char label[200];
  snprintf(label, sizeof label, "%s; allocator: %s", p->host_bytes_source, AL_BENCH_ALLOCATOR_IN_USE);
  al_bench_set_label(state, label);
}

/* ---- Registration ---------------------------------------------------------------------------- */

static const double p50 = 50, p99 = 99, p999 = 99.9;

static al_bench_def *named(al_bench_def *def, const char *a) {
  const char *names[] = {a};
  return al_bench_arg_names(def, 1, names);
}

static al_bench_def *named2(al_bench_def *def, const char *a, const char *b) {
  const char *names[] = {a, b};
  return al_bench_arg_names(def, 2, names);
}

static al_bench_def *manual(const char *name, al_bench_fn *fn) {
  return al_bench_use_manual_time(al_bench_register(name, fn));
}

static al_bench_def *each(al_bench_def *def, const int64_t *values, size_t count) {
  for (size_t i = 0; i < count; i++) al_bench_arg(def, values[i]);
  return def;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

void bench_register_port(const bench_options *o) {
  static const int64_t sizes_full[] = {1, 8, 64, 512, 1024}, sizes_smoke[] = {1, 64, 1024};
  const int64_t *sizes = o->smoke ? sizes_smoke : sizes_full;
  size_t size_count = o->smoke ? COUNT(sizes_smoke) : COUNT(sizes_full);
  static const int64_t holders_full[] = {1, 2, 4, 8}, holders_smoke[] = {1, 8};
  const int64_t *holders = o->smoke ? holders_smoke : holders_full;
  size_t holder_count = o->smoke ? COUNT(holders_smoke) : COUNT(holders_full);

  named(each(manual("BM_close", bm_close), sizes, size_count), "bindings");
  named(each(manual("BM_destroy_allocations", bm_destroy_allocations), sizes, size_count), "allocations");
  named(each(manual("BM_create_resource", bm_create_resource), sizes, size_count), "allocations");
  al_bench_def *teardown = manual("BM_teardown_resource", bm_teardown_resource);
  for (size_t d = 0; d < holder_count; d++)
    for (size_t i = 0; i < size_count; i++) al_bench_args(teardown, 2, (const int64_t[]){holders[d], sizes[i]});
  named2(teardown, "devices", "allocations");

  static const int64_t latency_sizes[] = {64, 1024};
  static const struct {
    const char *teardown, *create;
    const double *q;
  } latency[] = {
      {"BM_teardown_latency_p50", "BM_create_latency_p50", &p50},
      {"BM_teardown_latency_p99", "BM_create_latency_p99", &p99},
      {"BM_teardown_latency_p999", "BM_create_latency_p999", &p999},
  };
  for (size_t i = 0; i < COUNT(latency); i++)
    named(each(al_bench_with_user_data(manual(latency[i].teardown, bm_teardown_latency), (void *)latency[i].q),
               latency_sizes, COUNT(latency_sizes)),
          "allocations");
  for (size_t i = 0; i < COUNT(latency); i++)
    named(each(al_bench_with_user_data(manual(latency[i].create, bm_create_latency), (void *)latency[i].q),
               latency_sizes, COUNT(latency_sizes)),
          "allocations");

  static const int64_t device_sizes_full[] = {64, 1024, 16384}, device_sizes_smoke[] = {64, 1024};
  named(each(manual("BM_teardown_device", bm_teardown_device), o->smoke ? device_sizes_smoke : device_sizes_full,
             o->smoke ? COUNT(device_sizes_smoke) : COUNT(device_sizes_full)),
        "allocations");
  static const int64_t deferred_sizes[] = {1, 64, 1024};
  named(each(manual("BM_teardown_deferred", bm_teardown_deferred), deferred_sizes, COUNT(deferred_sizes)),
        "allocations");
  named(al_bench_arg(al_bench_use_real_time(al_bench_register("BM_churn_mixed_sizes", bm_churn_mixed_sizes)),
                     o->smoke ? 64 : 1024),
        "live");

  int nproc = o->nproc < 1 ? 1 : o->nproc;
  al_bench_thread_range(named(al_bench_arg(manual("BM_teardown_threads", bm_teardown_threads), 64), "allocations"),
                        1, nproc);
  al_bench_thread_range(
      named(al_bench_arg(manual("BM_close_shared_across_threads", bm_close_shared_across_threads), 64), "bindings"),
      1, nproc);

  /* Scaling, device churn and host memory per live count, in this order, so that each
   * population is built once (bench_population_get caches one). */
  static const int64_t live_full[] = {1000, 100000, 1000000}, live_smoke[] = {100, 300};
  const int64_t *live = o->smoke ? live_smoke : live_full;
  size_t live_count = o->smoke ? COUNT(live_smoke) : COUNT(live_full);
  for (size_t i = 0; i < live_count; i++) {
    named2(al_bench_args(manual("BM_teardown_scaling", bm_teardown_scaling), 2, (const int64_t[]){live[i], 64}),
           "live", "allocations");
    named(al_bench_arg(manual("BM_device_create_destroy", bm_device_create_destroy), live[i]), "live");
    /* Host bytes at the smallest and the largest population. */
    if (i == 0 || i + 1 == live_count)
      named(al_bench_iterations(al_bench_arg(manual("BM_memory_host_bytes", bm_memory_host_bytes), live[i]), 1),
            "live");
  }
}
