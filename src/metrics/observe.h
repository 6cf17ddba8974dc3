/*
 * Observation points for the histograms and labelled counters of
 * sm_counters_t (metrics/counters.h): the one-line hooks other modules call
 * where a session ends, a store operation completes or a REST attempt
 * finishes, plus the label tables the scrape prints.
 *
 * Threads.  Every sm_metrics_* writer below writes the sm_counters_t it is
 * given (or the calling thread's, see sm_metrics_thread_set) and so must be
 * called by that block's owner thread only: the single-writer rule of
 * counters.h.  Nothing here allocates or locks.
 *
 * Global state: one thread-local pointer (the calling thread's counters
 * block, NULL until set), so that modules without a handle on the worker
 * (store.c) can find it.
 */
#ifndef SM_METRICS_OBSERVE_H
#define SM_METRICS_OBSERVE_H

#include <stdint.h>

#include "cloud/http_client.h"
#include "metrics/counters.h"
#include "metrics/histogram.h"

/* Bucket bounds (static, immutable; any thread may read them). */
extern const sm_hist_spec_t sm_metrics_session_spec; /* ms: 1 s .. 24 h */
extern const sm_hist_spec_t sm_metrics_store_spec;   /* us: 100 us .. 10 s */
extern const sm_hist_spec_t sm_metrics_rest_spec;    /* ms: 5 ms .. 30 s */

/* Owner thread: make c the calling thread's block (NULL to clear).  Each
 * worker sets its own at start; c is borrowed and must outlive the thread's
 * use of it (clear it before c goes away). */
void sm_metrics_thread_set(sm_counters_t *c);
/* The calling thread's block, or NULL (main thread, store thread, tests). */
sm_counters_t *sm_metrics_thread(void);

/* Owner of c: a session that got CONNECT_ACK at wall-clock connected_at_ms
 * ended now.  A clock that went backwards counts as 0 s. */
void sm_metrics_session_ended(sm_counters_t *c, int64_t connected_at_ms);
/* Same with an explicit end time (tests). */
void sm_metrics_session_ended_at(sm_counters_t *c, int64_t connected_at_ms, int64_t ended_at_ms);

/* Calling thread (store.c, on the reply thread of the operation): count one
 * completed store operation of kind op (an sm_store_op_t value) with its
 * completion status (0, SM_ENOTFOUND, SM_ECONFLICT, other = error) and its
 * latency in microseconds, in the calling thread's block.  A no-op when the
 * thread has none, or op is out of range. */
void sm_metrics_store_done(int op, int status, uint64_t elapsed_us);
/* Same into an explicit block (owner thread of c). */
void sm_metrics_store_done_in(sm_counters_t *c, int op, int status, uint64_t elapsed_us);

/*
 * An sm_rest_attempt_cb: register it on a REST client with the owner
 * thread's block as arg,
 *     sm_rest_client_set_attempt_hook(rest, sm_metrics_rest_attempt, &counters);
 * Each attempt observes rest_latency[api][class]; the last attempt of a call
 * (a->retry false) counts rest_calls[api][outcome]; a retried one counts
 * rest_retries[api].  Runs on the client's loop thread, which must be the
 * owner of arg's block.
 */
void sm_metrics_rest_attempt(const sm_rest_attempt_t *a, void *arg);

/* Pure, any thread: label indexes and names.  Never NULL. */
unsigned sm_metrics_rest_api(const char *what); /* NULL or unknown prefix -> OTHER */
unsigned sm_metrics_rest_class(int status, int err);
unsigned sm_metrics_rest_outcome(int status, int err);
unsigned sm_metrics_store_outcome(int status);
const char *sm_metrics_rest_api_name(unsigned api);
const char *sm_metrics_rest_class_name(unsigned cls);
const char *sm_metrics_rest_outcome_name(unsigned outcome);
const char *sm_metrics_store_outcome_name(unsigned outcome);

#endif
