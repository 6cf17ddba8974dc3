/*
 * Event queue: formatting, the bounded ring shared with the backend, the
 * counters, and the backend table (none, log, pubsub).
 *
 * The ring is protected by a mutex held only for a pointer store or a batch
 * of pointer moves; formatting and the copy happen before the lock, the
 * backend's wake-up (a condition signal or a uv_async_send) after it.
 */
#include "events/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "events/events_internal.h"
#include "log/log.h"

/* events.backend -> table; `none` has no table (nothing is queued). */
static const struct {
    const char *name;
    const sm__events_backend_t *be;
} backends[] = {
    {"none", NULL},
    {"log", &sm__events_backend_log},
    {"pubsub", &sm__events_backend_pubsub},
};

int sm_events_open(const sm_config_t *cfg, sm_events_t **out, char *err, size_t errlen)
{
    const sm__events_backend_t *be = NULL;
    bool known = false;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (strcmp(cfg->events_backend, backends[i].name) == 0) {
            be = backends[i].be;
            known = true;
        }
    }
    if (!known) {
        /* The config table only lets known names through. */
        snprintf(err, errlen, "events.backend: unknown backend \"%s\"", cfg->events_backend);
        return SM_ECONFIG;
    }
    sm_events_t *ev = sm_xcalloc(1, sizeof *ev);
    ev->instance_id = sm_xstrdup(cfg->instance_id ? cfg->instance_id : "");
    atomic_init(&ev->published, 0);
    atomic_init(&ev->dropped, 0);
    if (be != NULL) {
        ev->cap = (size_t)cfg->events_queue_size;
        ev->ring = sm_xcalloc(ev->cap, sizeof *ev->ring);
        pthread_mutex_init(&ev->lock, NULL);
        pthread_cond_init(&ev->cond, NULL);
        int rc = be->open(ev, cfg, err, errlen);
        if (rc != 0) {
            pthread_mutex_destroy(&ev->lock);
            pthread_cond_destroy(&ev->cond);
            free(ev->ring);
            free(ev->instance_id);
            free(ev);
            return rc;
        }
        ev->be = be;
    }
    *out = ev;
    return 0;
}

int sm_events_check(sm_events_t *ev, char *err, size_t errlen)
{
    if (ev == NULL || ev->be == NULL || ev->be->check == NULL)
        return 0;
    return ev->be->check(ev, err, errlen);
}

void sm_events_set_instance_id(sm_events_t *ev, const char *instance_id)
{
    free(ev->instance_id);
    ev->instance_id = sm_xstrdup(instance_id ? instance_id : "");
}

void sm_events_close(sm_events_t *ev)
{
    if (ev == NULL)
        return;
    if (ev->be != NULL) {
        ev->be->close(ev);
        /* The backend delivered or dropped everything it took; anything
         * still queued (a backend that gave up) is lost. */
        for (size_t i = 0; i < ev->count; i++)
            free(ev->ring[(ev->head + i) % ev->cap]);
        if (ev->count > 0)
            sm__events_lost(ev, ev->count);
        free(ev->ring);
        pthread_mutex_destroy(&ev->lock);
        pthread_cond_destroy(&ev->cond);
    }
    free(ev->instance_id);
    free(ev);
}

/* Append ,"k":"v" when it fits whole (leaving room for the closing "}\n");
 * a field that does not fit is left out, so the line stays valid JSON. */
static void add_field(char *buf, size_t cap, size_t *len, const char *k, const char *v)
{
    if (v == NULL)
        return;
    char esc[600];
    sm_json_escape(esc, sizeof esc, v);
    size_t room = cap - *len;
    int n = snprintf(buf + *len, room, ",\"%s\":\"%s\"", k, esc);
    if (n > 0 && (size_t)n + 3 <= room)
        *len += (size_t)n;
    else
        buf[*len] = '\0';
}

void sm_events_emit(sm_events_t *ev, const char *event, const char *client_id, const char *room_id,
                    const char *session_id)
{
    if (ev == NULL || ev->be == NULL)
        return;
    char line[2048], ts[40];
    sm_clock_rfc3339(sm_clock_wall_ms(), ts, sizeof ts);
    size_t len = 0;
    int n = snprintf(line, sizeof line, "{\"event\":\"%s\",\"timestamp\":\"%s\"", event, ts);
    len = (size_t)n;
    add_field(line, sizeof line, &len, "instance_id", ev->instance_id);
    add_field(line, sizeof line, &len, "client_id", client_id);
    add_field(line, sizeof line, &len, "room_id", room_id);
    add_field(line, sizeof line, &len, "session_id", session_id);
    memcpy(line + len, "}\n", 3);
    len += 2;
    /* One block: the line, then the event name for the backends that
     * need it apart (events_internal.h). */
    size_t elen = strlen(event);
    char *item = sm_xmalloc(len + 1 + elen + 1);
    memcpy(item, line, len + 1);
    memcpy(item + len + 1, event, elen + 1);

    pthread_mutex_lock(&ev->lock);
    if (ev->count == ev->cap) {
        pthread_mutex_unlock(&ev->lock);
        free(item);
        atomic_fetch_add_explicit(&ev->dropped, 1, memory_order_relaxed);
        return;
    }
    ev->ring[(ev->head + ev->count) % ev->cap] = item;
    size_t queued = ++ev->count;
    pthread_mutex_unlock(&ev->lock);
    atomic_fetch_add_explicit(&ev->published, 1, memory_order_relaxed);
    if (ev->be->wake != NULL)
        ev->be->wake(ev, queued);
}

uint64_t sm_events_published(const sm_events_t *ev)
{
    return ev ? atomic_load_explicit(&((sm_events_t *)ev)->published, memory_order_relaxed) : 0;
}

uint64_t sm_events_dropped(const sm_events_t *ev)
{
    return ev ? atomic_load_explicit(&((sm_events_t *)ev)->dropped, memory_order_relaxed) : 0;
}

/* ---- For the backends (events_internal.h) --------------------------------- */

/* Under the lock. */
static size_t take_locked(sm_events_t *ev, char **out, size_t max)
{
    size_t n = ev->count < max ? ev->count : max;
    for (size_t i = 0; i < n; i++)
        out[i] = ev->ring[(ev->head + i) % ev->cap];
    ev->head = (ev->head + n) % ev->cap;
    ev->count -= n;
    return n;
}

size_t sm__events_take(sm_events_t *ev, char **out, size_t max)
{
    pthread_mutex_lock(&ev->lock);
    size_t n = take_locked(ev, out, max);
    pthread_mutex_unlock(&ev->lock);
    return n;
}

size_t sm__events_wait_take(sm_events_t *ev, char **out, size_t max)
{
    pthread_mutex_lock(&ev->lock);
    while (ev->count == 0 && !ev->stop)
        pthread_cond_wait(&ev->cond, &ev->lock);
    size_t n = take_locked(ev, out, max);
    pthread_mutex_unlock(&ev->lock);
    return n;
}

void sm__events_stop(sm_events_t *ev)
{
    pthread_mutex_lock(&ev->lock);
    ev->stop = true;
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
}

size_t sm__events_queued(sm_events_t *ev)
{
    pthread_mutex_lock(&ev->lock);
    size_t n = ev->count;
    pthread_mutex_unlock(&ev->lock);
    return n;
}

void sm__events_lost(sm_events_t *ev, uint64_t n)
{
    atomic_fetch_add_explicit(&ev->dropped, n, memory_order_relaxed);
}
