/* op_driver.c — chunked, manually timed benchmark loops (op_driver.h). */
#include "op_driver.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static bool check(al_bench_state *state, const char *what, NTSTATUS status) {
  if (NT_SUCCESS(status)) return true;
  bench_fail_status(state, what, status);
  return false;
}

static void set_percentile_counters(al_bench_state *state, const bench_histogram *h) {
  static const struct {
    const char *name;
    double q;
  } points[] = {{"p50_ns", 50}, {"p90_ns", 90}, {"p99_ns", 99}, {"p999_ns", 99.9}, {"max_ns", 100}};
  for (size_t i = 0; i < sizeof points / sizeof points[0]; i++)
    al_bench_counter_set(state, points[i].name, (double)bench_histogram_percentile(h, points[i].q),
                         AL_BENCH_COUNTER_AVG_THREADS);
  al_bench_counter_set(state, "mean_ns", bench_histogram_mean(h), AL_BENCH_COUNTER_AVG_THREADS);
}

/* ---- ALLOCLAB_LATENCY_TRACE (op_driver.h) --------------------------------------------------- */

static FILE *trace_file; /* opened by the first latency run that traces; flushed after each run */
static uint64_t trace_runs;

/* Opens the trace once per process when ALLOCLAB_LATENCY_TRACE names a file. Returns false (the
 * run is ended with an error) when it cannot be written; *out is NULL when tracing is off. */
static bool trace_open(al_bench_state *state, FILE **out) {
  *out = NULL;
  const char *path = getenv("ALLOCLAB_LATENCY_TRACE");
  if (path == NULL || *path == '\0') return true;
  if (trace_file == NULL) {
    trace_file = fopen(path, "w");
    if (trace_file == NULL) {
      char message[512];
      snprintf(message, sizeof message, "ALLOCLAB_LATENCY_TRACE: cannot write '%s': %s", path, strerror(errno));
      al_bench_skip_with_error(state, message);
      return false;
    }
    fputs("# run\top\twall_ns\tthread_cpu_ns\tinvoluntary_switches\tvoluntary_switches\tcpu_changed\n",
          trace_file);
  }
  *out = trace_file;
  return true;
}

/* What the trace compares around one operation (read outside its timed window). */
typedef struct trace_sample {
  uint64_t cpu_ns;
  long involuntary, voluntary;
  int cpu;
} trace_sample;

static void trace_take(trace_sample *s) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  s->cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  s->involuntary = ru.ru_nivcsw;
  s->voluntary = ru.ru_nvcsw;
  s->cpu = sched_getcpu();
}

static void trace_write(FILE *f, uint64_t op, uint64_t wall_ns, const trace_sample *before,
                        const trace_sample *after) {
  fprintf(f, "%llu\t%llu\t%llu\t%llu\t%ld\t%ld\t%d\n", (unsigned long long)trace_runs,
          (unsigned long long)op, (unsigned long long)wall_ns,
          (unsigned long long)(after->cpu_ns - before->cpu_ns), after->involuntary - before->involuntary,
          after->voluntary - before->voluntary, after->cpu != before->cpu);
}

bool op_drive(al_bench_state *state, const op_driver *d, double percentile, op_result *out) {
  *out = (op_result){0};
  bench_histogram *h = NULL;
  FILE *trace = NULL;
  if (percentile >= 0) {
    if (!trace_open(state, &trace)) {
      int64_t ignored = 0;
      while (al_bench_keep_running_batch(state, &ignored)) {
      }
      return false;
    }
    if (trace) {
      fprintf(trace, "# run %llu: %s p%g\n", (unsigned long long)++trace_runs,
              d->trace_name ? d->trace_name : d->op_what, percentile);
    }
    h = malloc(sizeof *h);
    if (h == NULL) abort();
    bench_histogram_reset(h);
  }
  uint64_t traced_ops = 0;
  bool ok = true;
  int64_t batch = 0;
  while (ok && al_bench_keep_running_batch(state, &batch)) {
    uint64_t batch_ns = 0;
    if (h) bench_histogram_reset(h);
    for (int64_t done = 0; ok && done < batch;) {
      uint32_t count = batch - done < (int64_t)d->chunk ? (uint32_t)(batch - done) : d->chunk;
      if (d->prepare && !(ok = check(state, d->prepare_what, d->prepare(d->ctx, count)))) break;
      if (h) {
        for (uint32_t i = 0; ok && i < count; i++) {
          trace_sample before, after;
          if (trace) trace_take(&before);
          uint64_t t0 = bench_now_ns();
          NTSTATUS status = d->op(d->ctx, i);
          uint64_t t1 = bench_now_ns();
          if (trace) {
            trace_take(&after);
            trace_write(trace, traced_ops++, t1 - t0, &before, &after);
          }
          ok = check(state, d->op_what, status);
          bench_histogram_record(h, t1 - t0);
          batch_ns += t1 - t0;
        }
      } else {
        uint64_t t0 = bench_now_ns();
        NTSTATUS status = STATUS_SUCCESS;
        for (uint32_t i = 0; NT_SUCCESS(status) && i < count; i++) status = d->op(d->ctx, i);
        batch_ns += bench_now_ns() - t0;
        ok = check(state, d->op_what, status);
      }
      if (ok && d->finish) ok = check(state, d->finish_what, d->finish(d->ctx, count));
      done += count;
    }
    if (!ok) break;
    out->ops += (uint64_t)batch;
    out->timed_ns += batch_ns;
    double per_op = h ? (double)bench_histogram_percentile(h, percentile) : (double)batch_ns / (double)batch;
    out->reported_ns = per_op;
    al_bench_set_iteration_time(state, per_op * (double)batch * 1e-9);
  }
  if (ok && h) set_percentile_counters(state, h);
  if (trace) fflush(trace);
  free(h);
  return ok;
}
