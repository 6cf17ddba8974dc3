/*
 * Unit tests for lib/proto/frame.c (header codec, error table) and
 * lib/proto/signal.c (identifier check, BINARY SIGNAL prefix).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sm/proto.h>

static const uint8_t UUID[16] = {0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4,
                                 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00, 0x00};

/* Build a raw frame by hand (independent of the encoder under test). */
static size_t raw_frame(uint8_t *buf, uint8_t start, uint8_t type, uint8_t pt, uint16_t declared,
                        const void *payload, size_t actual)
{
    buf[0] = start;
    buf[1] = type;
    memcpy(buf + 2, UUID, 16);
    buf[18] = pt;
    buf[19] = (uint8_t)(declared >> 8);
    buf[20] = (uint8_t)declared;
    if (actual)
        memcpy(buf + 21, payload, actual);
    return 21 + actual;
}

static void test_version_consistent(void **state)
{
    (void)state;
    char text[32];
    snprintf(text, sizeof(text), "%u.%u.%u", SM_PROTO_VERSION_MAJOR, SM_PROTO_VERSION_MINOR,
             SM_PROTO_VERSION_PATCH);
    assert_string_equal(text, SM_PROTO_VERSION);
    assert_string_equal(SM_PROTO_VERSION, "1.0.0");
    assert_int_equal(SM_PROTO_HEADER_SIZE, 21);
    assert_int_equal(SM_PROTO_START, 0xAA);
}

static void test_decode_short(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_frame_t f;
    assert_int_equal(sm_frame_decode(NULL, 0, &f), SM_PROTO_ESHORT);
    raw_frame(buf, 0xAA, SM_MSG_PING, SM_PAYLOAD_NONE, 0, NULL, 0);
    for (size_t n = 1; n < 21; n++)
        assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_ESHORT);
    assert_int_equal(sm_frame_decode(buf, 21, &f), SM_PROTO_OK);
}

static void test_decode_bad_start(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_frame_t f;
    static const uint8_t bad[] = {0x00, 0xAB, 0x55, 0xFF, 0xA9};
    for (size_t i = 0; i < sizeof(bad); i++) {
        size_t n = raw_frame(buf, bad[i], SM_MSG_PING, SM_PAYLOAD_NONE, 0, NULL, 0);
        assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_ESTART);
    }
    /* Short wins over a bad start byte. */
    assert_int_equal(sm_frame_decode(buf, 20, &f), SM_PROTO_ESHORT);
}

static void test_decode_length_mismatch(void **state)
{
    (void)state;
    uint8_t buf[128];
    sm_frame_t f;
    const char *js = "{\"a\":1}";
    /* declared > actual */
    size_t n = raw_frame(buf, 0xAA, SM_MSG_PING, SM_PAYLOAD_JSON, 8, js, 7);
    memset(&f, 0, sizeof(f));
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_ELENGTH);
    /* type and uuid are available for the ERROR reply */
    assert_int_equal(f.type, SM_MSG_PING);
    assert_memory_equal(f.uuid, UUID, 16);
    /* declared < actual */
    n = raw_frame(buf, 0xAA, SM_MSG_PING, SM_PAYLOAD_JSON, 6, js, 7);
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_ELENGTH);
    /* declared 0, one trailing byte */
    n = raw_frame(buf, 0xAA, SM_MSG_PING, SM_PAYLOAD_NONE, 0, "x", 1);
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_ELENGTH);
    /* declared 0x0100 = 256 (big-endian) but 1 byte follows: not read as 1 */
    n = raw_frame(buf, 0xAA, SM_MSG_SIGNAL, SM_PAYLOAD_BINARY, 0x0100, "x", 1);
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_ELENGTH);
    /* declared 0x0001 = 1 with 1 byte: big-endian decoding */
    n = raw_frame(buf, 0xAA, SM_MSG_SIGNAL, SM_PAYLOAD_BINARY, 0x0001, "x", 1);
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_OK);
    assert_int_equal(f.length, 1);
}

static void test_decode_bad_payload_type(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_frame_t f;
    for (unsigned pt = 3; pt <= 255; pt++) {
        size_t n = raw_frame(buf, 0xAA, SM_MSG_PING, (uint8_t)pt, 2, "{}", 2);
        assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_EPAYLOADTYPE);
    }
}

static void test_decode_none_with_length(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_frame_t f;
    size_t n = raw_frame(buf, 0xAA, SM_MSG_DISCONNECT, SM_PAYLOAD_NONE, 2, "{}", 2);
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_ENONELENGTH);
    n = raw_frame(buf, 0xAA, SM_MSG_DISCONNECT, SM_PAYLOAD_NONE, 0, NULL, 0);
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_OK);
    assert_int_equal(f.payload_type, SM_PAYLOAD_NONE);
    assert_int_equal(f.length, 0);
    assert_null(f.payload);
}

static void test_decode_ok_zero_copy(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_frame_t f;
    size_t n = raw_frame(buf, 0xAA, SM_MSG_REGISTER, SM_PAYLOAD_JSON, 2, "{}", 2);
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_OK);
    assert_int_equal(f.type, SM_MSG_REGISTER);
    assert_int_equal(f.payload_type, SM_PAYLOAD_JSON);
    assert_int_equal(f.length, 2);
    assert_ptr_equal(f.payload, buf + 21);
    assert_memory_equal(f.uuid, UUID, 16);
    /* Unknown message types decode fine: sm_msg_check() rejects them. */
    n = raw_frame(buf, 0xAA, 0x99, SM_PAYLOAD_BINARY, 0, NULL, 0);
    assert_int_equal(sm_frame_decode(buf, n, &f), SM_PROTO_OK);
    assert_int_equal(f.type, 0x99);
    assert_null(f.payload);
}

static void test_encode_header_layout(void **state)
{
    (void)state;
    uint8_t hdr[21];
    assert_int_equal(sm_frame_encode_header(hdr, SM_MSG_REGISTER, UUID, SM_PAYLOAD_JSON, 42),
                     SM_PROTO_OK);
    assert_int_equal(hdr[0], 0xAA);
    assert_int_equal(hdr[1], 0x20);
    assert_memory_equal(hdr + 2, UUID, 16);
    assert_int_equal(hdr[18], 0x02);
    assert_int_equal(hdr[19], 0x00);
    assert_int_equal(hdr[20], 0x2A);
    assert_int_equal(sm_frame_encode_header(hdr, SM_MSG_SIGNAL, UUID, SM_PAYLOAD_BINARY, 0x1234),
                     SM_PROTO_OK);
    assert_int_equal(hdr[19], 0x12);
    assert_int_equal(hdr[20], 0x34);
}

static void test_encode_header_errors(void **state)
{
    (void)state;
    uint8_t hdr[21], ref[21];
    memset(hdr, 0x5A, sizeof(hdr));
    memcpy(ref, hdr, sizeof(hdr));
    assert_int_equal(sm_frame_encode_header(hdr, SM_MSG_SIGNAL, UUID, SM_PAYLOAD_BINARY, 65536),
                     SM_PROTO_ETOOBIG);
    assert_int_equal(sm_frame_encode_header(hdr, SM_MSG_SIGNAL, UUID, 3, 1), SM_PROTO_EPAYLOADTYPE);
    assert_int_equal(sm_frame_encode_header(hdr, SM_MSG_DISCONNECT, UUID, SM_PAYLOAD_NONE, 1),
                     SM_PROTO_ENONELENGTH);
    assert_memory_equal(hdr, ref, sizeof(hdr));
    assert_int_equal(sm_frame_encode_header(hdr, SM_MSG_SIGNAL, UUID, SM_PAYLOAD_BINARY, 65535),
                     SM_PROTO_OK);
    assert_int_equal(hdr[19], 0xFF);
    assert_int_equal(hdr[20], 0xFF);
}

/* Encode then decode for a given payload length and type. */
static void round_trip(size_t len, uint8_t pt)
{
    uint8_t *payload = malloc(len ? len : 1);
    uint8_t *buf = malloc(21 + len);
    assert_non_null(payload);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    size_t written = 0;
    assert_int_equal(
        sm_frame_encode(buf, 21 + len, SM_MSG_SIGNAL, UUID, pt, payload, len, &written),
        SM_PROTO_OK);
    assert_int_equal(written, 21 + len);
    sm_frame_t f;
    assert_int_equal(sm_frame_decode(buf, written, &f), SM_PROTO_OK);
    assert_int_equal(f.type, SM_MSG_SIGNAL);
    assert_int_equal(f.payload_type, pt);
    assert_int_equal(f.length, len);
    assert_memory_equal(f.uuid, UUID, 16);
    if (len)
        assert_memory_equal(f.payload, payload, len);
    else
        assert_null(f.payload);
    /* One byte of capacity less is not enough. */
    assert_int_equal(sm_frame_encode(buf, 20 + len, SM_MSG_SIGNAL, UUID, pt, payload, len, NULL),
                     SM_PROTO_ENOSPACE);
    free(payload);
    free(buf);
}

static void test_round_trip_boundaries(void **state)
{
    (void)state;
    round_trip(0, SM_PAYLOAD_NONE);
    round_trip(0, SM_PAYLOAD_BINARY);
    round_trip(0, SM_PAYLOAD_JSON);
    round_trip(1, SM_PAYLOAD_BINARY);
    round_trip(1, SM_PAYLOAD_JSON);
    round_trip(255, SM_PAYLOAD_BINARY);
    round_trip(256, SM_PAYLOAD_JSON);
    round_trip(65534, SM_PAYLOAD_BINARY);
    round_trip(65535, SM_PAYLOAD_BINARY);
    round_trip(65535, SM_PAYLOAD_JSON);
}

static void test_encode_errors(void **state)
{
    (void)state;
    uint8_t buf[64], ref[64];
    memset(buf, 0x33, sizeof(buf));
    memcpy(ref, buf, sizeof(buf));
    size_t written = 777;
    assert_int_equal(sm_frame_encode(buf, sizeof(buf), SM_MSG_SIGNAL, UUID, SM_PAYLOAD_BINARY, "x",
                                     65536, &written),
                     SM_PROTO_ETOOBIG);
    assert_int_equal(
        sm_frame_encode(buf, 20, SM_MSG_PING, UUID, SM_PAYLOAD_NONE, NULL, 0, &written),
        SM_PROTO_ENOSPACE);
    assert_int_equal(sm_frame_encode(buf, 0, SM_MSG_PING, UUID, SM_PAYLOAD_NONE, NULL, 0, &written),
                     SM_PROTO_ENOSPACE);
    assert_int_equal(sm_frame_encode(buf, sizeof(buf), SM_MSG_PING, UUID, 7, "{}", 2, &written),
                     SM_PROTO_EPAYLOADTYPE);
    assert_int_equal(
        sm_frame_encode(buf, sizeof(buf), SM_MSG_PING, UUID, SM_PAYLOAD_NONE, "{}", 2, &written),
        SM_PROTO_ENONELENGTH);
    assert_int_equal(
        sm_frame_encode(buf, sizeof(buf), SM_MSG_PING, UUID, SM_PAYLOAD_JSON, NULL, 2, &written),
        SM_PROTO_EINVAL);
    assert_memory_equal(buf, ref, sizeof(buf));
    assert_int_equal(written, 777);
    /* Exact capacity works. */
    assert_int_equal(
        sm_frame_encode(buf, 23, SM_MSG_PING, UUID, SM_PAYLOAD_JSON, "{}", 2, &written),
        SM_PROTO_OK);
    assert_int_equal(written, 23);
}

static void test_encode_in_place_and_overlap(void **state)
{
    (void)state;
    uint8_t buf[64];
    sm_frame_t f;
    size_t written;
    /* Payload already built where it belongs: nothing copied, result right. */
    memcpy(buf + 21, "{\"timestamp\":1}", 15);
    assert_int_equal(sm_frame_encode(buf, sizeof(buf), SM_MSG_PING_ACK, UUID, SM_PAYLOAD_JSON,
                                     buf + 21, 15, &written),
                     SM_PROTO_OK);
    assert_int_equal(sm_frame_decode(buf, written, &f), SM_PROTO_OK);
    assert_memory_equal(f.payload, "{\"timestamp\":1}", 15);
    /* Payload overlapping the header area: moved correctly. */
    memcpy(buf + 5, "0123456789abcdefghijklmnopqrstuvwxyz", 36);
    assert_int_equal(sm_frame_encode(buf, sizeof(buf), SM_MSG_SIGNAL, UUID, SM_PAYLOAD_BINARY,
                                     buf + 5, 36, &written),
                     SM_PROTO_OK);
    assert_int_equal(sm_frame_decode(buf, written, &f), SM_PROTO_OK);
    assert_memory_equal(f.payload, "0123456789abcdefghijklmnopqrstuvwxyz", 36);
    assert_memory_equal(f.uuid, UUID, 16);
    /* A reply written over its request, echoing the request's uuid in place. */
    uint8_t req_uuid[16];
    for (int i = 0; i < 16; i++)
        req_uuid[i] = (uint8_t)(0xF0 + i);
    raw_frame(buf, 0xAA, SM_MSG_PING, SM_PAYLOAD_JSON, 2, "{}", 2);
    memcpy(buf + 2, req_uuid, 16);
    memcpy(buf + 21, "{\"ok\":1}", 8);
    assert_int_equal(sm_frame_encode(buf, sizeof(buf), SM_MSG_PING_ACK, buf + 2, SM_PAYLOAD_JSON,
                                     buf + 21, 8, &written),
                     SM_PROTO_OK);
    assert_int_equal(sm_frame_decode(buf, written, &f), SM_PROTO_OK);
    assert_int_equal(f.type, SM_MSG_PING_ACK);
    assert_memory_equal(f.uuid, req_uuid, 16);
}

static void test_strerror(void **state)
{
    (void)state;
    static const int codes[] = {
#define X(name, value, msg) name,
        SM_PROTO_ERR_MAP(X)
#undef X
    };
    assert_string_equal(sm_proto_strerror(SM_PROTO_OK), "ok");
    assert_string_equal(sm_proto_errname(SM_PROTO_OK), "SM_PROTO_OK");
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(sm_proto_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(sm_proto_strerror(codes[i]), sm_proto_strerror(codes[j]));
        }
    }
    assert_string_equal(sm_proto_errname(SM_PROTO_ESHORT), "SM_PROTO_ESHORT");
    assert_string_equal(sm_proto_strerror(12345), "unknown error");
    assert_string_equal(sm_proto_errname(-999), "SM_PROTO_E?");
    assert_string_equal(sm_payload_type_name(0), "NONE");
    assert_string_equal(sm_payload_type_name(1), "BINARY");
    assert_string_equal(sm_payload_type_name(2), "JSON");
    assert_string_equal(sm_payload_type_name(3), "UNKNOWN");
}

/* ---- identifiers ---- */

static void test_id_valid(void **state)
{
    (void)state;
    const char *allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-";
    for (int c = 0; c < 256; c++) {
        char s[1] = {(char)c};
        bool expect = c != 0 && strchr(allowed, c) != NULL;
        assert_int_equal(sm_proto_id_valid(s, 1), expect);
    }
    char buf[200];
    memset(buf, 'a', sizeof(buf));
    assert_false(sm_proto_id_valid(buf, 0));
    assert_false(sm_proto_id_valid(NULL, 0));
    assert_true(sm_proto_id_valid(buf, 128));
    assert_false(sm_proto_id_valid(buf, 129));
    assert_true(sm_proto_id_valid("user@example.com:1_x-y", 22));
    /* A bad byte anywhere, including the last one, is caught. */
    buf[127] = '/';
    assert_false(sm_proto_id_valid(buf, 128));
    assert_false(sm_proto_id_valid("ab cd", 5));
    assert_false(sm_proto_id_valid("\xc3\xa9", 2));
}

/* ---- BINARY SIGNAL prefix ---- */

static void test_signal_parse_ok(void **state)
{
    (void)state;
    uint8_t p[64];
    sm_signal_bin_t s;
    p[0] = 5;
    memcpy(p + 1, "alice", 5);
    memcpy(p + 6, "\x00\x01\x02", 3);
    assert_int_equal(sm_signal_bin_parse(p, 9, &s), SM_PROTO_OK);
    assert_int_equal(s.client_id_len, 5);
    assert_memory_equal(s.client_id, "alice", 5);
    assert_ptr_equal(s.client_id, (const char *)p + 1);
    assert_ptr_equal(s.body, p + 6);
    assert_int_equal(s.body_len, 3);
    /* Id only, empty body. */
    assert_int_equal(sm_signal_bin_parse(p, 6, &s), SM_PROTO_OK);
    assert_int_equal(s.body_len, 0);
    assert_ptr_equal(s.body, p + 6);
    /* One-character id. */
    p[0] = 1;
    assert_int_equal(sm_signal_bin_parse(p, 2, &s), SM_PROTO_OK);
    assert_int_equal(s.client_id_len, 1);
    assert_int_equal(s.body_len, 0);
}

static void test_signal_parse_errors(void **state)
{
    (void)state;
    uint8_t p[300] = {0};
    sm_signal_bin_t s;
    assert_int_equal(sm_signal_bin_parse(p, 0, &s), SM_PROTO_ESIGNALPREFIX);
    assert_int_equal(sm_signal_bin_parse(NULL, 0, &s), SM_PROTO_ESIGNALPREFIX);
    p[0] = 0; /* zero-length id */
    assert_int_equal(sm_signal_bin_parse(p, 10, &s), SM_PROTO_ESIGNALPREFIX);
    p[0] = 5; /* id truncated */
    memcpy(p + 1, "alic", 4);
    assert_int_equal(sm_signal_bin_parse(p, 5, &s), SM_PROTO_ESIGNALPREFIX);
    assert_int_equal(sm_signal_bin_parse(p, 1, &s), SM_PROTO_ESIGNALPREFIX);
    p[0] = 5; /* bad character */
    memcpy(p + 1, "al ce", 5);
    assert_int_equal(sm_signal_bin_parse(p, 6, &s), SM_PROTO_EID);
    /* 128 is the longest id; 129 and 255 are rejected as ids. */
    memset(p + 1, 'x', 255);
    p[0] = 128;
    assert_int_equal(sm_signal_bin_parse(p, 129, &s), SM_PROTO_OK);
    p[0] = 129;
    assert_int_equal(sm_signal_bin_parse(p, 130, &s), SM_PROTO_EID);
    p[0] = 255;
    assert_int_equal(sm_signal_bin_parse(p, 256, &s), SM_PROTO_EID);
    assert_int_equal(sm_signal_bin_parse(p, 255, &s), SM_PROTO_ESIGNALPREFIX);
}

static void test_signal_write_prefix(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t w = 0;
    assert_int_equal(sm_signal_bin_write_prefix(out, sizeof(out), "bob", 3, &w), SM_PROTO_OK);
    assert_int_equal(w, 4);
    assert_int_equal(sm_signal_bin_prefix_size(3), 4);
    assert_memory_equal(out,
                        "\x03"
                        "bob",
                        4);
    assert_int_equal(sm_signal_bin_write_prefix(out, 3, "bob", 3, &w), SM_PROTO_ENOSPACE);
    assert_int_equal(sm_signal_bin_write_prefix(out, sizeof(out), "", 0, &w), SM_PROTO_EID);
    assert_int_equal(sm_signal_bin_write_prefix(out, sizeof(out), "b/b", 3, &w), SM_PROTO_EID);
}

static void test_signal_encode_frame(void **state)
{
    (void)state;
    /* Client -> server: target "bob". */
    uint8_t in[64];
    in[0] = 3;
    memcpy(in + 1, "bob", 3);
    memcpy(in + 4, "DATA", 4);
    sm_signal_bin_t req;
    assert_int_equal(sm_signal_bin_parse(in, 8, &req), SM_PROTO_OK);

    /* Server -> bob: prefix rewritten to the sender "alice-1". */
    uint8_t out[64];
    size_t w = 0;
    assert_int_equal(sm_signal_bin_encode_frame(out, sizeof(out), UUID, "alice-1", 7, req.body,
                                                req.body_len, &w),
                     SM_PROTO_OK);
    assert_int_equal(w, 21 + 1 + 7 + 4);
    sm_frame_t f;
    assert_int_equal(sm_frame_decode(out, w, &f), SM_PROTO_OK);
    assert_int_equal(f.type, SM_MSG_SIGNAL);
    assert_int_equal(f.payload_type, SM_PAYLOAD_BINARY);
    assert_memory_equal(f.uuid, UUID, 16);
    sm_signal_bin_t rel;
    assert_int_equal(sm_signal_bin_parse(f.payload, f.length, &rel), SM_PROTO_OK);
    assert_int_equal(rel.client_id_len, 7);
    assert_memory_equal(rel.client_id, "alice-1", 7);
    assert_int_equal(rel.body_len, 4);
    assert_memory_equal(rel.body, "DATA", 4);

    /* Capacity exactly right, and one less. */
    assert_int_equal(sm_signal_bin_encode_frame(out, 33, UUID, "alice-1", 7, req.body, 4, &w),
                     SM_PROTO_OK);
    assert_int_equal(sm_signal_bin_encode_frame(out, 32, UUID, "alice-1", 7, req.body, 4, &w),
                     SM_PROTO_ENOSPACE);
    assert_int_equal(sm_signal_bin_encode_frame(out, sizeof(out), UUID, "", 0, req.body, 4, &w),
                     SM_PROTO_EID);
    assert_int_equal(sm_signal_bin_encode_frame(out, sizeof(out), UUID, "a", 1, NULL, 4, &w),
                     SM_PROTO_EINVAL);
    /* Empty body is fine. */
    assert_int_equal(sm_signal_bin_encode_frame(out, sizeof(out), UUID, "a", 1, NULL, 0, &w),
                     SM_PROTO_OK);
    assert_int_equal(w, 23);
}

static void test_signal_encode_frame_too_big(void **state)
{
    (void)state;
    /* A maximal incoming payload with a 1-char target, relayed from a longer
     * sender id, no longer fits in 65535 bytes. */
    size_t body_len = 65535 - 2;
    uint8_t *body = calloc(1, body_len);
    uint8_t *out = malloc(SM_PROTO_MAX_FRAME + 200);
    assert_non_null(body);
    assert_non_null(out);
    size_t w;
    assert_int_equal(
        sm_signal_bin_encode_frame(out, SM_PROTO_MAX_FRAME + 200, UUID, "z", 1, body, body_len, &w),
        SM_PROTO_OK);
    assert_int_equal(w, SM_PROTO_MAX_FRAME);
    assert_int_equal(sm_signal_bin_encode_frame(out, SM_PROTO_MAX_FRAME + 200, UUID, "zz", 2, body,
                                                body_len, &w),
                     SM_PROTO_ETOOBIG);
    char longid[128];
    memset(longid, 'q', sizeof(longid));
    assert_int_equal(sm_signal_bin_encode_frame(out, SM_PROTO_MAX_FRAME + 200, UUID, longid, 128,
                                                body, 65535 - 129, &w),
                     SM_PROTO_OK);
    assert_int_equal(sm_signal_bin_encode_frame(out, SM_PROTO_MAX_FRAME + 200, UUID, longid, 128,
                                                body, 65535 - 128, &w),
                     SM_PROTO_ETOOBIG);
    free(body);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_consistent),
        cmocka_unit_test(test_decode_short),
        cmocka_unit_test(test_decode_bad_start),
        cmocka_unit_test(test_decode_length_mismatch),
        cmocka_unit_test(test_decode_bad_payload_type),
        cmocka_unit_test(test_decode_none_with_length),
        cmocka_unit_test(test_decode_ok_zero_copy),
        cmocka_unit_test(test_encode_header_layout),
        cmocka_unit_test(test_encode_header_errors),
        cmocka_unit_test(test_round_trip_boundaries),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_encode_in_place_and_overlap),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_signal_parse_ok),
        cmocka_unit_test(test_signal_parse_errors),
        cmocka_unit_test(test_signal_write_prefix),
        cmocka_unit_test(test_signal_encode_frame),
        cmocka_unit_test(test_signal_encode_frame_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
