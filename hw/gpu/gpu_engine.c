/*
 * gpu_engine.c — command engine of the simulated GPU (contract in gpu_engine.h).
 *
 * State: a FIFO of jobs (each a private copy of one submission) under @lock; @busy is true
 * while a job executes or a deterministic run is in progress; @work_cv wakes the engine
 * thread, @idle_cv wakes gpu_engine_wait_idle() and gpu_engine_wait_fence(). Executing a job
 * takes no engine lock; completing it takes @lock to publish the fence and status, then calls
 * the callback unlocked.
 */
#include "alloclab/hw/gpu_engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloclab/host_alloc.h"

#define ENGINE_BOUNCE_BYTES ((size_t)64 << 10)

struct gpu_job {
  struct gpu_job *next;
  gpu_as *as;
  uint64_t fence;
  void *readback;
  size_t readback_bytes;
  gpu_engine_callback callback;
  void *callback_ctx;
  size_t command_bytes;
  uint8_t commands[]; /* the copied stream */
};

struct gpu_history {
  uint64_t fence;
  NTSTATUS status;
};

struct gpu_engine {
  gpu_mmu *mmu;
  gpu_engine_mode mode;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t lock;
  pthread_cond_t work_cv;
  pthread_cond_t idle_cv;
  /* Protected by @lock. */
  struct gpu_job *head, *tail;
  bool busy;
  bool stop;
  uint64_t last_submitted_fence;
  uint64_t completed_fence;
  gpu_engine_stats st;
  struct gpu_history history[GPU_ENGINE_HISTORY];
  /* Used only by the one executing job: ENGINE_BOUNCE_BYTES, malloc'd by the first COPY (most
   * engines never copy; an engine per adapter then costs ~6 KiB instead of ~70 KiB zeroed). */
  uint8_t *bounce;
};

/* ---- Command stream ------------------------------------------------------------------------- */

static uint32_t load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_le64(const uint8_t *p) {
  return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}

static void store_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void store_le64(uint8_t *p, uint64_t v) {
  store_le32(p, (uint32_t)v);
  store_le32(p + 4, (uint32_t)(v >> 32));
}

size_t gpu_cmd_nop(void *out, uint32_t payload_bytes) {
  uint8_t *p = out;
  store_le32(p, GPU_CMD_NOP);
  store_le32(p + 4, payload_bytes);
  memset(p + 8, 0, payload_bytes);
  return GPU_CMD_HEADER_BYTES + (size_t)payload_bytes;
}

size_t gpu_cmd_fill(void *out, uint64_t va, uint64_t size, uint32_t pattern) {
  uint8_t *p = out;
  store_le32(p, GPU_CMD_FILL);
  store_le32(p + 4, GPU_CMD_FILL_PAYLOAD);
  store_le64(p + 8, va);
  store_le64(p + 16, size);
  store_le32(p + 24, pattern);
  return GPU_CMD_FILL_BYTES;
}

size_t gpu_cmd_copy(void *out, uint64_t src_va, uint64_t dst_va, uint64_t size) {
  uint8_t *p = out;
  store_le32(p, GPU_CMD_COPY);
  store_le32(p + 4, GPU_CMD_COPY_PAYLOAD);
  store_le64(p + 8, src_va);
  store_le64(p + 16, dst_va);
  store_le64(p + 24, size);
  return GPU_CMD_COPY_BYTES;
}

size_t gpu_cmd_readback(void *out, uint64_t va, uint64_t size, uint64_t offset) {
  uint8_t *p = out;
  store_le32(p, GPU_CMD_READBACK);
  store_le32(p + 4, GPU_CMD_READBACK_PAYLOAD);
  store_le64(p + 8, va);
  store_le64(p + 16, size);
  store_le64(p + 24, offset);
  return GPU_CMD_READBACK_BYTES;
}

/* One decoded record. */
struct gpu_cmd {
  uint32_t opcode;
  uint64_t a, b, c; /* FILL: va, size, pattern; COPY: src, dst, size; READBACK: va, size, off */
};

/* Decodes the record at @*pos and advances it; false when the record is invalid. */
static bool cmd_next(const uint8_t *s, size_t bytes, size_t *pos, size_t readback_bytes,
                     struct gpu_cmd *out) {
  size_t left = bytes - *pos;
  if (left < GPU_CMD_HEADER_BYTES) return false;
  const uint8_t *p = s + *pos;
  uint32_t opcode = load_le32(p);
  uint32_t length = load_le32(p + 4);
  if (length > left - GPU_CMD_HEADER_BYTES) return false;
  const uint8_t *pl = p + GPU_CMD_HEADER_BYTES;
  out->opcode = opcode;
  switch (opcode) {
  case GPU_CMD_NOP:
    break;
  case GPU_CMD_FILL:
    if (length != GPU_CMD_FILL_PAYLOAD) return false;
    out->a = load_le64(pl);
    out->b = load_le64(pl + 8);
    out->c = load_le32(pl + 16);
    if (out->b > GPU_CMD_MAX_BYTES || out->a > UINT64_MAX - out->b) return false;
    break;
  case GPU_CMD_COPY:
    if (length != GPU_CMD_COPY_PAYLOAD) return false;
    out->a = load_le64(pl);
    out->b = load_le64(pl + 8);
    out->c = load_le64(pl + 16);
    if (out->c > GPU_CMD_MAX_BYTES || out->a > UINT64_MAX - out->c ||
        out->b > UINT64_MAX - out->c) {
      return false;
    }
    if (out->c > 0 && out->a < out->b + out->c && out->b < out->a + out->c) return false;
    break;
  case GPU_CMD_READBACK:
    if (length != GPU_CMD_READBACK_PAYLOAD) return false;
    out->a = load_le64(pl);
    out->b = load_le64(pl + 8);
    out->c = load_le64(pl + 16);
    if (out->b > GPU_CMD_MAX_BYTES || out->a > UINT64_MAX - out->b) return false;
    if (out->c > readback_bytes || out->b > readback_bytes - out->c) return false;
    break;
  default:
    return false;
  }
  *pos += GPU_CMD_HEADER_BYTES + (size_t)length;
  return true;
}

NTSTATUS gpu_cmd_validate(const void *stream, size_t bytes, size_t readback_bytes,
                          size_t *out_records) {
  if (stream == NULL && bytes > 0) return GPU_STATUS_INVALID_COMMAND;
  size_t pos = 0, records = 0;
  struct gpu_cmd cmd;
  while (pos < bytes) {
    if (!cmd_next(stream, bytes, &pos, readback_bytes, &cmd)) return GPU_STATUS_INVALID_COMMAND;
    records++;
  }
  if (out_records != NULL) *out_records = records;
  return STATUS_SUCCESS;
}

/* ---- Execution ------------------------------------------------------------------------------ */

static NTSTATUS engine_copy(gpu_engine *e, gpu_as *as, uint64_t src, uint64_t dst,
                            uint64_t size) {
  if (e->bounce == NULL) e->bounce = al_host_malloc(ENGINE_BOUNCE_BYTES);
  /* Out of host memory: the same copy in smaller steps (a COPY does not fail for it). */
  uint8_t small[1024];
  uint8_t *bounce = e->bounce ? e->bounce : small;
  uint64_t step = e->bounce ? ENGINE_BOUNCE_BYTES : sizeof small;
  for (uint64_t done = 0; done < size;) {
    uint64_t n = size - done < step ? size - done : step;
    NTSTATUS st = gpu_as_read(as, src + done, bounce, n);
    if (NT_SUCCESS(st)) st = gpu_as_write(as, dst + done, bounce, n);
    if (!NT_SUCCESS(st)) return st;
    done += n;
  }
  return STATUS_SUCCESS;
}

/* Runs one job; returns its status and counts executed records in @out_commands. */
static NTSTATUS engine_execute(gpu_engine *e, struct gpu_job *job, uint64_t *out_commands) {
  NTSTATUS st = gpu_cmd_validate(job->commands, job->command_bytes, job->readback_bytes, NULL);
  if (!NT_SUCCESS(st)) return st;
  size_t pos = 0;
  struct gpu_cmd cmd;
  while (pos < job->command_bytes) {
    (void)cmd_next(job->commands, job->command_bytes, &pos, job->readback_bytes, &cmd);
    switch (cmd.opcode) {
    case GPU_CMD_FILL:
      st = gpu_as_fill(job->as, cmd.a, cmd.b, (uint32_t)cmd.c);
      break;
    case GPU_CMD_COPY:
      st = engine_copy(e, job->as, cmd.a, cmd.b, cmd.c);
      break;
    case GPU_CMD_READBACK:
      st = gpu_as_read(job->as, cmd.a, (uint8_t *)job->readback + cmd.c, cmd.b);
      break;
    default: /* GPU_CMD_NOP */
      break;
    }
    if (!NT_SUCCESS(st)) return st;
    (*out_commands)++;
  }
  return STATUS_SUCCESS;
}

/* Publishes @job's completion, runs its callback, frees it. Called without @lock. */
static void engine_complete(gpu_engine *e, struct gpu_job *job, NTSTATUS status,
                            uint64_t commands) {
  pthread_mutex_lock(&e->lock);
  e->completed_fence = job->fence;
  e->history[e->st.completed % GPU_ENGINE_HISTORY] = (struct gpu_history){job->fence, status};
  e->st.completed++;
  e->st.commands += commands;
  if (status == STATUS_SUCCESS) {
    e->st.succeeded++;
  } else if (status == GPU_STATUS_PAGE_FAULT) {
    e->st.faulted++;
  } else if (status == STATUS_DEVICE_REMOVED) {
    e->st.cancelled++;
  } else {
    e->st.invalid++;
  }
  pthread_cond_broadcast(&e->idle_cv);
  pthread_mutex_unlock(&e->lock);
  gpu_as_unpin(job->as);
  if (job->callback != NULL) job->callback(job->callback_ctx, job->fence, status);
  free(job);
}

static struct gpu_job *engine_pop_locked(gpu_engine *e) {
  struct gpu_job *job = e->head;
  if (job != NULL) {
    e->head = job->next;
    if (e->head == NULL) e->tail = NULL;
  }
  return job;
}

static void engine_run_job(gpu_engine *e, struct gpu_job *job) {
  uint64_t commands = 0;
  NTSTATUS st = engine_execute(e, job, &commands);
  engine_complete(e, job, st, commands);
}

static void *engine_thread(void *arg) {
  gpu_engine *e = arg;
  pthread_mutex_lock(&e->lock);
  for (;;) {
    while (!e->stop && e->head == NULL) pthread_cond_wait(&e->work_cv, &e->lock);
    if (e->stop) break;
    struct gpu_job *job = engine_pop_locked(e);
    e->busy = true;
    pthread_mutex_unlock(&e->lock);
    engine_run_job(e, job);
    pthread_mutex_lock(&e->lock);
    e->busy = false;
    pthread_cond_broadcast(&e->idle_cv);
  }
  pthread_mutex_unlock(&e->lock);
  return NULL;
}

/* ---- Public API ----------------------------------------------------------------------------- */

NTSTATUS gpu_engine_create(gpu_mmu *mmu, gpu_engine_mode mode, gpu_engine **out_engine) {
  if (mmu == NULL || out_engine == NULL ||
      (mode != GPU_ENGINE_DETERMINISTIC && mode != GPU_ENGINE_THREADED)) {
    return STATUS_INVALID_PARAMETER;
  }
  gpu_engine *e = al_host_calloc(1, sizeof *e);
  if (e == NULL) return STATUS_NO_MEMORY;
  e->mmu = mmu;
  e->mode = mode;
  if (pthread_mutex_init(&e->lock, NULL) != 0) goto fail_mutex;
  if (pthread_cond_init(&e->work_cv, NULL) != 0) goto fail_work;
  if (pthread_cond_init(&e->idle_cv, NULL) != 0) goto fail_idle;
  if (mode == GPU_ENGINE_THREADED) {
    if (pthread_create(&e->thread, NULL, engine_thread, e) != 0) goto fail_thread;
    e->thread_started = true;
  }
  *out_engine = e;
  return STATUS_SUCCESS;
fail_thread:
  pthread_cond_destroy(&e->idle_cv);
fail_idle:
  pthread_cond_destroy(&e->work_cv);
fail_work:
  pthread_mutex_destroy(&e->lock);
fail_mutex:
  free(e);
  return STATUS_NO_MEMORY;
}

void gpu_engine_destroy(gpu_engine *e) {
  if (e == NULL) return;
  pthread_mutex_lock(&e->lock);
  e->stop = true;
  pthread_cond_broadcast(&e->work_cv);
  pthread_mutex_unlock(&e->lock);
  if (e->thread_started) pthread_join(e->thread, NULL);
  for (;;) {
    pthread_mutex_lock(&e->lock);
    struct gpu_job *job = engine_pop_locked(e);
    pthread_mutex_unlock(&e->lock);
    if (job == NULL) break;
    engine_complete(e, job, STATUS_DEVICE_REMOVED, 0);
  }
  pthread_cond_destroy(&e->idle_cv);
  pthread_cond_destroy(&e->work_cv);
  pthread_mutex_destroy(&e->lock);
  free(e->bounce);
  free(e);
}

NTSTATUS gpu_engine_submit(gpu_engine *e, const gpu_submission *sub) {
  if (e == NULL || sub == NULL || sub->as == NULL || gpu_as_mmu(sub->as) != e->mmu ||
      (sub->commands == NULL && sub->command_bytes > 0) ||
      (sub->readback == NULL && sub->readback_bytes > 0) ||
      sub->command_bytes > GPU_ENGINE_MAX_STREAM_BYTES || sub->fence == 0) {
    return STATUS_INVALID_PARAMETER;
  }
  struct gpu_job *job = al_host_malloc(sizeof *job + sub->command_bytes);
  if (job == NULL) return STATUS_NO_MEMORY;
  *job = (struct gpu_job){
      .as = sub->as,
      .fence = sub->fence,
      .readback = sub->readback,
      .readback_bytes = sub->readback_bytes,
      .callback = sub->callback,
      .callback_ctx = sub->callback_ctx,
      .command_bytes = sub->command_bytes,
  };
  if (sub->command_bytes > 0) memcpy(job->commands, sub->commands, sub->command_bytes);
  pthread_mutex_lock(&e->lock);
  NTSTATUS st = STATUS_SUCCESS;
  if (e->stop) {
    st = STATUS_DEVICE_REMOVED;
  } else if (sub->fence <= e->last_submitted_fence) {
    st = STATUS_INVALID_PARAMETER;
  } else {
    gpu_as_pin(sub->as);
    e->last_submitted_fence = sub->fence;
    e->st.submitted++;
    if (e->tail != NULL) {
      e->tail->next = job;
    } else {
      e->head = job;
    }
    e->tail = job;
    pthread_cond_signal(&e->work_cv);
  }
  pthread_mutex_unlock(&e->lock);
  if (!NT_SUCCESS(st)) free(job);
  return st;
}

size_t gpu_engine_run(gpu_engine *e, size_t max_submissions) {
  if (e == NULL || e->mode != GPU_ENGINE_DETERMINISTIC) return 0;
  pthread_mutex_lock(&e->lock);
  if (e->busy) {
    pthread_mutex_unlock(&e->lock);
    return 0;
  }
  e->busy = true;
  size_t ran = 0;
  while (ran < max_submissions && !e->stop) {
    struct gpu_job *job = engine_pop_locked(e);
    if (job == NULL) break;
    pthread_mutex_unlock(&e->lock);
    engine_run_job(e, job);
    ran++;
    pthread_mutex_lock(&e->lock);
  }
  e->busy = false;
  pthread_cond_broadcast(&e->idle_cv);
  pthread_mutex_unlock(&e->lock);
  return ran;
}

void gpu_engine_wait_idle(gpu_engine *e) {
  if (e == NULL) return;
  if (e->mode == GPU_ENGINE_DETERMINISTIC) {
    (void)gpu_engine_run(e, SIZE_MAX);
    return;
  }
  pthread_mutex_lock(&e->lock);
  while ((e->head != NULL || e->busy) && !e->stop) pthread_cond_wait(&e->idle_cv, &e->lock);
  pthread_mutex_unlock(&e->lock);
}

NTSTATUS gpu_engine_wait_fence(gpu_engine *e, uint64_t fence, uint32_t timeout_ms) {
  if (e == NULL) return STATUS_INVALID_PARAMETER;
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000u;
  deadline.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&e->lock);
  while (e->completed_fence < fence && e->mode == GPU_ENGINE_THREADED && !e->stop) {
    if (pthread_cond_timedwait(&e->idle_cv, &e->lock, &deadline) == ETIMEDOUT) break;
  }
  NTSTATUS st = e->completed_fence >= fence ? STATUS_SUCCESS : STATUS_TIMEOUT;
  pthread_mutex_unlock(&e->lock);
  return st;
}

/* The queries below serve, in a fuzz target, only the sim's hardware walk (an oracle, after
 * every GPU call): under libFuzzer they are not instrumented, so that the oracle's reads (the
 * history scan's trip count grows with the submissions) give the fuzzer no features of their
 * own to steer by. ASan and UBSan still check them. */
#if defined(__clang__)
#define ENGINE_UNTRACED __attribute__((no_sanitize("coverage")))
#else
#define ENGINE_UNTRACED
#endif

ENGINE_UNTRACED uint64_t gpu_engine_completed_fence(gpu_engine *e) {
  pthread_mutex_lock(&e->lock);
  uint64_t f = e->completed_fence;
  pthread_mutex_unlock(&e->lock);
  return f;
}

ENGINE_UNTRACED bool gpu_engine_fence_status(gpu_engine *e, uint64_t fence, NTSTATUS *out_status) {
  if (e == NULL || fence == 0) return false;
  pthread_mutex_lock(&e->lock);
  /* The ring holds the last min(completed, GPU_ENGINE_HISTORY) completions, slot i the
   * (i mod GPU_ENGINE_HISTORY)-th; a linear scan of at most GPU_ENGINE_HISTORY entries. */
  uint64_t kept = e->st.completed < GPU_ENGINE_HISTORY ? e->st.completed : GPU_ENGINE_HISTORY;
  bool found = false;
  for (uint64_t i = 0; i < kept && !found; i++) {
    const struct gpu_history *h = &e->history[i];
    if (h->fence != fence) continue;
    found = true;
    if (out_status != NULL) *out_status = h->status;
  }
  pthread_mutex_unlock(&e->lock);
  return found;
}

ENGINE_UNTRACED void gpu_engine_get_stats(gpu_engine *e, gpu_engine_stats *out) {
  if (out == NULL) return;
  memset(out, 0, sizeof *out);
  if (e == NULL) return;
  pthread_mutex_lock(&e->lock);
  *out = e->st;
  out->queued = e->st.submitted - e->st.completed;
  out->last_submitted_fence = e->last_submitted_fence;
  out->completed_fence = e->completed_fence;
  pthread_mutex_unlock(&e->lock);
}
