/*
 * JSON Web Tokens, HS256 only: verify (auth's jwt method), sign (tests and
 * signal-bench), and the unpadded base64url codec JWTs are made of (reused by
 * the Google-credentials code and the benchmark).
 *
 * Owns nothing and keeps no state: every function is pure apart from its
 * output buffers, so any thread may call any of them concurrently.  Inputs
 * are borrowed for the call.
 *
 * What sm_jwt_verify_hs256 accepts (everything else is SM_EAUTH):
 *   - at most SM_JWT_MAX_LEN bytes, checked before anything is allocated;
 *   - exactly three base64url segments (RFC 4648 §5, no '=' padding, no other
 *     characters, unused trailing bits zero);
 *   - header: a JSON object with "alg" exactly "HS256" ("none", "HS512",
 *     "RS256", a missing or non-string alg are refused), "typ", if present,
 *     exactly "JWT", and no "crit" (we understand no extensions, RFC 7515
 *     §4.1.11);
 *   - signature: HMAC-SHA256(secret, header_b64 "." payload_b64), compared in
 *     constant time; it is checked before the payload is parsed;
 *   - payload: a JSON object, duplicate keys refused, with
 *       "sub" a non-empty string without NUL that fits sub_out,
 *       "exp" a number (required), "iat" and "nbf" numbers (optional);
 *   - time rules, skew = SM_JWT_SKEW_S:
 *       exp >  now - skew                  (else expired)
 *       nbf <= now + skew                  (else not yet valid)
 *       iat <= now + skew                  (else not yet valid: a token "issued
 *                                           in the future" could otherwise run
 *                                           max_lifetime past that future iat)
 *       with iat:    exp - iat <= max_lifetime
 *       without iat: exp - now <= max_lifetime + skew   (else lifetime too long)
 *     Fractional times are rounded towards the stricter side (exp and iat
 *     down, nbf up); values are clamped to +-2^61 so the arithmetic cannot
 *     overflow (now_s, max_lifetime_s and skew_s must lie within it too).
 */
#ifndef SM_AUTH_JWT_H
#define SM_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Allowed clock difference between the token issuer and us, seconds
 * (DECISIONS §8). */
#define SM_JWT_SKEW_S 30

/* Longest token verify looks at.  Real HS256 tokens with a few claims are a
 * few hundred bytes; 8 KiB leaves room for large custom claims while bounding
 * what a peer makes us decode and parse. */
#define SM_JWT_MAX_LEN 8192

/* Why a token was refused, for logs and tests.  Callers that answer a peer
 * only look at the return code (always SM_EAUTH), so no reason leaks out. */
typedef enum {
    SM_JWT_OK = 0,
    SM_JWT_MALFORMED,         /* length, segments, base64url, JSON shape */
    SM_JWT_BAD_ALG,           /* alg not exactly HS256, typ not JWT, crit present */
    SM_JWT_BAD_SIGNATURE,     /* HMAC mismatch (wrong secret, tampered token) */
    SM_JWT_EXPIRED,           /* exp <= now - skew */
    SM_JWT_NOT_YET_VALID,     /* nbf or iat > now + skew */
    SM_JWT_LIFETIME_TOO_LONG, /* exp - iat (or exp - now) past the maximum */
    SM_JWT_MISSING_CLAIM,     /* sub or exp absent, wrong type, or sub too long */
} sm_jwt_reason_t;

/* Short lower-case name of a reason ("bad_signature"); never NULL. */
const char *sm_jwt_reason_name(sm_jwt_reason_t r);

/*
 * Verify an HS256 JWT (rules above) and copy its "sub" claim.
 *   token/token_len: the compact serialization, need not be NUL-terminated.
 *   secret/secret_len: the HMAC key (auth requires >= 32 bytes; this function
 *     accepts any length, including 0, so tests can probe it).
 *   now_s: current Unix time, seconds.  max_lifetime_s: longest allowed
 *     lifetime.  skew_s: allowed clock difference (normally SM_JWT_SKEW_S).
 *   sub_out/sub_cap: receives "sub" NUL-terminated; a sub of sub_cap bytes or
 *     more is refused (SM_JWT_MISSING_CLAIM).  sub_out may be NULL when
 *     sub_cap is 0: then only presence is checked.
 * Returns 0, or SM_EAUTH for every invalid token (sub_out then holds "").
 * The secret and the token never reach the log.
 */
int sm_jwt_verify_hs256(const char *token, size_t token_len, const uint8_t *secret,
                        size_t secret_len, int64_t now_s, int64_t max_lifetime_s, int64_t skew_s,
                        char *sub_out, size_t sub_cap);

/* The same, also storing why a token was refused in *why (SM_JWT_OK on
 * success).  why may be NULL. */
int sm_jwt_verify_hs256_ex(const char *token, size_t token_len, const uint8_t *secret,
                           size_t secret_len, int64_t now_s, int64_t max_lifetime_s, int64_t skew_s,
                           char *sub_out, size_t sub_cap, sm_jwt_reason_t *why);

/*
 * Sign payload_json (used verbatim, not validated: tests sign malformed
 * payloads on purpose) with header {"alg":"HS256","typ":"JWT"} and write the
 * NUL-terminated compact token to out.
 * Returns 0; SM_ETOOBIG when out (cap bytes including the NUL) is too small
 * (out then holds ""); SM_EINTERNAL if mbedTLS fails.
 */
int sm_jwt_sign_hs256(const char *payload_json, const uint8_t *secret, size_t secret_len, char *out,
                      size_t cap);

/* Characters of the unpadded base64url encoding of n bytes (no NUL). */
#define SM_B64URL_ENCODED_LEN(n) (((n) / 3) * 4 + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))
/* Upper bound of the bytes decoded from n characters. */
#define SM_B64URL_DECODED_MAX(n) (((n) / 4) * 3 + ((n) % 4 == 0 ? 0 : (n) % 4 - 1))

/*
 * Encode len bytes of in as unpadded base64url into out, NUL-terminated.
 * cap counts the NUL: it must be >= SM_B64URL_ENCODED_LEN(len) + 1.
 * Returns 0 (and *out_len = characters written, if out_len is not NULL) or
 * SM_ETOOBIG (out then holds "" when cap > 0).
 */
int sm_b64url_encode(const void *in, size_t len, char *out, size_t cap, size_t *out_len);

/*
 * Decode len characters of unpadded base64url.  Refuses '=', whitespace and
 * any character outside [A-Za-z0-9_-], a length of 1 mod 4, and non-zero
 * unused bits in the last character (so each byte string has one encoding).
 * Returns 0 with *out_len bytes written to out; SM_EINVAL for bad input;
 * SM_ETOOBIG when cap is smaller than the decoded size.  out is not
 * NUL-terminated.  On error its contents are unspecified.
 */
int sm_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

#endif
