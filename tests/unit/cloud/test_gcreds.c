/*
 * Google credentials (src/cloud/gcreds.c): key file -> signed assertion ->
 * token (the fake token endpoint checks the form body and verifies the RS256
 * signature with the fixture's public key), the cache, refresh ahead of
 * expiry and at expiry (the monotonic clock is wrapped), invalidate, single
 * flight per thread, the metadata server (header required), the emulator,
 * OAuth errors and retries, bad key files, sm_gcreds_check, and logs without
 * secrets.
 *
 * Like test_http_client.c, these tests use loopback sockets against the
 * scripted server of fake_http.h on the test's loop (sm_gcreds_check runs
 * its own loop, so for it the fake runs on a second thread).  No sleeps:
 * waits run the loop until a condition holds, bounded by a guard timer.
 * The keys under fixtures/ are throwaway test keys (see fixtures/README.md).
 */
/* WRAP: sm_clock_mono_ms */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "cloud/fake_http.h"
#include "cloud/gcreds.h"
#include "cloud/http_client.h"
#include "cloud/rs256.h"
#include "core/clock.h"
#include "core/err.h"
#include "log/log.h"
#include "support/log_capture.h"
#include "support/uv_guard.h"

#define WAIT_MS 5000
#define FIXTURES SM_SOURCE_DIR "/tests/unit/cloud/fixtures/"
#define SCOPES "https://www.googleapis.com/auth/pubsub https://www.googleapis.com/auth/datastore"
#define EMAIL "sa-test@test-project.iam.gserviceaccount.com"

/* ---- Clock: the monotonic clock of gcreds can be moved forward ------------ */

uint64_t __real_sm_clock_mono_ms(void);
uint64_t __wrap_sm_clock_mono_ms(void);
static uint64_t g_mono_offset;

uint64_t __wrap_sm_clock_mono_ms(void)
{
    return __real_sm_clock_mono_ms() + g_mono_offset;
}

/* ---- Fixture -------------------------------------------------------------- */

enum { MODE_TOKEN, MODE_METADATA };

typedef struct {
    uv_loop_t loop;
    uvg_t guard;
    fake_t fake;
    sm_rest_client_t *c;
    char dir[64];
    char key_path[128];
    char token_url[128];
    mbedtls_pk_context pub;
    /* what the fake checks and answers */
    int mode;
    int statuses[16]; /* status per request index; 0 = 200 with a token */
    int expires_in;   /* of issued tokens */
    const char *error_body;
    unsigned verified; /* token requests whose body and signature were right */
    char bad[256];     /* first problem the fake saw, or "" */
    char seen_kid[64];
    sm_gcreds_t *g;
} fx_t;

typedef struct {
    unsigned calls;
    unsigned inline_calls;
    int err;
    char authz[256];
    bool null_authz;
} got_t;

static bool g_in_api;
static int g_devnull = -1;

#define RUN_UNTIL(fx, cond) UVG_RUN_UNTIL(&(fx)->guard, cond, WAIT_MS)

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Write a key file from a JSON object (stolen). */
static void write_json(const char *path, json_t *j)
{
    assert_int_equal(json_dump_file(j, path, JSON_INDENT(2)), 0);
    json_decref(j);
}

/* A service-account key object like Google's, with the fixture key. */
static json_t *key_object(const fx_t *fx, const char *pem_file)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s", pem_file);
    char *pem = slurp(path);
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "type", "service_account", "project_id",
                  "test-project", "private_key_id", "kid-0123456789", "private_key", pem,
                  "client_email", EMAIL, "client_id", "1234567890", "auth_uri",
                  "https://accounts.google.com/o/oauth2/auth", "token_uri", fx->token_url);
    free(pem);
    return j;
}

static void handler(fake_t *f, const fake_req_t *req, unsigned i, fake_resp_t *out);

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uvg_init(&fx->guard, &fx->loop);
    assert_int_equal(fake_start(&fx->fake, &fx->loop, handler), 0);
    fx->fake.data = fx;
    fx->c = sm_rest_client_new(&fx->loop);
    assert_non_null(fx->c);
    sm_rest_client_set_current(fx->c);
    fx->expires_in = 3599;
    fake_url(&fx->fake, "/token", fx->token_url, sizeof fx->token_url);
    strcpy(fx->dir, "/tmp/sm-test-gcreds-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->key_path, sizeof fx->key_path, "%s/key.json", fx->dir);
    write_json(fx->key_path, key_object(fx, "test_sa_key.pem"));
    mbedtls_pk_init(&fx->pub);
    assert_int_equal(mbedtls_pk_parse_public_keyfile(&fx->pub, FIXTURES "test_sa_key.pub.pem"), 0);
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    unsetenv("GCE_METADATA_HOST");
    g_mono_offset = 0;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    sm_rest_client_set_current(NULL);
    if (fx->c != NULL)
        sm_rest_client_close(fx->c);
    fake_stop(&fx->fake);
    uvg_close_loop(&fx->guard, WAIT_MS);
    sm_gcreds_close(fx->g); /* after the loop: nothing of gcreds may be left */
    fake_free(&fx->fake);
    mbedtls_pk_free(&fx->pub);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
    unsetenv("GCE_METADATA_HOST");
    g_mono_offset = 0;
    free(fx);
    return 0;
}

/* ---- The fake token endpoint and metadata server -------------------------- */

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static void bad(fx_t *fx, const char *what)
{
    if (fx->bad[0] == '\0')
        snprintf(fx->bad, sizeof fx->bad, "%s", what);
}

/* Decode one base64url JWT segment into a JSON object (new reference). */
static json_t *segment_json(const char *s, size_t len)
{
    uint8_t buf[2048];
    size_t n = 0;
    if (sm_b64url_decode(s, len, buf, sizeof buf, &n) != 0)
        return NULL;
    return json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
}

/* Everything the real endpoint would check, and the signature. */
static void check_assertion(fx_t *fx, const fake_req_t *req)
{
    static const char prefix[] =
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
    char ct[128] = "";
    if (strcmp(req->method, "POST") != 0 || strcmp(req->path, "/token") != 0)
        return bad(fx, "not POST /token");
    if (!fake_header(req, "content-type", ct, sizeof ct) ||
        strcmp(ct, "application/x-www-form-urlencoded") != 0)
        return bad(fx, "content-type");
    if (req->body == NULL || strncmp(req->body, prefix, sizeof prefix - 1) != 0)
        return bad(fx, "form body prefix");
    const char *jwt = req->body + sizeof prefix - 1;
    const char *d1 = strchr(jwt, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d2 == NULL || strchr(d2 + 1, '.') != NULL || strchr(jwt, '&') != NULL)
        return bad(fx, "not a 3-part JWT");
    json_t *h = segment_json(jwt, (size_t)(d1 - jwt));
    json_t *c = segment_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (h == NULL || c == NULL) {
        json_decref(h);
        json_decref(c);
        return bad(fx, "segments not JSON");
    }
    const char *kid = json_string_value(json_object_get(h, "kid"));
    snprintf(fx->seen_kid, sizeof fx->seen_kid, "%s", kid ? kid : "");
    int64_t now = sm_clock_wall_ms() / 1000;
    json_int_t iat = json_integer_value(json_object_get(c, "iat"));
    json_int_t exp = json_integer_value(json_object_get(c, "exp"));
    const char *why = NULL;
    if (strcmp(jstr(h, "alg"), "RS256") != 0 || strcmp(jstr(h, "typ"), "JWT") != 0)
        why = "header";
    else if (strcmp(jstr(c, "iss"), EMAIL) != 0)
        why = "iss";
    else if (strcmp(jstr(c, "scope"), SCOPES) != 0)
        why = "scope";
    else if (strcmp(jstr(c, "aud"), fx->token_url) != 0)
        why = "aud";
    else if (exp - iat != 3600 || iat < now - 5 || iat > now + 1)
        why = "iat/exp";
    else if (json_object_get(c, "sub") != NULL)
        why = "sub present";
    json_decref(h);
    json_decref(c);
    if (why != NULL)
        return bad(fx, why);

    /* RS256 over "header.claims" with the public half of the fixture. */
    uint8_t sig[512], hash[32];
    size_t siglen = 0;
    if (sm_b64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof sig, &siglen) != 0)
        return bad(fx, "signature not base64url");
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_md(md, (const unsigned char *)jwt, (size_t)(d2 - jwt), hash);
    if (mbedtls_pk_verify(&fx->pub, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, siglen) != 0)
        return bad(fx, "bad signature");
    fx->verified++;
}

static void check_metadata(fx_t *fx, const fake_req_t *req, fake_resp_t *out)
{
    static const char path[] = "/computeMetadata/v1/instance/service-accounts/default/token"
                               "?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fpubsub%2C"
                               "https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdatastore";
    char flavor[64] = "";
    if (!fake_header(req, "metadata-flavor", flavor, sizeof flavor) ||
        strcmp(flavor, "Google") != 0) {
        out->status = 403;
        out->body = "Missing Metadata-Flavor:Google header.";
        bad(fx, "no Metadata-Flavor");
        return;
    }
    if (strcmp(req->method, "GET") != 0 || strcmp(req->path, path) != 0)
        bad(fx, "metadata path");
    else
        fx->verified++;
}

static void handler(fake_t *f, const fake_req_t *req, unsigned i, fake_resp_t *out)
{
    fx_t *fx = f->data;
    static char body[16][256];
    int status = i < 16 ? fx->statuses[i] : 0;
    out->status = 200;
    if (fx->mode == MODE_METADATA) {
        check_metadata(fx, req, out);
        if (out->status != 200)
            return;
    } else {
        check_assertion(fx, req);
    }
    if (status != 0) {
        out->status = status;
        out->body = fx->error_body ? fx->error_body : "{\"error\":\"backend_error\"}";
        return;
    }
    snprintf(body[i % 16], sizeof body[0],
             "{\"access_token\":\"ya29.SEKRET-TOKEN-%u\",\"expires_in\":%d,"
             "\"token_type\":\"Bearer\"}",
             i + 1, fx->expires_in);
    out->body = body[i % 16];
}

/* ---- Helpers -------------------------------------------------------------- */

static void on_got(int err, const char *authz, void *arg)
{
    got_t *g = arg;
    g->calls++;
    if (g_in_api)
        g->inline_calls++;
    g->err = err;
    g->null_authz = authz == NULL;
    snprintf(g->authz, sizeof g->authz, "%s", authz ? authz : "");
}

static int get(fx_t *fx, got_t *got)
{
    g_in_api = true;
    int rc = sm_gcreds_get(fx->g, on_got, got);
    g_in_api = false;
    return rc;
}

static void open_key(fx_t *fx, const char *key_file)
{
    sm_gcreds_opts_t o = {
        .key_file = key_file,
        .scopes = SCOPES,
        .config_key = "pubsub.credentials",
        .timeout_ms = 2000,
    };
    char err[512] = "";
    int rc = sm_gcreds_open(&o, &fx->g, err, sizeof err);
    if (rc != 0)
        fail_msg("sm_gcreds_open: %s", err);
}

static void expect_token(fx_t *fx, got_t *got, unsigned n)
{
    char want[64];
    snprintf(want, sizeof want, "Bearer ya29.SEKRET-TOKEN-%u", n);
    assert_int_equal(got->calls, 1);
    assert_int_equal(got->inline_calls, 0);
    assert_int_equal(got->err, 0);
    assert_string_equal(got->authz, want);
    (void)fx;
}

/* Get until the cache serves token n (a background refresh is landing). */
static void wait_for_token(fx_t *fx, unsigned n)
{
    char want[64];
    snprintf(want, sizeof want, "Bearer ya29.SEKRET-TOKEN-%u", n);
    for (int i = 0; i < 1000; i++) {
        got_t g = {0};
        assert_int_equal(get(fx, &g), 0);
        RUN_UNTIL(fx, g.calls > 0);
        assert_int_equal(g.err, 0);
        if (strcmp(g.authz, want) == 0)
            return;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    fail_msg("token %u never served", n);
}

/* ---- Tests ---------------------------------------------------------------- */

static void test_key_file_token(void **state)
{
    fx_t *fx = *state;
    open_key(fx, fx->key_path);
    char desc[128];
    snprintf(desc, sizeof desc, "key file %s", EMAIL);
    assert_string_equal(sm_gcreds_describe(fx->g), desc);
    got_t got = {0};
    assert_int_equal(get(fx, &got), 0);
    assert_int_equal(got.calls, 0); /* never inline */
    RUN_UNTIL(fx, got.calls > 0);
    if (fx->bad[0])
        fail_msg("fake token endpoint: %s", fx->bad);
    assert_int_equal(fx->fake.nreq, 1);
    assert_int_equal(fx->verified, 1);
    assert_string_equal(fx->seen_kid, "kid-0123456789");
    expect_token(fx, &got, 1);
}

static void test_cache(void **state)
{
    fx_t *fx = *state;
    open_key(fx, fx->key_path);
    got_t a = {0}, b = {0}, c = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    expect_token(fx, &a, 1);
    /* From the cache: no request, but still from the loop, not inline. */
    assert_int_equal(get(fx, &b), 0);
    assert_int_equal(get(fx, &c), 0);
    assert_int_equal(b.calls + c.calls, 0);
    RUN_UNTIL(fx, b.calls > 0 && c.calls > 0);
    expect_token(fx, &b, 1);
    expect_token(fx, &c, 1);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(fx->fake.nreq, 1);
}

static void test_refresh_ahead_and_expiry(void **state)
{
    fx_t *fx = *state;
    open_key(fx, fx->key_path);
    got_t a = {0}, b = {0}, c = {0}, e = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    expect_token(fx, &a, 1);

    /* 4 minutes before expiry: inside the 5-minute refresh window.  The old
     * token is handed over at once and one background refresh starts. */
    g_mono_offset = (3599 - 240) * 1000ull;
    assert_int_equal(get(fx, &b), 0);
    assert_int_equal(get(fx, &c), 0);
    RUN_UNTIL(fx, b.calls > 0 && c.calls > 0 && fx->fake.nreq == 2);
    expect_token(fx, &b, 1);
    expect_token(fx, &c, 1);
    /* once the background refresh has landed, the new token is served */
    wait_for_token(fx, 2);
    assert_int_equal(fx->fake.nreq, 2);

    /* Past the second token's expiry: the get waits for a new one. */
    g_mono_offset += 3600 * 1000ull;
    assert_int_equal(get(fx, &e), 0);
    RUN_UNTIL(fx, e.calls > 0);
    expect_token(fx, &e, 3);
    assert_int_equal(fx->fake.nreq, 3);
    assert_int_equal(fx->verified, 3);
}

static void test_short_lifetime_half(void **state)
{
    fx_t *fx = *state;
    fx->expires_in = 100; /* refresh at half-life: 50 s */
    open_key(fx, fx->key_path);
    got_t a = {0}, b = {0}, c = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    g_mono_offset = 40 * 1000ull;
    assert_int_equal(get(fx, &b), 0);
    RUN_UNTIL(fx, b.calls > 0);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(fx->fake.nreq, 1); /* not due yet */
    g_mono_offset = 55 * 1000ull;
    assert_int_equal(get(fx, &c), 0);
    RUN_UNTIL(fx, c.calls > 0 && fx->fake.nreq == 2);
    expect_token(fx, &c, 1);
}

static void test_invalidate(void **state)
{
    fx_t *fx = *state;
    open_key(fx, fx->key_path);
    got_t a = {0}, b = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    expect_token(fx, &a, 1);
    sm_gcreds_invalidate(fx->g);
    assert_int_equal(get(fx, &b), 0);
    RUN_UNTIL(fx, b.calls > 0);
    expect_token(fx, &b, 2);
    assert_int_equal(fx->fake.nreq, 2);
}

static void test_single_flight(void **state)
{
    fx_t *fx = *state;
    open_key(fx, fx->key_path);
    got_t g[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(get(fx, &g[i]), 0);
    RUN_UNTIL(fx, g[0].calls && g[1].calls && g[2].calls);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(fx->fake.nreq, 1);
    for (int i = 0; i < 3; i++)
        expect_token(fx, &g[i], 1);
}

/* A second thread with its own loop and client refreshes on its own. */
typedef struct {
    sm_gcreds_t *g;
    int port;
    got_t got;
} other_t;

static void *other_main(void *arg)
{
    other_t *o = arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sm_rest_client_t *c = sm_rest_client_new(&loop);
    sm_rest_client_set_current(c);
    if (sm_gcreds_get(o->g, on_got, &o->got) == 0)
        while (o->got.calls == 0)
            uv_run(&loop, UV_RUN_ONCE);
    sm_rest_client_set_current(NULL);
    sm_rest_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return NULL;
}

static void test_cache_shared_by_threads(void **state)
{
    fx_t *fx = *state;
    open_key(fx, fx->key_path);
    got_t a = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    /* Another thread finds the token in the cache: no request. */
    other_t o = {.g = fx->g};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_main, &o), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(o.got.calls, 1);
    assert_int_equal(o.got.err, 0);
    assert_string_equal(o.got.authz, "Bearer ya29.SEKRET-TOKEN-1");
    assert_int_equal(fx->fake.nreq, 1);
}

static void test_metadata(void **state)
{
    fx_t *fx = *state;
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", fx->fake.port);
    setenv("GCE_METADATA_HOST", host, 1);
    fx->mode = MODE_METADATA;
    open_key(fx, NULL);
    assert_string_equal(sm_gcreds_describe(fx->g), "metadata server");
    got_t a = {0}, b = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    if (fx->bad[0])
        fail_msg("fake metadata server: %s", fx->bad);
    expect_token(fx, &a, 1);
    assert_int_equal(fx->verified, 1);
    /* cached like any token */
    assert_int_equal(get(fx, &b), 0);
    RUN_UNTIL(fx, b.calls > 0);
    assert_int_equal(fx->fake.nreq, 1);
}

static void test_metadata_refused(void **state)
{
    fx_t *fx = *state;
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", fx->fake.port);
    setenv("GCE_METADATA_HOST", host, 1);
    fx->mode = MODE_METADATA;
    fx->statuses[0] = 404;
    fx->error_body = "Not Found";
    open_key(fx, "");
    got_t a = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    assert_int_equal(a.err, SM_EAUTH);
    assert_true(a.null_authz);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(fx->fake.nreq, 1);
}

static void test_bad_metadata_host(void **state)
{
    fx_t *fx = *state;
    setenv("GCE_METADATA_HOST", "evil.example/x?", 1);
    sm_gcreds_opts_t o = {.scopes = SCOPES, .config_key = "firestore.credentials"};
    char err[256] = "";
    assert_int_equal(sm_gcreds_open(&o, &fx->g, err, sizeof err), SM_ECONFIG);
    assert_null(fx->g);
    assert_non_null(strstr(err, "GCE_METADATA_HOST"));
}

static void test_emulator(void **state)
{
    fx_t *fx = *state;
    sm_gcreds_opts_t o = {
        .emulator = true, .emulator_token = "owner", .config_key = "firestore.credentials"};
    char err[256];
    assert_int_equal(sm_gcreds_open(&o, &fx->g, err, sizeof err), 0);
    assert_string_equal(sm_gcreds_describe(fx->g), "emulator");
    assert_int_equal(sm_gcreds_check(fx->g, err, sizeof err), 0);
    got_t a = {0};
    assert_int_equal(get(fx, &a), 0);
    assert_int_equal(a.calls, 0);
    RUN_UNTIL(fx, a.calls > 0);
    assert_int_equal(a.err, 0);
    assert_string_equal(a.authz, "Bearer owner");
    sm_gcreds_close(fx->g);

    /* Pub/Sub's emulator: no header at all. */
    o.emulator_token = NULL;
    o.config_key = "pubsub.credentials";
    assert_int_equal(sm_gcreds_open(&o, &fx->g, err, sizeof err), 0);
    got_t b = {0};
    assert_int_equal(get(fx, &b), 0);
    RUN_UNTIL(fx, b.calls > 0);
    assert_int_equal(b.err, 0);
    assert_true(b.null_authz);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(fx->fake.nreq, 0);
}

static void test_invalid_grant(void **state)
{
    fx_t *fx = *state;
    fx->statuses[0] = 400;
    fx->error_body =
        "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}";
    open_key(fx, fx->key_path);
    got_t a = {0}, b = {0};
    assert_int_equal(get(fx, &a), 0);
    assert_int_equal(get(fx, &b), 0);
    RUN_UNTIL(fx, a.calls > 0 && b.calls > 0);
    assert_int_equal(a.err, SM_EAUTH);
    assert_int_equal(b.err, SM_EAUTH);
    assert_true(a.null_authz);
    uvg_spins(&fx->guard, 5);
    assert_int_equal(fx->fake.nreq, 1); /* 4xx: not retried */
    /* The next get tries again (no negative caching). */
    got_t c = {0};
    assert_int_equal(get(fx, &c), 0);
    RUN_UNTIL(fx, c.calls > 0);
    expect_token(fx, &c, 2);
}

static void test_unavailable_after_retries(void **state)
{
    fx_t *fx = *state;
    fx->statuses[0] = fx->statuses[1] = fx->statuses[2] = 503;
    open_key(fx, fx->key_path);
    got_t a = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    assert_int_equal(a.err, SM_EUNAVAIL);
    assert_int_equal(fx->fake.nreq, 3);
    /* 503 twice, then a token: the retries absorb it */
    fx->statuses[3] = fx->statuses[4] = 503;
    got_t b = {0};
    assert_int_equal(get(fx, &b), 0);
    RUN_UNTIL(fx, b.calls > 0);
    expect_token(fx, &b, 6);
    assert_int_equal(fx->verified, 6);
}

static void test_canceled_by_client_close(void **state)
{
    fx_t *fx = *state;
    open_key(fx, fx->key_path);
    got_t a = {0}, b = {0};
    assert_int_equal(get(fx, &a), 0);
    assert_int_equal(get(fx, &b), 0);
    sm_rest_client_set_current(NULL);
    sm_rest_client_close(fx->c);
    fx->c = NULL;
    RUN_UNTIL(fx, a.calls > 0 && b.calls > 0);
    assert_int_equal(a.err, SM_ECANCELED);
    assert_int_equal(b.err, SM_ECANCELED);
    /* no client on this thread now */
    got_t c = {0};
    assert_int_equal(get(fx, &c), SM_EINVAL);
}

static void test_no_client(void **state)
{
    fx_t *fx = *state;
    open_key(fx, fx->key_path);
    sm_rest_client_set_current(NULL);
    got_t a = {0};
    assert_int_equal(get(fx, &a), SM_EINVAL);
    assert_int_equal(sm_gcreds_get(fx->g, NULL, NULL), SM_EINVAL);
    sm_rest_client_set_current(fx->c);
    uvg_spins(&fx->guard, 3);
    assert_int_equal(a.calls, 0);
}

/* ---- Bad key files -------------------------------------------------------- */

static void expect_open_error(fx_t *fx, const char *path, const char *want)
{
    sm_gcreds_opts_t o = {.key_file = path, .scopes = SCOPES, .config_key = "pubsub.credentials"};
    char err[512] = "";
    sm_gcreds_t *g = (sm_gcreds_t *)0x1;
    int rc = sm_gcreds_open(&o, &g, err, sizeof err);
    if (rc != SM_ECONFIG)
        fail_msg("%s: rc %d (%s), want SM_ECONFIG", want, rc, err);
    assert_null(g);
    if (strncmp(err, "pubsub.credentials: ", 20) != 0 || strstr(err, path) == NULL ||
        strstr(err, want) == NULL)
        fail_msg("error \"%s\" should name the key, %s and \"%s\"", err, path, want);
    if (strstr(err, "MII") != NULL || strstr(err, "PRIVATE KEY") != NULL)
        fail_msg("error shows key material: %s", err);
    (void)fx;
}

static void write_variant(fx_t *fx, const char *name, char *path, size_t cap, const char *pem,
                          const char *drop, const char *key, json_t *value)
{
    json_t *j = key_object(fx, pem);
    if (drop != NULL)
        json_object_del(j, drop);
    if (key != NULL)
        json_object_set_new(j, key, value);
    snprintf(path, cap, "%s/%s", fx->dir, name);
    write_json(path, j);
}

static void test_bad_key_files(void **state)
{
    fx_t *fx = *state;
    char p[256];

    snprintf(p, sizeof p, "%s/missing.json", fx->dir);
    expect_open_error(fx, p, "cannot open");
    expect_open_error(fx, fx->dir, "not a regular file");

    snprintf(p, sizeof p, "%s/text.json", fx->dir);
    FILE *f = fopen(p, "w");
    fputs("-----BEGIN PRIVATE KEY-----\nMIIE\n", f);
    fclose(f);
    expect_open_error(fx, p, "not JSON");

    snprintf(p, sizeof p, "%s/array.json", fx->dir);
    f = fopen(p, "w");
    fputs("[1,2]", f);
    fclose(f);
    expect_open_error(fx, p, "not a JSON object");

    snprintf(p, sizeof p, "%s/big.json", fx->dir);
    f = fopen(p, "w");
    for (int i = 0; i < 70000; i++)
        fputc(' ', f);
    fclose(f);
    expect_open_error(fx, p, "too large");

    write_variant(fx, "user.json", p, sizeof p, "test_sa_key.pem", NULL, "type",
                  json_string("authorized_user"));
    expect_open_error(fx, p, "\"authorized_user\"");
    write_variant(fx, "notype.json", p, sizeof p, "test_sa_key.pem", "type", NULL, NULL);
    expect_open_error(fx, p, "no type");
    write_variant(fx, "noemail.json", p, sizeof p, "test_sa_key.pem", "client_email", NULL, NULL);
    expect_open_error(fx, p, "no client_email");
    write_variant(fx, "nokey.json", p, sizeof p, "test_sa_key.pem", "private_key", NULL, NULL);
    expect_open_error(fx, p, "no private_key");
    write_variant(
        fx, "junkkey.json", p, sizeof p, "test_sa_key.pem", NULL, "private_key",
        json_string("-----BEGIN PRIVATE KEY-----\nMIIEjunk\n-----END PRIVATE KEY-----\n"));
    expect_open_error(fx, p, "private_key: not a PEM private key");
    write_variant(fx, "ec.json", p, sizeof p, "test_ec.pem", NULL, NULL, NULL);
    expect_open_error(fx, p, "not an RSA key");
    write_variant(fx, "small.json", p, sizeof p, "test_rsa1024.pem", NULL, NULL, NULL);
    expect_open_error(fx, p, "RSA key too small: 1024 bits");
    write_variant(fx, "uri.json", p, sizeof p, "test_sa_key.pem", NULL, "token_uri",
                  json_string("ftp://example.com/token"));
    expect_open_error(fx, p, "token_uri");
    write_variant(fx, "kid.json", p, sizeof p, "test_sa_key.pem", NULL, "private_key_id",
                  json_integer(7));
    expect_open_error(fx, p, "private_key_id");

    /* A path from the environment is named as such. */
    snprintf(p, sizeof p, "%s/nowhere.json", fx->dir);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", p, 1);
    sm_gcreds_opts_t o = {.scopes = SCOPES, .config_key = "firestore.credentials"};
    char err[512] = "";
    assert_int_equal(sm_gcreds_open(&o, &fx->g, err, sizeof err), SM_ECONFIG);
    assert_non_null(strstr(err, "firestore.credentials (GOOGLE_APPLICATION_CREDENTIALS): "));
    assert_non_null(strstr(err, p));
    /* ... and used when the key is empty */
    setenv("GOOGLE_APPLICATION_CREDENTIALS", fx->key_path, 1);
    assert_int_equal(sm_gcreds_open(&o, &fx->g, err, sizeof err), 0);
    assert_non_null(strstr(sm_gcreds_describe(fx->g), EMAIL));

    /* Without scopes nothing can be asked for. */
    sm_gcreds_t *g2 = NULL;
    o.scopes = NULL;
    assert_int_equal(sm_gcreds_open(&o, &g2, err, sizeof err), SM_EINVAL);
    assert_null(g2);
}

static void test_default_token_uri(void **state)
{
    fx_t *fx = *state;
    json_t *j = key_object(fx, "test_sa_key.pem");
    json_object_del(j, "token_uri");
    json_object_del(j, "private_key_id");
    write_json(fx->key_path, j);
    open_key(fx, fx->key_path); /* accepted: Google's token URI is the default */
}

/* ---- sm_gcreds_check: the fake on its own thread --------------------------- */

typedef struct {
    fx_t fx; /* only loop, fake and the script fields are used */
    uv_async_t stop;
    uv_sem_t ready;
    pthread_t th;
} fake_thread_t;

static void on_stop(uv_async_t *a)
{
    fake_thread_t *ft = a->data;
    fake_stop(&ft->fx.fake);
    uv_close((uv_handle_t *)&ft->stop, NULL);
}

static void *fake_main(void *arg)
{
    fake_thread_t *ft = arg;
    uv_loop_init(&ft->fx.loop);
    fake_start(&ft->fx.fake, &ft->fx.loop, handler);
    ft->fx.fake.data = &ft->fx;
    uv_async_init(&ft->fx.loop, &ft->stop, on_stop);
    ft->stop.data = ft;
    fake_url(&ft->fx.fake, "/token", ft->fx.token_url, sizeof ft->fx.token_url);
    uv_sem_post(&ft->ready);
    uv_run(&ft->fx.loop, UV_RUN_DEFAULT);
    uv_loop_close(&ft->fx.loop);
    return NULL;
}

static fake_thread_t *fake_thread_start(fx_t *fx)
{
    fake_thread_t *ft = calloc(1, sizeof *ft);
    memcpy(ft->fx.statuses, fx->statuses, sizeof fx->statuses);
    ft->fx.error_body = fx->error_body;
    ft->fx.expires_in = 3599;
    ft->fx.pub = fx->pub; /* borrowed, read-only */
    uv_sem_init(&ft->ready, 0);
    assert_int_equal(pthread_create(&ft->th, NULL, fake_main, ft), 0);
    uv_sem_wait(&ft->ready);
    return ft;
}

static void fake_thread_stop(fake_thread_t *ft)
{
    uv_async_send(&ft->stop);
    pthread_join(ft->th, NULL);
    uv_sem_destroy(&ft->ready);
    fake_free(&ft->fx.fake);
    free(ft);
}

static void test_check(void **state)
{
    fx_t *fx = *state;
    fx->statuses[1] = 400;
    fx->error_body = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT: Token "
                     "must be a short-lived token (60 minutes) and in a reasonable timeframe.\"}";
    fake_thread_t *ft = fake_thread_start(fx);
    json_t *j = key_object(fx, "test_sa_key.pem");
    json_object_set_new(j, "token_uri", json_string(ft->fx.token_url));
    write_json(fx->key_path, j);
    char err[512] = "";

    /* success: the token is then cached for every thread */
    open_key(fx, fx->key_path);
    assert_int_equal(sm_gcreds_check(fx->g, err, sizeof err), 0);
    got_t a = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    assert_int_equal(a.err, 0);
    assert_string_equal(a.authz, "Bearer ya29.SEKRET-TOKEN-1");
    sm_gcreds_close(fx->g);
    fx->g = NULL;

    /* refused: SM_EAUTH, the message names the key and the OAuth error */
    open_key(fx, fx->key_path);
    assert_int_equal(sm_gcreds_check(fx->g, err, sizeof err), SM_EAUTH);
    if (strstr(err, "pubsub.credentials: key file " EMAIL) != err ||
        strstr(err, "invalid_grant") == NULL || strstr(err, "short-lived token") == NULL)
        fail_msg("check error: %s", err);
    int gone_port = ft->fx.fake.port;
    fake_thread_stop(ft);
    sm_gcreds_close(fx->g);
    fx->g = NULL;

    /* unreachable (the fake is gone): SM_EUNAVAIL after the retries */
    open_key(fx, fx->key_path);
    assert_int_equal(sm_gcreds_check(fx->g, err, sizeof err), SM_EUNAVAIL);
    if (strstr(err, "pubsub.credentials: ") != err || strstr(err, "unreachable") == NULL ||
        strstr(err, "3 attempts") == NULL)
        fail_msg("check error: %s", err);
    sm_gcreds_close(fx->g);
    fx->g = NULL;

    /* no key file: the metadata server, and the message says why */
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", gone_port);
    setenv("GCE_METADATA_HOST", host, 1);
    open_key(fx, NULL);
    assert_int_equal(sm_gcreds_check(fx->g, err, sizeof err), SM_EUNAVAIL);
    if (strstr(err, "pubsub.credentials: not set (nor GOOGLE_APPLICATION_CREDENTIALS), so the "
                    "metadata server unreachable") != err)
        fail_msg("check error: %s", err);
}

/* ---- Logs ----------------------------------------------------------------- */

static void test_logs_have_no_secrets(void **state)
{
    fx_t *fx = *state;
    FILE *f = logcap_start(SM_LOG_DEBUG);
    fx->statuses[0] = 400;
    fx->error_body =
        "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}";
    open_key(fx, fx->key_path);
    got_t a = {0}, b = {0};
    assert_int_equal(get(fx, &a), 0);
    RUN_UNTIL(fx, a.calls > 0);
    assert_int_equal(get(fx, &b), 0);
    RUN_UNTIL(fx, b.calls > 0);
    expect_token(fx, &b, 2);
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);

    char buf[16384];
    logcap_read(f, buf, sizeof buf);
    assert_non_null(strstr(buf, "Invalid JWT Signature."));
    assert_non_null(strstr(buf, "invalid_grant"));
    assert_null(strstr(buf, "SEKRET"));     /* tokens */
    assert_null(strstr(buf, "eyJ"));        /* assertions (base64url of '{"') */
    assert_null(strstr(buf, "MII"));        /* key material */
    assert_null(strstr(buf, "assertion=")); /* form bodies */
}

/* The Authorization header line for a token, and none without one. */
static void test_header_line(void **state)
{
    (void)state;
    char *line = sm_gcreds_header("Bearer ya29.token");
    assert_non_null(line);
    assert_string_equal(line, "Authorization: Bearer ya29.token");
    sm_gcreds_header_free(line);
    assert_null(sm_gcreds_header(NULL));
    sm_gcreds_header_free(NULL);
}

int main(void)
{
    g_devnull = open("/dev/null", O_WRONLY);
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, g_devnull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_line),
        cmocka_unit_test_setup_teardown(test_key_file_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_ahead_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_lifetime_half, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalidate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_shared_by_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_metadata_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emulator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_after_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canceled_by_client_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_key_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_token_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_have_no_secrets, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sm_log_configure(SM_LOG_ERROR, SM_LOG_FORMAT_TEXT, -1);
    if (g_devnull >= 0)
        close(g_devnull);
    return rc;
}
