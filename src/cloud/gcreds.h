/*
 * Google credentials for the REST backends (Firestore, Pub/Sub):
 * reference/cloud-apis.md §4.
 *
 * Sources, in order (Application Default Credentials, AIP-4110):
 *   1. emulator: the backend passes emulator=true when FIRESTORE_EMULATOR_HOST /
 *      PUBSUB_EMULATOR_HOST is set: no token at all (Firestore's emulator
 *      gets "Bearer owner": emulator_token),
 *   2. a service-account key file (the backend's `credentials` key, else
 *      GOOGLE_APPLICATION_CREDENTIALS): an RS256 JWT signed with mbedTLS,
 *      exchanged at the key's token_uri (form-encoded) for an access token,
 *   3. the metadata server (GCE_METADATA_HOST overrides the host, for tests).
 *
 * Tokens are cached and refreshed ahead of expiry (5 minutes early, or at
 * half the lifetime for short ones) and after sm_gcreds_invalidate (an API
 * answered 401).  The cache is shared by all threads behind a mutex; each
 * thread refreshes through its own REST client (sm_rest_client_current), and
 * concurrent requests of one thread share one refresh (single flight per
 * thread).
 *
 * Ownership: sm_gcreds_open/close on the main thread; sm_gcreds_get and
 * sm_gcreds_invalidate from any thread that owns a REST client.  Secrets
 * (private key, tokens) are never logged.
 */
#ifndef SM_CLOUD_GCREDS_H
#define SM_CLOUD_GCREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloud/http_client.h"

typedef struct sm_gcreds_s sm_gcreds_t;

typedef struct {
    bool emulator;             /* no credentials (emulator_token may still be sent) */
    const char *emulator_token; /* e.g. "owner" for Firestore's emulator, or NULL */
    const char *key_file;      /* service-account key file, or NULL/"" = env, metadata */
    const char *scopes;        /* space-separated OAuth scopes */
    const char *config_key;    /* config key named in errors, e.g. "firestore.credentials" */
    uint64_t timeout_ms;       /* per token request */
} sm_gcreds_opts_t;

/* Main thread.  Reads and checks the key file (type, client_email,
 * private_key parses as RSA) or notes that the metadata server will be
 * used.  Errors name the key: "firestore.credentials: /x.json: no
 * private_key".  Does no network I/O. */
int sm_gcreds_open(const sm_gcreds_opts_t *opts, sm_gcreds_t **out, char *err, size_t errlen);
void sm_gcreds_close(sm_gcreds_t *g);

/* Main thread, at start-up: fetch a first token synchronously (own loop and
 * client, bounded by opts.timeout_ms) so that bad credentials fail the start
 * with a clear message.  0, or SM_EAUTH / SM_EUNAVAIL with err filled. */
int sm_gcreds_check(sm_gcreds_t *g, char *err, size_t errlen);

/* The value for an Authorization header ("Bearer ya29..."), or NULL when no
 * header is to be sent (emulator without token).  authz is borrowed for
 * the callback only.  err: 0, SM_EAUTH (credentials refused: 4xx from the
 * token endpoint), SM_EUNAVAIL (token endpoint or metadata server
 * unreachable after retries).  Callback on the calling thread's loop, never
 * inline.  Returns 0 or SM_EINVAL (no REST client on this thread). */
typedef void (*sm_gcreds_cb)(int err, const char *authz, void *arg);
int sm_gcreds_get(sm_gcreds_t *g, sm_gcreds_cb cb, void *arg);

/* The cached token was refused (API answered 401): fetch a new one next. */
void sm_gcreds_invalidate(sm_gcreds_t *g);

/* "emulator", "key file <client_email>" or "metadata server" for the
 * start-up log line. */
const char *sm_gcreds_describe(const sm_gcreds_t *g);

#endif
