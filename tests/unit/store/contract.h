/*
 * The store contract scenarios, shared by test_store.c (memory and sqlite)
 * and test_store_firestore.c: every backend must give the same answers.
 * A backend's test may pass a hook that the scenario calls at named points
 * (h_at) to check its own storage in between; NULL for none.
 * Header-only (static inline) so each test binary stays one .c file.
 */
#ifndef SM_TESTS_STORE_CONTRACT_H
#define SM_TESTS_STORE_CONTRACT_H

#include "harness.h"

#include <pthread.h>

/* Called by a scenario at point `at` (a short label, see each scenario). */
typedef void (*h_hook_fn)(h_fixture_t *fx, const char *at);

static inline void h_at(h_hook_fn hook, h_fixture_t *fx, const char *at)
{
    if (hook != NULL)
        hook(fx, at);
}

/* ---- Registrations ------------------------------------------------------ */

static inline void h_contract_reg_put_get(h_fixture_t *fx, h_hook_fn hook)
{
    sm_registration_t g = {
        .client_id = "alice",
        .session_id = "s-1",
        .capabilities_json = "[\"audio\",\"video\"]",
        .metadata_json = NULL,
        .instance_id = "inst-a",
        .connected_at_ms = 1700000000123,
        .registered_at_ms = 1700000000456,
    };
    assert_int_equal(h_put_reg(fx, &g), 0);
    h_at(hook, fx, "stored");

    h_cap_t c;
    assert_int_equal(h_get_reg(fx, "alice", &c), 0);
    assert_true(c.has_reg);
    assert_string_equal(c.reg.client_id, "alice");
    assert_string_equal(c.reg.session_id, "s-1");
    assert_string_equal(c.reg.capabilities_json, "[\"audio\",\"video\"]");
    assert_null(c.reg.metadata_json);
    assert_string_equal(c.reg.instance_id, "inst-a");
    assert_int_equal(c.reg.connected_at_ms, 1700000000123);
    assert_int_equal(c.reg.registered_at_ms, 1700000000456);
    assert_false(c.has_room);
    h_cap_clear(&c);

    assert_int_equal(h_get_reg(fx, "bob", &c), SM_ENOTFOUND);
    assert_false(c.has_reg);
    h_cap_clear(&c);
}

static inline void h_contract_reg_input_is_copied(h_fixture_t *fx)
{
    char client[] = "carol", session[] = "s-9";
    sm_registration_t g = {.client_id = client, .session_id = session};
    h_cap_t c;
    memset(&c, 0, sizeof c);
    assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c), 0);
    c.issued = true;
    /* Scribble over the caller's strings before the store may have run. */
    memset(client, 'x', sizeof client - 1);
    memset(session, 'y', sizeof session - 1);
    h_wait(fx, &c.done);
    assert_int_equal(c.status, 0);
    assert_true(h_reg_exists(fx, "carol"));
    assert_false(h_reg_exists(fx, "xxxxx"));
}

static inline void h_contract_reg_conflict(h_fixture_t *fx)
{
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    assert_int_equal(h_put_reg3(fx, "alice", "s-2", "inst-b"), SM_ECONFLICT);
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), SM_ECONFLICT); /* even identical */
    h_cap_t c;
    assert_int_equal(h_get_reg(fx, "alice", &c), 0);
    assert_string_equal(c.reg.session_id, "s-1"); /* the first one is untouched */
    assert_string_equal(c.reg.instance_id, "inst-a");
    h_cap_clear(&c);
    assert_true(sm_store_healthy(fx->store)); /* a conflict is an answer, not a failure */
}

static inline void h_contract_reg_delete(h_fixture_t *fx)
{
    assert_int_equal(h_put_reg3(fx, "alice", "s-1", "inst-a"), 0);
    assert_int_equal(h_del_reg(fx, "alice", "s-other"), SM_ENOTFOUND);
    assert_true(h_reg_exists(fx, "alice"));
    assert_int_equal(h_del_reg(fx, "nobody", "s-1"), SM_ENOTFOUND);
    assert_int_equal(h_del_reg(fx, "alice", "s-1"), 0);
    assert_false(h_reg_exists(fx, "alice"));
    assert_int_equal(h_del_reg(fx, "alice", "s-1"), SM_ENOTFOUND);
    /* The client_id is free again. */
    assert_int_equal(h_put_reg3(fx, "alice", "s-2", "inst-a"), 0);
}

/* ---- Rooms -------------------------------------------------------------- */

static inline void h_contract_room_put_get(h_fixture_t *fx, h_hook_fn hook)
{
    assert_int_equal(h_put_room(fx, "room-1", "alice", "inst-a"), 0);
    h_at(hook, fx, "stored");
    h_cap_t c;
    assert_int_equal(h_get_room(fx, "room-1", &c), 0);
    assert_true(c.has_room);
    assert_string_equal(c.room.room_id, "room-1");
    assert_string_equal(c.room.creator_id, "alice");
    assert_string_equal(c.room.instance_id, "inst-a");
    assert_string_equal(c.room.metadata_json, "{\"max_participants\":4}");
    assert_int_equal(c.room.created_at_ms, 3000);
    assert_int_equal(c.room.max_participants, 4);
    assert_int_equal(c.n_members, 0); /* the creator is not a member by itself */
    h_cap_clear(&c);

    assert_int_equal(h_put_room(fx, "room-1", "bob", "inst-b"), SM_ECONFLICT);
    assert_int_equal(h_get_room(fx, "room-1", &c), 0);
    assert_string_equal(c.room.creator_id, "alice");
    h_cap_clear(&c);
    assert_int_equal(h_get_room(fx, "room-2", &c), SM_ENOTFOUND);
    assert_false(c.has_room);
    h_cap_clear(&c);
}

static inline void h_contract_room_members(h_fixture_t *fx, h_hook_fn hook)
{
    int64_t before = sm_clock_wall_ms();
    assert_int_equal(h_add_member(fx, "room-1", "alice", "sender"), SM_ENOTFOUND);
    h_at(hook, fx, "rejected");
    assert_int_equal(h_put_room(fx, "room-1", "alice", "inst-a"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "alice", "sender"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "zed", "receiver"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "bob", "receiver"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "alice", "receiver"), SM_ECONFLICT);
    h_at(hook, fx, "added");

    h_cap_t c;
    assert_int_equal(h_get_room(fx, "room-1", &c), 0);
    assert_int_equal(c.n_members, 3);
    /* In the order they were added. */
    assert_string_equal(c.members[0].client_id, "alice");
    assert_string_equal(c.members[0].role, "sender");
    assert_string_equal(c.members[1].client_id, "zed");
    assert_string_equal(c.members[1].role, "receiver");
    assert_string_equal(c.members[2].client_id, "bob");
    for (size_t i = 0; i < c.n_members; i++) {
        assert_string_equal(c.members[i].room_id, "room-1");
        assert_true(c.members[i].joined_at_ms >= before);
        assert_true(c.members[i].joined_at_ms <= sm_clock_wall_ms());
    }
    h_cap_clear(&c);

    assert_int_equal(h_remove_member(fx, "room-1", "zed"), 0);
    assert_int_equal(h_remove_member(fx, "room-1", "zed"), SM_ENOTFOUND);
    assert_int_equal(h_remove_member(fx, "room-x", "bob"), SM_ENOTFOUND);
    /* Re-joining goes to the end. */
    assert_int_equal(h_add_member(fx, "room-1", "zed", "sender"), 0);
    char list[128];
    h_members(fx, "room-1", list, sizeof list);
    assert_string_equal(list, "alice,bob,zed");

    /* Removing every member keeps the room. */
    assert_int_equal(h_remove_member(fx, "room-1", "alice"), 0);
    assert_int_equal(h_remove_member(fx, "room-1", "bob"), 0);
    assert_int_equal(h_remove_member(fx, "room-1", "zed"), 0);
    assert_int_equal(h_get_room(fx, "room-1", &c), 0);
    assert_int_equal(c.n_members, 0);
    h_cap_clear(&c);
}

static inline void h_contract_room_delete(h_fixture_t *fx, h_hook_fn hook)
{
    assert_int_equal(h_put_room(fx, "room-1", "alice", "inst-a"), 0);
    assert_int_equal(h_put_room(fx, "room-2", "bob", "inst-a"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "alice", "sender"), 0);
    assert_int_equal(h_add_member(fx, "room-1", "bob", "receiver"), 0);
    assert_int_equal(h_add_member(fx, "room-2", "bob", "sender"), 0);

    h_at(hook, fx, "deleting");
    assert_int_equal(h_del_room(fx, "room-1"), 0);
    h_at(hook, fx, "deleted");
    h_cap_t c;
    assert_int_equal(h_get_room(fx, "room-1", &c), SM_ENOTFOUND);
    h_cap_clear(&c);
    assert_int_equal(h_del_room(fx, "room-1"), SM_ENOTFOUND);
    assert_int_equal(h_remove_member(fx, "room-1", "bob"), SM_ENOTFOUND);
    h_at(hook, fx, "gone");

    /* Its memberships went with it: a new room of the same id starts empty. */
    assert_int_equal(h_put_room(fx, "room-1", "carol", "inst-b"), 0);
    assert_int_equal(h_get_room(fx, "room-1", &c), 0);
    assert_int_equal(c.n_members, 0);
    assert_string_equal(c.room.creator_id, "carol");
    h_cap_clear(&c);
    /* Other rooms are untouched. */
    char list[64];
    h_members(fx, "room-2", list, sizeof list);
    assert_string_equal(list, "bob");
}

/* ---- cleanup_instance --------------------------------------------------- */

static inline void h_contract_cleanup_instance(h_fixture_t *fx, h_hook_fn hook)
{
    assert_int_equal(h_put_reg3(fx, "a1", "s", "inst-a"), 0);
    assert_int_equal(h_put_reg3(fx, "a2", "s", "inst-a"), 0);
    assert_int_equal(h_put_reg3(fx, "b1", "s", "inst-b"), 0);
    assert_int_equal(h_put_reg3(fx, "n1", "s", NULL), 0);
    assert_int_equal(h_put_room(fx, "room-a", "a1", "inst-a"), 0);
    assert_int_equal(h_put_room(fx, "room-b", "b1", "inst-b"), 0);
    assert_int_equal(h_add_member(fx, "room-a", "a1", "sender"), 0);
    assert_int_equal(h_add_member(fx, "room-a", "b1", "receiver"), 0);
    assert_int_equal(h_add_member(fx, "room-b", "b1", "sender"), 0);
    assert_int_equal(h_add_member(fx, "room-b", "a2", "receiver"), 0);
    assert_int_equal(h_add_member(fx, "room-b", "n1", "receiver"), 0);

    unsigned regs = 99, rooms = 99;
    assert_int_equal(sm_store_cleanup_instance(fx->store, "inst-x", &regs, &rooms), 0);
    assert_int_equal(regs, 0);
    assert_int_equal(rooms, 0);
    assert_int_equal(sm_store_cleanup_instance(fx->store, "inst-a", &regs, &rooms), 0);
    assert_int_equal(regs, 2);
    assert_int_equal(rooms, 1);
    h_at(hook, fx, "cleaned");

    assert_false(h_reg_exists(fx, "a1"));
    assert_false(h_reg_exists(fx, "a2"));
    assert_true(h_reg_exists(fx, "b1"));
    assert_true(h_reg_exists(fx, "n1"));
    assert_int_equal(h_count(fx), 2);
    h_cap_t c;
    assert_int_equal(h_get_room(fx, "room-a", &c), SM_ENOTFOUND);
    h_cap_clear(&c);
    /* a2 (of inst-a) left room-b; the others stay. */
    char list[64];
    h_members(fx, "room-b", list, sizeof list);
    assert_string_equal(list, "b1,n1");
    /* room-a's memberships are gone too: a new room-a is empty. */
    assert_int_equal(h_put_room(fx, "room-a", "b1", "inst-b"), 0);
    h_members(fx, "room-a", list, sizeof list);
    assert_string_equal(list, "");

    h_at(hook, fx, "recreated");
    /* Pointers are optional; bad instance ids are rejected. */
    assert_int_equal(sm_store_cleanup_instance(fx->store, "inst-b", NULL, NULL), 0);
    assert_int_equal(h_count(fx), 1);
    assert_int_equal(sm_store_cleanup_instance(fx->store, "", &regs, &rooms), SM_EINVAL);
    assert_int_equal(sm_store_cleanup_instance(fx->store, NULL, NULL, NULL), SM_EINVAL);
}

/* ---- Several caller threads, each with its own loop (TSan) -------------- */

/* Run by each worker thread around its operations (e.g. to give it a REST
 * client of its own): start's result is passed to stop. */
typedef struct {
    void *(*start)(h_fixture_t *local);
    void (*stop)(void *started);
} h_thread_hooks_t;

/* Each worker has its own loop and taskq, created and finally closed by the
 * main thread: Debian's libuv closes fds with a raw syscall TSan cannot see,
 * so a loop created on one thread after another thread's loop was closed
 * would look like a race on the reused fd numbers. */
typedef struct {
    h_fixture_t local; /* loop and q are this worker's; store is shared */
    int index;
    int per_worker;
    const h_thread_hooks_t *hooks; /* NULL for none */
    int failures;
} h_worker_t;

enum { H_WORKERS = 4 };

static inline void *h_worker_main(void *p)
{
    h_worker_t *w = p;
    h_fixture_t *fx = &w->local;
    void *started = w->hooks != NULL ? w->hooks->start(fx) : NULL;
    char id[32], sess[32];
    for (int i = 0; i < w->per_worker; i++) {
        snprintf(id, sizeof id, "w%d-%d", w->index, i);
        snprintf(sess, sizeof sess, "s%d", i);
        /* Everything is counted here and asserted on the main thread. */
        h_cap_t c;
        memset(&c, 0, sizeof c);
        sm_registration_t g = {.client_id = id, .session_id = sess, .instance_id = "mt"};
        if (sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c) != 0)
            w->failures++;
        c.issued = true;
        h_wait(fx, &c.done);
        w->failures += c.status != 0 || c.was_inline;
        memset(&c, 0, sizeof c);
        if (sm_store_get_registration(fx->store, id, &fx->q, h_cb, &c) != 0)
            w->failures++;
        c.issued = true;
        h_wait(fx, &c.done);
        w->failures += c.status != 0 || !c.has_reg || strcmp(c.reg.session_id, sess) != 0;
        h_cap_clear(&c);
        if (i % 2) {
            memset(&c, 0, sizeof c);
            if (sm_store_delete_registration(fx->store, id, sess, &fx->q, h_cb, &c) != 0)
                w->failures++;
            c.issued = true;
            h_wait(fx, &c.done);
            w->failures += c.status != 0;
        }
    }
    if (w->hooks != NULL)
        w->hooks->stop(started);
    sm_taskq_close(&fx->q);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* H_WORKERS threads, each putting per_worker registrations, reading each
 * back and deleting every other one. */
static inline void h_contract_threads(h_fixture_t *fx, int per_worker,
                                      const h_thread_hooks_t *hooks)
{
    pthread_t t[H_WORKERS];
    h_worker_t *w = calloc(H_WORKERS, sizeof *w);
    assert_non_null(w);
    for (int i = 0; i < H_WORKERS; i++) {
        w[i].index = i;
        w[i].per_worker = per_worker;
        w[i].hooks = hooks;
        w[i].local.store = fx->store;
        assert_int_equal(uv_loop_init(&w[i].local.loop), 0);
        assert_int_equal(sm_taskq_init(&w[i].local.q, &w[i].local.loop), 0);
    }
    for (int i = 0; i < H_WORKERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, h_worker_main, &w[i]), 0);
    for (int i = 0; i < H_WORKERS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < H_WORKERS; i++) {
        assert_int_equal(uv_loop_close(&w[i].local.loop), 0);
        assert_int_equal(w[i].failures, 0);
    }
    free(w);
    assert_int_equal(h_count(fx), H_WORKERS * (per_worker - per_worker / 2));
    assert_true(sm_store_healthy(fx->store));
}

#endif
