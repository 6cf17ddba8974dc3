/*
 * The `log` events backend: JSON lines appended to [events] path.
 *
 * One writer thread sleeps on the queue's condition variable, takes up to
 * BATCH events at a time and writes them with fputs + one fflush per batch,
 * so a burst of events costs few write(2) calls.  close wakes it for good;
 * it drains the queue before it exits, so every accepted event is written.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/err.h"
#include "events/events_internal.h"
#include "log/log.h"

/* Events per fflush: large enough that a burst is one write of a few
 * hundred KB, small enough for a stack-free fixed buffer. */
#define BATCH 1024

typedef struct {
    FILE *fp;
    pthread_t thread;
    char *batch[BATCH];
} log_state_t;

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
    log_state_t *ls = ev->be_state;
    sm_log_set_thread("events");
    size_t n;
    while ((n = sm__events_wait_take(ev, ls->batch, BATCH)) > 0) {
        for (size_t i = 0; i < n; i++) {
            fputs(ls->batch[i], ls->fp);
            free(ls->batch[i]);
        }
        fflush(ls->fp);
    }
    return NULL;
}

static int log_open(sm_events_t *ev, const sm_config_t *cfg, char *err, size_t errlen)
{
    log_state_t *ls = SM_NEW(log_state_t);
    if (mkdir_parents(cfg->events_path) != 0 || (ls->fp = fopen(cfg->events_path, "a")) == NULL) {
        snprintf(err, errlen, "events.path: cannot open %s: %s", cfg->events_path, strerror(errno));
        free(ls);
        return SM_ECONFIG;
    }
    ev->be_state = ls;
    if (pthread_create(&ls->thread, NULL, writer_main, ev) != 0) {
        snprintf(err, errlen, "events: cannot start the writer thread");
        fclose(ls->fp);
        free(ls);
        ev->be_state = NULL;
        return SM_EIO;
    }
    return 0;
}

static void log_wake(sm_events_t *ev, size_t queued)
{
    /* The writer sleeps only on an empty queue (checked under the lock), so
     * only the first event after it emptied needs to wake it. */
    if (queued == 1)
        pthread_cond_signal(&ev->cond);
}

static void log_close(sm_events_t *ev)
{
    log_state_t *ls = ev->be_state;
    sm__events_stop(ev);
    pthread_join(ls->thread, NULL);
    fclose(ls->fp);
    free(ls);
    ev->be_state = NULL;
}

const sm__events_backend_t sm__events_backend_log = {
    .name = "log",
    .open = log_open,
    .check = NULL,
    .wake = log_wake,
    .close = log_close,
};
