/*
 * signal-bench latency histogram: log-linear buckets in the spirit of
 * HdrHistogram, fixed size, no allocation per sample.
 *
 * Values are nanoseconds (any uint64_t).  Values below 2^SM_BENCH_HIST_SUB_BITS go
 * to their own bucket; above that each power of two is split into
 * 2^(SM_BENCH_HIST_SUB_BITS-1) equal buckets, so a bucket is at most 1/64 (1.6 %)
 * of its value wide.  Quantiles report the middle of the bucket, so the
 * error is at most 0.8 % of the value.
 *
 * Ownership: the caller embeds sm_bench_hist_t (about 30 KiB) wherever it likes;
 * nothing here allocates.  Not thread-safe: one writer, and readers after
 * the writer is done (signal-bench is single-threaded).
 *
 * Not the server's metrics/histogram.h: that one counts into a few fixed
 * Prometheus buckets from many threads and has no quantiles; this one keeps
 * enough resolution for p99.9 and lives only in signal-bench.
 */
#ifndef SM_BENCH_HIST_H
#define SM_BENCH_HIST_H

#include <stddef.h>
#include <stdint.h>

/* 7 bits: 128 exact buckets, then 64 buckets per power of two. */
#define SM_BENCH_HIST_SUB_BITS 7
#define SM_BENCH_HIST_SUB_COUNT (1u << SM_BENCH_HIST_SUB_BITS)
#define SM_BENCH_HIST_HALF (SM_BENCH_HIST_SUB_COUNT / 2)
/* Shifts 1..(64 - SUB_BITS) cover the whole uint64_t range. */
#define SM_BENCH_HIST_BUCKETS                                                                      \
    (SM_BENCH_HIST_SUB_COUNT + (64 - SM_BENCH_HIST_SUB_BITS) * SM_BENCH_HIST_HALF)

typedef struct sm_bench_hist_s {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[SM_BENCH_HIST_BUCKETS];
} sm_bench_hist_t;

/* Empty the histogram. */
void sm_bench_hist_reset(sm_bench_hist_t *h);

/* Bucket index of a value (exposed for the inline add and for tests). */
static inline unsigned sm_bench_hist_index(uint64_t v)
{
    if (v < SM_BENCH_HIST_SUB_COUNT)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned e = msb - SM_BENCH_HIST_SUB_BITS + 1; /* >= 1: v >> e lies in [HALF, SUB_COUNT) */
    return SM_BENCH_HIST_SUB_COUNT + (e - 1) * SM_BENCH_HIST_HALF +
           (unsigned)((v >> e) - SM_BENCH_HIST_HALF);
}

/* Record one value.  O(1), no allocation. */
static inline void sm_bench_hist_add(sm_bench_hist_t *h, uint64_t v)
{
    h->buckets[sm_bench_hist_index(v)]++;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
}

/* Smallest and largest value a bucket holds. */
void sm_bench_hist_bucket_range(unsigned idx, uint64_t *lo, uint64_t *hi);

/* Value at quantile q (0..1): the middle of the bucket holding the
 * ceil(q * count)-th smallest sample, clamped to [min, max].  0 when the
 * histogram is empty. */
uint64_t sm_bench_hist_quantile(const sm_bench_hist_t *h, double q);

/* Add every sample of src into dst. */
void sm_bench_hist_merge(sm_bench_hist_t *dst, const sm_bench_hist_t *src);

#endif
