/*
 * One HTTP/1.1 request read with llhttp, before the WebSocket upgrade.
 *
 * Owns the llhttp parser and the few header values the server needs (Upgrade,
 * Connection, Sec-WebSocket-Key, Sec-WebSocket-Version); everything else is
 * parsed and dropped, so memory is fixed (about 600 bytes) whatever the peer
 * sends.  A connection holds one of these only until its first request is
 * complete; the I/O thread that owns the connection is the only caller.
 */
#ifndef SM_HTTP_REQUEST_H
#define SM_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SM_HTTP_MAX_HEADER_BYTES 8192 /* request line + headers; more is 431 */
#define SM_HTTP_PATH_MAX 256
#define SM_HTTP_KEY_MAX 64

typedef enum {
    SM_HTTP_MORE = 0,      /* need more bytes */
    SM_HTTP_COMPLETE = 1,  /* a full request was read; see *consumed */
    SM_HTTP_BAD = 2,       /* malformed request: answer 400 and close */
    SM_HTTP_TOO_LARGE = 3, /* headers over SM_HTTP_MAX_HEADER_BYTES: 431 */
} sm_http_status_t;

typedef struct sm_http_req_s sm_http_req_t;

/* Fresh parser for one request.  Free with sm_http_req_free. */
sm_http_req_t *sm_http_req_new(void);
void sm_http_req_free(sm_http_req_t *r);

/*
 * Feed len bytes.  On SM_HTTP_COMPLETE, *consumed is the number of bytes that
 * belonged to the request; bytes after it (a client may pipeline its first
 * WebSocket frame right behind the upgrade request) are the caller's.  After
 * COMPLETE, BAD or TOO_LARGE further feeding is not allowed.
 */
sm_http_status_t sm_http_req_feed(sm_http_req_t *r, const char *data, size_t len,
                                  size_t *consumed);

/* Accessors, valid after SM_HTTP_COMPLETE. */
const char *sm_http_req_method(const sm_http_req_t *r); /* "GET", ... */
bool sm_http_req_is_get(const sm_http_req_t *r);
bool sm_http_req_is_head(const sm_http_req_t *r);
/* Path without the query string, NUL-terminated ("" when too long). */
const char *sm_http_req_path(const sm_http_req_t *r);
bool sm_http_req_path_too_long(const sm_http_req_t *r);
/* HTTP version as major*10+minor, e.g. 11. */
unsigned sm_http_req_version(const sm_http_req_t *r);
/* "Upgrade" header lists the token "websocket" (case-insensitive). */
bool sm_http_req_wants_websocket(const sm_http_req_t *r);
/* "Connection" header lists the token "upgrade". */
bool sm_http_req_connection_upgrade(const sm_http_req_t *r);
/* Sec-WebSocket-Key value ("" when absent or over SM_HTTP_KEY_MAX). */
const char *sm_http_req_ws_key(const sm_http_req_t *r);
/* Sec-WebSocket-Version as an integer; -1 when absent or not a number. */
int sm_http_req_ws_version(const sm_http_req_t *r);

#endif
