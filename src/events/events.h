/*
 * Lifecycle events (DECISIONS §10): client.connected, client.registered,
 * client.unregistered, client.disconnected, room.* — one JSON object each.
 *
 * Owns a bounded queue (events.queue_size) and the backend behind it, a
 * const vtable picked by events.backend (STYLE §5; events_internal.h):
 *   none    discard everything,
 *   log     JSON lines appended to [events] path by a writer thread
 *           (events_log.c),
 *   pubsub  GCP Pub/Sub REST publish from a publisher thread with its own
 *           loop and REST client: batches of up to 1,000 events or 100 ms,
 *           data = base64 of the event JSON, attribute event_type = the event
 *           name, retries on the retryable codes, flushed at close
 *           (events_pubsub.c).
 * Publishing never blocks and never fails the caller: it formats, then takes
 * the queue lock for a pointer store; a full queue drops the event and
 * counts it.  sm_events_open/check/close run on the main thread;
 * sm_events_emit and the counters may be called from any thread.
 */
#ifndef SM_EVENTS_EVENTS_H
#define SM_EVENTS_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct sm_events_s sm_events_t;

/* Main thread.  Opens the backend (log: creates the file's directory and
 * opens it for append; pubsub: checks [pubsub] project_id, topic, base_url
 * and the credentials file, or PUBSUB_EMULATOR_HOST, and starts the
 * publisher thread; no network I/O).  Returns 0 with *out owned by the
 * caller, or SM_ECONFIG / SM_EIO with err naming the key ("events.path:
 * cannot open ...", "pubsub.project_id: must be set when events.backend =
 * pubsub", "pubsub.credentials: /k.json: no private_key"). */
int sm_events_open(const sm_config_t *cfg, sm_events_t **out, char *err, size_t errlen);
/* Main thread, at start-up after sm_events_open: can the backend deliver?
 * pubsub fetches a first access token (sm_gcreds_check) so that bad
 * credentials fail the start; none/log (and the Pub/Sub emulator) return 0
 * at once.  0, or SM_EAUTH / SM_EUNAVAIL with err naming the key. */
int sm_events_check(sm_events_t *ev, char *err, size_t errlen);
/* Main thread, before any thread publishes: the instance id written into
 * every event (default: the configuration's instance_id). */
void sm_events_set_instance_id(sm_events_t *ev, const char *instance_id);
/* Main thread, after every publisher stopped: deliver what is queued (log:
 * everything; pubsub: publish it, retrying as usual, for at most 5 seconds,
 * then what is still undelivered is dropped and counted), stop the backend's
 * thread, free.  NULL is allowed. */
void sm_events_close(sm_events_t *ev);

/* Any thread.  Build and queue one event; NULL fields are left out.
 * `event` is e.g. "client.registered". */
void sm_events_emit(sm_events_t *ev, const char *event, const char *client_id, const char *room_id,
                    const char *session_id);

/* Any thread: events accepted into the queue so far, and events lost: refused
 * by a full queue, or (pubsub) in a batch Pub/Sub refused (400/403/404...),
 * whose retries ran out, or that was still undelivered when the close
 * deadline passed. */
uint64_t sm_events_published(const sm_events_t *ev);
uint64_t sm_events_dropped(const sm_events_t *ev);

#endif
