/*
 * Token buckets and the per-source-IP bucket table.
 *
 * DESIGN.  The table is an sm_hmap_t (keyed SipHash: source addresses are
 * chosen by whoever connects, IPv6 ones freely) plus an LRU list, least
 * recently used at the head.  Every call moves the source's bucket to the
 * tail, allowed or not, so a source that keeps hammering stays tracked.
 * Eviction prefers buckets that are full at `now`: dropping one changes
 * nothing, since a returning source gets a new bucket that also starts full.
 * The LRU head is the likeliest to be full (it has been idle longest), so we
 * look only at the head: SWEEP_PER_CALL entries on every call, and up to
 * SCAN_ON_FULL when a new source needs room, which keeps every call O(1).
 */
#include "core/ratelimit.h"

#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hmap.h"
#include "core/list.h"

/* Refills add fractions (0.1 token per 100 ms at rate 1) whose sum can land a
 * hair under a whole token; accept that instead of making the caller wait a
 * millisecond more.  Far below any rate a config can express. */
#define TOKEN_EPS 1e-9
/* Full buckets dropped from the LRU head per call: more than one so the
 * table drains faster than it fills when traffic is steady; small so a call
 * stays cheap. */
#define SWEEP_PER_CALL 2
/* Entries from the LRU head examined for a full bucket when the table is at
 * max_entries, before the head is dropped while still refilling. */
#define SCAN_ON_FULL 8

/* family tag + 16 address bytes (IPv4: 4 bytes, IPv6: the /64 prefix). */
#define KEY_LEN 17
#define KEY_OTHER 0
#define KEY_V4 4
#define KEY_V6 6

void sm_bucket_init(sm_bucket_t *b, double burst, uint64_t now_ms)
{
    b->tokens = burst;
    b->last_ms = now_ms;
}

/* Tokens b holds at now_ms (refill capped at burst), without taking any. */
static double refilled(const sm_bucket_t *b, double rate_per_s, double burst, uint64_t now_ms)
{
    double t = b->tokens;
    if (now_ms > b->last_ms && rate_per_s > 0)
        t += (double)(now_ms - b->last_ms) * rate_per_s / 1000.0;
    return t > burst ? burst : t;
}

bool sm_bucket_take(sm_bucket_t *b, double rate_per_s, double burst, uint64_t now_ms)
{
    b->tokens = refilled(b, rate_per_s, burst, now_ms);
    if (now_ms > b->last_ms)
        b->last_ms = now_ms;
    if (b->tokens < 1.0 - TOKEN_EPS)
        return false;
    b->tokens -= 1.0;
    if (b->tokens < 0)
        b->tokens = 0;
    return true;
}

typedef struct {
    sm_hnode_t node;
    sm_list_t lru;
    sm_bucket_t bucket;
    uint8_t key[KEY_LEN];
} entry_t;

struct sm_iplimit_s {
    sm_hmap_t map;
    sm_list_t lru; /* head: least recently used */
    double rate, burst;
    size_t max_entries;
    uint64_t forced;
};

sm_iplimit_t *sm_iplimit_new(double rate, double burst, size_t max_entries)
{
    if (!isfinite(rate) || rate <= 0 || !isfinite(burst) || burst < 1 || max_entries == 0)
        return NULL;
    sm_iplimit_t *l = SM_NEW(sm_iplimit_t);
    /* Start small: most servers see far fewer sources than max_entries. */
    sm_hmap_init(&l->map, max_entries < 64 ? max_entries : 64);
    sm_list_init(&l->lru);
    l->rate = rate;
    l->burst = burst;
    l->max_entries = max_entries;
    return l;
}

static void make_key(const struct sockaddr *sa, uint8_t key[KEY_LEN])
{
    memset(key, 0, KEY_LEN);
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof sin);
        key[0] = KEY_V4;
        memcpy(key + 1, &sin.sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof sin6);
        const uint8_t *a = (const uint8_t *)&sin6.sin6_addr;
        if (memcmp(a, mapped, sizeof mapped) == 0) {
            key[0] = KEY_V4;
            memcpy(key + 1, a + 12, 4);
        } else {
            key[0] = KEY_V6;
            memcpy(key + 1, a, 8); /* the /64 */
        }
    } else {
        key[0] = KEY_OTHER;
    }
}

static bool eq_key(const sm_hnode_t *n, const void *key)
{
    const entry_t *e = SM_CONTAINER_OF(n, entry_t, node);
    return memcmp(e->key, key, KEY_LEN) == 0;
}

static bool is_full(const sm_iplimit_t *l, const entry_t *e, uint64_t now_ms)
{
    return refilled(&e->bucket, l->rate, l->burst, now_ms) >= l->burst - TOKEN_EPS;
}

static void drop(sm_iplimit_t *l, entry_t *e)
{
    sm_hmap_remove(&l->map, &e->node);
    sm_list_remove(&e->lru);
    free(e);
}

/* Drop up to max full buckets from the LRU head, stopping at the first one
 * still refilling. */
static void sweep(sm_iplimit_t *l, uint64_t now_ms, int max)
{
    for (int i = 0; i < max; i++) {
        sm_list_t *h = sm_list_first(&l->lru);
        if (h == NULL)
            return;
        entry_t *e = SM_CONTAINER_OF(h, entry_t, lru);
        if (!is_full(l, e, now_ms))
            return;
        drop(l, e);
    }
}

/* Make room for one entry: a full bucket among the SCAN_ON_FULL least
 * recently used if there is one, else the least recently used. */
static void make_room(sm_iplimit_t *l, uint64_t now_ms)
{
    sm_list_t *pos = l->lru.next;
    for (int i = 0; i < SCAN_ON_FULL && pos != &l->lru; i++, pos = pos->next) {
        entry_t *e = SM_CONTAINER_OF(pos, entry_t, lru);
        if (is_full(l, e, now_ms)) {
            drop(l, e);
            return;
        }
    }
    sm_list_t *h = sm_list_first(&l->lru);
    if (h != NULL) {
        drop(l, SM_CONTAINER_OF(h, entry_t, lru));
        l->forced++;
    }
}

bool sm_iplimit_allow(sm_iplimit_t *l, const struct sockaddr *sa, uint64_t now_ms)
{
    if (l == NULL)
        return true;
    uint8_t key[KEY_LEN];
    make_key(sa, key);
    uint64_t hash = sm_hash_bytes(key, KEY_LEN);

    sm_hnode_t *n = sm_hmap_find(&l->map, hash, eq_key, key);
    if (n != NULL) {
        entry_t *e = SM_CONTAINER_OF(n, entry_t, node);
        sm_list_remove(&e->lru);
        sm_list_insert_tail(&l->lru, &e->lru);
        bool ok = sm_bucket_take(&e->bucket, l->rate, l->burst, now_ms);
        sweep(l, now_ms, SWEEP_PER_CALL);
        return ok;
    }

    sweep(l, now_ms, SWEEP_PER_CALL);
    if (l->map.count >= l->max_entries)
        make_room(l, now_ms);
    entry_t *e = SM_NEW(entry_t);
    memcpy(e->key, key, KEY_LEN);
    sm_bucket_init(&e->bucket, l->burst, now_ms);
    sm_list_init(&e->lru);
    sm_list_insert_tail(&l->lru, &e->lru);
    sm_hmap_insert(&l->map, &e->node, hash);
    /* burst >= 1 (checked in _new): a new source always gets its first try. */
    return sm_bucket_take(&e->bucket, l->rate, l->burst, now_ms);
}

size_t sm_iplimit_size(const sm_iplimit_t *l)
{
    return l ? l->map.count : 0;
}

uint64_t sm_iplimit_forced_evictions(const sm_iplimit_t *l)
{
    return l ? l->forced : 0;
}

void sm_iplimit_free(sm_iplimit_t *l)
{
    if (l == NULL)
        return;
    sm_list_t *pos, *tmp;
    sm_list_foreach_safe(pos, tmp, &l->lru)
    {
        entry_t *e = SM_CONTAINER_OF(pos, entry_t, lru);
        free(e);
    }
    sm_hmap_destroy(&l->map);
    free(l);
}
