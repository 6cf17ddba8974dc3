/*
 * Store contract tests, run once against each embedded backend (memory and
 * sqlite) with identical expectations, plus the core's behaviour with fake
 * and wrapped backends (health, never-answering backends, closed reply
 * queues) and a multi-threaded run for TSan.
 */
#include "contract.h"

/* ---- Fixture: prestate is the backend name ------------------------------ */

static int setup(void **state)
{
    h_fixture_t *fx = h_fixture_new((const char *)*state);
    h_open(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    h_fixture_free(*state);
    return 0;
}

/* ---- Registrations ------------------------------------------------------ */

static void test_reg_put_get(void **state)
{
    h_contract_reg_put_get(*state, NULL);
}

static void test_reg_input_is_copied(void **state)
{
    h_contract_reg_input_is_copied(*state);
}

static void test_reg_conflict(void **state)
{
    h_contract_reg_conflict(*state);
}

static void test_reg_delete(void **state)
{
    h_contract_reg_delete(*state);
}

static void test_reg_count(void **state)
{
    h_fixture_t *fx = *state;
    assert_int_equal(h_count(fx), 0);
    char id[32];
    for (int i = 0; i < 100; i++) { /* past the memory table's first growth */
        snprintf(id, sizeof id, "client-%d", i);
        assert_int_equal(h_put_reg3(fx, id, "s", i % 2 ? "inst-a" : "inst-b"), 0);
    }
    assert_int_equal(h_count(fx), 100);
    assert_int_equal(h_del_reg(fx, "client-7", "s"), 0);
    assert_int_equal(h_put_reg3(fx, "client-8", "s", "x"), SM_ECONFLICT);
    assert_int_equal(h_count(fx), 99);
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "client-%d", i);
        assert_int_equal(h_reg_exists(fx, id), i != 7);
    }
}

/* ---- Rooms -------------------------------------------------------------- */

static void test_room_put_get(void **state)
{
    h_contract_room_put_get(*state, NULL);
}

static void test_room_members(void **state)
{
    h_contract_room_members(*state, NULL);
}

static void test_room_delete(void **state)
{
    h_contract_room_delete(*state, NULL);
}

/* ---- cleanup_instance --------------------------------------------------- */

static void test_cleanup_instance(void **state)
{
    h_contract_cleanup_instance(*state, NULL);
}

/* ---- Calling convention ------------------------------------------------- */

static void test_invalid_args(void **state)
{
    h_fixture_t *fx = *state;
    h_cap_t c;
    memset(&c, 0, sizeof c);
    sm_registration_t g = {.client_id = "alice", .session_id = ""};
    assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c), SM_EINVAL);
    g.session_id = NULL;
    assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c), SM_EINVAL);
    assert_int_equal(sm_store_put_registration(fx->store, NULL, &fx->q, h_cb, &c), SM_EINVAL);
    assert_int_equal(sm_store_delete_registration(fx->store, "alice", NULL, &fx->q, h_cb, &c),
                     SM_EINVAL);
    assert_int_equal(sm_store_get_registration(fx->store, "", &fx->q, h_cb, &c), SM_EINVAL);
    sm_room_rec_t r = {.room_id = ""};
    assert_int_equal(sm_store_put_room(fx->store, &r, &fx->q, h_cb, &c), SM_EINVAL);
    assert_int_equal(sm_store_delete_room(fx->store, NULL, &fx->q, h_cb, &c), SM_EINVAL);
    assert_int_equal(sm_store_get_room(fx->store, "", &fx->q, h_cb, &c), SM_EINVAL);
    assert_int_equal(sm_store_add_member(fx->store, "r", "alice", "admin", &fx->q, h_cb, &c),
                     SM_EINVAL);
    assert_int_equal(sm_store_add_member(fx->store, "r", "alice", NULL, &fx->q, h_cb, &c),
                     SM_EINVAL);
    assert_int_equal(sm_store_add_member(fx->store, "", "alice", "sender", &fx->q, h_cb, &c),
                     SM_EINVAL);
    assert_int_equal(sm_store_remove_member(fx->store, "r", "", &fx->q, h_cb, &c), SM_EINVAL);
    /* No callback for a rejected call. */
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(c.done);
    assert_int_equal(h_count(fx), 0);
}

/* Callbacks never run inside the call, and arrive in submission order. */
static void test_async_and_ordered(void **state)
{
    h_fixture_t *fx = *state;
    enum { N = 8 };
    h_cap_t c[N];
    memset(c, 0, sizeof c);
    sm_registration_t g = {.client_id = "alice", .session_id = "s-1"};
    assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c[0]), 0);
    c[0].issued = true;
    assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c[1]), 0);
    c[1].issued = true;
    assert_int_equal(sm_store_get_registration(fx->store, "alice", &fx->q, h_cb, &c[2]), 0);
    c[2].issued = true;
    assert_int_equal(sm_store_delete_registration(fx->store, "alice", "s-1", &fx->q, h_cb, &c[3]),
                     0);
    c[3].issued = true;
    assert_int_equal(sm_store_get_registration(fx->store, "alice", &fx->q, h_cb, &c[4]), 0);
    c[4].issued = true;
    assert_int_equal(sm_store_count_registrations(fx->store, &fx->q, h_cb, &c[5]), 0);
    c[5].issued = true;
    sm_room_rec_t r = {.room_id = "room-1"};
    assert_int_equal(sm_store_put_room(fx->store, &r, &fx->q, h_cb, &c[6]), 0);
    c[6].issued = true;
    assert_int_equal(sm_store_add_member(fx->store, "room-1", "bob", "sender", &fx->q, h_cb, &c[7]),
                     0);
    c[7].issued = true;
    for (int i = 0; i < N; i++)
        assert_false(c[i].done); /* nothing ran yet: the loop has not run */

    h_wait(fx, &c[N - 1].done);
    static const int want[N] = {0, SM_ECONFLICT, 0, 0, SM_ENOTFOUND, 0, 0, 0};
    for (int i = 0; i < N; i++) {
        assert_true(c[i].done);
        assert_false(c[i].was_inline);
        assert_int_equal(c[i].order, i);
        assert_int_equal(c[i].status, want[i]);
    }
    assert_true(c[2].has_reg);
    assert_int_equal(c[5].count, 0);
    for (int i = 0; i < N; i++)
        h_cap_clear(&c[i]);
}

/* sm_store_close completes what is queued; callbacks still arrive. */
static void test_close_completes_queued(void **state)
{
    h_fixture_t *fx = *state;
    enum { N = 20 };
    h_cap_t c[N];
    memset(c, 0, sizeof c);
    char id[16];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "c%d", i);
        sm_registration_t g = {.client_id = id, .session_id = "s"};
        assert_int_equal(sm_store_put_registration(fx->store, &g, &fx->q, h_cb, &c[i]), 0);
        c[i].issued = true;
    }
    h_close_store(fx);
    for (int i = 0; i < N; i++)
        assert_false(c[i].done);
    h_wait(fx, &c[N - 1].done);
    for (int i = 0; i < N; i++) {
        assert_true(c[i].done);
        assert_int_equal(c[i].status, 0);
    }
}

/* A completion for a closed reply taskq is dropped (no callback, no leak). */
static void test_closed_reply_queue(void **state)
{
    h_fixture_t *fx = *state;
    sm_taskq_t q2;
    assert_int_equal(sm_taskq_init(&q2, &fx->loop), 0);
    sm_taskq_close(&q2); /* refuses posts; the handle closes when the loop runs */
    h_cap_t dropped;
    memset(&dropped, 0, sizeof dropped);
    sm_registration_t g = {.client_id = "alice", .session_id = "s-1"};
    assert_int_equal(sm_store_put_registration(fx->store, &g, &q2, h_cb, &dropped), 0);
    /* Flush the backend without running the loop (q2 must stay closable). */
    h_close_store(fx);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(dropped.done);
}

/* ---- Several caller threads, each with its own loop (TSan) -------------- */

static void test_threads(void **state)
{
    h_contract_threads(*state, 25, NULL);
}

/* ---- Core with fake backends -------------------------------------------- */

/* A fake that fails every op with `status`, or holds it forever (hold). */
typedef struct {
    int status;
    bool hold;
    sm_list_t held;
    int closed;
} fake_t;

static void fake_op(void *impl, sm_store_req_t *req)
{
    fake_t *f = impl;
    if (f->hold)
        sm_list_insert_tail(&f->held, &req->link);
    else
        sm_store_req_complete(req, f->status);
}

static void fake_close(void *impl)
{
    fake_t *f = impl;
    sm_list_t *n, *tmp;
    sm_list_foreach_safe(n, tmp, &f->held)
    {
        sm_list_remove(n);
        sm_store_req_complete(SM_CONTAINER_OF(n, sm_store_req_t, link), SM_ECANCELED);
    }
    f->closed++;
}

static const sm_store_vtable_t fake_vt = {
    .name = "fake",
    .close = fake_close,
    .cleanup_instance = fake_op,
    .put_registration = fake_op,
    .delete_registration = fake_op,
    .get_registration = fake_op,
    .count_registrations = fake_op,
    .put_room = fake_op,
    .delete_room = fake_op,
    .get_room = fake_op,
    .add_member = fake_op,
    .remove_member = fake_op,
};

static int fake_setup(void **state)
{
    h_fixture_t *fx = h_fixture_new("memory");
    *state = fx;
    return 0;
}

static void test_fake_health(void **state)
{
    h_fixture_t *fx = *state;
    fake_t f = {.status = SM_EUNAVAIL};
    sm_list_init(&f.held);
    fx->store = sm_store_open_with(&fake_vt, &f);
    assert_string_equal(sm_store_backend_name(fx->store), "fake");
    assert_true(sm_store_healthy(fx->store));
    assert_int_equal(h_put_reg3(fx, "a", "s", "i"), SM_EUNAVAIL);
    assert_true(sm_store_healthy(fx->store));
    assert_int_equal(h_del_room(fx, "r"), SM_EUNAVAIL);
    assert_true(sm_store_healthy(fx->store));
    assert_int_equal(h_remove_member(fx, "r", "a"), SM_EUNAVAIL);
    assert_false(sm_store_healthy(fx->store));
    assert_int_equal(h_del_room(fx, "r"), SM_EUNAVAIL);
    assert_false(sm_store_healthy(fx->store));
    /* Answers that are not failures count as success. */
    f.status = SM_ENOTFOUND;
    assert_int_equal(h_del_room(fx, "r"), SM_ENOTFOUND);
    assert_true(sm_store_healthy(fx->store));
    f.status = SM_EUNAVAIL;
    assert_int_equal(h_del_room(fx, "r"), SM_EUNAVAIL);
    assert_int_equal(h_del_room(fx, "r"), SM_EUNAVAIL);
    assert_true(sm_store_healthy(fx->store));
    f.status = SM_ECONFLICT;
    assert_int_equal(h_put_room(fx, "r", "a", "i"), SM_ECONFLICT);
    f.status = SM_EUNAVAIL;
    assert_int_equal(h_del_room(fx, "r"), SM_EUNAVAIL);
    assert_int_equal(h_del_room(fx, "r"), SM_EUNAVAIL);
    assert_true(sm_store_healthy(fx->store)); /* the conflict reset the streak */
    assert_int_equal(sm_store_cleanup_instance(fx->store, "i", NULL, NULL), SM_EUNAVAIL);
    assert_false(sm_store_healthy(fx->store));
    f.status = 0;
    unsigned regs = 7;
    assert_int_equal(sm_store_cleanup_instance(fx->store, "i", &regs, NULL), 0);
    assert_int_equal(regs, 0);
    assert_true(sm_store_healthy(fx->store));
    h_close_store(fx);
    assert_int_equal(f.closed, 1);
}

static void test_fake_never_answers(void **state)
{
    h_fixture_t *fx = *state;
    fake_t f = {.hold = true};
    sm_list_init(&f.held);
    fx->store = sm_store_open_with(&fake_vt, &f);
    h_cap_t c;
    memset(&c, 0, sizeof c);
    assert_int_equal(sm_store_get_registration(fx->store, "a", &fx->q, h_cb, &c), 0);
    c.issued = true;
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(c.done);
    /* Close makes the fake give its held request back; the callback still comes. */
    h_close_store(fx);
    h_wait(fx, &c.done);
    assert_int_equal(c.status, SM_ECANCELED);
    assert_false(c.has_reg);
}

/* A wrapper around the memory backend that fails writes on demand. */
typedef struct {
    const sm_store_vtable_t *inner;
    void *inner_impl;
    bool fail_puts;
} wrap_t;

static void wrap_close(void *impl)
{
    wrap_t *w = impl;
    w->inner->close(w->inner_impl);
    free(w);
}

static void wrap_put_registration(void *impl, sm_store_req_t *req)
{
    wrap_t *w = impl;
    if (w->fail_puts)
        sm_store_req_complete(req, SM_EUNAVAIL);
    else
        w->inner->put_registration(w->inner_impl, req);
}

#define WRAP_FWD(op)                                                                               \
    static void wrap_##op(void *impl, sm_store_req_t *req)                                         \
    {                                                                                              \
        wrap_t *w = impl;                                                                          \
        w->inner->op(w->inner_impl, req);                                                          \
    }
WRAP_FWD(cleanup_instance)
WRAP_FWD(delete_registration)
WRAP_FWD(get_registration)
WRAP_FWD(count_registrations)
WRAP_FWD(put_room)
WRAP_FWD(delete_room)
WRAP_FWD(get_room)
WRAP_FWD(add_member)
WRAP_FWD(remove_member)

static const sm_store_vtable_t wrap_vt = {
    .name = "wrapped-memory",
    .close = wrap_close,
    .cleanup_instance = wrap_cleanup_instance,
    .put_registration = wrap_put_registration,
    .delete_registration = wrap_delete_registration,
    .get_registration = wrap_get_registration,
    .count_registrations = wrap_count_registrations,
    .put_room = wrap_put_room,
    .delete_room = wrap_delete_room,
    .get_room = wrap_get_room,
    .add_member = wrap_add_member,
    .remove_member = wrap_remove_member,
};

static void test_wrapped_backend(void **state)
{
    h_fixture_t *fx = *state;
    wrap_t *w = calloc(1, sizeof *w);
    w->inner = sm_store_backend_find("memory");
    assert_non_null(w->inner);
    char err[128];
    assert_int_equal(w->inner->open(&fx->cfg, &w->inner_impl, err, sizeof err), 0);
    fx->store = sm_store_open_with(&wrap_vt, w);
    assert_int_equal(h_put_reg3(fx, "a", "s", "i"), 0);
    w->fail_puts = true;
    assert_int_equal(h_put_reg3(fx, "b", "s", "i"), SM_EUNAVAIL);
    assert_true(h_reg_exists(fx, "a"));
    assert_false(h_reg_exists(fx, "b"));
    assert_int_equal(h_count(fx), 1);
}

static void test_open_unknown_backend(void **state)
{
    h_fixture_t *fx = *state;
    char err[256] = "";
    sm_store_t *s = (sm_store_t *)1;
    h_config(fx, "firestore");
    assert_int_equal(sm_store_open(&fx->cfg, &s, err, sizeof err), SM_ECONFIG);
    assert_null(s);
    assert_non_null(strstr(err, "store.backend"));
    assert_non_null(strstr(err, "firestore"));
    fx->cfg.store_backend = NULL;
    assert_int_equal(sm_store_open(&fx->cfg, &s, err, sizeof err), SM_ECONFIG);
    assert_null(sm_store_backend_find("nope"));
    assert_ptr_equal(sm_store_backend_find("sqlite"), &sm_store_backend_sqlite);
    assert_ptr_equal(sm_store_backend_find("memory"), &sm_store_backend_memory);
    assert_string_equal(sm_store_op_name(SM_STORE_OP_GET_ROOM), "get_room");
}

/* Each contract test twice, named after the backend it ran on. */
/* clang-format off */
#define BOTH(fn)                                                                                   \
    {"memory: " #fn, fn, setup, teardown, (void *)"memory"},                                       \
        {"sqlite: " #fn, fn, setup, teardown, (void *)"sqlite"}
/* clang-format on */

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_reg_put_get),
        BOTH(test_reg_input_is_copied),
        BOTH(test_reg_conflict),
        BOTH(test_reg_delete),
        BOTH(test_reg_count),
        BOTH(test_room_put_get),
        BOTH(test_room_members),
        BOTH(test_room_delete),
        BOTH(test_cleanup_instance),
        BOTH(test_invalid_args),
        BOTH(test_async_and_ordered),
        BOTH(test_close_completes_queued),
        BOTH(test_closed_reply_queue),
        BOTH(test_threads),
        cmocka_unit_test_setup_teardown(test_fake_health, fake_setup, teardown),
        cmocka_unit_test_setup_teardown(test_fake_never_answers, fake_setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrapped_backend, fake_setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_unknown_backend, fake_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
