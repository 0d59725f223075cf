/* histogram_test.c — the log-linear histogram against exact percentiles of sorted samples. */
#include "histogram.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                            \
    }                                                                        \
  } while (0)

static bench_histogram *new_histogram(void) {
  bench_histogram *h = malloc(sizeof *h);
  if (h == NULL) abort();
  bench_histogram_reset(h);
  return h;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest rank, as histogram.h defines the percentile. */
static uint64_t reference_percentile(const uint64_t *sorted, size_t n, double q) {
  if (q <= 0) return sorted[0];
  if (q >= 100) return sorted[n - 1];
  double exact = q / 100.0 * (double)n;
  size_t rank = (size_t)exact;
  if ((double)rank < exact) rank++;
  if (rank == 0) rank = 1;
  return sorted[rank - 1];
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t next_random(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static void test_layout(void) {
  CHECK(bench_histogram_bucket_low(0) == 0);
  for (uint32_t b = 0; b < BENCH_HISTOGRAM_BUCKETS; b++) {
    uint64_t low = bench_histogram_bucket_low(b), high = bench_histogram_bucket_high(b);
    CHECK(low <= high);
    CHECK(bench_histogram_bucket_of(low) == b);
    CHECK(bench_histogram_bucket_of(high) == b);
    if (b + 1 < BENCH_HISTOGRAM_BUCKETS) CHECK(bench_histogram_bucket_low(b + 1) == high + 1);
    if (b < BENCH_HISTOGRAM_SUB_BUCKETS) {
      CHECK(low == b && high == b); /* exact below 256 */
    } else {
      /* Width at most 1/128 of the bucket's lowest value. */
      CHECK((high - low + 1) * BENCH_HISTOGRAM_HALF <= low);
    }
  }
  CHECK(bench_histogram_bucket_high(BENCH_HISTOGRAM_BUCKETS - 1) == UINT64_MAX);
  CHECK(bench_histogram_bucket_of(UINT64_MAX) == BENCH_HISTOGRAM_BUCKETS - 1);
}

static void test_empty_and_edges(void) {
  bench_histogram *h = new_histogram();
  CHECK(bench_histogram_percentile(h, 50) == 0);
  CHECK(bench_histogram_mean(h) == 0);
  bench_histogram_record(h, 0);
  bench_histogram_record(h, UINT64_MAX);
  CHECK(h->count == 2);
  CHECK(bench_histogram_percentile(h, 0) == 0);
  CHECK(bench_histogram_percentile(h, 50) == 0);
  CHECK(bench_histogram_percentile(h, 50.1) == UINT64_MAX);
  CHECK(bench_histogram_percentile(h, 100) == UINT64_MAX);
  CHECK(bench_histogram_percentile(h, 1000) == UINT64_MAX);
  CHECK(bench_histogram_percentile(h, -5) == 0);
  CHECK(bench_histogram_percentile(h, NAN) == 0);
  free(h);

  /* One value: every percentile is that value, exactly (clamped to min/max). */
  h = new_histogram();
  bench_histogram_record(h, 123456789);
  CHECK(bench_histogram_percentile(h, 0) == 123456789);
  CHECK(bench_histogram_percentile(h, 50) == 123456789);
  CHECK(bench_histogram_percentile(h, 99.9) == 123456789);
  CHECK(bench_histogram_mean(h) == 123456789.0);
  free(h);
}

static void test_exact_small_values(void) {
  bench_histogram *h = new_histogram();
  uint64_t values[BENCH_HISTOGRAM_SUB_BUCKETS];
  for (uint64_t v = 0; v < BENCH_HISTOGRAM_SUB_BUCKETS; v++) {
    values[v] = v;
    bench_histogram_record(h, v);
  }
  static const double qs[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 100};
  for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
    CHECK(bench_histogram_percentile(h, qs[i]) ==
          reference_percentile(values, BENCH_HISTOGRAM_SUB_BUCKETS, qs[i]));
  CHECK(fabs(bench_histogram_mean(h) - 127.5) < 1e-9);
  free(h);
}

/* Log-uniform samples over 1 ns .. ~17 s: every percentile lands in the bucket of the exact one
 * and is never below it. */
static void test_against_sorted(size_t n) {
  bench_histogram *h = new_histogram();
  uint64_t *values = malloc(n * sizeof *values);
  if (values == NULL) abort();
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t bits = (uint32_t)(next_random() % 34u);
    uint64_t v = (UINT64_C(1) << bits) + next_random() % (UINT64_C(1) << bits);
    values[i] = v;
    sum += (double)v;
    bench_histogram_record(h, v);
  }
  qsort(values, n, sizeof *values, compare_u64);
  CHECK(h->min == values[0]);
  CHECK(h->max == values[n - 1]);
  CHECK(fabs(bench_histogram_mean(h) - sum / (double)n) <= 1e-6 * (sum / (double)n));
  static const double qs[] = {0, 0.1, 1, 10, 50, 90, 99, 99.9, 99.99, 100};
  for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
    uint64_t got = bench_histogram_percentile(h, qs[i]), want = reference_percentile(values, n, qs[i]);
    CHECK(got >= want);
    CHECK(bench_histogram_bucket_of(got) == bench_histogram_bucket_of(want));
    CHECK((double)(got - want) <= (double)want / 128.0);
    if (got < want || bench_histogram_bucket_of(got) != bench_histogram_bucket_of(want))
      fprintf(stderr, "  n=%zu q=%g: got %llu, want %llu\n", n, qs[i], (unsigned long long)got,
              (unsigned long long)want);
  }
  free(values);
  free(h);
}

static void test_merge(void) {
  bench_histogram *a = new_histogram(), *b = new_histogram(), *all = new_histogram();
  for (int i = 0; i < 10000; i++) {
    uint64_t v = next_random() % 1000000u;
    bench_histogram_record(i % 3 ? a : b, v);
    bench_histogram_record(all, v);
  }
  bench_histogram *empty = new_histogram();
  bench_histogram_merge(a, empty); /* merging nothing changes nothing */
  bench_histogram_merge(a, b);
  CHECK(a->count == all->count && a->min == all->min && a->max == all->max);
  for (uint32_t i = 0; i < BENCH_HISTOGRAM_BUCKETS; i++) CHECK(a->buckets[i] == all->buckets[i]);
  CHECK(bench_histogram_percentile(a, 99) == bench_histogram_percentile(all, 99));
  free(a);
  free(b);
  free(all);
  free(empty);
}

int main(void) {
  test_layout();
  test_empty_and_edges();
  test_exact_small_values();
  test_against_sorted(1);
  test_against_sorted(7);
  test_against_sorted(1000);
  test_against_sorted(100000);
  test_merge();
  if (failures) {
    fprintf(stderr, "histogram_test: %d check(s) failed\n", failures);
    return 1;
  }
  printf("histogram_test: all checks passed\n");
  return 0;
}
