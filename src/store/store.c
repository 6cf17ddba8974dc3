/*
 * Store core: picks the backend vtable by name, turns each call into a
 * request the backend owns until it completes it, and delivers completions
 * to the caller's taskq.  Health accounting lives here so every backend,
 * fakes included, gets the same behaviour.
 *
 * DESIGN: a completion is always posted to the reply taskq, even when the
 * backend completes inline (memory), so callers never see their callback
 * re-entered from inside the call.  The result data lives in the request,
 * which is freed on the caller's thread right after the callback returns;
 * after sm_store_req_complete nothing touches the store, so callbacks may
 * still run after sm_store_close.
 */
#include "store/store.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/err.h"
#include "log/log.h"
#include "metrics/observe.h"

struct sm_store_s {
    const sm_store_vtable_t *vt;
    void *impl;
    atomic_bool closing;
    atomic_uint failures;    /* consecutive failed operations */
    atomic_long outstanding; /* submitted, not yet completed */
};

/* cleanup_instance waits on this (on its own stack) for the completion. */
struct sm__store_sync_s {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

static const sm_store_vtable_t *const backends[] = {
    &sm_store_backend_sqlite,
    &sm_store_backend_memory,
    &sm_store_backend_firestore,
};

static const char *const op_names[] = {
    [SM_STORE_OP_PUT_REGISTRATION] = "put_registration",
    [SM_STORE_OP_DELETE_REGISTRATION] = "delete_registration",
    [SM_STORE_OP_GET_REGISTRATION] = "get_registration",
    [SM_STORE_OP_COUNT_REGISTRATIONS] = "count_registrations",
    [SM_STORE_OP_PUT_ROOM] = "put_room",
    [SM_STORE_OP_DELETE_ROOM] = "delete_room",
    [SM_STORE_OP_GET_ROOM] = "get_room",
    [SM_STORE_OP_ADD_MEMBER] = "add_member",
    [SM_STORE_OP_REMOVE_MEMBER] = "remove_member",
    [SM_STORE_OP_CLEANUP_INSTANCE] = "cleanup_instance",
    [SM_STORE_OP_GET_CLIENT] = "get_client",
};

const char *sm_store_op_name(sm_store_op_t op)
{
    if ((unsigned)op < SM_ARRAY_LEN(op_names) && op_names[op])
        return op_names[op];
    return "unknown";
}

/* ---- Records ------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s ? sm_xstrdup(s) : NULL;
}

void sm_store_reg_copy(sm_registration_t *dst, const sm_registration_t *src)
{
    dst->client_id = dup_or_null(src->client_id);
    dst->session_id = dup_or_null(src->session_id);
    dst->capabilities_json = dup_or_null(src->capabilities_json);
    dst->metadata_json = dup_or_null(src->metadata_json);
    dst->instance_id = dup_or_null(src->instance_id);
    dst->connected_at_ms = src->connected_at_ms;
    dst->registered_at_ms = src->registered_at_ms;
}

void sm_store_reg_clear(sm_registration_t *r)
{
    free(r->client_id);
    free(r->session_id);
    free(r->capabilities_json);
    free(r->metadata_json);
    free(r->instance_id);
    memset(r, 0, sizeof *r);
}

void sm_store_room_copy(sm_room_rec_t *dst, const sm_room_rec_t *src)
{
    dst->room_id = dup_or_null(src->room_id);
    dst->creator_id = dup_or_null(src->creator_id);
    dst->instance_id = dup_or_null(src->instance_id);
    dst->metadata_json = dup_or_null(src->metadata_json);
    dst->created_at_ms = src->created_at_ms;
    dst->max_participants = src->max_participants;
}

void sm_store_room_clear(sm_room_rec_t *r)
{
    free(r->room_id);
    free(r->creator_id);
    free(r->instance_id);
    free(r->metadata_json);
    memset(r, 0, sizeof *r);
}

static void client_clear(sm_client_rec_t *c)
{
    free(c->client_id);
    free(c->token_sha256);
    memset(c, 0, sizeof *c);
}

/* ---- Requests ----------------------------------------------------------- */

void sm_store_req_reset_result(sm_store_req_t *req)
{
    if (req->_has_reg)
        sm_store_reg_clear(&req->_out_reg);
    if (req->_has_room)
        sm_store_room_clear(&req->_out_room);
    if (req->_has_client)
        client_clear(&req->_out_client);
    req->_has_reg = req->_has_room = req->_has_client = false;
    for (size_t i = 0; i < req->_n_members; i++) {
        free(req->_members[i].room_id);
        free(req->_members[i].client_id);
        free(req->_members[i].role);
    }
    free(req->_members);
    req->_members = NULL;
    req->_n_members = req->_cap_members = 0;
    req->_count = 0;
    req->_removed_regs = req->_removed_rooms = 0;
}

void sm_store_req_set_registration(sm_store_req_t *req, const sm_registration_t *reg)
{
    if (req->_has_reg)
        sm_store_reg_clear(&req->_out_reg);
    sm_store_reg_copy(&req->_out_reg, reg);
    req->_has_reg = true;
}

void sm_store_req_set_room(sm_store_req_t *req, const sm_room_rec_t *room)
{
    if (req->_has_room)
        sm_store_room_clear(&req->_out_room);
    sm_store_room_copy(&req->_out_room, room);
    req->_has_room = true;
}

void sm_store_req_add_member(sm_store_req_t *req, const sm_room_member_t *m)
{
    if (req->_n_members == req->_cap_members) {
        req->_cap_members = req->_cap_members ? req->_cap_members * 2 : 8;
        req->_members = sm_xrealloc(req->_members, req->_cap_members * sizeof req->_members[0]);
    }
    sm_room_member_t *d = &req->_members[req->_n_members++];
    d->room_id = dup_or_null(m->room_id);
    d->client_id = dup_or_null(m->client_id);
    d->role = dup_or_null(m->role);
    d->joined_at_ms = m->joined_at_ms;
}

void sm_store_req_set_count(sm_store_req_t *req, uint64_t count)
{
    req->_count = count;
}

void sm_store_req_set_removed(sm_store_req_t *req, unsigned regs, unsigned rooms)
{
    req->_removed_regs = regs;
    req->_removed_rooms = rooms;
}

void sm_store_req_set_client(sm_store_req_t *req, const sm_client_rec_t *c)
{
    if (req->_has_client)
        client_clear(&req->_out_client);
    req->_out_client.client_id = dup_or_null(c->client_id);
    req->_out_client.token_sha256 = dup_or_null(c->token_sha256);
    req->_has_client = true;
}

static void req_free(sm_store_req_t *req)
{
    sm_store_req_reset_result(req);
    sm_store_reg_clear(&req->reg);
    sm_store_room_clear(&req->room);
    free(req->client_id);
    free(req->session_id);
    free(req->room_id);
    free(req->role);
    free(req->instance_id);
    free(req);
}

/* Reply thread: deliver the result, then free the request. */
static void on_reply(sm_task_t *t)
{
    sm_store_req_t *req = SM_CONTAINER_OF(t, sm_store_req_t, _task);
    sm_metrics_store_done(req->op, req->_status, req->_elapsed_us);
    sm_store_result_t res = {0};
    if (req->_status == 0) {
        res.registration = req->_has_reg ? &req->_out_reg : NULL;
        res.room = req->_has_room ? &req->_out_room : NULL;
        res.members = req->_members;
        res.n_members = req->_n_members;
        res.count = req->_count;
        res.client = req->_has_client ? &req->_out_client : NULL;
    }
    req->_cb(req->_status, &res, req->_arg);
    req_free(req);
}

static bool is_failure(int status)
{
    return status != 0 && status != SM_ENOTFOUND && status != SM_ECONFLICT;
}

void sm__store_retry_settings(const sm_config_t *cfg, uint64_t *timeout_ms, unsigned *attempts,
                              uint64_t *interval_ms)
{
    *timeout_ms = cfg->database_operation_timeout ? cfg->database_operation_timeout : 1;
    *attempts = cfg->database_retry_attempts < 1     ? 1
                : cfg->database_retry_attempts > 100 ? 100
                                                     : (unsigned)cfg->database_retry_attempts;
    *interval_ms = cfg->database_retry_interval;
}

bool sm__store_sha256_hex_ok(const char *h)
{
    size_t n = 0;
    while (h && isxdigit((unsigned char)h[n]))
        n++;
    return h != NULL && n == 64 && h[n] == '\0';
}

/* A stored token hash must be 64 hex digits; returned in lower case. */
static int check_client(sm_store_req_t *req)
{
    char *h = req->_has_client ? req->_out_client.token_sha256 : NULL;
    if (!sm__store_sha256_hex_ok(h)) {
        SM_LOG(SM_LOG_WARN,
               SM_MSG("stored client credentials are malformed (token_sha256 must "
                      "be 64 hex digits); treated as unknown"),
               SM_STR("client_id", req->client_id));
        sm_store_req_reset_result(req);
        return SM_ENOTFOUND;
    }
    for (size_t i = 0; h[i]; i++)
        h[i] = (char)tolower((unsigned char)h[i]);
    return 0;
}

void sm_store_req_complete(sm_store_req_t *req, int status)
{
    sm_store_t *s = req->_store;
    if (req->op == SM_STORE_OP_GET_CLIENT && status == 0)
        status = check_client(req);
    req->_status = status;
    req->_elapsed_us = sm_hist_now_us() - req->_started_us;
    if (is_failure(status)) {
        unsigned n = atomic_fetch_add(&s->failures, 1) + 1;
        if (n == SM_STORE_UNHEALTHY_AFTER)
            SM_LOG(SM_LOG_WARN, SM_MSG("store unhealthy"), SM_STR("backend", s->vt->name),
                   SM_UINT("consecutive_failures", n));
    } else if (atomic_exchange(&s->failures, 0) >= SM_STORE_UNHEALTHY_AFTER) {
        SM_LOG(SM_LOG_INFO, SM_MSG("store healthy again"), SM_STR("backend", s->vt->name));
    }
    atomic_fetch_sub(&s->outstanding, 1);
    /* From here on the store may be gone (sm_store_close on another thread). */
    if (req->_sync) {
        struct sm__store_sync_s *sync = req->_sync;
        pthread_mutex_lock(&sync->lock);
        sync->done = true;
        pthread_cond_signal(&sync->cond);
        pthread_mutex_unlock(&sync->lock);
        return; /* the waiter frees req */
    }
    req->_task.run = on_reply;
    if (sm_taskq_post(req->_reply, &req->_task) != 0) {
        /* The caller's loop is shutting down: nobody is left to tell. */
        SM_LOG(SM_LOG_DEBUG, SM_MSG("store completion dropped: reply queue closed"),
               SM_STR("op", sm_store_op_name(req->op)), SM_INT("status", status));
        req_free(req);
    }
}

/* ---- Lifecycle ---------------------------------------------------------- */

const sm_store_vtable_t *sm_store_backend_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < SM_ARRAY_LEN(backends); i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

sm_store_t *sm_store_open_with(const sm_store_vtable_t *vt, void *impl)
{
    SM_ASSERT(vt != NULL && vt->close != NULL);
    sm_store_t *s = SM_NEW(sm_store_t);
    s->vt = vt;
    s->impl = impl;
    atomic_init(&s->closing, false);
    atomic_init(&s->failures, 0);
    atomic_init(&s->outstanding, 0);
    return s;
}

int sm_store_open(const sm_config_t *cfg, sm_store_t **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *name = cfg->store_backend ? cfg->store_backend : "";
    const sm_store_vtable_t *vt = sm_store_backend_find(name);
    if (vt == NULL || vt->open == NULL) {
        snprintf(err, errlen,
                 "store.backend: unknown backend \"%s\" (expected sqlite|memory|firestore)", name);
        return SM_ECONFIG;
    }
    void *impl = NULL;
    int rc = vt->open(cfg, &impl, err, errlen);
    if (rc != 0)
        return rc;
    *out = sm_store_open_with(vt, impl);
    return 0;
}

void sm_store_close(sm_store_t *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->closing, true);
    s->vt->close(s->impl);
    /* A backend must complete every request before its close returns. */
    SM_ASSERT(atomic_load(&s->outstanding) == 0);
    free(s);
}

bool sm_store_healthy(const sm_store_t *s)
{
    return atomic_load(&s->failures) < SM_STORE_UNHEALTHY_AFTER;
}

const char *sm_store_backend_name(const sm_store_t *s)
{
    return s->vt->name;
}

int sm_store_cleanup_instance(sm_store_t *s, const char *instance_id, unsigned *removed_regs,
                              unsigned *removed_rooms)
{
    if (removed_regs)
        *removed_regs = 0;
    if (removed_rooms)
        *removed_rooms = 0;
    if (instance_id == NULL || instance_id[0] == '\0')
        return SM_EINVAL;
    if (atomic_load(&s->closing))
        return SM_ECLOSED;

    struct sm__store_sync_s sync = {.done = false};
    pthread_mutex_init(&sync.lock, NULL);
    pthread_cond_init(&sync.cond, NULL);
    sm_store_req_t *req = SM_NEW(sm_store_req_t);
    req->op = SM_STORE_OP_CLEANUP_INSTANCE;
    req->instance_id = sm_xstrdup(instance_id);
    req->_store = s;
    req->_sync = &sync;
    sm_list_init(&req->link);
    atomic_fetch_add(&s->outstanding, 1);
    s->vt->cleanup_instance(s->impl, req);

    pthread_mutex_lock(&sync.lock);
    while (!sync.done)
        pthread_cond_wait(&sync.cond, &sync.lock);
    pthread_mutex_unlock(&sync.lock);
    pthread_cond_destroy(&sync.cond);
    pthread_mutex_destroy(&sync.lock);

    int status = req->_status;
    if (status == 0) {
        if (removed_regs)
            *removed_regs = req->_removed_regs;
        if (removed_rooms)
            *removed_rooms = req->_removed_rooms;
    }
    req_free(req);
    return status;
}

/* ---- Asynchronous operations -------------------------------------------- */

static bool empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static sm_store_req_t *req_new(sm_store_t *s, sm_store_op_t op, sm_taskq_t *reply,
                               sm_store_done_cb cb, void *arg)
{
    SM_ASSERT(s != NULL && reply != NULL && cb != NULL);
    sm_store_req_t *req = SM_NEW(sm_store_req_t);
    req->op = op;
    req->_store = s;
    req->_reply = reply;
    req->_cb = cb;
    req->_arg = arg;
    req->_started_us = sm_hist_now_us();
    sm_list_init(&req->link);
    return req;
}

/* Hand req to the backend's entry for its op. */
static int submit(sm_store_t *s, sm_store_req_t *req)
{
    if (atomic_load(&s->closing)) {
        req_free(req);
        return SM_ECLOSED;
    }
    atomic_fetch_add(&s->outstanding, 1);
    const sm_store_vtable_t *vt = s->vt;
    void (*fn)(void *, sm_store_req_t *) = NULL;
    switch (req->op) {
    case SM_STORE_OP_PUT_REGISTRATION:
        fn = vt->put_registration;
        break;
    case SM_STORE_OP_DELETE_REGISTRATION:
        fn = vt->delete_registration;
        break;
    case SM_STORE_OP_GET_REGISTRATION:
        fn = vt->get_registration;
        break;
    case SM_STORE_OP_COUNT_REGISTRATIONS:
        fn = vt->count_registrations;
        break;
    case SM_STORE_OP_PUT_ROOM:
        fn = vt->put_room;
        break;
    case SM_STORE_OP_DELETE_ROOM:
        fn = vt->delete_room;
        break;
    case SM_STORE_OP_GET_ROOM:
        fn = vt->get_room;
        break;
    case SM_STORE_OP_ADD_MEMBER:
        fn = vt->add_member;
        break;
    case SM_STORE_OP_REMOVE_MEMBER:
        fn = vt->remove_member;
        break;
    case SM_STORE_OP_GET_CLIENT:
        fn = vt->get_client;
        if (fn == NULL) {
            sm_store_req_complete(req, SM_ENOTFOUND);
            return 0;
        }
        break;
    case SM_STORE_OP_CLEANUP_INSTANCE:
        break;
    }
    SM_ASSERT(fn != NULL);
    fn(s->impl, req);
    return 0;
}

int sm_store_put_registration(sm_store_t *s, const sm_registration_t *reg, sm_taskq_t *reply,
                              sm_store_done_cb cb, void *arg)
{
    if (reg == NULL || empty(reg->client_id) || empty(reg->session_id))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_PUT_REGISTRATION, reply, cb, arg);
    sm_store_reg_copy(&req->reg, reg);
    return submit(s, req);
}

int sm_store_delete_registration(sm_store_t *s, const char *client_id, const char *session_id,
                                 sm_taskq_t *reply, sm_store_done_cb cb, void *arg)
{
    if (empty(client_id) || empty(session_id))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_DELETE_REGISTRATION, reply, cb, arg);
    req->client_id = sm_xstrdup(client_id);
    req->session_id = sm_xstrdup(session_id);
    return submit(s, req);
}

int sm_store_get_registration(sm_store_t *s, const char *client_id, sm_taskq_t *reply,
                              sm_store_done_cb cb, void *arg)
{
    if (empty(client_id))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_GET_REGISTRATION, reply, cb, arg);
    req->client_id = sm_xstrdup(client_id);
    return submit(s, req);
}

int sm_store_count_registrations(sm_store_t *s, sm_taskq_t *reply, sm_store_done_cb cb, void *arg)
{
    return submit(s, req_new(s, SM_STORE_OP_COUNT_REGISTRATIONS, reply, cb, arg));
}

int sm_store_put_room(sm_store_t *s, const sm_room_rec_t *room, sm_taskq_t *reply,
                      sm_store_done_cb cb, void *arg)
{
    if (room == NULL || empty(room->room_id))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_PUT_ROOM, reply, cb, arg);
    sm_store_room_copy(&req->room, room);
    return submit(s, req);
}

int sm_store_delete_room(sm_store_t *s, const char *room_id, sm_taskq_t *reply, sm_store_done_cb cb,
                         void *arg)
{
    if (empty(room_id))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_DELETE_ROOM, reply, cb, arg);
    req->room_id = sm_xstrdup(room_id);
    return submit(s, req);
}

int sm_store_get_room(sm_store_t *s, const char *room_id, sm_taskq_t *reply, sm_store_done_cb cb,
                      void *arg)
{
    if (empty(room_id))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_GET_ROOM, reply, cb, arg);
    req->room_id = sm_xstrdup(room_id);
    return submit(s, req);
}

int sm_store_add_member(sm_store_t *s, const char *room_id, const char *client_id, const char *role,
                        sm_taskq_t *reply, sm_store_done_cb cb, void *arg)
{
    if (empty(room_id) || empty(client_id) || role == NULL ||
        (strcmp(role, "sender") != 0 && strcmp(role, "receiver") != 0))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_ADD_MEMBER, reply, cb, arg);
    req->room_id = sm_xstrdup(room_id);
    req->client_id = sm_xstrdup(client_id);
    req->role = sm_xstrdup(role);
    req->joined_at_ms = sm_clock_wall_ms();
    return submit(s, req);
}

int sm_store_remove_member(sm_store_t *s, const char *room_id, const char *client_id,
                           sm_taskq_t *reply, sm_store_done_cb cb, void *arg)
{
    if (empty(room_id) || empty(client_id))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_REMOVE_MEMBER, reply, cb, arg);
    req->room_id = sm_xstrdup(room_id);
    req->client_id = sm_xstrdup(client_id);
    return submit(s, req);
}

int sm_store_get_client(sm_store_t *s, const char *client_id, sm_taskq_t *reply,
                        sm_store_done_cb cb, void *arg)
{
    if (empty(client_id))
        return SM_EINVAL;
    sm_store_req_t *req = req_new(s, SM_STORE_OP_GET_CLIENT, reply, cb, arg);
    req->client_id = sm_xstrdup(client_id);
    return submit(s, req);
}

int sm_store_memory_set_client(sm_store_t *s, const char *client_id, const char *token_sha256_hex)
{
    if (s == NULL || s->vt != &sm_store_backend_memory)
        return SM_EINVAL;
    return sm__store_memory_set_client(s->impl, client_id, token_sha256_hex);
}
