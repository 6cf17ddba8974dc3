/*
 * RS256 with mbedTLS 2.28: parse the PEM once into a pk context, sign with
 * mbedtls_pk_sign (PKCS#1 v1.5 padding is the pk default for RSA keys),
 * blinding from a CTR-DRBG owned by the key.  The JWS assembly reuses the
 * base64url codec of auth/jwt.h.
 */
#include "cloud/rs256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

#include "auth/jwt.h"
#include "core/alloc.h"
#include "core/assert.h"
#include "core/err.h"

struct sm_rs256_s {
    mbedtls_pk_context pk;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
};

/* Personalisation string for the DRBG (any constant; it separates this
 * DRBG's stream from others seeded from the same entropy). */
static const unsigned char drbg_pers[] = "signal-manager rs256";

int sm_rs256_new(const char *pem, size_t pem_len, sm_rs256_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sm_rs256_t *k = SM_NEW(sm_rs256_t);
    mbedtls_pk_init(&k->pk);
    mbedtls_entropy_init(&k->entropy);
    mbedtls_ctr_drbg_init(&k->drbg);

    /* mbedTLS wants PEM NUL-terminated, with the NUL counted in the length. */
    char *copy = sm_xmalloc(pem_len + 1);
    memcpy(copy, pem, pem_len);
    copy[pem_len] = '\0';
    int rc = mbedtls_pk_parse_key(&k->pk, (const unsigned char *)copy, pem_len + 1, NULL, 0);
    mbedtls_platform_zeroize(copy, pem_len + 1);
    free(copy);
    if (rc != 0) {
        char why[128];
        mbedtls_strerror(rc, why, sizeof why);
        snprintf(err, errlen, "not a PEM private key (%s)", why);
        goto fail;
    }
    if (mbedtls_pk_get_type(&k->pk) != MBEDTLS_PK_RSA) {
        snprintf(err, errlen, "not an RSA key (%s)", mbedtls_pk_get_name(&k->pk));
        goto fail;
    }
    size_t bits = mbedtls_pk_get_bitlen(&k->pk);
    if (bits < SM_RS256_MIN_BITS) {
        snprintf(err, errlen, "RSA key too small: %zu bits, need at least %d", bits,
                 SM_RS256_MIN_BITS);
        goto fail;
    }
    if ((bits + 7) / 8 > SM_RS256_MAX_SIG) {
        snprintf(err, errlen, "RSA key too large: %zu bits", bits);
        goto fail;
    }
    rc = mbedtls_ctr_drbg_seed(&k->drbg, mbedtls_entropy_func, &k->entropy, drbg_pers,
                               sizeof drbg_pers - 1);
    if (rc != 0) {
        snprintf(err, errlen, "cannot seed the random generator");
        sm_rs256_free(k);
        return SM_EINTERNAL;
    }
    *out = k;
    return 0;

fail:
    sm_rs256_free(k);
    return SM_EINVAL;
}

void sm_rs256_free(sm_rs256_t *k)
{
    if (k == NULL)
        return;
    mbedtls_pk_free(&k->pk); /* zeroizes the key */
    mbedtls_ctr_drbg_free(&k->drbg);
    mbedtls_entropy_free(&k->entropy);
    free(k);
}

size_t sm_rs256_bits(const sm_rs256_t *k)
{
    return mbedtls_pk_get_bitlen(&k->pk);
}

int sm_rs256_sign(sm_rs256_t *k, const void *msg, size_t len, uint8_t *sig, size_t cap,
                  size_t *sig_len)
{
    unsigned char hash[32];
    size_t need = mbedtls_pk_get_len(&k->pk);
    if (cap < need)
        return SM_ETOOBIG;
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    SM_ASSERT(md != NULL);
    if (mbedtls_md(md, msg, len, hash) != 0)
        return SM_EINTERNAL;
    size_t n = 0;
    int rc = mbedtls_pk_sign(&k->pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, &n,
                             mbedtls_ctr_drbg_random, &k->drbg);
    if (rc != 0 || n != need)
        return SM_EINTERNAL;
    *sig_len = n;
    return 0;
}

int sm_rs256_jwt(sm_rs256_t *k, const char *header_json, const char *claims_json, char **out)
{
    size_t hlen = strlen(header_json), clen = strlen(claims_json);
    size_t siglen_b64 = SM_B64URL_ENCODED_LEN(mbedtls_pk_get_len(&k->pk));
    size_t cap = SM_B64URL_ENCODED_LEN(hlen) + 1 + SM_B64URL_ENCODED_LEN(clen) + 1 + siglen_b64 + 1;
    char *s = sm_xmalloc(cap);
    size_t o = 0, n = 0;
    uint8_t sig[SM_RS256_MAX_SIG];
    size_t slen = 0;

    *out = NULL;
    /* cap was computed from the same lengths, so the encodes cannot fail. */
    int rc = sm_b64url_encode(header_json, hlen, s, cap, &n);
    SM_ASSERT(rc == 0);
    o += n;
    s[o++] = '.';
    rc = sm_b64url_encode(claims_json, clen, s + o, cap - o, &n);
    SM_ASSERT(rc == 0);
    o += n;
    if (sm_rs256_sign(k, s, o, sig, sizeof sig, &slen) != 0) {
        free(s);
        return SM_EINTERNAL;
    }
    s[o++] = '.';
    rc = sm_b64url_encode(sig, slen, s + o, cap - o, &n);
    SM_ASSERT(rc == 0);
    o += n;
    SM_ASSERT(o + 1 == cap);
    *out = s;
    return 0;
}
