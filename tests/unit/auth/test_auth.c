/*
 * Unit tests for src/auth/auth.c: config validation, the token method (and
 * its digest comparison), the jwt method with the sub == client_id rule,
 * method order, the store deferral, secrets kept out of logs and error
 * messages, and concurrent checks from several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "config/config.h"
#include "core/err.h"
#include "log/log.h"

#define NOW 1700000000
#define SECRET32 "0123456789abcdef0123456789abcdef" /* exactly 32 bytes */

/* A config with only the auth fields filled; lists point at the caller's arrays. */
static sm_config_t make_cfg(char **methods, size_t n_methods, char **keys, size_t n_keys,
                            char *secret, int64_t expiry)
{
    sm_config_t c;
    memset(&c, 0, sizeof c);
    c.auth_auth_method.items = methods;
    c.auth_auth_method.n = n_methods;
    c.auth_api_keys.items = keys;
    c.auth_api_keys.n = n_keys;
    c.auth_token_secret = secret;
    c.auth_token_expiry = expiry;
    return c;
}

static char *m_token[] = {"token"};
static char *m_jwt[] = {"jwt"};
static char *m_token_jwt[] = {"token", "jwt"};
static char *m_jwt_token[] = {"jwt", "token"};
static char *m_token_store[] = {"token", "store"};
static char *default_keys[] = {"test_client_1:test_token_1", "test_client_2:test_token_2",
                               "tenant:bob:s3cr3t-bob"};

static sm_auth_t *new_ok(const sm_config_t *c)
{
    sm_auth_t *a = NULL;
    char err[256] = "";
    int rc = sm_auth_new(c, &a, err, sizeof err);
    if (rc != 0) {
        fail_msg("sm_auth_new: %s", err);
    }
    assert_non_null(a);
    return a;
}

/* Expect SM_ECONFIG with a message containing want (and, if not NULL, not containing leak). */
static void new_fails(const sm_config_t *c, const char *want, const char *leak)
{
    sm_auth_t *a = (sm_auth_t *)0x1;
    char err[256] = "";
    assert_int_equal(sm_auth_new(c, &a, err, sizeof err), SM_ECONFIG);
    assert_null(a);
    if (!strstr(err, want)) {
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    }
    if (leak && strstr(err, leak)) {
        fail_msg("error \"%s\" leaks \"%s\"", err, leak);
    }
}

static void jwt_for(const char *payload, char *out, size_t cap)
{
    assert_int_equal(
        sm_jwt_sign_hs256(payload, (const uint8_t *)SECRET32, strlen(SECRET32), out, cap), 0);
}

/* ---- token method ---- */

static void test_token_accept_reject(void **state)
{
    (void)state;
    sm_config_t c = make_cfg(m_token, 1, default_keys, 3, NULL, 3600);
    sm_auth_t *a = new_ok(&c);

    assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_1", NOW), 0);
    assert_int_equal(sm_auth_check(a, "test_client_2", "test_token_2", NOW), 0);
    /* Client ids may contain ':'; the pair is split at the last ':'. */
    assert_int_equal(sm_auth_check(a, "tenant:bob", "s3cr3t-bob", NOW), 0);
    assert_int_equal(sm_auth_check(a, "tenant", "bob:s3cr3t-bob", NOW), SM_EAUTH);

    /* Another client's token. */
    assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_2", NOW), SM_EAUTH);
    /* Wrong token, prefix, extension, case. */
    assert_int_equal(sm_auth_check(a, "test_client_1", "wrong", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "test_client_1", "t", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_11", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "test_client_1", "TEST_TOKEN_1", NOW), SM_EAUTH);
    /* Empty and missing. */
    assert_int_equal(sm_auth_check(a, "test_client_1", "", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "test_client_1", NULL, NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "", "test_token_1", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, NULL, "test_token_1", NOW), SM_EAUTH);
    /* Unknown client, client id prefix / case. */
    assert_int_equal(sm_auth_check(a, "nobody", "test_token_1", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "test_client_", "test_token_1", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "TEST_CLIENT_1", "test_token_1", NOW), SM_EAUTH);

    /* Oversize token and client id are refused before hashing. */
    char *big = malloc(SM_AUTH_MAX_TOKEN_LEN + 2);
    memset(big, 'x', SM_AUTH_MAX_TOKEN_LEN + 1);
    big[SM_AUTH_MAX_TOKEN_LEN + 1] = '\0';
    assert_int_equal(sm_auth_check(a, "test_client_1", big, NOW), SM_EAUTH);
    big[SM_AUTH_MAX_CLIENT_ID + 1] = '\0';
    assert_int_equal(sm_auth_check(a, big, "test_token_1", NOW), SM_EAUTH);
    free(big);

    assert_true(sm_auth_has_method(a, "token"));
    assert_false(sm_auth_has_method(a, "jwt"));
    assert_false(sm_auth_has_method(a, "store"));
    sm_auth_free(a);
}

static void test_token_many_keys_sorted_lookup(void **state)
{
    (void)state;
    /* Insert in reverse order so the lookup depends on the sort. */
    enum { N = 50 };
    char bufs[N][32], *items[N];
    for (int i = 0; i < N; i++) {
        snprintf(bufs[i], sizeof bufs[i], "c%02d:tok-%02d", N - 1 - i, N - 1 - i);
        items[i] = bufs[i];
    }
    sm_config_t c = make_cfg(m_token, 1, items, N, NULL, 3600);
    sm_auth_t *a = new_ok(&c);
    for (int i = 0; i < N; i++) {
        char id[16], tok[24], other[24];
        snprintf(id, sizeof id, "c%02d", i);
        snprintf(tok, sizeof tok, "tok-%02d", i);
        snprintf(other, sizeof other, "tok-%02d", (i + 1) % N);
        assert_int_equal(sm_auth_check(a, id, tok, NOW), 0);
        assert_int_equal(sm_auth_check(a, id, other, NOW), SM_EAUTH);
    }
    sm_auth_free(a);
}

static void test_digest_helpers(void **state)
{
    (void)state;
    /* FIPS 180-2 test vector: SHA-256("abc"). */
    static const uint8_t abc[SM_AUTH_DIGEST_LEN] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                                    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                                    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t d[SM_AUTH_DIGEST_LEN], e[SM_AUTH_DIGEST_LEN];

    sm_auth_token_digest("abc", 3, d);
    assert_memory_equal(d, abc, sizeof d);
    assert_true(sm_auth_digest_equal(d, abc));
    memcpy(e, d, sizeof e);
    e[SM_AUTH_DIGEST_LEN - 1] ^= 0x80;
    assert_false(sm_auth_digest_equal(d, e));
    memcpy(e, d, sizeof e);
    e[0] ^= 1;
    assert_false(sm_auth_digest_equal(d, e));
}

/* ---- jwt method ---- */

static void test_jwt_method(void **state)
{
    (void)state;
    sm_config_t c = make_cfg(m_jwt, 1, NULL, 0, SECRET32, 3600);
    sm_auth_t *a = new_ok(&c);
    char tok[512];

    jwt_for("{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700003600}", tok, sizeof tok);
    assert_int_equal(sm_auth_check(a, "alice", tok, NOW), 0);
    /* sub must equal client_id. */
    assert_int_equal(sm_auth_check(a, "bob", tok, NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "alic", tok, NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "alicex", tok, NOW), SM_EAUTH);
    /* Claim rules go through: expired an hour later (+ skew), lifetime from token_expiry. */
    assert_int_equal(sm_auth_check(a, "alice", tok, NOW + 3600 + SM_JWT_SKEW_S - 1), 0);
    assert_int_equal(sm_auth_check(a, "alice", tok, NOW + 3600 + SM_JWT_SKEW_S), SM_EAUTH);
    jwt_for("{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700003601}", tok, sizeof tok);
    assert_int_equal(sm_auth_check(a, "alice", tok, NOW), SM_EAUTH);
    /* A static api key is not accepted when only jwt is configured. */
    assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_1", NOW), SM_EAUTH);
    /* A sub longer than any client id. */
    char payload[400];
    snprintf(payload, sizeof payload, "{\"sub\":\"%0129d\",\"exp\":1700000100}", 0);
    jwt_for(payload, tok, sizeof tok);
    char id[140];
    snprintf(id, sizeof id, "%0129d", 0);
    assert_int_equal(sm_auth_check(a, id, tok, NOW), SM_EAUTH);
    sm_auth_free(a);
}

static void test_jwt_token_expiry_config(void **state)
{
    (void)state;
    sm_config_t c = make_cfg(m_jwt, 1, NULL, 0, SECRET32, 60);
    sm_auth_t *a = new_ok(&c);
    char tok[512];
    jwt_for("{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700000060}", tok, sizeof tok);
    assert_int_equal(sm_auth_check(a, "alice", tok, NOW), 0);
    jwt_for("{\"sub\":\"alice\",\"iat\":1700000000,\"exp\":1700000061}", tok, sizeof tok);
    assert_int_equal(sm_auth_check(a, "alice", tok, NOW), SM_EAUTH);
    sm_auth_free(a);
}

/* ---- method order and combinations ---- */

static void test_both_methods_either_order(void **state)
{
    (void)state;
    char **orders[] = {m_token_jwt, m_jwt_token};
    char tok[512], wrong[512];
    jwt_for("{\"sub\":\"test_client_1\",\"exp\":1700000100}", tok, sizeof tok);
    assert_int_equal(sm_jwt_sign_hs256("{\"sub\":\"test_client_1\",\"exp\":1700000100}",
                                       (const uint8_t *)SECRET32 "x", 33, wrong, sizeof wrong),
                     0);

    for (size_t i = 0; i < 2; i++) {
        sm_config_t c = make_cfg(orders[i], 2, default_keys, 3, SECRET32, 3600);
        sm_auth_t *a = new_ok(&c);
        /* Either credential works. */
        assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_1", NOW), 0);
        assert_int_equal(sm_auth_check(a, "test_client_1", tok, NOW), 0);
        /* A JWT for someone without an api key. */
        char other[512];
        jwt_for("{\"sub\":\"carol\",\"exp\":1700000100}", other, sizeof other);
        assert_int_equal(sm_auth_check(a, "carol", other, NOW), 0);
        /* Neither accepts. */
        assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_2", NOW), SM_EAUTH);
        assert_int_equal(sm_auth_check(a, "test_client_2", tok, NOW), SM_EAUTH);
        assert_int_equal(sm_auth_check(a, "test_client_1", wrong, NOW), SM_EAUTH);
        assert_int_equal(sm_auth_check(a, "test_client_1", tok, NOW + 200), SM_EAUTH);
        assert_true(sm_auth_has_method(a, "token"));
        assert_true(sm_auth_has_method(a, "jwt"));
        sm_auth_free(a);
    }
}

static void test_store_is_deferred(void **state)
{
    (void)state;
    sm_config_t c = make_cfg(m_token_store, 2, default_keys, 3, NULL, 3600);
    sm_auth_t *a = new_ok(&c);
    assert_true(sm_auth_has_method(a, "store"));
    assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_1", NOW), 0);
    assert_int_equal(sm_auth_check(a, "test_client_1", "nope", NOW), SM_EAGAIN);
    assert_int_equal(sm_auth_check(a, "someone", "whatever", NOW), SM_EAGAIN);
    /* Empty credentials are refused outright, not sent to the store. */
    assert_int_equal(sm_auth_check(a, "someone", "", NOW), SM_EAUTH);
    sm_auth_free(a);
}

/* ---- configuration errors ---- */

static void test_config_errors(void **state)
{
    (void)state;
    sm_config_t c;

    char *unknown[] = {"token", "oauth"};
    c = make_cfg(unknown, 2, default_keys, 3, NULL, 3600);
    new_fails(&c, "auth.auth_method: unknown method \"oauth\"", NULL);

    c = make_cfg(NULL, 0, default_keys, 3, NULL, 3600);
    new_fails(&c, "auth.auth_method", NULL);

    char *twice[] = {"token", "jwt", "token"};
    c = make_cfg(twice, 3, default_keys, 3, SECRET32, 3600);
    new_fails(&c, "auth.auth_method: \"token\" is listed twice", NULL);

    char *nocolon[] = {"a:b", "hunter2hunter2"};
    c = make_cfg(m_token, 1, nocolon, 2, NULL, 3600);
    new_fails(&c, "auth.api_keys: item 2", "hunter2");

    char *noid[] = {":hunter2hunter2"};
    c = make_cfg(m_token, 1, noid, 1, NULL, 3600);
    new_fails(&c, "auth.api_keys: item 1", "hunter2");

    char *badid[] = {"al ice:hunter2hunter2"};
    c = make_cfg(m_token, 1, badid, 1, NULL, 3600);
    new_fails(&c, "auth.api_keys: item 1", "hunter2");

    char *notoken[] = {"alice:"};
    c = make_cfg(m_token, 1, notoken, 1, NULL, 3600);
    new_fails(&c, "auth.api_keys: item 1 (client_id \"alice\")", NULL);

    char *spacetoken[] = {"alice:hunter2 hunter2"};
    c = make_cfg(m_token, 1, spacetoken, 1, NULL, 3600);
    new_fails(&c, "auth.api_keys: item 1 (client_id \"alice\")", "hunter2");

    char *dup[] = {"alice:hunter2hunter2", "bob:x", "alice:other"};
    c = make_cfg(m_token, 1, dup, 3, NULL, 3600);
    new_fails(&c, "auth.api_keys: client_id \"alice\" is listed twice", "hunter2");

    c = make_cfg(m_token, 1, NULL, 0, NULL, 3600);
    new_fails(&c, "auth.api_keys: empty", NULL);

    /* jwt needs a 32-byte secret. */
    c = make_cfg(m_jwt, 1, NULL, 0, NULL, 3600);
    new_fails(&c, "auth.token_secret", NULL);
    c = make_cfg(m_jwt, 1, NULL, 0, "", 3600);
    new_fails(&c, "auth.token_secret", NULL);
    char short_secret[] = "0123456789abcdef0123456789abcde"; /* 31 bytes */
    c = make_cfg(m_jwt, 1, NULL, 0, short_secret, 3600);
    new_fails(&c, "auth.token_secret", short_secret);
    c = make_cfg(m_jwt, 1, NULL, 0, SECRET32, 0);
    new_fails(&c, "auth.token_expiry", NULL);
}

static void test_config_ok_edges(void **state)
{
    (void)state;
    sm_config_t c;
    sm_auth_t *a;

    /* Exactly 32 bytes is enough. */
    c = make_cfg(m_jwt, 1, NULL, 0, SECRET32, 3600);
    a = new_ok(&c);
    sm_auth_free(a);

    /* api_keys are not looked at when token is not configured. */
    char *junk[] = {"no colon here"};
    c = make_cfg(m_jwt, 1, junk, 1, SECRET32, 3600);
    a = new_ok(&c);
    sm_auth_free(a);

    /* The secret is not needed without jwt. */
    c = make_cfg(m_token, 1, default_keys, 3, NULL, 3600);
    a = new_ok(&c);
    sm_auth_free(a);

    /* Error buffers: tiny, or none at all. */
    char *unknown[] = {"oauth"};
    c = make_cfg(unknown, 1, NULL, 0, NULL, 3600);
    char tiny[4] = "xyz";
    a = (sm_auth_t *)0x1;
    assert_int_equal(sm_auth_new(&c, &a, tiny, sizeof tiny), SM_ECONFIG);
    assert_null(a);
    assert_string_equal(tiny, "aut");
    assert_int_equal(sm_auth_new(&c, &a, NULL, 0), SM_ECONFIG);

    sm_auth_free(NULL);
}

/* The config copy is private: freeing or changing the config afterwards has no effect. */
static void test_config_copied(void **state)
{
    (void)state;
    char key[] = "alice:tok-alice";
    char secret[] = SECRET32;
    char *keys[] = {key};
    sm_config_t c = make_cfg(m_token_jwt, 2, keys, 1, secret, 3600);
    sm_auth_t *a = new_ok(&c);
    char tok[512];
    jwt_for("{\"sub\":\"bob\",\"exp\":1700000100}", tok, sizeof tok);
    memset(key, 'z', sizeof key - 1);
    memset(secret, 'z', sizeof secret - 1);
    memset(&c, 0, sizeof c);
    assert_int_equal(sm_auth_check(a, "alice", "tok-alice", NOW), 0);
    assert_int_equal(sm_auth_check(a, "bob", tok, NOW), 0);
    sm_auth_free(a);
}

/* ---- secrets stay out of the log ---- */

static void test_rejections_logged_without_secrets(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    sm_log_configure(SM_LOG_DEBUG, SM_LOG_FORMAT_JSON, fileno(f));

    sm_config_t c = make_cfg(m_token_jwt, 2, default_keys, 3, SECRET32, 3600);
    sm_auth_t *a = new_ok(&c);
    char tok[512];
    jwt_for("{\"sub\":\"alice\",\"exp\":1699990000}", tok, sizeof tok); /* expired */
    assert_int_equal(sm_auth_check(a, "test_client_1", "presented-secret-xyz", NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "alice", tok, NOW), SM_EAUTH);
    assert_int_equal(sm_auth_check(a, "test_client_1", "test_token_1", NOW), 0);
    sm_auth_free(a);
    sm_log_configure(SM_LOG_INFO, SM_LOG_FORMAT_JSON, 2);

    char buf[8192];
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);

    assert_non_null(strstr(buf, "auth rejected"));
    assert_non_null(strstr(buf, "token:mismatch"));
    assert_non_null(strstr(buf, "jwt:expired"));
    assert_non_null(strstr(buf, "***"));
    assert_null(strstr(buf, "presented-secret-xyz"));
    assert_null(strstr(buf, "test_token_1"));
    assert_null(strstr(buf, tok));
    assert_null(strstr(buf, strchr(tok, '.') + 1)); /* not even the signature part */
    assert_null(strstr(buf, SECRET32));
}

/* ---- concurrent readers (meaningful under TSan) ---- */

typedef struct {
    const sm_auth_t *a;
    const char *jwt;
    int bad;
} worker_arg_t;

static void *worker(void *p)
{
    worker_arg_t *w = p;
    for (int i = 0; i < 500; i++) {
        w->bad += sm_auth_check(w->a, "test_client_1", "test_token_1", NOW) != 0;
        w->bad += sm_auth_check(w->a, "test_client_2", "test_token_1", NOW) != SM_EAUTH;
        w->bad += sm_auth_check(w->a, "alice", w->jwt, NOW) != 0;
        w->bad += sm_auth_check(w->a, "bob", w->jwt, NOW) != SM_EAUTH;
    }
    return NULL;
}

static void test_concurrent_checks(void **state)
{
    (void)state;
    enum { T = 4 };
    sm_log_configure(SM_LOG_INFO, SM_LOG_FORMAT_JSON, -1);
    sm_config_t c = make_cfg(m_token_jwt, 2, default_keys, 3, SECRET32, 3600);
    sm_auth_t *a = new_ok(&c);
    char tok[512];
    jwt_for("{\"sub\":\"alice\",\"exp\":1700000100}", tok, sizeof tok);
    pthread_t th[T];
    worker_arg_t args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (worker_arg_t){.a = a, .jwt = tok, .bad = 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].bad, 0);
    }
    sm_auth_free(a);
    sm_log_configure(SM_LOG_INFO, SM_LOG_FORMAT_JSON, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_accept_reject),
        cmocka_unit_test(test_token_many_keys_sorted_lookup),
        cmocka_unit_test(test_digest_helpers),
        cmocka_unit_test(test_jwt_method),
        cmocka_unit_test(test_jwt_token_expiry_config),
        cmocka_unit_test(test_both_methods_either_order),
        cmocka_unit_test(test_store_is_deferred),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_ok_edges),
        cmocka_unit_test(test_config_copied),
        cmocka_unit_test(test_rejections_logged_without_secrets),
        cmocka_unit_test(test_concurrent_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
