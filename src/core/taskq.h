/*
 * Task queue: run a function on another thread's libuv loop.
 *
 * For low-rate cross-thread work whose producers may block briefly (store
 * completions, control messages from the main thread).  The hot message path
 * uses the bounded lock-free rings of core/mpsc.h instead.
 *
 * The queue is owned by the thread running its loop ("owner").  Any thread
 * may post.  Tasks are run on the owner thread in FIFO order, all pending
 * tasks per wake-up (uv_async sends coalesce).  A task is caller-allocated
 * (usually embedded in a request struct); the queue never frees it, the
 * task's run function owns it from the moment it is called.
 */
#ifndef SM_CORE_TASKQ_H
#define SM_CORE_TASKQ_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

typedef struct sm_task_s sm_task_t;
typedef void (*sm_task_fn)(sm_task_t *task);

struct sm_task_s {
    sm_task_t *_next;
    sm_task_fn run;
};

typedef struct {
    uv_async_t _async;
    pthread_mutex_t _lock;
    sm_task_t *_head, *_tail;
    bool _closed;
} sm_taskq_t;

/* Owner thread: attach q to loop.  0 or SM_EIO (uv_async_init failed). */
int sm_taskq_init(sm_taskq_t *q, uv_loop_t *loop);

/* Any thread: queue task to run on the owner thread.  task->run must be set.
 * Returns 0, or SM_ECLOSED after sm_taskq_close (the task was not queued and
 * still belongs to the caller). */
int sm_taskq_post(sm_taskq_t *q, sm_task_t *task);

/* Owner thread: run every queued task now (also done by the async callback). */
void sm_taskq_run_pending(sm_taskq_t *q);

/* Owner thread: refuse further posts, run what is queued, close the async
 * handle (uv_close; the loop must run once more to finish closing).  The
 * sm_taskq_t must stay valid until that loop iteration is over. */
void sm_taskq_close(sm_taskq_t *q);

#endif
