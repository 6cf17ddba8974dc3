/*
 * RS256 signing (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3) with
 * mbedTLS, and the compact JWS built from it: the assertions a Google
 * service-account key signs for the OAuth token endpoint
 * (reference/cloud-apis.md §4.2).
 *
 * Owns one parsed RSA private key and a CTR-DRBG seeded from the OS entropy
 * source (mbedTLS blinds every RSA private operation with it).
 *
 * Threads: sm_rs256_new and sm_rs256_free from any thread.  Signing mutates
 * the key's blinding values and the DRBG, so one key must not sign on two
 * threads at once: the caller serialises sm_rs256_sign / sm_rs256_jwt on a
 * key (gcreds does it under its cache mutex).  Different keys are
 * independent.  Key material never reaches the log or error texts.
 */
#ifndef SM_CLOUD_RS256_H
#define SM_CLOUD_RS256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sm_rs256_s sm_rs256_t;

/* Smallest RSA modulus accepted, bits.  Google issues 2048-bit keys;
 * anything shorter is no longer considered safe (NIST SP 800-131A). */
#define SM_RS256_MIN_BITS 2048
/* Largest signature we produce (RSA-8192 bytes): caller buffer size that
 * always fits. */
#define SM_RS256_MAX_SIG 1024

/*
 * Parse a PEM private key: PKCS#8 "BEGIN PRIVATE KEY" (what Google key files
 * hold) or PKCS#1 "BEGIN RSA PRIVATE KEY", unencrypted.  pem need not be
 * NUL-terminated; pem_len excludes any NUL.  The caller keeps pem (it is
 * copied and the copy wiped).
 * Returns 0 with *out owned by the caller (free with sm_rs256_free), or
 * SM_EINVAL with a short reason in err ("not a PEM private key", "not an
 * RSA key", "RSA key too small: 1024 bits, need at least 2048"), or
 * SM_EINTERNAL when the DRBG cannot be seeded.  *out is NULL on error.
 */
int sm_rs256_new(const char *pem, size_t pem_len, sm_rs256_t **out, char *err, size_t errlen);
/* Wipe and free the key.  NULL is allowed. */
void sm_rs256_free(sm_rs256_t *k);
/* Modulus size in bits. */
size_t sm_rs256_bits(const sm_rs256_t *k);

/*
 * RS256 signature of msg (SHA-256, then PKCS#1 v1.5) into sig (cap bytes).
 * Returns 0 with *sig_len = modulus bytes; SM_ETOOBIG when cap is smaller
 * than that; SM_EINTERNAL when mbedTLS fails.
 */
int sm_rs256_sign(sm_rs256_t *k, const void *msg, size_t len, uint8_t *sig, size_t cap,
                  size_t *sig_len);

/*
 * Compact JWS: base64url(header_json) "." base64url(claims_json) "."
 * base64url(RS256 signature of the first two parts), unpadded.  Both JSON
 * texts are used verbatim (the caller builds them).  Returns 0 with *out a
 * NUL-terminated string owned by the caller (free()), or SM_EINTERNAL
 * (*out NULL).
 */
int sm_rs256_jwt(sm_rs256_t *k, const char *header_json, const char *claims_json, char **out);

#endif
