/*
 * Fuzz target: HS256 JSON Web Token verification and the base64url codec
 * (src/auth/jwt.c).  Tokens come from peers (CONNECT auth_token with the jwt
 * method) and are parsed before anything is known about the sender.
 *
 * Byte 0 picks a mode, the rest is its input:
 *   0  the rest is a token, verified as it is (the fuzzer cannot forge an
 *      HMAC, so this mostly exercises the parsing before the signature);
 *   1  byte 1 is a header length h; the rest is h bytes of header JSON and
 *      the payload JSON, encoded and signed with the test secret, so the
 *      header and claim rules are reached.  Checked against jansson: a
 *      correctly signed token is never BAD_SIGNATURE, is MALFORMED only when
 *      a part is not a JSON object (or empty, or the token too long), and on
 *      success its sub and exp obey the documented rules;
 *   2  the rest is base64url text: a successful decode re-encodes to the same
 *      text (one encoding per byte string), and the rest as bytes encodes and
 *      decodes back;
 *   3  the rest is a payload for sm_jwt_sign_hs256, whose token must verify
 *      or fail on claims only.
 */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>
#include <mbedtls/md.h>

#include "auth/jwt.h"
#include "core/err.h"
#include "fuzz.h"

static const uint8_t secret[] = "fuzz-secret-0123456789abcdef-0123456789";
#define SECRET_LEN (sizeof secret - 1)
#define NOW 1700000000
#define MAX_LIFE 3600

FUZZ_INITIALIZE_QUIET()

static int verify(const char *tok, size_t len, char *sub, size_t cap, sm_jwt_reason_t *why)
{
    int rc = sm_jwt_verify_hs256_ex(tok, len, secret, SECRET_LEN, NOW, MAX_LIFE, SM_JWT_SKEW_S, sub,
                                    cap, why);
    FUZZ_CHECK(rc == 0 || rc == SM_EAUTH);
    FUZZ_CHECK((rc == 0) == (*why == SM_JWT_OK));
    FUZZ_CHECK(*why >= SM_JWT_OK && *why <= SM_JWT_MISSING_CLAIM);
    FUZZ_CHECK(strcmp(sm_jwt_reason_name(*why), "unknown") != 0);
    if (cap > 0) {
        FUZZ_CHECK(strnlen(sub, cap) < cap);
        FUZZ_CHECK(rc == 0 ? sub[0] != '\0' : sub[0] == '\0');
    }
    /* The plain variant, without a sub buffer, agrees (a sub too long for
     * our buffer is the one thing it does not check). */
    int rc2 =
        sm_jwt_verify_hs256(tok, len, secret, SECRET_LEN, NOW, MAX_LIFE, SM_JWT_SKEW_S, NULL, 0);
    if (rc == 0 || *why != SM_JWT_MISSING_CLAIM)
        FUZZ_CHECK(rc2 == rc);
    return rc;
}

/* JSON text -> object, as jwt.c reads it; NULL when not an object. */
static json_t *as_object(const uint8_t *p, size_t n)
{
    json_error_t e;
    json_t *v = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &e);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static void check_success(const json_t *payload, const char *sub)
{
    const json_t *s = json_object_get(payload, "sub");
    FUZZ_CHECK(json_is_string(s) && strcmp(json_string_value(s), sub) == 0);
    const json_t *exp = json_object_get(payload, "exp");
    FUZZ_CHECK(json_is_number(exp));
    FUZZ_CHECK(json_number_value(exp) > (double)(NOW - SM_JWT_SKEW_S) - 1.0);
    const json_t *iat = json_object_get(payload, "iat");
    const json_t *nbf = json_object_get(payload, "nbf");
    FUZZ_CHECK(iat == NULL || json_is_number(iat));
    FUZZ_CHECK(nbf == NULL || json_is_number(nbf));
    if (nbf)
        FUZZ_CHECK(json_number_value(nbf) <= (double)(NOW + SM_JWT_SKEW_S));
    if (iat)
        FUZZ_CHECK(json_number_value(iat) < (double)(NOW + SM_JWT_SKEW_S) + 1.0);
    else
        FUZZ_CHECK(json_number_value(exp) < (double)(NOW + MAX_LIFE + SM_JWT_SKEW_S) + 1.0);
}

static void mode_raw(const uint8_t *p, size_t n)
{
    char sub[64];
    sm_jwt_reason_t why;
    (void)verify((const char *)p, n, sub, sizeof sub, &why);
    /* Any length of secret and no sub buffer are fine too. */
    (void)sm_jwt_verify_hs256_ex((const char *)p, n, NULL, 0, 0, 0, 0, NULL, 0, &why);
}

static char *b64(const uint8_t *p, size_t n)
{
    size_t cap = SM_B64URL_ENCODED_LEN(n) + 1;
    char *out = malloc(cap);
    size_t w = 0;
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(sm_b64url_encode(p, n, out, cap, &w) == 0);
    FUZZ_CHECK(w == cap - 1 && strlen(out) == w);
    return out;
}

static void mode_signed(const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    size_t hl = p[0] < n - 1 ? p[0] : n - 1;
    const uint8_t *hdr = p + 1, *pay = p + 1 + hl;
    size_t pl = n - 1 - hl;

    char *h64 = b64(hdr, hl), *p64 = b64(pay, pl);
    size_t signed_len = strlen(h64) + 1 + strlen(p64);
    size_t tok_len = signed_len + 1 + 43;
    char *tok = malloc(tok_len + 1);
    FUZZ_CHECK(tok != NULL);
    snprintf(tok, tok_len + 1, "%s.%s", h64, p64);
    uint8_t mac[32];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    FUZZ_CHECK(
        mbedtls_md_hmac(md, secret, SECRET_LEN, (const unsigned char *)tok, signed_len, mac) == 0);
    tok[signed_len] = '.';
    FUZZ_CHECK(sm_b64url_encode(mac, sizeof mac, tok + signed_len + 1, 44, NULL) == 0);

    char sub[64];
    sm_jwt_reason_t why;
    int rc = verify(tok, tok_len, sub, sizeof sub, &why);
    json_t *hj = as_object(hdr, hl), *pj = as_object(pay, pl);
    FUZZ_CHECK(why != SM_JWT_BAD_SIGNATURE);
    bool shape_ok = hl > 0 && pl > 0 && tok_len <= SM_JWT_MAX_LEN && hj != NULL;
    if (why == SM_JWT_MALFORMED)
        FUZZ_CHECK(!shape_ok || pj == NULL);
    else
        FUZZ_CHECK(shape_ok);
    if (rc == 0) {
        FUZZ_CHECK(pj != NULL);
        const json_t *alg = json_object_get(hj, "alg");
        FUZZ_CHECK(json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0);
        FUZZ_CHECK(json_object_get(hj, "crit") == NULL);
        check_success(pj, sub);
    }
    /* A wrong secret is always refused; a changed signature too. */
    sm_jwt_reason_t why2;
    FUZZ_CHECK(sm_jwt_verify_hs256_ex(tok, tok_len, secret, SECRET_LEN - 1, NOW, MAX_LIFE,
                                      SM_JWT_SKEW_S, NULL, 0, &why2) != 0);
    tok[tok_len - 2] = tok[tok_len - 2] == 'A' ? 'B' : 'A';
    FUZZ_CHECK(sm_jwt_verify_hs256_ex(tok, tok_len, secret, SECRET_LEN, NOW, MAX_LIFE,
                                      SM_JWT_SKEW_S, NULL, 0, &why2) != 0);
    json_decref(hj);
    json_decref(pj);
    free(h64);
    free(p64);
    free(tok);
}

static void mode_b64(const uint8_t *p, size_t n)
{
    size_t cap = SM_B64URL_DECODED_MAX(n);
    uint8_t *out = malloc(cap ? cap : 1);
    FUZZ_CHECK(out != NULL);
    size_t w = 0;
    int rc = sm_b64url_decode((const char *)p, n, out, cap, &w);
    FUZZ_CHECK(rc == 0 || rc == SM_EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(w == cap);
        char *again = b64(out, w);
        FUZZ_CHECK(strlen(again) == n && memcmp(again, p, n) == 0);
        free(again);
        if (cap > 0)
            FUZZ_CHECK(sm_b64url_decode((const char *)p, n, out, cap - 1, &w) == SM_ETOOBIG);
    }
    free(out);

    /* Bytes -> text -> bytes. */
    char *text = b64(p, n);
    size_t tl = strlen(text);
    uint8_t *back = malloc(n ? n : 1);
    FUZZ_CHECK(back != NULL);
    FUZZ_CHECK(sm_b64url_decode(text, tl, back, n, &w) == 0);
    FUZZ_CHECK(w == n && (n == 0 || memcmp(back, p, n) == 0));
    char small[8];
    if (tl + 1 > sizeof small)
        FUZZ_CHECK(sm_b64url_encode(p, n, small, sizeof small, NULL) == SM_ETOOBIG &&
                   small[0] == '\0');
    free(back);
    free(text);
}

static void mode_sign(const uint8_t *p, size_t n)
{
    char *payload = fuzz_strndup(p, n);
    size_t plen = strlen(payload);
    /* {"alg":"HS256","typ":"JWT"} is 27 bytes. */
    size_t cap = SM_B64URL_ENCODED_LEN(27) + 1 + SM_B64URL_ENCODED_LEN(plen) + 1 + 43 + 1;
    char *tok = malloc(cap);
    FUZZ_CHECK(tok != NULL);
    FUZZ_CHECK(sm_jwt_sign_hs256(payload, secret, SECRET_LEN, tok, cap - 1) == SM_ETOOBIG);
    FUZZ_CHECK(sm_jwt_sign_hs256(payload, secret, SECRET_LEN, tok, cap) == 0);
    FUZZ_CHECK(strlen(tok) == cap - 1);
    char sub[64];
    sm_jwt_reason_t why;
    int rc = verify(tok, cap - 1, sub, sizeof sub, &why);
    FUZZ_CHECK(why != SM_JWT_BAD_SIGNATURE && why != SM_JWT_BAD_ALG);
    json_t *pj = as_object((const uint8_t *)payload, plen);
    if (why == SM_JWT_MALFORMED)
        FUZZ_CHECK(pj == NULL || plen == 0 || cap - 1 > SM_JWT_MAX_LEN);
    if (rc == 0)
        check_success(pj, sub);
    json_decref(pj);
    free(tok);
    free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] & 3) {
    case 0:
        mode_raw(data + 1, size - 1);
        break;
    case 1:
        mode_signed(data + 1, size - 1);
        break;
    case 2:
        mode_b64(data + 1, size - 1);
        break;
    default:
        mode_sign(data + 1, size - 1);
        break;
    }
    return 0;
}
