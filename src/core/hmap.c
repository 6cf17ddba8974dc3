/*
 * Chained hash table and SipHash-1-3.
 */
#include "core/hmap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/alloc.h"

void sm_hmap_init(sm_hmap_t *m, size_t initial_buckets)
{
    size_t n = 8;
    while (n < initial_buckets)
        n <<= 1;
    m->_buckets = sm_xcalloc(n, sizeof *m->_buckets);
    m->_mask = n - 1;
    m->count = 0;
}

void sm_hmap_destroy(sm_hmap_t *m)
{
    free(m->_buckets);
    m->_buckets = NULL;
    m->count = 0;
}

static void grow(sm_hmap_t *m)
{
    size_t n = (m->_mask + 1) * 2;
    sm_hnode_t **b = sm_xcalloc(n, sizeof *b);
    for (size_t i = 0; i <= m->_mask; i++) {
        sm_hnode_t *e = m->_buckets[i];
        while (e) {
            sm_hnode_t *next = e->_next;
            size_t j = e->_hash & (n - 1);
            e->_next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->_buckets);
    m->_buckets = b;
    m->_mask = n - 1;
}

void sm_hmap_insert(sm_hmap_t *m, sm_hnode_t *n, uint64_t hash)
{
    if (m->count >= m->_mask + 1)
        grow(m);
    size_t i = hash & m->_mask;
    n->_hash = hash;
    n->_next = m->_buckets[i];
    m->_buckets[i] = n;
    m->count++;
}

sm_hnode_t *sm_hmap_find(const sm_hmap_t *m, uint64_t hash, sm_hmap_eq_fn eq, const void *key)
{
    for (sm_hnode_t *e = m->_buckets[hash & m->_mask]; e; e = e->_next) {
        if (e->_hash == hash && eq(e, key))
            return e;
    }
    return NULL;
}

void sm_hmap_remove(sm_hmap_t *m, sm_hnode_t *n)
{
    sm_hnode_t **pp = &m->_buckets[n->_hash & m->_mask];
    while (*pp) {
        if (*pp == n) {
            *pp = n->_next;
            n->_next = NULL;
            m->count--;
            return;
        }
        pp = &(*pp)->_next;
    }
}

sm_hnode_t *sm_hmap_next(const sm_hmap_t *m, size_t *bucket, sm_hnode_t **next)
{
    sm_hnode_t *e = *next;
    while (e == NULL) {
        if (*bucket > m->_mask)
            return NULL;
        e = m->_buckets[(*bucket)++];
    }
    *next = e->_next;
    return e;
}

/* ---- SipHash-1-3 ---- */

static uint64_t g_k0, g_k1;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void init_key(void)
{
    uint64_t k[2] = {0x736f6d6570736575ULL, 0x646f72616e646f6dULL};
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        /* Keep the fixed key: still a good hash, only not secret. */
    }
    g_k0 = k[0];
    g_k1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

uint64_t sm_hash_bytes(const void *p, size_t len)
{
    pthread_once(&g_key_once, init_key);
    const uint8_t *in = p;
    uint64_t v0 = 0x736f6d6570736575ULL ^ g_k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ g_k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ g_k0;
    uint64_t v3 = 0x7465646279746573ULL ^ g_k1;
    uint64_t b = (uint64_t)len << 56;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t mword;
        memcpy(&mword, in + i, 8);
        v3 ^= mword;
        SIPROUND;
        v0 ^= mword;
    }
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}
