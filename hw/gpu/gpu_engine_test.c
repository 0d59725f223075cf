/* gpu_engine_test.c — command streams, fences, faults, determinism, threaded mode. */
#include "alloclab/hw/gpu_engine.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "al_test.h"
#include "gpu_test_fixture.h"

#define KIB UINT64_C(1024)
#define MIB (UINT64_C(1024) * KIB)
#define PAGE GPU_PAGE_SIZE

/* A mapped, committed region of the fixture: VRAM [0, 4 MiB) at VA 1 GiB (owner 1). */
#define REGION_VA (UINT64_C(1) << 30)
#define REGION_SIZE (4 * MIB)

static bool map_region(gpu_fixture *f) {
  return gpu_segment_commit(f->mem, 0, REGION_SIZE, 1) == STATUS_SUCCESS &&
         gpu_as_map(f->as, REGION_VA, f->mem, 0, REGION_SIZE, 0) == STATUS_SUCCESS;
}

static void unmap_region(gpu_fixture *f) {
  expect_status(gpu_as_unmap(f->as, REGION_VA, REGION_SIZE), STATUS_SUCCESS, "unmap region");
}

struct completion_log {
  pthread_mutex_t lock;
  uint64_t count;
  uint64_t last_fence;
  bool out_of_order;
  uint64_t fences[512];
  NTSTATUS statuses[512];
};

static void log_completion(void *ctx, uint64_t fence, NTSTATUS status) {
  struct completion_log *log = ctx;
  pthread_mutex_lock(&log->lock);
  if (fence <= log->last_fence) log->out_of_order = true;
  log->last_fence = fence;
  if (log->count < 512) {
    log->fences[log->count] = fence;
    log->statuses[log->count] = status;
  }
  log->count++;
  pthread_mutex_unlock(&log->lock);
}

static NTSTATUS submit(gpu_fixture *f, const void *cmds, size_t bytes, uint64_t fence,
                       void *readback, size_t readback_bytes, struct completion_log *log) {
  gpu_submission s = {
      .as = f->as,
      .commands = cmds,
      .command_bytes = bytes,
      .fence = fence,
      .readback = readback,
      .readback_bytes = readback_bytes,
      .callback = log != NULL ? log_completion : NULL,
      .callback_ctx = log,
  };
  return gpu_engine_submit(f->engine, &s);
}

static NTSTATUS fence_status(gpu_fixture *f, uint64_t fence) {
  NTSTATUS st = STATUS_SUCCESS;
  if (!gpu_engine_fence_status(f->engine, fence, &st)) return (NTSTATUS)0x7FFFFFFF;
  return st;
}

TEST(test_fill_copy_readback) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  assert_true(map_region(&f), "region");
  uint8_t cmds[256];
  size_t n = 0;
  n += gpu_cmd_fill(cmds + n, REGION_VA + 10, 3 * PAGE, 0xA1B2C3D4u);
  n += gpu_cmd_copy(cmds + n, REGION_VA + 10, REGION_VA + 2 * MIB + 1, 3 * PAGE);
  n += gpu_cmd_nop(cmds + n, 5);
  n += gpu_cmd_readback(cmds + n, REGION_VA + 2 * MIB + 1, 3 * PAGE, 7);
  uint8_t *rb = calloc(1, 3 * PAGE + 7);
  struct completion_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  assert_status(submit(&f, cmds, n, 1, rb, 3 * PAGE + 7, &log), STATUS_SUCCESS, "submit");
  expect_u64_eq(gpu_engine_completed_fence(f.engine), 0, "nothing runs before gpu_engine_run");
  expect_u64_eq(log.count, 0, "no callback yet");
  expect_u64_eq(gpu_engine_run(f.engine, 10), 1, "one submission ran");
  expect_u64_eq(gpu_engine_completed_fence(f.engine), 1, "fence completed");
  expect_u64_eq(log.count, 1, "callback ran");
  expect_status(log.statuses[0], STATUS_SUCCESS, "status");
  expect_status(fence_status(&f, 1), STATUS_SUCCESS, "history");
  bool ok = true;
  for (uint64_t k = 0; k < 3 * PAGE && ok; k++) {
    uint8_t want = (uint8_t)(0xA1B2C3D4u >> (8 * (k % 4)));
    ok = rb[7 + k] == want;
  }
  expect_true(ok, "readback shows the filled, copied pattern");
  expect_true(rb[0] == 0 && rb[6] == 0, "readback bytes before the offset untouched");
  gpu_engine_stats st;
  gpu_engine_get_stats(f.engine, &st);
  expect_u64_eq(st.commands, 4, "four records executed");
  expect_u64_eq(st.succeeded, 1, "succeeded");
  free(rb);
  unmap_region(&f);
  gpu_fixture_fini(&f);
}

TEST(test_run_is_bounded_and_ordered) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  assert_true(map_region(&f), "region");
  struct completion_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  uint8_t cmd[GPU_CMD_FILL_BYTES];
  gpu_cmd_fill(cmd, REGION_VA, 64, 1);
  for (uint64_t fence = 10; fence <= 50; fence += 10) {
    assert_status(submit(&f, cmd, sizeof cmd, fence, NULL, 0, &log), STATUS_SUCCESS, "submit");
  }
  expect_status(submit(&f, cmd, sizeof cmd, 50, NULL, 0, &log), STATUS_INVALID_PARAMETER,
                "fence must increase");
  expect_status(submit(&f, cmd, sizeof cmd, 0, NULL, 0, &log), STATUS_INVALID_PARAMETER,
                "fence 0");
  expect_u64_eq(gpu_engine_run(f.engine, 2), 2, "run(2) runs two");
  expect_u64_eq(gpu_engine_completed_fence(f.engine), 20, "fences 10, 20");
  expect_status(gpu_engine_wait_fence(f.engine, 30, 1000), STATUS_TIMEOUT,
                "deterministic mode never waits");
  gpu_engine_wait_idle(f.engine);
  expect_u64_eq(gpu_engine_completed_fence(f.engine), 50, "wait_idle ran the rest");
  expect_status(gpu_engine_wait_fence(f.engine, 30, 0), STATUS_SUCCESS, "reached");
  expect_false(log.out_of_order, "callbacks in fence order");
  expect_u64_eq(log.count, 5, "every callback once");
  expect_false(gpu_engine_fence_status(f.engine, 60, NULL), "not submitted");
  unmap_region(&f);
  gpu_fixture_fini(&f);
}

TEST(test_fault_completes_fence) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  assert_true(map_region(&f), "region");
  uint8_t cmds[128];
  size_t n = gpu_cmd_fill(cmds, REGION_VA, 16, 0x11111111u);
  /* Runs off the end of the mapping: 8 bytes fit, the rest faults. */
  n += gpu_cmd_fill(cmds + n, REGION_VA + REGION_SIZE - 8, 16, 0x22222222u);
  n += gpu_cmd_fill(cmds + n, REGION_VA + 64, 16, 0x33333333u); /* never runs */
  struct completion_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  assert_status(submit(&f, cmds, n, 1, NULL, 0, &log), STATUS_SUCCESS, "submit");
  uint8_t ok_cmd[GPU_CMD_FILL_BYTES];
  gpu_cmd_fill(ok_cmd, REGION_VA + 128, 4, 0x44444444u);
  assert_status(submit(&f, ok_cmd, sizeof ok_cmd, 2, NULL, 0, &log), STATUS_SUCCESS, "submit 2");
  expect_u64_eq(gpu_engine_run(f.engine, 1), 1, "run the faulting submission alone");
  expect_u64_eq(gpu_engine_completed_fence(f.engine), 1, "a faulted submission completes");
  gpu_engine_wait_idle(f.engine);
  expect_u64_eq(gpu_engine_completed_fence(f.engine), 2, "both fences completed");
  expect_status(log.statuses[0], GPU_STATUS_PAGE_FAULT, "first faulted");
  expect_status(log.statuses[1], STATUS_SUCCESS, "the engine is not wedged");
  gpu_fault fault;
  assert_u64_eq(gpu_mmu_fault_log(f.mmu, &fault, 1), 1, "fault logged");
  expect_u64_eq(fault.kind, GPU_FAULT_UNMAPPED, "kind");
  expect_u64_eq(fault.va, REGION_VA + REGION_SIZE, "first unmapped byte");
  expect_u64_eq(fault.as_id, gpu_as_id(f.as), "address space");
  uint32_t words[3];
  assert_status(gpu_as_read(f.as, REGION_VA, &words[0], 4), STATUS_SUCCESS, "r");
  assert_status(gpu_as_read(f.as, REGION_VA + REGION_SIZE - 4, &words[1], 4), STATUS_SUCCESS, "r");
  assert_status(gpu_as_read(f.as, REGION_VA + 64, &words[2], 4), STATUS_SUCCESS, "r");
  expect_u64_eq(words[0], 0x11111111u, "command before the fault ran");
  expect_u64_eq(words[1], 0x22222222u, "faulting command's part before the fault ran");
  expect_u64_ne(words[2], 0x33333333u, "command after the fault did not run");
  gpu_engine_stats st;
  gpu_engine_get_stats(f.engine, &st);
  expect_u64_eq(st.faulted, 1, "faulted count");
  unmap_region(&f);
  gpu_fixture_fini(&f);
}

/* Use after free: the driver releases an allocation's pages while queued work still reads
 * them through a live mapping. */
TEST(test_queued_work_on_released_pages_faults) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_64K, GPU_ENGINE_DETERMINISTIC), "fixture");
  assert_status(gpu_segment_commit(f.mem, 1 * MIB, 256 * KIB, 0xA110C), STATUS_SUCCESS, "c");
  assert_status(gpu_as_map(f.as, REGION_VA, f.mem, 1 * MIB, 256 * KIB, 0), STATUS_SUCCESS, "m");
  uint8_t cmd[GPU_CMD_READBACK_BYTES];
  uint8_t rb[64];
  gpu_cmd_readback(cmd, REGION_VA + 200 * KIB, sizeof rb, 0);
  assert_status(submit(&f, cmd, sizeof cmd, 1, rb, sizeof rb, NULL), STATUS_SUCCESS, "submit");
  assert_status(gpu_segment_release(f.mem, 1 * MIB, 256 * KIB), STATUS_SUCCESS, "early release");
  gpu_engine_wait_idle(f.engine);
  expect_status(fence_status(&f, 1), GPU_STATUS_PAGE_FAULT, "the GPU faulted");
  gpu_fault fault;
  assert_u64_eq(gpu_mmu_fault_log(f.mmu, &fault, 1), 1, "fault logged");
  expect_u64_eq(fault.kind, GPU_FAULT_FREED_PAGE, "freed page");
  expect_u64_eq(fault.last_owner, 0xA110C, "names the allocation");
  expect_u64_eq(fault.phys, 1 * MIB + 200 * KIB, "physical offset");
  assert_status(gpu_as_unmap(f.as, REGION_VA, 256 * KIB), STATUS_SUCCESS, "unmap");
  gpu_fixture_fini(&f);
}

/* ---- Hostile command streams ---------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

TEST(test_malformed_records_refused) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  assert_true(map_region(&f), "region");
  uint8_t rb[32];
  struct {
    uint8_t bytes[64];
    size_t len;
    const char *why;
  } cases[12];
  size_t nc = 0;
#define CASE(why_) (cases[nc].why = (why_), memset(cases[nc].bytes, 0, 64), cases[nc].bytes)
  uint8_t *p;
  p = CASE("unknown opcode");
  put32(p, 9), put32(p + 4, 0), cases[nc++].len = 8;
  p = CASE("header truncated");
  put32(p, GPU_CMD_NOP), cases[nc++].len = 6;
  p = CASE("length overruns the stream");
  put32(p, GPU_CMD_NOP), put32(p + 4, 100), cases[nc++].len = 16;
  p = CASE("length 0xFFFFFFFF");
  put32(p, GPU_CMD_NOP), put32(p + 4, 0xFFFFFFFFu), cases[nc++].len = 16;
  p = CASE("FILL with a short payload");
  put32(p, GPU_CMD_FILL), put32(p + 4, 16), cases[nc++].len = 24;
  p = CASE("COPY with a long payload");
  put32(p, GPU_CMD_COPY), put32(p + 4, 28), cases[nc++].len = 36;
  p = CASE("FILL larger than GPU_CMD_MAX_BYTES");
  gpu_cmd_fill(p, REGION_VA, GPU_CMD_MAX_BYTES + 1, 0), cases[nc++].len = GPU_CMD_FILL_BYTES;
  p = CASE("FILL whose end overflows");
  gpu_cmd_fill(p, UINT64_MAX - 3, 16, 0), cases[nc++].len = GPU_CMD_FILL_BYTES;
  p = CASE("overlapping COPY");
  gpu_cmd_copy(p, REGION_VA, REGION_VA + 8, 16), cases[nc++].len = GPU_CMD_COPY_BYTES;
  p = CASE("READBACK past the buffer");
  gpu_cmd_readback(p, REGION_VA, 16, 20), cases[nc++].len = GPU_CMD_READBACK_BYTES;
  p = CASE("READBACK offset overflow");
  gpu_cmd_readback(p, REGION_VA, 16, UINT64_MAX - 4), cases[nc++].len = GPU_CMD_READBACK_BYTES;
  p = CASE("valid FILL then garbage");
  gpu_cmd_fill(p, REGION_VA, 4, 0x55555555u), put64(p + GPU_CMD_FILL_BYTES, 7);
  cases[nc++].len = GPU_CMD_FILL_BYTES + 5;
#undef CASE
  for (size_t i = 0; i < nc; i++) {
    expect_status(gpu_cmd_validate(cases[i].bytes, cases[i].len, sizeof rb, NULL),
                  GPU_STATUS_INVALID_COMMAND, "validate: %s", cases[i].why);
    assert_status(submit(&f, cases[i].bytes, cases[i].len, i + 1, rb, sizeof rb, NULL),
                  STATUS_SUCCESS, "submit: %s", cases[i].why);
  }
  gpu_engine_wait_idle(f.engine);
  for (size_t i = 0; i < nc; i++) {
    expect_status(fence_status(&f, i + 1), GPU_STATUS_INVALID_COMMAND, "%s", cases[i].why);
  }
  uint32_t word = 0;
  assert_status(gpu_as_read(f.as, REGION_VA, &word, 4), STATUS_SUCCESS, "read");
  expect_u64_ne(word, 0x55555555u, "a stream with a bad record runs none of it");
  expect_u64_eq(gpu_mmu_fault_total(f.mmu), 0, "invalid streams touch no memory");
  unmap_region(&f);
  gpu_fixture_fini(&f);
}

/* Every prefix of a valid stream: prefixes ending on a record boundary are valid and run
 * those records; all others are refused whole. */
TEST(test_every_truncation) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  assert_true(map_region(&f), "region");
  uint8_t stream[256];
  size_t bounds[8], nb = 0, n = 0;
  bounds[nb++] = 0;
  n += gpu_cmd_nop(stream + n, 3), bounds[nb++] = n;
  n += gpu_cmd_fill(stream + n, REGION_VA, 64, 0xC0FFEE00u), bounds[nb++] = n;
  n += gpu_cmd_copy(stream + n, REGION_VA, REGION_VA + PAGE, 64), bounds[nb++] = n;
  n += gpu_cmd_readback(stream + n, REGION_VA + PAGE, 64, 0), bounds[nb++] = n;
  uint8_t rb[64];
  for (size_t len = 0; len <= n; len++) {
    /* Reset the two areas the stream writes. */
    assert_status(gpu_as_fill(f.as, REGION_VA, 2 * PAGE, 0), STATUS_SUCCESS, "reset");
    memset(rb, 0x5A, sizeof rb);
    size_t records = 0;
    for (size_t b = 0; b < nb; b++) {
      if (bounds[b] == len) records = b + 1;
    }
    bool valid = records != 0;
    expect_status(gpu_cmd_validate(stream, len, sizeof rb, NULL),
                  valid ? STATUS_SUCCESS : GPU_STATUS_INVALID_COMMAND, "validate len %zu", len);
    assert_status(submit(&f, stream, len, len + 1, rb, sizeof rb, NULL), STATUS_SUCCESS, "s");
    expect_u64_eq(gpu_engine_run(f.engine, 1), 1, "ran len %zu", len);
    expect_status(fence_status(&f, len + 1), valid ? STATUS_SUCCESS : GPU_STATUS_INVALID_COMMAND,
                  "status of prefix %zu", len);
    uint32_t filled = 0, copied = 0;
    gpu_as_read(f.as, REGION_VA, &filled, 4);
    gpu_as_read(f.as, REGION_VA + PAGE, &copied, 4);
    size_t ran = valid ? records - 1 : 0; /* records executed */
    expect_u64_eq(filled, ran >= 2 ? 0xC0FFEE00u : 0, "len %zu: FILL effect", len);
    expect_u64_eq(copied, ran >= 3 ? 0xC0FFEE00u : 0, "len %zu: COPY effect", len);
    expect_u64_eq(rb[3], ran >= 4 ? 0xC0 : 0x5A, "len %zu: READBACK effect", len);
  }
  expect_u64_eq(gpu_mmu_fault_total(f.mmu), 0, "no fault");
  unmap_region(&f);
  gpu_fixture_fini(&f);
}

/* Random bytes, biased toward plausible headers: never a crash, every fence completes, and the
 * status agrees with gpu_cmd_validate(). */
TEST(test_random_streams) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  assert_true(map_region(&f), "region");
  uint64_t seed = al_test_seed();
  uint8_t stream[200], rb[128];
  uint64_t counts[3] = {0};
  const int rounds = 3000;
  for (int round = 1; round <= rounds; round++) {
    uint64_t r = gpu_test_rand(&seed);
    size_t len = 0;
    if (r % 4 == 0) {
      /* Pure noise. */
      len = (r >> 8) % sizeof stream;
      for (size_t i = 0; i < len; i++) stream[i] = (uint8_t)gpu_test_rand(&seed);
    } else {
      /* Plausible records with random fields, then maybe a few flipped bytes or a cut. */
      for (int k = 0; k < 6; k++) {
        uint64_t q = gpu_test_rand(&seed), w = gpu_test_rand(&seed);
        uint32_t op = (uint32_t)(q % 9 < 8 ? q % 4 : 4 + q % 100);
        static const uint32_t lengths[] = {0, 20, 24, 24};
        uint32_t plen = op < 4 ? lengths[op] : (uint32_t)(q >> 8) % 32;
        if ((q >> 16) % 16 == 0) plen = (uint32_t)(q >> 20) % 40;
        if (len + 8 + plen > sizeof stream) break;
        put32(stream + len, op);
        put32(stream + len + 4, plen);
        for (uint32_t i = 0; i < plen; i++) stream[len + 8 + i] = (uint8_t)(w >> (i % 8 * 8));
        uint64_t va = (q >> 24) % 8 == 0 ? w : REGION_VA + (w >> 7) % (REGION_SIZE + MIB);
        uint64_t size = (q >> 28) % 16 == 0 ? w >> 3 : (w >> 13) % 600;
        if (plen >= 8) put64(stream + len + 8, va);
        if (plen >= 16) put64(stream + len + 16, op == GPU_CMD_COPY ? va + 4096 : size);
        if (plen >= 24) put64(stream + len + 24, op == GPU_CMD_COPY ? size : (w >> 40) % 160);
        len += 8 + plen;
      }
      if (r % 4 == 2) {
        for (int k = 0; k < 3 && len > 0; k++) stream[gpu_test_rand(&seed) % len] ^= 0xFF;
      } else if (r % 4 == 3 && len > 0) {
        len = gpu_test_rand(&seed) % len;
      }
    }
    NTSTATUS want_valid = gpu_cmd_validate(stream, len, sizeof rb, NULL);
    assert_status(submit(&f, stream, len, (uint64_t)round, rb, sizeof rb, NULL), STATUS_SUCCESS,
                  "submit round %d", round);
    gpu_engine_run(f.engine, 1);
    NTSTATUS st = fence_status(&f, (uint64_t)round);
    if (want_valid != STATUS_SUCCESS) {
      expect_status(st, GPU_STATUS_INVALID_COMMAND, "round %d: refused", round);
      counts[0]++;
    } else if (st == STATUS_SUCCESS) {
      counts[1]++;
    } else {
      expect_status(st, GPU_STATUS_PAGE_FAULT, "round %d: valid stream ran or faulted", round);
      counts[2]++;
    }
  }
  expect_u64_eq(gpu_engine_completed_fence(f.engine), rounds, "every fence completed");
  expect_u64_gt(counts[0], 0, "some streams were invalid");
  expect_u64_gt(counts[1], 0, "some ran");
  expect_u64_gt(counts[2], 0, "some faulted");
  unmap_region(&f);
  gpu_fixture_fini(&f);
}

TEST(test_submit_refusals) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  gpu_mmu *other_mmu = NULL;
  gpu_as *foreign = NULL;
  assert_status(gpu_mmu_create(NULL, &other_mmu), STATUS_SUCCESS, "mmu");
  assert_status(gpu_as_create(other_mmu, &foreign), STATUS_SUCCESS, "as");
  gpu_submission s = {.as = foreign, .fence = 1};
  expect_status(gpu_engine_submit(f.engine, &s), STATUS_INVALID_PARAMETER, "foreign AS");
  s.as = NULL;
  expect_status(gpu_engine_submit(f.engine, &s), STATUS_INVALID_PARAMETER, "NULL AS");
  s.as = f.as;
  s.command_bytes = 8;
  expect_status(gpu_engine_submit(f.engine, &s), STATUS_INVALID_PARAMETER, "NULL commands");
  s.command_bytes = GPU_ENGINE_MAX_STREAM_BYTES + 1;
  s.commands = &s;
  expect_status(gpu_engine_submit(f.engine, &s), STATUS_INVALID_PARAMETER, "stream too large");
  s.commands = NULL;
  s.command_bytes = 0;
  s.readback_bytes = 4;
  expect_status(gpu_engine_submit(f.engine, &s), STATUS_INVALID_PARAMETER, "NULL readback");
  s.readback_bytes = 0;
  expect_status(gpu_engine_submit(f.engine, &s), STATUS_SUCCESS, "empty stream");
  expect_u64_eq(gpu_as_pins(f.as), 1, "queued work pins the AS");
  gpu_engine_wait_idle(f.engine);
  expect_status(fence_status(&f, 1), STATUS_SUCCESS, "empty stream succeeds");
  expect_u64_eq(gpu_as_pins(f.as), 0, "unpinned on completion");
  gpu_engine *bad = NULL;
  expect_status(gpu_engine_create(f.mmu, (gpu_engine_mode)7, &bad), STATUS_INVALID_PARAMETER,
                "mode");
  gpu_as_destroy(foreign);
  gpu_mmu_destroy(other_mmu);
  gpu_fixture_fini(&f);
}

struct resubmit_ctx {
  gpu_fixture *f;
  int remaining;
  uint64_t next_fence;
  NTSTATUS nested_run;
};

static void resubmit(void *p, uint64_t fence, NTSTATUS status) {
  (void)fence;
  (void)status;
  struct resubmit_ctx *c = p;
  c->nested_run = (NTSTATUS)gpu_engine_run(c->f->engine, 10); /* refused: 0 */
  if (c->remaining-- <= 0) return;
  gpu_submission s = {.as = c->f->as, .fence = c->next_fence++, .callback = resubmit,
                      .callback_ctx = c};
  (void)gpu_engine_submit(c->f->engine, &s);
}

TEST(test_callback_may_submit) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  struct resubmit_ctx c = {.f = &f, .remaining = 5, .next_fence = 2, .nested_run = -1};
  gpu_submission s = {.as = f.as, .fence = 1, .callback = resubmit, .callback_ctx = &c};
  assert_status(gpu_engine_submit(f.engine, &s), STATUS_SUCCESS, "submit");
  expect_u64_eq(gpu_engine_run(f.engine, 100), 6, "follow-ups run in the same run");
  expect_u64_eq(gpu_engine_completed_fence(f.engine), 6, "fences 1..6");
  expect_u64_eq((uint64_t)c.nested_run, 0, "a nested run is refused");
  gpu_fixture_fini(&f);
}

TEST(test_destroy_cancels_queued_work) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_DETERMINISTIC), "fixture");
  struct completion_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  for (uint64_t fence = 1; fence <= 3; fence++) {
    assert_status(submit(&f, NULL, 0, fence, NULL, 0, &log), STATUS_SUCCESS, "submit");
  }
  gpu_engine_run(f.engine, 1);
  gpu_engine_destroy(f.engine);
  f.engine = NULL;
  expect_u64_eq(log.count, 3, "every callback ran once");
  expect_status(log.statuses[0], STATUS_SUCCESS, "ran");
  expect_status(log.statuses[1], STATUS_DEVICE_REMOVED, "cancelled");
  expect_status(log.statuses[2], STATUS_DEVICE_REMOVED, "cancelled");
  expect_u64_eq(gpu_as_pins(f.as), 0, "cancelled work unpinned the AS");
  gpu_fixture_fini(&f);
}

/* ---- Determinism ---------------------------------------------------------------------------- */

struct run_result {
  uint8_t readback[64 * 1024];
  NTSTATUS statuses[64];
  gpu_fault faults[GPU_MMU_FAULT_LOG_SIZE];
  size_t nfaults;
  uint64_t total_faults;
};

/* A scripted session from @seed: maps, releases (use after free), fills, copies, readbacks. */
static void scripted_run(uint64_t seed, struct run_result *out) {
  memset(out, 0, sizeof *out);
  gpu_fixture f;
  if (!gpu_fixture_init(&f, GPU_SEGMENT_PAGE_64K, GPU_ENGINE_DETERMINISTIC)) {
    expect_true(false, "fixture");
    return;
  }
  const uint64_t va = 1ull << 32;
  gpu_segment_commit(f.mem, 0, 8 * MIB, 100);
  gpu_as_map(f.as, va, f.mem, 0, 8 * MIB, 0);
  for (uint64_t sub = 1; sub <= 64; sub++) {
    uint8_t cmds[GPU_CMD_COPY_BYTES * 8];
    size_t n = 0;
    for (int k = 0; k < 8; k++) {
      uint64_t r = gpu_test_rand(&seed);
      uint64_t a = va + (r % (9 * MIB)), size = (r >> 24) % (64 * KIB);
      switch ((r >> 60) % 3) {
      case 0: n += gpu_cmd_fill(cmds + n, a, size, (uint32_t)(r >> 8)); break;
      case 1: n += gpu_cmd_copy(cmds + n, a, va + ((r >> 4) % (8 * MIB)) + 2 * MIB, size % 4096);
        break;
      default:
        n += gpu_cmd_readback(cmds + n, a, size % 1024, (r >> 12) % (63 * 1024));
        break;
      }
    }
    gpu_submission s = {.as = f.as, .commands = cmds, .command_bytes = n, .fence = sub,
                        .readback = out->readback, .readback_bytes = sizeof out->readback};
    gpu_engine_submit(f.engine, &s);
    if (sub % 16 == 0) {
      uint64_t page = (gpu_test_rand(&seed) % 128) * 64 * KIB;
      gpu_segment_release(f.mem, page, 64 * KIB); /* a page freed under a live mapping */
    }
    if (sub % 5 == 0) gpu_engine_run(f.engine, 3);
  }
  gpu_engine_wait_idle(f.engine);
  for (uint64_t sub = 1; sub <= 64; sub++) {
    gpu_engine_fence_status(f.engine, sub, &out->statuses[sub - 1]);
  }
  out->nfaults = gpu_mmu_fault_log(f.mmu, out->faults, GPU_MMU_FAULT_LOG_SIZE);
  out->total_faults = gpu_mmu_fault_total(f.mmu);
  gpu_as_unmap(f.as, va, 8 * MIB);
  gpu_fixture_fini(&f);
}

TEST(test_deterministic_runs_repeat) {
  uint64_t seed = al_test_seed();
  struct run_result *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  assert_true(a && b, "buffers");
  scripted_run(seed, a);
  scripted_run(seed, b);
  expect_u64_gt(a->total_faults, 0, "the script faults (freed pages, unmapped tail)");
  expect_u64_eq(a->total_faults, b->total_faults, "same number of faults");
  expect_u64_eq(a->nfaults, b->nfaults, "same fault log length");
  expect_true(memcmp(a->faults, b->faults, a->nfaults * sizeof a->faults[0]) == 0,
              "identical fault logs");
  expect_true(memcmp(a->statuses, b->statuses, sizeof a->statuses) == 0, "identical statuses");
  expect_true(memcmp(a->readback, b->readback, sizeof a->readback) == 0, "identical readback");
  bool some_ok = false, some_fault = false;
  for (int i = 0; i < 64; i++) {
    some_ok |= a->statuses[i] == STATUS_SUCCESS;
    some_fault |= a->statuses[i] == GPU_STATUS_PAGE_FAULT;
  }
  expect_true(some_ok && some_fault, "the script covers both outcomes");
  free(a);
  free(b);
}

/* ---- Threaded mode (TSan) ------------------------------------------------------------------- */

struct mapper_arg {
  gpu_fixture *f;
  int errors;
};

static void *mapper_thread(void *p) {
  struct mapper_arg *a = p;
  for (int i = 0; i < 300; i++) {
    uint64_t va = (UINT64_C(8) << 30) + (uint64_t)(i % 5) * 2 * MIB;
    if (gpu_as_map(a->f->as, va, a->f->mem, 8 * MIB, 2 * MIB, 0) != STATUS_SUCCESS) a->errors++;
    uint32_t x = 0;
    if (gpu_as_read(a->f->as, va, &x, 4) != STATUS_SUCCESS) a->errors++;
    if (gpu_as_unmap(a->f->as, va, 2 * MIB) != STATUS_SUCCESS) a->errors++;
  }
  return NULL;
}

TEST(test_threaded_engine) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_THREADED), "fixture");
  assert_true(map_region(&f), "region");
  assert_status(gpu_segment_commit(f.mem, 8 * MIB, 2 * MIB, 2), STATUS_SUCCESS, "commit");
  struct mapper_arg ma = {.f = &f};
  pthread_t mapper;
  assert_true(pthread_create(&mapper, NULL, mapper_thread, &ma) == 0, "mapper");
  enum { SUBS = 200 };
  static uint32_t rb[SUBS];
  struct completion_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  for (uint32_t i = 0; i < SUBS; i++) {
    uint8_t cmds[GPU_CMD_FILL_BYTES + GPU_CMD_COPY_BYTES + GPU_CMD_READBACK_BYTES];
    size_t n = gpu_cmd_fill(cmds, REGION_VA + i * 16, 16, 0x1000u + i);
    n += gpu_cmd_copy(cmds + n, REGION_VA + i * 16, REGION_VA + 2 * MIB + i * 16, 16);
    n += gpu_cmd_readback(cmds + n, REGION_VA + 2 * MIB + i * 16 + 4, 4, 0);
    assert_status(submit(&f, cmds, n, i + 1, &rb[i], 4, &log), STATUS_SUCCESS, "submit %u", i);
  }
  expect_status(gpu_engine_wait_fence(f.engine, SUBS / 2, 10000), STATUS_SUCCESS, "half");
  gpu_engine_wait_idle(f.engine);
  pthread_join(mapper, NULL);
  expect_u64_eq(ma.errors, 0, "mapper thread");
  expect_u64_eq(gpu_engine_completed_fence(f.engine), SUBS, "all fences");
  pthread_mutex_lock(&log.lock);
  expect_u64_eq(log.count, SUBS, "every callback");
  expect_false(log.out_of_order, "in order");
  pthread_mutex_unlock(&log.lock);
  bool ok = true;
  for (uint32_t i = 0; i < SUBS && ok; i++) ok = rb[i] == 0x1000u + i;
  expect_true(ok, "every readback holds its submission's pattern");
  expect_u64_eq(gpu_mmu_fault_total(f.mmu), 0, "no fault");
  expect_status(gpu_engine_wait_fence(f.engine, SUBS + 1, 10), STATUS_TIMEOUT, "future fence");
  expect_u64_eq(gpu_engine_run(f.engine, 1), 0, "run is for deterministic mode");
  unmap_region(&f);
  gpu_fixture_fini(&f);
}

TEST(test_threaded_destroy_with_queue) {
  gpu_fixture f;
  assert_true(gpu_fixture_init(&f, GPU_SEGMENT_PAGE_4K, GPU_ENGINE_THREADED), "fixture");
  assert_true(map_region(&f), "region");
  struct completion_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  uint8_t cmd[GPU_CMD_FILL_BYTES];
  gpu_cmd_fill(cmd, REGION_VA, 256 * KIB, 3);
  for (uint64_t fence = 1; fence <= 100; fence++) {
    assert_status(submit(&f, cmd, sizeof cmd, fence, NULL, 0, &log), STATUS_SUCCESS, "submit");
  }
  gpu_engine_destroy(f.engine); /* joins the thread, cancels the rest */
  f.engine = NULL;
  expect_u64_eq(log.count, 100, "every submission completed exactly once");
  expect_false(log.out_of_order, "in order");
  for (uint64_t i = 0; i < 100; i++) {
    if (log.statuses[i] != STATUS_SUCCESS && log.statuses[i] != STATUS_DEVICE_REMOVED) {
      expect_true(false, "submission %" PRIu64 ": unexpected status", i + 1);
    }
  }
  expect_u64_eq(gpu_as_pins(f.as), 0, "no pin left");
  unmap_region(&f);
  gpu_fixture_fini(&f);
}

RUN_TESTS(T(test_fill_copy_readback), T(test_run_is_bounded_and_ordered),
          T(test_fault_completes_fence), T(test_queued_work_on_released_pages_faults),
          T(test_malformed_records_refused), T(test_every_truncation), T(test_random_streams),
          T(test_submit_refusals), T(test_callback_may_submit),
          T(test_destroy_cancels_queued_work), T(test_deterministic_runs_repeat),
          T(test_threaded_engine), T(test_threaded_destroy_with_queue))
