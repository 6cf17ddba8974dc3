/*
 * HTTP routing and the RFC 6455 opening handshake (section 4.2).
 */
#include "http/upgrade.h"

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "http/static.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

sm_http_route_t sm_http_route(const sm_http_req_t *r, const char **why)
{
    const char *path = sm_http_req_path(r);
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    *why = NULL;

    if (sm_http_req_wants_websocket(r)) {
        if (strcmp(path, "/") != 0)
            return SM_ROUTE_NOT_FOUND;
        if (!sm_http_req_is_get(r)) {
            *why = "WebSocket upgrade requires GET";
            return SM_ROUTE_BAD_UPGRADE;
        }
        if (sm_http_req_version(r) < 11) {
            *why = "WebSocket upgrade requires HTTP/1.1";
            return SM_ROUTE_BAD_UPGRADE;
        }
        if (!sm_http_req_connection_upgrade(r)) {
            *why = "missing \"Connection: Upgrade\"";
            return SM_ROUTE_BAD_UPGRADE;
        }
        char accept[SM_WS_ACCEPT_LEN + 1];
        if (sm_ws_accept_key(sm_http_req_ws_key(r), accept) != 0) {
            *why = "missing or malformed Sec-WebSocket-Key";
            return SM_ROUTE_BAD_UPGRADE;
        }
        if (sm_http_req_ws_version(r) != 13) {
            *why = "Sec-WebSocket-Version must be 13";
            return SM_ROUTE_BAD_UPGRADE;
        }
        return SM_ROUTE_UPGRADE;
    }
    if (strcmp(path, "/health") == 0 && (sm_http_req_is_get(r) || sm_http_req_is_head(r)))
        return SM_ROUTE_HEALTH;
    if (strcmp(path, "/ready") == 0 && (sm_http_req_is_get(r) || sm_http_req_is_head(r)))
        return SM_ROUTE_READY;
    if (sm_static_matches(path) && (sm_http_req_is_get(r) || sm_http_req_is_head(r)))
        return SM_ROUTE_STATIC;
    if (strcmp(path, "/") == 0)
        return SM_ROUTE_UPGRADE_REQUIRED;
    return SM_ROUTE_NOT_FOUND;
}

int sm_ws_accept_key(const char *key, char out[SM_WS_ACCEPT_LEN + 1])
{
    size_t klen = strlen(key);
    unsigned char raw[32];
    size_t rawlen = 0;
    /* RFC 6455 4.2.1: the key is base64 of a 16-byte nonce. */
    if (klen != 24 || mbedtls_base64_decode(raw, sizeof raw, &rawlen, (const unsigned char *)key,
                                            klen) != 0 || rawlen != 16)
        return SM_EINVAL;
    unsigned char buf[24 + sizeof ws_guid];
    memcpy(buf, key, 24);
    memcpy(buf + 24, ws_guid, sizeof ws_guid - 1);
    unsigned char digest[20];
    if (mbedtls_sha1_ret(buf, 24 + sizeof ws_guid - 1, digest) != 0)
        return SM_EINVAL;
    size_t olen = 0;
    if (mbedtls_base64_encode((unsigned char *)out, SM_WS_ACCEPT_LEN + 1, &olen, digest,
                              sizeof digest) != 0 || olen != SM_WS_ACCEPT_LEN)
        return SM_EINVAL;
    out[SM_WS_ACCEPT_LEN] = '\0';
    return 0;
}

const char *sm_http_reason(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 301:
        return "Moved Permanently";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

size_t sm_http_format(char *out, size_t cap, int status, const char *content_type,
                      const char *extra_headers, const char *body, size_t body_len)
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "Connection: close\r\n"
                     "%s"
                     "\r\n",
                     status, sm_http_reason(status), content_type, body_len,
                     extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n + body_len >= cap)
        return 0;
    memcpy(out + n, body, body_len);
    out[(size_t)n + body_len] = '\0';
    return (size_t)n + body_len;
}

size_t sm_http_format_upgrade(char *out, size_t cap, const char *accept)
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "\r\n",
                     accept);
    return (n < 0 || (size_t)n >= cap) ? 0 : (size_t)n;
}
