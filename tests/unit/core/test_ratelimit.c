/*
 * Unit tests for src/core/ratelimit.c: token buckets (burst then rate,
 * refill capped at burst, fractional rates summed in small steps, refused
 * attempts cost nothing, a clock going backwards) and the per-source table
 * (isolation between sources, IPv6 grouped by /64 and IPv4-mapped by IPv4,
 * at most max_entries buckets under a flood of distinct sources, full
 * buckets evicted before refilling ones, shrinking when idle).  Time is
 * passed by hand: no clock, no sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "core/ratelimit.h"
#include "support/sockaddr.h"

/* ---- buckets ---- */

static void test_bucket_burst_then_rate(void **state)
{
    (void)state;
    sm_bucket_t b;
    sm_bucket_init(&b, 3, 0);
    assert_true(sm_bucket_take(&b, 1, 3, 0));
    assert_true(sm_bucket_take(&b, 1, 3, 0));
    assert_true(sm_bucket_take(&b, 1, 3, 0));
    assert_false(sm_bucket_take(&b, 1, 3, 0));
    assert_false(sm_bucket_take(&b, 1, 3, 999));
    assert_true(sm_bucket_take(&b, 1, 3, 1000));
    assert_false(sm_bucket_take(&b, 1, 3, 1000));
    /* Steady state: exactly one per second. */
    int allowed = 0;
    for (uint64_t t = 1000; t <= 11000; t += 100)
        allowed += sm_bucket_take(&b, 1, 3, t);
    assert_int_equal(allowed, 10);
}

static void test_bucket_refill_capped(void **state)
{
    (void)state;
    sm_bucket_t b;
    sm_bucket_init(&b, 5, 0);
    for (int i = 0; i < 5; i++)
        assert_true(sm_bucket_take(&b, 10, 5, 0));
    assert_false(sm_bucket_take(&b, 10, 5, 0));
    /* A day idle buys burst tokens, not 864000. */
    uint64_t t = 86400000;
    for (int i = 0; i < 5; i++)
        assert_true(sm_bucket_take(&b, 10, 5, t));
    assert_false(sm_bucket_take(&b, 10, 5, t));
    assert_true(b.tokens >= 0 && b.tokens < 1);
}

static void test_bucket_refused_costs_nothing(void **state)
{
    (void)state;
    sm_bucket_t b;
    sm_bucket_init(&b, 1, 0);
    assert_true(sm_bucket_take(&b, 1, 1, 0));
    /* Hammering while empty does not push the next token further away. */
    for (uint64_t t = 1; t < 1000; t += 7)
        assert_false(sm_bucket_take(&b, 1, 1, t));
    assert_true(sm_bucket_take(&b, 1, 1, 1000));
}

static void test_bucket_fractional(void **state)
{
    (void)state;
    sm_bucket_t b;
    /* 0.5/s: one every 2 s. */
    sm_bucket_init(&b, 1, 0);
    assert_true(sm_bucket_take(&b, 0.5, 1, 0));
    assert_false(sm_bucket_take(&b, 0.5, 1, 1999));
    assert_true(sm_bucket_take(&b, 0.5, 1, 2000));
    assert_false(sm_bucket_take(&b, 0.5, 1, 3000));
    assert_true(sm_bucket_take(&b, 0.5, 1, 4000));

    /* 0.1/s polled every 100 ms: 0.01 tokens per step, summed 1000 times
     * per token.  One burst token, then one per 10 s: 11 in 100 s. */
    sm_bucket_init(&b, 1, 0);
    int allowed = 0;
    uint64_t first_refill = 0;
    for (uint64_t t = 0; t <= 100000; t += 100) {
        if (sm_bucket_take(&b, 0.1, 1, t)) {
            allowed++;
            if (allowed == 2)
                first_refill = t;
        }
    }
    assert_int_equal(allowed, 11);
    assert_int_equal(first_refill, 10000);

    /* 2.5 burst: two at once, the half token stays. */
    sm_bucket_init(&b, 2.5, 0);
    assert_true(sm_bucket_take(&b, 1, 2.5, 0));
    assert_true(sm_bucket_take(&b, 1, 2.5, 0));
    assert_false(sm_bucket_take(&b, 1, 2.5, 0));
    assert_true(sm_bucket_take(&b, 1, 2.5, 500));
}

static void test_bucket_edges(void **state)
{
    (void)state;
    sm_bucket_t b;
    /* Zeroed: empty at time 0, full after burst/rate. */
    memset(&b, 0, sizeof b);
    assert_false(sm_bucket_take(&b, 1, 2, 0));
    assert_true(sm_bucket_take(&b, 1, 2, 2000));
    assert_true(sm_bucket_take(&b, 1, 2, 2000));
    assert_false(sm_bucket_take(&b, 1, 2, 2000));

    /* A clock that goes backwards refills nothing and does not rewind. */
    sm_bucket_init(&b, 1, 5000);
    assert_true(sm_bucket_take(&b, 1, 1, 5000));
    assert_false(sm_bucket_take(&b, 1, 1, 1000));
    assert_int_equal(b.last_ms, 5000);
    assert_false(sm_bucket_take(&b, 1, 1, 5999));
    assert_true(sm_bucket_take(&b, 1, 1, 6000));

    /* Rate 0: the burst and nothing more.  Burst < 1: nothing at all. */
    sm_bucket_init(&b, 2, 0);
    assert_true(sm_bucket_take(&b, 0, 2, 0));
    assert_true(sm_bucket_take(&b, 0, 2, 0));
    assert_false(sm_bucket_take(&b, 0, 2, 1000000));
    sm_bucket_init(&b, 0.5, 0);
    assert_false(sm_bucket_take(&b, 100, 0.5, 0));
    assert_false(sm_bucket_take(&b, 100, 0.5, 1000000));
}

/* ---- per-source table ---- */

static bool allow(sm_iplimit_t *l, const char *addr, uint64_t now)
{
    struct sockaddr_storage ss = t_sockaddr(addr, 0);
    return sm_iplimit_allow(l, (const struct sockaddr *)&ss, now);
}

static bool allow_v4(sm_iplimit_t *l, uint32_t ip, uint16_t port, uint64_t now)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(ip);
    sin.sin_port = htons(port);
    return sm_iplimit_allow(l, (const struct sockaddr *)&sin, now);
}

static void test_iplimit_params(void **state)
{
    (void)state;
    assert_null(sm_iplimit_new(0, 10, 100));
    assert_null(sm_iplimit_new(-1, 10, 100));
    assert_null(sm_iplimit_new(NAN, 10, 100));
    assert_null(sm_iplimit_new(INFINITY, 10, 100));
    assert_null(sm_iplimit_new(1, 0.5, 100));
    assert_null(sm_iplimit_new(1, INFINITY, 100));
    assert_null(sm_iplimit_new(1, 10, 0));
    /* NULL means disabled: everything passes. */
    for (int i = 0; i < 100; i++)
        assert_true(allow(NULL, "192.0.2.1", 0));
    assert_int_equal(sm_iplimit_size(NULL), 0);
    assert_int_equal(sm_iplimit_forced_evictions(NULL), 0);
    sm_iplimit_free(NULL);
}

static void test_iplimit_isolation(void **state)
{
    (void)state;
    sm_iplimit_t *l = sm_iplimit_new(1, 2, 100);
    assert_non_null(l);
    assert_true(allow(l, "192.0.2.1", 0));
    assert_true(allow(l, "192.0.2.1", 0));
    assert_false(allow(l, "192.0.2.1", 0));
    /* Another source is untouched. */
    assert_true(allow(l, "192.0.2.2", 0));
    assert_true(allow(l, "192.0.2.2", 0));
    assert_false(allow(l, "192.0.2.2", 0));
    assert_true(allow(l, "2001:db8::1", 0));
    assert_int_equal(sm_iplimit_size(l), 3);
    /* The port is not part of the key. */
    assert_false(allow_v4(l, 0xc0000201, 1, 10));
    assert_false(allow_v4(l, 0xc0000201, 65535, 20));
    /* Rate: one more per second. */
    assert_true(allow(l, "192.0.2.1", 1000));
    assert_false(allow(l, "192.0.2.1", 1000));
    sm_iplimit_free(l);
}

static void test_iplimit_ipv6_prefix(void **state)
{
    (void)state;
    sm_iplimit_t *l = sm_iplimit_new(1, 3, 100);
    /* Three addresses of one /64: one bucket of 3. */
    assert_true(allow(l, "2001:db8:1:2::1", 0));
    assert_true(allow(l, "2001:db8:1:2:ffff:ffff:ffff:ffff", 0));
    assert_true(allow(l, "2001:db8:1:2:1234::9", 0));
    assert_false(allow(l, "2001:db8:1:2::77", 0));
    assert_int_equal(sm_iplimit_size(l), 1);
    /* The neighbouring /64 is another client. */
    assert_true(allow(l, "2001:db8:1:3::1", 0));
    assert_int_equal(sm_iplimit_size(l), 2);

    /* IPv4-mapped counts as the IPv4 address, not as ::ffff:0:0/64. */
    assert_true(allow(l, "198.51.100.1", 0));
    assert_true(allow(l, "::ffff:198.51.100.1", 0));
    assert_true(allow(l, "198.51.100.1", 0));
    assert_false(allow(l, "::ffff:198.51.100.1", 0));
    assert_true(allow(l, "::ffff:198.51.100.2", 0));
    assert_int_equal(sm_iplimit_size(l), 4);

    /* Non-IP families share one bucket. */
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    assert_true(sm_iplimit_allow(l, (const struct sockaddr *)&sun, 0));
    assert_true(sm_iplimit_allow(l, NULL, 0));
    assert_true(sm_iplimit_allow(l, (const struct sockaddr *)&sun, 0));
    assert_false(sm_iplimit_allow(l, NULL, 0));
    assert_int_equal(sm_iplimit_size(l), 5);
    sm_iplimit_free(l);
}

static void test_iplimit_bounded(void **state)
{
    (void)state;
    const size_t max = 64;
    sm_iplimit_t *l = sm_iplimit_new(1, 5, max);
    /* A flood of 10x max distinct sources at one instant: nothing refills, so
     * every eviction is forced; the size never passes max. */
    for (uint32_t i = 0; i < 10 * max; i++) {
        assert_true(allow_v4(l, 0x0a000000 + i, 1, 0));
        assert_true(sm_iplimit_size(l) <= max);
    }
    assert_int_equal(sm_iplimit_size(l), max);
    assert_int_equal(sm_iplimit_forced_evictions(l), 9 * max);

    /* Spread over time, with IPv6 /64s too. */
    for (uint32_t i = 0; i < 10 * max; i++) {
        char a[64];
        snprintf(a, sizeof a, "2001:db8:%x:%x::1", i >> 8, i & 0xff);
        assert_true(allow(l, a, 100 + i));
        assert_true(allow_v4(l, 0x0b000000 + i, 1, 100 + i));
        assert_true(sm_iplimit_size(l) <= max);
    }
    sm_iplimit_free(l);
}

static void test_iplimit_evicts_full_first(void **state)
{
    (void)state;
    sm_iplimit_t *l = sm_iplimit_new(1, 3, 4);
    /* A empties its bucket at 0; B, C, D take one each at 1 s. */
    for (int i = 0; i < 3; i++)
        assert_true(allow(l, "192.0.2.10", 0));
    assert_true(allow(l, "192.0.2.11", 1000));
    assert_true(allow(l, "192.0.2.12", 1000));
    assert_true(allow(l, "192.0.2.13", 1000));
    assert_int_equal(sm_iplimit_size(l), 4);

    /* At 2.5 s A (least recently used) holds 2.5 tokens, still refilling;
     * B, C, D are full again.  A new source takes B's place, not A's. */
    assert_true(allow(l, "192.0.2.14", 2500));
    assert_int_equal(sm_iplimit_size(l), 4);
    assert_int_equal(sm_iplimit_forced_evictions(l), 0);
    /* A kept its state: 2.5 tokens, so two more and then refused (a fresh
     * bucket would have allowed three). */
    assert_true(allow(l, "192.0.2.10", 2500));
    assert_true(allow(l, "192.0.2.10", 2500));
    assert_false(allow(l, "192.0.2.10", 2500));

    /* Table full of refilling buckets: the least recently used goes, and
     * that is counted. */
    sm_iplimit_free(l);
    l = sm_iplimit_new(1, 2, 2);
    assert_true(allow(l, "192.0.2.1", 0));
    assert_true(allow(l, "192.0.2.1", 0));
    assert_true(allow(l, "192.0.2.2", 0));
    assert_true(allow(l, "192.0.2.3", 0)); /* evicts .1, still empty */
    assert_int_equal(sm_iplimit_forced_evictions(l), 1);
    assert_int_equal(sm_iplimit_size(l), 2);
    /* .2 was kept: one token left, then refused. */
    assert_true(allow(l, "192.0.2.2", 0));
    assert_false(allow(l, "192.0.2.2", 0));
    sm_iplimit_free(l);
}

static void test_iplimit_refused_source_stays(void **state)
{
    (void)state;
    /* An abuser that keeps trying is always the most recently used, so a
     * flood of other sources cannot evict it and hand it a new burst. */
    sm_iplimit_t *l = sm_iplimit_new(1, 1, 8);
    assert_true(allow(l, "203.0.113.66", 0));
    for (uint32_t i = 0; i < 100; i++) {
        assert_true(allow_v4(l, 0x0a000000 + i, 1, 0));
        assert_false(allow(l, "203.0.113.66", 0));
    }
    sm_iplimit_free(l);
}

static void test_iplimit_shrinks_when_idle(void **state)
{
    (void)state;
    sm_iplimit_t *l = sm_iplimit_new(10, 5, 1000);
    for (uint32_t i = 0; i < 50; i++)
        assert_true(allow_v4(l, 0x0a000000 + i, 1, 0));
    assert_int_equal(sm_iplimit_size(l), 50);
    /* Half a second later every bucket is full again: each call from the
     * one remaining client drops a few from the LRU head. */
    for (int i = 0; i < 30; i++)
        assert_true(allow(l, "192.0.2.1", 500 + (uint64_t)i * 200));
    assert_int_equal(sm_iplimit_size(l), 1);
    assert_int_equal(sm_iplimit_forced_evictions(l), 0);
    sm_iplimit_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_burst_then_rate),
        cmocka_unit_test(test_bucket_refill_capped),
        cmocka_unit_test(test_bucket_refused_costs_nothing),
        cmocka_unit_test(test_bucket_fractional),
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_iplimit_params),
        cmocka_unit_test(test_iplimit_isolation),
        cmocka_unit_test(test_iplimit_ipv6_prefix),
        cmocka_unit_test(test_iplimit_bounded),
        cmocka_unit_test(test_iplimit_evicts_full_first),
        cmocka_unit_test(test_iplimit_refused_source_stays),
        cmocka_unit_test(test_iplimit_shrinks_when_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
