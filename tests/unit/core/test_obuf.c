/*
 * Unit tests for src/core/obuf.c: the WebSocket server-frame header written
 * in front of the body (RFC 6455 §5.2: FIN + opcode, no mask bit, 7/16/64-bit
 * length, each length form at its boundaries), reference counting, and the
 * ready-made close frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/obuf.h"

/* Finish a body of `len` bytes (pattern-filled) and check header bytes and
 * that the body follows the header untouched. */
static void check_header(size_t len, const uint8_t *want_hdr, size_t hlen)
{
    sm_obuf_t *b = sm_obuf_new(len);
    assert_int_equal(b->cap, len);
    uint8_t *body = sm_obuf_body(b);
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i * 7 + 3);
    sm_obuf_finish_ws(b, len, 0x2);
    assert_int_equal(b->len, hlen + len);
    assert_int_equal(b->off, SM_OBUF_HEADROOM - hlen);
    const uint8_t *p = sm_obuf_bytes(b);
    assert_memory_equal(p, want_hdr, hlen);
    assert_ptr_equal(p + hlen, sm_obuf_body(b)); /* header sits right before the body */
    for (size_t i = 0; i < len; i++)
        if (p[hlen + i] != (uint8_t)(i * 7 + 3))
            fail_msg("body byte %zu changed", i);
    sm_obuf_unref(b);
}

static void test_header_len_0(void **state)
{
    (void)state;
    static const uint8_t h[] = {0x82, 0x00};
    check_header(0, h, sizeof h);
}

static void test_header_len_125(void **state)
{
    (void)state;
    static const uint8_t h[] = {0x82, 0x7d};
    check_header(125, h, sizeof h);
}

static void test_header_len_126(void **state)
{
    (void)state;
    static const uint8_t h[] = {0x82, 0x7e, 0x00, 0x7e};
    check_header(126, h, sizeof h);
}

static void test_header_len_300(void **state)
{
    (void)state;
    static const uint8_t h[] = {0x82, 0x7e, 0x01, 0x2c};
    check_header(300, h, sizeof h);
}

static void test_header_len_65535(void **state)
{
    (void)state;
    static const uint8_t h[] = {0x82, 0x7e, 0xff, 0xff};
    check_header(65535, h, sizeof h);
}

static void test_header_len_65536(void **state)
{
    (void)state;
    static const uint8_t h[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    check_header(65536, h, sizeof h);
}

static void test_header_len_70000(void **state)
{
    (void)state;
    /* 70000 = 0x011170 */
    static const uint8_t h[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70};
    check_header(70000, h, sizeof h);
}

static void test_opcode_and_shorter_body(void **state)
{
    (void)state;
    /* Body shorter than cap; opcode bits beyond 4 are masked off. */
    sm_obuf_t *b = sm_obuf_new(100);
    memcpy(sm_obuf_body(b), "hi", 2);
    sm_obuf_finish_ws(b, 2, 0x9);
    static const uint8_t want[] = {0x89, 0x02, 'h', 'i'};
    assert_int_equal(b->len, sizeof want);
    assert_memory_equal(sm_obuf_bytes(b), want, sizeof want);
    sm_obuf_unref(b);

    b = sm_obuf_new(1);
    sm_obuf_body(b)[0] = 'x';
    sm_obuf_finish_ws(b, 1, 0x12);
    assert_int_equal(sm_obuf_bytes(b)[0], 0x82);
    assert_int_equal(sm_obuf_bytes(b)[1], 0x01); /* no mask bit from the server */
    sm_obuf_unref(b);
}

static void test_refcount(void **state)
{
    (void)state;
    sm_obuf_t *b = sm_obuf_new(4);
    assert_int_equal(atomic_load(&b->_refs), 1);
    assert_ptr_equal(sm_obuf_ref(b), b);
    assert_ptr_equal(sm_obuf_ref(b), b);
    assert_int_equal(atomic_load(&b->_refs), 3);
    sm_obuf_unref(b);
    sm_obuf_unref(b);
    assert_int_equal(atomic_load(&b->_refs), 1);
    /* Still usable by the last holder. */
    memcpy(sm_obuf_body(b), "abcd", 4);
    sm_obuf_finish_ws(b, 4, 0x2);
    assert_memory_equal(sm_obuf_bytes(b) + 2, "abcd", 4);
    sm_obuf_unref(b); /* frees: ASan reports a leak or double free otherwise */
    sm_obuf_unref(NULL);
}

static void test_close_frame(void **state)
{
    (void)state;
    sm_obuf_t *b = sm_obuf_new_close(1000, "bye");
    static const uint8_t want[] = {0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e'};
    assert_int_equal(b->len, sizeof want);
    assert_memory_equal(sm_obuf_bytes(b), want, sizeof want);
    sm_obuf_unref(b);

    b = sm_obuf_new_close(4408, NULL);
    static const uint8_t want2[] = {0x88, 0x02, 0x11, 0x38};
    assert_int_equal(b->len, sizeof want2);
    assert_memory_equal(sm_obuf_bytes(b), want2, sizeof want2);
    sm_obuf_unref(b);

    b = sm_obuf_new_close(1009, "");
    static const uint8_t want3[] = {0x88, 0x02, 0x03, 0xf1};
    assert_int_equal(b->len, sizeof want3);
    assert_memory_equal(sm_obuf_bytes(b), want3, sizeof want3);
    sm_obuf_unref(b);
}

static void test_close_frame_reason_truncated(void **state)
{
    (void)state;
    /* Control frames carry at most 125 payload bytes: 2 code + 123 reason. */
    char reason[301];
    memset(reason, 'r', 300);
    reason[300] = '\0';
    sm_obuf_t *b = sm_obuf_new_close(1011, reason);
    const uint8_t *p = sm_obuf_bytes(b);
    assert_int_equal(b->len, 2 + 125);
    assert_int_equal(p[0], 0x88);
    assert_int_equal(p[1], 125);
    assert_int_equal(p[2], 0x03);
    assert_int_equal(p[3], 0xf3);
    assert_memory_equal(p + 4, reason, 123);
    sm_obuf_unref(b);

    /* Exactly 123 fits whole. */
    reason[123] = '\0';
    b = sm_obuf_new_close(1000, reason);
    assert_int_equal(b->len, 2 + 125);
    sm_obuf_unref(b);
    reason[122] = '\0';
    b = sm_obuf_new_close(1000, reason);
    assert_int_equal(b->len, 2 + 124);
    assert_int_equal(sm_obuf_bytes(b)[1], 124);
    sm_obuf_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_len_0),
        cmocka_unit_test(test_header_len_125),
        cmocka_unit_test(test_header_len_126),
        cmocka_unit_test(test_header_len_300),
        cmocka_unit_test(test_header_len_65535),
        cmocka_unit_test(test_header_len_65536),
        cmocka_unit_test(test_header_len_70000),
        cmocka_unit_test(test_opcode_and_shorter_body),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_close_frame),
        cmocka_unit_test(test_close_frame_reason_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
