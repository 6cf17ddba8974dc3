/*
 * Hand-rolled JSON writer into output buffers.
 */
#include "proto/reply.h"

#include <stdio.h>
#include <string.h>

#include <sm/proto.h>
#include <sm/uuid.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"

#define FIRST_GUESS 256

static void reserve(sm_reply_t *r, size_t more)
{
    size_t need = SM_PROTO_HEADER_SIZE + r->len + more;
    if (need <= r->b->cap)
        return;
    size_t cap = r->b->cap * 2;
    while (cap < need)
        cap *= 2;
    /* Not shared yet (refcount 1), so it may move. */
    r->b = sm_xrealloc(r->b, sizeof *r->b + SM_OBUF_HEADROOM + cap);
    r->b->cap = (uint32_t)cap;
}

static void put(sm_reply_t *r, const char *s, size_t n)
{
    reserve(r, n);
    memcpy(sm_obuf_body(r->b) + SM_PROTO_HEADER_SIZE + r->len, s, n);
    r->len += n;
}

static void put_c(sm_reply_t *r, char c)
{
    put(r, &c, 1);
}

static void put_escaped(sm_reply_t *r, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put_c(r, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        put(r, s + start, i - start);
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        put(r, esc, elen);
        start = i + 1;
    }
    put(r, s + start, n - start);
    put_c(r, '"');
}

static void key(sm_reply_t *r, const char *k)
{
    if (!r->first)
        put_c(r, ',');
    r->first = false;
    put_escaped(r, k, strlen(k));
    put_c(r, ':');
}

void sm_reply_begin(sm_reply_t *r, uint8_t type, const uint8_t *uuid)
{
    r->b = sm_obuf_new(FIRST_GUESS);
    r->len = 0;
    r->type = type;
    r->depth = 1;
    r->first = true;
    r->too_big = false;
    if (uuid)
        memcpy(r->uuid, uuid, 16);
    else if (sm_uuid_v4(r->uuid) != 0)
        memset(r->uuid, 0, 16);
    put_c(r, '{');
}

void sm_reply_str(sm_reply_t *r, const char *k, const char *val)
{
    if (val == NULL) {
        sm_reply_null(r, k);
        return;
    }
    sm_reply_strn(r, k, val, strlen(val));
}

void sm_reply_strn(sm_reply_t *r, const char *k, const char *val, size_t len)
{
    key(r, k);
    put_escaped(r, val, len);
}

void sm_reply_int(sm_reply_t *r, const char *k, int64_t val)
{
    /* By hand: snprintf was a visible share of a PING's cost. */
    char buf[24];
    char *p = buf + sizeof buf;
    uint64_t u = val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (val < 0)
        *--p = '-';
    key(r, k);
    put(r, p, (size_t)(buf + sizeof buf - p));
}

void sm_reply_raw(sm_reply_t *r, const char *k, const char *json, size_t len)
{
    key(r, k);
    put(r, json, len);
}

void sm_reply_bool(sm_reply_t *r, const char *k, bool val)
{
    key(r, k);
    put(r, val ? "true" : "false", val ? 4 : 5);
}

void sm_reply_null(sm_reply_t *r, const char *k)
{
    key(r, k);
    put(r, "null", 4);
}

void sm_reply_json(sm_reply_t *r, const char *k, const json_t *val)
{
    key(r, k);
    if (val == NULL) {
        put(r, "null", 4);
        return;
    }
    size_t n = json_dumpb(val, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    reserve(r, n);
    json_dumpb(val, (char *)sm_obuf_body(r->b) + SM_PROTO_HEADER_SIZE + r->len, n,
               JSON_COMPACT | JSON_ENCODE_ANY);
    r->len += n;
}

void sm_reply_str_array(sm_reply_t *r, const char *k, const char *const *vals)
{
    key(r, k);
    put_c(r, '[');
    for (size_t i = 0; vals[i]; i++) {
        if (i)
            put_c(r, ',');
        put_escaped(r, vals[i], strlen(vals[i]));
    }
    put_c(r, ']');
}

void sm_reply_open(sm_reply_t *r, const char *k)
{
    key(r, k);
    put_c(r, '{');
    r->first = true;
    r->depth++;
}

void sm_reply_close(sm_reply_t *r)
{
    put_c(r, '}');
    r->first = false;
    r->depth--;
}

sm_obuf_t *sm_reply_finish(sm_reply_t *r, int *err)
{
    while (r->depth > 0)
        sm_reply_close(r);
    if (r->len > SM_PROTO_MAX_PAYLOAD) {
        sm_obuf_unref(r->b);
        r->b = NULL;
        if (err)
            *err = SM_ETOOBIG;
        return NULL;
    }
    uint8_t *body = sm_obuf_body(r->b);
    sm_frame_encode_header(body, r->type, r->uuid, SM_PAYLOAD_JSON, r->len);
    sm_obuf_finish_ws(r->b, SM_PROTO_HEADER_SIZE + r->len, 0x2);
    sm_obuf_t *b = r->b;
    r->b = NULL;
    if (err)
        *err = 0;
    return b;
}

sm_obuf_t *sm_reply_error(const uint8_t *uuid, int code, const char *message,
                          const char *detail_key, const char *detail_val)
{
    static const uint8_t nil[16];
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_ERROR, uuid ? uuid : nil);
    sm_reply_int(&r, "error_code", code);
    sm_reply_str(&r, "error_message", message);
    sm_reply_open(&r, "details");
    if (detail_key && detail_val)
        sm_reply_str(&r, detail_key, detail_val);
    sm_reply_int(&r, "timestamp", sm_clock_wall_ms());
    sm_reply_close(&r);
    sm_obuf_t *b = sm_reply_finish(&r, NULL);
    if (b == NULL) /* an over-long message: send the code alone */
        return sm_reply_error(uuid, code, "error", NULL, NULL);
    return b;
}

sm_obuf_t *sm_reply_disconnect(const char *reason, int close_code, bool reconnect)
{
    sm_reply_t r;
    sm_reply_begin(&r, SM_MSG_DISCONNECT, NULL);
    sm_reply_str(&r, "reason", reason);
    sm_reply_int(&r, "code", close_code);
    sm_reply_bool(&r, "reconnect", reconnect);
    return sm_reply_finish(&r, NULL);
}
