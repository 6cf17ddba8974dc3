/*
 * Fuzz target: the HTTP request a connection sends before the WebSocket
 * upgrade (src/http/request.c on llhttp), the routing and RFC 6455 checks
 * (src/http/upgrade.c) and the demo file server's path rules
 * (src/http/static.c).
 *
 * Input: byte 0 picks the number of reads (1..3), bytes 1..4 two split
 * points; the rest is what the peer sends.  Checked:
 *   - the same bytes give the same outcome read at once and read in pieces
 *     (status, end of the request, method, path, version, upgrade headers);
 *   - accessors stay in their documented bounds (path and key lengths);
 *   - a route of UPGRADE always has a key sm_ws_accept_key accepts;
 *   - a STATIC route, and "/demo/" + the raw input, never serve a file from
 *     outside the demo directory: a fixture tree holds a secret file next to
 *     the demo directory and a symlink to it inside.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "http/request.h"
#include "http/static.h"
#include "http/upgrade.h"

#define SECRET "SECRET-OUTSIDE-THE-DEMO-TREE"

static char root[64];
static char demo_dir[96], sdk_dir[96];

static void put_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    FUZZ_CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void remove_fixture(void)
{
    static const char *const rels[] = {
        "demo/link", "demo/sub/index.html",   "demo/index.html", "demo/app.js", "demo/.hidden",
        "demo/up",   "sdk/signal-manager.js", "secret.txt",      "demo/sub",    "demo",
        "sdk",
    };
    char path[256];
    for (size_t i = 0; i < sizeof rels / sizeof rels[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root, rels[i]);
        if (unlink(path) != 0)
            rmdir(path);
    }
    rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_log();
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/smfuzz-http-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(root) != NULL);
    snprintf(demo_dir, sizeof demo_dir, "%s/demo", root);
    snprintf(sdk_dir, sizeof sdk_dir, "%s/sdk", root);
    char path[256];
    FUZZ_CHECK(mkdir(demo_dir, 0700) == 0);
    FUZZ_CHECK(mkdir(sdk_dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/sub", demo_dir);
    FUZZ_CHECK(mkdir(path, 0700) == 0);
    put_file("secret.txt", SECRET);
    put_file("demo/index.html", "<p>demo</p>");
    put_file("demo/app.js", "export {}");
    put_file("demo/.hidden", SECRET);
    put_file("demo/sub/index.html", "<p>sub</p>");
    put_file("sdk/signal-manager.js", "export const sdk = 1;");
    snprintf(path, sizeof path, "%s/link", demo_dir);
    FUZZ_CHECK(symlink("../secret.txt", path) == 0);
    snprintf(path, sizeof path, "%s/up", demo_dir);
    FUZZ_CHECK(symlink("..", path) == 0);
    atexit(remove_fixture);
    return 0;
}

typedef struct {
    sm_http_status_t st;
    size_t end; /* offset of the first byte after the request (COMPLETE) */
} outcome_t;

/* Feed data in up to three reads split at a <= b; stop at the first answer
 * that is not MORE, as the connection does. */
static outcome_t feed(sm_http_req_t *r, const uint8_t *data, size_t size, size_t a, size_t b)
{
    size_t cut[4] = {0, a, b, size};
    outcome_t o = {SM_HTTP_MORE, 0};
    for (int i = 0; i < 3; i++) {
        size_t len = cut[i + 1] - cut[i];
        if (len == 0 && i < 2)
            continue;
        size_t used = (size_t)-1;
        o.st = sm_http_req_feed(r, (const char *)data + cut[i], len, &used);
        FUZZ_CHECK(o.st <= SM_HTTP_TOO_LARGE);
        FUZZ_CHECK(used <= len);
        if (o.st != SM_HTTP_MORE) {
            o.end = cut[i] + used;
            break;
        }
        FUZZ_CHECK(used == len);
    }
    return o;
}

static bool is_fixture_text(const char *body, size_t len)
{
    static const char *const texts[] = {"<p>demo</p>", "export {}", "<p>sub</p>",
                                        "export const sdk = 1;"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (len == strlen(texts[i]) && memcmp(body, texts[i], len) == 0)
            return true;
    return false;
}

static void serve(const char *path)
{
    sm_static_result_t res;
    sm_static_serve(demo_dir, sdk_dir, path, &res);
    FUZZ_CHECK(res.status == 200 || res.status == 301 || res.status == 403 || res.status == 404);
    if (res.status == 200) {
        FUZZ_CHECK(res.body != NULL && res.ctype != NULL);
        FUZZ_CHECK(is_fixture_text(res.body, res.len));
        free(res.body);
    } else {
        FUZZ_CHECK(res.body == NULL);
    }
    if (res.status == 301)
        FUZZ_CHECK(strcmp(path, SM_STATIC_PREFIX) == 0 && res.location != NULL);
    /* Disabled directories serve nothing. */
    sm_static_serve("", "", path, &res);
    FUZZ_CHECK(res.status != 200 && res.body == NULL);
}

static void check_request(const sm_http_req_t *r)
{
    const char *path = sm_http_req_path(r);
    FUZZ_CHECK(strlen(path) < SM_HTTP_PATH_MAX);
    FUZZ_CHECK(!sm_http_req_path_too_long(r) || path[0] == '\0');
    FUZZ_CHECK(strlen(sm_http_req_ws_key(r)) <= SM_HTTP_KEY_MAX);
    FUZZ_CHECK(sm_http_req_method(r) != NULL);
    int v = sm_http_req_ws_version(r);
    FUZZ_CHECK(v >= -1 && v <= 9999);

    const char *why = NULL;
    sm_http_route_t route = sm_http_route(r, &why);
    char accept[SM_WS_ACCEPT_LEN + 1];
    switch (route) {
    case SM_ROUTE_UPGRADE: {
        FUZZ_CHECK(sm_ws_accept_key(sm_http_req_ws_key(r), accept) == 0);
        FUZZ_CHECK(strlen(accept) == SM_WS_ACCEPT_LEN);
        char resp[256];
        FUZZ_CHECK(sm_http_format_upgrade(resp, sizeof resp, accept) > 0);
        break;
    }
    case SM_ROUTE_BAD_UPGRADE:
        FUZZ_CHECK(why != NULL);
        break;
    case SM_ROUTE_STATIC:
        FUZZ_CHECK(sm_static_matches(path));
        serve(path);
        break;
    case SM_ROUTE_HEALTH:
    case SM_ROUTE_READY:
    case SM_ROUTE_UPGRADE_REQUIRED:
    case SM_ROUTE_NOT_FOUND:
        break;
    }
    /* No default above: -Wswitch names any route added later; a value
     * outside the enum is a bug in sm_http_route itself. */
    FUZZ_CHECK(route >= SM_ROUTE_UPGRADE && route <= SM_ROUTE_BAD_UPGRADE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    unsigned pieces = fuzz_u8(&in) % 3u + 1u;
    size_t a = fuzz_u16(&in), b = fuzz_u16(&in);
    const uint8_t *body = in.p;
    size_t n = in.n;
    a = pieces >= 2 ? a % (n + 1) : n;
    b = pieces >= 3 ? b % (n + 1) : n;
    if (a > b) {
        size_t t = a;
        a = b;
        b = t;
    }

    sm_http_req_t *whole = sm_http_req_new();
    sm_http_req_t *split = sm_http_req_new();
    outcome_t ow = feed(whole, body, n, n, n);
    outcome_t os = feed(split, body, n, a, b);

    /* Where the request ends cannot depend on how the bytes arrived. */
    FUZZ_CHECK((ow.st == SM_HTTP_COMPLETE) == (os.st == SM_HTTP_COMPLETE));
    FUZZ_CHECK((ow.st == SM_HTTP_MORE) == (os.st == SM_HTTP_MORE));
    if (ow.st == SM_HTTP_COMPLETE) {
        FUZZ_CHECK(ow.end == os.end);
        FUZZ_CHECK(ow.end <= SM_HTTP_MAX_HEADER_BYTES);
        FUZZ_CHECK(strcmp(sm_http_req_method(whole), sm_http_req_method(split)) == 0);
        FUZZ_CHECK(strcmp(sm_http_req_path(whole), sm_http_req_path(split)) == 0);
        FUZZ_CHECK(sm_http_req_path_too_long(whole) == sm_http_req_path_too_long(split));
        FUZZ_CHECK(sm_http_req_version(whole) == sm_http_req_version(split));
        FUZZ_CHECK(sm_http_req_wants_websocket(whole) == sm_http_req_wants_websocket(split));
        FUZZ_CHECK(sm_http_req_connection_upgrade(whole) == sm_http_req_connection_upgrade(split));
        FUZZ_CHECK(strcmp(sm_http_req_ws_key(whole), sm_http_req_ws_key(split)) == 0);
        FUZZ_CHECK(sm_http_req_ws_version(whole) == sm_http_req_ws_version(split));
        check_request(whole);
    }
    sm_http_req_free(whole);
    sm_http_req_free(split);

    /* The path rules straight on the input, and the accept key on it. */
    size_t plen = strnlen((const char *)body, n < 300 ? n : 300);
    char *path = malloc(sizeof SM_STATIC_PREFIX + 1 + plen);
    FUZZ_CHECK(path != NULL);
    memcpy(path, SM_STATIC_PREFIX "/", sizeof SM_STATIC_PREFIX);
    memcpy(path + sizeof SM_STATIC_PREFIX, body, plen);
    path[sizeof SM_STATIC_PREFIX + plen] = '\0';
    serve(path);
    free(path);

    char *key = fuzz_strndup(body, n < 40 ? n : 40);
    char accept[SM_WS_ACCEPT_LEN + 1];
    if (sm_ws_accept_key(key, accept) == 0) {
        FUZZ_CHECK(strlen(key) == 24);
        FUZZ_CHECK(strlen(accept) == SM_WS_ACCEPT_LEN);
    }
    free(key);
    return 0;
}
