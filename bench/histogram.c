/* histogram.c — the log-linear latency histogram (histogram.h). */
#include "histogram.h"

#include <string.h>

void bench_histogram_reset(bench_histogram *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

uint32_t bench_histogram_bucket_of(uint64_t value) {
  if (value < BENCH_HISTOGRAM_SUB_BUCKETS) return (uint32_t)value;
  uint32_t msb = 63u - (uint32_t)__builtin_clzll(value);
  uint32_t shift = msb - BENCH_HISTOGRAM_SUB_BITS + 1u;
  return shift * BENCH_HISTOGRAM_HALF + (uint32_t)(value >> shift);
}

uint64_t bench_histogram_bucket_low(uint32_t bucket) {
  if (bucket < BENCH_HISTOGRAM_SUB_BUCKETS) return bucket;
  uint32_t shift = (bucket - BENCH_HISTOGRAM_SUB_BUCKETS) / BENCH_HISTOGRAM_HALF + 1u;
  uint64_t sub = bucket - shift * BENCH_HISTOGRAM_HALF;
  return sub << shift;
}

uint64_t bench_histogram_bucket_high(uint32_t bucket) {
  if (bucket < BENCH_HISTOGRAM_SUB_BUCKETS) return bucket;
  uint32_t shift = (bucket - BENCH_HISTOGRAM_SUB_BUCKETS) / BENCH_HISTOGRAM_HALF + 1u;
  return bench_histogram_bucket_low(bucket) + ((UINT64_C(1) << shift) - 1u);
}

void bench_histogram_record(bench_histogram *h, uint64_t value) {
  h->buckets[bench_histogram_bucket_of(value)]++;
  h->count++;
  h->sum += (double)value;
  if (value < h->min) h->min = value;
  if (value > h->max) h->max = value;
}

void bench_histogram_merge(bench_histogram *dst, const bench_histogram *src) {
  if (src->count == 0) return;
  for (uint32_t i = 0; i < BENCH_HISTOGRAM_BUCKETS; i++) dst->buckets[i] += src->buckets[i];
  dst->count += src->count;
  dst->sum += src->sum;
  if (src->min < dst->min) dst->min = src->min;
  if (src->max > dst->max) dst->max = src->max;
}

uint64_t bench_histogram_percentile(const bench_histogram *h, double q) {
  if (h->count == 0) return 0;
  if (!(q > 0)) return h->min; /* also NaN */
  if (q >= 100) return h->max;
  /* rank = ceil(q/100 * count), at least 1. */
  double exact = q / 100.0 * (double)h->count;
  uint64_t rank = (uint64_t)exact;
  if ((double)rank < exact) rank++;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (uint32_t i = 0; i < BENCH_HISTOGRAM_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen >= rank) {
      uint64_t v = bench_histogram_bucket_high(i);
      if (v > h->max) v = h->max;
      if (v < h->min) v = h->min;
      return v;
    }
  }
  return h->max;
}

double bench_histogram_mean(const bench_histogram *h) {
  return h->count ? h->sum / (double)h->count : 0.0;
}
