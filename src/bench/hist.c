/*
 * Log-linear latency histogram for signal-bench (see hist.h for the bucket
 * layout).  Recording is inline in the header; this file holds the rarely
 * called parts: reset, bucket bounds, quantiles and merge.
 */
#include "bench/hist.h"

#include <math.h>
#include <string.h>

void sm_bench_hist_reset(sm_bench_hist_t *h)
{
    memset(h, 0, sizeof *h);
}

void sm_bench_hist_bucket_range(unsigned idx, uint64_t *lo, uint64_t *hi)
{
    if (idx < SM_BENCH_HIST_SUB_COUNT) {
        *lo = *hi = idx;
        return;
    }
    unsigned rel = idx - SM_BENCH_HIST_SUB_COUNT;
    unsigned e = rel / SM_BENCH_HIST_HALF + 1;
    uint64_t m = rel % SM_BENCH_HIST_HALF + SM_BENCH_HIST_HALF;
    *lo = m << e;
    /* For the last bucket (m + 1) << e is 2^64, which wraps to 0 (unsigned,
     * well defined), so hi becomes UINT64_MAX as it should. */
    *hi = ((m + 1) << e) - 1;
}

uint64_t sm_bench_hist_quantile(const sm_bench_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SM_BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            sm_bench_hist_bucket_range(i, &lo, &hi);
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

void sm_bench_hist_merge(sm_bench_hist_t *dst, const sm_bench_hist_t *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    for (unsigned i = 0; i < SM_BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
}
