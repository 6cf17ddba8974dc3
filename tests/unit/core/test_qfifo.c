/*
 * Unit tests for src/core/qfifo.c: the unbounded overflow FIFO in front of a
 * ring.  Order across growth (also when the live items wrap around the end
 * of the array), peek/pop on empty, and draining into a ring that fills up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/qfifo.h"

static sm_qitem_t mk(uint32_t n)
{
    sm_qitem_t it;
    memset(&it, 0, sizeof it);
    it.handle = 0x1000000000ull + n;
    it.ptr = (void *)(uintptr_t)(n * 3u + 1u);
    it.arg = n;
    it.kind = (uint16_t)(n % 7u);
    it.flags = (uint16_t)(n % 5u);
    return it;
}

static void push(sm_qfifo_t *q, uint32_t n)
{
    sm_qitem_t it = mk(n);
    sm_qfifo_push(q, &it);
}

static void assert_is(const sm_qitem_t *it, uint32_t n)
{
    assert_non_null(it);
    sm_qitem_t want = mk(n);
    assert_int_equal(it->handle, want.handle);
    assert_ptr_equal(it->ptr, want.ptr);
    assert_int_equal(it->arg, want.arg);
    assert_int_equal(it->kind, want.kind);
    assert_int_equal(it->flags, want.flags);
}

static void test_empty(void **state)
{
    (void)state;
    sm_qfifo_t q = {0};
    assert_null(sm_qfifo_peek(&q));
    sm_qfifo_pop(&q); /* no-op on empty */
    assert_int_equal(q.count, 0);
    sm_ring_t r;
    sm_ring_init(&r, 4);
    assert_int_equal(sm_qfifo_drain_to(&q, &r), 0);
    sm_ring_destroy(&r);
    sm_qfifo_destroy(&q);
    sm_qfifo_destroy(&q); /* idempotent */
}

static void test_order_and_growth(void **state)
{
    (void)state;
    sm_qfifo_t q = {0};
    for (uint32_t i = 0; i < 1000; i++)
        push(&q, i);
    assert_int_equal(q.count, 1000);
    for (uint32_t i = 0; i < 1000; i++) {
        assert_is(sm_qfifo_peek(&q), i);
        sm_qfifo_pop(&q);
    }
    assert_null(sm_qfifo_peek(&q));
    sm_qfifo_destroy(&q);
}

static void test_growth_while_wrapped(void **state)
{
    (void)state;
    sm_qfifo_t q = {0};
    uint32_t in = 0, out = 0;
    /* Fill the first array (64), pop some so head moves, then push until the
     * live items wrap past the end, then once more to force a regrow. */
    for (; in < 64; in++)
        push(&q, in);
    size_t cap0 = q.cap;
    for (; out < 40; out++) {
        assert_is(sm_qfifo_peek(&q), out);
        sm_qfifo_pop(&q);
    }
    for (; in < 64 + 40; in++)
        push(&q, in);
    assert_int_equal(q.cap, cap0); /* still the same array, wrapped */
    assert_true(q.head + q.count > q.cap);
    for (int k = 0; k < 3; k++, in++)
        push(&q, in); /* grows */
    assert_true(q.cap > cap0);
    while (sm_qfifo_peek(&q)) {
        assert_is(sm_qfifo_peek(&q), out);
        sm_qfifo_pop(&q);
        out++;
    }
    assert_int_equal(out, in);
    sm_qfifo_destroy(&q);
}

static void test_drain_to_ring(void **state)
{
    (void)state;
    sm_qfifo_t q = {0};
    sm_ring_t r;
    sm_ring_init(&r, 8);
    /* One item already in the ring: only 7 more fit. */
    sm_qitem_t pre = mk(5000);
    assert_true(sm_ring_push(&r, &pre));
    for (uint32_t i = 0; i < 20; i++)
        push(&q, i);
    assert_int_equal(sm_qfifo_drain_to(&q, &r), 7);
    assert_int_equal(q.count, 13);
    assert_is(sm_qfifo_peek(&q), 7); /* the first one not moved */
    assert_int_equal(sm_qfifo_drain_to(&q, &r), 0);

    sm_qitem_t got;
    assert_true(sm_ring_pop(&r, &got));
    assert_is(&got, 5000);
    for (uint32_t i = 0; i < 7; i++) {
        assert_true(sm_ring_pop(&r, &got));
        assert_is(&got, i);
    }
    assert_false(sm_ring_pop(&r, &got));
    (void)sm_ring_take_starved(&r);

    /* Room for everything that is left. */
    assert_int_equal(sm_qfifo_drain_to(&q, &r), 8);
    assert_int_equal(sm_qfifo_drain_to(&q, &r), 0);
    for (uint32_t i = 7; i < 15; i++) {
        assert_true(sm_ring_pop(&r, &got));
        assert_is(&got, i);
    }
    assert_int_equal(sm_qfifo_drain_to(&q, &r), 5);
    assert_null(sm_qfifo_peek(&q));
    for (uint32_t i = 15; i < 20; i++) {
        assert_true(sm_ring_pop(&r, &got));
        assert_is(&got, i);
    }
    assert_false(sm_ring_pop(&r, &got));
    sm_ring_destroy(&r);
    sm_qfifo_destroy(&q);
}

static void test_interleaved_push_pop(void **state)
{
    (void)state;
    sm_qfifo_t q = {0};
    uint32_t in = 0, out = 0;
    for (int round = 0; round < 500; round++) {
        int pushes = 1 + round % 9;
        int pops = round % 7;
        for (int k = 0; k < pushes; k++)
            push(&q, in++);
        for (int k = 0; k < pops && q.count; k++) {
            assert_is(sm_qfifo_peek(&q), out++);
            sm_qfifo_pop(&q);
        }
        assert_int_equal(q.count, in - out);
    }
    while (q.count) {
        assert_is(sm_qfifo_peek(&q), out++);
        sm_qfifo_pop(&q);
    }
    assert_int_equal(in, out);
    sm_qfifo_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_order_and_growth),
        cmocka_unit_test(test_growth_while_wrapped),
        cmocka_unit_test(test_drain_to_ring),
        cmocka_unit_test(test_interleaved_push_pop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
