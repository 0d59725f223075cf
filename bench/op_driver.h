/*
 * op_driver.h — runs a benchmark's measured operation in chunks: set up a chunk of subjects
 * (untimed), run the operation on each (timed), clean up (untimed), and report through manual
 * time either the mean time per operation or one percentile of the operations' latencies.
 *
 * DOC: Reporting tail latency
 * compare.py compares times, not counters, so a percentile is reported as a time: a
 * latency benchmark (BM_<op>_latency_p50, _p99, _p999) times each operation on its own,
 * records it in a bench_histogram (one per run), and sets the run's manual time to
 * iterations x that percentile, so the reported time per iteration IS the percentile. All the
 * percentiles of the run (p50_ns, p90_ns, p99_ns, p999_ns, max_ns, mean_ns) are also set as
 * counters on each, for a reader of one report. The latency benchmarks use chunks of one, so
 * every measured operation directly follows its own setup (no bimodal "first after a burst of
 * setup" population in the tail). The percentile comes from the run Google
 * Benchmark keeps (the last one, sized to reach --benchmark_min_time of percentile time); with
 * repetitions, the usual aggregates are taken over the runs' percentiles.
 *
 * DOC: Tracing each operation (ALLOCLAB_LATENCY_TRACE)
 * To tell a tail the port makes from one the host makes, set ALLOCLAB_LATENCY_TRACE=FILE: every
 * latency run then also writes one line per timed operation to FILE (created or truncated at
 * the first latency run of the process; tab-separated; '#' lines are the column names and one
 * header per run, "# run K: <trace_name> p<percentile>"):
 *   run, op (0-based in the run), wall_ns (the time the histogram records),
 *   thread_cpu_ns (CLOCK_THREAD_CPUTIME_ID over the same operation plus one clock read),
 *   involuntary_switches, voluntary_switches (getrusage(RUSAGE_THREAD) deltas: the thread was
 *   preempted / blocked during the operation), cpu_changed (1: it ran on another CPU after).
 * The extra reads happen outside the two CLOCK_MONOTONIC reads that time the operation, so the
 * recorded wall time is the same measurement as without the trace. Every run is written,
 * Google Benchmark's sizing runs included. A FILE that cannot be written ends the run with the
 * error "ALLOCLAB_LATENCY_TRACE: cannot write 'FILE': <reason>". Latency runs are one thread.
 */
#ifndef ALLOCLAB_BENCH_OP_DRIVER_H
#define ALLOCLAB_BENCH_OP_DRIVER_H

#include "bench_fixture.h"
#include "histogram.h"

typedef struct op_driver {
  void *ctx;
  uint32_t chunk; /* subjects prepared at once (>= 1) */
  /* Untimed: make @count subjects ready (NULL: none needed). */
  NTSTATUS (*prepare)(void *ctx, uint32_t count);
  /* Timed: the operation on subject @index (< count). */
  NTSTATUS (*op)(void *ctx, uint32_t index);
  /* Untimed: clean up after the chunk's operations (NULL: nothing). */
  NTSTATUS (*finish)(void *ctx, uint32_t count);
  const char *prepare_what, *op_what, *finish_what; /* for error messages */
  const char *trace_name; /* latency runs: names the run in ALLOCLAB_LATENCY_TRACE (NULL: op_what) */
} op_driver;

/* What one run measured. */
typedef struct op_result {
  uint64_t ops;       /* operations timed */
  uint64_t timed_ns;  /* their total time */
  double reported_ns; /* the time per operation reported (mean or the percentile) */
} op_result;

/* Runs the benchmark loop (auto batches) with @d. @percentile < 0: reports the mean (operations
 * of a chunk timed as one block); else times each operation and reports that percentile (0..100)
 * of the run, with the percentile counters (see above). Returns false when the run failed (the
 * error is recorded; the caller cleans up and returns). */
bool op_drive(al_bench_state *state, const op_driver *d, double percentile, op_result *out);

#endif /* ALLOCLAB_BENCH_OP_DRIVER_H */
