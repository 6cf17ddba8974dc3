/*
 * Unit tests for src/core/hmap.c: the intrusive chained hash table and the
 * keyed byte hash.  Insert/find/remove, equal hashes told apart by the eq
 * callback, growth from the smallest table, iteration that removes the node
 * it is on, and sm_hash_bytes: stable within a process, different for
 * different inputs (length included), safe from several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/hmap.h"

typedef struct {
    sm_hnode_t node; /* first member */
    uint32_t key;
    int visits;
    char name[32];
} item_t;

static bool eq_key(const sm_hnode_t *n, const void *k)
{
    return ((const item_t *)n)->key == *(const uint32_t *)k;
}

static bool eq_name(const sm_hnode_t *n, const void *k)
{
    return strcmp(((const item_t *)n)->name, k) == 0;
}

static item_t *find_key(const sm_hmap_t *m, uint32_t key)
{
    return (item_t *)sm_hmap_find(m, sm_hash_u64(key), eq_key, &key);
}

static void test_insert_find_remove(void **state)
{
    (void)state;
    sm_hmap_t m;
    sm_hmap_init(&m, 0);
    item_t a = {.key = 1}, b = {.key = 2}, c = {.key = 3};
    sm_hmap_insert(&m, &a.node, sm_hash_u64(1));
    sm_hmap_insert(&m, &b.node, sm_hash_u64(2));
    sm_hmap_insert(&m, &c.node, sm_hash_u64(3));
    assert_int_equal(m.count, 3);
    assert_ptr_equal(find_key(&m, 1), &a);
    assert_ptr_equal(find_key(&m, 2), &b);
    assert_ptr_equal(find_key(&m, 3), &c);
    assert_null(find_key(&m, 4));

    sm_hmap_remove(&m, &b.node);
    assert_int_equal(m.count, 2);
    assert_null(find_key(&m, 2));
    assert_ptr_equal(find_key(&m, 1), &a);
    assert_ptr_equal(find_key(&m, 3), &c);

    /* Re-insert after removal. */
    sm_hmap_insert(&m, &b.node, sm_hash_u64(2));
    assert_ptr_equal(find_key(&m, 2), &b);
    sm_hmap_remove(&m, &a.node);
    sm_hmap_remove(&m, &b.node);
    sm_hmap_remove(&m, &c.node);
    assert_int_equal(m.count, 0);
    assert_null(find_key(&m, 1));
    sm_hmap_destroy(&m);
}

static void test_same_hash_distinct_keys(void **state)
{
    (void)state;
    sm_hmap_t m;
    sm_hmap_init(&m, 8);
    /* Every node gets the same hash: the chain holds them all and eq picks. */
    item_t it[20];
    memset(it, 0, sizeof it);
    for (int i = 0; i < 20; i++) {
        snprintf(it[i].name, sizeof it[i].name, "n%d", i);
        sm_hmap_insert(&m, &it[i].node, 42);
    }
    for (int i = 0; i < 20; i++)
        assert_ptr_equal(sm_hmap_find(&m, 42, eq_name, it[i].name), &it[i].node);
    assert_null(sm_hmap_find(&m, 42, eq_name, "nope"));
    /* Same key under a different hash is not found. */
    assert_null(sm_hmap_find(&m, 43, eq_name, "n3"));
    /* Remove from the middle of the chain. */
    sm_hmap_remove(&m, &it[10].node);
    assert_null(sm_hmap_find(&m, 42, eq_name, "n10"));
    for (int i = 0; i < 20; i++)
        if (i != 10)
            assert_ptr_equal(sm_hmap_find(&m, 42, eq_name, it[i].name), &it[i].node);
    assert_int_equal(m.count, 19);
    sm_hmap_destroy(&m);
}

#define MANY 20000

static void test_growth(void **state)
{
    (void)state;
    sm_hmap_t m;
    sm_hmap_init(&m, 1);
    item_t *items = calloc(MANY, sizeof *items);
    assert_non_null(items);
    for (uint32_t i = 0; i < MANY; i++) {
        items[i].key = i * 2654435761u;
        sm_hmap_insert(&m, &items[i].node, sm_hash_u64(items[i].key));
        /* Everything inserted so far stays findable across every regrow. */
        if ((i & (i + 1)) == 0) {
            for (uint32_t j = 0; j <= i; j++)
                assert_ptr_equal(find_key(&m, items[j].key), &items[j]);
        }
    }
    assert_int_equal(m.count, MANY);
    for (uint32_t i = 0; i < MANY; i++)
        assert_ptr_equal(find_key(&m, items[i].key), &items[i]);
    /* Remove half after growth (remove recomputes the bucket with the new mask). */
    for (uint32_t i = 0; i < MANY; i += 2)
        sm_hmap_remove(&m, &items[i].node);
    assert_int_equal(m.count, MANY / 2);
    for (uint32_t i = 0; i < MANY; i++) {
        if (i % 2)
            assert_ptr_equal(find_key(&m, items[i].key), &items[i]);
        else
            assert_null(find_key(&m, items[i].key));
    }
    sm_hmap_destroy(&m);
    free(items);
}

static void test_iterate_all(void **state)
{
    (void)state;
    sm_hmap_t m;
    sm_hmap_init(&m, 4);
    item_t items[300];
    memset(items, 0, sizeof items);
    for (uint32_t i = 0; i < 300; i++) {
        items[i].key = i;
        sm_hmap_insert(&m, &items[i].node, i % 3 == 0 ? 7 : sm_hash_u64(i)); /* some chains */
    }
    size_t bucket = 0;
    sm_hnode_t *next = NULL, *n;
    size_t seen = 0;
    while ((n = sm_hmap_next(&m, &bucket, &next)) != NULL) {
        ((item_t *)n)->visits++;
        seen++;
    }
    assert_int_equal(seen, 300);
    for (int i = 0; i < 300; i++)
        assert_int_equal(items[i].visits, 1);
    /* The end is sticky. */
    assert_null(sm_hmap_next(&m, &bucket, &next));
    sm_hmap_destroy(&m);
}

static void test_iterate_with_removal(void **state)
{
    (void)state;
    sm_hmap_t m;
    sm_hmap_init(&m, 8);
    item_t items[500];
    memset(items, 0, sizeof items);
    for (uint32_t i = 0; i < 500; i++) {
        items[i].key = i;
        sm_hmap_insert(&m, &items[i].node, i % 4 == 0 ? 99 : sm_hash_u64(i));
    }
    /* Remove every odd key while iterating: every node is still visited once. */
    size_t bucket = 0;
    sm_hnode_t *next = NULL, *n;
    size_t seen = 0;
    while ((n = sm_hmap_next(&m, &bucket, &next)) != NULL) {
        item_t *it = (item_t *)n;
        it->visits++;
        seen++;
        if (it->key % 2)
            sm_hmap_remove(&m, n);
    }
    assert_int_equal(seen, 500);
    assert_int_equal(m.count, 250);
    for (uint32_t i = 0; i < 500; i++) {
        assert_int_equal(items[i].visits, 1);
        uint64_t h = i % 4 == 0 ? 99 : sm_hash_u64(i);
        sm_hnode_t *f = sm_hmap_find(&m, h, eq_key, &i);
        if (i % 2)
            assert_null(f);
        else
            assert_ptr_equal(f, &items[i].node);
    }
    /* Then remove everything while iterating (as a table owner's free loop). */
    bucket = 0;
    next = NULL;
    seen = 0;
    while ((n = sm_hmap_next(&m, &bucket, &next)) != NULL) {
        sm_hmap_remove(&m, n);
        seen++;
    }
    assert_int_equal(seen, 250);
    assert_int_equal(m.count, 0);
    bucket = 0;
    next = NULL;
    assert_null(sm_hmap_next(&m, &bucket, &next));
    sm_hmap_destroy(&m);
}

static void test_hash_bytes_stable_and_distinct(void **state)
{
    (void)state;
    const char *s = "client-42";
    uint64_t h1 = sm_hash_bytes(s, strlen(s));
    char copy[32];
    strcpy(copy, s);
    assert_int_equal(sm_hash_bytes(copy, strlen(copy)), h1); /* content, not address */
    assert_int_equal(sm_hash_bytes(s, strlen(s)), h1);
    assert_int_not_equal(sm_hash_bytes("client-43", 9), h1);
    assert_int_not_equal(sm_hash_bytes("Client-42", 9), h1);
    /* Length is part of the input: a prefix and a NUL-extended key differ. */
    assert_int_not_equal(sm_hash_bytes(s, 8), h1);
    assert_int_not_equal(sm_hash_bytes(s, 10), h1); /* includes the NUL */
    uint8_t zeros[16] = {0};
    assert_int_not_equal(sm_hash_bytes(zeros, 0), sm_hash_bytes(zeros, 1));
    assert_int_not_equal(sm_hash_bytes(zeros, 7), sm_hash_bytes(zeros, 8));
    assert_int_not_equal(sm_hash_bytes(zeros, 8), sm_hash_bytes(zeros, 9));
    /* Empty input is fine (pointer not read). */
    assert_int_equal(sm_hash_bytes(NULL, 0), sm_hash_bytes(zeros, 0));

    /* All one-byte flips of a 40-byte key, and every length 0..64 of the
     * same buffer, give distinct values (a 64-bit collision here would mean
     * bytes or the length are ignored). */
    uint8_t buf[64];
    for (int i = 0; i < 64; i++)
        buf[i] = (uint8_t)(i * 37 + 1);
    uint64_t hs[64 + 1 + 40 * 8];
    size_t n = 0;
    for (size_t len = 0; len <= 64; len++)
        hs[n++] = sm_hash_bytes(buf, len);
    for (int pos = 0; pos < 40; pos++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[pos] ^= (uint8_t)(1u << bit);
            hs[n++] = sm_hash_bytes(buf, 40);
            buf[pos] ^= (uint8_t)(1u << bit);
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (hs[i] == hs[j])
                fail_msg("hash collision between inputs %zu and %zu", i, j);
}

static void test_hash_spreads_low_bits(void **state)
{
    (void)state;
    /* Sequential ids must not pile into a few buckets (low bits pick them). */
    enum { N = 4096, B = 256 };
    unsigned counts[B] = {0};
    char id[32];
    for (int i = 0; i < N; i++) {
        int len = snprintf(id, sizeof id, "user-%d", i);
        counts[sm_hash_bytes(id, (size_t)len) & (B - 1)]++;
    }
    unsigned max = 0, empty = 0;
    for (int b = 0; b < B; b++) {
        if (counts[b] > max)
            max = counts[b];
        if (counts[b] == 0)
            empty++;
    }
    /* Expected 16 per bucket; a fair hash stays far below these bounds. */
    assert_true(max < 48);
    assert_true(empty < 4);
}

static uint64_t g_thread_hash[4];

static void *hash_thread(void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    g_thread_hash[i] = sm_hash_bytes("same-key", 8);
    return NULL;
}

static void test_hash_same_across_threads(void **state)
{
    (void)state;
    pthread_t th[4];
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hash_thread, (void *)(uintptr_t)i), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    uint64_t here = sm_hash_bytes("same-key", 8);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(g_thread_hash[i], here);
}

static void test_hash_u64(void **state)
{
    (void)state;
    assert_int_equal(sm_hash_u64(12345), sm_hash_u64(12345));
    assert_int_not_equal(sm_hash_u64(1), sm_hash_u64(2));
    assert_int_not_equal(sm_hash_u64(1ull << 32), sm_hash_u64(1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_same_hash_distinct_keys),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_iterate_all),
        cmocka_unit_test(test_iterate_with_removal),
        cmocka_unit_test(test_hash_bytes_stable_and_distinct),
        cmocka_unit_test(test_hash_spreads_low_bits),
        cmocka_unit_test(test_hash_same_across_threads),
        cmocka_unit_test(test_hash_u64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
