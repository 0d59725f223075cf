/*
 * bench.h — the C API of alloclab's benchmarks: Google Benchmark (1.7.1) seen from C17.
 *
 * DOC: Overview
 * A benchmark is a C function `void fn(al_bench_state *state)` registered under a name. The
 * function prepares its fixture, runs the measured work in batches and tears the fixture down:
 *
 *     static void bm_create_destroy(al_bench_state *state) {
 *       fixture f;
 *       if (!fixture_init(&f, al_bench_range_arg(state, 0))) {
 *         al_bench_skip_with_error(state, "fixture_init failed");
 *         return;
 *       }
 *       int64_t n = 0;  // 0: let the shim choose the batch size
 *       while (al_bench_keep_running_batch(state, &n)) {
 *         for (int64_t i = 0; i < n; i++) do_the_work(&f);
 *       }
 *       al_bench_set_items_processed(state, al_bench_iteration_count(state));
 *       fixture_fini(&f);
 *     }
 *
 *     int main(int argc, char **argv) {
 *       al_bench_def *b = al_bench_register("BM_create_destroy", bm_create_destroy);
 *       al_bench_range(b, 1, 1024);
 *       al_bench_add_percentile_statistics(b);
 *       al_bench_add_context("miniport", "example");
 *       al_bench_add_default_context();
 *       return al_bench_main(argc, argv);
 *     }
 *
 * One C++ file (bench_shim.cc) maps all of this onto Google Benchmark: al_bench_def is a
 * benchmark::internal::Benchmark, al_bench_state wraps a benchmark::State, and the batch loop is
 * State::KeepRunningBatch (one call per batch, not one per iteration). A run that fails calls
 * al_bench_skip_with_error() and becomes Google Benchmark's SkipWithError: the report records the
 * message and the run's numbers are left out.
 *
 * Glossary: def = a registered benchmark (a Google Benchmark "family"); instance = one of the
 * benchmarks a def expands to (one per argument tuple and thread count); run = one execution of
 * an instance, which calls fn once per thread; batch = a block of iterations handed out by
 * al_bench_keep_running_batch(); repetition = one of the al_bench_repetitions() runs whose results
 * feed the statistics.
 *
 * Ownership: al_bench_register() returns a def that the shim owns; it stays valid until the
 * process exits and is never freed by the caller. Strings and arrays passed to any call are
 * borrowed for the duration of that call only (the shim copies what it keeps). al_bench_state is
 * owned by the shim and valid only inside the call of fn it was passed to.
 *
 * Threads: the registration calls (al_bench_register, the options taking an al_bench_def *,
 * al_bench_add_context, al_bench_add_default_context) and al_bench_main() belong to the main
 * thread, before al_bench_main() (they are not thread-safe). The state calls (taking an
 * al_bench_state *) may be called only from the benchmark function the state was passed to, on
 * the thread that runs it; a benchmark with al_bench_threads(n) runs fn on n threads at once,
 * each with its own state.
 *
 * Errors:
 *  - A registration option with an invalid value (a range with lo > hi, a thread count of 0,
 *    argument lists of different lengths, real time together with manual time, ...) is recorded
 *    against the def and otherwise ignored; al_bench_main() then prints every recorded error and
 *    returns AL_BENCH_MAIN_USAGE without running anything. Options given a NULL def do nothing
 *    and return NULL, so a failed al_bench_register() chains safely.
 *  - A state call used wrongly (a range index out of range, unknown counter flags, a negative
 *    iteration time, ...) turns the run into an error run, as al_bench_skip_with_error() would,
 *    with a message naming the call.
 *  - Out of host memory aborts the process.
 */
#ifndef ALLOCLAB_BENCH_BENCH_H
#define ALLOCLAB_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloclab/sanitizers.h"

#ifdef __cplusplus
extern "C" {
#define AL_BENCH_NOEXCEPT noexcept
#else
#define AL_BENCH_NOEXCEPT
#endif

/* A registered benchmark (owned by the shim). */
typedef struct al_bench_def al_bench_def;
/* The running benchmark, as seen by one thread (owned by the shim). */
typedef struct al_bench_state al_bench_state;

/* A benchmark function. It must either run al_bench_keep_running_batch() until it returns false,
 * or call al_bench_skip_with_error() and return; returning early without an error makes the run
 * an error run ("returned before al_bench_keep_running_batch() returned false"). */
typedef void al_bench_fn(al_bench_state *state);

/* A statistic over the @count values one measurement took across the repetitions of an instance
 * (its real time, its CPU time and each counter, in turn). @values is not sorted. */
typedef double al_bench_statistic_fn(const double *values, size_t count);

/* The unit times are reported in (Google Benchmark's TimeUnit). */
typedef enum al_bench_time_unit {
  AL_BENCH_NS = 0,
  AL_BENCH_US = 1,
  AL_BENCH_MS = 2,
  AL_BENCH_S = 3,
} al_bench_time_unit;

/* One argument's bounds, for al_bench_ranges(). */
typedef struct al_bench_bounds {
  int64_t lo;
  int64_t hi;
} al_bench_bounds;

/* ---- Registration (main thread, before al_bench_main) ---------------------------------------- */

/* Registers @fn under @name (copied). Instances are named as Google Benchmark names them:
 * name[/arg or argname:arg...][/min_time:S][/iterations:N][/repeats:N][/real_time|/manual_time]
 * [/threads:N].
 * Returns: the def, on which the options below chain; NULL when @name is NULL or empty or @fn is
 * NULL (recorded as a registration error). */
al_bench_def *al_bench_register(const char *name, al_bench_fn *fn) AL_BENCH_NOEXCEPT;

/* A pointer handed back by al_bench_user_data(state) in every run of @def (default NULL). */
al_bench_def *al_bench_with_user_data(al_bench_def *def, void *user_data) AL_BENCH_NOEXCEPT;

/* Arguments. Each call adds instances; all argument tuples of one def have the same length. */
/* One instance with the single argument @value (Arg). */
al_bench_def *al_bench_arg(al_bench_def *def, int64_t value) AL_BENCH_NOEXCEPT;
/* One instance with the @count arguments @values (Args); @count >= 1. */
al_bench_def *al_bench_args(al_bench_def *def, size_t count,
                            const int64_t *values) AL_BENCH_NOEXCEPT;
/* Instances for lo, the powers of 8 strictly between lo and hi, and hi (Range); lo <= hi. */
al_bench_def *al_bench_range(al_bench_def *def, int64_t lo, int64_t hi) AL_BENCH_NOEXCEPT;
/* The cartesian product of one al_bench_range() list per argument (Ranges); @count >= 1. */
al_bench_def *al_bench_ranges(al_bench_def *def, size_t count,
                              const al_bench_bounds *bounds) AL_BENCH_NOEXCEPT;
/* Instances for lo, lo+step, lo+2*step, ... while <= hi (DenseRange; hi itself only when the
 * steps land on it); lo <= hi, step >= 1. */
al_bench_def *al_bench_dense_range(al_bench_def *def, int64_t lo, int64_t hi,
                                   int step) AL_BENCH_NOEXCEPT;
/* Names the arguments (ArgNames): instance names show "name:value" instead of "value". @count
 * must equal the number of arguments per tuple. */
al_bench_def *al_bench_arg_names(al_bench_def *def, size_t count,
                                 const char *const *names) AL_BENCH_NOEXCEPT;

/* Threads. Each call adds thread counts; every argument tuple runs with every thread count.
 * A def with any thread count gets "/threads:N" in its instance names. */
/* Runs fn on @n threads at once (Threads); n >= 1. */
al_bench_def *al_bench_threads(al_bench_def *def, int n) AL_BENCH_NOEXCEPT;
/* lo, the powers of 2 between, and hi threads (ThreadRange); 1 <= lo <= hi. */
al_bench_def *al_bench_thread_range(al_bench_def *def, int lo, int hi) AL_BENCH_NOEXCEPT;

/* Measurement. */
/* Runs each instance @n times (Repetitions, overrides --benchmark_repetitions); n >= 1. With
 * n >= 2 the report adds the aggregates mean, median, stddev, cv and every statistic added with
 * al_bench_compute_statistics(). */
al_bench_def *al_bench_repetitions(al_bench_def *def, int n) AL_BENCH_NOEXCEPT;
/* Runs exactly @n iterations per run instead of estimating a count (Iterations); n >= 1; not
 * with al_bench_min_time(). */
al_bench_def *al_bench_iterations(al_bench_def *def, int64_t n) AL_BENCH_NOEXCEPT;
/* Runs until at least @seconds were measured (MinTime, overrides --benchmark_min_time);
 * seconds > 0; not with al_bench_iterations(). */
al_bench_def *al_bench_min_time(al_bench_def *def, double seconds) AL_BENCH_NOEXCEPT;
/* Measures wall-clock time instead of the main thread's CPU time (UseRealTime). Not with
 * al_bench_use_manual_time(). */
al_bench_def *al_bench_use_real_time(al_bench_def *def) AL_BENCH_NOEXCEPT;
/* Reports the time fn gives with al_bench_set_iteration_time() (UseManualTime). Not with
 * al_bench_use_real_time(). */
al_bench_def *al_bench_use_manual_time(al_bench_def *def) AL_BENCH_NOEXCEPT;
/* The unit of the reported times (Unit); the default is nanoseconds. */
al_bench_def *al_bench_unit(al_bench_def *def, al_bench_time_unit unit) AL_BENCH_NOEXCEPT;

/* Statistics (reported only with 2 or more repetitions). */
/* Adds the aggregate @name (copied; not mean, median, stddev or cv, and not twice on one def),
 * computed by @fn (ComputeStatistics). At most AL_BENCH_MAX_STATISTIC_FNS distinct functions
 * per process (the al_bench_stat_* helpers do not count). */
#define AL_BENCH_MAX_STATISTIC_FNS 16
al_bench_def *al_bench_compute_statistics(al_bench_def *def, const char *name,
                                          al_bench_statistic_fn *fn) AL_BENCH_NOEXCEPT;
/* Adds the aggregates p50, p90 and p99 (al_bench_stat_p50/p90/p99). */
al_bench_def *al_bench_add_percentile_statistics(al_bench_def *def) AL_BENCH_NOEXCEPT;

/* The @q-th percentile (0 <= q <= 100) of @count values, interpolated linearly between the two
 * closest ranks (numpy's default): rank = q/100 * (count-1) in the sorted values. Returns NaN
 * when @count is 0 or @q is out of range. @values is not modified. Callable from any thread. */
double al_bench_percentile(const double *values, size_t count, double q) AL_BENCH_NOEXCEPT;
/* al_bench_percentile() at 50, 90 and 99, as al_bench_statistic_fn. */
double al_bench_stat_p50(const double *values, size_t count) AL_BENCH_NOEXCEPT;
double al_bench_stat_p90(const double *values, size_t count) AL_BENCH_NOEXCEPT;
double al_bench_stat_p99(const double *values, size_t count) AL_BENCH_NOEXCEPT;

/* ---- Context (main thread, before al_bench_main) --------------------------------------------- */

/* Adds "key": "value" (both copied) to the report's context (AddCustomContext): the git commit,
 * the miniport, ... Keys Google Benchmark writes itself (date, host_name, executable, num_cpus,
 * mhz_per_cpu, cpu_scaling_enabled, caches, load_avg, library_build_type) are refused.
 * Returns: true when added; false when @key or @value is NULL, @key is empty, or the key is
 * already in the context (the first value stays). */
bool al_bench_add_context(const char *key, const char *value) AL_BENCH_NOEXCEPT;

/* What the build defines (BUILD passes them with -D; see bench/shim/BUILD.bazel). */
#ifndef AL_BENCH_BUILD_FLAGS
#define AL_BENCH_BUILD_FLAGS "unknown (built without AL_BENCH_BUILD_FLAGS)"
#endif
#ifndef AL_BENCH_ALLOCATOR
#define AL_BENCH_ALLOCATOR "unknown (built without AL_BENCH_ALLOCATOR)"
#endif
/* The allocator in use: a sanitizer's runtime replaces the one the build links. */
#if defined(AL_ASAN)
#define AL_BENCH_ALLOCATOR_IN_USE "AddressSanitizer's (replaces " AL_BENCH_ALLOCATOR ")"
#elif defined(AL_TSAN)
#define AL_BENCH_ALLOCATOR_IN_USE "ThreadSanitizer's (replaces " AL_BENCH_ALLOCATOR ")"
#elif defined(AL_MSAN)
#define AL_BENCH_ALLOCATOR_IN_USE "MemorySanitizer's (replaces " AL_BENCH_ALLOCATOR ")"
#endif
#ifndef AL_BENCH_ALLOCATOR_IN_USE
#define AL_BENCH_ALLOCATOR_IN_USE AL_BENCH_ALLOCATOR
#endif
#if defined(__clang__)
#define AL_BENCH_COMPILER __VERSION__
#elif defined(__GNUC__)
#define AL_BENCH_COMPILER "gcc " __VERSION__
#else
#define AL_BENCH_COMPILER "unknown compiler"
#endif

/* Adds the context keys "compiler" (the compiler of the file that calls this, from __VERSION__),
 * "build_flags" (AL_BENCH_BUILD_FLAGS) and "allocator" (AL_BENCH_ALLOCATOR_IN_USE). Inline, so
 * that it describes the benchmark's own translation unit. Returns: true when all three were
 * added. */
static inline bool al_bench_add_default_context(void) {
  bool ok = al_bench_add_context("compiler", AL_BENCH_COMPILER);
  ok = al_bench_add_context("build_flags", AL_BENCH_BUILD_FLAGS) && ok;
  ok = al_bench_add_context("allocator", AL_BENCH_ALLOCATOR_IN_USE) && ok;
  return ok;
}

/* ---- The run (from fn, on its own thread) ---------------------------------------------------- */

/* Hands out the next batch of iterations (KeepRunningBatch). On the first call *@inout_batch
 * chooses the batch size: 0 lets the shim choose (all of the run's iterations in one batch, the
 * cheapest loop), n >= 1 asks for batches of n (use 1 to pause the timer around per-iteration
 * setup). When it returns true, *@inout_batch holds the number of iterations to run now: all of
 * them are counted, the last batch included, so the run may overshoot its iteration target by up
 * to n-1. Returns false when the run is over (or failed); fn must then leave the loop. A timer
 * left paused by al_bench_pause_timing() is resumed first. The timer starts at the first call.
 * A NULL or negative *@inout_batch makes the run an error run. */
bool al_bench_keep_running_batch(al_bench_state *state, int64_t *inout_batch) AL_BENCH_NOEXCEPT;

/* Argument @index of this instance (State::range). An index beyond the def's arguments makes
 * the run an error run and returns 0. */
int64_t al_bench_range_arg(al_bench_state *state, size_t index) AL_BENCH_NOEXCEPT;
/* This thread's index in [0, al_bench_threads_count(state)). */
int al_bench_thread_index(const al_bench_state *state) AL_BENCH_NOEXCEPT;
/* How many threads run this instance at once. */
int al_bench_threads_count(const al_bench_state *state) AL_BENCH_NOEXCEPT;
/* The iterations this thread has been handed so far (all batches, in full). */
int64_t al_bench_iteration_count(const al_bench_state *state) AL_BENCH_NOEXCEPT;
/* The def's al_bench_with_user_data() pointer. */
void *al_bench_user_data(const al_bench_state *state) AL_BENCH_NOEXCEPT;

/* Stops / restarts this thread's timer inside the loop (PauseTiming / ResumeTiming). Outside the
 * loop, after an error, or when already paused (resumed), they do nothing. Heavyweight (two
 * clock reads and, with threads, a barrier): keep them out of tight loops. */
void al_bench_pause_timing(al_bench_state *state) AL_BENCH_NOEXCEPT;
void al_bench_resume_timing(al_bench_state *state) AL_BENCH_NOEXCEPT;

/* With al_bench_use_manual_time(): adds @seconds, the time the batch just run took, to the
 * run's manual time (SetIterationTime); call it once per batch. The reported time per iteration
 * is the sum over the batches divided by the iterations (with threads: the mean over threads).
 * Ignored without al_bench_use_manual_time(). A negative or non-finite value makes the run an
 * error run. */
void al_bench_set_iteration_time(al_bench_state *state, double seconds) AL_BENCH_NOEXCEPT;

/* Items / bytes this thread processed in the whole run; reported as items_per_second /
 * bytes_per_second (summed over threads, divided by the measured time). Call after the loop. */
void al_bench_set_items_processed(al_bench_state *state, int64_t items) AL_BENCH_NOEXCEPT;
void al_bench_set_bytes_processed(al_bench_state *state, int64_t bytes) AL_BENCH_NOEXCEPT;

/* Counter flags (Google Benchmark's Counter::Flags), combinable with |. The reported value is
 * the sum of the threads' values, then: RATE divides by the measured seconds; AVG_THREADS by the
 * thread count; ITERATION_INVARIANT multiplies by the iterations; AVG_ITERATIONS divides by the
 * iterations; INVERT takes 1/x last. */
#define AL_BENCH_COUNTER_RATE 0x1u
#define AL_BENCH_COUNTER_AVG_THREADS 0x2u
#define AL_BENCH_COUNTER_ITERATION_INVARIANT 0x4u
#define AL_BENCH_COUNTER_AVG_ITERATIONS 0x8u
#define AL_BENCH_COUNTER_INVERT 0x10u
#define AL_BENCH_COUNTER_FLAGS_ALL 0x1fu

/* Sets this thread's counter @name (copied; not NULL or empty) to @value with @flags
 * (AL_BENCH_COUNTER_*). Setting it again replaces the value. Unknown flag bits make the run an
 * error run. */
void al_bench_counter_set(al_bench_state *state, const char *name, double value,
                          uint32_t flags) AL_BENCH_NOEXCEPT;

/* Ends the run as an error with @msg (copied; NULL reads as "error") (SkipWithError): the
 * report records error_occurred and error_message, and keeps no times or counters for it. The
 * current batch is not interrupted: fn should leave its loop and return (the next
 * al_bench_keep_running_batch() returns false). With threads, the first message wins. */
void al_bench_skip_with_error(al_bench_state *state, const char *msg) AL_BENCH_NOEXCEPT;
/* Whether this run is an error run. */
bool al_bench_error_occurred(const al_bench_state *state) AL_BENCH_NOEXCEPT;

/* The label printed with the run's results (copied; NULL clears it) (SetLabel). With threads,
 * the last call wins. */
void al_bench_set_label(al_bench_state *state, const char *label) AL_BENCH_NOEXCEPT;

/* ---- Optimisation barriers (any thread) ------------------------------------------------------ */

/* Makes the compiler assume that the memory at @p, and every other escaped object, is read and
 * written here: the computation of what @p points to cannot be removed or moved across this call
 * (Google Benchmark's DoNotOptimize, applied to a pointer). Costs no instruction. */
static inline void al_bench_do_not_optimize(const void *p) {
  __asm__ volatile("" : : "r"(p) : "memory");
}

/* DoNotOptimize for a scalar lvalue (integer, pointer, floating point): the value is treated as
 * used and possibly modified. For larger objects pass their address to al_bench_do_not_optimize().
 * With clang the value may stay in a register ("+r,m", as Google Benchmark). With gcc it goes
 * through memory ("+m"): gcc 12 at -O0 miscompiles the two-alternative in/out constraint "+m,r"
 * that Google Benchmark 1.7.1 uses for gcc (a double reads back as garbage; shim_test checks). */
#if defined(__clang__)
#define AL_BENCH_DO_NOT_OPTIMIZE(lvalue) __asm__ volatile("" : "+r,m"(lvalue) : : "memory")
#else
#define AL_BENCH_DO_NOT_OPTIMIZE(lvalue) __asm__ volatile("" : "+m"(lvalue) : : "memory")
#endif

/* Forces pending writes to memory to be emitted before this point (ClobberMemory). */
static inline void al_bench_clobber_memory(void) { __asm__ volatile("" : : : "memory"); }

/* ---- Main ------------------------------------------------------------------------------------ */

#define AL_BENCH_MAIN_OK 0         /* every selected benchmark ran */
#define AL_BENCH_MAIN_USAGE 1      /* bad flag, registration error, or nothing matched */
#define AL_BENCH_MAIN_RUN_FAILED 2 /* at least one run ended as an error run */

/* Initialises Google Benchmark from the command line (its --benchmark_* flags; --help lists
 * them; in 1.7.1 --benchmark_min_time takes plain seconds), refuses any other argument with
 * "<argv0>: error: unrecognized command-line flag: <arg>" on stderr, reports the registration
 * errors, runs the selected benchmarks and shuts Google Benchmark down. Call it once, from main.
 * @argv may be rearranged (recognised flags are removed).
 * Returns: AL_BENCH_MAIN_OK, AL_BENCH_MAIN_USAGE or AL_BENCH_MAIN_RUN_FAILED, usable as the
 * process exit status. */
int al_bench_main(int argc, char **argv) AL_BENCH_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_BENCH_BENCH_H */
