/*
 * Memory store backend: registrations, rooms and client credentials in
 * string-keyed hash tables under one mutex; nothing survives the process.  For tests and for
 * single-instance runs that need no persistence.
 *
 * Each operation runs to the end inside the submitting call (it cannot
 * fail, so there is nothing to retry) and is completed after the mutex is
 * released; the core posts the completion to the caller's taskq, so the
 * callback still runs later on the caller's loop, as with sqlite.
 */
#include "store/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

/* ---- A small chained hash table, keyed by a string the value owns ------- */

typedef struct entry_s {
    struct entry_s *next;
    const char *key; /* points into the value */
    uint32_t hash;
    void *val;
} entry_t;

typedef struct {
    entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t n;
} map_t;

#define MAP_INITIAL_BUCKETS 64 /* a few KiB; grows by doubling at load 1 */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static void map_init(map_t *m)
{
    m->nbuckets = MAP_INITIAL_BUCKETS;
    m->buckets = sm_xcalloc(m->nbuckets, sizeof m->buckets[0]);
    m->n = 0;
}

/* The link that points at key's entry, or the NULL link ending its chain. */
static entry_t **map_slot(map_t *m, const char *key)
{
    uint32_t h = hash_str(key);
    entry_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void *map_get(map_t *m, const char *key)
{
    entry_t *e = *map_slot(m, key);
    return e ? e->val : NULL;
}

static void map_grow(map_t *m)
{
    size_t nb = m->nbuckets * 2;
    entry_t **b = sm_xcalloc(nb, sizeof b[0]);
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry_t *e = m->buckets[i];
        while (e) {
            entry_t *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

/* key must not be present; it must live as long as val. */
static void map_insert(map_t *m, const char *key, void *val)
{
    if (m->n >= m->nbuckets)
        map_grow(m);
    entry_t *e = sm_xmalloc(sizeof *e);
    e->key = key;
    e->hash = hash_str(key);
    e->val = val;
    e->next = m->buckets[e->hash & (m->nbuckets - 1)];
    m->buckets[e->hash & (m->nbuckets - 1)] = e;
    m->n++;
}

/* Unlink the entry *pp points at; returns its value. */
static void *map_unlink(map_t *m, entry_t **pp)
{
    entry_t *e = *pp;
    void *val = e->val;
    *pp = e->next;
    free(e);
    m->n--;
    return val;
}

/* ---- Backend ------------------------------------------------------------ */

typedef struct {
    sm_room_rec_t rec;
    sm_room_member_t *members; /* in the order they were added */
    size_t n, cap;
} mroom_t;

typedef struct {
    pthread_mutex_t lock;
    map_t regs;    /* client_id -> sm_registration_t * */
    map_t rooms;   /* room_id -> mroom_t * */
    map_t clients; /* client_id -> sm_client_rec_t * */
} mem_store_t;

static void reg_free(sm_registration_t *r)
{
    sm_store_reg_clear(r);
    free(r);
}

static void client_free(sm_client_rec_t *c)
{
    free(c->client_id);
    free(c->token_sha256);
    free(c);
}

static void member_clear(sm_room_member_t *m)
{
    free(m->room_id);
    free(m->client_id);
    free(m->role);
}

static void room_free(mroom_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        member_clear(&r->members[i]);
    free(r->members);
    sm_store_room_clear(&r->rec);
    free(r);
}

/* Index of client_id in r's members, or r->n. */
static size_t member_find(const mroom_t *r, const char *client_id)
{
    size_t i = 0;
    while (i < r->n && strcmp(r->members[i].client_id, client_id) != 0)
        i++;
    return i;
}

static void member_remove_at(mroom_t *r, size_t i)
{
    member_clear(&r->members[i]);
    memmove(&r->members[i], &r->members[i + 1], (r->n - i - 1) * sizeof r->members[0]);
    r->n--;
}

static int mem_open(const sm_config_t *cfg, void **impl, char *err, size_t errlen)
{
    (void)cfg;
    (void)err;
    (void)errlen;
    mem_store_t *m = SM_NEW(mem_store_t);
    pthread_mutex_init(&m->lock, NULL);
    map_init(&m->regs);
    map_init(&m->rooms);
    map_init(&m->clients);
    *impl = m;
    return 0;
}

static void mem_close(void *impl)
{
    mem_store_t *m = impl;
    for (size_t i = 0; i < m->regs.nbuckets; i++)
        while (m->regs.buckets[i])
            reg_free(map_unlink(&m->regs, &m->regs.buckets[i]));
    for (size_t i = 0; i < m->rooms.nbuckets; i++)
        while (m->rooms.buckets[i])
            room_free(map_unlink(&m->rooms, &m->rooms.buckets[i]));
    for (size_t i = 0; i < m->clients.nbuckets; i++)
        while (m->clients.buckets[i])
            client_free(map_unlink(&m->clients, &m->clients.buckets[i]));
    free(m->regs.buckets);
    free(m->rooms.buckets);
    free(m->clients.buckets);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void mem_cleanup_instance(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    const char *inst = req->instance_id;
    unsigned nregs = 0, nrooms = 0;
    pthread_mutex_lock(&m->lock);
    /* Rooms first, so the membership sweep below only visits survivors. */
    for (size_t i = 0; i < m->rooms.nbuckets; i++) {
        entry_t **pp = &m->rooms.buckets[i];
        while (*pp) {
            mroom_t *r = (*pp)->val;
            if (r->rec.instance_id && strcmp(r->rec.instance_id, inst) == 0) {
                room_free(map_unlink(&m->rooms, pp));
                nrooms++;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    for (size_t i = 0; i < m->regs.nbuckets; i++) {
        entry_t **pp = &m->regs.buckets[i];
        while (*pp) {
            sm_registration_t *g = (*pp)->val;
            if (!(g->instance_id && strcmp(g->instance_id, inst) == 0)) {
                pp = &(*pp)->next;
                continue;
            }
            /* This client is gone: drop its memberships in other instances' rooms. */
            for (size_t j = 0; j < m->rooms.nbuckets; j++) {
                for (entry_t *e = m->rooms.buckets[j]; e; e = e->next) {
                    mroom_t *r = e->val;
                    size_t k = member_find(r, g->client_id);
                    if (k < r->n)
                        member_remove_at(r, k);
                }
            }
            reg_free(map_unlink(&m->regs, pp));
            nregs++;
        }
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_set_removed(req, nregs, nrooms);
    sm_store_req_complete(req, 0);
}

static void mem_put_registration(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = 0;
    pthread_mutex_lock(&m->lock);
    if (map_get(&m->regs, req->reg.client_id)) {
        status = SM_ECONFLICT;
    } else {
        /* Move the request's copy into the table. */
        sm_registration_t *g = SM_NEW(sm_registration_t);
        *g = req->reg;
        memset(&req->reg, 0, sizeof req->reg);
        map_insert(&m->regs, g->client_id, g);
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

static void mem_delete_registration(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = SM_ENOTFOUND;
    pthread_mutex_lock(&m->lock);
    entry_t **pp = map_slot(&m->regs, req->client_id);
    if (*pp) {
        sm_registration_t *g = (*pp)->val;
        if (strcmp(g->session_id, req->session_id) == 0) {
            reg_free(map_unlink(&m->regs, pp));
            status = 0;
        }
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

static void mem_get_registration(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = SM_ENOTFOUND;
    pthread_mutex_lock(&m->lock);
    sm_registration_t *g = map_get(&m->regs, req->client_id);
    if (g) {
        sm_store_req_set_registration(req, g);
        status = 0;
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

static void mem_count_registrations(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    pthread_mutex_lock(&m->lock);
    sm_store_req_set_count(req, m->regs.n);
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, 0);
}

static void mem_put_room(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = 0;
    pthread_mutex_lock(&m->lock);
    if (map_get(&m->rooms, req->room.room_id)) {
        status = SM_ECONFLICT;
    } else {
        mroom_t *r = SM_NEW(mroom_t);
        r->rec = req->room;
        memset(&req->room, 0, sizeof req->room);
        map_insert(&m->rooms, r->rec.room_id, r);
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

static void mem_delete_room(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = SM_ENOTFOUND;
    pthread_mutex_lock(&m->lock);
    entry_t **pp = map_slot(&m->rooms, req->room_id);
    if (*pp) {
        room_free(map_unlink(&m->rooms, pp));
        status = 0;
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

static void mem_get_room(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = SM_ENOTFOUND;
    pthread_mutex_lock(&m->lock);
    mroom_t *r = map_get(&m->rooms, req->room_id);
    if (r) {
        sm_store_req_set_room(req, &r->rec);
        for (size_t i = 0; i < r->n; i++)
            sm_store_req_add_member(req, &r->members[i]);
        status = 0;
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

static void mem_add_member(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = 0;
    pthread_mutex_lock(&m->lock);
    mroom_t *r = map_get(&m->rooms, req->room_id);
    if (r == NULL) {
        status = SM_ENOTFOUND;
    } else if (member_find(r, req->client_id) < r->n) {
        status = SM_ECONFLICT;
    } else {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 4;
            r->members = sm_xrealloc(r->members, r->cap * sizeof r->members[0]);
        }
        sm_room_member_t *mb = &r->members[r->n++];
        mb->room_id = sm_xstrdup(req->room_id);
        mb->client_id = sm_xstrdup(req->client_id);
        mb->role = sm_xstrdup(req->role);
        mb->joined_at_ms = req->joined_at_ms;
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

static void mem_remove_member(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = SM_ENOTFOUND;
    pthread_mutex_lock(&m->lock);
    mroom_t *r = map_get(&m->rooms, req->room_id);
    if (r) {
        size_t i = member_find(r, req->client_id);
        if (i < r->n) {
            member_remove_at(r, i);
            status = 0;
        }
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

static void mem_get_client(void *impl, sm_store_req_t *req)
{
    mem_store_t *m = impl;
    int status = SM_ENOTFOUND;
    pthread_mutex_lock(&m->lock);
    sm_client_rec_t *c = map_get(&m->clients, req->client_id);
    if (c) {
        sm_store_req_set_client(req, c);
        status = 0;
    }
    pthread_mutex_unlock(&m->lock);
    sm_store_req_complete(req, status);
}

int sm__store_memory_set_client(void *impl, const char *client_id, const char *token_sha256_hex)
{
    mem_store_t *m = impl;
    if (client_id == NULL || client_id[0] == '\0' || !sm__store_sha256_hex_ok(token_sha256_hex))
        return SM_EINVAL;
    sm_client_rec_t *c = SM_NEW(sm_client_rec_t);
    c->client_id = sm_xstrdup(client_id);
    c->token_sha256 = sm_xstrdup(token_sha256_hex);
    pthread_mutex_lock(&m->lock);
    entry_t **pp = map_slot(&m->clients, client_id);
    if (*pp)
        client_free(map_unlink(&m->clients, pp));
    map_insert(&m->clients, c->client_id, c);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

const sm_store_vtable_t sm_store_backend_memory = {
    .name = "memory",
    .open = mem_open,
    .close = mem_close,
    .cleanup_instance = mem_cleanup_instance,
    .put_registration = mem_put_registration,
    .delete_registration = mem_delete_registration,
    .get_registration = mem_get_registration,
    .count_registrations = mem_count_registrations,
    .put_room = mem_put_room,
    .delete_room = mem_delete_room,
    .get_room = mem_get_room,
    .add_member = mem_add_member,
    .remove_member = mem_remove_member,
    .get_client = mem_get_client,
};
