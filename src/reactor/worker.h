/*
 * Workers: each runs a libuv loop that owns a set of sessions (pinned by
 * connection handle), drains its inbox of frames from the I/O threads, runs
 * the protocol (session/), and pushes replies to the connections' I/O
 * outboxes.  Store completions come back through the worker's task queue.
 *
 * Thread rules: new/start/join_free on the main thread; push_in, wake,
 * notify_room, post and the stats readers from any thread; the rest of
 * reactor/worker.c on the worker's own thread only (sm_worker_self()).
 */
#ifndef SM_REACTOR_WORKER_H
#define SM_REACTOR_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/obuf.h"
#include "core/mpsc.h"
#include "core/taskq.h"
#include "metrics/counters.h"
#include "reactor/server.h"

/* Main thread. */
sm_worker_t *sm_worker_new(sm_server_t *srv, unsigned index);
int sm_worker_start(sm_worker_t *w);
/* Any thread: the server drains (sessions waiting for a resume end now). */
void sm_worker_drain(sm_worker_t *w);
/* Any thread: finish in-flight store operations, then end the loop.
 * Called after every I/O thread has stopped. */
void sm_worker_stop(sm_worker_t *w);
void sm_worker_join_free(sm_worker_t *w);

/* Any thread: queue an inbox item; false when full (see core/mpsc.h). */
bool sm_worker_push_in(sm_worker_t *w, const sm_qitem_t *it);
void sm_worker_wake(sm_worker_t *w);
/* Any thread (I/O threads): an outbox this worker found full has room. */
void sm_worker_notify_room(sm_worker_t *w);

/* Any thread: counters owned by this worker; inbox depth; sessions that wait
 * on a store operation (for the drain). */
sm_counters_t *sm_worker_counters(sm_worker_t *w);
size_t sm_worker_inbox_depth(sm_worker_t *w);
int64_t sm_worker_pending_ops(sm_worker_t *w);
int64_t sm_worker_sessions(sm_worker_t *w);

/* ---- Worker-thread API (used by session/, router/) ---- */

/* The worker running on the calling thread (NULL elsewhere). */
sm_worker_t *sm_worker_self(void);
sm_server_t *sm_worker_server(sm_worker_t *w);
uv_loop_t *sm_worker_loop(sm_worker_t *w);
sm_taskq_t *sm_worker_taskq(sm_worker_t *w);
unsigned sm_worker_index(sm_worker_t *w);
/* Send a frame to a connection (any I/O thread).  Takes the reference to b
 * (b may be NULL with SM_OUTF_CLOSE to close without a frame).  Order per
 * connection is preserved; never blocks (a full outbox overflows into a
 * worker-local FIFO). */
void sm_worker_send(sm_worker_t *w, sm_handle_t conn, sm_obuf_t *b, uint16_t flags,
                    uint32_t arg);
/* The session table of this worker (session/session.h). */
struct sm_sessions_s *sm_worker_session_table(sm_worker_t *w);
/* Any thread: run task on worker w's thread (sm_taskq_post semantics). */
int sm_worker_post(sm_worker_t *w, sm_task_t *task);
/* Track an async operation in flight (the drain waits for zero). */
void sm_worker_op_begin(sm_worker_t *w);
void sm_worker_op_end(sm_worker_t *w);

#endif
