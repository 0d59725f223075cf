/*
 * port_stress_test.c — the port under several threads at once (alloclab.h: "every function may be
 * called from several threads at once, on the same adapter and the same objects").
 *
 * Each TEST brings up one adapter (verifier on, 4 MiB memory + 4 MiB aperture segments so that
 * placement has to evict and page in), runs pthreads that race on it, joins them, waits for the
 * GPU to go idle and then checks al_adapter_check() and the statistics before tearing down.
 *  - independent_devices: 4 threads, each with its own device, create / add / destroy / submit /
 *    run / wait / query at random; every status must be one a correct port may return.
 *  - shared_resource_churn: a creator publishes shared resources that the other threads open,
 *    submit on, release and re-open while the creator releases and replaces them.
 *  - racing_destroy_same_handles: 4 threads destroy the same allocations (lists of one) in
 *    different orders while 2 more query and submit them: exactly one destroy of each succeeds.
 *  - racing_device_destroy: 2 threads destroy a device while 2 others keep calling on it; once
 *    a call naming only the device fails, its own allocations must be gone too (atomic destroy).
 * Threads take their RNG from al_test_seed() (AL_TEST_SEED replays a run) and the thread id, and
 * print nothing unless a check fails. Each scenario stops after SCENARIO_SECONDS (or its op count),
 * and a watchdog aborts one still running after WATCHDOG_SECONDS (a deadlock in the port).
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "al_test.h"
#include "alloclab/alloclab.h"
#include "alloclab/hw/miniport.h"

/* ---- Thread-safe checks ------------------------------------------------------------------------
 * al_test_fail() is not thread-safe: every check below goes through one lock, and the runner reads
 * its counter only after the threads were joined. After MAX_REPORTS failures the rest are counted
 * but not printed, and the threads are asked to stop. */

#define MAX_REPORTS 25

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int failures;
static atomic_bool stop_all;

__attribute__((format(printf, 3, 4))) static bool fail_at(const char *file, int line, const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  int n = atomic_fetch_add(&failures, 1);
  if (n < MAX_REPORTS) {
    pthread_mutex_lock(&fail_lock);
    al_test_fail(file, line, "%s", message);
    pthread_mutex_unlock(&fail_lock);
  }
  if (n + 1 >= MAX_REPORTS) atomic_store(&stop_all, true);
  return false;
}

#define FAIL(...) fail_at(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond, ...) ((cond) ? true : FAIL("check `%s` failed: %s", #cond, ctx_msg(__VA_ARGS__)))

static _Thread_local char ctx_buffer[384];
__attribute__((format(printf, 1, 2))) static const char *ctx_msg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx_buffer, sizeof ctx_buffer, fmt, ap);
  va_end(ap);
  return ctx_buffer;
}

static bool status_one_of_(const char *file, int line, NTSTATUS got, const NTSTATUS *allowed,
                           size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (got == allowed[i]) return true;
  char list[160] = "";
  for (size_t i = 0; i < n; i++) {
    size_t used = strlen(list);
    snprintf(list + used, sizeof list - used, "%s%s", i ? "|" : "", al_status_name(allowed[i]));
  }
  return fail_at(file, line, "%s: got %s, want %s", what, al_status_name(got), list);
}
#define STATUS_IN(got, what, ...)                                                            \
  status_one_of_(__FILE__, __LINE__, (got), (const NTSTATUS[]){__VA_ARGS__},                 \
                 sizeof((const NTSTATUS[]){__VA_ARGS__}) / sizeof(NTSTATUS), (what))

static bool stopping(void) { return atomic_load_explicit(&stop_all, memory_order_relaxed); }

/* Each scenario also stops (without failing) once it has run SCENARIO_SECONDS, so that the whole
 * test stays within its time on a slow or loaded machine (TSan). */
#define SCENARIO_SECONDS 1.0
static struct timespec scenario_deadline;

static bool time_up(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > scenario_deadline.tv_sec ||
         (now.tv_sec == scenario_deadline.tv_sec && now.tv_nsec >= scenario_deadline.tv_nsec);
}

static bool done(void) { return stopping() || time_up(); }

/* ---- Random numbers: xorshift64*, one state per thread ---------------------------------------- */

typedef struct rng {
  uint64_t s;
} rng;

static rng rng_for(uint32_t scenario, uint32_t thread) {
  uint64_t z = al_test_seed() + thread + ((uint64_t)scenario << 32) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; /* splitmix64 finaliser: never 0 in practice */
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (rng){z ? z : 1};
}

static uint64_t rng_next(rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n). */
static uint32_t rng_below(rng *r, uint32_t n) { return n ? (uint32_t)((rng_next(r) >> 32) % n) : 0; }
static bool rng_chance(rng *r, uint32_t percent) { return rng_below(r, 100) < percent; }

static void shuffle(rng *r, al_handle *v, uint32_t n) {
  for (uint32_t i = n; i > 1; i--) {
    uint32_t j = rng_below(r, i);
    al_handle t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

/* ---- Adapter and allocation descriptions --------------------------------------------------------- */

#define SEGMENT_BYTES ((uint64_t)4 << 20)
#define DATA_CAP 256u

typedef struct stress_adapter {
  al_adapter *adapter;
  uint8_t hardware[DATA_CAP]; /* the adapter keeps a pointer to it: lives as long as the adapter */
} stress_adapter;

static bool adapter_up(stress_adapter *sa) {
  al_hardware_request request = {.memory_segment_size = SEGMENT_BYTES,
                                 .aperture_segment_size = SEGMENT_BYTES};
  uint32_t size = al_selected_miniport.make_hardware_config(&request, sa->hardware, sizeof sa->hardware);
  if (size == 0) {
    FAIL("miniport %s cannot make a 4 MiB + 4 MiB configuration", al_selected_miniport.name);
    return false;
  }
  al_adapter_config config = {
      .driver_entry = al_selected_miniport.driver_entry,
      .hardware_config = sa->hardware,
      .hardware_config_size = size,
      .flags = AL_ADAPTER_VERIFIER,
  };
  sa->adapter = NULL;
  return STATUS_IN(al_adapter_create(&config, &sa->adapter), "al_adapter_create", STATUS_SUCCESS);
}

/* Private data for one allocation of @size bytes with a random placement. */
typedef struct alloc_data {
  uint8_t bytes[DATA_CAP];
  uint32_t size;
  al_placement placement;
} alloc_data;

static void make_data(rng *r, alloc_data *out, uint64_t size, bool random_placement) {
  al_allocation_request request = {
      .size = size,
      .alignment = rng_chance(r, 20) ? 1u << (12 + rng_below(r, 5)) : 0,
      .placement = random_placement ? (al_placement)rng_below(r, 3) : AL_PLACEMENT_ANY,
      .cpu_visible = rng_chance(r, 50),
  };
  out->placement = request.placement;
  out->size = al_selected_miniport.make_allocation_data(&request, out->bytes, sizeof out->bytes);
  if (out->size == 0) FAIL("make_allocation_data(%" PRIu64 " bytes) failed", size);
}

/* Creates @n allocations on @device: into the pool (flags 0, resource 0), as a new resource
 * (AL_CREATE_RESOURCE...), or into @resource. Sizes in [min_kib, max_kib] KiB. */
static NTSTATUS create_n(al_adapter *adapter, rng *r, al_handle device, al_handle resource,
                         uint32_t flags, uint32_t n, uint32_t min_kib, uint32_t max_kib,
                         bool random_placement, al_handle *out, al_placement *out_placement,
                         al_handle *out_resource) {
  alloc_data data[8];
  al_allocation_desc descs[8];
  if (n > 8) n = 8;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t kib = min_kib + rng_below(r, max_kib - min_kib + 1);
    make_data(r, &data[i], kib * 1024, random_placement);
    descs[i] = (al_allocation_desc){data[i].bytes, data[i].size};
    if (out_placement) out_placement[i] = data[i].placement;
  }
  al_handle sentinel[8];
  for (uint32_t i = 0; i < n; i++) sentinel[i] = out[i] = 0xDEADBEEFu;
  al_handle resource_out = 0xDEADBEEFu;
  al_create_allocation_args args = {
      .device = device,
      .resource = resource,
      .flags = flags,
      .allocation_count = n,
      .allocations = descs,
      .out_allocations = out,
      .out_resource = &resource_out,
  };
  NTSTATUS status = al_allocation_create(adapter, &args);
  if (status != STATUS_SUCCESS) {
    for (uint32_t i = 0; i < n; i++)
      if (out[i] != sentinel[i]) FAIL("a failed create (%s) wrote an allocation handle", al_status_name(status));
    if (resource_out != 0xDEADBEEFu) FAIL("a failed create (%s) wrote a resource handle", al_status_name(status));
  } else {
    for (uint32_t i = 0; i < n; i++)
      if (out[i] == 0 || out[i] == 0xDEADBEEFu) FAIL("create succeeded without allocation handle %u", i);
    if ((flags & AL_CREATE_RESOURCE) && (resource_out == 0 || resource_out == 0xDEADBEEFu))
      FAIL("create of a resource succeeded without a resource handle");
    if (out_resource) *out_resource = resource_out;
  }
  return status;
}

static NTSTATUS destroy_list(al_adapter *adapter, al_handle device, const al_handle *list,
                             uint32_t n, uint32_t flags) {
  al_destroy_allocation_args args = {
      .device = device, .allocations = list, .allocation_count = n, .flags = flags};
  return al_allocation_destroy(adapter, &args);
}

static NTSTATUS destroy_resource(al_adapter *adapter, al_handle device, al_handle resource,
                                 uint32_t flags) {
  al_destroy_allocation_args args = {.device = device, .resource = resource, .flags = flags};
  return al_allocation_destroy(adapter, &args);
}

static NTSTATUS submit(al_adapter *adapter, al_handle device, const al_handle *list, uint32_t n,
                       uint64_t *out_fence) {
  /* Real work for any miniport: a small FILL of each referenced allocation (generic commands
   * through al_selected_miniport.append_command). */
  uint32_t cap = (n ? n : 1) * al_selected_miniport.command_size_max;
  unsigned char *command = malloc(cap);
  if (command == NULL) return STATUS_NO_MEMORY;
  uint32_t used = 0;
  for (uint32_t i = 0; i < n; i++) {
    al_command_request fill = {.kind = AL_COMMAND_FILL, .index = i, .offset = 0, .size = 64, .pattern = 0xA5A5A5A5u};
    used += al_selected_miniport.append_command(&fill, command + used, cap - used);
  }
  al_submit_args args = {
      .device = device,
      .allocations = list,
      .allocation_count = n,
      .command = used ? command : NULL,
      .command_size = used,
      .out_fence = out_fence,
  };
  NTSTATUS status = al_submit(adapter, &args);
  free(command);
  return status;
}

/* ---- End of a scenario ------------------------------------------------------------------------ */

/* What the statistics must say once idle; -1 = not checked. */
typedef struct expected_counts {
  int64_t devices, resources, allocations, bindings;
} expected_counts;

static void wait_idle(al_adapter *adapter) {
  uint64_t submitted = al_fence_submitted(adapter);
  if (submitted)
    STATUS_IN(al_fence_wait(adapter, submitted, UINT64_MAX), "al_fence_wait(al_fence_submitted)",
              STATUS_SUCCESS);
  STATUS_IN(al_gpu_run(adapter, 0, NULL), "al_gpu_run(0)", STATUS_SUCCESS);
}

/* Waits for the GPU, then al_adapter_check() and the statistics. Call with no other thread. */
static void check_idle(al_adapter *adapter, const char *when, expected_counts want) {
  wait_idle(adapter);
  char message[512] = "";
  if (!al_adapter_check(adapter, message, sizeof message))
    FAIL("%s: al_adapter_check: %s", when, message);
  al_adapter_stats stats;
  al_adapter_get_stats(adapter, &stats);
  CHECK(stats.deferred_destroys == 0, "%s: %u deferred destroys left once idle", when, stats.deferred_destroys);
  CHECK(stats.deferred_allocations == 0, "%s: %u deferred allocations left once idle", when,
        stats.deferred_allocations);
  CHECK(stats.fence_completed == stats.fence_submitted, "%s: fences completed %" PRIu64 " of %" PRIu64,
        when, stats.fence_completed, stats.fence_submitted);
  CHECK(stats.fence_submitted == al_fence_submitted(adapter) &&
            stats.fence_completed == al_fence_completed(adapter),
        "%s: stats and al_fence_* disagree", when);
  if (want.devices >= 0)
    CHECK(stats.devices == want.devices, "%s: %u devices, want %" PRId64, when, stats.devices, want.devices);
  if (want.resources >= 0)
    CHECK(stats.resources == want.resources, "%s: %u resources, want %" PRId64, when, stats.resources,
          want.resources);
  if (want.allocations >= 0)
    CHECK(stats.allocations == want.allocations, "%s: %u allocations, want %" PRId64, when,
          stats.allocations, want.allocations);
  if (want.bindings >= 0)
    CHECK(stats.bindings == want.bindings, "%s: %u bindings, want %" PRId64, when, stats.bindings,
          want.bindings);
  uint64_t blocks = 0;
  for (uint32_t i = 0; i < stats.segment_count; i++) {
    const al_segment_stats *s = &stats.segments[i];
    CHECK(s->used_bytes <= s->size, "%s: segment %u uses %" PRIu64 " of %" PRIu64 " bytes", when, s->id,
          s->used_bytes, s->size);
    CHECK((s->live_blocks == 0) == (s->used_bytes == 0), "%s: segment %u: %" PRIu64 " blocks, %" PRIu64 " bytes",
          when, s->id, s->live_blocks, s->used_bytes);
    blocks += s->live_blocks;
  }
  CHECK(blocks <= stats.allocations, "%s: %" PRIu64 " live blocks for %u allocations", when, blocks,
        stats.allocations);
  if (want.allocations == 0) CHECK(blocks == 0, "%s: %" PRIu64 " blocks left with no allocation", when, blocks);
}

/* Destroys @devices, checks that nothing is left, destroys the adapter. */
static void teardown(stress_adapter *sa, const al_handle *devices, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (devices[i])
      STATUS_IN(al_device_destroy(sa->adapter, devices[i]), "al_device_destroy at the end", STATUS_SUCCESS);
  check_idle(sa->adapter, "after destroying every device", (expected_counts){0, 0, 0, 0});
  al_adapter_destroy(sa->adapter);
  sa->adapter = NULL;
  alarm(0);
}

static void run_threads(uint32_t n, void *(*fn)(void *), void *args, size_t arg_size) {
  pthread_t threads[16];
  for (uint32_t i = 0; i < n; i++)
    if (pthread_create(&threads[i], NULL, fn, (char *)args + i * arg_size) != 0) {
      FAIL("pthread_create failed");
      abort();
    }
  for (uint32_t i = 0; i < n; i++) pthread_join(threads[i], NULL);
}

/* A scenario that runs far past its time is stuck (a deadlock in the port): say so and abort, so
 * the log names the scenario instead of a bare test timeout. */
#define WATCHDOG_SECONDS 120u

static void watchdog_fired(int signo) {
  (void)signo;
  static const char message[] = "port_stress_test: scenario still running after the watchdog's "
                                "time: deadlock or livelock in the port suspected\n";
  ssize_t ignored = write(STDERR_FILENO, message, sizeof message - 1);
  (void)ignored;
  abort();
}

static void scenario_begin(void) {
  signal(SIGALRM, watchdog_fired);
  alarm(WATCHDOG_SECONDS);
  atomic_store(&failures, 0);
  atomic_store(&stop_all, false);
  clock_gettime(CLOCK_MONOTONIC, &scenario_deadline);
  scenario_deadline.tv_sec += (time_t)SCENARIO_SECONDS;
  scenario_deadline.tv_nsec += (long)((SCENARIO_SECONDS - (double)(time_t)SCENARIO_SECONDS) * 1e9);
  if (scenario_deadline.tv_nsec >= 1000000000L) {
    scenario_deadline.tv_sec++;
    scenario_deadline.tv_nsec -= 1000000000L;
  }
  (void)al_test_seed(); /* printed once, before any thread runs */
}

/* ==== 1. Independent devices ======================================================================
 * Each thread owns one device and everything it makes: a status other than the ones a correct
 * port returns for that call is a bug, and so is STATUS_INVALID_HANDLE for any handle it owns. */

#define S1_THREADS 4
#define S1_OPS 30000
#define S1_MAX_ALLOCS 40
#define S1_MAX_RESOURCES 6

typedef struct s1_alloc {
  al_handle handle;
  int group;              /* -1: device-owned; else index into resources */
  bool submitted;         /* ever referenced by submitted work */
  uint64_t last_fence;    /* of the last work that referenced it */
  al_placement placement;
} s1_alloc;

typedef struct s1_thread {
  al_adapter *adapter;
  uint32_t id;
  al_handle device;
  s1_alloc allocs[S1_MAX_ALLOCS];
  uint32_t alloc_count;
  al_handle resources[S1_MAX_RESOURCES]; /* 0 = free slot */
  bool shared[S1_MAX_RESOURCES];
  al_handle dead[16]; /* recently destroyed allocation handles: must stay invalid */
  uint32_t dead_count;
  uint64_t fences[8]; /* recent fences of this thread */
  uint32_t fence_count;
  uint32_t creates_failed_vram;
} s1_thread;

static void s1_note_dead(s1_thread *t, al_handle h) { t->dead[t->dead_count++ % 16] = h; }

static void s1_remove_alloc(s1_thread *t, uint32_t index) {
  s1_note_dead(t, t->allocs[index].handle);
  t->allocs[index] = t->allocs[--t->alloc_count];
}

static int s1_find_alloc(const s1_thread *t, al_handle h) {
  for (uint32_t i = 0; i < t->alloc_count; i++)
    if (t->allocs[i].handle == h) return (int)i;
  return -1;
}

static void s1_create(s1_thread *t, rng *r, int group, uint32_t flags) {
  uint32_t room = S1_MAX_ALLOCS - t->alloc_count;
  if (room == 0) return;
  uint32_t n = 1 + rng_below(r, 4);
  if (n > room) n = room;
  int slot = group;
  if (flags & AL_CREATE_RESOURCE) {
    slot = -1;
    for (int i = 0; i < S1_MAX_RESOURCES; i++)
      if (t->resources[i] == 0) slot = i;
    if (slot < 0) return;
  }
  al_handle out[8], resource = 0;
  al_placement placement[8];
  NTSTATUS status = create_n(t->adapter, r, t->device, group >= 0 && !(flags & AL_CREATE_RESOURCE) ? t->resources[group] : 0,
                             flags, n, 16, 512, true, out, placement, &resource);
  if (!STATUS_IN(status, ctx_msg("thread %u: create of %u (flags 0x%x, group %d)", t->id, n, flags, group),
                 STATUS_SUCCESS, STATUS_NO_VIDEO_MEMORY))
    return;
  if (status != STATUS_SUCCESS) {
    t->creates_failed_vram++;
    return;
  }
  if (flags & AL_CREATE_RESOURCE) {
    t->resources[slot] = resource;
    t->shared[slot] = (flags & AL_CREATE_SHARED) != 0;
  }
  for (uint32_t i = 0; i < n; i++)
    t->allocs[t->alloc_count++] = (s1_alloc){.handle = out[i], .group = slot, .placement = placement[i]};
}

/* Destroys a random subset of one group by list. */
static void s1_destroy_some(s1_thread *t, rng *r) {
  if (t->alloc_count == 0) return;
  int group = t->allocs[rng_below(r, t->alloc_count)].group;
  al_handle list[S1_MAX_ALLOCS];
  uint32_t n = 0;
  bool ever_submitted = false;
  uint32_t want = 1 + rng_below(r, 4);
  for (uint32_t i = 0; i < t->alloc_count && n < want; i++)
    if (t->allocs[i].group == group && (n == 0 || rng_chance(r, 60))) {
      list[n++] = t->allocs[i].handle;
      ever_submitted |= t->allocs[i].submitted;
    }
  uint32_t flags = rng_chance(r, 30) ? AL_DESTROY_SYNCHRONOUS : 0;
  if (!ever_submitted && rng_chance(r, 50)) flags |= AL_DESTROY_ASSUME_NOT_IN_USE;
  shuffle(r, list, n);
  NTSTATUS status = destroy_list(t->adapter, t->device, list, n, flags);
  if (!STATUS_IN(status, ctx_msg("thread %u: destroy of %u of group %d (flags 0x%x)", t->id, n, group, flags),
                 STATUS_SUCCESS))
    return;
  for (uint32_t i = 0; i < n; i++) s1_remove_alloc(t, (uint32_t)s1_find_alloc(t, list[i]));
}

static void s1_destroy_resource(s1_thread *t, rng *r) {
  int slot = (int)rng_below(r, S1_MAX_RESOURCES);
  if (t->resources[slot] == 0) return;
  bool ever_submitted = false;
  for (uint32_t i = 0; i < t->alloc_count; i++)
    if (t->allocs[i].group == slot) ever_submitted |= t->allocs[i].submitted;
  uint32_t flags = rng_chance(r, 30) ? AL_DESTROY_SYNCHRONOUS : 0;
  if (!ever_submitted && rng_chance(r, 50)) flags |= AL_DESTROY_ASSUME_NOT_IN_USE;
  NTSTATUS status = destroy_resource(t->adapter, t->device, t->resources[slot], flags);
  if (!STATUS_IN(status, ctx_msg("thread %u: destroy of resource 0x%08x (flags 0x%x)", t->id,
                                 t->resources[slot], flags),
                 STATUS_SUCCESS))
    return;
  t->resources[slot] = 0;
  for (uint32_t i = t->alloc_count; i-- > 0;)
    if (t->allocs[i].group == slot) s1_remove_alloc(t, i);
}

static void s1_submit(s1_thread *t, rng *r) {
  al_handle list[4];
  uint32_t picked[4], n = 0, want = rng_below(r, 5);
  for (uint32_t tries = 0; n < want && tries < 8 && t->alloc_count; tries++) {
    uint32_t i = rng_below(r, t->alloc_count);
    bool dup = false;
    for (uint32_t k = 0; k < n; k++) dup |= picked[k] == i;
    if (!dup) {
      picked[n] = i;
      list[n++] = t->allocs[i].handle;
    }
  }
  uint64_t fence = 0;
  NTSTATUS status = submit(t->adapter, t->device, list, n, &fence);
  if (!STATUS_IN(status, ctx_msg("thread %u: submit of %u allocations", t->id, n), STATUS_SUCCESS,
                 STATUS_NO_VIDEO_MEMORY) ||
      status != STATUS_SUCCESS)
    return;
  CHECK(fence > 0 && fence <= al_fence_submitted(t->adapter), "thread %u: fence %" PRIu64 " not handed out",
        t->id, fence);
  for (uint32_t k = 0; k < n; k++) {
    CHECK(fence > t->allocs[picked[k]].last_fence, "thread %u: fence %" PRIu64 " not above %" PRIu64, t->id,
          fence, t->allocs[picked[k]].last_fence);
    t->allocs[picked[k]].submitted = true;
    t->allocs[picked[k]].last_fence = fence;
  }
  t->fences[t->fence_count++ % 8] = fence;
}

static void s1_query(s1_thread *t, rng *r) {
  al_allocation_info info;
  if (t->dead_count && rng_chance(r, 25)) {
    al_handle h = t->dead[rng_below(r, t->dead_count < 16 ? t->dead_count : 16)];
    STATUS_IN(al_allocation_query(t->adapter, h, &info),
              ctx_msg("thread %u: query of destroyed allocation 0x%08x", t->id, h), STATUS_INVALID_HANDLE);
    return;
  }
  if (t->alloc_count == 0) return;
  const s1_alloc *a = &t->allocs[rng_below(r, t->alloc_count)];
  if (!STATUS_IN(al_allocation_query(t->adapter, a->handle, &info),
                 ctx_msg("thread %u: query of its allocation 0x%08x", t->id, a->handle), STATUS_SUCCESS))
    return;
  al_handle resource = a->group >= 0 ? t->resources[a->group] : 0;
  CHECK(info.resource == resource, "thread %u: allocation 0x%08x: resource 0x%08x, want 0x%08x", t->id,
        a->handle, info.resource, resource);
  CHECK(info.owner_device == t->device, "thread %u: allocation 0x%08x: owner 0x%08x, want 0x%08x", t->id,
        a->handle, info.owner_device, t->device);
  CHECK(info.last_fence == a->last_fence, "thread %u: allocation 0x%08x: last fence %" PRIu64 ", want %" PRIu64,
        t->id, a->handle, info.last_fence, a->last_fence);
  CHECK(info.size >= 16 * 1024 && info.size % 4096 == 0, "thread %u: allocation 0x%08x: size %" PRIu64, t->id,
        a->handle, info.size);
  CHECK(info.segment_id <= 2, "thread %u: allocation 0x%08x: segment %u", t->id, a->handle, info.segment_id);
  if (a->placement == AL_PLACEMENT_APERTURE_ONLY)
    CHECK(info.segment_id != 1, "thread %u: aperture-only allocation 0x%08x in segment 1", t->id, a->handle);
  if (info.segment_id)
    CHECK(info.segment_offset + info.size <= SEGMENT_BYTES, "thread %u: allocation 0x%08x at %" PRIu64 "+%" PRIu64,
          t->id, a->handle, info.segment_offset, info.size);
}

static void *s1_main(void *arg) {
  s1_thread *t = arg;
  rng r = rng_for(1, t->id);
  for (uint32_t op = 0; op < S1_OPS && !(op % 64 == 0 && done()); op++) {
    uint32_t pick = rng_below(&r, 100);
    if (pick < 14) {
      s1_create(t, &r, -1, 0);
    } else if (pick < 20) {
      s1_create(t, &r, -1, AL_CREATE_RESOURCE | (rng_chance(&r, 30) ? AL_CREATE_SHARED : 0));
    } else if (pick < 26) {
      int slot = (int)rng_below(&r, S1_MAX_RESOURCES);
      if (t->resources[slot]) s1_create(t, &r, slot, 0);
    } else if (pick < 42) {
      s1_destroy_some(t, &r);
    } else if (pick < 46) {
      s1_destroy_resource(t, &r);
    } else if (pick < 70) {
      s1_submit(t, &r);
    } else if (pick < 80) {
      uint32_t ran = UINT32_MAX;
      STATUS_IN(al_gpu_run(t->adapter, rng_below(&r, 5), &ran), "al_gpu_run", STATUS_SUCCESS);
      CHECK(ran <= 4, "thread %u: al_gpu_run ran %u", t->id, ran);
    } else if (pick < 86) {
      if (t->fence_count) {
        uint64_t fence = t->fences[rng_below(&r, t->fence_count < 8 ? t->fence_count : 8)];
        STATUS_IN(al_fence_wait(t->adapter, fence, UINT64_MAX), ctx_msg("thread %u: wait %" PRIu64, t->id, fence),
                  STATUS_SUCCESS);
        CHECK(al_fence_completed(t->adapter) >= fence, "thread %u: fence %" PRIu64 " waited but completed %" PRIu64,
              t->id, fence, al_fence_completed(t->adapter));
      }
    } else {
      s1_query(t, &r);
    }
  }
  return NULL;
}

TEST(independent_devices) {
  scenario_begin();
  stress_adapter sa;
  if (!adapter_up(&sa)) return;
  static s1_thread threads[S1_THREADS];
  memset(threads, 0, sizeof threads);
  al_handle devices[S1_THREADS];
  for (uint32_t i = 0; i < S1_THREADS; i++) {
    threads[i].adapter = sa.adapter;
    threads[i].id = i;
    STATUS_IN(al_device_create(sa.adapter, &threads[i].device), "al_device_create", STATUS_SUCCESS);
    devices[i] = threads[i].device;
  }
  run_threads(S1_THREADS, s1_main, threads, sizeof threads[0]);

  int64_t allocations = 0, resources = 0;
  for (uint32_t i = 0; i < S1_THREADS; i++) {
    allocations += threads[i].alloc_count;
    for (int k = 0; k < S1_MAX_RESOURCES; k++) resources += threads[i].resources[k] != 0;
  }
  check_idle(sa.adapter, "independent_devices, joined",
             (expected_counts){S1_THREADS, resources, allocations, allocations});
  al_adapter_stats stats;
  al_adapter_get_stats(sa.adapter, &stats);
  CHECK(stats.evictions > 0 && stats.page_ins > 0,
        "the scenario is meant to evict and page in: %" PRIu64 " evictions, %" PRIu64 " page-ins", stats.evictions,
        stats.page_ins);
  /* Every allocation still answers with the right owner after the storm. */
  for (uint32_t i = 0; i < S1_THREADS; i++) {
    rng r = rng_for(100, i);
    for (uint32_t k = 0; k < threads[i].alloc_count; k++) s1_query(&threads[i], &r);
  }
  teardown(&sa, devices, S1_THREADS);
}

/* ==== 2. One shared resource, opened everywhere ===================================================
 * A creator thread makes shared resources and publishes them; opener threads open the current one
 * on their own device, submit on it, release it (destroy by resource) and open it again, while the
 * creator releases its own hold now and then and publishes a fresh resource. The creator also
 * tries to destroy one allocation of its resource by list: legal once every other device let go
 * (STATUS_INVALID_PARAMETER while it is open on several). */

#define S2_OPENERS 3
#define S2_CREATOR_OPS 30000
#define S2_OPENER_OPS 30000
#define S2_MAX_PUBLISHED 2048
#define S2_MAX_PER_RESOURCE 4

typedef struct s2_published {
  al_handle resource;
  uint32_t count;
  al_handle allocations[S2_MAX_PER_RESOURCE];
} s2_published;

typedef struct s2_shared {
  al_adapter *adapter;
  s2_published published[S2_MAX_PUBLISHED]; /* written once before its index is published */
  atomic_uint current;                      /* index of the current one; 0 = none yet */
  atomic_uint openers_left;                 /* the creator goes on until they are done */
} s2_shared;

typedef struct s2_thread {
  s2_shared *shared;
  uint32_t id; /* 0 = creator */
  al_handle device;
  uint32_t opens_ok, opens_lost, submits_ok;
} s2_thread;

static void s2_submit_some(s2_thread *t, rng *r, const s2_published *p) {
  al_handle list[S2_MAX_PER_RESOURCE];
  uint32_t n = 0;
  for (uint32_t i = 0; i < p->count; i++)
    if (rng_chance(r, 60)) list[n++] = p->allocations[i];
  shuffle(r, list, n);
  uint64_t fence = 0;
  NTSTATUS status = submit(t->shared->adapter, t->device, list, n, &fence);
  /* The caller holds the resource, but an allocation the creator destroyed by list (while it was
   * the only holder) is gone: INVALID_HANDLE. */
  if (n == 0)
    STATUS_IN(status, ctx_msg("thread %u: submit of nothing", t->id), STATUS_SUCCESS);
  else
    STATUS_IN(status, ctx_msg("thread %u: submit of %u on resource 0x%08x it holds", t->id, n, p->resource),
              STATUS_SUCCESS, STATUS_INVALID_HANDLE);
  if (status == STATUS_SUCCESS) t->submits_ok++;
}

static void s2_query_some(s2_thread *t, rng *r, const s2_published *p) {
  if (p->count == 0) return;
  al_allocation_info info;
  al_handle h = p->allocations[rng_below(r, p->count)];
  NTSTATUS status = al_allocation_query(t->shared->adapter, h, &info);
  if (STATUS_IN(status, ctx_msg("thread %u: query of shared allocation 0x%08x", t->id, h), STATUS_SUCCESS,
                STATUS_INVALID_HANDLE) &&
      status == STATUS_SUCCESS)
    CHECK(info.resource == p->resource, "thread %u: allocation 0x%08x: resource 0x%08x, want 0x%08x", t->id, h,
          info.resource, p->resource);
}

static void *s2_creator(void *arg) {
  s2_thread *t = arg;
  s2_shared *s = t->shared;
  rng r = rng_for(2, t->id);
  uint32_t next = 1;
  s2_published mine = {0};
  bool holding = false;
  for (uint32_t op = 0; (op < S2_CREATOR_OPS || atomic_load(&s->openers_left)) && !stopping(); op++) {
    if (op % 64 == 0 && time_up() && !atomic_load(&s->openers_left)) break;
    if (!holding) {
      s2_published *p = &s->published[next];
      p->count = 1 + rng_below(&r, S2_MAX_PER_RESOURCE);
      NTSTATUS status = create_n(s->adapter, &r, t->device, 0, AL_CREATE_RESOURCE | AL_CREATE_SHARED, p->count, 16,
                                 128, false, p->allocations, NULL, &p->resource);
      if (!STATUS_IN(status, "creator: create of a shared resource", STATUS_SUCCESS)) continue;
      mine = *p;
      atomic_store_explicit(&s->current, next++, memory_order_release);
      holding = true;
      continue;
    }
    uint32_t pick = rng_below(&r, 100);
    if (pick < 40 || pick >= 76) {
      s2_submit_some(t, &r, &mine);
    } else if (pick < 55) {
      STATUS_IN(al_gpu_run(s->adapter, 1 + rng_below(&r, 3), NULL), "creator: al_gpu_run", STATUS_SUCCESS);
    } else if (pick < 65) {
      s2_query_some(t, &r, &mine);
    } else if (pick < 69 && mine.count) {
      /* Only legal while no other device holds it; the others may open it again at any time. */
      uint32_t k = rng_below(&r, mine.count);
      NTSTATUS status = destroy_list(s->adapter, t->device, &mine.allocations[k], 1,
                                     rng_chance(&r, 30) ? AL_DESTROY_SYNCHRONOUS : 0);
      if (STATUS_IN(status, ctx_msg("creator: destroy by list of 0x%08x of its shared resource 0x%08x",
                                    mine.allocations[k], mine.resource),
                    STATUS_SUCCESS, STATUS_INVALID_PARAMETER) &&
          status == STATUS_SUCCESS)
        mine.allocations[k] = mine.allocations[--mine.count];
    } else if (pick < 76 && next < S2_MAX_PUBLISHED) {
      STATUS_IN(destroy_resource(s->adapter, t->device, mine.resource, rng_chance(&r, 30) ? AL_DESTROY_SYNCHRONOUS : 0),
                ctx_msg("creator: release of resource 0x%08x", mine.resource), STATUS_SUCCESS);
      holding = false;
    }
  }
  if (holding)
    STATUS_IN(destroy_resource(s->adapter, t->device, mine.resource, 0), "creator: final release", STATUS_SUCCESS);
  return NULL;
}

static void *s2_opener(void *arg) {
  s2_thread *t = arg;
  s2_shared *s = t->shared;
  rng r = rng_for(2, t->id);
  s2_published held = {0};
  bool holding = false;
  uint64_t last_fence = 0;
  while (atomic_load_explicit(&s->current, memory_order_acquire) == 0 && !stopping()) sched_yield();
  for (uint32_t op = 0; op < S2_OPENER_OPS && !(op % 64 == 0 && done()); op++) {
    if (!holding) {
      uint32_t index = atomic_load_explicit(&s->current, memory_order_acquire);
      /* Either the current one, or (sometimes) the one just released again. */
      s2_published candidate = held.resource && rng_chance(&r, 30) ? held : s->published[index];
      NTSTATUS status = al_resource_open(s->adapter, t->device, candidate.resource);
      if (!STATUS_IN(status, ctx_msg("thread %u: open of shared resource 0x%08x", t->id, candidate.resource),
                     STATUS_SUCCESS, STATUS_INVALID_HANDLE))
        continue;
      if (status == STATUS_SUCCESS) {
        held = candidate;
        holding = true;
        t->opens_ok++;
      } else {
        /* Lost the race: the creator let it go. Wait for the next one instead of spinning. */
        t->opens_lost++;
        while (atomic_load_explicit(&s->current, memory_order_acquire) == index && atomic_load(&s->openers_left) &&
               !done())
          sched_yield();
      }
      continue;
    }
    uint32_t pick = rng_below(&r, 100);
    if (pick < 45) {
      s2_submit_some(t, &r, &held);
    } else if (pick < 55) {
      STATUS_IN(al_gpu_run(s->adapter, 1 + rng_below(&r, 3), NULL), "al_gpu_run", STATUS_SUCCESS);
    } else if (pick < 62) {
      uint64_t fence = al_fence_submitted(s->adapter);
      if (fence > last_fence) {
        STATUS_IN(al_fence_wait(s->adapter, fence, UINT64_MAX), "al_fence_wait", STATUS_SUCCESS);
        last_fence = fence;
      }
    } else if (pick < 72) {
      s2_query_some(t, &r, &held);
    } else if (pick < 76) {
      /* Already held: opening again is a parameter error, not a handle error. */
      STATUS_IN(al_resource_open(s->adapter, t->device, held.resource),
                ctx_msg("thread %u: second open of resource 0x%08x it holds", t->id, held.resource),
                STATUS_INVALID_PARAMETER);
    } else if (pick < 92) {
      STATUS_IN(destroy_resource(s->adapter, t->device, held.resource, rng_chance(&r, 30) ? AL_DESTROY_SYNCHRONOUS : 0),
                ctx_msg("thread %u: release of resource 0x%08x it holds", t->id, held.resource), STATUS_SUCCESS);
      holding = false;
    } else {
      s2_query_some(t, &r, &held);
    }
  }
  if (holding)
    STATUS_IN(destroy_resource(s->adapter, t->device, held.resource, 0), "final release", STATUS_SUCCESS);
  atomic_fetch_sub(&s->openers_left, 1);
  return NULL;
}

static void *s2_main(void *arg) {
  s2_thread *t = arg;
  return t->id == 0 ? s2_creator(arg) : s2_opener(arg);
}

TEST(shared_resource_churn) {
  scenario_begin();
  stress_adapter sa;
  if (!adapter_up(&sa)) return;
  static s2_shared shared;
  memset(&shared, 0, sizeof shared);
  shared.adapter = sa.adapter;
  atomic_store(&shared.openers_left, S2_OPENERS);
  s2_thread threads[1 + S2_OPENERS];
  al_handle devices[1 + S2_OPENERS];
  memset(threads, 0, sizeof threads);
  for (uint32_t i = 0; i <= S2_OPENERS; i++) {
    threads[i].shared = &shared;
    threads[i].id = i;
    STATUS_IN(al_device_create(sa.adapter, &threads[i].device), "al_device_create", STATUS_SUCCESS);
    devices[i] = threads[i].device;
  }
  run_threads(1 + S2_OPENERS, s2_main, threads, sizeof threads[0]);
  uint32_t opens = 0, submits = 0;
  for (uint32_t i = 1; i <= S2_OPENERS; i++) {
    opens += threads[i].opens_ok;
    submits += threads[i].submits_ok;
  }
  CHECK(opens > 0 && submits > 0, "the openers never opened (%u) or submitted (%u)", opens, submits);
  /* Every hold was released: nothing is left but the devices. */
  check_idle(sa.adapter, "shared_resource_churn, joined", (expected_counts){1 + S2_OPENERS, 0, 0, 0});
  teardown(&sa, devices, 1 + S2_OPENERS);
}

/* ==== 3. Racing destroys of the same handles ====================================================== */

#define S3_ROUNDS 60
#define S3_ALLOCS 32
#define S3_DESTROYERS 4
#define S3_HAMMERS 2

typedef struct s3_round {
  al_adapter *adapter;
  al_handle device;
  al_handle handles[S3_ALLOCS];
  atomic_uint successes[S3_ALLOCS];
  atomic_uint destroyers_left;
  pthread_barrier_t start;
} s3_round;

typedef struct s3_thread {
  s3_round *round;
  uint32_t id, round_index;
} s3_thread;

static void *s3_main(void *arg) {
  s3_thread *t = arg;
  s3_round *g = t->round;
  rng r = rng_for(3, t->round_index * 16 + t->id);
  pthread_barrier_wait(&g->start);
  if (t->id < S3_DESTROYERS) {
    al_handle order[S3_ALLOCS];
    memcpy(order, g->handles, sizeof order);
    shuffle(&r, order, S3_ALLOCS);
    for (uint32_t i = 0; i < S3_ALLOCS && !stopping(); i++) {
      uint32_t flags = rng_chance(&r, 25) ? AL_DESTROY_SYNCHRONOUS : 0;
      NTSTATUS status = destroy_list(g->adapter, g->device, &order[i], 1, flags);
      if (!STATUS_IN(status, ctx_msg("destroyer %u: destroy of 0x%08x (flags 0x%x)", t->id, order[i], flags),
                     STATUS_SUCCESS, STATUS_INVALID_HANDLE))
        continue;
      if (status == STATUS_SUCCESS)
        for (uint32_t k = 0; k < S3_ALLOCS; k++)
          if (g->handles[k] == order[i]) atomic_fetch_add(&g->successes[k], 1);
      if (rng_chance(&r, 20)) sched_yield();
    }
    atomic_fetch_sub(&g->destroyers_left, 1);
    return NULL;
  }
  for (uint32_t op = 0; (op < 40 || atomic_load(&g->destroyers_left)) && !stopping(); op++) {
    uint32_t pick = rng_below(&r, 100);
    if (pick < 45) {
      al_allocation_info info;
      al_handle h = g->handles[rng_below(&r, S3_ALLOCS)];
      NTSTATUS status = al_allocation_query(g->adapter, h, &info);
      if (STATUS_IN(status, ctx_msg("hammer %u: query of 0x%08x", t->id, h), STATUS_SUCCESS, STATUS_INVALID_HANDLE) &&
          status == STATUS_SUCCESS)
        CHECK(info.owner_device == g->device, "hammer %u: allocation 0x%08x: owner 0x%08x", t->id, h,
              info.owner_device);
    } else if (pick < 85) {
      al_handle list[3];
      uint32_t n = 1 + rng_below(&r, 3), first = rng_below(&r, S3_ALLOCS);
      for (uint32_t i = 0; i < n; i++) list[i] = g->handles[(first + i * 7) % S3_ALLOCS];
      uint64_t fence;
      STATUS_IN(submit(g->adapter, g->device, list, n, &fence), ctx_msg("hammer %u: submit of %u", t->id, n),
                STATUS_SUCCESS, STATUS_INVALID_HANDLE);
    } else {
      STATUS_IN(al_gpu_run(g->adapter, 1 + rng_below(&r, 4), NULL), "al_gpu_run", STATUS_SUCCESS);
    }
  }
  return NULL;
}

TEST(racing_destroy_same_handles) {
  scenario_begin();
  stress_adapter sa;
  if (!adapter_up(&sa)) return;
  rng r = rng_for(3, 1000);
  for (uint32_t round = 0; round < S3_ROUNDS && !done(); round++) {
    static s3_round g;
    memset(&g, 0, sizeof g);
    g.adapter = sa.adapter;
    if (!STATUS_IN(al_device_create(sa.adapter, &g.device), "al_device_create", STATUS_SUCCESS)) break;
    /* Half device-owned, half in two resources held by this device alone. */
    al_handle resources[2] = {0, 0};
    uint32_t made = 0;
    while (made < S3_ALLOCS) {
      uint32_t n = made < S3_ALLOCS / 2 ? 4 : 8;
      uint32_t flags = made < S3_ALLOCS / 2 ? 0 : AL_CREATE_RESOURCE | (made >= 3 * S3_ALLOCS / 4 ? AL_CREATE_SHARED : 0);
      al_handle *resource = made >= S3_ALLOCS / 2 ? &resources[made >= 3 * S3_ALLOCS / 4] : NULL;
      if (!STATUS_IN(create_n(sa.adapter, &r, g.device, 0, flags, n, 16, 64, false, &g.handles[made], NULL, resource),
                     "create for racing destroys", STATUS_SUCCESS))
        break;
      made += n;
    }
    if (made < S3_ALLOCS) break;
    /* Some work in flight, so some destroys defer. */
    uint64_t fence;
    STATUS_IN(submit(sa.adapter, g.device, g.handles, 8, &fence), "submit", STATUS_SUCCESS);
    STATUS_IN(submit(sa.adapter, g.device, &g.handles[S3_ALLOCS - 8], 8, &fence), "submit", STATUS_SUCCESS);
    atomic_store(&g.destroyers_left, S3_DESTROYERS);
    pthread_barrier_init(&g.start, NULL, S3_DESTROYERS + S3_HAMMERS);
    s3_thread threads[S3_DESTROYERS + S3_HAMMERS];
    for (uint32_t i = 0; i < S3_DESTROYERS + S3_HAMMERS; i++) threads[i] = (s3_thread){&g, i, round};
    run_threads(S3_DESTROYERS + S3_HAMMERS, s3_main, threads, sizeof threads[0]);
    pthread_barrier_destroy(&g.start);

    for (uint32_t k = 0; k < S3_ALLOCS; k++) {
      CHECK(atomic_load(&g.successes[k]) == 1, "round %u: allocation 0x%08x destroyed successfully %u times", round,
            g.handles[k], atomic_load(&g.successes[k]));
      al_allocation_info info;
      STATUS_IN(al_allocation_query(sa.adapter, g.handles[k], &info), "query after the race", STATUS_INVALID_HANDLE);
    }
    /* The emptied resources are still held; then the device goes. */
    check_idle(sa.adapter, "racing_destroy_same_handles, joined", (expected_counts){1, 2, 0, 0});
    for (int i = 0; i < 2; i++)
      STATUS_IN(destroy_resource(sa.adapter, g.device, resources[i], 0), "destroy of an emptied resource",
                STATUS_SUCCESS);
    STATUS_IN(al_device_destroy(sa.adapter, g.device), "al_device_destroy", STATUS_SUCCESS);
    check_idle(sa.adapter, "racing_destroy_same_handles, round done", (expected_counts){0, 0, 0, 0});
  }
  teardown(&sa, NULL, 0);
}

/* ==== 4. Racing al_device_destroy against calls on that device ===================================== */

#define S4_ROUNDS 600
#define S4_DESTROYERS 2
#define S4_WORKERS 2
#define S4_WORKER_OPS 40
#define S4_SHARED_COUNT 3

typedef struct s4_round {
  al_adapter *adapter;
  al_handle device;    /* the victim */
  al_handle owned[6];  /* allocations it owns at the start (pool and a resource) */
  al_handle resource;  /* its own resource (owned[4..5]) */
  al_handle shared;    /* a resource of the survivor device, opened on the victim */
  al_handle shared_allocations[S4_SHARED_COUNT];
  atomic_uint destroy_successes;
  pthread_barrier_t start;
} s4_round;

typedef struct s4_thread {
  s4_round *round;
  uint32_t id, round_index;
} s4_thread;

static void s4_worker(s4_thread *t, rng *r) {
  s4_round *g = t->round;
  al_handle mine[16];
  uint32_t mine_count = 0;
  bool holds_shared = true; /* worker 0 alone releases and re-opens the shared resource */
  for (uint32_t op = 0; op < S4_WORKER_OPS && !stopping(); op++) {
    uint32_t pick = rng_below(r, 100);
    if (pick < 20) {
      al_handle out[8], resource = 0;
      bool as_resource = rng_chance(r, 30);
      uint32_t n = 1 + rng_below(r, 2);
      if (mine_count + n > 16) continue;
      NTSTATUS status = create_n(g->adapter, r, g->device, 0, as_resource ? AL_CREATE_RESOURCE : 0, n, 16, 64, false,
                                 out, NULL, &resource);
      if (STATUS_IN(status, ctx_msg("worker %u: create on a dying device", t->id), STATUS_SUCCESS,
                    STATUS_INVALID_HANDLE) &&
          status == STATUS_SUCCESS && !as_resource)
        for (uint32_t i = 0; i < n; i++) mine[mine_count++] = out[i];
    } else if (pick < 30 && mine_count) {
      uint32_t k = rng_below(r, mine_count);
      STATUS_IN(destroy_list(g->adapter, g->device, &mine[k], 1, rng_chance(r, 30) ? AL_DESTROY_SYNCHRONOUS : 0),
                ctx_msg("worker %u: destroy of its 0x%08x", t->id, mine[k]), STATUS_SUCCESS, STATUS_INVALID_HANDLE);
      mine[k] = mine[--mine_count];
    } else if (pick < 35) {
      al_handle h = g->owned[rng_below(r, 4)];
      /* Device destroy is atomic: once an empty submit (naming nothing but the device) says the
       * device is gone, its own allocations must be gone too, even while the destroy still
       * waits for the GPU. */
      uint64_t fence;
      NTSTATUS probe = submit(g->adapter, g->device, NULL, 0, &fence);
      STATUS_IN(probe, ctx_msg("worker %u: empty submit on a dying device", t->id), STATUS_SUCCESS,
                STATUS_INVALID_HANDLE);
      /* The four device-owned ones are destroyed by nobody but the device destroy. */
      al_allocation_info info;
      NTSTATUS status = al_allocation_query(g->adapter, h, &info);
      if (probe == STATUS_INVALID_HANDLE)
        STATUS_IN(status, ctx_msg("worker %u: query of 0x%08x after its device was seen gone", t->id, h),
                  STATUS_INVALID_HANDLE);
      else if (STATUS_IN(status, ctx_msg("worker %u: query of 0x%08x", t->id, h), STATUS_SUCCESS, STATUS_INVALID_HANDLE) &&
               status == STATUS_SUCCESS)
        CHECK(info.owner_device == g->device && info.resource == 0, "worker %u: allocation 0x%08x: owner 0x%08x",
              t->id, h, info.owner_device);
    } else if (pick < 70) {
      al_handle list[4];
      uint32_t n = 0;
      list[n++] = g->owned[rng_below(r, 6)];
      if (rng_chance(r, 50)) list[n++] = g->shared_allocations[rng_below(r, S4_SHARED_COUNT)];
      if (mine_count && rng_chance(r, 50)) list[n++] = mine[rng_below(r, mine_count)];
      uint64_t fence;
      NTSTATUS status = submit(g->adapter, g->device, list, n, &fence);
      STATUS_IN(status, ctx_msg("worker %u: submit of %u on a dying device", t->id, n), STATUS_SUCCESS,
                STATUS_INVALID_HANDLE);
    } else if (pick < 80 && t->id == S4_DESTROYERS) {
      if (holds_shared) {
        NTSTATUS status = destroy_resource(g->adapter, g->device, g->shared, 0);
        STATUS_IN(status, ctx_msg("worker %u: release of shared 0x%08x", t->id, g->shared), STATUS_SUCCESS,
                  STATUS_INVALID_HANDLE);
        holds_shared = false;
      } else {
        NTSTATUS status = al_resource_open(g->adapter, g->device, g->shared);
        STATUS_IN(status, ctx_msg("worker %u: re-open of shared 0x%08x", t->id, g->shared), STATUS_SUCCESS,
                  STATUS_INVALID_HANDLE);
        holds_shared = status == STATUS_SUCCESS;
      }
    } else if (pick < 85) {
      STATUS_IN(destroy_resource(g->adapter, g->device, g->resource, 0),
                ctx_msg("worker %u: destroy of resource 0x%08x", t->id, g->resource), STATUS_SUCCESS,
                STATUS_INVALID_HANDLE);
    } else {
      STATUS_IN(al_gpu_run(g->adapter, 1 + rng_below(r, 3), NULL), "al_gpu_run", STATUS_SUCCESS);
    }
  }
}

static void *s4_main(void *arg) {
  s4_thread *t = arg;
  s4_round *g = t->round;
  rng r = rng_for(4, t->round_index * 16 + t->id);
  pthread_barrier_wait(&g->start);
  if (t->id < S4_DESTROYERS) {
    /* Let the workers get going first, by a random amount. */
    for (uint32_t spins = rng_below(&r, 40); spins-- > 0;) sched_yield();
    NTSTATUS status = al_device_destroy(g->adapter, g->device);
    if (STATUS_IN(status, ctx_msg("destroyer %u: al_device_destroy(0x%08x)", t->id, g->device), STATUS_SUCCESS,
                  STATUS_INVALID_HANDLE) &&
        status == STATUS_SUCCESS)
      atomic_fetch_add(&g->destroy_successes, 1);
    return NULL;
  }
  s4_worker(t, &r);
  return NULL;
}

TEST(racing_device_destroy) {
  scenario_begin();
  stress_adapter sa;
  if (!adapter_up(&sa)) return;
  rng r = rng_for(4, 1000);
  al_handle survivor = 0;
  STATUS_IN(al_device_create(sa.adapter, &survivor), "al_device_create", STATUS_SUCCESS);
  al_handle shared = 0, shared_allocations[S4_SHARED_COUNT];
  STATUS_IN(create_n(sa.adapter, &r, survivor, 0, AL_CREATE_RESOURCE | AL_CREATE_SHARED, S4_SHARED_COUNT, 16, 64,
                     false, shared_allocations, NULL, &shared),
            "create of the shared resource", STATUS_SUCCESS);
  for (uint32_t round = 0; round < S4_ROUNDS && !done(); round++) {
    static s4_round g;
    memset(&g, 0, sizeof g);
    g.adapter = sa.adapter;
    g.shared = shared;
    memcpy(g.shared_allocations, shared_allocations, sizeof shared_allocations);
    if (!STATUS_IN(al_device_create(sa.adapter, &g.device), "al_device_create", STATUS_SUCCESS)) break;
    if (!STATUS_IN(create_n(sa.adapter, &r, g.device, 0, 0, 4, 16, 64, false, g.owned, NULL, NULL), "create",
                   STATUS_SUCCESS) ||
        !STATUS_IN(create_n(sa.adapter, &r, g.device, 0, AL_CREATE_RESOURCE, 2, 16, 64, false, &g.owned[4], NULL,
                            &g.resource),
                   "create", STATUS_SUCCESS) ||
        !STATUS_IN(al_resource_open(sa.adapter, g.device, shared), "open of the shared resource", STATUS_SUCCESS))
      break;
    uint64_t fence;
    al_handle both[2] = {g.owned[0], shared_allocations[0]};
    STATUS_IN(submit(sa.adapter, g.device, both, 2, &fence), "submit", STATUS_SUCCESS);
    STATUS_IN(submit(sa.adapter, survivor, shared_allocations, S4_SHARED_COUNT, &fence), "submit", STATUS_SUCCESS);

    pthread_barrier_init(&g.start, NULL, S4_DESTROYERS + S4_WORKERS);
    s4_thread threads[S4_DESTROYERS + S4_WORKERS];
    for (uint32_t i = 0; i < S4_DESTROYERS + S4_WORKERS; i++) threads[i] = (s4_thread){&g, i, round};
    run_threads(S4_DESTROYERS + S4_WORKERS, s4_main, threads, sizeof threads[0]);
    pthread_barrier_destroy(&g.start);

    CHECK(atomic_load(&g.destroy_successes) == 1, "round %u: %u destroys of device 0x%08x succeeded", round,
          atomic_load(&g.destroy_successes), g.device);
    STATUS_IN(al_device_destroy(sa.adapter, g.device), "al_device_destroy of a destroyed device", STATUS_INVALID_HANDLE);
    for (uint32_t i = 0; i < 6; i++) {
      al_allocation_info info;
      STATUS_IN(al_allocation_query(sa.adapter, g.owned[i], &info), "query of the victim's allocation",
                STATUS_INVALID_HANDLE);
    }
    /* The survivor's shared resource lives on, usable. */
    for (uint32_t i = 0; i < S4_SHARED_COUNT; i++) {
      al_allocation_info info;
      if (STATUS_IN(al_allocation_query(sa.adapter, shared_allocations[i], &info), "query of the survivor's allocation",
                    STATUS_SUCCESS))
        CHECK(info.resource == shared && info.owner_device == survivor, "round %u: shared allocation 0x%08x", round,
              shared_allocations[i]);
    }
    STATUS_IN(submit(sa.adapter, survivor, shared_allocations, S4_SHARED_COUNT, &fence), "survivor submit",
              STATUS_SUCCESS);
    check_idle(sa.adapter, "racing_device_destroy, round done",
               (expected_counts){1, 1, S4_SHARED_COUNT, S4_SHARED_COUNT});
  }
  al_handle devices[1] = {survivor};
  teardown(&sa, devices, 1);
}

RUN_TESTS(T(independent_devices), T(shared_resource_churn), T(racing_destroy_same_handles),
          T(racing_device_destroy))
