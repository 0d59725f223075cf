/*
 * histogram.h — a small log-linear histogram of latencies (HdrHistogram's bucket layout, which
 * Debian does not package), for the tail-latency benchmarks.
 *
 * DOC: Overview
 * Values are unsigned 64-bit integers (nanoseconds in the benchmarks). Values below
 * BENCH_HISTOGRAM_SUB_BUCKETS (256) get a bucket each, so they are kept exactly. Above that, each
 * power-of-two range [2^k, 2^(k+1)) is cut into BENCH_HISTOGRAM_SUB_BUCKETS / 2 (128) buckets of
 * equal width, so a bucket spans at most 1/128 of its lowest value: any value read back
 * (percentile) is within 0.79% of a recorded value of the same bucket. Every uint64 value fits;
 * nothing is clamped. Recording is O(1) (a count-leading-zeros and an add); a percentile is one
 * walk over the buckets (BENCH_HISTOGRAM_BUCKETS of them).
 *
 * Percentile q (0..100) is the value v at rank ceil(q/100 * count) (at least rank 1) in the
 * sorted records, as HdrHistogram defines it, reported as the highest value of v's bucket, but
 * never above the largest recorded value (so q = 100 is the exact maximum and q = 0 the exact
 * minimum).
 *
 * Ownership and threads: the struct is plain data (about 60 KiB: allocate it, do not put it on a
 * small stack); one per thread, merged afterwards with bench_histogram_merge(). No locking.
 */
#ifndef ALLOCLAB_BENCH_HISTOGRAM_H
#define ALLOCLAB_BENCH_HISTOGRAM_H

#include <stdint.h>

#define BENCH_HISTOGRAM_SUB_BITS 8u
#define BENCH_HISTOGRAM_SUB_BUCKETS (1u << BENCH_HISTOGRAM_SUB_BITS)
#define BENCH_HISTOGRAM_HALF (BENCH_HISTOGRAM_SUB_BUCKETS / 2u)
/* Exact buckets for [0, 256), then 128 buckets per power of two for shifts 1..56. */
#define BENCH_HISTOGRAM_BUCKETS \
  (BENCH_HISTOGRAM_SUB_BUCKETS + (64u - BENCH_HISTOGRAM_SUB_BITS) * BENCH_HISTOGRAM_HALF)

typedef struct bench_histogram {
  uint64_t count;
  uint64_t min; /* UINT64_MAX while empty */
  uint64_t max;
  double sum;   /* for the mean */
  uint64_t buckets[BENCH_HISTOGRAM_BUCKETS];
} bench_histogram;

/* Empties @h. */
void bench_histogram_reset(bench_histogram *h);

/* Records one value. */
void bench_histogram_record(bench_histogram *h, uint64_t value);

/* Adds every record of @src to @dst. */
void bench_histogram_merge(bench_histogram *dst, const bench_histogram *src);

/* The @q-th percentile (see the overview); 0 when @h is empty; @q is clamped to [0, 100]. */
uint64_t bench_histogram_percentile(const bench_histogram *h, double q);

/* The mean of the recorded values (exact, from the running sum); 0 when empty. */
double bench_histogram_mean(const bench_histogram *h);

/* The bucket of @value and the inclusive range of values it holds (for tests). */
uint32_t bench_histogram_bucket_of(uint64_t value);
uint64_t bench_histogram_bucket_low(uint32_t bucket);
uint64_t bench_histogram_bucket_high(uint32_t bucket);

#endif /* ALLOCLAB_BENCH_HISTOGRAM_H */
