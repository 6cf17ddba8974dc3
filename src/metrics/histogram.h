/*
 * Fixed-bucket histograms with one writer thread (the same pattern as
 * sm_counters_t in metrics/counters.h).
 *
 * A histogram is two parts:
 *   - an sm_hist_spec_t: the bucket upper bounds, in an integer unit chosen
 *     per histogram (microseconds, milliseconds), and the factor that turns
 *     that unit into the exposed base unit (seconds).  Specs are immutable
 *     (static const tables in metrics/observe.c), shared by every thread.
 *   - an sm_hist_t: per-bucket counts and the sum, embedded in the writer
 *     thread's sm_counters_t.  Only that thread writes (sm_hist_observe);
 *     any thread may read (sm_hist_snap_add), typically the /metrics scrape
 *     on the main thread, which adds the blocks of every thread together.
 *
 * Observing costs a short scan of at most SM_HIST_MAX_BOUNDS integers and two
 * relaxed load+store pairs: no allocation, no lock, no locked instruction.
 * Buckets are stored non-cumulatively; the scrape makes them cumulative.
 * A scrape that races with a writer may see a bucket incremented and the sum
 * not yet (or the reverse): each value is exact on its own, and the next
 * scrape is consistent again, which is all Prometheus needs.
 *
 * Owns no global state.
 */
#ifndef SM_METRICS_HISTOGRAM_H
#define SM_METRICS_HISTOGRAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Most bucket bounds a histogram may have (the +Inf bucket comes on top). */
#define SM_HIST_MAX_BOUNDS 20

typedef struct {
    /* Upper bounds ("le"), strictly ascending, in the histogram's unit. */
    uint64_t bounds[SM_HIST_MAX_BOUNDS];
    unsigned n_bounds; /* 1..SM_HIST_MAX_BOUNDS */
    double scale;      /* unit -> exposed base unit, e.g. 1e-6 for us -> s */
} sm_hist_spec_t;

/* Per-thread state; zero-initialised storage is an empty histogram. */
typedef struct {
    _Atomic uint64_t buckets[SM_HIST_MAX_BOUNDS + 1]; /* [n_bounds] is +Inf */
    _Atomic uint64_t sum;                             /* in the spec's unit */
} sm_hist_t;

/* A scrape-side total over any number of sm_hist_t (plain integers). */
typedef struct {
    uint64_t buckets[SM_HIST_MAX_BOUNDS + 1]; /* non-cumulative, like sm_hist_t */
    uint64_t sum;
} sm_hist_snap_t;

/* Any thread, pure: the bucket index of value v (first bound >= v, so a value
 * equal to a bound counts in that bound's bucket, as Prometheus' "le" says);
 * spec->n_bounds for values above the last bound (+Inf). */
static inline unsigned sm_hist_bucket(const sm_hist_spec_t *spec, uint64_t v)
{
    unsigned i = 0;
    while (i < spec->n_bounds && v > spec->bounds[i])
        i++;
    return i;
}

/* Writer thread of h only: count one observation of v (in the spec's unit). */
static inline void sm_hist_observe(sm_hist_t *h, const sm_hist_spec_t *spec, uint64_t v)
{
    _Atomic uint64_t *b = &h->buckets[sm_hist_bucket(spec, v)];
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum, atomic_load_explicit(&h->sum, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* Any thread: CLOCK_MONOTONIC in microseconds (for latencies). */
static inline uint64_t sm_hist_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Any thread: add h's current values to acc (h may be written meanwhile). */
void sm_hist_snap_add(sm_hist_snap_t *acc, const sm_hist_t *h, const sm_hist_spec_t *spec);

/* Pure: number of observations in a snapshot (sum of its buckets). */
uint64_t sm_hist_snap_count(const sm_hist_snap_t *s, const sm_hist_spec_t *spec);

/* Pure: true when spec is usable (1..SM_HIST_MAX_BOUNDS strictly ascending
 * bounds, scale > 0).  The built-in specs are checked by the unit tests. */
bool sm_hist_spec_valid(const sm_hist_spec_t *spec);

#endif
