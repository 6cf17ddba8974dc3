/*
 * Event queue and the `log` backend.
 *
 * The queue is a mutex-protected ring of ready-made JSON lines.  The lock is
 * held for a pointer store; formatting happens before it.  One writer thread
 * waits on a condition variable and appends batches with writev-free
 * fwrite+fflush per batch, so a burst of events costs one write(2).
 */
#include "events/events.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "log/log.h"

struct sm_events_s {
    bool enabled;
    char *instance_id;
    FILE *fp;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char **ring;
    size_t cap, head, count;
    bool stop;
    _Atomic uint64_t published, dropped;
};

static int mkdir_parents(const char *path)
{
    char *dup = sm_xstrdup(path);
    for (char *p = dup + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(dup, 0755) != 0 && errno != EEXIST) {
                free(dup);
                return -1;
            }
            *p = '/';
        }
    }
    free(dup);
    return 0;
}

static void *writer_main(void *arg)
{
    sm_events_t *ev = arg;
    sm_log_set_thread("events");
    pthread_mutex_lock(&ev->lock);
    for (;;) {
        while (ev->count == 0 && !ev->stop)
            pthread_cond_wait(&ev->cond, &ev->lock);
        if (ev->count == 0 && ev->stop)
            break;
        /* Take the whole batch, write it without the lock. */
        size_t n = ev->count;
        char **batch = sm_xmalloc(n * sizeof *batch);
        for (size_t i = 0; i < n; i++)
            batch[i] = ev->ring[(ev->head + i) % ev->cap];
        ev->head = (ev->head + n) % ev->cap;
        ev->count = 0;
        pthread_mutex_unlock(&ev->lock);
        for (size_t i = 0; i < n; i++) {
            fputs(batch[i], ev->fp);
            free(batch[i]);
        }
        fflush(ev->fp);
        free(batch);
        pthread_mutex_lock(&ev->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

int sm_events_open(const sm_config_t *cfg, sm_events_t **out, char *err, size_t errlen)
{
    sm_events_t *ev = sm_xcalloc(1, sizeof *ev);
    ev->instance_id = sm_xstrdup(cfg->instance_id ? cfg->instance_id : "");
    atomic_init(&ev->published, 0);
    atomic_init(&ev->dropped, 0);
    if (strcmp(cfg->events_backend, "log") == 0) {
        if (mkdir_parents(cfg->events_path) != 0 ||
            (ev->fp = fopen(cfg->events_path, "a")) == NULL) {
            snprintf(err, errlen, "events.path: cannot open %s: %s", cfg->events_path,
                     strerror(errno));
            free(ev->instance_id);
            free(ev);
            return SM_ECONFIG;
        }
        ev->cap = (size_t)cfg->events_queue_size;
        ev->ring = sm_xcalloc(ev->cap, sizeof *ev->ring);
        pthread_mutex_init(&ev->lock, NULL);
        pthread_cond_init(&ev->cond, NULL);
        ev->enabled = true;
        if (pthread_create(&ev->thread, NULL, writer_main, ev) != 0) {
            snprintf(err, errlen, "events: cannot start the writer thread");
            fclose(ev->fp);
            free(ev->ring);
            free(ev->instance_id);
            free(ev);
            return SM_EIO;
        }
    }
    *out = ev;
    return 0;
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
    if (ev->enabled) {
        pthread_mutex_lock(&ev->lock);
        ev->stop = true;
        pthread_cond_signal(&ev->cond);
        pthread_mutex_unlock(&ev->lock);
        pthread_join(ev->thread, NULL);
        fclose(ev->fp);
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

void sm_events_emit(sm_events_t *ev, const char *event, const char *client_id,
                    const char *room_id, const char *session_id)
{
    if (ev == NULL || !ev->enabled)
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
    char *copy = sm_xstrdup(line);
    pthread_mutex_lock(&ev->lock);
    if (ev->count == ev->cap) {
        pthread_mutex_unlock(&ev->lock);
        free(copy);
        atomic_fetch_add_explicit(&ev->dropped, 1, memory_order_relaxed);
        return;
    }
    ev->ring[(ev->head + ev->count) % ev->cap] = copy;
    ev->count++;
    pthread_cond_signal(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
    atomic_fetch_add_explicit(&ev->published, 1, memory_order_relaxed);
}

uint64_t sm_events_published(const sm_events_t *ev)
{
    return ev ? atomic_load_explicit(&((sm_events_t *)ev)->published, memory_order_relaxed) : 0;
}

uint64_t sm_events_dropped(const sm_events_t *ev)
{
    return ev ? atomic_load_explicit(&((sm_events_t *)ev)->dropped, memory_order_relaxed) : 0;
}
