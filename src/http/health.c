/*
 * Health document: liveness plus the counters operators look at first.
 */
#include "http/health.h"

#include <stdio.h>

#include "core/clock.h"
#include "log/log.h"

int sm_health_render(const sm_health_t *h, char *out, size_t cap, size_t *len)
{
    const char *status = h->draining ? "draining" : (h->store_healthy ? "healthy" : "unhealthy");
    char ts[40], inst[256];
    sm_clock_rfc3339(h->now_ms, ts, sizeof ts);
    sm_json_escape(inst, sizeof inst, h->instance_id ? h->instance_id : "");
    int n = snprintf(out, cap,
                     "{\"status\":\"%s\",\"timestamp\":\"%s\",\"active_connections\":%lld,"
                     "\"registered_clients\":%llu,\"webrtc_sessions\":%llu,\"version\":\"%s\","
                     "\"instance_id\":\"%s\",\"store\":{\"backend\":\"%s\",\"healthy\":%s},"
                     "\"uptime_seconds\":%lld}",
                     status, ts, (long long)h->active_connections,
                     (unsigned long long)h->registered_clients,
                     (unsigned long long)h->webrtc_sessions, h->version, inst,
                     h->store_backend ? h->store_backend : "none",
                     h->store_healthy ? "true" : "false",
                     (long long)((h->now_ms - h->started_at_ms) / 1000));
    *len = (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
    return (h->draining || !h->store_healthy) ? 503 : 200;
}
