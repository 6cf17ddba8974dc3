/*
 * Unit tests for src/http/upgrade.c: every route of sm_http_route (parsed
 * from real request text through http/request.h), the RFC 6455 accept key
 * (§1.3 example and malformed keys), the reason phrases, and the exact bytes
 * of sm_http_format / sm_http_format_upgrade including the cap edges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/request.h"
#include "http/upgrade.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Parse text (must be a complete request) and route it. */
static sm_http_route_t route(const char *text, const char **why)
{
    sm_http_req_t *r = sm_http_req_new();
    size_t consumed = 0;
    sm_http_status_t st = sm_http_req_feed(r, text, strlen(text), &consumed);
    if (st != SM_HTTP_COMPLETE)
        fail_msg("request did not parse (status %d): %s", st, text);
    sm_http_route_t rt = sm_http_route(r, why);
    sm_http_req_free(r);
    return rt;
}

/* An upgrade request with one line replaced: fields NULL use the default. */
static char *upgrade_text(char *buf, size_t cap, const char *request_line, const char *upgrade,
                          const char *connection, const char *key, const char *version)
{
    size_t n = (size_t)snprintf(buf, cap, "%s\r\nHost: example.com\r\n",
                                request_line ? request_line : "GET / HTTP/1.1");
    if (upgrade == NULL)
        upgrade = "Upgrade: websocket\r\n";
    if (connection == NULL)
        connection = "Connection: Upgrade\r\n";
    if (key == NULL)
        key = "Sec-WebSocket-Key: " KEY "\r\n";
    if (version == NULL)
        version = "Sec-WebSocket-Version: 13\r\n";
    snprintf(buf + n, cap - n, "%s%s%s%s\r\n", upgrade, connection, key, version);
    return buf;
}

static void test_route_upgrade(void **state)
{
    (void)state;
    char buf[1024];
    const char *why = "untouched";
    assert_int_equal(route(upgrade_text(buf, sizeof buf, NULL, NULL, NULL, NULL, NULL), &why),
                     SM_ROUTE_UPGRADE);
    assert_null(why);
    /* why may be NULL. */
    assert_int_equal(route(upgrade_text(buf, sizeof buf, NULL, NULL, NULL, NULL, NULL), NULL),
                     SM_ROUTE_UPGRADE);
    /* Query string on "/" is fine; "Connection: keep-alive, Upgrade" too. */
    assert_int_equal(route(upgrade_text(buf, sizeof buf, "GET /?token=x&y=1 HTTP/1.1", NULL,
                                        "Connection: keep-alive, Upgrade\r\n", NULL, NULL),
                           &why),
                     SM_ROUTE_UPGRADE);
    /* Mixed-case names and values. */
    assert_int_equal(route("GET / HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\n"
                           "connection: UPGRADE\r\nSEC-WEBSOCKET-KEY: " KEY "\r\n"
                           "sec-websocket-version: 13\r\n\r\n",
                           &why),
                     SM_ROUTE_UPGRADE);
}

static void test_route_health(void **state)
{
    (void)state;
    const char *why = "untouched";
    assert_int_equal(route("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &why), SM_ROUTE_HEALTH);
    assert_null(why);
    assert_int_equal(route("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", NULL), SM_ROUTE_HEALTH);
    assert_int_equal(route("GET /health?full=1 HTTP/1.1\r\nHost: x\r\n\r\n", NULL),
                     SM_ROUTE_HEALTH);
    assert_int_equal(route("GET /health HTTP/1.0\r\n\r\n", NULL), SM_ROUTE_HEALTH);
    /* Other methods on /health are not the health route. */
    assert_int_equal(route("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", NULL),
                     SM_ROUTE_NOT_FOUND);
    assert_int_equal(route("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", NULL), SM_ROUTE_NOT_FOUND);
    assert_int_equal(route("GET /health/ HTTP/1.1\r\nHost: x\r\n\r\n", NULL), SM_ROUTE_NOT_FOUND);
}

static void test_route_upgrade_required_and_not_found(void **state)
{
    (void)state;
    assert_int_equal(route("GET / HTTP/1.1\r\nHost: x\r\n\r\n", NULL), SM_ROUTE_UPGRADE_REQUIRED);
    assert_int_equal(route("GET /?a=b HTTP/1.1\r\nHost: x\r\n\r\n", NULL),
                     SM_ROUTE_UPGRADE_REQUIRED);
    /* Upgrade to something else on "/" is not a WebSocket request. */
    assert_int_equal(
        route("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", NULL),
        SM_ROUTE_UPGRADE_REQUIRED);
    assert_int_equal(route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", NULL), SM_ROUTE_NOT_FOUND);
    assert_int_equal(route("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", NULL),
                     SM_ROUTE_NOT_FOUND);
    /* A WebSocket upgrade on another path is 404. */
    char buf[1024];
    assert_int_equal(
        route(upgrade_text(buf, sizeof buf, "GET /chat HTTP/1.1", NULL, NULL, NULL, NULL), NULL),
        SM_ROUTE_NOT_FOUND);
}

static void expect_bad(const char *text, const char *why_part)
{
    const char *why = NULL;
    sm_http_route_t rt = route(text, &why);
    if (rt != SM_ROUTE_BAD_UPGRADE)
        fail_msg("route %d, expected BAD_UPGRADE for:\n%s", rt, text);
    assert_non_null(why);
    if (strstr(why, why_part) == NULL)
        fail_msg("why \"%s\" does not mention \"%s\"", why, why_part);
}

static void test_route_bad_upgrades(void **state)
{
    (void)state;
    char buf[1024];
    /* Not GET. */
    expect_bad(upgrade_text(buf, sizeof buf, "POST / HTTP/1.1", NULL, NULL, NULL,
                            "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n"),
               "GET");
    /* HTTP/1.0. */
    expect_bad(upgrade_text(buf, sizeof buf, "GET / HTTP/1.0", NULL, NULL, NULL, NULL), "HTTP/1.1");
    /* Connection without the upgrade token, or absent. */
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, "Connection: keep-alive\r\n", NULL, NULL),
               "Connection");
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, "", NULL, NULL), "Connection");
    /* Key: missing, wrong length, not base64, not 16 bytes. */
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, NULL, "", NULL), "Sec-WebSocket-Key");
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, NULL,
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n", NULL),
               "Sec-WebSocket-Key");
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, NULL,
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==A\r\n", NULL),
               "Sec-WebSocket-Key");
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, NULL,
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZS!ub25jZQ==\r\n", NULL),
               "Sec-WebSocket-Key");
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, NULL,
                            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n", NULL),
               "Sec-WebSocket-Key"); /* 24 chars of base64 = 18 bytes, not 16 */
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, NULL, "Sec-WebSocket-Key: \r\n", NULL),
               "Sec-WebSocket-Key");
    /* Version: 12, missing, garbage. */
    expect_bad(
        upgrade_text(buf, sizeof buf, NULL, NULL, NULL, NULL, "Sec-WebSocket-Version: 12\r\n"),
        "13");
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, NULL, NULL, ""), "13");
    expect_bad(upgrade_text(buf, sizeof buf, NULL, NULL, NULL, NULL,
                            "Sec-WebSocket-Version: thirteen\r\n"),
               "13");
}

static void test_accept_key_rfc_example(void **state)
{
    (void)state;
    char out[SM_WS_ACCEPT_LEN + 1];
    memset(out, 'x', sizeof out);
    assert_int_equal(sm_ws_accept_key(KEY, out), 0);
    assert_string_equal(out, ACCEPT);
    assert_int_equal(strlen(out), SM_WS_ACCEPT_LEN);

    /* Another known pair (RFC 6455 test vector used by many servers). */
    assert_int_equal(sm_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out), 0);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

static void test_accept_key_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ",    /* no padding, 22 chars */
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
        "dGhlIHNhbXBsZS*ub25jZQ==",  /* not base64 */
        "AAAAAAAAAAAAAAAAAAAAAAAA",  /* 18 bytes */
        "dGhlIHNh==BsZSBub25jZQAA",  /* padding in the middle */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[SM_WS_ACCEPT_LEN + 1];
        if (sm_ws_accept_key(bad[i], out) != SM_EINVAL)
            fail_msg("key \"%s\" accepted", bad[i]);
    }
}

static void test_reason(void **state)
{
    (void)state;
    assert_string_equal(sm_http_reason(101), "Switching Protocols");
    assert_string_equal(sm_http_reason(200), "OK");
    assert_string_equal(sm_http_reason(400), "Bad Request");
    assert_string_equal(sm_http_reason(404), "Not Found");
    assert_string_equal(sm_http_reason(426), "Upgrade Required");
    assert_string_equal(sm_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(sm_http_reason(503), "Service Unavailable");
    assert_string_equal(sm_http_reason(418), "Unknown");
}

static void test_format_bytes(void **state)
{
    (void)state;
    char out[512];
    static const char want[] = "HTTP/1.1 404 Not Found\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 10\r\n"
                               "Cache-Control: no-store\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "not found\n";
    size_t n = sm_http_format(out, sizeof out, 404, "text/plain", NULL, "not found\n", 10);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);

    static const char want2[] = "HTTP/1.1 426 Upgrade Required\r\n"
                                "Content-Type: text/plain\r\n"
                                "Content-Length: 3\r\n"
                                "Cache-Control: no-store\r\n"
                                "Connection: close\r\n"
                                "Upgrade: websocket\r\n"
                                "Sec-WebSocket-Version: 13\r\n"
                                "\r\n"
                                "abc";
    n = sm_http_format(out, sizeof out, 426, "text/plain",
                       "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", "abcdef", 3);
    assert_int_equal(n, strlen(want2));
    assert_string_equal(out, want2);

    /* Empty body (HEAD-style), and a body with a NUL byte copied verbatim. */
    n = sm_http_format(out, sizeof out, 200, "application/json", NULL, "", 0);
    assert_true(n > 0);
    assert_non_null(strstr(out, "Content-Length: 0\r\n"));
    assert_int_equal(memcmp(out + n - 4, "\r\n\r\n", 4), 0);
    n = sm_http_format(out, sizeof out, 200, "application/octet-stream", NULL, "a\0b", 3);
    assert_int_equal(memcmp(out + n - 3, "a\0b", 3), 0);
    assert_int_equal(out[n], '\0');
}

static void test_format_cap_edges(void **state)
{
    (void)state;
    char big[512];
    size_t full = sm_http_format(big, sizeof big, 404, "text/plain", NULL, "not found\n", 10);
    assert_true(full > 0);
    char *out = malloc(full + 1);
    assert_non_null(out);
    /* Exactly enough for the text and its NUL. */
    assert_int_equal(sm_http_format(out, full + 1, 404, "text/plain", NULL, "not found\n", 10),
                     full);
    assert_memory_equal(out, big, full + 1);
    free(out);
    /* One byte short (no room for the NUL), the headers alone, or nothing. */
    char small[512];
    assert_int_equal(sm_http_format(small, full, 404, "text/plain", NULL, "not found\n", 10), 0);
    assert_int_equal(sm_http_format(small, full - 10, 404, "text/plain", NULL, "not found\n", 10),
                     0);
    assert_int_equal(sm_http_format(small, 10, 404, "text/plain", NULL, "not found\n", 10), 0);
    assert_int_equal(sm_http_format(NULL, 0, 404, "text/plain", NULL, "not found\n", 10), 0);
}

static void test_format_upgrade(void **state)
{
    (void)state;
    char out[256];
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                               "\r\n";
    size_t n = sm_http_format_upgrade(out, sizeof out, ACCEPT);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
    assert_int_equal(sm_http_format_upgrade(out, strlen(want) + 1, ACCEPT), strlen(want));
    assert_int_equal(sm_http_format_upgrade(out, strlen(want), ACCEPT), 0);
    assert_int_equal(sm_http_format_upgrade(out, 5, ACCEPT), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_upgrade),
        cmocka_unit_test(test_route_health),
        cmocka_unit_test(test_route_upgrade_required_and_not_found),
        cmocka_unit_test(test_route_bad_upgrades),
        cmocka_unit_test(test_accept_key_rfc_example),
        cmocka_unit_test(test_accept_key_malformed),
        cmocka_unit_test(test_reason),
        cmocka_unit_test(test_format_bytes),
        cmocka_unit_test(test_format_cap_edges),
        cmocka_unit_test(test_format_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
