/*
 * Bounded waits on a test's own libuv loop: a guard timer (unref'd, so it
 * never keeps the loop alive by itself) fails the wait after a deadline
 * instead of letting a broken test hang.  Shared by the cloud tests.
 * Header-only (static inline) so each test binary stays one .c file.
 */
#ifndef SM_TESTS_SUPPORT_UV_GUARD_H
#define SM_TESTS_SUPPORT_UV_GUARD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <uv.h>

typedef struct {
    uv_loop_t *loop;
    uv_timer_t timer;
    bool expired;
} uvg_t;

static inline void uvg__on_timer(uv_timer_t *t)
{
    uvg_t *g = t->data;
    g->expired = true;
}

/* Set up the guard on loop (after uv_loop_init). */
static inline void uvg_init(uvg_t *g, uv_loop_t *loop)
{
    g->loop = loop;
    g->expired = false;
    assert_int_equal(uv_timer_init(loop, &g->timer), 0);
    g->timer.data = g;
    uv_unref((uv_handle_t *)&g->timer);
}

static inline void uvg_arm(uvg_t *g, uint64_t ms)
{
    g->expired = false;
    uv_timer_start(&g->timer, uvg__on_timer, ms, 0);
}

/* Run g's loop until cond holds; fail after ms or if nothing is left that
 * could make it true. */
#define UVG_RUN_UNTIL(g, cond, ms)                                                                 \
    do {                                                                                           \
        uvg_arm((g), (ms));                                                                        \
        while (!(cond)) {                                                                          \
            if ((g)->expired)                                                                      \
                fail_msg("timed out waiting for %s", #cond);                                       \
            if (!uv_loop_alive((g)->loop))                                                         \
                fail_msg("loop idle while waiting for %s", #cond);                                 \
            uv_run((g)->loop, UV_RUN_ONCE);                                                        \
        }                                                                                          \
        uv_timer_stop(&(g)->timer);                                                                \
    } while (0)

/* A few more loop iterations, without waiting for anything in particular
 * (to show that nothing else happens, e.g. no second callback). */
static inline void uvg_spins(uvg_t *g, int n)
{
    for (int i = 0; i < n; i++)
        uv_run(g->loop, UV_RUN_NOWAIT);
}

/* Teardown: everything but the guard must close on its own within ms; then
 * close the guard and the loop. */
static inline void uvg_close_loop(uvg_t *g, uint64_t ms)
{
    uvg_arm(g, ms);
    while (uv_loop_alive(g->loop) && !g->expired)
        uv_run(g->loop, UV_RUN_ONCE);
    assert_false(g->expired);
    uv_close((uv_handle_t *)&g->timer, NULL);
    uv_run(g->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(g->loop), 0);
}

#endif
