/*
 * Sessions: the protocol state machine of DECISIONS §3 for the connections
 * pinned to one worker.
 *
 * Owns every session of its worker (a table keyed by connection handle), the
 * in-flight store operations they started and the registration-timeout
 * timer.  Only the owning worker thread calls these functions.
 *
 * A session handles one frame at a time, in arrival order.  While it waits
 * for the store (REGISTER, UNREGISTER), later frames of that session wait in
 * its pending list; other sessions keep going.  When the connection goes
 * away the session ends: a registered client is released (store delete, then
 * registry release) and the session is freed when nothing refers to it.
 */
#ifndef SM_SESSION_SESSION_H
#define SM_SESSION_SESSION_H

#include <stddef.h>

#include "core/handle.h"
#include "reactor/msg.h"

typedef struct sm_sessions_s sm_sessions_t;
typedef struct sm_worker_s sm_worker_t;

/* Worker thread, at start. */
sm_sessions_t *sm_sessions_new(sm_worker_t *w);
/* Worker thread, at stop: frees what is left (no store calls). */
void sm_sessions_free(sm_sessions_t *ss);

/* A frame arrived on connection h (takes ownership of m). */
void sm_sessions_on_frame(sm_sessions_t *ss, sm_handle_t h, sm_imsg_t *m);
/* Connection h is gone (last item for h). */
void sm_sessions_on_closed(sm_sessions_t *ss, sm_handle_t h, sm_close_reason_t why);
/* The server began draining: end sessions waiting for a resume now. */
void sm_sessions_drain(sm_sessions_t *ss);
/* Sessions with a connection or waiting for a resume. */
size_t sm_sessions_count(const sm_sessions_t *ss);

#endif
