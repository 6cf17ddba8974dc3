/*
 * RS256 (src/cloud/rs256.c): signatures verify with the public half of the
 * fixture key (mbedTLS, independently of the signer), are deterministic
 * (PKCS#1 v1.5), change with the message; the JWS has the right shape;
 * PEM forms and refusals (garbage, EC, RSA-1024) with their reasons.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "cloud/rs256.h"
#include "core/err.h"

#define FIXTURES SM_SOURCE_DIR "/tests/unit/cloud/fixtures/"

static char *slurp(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s", name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 16384);
    *len = fread(buf, 1, 16383, f);
    fclose(f);
    return buf;
}

static sm_rs256_t *load(const char *name)
{
    size_t len;
    char *pem = slurp(name, &len);
    sm_rs256_t *k = NULL;
    char err[256] = "";
    int rc = sm_rs256_new(pem, len, &k, err, sizeof err);
    free(pem);
    if (rc != 0)
        fail_msg("sm_rs256_new(%s): %s", name, err);
    return k;
}

static void verify(const void *msg, size_t len, const uint8_t *sig, size_t siglen, int want)
{
    mbedtls_pk_context pub;
    uint8_t hash[32];
    mbedtls_pk_init(&pub);
    assert_int_equal(mbedtls_pk_parse_public_keyfile(&pub, FIXTURES "test_sa_key.pub.pem"), 0);
    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), msg, len, hash);
    int rc = mbedtls_pk_verify(&pub, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, siglen);
    mbedtls_pk_free(&pub);
    if (want == 0)
        assert_int_equal(rc, 0);
    else
        assert_int_not_equal(rc, 0);
}

static void test_sign_verifies(void **state)
{
    (void)state;
    sm_rs256_t *k = load("test_sa_key.pem");
    assert_int_equal(sm_rs256_bits(k), 2048);
    uint8_t sig[SM_RS256_MAX_SIG], sig2[SM_RS256_MAX_SIG];
    size_t n = 0, n2 = 0;
    const char msg[] = "header.claims";
    assert_int_equal(sm_rs256_sign(k, msg, strlen(msg), sig, sizeof sig, &n), 0);
    assert_int_equal(n, 256);
    verify(msg, strlen(msg), sig, n, 0);
    verify("header.claimz", 13, sig, n, -1);
    /* PKCS#1 v1.5 is deterministic: blinding must not change the result */
    assert_int_equal(sm_rs256_sign(k, msg, strlen(msg), sig2, sizeof sig2, &n2), 0);
    assert_memory_equal(sig, sig2, n);
    /* too small a buffer */
    assert_int_equal(sm_rs256_sign(k, msg, strlen(msg), sig2, 255, &n2), SM_ETOOBIG);
    sm_rs256_free(k);
    sm_rs256_free(NULL);
}

static void test_jwt_shape(void **state)
{
    (void)state;
    sm_rs256_t *k = load("test_sa_key.pem");
    const char *h = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    const char *c = "{\"iss\":\"a@b\",\"exp\":2}";
    char *jwt = NULL;
    assert_int_equal(sm_rs256_jwt(k, h, c, &jwt), 0);
    char *d1 = strchr(jwt, '.'), *d2 = strrchr(jwt, '.');
    assert_true(d1 != NULL && d2 != d1);
    uint8_t buf[512];
    size_t n = 0;
    assert_int_equal(sm_b64url_decode(jwt, (size_t)(d1 - jwt), buf, sizeof buf, &n), 0);
    assert_int_equal(n, strlen(h));
    assert_memory_equal(buf, h, n);
    assert_int_equal(sm_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof buf, &n), 0);
    assert_memory_equal(buf, c, strlen(c));
    assert_int_equal(sm_b64url_decode(d2 + 1, strlen(d2 + 1), buf, sizeof buf, &n), 0);
    assert_int_equal(n, 256);
    verify(jwt, (size_t)(d2 - jwt), buf, n, 0);
    assert_null(strchr(jwt, '='));
    free(jwt);
    sm_rs256_free(k);
}

static void expect_refused(const char *pem, size_t len, const char *want)
{
    sm_rs256_t *k = (sm_rs256_t *)0x1;
    char err[256] = "";
    assert_int_equal(sm_rs256_new(pem, len, &k, err, sizeof err), SM_EINVAL);
    assert_null(k);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_refusals(void **state)
{
    (void)state;
    size_t len;
    expect_refused("", 0, "not a PEM private key");
    expect_refused("hello", 5, "not a PEM private key");
    char *pem = slurp("test_ec.pem", &len);
    expect_refused(pem, len, "not an RSA key");
    free(pem);
    pem = slurp("test_rsa1024.pem", &len);
    expect_refused(pem, len, "RSA key too small: 1024 bits");
    free(pem);
    /* a public key is not a private key */
    pem = slurp("test_sa_key.pub.pem", &len);
    expect_refused(pem, len, "not a PEM private key");
    free(pem);
    /* not NUL-terminated input is fine: the length counts */
    pem = slurp("test_sa_key.pem", &len);
    pem[len] = 'X';
    sm_rs256_t *k = NULL;
    char err[128];
    assert_int_equal(sm_rs256_new(pem, len, &k, err, sizeof err), 0);
    sm_rs256_free(k);
    free(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verifies),
        cmocka_unit_test(test_jwt_shape),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
