/*
 * Internals shared by the events queue (events.c) and its backends
 * (events_log.c, events_pubsub.c).  Nothing outside src/events/ includes it.
 *
 * The queue is a mutex-protected ring of items.  An item is one malloc'd
 * block "<JSON line>\n\0<event name>\0": the line as the log backend writes
 * it, then the event name (Pub/Sub's event_type attribute).  Items are owned
 * by the ring while queued and by whoever took them afterwards (free()).
 *
 * Threads: sm_events_emit (any thread) puts items in and then calls the
 * backend's wake, outside the lock.  The backend's own thread takes them out
 * with sm__events_take (non-blocking, for loop-driven backends) or
 * sm__events_wait_take (blocking on the queue's condition variable, for
 * thread-driven ones).
 */
#ifndef SM_EVENTS_EVENTS_INTERNAL_H
#define SM_EVENTS_EVENTS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "events/events.h"

/* A backend: a const table picked by name (events.backend). */
typedef struct {
    const char *name;
    /* Main thread, from sm_events_open, after the queue exists.  Sets up
     * ev->be_state and starts the backend's thread.  0, or an SM_E* code
     * with err naming the key (the backend has then freed what it made). */
    int (*open)(sm_events_t *ev, const sm_config_t *cfg, char *err, size_t errlen);
    /* Main thread, at start-up: 0 when the backend can deliver, else an
     * error naming the key.  NULL = always 0. */
    int (*check)(sm_events_t *ev, char *err, size_t errlen);
    /* Any thread, right after an event was queued, without the lock: queued
     * is the number of events in the queue just after it was added (each
     * value 1, 2, ... is seen by exactly one call).  Must not block.
     * NULL = nothing to do. */
    void (*wake)(sm_events_t *ev, size_t queued);
    /* Main thread, after every publisher stopped: deliver what is queued
     * (bounded in time), stop the thread, free ev->be_state. */
    void (*close)(sm_events_t *ev);
} sm__events_backend_t;

extern const sm__events_backend_t sm__events_backend_log;
extern const sm__events_backend_t sm__events_backend_pubsub;

struct sm_events_s {
    const sm__events_backend_t *be; /* NULL for `none` */
    void *be_state;                 /* the backend's */
    char *instance_id;
    pthread_mutex_t lock; /* ring, head, count, stop */
    pthread_cond_t cond;  /* sm__events_wait_take sleeps on it */
    char **ring;
    size_t cap, head, count;
    bool stop;
    _Atomic uint64_t published, dropped;
};

/* The event name stored after the line in an item. */
static inline const char *sm__events_item_name(const char *item)
{
    while (*item != '\0')
        item++;
    return item + 1;
}

/* Backend thread: move up to max items (oldest first) into out; returns how
 * many (0 when the queue is empty).  Never blocks beyond the lock. */
size_t sm__events_take(sm_events_t *ev, char **out, size_t max);
/* Backend thread: like sm__events_take, but sleeps while the queue is empty
 * and sm__events_stop was not called.  0 only when stopped and empty. */
size_t sm__events_wait_take(sm_events_t *ev, char **out, size_t max);
/* Main thread (a backend's close): wake sm__events_wait_take for good. */
void sm__events_stop(sm_events_t *ev);
/* Any thread: events queued right now. */
size_t sm__events_queued(sm_events_t *ev);
/* Any thread: n taken events were lost (counted in sm_events_dropped). */
void sm__events_lost(sm_events_t *ev, uint64_t n);

#endif
