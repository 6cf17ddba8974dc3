/*
 * Unit tests for src/proto/reply.c, the hand-rolled JSON reply writer.
 *
 * Each produced buffer is taken apart as a client would: the WebSocket
 * header per RFC 6455 §5.2 (server frame: FIN + binary, no mask, minimal
 * length), then sm_frame_decode() from include/sm/proto.h, then the payload
 * parsed with jansson.  Covered: every builder, uuid echo and fresh v4
 * uuids, string escaping (quotes, backslash, control characters, DEL, UTF-8
 * passthrough, embedded NUL via strn), nested objects, growth past the first
 * guess, the 65535-byte payload limit, and the ERROR / DISCONNECT helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <sm/proto.h>

#include "core/clock.h"
#include "core/err.h"
#include "proto/reply.h"

static const uint8_t req_uuid[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef,
                                     0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};

typedef struct {
    sm_frame_t f;
    json_t *json;
    char *text; /* payload as a NUL-terminated copy */
} decoded_t;

/* Strip the WebSocket header, decode the protocol frame, parse the JSON. */
static decoded_t decode(const sm_obuf_t *b)
{
    decoded_t d;
    memset(&d, 0, sizeof d);
    assert_non_null(b);
    const uint8_t *p = sm_obuf_bytes(b);
    size_t n = b->len;
    assert_true(n >= 2);
    assert_int_equal(p[0], 0x82); /* FIN + binary */
    assert_int_equal(p[1] & 0x80, 0);
    uint64_t plen = p[1] & 0x7f;
    size_t h = 2;
    if (plen == 126) {
        plen = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
        assert_true(plen >= 126);
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | p[2 + i];
        h = 10;
        assert_true(plen > 0xffff);
    }
    assert_int_equal(h + plen, n);
    assert_int_equal(sm_frame_decode(p + h, (size_t)plen, &d.f), SM_PROTO_OK);
    assert_int_equal(d.f.payload_type, SM_PAYLOAD_JSON);
    d.text = malloc((size_t)d.f.length + 1);
    assert_non_null(d.text);
    memcpy(d.text, d.f.payload, d.f.length);
    d.text[d.f.length] = '\0';
    json_error_t err;
    d.json = json_loadb((const char *)d.f.payload, d.f.length, JSON_ALLOW_NUL, &err);
    if (d.json == NULL)
        fail_msg("payload is not JSON (%s at %d): %s", err.text, err.position, d.text);
    assert_true(json_is_object(d.json));
    return d;
}

static void decoded_free(decoded_t *d)
{
    json_decref(d->json);
    free(d->text);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", k);
    return json_string_value(v);
}

static json_int_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", k);
    return json_integer_value(v);
}

static void test_every_builder(void **state)
{
    (void)state;
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_REGISTER_ACK, req_uuid);
    sm_reply_int(&r, "status", 200);
    sm_reply_str(&r, "client_id", "alice");
    sm_reply_strn(&r, "part", "abcdef", 3);
    sm_reply_int(&r, "neg", -9223372036854775807LL - 1);
    sm_reply_int(&r, "big", 9223372036854775807LL);
    sm_reply_bool(&r, "yes", true);
    sm_reply_bool(&r, "no", false);
    sm_reply_null(&r, "nothing");
    sm_reply_str(&r, "null_str", NULL);
    json_t *meta = json_pack("{s:s, s:[i,i], s:{s:b}}", "k", "v", "arr", 1, 2, "o", "t", 1);
    sm_reply_json(&r, "meta", meta);
    sm_reply_json(&r, "jnull", NULL);
    json_t *scalar = json_integer(42);
    sm_reply_json(&r, "scalar", scalar);
    const char *const names[] = {"a", "b\"c", NULL};
    sm_reply_str_array(&r, "names", names);
    const char *const none[] = {NULL};
    sm_reply_str_array(&r, "empty", none);
    int err = 99;
    sm_obuf_t *b = sm_reply_finish(&r, &err);
    assert_non_null(b);
    assert_int_equal(err, 0);
    assert_null(r.b); /* ownership moved to the caller */

    decoded_t d = decode(b);
    assert_int_equal(d.f.type, SM_MSG_REGISTER_ACK);
    assert_memory_equal(d.f.uuid, req_uuid, 16);
    json_t *j = d.json;
    assert_int_equal(jint(j, "status"), 200);
    assert_string_equal(jstr(j, "client_id"), "alice");
    assert_string_equal(jstr(j, "part"), "abc");
    assert_int_equal(jint(j, "neg"), -9223372036854775807LL - 1);
    assert_int_equal(jint(j, "big"), 9223372036854775807LL);
    assert_true(json_is_true(json_object_get(j, "yes")));
    assert_true(json_is_false(json_object_get(j, "no")));
    assert_true(json_is_null(json_object_get(j, "nothing")));
    assert_true(json_is_null(json_object_get(j, "null_str")));
    assert_true(json_equal(json_object_get(j, "meta"), meta));
    assert_true(json_is_null(json_object_get(j, "jnull")));
    assert_int_equal(jint(j, "scalar"), 42);
    json_t *arr = json_object_get(j, "names");
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(json_string_value(json_array_get(arr, 0)), "a");
    assert_string_equal(json_string_value(json_array_get(arr, 1)), "b\"c");
    assert_true(json_is_array(json_object_get(j, "empty")));
    assert_int_equal(json_array_size(json_object_get(j, "empty")), 0);
    assert_int_equal(json_object_size(j), 14);
    decoded_free(&d);
    json_decref(meta);
    json_decref(scalar);
    sm_obuf_unref(b);
}

/* sm_reply_int's hand-written conversion against snprintf, and sm_reply_raw. */
static void test_int_and_raw(void **state)
{
    (void)state;
    static const int64_t vals[] = {0, 1, -1, 9, 10, -10, 99, 100, 1704110400000LL,
                                   -1704110400000LL, 9223372036854775807LL,
                                   -9223372036854775807LL - 1};
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        sm_reply_t r;
        sm_reply_begin(&r, SM_MSG_PING_ACK, req_uuid);
        sm_reply_raw(&r, "ts", "-0", 2);
        sm_reply_int(&r, "v", vals[k]);
        sm_obuf_t *b = sm_reply_finish(&r, NULL);
        decoded_t d = decode(b);
        char want[64];
        snprintf(want, sizeof want, "{\"ts\":-0,\"v\":%lld}", (long long)vals[k]);
        assert_string_equal(d.text, want);
        decoded_free(&d);
        sm_obuf_unref(b);
    }
}

static void test_empty_object(void **state)
{
    (void)state;
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_PING_ACK, req_uuid);
    sm_obuf_t *b = sm_reply_finish(&r, NULL);
    decoded_t d = decode(b);
    assert_string_equal(d.text, "{}");
    assert_int_equal(d.f.length, 2);
    /* The whole frame, byte for byte. */
    static const uint8_t head[] = {0x82, 21 + 2, 0xAA, SM_MSG_PING_ACK};
    static const uint8_t tail[] = {SM_PAYLOAD_JSON, 0x00, 0x02, '{', '}'};
    uint8_t want[sizeof head + 16 + sizeof tail];
    memcpy(want, head, sizeof head);
    memcpy(want + sizeof head, req_uuid, 16);
    memcpy(want + sizeof head + 16, tail, sizeof tail);
    assert_int_equal(b->len, sizeof want);
    assert_memory_equal(sm_obuf_bytes(b), want, sizeof want);
    decoded_free(&d);
    sm_obuf_unref(b);
}

static void test_exact_bytes_simple(void **state)
{
    (void)state;
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_CONNECT_ACK, req_uuid);
    sm_reply_int(&r, "status", 200);
    sm_reply_str(&r, "s", "x");
    sm_reply_open(&r, "o");
    sm_reply_bool(&r, "b", true);
    sm_reply_close(&r);
    sm_reply_null(&r, "n");
    sm_obuf_t *b = sm_reply_finish(&r, NULL);
    decoded_t d = decode(b);
    assert_string_equal(d.text, "{\"status\":200,\"s\":\"x\",\"o\":{\"b\":true},\"n\":null}");
    decoded_free(&d);
    sm_obuf_unref(b);
}

static void test_fresh_uuid(void **state)
{
    (void)state;
    uint8_t seen[8][16];
    for (int i = 0; i < 8; i++) {
        sm_reply_t r;
        sm_reply_begin(&r, SM_MSG_ROOM_EVENT, NULL);
        sm_reply_str(&r, "event", "participant_joined");
        sm_obuf_t *b = sm_reply_finish(&r, NULL);
        decoded_t d = decode(b);
        assert_int_equal(d.f.uuid[6] >> 4, 4);      /* version 4 */
        assert_int_equal(d.f.uuid[8] & 0xc0, 0x80); /* RFC 4122 variant */
        memcpy(seen[i], d.f.uuid, 16);
        for (int k = 0; k < i; k++)
            assert_memory_not_equal(seen[k], seen[i], 16);
        decoded_free(&d);
        sm_obuf_unref(b);
    }
}

static void test_string_escaping(void **state)
{
    (void)state;
    static const char nasty[] = "q\"uote b\\ack /slash \n\r\t\b\f \x01\x1f \x7f "
                                "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_SIGNAL, req_uuid);
    sm_reply_str(&r, "v", nasty);
    sm_reply_str(&r, "k\"ey\n", "key escaped too");
    /* strn with an embedded NUL: kept as \u0000. */
    sm_reply_strn(&r, "nul", "a\0b", 3);
    sm_obuf_t *b = sm_reply_finish(&r, NULL);
    decoded_t d = decode(b);
    assert_string_equal(jstr(d.json, "v"), nasty);
    assert_string_equal(jstr(d.json, "k\"ey\n"), "key escaped too");
    json_t *nul = json_object_get(d.json, "nul");
    assert_int_equal(json_string_length(nul), 3);
    assert_memory_equal(json_string_value(nul), "a\0b", 3);
    /* UTF-8 passes through unescaped; control characters never appear raw. */
    assert_non_null(strstr(d.text, "caf\xc3\xa9"));
    assert_non_null(strstr(d.text, "\xf0\x9f\x98\x80"));
    for (size_t i = 0; i < d.f.length; i++)
        if ((unsigned char)d.text[i] < 0x20)
            fail_msg("raw control byte 0x%02x at %zu", (unsigned char)d.text[i], i);
    assert_non_null(strstr(d.text, "\\u0001"));
    assert_non_null(strstr(d.text, "\\n"));
    decoded_free(&d);
    sm_obuf_unref(b);
}

static void test_nested_objects(void **state)
{
    (void)state;
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_ROOM_JOIN_ACK, req_uuid);
    sm_reply_int(&r, "status", 200);
    sm_reply_open(&r, "a");
    sm_reply_open(&r, "b");
    sm_reply_open(&r, "empty");
    sm_reply_close(&r);
    sm_reply_str(&r, "deep", "yes");
    sm_reply_close(&r);
    sm_reply_int(&r, "after_b", 1);
    sm_reply_close(&r);
    sm_reply_str(&r, "tail", "t");
    sm_reply_open(&r, "unclosed");
    sm_reply_open(&r, "also");
    sm_reply_int(&r, "x", 5);
    /* finish closes what is still open */
    sm_obuf_t *b = sm_reply_finish(&r, NULL);
    decoded_t d = decode(b);
    json_t *want = json_loads("{\"status\":200,\"a\":{\"b\":{\"empty\":{},\"deep\":\"yes\"},"
                              "\"after_b\":1},\"tail\":\"t\",\"unclosed\":{\"also\":{\"x\":5}}}",
                              0, NULL);
    assert_non_null(want);
    if (!json_equal(d.json, want))
        fail_msg("got %s", d.text);
    json_decref(want);
    decoded_free(&d);
    sm_obuf_unref(b);
}

static void test_growth_and_16bit_ws_length(void **state)
{
    (void)state;
    /* Well past the 256-byte first guess and past 125/65535 WebSocket forms. */
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_ROOM_JOIN_ACK, req_uuid);
    char key[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        sm_reply_str(&r, key, "0123456789");
    }
    sm_obuf_t *b = sm_reply_finish(&r, NULL);
    decoded_t d = decode(b);
    assert_int_equal(json_object_size(d.json), 2000);
    assert_string_equal(jstr(d.json, "k1999"), "0123456789");
    assert_memory_equal(d.f.uuid, req_uuid, 16);
    assert_int_equal(sm_obuf_bytes(b)[1], 126);
    decoded_free(&d);
    sm_obuf_unref(b);
}

static void test_max_payload_boundary(void **state)
{
    (void)state;
    /* {"v":"<x * n>"} is n + 8 bytes: 65535 exactly fits. */
    size_t n = 65535 - 8;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'x', n);
    s[n] = '\0';
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_SIGNAL, req_uuid);
    sm_reply_str(&r, "v", s);
    int err = 99;
    sm_obuf_t *b = sm_reply_finish(&r, &err);
    assert_non_null(b);
    assert_int_equal(err, 0);
    decoded_t d = decode(b);
    assert_int_equal(d.f.length, 65535);
    assert_int_equal(strlen(jstr(d.json, "v")), n);
    /* 21 + 65535 > 65535: the 64-bit WebSocket length form. */
    assert_int_equal(sm_obuf_bytes(b)[1], 127);
    decoded_free(&d);
    sm_obuf_unref(b);

    /* One more byte is too big. */
    s = realloc(s, n + 2);
    assert_non_null(s);
    s[n] = 'x';
    s[n + 1] = '\0';
    sm_reply_begin(&r, SM_MSG_SIGNAL, req_uuid);
    sm_reply_str(&r, "v", s);
    err = 0;
    assert_null(sm_reply_finish(&r, &err));
    assert_int_equal(err, SM_ETOOBIG);
    assert_null(r.b); /* freed (ASan checks the leak) */

    /* err may be NULL. */
    sm_reply_begin(&r, SM_MSG_SIGNAL, req_uuid);
    sm_reply_str(&r, "v", s);
    assert_null(sm_reply_finish(&r, NULL));
    free(s);

    /* Far above the limit, through sm_reply_json. */
    json_t *big = json_array();
    for (int i = 0; i < 20000; i++)
        json_array_append_new(big, json_string("abcdef"));
    sm_reply_begin(&r, SM_MSG_SIGNAL, NULL);
    sm_reply_json(&r, "big", big);
    err = 0;
    assert_null(sm_reply_finish(&r, &err));
    assert_int_equal(err, SM_ETOOBIG);
    json_decref(big);
}

static void test_reply_error(void **state)
{
    (void)state;
    int64_t before = sm_clock_wall_ms();
    sm_obuf_t *b = sm_reply_error(req_uuid, 404, "target not found", "target_client_id", "bob");
    int64_t after = sm_clock_wall_ms();
    decoded_t d = decode(b);
    assert_int_equal(d.f.type, SM_MSG_ERROR);
    assert_memory_equal(d.f.uuid, req_uuid, 16);
    assert_int_equal(jint(d.json, "error_code"), 404);
    assert_string_equal(jstr(d.json, "error_message"), "target not found");
    json_t *det = json_object_get(d.json, "details");
    assert_true(json_is_object(det));
    assert_string_equal(jstr(det, "target_client_id"), "bob");
    json_int_t ts = jint(det, "timestamp");
    assert_true(ts >= before && ts <= after);
    assert_int_equal(json_object_size(det), 2);
    assert_int_equal(json_object_size(d.json), 3);
    decoded_free(&d);
    sm_obuf_unref(b);

    /* No detail, no uuid: all-zero uuid, details holds only the timestamp. */
    b = sm_reply_error(NULL, 400, "bad \"frame\"", NULL, NULL);
    d = decode(b);
    static const uint8_t zero[16] = {0};
    assert_memory_equal(d.f.uuid, zero, 16);
    assert_int_equal(jint(d.json, "error_code"), 400);
    assert_string_equal(jstr(d.json, "error_message"), "bad \"frame\"");
    det = json_object_get(d.json, "details");
    assert_int_equal(json_object_size(det), 1);
    assert_true(json_is_integer(json_object_get(det, "timestamp")));
    decoded_free(&d);
    sm_obuf_unref(b);

    /* A detail key without a value is left out. */
    b = sm_reply_error(req_uuid, 409, "conflict", "field", NULL);
    d = decode(b);
    det = json_object_get(d.json, "details");
    assert_null(json_object_get(det, "field"));
    decoded_free(&d);
    sm_obuf_unref(b);

    /* An over-long message still yields an ERROR with the code and uuid. */
    char *huge = malloc(70000);
    assert_non_null(huge);
    memset(huge, 'm', 69999);
    huge[69999] = '\0';
    b = sm_reply_error(req_uuid, 413, huge, NULL, NULL);
    d = decode(b);
    assert_int_equal(jint(d.json, "error_code"), 413);
    assert_memory_equal(d.f.uuid, req_uuid, 16);
    assert_true(json_is_integer(json_object_get(json_object_get(d.json, "details"), "timestamp")));
    decoded_free(&d);
    sm_obuf_unref(b);
    free(huge);
}

static void test_reply_disconnect(void **state)
{
    (void)state;
    sm_obuf_t *b = sm_reply_disconnect("heartbeat timeout", 4408, true);
    decoded_t d = decode(b);
    assert_int_equal(d.f.type, SM_MSG_DISCONNECT);
    assert_int_equal(d.f.uuid[6] >> 4, 4);
    assert_string_equal(jstr(d.json, "reason"), "heartbeat timeout");
    assert_int_equal(jint(d.json, "code"), 4408);
    assert_true(json_is_true(json_object_get(d.json, "reconnect")));
    assert_int_equal(json_object_size(d.json), 3);
    assert_string_equal(d.text,
                        "{\"reason\":\"heartbeat timeout\",\"code\":4408,\"reconnect\":true}");
    decoded_free(&d);
    sm_obuf_unref(b);

    b = sm_reply_disconnect("replaced", 4409, false);
    d = decode(b);
    assert_string_equal(jstr(d.json, "reason"), "replaced");
    assert_int_equal(jint(d.json, "code"), 4409);
    assert_true(json_is_false(json_object_get(d.json, "reconnect")));
    decoded_free(&d);
    sm_obuf_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_builder),
        cmocka_unit_test(test_int_and_raw),
        cmocka_unit_test(test_empty_object),
        cmocka_unit_test(test_exact_bytes_simple),
        cmocka_unit_test(test_fresh_uuid),
        cmocka_unit_test(test_string_escaping),
        cmocka_unit_test(test_nested_objects),
        cmocka_unit_test(test_growth_and_16bit_ws_length),
        cmocka_unit_test(test_max_payload_boundary),
        cmocka_unit_test(test_reply_error),
        cmocka_unit_test(test_reply_disconnect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
