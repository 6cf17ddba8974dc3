/*
 * I/O threads: each runs a libuv loop with its own SO_REUSEPORT listener and
 * owns the connections it accepted (HTTP request, upgrade, WebSocket framing,
 * writes, connection/heartbeat timeouts).  Decoded messages go to workers
 * through their inbox rings; replies come back through this thread's outbox.
 *
 * Thread rules: sm_io_thread_new/start/join/free run on the main thread;
 * sm_io_push_out, sm_io_wake, sm_io_notify_room and the stats readers may be
 * called from any thread; everything else in reactor/conn.c and
 * reactor/io_thread.c runs on the owning I/O thread only.
 */
#ifndef SM_REACTOR_IO_THREAD_H
#define SM_REACTOR_IO_THREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/mpsc.h"
#include "metrics/counters.h"
#include "reactor/server.h"

/* Main thread: create I/O thread `index` that will serve listen_fd (a bound,
 * listening, non-blocking socket; the thread takes ownership of it). */
sm_io_thread_t *sm_io_thread_new(sm_server_t *srv, unsigned index, int listen_fd);
/* Main thread: start the thread. 0 or SM_EIO. */
int sm_io_thread_start(sm_io_thread_t *t);
/* Any thread: begin the drain (DISCONNECT notice + close 1001 to every
 * WebSocket client; new upgrades get 503; /health says draining). */
void sm_io_thread_drain(sm_io_thread_t *t);
/* Any thread: close the listener and every connection, then end the loop. */
void sm_io_thread_stop(sm_io_thread_t *t);
/* Main thread: wait for the thread to end, then free it. */
void sm_io_thread_join_free(sm_io_thread_t *t);

/* Any thread: queue an outbox item (see reactor/msg.h).  false when the
 * outbox is full: the caller keeps the item and retries after
 * sm_worker_notify_room tells it there is room. */
bool sm_io_push_out(sm_io_thread_t *t, const sm_qitem_t *it);
/* Any thread: ring the doorbell after one or more pushes. */
void sm_io_wake(sm_io_thread_t *t);
/* Any thread (workers): a worker inbox this thread found full has room now. */
void sm_io_notify_room(sm_io_thread_t *t);

/* Any thread: counters owned by this thread (read with sm_count_read). */
sm_counters_t *sm_io_counters(sm_io_thread_t *t);
/* Any thread: approximate outbox depth. */
size_t sm_io_outbox_depth(sm_io_thread_t *t);

#endif
