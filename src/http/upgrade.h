/*
 * Routing of the one HTTP request a connection makes, the RFC 6455 upgrade
 * checks, and the response texts.  Pure functions over a parsed request:
 * no I/O, no state, any thread (the I/O threads call them).
 *
 *   Upgrade: websocket on "/"   -> checks below, then 101 (or 503 when the
 *                                  caller is draining or full)
 *   GET|HEAD /health            -> health JSON (http/health.h), liveness
 *   GET|HEAD /ready             -> 200 when serving, 503 while draining or
 *                                  when the store fails (readiness)
 *   GET|HEAD /demo, /demo/...   -> demo page files (http/static.h)
 *   "/" without Upgrade         -> 426 with a hint
 *   anything else               -> 404
 * A bad upgrade (not GET, HTTP/1.0, no "Connection: upgrade", missing or
 * malformed Sec-WebSocket-Key, Sec-WebSocket-Version != 13) is 400.
 */
#ifndef SM_HTTP_UPGRADE_H
#define SM_HTTP_UPGRADE_H

#include <stddef.h>

#include "http/request.h"

typedef enum {
    SM_ROUTE_UPGRADE,
    SM_ROUTE_HEALTH,
    SM_ROUTE_READY, /* GET|HEAD /ready: readiness for load balancers */
    SM_ROUTE_STATIC, /* GET|HEAD /demo... (http/static.h) */
    SM_ROUTE_UPGRADE_REQUIRED,
    SM_ROUTE_NOT_FOUND,
    SM_ROUTE_BAD_UPGRADE,
} sm_http_route_t;

#define SM_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

/* Decide what to answer.  For SM_ROUTE_BAD_UPGRADE, *why (if not NULL) is a
 * short static explanation for the response body. */
sm_http_route_t sm_http_route(const sm_http_req_t *r, const char **why);

/* Sec-WebSocket-Accept for a client key.  The key must be the base64 text of
 * 16 bytes (24 characters).  Writes 28 characters + NUL into out.
 * 0, or SM_EINVAL for a malformed key. */
int sm_ws_accept_key(const char *key, char out[SM_WS_ACCEPT_LEN + 1]);

/* Reason phrase of a status code we send ("Not Found"); "Unknown" otherwise. */
const char *sm_http_reason(int status);

/* Format a complete response with Content-Length and "Connection: close".
 * extra_headers is NULL or CRLF-terminated header lines.  Returns the length
 * written (excluding NUL), or 0 when cap is too small. */
size_t sm_http_format(char *out, size_t cap, int status, const char *content_type,
                      const char *extra_headers, const char *body, size_t body_len);

/* The 101 Switching Protocols response for an accept key. */
size_t sm_http_format_upgrade(char *out, size_t cap, const char *accept);

#endif
