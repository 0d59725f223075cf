/* op_driver.c — chunked, manually timed benchmark loops (op_driver.h). */
#include "op_driver.h"

#include <stdlib.h>

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

bool op_drive(al_bench_state *state, const op_driver *d, double percentile, op_result *out) {
  *out = (op_result){0};
  bench_histogram *h = NULL;
  if (percentile >= 0) {
    h = malloc(sizeof *h);
    if (h == NULL) abort();
    bench_histogram_reset(h);
  }
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
          uint64_t t0 = bench_now_ns();
          NTSTATUS status = d->op(d->ctx, i);
          uint64_t t1 = bench_now_ns();
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
  free(h);
  return ok;
}
