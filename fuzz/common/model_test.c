/*
 * model_test.c — the reference model (model.h) alone, without a port: its predictions for
 * hand-made states (exact statuses and sets), the promises fz_model_commit() checks (handles,
 * fences, query results), the expected counts and their bounds, the memory heuristics, reset.
 *
 * A plain main (//core:test_harness is visible to //core/... and //hw/... only): CHECK()
 * records a failure and goes on; argv[1] filters tests by name; exit status 1 on failure.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloclab/alloclab.h"
#include "alloclab/fuzz/model.h"
#include "alloclab/fuzz/program.h"
#include "alloclab/status.h"

static int failures;
static const char *current;

__attribute__((format(printf, 4, 5))) static bool check_impl(bool ok, const char *file, int line, const char *fmt,
                                                             ...) {
  if (ok) return true;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d: [%s] ", file, line, current);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  failures++;
  return false;
}
#define CHECK(cond, ...) check_impl((cond), __FILE__, __LINE__, __VA_ARGS__)

/* ---- A model over two 1 MiB segments (memory, aperture), 4 KiB pages ----------------------- */

static fz_model *m;
static uint64_t submitted, completed;
static char msg[512];

static fz_model_config config(void) {
  fz_model_config c;
  memset(&c, 0, sizeof c);
  c.segment_count = 2;
  c.segments[0].id = 1;
  c.segments[0].size = 1u << 20;
  c.segments[1].id = 2;
  c.segments[1].aperture = true;
  c.segments[1].size = 1u << 20;
  c.page_size_max = 4096;
  c.placed_size_is_page_rounded = true;
  c.strict_release = true;
  return c;
}

static void fresh(void) {
  fz_model_config c = config();
  fz_model_reset(m, &c);
  submitted = completed = 0;
}

static fz_model_args args(fz_op op) {
  fz_model_args a;
  memset(&a, 0, sizeof a);
  a.op = op;
  a.private_data_ok = true;
  a.size = 4096;
  return a;
}

static fz_status_set predict(const fz_model_args *a) {
  fz_prediction p;
  fz_model_predict(m, a, &p);
  return p.allowed;
}

/* Commits @a with @status and the given outputs; returns whether the model accepted them. */
static bool commit_full(const fz_model_args *a, NTSTATUS status, al_handle primary, const al_handle *allocs,
                        uint64_t fence, uint32_t gpu_completed, const al_allocation_info *info) {
  fz_model_result r;
  memset(&r, 0, sizeof r);
  r.status = status;
  r.device = primary;
  r.resource = primary;
  r.allocations = allocs;
  r.fence = fence;
  r.gpu_completed = gpu_completed;
  r.info = info;
  if (status == STATUS_SUCCESS && a->op == FZ_OP_SUBMIT) submitted = fence;
  r.fence_submitted = submitted;
  r.fence_completed = completed;
  return fz_model_commit(m, a, &r, msg, sizeof msg);
}

static bool commit(const fz_model_args *a, NTSTATUS status) {
  return commit_full(a, status, 0, NULL, 0, 0, NULL);
}

static al_handle next_handle = 0x1000;

static al_handle device(void) {
  fz_model_args a = args(FZ_OP_CREATE_DEVICE);
  al_handle h = next_handle++;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "create_device");
  CHECK(commit_full(&a, STATUS_SUCCESS, h, NULL, 0, 0, NULL), "create_device: %s", msg);
  return h;
}

/* Creates @n allocations (op CREATE_ALLOCATIONS, or CREATE_RESOURCE with @shared) into @out;
 * returns the resource handle (0 for device-owned). */
static al_handle create(fz_op op, al_handle dev, al_handle res, uint32_t n, bool shared, al_handle *out) {
  fz_model_args a = args(op);
  a.device = dev;
  a.resource = res;
  a.count = n;
  a.shared = shared;
  al_handle r = op == FZ_OP_CREATE_RESOURCE ? next_handle++ : 0;
  for (uint32_t i = 0; i < n; i++) out[i] = next_handle++;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "create predicted %#x", predict(&a));
  CHECK(commit_full(&a, STATUS_SUCCESS, r, out, 0, 0, NULL), "create: %s", msg);
  return r;
}

static fz_model_args list_args(fz_op op, al_handle dev, uint32_t n, const al_handle *list) {
  fz_model_args a = args(op);
  a.device = dev;
  a.list = list;
  a.list_length = n;
  return a;
}

static uint64_t submit(al_handle dev, uint32_t n, const al_handle *list, fz_command cmd) {
  fz_model_args a = list_args(FZ_OP_SUBMIT, dev, n, list);
  a.command = cmd;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "submit predicted %#x", predict(&a));
  CHECK(commit_full(&a, STATUS_SUCCESS, 0, NULL, submitted + 1, 0, NULL), "submit: %s", msg);
  return submitted;
}

static fz_model_counts counts(void) {
  fz_model_counts c;
  fz_model_expected(m, &c);
  return c;
}

/* ---- Tests -------------------------------------------------------------------------------- */

static void test_status_sets(void) {
  CHECK(fz_status_bit(STATUS_SUCCESS) == FZ_ST_SUCCESS, "success bit");
  CHECK(fz_status_bit(STATUS_NO_VIDEO_MEMORY) == FZ_ST_NO_VIDEO_MEMORY, "nvm bit");
  CHECK(fz_status_bit((NTSTATUS)0xC0000001L) == 0, "an undocumented status has no bit");
  char buf[128];
  fz_status_set_format(FZ_ST_SUCCESS | FZ_ST_NO_VIDEO_MEMORY, buf, sizeof buf);
  CHECK(strcmp(buf, "STATUS_SUCCESS or STATUS_GRAPHICS_NO_VIDEO_MEMORY") == 0 ||
            strcmp(buf, "STATUS_SUCCESS or STATUS_NO_VIDEO_MEMORY") == 0,
        "format: %s", buf);
  fz_status_set_format(0, buf, sizeof buf);
  CHECK(strcmp(buf, "(nothing)") == 0, "empty set: %s", buf);
}

static void test_literal_handles(void) {
  fresh();
  al_handle d = device();
  al_handle x[2];
  al_handle r = create(FZ_OP_CREATE_RESOURCE, d, 0, 2, true, x);
  fz_model_args a = args(FZ_OP_DESTROY_DEVICE);
  const al_handle bad[] = {0, 0xdead0001u, r, x[0]};
  for (size_t i = 0; i < 4; i++) { /* 0, garbage, wrong types */
    a.device = bad[i];
    CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "destroy_device(%#x)", bad[i]);
  }
  a = args(FZ_OP_QUERY);
  a.allocation = d;
  CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "query(device)");
  a.allocation = x[1];
  CHECK(predict(&a) == FZ_ST_SUCCESS, "query(allocation)");
  a.hostile = FZ_HOSTILE_NULL_ARGS;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "query NULL out");
  a.allocation = 0;
  CHECK(predict(&a) == (FZ_ST_INVALID_PARAMETER | FZ_ST_INVALID_HANDLE), "two errors: the union");
}

static void test_create_rules(void) {
  fresh();
  al_handle d = device(), e = device();
  fz_model_args a = args(FZ_OP_CREATE_ALLOCATIONS);
  a.device = d;
  a.count = 0;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "count 0");
  a.count = FZ_MODEL_COUNT_OVER;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "count over");
  a.count = 1;
  const uint32_t hostile[] = {FZ_HOSTILE_NULL_ARGS, FZ_HOSTILE_NULL_LIST, FZ_HOSTILE_RESERVED_FLAGS,
                              FZ_HOSTILE_PRIVATE_DATA};
  for (size_t i = 0; i < 4; i++) {
    a.hostile = hostile[i];
    CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "hostile %#x", hostile[i]);
  }
  a.hostile = 0;
  a.private_data_ok = false;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "private data not expressible");
  a.private_data_ok = true;
  a.device = 0x7777;
  a.count = 0;
  CHECK(predict(&a) == (FZ_ST_INVALID_HANDLE | FZ_ST_INVALID_PARAMETER), "stale device and count 0");

  al_handle x[4], y[1];
  al_handle r = create(FZ_OP_CREATE_RESOURCE, d, 0, 2, true, x);
  al_handle p = create(FZ_OP_CREATE_RESOURCE, d, 0, 1, false, y);
  a = args(FZ_OP_ADD_TO_RESOURCE);
  a.device = e;
  a.resource = r;
  a.count = 1;
  CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "add by another device");
  a.device = d;
  a.resource = 0;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "add with resource 0 is a plain create");
  a.resource = r;
  create(FZ_OP_ADD_TO_RESOURCE, d, r, 1, false, x + 2);
  fz_model_args o = args(FZ_OP_OPEN_RESOURCE);
  o.device = e;
  o.resource = p;
  CHECK(predict(&o) == FZ_ST_INVALID_PARAMETER, "open non-shared");
  o.resource = r;
  o.device = d;
  CHECK(predict(&o) == FZ_ST_INVALID_PARAMETER, "open by a holder");
  o.device = e;
  CHECK(predict(&o) == FZ_ST_SUCCESS, "open");
  CHECK(commit(&o, STATUS_SUCCESS), "open: %s", msg);
  CHECK(predict(&o) == FZ_ST_INVALID_PARAMETER, "open twice");
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "add to a sealed resource");
  fz_model_args dr = args(FZ_OP_DESTROY_RESOURCE);
  dr.device = e;
  dr.resource = r;
  CHECK(commit(&dr, STATUS_SUCCESS), "release: %s", msg);
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "still sealed after the opener let go");
  fz_model_counts c = counts();
  CHECK(c.devices == 2 && c.resources == 2 && c.allocations == 4 && c.bindings_min == 4 && c.bindings_max == 4,
        "counts %u %u %u %u..%u", c.devices, c.resources, c.allocations, c.bindings_min, c.bindings_max);
}

static void test_destroy_rules(void) {
  fresh();
  al_handle d = device(), e = device();
  al_handle own[3], other[1], rx[2], px[1];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 3, false, own);
  create(FZ_OP_CREATE_ALLOCATIONS, e, 0, 1, false, other);
  al_handle r = create(FZ_OP_CREATE_RESOURCE, d, 0, 2, true, rx);
  create(FZ_OP_CREATE_RESOURCE, d, 0, 1, false, px);
  struct {
    const char *what;
    al_handle list[3];
    uint32_t n;
    fz_status_set want;
  } cases[] = {
      {"valid", {own[0], own[1]}, 2, FZ_ST_SUCCESS},
      {"duplicates", {own[0], own[0]}, 2, FZ_ST_INVALID_PARAMETER},
      {"device + resource", {own[0], rx[0]}, 2, FZ_ST_INVALID_PARAMETER},
      {"two resources", {rx[0], px[0]}, 2, FZ_ST_INVALID_PARAMETER},
      {"foreign", {other[0]}, 1, FZ_ST_INVALID_HANDLE},
      {"foreign and mine", {own[0], other[0]}, 2, FZ_ST_INVALID_HANDLE | FZ_ST_INVALID_PARAMETER},
      {"stale literal", {0xdeadu}, 1, FZ_ST_INVALID_HANDLE},
      {"a resource handle", {r}, 1, FZ_ST_INVALID_HANDLE},
      {"neither", {0}, 0, FZ_ST_INVALID_PARAMETER},
      {"over", {own[0]}, FZ_MODEL_COUNT_OVER, FZ_ST_INVALID_PARAMETER},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fz_model_args a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, cases[i].n, cases[i].list);
    CHECK(predict(&a) == cases[i].want, "%s: %#x want %#x", cases[i].what, predict(&a), cases[i].want);
  }
  fz_model_args a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, own);
  a.flags = 0x10;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "reserved flag");
  a.flags = 0;
  a.hostile = FZ_HOSTILE_BOTH_FORMS;
  a.resource = r;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "both forms");
  a.resource = 0; /* both_forms with resource 0: the list form */
  CHECK(predict(&a) == FZ_ST_SUCCESS, "both forms with resource 0");
  a.hostile = FZ_HOSTILE_NULL_LIST;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "NULL list");

  fz_model_args dr = args(FZ_OP_DESTROY_RESOURCE);
  dr.device = d;
  dr.resource = 0;
  CHECK(predict(&dr) == FZ_ST_INVALID_PARAMETER, "destroy_resource(0): neither form");
  dr.resource = r;
  dr.device = e;
  CHECK(predict(&dr) == FZ_ST_INVALID_HANDLE, "not held");
  fz_model_args o = args(FZ_OP_OPEN_RESOURCE);
  o.device = e;
  o.resource = r;
  CHECK(commit(&o, STATUS_SUCCESS), "open: %s", msg);
  a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, rx);
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "open on several devices");
  CHECK(predict(&dr) == FZ_ST_SUCCESS, "e lets go");
  CHECK(commit(&dr, STATUS_SUCCESS), "release: %s", msg);
  CHECK(predict(&a) == FZ_ST_SUCCESS, "d holds it alone");
  CHECK(commit(&a, STATUS_SUCCESS), "destroy: %s", msg);
  CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "destroyed handle is invalid at once");
  fz_model_counts c = counts();
  CHECK(c.allocations == 6 && c.resources == 2 && c.bindings_min == 6, "counts %u %u %u", c.allocations, c.resources,
        c.bindings_min);
  /* A failed call changes nothing. */
  a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, own);
  CHECK(commit(&a, STATUS_INVALID_PARAMETER), "failed destroy: %s", msg);
  c = counts();
  CHECK(c.allocations == 6, "a failed destroy destroyed something");
}

static void test_deferred_and_fences(void) {
  fresh();
  al_handle d = device();
  al_handle x[3];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 3, false, x);
  uint64_t f = submit(d, 2, x, FZ_COMMAND_FILL);
  fz_model_allocation_view v;
  CHECK(fz_model_allocation(m, x[0], &v) && v.has_pattern && v.last_fence == f, "fill recorded");
  uint32_t next;
  CHECK(fz_model_fill_pattern(m, x[0], &next) && next != v.pattern, "the next fill writes another pattern");
  CHECK((v.pattern & 0xFFu) && (v.pattern >> 24), "pattern bytes non-zero");
  fz_model_args a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, x);
  CHECK(commit(&a, STATUS_SUCCESS), "destroy: %s", msg);
  fz_model_counts c = counts();
  CHECK(c.deferred_min == 1 && c.deferred_max == 1, "deferred %u..%u", c.deferred_min, c.deferred_max);
  CHECK(c.bindings_min == 3 && c.bindings_max == 3, "the binding stays while the GPU uses it: %u..%u",
        c.bindings_min, c.bindings_max);
  CHECK(fz_model_allocation(m, x[0], &v) && !v.alive, "destroyed at once");
  /* gpu_run(1) must complete the one submission. */
  fz_model_args g = args(FZ_OP_GPU_RUN);
  g.count = 1;
  CHECK(!commit_full(&g, STATUS_SUCCESS, 0, NULL, 0, 0, NULL), "gpu_run that ran nothing accepted");
  fresh();
  d = device();
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 3, false, x);
  f = submit(d, 2, x, FZ_COMMAND_NOP);
  a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, x);
  CHECK(commit(&a, STATUS_SUCCESS), "destroy: %s", msg);
  completed = f;
  CHECK(commit_full(&g, STATUS_SUCCESS, 0, NULL, 0, 1, NULL), "gpu_run: %s", msg);
  c = counts();
  CHECK(c.deferred_min == 0 && c.deferred_max == 0 && c.bindings_max == 2, "released at the release point");
  /* fence_wait: handed-out fences only */
  fz_model_args w = args(FZ_OP_FENCE_WAIT);
  w.fence = f + 1;
  CHECK(predict(&w) == FZ_ST_INVALID_PARAMETER, "future fence");
  w.fence = f;
  CHECK(predict(&w) == FZ_ST_SUCCESS, "signalled fence");
  w.fence = 0;
  CHECK(predict(&w) == (FZ_ST_SUCCESS | FZ_ST_INVALID_PARAMETER), "fence 0: either");
  /* fences must not go back, and a failed submit hands nothing out */
  completed = 0;
  CHECK(!commit(&w, STATUS_SUCCESS), "fence_completed went back");
  completed = f;
  fz_model_args s = list_args(FZ_OP_SUBMIT, d, 1, x + 1);
  submitted = f + 1;
  CHECK(!commit(&s, STATUS_INVALID_PARAMETER), "a failed submit moved fence_submitted");
  submitted = f;
  CHECK(!commit_full(&s, STATUS_SUCCESS, 0, NULL, f, 0, NULL), "a submit reused a fence");
}

/* fz_model_config.threaded_engine: gpu_run runs nothing; a release point releases only what
 * was due when the port reaped (a fence seen before the call, or the one waited for), since the
 * engine thread may signal more between the port's reap and the read of fence_completed. */
static void test_threaded_engine(void) {
  fz_model_config cfg = config();
  cfg.threaded_engine = true;
  fz_model_reset(m, &cfg);
  submitted = completed = 0;
  al_handle d = device();
  al_handle x[3];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 3, false, x);
  uint64_t f1 = submit(d, 1, x, FZ_COMMAND_FILL);
  uint64_t f2 = submit(d, 1, x + 1, FZ_COMMAND_FILL);
  fz_model_args a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, x + 1); /* waits for f2 */
  CHECK(commit(&a, STATUS_SUCCESS), "destroy: %s", msg);
  /* fence_wait(f1) returns; the engine thread signalled f2 after the port reaped at f1. */
  fz_model_args w = args(FZ_OP_FENCE_WAIT);
  w.fence = f1;
  completed = f2;
  CHECK(commit(&w, STATUS_SUCCESS), "fence_wait: %s", msg);
  fz_model_counts c = counts();
  CHECK(c.deferred_min == 0 && c.deferred_max == 1, "due by f2, seen after the wait: may still be deferred (%u..%u)",
        c.deferred_min, c.deferred_max);
  al_adapter_stats st;
  memset(&st, 0, sizeof st);
  st.devices = 1;
  st.allocations = 2;
  st.bindings = 3;
  st.deferred_destroys = 1;
  st.deferred_allocations = 1;
  st.fence_submitted = f2;
  st.fence_completed = f2;
  CHECK(fz_model_check_stats(m, &st, msg, sizeof msg), "the port's deferred destroy after the wait: %s", msg);
  /* gpu_run: nothing run, and what was seen signalled before it (f2) is due now. */
  fz_model_args g = args(FZ_OP_GPU_RUN);
  g.count = 1;
  CHECK(!commit_full(&g, STATUS_SUCCESS, 0, NULL, 0, 1, NULL), "gpu_run that ran a submission on a threaded engine");
  CHECK(strstr(msg, "threaded engine"), "message: %s", msg);
  CHECK(commit_full(&g, STATUS_SUCCESS, 0, NULL, 0, 0, NULL), "gpu_run: %s", msg);
  c = counts();
  CHECK(c.deferred_min == 0 && c.deferred_max == 0, "released at gpu_run (%u..%u)", c.deferred_min, c.deferred_max);
  CHECK(!fz_model_check_stats(m, &st, msg, sizeof msg), "a deferred destroy left after gpu_run released it");

  /* The same steps on the deterministic engine: fence_wait releases up to the completed fence. */
  fresh();
  d = device();
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 3, false, x);
  f1 = submit(d, 1, x, FZ_COMMAND_FILL);
  f2 = submit(d, 1, x + 1, FZ_COMMAND_FILL);
  a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, x + 1);
  CHECK(commit(&a, STATUS_SUCCESS), "destroy: %s", msg);
  w.fence = f1;
  completed = f2;
  CHECK(commit(&w, STATUS_SUCCESS), "fence_wait: %s", msg);
  c = counts();
  CHECK(c.deferred_max == 0, "deterministic: released up to the completed fence (at most %u)", c.deferred_max);
}

static void test_commit_promises(void) {
  fresh();
  al_handle d = device();
  fz_model_args a = args(FZ_OP_CREATE_DEVICE);
  CHECK(!commit_full(&a, STATUS_SUCCESS, 0, NULL, 0, 0, NULL), "handle 0 accepted");
  CHECK(!commit_full(&a, STATUS_SUCCESS, d, NULL, 0, 0, NULL), "a repeated device handle accepted");
  al_handle x[2];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 2, false, x);
  fz_model_args del = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, x);
  CHECK(commit(&del, STATUS_SUCCESS), "destroy: %s", msg);
  fz_model_args c = args(FZ_OP_CREATE_ALLOCATIONS);
  c.device = d;
  c.count = 1;
  CHECK(!commit_full(&c, STATUS_SUCCESS, 0, x, 0, 0, NULL), "ABA: a destroyed handle's value handed out again");
  CHECK(strstr(msg, "handle reused") != NULL, "message: %s", msg);
  /* query */
  fz_model_args q = args(FZ_OP_QUERY);
  q.allocation = x[1];
  al_allocation_info info = {.resource = 0, .owner_device = d, .segment_id = 1, .segment_offset = 0, .size = 4096,
                             .last_fence = 0};
  CHECK(commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info), "query: %s", msg);
  info.last_fence = 9;
  CHECK(!commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info), "wrong last_fence accepted");
  info.last_fence = 0;
  info.owner_device = d + 1;
  CHECK(!commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info), "wrong owner accepted");
  info.owner_device = d;
  info.segment_offset = (1u << 20) - 2048;
  CHECK(!commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info), "outside its segment accepted");
  info.segment_offset = 0;
  info.segment_id = 7;
  CHECK(!commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info), "unknown segment accepted");
  info.segment_id = 1;
  info.size = 1024;
  CHECK(!commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info), "placed size below the request accepted");
}

static void test_stats_check(void) {
  fresh();
  al_handle d = device();
  al_handle x[2];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 2, false, x);
  al_adapter_stats st;
  memset(&st, 0, sizeof st);
  st.devices = 1;
  st.allocations = 2;
  st.bindings = 2;
  st.segment_count = 2;
  st.segments[0].size = st.segments[1].size = 1u << 20;
  st.segments[0].used_bytes = 8192;
  CHECK(fz_model_check_stats(m, &st, msg, sizeof msg), "agreeing stats: %s", msg);
  st.bindings = 3;
  CHECK(!fz_model_check_stats(m, &st, msg, sizeof msg) && strstr(msg, "bindings"), "a leaked binding: %s", msg);
  st.bindings = 2;
  st.segments[1].used_bytes = 4096;
  CHECK(!fz_model_check_stats(m, &st, msg, sizeof msg) && strstr(msg, "memory leaked"), "segment bytes: %s", msg);
  st.segments[1].used_bytes = 0;
  st.deferred_allocations = 1;
  CHECK(!fz_model_check_stats(m, &st, msg, sizeof msg), "a deferred allocation that does not exist");
}

static void test_memory_sets(void) {
  fresh();
  al_handle d = device();
  fz_model_args a = args(FZ_OP_CREATE_ALLOCATIONS);
  a.device = d;
  a.count = 1;
  a.size = 4096;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "small: exact success");
  a.size = 600 << 10;
  CHECK(predict(&a) == (FZ_ST_SUCCESS | FZ_ST_NO_VIDEO_MEMORY), "large: success or no video memory");
  a.size = (2u << 20);
  CHECK(predict(&a) == (FZ_ST_INVALID_PARAMETER | FZ_ST_NO_VIDEO_MEMORY), "above every segment");
  a.placement = FZ_PLACEMENT_APERTURE_ONLY;
  a.size = 4096;
  a.count = 32;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "32 small ones");
  /* a submit may page in only after memory got tight once */
  al_handle x[1];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 1, false, x);
  fz_model_args s = list_args(FZ_OP_SUBMIT, d, 1, x);
  CHECK(predict(&s) == FZ_ST_SUCCESS, "submit without pressure");
  a.placement = FZ_PLACEMENT_ANY;
  a.count = 1;
  a.size = 900 << 10;
  CHECK(commit(&a, STATUS_NO_VIDEO_MEMORY), "nvm: %s", msg);
  CHECK(predict(&s) == (FZ_ST_SUCCESS | FZ_ST_NO_VIDEO_MEMORY), "submit after pressure");
}

static void test_removed_and_faults(void) {
  fresh();
  al_handle d = device();
  fz_model_args a = args(FZ_OP_CREATE_ALLOCATIONS);
  a.device = d;
  a.count = 1;
  fz_prediction p;
  fz_model_predict(m, &a, &p);
  CHECK(p.allowed == FZ_ST_SUCCESS, "exact");
  CHECK(p.allowed_if_faulted == (FZ_ST_SUCCESS | FZ_ST_NO_MEMORY | FZ_ST_DEVICE_REMOVED | FZ_ST_NO_VIDEO_MEMORY),
        "widened under faults: %#x", p.allowed_if_faulted);
  CHECK(p.allowed_if_wrong_answer == (FZ_ST_DRIVER_MISMATCH | FZ_ST_NO_MEMORY | FZ_ST_DEVICE_REMOVED |
                                      FZ_ST_NO_VIDEO_MEMORY),
        "a wrong answer never succeeds: %#x", p.allowed_if_wrong_answer);
  CHECK(fz_status_bit(STATUS_GRAPHICS_DRIVER_MISMATCH) == FZ_ST_DRIVER_MISMATCH, "driver mismatch bit");
  fz_model_args g = args(FZ_OP_GPU_RUN);
  fz_model_predict(m, &g, &p);
  CHECK(p.allowed_if_faulted == FZ_ST_SUCCESS, "gpu_run is not widened");
  CHECK(p.allowed_if_wrong_answer == FZ_ST_SUCCESS, "gpu_run reaches no DDI that answers wrongly");
  CHECK(commit(&a, STATUS_GRAPHICS_DRIVER_MISMATCH), "a refused answer changes nothing: %s", msg);
  CHECK(predict(&a) == FZ_ST_SUCCESS, "and the adapter works on");
  CHECK(commit(&a, STATUS_DEVICE_REMOVED), "removed: %s", msg);
  CHECK(fz_model_removed(m), "removal remembered");
  CHECK(predict(&a) == FZ_ST_DEVICE_REMOVED, "creates fail once removed");
  fz_model_args c = args(FZ_OP_CREATE_DEVICE);
  CHECK(predict(&c) == FZ_ST_DEVICE_REMOVED, "create_device once removed");
  a.count = 0;
  CHECK(predict(&a) == (FZ_ST_INVALID_PARAMETER | FZ_ST_DEVICE_REMOVED), "an error or removed");
  fz_model_args dd = args(FZ_OP_DESTROY_DEVICE);
  dd.device = d;
  CHECK(predict(&dd) == FZ_ST_SUCCESS, "destroys still work");
}

static void test_reset(void) {
  fresh();
  al_handle d = device();
  fresh();
  fz_model_args a = args(FZ_OP_DESTROY_DEVICE);
  a.device = d;
  CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "a handle of the previous program");
  fz_model_counts c = counts();
  CHECK(c.devices == 0 && c.fence_submitted == 0, "counts after reset");
  fz_model_args cd = args(FZ_OP_CREATE_DEVICE);
  CHECK(commit_full(&cd, STATUS_SUCCESS, d, NULL, 0, 0, NULL), "the same value is new in a new program: %s", msg);
}

static void test_capacity(void) {
  fresh();
  al_handle d = device();
  al_handle x[FZ_MAX_LIST];
  for (int k = 0; k < FZ_MAX_CALLS - 1; k++) {
    create(FZ_OP_CREATE_ALLOCATIONS, d, 0, FZ_MAX_LIST, false, x);
    fz_model_args a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, FZ_MAX_LIST, x);
    CHECK(commit(&a, STATUS_SUCCESS), "destroy: %s", msg);
  }
  fz_model_counts c = counts();
  CHECK(c.allocations == 0 && c.devices == 1, "all gone");
  al_handle list[FZ_MAX_LIST];
  CHECK(fz_model_live_allocations(m, list, FZ_MAX_LIST) == 0, "no live allocation");
  CHECK(fz_model_live_devices(m, list, FZ_MAX_LIST) == 1 && list[0] == d, "one live device");
}

/* Lists of up to 1024 handles (what ranges expand to): duplicates far apart, exactly the
 * maximum, one above and one below it, and one call destroying 1024 allocations. */
/* COPY (program.h): list[0]'s first bytes onto list[1]; a later CHECK of list[1] expects
 * list[0]'s pattern when the copy covered all the CHECK reads; a one-entry copy overlaps. */
static void test_copy(void) {
  fresh();
  al_handle d = device();
  al_handle x[2], big[1], small[1];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 2, false, x);
  submit(d, 1, &x[0], FZ_COMMAND_FILL);
  fz_model_allocation_view src, dst;
  CHECK(fz_model_allocation(m, x[0], &src) && src.has_pattern, "x0 filled");
  CHECK(fz_model_allocation(m, x[1], &dst) && !dst.has_pattern, "x1 not filled yet");
  submit(d, 2, x, FZ_COMMAND_COPY);
  CHECK(fz_model_allocation(m, x[1], &dst) && dst.has_pattern && dst.pattern == src.pattern,
        "after the copy, x1 holds x0's pattern (%08x, want %08x)", dst.pattern, src.pattern);
  CHECK(fz_model_allocation(m, x[0], &src) && src.has_pattern && src.last_fence == submitted,
        "the source keeps its pattern, and the copy is its last use");

  /* Copying an unfilled allocation over a filled one: the destination reads zero, no check. */
  al_handle back[2] = {x[1], x[0]};
  submit(d, 1, &x[1], FZ_COMMAND_FILL);
  al_handle y[1];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 1, false, y);
  al_handle zero_over[2] = {y[0], x[1]};
  submit(d, 2, zero_over, FZ_COMMAND_COPY);
  CHECK(fz_model_allocation(m, x[1], &dst) && !dst.has_pattern, "an unfilled source clears the pattern");
  submit(d, 2, back, FZ_COMMAND_COPY);
  CHECK(fz_model_allocation(m, x[0], &dst) && !dst.has_pattern, "copied back: still nothing to check");

  /* A source smaller than what a CHECK of the destination reads leaves it mixed: no check. */
  fz_model_args a = args(FZ_OP_CREATE_ALLOCATIONS);
  a.device = d;
  a.count = 1;
  a.size = 16;
  small[0] = next_handle++;
  CHECK(predict(&a) == FZ_ST_SUCCESS && commit_full(&a, STATUS_SUCCESS, 0, small, 0, 0, NULL), "small: %s", msg);
  a.size = 8192;
  big[0] = next_handle++;
  CHECK(predict(&a) == FZ_ST_SUCCESS && commit_full(&a, STATUS_SUCCESS, 0, big, 0, 0, NULL), "big: %s", msg);
  submit(d, 1, small, FZ_COMMAND_FILL);
  submit(d, 1, big, FZ_COMMAND_FILL);
  al_handle small_to_big[2] = {small[0], big[0]};
  submit(d, 2, small_to_big, FZ_COMMAND_COPY);
  CHECK(fz_model_allocation(m, big[0], &dst) && !dst.has_pattern, "16 bytes over 64 checked: mixed, no check");
  /* The other way the copy covers the small one's 16 checked bytes. */
  al_handle big_to_small[2] = {big[0], small[0]};
  submit(d, 1, big, FZ_COMMAND_FILL);
  CHECK(fz_model_allocation(m, big[0], &src) && src.has_pattern, "big refilled");
  submit(d, 2, big_to_small, FZ_COMMAND_COPY);
  CHECK(fz_model_allocation(m, small[0], &dst) && dst.has_pattern && dst.pattern == src.pattern,
        "a copy over all of a small destination gives it the pattern");

  /* One entry: list[0] onto itself. The sim rejects the overlap; a miniport that does not read
   * commands takes it, and nothing changes. */
  a = list_args(FZ_OP_SUBMIT, d, 1, x);
  a.command = FZ_COMMAND_COPY;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "no command validation: a self copy is just work (%#x)", predict(&a));
  fz_model_config c = config();
  c.miniport_validates_private_data = true;
  fz_model_reset(m, &c);
  submitted = completed = 0;
  d = device();
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 2, false, x);
  a = list_args(FZ_OP_SUBMIT, d, 1, x);
  a.command = FZ_COMMAND_COPY;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "sim: a self copy is INVALID_PARAMETER (%#x)", predict(&a));
  uint64_t before = counts().fence_submitted;
  CHECK(commit(&a, STATUS_INVALID_PARAMETER) && counts().fence_submitted == before, "a refused copy changes nothing");
  a.command = FZ_COMMAND_FILL;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "the same list with fill is fine");
  a = list_args(FZ_OP_SUBMIT, d, 2, x);
  a.command = FZ_COMMAND_COPY;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "sim: two distinct allocations copy fine (%#x)", predict(&a));
  al_handle twice[2] = {x[0], x[0]};
  a = list_args(FZ_OP_SUBMIT, d, 2, twice);
  a.command = FZ_COMMAND_COPY;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "the same allocation twice: duplicates (%#x)", predict(&a));
  al_handle stale[2] = {x[0], 0xDEAD0001u};
  a = list_args(FZ_OP_SUBMIT, d, 2, stale);
  a.command = FZ_COMMAND_COPY;
  CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "a destination that is no allocation (%#x)", predict(&a));
  a = list_args(FZ_OP_SUBMIT, d, 0, x);
  a.command = FZ_COMMAND_COPY;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "an empty copy list queues no command (%#x)", predict(&a));
}

/* Alignment: 0 or a power of two; the placed offset is a multiple of it; worst-case padding
 * counts against provable room. */
static void test_align(void) {
  fresh();
  al_handle d = device();
  fz_model_args a = args(FZ_OP_CREATE_ALLOCATIONS);
  a.device = d;
  a.count = 1;
  a.align = 3u * 4096u;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "align 3 pages: %#x", predict(&a));
  a.align = 65536;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "align 64 KiB: %#x", predict(&a));
  a.private_data_ok = false; /* the miniport cannot express it (sim: above 64 MiB) */
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "an alignment the miniport refuses: %#x", predict(&a));
  a.private_data_ok = true;
  /* 512 KiB of padding in a 1 MiB segment cannot be proven to fit: NO_VIDEO_MEMORY allowed. */
  a.align = 1u << 19;
  CHECK(predict(&a) == (FZ_ST_SUCCESS | FZ_ST_NO_VIDEO_MEMORY), "align 512 KiB: %#x", predict(&a));
  a.align = 65536;
  al_handle x[1] = {next_handle++};
  CHECK(commit_full(&a, STATUS_SUCCESS, 0, x, 0, 0, NULL), "create: %s", msg);
  fz_model_allocation_view view;
  CHECK(fz_model_allocation(m, x[0], &view) && view.align == 65536, "the view shows the alignment");
  fz_model_args q = args(FZ_OP_QUERY);
  q.allocation = x[0];
  al_allocation_info info = {.owner_device = d, .segment_id = 1, .segment_offset = 3u * 65536u, .size = 4096};
  CHECK(commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info), "aligned offset: %s", msg);
  info.segment_offset = 65536 + 4096;
  CHECK(!commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info) && strstr(msg, "not a multiple of the alignment"),
        "a misaligned placement accepted: %s", msg);
  info.segment_id = 0; /* in system memory: no offset to check */
  CHECK(commit_full(&q, STATUS_SUCCESS, 0, NULL, 0, 0, &info), "evicted: %s", msg);
}

/* create_device(info=1): the info is written on success, untouched on failure. */
static void test_device_info(void) {
  fresh();
  fz_model_args a = args(FZ_OP_CREATE_DEVICE);
  a.info = true;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "create_device with info: %#x", predict(&a));
  DXGK_DEVICEINFO info;
  memset(&info, FZ_MODEL_INFO_SENTINEL_BYTE, sizeof info);
  fz_model_result r;
  memset(&r, 0, sizeof r);
  r.status = STATUS_SUCCESS;
  r.device = next_handle++;
  r.device_info = &info;
  CHECK(!fz_model_commit(m, &a, &r, msg, sizeof msg) && strstr(msg, "left the info's DmaBufferSize unwritten"),
        "an unwritten info accepted: %s", msg);
  fresh();
  memset(&info, 0, sizeof info);
  info.DmaBufferSize = 4096;
  r.device = next_handle++;
  CHECK(fz_model_commit(m, &a, &r, msg, sizeof msg), "a written info: %s", msg);
  fresh();
  a.hostile = FZ_HOSTILE_NULL_ARGS;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "NULL out_device with info");
  r.status = STATUS_INVALID_PARAMETER;
  r.device = 0;
  CHECK(!fz_model_commit(m, &a, &r, msg, sizeof msg) && strstr(msg, "failed but wrote the info's DmaBufferSize"),
        "a failed call that wrote the info accepted: %s", msg);
  memset(&info, FZ_MODEL_INFO_SENTINEL_BYTE, sizeof info);
  CHECK(fz_model_commit(m, &a, &r, msg, sizeof msg), "a failed call left the info alone: %s", msg);
}

static void test_long_lists(void) {
  fz_model_config c = config();
  c.segments[0].size = c.segments[1].size = 64u << 20;
  fz_model_reset(m, &c);
  submitted = completed = 0;
  al_handle d = device();
  static al_handle x[AL_MAX_ALLOCATIONS_PER_CALL + 1];
  create(FZ_OP_CREATE_RESOURCE, d, 0, AL_MAX_ALLOCATIONS_PER_CALL, false, x);
  x[AL_MAX_ALLOCATIONS_PER_CALL] = 0; /* what a count of one more reads */
  fz_model_args a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, AL_MAX_ALLOCATIONS_PER_CALL, x);
  CHECK(predict(&a) == FZ_ST_SUCCESS, "1024 distinct allocations: %#x", predict(&a));
  al_handle kept = x[1000];
  x[1000] = x[3];
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "a duplicate 997 entries apart: %#x", predict(&a));
  x[1000] = kept;
  a.list_length = AL_MAX_ALLOCATIONS_PER_CALL + 1u;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "count one above the maximum: %#x", predict(&a));
  a.list_length = UINT32_MAX;
  CHECK(predict(&a) == FZ_ST_INVALID_PARAMETER, "count 0 - 1: %#x", predict(&a));
  a.list_length = AL_MAX_ALLOCATIONS_PER_CALL - 1u;
  CHECK(predict(&a) == FZ_ST_SUCCESS, "count one below the list: %#x", predict(&a));
  a.list_length = AL_MAX_ALLOCATIONS_PER_CALL;
  x[1023] = 0; /* a range one past the end: its last element is 0 */
  CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "off the end: %#x", predict(&a));
  a.list_length = AL_MAX_ALLOCATIONS_PER_CALL - 1u;
  CHECK(commit(&a, STATUS_SUCCESS), "destroy 1023 in one call: %s", msg);
  fz_model_counts k = counts();
  CHECK(k.allocations == 1 && k.resources == 1, "one allocation left: %u", k.allocations);
  fresh();
}

/* ---- fz_model_copy: a snapshot answers as its source ------------------------------------- */

/* Whether @a and @b answer alike: the counts, every probe handle's view, and the predictions of
 * destroying it (as a device, as an allocation of @dev) and of submitting it. */
static void same_answers(fz_model *a, fz_model *b, al_handle dev, const al_handle *probe, uint32_t n,
                         const char *when) {
  fz_model_counts ca, cb;
  fz_model_expected(a, &ca);
  fz_model_expected(b, &cb);
  CHECK(ca.devices == cb.devices && ca.resources == cb.resources && ca.allocations == cb.allocations &&
            ca.bindings_min == cb.bindings_min && ca.bindings_max == cb.bindings_max &&
            ca.deferred_min == cb.deferred_min && ca.deferred_max == cb.deferred_max &&
            ca.fence_submitted == cb.fence_submitted && ca.segment_bytes_max == cb.segment_bytes_max,
        "%s: counts differ (allocations %u vs %u, deferred %u..%u vs %u..%u, fence %llu vs %llu)", when,
        ca.allocations, cb.allocations, ca.deferred_min, ca.deferred_max, cb.deferred_min, cb.deferred_max,
        (unsigned long long)ca.fence_submitted, (unsigned long long)cb.fence_submitted);
  fz_model *keep = m;
  for (uint32_t i = 0; i < n; i++) {
    fz_model_allocation_view va, vb;
    bool ka = fz_model_allocation(a, probe[i], &va), kb = fz_model_allocation(b, probe[i], &vb);
    CHECK(ka == kb && (!ka || (va.alive == vb.alive && va.serial == vb.serial && va.last_fence == vb.last_fence &&
                               va.has_pattern == vb.has_pattern && va.pattern == vb.pattern)),
          "%s: handle 0x%x: views differ (known %d vs %d)", when, probe[i], ka, kb);
    fz_model_args ops[3] = {args(FZ_OP_DESTROY_DEVICE), list_args(FZ_OP_DESTROY_ALLOCATIONS, dev, 1, &probe[i]),
                            list_args(FZ_OP_SUBMIT, dev, 1, &probe[i])};
    ops[0].device = probe[i];
    for (int k = 0; k < 3; k++) {
      m = a;
      fz_status_set pa = predict(&ops[k]);
      m = b;
      fz_status_set pb = predict(&ops[k]);
      CHECK(pa == pb, "%s: handle 0x%x, op %s: %#x vs %#x", when, probe[i], fz_op_name(ops[k].op), pa, pb);
    }
  }
  m = keep;
}

static void test_snapshot(void) {
  fz_model_config c = config();
  fz_model *snap = fz_model_create(&c), *other = fz_model_create(&c);
  if (!CHECK(snap != NULL && other != NULL, "host memory")) {
    fz_model_destroy(snap);
    fz_model_destroy(other);
    return;
  }
  fresh();
  al_handle d = device();
  al_handle x[4], r[2], late[2], gone[1];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 4, false, x);
  create(FZ_OP_CREATE_RESOURCE, d, 0, 2, true, r);
  submit(d, 2, x, FZ_COMMAND_FILL);
  fz_model_args a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, x); /* deferred: its fill is queued */
  CHECK(commit(&a, STATUS_SUCCESS), "destroy: %s", msg);

  /* The snapshot held another program before, with handles of its own. */
  fz_model *keep = m;
  uint64_t keep_submitted = submitted;
  m = snap;
  submitted = 0;
  al_handle sd = device(), stale[3];
  create(FZ_OP_CREATE_ALLOCATIONS, sd, 0, 3, false, stale);
  m = keep;
  submitted = keep_submitted;
  fz_model_copy(snap, m);
  al_handle probe[] = {d, x[0], x[1], x[2], x[3], r[0], r[1], sd, stale[0], stale[1], stale[2], 0xDEAD0001u};
  uint32_t nprobe = sizeof probe / sizeof probe[0];
  same_answers(m, snap, d, probe, nprobe, "after the snapshot");
  m = snap;
  a = args(FZ_OP_DESTROY_DEVICE);
  a.device = sd;
  CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "the snapshot's earlier device is gone (%#x)", predict(&a));
  m = keep;

  /* The source goes on; restoring it from the snapshot forgets what came after. */
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 2, false, late);
  submit(d, 1, &x[2], FZ_COMMAND_FILL);
  a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, &x[3]);
  CHECK(commit(&a, STATUS_SUCCESS), "destroy x3: %s", msg);
  gone[0] = x[3];
  fz_model_copy(m, snap);
  submitted = keep_submitted;
  al_handle probe2[] = {d, x[0], x[1], x[2], x[3], r[0], r[1], late[0], late[1], gone[0]};
  same_answers(m, snap, d, probe2, sizeof probe2 / sizeof probe2[0], "after the restore");
  a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, late);
  CHECK(predict(&a) == FZ_ST_INVALID_HANDLE, "an allocation made after the snapshot is unknown again (%#x)",
        predict(&a));
  fz_model_args cd = args(FZ_OP_CREATE_DEVICE);
  CHECK(commit_full(&cd, STATUS_SUCCESS, late[0], NULL, 0, 0, NULL),
        "its handle value is new again after the restore: %s", msg);
  CHECK(!commit_full(&cd, STATUS_SUCCESS, x[1], NULL, 0, 0, NULL), "a handle the snapshot holds is a reuse");

  /* A copy of a copy, into a model whose own program went on past the source's. */
  fz_model_copy(other, snap);
  m = other;
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 2, false, late);
  m = keep;
  fz_model_copy(other, snap);
  same_answers(snap, other, d, probe2, sizeof probe2 / sizeof probe2[0], "copy of a copy");
  m = snap; /* the snapshot itself still answers for the program after its copies */
  a = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 1, &x[1]);
  CHECK(predict(&a) == FZ_ST_SUCCESS, "the snapshot's own x1 destroys (%#x)", predict(&a));
  m = keep;
  fz_model_destroy(snap);
  fz_model_destroy(other);
}

/* fz_model_output_rules_for: the rules a call's outputs must keep, as data (what emit_c writes
 * into its programs), and fz_model_commit() holding the outputs to them. */
static void test_output_rules(void) {
  fresh();
  al_handle d = device();
  al_handle x[2];
  create(FZ_OP_CREATE_ALLOCATIONS, d, 0, 2, false, x);
  uint64_t f = submit(d, 1, x, FZ_COMMAND_FILL);
  fz_model_output_rules r;
  fz_model_args s = list_args(FZ_OP_SUBMIT, d, 1, x + 1);
  fz_model_output_rules_for(m, &s, STATUS_SUCCESS, &r);
  CHECK(r.submit_fence && r.fence_submitted_before == f && r.completed_before == 0 && r.wait == FZ_MODEL_WAIT_NONE,
        "submit: fence above %llu", (unsigned long long)r.fence_submitted_before);
  fz_model_output_rules_for(m, &s, STATUS_INVALID_PARAMETER, &r);
  CHECK(!r.submit_fence && r.fence_submitted_before == f, "a failed submit hands out nothing");
  /* gpu_run: the deterministic engine runs min(count, queued); the last one's fence signalled */
  fz_model_args g = args(FZ_OP_GPU_RUN);
  g.count = 5;
  fz_model_output_rules_for(m, &g, STATUS_SUCCESS, &r);
  CHECK(r.check_gpu_completed && !r.gpu_threaded && r.gpu_completed == 1 && r.gpu_queued == 1 &&
            r.wait == FZ_MODEL_WAIT_GPU_RUN && r.wait_fence == f && r.wait_count == 5,
        "gpu_run: %u of %u, wait %d for %llu", r.gpu_completed, r.gpu_queued, (int)r.wait,
        (unsigned long long)r.wait_fence);
  CHECK(!commit_full(&g, STATUS_SUCCESS, 0, NULL, 0, 2, NULL) && strstr(msg, "completed 2 submissions, 1 were queued"),
        "gpu_run's count held to the rule: %s", msg);
  g.hostile = FZ_HOSTILE_NULL_ARGS;
  fz_model_output_rules_for(m, &g, STATUS_SUCCESS, &r);
  CHECK(!r.check_gpu_completed, "gpu_run without out_completed: no count to check");
  /* query: exact resource, owner and last fence; the size between the request and its pages */
  fz_model_args q = args(FZ_OP_QUERY);
  q.allocation = x[0];
  fz_model_output_rules_for(m, &q, STATUS_SUCCESS, &r);
  CHECK(r.check_query && r.resource == 0 && r.owner_device == d && r.last_fence == f && r.size_min == 4096 &&
            r.size_max == 4096 && r.size_page_rounded && r.align == 0 && r.segment_count == 2 &&
            r.segments[0].id == 1 && r.segments[0].possible && r.segments[1].id == 2 && r.segments[1].possible,
        "query rules");
  q.allocation = 0xdead;
  fz_model_output_rules_for(m, &q, STATUS_SUCCESS, &r);
  CHECK(!r.check_query, "a query of no live allocation has no rules");
  /* waits: fence_wait, a synchronous destroy, destroy_device */
  fz_model_args w = args(FZ_OP_FENCE_WAIT);
  w.fence = f;
  fz_model_output_rules_for(m, &w, STATUS_SUCCESS, &r);
  CHECK(r.wait == FZ_MODEL_WAIT_FENCE_WAIT && r.wait_fence == f, "fence_wait");
  fz_model_args del = list_args(FZ_OP_DESTROY_ALLOCATIONS, d, 2, x);
  fz_model_output_rules_for(m, &del, STATUS_SUCCESS, &r);
  CHECK(r.wait == FZ_MODEL_WAIT_NONE, "a destroy that is not synchronous waits for nothing");
  del.flags = AL_DESTROY_SYNCHRONOUS;
  fz_model_output_rules_for(m, &del, STATUS_SUCCESS, &r);
  CHECK(r.wait == FZ_MODEL_WAIT_SYNCHRONOUS_DESTROY && r.wait_fence == f, "synchronous destroy: fence %llu",
        (unsigned long long)r.wait_fence);
  fz_model_args dd = args(FZ_OP_DESTROY_DEVICE);
  dd.device = d;
  fz_model_output_rules_for(m, &dd, STATUS_SUCCESS, &r);
  CHECK(r.wait == FZ_MODEL_WAIT_DESTROY_DEVICE && r.wait_fence == f, "destroy_device");
  /* create_device with info: checked on failure as well */
  fz_model_args ci = args(FZ_OP_CREATE_DEVICE);
  ci.info = true;
  fz_model_output_rules_for(m, &ci, STATUS_NO_MEMORY, &r);
  CHECK(r.check_device_info && r.wait == FZ_MODEL_WAIT_NONE, "create_device with info");
  /* the completed fence observed is the lower bound of the next call */
  completed = f;
  CHECK(commit_full(&g, STATUS_SUCCESS, 0, NULL, 0, 0, NULL), "gpu_run: %s", msg);
  fz_model_output_rules_for(m, &w, STATUS_SUCCESS, &r);
  CHECK(r.completed_before == f, "completed_before %llu", (unsigned long long)r.completed_before);
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {
      {"status_sets", test_status_sets},
      {"literal_handles", test_literal_handles},
      {"create_rules", test_create_rules},
      {"destroy_rules", test_destroy_rules},
      {"deferred_and_fences", test_deferred_and_fences},
      {"threaded_engine", test_threaded_engine},
      {"commit_promises", test_commit_promises},
      {"stats_check", test_stats_check},
      {"memory_sets", test_memory_sets},
      {"removed_and_faults", test_removed_and_faults},
      {"reset", test_reset},
      {"capacity", test_capacity},
      {"long_lists", test_long_lists},
      {"copy", test_copy},
      {"align", test_align},
      {"device_info", test_device_info},
      {"snapshot", test_snapshot},
      {"output_rules", test_output_rules},
  };
  fz_model_config c = config();
  m = fz_model_create(&c);
  if (m == NULL) return 1;
  int ran = 0;
  for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++) {
    if (argc > 1 && strstr(tests[k].name, argv[1]) == NULL) continue;
    current = tests[k].name;
    int before = failures;
    tests[k].fn();
    fprintf(stderr, "%s %s\n", failures == before ? "PASS" : "FAIL", tests[k].name);
    ran++;
  }
  fz_model_destroy(m);
  fprintf(stderr, "%d tests, %d failures\n", ran, failures);
  return failures ? 1 : 0;
}
