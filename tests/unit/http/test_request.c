/*
 * Unit tests for src/http/request.c, the llhttp wrapper that reads the one
 * HTTP request of a connection.  Every request is fed whole, byte by byte
 * and in a few odd splits, and must give the same result; *consumed must end
 * right after the blank line so pipelined WebSocket bytes stay the caller's;
 * malformed input is SM_HTTP_BAD and oversized headers SM_HTTP_TOO_LARGE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/request.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

static const char upgrade_req[] = "GET /?token=abc HTTP/1.1\r\n"
                                  "Host: example.com:8080\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: " KEY "\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Origin: http://example.com\r\n"
                                  "\r\n";

/* Snapshot of everything the accessors report. */
typedef struct {
    sm_http_status_t st;
    size_t consumed; /* total over all feeds */
    char method[16];
    bool get, head;
    char path[SM_HTTP_PATH_MAX];
    bool path_too_long;
    unsigned version;
    bool ws, conn_upgrade;
    char key[SM_HTTP_KEY_MAX + 1];
    int ws_version;
} result_t;

static void snapshot(sm_http_req_t *r, result_t *out)
{
    snprintf(out->method, sizeof out->method, "%s", sm_http_req_method(r));
    out->get = sm_http_req_is_get(r);
    out->head = sm_http_req_is_head(r);
    snprintf(out->path, sizeof out->path, "%s", sm_http_req_path(r));
    out->path_too_long = sm_http_req_path_too_long(r);
    out->version = sm_http_req_version(r);
    out->ws = sm_http_req_wants_websocket(r);
    out->conn_upgrade = sm_http_req_connection_upgrade(r);
    snprintf(out->key, sizeof out->key, "%s", sm_http_req_ws_key(r));
    out->ws_version = sm_http_req_ws_version(r);
}

/* Feed text in chunks of `chunk` bytes (0 = all at once) until a final
 * status; stops feeding after it, as the contract requires. */
static result_t feed(const char *text, size_t len, size_t chunk)
{
    result_t res;
    memset(&res, 0, sizeof res);
    sm_http_req_t *r = sm_http_req_new();
    size_t off = 0;
    res.st = SM_HTTP_MORE;
    if (chunk == 0)
        chunk = len ? len : 1;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t consumed = (size_t)-1;
        res.st = sm_http_req_feed(r, text + off, n, &consumed);
        if (consumed > n)
            fail_msg("consumed %zu > fed %zu at offset %zu", consumed, n, off);
        res.consumed += consumed;
        if (res.st != SM_HTTP_MORE) {
            if (res.st == SM_HTTP_COMPLETE)
                snapshot(r, &res);
            break;
        }
        assert_int_equal(consumed, n); /* MORE consumes everything */
        off += n;
    }
    sm_http_req_free(r);
    return res;
}

static void assert_same(const result_t *a, const result_t *b)
{
    assert_int_equal(a->st, b->st);
    assert_int_equal(a->consumed, b->consumed);
    assert_string_equal(a->method, b->method);
    assert_int_equal(a->get, b->get);
    assert_int_equal(a->head, b->head);
    assert_string_equal(a->path, b->path);
    assert_int_equal(a->path_too_long, b->path_too_long);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->ws, b->ws);
    assert_int_equal(a->conn_upgrade, b->conn_upgrade);
    assert_string_equal(a->key, b->key);
    assert_int_equal(a->ws_version, b->ws_version);
}

/* Whole, byte by byte and in several split sizes: all identical. */
static result_t feed_all_ways(const char *text, size_t len)
{
    result_t whole = feed(text, len, 0);
    static const size_t chunks[] = {1, 2, 3, 5, 7, 13, 64};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        result_t part = feed(text, len, chunks[i]);
        assert_same(&whole, &part);
    }
    return whole;
}

static void test_upgrade_whole_and_bytewise(void **state)
{
    (void)state;
    result_t r = feed_all_ways(upgrade_req, strlen(upgrade_req));
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_int_equal(r.consumed, strlen(upgrade_req));
    assert_string_equal(r.method, "GET");
    assert_true(r.get);
    assert_false(r.head);
    assert_string_equal(r.path, "/"); /* query stripped */
    assert_false(r.path_too_long);
    assert_int_equal(r.version, 11);
    assert_true(r.ws);
    assert_true(r.conn_upgrade);
    assert_string_equal(r.key, KEY);
    assert_int_equal(r.ws_version, 13);
}

static void test_mixed_case_headers(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\n"
                              "host: x\r\n"
                              "uPgRaDe: WebSocket\r\n"
                              "CONNECTION: UPGRADE\r\n"
                              "sec-websocket-key: " KEY "\r\n"
                              "SEC-WEBSOCKET-VERSION: 13\r\n"
                              "\r\n";
    result_t r = feed_all_ways(req, strlen(req));
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_true(r.ws);
    assert_true(r.conn_upgrade);
    assert_string_equal(r.key, KEY);
    assert_int_equal(r.ws_version, 13);
}

static void test_connection_token_lists(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        bool upgrade;
    } cases[] = {
        {"keep-alive, Upgrade", true},
        {"Upgrade, keep-alive", true},
        {"keep-alive,upgrade", true},
        {"keep-alive ,  upgrade  , close", true},
        {"keep-alive", false},
        {"upgraded", false},
        {"keep-alive, x-upgrade", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         "Connection: %s\r\nSec-WebSocket-Key: " KEY "\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         cases[i].value);
        result_t r = feed_all_ways(req, (size_t)n);
        assert_int_equal(r.st, SM_HTTP_COMPLETE);
        if (r.conn_upgrade != cases[i].upgrade)
            fail_msg("Connection: \"%s\": upgrade token %d, expected %d", cases[i].value,
                     r.conn_upgrade, cases[i].upgrade);
    }
}

static void test_upgrade_token_lists(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        bool ws;
    } cases[] = {
        {"websocket", true},   {"WebSocket", true}, {"h2c, websocket", true},
        {"websockets", false}, {"h2c", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: %s\r\n"
                         "Connection: Upgrade\r\n\r\n",
                         cases[i].value);
        result_t r = feed_all_ways(req, (size_t)n);
        assert_int_equal(r.st, SM_HTTP_COMPLETE);
        if (r.ws != cases[i].ws)
            fail_msg("Upgrade: \"%s\": websocket %d, expected %d", cases[i].value, r.ws,
                     cases[i].ws);
    }
}

static void test_query_and_fragment_stripped(void **state)
{
    (void)state;
    static const struct {
        const char *target, *path;
    } cases[] = {
        {"/health?verbose=1&x=2", "/health"},
        {"/?", "/"},
        {"/a/b/c?q=/d?e", "/a/b/c"},
        {"/plain", "/plain"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[512];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", cases[i].target);
        result_t r = feed_all_ways(req, (size_t)n);
        assert_int_equal(r.st, SM_HTTP_COMPLETE);
        assert_string_equal(r.path, cases[i].path);
        assert_false(r.ws);
        assert_string_equal(r.key, "");
        assert_int_equal(r.ws_version, -1);
    }
}

static void test_long_path(void **state)
{
    (void)state;
    char req[1024];
    char path[600];
    path[0] = '/';
    memset(path + 1, 'p', 299);
    path[300] = '\0';
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    result_t r = feed_all_ways(req, (size_t)n);
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_true(r.path_too_long);
    assert_string_equal(r.path, "");

    /* 255 characters fit (plus the NUL). */
    path[255] = '\0';
    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    r = feed_all_ways(req, (size_t)n);
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_false(r.path_too_long);
    assert_string_equal(r.path, path);
}

static void test_pipelined_bytes(void **state)
{
    (void)state;
    /* The request, then a masked WebSocket frame the client sent right away. */
    static const uint8_t frame[] = {0x82, 0x83, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2, 'c' ^ 3};
    size_t rl = strlen(upgrade_req);
    char buf[1024];
    memcpy(buf, upgrade_req, rl);
    memcpy(buf + rl, frame, sizeof frame);

    sm_http_req_t *r = sm_http_req_new();
    size_t consumed = 0;
    assert_int_equal(sm_http_req_feed(r, buf, rl + sizeof frame, &consumed), SM_HTTP_COMPLETE);
    assert_int_equal(consumed, rl);
    assert_true(sm_http_req_wants_websocket(r));
    sm_http_req_free(r);

    /* Split so the last feed holds the end of the headers and the frame. */
    for (size_t split = 1; split < rl; split++) {
        r = sm_http_req_new();
        assert_int_equal(sm_http_req_feed(r, buf, split, &consumed), SM_HTTP_MORE);
        assert_int_equal(consumed, split);
        assert_int_equal(sm_http_req_feed(r, buf + split, rl + sizeof frame - split, &consumed),
                         SM_HTTP_COMPLETE);
        if (consumed != rl - split)
            fail_msg("split %zu: consumed %zu, expected %zu", split, consumed, rl - split);
        sm_http_req_free(r);
    }

    /* A plain GET /health with bytes after it: consumed stops at the blank line too. */
    static const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE";
    r = sm_http_req_new();
    assert_int_equal(sm_http_req_feed(r, health, strlen(health), &consumed), SM_HTTP_COMPLETE);
    assert_int_equal(consumed, strlen(health) - strlen("GARBAGE"));
    sm_http_req_free(r);
}

static void test_head_and_http10(void **state)
{
    (void)state;
    static const char head[] = "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n";
    result_t r = feed_all_ways(head, strlen(head));
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_true(r.head);
    assert_false(r.get);
    assert_string_equal(r.method, "HEAD");
    assert_string_equal(r.path, "/health");

    static const char old[] = "GET / HTTP/1.0\r\n\r\n";
    r = feed_all_ways(old, strlen(old));
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_int_equal(r.version, 10);
    assert_true(r.get);

    static const char post[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    r = feed_all_ways(post, strlen(post));
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_string_equal(r.method, "POST");
    assert_false(r.get);
    assert_false(r.head);
}

static void test_key_and_version_values(void **state)
{
    (void)state;
    static const struct {
        const char *key_hdr, *ver_hdr;
        const char *key;
        int ver;
    } cases[] = {
        {"Sec-WebSocket-Key: " KEY "\r\n", "Sec-WebSocket-Version: 13\r\n", KEY, 13},
        {"Sec-WebSocket-Key:   " KEY "\r\n", "Sec-WebSocket-Version:  13\r\n", KEY, 13},
        {"", "Sec-WebSocket-Version: 8\r\n", "", 8},
        {"", "Sec-WebSocket-Version: 13a\r\n", "", -1},
        {"", "Sec-WebSocket-Version: \r\n", "", -1},
        {"", "Sec-WebSocket-Version: 99999\r\n", "", -1},
        {"", "Sec-WebSocket-Version: -13\r\n", "", -1},
        {"", "", "", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[512];
        int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: x\r\n%s%s\r\n", cases[i].key_hdr,
                         cases[i].ver_hdr);
        result_t r = feed_all_ways(req, (size_t)n);
        assert_int_equal(r.st, SM_HTTP_COMPLETE);
        if (strcmp(r.key, cases[i].key) != 0 || r.ws_version != cases[i].ver)
            fail_msg("case %zu: key \"%s\" version %d, expected \"%s\" %d", i, r.key, r.ws_version,
                     cases[i].key, cases[i].ver);
    }
}

static void test_value_trailing_whitespace(void **state)
{
    (void)state;
    /* Optional whitespace around a field value is not part of it (RFC 9110
     * 5.5: "OWS field-value OWS").  llhttp strips the leading OWS but hands
     * the trailing OWS to on_header_value, so the wrapper must trim it. */
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n"
                              "Upgrade: websocket \r\n"
                              "Connection: Upgrade\t\r\n"
                              "Sec-WebSocket-Key: " KEY "  \r\n"
                              "Sec-WebSocket-Version: 13 \r\n\r\n";
    result_t r = feed_all_ways(req, strlen(req));
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_true(r.ws); /* token lists already trim */
    assert_true(r.conn_upgrade);
    assert_string_equal(r.key, KEY);
    assert_int_equal(r.ws_version, 13);
}

static void test_key_too_long(void **state)
{
    (void)state;
    char key[200];
    memset(key, 'A', 100);
    key[100] = '\0';
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     key);
    result_t r = feed_all_ways(req, (size_t)n);
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_string_equal(r.key, ""); /* over SM_HTTP_KEY_MAX: reported as absent */
    assert_int_equal(r.ws_version, 13);

    /* Longer than the value buffer too. */
    memset(key, 'B', 190);
    key[190] = '\0';
    n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nSec-WebSocket-Key: %s\r\n\r\n", key);
    r = feed_all_ways(req, (size_t)n);
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_string_equal(r.key, "");
}

static void test_long_unknown_header_name(void **state)
{
    (void)state;
    /* A 40-character name that starts like a known one must not match it. */
    static const char req[] = "GET / HTTP/1.1\r\n"
                              "Sec-WebSocket-Version-And-Then-Some-More: 13\r\n"
                              "X-Very-Long-Header-Name-That-Is-Ignored-Entirely: yes\r\n"
                              "Upgrade: websocket\r\n"
                              "\r\n";
    result_t r = feed_all_ways(req, strlen(req));
    assert_int_equal(r.st, SM_HTTP_COMPLETE);
    assert_int_equal(r.ws_version, -1);
    assert_true(r.ws);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x01\x02\x03 garbage\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/1.1\r\nHost x\r\n\r\n", /* header without colon */
        "GET / XTTP/1.1\r\n\r\n",           /* bad protocol */
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET /\x7f HTTP/1.1\r\n\r\n", /* control byte in the target */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        result_t whole = feed(bad[i], strlen(bad[i]), 0);
        result_t bytes = feed(bad[i], strlen(bad[i]), 1);
        if (whole.st != SM_HTTP_BAD || bytes.st != SM_HTTP_BAD)
            fail_msg("case %zu: status whole %d, bytewise %d, expected BAD (%d)", i, whole.st,
                     bytes.st, SM_HTTP_BAD);
    }
}

static void test_incomplete_is_more(void **state)
{
    (void)state;
    static const char part[] = "GET / HTTP/1.1\r\nHost: x\r\n";
    sm_http_req_t *r = sm_http_req_new();
    size_t consumed = 0;
    assert_int_equal(sm_http_req_feed(r, part, strlen(part), &consumed), SM_HTTP_MORE);
    assert_int_equal(consumed, strlen(part));
    assert_int_equal(sm_http_req_feed(r, "\r", 1, &consumed), SM_HTTP_MORE);
    assert_int_equal(sm_http_req_feed(r, "\n", 1, &consumed), SM_HTTP_COMPLETE);
    assert_int_equal(consumed, 1);
    sm_http_req_free(r);
}

static char *big_header_request(size_t value_len)
{
    char *req = malloc(value_len + 128);
    assert_non_null(req);
    int n = sprintf(req, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'v', value_len);
    strcpy(req + n + value_len, "\r\n\r\n");
    return req;
}

static void test_headers_too_large(void **state)
{
    (void)state;
    /* One 9000-byte header value. */
    char *req = big_header_request(9000);
    result_t whole = feed(req, strlen(req), 0);
    assert_int_equal(whole.st, SM_HTTP_TOO_LARGE);
    result_t bytes = feed(req, strlen(req), 1);
    assert_int_equal(bytes.st, SM_HTTP_TOO_LARGE);
    result_t chunks = feed(req, strlen(req), 1000);
    assert_int_equal(chunks.st, SM_HTTP_TOO_LARGE);
    free(req);

    /* Well under the limit is fine. */
    req = big_header_request(6000);
    whole = feed(req, strlen(req), 0);
    assert_int_equal(whole.st, SM_HTTP_COMPLETE);
    free(req);

    /* A URL alone over the limit. */
    char *url = malloc(10000);
    assert_non_null(url);
    int n = sprintf(url, "GET /");
    memset(url + n, 'u', 9000);
    strcpy(url + n + 9000, " HTTP/1.1\r\n\r\n");
    whole = feed(url, strlen(url), 0);
    assert_int_equal(whole.st, SM_HTTP_TOO_LARGE);
    free(url);
}

static void test_many_small_headers_too_large(void **state)
{
    (void)state;
    /* 12 KiB of request made of many short headers ("a: b"): the limit is on
     * the request line + headers as sent (request.h: "request line +
     * headers; more is 431"), not only on the name and value characters. */
    size_t cap = 16384;
    char *req = malloc(cap);
    assert_non_null(req);
    size_t n = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
    while (n < 12288)
        n += (size_t)sprintf(req + n, "a: b\r\n");
    n += (size_t)sprintf(req + n, "\r\n");
    result_t r = feed(req, n, 0);
    free(req);
    if (r.st != SM_HTTP_TOO_LARGE)
        fail_msg("%zu-byte request of 6-byte headers: status %d, expected TOO_LARGE (%d)", n, r.st,
                 SM_HTTP_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade_whole_and_bytewise),
        cmocka_unit_test(test_mixed_case_headers),
        cmocka_unit_test(test_connection_token_lists),
        cmocka_unit_test(test_upgrade_token_lists),
        cmocka_unit_test(test_query_and_fragment_stripped),
        cmocka_unit_test(test_long_path),
        cmocka_unit_test(test_pipelined_bytes),
        cmocka_unit_test(test_head_and_http10),
        cmocka_unit_test(test_key_and_version_values),
        cmocka_unit_test(test_value_trailing_whitespace),
        cmocka_unit_test(test_key_too_long),
        cmocka_unit_test(test_long_unknown_header_name),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_incomplete_is_more),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_many_small_headers_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
