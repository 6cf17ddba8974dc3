/*
 * Cloudflare SFU mode (DECISIONS §6 "cloudflare", reference/cloud-apis.md
 * §1.6): the server keeps room state and the list of publications; each
 * participant has a publish SFU session (when it sends an offer) and a
 * subscribe SFU session (pulls), as in Cloudflare's video-room example.
 *
 * Ordering: every SFU call for a participant's sessions is made by that
 * participant's session while it holds its store/SFU operation (s->op), so
 * calls on one SFU session never overlap (the FIFO §1.4 asks for) and the
 * participant's later frames wait in order.  The exceptions are the forced
 * track closes after a member has gone (nobody else mutates its sessions
 * any more) and the idle-room close.
 *
 * ROOM_CREATE {offer_sdp}: sessions/new (publish) + tracks/new local with the
 * offer (one track per m-section, named "<kind>-<mid>") + sessions/new
 * (subscribe); then the store steps of session_rooms.c.  ROOM_JOIN
 * {offer_sdp?}: the same publish steps when an offer is given, a subscribe
 * session, and a pull of every current publication whose SFU offer goes to
 * the joiner in the ACK.  A pull whose every track failed with
 * not_found_track_error (publisher not sending yet) is retried every
 * PULL_RETRY_MS within webrtc.cloudflare_timeout; partial failures are
 * reported per track (the SFU offer must be answered before the next call).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/cloudflare.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "events/events.h"
#include "log/log.h"
#include "proto/reply.h"
#include "reactor/worker.h"
#include "session/session_internal.h"

#define PULL_RETRY_MS 500
#define MAX_TRACKS 64 /* per tracks/new request (§1.4) */

typedef struct sm_sfu_ctx_s {
    char *offer; /* the client's offer (create/join) */
    size_t offer_len;
    char *pub_sid; /* publish session */
    char *answer;  /* SFU answer to the client's offer */
    sm_room_track_t pub[MAX_TRACKS];
    json_t *pub_items; /* [{track_name, mid, error?}] for the ACK */
    size_t n_pub;
    char *sub_sid;     /* subscribe session */
    char *sub_offer;   /* SFU offer from the pull, or NULL */
    json_t *sub_items; /* [{session_id, track_name, mid, error?}] */
    char *pulled[MAX_TRACKS];
    size_t n_pulled;
    sm_room_pub_t *pubs; /* publications to pull (join) */
    size_t n_pubs;
    uint64_t pull_deadline;
    int sessions; /* SFU sessions counted in srv->sfu_sessions */
    bool joining;
    uv_timer_t *timer;
    sm_worker_t *timer_w; /* the worker whose drain counts the armed timer */
} sm_sfu_ctx_t;

bool sm__sfu_enabled(const sm_sessions_t *ss)
{
    return ss->srv->cf != NULL;
}

/* ---- small helpers ---- */

size_t sm__sfu_publishable(const char *sdp, size_t len, sm_sdp_media_t *out, size_t cap)
{
    sm_sdp_media_t all[MAX_TRACKS + 1];
    int n = sm_sdp_media(sdp, len, all, MAX_TRACKS + 1);
    size_t k = 0;
    for (int i = 0; i < n && i < MAX_TRACKS && k < cap; i++) {
        bool media = strcmp(all[i].kind, "audio") == 0 || strcmp(all[i].kind, "video") == 0;
        bool sending =
            strcmp(all[i].direction, "sendrecv") == 0 || strcmp(all[i].direction, "sendonly") == 0;
        if (media && sending && !all[i].rejected)
            out[k++] = all[i];
    }
    return k;
}

static int http_code(int err)
{
    switch (err) {
    case SM_ECONFLICT:
        return 409;
    case SM_ENOTFOUND:
        return 404;
    case SM_EINVAL:
        return 400;
    default:
        return 503;
    }
}

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

/* A one-shot timer calling cb(data) after PULL_RETRY_MS; close it with
 * uv_close(.., timer_closed).  The armed timer counts as an operation in
 * flight (sm_worker_op_begin), so that a drain waits for the retry: the
 * callback, or whoever stops the timer, ends it. */
static uv_timer_t *retry_later(sm_sessions_t *ss, uv_timer_cb cb, void *data)
{
    sm_worker_op_begin(ss->w);
    uv_timer_t *t = sm_xmalloc(sizeof *t);
    uv_timer_init(sm_worker_loop(ss->w), t);
    t->data = data;
    uv_timer_start(t, cb, PULL_RETRY_MS, 0);
    return t;
}

static void ctx_stop_timer(sm_sfu_ctx_t *c)
{
    if (c->timer) {
        uv_timer_stop(c->timer);
        uv_close((uv_handle_t *)c->timer, timer_closed);
        c->timer = NULL;
        sm_worker_op_end(c->timer_w);
    }
}

void sm__sfu_ctx_free(sm_sfu_ctx_t *c)
{
    if (c == NULL)
        return;
    ctx_stop_timer(c);
    free(c->offer);
    free(c->pub_sid);
    free(c->answer);
    for (size_t i = 0; i < c->n_pub; i++) {
        free(c->pub[i].track_name);
        free(c->pub[i].mid);
    }
    json_decref(c->pub_items);
    free(c->sub_sid);
    free(c->sub_offer);
    json_decref(c->sub_items);
    for (size_t i = 0; i < c->n_pulled; i++)
        free(c->pulled[i]);
    sm_room_pubs_free(c->pubs, c->n_pubs);
    free(c);
}

/* Reserve n SFU sessions against limits.max_sfu_sessions. */
static bool reserve_sessions(sm_sessions_t *ss, sm_sfu_ctx_t *c, int n)
{
    int64_t cur = atomic_fetch_add_explicit(&ss->srv->sfu_sessions, n, memory_order_relaxed);
    if (cur + n > ss->cfg->limits_max_sfu_sessions) {
        atomic_fetch_sub_explicit(&ss->srv->sfu_sessions, n, memory_order_relaxed);
        return false;
    }
    c->sessions += n;
    return true;
}

static void release_sessions(sm_sessions_t *ss, int n)
{
    if (n > 0)
        atomic_fetch_sub_explicit(&ss->srv->sfu_sessions, n, memory_order_relaxed);
}

static json_t *item_json(const sm_cf_track_t *t, bool with_session)
{
    json_t *o = json_object();
    if (with_session && t->session_id)
        json_object_set_new(o, "session_id", json_string(t->session_id));
    json_object_set_new(o, "track_name", json_string(t->track_name ? t->track_name : ""));
    json_object_set_new(o, "mid", json_string(t->mid ? t->mid : ""));
    if (t->error_code) {
        json_t *e = json_object();
        json_object_set_new(e, "code", json_string(t->error_code));
        if (t->error_description)
            json_object_set_new(e, "description", json_string(t->error_description));
        json_object_set_new(o, "error", e);
    }
    return o;
}

/* Forced close of mids on an SFU session whose owner is gone; the outcome
 * is only logged (the SFU expires what stays). */
typedef struct {
    sm_worker_t *w;
    char *sid;
} close_ff_t;

static void on_close_ff(const sm_cf_result_t *r, void *arg)
{
    close_ff_t *x = arg;
    sm_worker_op_end(x->w);
    if (r->err != 0 && r->err != SM_ENOTFOUND)
        SM_LOG(SM_LOG_WARN, SM_MSG("SFU track close failed"), SM_STR("session_id", x->sid),
               SM_STR("error", sm_strerror(r->err)));
    free(x->sid);
    free(x);
}

static void close_ff(sm_sessions_t *ss, const char *sid, const char *const *mids, size_t n)
{
    if (sid == NULL || n == 0)
        return;
    close_ff_t *x = sm_xmalloc(sizeof *x);
    x->w = ss->w;
    x->sid = sm_xstrdup(sid);
    int rc = sm_cf_close(ss->srv->cf, sid, mids, n, true, on_close_ff, x);
    if (rc == 0) {
        sm_worker_op_begin(ss->w);
        return;
    }
    SM_LOG(SM_LOG_WARN, SM_MSG("SFU track close failed"), SM_STR("session_id", sid),
           SM_STR("error", sm_strerror(rc)));
    free(x->sid);
    free(x);
}

/* ---- create / join steps ---- */

static void step_sub_session(op_t *op);
static void step_pull(op_t *op);

/* The create or join ends with status (session_rooms.c answers it). */
static void op_failed(op_t *op, int status)
{
    if (op->sfu->joining)
        sm__rooms_join_failed(op, status);
    else
        sm__rooms_create_failed(op, status);
}

static void fail(op_t *op, int err, const char *what)
{
    SM_LOG(SM_LOG_WARN, SM_MSG("SFU call failed"), SM_STR("step", what),
           SM_STR("room_id", op->room_id), SM_STR("error", sm_strerror(err)));
    sm__sfu_discard(op);
    /* Only "the SFU refused the SDP" (400) and our own cap (503) are worth
     * telling apart; 406/410/404 from the SFU are its failures, not a room
     * that exists or not: 503 like every other SFU failure. */
    op_failed(op, err == SM_EINVAL || err == SM_EFULL ? err : SM_EUNAVAIL);
}

static void on_push(const sm_cf_result_t *r, void *arg)
{
    op_t *op = arg;
    sm_sfu_ctx_t *c = op->sfu;
    sm_worker_op_end(op->ss->w);
    if (r->err != 0 || r->sdp == NULL) {
        fail(op, r->err ? r->err : SM_EUNAVAIL, "push");
        return;
    }
    c->answer = sm_xstrdup(r->sdp);
    c->pub_items = json_array();
    for (size_t i = 0; i < r->n_tracks; i++) {
        json_array_append_new(c->pub_items, item_json(&r->tracks[i], false));
        if (r->tracks[i].error_code == NULL && r->tracks[i].track_name && c->n_pub < MAX_TRACKS) {
            c->pub[c->n_pub].track_name = sm_xstrdup(r->tracks[i].track_name);
            c->pub[c->n_pub].mid = sm_xstrdup(r->tracks[i].mid ? r->tracks[i].mid : "");
            c->n_pub++;
        }
    }
    step_sub_session(op);
}

static void on_pub_session(const sm_cf_result_t *r, void *arg)
{
    op_t *op = arg;
    sm_sfu_ctx_t *c = op->sfu;
    sm_worker_op_end(op->ss->w);
    if (r->err != 0 || r->session_id == NULL) {
        fail(op, r->err ? r->err : SM_EUNAVAIL, "publish session");
        return;
    }
    c->pub_sid = sm_xstrdup(r->session_id);
    /* One local track per sending audio/video m-section of the offer. */
    sm_sdp_media_t media[MAX_TRACKS];
    char names[MAX_TRACKS][96];
    sm_cf_track_t tracks[MAX_TRACKS];
    size_t n = sm__sfu_publishable(c->offer, c->offer_len, media, MAX_TRACKS);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s-%s", media[i].kind, media[i].mid);
        tracks[i] =
            (sm_cf_track_t){.location = "local", .mid = media[i].mid, .track_name = names[i]};
    }
    if (sm_cf_push(op->ss->srv->cf, c->pub_sid, c->offer, tracks, n, on_push, op) != 0) {
        fail(op, SM_EUNAVAIL, "push");
        return;
    }
    sm_worker_op_begin(op->ss->w);
}

static void on_sub_session(const sm_cf_result_t *r, void *arg)
{
    op_t *op = arg;
    sm_sfu_ctx_t *c = op->sfu;
    sm_worker_op_end(op->ss->w);
    if (r->err != 0 || r->session_id == NULL) {
        fail(op, r->err ? r->err : SM_EUNAVAIL, "subscribe session");
        return;
    }
    c->sub_sid = sm_xstrdup(r->session_id);
    if (!c->joining) {
        sm__rooms_create_store(op);
        return;
    }
    c->n_pubs = sm_rooms_publications(op->ss->srv->rooms, op->room_id, op->client_id, &c->pubs);
    if (c->n_pubs == 0) {
        sm__rooms_join_store(op);
        return;
    }
    c->pull_deadline = uv_now(sm_worker_loop(op->ss->w)) + op->ss->cfg->webrtc_cloudflare_timeout;
    step_pull(op);
}

static void step_sub_session(op_t *op)
{
    if (sm_cf_session_new(op->ss->srv->cf, on_sub_session, op) != 0) {
        fail(op, SM_EUNAVAIL, "subscribe session");
        return;
    }
    sm_worker_op_begin(op->ss->w);
}

static void on_retry_timer(uv_timer_t *t)
{
    op_t *op = t->data;
    ctx_stop_timer(op->sfu);
    step_pull(op);
}

static bool all_not_sending(const sm_cf_result_t *r)
{
    if (r->n_tracks == 0)
        return false;
    for (size_t i = 0; i < r->n_tracks; i++) {
        if (r->tracks[i].error_code == NULL ||
            strcmp(r->tracks[i].error_code, "not_found_track_error") != 0)
            return false;
    }
    return true;
}

/* Keep the successful items of a pull: their mids belong to the subscribe
 * session now. */
static json_t *pulled_items(const sm_cf_result_t *r, char **mids, size_t *n)
{
    json_t *items = json_array();
    for (size_t i = 0; i < r->n_tracks; i++) {
        json_array_append_new(items, item_json(&r->tracks[i], true));
        if (r->tracks[i].error_code == NULL && r->tracks[i].mid && *n < MAX_TRACKS)
            mids[(*n)++] = sm_xstrdup(r->tracks[i].mid);
    }
    return items;
}

static void on_pull(const sm_cf_result_t *r, void *arg)
{
    op_t *op = arg;
    sm_sfu_ctx_t *c = op->sfu;
    sm_sessions_t *ss = op->ss;
    sm_worker_op_end(ss->w);
    if (r->err != 0) {
        fail(op, r->err, "pull");
        return;
    }
    if (all_not_sending(r) && uv_now(sm_worker_loop(ss->w)) + PULL_RETRY_MS < c->pull_deadline) {
        /* Nothing is pending on the session: try again shortly. */
        c->timer = retry_later(ss, on_retry_timer, op);
        c->timer_w = ss->w;
        return;
    }
    c->sub_offer = r->sdp ? sm_xstrdup(r->sdp) : NULL;
    c->sub_items = pulled_items(r, c->pulled, &c->n_pulled);
    sm__rooms_join_store(op);
}

static void step_pull(op_t *op)
{
    sm_sfu_ctx_t *c = op->sfu;
    size_t n = c->n_pubs < MAX_TRACKS ? c->n_pubs : MAX_TRACKS;
    sm_cf_track_t tracks[MAX_TRACKS];
    for (size_t i = 0; i < n; i++)
        tracks[i] = (sm_cf_track_t){.location = "remote",
                                    .session_id = c->pubs[i].session_id,
                                    .track_name = c->pubs[i].track_name};
    if (sm_cf_pull(op->ss->srv->cf, c->sub_sid, tracks, n, on_pull, op) != 0) {
        fail(op, SM_EUNAVAIL, "pull");
        return;
    }
    sm_worker_op_begin(op->ss->w);
}

static void start(op_t *op, const char *offer, size_t len, bool joining)
{
    sm_sessions_t *ss = op->ss;
    sm_sfu_ctx_t *c = sm_xcalloc(1, sizeof *c);
    op->sfu = c;
    c->joining = joining;
    sm_sdp_media_t probe[1];
    if (offer && sm__sfu_publishable(offer, len, probe, 1) == 0)
        offer = NULL; /* nothing to publish (e.g. a data channel only) */
    if (offer) {
        c->offer = sm_xstrndup(offer, len);
        c->offer_len = len;
    }
    if (!reserve_sessions(ss, c, offer ? 2 : 1)) {
        op_failed(op, SM_EFULL);
        return;
    }
    int rc = offer ? sm_cf_session_new(ss->srv->cf, on_pub_session, op)
                   : sm_cf_session_new(ss->srv->cf, on_sub_session, op);
    if (rc != 0) {
        fail(op, SM_EUNAVAIL, "session");
        return;
    }
    sm_worker_op_begin(ss->w);
}

void sm__sfu_create(op_t *op, const char *offer, size_t len)
{
    start(op, offer, len, false);
}

void sm__sfu_join(op_t *op, const char *offer, size_t len)
{
    start(op, offer, len, true);
}

void sm__sfu_discard(op_t *op)
{
    sm_sfu_ctx_t *c = op->sfu;
    if (c == NULL)
        return;
    const char *mids[MAX_TRACKS];
    for (size_t i = 0; i < c->n_pub; i++)
        mids[i] = c->pub[i].mid;
    close_ff(op->ss, c->pub_sid, mids, c->n_pub);
    close_ff(op->ss, c->sub_sid, (const char *const *)c->pulled, c->n_pulled);
    release_sessions(op->ss, c->sessions);
    c->sessions = 0;
}

void sm__sfu_state(op_t *op, sm_room_sfu_t *v)
{
    sm_sfu_ctx_t *c = op->sfu;
    memset(v, 0, sizeof *v);
    if (c == NULL)
        return;
    v->pub_sid = c->pub_sid;
    v->pub = c->pub;
    v->n_pub = c->n_pub;
    v->sub_sid = c->sub_sid;
    v->pulled = (const char *const *)c->pulled;
    v->n_pulled = c->n_pulled;
}

void sm__sfu_committed(op_t *op)
{
    if (op->sfu)
        op->sfu->sessions = 0; /* the room table's member holds them now */
}

void sm__sfu_ack_create(op_t *op, sm_reply_t *r)
{
    sm_sfu_ctx_t *c = op->sfu;
    sm_reply_str(r, "answer_sdp", c->answer);
    sm_reply_open(r, "connection_info");
    sm_reply_str(r, "room_id", op->room_id);
    sm_reply_str(r, "role", "sender");
    sm_reply_str(r, "app_id", op->ss->cfg->cloudflare_app_id);
    sm_reply_str(r, "session_id", c->pub_sid);
    sm_reply_str(r, "status", "connecting");
    sm_reply_str(r, "mode", "cloudflare");
    sm_reply_json(r, "tracks", c->pub_items);
    sm_reply_open(r, "metadata");
    char created[40];
    sm_clock_rfc3339(sm_clock_wall_ms(), created, sizeof created);
    sm_reply_str(r, "session_id", c->pub_sid);
    sm_reply_str(r, "created_at", created);
    sm_reply_str(r, "client_id", op->client_id);
    sm_reply_close(r);
    sm_reply_close(r);
    sm_reply_open(r, "subscribe");
    sm_reply_str(r, "session_id", c->sub_sid);
    sm_reply_close(r);
}

void sm__sfu_ack_join(op_t *op, sm_reply_t *r)
{
    sm_sfu_ctx_t *c = op->sfu;
    if (c->pub_sid) {
        sm_reply_open(r, "publish");
        sm_reply_str(r, "session_id", c->pub_sid);
        sm_reply_str(r, "answer_sdp", c->answer);
        sm_reply_json(r, "tracks", c->pub_items);
        sm_reply_close(r);
    }
    sm_reply_open(r, "subscribe");
    sm_reply_str(r, "session_id", c->sub_sid);
    if (c->sub_offer)
        sm_reply_str(r, "offer_sdp", c->sub_offer);
    else
        sm_reply_null(r, "offer_sdp");
    if (c->sub_items) {
        sm_reply_json(r, "tracks", c->sub_items);
    } else {
        json_t *empty = json_array();
        sm_reply_json(r, "tracks", empty);
        json_decref(empty);
    }
    sm_reply_close(r);
}

/* Was (session_id, track_name) in the publications the join pulled? */
static bool pulled_already(const sm_sfu_ctx_t *c, const sm_room_pub_t *p)
{
    for (size_t i = 0; i < c->n_pubs; i++) {
        if (strcmp(c->pubs[i].session_id, p->session_id) == 0 &&
            strcmp(c->pubs[i].track_name, p->track_name) == 0)
            return true;
    }
    return false;
}

void sm__sfu_announce(op_t *op, const sm_room_result_t *res)
{
    sm_sfu_ctx_t *c = op->sfu;
    if (c == NULL)
        return;
    if (c->pub_sid && c->n_pub)
        sm__rooms_broadcast(op->ss, res, "tracks_published", op->room_id, op->client_id, NULL,
                            c->pub_sid, c->pub, c->n_pub);
    /* Publications committed while this join was pulling reached only the
     * members committed then: tell the joiner about them now, one event per
     * publisher, so it can pull them (SESSION_UPDATE pull). */
    sm_room_pub_t *now = NULL;
    size_t n = sm_rooms_publications(op->ss->srv->rooms, op->room_id, op->client_id, &now);
    session_t *s = op->s;
    sm_room_result_t me_only = {.notify = &s->conn, .n_notify = s->conn != SM_HANDLE_NONE};
    for (size_t i = 0; i < n;) {
        size_t j = i;
        sm_room_track_t missed[MAX_TRACKS];
        size_t k = 0;
        while (j < n && strcmp(now[j].client_id, now[i].client_id) == 0) {
            if (!pulled_already(c, &now[j]) && k < MAX_TRACKS)
                missed[k++] = (sm_room_track_t){.track_name = now[j].track_name};
            j++;
        }
        if (k > 0)
            sm__rooms_broadcast(op->ss, &me_only, "tracks_published", op->room_id, now[i].client_id,
                                NULL, now[i].session_id, missed, k);
        i = j;
    }
    sm_room_pubs_free(now, n);
}

void sm__sfu_close_left(sm_sessions_t *ss, const sm_room_result_t *res)
{
    const char *mids[MAX_TRACKS];
    size_t n = 0;
    for (size_t i = 0; i < res->n_pub && n < MAX_TRACKS; i++)
        mids[n++] = res->pub[i].mid;
    close_ff(ss, res->pub_sid, mids, n);
    close_ff(ss, res->sub_sid, (const char *const *)res->pulled, res->n_pulled);
    release_sessions(ss, (res->pub_sid ? 1 : 0) + (res->sub_sid ? 1 : 0));
}

void sm__sfu_close_all(sm_sessions_t *ss, const sm_room_result_t *res)
{
    for (size_t i = 0; i < res->n_closes; i++)
        close_ff(ss, res->closes[i].sid, (const char *const *)res->closes[i].mids,
                 res->closes[i].n);
    release_sessions(ss, (int)res->sfu_sessions);
}

/* ---- SESSION_UPDATE ---- */

static void on_update_done(const sm_cf_result_t *r, void *arg);

typedef struct {
    session_t *s;
    uint8_t uuid[16];
    char *sid;
    char *room_id;
    int action;
    bool is_sub;
    json_t *tracks; /* pull: requested publications */
    uint64_t deadline;
    uv_timer_t *timer;
} upd_t;

static void upd_free(upd_t *u)
{
    free(u->sid);
    free(u->room_id);
    json_decref(u->tracks);
    free(u);
}

static void upd_finish(upd_t *u)
{
    session_t *s = u->s;
    op_t *op = s->op;
    s->op = NULL;
    sm__sess_op_free(op);
    upd_free(u);
    sm__sess_op_done(s);
}

static int submit_pull(upd_t *u)
{
    sm_cf_track_t tracks[MAX_TRACKS];
    size_t n = 0;
    size_t i;
    json_t *t;
    json_array_foreach(u->tracks, i, t)
    {
        if (n == MAX_TRACKS)
            break;
        tracks[n++] = (sm_cf_track_t){
            .location = "remote",
            .session_id = json_string_value(json_object_get(t, "session_id")),
            .track_name = json_string_value(json_object_get(t, "track_name")),
        };
    }
    return sm_cf_pull(u->s->ss->srv->cf, u->sid, tracks, n, on_update_done, u);
}

static void on_upd_retry(uv_timer_t *t)
{
    upd_t *u = t->data;
    uv_close((uv_handle_t *)t, timer_closed);
    u->timer = NULL;
    sm_worker_op_end(u->s->ss->w); /* the retry_later one */
    if (submit_pull(u) == 0) {
        sm_worker_op_begin(u->s->ss->w);
        return;
    }
    sm__sess_error(u->s, u->uuid, 503, "SFU unavailable, try again later", "session_id", u->sid);
    upd_finish(u);
}

static void on_update_done(const sm_cf_result_t *r, void *arg)
{
    upd_t *u = arg;
    session_t *s = u->s;
    sm_sessions_t *ss = s->ss;
    sm_worker_op_end(ss->w);
    if (r->err != 0) {
        const char *msg = r->err == SM_ECONFLICT
                              ? "SFU session busy: answer its pending offer first"
                          : r->err == SM_ENOTFOUND ? "SFU session not found or expired"
                          : r->err == SM_EINVAL    ? "SFU refused the request"
                                                   : "SFU unavailable, try again later";
        sm__sess_error(s, u->uuid, http_code(r->err), msg, "session_id", u->sid);
        upd_finish(u);
        return;
    }
    if (u->action == SM_PAYLOAD_ACTION_PULL && all_not_sending(r) &&
        uv_now(sm_worker_loop(ss->w)) + PULL_RETRY_MS < u->deadline) {
        u->timer = retry_later(ss, on_upd_retry, u);
        return;
    }
    sm_reply_t rep;
    sm_reply_begin(&rep, SM_MSG_SESSION_UPDATE_ACK, u->uuid);
    sm_reply_int(&rep, "status", 200);
    sm_reply_str(&rep, "session_id", u->sid);
    if (u->action == SM_PAYLOAD_ACTION_PULL) {
        char *mids[MAX_TRACKS];
        size_t n = 0;
        json_t *items = pulled_items(r, mids, &n);
        sm_rooms_pulled(ss->srv->rooms, u->room_id, s->client_id, s->serial,
                        (const char *const *)mids, n, true);
        for (size_t i = 0; i < n; i++)
            free(mids[i]);
        sm_reply_str(&rep, "action", "pull");
        if (r->sdp)
            sm_reply_str(&rep, "offer_sdp", r->sdp);
        else
            sm_reply_null(&rep, "offer_sdp");
        sm_reply_json(&rep, "tracks", items);
        json_decref(items);
    } else if (u->action == SM_PAYLOAD_ACTION_CLOSE) {
        json_t *items = json_array();
        const char *closed[MAX_TRACKS];
        size_t n = 0;
        for (size_t i = 0; i < r->n_tracks; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "mid", json_string(r->tracks[i].mid ? r->tracks[i].mid : ""));
            /* close_track_error: already closed, which is what was asked */
            bool ok = r->tracks[i].error_code == NULL ||
                      strcmp(r->tracks[i].error_code, "close_track_error") == 0;
            if (!ok)
                json_object_set_new(o, "error", json_string(r->tracks[i].error_code));
            else if (n < MAX_TRACKS && r->tracks[i].mid)
                closed[n++] = r->tracks[i].mid;
            json_array_append_new(items, o);
        }
        if (u->is_sub)
            sm_rooms_pulled(ss->srv->rooms, u->room_id, s->client_id, s->serial, closed, n, false);
        else /* stopped publications are not offered to later joiners any more */
            sm_rooms_unpublish(ss->srv->rooms, u->room_id, s->client_id, s->serial, closed, n);
        sm_reply_str(&rep, "action", "close");
        sm_reply_json(&rep, "tracks", items);
        json_decref(items);
    } else {
        sm_reply_str(&rep, "action", "answer");
    }
    sm__sess_reply(s, &rep, u->uuid, SM_MSG_SESSION_UPDATE_ACK, "session_id", u->sid);
    sm_rooms_touch(ss->srv->rooms, u->room_id, strlen(u->room_id), (int64_t)sm_clock_mono_ms());
    upd_finish(u);
}

void sm__sfu_on_session_update(session_t *s, const sm_frame_t *f,
                               const sm_payload_session_update_t *p)
{
    sm_sessions_t *ss = s->ss;
    upd_t *u = sm_xcalloc(1, sizeof *u);
    u->s = s;
    memcpy(u->uuid, f->uuid, sizeof u->uuid);
    u->sid = sm__sess_dup(p->session_id);
    u->action = p->action;
    if (sm_rooms_find_sfu_session(ss->srv->rooms, s->client_id, s->serial, u->sid, &u->room_id,
                                  &u->is_sub) != 0) {
        sm__sess_error(s, f->uuid, 404, "session_id is not one of this client's SFU sessions",
                       "session_id", u->sid);
        upd_free(u);
        return;
    }
    int rc;
    if (p->action == SM_PAYLOAD_ACTION_ANSWER) {
        char *answer = sm__sess_dup(p->answer_sdp);
        rc = sm_cf_renegotiate(ss->srv->cf, u->sid, answer, on_update_done, u);
        free(answer);
    } else if (p->action == SM_PAYLOAD_ACTION_PULL) {
        if (!u->is_sub) {
            sm__sess_error(s, f->uuid, 400, "pull: use the subscribe session_id", "session_id",
                           u->sid);
            upd_free(u);
            return;
        }
        /* Each publication to pull: {session_id, track_name} strings. */
        size_t k;
        json_t *t;
        json_array_foreach(p->tracks, k, t)
        {
            const char *sid = json_string_value(json_object_get(t, "session_id"));
            const char *name = json_string_value(json_object_get(t, "track_name"));
            if (sid == NULL || *sid == '\0' || name == NULL || *name == '\0' || k >= MAX_TRACKS) {
                sm__sess_bad_frame(s, f->uuid,
                                   k >= MAX_TRACKS
                                       ? "tracks: at most 64 tracks per pull"
                                       : "tracks: each item needs session_id and track_name "
                                         "strings",
                                   "tracks");
                upd_free(u);
                return;
            }
        }
        u->tracks = json_incref(p->tracks);
        u->deadline = uv_now(sm_worker_loop(ss->w)) + ss->cfg->webrtc_cloudflare_timeout;
        rc = submit_pull(u);
    } else {
        const char *mids[MAX_TRACKS];
        size_t n = 0, i;
        json_t *m;
        json_array_foreach(p->mids, i, m)
        {
            const char *mid = json_string_value(m);
            if (mid == NULL || *mid == '\0' || n == MAX_TRACKS) {
                sm__sess_bad_frame(s, f->uuid,
                                   n == MAX_TRACKS ? "mids: at most 64 mids per close"
                                                   : "mids: each item must be a non-empty string",
                                   "mids");
                upd_free(u);
                return;
            }
            mids[n++] = mid;
        }
        rc = sm_cf_close(ss->srv->cf, u->sid, mids, n, true, on_update_done, u);
    }
    if (rc != 0) {
        sm__sess_error(s, f->uuid, 503, "SFU unavailable, try again later", "session_id", u->sid);
        upd_free(u);
        return;
    }
    sm_worker_op_begin(ss->w);
    s->op = sm__sess_op_new(s, OP_SESSION_UPDATE, f->uuid);
}
