/*
 * HS256 JSON Web Tokens and the unpadded base64url codec.
 *
 * Verification works on the caller's bytes: the length is bounded first
 * (SM_JWT_MAX_LEN), the three segments are located and decoded into one
 * buffer sized from that bound, the header is checked (alg pinned to HS256,
 * so "none" and algorithm confusion are impossible), the HMAC is compared in
 * constant time, and only then is the payload parsed and its claims checked.
 * jansson parses with JSON_REJECT_DUPLICATES so a payload cannot carry two
 * "sub" or "exp" members that different JWT libraries would read differently.
 * No state: everything lives on the stack or in the one temporary buffer.
 */
#include "auth/jwt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"

#define HS256_LEN 32
#define HS256_B64_LEN 43 /* SM_B64URL_ENCODED_LEN(32) */

/* Claims are clamped to +-2^61, and now, skew and the lifetime are asserted
 * to lie within it, so a sum or difference of any two stays within +-2^62,
 * well inside int64_t.  2^61 s is far beyond any real date. */
#define TIME_CLAMP ((int64_t)1 << 61)

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63 for alphabet characters, 0xff otherwise. */
static uint8_t b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return (uint8_t)(c - 'A');
    }
    if (c >= 'a' && c <= 'z') {
        return (uint8_t)(c - 'a' + 26);
    }
    if (c >= '0' && c <= '9') {
        return (uint8_t)(c - '0' + 52);
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return 0xff;
}

int sm_b64url_encode(const void *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    const uint8_t *p = in;
    size_t need = SM_B64URL_ENCODED_LEN(len);
    size_t o = 0;

    if (cap < need + 1) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return SM_ETOOBIG;
    }
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    SM_ASSERT(o == need);
    out[o] = '\0';
    if (out_len) {
        *out_len = o;
    }
    return 0;
}

int sm_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len % 4 == 1) {
        return SM_EINVAL; /* 6 bits cannot make a byte */
    }
    if (cap < SM_B64URL_DECODED_MAX(len)) {
        return SM_ETOOBIG;
    }
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t v = b64url_value((unsigned char)in[i]);
        if (v == 0xff) {
            return SM_EINVAL;
        }
        acc = (acc << 6 | v) & 0xffffff; /* at most 12 live bits + 6 new */
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Left-over bits (2 or 4) must be zero: one encoding per byte string. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return SM_EINVAL;
    }
    SM_ASSERT(o == SM_B64URL_DECODED_MAX(len));
    if (out_len) {
        *out_len = o;
    }
    return 0;
}

const char *sm_jwt_reason_name(sm_jwt_reason_t r)
{
    switch (r) {
    case SM_JWT_OK:
        return "ok";
    case SM_JWT_MALFORMED:
        return "malformed";
    case SM_JWT_BAD_ALG:
        return "bad_alg";
    case SM_JWT_BAD_SIGNATURE:
        return "bad_signature";
    case SM_JWT_EXPIRED:
        return "expired";
    case SM_JWT_NOT_YET_VALID:
        return "not_yet_valid";
    case SM_JWT_LIFETIME_TOO_LONG:
        return "lifetime_too_long";
    case SM_JWT_MISSING_CLAIM:
        return "missing_claim";
    }
    return "unknown";
}

static bool json_str_is(const json_t *v, const char *want)
{
    size_t n = strlen(want);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), want, n) == 0;
}

/* A JSON number as whole seconds, clamped to +-TIME_CLAMP.  Fractions round
 * down (round_up false) or up. */
static int64_t json_time(const json_t *v, bool round_up)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i > TIME_CLAMP) {
            return TIME_CLAMP;
        }
        if (i < -TIME_CLAMP) {
            return -TIME_CLAMP;
        }
        return (int64_t)i;
    }
    double d = json_real_value(v); /* jansson never produces NaN or inf */
    if (d >= (double)TIME_CLAMP) {
        return TIME_CLAMP;
    }
    if (d <= -(double)TIME_CLAMP) {
        return -TIME_CLAMP;
    }
    int64_t t = (int64_t)d; /* truncates towards zero */
    if (!round_up && (double)t > d) {
        t--;
    } else if (round_up && (double)t < d) {
        t++;
    }
    return t;
}

/* Header rules: alg exactly HS256, typ absent or "JWT", no crit. */
static sm_jwt_reason_t check_header(const uint8_t *buf, size_t len)
{
    /* The headers JWT libraries write, byte for byte: accepted without a
     * jansson tree (a visible share of a CONNECT's cost).  Anything else
     * takes the general check below. */
    static const char *const common[] = {
        "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
        "{\"typ\":\"JWT\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\"}",
    };
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        if (len == strlen(common[i]) && memcmp(buf, common[i], len) == 0)
            return SM_JWT_OK;
    }
    json_error_t jerr;
    json_t *h = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    sm_jwt_reason_t r = SM_JWT_OK;

    if (!json_is_object(h)) {
        r = SM_JWT_MALFORMED;
    } else if (!json_str_is(json_object_get(h, "alg"), "HS256")) {
        r = SM_JWT_BAD_ALG;
    } else {
        const json_t *typ = json_object_get(h, "typ");
        if ((typ && !json_str_is(typ, "JWT")) || json_object_get(h, "crit")) {
            r = SM_JWT_BAD_ALG;
        }
    }
    json_decref(h);
    return r;
}

/* Payload rules (see jwt.h).  sub is copied into sub_out on success only. */
static sm_jwt_reason_t check_claims(const uint8_t *buf, size_t len, int64_t now, int64_t max_life,
                                    int64_t skew, char *sub_out, size_t sub_cap)
{
    json_error_t jerr;
    json_t *p = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    sm_jwt_reason_t r = SM_JWT_OK;

    if (!json_is_object(p)) {
        r = SM_JWT_MALFORMED;
        goto out;
    }
    const json_t *sub = json_object_get(p, "sub");
    const json_t *exp = json_object_get(p, "exp");
    const json_t *iat = json_object_get(p, "iat");
    const json_t *nbf = json_object_get(p, "nbf");
    if (!json_is_string(sub) || !json_is_number(exp) || (iat && !json_is_number(iat)) ||
        (nbf && !json_is_number(nbf))) {
        r = SM_JWT_MISSING_CLAIM;
        goto out;
    }
    size_t sub_len = json_string_length(sub);
    const char *sub_s = json_string_value(sub);
    if (sub_len == 0 || memchr(sub_s, '\0', sub_len) || (sub_out && sub_len >= sub_cap)) {
        r = SM_JWT_MISSING_CLAIM;
        goto out;
    }

    int64_t exp_s = json_time(exp, false);
    if (exp_s <= now - skew) {
        r = SM_JWT_EXPIRED;
        goto out;
    }
    if (nbf && json_time(nbf, true) > now + skew) {
        r = SM_JWT_NOT_YET_VALID;
        goto out;
    }
    if (iat) {
        int64_t iat_s = json_time(iat, false);
        if (iat_s > now + skew) {
            r = SM_JWT_NOT_YET_VALID;
            goto out;
        }
        if (exp_s - iat_s > max_life) {
            r = SM_JWT_LIFETIME_TOO_LONG;
            goto out;
        }
    } else if (exp_s - now > max_life + skew) {
        r = SM_JWT_LIFETIME_TOO_LONG;
        goto out;
    }
    if (sub_out) {
        memcpy(sub_out, sub_s, sub_len + 1);
    }
out:
    json_decref(p);
    return r;
}

static sm_jwt_reason_t verify(const char *token, size_t token_len, const uint8_t *secret,
                              size_t secret_len, int64_t now, int64_t max_life, int64_t skew,
                              char *sub_out, size_t sub_cap)
{
    if (!token || token_len == 0 || token_len > SM_JWT_MAX_LEN) {
        return SM_JWT_MALFORMED;
    }
    const char *dot1 = memchr(token, '.', token_len);
    if (!dot1) {
        return SM_JWT_MALFORMED;
    }
    const char *end = token + token_len;
    const char *dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1))) {
        return SM_JWT_MALFORMED; /* two, or four and more, segments */
    }
    size_t hlen = (size_t)(dot1 - token);
    size_t plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = (size_t)(end - dot2 - 1);
    if (hlen == 0 || plen == 0 || slen != HS256_B64_LEN) {
        return SM_JWT_MALFORMED;
    }

    /* Bounded by SM_JWT_MAX_LEN above: at most 6 KiB. */
    size_t hcap = SM_B64URL_DECODED_MAX(hlen), pcap = SM_B64URL_DECODED_MAX(plen);
    uint8_t *buf = sm_xmalloc(hcap + pcap);
    uint8_t sig[HS256_LEN], mac[HS256_LEN];
    size_t hn, pn, sn;
    sm_jwt_reason_t r;

    if (sm_b64url_decode(token, hlen, buf, hcap, &hn) != 0 ||
        sm_b64url_decode(dot1 + 1, plen, buf + hcap, pcap, &pn) != 0 ||
        sm_b64url_decode(dot2 + 1, slen, sig, sizeof sig, &sn) != 0 || sn != HS256_LEN) {
        r = SM_JWT_MALFORMED;
        goto out;
    }
    r = check_header(buf, hn);
    if (r != SM_JWT_OK) {
        goto out;
    }
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    SM_ASSERT(md != NULL);
    if (mbedtls_md_hmac(md, secret, secret_len, (const unsigned char *)token,
                        (size_t)(dot2 - token), mac) != 0) {
        r = SM_JWT_BAD_SIGNATURE; /* cannot happen with a valid md; fail closed */
        goto out;
    }
    if (mbedtls_ct_memcmp(mac, sig, HS256_LEN) != 0) {
        r = SM_JWT_BAD_SIGNATURE;
        goto out;
    }
    r = check_claims(buf + hcap, pn, now, max_life, skew, sub_out, sub_cap);
out:
    mbedtls_platform_zeroize(mac, sizeof mac);
    free(buf);
    return r;
}

int sm_jwt_verify_hs256_ex(const char *token, size_t token_len, const uint8_t *secret,
                           size_t secret_len, int64_t now_s, int64_t max_lifetime_s, int64_t skew_s,
                           char *sub_out, size_t sub_cap, sm_jwt_reason_t *why)
{
    /* Caller bugs, not peer input: bounds that keep the time arithmetic exact. */
    SM_ASSERT(now_s > -TIME_CLAMP && now_s < TIME_CLAMP);
    SM_ASSERT(max_lifetime_s >= 0 && max_lifetime_s < TIME_CLAMP);
    SM_ASSERT(skew_s >= 0 && skew_s < TIME_CLAMP);
    SM_ASSERT(secret != NULL || secret_len == 0);
    SM_ASSERT(sub_out != NULL || sub_cap == 0);

    if (sub_out) {
        sub_out[0] = '\0';
    }
    sm_jwt_reason_t r = verify(token, token_len, secret, secret_len, now_s, max_lifetime_s, skew_s,
                               sub_out, sub_cap);
    if (why) {
        *why = r;
    }
    return r == SM_JWT_OK ? 0 : SM_EAUTH;
}

int sm_jwt_verify_hs256(const char *token, size_t token_len, const uint8_t *secret,
                        size_t secret_len, int64_t now_s, int64_t max_lifetime_s, int64_t skew_s,
                        char *sub_out, size_t sub_cap)
{
    return sm_jwt_verify_hs256_ex(token, token_len, secret, secret_len, now_s, max_lifetime_s,
                                  skew_s, sub_out, sub_cap, NULL);
}

int sm_jwt_sign_hs256(const char *payload_json, const uint8_t *secret, size_t secret_len, char *out,
                      size_t cap)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t plen = strlen(payload_json);
    size_t hlen_b64 = SM_B64URL_ENCODED_LEN(sizeof header - 1);
    size_t need = hlen_b64 + 1 + SM_B64URL_ENCODED_LEN(plen) + 1 + HS256_B64_LEN + 1;
    size_t o = 0, n;
    uint8_t mac[HS256_LEN];

    SM_ASSERT(secret != NULL || secret_len == 0);
    if (cap < need) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return SM_ETOOBIG;
    }
    /* need was checked above, so the encodes cannot fail. */
    int rc = sm_b64url_encode(header, sizeof header - 1, out, cap, &n);
    SM_ASSERT(rc == 0);
    o += n;
    out[o++] = '.';
    rc = sm_b64url_encode(payload_json, plen, out + o, cap - o, &n);
    SM_ASSERT(rc == 0);
    o += n;
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    SM_ASSERT(md != NULL);
    if (mbedtls_md_hmac(md, secret, secret_len, (const unsigned char *)out, o, mac) != 0) {
        out[0] = '\0';
        return SM_EINTERNAL;
    }
    out[o++] = '.';
    rc = sm_b64url_encode(mac, sizeof mac, out + o, cap - o, &n);
    SM_ASSERT(rc == 0);
    o += n;
    SM_ASSERT(o + 1 == need);
    mbedtls_platform_zeroize(mac, sizeof mac);
    return 0;
}
