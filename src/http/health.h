/*
 * GET /health body (DECISIONS §7).  Pure formatting; any thread.
 */
#ifndef SM_HTTP_HEALTH_H
#define SM_HTTP_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    bool draining;
    bool store_healthy;
    int64_t active_connections;
    uint64_t registered_clients;
    uint64_t webrtc_sessions;
    const char *version;
    const char *instance_id;
    const char *store_backend;
    int64_t now_ms;
    int64_t started_at_ms;
} sm_health_t;

/* Write the JSON body into out (NUL-terminated) and return the HTTP status:
 * 200 healthy, 503 draining or unhealthy (store unreachable).  *len gets the
 * body length (0 if cap was too small). */
int sm_health_render(const sm_health_t *h, char *out, size_t cap, size_t *len);

#endif
