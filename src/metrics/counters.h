/*
 * Per-thread counters.  Every I/O thread and worker owns one sm_counters_t
 * and is its only writer; the metrics scrape (main thread) reads all of them
 * and sums.  Relaxed atomics make the cross-thread reads well-defined without
 * costing a locked instruction on the writer's hot path (a single writer can
 * load + store instead of fetch_add).
 */
#ifndef SM_METRICS_COUNTERS_H
#define SM_METRICS_COUNTERS_H

#include <sm/proto.h>
#include <stdatomic.h>
#include <stdint.h>

/* Protocol error codes we count, in this order. */
#define SM_METRIC_ERROR_CODES(X)                                                                   \
    X(400) X(401) X(403) X(404) X(408) X(409) X(413) X(429) X(500) X(503)
enum {
#define SM__ERRIDX(c) SM_ERRIDX_##c,
    SM_METRIC_ERROR_CODES(SM__ERRIDX)
#undef SM__ERRIDX
    SM_ERRIDX_COUNT
};

/* Close codes we count. */
#define SM_METRIC_CLOSE_CODES(X) X(1000) X(1001) X(1002) X(1003) X(1007) X(1008) X(1009) X(1011) X(4408) X(4409)
enum {
#define SM__CLOSEIDX(c) SM_CLOSEIDX_##c,
    SM_METRIC_CLOSE_CODES(SM__CLOSEIDX)
#undef SM__CLOSEIDX
    SM_CLOSEIDX_OTHER,
    SM_CLOSEIDX_COUNT
};

typedef struct {
    _Atomic uint64_t msgs_in[SM_MSG_TYPE_COUNT + 1]; /* last slot: unknown types */
    _Atomic uint64_t msgs_out[SM_MSG_TYPE_COUNT + 1];
    _Atomic uint64_t errors[SM_ERRIDX_COUNT];
    _Atomic uint64_t closes[SM_CLOSEIDX_COUNT];
    _Atomic uint64_t bytes_in, bytes_out;
    _Atomic uint64_t connections_total; /* accepted TCP connections */
    _Atomic uint64_t upgrades_total;    /* successful WebSocket upgrades */
    _Atomic uint64_t http_requests_total;
    _Atomic uint64_t rejected_total; /* upgrades refused with 503 (full or draining) */
    _Atomic uint64_t slow_consumers_total;
    _Atomic uint64_t backpressure_pauses_total;
} sm_counters_t;

/* Writer thread only. */
static inline void sm_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Any thread. */
static inline uint64_t sm_count_read(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline unsigned sm_metric_error_index(int code)
{
    switch (code) {
#define SM__ERRCASE(c)                                                                             \
    case c:                                                                                        \
        return SM_ERRIDX_##c;
        SM_METRIC_ERROR_CODES(SM__ERRCASE)
#undef SM__ERRCASE
    default:
        return SM_ERRIDX_500;
    }
}

static inline unsigned sm_metric_close_index(int code)
{
    switch (code) {
#define SM__CLOSECASE(c)                                                                           \
    case c:                                                                                        \
        return SM_CLOSEIDX_##c;
        SM_METRIC_CLOSE_CODES(SM__CLOSECASE)
#undef SM__CLOSECASE
    default:
        return SM_CLOSEIDX_OTHER;
    }
}

/* Dense index of a wire message type for msgs_in/msgs_out. */
static inline unsigned sm_metric_msg_index(uint8_t type)
{
    const sm_msg_info_t *mi = sm_msg_info(type);
    return mi ? mi->index : SM_MSG_TYPE_COUNT;
}

#endif
