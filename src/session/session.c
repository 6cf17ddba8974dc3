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
#include "core/hmap.h"
#include "core/list.h"
#include "events/events.h"
#include "log/log.h"
#include "metrics/counters.h"
#include "proto/payload.h"
#include "proto/reply.h"
#include "reactor/server.h"
#include "reactor/worker.h"
#include "registry/registry.h"
#include "store/store.h"

#define BAD_FRAME_WINDOW_MS 60000
#define MAX_PENDING_FRAMES 1024 /* frames queued behind one store operation */

typedef enum { ST_AWAITING = 0, ST_CONNECTED, ST_REGISTERED } state_t;
typedef enum { OP_REGISTER = 1, OP_UNREGISTER, OP_RELEASE } op_kind_t;

typedef struct session_s session_t;

typedef struct {
    sm_list_t tnode; /* in the registration-timeout list (OP_REGISTER) */
    uint64_t deadline;
    session_t *s; /* NULL once abandoned */
    sm_sessions_t *ss;
    op_kind_t kind;
    uint8_t uuid[SM_PROTO_UUID_SIZE];
    char *client_id;
    char session_id[37];
    uint64_t serial;
    /* REGISTER: the record, kept for a second insert after removing a stale
     * row this instance left behind (see on_register_put). */
    char *caps_json, *meta_json;
    int64_t connected_at_ms, registered_at_ms;
    bool retried;
} op_t;

struct session_s {
    sm_hnode_t node;
    sm_sessions_t *ss;
    sm_handle_t conn; /* SM_HANDLE_NONE once the connection is gone */
    uint64_t serial;
    uint8_t state;
    bool in_table;
    bool ended;
    uint8_t in_process; /* > 0 while handling frames: do not free yet */
    op_t *op;
    char *client_id;
    char session_id[37];
    int64_t connected_at_ms;
    sm_imsg_t *pend_head, *pend_tail;
    uint32_t npend;
    uint64_t *bad_at; /* ring of the last max_bad_frames+1 bad-frame times
                         (allocated at the first bad frame only) */
    uint32_t bad_next, bad_count;
};

struct sm_sessions_s {
    sm_worker_t *w;
    sm_server_t *srv;
    const sm_config_t *cfg;
    sm_counters_t *ctr;
    sm_hmap_t table;
    uint64_t next_serial;
    sm_list_t reg_timeouts;
    uv_timer_t timer;
};

static void process(session_t *s, sm_imsg_t *m);
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
    sm_hmap_insert(&ss->table, &s->node, sm_hash_u64(h));
    return s;
}

static void session_free(session_t *s)
{
    SM_ASSERT(!s->in_table && s->op == NULL);
    while (s->pend_head) {
        sm_imsg_t *m = s->pend_head;
        s->pend_head = m->next;
        free(m);
    }
    free(s->client_id);
    free(s->bad_at);
    free(s);
}

/* ---- sending ---- */

static void send_frame(session_t *s, sm_obuf_t *b, uint8_t type, uint16_t flags, uint32_t arg)
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

static void send_error(session_t *s, const uint8_t *uuid, int code, const char *msg,
                       const char *dkey, const char *dval)
{
    sm_count(&s->ss->ctr->errors[sm_metric_error_index(code)], 1);
    send_frame(s, sm_reply_error(uuid, code, msg, dkey, dval), SM_MSG_ERROR, 0, 0);
}

/* Close the connection with a DISCONNECT notice first, then end the session. */
static void close_with_notice(session_t *s, const char *reason, int code, bool reconnect)
{
    send_frame(s, sm_reply_disconnect(reason, code, reconnect), SM_MSG_DISCONNECT, SM_OUTF_CLOSE,
               (uint32_t)code);
    session_end(s);
}

/* A malformed frame: ERROR 400, and past limits.max_bad_frames of them
 * within any 60 s, DISCONNECT + close 1008.  The times of the last
 * max_bad_frames+1 bad frames are kept in a ring (exact sliding window); only
 * sessions that misbehave pay for it. */
static void bad_frame(session_t *s, const uint8_t *uuid, const char *msg, const char *field)
{
    send_error(s, uuid, 400, msg, field ? "field" : NULL, field);
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
        SM_LOG(SM_LOG_INFO, SM_MSG("too many malformed frames"),
               SM_STR("client_id", s->client_id), SM_UINT("limit", cap - 1));
        close_with_notice(s, "too many malformed frames", 1008, false);
    }
}

/* ---- store operations ---- */

static op_t *op_new(session_t *s, op_kind_t kind, const uint8_t *uuid)
{
    op_t *op = sm_xcalloc(1, sizeof *op);
    sm_list_init(&op->tnode);
    op->s = s;
    op->ss = s->ss;
    op->kind = kind;
    if (uuid)
        memcpy(op->uuid, uuid, sizeof op->uuid);
    op->client_id = sm_xstrdup(s->client_id);
    memcpy(op->session_id, s->session_id, sizeof op->session_id);
    op->serial = s->serial;
    return op;
}

static void op_free(op_t *op)
{
    if (sm_list_linked(&op->tnode))
        sm_list_remove(&op->tnode);
    free(op->client_id);
    free(op->caps_json);
    free(op->meta_json);
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
    op_free(op);
}

/* A REGISTER whose session stopped waiting has succeeded in the store after
 * all: delete the row again so that nothing is left half-done. */
static void undo_late_insert(op_t *op)
{
    sm_sessions_t *ss = op->ss;
    op->s = NULL;
    if (sm_store_delete_registration(ss->srv->store, op->client_id, op->session_id,
                                     sm_worker_taskq(ss->w), on_orphan_deleted, op) == 0) {
        sm_worker_op_begin(ss->w);
        return;
    }
    op_free(op);
}

static void finish_op(session_t *s)
{
    s->op = NULL;
    if (s->ended)
        session_end(s);
    else
        run_frames(s, NULL);
}

static void on_register_put(int status, const sm_store_result_t *res, void *arg);

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
        send_frame(s, sm_reply_finish(&r, NULL), SM_MSG_REGISTER_ACK, 0, 0);
        sm_events_emit(ss->srv->events, "client.registered", s->client_id, NULL, s->session_id);
    } else if (status == 0) {
        /* Connection lost while the insert ran: the session is registered
         * now; session_end (via finish_op) releases it properly. */
        sm_registry_commit(ss->srv->registry, s->client_id, s->serial);
        s->state = ST_REGISTERED;
    } else {
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        if (status == SM_ECONFLICT)
            send_error(s, op->uuid, 409, "client_id is already registered", "client_id",
                       s->client_id);
        else
            send_error(s, op->uuid, 503, "registration store unavailable, try again later",
                       "client_id", s->client_id);
    }
    op_free(op);
    finish_op(s);
}

static void on_register_del(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    sm_worker_op_end(op->ss->w);
    if (op->s == NULL) {
        op_free(op);
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
        op_free(op);
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
        op_free(op);
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
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        s->state = ST_CONNECTED;
        sm_reply_t r;
        sm_reply_begin(&r, SM_MSG_UNREGISTER_ACK, op->uuid);
        sm_reply_str(&r, "version", SM_PROTO_VERSION);
        sm_reply_int(&r, "status", 200);
        sm_reply_str(&r, "message", "Unregistration successful");
        sm_reply_str(&r, "client_id", s->client_id);
        send_frame(s, sm_reply_finish(&r, NULL), SM_MSG_UNREGISTER_ACK, 0, 0);
        sm_events_emit(ss->srv->events, "client.unregistered", s->client_id, NULL,
                       s->session_id);
    } else {
        send_error(s, op->uuid, 503, "registration store unavailable, try again later",
                   "client_id", s->client_id);
    }
    op_free(op);
    finish_op(s);
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
    sm_registry_release(ss->srv->registry, op->client_id, op->serial);
    session_t *s = op->s;
    op_free(op);
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
        send_error(s, op->uuid, 408, "registration timed out", "client_id", s->client_id);
        finish_op(s);
    }
    arm_timeout_timer(ss);
}

static void arm_timeout_timer(sm_sessions_t *ss)
{
    sm_list_t *n = sm_list_first(&ss->reg_timeouts);
    if (n == NULL) {
        uv_timer_stop(&ss->timer);
        return;
    }
    op_t *op = SM_CONTAINER_OF(n, op_t, tnode);
    uint64_t now = uv_now(sm_worker_loop(ss->w));
    uv_timer_start(&ss->timer, on_timeout_timer, op->deadline > now ? op->deadline - now : 0, 0);
}

/* ---- handlers ---- */

static char *dup_str(sm_payload_str_t v)
{
    return sm_xstrndup(v.ptr, v.len);
}

static bool same_client(const session_t *s, sm_payload_str_t cid)
{
    return s->client_id && strlen(s->client_id) == cid.len &&
           memcmp(s->client_id, cid.ptr, cid.len) == 0;
}

/* Steps 4 and 5 of the check order.  Sends the error and returns false. */
static bool check_identity(session_t *s, const sm_frame_t *f, sm_payload_str_t cid,
                           sm_payload_str_t token)
{
    if (!same_client(s, cid)) {
        send_error(s, f->uuid, 403, "client_id does not match the connected client",
                   "client_id", s->client_id);
        return false;
    }
    if (token.ptr != NULL) {
        char *tok = dup_str(token);
        int rc = sm_auth_check(s->ss->srv->auth, s->client_id, tok, (int64_t)time(NULL));
        free(tok);
        if (rc != 0) {
            send_error(s, f->uuid, 401, "invalid auth_token", "client_id", s->client_id);
            return false;
        }
    }
    return true;
}

static void on_connect(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_sessions_t *ss = s->ss;
    sm_payload_connect_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_connect(root, &p, &perr) != 0) {
        bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    char *cid = dup_str(p.client_id);
    char *tok = dup_str(p.auth_token);
    int rc = sm_auth_check(ss->srv->auth, cid, tok, (int64_t)time(NULL));
    free(tok);
    if (rc != 0) {
        send_error(s, f->uuid, 401, "invalid credentials", "client_id", cid);
        free(cid);
        return;
    }
    if (s->state != ST_AWAITING) {
        send_error(s, f->uuid, 409, "already connected", "client_id", s->client_id);
        free(cid);
        return;
    }
    uint8_t sid[SM_PROTO_UUID_SIZE];
    if (sm_uuid_v4(sid) != 0) {
        send_error(s, f->uuid, 500, "internal error", NULL, NULL);
        free(cid);
        return;
    }
    sm_uuid_format(sid, s->session_id);
    s->client_id = cid;
    s->state = ST_CONNECTED;
    s->connected_at_ms = sm_clock_wall_ms();

    static const char *const caps[] = {"websocket", "heartbeat", "webrtc", NULL};
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_CONNECT_ACK, f->uuid);
    sm_reply_int(&r, "status", 200);
    sm_reply_str(&r, "message", "Connection established");
    sm_reply_str(&r, "session_id", s->session_id);
    sm_reply_str(&r, "server_version", SM_PROTO_VERSION);
    sm_reply_int(&r, "heartbeat_interval", (int64_t)((ss->cfg->heartbeat_interval + 999) / 1000));
    sm_reply_str_array(&r, "capabilities", caps);
    send_frame(s, sm_reply_finish(&r, NULL), SM_MSG_CONNECT_ACK, SM_OUTF_CONNECTED, 0);
    sm_events_emit(ss->srv->events, "client.connected", s->client_id, NULL, s->session_id);
}

static void on_ping(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_payload_ping_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_ping(root, &p, &perr) != 0) {
        bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_PING_ACK, f->uuid);
    sm_reply_json(&r, "timestamp", p.timestamp);
    sm_reply_int(&r, "server_time", sm_clock_wall_ms());
    send_frame(s, sm_reply_finish(&r, NULL), SM_MSG_PING_ACK, 0, 0);
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
        bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    if (!check_identity(s, f, p.client_id, p.auth_token))
        return;
    if (s->state == ST_REGISTERED) {
        send_error(s, f->uuid, 409, "client already registered", "client_id", s->client_id);
        return;
    }
    sm_reg_holder_t h = {.serial = s->serial, .conn = s->conn,
                         .worker = (uint16_t)sm_worker_index(ss->w)};
    if (sm_registry_claim(ss->srv->registry, s->client_id, &h, NULL) != 0) {
        send_error(s, f->uuid, 409, "client_id is already registered by another session",
                   "client_id", s->client_id);
        return;
    }
    op_t *op = op_new(s, OP_REGISTER, f->uuid);
    op->caps_json = json_text(p.capabilities);
    op->meta_json = json_text(p.metadata);
    op->connected_at_ms = s->connected_at_ms;
    op->registered_at_ms = sm_clock_wall_ms();
    if (submit_put(op) != 0) {
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        op_free(op);
        send_error(s, f->uuid, 503, "registration store unavailable, try again later",
                   "client_id", s->client_id);
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
        bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    if (!check_identity(s, f, p.client_id, p.auth_token))
        return;
    if (s->state != ST_REGISTERED) {
        send_error(s, f->uuid, 404, "client not registered", "client_id", s->client_id);
        return;
    }
    op_t *op = op_new(s, OP_UNREGISTER, f->uuid);
    if (sm_store_delete_registration(ss->srv->store, s->client_id, s->session_id,
                                     sm_worker_taskq(ss->w), on_unregister_done, op) != 0) {
        op_free(op);
        send_error(s, f->uuid, 503, "registration store unavailable, try again later",
                   "client_id", s->client_id);
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
            bad_frame(s, f->uuid, perr.message, perr.field);
            return;
        }
    }
    /* No ACK (DECISIONS §3): clean up, close with 1000. */
    send_frame(s, NULL, SM_MSG_DISCONNECT, 0, 0);
    if (s->conn != SM_HANDLE_NONE)
        sm_worker_send(s->ss->w, s->conn, NULL, SM_OUTF_CLOSE, 1000);
    session_end(s);
}

static void on_registered_only(session_t *s, const sm_frame_t *f)
{
    if (s->state != ST_REGISTERED) {
        send_error(s, f->uuid, 401, "client not registered", "client_id", s->client_id);
        return;
    }
    send_error(s, f->uuid, 400, "message type not supported by this server yet", "type",
               sm_msg_type_name(f->type));
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
        bad_frame(s, has_uuid ? f.uuid : nil, sm_proto_strerror(rc), NULL);
        return;
    }
    sm_count(&ss->ctr->msgs_in[sm_metric_msg_index(f.type)], 1);
    rc = sm_msg_check(f.type, f.payload_type, SM_MSG_C2S);
    if (rc != SM_PROTO_OK) {
        bad_frame(s, f.uuid, sm_proto_strerror(rc), "type");
        return;
    }
    if (s->state == ST_AWAITING && f.type != SM_MSG_CONNECT && f.type != SM_MSG_DISCONNECT) {
        send_error(s, f.uuid, 401, "not authenticated: send CONNECT first", NULL, NULL);
        return;
    }
    json_t *root = NULL;
    if (f.payload_type == SM_PAYLOAD_JSON) {
        sm_payload_err_t perr;
        if (sm_payload_load(f.payload, f.length, &root, &perr) != 0) {
            bad_frame(s, f.uuid, perr.message, perr.field[0] ? perr.field : NULL);
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
    default:
        on_registered_only(s, &f);
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

void sm_sessions_on_frame(sm_sessions_t *ss, sm_handle_t h, sm_imsg_t *m)
{
    session_t *s = find(ss, h);
    if (s == NULL)
        s = session_new(ss, h);
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

static void session_end(session_t *s)
{
    sm_sessions_t *ss = s->ss;
    if (!s->ended) {
        s->ended = true;
        if (s->state != ST_AWAITING)
            sm_events_emit(ss->srv->events, "client.disconnected", s->client_id, NULL,
                           s->session_id);
    }
    if (s->in_table) {
        sm_hmap_remove(&ss->table, &s->node);
        s->in_table = false;
    }
    s->conn = SM_HANDLE_NONE;
    while (s->pend_head) {
        sm_imsg_t *m = s->pend_head;
        s->pend_head = m->next;
        free(m);
    }
    s->pend_tail = NULL;
    s->npend = 0;
    if (s->op != NULL)
        return; /* the operation's completion calls us again */
    if (s->state == ST_REGISTERED) {
        op_t *op = op_new(s, OP_RELEASE, NULL);
        if (sm_store_delete_registration(ss->srv->store, s->client_id, s->session_id,
                                         sm_worker_taskq(ss->w), on_release_done, op) == 0) {
            sm_worker_op_begin(ss->w);
            s->op = op;
            return;
        }
        op_free(op);
        sm_registry_release(ss->srv->registry, s->client_id, s->serial);
        s->state = ST_AWAITING;
    }
    if (s->in_process == 0)
        session_free(s);
}

void sm_sessions_on_closed(sm_sessions_t *ss, sm_handle_t h, sm_close_reason_t why)
{
    (void)why; /* every end releases at once until the resume window exists */
    session_t *s = find(ss, h);
    if (s)
        session_end(s);
}

size_t sm_sessions_count(const sm_sessions_t *ss)
{
    return ss->table.count;
}

/* ---- lifecycle ---- */

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
    uv_timer_init(sm_worker_loop(w), &ss->timer);
    ss->timer.data = ss;
    return ss;
}

static void free_after_close(uv_handle_t *h)
{
    free(h->data);
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
    sm_hmap_destroy(&ss->table);
    uv_timer_stop(&ss->timer);
    uv_close((uv_handle_t *)&ss->timer, free_after_close);
}
