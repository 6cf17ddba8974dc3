/*
 * Builders for the frames the server sends: ACKs, ERROR, DISCONNECT notices.
 *
 * A reply is written straight into an output buffer (core/obuf.h): the
 * 21-byte protocol header, then a JSON object appended field by field with
 * escaping, then the WebSocket header in front.  No intermediate jansson
 * tree and one allocation per reply (more only if the payload outgrows the
 * first guess).  Worker threads use these; the builders keep no state
 * outside the sm_reply_t on the caller's stack.
 */
#ifndef SM_PROTO_REPLY_H
#define SM_PROTO_REPLY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/obuf.h"

typedef struct {
    sm_obuf_t *b;
    size_t len;    /* payload bytes written so far (after the 21-byte header) */
    uint8_t type;  /* message type */
    uint8_t depth; /* open objects */
    bool first;    /* no member written yet in the current object */
    bool too_big;  /* payload would exceed 65535 bytes */
    uint8_t uuid[16];
} sm_reply_t;

/* Start a frame of `type` with JSON payload; uuid NULL means a fresh v4
 * (server-originated messages). */
void sm_reply_begin(sm_reply_t *r, uint8_t type, const uint8_t *uuid);
void sm_reply_str(sm_reply_t *r, const char *key, const char *val);
void sm_reply_strn(sm_reply_t *r, const char *key, const char *val, size_t len);
void sm_reply_int(sm_reply_t *r, const char *key, int64_t val);
void sm_reply_bool(sm_reply_t *r, const char *key, bool val);
void sm_reply_null(sm_reply_t *r, const char *key);
/* Any jansson value (serialised compactly); NULL writes null. */
void sm_reply_json(sm_reply_t *r, const char *key, const json_t *val);
/* A JSON value given as text the caller has already validated (e.g. the
 * number bytes sm_payload_ping_fast found), copied as it is. */
void sm_reply_raw(sm_reply_t *r, const char *key, const char *json, size_t len);
/* Array of strings from a NULL-terminated C array. */
void sm_reply_str_array(sm_reply_t *r, const char *key, const char *const *vals);
/* Nested object. */
void sm_reply_open(sm_reply_t *r, const char *key);
void sm_reply_close(sm_reply_t *r);
/* Finish: returns the buffer (refcount 1, caller owns it), or NULL with
 * SM_ETOOBIG in *err when the payload outgrew 65535 bytes (the buffer is
 * freed).  err may be NULL. */
sm_obuf_t *sm_reply_finish(sm_reply_t *r, int *err);

/* ERROR frame echoing `uuid` (or all-zero when NULL): {"error_code",
 * "error_message", "details": {<detail_key>: <detail_val>?, "timestamp"}}. */
sm_obuf_t *sm_reply_error(const uint8_t *uuid, int code, const char *message,
                          const char *detail_key, const char *detail_val);
/* Server DISCONNECT notice with a fresh uuid. */
sm_obuf_t *sm_reply_disconnect(const char *reason, int close_code, bool reconnect);

#endif
