/*
 * Private to src/session/ and src/router/: the session and store-operation
 * structs and the helpers the protocol handlers share.  Everything here
 * runs on the worker thread that owns the session.
 */
#ifndef SM_SESSION_SESSION_INTERNAL_H
#define SM_SESSION_SESSION_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <sm/proto.h>

#include "core/hmap.h"
#include "core/ratelimit.h"
#include "core/list.h"
#include "core/obuf.h"
#include "metrics/counters.h"
#include "proto/payload.h"
#include "reactor/msg.h"
#include "reactor/server.h"
#include "cloud/cloudflare.h"
#include "proto/reply.h"
#include "rooms/room.h"
#include "session/session.h"

#define BAD_FRAME_WINDOW_MS 60000
#define MAX_PENDING_FRAMES 1024 /* frames queued behind one store operation */

typedef enum { ST_AWAITING = 0, ST_CONNECTED, ST_REGISTERED } state_t;
typedef enum {
    OP_REGISTER = 1,
    OP_UNREGISTER,
    OP_RELEASE,
    OP_ROOM_CREATE,
    OP_ROOM_JOIN,
    OP_ROOM_LEAVE,
    OP_SESSION_UPDATE,
    OP_CONNECT_AUTH, /* auth_method=store: the client's token hash from the store */
} op_kind_t;

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
    /* Room operations. */
    char *room_id;
    int step;
    struct sm_sfu_ctx_s *sfu; /* cloudflare mode: SFU state of a create/join */
    /* CONNECT waiting for the store (auth_method=store). */
    char *resume_token;
    uint8_t token_digest[32];
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
    uint8_t resume_token[16]; /* given in CONNECT_ACK */
    uint8_t *store_digest;    /* auth_method=store: SHA-256 of the token the
                                 store accepted at CONNECT (NULL otherwise) */
    bool detached;            /* abrupt end: waiting for a resume */
    bool replaced;            /* registration taken over: no cleanup */
    bool gone_emitted;        /* client.disconnected sent */
    bool detach_after_op;     /* connection dropped during a store operation */
    sm_bucket_t rate;         /* limits.message_rate */
    uint32_t rate_refused;    /* frames refused in a row */
    sm_list_t dnode;          /* in ss->detached */
    uint64_t detach_deadline;
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
    sm_list_t detached; /* ordered by deadline (one fixed window) */
    size_t ndetached;   /* its length (sm_sessions_count runs every loop turn) */
    uv_timer_t detach_timer;
    uv_timer_t reap_timer; /* worker 0: idle rooms */
    int closing;           /* handles still closing at free */
};

/* Send a frame to the session's connection (dropped when it is gone);
 * counts it under `type`.  Takes the reference to b. */
void sm__sess_send(session_t *s, sm_obuf_t *b, uint8_t type, uint16_t flags, uint32_t arg);
/* Finish an ACK and send it; an ACK that outgrew a frame (it carries SDP or
 * other data from elsewhere) is answered ERROR 413 "reply too large" with
 * details {dkey: dval} instead, and logged.  What the request did stands. */
void sm__sess_reply(session_t *s, sm_reply_t *r, const uint8_t *uuid, uint8_t type,
                    const char *dkey, const char *dval);
/* ERROR `code` echoing uuid, with one optional detail. */
void sm__sess_error(session_t *s, const uint8_t *uuid, int code, const char *msg, const char *dkey,
                    const char *dval);
/* ERROR 400 for a malformed frame, counted for limits.max_bad_frames. */
void sm__sess_bad_frame(session_t *s, const uint8_t *uuid, const char *msg, const char *field);
/* Check order steps 4 and 5 (client_id is the session's, auth_token valid
 * when given).  Sends the error and returns false on failure. */
bool sm__sess_check_identity(session_t *s, const sm_frame_t *f, sm_payload_str_t cid,
                             sm_payload_str_t token);
/* Check order step 6 for messages that need a registration: sends ERROR
 * 401 "client not registered" and returns false when s is not registered. */
bool sm__sess_require_registered(session_t *s, const sm_frame_t *f);
op_t *sm__sess_op_new(session_t *s, op_kind_t kind, const uint8_t *uuid);
void sm__sess_op_free(op_t *op);
/* The session's operation is over: continue with its waiting frames (or its
 * end). */
void sm__sess_op_done(session_t *s);
char *sm__sess_dup(sm_payload_str_t v);

/* session_rooms.c */
void sm__rooms_on_create(session_t *s, const sm_frame_t *f, const json_t *root);
void sm__rooms_on_join(session_t *s, const sm_frame_t *f, const json_t *root);
void sm__rooms_on_leave(session_t *s, const sm_frame_t *f, const json_t *root);
/* One ROOM_EVENT frame {event, room_id, client_id?, reason?, tracks?,
 * timestamp}, encoded once, to every connection in res->notify; "tracks"
 * lists (sid, tracks[i].track_name) when sid is given and n > 0. */
void sm__rooms_broadcast(sm_sessions_t *ss, const sm_room_result_t *res, const char *event,
                         const char *room_id, const char *client_id, const char *reason,
                         const char *sid, const sm_room_track_t *tracks, size_t n);
/* Leave every room of the session's registration, with participant_left
 * events and store updates that nobody waits for. */
void sm__rooms_leave_all(session_t *s);
/* Worker 0 only: close idle rooms (webrtc.session_timeout). */
void sm__rooms_reap(sm_sessions_t *ss);

/* session_rooms.c, continuations for the SFU steps (session_sfu.c) */
void sm__rooms_create_store(op_t *op);
void sm__rooms_create_failed(op_t *op, int status);
void sm__rooms_join_store(op_t *op);
void sm__rooms_join_failed(op_t *op, int status);

/* session_sfu.c (webrtc.mode = cloudflare) */
bool sm__sfu_enabled(const sm_sessions_t *ss);
/* The sending audio/video m-sections of an SDP (what can be published). */
size_t sm__sfu_publishable(const char *sdp, size_t len, sm_sdp_media_t *out, size_t cap);
/* ROOM_CREATE / ROOM_JOIN: the SFU steps before the store steps.  They end by
 * calling sm__rooms_{create,join}_store (success) or _failed. */
void sm__sfu_create(op_t *op, const char *offer_sdp, size_t len);
void sm__sfu_join(op_t *op, const char *offer_sdp, size_t len);
/* After a failed store step: close what the SFU steps opened. */
void sm__sfu_discard(op_t *op);
/* The member's SFU state for the room table (valid while op lives). */
void sm__sfu_state(op_t *op, sm_room_sfu_t *view);
/* The member was committed with that state: its sessions are the table's. */
void sm__sfu_committed(op_t *op);
/* Add the SFU fields to a ROOM_CREATE_ACK / ROOM_JOIN_ACK being built. */
void sm__sfu_ack_create(op_t *op, sm_reply_t *r);
void sm__sfu_ack_join(op_t *op, sm_reply_t *r);
/* After a join committed: tracks_published to the others (res->notify). */
void sm__sfu_announce(op_t *op, const sm_room_result_t *res);
void sm__sfu_ctx_free(struct sm_sfu_ctx_s *c);
/* A member left (its SFU state is in the leave result): close its tracks. */
void sm__sfu_close_left(sm_sessions_t *ss, const sm_room_result_t *res);
/* Idle close: close every member's tracks. */
void sm__sfu_close_all(sm_sessions_t *ss, const sm_room_result_t *res);
/* SESSION_UPDATE from a registered session whose payload p (borrowed from
 * the frame's JSON tree) session.c has validated. */
void sm__sfu_on_session_update(session_t *s, const sm_frame_t *f,
                               const sm_payload_session_update_t *p);

/* router/signal.c */
void sm__signal_on_frame(session_t *s, const sm_frame_t *f, const json_t *root);

#endif
