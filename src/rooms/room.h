/*
 * Rooms (p2p mode, DECISIONS §6): membership groups shared by all workers.
 *
 * Owns every room, its members and a client_id -> rooms index, behind one
 * mutex (room operations are far rarer than SIGNALs; the SIGNAL hot path only
 * takes it when routing.require_shared_room is on).  Any worker thread may
 * call every function.  No I/O and no callbacks under the lock: functions
 * that change membership hand back, in an sm_room_result_t, what the caller
 * must tell whom (connection handles of the members to notify, the
 * participant list, the creator's offer), and the caller sends the frames.
 *
 * Two-phase changes keep "nothing half-done" with an asynchronous store:
 * create and join first reserve (a PENDING room or member: counted against
 * the limits, invisible to others), then commit or abort when the store has
 * answered.  Members are identified by client_id plus the session serial
 * that holds the registration, so a session that lost its registration to a
 * resume cannot remove the new holder's memberships.
 */
#ifndef SM_ROOMS_ROOM_H
#define SM_ROOMS_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/handle.h"

typedef struct sm_rooms_s sm_rooms_t;

/* Who a member is. */
typedef struct {
    const char *client_id;
    uint64_t serial;  /* session serial holding the registration */
    sm_handle_t conn; /* SM_HANDLE_NONE while detached */
} sm_member_ref_t;

/* A published SFU track (cloudflare mode). */
typedef struct {
    char *track_name;
    char *mid;
} sm_room_track_t;

/* A publication another member can pull: its publisher's SFU session. */
typedef struct {
    char *client_id;
    char *session_id;
    char *track_name;
} sm_room_pub_t;

/* SFU state of a member (cloudflare mode); all NULL/0 in p2p mode. */
typedef struct {
    const char *pub_sid;        /* publish SFU session */
    const sm_room_track_t *pub; /* its published tracks */
    size_t n_pub;
    const char *sub_sid;       /* subscribe SFU session */
    const char *const *pulled; /* mids pulled on the subscribe session */
    size_t n_pulled;
} sm_room_sfu_t;

/* What a membership change produced (owned; free with sm_room_result_free). */
typedef struct {
    sm_handle_t *notify; /* live connections of the other members */
    size_t n_notify;
    char **participants; /* committed members' client ids, in join order,
                            NULL-terminated (when not NULL itself) */
    size_t n_participants;
    char *offer_sdp; /* the creator's offer, for the first joiner only */
    bool closed;     /* the last member left: the room is gone */
    char *room_id;   /* for results about a room the caller did not name */
    /* Leave/close (cloudflare mode): the leaving member's SFU state, so the
     * caller can close its tracks and tell the others what stopped. */
    char *pub_sid, *sub_sid;
    sm_room_track_t *pub;
    size_t n_pub;
    char **pulled;
    size_t n_pulled;
    /* Idle close (cloudflare mode): every member's SFU sessions with the
     * mids to close on each (pub and sub sessions alike). */
    struct sm_room_close_s *closes;
    size_t n_closes;
    size_t sfu_sessions; /* SFU sessions the closed room's members held */
} sm_room_result_t;

typedef struct sm_room_close_s {
    char *sid;
    char **mids;
    size_t n;
} sm_room_close_t;

void sm_room_result_free(sm_room_result_t *res);

/* Main thread.  max_rooms: limit of rooms (limits.max_rooms). */
sm_rooms_t *sm_rooms_new(unsigned max_rooms);
void sm_rooms_free(sm_rooms_t *r);

/* Reserve room_id with the creator as its first member (role "sender").
 * 0; SM_ECONFLICT when it exists; SM_EUNAVAIL when max_rooms is reached. */
int sm_rooms_create(sm_rooms_t *r, const char *room_id, const sm_member_ref_t *creator,
                    int max_participants, const char *offer_sdp, int64_t now_ms);
/* Store answered: ok makes the room visible (with the creator's SFU state,
 * NULL in p2p mode); !ok removes it. */
void sm_rooms_create_done(sm_rooms_t *r, const char *room_id, bool ok, const sm_room_sfu_t *sfu);

/* Reserve a place for m.  0; SM_ENOTFOUND (no such room, or still pending);
 * SM_ECONFLICT (already a member); SM_EFULL (max_participants reached). */
int sm_rooms_join(sm_rooms_t *r, const char *room_id, const sm_member_ref_t *m);
/* Store answered.  On ok, fills res: members to notify (participant_joined),
 * the participant list (including m) and, for the first joiner, the offer,
 * and returns true.  Returns false when the member is not committed (!ok, or
 * the room closed meanwhile: the caller answers 404).  The pending member is
 * found by client_id (a resume may have given it another serial). */
bool sm_rooms_join_done(sm_rooms_t *r, const char *room_id, const char *client_id, bool ok,
                        const sm_room_sfu_t *sfu, sm_room_result_t *res);

/* ---- cloudflare mode ---- */

/* Publications of the room's committed members other than except_client
 * (NULL = all), in join order.  Returns the count (*out malloc'd; free with
 * sm_room_pubs_free). */
size_t sm_rooms_publications(sm_rooms_t *r, const char *room_id, const char *except_client,
                             sm_room_pub_t **out);
void sm_room_pubs_free(sm_room_pub_t *p, size_t n);
/* Record a member's subscribe session id (set once). 0 or SM_ENOTFOUND. */
int sm_rooms_set_sub(sm_rooms_t *r, const char *room_id, const char *client_id, uint64_t serial,
                     const char *sub_sid);
/* Add (add=true) or remove pulled mids of a member.  0 or SM_ENOTFOUND. */
int sm_rooms_pulled(sm_rooms_t *r, const char *room_id, const char *client_id, uint64_t serial,
                    const char *const *mids, size_t n, bool add);
/* Drop published tracks (by mid) of a member.  0 or SM_ENOTFOUND. */
int sm_rooms_unpublish(sm_rooms_t *r, const char *room_id, const char *client_id, uint64_t serial,
                       const char *const *mids, size_t n);
/* Which of the member's rooms an SFU session id belongs to.  0 with
 * *room_id (malloc'd) and *is_sub (sid is the subscribe session) filled;
 * SM_ENOTFOUND when it is none of the member's sessions. */
int sm_rooms_find_sfu_session(sm_rooms_t *r, const char *client_id, uint64_t serial,
                              const char *sid, char **room_id, bool *is_sub);

/* Remove a committed member.  0 and res (members to notify with
 * participant_left; res->closed when the room is now empty and was removed);
 * SM_ENOTFOUND when no such room or not a member with that serial. */
int sm_rooms_leave(sm_rooms_t *r, const char *room_id, const char *client_id, uint64_t serial,
                   sm_room_result_t *res);
/* Room ids the member (client_id, serial) is in (committed).  Returns the
 * count; *ids is malloc'd (free each and the array). */
size_t sm_rooms_of(sm_rooms_t *r, const char *client_id, uint64_t serial, char ***ids);

/* Point every membership of (client_id, old_serial) at m (resume takeover
 * or detach: m->serial may equal old_serial with another conn).  Returns the
 * number of memberships changed. */
size_t sm_rooms_update_member(sm_rooms_t *r, const char *client_id, uint64_t old_serial,
                              const sm_member_ref_t *m);

/* Whether a and b are committed members of a common room. */
bool sm_rooms_shared(sm_rooms_t *r, const char *a, size_t alen, const char *b, size_t blen);
/* Signaling activity in room_id (resets its idle clock).  0 or SM_ENOTFOUND. */
int sm_rooms_touch(sm_rooms_t *r, const char *room_id, size_t len, int64_t now_ms);
/* Remove every room idle since before now_ms - idle_ms; *ids gets their ids and
 * *res one result per room (members to notify with room_closed).  Returns the
 * count; free with sm_rooms_free_closed. */
size_t sm_rooms_reap_idle(sm_rooms_t *r, int64_t now_ms, int64_t idle_ms, sm_room_result_t **res);
void sm_rooms_free_closed(sm_room_result_t *res, size_t n);

/* Committed rooms, any thread. */
size_t sm_rooms_count(sm_rooms_t *r);

#endif
