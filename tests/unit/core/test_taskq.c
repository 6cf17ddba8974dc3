/*
 * Unit tests for src/core/taskq.c: tasks posted from other threads run on
 * the loop (owner) thread in FIFO order per poster; a task may post another
 * one; close runs what is queued, then refuses posts with SM_ECLOSED and
 * closes its handle so the loop can be closed cleanly.
 *
 * No sleeps: the loop runs until the last expected task stops it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/err.h"
#include "core/taskq.h"

#define POSTERS 3
#define PER_POSTER 5000

typedef struct ctx_s ctx_t;

typedef struct {
    sm_task_t task; /* first member */
    ctx_t *ctx;
    int poster;
    int seq;
} job_t;

struct ctx_s {
    uv_loop_t *loop;
    sm_taskq_t q;
    pthread_t owner;
    int expected;
    int ran;
    int wrong_thread;
    int out_of_order;
    int next[POSTERS + 1];
    int order[64];
    int order_len;
    job_t *jobs; /* POSTERS * PER_POSTER */
    int poster_of_thread;
};

static void run_job(sm_task_t *t)
{
    job_t *j = (job_t *)t;
    ctx_t *c = j->ctx;
    if (!pthread_equal(pthread_self(), c->owner))
        c->wrong_thread++;
    if (j->seq != c->next[j->poster])
        c->out_of_order++;
    c->next[j->poster] = j->seq + 1;
    if (c->order_len < 64)
        c->order[c->order_len++] = j->poster * 100000 + j->seq;
    if (++c->ran == c->expected)
        uv_stop(c->loop);
}

typedef struct {
    ctx_t *ctx;
    int poster;
    int failures;
} poster_arg_t;

static void *poster_main(void *arg)
{
    poster_arg_t *pa = arg;
    ctx_t *c = pa->ctx;
    for (int i = 0; i < PER_POSTER; i++) {
        job_t *j = &c->jobs[pa->poster * PER_POSTER + i];
        j->ctx = c;
        j->poster = pa->poster;
        j->seq = i;
        j->task.run = run_job;
        if (sm_taskq_post(&c->q, &j->task) != 0)
            pa->failures++;
    }
    return NULL;
}

static void test_cross_thread_fifo(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ctx_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->loop = &loop;
    c->owner = pthread_self();
    c->expected = POSTERS * PER_POSTER;
    c->jobs = calloc(POSTERS * PER_POSTER, sizeof *c->jobs);
    assert_non_null(c->jobs);
    assert_int_equal(sm_taskq_init(&c->q, &loop), 0);

    pthread_t th[POSTERS];
    poster_arg_t pa[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        pa[i] = (poster_arg_t){c, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, poster_main, &pa[i]), 0);
    }
    /* Runs until the last task calls uv_stop. */
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < POSTERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(pa[i].failures, 0);
    }
    assert_int_equal(c->ran, POSTERS * PER_POSTER);
    assert_int_equal(c->wrong_thread, 0);
    assert_int_equal(c->out_of_order, 0);
    for (int i = 0; i < POSTERS; i++)
        assert_int_equal(c->next[i], PER_POSTER);

    sm_taskq_close(&c->q);
    uv_run(&loop, UV_RUN_DEFAULT); /* finishes the uv_close */
    assert_int_equal(uv_loop_close(&loop), 0);
    free(c->jobs);
    free(c);
}

static void test_single_thread_order_and_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ctx_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->loop = &loop;
    c->owner = pthread_self();
    c->expected = -1; /* never stop from a task */
    job_t jobs[6];
    memset(jobs, 0, sizeof jobs);
    assert_int_equal(sm_taskq_init(&c->q, &loop), 0);

    /* Queued before the loop runs: close must run them, in order. */
    for (int i = 0; i < 5; i++) {
        jobs[i] = (job_t){.task.run = run_job, .ctx = c, .poster = POSTERS, .seq = i};
        assert_int_equal(sm_taskq_post(&c->q, &jobs[i].task), 0);
    }
    assert_int_equal(c->ran, 0); /* nothing runs inside post */
    sm_taskq_close(&c->q);
    assert_int_equal(c->ran, 5);
    assert_int_equal(c->out_of_order, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(c->order[i], POSTERS * 100000 + i);

    /* After close: refused, not queued, still the caller's. */
    jobs[5] = (job_t){.task.run = run_job, .ctx = c, .poster = POSTERS, .seq = 5};
    assert_int_equal(sm_taskq_post(&c->q, &jobs[5].task), SM_ECLOSED);
    assert_int_equal(c->ran, 5);

    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c->ran, 5); /* the refused task never ran */
    assert_int_equal(uv_loop_close(&loop), 0);
    free(c);
}

/* A task that posts a follow-up: the follow-up runs in the same drain. */
typedef struct {
    sm_task_t task;
    sm_taskq_t *q;
    int *log;
    int *n;
    int depth;
} chain_t;

static chain_t g_chain[4];

static void run_chain(sm_task_t *t)
{
    chain_t *ch = (chain_t *)t;
    ch->log[(*ch->n)++] = ch->depth;
    if (ch->depth < 3) {
        chain_t *next = &g_chain[ch->depth + 1];
        *next = *ch;
        next->depth = ch->depth + 1;
        next->task.run = run_chain;
        assert_int_equal(sm_taskq_post(ch->q, &next->task), 0);
    }
}

static void test_task_posts_task(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sm_taskq_t q;
    assert_int_equal(sm_taskq_init(&q, &loop), 0);
    int log[8], n = 0;
    g_chain[0] = (chain_t){.task.run = run_chain, .q = &q, .log = log, .n = &n, .depth = 0};
    assert_int_equal(sm_taskq_post(&q, &g_chain[0].task), 0);
    sm_taskq_run_pending(&q);
    assert_int_equal(n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(log[i], i);
    sm_taskq_run_pending(&q); /* nothing left */
    assert_int_equal(n, 4);
    sm_taskq_close(&q);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Tasks posted from another thread are run by the loop's async wake-up,
 * not only by explicit run_pending calls. */
typedef struct {
    sm_task_t task;
    uv_loop_t *loop;
    pthread_t ran_on;
    atomic_int ran;
} wake_t;

static void run_wake(sm_task_t *t)
{
    wake_t *w = (wake_t *)t;
    w->ran_on = pthread_self();
    atomic_store(&w->ran, 1);
    uv_stop(w->loop);
}

typedef struct {
    sm_taskq_t *q;
    wake_t *w;
    int rc;
} wake_arg_t;

static void *wake_poster(void *arg)
{
    wake_arg_t *a = arg;
    a->rc = sm_taskq_post(a->q, &a->w->task);
    return NULL;
}

static void test_async_wakeup(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sm_taskq_t q;
    assert_int_equal(sm_taskq_init(&q, &loop), 0);
    wake_t w = {.task.run = run_wake, .loop = &loop};
    atomic_init(&w.ran, 0);
    wake_arg_t a = {&q, &w, -99};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wake_poster, &a), 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* blocks until the async fires and the task stops it */
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.rc, 0);
    assert_int_equal(atomic_load(&w.ran), 1);
    assert_true(pthread_equal(w.ran_on, pthread_self()));
    sm_taskq_close(&q);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_thread_fifo),
        cmocka_unit_test(test_single_thread_order_and_close),
        cmocka_unit_test(test_task_posts_task),
        cmocka_unit_test(test_async_wakeup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
