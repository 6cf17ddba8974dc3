/*
 * Client authentication (DECISIONS §8): the CONNECT's client_id + auth_token,
 * and every payload auth_token, are checked by the methods listed in
 * auth.auth_method, in order, until one accepts.
 *
 *   token  auth.api_keys "client_id:token" pairs.  The tokens are kept only as
 *          SHA-256 digests; a presented token is hashed and the 32-byte
 *          digests are compared in constant time, so neither the token's bytes
 *          nor its length leak through timing.  Client ids are not secret and
 *          are found by binary search.
 *   jwt    an HS256 JWT signed with auth.token_secret (>= 32 bytes) whose "sub"
 *          equals client_id, lifetime at most auth.token_expiry seconds, with
 *          SM_JWT_SKEW_S of clock skew (rules in auth/jwt.h).
 *   store  credentials in the store's clients collection (token as SHA-256).
 *          A store lookup is asynchronous, so sm_auth_check does not do it: it
 *          answers SM_EAGAIN ("ask the store") when no synchronous method
 *          accepted and "store" is configured; the caller then loads the
 *          client's digest and compares it with sm_auth_token_digest() +
 *          sm_auth_digest_equal().  token and jwt therefore always run
 *          before the store, wherever "store" is listed; the outcome is the
 *          same ("any method accepts"), only the cost differs.  (config/directives.def does not list
 *          "store" among auth.auth_method's choices yet.)
 *
 * Ownership and threads: sm_auth_new runs once on the main thread at
 * start-up and copies what it needs from the config (the config may be freed
 * afterwards).  From then on the sm_auth_t is immutable: any number of
 * threads may call sm_auth_check and the other const functions concurrently
 * without locks.  sm_auth_free runs on the main thread after every user has
 * stopped.  Secrets (tokens, token_secret) are never logged, and are wiped
 * from memory by sm_auth_free.
 */
#ifndef SM_AUTH_AUTH_H
#define SM_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Size of a token digest (SHA-256). */
#define SM_AUTH_DIGEST_LEN 32

/* Longest presented token considered at all; longer ones are refused before
 * hashing.  Equal to the JWT limit, which is the larger of the two uses. */
#define SM_AUTH_MAX_TOKEN_LEN 8192

/* Longest client_id (DECISIONS §3: 1-128 characters of [A-Za-z0-9._:@-]). */
#define SM_AUTH_MAX_CLIENT_ID 128

typedef struct sm_auth_s sm_auth_t;

/*
 * Main thread, start-up.  Build the validator from cfg's auth_* fields
 * (borrowed for the call; nothing of cfg is referenced afterwards).
 * Validation, each failure naming the key in err:
 *   auth.auth_method  non-empty; each item "token", "jwt" or "store", none
 *                     listed twice.
 *   auth.api_keys     (only when "token" is listed) at least one item; each
 *                     "client_id:token", split at the LAST ':' (client ids may
 *                     contain ':', tokens may not); client_id valid per
 *                     DECISIONS §3; token 1..SM_AUTH_MAX_TOKEN_LEN printable
 *                     ASCII characters without spaces; no client_id twice.
 *                     Messages name the item by index and client_id, never
 *                     the token.
 *   auth.token_secret (only when "jwt" is listed) at least 32 bytes.
 *   auth.token_expiry (only when "jwt" is listed) >= 1.
 * Returns 0 with *out owned by the caller (free with sm_auth_free), or
 * SM_ECONFIG with err filled (errlen bytes including the NUL; err may be
 * NULL when errlen is 0) and *out NULL.
 */
int sm_auth_new(const sm_config_t *cfg, sm_auth_t **out, char *err, size_t errlen);

/*
 * Any thread, concurrently.  Check client_id + token (both borrowed,
 * NUL-terminated; NULL counts as empty) against the configured methods in
 * order; now_s is the current Unix time in seconds (for JWT claims).
 * Returns:
 *   0          some method accepted;
 *   SM_EAGAIN  none of token/jwt accepted and "store" is configured: the
 *              caller must consult the store (see above) and decide;
 *   SM_EAUTH   rejected (also for an empty or oversize token, or a client_id
 *              that is empty or longer than SM_AUTH_MAX_CLIENT_ID).
 * Rejections are logged at debug level with client_id, method and reason;
 * the token is logged as "***".
 */
int sm_auth_check(const sm_auth_t *a, const char *client_id, const char *token, int64_t now_s);

/* Whether method ("token", "jwt", "store") is configured. Any thread. */
bool sm_auth_has_method(const sm_auth_t *a, const char *method);

/* Any thread.  SHA-256 of a presented token (len bytes), the form in which
 * tokens are stored (api_keys here, the store's clients collection). */
void sm_auth_token_digest(const char *token, size_t len, uint8_t out[SM_AUTH_DIGEST_LEN]);

/* Any thread.  Constant-time comparison of two digests; true when equal. */
bool sm_auth_digest_equal(const uint8_t a[SM_AUTH_DIGEST_LEN], const uint8_t b[SM_AUTH_DIGEST_LEN]);

/* Main thread, after every thread that used a has stopped.  Wipes the stored
 * digests and secret, frees a.  NULL is a no-op. */
void sm_auth_free(sm_auth_t *a);

#endif
