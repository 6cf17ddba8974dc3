/*
 * Unit tests for src/ws/ws_conn.c: the receive side on wslay with contexts
 * borrowed per read.
 *
 * Client frames are built by hand (masked as RFC 6455 §5.3 requires, with
 * minimal length encodings) and fed through sm_ws_feed with a fake
 * connection that records delivered messages and emitted bytes.  Covered:
 * delivery, several messages per feed, every split point of a message across
 * two feeds (context attached while incomplete, *slot back to NULL at a
 * message boundary), fragmentation, ping -> pong, close echo, text -> 1003,
 * unmasked -> 1002, too big -> 1009, server_closing, and the one-spare rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws/ws_conn.h"

/* ---- frame builder ---- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} buf_t;

static void buf_put(buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->data = realloc(b->data, cap);
        assert_non_null(b->data);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_free(buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static const uint8_t default_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Append one client frame.  masked=false builds an (illegal) unmasked one. */
static void frame(buf_t *b, bool fin, uint8_t opcode, const void *payload, size_t n, bool masked)
{
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t mbit = masked ? 0x80 : 0;
    if (n < 126) {
        h[hl++] = (uint8_t)(mbit | n);
    } else if (n <= 0xffff) {
        h[hl++] = mbit | 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    if (masked) {
        memcpy(h + hl, default_mask, 4);
        hl += 4;
    }
    buf_put(b, h, hl);
    const uint8_t *p = payload;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = masked ? (uint8_t)(p[i] ^ default_mask[i % 4]) : p[i];
        buf_put(b, &c, 1);
    }
}

static void close_frame(buf_t *b, uint16_t code, const char *reason)
{
    uint8_t p[128];
    size_t n = 0;
    p[n++] = (uint8_t)(code >> 8);
    p[n++] = (uint8_t)code;
    if (reason) {
        memcpy(p + n, reason, strlen(reason));
        n += strlen(reason);
    }
    frame(b, true, 0x8, p, n, true);
}

/* ---- fake connection ---- */

#define MAX_MSGS 64

typedef struct {
    int nmsg;
    buf_t msgs[MAX_MSGS];
    buf_t emitted;
    int emits;
} conn_t;

static void *g_last_conn; /* which conn pointer the callbacks got */

static void on_binary(void *c, const uint8_t *data, size_t len)
{
    conn_t *conn = c;
    g_last_conn = c;
    assert_true(conn->nmsg < MAX_MSGS);
    buf_t *m = &conn->msgs[conn->nmsg++];
    memset(m, 0, sizeof *m);
    buf_put(m, data, len);
}

static void emit(void *c, const uint8_t *data, size_t len)
{
    conn_t *conn = c;
    g_last_conn = c;
    conn->emits++;
    buf_put(&conn->emitted, data, len);
}

static const sm_ws_callbacks_t cbs = {.on_binary = on_binary, .emit = emit};

static void conn_reset(conn_t *c)
{
    for (int i = 0; i < c->nmsg; i++)
        buf_free(&c->msgs[i]);
    buf_free(&c->emitted);
    memset(c, 0, sizeof *c);
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31u + seed);
}

static void assert_msg(const conn_t *c, int i, const uint8_t *want, size_t n)
{
    assert_true(i < c->nmsg);
    assert_int_equal(c->msgs[i].len, n);
    if (n)
        assert_memory_equal(c->msgs[i].data, want, n);
}

/* The emitted bytes must be exactly one unmasked server close frame with
 * this code (and reason when not NULL). */
static void assert_close_emitted(const conn_t *c, uint16_t code, const char *reason)
{
    const uint8_t *e = c->emitted.data;
    assert_true(c->emitted.len >= 4);
    assert_int_equal(e[0], 0x88);
    assert_int_equal(e[1] & 0x80, 0); /* server frames are not masked */
    size_t plen = e[1] & 0x7f;
    assert_int_equal(c->emitted.len, 2 + plen);
    assert_true(plen >= 2);
    assert_int_equal((e[2] << 8) | e[3], code);
    if (reason) {
        assert_int_equal(plen - 2, strlen(reason));
        assert_memory_equal(e + 4, reason, strlen(reason));
    }
}

/* ---- tests ---- */

static void test_single_binary_message(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    uint8_t payload[40];
    pattern(payload, sizeof payload, 1);
    buf_t in = {0};
    frame(&in, true, 0x2, payload, sizeof payload, true);

    sm_ws_result_t res;
    memset(&res, 0xff, sizeof res);
    sm_ws_feed(&t, &slot, &c, in.data, in.len, false, &res);
    assert_int_equal(c.nmsg, 1);
    assert_msg(&c, 0, payload, sizeof payload);
    assert_ptr_equal(g_last_conn, &c);
    assert_int_equal(c.emitted.len, 0);
    assert_false(res.close_received);
    assert_false(res.close_sent);
    assert_false(res.text_rejected);
    assert_false(res.fatal);
    assert_null(slot); /* message boundary: context handed back */
    assert_non_null(t._spare);

    /* An empty binary message is a message too. */
    buf_t in2 = {0};
    frame(&in2, true, 0x2, NULL, 0, true);
    sm_ws_feed(&t, &slot, &c, in2.data, in2.len, false, &res);
    assert_int_equal(c.nmsg, 2);
    assert_int_equal(c.msgs[1].len, 0);
    assert_null(slot);

    buf_free(&in);
    buf_free(&in2);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
}

static void test_two_messages_one_feed(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    uint8_t a[10], b[300];
    pattern(a, sizeof a, 2);
    pattern(b, sizeof b, 3);
    buf_t in = {0};
    frame(&in, true, 0x2, a, sizeof a, true);
    frame(&in, true, 0x2, b, sizeof b, true);
    sm_ws_result_t res;
    sm_ws_feed(&t, &slot, &c, in.data, in.len, false, &res);
    assert_int_equal(c.nmsg, 2);
    assert_msg(&c, 0, a, sizeof a);
    assert_msg(&c, 1, b, sizeof b);
    assert_null(slot);
    assert_int_equal(c.emitted.len, 0);
    buf_free(&in);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
}

/* Feed `in` split at every point into two feeds; the messages delivered
 * must equal those of one feed, the context must stay attached while the
 * split falls inside a message and be released after the second feed. */
static void split_everywhere(const buf_t *in, const size_t *boundaries, size_t nb,
                             uint64_t max_message)
{
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, max_message);
    conn_t whole = {0};
    sm_ws_t *slot = NULL;
    sm_ws_result_t res;
    sm_ws_feed(&t, &slot, &whole, in->data, in->len, false, &res);
    assert_null(slot);
    assert_true(whole.nmsg > 0);

    for (size_t k = 1; k < in->len; k++) {
        conn_t c = {0};
        sm_ws_feed(&t, &slot, &c, in->data, k, false, &res);
        assert_false(res.fatal);
        bool at_boundary = false;
        int done = 0;
        for (size_t i = 0; i < nb; i++) {
            if (boundaries[i] <= k)
                done = (int)i + 1;
            if (boundaries[i] == k)
                at_boundary = true;
        }
        if (c.nmsg != done)
            fail_msg("split at %zu: %d messages after the first part, expected %d", k, c.nmsg,
                     done);
        if (at_boundary && slot != NULL)
            fail_msg("split at %zu (a message boundary): context still attached", k);
        if (!at_boundary && slot == NULL)
            fail_msg("split at %zu (inside a message): context released too early", k);
        sm_ws_feed(&t, &slot, &c, in->data + k, in->len - k, false, &res);
        assert_false(res.fatal);
        assert_false(res.close_sent);
        if (slot != NULL)
            fail_msg("split at %zu: context still attached after the whole input", k);
        assert_int_equal(c.nmsg, whole.nmsg);
        for (int i = 0; i < whole.nmsg; i++)
            assert_msg(&c, i, whole.msgs[i].data, whole.msgs[i].len);
        assert_int_equal(c.emitted.len, whole.emitted.len);
        if (c.emitted.len)
            assert_memory_equal(c.emitted.data, whole.emitted.data, c.emitted.len);
        conn_reset(&c);
    }
    conn_reset(&whole);
    sm_ws_thread_destroy(&t);
}

static void test_split_small_message(void **state)
{
    (void)state;
    uint8_t p[20];
    pattern(p, sizeof p, 4);
    buf_t in = {0};
    frame(&in, true, 0x2, p, sizeof p, true);
    size_t bounds[] = {in.len};
    split_everywhere(&in, bounds, 1, 1 << 20);
    buf_free(&in);
}

static void test_split_two_messages(void **state)
{
    (void)state;
    uint8_t a[5], b[130]; /* b uses the 16-bit length form */
    pattern(a, sizeof a, 5);
    pattern(b, sizeof b, 6);
    buf_t in = {0};
    frame(&in, true, 0x2, a, sizeof a, true);
    size_t first = in.len;
    frame(&in, true, 0x2, b, sizeof b, true);
    size_t bounds[] = {first, in.len};
    split_everywhere(&in, bounds, 2, 1 << 20);
    buf_free(&in);
}

static void test_split_fragmented_with_ping(void **state)
{
    (void)state;
    uint8_t a[7], b[9];
    pattern(a, sizeof a, 7);
    pattern(b, sizeof b, 8);
    buf_t in = {0};
    frame(&in, false, 0x2, a, sizeof a, true);
    frame(&in, true, 0x9, "pp", 2, true); /* control frame between fragments */
    frame(&in, true, 0x0, b, sizeof b, true);
    size_t bounds[] = {in.len};
    split_everywhere(&in, bounds, 1, 1 << 20);
    buf_free(&in);
}

static void test_split_large_message(void **state)
{
    (void)state;
    /* 64-bit length form, larger than wslay's 4 KiB read buffer.  Checking
     * all ~70k split points is slow under sanitizers; take a sample that
     * includes every header byte and the ends. */
    size_t n = 70000;
    uint8_t *p = malloc(n);
    assert_non_null(p);
    pattern(p, n, 9);
    buf_t in = {0};
    frame(&in, true, 0x2, p, n, true);

    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    size_t splits[] = {1, 2, 3, 5, 9, 10, 13, 14, 15, 4095, 4096, 4097, 65536, in.len - 1};
    for (size_t s = 0; s < sizeof splits / sizeof splits[0]; s++) {
        size_t k = splits[s];
        conn_t c = {0};
        sm_ws_t *slot = NULL;
        sm_ws_result_t res;
        sm_ws_feed(&t, &slot, &c, in.data, k, false, &res);
        assert_int_equal(c.nmsg, 0);
        assert_non_null(slot);
        sm_ws_feed(&t, &slot, &c, in.data + k, in.len - k, false, &res);
        assert_int_equal(c.nmsg, 1);
        assert_msg(&c, 0, p, n);
        if (slot != NULL)
            fail_msg("split at %zu: context still attached after the whole message", k);
        conn_reset(&c);
    }
    /* Also fed in 1000-byte pieces. */
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    sm_ws_result_t res;
    for (size_t off = 0; off < in.len; off += 1000) {
        size_t m = in.len - off < 1000 ? in.len - off : 1000;
        sm_ws_feed(&t, &slot, &c, in.data + off, m, false, &res);
        if (off + m < in.len)
            assert_non_null(slot);
    }
    assert_null(slot);
    assert_int_equal(c.nmsg, 1);
    assert_msg(&c, 0, p, n);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
    buf_free(&in);
    free(p);
}

static void test_fragmented_message(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    uint8_t a[100], b[200], all[300];
    pattern(a, sizeof a, 10);
    pattern(b, sizeof b, 11);
    memcpy(all, a, 100);
    memcpy(all + 100, b, 200);
    buf_t f1 = {0}, f2 = {0};
    frame(&f1, false, 0x2, a, sizeof a, true);
    frame(&f2, true, 0x0, b, sizeof b, true);
    sm_ws_result_t res;
    sm_ws_feed(&t, &slot, &c, f1.data, f1.len, false, &res);
    assert_int_equal(c.nmsg, 0);
    assert_non_null(slot); /* whole frame read, but the message is not over */
    sm_ws_feed(&t, &slot, &c, f2.data, f2.len, false, &res);
    assert_int_equal(c.nmsg, 1);
    assert_msg(&c, 0, all, sizeof all);
    assert_null(slot);
    assert_int_equal(c.emitted.len, 0);
    buf_free(&f1);
    buf_free(&f2);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
}

static void test_ping_pong(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    buf_t in = {0};
    frame(&in, true, 0x9, "hello", 5, true);
    sm_ws_result_t res;
    sm_ws_feed(&t, &slot, &c, in.data, in.len, false, &res);
    static const uint8_t pong[] = {0x8a, 0x05, 'h', 'e', 'l', 'l', 'o'};
    assert_int_equal(c.emitted.len, sizeof pong);
    assert_memory_equal(c.emitted.data, pong, sizeof pong);
    assert_int_equal(c.nmsg, 0);
    assert_false(res.close_sent);
    assert_false(res.close_received);
    assert_null(slot); /* nothing pending after the pong went out */
    conn_reset(&c);

    /* Empty ping -> empty pong. */
    buf_t in2 = {0};
    frame(&in2, true, 0x9, NULL, 0, true);
    sm_ws_feed(&t, &slot, &c, in2.data, in2.len, false, &res);
    static const uint8_t pong2[] = {0x8a, 0x00};
    assert_int_equal(c.emitted.len, sizeof pong2);
    assert_memory_equal(c.emitted.data, pong2, sizeof pong2);
    assert_null(slot);

    /* A pong from the peer is ignored silently. */
    conn_reset(&c);
    buf_t in3 = {0};
    frame(&in3, true, 0xa, "x", 1, true);
    sm_ws_feed(&t, &slot, &c, in3.data, in3.len, false, &res);
    assert_int_equal(c.emitted.len, 0);
    assert_int_equal(c.nmsg, 0);
    assert_null(slot);

    buf_free(&in);
    buf_free(&in2);
    buf_free(&in3);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
}

static void test_peer_close_echoed(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    buf_t in = {0};
    uint8_t p[3] = {1, 2, 3};
    frame(&in, true, 0x2, p, 3, true);
    close_frame(&in, 1000, "bye");
    frame(&in, true, 0x2, p, 3, true); /* after the close: must be ignored */
    sm_ws_result_t res;
    sm_ws_feed(&t, &slot, &c, in.data, in.len, false, &res);
    assert_int_equal(c.nmsg, 1);
    assert_true(res.close_received);
    assert_int_equal(res.code_recv, 1000);
    assert_true(res.close_sent);
    assert_int_equal(res.code_sent, 1000);
    assert_false(res.text_rejected);
    assert_false(res.fatal);
    assert_close_emitted(&c, 1000, NULL);
    assert_non_null(slot); /* closing: the context stays with the connection */
    sm_ws_release(&t, &slot);
    assert_null(slot);
    buf_free(&in);
    conn_reset(&c);

    /* A close without a code: 1005 received. */
    buf_t in2 = {0};
    frame(&in2, true, 0x8, NULL, 0, true);
    sm_ws_feed(&t, &slot, &c, in2.data, in2.len, false, &res);
    assert_true(res.close_received);
    assert_int_equal(res.code_recv, 1005);
    assert_true(res.close_sent);
    assert_true(c.emitted.len >= 2);
    assert_int_equal(c.emitted.data[0], 0x88);
    sm_ws_release(&t, &slot);
    buf_free(&in2);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
}

static void test_text_rejected(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    buf_t in = {0};
    frame(&in, true, 0x1, "{\"type\":1}", 10, true);
    uint8_t p[2] = {9, 9};
    frame(&in, true, 0x2, p, 2, true); /* not delivered after the rejection */
    sm_ws_result_t res;
    sm_ws_feed(&t, &slot, &c, in.data, in.len, false, &res);
    assert_true(res.text_rejected);
    assert_true(res.close_sent);
    assert_int_equal(res.code_sent, 1003);
    assert_false(res.close_received);
    assert_int_equal(c.nmsg, 0);
    assert_close_emitted(&c, 1003, NULL);
    assert_non_null(slot);
    sm_ws_release(&t, &slot);
    buf_free(&in);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
}

static void test_unmasked_frame_1002(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    buf_t in = {0};
    uint8_t p[4] = {1, 2, 3, 4};
    frame(&in, true, 0x2, p, 4, false);
    sm_ws_result_t res;
    sm_ws_feed(&t, &slot, &c, in.data, in.len, false, &res);
    assert_int_equal(c.nmsg, 0);
    assert_true(res.close_sent);
    assert_int_equal(res.code_sent, 1002);
    assert_false(res.text_rejected);
    static const uint8_t want[] = {0x88, 0x02, 0x03, 0xea};
    assert_int_equal(c.emitted.len, sizeof want);
    assert_memory_equal(c.emitted.data, want, sizeof want);
    assert_non_null(slot);
    sm_ws_release(&t, &slot);
    buf_free(&in);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
}

static void test_too_big_1009(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 100);
    sm_ws_result_t res;
    uint8_t p[200];
    pattern(p, sizeof p, 12);

    /* Exactly the limit is fine. */
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    buf_t ok = {0};
    frame(&ok, true, 0x2, p, 100, true);
    sm_ws_feed(&t, &slot, &c, ok.data, ok.len, false, &res);
    assert_int_equal(c.nmsg, 1);
    assert_false(res.close_sent);
    assert_null(slot);
    conn_reset(&c);

    /* One byte over. */
    buf_t big = {0};
    frame(&big, true, 0x2, p, 101, true);
    sm_ws_feed(&t, &slot, &c, big.data, big.len, false, &res);
    assert_int_equal(c.nmsg, 0);
    assert_true(res.close_sent);
    assert_int_equal(res.code_sent, 1009);
    static const uint8_t want[] = {0x88, 0x02, 0x03, 0xf1};
    assert_int_equal(c.emitted.len, sizeof want);
    assert_memory_equal(c.emitted.data, want, sizeof want);
    assert_non_null(slot);
    sm_ws_release(&t, &slot);
    conn_reset(&c);

    /* Over the limit only once the fragments add up: 60 + 60. */
    buf_t frag = {0};
    frame(&frag, false, 0x2, p, 60, true);
    frame(&frag, true, 0x0, p + 60, 60, true);
    sm_ws_feed(&t, &slot, &c, frag.data, frag.len, false, &res);
    assert_int_equal(c.nmsg, 0);
    assert_true(res.close_sent);
    assert_int_equal(res.code_sent, 1009);
    sm_ws_release(&t, &slot);
    conn_reset(&c);

    /* A huge declared length (4 GiB) is refused as soon as its first payload
     * byte arrives (wslay checks when the frame starts), without buffering. */
    static const uint8_t huge_hdr[] = {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 0x55};
    sm_ws_feed(&t, &slot, &c, huge_hdr, sizeof huge_hdr, false, &res);
    assert_true(res.close_sent);
    assert_int_equal(res.code_sent, 1009);
    sm_ws_release(&t, &slot);
    conn_reset(&c);

    buf_free(&ok);
    buf_free(&big);
    buf_free(&frag);
    sm_ws_thread_destroy(&t);
}

static void test_server_closing(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    conn_t c = {0};
    sm_ws_t *slot = NULL;
    sm_ws_result_t res;

    /* A ping while closing gets no pong; the context stays attached. */
    buf_t ping = {0};
    frame(&ping, true, 0x9, "p", 1, true);
    sm_ws_feed(&t, &slot, &c, ping.data, ping.len, true, &res);
    assert_int_equal(c.emitted.len, 0);
    assert_false(res.close_received);
    assert_non_null(slot);

    /* The peer's close is detected, and nothing is emitted. */
    buf_t in = {0};
    close_frame(&in, 1001, "going away");
    sm_ws_feed(&t, &slot, &c, in.data, in.len, true, &res);
    assert_true(res.close_received);
    assert_int_equal(res.code_recv, 1001);
    assert_false(res.close_sent);
    assert_int_equal(c.emits, 0);
    assert_int_equal(c.emitted.len, 0);
    assert_false(res.fatal);
    assert_non_null(slot);
    sm_ws_release(&t, &slot);
    assert_null(slot);

    /* Split close frame while closing. */
    sm_ws_feed(&t, &slot, &c, in.data, 3, true, &res);
    assert_false(res.close_received);
    sm_ws_feed(&t, &slot, &c, in.data + 3, in.len - 3, true, &res);
    assert_true(res.close_received);
    assert_int_equal(c.emitted.len, 0);
    sm_ws_release(&t, &slot);

    buf_free(&ping);
    buf_free(&in);
    conn_reset(&c);
    sm_ws_thread_destroy(&t);
}

static void test_spare_reuse(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    assert_null(t._spare);
    uint8_t p[50];
    pattern(p, sizeof p, 13);
    buf_t in = {0};
    frame(&in, true, 0x2, p, sizeof p, true);

    /* Two connections each mid-message hold a context each. */
    conn_t c1 = {0}, c2 = {0};
    sm_ws_t *s1 = NULL, *s2 = NULL;
    sm_ws_result_t res;
    sm_ws_feed(&t, &s1, &c1, in.data, 10, false, &res);
    sm_ws_feed(&t, &s2, &c2, in.data, 20, false, &res);
    assert_non_null(s1);
    assert_non_null(s2);
    assert_ptr_not_equal(s1, s2);
    assert_null(t._spare);

    /* Both finish: one becomes the spare, the other is freed (ASan checks
     * that nothing leaks). */
    sm_ws_t *first = s1;
    sm_ws_feed(&t, &s1, &c1, in.data + 10, in.len - 10, false, &res);
    assert_null(s1);
    assert_ptr_equal(t._spare, first);
    assert_ptr_equal(g_last_conn, &c1);
    sm_ws_feed(&t, &s2, &c2, in.data + 20, in.len - 20, false, &res);
    assert_null(s2);
    assert_ptr_equal(t._spare, first);
    assert_ptr_equal(g_last_conn, &c2); /* callbacks get the right conn */
    assert_int_equal(c1.nmsg, 1);
    assert_int_equal(c2.nmsg, 1);
    assert_msg(&c1, 0, p, sizeof p);
    assert_msg(&c2, 0, p, sizeof p);

    /* The spare is what the next read borrows. */
    sm_ws_feed(&t, &s1, &c1, in.data, 5, false, &res);
    assert_ptr_equal(s1, first);
    assert_null(t._spare);
    sm_ws_feed(&t, &s1, &c1, in.data + 5, in.len - 5, false, &res);
    assert_null(s1);
    assert_ptr_equal(t._spare, first);

    /* Many clean reads on many connections: never more than one spare. */
    for (int i = 0; i < 100; i++) {
        sm_ws_t *s = NULL;
        conn_t c = {0};
        sm_ws_feed(&t, &s, &c, in.data, in.len, false, &res);
        assert_null(s);
        assert_int_equal(c.nmsg, 1);
        conn_reset(&c);
    }
    assert_ptr_equal(t._spare, first);

    /* A closing connection's context is not recycled: release frees it. */
    buf_t cl = {0};
    close_frame(&cl, 1000, NULL);
    sm_ws_t *s3 = NULL;
    conn_t c3 = {0};
    sm_ws_feed(&t, &s3, &c3, cl.data, cl.len, false, &res);
    assert_ptr_equal(s3, first); /* borrowed the spare */
    assert_null(t._spare);
    sm_ws_release(&t, &s3);
    assert_null(s3);
    sm_ws_release(&t, &s3); /* NULL slot is fine */

    /* A fresh context is made when there is no spare. */
    sm_ws_feed(&t, &s1, &c1, in.data, in.len, false, &res);
    assert_null(s1);
    assert_non_null(t._spare);

    buf_free(&in);
    buf_free(&cl);
    conn_reset(&c1);
    conn_reset(&c2);
    conn_reset(&c3);
    sm_ws_thread_destroy(&t);
    assert_null(t._spare);
}

static void test_protocol_errors_close(void **state)
{
    (void)state;
    sm_ws_thread_t t;
    sm_ws_thread_init(&t, &cbs, 1 << 20);
    sm_ws_result_t res;
    /* A continuation with no message started, a fragmented ping, a
     * non-minimal length, reserved opcode 0x3: each must end in a close
     * frame being sent and the message not delivered. */
    static const uint8_t ping_nofin[] = {0x09, 0x80, 1, 2, 3, 4};
    static const uint8_t nonminimal[] = {0x82, 0xfe, 0x00, 0x05, 1,   2,  3,
                                         4,    'a',  'b',  'c',  'd', 'e'};
    static const uint8_t reserved[] = {0x83, 0x80, 1, 2, 3, 4};
    buf_t cont = {0};
    frame(&cont, true, 0x0, "x", 1, true);
    const struct {
        const uint8_t *p;
        size_t n;
        const char *what;
    } cases[] = {
        {cont.data, cont.len, "lone continuation"},
        {ping_nofin, sizeof ping_nofin, "fragmented ping"},
        {nonminimal, sizeof nonminimal, "non-minimal length"},
        {reserved, sizeof reserved, "reserved opcode"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conn_t c = {0};
        sm_ws_t *slot = NULL;
        sm_ws_feed(&t, &slot, &c, cases[i].p, cases[i].n, false, &res);
        if (!res.close_sent || c.emitted.len < 2 || c.emitted.data[0] != 0x88)
            fail_msg("%s: no close frame emitted", cases[i].what);
        assert_int_equal(c.nmsg, 0);
        assert_non_null(slot);
        sm_ws_release(&t, &slot);
        conn_reset(&c);
    }
    buf_free(&cont);
    sm_ws_thread_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_binary_message),
        cmocka_unit_test(test_two_messages_one_feed),
        cmocka_unit_test(test_split_small_message),
        cmocka_unit_test(test_split_two_messages),
        cmocka_unit_test(test_split_fragmented_with_ping),
        cmocka_unit_test(test_split_large_message),
        cmocka_unit_test(test_fragmented_message),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_peer_close_echoed),
        cmocka_unit_test(test_text_rejected),
        cmocka_unit_test(test_unmasked_frame_1002),
        cmocka_unit_test(test_too_big_1009),
        cmocka_unit_test(test_server_closing),
        cmocka_unit_test(test_spare_reuse),
        cmocka_unit_test(test_protocol_errors_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
