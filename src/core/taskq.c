/*
 * Mutex-protected FIFO of intrusive tasks plus a uv_async doorbell.
 * The lock is held only to link or unlink; tasks run with no lock held.
 */
#include "core/taskq.h"

#include "core/err.h"

static void on_async(uv_async_t *a)
{
    sm_taskq_run_pending(a->data);
}

int sm_taskq_init(sm_taskq_t *q, uv_loop_t *loop)
{
    q->_head = q->_tail = NULL;
    q->_closed = false;
    pthread_mutex_init(&q->_lock, NULL);
    if (uv_async_init(loop, &q->_async, on_async) != 0) {
        pthread_mutex_destroy(&q->_lock);
        return SM_EIO;
    }
    q->_async.data = q;
    return 0;
}

int sm_taskq_post(sm_taskq_t *q, sm_task_t *task)
{
    task->_next = NULL;
    pthread_mutex_lock(&q->_lock);
    if (q->_closed) {
        pthread_mutex_unlock(&q->_lock);
        return SM_ECLOSED;
    }
    if (q->_tail)
        q->_tail->_next = task;
    else
        q->_head = task;
    q->_tail = task;
    /* Sent under the lock so that close cannot free the handle in between. */
    uv_async_send(&q->_async);
    pthread_mutex_unlock(&q->_lock);
    return 0;
}

void sm_taskq_run_pending(sm_taskq_t *q)
{
    for (;;) {
        pthread_mutex_lock(&q->_lock);
        sm_task_t *t = q->_head;
        q->_head = q->_tail = NULL;
        pthread_mutex_unlock(&q->_lock);
        if (t == NULL)
            return;
        while (t) {
            sm_task_t *next = t->_next;
            t->run(t);
            t = next;
        }
    }
}

static void on_closed(uv_handle_t *h)
{
    sm_taskq_t *q = h->data;
    pthread_mutex_destroy(&q->_lock);
}

void sm_taskq_close(sm_taskq_t *q)
{
    pthread_mutex_lock(&q->_lock);
    q->_closed = true;
    pthread_mutex_unlock(&q->_lock);
    sm_taskq_run_pending(q);
    uv_close((uv_handle_t *)&q->_async, on_closed);
}
