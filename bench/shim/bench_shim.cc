// bench_shim.cc — maps the C API of alloclab/bench/bench.h onto Google Benchmark 1.7.1.
//
// The only C++ file of the shim. Every registration option is validated here first, with the
// preconditions Google Benchmark would otherwise enforce by aborting (BM_CHECK), and recorded as
// a registration error that al_bench_main() reports. Every state call guards the preconditions
// of benchmark::State (PauseTiming after SkipWithError aborts, a second FinishKeepRunning aborts,
// ...) so that misuse from C becomes an error run, never a crash.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "alloclab/bench/bench.h"

struct al_bench_def {
  std::string name;
  al_bench_fn *fn = nullptr;
  void *user_data = nullptr;
  benchmark::internal::Benchmark *bm = nullptr;  // owned by Google Benchmark
  int arg_count = -1;  // as Benchmark::ArgsCnt(): -1 until arguments or names are given
  bool has_args = false;
  bool has_arg_names = false;
  bool use_real_time = false;
  bool use_manual_time = false;
  bool has_min_time = false;
  bool has_iterations = false;
  std::set<std::string> statistics;
};

struct al_bench_state {
  benchmark::State *st;
  const al_bench_def *def;
  bool started;     // al_bench_keep_running_batch() was called
  bool finished;    // ... and returned false
  bool paused;      // the timer is paused by al_bench_pause_timing()
  bool auto_batch;  // the first call asked for batch 0
};

namespace {

struct Registry {
  std::vector<std::unique_ptr<al_bench_def>> defs;
  std::vector<std::string> errors;
  std::set<std::string> context_keys;
  al_bench_statistic_fn *stat_fns[AL_BENCH_MAX_STATISTIC_FNS] = {};
};

Registry &registry() {
  static Registry *r = new Registry();  // never destroyed: defs outlive Google Benchmark's use
  return *r;
}

std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// Records a registration error against @def; returns false.
bool reject(const al_bench_def *def, const std::string &what) {
  registry().errors.push_back("al_bench: " + (def ? def->name : std::string("?")) + ": " + what);
  return false;
}

// Arguments: the tuple length of @def must be @count (or not set yet).
bool check_arg_count(al_bench_def *def, const char *call, size_t count) {
  if (count == 0) return reject(def, format("%s: no arguments", call));
  if (def->arg_count != -1 && static_cast<size_t>(def->arg_count) != count)
    return reject(def, format("%s: %zu argument(s), but the benchmark's other argument lists "
                              "have %d",
                              call, count, def->arg_count));
  return true;
}

void set_args(al_bench_def *def, size_t count) {
  def->arg_count = static_cast<int>(count);
  def->has_args = true;
}

// Makes the run an error run (once: Google Benchmark wants SkipWithError at most once).
void fail(al_bench_state *s, const std::string &msg) {
  if (!s->st->error_occurred()) s->st->SkipWithError(msg.c_str());
}

// ---- Statistics
// ---------------------------------------------------------------------------------- Google
// Benchmark takes a plain `double (*)(const std::vector<double>&)` with no user pointer, so each
// distinct C function gets one of AL_BENCH_MAX_STATISTIC_FNS slots, each with its own trampoline.

template <size_t I>
double stat_trampoline(const std::vector<double> &v) {
  return registry().stat_fns[I](v.data(), v.size());
}

template <size_t... I>
constexpr std::array<benchmark::StatisticsFunc *, sizeof...(I)> make_trampolines(
    std::index_sequence<I...>) {
  return {{&stat_trampoline<I>...}};
}

constexpr auto kTrampolines =
    make_trampolines(std::make_index_sequence<AL_BENCH_MAX_STATISTIC_FNS>());

// Returns the trampoline calling @fn, or nullptr when every slot is taken.
benchmark::StatisticsFunc *trampoline_for(al_bench_statistic_fn *fn) {
  Registry &r = registry();
  for (size_t i = 0; i < AL_BENCH_MAX_STATISTIC_FNS; i++) {
    if (r.stat_fns[i] == fn) return kTrampolines[i];
    if (r.stat_fns[i] == nullptr) {
      r.stat_fns[i] = fn;
      return kTrampolines[i];
    }
  }
  return nullptr;
}

double p50(const std::vector<double> &v) { return al_bench_stat_p50(v.data(), v.size()); }
double p90(const std::vector<double> &v) { return al_bench_stat_p90(v.data(), v.size()); }
double p99(const std::vector<double> &v) { return al_bench_stat_p99(v.data(), v.size()); }

bool add_statistic(al_bench_def *def, const char *name, benchmark::StatisticsFunc *fn) {
  static const char *const kBuiltIn[] = {"mean", "median", "stddev", "cv"};
  for (const char *b : kBuiltIn)
    if (std::strcmp(name, b) == 0)
      return reject(def,
                    format("al_bench_compute_statistics: \"%s\" is a built-in aggregate", name));
  if (!def->statistics.insert(name).second)
    return reject(def, format("al_bench_compute_statistics: \"%s\" added twice", name));
  def->bm->ComputeStatistics(name, fn);
  return true;
}

// ---- The run ------------------------------------------------------------------------------------

void run(const al_bench_def *def, benchmark::State &st) {
  al_bench_state s = {&st, def, false, false, false, false};
  def->fn(&s);
  if (!s.finished) {
    // Returned inside the loop or before it. Google Benchmark would abort ("Benchmark returned
    // before State::KeepRunning() returned false!") and, with threads, the other threads would
    // wait forever at the start/stop barrier: make it an error run and finish the loop here.
    fail(&s, "the benchmark function returned before al_bench_keep_running_batch() returned false");
    while (st.KeepRunningBatch(1)) {
    }
  }
}

// Counts the error runs on their way to the display reporter Google Benchmark would have used.
class CountingReporter : public benchmark::BenchmarkReporter {
 public:
  explicit CountingReporter(benchmark::BenchmarkReporter *inner) : inner_(inner) {}
  bool ReportContext(const Context &context) override { return inner_->ReportContext(context); }
  void ReportRuns(const std::vector<Run> &runs) override {
    for (const Run &r : runs)
      if (r.error_occurred) errors_++;
    inner_->ReportRuns(runs);
  }
  void Finalize() override { inner_->Finalize(); }
  size_t errors() const { return errors_; }

 private:
  benchmark::BenchmarkReporter *inner_;
  size_t errors_ = 0;
};

}  // namespace

// ---- Registration -------------------------------------------------------------------------------

extern "C" al_bench_def *al_bench_register(const char *name, al_bench_fn *fn) noexcept {
  if (name == nullptr || name[0] == '\0') {
    reject(nullptr, "al_bench_register: NULL or empty name");
    return nullptr;
  }
  auto def = std::make_unique<al_bench_def>();
  def->name = name;
  if (fn == nullptr) {
    reject(def.get(), "al_bench_register: NULL function");
    return nullptr;
  }
  def->fn = fn;
  const al_bench_def *d = def.get();
  def->bm = benchmark::RegisterBenchmark(name, [d](benchmark::State &st) { run(d, st); });
  registry().defs.push_back(std::move(def));
  return registry().defs.back().get();
}

extern "C" al_bench_def *al_bench_with_user_data(al_bench_def *def, void *user_data) noexcept {
  if (def) def->user_data = user_data;
  return def;
}

extern "C" al_bench_def *al_bench_arg(al_bench_def *def, int64_t value) noexcept {
  if (def && check_arg_count(def, "al_bench_arg", 1)) {
    set_args(def, 1);
    def->bm->Arg(value);
  }
  return def;
}

extern "C" al_bench_def *al_bench_args(al_bench_def *def, size_t count,
                                       const int64_t *values) noexcept {
  if (!def) return def;
  if (values == nullptr && count > 0) {
    reject(def, "al_bench_args: NULL values");
  } else if (check_arg_count(def, "al_bench_args", count)) {
    set_args(def, count);
    def->bm->Args(std::vector<int64_t>(values, values + count));
  }
  return def;
}

extern "C" al_bench_def *al_bench_range(al_bench_def *def, int64_t lo, int64_t hi) noexcept {
  if (!def) return def;
  if (lo > hi) {
    reject(def, format("al_bench_range: lo %lld > hi %lld", static_cast<long long>(lo),
                       static_cast<long long>(hi)));
  } else if (check_arg_count(def, "al_bench_range", 1)) {
    set_args(def, 1);
    def->bm->Range(lo, hi);
  }
  return def;
}

extern "C" al_bench_def *al_bench_ranges(al_bench_def *def, size_t count,
                                         const al_bench_bounds *bounds) noexcept {
  if (!def) return def;
  if (bounds == nullptr && count > 0) {
    reject(def, "al_bench_ranges: NULL bounds");
    return def;
  }
  if (!check_arg_count(def, "al_bench_ranges", count)) return def;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i < count; i++) {
    if (bounds[i].lo > bounds[i].hi) {
      reject(def,
             format("al_bench_ranges: argument %zu: lo %lld > hi %lld", i,
                    static_cast<long long>(bounds[i].lo), static_cast<long long>(bounds[i].hi)));
      return def;
    }
    ranges.emplace_back(bounds[i].lo, bounds[i].hi);
  }
  set_args(def, count);
  def->bm->Ranges(ranges);
  return def;
}

extern "C" al_bench_def *al_bench_dense_range(al_bench_def *def, int64_t lo, int64_t hi,
                                              int step) noexcept {
  if (!def) return def;
  if (lo > hi || step < 1) {
    reject(def, format("al_bench_dense_range: need lo <= hi and step >= 1 (lo %lld, hi %lld, "
                       "step %d)",
                       static_cast<long long>(lo), static_cast<long long>(hi), step));
  } else if (check_arg_count(def, "al_bench_dense_range", 1)) {
    set_args(def, 1);
    def->bm->DenseRange(lo, hi, step);
  }
  return def;
}

extern "C" al_bench_def *al_bench_arg_names(al_bench_def *def, size_t count,
                                            const char *const *names) noexcept {
  if (!def) return def;
  if (names == nullptr && count > 0) {
    reject(def, "al_bench_arg_names: NULL names");
    return def;
  }
  if (def->has_arg_names) {
    reject(def, "al_bench_arg_names: called twice");
    return def;
  }
  if (!check_arg_count(def, "al_bench_arg_names", count)) return def;
  std::vector<std::string> v;
  for (size_t i = 0; i < count; i++) {
    if (names[i] == nullptr) {
      reject(def, format("al_bench_arg_names: name %zu is NULL", i));
      return def;
    }
    v.emplace_back(names[i]);
  }
  def->arg_count = static_cast<int>(count);
  def->has_arg_names = true;
  def->bm->ArgNames(v);
  return def;
}

extern "C" al_bench_def *al_bench_threads(al_bench_def *def, int n) noexcept {
  if (!def) return def;
  if (n < 1)
    reject(def, format("al_bench_threads: %d threads", n));
  else
    def->bm->Threads(n);
  return def;
}

extern "C" al_bench_def *al_bench_thread_range(al_bench_def *def, int lo, int hi) noexcept {
  if (!def) return def;
  if (lo < 1 || hi < lo)
    reject(def, format("al_bench_thread_range: need 1 <= lo <= hi (lo %d, hi %d)", lo, hi));
  else
    def->bm->ThreadRange(lo, hi);
  return def;
}

extern "C" al_bench_def *al_bench_repetitions(al_bench_def *def, int n) noexcept {
  if (!def) return def;
  if (n < 1)
    reject(def, format("al_bench_repetitions: %d repetitions", n));
  else
    def->bm->Repetitions(n);
  return def;
}

extern "C" al_bench_def *al_bench_iterations(al_bench_def *def, int64_t n) noexcept {
  if (!def) return def;
  if (n < 1)
    reject(def, format("al_bench_iterations: %lld iterations", static_cast<long long>(n)));
  else if (def->has_min_time)
    reject(def, "al_bench_iterations: not with al_bench_min_time");
  else {
    def->has_iterations = true;
    def->bm->Iterations(n);
  }
  return def;
}

extern "C" al_bench_def *al_bench_min_time(al_bench_def *def, double seconds) noexcept {
  if (!def) return def;
  if (!(seconds > 0) || !std::isfinite(seconds))
    reject(def, format("al_bench_min_time: %g seconds", seconds));
  else if (def->has_iterations)
    reject(def, "al_bench_min_time: not with al_bench_iterations");
  else {
    def->has_min_time = true;
    def->bm->MinTime(seconds);
  }
  return def;
}

extern "C" al_bench_def *al_bench_use_real_time(al_bench_def *def) noexcept {
  if (!def) return def;
  if (def->use_manual_time) {
    reject(def, "al_bench_use_real_time: not with al_bench_use_manual_time");
  } else {
    def->use_real_time = true;
    def->bm->UseRealTime();
  }
  return def;
}

extern "C" al_bench_def *al_bench_use_manual_time(al_bench_def *def) noexcept {
  if (!def) return def;
  if (def->use_real_time) {
    reject(def, "al_bench_use_manual_time: not with al_bench_use_real_time");
  } else {
    def->use_manual_time = true;
    def->bm->UseManualTime();
  }
  return def;
}

extern "C" al_bench_def *al_bench_unit(al_bench_def *def, al_bench_time_unit unit) noexcept {
  if (!def) return def;
  // Read the bits, not the enum: a C caller may pass any int, and in C++ loading an enum outside
  // its enumerators' range is undefined (UBSan's -fsanitize=enum).
  int u;
  static_assert(sizeof u == sizeof unit, "al_bench_time_unit is an int");
  std::memcpy(&u, &unit, sizeof u);
  switch (u) {
    case AL_BENCH_NS:
      def->bm->Unit(benchmark::kNanosecond);
      break;
    case AL_BENCH_US:
      def->bm->Unit(benchmark::kMicrosecond);
      break;
    case AL_BENCH_MS:
      def->bm->Unit(benchmark::kMillisecond);
      break;
    case AL_BENCH_S:
      def->bm->Unit(benchmark::kSecond);
      break;
    default:
      reject(def, format("al_bench_unit: unknown unit %d", u));
  }
  return def;
}

extern "C" al_bench_def *al_bench_compute_statistics(al_bench_def *def, const char *name,
                                                     al_bench_statistic_fn *fn) noexcept {
  if (!def) return def;
  if (name == nullptr || name[0] == '\0' || fn == nullptr) {
    reject(def, "al_bench_compute_statistics: NULL or empty name, or NULL function");
    return def;
  }
  benchmark::StatisticsFunc *t = trampoline_for(fn);
  if (t == nullptr) {
    reject(def, format("al_bench_compute_statistics: \"%s\": more than %d distinct statistic "
                       "functions",
                       name, AL_BENCH_MAX_STATISTIC_FNS));
    return def;
  }
  add_statistic(def, name, t);
  return def;
}

extern "C" al_bench_def *al_bench_add_percentile_statistics(al_bench_def *def) noexcept {
  if (!def) return def;
  add_statistic(def, "p50", p50);
  add_statistic(def, "p90", p90);
  add_statistic(def, "p99", p99);
  return def;
}

extern "C" double al_bench_percentile(const double *values, size_t count, double q) noexcept {
  if (values == nullptr || count == 0 || !(q >= 0 && q <= 100))
    return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> v(values, values + count);
  std::sort(v.begin(), v.end());
  double rank = q / 100.0 * static_cast<double>(count - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, count - 1);
  double frac = rank - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

extern "C" double al_bench_stat_p50(const double *values, size_t count) noexcept {
  return al_bench_percentile(values, count, 50);
}
extern "C" double al_bench_stat_p90(const double *values, size_t count) noexcept {
  return al_bench_percentile(values, count, 90);
}
extern "C" double al_bench_stat_p99(const double *values, size_t count) noexcept {
  return al_bench_percentile(values, count, 99);
}

// ---- Context ------------------------------------------------------------------------------------

extern "C" bool al_bench_add_context(const char *key, const char *value) noexcept {
  static const char *const kReserved[] = {"date",     "host_name",   "executable",
                                          "num_cpus", "mhz_per_cpu", "cpu_scaling_enabled",
                                          "caches",   "load_avg",    "library_build_type"};
  if (key == nullptr || value == nullptr || key[0] == '\0') return false;
  for (const char *r : kReserved)
    if (std::strcmp(key, r) == 0) return false;
  if (!registry().context_keys.insert(key).second) return false;
  benchmark::AddCustomContext(key, value);
  return true;
}

// ---- The run ------------------------------------------------------------------------------------

extern "C" bool al_bench_keep_running_batch(al_bench_state *s, int64_t *inout_batch) noexcept {
  benchmark::State &st = *s->st;
  if (s->finished) return false;
  if (inout_batch == nullptr || *inout_batch < 0) {
    fail(s, "al_bench_keep_running_batch: NULL or negative batch");
    while (st.KeepRunningBatch(1)) {
    }
    s->started = s->finished = true;
    return false;
  }
  if (s->paused) {
    s->paused = false;
    if (!st.error_occurred()) st.ResumeTiming();
  }
  if (!s->started) {
    s->started = true;
    s->auto_batch = *inout_batch == 0;
  }
  benchmark::IterationCount n =
      s->auto_batch ? std::max<benchmark::IterationCount>(st.max_iterations, 1) : *inout_batch;
  if (!st.KeepRunningBatch(n)) {
    s->finished = true;
    return false;
  }
  *inout_batch = n;
  return true;
}

extern "C" int64_t al_bench_range_arg(al_bench_state *s, size_t index) noexcept {
  int count = s->def->has_args ? s->def->arg_count : 0;
  if (index >= static_cast<size_t>(count)) {
    fail(s, format("al_bench_range_arg: index %zu, but the benchmark has %d argument(s)", index,
                   count));
    return 0;
  }
  return s->st->range(index);
}

extern "C" int al_bench_thread_index(const al_bench_state *s) noexcept {
  return s->st->thread_index();
}

extern "C" int al_bench_threads_count(const al_bench_state *s) noexcept { return s->st->threads(); }

extern "C" int64_t al_bench_iteration_count(const al_bench_state *s) noexcept {
  return s->st->iterations();
}

extern "C" void *al_bench_user_data(const al_bench_state *s) noexcept { return s->def->user_data; }

extern "C" void al_bench_pause_timing(al_bench_state *s) noexcept {
  if (!s->started || s->finished || s->paused || s->st->error_occurred()) return;
  s->st->PauseTiming();
  s->paused = true;
}

extern "C" void al_bench_resume_timing(al_bench_state *s) noexcept {
  if (!s->paused) return;
  s->paused = false;
  if (!s->st->error_occurred()) s->st->ResumeTiming();
}

extern "C" void al_bench_set_iteration_time(al_bench_state *s, double seconds) noexcept {
  if (!(seconds >= 0) || !std::isfinite(seconds)) {
    fail(s, format("al_bench_set_iteration_time: %g seconds", seconds));
    return;
  }
  s->st->SetIterationTime(seconds);
}

extern "C" void al_bench_set_items_processed(al_bench_state *s, int64_t items) noexcept {
  s->st->SetItemsProcessed(items);
}

extern "C" void al_bench_set_bytes_processed(al_bench_state *s, int64_t bytes) noexcept {
  s->st->SetBytesProcessed(bytes);
}

extern "C" void al_bench_counter_set(al_bench_state *s, const char *name, double value,
                                     uint32_t flags) noexcept {
  if (name == nullptr || name[0] == '\0') {
    fail(s, "al_bench_counter_set: NULL or empty name");
    return;
  }
  if (flags & ~AL_BENCH_COUNTER_FLAGS_ALL) {
    fail(s, format("al_bench_counter_set: \"%s\": unknown flag bits 0x%x", name,
                   flags & ~AL_BENCH_COUNTER_FLAGS_ALL));
    return;
  }
  using C = benchmark::Counter;
  uint32_t f = 0;
  if (flags & AL_BENCH_COUNTER_RATE) f |= C::kIsRate;
  if (flags & AL_BENCH_COUNTER_AVG_THREADS) f |= C::kAvgThreads;
  if (flags & AL_BENCH_COUNTER_ITERATION_INVARIANT) f |= C::kIsIterationInvariant;
  if (flags & AL_BENCH_COUNTER_AVG_ITERATIONS) f |= C::kAvgIterations;
  if (flags & AL_BENCH_COUNTER_INVERT) f |= static_cast<uint32_t>(C::kInvert);
  s->st->counters[name] = C(value, static_cast<C::Flags>(f));
}

extern "C" void al_bench_skip_with_error(al_bench_state *s, const char *msg) noexcept {
  fail(s, msg ? msg : "error");
}

extern "C" bool al_bench_error_occurred(const al_bench_state *s) noexcept {
  return s->st->error_occurred();
}

extern "C" void al_bench_set_label(al_bench_state *s, const char *label) noexcept {
  s->st->SetLabel(label ? label : "");
}

// ---- Main ---------------------------------------------------------------------------------------

extern "C" int al_bench_main(int argc, char **argv) noexcept {
  char fallback_name[] = "alloclab_bench";
  char *fallback_argv[] = {fallback_name, nullptr};
  if (argc < 1 || argv == nullptr || argv[0] == nullptr) {
    argc = 1;
    argv = fallback_argv;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    std::fprintf(stderr, "%s: the flags Google Benchmark accepts are listed by --help\n", argv[0]);
    benchmark::Shutdown();
    return AL_BENCH_MAIN_USAGE;
  }
  Registry &r = registry();
  for (const auto &def : r.defs)
    if (def->has_arg_names && !def->has_args)
      reject(def.get(), "al_bench_arg_names without any argument list: no instance would run");
  if (!r.errors.empty()) {
    for (const std::string &e : r.errors) std::fprintf(stderr, "%s\n", e.c_str());
    std::fprintf(stderr, "%s: %zu registration error(s); nothing was run\n", argv[0],
                 r.errors.size());
    benchmark::Shutdown();
    return AL_BENCH_MAIN_USAGE;
  }
  CountingReporter reporter(benchmark::CreateDefaultDisplayReporter());
  size_t matched = benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (matched == 0) return AL_BENCH_MAIN_USAGE;
  if (reporter.errors() > 0) {
    std::fprintf(stderr, "%s: %zu run(s) ended with an error\n", argv[0], reporter.errors());
    return AL_BENCH_MAIN_RUN_FAILED;
  }
  return AL_BENCH_MAIN_OK;
}
