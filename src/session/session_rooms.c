/*
 * ROOM_CREATE, ROOM_JOIN, ROOM_LEAVE and ROOM_EVENT (DECISIONS §6, p2p mode).
 *
 * Membership lives in the shared room table (rooms/room.h); the store keeps
 * a copy for crash clean-up and inspection.  A create or join is reserved
 * in the table, written to the store, then committed (or rolled back when
 * the store fails: ERROR 503, nothing half-done).  A leave takes effect in
 * the table at once (members are told right away) and the store is updated
 * after; the ACK waits for that so that later frames see a settled state.
 *
 * Room events go straight to the members' connections (their I/O outboxes)
 * from the worker handling the change, one encoded frame shared by all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sm/uuid.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/hex.h"
#include "events/events.h"
#include "log/log.h"
#include "proto/reply.h"
#include "reactor/worker.h"
#include "rooms/room.h"
#include "session/session_internal.h"
#include "cloud/cloudflare.h"
#include "store/store.h"

#define SM_ROOM_MAX_OFFER 30000

/* ---- helpers ---- */

void sm__rooms_broadcast(sm_sessions_t *ss, const sm_room_result_t *res, const char *event,
                         const char *room_id, const char *client_id, const char *reason,
                         const char *sid, const sm_room_track_t *tracks, size_t n)
{
    if (res->n_notify == 0)
        return;
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_ROOM_EVENT, NULL);
    sm_reply_str(&r, "event", event);
    sm_reply_str(&r, "room_id", room_id);
    if (client_id)
        sm_reply_str(&r, "client_id", client_id);
    if (reason)
        sm_reply_str(&r, "reason", reason);
    if (sid && n) {
        /* cloudflare mode: publications that started or stopped */
        json_t *list = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "session_id", json_string(sid));
            json_object_set_new(o, "track_name", json_string(tracks[i].track_name));
            json_array_append_new(list, o);
        }
        sm_reply_json(&r, "tracks", list);
        json_decref(list);
    }
    sm_reply_int(&r, "timestamp", sm_clock_wall_ms());
    sm_obuf_t *b = sm_reply_finish(&r, NULL);
    if (b == NULL)
        return;
    for (size_t i = 0; i < res->n_notify; i++) {
        sm_count(&ss->ctr->msgs_out[sm_metric_msg_index(SM_MSG_ROOM_EVENT)], 1);
        sm_worker_send(ss->w, res->notify[i], sm_obuf_ref(b), 0, 0);
    }
    sm_obuf_unref(b);
}

/* ROOM_EVENT to res->notify; a leaving member's publications (res->pub,
 * cloudflare mode) are named in "tracks". */
static void broadcast(sm_sessions_t *ss, const sm_room_result_t *res, const char *event,
                      const char *room_id, const char *client_id, const char *reason)
{
    sm__rooms_broadcast(ss, res, event, room_id, client_id, reason, res->pub_sid, res->pub,
                        res->n_pub);
}

/* Store updates nobody waits for (leave on disconnect, idle close): the
 * outcome is only logged; start-up clean-up removes what a failure left. */
typedef struct {
    sm_worker_t *w;
    const char *what;
    char *id;
} ff_t;

/* A room store update that nobody retries: logged, never silent (start-up
 * clean-up removes the stale row).  status is its submission or outcome. */
static void log_store_failure(const char *what, const char *room_id, int status)
{
    if (status != 0 && status != SM_ENOTFOUND)
        SM_LOG(SM_LOG_WARN, SM_MSG("room store update failed"), SM_STR("op", what),
               SM_STR("room_id", room_id), SM_STR("error", sm_strerror(status)));
}

static void ff_done(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    ff_t *ff = arg;
    sm_worker_op_end(ff->w);
    log_store_failure(ff->what, ff->id, status);
    free(ff->id);
    free(ff);
}

static ff_t *ff_new(sm_sessions_t *ss, const char *what, const char *id)
{
    ff_t *ff = sm_xmalloc(sizeof *ff);
    ff->w = ss->w;
    ff->what = what;
    ff->id = sm_xstrdup(id);
    return ff;
}

static void ff_submit(sm_sessions_t *ss, int rc, ff_t *ff)
{
    if (rc == 0) {
        sm_worker_op_begin(ss->w);
    } else {
        log_store_failure(ff->what, ff->id, rc);
        free(ff->id);
        free(ff);
    }
}

static void ff_delete_room(sm_sessions_t *ss, const char *room_id)
{
    ff_t *ff = ff_new(ss, "delete_room", room_id);
    ff_submit(
        ss, sm_store_delete_room(ss->srv->store, room_id, sm_worker_taskq(ss->w), ff_done, ff), ff);
}

static void ff_remove_member(sm_sessions_t *ss, const char *room_id, const char *client_id)
{
    ff_t *ff = ff_new(ss, "remove_member", room_id);
    ff_submit(ss,
              sm_store_remove_member(ss->srv->store, room_id, client_id, sm_worker_taskq(ss->w),
                                     ff_done, ff),
              ff);
}

static sm_member_ref_t me(const session_t *s)
{
    return (sm_member_ref_t){.client_id = s->client_id, .serial = s->serial, .conn = s->conn};
}

static void begin_op(session_t *s, op_t *op)
{
    s->op = op;
    sm_worker_op_begin(s->ss->w);
}

/* ---- ROOM_CREATE ---- */

static void on_create_member(int status, const sm_store_result_t *res, void *arg);
static void on_create_put(int status, const sm_store_result_t *res, void *arg);

static int submit_put_room(op_t *op)
{
    sm_sessions_t *ss = op->ss;
    session_t *s = op->s;
    sm_room_rec_t rec = {
        .room_id = op->room_id,
        .creator_id = s->client_id,
        .instance_id = (char *)ss->srv->instance_id,
        .metadata_json = op->meta_json,
        .created_at_ms = op->registered_at_ms,
        .max_participants = op->step,
    };
    int rc = sm_store_put_room(ss->srv->store, &rec, sm_worker_taskq(ss->w), on_create_put, op);
    if (rc == 0)
        sm_worker_op_begin(ss->w);
    return rc;
}

/* ERROR for a create/join that did not happen. */
static void op_error(op_t *op, int status)
{
    session_t *s = op->s;
    switch (status) {
    case SM_ECONFLICT:
        sm__sess_error(s, op->uuid, 409, "room already exists", "room_id", op->room_id);
        break;
    case SM_ENOTFOUND:
        sm__sess_error(s, op->uuid, 404, "room not found", "room_id", op->room_id);
        break;
    case SM_EFULL:
        sm__sess_error(s, op->uuid, 503,
                       "too many SFU sessions on this server "
                       "(limits.max_sfu_sessions)",
                       "room_id", op->room_id);
        break;
    case SM_EINVAL:
        sm__sess_error(s, op->uuid, 400, "the SFU refused the session description", "room_id",
                       op->room_id);
        break;
    default:
        sm__sess_error(s, op->uuid, 503,
                       op->sfu ? "room store or SFU unavailable, try again later"
                               : "room store unavailable, try again later",
                       "room_id", op->room_id);
    }
}

void sm__rooms_create_failed(op_t *op, int status)
{
    session_t *s = op->s;
    sm_rooms_create_done(op->ss->srv->rooms, op->room_id, false, NULL);
    op_error(op, status);
    sm__sess_op_free(op);
    sm__sess_op_done(s);
}

static void create_failed(op_t *op, int status)
{
    sm__sfu_discard(op);
    sm__rooms_create_failed(op, status);
}

void sm__rooms_create_store(op_t *op)
{
    if (submit_put_room(op) != 0)
        create_failed(op, SM_EUNAVAIL);
}

static void on_stale_room_deleted(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    sm_worker_op_end(op->ss->w);
    if ((status == 0 || status == SM_ENOTFOUND) && submit_put_room(op) == 0)
        return;
    create_failed(op, SM_EUNAVAIL);
}

/* put_room met an existing row.  This process reserved the id, so no live
 * room of ours has it: a row of our own instance is stale (a close whose
 * store delete failed) and is replaced; another instance's row is a real
 * conflict. */
static void on_create_get(int status, const sm_store_result_t *res, void *arg)
{
    op_t *op = arg;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    if (status == SM_ENOTFOUND) {
        if (submit_put_room(op) == 0)
            return;
        status = SM_EUNAVAIL;
    } else if (status == 0 && res->room && res->room->instance_id &&
               strcmp(res->room->instance_id, ss->srv->instance_id) == 0) {
        SM_LOG(SM_LOG_INFO, SM_MSG("replacing a stale room of this instance"),
               SM_STR("room_id", op->room_id));
        if (sm_store_delete_room(ss->srv->store, op->room_id, sm_worker_taskq(ss->w),
                                 on_stale_room_deleted, op) == 0) {
            sm_worker_op_begin(ss->w);
            return;
        }
        status = SM_EUNAVAIL;
    } else if (status == 0) {
        status = SM_ECONFLICT;
    }
    create_failed(op, status);
}

static void on_create_put(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    session_t *s = op->s;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    if (status == SM_ECONFLICT && !op->retried) {
        op->retried = true;
        if (sm_store_get_room(ss->srv->store, op->room_id, sm_worker_taskq(ss->w), on_create_get,
                              op) == 0) {
            sm_worker_op_begin(ss->w);
            return;
        }
    }
    if (status == 0 && sm_store_add_member(ss->srv->store, op->room_id, s->client_id, "sender",
                                           sm_worker_taskq(ss->w), on_create_member, op) == 0) {
        sm_worker_op_begin(ss->w);
        return;
    }
    if (status == 0)
        ff_delete_room(ss, op->room_id);
    create_failed(op, status);
}

static void on_create_member(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    session_t *s = op->s;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    if (status != 0) {
        ff_delete_room(ss, op->room_id);
        create_failed(op, SM_EUNAVAIL);
        return;
    }
    sm_room_sfu_t sfu;
    sm__sfu_state(op, &sfu);
    sm_rooms_create_done(ss->srv->rooms, op->room_id, true, &sfu);
    sm__sfu_committed(op);
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_ROOM_CREATE_ACK, op->uuid);
    sm_reply_str(&r, "version", SM_PROTO_VERSION);
    sm_reply_int(&r, "status", 200);
    sm_reply_str(&r, "message", "Room created successfully");
    sm_reply_str(&r, "room_id", op->room_id);
    sm_reply_str(&r, "session_id", s->session_id);
    sm_reply_int(&r, "max_participants", op->step);
    const char *const participants[] = {s->client_id, NULL};
    sm_reply_str_array(&r, "participants", participants);
    if (op->sfu) {
        sm__sfu_ack_create(op, &r);
    } else {
        char created[40];
        sm_clock_rfc3339(sm_clock_wall_ms(), created, sizeof created);
        sm_reply_open(&r, "connection_info");
        sm_reply_str(&r, "room_id", op->room_id);
        sm_reply_str(&r, "role", "sender");
        sm_reply_str(&r, "session_id", s->session_id);
        sm_reply_str(&r, "status", "connected");
        sm_reply_str(&r, "mode", "p2p");
        sm_reply_open(&r, "metadata");
        sm_reply_str(&r, "session_id", s->session_id);
        sm_reply_str(&r, "created_at", created);
        sm_reply_str(&r, "client_id", s->client_id);
        sm_reply_close(&r);
        sm_reply_close(&r);
    }
    sm__sess_reply(s, &r, op->uuid, SM_MSG_ROOM_CREATE_ACK, "room_id", op->room_id);
    sm_events_emit(ss->srv->events, "room.created", s->client_id, op->room_id, s->session_id);
    sm__sess_op_free(op);
    sm__sess_op_done(s);
}

void sm__rooms_on_create(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_sessions_t *ss = s->ss;
    sm_payload_room_create_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_room_create(root, &p, &perr) != 0) {
        sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    if (sm__sfu_enabled(ss)) {
        sm_sdp_media_t probe[1];
        if (p.offer_sdp.ptr == NULL ||
            sm__sfu_publishable(p.offer_sdp.ptr, p.offer_sdp.len, probe, 1) == 0) {
            sm__sess_bad_frame(s, f->uuid,
                               "offer_sdp: an SDP offer with audio or video to publish is "
                               "required in cloudflare mode",
                               "offer_sdp");
            return;
        }
    }
    /* The offer goes back out in the first joiner's ROOM_JOIN_ACK next to up
     * to 256 participant ids: this bound keeps that ACK within 64 KiB. */
    if (p.offer_sdp.ptr && p.offer_sdp.len > SM_ROOM_MAX_OFFER) {
        sm__sess_bad_frame(s, f->uuid, "offer_sdp: longer than 30000 bytes", "offer_sdp");
        return;
    }
    if (!sm__sess_check_identity(s, f, p.client_id, p.auth_token) ||
        !sm__sess_require_registered(s, f))
        return;
    char room_id[SM_PROTO_ID_MAX + 1];
    if (p.room_id.ptr) {
        memcpy(room_id, p.room_id.ptr, p.room_id.len);
        room_id[p.room_id.len] = '\0';
    } else {
        /* No id given: a random one ("room-" + 16 hex digits). */
        uint8_t rnd[16];
        if (sm_uuid_v4(rnd) != 0) {
            sm__sess_error(s, f->uuid, 500, "internal error", NULL, NULL);
            return;
        }
        memcpy(room_id, "room-", 5);
        sm_hex_encode(rnd, 8, room_id + 5);
    }
    int cap = (int)ss->cfg->webrtc_max_participants;
    int maxp = p.max_participants > 0 && p.max_participants < cap ? (int)p.max_participants : cap;
    /* p2p: the creator's offer is handed to the first joiner; in cloudflare
     * mode the SFU answers it instead. */
    char *offer = p.offer_sdp.ptr && !sm__sfu_enabled(ss) ? sm__sess_dup(p.offer_sdp) : NULL;
    sm_member_ref_t m = me(s);
    int rc = sm_rooms_create(ss->srv->rooms, room_id, &m, maxp, offer, (int64_t)sm_clock_mono_ms());
    free(offer);
    if (rc == SM_ECONFLICT) {
        sm__sess_error(s, f->uuid, 409, "room already exists", "room_id", room_id);
        return;
    }
    if (rc != 0) {
        sm__sess_error(s, f->uuid, 503, "too many rooms on this server (limits.max_rooms)",
                       "room_id", room_id);
        return;
    }
    op_t *op = sm__sess_op_new(s, OP_ROOM_CREATE, f->uuid);
    op->room_id = sm_xstrdup(room_id);
    op->step = maxp;
    op->meta_json = p.metadata ? json_dumps(p.metadata, JSON_COMPACT) : NULL;
    op->registered_at_ms = sm_clock_wall_ms(); /* the room's created_at */
    s->op = op;
    if (sm__sfu_enabled(ss))
        sm__sfu_create(op, p.offer_sdp.ptr, p.offer_sdp.len);
    else
        sm__rooms_create_store(op);
}

/* ---- ROOM_JOIN ---- */

static void on_join_member(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    session_t *s = op->s;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    /* The table said "not a member", so a membership row already in the
     * store is one a failed removal left behind: it is ours. */
    if (status == SM_ECONFLICT)
        status = 0;
    sm_room_result_t rr;
    sm_room_sfu_t sfu;
    sm__sfu_state(op, &sfu);
    bool committed =
        sm_rooms_join_done(ss->srv->rooms, op->room_id, s->client_id, status == 0, &sfu, &rr);
    if (status == 0 && !committed) {
        /* The room closed while the store wrote the membership. */
        ff_remove_member(ss, op->room_id, s->client_id);
        status = SM_ENOTFOUND;
    }
    if (status != 0) {
        sm__sfu_discard(op);
        op_error(op, status == SM_ENOTFOUND ? SM_ENOTFOUND : SM_EUNAVAIL);
    } else {
        sm__sfu_committed(op);
        sm_reply_t r;
        sm_reply_begin(&r, SM_MSG_ROOM_JOIN_ACK, op->uuid);
        sm_reply_str(&r, "version", SM_PROTO_VERSION);
        sm_reply_int(&r, "status", 200);
        sm_reply_str(&r, "message", "Joined room");
        sm_reply_str(&r, "room_id", op->room_id);
        sm_reply_str(&r, "session_id", s->session_id);
        sm_reply_str_array(&r, "participants", (const char *const *)rr.participants);
        if (rr.offer_sdp)
            sm_reply_str(&r, "offer_sdp", rr.offer_sdp);
        if (op->sfu)
            sm__sfu_ack_join(op, &r);
        sm__sess_reply(s, &r, op->uuid, SM_MSG_ROOM_JOIN_ACK, "room_id", op->room_id);
        broadcast(ss, &rr, "participant_joined", op->room_id, s->client_id, NULL);
        sm__sfu_announce(op, &rr);
        sm_rooms_touch(ss->srv->rooms, op->room_id, strlen(op->room_id),
                       (int64_t)sm_clock_mono_ms());
        sm_events_emit(ss->srv->events, "room.joined", s->client_id, op->room_id, s->session_id);
    }
    sm_room_result_free(&rr);
    sm__sess_op_free(op);
    sm__sess_op_done(s);
}

void sm__rooms_on_join(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_sessions_t *ss = s->ss;
    sm_payload_room_join_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_room_join(root, &p, &perr) != 0) {
        sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    if (!sm__sess_check_identity(s, f, p.client_id, p.auth_token) ||
        !sm__sess_require_registered(s, f))
        return;
    if (sm__sfu_enabled(ss) && p.offer_sdp.ptr &&
        sm_sdp_media(p.offer_sdp.ptr, p.offer_sdp.len, NULL, 0) < 0) {
        sm__sess_bad_frame(s, f->uuid, "offer_sdp: not an SDP offer", "offer_sdp");
        return;
    }
    char *room_id = sm__sess_dup(p.room_id);
    sm_member_ref_t m = me(s);
    int rc = sm_rooms_join(ss->srv->rooms, room_id, &m);
    if (rc != 0) {
        if (rc == SM_ENOTFOUND)
            sm__sess_error(s, f->uuid, 404, "room not found", "room_id", room_id);
        else if (rc == SM_EFULL)
            sm__sess_error(s, f->uuid, 409, "room full", "room_id", room_id);
        else
            sm__sess_error(s, f->uuid, 409, "already a member of this room", "room_id", room_id);
        free(room_id);
        return;
    }
    op_t *op = sm__sess_op_new(s, OP_ROOM_JOIN, f->uuid);
    op->room_id = room_id;
    s->op = op;
    if (sm__sfu_enabled(ss))
        sm__sfu_join(op, p.offer_sdp.ptr, p.offer_sdp.len);
    else
        sm__rooms_join_store(op);
}

void sm__rooms_join_failed(op_t *op, int status)
{
    session_t *s = op->s;
    sm_room_result_t rr;
    sm_rooms_join_done(op->ss->srv->rooms, op->room_id, s->client_id, false, NULL, &rr);
    sm_room_result_free(&rr);
    op_error(op, status);
    sm__sess_op_free(op);
    sm__sess_op_done(s);
}

void sm__rooms_join_store(op_t *op)
{
    sm_sessions_t *ss = op->ss;
    if (sm_store_add_member(ss->srv->store, op->room_id, op->client_id, "receiver",
                            sm_worker_taskq(ss->w), on_join_member, op) != 0) {
        sm__sfu_discard(op);
        sm__rooms_join_failed(op, SM_EUNAVAIL);
        return;
    }
    sm_worker_op_begin(ss->w);
}

/* ---- ROOM_LEAVE and leaving on the way out ---- */

/* Remove (client, serial) from room_id in the table and tell the others.
 * Returns 0 with *closed set, or SM_ENOTFOUND. */
static int leave_room(sm_sessions_t *ss, const char *room_id, const char *client_id,
                      uint64_t serial, const char *session_id, bool *closed)
{
    sm_room_result_t rr;
    int rc = sm_rooms_leave(ss->srv->rooms, room_id, client_id, serial, &rr);
    if (rc != 0)
        return rc;
    *closed = rr.closed;
    broadcast(ss, &rr, "participant_left", room_id, client_id, NULL);
    if (sm__sfu_enabled(ss))
        sm__sfu_close_left(ss, &rr);
    sm_events_emit(ss->srv->events, "room.left", client_id, room_id, session_id);
    if (rr.closed)
        sm_events_emit(ss->srv->events, "room.closed", NULL, room_id, NULL);
    sm_room_result_free(&rr);
    return 0;
}

static void send_leave_ack(session_t *s, const uint8_t *uuid, const char *room_id)
{
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_ROOM_LEAVE_ACK, uuid);
    sm_reply_str(&r, "version", SM_PROTO_VERSION);
    sm_reply_int(&r, "status", 200);
    sm_reply_str(&r, "message", "Left room");
    sm_reply_str(&r, "room_id", room_id);
    sm__sess_send(s, sm_reply_finish(&r, NULL), SM_MSG_ROOM_LEAVE_ACK, 0, 0);
}

/* The membership is gone in the table whatever the store says; a failed
 * store update is logged (start-up clean-up removes the stale row). */
static void on_leave_done(int status, const sm_store_result_t *res, void *arg)
{
    (void)res;
    op_t *op = arg;
    session_t *s = op->s;
    sm_worker_op_end(op->ss->w);
    log_store_failure("leave", op->room_id, status);
    send_leave_ack(s, op->uuid, op->room_id);
    sm__sess_op_free(op);
    sm__sess_op_done(s);
}

void sm__rooms_on_leave(session_t *s, const sm_frame_t *f, const json_t *root)
{
    sm_sessions_t *ss = s->ss;
    sm_payload_room_leave_t p;
    sm_payload_err_t perr;
    if (sm_payload_validate_room_leave(root, &p, &perr) != 0) {
        sm__sess_bad_frame(s, f->uuid, perr.message, perr.field);
        return;
    }
    if (!sm__sess_check_identity(s, f, p.client_id, p.auth_token) ||
        !sm__sess_require_registered(s, f))
        return;
    char *room_id = sm__sess_dup(p.room_id);
    bool closed = false;
    if (leave_room(ss, room_id, s->client_id, s->serial, s->session_id, &closed) != 0) {
        sm__sess_error(s, f->uuid, 404, "not a member of this room", "room_id", room_id);
        free(room_id);
        return;
    }
    op_t *op = sm__sess_op_new(s, OP_ROOM_LEAVE, f->uuid);
    op->room_id = room_id;
    int rc = closed ? sm_store_delete_room(ss->srv->store, room_id, sm_worker_taskq(ss->w),
                                           on_leave_done, op)
                    : sm_store_remove_member(ss->srv->store, room_id, s->client_id,
                                             sm_worker_taskq(ss->w), on_leave_done, op);
    if (rc != 0) {
        log_store_failure("leave", room_id, rc);
        send_leave_ack(s, f->uuid, room_id);
        sm__sess_op_free(op);
        return;
    }
    begin_op(s, op);
}

void sm__rooms_leave_all(session_t *s)
{
    sm_sessions_t *ss = s->ss;
    char **ids = NULL;
    size_t n = sm_rooms_of(ss->srv->rooms, s->client_id, s->serial, &ids);
    for (size_t i = 0; i < n; i++) {
        bool closed = false;
        if (leave_room(ss, ids[i], s->client_id, s->serial, s->session_id, &closed) == 0) {
            if (closed)
                ff_delete_room(ss, ids[i]);
            else
                ff_remove_member(ss, ids[i], s->client_id);
        }
        free(ids[i]);
    }
    free(ids);
}

/* ---- idle rooms ---- */

void sm__rooms_reap(sm_sessions_t *ss)
{
    sm_room_result_t *res = NULL;
    size_t n = sm_rooms_reap_idle(ss->srv->rooms, (int64_t)sm_clock_mono_ms(),
                                  (int64_t)ss->cfg->webrtc_session_timeout, &res);
    for (size_t i = 0; i < n; i++) {
        SM_LOG(SM_LOG_INFO, SM_MSG("idle room closed"), SM_STR("room_id", res[i].room_id),
               SM_UINT("members", res[i].n_participants));
        broadcast(ss, &res[i], "room_closed", res[i].room_id, NULL, "idle");
        if (sm__sfu_enabled(ss))
            sm__sfu_close_all(ss, &res[i]);
        sm_events_emit(ss->srv->events, "room.closed", NULL, res[i].room_id, NULL);
        ff_delete_room(ss, res[i].room_id);
    }
    sm_rooms_free_closed(res, n);
}
