/*
 * Unit tests for src/auth/jwt.c: base64url, HS256 sign and verify, every
 * header and claim rule at its boundary, and known answers computed outside
 * this code (Node's crypto.createHmac, and RFC 7515 appendix A.1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/md.h>

#include "auth/jwt.h"
#include "core/err.h"

#define NOW 1700000000
#define MAXLIFE 3600
#define SKEW SM_JWT_SKEW_S

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef-test-secret";
#define SECRET_LEN (sizeof secret - 1)

/* ---- helpers ---- */

/* Token with an arbitrary header, signed with HMAC-SHA256 by mbedTLS
 * directly (so alg none / HS512 headers can be produced). */
static void make_token(const char *header, const char *payload, const uint8_t *key, size_t key_len,
                       char *out, size_t cap)
{
    size_t n, o = 0;
    uint8_t mac[32];

    assert_int_equal(sm_b64url_encode(header, strlen(header), out, cap, &n), 0);
    o += n;
    out[o++] = '.';
    assert_int_equal(sm_b64url_encode(payload, strlen(payload), out + o, cap - o, &n), 0);
    o += n;
    assert_int_equal(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, key_len,
                                     (const unsigned char *)out, o, mac),
                     0);
    out[o++] = '.';
    assert_int_equal(sm_b64url_encode(mac, sizeof mac, out + o, cap - o, &n), 0);
}

/* Verify a NUL-terminated token with the default parameters; return the reason. */
static sm_jwt_reason_t why_of(const char *tok, int64_t now)
{
    char sub[129];
    sm_jwt_reason_t why = (sm_jwt_reason_t)-1;
    int rc = sm_jwt_verify_hs256_ex(tok, strlen(tok), secret, SECRET_LEN, now, MAXLIFE, SKEW, sub,
                                    sizeof sub, &why);
    assert_int_equal(rc, why == SM_JWT_OK ? 0 : SM_EAUTH);
    if (rc != 0) {
        assert_string_equal(sub, "");
    }
    return why;
}

/* Sign payload with the real signer and return the verification reason at NOW. */
static sm_jwt_reason_t why_payload(const char *payload)
{
    char tok[1024];
    assert_int_equal(sm_jwt_sign_hs256(payload, secret, SECRET_LEN, tok, sizeof tok), 0);
    return why_of(tok, NOW);
}

static sm_jwt_reason_t why_header(const char *header)
{
    char tok[1024];
    make_token(header, "{\"sub\":\"alice\",\"exp\":1700000100}", secret, SECRET_LEN, tok,
               sizeof tok);
    return why_of(tok, NOW);
}

/* ---- base64url ---- */

static void test_b64url_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char out[16];
    uint8_t dec[16];
    size_t n;

    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        assert_int_equal(sm_b64url_encode(plain[i], strlen(plain[i]), out, sizeof out, &n), 0);
        assert_string_equal(out, enc[i]);
        assert_int_equal(n, strlen(enc[i]));
        assert_int_equal(SM_B64URL_ENCODED_LEN(strlen(plain[i])), strlen(enc[i]));
        assert_int_equal(sm_b64url_decode(enc[i], strlen(enc[i]), dec, sizeof dec, &n), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(dec, plain[i], n);
    }
    /* The two characters that differ from standard base64. */
    static const uint8_t bin[] = {0xfb, 0xff, 0xfe};
    assert_int_equal(sm_b64url_encode(bin, 3, out, sizeof out, NULL), 0);
    assert_string_equal(out, "-__-");
    assert_int_equal(sm_b64url_decode("-__-", 4, dec, sizeof dec, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(dec, bin, 3);
}

static void test_b64url_rejects(void **state)
{
    (void)state;
    uint8_t dec[16];
    size_t n;

    assert_int_equal(sm_b64url_decode("Zg==", 4, dec, sizeof dec, &n), SM_EINVAL); /* padding */
    assert_int_equal(sm_b64url_decode("Zm9v+A", 6, dec, sizeof dec, &n), SM_EINVAL);
    assert_int_equal(sm_b64url_decode("Zm9v/A", 6, dec, sizeof dec, &n), SM_EINVAL);
    assert_int_equal(sm_b64url_decode("Zm 9", 4, dec, sizeof dec, &n), SM_EINVAL);
    assert_int_equal(sm_b64url_decode("Zm9\n", 4, dec, sizeof dec, &n), SM_EINVAL);
    assert_int_equal(sm_b64url_decode("Z", 1, dec, sizeof dec, &n), SM_EINVAL);     /* 1 mod 4 */
    assert_int_equal(sm_b64url_decode("Zm9vY", 5, dec, sizeof dec, &n), SM_EINVAL); /* 1 mod 4 */
    /* Non-zero unused bits: "Zh" and "Zm9" vs the canonical "Zg" and "Zm8". */
    assert_int_equal(sm_b64url_decode("Zh", 2, dec, sizeof dec, &n), SM_EINVAL);
    assert_int_equal(sm_b64url_decode("Zm9", 3, dec, sizeof dec, &n), SM_EINVAL);
    /* A NUL inside the given length is just another bad character. */
    assert_int_equal(sm_b64url_decode("Zm\0v", 4, dec, sizeof dec, &n), SM_EINVAL);
}

static void test_b64url_capacity(void **state)
{
    (void)state;
    char out[8];
    uint8_t dec[8];
    size_t n;

    /* "foobar" needs 8 characters + NUL. */
    memset(out, 'x', sizeof out);
    assert_int_equal(sm_b64url_encode("foobar", 6, out, 8, &n), SM_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(sm_b64url_encode("fooba", 5, out, 8, &n), 0);
    assert_string_equal(out, "Zm9vYmE");
    assert_int_equal(sm_b64url_decode("Zm9vYmFy", 8, dec, 5, &n), SM_ETOOBIG);
    assert_int_equal(sm_b64url_decode("Zm9vYmFy", 8, dec, 6, &n), 0);
    assert_int_equal(n, 6);
}

/* ---- sign / verify ---- */

static void test_sign_verify_round_trip(void **state)
{
    (void)state;
    char tok[512], sub[64];

    assert_int_equal(sm_jwt_sign_hs256("{\"sub\":\"bob\",\"iat\":1700000000,\"exp\":1700000600}",
                                       secret, SECRET_LEN, tok, sizeof tok),
                     0);
    assert_int_equal(sm_jwt_verify_hs256(tok, strlen(tok), secret, SECRET_LEN, NOW, MAXLIFE, SKEW,
                                         sub, sizeof sub),
                     0);
    assert_string_equal(sub, "bob");
    /* sub_out may be omitted. */
    assert_int_equal(
        sm_jwt_verify_hs256(tok, strlen(tok), secret, SECRET_LEN, NOW, MAXLIFE, SKEW, NULL, 0), 0);
    /* The token need not be NUL-terminated: trailing bytes beyond token_len are ignored. */
    size_t len = strlen(tok);
    memcpy(tok + len, ".garbage", 9);
    assert_int_equal(
        sm_jwt_verify_hs256(tok, len, secret, SECRET_LEN, NOW, MAXLIFE, SKEW, sub, sizeof sub), 0);
    assert_int_equal(
        sm_jwt_verify_hs256(tok, len + 8, secret, SECRET_LEN, NOW, MAXLIFE, SKEW, sub, sizeof sub),
        SM_EAUTH);
}

/* Computed independently with Node 20:
 *   h = b64url(JSON.stringify({alg:"HS256",typ:"JWT"}))
 *   p = b64url(JSON.stringify({sub:"alice@example.com",iat:1700000000,exp:1700003600}))
 *   s = crypto.createHmac("sha256", KAT_SECRET).update(h + "." + p).digest("base64url") */
#define KAT_SECRET "kat-secret-0123456789abcdefghijklmnopqrstuvwxyz"
#define KAT_PAYLOAD "{\"sub\":\"alice@example.com\",\"iat\":1700000000,\"exp\":1700003600}"
#define KAT_TOKEN                                                                                  \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ."          \
    "Zcnm85-vu8cf-XqwI30HrSUDc9oPO1WHM_URY0B-WM8"

static void test_known_answer_node(void **state)
{
    (void)state;
    const uint8_t *key = (const uint8_t *)KAT_SECRET;
    size_t key_len = strlen(KAT_SECRET);
    char tok[512], sub[64];

    assert_int_equal(sm_jwt_sign_hs256(KAT_PAYLOAD, key, key_len, tok, sizeof tok), 0);
    assert_string_equal(tok, KAT_TOKEN);
    assert_int_equal(sm_jwt_verify_hs256(KAT_TOKEN, strlen(KAT_TOKEN), key, key_len, 1700000000,
                                         3600, SKEW, sub, sizeof sub),
                     0);
    assert_string_equal(sub, "alice@example.com");
    /* Same token, lifetime limit one second shorter than exp - iat. */
    assert_int_equal(sm_jwt_verify_hs256(KAT_TOKEN, strlen(KAT_TOKEN), key, key_len, 1700000000,
                                         3599, SKEW, sub, sizeof sub),
                     SM_EAUTH);
}

/* RFC 7515 appendix A.1: an HS256 JWS with a CRLF-formatted header carrying
 * typ before alg.  Its payload has no "sub", so a correct verifier gets past
 * header and signature and stops at the claims. */
static void test_known_answer_rfc7515(void **state)
{
    (void)state;
    static const char tok[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const char key_b64[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    uint8_t key[64];
    size_t key_len;
    sm_jwt_reason_t why;

    assert_int_equal(sm_b64url_decode(key_b64, strlen(key_b64), key, sizeof key, &key_len), 0);
    assert_int_equal(key_len, 64);
    assert_int_equal(sm_jwt_verify_hs256_ex(tok, strlen(tok), key, key_len, 1300819380 - 100, 3600,
                                            SKEW, NULL, 0, &why),
                     SM_EAUTH);
    assert_int_equal(why, SM_JWT_MISSING_CLAIM);
    key[0] ^= 1;
    assert_int_equal(sm_jwt_verify_hs256_ex(tok, strlen(tok), key, key_len, 1300819380 - 100, 3600,
                                            SKEW, NULL, 0, &why),
                     SM_EAUTH);
    assert_int_equal(why, SM_JWT_BAD_SIGNATURE);
}

/* ---- claim rules at their boundaries (NOW = 1700000000, skew 30, max 3600) ---- */

static void test_exp_boundary(void **state)
{
    (void)state;
    /* exp must be > now - skew. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1699999000,\"exp\":1699999970}"),
                     SM_JWT_EXPIRED);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1699999000,\"exp\":1699999971}"),
                     SM_JWT_OK);
    /* Fractions round towards expiry: 1699999970.5 counts as ...970. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1699999000,\"exp\":1699999970.5}"),
                     SM_JWT_EXPIRED);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1699999000,\"exp\":1699999971.0}"),
                     SM_JWT_OK);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":-5}"), SM_JWT_EXPIRED);
}

static void test_nbf_boundary(void **state)
{
    (void)state;
    /* nbf must be <= now + skew. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"nbf\":1700000030,\"exp\":1700000100}"),
                     SM_JWT_OK);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"nbf\":1700000031,\"exp\":1700000100}"),
                     SM_JWT_NOT_YET_VALID);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"nbf\":1700000030.25,\"exp\":1700000100}"),
                     SM_JWT_NOT_YET_VALID);
    /* iat in the future beyond the skew is refused the same way. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1700000030,\"exp\":1700000100}"),
                     SM_JWT_OK);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1700000031,\"exp\":1700000100}"),
                     SM_JWT_NOT_YET_VALID);
    /* Without that rule this token (lifetime 3600 but issued in ten years)
     * would be valid for ten years. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":2015000000,\"exp\":2015003600}"),
                     SM_JWT_NOT_YET_VALID);
}

static void test_lifetime_boundary(void **state)
{
    (void)state;
    /* With iat: exp - iat <= max. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1699999990,\"exp\":1700003590}"),
                     SM_JWT_OK);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1699999990,\"exp\":1700003591}"),
                     SM_JWT_LIFETIME_TOO_LONG);
    /* A fractional iat rounds down (the stricter side): a real lifetime of
     * 3600.5 s is too long, 3599.5 s is not. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1699999989.5,\"exp\":1700003590}"),
                     SM_JWT_LIFETIME_TOO_LONG);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":1699999990.5,\"exp\":1700003590}"),
                     SM_JWT_OK);
    /* Without iat: exp - now <= max + skew. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":1700003630}"), SM_JWT_OK);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":1700003631}"), SM_JWT_LIFETIME_TOO_LONG);
    /* Huge numbers are clamped, not overflowed. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"iat\":-9223372036854775807,"
                                 "\"exp\":9223372036854775807}"),
                     SM_JWT_LIFETIME_TOO_LONG);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":1e300}"), SM_JWT_LIFETIME_TOO_LONG);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":-1e300}"), SM_JWT_EXPIRED);
}

static void test_claims_shape(void **state)
{
    (void)state;
    assert_int_equal(why_payload("{\"exp\":1700000100}"), SM_JWT_MISSING_CLAIM);
    assert_int_equal(why_payload("{\"sub\":\"\",\"exp\":1700000100}"), SM_JWT_MISSING_CLAIM);
    assert_int_equal(why_payload("{\"sub\":42,\"exp\":1700000100}"), SM_JWT_MISSING_CLAIM);
    assert_int_equal(why_payload("{\"sub\":null,\"exp\":1700000100}"), SM_JWT_MISSING_CLAIM);
    assert_int_equal(why_payload("{\"sub\":\"a\"}"), SM_JWT_MISSING_CLAIM);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":\"1700000100\"}"), SM_JWT_MISSING_CLAIM);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":1700000100,\"iat\":\"x\"}"),
                     SM_JWT_MISSING_CLAIM);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":1700000100,\"nbf\":true}"),
                     SM_JWT_MISSING_CLAIM);
    assert_int_equal(why_payload("[\"sub\",\"a\"]"), SM_JWT_MALFORMED);
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":1700000100"), SM_JWT_MALFORMED);
    assert_int_equal(why_payload("not json"), SM_JWT_MALFORMED);
    /* Duplicate members are refused rather than resolved one way or the other. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1700000100}"),
                     SM_JWT_MALFORMED);
    /* Other claims are ignored. */
    assert_int_equal(why_payload("{\"sub\":\"a\",\"exp\":1700000100,\"aud\":[1,2],\"x\":{}}"),
                     SM_JWT_OK);
}

static void test_sub_limits(void **state)
{
    (void)state;
    char tok[1024], sub[8];
    sm_jwt_reason_t why;

    /* A NUL inside sub would truncate it when compared with a client_id. */
    assert_int_equal(why_payload("{\"sub\":\"alice\\u0000x\",\"exp\":1700000100}"),
                     SM_JWT_MALFORMED); /* jansson refuses \u0000 outright */

    /* "1234567" fits an 8-byte buffer; "12345678" does not. */
    assert_int_equal(sm_jwt_sign_hs256("{\"sub\":\"1234567\",\"exp\":1700000100}", secret,
                                       SECRET_LEN, tok, sizeof tok),
                     0);
    assert_int_equal(sm_jwt_verify_hs256_ex(tok, strlen(tok), secret, SECRET_LEN, NOW, MAXLIFE,
                                            SKEW, sub, sizeof sub, &why),
                     0);
    assert_string_equal(sub, "1234567");
    assert_int_equal(sm_jwt_sign_hs256("{\"sub\":\"12345678\",\"exp\":1700000100}", secret,
                                       SECRET_LEN, tok, sizeof tok),
                     0);
    assert_int_equal(sm_jwt_verify_hs256_ex(tok, strlen(tok), secret, SECRET_LEN, NOW, MAXLIFE,
                                            SKEW, sub, sizeof sub, &why),
                     SM_EAUTH);
    assert_int_equal(why, SM_JWT_MISSING_CLAIM);
    assert_string_equal(sub, "");
}

/* ---- header rules ---- */

static void test_header_alg(void **state)
{
    (void)state;
    assert_int_equal(why_header("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"), SM_JWT_OK);
    assert_int_equal(why_header("{\"alg\":\"HS256\"}"), SM_JWT_OK);
    assert_int_equal(why_header("{\"typ\":\"JWT\",\"alg\":\"HS256\",\"kid\":\"k1\"}"), SM_JWT_OK);
    /* the byte-for-byte fast forms and their near misses (general path) */
    assert_int_equal(why_header("{\"typ\":\"JWT\",\"alg\":\"HS256\"}"), SM_JWT_OK);
    assert_int_equal(why_header("{ \"alg\": \"HS256\", \"typ\": \"JWT\" }"), SM_JWT_OK);
    assert_int_equal(why_header("{\"alg\":\"HS256\",\"typ\":\"JWT\"}x"), SM_JWT_MALFORMED);
    assert_int_equal(why_header("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"crit\":[]}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"alg\":\"HS256\"}"),
                     SM_JWT_MALFORMED);
    assert_int_equal(why_header("{\"alg\":\"none\",\"typ\":\"JWT\"}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"HS512\",\"typ\":\"JWT\"}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"hs256\"}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"HS256 \"}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"typ\":\"JWT\"}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":256}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":null}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"HS256\",\"typ\":\"JWS\"}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"HS256\",\"typ\":1}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}"), SM_JWT_BAD_ALG);
    assert_int_equal(why_header("{\"alg\":\"HS256\",\"alg\":\"none\"}"), SM_JWT_MALFORMED);
    assert_int_equal(why_header("[\"HS256\"]"), SM_JWT_MALFORMED);
    assert_int_equal(why_header("HS256"), SM_JWT_MALFORMED);
}

static void test_alg_none_unsigned(void **state)
{
    (void)state;
    char tok[256];
    size_t n, o = 0;
    const char *h = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    const char *p = "{\"sub\":\"alice\",\"exp\":1700000100}";

    /* The classic "alg":"none" token with an empty signature segment. */
    assert_int_equal(sm_b64url_encode(h, strlen(h), tok, sizeof tok, &n), 0);
    o += n;
    tok[o++] = '.';
    assert_int_equal(sm_b64url_encode(p, strlen(p), tok + o, sizeof tok - o, &n), 0);
    o += n;
    tok[o++] = '.';
    tok[o] = '\0';
    assert_int_equal(why_of(tok, NOW), SM_JWT_MALFORMED);
}

/* ---- signature and structure ---- */

static void test_wrong_secret_and_tampering(void **state)
{
    (void)state;
    static const uint8_t other[] = "0123456789abcdef0123456789abcdef-test-secreT";
    char tok[512], evil[600];
    char *dot1, *dot2;

    assert_int_equal(sm_jwt_sign_hs256("{\"sub\":\"alice\",\"exp\":1700000100}", other,
                                       sizeof other - 1, tok, sizeof tok),
                     0);
    assert_int_equal(why_of(tok, NOW), SM_JWT_BAD_SIGNATURE);

    assert_int_equal(sm_jwt_sign_hs256("{\"sub\":\"alice\",\"exp\":1700000100}", secret, SECRET_LEN,
                                       tok, sizeof tok),
                     0);
    assert_int_equal(why_of(tok, NOW), SM_JWT_OK);

    /* Payload swapped for mallory's, signature kept. */
    assert_int_equal(sm_jwt_sign_hs256("{\"sub\":\"mallory\",\"exp\":1700000100}", other,
                                       sizeof other - 1, evil, sizeof evil),
                     0);
    dot1 = strchr(tok, '.');
    dot2 = strchr(dot1 + 1, '.');
    char *edot1 = strchr(evil, '.'), *edot2 = strchr(edot1 + 1, '.');
    char mixed[512];
    snprintf(mixed, sizeof mixed, "%.*s%.*s%s", (int)(dot1 - tok + 1), tok,
             (int)(edot2 - edot1 - 1), edot1 + 1, dot2);
    assert_int_equal(why_of(mixed, NOW), SM_JWT_BAD_SIGNATURE);

    /* One payload character flipped (still valid base64url). */
    strcpy(evil, tok);
    evil[dot1 - tok + 3] = evil[dot1 - tok + 3] == 'A' ? 'B' : 'A';
    assert_int_equal(why_of(evil, NOW), SM_JWT_BAD_SIGNATURE);

    /* One signature character flipped. */
    strcpy(evil, tok);
    evil[dot2 - tok + 5] = evil[dot2 - tok + 5] == 'A' ? 'B' : 'A';
    assert_int_equal(why_of(evil, NOW), SM_JWT_BAD_SIGNATURE);

    /* Signature truncated or extended. */
    strcpy(evil, tok);
    evil[strlen(evil) - 1] = '\0';
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    snprintf(evil, sizeof evil, "%sA", tok);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
}

static void test_bad_structure(void **state)
{
    (void)state;
    char tok[512], evil[600];
    assert_int_equal(sm_jwt_sign_hs256("{\"sub\":\"alice\",\"exp\":1700000100}", secret, SECRET_LEN,
                                       tok, sizeof tok),
                     0);
    char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');

    /* Two segments. */
    snprintf(evil, sizeof evil, "%.*s", (int)(dot2 - tok), tok);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    /* Four segments. */
    snprintf(evil, sizeof evil, "%s.%s", tok, dot2 + 1);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    snprintf(evil, sizeof evil, "%s.", tok);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    /* Empty header or payload segment. */
    snprintf(evil, sizeof evil, "%s", dot1);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    snprintf(evil, sizeof evil, "%.*s.%s", (int)(dot1 - tok), tok, dot2);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    assert_int_equal(why_of("..", NOW), SM_JWT_MALFORMED);
    assert_int_equal(why_of("", NOW), SM_JWT_MALFORMED);
    assert_int_equal(why_of("not-a-jwt", NOW), SM_JWT_MALFORMED);
    /* Padding and characters outside base64url, in each segment. */
    snprintf(evil, sizeof evil, "%.*s=%s", (int)(dot1 - tok), tok, dot1);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    snprintf(evil, sizeof evil, "%.*s==%s", (int)(dot2 - tok), tok, dot2);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    snprintf(evil, sizeof evil, "%s=", tok);
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    strcpy(evil, tok);
    evil[2] = '+';
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    strcpy(evil, tok);
    evil[dot1 - tok + 2] = '/';
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    strcpy(evil, tok);
    evil[dot2 - tok + 2] = ' ';
    assert_int_equal(why_of(evil, NOW), SM_JWT_MALFORMED);
    /* NULL token. */
    assert_int_equal(sm_jwt_verify_hs256(NULL, 0, secret, SECRET_LEN, NOW, MAXLIFE, SKEW, NULL, 0),
                     SM_EAUTH);
}

static void test_length_limit(void **state)
{
    (void)state;
    /* Grow a padding claim until the signed token is exactly SM_JWT_MAX_LEN. */
    static char payload[SM_JWT_MAX_LEN], tok[SM_JWT_MAX_LEN + 64];
    size_t pad = 0;
    for (;;) {
        int n = snprintf(payload, sizeof payload,
                         "{\"sub\":\"a\",\"exp\":1700000100,\"p\":\"%0*d\"}", (int)pad, 0);
        assert_true(n > 0 && (size_t)n < sizeof payload);
        assert_int_equal(sm_jwt_sign_hs256(payload, secret, SECRET_LEN, tok, sizeof tok), 0);
        if (strlen(tok) >= SM_JWT_MAX_LEN) {
            break;
        }
        pad++;
    }
    /* The token is 81 + base64(payload) characters and base64 lengths take
     * every value except 1 mod 4; 8192 - 81 = 8111 is 3 mod 4, so the loop
     * lands on the limit exactly. */
    assert_int_equal(strlen(tok), SM_JWT_MAX_LEN);
    assert_int_equal(why_of(tok, NOW), SM_JWT_OK);
    /* One more padding character: over the limit. */
    pad++;
    snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"exp\":1700000100,\"p\":\"%0*d\"}", (int)pad,
             0);
    assert_int_equal(sm_jwt_sign_hs256(payload, secret, SECRET_LEN, tok, sizeof tok), 0);
    assert_true(strlen(tok) > SM_JWT_MAX_LEN);
    assert_int_equal(why_of(tok, NOW), SM_JWT_MALFORMED);
}

static void test_sign_capacity(void **state)
{
    (void)state;
    char tok[512];
    const char *p = "{\"sub\":\"a\",\"exp\":1}";
    assert_int_equal(sm_jwt_sign_hs256(p, secret, SECRET_LEN, tok, sizeof tok), 0);
    size_t need = strlen(tok) + 1;
    char small[512];
    memset(small, 'x', sizeof small);
    assert_int_equal(sm_jwt_sign_hs256(p, secret, SECRET_LEN, small, need - 1), SM_ETOOBIG);
    assert_string_equal(small, "");
    assert_int_equal(sm_jwt_sign_hs256(p, secret, SECRET_LEN, small, need), 0);
    assert_string_equal(small, tok);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(sm_jwt_reason_name(SM_JWT_OK), "ok");
    assert_string_equal(sm_jwt_reason_name(SM_JWT_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(sm_jwt_reason_name(SM_JWT_LIFETIME_TOO_LONG), "lifetime_too_long");
    assert_string_equal(sm_jwt_reason_name((sm_jwt_reason_t)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_rfc4648_vectors),
        cmocka_unit_test(test_b64url_rejects),
        cmocka_unit_test(test_b64url_capacity),
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_known_answer_node),
        cmocka_unit_test(test_known_answer_rfc7515),
        cmocka_unit_test(test_exp_boundary),
        cmocka_unit_test(test_nbf_boundary),
        cmocka_unit_test(test_lifetime_boundary),
        cmocka_unit_test(test_claims_shape),
        cmocka_unit_test(test_sub_limits),
        cmocka_unit_test(test_header_alg),
        cmocka_unit_test(test_alg_none_unsigned),
        cmocka_unit_test(test_wrong_secret_and_tampering),
        cmocka_unit_test(test_bad_structure),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_sign_capacity),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
