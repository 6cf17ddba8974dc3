/*
 * Shared fixture for the store tests: a temporary directory, a hand-built
 * config, a libuv loop with a reply taskq, and blocking wrappers that issue
 * one store operation and run the loop until its callback fired (no sleeps).
 * Header-only (static inline) so each test binary stays one .c file.
 */
#ifndef SM_TESTS_STORE_HARNESS_H
#define SM_TESTS_STORE_HARNESS_H

#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "config/config.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/taskq.h"
#include "log/log.h"
#include "store/store.h"

#define H_MAX_MEMBERS 16

typedef struct {
    uv_loop_t loop;
    sm_taskq_t q;
    sm_config_t cfg;
    sm_store_t *store;
    char dir[256];
    char path[320];
} h_fixture_t;

/* What one callback saw (deep copies, since results are borrowed). */
typedef struct {
    bool issued; /* set by the issuer right after the call returned */
    bool done;
    bool was_inline; /* the callback ran before `issued` was set */
    int status;
    int order; /* h_next_order at the time the callback ran */
    bool has_reg, has_room;
    sm_registration_t reg;
    sm_room_rec_t room;
    size_t n_members;
    sm_room_member_t members[H_MAX_MEMBERS];
    uint64_t count;
} h_cap_t;

/* Per thread: test_threads runs callbacks on several loops at once. */
static _Thread_local int h_next_order;

static inline void h_cap_clear(h_cap_t *c)
{
    sm_store_reg_clear(&c->reg);
    sm_store_room_clear(&c->room);
    for (size_t i = 0; i < c->n_members; i++) {
        free(c->members[i].room_id);
        free(c->members[i].client_id);
        free(c->members[i].role);
    }
    memset(c, 0, sizeof *c);
}

static inline void h_cb(int status, const sm_store_result_t *res, void *arg)
{
    h_cap_t *c = arg;
    assert_non_null(res);
    assert_false(c->done); /* exactly once */
    c->was_inline = !c->issued;
    c->done = true;
    c->status = status;
    c->order = h_next_order++;
    if (status != 0) {
        /* On error the result is empty. */
        assert_null(res->registration);
        assert_null(res->room);
        assert_int_equal(res->n_members, 0);
        return;
    }
    if (res->registration) {
        c->has_reg = true;
        sm_store_reg_copy(&c->reg, res->registration);
    }
    if (res->room) {
        c->has_room = true;
        sm_store_room_copy(&c->room, res->room);
    }
    assert_true(res->n_members <= H_MAX_MEMBERS);
    for (size_t i = 0; i < res->n_members; i++) {
        c->members[i].room_id = sm_xstrdup(res->members[i].room_id);
        c->members[i].client_id = sm_xstrdup(res->members[i].client_id);
        c->members[i].role = sm_xstrdup(res->members[i].role);
        c->members[i].joined_at_ms = res->members[i].joined_at_ms;
    }
    c->n_members = res->n_members;
    c->count = res->count;
}

/* Run the loop until *flag (the loop blocks in the taskq's async handle). */
static inline void h_wait(h_fixture_t *fx, const bool *flag)
{
    while (!*flag)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static inline int h_rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(p);
}

static inline void h_rmtree(const char *dir)
{
    nftw(dir, h_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Config as the store reads it; short timings so failure tests run fast. */
static inline void h_config(h_fixture_t *fx, const char *backend)
{
    memset(&fx->cfg, 0, sizeof fx->cfg);
    fx->cfg.store_backend = (char *)backend;
    fx->cfg.store_path = fx->path;
    fx->cfg.database_operation_timeout = 20;
    fx->cfg.database_retry_attempts = 3;
    fx->cfg.database_retry_interval = 5;
}

/* Temp dir, loop and taskq; the store is not opened. */
static inline h_fixture_t *h_fixture_new(const char *backend)
{
    sm_log_configure(SM_LOG_ERROR, SM_LOG_FORMAT_TEXT, -1);
    h_fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->dir, sizeof fx->dir, "%s/sm-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/data/store.db", fx->dir);
    h_config(fx, backend);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(sm_taskq_init(&fx->q, &fx->loop), 0);
    h_next_order = 0;
    return fx;
}

static inline void h_open(h_fixture_t *fx)
{
    char err[256] = "";
    int rc = sm_store_open(&fx->cfg, &fx->store, err, sizeof err);
    if (rc != 0)
        fail_msg("sm_store_open: %s", err);
    assert_non_null(fx->store);
}

static inline void h_close_store(h_fixture_t *fx)
{
    sm_store_close(fx->store);
    fx->store = NULL;
}

static inline void h_fixture_free(h_fixture_t *fx)
{
    h_close_store(fx);
    /* Deliver anything still posted, then close the taskq and the loop. */
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    sm_taskq_close(&fx->q);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    h_rmtree(fx->dir);
    free(fx);
}

/* ---- Blocking wrappers: issue, mark issued, wait, return the status ----- */

#define H_ISSUE(fx, c, call)                                                                       \
    do {                                                                                           \
        memset((c), 0, sizeof *(c));                                                               \
        assert_int_equal((call), 0);                                                               \
        (c)->issued = true;                                                                        \
        h_wait((fx), &(c)->done);                                                                  \
        assert_false((c)->was_inline);                                                             \
    } while (0)

static inline int h_put_reg(h_fixture_t *fx, const sm_registration_t *g)
{
    h_cap_t c;
    H_ISSUE(fx, &c, sm_store_put_registration(fx->store, g, &fx->q, h_cb, &c));
    return c.status;
}

/* A registration with the usual test values. */
static inline int h_put_reg3(h_fixture_t *fx, const char *client, const char *session,
                             const char *instance)
{
    sm_registration_t g = {
        .client_id = (char *)client,
        .session_id = (char *)session,
        .capabilities_json = "[\"audio\"]",
        .metadata_json = "{\"k\":1}",
        .instance_id = (char *)instance,
        .connected_at_ms = 1000,
        .registered_at_ms = 2000,
    };
    return h_put_reg(fx, &g);
}

static inline int h_del_reg(h_fixture_t *fx, const char *client, const char *session)
{
    h_cap_t c;
    H_ISSUE(fx, &c, sm_store_delete_registration(fx->store, client, session, &fx->q, h_cb, &c));
    return c.status;
}

/* Caller clears c with h_cap_clear. */
static inline int h_get_reg(h_fixture_t *fx, const char *client, h_cap_t *c)
{
    H_ISSUE(fx, c, sm_store_get_registration(fx->store, client, &fx->q, h_cb, c));
    return c->status;
}

static inline bool h_reg_exists(h_fixture_t *fx, const char *client)
{
    h_cap_t c;
    int rc = h_get_reg(fx, client, &c);
    h_cap_clear(&c);
    assert_true(rc == 0 || rc == SM_ENOTFOUND);
    return rc == 0;
}

static inline uint64_t h_count(h_fixture_t *fx)
{
    h_cap_t c;
    H_ISSUE(fx, &c, sm_store_count_registrations(fx->store, &fx->q, h_cb, &c));
    assert_int_equal(c.status, 0);
    return c.count;
}

static inline int h_put_room(h_fixture_t *fx, const char *room, const char *creator,
                             const char *instance)
{
    sm_room_rec_t r = {
        .room_id = (char *)room,
        .creator_id = (char *)creator,
        .instance_id = (char *)instance,
        .metadata_json = "{\"max_participants\":4}",
        .created_at_ms = 3000,
        .max_participants = 4,
    };
    h_cap_t c;
    H_ISSUE(fx, &c, sm_store_put_room(fx->store, &r, &fx->q, h_cb, &c));
    return c.status;
}

static inline int h_del_room(h_fixture_t *fx, const char *room)
{
    h_cap_t c;
    H_ISSUE(fx, &c, sm_store_delete_room(fx->store, room, &fx->q, h_cb, &c));
    return c.status;
}

/* Caller clears c with h_cap_clear. */
static inline int h_get_room(h_fixture_t *fx, const char *room, h_cap_t *c)
{
    H_ISSUE(fx, c, sm_store_get_room(fx->store, room, &fx->q, h_cb, c));
    return c->status;
}

static inline int h_add_member(h_fixture_t *fx, const char *room, const char *client,
                               const char *role)
{
    h_cap_t c;
    H_ISSUE(fx, &c, sm_store_add_member(fx->store, room, client, role, &fx->q, h_cb, &c));
    return c.status;
}

static inline int h_remove_member(h_fixture_t *fx, const char *room, const char *client)
{
    h_cap_t c;
    H_ISSUE(fx, &c, sm_store_remove_member(fx->store, room, client, &fx->q, h_cb, &c));
    return c.status;
}

/* Members of room as "a,b,c" (empty when the room is missing). */
static inline void h_members(h_fixture_t *fx, const char *room, char *out, size_t len)
{
    h_cap_t c;
    out[0] = '\0';
    if (h_get_room(fx, room, &c) == 0) {
        for (size_t i = 0; i < c.n_members; i++) {
            if (i)
                strncat(out, ",", len - strlen(out) - 1);
            strncat(out, c.members[i].client_id, len - strlen(out) - 1);
        }
    }
    h_cap_clear(&c);
}

#endif
