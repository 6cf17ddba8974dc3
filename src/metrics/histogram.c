/*
 * Fixed-bucket histograms: the scrape side (snapshots) and spec checks.
 * Observing is inline in histogram.h, because it sits on hot paths.
 */
#include "metrics/histogram.h"

bool sm_hist_spec_valid(const sm_hist_spec_t *spec)
{
    if (spec->n_bounds == 0 || spec->n_bounds > SM_HIST_MAX_BOUNDS || !(spec->scale > 0))
        return false;
    for (unsigned i = 1; i < spec->n_bounds; i++)
        if (spec->bounds[i] <= spec->bounds[i - 1])
            return false;
    return true;
}

void sm_hist_snap_add(sm_hist_snap_t *acc, const sm_hist_t *h, const sm_hist_spec_t *spec)
{
    /* const-qualified atomics cannot be loaded in C11's generic functions on
     * every compiler; the cast only drops the qualifier for the load. */
    sm_hist_t *m = (sm_hist_t *)h;
    for (unsigned i = 0; i <= spec->n_bounds; i++)
        acc->buckets[i] += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
    acc->sum += atomic_load_explicit(&m->sum, memory_order_relaxed);
}

uint64_t sm_hist_snap_count(const sm_hist_snap_t *s, const sm_hist_spec_t *spec)
{
    uint64_t n = 0;
    for (unsigned i = 0; i <= spec->n_bounds; i++)
        n += s->buckets[i];
    return n;
}
