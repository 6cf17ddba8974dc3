/*
 * The server: its threads, shared services and start/stop order.
 *
 * Owns the I/O threads, the workers, the registry, the store, the auth
 * validator, the events publisher and the metrics listener.  Created and
 * driven by the main thread (src/main.c): sm_server_start(), then
 * sm_server_run() which returns after a SIGTERM/SIGINT drain, then
 * sm_server_free().  Other threads get a const pointer to it and read only
 * the fields documented as shared; the atomics are the only mutable shared
 * state.
 */
#ifndef SM_REACTOR_SERVER_H
#define SM_REACTOR_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/handle.h"
#include "core/mpsc.h"

typedef struct sm_io_thread_s sm_io_thread_t;
typedef struct sm_worker_s sm_worker_t;
typedef struct sm_registry_s sm_registry_t;
typedef struct sm_store_s sm_store_t;
typedef struct sm_auth_s sm_auth_t;
typedef struct sm_events_s sm_events_t;
typedef struct sm_rooms_s sm_rooms_t;
typedef struct sm_cf_s sm_cf_t;

typedef struct sm_server_s {
    /* Immutable after sm_server_start (any thread may read): */
    const sm_config_t *cfg;
    sm_io_thread_t **io;
    unsigned n_io;
    sm_worker_t **workers;
    unsigned n_workers;
    sm_registry_t *registry;
    sm_rooms_t *rooms;
    sm_cf_t *cf; /* cloudflare mode: the Calls API handle, else NULL */
    sm_store_t *store;
    sm_auth_t *auth;
    sm_events_t *events;
    const char *instance_id; /* cfg->instance_id, or hostname:<real port> when the
                                configured port was 0 and no id was set */
    int port;                /* real WebSocket port (after binding port 0) */
    int metrics_port; /* real metrics port, -1 when disabled */
    int64_t started_at_ms;
    struct sm_cidr_list_s *trusted_proxies; /* server.trusted_proxies, or NULL */

    /* Shared mutable state (atomics only): */
    _Atomic bool draining;
    _Atomic int64_t sockets_open; /* accepted TCP connections not yet closed */
    _Atomic int64_t ws_open;      /* upgraded WebSocket connections */
    _Atomic int64_t sfu_sessions; /* cloudflare mode: SFU sessions held by members */

    /* Main-thread private: */
    struct sm_server_priv_s *_priv;
} sm_server_t;

/* Main thread.  Opens the store, cleans up this instance's stale records,
 * starts workers, I/O threads and listeners, logs "listening".  On failure
 * returns SM_E* with err filled (naming the config key where one is to blame)
 * and leaves nothing running. */
int sm_server_start(const sm_config_t *cfg, sm_server_t **out, char *err, size_t errlen);
/* Main thread: run until SIGTERM/SIGINT, then drain and stop every thread.
 * Returns 0 after a clean drain, SM_ETIMEDOUT if drain_timeout expired (the
 * server still stopped). */
int sm_server_run(sm_server_t *s);
/* Main thread, after sm_server_run (or a failed start): frees everything. */
void sm_server_free(sm_server_t *s);

/* Any thread: ask the main thread to begin the drain (as SIGTERM does). */
void sm_server_request_stop(sm_server_t *s);

/* Worker for a connection handle: sessions are pinned by hash(handle). */
unsigned sm_server_worker_for(const sm_server_t *s, sm_handle_t h);

#endif
