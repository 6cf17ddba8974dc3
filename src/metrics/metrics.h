/*
 * Prometheus metrics: rendering of the per-thread counters (summed at scrape
 * time) and the small HTTP listener that serves them at GET /metrics.
 *
 * Runs on the main thread's loop.  sm_metrics_render may be called from any
 * thread (it only reads atomics and /proc).
 */
#ifndef SM_METRICS_METRICS_H
#define SM_METRICS_METRICS_H

#include <stddef.h>
#include <uv.h>

#include "reactor/server.h"

typedef struct sm_metrics_s sm_metrics_t;

/* Main thread: serve /metrics on fd (bound and listening) with loop. */
int sm_metrics_start(sm_server_t *srv, uv_loop_t *loop, int fd, sm_metrics_t **out);
/* Main thread: close the listener and open scrapes; the loop must run again
 * to finish closing, after which the struct is freed. */
void sm_metrics_stop(sm_metrics_t *m);

/* The exposition text (malloc'd, caller frees); *len gets its length. */
char *sm_metrics_render(sm_server_t *srv, size_t *len);

#endif
