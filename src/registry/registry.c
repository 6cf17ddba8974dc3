/*
 * Sharded client_id table.  A shard is picked by the keyed hash of the id, so
 * concurrent workers contend only when they touch ids in the same shard.
 */
#include "registry/registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/hmap.h"

typedef struct {
    sm_hnode_t node;
    sm_reg_holder_t h;
    size_t len;
    char id[]; /* NUL-terminated */
} entry_t;

typedef struct {
    pthread_mutex_t lock;
    sm_hmap_t map;
    char pad[64];
} shard_t;

struct sm_registry_s {
    shard_t *shards;
    unsigned mask;
    _Atomic size_t registered;
};

typedef struct {
    const char *id;
    size_t len;
} key_t_;

static bool eq(const sm_hnode_t *n, const void *k)
{
    const entry_t *e = (const entry_t *)n;
    const key_t_ *key = k;
    return e->len == key->len && memcmp(e->id, key->id, key->len) == 0;
}

sm_registry_t *sm_registry_new(unsigned shards)
{
    unsigned n = 1;
    while (n < shards)
        n <<= 1;
    sm_registry_t *r = sm_xcalloc(1, sizeof *r);
    r->shards = sm_xcalloc(n, sizeof *r->shards);
    r->mask = n - 1;
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_init(&r->shards[i].lock, NULL);
        sm_hmap_init(&r->shards[i].map, 64);
    }
    atomic_init(&r->registered, 0);
    return r;
}

void sm_registry_free(sm_registry_t *r)
{
    if (r == NULL)
        return;
    for (unsigned i = 0; i <= r->mask; i++) {
        size_t b = 0;
        sm_hnode_t *next = NULL, *n;
        while ((n = sm_hmap_next(&r->shards[i].map, &b, &next)) != NULL)
            free(n);
        sm_hmap_destroy(&r->shards[i].map);
        pthread_mutex_destroy(&r->shards[i].lock);
    }
    free(r->shards);
    free(r);
}

static shard_t *shard_for(sm_registry_t *r, uint64_t hash)
{
    /* High bits pick the shard; low bits pick the bucket inside it. */
    return &r->shards[(hash >> 48) & r->mask];
}

static entry_t *find(shard_t *s, uint64_t hash, const char *id, size_t len)
{
    key_t_ k = {id, len};
    return (entry_t *)sm_hmap_find(&s->map, hash, eq, &k);
}

int sm_registry_claim(sm_registry_t *r, const char *client_id, const sm_reg_holder_t *h,
                      sm_reg_holder_t *existing)
{
    size_t len = strlen(client_id);
    uint64_t hash = sm_hash_bytes(client_id, len);
    shard_t *s = shard_for(r, hash);
    /* Allocate outside the lock; freed again on conflict (rare). */
    entry_t *e = sm_xmalloc(sizeof *e + len + 1);
    e->h = *h;
    e->h.registered = false;
    e->len = len;
    memcpy(e->id, client_id, len + 1);
    pthread_mutex_lock(&s->lock);
    entry_t *cur = find(s, hash, client_id, len);
    if (cur) {
        if (existing)
            *existing = cur->h;
        pthread_mutex_unlock(&s->lock);
        free(e);
        return SM_ECONFLICT;
    }
    sm_hmap_insert(&s->map, &e->node, hash);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* Lock client_id's shard and find its entry held by serial (*e = NULL when
 * absent or held by another serial).  The caller unlocks the returned shard. */
static shard_t *lock_held(sm_registry_t *r, const char *client_id, uint64_t serial, entry_t **e)
{
    size_t len = strlen(client_id);
    uint64_t hash = sm_hash_bytes(client_id, len);
    shard_t *s = shard_for(r, hash);
    pthread_mutex_lock(&s->lock);
    entry_t *cur = find(s, hash, client_id, len);
    *e = cur && cur->h.serial == serial ? cur : NULL;
    return s;
}

int sm_registry_commit(sm_registry_t *r, const char *client_id, uint64_t serial)
{
    entry_t *e;
    shard_t *s = lock_held(r, client_id, serial, &e);
    if (e && !e->h.registered) {
        e->h.registered = true;
        atomic_fetch_add_explicit(&r->registered, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->lock);
    return e ? 0 : SM_ENOTFOUND;
}

int sm_registry_set_releasing(sm_registry_t *r, const char *client_id, uint64_t serial,
                              bool releasing)
{
    entry_t *e;
    shard_t *s = lock_held(r, client_id, serial, &e);
    if (e)
        e->h.releasing = releasing;
    pthread_mutex_unlock(&s->lock);
    return e ? 0 : SM_ENOTFOUND;
}

int sm_registry_set_conn(sm_registry_t *r, const char *client_id, uint64_t serial, sm_handle_t conn)
{
    entry_t *e;
    shard_t *s = lock_held(r, client_id, serial, &e);
    if (e)
        e->h.conn = conn;
    pthread_mutex_unlock(&s->lock);
    return e ? 0 : SM_ENOTFOUND;
}

int sm_registry_takeover(sm_registry_t *r, const char *client_id, uint64_t expect_serial,
                         const sm_reg_holder_t *h)
{
    entry_t *e;
    shard_t *s = lock_held(r, client_id, expect_serial, &e);
    if (e) {
        if (e->h.registered && !h->registered)
            atomic_fetch_sub_explicit(&r->registered, 1, memory_order_relaxed);
        else if (!e->h.registered && h->registered)
            atomic_fetch_add_explicit(&r->registered, 1, memory_order_relaxed);
        e->h = *h;
    }
    pthread_mutex_unlock(&s->lock);
    return e ? 0 : SM_ENOTFOUND;
}

int sm_registry_release(sm_registry_t *r, const char *client_id, uint64_t serial)
{
    entry_t *e;
    shard_t *s = lock_held(r, client_id, serial, &e);
    if (e) {
        sm_hmap_remove(&s->map, &e->node);
        if (e->h.registered)
            atomic_fetch_sub_explicit(&r->registered, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->lock);
    if (e == NULL)
        return SM_ENOTFOUND;
    free(e);
    return 0;
}

int sm_registry_lookup(sm_registry_t *r, const char *client_id, size_t len, sm_reg_holder_t *out)
{
    uint64_t hash = sm_hash_bytes(client_id, len);
    shard_t *s = shard_for(r, hash);
    int rc = SM_ENOTFOUND;
    pthread_mutex_lock(&s->lock);
    entry_t *e = find(s, hash, client_id, len);
    if (e) {
        *out = e->h;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

size_t sm_registry_count(const sm_registry_t *r)
{
    return atomic_load_explicit(&((sm_registry_t *)r)->registered, memory_order_relaxed);
}
