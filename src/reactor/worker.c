/*
 * Worker thread: inbox drain, session dispatch, reply routing to the I/O
 * threads' outboxes, store completions via the task queue.
 *
 * Replies are pushed straight into the target connection's I/O outbox; the
 * doorbells of the I/O threads that received something are rung once per
 * loop iteration (uv_prepare), not once per reply.  A full outbox overflows
 * into a per-I/O-thread FIFO here (order kept) until that I/O thread reports
 * room.
 */
#include "reactor/worker.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"
#include "cloud/http_client.h"
#include "core/qfifo.h"
#include "log/log.h"
#include "metrics/observe.h"
#include "reactor/io_thread.h"
#include "reactor/msg.h"
#include "session/session.h"

struct sm_worker_s {
    sm_server_t *srv;
    unsigned index;
    char name[16];
    uv_thread_t thread;
    uv_loop_t loop;
    sm_ring_t inbox;
    uv_async_t inbox_async;
    _Atomic bool room;
    sm_taskq_t tasks;
    uv_prepare_t prepare;
    bool *wake_io;
    sm_qfifo_t *overflow; /* per I/O thread */
    sm_sessions_t *sessions;
    sm_rest_client_t *rest; /* REST backends' HTTP client on this loop */
    bool stopping;
    bool closed;
    _Atomic int64_t pending_ops;
    _Atomic int64_t nsessions;
    sm_counters_t counters;
};

static _Thread_local sm_worker_t *t_self;

sm_worker_t *sm_worker_self(void)
{
    return t_self;
}

sm_server_t *sm_worker_server(sm_worker_t *w)
{
    return w->srv;
}

uv_loop_t *sm_worker_loop(sm_worker_t *w)
{
    return &w->loop;
}

sm_taskq_t *sm_worker_taskq(sm_worker_t *w)
{
    return &w->tasks;
}

unsigned sm_worker_index(sm_worker_t *w)
{
    return w->index;
}

struct sm_sessions_s *sm_worker_session_table(sm_worker_t *w)
{
    return w->sessions;
}

int sm_worker_post(sm_worker_t *w, sm_task_t *task)
{
    return sm_taskq_post(&w->tasks, task);
}

sm_counters_t *sm_worker_counters(sm_worker_t *w)
{
    return &w->counters;
}

size_t sm_worker_inbox_depth(sm_worker_t *w)
{
    return sm_ring_depth(&w->inbox);
}

int64_t sm_worker_pending_ops(sm_worker_t *w)
{
    return atomic_load_explicit(&w->pending_ops, memory_order_relaxed);
}

int64_t sm_worker_sessions(sm_worker_t *w)
{
    return atomic_load_explicit(&w->nsessions, memory_order_relaxed);
}

bool sm_worker_push_in(sm_worker_t *w, const sm_qitem_t *it)
{
    return sm_ring_push(&w->inbox, it);
}

void sm_worker_wake(sm_worker_t *w)
{
    uv_async_send(&w->inbox_async);
}

void sm_worker_notify_room(sm_worker_t *w)
{
    atomic_store_explicit(&w->room, true, memory_order_release);
    uv_async_send(&w->inbox_async);
}

/* ---- output ---- */

void sm_worker_send(sm_worker_t *w, sm_handle_t conn, sm_obuf_t *b, uint16_t flags, uint32_t arg)
{
    unsigned io = sm_handle_io(conn);
    SM_ASSERT(io < w->srv->n_io);
    sm_qitem_t it = {.handle = conn, .ptr = b, .arg = arg, .kind = SM_OUT_SEND, .flags = flags};
    sm_qfifo_t *q = &w->overflow[io];
    w->wake_io[io] = true;
    if (q->count == 0 && sm_io_push_out(w->srv->io[io], &it))
        return;
    sm_qfifo_push(q, &it);
}

static void retry_overflow(sm_worker_t *w)
{
    for (unsigned i = 0; i < w->srv->n_io; i++) {
        sm_qfifo_t *q = &w->overflow[i];
        while (q->count > 0 && sm_io_push_out(w->srv->io[i], sm_qfifo_peek(q))) {
            sm_qfifo_pop(q);
            w->wake_io[i] = true;
        }
    }
}

static void on_prepare(uv_prepare_t *p)
{
    sm_worker_t *w = p->data;
    for (unsigned i = 0; i < w->srv->n_io; i++) {
        if (w->wake_io[i]) {
            w->wake_io[i] = false;
            sm_io_wake(w->srv->io[i]);
        }
    }
    atomic_store_explicit(&w->nsessions, (int64_t)sm_sessions_count(w->sessions),
                          memory_order_relaxed);
}

/* ---- input ---- */

static void on_inbox(uv_async_t *a)
{
    sm_worker_t *w = a->data;
    sm_qitem_t it;
    while (sm_ring_pop(&w->inbox, &it)) {
        switch (it.kind) {
        case SM_IN_FRAME:
            if (w->closed)
                free(it.ptr);
            else
                sm_sessions_on_frame(w->sessions, it.handle, it.ptr);
            break;
        case SM_IN_CLOSED:
            if (!w->closed)
                sm_sessions_on_closed(w->sessions, it.handle, (sm_close_reason_t)it.arg);
            break;
        default:
            SM_ASSERT(!"unexpected inbox item");
        }
    }
    if (sm_ring_take_starved(&w->inbox)) {
        for (unsigned i = 0; i < w->srv->n_io; i++)
            sm_io_notify_room(w->srv->io[i]);
    }
    if (atomic_exchange_explicit(&w->room, false, memory_order_acq_rel))
        retry_overflow(w);
}

/* ---- in-flight operations and stop ---- */

static void close_handles(sm_worker_t *w)
{
    if (w->closed)
        return;
    w->closed = true;
    sm_sessions_free(w->sessions);
    w->sessions = NULL;
    sm_rest_client_set_current(NULL);
    sm_rest_client_close(w->rest); /* cancels what is left; frees itself */
    w->rest = NULL;
    /* Replies still waiting for room can no longer be delivered. */
    for (unsigned i = 0; i < w->srv->n_io; i++) {
        sm_qfifo_t *q = &w->overflow[i];
        for (sm_qitem_t *x; (x = sm_qfifo_peek(q)) != NULL; sm_qfifo_pop(q))
            sm_obuf_unref(x->ptr);
    }
    uv_close((uv_handle_t *)&w->prepare, NULL);
    uv_close((uv_handle_t *)&w->inbox_async, NULL);
    sm_taskq_close(&w->tasks);
}

void sm_worker_op_begin(sm_worker_t *w)
{
    atomic_fetch_add_explicit(&w->pending_ops, 1, memory_order_relaxed);
}

void sm_worker_op_end(sm_worker_t *w)
{
    int64_t left = atomic_fetch_sub_explicit(&w->pending_ops, 1, memory_order_relaxed) - 1;
    if (left == 0 && w->stopping)
        close_handles(w);
}

typedef struct {
    sm_task_t task;
    sm_worker_t *w;
} stop_task_t;

static void do_stop(sm_task_t *task)
{
    stop_task_t *st = (stop_task_t *)task;
    sm_worker_t *w = st->w;
    free(st);
    w->stopping = true;
    /* Frames and close notices that are still queued are handled first. */
    on_inbox(&w->inbox_async);
    if (sm_worker_pending_ops(w) == 0)
        close_handles(w);
}

static void do_drain(sm_task_t *task)
{
    stop_task_t *st = (stop_task_t *)task;
    sm_worker_t *w = st->w;
    free(st);
    if (w->sessions)
        sm_sessions_drain(w->sessions);
}

void sm_worker_drain(sm_worker_t *w)
{
    stop_task_t *st = sm_xmalloc(sizeof *st);
    st->task.run = do_drain;
    st->w = w;
    if (sm_taskq_post(&w->tasks, &st->task) != 0)
        free(st);
}

void sm_worker_stop(sm_worker_t *w)
{
    stop_task_t *st = sm_xmalloc(sizeof *st);
    st->task.run = do_stop;
    st->w = w;
    if (sm_taskq_post(&w->tasks, &st->task) != 0)
        free(st);
}

/* ---- thread ---- */

static void thread_main(void *arg)
{
    sm_worker_t *w = arg;
    t_self = w;
    sm_log_set_thread(w->name);
    w->rest = sm_rest_client_new(&w->loop);
    SM_ASSERT(w->rest != NULL);
    sm_rest_client_set_current(w->rest);
    sm_metrics_thread_set(&w->counters);
    sm_rest_client_set_attempt_hook(w->rest, sm_metrics_rest_attempt, &w->counters);
    w->sessions = sm_sessions_new(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    t_self = NULL;
}

sm_worker_t *sm_worker_new(sm_server_t *srv, unsigned index)
{
    sm_worker_t *w = sm_xcalloc(1, sizeof *w);
    w->srv = srv;
    w->index = index;
    snprintf(w->name, sizeof w->name, "worker-%u", index);
    SM_ASSERT(uv_loop_init(&w->loop) == 0);
    sm_ring_init(&w->inbox, (size_t)srv->cfg->limits_queue_size);
    atomic_init(&w->room, false);
    atomic_init(&w->pending_ops, 0);
    atomic_init(&w->nsessions, 0);
    uv_async_init(&w->loop, &w->inbox_async, on_inbox);
    w->inbox_async.data = w;
    SM_ASSERT(sm_taskq_init(&w->tasks, &w->loop) == 0);
    uv_prepare_init(&w->loop, &w->prepare);
    w->prepare.data = w;
    uv_prepare_start(&w->prepare, on_prepare);
    return w;
}

int sm_worker_start(sm_worker_t *w)
{
    /* The I/O thread count is known once all threads exist. */
    w->wake_io = sm_xcalloc(w->srv->n_io ? w->srv->n_io : 1, sizeof *w->wake_io);
    w->overflow = sm_xcalloc(w->srv->n_io ? w->srv->n_io : 1, sizeof *w->overflow);
    if (uv_thread_create(&w->thread, thread_main, w) != 0)
        return SM_EIO;
    return 0;
}

void sm_worker_join_free(sm_worker_t *w)
{
    if (w == NULL)
        return;
    uv_thread_join(&w->thread);
    sm_qitem_t it;
    while (sm_ring_pop(&w->inbox, &it)) {
        if (it.kind == SM_IN_FRAME)
            free(it.ptr);
    }
    sm_ring_destroy(&w->inbox);
    uv_loop_close(&w->loop);
    for (unsigned i = 0; i < w->srv->n_io; i++)
        sm_qfifo_destroy(&w->overflow[i]);
    free(w->overflow);
    free(w->wake_io);
    free(w);
}
