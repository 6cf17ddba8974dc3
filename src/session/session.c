/*
 * Protocol state machine per session (DECISIONS §1-§5), on its worker.
 *
 * Check order for every frame (docs/protocol.md states it for clients):
 *   1. frame decoding, message type, direction, payload type     -> 400
 *   2. not yet CONNECTed and not CONNECT/DISCONNECT              -> 401
 *   3. payload JSON, required fields, types, patterns, version   -> 400
 *   4. client_id differs from the one the session CONNECTed as   -> 403
 *   5. auth_token does not validate                              -> 401
 *   6. state rules (409 / 404 / 401 "client not registered")
 * Every 400 counts as a malformed frame for limits.max_bad_frames.
 *
 * DESIGN: a store operation is an op_t, not a field of the session, because
 * it can outlive the session's interest in it: when the registration
 * timeout fires (ERROR 408) or the session ends, the op is abandoned
 * (op->s = NULL) and its completion only undoes what the store did (a late
 * successful insert is deleted again), so nothing is left half-done.
 */
#include "session/session.h"
#include "session/session_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <sm/proto.h>
#include <sm/uuid.h>

#include "auth/auth.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/hex.h"
#include "core/hmap.h"
#include "core/list.h"
#include "events/events.h"
#include "log/log.h"
#include "metrics/counters.h"
#include "metrics/observe.h"
#include "proto/payload.h"
#include "proto/reply.h"
#include "reactor/server.h"
#include "reactor/worker.h"
#include "registry/registry.h"
#include "rooms/room.h"
#include "store/store.h"

static void process(session_t *s, sm_imsg_t *m);
static void arm_detach_timer(sm_sessions_t *ss);
static void start_window(session_t *s);
static void session_end(session_t *s);
static void run_frames(session_t *s, sm_imsg_t *first);

/* ---- table ---- */

static bool eq_handle(const sm_hnode_t *n, const void *key)
{
    return ((const session_t *)n)->conn == *(const sm_handle_t *)key;
}

static session_t *find(sm_sessions_t *ss, sm_handle_t h)
{
    return (session_t *)sm_hmap_find(&ss->table, sm_hash_u64(h), eq_handle, &h);
}

static session_t *session_new(sm_sessions_t *ss, sm_handle_t h)
{
    session_t *s = sm_xcalloc(1, sizeof *s);
    s->ss = ss;
    s->conn = h;
    s->serial = ++ss->next_serial;
    s->in_table = true;
    sm_bucket_init(&s->rate, (double)ss->cfg->limits_message_burst, uv_now(sm_worker_loop(ss->w)));
    sm_hmap_insert(&ss->table, &s->node, sm_hash_u64(h));
    return s;
}

static void drop_pending(session_t *s)
{
    while (s->pend_head) {
        sm_imsg_t *m = s->pend_head;
        s->pend_head = m->next;
        free(m);
    }
    s->pend_tail = NULL;
    s->npend = 0;
}

static void session_free(session_t *s)
{
    SM_ASSERT(!s->in_table && s->op == NULL);
    drop_pending(s);
    free(s->client_id);
    free(s->bad_at);
    free(s->store_digest);
    free(s);
}

/* ---- sending ---- */

void sm__sess_send(session_t *s, sm_obuf_t *b, uint8_t type, uint16_t flags, uint32_t arg)
{
    if (b == NULL)
        return;
    if (s->conn == SM_HANDLE_NONE) {
        sm_obuf_unref(b);
        return;
    }
    sm_count(&s->ss->ctr->msgs_out[sm_metric_msg_index(type)], 1);
    sm_worker_send(s->ss->w, s->conn, b, flags, arg);
}

void sm__sess_reply(session_t *s, sm_reply_t *r, const uint8_t *uuid, uint8_t type,
                    const char *dkey, const char *dval)
{
    sm_obuf_t *b = sm_reply_finish(r, NULL);
    if (b != NULL) {
        sm__sess_send(s, b, type, 0, 0);
        return;
    }
    SM_LOG(SM_LOG_WARN, SM_MSG("reply too large for one frame: ERROR 413 instead"),
           SM_STR("type", sm_msg_type_name(type)),
           SM_STR("client_id", s->client_id ? s->client_id : ""));
    sm__sess_error(s, uuid, 413, "reply too large", dkey, dval);
}

void sm__sess_error(session_t *s, const uint8_t *uuid, int code, const char *msg, const char *dkey,
                    const char *dval)
{
    sm_count(&s->ss->ctr->errors[sm_metric_error_index(code)], 1);
    sm__sess_send(s, sm_reply_error(uuid, code, msg, dkey, dval), SM_MSG_ERROR, 0, 0);
}

/* Close the connection with a DISCONNECT notice first, then end the session. */
static void close_with_notice(session_t *s, const char *reason, int code, bool reconnect)
{
    sm__sess_send(s, sm_reply_disconnect(reason, code, reconnect), SM_MSG_DISCONNECT, SM_OUTF_CLOSE,
                  (uint32_t)code);
    session_end(s);
}

/* A malformed frame: ERROR 400, and past limits.max_bad_frames of them
 * within any 60 s, DISCONNECT + close 1008.  The times of the last
 * max_bad_frames+1 bad frames are kept in a ring (exact sliding window); only
 * sessions that misbehave pay for it. */
void sm__sess_bad_frame(session_t *s, const uint8_t *uuid, const char *msg, const char *field)
{
    sm__sess_error(s, uuid, 400, msg, field ? "field" : NULL, field);
    uint32_t cap = (uint32_t)s->ss->cfg->limits_max_bad_frames + 1;
    if (s->bad_at == NULL)
        s->bad_at = sm_xcalloc(cap, sizeof *s->bad_at);
    uint64_t now = uv_now(sm_worker_loop(s->ss->w));
    s->bad_at[s->bad_next] = now;
    s->bad_next = (s->bad_next + 1) % cap;
    if (s->bad_count < cap)
        s->bad_count++;
    /* Full ring: bad_next now indexes the oldest of the last cap frames. */
    if (s->bad_count == cap && now - s->bad_at[s->bad_next] <= BAD_FRAME_WINDOW_MS) {
        SM_LOG(SM_LOG_INFO, SM_MSG("too many malformed frames"), SM_STR("client_id", s->client_id),
               SM_UINT("limit", cap - 1));
        close_with_notice(s, "too many malformed frames", 1008, false);
    }
}

/* ---- store operations ---- */

op_t *sm__sess_op_new(session_t *s, op_kind_t kind, const uint8_t *uuid)
{
    op_t *op = sm_xcalloc(1, sizeof *op);
    sm_list_init(&op->tnode);
    op->s = s;
    op->ss = s->ss;
    op->kind = kind;
    if (uuid)
        memcpy(op->uuid, uuid, sizeof op->uuid);
    op->client_id = s->client_id ? sm_xstrdup(s->client_id) : NULL;
    memcpy(op->session_id, s->session_id, sizeof op->session_id);
    op->serial = s->serial;
    return op;
}

void sm__sess_op_free(op_t *op)
{
    if (sm_list_linked(&op->tnode))
        sm_list_remove(&op->tnode);
    free(op->client_id);
    free(op->caps_json);
    free(op->meta_json);
    free(op->room_id);
    free(op->resume_token);
    sm__sfu_ctx_free(op->sfu);
    free(op);
}

static void arm_timeout_timer(sm_sessions_t *ss);

static void on_orphan_deleted(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    sm_worker_op_end(op->ss->w);
    if (status != 0 && status != SM_ENOTFOUND)
        SM_LOG(SM_LOG_ERROR, SM_MSG("could not remove a registration after a timeout"),
               SM_STR("client_id", op->client_id), SM_STR("error", sm_strerror(status)));
    sm__sess_op_free(op);
}

/* A REGISTER whose session stopped waiting has succeeded in the store after
 * all: delete the row again so that nothing is left half-done. */
static void undo_late_insert(op_t *op)
{
    sm_sessions_t *ss = op->ss;
    op->s = NULL;
    int rc = sm_store_delete_registration(ss->srv->store, op->client_id, op->session_id,
                                          sm_worker_taskq(ss->w), on_orphan_deleted, op);
    if (rc == 0) {
        sm_worker_op_begin(ss->w);
        return;
    }
    SM_LOG(SM_LOG_ERROR, SM_MSG("could not remove a registration after a timeout"),
           SM_STR("client_id", op->client_id), SM_STR("error", sm_strerror(rc)));
    sm__sess_op_free(op);
}

void sm__sess_op_done(session_t *s)
{
    s->op = NULL;
    if (s->detach_after_op && !s->ended) {
        s->detach_after_op = false;
        if (s->state == ST_REGISTERED)
            start_window(s);
        else
            session_end(s);
    } else if (s->ended) {
        session_end(s);
    } else if (s->in_process == 0) {
        /* (Inside run_frames the loop there picks up the waiting frames.) */
        run_frames(s, NULL);
    }
}

static void on_register_put(int status, const sm_store_result_t *res, void *arg);

/* ERROR 503 for a REGISTER or UNREGISTER the registration store failed. */
static void store_unavailable(session_t *s, const uint8_t *uuid)
{
    sm__sess_error(s, uuid, 503, "registration store unavailable, try again later", "client_id",
                   s->client_id);
}

static int submit_put(op_t *op)
{
    sm_sessions_t *ss = op->ss;
    sm_registration_t reg = {
        .client_id = op->client_id,
        .session_id = op->session_id,
        .capabilities_json = op->caps_json,
        .metadata_json = op->meta_json,
        .instance_id = (char *)ss->srv->instance_id,
        .connected_at_ms = op->connected_at_ms,
        .registered_at_ms = op->registered_at_ms,
    };
    int rc = sm_store_put_registration(ss->srv->store, &reg, sm_worker_taskq(ss->w),
                                       on_register_put, op);
    if (rc == 0)
        sm_worker_op_begin(ss->w);
    return rc;
}

/* The REGISTER operation is over (status of the insert): answer, commit or
 * release the claim, and let the session go on. */
static void register_finish(op_t *op, int status)
{
    sm_sessions_t *ss = op->ss;
    session_t *s = op->s;
    if (sm_list_linked(&op->tnode)) {
        sm_list_remove(&op->tnode);
        arm_timeout_timer(ss);
    }
    if (status == 0 && !s->ended) {
        sm_registry_commit(ss->srv->registry, s->client_id, s->serial);
        s->state = ST_REGISTERED;
        sm_reply_t r;
        sm_reply_begin(&r, SM_MSG_REGISTER_ACK, op->uuid);
        sm_reply_str(&r, "version", SM_PROTO_VERSION);
        sm_reply_int(&r, "status", 200);
        sm_reply_str(&r, "message", "Registration successful");
        sm_reply_str(&r, "client_id", s->client_id);
        sm_reply_str(&r, "session_id", s->session_id);
        sm__sess_send(s, sm_reply_finish(&r, NULL), SM_MSG_REGISTER_ACK, 0, 0);
        sm_events_emit(ss->srv->events, "client.registered", s->client_id, NULL, s->session_id);
    } else if (status == 0) {
        /* Connection lost while the insert ran: the session is registered
         * now; session_end (via sm__sess_op_done) releases it properly. */
        sm_registry_commit(ss->srv->registry, s->client_id, s->serial);
        s->state = ST_REGISTERED;
    } else {
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        if (status == SM_ECONFLICT)
            sm__sess_error(s, op->uuid, 409, "client_id is already registered", "client_id",
                           s->client_id);
        else
            store_unavailable(s, op->uuid);
    }
    sm__sess_op_free(op);
    sm__sess_op_done(s);
}

static void on_register_del(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    sm_worker_op_end(op->ss->w);
    if (op->s == NULL) {
        sm__sess_op_free(op);
        return;
    }
    if ((status == 0 || status == SM_ENOTFOUND) && submit_put(op) == 0)
        return;
    register_finish(op, status == 0 || status == SM_ENOTFOUND ? SM_EUNAVAIL : status);
}

static void on_register_get(int status, const sm_store_result_t *res, void *arg)
{
    op_t *op = arg;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    if (op->s == NULL) {
        sm__sess_op_free(op);
        return;
    }
    const sm_registration_t *row = res->registration;
    if (status == SM_ENOTFOUND) {
        /* Gone meanwhile: insert again. */
        if (submit_put(op) == 0)
            return;
        status = SM_EUNAVAIL;
    } else if (status == 0 && row && row->instance_id &&
               strcmp(row->instance_id, ss->srv->instance_id) == 0) {
        /* Our own instance's row, and this process holds the claim: it is
         * stale (a late write after a timeout, or a delete that failed). */
        SM_LOG(SM_LOG_INFO, SM_MSG("replacing a stale registration of this instance"),
               SM_STR("client_id", op->client_id), SM_STR("old_session_id", row->session_id));
        if (sm_store_delete_registration(ss->srv->store, op->client_id, row->session_id,
                                         sm_worker_taskq(ss->w), on_register_del, op) == 0) {
            sm_worker_op_begin(ss->w);
            return;
        }
        status = SM_EUNAVAIL;
    } else if (status == 0) {
        status = SM_ECONFLICT; /* another instance holds it */
    }
    register_finish(op, status);
}

static void on_register_put(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    if (op->s == NULL) {
        /* Timed out earlier: the client got 408 and the claim is released. */
        if (status == 0) {
            undo_late_insert(op);
            return;
        }
        sm__sess_op_free(op);
        return;
    }
    if (status == SM_ECONFLICT && !op->retried) {
        op->retried = true;
        if (sm_store_get_registration(ss->srv->store, op->client_id, sm_worker_taskq(ss->w),
                                      on_register_get, op) == 0) {
            sm_worker_op_begin(ss->w);
            return;
        }
    }
    register_finish(op, status);
}

static void on_unregister_done(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    session_t *s = op->s;
    SM_ASSERT(s != NULL);
    if (status == 0 || status == SM_ENOTFOUND) {
        /* Rooms are left only now: a failed delete leaves everything as it
         * was (ERROR 503, still registered, still in its rooms). */
        sm__rooms_leave_all(s);
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        s->state = ST_CONNECTED;
        sm_reply_t r;
        sm_reply_begin(&r, SM_MSG_UNREGISTER_ACK, op->uuid);
        sm_reply_str(&r, "version", SM_PROTO_VERSION);
        sm_reply_int(&r, "status", 200);
        sm_reply_str(&r, "message", "Unregistration successful");
        sm_reply_str(&r, "client_id", s->client_id);
        sm__sess_send(s, sm_reply_finish(&r, NULL), SM_MSG_UNREGISTER_ACK, 0, 0);
        sm_events_emit(ss->srv->events, "client.unregistered", s->client_id, NULL, s->session_id);
    } else {
        sm_registry_set_releasing(ss->srv->registry, s->client_id, s->serial, false);
        store_unavailable(s, op->uuid);
    }
    sm__sess_op_free(op);
    sm__sess_op_done(s);
}

static void on_release_done(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    if (status != 0 && status != SM_ENOTFOUND)
        SM_LOG(SM_LOG_ERROR, SM_MSG("could not delete a registration"),
               SM_STR("client_id", op->client_id), SM_STR("error", sm_strerror(status)));
    session_t *s = op->s;
    sm__sess_op_free(op);
    if (s) {
        s->op = NULL;
        s->state = ST_AWAITING;
        session_free(s);
    }
}

/* ---- registration timeout ---- */

static void on_timeout_timer(uv_timer_t *t)
{
    sm_sessions_t *ss = t->data;
    uint64_t now = uv_now(sm_worker_loop(ss->w));
    sm_list_t *n;
    while ((n = sm_list_first(&ss->reg_timeouts)) != NULL) {
        op_t *op = SM_CONTAINER_OF(n, op_t, tnode);
        if (op->deadline > now)
            break;
        sm_list_remove(&op->tnode);
        session_t *s = op->s;
        /* Abandon the operation: its completion will undo a late insert. */
        op->s = NULL;
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        SM_LOG(SM_LOG_WARN, SM_MSG("registration timed out"), SM_STR("client_id", s->client_id));
        sm__sess_error(s, op->uuid, 408, "registration timed out", "client_id", s->client_id);
        sm__sess_op_done(s);
    }
    arm_timeout_timer(ss);
}

/* Both deadline lists (registration timeouts, resume windows) are ordered:
 * their timer is set for the first entry's deadline, or stopped (NULL). */
static void arm_at(sm_sessions_t *ss, uv_timer_t *t, uv_timer_cb cb, const uint64_t *deadline)
{
    if (deadline == NULL) {
        uv_timer_stop(t);
        return;
    }
    uint64_t now = uv_now(sm_worker_loop(ss->w));
    uv_timer_start(t, cb, *deadline > now ? *deadline - now : 0, 0);
}

static void arm_timeout_timer(sm_sessions_t *ss)
{
    sm_list_t *n = sm_list_first(&ss->reg_timeouts);
    arm_at(ss, &ss->timer, on_timeout_timer, n ? &SM_CONTAINER_OF(n, op_t, tnode)->deadline : NULL);
}

/* ---- handlers ---- */

char *sm__sess_dup(sm_payload_str_t v)
{
    return sm_xstrndup(v.ptr, v.len);
}

static bool same_client(const session_t *s, sm_payload_str_t cid)
{
    return s->client_id && strlen(s->client_id) == cid.len &&
           memcmp(s->client_id, cid.ptr, cid.len) == 0;
}

/* Steps 4 and 5 of the check order.  Sends the error and returns false. */
bool sm__sess_check_identity(session_t *s, const sm_frame_t *f, sm_payload_str_t cid,
                             sm_payload_str_t token)
{
    if (!same_client(s, cid)) {
        sm__sess_error(s, f->uuid, 403, "client_id does not match the connected client",
                       "client_id", s->client_id);
        return false;
    }
    if (token.ptr != NULL) {
        char *tok = sm__sess_dup(token);
        int rc = sm_auth_check(s->ss->srv->auth, s->client_id, tok, (int64_t)time(NULL));
        if (rc == SM_EAGAIN) {
            /* "store": the token the store accepted at CONNECT is accepted
             * again (the store is read once per connection, docs/protocol.md
             * 8.3); any other token is refused. */
            uint8_t d[SM_AUTH_DIGEST_LEN];
            sm_auth_token_digest(tok, token.len, d);
            rc = s->store_digest && sm_auth_digest_equal(d, s->store_digest) ? 0 : SM_EAUTH;
        }
        free(tok);
        if (rc != 0) {
            sm__sess_error(s, f->uuid, 401, "invalid auth_token", "client_id", s->client_id);
            return false;
        }
    }
    return true;
}

bool sm__sess_require_registered(session_t *s, const sm_frame_t *f)
{
    if (s->state == ST_REGISTERED)
        return true;
    sm__sess_error(s, f->uuid, 401, "client not registered", "client_id", s->client_id);
    return false;
}

/* ---- resume (DECISIONS §3) ---- */

static bool ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

/* Work for the worker owning an older session of the same client. */
enum { XT_REPLACED = 1, XT_EVICTED };

typedef struct {
    sm_task_t task;
    int kind;
    uint64_t serial;
    sm_handle_t conn;
} xtask_t;

static void detach_unlink(session_t *s)
{
    if (s->detached) {
        sm_list_remove(&s->dnode);
        s->detached = false;
        s->ss->ndetached--;
    }
}

static session_t *find_serial(sm_sessions_t *ss, sm_handle_t conn, uint64_t serial)
{
    if (conn != SM_HANDLE_NONE) {
        session_t *s = find(ss, conn);
        if (s && s->serial == serial)
            return s;
    }
    sm_list_t *n, *tmp;
    sm_list_foreach_safe(n, tmp, &ss->detached)
    {
        session_t *s = SM_CONTAINER_OF(n, session_t, dnode);
        if (s->serial == serial)
            return s;
    }
    return NULL;
}

static void run_xtask(sm_task_t *task)
{
    xtask_t *x = (xtask_t *)task;
    sm_worker_t *w = sm_worker_self();
    sm_sessions_t *ss = w ? sm_worker_session_table(w) : NULL;
    session_t *s = ss ? find_serial(ss, x->conn, x->serial) : NULL;
    if (s && !s->ended) {
        if (x->kind == XT_EVICTED) {
            /* A new REGISTER took the registration of this detached session:
             * it leaves its rooms (members are told), nothing else. */
            sm__rooms_leave_all(s);
        } else if (!s->detached) {
            sm__sess_send(s, sm_reply_disconnect("replaced", 4409, false), SM_MSG_DISCONNECT,
                          SM_OUTF_CLOSE, 4409);
        }
        detach_unlink(s);
        s->replaced = true;
        session_end(s);
    }
    free(x);
}

static void post_xtask(sm_sessions_t *ss, unsigned worker, int kind, uint64_t serial,
                       sm_handle_t conn)
{
    xtask_t *x = sm_xcalloc(1, sizeof *x);
    x->task.run = run_xtask;
    x->kind = kind;
    x->serial = serial;
    x->conn = conn;
    if (worker >= ss->srv->n_workers || sm_worker_post(ss->srv->workers[worker], &x->task) != 0)
        free(x);
}

/* CONNECT presented a resume token: take the registration (and rooms) of
 * the session it was given to, detached or still looking alive.  A wrong or
 * stale token is not an error: the client gets a fresh session. */
static bool try_resume(session_t *s, sm_payload_str_t token)
{
    sm_sessions_t *ss = s->ss;
    uint8_t want[sizeof s->resume_token];
    sm_reg_holder_t h;
    if (!sm_hex_decode(token.ptr, token.len, want, sizeof want) ||
        sm_registry_lookup(ss->srv->registry, s->client_id, strlen(s->client_id), &h) != 0 ||
        !h.registered || h.releasing || !ct_equal(h.resume_token, want, sizeof want))
        return false;
    sm_reg_holder_t nh = h;
    nh.serial = s->serial;
    nh.conn = s->conn;
    nh.worker = (uint16_t)sm_worker_index(ss->w);
    memcpy(nh.resume_token, s->resume_token, sizeof nh.resume_token);
    if (sm_registry_takeover(ss->srv->registry, s->client_id, h.serial, &nh) != 0)
        return false;
    memcpy(s->session_id, h.session_id, sizeof s->session_id);
    sm_member_ref_t m = {.client_id = s->client_id, .serial = s->serial, .conn = s->conn};
    sm_rooms_update_member(ss->srv->rooms, s->client_id, h.serial, &m);
    post_xtask(ss, h.worker, XT_REPLACED, h.serial, h.conn);
    SM_LOG(SM_LOG_INFO, SM_MSG("session resumed"), SM_STR("client_id", s->client_id),
           SM_STR("session_id", s->session_id),
           SM_BOOL("old_connection_open", h.conn != SM_HANDLE_NONE));
    return true;
}

/* Credentials are good: the session is CONNECTED (or resumed). */
static void connect_accept(session_t *s, const uint8_t *uuid, char *cid, const char *resume_token,
                           size_t resume_len)
{
    sm_sessions_t *ss = s->ss;
    if (s->state != ST_AWAITING) {
        sm__sess_error(s, uuid, 409, "already connected", "client_id", s->client_id);
        free(cid);
        return;
    }
    s->client_id = cid;
    s->connected_at_ms = sm_clock_wall_ms();
    bool resumed = false;
    uint8_t sid[SM_PROTO_UUID_SIZE]; /* the session id unless resumed */
    if (sm_uuid_v4(s->resume_token) != 0 || sm_uuid_v4(sid) != 0) {
        sm__sess_error(s, uuid, 500, "internal error", NULL, NULL);
        free(s->client_id);
        s->client_id = NULL;
        return;
    }
    if (resume_token)
        resumed = try_resume(s, (sm_payload_str_t){.ptr = resume_token, .len = resume_len});
    if (!resumed)
        sm_uuid_format(sid, s->session_id);
    s->state = resumed ? ST_REGISTERED : ST_CONNECTED;
    char token[2 * sizeof s->resume_token + 1];
    sm_hex_encode(s->resume_token, sizeof s->resume_token, token);

    static const char *const caps[] = {"websocket", "heartbeat", "webrtc", NULL};
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_CONNECT_ACK, uuid);
    sm_reply_int(&r, "status", 200);
    sm_reply_str(&r, "message", resumed ? "Session resumed" : "Connection established");
    sm_reply_str(&r, "session_id", s->session_id);
    sm_reply_str(&r, "server_version", SM_PROTO_VERSION);
    sm_reply_int(&r, "heartbeat_interval", (int64_t)((ss->cfg->heartbeat_interval + 999) / 1000));
    sm_reply_str_array(&r, "capabilities", caps);
    sm_reply_str(&r, "resume_token", token);
    sm_reply_bool(&r, "resumed", resumed);
    sm__sess_send(s, sm_reply_finish(&r, NULL), SM_MSG_CONNECT_ACK, SM_OUTF_CONNECTED, 0);
    sm_events_emit(ss->srv->events, "client.connected", s->client_id, NULL, s->session_id);
}

/* auth_method=store: the stored SHA-256 of the client's token arrived. */
static void on_client_fetched(int status, const sm_store_result_t *res, void *arg)
{
    op_t *op = arg;
    session_t *s = op->s;
    sm_worker_op_end(op->ss->w);
    uint8_t want[SM_AUTH_DIGEST_LEN];
    bool ok = status == 0 && res->client && res->client->token_sha256 &&
              sm_hex_decode(res->client->token_sha256, strlen(res->client->token_sha256), want,
                            sizeof want) &&
              sm_auth_digest_equal(want, op->token_digest);
    if (s->ended) {
        /* The connection went while the store was read: nobody to accept
         * (no client.connected for a gone session, and no resume token
         * taking a registration over for it). */
    } else if (ok) {
        char *cid = op->client_id;
        op->client_id = NULL;
        if (s->state == ST_AWAITING) {
            free(s->store_digest); /* from a CONNECT that failed later */
            s->store_digest = sm_xmalloc(SM_AUTH_DIGEST_LEN);
            memcpy(s->store_digest, op->token_digest, SM_AUTH_DIGEST_LEN);
        }
        connect_accept(s, op->uuid, cid, op->resume_token,
                       op->resume_token ? strlen(op->resume_token) : 0);
    } else if (status != 0 && status != SM_ENOTFOUND) {
        sm__sess_error(s, op->uuid, 503, "credential store unavailable, try again later",
                       "client_id", op->client_id);
    } else {
        sm__sess_error(s, op->uuid, 401, "invalid credentials", "client_id", op->client_id);
    }
    sm__sess_op_free(op);
    sm__sess_op_done(s);
}

static void on_connect(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_sessions_t *ss = s->ss;
    sm_payload_connect_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_connect(root, &p, &perr) != 0) {
        sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    char *cid = sm__sess_dup(p.client_id);
    char *tok = sm__sess_dup(p.auth_token);
    int rc = sm_auth_check(ss->srv->auth, cid, tok, (int64_t)time(NULL));
    if (rc == SM_EAGAIN) {
        /* auth_method includes "store": compare with the stored hash. */
        op_t *op = sm__sess_op_new(s, OP_CONNECT_AUTH, f->uuid);
        free(op->client_id);
        op->client_id = cid;
        sm_auth_token_digest(tok, strlen(tok), op->token_digest);
        free(tok);
        if (p.resume_token.ptr)
            op->resume_token = sm__sess_dup(p.resume_token);
        if (sm_store_get_client(ss->srv->store, cid, sm_worker_taskq(ss->w), on_client_fetched,
                                op) != 0) {
            sm__sess_error(s, f->uuid, 503, "credential store unavailable, try again later",
                           "client_id", cid);
            sm__sess_op_free(op);
            return;
        }
        sm_worker_op_begin(ss->w);
        s->op = op;
        return;
    }
    free(tok);
    if (rc != 0) {
        sm__sess_error(s, f->uuid, 401, "invalid credentials", "client_id", cid);
        free(cid);
        return;
    }
    connect_accept(s, f->uuid, cid, p.resume_token.ptr, p.resume_token.len);
}

/* PING_ACK echoing the timestamp: `ts` (its JSON text) or else `tsv`. */
static void ping_ack(session_t *s, const sm_frame_t *f, const sm_payload_str_t *ts,
                     const json_t *tsv)
{
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_PING_ACK, f->uuid);
    if (ts)
        sm_reply_raw(&r, "timestamp", ts->ptr, ts->len);
    else
        sm_reply_json(&r, "timestamp", tsv);
    sm_reply_int(&r, "server_time", sm_clock_wall_ms());
    sm__sess_send(s, sm_reply_finish(&r, NULL), SM_MSG_PING_ACK, 0, 0);
}

static void on_ping(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_payload_ping_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_ping(root, &p, &perr) != 0) {
        sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    ping_ack(s, f, NULL, p.timestamp);
}

static char *json_text(const json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static void on_register(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_sessions_t *ss = s->ss;
    sm_payload_register_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_register(root, &p, &perr) != 0) {
        sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    if (!sm__sess_check_identity(s, f, p.client_id, p.auth_token))
        return;
    if (s->state == ST_REGISTERED) {
        sm__sess_error(s, f->uuid, 409, "client already registered", "client_id", s->client_id);
        return;
    }
    if (sm_registry_count(ss->srv->registry) >=
        (size_t)ss->cfg->limits_max_concurrent_registrations) {
        sm__sess_error(s, f->uuid, 503, "too many registrations on this server", "client_id",
                       s->client_id);
        return;
    }
    sm_reg_holder_t h = {
        .serial = s->serial, .conn = s->conn, .worker = (uint16_t)sm_worker_index(ss->w)};
    memcpy(h.resume_token, s->resume_token, sizeof h.resume_token);
    memcpy(h.session_id, s->session_id, sizeof h.session_id);
    sm_reg_holder_t old;
    if (sm_registry_claim(ss->srv->registry, s->client_id, &h, &old) != 0) {
        /* Only a holder with a live connection makes this a conflict; a
         * detached one (waiting for a resume) is taken over. */
        if (!old.registered || old.conn != SM_HANDLE_NONE ||
            sm_registry_takeover(ss->srv->registry, s->client_id, old.serial, &h) != 0) {
            sm__sess_error(s, f->uuid, 409, "client_id is already registered by another session",
                           "client_id", s->client_id);
            return;
        }
        post_xtask(ss, old.worker, XT_EVICTED, old.serial, SM_HANDLE_NONE);
    }
    op_t *op = sm__sess_op_new(s, OP_REGISTER, f->uuid);
    op->caps_json = json_text(p.capabilities);
    op->meta_json = json_text(p.metadata);
    op->connected_at_ms = s->connected_at_ms;
    op->registered_at_ms = sm_clock_wall_ms();
    if (submit_put(op) != 0) {
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        sm__sess_op_free(op);
        store_unavailable(s, f->uuid);
        return;
    }
    s->op = op;
    op->deadline = uv_now(sm_worker_loop(ss->w)) + ss->cfg->server_registration_timeout;
    bool was_empty = sm_list_empty(&ss->reg_timeouts);
    sm_list_insert_tail(&ss->reg_timeouts, &op->tnode);
    if (was_empty)
        arm_timeout_timer(ss);
}

static void on_unregister(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_sessions_t *ss = s->ss;
    sm_payload_unregister_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_unregister(root, &p, &perr) != 0) {
        sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    if (!sm__sess_check_identity(s, f, p.client_id, p.auth_token))
        return;
    if (s->state != ST_REGISTERED) {
        sm__sess_error(s, f->uuid, 404, "client not registered", "client_id", s->client_id);
        return;
    }
    /* From now on the registration is on its way out: no resume into it. */
    sm_registry_set_releasing(ss->srv->registry, s->client_id, s->serial, true);
    op_t *op = sm__sess_op_new(s, OP_UNREGISTER, f->uuid);
    if (sm_store_delete_registration(ss->srv->store, s->client_id, s->session_id,
                                     sm_worker_taskq(ss->w), on_unregister_done, op) != 0) {
        sm_registry_set_releasing(ss->srv->registry, s->client_id, s->serial, false);
        sm__sess_op_free(op);
        store_unavailable(s, f->uuid);
        return;
    }
    sm_worker_op_begin(ss->w);
    s->op = op;
}

static void on_disconnect(session_t *s, const sm_frame_t *f, const json_t *root)
{
    if (root != NULL) {
        sm_payload_disconnect_t p;
        sm_payload_err_t perr;
        if (sm_payload_validate_disconnect(root, &p, &perr) != 0) {
            sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
            return;
        }
    }
    /* No ACK (DECISIONS §3): clean up, close with 1000. */
    sm__sess_send(s, NULL, SM_MSG_DISCONNECT, 0, 0);
    if (s->conn != SM_HANDLE_NONE)
        sm_worker_send(s->ss->w, s->conn, NULL, SM_OUTF_CLOSE, 1000);
    session_end(s);
}

static void on_session_update(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_payload_session_update_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_session_update(root, &p, &perr) != 0) {
        sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    if (!sm__sess_require_registered(s, f))
        return;
    if (sm__sfu_enabled(s->ss)) {
        sm__sfu_on_session_update(s, f, &p);
        return;
    }
    sm__sess_error(s, f->uuid, 400, "SESSION_UPDATE is only used with webrtc.mode=cloudflare",
                   "type", "SESSION_UPDATE");
}

/* ---- dispatch ---- */

static void process(session_t *s, sm_imsg_t *m)
{
    sm_sessions_t *ss = s->ss;
    sm_frame_t f;
    int rc = sm_frame_decode(m->data, m->len, &f);
    if (rc != SM_PROTO_OK) {
        static const uint8_t nil[SM_PROTO_UUID_SIZE];
        bool has_uuid = rc != SM_PROTO_ESHORT && rc != SM_PROTO_ESTART;
        sm_count(&ss->ctr->msgs_in[SM_MSG_TYPE_COUNT], 1);
        sm__sess_bad_frame(s, has_uuid ? f.uuid : nil, sm_proto_strerror(rc), NULL);
        return;
    }
    sm_count(&ss->ctr->msgs_in[sm_metric_msg_index(f.type)], 1);
    rc = sm_msg_check(f.type, f.payload_type, SM_MSG_C2S);
    if (rc != SM_PROTO_OK) {
        sm__sess_bad_frame(s, f.uuid, sm_proto_strerror(rc), "type");
        return;
    }
    if (s->state == ST_AWAITING && f.type != SM_MSG_CONNECT && f.type != SM_MSG_DISCONNECT) {
        sm__sess_error(s, f.uuid, 401, "not authenticated: send CONNECT first", NULL, NULL);
        return;
    }
    json_t *root = NULL;
    sm_payload_str_t ts;
    if (f.type == SM_MSG_PING && f.payload_type == SM_PAYLOAD_JSON &&
        sm_payload_ping_fast(f.payload, f.length, &ts)) {
        /* the heartbeat's common form, without a jansson tree */
        ping_ack(s, &f, &ts, NULL);
        return;
    }
    if (f.payload_type == SM_PAYLOAD_JSON) {
        sm_payload_err_t perr;
        if (sm_payload_load(f.payload, f.length, &root, &perr) != 0) {
            sm__sess_bad_frame(s, f.uuid, perr.message, perr.field[0] ? perr.field : NULL);
            return;
        }
    }
    switch (f.type) {
    case SM_MSG_CONNECT:
        on_connect(s, &f, root);
        break;
    case SM_MSG_PING:
        on_ping(s, &f, root);
        break;
    case SM_MSG_REGISTER:
        on_register(s, &f, root);
        break;
    case SM_MSG_UNREGISTER:
        on_unregister(s, &f, root);
        break;
    case SM_MSG_DISCONNECT:
        on_disconnect(s, &f, root);
        break;
    case SM_MSG_ROOM_CREATE:
        sm__rooms_on_create(s, &f, root);
        break;
    case SM_MSG_ROOM_JOIN:
        sm__rooms_on_join(s, &f, root);
        break;
    case SM_MSG_ROOM_LEAVE:
        sm__rooms_on_leave(s, &f, root);
        break;
    case SM_MSG_SIGNAL:
        sm__signal_on_frame(s, &f, root);
        break;
    case SM_MSG_SESSION_UPDATE:
        on_session_update(s, &f, root);
        break;
    default: /* sm_msg_check let through only client-to-server types */
        sm__sess_bad_frame(s, f.uuid, "unknown message type", "type");
        break;
    }
    json_decref(root);
}

/* Handle `first` (if any), then frames that waited, until the session waits
 * for the store again or ends.  A session that ended while handling is freed
 * here, once nothing on the stack refers to it. */
static void run_frames(session_t *s, sm_imsg_t *first)
{
    s->in_process++;
    if (first) {
        process(s, first);
        free(first);
    }
    while (s->op == NULL && !s->ended && s->pend_head) {
        sm_imsg_t *m = s->pend_head;
        s->pend_head = m->next;
        if (s->pend_head == NULL)
            s->pend_tail = NULL;
        s->npend--;
        process(s, m);
        free(m);
    }
    s->in_process--;
    if (s->ended && s->op == NULL && s->in_process == 0)
        session_free(s);
}

/* limits.message_rate: a frame over the rate gets ERROR 429 and is dropped;
 * another burst's worth refused in a row means the client does not slow
 * down: DISCONNECT + close 1008.  Returns false when the frame is dropped. */
static bool rate_ok(session_t *s, const sm_imsg_t *m)
{
    sm_sessions_t *ss = s->ss;
    if (ss->cfg->limits_message_rate <= 0 ||
        sm_bucket_take(&s->rate, (double)ss->cfg->limits_message_rate,
                       (double)ss->cfg->limits_message_burst, uv_now(sm_worker_loop(ss->w)))) {
        s->rate_refused = 0;
        return true;
    }
    sm_count(&ss->ctr->messages_rate_limited_total, 1);
    if (++s->rate_refused > (uint32_t)ss->cfg->limits_message_burst) {
        close_with_notice(s, "rate limit exceeded", 1008, true);
        return false;
    }
    static const uint8_t nil[SM_PROTO_UUID_SIZE];
    const uint8_t *uuid = m->len >= 18 && m->data[0] == SM_PROTO_START ? m->data + 2 : nil;
    sm__sess_error(s, uuid, 429, "rate limited: slow down", NULL, NULL);
    return false;
}

void sm_sessions_on_frame(sm_sessions_t *ss, sm_handle_t h, sm_imsg_t *m)
{
    session_t *s = find(ss, h);
    if (s == NULL)
        s = session_new(ss, h);
    if (!rate_ok(s, m)) {
        free(m);
        return;
    }
    if (s->op != NULL || s->pend_head != NULL) {
        if (s->npend >= MAX_PENDING_FRAMES) {
            free(m);
            close_with_notice(s, "too many requests waiting", 1008, true);
            return;
        }
        m->next = NULL;
        if (s->pend_tail)
            s->pend_tail->next = m;
        else
            s->pend_head = m;
        s->pend_tail = m;
        s->npend++;
        return;
    }
    run_frames(s, m);
}

/* ---- end of a session ---- */

/* The connection is gone (or no longer ours): out of the table, and the
 * frames it sent that still waited are dropped. */
static void drop_conn(session_t *s)
{
    if (s->in_table) {
        sm_hmap_remove(&s->ss->table, &s->node);
        s->in_table = false;
    }
    s->conn = SM_HANDLE_NONE;
    drop_pending(s);
}

static void session_end(session_t *s)
{
    sm_sessions_t *ss = s->ss;
    if (!s->ended) {
        s->ended = true;
        if (s->state != ST_AWAITING)
            sm_metrics_session_ended(ss->ctr, s->connected_at_ms);
        if (s->state != ST_AWAITING && !s->gone_emitted)
            sm_events_emit(ss->srv->events, "client.disconnected", s->client_id, NULL,
                           s->session_id);
        s->gone_emitted = true;
    }
    detach_unlink(s);
    drop_conn(s);
    if (s->op != NULL)
        return; /* the operation's completion calls us again */
    if (s->replaced)
        s->state = ST_AWAITING; /* its registration lives on elsewhere */
    if (s->state == ST_REGISTERED) {
        /* A clean end releases at once (DECISIONS §3): the registry entry
         * goes now, so a new REGISTER succeeds and no resume can take the
         * row the delete below removes.  Releasing fails when a resume took
         * the registration over in the meantime: then nothing is ours. */
        s->state = ST_AWAITING;
        if (sm_registry_release(ss->srv->registry, s->client_id, s->serial) == 0) {
            sm__rooms_leave_all(s);
            op_t *op = sm__sess_op_new(s, OP_RELEASE, NULL);
            int rc = sm_store_delete_registration(ss->srv->store, s->client_id, s->session_id,
                                                  sm_worker_taskq(ss->w), on_release_done, op);
            if (rc == 0) {
                sm_worker_op_begin(ss->w);
                s->op = op;
                return;
            }
            SM_LOG(SM_LOG_ERROR, SM_MSG("could not delete a registration"),
                   SM_STR("client_id", s->client_id), SM_STR("error", sm_strerror(rc)));
            sm__sess_op_free(op);
        }
    }
    if (s->in_process == 0)
        session_free(s);
}

/* An abrupt end (no close frame, heartbeat timeout) of a registered
 * session: keep registration and rooms for server.resume_window.  SIGNALs
 * to it get 404 meanwhile; members hear participant_left only when the
 * window ends. */
static void detach_conn(session_t *s)
{
    sm_sessions_t *ss = s->ss;
    drop_conn(s);
    sm_registry_set_conn(ss->srv->registry, s->client_id, s->serial, SM_HANDLE_NONE);
    sm_member_ref_t m = {.client_id = s->client_id, .serial = s->serial, .conn = SM_HANDLE_NONE};
    sm_rooms_update_member(ss->srv->rooms, s->client_id, s->serial, &m);
    if (!s->gone_emitted)
        sm_events_emit(ss->srv->events, "client.disconnected", s->client_id, NULL, s->session_id);
    s->gone_emitted = true;
}

static void start_window(session_t *s)
{
    sm_sessions_t *ss = s->ss;
    s->detached = true;
    s->detach_deadline = uv_now(sm_worker_loop(ss->w)) + ss->cfg->server_resume_window;
    bool was_empty = sm_list_empty(&ss->detached);
    sm_list_insert_tail(&ss->detached, &s->dnode);
    ss->ndetached++;
    if (was_empty)
        arm_detach_timer(ss);
    SM_LOG(SM_LOG_INFO, SM_MSG("session detached, waiting for a resume"),
           SM_STR("client_id", s->client_id),
           SM_UINT("resume_window_ms", ss->cfg->server_resume_window));
}

static void detach(session_t *s)
{
    detach_conn(s);
    start_window(s);
}

static void on_detach_timer(uv_timer_t *t)
{
    sm_sessions_t *ss = t->data;
    uint64_t now = uv_now(sm_worker_loop(ss->w));
    sm_list_t *n;
    while ((n = sm_list_first(&ss->detached)) != NULL) {
        session_t *s = SM_CONTAINER_OF(n, session_t, dnode);
        if (s->detach_deadline > now)
            break;
        detach_unlink(s);
        SM_LOG(SM_LOG_INFO, SM_MSG("resume window over"), SM_STR("client_id", s->client_id));
        session_end(s);
    }
    arm_detach_timer(ss);
}

static void arm_detach_timer(sm_sessions_t *ss)
{
    sm_list_t *n = sm_list_first(&ss->detached);
    arm_at(ss, &ss->detach_timer, on_detach_timer,
           n ? &SM_CONTAINER_OF(n, session_t, dnode)->detach_deadline : NULL);
}

void sm_sessions_on_closed(sm_sessions_t *ss, sm_handle_t h, sm_close_reason_t why)
{
    session_t *s = find(ss, h);
    if (s == NULL)
        return;
    bool abrupt = why == SM_CLOSE_ABRUPT || why == SM_CLOSE_HEARTBEAT;
    bool resumable = abrupt && !s->ended && ss->cfg->server_resume_window > 0 &&
                     !atomic_load_explicit(&ss->srv->draining, memory_order_relaxed);
    if (resumable && s->state == ST_REGISTERED && s->op == NULL) {
        detach(s);
    } else if (resumable && s->op != NULL &&
               (s->state == ST_REGISTERED || s->op->kind == OP_REGISTER)) {
        /* Waiting for the store: detach the connection now, decide when
         * the operation is over (sm__sess_op_done). */
        detach_conn(s);
        s->detach_after_op = true;
    } else {
        session_end(s);
    }
}

void sm_sessions_drain(sm_sessions_t *ss)
{
    /* Nobody can resume into a draining server: end detached sessions now. */
    sm_list_t *n;
    while ((n = sm_list_first(&ss->detached)) != NULL) {
        session_t *s = SM_CONTAINER_OF(n, session_t, dnode);
        detach_unlink(s);
        session_end(s);
    }
    arm_detach_timer(ss);
}

size_t sm_sessions_count(const sm_sessions_t *ss)
{
    return ss->table.count + ss->ndetached;
}

/* ---- lifecycle ---- */

static void on_reap_timer(uv_timer_t *t)
{
    sm__rooms_reap(t->data);
}

sm_sessions_t *sm_sessions_new(sm_worker_t *w)
{
    sm_sessions_t *ss = sm_xcalloc(1, sizeof *ss);
    ss->w = w;
    ss->srv = sm_worker_server(w);
    ss->cfg = ss->srv->cfg;
    ss->ctr = sm_worker_counters(w);
    ss->next_serial = (uint64_t)sm_worker_index(w) << 48;
    sm_hmap_init(&ss->table, 1024);
    sm_list_init(&ss->reg_timeouts);
    sm_list_init(&ss->detached);
    uv_timer_init(sm_worker_loop(w), &ss->timer);
    ss->timer.data = ss;
    uv_timer_init(sm_worker_loop(w), &ss->detach_timer);
    ss->detach_timer.data = ss;
    uv_timer_init(sm_worker_loop(w), &ss->reap_timer);
    ss->reap_timer.data = ss;
    if (sm_worker_index(w) == 0) {
        /* Idle rooms are checked a few times per session_timeout (within
         * 100 ms .. 1 s), so a room closes at most that late. */
        uint64_t tick = ss->cfg->webrtc_session_timeout / 4;
        tick = tick < 100 ? 100 : tick > 1000 ? 1000 : tick;
        uv_timer_start(&ss->reap_timer, on_reap_timer, tick, tick);
    }
    return ss;
}

static void free_after_close(uv_handle_t *h)
{
    sm_sessions_t *ss = h->data;
    if (--ss->closing == 0)
        free(ss);
}

void sm_sessions_free(sm_sessions_t *ss)
{
    size_t b = 0;
    sm_hnode_t *next = NULL, *n;
    while ((n = sm_hmap_next(&ss->table, &b, &next)) != NULL) {
        session_t *s = (session_t *)n;
        sm_hmap_remove(&ss->table, n);
        s->in_table = false;
        if (s->op) {
            s->op->s = NULL; /* completion (if it ever comes) frees the op */
            s->op = NULL;
        }
        if (s->state == ST_REGISTERED)
            sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        session_free(s);
    }
    sm_list_t *l;
    while ((l = sm_list_first(&ss->detached)) != NULL) {
        session_t *s = SM_CONTAINER_OF(l, session_t, dnode);
        detach_unlink(s);
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        session_free(s);
    }
    sm_hmap_destroy(&ss->table);
    ss->closing = 3;
    uv_close((uv_handle_t *)&ss->timer, free_after_close);
    uv_close((uv_handle_t *)&ss->detach_timer, free_after_close);
    uv_close((uv_handle_t *)&ss->reap_timer, free_after_close);
}
