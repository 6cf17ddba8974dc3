/*
 * Unit tests for signal-bench's pure parts: the latency histogram
 * (src/bench/hist.c), the /proc readers (src/bench/procstat.c, on our own
 * process) and the pre-encoded masked frame templates (src/bench/wsclient.c:
 * sm_ws_tpl_init / sm_ws_tpl_patch, no socket involved).
 * Built and run by `make bench-test` (mk/bench.mk), part of `make test-unit`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sm/proto.h>

#include "bench/hist.h"
#include "bench/procstat.h"
#include "bench/wsclient.h"

static sm_bench_hist_t h; /* 30 KiB: keep it off the stack */

static void test_index_is_monotonic_and_ranges_tile(void **state)
{
    (void)state;
    uint64_t prev_hi = 0;
    for (unsigned i = 0; i < SM_BENCH_HIST_BUCKETS; i++) {
        uint64_t lo, hi;
        sm_bench_hist_bucket_range(i, &lo, &hi);
        assert_true(lo <= hi);
        if (i > 0)
            assert_int_equal(lo, prev_hi + 1); /* no gap, no overlap */
        assert_int_equal(sm_bench_hist_index(lo), i);
        assert_int_equal(sm_bench_hist_index(hi), i);
        prev_hi = hi;
    }
    assert_true(prev_hi == UINT64_MAX);
}

static void test_bucket_width_bounds_error(void **state)
{
    (void)state;
    /* Every bucket above the exact range is at most 1/64 of its low end. */
    for (unsigned i = SM_BENCH_HIST_SUB_COUNT; i < SM_BENCH_HIST_BUCKETS; i++) {
        uint64_t lo, hi;
        sm_bench_hist_bucket_range(i, &lo, &hi);
        assert_true((hi - lo) <= lo / 64);
    }
}

static void test_quantiles(void **state)
{
    (void)state;
    sm_bench_hist_reset(&h);
    assert_int_equal(sm_bench_hist_quantile(&h, 0.5), 0);
    /* 1..100000 ns, one each. */
    for (uint64_t v = 1; v <= 100000; v++)
        sm_bench_hist_add(&h, v);
    assert_int_equal(h.count, 100000);
    assert_int_equal(h.min, 1);
    assert_int_equal(h.max, 100000);
    uint64_t p50 = sm_bench_hist_quantile(&h, 0.5);
    uint64_t p99 = sm_bench_hist_quantile(&h, 0.99);
    uint64_t p999 = sm_bench_hist_quantile(&h, 0.999);
    assert_true(p50 >= 50000 - 50000 / 64 && p50 <= 50000 + 50000 / 64);
    assert_true(p99 >= 99000 - 99000 / 64 && p99 <= 99000 + 99000 / 64);
    assert_true(p999 >= 99900 - 99900 / 64 && p999 <= 100000);
    assert_int_equal(sm_bench_hist_quantile(&h, 1.0), 100000);
    assert_int_equal(sm_bench_hist_quantile(&h, 0.0), 1);
}

static void test_quantile_outlier_and_merge(void **state)
{
    (void)state;
    static sm_bench_hist_t other;
    sm_bench_hist_reset(&h);
    sm_bench_hist_reset(&other);
    for (int i = 0; i < 999; i++)
        sm_bench_hist_add(&h, 1000);
    sm_bench_hist_add(&other, 5000000000ull); /* one 5 s outlier */
    sm_bench_hist_merge(&h, &other);
    assert_int_equal(h.count, 1000);
    /* The middle of 1000's bucket (within 1/128 of it), not the outlier. */
    assert_in_range(sm_bench_hist_quantile(&h, 0.99), 1000 - 1000 / 128, 1000 + 1000 / 128);
    assert_in_range(sm_bench_hist_quantile(&h, 0.999), 1000 - 1000 / 128, 1000 + 1000 / 128);
    assert_int_equal(h.max, 5000000000ull);
    uint64_t top = sm_bench_hist_quantile(&h, 0.9999);
    assert_true(top >= 5000000000ull - 5000000000ull / 64 && top <= 5000000000ull);
}

static void test_procstat_self(void **state)
{
    (void)state;
    uint64_t cpu = 0, rss = 0;
    assert_int_equal(sm_proc_cpu_us(getpid(), &cpu), 0);
    assert_int_equal(sm_proc_rss_kib(getpid(), &rss), 0);
    assert_true(rss > 0);
    /* A pid that cannot exist (above pid_max's hard limit of 2^22). */
    assert_true(sm_proc_cpu_us(1 << 23, &cpu) < 0);
    assert_true(sm_proc_rss_kib(1 << 23, &rss) < 0);
    /* Burn a little CPU: our own counter moves. */
    uint64_t t0 = sm_self_cpu_us();
    volatile uint64_t x = 0;
    while (sm_self_cpu_us() - t0 < 20000)
        x++;
    assert_true(sm_self_cpu_us() >= t0 + 20000);
}

/* Unmask a client frame built by a template and decode the protocol frame. */
static void unmask(const uint8_t *frame, size_t hdr, size_t n, uint8_t *out)
{
    const uint8_t *mask = frame + hdr - 4;
    for (size_t i = 0; i < n; i++)
        out[i] = frame[hdr + i] ^ mask[i & 3];
}

static void test_template_patch(void **state)
{
    (void)state;
    const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    uint8_t uuid[16] = {0};
    uint8_t msg[64];
    size_t n = 0;
    const char json[] = "{\"timestamp\":1}";
    assert_int_equal(sm_frame_encode(msg, sizeof msg, SM_MSG_PING, uuid, SM_PAYLOAD_JSON, json,
                                     sizeof json - 1, &n),
                     SM_PROTO_OK);
    sm_ws_tpl_t t;
    sm_ws_tpl_init(&t, mask, msg, n);
    assert_int_equal(t.hdr, 6); /* 2 + mask key: payload < 126 */
    assert_int_equal(t.len, 6 + n);
    assert_int_equal(t.bytes[0], 0x82); /* FIN + binary */
    assert_int_equal(t.bytes[1], 0x80 | n);
    uint8_t copy[128];
    memcpy(copy, t.bytes, t.len);
    uint8_t u[16];
    for (int i = 0; i < 16; i++)
        u[i] = (uint8_t)(0xa0 + i);
    sm_ws_tpl_patch(copy, &t, mask, 2, u, sizeof u);
    uint8_t plain[512];
    unmask(copy, t.hdr, n, plain);
    sm_frame_t f;
    assert_int_equal(sm_frame_decode(plain, n, &f), SM_PROTO_OK);
    assert_int_equal(f.type, SM_MSG_PING);
    assert_memory_equal(f.uuid, u, 16);
    assert_memory_equal(f.payload, json, sizeof json - 1);
    sm_ws_tpl_free(&t);

    /* 16-bit length form. */
    uint8_t big[300];
    memset(big, 'x', sizeof big);
    sm_ws_tpl_init(&t, mask, big, sizeof big);
    assert_int_equal(t.hdr, 8);
    assert_int_equal(t.bytes[1], 0x80 | 126);
    assert_int_equal((t.bytes[2] << 8) | t.bytes[3], 300);
    unmask(t.bytes, t.hdr, sizeof big, plain);
    assert_memory_equal(plain, big, 128);
    sm_ws_tpl_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_is_monotonic_and_ranges_tile),
        cmocka_unit_test(test_bucket_width_bounds_error),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_quantile_outlier_and_merge),
        cmocka_unit_test(test_procstat_self),
        cmocka_unit_test(test_template_patch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
