/*
 * Unit tests for src/registry/registry.c: claim/conflict, commit, set_conn,
 * release only by the holder, lookup by (ptr, len), and the registered count
 * (committed entries only).  A threaded test has several threads claim and
 * release overlapping ids; a per-id owner word checks that no two threads
 * ever hold the same id at once, and the final count must match what is
 * still held.  Run under TSan too (make VARIANT=tsan).
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
#include <stdatomic.h>

#include "core/err.h"
#include "registry/registry.h"

static sm_reg_holder_t holder(uint64_t serial, sm_handle_t conn, uint16_t worker)
{
    sm_reg_holder_t h;
    memset(&h, 0, sizeof h);
    h.serial = serial;
    h.conn = conn;
    h.worker = worker;
    h.registered = false;
    return h;
}

static void test_claim_conflict_commit_release(void **state)
{
    (void)state;
    sm_registry_t *r = sm_registry_new(8);
    sm_reg_holder_t a = holder(11, sm_handle_make(1, 2, 3), 4);
    a.registered = true; /* ignored: claims start PENDING */
    assert_int_equal(sm_registry_claim(r, "alice", &a, NULL), 0);
    assert_int_equal(sm_registry_count(r), 0);

    sm_reg_holder_t out;
    memset(&out, 0xee, sizeof out);
    assert_int_equal(sm_registry_lookup(r, "alice", 5, &out), 0);
    assert_int_equal(out.serial, 11);
    assert_int_equal(out.conn, sm_handle_make(1, 2, 3));
    assert_int_equal(out.worker, 4);
    assert_false(out.registered);

    /* A second claimant gets a copy of the current holder. */
    sm_reg_holder_t b = holder(22, sm_handle_make(0, 9, 9), 1);
    sm_reg_holder_t existing;
    memset(&existing, 0, sizeof existing);
    assert_int_equal(sm_registry_claim(r, "alice", &b, &existing), SM_ECONFLICT);
    assert_int_equal(existing.serial, 11);
    assert_int_equal(existing.conn, sm_handle_make(1, 2, 3));
    assert_int_equal(existing.worker, 4);
    assert_false(existing.registered);
    assert_int_equal(sm_registry_claim(r, "alice", &b, NULL), SM_ECONFLICT);
    /* Even the same serial cannot claim twice. */
    assert_int_equal(sm_registry_claim(r, "alice", &a, NULL), SM_ECONFLICT);

    /* Only the holder commits. */
    assert_int_equal(sm_registry_commit(r, "alice", 22), SM_ENOTFOUND);
    assert_int_equal(sm_registry_count(r), 0);
    assert_int_equal(sm_registry_commit(r, "alice", 11), 0);
    assert_int_equal(sm_registry_count(r), 1);
    assert_int_equal(sm_registry_commit(r, "alice", 11), 0); /* idempotent */
    assert_int_equal(sm_registry_count(r), 1);
    assert_int_equal(sm_registry_commit(r, "bob", 11), SM_ENOTFOUND);

    assert_int_equal(sm_registry_claim(r, "alice", &b, &existing), SM_ECONFLICT);
    assert_true(existing.registered);
    assert_int_equal(sm_registry_lookup(r, "alice", 5, &out), 0);
    assert_true(out.registered);

    /* Only the holder releases. */
    assert_int_equal(sm_registry_release(r, "alice", 22), SM_ENOTFOUND);
    assert_int_equal(sm_registry_lookup(r, "alice", 5, &out), 0);
    assert_int_equal(sm_registry_count(r), 1);
    assert_int_equal(sm_registry_release(r, "alice", 11), 0);
    assert_int_equal(sm_registry_count(r), 0);
    assert_int_equal(sm_registry_lookup(r, "alice", 5, &out), SM_ENOTFOUND);
    assert_int_equal(sm_registry_release(r, "alice", 11), SM_ENOTFOUND);
    assert_int_equal(sm_registry_count(r), 0);

    /* Free again: the other claimant gets it. */
    assert_int_equal(sm_registry_claim(r, "alice", &b, &existing), 0);
    assert_int_equal(sm_registry_lookup(r, "alice", 5, &out), 0);
    assert_int_equal(out.serial, 22);
    sm_registry_free(r); /* frees the remaining entry (ASan checks) */
}

static void test_release_pending_keeps_count(void **state)
{
    (void)state;
    sm_registry_t *r = sm_registry_new(4);
    sm_reg_holder_t a = holder(1, SM_HANDLE_NONE, 0), b = holder(2, SM_HANDLE_NONE, 0);
    assert_int_equal(sm_registry_claim(r, "p", &a, NULL), 0);
    assert_int_equal(sm_registry_claim(r, "q", &b, NULL), 0);
    assert_int_equal(sm_registry_commit(r, "q", 2), 0);
    assert_int_equal(sm_registry_count(r), 1);
    /* Releasing a PENDING entry must not decrement the registered count. */
    assert_int_equal(sm_registry_release(r, "p", 1), 0);
    assert_int_equal(sm_registry_count(r), 1);
    assert_int_equal(sm_registry_release(r, "q", 2), 0);
    assert_int_equal(sm_registry_count(r), 0);
    sm_registry_free(r);
}

static void test_set_conn(void **state)
{
    (void)state;
    sm_registry_t *r = sm_registry_new(2);
    sm_reg_holder_t a = holder(5, sm_handle_make(0, 1, 1), 3);
    assert_int_equal(sm_registry_claim(r, "c1", &a, NULL), 0);
    assert_int_equal(sm_registry_commit(r, "c1", 5), 0);

    sm_reg_holder_t out;
    assert_int_equal(sm_registry_set_conn(r, "c1", 6, sm_handle_make(2, 2, 2)), SM_ENOTFOUND);
    assert_int_equal(sm_registry_lookup(r, "c1", 2, &out), 0);
    assert_int_equal(out.conn, sm_handle_make(0, 1, 1));

    assert_int_equal(sm_registry_set_conn(r, "c1", 5, SM_HANDLE_NONE), 0); /* detach */
    assert_int_equal(sm_registry_lookup(r, "c1", 2, &out), 0);
    assert_int_equal(out.conn, SM_HANDLE_NONE);
    assert_int_equal(out.serial, 5);
    assert_int_equal(out.worker, 3);
    assert_true(out.registered); /* set_conn does not touch the state */

    assert_int_equal(sm_registry_set_conn(r, "c1", 5, sm_handle_make(7, 8, 9)), 0);
    assert_int_equal(sm_registry_lookup(r, "c1", 2, &out), 0);
    assert_int_equal(out.conn, sm_handle_make(7, 8, 9));
    assert_int_equal(sm_registry_set_conn(r, "nobody", 5, SM_HANDLE_NONE), SM_ENOTFOUND);
    assert_int_equal(sm_registry_count(r), 1);
    sm_registry_free(r);
}

static void test_lookup_by_len(void **state)
{
    (void)state;
    sm_registry_t *r = sm_registry_new(16);
    sm_reg_holder_t a = holder(100, SM_HANDLE_NONE, 0), b = holder(200, SM_HANDLE_NONE, 1);
    assert_int_equal(sm_registry_claim(r, "alice", &a, NULL), 0);
    assert_int_equal(sm_registry_claim(r, "alice2", &b, NULL), 0);

    /* An id inside a bigger buffer, not NUL-terminated at len. */
    const char buf[] = "alice2-and-more";
    sm_reg_holder_t out;
    assert_int_equal(sm_registry_lookup(r, buf, 5, &out), 0);
    assert_int_equal(out.serial, 100);
    assert_int_equal(sm_registry_lookup(r, buf, 6, &out), 0);
    assert_int_equal(out.serial, 200);
    assert_int_equal(sm_registry_lookup(r, buf, 4, &out), SM_ENOTFOUND);
    assert_int_equal(sm_registry_lookup(r, buf, 7, &out), SM_ENOTFOUND);
    assert_int_equal(sm_registry_lookup(r, buf, sizeof buf - 1, &out), SM_ENOTFOUND);
    /* Case matters. */
    assert_int_equal(sm_registry_lookup(r, "Alice", 5, &out), SM_ENOTFOUND);
    /* A payload buffer with no NUL anywhere near. */
    char raw[5];
    memcpy(raw, "alice", 5);
    assert_int_equal(sm_registry_lookup(r, raw, 5, &out), 0);
    assert_int_equal(out.serial, 100);
    sm_registry_free(r);
}

static void test_many_ids_and_shards(void **state)
{
    (void)state;
    /* 0 shards rounds up to 1; 3 to 4.  Many ids force table growth. */
    unsigned shard_counts[] = {0, 1, 3, 64};
    for (size_t s = 0; s < sizeof shard_counts / sizeof shard_counts[0]; s++) {
        sm_registry_t *r = sm_registry_new(shard_counts[s]);
        char id[32];
        for (uint64_t i = 1; i <= 3000; i++) {
            snprintf(id, sizeof id, "client-%llu", (unsigned long long)i);
            sm_reg_holder_t h = holder(i, sm_handle_make(0, (uint32_t)i, 1), 0);
            assert_int_equal(sm_registry_claim(r, id, &h, NULL), 0);
            if (i % 3 == 0)
                assert_int_equal(sm_registry_commit(r, id, i), 0);
        }
        assert_int_equal(sm_registry_count(r), 1000);
        for (uint64_t i = 1; i <= 3000; i++) {
            int len = snprintf(id, sizeof id, "client-%llu", (unsigned long long)i);
            sm_reg_holder_t out;
            assert_int_equal(sm_registry_lookup(r, id, (size_t)len, &out), 0);
            assert_int_equal(out.serial, i);
            assert_int_equal(out.registered, i % 3 == 0);
        }
        for (uint64_t i = 1; i <= 3000; i += 2) {
            snprintf(id, sizeof id, "client-%llu", (unsigned long long)i);
            assert_int_equal(sm_registry_release(r, id, i), 0);
        }
        /* Odd multiples of 3 were released: 500 registered remain. */
        assert_int_equal(sm_registry_count(r), 500);
        sm_registry_free(r);
    }
    sm_registry_free(NULL);
}

/* ---- threaded ---- */

#define THREADS 4
#define IDS 16
#define ROUNDS 20000

typedef struct {
    sm_registry_t *r;
    _Atomic uint64_t owner[IDS]; /* serial that the test believes holds each id */
    atomic_int violations;
} shared_t;

typedef struct {
    shared_t *sh;
    int index;
    uint64_t next_serial;
    unsigned rng;
    int held[IDS]; /* 1 while this thread holds the id (serial in serial_of) */
    uint64_t serial_of[IDS];
    int committed[IDS];
    long claims, conflicts;
} worker_t;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    shared_t *sh = w->sh;
    char id[16];
    for (int round = 0; round < ROUNDS; round++) {
        int k = (int)(rnd(&w->rng) % IDS);
        snprintf(id, sizeof id, "id-%d", k);
        if (!w->held[k]) {
            uint64_t serial = w->next_serial++;
            sm_reg_holder_t h =
                holder(serial, sm_handle_make((unsigned)w->index, 1, 1), (uint16_t)w->index);
            sm_reg_holder_t ex;
            int rc = sm_registry_claim(sh->r, id, &h, &ex);
            if (rc == 0) {
                uint64_t expect = 0;
                if (!atomic_compare_exchange_strong(&sh->owner[k], &expect, serial))
                    atomic_fetch_add(&sh->violations, 1); /* someone else holds it too */
                w->held[k] = 1;
                w->serial_of[k] = serial;
                w->claims++;
                if (rnd(&w->rng) % 2) {
                    if (sm_registry_commit(sh->r, id, serial) != 0)
                        atomic_fetch_add(&sh->violations, 1);
                    w->committed[k] = 1;
                }
            } else if (rc == SM_ECONFLICT) {
                if (ex.serial == 0 || ex.serial == serial)
                    atomic_fetch_add(&sh->violations, 1);
                w->conflicts++;
            } else {
                atomic_fetch_add(&sh->violations, 1);
            }
        } else {
            uint64_t serial = w->serial_of[k];
            sm_reg_holder_t out;
            /* Our entry is ours until we release it. */
            if (sm_registry_lookup(sh->r, id, strlen(id), &out) != 0 || out.serial != serial)
                atomic_fetch_add(&sh->violations, 1);
            if (sm_registry_set_conn(sh->r, id, serial, SM_HANDLE_NONE) != 0)
                atomic_fetch_add(&sh->violations, 1);
            /* A wrong serial never releases it. */
            if (sm_registry_release(sh->r, id, serial + 1000000) != SM_ENOTFOUND)
                atomic_fetch_add(&sh->violations, 1);
            if (rnd(&w->rng) % 4 == 0) {
                continue; /* keep holding a while */
            }
            uint64_t expect = serial;
            if (!atomic_compare_exchange_strong(&sh->owner[k], &expect, 0))
                atomic_fetch_add(&sh->violations, 1);
            if (sm_registry_release(sh->r, id, serial) != 0)
                atomic_fetch_add(&sh->violations, 1);
            w->held[k] = 0;
            w->committed[k] = 0;
        }
    }
    return NULL;
}

static void test_threaded_claims(void **state)
{
    (void)state;
    shared_t *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->r = sm_registry_new(4);
    for (int i = 0; i < IDS; i++)
        atomic_init(&sh->owner[i], 0);
    atomic_init(&sh->violations, 0);
    worker_t w[THREADS];
    pthread_t th[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++) {
        w[i].sh = sh;
        w[i].index = i;
        /* Disjoint serial ranges per thread, never 0. */
        w[i].next_serial = (uint64_t)(i + 1) << 40;
        w[i].rng = 1234567u * (unsigned)(i + 1);
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&sh->violations), 0);

    /* The final state matches what the threads believe they hold. */
    long claims = 0, conflicts = 0;
    size_t committed = 0;
    char id[16];
    for (int k = 0; k < IDS; k++) {
        snprintf(id, sizeof id, "id-%d", k);
        int holders = 0;
        uint64_t serial = 0;
        for (int i = 0; i < THREADS; i++) {
            if (w[i].held[k]) {
                holders++;
                serial = w[i].serial_of[k];
                committed += (size_t)w[i].committed[k];
            }
        }
        assert_true(holders <= 1);
        sm_reg_holder_t out;
        if (holders) {
            assert_int_equal(sm_registry_lookup(sh->r, id, strlen(id), &out), 0);
            assert_int_equal(out.serial, serial);
        } else {
            assert_int_equal(sm_registry_lookup(sh->r, id, strlen(id), &out), SM_ENOTFOUND);
        }
    }
    for (int i = 0; i < THREADS; i++) {
        claims += w[i].claims;
        conflicts += w[i].conflicts;
    }
    assert_true(claims > 1000);
    assert_true(conflicts > 0); /* the ids really overlapped */
    assert_int_equal(sm_registry_count(sh->r), committed);

    /* Release everything: the count returns to 0. */
    for (int k = 0; k < IDS; k++) {
        snprintf(id, sizeof id, "id-%d", k);
        for (int i = 0; i < THREADS; i++)
            if (w[i].held[k])
                assert_int_equal(sm_registry_release(sh->r, id, w[i].serial_of[k]), 0);
    }
    assert_int_equal(sm_registry_count(sh->r), 0);
    sm_registry_free(sh->r);
    free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_conflict_commit_release),
        cmocka_unit_test(test_release_pending_keeps_count),
        cmocka_unit_test(test_set_conn),
        cmocka_unit_test(test_lookup_by_len),
        cmocka_unit_test(test_many_ids_and_shards),
        cmocka_unit_test(test_threaded_claims),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
