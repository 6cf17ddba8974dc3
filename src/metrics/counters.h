/*
 * Per-thread counters.  Every I/O thread and worker owns one sm_counters_t
 * and is its only writer; the metrics scrape (main thread) reads all of them
 * and sums.  Relaxed atomics make the cross-thread reads well-defined without
 * costing a locked instruction on the writer's hot path (a single writer can
 * load + store instead of fetch_add).
 *
 * The block also holds the thread's histograms (metrics/histogram.h) and the
 * counters behind them; metrics/observe.h has the functions that fill those
 * (session ends, store completions, REST attempts), so that callers do not
 * index these arrays themselves.  Every array is indexed by a small fixed
 * table below: labels stay bounded by construction.
 */
#ifndef SM_METRICS_COUNTERS_H
#define SM_METRICS_COUNTERS_H

#include <sm/proto.h>
#include <stdatomic.h>
#include <stdint.h>

#include "metrics/histogram.h"

/* X-macro tables, one entry per label value. */
/* clang-format off */

/* Protocol error codes we count, in this order. */
#define SM_METRIC_ERROR_CODES(X) \
    X(400) X(401) X(403) X(404) X(408) X(409) X(413) X(429) X(500) X(503)
enum {
#define SM__ERRIDX(c) SM_ERRIDX_##c,
    SM_METRIC_ERROR_CODES(SM__ERRIDX)
#undef SM__ERRIDX
    SM_ERRIDX_COUNT
};

/* Close codes we count. */
#define SM_METRIC_CLOSE_CODES(X) \
    X(1000) X(1001) X(1002) X(1003) X(1007) X(1008) X(1009) X(1011) X(4408) X(4409)
enum {
#define SM__CLOSEIDX(c) SM_CLOSEIDX_##c,
    SM_METRIC_CLOSE_CODES(SM__CLOSEIDX)
#undef SM__CLOSEIDX
    SM_CLOSEIDX_OTHER,
    SM_CLOSEIDX_COUNT
};

/* Store operations: one slot per sm_store_op_t value, named by
 * sm_store_op_name() (metrics/observe.c checks the count at compile time). */
#define SM_METRIC_STORE_OPS 11

/* Outcome of a store operation, from its completion status. */
#define SM_METRIC_STORE_OUTCOMES(X) \
    X(OK, "ok") X(NOT_FOUND, "not_found") X(CONFLICT, "conflict") X(ERROR, "error")
enum {
#define SM__STOREOUT(id, name) SM_STORE_OUTCOME_##id,
    SM_METRIC_STORE_OUTCOMES(SM__STOREOUT)
#undef SM__STOREOUT
    SM_STORE_OUTCOME_COUNT
};

/* REST APIs, from the prefix of sm_rest_opts_t.what ("firestore.get" ->
 * firestore, "gcreds.token" -> token; anything else -> other). */
#define SM_METRIC_REST_APIS(X) \
    X(FIRESTORE, "firestore") X(CLOUDFLARE, "cloudflare") X(PUBSUB, "pubsub") \
    X(TOKEN, "token") X(OTHER, "other")
enum {
#define SM__RESTAPI(id, name) SM_REST_API_##id,
    SM_METRIC_REST_APIS(SM__RESTAPI)
#undef SM__RESTAPI
    SM_REST_API_COUNT
};

/* Status class of one HTTP attempt: the HTTP status' hundreds, or how it
 * failed without one (timeout; error = network error or unusable response). */
#define SM_METRIC_REST_CLASSES(X) \
    X(1XX, "1xx") X(2XX, "2xx") X(3XX, "3xx") X(4XX, "4xx") X(5XX, "5xx") \
    X(TIMEOUT, "timeout") X(ERROR, "error")
enum {
#define SM__RESTCLASS(id, name) SM_REST_CLASS_##id,
    SM_METRIC_REST_CLASSES(SM__RESTCLASS)
#undef SM__RESTCLASS
    SM_REST_CLASS_COUNT
};

/* Outcome of a whole REST call (its last attempt): ok = HTTP 1xx-3xx. */
#define SM_METRIC_REST_OUTCOMES(X) \
    X(OK, "ok") X(CLIENT_ERROR, "client_error") X(SERVER_ERROR, "server_error") \
    X(TIMEOUT, "timeout") X(ERROR, "error")
enum {
#define SM__RESTOUT(id, name) SM_REST_OUTCOME_##id,
    SM_METRIC_REST_OUTCOMES(SM__RESTOUT)
#undef SM__RESTOUT
    SM_REST_OUTCOME_COUNT
};

/* clang-format on */

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
    /* Rate limiting (issue 5 item 3; written by whoever enforces the limit):
     * connection attempts or upgrades refused with HTTP 429, and frames
     * answered ERROR 429. */
    _Atomic uint64_t connect_rejected_total;
    _Atomic uint64_t messages_rate_limited_total;

    /* Workers only (metrics/observe.h fills them). */
    sm_hist_t session_duration;                   /* ms, CONNECT_ACK -> session end */
    sm_hist_t store_latency[SM_METRIC_STORE_OPS]; /* us, submit -> backend completion */
    _Atomic uint64_t store_ops[SM_METRIC_STORE_OPS][SM_STORE_OUTCOME_COUNT];
    sm_hist_t rest_latency[SM_REST_API_COUNT][SM_REST_CLASS_COUNT]; /* ms, per attempt */
    _Atomic uint64_t rest_calls[SM_REST_API_COUNT][SM_REST_OUTCOME_COUNT];
    _Atomic uint64_t rest_retries[SM_REST_API_COUNT];
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
