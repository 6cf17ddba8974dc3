/*
 * Intrusive chained hash table and a keyed string hash.
 *
 * Nodes embed an sm_hnode_t and carry their own key; the table only stores
 * hashes, so lookups walk a chain comparing hashes and the caller compares
 * keys (see sm_hmap_find).  The table grows by doubling when the load factor
 * passes 1.  Not thread-safe: a table belongs to one thread or is guarded by
 * its owner's lock (the registry shards).
 *
 * sm_hash_bytes is SipHash-1-3 with a per-process random key drawn on first
 * use, because client_id and room_id come from peers: a predictable hash
 * would let a client pile every key into one chain.
 */
#ifndef SM_CORE_HMAP_H
#define SM_CORE_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sm_hnode_s {
    struct sm_hnode_s *_next;
    uint64_t _hash;
} sm_hnode_t;

typedef struct {
    sm_hnode_t **_buckets;
    size_t _mask;
    size_t count;
} sm_hmap_t;

typedef bool (*sm_hmap_eq_fn)(const sm_hnode_t *node, const void *key);

void sm_hmap_init(sm_hmap_t *m, size_t initial_buckets);
/* Frees the bucket array only; nodes belong to the caller. */
void sm_hmap_destroy(sm_hmap_t *m);
void sm_hmap_insert(sm_hmap_t *m, sm_hnode_t *n, uint64_t hash);
/* First node with this hash for which eq(node, key) is true, or NULL. */
sm_hnode_t *sm_hmap_find(const sm_hmap_t *m, uint64_t hash, sm_hmap_eq_fn eq, const void *key);
/* Unlink n (which must be in m). */
void sm_hmap_remove(sm_hmap_t *m, sm_hnode_t *n);
/* Iterate: start with it = 0 and node = NULL; returns NULL at the end.
 * The current node may be removed during iteration. */
sm_hnode_t *sm_hmap_next(const sm_hmap_t *m, size_t *bucket, sm_hnode_t **next);

/* Keyed hash of bytes (thread-safe; key initialised once). */
uint64_t sm_hash_bytes(const void *p, size_t len);
/* Cheap mix of a 64-bit integer key (handles are not attacker-chosen). */
static inline uint64_t sm_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

#endif
