/*
 * shim_test.c — tests of alloclab/bench/bench.h: every feature of the shim, seen in the report.
 *
 * The test registers small benchmarks that each exercise one feature, runs them once through
 * al_bench_main() with --benchmark_format=json --benchmark_out=<tmp>/shim_test.json
 * --benchmark_min_time=0.01, parses the JSON report (a small parser below) and checks what each
 * feature must have produced: instance names (arguments, argument names, thread counts, time
 * suffixes), counter values under each flag, items/bytes per second, manual times, error runs,
 * labels, percentile and custom statistics over repetitions, the custom context, and the batch
 * loop's iteration counts. Misuse (bad flags, bad registrations) runs in a forked child whose exit
 * status and stderr are checked.
 *
 * A plain main (//core:test_harness is visible to //core and //hw only); argv[1] filters tests by
 * substring, as al_test does.
 */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloclab/bench/bench.h"

/* ---- A minimal harness ----------------------------------------------------------------------- */

static int current_failures;

__attribute__((format(printf, 3, 4))) static bool check_fail(const char *file, int line,
                                                             const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  current_failures++;
  return false;
}

#define expect_true(cond, ...) expect_true_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
__attribute__((format(printf, 4, 5))) static bool expect_true_(bool ok, const char *file, int line,
                                                               const char *fmt, ...) {
  if (ok) return true;
  va_list ap;
  fprintf(stderr, "%s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  current_failures++;
  return false;
}

/* |got - want| <= rel * |want| (or <= rel when want is 0). */
#define expect_near(got, want, rel, what) \
  expect_near_((got), (want), (rel), (what), __FILE__, __LINE__)

static bool expect_near_(double got, double want, double rel, const char *what, const char *file,
                         int line) {
  double tol = want == 0 ? rel : rel * fabs(want);
  if (fabs(got - want) <= tol) return true;
  return check_fail(file, line, "%s: got %.12g, want %.12g (relative tolerance %g)", what, got,
                    want, rel);
}

/* ---- A minimal JSON parser (the report is trusted input; enough for it) ---------------------- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } json_type;

typedef struct json json;
struct json {
  json_type type;
  bool boolean;
  double num;
  char *str;
  json *items; /* J_ARR, J_OBJ */
  char **keys; /* J_OBJ */
  size_t count;
};

static void json_ws(const char **p) {
  while (**p == ' ' || **p == '\n' || **p == '\r' || **p == '\t') (*p)++;
}

static bool json_string(const char **p, char **out) {
  if (**p != '"') return false;
  (*p)++;
  size_t len = 0, cap = 16;
  char *buf = malloc(cap);
  if (!buf) return false;
  for (;;) {
    char c = *(*p)++;
    if (c == '\0') goto bad;
    if (c == '"') break;
    if (c == '\\') {
      char e = *(*p)++;
      switch (e) {
        case '"':
          c = '"';
          break;
        case '\\':
          c = '\\';
          break;
        case '/':
          c = '/';
          break;
        case 'b':
          c = '\b';
          break;
        case 'f':
          c = '\f';
          break;
        case 'n':
          c = '\n';
          break;
        case 'r':
          c = '\r';
          break;
        case 't':
          c = '\t';
          break;
        case 'u': {
          unsigned v = 0;
          for (int i = 0; i < 4; i++) {
            char h = *(*p)++;
            v <<= 4;
            if (h >= '0' && h <= '9')
              v |= (unsigned)(h - '0');
            else if (h >= 'a' && h <= 'f')
              v |= (unsigned)(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F')
              v |= (unsigned)(h - 'A' + 10);
            else
              goto bad;
          }
          c = v < 0x80 ? (char)v : '?';
          break;
        }
        default:
          goto bad;
      }
    }
    if (len + 2 > cap) {
      char *grown = realloc(buf, cap *= 2);
      if (!grown) goto bad;
      buf = grown;
    }
    buf[len++] = c;
  }
  buf[len] = '\0';
  *out = buf;
  return true;
bad:
  free(buf);
  return false;
}

static bool json_value(const char **p, json *v, int depth);

static bool json_push(json *v, const char **p, int depth, char *key) {
  if (v->count % 16 == 0) {
    json *items = realloc(v->items, (v->count + 16) * sizeof *items);
    if (!items) return false;
    v->items = items;
    if (v->type == J_OBJ) {
      char **keys = realloc(v->keys, (v->count + 16) * sizeof *keys);
      if (!keys) return false;
      v->keys = keys;
    }
  }
  memset(&v->items[v->count], 0, sizeof v->items[0]);
  if (v->type == J_OBJ) v->keys[v->count] = key;
  v->count++;
  return json_value(p, &v->items[v->count - 1], depth + 1);
}

static bool json_value(const char **p, json *v, int depth) {
  if (depth > 32) return false;
  json_ws(p);
  if (**p == '{' || **p == '[') {
    char close = **p == '{' ? '}' : ']';
    v->type = **p == '{' ? J_OBJ : J_ARR;
    (*p)++;
    json_ws(p);
    if (**p == close) {
      (*p)++;
      return true;
    }
    for (;;) {
      char *key = NULL;
      json_ws(p);
      if (v->type == J_OBJ) {
        if (!json_string(p, &key)) return false;
        json_ws(p);
        if (*(*p)++ != ':') {
          free(key);
          return false;
        }
      }
      if (!json_push(v, p, depth, key)) return false;
      json_ws(p);
      char c = *(*p)++;
      if (c == close) return true;
      if (c != ',') return false;
    }
  }
  if (**p == '"') {
    v->type = J_STR;
    return json_string(p, &v->str);
  }
  if (strncmp(*p, "true", 4) == 0 || strncmp(*p, "false", 5) == 0) {
    v->type = J_BOOL;
    v->boolean = **p == 't';
    *p += v->boolean ? 4 : 5;
    return true;
  }
  if (strncmp(*p, "null", 4) == 0) {
    v->type = J_NULL;
    *p += 4;
    return true;
  }
  char *end;
  v->type = J_NUM;
  v->num = strtod(*p, &end);
  if (end == *p) return false;
  *p = end;
  return true;
}

static const json *json_get(const json *obj, const char *key) {
  if (!obj || obj->type != J_OBJ) return NULL;
  for (size_t i = 0; i < obj->count; i++)
    if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
  return NULL;
}

static const char *json_str(const json *obj, const char *key) {
  const json *v = json_get(obj, key);
  return v && v->type == J_STR ? v->str : NULL;
}

/* NaN when missing or not a number. */
static double json_num(const json *obj, const char *key) {
  const json *v = json_get(obj, key);
  return v && v->type == J_NUM ? v->num : NAN;
}

static bool json_true(const json *obj, const char *key) {
  const json *v = json_get(obj, key);
  return v && v->type == J_BOOL && v->boolean;
}

/* ---- Benchmarks: each exercises one feature -------------------------------------------------- */

/* Runs the loop with first batch request @batch; records the iterations and batches handed out. */
static void run_loop(al_bench_state *state, int64_t batch) {
  int64_t n = batch, total = 0, batches = 0;
  uint64_t sum = 0;
  while (al_bench_keep_running_batch(state, &n)) {
    batches++;
    for (int64_t i = 0; i < n; i++) {
      sum += (uint64_t)i;
      AL_BENCH_DO_NOT_OPTIMIZE(sum);
    }
    total += n;
  }
  al_bench_counter_set(state, "loop_iters", (double)total, 0);
  al_bench_counter_set(state, "batches", (double)batches, 0);
  al_bench_counter_set(state, "iteration_count", (double)al_bench_iteration_count(state), 0);
}

static void bm_batch_auto(al_bench_state *state) { run_loop(state, 0); }
static void bm_batch_fixed(al_bench_state *state) { run_loop(state, 7); }

/* Reports its arguments as counters arg0, arg1. */
static void bm_args(al_bench_state *state) {
  int nargs = (int)(intptr_t)al_bench_user_data(state);
  for (int i = 0; i < nargs; i++) {
    char name[16];
    snprintf(name, sizeof name, "arg%d", i);
    al_bench_counter_set(state, name, (double)al_bench_range_arg(state, (size_t)i), 0);
  }
  run_loop(state, 0);
}

static void bm_threads(al_bench_state *state) {
  run_loop(state, 0);
  int index = al_bench_thread_index(state), count = al_bench_threads_count(state);
  al_bench_counter_set(state, "avg_threads", 10, AL_BENCH_COUNTER_AVG_THREADS);
  al_bench_counter_set(state, "summed", 10, 0);
  al_bench_counter_set(state, "index_plus_one", index + 1, 0);
  al_bench_counter_set(state, "threads_count", count, AL_BENCH_COUNTER_AVG_THREADS);
  if (index == 0) al_bench_set_label(state, "thread-label");
}

/* Manual time: each batch of n iterations "took" n microseconds. */
static void bm_counters(al_bench_state *state) {
  int64_t n = 0, total = 0;
  while (al_bench_keep_running_batch(state, &n)) {
    for (int64_t i = 0; i < n; i++) al_bench_clobber_memory();
    al_bench_set_iteration_time(state, (double)n * 1e-6);
    total += n;
  }
  double iters = (double)total;
  al_bench_counter_set(state, "plain", 7, 0);
  al_bench_counter_set(state, "rate", iters, AL_BENCH_COUNTER_RATE);
  al_bench_counter_set(state, "avg_iterations", 3 * iters, AL_BENCH_COUNTER_AVG_ITERATIONS);
  al_bench_counter_set(state, "invariant", 2, AL_BENCH_COUNTER_ITERATION_INVARIANT);
  al_bench_counter_set(state, "invariant_rate", 2,
                       AL_BENCH_COUNTER_ITERATION_INVARIANT | AL_BENCH_COUNTER_RATE);
  al_bench_counter_set(state, "avg_iterations_rate", iters,
                       AL_BENCH_COUNTER_AVG_ITERATIONS | AL_BENCH_COUNTER_RATE);
  al_bench_counter_set(state, "avg_threads", 5, AL_BENCH_COUNTER_AVG_THREADS);
  al_bench_counter_set(state, "inverted", 4, AL_BENCH_COUNTER_INVERT);
  al_bench_counter_set(state, "replaced", 1, 0);
  al_bench_counter_set(state, "replaced", 2, 0);
  al_bench_counter_set(state, "loop_iters", iters, 0);
  al_bench_set_items_processed(state, total);
  al_bench_set_bytes_processed(state, 64 * total);
  al_bench_set_label(state, "counters-label");
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Real time, batches of 1: each iteration sleeps 2 ms timed, then 20 ms with the timer paused. */
static void bm_pause(al_bench_state *state) {
  int64_t n = 1;
  while (al_bench_keep_running_batch(state, &n)) {
    sleep_ms(2);
    al_bench_pause_timing(state);
    al_bench_pause_timing(state); /* twice: does nothing */
    sleep_ms(20);
    al_bench_resume_timing(state);
  }
  al_bench_resume_timing(state); /* outside the loop: does nothing */
}

/* As bm_pause, but leaves the timer paused at the end of each batch (keep_running resumes it). */
static void bm_pause_left_paused(al_bench_state *state) {
  int64_t n = 1;
  while (al_bench_keep_running_batch(state, &n)) {
    sleep_ms(2);
    al_bench_pause_timing(state);
    sleep_ms(20);
  }
}

/* Repetition k (counting from 0) reports (k+1) ms per iteration and counter rep = k+1. */
static int stats_calls;
static void bm_stats(al_bench_state *state) {
  int64_t n = 0;
  double ms = ++stats_calls;
  while (al_bench_keep_running_batch(state, &n))
    al_bench_set_iteration_time(state, (double)n * ms * 1e-3);
  al_bench_counter_set(state, "rep", ms, 0);
}

static double stat_max(const double *v, size_t count) {
  double m = v[0];
  for (size_t i = 1; i < count; i++) m = v[i] > m ? v[i] : m;
  return m;
}

static double stat_min(const double *v, size_t count) {
  double m = v[0];
  for (size_t i = 1; i < count; i++) m = v[i] < m ? v[i] : m;
  return m;
}

static void bm_skip_before_loop(al_bench_state *state) {
  al_bench_skip_with_error(state, "device lost: injected");
  al_bench_pause_timing(state); /* after an error: does nothing */
}

static void bm_skip_in_loop(al_bench_state *state) {
  int64_t n = 1;
  while (al_bench_keep_running_batch(state, &n)) {
    al_bench_skip_with_error(state, "failed in the loop");
    al_bench_skip_with_error(state, "second message: dropped");
    expect_true(al_bench_error_occurred(state), "al_bench_error_occurred after skip");
  }
}

static void bm_return_early(al_bench_state *state) { (void)state; }

static void bm_break_loop(al_bench_state *state) {
  int64_t n = 1;
  while (al_bench_keep_running_batch(state, &n)) {
    al_bench_pause_timing(state);
    break;
  }
}

static void bm_bad_range_arg(al_bench_state *state) {
  (void)al_bench_range_arg(state, 1);
  run_loop(state, 0);
}

static void bm_bad_counter_flags(al_bench_state *state) {
  al_bench_counter_set(state, "bad", 1, 0x100);
  run_loop(state, 0);
}

static void bm_bad_iteration_time(al_bench_state *state) {
  int64_t n = 0;
  while (al_bench_keep_running_batch(state, &n)) al_bench_set_iteration_time(state, -1);
}

/* Two threads: thread 1 fails before its loop and returns, thread 0 runs the loop. */
static void bm_skip_one_thread(al_bench_state *state) {
  if (al_bench_thread_index(state) == 1) {
    al_bench_skip_with_error(state, "thread 1 failed");
    return;
  }
  run_loop(state, 0);
}

static int user_data_target;
static void bm_user_data(al_bench_state *state) {
  al_bench_counter_set(state, "user_data_ok", al_bench_user_data(state) == &user_data_target, 0);
  run_loop(state, 0);
}

/* The optimisation barriers: a sum that the compiler must compute. */
static void bm_barriers(al_bench_state *state) {
  int64_t n = 0;
  double d = 0.5;
  int values[4] = {1, 2, 3, 4};
  int *p = values;
  while (al_bench_keep_running_batch(state, &n)) {
    for (int64_t i = 0; i < n; i++) {
      values[i & 3] += 1;
      al_bench_do_not_optimize(values);
      AL_BENCH_DO_NOT_OPTIMIZE(d);
      AL_BENCH_DO_NOT_OPTIMIZE(p);
      al_bench_clobber_memory();
    }
  }
  al_bench_counter_set(state, "values_sum",
                       values[0] + values[1] + values[2] + values[3] + (p == values) + d, 0);
}

static void bm_min_time(al_bench_state *state) { run_loop(state, 0); }

/* ---- Registration and the one run ------------------------------------------------------------ */

static char report_path[512];
static json report_root;
static bool report_parsed;
static int main_rc = -1;

static void register_benchmarks(void) {
  al_bench_register("BM_batch_auto", bm_batch_auto);
  al_bench_register("BM_batch_fixed", bm_batch_fixed);

  al_bench_arg(
      al_bench_arg(
          al_bench_with_user_data(al_bench_register("BM_arg", bm_args), (void *)(intptr_t)1), 3),
      5);
  al_bench_def *b =
      al_bench_with_user_data(al_bench_register("BM_args", bm_args), (void *)(intptr_t)2);
  al_bench_args(b, 2, (const int64_t[]){1, 2});
  al_bench_args(b, 2, (const int64_t[]){3, 4});
  b = al_bench_with_user_data(al_bench_register("BM_named", bm_args), (void *)(intptr_t)2);
  al_bench_arg_names(b, 2, (const char *const[]){"x", "y"});
  al_bench_args(b, 2, (const int64_t[]){1, 2});
  b = al_bench_with_user_data(al_bench_register("BM_range", bm_args), (void *)(intptr_t)1);
  al_bench_range(b, 8, 512);
  b = al_bench_with_user_data(al_bench_register("BM_named_range", bm_args), (void *)(intptr_t)1);
  al_bench_arg_names(al_bench_range(b, 8, 64), 1, (const char *const[]){"size"});
  b = al_bench_with_user_data(al_bench_register("BM_ranges", bm_args), (void *)(intptr_t)2);
  al_bench_ranges(b, 2, (const al_bench_bounds[]){{1, 8}, {2, 2}});
  b = al_bench_with_user_data(al_bench_register("BM_dense", bm_args), (void *)(intptr_t)1);
  al_bench_dense_range(b, 0, 7, 3);

  al_bench_threads(al_bench_register("BM_threads", bm_threads), 2);
  al_bench_thread_range(al_bench_register("BM_thread_range", bm_threads), 1, 4);

  al_bench_unit(al_bench_use_manual_time(al_bench_register("BM_counters", bm_counters)),
                AL_BENCH_US);
  al_bench_unit(
      al_bench_use_real_time(al_bench_iterations(al_bench_register("BM_pause", bm_pause), 5)),
      AL_BENCH_MS);
  al_bench_unit(al_bench_use_real_time(al_bench_iterations(
                    al_bench_register("BM_pause_left_paused", bm_pause_left_paused), 5)),
                AL_BENCH_MS);
  al_bench_min_time(al_bench_register("BM_min_time", bm_min_time), 0.02);

  b = al_bench_register("BM_stats", bm_stats);
  al_bench_iterations(b, 1);
  al_bench_repetitions(b, 5);
  al_bench_use_manual_time(b);
  al_bench_unit(b, AL_BENCH_MS);
  al_bench_add_percentile_statistics(b);
  al_bench_compute_statistics(b, "max", stat_max);
  al_bench_compute_statistics(b, "min", stat_min);

  al_bench_register("BM_skip_before_loop", bm_skip_before_loop);
  al_bench_register("BM_skip_in_loop", bm_skip_in_loop);
  al_bench_register("BM_return_early", bm_return_early);
  al_bench_register("BM_break_loop", bm_break_loop);
  al_bench_arg(al_bench_register("BM_bad_range_arg", bm_bad_range_arg), 1);
  al_bench_register("BM_bad_counter_flags", bm_bad_counter_flags);
  al_bench_use_manual_time(al_bench_register("BM_bad_iteration_time", bm_bad_iteration_time));
  al_bench_threads(al_bench_register("BM_skip_one_thread", bm_skip_one_thread), 2);

  al_bench_with_user_data(al_bench_register("BM_user_data", bm_user_data), &user_data_target);
  al_bench_register("BM_barriers", bm_barriers);
}

static bool context_added_ok, context_refused_ok;

static void add_context(void) {
  context_added_ok = al_bench_add_context("git_commit", "0123456789abcdef") &&
                     al_bench_add_context("miniport", "example") &&
                     al_bench_add_context("escaped", "a \"quoted\" back\\slash") &&
                     al_bench_add_default_context();
  context_refused_ok = !al_bench_add_context("git_commit", "again") &&
                       !al_bench_add_context("date", "reserved") &&
                       !al_bench_add_context("", "x") && !al_bench_add_context(NULL, "x") &&
                       !al_bench_add_context("k", NULL) && !al_bench_add_default_context();
}

/* Runs every benchmark once (on first use) and returns the parsed report, or NULL. */
static const json *report(void) {
  static bool ran;
  if (ran) return report_parsed ? &report_root : NULL;
  ran = true;
  const char *dir = getenv("TEST_TMPDIR");
  snprintf(report_path, sizeof report_path, "%s/shim_test.%ld.json", dir ? dir : "/tmp",
           (long)getpid());
  register_benchmarks();
  add_context();

  char arg0[] = "shim_test", format[] = "--benchmark_format=json",
       min_time[] = "--benchmark_min_time=0.01", out[600];
  snprintf(out, sizeof out, "--benchmark_out=%s", report_path);
  char *argv[] = {arg0, format, out, min_time, NULL};
  main_rc = al_bench_main(4, argv);
  fflush(stdout);

  FILE *f = fopen(report_path, "rb");
  if (!f) {
    check_fail(__FILE__, __LINE__, "no report at %s", report_path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = calloc(1, (size_t)size + 1);
  size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
  fclose(f);
  if (!getenv("SHIM_TEST_KEEP_REPORT")) remove(report_path);
  const char *p = text;
  report_parsed =
      got == (size_t)size && json_value(&p, &report_root, 0) && report_root.type == J_OBJ;
  if (!report_parsed) check_fail(__FILE__, __LINE__, "the report is not valid JSON:\n%s", text);
  free(text);
  return report_parsed ? &report_root : NULL;
}

static const json *benchmarks(void) {
  const json *r = report();
  const json *b = json_get(r, "benchmarks");
  return b && b->type == J_ARR ? b : NULL;
}

/* The report entry named @name (an instance, or run_name_aggregate), or NULL. */
static const json *entry(const char *name) {
  const json *b = benchmarks();
  for (size_t i = 0; b && i < b->count; i++) {
    const char *n = json_str(&b->items[i], "name");
    if (n && strcmp(n, name) == 0) return &b->items[i];
  }
  return NULL;
}

#define get_entry(var, name)     \
  const json *var = entry(name); \
  if (!expect_true(var != NULL, "no report entry named %s", name)) return

static double counter(const json *e, const char *name) { return json_num(e, name); }

/* ---- Tests ----------------------------------------------------------------------------------- */

static const char *const expected_ok[] = {
    "BM_batch_auto",
    "BM_batch_fixed",
    "BM_arg/3",
    "BM_arg/5",
    "BM_args/1/2",
    "BM_args/3/4",
    "BM_named/x:1/y:2",
    "BM_range/8",
    "BM_range/64",
    "BM_range/512",
    "BM_named_range/size:8",
    "BM_named_range/size:64",
    "BM_ranges/1/2",
    "BM_ranges/8/2",
    "BM_dense/0",
    "BM_dense/3",
    "BM_dense/6",
    "BM_threads/threads:2",
    "BM_thread_range/threads:1",
    "BM_thread_range/threads:2",
    "BM_thread_range/threads:4",
    "BM_counters/manual_time",
    "BM_pause/iterations:5/real_time",
    "BM_pause_left_paused/iterations:5/real_time",
    "BM_min_time/min_time:0.020",
    "BM_user_data",
    "BM_barriers",
};

static const struct {
  const char *name;
  const char *message; /* a substring of error_message */
} expected_errors[] = {
    {"BM_skip_before_loop", "device lost: injected"},
    {"BM_skip_in_loop", "failed in the loop"},
    {"BM_return_early", "returned before al_bench_keep_running_batch() returned false"},
    {"BM_break_loop", "returned before al_bench_keep_running_batch() returned false"},
    {"BM_bad_range_arg/1", "al_bench_range_arg: index 1, but the benchmark has 1 argument(s)"},
    {"BM_bad_counter_flags", "unknown flag bits 0x100"},
    {"BM_bad_iteration_time/manual_time", "al_bench_set_iteration_time: -1 seconds"},
    {"BM_skip_one_thread/threads:2", "thread 1 failed"},
};

#define STATS_RUN "BM_stats/iterations:1/repeats:5/manual_time"

static void test_every_benchmark_ran_under_its_name(void) {
  const json *b = benchmarks();
  if (!expect_true(b != NULL, "the report has no benchmarks array")) return;
  size_t iteration_entries = 0;
  for (size_t i = 0; i < b->count; i++) {
    const char *type = json_str(&b->items[i], "run_type");
    if (type && strcmp(type, "iteration") == 0) iteration_entries++;
  }
  size_t n_ok = sizeof expected_ok / sizeof expected_ok[0];
  size_t n_err = sizeof expected_errors / sizeof expected_errors[0];
  expect_true(iteration_entries == n_ok + n_err + 5, "%zu runs in the report, want %zu",
              iteration_entries, n_ok + n_err + 5);
  for (size_t i = 0; i < n_ok; i++) {
    const json *e = entry(expected_ok[i]);
    if (!expect_true(e != NULL, "no run named %s", expected_ok[i])) continue;
    expect_true(!json_true(e, "error_occurred"), "%s failed: %s", expected_ok[i],
                json_str(e, "error_message"));
    expect_true(json_num(e, "iterations") >= 1, "%s: no iterations", expected_ok[i]);
    const char *type = json_str(e, "run_type");
    expect_true(type && strcmp(type, "iteration") == 0, "%s: run_type", expected_ok[i]);
  }
}

static void test_main_reports_failed_runs(void) {
  if (!report()) return;
  expect_true(main_rc == AL_BENCH_MAIN_RUN_FAILED, "al_bench_main returned %d, want %d", main_rc,
              AL_BENCH_MAIN_RUN_FAILED);
}

static void test_batch_loop_counts(void) {
  get_entry(a, "BM_batch_auto");
  double iters = json_num(a, "iterations");
  expect_near(counter(a, "loop_iters"), iters, 0, "auto batch: iterations run vs reported");
  expect_near(counter(a, "iteration_count"), iters, 0, "auto batch: al_bench_iteration_count");
  expect_near(counter(a, "batches"), 1, 0, "auto batch: one batch per run");

  get_entry(f, "BM_batch_fixed");
  iters = json_num(f, "iterations");
  expect_near(counter(f, "loop_iters"), iters, 0, "fixed batch: iterations run vs reported");
  expect_near(counter(f, "iteration_count"), iters, 0, "fixed batch: al_bench_iteration_count");
  expect_near(counter(f, "batches") * 7, iters, 0, "fixed batch: every batch holds 7");
  expect_true(iters >= 7 && fmod(iters, 7) == 0, "fixed batch: %g iterations", iters);
}

static void test_arguments_reach_the_state(void) {
  static const struct {
    const char *name;
    double arg0, arg1; /* NAN: not an argument */
  } cases[] = {
      {"BM_arg/3", 3, NAN},     {"BM_arg/5", 5, NAN},       {"BM_args/1/2", 1, 2},
      {"BM_args/3/4", 3, 4},    {"BM_named/x:1/y:2", 1, 2}, {"BM_range/8", 8, NAN},
      {"BM_range/64", 64, NAN}, {"BM_range/512", 512, NAN}, {"BM_named_range/size:64", 64, NAN},
      {"BM_ranges/1/2", 1, 2},  {"BM_ranges/8/2", 8, 2},    {"BM_dense/0", 0, NAN},
      {"BM_dense/3", 3, NAN},   {"BM_dense/6", 6, NAN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const json *e = entry(cases[i].name);
    if (!expect_true(e != NULL, "no run named %s", cases[i].name)) continue;
    expect_near(counter(e, "arg0"), cases[i].arg0, 0, cases[i].name);
    if (!isnan(cases[i].arg1)) expect_near(counter(e, "arg1"), cases[i].arg1, 0, cases[i].name);
  }
  expect_true(entry("BM_dense/7") == NULL, "dense range 0..7 step 3 must stop at 6");
}

static void test_threads_and_thread_counters(void) {
  get_entry(e, "BM_threads/threads:2");
  expect_near(json_num(e, "threads"), 2, 0, "threads");
  expect_near(counter(e, "avg_threads"), 10, 0, "AVG_THREADS: 2 x 10 / 2");
  expect_near(counter(e, "summed"), 20, 0, "no flags: summed over threads");
  expect_near(counter(e, "index_plus_one"), 3, 0, "thread indexes 0 and 1");
  expect_near(counter(e, "threads_count"), 2, 0, "al_bench_threads_count");
  expect_near(counter(e, "batches"), 2, 0, "one batch per thread");
  expect_near(counter(e, "loop_iters"), json_num(e, "iterations"), 0,
              "iterations: the sum over threads");
  const char *label = json_str(e, "label");
  expect_true(label && strcmp(label, "thread-label") == 0, "label %s", label ? label : "(none)");
  static const int counts[] = {1, 2, 4};
  for (size_t i = 0; i < 3; i++) {
    char name[64];
    snprintf(name, sizeof name, "BM_thread_range/threads:%d", counts[i]);
    const json *t = entry(name);
    if (!expect_true(t != NULL, "no run named %s", name)) continue;
    expect_near(json_num(t, "threads"), counts[i], 0, name);
    expect_near(counter(t, "threads_count"), counts[i], 0, name);
    expect_near(counter(t, "summed"), 10.0 * counts[i], 0, name);
  }
}

static void test_counter_flags(void) {
  get_entry(e, "BM_counters/manual_time");
  double iters = json_num(e, "iterations");
  expect_near(counter(e, "loop_iters"), iters, 0, "loop_iters");
  expect_near(counter(e, "plain"), 7, 0, "no flags");
  expect_near(counter(e, "rate"), 1e6, 1e-6, "RATE: iterations / (iterations x 1 us)");
  expect_near(counter(e, "avg_iterations"), 3, 1e-9, "AVG_ITERATIONS: 3 x iterations / iterations");
  expect_near(counter(e, "invariant"), 2 * iters, 1e-9, "ITERATION_INVARIANT: 2 x iterations");
  expect_near(counter(e, "invariant_rate"), 2e6, 1e-6, "ITERATION_INVARIANT|RATE");
  expect_near(counter(e, "avg_iterations_rate") * iters, 1e6, 1e-6, "AVG_ITERATIONS|RATE");
  expect_near(counter(e, "avg_threads"), 5, 0, "AVG_THREADS on one thread");
  expect_near(counter(e, "inverted"), 0.25, 1e-12, "INVERT");
  expect_near(counter(e, "replaced"), 2, 0, "a counter set twice keeps the last value");
}

static void test_items_and_bytes_per_second(void) {
  get_entry(e, "BM_counters/manual_time");
  expect_near(json_num(e, "items_per_second"), 1e6, 1e-6, "items_per_second");
  expect_near(json_num(e, "bytes_per_second"), 64e6, 1e-6, "bytes_per_second");
}

static void test_manual_time_and_units(void) {
  get_entry(e, "BM_counters/manual_time");
  expect_near(json_num(e, "real_time"), 1.0, 1e-6, "manual time: 1 us per iteration");
  const char *unit = json_str(e, "time_unit");
  expect_true(unit && strcmp(unit, "us") == 0, "time_unit %s, want us", unit ? unit : "(none)");
  get_entry(n, "BM_batch_auto");
  unit = json_str(n, "time_unit");
  expect_true(unit && strcmp(unit, "ns") == 0, "default time_unit %s, want ns",
              unit ? unit : "(none)");
}

static void test_pause_and_real_time(void) {
  static const char *const names[] = {"BM_pause/iterations:5/real_time",
                                      "BM_pause_left_paused/iterations:5/real_time"};
  for (size_t i = 0; i < 2; i++) {
    get_entry(e, names[i]);
    const char *unit = json_str(e, "time_unit");
    expect_true(unit && strcmp(unit, "ms") == 0, "%s: time_unit %s, want ms", names[i],
                unit ? unit : "(none)");
    expect_near(json_num(e, "iterations"), 5, 0, names[i]);
    /* Each iteration sleeps 2 ms timed and 20 ms paused: >= 2 ms (the timed sleep counts, so
     * resuming works) and < 20 ms (the paused sleep does not, so pausing works). */
    double ms = json_num(e, "real_time");
    expect_true(ms >= 2.0 && ms < 20.0, "%s: %g ms per iteration, want 2 <= t < 20", names[i], ms);
  }
}

static void test_min_time(void) {
  get_entry(e, "BM_min_time/min_time:0.020");
  expect_true(json_num(e, "iterations") >= 1, "ran");
}

static void test_error_runs(void) {
  for (size_t i = 0; i < sizeof expected_errors / sizeof expected_errors[0]; i++) {
    const json *e = entry(expected_errors[i].name);
    if (!expect_true(e != NULL, "no run named %s", expected_errors[i].name)) continue;
    expect_true(json_true(e, "error_occurred"), "%s: not an error run", expected_errors[i].name);
    const char *msg = json_str(e, "error_message");
    expect_true(msg && strstr(msg, expected_errors[i].message),
                "%s: error_message \"%s\", want \"%s\"", expected_errors[i].name,
                msg ? msg : "(none)", expected_errors[i].message);
  }
}

static void test_labels(void) {
  get_entry(e, "BM_counters/manual_time");
  const char *label = json_str(e, "label");
  expect_true(label && strcmp(label, "counters-label") == 0, "label %s", label ? label : "(none)");
  get_entry(n, "BM_batch_auto");
  expect_true(json_str(n, "label") == NULL, "a run without a label has none");
}

static void test_statistics(void) {
  /* The five repetitions took 1..5 ms per iteration, in order. */
  double values[5];
  for (int k = 0; k < 5; k++) {
    const json *b = benchmarks();
    const json *rep = NULL;
    for (size_t i = 0; b && i < b->count; i++) {
      const json *e = &b->items[i];
      const char *n = json_str(e, "name");
      if (n && strcmp(n, STATS_RUN) == 0 && json_num(e, "repetition_index") == k) rep = e;
    }
    if (!expect_true(rep != NULL, "no repetition %d of %s", k, STATS_RUN)) return;
    values[k] = json_num(rep, "real_time");
    expect_near(values[k], k + 1, 1e-9, "repetition time");
    expect_near(counter(rep, "rep"), k + 1, 0, "repetition counter");
  }
  static const struct {
    const char *stat;
    double want;
  } stats[] = {{"p50", 3}, {"p90", 4.6}, {"p99", 4.96}, {"max", 5}, {"min", 1}, {"mean", 3}};
  for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
    char name[128];
    snprintf(name, sizeof name, "%s_%s", STATS_RUN, stats[i].stat);
    get_entry(e, name);
    const char *type = json_str(e, "run_type"), *agg = json_str(e, "aggregate_name");
    expect_true(type && strcmp(type, "aggregate") == 0, "%s: run_type", name);
    expect_true(agg && strcmp(agg, stats[i].stat) == 0, "%s: aggregate_name", name);
    expect_near(json_num(e, "real_time"), stats[i].want, 1e-9, name);
    expect_near(counter(e, "rep"), stats[i].want, 1e-9, name);
  }
  expect_near(al_bench_stat_p90(values, 5), 4.6, 1e-12, "al_bench_stat_p90 over the repetitions");
  expect_true(entry("BM_batch_auto_p50") == NULL, "no statistics without repetitions");
}

static void test_percentile_helpers(void) {
  const double v[] = {5, 1, 4, 2, 3};
  expect_near(al_bench_percentile(v, 5, 0), 1, 0, "p0 = min");
  expect_near(al_bench_percentile(v, 5, 100), 5, 0, "p100 = max");
  expect_near(al_bench_stat_p50(v, 5), 3, 0, "p50");
  expect_near(al_bench_stat_p90(v, 5), 4.6, 1e-12, "p90");
  expect_near(al_bench_stat_p99(v, 5), 4.96, 1e-12, "p99");
  expect_near(al_bench_percentile(v, 1, 90), 5, 0, "one value");
  expect_near(al_bench_percentile(v, 2, 50), 3, 0, "p50 of 5 and 1");
  expect_true(v[0] == 5 && v[1] == 1, "the values are not sorted in place");
  expect_true(isnan(al_bench_percentile(v, 0, 50)), "no values: NaN");
  expect_true(isnan(al_bench_percentile(v, 5, 101)), "q > 100: NaN");
  expect_true(isnan(al_bench_percentile(v, 5, -1)), "q < 0: NaN");
}

/* Weak: null unless the sanitizer's runtime is linked. */
int __asan_address_is_poisoned(void const volatile *addr) __attribute__((weak));
void __tsan_acquire(void *addr) __attribute__((weak));

static void test_context(void) {
  const json *r = report();
  const json *c = json_get(r, "context");
  if (!expect_true(c != NULL, "the report has no context")) return;
  expect_true(context_added_ok, "al_bench_add_context / al_bench_add_default_context failed");
  expect_true(context_refused_ok, "a duplicate, reserved, empty or NULL key was accepted");
  static const struct {
    const char *key, *want;
  } keys[] = {
      {"git_commit", "0123456789abcdef"},      {"miniport", "example"},
      {"escaped", "a \"quoted\" back\\slash"}, {"compiler", AL_BENCH_COMPILER},
      {"build_flags", AL_BENCH_BUILD_FLAGS},   {"allocator", AL_BENCH_ALLOCATOR_IN_USE},
  };
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const char *got = json_str(c, keys[i].key);
    expect_true(got && strcmp(got, keys[i].want) == 0, "context %s = \"%s\", want \"%s\"",
                keys[i].key, got ? got : "(none)", keys[i].want);
  }
  expect_true(strstr(AL_BENCH_BUILD_FLAGS, "-c ") != NULL, "BUILD passed AL_BENCH_BUILD_FLAGS: %s",
              AL_BENCH_BUILD_FLAGS);
  expect_true(strncmp(AL_BENCH_ALLOCATOR, "unknown", 7) != 0, "BUILD passed AL_BENCH_ALLOCATOR");
  expect_true(json_get(c, "date") != NULL, "Google Benchmark's own context is kept");
  /* The allocator named is the one that runs: a sanitizer's runtime, told here by its interface
   * being linked (not by the compiler macros alloclab/sanitizers.h reads), replaces the build's. */
  const char *want = __asan_address_is_poisoned != NULL ? "AddressSanitizer's (replaces "
                     : __tsan_acquire != NULL           ? "ThreadSanitizer's (replaces "
                                                        : AL_BENCH_ALLOCATOR;
  expect_true(strncmp(AL_BENCH_ALLOCATOR_IN_USE, want, strlen(want)) == 0, "allocator in use \"%s\", want \"%s...\"",
              AL_BENCH_ALLOCATOR_IN_USE, want);
}

static void test_user_data_and_barriers(void) {
  get_entry(u, "BM_user_data");
  expect_near(counter(u, "user_data_ok"), 1, 0, "al_bench_user_data");
  get_entry(b, "BM_barriers");
  /* values start at 1+2+3+4 and gain one per iteration; p == values adds 1, d adds 0.5. */
  expect_near(counter(b, "values_sum"), 10 + json_num(b, "iterations") + 1.5, 0,
              "the loop's work was done");
}

static void test_barriers_keep_values(void) {
  int x = 41;
  double d = 2.5;
  void *p = &x;
  AL_BENCH_DO_NOT_OPTIMIZE(x);
  AL_BENCH_DO_NOT_OPTIMIZE(d);
  AL_BENCH_DO_NOT_OPTIMIZE(p);
  al_bench_do_not_optimize(&x);
  al_bench_clobber_memory();
  expect_true(x == 41 && d == 2.5 && p == &x, "the barriers changed a value");
}

/* ---- Misuse, in a child process -------------------------------------------------------------- */

/* Runs fn() in a child; returns its exit status (-1 if it did not exit) and its stderr in @err. */
static int run_child(void (*fn)(void), char *err, size_t err_size) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
    fn();
    fflush(NULL);
    _exit(100);
  }
  close(fds[1]);
  size_t used = 0;
  ssize_t got;
  while (used + 1 < err_size && (got = read(fds[0], err + used, err_size - 1 - used)) > 0)
    used += (size_t)got;
  err[used] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void child_unknown_flag(void) {
  char a0[] = "shim_test", a1[] = "--benchmark_min_time=0.01", a2[] = "--no_such_flag",
       a3[] = "positional";
  char *argv[] = {a0, a1, a2, a3, NULL};
  _exit(al_bench_main(4, argv));
}

static void test_unknown_flags_are_refused(void) {
  char err[8192];
  int rc = run_child(child_unknown_flag, err, sizeof err);
  expect_true(rc == AL_BENCH_MAIN_USAGE, "exit status %d, want %d; stderr:\n%s", rc,
              AL_BENCH_MAIN_USAGE, err);
  expect_true(strstr(err, "unrecognized command-line flag: --no_such_flag") != NULL,
              "stderr lacks the flag:\n%s", err);
  expect_true(strstr(err, "unrecognized command-line flag: positional") != NULL,
              "stderr lacks the positional argument:\n%s", err);
  expect_true(strstr(err, "min_time") == NULL, "a recognised flag was reported:\n%s", err);
}

static void child_bad_registrations(void) {
  al_bench_def *b = al_bench_register("BM_bad_range", bm_batch_auto);
  al_bench_range(b, 5, 1);
  al_bench_dense_range(al_bench_register("BM_bad_dense", bm_batch_auto), 0, 4, 0);
  al_bench_threads(al_bench_register("BM_bad_threads", bm_batch_auto), 0);
  al_bench_thread_range(al_bench_register("BM_bad_thread_range", bm_batch_auto), 4, 2);
  b = al_bench_register("BM_bad_args", bm_batch_auto);
  al_bench_args(b, 2, (const int64_t[]){1, 2});
  al_bench_arg(b, 3);
  al_bench_arg_names(b, 3, (const char *const[]){"a", "b", "c"});
  al_bench_use_manual_time(al_bench_use_real_time(al_bench_register("BM_bad_time", bm_batch_auto)));
  al_bench_min_time(al_bench_iterations(al_bench_register("BM_bad_iter", bm_batch_auto), 3), 1);
  al_bench_repetitions(al_bench_register("BM_bad_reps", bm_batch_auto), 0);
  b = al_bench_register("BM_bad_stats", bm_batch_auto);
  al_bench_compute_statistics(b, "mean", stat_max);
  al_bench_add_percentile_statistics(al_bench_add_percentile_statistics(b));
  al_bench_arg_names(al_bench_register("BM_names_only", bm_batch_auto), 1,
                     (const char *const[]){"n"});
  al_bench_unit(al_bench_register("BM_bad_unit", bm_batch_auto), (al_bench_time_unit)9);
  expect_true(al_bench_register(NULL, bm_batch_auto) == NULL, "NULL name accepted");
  expect_true(al_bench_register("BM_no_fn", NULL) == NULL, "NULL function accepted");
  expect_true(al_bench_arg(NULL, 1) == NULL, "an option on a NULL def returns NULL");
  char a0[] = "shim_test";
  char *argv[] = {a0, NULL};
  _exit(current_failures ? 99 : al_bench_main(1, argv));
}

static void test_bad_registrations_are_reported(void) {
  char err[16384];
  int rc = run_child(child_bad_registrations, err, sizeof err);
  expect_true(rc == AL_BENCH_MAIN_USAGE, "exit status %d, want %d; stderr:\n%s", rc,
              AL_BENCH_MAIN_USAGE, err);
  static const char *const needles[] = {
      "BM_bad_range: al_bench_range: lo 5 > hi 1",
      "BM_bad_dense: al_bench_dense_range: need lo <= hi and step >= 1",
      "BM_bad_threads: al_bench_threads: 0 threads",
      "BM_bad_thread_range: al_bench_thread_range: need 1 <= lo <= hi",
      "BM_bad_args: al_bench_arg: 1 argument(s), but the benchmark's other argument lists have 2",
      "BM_bad_args: al_bench_arg_names: 3 argument(s)",
      "BM_bad_time: al_bench_use_manual_time: not with al_bench_use_real_time",
      "BM_bad_iter: al_bench_min_time: not with al_bench_iterations",
      "BM_bad_reps: al_bench_repetitions: 0 repetitions",
      "BM_bad_stats: al_bench_compute_statistics: \"mean\" is a built-in aggregate",
      "BM_bad_stats: al_bench_compute_statistics: \"p50\" added twice",
      "BM_names_only: al_bench_arg_names without any argument list",
      "BM_bad_unit: al_bench_unit: unknown unit 9",
      "al_bench_register: NULL or empty name",
      "BM_no_fn: al_bench_register: NULL function",
      "registration error(s); nothing was run",
  };
  for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
    expect_true(strstr(err, needles[i]) != NULL, "stderr lacks \"%s\":\n%s", needles[i], err);
}

static void child_no_match(void) {
  al_bench_register("BM_child_only", bm_batch_auto);
  char a0[] = "shim_test", a1[] = "--benchmark_filter=^no_such_benchmark$";
  char *argv[] = {a0, a1, NULL};
  _exit(al_bench_main(2, argv));
}

static void child_clean_run(void) {
  al_bench_register("BM_child_only", bm_batch_auto);
  char a0[] = "shim_test", a1[] = "--benchmark_filter=^BM_child_only$",
       a2[] = "--benchmark_min_time=0.001";
  char *argv[] = {a0, a1, a2, NULL};
  _exit(al_bench_main(3, argv));
}

static void test_exit_statuses(void) {
  char err[8192];
  int rc = run_child(child_no_match, err, sizeof err);
  expect_true(rc == AL_BENCH_MAIN_USAGE, "no match: exit status %d, want %d; stderr:\n%s", rc,
              AL_BENCH_MAIN_USAGE, err);
  rc = run_child(child_clean_run, err, sizeof err);
  expect_true(rc == AL_BENCH_MAIN_OK, "clean run: exit status %d, want %d; stderr:\n%s", rc,
              AL_BENCH_MAIN_OK, err);
}

/* ---- Runner ---------------------------------------------------------------------------------- */

#define T(name) \
  { #name, name }
static const struct {
  const char *name;
  void (*fn)(void);
} tests[] = {
    T(test_percentile_helpers),
    T(test_barriers_keep_values),
    T(test_unknown_flags_are_refused),
    T(test_bad_registrations_are_reported),
    T(test_exit_statuses),
    T(test_every_benchmark_ran_under_its_name),
    T(test_main_reports_failed_runs),
    T(test_batch_loop_counts),
    T(test_arguments_reach_the_state),
    T(test_threads_and_thread_counters),
    T(test_counter_flags),
    T(test_items_and_bytes_per_second),
    T(test_manual_time_and_units),
    T(test_pause_and_real_time),
    T(test_min_time),
    T(test_error_runs),
    T(test_labels),
    T(test_statistics),
    T(test_context),
    T(test_user_data_and_barriers),
};

int main(int argc, char **argv) {
  const char *filter = argc > 1 ? argv[1] : NULL;
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    if (filter && !strstr(tests[i].name, filter)) continue;
    current_failures = 0;
    fprintf(stderr, "[ RUN      ] %s\n", tests[i].name);
    tests[i].fn();
    if (current_failures) {
      failed++;
      fprintf(stderr, "[  FAILED  ] %s\n", tests[i].name);
    } else {
      passed++;
      fprintf(stderr, "[       OK ] %s\n", tests[i].name);
    }
  }
  fprintf(stderr, "%d passed, %d failed\n", passed, failed);
  if (passed + failed == 0) {
    fprintf(stderr, "no test matched\n");
    return 1;
  }
  return failed ? 1 : 0;
}
