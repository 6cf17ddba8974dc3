/*
 * Room table: rooms by id, members in join order, and an index from client
 * id to the rooms it belongs to (for leave-all on disconnect and for moving
 * memberships on resume).  One mutex; see room.h.
 */
#include "rooms/room.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/hmap.h"

typedef struct {
    char *client_id;
    uint64_t serial;
    sm_handle_t conn;
    bool pending;
    /* cloudflare mode */
    char *pub_sid, *sub_sid;
    sm_room_track_t *pub;
    size_t n_pub;
    char **pulled;
    size_t n_pulled, cap_pulled;
} member_t;

typedef struct {
    sm_hnode_t node;
    char *id;
    size_t idlen;
    bool pending;
    int max_participants;
    char *offer_sdp; /* NULL once handed to the first joiner */
    int64_t last_activity_ms;
    member_t *members;
    size_t n, cap;
} room_t;

typedef struct {
    sm_hnode_t node;
    char *client_id;
    size_t len;
    room_t **rooms;
    size_t n, cap;
} cidx_t;

struct sm_rooms_s {
    pthread_mutex_t lock;
    sm_hmap_t rooms;
    sm_hmap_t clients;
    unsigned max_rooms;
    size_t reserved; /* rooms including pending ones */
    _Atomic size_t committed;
};

typedef struct {
    const char *s;
    size_t len;
} key_t_;

static bool room_eq(const sm_hnode_t *n, const void *k)
{
    const room_t *r = (const room_t *)n;
    const key_t_ *key = k;
    return r->idlen == key->len && memcmp(r->id, key->s, key->len) == 0;
}

static bool cidx_eq(const sm_hnode_t *n, const void *k)
{
    const cidx_t *c = (const cidx_t *)n;
    const key_t_ *key = k;
    return c->len == key->len && memcmp(c->client_id, key->s, key->len) == 0;
}

static room_t *find_room(sm_rooms_t *r, const char *id, size_t len)
{
    key_t_ k = {id, len};
    return (room_t *)sm_hmap_find(&r->rooms, sm_hash_bytes(id, len), room_eq, &k);
}

static cidx_t *find_client(sm_rooms_t *r, const char *id, size_t len)
{
    key_t_ k = {id, len};
    return (cidx_t *)sm_hmap_find(&r->clients, sm_hash_bytes(id, len), cidx_eq, &k);
}

static void index_add(sm_rooms_t *r, const char *client_id, room_t *room)
{
    size_t len = strlen(client_id);
    cidx_t *c = find_client(r, client_id, len);
    if (c == NULL) {
        c = sm_xcalloc(1, sizeof *c);
        c->client_id = sm_xstrdup(client_id);
        c->len = len;
        sm_hmap_insert(&r->clients, &c->node, sm_hash_bytes(client_id, len));
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->rooms = sm_xrealloc(c->rooms, c->cap * sizeof *c->rooms);
    }
    c->rooms[c->n++] = room;
}

static void index_remove(sm_rooms_t *r, const char *client_id, room_t *room)
{
    cidx_t *c = find_client(r, client_id, strlen(client_id));
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        if (c->rooms[i] == room) {
            c->rooms[i] = c->rooms[--c->n];
            break;
        }
    }
    if (c->n == 0) {
        sm_hmap_remove(&r->clients, &c->node);
        free(c->rooms);
        free(c->client_id);
        free(c);
    }
}

static void tracks_free(sm_room_track_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].track_name);
        free(t[i].mid);
    }
    free(t);
}

static void member_sfu_clear(member_t *m)
{
    free(m->pub_sid);
    free(m->sub_sid);
    tracks_free(m->pub, m->n_pub);
    for (size_t i = 0; i < m->n_pulled; i++)
        free(m->pulled[i]);
    free(m->pulled);
    m->pub_sid = m->sub_sid = NULL;
    m->pub = NULL;
    m->pulled = NULL;
    m->n_pub = m->n_pulled = m->cap_pulled = 0;
}

static void add_pulled(member_t *m, const char *mid)
{
    if (m->n_pulled == m->cap_pulled) {
        m->cap_pulled = m->cap_pulled ? m->cap_pulled * 2 : 4;
        m->pulled = sm_xrealloc(m->pulled, m->cap_pulled * sizeof *m->pulled);
    }
    m->pulled[m->n_pulled++] = sm_xstrdup(mid);
}

static void member_sfu_set(member_t *m, const sm_room_sfu_t *sfu)
{
    if (sfu == NULL)
        return;
    member_sfu_clear(m);
    m->pub_sid = sfu->pub_sid ? sm_xstrdup(sfu->pub_sid) : NULL;
    m->sub_sid = sfu->sub_sid ? sm_xstrdup(sfu->sub_sid) : NULL;
    if (sfu->n_pub) {
        m->pub = sm_xcalloc(sfu->n_pub, sizeof *m->pub);
        for (size_t i = 0; i < sfu->n_pub; i++) {
            m->pub[i].track_name = sm_xstrdup(sfu->pub[i].track_name);
            m->pub[i].mid = sm_xstrdup(sfu->pub[i].mid ? sfu->pub[i].mid : "");
        }
        m->n_pub = sfu->n_pub;
    }
    for (size_t i = 0; i < sfu->n_pulled; i++)
        add_pulled(m, sfu->pulled[i]);
}

/* Move a leaving member's SFU state into the result (the caller closes its
 * tracks and names the stopped publications in participant_left). */
static void member_sfu_move(member_t *m, sm_room_result_t *res)
{
    res->pub_sid = m->pub_sid;
    res->sub_sid = m->sub_sid;
    res->pub = m->pub;
    res->n_pub = m->n_pub;
    res->pulled = m->pulled;
    res->n_pulled = m->n_pulled;
    m->pub_sid = m->sub_sid = NULL;
    m->pub = NULL;
    m->pulled = NULL;
    m->n_pub = m->n_pulled = m->cap_pulled = 0;
}

static member_t *find_member(room_t *room, const char *client_id, size_t *idx)
{
    for (size_t i = 0; i < room->n; i++) {
        if (strcmp(room->members[i].client_id, client_id) == 0) {
            if (idx)
                *idx = i;
            return &room->members[i];
        }
    }
    return NULL;
}

static void add_member(sm_rooms_t *r, room_t *room, const sm_member_ref_t *m, bool pending)
{
    if (room->n == room->cap) {
        room->cap = room->cap ? room->cap * 2 : 4;
        room->members = sm_xrealloc(room->members, room->cap * sizeof *room->members);
    }
    member_t *mm = &room->members[room->n++];
    memset(mm, 0, sizeof *mm);
    mm->client_id = sm_xstrdup(m->client_id);
    mm->serial = m->serial;
    mm->conn = m->conn;
    mm->pending = pending;
    index_add(r, m->client_id, room);
}

static void remove_member_at(sm_rooms_t *r, room_t *room, size_t i)
{
    index_remove(r, room->members[i].client_id, room);
    member_sfu_clear(&room->members[i]);
    free(room->members[i].client_id);
    /* Keep join order: participants lists are ordered. */
    memmove(&room->members[i], &room->members[i + 1], (room->n - i - 1) * sizeof *room->members);
    room->n--;
}

static void room_destroy(sm_rooms_t *r, room_t *room)
{
    while (room->n > 0)
        remove_member_at(r, room, room->n - 1);
    sm_hmap_remove(&r->rooms, &room->node);
    if (!room->pending)
        atomic_fetch_sub_explicit(&r->committed, 1, memory_order_relaxed);
    r->reserved--;
    free(room->members);
    free(room->offer_sdp);
    free(room->id);
    free(room);
}

/* Fill res with the other committed members' live connections and, when
 * with_participants, every committed member's id. */
static void collect(room_t *room, const char *except, sm_room_result_t *res, bool with_participants)
{
    res->notify = sm_xcalloc(room->n ? room->n : 1, sizeof *res->notify);
    res->n_notify = 0;
    if (with_participants) {
        /* + 1: NULL-terminated, so that it goes into a reply as it is */
        res->participants = sm_xcalloc(room->n + 1, sizeof *res->participants);
        res->n_participants = 0;
    }
    for (size_t i = 0; i < room->n; i++) {
        member_t *m = &room->members[i];
        if (m->pending)
            continue;
        if (with_participants)
            res->participants[res->n_participants++] = sm_xstrdup(m->client_id);
        if (except && strcmp(m->client_id, except) == 0)
            continue;
        if (m->conn != SM_HANDLE_NONE)
            res->notify[res->n_notify++] = m->conn;
    }
}

void sm_room_result_free(sm_room_result_t *res)
{
    if (res == NULL)
        return;
    for (size_t i = 0; i < res->n_participants; i++)
        free(res->participants[i]);
    free(res->participants);
    free(res->notify);
    free(res->offer_sdp);
    free(res->room_id);
    free(res->pub_sid);
    free(res->sub_sid);
    tracks_free(res->pub, res->n_pub);
    for (size_t i = 0; i < res->n_pulled; i++)
        free(res->pulled[i]);
    free(res->pulled);
    for (size_t i = 0; i < res->n_closes; i++) {
        for (size_t k = 0; k < res->closes[i].n; k++)
            free(res->closes[i].mids[k]);
        free(res->closes[i].mids);
        free(res->closes[i].sid);
    }
    free(res->closes);
    memset(res, 0, sizeof *res);
}

sm_rooms_t *sm_rooms_new(unsigned max_rooms)
{
    sm_rooms_t *r = sm_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    sm_hmap_init(&r->rooms, 256);
    sm_hmap_init(&r->clients, 256);
    r->max_rooms = max_rooms;
    atomic_init(&r->committed, 0);
    return r;
}

void sm_rooms_free(sm_rooms_t *r)
{
    if (r == NULL)
        return;
    size_t b = 0;
    sm_hnode_t *next = NULL, *n;
    while ((n = sm_hmap_next(&r->rooms, &b, &next)) != NULL)
        room_destroy(r, (room_t *)n);
    sm_hmap_destroy(&r->rooms);
    sm_hmap_destroy(&r->clients);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int sm_rooms_create(sm_rooms_t *r, const char *room_id, const sm_member_ref_t *creator,
                    int max_participants, const char *offer_sdp, int64_t now_ms)
{
    size_t len = strlen(room_id);
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    if (find_room(r, room_id, len)) {
        rc = SM_ECONFLICT;
    } else if (r->reserved >= r->max_rooms) {
        rc = SM_EUNAVAIL;
    } else {
        room_t *room = sm_xcalloc(1, sizeof *room);
        room->id = sm_xstrdup(room_id);
        room->idlen = len;
        room->pending = true;
        room->max_participants = max_participants;
        room->offer_sdp = offer_sdp ? sm_xstrdup(offer_sdp) : NULL;
        room->last_activity_ms = now_ms;
        sm_hmap_insert(&r->rooms, &room->node, sm_hash_bytes(room_id, len));
        r->reserved++;
        add_member(r, room, creator, true);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void sm_rooms_create_done(sm_rooms_t *r, const char *room_id, bool ok, const sm_room_sfu_t *sfu)
{
    pthread_mutex_lock(&r->lock);
    room_t *room = find_room(r, room_id, strlen(room_id));
    if (room && room->pending) {
        if (ok) {
            room->pending = false;
            if (room->n > 0) {
                room->members[0].pending = false;
                member_sfu_set(&room->members[0], sfu);
            }
            atomic_fetch_add_explicit(&r->committed, 1, memory_order_relaxed);
        } else {
            room_destroy(r, room);
        }
    }
    pthread_mutex_unlock(&r->lock);
}

int sm_rooms_join(sm_rooms_t *r, const char *room_id, const sm_member_ref_t *m)
{
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    room_t *room = find_room(r, room_id, strlen(room_id));
    if (room == NULL || room->pending)
        rc = SM_ENOTFOUND;
    else if (find_member(room, m->client_id, NULL))
        rc = SM_ECONFLICT;
    else if ((int)room->n >= room->max_participants)
        rc = SM_EFULL;
    else
        add_member(r, room, m, true);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

bool sm_rooms_join_done(sm_rooms_t *r, const char *room_id, const char *client_id, bool ok,
                        const sm_room_sfu_t *sfu, sm_room_result_t *res)
{
    bool committed = false;
    memset(res, 0, sizeof *res);
    pthread_mutex_lock(&r->lock);
    room_t *room = find_room(r, room_id, strlen(room_id));
    size_t i;
    member_t *m = room ? find_member(room, client_id, &i) : NULL;
    /* A pending member matches by client id alone: a resume may have moved
     * it to the new session (sm_rooms_update_member) while the store wrote
     * it; the membership follows the client either way. */
    if (m && m->pending) {
        if (ok) {
            m->pending = false;
            member_sfu_set(m, sfu);
            committed = true;
            collect(room, client_id, res, true);
            if (room->offer_sdp) {
                res->offer_sdp = room->offer_sdp; /* first joiner takes it */
                room->offer_sdp = NULL;
            }
        } else {
            remove_member_at(r, room, i);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return committed;
}

int sm_rooms_leave(sm_rooms_t *r, const char *room_id, const char *client_id, uint64_t serial,
                   sm_room_result_t *res)
{
    memset(res, 0, sizeof *res);
    int rc = SM_ENOTFOUND;
    pthread_mutex_lock(&r->lock);
    room_t *room = find_room(r, room_id, strlen(room_id));
    size_t i;
    member_t *m = room ? find_member(room, client_id, &i) : NULL;
    if (m && !m->pending && m->serial == serial) {
        member_sfu_move(m, res);
        remove_member_at(r, room, i);
        collect(room, NULL, res, false);
        bool any_committed = false;
        for (size_t k = 0; k < room->n; k++)
            any_committed |= !room->members[k].pending;
        if (!any_committed) {
            /* Last one out closes the room (pending joiners lose it too). */
            res->closed = true;
            room_destroy(r, room);
        }
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

size_t sm_rooms_of(sm_rooms_t *r, const char *client_id, uint64_t serial, char ***ids)
{
    size_t n = 0;
    *ids = NULL;
    pthread_mutex_lock(&r->lock);
    cidx_t *c = find_client(r, client_id, strlen(client_id));
    if (c) {
        *ids = sm_xcalloc(c->n ? c->n : 1, sizeof **ids);
        for (size_t i = 0; i < c->n; i++) {
            member_t *m = find_member(c->rooms[i], client_id, NULL);
            if (m && !m->pending && m->serial == serial)
                (*ids)[n++] = sm_xstrdup(c->rooms[i]->id);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

size_t sm_rooms_update_member(sm_rooms_t *r, const char *client_id, uint64_t old_serial,
                              const sm_member_ref_t *to)
{
    size_t n = 0;
    pthread_mutex_lock(&r->lock);
    cidx_t *c = find_client(r, client_id, strlen(client_id));
    for (size_t i = 0; c && i < c->n; i++) {
        member_t *m = find_member(c->rooms[i], client_id, NULL);
        if (m && m->serial == old_serial) {
            m->serial = to->serial;
            m->conn = to->conn;
            n++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Whether the NUL-terminated id equals the len bytes at p. */
static bool id_eq(const char *id, const char *p, size_t len)
{
    return strlen(id) == len && memcmp(id, p, len) == 0;
}

/* On the SIGNAL path (routing.require_shared_room): no allocation under the
 * lock, ids are compared by length. */
bool sm_rooms_shared(sm_rooms_t *r, const char *a, size_t alen, const char *b, size_t blen)
{
    bool shared = false;
    pthread_mutex_lock(&r->lock);
    cidx_t *ca = find_client(r, a, alen);
    for (size_t i = 0; ca && i < ca->n && !shared; i++) {
        room_t *room = ca->rooms[i];
        bool has_a = false, has_b = false;
        for (size_t k = 0; k < room->n; k++) {
            if (room->members[k].pending)
                continue;
            if (id_eq(room->members[k].client_id, a, alen))
                has_a = true;
            else if (id_eq(room->members[k].client_id, b, blen))
                has_b = true;
        }
        shared = has_a && has_b;
    }
    pthread_mutex_unlock(&r->lock);
    return shared;
}

int sm_rooms_touch(sm_rooms_t *r, const char *room_id, size_t len, int64_t now_ms)
{
    int rc = SM_ENOTFOUND;
    pthread_mutex_lock(&r->lock);
    room_t *room = find_room(r, room_id, len);
    if (room && !room->pending) {
        room->last_activity_ms = now_ms;
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

size_t sm_rooms_reap_idle(sm_rooms_t *r, int64_t now_ms, int64_t idle_ms, sm_room_result_t **out)
{
    size_t n = 0, cap = 0;
    *out = NULL;
    pthread_mutex_lock(&r->lock);
    size_t b = 0;
    sm_hnode_t *next = NULL, *node;
    while ((node = sm_hmap_next(&r->rooms, &b, &next)) != NULL) {
        room_t *room = (room_t *)node;
        if (room->pending || now_ms - room->last_activity_ms < idle_ms)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = sm_xrealloc(*out, cap * sizeof **out);
        }
        sm_room_result_t *res = &(*out)[n++];
        memset(res, 0, sizeof *res);
        collect(room, NULL, res, true);
        res->room_id = sm_xstrdup(room->id);
        res->closes = sm_xcalloc(2 * room->n + 1, sizeof *res->closes);
        for (size_t i = 0; i < room->n; i++) {
            member_t *m = &room->members[i];
            res->sfu_sessions += (m->pub_sid ? 1u : 0u) + (m->sub_sid ? 1u : 0u);
            if (m->pub_sid && m->n_pub) {
                sm_room_close_t *c = &res->closes[res->n_closes++];
                c->sid = sm_xstrdup(m->pub_sid);
                c->mids = sm_xcalloc(m->n_pub, sizeof *c->mids);
                for (size_t k = 0; k < m->n_pub; k++)
                    c->mids[c->n++] = sm_xstrdup(m->pub[k].mid);
            }
            if (m->sub_sid && m->n_pulled) {
                sm_room_close_t *c = &res->closes[res->n_closes++];
                c->sid = sm_xstrdup(m->sub_sid);
                c->mids = sm_xcalloc(m->n_pulled, sizeof *c->mids);
                for (size_t k = 0; k < m->n_pulled; k++)
                    c->mids[c->n++] = sm_xstrdup(m->pulled[k]);
            }
        }
        res->closed = true;
        room_destroy(r, room);
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

void sm_rooms_free_closed(sm_room_result_t *res, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sm_room_result_free(&res[i]);
    free(res);
}

size_t sm_rooms_publications(sm_rooms_t *r, const char *room_id, const char *except_client,
                             sm_room_pub_t **out)
{
    size_t n = 0, cap = 0;
    *out = NULL;
    pthread_mutex_lock(&r->lock);
    room_t *room = find_room(r, room_id, strlen(room_id));
    for (size_t i = 0; room && i < room->n; i++) {
        member_t *m = &room->members[i];
        if (m->pending || m->pub_sid == NULL ||
            (except_client && strcmp(m->client_id, except_client) == 0))
            continue;
        for (size_t k = 0; k < m->n_pub; k++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                *out = sm_xrealloc(*out, cap * sizeof **out);
            }
            (*out)[n].client_id = sm_xstrdup(m->client_id);
            (*out)[n].session_id = sm_xstrdup(m->pub_sid);
            (*out)[n].track_name = sm_xstrdup(m->pub[k].track_name);
            n++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

void sm_room_pubs_free(sm_room_pub_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].client_id);
        free(p[i].session_id);
        free(p[i].track_name);
    }
    free(p);
}

/* The committed member (client_id, serial) of room_id, under the lock. */
static member_t *member_of(sm_rooms_t *r, const char *room_id, const char *client_id,
                           uint64_t serial)
{
    room_t *room = find_room(r, room_id, strlen(room_id));
    member_t *m = room ? find_member(room, client_id, NULL) : NULL;
    return m && !m->pending && m->serial == serial ? m : NULL;
}

int sm_rooms_set_sub(sm_rooms_t *r, const char *room_id, const char *client_id, uint64_t serial,
                     const char *sub_sid)
{
    int rc = SM_ENOTFOUND;
    pthread_mutex_lock(&r->lock);
    member_t *m = member_of(r, room_id, client_id, serial);
    if (m) {
        free(m->sub_sid);
        m->sub_sid = sm_xstrdup(sub_sid);
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int sm_rooms_pulled(sm_rooms_t *r, const char *room_id, const char *client_id, uint64_t serial,
                    const char *const *mids, size_t n, bool add)
{
    int rc = SM_ENOTFOUND;
    pthread_mutex_lock(&r->lock);
    member_t *m = member_of(r, room_id, client_id, serial);
    if (m) {
        for (size_t i = 0; i < n; i++) {
            if (add) {
                add_pulled(m, mids[i]);
                continue;
            }
            for (size_t k = 0; k < m->n_pulled; k++) {
                if (strcmp(m->pulled[k], mids[i]) == 0) {
                    free(m->pulled[k]);
                    m->pulled[k] = m->pulled[--m->n_pulled];
                    break;
                }
            }
        }
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int sm_rooms_unpublish(sm_rooms_t *r, const char *room_id, const char *client_id, uint64_t serial,
                       const char *const *mids, size_t n)
{
    int rc = SM_ENOTFOUND;
    pthread_mutex_lock(&r->lock);
    member_t *m = member_of(r, room_id, client_id, serial);
    if (m) {
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < m->n_pub; k++) {
                if (strcmp(m->pub[k].mid, mids[i]) == 0) {
                    free(m->pub[k].track_name);
                    free(m->pub[k].mid);
                    /* Keep publication order: later joiners pull in it. */
                    memmove(&m->pub[k], &m->pub[k + 1], (m->n_pub - k - 1) * sizeof *m->pub);
                    m->n_pub--;
                    break;
                }
            }
        }
        rc = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int sm_rooms_find_sfu_session(sm_rooms_t *r, const char *client_id, uint64_t serial,
                              const char *sid, char **room_id, bool *is_sub)
{
    int rc = SM_ENOTFOUND;
    pthread_mutex_lock(&r->lock);
    cidx_t *c = find_client(r, client_id, strlen(client_id));
    for (size_t i = 0; c && i < c->n && rc != 0; i++) {
        member_t *m = find_member(c->rooms[i], client_id, NULL);
        if (m == NULL || m->pending || m->serial != serial)
            continue;
        bool sub = m->sub_sid && strcmp(m->sub_sid, sid) == 0;
        if (sub || (m->pub_sid && strcmp(m->pub_sid, sid) == 0)) {
            *is_sub = sub;
            *room_id = sm_xstrdup(c->rooms[i]->id);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

size_t sm_rooms_count(sm_rooms_t *r)
{
    return atomic_load_explicit(&r->committed, memory_order_relaxed);
}
