/*
 * Lifecycle events (DECISIONS §10): client.connected, client.registered,
 * client.unregistered, client.disconnected, room.* — one JSON object each.
 *
 * Owns a bounded queue and the backend behind it: `none` (discard), `log`
 * (JSON lines appended to [events] path by a writer thread).  Publishing
 * never blocks and never fails the caller: a full queue drops the event and
 * counts it.  sm_events_open/close run on the main thread; sm_events_emit and
 * the counters may be called from any thread.
 */
#ifndef SM_EVENTS_EVENTS_H
#define SM_EVENTS_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct sm_events_s sm_events_t;

/* Main thread.  Opens the backend (log: creates the file's directory and
 * opens it for append).  Errors name the key (events.path). */
int sm_events_open(const sm_config_t *cfg, sm_events_t **out, char *err, size_t errlen);
/* Main thread, before any thread publishes: the instance id written into
 * every event (default: the configuration's instance_id). */
void sm_events_set_instance_id(sm_events_t *ev, const char *instance_id);
/* Main thread, after every publisher stopped: write what is queued, stop
 * the writer, free.  NULL is allowed. */
void sm_events_close(sm_events_t *ev);

/* Any thread.  Build and queue one event; NULL fields are left out.
 * `event` is e.g. "client.registered". */
void sm_events_emit(sm_events_t *ev, const char *event, const char *client_id,
                    const char *room_id, const char *session_id);

/* Any thread: events accepted and dropped so far. */
uint64_t sm_events_published(const sm_events_t *ev);
uint64_t sm_events_dropped(const sm_events_t *ev);

#endif
