/*
 * Fuzz target: the hand-written JSON of server replies (src/proto/reply.c).
 * Replies echo peer strings (ids, reasons, SIGNAL types, error details), so
 * whatever the strings hold, the frame must carry valid JSON meaning exactly
 * what the builder calls said.
 *
 * The input is a program: each step takes an op byte and its operands
 * (strings are a length byte and that many bytes; bytes that are not valid
 * UTF-8 are replaced by '?', as every peer string has passed jansson's UTF-8
 * check before it reaches a reply).  The same calls build a jansson tree;
 * at the end the frame is unwrapped (WebSocket header, 21-byte header) and
 * its payload must parse and equal that tree.  sm_reply_error and
 * sm_reply_disconnect run on strings from the input too.
 */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include <sm/proto.h>

#include "core/err.h"
#include "core/obuf.h"
#include "fuzz.h"
#include "proto/reply.h"

#define DEPTH_MAX 8
#define STEPS_MAX 64

FUZZ_INITIALIZE_QUIET()

/* Length of the valid UTF-8 sequence at s[0..n) (strict: no overlongs,
 * surrogates or code points past U+10FFFF), 0 if invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* Next string operand: a malloc'd copy with invalid UTF-8 replaced, NUL
 * terminated; *len counts bytes (it may hold NULs). */
static char *take_str(fuzz_in_t *in, size_t *len)
{
    size_t n = fuzz_u8(in) % 48u;
    if (n > in->n)
        n = in->n;
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL);
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq(in->p + i, n - i);
        if (k == 0) {
            s[i++] = '?';
            continue;
        }
        memcpy(s + i, in->p + i, k);
        i += k;
    }
    s[n] = '\0';
    in->p += n;
    in->n -= n;
    if (len)
        *len = n;
    return s;
}

/* Unwrap and parse a finished reply; checks the framing.  New reference. */
static json_t *unwrap(sm_obuf_t *b, uint8_t type, const uint8_t *uuid)
{
    const uint8_t *w = sm_obuf_bytes(b);
    FUZZ_CHECK(b->len >= 2 && w[0] == 0x82);
    size_t hl = 2, plen = w[1];
    FUZZ_CHECK((w[1] & 0x80) == 0);
    if (plen == 126) {
        plen = (size_t)w[2] << 8 | w[3];
        hl = 4;
        FUZZ_CHECK(plen >= 126);
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | w[2 + i];
        hl = 10;
        FUZZ_CHECK(plen > 0xffff);
    }
    FUZZ_CHECK(hl + plen == b->len);
    sm_frame_t f;
    FUZZ_CHECK(sm_frame_decode(w + hl, plen, &f) == SM_PROTO_OK);
    FUZZ_CHECK(f.type == type && f.payload_type == SM_PAYLOAD_JSON);
    FUZZ_CHECK(uuid == NULL || memcmp(f.uuid, uuid, 16) == 0);
    FUZZ_CHECK(sm_msg_check(type, f.payload_type, SM_MSG_S2C) == SM_PROTO_OK);
    json_error_t e;
    json_t *v = json_loadb((const char *)f.payload, f.length, JSON_ALLOW_NUL, &e);
    if (v == NULL)
        fprintf(stderr, "reply JSON does not parse: %s: %.*s\n", e.text, (int)f.length,
                (const char *)f.payload);
    FUZZ_CHECK(json_is_object(v));
    return v;
}

static void run_program(fuzz_in_t *in)
{
    static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    uint8_t type = (fuzz_u8(in) & 1) ? SM_MSG_PING_ACK : SM_MSG_CONNECT_ACK;
    sm_reply_t r;
    sm_reply_begin(&r, type, uuid);
    json_t *stack[DEPTH_MAX];
    int depth = 0;
    stack[0] = json_object();

    for (int step = 0; step < STEPS_MAX && in->n > 0; step++) {
        uint8_t op = fuzz_u8(in) % 9u;
        if (op == 6) {
            if (depth > 0) {
                sm_reply_close(&r);
                depth--;
            }
            continue;
        }
        char *key = take_str(in, NULL);
        json_t *val = NULL;
        switch (op) {
        case 0: {
            char *s = take_str(in, NULL);
            sm_reply_str(&r, key, s);
            val = json_string(s);
            free(s);
            break;
        }
        case 1: {
            size_t n;
            char *s = take_str(in, &n);
            sm_reply_strn(&r, key, s, n);
            val = json_stringn(s, n);
            free(s);
            break;
        }
        case 2: {
            uint64_t u = 0;
            for (int i = 0; i < 8; i++)
                u = u << 8 | fuzz_u8(in);
            sm_reply_int(&r, key, (int64_t)u);
            val = json_integer((json_int_t)(int64_t)u);
            break;
        }
        case 3: {
            bool b = fuzz_u8(in) & 1;
            sm_reply_bool(&r, key, b);
            val = json_boolean(b);
            break;
        }
        case 4:
            sm_reply_null(&r, key);
            val = json_null();
            break;
        case 5:
            if (depth + 1 < DEPTH_MAX) {
                sm_reply_open(&r, key);
                json_t *o = json_object();
                json_object_set_new(stack[depth], key, o);
                stack[++depth] = o;
            }
            break;
        case 7: {
            size_t n;
            char *s = take_str(in, &n);
            json_error_t e;
            json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &e);
            sm_reply_json(&r, key, j);
            val = j ? j : json_null();
            free(s);
            break;
        }
        default: {
            char *items[4] = {NULL, NULL, NULL, NULL};
            unsigned k = fuzz_u8(in) % 4u;
            val = json_array();
            for (unsigned i = 0; i < k; i++) {
                items[i] = take_str(in, NULL);
                json_array_append_new(val, json_string(items[i]));
            }
            sm_reply_str_array(&r, key, (const char *const *)items);
            for (unsigned i = 0; i < k; i++)
                free(items[i]);
            break;
        }
        }
        if (val)
            json_object_set_new(stack[depth], key, val);
        free(key);
    }

    int err = 1;
    sm_obuf_t *b = sm_reply_finish(&r, &err);
    if (b == NULL) {
        FUZZ_CHECK(err == SM_ETOOBIG);
    } else {
        FUZZ_CHECK(err == 0);
        json_t *got = unwrap(b, type, uuid);
        if (!json_equal(got, stack[0])) {
            char *a = json_dumps(got, JSON_COMPACT), *e = json_dumps(stack[0], JSON_COMPACT);
            fprintf(stderr, "reply differs\n got: %s\nwant: %s\n", a, e);
            free(a);
            free(e);
        }
        FUZZ_CHECK(json_equal(got, stack[0]));
        json_decref(got);
        sm_obuf_unref(b);
    }
    json_decref(stack[0]);
}

static void run_canned(fuzz_in_t *in)
{
    char *msg = take_str(in, NULL), *dk = take_str(in, NULL), *dv = take_str(in, NULL);
    uint8_t uuid[16];
    for (int i = 0; i < 16; i++)
        uuid[i] = fuzz_u8(in);
    int code = (int)fuzz_u16(in);
    sm_obuf_t *b = sm_reply_error(uuid, code, msg, dk[0] ? dk : NULL, dv);
    FUZZ_CHECK(b != NULL);
    json_t *v = unwrap(b, SM_MSG_ERROR, uuid);
    FUZZ_CHECK(json_integer_value(json_object_get(v, "error_code")) == code);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(v, "error_message")), msg) == 0);
    json_t *d = json_object_get(v, "details");
    FUZZ_CHECK(json_is_object(d) && json_is_integer(json_object_get(d, "timestamp")));
    if (dk[0] && strcmp(dk, "timestamp") != 0)
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(d, dk)), dv) == 0);
    json_decref(v);
    sm_obuf_unref(b);

    b = sm_reply_disconnect(msg, code, code & 1);
    FUZZ_CHECK(b != NULL);
    v = unwrap(b, SM_MSG_DISCONNECT, NULL);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(v, "reason")), msg) == 0);
    FUZZ_CHECK(json_integer_value(json_object_get(v, "code")) == code);
    FUZZ_CHECK(json_is_true(json_object_get(v, "reconnect")) == (code & 1));
    json_decref(v);
    sm_obuf_unref(b);
    free(msg);
    free(dk);
    free(dv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    if (fuzz_u8(&in) & 0x80)
        run_canned(&in);
    else
        run_program(&in);
    return 0;
}
